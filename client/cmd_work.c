/* cmd_work.c: jobq work: this machine as a remote worker. Fetches jobs of queues served by
 * remote workers (jobq_worker_run) and runs a command per job under the exec contract. */
#define _GNU_SOURCE /* POSIX_SPAWN_SETSID, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "exec.h"
#include "execspawn.h"

#define RESULT_CAP (64 * 1024) /* bytes of stdout kept as the result */
#define ERR_TAIL (4 * 1024)    /* bytes of the end of stderr kept in the error */
#define CANCEL_CHECK_MS 100    /* how often a running command looks for a cancel */
#define MAX_CONCURRENCY 1024

extern char **environ;

/* work: what every job's handler shares. */
typedef struct work {
    char **argv; /* COMMAND [ARGS...], NULL-terminated */
} work;

/* outcome: how one command ended, and what it wrote. */
typedef struct outcome {
    exec_out out;          /* stdout: the first RESULT_CAP bytes */
    exec_out err;          /* stderr: the last ERR_TAIL bytes */
    int status;            /* waitpid status */
    bool timed_out;        /* the job's timeout passed */
    bool cancelled;        /* the lease was cancelled (or ended) meanwhile */
    char spawn_error[256]; /* non-empty when the command could not start */
} outcome;

/* drain: reads what fd has now into o (stdout when is_out). Returns false at EOF or on an
 * error (the caller closes fd). */
static bool
drain(int fd, bool is_out, outcome *o)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            if (is_out) {
                exec_out_add(&o->out, buf, (size_t)n);
            } else {
                exec_out_add(&o->err, buf, (size_t)n);
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* control_msg: one line of the command's control pipe, reported on its lease (sent with the
 * next heartbeat). */
static void
control_msg(void *arg, const exec_ctl_msg *m)
{
    const jobq_lease *job = arg;
    switch (m->kind) {
    case EXEC_CTL_PROGRESS:
        (void)jobq_lease_progress(job, m->pct, m->len > 0 ? m->text : NULL);
        return;
    case EXEC_CTL_CHECKPOINT:
        if (jobq_lease_checkpoint(job, m->text) != JOBQ_OK) {
            fprintf(stderr, "jobq: work: job %lld: checkpoint ignored: %s\n",
                    (long long)jobq_lease_id(job), jobq_errmsg());
        }
        return;
    case EXEC_CTL_LOG:
        (void)jobq_lease_log(job, m->text);
        return;
    case EXEC_CTL_SNOOZE:
        (void)jobq_lease_snooze(job, m->ms);
        return;
    }
}

/* drain_ctl: reads what the control pipe fd has now into ctl. Returns false at EOF or on an
 * error (the caller closes fd). */
static bool
drain_ctl(int fd, exec_ctl *ctl, const jobq_lease *job)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            exec_ctl_feed(ctl, buf, (size_t)n, control_msg, (void *)job);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            exec_ctl_end(ctl, control_msg, (void *)job);
        }
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* close_fd: closes *fd if open and marks it closed. */
static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* poll_add: appends fd (if open) with events to fds; returns its index there, or -1. */
static int
poll_add(struct pollfd *fds, int *nfdsp, int fd, short events)
{
    if (fd < 0) {
        return -1;
    }
    fds[*nfdsp] = (struct pollfd){.fd = fd, .events = events};
    return (*nfdsp)++;
}

/* run_command: runs the command for job until it exits (killing its process group past the
 * timeout or on a cancel), feeding the payload and collecting stdout and the stderr tail. */
static void
run_command(const work *wk, const jobq_lease *job, outcome *o)
{
    exec_env env;
    exec_job ej = {.id = jobq_lease_id(job),
                   .queue = jobq_lease_queue(job),
                   .attempt = jobq_lease_attempt(job),
                   .max_attempts = jobq_lease_max_attempts(job),
                   .traceparent = jobq_lease_traceparent(job),
                   .group_key = jobq_lease_group_key(job),
                   .tracestate = jobq_lease_tracestate(job),
                   .checkpoint = jobq_lease_checkpoint_get(job),
                   .control = true,
                   .parent_results = jobq_lease_parent_results(job)};
    if (!exec_env_build(&env, environ, &ej)) {
        snprintf(o->spawn_error, sizeof(o->spawn_error), "out of memory starting \"%s\"",
                 wk->argv[0]);
        return;
    }
    pid_t pid;
    int in = -1;
    int out = -1;
    int err = -1;
    int ends[4] = {-1, -1, -1, -1};
    int rc = exec_spawn(wk->argv, env.envp, &pid, ends, true);
    in = ends[0];
    out = ends[1];
    err = ends[2];
    int ctlfd = ends[3];
    exec_ctl ctl;
    if (rc == 0 && !exec_ctl_init(&ctl)) {
        close_fd(&ctlfd); /* out of memory: the command's control lines are not read */
    }
    exec_env_free(&env);
    if (rc != 0) {
        snprintf(o->spawn_error, sizeof(o->spawn_error), "cannot run \"%s\": %s", wk->argv[0],
                 strerror(rc));
        return;
    }
    /* A pidfd says when the child exited without reaping it, so its group can be killed
     * while its id is still taken; without one (old kernels) waitpid is polled. */
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    const char *payload = jobq_lease_payload(job);
    size_t plen = strlen(payload);
    size_t sent = 0;
    int64_t start = jobq__mono_ms();
    int64_t timeout = jobq_lease_timeout_ms(job);
    int64_t deadline = timeout > 0 ? start + timeout : INT64_MAX;
    int64_t kill_at = INT64_MAX;
    bool exited = false;
    if (plen == 0) {
        close_fd(&in);
    }
    while (!exited) {
        struct pollfd fds[5];
        int nfds = 0;
        int i_ctl = poll_add(fds, &nfds, ctlfd, POLLIN);
        int i_in = poll_add(fds, &nfds, in, POLLOUT);
        int i_out = poll_add(fds, &nfds, out, POLLIN);
        int i_err = poll_add(fds, &nfds, err, POLLIN);
        int i_pid = poll_add(fds, &nfds, pidfd, POLLIN);
        int64_t now = jobq__mono_ms();
        int64_t next = deadline < kill_at ? deadline : kill_at;
        int64_t wait = next - now;
        int64_t cap = pidfd >= 0 ? CANCEL_CHECK_MS : 10;
        wait = wait < 0 ? 0 : wait > cap ? cap : wait;
        int n = poll(fds, (nfds_t)nfds, (int)wait);
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (n > 0 && i_in >= 0 && fds[i_in].revents != 0) {
            ssize_t w = write(in, payload + sent, plen - sent);
            if (w > 0) {
                sent += (size_t)w;
            }
            if (sent == plen || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                close_fd(&in); /* all written, or the command does not read (EPIPE) */
            }
        }
        if (n > 0 && i_out >= 0 && fds[i_out].revents != 0 && !drain(out, true, o)) {
            close_fd(&out);
        }
        if (n > 0 && i_err >= 0 && fds[i_err].revents != 0 && !drain(err, false, o)) {
            close_fd(&err);
        }
        if (n > 0 && i_ctl >= 0 && fds[i_ctl].revents != 0 && !drain_ctl(ctlfd, &ctl, job)) {
            close_fd(&ctlfd);
        }
        if (pidfd >= 0) {
            exited = n > 0 && fds[i_pid].revents != 0;
        } else {
            pid_t got = waitpid(pid, &o->status, WNOHANG);
            if (got == pid) {
                exited = true;
                pid = -1; /* reaped */
            }
        }
        now = jobq__mono_ms();
        if (!o->cancelled && jobq_lease_cancelled(job)) {
            o->cancelled = true;
            if (!exited) {
                kill(-pid, SIGKILL);
            }
        }
        if (!exited && now >= deadline && !o->timed_out) {
            o->timed_out = true;
            kill(-pid, SIGTERM);
            kill_at = now + EXEC_KILL_GRACE_MS;
        } else if (!exited && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = INT64_MAX;
        }
    }
    if (pid > 0) {
        if (o->timed_out || o->cancelled) {
            kill(-pid, SIGKILL); /* what is left of the group: the child is a zombie */
        }
        while (waitpid(pid, &o->status, 0) < 0 && errno == EINTR) {
        }
    }
    /* What the command wrote before exiting; a descendant that keeps the pipes open is
     * not waited for. */
    if (out >= 0) {
        drain(out, true, o);
    }
    if (err >= 0) {
        drain(err, false, o);
    }
    if (ctlfd >= 0) {
        drain_ctl(ctlfd, &ctl, job);
        exec_ctl_end(&ctl, control_msg, (void *)job);
        close_fd(&ctlfd);
    }
    if (ends[3] >= 0) {
        exec_ctl_free(&ctl); /* initialised whenever the pipe was made */
    }
    close_fd(&in);
    close_fd(&out);
    close_fd(&err);
    if (pidfd >= 0) {
        close(pidfd);
    }
}

/* handle: the jobq_handler: runs the command for one job and says how it went, with one line
 * on stderr. */
static int
handle(void *arg, const jobq_lease *job, char **resultp, char **errorp)
{
    const work *wk = arg;
    outcome *o = calloc(1, sizeof(*o));
    bool ok = o != NULL && exec_out_init(&o->out, RESULT_CAP, false);
    ok = ok && exec_out_init(&o->err, ERR_TAIL, true);
    if (!ok) {
        if (o != NULL) {
            exec_out_free(&o->out);
            exec_out_free(&o->err);
        }
        free(o);
        fprintf(stderr, "jobq: work: out of memory running job %lld\n",
                (long long)jobq_lease_id(job));
        return JOBQ_FAIL_RETRY;
    }
    int64_t start = jobq__mono_ms();
    run_command(wk, job, o);
    long long ms = (long long)(jobq__mono_ms() - start);
    long long id = (long long)jobq_lease_id(job);
    const char *queue = jobq_lease_queue(job);
    exec_end e = {.spawn_error = o->spawn_error[0] != '\0' ? o->spawn_error : NULL,
                  .cancelled = o->cancelled,
                  .timed_out = o->timed_out,
                  .term_signal = WIFSIGNALED(o->status) ? WTERMSIG(o->status) : 0,
                  .exit_status = WIFEXITED(o->status) ? WEXITSTATUS(o->status) : 0,
                  .timeout_ms = jobq_lease_timeout_ms(job)};
    exec_failure why;
    exec_verdict v = exec_verdict_of(&e, &why);
    int rc = v == EXEC_SUCCEEDED   ? 0
             : v == EXEC_PERMANENT ? JOBQ_FAIL_PERMANENT
             : v == EXEC_SNOOZED   ? JOBQ_SNOOZE
                                   : JOBQ_FAIL_RETRY;
    if (v == EXEC_CANCELLED) {
        fprintf(stderr,
                "job %lld queue %s: cancelled (or its lease ended) after %lld ms; its process "
                "group was killed\n",
                id, queue, ms);
    }
    if (rc == 0) {
        *resultp = exec_out_take(&o->out);
        fprintf(stderr, "job %lld queue %s: succeeded in %lld ms\n", id, queue, ms);
    } else if (rc == JOBQ_SNOOZE) {
        *errorp = exec_error_text(&e, &o->err);
        fprintf(stderr, "job %lld queue %s: snoozed after %lld ms (attempt not counted)\n", id,
                queue, ms);
    } else {
        *errorp = exec_error_text(&e, &o->err);
        if (v != EXEC_CANCELLED) {
            char head[256];
            exec_error_head(&e, head, sizeof(head));
            bool last = rc == JOBQ_FAIL_PERMANENT ||
                        (jobq_lease_max_attempts(job) > 0 &&
                         jobq_lease_attempt(job) >= jobq_lease_max_attempts(job));
            fprintf(stderr, "job %lld queue %s: failed in %lld ms (attempt %d/%d, %s): %s\n", id,
                    queue, ms, (int)jobq_lease_attempt(job), (int)jobq_lease_max_attempts(job),
                    last ? "dead" : "will retry", head);
        }
    }
    exec_out_free(&o->out);
    exec_out_free(&o->err);
    free(o);
    return rc;
}

/* signals: the thread that turns SIGINT and SIGTERM into jobq_worker_stop. */
typedef struct signals {
    jobq_worker *w;
    sigset_t set;
    pthread_t tid;
    bool done; /* set by the main thread before it wakes the thread with a signal */
    pthread_mutex_t lock;
} signals;

static void *
signals_main(void *arg)
{
    signals *s = arg;
    for (;;) {
        int sig = 0;
        sigwait(&s->set, &sig);
        pthread_mutex_lock(&s->lock);
        bool done = s->done;
        pthread_mutex_unlock(&s->lock);
        if (done) {
            return NULL;
        }
        fprintf(stderr, "jobq: work: %s: fetching no more jobs; waiting for the running ones\n",
                strsignal(sig));
        jobq_worker_stop(s->w);
    }
}

/* work_option: --concurrency into *concurrency (an int64_t). */
static int
work_option(const cli_cmd *cmd, void *concurrency, int ch, char *arg)
{
    (void)ch;
    if (!cli_parse_i64(arg, 1, MAX_CONCURRENCY, concurrency)) {
        return cli_usage(cmd, "--concurrency needs a number 1..%d, not \"%s\"", MAX_CONCURRENCY,
                         arg);
    }
    return EXIT_OK;
}

int
cmd_work(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    /* Split at "--" first: what follows is the command, untouched by option parsing. */
    int dd = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            dd = i;
            break;
        }
    }
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"concurrency", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int64_t concurrency = 1;
    int rc = cli_parse(c, cmd, dd >= 0 ? dd : argc, argv, opts, work_option, &concurrency);
    if (rc != CLI_GO) {
        return rc;
    }
    int nq = (dd >= 0 ? dd : argc) - optind;
    if (nq < 1) {
        return cli_usage(cmd, "name at least one queue");
    }
    if (dd < 0 || dd + 1 >= argc) {
        return cli_usage(cmd, "give the command to run after --");
    }
    const char **queues = (const char **)(argv + optind);
    work wk = {.argv = argv + dd + 1};

    /* SIGINT and SIGTERM go to one thread that asks the worker to stop: blocked here before
     * the client exists, so every thread started from now on (nng's, the worker's) inherits
     * the mask. Commands start with an empty mask and default handlers. */
    signals sg = {.done = false};
    sigemptyset(&sg.set);
    sigaddset(&sg.set, SIGINT);
    sigaddset(&sg.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sg.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = cli_connect(c);
    if (rc != EXIT_OK) {
        return rc;
    }
    jobq_worker *w;
    int err = jobq_worker_open(&w, c->client, queues, (size_t)nq);
    if (err != JOBQ_OK) {
        return cli_fail(err, "work");
    }
    sg.w = w;
    pthread_mutex_init(&sg.lock, NULL);
    if (pthread_create(&sg.tid, NULL, signals_main, &sg) != 0) {
        pthread_mutex_destroy(&sg.lock);
        jobq_worker_close(w);
        fprintf(stderr, "jobq: work: cannot start a thread\n");
        return EXIT_FAILED;
    }
    fprintf(stderr, "jobq: work: serving");
    for (int i = 0; i < nq; i++) {
        fprintf(stderr, " %s", queues[i]);
    }
    fprintf(stderr, " with %lld at a time\n", (long long)concurrency);
    err = jobq_worker_run(w, handle, &wk, (int)concurrency);
    if (err != JOBQ_OK) {
        rc = cli_fail(err, "work");
    }
    pthread_mutex_lock(&sg.lock);
    sg.done = true;
    pthread_mutex_unlock(&sg.lock);
    pthread_kill(sg.tid, SIGTERM);
    pthread_join(sg.tid, NULL);
    pthread_mutex_destroy(&sg.lock);
    jobq_worker_close(w);
    return rc;
}
