/* request.h: decodes and validates one request message into a typed struct, at the edge. */
#ifndef JOBQ_PROTO_REQUEST_H
#define JOBQ_PROTO_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

typedef enum req_op {
#define X(NAME, name, fields, flags) REQ_##NAME,
    JOBQ_OPS(X)
#undef X
        REQ_NOPS
} req_op;

/** One job of a submit or submit_batch. Strings are borrowed from the request's JSON. */
typedef struct req_job {
    const char *queue;
    char *payload;         /* owned: compact JSON text */
    uint64_t payload_hash; /* hash of the payload with sorted keys; set only with a key */
    int32_t priority;
    bool has_run_at;
    int64_t run_at_ms;
    int64_t delay_ms;
    int32_t max_attempts; /* 0: the queue's default */
    int64_t timeout_ms;   /* 0: the queue's default */
    const char *key;      /* NULL for none */
    int64_t *after;       /* owned: ids of the jobs this one waits for (NULL: none); in a
                           * submit_batch, -(N + 1) names jobs[N] (N before this one) */
    size_t nafter;
    bool after_always; /* after_policy "always": run even if a parent is dead or cancelled */
    const char *traceparent; /* W3C trace context (NULL: none) */
    const char *tracestate;
    const char *group_key; /* the fairness key (key_concurrency, key_rate); NULL: none */
    int dedupe;              /* a jobq_dedupe (needs a key) */
    int64_t debounce_max_ms; /* dedupe debounce: cap of the run time after the first submit */
    int64_t expires_at_ms;   /* not started by then: cancelled as expired (0: never) */
    int64_t expires_in_ms;   /* the same from now (0: none); the loop turns it into expires_at */
} req_job;

/** When a wait is answered: every job ended, the first ended, or the first failed (ended dead
 *  or cancelled) or every job ended. */
typedef enum wait_when { WAIT_ALL = 0, WAIT_FIRST, WAIT_FIRST_FAILURE } wait_when;

/** One job of an ack or fail of many ("jobs"). Strings are borrowed from the request's JSON. */
typedef struct req_outcome {
    int64_t id;
    const char *lease; /* the lease token */
    const char *text;  /* ack: result; fail: error (NULL if none) */
    bool retry;        /* fail: may be retried */
    int64_t snooze_ms; /* fail: snoozed instead: runs again after this, attempt given back */
} req_outcome;

/** The actions of a mutate, listed once: X(NAME, name) gives MUT_NAME and its wire name. */
#define MUTATE_ACTIONS(X)                                                                          \
    X(CANCEL, cancel)                                                                              \
    X(RETRY, retry)                                                                                \
    X(DELETE, delete)                                                                              \
    X(RUN_NOW, run_now)                                                                            \
    X(RESCHEDULE, reschedule)                                                                      \
    X(SET_PRIORITY, set_priority)                                                                  \
    X(RERUN, rerun)

typedef enum mutate_action {
#define X(NAME, name) MUT_##NAME,
    MUTATE_ACTIONS(X)
#undef X
        MUT_NACTIONS
} mutate_action;

/** jobq__mutate_action_name: the wire name of a mutate_action ("?" for none). */
const char *jobq__mutate_action_name(int action);

/** Most ids one mutate's filter names in "ids". */
#define REQ_MUTATE_MAX_IDS 10000

/** Most jobs one ack or fail names in "jobs". */
#define REQ_OUTCOMES_MAX 1000

typedef struct request {
    req_op op;
    json_t *root;  /* owns every borrowed string; NULL from the fast path (then the queue
                    * names of jobs live in the jobs allocation) */
    req_job *jobs; /* submit: 1, submit_batch: njobs */
    size_t njobs;
    int64_t *ids; /* get, cancel: 1; wait: nids; mutate: the filter's ids (0: any) */
    size_t nids;
    int64_t timeout_ms;  /* wait, logs */
    const char *queue;   /* list and bulk retry (NULL = any), pause, resume */
    int state;           /* list: jobq_state or -1; bulk retry: dead or cancelled */
    int64_t after_id;    /* list; mutate: start after this id; logs: the cursor (the last
                          * line's seq seen) */
    int limit;           /* list; fetch: max jobs; mutate: stop once about this many jobs
                          * matched (0: no limit); logs: max lines */
    const char **queues; /* fetch: the queues to take from, in order; stats: the queues to
                          * report (borrowed strings) */
    size_t nqueues;
    bool stats_some;      /* stats: "queues" given (only those are reported) */
    bool series;          /* stats: add totals, rates and per-second series */
    const char *lease;    /* ack, fail, heartbeat: the lease token */
    const char *text;     /* ack: result; fail: error (NULL if none) */
    bool retry;           /* fail: may be retried */
    const char *worker;   /* fetch: the worker's name for logs (NULL if none) */
    req_outcome *outcomes; /* ack, fail with "jobs": one per job (owned; NULL: the single
                            * form, in ids[0], lease, text and retry) */
    size_t noutcomes;
    bool then_fetch;      /* ack, fail: with "fetch": queues, limit, timeout_ms and worker
                           * hold a fetch to start once the outcome is recorded */
    const char *path;     /* backup: where to write the copy, an absolute path */
    bool group;           /* submit_batch: the jobs form a group */
    req_job *on_complete; /* submit_batch with group: the job to submit when all ended */
    int64_t group_id;     /* get, wait: a group instead of jobs (0: none) */
    int return_when;      /* wait: WAIT_ALL, WAIT_FIRST or WAIT_FIRST_FAILURE */
    bool cancel_pending;  /* wait: cancel the jobs still pending when it is answered */
    int64_t slow_down_ms; /* fail: hold the queue of the failed jobs this long (0: no) */
    bool read_only;       /* its token was request_limits.read_token: only OPF_READ ops */
    /* mutate: the filter is queue (NULL: any), ids/nids (nids 0: any) and these; 0 or NULL
     * leaves a criterion out. Times are ms since the epoch (a duration "ago" is resolved at
     * decode); "after" bounds are inclusive, "before" bounds exclusive. */
    int action;                /* mutate: a mutate_action */
    unsigned states;           /* mutate: bit (1u << state) per state named; 0: any state */
    int64_t created_after_ms;  /* mutate */
    int64_t created_before_ms; /* mutate */
    int64_t finished_after_ms; /* mutate: jobs that have not finished never match */
    int64_t finished_before_ms;
    const char *error_contains; /* mutate: a substring of the job's last error */
    const char *key_prefix;     /* mutate: the start of the job's idempotency key */
    bool all;                   /* mutate: an empty filter matches every job (else refused) */
    bool dry_run;               /* mutate: count only */
    int32_t priority;           /* mutate set_priority */
    bool has_run_at;            /* mutate reschedule: run_at_ms set (from run_at or delay) */
    int64_t run_at_ms;          /* mutate reschedule */
    int64_t max_id;             /* mutate: jobs with a larger id are left alone (0: the
                                 * largest id when the mutate starts) */
    /* heartbeat: what the job reports (all optional) */
    bool has_progress;   /* "progress" given */
    double progress;     /* 0 .. 100 */
    const char *note;    /* with progress: a short note (NULL: none) */
    char *checkpoint;    /* owned: the checkpoint as compact JSON text (NULL: none) */
    const char **log;    /* owned array of borrowed strings: log lines (NULL: none) */
    size_t nlog;
    int64_t snooze_ms; /* fail: every job of it snoozed for this long (0: a failure) */
    /* schedule_*: the schedule named; add and update: what it is, each NULL (false) when not
     * given (its queue is in queue) */
    const char *sched_name;
    const char *sched_cron;
    const char *sched_timezone;
    const json_t *sched_payload; /* borrowed from root */
    int sched_missed;            /* -1 not given, 0 run_once, 1 skip */
    int sched_overlap;           /* -1 not given, 0 allow, 1 skip */
    bool sched_has_priority;
    int32_t sched_priority;
} request;

/** The longest progress note of a heartbeat, in bytes. */
#define REQ_NOTE_MAX 200
/** The largest checkpoint of a heartbeat, compact JSON bytes. */
#define REQ_CHECKPOINT_MAX (64 * 1024)
/** The longest log line of a heartbeat, in bytes, and the most lines in one. */
#define REQ_LOG_LINE_MAX 4096
#define REQ_LOG_LINES_MAX 1000

/** The most queue names one stats request may list. */
#define STATS_MAX_QUEUES 1000

/** jobq__op_name: the wire name of op ("?" for none). */
const char *jobq__op_name(req_op op);

/** jobq__op_flags: op's OPF_* flags (ops.h); 0 for none. */
unsigned jobq__op_flags(req_op op);

typedef struct request_limits {
    size_t max_batch;    /* jobs in one submit_batch */
    size_t max_wait_ids; /* ids in one wait */
    int64_t max_wait_ms; /* longest wait timeout */
    size_t max_payload;  /* bytes of one payload, compact */
    size_t max_after;    /* ids in one job's "after" */
    const char *token;   /* when set, every request must carry it as "token" */
    const char *read_token; /* with token: also accepted, marking the request read_only */
} request_limits;

/** jobq__request_decode: parses buf (len bytes) into *req. Returns NULL on success (then
 *  release with jobq__request_free), or the wire error code ("malformed", "unknown_op",
 *  "invalid_argument", "too_large", ...) with a message for people in err; *req then holds
 *  nothing to free. Each op's fields, their types, ranges and defaults are described once,
 *  in request.c's tables. Any thread; no shared state. */
const char *jobq__request_decode(const char *buf, size_t len, const request_limits *lim,
                                 request *req, char *err, size_t errlen);

/* The decoder's two readers, for the differential tests only (tests/fuzz/fuzz_request.c,
 * tests/test_request.c); everything else calls jobq__request_decode. */

/** jobq__request_decode_json: what jobq__request_decode does with the JSON reader alone
 *  (jansson); same contract. */
const char *jobq__request_decode_json(const char *buf, size_t len, const request_limits *lim,
                                      request *req, char *err, size_t errlen);

/** jobq__request_decode_fast: the fast scanner alone, which takes simple submit and
 *  submit_batch requests. Returns true with *req decoded exactly as the JSON reader would;
 *  false (nothing to free) for anything it does not take, valid or not. */
bool jobq__request_decode_fast(const char *buf, size_t len, const request_limits *lim,
                               request *req);

/** jobq__request_free: releases what a successful decode allocated. Accepts a zeroed req. */
void jobq__request_free(request *req);

/** jobq__run_at_max_ms: the latest run_at a job may ask for: now plus one year (the bound of
 *  every duration, JOBQ__DURATION_MAX_MS). Any thread. */
int64_t jobq__run_at_max_ms(void);

/** jobq__valid_queue_name: 1-64 characters of [A-Za-z0-9_.-]. */
bool jobq__valid_queue_name(const char *name);

/** jobq__token_equal: a and b are equal, compared in time independent of where they differ. */
bool jobq__token_equal(const char *a, const char *b);

/** jobq__payload_hash: FNV-1a 64 of v encoded compactly with sorted keys. */
uint64_t jobq__payload_hash(const json_t *v);

#endif
