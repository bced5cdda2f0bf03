/* queues.h: the queues as the loop sees them: settings, live counts, event totals, the
 * breaker and rate state of each, and the registry that finds them by name. Loop thread. */
#ifndef JOBQD_QUEUES_H
#define JOBQD_QUEUES_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "config.h"
#include "metrics.h"
#include "rate.h"
#include "store.h"

typedef struct server server;

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
    TOTAL_EXPIRED, /* jobs cancelled because they had not started by their deadline */
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
    int64_t counts[JOBQ_NSTATES];    /* jobs by state, kept in step with every commit */
    int running;                     /* runners of this queue (<= conf->concurrency) */
    int claiming;                    /* 1 while a claim is in flight */
    struct unclaim_op *unclaim;      /* jobs of a claim whose commit's outcome is unknown,
                                      * being handed back (scheduler.c): no claim meanwhile */
    breaker br;                      /* the queue's circuit breaker */
    uv_timer_t breaker_timer;        /* fires when an open circuit may turn half-open */
    rate_bucket rate;                /* the queue's `rate` */
    uv_timer_t rate_timer;           /* fires when the rate lets the next job start */
    int64_t rate_wait_until_ms;      /* a rate kept in the database: no claim before this */
    uint64_t totals[TOTAL_KINDS];    /* events since jobqd started */
    hist wait_hist;                  /* seconds from due to start */
    hist run_hist;                   /* seconds from start to end of an attempt */
    series series;                   /* per-second submitted, succeeded, failed */
    struct qstate *hnext;            /* next in its bucket of server.qbuckets */
    server *srv;                     /* its server (the data of its timers) */
    stats_cache stats_cache;         /* its part of the plain stats reply */
    struct nng_tls_config *hook_tls; /* https webhooks: the client's TLS settings (webhook.c) */
    int64_t slow_until_ms;           /* slowed down: no job starts before this (0: not slowed) */
    char slow_why[120];              /* who asked, for explain and the log */
    int64_t oldest_ready_ms;   /* run_at of its oldest ready job at the last sample; 0: none */
    int64_t oldest_overdue_ms; /* of its oldest scheduled/retrying job past due; 0: none */
    bool keys_blocked;         /* the last claim found nothing it could start for the keys'
                                * limits: none until a job becomes ready or stops running, or
                                * key_timer fires (queue_count_move clears it) */
    uv_timer_t key_timer;      /* fires when a key held by key_rate may start again */
} qstate;

/** queue_find: the queue named name, or NULL. */
qstate *queue_find(server *s, const char *name);

/** queue_add: the queue named name, created with defaults when missing (whatever
 *  max_queues says: for jobs already stored). NULL on out of memory. */
qstate *queue_add(server *s, const char *name);

/** queue_admit: the queue named name for a request that may create it (submit, pause,
 *  resume, fetch): the existing queue, or a new one when allow_unknown_queues is set and fewer
 *  than max_queues queues without a section exist. Otherwise NULL with the wire error code in
 *  *code ("unknown_queue", "too_many_queues" or "internal") and a message for people in msg. */
qstate *queue_admit(server *s, const char *name, const char **code, char *msg, size_t msglen);

/** queue_count_move: moves one job of q from state `from` to `to` in the counts (-1 for
 *  none), and counts the event. */
void queue_count_move(qstate *q, int from, int to);

/** queue_total: counts n events of kind on q (and its per-second series). */
void queue_total(qstate *q, enum total_kind kind, uint64_t n);

/** queue_pending: q's unfinished jobs (scheduled, ready, running, retrying, waiting). */
int64_t queue_pending(const qstate *q);

/** queue_slow_down: no job of q starts before until_ms (a later time than it already waits
 *  for wins), why saying who asked ("a webhook answered 429 with Retry-After: 30"): a
 *  downstream's "slow down" holds the whole queue, not only the job that heard it. The
 *  scheduler's next dispatch of q arms its timer. */
void queue_slow_down(qstate *q, int64_t until_ms, const char *why);

/** queue_slow_down_job: a downstream asked job's handler to slow down until until_ms (why says
 *  who): on a queue with key_concurrency or key_rate, a job with a group_key holds only its
 *  key (the other keys go on); any other job holds the whole queue (queue_slow_down). Loop
 *  thread. */
void queue_slow_down_job(server *s, qstate *q, const job_row *job, int64_t until_ms,
                         const char *why);

/** queue_is_remote: q is served by remote workers (no command, no url). */
bool queue_is_remote(const qstate *q);

/** queue_job_ended: state is an end (succeeded, dead, cancelled). */
bool queue_job_ended(int state);

/** queues_free: frees every queue (their timers closed already). */
void queues_free(server *s);

typedef struct server_part server_part;

/** queues_recover_part: at start, the configured queues and the jobs left running by the last
 *  jobqd (ready again, or dead as suspected poison); frees the queues at the end. */
extern const server_part queues_recover_part;

/** queues_count_part: at start, every queue's counts and paused flag from the store (after
 *  the recovery and the schedules' catch-up, which add jobs). */
extern const server_part queues_count_part;

/** queues_reload: after s->cfg's queue sections were replaced (SIGHUP): each queue takes its
 *  new section (concurrency, retries, timeouts, handler, rate and breaker rules: the breaker's
 *  state and the running jobs are kept), a queue whose section is gone keeps its settings,
 *  and new sections become queues. The caller dispatches. Loop thread. */
void queues_reload(server *s);

#endif
