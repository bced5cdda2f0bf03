/* workers.h: remote workers: fetch (long poll) hands ready jobs out under a lease; ack, fail
 * and heartbeat must quote the lease's token; expired leases count as failed attempts. */
#ifndef JOBQD_WORKERS_H
#define JOBQD_WORKERS_H

#include "call.h"
#include "server.h"

/** workers_init: the lease table and its timer. Before the loop runs; 0 or -1. */
int workers_init(server *s);

/** workers_request: serves a fetch, ack, fail or heartbeat call. */
void workers_request(call *c);

/** workers_dispatch: jobs of remote queue q may be ready: hand them to held fetches. */
void workers_dispatch(server *s, qstate *q);

/** workers_cancel: cancels the leased job id (the cancel call c waits for the record).
 *  Returns false if no live lease holds it. */
bool workers_cancel(server *s, int64_t id, call *c);

/** workers_stop: cancels the leased job id with why as its error, nobody waiting for the
 *  record. Returns false if no live lease holds it. Loop thread. */
bool workers_stop(server *s, int64_t id, const char *why);

/** workers_drain: held fetches get an empty reply now. */
void workers_drain(server *s);

/** workers_requeue_all: shutdown_grace is over: every leased job goes back to ready. */
void workers_requeue_all(server *s);

/** workers_close: frees the leases and closes the timer (the loop is ending). */
void workers_close(server *s);

/** workers_is_remote: q is served by remote workers (no command, no url). */
bool workers_is_remote(const qstate *q);

#endif
