/* workers.c: remote workers: held fetches, leases with fencing tokens, lease expiry on one
 * timer, and ack/fail/heartbeat recorded through attempt.c like any other attempt. */
#include "workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "attempt.h"
#include "backoff.h"
#include "codec.h"
#include "hold.h"
#include "log.h"
#include "progress.h"
#include "runner.h"
#include "scheduler.h"

/* A job a remote worker holds. */
typedef struct lease {
    attempt a;          /* the running job and, once it ends, its outcome */
    char token[33];     /* 128 random bits, hex */
    int64_t expires_ms; /* wall clock */
    bool revoked;       /* cancelled: kept until its expiry so a heartbeat learns it */
    bool recording;     /* an outcome is being committed */
    bool finished;      /* recorded and out of the table: free it in the release callback */
    call *waiting;      /* the ack or fail call that waits for the record */
    struct outbatch *batch; /* or the ack or fail of many jobs that does, at entry batch_i */
    size_t batch_i;
    struct lease *next; /* hash chain */
    struct lease *all_next, *all_prev;
} lease;

/* A fetch is held (hold.h, HOLD_FETCH) until a job is ready or its timeout; c->claiming
 * while a claim for it is in flight, c->fetch_ended when it is to be answered as that claim
 * completes. */

static void lease_timer_cb(uv_timer_t *t);
static void fetch_reply(server *s, call *c, lease **ls, size_t n);
static void try_fetch(server *s, call *f);
static void hold_fetch(call *c);
static void workers_dispatch(server *s, qstate *q);
static void fetch_answer(call *c, jobq__jtext *t, lease **ls, size_t n);
static void fetch_resume(call *c);
static void batch_entry_done(struct outbatch *b, size_t i, int err, const job_row *job);

#define FETCH_CLAIM_MAX 1000 /* jobs one claim takes for the waiting fetches */

/* The replies of fetch, ack and fail are written as text (codec.h's jobq__jtext), not built
 * as jansson trees: stored payloads, checkpoints and parent_results are JSON text already
 * (validated when they came in) and go in as they are. A fetch's reply is FETCH_HEAD, the
 * jobs array, the outcome's members (c->extra) if any, then "}". While one part waits for
 * the other, c->fetched (the head and jobs) and c->extra (",\"job\":{...}" or
 * ",\"results\":[...]") hold their text as JSON strings. */
#define FETCH_HEAD "{\"ok\":true,\"jobs\":"

/* send_text: replies with t's text (released) and frees the call; an internal error when t
 * ran out of memory. */
static void
send_text(call *c, jobq__jtext *t)
{
    if (hold_gone(c)) {
        free(t->p);
        call_drop(c);
        return;
    }
    if (t->failed) {
        free(t->p);
        reply_error(c, "internal", "out of memory");
        return;
    }
    intake_reply(c->ic, t->p, t->len);
    free(t->p);
    call_free(c);
}

/* jt_json_or: appends text, JSON already, or alt when there is none. */
static void
jt_json_or(jobq__jtext *t, const char *text, const char *alt)
{
    if (text != NULL && text[0] != '\0') {
        jobq__jt_raw(t, text, strlen(text));
    } else {
        jobq__jt_raw(t, alt, strlen(alt));
    }
}

/* jt_str_or_null: appends s as a JSON string, or null for NULL. */
static void
jt_str_or_null(jobq__jtext *t, const char *s)
{
    if (s != NULL) {
        jobq__jt_str(t, s);
    } else {
        jobq__jt_lit(t, "null");
    }
}

/* jt_time: appends a time in ms, or null for 0 (never). */
static void
jt_time(jobq__jtext *t, int64_t ms)
{
    if (ms != 0) {
        jobq__jt_int(t, ms);
    } else {
        jobq__jt_lit(t, "null");
    }
}

/* jt_trace: appends the job's trace context members, if it has one. */
static void
jt_trace(jobq__jtext *t, const job_row *r)
{
    if (r->traceparent != NULL) {
        jobq__jt_key(t, "traceparent", false);
        jobq__jt_str(t, r->traceparent);
        if (r->tracestate != NULL) {
            jobq__jt_key(t, "tracestate", false);
            jobq__jt_str(t, r->tracestate);
        }
    }
}

/* jt_job_head: opens a job's object with the members every form of it starts with: id,
 * queue and payload. */
static void
jt_job_head(jobq__jtext *t, const job_row *r)
{
    jobq__jt_lit(t, "{\"id\":");
    jobq__jt_int(t, r->id);
    jobq__jt_key(t, "queue", false);
    jobq__jt_str(t, r->queue);
    jobq__jt_key(t, "payload", false);
    jt_json_or(t, r->payload, "\"\"");
}

/* jt_job_tries: appends the job's attempt, max_attempts and timeout members. */
static void
jt_job_tries(jobq__jtext *t, const job_row *r)
{
    jobq__jt_key(t, "attempt", false);
    jobq__jt_int(t, r->attempt);
    jobq__jt_key(t, "max_attempts", false);
    jobq__jt_int(t, r->max_attempts);
    jobq__jt_key(t, "timeout", false);
    jobq__jt_int(t, r->timeout_ms);
}

/* jt_job: appends the job object of proto/PROTOCOL.md (the text of call.c's job_json). */
static void
jt_job(jobq__jtext *t, const job_row *r)
{
    jt_job_head(t, r);
    jobq__jt_key(t, "priority", false);
    jobq__jt_int(t, r->priority);
    jobq__jt_key(t, "state", false);
    jobq__jt_str(t, jobq__state_name(r->state));
    jt_job_tries(t, r);
    jobq__jt_key(t, "key", false);
    jt_str_or_null(t, r->key);
    jobq__jt_key(t, "run_at", false);
    jobq__jt_int(t, r->run_at_ms);
    jobq__jt_key(t, "created_at", false);
    jobq__jt_int(t, r->created_at_ms);
    jobq__jt_key(t, "started_at", false);
    jt_time(t, r->started_at_ms);
    jobq__jt_key(t, "finished_at", false);
    jt_time(t, r->finished_at_ms);
    jobq__jt_key(t, "result", false);
    jt_str_or_null(t, r->result);
    jobq__jt_key(t, "error", false);
    jt_str_or_null(t, r->error);
    if (r->group_id != 0) {
        jobq__jt_key(t, "group", false);
        jobq__jt_int(t, r->group_id);
    }
    jt_trace(t, r);
    jobq__jt_key(t, "progress", false);
    if (r->has_progress) {
        jobq__jt_real(t, r->progress);
    } else {
        jobq__jt_lit(t, "null");
    }
    jobq__jt_key(t, "note", false);
    jt_str_or_null(t, r->note);
    jobq__jt_key(t, "checkpoint", false);
    jt_json_or(t, r->checkpoint, "null");
    if (r->group_key != NULL) {
        jobq__jt_key(t, "group_key", false);
        jobq__jt_str(t, r->group_key);
    }
    jobq__jt_lit(t, "}");
}

/* jt_fetched: appends the object of a fetched job: the job, its lease and what it resumes
 * from. */
static void
jt_fetched(jobq__jtext *t, const lease *l)
{
    const job_row *r = &l->a.job;
    jt_job_head(t, r);
    jt_job_tries(t, r);
    jobq__jt_key(t, "lease", false);
    jobq__jt_str(t, l->token);
    jobq__jt_key(t, "lease_expires_at", false);
    jobq__jt_int(t, l->expires_ms);
    if (r->group_key != NULL) {
        jobq__jt_key(t, "group_key", false);
        jobq__jt_str(t, r->group_key);
    }
    jt_trace(t, r);
    if (r->checkpoint != NULL && r->checkpoint[0] != '\0') {
        jobq__jt_key(t, "checkpoint", false); /* an earlier attempt's: resume from it */
        jobq__jt_raw(t, r->checkpoint, strlen(r->checkpoint));
    }
    if (r->parent_results != NULL && r->parent_results[0] != '\0') {
        jobq__jt_key(t, "parent_results", false);
        jobq__jt_raw(t, r->parent_results, strlen(r->parent_results));
    }
    jobq__jt_lit(t, "}");
}

/* text_keep: t's text (released) as a JSON string to keep in a call's json_t field; NULL
 * when out of memory or t failed. */
static json_t *
text_keep(jobq__jtext *t)
{
    json_t *v = t->failed ? NULL : json_stringn_nocheck(t->p, t->len);
    free(t->p);
    *t = (jobq__jtext){0};
    return v;
}

static size_t
bucket(const server *s, int64_t id)
{
    return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> 40) & (s->nlease_buckets - 1);
}

static lease *
lease_find(server *s, int64_t id)
{
    for (lease *l = s->leases[bucket(s, id)]; l != NULL; l = l->next) {
        if (l->a.job.id == id) {
            return l;
        }
    }
    return NULL;
}

static void
lease_unlink(server *s, lease *l)
{
    lease **pp = &s->leases[bucket(s, l->a.job.id)];
    while (*pp != l) {
        pp = &(*pp)->next;
    }
    *pp = l->next;
    if (l->all_prev != NULL) {
        l->all_prev->all_next = l->all_next;
    } else {
        s->lease_list = l->all_next;
    }
    if (l->all_next != NULL) {
        l->all_next->all_prev = l->all_prev;
    }
    if (!l->revoked) {
        s->nleases--;
    }
}

static void
lease_free(lease *l)
{
    attempt_clear(&l->a);
    free(l);
}

static void
arm_lease_timer(server *s, int64_t at_ms)
{
    if (s->closing || at_ms >= s->next_lease_ms) {
        return;
    }
    s->next_lease_ms = at_ms;
    int64_t delay = at_ms - jobq__now_ms();
    uv_timer_start(&s->lease_timer, lease_timer_cb, delay > 0 ? (uint64_t)delay : 0, 0);
}

int
workers_init(server *s)
{
    s->nlease_buckets = 1024;
    s->leases = calloc(s->nlease_buckets, sizeof(*s->leases));
    if (s->leases == NULL) {
        return -1;
    }
    s->next_lease_ms = INT64_MAX;
    uv_timer_init(s->loop, &s->lease_timer);
    s->lease_timer.data = s;
    s->remote_dispatch = workers_dispatch;
    return 0;
}

/* ---- recording ---- */

/* lease_recorded: the outcome committed (or the store failed). */
static void
lease_recorded(attempt *a, int err)
{
    lease *l = container_of(a, lease, a);
    server *s = a->s;
    call *c = l->waiting;
    l->waiting = NULL;
    l->recording = false;
    if (l->batch != NULL) {
        struct outbatch *b = l->batch;
        l->batch = NULL;
        batch_entry_done(b, l->batch_i, err, &l->a.job);
    }
    if (c != NULL && c->req.then_fetch) {
        /* The fetch held meanwhile answers (or has answered) with the job among its fields;
         * if the outcome failed, with the error, and the jobs it got go back. */
        c->outcome_pending = false;
        c->outcome_err = err;
        if (err == JOBQ_OK) {
            jobq__jtext t = {0};
            jobq__jt_lit(&t, ",\"job\":");
            jt_job(&t, &l->a.job);
            c->extra = text_keep(&t);
        }
        if (c->fetched != NULL) {
            fetch_resume(c);
        } else if (err != JOBQ_OK) {
            /* The error need not wait for the fetch's timeout: end the fetch now (or as soon
             * as its claim in flight completes). */
            if (c->claiming) {
                c->fetch_ended = true;
            } else if (hold_waiting(c)) {
                fetch_reply(s, c, NULL, 0);
            }
        }
        c = NULL;
    }
    if (err != JOBQ_OK) {
        /* Still running in the store and still held: the worker may try again, and an
         * expiry is recorded again in a second (the lease timer finds it still expired). */
        if (c != NULL) {
            reply_err(c, err, writer_last_error(&s->w));
        }
        arm_lease_timer(s, jobq__now_ms() + 1000);
        return;
    }
    if (c != NULL) {
        jobq__jtext t = {0};
        jobq__jt_lit(&t, "{\"ok\":true,\"job\":");
        jt_job(&t, &l->a.job);
        jobq__jt_lit(&t, "}");
        send_text(c, &t);
    }
    if (a->outcome.state == JOBQ_CANCELLED) {
        /* Revoked: keep it until its expiry so the worker's next heartbeat learns it. */
        s->nleases--;
        l->revoked = true;
        arm_lease_timer(s, l->expires_ms);
        return;
    }
    lease_unlink(s, l);
    l->finished = true;
}

static void
lease_release(attempt *a)
{
    lease *l = container_of(a, lease, a);
    if (l->finished) {
        lease_free(l);
    }
}

/* lease_ending: readies the record of the attempt's end with outcome o (result and error are
 * taken); the caller then records it. */
static void
lease_ending(lease *l, run_outcome o, char *result, char *error, call *c)
{
    l->a.outcome = o;
    free(l->a.result);
    free(l->a.error);
    l->a.result = result;
    l->a.error = error;
    l->recording = true;
    l->waiting = c;
    l->a.done = lease_recorded;
    l->a.release = lease_release;
}

/* lease_end: records the attempt's end with outcome o (result and error are taken). */
static void
lease_end(lease *l, run_outcome o, char *result, char *error, call *c)
{
    lease_ending(l, o, result, error, c);
    attempt_record(&l->a);
}

/* failure_outcome: a worker's failure (or an expired lease) as retrying or dead; kind names a
 *  retryable failure ("lease", "error"). */
static run_outcome
failure_outcome(server *s, lease *l, bool retry, const char *kind)
{
    outcome_kind why = OUTCOME_ERROR;
    (void)outcome_kind_from_name(kind, &why);
    const queue_conf *qc = l->a.q->conf;
    return outcome_decide(retry ? VERDICT_RETRYABLE : VERDICT_PERMANENT, why, l->a.job.attempt,
                          l->a.job.max_attempts, qc->backoff_base_ms, qc->backoff_max_ms,
                          jobq__now_ms(), backoff_rand(&s->rng));
}

/* snooze_text: what a snoozed job keeps as its error: the worker's text, or why it waits. */
static char *
snooze_text(const char *text, int64_t snooze_ms)
{
    if (text != NULL) {
        return strdup(text);
    }
    char buf[80];
    snprintf(buf, sizeof(buf), "snoozed for %lld ms by its worker", (long long)snooze_ms);
    return strdup(buf);
}

/* ---- expiry ---- */

static void
lease_timer_cb(uv_timer_t *t)
{
    server *s = t->data;
    int64_t now = jobq__now_ms();
    s->next_lease_ms = INT64_MAX;
    int64_t next = INT64_MAX;
    for (lease *l = s->lease_list; l != NULL;) {
        lease *following = l->all_next;
        if (l->expires_ms <= now && l->revoked) {
            lease_unlink(s, l);
            lease_free(l);
        } else if (l->expires_ms <= now && !l->recording) {
            log_warn("lease_expired", "job=%lld queue=%s attempt=%d", (long long)l->a.job.id,
                     l->a.q->name, l->a.job.attempt);
            char *err = strdup("lease expired: the worker neither acked, failed nor sent a "
                               "heartbeat in time");
            lease_end(l, failure_outcome(s, l, true, "lease"), NULL, err, NULL);
        } else if (!l->recording && l->expires_ms < next) {
            /* A lease being recorded is re-armed when its record ends (an expired one would
             * make this timer fire again at once, in the same pass of the loop, for ever). */
            next = l->expires_ms;
        }
        l = following;
    }
    if (next != INT64_MAX) {
        arm_lease_timer(s, next);
    }
}

/* ---- fetch ---- */

/* hand_back: the leased job goes back to ready without spending an attempt: it did not reach
 * a worker. */
static void
hand_back(lease *l, const char *why)
{
    if (l != NULL && !l->recording && !l->revoked) {
        log_info("job_returned", "job=%lld queue=%s reason=\"%s\"", (long long)l->a.job.id,
                 l->a.q->name, why);
        lease_end(l, (run_outcome){.state = JOBQ_READY, .kind = "shutdown"}, NULL,
                  strdup(why), NULL);
    }
}

/* fetch_reply: answers the fetch c with the leases (n may be 0); c is freed (an ack or fail
 * with a fetch may wait for its outcome first). */
static void
fetch_reply(server *s, call *c, lease **ls, size_t n)
{
    (void)s;
    hold_stop(c);
    jobq__jtext t = {0};
    jobq__jt_lit(&t, FETCH_HEAD "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            jobq__jt_lit(&t, ",");
        }
        jt_fetched(&t, ls[i]);
    }
    jobq__jt_lit(&t, "]");
    fetch_answer(c, &t, ls, n);
}

/* A claim made for the fetches waiting on one queue: one store operation (and one place in
 * a commit) however many workers wait, instead of one claim per fetch in turn. */
typedef struct fetch_claim {
    size_t n;
    call *fs[]; /* the fetches, in the order they asked */
} fetch_claim;

/* lease_new: a lease on row (taken) of q, in the table. NULL when none can be made: the job
 * stays running and is recovered at the next start. */
static lease *
lease_new(server *s, qstate *q, job_row *row, int64_t now)
{
    lease *l = calloc(1, sizeof(*l));
    unsigned char rnd[16];
    if (l == NULL || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        free(l);
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t k = 0; k < sizeof(rnd); k++) {
        l->token[2 * k] = hex[rnd[k] >> 4];
        l->token[2 * k + 1] = hex[rnd[k] & 15];
    }
    l->token[2 * sizeof(rnd)] = '\0';
    l->a.s = s;
    l->a.q = q;
    l->a.job = *row;
    memset(row, 0, sizeof(*row));
    l->expires_ms = now + q->conf->lease_ms;
    size_t b = bucket(s, l->a.job.id);
    l->next = s->leases[b];
    s->leases[b] = l;
    l->all_next = s->lease_list;
    if (s->lease_list != NULL) {
        s->lease_list->all_prev = l;
    }
    s->lease_list = l;
    s->nleases++;
    return l;
}

/* lease_claimed: the claimed jobs go to the fetches that asked, in the order they asked,
 * each job under a new lease; a fetch that got none keeps waiting. A fetch whose client left
 * meanwhile gets none, and jobs nobody took go back to ready without spending an attempt. */
static void
lease_claimed(server *s, qstate *q, void *arg, job_row *rows, size_t n_rows, int err)
{
    fetch_claim *fc = arg;
    lease **ls = calloc(n_rows ? n_rows : 1, sizeof(*ls));
    size_t n = 0;
    int64_t now = jobq__now_ms();
    for (size_t i = 0; ls != NULL && i < n_rows; i++) {
        lease *l = lease_new(s, q, &rows[i], now);
        if (l == NULL) {
            continue;
        }
        if (s->draining) {
            /* Claimed as jobqd began to drain: back to ready at once, no attempt spent. */
            lease_end(l, (run_outcome){.state = JOBQ_READY, .kind = "shutdown"}, NULL,
                      strdup("interrupted: jobqd began to shut down as it was fetched"), NULL);
            continue;
        }
        arm_lease_timer(s, l->expires_ms);
        ls[n++] = l;
    }
    size_t given = 0;
    for (size_t i = 0; i < fc->n; i++) {
        call *f = fc->fs[i];
        f->claiming = false;
        bool gone = hold_gone(f);
        size_t k = n - given < (size_t)f->req.limit ? n - given : (size_t)f->req.limit;
        if (gone) {
            k = 0;
        }
        if (k > 0 || f->fetch_ended || gone || s->draining || err != JOBQ_OK) {
            fetch_reply(s, f, ls + given, k);
            given += k;
        }
        /* A fetch that got nothing keeps waiting: workers_dispatch below tries it again. */
    }
    for (size_t i = given; i < n; i++) {
        hand_back(ls[i], "returned: the worker's connection closed before the job reached it");
    }
    free(ls);
    free(fc);
    workers_dispatch(s, q);
}

/* claimable: the first of f's queues a claim may take jobs from now, and how many (by the
 * ready count, the breaker and the rate limit); NULL when none. */
static qstate *
claimable(server *s, call *f, int64_t now, size_t *maxp)
{
    for (size_t i = 0; i < f->req.nqueues; i++) {
        qstate *q = queue_find(s, f->req.queues[i]);
        if (q == NULL || q->paused || q->claiming || q->counts[JOBQ_READY] <= 0 ||
            q->keys_blocked) {
            continue;
        }
        int permits = breaker_permits(&q->br, now);
        if (permits <= 0) {
            continue;
        }
        int rate = sched_rate_permits(s, q, now);
        if (rate <= 0) {
            continue;
        }
        size_t max = (size_t)(rate < permits ? rate : permits);
        if ((int64_t)max > q->counts[JOBQ_READY]) {
            max = (size_t)q->counts[JOBQ_READY];
        }
        *maxp = max < FETCH_CLAIM_MAX ? max : FETCH_CLAIM_MAX;
        return q;
    }
    return NULL;
}

/* try_fetch: claims from the first of f's queues with a ready job, for f and for every other
 * waiting fetch whose first such queue is the same, up to what the queue allows. */
static void
try_fetch(server *s, call *f)
{
    if (f->claiming || s->draining) {
        return;
    }
    int64_t now = jobq__now_ms();
    size_t cap;
    qstate *q = claimable(s, f, now, &cap);
    if (q == NULL) {
        return;
    }
    size_t nf = 0;
    for (call *g = hold_next(s, NULL, HOLD_FETCH); g != NULL; g = hold_next(s, g, HOLD_FETCH)) {
        nf++;
    }
    fetch_claim *fc = malloc(sizeof(*fc) + (nf + 1) * sizeof(fc->fs[0]));
    if (fc == NULL) {
        return; /* tried again at the next dispatch or timeout */
    }
    fc->n = 0;
    fc->fs[fc->n++] = f;
    size_t want = (size_t)f->req.limit < cap ? (size_t)f->req.limit : cap;
    for (call *g = hold_next(s, NULL, HOLD_FETCH); g != NULL && want < cap;
         g = hold_next(s, g, HOLD_FETCH)) {
        size_t other;
        if (g == f || g->claiming || claimable(s, g, now, &other) != q) {
            continue;
        }
        fc->fs[fc->n++] = g;
        want += (size_t)g->req.limit < cap - want ? (size_t)g->req.limit : cap - want;
    }
    if (!sched_claim(s, q, want, lease_claimed, fc)) {
        free(fc);
        return;
    }
    for (size_t i = 0; i < fc->n; i++) {
        fc->fs[i]->claiming = true;
    }
}

/* fetch_hold_end: the fetch's time is up, its client left or jobqd stops: it is answered
 * with no jobs (dropped if its client left), or as soon as its claim in flight completes. */
static void
fetch_hold_end(call *c, hold_end why)
{
    (void)why;
    if (c->claiming) {
        c->fetch_ended = true;
        return;
    }
    fetch_reply(c->srv, c, NULL, 0);
}

/* fetch_check: whether every queue c fetches from exists (or may be made) and is served by
 * remote workers; false after replying the error. */
static bool
fetch_check(call *c)
{
    server *s = c->srv;
    char msg[300];
    for (size_t i = 0; i < c->req.nqueues; i++) {
        const char *name = c->req.queues[i];
        const char *code;
        qstate *q = queue_admit(s, name, &code, msg, sizeof(msg));
        if (q == NULL) {
            reply_error(c, code, msg);
            return false;
        }
        if (!queue_is_remote(q)) {
            snprintf(msg, sizeof(msg),
                     "queue \"%s\" has a %s: jobqd runs its jobs itself; remote workers serve "
                     "queues without command and url",
                     name, q->conf->argv != NULL ? "command" : "url");
            reply_error(c, "invalid_argument", msg);
            return false;
        }
    }
    return true;
}

/* fetched_back: the jobs of a fetch's reply go back to ready: the leases ls (n of them), or
 * with ls NULL those listed in the reply's text t. */
static void
fetched_back(call *c, const jobq__jtext *t, lease **ls, size_t n, const char *why)
{
    if (ls != NULL) {
        for (size_t i = 0; i < n; i++) {
            hand_back(ls[i], why);
        }
        return;
    }
    size_t head = sizeof(FETCH_HEAD) - 1;
    json_t *jobs = t->p != NULL && t->len > head
                       ? json_loadb(t->p + head, t->len - head, 0, NULL)
                       : NULL;
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        json_t *id = json_object_get(json_array_get(jobs, i), "id");
        hand_back(lease_find(c->srv, json_integer_value(id)), why);
    }
    json_decref(jobs);
}

/* fetch_answer: the fetch part of c is answered with t's text (taken: FETCH_HEAD and the
 * jobs array) of the leases ls (n; NULL when t was kept meanwhile). A plain fetch is replied
 * at once. One that came with an ack or fail waits for the outcome's record, then carries
 * its "job" or "results"; if the outcome could not be recorded, the reply is that error and
 * the jobs fetched go back to ready without spending an attempt. */
static void
fetch_answer(call *c, jobq__jtext *t, lease **ls, size_t n)
{
    bool gone = hold_gone(c);
    if (t->failed) {
        /* Out of memory writing the reply: the jobs go back; so does the worker. */
        fetched_back(c, t, ls, n, "returned: jobqd ran out of memory writing the fetch reply");
        free(t->p);
        if (gone) {
            call_drop(c);
        } else {
            reply_error(c, "internal", "out of memory");
        }
        return;
    }
    if (!c->req.then_fetch && !gone) {
        jobq__jt_lit(t, "}");
        send_text(c, t);
        return;
    }
    if (c->outcome_pending) {
        c->fetched = text_keep(t);
        if (c->fetched == NULL) {
            fetched_back(c, t, ls, n, "returned: jobqd ran out of memory holding the fetch reply");
            c->fetched = json_null(); /* answered with no jobs when the outcome is recorded */
        }
        return;
    }
    if (gone || c->outcome_err != JOBQ_OK) {
        /* Nobody to give the jobs to (the client left before the reply could be written),
         * or the outcome failed: the jobs go back. */
        fetched_back(c, t, ls, n,
                     gone ? "returned: the worker's connection closed before the job reached it"
                          : "returned: the ack or fail it was fetched with could not be "
                            "recorded");
        free(t->p);
        if (gone) {
            call_drop(c);
        } else {
            reply_err(c, c->outcome_err, writer_last_error(&c->srv->w));
        }
        return;
    }
    const char *extra = json_string_value(c->extra);
    if (extra != NULL) {
        jobq__jt_raw(t, extra, json_string_length(c->extra));
    }
    jobq__jt_lit(t, "}");
    send_text(c, t);
}

/* fetch_resume: the outcome of c is recorded (or failed) after its fetch's reply was kept in
 * c->fetched: that reply is answered now. */
static void
fetch_resume(call *c)
{
    json_t *kept = c->fetched;
    c->fetched = NULL;
    jobq__jtext t = {0};
    if (json_is_string(kept)) {
        jobq__jt_raw(&t, json_string_value(kept), json_string_length(kept));
    } else {
        jobq__jt_lit(&t, FETCH_HEAD "[]");
    }
    json_decref(kept);
    fetch_answer(c, &t, NULL, 0);
}

/* fetch_none: answers the fetch part of c with no jobs. */
static void
fetch_none(call *c)
{
    jobq__jtext t = {0};
    jobq__jt_lit(&t, FETCH_HEAD "[]");
    fetch_answer(c, &t, NULL, 0);
}

/* hold_fetch: holds the checked fetch c until a job is ready or its timeout. While jobqd
 * drains, a fetch that comes with an ack or fail is answered with no jobs (its outcome is
 * recorded); a plain one is refused. */
static void
hold_fetch(call *c)
{
    server *s = c->srv;
    if (s->draining && c->req.then_fetch) {
        fetch_none(c);
        return;
    }
    if (s->draining) {
        reply_error(c, "shutting_down", "jobqd is shutting down; fetch again when it is back");
        return;
    }
    if (hold_gone(c) ||
        !hold_start(c, HOLD_FETCH, c->req.timeout_ms > 0 ? c->req.timeout_ms : 0,
                    fetch_hold_end)) {
        /* Its client left (nothing is claimed for it), or out of memory: with an outcome, it
         * is answered and the worker fetches again. */
        if (!c->req.then_fetch && !hold_gone(c)) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        fetch_none(c);
        return;
    }
    try_fetch(s, c);
}

static void
workers_dispatch(server *s, qstate *q)
{
    for (call *f = hold_next(s, NULL, HOLD_FETCH);
         f != NULL && !q->claiming && q->counts[JOBQ_READY] > 0 && !q->keys_blocked;
         f = hold_next(s, f, HOLD_FETCH)) {
        for (size_t i = 0; i < f->req.nqueues; i++) {
            if (strcmp(f->req.queues[i], q->name) == 0) {
                try_fetch(s, f);
                break;
            }
        }
    }
}

/* ---- ack, fail, heartbeat ---- */

static void
reply_lease_expired(call *c)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "job %lld: this lease has ended (expired, acked, failed, revoked or jobqd "
             "restarted); the job may be running elsewhere",
             (long long)c->req.ids[0]);
    reply_error(c, "lease_expired", msg);
}

static int
exec_job_exists(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    call *c = container_of(op, call, op);
    return store_get(st, c->req.ids[0], &c->row);
}

/* done_job_exists: no lease holds the job: not_found when no such job, else lease_expired. */
static void
done_job_exists(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_ENOENT) {
        char msg[80];
        snprintf(msg, sizeof(msg), "no job %lld", (long long)c->req.ids[0]);
        reply_error(c, "not_found", msg);
    } else if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
    } else {
        reply_lease_expired(c);
    }
}

/* held_lease: the live lease c quotes, or NULL after replying (or arranging the reply):
 * lease_expired, or not_found when no job has that id. */
static lease *
held_lease(call *c, bool allow_revoked)
{
    lease *l = lease_find(c->srv, c->req.ids[0]);
    if (l == NULL) {
        /* Leases live in memory only: the store says whether the job exists. */
        c->op.exec = exec_job_exists;
        c->op.done = done_job_exists;
        c->op.writes = false;
        writer_push(&c->srv->w, &c->op);
        return NULL;
    }
    if (!jobq__token_equal(c->req.lease, l->token) || (l->revoked && !allow_revoked) ||
        l->recording) {
        reply_lease_expired(c);
        return NULL;
    }
    return l;
}

/* ---- ack and fail of many jobs ---- */

/* An ack or fail naming many jobs ("jobs"): their records go in one transaction, and the
 * reply (or, with a fetch, its "results" field) holds a result per job in the request's
 * order, once each has one. */
typedef struct batch_result {
    const char *state; /* recorded: the job's state now (a static name); NULL: an error */
    const char *code;  /* the error's wire code (static) */
    char *message;     /* the error's message (owned; NULL when out of memory) */
} batch_result;

typedef struct outbatch {
    call *c;
    size_t left;      /* entries without a result yet */
    wop lookup;      /* read-only: whether the jobs no lease holds exist */
    size_t nlookup;
    size_t *lookup_i; /* the entries it looks up (nlookup) */
    int *lookup_err;  /* out: JOBQ_ENOENT (no such job), JOBQ_OK (it exists) or an error */
    attempt **as;     /* the attempts recorded (in the same allocation, as are the above) */
    batch_result res[]; /* one per job, in the request's order */
} outbatch;

/* batch_error: entry i's result is the error code with message. */
static void
batch_error(outbatch *b, size_t i, const char *code, const char *message)
{
    b->res[i].code = code;
    b->res[i].message = strdup(message);
}

/* batch_lease_expired: entry i's result is lease_expired. */
static void
batch_lease_expired(outbatch *b, size_t i)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "job %lld: this lease has ended (expired, acked, failed, revoked or jobqd "
             "restarted); the job may be running elsewhere",
             (long long)b->c->req.outcomes[i].id);
    batch_error(b, i, "lease_expired", msg);
}

/* batch_finish: every entry has its result: the reply, or with a fetch the fields the
 * fetch's reply carries (an entry that failed does not fail the fetch). Frees b. */
static void
batch_finish(outbatch *b)
{
    call *c = b->c;
    jobq__jtext t = {0};
    if (c->req.then_fetch) {
        jobq__jt_lit(&t, ",\"results\":[");
    } else {
        jobq__jt_lit(&t, "{\"ok\":true,\"results\":[");
    }
    for (size_t i = 0; i < c->req.noutcomes; i++) {
        const batch_result *e = &b->res[i];
        if (i > 0) {
            jobq__jt_lit(&t, ",");
        }
        jobq__jt_lit(&t, "{\"id\":");
        jobq__jt_int(&t, c->req.outcomes[i].id);
        if (e->state != NULL) {
            jobq__jt_lit(&t, ",\"ok\":true,\"state\":");
            jobq__jt_str(&t, e->state);
            jobq__jt_lit(&t, "}");
        } else {
            jobq__jt_lit(&t, ",\"ok\":false,\"error\":{\"code\":");
            jobq__jt_str(&t, e->code);
            jobq__jt_lit(&t, ",\"message\":");
            jobq__jt_str(&t, e->message != NULL ? e->message : "");
            jobq__jt_lit(&t, "}}");
        }
        free(e->message);
    }
    jobq__jt_lit(&t, "]");
    if (!c->req.then_fetch) {
        jobq__jt_lit(&t, "}");
    }
    free(b);
    if (!c->req.then_fetch) {
        send_text(c, &t);
        return;
    }
    c->outcome_pending = false;
    c->outcome_err = JOBQ_OK;
    c->extra = text_keep(&t);
    if (c->fetched != NULL) {
        fetch_resume(c);
    }
}

static void
batch_entry_done(outbatch *b, size_t i, int err, const job_row *job)
{
    if (err == JOBQ_OK) {
        b->res[i].state = jobq__state_name(job->state);
    } else {
        batch_error(b, i, jobq__err_code(err), writer_last_error(&b->c->srv->w));
    }
    if (--b->left == 0) {
        batch_finish(b);
    }
}

/* exec_batch_lookup: whether each job no lease holds exists. Writer thread. */
static int
exec_batch_lookup(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    outbatch *b = container_of(op, outbatch, lookup);
    for (size_t k = 0; k < b->nlookup; k++) {
        job_row row = {0};
        b->lookup_err[k] = store_get(st, b->c->req.outcomes[b->lookup_i[k]].id, &row);
        job_row_clear(&row);
    }
    return JOBQ_OK;
}

/* done_batch_lookup: not_found for a job that does not exist, else lease_expired. */
static void
done_batch_lookup(wop *op)
{
    outbatch *b = container_of(op, outbatch, lookup);
    size_t n = b->nlookup;
    for (size_t k = 0; k < n; k++) {
        size_t i = b->lookup_i[k];
        int err = op->err != JOBQ_OK ? op->err : b->lookup_err[k];
        if (err == JOBQ_ENOENT) {
            char msg[80];
            snprintf(msg, sizeof(msg), "no job %lld", (long long)b->c->req.outcomes[i].id);
            batch_error(b, i, "not_found", msg);
        } else if (err != JOBQ_OK) {
            batch_error(b, i, jobq__err_code(err), writer_last_error(&b->c->srv->w));
        } else {
            batch_lease_expired(b, i);
        }
    }
    b->left -= n;
    if (b->left == 0) {
        batch_finish(b);
    }
}

/* outcome_batch: an ack (failed false) or fail of the jobs of c->req.outcomes: each live
 * lease's record in one transaction, a lease_expired or not_found result for the others. */
static void
outcome_batch(call *c, bool failed)
{
    server *s = c->srv;
    size_t n = c->req.noutcomes;
    /* One allocation: the batch, its results, then the attempts, lookups and their errors. */
    outbatch *b = calloc(1, sizeof(*b) + n * (sizeof(batch_result) + sizeof(attempt *) +
                                              sizeof(size_t) + sizeof(int)));
    if (b == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    b->c = c;
    b->as = (attempt **)(b->res + n);
    b->lookup_i = (size_t *)(b->as + n);
    b->lookup_err = (int *)(b->lookup_i + n);
    attempt **as = b->as;
    size_t nrec = 0;
    for (size_t i = 0; i < n; i++) {
        const req_outcome *o = &c->req.outcomes[i];
        lease *l = lease_find(s, o->id);
        if (l == NULL) {
            b->lookup_i[b->nlookup++] = i; /* leases live in memory only: ask the store */
            continue;
        }
        if (!jobq__token_equal(o->lease, l->token) || l->revoked || l->recording) {
            batch_lease_expired(b, i);
            continue;
        }
        l->batch = b;
        l->batch_i = i;
        int64_t snooze = o->snooze_ms > 0 ? o->snooze_ms : c->req.snooze_ms;
        if (failed && snooze > 0) {
            lease_ending(l, outcome_snooze(jobq__now_ms(), snooze), NULL,
                         snooze_text(o->text, snooze), NULL);
        } else if (failed) {
            char *error = strdup(o->text != NULL ? o->text : "failed (no reason given)");
            lease_ending(l, failure_outcome(s, l, o->retry, "error"), NULL, error, NULL);
        } else {
            lease_ending(l, (run_outcome){.state = JOBQ_SUCCEEDED, .kind = "success"},
                         o->text != NULL ? strdup(o->text) : NULL, NULL, NULL);
        }
        as[nrec++] = &l->a;
    }
    b->left = nrec + b->nlookup;
    c->outcome_pending = c->req.then_fetch && b->left > 0;
    if (b->left == 0) {
        batch_finish(b); /* no job to record: every result is known already */
    } else {
        if (b->nlookup > 0) {
            b->lookup.exec = exec_batch_lookup;
            b->lookup.done = done_batch_lookup;
            b->lookup.writes = false;
            writer_push(&s->w, &b->lookup);
        }
        attempt_record_group(as, nrec);
    }
    if (c->req.then_fetch) {
        hold_fetch(c); /* its claim joins the outcomes' commit */
    }
}

/* slow_down_queues: a fail with "slow_down": the queues of its leased jobs start nothing for
 * that long (a downstream that asked to be left alone is so for every job of the queue). */
static void
slow_down_queues(call *c)
{
    int64_t until = jobq__now_ms() + c->req.slow_down_ms;
    char why[120];
    snprintf(why, sizeof(why), "a worker failed a job with slow_down %lld ms",
             (long long)c->req.slow_down_ms);
    size_t n = c->req.outcomes != NULL ? c->req.noutcomes : 1;
    for (size_t i = 0; i < n; i++) {
        int64_t id = c->req.outcomes != NULL ? c->req.outcomes[i].id : c->req.ids[0];
        lease *l = lease_find(c->srv, id);
        if (l != NULL) {
            queue_slow_down_job(c->srv, l->a.q, &l->a.job, until, why);
        }
    }
}

/* hb_report: what a heartbeat reports of its job (progress, checkpoint, log lines) joins the
 * lease's attempt, to be written within a second. */
static void
hb_report(server *s, lease *l, const request *req)
{
    progress_slot *slot = &l->a.prog;
    int64_t id = l->a.job.id;
    int32_t at = l->a.job.attempt;
    if (req->has_progress) {
        progress_report(s, slot, id, at, req->progress, req->note,
                        req->note != NULL ? strlen(req->note) : 0);
    }
    if (req->checkpoint != NULL) {
        (void)progress_checkpoint(s, slot, id, at, req->checkpoint, strlen(req->checkpoint));
    }
    for (size_t i = 0; i < req->nlog; i++) {
        progress_log(s, slot, id, at, req->log[i], strlen(req->log[i]));
    }
}

static void
workers_request(call *c)
{
    server *s = c->srv;
    lease *l;
    switch (c->req.op) {
    case REQ_FETCH:
        if (fetch_check(c)) {
            hold_fetch(c);
        }
        return;
    case REQ_ACK:
        if (c->req.then_fetch && !fetch_check(c)) {
            return;
        }
        if (c->req.outcomes != NULL) {
            outcome_batch(c, false);
            return;
        }
        if ((l = held_lease(c, false)) != NULL) {
            char *result = c->req.text != NULL ? strdup(c->req.text) : NULL;
            c->outcome_pending = c->req.then_fetch;
            lease_end(l, (run_outcome){.state = JOBQ_SUCCEEDED, .kind = "success"}, result, NULL,
                      c);
            if (c->req.then_fetch) {
                hold_fetch(c); /* its claim joins the outcome's commit */
            }
        }
        return;
    case REQ_FAIL:
        if (c->req.then_fetch && !fetch_check(c)) {
            return;
        }
        if (c->req.slow_down_ms > 0) {
            slow_down_queues(c);
        }
        if (c->req.outcomes != NULL) {
            outcome_batch(c, true);
            return;
        }
        if ((l = held_lease(c, false)) != NULL && c->req.snooze_ms > 0) {
            c->outcome_pending = c->req.then_fetch;
            lease_end(l, outcome_snooze(jobq__now_ms(), c->req.snooze_ms), NULL,
                      snooze_text(c->req.text, c->req.snooze_ms), c);
            if (c->req.then_fetch) {
                hold_fetch(c); /* its claim joins the outcome's commit */
            }
        } else if (l != NULL) {
            char *error = strdup(c->req.text != NULL ? c->req.text : "failed (no reason given)");
            c->outcome_pending = c->req.then_fetch;
            lease_end(l, failure_outcome(s, l, c->req.retry, "error"), NULL, error, c);
            if (c->req.then_fetch) {
                hold_fetch(c); /* its claim joins the outcome's commit */
            }
        }
        return;
    case REQ_HEARTBEAT:
        if ((l = held_lease(c, true)) != NULL) {
            json_t *o = ok_object();
            if (l->revoked) {
                /* Cancelled: the lease ends with this reply, so it expires now. */
                json_object_set_new(o, "lease_expires_at", json_integer(jobq__now_ms()));
                json_object_set_new(o, "cancel", json_true());
                lease_unlink(s, l);
                lease_free(l);
            } else {
                hb_report(s, l, &c->req);
                l->expires_ms = jobq__now_ms() + l->a.q->conf->lease_ms;
                json_object_set_new(o, "lease_expires_at", json_integer(l->expires_ms));
                json_object_set_new(o, "cancel", json_false());
            }
            send_json(c, o);
        }
        return;
    default:
        reply_error(c, "unknown_op", "not a worker op");
        return;
    }
}

bool
workers_cancel(server *s, int64_t id, job_row *row)
{
    lease *l = lease_find(s, id);
    if (l == NULL || l->revoked || l->recording) {
        return false;
    }
    *row = l->a.job;
    lease_end(l, (run_outcome){.state = JOBQ_CANCELLED, .kind = "cancelled"}, NULL,
              strdup("cancelled while a remote worker held it"), NULL);
    return true;
}

bool
workers_stop(server *s, int64_t id, const char *why)
{
    lease *l = lease_find(s, id);
    if (l == NULL || l->revoked || l->recording) {
        return false;
    }
    lease_end(l, (run_outcome){.state = JOBQ_CANCELLED, .kind = "cancelled"}, NULL, strdup(why),
              NULL);
    return true;
}

void
workers_drain(server *s)
{
    /* A fetch with a claim in flight is answered when the claim completes. */
    call *next;
    for (call *f = hold_next(s, NULL, HOLD_FETCH); f != NULL; f = next) {
        next = hold_next(s, f, HOLD_FETCH);
        if (!f->claiming) {
            fetch_reply(s, f, NULL, 0);
        }
    }
}

void
workers_requeue_all(server *s)
{
    for (lease *l = s->lease_list; l != NULL; l = l->all_next) {
        if (!l->revoked && !l->recording) {
            lease_end(l, (run_outcome){.state = JOBQ_READY, .kind = "shutdown"}, NULL,
                      strdup("interrupted: jobqd shut down while a remote worker held it"), NULL);
        }
    }
}

void
workers_close(server *s)
{
    while (s->lease_list != NULL) {
        lease *l = s->lease_list;
        lease_unlink(s, l);
        lease_free(l);
    }
    free(s->leases);
    s->leases = NULL;
    uv_timer_stop(&s->lease_timer);
    uv_close((uv_handle_t *)&s->lease_timer, NULL);
}

/* The handlers of the worker ops (handlers.h): the dispatcher took a held fetch's slot. */
void
op_fetch(call *c)
{
    workers_request(c);
}

void
op_ack(call *c)
{
    workers_request(c);
}

void
op_fail(call *c)
{
    workers_request(c);
}

void
op_heartbeat(call *c)
{
    workers_request(c);
}

static int
workers_part_init(server *s, char *err, size_t errlen)
{
    if (workers_init(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* workers_part_close: drained: no claim is in flight now, so every held fetch is answered. */
static void
workers_part_close(server *s)
{
    workers_drain(s);
    workers_close(s);
}

const server_part workers_part = {.name = "workers",
                                  .init = workers_part_init,
                                  .drain = workers_drain,
                                  .grace_over = workers_requeue_all,
                                  .close = workers_part_close};
