/* store.h: the SQLite job store. Synchronous; the only code with SQL. One connection, used
 * by one thread at a time (the writer's work thread, or main before the loop starts). */
#ifndef JOBQD_STORE_H
#define JOBQD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jobq.h"

typedef struct store store;

/** A job to insert. All strings are borrowed. */
typedef struct job_spec {
    const char *queue;
    const char *payload;   /* compact JSON text */
    uint64_t payload_hash; /* jobq__payload_hash of payload; used only with a key */
    int32_t priority;
    int64_t run_at_ms;
    int32_t max_attempts;
    int64_t timeout_ms;
    const char *key;      /* NULL for none */
    int64_t key_ttl_ms;   /* the key admits one job per this window, from its first submit */
    int64_t group_id;     /* the group the job belongs to; 0: none */
    const int64_t *after; /* the jobs it waits for (NULL: none); they must exist */
    size_t nafter;
    bool after_always; /* run even if a parent ends dead or cancelled */
} job_spec;

/** One attempt as the history records it. kind: success, exit, signal, timeout, spawn,
 *  permanent, cancelled, shutdown, crash, lease. */
typedef struct attempt_rec {
    int32_t attempt;
    int64_t started_at_ms;
    const char *kind;
} attempt_rec;

/** One row of a job's attempt history, as read back. Owned strings: attempt_row_clear. */
typedef struct attempt_row {
    int32_t attempt;
    int64_t started_at_ms;
    int64_t finished_at_ms;
    char *kind;
    char *error; /* NULL on success */
} attempt_row;

void attempt_row_clear(attempt_row *a);

/** A job as stored. Strings are owned by the row: release with job_row_clear. */
typedef struct job_row {
    int64_t id;
    char *queue;
    char *payload;
    int32_t priority;
    int state; /* jobq_state */
    int64_t run_at_ms;
    int32_t attempt;
    int32_t max_attempts;
    int64_t timeout_ms;
    char *key;    /* NULL if none */
    char *result; /* NULL if none */
    char *error;  /* NULL if none */
    int64_t created_at_ms;
    int64_t started_at_ms;  /* 0 if never started */
    int64_t finished_at_ms; /* 0 if not finished */
    int64_t group_id;       /* 0 if in no group */
} job_row;

/** job_row_clear: frees the row's strings and zeroes it. Accepts a zeroed row. */
void job_row_clear(job_row *row);

/** store_open: opens (creating if needed) the database at path, sets WAL mode and the
 *  durability, applies pending migrations. Returns JOBQ_OK and *stp, or an error with a
 *  reason in err (e.g. a database written by a newer jobqd). */
int store_open(const char *path, enum durability durability, store **stp, char *err, size_t errlen);

/** store_set_sync: whether the next commits fsync (durability full only; with normal none
 *  does). A commit that fsyncs makes every earlier commit durable too. Between transactions,
 *  on the writer's thread. */
void store_set_sync(store *st, bool sync);

/** store_close: closes the connection (checkpointing the WAL). Accepts NULL. */
void store_close(store *st);

/** store_errmsg: the reason of the last failure on this store (SQLite's message). */
const char *store_errmsg(const store *st);

/* Transactions. The writer runs each batch as BEGIN, one savepoint per operation, COMMIT. */
int store_begin(store *st);
int store_commit(store *st);
void store_rollback(store *st);
int store_savepoint(store *st);
void store_release(store *st);
void store_rollback_savepoint(store *st); /* undoes and releases the savepoint */
/** store_in_transaction: false once SQLite rolled the transaction back by itself (after
 *  SQLITE_FULL, an I/O error or out of memory). */
bool store_in_transaction(const store *st);

/** store_insert: inserts one job, state scheduled if run_at_ms > now_ms else ready. With a
 *  key already used on the queue: JOBQ_OK with *dupp = true and *idp, *statep of that job
 *  (*statep = -1 if the job was since deleted) when the payload hash matches, else
 *  JOBQ_ECONFLICT. */
int store_insert(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp, bool *dupp,
                 int *statep);

/** store_get: reads job id into *row (which the caller clears). JOBQ_ENOENT if none. */
int store_get(store *st, int64_t id, job_row *row);

/** store_cancel: cancels job id unless it has finished (JOBQ_ESTATE) or is running and
 *  allow_running is false (JOBQ_ESTATE). On success *row holds the cancelled job and
 *  *old_statep its previous state. */
int store_cancel(store *st, int64_t id, int64_t now_ms, bool allow_running, job_row *row,
                 int *old_statep);

/** store_set_error: sets the error text of job id (NULL clears it), e.g. why it was cancelled.
 *  Work thread. */
int store_set_error(store *st, int64_t id, const char *error);

/** A filter for store_list. queue NULL or state -1 means any. */
typedef struct list_filter {
    const char *queue;
    int state;
    int64_t after_id;
    int limit;
} list_filter;

/** store_list: up to f->limit jobs matching f in ascending id order into rows (caller
 *  allocated, f->limit entries; the caller clears each). *np receives how many, and *morep
 *  (unless NULL) whether more jobs match after the last one read. */
int store_list(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep);

/** store_count_each: calls fn once per (queue, state) with its number of jobs. */
int store_count_each(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n),
                     void *arg);

/** store_paused_each: calls fn once per queue whose paused flag is stored set. */
int store_paused_each(store *st, void (*fn)(void *arg, const char *queue), void *arg);

/** store_set_paused: stores the paused flag of queue. */
int store_set_paused(store *st, const char *queue, bool paused);

/** store_claim: moves up to max ready jobs of queue (priority DESC, run_at, id) to running,
 *  counting an attempt and setting started_at = now_ms. Fills rows (caller allocated, max
 *  entries; the caller clears each) and *np. */
int store_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows,
                size_t *np);

/** store_finish: records the end of a running attempt of job id: new_state (succeeded,
 *  dead, retrying or cancelled), run_at_ms for retrying, result and error texts (NULL to
 *  keep none), and a row of attempt history for a (unless NULL). JOBQ_ESTATE if the job is
 *  not running (e.g. cancelled meanwhile). */
int store_finish(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
                 const char *result, const char *error, const attempt_rec *a);

/** store_requeue: puts a running job back to ready and gives back the attempt it had counted
 *  (used by shutdown for jobs it had to kill: a deploy must not spend attempts). The
 *  interrupted attempt is still recorded in the history (kind "shutdown"). */
int store_requeue(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a);

/** store_promote_due: moves up to max scheduled/retrying jobs whose run_at <= now_ms to
 *  ready; calls fn for each with its queue and previous state. *np receives how many. */
int store_promote_due(store *st, int64_t now_ms, size_t max,
                      void (*fn)(void *arg, const char *queue, int old_state), void *arg,
                      size_t *np);

/** store_next_due: the earliest run_at of a scheduled or retrying job into *atp, or
 *  JOBQ_ENOENT when there is none. */
int store_next_due(store *st, int64_t *atp);

/** store_recover_running: at start, every job left running is recorded as an attempt
 *  interrupted by a crash (its attempt stays counted) and made ready again, unless it has
 *  now been running during poison_crashes crashes: then it is dead, a suspected poison job.
 *  Only jobs of queues for which local(arg, queue) is true can be poison (local NULL: all);
 *  a job that ran elsewhere (a remote worker's) cannot have crashed jobqd. fn (may be NULL)
 *  is called for each. *np receives how many. */
int store_recover_running(store *st, int64_t now_ms, int poison_crashes,
                          bool (*local)(void *arg, const char *queue),
                          void (*fn)(void *arg, const char *queue, int64_t id, bool poisoned),
                          void *arg, size_t *np);

/** store_retry: makes a dead or cancelled job ready with a fresh attempt budget (attempt 0).
 *  JOBQ_ESTATE for any other state. *row receives the job, *old_statep its previous state. */
int store_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep);

/** store_retry_bulk: store_retry for up to max jobs in state (of queue, or of every queue if
 *  NULL), lowest ids first; fn gets each job's queue. *np receives how many. */
int store_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
                     void (*fn)(void *arg, const char *queue), void *arg, size_t *np);

/** store_attempts: up to max rows of job id's attempt history, oldest first. */
int store_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np);

/** store_sweep: deletes up to max jobs of queue in state (succeeded, dead or cancelled) that
 *  finished before before_ms, with their attempt history. *np receives how many. */
int store_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max, size_t *np);

/** store_sweep_groups: deletes up to max groups completed before before_ms whose members
 *  retention has all deleted. */
int store_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np);

/** store_sweep_keys: forgets up to max idempotency keys of queue first used before
 *  before_ms. */
int store_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np);

/** store_ready_ahead: how many ready jobs of row's queue claim before row (at most limit). */
int store_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np);

/** store_oldest_finished: the earliest finished_at of queue's jobs in state, or
 *  JOBQ_ENOENT. */
int store_oldest_finished(store *st, const char *queue, int state, int64_t *atp);

/** store_oldest_key: the earliest first use of a key of queue, or JOBQ_ENOENT. */
int store_oldest_key(store *st, const char *queue, int64_t *atp);

/** store_recent: up to max jobs of queue in a finished state, the last finished first. */
int store_recent(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np);

/** store_backup: writes a consistent copy of the database at db_path to dest (which must not
 *  exist) with VACUUM INTO, on a connection of its own: the writer is not held up. Any
 *  thread. Returns a jobq_err, with a reason in err. */
int store_backup(const char *db_path, const char *dest, char *err, size_t errlen);

/* ---- effects ----
 * When a job ends, the store may change other jobs in the same transaction: a dependent job
 * is released (waiting -> ready or scheduled) or cancelled, a group completes and its
 * on_complete job is submitted. Those changes are recorded as effects, which the writer
 * hands to the loop after the commit (and drops with a rolled-back operation) so that
 * counts, waiters and dispatch follow. The job an operation itself changed is not an
 * effect: the operation reports it. */
typedef enum effect_kind {
    EFFECT_JOB,   /* a job changed state or was submitted by the store */
    EFFECT_GROUP, /* a group completed: every member has ended */
} effect_kind;

typedef struct store_effect {
    effect_kind kind;
    int64_t id;        /* the job, or the group */
    char *queue;       /* EFFECT_JOB: owned */
    int from, to;      /* EFFECT_JOB: states; from is -1 for a job the store submitted */
    int64_t run_at_ms; /* EFFECT_JOB */
    job_row row;       /* EFFECT_JOB that ended the job: the job as it is now */
} store_effect;

/** store_effects_mark: how many effects are recorded so far (for store_effects_undo). */
size_t store_effects_mark(const store *st);
/** store_effects_undo: forgets the effects recorded after mark (their changes were rolled
 *  back). */
void store_effects_undo(store *st, size_t mark);
/** store_effects_take: the recorded effects, handed over to the caller (free them with
 *  store_effects_free); the store starts a new list. */
store_effect *store_effects_take(store *st, size_t *np);
void store_effects_free(store_effect *e, size_t n);

/* ---- groups and dependencies ---- */

/** What a group submits when it completes. oc_queue NULL: nothing. Borrowed strings. */
typedef struct group_spec {
    size_t size;
    const char *oc_queue;
    const char *oc_payload; /* the user's payload; the job gets it wrapped with the outcomes */
    int32_t oc_priority;
    int32_t oc_max_attempts;
    int64_t oc_timeout_ms;
} group_spec;

/** store_group_create: a new, empty group; *gidp receives its id. */
int store_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp);

/** store_group_settle: completes group gid if it is open and every member has ended: marks
 *  it complete and submits its on_complete job, exactly once (both are effects). */
int store_group_settle(store *st, int64_t gid, int64_t now_ms);

typedef struct group_member {
    int64_t id;
    int state;
    int32_t attempt;
    char *error; /* NULL if none */
} group_member;

typedef struct group_info {
    int64_t id;
    int64_t size;
    int64_t created_at_ms;
    int64_t completed_at_ms; /* 0 while open */
    char *oc_queue;          /* NULL if none */
    int64_t oc_job_id;       /* 0 until submitted */
    int64_t counts[JOBQ_WAITING + 1];
    group_member *members; /* with members: every member still stored, by id */
    size_t nmembers;
} group_info;

/** store_group_get: group gid (JOBQ_ENOENT if none), its counts by state and, if members,
 *  each member. Release with group_info_clear. */
int store_group_get(store *st, int64_t gid, bool members, group_info *g);
void group_info_clear(group_info *g);

/** store_missing_parent: after store_insert failed with JOBQ_ENOENT, the id in "after"
 *  that names no job. */
int64_t store_missing_parent(const store *st);

/** store_waiting_for: up to max ids of the parents job id still waits for. */
int store_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np);

/* ---- schedules ---- */

/** store_schedule_last: the last tick schedule name fired or skipped (JOBQ_ENOENT: never). */
int store_schedule_last(store *st, const char *name, int64_t *tickp);

/** store_schedule_since: when jobqd first saw schedule name (kept apart from its ticks, so
 *  a schedule that never fired has no last tick) into *sincep; records now_ms first when
 *  none is stored. Inside the caller's transaction. */
int store_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep);

/** store_schedule_fire: records tick_ms as schedule name's last tick and, unless spec is
 *  NULL (a skipped tick), submits spec (whose key names the schedule and tick, so a tick
 *  never submits twice). Outputs as store_insert. */
int store_schedule_fire(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                        int64_t now_ms, int64_t *idp, bool *dupp, int *statep);

/** store_from_sqlite: the jobq_err for a SQLite result code. */
int store_from_sqlite(int rc);

#endif
