/* store.h: the job store interface: data access only (rows, indexes, transactions, effects),
 * with no type of any database in sight. Synchronous; one connection, used by one thread at a
 * time (the writer's work thread, or main before the loop starts). Job policy (what a job's
 * end does to others, groups, poison jobs, key windows, retention) is lifecycle.h's, above.
 *
 * Why a table of functions (store_ops) and not one set of functions per build: the backend
 * is chosen at run time by the `database` setting (a file path: SQLite, store_sqlite.c; a
 * postgresql:// URL: a PostgreSQL backend), so one jobqd must carry both and dispatch per
 * store. Each store_x() below forwards to st->ops->x; a backend fills a store_ops and embeds
 * a struct store as the first member of its own (see "Backends" at the end). The cost is one
 * indirect call per operation, nothing next to a statement's execution. Model: redis's
 * ConnectionType (src/connection.h).
 *
 * What every backend guarantees:
 * - Between store_begin and store_commit/store_rollback, every call is in one transaction:
 *   all of it is durable after store_commit returns JOBQ_OK (and store_set_sync(true)), none
 *   of it after store_rollback or a failed commit. A savepoint undoes exactly the calls made
 *   since it, and nothing else. Reads see the transaction's own writes.
 * - A call that fails may have done part of its work: the caller undoes it (the writer rolls
 *   back the operation's savepoint on any failure, the effects recorded since with it).
 * - Errors are jobq_err: JOBQ_ENOENT no such row, JOBQ_ESTATE a fenced update found the row
 *   in another state, JOBQ_EFULL disk full, JOBQ_ENOMEM, JOBQ_ESTORE anything else.
 * - Out-parameters are written only on success. Rows handed out are owned by the caller.
 * - No function applies job policy: it reads and writes what it is asked to, with the fence
 *   (the required present state) its name states. */
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
    const char *traceparent; /* W3C trace context (NULL: none) */
    const char *tracestate;
    int dedupe;              /* a jobq_dedupe: how lifecycle_insert_dedupe decides a used key */
    int64_t debounce_max_ms; /* dedupe debounce: run_at at most the key's first use + this */
    int64_t expires_at_ms;   /* not started by then: cancelled as expired; 0: never */
    const char *group_key; /* the job's fairness key (NULL: none): see store_claim_keys */
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
    char *traceparent;      /* W3C trace context; NULL if none */
    char *tracestate;
    bool has_progress;      /* a progress was reported (progress, note) */
    double progress;        /* 0 .. 100 */
    char *note;             /* the progress's note; NULL if none */
    char *checkpoint;       /* the last checkpoint, JSON text; NULL if none */
    char *parent_results;   /* store_claim only: its parents' results, a JSON object keyed by
                               parent id (at most STORE_PARENT_RESULTS_MAX bytes); NULL when it
                               has no parent */
    char *group_key;        /* the job's fairness key; NULL if none */
} job_row;

/** The largest parent_results object handed to a job, in bytes of JSON text: a parent whose
 *  result would take it beyond is listed with null. */
#define STORE_PARENT_RESULTS_MAX 65536

/** job_row_clear: frees the row's strings and zeroes it. Accepts a zeroed row. */
void job_row_clear(job_row *row);

/** store_open: opens (creating if needed) the database named by `database`: a file path is
 *  a SQLite database (WAL mode, the durability, pending migrations applied); a
 *  postgresql:// (or postgres://) URL is a PostgreSQL database (store_pg.c: connected,
 *  pending migrations/pg/ applied). Returns JOBQ_OK and *stp, or an error with a reason in
 *  err (e.g. a database written by a newer jobqd, a server that cannot be reached). */
int store_open(const char *path, enum durability durability, store **stp, char *err, size_t errlen);

/** store_is_postgres: whether the `database` setting names a PostgreSQL server (a
 *  postgresql:// or postgres:// URL) rather than a SQLite file. */
bool store_is_postgres(const char *database);

/** store_redact: the `database` setting fit for a log line or a reply: a password in it
 *  replaced by ***. Writes at most len bytes to buf. */
void store_redact(const char *database, char *buf, size_t len);

/** store_set_sync: whether the next commits are durable on return (durability full only;
 *  with normal none is). A durable commit makes every earlier commit durable too. Between
 *  transactions, on the writer's thread. */
void store_set_sync(store *st, bool sync);

/** store_sync_apart: whether this store's commits are made durable after they return, by
 *  store_sync (SQLite with durability full, its commits run with store_set_sync(false)), so
 *  that the next transaction can run while the sync of the last one waits for the disk. False:
 *  store_set_sync decides what a commit makes durable (durability normal: nothing). */
bool store_sync_apart(const store *st);

/** store_sync: makes every commit that returned before the call durable (with SQLite, an
 *  fsync of the write-ahead log through SQLite's own file object, so the VFS sees it). Any
 *  thread: the one call allowed while the writer's thread runs a transaction (one at a time).
 *  Returns JOBQ_OK, or JOBQ_ESTORE (JOBQ_EFULL) with the reason in msg (store_errmsg is the
 *  writer thread's). Only when store_sync_apart. */
int store_sync(store *st, char *msg, size_t msglen);

/** store_checkpoint: after a failed store_sync, makes every commit durable without trusting
 *  the log's unsynced pages (a kernel may have dropped them): copies the log into the
 *  database, syncs it and empties the log (synced too). Between transactions, on the writer's
 *  thread. Returns JOBQ_OK, or an error with the reason in msg. */
int store_checkpoint(store *st, char *msg, size_t msglen);

/** store_close: closes the connection (checkpointing what it must). Accepts NULL. */
void store_close(store *st);

/** store_errmsg: the reason of the last failure on this store (the backend's message);
 *  "no database" for NULL. */
const char *store_errmsg(const store *st);

/* ---- transactions ----
 * The writer runs each batch as begin, one savepoint per operation (released or rolled
 * back), commit. Savepoints do not nest. */
int store_begin(store *st);
int store_commit(store *st);
void store_rollback(store *st); /* no-op outside a transaction */
int store_savepoint(store *st);
void store_release(store *st);
void store_rollback_savepoint(store *st); /* undoes and releases the savepoint */
/** store_in_transaction: false once the backend rolled the transaction back by itself
 *  (after a full disk, an I/O error or out of memory). */
bool store_in_transaction(const store *st);

/* ---- jobs ---- */

/** store_job_insert: inserts job spec in state with created_at = now_ms, the given
 *  finished_at (0: none) and error (NULL: none); *idp receives its new id, greater than any
 *  id given before. Neither its key nor its parents are recorded (store_key_add,
 *  store_dep_add). */
int store_job_insert(store *st, const job_spec *spec, int state, int64_t now_ms,
                     int64_t finished_at_ms, const char *error, int64_t *idp);

/** store_job_state: the state of job id into *statep, or JOBQ_ENOENT. */
int store_job_state(store *st, int64_t id, int *statep);

/** store_job_set_state: moves job id from state `from` (-1: any) to `to`, setting
 *  finished_at (0: unchanged) and error (NULL: unchanged). JOBQ_ESTATE if the job is not in
 *  `from` (or does not exist). */
int store_job_set_state(store *st, int64_t id, int from, int to, int64_t finished_at_ms,
                        const char *error);

/** store_get: reads job id into *row (which the caller clears). JOBQ_ENOENT if none. */
int store_get(store *st, int64_t id, job_row *row);

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
 *  counting an attempt and setting started_at = now_ms, finished_at none. Fills rows (caller
 *  allocated, max entries; the caller clears each) with the jobs as they now are, and *np;
 *  a job with parents (`after`) gets their results in parent_results. */
int store_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows,
                size_t *np);

/** Per-key limits of a claim (store_claim_keys). */
typedef struct key_limits {
    int32_t cap;          /* running jobs of one key at most (key_concurrency); 0: no cap */
    int64_t interval_ms;  /* key_rate: ms between two starts of one key; 0: no rate */
    int64_t tolerance_ms; /* key_rate: how much earlier than that a start may come (burst) */
} key_limits;

/** What a claim passed over (store_claim_keys). */
typedef struct key_claim_info {
    bool blocked;    /* a key with a ready job was passed over for its cap or its rate */
    int64_t wake_ms; /* the earliest a key held by its rate may start again; 0: none */
} key_claim_info;

/** store_claim_keys: store_claim with fairness between keys: the queue's keyed ready jobs
 *  (group_key set) are claimed key by key, the keys taking turns within a priority level
 *  (the least recently served first), its jobs without key taking the turns of one more key
 *  (with no keyed job in the rotation, exactly as store_claim). A key with kl->cap running
 *  jobs, or whose rate (kl->interval_ms, kl->tolerance_ms) holds it, is passed over (kl NULL:
 *  no limit). *info (unless NULL) says whether one was and when a key held by its rate is due.
 *  Each job costs a few index seeks, whatever the backlog and the number of keys. */
int store_claim_keys(store *st, const char *queue, int64_t now_ms, size_t max, const key_limits *kl,
                     job_row *rows, size_t *np, key_claim_info *info);

/** store_key_running: how many jobs of key group_key of queue run (at most limit) into *np. */
int store_key_running(store *st, const char *queue, const char *group_key, int64_t limit,
                      int64_t *np);

/** store_key_hold: no job of key group_key of queue starts before until_ms (a slow-down a
 *  downstream asked for one key); a later hold already set wins. */
int store_key_hold(store *st, const char *queue, const char *group_key, int64_t until_ms);

/** store_running: every running job, in no given order, into *rowsp (malloc'd; clear each row
 *  and free the array; NULL when none) and *np. Only id, queue, state, attempt and
 *  started_at_ms are filled. */
int store_running(store *st, job_row **rowsp, size_t *np);

/** store_jobs_insert: n new jobs at once, each specs[i] in states[i] (ready or scheduled),
 *  created at now_ms, with no key, no after and no expiry (store_job_insert does those); their
 *  ids into ids, in order. One statement where the backend can (PostgreSQL: arrays). */
int store_jobs_insert(store *st, const job_spec *specs, const int *states, size_t n,
                      int64_t now_ms, int64_t *ids);

/** One end of store_jobs_end: what store_job_end takes (in) and gives (out). */
typedef struct job_end {
    int64_t id;
    int new_state;
    int64_t run_at_ms;  /* retrying: when */
    const char *result; /* NULL: none */
    const char *error;  /* NULL: none */
    attempt_rec a;      /* its history row */
    int err;            /* out: JOBQ_OK, or JOBQ_ESTATE (that one changed nothing) */
    int64_t gid;        /* out, when it ended */
    bool kids;          /* out, when it ended */
} job_end;

/** store_jobs_end: store_job_end for each of ends[0..n) at now_ms, one statement where the
 *  backend can; a job whose fence fails gets err JOBQ_ESTATE and changes nothing, the others
 *  are recorded. An error returned (the store's) leaves the caller to undo them all. */
int store_jobs_end(store *st, job_end *ends, size_t n, int64_t now_ms);

/** store_state_ends: whether state is an end (succeeded, dead or cancelled). */
static inline bool
store_state_ends(int state)
{
    return state == JOBQ_SUCCEEDED || state == JOBQ_DEAD || state == JOBQ_CANCELLED;
}

/** store_job_finish: records the end of a running attempt of job id: new_state,
 *  finished_at (0: none), run_at (0: unchanged), result and error texts (NULL: none).
 *  JOBQ_ESTATE if the job is not running (e.g. cancelled meanwhile). */
int store_job_finish(store *st, int64_t id, int new_state, int64_t finished_at_ms,
                     int64_t run_at_ms, const char *result, const char *error);

/** store_job_end: how attempt a of running job id ended, in one call a backend may make one
 *  round trip: store_job_finish (finished at now_ms when new_state ends the job), then
 *  store_attempt_add of a (NULL: none) with error, then, when the job ended,
 *  store_key_release. JOBQ_ESTATE (nothing changed) if the job is not running (or, where a
 *  backend fences attempts, no longer at a->attempt). When it ended: *gidp its group (0:
 *  none) and *kidsp false only when no job waits for it (true: jobs may). */
int store_job_end(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
                  const char *result, const char *error, const attempt_rec *a, int64_t *gidp,
                  bool *kidsp);

/** store_requeue: puts a running job back to ready and gives back the attempt it had counted
 *  (used by shutdown for jobs it had to kill: a deploy must not spend attempts), with error;
 *  records a (unless NULL) in its history with that error. JOBQ_ESTATE if not running. */
int store_requeue(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a);

/** store_promote_due: moves up to max scheduled/retrying jobs whose run_at <= now_ms to
 *  ready, earliest run_at first; calls fn for each with its queue and previous state. *np
 *  receives how many. */
int store_promote_due(store *st, int64_t now_ms, size_t max,
                      void (*fn)(void *arg, const char *queue, int old_state), void *arg,
                      size_t *np);

/** store_next_due: the earliest run_at of a scheduled or retrying job into *atp, or
 *  JOBQ_ENOENT when there is none. */
int store_next_due(store *st, int64_t *atp);

/** store_retry: makes a dead or cancelled job ready with a fresh attempt budget (attempt 0),
 *  run_at now_ms, no finished_at nor result. JOBQ_ESTATE for any other state. *row receives
 *  the job, *old_statep its previous state. */
int store_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep);

/** store_retry_bulk: store_retry for up to max jobs in state (of queue, or of every queue if
 *  NULL), lowest ids first; fn gets each job's queue. *np receives how many. */
int store_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
                     void (*fn)(void *arg, const char *queue), void *arg, size_t *np);

/** store_ready_ahead: how many ready jobs of row's queue claim before row (at most limit). */
int store_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np);

/* ---- bulk operations (mutate) ---- */

/** Which jobs a bulk operation is about: each criterion set narrows it (0 or NULL: left
 *  out). Strings and ids are borrowed. */
typedef struct job_filter {
    const char *queue;          /* this queue only */
    unsigned states;            /* bit (1u << state) per jobq_state; 0: any state */
    const int64_t *ids;         /* these jobs only (nids of them; NULL: any) */
    size_t nids;
    int64_t created_after_ms;   /* created_at >= it */
    int64_t created_before_ms;  /* created_at < it */
    int64_t finished_after_ms;  /* finished_at >= it (jobs not finished never match) */
    int64_t finished_before_ms; /* finished_at < it */
    const char *error_contains; /* a substring of the job's last error (case-sensitive) */
    const char *key_prefix;     /* the start of the job's idempotency key */
} job_filter;

/** store_max_id: the largest job id stored (0: none) into *idp. */
int store_max_id(store *st, int64_t *idp);

/** store_pick: the jobs matching f with after_id < id <= upto_id, at most max of them, in
 *  ascending id order: fn is called for each with its id, queue (borrowed for the call) and
 *  state, after the read is complete (fn may not call the store). *np receives how many. One
 *  statement, every value of f bound as a parameter. */
int store_pick(store *st, const job_filter *f, int64_t after_id, int64_t upto_id, size_t max,
               void (*fn)(void *arg, int64_t id, const char *queue, int state), void *arg,
               size_t *np);

/** store_job_delete: deletes job id, in state `from`, with its attempt history and its
 *  dependency rows (its idempotency key is left to expire, as retention does). JOBQ_ESTATE
 *  if the job is not in `from` (or does not exist). */
int store_job_delete(store *st, int64_t id, int from);

/** store_job_set_priority: sets job id's priority, fenced on state `from` (JOBQ_ESTATE). */
int store_job_set_priority(store *st, int64_t id, int from, int32_t priority);

/** store_job_set_run_at: moves job id from state `from` to `to` with run_at run_at_ms,
 *  fenced on `from` (JOBQ_ESTATE). */
int store_job_set_run_at(store *st, int64_t id, int from, int to, int64_t run_at_ms);

/* ---- attempt history ---- */

/** store_attempt_add: one row of job id's attempt history: a, finished at now_ms, with
 *  error (NULL on success). */
int store_attempt_add(store *st, int64_t id, const attempt_rec *a, int64_t now_ms,
                      const char *error);

/** store_attempt_count: how many of job id's attempts are of kind, into *np. */
int store_attempt_count(store *st, int64_t id, const char *kind, int64_t *np);

/** store_attempts: up to max rows of job id's attempt history, oldest first. */
int store_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np);

/* ---- progress, checkpoints and logs ---- */

/** What a running job reported since the last write. Borrowed strings. */
typedef struct progress_set {
    bool has_progress;      /* set progress and note */
    double progress;        /* 0 .. 100 */
    const char *note;       /* NULL: none */
    const char *checkpoint; /* JSON text to store; NULL: unchanged */
} progress_set;

/** store_job_progress: stores p on job id (no fence on its state: a report that arrives as
 *  the attempt ends is kept). JOBQ_ENOENT if no such job. */
int store_job_progress(store *st, int64_t id, const progress_set *p);

/** store_log_append: appends lines[0..n) (NUL-terminated texts) to job id's log, numbered
 *  after its last line, with attempt and at_ms; then drops its oldest lines so that at most
 *  max_lines lines and max_bytes bytes of text are kept (the newest line is always kept).
 *  *last_seqp (unless NULL) receives the number of the last line. */
int store_log_append(store *st, int64_t id, int32_t attempt, int64_t at_ms,
                     const char *const *lines, size_t n, size_t max_lines, size_t max_bytes,
                     int64_t *last_seqp);

/** One line of a job's log as read back. Owned text: log_row_clear. */
typedef struct log_row {
    int64_t seq; /* from 1, per job */
    int32_t attempt;
    int64_t at_ms;
    char *line;
} log_row;

void log_row_clear(log_row *l);

/** store_logs: up to max lines of job id's log numbered after after_seq, oldest first, into
 *  rows (caller allocated; the caller clears each) and *np. */
int store_logs(store *st, int64_t id, int64_t after_seq, log_row *rows, size_t max, size_t *np);

/* ---- idempotency keys ---- */

/** store_key_find: the job, payload hash and first use of key on queue, or JOBQ_ENOENT. */
int store_key_find(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
                   int64_t *created_at_msp);

/** store_key_add: records key on queue for job id, first used at now_ms. A key already
 *  recorded on queue is an error (JOBQ_EINVAL). */
int store_key_add(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
                  int64_t now_ms);

/** store_key_delete: forgets key on queue (no error if unknown). */
int store_key_delete(store *st, const char *queue, const char *key);

/** store_key_lock: store_key_find, and whether the key is held until its job ends (*heldp:
 *  dedupe until_done, replace, debounce), with the key locked until the transaction ends
 *  against a concurrent submit of the same key by another jobqd on the same database (the
 *  lock is taken whether the key exists or not). JOBQ_ENOENT when none. */
int store_key_lock(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
                   int64_t *created_at_msp, bool *heldp);

/** store_key_put: records key on queue for job id (replacing what it recorded), first used
 *  at created_ms; held: forgotten by store_key_release when job id ends, never by
 *  store_sweep_keys. */
int store_key_put(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
                  int64_t created_ms, bool held);

/** store_key_release: forgets the held keys recorded for job id (none: no error). */
int store_key_release(store *st, int64_t id);

/** store_job_replace: job id, found in state from, takes payload and run_at_ms and goes to
 *  state to (JOBQ_ESTATE if it is no longer in from). */
int store_job_replace(store *st, int64_t id, int from, int to, const char *payload,
                      int64_t run_at_ms);

/** store_job_snooze: running job id is scheduled again at run_at_ms with its attempt given
 *  back (attempt - 1), error kept as its last error (NULL: none); JOBQ_ESTATE if it is not
 *  running. */
int store_job_snooze(store *st, int64_t id, int64_t run_at_ms, const char *error);

/* ---- expiry ---- */

/** store_job_set_expiry: job id is cancelled as expired if not started by at_ms (0: never). */
int store_job_set_expiry(store *st, int64_t id, int64_t at_ms);

/** store_job_expiry: job id's deadline to start into *at_msp (0: none); JOBQ_ENOENT. */
int store_job_expiry(store *st, int64_t id, int64_t *at_msp);

/** store_expired: up to max ids of jobs not started (scheduled, ready, retrying, waiting) of
 *  queue (NULL: every queue) whose deadline to start is at or before now_ms, the earliest
 *  first, into ids and *np. One range of an index that holds only jobs with a deadline. */
int store_expired(store *st, const char *queue, int64_t now_ms, size_t max, int64_t *ids,
                  size_t *np);

/** store_next_expiry: the earliest deadline to start of a job not started, or JOBQ_ENOENT. */
int store_next_expiry(store *st, int64_t *atp);

/* ---- dependencies ---- */

/** store_dep_add: job child waits for job parent (once: adding it twice is no error). */
int store_dep_add(store *st, int64_t parent, int64_t child);

/** store_dep_children: the jobs waiting for parent, into *idsp (malloc'd, the caller frees;
 *  NULL when none) and *np. */
int store_dep_children(store *st, int64_t parent, int64_t **idsp, size_t *np);

/** store_dep_drop_parent: forgets that any job waits for parent. */
int store_dep_drop_parent(store *st, int64_t parent);

/** store_dep_drop_child: forgets every parent job id waits for. */
int store_dep_drop_child(store *st, int64_t id);

/** store_dep_pending: whether job id still waits for some parent, into *waitsp. */
int store_dep_pending(store *st, int64_t id, bool *waitsp);

/** store_dep_job: what the cascade needs of job id: its state, whether it runs after any
 *  end of its parents (after_always), its run_at. JOBQ_ENOENT if it does not exist. */
int store_dep_job(store *st, int64_t id, int *statep, bool *alwaysp, int64_t *run_at_msp);

/** store_waiting_for: up to max ids of the parents job id still waits for, lowest first. */
int store_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np);

/* ---- retention ---- */

/** store_sweep: deletes up to max jobs of queue in state (succeeded, dead or cancelled) that
 *  finished before before_ms, with their attempt history and their log. *np receives how
 *  many. */
int store_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max, size_t *np);

/** store_sweep_groups: deletes up to max groups completed before before_ms none of whose
 *  members is still stored. */
int store_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np);

/** store_sweep_keys: forgets up to max idempotency keys of queue first used before
 *  before_ms. */
int store_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np);

/** store_oldest_finished: the earliest finished_at of queue's jobs in state (succeeded, dead
 *  or cancelled), or JOBQ_ENOENT. */
int store_oldest_finished(store *st, const char *queue, int state, int64_t *atp);

/** store_oldest_due: for queue, the earliest run_at of its ready jobs (*readyp; 0: none) and
 *  of its scheduled or retrying jobs due by now_ms and not yet made ready (*overduep; 0:
 *  none): how long its oldest waiting job has waited. One index seek per priority in use. */
int store_oldest_due(store *st, const char *queue, int64_t now_ms, int64_t *readyp,
                     int64_t *overduep);

/** store_oldest_key: the earliest first use of a key of queue, or JOBQ_ENOENT. */
int store_oldest_key(store *st, const char *queue, int64_t *atp);

/** store_recent: up to max jobs of queue in a finished state, the last finished first. */
int store_recent(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np);

/** store_backup: writes a consistent copy of the database named by db_path to dest (which
 *  must not exist), on a connection of its own: the writer is not held up. Any thread.
 *  Returns a jobq_err, with a reason in err (a backend without file copies says so). */
int store_backup(const char *db_path, const char *dest, char *err, size_t errlen);

/* ---- effects ----
 * When a job ends, the lifecycle may change other jobs in the same transaction: a dependent
 * job is released (waiting -> ready or scheduled) or cancelled, a group completes and its
 * on_complete job is submitted. Those changes are recorded as effects, which the writer
 * hands to the loop after the commit (and drops with a rolled-back operation) so that
 * counts, waiters and dispatch follow. The job an operation itself changed is not an
 * effect: the operation reports it. The list lives in the store, beside the transaction it
 * belongs to; backends do not touch it. */
typedef enum effect_kind {
    EFFECT_JOB,   /* a job changed state or was submitted by the lifecycle */
    EFFECT_GROUP, /* a group completed: every member has ended */
} effect_kind;

typedef struct store_effect {
    effect_kind kind;
    int64_t id;        /* the job, or the group */
    char *queue;       /* EFFECT_JOB: owned */
    int from, to;      /* EFFECT_JOB: states; from is -1 for a job the lifecycle submitted */
    int64_t run_at_ms; /* EFFECT_JOB */
    job_row row;       /* EFFECT_JOB that ended the job: the job as it is now */
    bool expired;      /* EFFECT_JOB: cancelled because it had not started by its deadline */
} store_effect;

/** store_effect_add: appends a new zeroed effect of kind for id (from = -1); NULL when out
 *  of memory. Inside a transaction, on the writer's thread. */
store_effect *store_effect_add(store *st, effect_kind kind, int64_t id);
/** store_effects_mark: how many effects are recorded so far (for store_effects_undo). */
size_t store_effects_mark(const store *st);
/** store_effects_undo: forgets the effects recorded after mark (their changes were rolled
 *  back). */
void store_effects_undo(store *st, size_t mark);
/** store_effects_take: the recorded effects, handed over to the caller (free them with
 *  store_effects_free); the store starts a new list. */
store_effect *store_effects_take(store *st, size_t *np);
void store_effects_free(store_effect *e, size_t n);

/* ---- groups ---- */

/** What a group submits when it completes. oc_queue NULL: nothing. Borrowed strings. */
typedef struct group_spec {
    size_t size;
    const char *oc_queue;
    const char *oc_payload; /* the user's payload; the job gets it wrapped with the outcomes */
    int32_t oc_priority;
    int32_t oc_max_attempts;
    int64_t oc_timeout_ms;
} group_spec;

/** store_group_create: a new, empty, open group; *gidp receives its id. */
int store_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp);

/** store_group_of: the group job id belongs to (0: none) into *gidp; JOBQ_ENOENT if no job. */
int store_group_of(store *st, int64_t id, int64_t *gidp);

/** A group's on_complete job as stored. Owned strings: group_oc_clear. */
typedef struct group_oc {
    char *queue;   /* NULL: the group submits nothing */
    char *payload; /* NULL: none */
    int32_t priority;
    int32_t max_attempts;
    int64_t timeout_ms;
} group_oc;

void group_oc_clear(group_oc *oc);

/** store_group_ended: JOBQ_OK with its on_complete job in *oc when group gid is open (not
 *  completed) and none of its members is in a state other than succeeded, dead or
 *  cancelled; JOBQ_ENOENT otherwise (no such group, completed, or a member still to end). */
int store_group_ended(store *st, int64_t gid, group_oc *oc);

/** store_group_complete: marks group gid completed at now_ms, with the id of the job it
 *  submitted (0: none). */
int store_group_complete(store *st, int64_t gid, int64_t now_ms, int64_t oc_job_id);

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
 *  each member still stored, by id. Release with group_info_clear. */
int store_group_get(store *st, int64_t gid, bool members, group_info *g);
void group_info_clear(group_info *g);

/* ---- schedules ---- */

/** store_schedule_last: the last tick schedule name fired or skipped (JOBQ_ENOENT: never). */
int store_schedule_last(store *st, const char *name, int64_t *tickp);

/** store_schedule_set: records tick_ms as schedule name's last tick. */
int store_schedule_set(store *st, const char *name, int64_t tick_ms);

/** store_schedule_since: when jobqd first saw schedule name (kept apart from its ticks, so
 *  a schedule that never fired has no last tick) into *sincep; records now_ms first when
 *  none is stored. Inside the caller's transaction. */
int store_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep);

/* ---- parents' results ---- */

/** store_parents_add: records parent as one of child's parents for good (unlike job_deps,
 *  kept once the parent ends), with the parent's result if it has ended already. */
int store_parents_add(store *st, int64_t child, int64_t parent);

/** store_parents_settle: copies parent's result (it has just ended) to the rows of its
 *  children. */
int store_parents_settle(store *st, int64_t parent);

/** store_parents_of: calls fn for each parent of each of the n jobs ids, with the parent's
 *  result (NULL: none; borrowed for the call); fn may not call the store. */
int store_parents_of(store *st, const int64_t *ids, size_t n,
                     void (*fn)(void *arg, int64_t id, int64_t parent, const char *result),
                     void *arg);

/* ---- schedules managed at runtime ---- */

/** A schedule as stored by the schedule ops (config schedules are not stored). Borrowed
 *  strings when written; owned when read (sched_def_clear). */
typedef struct sched_def {
    char *name;
    char *cron;
    char *timezone; /* an IANA name, or "UTC" */
    char *queue;
    char *payload; /* compact JSON text */
    int32_t priority;
    bool missed_skip;  /* missed ticks: skip (else the latest runs once) */
    bool overlap_skip; /* skip a tick while the last tick's job has not ended */
    int64_t created_at_ms;
    int64_t updated_at_ms;
} sched_def;

void sched_def_clear(sched_def *d);

/** store_sdef_list: every stored schedule, by name, into *defsp (malloc'd; clear each and
 *  free the array; NULL when none) and *np. */
int store_sdef_list(store *st, sched_def **defsp, size_t *np);

/** store_sdef_put: inserts or replaces schedule d->name (created_at kept on replace). */
int store_sdef_put(store *st, const sched_def *d, int64_t now_ms);

/** store_sdef_delete: deletes schedule name, its state and its ticks. JOBQ_ENOENT if none. */
int store_sdef_delete(store *st, const char *name);

/** store_sstate_get: schedule name's paused flag and the job of its last fired tick (0: none);
 *  JOBQ_ENOENT when nothing is stored (not paused, no job). */
int store_sstate_get(store *st, const char *name, bool *pausedp, int64_t *last_jobp);

/** store_sstate_set_paused: stores schedule name's paused flag. */
int store_sstate_set_paused(store *st, const char *name, bool paused);

/** store_sstate_set_job: stores the job of schedule name's last fired tick. */
int store_sstate_set_job(store *st, const char *name, int64_t job_id);

/* ---- Backends ----
 * A backend implements every member of store_ops with the contract of the store_ function
 * of the same name above, and returns jobq_err codes (translating its own in one function).
 * It allocates a struct of its own whose first member is a struct store with ops set, and
 * frees it in close (which never sees NULL). The base struct keeps the effects list, which
 * store.c manages for every backend, and the lifecycle's note of a missing parent. */
typedef struct store_ops {
    void (*set_sync)(store *st, bool sync);
    /* sync_apart, sync and checkpoint: NULL in a backend whose commits are durable on return */
    bool (*sync_apart)(const store *st);
    int (*sync)(store *st, char *msg, size_t msglen);
    int (*checkpoint)(store *st, char *msg, size_t msglen);
    void (*close)(store *st);
    const char *(*errmsg)(const store *st);
    int (*begin)(store *st);
    int (*commit)(store *st);
    void (*rollback)(store *st);
    int (*savepoint)(store *st);
    void (*release)(store *st);
    void (*rollback_savepoint)(store *st);
    bool (*in_transaction)(const store *st);
    int (*job_insert)(store *st, const job_spec *spec, int state, int64_t now_ms,
                      int64_t finished_at_ms, const char *error, int64_t *idp);
    int (*job_state)(store *st, int64_t id, int *statep);
    int (*job_set_state)(store *st, int64_t id, int from, int to, int64_t finished_at_ms,
                         const char *error);
    int (*get)(store *st, int64_t id, job_row *row);
    int (*list)(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep);
    int (*count_each)(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n),
                      void *arg);
    int (*paused_each)(store *st, void (*fn)(void *arg, const char *queue), void *arg);
    int (*set_paused)(store *st, const char *queue, bool paused);
    int (*claim)(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows,
                 size_t *np);
    int (*running)(store *st, job_row **rowsp, size_t *np);
    int (*job_finish)(store *st, int64_t id, int new_state, int64_t finished_at_ms,
                      int64_t run_at_ms, const char *result, const char *error);
    /* jobs_insert: optional (NULL: store.c inserts one by one with job_insert). */
    int (*jobs_insert)(store *st, const job_spec *specs, const int *states, size_t n,
                       int64_t now_ms, int64_t *ids);
    /* jobs_end: optional (NULL: store_job_end for each). */
    int (*jobs_end)(store *st, job_end *ends, size_t n, int64_t now_ms);
    /* job_end: optional (NULL: store.c composes it of job_finish, attempt_add, key_release
     * and group_of). */
    int (*job_end)(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
                   const char *result, const char *error, const attempt_rec *a, int64_t *gidp,
                   bool *kidsp);
    int (*requeue)(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a);
    int (*promote_due)(store *st, int64_t now_ms, size_t max,
                       void (*fn)(void *arg, const char *queue, int old_state), void *arg,
                       size_t *np);
    int (*next_due)(store *st, int64_t *atp);
    int (*retry)(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep);
    int (*retry_bulk)(store *st, const char *queue, int state, int64_t now_ms, size_t max,
                      void (*fn)(void *arg, const char *queue), void *arg, size_t *np);
    int (*ready_ahead)(store *st, const job_row *row, int64_t limit, int64_t *np);
    int (*max_id)(store *st, int64_t *idp);
    int (*pick)(store *st, const job_filter *f, int64_t after_id, int64_t upto_id, size_t max,
                void (*fn)(void *arg, int64_t id, const char *queue, int state), void *arg,
                size_t *np);
    int (*job_delete)(store *st, int64_t id, int from);
    int (*job_set_priority)(store *st, int64_t id, int from, int32_t priority);
    int (*job_set_run_at)(store *st, int64_t id, int from, int to, int64_t run_at_ms);
    int (*attempt_add)(store *st, int64_t id, const attempt_rec *a, int64_t now_ms,
                       const char *error);
    int (*attempt_count)(store *st, int64_t id, const char *kind, int64_t *np);
    int (*attempts)(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np);
    int (*job_progress)(store *st, int64_t id, const progress_set *p);
    int (*log_append)(store *st, int64_t id, int32_t attempt, int64_t at_ms,
                      const char *const *lines, size_t n, size_t max_lines, size_t max_bytes,
                      int64_t *last_seqp);
    int (*logs)(store *st, int64_t id, int64_t after_seq, log_row *rows, size_t max, size_t *np);
    int (*key_find)(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
                    int64_t *created_at_msp);
    int (*key_add)(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
                   int64_t now_ms);
    int (*key_delete)(store *st, const char *queue, const char *key);
    int (*dep_add)(store *st, int64_t parent, int64_t child);
    int (*dep_children)(store *st, int64_t parent, int64_t **idsp, size_t *np);
    int (*dep_drop_parent)(store *st, int64_t parent);
    int (*dep_drop_child)(store *st, int64_t id);
    int (*dep_pending)(store *st, int64_t id, bool *waitsp);
    int (*dep_job)(store *st, int64_t id, int *statep, bool *alwaysp, int64_t *run_at_msp);
    int (*waiting_for)(store *st, int64_t id, int64_t *ids, size_t max, size_t *np);
    int (*sweep)(store *st, const char *queue, int state, int64_t before_ms, size_t max,
                 size_t *np);
    int (*sweep_groups)(store *st, int64_t before_ms, size_t max, size_t *np);
    int (*sweep_keys)(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np);
    int (*oldest_finished)(store *st, const char *queue, int state, int64_t *atp);
    int (*oldest_due)(store *st, const char *queue, int64_t now_ms, int64_t *readyp,
                      int64_t *overduep);
    int (*oldest_key)(store *st, const char *queue, int64_t *atp);
    int (*recent)(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np);
    int (*group_create)(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp);
    int (*group_of)(store *st, int64_t id, int64_t *gidp);
    int (*group_ended)(store *st, int64_t gid, group_oc *oc);
    int (*group_complete)(store *st, int64_t gid, int64_t now_ms, int64_t oc_job_id);
    int (*group_get)(store *st, int64_t gid, bool members, group_info *g);
    int (*schedule_last)(store *st, const char *name, int64_t *tickp);
    int (*schedule_set)(store *st, const char *name, int64_t tick_ms);
    int (*schedule_since)(store *st, const char *name, int64_t now_ms, int64_t *sincep);
    int (*key_lock)(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
                    int64_t *created_at_msp, bool *heldp);
    int (*key_put)(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
                   int64_t created_ms, bool held);
    int (*key_release)(store *st, int64_t id);
    int (*job_replace)(store *st, int64_t id, int from, int to, const char *payload,
                       int64_t run_at_ms);
    int (*job_set_expiry)(store *st, int64_t id, int64_t at_ms);
    int (*job_expiry)(store *st, int64_t id, int64_t *at_msp);
    int (*expired)(store *st, const char *queue, int64_t now_ms, size_t max, int64_t *ids,
                   size_t *np);
    int (*next_expiry)(store *st, int64_t *atp);
    int (*job_snooze)(store *st, int64_t id, int64_t run_at_ms, const char *error);
    int (*parents_add)(store *st, int64_t child, int64_t parent);
    int (*parents_settle)(store *st, int64_t parent);
    int (*parents_of)(store *st, const int64_t *ids, size_t n,
                      void (*fn)(void *arg, int64_t id, int64_t parent, const char *result),
                      void *arg);
    int (*sdef_list)(store *st, sched_def **defsp, size_t *np);
    int (*sdef_put)(store *st, const sched_def *d, int64_t now_ms);
    int (*sdef_delete)(store *st, const char *name);
    int (*sstate_get)(store *st, const char *name, bool *pausedp, int64_t *last_jobp);
    int (*sstate_set_paused)(store *st, const char *name, bool paused);
    int (*sstate_set_job)(store *st, const char *name, int64_t job_id);
    int (*claim_keys)(store *st, const char *queue, int64_t now_ms, size_t max,
                      const key_limits *kl, job_row *rows, size_t *np, key_claim_info *info);
    int (*key_running)(store *st, const char *queue, const char *group_key, int64_t limit,
                       int64_t *np);
    int (*key_hold)(store *st, const char *queue, const char *group_key, int64_t until_ms);
} store_ops;

struct store {
    const store_ops *ops;
    store_effect *effects; /* changes made besides the ones asked for (see effects above) */
    size_t neffects;
    size_t capeffects;
    int64_t missing_parent; /* lifecycle_insert: the "after" id it did not find */
    /* max_savepoints: the operations (savepoints) one transaction should hold at most (0: no
     * limit): PostgreSQL keeps 64 subtransactions of a session in shared memory and past
     * that every other session's snapshot checks pg_subtrans, slowing all of them. */
    size_t max_savepoints;
};

/** store_sqlite_open: store_open for a SQLite database file (store_sqlite.c). */
int store_sqlite_open(const char *path, enum durability durability, store **stp, char *err,
                      size_t errlen);

/** store_sqlite_backup: store_backup for a SQLite database file. */
int store_sqlite_backup(const char *db_path, const char *dest, char *err, size_t errlen);

/** store_pg_open: store_open for a PostgreSQL URL (store_pg.c; in builds with libpq). */
int store_pg_open(const char *url, enum durability durability, store **stp, char *err,
                  size_t errlen);

/** store_pg_migrate_latest: the PostgreSQL schema version this jobqd brings (the highest
 *  migrations/pg/ number). */
int store_pg_migrate_latest(void);

#endif
