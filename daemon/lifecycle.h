/* lifecycle.h: job policy, run on the writer's thread inside the batch's transaction:
 * admission (idempotency-key windows, parents), the end of a job and what it
 * does to the jobs that wait for it and to its group, poison jobs after crashes, and the
 * messages users read about them. Written once over store.h's primitives, for every backend.
 *
 * Every function here is called inside a transaction (store_begin ... store_commit), in the
 * savepoint of one writer operation: on failure the caller rolls that savepoint back, with
 * the effects recorded since store_effects_mark. Changes made to jobs other than the one the
 * call is about are recorded as store effects (store.h), handed to the loop after commit. */
#ifndef JOBQD_LIFECYCLE_H
#define JOBQD_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "writer.h"

/** lifecycle_insert: admits one job: state scheduled if run_at_ms > now_ms else ready;
 *  waiting while a parent in spec->after has not ended; cancelled at once (with the reason
 *  as its error) when a parent ended dead or cancelled and the job does not run after any
 *  end. With a key already used on the queue within spec->key_ttl_ms of its first use:
 *  JOBQ_OK with *dupp = true and *idp, *statep of that job (*statep = -1 if the job was
 *  since deleted) when the payload hash matches, else JOBQ_ECONFLICT; a key whose window has
 *  passed is admitted again. JOBQ_ENOENT when a parent does not exist
 *  (lifecycle_missing_parent names it). */
int lifecycle_insert(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp, bool *dupp,
                     int *statep);

/** What lifecycle_insert_dedupe did besides inserting. */
typedef struct dedupe_out {
    bool replaced;     /* dedupe replace or debounce: *idp is a job that was waiting to run,
                        * which took the new payload and run time */
    int from;          /* replaced: its state before (*statep: after) */
    int64_t run_at_ms; /* replaced: its run time now */
} dedupe_out;

/** lifecycle_insert_dedupe: lifecycle_insert with spec->dedupe deciding a key already held
 *  by an unfinished job (a key recorded by a submit of the ttl mode, within its window,
 *  answers as lifecycle_insert says whatever spec->dedupe is): ttl and until_done answer it
 *  as a duplicate (JOBQ_ECONFLICT with another payload); replace and debounce give a job
 *  that has not started (scheduled, ready, retrying, waiting) the new payload and run time
 *  (debounce: at most the key's first use + debounce_max_ms), out->replaced; a running
 *  job is left alone and a new job takes the key. A mode other than ttl holds the key until
 *  its job ends (the transaction that ends it forgets it), however long. out may be NULL. */
int lifecycle_insert_dedupe(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp,
                            bool *dupp, int *statep, dedupe_out *out);

/** One submit as the writer inserts it: n jobs (specs[n] is a group's on_complete job when
 *  group_oc), each spec's "after" may name an earlier member as -(index + 1); the outputs
 *  are one per job. */
typedef struct submit_set {
    wop op; /* the store operation that inserts them: lifecycle_exec_submit */
    job_spec *specs;
    size_t n;
    bool group;             /* the jobs form one group (store_group_create) */
    bool group_oc;          /* the group submits specs[n] when it completes */
    int64_t *ids;           /* out */
    bool *dups;             /* out */
    int *states;            /* out */
    dedupe_out *dedupe;     /* out */
    int64_t group_id;       /* out: the group, 0 for none */
    size_t failed_at;       /* out: the job that failed (0 when the group could not be made) */
    int64_t missing_parent; /* out: with JOBQ_ENOENT, the "after" id that names no job */
} submit_set;

/** submit_alloc: zeroes s and gives it room for n jobs (and an on_complete job) in one
 *  allocation, at s->specs (free(s->specs) releases it); false when out of memory. */
bool submit_alloc(submit_set *s, size_t n);

/** lifecycle_exec_submit: the exec of a submit_set's op (writer.h): lifecycle_submit. */
int lifecycle_exec_submit(store *st, wop *op, int64_t now_ms);

/** lifecycle_submit_plain: whether every job of s is plain (no key, no after, no expiry) and
 *  s makes no group: such submits may be inserted together (lifecycle_exec_submits). */
bool lifecycle_submit_plain(const submit_set *s);

/** lifecycle_exec_submits: the exec_many (writer.h) of n plain submit_sets from op on: their
 *  jobs in one store_jobs_insert. */
int lifecycle_exec_submits(store *st, wop *op, size_t n, int64_t now_ms);

/** lifecycle_submit: inserts every job of s (lifecycle_insert_dedupe) in order, in a new group
 *  when s->group, then settles the group (members cancelled at once may complete it). Stops
 *  at the first error, which the caller's savepoint undoes whole. Writer's thread. */
int lifecycle_submit(store *st, submit_set *s, int64_t now_ms);

/** The error of a job cancelled because it had not started by its deadline. */
#define EXPIRED_ERROR "expired"

/** lifecycle_expire: cancels (error EXPIRED_ERROR, as lifecycle_cancel_why: dependents,
 *  group, a held key) up to max jobs of queue (NULL: every queue) not started whose deadline
 *  to start (job_spec.expires_at_ms) is at or before now_ms, each recorded as an effect with
 *  expired set. *np receives how many; fewer than max (and 256): none is left. */
int lifecycle_expire(store *st, const char *queue, int64_t now_ms, size_t max, size_t *np);

/** lifecycle_snooze: running job id was snoozed by its handler: scheduled again at
 *  run_at_ms, its attempt given back, and the attempt recorded in the history as a (kind
 *  "snoozed") with error as its text (NULL: none). JOBQ_ESTATE if it is not running. */
int lifecycle_snooze(store *st, int64_t id, int64_t now_ms, int64_t run_at_ms, const char *error,
                     const attempt_rec *a);

/** lifecycle_missing_parent: after lifecycle_insert failed with JOBQ_ENOENT, the id in
 *  "after" that names no job. */
int64_t lifecycle_missing_parent(const store *st);

/** lifecycle_cancel: cancels job id unless it has ended (JOBQ_ESTATE) or is running and
 *  allow_running is false (JOBQ_ESTATE); JOBQ_ENOENT if none. Then as any end of a job (see
 *  lifecycle_finish). On success *row holds the cancelled job and *old_statep its previous
 *  state. */
int lifecycle_cancel(store *st, int64_t id, int64_t now_ms, bool allow_running, job_row *row,
                     int *old_statep);

/** lifecycle_cancel_why: lifecycle_cancel, with why (may be NULL) kept as the job's error. */
int lifecycle_cancel_why(store *st, int64_t id, int64_t now_ms, bool allow_running, const char *why,
                         job_row *row, int *old_statep);

/** lifecycle_finish_many: lifecycle_finish of each of ends[0..n) (ended jobs' dependents and
 *  groups included) at now_ms; each end's err says whether it was recorded (JOBQ_ESTATE: that
 *  job was not running as expected and nothing of it changed). An error returned leaves the
 *  caller to undo them all (a savepoint). Writer's thread. */
int lifecycle_finish_many(store *st, job_end *ends, size_t n, int64_t now_ms);

/** lifecycle_finish: records the end of a running attempt of job id: new_state (succeeded,
 *  dead, retrying or cancelled), run_at_ms for retrying, result and error texts (NULL to
 *  keep none), and a row of attempt history for a (unless NULL). JOBQ_ESTATE if the job is
 *  not running (e.g. cancelled meanwhile). When the job has ended (succeeded, dead or
 *  cancelled): each job waiting for it is released once it waits for nothing else, or
 *  cancelled ("parent job N ended dead") if it ended otherwise than succeeded and the child
 *  does not run after any end, and so on down the chain; each group touched completes when
 *  its last member ends (lifecycle_group_settle). */
int lifecycle_finish(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
                     const char *result, const char *error, const attempt_rec *a);

/** lifecycle_group_settle: completes group gid if it is open and every member has ended:
 *  submits its on_complete job (its payload wraps the user's with the outcome of each
 *  member) and marks it complete, exactly once; both are effects. Nothing otherwise. */
int lifecycle_group_settle(store *st, int64_t gid, int64_t now_ms);

/** lifecycle_recover_running: at start, every job left running is recorded as an attempt
 *  interrupted by a crash (its attempt stays counted) and made ready again, unless it has
 *  now been running during poison_crashes crashes: then it is dead, a suspected poison job,
 *  and ends as lifecycle_finish says. Only jobs of queues for which local(arg, queue) is
 *  true can be poison (local NULL: all); a job that ran elsewhere (a remote worker's) cannot
 *  have crashed jobqd. fn (may be NULL) is called for each. *np receives how many. */
int lifecycle_recover_running(store *st, int64_t now_ms, int poison_crashes,
                              bool (*local)(void *arg, const char *queue),
                              void (*fn)(void *arg, const char *queue, int64_t id, bool poisoned),
                              void *arg, size_t *np);

/** lifecycle_schedule_fire: records tick_ms as schedule name's last tick and, unless spec
 *  is NULL (a skipped tick), submits spec with lifecycle_insert (its key names the schedule
 *  and tick, so a tick never submits twice). Outputs as lifecycle_insert. */
int lifecycle_schedule_fire(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                            int64_t now_ms, int64_t *idp, bool *dupp, int *statep);

/** lifecycle_schedule_tick: lifecycle_schedule_fire with the overlap policy: with
 *  overlap_skip, while the job of the schedule's last fired tick (or trigger) is still
 *  pending or running, the tick is recorded without a job (*skippedp true, *idp that job).
 *  A submitted job becomes the schedule's last job. */
int lifecycle_schedule_tick(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                            bool overlap_skip, int64_t now_ms, int64_t *idp, bool *dupp,
                            int *statep, bool *skippedp);

/** lifecycle_schedule_trigger: submits spec (a job of schedule name, outside its ticks) and
 *  makes it the schedule's last job. Outputs as lifecycle_insert. */
int lifecycle_schedule_trigger(store *st, const char *name, const job_spec *spec, int64_t now_ms,
                               int64_t *idp, bool *dupp, int *statep);

/** lifecycle_sweep_queue: retention of queue, in one batch of at most max deletions per
 *  kind: deletes its ended jobs (with their history) that finished longer ago than
 *  retention_ms[state] for each end state, counting them in deleted[state], and forgets its
 *  idempotency keys first used longer ago than key_ttl_ms. Sets *morep when a batch was full
 *  (sweep again at once; left as it is otherwise) and *next_msp to when the queue next has
 *  something to delete (INT64_MAX: nothing stored to delete). retention_ms and deleted are
 *  indexed by jobq_state. */
int lifecycle_sweep_queue(store *st, const char *queue, const int64_t *retention_ms,
                          int64_t key_ttl_ms, int64_t now_ms, size_t max, size_t *deleted,
                          bool *morep, int64_t *next_msp);

/* ---- bulk operations (mutate) ---- */

/** What a mutate's action does to a job in a given state. */
typedef enum mutate_verdict {
    MUTATE_APPLY, /* the action applies: lifecycle_mutate_job */
    MUTATE_SKIP,  /* it does not apply to that state: the job is left as it is, and counted */
    MUTATE_STOP,  /* cancel of a running job: stopped on the loop where it runs; its outcome
                   * records the cancel (as the cancel op does) */
} mutate_verdict;

/** lifecycle_mutate_verdict: the policy of each action (a mutate_action of request.h) by
 *  state: cancel applies to unfinished jobs (running ones are stopped); retry to dead and
 *  cancelled ones; delete to finished ones only (a running job holds a lease and a process,
 *  a pending one may have dependents and a group waiting for it: cancel it first); run_now
 *  to scheduled and retrying; reschedule to scheduled, retrying and ready; set_priority to
 *  the pending (scheduled, ready, retrying, waiting); rerun to finished jobs. Pure. */
mutate_verdict lifecycle_mutate_verdict(int action, int state);

/** A mutate's action and its argument. */
typedef struct mutate_args {
    int action;        /* a mutate_action */
    int32_t priority;  /* set_priority */
    int64_t run_at_ms; /* reschedule */
} mutate_args;

/** What lifecycle_mutate_job did to one job, for the loop to follow (counts, waiters, the
 *  scheduler) after the commit. */
typedef struct mutate_change {
    int64_t id;
    int from;          /* its state before */
    int to;            /* its state now; -1: deleted; from == to: nothing for the loop (a
                        * new priority, or a cancel done already by an earlier one's cascade) */
    int64_t run_at_ms; /* its run_at now (scheduled, retrying) */
    int64_t new_id;    /* rerun: the job submitted (0: none); from is then its state, -1 */
    job_row row;       /* cancel: the job as it ended (for waits_job_finished) */
} mutate_change;

/** lifecycle_mutate_job: applies m to job id, which store_pick found in state (verdict
 *  MUTATE_APPLY) in this transaction: cancel as lifecycle_cancel (dependents cascade);
 *  retry as store_retry; delete with its history; run_now: ready now (as promote);
 *  reschedule: run_at set, the state following it (ready when it has come, else scheduled,
 *  or retrying for a retrying job); set_priority; rerun: a new job with the queue, payload,
 *  priority, max_attempts, timeout and trace context of this one (no key, group nor
 *  parents), ready now. Fills *out (the caller clears out->row). JOBQ_ESTATE when the job
 *  is no longer in a state the action applies to (nothing changed). */
int lifecycle_mutate_job(store *st, const mutate_args *m, int64_t id, int state, int64_t now_ms,
                         mutate_change *out);

/** lifecycle_ended_state: whether state is an end (succeeded, dead or cancelled). Pure. */
bool lifecycle_ended_state(int state);

#endif
