/* store_sqlite.c: the SQLite store backend: every SQL statement of jobqd, prepared once. */
#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "store_common.h"

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_KEY_FIND,
    S_KEY_INSERT,
    S_INSERT,
    S_STATE_OF,
    S_RUNNING,
    S_GET,
    S_SET_STATE,
    S_LIST,
    S_COUNT,
    S_PAUSED,
    S_SET_PAUSED,
    S_CLAIM_PICK,
    S_CLAIM_MARK,
    S_FINISH,
    S_REQUEUE,
    S_DUE_PICK,
    S_DUE_MARK,
    S_NEXT_DUE,
    S_KEY_DELETE,
    S_ATTEMPT_INSERT,
    S_ATTEMPTS,
    S_ATTEMPT_COUNT,
    S_RETRY,
    S_RETRY_BULK,
    S_SWEEP,
    S_SWEEP_ATTEMPTS,
    S_SWEEP_KEYS,
    S_AHEAD,
    S_OLDEST_FINISHED,
    S_OLDEST_READY,
    S_OLDEST_OVERDUE,
    S_OLDEST_KEY,
    S_RECENT,
    S_DEP_INSERT,
    S_DEP_CHILDREN,
    S_DEP_DELETE_PARENT,
    S_DEP_DELETE_JOB,
    S_DEP_REMAINING,
    S_DEP_PARENTS,
    S_CHILD_INFO,
    S_GROUP_OF,
    S_END_AFTER,
    S_GROUP_INSERT,
    S_GROUP_ENDED,
    S_GROUP_DONE,
    S_GROUP_GET,
    S_GROUP_COUNTS,
    S_GROUP_MEMBERS,
    S_SCHED_LAST,
    S_SCHED_SET,
    S_SWEEP_GROUPS,
    S_MAX_ID,
    S_PICK,
    S_DELETE,
    S_SET_PRIORITY,
    S_SET_RUN_AT,
    S_PROGRESS,
    S_LOG_LAST,
    S_LOG_INSERT,
    S_LOG_TRIM,
    S_LOGS,
    S_SWEEP_LOGS,
    S_PARENTS_ADD,
    S_PARENTS_SETTLE,
    S_PARENTS_OF,
    S_PARENTS_SWEEP,
    S_SDEF_LIST,
    S_SDEF_PUT,
    S_SDEF_DELETE,
    S_SSTATE_DELETE,
    S_SCHED_DELETE,
    S_SSTATE_GET,
    S_SSTATE_PAUSED,
    S_SSTATE_JOB,
    S_KEY_LOCK,
    S_KEY_PUT,
    S_KEY_RELEASE,
    S_REPLACE,
    S_SET_EXPIRY,
    S_EXPIRY,
    S_EXPIRED,
    S_NEXT_EXPIRY,
    S_SNOOZE,
    S_KEY_WAKE,
    S_KEY_NEXT,
    S_KEY_UTURN,
    S_KEY_UTURN_SET,
    S_KEY_JOB,
    S_KEY_NEXT_PRIO,
    S_KEY_RUNNING,
    S_KEY_SET,
    S_KEY_DROP,
    S_KEY_WAKE_AT,
    S_KEY_ANY_OUT,
    S_KEY_HOLD,
    S_AHEAD_KEYED,
    S_OLDEST_READY_KEYED,
    S_COUNT_STMTS
};

/* Job states as SQL text, so that no statement spells a bare number. The partial indexes of
 * migrations/ say "WHERE state = 1" and "state IN (0, 3)": SQLite uses a partial index only
 * when the query's WHERE implies it literally, so states stay literals, built from these. */
#define SQL_SCHEDULED "0"
#define SQL_READY "1"
#define SQL_RUNNING "2"
#define SQL_RETRYING "3"
#define SQL_SUCCEEDED "4"
#define SQL_DEAD "5"
#define SQL_CANCELLED "6"
#define SQL_WAITING "7"
/* The final states, a range: "state IN (4, 5, 6)" would build a temporary b-tree at each
 * evaluation, and the partial index jobs_finished, whose predicate SQLite evaluates at every
 * write of a job, says "state BETWEEN 4 AND 6" (migrations/0009). */
#define SQL_ENDED "BETWEEN " SQL_SUCCEEDED " AND " SQL_CANCELLED
_Static_assert(JOBQ_SUCCEEDED + 1 == JOBQ_DEAD && JOBQ_DEAD + 1 == JOBQ_CANCELLED, "SQL_ENDED");
#define SQL_DUE "(" SQL_SCHEDULED ", " SQL_RETRYING ")" /* the states run_at promotes */
_Static_assert(JOBQ_SCHEDULED == 0, "SQL_SCHEDULED");
_Static_assert(JOBQ_READY == 1, "SQL_READY");
_Static_assert(JOBQ_RUNNING == 2, "SQL_RUNNING");
_Static_assert(JOBQ_RETRYING == 3, "SQL_RETRYING");
_Static_assert(JOBQ_SUCCEEDED == 4, "SQL_SUCCEEDED");
_Static_assert(JOBQ_DEAD == 5, "SQL_DEAD");
_Static_assert(JOBQ_CANCELLED == 6, "SQL_CANCELLED");
_Static_assert(JOBQ_WAITING == 7, "SQL_WAITING");

#define JOB_COLS                                                                                   \
    "id, queue, payload, priority, state, run_at, attempt, max_attempts, timeout_ms, key, "        \
    "result, error, created_at, started_at, finished_at, group_id, traceparent, tracestate, "    \
    "progress, progress_note, checkpoint, group_key"

/* A queue's ready jobs, from its index: those without key (jobs_ready, in the claim's order)
 * or those with one (jobs_key_ready). */
#define SQL_READY_IN(index, keyed)                                                                 \
    "jobs INDEXED BY " index " WHERE queue = ?1 AND state = " SQL_READY " AND group_key " keyed
#define SQL_READY_PLAIN SQL_READY_IN("jobs_ready", "IS NULL")
#define SQL_READY_KEYED SQL_READY_IN("jobs_key_ready", "IS NOT NULL")

/* How many of ready (SQL_READY_*) come before the job ?2 ?3 ?4 (priority, run_at, id), up to ?5. */
#define SQL_AHEAD(ready)                                                                           \
    "SELECT count(*) FROM (SELECT 1 FROM " ready " AND (priority > ?2 OR (priority = ?2 AND "      \
    "(run_at < ?3 OR (run_at = ?3 AND id < ?4)))) LIMIT ?5)"

/* The oldest run_at of ready (SQL_READY_*): the priorities in use walked down the index (a skip
 * scan), then the first run_at of each: one seek per priority, however many jobs are ready. */
#define SQL_OLDEST_READY(ready)                                                                    \
    "WITH RECURSIVE p(pr) AS (SELECT (SELECT priority FROM " ready " ORDER BY priority DESC "      \
    "LIMIT 1) UNION ALL SELECT (SELECT priority FROM " ready " AND priority < p.pr ORDER BY "      \
    "priority DESC LIMIT 1) FROM p WHERE p.pr IS NOT NULL) SELECT min((SELECT run_at FROM " ready  \
    " AND priority = p.pr ORDER BY run_at LIMIT 1)) FROM p WHERE p.pr IS NOT NULL"

/* The jobs of key ?2 on queue ?1 in the given state, from the jobs_key index. */
#define SQL_KEY_JOBS(state)                                                                        \
    "jobs INDEXED BY jobs_key WHERE queue = ?1 AND group_key = ?2 AND state = " state " AND "      \
    "group_key IS NOT NULL AND state IN (" SQL_READY ", " SQL_RUNNING ")"
/* cols of the ready job of that key a claim takes first. */
#define SQL_KEY_BEST(cols)                                                                         \
    "SELECT " cols " FROM " SQL_KEY_JOBS(SQL_READY) " ORDER BY priority DESC, run_at, id LIMIT 1"

/* The jobs that can expire, from the jobs_expiring index. */
#define SQL_EXPIRING                                                                               \
    "jobs INDEXED BY jobs_expiring WHERE expires_at IS NOT NULL AND state IN (" SQL_SCHEDULED      \
    ", " SQL_READY ", " SQL_RETRYING ", " SQL_WAITING ")"

/* Sets column col of table's row named ?1 to ?2, inserting the row if there is none. */
#define SQL_UPSERT_NAMED(table, col)                                                               \
    "INSERT INTO " table " (name, " col ") VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET " col  \
    " = excluded." col

static const char *const stmt_sql[S_COUNT_STMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT op",
    [S_RELEASE] = "RELEASE op",
    [S_ROLLBACK_TO] = "ROLLBACK TO op",
    [S_KEY_FIND] = "SELECT job_id, payload_hash, created_at FROM job_keys WHERE queue = ?1 AND "
                   "key = ?2",
    [S_KEY_INSERT] = "INSERT INTO job_keys (queue, key, job_id, payload_hash, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_INSERT] = "INSERT INTO jobs (queue, payload, priority, state, run_at, max_attempts, "
                 "timeout_ms, key, created_at, group_id, after_always, error, finished_at, "
                 "traceparent, tracestate, group_key) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [S_STATE_OF] = "SELECT state FROM jobs WHERE id = ?1",
    [S_RUNNING] =
        "SELECT id, queue, attempt, started_at FROM jobs WHERE state = " SQL_RUNNING " ORDER BY id",
    [S_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [S_SET_STATE] = "UPDATE jobs SET state = ?3, finished_at = coalesce(?4, finished_at), "
                    "error = coalesce(?5, error) WHERE id = ?1 AND (?2 < 0 OR state = ?2)",
    [S_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR queue = ?1) AND "
               "(?2 < 0 OR state = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
    [S_COUNT] = "SELECT queue, state, count(*) FROM jobs GROUP BY state, queue",
    [S_PAUSED] = "SELECT name FROM queues WHERE paused = 1",
    [S_SET_PAUSED] = SQL_UPSERT_NAMED("queues", "paused"),
    [S_CLAIM_PICK] = "SELECT " JOB_COLS " FROM " SQL_READY_PLAIN " ORDER BY priority DESC, "
                     "run_at, id LIMIT ?2",
    [S_CLAIM_MARK] =
        "UPDATE jobs SET state = " SQL_RUNNING ", attempt = attempt + 1, started_at = ?2, "
        "finished_at = NULL WHERE id = ?1",
    [S_FINISH] = "UPDATE jobs SET state = ?2, run_at = coalesce(?4, run_at), finished_at = ?3, "
                 "result = ?5, error = ?6 WHERE id = ?1 AND state = " SQL_RUNNING,
    [S_REQUEUE] =
        "UPDATE jobs SET state = " SQL_READY ", attempt = max(attempt - 1, 0), error = ?2 "
        "WHERE id = ?1 AND state = " SQL_RUNNING,
    [S_DUE_PICK] = "SELECT id, queue, state FROM jobs INDEXED BY jobs_due WHERE state IN " SQL_DUE
                   " AND run_at <= ?1 ORDER BY run_at LIMIT ?2",
    [S_DUE_MARK] = "UPDATE jobs SET state = " SQL_READY " WHERE id = ?1",
    [S_NEXT_DUE] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN " SQL_DUE,
    [S_KEY_DELETE] = "DELETE FROM job_keys WHERE queue = ?1 AND key = ?2",
    [S_ATTEMPT_INSERT] = "INSERT INTO attempts (job_id, attempt, started_at, finished_at, kind, "
                         "error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ATTEMPTS] = "SELECT attempt, started_at, finished_at, kind, error FROM attempts "
                   "WHERE job_id = ?1 ORDER BY started_at, rowid LIMIT ?2",
    [S_ATTEMPT_COUNT] = "SELECT count(*) FROM attempts WHERE job_id = ?1 AND kind = ?2",
    [S_RETRY] =
        "UPDATE jobs SET state = " SQL_READY ", attempt = 0, run_at = ?2, finished_at = NULL, "
        "result = NULL WHERE id = ?1 AND state IN (" SQL_DEAD ", " SQL_CANCELLED ")",
    [S_RETRY_BULK] =
        "UPDATE jobs SET state = " SQL_READY ", attempt = 0, run_at = ?3, finished_at = NULL, "
        "result = NULL WHERE id IN (SELECT id FROM jobs WHERE state = ?2 AND "
        "(?1 IS NULL OR queue = ?1) ORDER BY id LIMIT ?4) RETURNING queue",
    [S_SWEEP] = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_finished "
                "WHERE queue = ?1 AND state = ?2 AND state " SQL_ENDED " AND finished_at < ?3 "
                "LIMIT ?4) RETURNING id",
    [S_SWEEP_ATTEMPTS] = "DELETE FROM attempts WHERE job_id = ?1",
    [S_SWEEP_KEYS] = "DELETE FROM job_keys WHERE (queue, key) IN (SELECT queue, key FROM "
                     "job_keys INDEXED BY job_keys_age WHERE queue = ?1 AND created_at < ?2 "
                     "AND held = 0 LIMIT ?3)",
    [S_AHEAD] = SQL_AHEAD(SQL_READY_PLAIN),
    [S_OLDEST_FINISHED] = "SELECT min(finished_at) FROM jobs INDEXED BY jobs_finished WHERE "
                          "queue = ?1 AND state = ?2 AND state " SQL_ENDED,
    [S_OLDEST_READY] = SQL_OLDEST_READY(SQL_READY_PLAIN),
    [S_OLDEST_OVERDUE] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN "
                         "(" SQL_SCHEDULED ", " SQL_RETRYING ") AND run_at <= ?2 AND queue = ?1",
    [S_OLDEST_KEY] = "SELECT min(created_at) FROM job_keys INDEXED BY job_keys_age WHERE "
                     "queue = ?1 AND held = 0",
    [S_RECENT] = "SELECT " JOB_COLS " FROM jobs INDEXED BY jobs_finished WHERE queue = ?1 AND "
                 "state = ?2 AND state " SQL_ENDED " ORDER BY finished_at DESC LIMIT ?3",
    [S_DEP_INSERT] = "INSERT OR IGNORE INTO job_deps (parent_id, job_id) VALUES (?1, ?2)",
    [S_DEP_CHILDREN] = "SELECT job_id FROM job_deps WHERE parent_id = ?1",
    [S_DEP_DELETE_PARENT] = "DELETE FROM job_deps WHERE parent_id = ?1",
    [S_DEP_DELETE_JOB] = "DELETE FROM job_deps WHERE job_id = ?1",
    [S_DEP_REMAINING] = "SELECT 1 FROM job_deps WHERE job_id = ?1 LIMIT 1",
    [S_DEP_PARENTS] = "SELECT parent_id FROM job_deps WHERE job_id = ?1 ORDER BY parent_id "
                      "LIMIT ?2",
    [S_CHILD_INFO] = "SELECT state, after_always, run_at FROM jobs WHERE id = ?1",
    [S_GROUP_OF] = "SELECT group_id FROM jobs WHERE id = ?1",
    /* What a job's end leaves to do, in one read: its group (NULL reads as 0), whether it
     * holds a key (job_keys_held), whether jobs wait for it (job_deps). */
    [S_END_AFTER] = "SELECT group_id, EXISTS (SELECT 1 FROM job_keys INDEXED BY job_keys_held "
                    "WHERE job_id = ?1 AND held = 1), EXISTS (SELECT 1 FROM job_deps WHERE "
                    "parent_id = ?1) FROM jobs WHERE id = ?1",
    [S_GROUP_INSERT] = "INSERT INTO groups (size, created_at, oc_queue, oc_payload, oc_priority, "
                       "oc_max_attempts, oc_timeout_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_GROUP_ENDED] = "SELECT oc_queue, oc_payload, oc_priority, oc_max_attempts, oc_timeout_ms "
                      "FROM groups WHERE id = ?1 AND completed_at IS NULL AND NOT EXISTS (SELECT "
                      "1 FROM jobs WHERE group_id = ?1 AND state NOT " SQL_ENDED ")",
    [S_GROUP_DONE] = "UPDATE groups SET completed_at = ?2, oc_job_id = ?3 WHERE id = ?1",
    [S_GROUP_GET] = "SELECT size, created_at, completed_at, oc_queue, oc_job_id FROM groups "
                    "WHERE id = ?1",
    [S_GROUP_COUNTS] = "SELECT state, count(*) FROM jobs WHERE group_id = ?1 GROUP BY state",
    [S_GROUP_MEMBERS] =
        "SELECT id, state, attempt, error FROM jobs WHERE group_id = ?1 ORDER BY id",
    [S_SWEEP_GROUPS] = "DELETE FROM groups WHERE id IN (SELECT id FROM groups INDEXED BY "
                       "groups_completed WHERE completed_at IS NOT NULL AND completed_at < ?1 AND "
                       "NOT EXISTS (SELECT 1 FROM jobs WHERE group_id = groups.id) LIMIT ?2)",
    [S_MAX_ID] = "SELECT coalesce(max(id), 0) FROM jobs",
    /* A bulk operation's filter (job_filter), every value bound: a range of ids (a rowid
     * range: the window bounds what one transaction reads), the states as eight parameters
     * (all eight bound when any state goes), the ids as a JSON array. */
    [S_PICK] = "SELECT id, queue, state FROM jobs WHERE id > ?1 AND id <= ?2 AND "
               "(?3 IS NULL OR queue = ?3) AND state IN (?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) AND "
               "(?12 IS NULL OR id IN (SELECT value FROM json_each(?12))) AND "
               "(?13 IS NULL OR created_at >= ?13) AND (?14 IS NULL OR created_at < ?14) AND "
               "(?15 IS NULL OR finished_at >= ?15) AND (?16 IS NULL OR finished_at < ?16) AND "
               "(?17 IS NULL OR instr(error, ?17) > 0) AND "
               "(?18 IS NULL OR substr(key, 1, length(?18)) = ?18) ORDER BY id LIMIT ?19",
    [S_DELETE] = "DELETE FROM jobs WHERE id = ?1 AND state = ?2",
    [S_SET_PRIORITY] = "UPDATE jobs SET priority = ?3 WHERE id = ?1 AND state = ?2",
    [S_SET_RUN_AT] = "UPDATE jobs SET state = ?3, run_at = ?4 WHERE id = ?1 AND state = ?2",
    [S_SCHED_LAST] = "SELECT last_tick FROM schedules WHERE name = ?1",
    [S_SCHED_SET] = SQL_UPSERT_NAMED("schedules", "last_tick"),
    [S_KEY_LOCK] = "SELECT job_id, payload_hash, created_at, held FROM job_keys WHERE "
                   "queue = ?1 AND key = ?2",
    [S_KEY_PUT] = "INSERT INTO job_keys (queue, key, job_id, payload_hash, created_at, held) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (queue, key) DO UPDATE SET "
                  "job_id = excluded.job_id, payload_hash = excluded.payload_hash, "
                  "created_at = excluded.created_at, held = excluded.held",
    [S_KEY_RELEASE] = "DELETE FROM job_keys INDEXED BY job_keys_held WHERE job_id = ?1 AND "
                      "held = 1",
    [S_REPLACE] = "UPDATE jobs SET payload = ?4, run_at = ?5, state = ?3 WHERE id = ?1 AND "
                  "state = ?2",
    [S_SET_EXPIRY] = "UPDATE jobs SET expires_at = nullif(?2, 0) WHERE id = ?1",
    [S_EXPIRY] = "SELECT coalesce(expires_at, 0) FROM jobs WHERE id = ?1",
    [S_EXPIRED] = "SELECT id FROM " SQL_EXPIRING " AND expires_at <= ?2 AND (?1 IS NULL OR "
                  "queue = ?1) ORDER BY expires_at LIMIT ?3",
    [S_NEXT_EXPIRY] = "SELECT min(expires_at) FROM " SQL_EXPIRING,
    [S_SNOOZE] = "UPDATE jobs SET state = " SQL_SCHEDULED ", run_at = ?2, attempt = "
                 "max(attempt - 1, 0), error = ?3 WHERE id = ?1 AND state = " SQL_RUNNING,
    [S_PROGRESS] = "UPDATE jobs SET progress = CASE WHEN ?2 THEN ?3 ELSE progress END, "
                   "progress_note = CASE WHEN ?2 THEN ?4 ELSE progress_note END, "
                   "checkpoint = coalesce(?5, checkpoint) WHERE id = ?1",
    [S_LOG_LAST] = "SELECT coalesce(max(seq), 0) FROM job_logs WHERE job_id = ?1",
    [S_LOG_INSERT] =
        "INSERT INTO job_logs (job_id, seq, attempt, at, line) VALUES (?1, ?2, ?3, ?4, ?5)",
    /* Keeps the newest lines within ?2 lines and ?3 bytes (and the newest line whatever). */
    [S_LOG_TRIM] = "DELETE FROM job_logs WHERE job_id = ?1 AND seq < (SELECT coalesce(min(seq), 0) "
                   "FROM (SELECT seq, row_number() OVER w AS n, "
                   "sum(length(CAST(line AS BLOB))) OVER w AS bytes FROM job_logs "
                   "WHERE job_id = ?1 WINDOW w AS (ORDER BY seq DESC)) "
                   "WHERE n = 1 OR (n <= ?2 AND bytes <= ?3))",
    [S_LOGS] = "SELECT seq, attempt, at, line FROM job_logs WHERE job_id = ?1 AND seq > ?2 "
               "ORDER BY seq LIMIT ?3",
    [S_SWEEP_LOGS] = "DELETE FROM job_logs WHERE job_id = ?1",
    [S_PARENTS_ADD] = "INSERT OR IGNORE INTO job_parents (job_id, parent_id, result) SELECT ?1, "
                      "id, CASE WHEN state " SQL_ENDED " THEN result END FROM jobs "
                      "WHERE id = ?2",
    [S_PARENTS_SETTLE] = "UPDATE job_parents SET result = (SELECT result FROM jobs WHERE id = "
                         "?1) WHERE parent_id = ?1",
    [S_PARENTS_OF] = "SELECT parent_id, result FROM job_parents WHERE job_id = ?1 "
                     "ORDER BY parent_id",
    [S_PARENTS_SWEEP] = "DELETE FROM job_parents WHERE job_id = ?1",
    [S_SDEF_LIST] = "SELECT name, cron, timezone, queue, payload, priority, missed_skip, "
                    "overlap_skip, created_at, updated_at FROM schedule_defs ORDER BY name",
    [S_SDEF_PUT] = "INSERT INTO schedule_defs (name, cron, timezone, queue, payload, priority, "
                   "missed_skip, overlap_skip, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, "
                   "?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT (name) DO UPDATE SET cron = "
                   "excluded.cron, timezone = excluded.timezone, queue = excluded.queue, "
                   "payload = excluded.payload, priority = excluded.priority, missed_skip = "
                   "excluded.missed_skip, overlap_skip = excluded.overlap_skip, updated_at = "
                   "excluded.updated_at",
    [S_SDEF_DELETE] = "DELETE FROM schedule_defs WHERE name = ?1",
    [S_SSTATE_DELETE] = "DELETE FROM schedule_state WHERE name = ?1",
    [S_SCHED_DELETE] =
        "DELETE FROM schedules WHERE name = ?1 OR name = '" STORE_SINCE_PREFIX "' || ?1",
    [S_SSTATE_GET] = "SELECT paused, last_job FROM schedule_state WHERE name = ?1",
    [S_SSTATE_PAUSED] = SQL_UPSERT_NAMED("schedule_state", "paused"),
    [S_SSTATE_JOB] = SQL_UPSERT_NAMED("schedule_state", "last_job"),
    /* Per-key fairness (migrations/0008_keys.sql): the rotation of a queue's keys. */
    [S_KEY_WAKE] = "UPDATE group_keys SET active = 1 WHERE queue = ?1 AND active = 2 AND tat <= ?2",
    [S_KEY_NEXT] = "SELECT group_key, prio, turn, tat FROM group_keys INDEXED BY group_keys_turn "
                   "WHERE queue = ?1 AND active = 1 ORDER BY prio DESC, turn LIMIT 1",
    [S_KEY_UTURN] = "SELECT turn FROM group_keys WHERE queue = ?1 AND group_key = ''",
    [S_KEY_UTURN_SET] = "INSERT INTO group_keys (queue, group_key, prio, turn, active) VALUES "
                        "(?1, '', 0, (SELECT coalesce(max(turn), 0) + 1 FROM group_keys), 0) "
                        "ON CONFLICT (queue, group_key) DO UPDATE SET turn = excluded.turn",
    [S_KEY_JOB] = SQL_KEY_BEST(JOB_COLS),
    [S_KEY_NEXT_PRIO] = SQL_KEY_BEST("priority"),
    [S_KEY_RUNNING] = "SELECT count(*) FROM (SELECT 1 FROM " SQL_KEY_JOBS(SQL_RUNNING) " LIMIT ?3)",
    [S_KEY_SET] = "UPDATE group_keys SET active = ?3, prio = ?4, tat = ?6, turn = CASE WHEN ?5 "
                  "THEN (SELECT max(turn) + 1 FROM group_keys) ELSE turn END "
                  "WHERE queue = ?1 AND group_key = ?2",
    [S_KEY_DROP] = "DELETE FROM group_keys WHERE queue = ?1 AND group_key = ?2",
    [S_KEY_WAKE_AT] = "SELECT min(tat) FROM group_keys INDEXED BY group_keys_wake WHERE "
                      "queue = ?1 AND active = 2",
    /* A key out of the rotation (at its cap, held by its rate, or with nothing ready but
     * running jobs): the queue's ready count may hold jobs no claim can take now. */
    [S_KEY_ANY_OUT] = "SELECT 1 FROM group_keys WHERE queue = ?1 AND active <> 1 AND "
                      "group_key <> '' LIMIT 1",
    [S_KEY_HOLD] = "UPDATE group_keys SET tat = max(tat, ?3), active = CASE WHEN active = 1 THEN 2 "
                   "ELSE active END WHERE queue = ?1 AND group_key = ?2",
    [S_AHEAD_KEYED] = SQL_AHEAD(SQL_READY_KEYED),
    [S_OLDEST_READY_KEYED] = SQL_OLDEST_READY(SQL_READY_KEYED),
};

/* The SQLite backend: a store (first member, so a store * is a sqlite_store *). */
typedef struct sqlite_store {
    store base;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT_STMTS];
    bool full;    /* durability full: commits fsync unless store_set_sync says not */
    bool syncing; /* PRAGMA synchronous is FULL now */
    /* The write-ahead log's file object (SQLite's, through the VFS), taken by the writer's
     * thread at its first commit and never changed after (the log stays open as long as the
     * connection): sq_sync syncs it from another thread. */
    sqlite3_file *wal;
} sqlite_store;

#define SQ(st) ((sqlite_store *)(st))
#define SQC(st) ((const sqlite_store *)(st))

static const store_ops sqlite_ops;
static void sq_set_sync(store *st, bool sync);
static bool sq_sync_apart(const store *st);
static int sq_sync(store *st, char *msg, size_t msglen);
static int sq_checkpoint(store *st, char *msg, size_t msglen);
static void sq_close(store *st);
static const char *sq_errmsg(const store *st);
static int sq_begin(store *st);
static int sq_commit(store *st);
static void sq_rollback(store *st);
static int sq_savepoint(store *st);
static void sq_release(store *st);
static void sq_rollback_savepoint(store *st);
static bool sq_in_transaction(const store *st);
static int sq_job_insert(store *st, const job_spec *spec, int state, int64_t now_ms,
                         int64_t finished_at_ms, const char *error, int64_t *idp);
static int sq_job_state(store *st, int64_t id, int *statep);
static int sq_job_set_state(store *st, int64_t id, int from, int to, int64_t finished_at_ms,
                            const char *error);
static int sq_get(store *st, int64_t id, job_row *row);
static int sq_list(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep);
static int sq_count_each(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n),
                         void *arg);
static int sq_paused_each(store *st, void (*fn)(void *arg, const char *queue), void *arg);
static int sq_set_paused(store *st, const char *queue, bool paused);
static int sq_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows,
                    size_t *np);
static int sq_claim_keys(store *st, const char *queue, int64_t now_ms, size_t max,
                         const key_limits *kl, job_row *rows, size_t *np, key_claim_info *info);
static int sq_key_running(store *st, const char *queue, const char *group_key, int64_t limit,
                          int64_t *np);
static int sq_key_hold(store *st, const char *queue, const char *group_key, int64_t until_ms);
static int sq_running(store *st, job_row **rowsp, size_t *np);
static int sq_job_finish(store *st, int64_t id, int new_state, int64_t finished_at_ms,
                         int64_t run_at_ms, const char *result, const char *error);
static int sq_requeue(store *st, int64_t id, int64_t now_ms, const char *error,
                      const attempt_rec *a);
static int sq_promote_due(store *st, int64_t now_ms, size_t max,
                          void (*fn)(void *arg, const char *queue, int old_state), void *arg,
                          size_t *np);
static int sq_next_due(store *st, int64_t *atp);
static int sq_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep);
static int sq_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
                         void (*fn)(void *arg, const char *queue), void *arg, size_t *np);
static int sq_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np);
static int sq_attempt_add(store *st, int64_t id, const attempt_rec *a, int64_t now_ms,
                          const char *error);
static int sq_attempt_count(store *st, int64_t id, const char *kind, int64_t *np);
static int sq_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np);
static int sq_job_progress(store *st, int64_t id, const progress_set *p);
static int sq_log_append(store *st, int64_t id, int32_t attempt, int64_t at_ms,
                         const char *const *lines, size_t n, size_t max_lines, size_t max_bytes,
                         int64_t *last_seqp);
static int sq_logs(store *st, int64_t id, int64_t after_seq, log_row *rows, size_t max,
                   size_t *np);
static int sq_key_find(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
                       int64_t *created_at_msp);
static int sq_key_add(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
                      int64_t now_ms);
static int sq_key_delete(store *st, const char *queue, const char *key);
static int sq_dep_add(store *st, int64_t parent, int64_t child);
static int sq_dep_children(store *st, int64_t parent, int64_t **idsp, size_t *np);
static int sq_dep_drop_parent(store *st, int64_t parent);
static int sq_dep_drop_child(store *st, int64_t id);
static int sq_dep_pending(store *st, int64_t id, bool *waitsp);
static int sq_dep_job(store *st, int64_t id, int *statep, bool *alwaysp, int64_t *run_at_msp);
static int sq_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np);
static int sq_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max,
                    size_t *np);
static int sq_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np);
static int sq_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np);
static int sq_oldest_finished(store *st, const char *queue, int state, int64_t *atp);
static int sq_oldest_key(store *st, const char *queue, int64_t *atp);
static int sq_recent(store *st, const char *queue, int state, job_row *rows, size_t max,
                     size_t *np);
static int sq_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp);
static int sq_group_of(store *st, int64_t id, int64_t *gidp);
static int sq_group_ended(store *st, int64_t gid, group_oc *oc);
static int sq_group_complete(store *st, int64_t gid, int64_t now_ms, int64_t oc_job_id);
static int sq_group_get(store *st, int64_t gid, bool members, group_info *g);
static int sq_schedule_last(store *st, const char *name, int64_t *tickp);
static int sq_schedule_set(store *st, const char *name, int64_t tick_ms);
static int sq_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep);
static int sq_max_id(store *st, int64_t *idp);
static int sq_pick(store *st, const job_filter *f, int64_t after_id, int64_t upto_id, size_t max,
                   void (*fn)(void *arg, int64_t id, const char *queue, int state), void *arg,
                   size_t *np);
static int sq_job_delete(store *st, int64_t id, int from);
static int sq_job_set_priority(store *st, int64_t id, int from, int32_t priority);
static int sq_job_set_run_at(store *st, int64_t id, int from, int to, int64_t run_at_ms);

/* Prepared statements are reset and unbound after each use so they hold no read lock. */
static sqlite3_stmt *
stmt_get(store *st, enum stmt_id id)
{
    return SQ(st)->stmt[id];
}

static void
stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* from_sqlite: the jobq_err for a SQLite result code. */
static int
from_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return JOBQ_OK;
    case SQLITE_FULL:
        return JOBQ_EFULL;
    case SQLITE_NOMEM:
        return JOBQ_ENOMEM;
    case SQLITE_CONSTRAINT:
        return JOBQ_EINVAL;
    default:
        return JOBQ_ESTORE;
    }
}

static const char *
sq_errmsg(const store *st)
{
    return SQC(st)->db != NULL ? sqlite3_errmsg(SQC(st)->db) : "no database";
}

static char *
col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t == NULL ? NULL : strdup((const char *)t);
}

/* ---- reading rows: a row type per struct, one reader ---- */

/* A row type: the struct a result row is read into, described as the letters of kinds, one
 * for each field, in the order of the columns (as scanf's format), and off, each field's
 * offset in the struct:
 *   j  int64_t               i  int32_t, or an int (a state)    b  bool: the integer is not 0
 *   r  double                s  char *, malloc'd (NULL for NULL): what a row owns
 *   ?  bool: the next column is not NULL (the letter reads no column of its own) */
typedef struct row_type {
    const char *kinds;
    const size_t *off; /* as many as kinds has letters */
    size_t size;
} row_type;
_Static_assert(sizeof(int) == sizeof(int32_t), "'i' reads an int state too");

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The JOB_COLS columns. */
static const size_t job_off[] = {offsetof(job_row, id),
                                 offsetof(job_row, queue),
                                 offsetof(job_row, payload),
                                 offsetof(job_row, priority),
                                 offsetof(job_row, state),
                                 offsetof(job_row, run_at_ms),
                                 offsetof(job_row, attempt),
                                 offsetof(job_row, max_attempts),
                                 offsetof(job_row, timeout_ms),
                                 offsetof(job_row, key),
                                 offsetof(job_row, result),
                                 offsetof(job_row, error),
                                 offsetof(job_row, created_at_ms),
                                 offsetof(job_row, started_at_ms),
                                 offsetof(job_row, finished_at_ms),
                                 offsetof(job_row, group_id),
                                 offsetof(job_row, traceparent),
                                 offsetof(job_row, tracestate),
                                 offsetof(job_row, has_progress),
                                 offsetof(job_row, progress),
                                 offsetof(job_row, note),
                                 offsetof(job_row, checkpoint),
                                 offsetof(job_row, group_key)};
static const row_type job_type = {"jssiijiijsssjjjjss?rsss", job_off, sizeof(job_row)};

/* One id a row (the first column). */
static const size_t id_off[] = {0};
static const row_type id_type = {"j", id_off, sizeof(int64_t)};

/* clear_cols: frees the strings of the row of type t at row, and zeroes it. */
static void
clear_cols(const row_type *t, void *row)
{
    for (size_t k = 0; t->kinds[k] != '\0'; k++) {
        if (t->kinds[k] == 's') {
            free(*(char **)((char *)row + t->off[k]));
        }
    }
    memset(row, 0, t->size);
}

/* read_field: column *ip of s, read as kind (a row_type letter) into the field at f; moves
 * *ip on to the next column (but for '?'). Returns false when out of memory. */
static bool
read_field(sqlite3_stmt *s, char kind, int *ip, void *f)
{
    switch (kind) {
    case 'j':
        *(int64_t *)f = sqlite3_column_int64(s, (*ip)++);
        return true;
    case 'i':
        *(int32_t *)f = sqlite3_column_int(s, (*ip)++);
        return true;
    case 'b':
        *(bool *)f = sqlite3_column_int(s, (*ip)++) != 0;
        return true;
    case 'r':
        *(double *)f = sqlite3_column_double(s, (*ip)++);
        return true;
    case '?':
        *(bool *)f = sqlite3_column_type(s, *ip) != SQLITE_NULL;
        return true;
    default: { /* 's' */
        bool null = sqlite3_column_type(s, *ip) == SQLITE_NULL;
        *(char **)f = col_text(s, (*ip)++);
        return *(char **)f != NULL || null;
    }
    }
}

/* read_cols: fills the row at out (zeroed first) from s's current row; when out of memory,
 * clears it and returns JOBQ_ENOMEM. */
static int
read_cols(sqlite3_stmt *s, const row_type *t, void *out)
{
    bool ok = true;
    int i = 0; /* the column */
    memset(out, 0, t->size);
    for (size_t k = 0; t->kinds[k] != '\0'; k++) {
        ok = read_field(s, t->kinds[k], &i, (char *)out + t->off[k]) && ok;
    }
    if (!ok) {
        clear_cols(t, out);
    }
    return ok ? JOBQ_OK : JOBQ_ENOMEM;
}

/* clear_rows: clears the n rows of type t at rows (a failed read's unwinding). */
static void
clear_rows(const row_type *t, void *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        clear_cols(t, (char *)rows + i * t->size);
    }
}

/* read_one: steps s for its one row of type t into out; JOBQ_ENOENT when it has none. */
static int
read_one(sqlite3_stmt *s, const row_type *t, void *out)
{
    int rc = sqlite3_step(s);
    int err = rc == SQLITE_ROW    ? read_cols(s, t, out)
              : rc == SQLITE_DONE ? JOBQ_ENOENT
                                  : from_sqlite(rc);
    stmt_done(s);
    return err;
}

/* read_list: steps s into up to max rows of type t at rows (the caller's array); on failure
 * clears them. With morep, one step more tells whether s has a row after the max-th. */
static int
read_list(sqlite3_stmt *s, const row_type *t, void *rows, size_t max, size_t *np, bool *morep)
{
    size_t n = 0;
    bool more = false;
    int rc = SQLITE_DONE, err = JOBQ_OK;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((err = read_cols(s, t, (char *)rows + n * t->size)) != JOBQ_OK) {
            break;
        }
        n++;
    }
    if (err == JOBQ_OK && n < max && rc != SQLITE_DONE) {
        err = from_sqlite(rc);
    }
    if (morep != NULL && err == JOBQ_OK && n == max) {
        rc = sqlite3_step(s);
        more = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            err = from_sqlite(rc);
        }
    }
    stmt_done(s);
    if (err != JOBQ_OK) {
        clear_rows(t, rows, n);
        return err;
    }
    *np = n;
    if (morep != NULL) {
        *morep = more;
    }
    return JOBQ_OK;
}

/* read_all: steps s to its end into a malloc'd array of rows of type t: *rowsp (NULL when
 * none) and *np. */
static int
read_all(sqlite3_stmt *s, const row_type *t, void *rowsp, size_t *np)
{
    void *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = SQLITE_DONE, err = JOBQ_OK;
    while (err == JOBQ_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        err = store_grow(&rows, &cap, n, t->size, 16);
        if (err == JOBQ_OK && (err = read_cols(s, t, (char *)rows + n * t->size)) == JOBQ_OK) {
            n++;
        }
    }
    if (err == JOBQ_OK && rc != SQLITE_DONE) {
        err = from_sqlite(rc);
    }
    stmt_done(s);
    if (err != JOBQ_OK) {
        clear_rows(t, rows, n);
        free(rows);
        return err;
    }
    memcpy(rowsp, &rows, sizeof(rows)); /* rowsp points at a T * */
    *np = n;
    return JOBQ_OK;
}

/* list_of_id: statement sid for (id, max) read into up to max rows of type t at rows. */
static int
list_of_id(store *st, enum stmt_id sid, int64_t id, const row_type *t, void *rows, size_t max,
           size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, sid);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    return read_list(s, t, rows, max, np, NULL);
}

/* read_rows: up to max JOB_COLS rows of s into rows. */
static int
read_rows(sqlite3_stmt *s, job_row *rows, size_t max, size_t *np)
{
    return read_list(s, &job_type, rows, max, np, NULL);
}

/* ---- running statements: one helper per shape ---- */

/* step_done: steps a statement that returns no rows, and resets it. */
static int
step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : from_sqlite(rc);
}

/* exec_simple: steps a statement without parameters or rows. */
static int
exec_simple(store *st, enum stmt_id id)
{
    return step_done(stmt_get(st, id));
}

/* step_change: steps an UPDATE that must change exactly one row: JOBQ_ESTATE when it
 * changed none (the row was not in the state the WHERE asks for). */
static int
step_change(store *st, sqlite3_stmt *s)
{
    int err = step_done(s);
    if (err == JOBQ_OK && sqlite3_changes(SQ(st)->db) != 1) {
        err = JOBQ_ESTATE;
    }
    return err;
}

/* step_row: steps s, which yields at most one row: JOBQ_OK standing on it (the caller reads
 * it, then calls stmt_done), or JOBQ_ENOENT or an error with s reset. */
static int
step_row(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        return JOBQ_OK;
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_ENOENT : from_sqlite(rc);
}

/* scan_one: steps s, which yields at most one row, and reads its columns, as the letters of
 * kinds say (a row_type's), into the pointers that follow, as scanf does: JOBQ_ENOENT when
 * there is no row (nothing written); JOBQ_ENOMEM when a string could not be copied (then no
 * string is kept). */
static int
scan_one(sqlite3_stmt *s, const char *kinds, ...)
{
    int err = step_row(s);
    if (err != JOBQ_OK) {
        return err;
    }
    va_list ap;
    va_start(ap, kinds);
    int i = 0; /* the column */
    for (size_t k = 0; kinds[k] != '\0'; k++) {
        if (!read_field(s, kinds[k], &i, va_arg(ap, void *))) {
            err = JOBQ_ENOMEM;
        }
    }
    va_end(ap);
    stmt_done(s);
    if (err != JOBQ_OK) {
        va_start(ap, kinds); /* out of memory: none of the strings is kept */
        for (size_t k = 0; kinds[k] != '\0'; k++) {
            char **f = va_arg(ap, char **);
            if (kinds[k] == 's') {
                free(*f);
                *f = NULL;
            }
        }
        va_end(ap);
    }
    return err;
}

/* one_int64: steps s, which yields one row of one integer, into *vp (NULL reads as 0);
 * JOBQ_ENOENT when it yields no row. */
static int
one_int64(sqlite3_stmt *s, int64_t *vp)
{
    return scan_one(s, "j", vp);
}

/* oldest: one min() over an index into *atp; JOBQ_ENOENT when it is NULL (no row in the
 * index). A statement that yields no row at all leaves *atp as it was and returns JOBQ_OK. */
static int
oldest(sqlite3_stmt *s, int64_t *atp)
{
    int rc = sqlite3_step(s);
    int err;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *atp = sqlite3_column_int64(s, 0);
        err = JOBQ_OK;
    } else {
        err = rc == SQLITE_ROW ? JOBQ_ENOENT : from_sqlite(rc);
    }
    stmt_done(s);
    return err;
}

/* bind_text_or_null: binds text, or leaves NULL bound for a NULL pointer. */
static void
bind_text_or_null(sqlite3_stmt *s, int i, const char *text)
{
    if (text != NULL) {
        sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
    }
}

/* bind_int64_or_null: binds v, or leaves NULL bound for 0 (none: no time, no id). */
static void
bind_int64_or_null(sqlite3_stmt *s, int i, int64_t v)
{
    if (v != 0) {
        sqlite3_bind_int64(s, i, v);
    }
}

/* stmt_id: statement sid with id bound as its first parameter. */
static sqlite3_stmt *
stmt_id(store *st, enum stmt_id sid, int64_t id)
{
    sqlite3_stmt *s = stmt_get(st, sid);
    sqlite3_bind_int64(s, 1, id);
    return s;
}

/* stmt_text: statement sid with text (borrowed until the statement is done) bound as its
 * first parameter. */
static sqlite3_stmt *
stmt_text(store *st, enum stmt_id sid, const char *text)
{
    sqlite3_stmt *s = stmt_get(st, sid);
    sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
    return s;
}

/* stmt_key: statement sid with queue and key bound as its first two parameters. */
static sqlite3_stmt *
stmt_key(store *st, enum stmt_id sid, const char *queue, const char *key)
{
    sqlite3_stmt *s = stmt_text(st, sid, queue);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    return s;
}

/* run_id: steps statement sid, which returns no rows, for its one parameter id. */
static int
run_id(store *st, enum stmt_id sid, int64_t id)
{
    return step_done(stmt_id(st, sid, id));
}

/* run_id_i64: steps statement sid, which returns no rows, for its parameters id and v. */
static int
run_id_i64(store *st, enum stmt_id sid, int64_t id, int64_t v)
{
    sqlite3_stmt *s = stmt_id(st, sid, id);
    sqlite3_bind_int64(s, 2, v);
    return step_done(s);
}

/* run_text_i64: steps statement sid, which returns no rows, for its parameters text and v. */
static int
run_text_i64(store *st, enum stmt_id sid, const char *text, int64_t v)
{
    sqlite3_stmt *s = stmt_text(st, sid, text);
    sqlite3_bind_int64(s, 2, v);
    return step_done(s);
}

/* run_each: steps each of the n statements sids, which return no rows, for their one
 * parameter id, in order, up to the first that fails. */
static int
run_each(store *st, const enum stmt_id *sids, size_t n, int64_t id)
{
    int err = JOBQ_OK;
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        err = run_id(st, sids[i], id);
    }
    return err;
}

/* step_insert: steps an INSERT, then the new row's id into *idp. */
static int
step_insert(store *st, sqlite3_stmt *s, int64_t *idp)
{
    int err = step_done(s);
    if (err == JOBQ_OK) {
        *idp = sqlite3_last_insert_rowid(SQ(st)->db);
    }
    return err;
}

/* step_count: steps a DELETE, then how many rows it deleted into *np. */
static int
step_count(store *st, sqlite3_stmt *s, size_t *np)
{
    int err = step_done(s);
    if (err == JOBQ_OK) {
        *np = (size_t)sqlite3_changes(SQ(st)->db);
    }
    return err;
}

/* ---- the other row types ---- */

static const size_t attempt_off[] = {offsetof(attempt_row, attempt),
                                     offsetof(attempt_row, started_at_ms),
                                     offsetof(attempt_row, finished_at_ms),
                                     offsetof(attempt_row, kind), offsetof(attempt_row, error)};
static const row_type attempt_type = {"ijjss", attempt_off, sizeof(attempt_row)};

static const size_t log_off[] = {offsetof(log_row, seq), offsetof(log_row, attempt),
                                 offsetof(log_row, at_ms), offsetof(log_row, line)};
static const row_type log_type = {"jijs", log_off, sizeof(log_row)};

/* S_RUNNING's columns: the running jobs, as much of them as jobqd's start needs. */
static const size_t running_off[] = {offsetof(job_row, id), offsetof(job_row, queue),
                                     offsetof(job_row, attempt), offsetof(job_row, started_at_ms)};
static const row_type running_type = {"jsij", running_off, sizeof(job_row)};

/* A picked job: S_DUE_PICK's and S_PICK's columns. */
typedef struct pick_row {
    int64_t id;
    char *queue;
    int state;
} pick_row;

static const size_t pick_off[] = {offsetof(pick_row, id), offsetof(pick_row, queue),
                                  offsetof(pick_row, state)};
static const row_type pick_type = {"jsi", pick_off, sizeof(pick_row)};

static const size_t member_off[] = {offsetof(group_member, id), offsetof(group_member, state),
                                    offsetof(group_member, attempt), offsetof(group_member, error)};
static const row_type member_type = {"jiis", member_off, sizeof(group_member)};

static const size_t sdef_off[] = {
    offsetof(sched_def, name),          offsetof(sched_def, cron),
    offsetof(sched_def, timezone),      offsetof(sched_def, queue),
    offsetof(sched_def, payload),       offsetof(sched_def, priority),
    offsetof(sched_def, missed_skip),   offsetof(sched_def, overlap_skip),
    offsetof(sched_def, created_at_ms), offsetof(sched_def, updated_at_ms)};
static const row_type sdef_type = {"sssssibbjj", sdef_off, sizeof(sched_def)};

/* ---- idempotency keys ---- */

/* key_use: the row of key on queue by S_KEY_FIND, or by S_KEY_LOCK, which also reads whether
 * it is held into *heldp; JOBQ_ENOENT when there is none. */
static int
key_use(store *st, enum stmt_id sid, const char *queue, const char *key, int64_t *idp,
        uint64_t *hashp, int64_t *created_at_msp, bool *heldp)
{
    /* The hash is stored as the int64_t of the same bits. */
    return scan_one(stmt_key(st, sid, queue, key), heldp != NULL ? "jjjb" : "jjj", idp, hashp,
                    created_at_msp, heldp);
}

/* stmt_key_use: S_KEY_INSERT or S_KEY_PUT with the key's row bound: queue, key, the job id,
 * the payload hash and the time of its first use. */
static sqlite3_stmt *
stmt_key_use(store *st, enum stmt_id sid, const char *queue, const char *key, int64_t id,
             uint64_t hash, int64_t created_ms)
{
    sqlite3_stmt *s = stmt_key(st, sid, queue, key);
    sqlite3_bind_int64(s, 3, id);
    sqlite3_bind_int64(s, 4, (int64_t)hash);
    sqlite3_bind_int64(s, 5, created_ms);
    return s;
}

/* sq_config: SQLite counts every allocation for sqlite3_status() under one global mutex
 * (a lock and an unlock per malloc and per free, in every statement); jobqd never reads those
 * counts. Only possible before SQLite's first use: a later call fails and changes nothing. */
static pthread_once_t sq_config_once = PTHREAD_ONCE_INIT;

static void
sq_config(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
store_sqlite_open(const char *path, enum durability durability, store **stp, char *err,
                  size_t errlen)
{
    pthread_once(&sq_config_once, sq_config);
    sqlite_store *sq = calloc(1, sizeof(*sq));
    if (sq == NULL) {
        snprintf(err, errlen, "out of memory");
        return JOBQ_ENOMEM;
    }
    store *st = &sq->base;
    st->ops = &sqlite_ops;
    int rc = sqlite3_open_v2(
        path, &SQ(st)->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 SQ(st)->db ? sqlite3_errmsg(SQ(st)->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(SQ(st)->db, 1);
    sqlite3_busy_timeout(SQ(st)->db, 5000);
    const char *pragmas = durability == DURABILITY_FULL
                              ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                              : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";
    char *msg = NULL;
    rc = sqlite3_exec(SQ(st)->db, pragmas, NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(SQ(st)->db,
                          "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY; "
                          "PRAGMA foreign_keys = OFF;",
                          NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up database %s: %s", path,
                 msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        goto fail;
    }
    SQ(st)->full = SQ(st)->syncing = durability == DURABILITY_FULL;
    if (migrate_apply(SQ(st)->db, err, errlen) != 0) {
        goto fail;
    }
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        rc = sqlite3_prepare_v3(SQ(st)->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &SQ(st)->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(SQ(st)->db));
            goto fail;
        }
    }
    *stp = st;
    return JOBQ_OK;
fail:
    sq_close(st);
    return JOBQ_ESTORE;
}

static void
sq_close(store *st)
{
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        sqlite3_finalize(SQ(st)->stmt[i]);
    }
    if (SQ(st)->db != NULL) {
        /* sqlite3_close checkpoints too, but says nothing when that fails. */
        int rc = sqlite3_wal_checkpoint_v2(SQ(st)->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK) {
            log_error("store_checkpoint_failed",
                      "err=\"%s\" reason=\"the WAL file keeps every commit; the next start "
                      "reads it\"",
                      sqlite3_errmsg(SQ(st)->db));
        }
        rc = sqlite3_close(SQ(st)->db);
        if (rc != SQLITE_OK) {
            log_error("store_close", "err=%d", rc);
        }
    }
    free(st);
}

static void
sq_set_sync(store *st, bool sync)
{
    sync = sync && SQ(st)->full;
    if (sync == SQ(st)->syncing) {
        return;
    }
    /* WAL mode: FULL fsyncs the WAL at each commit; NORMAL only at checkpoints. */
    int rc =
        sqlite3_exec(SQ(st)->db, sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                     NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        SQ(st)->syncing = sync;
    } else if (!sync) {
        return; /* still FULL: safe, only slower */
    } else {
        log_error("store_sync_mode", "err=\"%s\" reason=\"cannot turn fsync back on\"",
                  sqlite3_errmsg(SQ(st)->db));
    }
}

static int
sq_begin(store *st)
{
    return exec_simple(st, S_BEGIN);
}

static int
sq_commit(store *st)
{
    int err = exec_simple(st, S_COMMIT);
    if (err == JOBQ_OK && SQ(st)->wal == NULL && SQ(st)->full) {
        /* In WAL mode the pager's journal is the log (sqlite3PagerJrnlFile). */
        sqlite3_file *f = NULL;
        if (sqlite3_file_control(SQ(st)->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) ==
                SQLITE_OK &&
            f != NULL && f->pMethods != NULL) {
            SQ(st)->wal = f;
        }
    }
    return err;
}

static bool
sq_sync_apart(const store *st)
{
    return SQC(st)->full;
}

/* sq_sync: the write-ahead log's xSync, as SQLite's own commit with synchronous = FULL would
 * call it: the commits that returned before it wrote their frames to the log, so the sync
 * makes them durable. Through the file object SQLite opened, so a VFS layered over the real
 * one (the crash tests') sees it. */
static int
sq_sync(store *st, char *msg, size_t msglen)
{
    sqlite3_file *f = SQ(st)->wal;
    if (f == NULL) {
        snprintf(msg, msglen, "fsync of the write-ahead log: the log is not open");
        return JOBQ_ESTORE;
    }
    int rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "fsync of the write-ahead log: %s", sqlite3_errstr(rc));
        return from_sqlite(rc);
    }
    return JOBQ_OK;
}

/* sq_checkpoint: a TRUNCATE checkpoint copies every frame of the log into the database file
 * and syncs it (with synchronous = NORMAL as with FULL), then truncates the log, which SQLite
 * does not sync: the sync here does, so that no frame of a log whose pages may not all have
 * reached the disk can be replayed over the newer database after a power cut. */
static int
sq_checkpoint(store *st, char *msg, size_t msglen)
{
    int rc = sqlite3_wal_checkpoint_v2(SQ(st)->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "checkpoint after a failed fsync: %s", sqlite3_errmsg(SQ(st)->db));
        return from_sqlite(rc);
    }
    if (SQ(st)->wal != NULL) {
        rc = SQ(st)->wal->pMethods->xSync(SQ(st)->wal, SQLITE_SYNC_NORMAL);
        if (rc != SQLITE_OK) {
            snprintf(msg, msglen, "fsync of the emptied write-ahead log: %s", sqlite3_errstr(rc));
            return from_sqlite(rc);
        }
    }
    return JOBQ_OK;
}

static void
sq_rollback(store *st)
{
    if (!sqlite3_get_autocommit(SQ(st)->db)) {
        (void)exec_simple(st, S_ROLLBACK);
    }
}

static bool
sq_in_transaction(const store *st)
{
    return !sqlite3_get_autocommit(SQC(st)->db);
}

static int
sq_savepoint(store *st)
{
    return exec_simple(st, S_SAVEPOINT);
}

static void
sq_release(store *st)
{
    (void)exec_simple(st, S_RELEASE);
}

static void
sq_rollback_savepoint(store *st)
{
    (void)exec_simple(st, S_ROLLBACK_TO);
    (void)exec_simple(st, S_RELEASE);
}

static int
sq_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp)
{
    sqlite3_stmt *s = stmt_get(st, S_GROUP_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)g->size);
    sqlite3_bind_int64(s, 2, now_ms);
    if (g->oc_queue != NULL) {
        sqlite3_bind_text(s, 3, g->oc_queue, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, g->oc_payload, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 5, g->oc_priority);
        sqlite3_bind_int(s, 6, g->oc_max_attempts);
        sqlite3_bind_int64(s, 7, g->oc_timeout_ms);
    }
    return step_insert(st, s, gidp);
}

static int
sq_group_get(store *st, int64_t gid, bool members, group_info *g)
{
    memset(g, 0, sizeof(*g));
    int err = scan_one(stmt_id(st, S_GROUP_GET, gid), "jjjsj", &g->size, &g->created_at_ms,
                       &g->completed_at_ms, &g->oc_queue, &g->oc_job_id);
    if (err != JOBQ_OK) {
        return err;
    }
    g->id = gid;
    sqlite3_stmt *s = stmt_id(st, S_GROUP_COUNTS, gid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int state = sqlite3_column_int(s, 0);
        if (state >= 0 && state <= JOBQ_WAITING) {
            g->counts[state] = sqlite3_column_int64(s, 1);
        }
    }
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        err = from_sqlite(rc);
    }
    if (err == JOBQ_OK && members) {
        err = read_all(stmt_id(st, S_GROUP_MEMBERS, gid), &member_type, &g->members, &g->nmembers);
    }
    if (err != JOBQ_OK) {
        group_info_clear(g);
    }
    return err;
}

static int
sq_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np)
{
    return list_of_id(st, S_DEP_PARENTS, id, &id_type, ids, max, np);
}

static int
sq_schedule_last(store *st, const char *name, int64_t *tickp)
{
    return one_int64(stmt_text(st, S_SCHED_LAST, name), tickp);
}

/* A schedule's row holds its last tick; until it has one, the time jobqd first saw it is kept
 * in a row of its own (store_since_key). */
static int
sq_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep)
{
    char key[STORE_SINCE_KEY_MAX];
    int64_t since = now_ms;
    int err = store_since_key(key, sizeof(key), name);
    if (err == JOBQ_OK) {
        err = sq_schedule_last(st, key, &since);
    }
    if (err == JOBQ_ENOENT) {
        since = now_ms;
        err = run_text_i64(st, S_SCHED_SET, key, since);
    }
    if (err == JOBQ_OK) {
        *sincep = since;
    }
    return err;
}

static int
sq_get(store *st, int64_t id, job_row *row)
{
    return read_one(stmt_id(st, S_GET, id), &job_type, row);
}

static int
sq_list(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep)
{
    sqlite3_stmt *s = stmt_get(st, S_LIST);
    bind_text_or_null(s, 1, f->queue);
    sqlite3_bind_int(s, 2, f->state);
    sqlite3_bind_int64(s, 3, f->after_id);
    sqlite3_bind_int(s, 4, f->limit + 1); /* one more than asked: is this the last page? */
    return read_list(s, &job_type, rows, (size_t)f->limit, np, morep);
}

static int
sq_count_each(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n), void *arg)
{
    sqlite3_stmt *s = stmt_get(st, S_COUNT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
           sqlite3_column_int64(s, 2));
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : from_sqlite(rc);
}

static int
sq_paused_each(store *st, void (*fn)(void *arg, const char *queue), void *arg)
{
    sqlite3_stmt *s = stmt_get(st, S_PAUSED);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(s, 0));
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : from_sqlite(rc);
}

static int
sq_set_paused(store *st, const char *queue, bool paused)
{
    return run_text_i64(st, S_SET_PAUSED, queue, paused ? 1 : 0);
}

/* mark_running: the claim's update of one picked job, and its row brought up to date. */
static int
mark_running(store *st, job_row *row, int64_t now_ms)
{
    sqlite3_stmt *m = stmt_id(st, S_CLAIM_MARK, row->id);
    sqlite3_bind_int64(m, 2, now_ms);
    int err = step_change(st, m);
    store_row_claimed(row, now_ms);
    return err;
}

/* plain_ready: up to max ready jobs of queue without key, in claim order, into rows. */
static int
plain_ready(store *st, const char *queue, size_t max, job_row *rows, size_t *np)
{
    sqlite3_stmt *s = stmt_text(st, S_CLAIM_PICK, queue);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    return read_rows(s, rows, max, np);
}

/* sq_claim_plain: claims up to max ready jobs of queue without key, in claim order. */
static int
sq_claim_plain(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows,
               size_t *np)
{
    size_t n = 0;
    int err = plain_ready(st, queue, max, rows, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        err = mark_running(st, &rows[i], now_ms);
    }
    return store_claim_done(err, rows, n, false, 0, NULL, np);
}

static int
sq_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows, size_t *np)
{
    return sq_claim_keys(st, queue, now_ms, max, NULL, rows, np, NULL);
}

/* key_int: the one integer a statement on (queue, key[, a]) returns; JOBQ_ENOENT if no row
 * or NULL. */
static int
key_int(store *st, enum stmt_id id, const char *queue, const char *key, int64_t a, int64_t *vp)
{
    sqlite3_stmt *s = key != NULL ? stmt_key(st, id, queue, key) : stmt_text(st, id, queue);
    sqlite3_bind_int64(s, key != NULL ? 3 : 2, a);
    int rc = sqlite3_step(s);
    bool one = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
    if (one) {
        *vp = sqlite3_column_int64(s, 0);
    }
    stmt_done(s);
    return one ? JOBQ_OK : rc == SQLITE_ROW || rc == SQLITE_DONE ? JOBQ_ENOENT : from_sqlite(rc);
}

/* key_set: writes a key's place in the rotation; next_turn: to the back of it. */
static int
key_set(store *st, const char *queue, const char *key, int active, int32_t prio, bool next_turn,
        int64_t tat)
{
    sqlite3_stmt *s = stmt_key(st, S_KEY_SET, queue, key);
    sqlite3_bind_int(s, 3, active);
    sqlite3_bind_int(s, 4, prio);
    sqlite3_bind_int(s, 5, next_turn);
    sqlite3_bind_int64(s, 6, tat);
    return step_done(s);
}

/* key_claim_one: claims key's best ready job into *row (JOBQ_ENOENT: none). */
static int
key_claim_one(store *st, const char *queue, const char *key, job_row *row)
{
    size_t n = 0;
    int err = read_rows(stmt_key(st, S_KEY_JOB, queue, key), row, 1, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    return n == 1 ? JOBQ_OK : JOBQ_ENOENT;
}

/* sq_claim_keys: the rotation of migrations/0008_keys.sql, one job per turn. The triggers put
 * a key in the rotation when a job of it becomes ready or ends running; this takes it out when
 * it has nothing ready (forgetting it when nothing runs either), is at its cap, or is held by
 * its rate, and lowers its prio when its best ready job has less. */
static int
sq_claim_keys(store *st, const char *queue, int64_t now_ms, size_t max, const key_limits *kl,
              job_row *rows, size_t *np, key_claim_info *info)
{
    int32_t cap = kl != NULL ? kl->cap : 0;
    int64_t interval = kl != NULL ? kl->interval_ms : 0;
    int64_t tol = kl != NULL ? kl->tolerance_ms : 0;
    bool blocked = false;
    size_t n = 0;
    int err = run_text_i64(st, S_KEY_WAKE, queue, now_ms + tol);
    bool udone = false;
    size_t visits = 0;
    for (; err == JOBQ_OK && n < max && visits < max * 4 + 64; visits++) {
        char *key = NULL;
        int32_t prio = 0;
        int64_t turn = 0, tat = 0; /* tat: the key's theoretical arrival time (its rate) */
        err = scan_one(stmt_text(st, S_KEY_NEXT, queue), "sijj", &key, &prio, &turn, &tat);
        if (err == JOBQ_ENOENT) {
            /* No key in the rotation: the jobs without key, as ever. */
            size_t got = 0;
            err = udone ? JOBQ_OK : sq_claim_plain(st, queue, now_ms, max - n, rows + n, &got);
            n += got;
            break;
        }
        if (err != JOBQ_OK) {
            break;
        }
        if (!udone) {
            /* Jobs without key take the turns of one more key (its turn in the '' row). */
            job_row u = {0};
            size_t got = 0;
            err = plain_ready(st, queue, 1, &u, &got);
            int64_t uturn = 0;
            if (err == JOBQ_OK && got == 1) {
                err = key_int(st, S_KEY_UTURN, queue, NULL, 0, &uturn);
                if (err == JOBQ_ENOENT) {
                    uturn = 0; /* never served: first */
                    err = JOBQ_OK;
                }
            }
            if (err == JOBQ_OK && got == 0) {
                udone = true;
            } else if (err == JOBQ_OK &&
                       (u.priority > prio || (u.priority == prio && uturn < turn))) {
                err = mark_running(st, &u, now_ms);
                if (err == JOBQ_OK) {
                    err = step_done(stmt_text(st, S_KEY_UTURN_SET, queue));
                }
                if (err == JOBQ_OK) {
                    rows[n++] = u;
                    free(key);
                    continue;
                }
            }
            job_row_clear(&u);
            if (err != JOBQ_OK) {
                free(key);
                break;
            }
        }
        job_row *row = &rows[n];
        err = key_claim_one(st, queue, key, row);
        if (err == JOBQ_ENOENT) {
            /* Nothing ready: out of the rotation, forgotten when nothing runs either. */
            int64_t running = 0;
            err = key_int(st, S_KEY_RUNNING, queue, key, 1, &running);
            if (err == JOBQ_OK && running > 0) {
                err = key_set(st, queue, key, 0, prio, false, tat);
            } else if (err == JOBQ_OK) {
                err = step_done(stmt_key(st, S_KEY_DROP, queue, key));
            }
            free(key);
            continue;
        }
        if (err != JOBQ_OK) {
            free(key);
            break;
        }
        if (row->priority < prio) {
            /* Its best ready job has less than the rotation thought: placed again. */
            err = key_set(st, queue, key, 1, row->priority, false, tat);
            job_row_clear(row);
            free(key);
            continue;
        }
        int64_t running = 0;
        if (cap > 0) {
            err = key_int(st, S_KEY_RUNNING, queue, key, cap, &running);
            if (err == JOBQ_OK && running >= cap) {
                /* At its cap: out until one of its running jobs ends (jobs_key_end). */
                blocked = true;
                err = key_set(st, queue, key, 0, prio, false, tat);
                job_row_clear(row);
                free(key);
                continue;
            }
        }
        if (err == JOBQ_OK && tat > now_ms + tol) { /* key_rate, or a slow-down (key_hold) */
            blocked = true;
            err = key_set(st, queue, key, 2, prio, false, tat);
            job_row_clear(row);
            free(key);
            continue;
        }
        if (err == JOBQ_OK) {
            err = mark_running(st, row, now_ms);
        }
        if (err != JOBQ_OK) {
            job_row_clear(row);
            free(key);
            break;
        }
        n++;
        int64_t new_tat = interval > 0 ? (tat > now_ms ? tat : now_ms) + interval : tat;
        int64_t next_prio = 0;
        err = key_int(st, S_KEY_NEXT_PRIO, queue, key, 0, &next_prio);
        int active;
        if (err == JOBQ_ENOENT) {
            err = JOBQ_OK;
            active = 0; /* back in when a job of it becomes ready (jobs_key_ready_*) */
            next_prio = prio;
        } else if (cap > 0 && running + 1 >= cap) {
            active = 0; /* back in when one of its jobs ends (jobs_key_end) */
            blocked = true;
        } else if (new_tat > now_ms + tol) {
            active = 2; /* back in at new_tat (S_KEY_WAKE) */
            blocked = true;
        } else {
            active = 1;
        }
        if (err == JOBQ_OK) {
            err = key_set(st, queue, key, active, (int32_t)next_prio, true, new_tat);
        }
        free(key);
    }
    if (err == JOBQ_OK && n < max && !blocked) {
        /* Fewer than asked: because of keys out of the rotation, or the visits ran out? */
        int64_t one = 0;
        blocked = visits >= max * 4 + 64;
        err = blocked ? JOBQ_OK : key_int(st, S_KEY_ANY_OUT, queue, NULL, 0, &one);
        if (err == JOBQ_OK) {
            blocked = true;
        } else if (err == JOBQ_ENOENT) {
            err = JOBQ_OK;
        }
    }
    int64_t wake = 0;
    if (err == JOBQ_OK) {
        err = key_int(st, S_KEY_WAKE_AT, queue, NULL, 0, &wake);
        if (err == JOBQ_ENOENT) {
            err = JOBQ_OK;
            wake = 0;
        }
        wake = wake > 0 ? wake - tol : 0;
    }
    return store_claim_done(err, rows, n, blocked, wake, info, np);
}

static int
sq_key_hold(store *st, const char *queue, const char *group_key, int64_t until_ms)
{
    sqlite3_stmt *s = stmt_key(st, S_KEY_HOLD, queue, group_key);
    sqlite3_bind_int64(s, 3, until_ms);
    return step_done(s);
}

static int
sq_key_running(store *st, const char *queue, const char *group_key, int64_t limit, int64_t *np)
{
    int64_t v = 0;
    int err = key_int(st, S_KEY_RUNNING, queue, group_key, limit, &v);
    if (err == JOBQ_ENOENT) {
        err = JOBQ_OK;
    }
    if (err == JOBQ_OK) {
        *np = v;
    }
    return err;
}

static int
sq_requeue(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a)
{
    sqlite3_stmt *s = stmt_id(st, S_REQUEUE, id);
    bind_text_or_null(s, 2, error);
    int err = step_change(st, s);
    return err == JOBQ_OK && a != NULL ? sq_attempt_add(st, id, a, now_ms, error) : err;
}

static int
sq_promote_due(store *st, int64_t now_ms, size_t max,
               void (*fn)(void *arg, const char *queue, int old_state), void *arg, size_t *np)
{
    /* Updating rows of the index being read is safe in SQLite only after the read is done,
     * so the rows are read first (max is small). */
    pick_row *rows = malloc((max > 0 ? max : 1) * sizeof(*rows));
    if (rows == NULL) {
        return JOBQ_ENOMEM;
    }
    sqlite3_stmt *s = stmt_id(st, S_DUE_PICK, now_ms);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    size_t n = 0;
    int err = read_list(s, &pick_type, rows, max, &n, NULL);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        err = run_id(st, S_DUE_MARK, rows[i].id);
    }
    for (size_t i = 0; err == JOBQ_OK && fn != NULL && i < n; i++) {
        fn(arg, rows[i].queue, rows[i].state);
    }
    if (err == JOBQ_OK) {
        *np = n;
    }
    clear_rows(&pick_type, rows, n);
    free(rows);
    return err;
}

/* ---- bulk operations ---- */

static int
sq_max_id(store *st, int64_t *idp)
{
    return one_int64(stmt_get(st, S_MAX_ID), idp);
}

static int
sq_pick(store *st, const job_filter *f, int64_t after_id, int64_t upto_id, size_t max,
        void (*fn)(void *arg, int64_t id, const char *queue, int state), void *arg, size_t *np)
{
    char *ids = NULL;
    if (f->ids != NULL && (ids = store_ids_text(f->ids, f->nids, '[', ']')) == NULL) {
        return JOBQ_ENOMEM;
    }
    pick_row *rows = malloc((max > 0 ? max : 1) * sizeof(*rows));
    if (rows == NULL) {
        free(ids);
        return JOBQ_ENOMEM;
    }
    sqlite3_stmt *s = stmt_id(st, S_PICK, after_id);
    sqlite3_bind_int64(s, 2, upto_id);
    bind_text_or_null(s, 3, f->queue);
    unsigned want = store_filter_states(f);
    int slot = 0, first = -1;
    for (int state = 0; state <= JOBQ_WAITING; state++) {
        if (want & (1u << state)) {
            first = first < 0 ? state : first;
            sqlite3_bind_int(s, 4 + slot++, state);
        }
    }
    while (slot < 8) {
        sqlite3_bind_int(s, 4 + slot++, first); /* the list padded with a state it holds */
    }
    bind_text_or_null(s, 12, ids);
    bind_int64_or_null(s, 13, f->created_after_ms);
    bind_int64_or_null(s, 14, f->created_before_ms);
    bind_int64_or_null(s, 15, f->finished_after_ms);
    bind_int64_or_null(s, 16, f->finished_before_ms);
    bind_text_or_null(s, 17, f->error_contains);
    bind_text_or_null(s, 18, f->key_prefix);
    sqlite3_bind_int64(s, 19, (int64_t)max);
    size_t n = 0;
    int err = read_list(s, &pick_type, rows, max, &n, NULL);
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        fn(arg, rows[i].id, rows[i].queue, rows[i].state);
    }
    if (err == JOBQ_OK) {
        *np = n;
    }
    clear_rows(&pick_type, rows, n);
    free(rows);
    free(ids);
    return err;
}

static int
sq_job_delete(store *st, int64_t id, int from)
{
    /* The job's row, then every row that names it (its log lines stay until their sweep). */
    static const enum stmt_id naming[] = {S_SWEEP_ATTEMPTS, S_DEP_DELETE_JOB, S_DEP_DELETE_PARENT,
                                          S_PARENTS_SWEEP};
    sqlite3_stmt *s = stmt_id(st, S_DELETE, id);
    sqlite3_bind_int(s, 2, from);
    int err = step_change(st, s);
    return err == JOBQ_OK ? run_each(st, naming, COUNT_OF(naming), id) : err;
}

static int
sq_job_set_priority(store *st, int64_t id, int from, int32_t priority)
{
    sqlite3_stmt *s = stmt_id(st, S_SET_PRIORITY, id);
    sqlite3_bind_int(s, 2, from);
    sqlite3_bind_int(s, 3, priority);
    return step_change(st, s);
}

static int
sq_job_set_run_at(store *st, int64_t id, int from, int to, int64_t run_at_ms)
{
    sqlite3_stmt *s = stmt_id(st, S_SET_RUN_AT, id);
    sqlite3_bind_int(s, 2, from);
    sqlite3_bind_int(s, 3, to);
    sqlite3_bind_int64(s, 4, run_at_ms);
    return step_change(st, s);
}

static int
sq_next_due(store *st, int64_t *atp)
{
    return oldest(stmt_get(st, S_NEXT_DUE), atp);
}

static int
sq_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep)
{
    int old;
    int err = sq_job_state(st, id, &old);
    if (err != JOBQ_OK) {
        return err;
    }
    sqlite3_stmt *s = stmt_id(st, S_RETRY, id);
    sqlite3_bind_int64(s, 2, now_ms);
    if ((err = step_change(st, s)) != JOBQ_OK) {
        return err;
    }
    err = sq_get(st, id, row);
    if (err == JOBQ_OK) {
        *old_statep = old;
    }
    return err;
}

static int
sq_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
              void (*fn)(void *arg, const char *queue), void *arg, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_RETRY_BULK);
    if (queue != NULL) {
        sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, now_ms);
    sqlite3_bind_int64(s, 4, (int64_t)max);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(s, 0));
        n++;
    }
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return from_sqlite(rc);
    }
    *np = n;
    return JOBQ_OK;
}

static int
sq_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np)
{
    return list_of_id(st, S_ATTEMPTS, id, &attempt_type, rows, max, np);
}

static int
sq_job_progress(store *st, int64_t id, const progress_set *p)
{
    sqlite3_stmt *s = stmt_id(st, S_PROGRESS, id);
    sqlite3_bind_int(s, 2, p->has_progress);
    sqlite3_bind_double(s, 3, p->progress);
    bind_text_or_null(s, 4, p->note);
    bind_text_or_null(s, 5, p->checkpoint);
    int err = step_done(s);
    if (err == JOBQ_OK && sqlite3_changes(SQ(st)->db) == 0) {
        err = JOBQ_ENOENT;
    }
    return err;
}

static int
sq_log_append(store *st, int64_t id, int32_t attempt, int64_t at_ms, const char *const *lines,
              size_t n, size_t max_lines, size_t max_bytes, int64_t *last_seqp)
{
    int64_t seq = 0;
    int err = one_int64(stmt_id(st, S_LOG_LAST, id), &seq);
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        sqlite3_stmt *s = stmt_id(st, S_LOG_INSERT, id);
        sqlite3_bind_int64(s, 2, ++seq);
        sqlite3_bind_int(s, 3, attempt);
        sqlite3_bind_int64(s, 4, at_ms);
        sqlite3_bind_text(s, 5, lines[i], -1, SQLITE_STATIC);
        err = step_done(s);
    }
    if (err == JOBQ_OK) {
        sqlite3_stmt *s = stmt_id(st, S_LOG_TRIM, id);
        sqlite3_bind_int64(s, 2, (int64_t)max_lines);
        sqlite3_bind_int64(s, 3, (int64_t)max_bytes);
        err = step_done(s);
    }
    if (err == JOBQ_OK && last_seqp != NULL) {
        *last_seqp = seq;
    }
    return err;
}

static int
sq_logs(store *st, int64_t id, int64_t after_seq, log_row *rows, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_id(st, S_LOGS, id);
    sqlite3_bind_int64(s, 2, after_seq);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    return read_list(s, &log_type, rows, max, np, NULL);
}

static int
sq_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max, size_t *np)
{
    /* The rows that name a swept job. */
    static const enum stmt_id naming[] = {S_SWEEP_ATTEMPTS, S_SWEEP_LOGS, S_PARENTS_SWEEP};
    int64_t *ids = malloc((max > 0 ? max : 1) * sizeof(*ids));
    if (ids == NULL) {
        return JOBQ_ENOMEM;
    }
    sqlite3_stmt *s = stmt_text(st, S_SWEEP, queue);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, before_ms);
    sqlite3_bind_int64(s, 4, (int64_t)max);
    size_t n = 0;
    bool more = false; /* the step after the max-th row runs the DELETE to its end */
    int err = read_list(s, &id_type, ids, max, &n, &more);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        err = run_each(st, naming, COUNT_OF(naming), ids[i]);
    }
    free(ids);
    if (err == JOBQ_OK) {
        *np = n;
    }
    return err;
}

static int
sq_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_id(st, S_SWEEP_GROUPS, before_ms);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    return step_count(st, s, np);
}

static int
sq_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_text(st, S_SWEEP_KEYS, queue);
    sqlite3_bind_int64(s, 2, before_ms);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    return step_count(st, s, np);
}

static int
sq_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np)
{
    /* The ready jobs without key ahead of it, then the keyed ones (jobs_key_ready), in the
     * same order. */
    static const enum stmt_id ahead[] = {S_AHEAD, S_AHEAD_KEYED};
    int64_t n = 0;
    for (size_t k = 0; k < COUNT_OF(ahead); k++) {
        sqlite3_stmt *s = stmt_text(st, ahead[k], row->queue);
        sqlite3_bind_int(s, 2, row->priority);
        sqlite3_bind_int64(s, 3, row->run_at_ms);
        sqlite3_bind_int64(s, 4, row->id);
        sqlite3_bind_int64(s, 5, limit);
        int64_t v = 0;
        int err = one_int64(s, &v);
        if (err != JOBQ_OK) {
            return err;
        }
        n += v;
    }
    *np = n < limit ? n : limit;
    return JOBQ_OK;
}

static int
sq_oldest_finished(store *st, const char *queue, int state, int64_t *atp)
{
    sqlite3_stmt *s = stmt_text(st, S_OLDEST_FINISHED, queue);
    sqlite3_bind_int(s, 2, state);
    return oldest(s, atp);
}

static int
sq_oldest_due(store *st, const char *queue, int64_t now_ms, int64_t *readyp, int64_t *overduep)
{
    int64_t ready = 0, overdue = 0;
    int err = oldest(stmt_text(st, S_OLDEST_READY, queue), &ready);
    if (err == JOBQ_OK || err == JOBQ_ENOENT) {
        int64_t keyed = 0;
        err = oldest(stmt_text(st, S_OLDEST_READY_KEYED, queue), &keyed);
        if (err == JOBQ_OK && (ready == 0 || keyed < ready)) {
            ready = keyed;
        }
    }
    if (err == JOBQ_OK || err == JOBQ_ENOENT) {
        sqlite3_stmt *s = stmt_text(st, S_OLDEST_OVERDUE, queue);
        sqlite3_bind_int64(s, 2, now_ms);
        err = oldest(s, &overdue);
    }
    if (err != JOBQ_OK && err != JOBQ_ENOENT) {
        return err;
    }
    *readyp = ready;
    *overduep = overdue;
    return JOBQ_OK;
}

static int
sq_oldest_key(store *st, const char *queue, int64_t *atp)
{
    return oldest(stmt_text(st, S_OLDEST_KEY, queue), atp);
}

static int
sq_recent(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_text(st, S_RECENT, queue);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    return read_rows(s, rows, max, np);
}

int
store_sqlite_backup(const char *db_path, const char *dest, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, "VACUUM INTO ?1", -1, &s, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, dest, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
    }
    int result = rc == SQLITE_DONE || rc == SQLITE_OK ? JOBQ_OK : from_sqlite(rc);
    if (result != JOBQ_OK) {
        snprintf(err, errlen, "backup to %s failed: %s", dest,
                 db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return result;
}

static int
sq_job_insert(store *st, const job_spec *spec, int state, int64_t now_ms, int64_t finished_at_ms,
              const char *error, int64_t *idp)
{
    sqlite3_stmt *s = stmt_text(st, S_INSERT, spec->queue);
    sqlite3_bind_text(s, 2, spec->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, spec->priority);
    sqlite3_bind_int(s, 4, state);
    sqlite3_bind_int64(s, 5, spec->run_at_ms);
    sqlite3_bind_int(s, 6, spec->max_attempts);
    sqlite3_bind_int64(s, 7, spec->timeout_ms);
    bind_text_or_null(s, 8, spec->key);
    sqlite3_bind_int64(s, 9, now_ms);
    bind_int64_or_null(s, 10, spec->group_id);
    sqlite3_bind_int(s, 11, spec->after_always);
    bind_text_or_null(s, 12, error);
    bind_int64_or_null(s, 13, finished_at_ms);
    bind_text_or_null(s, 14, spec->traceparent);
    bind_text_or_null(s, 15, spec->tracestate);
    bind_text_or_null(s, 16, spec->group_key);
    return step_insert(st, s, idp);
}

static int
sq_job_state(store *st, int64_t id, int *statep)
{
    return scan_one(stmt_id(st, S_STATE_OF, id), "i", statep);
}

static int
sq_job_set_state(store *st, int64_t id, int from, int to, int64_t finished_at_ms, const char *error)
{
    sqlite3_stmt *s = stmt_id(st, S_SET_STATE, id);
    sqlite3_bind_int(s, 2, from);
    sqlite3_bind_int(s, 3, to);
    bind_int64_or_null(s, 4, finished_at_ms);
    bind_text_or_null(s, 5, error);
    return step_change(st, s);
}

static int
sq_running(store *st, job_row **rowsp, size_t *np)
{
    job_row *rows = NULL;
    size_t n = 0;
    int err = read_all(stmt_get(st, S_RUNNING), &running_type, &rows, &n);
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        rows[i].state = JOBQ_RUNNING;
    }
    if (err == JOBQ_OK) {
        *rowsp = rows;
        *np = n;
    }
    return err;
}

static int
sq_job_finish(store *st, int64_t id, int new_state, int64_t finished_at_ms, int64_t run_at_ms,
              const char *result, const char *error)
{
    sqlite3_stmt *s = stmt_id(st, S_FINISH, id);
    sqlite3_bind_int(s, 2, new_state);
    bind_int64_or_null(s, 3, finished_at_ms);
    bind_int64_or_null(s, 4, run_at_ms);
    bind_text_or_null(s, 5, result);
    bind_text_or_null(s, 6, error);
    return step_change(st, s);
}

static int
sq_attempt_add(store *st, int64_t id, const attempt_rec *a, int64_t now_ms, const char *error)
{
    sqlite3_stmt *s = stmt_id(st, S_ATTEMPT_INSERT, id);
    sqlite3_bind_int(s, 2, a->attempt);
    sqlite3_bind_int64(s, 3, a->started_at_ms);
    sqlite3_bind_int64(s, 4, now_ms);
    sqlite3_bind_text(s, 5, a->kind, -1, SQLITE_STATIC);
    bind_text_or_null(s, 6, error);
    return step_done(s);
}

static int
sq_attempt_count(store *st, int64_t id, const char *kind, int64_t *np)
{
    sqlite3_stmt *s = stmt_id(st, S_ATTEMPT_COUNT, id);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    return one_int64(s, np);
}

static int
sq_key_find(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
            int64_t *created_at_msp)
{
    return key_use(st, S_KEY_FIND, queue, key, idp, hashp, created_at_msp, NULL);
}

static int
sq_key_add(store *st, const char *queue, const char *key, int64_t id, uint64_t hash, int64_t now_ms)
{
    return step_done(stmt_key_use(st, S_KEY_INSERT, queue, key, id, hash, now_ms));
}

static int
sq_key_delete(store *st, const char *queue, const char *key)
{
    return step_done(stmt_key(st, S_KEY_DELETE, queue, key));
}

/* sq_key_lock: SQLite has one writer: the transaction holds every key already. */
static int
sq_key_lock(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
            int64_t *created_at_msp, bool *heldp)
{
    return key_use(st, S_KEY_LOCK, queue, key, idp, hashp, created_at_msp, heldp);
}

static int
sq_key_put(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
           int64_t created_ms, bool held)
{
    sqlite3_stmt *s = stmt_key_use(st, S_KEY_PUT, queue, key, id, hash, created_ms);
    sqlite3_bind_int(s, 6, held);
    return step_done(s);
}

static int
sq_key_release(store *st, int64_t id)
{
    return run_id(st, S_KEY_RELEASE, id);
}

/* sq_job_end: store_job_end in three statements where the composition of store.c takes five:
 * the finish, its history row, then one read of what the end leaves to do; the held keys are
 * deleted only when there are some, and jobs waiting for it are looked up by the caller only
 * when there are some (as jobq_end does on PostgreSQL). */
static int
sq_job_end(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
           const char *result, const char *error, const attempt_rec *a, int64_t *gidp, bool *kidsp)
{
    bool end = store_state_ends(new_state);
    int err = sq_job_finish(st, id, new_state, end ? now_ms : 0,
                            new_state == JOBQ_RETRYING ? run_at_ms : 0, result, error);
    if (err == JOBQ_OK && a != NULL) {
        err = sq_attempt_add(st, id, a, now_ms, error);
    }
    if (err != JOBQ_OK || !end) {
        return err;
    }
    bool keys = false;
    err = scan_one(stmt_id(st, S_END_AFTER, id), "jbb", gidp, &keys, kidsp);
    if (err == JOBQ_OK && keys) {
        err = sq_key_release(st, id);
    }
    return err;
}

static int
sq_job_replace(store *st, int64_t id, int from, int to, const char *payload, int64_t run_at_ms)
{
    sqlite3_stmt *s = stmt_id(st, S_REPLACE, id);
    sqlite3_bind_int(s, 2, from);
    sqlite3_bind_int(s, 3, to);
    sqlite3_bind_text(s, 4, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, run_at_ms);
    return step_change(st, s);
}

static int
sq_job_set_expiry(store *st, int64_t id, int64_t at_ms)
{
    return run_id_i64(st, S_SET_EXPIRY, id, at_ms);
}

static int
sq_job_expiry(store *st, int64_t id, int64_t *at_msp)
{
    return one_int64(stmt_id(st, S_EXPIRY, id), at_msp);
}

static int
sq_expired(store *st, const char *queue, int64_t now_ms, size_t max, int64_t *ids, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_EXPIRED);
    bind_text_or_null(s, 1, queue);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    return read_list(s, &id_type, ids, max, np, NULL);
}

static int
sq_next_expiry(store *st, int64_t *atp)
{
    return oldest(stmt_get(st, S_NEXT_EXPIRY), atp);
}

static int
sq_job_snooze(store *st, int64_t id, int64_t run_at_ms, const char *error)
{
    sqlite3_stmt *s = stmt_id(st, S_SNOOZE, id);
    sqlite3_bind_int64(s, 2, run_at_ms);
    bind_text_or_null(s, 3, error);
    return step_change(st, s);
}

static int
sq_dep_add(store *st, int64_t parent, int64_t child)
{
    return run_id_i64(st, S_DEP_INSERT, parent, child);
}

static int
sq_dep_children(store *st, int64_t parent, int64_t **idsp, size_t *np)
{
    return read_all(stmt_id(st, S_DEP_CHILDREN, parent), &id_type, idsp, np);
}

static int
sq_dep_drop_parent(store *st, int64_t parent)
{
    return run_id(st, S_DEP_DELETE_PARENT, parent);
}

static int
sq_dep_drop_child(store *st, int64_t id)
{
    return run_id(st, S_DEP_DELETE_JOB, id);
}

static int
sq_dep_pending(store *st, int64_t id, bool *waitsp)
{
    sqlite3_stmt *s = stmt_id(st, S_DEP_REMAINING, id);
    int err = step_row(s);
    if (err == JOBQ_OK) {
        stmt_done(s);
    }
    if (err == JOBQ_OK || err == JOBQ_ENOENT) {
        *waitsp = err == JOBQ_OK;
        err = JOBQ_OK;
    }
    return err;
}

static int
sq_dep_job(store *st, int64_t id, int *statep, bool *alwaysp, int64_t *run_at_msp)
{
    return scan_one(stmt_id(st, S_CHILD_INFO, id), "ibj", statep, alwaysp, run_at_msp);
}

static int
sq_group_of(store *st, int64_t id, int64_t *gidp)
{
    return one_int64(stmt_id(st, S_GROUP_OF, id), gidp); /* NULL reads as 0 */
}

static int
sq_group_ended(store *st, int64_t gid, group_oc *oc)
{
    group_oc o = {0};
    int err = scan_one(stmt_id(st, S_GROUP_ENDED, gid), "ssiij", &o.queue, &o.payload, &o.priority,
                       &o.max_attempts, &o.timeout_ms);
    if (err == JOBQ_OK) {
        *oc = o;
    }
    return err;
}

static int
sq_group_complete(store *st, int64_t gid, int64_t now_ms, int64_t oc_job_id)
{
    sqlite3_stmt *s = stmt_id(st, S_GROUP_DONE, gid);
    sqlite3_bind_int64(s, 2, now_ms);
    bind_int64_or_null(s, 3, oc_job_id);
    return step_done(s);
}

static int
sq_schedule_set(store *st, const char *name, int64_t tick_ms)
{
    return run_text_i64(st, S_SCHED_SET, name, tick_ms);
}

/* ---- parents' results ---- */

static int
sq_parents_add(store *st, int64_t child, int64_t parent)
{
    return run_id_i64(st, S_PARENTS_ADD, child, parent);
}

static int
sq_parents_settle(store *st, int64_t parent)
{
    return run_id(st, S_PARENTS_SETTLE, parent);
}

static int
sq_parents_of(store *st, const int64_t *ids, size_t n,
              void (*fn)(void *arg, int64_t id, int64_t parent, const char *result), void *arg)
{
    sqlite3_stmt *s = stmt_get(st, S_PARENTS_OF);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(s, 1, ids[i]);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            fn(arg, ids[i], sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1));
        }
        stmt_done(s);
        if (rc != SQLITE_DONE) {
            return from_sqlite(rc);
        }
    }
    return JOBQ_OK;
}

/* ---- schedules managed at runtime ---- */

static int
sq_sdef_list(store *st, sched_def **defsp, size_t *np)
{
    return read_all(stmt_get(st, S_SDEF_LIST), &sdef_type, defsp, np);
}

static int
sq_sdef_put(store *st, const sched_def *d, int64_t now_ms)
{
    sqlite3_stmt *s = stmt_text(st, S_SDEF_PUT, d->name);
    sqlite3_bind_text(s, 2, d->cron, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, d->timezone, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, d->queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, d->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, d->priority);
    sqlite3_bind_int(s, 7, d->missed_skip);
    sqlite3_bind_int(s, 8, d->overlap_skip);
    sqlite3_bind_int64(s, 9, now_ms);
    return step_done(s);
}

static int
sq_sdef_delete(store *st, const char *name)
{
    int err = step_change(st, stmt_text(st, S_SDEF_DELETE, name));
    if (err == JOBQ_ESTATE) {
        return JOBQ_ENOENT;
    }
    for (int k = 0; err == JOBQ_OK && k < 2; k++) {
        err = step_done(stmt_text(st, k == 0 ? S_SSTATE_DELETE : S_SCHED_DELETE, name));
    }
    return err;
}

static int
sq_sstate_get(store *st, const char *name, bool *pausedp, int64_t *last_jobp)
{
    return scan_one(stmt_text(st, S_SSTATE_GET, name), "bj", pausedp, last_jobp);
}

static int
sq_sstate_set_paused(store *st, const char *name, bool paused)
{
    return run_text_i64(st, S_SSTATE_PAUSED, name, paused);
}

static int
sq_sstate_set_job(store *st, const char *name, int64_t job_id)
{
    return run_text_i64(st, S_SSTATE_JOB, name, job_id);
}

static const store_ops sqlite_ops = {
    .set_sync = sq_set_sync,
    .sync_apart = sq_sync_apart,
    .sync = sq_sync,
    .checkpoint = sq_checkpoint,
    .close = sq_close,
    .errmsg = sq_errmsg,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_savepoint = sq_rollback_savepoint,
    .in_transaction = sq_in_transaction,
    .job_insert = sq_job_insert,
    .job_state = sq_job_state,
    .job_set_state = sq_job_set_state,
    .get = sq_get,
    .list = sq_list,
    .count_each = sq_count_each,
    .paused_each = sq_paused_each,
    .set_paused = sq_set_paused,
    .claim = sq_claim,
    .running = sq_running,
    .job_finish = sq_job_finish,
    .job_end = sq_job_end,
    .requeue = sq_requeue,
    .promote_due = sq_promote_due,
    .next_due = sq_next_due,
    .retry = sq_retry,
    .retry_bulk = sq_retry_bulk,
    .ready_ahead = sq_ready_ahead,
    .attempt_add = sq_attempt_add,
    .attempt_count = sq_attempt_count,
    .attempts = sq_attempts,
    .job_progress = sq_job_progress,
    .log_append = sq_log_append,
    .logs = sq_logs,
    .key_find = sq_key_find,
    .key_add = sq_key_add,
    .key_delete = sq_key_delete,
    .dep_add = sq_dep_add,
    .dep_children = sq_dep_children,
    .dep_drop_parent = sq_dep_drop_parent,
    .dep_drop_child = sq_dep_drop_child,
    .dep_pending = sq_dep_pending,
    .dep_job = sq_dep_job,
    .waiting_for = sq_waiting_for,
    .sweep = sq_sweep,
    .sweep_groups = sq_sweep_groups,
    .sweep_keys = sq_sweep_keys,
    .oldest_finished = sq_oldest_finished,
    .oldest_due = sq_oldest_due,
    .oldest_key = sq_oldest_key,
    .recent = sq_recent,
    .group_create = sq_group_create,
    .group_of = sq_group_of,
    .group_ended = sq_group_ended,
    .group_complete = sq_group_complete,
    .group_get = sq_group_get,
    .schedule_last = sq_schedule_last,
    .schedule_set = sq_schedule_set,
    .schedule_since = sq_schedule_since,
    .claim_keys = sq_claim_keys,
    .key_running = sq_key_running,
    .key_hold = sq_key_hold,
    .max_id = sq_max_id,
    .pick = sq_pick,
    .job_delete = sq_job_delete,
    .job_set_priority = sq_job_set_priority,
    .job_set_run_at = sq_job_set_run_at,
    .parents_add = sq_parents_add,
    .parents_settle = sq_parents_settle,
    .parents_of = sq_parents_of,
    .sdef_list = sq_sdef_list,
    .sdef_put = sq_sdef_put,
    .sdef_delete = sq_sdef_delete,
    .sstate_get = sq_sstate_get,
    .sstate_set_paused = sq_sstate_set_paused,
    .sstate_set_job = sq_sstate_set_job,
    .key_lock = sq_key_lock,
    .key_put = sq_key_put,
    .key_release = sq_key_release,
    .job_replace = sq_job_replace,
    .job_set_expiry = sq_job_set_expiry,
    .job_expiry = sq_job_expiry,
    .expired = sq_expired,
    .next_expiry = sq_next_expiry,
    .job_snooze = sq_job_snooze,
};
