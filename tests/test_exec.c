/* test_exec.c: the exec contract shared by jobqd's runner and `jobq work`: the environment, the
 * stdout head and stderr tail, UTF-8 sanitising, the verdict and the error text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "execspawn.h"

/* JOBQ_* variables of our own environment never reach the command; the job's four do. */
static void
test_env_replaces_jobq_variables(void **state)
{
    char *env[] = {"PATH=/bin", "JOBQ_JOB_ID=999", "HOME=/root", "JOBQ_SECRET=x", NULL};
    exec_job job = {.id = 42, .queue = "mail", .attempt = 2, .max_attempts = 5};
    exec_env e;
    assert_true(exec_env_build(&e, env, &job));
    const char *want[] = {"PATH=/bin",       "HOME=/root",     "JOBQ_JOB_ID=42",
                          "JOBQ_QUEUE=mail", "JOBQ_ATTEMPT=2", "JOBQ_MAX_ATTEMPTS=5"};
    size_t n = 0;
    while (e.envp[n] != NULL) {
        assert_true(n < sizeof(want) / sizeof(want[0]));
        assert_string_equal(e.envp[n], want[n]);
        n++;
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    exec_env_free(&e);
    exec_env_free(&e); /* twice is harmless */
}

/* stdout: the first cap bytes, sanitised, NUL-terminated. */
static void
test_first_bytes_kept(void **state)
{
    exec_out h;
    assert_true(exec_out_init(&h, 8, false));
    exec_out_add(&h, "hello", 5);
    assert_false(h.total > h.cap);
    exec_out_add(&h, " wor\xffld", 7);
    assert_true(h.total > h.cap);
    exec_out_add(&h, "more", 4);
    char *text = exec_out_take(&h);
    assert_string_equal(text, "hello wo");
    assert_null(h.buf);
    free(text);
    exec_out_free(&h);

    assert_true(exec_out_init(&h, 8, false));
    exec_out_add(&h, "a\0\xc3", 3); /* a NUL and a cut sequence */
    text = exec_out_take(&h);
    assert_string_equal(text, "a??");
    free(text);
}

/* stderr: the last cap bytes whatever the sizes of the writes; cut once more than cap came. */
static void
test_last_bytes_kept(void **state)
{
    exec_out t;
    assert_true(exec_out_init(&t, 4, true));
    exec_out_add(&t, "ab", 2);
    exec_out_add(&t, "cd", 2);
    assert_false(t.total > t.cap);
    exec_out_add(&t, "efg", 3);
    exec_out_add(&t, "h", 1);
    exec_out_add(&t, "ij", 2);
    assert_true(t.total > t.cap);
    size_t n;
    const char *kept = exec_out_kept(&t, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(kept, "ghij", 4);
    exec_out_add(&t, "0123456789", 10); /* one write longer than the cap */
    kept = exec_out_kept(&t, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(kept, "6789", 4);
    /* Byte by byte, the ring never overflows its 2 * cap. */
    for (int i = 0; i < 100; i++) {
        exec_out_add(&t, &"xyz"[i % 3], 1);
        assert_true(t.len <= 2 * t.cap);
    }
    char *text = exec_out_take(&t); /* the last 4 of "xyzxyz...x" */
    assert_string_equal(text, "xyzx");
    free(text);
    exec_out_free(&t);
}

static void
test_sanitize_utf8(void **state)
{
    char ok[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    exec_sanitize(ok, strlen(ok));
    assert_string_equal(ok, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char bad[] = "a\xc0\xaf"
                 "b\xe2\x82"
                 "c\x80";
    exec_sanitize(bad, strlen(bad));
    assert_string_equal(bad, "a??b??c?");
}

/* One verdict per ending, in order: cancel, shutdown, spawn, timeout, signal, 0, 65, other. */
static void
test_verdicts(void **state)
{
    exec_failure why = EXEC_FAIL_EXIT;
    assert_int_equal(exec_verdict_of(&(exec_end){.exit_status = 0}, &why), EXEC_SUCCEEDED);
    assert_int_equal(exec_verdict_of(&(exec_end){.exit_status = 65}, &why), EXEC_PERMANENT);
    assert_int_equal(exec_verdict_of(&(exec_end){.exit_status = 1}, &why), EXEC_FAILED);
    assert_int_equal(why, EXEC_FAIL_EXIT);
    assert_int_equal(exec_verdict_of(&(exec_end){.term_signal = SIGSEGV}, &why), EXEC_FAILED);
    assert_int_equal(why, EXEC_FAIL_SIGNAL);
    exec_end e = {.timed_out = true, .term_signal = SIGTERM};
    assert_int_equal(exec_verdict_of(&e, &why), EXEC_FAILED);
    assert_int_equal(why, EXEC_FAIL_TIMEOUT);
    e = (exec_end){.timed_out = true, .exit_status = 0}; /* the timeout wins over its exit */
    assert_int_equal(exec_verdict_of(&e, &why), EXEC_FAILED);
    assert_int_equal(why, EXEC_FAIL_TIMEOUT);
    e = (exec_end){.spawn_error = "cannot start x: no such file"};
    assert_int_equal(exec_verdict_of(&e, &why), EXEC_FAILED);
    assert_int_equal(why, EXEC_FAIL_SPAWN);
    e = (exec_end){.cancelled = true, .timed_out = true, .term_signal = SIGKILL};
    assert_int_equal(exec_verdict_of(&e, &why), EXEC_CANCELLED);
    e = (exec_end){.shutdown = true, .exit_status = 65};
    assert_int_equal(exec_verdict_of(&e, &why), EXEC_SHUTDOWN);
}

static char *
text_of(const exec_end *e, const char *err)
{
    exec_out t;
    assert_true(exec_out_init(&t, 16, true));
    exec_out_add(&t, err, strlen(err));
    char *text = exec_error_text(e, &t);
    exec_out_free(&t);
    assert_non_null(text);
    return text;
}

/* The error: head and stderr's last line on the first line, then the (cut) tail. */
static void
test_error_text(void **state)
{
    char *s = text_of(&(exec_end){.exit_status = 1}, "");
    assert_string_equal(s, "exit status 1");
    free(s);
    s = text_of(&(exec_end){.exit_status = 65}, "bad payload\n");
    assert_string_equal(s, "exit status 65 (EX_DATAERR): permanent failure, not retried: bad "
                           "payload\nstderr:\nbad payload");
    free(s);
    s = text_of(&(exec_end){.exit_status = 3}, "one\r\ntwo\n\n");
    assert_string_equal(s, "exit status 3: two\nstderr:\none\r\ntwo");
    free(s);
    s = text_of(&(exec_end){.exit_status = 3}, "0123456789 abcdef\nlast\n");
    assert_string_equal(s, "exit status 3: last\nstderr (tail):\n789 abcdef\nlast");
    free(s);
    s = text_of(&(exec_end){.timed_out = true, .timeout_ms = 1000}, "");
    assert_string_equal(s, "timed out after 1000 ms");
    free(s);
    s = text_of(&(exec_end){.term_signal = SIGKILL}, "");
    assert_string_equal(s, "killed by signal 9 (Killed)");
    free(s);
    s = text_of(&(exec_end){.cancelled = true}, "");
    assert_string_equal(s, "cancelled while running");
    free(s);
    s = text_of(&(exec_end){.shutdown = true}, "");
    assert_string_equal(s, "interrupted: jobqd shut down before the job finished");
    free(s);
    s = text_of(&(exec_end){.spawn_error = "cannot start /nope: no such file or directory"}, "");
    assert_string_equal(s, "cannot start /nope: no such file or directory");
    free(s);
    s = text_of(&(exec_end){.exit_status = 2}, "\xff\xfe\n"); /* bytes that are not UTF-8 */
    assert_string_equal(s, "exit status 2: ??\nstderr:\n??");
    free(s);
    s = exec_error_text(&(exec_end){.exit_status = 4}, NULL);
    assert_string_equal(s, "exit status 4");
    free(s);
}

/* read_all: what fd gives until EOF (fd is non-blocking). */
static void
read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_true(poll(&p, 1, 10000) == 1);
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EAGAIN) {
            continue;
        }
        assert_true(got >= 0);
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
}

/* A command started by exec_spawn reads its stdin from the pipe, writes its stdout and
 * stderr to theirs, leads a session of its own, and has no signal ignored even when its
 * parent ignores SIGPIPE (as jobqd does). */
static void
test_spawn_session_signals_pipes(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    char *argv[] = {"sh", "-c",
                    "read line; echo \"in=$line\"; "
                    "echo \"sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$\"; "
                    "grep '^SigIgn' /proc/$$/status; echo oops >&2; exit 3",
                    NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    pid_t pid = 0;
    int fds[4];
    assert_int_equal(exec_spawn(argv, envp, &pid, fds, false), 0);
    assert_int_equal(fds[3], -1);
    assert_true(pid > 0);
    assert_int_equal(write(fds[0], "hello\n", 6), 6);
    close(fds[0]);
    char out[4096], err[256];
    read_all(fds[1], out, sizeof(out));
    read_all(fds[2], err, sizeof(err));
    close(fds[1]);
    close(fds[2]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    assert_non_null(strstr(out, "in=hello\n"));
    char want[64];
    snprintf(want, sizeof(want), "sid=%d pid=%d\n", (int)pid, (int)pid);
    assert_non_null(strstr(out, want)); /* its own session */
    /* SIGPIPE at its default; glibc's posix_spawn leaves its own two reserved signals (32 and
     * 33) ignored, which programs on glibc set up again. */
    const char *ign = strstr(out, "SigIgn:\t");
    assert_non_null(ign);
    unsigned long long mask = strtoull(ign + 8, NULL, 16);
    assert_int_equal(mask & ~(3ULL << 31), 0);
    assert_string_equal(err, "oops\n");
    signal(SIGPIPE, SIG_DFL);
}

/* A command that cannot be found is an error of exec_spawn itself, with nothing left open. */
static void
test_spawn_missing_command(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/jobq-no-such-command", NULL};
    char *envp[] = {NULL};
    pid_t pid = 0;
    int fds[4] = {-1, -1, -1, -1};
    assert_int_equal(exec_spawn(argv, envp, &pid, fds, true), ENOENT);
    assert_int_equal(fds[0], -1);
}

/* With a control pipe, the command writes to descriptor 3 (JOBQ_CONTROL_FD) and the caller
 * reads it on fds[3]; the command's stdout stays apart. */
static void
test_spawn_control_pipe(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "echo \"progress 5 fd=$JOBQ_CONTROL_FD\" >&3; echo out", NULL};
    exec_env env;
    char *base[] = {"PATH=/usr/bin:/bin", NULL};
    exec_job job = {.id = 7, .queue = "q", .attempt = 2, .max_attempts = 3,
                    .checkpoint = "{\"offset\":12}", .control = true};
    assert_true(exec_env_build(&env, base, &job));
    pid_t pid = 0;
    int fds[4];
    assert_int_equal(exec_spawn(argv, env.envp, &pid, fds, true), 0);
    bool seen_cp = false;
    for (char **e = env.envp; *e != NULL; e++) {
        seen_cp |= strcmp(*e, "JOBQ_CHECKPOINT={\"offset\":12}") == 0;
    }
    assert_true(seen_cp);
    exec_env_free(&env);
    close(fds[0]);
    char out[256], ctl[256];
    read_all(fds[3], ctl, sizeof(ctl));
    read_all(fds[1], out, sizeof(out));
    close(fds[1]);
    close(fds[2]);
    close(fds[3]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_string_equal(ctl, "progress 5 fd=3\n");
    assert_string_equal(out, "out\n");
}

static int nmsgs;
static exec_ctl_msg msgs[8];
static char texts[8][128];

static void
collect(void *arg, const exec_ctl_msg *m)
{
    (void)arg;
    msgs[nmsgs] = *m;
    snprintf(texts[nmsgs], sizeof(texts[0]), "%s", m->text);
    nmsgs++;
}

/* Control lines: split across reads, the three kinds, bad and overlong lines ignored, a last
 * line without newline taken at EOF. */
static void
test_control_lines(void **state)
{
    (void)state;
    exec_ctl c;
    assert_true(exec_ctl_init(&c));
    nmsgs = 0;
    const char *a = "progress 42 copy";
    const char *b = "ing\ncheckpoint {\"o\":1}\nprogress 101\nbogus\nlog hello\r\nprogress 7";
    exec_ctl_feed(&c, a, strlen(a), collect, NULL);
    exec_ctl_feed(&c, b, strlen(b), collect, NULL);
    assert_int_equal(nmsgs, 3);
    char *big = malloc(EXEC_CTL_LINE_MAX + 10);
    memset(big, 'x', EXEC_CTL_LINE_MAX + 9);
    big[EXEC_CTL_LINE_MAX + 9] = '\n';
    exec_ctl_feed(&c, "\n", 1, collect, NULL); /* ends "progress 7" */
    exec_ctl_feed(&c, big, EXEC_CTL_LINE_MAX + 10, collect, NULL);
    free(big);
    exec_ctl_feed(&c, "log end", 7, collect, NULL);
    exec_ctl_end(&c, collect, NULL);
    exec_ctl_free(&c);
    assert_int_equal(nmsgs, 5);
    assert_int_equal(msgs[0].kind, EXEC_CTL_PROGRESS);
    assert_true(msgs[0].pct == 42);
    assert_string_equal(texts[0], "copying");
    assert_int_equal(msgs[1].kind, EXEC_CTL_CHECKPOINT);
    assert_string_equal(texts[1], "{\"o\":1}");
    assert_int_equal(msgs[2].kind, EXEC_CTL_LOG);
    assert_string_equal(texts[2], "hello");
    assert_true(msgs[3].pct == 7);
    assert_string_equal(texts[3], "");
    assert_string_equal(texts[4], "end");
}

/* Snooze: exit 76 is its verdict (not a failure), "snooze DUR" its delay on the control
 * pipe; a bad delay is no control line. */
static void
test_snooze_contract(void **state)
{
    (void)state;
    exec_failure why;
    assert_int_equal(exec_verdict_of(&(exec_end){.exit_status = EXEC_EXIT_SNOOZE}, &why),
                     EXEC_SNOOZED);
    assert_int_equal(exec_verdict_of(&(exec_end){.exit_status = 76, .timed_out = true}, &why),
                     EXEC_FAILED); /* killed at its timeout: a failure, whatever it exited */
    char head[128];
    exec_error_head(&(exec_end){.exit_status = 76}, head, sizeof(head));
    assert_non_null(strstr(head, "snoozed"));
    exec_ctl_msg m;
    char l1[] = "snooze 30s";
    assert_true(exec_ctl_parse(l1, strlen(l1), &m));
    assert_int_equal(m.kind, EXEC_CTL_SNOOZE);
    assert_int_equal(m.ms, 30000);
    char l2[] = "snooze 250ms\r";
    assert_true(exec_ctl_parse(l2, strlen(l2), &m));
    assert_int_equal(m.ms, 250);
    char l3[] = "snooze soon";
    assert_false(exec_ctl_parse(l3, strlen(l3), &m));
    char l4[] = "snooze";
    assert_false(exec_ctl_parse(l4, strlen(l4), &m));
    char l5[] = "snooze 400d";
    assert_false(exec_ctl_parse(l5, strlen(l5), &m));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_replaces_jobq_variables),
        cmocka_unit_test(test_spawn_control_pipe),
        cmocka_unit_test(test_control_lines),
        cmocka_unit_test(test_first_bytes_kept),
        cmocka_unit_test(test_last_bytes_kept),
        cmocka_unit_test(test_sanitize_utf8),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_spawn_session_signals_pipes),
        cmocka_unit_test(test_spawn_missing_command),
        cmocka_unit_test(test_snooze_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
