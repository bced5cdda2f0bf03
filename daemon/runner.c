/* runner.c: runs one job as a process: spawn -> exit (or timeout/cancel) -> record -> close.
 * runner_step is the only writer of r->state. */
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "codec.h"
#include "exec.h"
#include "execspawn.h"
#include "list.h"
#include "log.h"
#include "progress.h"
#include "scheduler.h"

extern char **environ;

static void runner_step(runner *r);

/* ---- the pure part ---- */

/* exec_ending: how the attempt ended, in the exec contract's terms. */
static exec_end
exec_ending(const runner *r)
{
    return (exec_end){.spawn_error = r->spawned ? NULL : r->spawn_error,
                      .cancelled = r->kill == KILL_CANCEL,
                      .cancel_why = r->stop_why[0] != '\0' ? r->stop_why : NULL,
                      .shutdown = r->kill == KILL_SHUTDOWN,
                      .timed_out = r->kill == KILL_TIMEOUT,
                      .term_signal = r->term_signal,
                      .exit_status = r->exit_status,
                      .timeout_ms = r->a.job.timeout_ms};
}

/* ending: the exec contract's verdict as the outcome's verdict and, for a retryable failure,
 * its kind. */
static outcome_verdict
ending(const exec_end *e, outcome_kind *why)
{
    exec_failure f = EXEC_FAIL_EXIT;
    switch (exec_verdict_of(e, &f)) {
    case EXEC_SUCCEEDED:
        return VERDICT_SUCCESS;
    case EXEC_PERMANENT:
        return VERDICT_PERMANENT;
    case EXEC_CANCELLED:
        return VERDICT_CANCELLED;
    case EXEC_SHUTDOWN:
        return VERDICT_SHUTDOWN;
    case EXEC_SNOOZED: /* decided apart (outcome_snooze): not a verdict of outcome_decide */
    case EXEC_FAILED:
        break;
    }
    *why = f == EXEC_FAIL_SPAWN     ? OUTCOME_SPAWN
           : f == EXEC_FAIL_TIMEOUT ? OUTCOME_TIMEOUT
           : f == EXEC_FAIL_SIGNAL  ? OUTCOME_SIGNAL
                                    : OUTCOME_EXIT;
    return VERDICT_RETRYABLE;
}

/* ---- helpers ---- */

static void
kill_group(runner *r, int sig)
{
    if (r->spawned && !r->exited && r->pid > 0) { /* reaped: its id may be reused */
        if (kill(-r->pid, sig) != 0 && errno != ESRCH) {
            log_warn("kill_failed", "job=%lld pid=%d err=%s", (long long)r->a.job.id, (int)r->pid,
                     strerror(errno));
        }
    }
}

static void
on_close(uv_handle_t *h)
{
    runner *r = h->data;
    if (--r->handles == 0 && r->state == RUN_CLOSING) {
        attempt_clear(&r->a);
        exec_out_free(&r->out);
        exec_out_free(&r->err);
        exec_ctl_free(&r->ctl);
        free(r);
    }
}

static void
close_handle(runner *r, uv_handle_t *h)
{
    if (h->data == r && !uv_is_closing(h)) {
        uv_close(h, on_close);
    }
}

/* ---- output ---- */

static char readbuf[65536]; /* the loop reads one pipe at a time */

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(readbuf, sizeof(readbuf));
}

static void
pipe_done(runner *r, uv_stream_t *s)
{
    uv_read_stop(s);
    close_handle(r, (uv_handle_t *)s);
    r->reading--;
    runner_step(r);
}

static void
read_out_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    runner *r = s->data;
    if (n < 0) {
        pipe_done(r, s);
        return;
    }
    exec_out_add(&r->out, buf->base, (size_t)n);
}

static void
read_err_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    runner *r = s->data;
    if (n < 0) {
        pipe_done(r, s);
        return;
    }
    exec_out_add(&r->err, buf->base, (size_t)n);
}

/* control_msg: one line of the control pipe. */
static void
control_msg(void *arg, const exec_ctl_msg *m)
{
    runner *r = arg;
    server *s = r->srv;
    int64_t id = r->a.job.id;
    int32_t at = r->a.job.attempt;
    switch (m->kind) {
    case EXEC_CTL_PROGRESS:
        progress_report(s, &r->a.prog, id, at, m->pct, m->text, m->len);
        return;
    case EXEC_CTL_CHECKPOINT:
        if (!progress_checkpoint(s, &r->a.prog, id, at, m->text, m->len)) {
            log_warn("checkpoint_refused", "job=%lld reason=\"not JSON, or over %d bytes\"",
                     (long long)id, REQ_CHECKPOINT_MAX);
        }
        return;
    case EXEC_CTL_LOG:
        progress_log(s, &r->a.prog, id, at, m->text, m->len);
        return;
    case EXEC_CTL_SNOOZE:
        r->has_snooze = true;
        r->snooze_ms = m->ms;
        return;
    }
}

static void
read_ctl_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    runner *r = s->data;
    if (n < 0) {
        exec_ctl_end(&r->ctl, control_msg, r);
        pipe_done(r, s);
        return;
    }
    exec_ctl_feed(&r->ctl, buf->base, (size_t)n, control_msg, r);
}

/* ---- process ---- */

/* reaped: whether the command exited; if so, whatever it left behind in its process group is
 * killed while its id is still reserved by the unreaped process, then it is reaped and its
 * status kept. idtype, id: P_PIDFD and its pidfd, or P_PID and its pid. */
static bool
reaped(runner *r, idtype_t idtype, id_t id)
{
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(idtype, id, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0) {
        return false; /* not exited yet */
    }
    kill_group(r, SIGKILL);
    memset(&info, 0, sizeof(info));
    if (waitid(idtype, id, &info, WEXITED | WNOHANG) != 0) {
        if (errno == EINTR) {
            return false; /* looked at again on the next event */
        }
        log_warn("waitid_failed", "job=%lld pid=%d err=%s", (long long)r->a.job.id, (int)r->pid,
                 strerror(errno));
        r->exit_status = 127;
    } else if (info.si_pid == 0) {
        return false;
    } else if (info.si_code == CLD_EXITED) {
        r->exit_status = info.si_status;
        if (r->exit_status == EXEC_EXIT_SLOW_DOWN && r->kill == KILL_NONE) {
            char why[120];
            snprintf(why, sizeof(why), "a command exited %d (EX_TEMPFAIL: slow down)",
                     EXEC_EXIT_SLOW_DOWN);
            queue_slow_down_job(r->srv, r->q, &r->a.job, jobq__now_ms() + r->q->conf->slow_down_ms,
                                why);
        }
    } else {
        r->term_signal = info.si_status; /* CLD_KILLED, CLD_DUMPED */
    }
    r->exited = true;
    return true;
}

/* exit_cb: the command's pidfd is readable: it exited. */
static void
exit_cb(uv_poll_t *p, int status, int events)
{
    runner *r = p->data;
    (void)status;
    (void)events;
    if (!reaped(r, P_PIDFD, (id_t)r->pidfd)) {
        return;
    }
    close_handle(r, (uv_handle_t *)p); /* uv_close stops watching the descriptor at once */
    close(r->pidfd);
    r->pidfd = -1;
    runner_step(r);
}

/* sigchld_cb: a child exited: the commands started without a pidfd (a kernel before 5.3, or
 * valgrind, which has none) are looked at. Signals coalesce, so each of them is. */
static void
sigchld_cb(uv_signal_t *h, int signum)
{
    server *s = h->data;
    (void)signum;
    runner *next;
    for (runner *r = s->runners; r != NULL; r = next) {
        next = r->next; /* runner_step may unlink r */
        if (r->spawned && !r->exited && r->pidfd < 0 && reaped(r, P_PID, (id_t)r->pid)) {
            runner_step(r);
        }
    }
}

static void
write_cb(uv_write_t *w, int status)
{
    runner *r = w->data;
    (void)status; /* EPIPE: the handler did not read its stdin; that is its business */
    close_handle(r, (uv_handle_t *)&r->pin);
}

static void
timer_cb(uv_timer_t *t)
{
    runner *r = t->data;
    if (r->state == RUN_RECORDING) {
        attempt_record(&r->a); /* retry a record the store refused */
        return;
    }
    if (r->exited) {
        /* Output pipes held open past the exit by an escaped child: stop reading. */
        if (r->reading > 0) {
            if (r->pout.data == r && !uv_is_closing((uv_handle_t *)&r->pout)) {
                pipe_done(r, (uv_stream_t *)&r->pout);
            }
            if (r->perr.data == r && !uv_is_closing((uv_handle_t *)&r->perr)) {
                pipe_done(r, (uv_stream_t *)&r->perr);
            }
            if (r->pctl.data == r && !uv_is_closing((uv_handle_t *)&r->pctl)) {
                pipe_done(r, (uv_stream_t *)&r->pctl);
            }
        }
        return;
    }
    if (r->kill == KILL_NONE) {
        r->kill = KILL_TIMEOUT;
        log_warn("job_timeout", "job=%lld queue=%s timeout_ms=%lld", (long long)r->a.job.id,
                 r->q->name, (long long)r->a.job.timeout_ms);
    }
    if (r->kill_stage == 0) {
        r->kill_stage = 1;
        kill_group(r, SIGTERM);
        uv_timer_start(&r->timer, timer_cb, EXEC_KILL_GRACE_MS, 0);
    } else {
        r->kill_stage = 2;
        kill_group(r, SIGKILL);
    }
}

/* spawn: starts the command; false with r->spawn_error on failure. */
static bool
spawn(runner *r)
{
    uv_loop_t *loop = r->srv->loop;
    const queue_conf *qc = r->q->conf;
    uv_pipe_init(loop, &r->pin, 0);
    uv_pipe_init(loop, &r->pout, 0);
    uv_pipe_init(loop, &r->perr, 0);
    uv_pipe_init(loop, &r->pctl, 0);
    r->pin.data = r->pout.data = r->perr.data = r->pctl.data = r;
    r->handles += 4;
    r->pidfd = -1;
    exec_env env;
    exec_job job = {.id = r->a.job.id,
                    .queue = r->q->name,
                    .attempt = r->a.job.attempt,
                    .max_attempts = r->a.job.max_attempts,
                    .traceparent = r->a.job.traceparent,
                    .group_key = r->a.job.group_key,
                    .tracestate = r->a.job.tracestate,
                    .checkpoint = r->a.job.checkpoint,
                    .control = true,
                    .parent_results = r->a.job.parent_results};
    if (!exec_env_build(&env, environ, &job)) {
        snprintf(r->spawn_error, sizeof(r->spawn_error), "out of memory");
        return false;
    }
    int parent[4];
    int rc = exec_spawn(qc->argv, env.envp, &r->pid, parent, true);
    exec_env_free(&env);
    if (rc != 0) {
        r->pid = 0;
        snprintf(r->spawn_error, sizeof(r->spawn_error), "cannot start %s: %s", qc->argv[0],
                 strerror(rc));
        return false;
    }
    uv_pipe_open(&r->pin, parent[0]);
    uv_pipe_open(&r->pout, parent[1]);
    uv_pipe_open(&r->perr, parent[2]);
    uv_pipe_open(&r->pctl, parent[3]);
    r->spawned = true;
    /* Its exit: on its pidfd; without one, SIGCHLD (sigchld_cb), armed before the spawn. */
    if ((r->pidfd = pidfd_open(r->pid, 0)) >= 0) {
        uv_poll_init(loop, &r->exit_poll, r->pidfd);
        r->exit_poll.data = r;
        r->handles++;
        uv_poll_start(&r->exit_poll, UV_READABLE, exit_cb);
    }
    r->reading = 3;
    uv_read_start((uv_stream_t *)&r->pout, alloc_cb, read_out_cb);
    uv_read_start((uv_stream_t *)&r->perr, alloc_cb, read_err_cb);
    uv_read_start((uv_stream_t *)&r->pctl, alloc_cb, read_ctl_cb);
    r->wreq.data = r;
    uv_buf_t b = uv_buf_init(r->a.job.payload, (unsigned)strlen(r->a.job.payload));
    if (uv_write(&r->wreq, (uv_stream_t *)&r->pin, &b, 1, write_cb) != 0) {
        close_handle(r, (uv_handle_t *)&r->pin);
    }
    uv_timer_start(&r->timer, timer_cb, (uint64_t)r->a.job.timeout_ms, 0);
    return true;
}

/* ---- recording ---- */

/* give_up: jobqd is stopping and the store still refuses the outcome: the runner ends
 * without it, so the drain can finish. The job stays running in the database; the next start
 * makes it ready again, with this attempt counted. */
static void
give_up(runner *r)
{
    log_error("record_abandoned",
              "job=%lld tries=%d reason=\"the store refuses writes and jobqd is stopping; the job "
              "stays running in the database and is made ready again at the next start\"",
              (long long)r->a.job.id, r->record_tries);
    runner_step(r);
}

static void
recorded_cb(attempt *a, int err)
{
    runner *r = container_of(a, runner, a);
    if (err != JOBQ_OK && r->srv->draining) {
        /* Shutting down: the job stays running in the database and the recovery at the next
         * start makes it ready again (it runs again: at least once). */
        log_error("record_failed", "job=%lld err=%s next=recovered_at_start",
                  (long long)r->a.job.id, jobq__err_code(err));
        runner_step(r);
        return;
    }
    if (err != JOBQ_OK) {
        /* The store failed (disk full, I/O error): the job stays running in the database;
         * try again in a second rather than lose the outcome. */
        r->record_tries++;
        log_error("record_failed", "job=%lld err=%s tries=%d", (long long)r->a.job.id,
                  jobq__err_code(err), r->record_tries);
        if (r->give_up) {
            give_up(r);
            return;
        }
        uv_timer_start(&r->timer, timer_cb, 1000, 0);
        return;
    }
    runner_step(r);
}

static void
unlink_runner(runner *r)
{
    server *s = r->srv;
    JOBQ_LIST_UNLINK(s->runners, r, next, prev);
    s->nrunning--;
    r->q->running--;
}

/* runner_step: advances the state machine after any event. */
static void
runner_step(runner *r)
{
    switch (r->state) {
    case RUN_STARTING:
        r->state = RUN_EXECUTING;
        if (!spawn(r)) {
            log_warn("job_spawn_failed", "job=%lld queue=%s reason=\"%s\"", (long long)r->a.job.id,
                     r->q->name, r->spawn_error);
            close_handle(r, (uv_handle_t *)&r->pin);
            close_handle(r, (uv_handle_t *)&r->pout);
            close_handle(r, (uv_handle_t *)&r->perr);
            close_handle(r, (uv_handle_t *)&r->pctl);
            r->exited = true;
        }
        runner_step(r);
        return;
    case RUN_EXECUTING: {
        if (!r->exited) {
            return;
        }
        if (r->reading > 0) {
            uv_timer_start(&r->timer, timer_cb, RUNNER_PIPE_DRAIN_MS, 0);
            return;
        }
        uv_timer_stop(&r->timer);
        exec_end e = exec_ending(r);
        outcome_kind why = OUTCOME_EXIT;
        outcome_verdict v = ending(&e, &why);
        int64_t now = jobq__now_ms();
        const queue_conf *qc = r->q->conf;
        r->a.outcome =
            outcome_decide(v, why, r->a.job.attempt, r->a.job.max_attempts, qc->backoff_base_ms,
                           qc->backoff_max_ms, now, backoff_rand(&r->srv->rng));
        exec_failure f;
        if (exec_verdict_of(&e, &f) == EXEC_SNOOZED) {
            r->a.outcome =
                outcome_snooze(now, r->has_snooze ? r->snooze_ms : EXEC_SNOOZE_DEFAULT_MS);
        }
        if (r->a.outcome.state == JOBQ_SUCCEEDED) {
            r->a.result = exec_out_take(&r->out);
        } else {
            r->a.error = exec_error_text(&e, &r->err);
        }
        uint64_t ms = (uint64_t)(jobq__mono_ms() - r->started_mono_ms);
        hist_observe(&r->q->run_hist, HIST_SECONDS, ms / 1000.0);
        char delay[48] = "";
        if (r->a.outcome.state == JOBQ_RETRYING || r->a.outcome.state == JOBQ_SCHEDULED) {
            snprintf(delay, sizeof(delay), " delay_ms=%lld",
                     (long long)(r->a.outcome.run_at_ms - now));
        }
        log_info(r->a.outcome.state == JOBQ_SUCCEEDED   ? "job_succeeded"
                 : r->a.outcome.state == JOBQ_SCHEDULED ? "job_snoozed"
                                                        : "job_failed",
                 "job=%lld queue=%s attempt=%d/%d duration_ms=%llu kind=%s next=%s%s",
                 (long long)r->a.job.id, r->q->name, r->a.job.attempt, r->a.job.max_attempts,
                 (unsigned long long)ms, r->a.outcome.kind, jobq__state_name(r->a.outcome.state),
                 delay);
        r->state = RUN_RECORDING;
        r->a.done = recorded_cb;
        attempt_record(&r->a);
        return;
    }
    case RUN_RECORDING: /* recorded */
        r->state = RUN_CLOSING;
        unlink_runner(r);
        close_handle(r, (uv_handle_t *)&r->timer);
        close_handle(r, (uv_handle_t *)&r->pin);
        close_handle(r, (uv_handle_t *)&r->pout);
        close_handle(r, (uv_handle_t *)&r->perr);
        close_handle(r, (uv_handle_t *)&r->pctl);
        close_handle(r, (uv_handle_t *)&r->exit_poll);
        return;
    case RUN_CLOSING:
        return;
    }
}

void
runner_start(server *s, qstate *q, job_row *row)
{
    runner *r = calloc(1, sizeof(*r));
    size_t cap = q->conf->output_cap;
    bool ok = r != NULL && exec_out_init(&r->out, cap, false);
    ok = ok && exec_out_init(&r->err, cap, true);
    ok = ok && exec_ctl_init(&r->ctl);
    if (!ok) {
        /* Out of memory: leave the job running in the store; recovery at the next start
         * makes it ready again. */
        log_error("runner_oom", "job=%lld", (long long)row->id);
        if (r != NULL) {
            exec_out_free(&r->out);
            exec_out_free(&r->err);
            exec_ctl_free(&r->ctl);
            free(r);
        }
        job_row_clear(row);
        return;
    }
    r->srv = s;
    r->q = q;
    r->a.s = s;
    r->a.q = q;
    r->a.job = *row;
    memset(row, 0, sizeof(*row));
    r->started_mono_ms = jobq__mono_ms();
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r;
    r->handles = 1;
    JOBQ_LIST_PUSH(s->runners, r, next, prev);
    s->nrunning++;
    q->running++;
    log_debug("job_started", "job=%lld queue=%s attempt=%d", (long long)r->a.job.id, q->name,
              r->a.job.attempt);
    r->state = RUN_STARTING;
    runner_step(r);
}

runner *
runner_find(server *s, int64_t id)
{
    for (runner *r = s->runners; r != NULL; r = r->next) {
        if (r->a.job.id == id) {
            return r;
        }
    }
    return NULL;
}

void
runner_stop(runner *r, enum run_kill why)
{
    if (why == KILL_SHUTDOWN) {
        /* The grace is over: a record that fails from now on is not retried. One waiting for
         * its retry gets its last try now; its end (or its success) ends the drain. */
        r->give_up = true;
        if (r->state == RUN_RECORDING) {
            if (uv_is_active((uv_handle_t *)&r->timer)) {
                uv_timer_stop(&r->timer);
                attempt_record(&r->a);
            }
            return;
        }
    }
    if (r->state != RUN_EXECUTING || r->exited) {
        return; /* it ended on its own: that outcome stands */
    }
    r->kill = why;
    if (why == KILL_SHUTDOWN) {
        r->kill_stage = 2;
        kill_group(r, SIGKILL);
        return;
    }
    r->kill_stage = 1;
    kill_group(r, SIGTERM);
    uv_timer_start(&r->timer, timer_cb, EXEC_KILL_GRACE_MS, 0);
}

/* runner_grace_over: shutdown_grace is over: every running process is killed, its job put back
 * to ready. */
static void
runner_grace_over(server *s)
{
    for (runner *r = s->runners; r != NULL; r = r->next) {
        runner_stop(r, KILL_SHUTDOWN);
    }
}

static int
runner_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    uv_signal_init(s->loop, &s->sigchld);
    s->sigchld.data = s;
    uv_signal_start(&s->sigchld, sigchld_cb, SIGCHLD);
    return 0;
}

static void
runner_close(server *s)
{
    uv_close((uv_handle_t *)&s->sigchld, NULL);
}

const server_part runner_part = {
    .name = "runner", .init = runner_init, .grace_over = runner_grace_over, .close = runner_close};
