/* runner.c: runs one job as a process: spawn -> exit (or timeout/cancel) -> record -> close.
 * runner_step is the only writer of r->state. */
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "codec.h"
#include "log.h"
#include "scheduler.h"

extern char **environ;

static void runner_step(runner *r);

/* ---- the pure part ---- */

run_outcome
runner_outcome(const attempt_end *e, const queue_conf *qc, int64_t now_ms, uint64_t rnd)
{
    run_outcome o = {.state = JOBQ_SUCCEEDED, .run_at_ms = 0, .kind = "success"};
    if (e->kill == KILL_CANCEL) {
        o.state = JOBQ_CANCELLED;
        o.kind = "cancelled";
        return o;
    }
    if (e->kill == KILL_SHUTDOWN) {
        o.state = JOBQ_READY;
        o.kind = "shutdown";
        return o;
    }
    if (e->spawn_failed) {
        o.kind = "spawn";
    } else if (e->kill == KILL_TIMEOUT) {
        o.kind = "timeout";
    } else if (e->term_signal != 0) {
        o.kind = "signal";
    } else if (e->exit_status == 0) {
        return o;
    } else if (e->exit_status == 65) {
        o.state = JOBQ_DEAD;
        o.kind = "permanent";
        return o;
    } else {
        o.kind = "exit";
    }
    if (e->attempt >= e->max_attempts) {
        o.state = JOBQ_DEAD;
        return o;
    }
    o.state = JOBQ_RETRYING;
    o.run_at_ms = now_ms + backoff_delay_ms(qc->backoff_base_ms, qc->backoff_max_ms,
                                            (uint32_t)e->attempt, rnd);
    return o;
}

/* ---- helpers ---- */

static uint64_t
mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* sanitize: makes buf valid UTF-8 text without NUL (bad bytes become '?'), in place. */
static void
sanitize(char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool okseq = n > 0 && i + n <= len && !(n == 2 && c < 0xc2);
        for (size_t k = 1; okseq && k < n; k++) {
            okseq = ((unsigned char)buf[i + k] & 0xc0) == 0x80;
        }
        if (!okseq || c == 0) {
            buf[i++] = '?';
            continue;
        }
        i += n;
    }
}

static void
kill_group(runner *r, int sig)
{
    if (r->spawned && r->proc.pid > 0) {
        if (kill(-r->proc.pid, sig) != 0 && errno != ESRCH) {
            log_warn("kill_failed", "job=%lld pid=%d err=%s", (long long)r->a.job.id, r->proc.pid,
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
        free(r->out);
        free(r->err);
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
    size_t cap = r->q->conf->output_cap;
    size_t take = (size_t)n;
    if (r->out_len + take > cap) {
        take = cap - r->out_len;
        r->out_truncated = true;
    }
    memcpy(r->out + r->out_len, buf->base, take);
    r->out_len += take;
}

static void
read_err_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    runner *r = s->data;
    if (n < 0) {
        pipe_done(r, s);
        return;
    }
    size_t cap = r->q->conf->output_cap;
    const char *p = buf->base;
    size_t len = (size_t)n;
    if (len > cap) { /* only the tail matters */
        p += len - cap;
        len = cap;
        r->err_truncated = true;
    }
    if (r->err_len + len > 2 * cap) {
        size_t keep = cap - len;
        if (keep > r->err_len) {
            keep = r->err_len;
        }
        memmove(r->err, r->err + r->err_len - keep, keep);
        r->err_len = keep;
        r->err_truncated = true;
    }
    memcpy(r->err + r->err_len, p, len);
    r->err_len += len;
}

/* ---- process ---- */

static void
exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    runner *r = p->data;
    r->exited = true;
    r->exit_status = status;
    r->term_signal = term_signal;
    /* The job is over: whatever it left behind in its process group goes too. */
    kill_group(r, SIGKILL);
    close_handle(r, (uv_handle_t *)p);
    runner_step(r);
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
        uv_timer_start(&r->timer, timer_cb, RUNNER_KILL_GRACE_MS, 0);
    } else {
        r->kill_stage = 2;
        kill_group(r, SIGKILL);
    }
}

static char **
build_env(const runner *r, char vars[4][96])
{
    size_t n = 0;
    while (environ[n] != NULL) {
        n++;
    }
    char **env = calloc(n + 5, sizeof(*env));
    if (env == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "JOBQ_", 5) != 0) {
            env[k++] = environ[i];
        }
    }
    snprintf(vars[0], 96, "JOBQ_JOB_ID=%lld", (long long)r->a.job.id);
    snprintf(vars[1], 96, "JOBQ_QUEUE=%s", r->q->name);
    snprintf(vars[2], 96, "JOBQ_ATTEMPT=%d", r->a.job.attempt);
    snprintf(vars[3], 96, "JOBQ_MAX_ATTEMPTS=%d", r->a.job.max_attempts);
    for (int i = 0; i < 4; i++) {
        env[k++] = vars[i];
    }
    env[k] = NULL;
    return env;
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
    r->pin.data = r->pout.data = r->perr.data = r;
    r->handles += 3;
    char envstore[4][96];
    char **env = build_env(r, envstore);
    if (env == NULL) {
        snprintf(r->spawn_error, sizeof(r->spawn_error), "out of memory");
        return false;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&r->pin},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->pout},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->perr},
    };
    uv_process_options_t opt = {
        .exit_cb = exit_cb,
        .file = qc->argv[0],
        .args = qc->argv,
        .env = env,
        .flags = UV_PROCESS_DETACHED, /* setsid: its own process group, killed as one */
        .stdio_count = 3,
        .stdio = stdio,
    };
    r->proc.data = r;
    int rc = uv_spawn(loop, &r->proc, &opt);
    free(env);
    r->handles++; /* uv_spawn initialises the handle even when it fails */
    if (rc != 0) {
        snprintf(r->spawn_error, sizeof(r->spawn_error), "cannot start %s: %s", qc->argv[0],
                 uv_strerror(rc));
        return false;
    }
    r->spawned = true;
    r->reading = 2;
    uv_read_start((uv_stream_t *)&r->pout, alloc_cb, read_out_cb);
    uv_read_start((uv_stream_t *)&r->perr, alloc_cb, read_err_cb);
    r->wreq.data = r;
    uv_buf_t b = uv_buf_init(r->a.job.payload, (unsigned)strlen(r->a.job.payload));
    if (uv_write(&r->wreq, (uv_stream_t *)&r->pin, &b, 1, write_cb) != 0) {
        close_handle(r, (uv_handle_t *)&r->pin);
    }
    uv_timer_start(&r->timer, timer_cb, (uint64_t)r->a.job.timeout_ms, 0);
    return true;
}

/* ---- recording ---- */

static char *
describe_error(runner *r)
{
    char head[256];
    const char *kind = r->a.outcome.kind;
    if (strcmp(kind, "spawn") == 0) {
        snprintf(head, sizeof(head), "%s", r->spawn_error);
    } else if (strcmp(kind, "timeout") == 0) {
        snprintf(head, sizeof(head), "timed out after %lld ms", (long long)r->a.job.timeout_ms);
    } else if (strcmp(kind, "cancelled") == 0) {
        snprintf(head, sizeof(head), "%s",
                 r->stop_why[0] != '\0' ? r->stop_why : "cancelled while running");
    } else if (strcmp(kind, "shutdown") == 0) {
        snprintf(head, sizeof(head), "interrupted: jobqd shut down before the job finished");
    } else if (r->term_signal != 0) {
        snprintf(head, sizeof(head), "killed by signal %d (%s)", r->term_signal,
                 strsignal(r->term_signal));
    } else if (r->exit_status == 65) {
        snprintf(head, sizeof(head), "exit status 65 (EX_DATAERR): permanent failure, not retried");
    } else {
        snprintf(head, sizeof(head), "exit status %lld", (long long)r->exit_status);
    }
    size_t cap = r->q->conf->output_cap;
    size_t tail = r->err_len > cap ? cap : r->err_len;
    const char *from = r->err + r->err_len - tail;
    size_t total = strlen(head) + tail + 64;
    char *text = malloc(total);
    if (text == NULL) {
        return NULL;
    }
    while (tail > 0 && (from[tail - 1] == '\n' || from[tail - 1] == '\r')) {
        tail--; /* the last line's newline says nothing */
    }
    if (tail == 0) {
        snprintf(text, total, "%s", head);
        return text;
    }
    /* The first line names the failure and its last words (what dashboards and explain show);
     * the stderr tail follows. */
    size_t last = tail;
    while (last > 0 && from[last - 1] != '\n') {
        last--;
    }
    size_t last_len = tail - last > 160 ? 160 : tail - last;
    total += last_len;
    char *grown = realloc(text, total);
    if (grown == NULL) {
        free(text);
        return NULL;
    }
    text = grown;
    int n = snprintf(text, total, "%s: ", head);
    memcpy(text + n, from + last, last_len);
    sanitize(text + n, last_len);
    for (size_t i = 0; i < last_len; i++) {
        if (text[n + (int)i] == '\r') {
            text[n + (int)i] = ' ';
        }
    }
    n += (int)last_len;
    n += snprintf(text + n, total - (size_t)n, "\nstderr%s:\n",
                  r->err_truncated || r->err_len > cap ? " (tail)" : "");
    memcpy(text + n, from, tail);
    text[n + (int)tail] = '\0';
    sanitize(text + n, tail);
    return text;
}

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
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        s->runners = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
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
            close_handle(r, (uv_handle_t *)&r->proc);
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
        attempt_end e = {.spawn_failed = !r->spawned,
                         .exit_status = r->exit_status,
                         .term_signal = r->term_signal,
                         .kill = r->kill,
                         .attempt = r->a.job.attempt,
                         .max_attempts = r->a.job.max_attempts};
        int64_t now = jobq__now_ms();
        r->a.outcome = runner_outcome(&e, r->q->conf, now, backoff_rand(&r->srv->rng));
        if (r->a.outcome.state == JOBQ_SUCCEEDED) {
            r->a.result = malloc(r->out_len + 1);
            if (r->a.result != NULL) {
                memcpy(r->a.result, r->out, r->out_len);
                r->a.result[r->out_len] = '\0';
                sanitize(r->a.result, r->out_len);
            }
        } else {
            r->a.error = describe_error(r);
        }
        uint64_t ms = mono_ms() - r->started_mono_ms;
        hist_observe(&r->q->run_hist, HIST_SECONDS, ms / 1000.0);
        char delay[48] = "";
        if (r->a.outcome.state == JOBQ_RETRYING) {
            snprintf(delay, sizeof(delay), " delay_ms=%lld",
                     (long long)(r->a.outcome.run_at_ms - now));
        }
        log_info(r->a.outcome.state == JOBQ_SUCCEEDED ? "job_succeeded" : "job_failed",
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
        close_handle(r, (uv_handle_t *)&r->proc);
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
    if (r != NULL) {
        r->out = malloc(cap + 1);
        r->err = malloc(2 * cap + 1);
    }
    if (r == NULL || r->out == NULL || r->err == NULL) {
        /* Out of memory: leave the job running in the store; recovery at the next start
         * makes it ready again. */
        log_error("runner_oom", "job=%lld", (long long)row->id);
        if (r != NULL) {
            free(r->out);
            free(r->err);
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
    r->started_mono_ms = mono_ms();
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r;
    r->handles = 1;
    r->next = s->runners;
    if (s->runners != NULL) {
        s->runners->prev = r;
    }
    s->runners = r;
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
    uv_timer_start(&r->timer, timer_cb, RUNNER_KILL_GRACE_MS, 0);
}
