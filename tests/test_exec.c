/* test_exec.c: the exec contract shared by jobqd's runner and `jobq work`: the environment, the
 * stdout head and stderr tail, UTF-8 sanitising, the verdict and the error text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_replaces_jobq_variables),
        cmocka_unit_test(test_first_bytes_kept),
        cmocka_unit_test(test_last_bytes_kept),
        cmocka_unit_test(test_sanitize_utf8),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
