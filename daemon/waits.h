/* waits.h: what follows the end of a job on the loop: counts, the waits that name it, the next
 * dispatch; and the waits themselves (wait, a cancel of a running job). Loop thread. */
#ifndef JOBQD_WAITS_H
#define JOBQD_WAITS_H

#include <stdbool.h>

#include "call.h"
#include "server.h"

/** waits_job_finished: a job of q left state old_state for row->state (succeeded, dead,
 *  cancelled, retrying or ready) and row shows it now: counts, waiters, dispatch. */
void waits_job_finished(server *s, qstate *q, const job_row *row, int old_state);

/** wait_register: holds c until the unfinished jobs among rows end: a wait (replied with
 *  the jobs, or as they are at its timeout), or with cancel a cancel of a running job
 *  (replied with the job once its cancel is recorded; no timeout). */
void wait_register(call *c, job_row *rows, size_t n, bool cancel);

/** wait_jobs: starts (or restarts) the wait of c on the jobs of c->req.ids: reads them, then
 *  answers at once (a poll, a condition already met) or holds c (wait_register). */
void wait_jobs(call *c);

/** waits_cancel_running: the cancel c of job c->req.ids[0], found running (its store state),
 *  stops it where it runs (a process, a remote worker's lease, a webhook delivery) and waits
 *  for its record. false if it does not run here (claimed but not started, or ended). */
bool waits_cancel_running(call *c);

/** waits_stop_running: stops running job id where it runs (a process, a remote worker's
 *  lease, a webhook delivery) for a cancel: its outcome records it cancelled. *rowp (unless
 *  NULL) receives the job as the runner holds it (borrowed strings). false if it does not
 *  run here (claimed but not started, or ended). */
bool waits_stop_running(server *s, int64_t id, job_row *rowp);

/** waits_ids: the jobs that held waits (and cancels) name and that have not ended, at most
 *  max of them into ids (a job named twice may repeat); returns how many. For cluster.c: a job
 *  that ended on another node is read again only when a wait here names it. */
size_t waits_ids(server *s, int64_t *ids, size_t max);

/** waits_named: whether a held wait (or cancel) names job id. */
bool waits_named(server *s, int64_t id);

/** waits_part: the hash of waits by job id; held waits answered when jobqd drains. */
extern const server_part waits_part;

#endif
