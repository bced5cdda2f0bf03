/* worker.c: jobq_worker, the remote-worker side of libjobq: fetch, ack, fail and heartbeat
 * with leases (proto/PROTOCOL.md, "Remote workers"), and jobq_worker_run, a pool of threads
 * that runs a handler per job while one thread keeps the leases of the jobs in hand alive. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"

#define MAX_FETCH 100          /* most jobs in one fetch (the daemon's limit) */
#define RUN_FETCH_WAIT_MS 2000 /* a run's long poll: short, so a stop is seen soon */
#define BACKOFF_MIN_MS 100     /* first pause after a transport failure ... */
#define BACKOFF_MAX_MS 5000    /* ... doubling up to this */
#define SLICE_MS 50            /* sleeps are cut in slices this long to see a stop */
#define MIN_LEASE_MS 300       /* a lease length below this is taken as this */
#define MAX_CONCURRENCY 100000

struct jobq_lease {
    int64_t id;
    char *queue;
    char *payload; /* compact JSON text */
    char *token;   /* the lease token, quoted by ack, fail, heartbeat */
    int32_t attempt;
    int32_t max_attempts;
    int64_t timeout_ms;
    int64_t lease_ms;              /* lease length: expiry - now at the fetch, ms */
    _Atomic int64_t expires_at_ms; /* ms since the epoch; moved on by heartbeats */
    _Atomic bool cancelled;        /* a heartbeat said cancel, or the lease ended */
};

/* slot: one of jobq_worker_run's threads, seen by the heartbeat thread. */
typedef struct slot {
    jobq_lease *lease; /* the job in hand, NULL when idle */
    int64_t next_hb;   /* monotonic ms of its next heartbeat */
    bool hb_busy;      /* the heartbeat thread is using lease: it must not be freed */
} slot;

/* run: the state of one jobq_worker_run. */
typedef struct run {
    jobq_worker *w;
    jobq_handler handler;
    void *arg;
    int n;                /* threads */
    slot *slots;          /* n */
    pthread_mutex_t lock; /* guards slots and done */
    pthread_cond_t cond;  /* slot changes, heartbeat done, run end */
    bool done;            /* every thread has left: the heartbeat thread ends */
    _Atomic int fatal;    /* the error that ends the run, 0 while none */
    char fatal_msg[512];  /* jobq_errmsg() of the thread that met it (under lock) */
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
           err == JOBQ_ECLOSED;
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

JOBQ_API void
jobq_lease_free(jobq_lease *lease)
{
    if (lease == NULL) {
        return;
    }
    free(lease->queue);
    free(lease->payload);
    free(lease->token);
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
    l->queue = strdup(queue);
    l->token = strdup(token);
    l->payload =
        payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
    if (l->queue == NULL || l->token == NULL || l->payload == NULL) {
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

/* fetch_fields: the fields of a fetch from worker's queues (a new object), NULL on out of
 * memory. */
static json_t *
fetch_fields(const jobq_worker *worker, size_t max, int64_t wait_ms)
{
    json_t *queues = json_array();
    for (size_t i = 0; queues != NULL && i < worker->nqueues; i++) {
        if (json_array_append_new(queues, json_string(worker->queues[i])) != 0) {
            json_decref(queues);
            queues = NULL;
        }
    }
    return queues == NULL
               ? NULL
               : json_pack("{s:o, s:I, s:I, s:s}", "queues", queues, "max", (json_int_t)max,
                           "timeout", (json_int_t)wait_ms, "worker", worker->name);
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
    json_t *req = fetch_fields(worker, max, wait_ms);
    if (req != NULL && json_object_set_new(req, "op", json_string("fetch")) != 0) {
        json_decref(req);
        req = NULL;
    }
    json_t *reply;
    int err = jobq__call_json(worker->client, "fetch", req, wait_ms, &reply);
    json_decref(req);
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

/* outcome_call: acks (error NULL, !failed) or fails lease. With nextp, the request also
 * asks for one more job (waiting up to RUN_FETCH_WAIT_MS), which *nextp receives (NULL when
 * none came): one round trip per job for jobq_worker_run. */
static int
outcome_call(jobq_worker *worker, const jobq_lease *lease, bool failed, const char *text,
             bool retry, jobq_lease **nextp)
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
    int64_t wait_ms = 0;
    if (req != NULL && nextp != NULL) {
        *nextp = NULL;
        wait_ms = RUN_FETCH_WAIT_MS;
        json_t *f = fetch_fields(worker, 1, wait_ms);
        if (f == NULL || json_object_set_new(req, "fetch", f) != 0) {
            json_decref(req);
            req = NULL;
        }
    }
    json_t *reply;
    err = jobq__call_json(worker->client, op, req, wait_ms, &reply);
    json_decref(req);
    if (err != JOBQ_OK) {
        return err;
    }
    if (nextp != NULL) {
        jobq_lease *got[1];
        size_t n = 0;
        if (leases_of(reply, 1, true, got, &n) == JOBQ_OK && n == 1) {
            *nextp = got[0];
        }
        /* A reply whose jobs cannot be read still recorded the outcome: the run fetches. */
    }
    json_decref(reply);
    return JOBQ_OK;
}

JOBQ_API int
jobq_worker_ack(jobq_worker *worker, const jobq_lease *lease, const char *result)
{
    return outcome_call(worker, lease, false, result, false, NULL);
}

JOBQ_API int
jobq_worker_fail(jobq_worker *worker, const jobq_lease *lease, const char *error, bool retry)
{
    return outcome_call(worker, lease, true, error, retry, NULL);
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
    json_t *reply;
    err = jobq__call_json(worker->client, "heartbeat", req, 0, &reply);
    json_decref(req);
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
        r->slots[i].next_hb = jobq__mono_ms() + hb_period(lease);
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
            if (r->slots[i].next_hb <= now) {
                due = i;
                break;
            }
            if (r->slots[i].next_hb < next) {
                next = r->slots[i].next_hb;
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

/* report: acks or fails lease as the handler decided, retrying transport failures with
 * backoff until the lease expires. A refusal (lease_expired, a finished job) is dropped:
 * the daemon has moved on. Returns a fatal error, else JOBQ_OK. */
static int
report(run *r, jobq_lease *l, int outcome, const char *result, const char *error,
       jobq_lease **nextp)
{
    int64_t delay = BACKOFF_MIN_MS;
    for (;;) {
        jobq_lease **next = stopping(r) ? NULL : nextp;
        int err;
        if (outcome == 0) {
            err = outcome_call(r->w, l, false, result, false, next);
        } else {
            err = outcome_call(r->w, l, true, error, outcome != JOBQ_FAIL_PERMANENT, next);
        }
        if (err == JOBQ_EINVAL && (result != NULL || error != NULL)) {
            /* Text that is not UTF-8: report the outcome without it. */
            result = NULL;
            error = NULL;
            continue;
        }
        if (err == JOBQ_OK || err == JOBQ_ELEASE || err == JOBQ_ENOENT || err == JOBQ_ESTATE) {
            return JOBQ_OK;
        }
        if (fatal_err(err)) {
            return err;
        }
        if (jobq__now_ms() > atomic_load(&l->expires_at_ms)) {
            return JOBQ_OK; /* the lease is over: the daemon retries the job by itself */
        }
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
    }
}

/* run_one: runs the handler on lease with heartbeats, then reports its outcome, asking for
 * the next job in the same request (*nextp: NULL when none came). Frees the lease. Returns
 * a fatal error, else JOBQ_OK. */
static int
run_one(run *r, int i, jobq_lease *l, jobq_lease **nextp)
{
    slot_put(r, i, l);
    char *result = NULL;
    char *error = NULL;
    int outcome = r->handler(r->arg, l, &result, &error);
    slot_put(r, i, NULL);
    int err = JOBQ_OK;
    if (!atomic_load(&l->cancelled)) {
        if (outcome != 0 && outcome != JOBQ_FAIL_PERMANENT) {
            outcome = JOBQ_FAIL_RETRY;
        }
        err = report(r, l, outcome, result, error, nextp);
    }
    free(result);
    free(error);
    jobq_lease_free(l);
    return err;
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
    pthread_mutex_unlock(&r->lock);
}

/* thread_main: one pool thread: fetch one job, run it, report it; again until stopped. */
static void *
thread_main(void *arg)
{
    run_thread *t = arg;
    run *r = t->r;
    int64_t delay = BACKOFF_MIN_MS;
    jobq_lease *next = NULL; /* the job that came with the last ack or fail */
    while (next != NULL || !stopping(r)) {
        jobq_lease *l = next;
        size_t n = 1;
        int err = JOBQ_OK;
        next = NULL;
        if (l == NULL) {
            err = jobq_worker_fetch(r->w, 1, RUN_FETCH_WAIT_MS, &l, &n);
        }
        if (err == JOBQ_OK) {
            delay = BACKOFF_MIN_MS;
            if (n == 1) {
                err = run_one(r, t->index, l, &next);
            }
        } else if (!fatal_err(err)) {
            /* Unreachable, restarting or overloaded daemon: wait and try again. */
            nap(r, delay);
            delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
            continue;
        }
        if (err != JOBQ_OK) {
            set_fatal(r, err);
        }
    }
    return NULL;
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
    run_thread *threads = calloc((size_t)concurrency, sizeof(*threads));
    if (r.slots == NULL || threads == NULL) {
        free(r.slots);
        free(threads);
        return jobq__fail(JOBQ_ENOMEM, "out of memory starting %d worker threads", concurrency);
    }
    if (pthread_mutex_init(&r.lock, NULL) != 0) {
        free(r.slots);
        free(threads);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a mutex for the worker");
    }
    if (pthread_cond_init(&r.cond, NULL) != 0) {
        pthread_mutex_destroy(&r.lock);
        free(r.slots);
        free(threads);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a condition variable for the worker");
    }
    pthread_t hb;
    int err = JOBQ_OK;
    bool hb_started = pthread_create(&hb, NULL, heartbeat_main, &r) == 0;
    int started = 0;
    if (!hb_started) {
        err = jobq__fail(JOBQ_ENOMEM, "cannot start the heartbeat thread");
    }
    for (int i = 0; hb_started && i < concurrency; i++) {
        threads[i] = (run_thread){.r = &r, .index = i};
        if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0) {
            jobq__fail(JOBQ_ENOMEM, "cannot start %d worker threads (started %d)", concurrency,
                       started);
            set_fatal(&r, JOBQ_ENOMEM);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i].tid, NULL);
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
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    free(r.slots);
    free(threads);
    return err;
}
