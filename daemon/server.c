/* server.c: jobqd's core on the loop thread: request dispatch, queue counts, drain. */
#include "server.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "flow.h"
#include "codec.h"
#include "hold.h"
#include "http.h"
#include "lifecycle.h"
#include "log.h"
#include "monitor.h"
#include "periodic.h"
#include "runner.h"
#include "scheduler.h"
#include "webhook.h"
#include "workers.h"

/* A job running during this many crashes of jobqd is dead: a suspected poison job. */
#define POISON_CRASHES 3
/* Jobs made ready again by one bulk retry transaction. */
#define RETRY_CHUNK 1000
/* Attempts shown by get. */
#define MAX_ATTEMPTS_SHOWN 1000

/* One request in progress: the decoded request, its store operation and its outputs. */

/* A held wait (or a cancel of a running job): replied when its return_when is met (every
 * named job ended, the first ended, or the first failed). Its hold (hold.c) has the timer
 * and the slot; c->hold_data points here. */
typedef struct waiter {
    call *c;
    json_t *jobs;     /* snapshots, in the order of c->req.ids */
    size_t remaining; /* jobs not ended yet */
    bool cancel;      /* a cancel of a running job: replied with the cancelled job */
    int when;         /* the wait's return_when (WAIT_ALL for a cancel) */
    int64_t first;    /* the job whose end answered it (0: none, or return_when all) */
    bool answering;   /* in server_job_finished's list of waits to answer */
    wait_link *links; /* its entries in the hash */
    struct waiter *next_done; /* server_job_finished's list of waits to answer */
} waiter;

/* One (job id -> waiter) entry of the server's hash: unlinked in O(1), so that dropping or
 * answering thousands of waits on one job costs each its own entries only. */
struct wait_link {
    int64_t id; /* 0 once the job ended */
    waiter *w;
    size_t index;  /* into w->jobs */
    size_t bucket; /* of s->waits */
    wait_link *next, *prev;
    wait_link *own; /* the waiter's next entry */
};

static bool
job_ended(int state)
{
    return state == JOBQ_SUCCEEDED || state == JOBQ_DEAD || state == JOBQ_CANCELLED;
}

/* ---- replies ---- */

void
send_json(call *c, json_t *obj)
{
    if (hold_gone(c)) {
        json_decref(obj);
        call_drop(c);
        return;
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        static const char oom[] =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        intake_reply(c->ic, oom, sizeof(oom) - 1);
    } else {
        intake_reply(c->ic, text, strlen(text));
        free(text);
    }
    call_free(c);
}

/* reply_error: sends {"ok":false,"error":{code,message}} and logs it. */
void
reply_error(call *c, const char *code, const char *message)
{
    char q[300];
    log_info("request_error", "code=%s msg=%s", code, log_quote(q, sizeof(q), message));
    send_json(c,
              json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", message));
}

void
reply_err(call *c, int err, const char *message)
{
    reply_error(c, jobq__err_code(err), message);
}

json_t *
ok_object(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    return o;
}

json_t *
nullable_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
nullable_time(int64_t ms)
{
    return ms != 0 ? json_integer(ms) : json_null();
}

/* job_json: the job object of proto/PROTOCOL.md. */
json_t *
job_json(const job_row *r)
{
    json_t *payload = json_loads(r->payload, JSON_DECODE_ANY, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "queue", json_string(r->queue));
    json_object_set_new(o, "payload", payload != NULL ? payload : json_string(r->payload));
    json_object_set_new(o, "priority", json_integer(r->priority));
    json_object_set_new(o, "state", json_string(jobq__state_name(r->state)));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    json_object_set_new(o, "max_attempts", json_integer(r->max_attempts));
    json_object_set_new(o, "timeout", json_integer(r->timeout_ms));
    json_object_set_new(o, "key", nullable_str(r->key));
    json_object_set_new(o, "run_at", json_integer(r->run_at_ms));
    json_object_set_new(o, "created_at", json_integer(r->created_at_ms));
    json_object_set_new(o, "started_at", nullable_time(r->started_at_ms));
    json_object_set_new(o, "finished_at", nullable_time(r->finished_at_ms));
    json_object_set_new(o, "result", nullable_str(r->result));
    json_object_set_new(o, "error", nullable_str(r->error));
    if (r->group_id != 0) {
        json_object_set_new(o, "group", json_integer(r->group_id));
    }
    return o;
}

/* ---- queues ---- */

/* queue_hash: FNV-1a of a queue name. */
static size_t
queue_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

qstate *
server_queue(server *s, const char *name)
{
    if (s->nqbuckets == 0) {
        return NULL;
    }
    for (qstate *q = s->qbuckets[queue_hash(name) & (s->nqbuckets - 1)]; q != NULL; q = q->hnext) {
        if (strcmp(q->name, name) == 0) {
            return q;
        }
    }
    return NULL;
}

/* queue_rehash: keeps a bucket per queue at least. Returns false on out of memory. */
static bool
queue_rehash(server *s)
{
    if (s->nqueues < s->nqbuckets) {
        return true;
    }
    size_t n = s->nqbuckets ? s->nqbuckets * 2 : 64;
    qstate **b = calloc(n, sizeof(*b));
    if (b == NULL) {
        return false;
    }
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        size_t k = queue_hash(q->name) & (n - 1);
        q->hnext = b[k];
        b[k] = q;
    }
    free(s->qbuckets);
    s->qbuckets = b;
    s->nqbuckets = n;
    return true;
}

qstate *
server_queue_add(server *s, const char *name)
{
    qstate *q = server_queue(s, name);
    if (q != NULL) {
        return q;
    }
    if (!queue_rehash(s)) {
        return NULL;
    }
    if (s->nqueues == s->capqueues) {
        size_t cap = s->capqueues ? s->capqueues * 2 : 16;
        qstate **nq = realloc(s->queues, cap * sizeof(*nq));
        if (nq == NULL) {
            return NULL;
        }
        s->queues = nq;
        s->capqueues = cap;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL || (q->name = strdup(name)) == NULL) {
        free(q);
        return NULL;
    }
    const queue_conf *qc = config_queue(s->cfg, name);
    if (qc != NULL) {
        q->conf = qc;
        q->configured = true;
    } else {
        config_queue_defaults(&q->own_conf);
        q->conf = &q->own_conf;
        s->nunconfigured++;
    }
    sched_breaker_init(s, q);
    s->queues[s->nqueues++] = q;
    size_t k = queue_hash(name) & (s->nqbuckets - 1);
    q->hnext = s->qbuckets[k];
    s->qbuckets[k] = q;
    return q;
}

qstate *
server_queue_admit(server *s, const char *name, const char **code, char *msg, size_t msglen)
{
    qstate *q = server_queue(s, name);
    if (q != NULL) {
        return q;
    }
    if (!s->cfg->allow_unknown_queues) {
        *code = "unknown_queue";
        snprintf(msg, msglen,
                 "queue \"%s\" is not configured; add a [queue.%s] section to the config or set "
                 "allow_unknown_queues = true",
                 name, name);
        return NULL;
    }
    if (s->nunconfigured >= s->cfg->max_queues) {
        *code = "too_many_queues";
        snprintf(msg, msglen,
                 "queue \"%s\" would be created, but jobqd already keeps %zu queues without a "
                 "[queue.NAME] section, its limit (max_queues); use an existing queue, add a "
                 "[queue.%s] section, or raise max_queues",
                 name, s->nunconfigured, name);
        return NULL;
    }
    q = server_queue_add(s, name);
    if (q == NULL) {
        *code = "internal";
        snprintf(msg, msglen, "out of memory");
    }
    return q;
}

void
server_total(qstate *q, enum total_kind kind, uint64_t n)
{
    q->totals[kind] += n;
    enum series_kind sk = kind == TOTAL_SUBMITTED   ? SERIES_SUBMITTED
                          : kind == TOTAL_SUCCEEDED ? SERIES_SUCCEEDED
                          : kind == TOTAL_FAILED    ? SERIES_FAILED
                                                    : SERIES_KINDS;
    if (sk != SERIES_KINDS) {
        series_add(&q->series, sk, jobq__now_ms() / 1000, (uint32_t)n);
    }
}

/* The event counters follow the moves: one place sees every transition. */
void
server_count_move(qstate *q, int from, int to)
{
    if (from < 0) {
        server_total(q, TOTAL_SUBMITTED, 1);
    }
    switch (to) {
    case JOBQ_RUNNING:
        server_total(q, TOTAL_STARTED, 1);
        break;
    case JOBQ_SUCCEEDED:
        server_total(q, TOTAL_SUCCEEDED, 1);
        break;
    case JOBQ_RETRYING:
        server_total(q, TOTAL_RETRIED, 1);
        break;
    case JOBQ_DEAD:
        server_total(q, TOTAL_DEAD, 1);
        break;
    case JOBQ_CANCELLED:
        server_total(q, TOTAL_CANCELLED, 1);
        break;
    default:
        break;
    }
    if (from >= 0 && from < JOBQ_NSTATES) {
        q->counts[from]--;
    }
    if (to >= 0 && to < JOBQ_NSTATES) {
        q->counts[to]++;
    }
}

/* ---- ops ---- */

void
call_free(call *c)
{
    if (c == NULL) {
        return;
    }
    hold_release(c);
    job_row_clear(&c->row);
    for (size_t i = 0; i < c->nattempts; i++) {
        attempt_row_clear(&c->attempts[i]);
    }
    free(c->attempts);
    for (size_t i = 0; i < c->nnames; i++) {
        free(c->names[i]);
    }
    free(c->names);
    for (size_t i = 0; i < c->nrows; i++) {
        job_row_clear(&c->rows[i]);
    }
    free(c->rows);
    free(c->specs);
    free(c->ids);
    free(c->dups);
    free(c->states);
    group_info_clear(&c->grp);
    json_decref(c->extra);
    json_decref(c->fetched);
    jobq__request_free(&c->req);
    free(c);
}

void
call_drop(call *c)
{
    intake_drop(c->ic);
    call_free(c);
}

static int
exec_submit(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    c->group_id = 0;
    if (c->req.group) {
        const req_job *oc = c->req.on_complete;
        group_spec g = {.size = c->req.njobs};
        if (oc != NULL) {
            const job_spec *ocs = &c->specs[c->req.njobs];
            g.oc_queue = ocs->queue;
            g.oc_payload = ocs->payload;
            g.oc_priority = ocs->priority;
            g.oc_max_attempts = ocs->max_attempts;
            g.oc_timeout_ms = ocs->timeout_ms;
        }
        int err = store_group_create(st, &g, now_ms, &c->group_id);
        if (err != JOBQ_OK) {
            c->failed_at = 0;
            return err;
        }
    }
    for (size_t i = 0; i < c->req.njobs; i++) {
        c->specs[i].group_id = c->group_id;
        int err =
            lifecycle_insert(st, &c->specs[i], now_ms, &c->ids[i], &c->dups[i], &c->states[i]);
        if (err != JOBQ_OK) {
            c->failed_at = i;
            c->missing_parent = err == JOBQ_ENOENT ? lifecycle_missing_parent(st) : 0;
            return err;
        }
    }
    /* Members cancelled at once (a parent had already failed) may complete the group. */
    return c->group_id != 0 ? lifecycle_group_settle(st, c->group_id, now_ms) : JOBQ_OK;
}

/* reply_submitted: the submit or submit_batch reply of proto/PROTOCOL.md, written directly
 * (it is the hot path: no JSON tree). */
static void
reply_submitted(call *c)
{
    char one[160];
    char *buf = one;
    size_t len;
    if (c->req.op == REQ_SUBMIT) {
        const char *st = jobq__state_name(c->states[0]);
        int n = snprintf(one, sizeof(one),
                         "{\"ok\":true,\"id\":%lld,\"state\":%s%s%s,\"duplicate\":%s}",
                         (long long)c->ids[0], st != NULL ? "\"" : "", st != NULL ? st : "null",
                         st != NULL ? "\"" : "", c->dups[0] ? "true" : "false");
        len = (size_t)n;
    } else {
        /* 21 bytes per id and per duplicate index at most, plus the frame and the group. */
        size_t cap = 96 + c->req.njobs * 44;
        if ((buf = malloc(cap)) == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        len = (size_t)snprintf(buf, cap, "{\"ok\":true,\"ids\":[");
        for (size_t i = 0; i < c->req.njobs; i++) {
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i > 0 ? "," : "",
                                    (long long)c->ids[i]);
        }
        len += (size_t)snprintf(buf + len, cap - len, "],\"duplicates\":[");
        bool first = true;
        for (size_t i = 0; i < c->req.njobs; i++) {
            if (c->dups[i]) {
                len += (size_t)snprintf(buf + len, cap - len, "%s%zu", first ? "" : ",", i);
                first = false;
            }
        }
        len += (size_t)snprintf(buf + len, cap - len, "]");
        if (c->group_id != 0) {
            len +=
                (size_t)snprintf(buf + len, cap - len, ",\"group\":%lld", (long long)c->group_id);
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
    call *c = container_of(op, call, op);
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        char msg[512];
        char missing[128];
        snprintf(missing, sizeof(missing),
                 "\"after\" names job %lld, which does not exist (or was deleted by retention)",
                 (long long)c->missing_parent);
        const char *what = op->err == JOBQ_ECONFLICT ? "the key is already used by a job with "
                                                       "another payload"
                           : op->err == JOBQ_EFULL   ? "the database disk is full; free space"
                                                       " and retry (nothing was stored)"
                           : op->err == JOBQ_ENOENT  ? missing
                                                     : writer_last_error(&s->w);
        if (c->req.op == REQ_SUBMIT_BATCH) {
            snprintf(msg, sizeof(msg), "jobs[%zu]: %s (nothing was submitted)", c->failed_at, what);
        } else {
            snprintf(msg, sizeof(msg), "%s", what);
        }
        reply_err(c, op->err, msg);
        return;
    }
    size_t added = 0;
    for (size_t i = 0; i < c->req.njobs; i++) {
        if (!c->dups[i]) {
            qstate *q = server_queue_add(s, c->specs[i].queue);
            if (q == NULL) {
                continue;
            }
            server_count_move(q, -1, c->states[i]);
            if (c->states[i] == JOBQ_SCHEDULED) {
                sched_note_due(s, c->specs[i].run_at_ms);
            } else if (c->states[i] == JOBQ_CANCELLED) {
                sched_sweep_soon(s, q, JOBQ_CANCELLED);
            } else if (i + 1 == c->req.njobs ||
                       strcmp(c->specs[i].queue, c->specs[i + 1].queue) != 0) {
                sched_dispatch(s, q);
            }
            added++;
        }
    }
    log_debug("submitted", "jobs=%zu added=%zu first_id=%lld", c->req.njobs, added,
              (long long)c->ids[0]);
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
    int64_t pending = q->counts[JOBQ_SCHEDULED] + q->counts[JOBQ_READY] + q->counts[JOBQ_RUNNING] +
                      q->counts[JOBQ_RETRYING] + q->counts[JOBQ_WAITING];
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
    if (s->draining) {
        reply_error(c, "shutting_down",
                    "jobqd is shutting down and takes no new jobs; retry "
                    "when it is back");
        return;
    }
    c->specs = calloc(n + 1, sizeof(*c->specs)); /* + the group's on_complete job */
    c->ids = calloc(n, sizeof(*c->ids));
    c->dups = calloc(n, sizeof(*c->dups));
    c->states = calloc(n, sizeof(*c->states));
    if (c->specs == NULL || c->ids == NULL || c->dups == NULL || c->states == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
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
        qstate *q = server_queue(s, j->queue);
        if (q == NULL) {
            char msg[512];
            const char *code;
            bool batch = c->req.op == REQ_SUBMIT_BATCH;
            int off = batch ? snprintf(msg, sizeof(msg), "jobs[%zu]: ", i) : 0;
            q = server_queue_admit(s, j->queue, &code, msg + off, sizeof(msg) - (size_t)off);
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
        job_spec *sp = &c->specs[i];
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
    }
    c->op.exec = exec_submit;
    c->op.done = done_submit;
    c->op.writes = true;
    writer_push(&s->w, &c->op);
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

static void queue_op(call *c, int (*exec)(store *, wop *, int64_t), void (*done)(wop *),
                     bool writes);
static void server_check_drained(server *s);

static void
done_cancel(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_ESTATE) {
        /* Running: its runner kills it and the reply waits for the recorded outcome. A job
         * claimed but not yet started is found on the next try. */
        runner *r = runner_find(c->srv, c->req.ids[0]);
        job_row row;
        if (r != NULL && r->state == RUN_EXECUTING && !r->exited && r->kill == KILL_NONE) {
            row = r->a.job;
            runner_stop(r, KILL_CANCEL);
            wait_register(c, &row, 1, true);
            return;
        }
        if (workers_cancel(c->srv, c->req.ids[0], c)) {
            return;
        }
        const job_row *hooked = webhook_stop(c->srv, c->req.ids[0], KILL_CANCEL);
        if (hooked != NULL) {
            row = *hooked;
            wait_register(c, &row, 1, true);
            return;
        }
    }
    if (op->err == JOBQ_OK) {
        qstate *q = server_queue_add(c->srv, c->row.queue);
        if (q != NULL) {
            server_job_finished(c->srv, q, &c->row, c->old_state); /* counts and waiters */
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
    json_object_set_new(o, "next", c->more && c->nrows > 0 ? json_integer(c->rows[c->nrows - 1].id)
                                                           : json_null());
    send_json(c, o);
}

static int
exec_pause(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    return store_set_paused(st, c->req.queue, c->req.op == REQ_PAUSE);
}

static void
done_pause(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
        return;
    }
    qstate *q = server_queue_add(c->srv, c->req.queue);
    if (q != NULL) {
        q->paused = c->req.op == REQ_PAUSE;
        sched_dispatch(c->srv, q);
    }
    log_info(c->req.op == REQ_PAUSE ? "queue_paused" : "queue_resumed", "queue=%s", c->req.queue);
    json_t *o = ok_object();
    json_object_set_new(o, "queue", json_string(c->req.queue));
    json_object_set_new(o, "paused", json_boolean(c->req.op == REQ_PAUSE));
    send_json(c, o);
}

/* ---- wait ---- */

static size_t
bucket_of(const server *s, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 40) & (s->nbuckets - 1);
}

static void
unlink_waiter(server *s, waiter *w)
{
    while (w->links != NULL) {
        wait_link *l = w->links;
        w->links = l->own;
        if (l->prev != NULL) {
            l->prev->next = l->next;
        } else {
            s->waits[l->bucket] = l->next;
        }
        if (l->next != NULL) {
            l->next->prev = l->prev;
        }
        free(l);
    }
}

/* waiter_free: takes w out of the hash and frees it; its call stays. */
static void
waiter_free(server *s, waiter *w)
{
    unlink_waiter(s, w);
    w->c->hold_data = NULL;
    json_decref(w->jobs);
    free(w);
}

/* wait_met: whether a wait of return_when `when` is answered now that a job ended in state
 * and `remaining` of its jobs have not ended. */
static bool
wait_met(int when, int state, size_t remaining)
{
    switch (when) {
    case WAIT_FIRST:
        return true;
    case WAIT_FIRST_FAILURE:
        return state == JOBQ_DEAD || state == JOBQ_CANCELLED || remaining == 0;
    default:
        return remaining == 0;
    }
}

/* wait_decided: whether jobs already in states[0..n) (ended at finished_ms) answer a wait of
 * `when`; *firstp is then the job that answers it (0 for "all"): the first to end (first),
 * the first to fail, or the last to end when none failed (first_failure). Pure. */
static bool
wait_decided(int when, const int64_t *ids, const int *states, const int64_t *finished_ms, size_t n,
             int64_t *firstp)
{
    size_t pending = 0;
    size_t first = n, failed = n, last = n;
    for (size_t i = 0; i < n; i++) {
        if (!job_ended(states[i])) {
            pending++;
            continue;
        }
        if (first == n || finished_ms[i] < finished_ms[first]) {
            first = i;
        }
        if (last == n || finished_ms[i] >= finished_ms[last]) {
            last = i;
        }
        if (states[i] != JOBQ_SUCCEEDED && (failed == n || finished_ms[i] < finished_ms[failed])) {
            failed = i;
        }
    }
    *firstp = 0;
    switch (when) {
    case WAIT_FIRST:
        if (first == n) {
            return false;
        }
        *firstp = ids[first];
        return true;
    case WAIT_FIRST_FAILURE:
        if (failed != n) {
            *firstp = ids[failed];
            return true;
        }
        if (pending == 0 && last != n) {
            *firstp = ids[last];
            return true;
        }
        return false;
    default:
        return pending == 0;
    }
}

static const char *const when_names[] = {"all", "first", "first_failure"};

/* wait_answer: replies to the wait c with jobs (taken: job objects in the order of the ids).
 * states: what each job was when the wait was answered (NULL: as jobs shows it); cancelled:
 * the jobs the answer cancelled (taken; NULL: none). */
static void
wait_answer(call *c, json_t *jobs, const int *states, json_t *cancelled)
{
    json_t *ended = json_array();
    json_t *pending = json_array();
    bool done = true;
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        json_t *j = json_array_get(jobs, i);
        int st = states != NULL ? states[i]
                                : jobq__state_parse(json_string_value(json_object_get(j, "state")));
        const char *name = jobq__state_name(st);
        json_t *e = json_pack("{s:O, s:s}", "id", json_object_get(j, "id"), "state",
                              name != NULL ? name : "?");
        if (job_ended(st)) {
            json_array_append_new(ended, e);
        } else {
            done = false;
            json_array_append_new(pending, e);
        }
    }
    json_t *o = ok_object();
    json_object_set_new(o, "done", json_boolean(done));
    json_object_set_new(o, "jobs", jobs);
    int when = c->req.return_when;
    json_object_set_new(
        o, "return_when",
        json_string(when_names[when >= 0 && when <= WAIT_FIRST_FAILURE ? when : 0]));
    json_object_set_new(o, "first", c->wait_first != 0 ? json_integer(c->wait_first) : json_null());
    json_object_set_new(o, "ended", ended);
    json_object_set_new(o, "pending", pending);
    json_object_set_new(o, "cancelled", cancelled != NULL ? cancelled : json_array());
    if (c->req.group_id != 0) {
        json_object_set_new(o, "group", json_integer(c->req.group_id));
    }
    send_json(c, o);
}

/* wait_stop_running: a running loser of a wait with cancel_pending is cancelled as cancel
 * does (its process, remote lease or webhook delivery ends, recorded cancelled with why).
 * false if it is not running here (it ended meanwhile). */
static bool
wait_stop_running(server *s, int64_t id, const char *why)
{
    runner *r = runner_find(s, id);
    if (r != NULL && r->state == RUN_EXECUTING && !r->exited && r->kill == KILL_NONE) {
        snprintf(r->stop_why, sizeof(r->stop_why), "%s", why);
        runner_stop(r, KILL_CANCEL);
        return true;
    }
    return workers_stop(s, id, why) || webhook_cancel(s, id, why);
}

/* exec_wait_answer: the transaction that answers a wait with cancel_pending: reads every job
 * again and cancels those that have neither ended nor started, with the reason; running ones
 * are stopped by done_wait_answer. The loop decided which job answers the wait (the order in
 * which the outcomes committed); this transaction commits the cancels of that decision before
 * any claim queued after the winner's outcome (writer_push_first), so a loser that was not
 * running when the winner's end committed never starts. Work thread. */
static int
exec_wait_answer(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    char why[64];
    snprintf(why, sizeof(why), "lost a race to job %lld", (long long)c->wait_first);
    for (size_t i = 0; i < c->nrows; i++) {
        job_row_clear(&c->rows[i]);
    }
    for (size_t i = 0; i < c->req.nids; i++) {
        int64_t id = c->req.ids[i];
        int err = store_get(st, id, &c->rows[i]);
        if (err != JOBQ_OK) {
            return err;
        }
        c->states[i] = c->rows[i].state;
        if (job_ended(c->states[i]) || c->states[i] == JOBQ_RUNNING) {
            continue;
        }
        job_row_clear(&c->rows[i]);
        int old;
        if ((err = lifecycle_cancel_why(st, id, now_ms, false, why, &c->rows[i], &old)) !=
            JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_wait_answer(wop *op)
{
    call *c = container_of(op, call, op);
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&s->w));
        return;
    }
    char why[64];
    snprintf(why, sizeof(why), "lost a race to job %lld", (long long)c->wait_first);
    json_t *cancelled = json_array();
    json_t *jobs = json_array();
    for (size_t i = 0; i < c->req.nids; i++) {
        job_row *row = &c->rows[i];
        if (!job_ended(c->states[i]) && row->state == JOBQ_CANCELLED) {
            log_info("job_cancelled", "job=%lld queue=%s reason=lost_race winner=%lld",
                     (long long)row->id, row->queue, (long long)c->wait_first);
            json_array_append_new(cancelled, json_integer(row->id));
            qstate *q = server_queue_add(s, row->queue);
            if (q != NULL) {
                server_job_finished(s, q, row, c->states[i]); /* counts and waiters */
            }
        } else if (row->state == JOBQ_RUNNING && wait_stop_running(s, row->id, why)) {
            log_info("job_cancelling", "job=%lld queue=%s reason=lost_race winner=%lld",
                     (long long)row->id, row->queue, (long long)c->wait_first);
            json_array_append_new(cancelled, json_integer(row->id));
        }
        json_array_append_new(jobs, job_json(row));
    }
    wait_answer(c, jobs, c->states, cancelled);
}

/* wait_answer_pending: a wait whose condition is met, with cancel_pending and jobs still
 * pending, is answered by one transaction that also cancels them. false (nothing started)
 * when there is nothing to cancel or nobody waits for the reply any more: a client that left
 * cancels nothing. */
static bool
wait_answer_pending(call *c, const int *states)
{
    if (!c->req.cancel_pending || c->wait_first == 0 || hold_gone(c) || c->nrows != c->req.nids ||
        c->rows == NULL) {
        return false;
    }
    bool pending = false;
    for (size_t i = 0; i < c->req.nids; i++) {
        pending = pending || !job_ended(states[i]);
    }
    if (!pending) {
        return false;
    }
    int *st = malloc(c->req.nids * sizeof(*st));
    if (st == NULL) {
        return false;
    }
    free(c->states);
    c->states = st;
    c->op.exec = exec_wait_answer;
    c->op.done = done_wait_answer;
    c->op.writes = true;
    c->op.relaxed = false; /* an operator's intent: cancels */
    /* Ahead of the ops already queued: a claim queued before the decision finds the losers
     * cancelled, so a loser not started by the commit that ended the winner never starts. */
    writer_push_first(&c->srv->w, &c->op);
    return true;
}

/* waiter_finish: replies (or starts the answer's transaction) and frees. */
static void
waiter_finish(server *s, waiter *w)
{
    call *c = w->c;
    bool cancel = w->cancel;
    json_t *jobs = w->jobs;
    w->jobs = NULL;
    c->wait_first = w->first;
    hold_stop(c);
    waiter_free(s, w);
    if (cancel) {
        json_t *job = json_incref(json_array_get(jobs, 0));
        json_decref(jobs);
        const char *st = json_string_value(json_object_get(job, "state"));
        if (st != NULL && strcmp(st, "cancelled") == 0) {
            json_t *o = ok_object();
            json_object_set_new(o, "job", job);
            send_json(c, o);
        } else {
            json_decref(job);
            char msg[160];
            snprintf(msg, sizeof(msg), "job %lld finished (%s) before it could be cancelled",
                     (long long)c->req.ids[0], st ? st : "?");
            reply_error(c, "invalid_state", msg);
        }
        return;
    }
    if (c->req.cancel_pending) {
        size_t n = json_array_size(jobs);
        int *states = malloc((n > 0 ? n : 1) * sizeof(*states));
        if (states != NULL) {
            for (size_t i = 0; i < n; i++) {
                states[i] = jobq__state_parse(
                    json_string_value(json_object_get(json_array_get(jobs, i), "state")));
            }
            bool started = n == c->req.nids && wait_answer_pending(c, states);
            free(states);
            if (started) {
                json_decref(jobs);
                return;
            }
        }
    }
    wait_answer(c, jobs, NULL, NULL);
}

static int
exec_wait_read(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    for (size_t i = 0; i < c->req.nids; i++) {
        int err = store_get(st, c->req.ids[i], &c->rows[i]);
        if (err != JOBQ_OK) {
            c->failed_at = i;
            return err;
        }
        c->nrows = i + 1;
    }
    return JOBQ_OK;
}

static void start_wait(call *c);

/* wait_hold_end: the hold of a wait or cancel ended before its jobs did. A wait's time is up:
 * re-read the jobs and reply as they are now. */
static void
wait_hold_end(call *c, hold_end why)
{
    server *s = c->srv;
    waiter_free(s, c->hold_data);
    switch (why) {
    case HOLD_TIMEOUT:
        for (size_t i = 0; i < c->nrows; i++) {
            job_row_clear(&c->rows[i]);
        }
        free(c->rows); /* start_wait allocates them again */
        c->rows = NULL;
        c->nrows = 0;
        c->reread = true;
        start_wait(c);
        return;
    case HOLD_DROPPED:
        call_drop(c);
        return;
    case HOLD_SHUTDOWN:
        reply_error(c, "shutting_down", "jobqd is shutting down; wait again when it is back");
        return;
    }
}

/* rows_decided: wait_decided over rows. */
static bool
rows_decided(call *c, const job_row *rows, size_t n, int *states, int64_t *firstp)
{
    int64_t *ids = malloc((n > 0 ? n : 1) * sizeof(*ids));
    int64_t *fin = malloc((n > 0 ? n : 1) * sizeof(*fin));
    bool met = false;
    *firstp = 0;
    if (ids != NULL && fin != NULL) {
        for (size_t i = 0; i < n; i++) {
            ids[i] = rows[i].id;
            fin[i] = rows[i].finished_at_ms;
            states[i] = rows[i].state;
        }
        met = wait_decided(c->req.return_when, ids, states, fin, n, firstp);
    }
    free(ids);
    free(fin);
    return met;
}

void
wait_register(call *c, job_row *rows, size_t n, bool cancel)
{
    server *s = c->srv;
    waiter *w = calloc(1, sizeof(*w));
    int *states = calloc(n > 0 ? n : 1, sizeof(*states));
    if (w == NULL || states == NULL || (w->jobs = json_array()) == NULL) {
        free(w);
        free(states);
        reply_error(c, "internal", "out of memory");
        return;
    }
    w->c = c;
    w->cancel = cancel;
    w->when = cancel ? WAIT_ALL : c->req.return_when;
    c->hold_data = w;
    bool met = !cancel && rows_decided(c, rows, n, states, &w->first);
    free(states);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(w->jobs, job_json(&rows[i]));
        if (job_ended(rows[i].state)) {
            continue;
        }
        wait_link *l = calloc(1, sizeof(*l));
        if (l == NULL) {
            continue; /* out of memory: this job reports as it is now, at the timeout */
        }
        l->id = rows[i].id;
        l->w = w;
        l->index = i;
        l->bucket = bucket_of(s, l->id);
        l->next = s->waits[l->bucket];
        if (l->next != NULL) {
            l->next->prev = l;
        }
        s->waits[l->bucket] = l;
        l->own = w->links;
        w->links = l;
        w->remaining++;
    }
    if (w->remaining == 0 || met) {
        waiter_finish(s, w);
        return;
    }
    if (!hold_start(c, cancel ? HOLD_CANCEL : HOLD_WAIT, cancel ? -1 : c->req.timeout_ms,
                    wait_hold_end)) {
        waiter_free(s, w);
        reply_error(c, "internal", "out of memory");
    }
}

static void
done_wait_read(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        char msg[128];
        if (op->err == JOBQ_ENOENT) {
            snprintf(msg, sizeof(msg), "no job with id %lld", (long long)c->req.ids[c->failed_at]);
        } else {
            snprintf(msg, sizeof(msg), "%s", writer_last_error(&c->srv->w));
        }
        reply_err(c, op->err, msg);
        return;
    }
    if (c->req.timeout_ms == 0 || c->reread || hold_gone(c)) {
        /* A poll, or the re-read after a timeout: reply with the jobs as they are (a met
         * condition with cancel_pending cancels the pending ones first). */
        int *states = calloc(c->nrows > 0 ? c->nrows : 1, sizeof(*states));
        if (states == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        bool met = rows_decided(c, c->rows, c->nrows, states, &c->wait_first);
        if (!met) {
            c->wait_first = 0;
        }
        bool started = met && wait_answer_pending(c, states);
        free(states);
        if (started) {
            return;
        }
        json_t *jobs = json_array();
        for (size_t i = 0; i < c->nrows; i++) {
            json_array_append_new(jobs, job_json(&c->rows[i]));
        }
        wait_answer(c, jobs, NULL, NULL);
        return;
    }
    wait_register(c, c->rows, c->nrows, false);
}

static void
start_wait(call *c)
{
    c->rows = calloc(c->req.nids, sizeof(*c->rows));
    if (c->rows == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    c->op.exec = exec_wait_read;
    c->op.done = done_wait_read;
    c->op.writes = false;
    writer_push(&c->srv->w, &c->op);
}

void
wait_jobs(call *c)
{
    start_wait(c);
}

void
server_job_finished(server *s, qstate *q, const job_row *row, int old_state)
{
    server_count_move(q, old_state, row->state);
    if (row->state == JOBQ_RETRYING) {
        sched_note_due(s, row->run_at_ms);
    }
    if (job_ended(row->state)) {
        sched_sweep_soon(s, q, row->state);
        waiter *done = NULL;
        for (wait_link *l = s->waits[bucket_of(s, row->id)]; l != NULL; l = l->next) {
            if (l->id == row->id) {
                waiter *w = l->w;
                json_array_set_new(w->jobs, l->index, job_json(row));
                l->id = 0; /* matched: a job ends once */
                w->remaining--;
                if (!w->answering && wait_met(w->when, row->state, w->remaining)) {
                    w->answering = true;
                    w->first = w->when != WAIT_ALL ? row->id : 0;
                    w->next_done = done;
                    done = w;
                }
            }
        }
        /* Answered once the bucket is walked: each answer frees its own entries only. A wait
         * with cancel_pending queues its transaction here, ahead of any queued claim and of
         * the one the dispatch below may queue: a ready loser is cancelled before a claim. */
        while (done != NULL) {
            waiter *w = done;
            done = w->next_done;
            waiter_finish(s, w);
        }
    }
    sched_dispatch(s, q);
    if (s->draining) {
        server_check_drained(s);
    }
}

/* ---- retry ---- */

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
        qstate *q = server_queue_add(c->srv, c->row.queue);
        if (q != NULL) {
            server_count_move(q, c->old_state, JOBQ_READY);
            sched_dispatch(c->srv, q);
        }
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
        qstate *q = op->err == JOBQ_OK ? server_queue_add(s, c->names[i]) : NULL;
        if (q != NULL) {
            server_count_move(q, c->req.state, JOBQ_READY);
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
        queue_op(c, exec_retry_bulk, done_retry_bulk, true);
        return;
    }
    queue_op(c, exec_retry, done_retry, true);
}

/* ---- backup ---- */

/* A backup runs on the thread pool with a connection of its own (the writer goes on). */
typedef struct backup_op {
    uv_work_t work;
    call *c;
    char *db_path;
    char *dir; /* where backups may go: backup_dir, or the database's directory */
    int err;
    char msg[512];
    int64_t ms;
} backup_op;

/* backup_check: whether dest is a new file inside dir: an absolute path without "." or ".."
 * components, whose folder exists and lies within dir (symbolic links resolved), and that
 * does not exist yet. Returns JOBQ_OK, or JOBQ_EINVAL with the reason in msg. Thread pool
 * (it touches the file system). */
static int
backup_check(const char *dir, const char *dest, char *msg, size_t len)
{
    if (dest[0] != '/') {
        snprintf(msg, len, "backup path %.300s is not absolute", dest);
        return JOBQ_EINVAL;
    }
    for (const char *p = dest; (p = strchr(p, '/')) != NULL; p++) {
        if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0 || strncmp(p, "/./", 3) == 0 ||
            strcmp(p, "/.") == 0) {
            snprintf(msg, len, "backup path %.300s has a \".\" or \"..\" component", dest);
            return JOBQ_EINVAL;
        }
    }
    const char *slash = strrchr(dest, '/');
    if (slash[1] == '\0') {
        snprintf(msg, len, "backup path %.300s names a folder, not a file", dest);
        return JOBQ_EINVAL;
    }
    char folder[PATH_MAX], real_folder[PATH_MAX], real_dir[PATH_MAX];
    snprintf(folder, sizeof(folder), "%.*s", slash == dest ? 1 : (int)(slash - dest), dest);
    if (realpath(dir, real_dir) == NULL) {
        snprintf(msg, len, "backup_dir %.300s is not usable: %s (set [server] backup_dir)", dir,
                 strerror(errno));
        return JOBQ_EINVAL;
    }
    if (realpath(folder, real_folder) == NULL) {
        snprintf(msg, len, "backup folder %.300s does not exist (%s)", folder, strerror(errno));
        return JOBQ_EINVAL;
    }
    size_t n = strlen(real_dir);
    bool inside = strncmp(real_folder, real_dir, n) == 0 &&
                  (real_folder[n] == '\0' || real_folder[n] == '/' || strcmp(real_dir, "/") == 0);
    if (!inside) {
        snprintf(msg, len,
                 "backup path %.150s is outside backup_dir %.150s (set [server] backup_dir)", dest,
                 real_dir);
        return JOBQ_EINVAL;
    }
    struct stat st;
    if (lstat(dest, &st) == 0) {
        snprintf(msg, len, "backup path %.300s already exists", dest);
        return JOBQ_EINVAL;
    }
    return JOBQ_OK;
}

static void
backup_work_cb(uv_work_t *w)
{
    backup_op *b = container_of(w, backup_op, work);
    int64_t t0 = jobq__now_ms();
    b->err = backup_check(b->dir, b->c->req.path, b->msg, sizeof(b->msg));
    if (b->err == JOBQ_OK) {
        b->err = store_backup(b->db_path, b->c->req.path, b->msg, sizeof(b->msg));
    }
    b->ms = jobq__now_ms() - t0;
}

static void
backup_after_cb(uv_work_t *w, int status)
{
    backup_op *b = container_of(w, backup_op, work);
    server *s = b->c->srv;
    s->backups--;
    if (status != 0 || b->err != JOBQ_OK) {
        reply_err(b->c, status != 0 ? JOBQ_EINTERNAL : b->err, b->msg);
    } else {
        log_info("backup_written", "path=%s ms=%lld", b->c->req.path, (long long)b->ms);
        json_t *o = ok_object();
        json_object_set_new(o, "path", json_string(b->c->req.path));
        json_object_set_new(o, "ms", json_integer(b->ms));
        send_json(b->c, o);
    }
    free(b->db_path);
    free(b->dir);
    free(b);
    server_check_drained(s);
}

/* backup_dir_dup: the folder backups may go to (malloc'd): backup_dir, or the database's. */
static char *
backup_dir_dup(const config *cfg)
{
    if (cfg->backup_dir != NULL) {
        return strdup(cfg->backup_dir);
    }
    const char *slash = strrchr(cfg->database, '/');
    if (slash == NULL) {
        return strdup(".");
    }
    return strndup(cfg->database, slash == cfg->database ? 1 : (size_t)(slash - cfg->database));
}

static void
start_backup(call *c)
{
    server *s = c->srv;
    if (c->req.path == NULL) {
        reply_error(c, "invalid_argument", "backup needs a path");
        return;
    }
    backup_op *b = calloc(1, sizeof(*b));
    if (b == NULL || (b->db_path = strdup(s->cfg->database)) == NULL ||
        (b->dir = backup_dir_dup(s->cfg)) == NULL) {
        if (b != NULL) {
            free(b->db_path);
        }
        free(b);
        reply_error(c, "internal", "out of memory");
        return;
    }
    b->c = c;
    snprintf(b->msg, sizeof(b->msg), "backup failed");
    s->backups++;
    if (uv_queue_work(s->loop, &b->work, backup_work_cb, backup_after_cb) != 0) {
        s->backups--;
        free(b->db_path);
        free(b->dir);
        free(b);
        reply_error(c, "internal", "cannot start the backup");
    }
}

/* ---- explain ---- */

static int
exec_explain(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    int err = store_get(st, c->req.ids[0], &c->row);
    if (err == JOBQ_OK && c->row.state == JOBQ_READY) {
        err = store_ready_ahead(st, &c->row, 100000, &c->ahead);
    }
    if (err == JOBQ_OK && c->row.state == JOBQ_WAITING) {
        size_t n = 0;
        err = store_waiting_for(st, c->row.id, c->parents,
                                sizeof(c->parents) / sizeof(c->parents[0]), &n);
        c->nparents = n;
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
    qstate *q = server_queue(s, r->queue);
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
        } else if (q->br.state == BREAKER_OPEN) {
            reason = "circuit_open";
            snprintf(why, sizeof(why),
                     "ready, but the circuit of queue %s is open until %s after %d consecutive "
                     "failures",
                     r->queue, fmt_time(t1, sizeof(t1), q->br.until_ms), q->br.threshold);
        } else if (q->br.state == BREAKER_HALF_OPEN && q->br.probes_started >= q->br.probes) {
            reason = "circuit_half_open";
            snprintf(why, sizeof(why),
                     "ready, but the circuit of queue %s is half-open: waiting for the outcome of "
                     "its probe",
                     r->queue);
        } else if (workers_is_remote(q)) {
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
    json_t *o = ok_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "state", json_string(jobq__state_name(r->state)));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "explain", json_string(why));
    send_json(c, o);
}

/* reply_stats: counts, paused and breaker of every queue, or of the queues the request
 * names (at most STATS_MAX_QUEUES; unknown ones are left out); with "series", totals, rates
 * and per-second series too. Only the plain reply of every queue, which may list thousands,
 * is written without building a JSON tree. */
static void
reply_stats(call *c)
{
    server *s = c->srv;
    size_t n = c->req.stats_some ? c->req.nqueues : s->nqueues;
    if (c->req.series || c->req.stats_some) {
        json_t *o = ok_object();
        json_t *queues = json_object();
        for (size_t i = 0; i < n; i++) {
            qstate *q = c->req.stats_some ? server_queue(s, c->req.queues[i]) : s->queues[i];
            if (q != NULL) {
                json_object_set_new(queues, q->name, monitor_queue_json(s, q, c->req.series));
            }
        }
        json_object_set_new(o, "queues", queues);
        send_json(c, o);
        return;
    }
    mbuf b = {0};
    mbuf_printf(&b, "{\"ok\":true,\"queues\":{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            mbuf_append(&b, ",", 1);
        }
        monitor_queue_counts(&b, s->queues[i]);
    }
    mbuf_printf(&b, "}}");
    if (b.failed) {
        free(b.data);
        reply_error(c, "internal", "out of memory");
        return;
    }
    intake_reply(c->ic, b.data, b.len);
    free(b.data);
    call_free(c);
}

static void
queue_op(call *c, int (*exec)(store *, wop *, int64_t), void (*done)(wop *), bool writes)
{
    c->op.exec = exec;
    c->op.done = done;
    c->op.writes = writes;
    writer_push(&c->srv->w, &c->op);
}

/* on_request: the intake's callback: decode, validate, dispatch. */
static void
on_request(void *arg, icall *ic, const char *body, size_t len)
{
    server *s = arg;
    call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        static const char oom[] =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        intake_reply(ic, oom, sizeof(oom) - 1);
        return;
    }
    c->srv = s;
    c->ic = ic;
    char err[512];
    if (len > s->cfg->max_message) {
        snprintf(err, sizeof(err),
                 "request of %zu bytes is over the limit of %zu bytes (max_message); split it, "
                 "e.g. into smaller batches",
                 len, s->cfg->max_message);
        reply_error(c, "too_large", err);
        return;
    }
    const char *code = jobq__request_decode(body, len, &s->limits, &c->req, err, sizeof(err));
    if (code != NULL) {
        reply_error(c, code, err);
        return;
    }
    if (s->cfg->auth_token != NULL) {
        intake_authenticated(ic); /* the token was checked: larger messages may follow */
    }
    switch (c->req.op) {
    case REQ_PING: {
        json_t *o = ok_object();
        json_object_set_new(o, "version", json_string(JOBQ_VERSION_STRING));
        json_object_set_new(o, "time", json_integer(jobq__now_ms()));
        send_json(c, o);
        return;
    }
    case REQ_SUBMIT:
    case REQ_SUBMIT_BATCH:
        start_submit(c);
        return;
    case REQ_GET:
        if (c->req.group_id != 0) {
            flow_group_request(c);
            return;
        }
        queue_op(c, exec_get, done_get, false);
        return;
    case REQ_CANCEL:
        queue_op(c, exec_cancel, done_cancel, true);
        return;
    case REQ_LIST:
        c->rows = calloc((size_t)c->req.limit, sizeof(*c->rows));
        if (c->rows == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        queue_op(c, exec_list, done_list, false);
        return;
    case REQ_STATS:
        reply_stats(c);
        return;
    case REQ_SCHEDULES: {
        json_t *o = ok_object();
        json_object_set_new(o, "schedules", periodic_json(s));
        send_json(c, o);
        return;
    }
    case REQ_PAUSE:
    case REQ_RESUME:
        if (!jobq__valid_queue_name(c->req.queue)) {
            reply_error(c, "invalid_argument", "field \"queue\" is not a valid queue name");
            return;
        }
        const char *qcode;
        if (server_queue_admit(s, c->req.queue, &qcode, err, sizeof(err)) == NULL) {
            reply_error(c, qcode, err);
            return;
        }
        queue_op(c, exec_pause, done_pause, true);
        return;
    case REQ_WAIT:
        if (!hold_admit(c, c->req.group_id != 0 ? HOLD_GROUP_WAIT : HOLD_WAIT)) {
            return;
        }
        if (c->req.group_id != 0) {
            flow_group_request(c);
            return;
        }
        start_wait(c);
        return;
    case REQ_RETRY:
        start_retry(c);
        return;
    case REQ_EXPLAIN:
        queue_op(c, exec_explain, done_explain, false);
        return;
    case REQ_BACKUP:
        start_backup(c);
        return;
    case REQ_FETCH:
        if (hold_admit(c, HOLD_FETCH)) {
            workers_request(c);
        }
        return;
    case REQ_ACK:
    case REQ_FAIL:
        /* With a fetch to follow, the call may be held like a fetch. */
        if (!c->req.then_fetch || hold_admit(c, HOLD_FETCH)) {
            workers_request(c);
        }
        return;
    case REQ_HEARTBEAT:
        workers_request(c);
        return;
    }
    reply_error(c, "unknown_op", "unknown op");
}

/* ---- start and drain ---- */

static void
count_cb(void *arg, const char *queue, int state, int64_t n)
{
    server *s = arg;
    qstate *q = server_queue_add(s, queue);
    if (q != NULL && state >= 0 && state < JOBQ_NSTATES) {
        q->counts[state] += n;
    }
}

/* runs_locally: whether jobqd runs the jobs of queue itself (a command or a url), so that one
 * of them may have crashed it; remote workers' jobs run elsewhere. */
static bool
runs_locally(void *arg, const char *queue)
{
    qstate *q = server_queue(arg, queue);
    return q != NULL && !workers_is_remote(q);
}

static void
recovered_cb(void *arg, const char *queue, int64_t id, bool poisoned)
{
    (void)arg;
    if (poisoned) {
        log_warn("job_poisoned", "job=%lld queue=%s crashes=%d next=dead", (long long)id, queue,
                 POISON_CRASHES);
    } else {
        log_info("job_recovered", "job=%lld queue=%s next=ready", (long long)id, queue);
    }
}

static void
paused_cb(void *arg, const char *queue)
{
    qstate *q = server_queue_add(arg, queue);
    if (q != NULL) {
        q->paused = true;
    }
}

static void
closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* server_check_drained: once draining and nothing is left in flight (no runner, no store
 * operation), closes every handle so the loop ends. */
static void
server_check_drained(server *s)
{
    if (!s->draining || s->closing || s->nrunning > 0 || s->nleases > 0 || s->backups > 0 ||
        !writer_idle(&s->w)) {
        return;
    }
    s->closing = true;
    hold_shutdown(s, HOLD_WAIT);
    hold_shutdown(s, HOLD_CANCEL);
    hold_shutdown(s, HOLD_GROUP_WAIT);
    workers_drain(s); /* no claim is in flight now: every held fetch is answered */
    if (s->in != NULL) {
        intake_close(s->in);
        s->in = NULL;
    }
    http_close(s->http);
    s->http = NULL;
    sched_close(s);
    periodic_close(s);
    workers_close(s);
    webhook_close(s);
    uv_close((uv_handle_t *)&s->grace_timer, closed_cb);
    uv_close((uv_handle_t *)&s->sig_term, closed_cb);
    uv_close((uv_handle_t *)&s->sig_int, closed_cb);
    log_info("drained", "%s", "");
}

static void
writer_idle_cb(void *arg)
{
    server_check_drained(arg);
}

/* grace_cb: shutdown_grace is over: what still runs is killed and put back to ready. */
static void
grace_cb(uv_timer_t *t)
{
    server *s = t->data;
    log_warn("grace_expired", "killing=%d", s->nrunning);
    for (runner *r = s->runners; r != NULL; r = r->next) {
        runner_stop(r, KILL_SHUTDOWN);
    }
    workers_requeue_all(s);
    webhook_stop_all(s);
}

void
server_drain(server *s)
{
    if (s->draining) {
        return;
    }
    s->draining = true;
    log_info("draining", "running=%d pending_requests=%zu grace_ms=%lld", s->nrunning,
             s->in ? intake_pending(s->in) : (size_t)0, (long long)s->cfg->shutdown_grace_ms);
    workers_drain(s);
    /* Armed even with nothing running: a claim in flight may still start a job. */
    uv_timer_start(&s->grace_timer, grace_cb, (uint64_t)s->cfg->shutdown_grace_ms, 0);
    server_check_drained(s); /* else the last runner or the writer's idle callback does */
}

static void
signal_cb(uv_signal_t *h, int signum)
{
    server *s = h->data;
    log_info("signal", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_drain(s);
}

int
server_init(server *s, uv_loop_t *loop, config *cfg, store *st, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->st = st;
    s->started_at_ms = jobq__now_ms();
    s->limits = (request_limits){.max_batch = cfg->max_batch,
                                 .max_wait_ids = 1000,
                                 .max_wait_ms = 3600 * 1000,
                                 .max_payload = cfg->max_payload,
                                 .max_after = 1000,
                                 .token = cfg->auth_token};
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (server_queue_add(s, cfg->queues[i].name) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    size_t recovered = 0;
    int rc = store_begin(st);
    if (rc == JOBQ_OK) {
        rc = lifecycle_recover_running(st, jobq__now_ms(), POISON_CRASHES, runs_locally,
                                       recovered_cb, s, &recovered);
    }
    if (rc == JOBQ_OK) {
        rc = store_commit(st);
    } else {
        store_rollback(st);
    }
    store_effects_undo(st, 0); /* the counts below are read after the recovery */
    if (rc == JOBQ_OK) {
        rc = periodic_init(s);
    }
    if (rc == JOBQ_OK) {
        rc = store_count_each(st, count_cb, s);
    }
    if (rc == JOBQ_OK) {
        rc = store_paused_each(st, paused_cb, s);
    }
    if (rc != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(st));
        return -1;
    }
    if (recovered > 0) {
        log_warn("recovered", "jobs=%zu reason=\"running when jobqd stopped\"", recovered);
    }
    writer_init(&s->w, loop, st);
    s->w.idle_cb = writer_idle_cb;
    s->w.idle_arg = s;
    s->w.effects_cb = flow_effects;
    s->w.effects_arg = s;
    s->nbuckets = 1024;
    s->waits = calloc(s->nbuckets, sizeof(*s->waits));
    if (s->waits == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->rng = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32);
    sched_sweep_init(s);
    if (hold_init(s) != 0 || workers_init(s) != 0 || webhook_init(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if ((rc = sched_init(s)) != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(st));
        return -1;
    }
    uv_timer_init(loop, &s->grace_timer);
    s->grace_timer.data = s;
    intake_tls tls = {.cert = cfg->tls_cert, .key = cfg->tls_key, .ca = cfg->tls_ca};
    intake_limits lim = {.max_message = cfg->max_message,
                         .max_unauthenticated_message = cfg->max_unauthenticated_message,
                         .need_auth = cfg->auth_token != NULL,
                         .max_connections = cfg->max_connections,
                         .max_buffered = cfg->max_buffered,
                         .read_timeout_ms = (uint64_t)cfg->read_timeout_ms,
                         .idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms};
    if (intake_open(&s->in, loop, cfg->listen, cfg->nlisten, &lim, &tls, on_request, s, err,
                    errlen) != 0) {
        return -1;
    }
    intake_set_lag(s->in, &s->lag_hist);
    intake_on_conn_closed(s->in, hold_conn_closed, s);
    http_limits hlim = {.timeout_ms = cfg->http_timeout_ms,
                        .max_connections = cfg->http_max_connections,
                        .max_per_ip = cfg->http_max_per_ip,
                        .max_request = cfg->http_max_request};
    if (cfg->http != NULL &&
        http_open(&s->http, loop, cfg->http, &hlim, monitor_request, s, err, errlen) != 0) {
        return -1;
    }
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    s->sig_term.data = s;
    s->sig_int.data = s;
    uv_signal_start(&s->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&s->sig_int, signal_cb, SIGINT);
    return 0;
}

void
server_start(server *s)
{
    periodic_start(s);
    sched_dispatch_all(s);
}

void
server_free(server *s)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        free(s->queues[i]->name);
        free(s->queues[i]->stats_cache.text);
        free(s->queues[i]);
    }
    free(s->queues);
    free(s->qbuckets);
    s->qbuckets = NULL;
    s->nqbuckets = 0;
    periodic_free(s);
    free(s->waits);
    s->waits = NULL;
    hold_close(s);
    s->queues = NULL;
    s->nqueues = 0;
}
