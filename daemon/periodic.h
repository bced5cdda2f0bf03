/* periodic.h: [schedule.NAME] sections: one job per tick of a cron expression, exactly once
 * even across restarts and clock jumps (each tick's job carries a key naming the schedule and
 * the tick, and the last tick is stored with it in one transaction). */
#ifndef JOBQD_PERIODIC_H
#define JOBQD_PERIODIC_H

#include <stdint.h>

#include "config.h"
#include "server.h"
#include "store.h"

/** periodic_due: the tick schedule sc should fire at now_ms: the latest tick after last_ms
 *  and at or before now_ms, or -1 when none is due. Pure: the clock is the caller's. */
int64_t periodic_due(const schedule_conf *sc, int64_t last_ms, int64_t now_ms);

/** periodic_spec: the job of sc's tick: fills *spec (borrowing sc's strings and key, a
 *  buffer of at least 160 bytes for the key) with the queue's defaults from qc. */
void periodic_spec(const schedule_conf *sc, const queue_conf *qc, int64_t tick_ms, char *key,
                   size_t keylen, job_spec *spec);

/** periodic_base: what sc's next tick counts from: its last tick fired or skipped
 *  (*tickedp true), else when jobqd first saw it, recording now_ms for a schedule never seen
 *  (*tickedp false). Inside the caller's transaction, or none. Returns a jobq_err. */
int periodic_base(store *st, const schedule_conf *sc, int64_t now_ms, int64_t *basep,
                  bool *tickedp);

/** periodic_recover: at start, inside the caller's transaction: a schedule never seen
 *  starts from now; ticks missed while jobqd was down run once (the latest) or are skipped,
 *  per sc->missed_skip. *firedp receives whether a job was submitted. */
int periodic_recover(store *st, const schedule_conf *sc, const queue_conf *qc, int64_t now_ms,
                     bool *firedp);

/** periodic_init: recovers every schedule and arms the timer. Before the loop runs, inside
 *  no transaction. Returns a jobq_err. */
int periodic_init(server *s);

/** periodic_start: fires what is due and arms the timer, once the writer runs. */
void periodic_start(server *s);

/** periodic_json: the schedules and their next runs, for the `schedules` op. */
json_t *periodic_json(server *s);

/** periodic_reload: after s->cfg's schedule sections were replaced (SIGHUP): each config
 *  schedule takes its new section and goes on from its last tick; new ones start from now
 *  (after a store read), removed ones stop; a runtime schedule named like a config one gives
 *  way. The previous sections must stay valid. Loop thread. */
void periodic_reload(server *s);

/** periodic_close: stops and closes the timer. */
void periodic_close(server *s);

/** periodic_free: frees what periodic_init allocated. */
void periodic_free(server *s);

/** periodic_part: the schedules' catch-up at start, their timer, its close. */
extern const server_part periodic_part;

/** periodic_lead: this node was just elected leader (several nodes on PostgreSQL): reads
 *  every schedule's last tick as stored, fires what is due once (as at a start), then arms. */
void periodic_lead(server *s);

#endif
