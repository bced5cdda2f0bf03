/* workers.h: remote workers: fetch (long poll) hands ready jobs out under a lease; ack, fail
 * and heartbeat must quote the lease's token; expired leases count as failed attempts. */
#ifndef JOBQD_WORKERS_H
#define JOBQD_WORKERS_H

#include "call.h"
#include "server.h"

/** workers_init: the lease table and its timer; registers the hand-out of ready jobs of
 *  remote queues to held fetches as s->remote_dispatch (the scheduler calls it). Before the
 *  loop runs; 0 or -1. The worker ops' handlers are op_fetch, op_ack, op_fail and
 *  op_heartbeat (handlers.h). */
int workers_init(server *s);

/** workers_cancel: cancels the leased job id; *row is the job as leased (a cancel call waits
 *  for its record). Returns false if no live lease holds it. */
bool workers_cancel(server *s, int64_t id, job_row *row);

/** workers_stop: cancels the leased job id with why as its error, nobody waiting for the
 *  record. Returns false if no live lease holds it. Loop thread. */
bool workers_stop(server *s, int64_t id, const char *why);

/** workers_drain: held fetches get an empty reply now. */
void workers_drain(server *s);

/** workers_requeue_all: shutdown_grace is over: every leased job goes back to ready. */
void workers_requeue_all(server *s);

/** workers_close: frees the leases and closes the timer (the loop is ending). */
void workers_close(server *s);

/** workers_part: leases and held fetches over jobqd's life: held fetches are answered when
 *  draining begins, leased jobs go back to ready when the grace is over. */
extern const server_part workers_part;

#endif
