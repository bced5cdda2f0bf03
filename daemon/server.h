/* server.h: jobqd's state on the loop thread (the server struct every module is given), its
 * start, signals and the orderly drain. */
#ifndef JOBQD_SERVER_H
#define JOBQD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "intake.h"
#include "metrics.h"
#include "queues.h"
#include "request.h"
#include "store.h"
#include "writer.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct runner runner;
typedef struct wait_link wait_link;
typedef struct hold_registry hold_registry;
typedef struct periodic_state periodic_state;

typedef struct server_part server_part;

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
    uint64_t rng;              /* splitmix64 state for backoff jitter */
    uv_timer_t grace_timer;    /* shutdown_grace while draining */
    wait_link **waits;         /* hash buckets: job id -> the waits that name it */
    size_t nbuckets;           /* a power of two */
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

    /* Set by workers_init: hands ready jobs of a remote queue to the held fetches. The
     * scheduler calls it instead of the workers module, which calls the scheduler. */
    void (*remote_dispatch)(struct server *s, qstate *q);
    /* Set by the scheduler's init to sched_dispatch: a module the scheduler calls starts a
     * queue with it. */
    void (*dispatch)(struct server *s, qstate *q);
    /* Set by cluster.c on a shared store (NULL otherwise): reads jobs ids again and answers
     * the waits held here that they meet. waits.c calls it for a wait registered from rows
     * read earlier (another node may have notified their end in between); cluster.c calls
     * waits.c, so it is not called directly. */
    void (*reread_waits)(struct server *s, const int64_t *ids, size_t n);
    /* This node's place among several on one database, as cluster.c last learned it (read
     * here, so that the modules that act only on the leader need not call it): with a store
     * of its own a node always leads and the names are empty. */
    bool leads;
    char node_name[128];             /* this node's name */
    char leader_name[128];           /* the leader's, as last read ("" when none) */
    const server_part *const *parts; /* the modules, in the order of their start (server_init) */
    size_t nparts;
    uv_async_t drain_async; /* while draining: whether jobqd is drained now (server_poke_drain) */
    uv_signal_t sigchld;    /* the exits of commands started without a pidfd (runner.c) */
    uv_timer_t gauge_timer; /* samples the age of each queue's oldest waiting job (gauges.c) */
    bool gauging;           /* a sample is in flight */
    struct progress_slot *prog_dirty; /* attempts with reports to write (progress.c) */
    uv_timer_t prog_timer;            /* writes them, at most once a second */
    uv_timer_t expiry_timer;          /* at the earliest deadline to start of a job (expiry.c) */
    int64_t next_expiry_ms;           /* that deadline, or lower; INT64_MAX: none */
    bool expiring;                    /* an expiry sweep is in flight */
} server;

/** server_poke_drain: while draining, something that held the drain back may have ended (a
 *  job, a lease, a backup): server.c looks again on the loop's next turn. Anywhere on the loop;
 *  costs nothing when not draining. */
static inline void
server_poke_drain(server *s)
{
    if (s->draining) {
        uv_async_send(&s->drain_async);
    }
}

/** A module's part in jobqd's life: each hook may be NULL. main.c lists the parts; the server
 *  calls init, start and drain in that order, then close once drained, free after the loop. */
struct server_part {
    const char *name;
    int (*init)(server *s, char *err, size_t errlen); /* before the loop: 0, or -1 with err */
    void (*start)(server *s);      /* jobqd runs as its final account: start work */
    void (*drain)(server *s);      /* draining begins: no new work */
    void (*grace_over)(server *s); /* shutdown_grace is over: end what still runs */
    void (*close)(server *s);      /* drained: answer what is held, close handles */
    void (*free)(server *s);       /* the loop ended: free memory (also after a failed init) */
};

/** server_init: prepares the server over an open store: runs the init of every part of parts
 *  (nparts) in order (recovery, counts, listeners, ...; see main.c) and handles SIGTERM and
 *  SIGINT. Returns 0, or -1 with a reason in err. Before the loop runs. */
int server_init(server *s, uv_loop_t *loop, config *cfg, store *st, const server_part *const *parts,
                size_t nparts, char *err, size_t errlen);

/** server_start: starts running the ready jobs, once jobqd runs as its final account (no
 *  handler is started and no job claimed before). */
void server_start(server *s);

/** server_drain: starts the orderly shutdown (as SIGTERM does). */
void server_drain(server *s);

/** server_free: frees what server_init allocated, after the loop has ended. */
void server_free(server *s);

#endif
