/* scheduler.h: when jobs start (named apart from the system <sched.h>). One timer at the
 * earliest due job promotes scheduled and retrying jobs to ready; dispatch claims ready jobs into
 * free concurrency slots. */
#ifndef JOBQD_SCHED_H
#define JOBQD_SCHED_H

#include <stdint.h>

#include "outcome.h"
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

/** claim_deliver: claimed jobs for their consumer: rows[0..n) are running now and counted;
 *  take a row by moving its contents out (what is left is cleared after). err: the claim's
 *  error (n is then 0). */
typedef void (*claim_deliver)(server *s, qstate *q, void *arg, job_row *rows, size_t n, int err);

/** sched_claim: claims up to max ready jobs of q (sets q->claiming until done) and delivers
 *  them. False when out of memory. */
bool sched_claim(server *s, qstate *q, size_t max, claim_deliver deliver, void *arg);

/** sched_rate_permits: 0 while q is slowed down (queue_slow_down); else how many jobs of q its
 *  `rate` lets start now; when none, arms q's
 *  rate timer to dispatch q again when one may. */
int sched_rate_permits(server *s, qstate *q, int64_t now_ms);

/** sched_key_limits: the per-key limits of a claim from qc's key_concurrency and key_rate
 *  (the rate as a spacing between two starts of a key, with a quarter of a second's worth of
 *  burst, as the queue's rate has). Pure. */
void sched_key_limits(const queue_conf *qc, key_limits *kl);

/** sched_dispatch_all: sched_dispatch for every queue. */
void sched_dispatch_all(server *s);

/** sched_outcome: the attempt of a job of q ended with this kind: applies the kind's breaker
 *  effect (OUTCOME_KIND_MAP) to q's circuit breaker and failed total, logs its transitions.
 *  Loop thread. */
void sched_outcome(server *s, qstate *q, outcome_kind kind);

/** sched_sweep_soon: a job of q ended in state: retention will have to delete it after
 *  the queue's retention for that state; arms the sweep timer if that is the earliest. */
void sched_sweep_soon(server *s, qstate *q, int state);

/** sched_sweep_init: arms the sweep for what the database already holds (first sweep right
 *  away; each sweep computes the next). */
void sched_sweep_init(server *s);

/** sched_close: stops and closes the timers. */
void sched_close(server *s);

/** sched_part: the scheduler's and the sweep's timers; at start, the ready jobs run. */
extern const server_part sched_part;

/** sched_maintain_now: promotion and retention run now (a node just elected leader). */
void sched_maintain_now(server *s);

#endif
