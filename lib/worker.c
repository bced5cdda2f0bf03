/* worker.c: jobq_worker, the remote-worker side of libjobq: fetch, ack, fail and heartbeat
 * with leases (proto/PROTOCOL.md, "Remote workers"), and jobq_worker_run: handler threads run
 * one job each, completer threads send their outcomes in batches with a fetch for the free
 * handlers (a handler starts its next job while the last outcome commits), and one thread
 * keeps the leases of the jobs in hand alive. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "utf8.h"
#include "internal.h"

#define MAX_FETCH 100          /* most jobs in one fetch (the daemon's limit) */
#define RUN_FETCH_WAIT_MS 2000 /* a run's long poll: short, so a stop is seen soon */
#define BACKOFF_MIN_MS 100     /* first pause after a transport failure ... */
#define BACKOFF_MAX_MS 5000    /* ... doubling up to this */
#define SLICE_MS 50            /* sleeps are cut in slices this long to see a stop */
#define MIN_LEASE_MS 300       /* a lease length below this is taken as this */
#define MAX_CONCURRENCY 100000
#define MAX_OUTCOMES 1000 /* most outcomes in one ack or fail (the daemon's limit) */
#define COMPLETERS 2      /* completer threads: one may long-poll while another sends */
#define SHORT_FETCH_MS 50 /* the longest wait of a fetch that goes with outcomes */
#define QUICK_MS 100      /* handlers quicker than this get a job ahead each (prefetch) */

#define REPORT_NOTE_MAX 200          /* bytes of a progress note */
#define REPORT_CHECKPOINT_MAX 65536   /* bytes of a checkpoint, compact JSON */
#define REPORT_LINE_MAX 4096          /* bytes of a log line */
#define REPORT_LINES_MAX 1000         /* log lines waiting for one heartbeat */
#define REPORT_EVERY_MS 1000          /* a report waits at most about this for its heartbeat */

/* report: what the job reported and no heartbeat carried yet (jobq_lease_progress, ...). The
 * lease points to it, so that a handler holding a const lease can report. */
typedef struct report {
    pthread_mutex_t lock;
    bool has_progress;
    double pct;
    char *note;       /* NULL: none */
    char *checkpoint; /* compact JSON; NULL: none to send */
    char **lines;     /* oldest first */
    size_t nlines;
} report;

struct jobq_lease {
    int64_t id;
    char *queue;
    char *payload; /* compact JSON text */
    char *token;   /* the lease token, quoted by ack, fail, heartbeat */
    char *traceparent; /* W3C trace context; NULL: none */
    char *tracestate;
    char *group_key; /* NULL: none */
    int32_t attempt;
    int32_t max_attempts;
    int64_t timeout_ms;
    int64_t lease_ms;              /* lease length: expiry - now at the fetch, ms */
    _Atomic int64_t expires_at_ms; /* ms since the epoch; moved on by heartbeats */
    _Atomic bool cancelled;        /* a heartbeat said cancel, or the lease ended */
    char *checkpoint_in;           /* an earlier attempt's checkpoint (fetched); NULL: none */
    report *rep;                   /* reports waiting for a heartbeat */
    _Atomic int64_t snooze_ms;     /* jobq_lease_snooze; -1: not called */
    char *parent_results_in;       /* its parents' results, a JSON object; NULL: no parent */
};

/* slot: one of jobq_worker_run's handler threads, seen by the heartbeat thread. */
typedef struct slot {
    jobq_lease *lease; /* the job in hand, NULL when idle */
    int64_t next_hb;   /* monotonic ms of its next heartbeat */
    int64_t last_hb;   /* monotonic ms of its last heartbeat (or of its start) */
    bool hb_busy;      /* the heartbeat thread is using lease: it must not be freed */
} slot;

/* outcome: a handler's verdict on its job, waiting for a completer. */
typedef struct outcome {
    struct outcome *next;
    jobq_lease *lease; /* owned */
    bool failed;       /* fail, else ack */
    bool retry;        /* fail: may be retried */
    char *text;        /* the result or the error (owned, may be NULL) */
    int64_t snooze_ms; /* fail: a snooze of this long instead (0: a failure) */
} outcome;

/* run: the state of one jobq_worker_run. Handlers take jobs from ready and put their outcomes
 * in the outbox; completers send the outbox with a fetch that fills ready. */
typedef struct run {
    jobq_worker *w;
    jobq_handler handler;
    void *arg;
    int n;                   /* handler threads */
    slot *slots;             /* n */
    pthread_mutex_t lock;    /* guards everything below but fatal */
    pthread_cond_t cond;     /* slot changes, heartbeat done, run end */
    pthread_cond_t job_cond; /* ready filled, or a fetch ended: handlers look */
    pthread_cond_t out_cond; /* an outcome, a free handler or a handler left: completers look */
    bool done;               /* every thread has left: the heartbeat thread ends */
    jobq_lease **ready;      /* fetched jobs no handler has taken yet: a ring of 2n */
    int ready_head;
    int nready;
    int inhand;        /* handlers running a job */
    bool quick;        /* the last handler took under QUICK_MS: fetch n jobs ahead */
    int reserved;      /* jobs asked for by fetches in flight */
    bool polling;      /* a fetch alone is in flight (it may wait RUN_FETCH_WAIT_MS) */
    bool sending;      /* outcomes are in flight: the next ones wait and go together */
    int handlers;      /* handler threads still running */
    outcome *out_head; /* the outbox, in order */
    outcome *out_tail;
    size_t nout;
    _Atomic int fatal;   /* the error that ends the run, 0 while none */
    char fatal_msg[512]; /* jobq_errmsg() of the thread that met it (under lock) */
} run;

/* run_thread: what one pool thread needs. */
typedef struct run_thread {
    run *r;
    int index;
    pthread_t tid;
} run_thread;

struct jobq_worker {
    jobq_client *client;
    _Atomic bool stop; /* jobq_worker_stop was called */
    char name[96];     /* "host/pid", sent as the fetch's worker field */
    size_t nqueues;
    char *queues[]; /* nqueues copies */
};

/* stopping: whether the run must fetch no more. */
static bool
stopping(const run *r)
{
    return atomic_load(&r->w->stop) || atomic_load(&r->fatal) != 0;
}

/* nap: sleeps ms in slices, returning early when the run is stopping. */
static void
nap(const run *r, int64_t ms)
{
    int64_t end = jobq__mono_ms() + ms;
    for (int64_t left = ms; left > 0 && !stopping(r); left = end - jobq__mono_ms()) {
        int64_t step = left < SLICE_MS ? left : SLICE_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

/* fatal_err: whether err means retrying cannot help (a run returns it). */
static bool
fatal_err(int err)
{
    return err == JOBQ_EUNAUTH || err == JOBQ_EQUEUE || err == JOBQ_EINVAL || err == JOBQ_EPROTO ||
           err == JOBQ_ECLOSED || err == JOBQ_EFORBIDDEN;
}

JOBQ_API int
jobq_worker_open(jobq_worker **workerp, jobq_client *client, const char *const *queues,
                 size_t nqueues)
{
    if (workerp == NULL || client == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_worker_open: workerp and client must not be NULL");
    }
    if (queues == NULL || nqueues == 0) {
        return jobq__fail(JOBQ_EINVAL, "a worker needs at least one queue");
    }
    for (size_t i = 0; i < nqueues; i++) {
        if (queues[i] == NULL || queues[i][0] == '\0') {
            return jobq__fail(JOBQ_EINVAL, "queue name %zu is empty", i);
        }
    }
    jobq_worker *w = calloc(1, sizeof(*w) + nqueues * sizeof(w->queues[0]));
    if (w == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory opening a worker");
    }
    w->client = client;
    atomic_init(&w->stop, false);
    for (size_t i = 0; i < nqueues; i++) {
        if ((w->queues[i] = strdup(queues[i])) == NULL) {
            jobq_worker_close(w);
            return jobq__fail(JOBQ_ENOMEM, "out of memory opening a worker");
        }
        w->nqueues++;
    }
    char host[64];
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "unknown");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(w->name, sizeof(w->name), "%s/%ld", host, (long)getpid());
    *workerp = w;
    return JOBQ_OK;
}

JOBQ_API void
jobq_worker_close(jobq_worker *worker)
{
    if (worker == NULL) {
        return;
    }
    for (size_t i = 0; i < worker->nqueues; i++) {
        free(worker->queues[i]);
    }
    free(worker);
}

JOBQ_API void
jobq_worker_stop(jobq_worker *worker)
{
    if (worker != NULL) {
        atomic_store(&worker->stop, true); /* lock-free: async-signal-safe */
    }
}

/* report_clear: frees what r holds and empties it (under its lock, or alone). */
static void
report_clear(report *r)
{
    free(r->note);
    free(r->checkpoint);
    for (size_t i = 0; i < r->nlines; i++) {
        free(r->lines[i]);
    }
    free(r->lines);
    r->has_progress = false;
    r->note = r->checkpoint = NULL;
    r->lines = NULL;
    r->nlines = 0;
}

/* report_pending: whether l has a report for its next heartbeat. */
static bool
report_pending(const jobq_lease *l)
{
    report *r = l->rep;
    pthread_mutex_lock(&r->lock);
    bool p = r->has_progress || r->checkpoint != NULL || r->nlines > 0;
    pthread_mutex_unlock(&r->lock);
    return p;
}

JOBQ_API int
jobq_lease_progress(const jobq_lease *lease, double pct, const char *note)
{
    if (lease == NULL || !(pct >= 0 && pct <= 100)) {
        return jobq__fail(JOBQ_EINVAL, "jobq_lease_progress: pct must be from 0 to 100");
    }
    char *n = NULL;
    if (note != NULL) {
        size_t len = utf8_cut(note, strlen(note), REPORT_NOTE_MAX);
        json_t *check = json_stringn(note, len);
        if (check == NULL) {
            return jobq__fail(JOBQ_EINVAL, "jobq_lease_progress: the note is not UTF-8");
        }
        json_decref(check);
        if ((n = strndup(note, len)) == NULL) {
            return jobq__fail(JOBQ_ENOMEM, "out of memory");
        }
    }
    report *r = lease->rep;
    pthread_mutex_lock(&r->lock);
    r->has_progress = true;
    r->pct = pct;
    free(r->note);
    r->note = n;
    pthread_mutex_unlock(&r->lock);
    return JOBQ_OK;
}

JOBQ_API int
jobq_lease_checkpoint(const jobq_lease *lease, const char *json)
{
    json_t *v = lease != NULL && json != NULL ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;
    if (v == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_lease_checkpoint: not a JSON text");
    }
    char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (compact == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory");
    }
    if (strlen(compact) > REPORT_CHECKPOINT_MAX) {
        free(compact);
        return jobq__fail(JOBQ_ETOOBIG, "jobq_lease_checkpoint: over %d bytes",
                          REPORT_CHECKPOINT_MAX);
    }
    report *r = lease->rep;
    pthread_mutex_lock(&r->lock);
    free(r->checkpoint);
    r->checkpoint = compact;
    pthread_mutex_unlock(&r->lock);
    return JOBQ_OK;
}

/* add_lines_locked: appends lines[0..n) (taken) to r, the oldest dropped past
 * REPORT_LINES_MAX. False on out of memory (the lines are freed). */
static bool
add_lines_locked(report *r, char **lines, size_t n)
{
    char **all = realloc(r->lines, (r->nlines + n) * sizeof(*all));
    if (all == NULL) {
        for (size_t i = 0; i < n; i++) {
            free(lines[i]);
        }
        return false;
    }
    memcpy(all + r->nlines, lines, n * sizeof(*all));
    r->lines = all;
    r->nlines += n;
    if (r->nlines >= 2 * REPORT_LINES_MAX) { /* amortised: the oldest go in bulk */
        size_t drop = r->nlines - REPORT_LINES_MAX;
        for (size_t i = 0; i < drop; i++) {
            free(r->lines[i]);
        }
        memmove(r->lines, r->lines + drop, REPORT_LINES_MAX * sizeof(*all));
        r->nlines = REPORT_LINES_MAX;
    }
    return true;
}

JOBQ_API int
jobq_lease_log(const jobq_lease *lease, const char *line)
{
    if (lease == NULL || line == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_lease_log: lease and line must not be NULL");
    }
    size_t len = utf8_cut(line, strlen(line), REPORT_LINE_MAX);
    json_t *check = json_stringn(line, len);
    if (check == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_lease_log: the line is not UTF-8");
    }
    json_decref(check);
    char *l = strndup(line, len);
    if (l == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory");
    }
    report *r = lease->rep;
    pthread_mutex_lock(&r->lock);
    bool ok = add_lines_locked(r, &l, 1);
    pthread_mutex_unlock(&r->lock);
    return ok ? JOBQ_OK : jobq__fail(JOBQ_ENOMEM, "out of memory");
}

JOBQ_API const char *
jobq_lease_checkpoint_get(const jobq_lease *lease)
{
    return lease != NULL ? lease->checkpoint_in : NULL;
}

JOBQ_API const char *
jobq_lease_parent_results(const jobq_lease *lease)
{
    return lease != NULL ? lease->parent_results_in : NULL;
}

JOBQ_API void
jobq_lease_free(jobq_lease *lease)
{
    if (lease == NULL) {
        return;
    }
    free(lease->queue);
    free(lease->payload);
    free(lease->token);
    free(lease->traceparent);
    free(lease->checkpoint_in);
    free(lease->parent_results_in);
    if (lease->rep != NULL) {
        report_clear(lease->rep);
        pthread_mutex_destroy(&lease->rep->lock);
        free(lease->rep);
    }
    free(lease->tracestate);
    free(lease->group_key);
    free(lease);
}

JOBQ_API int64_t
jobq_lease_id(const jobq_lease *lease)
{
    return lease->id;
}

JOBQ_API const char *
jobq_lease_queue(const jobq_lease *lease)
{
    return lease->queue;
}

JOBQ_API const char *
jobq_lease_payload(const jobq_lease *lease)
{
    return lease->payload;
}

JOBQ_API const char *
jobq_lease_traceparent(const jobq_lease *lease)
{
    return lease->traceparent;
}

JOBQ_API const char *
jobq_lease_tracestate(const jobq_lease *lease)
{
    return lease->tracestate;
}

JOBQ_API const char *
jobq_lease_group_key(const jobq_lease *lease)
{
    return lease->group_key;
}

JOBQ_API int32_t
jobq_lease_attempt(const jobq_lease *lease)
{
    return lease->attempt;
}

JOBQ_API int32_t
jobq_lease_max_attempts(const jobq_lease *lease)
{
    return lease->max_attempts;
}

JOBQ_API int64_t
jobq_lease_timeout_ms(const jobq_lease *lease)
{
    return lease->timeout_ms;
}

JOBQ_API int64_t
jobq_lease_expires_at_ms(const jobq_lease *lease)
{
    return atomic_load(&((jobq_lease *)lease)->expires_at_ms);
}

JOBQ_API bool
jobq_lease_cancelled(const jobq_lease *lease)
{
    return atomic_load(&((jobq_lease *)lease)->cancelled);
}

/* int_of: obj[name] as an integer into *vp; false when absent or not an integer. */
static bool
int_of(const json_t *obj, const char *name, int64_t *vp)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v)) {
        return false;
    }
    *vp = (int64_t)json_integer_value(v);
    return true;
}

/* lease_from_json: a lease from one entry of a fetch reply's jobs. now_ms is the wall clock
 * at the reply. Returns JOBQ_EPROTO or JOBQ_ENOMEM with jobq_errmsg() set. */
static int
lease_from_json(const json_t *obj, int64_t now_ms, jobq_lease **leasep)
{
    int64_t id;
    int64_t attempt;
    int64_t max_attempts;
    int64_t timeout_ms;
    int64_t expires;
    const char *queue = json_string_value(json_object_get(obj, "queue"));
    const char *token = json_string_value(json_object_get(obj, "lease"));
    if (!json_is_object(obj) || !int_of(obj, "id", &id) || queue == NULL || token == NULL ||
        !int_of(obj, "lease_expires_at", &expires)) {
        return jobq__fail(JOBQ_EPROTO, "a job of the fetch reply lacks id, queue, lease or "
                                       "lease_expires_at");
    }
    if (!int_of(obj, "attempt", &attempt)) {
        attempt = 0;
    }
    if (!int_of(obj, "max_attempts", &max_attempts)) {
        max_attempts = 0;
    }
    if (!int_of(obj, "timeout", &timeout_ms)) {
        timeout_ms = 0;
    }
    jobq_lease *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory reading a fetched job");
    }
    const json_t *payload = json_object_get(obj, "payload");
    atomic_init(&l->snooze_ms, -1);
    l->queue = strdup(queue);
    l->token = strdup(token);
    l->payload =
        payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
    const char *tp = json_string_value(json_object_get(obj, "traceparent"));
    const char *ts = json_string_value(json_object_get(obj, "tracestate"));
    l->traceparent = tp != NULL ? strdup(tp) : NULL;
    l->tracestate = ts != NULL ? strdup(ts) : NULL;
    const char *gk = json_string_value(json_object_get(obj, "group_key"));
    l->group_key = gk != NULL ? strdup(gk) : NULL;
    const json_t *cp = json_object_get(obj, "checkpoint");
    bool has_cp = cp != NULL && !json_is_null(cp);
    l->checkpoint_in = has_cp ? json_dumps(cp, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    const json_t *pr = json_object_get(obj, "parent_results");
    bool has_pr = json_is_object(pr);
    l->parent_results_in = has_pr ? json_dumps(pr, JSON_COMPACT) : NULL;
    l->rep = calloc(1, sizeof(*l->rep));
    if (l->rep != NULL && pthread_mutex_init(&l->rep->lock, NULL) != 0) {
        free(l->rep);
        l->rep = NULL;
    }
    if (l->queue == NULL || l->token == NULL || l->payload == NULL || l->rep == NULL ||
        (has_cp && l->checkpoint_in == NULL) || (has_pr && l->parent_results_in == NULL) ||
        (tp != NULL && l->traceparent == NULL) || (ts != NULL && l->tracestate == NULL) ||
        (gk != NULL && l->group_key == NULL)) {
        jobq_lease_free(l);
        return jobq__fail(JOBQ_ENOMEM, "out of memory reading a fetched job");
    }
    l->id = id;
    l->attempt = (int32_t)attempt;
    l->max_attempts = (int32_t)max_attempts;
    l->timeout_ms = timeout_ms;
    l->lease_ms = expires - now_ms < MIN_LEASE_MS ? MIN_LEASE_MS : expires - now_ms;
    atomic_init(&l->expires_at_ms, expires);
    atomic_init(&l->cancelled, false);
    *leasep = l;
    return JOBQ_OK;
}

/* fetch_fields: writes the members of a fetch from worker's queues into t. Requests on the
 * hot path of a worker (fetch, and ack or fail with a fetch) are written as text, without a
 * jansson tree; t->failed on out of memory or a queue name that is not UTF-8. */
static void
fetch_fields(jobq__jtext *t, const jobq_worker *worker, size_t max, int64_t wait_ms)
{
    jobq__jt_lit(t, "\"queues\":[");
    for (size_t i = 0; i < worker->nqueues; i++) {
        if (!jobq__utf8_valid(worker->queues[i])) {
            t->failed = true; /* as a tree could not hold it */
        }
        if (i > 0) {
            jobq__jt_lit(t, ",");
        }
        jobq__jt_str(t, worker->queues[i]);
    }
    jobq__jt_lit(t, "],\"max\":");
    jobq__jt_int(t, (int64_t)max);
    jobq__jt_key(t, "timeout", false);
    jobq__jt_int(t, wait_ms);
    jobq__jt_key(t, "worker", false);
    jobq__jt_str(t, worker->name);
}

/* fetch_call: one fetch of up to max jobs waiting up to wait_ms; *replyp as jobq__call_json. */
static int
fetch_call(jobq_worker *worker, size_t max, int64_t wait_ms, json_t **replyp)
{
    jobq__jtext t = {0};
    jobq__jt_lit(&t, "{\"op\":\"fetch\",");
    fetch_fields(&t, worker, max, wait_ms);
    int err = jobq__call_text(worker->client, "fetch", &t, wait_ms, replyp);
    free(t.p);
    return err;
}

/* leases_of: the leases of a fetch reply's "jobs" (at most max), into leases; *np of them.
 * A reply without "jobs" has none when absent_ok (the reply of an ack or fail from a jobqd
 * that does not know "fetch"). */
static int
leases_of(json_t *reply, size_t max, bool absent_ok, jobq_lease **leases, size_t *np)
{
    int64_t now = jobq__now_ms();
    json_t *jobs = json_object_get(reply, "jobs");
    size_t n = json_array_size(jobs);
    if (jobs == NULL && absent_ok) {
        *np = 0;
        return JOBQ_OK;
    }
    if (!json_is_array(jobs) || n > max) {
        return jobq__fail(JOBQ_EPROTO, "the fetch reply has no \"jobs\" array of at most %zu", max);
    }
    jobq_lease *got[MAX_FETCH];
    for (size_t i = 0; i < n; i++) {
        int err = lease_from_json(json_array_get(jobs, i), now, &got[i]);
        if (err != JOBQ_OK) {
            /* The jobs fetched stay leased until their leases expire: the daemon retries
             * them then. */
            for (size_t k = 0; k < i; k++) {
                jobq_lease_free(got[k]);
            }
            return err;
        }
    }
    for (size_t i = 0; i < n; i++) {
        leases[i] = got[i];
    }
    *np = n;
    return JOBQ_OK;
}

JOBQ_API int
jobq_worker_fetch(jobq_worker *worker, size_t max, int64_t wait_ms, jobq_lease **leases, size_t *np)
{
    if (worker == NULL || leases == NULL || np == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_worker_fetch: worker, leases and np must not be "
                                       "NULL");
    }
    if (max < 1 || max > MAX_FETCH) {
        return jobq__fail(JOBQ_EINVAL, "max must be 1..%d, not %zu", MAX_FETCH, max);
    }
    if (wait_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "wait_ms must be >= 0, not %lld", (long long)wait_ms);
    }
    json_t *reply;
    int err = fetch_call(worker, max, wait_ms, &reply);
    if (err != JOBQ_OK) {
        return err;
    }
    err = leases_of(reply, max, false, leases, np);
    json_decref(reply);
    return err;
}

/* check_lease: the common argument check of ack, fail and heartbeat. */
static int
check_lease(const jobq_worker *worker, const jobq_lease *lease, const char *op)
{
    if (worker == NULL || lease == NULL) {
        return jobq__fail(JOBQ_EINVAL, "%s: worker and lease must not be NULL", op);
    }
    return JOBQ_OK;
}

/* set_text: sets obj[name] to text (may be NULL: nothing is set). False when text is not
 * valid UTF-8 or on out of memory; *errp says which. */
static bool
set_text(json_t *obj, const char *name, const char *text, int *errp)
{
    if (obj == NULL || text == NULL) {
        return true;
    }
    json_t *v = json_string(text);
    if (v == NULL) {
        *errp = jobq__fail(JOBQ_EINVAL, "the %s is not valid UTF-8 text", name);
        return false;
    }
    if (json_object_set_new(obj, name, v) != 0) {
        *errp = jobq__fail(JOBQ_ENOMEM, "out of memory building the request");
        return false;
    }
    return true;
}

/* outcome_call: acks (error NULL, !failed) or fails lease. */
static int
outcome_call(jobq_worker *worker, const jobq_lease *lease, bool failed, const char *text,
             bool retry)
{
    const char *op = failed ? "fail" : "ack";
    int err = check_lease(worker, lease, failed ? "jobq_worker_fail" : "jobq_worker_ack");
    if (err != JOBQ_OK) {
        return err;
    }
    json_t *req =
        json_pack("{s:s, s:I, s:s}", "op", op, "id", (json_int_t)lease->id, "lease", lease->token);
    if (req != NULL && failed && json_object_set_new(req, "retry", json_boolean(retry)) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (!set_text(req, failed ? "error" : "result", text, &err)) {
        json_decref(req);
        return err;
    }
    json_t *reply;
    err = jobq__call_json(worker->client, op, req, 0, &reply);
    json_decref(req);
    if (err == JOBQ_OK) {
        json_decref(reply);
    }
    return err;
}

JOBQ_API int
jobq_worker_ack(jobq_worker *worker, const jobq_lease *lease, const char *result)
{
    return outcome_call(worker, lease, false, result, false);
}

JOBQ_API int
jobq_worker_fail(jobq_worker *worker, const jobq_lease *lease, const char *error, bool retry)
{
    return outcome_call(worker, lease, true, error, retry);
}

JOBQ_API int
jobq_lease_snooze(const jobq_lease *lease, int64_t delay_ms)
{
    if (lease == NULL || delay_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "jobq_lease_snooze: a lease and a delay >= 0 are needed");
    }
    atomic_store(&((jobq_lease *)lease)->snooze_ms, delay_ms);
    return JOBQ_OK;
}

JOBQ_API int
jobq_worker_snooze(jobq_worker *worker, const jobq_lease *lease, int64_t delay_ms,
                   const char *reason)
{
    int err = check_lease(worker, lease, "jobq_worker_snooze");
    if (err != JOBQ_OK) {
        return err;
    }
    if (delay_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "jobq_worker_snooze: the delay must be >= 0");
    }
    json_t *req =
        json_pack("{s:s, s:I, s:s, s:I}", "op", "fail", "id", (json_int_t)lease->id, "lease",
                  lease->token, "snooze", (json_int_t)(delay_ms > 0 ? delay_ms : 1));
    if (!set_text(req, "error", reason, &err)) {
        json_decref(req);
        return err;
    }
    json_t *reply;
    err = jobq__call_json(worker->client, "fail", req, 0, &reply);
    json_decref(req);
    if (err == JOBQ_OK) {
        json_decref(reply);
    }
    return err;
}

/* report_take: moves what r holds into sent and its fields into req (the heartbeat). */
static void
report_take(report *r, report *sent, json_t *req)
{
    pthread_mutex_lock(&r->lock);
    *sent = *r;
    memset(&sent->lock, 0, sizeof(sent->lock));
    r->has_progress = false;
    r->note = r->checkpoint = NULL;
    r->lines = NULL;
    r->nlines = 0;
    pthread_mutex_unlock(&r->lock);
    if (sent->has_progress) {
        json_object_set_new(req, "progress", json_real(sent->pct));
        if (sent->note != NULL) {
            json_object_set_new(req, "note", json_string(sent->note));
        }
    }
    if (sent->checkpoint != NULL) {
        json_t *v = json_loads(sent->checkpoint, JSON_DECODE_ANY, NULL);
        if (v != NULL) {
            json_object_set_new(req, "checkpoint", v);
        }
    }
    if (sent->nlines > 0) {
        json_t *a = json_array();
        size_t from = sent->nlines > REPORT_LINES_MAX ? sent->nlines - REPORT_LINES_MAX : 0;
        for (size_t i = from; i < sent->nlines; i++) {
            json_array_append_new(a, json_string(sent->lines[i]));
        }
        json_object_set_new(req, "log", a);
    }
}

/* report_give_back: a heartbeat that did not reach jobqd: what it carried goes back into r,
 * behind what was reported since (newer progress and checkpoint win; its lines come first). */
static void
report_give_back(report *r, report *sent)
{
    pthread_mutex_lock(&r->lock);
    if (sent->has_progress && !r->has_progress) {
        r->has_progress = true;
        r->pct = sent->pct;
        r->note = sent->note;
        sent->note = NULL;
    }
    if (sent->checkpoint != NULL && r->checkpoint == NULL) {
        r->checkpoint = sent->checkpoint;
        sent->checkpoint = NULL;
    }
    if (sent->nlines > 0) {
        char **newer = r->lines;
        size_t nnewer = r->nlines;
        r->lines = NULL;
        r->nlines = 0;
        if (add_lines_locked(r, sent->lines, sent->nlines) && nnewer > 0) {
            (void)add_lines_locked(r, newer, nnewer);
        } else if (nnewer > 0) {
            for (size_t i = 0; i < nnewer; i++) {
                free(newer[i]);
            }
        }
        free(newer);
        free(sent->lines);
        sent->lines = NULL;
        sent->nlines = 0;
    }
    pthread_mutex_unlock(&r->lock);
}

JOBQ_API int
jobq_worker_heartbeat(jobq_worker *worker, jobq_lease *lease, bool *cancelp)
{
    int err = check_lease(worker, lease, "jobq_worker_heartbeat");
    if (err != JOBQ_OK) {
        return err;
    }
    json_t *req = json_pack("{s:s, s:I, s:s}", "op", "heartbeat", "id", (json_int_t)lease->id,
                            "lease", lease->token);
    if (req == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory building the request");
    }
    report sent = {0};
    report_take(lease->rep, &sent, req);
    json_t *reply;
    err = jobq__call_json(worker->client, "heartbeat", req, 0, &reply);
    json_decref(req);
    if (err != JOBQ_OK && err != JOBQ_ELEASE) {
        report_give_back(lease->rep, &sent); /* the next heartbeat tries again */
    }
    report_clear(&sent);
    if (err != JOBQ_OK) {
        return err;
    }
    int64_t expires;
    if (int_of(reply, "lease_expires_at", &expires)) {
        atomic_store(&lease->expires_at_ms, expires);
    }
    bool cancel = json_is_true(json_object_get(reply, "cancel"));
    json_decref(reply);
    if (cancel) {
        atomic_store(&lease->cancelled, true);
    }
    if (cancelp != NULL) {
        *cancelp = cancel;
    }
    return JOBQ_OK;
}

/* ---- jobq_worker_run ---- */

/* hb_period: the time between two heartbeats of a lease: a third of its length. */
static int64_t
hb_period(const jobq_lease *l)
{
    return l->lease_ms / 3;
}

/* slot_put: hands lease to the heartbeat thread (NULL: takes it back, waiting until no
 * heartbeat uses it). */
static void
slot_put(run *r, int i, jobq_lease *lease)
{
    pthread_mutex_lock(&r->lock);
    while (r->slots[i].hb_busy) {
        pthread_cond_wait(&r->cond, &r->lock);
    }
    r->slots[i].lease = lease;
    if (lease != NULL) {
        /* A job fetched ahead has waited: its first heartbeat comes before half of what is
         * left of its lease. */
        int64_t left = atomic_load(&lease->expires_at_ms) - jobq__now_ms();
        int64_t first = hb_period(lease) < left / 2 ? hb_period(lease) : left / 2;
        r->slots[i].next_hb = jobq__mono_ms() + (first > 0 ? first : 0);
        r->slots[i].last_hb = jobq__mono_ms();
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* heartbeat_main: the heartbeat thread: sends a heartbeat for each job in hand every third
 * of its lease, until the run is done. A cancel, or a lease that ended, marks the lease
 * cancelled and stops its heartbeats. */
static void *
heartbeat_main(void *arg)
{
    run *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->done) {
        int64_t now = jobq__mono_ms();
        int64_t next = now + 60000;
        int due = -1;
        for (int i = 0; i < r->n; i++) {
            jobq_lease *l = r->slots[i].lease;
            if (l == NULL || atomic_load(&l->cancelled)) {
                continue;
            }
            /* A report waits at most about REPORT_EVERY_MS for its heartbeat: the thread
             * looks at the reports that often while a job is in hand. */
            int64_t report_at = r->slots[i].last_hb + REPORT_EVERY_MS;
            if (r->slots[i].next_hb <= now || (report_at <= now && report_pending(l))) {
                due = i;
                break;
            }
            if (r->slots[i].next_hb < next) {
                next = r->slots[i].next_hb;
            }
            int64_t look = report_at > now ? report_at : now + REPORT_EVERY_MS;
            if (look < next) {
                next = look;
            }
        }
        if (due < 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
            continue;
        }
        slot *s = &r->slots[due];
        jobq_lease *l = s->lease;
        s->hb_busy = true;
        pthread_mutex_unlock(&r->lock);
        int err = jobq_worker_heartbeat(r->w, l, NULL);
        if (err == JOBQ_ELEASE) {
            /* The lease ended (expired, or jobqd restarted): another worker may hold the
             * job now, so the handler's work is wasted; ask it to give up. */
            atomic_store(&l->cancelled, true);
        }
        pthread_mutex_lock(&r->lock);
        s->hb_busy = false;
        s->last_hb = jobq__mono_ms();
        if (err == JOBQ_OK || err == JOBQ_ELEASE) {
            s->next_hb = jobq__mono_ms() + hb_period(l);
        } else {
            /* Unreachable or slow daemon: try again soon, within the lease. */
            int64_t soon = hb_period(l) / 3;
            s->next_hb = jobq__mono_ms() + (soon < 1000 ? soon : 1000);
        }
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* set_fatal: ends the run with err (the first such error wins), keeping the calling thread's
 * jobq_errmsg() for the caller of jobq_worker_run. */
static void
set_fatal(run *r, int err)
{
    pthread_mutex_lock(&r->lock);
    int none = 0;
    if (atomic_compare_exchange_strong(&r->fatal, &none, err)) {
        snprintf(r->fatal_msg, sizeof(r->fatal_msg), "%s", jobq_errmsg());
    }
    pthread_cond_broadcast(&r->job_cond);
    pthread_cond_broadcast(&r->out_cond);
    pthread_mutex_unlock(&r->lock);
}

/* timed_wait: waits on cv (r->lock held) for at most SLICE_MS: a stop is an atomic flag that
 * signals nobody, so waiters look again that often. */
static void
timed_wait(run *r, pthread_cond_t *cv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, &r->lock, &ts);
}

/* outcome_free: frees o and what it owns. Accepts NULL. */
static void
outcome_free(outcome *o)
{
    if (o != NULL) {
        jobq_lease_free(o->lease);
        free(o->text);
        free(o);
    }
}

/* outbox_put_locked: appends the list o (linked by next) to the outbox. */
static void
outbox_put_locked(run *r, outcome *o)
{
    while (o != NULL) {
        outcome *next = o->next;
        o->next = NULL;
        if (r->out_tail != NULL) {
            r->out_tail->next = o;
        } else {
            r->out_head = o;
        }
        r->out_tail = o;
        r->nout++;
        o = next;
    }
    pthread_cond_broadcast(&r->out_cond);
}

/* outbox_take_locked: up to MAX_OUTCOMES outcomes of the kind (ack or fail) of the first one
 * in the outbox, in order, as a list; *np of them. The others stay. */
static outcome *
outbox_take_locked(run *r, size_t *np)
{
    outcome *head = NULL;
    outcome **tail = &head;
    size_t n = 0;
    bool failed = r->out_head->failed;
    outcome **pp = &r->out_head;
    r->out_tail = NULL;
    while (*pp != NULL) {
        outcome *o = *pp;
        if (o->failed == failed && n < MAX_OUTCOMES) {
            *pp = o->next;
            o->next = NULL;
            *tail = o;
            tail = &o->next;
            n++;
        } else {
            r->out_tail = o;
            pp = &o->next;
        }
    }
    r->nout -= n;
    *np = n;
    return head;
}

/* handler_main: one handler thread: takes a fetched job, runs the handler with heartbeats,
 * hands its outcome to the completers, and takes the next; until the run stops and no job
 * is in hand or on its way. */
static void *
handler_main(void *arg)
{
    run_thread *t = arg;
    run *r = t->r;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (r->nready == 0 && !(stopping(r) && r->reserved == 0)) {
            timed_wait(r, &r->job_cond);
        }
        if (r->nready == 0) {
            break;
        }
        jobq_lease *l = r->ready[r->ready_head];
        r->ready_head = (r->ready_head + 1) % (2 * r->n);
        r->nready--;
        if (jobq__now_ms() >= atomic_load(&l->expires_at_ms)) {
            /* Fetched ahead and its lease ended while it waited: the daemon retries it. */
            jobq_lease_free(l);
            pthread_cond_broadcast(&r->out_cond);
            continue;
        }
        r->inhand++;
        pthread_mutex_unlock(&r->lock);

        slot_put(r, t->index, l);
        char *result = NULL;
        char *error = NULL;
        int64_t began = jobq__mono_ms();
        int verdict = r->handler(r->arg, l, &result, &error);
        bool quick = jobq__mono_ms() - began < QUICK_MS;
        slot_put(r, t->index, NULL);
        if (!atomic_load(&l->cancelled) && report_pending(l)) {
            /* What the handler reported last goes before its outcome, so that a checkpoint
             * or log line is not lost with the attempt. */
            (void)jobq_worker_heartbeat(r->w, l, NULL);
        }
        outcome *o = NULL;
        if (!atomic_load(&l->cancelled) && (o = calloc(1, sizeof(*o))) != NULL) {
            o->lease = l;
            o->failed = verdict != 0;
            o->retry = verdict != JOBQ_FAIL_PERMANENT;
            if (verdict == JOBQ_SNOOZE) {
                int64_t ms = atomic_load(&l->snooze_ms);
                o->snooze_ms = ms >= 0 ? (ms > 0 ? ms : 1) : JOBQ_SNOOZE_DEFAULT_MS;
            }
            o->text = verdict != 0 ? error : result;
            if (verdict != 0) {
                error = NULL;
            } else {
                result = NULL;
            }
        } else {
            /* Cancelled: nothing to report. Out of memory: the lease expires and the daemon
             * retries the job. */
            jobq_lease_free(l);
        }
        free(result);
        free(error);

        pthread_mutex_lock(&r->lock);
        r->inhand--;
        r->quick = quick;
        if (o != NULL) {
            outbox_put_locked(r, o);
        }
        pthread_cond_broadcast(&r->out_cond); /* a handler is free: a completer may fetch */
    }
    r->handlers--;
    pthread_cond_broadcast(&r->out_cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* outcomes_call: sends the ack or fail of the outcomes of list, with a fetch of want jobs
 * waiting up to wait_ms (none when want is 0); *replyp as jobq__call_json. Text that is not
 * UTF-8 is left out. */
static int
outcomes_call(run *r, outcome *list, size_t want, int64_t wait_ms, json_t **replyp)
{
    bool failed = list->failed;
    jobq__jtext t = {0};
    if (failed) {
        jobq__jt_lit(&t, "{\"op\":\"fail\",\"jobs\":[");
    } else {
        jobq__jt_lit(&t, "{\"op\":\"ack\",\"jobs\":[");
    }
    for (outcome *o = list; o != NULL; o = o->next) {
        if (o != list) {
            jobq__jt_lit(&t, ",");
        }
        jobq__jt_lit(&t, "{\"id\":");
        jobq__jt_int(&t, o->lease->id);
        jobq__jt_key(&t, "lease", false);
        jobq__jt_str(&t, o->lease->token);
        if (o->text != NULL && jobq__utf8_valid(o->text)) {
            jobq__jt_key(&t, failed ? "error" : "result", false);
            jobq__jt_str(&t, o->text);
        }
        if (failed) {
            jobq__jt_key(&t, "retry", false);
            if (o->retry) {
                jobq__jt_lit(&t, "true");
            } else {
                jobq__jt_lit(&t, "false");
            }
        }
        if (failed && o->snooze_ms > 0) {
            jobq__jt_key(&t, "snooze", false);
            jobq__jt_int(&t, o->snooze_ms);
        }
        jobq__jt_lit(&t, "}");
    }
    jobq__jt_lit(&t, "]");
    if (want > 0) {
        jobq__jt_lit(&t, ",\"fetch\":{");
        fetch_fields(&t, r->w, want, wait_ms);
        jobq__jt_lit(&t, "}");
    }
    int err = jobq__call_text(r->w->client, failed ? "fail" : "ack", &t, wait_ms, replyp);
    free(t.p);
    return err;
}

/* settle: what became of the outcomes sent (err: the request's error; reply its reply on
 * JOBQ_OK): the list of those to send again (a transport or store failure, lease still
 * live), freeing the others (recorded, or refused because the daemon has moved on: the
 * lease ended, the job is gone or finished). */
static outcome *
settle(outcome *list, int err, json_t *reply)
{
    json_t *results = err == JOBQ_OK ? json_object_get(reply, "results") : NULL;
    outcome *again = NULL;
    outcome **tail = &again;
    int64_t now = jobq__now_ms();
    size_t i = 0;
    for (outcome *o = list; o != NULL; i++) {
        outcome *next = o->next;
        o->next = NULL;
        int e = err;
        if (err == JOBQ_OK) {
            json_t *res = json_array_get(results, i);
            const char *code = json_string_value(
                json_object_get(json_object_get(res, "error"), "code"));
            e = res == NULL || json_is_true(json_object_get(res, "ok")) || code == NULL
                    ? JOBQ_OK
                    : jobq__err_from_code(code);
        }
        bool retry = e != JOBQ_OK && e != JOBQ_ELEASE && e != JOBQ_ENOENT && e != JOBQ_ESTATE &&
                     !fatal_err(e) && now <= atomic_load(&o->lease->expires_at_ms);
        if (retry) {
            *tail = o;
            tail = &o->next;
        } else {
            outcome_free(o); /* done, or the lease is over: the daemon retries the job itself */
        }
        o = next;
    }
    return again;
}

/* completer_main: one completer thread: sends the outbox (acks and fails in separate
 * requests, one request of outcomes in flight at a time so that those that come meanwhile
 * go together in the next) with a fetch for the free handlers, or a fetch alone when handlers
 * are free and no other fetch waits; until every handler left and the outbox is empty. A
 * transport failure is tried again with backoff; a fatal error ends the run. */
static void *
completer_main(void *arg)
{
    run *r = arg;
    int64_t delay = BACKOFF_MIN_MS;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        /* Jobs in hand (running, waiting for a handler, asked for): n, or 2n while handlers
         * are quick, so that a handler finds its next job at hand as it finishes one. */
        int cap = r->quick ? 2 * r->n : r->n;
        int free_slots = cap - r->inhand - r->nready - r->reserved;
        bool fetch_ok = !stopping(r) && free_slots > 0;
        bool send = r->nout > 0 && !r->sending;
        bool poll = !send && fetch_ok && !r->polling;
        if (!send && !poll) {
            if (r->handlers == 0 && r->nout == 0) {
                break;
            }
            timed_wait(r, &r->out_cond);
            continue;
        }
        size_t nsend = 0;
        outcome *list = send ? outbox_take_locked(r, &nsend) : NULL;
        size_t want = fetch_ok ? (size_t)(free_slots < MAX_FETCH ? free_slots : MAX_FETCH) : 0;
        int64_t wait_ms = poll ? RUN_FETCH_WAIT_MS : want > 0 ? SHORT_FETCH_MS : 0;
        r->reserved += (int)want;
        r->sending = r->sending || send;
        r->polling = r->polling || poll;
        pthread_mutex_unlock(&r->lock);

        json_t *reply = NULL;
        int err;
        if (list != NULL) {
            err = outcomes_call(r, list, want, wait_ms, &reply);
        } else {
            err = fetch_call(r->w, want, wait_ms, &reply);
        }
        jobq_lease *got[MAX_FETCH];
        size_t ngot = 0;
        if (err == JOBQ_OK && want > 0 &&
            leases_of(reply, want, list != NULL, got, &ngot) != JOBQ_OK) {
            /* Jobs that cannot be read stay leased until their leases expire: the daemon
             * retries them then. The outcomes were recorded. */
            ngot = 0;
        }
        outcome *again = list != NULL ? settle(list, err, reply) : NULL;
        json_decref(reply);
        if (err != JOBQ_OK && fatal_err(err)) {
            set_fatal(r, err);
        }

        pthread_mutex_lock(&r->lock);
        r->reserved -= (int)want;
        if (poll) {
            r->polling = false;
        }
        if (send) {
            r->sending = false;
        }
        for (size_t i = 0; i < ngot; i++) {
            r->ready[(r->ready_head + r->nready) % (2 * r->n)] = got[i];
            r->nready++;
        }
        pthread_cond_broadcast(&r->job_cond);
        pthread_cond_broadcast(&r->out_cond);
        if (again != NULL) {
            outbox_put_locked(r, again);
        }
        if (err == JOBQ_OK && again == NULL) {
            delay = BACKOFF_MIN_MS;
        } else if (!fatal_err(err)) {
            /* Unreachable, restarting or overloaded daemon, or a store that failed: wait and
             * try again. */
            pthread_mutex_unlock(&r->lock);
            nap(r, delay);
            delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
            pthread_mutex_lock(&r->lock);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* run_free: releases what a run owns once its threads are gone. */
static void
run_free(run *r)
{
    for (int i = 0; i < r->nready; i++) {
        jobq_lease_free(r->ready[(r->ready_head + i) % (2 * r->n)]);
    }
    while (r->out_head != NULL) {
        outcome *o = r->out_head;
        r->out_head = o->next;
        outcome_free(o);
    }
    free(r->ready);
    free(r->slots);
}

JOBQ_API int
jobq_worker_run(jobq_worker *worker, jobq_handler handler, void *arg, int concurrency)
{
    if (worker == NULL || handler == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_worker_run: worker and handler must not be NULL");
    }
    if (concurrency < 1 || concurrency > MAX_CONCURRENCY) {
        return jobq__fail(JOBQ_EINVAL, "concurrency must be 1..%d, not %d", MAX_CONCURRENCY,
                          concurrency);
    }
    run r = {.w = worker, .handler = handler, .arg = arg, .n = concurrency};
    atomic_init(&r.fatal, 0);
    r.slots = calloc((size_t)concurrency, sizeof(*r.slots));
    r.ready = calloc(2 * (size_t)concurrency, sizeof(*r.ready));
    run_thread *threads = calloc((size_t)concurrency, sizeof(*threads));
    if (r.slots == NULL || r.ready == NULL || threads == NULL) {
        run_free(&r);
        free(threads);
        return jobq__fail(JOBQ_ENOMEM, "out of memory starting %d worker threads", concurrency);
    }
    bool locks = pthread_mutex_init(&r.lock, NULL) == 0;
    int nconds = 0;
    pthread_cond_t *conds[] = {&r.cond, &r.job_cond, &r.out_cond};
    while (locks && nconds < 3 && pthread_cond_init(conds[nconds], NULL) == 0) {
        nconds++;
    }
    if (!locks || nconds < 3) {
        for (int i = 0; i < nconds; i++) {
            pthread_cond_destroy(conds[i]);
        }
        if (locks) {
            pthread_mutex_destroy(&r.lock);
        }
        run_free(&r);
        free(threads);
        return jobq__fail(JOBQ_ENOMEM, "cannot create the locks of the worker");
    }
    pthread_t hb;
    pthread_t completers[COMPLETERS];
    int ncompleters = 0;
    int err = JOBQ_OK;
    bool hb_started = pthread_create(&hb, NULL, heartbeat_main, &r) == 0;
    int started = 0;
    if (!hb_started) {
        err = jobq__fail(JOBQ_ENOMEM, "cannot start the heartbeat thread");
    }
    for (int i = 0; hb_started && i < concurrency; i++) {
        threads[i] = (run_thread){.r = &r, .index = i};
        pthread_mutex_lock(&r.lock);
        r.handlers++;
        pthread_mutex_unlock(&r.lock);
        if (pthread_create(&threads[i].tid, NULL, handler_main, &threads[i]) != 0) {
            pthread_mutex_lock(&r.lock);
            r.handlers--;
            pthread_mutex_unlock(&r.lock);
            jobq__fail(JOBQ_ENOMEM, "cannot start %d worker threads (started %d)", concurrency,
                       started);
            set_fatal(&r, JOBQ_ENOMEM);
            break;
        }
        started++;
    }
    for (int i = 0; hb_started && started > 0 && i < COMPLETERS; i++) {
        if (pthread_create(&completers[i], NULL, completer_main, &r) != 0) {
            if (ncompleters == 0) {
                jobq__fail(JOBQ_ENOMEM, "cannot start the completer thread");
                set_fatal(&r, JOBQ_ENOMEM);
            }
            break;
        }
        ncompleters++;
    }
    if (ncompleters == 0) {
        /* No completer brings jobs or ends a fetch: the handlers see the stop and leave. */
        set_fatal(&r, atomic_load(&r.fatal) != 0 ? atomic_load(&r.fatal) : JOBQ_ENOMEM);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i].tid, NULL);
    }
    for (int i = 0; i < ncompleters; i++) {
        pthread_join(completers[i], NULL);
    }
    if (hb_started) {
        pthread_mutex_lock(&r.lock);
        r.done = true;
        pthread_cond_broadcast(&r.cond);
        pthread_mutex_unlock(&r.lock);
        pthread_join(hb, NULL);
    }
    if (err == JOBQ_OK && (err = atomic_load(&r.fatal)) != JOBQ_OK) {
        jobq__fail(err, "%s", r.fatal_msg[0] != '\0' ? r.fatal_msg : jobq_strerror(err));
    }
    for (int i = 0; i < 3; i++) {
        pthread_cond_destroy(conds[i]);
    }
    pthread_mutex_destroy(&r.lock);
    run_free(&r);
    free(threads);
    return err;
}
