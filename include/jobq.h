/* jobq.h: the one public header of libjobq, the producer (and later worker) library for jobqd. */
#ifndef JOBQ_H
#define JOBQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define JOBQ_API __attribute__((visibility("default")))
#else
#define JOBQ_API
#endif

#define JOBQ_VERSION_MAJOR 0
#define JOBQ_VERSION_MINOR 1
#define JOBQ_VERSION_PATCH 0

/** jobq_err: every function that can fail returns one of these. 0 is success. Append only:
 *  the numbers never change. The wire-protocol error code each one stands for is in
 *  proto/PROTOCOL.md. */
typedef enum jobq_err {
    JOBQ_OK = 0,
    JOBQ_ENOMEM = 1,     /* out of memory */
    JOBQ_EINVAL = 2,     /* invalid argument (local check or server "invalid_argument") */
    JOBQ_ETIMEDOUT = 3,  /* no reply within the call's timeout, or a wait that timed out */
    JOBQ_ECLOSED = 4,    /* the client was closed */
    JOBQ_EPROTO = 5,     /* malformed request or reply, unknown op ("malformed", "unknown_op") */
    JOBQ_ETOOBIG = 6,    /* over a size limit ("too_large", "*_too_large") */
    JOBQ_ENOENT = 7,     /* no such job ("not_found") */
    JOBQ_EUNAUTH = 8,    /* missing or wrong token ("unauthorized") */
    JOBQ_ESTORE = 9,     /* the daemon's database failed ("store_error") */
    JOBQ_EFULL = 10,     /* the daemon's disk or a queue is full ("store_full", "queue_full") */
    JOBQ_EUNREACH = 11,  /* the daemon cannot be reached (refused, no such socket) */
    JOBQ_EQUEUE = 12,    /* the queue is not configured ("unknown_queue", "too_many_queues") */
    JOBQ_ESTATE = 13,    /* the job is in a state that forbids this ("invalid_state") */
    JOBQ_ECONFLICT = 14, /* same key, different payload ("key_conflict") */
    JOBQ_ESHUTDOWN = 15, /* the daemon is shutting down ("shutting_down") */
    JOBQ_EINTERNAL = 16, /* any other server error ("internal") */
    JOBQ_ELEASE = 17,    /* the lease of a fetched job has ended ("lease_expired") */
    JOBQ_EBUSY = 18,     /* at a limit, retry later ("too_many_waits", "too_many_connections") */
    JOBQ_EFORBIDDEN = 19, /* the token (read_token) may not do this op ("forbidden") */
    JOBQ_EUNAVAIL = 20,   /* the daemon's database cannot be reached now: nothing was done,
                           * retry ("store_unavailable") */
} jobq_err;

/** jobq_strerror: a static, human-readable text for an error code. Never NULL. Any thread. */
JOBQ_API const char *jobq_strerror(int err);

/** jobq_errmsg: the detailed message of the last failed call made by the calling thread
 *  (the server's "message" when the server answered with an error, else a local reason).
 *  Returns "" when there is none. The string belongs to the library and stays valid until
 *  the same thread's next call. */
JOBQ_API const char *jobq_errmsg(void);

/** Job states, as on the wire. Persisted: the numbers never change. */
typedef enum jobq_state {
    JOBQ_SCHEDULED = 0, /* run_at in the future */
    JOBQ_READY = 1,
    JOBQ_RUNNING = 2,
    JOBQ_RETRYING = 3, /* failed, waiting for its backoff */
    JOBQ_SUCCEEDED = 4,
    JOBQ_DEAD = 5, /* attempts exhausted or not retryable */
    JOBQ_CANCELLED = 6,
    JOBQ_WAITING = 7, /* submitted with "after": waits for its parent jobs to succeed */
} jobq_state;

/** jobq_state_name: "scheduled", "ready", ... ; "unknown" for a value out of range. */
JOBQ_API const char *jobq_state_name(int state);
/** jobq_state_parse: the jobq_state for a name, or -1. */
JOBQ_API int jobq_state_parse(const char *name);

/** jobq_client: an opaque connection to one jobqd. Thread-safe: any number of threads may
 *  issue calls on one client at once, and they run concurrently: for tcp:// and ipc:// URLs
 *  each call in flight uses a socket of its own from the client's pool (libjobq speaks the
 *  SP protocol itself); for other URLs each call uses its own context of one nng REQ
 *  socket. */
typedef struct jobq_client jobq_client;

/** jobq_client_open: connects to the daemon at url: tcp://HOST:PORT (an IPv4 address, [IPv6]
 *  or a host name), ipc:///PATH, tls+tcp://HOST:PORT, ws://HOST:PORT/PATH. NULL url means
 *  $JOBQ_URL, else tcp://127.0.0.1:7450. tcp:// and ipc:// are spoken by libjobq on plain
 *  sockets unless $JOBQ_TRANSPORT is "nng" (then nng's REQ socket, as for the other schemes;
 *  a value other than "nng" or "native" is JOBQ_EINVAL). Returns JOBQ_EUNREACH when nothing
 *  listens there; after a successful open the client reconnects by itself if the daemon
 *  restarts (a call that finds nobody listening for 1 s fails with JOBQ_EUNREACH). On success *clientp owns a client that the caller closes with
 *  jobq_client_close; on failure *clientp is not written. */
JOBQ_API int jobq_client_open(jobq_client **clientp, const char *url);

/** jobq_client_opts: how jobq_client_open_opts connects. Zero-initialise it; NULL fields
 *  fall back to the environment ($JOBQ_TOKEN, $JOBQ_TLS_CA, $JOBQ_TLS_CERT, $JOBQ_TLS_KEY),
 *  which jobq_client_open reads too. Fields are only appended. */
typedef struct jobq_client_opts {
    const char *token;       /* sent with every request when the daemon sets auth_token */
    const char *tls_ca;      /* PEM file of the CA that signed the daemon's certificate */
    const char *tls_cert;    /* PEM client certificate, when the daemon requires one */
    const char *tls_key;     /* PEM key of tls_cert */
    const char *server_name; /* name to verify in the daemon's certificate; default: the
                                URL's host */
} jobq_client_opts;

/** jobq_client_open_opts: jobq_client_open with explicit options (opts may be NULL). For a
 *  tls+tcp:// URL the daemon's certificate is verified against tls_ca; without a CA the
 *  connection is refused (JOBQ_EINVAL), never silently unverified. */
JOBQ_API int jobq_client_open_opts(jobq_client **clientp, const char *url,
                                   const jobq_client_opts *opts);

/** jobq_client_close: closes the client; calls still in flight fail with JOBQ_ECLOSED.
 *  Accepts NULL. No other call may start on the client once this was called. */
JOBQ_API void jobq_client_close(jobq_client *client);

/** jobq_client_set_timeout: the timeout of each call made from now on, in milliseconds
 *  (default 30000; jobq_wait adds its own wait time to it). Returns JOBQ_EINVAL if ms <= 0. */
JOBQ_API int jobq_client_set_timeout(jobq_client *client, int64_t timeout_ms);

/** jobq_ping: a round trip to the daemon. */
JOBQ_API int jobq_ping(jobq_client *client);

/** jobq_submit_opts: optional settings of a submit. Zero-initialise it and set what you
 *  need: every zero/NULL field means "the queue's default". Fields are only appended. */
typedef struct jobq_submit_opts {
    int32_t priority;     /* higher runs first; default 0 */
    int64_t delay_ms;     /* run no earlier than now + delay_ms */
    int64_t run_at_ms;    /* run no earlier than this Unix time in ms (wins over delay_ms) */
    int32_t max_attempts; /* 0: the queue's max_attempts */
    int64_t timeout_ms;   /* 0: the queue's timeout */
    const char *key;      /* optional idempotency key (unique per queue); NULL for none */
    const int64_t *after; /* ids of jobs this one waits for (state waiting); NULL: none */
    size_t nafter;        /* entries of after */
    bool after_always;    /* run even if a parent ends dead or cancelled (default: cancelled) */
    const char *traceparent; /* W3C trace context handed to every attempt; NULL: none */
    const char *tracestate;  /* with traceparent; NULL: none */
    const char *group_key;   /* fairness key: the queue's key_concurrency and key_rate apply
                              * per key, and keys take turns; NULL: none */
    int dedupe;              /* a jobq_dedupe: what a submit of a used key does; 0: ttl */
    int64_t debounce_max_ms; /* dedupe debounce: latest run time after the first submit; 0: none */
    int64_t expires_at_ms;   /* cancelled (error "expired") if not started by then; 0: never */
    int64_t expires_in_ms;   /* the same, as a duration from the submit (wins when set) */
} jobq_submit_opts;

/** How a submit with a key already used on its queue is decided (jobq_submit_opts.dedupe,
 *  "dedupe" on the wire). Numbers never change. */
typedef enum jobq_dedupe {
    JOBQ_DEDUPE_TTL = 0,    /* one job per key_ttl from the key's first submit (the default) */
    JOBQ_DEDUPE_UNTIL_DONE, /* one job until that job ends: the key is freed at its end */
    JOBQ_DEDUPE_REPLACE,    /* a job still waiting to run takes the new payload and run time */
    JOBQ_DEDUPE_DEBOUNCE    /* replace, the run time capped at first submit + debounce_max_ms */
} jobq_dedupe;

/** jobq_submit: submits one job to queue with payload, a JSON text (any JSON value; NULL
 *  means null). opts may be NULL. Returns once the daemon has made the job durable. On
 *  success writes the job's id to *idp and, if duplicatep is not NULL, whether the key
 *  matched an existing job (then *idp is that job's id). */
JOBQ_API int jobq_submit(jobq_client *client, const char *queue, const char *payload,
                         const jobq_submit_opts *opts, int64_t *idp, bool *duplicatep);

/** What jobq_submit_ex reports of a submit besides the job's id. */
typedef struct jobq_submitted {
    bool duplicate; /* the key matched an existing job, which is the id */
    bool replaced;  /* dedupe replace/debounce: a job waiting to run took the new payload and
                     * run time; the id is that job's */
    int state;      /* the job's jobq_state now (-1 if unknown, e.g. deleted) */
} jobq_submitted;

/** jobq_submit_ex: jobq_submit, reporting in *outp (may be NULL) whether the key matched a
 *  job (duplicate), whether a waiting job was replaced, and the job's state. */
JOBQ_API int jobq_submit_ex(jobq_client *client, const char *queue, const char *payload,
                            const jobq_submit_opts *opts, int64_t *idp, jobq_submitted *outp);

/** jobq_submit_batch: submits n jobs to queue atomically: all are stored or none.
 *  payloads[i] is a JSON text. opts (may be NULL) applies to every job, except key, which
 *  must be NULL. On success ids[0..n-1] (caller-allocated, n entries) receive the ids. */
JOBQ_API int jobq_submit_batch(jobq_client *client, const char *queue, const char *const *payloads,
                               size_t n, const jobq_submit_opts *opts, int64_t *ids);

/** jobq_submit_group: jobq_submit_batch whose jobs form a group: *groupp receives the
 *  group's id (see `wait` and `get` with "group" in proto/PROTOCOL.md). When
 *  on_complete_queue is not NULL, one job is submitted to it when every member has ended,
 *  carrying on_complete_payload (a JSON text; NULL means null) and each member's outcome. */
JOBQ_API int jobq_submit_group(jobq_client *client, const char *queue, const char *const *payloads,
                               size_t n, const jobq_submit_opts *opts,
                               const char *on_complete_queue, const char *on_complete_payload,
                               int64_t *ids, int64_t *groupp);

/** jobq_job: an opaque, immutable snapshot of one job, as returned by jobq_get and
 *  jobq_wait. The caller owns it and frees it with jobq_job_free. Strings returned by
 *  the accessors belong to the job and live as long as it. */
typedef struct jobq_job jobq_job;

JOBQ_API void jobq_job_free(jobq_job *job); /* accepts NULL */
JOBQ_API int64_t jobq_job_id(const jobq_job *job);
JOBQ_API const char *jobq_job_queue(const jobq_job *job);
JOBQ_API const char *jobq_job_payload(const jobq_job *job); /* compact JSON text */
JOBQ_API int jobq_job_state(const jobq_job *job);           /* a jobq_state */
JOBQ_API int32_t jobq_job_priority(const jobq_job *job);
JOBQ_API int32_t jobq_job_attempt(const jobq_job *job);
JOBQ_API int32_t jobq_job_max_attempts(const jobq_job *job);
JOBQ_API int64_t jobq_job_timeout_ms(const jobq_job *job);
JOBQ_API const char *jobq_job_key(const jobq_job *job);    /* NULL if none */
JOBQ_API const char *jobq_job_group_key(const jobq_job *job); /* NULL if none */
JOBQ_API const char *jobq_job_result(const jobq_job *job); /* NULL if none */
JOBQ_API const char *jobq_job_error(const jobq_job *job);  /* NULL if none */
JOBQ_API int64_t jobq_job_run_at_ms(const jobq_job *job);
JOBQ_API int64_t jobq_job_created_at_ms(const jobq_job *job);
JOBQ_API int64_t jobq_job_started_at_ms(const jobq_job *job);  /* 0 if never started */
JOBQ_API int64_t jobq_job_finished_at_ms(const jobq_job *job); /* 0 if not finished */
/** jobq_job_json: the whole job object as the daemon sent it (compact JSON text). */
JOBQ_API const char *jobq_job_json(const jobq_job *job);

/** jobq_get: fetches job id. On success *jobp owns a snapshot (free with jobq_job_free). */
JOBQ_API int jobq_get(jobq_client *client, int64_t id, jobq_job **jobp);

/** jobq_cancel: cancels job id. JOBQ_ESTATE if it already finished. */
JOBQ_API int jobq_cancel(jobq_client *client, int64_t id);

/** jobq_wait: waits until job id has finished (succeeded, dead or cancelled) or wait_ms
 *  passed (then JOBQ_ETIMEDOUT). On success, if jobp is not NULL, *jobp owns the final
 *  snapshot. */
JOBQ_API int jobq_wait(jobq_client *client, int64_t id, int64_t wait_ms, jobq_job **jobp);

/** When jobq_wait_ex returns (a jobq_wait_opts.return_when). Numbers never change. */
typedef enum jobq_wait_when {
    JOBQ_WAIT_ALL = 0,           /* every job ended (the default) */
    JOBQ_WAIT_FIRST = 1,         /* the first job ended, whatever its state */
    JOBQ_WAIT_FIRST_FAILURE = 2, /* the first job ended dead or cancelled, or every job ended */
} jobq_wait_when;

/** jobq_wait_opts: optional settings of jobq_wait_ex. Zero-initialise it and set what you
 *  need. Fields are only appended. */
typedef struct jobq_wait_opts {
    int return_when;     /* a jobq_wait_when; 0: JOBQ_WAIT_ALL */
    bool cancel_pending; /* cancel every job still pending when the wait is answered, in the
                            same transaction (a running one is cancelled as jobq_cancel does,
                            with the error "lost a race to job N"); not on a timeout */
    int64_t group;       /* wait on the jobs of this group instead of ids (0: use ids) */
} jobq_wait_opts;

/** jobq_wait_ex: waits on the n jobs of ids (or opts->group) until opts->return_when is met or
 *  wait_ms passed (then JOBQ_ETIMEDOUT). opts may be NULL (jobq_wait's behaviour on several
 *  jobs). On success, if jobp is not NULL, *jobp owns the snapshot of the job that answered
 *  the wait: the first to end (JOBQ_WAIT_FIRST), the first to fail or else the last to end
 *  (JOBQ_WAIT_FIRST_FAILURE), the first of ids that did not succeed or else the first of
 *  ids (JOBQ_WAIT_ALL). For the other jobs' states use jobq_get or the raw reply of `wait`
 *  (proto/PROTOCOL.md) through jobq_call. */
JOBQ_API int jobq_wait_ex(jobq_client *client, const int64_t *ids, size_t n, int64_t wait_ms,
                          const jobq_wait_opts *opts, jobq_job **jobp);

/** jobq_call: sends one raw request (a JSON object text, see proto/PROTOCOL.md) and returns
 *  the daemon's reply object as text in *replyp, which the caller frees with jobq_free.
 *  Returns JOBQ_OK whenever a reply arrived, even an {"ok": false} one: the caller reads
 *  it. Transport failures return their error and leave *replyp unwritten. */
JOBQ_API int jobq_call(jobq_client *client, const char *request, char **replyp);

/** jobq_free: frees memory the library handed to the caller (jobq_call replies). */
JOBQ_API void jobq_free(void *ptr);

/* ---- remote workers ---- */

/** jobq_worker: fetches jobs of some queues from the daemon and reports their outcome.
 *  Built on a client, which must outlive it. Thread-safe like the client. */
typedef struct jobq_worker jobq_worker;

/** jobq_lease: one fetched job and its lease (opaque). The caller owns it and frees it with
 *  jobq_lease_free once it has acked or failed it (or given up on it). Strings returned by
 *  the accessors live as long as the lease. */
typedef struct jobq_lease jobq_lease;

/** jobq_worker_open: a worker for nqueues queues (tried in that order). The names are
 *  copied. On success *workerp owns the worker (free with jobq_worker_close). */
JOBQ_API int jobq_worker_open(jobq_worker **workerp, jobq_client *client, const char *const *queues,
                              size_t nqueues);

/** jobq_worker_close: frees the worker (after jobq_worker_run returned). Accepts NULL. */
JOBQ_API void jobq_worker_close(jobq_worker *worker);

/** jobq_worker_fetch: up to max (1..100) jobs, waiting up to wait_ms for one to be ready
 *  (the daemon holds the request: no polling). leases is a caller array of max pointers; on
 *  success *np of them are set, each owned by the caller; *np may be 0 after the wait. */
JOBQ_API int jobq_worker_fetch(jobq_worker *worker, size_t max, int64_t wait_ms,
                               jobq_lease **leases, size_t *np);

/** jobq_worker_ack: the job succeeded; result (may be NULL) is kept as its result. */
JOBQ_API int jobq_worker_ack(jobq_worker *worker, const jobq_lease *lease, const char *result);

/** jobq_worker_fail: the job failed; retry: retried with backoff until max_attempts, else
 *  dead at once. error (may be NULL) is kept as its error. */
JOBQ_API int jobq_worker_fail(jobq_worker *worker, const jobq_lease *lease, const char *error,
                              bool retry);

/** jobq_worker_heartbeat: extends the lease. *cancelp (may be NULL) becomes true if the job
 *  was cancelled: stop working on it (its lease is revoked). JOBQ_ELEASE if the lease ended. */
JOBQ_API int jobq_worker_heartbeat(jobq_worker *worker, jobq_lease *lease, bool *cancelp);

JOBQ_API void jobq_lease_free(jobq_lease *lease); /* accepts NULL */
JOBQ_API int64_t jobq_lease_id(const jobq_lease *lease);
JOBQ_API const char *jobq_lease_queue(const jobq_lease *lease);
JOBQ_API const char *jobq_lease_payload(const jobq_lease *lease); /* compact JSON text */
/** jobq_lease_traceparent, jobq_lease_tracestate: the job's W3C trace context, or NULL. */
JOBQ_API const char *jobq_lease_traceparent(const jobq_lease *lease);
JOBQ_API const char *jobq_lease_tracestate(const jobq_lease *lease);

/** jobq_lease_group_key: the job's group_key, or NULL. Borrowed from the lease. */
JOBQ_API const char *jobq_lease_group_key(const jobq_lease *lease);
JOBQ_API int32_t jobq_lease_attempt(const jobq_lease *lease);
JOBQ_API int32_t jobq_lease_max_attempts(const jobq_lease *lease);
JOBQ_API int64_t jobq_lease_timeout_ms(const jobq_lease *lease);
JOBQ_API int64_t jobq_lease_expires_at_ms(const jobq_lease *lease);
/** jobq_lease_cancelled: true once a heartbeat learned the job was cancelled. Any thread. */
JOBQ_API bool jobq_lease_cancelled(const jobq_lease *lease);

/* What a job reports while it runs: progress, a checkpoint and log lines. Each call only
 * records the report in the lease (it never blocks on the network); the report goes with the
 * lease's next heartbeat: under jobq_worker_run within about a second, and before the job's
 * ack or fail; otherwise with the caller's next jobq_worker_heartbeat. jobqd keeps the latest
 * progress and checkpoint on the job (`get`) and the log lines in the job's capped log
 * (`logs`). Any thread, concurrently with the heartbeat thread. */

/** jobq_lease_progress: the job is pct percent done (0 to 100), with note (NULL: none; cut
 *  to 200 bytes). Replaces a report not sent yet. JOBQ_EINVAL: pct out of range, or note not
 *  UTF-8. */
JOBQ_API int jobq_lease_progress(const jobq_lease *lease, double pct, const char *note);

/** jobq_lease_checkpoint: json (a JSON text, at most 64 KiB compact) is where the job could
 *  resume: if this attempt does not finish (a crash, a lost lease), the next one gets it
 *  (jobq_lease_checkpoint_get, JOBQ_CHECKPOINT for `jobq work` commands). Replaces one not
 *  sent yet. JOBQ_EINVAL: not JSON; JOBQ_ETOOBIG: too large. */
JOBQ_API int jobq_lease_checkpoint(const jobq_lease *lease, const char *json);

/** jobq_lease_log: appends line (UTF-8, cut to 4 KiB) to the job's log. At most 1,000 lines
 *  wait for one heartbeat; beyond that the oldest are dropped. JOBQ_EINVAL: not UTF-8. */
JOBQ_API int jobq_lease_log(const jobq_lease *lease, const char *line);

/** jobq_lease_checkpoint_get: the checkpoint an earlier attempt of the job left (compact
 *  JSON text, living as long as the lease), or NULL: start from the beginning. */
JOBQ_API const char *jobq_lease_checkpoint_get(const jobq_lease *lease);

/** jobq_lease_parent_results: the results of the jobs this one ran `after`, a compact JSON
 *  object keyed by parent id (living as long as the lease), or NULL when it has no parent
 *  (JOBQ_PARENT_RESULTS for `jobq work` commands). */
JOBQ_API const char *jobq_lease_parent_results(const jobq_lease *lease);

/** jobq_handler: runs one job on one of jobq_worker_run's threads. Returns 0 on success (then
 *  *resultp, if the handler set it to a malloc'ed string, is the result; the library frees
 *  it), or JOBQ_FAIL_RETRY / JOBQ_FAIL_PERMANENT (then *errorp likewise is the error). While
 *  it runs the library sends heartbeats; jobq_lease_cancelled(job) turns true if the job is
 *  cancelled, and the handler should then return soon (its outcome is ignored). */
typedef int (*jobq_handler)(void *arg, const jobq_lease *job, char **resultp, char **errorp);
#define JOBQ_FAIL_RETRY 1
#define JOBQ_FAIL_PERMANENT 2
/** A handler's return: snooze the job: it runs again after the delay of the handler's last
 *  jobq_lease_snooze call (JOBQ_SNOOZE_DEFAULT_MS without one), and this attempt does not
 *  count toward max_attempts (*errorp, if set, is kept as the reason). */
#define JOBQ_SNOOZE 3
#define JOBQ_SNOOZE_DEFAULT_MS 30000

/** jobq_lease_snooze: the delay of the snooze of a handler that returns JOBQ_SNOOZE. Any
 *  thread. JOBQ_EINVAL for a NULL lease or a negative delay. */
JOBQ_API int jobq_lease_snooze(const jobq_lease *lease, int64_t delay_ms);

/** jobq_worker_snooze: ends lease's attempt with a snooze (outside jobq_worker_run): the job
 *  runs again after delay_ms, the attempt not counted toward max_attempts; reason (may be
 *  NULL) is kept as the job's error. */
JOBQ_API int jobq_worker_snooze(jobq_worker *worker, const jobq_lease *lease, int64_t delay_ms,
                                const char *reason);

/** jobq_worker_run: runs handler on up to concurrency jobs at once until jobq_worker_stop is
 *  called, then returns once the jobs in hand are done. Returns JOBQ_OK, or the error that
 *  made it give up (JOBQ_EUNAUTH, JOBQ_EQUEUE, ...); a daemon that goes away is waited for. */
JOBQ_API int jobq_worker_run(jobq_worker *worker, jobq_handler handler, void *arg, int concurrency);

/** jobq_worker_stop: asks jobq_worker_run to stop fetching and return. Any thread; safe in a
 *  signal handler. */
JOBQ_API void jobq_worker_stop(jobq_worker *worker);

#ifdef __cplusplus
}
#endif
#endif /* JOBQ_H */
