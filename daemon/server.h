/* server.h: jobqd's core on the loop thread: queues and their counts, request dispatch,
 * signals and the orderly drain. */
#ifndef JOBQD_SERVER_H
#define JOBQD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "config.h"
#include "intake.h"
#include "metrics.h"
#include "rate.h"
#include "request.h"
#include "store.h"
#include "writer.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define JOBQ_NSTATES (JOBQ_WAITING + 1)

/** Monotonic event counters of a queue (jobq_jobs_*_total). */
enum total_kind {
    TOTAL_SUBMITTED,
    TOTAL_STARTED,
    TOTAL_SUCCEEDED,
    TOTAL_FAILED, /* attempts that failed (retried or not) */
    TOTAL_RETRIED,
    TOTAL_DEAD,
    TOTAL_CANCELLED,
    TOTAL_KINDS
};

/** A queue's member of the plain stats reply as last written, and the values it shows: while
 *  they hold, the text is reused (monitor.c). */
typedef struct stats_cache {
    char *text; /* NULL: not written yet */
    size_t len;
    int64_t counts[JOBQ_NSTATES];
    bool paused;
    int breaker;
} stats_cache;

/** A queue as the loop sees it: settings and live counts (never the jobs themselves). */
typedef struct qstate {
    char *name;
    const queue_conf *conf; /* the [queue.NAME] section, or &own_conf */
    queue_conf own_conf;    /* defaults, for a queue admitted by allow_unknown_queues */
    bool configured;        /* has a section in the config file */
    bool paused;
    int64_t counts[JOBQ_NSTATES]; /* jobs by state, kept in step with every commit */
    int running;                  /* runners of this queue (<= conf->concurrency) */
    int claiming;                 /* 1 while a claim is in flight */
    breaker br;                   /* the queue's circuit breaker */
    uv_timer_t breaker_timer;     /* fires when an open circuit may turn half-open */
    rate_bucket rate;             /* the queue's `rate` */
    uv_timer_t rate_timer;        /* fires when the rate lets the next job start */
    uint64_t totals[TOTAL_KINDS]; /* events since jobqd started */
    hist wait_hist;               /* seconds from due to start */
    hist run_hist;                /* seconds from start to end of an attempt */
    series series;                /* per-second submitted, succeeded, failed */
    struct qstate *hnext;         /* next in its bucket of server.qbuckets */
    stats_cache stats_cache;      /* its part of the plain stats reply */
} qstate;

typedef struct runner runner;
typedef struct wait_link wait_link;
typedef struct hold_registry hold_registry;
typedef struct periodic_state periodic_state;

typedef struct server {
    uv_loop_t *loop;
    config *cfg;
    store *st;
    writer w;
    intake *in;
    qstate **queues;
    size_t nqueues;
    size_t capqueues;
    qstate **qbuckets;    /* hash buckets: name -> queue */
    size_t nqbuckets;     /* a power of two */
    size_t nunconfigured; /* queues without a section (max_queues) */
    request_limits limits;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    bool draining; /* SIGTERM/SIGINT seen: no new work */
    bool closing;  /* handles are being closed; the loop ends when they are */
    int64_t started_at_ms;
    uv_timer_t sched_timer; /* the scheduler's one timer */
    int64_t next_due_ms;    /* earliest run_at of a scheduled/retrying job; INT64_MAX: none */
    bool promoting;         /* a promotion is in flight */
    runner *runners;        /* every running job */
    int nrunning;
    uint64_t rng;           /* splitmix64 state for backoff jitter */
    uv_timer_t grace_timer; /* shutdown_grace while draining */
    wait_link **waits;      /* hash buckets: job id -> the waits that name it */
    size_t nbuckets;        /* a power of two */
    uv_timer_t sweep_timer;    /* retention: armed at the earliest job or key to delete */
    int64_t sweep_at_ms;       /* INT64_MAX: not armed */
    bool sweeping;             /* a sweep is in flight */
    int backups;               /* backups being written (each holds a request) */
    struct lease **leases;     /* hash buckets: job id -> the lease a remote worker holds */
    size_t nlease_buckets;     /* a power of two */
    size_t nleases;            /* leases held (not counting revoked ones kept for heartbeat) */
    struct lease *lease_list;  /* every lease, for the expiry scan */
    uv_timer_t lease_timer;    /* armed at the earliest lease expiry */
    int64_t next_lease_ms;     /* INT64_MAX: none */
    struct hookq *hooks;       /* webhook deliveries in flight and their completion channel */
    struct http *http;         /* the monitor endpoint; NULL when disabled */
    hist lag_hist;             /* seconds a request waited for the loop */
    periodic_state *periodics; /* one per [schedule.NAME] */
    size_t nperiodics;
    uv_timer_t periodic_timer; /* at the earliest next tick of a schedule */

    hold_registry *holds; /* held requests (hold.h) */
    size_t nheld;         /* waits and long-poll fetches not yet answered (max_waits) */
} server;

/** server_init: prepares the server over an open store: loads counts and paused flags,
 *  recovers jobs left running, listens. Returns 0, or -1 with a reason in err. Before the
 *  loop runs. */
int server_init(server *s, uv_loop_t *loop, config *cfg, store *st, char *err, size_t errlen);

/** server_start: starts running the ready jobs, once jobqd runs as its final account (no
 *  handler is started and no job claimed before). */
void server_start(server *s);

/** server_queue: the queue named name, or NULL. */
qstate *server_queue(server *s, const char *name);

/** server_queue_add: the queue named name, created with defaults when missing (whatever
 *  max_queues says: for jobs already stored). NULL on out of memory. */
qstate *server_queue_add(server *s, const char *name);

/** server_queue_admit: the queue named name for a request that may create it (submit, pause,
 *  resume, fetch): the existing queue, or a new one when allow_unknown_queues is set and fewer
 *  than max_queues queues without a section exist. Otherwise NULL with the wire error code in
 *  *code ("unknown_queue", "too_many_queues" or "internal") and a message for people in msg.
 *  Loop thread. */
qstate *server_queue_admit(server *s, const char *name, const char **code, char *msg,
                           size_t msglen);

/** server_count_move: moves one job of q from state `from` to `to` in the counts (-1 for
 *  none). */
void server_count_move(qstate *q, int from, int to);

/** server_job_finished: a job of q left state old_state for row->state (succeeded, dead,
 *  cancelled, retrying or ready) and row shows it now: counts, waiters, dispatch. */
void server_job_finished(server *s, qstate *q, const job_row *row, int old_state);

/** server_total: counts n events of kind on q (and its per-second series). */
void server_total(qstate *q, enum total_kind kind, uint64_t n);

/** server_drain: starts the orderly shutdown (as SIGTERM does). */
void server_drain(server *s);

/** server_free: frees what server_init allocated, after the loop has ended. */
void server_free(server *s);

#endif
