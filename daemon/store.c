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
    S_COUNT_STMTS
};

#define JOB_COLS                                                                                   \
    "id, queue, payload, priority, state, run_at, attempt, max_attempts, timeout_ms, key, "        \
    "result, error, created_at, started_at, finished_at"

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
                 "timeout_ms, key, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT_STMTS];
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

/* read_rows: steps s (selecting JOB_COLS) into up to max rows; on failure clears them. */
static int
read_rows(sqlite3_stmt *s, job_row *rows, size_t max, size_t *np)
{
    size_t n = 0;
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
    stmt_done(s);
    if (err != JOBQ_OK) {
        while (n > 0) {
            job_row_clear(&rows[--n]);
        }
        return err;
    }
    *np = n;
    return JOBQ_OK;
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
    if (st->db != NULL) {
        int rc = sqlite3_close(st->db);
        if (rc != SQLITE_OK) {
            log_error("store_close", "err=%d", rc);
        }
    }
    free(st);
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
    rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        return store_from_sqlite(rc);
    }
    int64_t id = sqlite3_last_insert_rowid(st->db);
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
    err = store_get(st, id, row);
    if (err == JOBQ_OK) {
        *old_statep = old;
    }
    return err;
}

int
store_list(store *st, const list_filter *f, job_row *rows, size_t *np)
{
    sqlite3_stmt *s = stmt_get(st, S_LIST);
    bind_text_or_null(s, 1, f->queue);
    sqlite3_bind_int(s, 2, f->state);
    sqlite3_bind_int64(s, 3, f->after_id);
    sqlite3_bind_int(s, 4, f->limit);
    return read_rows(s, rows, (size_t)f->limit, np);
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
    return err == JOBQ_OK && a != NULL ? add_attempt(st, a, id, now_ms, error) : err;
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
