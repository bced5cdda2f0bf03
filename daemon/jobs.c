/* jobs.c: the ops on jobs: submit and submit_batch, get, wait, cancel, list, retry (one job or
 * in bulk), promote and explain. Loop thread; their store operations run on the writer's thread. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call.h"
#include "cluster.h"
#include "codec.h"
#include "expiry.h"
#include "flow.h"
#include "handlers.h"
#include "lifecycle.h"
#include "log.h"
#include "progress.h"
#include "runner.h"
#include "scheduler.h"
#include "waits.h"

/* Jobs made ready again by one bulk retry transaction. */
#define RETRY_CHUNK 1000
/* Attempts shown by get. */
#define MAX_ATTEMPTS_SHOWN 1000

/* reply_submitted: the submit or submit_batch reply of proto/PROTOCOL.md, written directly
 * (it is the hot path: no JSON tree). */
static void
reply_submitted(call *c)
{
    char one[160];
    char *buf = one;
    size_t len;
    if (c->req.op == REQ_SUBMIT) {
        const char *st = jobq__state_name(c->sub.states[0]);
        int n = snprintf(one, sizeof(one),
                         "{\"ok\":true,\"id\":%lld,\"state\":%s%s%s,\"duplicate\":%s%s}",
                         (long long)c->sub.ids[0], st != NULL ? "\"" : "", st != NULL ? st : "null",
                         st != NULL ? "\"" : "", c->sub.dups[0] ? "true" : "false",
                         c->sub.dedupe[0].replaced ? ",\"replaced\":true" : "");
        len = (size_t)n;
    } else {
        /* 21 bytes per id and per duplicate index at most, plus the frame and the group. */
        size_t cap = 112 + c->req.njobs * 66;
        if ((buf = malloc(cap)) == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        len = (size_t)snprintf(buf, cap, "{\"ok\":true,\"ids\":[");
        for (size_t i = 0; i < c->req.njobs; i++) {
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i > 0 ? "," : "",
                                    (long long)c->sub.ids[i]);
        }
        len += (size_t)snprintf(buf + len, cap - len, "],\"duplicates\":[");
        bool first = true;
        for (size_t i = 0; i < c->req.njobs; i++) {
            if (c->sub.dups[i]) {
                len += (size_t)snprintf(buf + len, cap - len, "%s%zu", first ? "" : ",", i);
                first = false;
            }
        }
        len += (size_t)snprintf(buf + len, cap - len, "]");
        first = true;
        for (size_t i = 0; i < c->req.njobs; i++) {
            if (c->sub.dedupe[i].replaced) {
                len += (size_t)snprintf(buf + len, cap - len, "%s%zu",
                                        first ? ",\"replaced\":[" : ",", i);
                first = false;
            }
        }
        if (!first) {
            len += (size_t)snprintf(buf + len, cap - len, "]");
        }
        if (c->sub.group_id != 0) {
            len += (size_t)snprintf(buf + len, cap - len, ",\"group\":%lld",
                                    (long long)c->sub.group_id);
        }
        len += (size_t)snprintf(buf + len, cap - len, "}");
    }
    intake_reply(c->ic, buf, len);
    if (buf != one) {
        free(buf);
    }
    call_free(c);
}

static void
done_submit(wop *op)
{
    call *c = container_of(op, call, sub.op);
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        char msg[512];
        char missing[128];
        snprintf(missing, sizeof(missing),
                 "\"after\" names job %lld, which does not exist (or was deleted by retention)",
                 (long long)c->sub.missing_parent);
        const char *what = op->err == JOBQ_ECONFLICT ? "the key is already used by a job with "
                                                       "another payload"
                           : op->err == JOBQ_EFULL   ? "the database disk is full; free space"
                                                       " and retry (nothing was stored)"
                           : op->err == JOBQ_ENOENT  ? missing
                                                     : writer_last_error(&s->w);
        if (c->req.op == REQ_SUBMIT_BATCH) {
            snprintf(msg, sizeof(msg), "jobs[%zu]: %s (nothing was submitted)", c->sub.failed_at,
                     what);
        } else {
            snprintf(msg, sizeof(msg), "%s", what);
        }
        reply_err(c, op->err, msg);
        return;
    }
    size_t added = 0;
    for (size_t i = 0; i < c->req.njobs; i++) {
        if (c->sub.dedupe[i].replaced) {
            /* A job that was waiting to run took a new payload and run time. */
            qstate *q = queue_add(s, c->sub.specs[i].queue);
            if (q == NULL) {
                continue;
            }
            expiry_note(s, c->sub.specs[i].expires_at_ms);
            if (c->sub.dedupe[i].from != c->sub.states[i]) {
                queue_count_move(q, c->sub.dedupe[i].from, c->sub.states[i]);
            }
            if (c->sub.states[i] == JOBQ_SCHEDULED || c->sub.states[i] == JOBQ_RETRYING) {
                sched_note_due(s, c->sub.dedupe[i].run_at_ms);
            } else if (c->sub.states[i] == JOBQ_READY) {
                sched_dispatch(s, q);
            }
            continue;
        }
        if (!c->sub.dups[i]) {
            qstate *q = queue_add(s, c->sub.specs[i].queue);
            if (q == NULL) {
                continue;
            }
            queue_count_move(q, -1, c->sub.states[i]);
            if (c->sub.states[i] != JOBQ_CANCELLED) {
                expiry_note(s, c->sub.specs[i].expires_at_ms);
            }
            if (c->sub.states[i] == JOBQ_SCHEDULED) {
                sched_note_due(s, c->sub.specs[i].run_at_ms);
            } else if (c->sub.states[i] == JOBQ_CANCELLED) {
                sched_sweep_soon(s, q, JOBQ_CANCELLED);
            } else if (i + 1 == c->req.njobs ||
                       strcmp(c->sub.specs[i].queue, c->sub.specs[i + 1].queue) != 0) {
                sched_dispatch(s, q);
            }
            added++;
        }
    }
    log_debug("submitted", "jobs=%zu added=%zu first_id=%lld", c->req.njobs, added,
              (long long)c->sub.ids[0]);
    reply_submitted(c);
}

/* pending_room: whether q may take the jobs of this request that name it (checked at the
 * first of them); else replies queue_full. Counts move at commit, so submits in flight can
 * overshoot by what they carry. */
static bool
pending_room(call *c, qstate *q, size_t first)
{
    for (size_t k = 0; k < first; k++) {
        if (strcmp(c->req.jobs[k].queue, q->name) == 0) {
            return true; /* checked already */
        }
    }
    int64_t adding = 0;
    for (size_t k = first; k < c->req.njobs; k++) {
        adding += strcmp(c->req.jobs[k].queue, q->name) == 0;
    }
    int64_t pending = queue_pending(q);
    if (pending + adding <= (int64_t)q->conf->max_pending) {
        return true;
    }
    char msg[300];
    snprintf(msg, sizeof(msg),
             "queue \"%s\" holds %lld unfinished jobs and its max_pending is %zu; retry later or "
             "raise max_pending (nothing was submitted)",
             q->name, (long long)pending, q->conf->max_pending);
    reply_error(c, "queue_full", msg);
    return false;
}

/* start_submit: resolves each job against its queue, then queues the insert. */
static void
start_submit(call *c)
{
    server *s = c->srv;
    size_t n = c->req.njobs;
    if (!submit_alloc(&c->sub, n)) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    c->sub.group = c->req.group;
    c->sub.group_oc = c->req.on_complete != NULL;
    int64_t now = jobq__now_ms();
    size_t nspecs = n + (c->req.on_complete != NULL);
    for (size_t i = 0; i < nspecs; i++) {
        const req_job *j = i < n ? &c->req.jobs[i] : c->req.on_complete;
        if (c->req.group && j->key != NULL) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "jobs[%zu]: a group's jobs cannot have a key: a group is submitted once, as "
                     "a whole (nothing was submitted)",
                     i);
            reply_error(c, "invalid_argument", msg);
            return;
        }
        qstate *q = queue_find(s, j->queue);
        if (q == NULL) {
            char msg[512];
            const char *code;
            bool batch = c->req.op == REQ_SUBMIT_BATCH;
            int off = batch ? snprintf(msg, sizeof(msg), "jobs[%zu]: ", i) : 0;
            q = queue_admit(s, j->queue, &code, msg + off, sizeof(msg) - (size_t)off);
            if (q == NULL) {
                size_t used = strlen(msg);
                snprintf(msg + used, sizeof(msg) - used, "%s",
                         batch ? " (nothing was submitted)" : "");
                reply_error(c, code, msg);
                return;
            }
        }
        if (q != NULL && i < n && !pending_room(c, q, i)) {
            return;
        }
        const queue_conf *qc = q != NULL ? q->conf : NULL;
        queue_conf defaults;
        if (qc == NULL) {
            config_queue_defaults(&defaults);
            qc = &defaults;
        }
        job_spec *sp = &c->sub.specs[i];
        sp->queue = j->queue;
        sp->payload = j->payload;
        sp->payload_hash = j->payload_hash;
        sp->priority = j->priority;
        sp->run_at_ms = j->has_run_at ? j->run_at_ms : now + j->delay_ms;
        sp->max_attempts = j->max_attempts > 0 ? j->max_attempts : qc->max_attempts;
        sp->timeout_ms = j->timeout_ms > 0 ? j->timeout_ms : qc->timeout_ms;
        sp->key = j->key;
        sp->key_ttl_ms = qc->key_ttl_ms;
        sp->after = j->after;
        sp->nafter = j->nafter;
        sp->after_always = j->after_always;
        sp->traceparent = j->traceparent;
        sp->tracestate = j->tracestate;
        sp->group_key = j->group_key;
        sp->dedupe = j->dedupe;
        sp->debounce_max_ms = j->debounce_max_ms;
        sp->expires_at_ms = j->expires_in_ms > 0 ? now + j->expires_in_ms : j->expires_at_ms;
    }
    /* The insert is the lifecycle's own operation (the request's second half is done_submit). */
    c->sub.op.exec = lifecycle_exec_submit;
    c->sub.op.exec_many = lifecycle_submit_plain(&c->sub) ? lifecycle_exec_submits : NULL;
    c->sub.op.done = done_submit;
    c->sub.op.writes = true;
    writer_push(&s->w, &c->sub.op);
}

static int
exec_get(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    int err = store_get(st, c->req.ids[0], &c->row);
    if (err == JOBQ_OK && c->req.op == REQ_GET) {
        c->attempts = calloc(MAX_ATTEMPTS_SHOWN, sizeof(*c->attempts));
        if (c->attempts == NULL) {
            return JOBQ_ENOMEM;
        }
        err = store_attempts(st, c->req.ids[0], c->attempts, MAX_ATTEMPTS_SHOWN, &c->nattempts);
    }
    c->expires_at_ms = 0;
    if (err == JOBQ_OK && c->req.op == REQ_GET) {
        err = store_job_expiry(st, c->req.ids[0], &c->expires_at_ms);
    }
    return err;
}

static json_t *
attempts_json(const call *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->nattempts; i++) {
        const attempt_row *r = &c->attempts[i];
        json_array_append_new(
            a, json_pack("{s:i, s:I, s:I, s:I, s:s, s:o}", "attempt", r->attempt, "started_at",
                         (json_int_t)r->started_at_ms, "finished_at", (json_int_t)r->finished_at_ms,
                         "duration_ms", (json_int_t)(r->finished_at_ms - r->started_at_ms), "kind",
                         r->kind ? r->kind : "?", "error", nullable_str(r->error)));
    }
    return a;
}

static void
reply_job(call *c, const char *verb)
{
    char msg[160];
    if (c->op.err == JOBQ_ENOENT) {
        snprintf(msg, sizeof(msg), "no job with id %lld", (long long)c->req.ids[0]);
        reply_err(c, c->op.err, msg);
        return;
    }
    if (c->op.err == JOBQ_ESTATE) {
        snprintf(msg, sizeof(msg), "job %lld is not in a state that can be %s",
                 (long long)c->req.ids[0], verb);
        reply_err(c, c->op.err, msg);
        return;
    }
    if (c->op.err != JOBQ_OK) {
        reply_err(c, c->op.err, writer_last_error(&c->srv->w));
        return;
    }
    json_t *o = ok_object();
    json_t *job = job_json(&c->row);
    if (c->attempts != NULL) {
        json_object_set_new(job, "attempts", attempts_json(c));
    }
    if (c->expires_at_ms > 0) {
        json_object_set_new(job, "expires_at", json_integer(c->expires_at_ms)); /* get only */
    }
    json_object_set_new(o, "job", job);
    send_json(c, o);
}

static void
done_get(wop *op)
{
    reply_job(container_of(op, call, op), "read");
}

static int
exec_cancel(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    return lifecycle_cancel(st, c->req.ids[0], now_ms, false, &c->row, &c->old_state);
}

static void
done_cancel(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_ESTATE) {
        /* Running: it is stopped where it runs and the reply waits for the recorded
         * outcome. A job claimed but not yet started is found on the next try. */
        if (waits_cancel_running(c) || cluster_cancel_elsewhere(c)) {
            return; /* cluster_cancel_elsewhere: another node runs it (PostgreSQL) */
        }
    }
    if (op->err == JOBQ_OK) {
        qstate *q = queue_add(c->srv, c->row.queue);
        if (q != NULL) {
            waits_job_finished(c->srv, q, &c->row, c->old_state); /* counts and waiters */
        }
        log_info("job_cancelled", "job=%lld queue=%s", (long long)c->row.id, c->row.queue);
    }
    reply_job(c, "cancelled");
}

static int
exec_list(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    list_filter f = {.queue = c->req.queue,
                     .state = c->req.state,
                     .after_id = c->req.after_id,
                     .limit = c->req.limit};
    return store_list(st, &f, c->rows, &c->nrows, &c->more);
}

static void
done_list(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
        return;
    }
    json_t *o = ok_object();
    json_t *jobs = json_array();
    for (size_t i = 0; i < c->nrows; i++) {
        json_array_append_new(jobs, job_json(&c->rows[i]));
    }
    json_object_set_new(o, "jobs", jobs);
    /* null on the last page, even one that is exactly full: no empty page after it. */
    json_object_set_new(
        o, "next", c->more && c->nrows > 0 ? json_integer(c->rows[c->nrows - 1].id) : json_null());
    send_json(c, o);
}

/* made_ready: the job of c->row went from c->old_state to ready: counts, then a claim. */
static void
made_ready(call *c)
{
    qstate *q = queue_add(c->srv, c->row.queue);
    if (q != NULL) {
        queue_count_move(q, c->old_state, JOBQ_READY);
        sched_dispatch(c->srv, q);
    }
}

static int
exec_retry(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    return store_retry(st, c->req.ids[0], now_ms, &c->row, &c->old_state);
}

static void
done_retry(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_OK) {
        made_ready(c);
        log_info("job_retried", "job=%lld queue=%s", (long long)c->row.id, c->row.queue);
    }
    reply_job(c, "retried (only dead and cancelled jobs are)");
}

static void
collect_name(void *arg, const char *queue)
{
    call *c = arg;
    char *name = strdup(queue);
    if (name != NULL) {
        c->names[c->nnames++] = name;
    }
}

static int
exec_retry_bulk(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    size_t n;
    return store_retry_bulk(st, c->req.queue, c->req.state, now_ms, RETRY_CHUNK, collect_name, c,
                            &n);
}

/* done_retry_bulk: one chunk is committed; the next goes in its own transaction so a bulk
 * retry of millions never holds the writer for long. */
static void
done_retry_bulk(wop *op)
{
    call *c = container_of(op, call, op);
    server *s = c->srv;
    size_t n = c->nnames;
    for (size_t i = 0; i < c->nnames; i++) {
        qstate *q = op->err == JOBQ_OK ? queue_add(s, c->names[i]) : NULL;
        if (q != NULL) {
            queue_count_move(q, c->req.state, JOBQ_READY);
        }
        free(c->names[i]);
    }
    c->nnames = 0;
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&s->w));
        return;
    }
    c->retried += n;
    sched_dispatch_all(s);
    if (n == RETRY_CHUNK) {
        writer_push(&s->w, &c->op);
        return;
    }
    log_info("jobs_retried", "queue=%s state=%s jobs=%zu", c->req.queue ? c->req.queue : "*",
             jobq__state_name(c->req.state), c->retried);
    json_t *o = ok_object();
    json_object_set_new(o, "retried", json_integer((json_int_t)c->retried));
    send_json(c, o);
}

static void
start_retry(call *c)
{
    if (c->req.nids == 0) {
        c->names = calloc(RETRY_CHUNK, sizeof(*c->names));
        if (c->names == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        call_store(c, exec_retry_bulk, done_retry_bulk);
        return;
    }
    call_store(c, exec_retry, done_retry);
}

static int
exec_explain(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    int err = store_get(st, c->req.ids[0], &c->row);
    if (err == JOBQ_OK && c->row.state == JOBQ_READY) {
        err = store_ready_ahead(st, &c->row, 100000, &c->ahead);
    }
    if (err == JOBQ_OK && c->row.state == JOBQ_READY && c->row.group_key != NULL) {
        err = store_key_running(st, c->row.queue, c->row.group_key, 1000000, &c->key_running);
    }
    if (err == JOBQ_OK && c->row.state == JOBQ_WAITING) {
        size_t n = 0;
        err = store_waiting_for(st, c->row.id, c->parents,
                                sizeof(c->parents) / sizeof(c->parents[0]), &n);
        c->nparents = n;
    }
    c->expires_at_ms = 0;
    if (err == JOBQ_OK) {
        err = store_job_expiry(st, c->row.id, &c->expires_at_ms);
    }
    return err;
}

/* fmt_time: local time of ms, "YYYY-MM-DD HH:MM:SS". */
static const char *
fmt_time(char *buf, size_t len, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

/* first_line: the error's first line, shortened. */
static const char *
first_line(char *buf, size_t len, const char *s)
{
    snprintf(buf, len, "%s", s ? s : "");
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static void
done_explain(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        reply_job(c, "explained");
        return;
    }
    server *s = c->srv;
    const job_row *r = &c->row;
    qstate *q = queue_find(s, r->queue);
    char why[1024], t1[32], e[200];
    const char *reason = "unknown";
    switch (r->state) {
    case JOBQ_WAITING: {
        reason = "waiting";
        size_t n =
            (size_t)snprintf(why, sizeof(why), "waiting for job%s", c->nparents == 1 ? "" : "s");
        for (size_t i = 0; i < c->nparents && n < sizeof(why); i++) {
            n += (size_t)snprintf(why + n, sizeof(why) - n, "%s %lld", i ? "," : "",
                                  (long long)c->parents[i]);
        }
        if (n < sizeof(why)) {
            snprintf(why + n, sizeof(why) - n, " (submitted with \"after\") to end");
        }
        break;
    }
    case JOBQ_SCHEDULED:
        reason = "scheduled";
        snprintf(why, sizeof(why), "scheduled until %s", fmt_time(t1, sizeof(t1), r->run_at_ms));
        break;
    case JOBQ_RETRYING:
        reason = "backoff";
        snprintf(why, sizeof(why),
                 "waiting for its backoff until %s after attempt %d of %d failed: %s",
                 fmt_time(t1, sizeof(t1), r->run_at_ms), r->attempt, r->max_attempts,
                 first_line(e, sizeof(e), r->error));
        if (q != NULL && q->br.state == BREAKER_OPEN) {
            size_t n = strlen(why);
            snprintf(why + n, sizeof(why) - n, "; then the circuit of queue %s is open until %s",
                     r->queue, fmt_time(t1, sizeof(t1), q->br.until_ms));
        }
        break;
    case JOBQ_RUNNING:
        reason = "running";
        snprintf(why, sizeof(why), "running since %s (attempt %d of %d)",
                 fmt_time(t1, sizeof(t1), r->started_at_ms), r->attempt, r->max_attempts);
        break;
    case JOBQ_SUCCEEDED:
        reason = "finished";
        snprintf(why, sizeof(why), "finished: succeeded at %s",
                 fmt_time(t1, sizeof(t1), r->finished_at_ms));
        break;
    case JOBQ_DEAD:
        reason = "finished";
        snprintf(why, sizeof(why), "finished: dead after %d attempt%s: %s", r->attempt,
                 r->attempt == 1 ? "" : "s", first_line(e, sizeof(e), r->error));
        break;
    case JOBQ_CANCELLED:
        reason = "finished";
        snprintf(why, sizeof(why), "finished: cancelled at %s",
                 fmt_time(t1, sizeof(t1), r->finished_at_ms));
        break;
    case JOBQ_READY:
        /* What stops every consumer comes first: a paused remote queue is paused. */
        if (q == NULL) {
            reason = "no_consumer";
            snprintf(why, sizeof(why), "ready: queue %s is not configured; nothing runs it",
                     r->queue);
        } else if (q->paused) {
            reason = "paused";
            snprintf(why, sizeof(why), "ready, but queue %s is paused (jobq resume %s)", r->queue,
                     r->queue);
        } else if (s->draining) {
            reason = "shutting_down";
            snprintf(why, sizeof(why), "ready, but jobqd is shutting down");
        } else if (jobq__now_ms() < q->slow_until_ms) {
            reason = "slowed_down";
            snprintf(why, sizeof(why), "ready, but queue %s starts nothing until %s: %s", r->queue,
                     fmt_time(t1, sizeof(t1), q->slow_until_ms), q->slow_why);
        } else if (q->br.state == BREAKER_OPEN) {
            reason = "circuit_open";
            char cause[96];
            breaker_describe(&q->br, cause, sizeof(cause));
            snprintf(why, sizeof(why), "ready, but the circuit of queue %s is open until %s: %s",
                     r->queue, fmt_time(t1, sizeof(t1), q->br.until_ms), cause);
        } else if (q->br.state == BREAKER_HALF_OPEN && q->br.probes_started >= q->br.rule.probes) {
            reason = "circuit_half_open";
            snprintf(why, sizeof(why),
                     "ready, but the circuit of queue %s is half-open: waiting for the outcome of "
                     "its probe",
                     r->queue);
        } else if (r->group_key != NULL && q->conf->key_concurrency > 0 &&
                   c->key_running >= q->conf->key_concurrency) {
            reason = "key_busy";
            snprintf(why, sizeof(why),
                     "ready, but key busy (%lld running): key \"%s\" of queue %s runs at most "
                     "%d at once (key_concurrency)",
                     (long long)c->key_running, r->group_key, r->queue, q->conf->key_concurrency);
        } else if (queue_is_remote(q)) {
            reason = "no_consumer";
            snprintf(why, sizeof(why),
                     "ready: queue %s has no command; it waits for a remote worker", r->queue);
        } else if (q->running >= q->conf->concurrency) {
            reason = "slots_busy";
            int n = snprintf(why, sizeof(why),
                             "ready: all %d concurrency slots of queue %s are busy "
                             "(running:",
                             q->conf->concurrency, r->queue);
            for (runner *rn = s->runners; rn != NULL && n > 0 && (size_t)n < sizeof(why) - 24;
                 rn = rn->next) {
                if (rn->q == q) {
                    n += snprintf(why + n, sizeof(why) - (size_t)n, " %lld",
                                  (long long)rn->a.job.id);
                }
            }
            if (n > 0 && (size_t)n < sizeof(why) - 2) {
                snprintf(why + n, sizeof(why) - (size_t)n, ")");
            }
        } else {
            reason = "next";
            snprintf(why, sizeof(why), "ready: %lld%s job%s of queue %s start before it",
                     (long long)c->ahead, c->ahead >= 100000 ? " or more" : "",
                     c->ahead == 1 ? "" : "s", r->queue);
        }
        break;
    }
    bool waiting = r->state == JOBQ_SCHEDULED || r->state == JOBQ_READY ||
                   r->state == JOBQ_RETRYING || r->state == JOBQ_WAITING;
    if (c->expires_at_ms > 0 && waiting) {
        size_t n = strlen(why);
        snprintf(why + n, sizeof(why) - n,
                 "; it expires (is cancelled) at %s unless started by then",
                 fmt_time(t1, sizeof(t1), c->expires_at_ms));
    } else if (r->state == JOBQ_CANCELLED && r->error != NULL &&
               strcmp(r->error, EXPIRED_ERROR) == 0) {
        size_t n = strlen(why);
        snprintf(why + n, sizeof(why) - n, ": expired, not started by %s",
                 fmt_time(t1, sizeof(t1), c->expires_at_ms));
    }
    json_t *o = ok_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "state", json_string(jobq__state_name(r->state)));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "explain", json_string(why));
    if (c->expires_at_ms > 0) {
        json_object_set_new(o, "expires_at", json_integer(c->expires_at_ms));
    }
    send_json(c, o);
}

void
op_submit(call *c)
{
    start_submit(c);
}

void
op_submit_batch(call *c)
{
    start_submit(c);
}

/* op_logs: a job's log lines after a cursor (progress.c keeps logs and holds the request). */
void
op_logs(call *c)
{
    progress_logs_request(c);
}

void
op_get(call *c)
{
    if (c->req.group_id != 0) {
        flow_group_request(c);
        return;
    }
    call_store(c, exec_get, done_get);
}

void
op_wait(call *c)
{
    if (c->req.group_id != 0) {
        flow_group_request(c);
        return;
    }
    wait_jobs(c);
}

void
op_cancel(call *c)
{
    call_store(c, exec_cancel, done_cancel);
}

void
op_list(call *c)
{
    c->rows = calloc((size_t)c->req.limit, sizeof(*c->rows));
    if (c->rows == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    call_store(c, exec_list, done_list);
}

void
op_retry(call *c)
{
    start_retry(c);
}

void
op_explain(call *c)
{
    call_store(c, exec_explain, done_explain);
}

/* exec_promote: a scheduled or retrying job becomes ready now; its attempts stay. */
static int
exec_promote(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    call *c = container_of(op, call, op);
    int state;
    int err = store_job_state(st, c->req.ids[0], &state);
    if (err != JOBQ_OK) {
        return err;
    }
    if (state != JOBQ_SCHEDULED && state != JOBQ_RETRYING) {
        return JOBQ_ESTATE;
    }
    c->old_state = state;
    err = store_job_set_state(st, c->req.ids[0], state, JOBQ_READY, 0, NULL);
    return err == JOBQ_OK ? store_get(st, c->req.ids[0], &c->row) : err;
}

static void
done_promote(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_OK) {
        made_ready(c);
        log_info("job_promoted", "job=%lld queue=%s was=%s", (long long)c->row.id, c->row.queue,
                 jobq__state_name(c->old_state));
    }
    reply_job(c, "promoted (only scheduled and retrying jobs are)");
}

void
op_promote(call *c)
{
    call_store(c, exec_promote, done_promote);
}
