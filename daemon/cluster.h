/* cluster.h: several jobqd nodes on one PostgreSQL database: this node's registration and
 * heartbeat, the leader that alone runs maintenance (promotion, retention, cron, the rescue
 * of dead nodes' jobs), the re-read of the cluster's backlog, and wake-ups from the other
 * nodes (LISTEN/NOTIFY, with a poll fallback). With SQLite every node is its own leader and
 * nothing here runs. Loop thread. */
#ifndef JOBQD_CLUSTER_H
#define JOBQD_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>

#include "call.h"
#include "metrics.h"
#include "server.h"


/** cluster_cancel_elsewhere: the cancel c of a job running on another node: asks that node
 *  (the request is stored and notified), and c is answered once the job's end is known here.
 *  false when the store is not shared (or c is already answered: no such running job). */
bool cluster_cancel_elsewhere(call *c);

/** cluster_json: this node's view of the cluster for `ping`-like replies and /stats: name,
 *  role, leader, store state. NULL with a store of its own. */
json_t *cluster_json(const server *s);

/** cluster_metrics: appends the node's cluster metrics (Prometheus text) to b. */
void cluster_metrics(const server *s, mbuf *b);

/** cluster_store_up: whether the last heartbeat reached the store (true without a cluster). */
bool cluster_store_up(const server *s);



/** cluster_part: registration (before the recovery of running jobs), the heartbeat timer and
 *  the listener. */
extern const server_part cluster_part;

#endif
