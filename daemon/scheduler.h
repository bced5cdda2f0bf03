/* scheduler.h: when jobs start (named apart from the system <sched.h>). One timer at the
 * earliest due job promotes scheduled and retrying jobs to ready; dispatch claims ready jobs into
 * free concurrency slots. */
#ifndef JOBQD_SCHED_H
#define JOBQD_SCHED_H

#include <stdint.h>

#include "server.h"

/** sched_init: reads the earliest due time from the store and arms the timer. Before the
 *  loop runs; returns a jobq_err. */
int sched_init(server *s);

/** sched_note_due: a job became scheduled or retrying with this run_at; re-arms the timer if
 *  it is now the earliest. */
void sched_note_due(server *s, int64_t run_at_ms);

/** sched_dispatch: claims ready jobs of q into its free slots, unless paused, draining, a
 *  claim is already in flight, or q has no command. */
void sched_dispatch(server *s, qstate *q);

/** sched_dispatch_all: sched_dispatch for every queue. */
void sched_dispatch_all(server *s);

/** sched_close: stops and closes the timer. */
void sched_close(server *s);

#endif
