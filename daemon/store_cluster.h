/* store_cluster.h: what a shared store (PostgreSQL, store_pg.c) offers several jobqd nodes on
 * one database: the node registry and its heartbeat, the leader's lease, the rescue scope,
 * the per-queue global limit of a claim, and the listener connection that carries wake-ups
 * between nodes. SQLite has none of it: store_shared() is false and cluster.c stays idle.
 *
 * Every function but the listener's runs on the store's thread (the writer's, or main before
 * the loop starts), inside or outside a transaction as stated. Times named _db are the
 * database's clock (now()), in ms since the epoch. */
#ifndef JOBQD_STORE_CLUSTER_H
#define JOBQD_STORE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/** store_shared: whether several jobqd may share this store (PostgreSQL). Any thread. */
bool store_shared(const store *st);

/** What a node says of itself in the registry. Borrowed strings. */
typedef struct node_self {
    const char *name;    /* unique per node, stable across restarts ([server] node) */
    const char *host;    /* hostname */
    const char *version; /* jobqd's version */
    int pid;
    int64_t ttl_ms; /* the node counts as dead when its heartbeat is older */
} node_self;

/** store_node_register: registers the node (a new incarnation, outside a transaction: its own
 *  commit). From now on the store's claims name this incarnation as the owner of the jobs
 *  they start and its outcomes are fenced by it. */
int store_node_register(store *st, const node_self *me);

/** store_node_beat: the heartbeat, inside the caller's transaction: the node's expiry moves to
 *  now + ttl. When the leader declared this node dead meanwhile (its jobs were rescued), a new
 *  incarnation is registered instead and *fencedp is set: outcomes of jobs claimed before
 *  match no row. *db_now_msp receives the database's clock. */
int store_node_beat(store *st, const node_self *me, int running, bool *fencedp,
                    int64_t *db_now_msp);

/** store_leader_try: takes or renews the leader's lease for ttl_ms (database time), inside the
 *  caller's transaction. *leaderp: whether this incarnation holds it now; leader (len bytes)
 *  receives the holder's name ("" when none). */
int store_leader_try(store *st, const char *name, int64_t ttl_ms, bool *leaderp, char *leader,
                     size_t len);

/** store_leader_resign: gives the lease up (at drain), so another node takes over at once. */
int store_leader_resign(store *st);

/** store_nodes_fence_dead: marks fenced every node whose heartbeat expired (the leader, inside
 *  its transaction, before the rescue); fn gets each name. *np: how many. */
int store_nodes_fence_dead(store *st, void (*fn)(void *arg, const char *name), void *arg,
                           size_t *np);

/** One node as the registry holds it. Owned strings: node_row_clear. */
typedef struct node_row {
    char *name;
    char *host;
    char *version;
    int pid;
    int64_t incarnation;
    int64_t started_at_ms, beat_at_ms, expires_at_ms; /* database time */
    bool alive;  /* expires_at is still ahead and not fenced */
    bool fenced;
    bool leader;
    int running; /* at its last heartbeat */
} node_row;

void node_row_clear(node_row *r);

/** store_nodes: every registered node, by name, into *rowsp (malloc'd, each cleared with
 *  node_row_clear) and *np. A read. */
int store_nodes(store *st, node_row **rowsp, size_t *np);

/** store_set_claim_limit: the next store_claim (inside this transaction) starts a job only
 *  while fewer than limit jobs of its queue run across all nodes (0: no limit). Serialises
 *  that queue's claims across nodes until commit. */
void store_set_claim_limit(store *st, int limit);

/** store_count_active_each: store_count_each for the unfinished states only (scheduled,
 *  ready, running, retrying, waiting): the cluster's backlog, cheap to read often. */
int store_count_active_each(store *st,
                            void (*fn)(void *arg, const char *queue, int state, int64_t n),
                            void *arg);

/** store_lock_timeout: how long (ms; 0: no limit) the rest of this transaction's statements
 *  wait for a lock: the heartbeat and the rescue never wait long for a node frozen with a lock
 *  held (they fail, and the next tick tries again). Rolled back with the caller's savepoint. */
int store_lock_timeout(store *st, int ms);

/** store_analyze: refreshes the planner's statistics of the jobs table (the leader, when the
 *  backlog grew or shrank several times over since the last: a burst of submits into a
 *  table the statistics saw small makes the claim sort the whole backlog instead of reading
 *  its index in order, until autovacuum's next analyze, up to a minute later). */
int store_analyze(store *st);

/** store_incarnation: this node's incarnation (0 before store_node_register). */
int64_t store_incarnation(const store *st);

/** store_cancel_requests: running jobs of this incarnation whose cancel another node asked
 *  for: up to max ids into ids, *np. A read. */
int store_cancel_requests(store *st, int64_t *ids, size_t max, size_t *np);

/** store_request_cancel: records a cancel request for running job id that another node runs,
 *  and tells it. JOBQ_ESTATE when id is not running on another live node. */
int store_request_cancel(store *st, int64_t id);

/** store_ping: whether the server of st's setting answers a new connection within 2 s
 *  (JOBQ_OK, also when it refuses one: it is alive) or not (JOBQ_EUNAVAIL: down, or frozen
 *  with its connections open). Blocks: any thread but the loop's. */
int store_ping(const store *st);

/** store_interrupt: cuts the store's connection (shutdown of its socket) so that the statement
 *  the store's thread waits on fails now as a lost connection: for a server found not to
 *  answer at all: the next connection waits for the reconnection backoff's first step
 *  instead of connect_timeout, and a COMMIT cut is answered "outcome unknown" at once. Any
 *  thread. */
void store_interrupt(store *st);

/* ---- the listener: a connection of its own that receives the other nodes' wake-ups ----
 * Opened and re-opened on a pool thread (it blocks); read on the loop thread without blocking
 * (its socket is watched by a uv_poll). */
typedef struct store_listener store_listener;

/** store_listen_open: connects to the database of st's setting and LISTENs; *lp. Blocks: any
 *  thread but the loop's. Returns an error with a reason in err. */
int store_listen_open(const store *st, store_listener **lp, char *err, size_t errlen);

/** store_listen_fd: the socket to watch for reading. */
int store_listen_fd(const store_listener *l);

/** store_listen_read: reads what arrived without blocking and calls fn with each payload.
 *  Returns JOBQ_OK, or JOBQ_ESTORE when the connection is lost (close it and reopen). Loop. */
int store_listen_read(store_listener *l, void (*fn)(void *arg, const char *payload), void *arg);

/** store_listen_close: closes the connection. Accepts NULL. */
void store_listen_close(store_listener *l);

/** store_notify_resync: makes the next commit tell every node to re-read everything (after
 *  the store's wake-up payload overflowed, or for tests). */
void store_notify_resync(store *st);

#endif
