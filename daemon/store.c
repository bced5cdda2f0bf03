/* store.c: the SQLite job store: every SQL statement of jobqd, prepared once. */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"

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
    S_GET,
    S_CANCEL,
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
    S_RECOVER,
    S_KEY_DELETE,
    S_ATTEMPT_INSERT,
    S_ATTEMPTS,
    S_RUNNING,
    S_CRASHES,
    S_POISON,
    S_RETRY,
    S_RETRY_BULK,
    S_SWEEP,
    S_SWEEP_ATTEMPTS,
    S_SWEEP_KEYS,
    S_AHEAD,
    S_OLDEST_FINISHED,
    S_OLDEST_KEY,
    S_RECENT,
    S_DEP_INSERT,
    S_DEP_CHILDREN,
    S_DEP_DELETE_PARENT,
    S_DEP_DELETE_JOB,
    S_DEP_REMAINING,
    S_DEP_PARENTS,
    S_CHILD_INFO,
    S_CHILD_CANCEL,
    S_CHILD_RELEASE,
    S_GROUP_OF,
    S_GROUP_INSERT,
    S_GROUP_OPEN,
    S_GROUP_OUTCOME,
    S_GROUP_DONE,
    S_GROUP_GET,
    S_GROUP_COUNTS,
    S_GROUP_MEMBERS,
    S_SCHED_LAST,
    S_SCHED_SET,
    S_SWEEP_GROUPS,
    S_SET_ERROR,
    S_COUNT_STMTS
};

#define JOB_COLS                                                                                   \
    "id, queue, payload, priority, state, run_at, attempt, max_attempts, timeout_ms, key, "        \
    "result, error, created_at, started_at, finished_at, group_id"

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
                 "timeout_ms, key, created_at, group_id, after_always, error, finished_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [S_STATE_OF] = "SELECT state FROM jobs WHERE id = ?1",
    [S_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [S_CANCEL] = "UPDATE jobs SET state = 6, finished_at = ?2 WHERE id = ?1",
    [S_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR queue = ?1) AND "
               "(?2 < 0 OR state = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
    [S_COUNT] = "SELECT queue, state, count(*) FROM jobs GROUP BY state, queue",
    [S_PAUSED] = "SELECT name FROM queues WHERE paused = 1",
    [S_SET_PAUSED] = "INSERT INTO queues (name, paused) VALUES (?1, ?2) "
                     "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    [S_CLAIM_PICK] = "SELECT " JOB_COLS " FROM jobs INDEXED BY jobs_ready WHERE queue = ?1 AND "
                     "state = 1 ORDER BY priority DESC, run_at, id LIMIT ?2",
    [S_CLAIM_MARK] = "UPDATE jobs SET state = 2, attempt = attempt + 1, started_at = ?2, "
                     "finished_at = NULL WHERE id = ?1",
    [S_FINISH] = "UPDATE jobs SET state = ?2, run_at = CASE WHEN ?2 = 3 THEN ?4 ELSE run_at END,"
                 " finished_at = CASE WHEN ?2 IN (4, 5, 6) THEN ?3 ELSE NULL END, "
                 "result = ?5, error = ?6 WHERE id = ?1 AND state = 2",
    [S_REQUEUE] = "UPDATE jobs SET state = 1, attempt = max(attempt - 1, 0), error = ?2 "
                  "WHERE id = ?1 AND state = 2",
    [S_DUE_PICK] = "SELECT id, queue, state FROM jobs INDEXED BY jobs_due WHERE state IN (0, 3) "
                   "AND run_at <= ?1 ORDER BY run_at LIMIT ?2",
    [S_DUE_MARK] = "UPDATE jobs SET state = 1 WHERE id = ?1",
    [S_NEXT_DUE] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN (0, 3)",
    [S_RECOVER] = "UPDATE jobs SET state = 1, error = ?2 WHERE id = ?1",
    [S_KEY_DELETE] = "DELETE FROM job_keys WHERE queue = ?1 AND key = ?2",
    [S_ATTEMPT_INSERT] = "INSERT INTO attempts (job_id, attempt, started_at, finished_at, kind, "
                         "error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ATTEMPTS] = "SELECT attempt, started_at, finished_at, kind, error FROM attempts "
                   "WHERE job_id = ?1 ORDER BY started_at, rowid LIMIT ?2",
    [S_RUNNING] = "SELECT id, queue, attempt, started_at FROM jobs WHERE state = 2",
    [S_CRASHES] = "SELECT count(*) FROM attempts WHERE job_id = ?1 AND kind = 'crash'",
    [S_POISON] = "UPDATE jobs SET state = 5, finished_at = ?2, error = ?3 WHERE id = ?1",
    [S_RETRY] = "UPDATE jobs SET state = 1, attempt = 0, run_at = ?2, finished_at = NULL, "
                "result = NULL WHERE id = ?1 AND state IN (5, 6)",
    [S_RETRY_BULK] = "UPDATE jobs SET state = 1, attempt = 0, run_at = ?3, finished_at = NULL, "
                     "result = NULL WHERE id IN (SELECT id FROM jobs WHERE state = ?2 AND "
                     "(?1 IS NULL OR queue = ?1) ORDER BY id LIMIT ?4) RETURNING queue",
    [S_SWEEP] = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_finished "
                "WHERE queue = ?1 AND state = ?2 AND state IN (4, 5, 6) AND finished_at < ?3 "
                "LIMIT ?4) RETURNING id",
    [S_SWEEP_ATTEMPTS] = "DELETE FROM attempts WHERE job_id = ?1",
    [S_SWEEP_KEYS] = "DELETE FROM job_keys WHERE (queue, key) IN (SELECT queue, key FROM "
                     "job_keys INDEXED BY job_keys_age WHERE queue = ?1 AND created_at < ?2 "
                     "LIMIT ?3)",
    [S_AHEAD] = "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_ready WHERE queue = ?1 "
                "AND state = 1 AND (priority > ?2 OR (priority = ?2 AND (run_at < ?3 OR "
                "(run_at = ?3 AND id < ?4)))) LIMIT ?5)",
    [S_OLDEST_FINISHED] = "SELECT min(finished_at) FROM jobs INDEXED BY jobs_finished WHERE "
                          "queue = ?1 AND state = ?2 AND state IN (4, 5, 6)",
    [S_OLDEST_KEY] = "SELECT min(created_at) FROM job_keys INDEXED BY job_keys_age WHERE "
                     "queue = ?1",
    [S_RECENT] = "SELECT " JOB_COLS " FROM jobs INDEXED BY jobs_finished WHERE queue = ?1 AND "
                 "state = ?2 AND state IN (4, 5, 6) ORDER BY finished_at DESC LIMIT ?3",
    [S_DEP_INSERT] = "INSERT OR IGNORE INTO job_deps (parent_id, job_id) VALUES (?1, ?2)",
    [S_DEP_CHILDREN] = "SELECT job_id FROM job_deps WHERE parent_id = ?1",
    [S_DEP_DELETE_PARENT] = "DELETE FROM job_deps WHERE parent_id = ?1",
    [S_DEP_DELETE_JOB] = "DELETE FROM job_deps WHERE job_id = ?1",
    [S_DEP_REMAINING] = "SELECT 1 FROM job_deps WHERE job_id = ?1 LIMIT 1",
    [S_DEP_PARENTS] = "SELECT parent_id FROM job_deps WHERE job_id = ?1 ORDER BY parent_id "
                      "LIMIT ?2",
    [S_CHILD_INFO] = "SELECT state, after_always, run_at FROM jobs WHERE id = ?1",
    [S_CHILD_CANCEL] = "UPDATE jobs SET state = 6, finished_at = ?2, error = ?3 WHERE id = ?1 "
                       "AND state = 7",
    [S_CHILD_RELEASE] = "UPDATE jobs SET state = ?2 WHERE id = ?1 AND state = 7",
    [S_GROUP_OF] = "SELECT group_id FROM jobs WHERE id = ?1",
    [S_GROUP_INSERT] = "INSERT INTO groups (size, created_at, oc_queue, oc_payload, oc_priority, "
                       "oc_max_attempts, oc_timeout_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_GROUP_OPEN] = "SELECT oc_queue, oc_payload, oc_priority, oc_max_attempts, oc_timeout_ms "
                     "FROM groups WHERE id = ?1 AND completed_at IS NULL AND NOT EXISTS (SELECT 1 "
                     "FROM jobs WHERE group_id = ?1 AND state NOT IN (4, 5, 6))",
    [S_GROUP_OUTCOME] =
        "SELECT json_object('group', ?1, 'payload', json(?2), "
        "'succeeded', (SELECT count(*) FROM jobs WHERE group_id = ?1 AND state = 4), "
        "'dead', (SELECT count(*) FROM jobs WHERE group_id = ?1 AND state = 5), "
        "'cancelled', (SELECT count(*) FROM jobs WHERE group_id = ?1 AND state = 6), "
        "'members', (SELECT json_group_array(json_object('id', id, 'state', CASE state WHEN 4 "
        "THEN 'succeeded' WHEN 5 THEN 'dead' ELSE 'cancelled' END)) FROM (SELECT id, state FROM "
        "jobs WHERE group_id = ?1 ORDER BY id)))",
    [S_GROUP_DONE] = "UPDATE groups SET completed_at = ?2, oc_job_id = ?3 WHERE id = ?1",
    [S_GROUP_GET] = "SELECT size, created_at, completed_at, oc_queue, oc_job_id FROM groups "
                    "WHERE id = ?1",
    [S_GROUP_COUNTS] = "SELECT state, count(*) FROM jobs WHERE group_id = ?1 GROUP BY state",
    [S_GROUP_MEMBERS] =
        "SELECT id, state, attempt, error FROM jobs WHERE group_id = ?1 ORDER BY id",
    [S_SWEEP_GROUPS] = "DELETE FROM groups WHERE id IN (SELECT id FROM groups INDEXED BY "
                       "groups_completed WHERE completed_at IS NOT NULL AND completed_at < ?1 AND "
                       "NOT EXISTS (SELECT 1 FROM jobs WHERE group_id = groups.id) LIMIT ?2)",
    [S_SCHED_LAST] = "SELECT last_tick FROM schedules WHERE name = ?1",
    [S_SCHED_SET] = "INSERT INTO schedules (name, last_tick) VALUES (?1, ?2) ON CONFLICT (name) "
                    "DO UPDATE SET last_tick = excluded.last_tick",
    [S_SET_ERROR] = "UPDATE jobs SET error = ?2 WHERE id = ?1",
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT_STMTS];
    store_effect *effects; /* changes made besides the ones asked for (see store.h) */
    size_t neffects;
    size_t capeffects;
    int64_t missing_parent; /* the "after" id a failed insert did not find */
    bool full;              /* durability full: commits fsync unless store_set_sync says not */
    bool syncing;           /* PRAGMA synchronous is FULL now */
};

/* Prepared statements are reset and unbound after each use so they hold no read lock. */
static sqlite3_stmt *
stmt_get(store *st, enum stmt_id id)
{
    return st->stmt[id];
}

static void
stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int
store_from_sqlite(int rc)
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

const char *
store_errmsg(const store *st)
{
    return st != NULL && st->db != NULL ? sqlite3_errmsg(st->db) : "no database";
}

void
job_row_clear(job_row *row)
{
    free(row->queue);
    free(row->payload);
    free(row->key);
    free(row->result);
    free(row->error);
    memset(row, 0, sizeof(*row));
}

static char *
col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t == NULL ? NULL : strdup((const char *)t);
}

/* read_row: fills row from the JOB_COLS columns of s. */
static int
read_row(sqlite3_stmt *s, job_row *row)
{
    memset(row, 0, sizeof(*row));
    row->id = sqlite3_column_int64(s, 0);
    row->queue = col_text(s, 1);
    row->payload = col_text(s, 2);
    row->priority = sqlite3_column_int(s, 3);
    row->state = sqlite3_column_int(s, 4);
    row->run_at_ms = sqlite3_column_int64(s, 5);
    row->attempt = sqlite3_column_int(s, 6);
    row->max_attempts = sqlite3_column_int(s, 7);
    row->timeout_ms = sqlite3_column_int64(s, 8);
    row->key = col_text(s, 9);
    row->result = col_text(s, 10);
    row->error = col_text(s, 11);
    row->created_at_ms = sqlite3_column_int64(s, 12);
    row->started_at_ms = sqlite3_column_int64(s, 13);
    row->finished_at_ms = sqlite3_column_int64(s, 14);
    row->group_id = sqlite3_column_int64(s, 15);
    if (row->queue == NULL || row->payload == NULL) {
        job_row_clear(row);
        return JOBQ_ENOMEM;
    }
    return JOBQ_OK;
}

/* exec_simple: steps a statement without parameters or rows. */
static int
exec_simple(store *st, enum stmt_id id)
{
    sqlite3_stmt *s = stmt_get(st, id);
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

/* step_change: steps an UPDATE that must change exactly one row: JOBQ_ESTATE when it
 * changed none (the row was not in the state the WHERE asks for). */
static int
step_change(store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return store_from_sqlite(rc);
    }
    return sqlite3_changes(st->db) == 1 ? JOBQ_OK : JOBQ_ESTATE;
}

/* bind_text_or_null: binds text, or leaves NULL bound for a NULL pointer. */
static void
bind_text_or_null(sqlite3_stmt *s, int i, const char *text)
{
    if (text != NULL) {
        sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
    }
}

/* read_rows_more: steps s (selecting JOB_COLS) into up to max rows; on failure clears them.
 * With morep, one step more tells whether s has a row after the max-th. */
static int
read_rows_more(sqlite3_stmt *s, job_row *rows, size_t max, size_t *np, bool *morep)
{
    size_t n = 0;
    bool more = false;
    int rc = SQLITE_DONE, err = JOBQ_OK;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((err = read_row(s, &rows[n])) != JOBQ_OK) {
            break;
        }
        n++;
    }
    if (err == JOBQ_OK && n < max && rc != SQLITE_DONE) {
        err = store_from_sqlite(rc);
    }
    if (morep != NULL && err == JOBQ_OK && n == max) {
        rc = sqlite3_step(s);
        more = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
        }
    }
    stmt_done(s);
    if (err != JOBQ_OK) {
        while (n > 0) {
            job_row_clear(&rows[--n]);
        }
        return err;
    }
    *np = n;
    if (morep != NULL) {
        *morep = more;
    }
    return JOBQ_OK;
}

/* read_rows: read_rows_more without looking past the max-th row. */
static int
read_rows(sqlite3_stmt *s, job_row *rows, size_t max, size_t *np)
{
    return read_rows_more(s, rows, max, np, NULL);
}

int
store_open(const char *path, enum durability durability, store **stp, char *err, size_t errlen)
{
    store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return JOBQ_ENOMEM;
    }
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);
    const char *pragmas = durability == DURABILITY_FULL
                              ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                              : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";
    char *msg = NULL;
    rc = sqlite3_exec(st->db, pragmas, NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(st->db,
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
    st->full = st->syncing = durability == DURABILITY_FULL;
    if (migrate_apply(st->db, err, errlen) != 0) {
        goto fail;
    }
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                                NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    *stp = st;
    return JOBQ_OK;
fail:
    store_close(st);
    return JOBQ_ESTORE;
}

void
store_close(store *st)
{
    if (st == NULL) {
        return;
    }
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        sqlite3_finalize(st->stmt[i]);
    }
    store_effects_free(st->effects, st->neffects);
    if (st->db != NULL) {
        /* sqlite3_close checkpoints too, but says nothing when that fails. */
        int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK) {
            log_error("store_checkpoint_failed",
                      "err=\"%s\" reason=\"the WAL file keeps every commit; the next start "
                      "reads it\"",
                      sqlite3_errmsg(st->db));
        }
        rc = sqlite3_close(st->db);
        if (rc != SQLITE_OK) {
            log_error("store_close", "err=%d", rc);
        }
    }
    free(st);
}

void
store_set_sync(store *st, bool sync)
{
    sync = sync && st->full;
    if (sync == st->syncing) {
        return;
    }
    /* WAL mode: FULL fsyncs the WAL at each commit; NORMAL only at checkpoints. */
    int rc = sqlite3_exec(st->db, sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        st->syncing = sync;
    } else if (!sync) {
        return; /* still FULL: safe, only slower */
    } else {
        log_error("store_sync_mode", "err=\"%s\" reason=\"cannot turn fsync back on\"",
                  sqlite3_errmsg(st->db));
    }
}

int
store_begin(store *st)
{
    return exec_simple(st, S_BEGIN);
}

int
store_commit(store *st)
{
    return exec_simple(st, S_COMMIT);
}

void
store_rollback(store *st)
{
    if (!sqlite3_get_autocommit(st->db)) {
        (void)exec_simple(st, S_ROLLBACK);
    }
}

bool
store_in_transaction(const store *st)
{
    return !sqlite3_get_autocommit(st->db);
}

int
store_savepoint(store *st)
{
    return exec_simple(st, S_SAVEPOINT);
}

void
store_release(store *st)
{
    (void)exec_simple(st, S_RELEASE);
}

void
store_rollback_savepoint(store *st)
{
    (void)exec_simple(st, S_ROLLBACK_TO);
    (void)exec_simple(st, S_RELEASE);
}

/* ---- effects ---- */

size_t
store_effects_mark(const store *st)
{
    return st->neffects;
}

void
store_effects_free(store_effect *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].queue);
        job_row_clear(&e[i].row);
    }
    free(e);
}

void
store_effects_undo(store *st, size_t mark)
{
    while (st->neffects > mark) {
        store_effect *e = &st->effects[--st->neffects];
        free(e->queue);
        job_row_clear(&e->row);
    }
}

store_effect *
store_effects_take(store *st, size_t *np)
{
    store_effect *e = st->effects;
    *np = st->neffects;
    st->effects = NULL;
    st->neffects = st->capeffects = 0;
    return e;
}

/* effect_add: a new zeroed effect, or NULL when out of memory. */
static store_effect *
effect_add(store *st, effect_kind kind, int64_t id)
{
    if (st->neffects == st->capeffects) {
        size_t cap = st->capeffects ? st->capeffects * 2 : 16;
        store_effect *grown = realloc(st->effects, cap * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        st->effects = grown;
        st->capeffects = cap;
    }
    store_effect *e = &st->effects[st->neffects++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->id = id;
    e->from = -1;
    return e;
}

static int state_of(store *st, int64_t id);

/* step_done: steps a statement that returns no rows, and resets it. */
static int
step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

/* job_effect: records that job id went from `from` to `to`; an ended job carries its row. */
static int
job_effect(store *st, int64_t id, int from, int to, int64_t run_at_ms)
{
    job_row row;
    int err = store_get(st, id, &row);
    if (err != JOBQ_OK) {
        return err;
    }
    store_effect *e = effect_add(st, EFFECT_JOB, id);
    if (e == NULL) {
        job_row_clear(&row);
        return JOBQ_ENOMEM;
    }
    e->from = from;
    e->to = to;
    e->run_at_ms = run_at_ms;
    e->queue = row.queue;
    row.queue = NULL;
    if (to == JOBQ_SUCCEEDED || to == JOBQ_DEAD || to == JOBQ_CANCELLED) {
        e->row = row;
        e->row.queue = strdup(e->queue);
        if (e->row.queue == NULL) {
            return JOBQ_ENOMEM; /* the whole operation is undone, effects too */
        }
    } else {
        job_row_clear(&row);
    }
    return JOBQ_OK;
}

/* release_children: parent ended in pstate: each job waiting for it is released (when it
 * waits for nothing else) or cancelled; cancelled ones are pushed on the work list. */
static int
release_children(store *st, int64_t parent, int pstate, int64_t now_ms, int64_t **work,
                 int **wstates, size_t *nwork, size_t *capwork)
{
    sqlite3_stmt *s = stmt_get(st, S_DEP_CHILDREN);
    sqlite3_bind_int64(s, 1, parent);
    int64_t *kids = NULL;
    size_t nkids = 0, cap = 0;
    int rc, err = JOBQ_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (nkids == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *grown = realloc(kids, cap * sizeof(*kids));
            if (grown == NULL) {
                err = JOBQ_ENOMEM;
                break;
            }
            kids = grown;
        }
        kids[nkids++] = sqlite3_column_int64(s, 0);
    }
    if (err == JOBQ_OK && rc != SQLITE_DONE) {
        err = store_from_sqlite(rc);
    }
    stmt_done(s);
    if (err == JOBQ_OK && nkids > 0) {
        s = stmt_get(st, S_DEP_DELETE_PARENT);
        sqlite3_bind_int64(s, 1, parent);
        err = step_done(s);
    }
    for (size_t i = 0; i < nkids && err == JOBQ_OK; i++) {
        int64_t kid = kids[i];
        s = stmt_get(st, S_CHILD_INFO);
        sqlite3_bind_int64(s, 1, kid);
        if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
            stmt_done(s);
            err = rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
            continue; /* deleted meanwhile */
        }
        int kstate = sqlite3_column_int(s, 0);
        bool always = sqlite3_column_int(s, 1) != 0;
        int64_t run_at = sqlite3_column_int64(s, 2);
        stmt_done(s);
        if (kstate != JOBQ_WAITING) {
            continue;
        }
        if (pstate != JOBQ_SUCCEEDED && !always) {
            char why[160];
            snprintf(why, sizeof(why), "parent job %lld ended %s", (long long)parent,
                     pstate == JOBQ_DEAD ? "dead" : "cancelled");
            s = stmt_get(st, S_CHILD_CANCEL);
            sqlite3_bind_int64(s, 1, kid);
            sqlite3_bind_int64(s, 2, now_ms);
            sqlite3_bind_text(s, 3, why, -1, SQLITE_TRANSIENT);
            if ((err = step_done(s)) != JOBQ_OK) {
                break;
            }
            s = stmt_get(st, S_DEP_DELETE_JOB);
            sqlite3_bind_int64(s, 1, kid);
            if ((err = step_done(s)) != JOBQ_OK ||
                (err = job_effect(st, kid, JOBQ_WAITING, JOBQ_CANCELLED, run_at)) != JOBQ_OK) {
                break;
            }
            if (*nwork == *capwork) {
                size_t c2 = *capwork ? *capwork * 2 : 8;
                int64_t *g1 = realloc(*work, c2 * sizeof(**work));
                if (g1 != NULL) {
                    *work = g1;
                }
                int *g2 = g1 != NULL ? realloc(*wstates, c2 * sizeof(**wstates)) : NULL;
                if (g2 == NULL) {
                    err = JOBQ_ENOMEM;
                    break;
                }
                *wstates = g2;
                *capwork = c2;
            }
            (*work)[*nwork] = kid;
            (*wstates)[(*nwork)++] = JOBQ_CANCELLED;
            continue;
        }
        s = stmt_get(st, S_DEP_REMAINING);
        sqlite3_bind_int64(s, 1, kid);
        rc = sqlite3_step(s);
        stmt_done(s);
        if (rc == SQLITE_ROW) {
            continue; /* still waits for another parent */
        }
        if (rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
            break;
        }
        int to = run_at > now_ms ? JOBQ_SCHEDULED : JOBQ_READY;
        s = stmt_get(st, S_CHILD_RELEASE);
        sqlite3_bind_int64(s, 1, kid);
        sqlite3_bind_int(s, 2, to);
        if ((err = step_done(s)) != JOBQ_OK ||
            (err = job_effect(st, kid, JOBQ_WAITING, to, run_at)) != JOBQ_OK) {
            break;
        }
    }
    free(kids);
    return err;
}

/* ended: job id has just ended in state (succeeded, dead or cancelled), in this
 * transaction: release or cancel the jobs that wait for it, and settle its group; the same
 * for every job that cancels in turn. */
static int
ended(store *st, int64_t id, int state, int64_t now_ms)
{
    int64_t *work = malloc(sizeof(*work));
    int *wstates = malloc(sizeof(*wstates));
    size_t nwork = 1, capwork = 1;
    int err = JOBQ_OK;
    if (work == NULL || wstates == NULL) {
        free(work);
        free(wstates);
        return JOBQ_ENOMEM;
    }
    work[0] = id;
    wstates[0] = state;
    while (nwork > 0 && err == JOBQ_OK) {
        nwork--;
        int64_t jid = work[nwork];
        int jstate = wstates[nwork];
        err = release_children(st, jid, jstate, now_ms, &work, &wstates, &nwork, &capwork);
        if (err != JOBQ_OK) {
            break;
        }
        sqlite3_stmt *s = stmt_get(st, S_GROUP_OF);
        sqlite3_bind_int64(s, 1, jid);
        int rc = sqlite3_step(s);
        int64_t gid = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        stmt_done(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
        } else if (gid != 0) {
            err = store_group_settle(st, gid, now_ms);
        }
    }
    free(work);
    free(wstates);
    return err;
}

int
store_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp)
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
    int err = step_done(s);
    if (err == JOBQ_OK) {
        *gidp = sqlite3_last_insert_rowid(st->db);
    }
    return err;
}

int
store_group_settle(store *st, int64_t gid, int64_t now_ms)
{
    sqlite3_stmt *s = stmt_get(st, S_GROUP_OPEN);
    sqlite3_bind_int64(s, 1, gid);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        stmt_done(s);
        return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc); /* done, or still open */
    }
    char *oc_queue = col_text(s, 0);
    char *oc_payload = col_text(s, 1);
    job_spec spec = {.queue = oc_queue,
                     .priority = sqlite3_column_int(s, 2),
                     .max_attempts = sqlite3_column_int(s, 3),
                     .timeout_ms = sqlite3_column_int64(s, 4),
                     .run_at_ms = now_ms};
    stmt_done(s);
    int err = JOBQ_OK;
    int64_t oc_id = 0;
    char *payload = NULL;
    if (oc_queue != NULL) {
        s = stmt_get(st, S_GROUP_OUTCOME);
        sqlite3_bind_int64(s, 1, gid);
        sqlite3_bind_text(s, 2, oc_payload != NULL ? oc_payload : "null", -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        payload = rc == SQLITE_ROW ? col_text(s, 0) : NULL;
        stmt_done(s);
        if (rc != SQLITE_ROW) {
            err = store_from_sqlite(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
        } else if (payload == NULL) {
            err = JOBQ_ENOMEM;
        }
        if (err == JOBQ_OK) {
            spec.payload = payload;
            bool dup;
            int state;
            err = store_insert(st, &spec, now_ms, &oc_id, &dup, &state);
            store_effect *e = err == JOBQ_OK ? effect_add(st, EFFECT_JOB, oc_id) : NULL;
            if (err == JOBQ_OK && (e == NULL || (e->queue = strdup(oc_queue)) == NULL)) {
                err = JOBQ_ENOMEM;
            } else if (e != NULL) {
                e->to = state;
                e->run_at_ms = now_ms;
            }
        }
    }
    if (err == JOBQ_OK) {
        s = stmt_get(st, S_GROUP_DONE);
        sqlite3_bind_int64(s, 1, gid);
        sqlite3_bind_int64(s, 2, now_ms);
        if (oc_id != 0) {
            sqlite3_bind_int64(s, 3, oc_id);
        }
        err = step_done(s);
    }
    if (err == JOBQ_OK && effect_add(st, EFFECT_GROUP, gid) == NULL) {
        err = JOBQ_ENOMEM;
    }
    free(payload);
    free(oc_queue);
    free(oc_payload);
    return err;
}

void
group_info_clear(group_info *g)
{
    for (size_t i = 0; i < g->nmembers; i++) {
        free(g->members[i].error);
    }
    free(g->members);
    free(g->oc_queue);
    memset(g, 0, sizeof(*g));
}

int
store_group_get(store *st, int64_t gid, bool members, group_info *g)
{
    memset(g, 0, sizeof(*g));
    sqlite3_stmt *s = stmt_get(st, S_GROUP_GET);
    sqlite3_bind_int64(s, 1, gid);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        stmt_done(s);
        return rc == SQLITE_DONE ? JOBQ_ENOENT : store_from_sqlite(rc);
    }
    g->id = gid;
    g->size = sqlite3_column_int64(s, 0);
    g->created_at_ms = sqlite3_column_int64(s, 1);
    g->completed_at_ms = sqlite3_column_int64(s, 2);
    g->oc_queue = col_text(s, 3);
    g->oc_job_id = sqlite3_column_int64(s, 4);
    stmt_done(s);
    s = stmt_get(st, S_GROUP_COUNTS);
    sqlite3_bind_int64(s, 1, gid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int state = sqlite3_column_int(s, 0);
        if (state >= 0 && state <= JOBQ_WAITING) {
            g->counts[state] = sqlite3_column_int64(s, 1);
        }
    }
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        group_info_clear(g);
        return store_from_sqlite(rc);
    }
    if (!members) {
        return JOBQ_OK;
    }
    s = stmt_get(st, S_GROUP_MEMBERS);
    sqlite3_bind_int64(s, 1, gid);
    size_t cap = 0;
    int err = JOBQ_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (g->nmembers == cap) {
            cap = cap ? cap * 2 : 64;
            group_member *grown = realloc(g->members, cap * sizeof(*grown));
            if (grown == NULL) {
                err = JOBQ_ENOMEM;
                break;
            }
            g->members = grown;
        }
        group_member *m = &g->members[g->nmembers++];
        m->id = sqlite3_column_int64(s, 0);
        m->state = sqlite3_column_int(s, 1);
        m->attempt = sqlite3_column_int(s, 2);
        m->error = col_text(s, 3);
    }
    if (err == JOBQ_OK && rc != SQLITE_DONE) {
        err = store_from_sqlite(rc);
    }
    stmt_done(s);
    if (err != JOBQ_OK) {
        group_info_clear(g);
    }
    return err;
}

int64_t
store_missing_parent(const store *st)
{
    return st->missing_parent;
}

int
store_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_DEP_PARENTS);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    size_t n = 0;
    int rc;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    stmt_done(s);
    *np = n;
    return JOBQ_OK;
}

int
store_schedule_last(store *st, const char *name, int64_t *tickp)
{
    sqlite3_stmt *s = stmt_get(st, S_SCHED_LAST);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *tickp = sqlite3_column_int64(s, 0);
    }
    stmt_done(s);
    return rc == SQLITE_ROW ? JOBQ_OK : rc == SQLITE_DONE ? JOBQ_ENOENT : store_from_sqlite(rc);
}

/* A schedule's row holds its last tick; until it has one, the time jobqd first saw it is kept
 * in a row of its own, named with a prefix no schedule name can have (':' is not allowed). */
#define SCHED_SINCE_PREFIX "since:"

int
store_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep)
{
    char key[sizeof(SCHED_SINCE_PREFIX) + 256];
    if ((size_t)snprintf(key, sizeof(key), SCHED_SINCE_PREFIX "%s", name) >= sizeof(key)) {
        return JOBQ_EINVAL;
    }
    int64_t since;
    int err = store_schedule_last(st, key, &since);
    if (err == JOBQ_ENOENT) {
        since = now_ms;
        sqlite3_stmt *s = stmt_get(st, S_SCHED_SET);
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, since);
        err = step_done(s);
    }
    if (err == JOBQ_OK) {
        *sincep = since;
    }
    return err;
}

int
store_schedule_fire(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                    int64_t now_ms, int64_t *idp, bool *dupp, int *statep)
{
    sqlite3_stmt *s = stmt_get(st, S_SCHED_SET);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, tick_ms);
    int err = step_done(s);
    if (err != JOBQ_OK || spec == NULL) {
        return err;
    }
    return store_insert(st, spec, now_ms, idp, dupp, statep);
}

/* state_of: the state of job id, or -1 if it does not exist. */
static int
state_of(store *st, int64_t id)
{
    sqlite3_stmt *s = stmt_get(st, S_STATE_OF);
    sqlite3_bind_int64(s, 1, id);
    int state = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    stmt_done(s);
    return state;
}

int
store_insert(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp, bool *dupp, int *statep)
{
    sqlite3_stmt *s;
    int rc;
    if (spec->key != NULL) {
        s = stmt_get(st, S_KEY_FIND);
        sqlite3_bind_text(s, 1, spec->queue, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, spec->key, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(s, 0);
            uint64_t hash = (uint64_t)sqlite3_column_int64(s, 1);
            int64_t created = sqlite3_column_int64(s, 2);
            stmt_done(s);
            if (now_ms - created < spec->key_ttl_ms) {
                if (hash != spec->payload_hash) {
                    return JOBQ_ECONFLICT;
                }
                *idp = id;
                *dupp = true;
                *statep = state_of(st, id);
                return JOBQ_OK;
            }
            /* The key's window has passed: it may be admitted again. */
            s = stmt_get(st, S_KEY_DELETE);
            sqlite3_bind_text(s, 1, spec->queue, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, spec->key, -1, SQLITE_STATIC);
            rc = sqlite3_step(s);
            stmt_done(s);
            if (rc != SQLITE_DONE) {
                return store_from_sqlite(rc);
            }
        } else {
            stmt_done(s);
            if (rc != SQLITE_DONE) {
                return store_from_sqlite(rc);
            }
        }
    }
    int state = spec->run_at_ms > now_ms ? JOBQ_SCHEDULED : JOBQ_READY;
    char why[160] = "";
    size_t unfinished = 0;
    for (size_t i = 0; i < spec->nafter; i++) {
        int ps = state_of(st, spec->after[i]);
        if (ps < 0) {
            st->missing_parent = spec->after[i];
            return JOBQ_ENOENT;
        }
        if (ps == JOBQ_DEAD || ps == JOBQ_CANCELLED) {
            if (!spec->after_always && why[0] == '\0') {
                snprintf(why, sizeof(why), "parent job %lld ended %s", (long long)spec->after[i],
                         ps == JOBQ_DEAD ? "dead" : "cancelled");
            }
        } else if (ps != JOBQ_SUCCEEDED) {
            unfinished++;
        }
    }
    if (why[0] != '\0') {
        state = JOBQ_CANCELLED;
    } else if (unfinished > 0) {
        state = JOBQ_WAITING;
    }
    s = stmt_get(st, S_INSERT);
    sqlite3_bind_text(s, 1, spec->queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, spec->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, spec->priority);
    sqlite3_bind_int(s, 4, state);
    sqlite3_bind_int64(s, 5, spec->run_at_ms);
    sqlite3_bind_int(s, 6, spec->max_attempts);
    sqlite3_bind_int64(s, 7, spec->timeout_ms);
    if (spec->key != NULL) {
        sqlite3_bind_text(s, 8, spec->key, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 9, now_ms);
    if (spec->group_id != 0) {
        sqlite3_bind_int64(s, 10, spec->group_id);
    }
    sqlite3_bind_int(s, 11, spec->after_always);
    if (state == JOBQ_CANCELLED) {
        sqlite3_bind_text(s, 12, why, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 13, now_ms);
    }
    rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return store_from_sqlite(rc);
    }
    int64_t id = sqlite3_last_insert_rowid(st->db);
    for (size_t i = 0; state == JOBQ_WAITING && i < spec->nafter; i++) {
        if (state_of(st, spec->after[i]) == JOBQ_SUCCEEDED) {
            continue; /* already done: nothing to wait for */
        }
        s = stmt_get(st, S_DEP_INSERT);
        sqlite3_bind_int64(s, 1, spec->after[i]);
        sqlite3_bind_int64(s, 2, id);
        rc = sqlite3_step(s);
        stmt_done(s);
        if (rc != SQLITE_DONE) {
            return store_from_sqlite(rc);
        }
    }
    if (spec->key != NULL) {
        s = stmt_get(st, S_KEY_INSERT);
        sqlite3_bind_text(s, 1, spec->queue, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, spec->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, id);
        sqlite3_bind_int64(s, 4, (int64_t)spec->payload_hash);
        sqlite3_bind_int64(s, 5, now_ms);
        rc = sqlite3_step(s);
        stmt_done(s);
        if (rc != SQLITE_DONE) {
            return store_from_sqlite(rc);
        }
    }
    *idp = id;
    *dupp = false;
    *statep = state;
    return JOBQ_OK;
}

int
store_get(store *st, int64_t id, job_row *row)
{
    sqlite3_stmt *s = stmt_get(st, S_GET);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    int err = rc == SQLITE_ROW    ? read_row(s, row)
              : rc == SQLITE_DONE ? JOBQ_ENOENT
                                  : store_from_sqlite(rc);
    stmt_done(s);
    return err;
}

int
store_cancel(store *st, int64_t id, int64_t now_ms, bool allow_running, job_row *row,
             int *old_statep)
{
    job_row cur;
    int err = store_get(st, id, &cur);
    if (err != JOBQ_OK) {
        return err;
    }
    int old = cur.state;
    job_row_clear(&cur);
    if (old == JOBQ_SUCCEEDED || old == JOBQ_DEAD || old == JOBQ_CANCELLED ||
        (old == JOBQ_RUNNING && !allow_running)) {
        return JOBQ_ESTATE;
    }
    sqlite3_stmt *s = stmt_get(st, S_CANCEL);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    int rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return store_from_sqlite(rc);
    }
    if (old == JOBQ_WAITING) {
        s = stmt_get(st, S_DEP_DELETE_JOB);
        sqlite3_bind_int64(s, 1, id);
        rc = sqlite3_step(s);
        stmt_done(s);
        if (rc != SQLITE_DONE) {
            return store_from_sqlite(rc);
        }
    }
    if ((err = ended(st, id, JOBQ_CANCELLED, now_ms)) != JOBQ_OK) {
        return err;
    }
    err = store_get(st, id, row);
    if (err == JOBQ_OK) {
        *old_statep = old;
    }
    return err;
}

int
store_set_error(store *st, int64_t id, const char *error)
{
    sqlite3_stmt *s = stmt_get(st, S_SET_ERROR);
    sqlite3_bind_int64(s, 1, id);
    bind_text_or_null(s, 2, error);
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

int
store_list(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep)
{
    sqlite3_stmt *s = stmt_get(st, S_LIST);
    bind_text_or_null(s, 1, f->queue);
    sqlite3_bind_int(s, 2, f->state);
    sqlite3_bind_int64(s, 3, f->after_id);
    sqlite3_bind_int(s, 4, f->limit + 1); /* one more than asked: is this the last page? */
    return read_rows_more(s, rows, (size_t)f->limit, np, morep);
}

int
store_count_each(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n),
                 void *arg)
{
    sqlite3_stmt *s = stmt_get(st, S_COUNT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
           sqlite3_column_int64(s, 2));
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

int
store_paused_each(store *st, void (*fn)(void *arg, const char *queue), void *arg)
{
    sqlite3_stmt *s = stmt_get(st, S_PAUSED);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(s, 0));
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

int
store_set_paused(store *st, const char *queue, bool paused)
{
    sqlite3_stmt *s = stmt_get(st, S_SET_PAUSED);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, paused ? 1 : 0);
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

int
store_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_CLAIM_PICK);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    size_t n = 0;
    int err = read_rows(s, rows, max, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    sqlite3_stmt *m = stmt_get(st, S_CLAIM_MARK);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        sqlite3_bind_int64(m, 1, rows[i].id);
        sqlite3_bind_int64(m, 2, now_ms);
        err = step_change(st, m);
        rows[i].state = JOBQ_RUNNING;
        rows[i].attempt++;
        rows[i].started_at_ms = now_ms;
        rows[i].finished_at_ms = 0;
    }
    if (err != JOBQ_OK) {
        while (n > 0) {
            job_row_clear(&rows[--n]);
        }
        return err;
    }
    *np = n;
    return JOBQ_OK;
}

/* add_attempt: one row of a job's attempt history. */
static int
add_attempt(store *st, const attempt_rec *a, int64_t id, int64_t now_ms, const char *error)
{
    sqlite3_stmt *s = stmt_get(st, S_ATTEMPT_INSERT);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, a->attempt);
    sqlite3_bind_int64(s, 3, a->started_at_ms);
    sqlite3_bind_int64(s, 4, now_ms);
    sqlite3_bind_text(s, 5, a->kind, -1, SQLITE_STATIC);
    bind_text_or_null(s, 6, error);
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
}

int
store_finish(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
             const char *result, const char *error, const attempt_rec *a)
{
    sqlite3_stmt *s = stmt_get(st, S_FINISH);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, new_state);
    sqlite3_bind_int64(s, 3, now_ms);
    sqlite3_bind_int64(s, 4, run_at_ms);
    bind_text_or_null(s, 5, result);
    bind_text_or_null(s, 6, error);
    int err = step_change(st, s);
    if (err == JOBQ_OK && a != NULL) {
        err = add_attempt(st, a, id, now_ms, error);
    }
    if (err == JOBQ_OK &&
        (new_state == JOBQ_SUCCEEDED || new_state == JOBQ_DEAD || new_state == JOBQ_CANCELLED)) {
        err = ended(st, id, new_state, now_ms);
    }
    return err;
}

int
store_requeue(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a)
{
    sqlite3_stmt *s = stmt_get(st, S_REQUEUE);
    sqlite3_bind_int64(s, 1, id);
    bind_text_or_null(s, 2, error);
    int err = step_change(st, s);
    return err == JOBQ_OK && a != NULL ? add_attempt(st, a, id, now_ms, error) : err;
}

int
store_promote_due(store *st, int64_t now_ms, size_t max,
                  void (*fn)(void *arg, const char *queue, int old_state), void *arg, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_DUE_PICK);
    sqlite3_stmt *m = stmt_get(st, S_DUE_MARK);
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    size_t n = 0;
    int rc;
    /* Updating rows of the index being read is safe in SQLite only after the read is done,
     * so collect ids first (max is small). */
    int64_t *ids = malloc(max * sizeof(*ids));
    char **queues = malloc(max * sizeof(*queues));
    int *olds = malloc(max * sizeof(*olds));
    int err = JOBQ_OK;
    if (ids == NULL || queues == NULL || olds == NULL) {
        err = JOBQ_ENOMEM;
        goto out;
    }
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(s, 0);
        queues[n] = col_text(s, 1);
        olds[n] = sqlite3_column_int(s, 2);
        if (queues[n] == NULL) {
            err = JOBQ_ENOMEM;
            break;
        }
        n++;
    }
    if (err == JOBQ_OK && n < max && rc != SQLITE_DONE) {
        err = store_from_sqlite(rc);
    }
    stmt_done(s);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        sqlite3_bind_int64(m, 1, ids[i]);
        rc = sqlite3_step(m);
        stmt_done(m);
        if (rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
        }
    }
    if (err == JOBQ_OK) {
        for (size_t i = 0; fn != NULL && i < n; i++) {
            fn(arg, queues[i], olds[i]);
        }
        *np = n;
    }
out:
    for (size_t i = 0; queues != NULL && i < n; i++) {
        free(queues[i]);
    }
    free(ids);
    free(queues);
    free(olds);
    return err;
}

static int oldest(sqlite3_stmt *s, int64_t *atp);

int
store_next_due(store *st, int64_t *atp)
{
    return oldest(stmt_get(st, S_NEXT_DUE), atp);
}

int
store_recover_running(store *st, int64_t now_ms, int poison_crashes,
                      bool (*local)(void *arg, const char *queue),
                      void (*fn)(void *arg, const char *queue, int64_t id, bool poisoned),
                      void *arg, size_t *np)
{
    /* Collect first: the rows change under the read otherwise. */
    sqlite3_stmt *s = stmt_get(st, S_RUNNING);
    size_t n = 0, cap = 0;
    struct running {
        int64_t id;
        char *queue;
        attempt_rec a;
    } *rows = NULL;
    int rc, err = JOBQ_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *grown = realloc(rows, cap * sizeof(*rows));
            if (grown == NULL) {
                err = JOBQ_ENOMEM;
                break;
            }
            rows = grown;
        }
        rows[n].id = sqlite3_column_int64(s, 0);
        rows[n].queue = col_text(s, 1);
        rows[n].a = (attempt_rec){.attempt = sqlite3_column_int(s, 2),
                                  .started_at_ms = sqlite3_column_int64(s, 3),
                                  .kind = "crash"};
        n++;
    }
    if (err == JOBQ_OK && rc != SQLITE_DONE) {
        err = store_from_sqlite(rc);
    }
    stmt_done(s);
    static const char crash_error[] = "interrupted: jobqd stopped (crash, kill -9 or power "
                                      "loss) while the job ran";
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        err = add_attempt(st, &rows[i].a, rows[i].id, now_ms, crash_error);
        if (err != JOBQ_OK) {
            break;
        }
        s = stmt_get(st, S_CRASHES);
        sqlite3_bind_int64(s, 1, rows[i].id);
        int crashes = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
        stmt_done(s);
        bool poisoned = crashes >= poison_crashes &&
                        (local == NULL || (rows[i].queue != NULL && local(arg, rows[i].queue)));
        char msg[160];
        if (poisoned) {
            snprintf(msg, sizeof(msg),
                     "suspected poison job: it was running during %d crashes of jobqd", crashes);
            s = stmt_get(st, S_POISON);
            sqlite3_bind_int64(s, 1, rows[i].id);
            sqlite3_bind_int64(s, 2, now_ms);
            sqlite3_bind_text(s, 3, msg, -1, SQLITE_STATIC);
        } else {
            s = stmt_get(st, S_RECOVER);
            sqlite3_bind_int64(s, 1, rows[i].id);
            sqlite3_bind_text(s, 2, crash_error, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(s);
        stmt_done(s);
        if (rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
            break;
        }
        if (poisoned && (err = ended(st, rows[i].id, JOBQ_DEAD, now_ms)) != JOBQ_OK) {
            break;
        }
        if (fn != NULL && rows[i].queue != NULL) {
            fn(arg, rows[i].queue, rows[i].id, poisoned);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].queue);
    }
    free(rows);
    if (err == JOBQ_OK) {
        *np = n;
    }
    return err;
}

int
store_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep)
{
    job_row cur;
    int err = store_get(st, id, &cur);
    if (err != JOBQ_OK) {
        return err;
    }
    int old = cur.state;
    job_row_clear(&cur);
    sqlite3_stmt *s = stmt_get(st, S_RETRY);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    if ((err = step_change(st, s)) != JOBQ_OK) {
        return err;
    }
    err = store_get(st, id, row);
    if (err == JOBQ_OK) {
        *old_statep = old;
    }
    return err;
}

int
store_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
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
        return store_from_sqlite(rc);
    }
    *np = n;
    return JOBQ_OK;
}

void
attempt_row_clear(attempt_row *a)
{
    free(a->kind);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

int
store_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_ATTEMPTS);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    size_t n = 0;
    int rc;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        attempt_row *a = &rows[n++];
        a->attempt = sqlite3_column_int(s, 0);
        a->started_at_ms = sqlite3_column_int64(s, 1);
        a->finished_at_ms = sqlite3_column_int64(s, 2);
        a->kind = col_text(s, 3);
        a->error = col_text(s, 4);
    }
    if (n < max && rc != SQLITE_DONE) {
        stmt_done(s);
        while (n > 0) {
            attempt_row_clear(&rows[--n]);
        }
        return store_from_sqlite(rc);
    }
    stmt_done(s);
    *np = n;
    return JOBQ_OK;
}

int
store_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_SWEEP);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, before_ms);
    sqlite3_bind_int64(s, 4, (int64_t)max);
    int64_t *ids = malloc(max * sizeof(*ids));
    if (ids == NULL) {
        stmt_done(s);
        return JOBQ_ENOMEM;
    }
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n < max) {
            ids[n++] = sqlite3_column_int64(s, 0);
        }
    }
    stmt_done(s);
    int err = rc == SQLITE_DONE ? JOBQ_OK : store_from_sqlite(rc);
    sqlite3_stmt *a = stmt_get(st, S_SWEEP_ATTEMPTS);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        sqlite3_bind_int64(a, 1, ids[i]);
        rc = sqlite3_step(a);
        stmt_done(a);
        if (rc != SQLITE_DONE) {
            err = store_from_sqlite(rc);
        }
    }
    free(ids);
    if (err == JOBQ_OK) {
        *np = n;
    }
    return err;
}

int
store_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_SWEEP_GROUPS);
    sqlite3_bind_int64(s, 1, before_ms);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int err = step_done(s);
    if (err == JOBQ_OK) {
        *np = (size_t)sqlite3_changes(st->db);
    }
    return err;
}

int
store_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_SWEEP_KEYS);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, before_ms);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    int rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return store_from_sqlite(rc);
    }
    *np = (size_t)sqlite3_changes(st->db);
    return JOBQ_OK;
}

int
store_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_AHEAD);
    sqlite3_bind_text(s, 1, row->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, row->priority);
    sqlite3_bind_int64(s, 3, row->run_at_ms);
    sqlite3_bind_int64(s, 4, row->id);
    sqlite3_bind_int64(s, 5, limit);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *np = sqlite3_column_int64(s, 0);
    }
    stmt_done(s);
    return rc == SQLITE_ROW ? JOBQ_OK : store_from_sqlite(rc);
}

/* oldest: one min() over an index; JOBQ_ENOENT when there is no row. */
static int
oldest(sqlite3_stmt *s, int64_t *atp)
{
    int rc = sqlite3_step(s);
    int err;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *atp = sqlite3_column_int64(s, 0);
        err = JOBQ_OK;
    } else {
        err = rc == SQLITE_ROW ? JOBQ_ENOENT : store_from_sqlite(rc);
    }
    stmt_done(s);
    return err;
}

int
store_oldest_finished(store *st, const char *queue, int state, int64_t *atp)
{
    sqlite3_stmt *s = stmt_get(st, S_OLDEST_FINISHED);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    return oldest(s, atp);
}

int
store_oldest_key(store *st, const char *queue, int64_t *atp)
{
    sqlite3_stmt *s = stmt_get(st, S_OLDEST_KEY);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    return oldest(s, atp);
}

int
store_recent(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_RECENT);
    sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    return read_rows(s, rows, max, np);
}

int
store_backup(const char *db_path, const char *dest, char *err, size_t errlen)
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
    int result = rc == SQLITE_DONE || rc == SQLITE_OK ? JOBQ_OK : store_from_sqlite(rc);
    if (result != JOBQ_OK) {
        snprintf(err, errlen, "backup to %s failed: %s", dest,
                 db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return result;
}
