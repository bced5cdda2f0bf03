/* test_store.c: the store contract, the tests any backend must pass (test_contract_*): rows,
 * fenced updates, claims and their order, keys, dependencies, groups, history, retention,
 * savepoints, syncs apart from commits; then each backend's own (test_sqlite_*: its index, its
 * migrations, its log's sync and checkpoint; test_pg_*: its index, migrations, SKIP LOCKED
 * claims, a lost connection). Without JOBQ_TEST_PG_HOST it runs on SQLite, on a real temp
 * file; with it (ctest's test_store_pg, through tests/pg.sh) on a real PostgreSQL cluster, a
 * fresh database per test. Job policy over these primitives is test_lifecycle.c's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef JOBQ_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

#include "migrate.h"
#include "lifecycle.h"
#include "store.h"

typedef struct fixture {
    char dir[64];
    char path[512]; /* the database setting: a file, or a postgresql:// URL */
    char db[32];    /* PostgreSQL: this test's database */
    store *st;
} fixture;

/* pg_host: the socket directory of the test cluster (tests/pg.sh), or NULL: SQLite. */
static const char *
pg_host(void)
{
    const char *h = getenv("JOBQ_TEST_PG_HOST");
    return h != NULL && h[0] != '\0' ? h : NULL;
}

#ifdef JOBQ_HAVE_POSTGRES
/* pg_url: the URL of database db on the test cluster. */
static void
pg_url(char *buf, size_t len, const char *db)
{
    const char *port = getenv("JOBQ_TEST_PG_PORT");
    const char *user = getenv("JOBQ_TEST_PG_USER");
    snprintf(buf, len, "postgresql://%s@/%s?host=%s&port=%s", user != NULL ? user : "jobq", db,
             pg_host(), port != NULL ? port : "5432");
}

/* pg_admin: runs sql on database db of the test cluster (not through the store) and returns
 * the first value of its last result (malloc'd; "" when none). Fails the test on error. */
static char *
pg_admin(const char *db, const char *sql)
{
    char url[512];
    pg_url(url, sizeof(url), db);
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("connecting to %s: %s", url, PQerrorMessage(c));
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    char *v = strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return v;
}
#endif

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (pg_host() != NULL) {
#ifdef JOBQ_HAVE_POSTGRES
        static int n;
        snprintf(f->db, sizeof(f->db), "jobq_store_%d_%d", (int)getpid(), ++n);
        char sql[96];
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", f->db);
        free(pg_admin("postgres", sql));
        pg_url(f->path, sizeof(f->path), f->db);
#else
        fail_msg("JOBQ_TEST_PG_HOST is set but this build has no PostgreSQL backend");
#endif
    } else {
        snprintf(f->dir, sizeof(f->dir), "/tmp/jobq-store.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/jobq.db", f->dir);
    }
    char err[1024] = "";
    if (store_open(f->path, DURABILITY_FULL, &f->st, err, sizeof(err)) != JOBQ_OK) {
        fail_msg("store_open: %s", err);
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    if (f->db[0] != '\0') {
#ifdef JOBQ_HAVE_POSTGRES
        char sql[96];
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
        free(pg_admin("postgres", sql));
#endif
    } else {
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
    }
    free(f);
    return 0;
}

static int64_t
insert(store *st, const char *queue, int32_t prio, int64_t run_at, int64_t now)
{
    job_spec s = {.queue = queue,
                  .payload = "{}",
                  .priority = prio,
                  .run_at_ms = run_at,
                  .max_attempts = 3,
                  .timeout_ms = 1000};
    int64_t id;
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(
        store_job_insert(st, &s, run_at > now ? JOBQ_SCHEDULED : JOBQ_READY, now, 0, NULL, &id),
        JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    return id;
}

static void
test_contract_insert_get(void **state)
{
    fixture *f = *state;
    job_spec s = {.queue = "mail",
                  .payload = "{\"to\":\"x\"}",
                  .priority = 7,
                  .run_at_ms = 1000,
                  .max_attempts = 5,
                  .timeout_ms = 2500};
    int64_t id, id2;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 1000, 0, NULL, &id), JOBQ_OK);
    s.key = "k";
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_CANCELLED, 1000, 1001, "why", &id2), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_true(id2 > id);
    int js;
    assert_int_equal(store_job_state(f->st, id2, &js), JOBQ_OK);
    assert_int_equal(js, JOBQ_CANCELLED);
    assert_int_equal(store_job_state(f->st, id2 + 1, &js), JOBQ_ENOENT);
    job_row r;
    assert_int_equal(store_get(f->st, id2, &r), JOBQ_OK);
    assert_string_equal(r.key, "k");
    assert_string_equal(r.error, "why");
    assert_int_equal(r.finished_at_ms, 1001);
    job_row_clear(&r);
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_string_equal(r.queue, "mail");
    assert_string_equal(r.payload, "{\"to\":\"x\"}");
    assert_int_equal(r.priority, 7);
    assert_int_equal(r.state, JOBQ_READY);
    assert_int_equal(r.max_attempts, 5);
    assert_int_equal(r.timeout_ms, 2500);
    assert_int_equal(r.created_at_ms, 1000);
    assert_null(r.key);
    job_row_clear(&r);
    assert_int_equal(store_get(f->st, id2 + 1, &r), JOBQ_ENOENT);
}

static void
test_contract_scheduled_job_is_not_claimed(void **state)
{
    fixture *f = *state;
    job_spec s = {
        .queue = "mail", .payload = "1", .run_at_ms = 5000, .max_attempts = 1, .timeout_ms = 1};
    int64_t id;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_SCHEDULED, 4999, 0, NULL, &id), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row rows[1];
    size_t n = 9;
    assert_int_equal(store_claim(f->st, "mail", 4999, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    int64_t at;
    assert_int_equal(store_next_due(f->st, &at), JOBQ_OK);
    assert_int_equal(at, 5000);
}

static void
test_contract_keys_per_queue(void **state)
{
    fixture *f = *state;
    int64_t id, created;
    uint64_t hash;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_key_find(f->st, "mail", "k1", &id, &hash, &created), JOBQ_ENOENT);
    assert_int_equal(store_key_add(f->st, "mail", "k1", 7, UINT64_MAX - 1, 100), JOBQ_OK);
    assert_int_not_equal(store_key_add(f->st, "mail", "k1", 8, 1, 101), JOBQ_OK);
    assert_int_equal(store_key_add(f->st, "other", "k1", 9, 2, 102), JOBQ_OK); /* per queue */
    assert_int_equal(store_key_find(f->st, "mail", "k1", &id, &hash, &created), JOBQ_OK);
    assert_int_equal(id, 7);
    assert_true(hash == UINT64_MAX - 1); /* all 64 bits survive */
    assert_int_equal(created, 100);
    assert_int_equal(store_key_delete(f->st, "mail", "k1"), JOBQ_OK);
    assert_int_equal(store_key_delete(f->st, "mail", "k1"), JOBQ_OK);
    assert_int_equal(store_key_find(f->st, "mail", "k1", &id, &hash, &created), JOBQ_ENOENT);
    assert_int_equal(store_key_find(f->st, "other", "k1", &id, &hash, &created), JOBQ_OK);
    assert_int_equal(id, 9);
    int64_t at;
    size_t n;
    assert_int_equal(store_oldest_key(f->st, "other", &at), JOBQ_OK);
    assert_int_equal(at, 102);
    assert_int_equal(store_sweep_keys(f->st, "other", 102, 10, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_sweep_keys(f->st, "other", 103, 10, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_oldest_key(f->st, "other", &at), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

static void
count_ready(void *arg, const char *queue, int state, int64_t n)
{
    (void)queue;
    *(int64_t *)arg += state == JOBQ_READY ? n : 0;
}

static void
test_contract_savepoint_rolls_back_one_op(void **state)
{
    fixture *f = *state;
    job_spec s = {.queue = "mail", .payload = "1", .max_attempts = 1, .timeout_ms = 1};
    int64_t id;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 0, 0, NULL, &id), JOBQ_OK);
    store_rollback_savepoint(f->st);
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    int64_t kept;
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 0, 0, NULL, &kept), JOBQ_OK);
    store_release(f->st);
    /* Ops that run no statement, released or rolled back, between ops that do (a backend
     * may send a savepoint only with an op's first statement). */
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    store_rollback_savepoint(f->st);
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    store_release(f->st);
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    int64_t undone, kept2;
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 0, 0, NULL, &undone), JOBQ_OK);
    store_rollback_savepoint(f->st);
    assert_int_equal(store_savepoint(f->st), JOBQ_OK);
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 0, 0, NULL, &kept2), JOBQ_OK);
    store_release(f->st);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r = {0}; /* left alone on JOBQ_ENOENT: a backend may not reuse the id (PostgreSQL) */
    assert_int_equal(store_get(f->st, id, &r), id == kept ? JOBQ_OK : JOBQ_ENOENT);
    job_row_clear(&r);
    assert_int_equal(store_get(f->st, kept, &r), JOBQ_OK);
    job_row_clear(&r);
    r = (job_row){0};
    assert_int_equal(store_get(f->st, undone, &r), undone == kept2 ? JOBQ_OK : JOBQ_ENOENT);
    job_row_clear(&r);
    assert_int_equal(store_get(f->st, kept2, &r), JOBQ_OK);
    job_row_clear(&r);
    int64_t n = 0;
    assert_int_equal(store_count_each(f->st, count_ready, &n), JOBQ_OK);
    assert_int_equal(n, 2);
}

static void
test_contract_set_state_is_fenced(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "mail", 0, 0, 0);
    job_row r;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_set_state(f->st, id, JOBQ_WAITING, JOBQ_CANCELLED, 10, "no"),
                     JOBQ_ESTATE);
    assert_int_equal(store_job_set_state(f->st, id, JOBQ_READY, JOBQ_CANCELLED, 10, "why"),
                     JOBQ_OK);
    /* 0 and NULL leave finished_at and error as they are. */
    assert_int_equal(store_job_set_state(f->st, id, -1, JOBQ_DEAD, 0, NULL), JOBQ_OK);
    assert_int_equal(store_job_set_state(f->st, id + 100, -1, JOBQ_DEAD, 0, NULL), JOBQ_ESTATE);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_DEAD);
    assert_int_equal(r.finished_at_ms, 10);
    assert_string_equal(r.error, "why");
    job_row_clear(&r);
}

static void
test_contract_claim_order_priority_run_at_id(void **state)
{
    fixture *f = *state;
    int64_t a = insert(f->st, "q", 0, 100, 1000);
    int64_t b = insert(f->st, "q", 5, 300, 1000);
    int64_t c = insert(f->st, "q", 5, 200, 1000);
    int64_t d = insert(f->st, "q", 0, 100, 1000);
    insert(f->st, "other", 9, 0, 1000);
    job_row rows[8];
    size_t n;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "q", 2000, 8, rows, &n), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(n, 4);
    int64_t want[] = {c, b, a, d};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].id, want[i]);
        assert_int_equal(rows[i].state, JOBQ_RUNNING);
        assert_int_equal(rows[i].attempt, 1);
        job_row_clear(&rows[i]);
    }
    job_row r;
    assert_int_equal(store_get(f->st, c, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_RUNNING);
    assert_int_equal(r.attempt, 1);
    assert_int_equal(r.started_at_ms, 2000);
    job_row_clear(&r);
}

/* The oldest ready job over every priority in use, and the oldest scheduled job past due. */
static void
test_contract_oldest_due(void **state)
{
    fixture *f = *state;
    int64_t ready, overdue;
    assert_int_equal(store_oldest_due(f->st, "q", 5000, &ready, &overdue), JOBQ_OK);
    assert_int_equal(ready, 0);
    assert_int_equal(overdue, 0);
    insert(f->st, "q", 5, 300, 1000);
    insert(f->st, "q", 0, 150, 1000); /* the oldest, behind a higher priority */
    insert(f->st, "q", -3, 200, 1000);
    insert(f->st, "q", 0, 4000, 1000); /* scheduled: due at 4000 */
    insert(f->st, "q", 0, 9000, 1000); /* scheduled, not due at 5000 */
    insert(f->st, "other", 9, 100, 1000);
    assert_int_equal(store_oldest_due(f->st, "q", 5000, &ready, &overdue), JOBQ_OK);
    assert_int_equal(ready, 150);
    assert_int_equal(overdue, 4000);
    assert_int_equal(store_oldest_due(f->st, "q", 3999, &ready, &overdue), JOBQ_OK);
    assert_int_equal(overdue, 0);
    assert_int_equal(store_oldest_due(f->st, "nobody", 5000, &ready, &overdue), JOBQ_OK);
    assert_int_equal(ready, 0);
}

/* The claim must be one index seek, never a sort of the backlog. */
static void
test_sqlite_claim_uses_ready_index(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE queue = 'q' "
                           "AND state = 1 AND group_key IS NULL ORDER BY priority DESC, run_at, id "
                           "LIMIT 1",
                           -1, &s, NULL),
        SQLITE_OK);
    char plan[1024] = "";
    while (sqlite3_step(s) == SQLITE_ROW) {
        strncat(plan, (const char *)sqlite3_column_text(s, 3), sizeof(plan) - strlen(plan) - 2);
        strcat(plan, ";");
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_non_null(strstr(plan, "jobs_ready"));
    assert_null(strstr(plan, "TEMP B-TREE"));
}

static void
test_contract_finish_and_history(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "q", 0, 0, 0);
    job_row rows[1];
    size_t n;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "q", 10, 1, rows, &n), JOBQ_OK);
    job_row_clear(&rows[0]);
    attempt_rec a = {.attempt = 1, .started_at_ms = 10, .kind = "exit"};
    assert_int_equal(store_job_finish(f->st, id, JOBQ_RETRYING, 0, 500, NULL, "exit 1"), JOBQ_OK);
    assert_int_equal(store_attempt_add(f->st, id, &a, 20, "exit 1"), JOBQ_OK);
    /* Not running any more: a second finish is refused. */
    assert_int_equal(store_job_finish(f->st, id, JOBQ_SUCCEEDED, 20, 0, "x", NULL), JOBQ_ESTATE);
    size_t promoted = 9;
    assert_int_equal(store_promote_due(f->st, 499, 10, NULL, NULL, &promoted), JOBQ_OK);
    assert_int_equal(promoted, 0);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_RETRYING);
    assert_int_equal(r.run_at_ms, 500);
    assert_string_equal(r.error, "exit 1");
    job_row_clear(&r);
    attempt_row h[4];
    assert_int_equal(store_attempts(f->st, id, h, 4, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].attempt, 1);
    assert_string_equal(h[0].kind, "exit");
    assert_string_equal(h[0].error, "exit 1");
    assert_int_equal(h[0].finished_at_ms - h[0].started_at_ms, 10);
    attempt_row_clear(&h[0]);
}

static void
count_bulk(void *arg, const char *queue)
{
    assert_string_equal(queue, "q");
    (*(int *)arg)++;
}

static void
count_parent(void *arg, int64_t id, int64_t parent, const char *result)
{
    (void)id;
    (void)parent;
    (void)result;
    (*(int *)arg)++;
}

/* claim_one: claims the only ready job of q and returns its id. */
static int64_t
claim_one(store *st, const char *q, int64_t now)
{
    job_row rows[1];
    size_t n;
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(store_claim(st, q, now, 1, rows, &n), JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    assert_int_equal(n, 1);
    int64_t id = rows[0].id;
    job_row_clear(&rows[0]);
    return id;
}

static void
test_contract_retry_dead_and_bulk(void **state)
{
    fixture *f = *state;
    int64_t a = insert(f->st, "q", 0, 0, 0);
    int64_t b = insert(f->st, "q", 0, 0, 0);
    job_row r;
    int old;
    size_t n;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    /* Not dead: refused. */
    assert_int_equal(store_retry(f->st, a, 5, &r, &old), JOBQ_ESTATE);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_one(f->st, "q", 2), a);
    assert_int_equal(claim_one(f->st, "q", 2), b);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, a, JOBQ_DEAD, 3, 0, NULL, "bad"), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, b, JOBQ_DEAD, 3, 0, NULL, "bad"), JOBQ_OK);
    assert_int_equal(store_retry(f->st, a, 5, &r, &old), JOBQ_OK);
    assert_int_equal(old, JOBQ_DEAD);
    assert_int_equal(r.state, JOBQ_READY);
    assert_int_equal(r.attempt, 0);
    assert_int_equal(r.finished_at_ms, 0);
    job_row_clear(&r);
    int calls = 0;
    assert_int_equal(store_retry_bulk(f->st, "q", JOBQ_DEAD, 6, 10, count_bulk, &calls, &n),
                     JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(calls, 1);
    assert_int_equal(store_get(f->st, b, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_READY);
    job_row_clear(&r);
}

/* Many jobs in one call: each keeps its own columns (payloads with quotes, backslashes,
 * commas and braces come back byte for byte, NULLs stay NULL), ids increase in order. */
static void
test_contract_jobs_insert(void **state)
{
    fixture *f = *state;
    job_spec specs[3] = {
        {.queue = "q", .payload = "{\"a\":\"x\\\"y,{}\\\\\"}", .priority = 5, .run_at_ms = 0,
         .max_attempts = 2, .timeout_ms = 1000, .traceparent = "00-ab-cd-01"},
        {.queue = "q2", .payload = "[1,2]", .priority = -1, .run_at_ms = 900, .max_attempts = 3,
         .timeout_ms = 2000, .group_key = "tenant \"7\""},
        {.queue = "q", .payload = "\"\u00e9t\u00e9\"", .run_at_ms = 0, .max_attempts = 1,
         .timeout_ms = 3000, .after_always = true},
    };
    int states[3] = {JOBQ_READY, JOBQ_SCHEDULED, JOBQ_READY};
    int64_t ids[3];
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_jobs_insert(f->st, specs, states, 3, 10, ids), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_true(ids[0] < ids[1] && ids[1] < ids[2]);
    for (int i = 0; i < 3; i++) {
        job_row r;
        assert_int_equal(store_get(f->st, ids[i], &r), JOBQ_OK);
        assert_string_equal(r.queue, specs[i].queue);
        assert_string_equal(r.payload, specs[i].payload);
        assert_int_equal(r.priority, specs[i].priority);
        assert_int_equal(r.state, states[i]);
        assert_int_equal(r.run_at_ms, specs[i].run_at_ms);
        assert_int_equal(r.max_attempts, specs[i].max_attempts);
        assert_int_equal(r.timeout_ms, specs[i].timeout_ms);
        assert_int_equal(r.created_at_ms, 10);
        if (specs[i].traceparent != NULL) {
            assert_string_equal(r.traceparent, specs[i].traceparent);
        } else {
            assert_null(r.traceparent);
        }
        if (specs[i].group_key != NULL) {
            assert_string_equal(r.group_key, specs[i].group_key);
        } else {
            assert_null(r.group_key);
        }
        job_row_clear(&r);
    }
    assert_int_equal(claim_one(f->st, "q", 20), ids[0]); /* priority 5 first */
}

/* The end of an attempt: the job's new state, its history row, its held key forgotten, its
 * group and whether jobs wait for it told; a second end of the same attempt changes nothing. */
static void
test_contract_job_end(void **state)
{
    fixture *f = *state;
    group_spec g = {.size = 1};
    int64_t gid, a, c, hid, dummy;
    uint64_t hash;
    bool held;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_group_create(f->st, &g, 10, &gid), JOBQ_OK);
    job_spec s = {.queue = "q", .payload = "1", .max_attempts = 1, .timeout_ms = 1, .group_id = gid};
    int ready = JOBQ_READY;
    assert_int_equal(store_jobs_insert(f->st, &s, &ready, 1, 10, &a), JOBQ_OK);
    s.group_id = 0;
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_WAITING, 10, 0, NULL, &c), JOBQ_OK);
    assert_int_equal(store_dep_add(f->st, a, c), JOBQ_OK);
    assert_int_equal(store_key_put(f->st, "q", "k", a, 7, 10, true), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_one(f->st, "q", 20), a);
    attempt_rec at = {.attempt = 1, .started_at_ms = 20, .kind = "success"};
    int64_t og = -1;
    bool kids = false;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_end(f->st, a, JOBQ_SUCCEEDED, 30, 0, "{\"r\":1}", NULL, &at, &og,
                                   &kids),
                     JOBQ_OK);
    assert_int_equal(og, gid);
    assert_true(kids);
    assert_int_equal(store_key_lock(f->st, "q", "k", &hid, &hash, &dummy, &held), JOBQ_ENOENT);
    /* Ended: the same end again is refused, and changes nothing. */
    assert_int_equal(store_job_end(f->st, a, JOBQ_DEAD, 31, 0, NULL, "late", &at, &og, &kids),
                     JOBQ_ESTATE);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, a, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_SUCCEEDED);
    assert_int_equal(r.finished_at_ms, 30);
    assert_string_equal(r.result, "{\"r\":1}");
    job_row_clear(&r);
    attempt_row h[2];
    size_t n;
    assert_int_equal(store_attempts(f->st, a, h, 2, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].kind, "success");
    attempt_row_clear(&h[0]);
    /* A retry is not an end: run_at set, no finished_at, the key kept. */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_set_state(f->st, c, JOBQ_WAITING, JOBQ_READY, 0, NULL), JOBQ_OK);
    assert_int_equal(store_key_put(f->st, "q", "k2", c, 7, 10, true), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_one(f->st, "q", 40), c);
    at.started_at_ms = 40;
    at.kind = "exit";
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(
        store_job_end(f->st, c, JOBQ_RETRYING, 50, 900, NULL, "exit 1", &at, &og, &kids),
        JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "q", "k2", &hid, &hash, &dummy, &held), JOBQ_OK);
    assert_int_equal(hid, c);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_get(f->st, c, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_RETRYING);
    assert_int_equal(r.run_at_ms, 900);
    assert_int_equal(r.finished_at_ms, 0);
    job_row_clear(&r);
    /* Its end: in no group and nothing waits for it (kids false), its held key forgotten. */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_set_state(f->st, c, JOBQ_RETRYING, JOBQ_READY, 0, NULL), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_one(f->st, "q", 1000), c);
    at.attempt = 2;
    at.started_at_ms = 1000;
    og = -1;
    kids = true;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_end(f->st, c, JOBQ_DEAD, 1010, 0, NULL, "exit 1", &at, &og, &kids),
                     JOBQ_OK);
    assert_int_equal(og, 0);
    assert_false(kids);
    assert_int_equal(store_key_lock(f->st, "q", "k2", &hid, &hash, &dummy, &held), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

/* Many ends at once: each recorded or refused on its own (a job not running changes
 * nothing and does not stop the others). */
static void
test_contract_jobs_end(void **state)
{
    fixture *f = *state;
    int64_t a = insert(f->st, "q", 2, 0, 0);
    int64_t b = insert(f->st, "q", 0, 0, 0);
    int64_t c = insert(f->st, "q", 1, 0, 0);
    assert_int_equal(claim_one(f->st, "q", 10), a);
    assert_int_equal(claim_one(f->st, "q", 10), c); /* b stays ready */
    job_end ends[3] = {
        {.id = a, .new_state = JOBQ_SUCCEEDED, .result = "\"ok\"",
         .a = {.attempt = 1, .started_at_ms = 10, .kind = "success"}},
        {.id = b, .new_state = JOBQ_SUCCEEDED, .a = {.attempt = 1, .kind = "success"}},
        {.id = c, .new_state = JOBQ_RETRYING, .run_at_ms = 700, .error = "exit 3",
         .a = {.attempt = 1, .started_at_ms = 10, .kind = "exit"}},
    };
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_jobs_end(f->st, ends, 3, 20), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(ends[0].err, JOBQ_OK);
    assert_int_equal(ends[1].err, JOBQ_ESTATE);
    assert_int_equal(ends[2].err, JOBQ_OK);
    int want[3] = {JOBQ_SUCCEEDED, JOBQ_READY, JOBQ_RETRYING};
    int64_t ids[3] = {a, b, c};
    size_t rows[3] = {1, 0, 1};
    for (int i = 0; i < 3; i++) {
        job_row r;
        assert_int_equal(store_get(f->st, ids[i], &r), JOBQ_OK);
        assert_int_equal(r.state, want[i]);
        job_row_clear(&r);
        attempt_row h[2];
        size_t n;
        assert_int_equal(store_attempts(f->st, ids[i], h, 2, &n), JOBQ_OK);
        assert_int_equal(n, rows[i]);
        for (size_t k = 0; k < n; k++) {
            attempt_row_clear(&h[k]);
        }
    }
    job_row r;
    assert_int_equal(store_get(f->st, c, &r), JOBQ_OK);
    assert_int_equal(r.run_at_ms, 700);
    assert_string_equal(r.error, "exit 3");
    job_row_clear(&r);
    assert_int_equal(store_get(f->st, a, &r), JOBQ_OK);
    assert_string_equal(r.result, "\"ok\"");
    assert_int_equal(r.finished_at_ms, 20);
    job_row_clear(&r);
}

static void
test_contract_dependencies(void **state)
{
    fixture *f = *state;
    int64_t a = insert(f->st, "q", 0, 0, 0);
    int64_t b = insert(f->st, "q", 0, 0, 0);
    int64_t c = insert(f->st, "q", 0, 0, 0);
    int64_t *ids = NULL;
    int64_t parents[4];
    size_t n;
    bool waits;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_dep_add(f->st, a, c), JOBQ_OK);
    assert_int_equal(store_dep_add(f->st, a, c), JOBQ_OK); /* twice: no error, one edge */
    assert_int_equal(store_dep_add(f->st, b, c), JOBQ_OK);
    assert_int_equal(store_dep_children(f->st, a, &ids, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], c);
    free(ids);
    assert_int_equal(store_waiting_for(f->st, c, parents, 4, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(parents[0], a);
    assert_int_equal(parents[1], b);
    assert_int_equal(store_dep_drop_parent(f->st, a), JOBQ_OK);
    assert_int_equal(store_dep_pending(f->st, c, &waits), JOBQ_OK);
    assert_true(waits);
    assert_int_equal(store_dep_drop_child(f->st, c), JOBQ_OK);
    assert_int_equal(store_dep_pending(f->st, c, &waits), JOBQ_OK);
    assert_false(waits);
    ids = NULL;
    assert_int_equal(store_dep_children(f->st, b, &ids, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    free(ids);
    int st;
    bool always = true;
    int64_t run_at;
    assert_int_equal(store_dep_job(f->st, c, &st, &always, &run_at), JOBQ_OK);
    assert_int_equal(st, JOBQ_READY);
    assert_false(always);
    assert_int_equal(store_dep_job(f->st, c + 100, &st, &always, &run_at), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

/* A parent's result is copied when it is added (it had ended) or settled (it ends later);
 * claim hands the results of every parent as one JSON object keyed by id; a job without
 * parents gets none; the rows go with the child (delete) and outlive the parent. */
static void
test_contract_parent_results(void **state)
{
    fixture *f = *state;
    int64_t a = insert(f->st, "p", 0, 0, 0);
    int64_t b = insert(f->st, "p", 0, 0, 0);
    assert_int_equal(claim_one(f->st, "p", 1), a);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, a, JOBQ_SUCCEEDED, 2, 0, "ra", NULL), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    int64_t c = insert(f->st, "c", 0, 0, 0);
    int64_t lone = insert(f->st, "l", 0, 0, 0);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_parents_add(f->st, c, a), JOBQ_OK);
    assert_int_equal(store_parents_add(f->st, c, b), JOBQ_OK);
    assert_int_equal(store_parents_add(f->st, c, b), JOBQ_OK); /* twice: one row */
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_one(f->st, "p", 3), b);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, b, JOBQ_SUCCEEDED, 4, 0, "r\"b", NULL), JOBQ_OK);
    assert_int_equal(store_parents_settle(f->st, b), JOBQ_OK);
    assert_int_equal(store_job_delete(f->st, a, JOBQ_SUCCEEDED), JOBQ_OK); /* result kept */
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row rows[2];
    size_t n;
    char want[128];
    snprintf(want, sizeof(want), "{\"%lld\":\"ra\",\"%lld\":\"r\\\"b\"}", (long long)a,
             (long long)b);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "c", 5, 2, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_non_null(rows[0].parent_results);
    assert_string_equal(rows[0].parent_results, want);
    job_row_clear(&rows[0]);
    assert_int_equal(store_claim(f->st, "l", 5, 2, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, lone);
    assert_null(rows[0].parent_results);
    job_row_clear(&rows[0]);
    assert_int_equal(store_job_finish(f->st, c, JOBQ_SUCCEEDED, 6, 0, NULL, NULL), JOBQ_OK);
    assert_int_equal(store_job_delete(f->st, c, JOBQ_SUCCEEDED), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    int calls = 0;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_parents_of(f->st, &c, 1, count_parent, &calls), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(calls, 0);
}

/* Runtime schedules: put inserts then replaces (created_at kept), list is by name, delete
 * takes the schedule's state and ticks with it; the state's two fields are set apart. */
static void
test_contract_schedule_defs(void **state)
{
    fixture *f = *state;
    sched_def d = {.name = "b",
                   .cron = "* * * * *",
                   .timezone = "UTC",
                   .queue = "q",
                   .payload = "{}",
                   .priority = 3,
                   .overlap_skip = true};
    sched_def *defs;
    size_t n;
    bool paused;
    int64_t job, tick;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_sdef_put(f->st, &d, 10), JOBQ_OK);
    d.name = "a";
    d.missed_skip = true;
    assert_int_equal(store_sdef_put(f->st, &d, 11), JOBQ_OK);
    d.cron = "0 * * * *";
    d.overlap_skip = false;
    assert_int_equal(store_sdef_put(f->st, &d, 12), JOBQ_OK);
    assert_int_equal(store_sdef_list(f->st, &defs, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_string_equal(defs[0].name, "a");
    assert_string_equal(defs[0].cron, "0 * * * *");
    assert_true(defs[0].missed_skip);
    assert_false(defs[0].overlap_skip);
    assert_int_equal(defs[0].created_at_ms, 11);
    assert_int_equal(defs[0].updated_at_ms, 12);
    assert_string_equal(defs[1].name, "b");
    assert_int_equal(defs[1].priority, 3);
    assert_true(defs[1].overlap_skip);
    for (size_t i = 0; i < n; i++) {
        sched_def_clear(&defs[i]);
    }
    free(defs);
    assert_int_equal(store_sstate_get(f->st, "a", &paused, &job), JOBQ_ENOENT);
    assert_int_equal(store_sstate_set_paused(f->st, "a", true), JOBQ_OK);
    assert_int_equal(store_sstate_set_job(f->st, "a", 42), JOBQ_OK);
    assert_int_equal(store_sstate_get(f->st, "a", &paused, &job), JOBQ_OK);
    assert_true(paused);
    assert_int_equal(job, 42);
    assert_int_equal(store_sstate_set_paused(f->st, "a", false), JOBQ_OK);
    assert_int_equal(store_sstate_get(f->st, "a", &paused, &job), JOBQ_OK);
    assert_false(paused);
    assert_int_equal(job, 42);
    assert_int_equal(store_schedule_set(f->st, "a", 1000), JOBQ_OK);
    assert_int_equal(store_schedule_since(f->st, "a", 5, &tick), JOBQ_OK);
    assert_int_equal(store_sdef_delete(f->st, "a"), JOBQ_OK);
    assert_int_equal(store_sdef_delete(f->st, "a"), JOBQ_ENOENT);
    assert_int_equal(store_sstate_get(f->st, "a", &paused, &job), JOBQ_ENOENT);
    assert_int_equal(store_schedule_last(f->st, "a", &tick), JOBQ_ENOENT);
    assert_int_equal(store_schedule_since(f->st, "a", 7, &tick), JOBQ_OK);
    assert_int_equal(tick, 7); /* seen anew */
    assert_int_equal(store_sdef_list(f->st, &defs, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    sched_def_clear(&defs[0]);
    free(defs);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

static void
test_contract_groups(void **state)
{
    fixture *f = *state;
    group_spec g = {.size = 2,
                    .oc_queue = "done",
                    .oc_payload = "{\"x\":1}",
                    .oc_priority = 3,
                    .oc_max_attempts = 4,
                    .oc_timeout_ms = 5000};
    int64_t gid, gid2, of;
    group_oc oc;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_group_create(f->st, &g, 10, &gid), JOBQ_OK);
    /* Open and empty: nothing left to end. */
    assert_int_equal(store_group_ended(f->st, gid, &oc), JOBQ_OK);
    group_oc_clear(&oc);
    job_spec s = {
        .queue = "q", .payload = "1", .max_attempts = 1, .timeout_ms = 1, .group_id = gid};
    int64_t m1, m2;
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_READY, 10, 0, NULL, &m1), JOBQ_OK);
    assert_int_equal(store_job_insert(f->st, &s, JOBQ_WAITING, 10, 0, NULL, &m2), JOBQ_OK);
    assert_int_equal(store_group_of(f->st, m1, &of), JOBQ_OK);
    assert_int_equal(of, gid);
    assert_int_equal(store_group_ended(f->st, gid, &oc), JOBQ_ENOENT);
    assert_int_equal(store_job_set_state(f->st, m1, -1, JOBQ_SUCCEEDED, 20, NULL), JOBQ_OK);
    assert_int_equal(store_group_ended(f->st, gid, &oc), JOBQ_ENOENT);
    assert_int_equal(store_job_set_state(f->st, m2, -1, JOBQ_DEAD, 21, "x"), JOBQ_OK);
    assert_int_equal(store_group_ended(f->st, gid, &oc), JOBQ_OK);
    assert_string_equal(oc.queue, "done");
    assert_string_equal(oc.payload, "{\"x\":1}");
    assert_int_equal(oc.priority, 3);
    assert_int_equal(oc.max_attempts, 4);
    assert_int_equal(oc.timeout_ms, 5000);
    group_oc_clear(&oc);
    assert_int_equal(store_group_complete(f->st, gid, 30, 99), JOBQ_OK);
    assert_int_equal(store_group_ended(f->st, gid, &oc), JOBQ_ENOENT); /* completed: once */
    group_spec none = {.size = 0};
    assert_int_equal(store_group_create(f->st, &none, 10, &gid2), JOBQ_OK);
    assert_int_equal(store_group_ended(f->st, gid2, &oc), JOBQ_OK);
    assert_null(oc.queue);
    group_oc_clear(&oc);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    group_info gi;
    assert_int_equal(store_group_get(f->st, gid, true, &gi), JOBQ_OK);
    assert_int_equal(gi.completed_at_ms, 30);
    assert_int_equal(gi.oc_job_id, 99);
    assert_int_equal(gi.counts[JOBQ_SUCCEEDED], 1);
    assert_int_equal(gi.counts[JOBQ_DEAD], 1);
    assert_int_equal(gi.nmembers, 2);
    assert_int_equal(gi.members[1].id, m2);
    assert_string_equal(gi.members[1].error, "x");
    group_info_clear(&gi);
    assert_int_equal(store_group_get(f->st, gid + 100, false, &gi), JOBQ_ENOENT);
}

static void
test_contract_attempt_count_and_requeue(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "q", 0, 0, 0);
    int64_t n;
    attempt_rec crash = {.attempt = 1, .started_at_ms = 1, .kind = "crash"};
    attempt_rec stop = {.attempt = 1, .started_at_ms = 1, .kind = "shutdown"};
    assert_int_equal(claim_one(f->st, "q", 1), id);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_attempt_add(f->st, id, &crash, 2, "c"), JOBQ_OK);
    assert_int_equal(store_attempt_add(f->st, id, &crash, 3, "c"), JOBQ_OK);
    assert_int_equal(store_requeue(f->st, id, 4, "stopped", &stop), JOBQ_OK);
    assert_int_equal(store_requeue(f->st, id, 4, "stopped", &stop), JOBQ_ESTATE);
    assert_int_equal(store_attempt_count(f->st, id, "crash", &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_attempt_count(f->st, id, "shutdown", &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_READY);
    assert_int_equal(r.attempt, 0); /* given back */
    assert_string_equal(r.error, "stopped");
    job_row_clear(&r);
}

static void
test_contract_running(void **state)
{
    fixture *f = *state;
    job_row *rows = NULL;
    size_t n = 9;
    assert_int_equal(store_running(f->st, &rows, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    free(rows);
    int64_t a = insert(f->st, "a", 0, 0, 0);
    int64_t b = insert(f->st, "b", 0, 0, 0);
    insert(f->st, "b", 0, 0, 0); /* ready: not running */
    assert_int_equal(claim_one(f->st, "a", 7), a);
    assert_int_equal(claim_one(f->st, "b", 8), b);
    assert_int_equal(store_running(f->st, &rows, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        job_row *r = &rows[i];
        assert_true(r->id == a || r->id == b);
        assert_string_equal(r->queue, r->id == a ? "a" : "b");
        assert_int_equal(r->state, JOBQ_RUNNING);
        assert_int_equal(r->attempt, 1);
        assert_int_equal(r->started_at_ms, r->id == a ? 7 : 8);
        job_row_clear(r);
    }
    free(rows);
}

static void
test_contract_sweep_deletes_old_finished_jobs_and_history(void **state)
{
    fixture *f = *state;
    attempt_rec rec = {.attempt = 1, .started_at_ms = 1, .kind = "success"};
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = insert(f->st, "q", 0, 0, 0);
        assert_int_equal(claim_one(f->st, "q", 1), ids[i]);
        assert_int_equal(store_begin(f->st), JOBQ_OK);
        assert_int_equal(store_job_finish(f->st, ids[i], JOBQ_SUCCEEDED, 100 + i, 0, "ok", NULL),
                         JOBQ_OK);
        assert_int_equal(store_attempt_add(f->st, ids[i], &rec, 100 + i, NULL), JOBQ_OK);
        assert_int_equal(store_commit(f->st), JOBQ_OK);
    }
    size_t n;
    int64_t at;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    /* Finished before 103: ids[0..2], two per batch. */
    assert_int_equal(store_sweep(f->st, "q", JOBQ_SUCCEEDED, 103, 2, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_sweep(f->st, "q", JOBQ_SUCCEEDED, 103, 2, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_sweep(f->st, "q", JOBQ_SUCCEEDED, 103, 2, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_oldest_finished(f->st, "q", JOBQ_SUCCEEDED, &at), JOBQ_OK);
    assert_int_equal(at, 103);
    assert_int_equal(store_oldest_finished(f->st, "q", JOBQ_DEAD, &at), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, ids[2], &r), JOBQ_ENOENT);
    assert_int_equal(store_get(f->st, ids[3], &r), JOBQ_OK);
    job_row_clear(&r);
    attempt_row h[2];
    assert_int_equal(store_attempts(f->st, ids[0], h, 2, &n), JOBQ_OK);
    assert_int_equal(n, 0);
}

/* Progress and checkpoint are stored on the job, each report replacing the last; a checkpoint
 * left NULL keeps the stored one; a job that does not exist is JOBQ_ENOENT; claim hands the
 * checkpoint on to the next attempt. */
static void
test_contract_progress_and_checkpoint(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "q", 0, 0, 0);
    job_row r;
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_false(r.has_progress);
    assert_null(r.note);
    assert_null(r.checkpoint);
    job_row_clear(&r);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    progress_set p = {.has_progress = true, .progress = 42.5, .note = "copying",
                      .checkpoint = "{\"offset\":1200}"};
    assert_int_equal(store_job_progress(f->st, id, &p), JOBQ_OK);
    progress_set q = {.has_progress = true, .progress = 50};
    assert_int_equal(store_job_progress(f->st, id, &q), JOBQ_OK);
    progress_set none = {.checkpoint = "{\"offset\":1300}"};
    assert_int_equal(store_job_progress(f->st, id + 1000, &none), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_true(r.has_progress);
    assert_true(r.progress == 50);
    assert_null(r.note);
    assert_string_equal(r.checkpoint, "{\"offset\":1200}");
    job_row_clear(&r);
    assert_int_equal(claim_one(f->st, "q", 1), id);
    job_row rows[1];
    size_t n = 0;
    int64_t id2 = insert(f->st, "q", 0, 0, 0);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_progress(f->st, id2, &none), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "q", 2, 1, rows, &n), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, id2);
    assert_false(rows[0].has_progress);
    assert_string_equal(rows[0].checkpoint, "{\"offset\":1300}");
    job_row_clear(&rows[0]);
}

/* A job's log: lines numbered from 1 across appends, read after a cursor, capped to the newest
 * lines by count and by bytes (the newest line kept whatever its size), deleted by the sweep
 * with the job, and another job's log untouched. */
static void
test_contract_logs_capped_and_swept(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "q", 0, 0, 0);
    int64_t other = insert(f->st, "q", 0, 0, 0);
    const char *lines[] = {"one", "two", "three", "four", "five"};
    int64_t last = 0;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_log_append(f->st, id, 1, 10, lines, 2, 1000, 1 << 20, &last), JOBQ_OK);
    assert_int_equal(last, 2);
    assert_int_equal(store_log_append(f->st, other, 1, 10, lines, 1, 1000, 1 << 20, NULL), JOBQ_OK);
    assert_int_equal(store_log_append(f->st, id, 2, 11, lines + 2, 3, 1000, 1 << 20, &last),
                     JOBQ_OK);
    assert_int_equal(last, 5);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    log_row rows[8];
    size_t n = 0;
    assert_int_equal(store_logs(f->st, id, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 5);
    assert_int_equal(rows[0].seq, 1);
    assert_string_equal(rows[0].line, "one");
    assert_int_equal(rows[4].seq, 5);
    assert_int_equal(rows[4].attempt, 2);
    assert_int_equal(rows[4].at_ms, 11);
    assert_string_equal(rows[4].line, "five");
    for (size_t i = 0; i < n; i++) {
        log_row_clear(&rows[i]);
    }
    assert_int_equal(store_logs(f->st, id, 3, rows, 1, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].line, "four");
    log_row_clear(&rows[0]);
    /* At most 3 lines: 3, 4, 5 stay; then at most 9 bytes: "five" (4) and "six" (3) fit with
     * nothing before (4 + 3 + "four" 4 = 11 > 9). */
    const char *six[] = {"six"};
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_log_append(f->st, id, 2, 12, NULL, 0, 3, 1 << 20, NULL), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_logs(f->st, id, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].seq, 3);
    for (size_t i = 0; i < n; i++) {
        log_row_clear(&rows[i]);
    }
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_log_append(f->st, id, 2, 12, six, 1, 1000, 9, &last), JOBQ_OK);
    assert_int_equal(last, 6);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_logs(f->st, id, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].line, "five");
    assert_string_equal(rows[1].line, "six");
    for (size_t i = 0; i < n; i++) {
        log_row_clear(&rows[i]);
    }
    /* The newest line stays even over the byte cap. */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_log_append(f->st, id, 2, 12, lines + 2, 1, 1000, 2, NULL), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_logs(f->st, id, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].seq, 7);
    assert_string_equal(rows[0].line, "three");
    log_row_clear(&rows[0]);
    /* Retention deletes the log with its job, not another job's. */
    assert_int_equal(claim_one(f->st, "q", 1), id);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, id, JOBQ_SUCCEEDED, 100, 0, "ok", NULL), JOBQ_OK);
    assert_int_equal(store_sweep(f->st, "q", JOBQ_SUCCEEDED, 200, 10, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_logs(f->st, id, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_logs(f->st, other, 0, rows, 8, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    log_row_clear(&rows[0]);
}

static int promoted_count;
static void
count_promoted(void *arg, const char *queue, int old_state)
{
    (void)arg;
    assert_string_equal(queue, "q");
    assert_true(old_state == JOBQ_SCHEDULED || old_state == JOBQ_RETRYING);
    promoted_count++;
}

static void
test_contract_promote_due(void **state)
{
    fixture *f = *state;
    insert(f->st, "q", 0, 100, 0);
    insert(f->st, "q", 0, 200, 0);
    insert(f->st, "q", 0, 300, 0);
    size_t n;
    promoted_count = 0;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_promote_due(f->st, 200, 10, count_promoted, NULL, &n), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(promoted_count, 2);
    int64_t at;
    assert_int_equal(store_next_due(f->st, &at), JOBQ_OK);
    assert_int_equal(at, 300);
}

static void
test_contract_list_paging(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        insert(f->st, i % 2 ? "a" : "b", 0, 0, 0);
    }
    job_row rows[3];
    size_t n;
    bool more;
    list_filter lf = {.queue = "b", .state = -1, .after_id = 0, .limit = 2};
    assert_int_equal(store_list(f->st, &lf, rows, &n, &more), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_true(more);
    assert_int_equal(rows[0].id, 1);
    assert_int_equal(rows[1].id, 3);
    lf.after_id = rows[1].id;
    job_row_clear(&rows[0]);
    job_row_clear(&rows[1]);
    assert_int_equal(store_list(f->st, &lf, rows, &n, &more), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_int_equal(rows[0].id, 5);
    job_row_clear(&rows[0]);
    /* A last page that is exactly full: nothing after it. */
    lf = (list_filter){.queue = "b", .state = -1, .after_id = 0, .limit = 3};
    assert_int_equal(store_list(f->st, &lf, rows, &n, &more), JOBQ_OK);
    assert_int_equal(n, 3);
    assert_false(more);
    for (size_t i = 0; i < n; i++) {
        job_row_clear(&rows[i]);
    }
    lf = (list_filter){.queue = NULL, .state = JOBQ_DEAD, .limit = 3};
    assert_int_equal(store_list(f->st, &lf, rows, &n, &more), JOBQ_OK);
    assert_int_equal(n, 0);
    assert_false(more);
}

/* sync_loop: store_sync from a thread of its own, as the writer's pipeline calls it. */
static void *
sync_loop(void *arg)
{
    store *st = arg;
    char msg[256];
    for (int i = 0; i < 50; i++) {
        if (store_sync(st, msg, sizeof(msg)) != JOBQ_OK) {
            return strdup(msg);
        }
    }
    return NULL;
}

/* The contract of a store whose commits sync apart: store_sync runs on another thread while
 * transactions go on, and a checkpoint leaves every commit in place. */
static void
test_contract_sync_apart(void **state)
{
    fixture *f = *state;
    if (!store_sync_apart(f->st)) {
        return; /* its commits are durable on return */
    }
    store_set_sync(f->st, false);
    int64_t first = insert(f->st, "q", 0, 0, 1000);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sync_loop, f->st), 0);
    for (int i = 0; i < 200; i++) {
        insert(f->st, "q", 0, 0, 1000);
    }
    void *why;
    assert_int_equal(pthread_join(t, &why), 0);
    if (why != NULL) {
        fail_msg("store_sync: %s", (char *)why);
    }
    char msg[256] = "";
    assert_int_equal(store_sync(f->st, msg, sizeof(msg)), JOBQ_OK);
    assert_int_equal(store_checkpoint(f->st, msg, sizeof(msg)), JOBQ_OK);
    int64_t last = insert(f->st, "q", 0, 0, 1000);
    assert_int_equal(store_sync(f->st, msg, sizeof(msg)), JOBQ_OK);
    assert_int_equal(last, first + 201);
    job_row r;
    assert_int_equal(store_get(f->st, first + 100, &r), JOBQ_OK);
    job_row_clear(&r);
}

/* SQLite: durability full syncs apart, normal does not; the recovery checkpoint empties the
 * log. */
static void
test_sqlite_sync_apart_and_checkpoint(void **state)
{
    fixture *f = *state;
    assert_true(store_sync_apart(f->st));
    store_set_sync(f->st, false);
    insert(f->st, "q", 0, 0, 1000);
    char msg[256] = "", wal[600];
    assert_int_equal(store_checkpoint(f->st, msg, sizeof(msg)), JOBQ_OK);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    store_close(f->st);
    char err[256] = "";
    assert_int_equal(store_open(f->path, DURABILITY_NORMAL, &f->st, err, sizeof(err)), JOBQ_OK);
    assert_false(store_sync_apart(f->st));
}

static void
test_sqlite_newer_database_refused(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    f->st = NULL;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", migrate_latest() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[512] = "";
    assert_int_not_equal(store_open(f->path, DURABILITY_FULL, &f->st, err, sizeof(err)), JOBQ_OK);
    assert_null(f->st);
    assert_non_null(strstr(err, "newer jobqd"));
}

static void
test_sqlite_fresh_database_gets_every_migration(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), migrate_latest());
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

#ifdef JOBQ_HAVE_POSTGRES
/* The claim must be one range of jobs_claim in claim order, never a sort of the backlog, with
 * the plan a prepared statement keeps (generic: the state is a parameter). */
static void
test_pg_claim_uses_claim_index(void **state)
{
    fixture *f = *state;
    free(pg_admin(f->db, "INSERT INTO jobs (queue, payload, priority, state, run_at, "
                         "max_attempts, timeout_ms, created_at) SELECT 'q' || (i % 10), '{}', "
                         "i % 3, i % 8, i, 1, 1000, i FROM generate_series(1, 20000) i; "
                         "ANALYZE jobs"));
    /* On a connection of its own: a generic plan, as a prepared statement ends up with. */
    char url[512];
    pg_url(url, sizeof(url), f->db);
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "SET plan_cache_mode = force_generic_plan"));
    PQclear(PQexec(c, "PREPARE c(text, smallint, bigint) AS SELECT id FROM jobs WHERE "
                      "queue = $1 AND state = $2 AND group_key IS NULL "
                      "ORDER BY priority DESC, run_at, id LIMIT $3 "
                      "FOR UPDATE SKIP LOCKED"));
    PGresult *r = PQexec(c, "EXPLAIN EXECUTE c('q1', 1, 10)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char text[2048] = "";
    for (int i = 0; i < PQntuples(r); i++) {
        strncat(text, PQgetvalue(r, i, 0), sizeof(text) - strlen(text) - 2);
        strcat(text, ";");
    }
    PQclear(r);
    PQfinish(c);
    if (strstr(text, "jobs_claim") == NULL || strstr(text, "Sort") != NULL) {
        fail_msg("claim plan: %s", text);
    }
}

static void
test_pg_migrations_recorded_once(void **state)
{
    fixture *f = *state;
    /* Every file once, up to the highest number (numbers may skip while a branch's migration
     * waits for the ones before it). */
    extern const size_t jobq_pg_migrations_count;
    char both[40];
    snprintf(both, sizeof(both), "%zu:%d", jobq_pg_migrations_count, store_pg_migrate_latest());
    char *v = pg_admin(f->db, "SELECT count(*) || ':' || max(version) FROM jobq_migrations");
    assert_string_equal(v, both);
    free(v);
    /* A second node opening the same database applies nothing. */
    store *again = NULL;
    char err[1024] = "";
    if (store_open(f->path, DURABILITY_FULL, &again, err, sizeof(err)) != JOBQ_OK) {
        fail_msg("second store_open: %s", err);
    }
    store_close(again);
    v = pg_admin(f->db, "SELECT count(*) || ':' || max(version) FROM jobq_migrations");
    assert_string_equal(v, both);
    free(v);
}

static void
test_pg_newer_database_refused(void **state)
{
    fixture *f = *state;
    char sql[128];
    snprintf(sql, sizeof(sql), "INSERT INTO jobq_migrations (version, name) VALUES (%d, 'x')",
             store_pg_migrate_latest() + 1);
    free(pg_admin(f->db, sql));
    store *again = NULL;
    char err[1024] = "";
    assert_int_not_equal(store_open(f->path, DURABILITY_FULL, &again, err, sizeof(err)), JOBQ_OK);
    assert_null(again);
    assert_non_null(strstr(err, "newer jobqd"));
}

/* Two connections (two nodes) claiming at once: the second skips the rows the first holds,
 * without waiting, and no job is claimed twice. */
static void
test_pg_concurrent_claims_skip_locked(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 10; i++) {
        insert(f->st, "q", 0, 0, 0);
    }
    store *other = NULL;
    char err[1024] = "";
    if (store_open(f->path, DURABILITY_FULL, &other, err, sizeof(err)) != JOBQ_OK) {
        fail_msg("second store_open: %s", err);
    }
    job_row a[10], b[10];
    size_t na, nb;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "q", 5, 3, a, &na), JOBQ_OK);
    assert_int_equal(na, 3);
    assert_int_equal(store_begin(other), JOBQ_OK);
    assert_int_equal(store_claim(other, "q", 5, 10, b, &nb), JOBQ_OK); /* does not block */
    assert_int_equal(nb, 7);
    assert_int_equal(store_commit(other), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < nb; j++) {
            assert_int_not_equal(a[i].id, b[j].id);
        }
    }
    for (size_t i = 0; i < na; i++) {
        job_row_clear(&a[i]);
    }
    for (size_t j = 0; j < nb; j++) {
        job_row_clear(&b[j]);
    }
    assert_int_equal(store_begin(other), JOBQ_OK);
    assert_int_equal(store_claim(other, "q", 5, 10, b, &nb), JOBQ_OK);
    assert_int_equal(store_commit(other), JOBQ_OK);
    assert_int_equal(nb, 0);
    store_close(other);
}

/* A second node's submit of a key: lifecycle_insert_dedupe in its own transaction. */
typedef struct key_race {
    store *st;
    int64_t id;
    bool dup;
    int err;
} key_race;

static void *
key_race_submit(void *arg)
{
    key_race *k = arg;
    job_spec s = {.queue = "q",
                  .payload = "1",
                  .payload_hash = 1,
                  .max_attempts = 1,
                  .timeout_ms = 1,
                  .key = "k",
                  .key_ttl_ms = 1000000,
                  .dedupe = JOBQ_DEDUPE_UNTIL_DONE};
    int js;
    k->err = store_begin(k->st);
    if (k->err == JOBQ_OK) {
        k->err = lifecycle_insert_dedupe(k->st, &s, 2, &k->id, &k->dup, &js, NULL);
    }
    if (k->err == JOBQ_OK) {
        k->err = store_commit(k->st);
    }
    return NULL;
}

/* Two nodes submit one key at once: the second waits for the first's transaction (the key's
 * lock) and finds its job, instead of admitting a second one. */
static void
test_pg_key_race_two_nodes(void **state)
{
    fixture *f = *state;
    store *other = NULL;
    char err[1024] = "";
    if (store_open(f->path, DURABILITY_FULL, &other, err, sizeof(err)) != JOBQ_OK) {
        fail_msg("second store_open: %s", err);
    }
    job_spec s = {.queue = "q",
                  .payload = "1",
                  .payload_hash = 1,
                  .max_attempts = 1,
                  .timeout_ms = 1,
                  .key = "k",
                  .key_ttl_ms = 1000000,
                  .dedupe = JOBQ_DEDUPE_UNTIL_DONE};
    int64_t id;
    bool dup;
    int js;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 1, &id, &dup, &js, NULL), JOBQ_OK);
    key_race k = {.st = other};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, key_race_submit, &k), 0);
    /* Commit only once the other node waits for the key's lock. */
    for (;;) {
        char *w = pg_admin(f->db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND NOT granted");
        bool waiting = strcmp(w, "1") == 0;
        free(w);
        if (waiting) {
            break;
        }
        usleep(2000);
    }
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(k.err, JOBQ_OK);
    assert_true(k.dup);
    assert_int_equal(k.id, id);
    char *n = pg_admin(f->db, "SELECT count(*) FROM jobs");
    assert_string_equal(n, "1");
    free(n);
    store_close(other);
}

/* A lost connection fails the statement that finds it with a message saying where and what to
 * do; the next transaction reconnects. */
static void
test_pg_lost_connection_reconnects(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "q", 0, 0, 0);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' "
             "AND application_name = 'jobqd'",
             f->db);
    char *n = pg_admin("postgres", sql);
    assert_string_equal(n, "1");
    free(n);
    job_row r;
    assert_int_equal(store_get(f->st, id, &r), JOBQ_EUNAVAIL); /* retryable: nothing done */
    const char *msg = store_errmsg(f->st);
    if (strstr(msg, "cannot reach PostgreSQL at socket ") == NULL ||
        strstr(msg, "check [server] database") == NULL) {
        fail_msg("message: %s", msg);
    }
    assert_false(store_in_transaction(f->st));
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(r.id, id);
    job_row_clear(&r);
}

static void
test_pg_unreachable_server_says_where(void **state)
{
    (void)state;
    store *st = NULL;
    char err[1024] = "";
    assert_int_equal(store_open("postgresql://jobq@/x?host=/nonexistent-jobq&port=1&"
                                "connect_timeout=2",
                                DURABILITY_FULL, &st, err, sizeof(err)),
                     JOBQ_EUNAVAIL);
    assert_null(st);
    if (strstr(err, "cannot reach PostgreSQL at") == NULL || strstr(err, "nonexistent-jobq") == NULL ||
        strstr(err, "check [server] database") == NULL) {
        fail_msg("message: %s", err);
    }
}
#endif

/* A password in the database setting never reaches a log line. */
/* ---- bulk operations ---- */

/* ins: inserts one job for the pick tests: queue, state, created_at, finished_at (0: none),
 * error and key (NULL: none). */
static int64_t
ins(store *st, const char *queue, int state, int64_t created, int64_t finished, const char *error,
    const char *key)
{
    job_spec s = {.queue = queue,
                  .payload = "{\"n\":1}",
                  .run_at_ms = created,
                  .max_attempts = 3,
                  .timeout_ms = 1000,
                  .key = key};
    int64_t id;
    assert_int_equal(store_job_insert(st, &s, state, created, finished, error, &id), JOBQ_OK);
    return id;
}

typedef struct picks {
    int64_t ids[64];
    int states[64];
    size_t n;
} picks;

static void
collect_picks(void *arg, int64_t id, const char *queue, int state)
{
    picks *p = arg;
    assert_non_null(queue);
    p->ids[p->n] = id;
    p->states[p->n++] = state;
}

/* pick_n: how many jobs f picks among all (and the picks in *p). */
static size_t
pick_n(store *st, const job_filter *f, picks *p)
{
    memset(p, 0, sizeof(*p));
    size_t n = 99;
    assert_int_equal(store_pick(st, f, 0, INT64_MAX, 64, collect_picks, p, &n), JOBQ_OK);
    assert_int_equal(n, p->n);
    return n;
}

static void
test_contract_pick_filters(void **state)
{
    fixture *f = *state;
    int64_t max = -1;
    assert_int_equal(store_max_id(f->st, &max), JOBQ_OK);
    assert_int_equal(max, 0);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    int64_t a = ins(f->st, "mail", JOBQ_DEAD, 1000, 1500, "exit 1: timeout talking to smtp", "u-1");
    int64_t b = ins(f->st, "mail", JOBQ_CANCELLED, 2000, 2500, "cancelled: 100%_done", "u-2");
    int64_t c = ins(f->st, "mail", JOBQ_READY, 3000, 0, NULL, "v-1");
    int64_t d = ins(f->st, "sms", JOBQ_DEAD, 4000, 4500, "timeout", NULL);
    int64_t e = ins(f->st, "sms", JOBQ_SUCCEEDED, 5000, 5500, NULL, "u%_x");
    int64_t g = ins(f->st, "sms", JOBQ_SCHEDULED, 6000, 0, NULL, NULL);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_max_id(f->st, &max), JOBQ_OK);
    assert_int_equal(max, g);
    picks p;
    job_filter all = {0};
    assert_int_equal(pick_n(f->st, &all, &p), 6);
    assert_int_equal(p.ids[0], a); /* ascending ids, with their states */
    assert_int_equal(p.states[0], JOBQ_DEAD);
    assert_int_equal(p.ids[5], g);
    assert_int_equal(p.states[5], JOBQ_SCHEDULED);
    job_filter fq = {.queue = "mail"};
    assert_int_equal(pick_n(f->st, &fq, &p), 3);
    job_filter fs = {.states = 1u << JOBQ_DEAD};
    assert_int_equal(pick_n(f->st, &fs, &p), 2);
    assert_int_equal(p.ids[0], a);
    assert_int_equal(p.ids[1], d);
    job_filter fs2 = {.queue = "sms", .states = (1u << JOBQ_DEAD) | (1u << JOBQ_SCHEDULED)};
    assert_int_equal(pick_n(f->st, &fs2, &p), 2);
    assert_int_equal(p.ids[1], g);
    int64_t some[] = {b, e, 999999};
    job_filter fi = {.ids = some, .nids = 3};
    assert_int_equal(pick_n(f->st, &fi, &p), 2);
    assert_int_equal(p.ids[0], b);
    job_filter fc = {.created_after_ms = 2000, .created_before_ms = 5000}; /* [2000, 5000) */
    assert_int_equal(pick_n(f->st, &fc, &p), 3);
    assert_int_equal(p.ids[0], b);
    assert_int_equal(p.ids[2], d);
    job_filter ff = {.finished_before_ms = 4500}; /* unfinished jobs never match */
    assert_int_equal(pick_n(f->st, &ff, &p), 2);
    job_filter ff2 = {.finished_after_ms = 1};
    assert_int_equal(pick_n(f->st, &ff2, &p), 4);
    job_filter fe = {.error_contains = "timeout"};
    assert_int_equal(pick_n(f->st, &fe, &p), 2);
    /* A substring, not a pattern: % and _ are themselves, quotes are text. */
    job_filter fe2 = {.error_contains = "0%_d"};
    assert_int_equal(pick_n(f->st, &fe2, &p), 1);
    assert_int_equal(p.ids[0], b);
    job_filter fe3 = {.error_contains = "%"};
    assert_int_equal(pick_n(f->st, &fe3, &p), 1);
    job_filter fe4 = {.error_contains = "'; DELETE FROM jobs; --"};
    assert_int_equal(pick_n(f->st, &fe4, &p), 0);
    job_filter fk = {.key_prefix = "u-"};
    assert_int_equal(pick_n(f->st, &fk, &p), 2);
    job_filter fk2 = {.key_prefix = "u%"};
    assert_int_equal(pick_n(f->st, &fk2, &p), 1);
    assert_int_equal(p.ids[0], e);
    job_filter fk3 = {.key_prefix = "u_"};
    assert_int_equal(pick_n(f->st, &fk3, &p), 0);
    job_filter fkq = {.queue = "mail", .key_prefix = "v", .states = 1u << JOBQ_READY};
    assert_int_equal(pick_n(f->st, &fkq, &p), 1);
    assert_int_equal(p.ids[0], c);
    /* The window of ids and the limit: (after, upto], max rows, ascending. */
    memset(&p, 0, sizeof(p));
    size_t n = 0;
    assert_int_equal(store_pick(f->st, &all, a, e, 2, collect_picks, &p, &n), JOBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(p.ids[0], b);
    assert_int_equal(p.ids[1], c);
    memset(&p, 0, sizeof(p));
    assert_int_equal(store_pick(f->st, &all, d, e, 10, collect_picks, &p, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(p.ids[0], e);
}

static void
test_contract_delete_priority_run_at_fenced(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    int64_t a = ins(f->st, "q", JOBQ_DEAD, 1000, 1500, "bad", NULL);
    int64_t b = ins(f->st, "q", JOBQ_READY, 1000, 0, NULL, NULL);
    int64_t c = ins(f->st, "q", JOBQ_WAITING, 1000, 0, NULL, NULL);
    attempt_rec rec = {.attempt = 1, .started_at_ms = 1100, .kind = "exit"};
    assert_int_equal(store_attempt_add(f->st, a, &rec, 1500, "bad"), JOBQ_OK);
    assert_int_equal(store_dep_add(f->st, a, c), JOBQ_OK);
    /* Fenced on the state asked for: a wrong state changes nothing. */
    assert_int_equal(store_job_delete(f->st, a, JOBQ_CANCELLED), JOBQ_ESTATE);
    assert_int_equal(store_job_delete(f->st, 999999, JOBQ_DEAD), JOBQ_ESTATE);
    assert_int_equal(store_job_set_priority(f->st, b, JOBQ_SCHEDULED, 7), JOBQ_ESTATE);
    assert_int_equal(store_job_set_run_at(f->st, b, JOBQ_SCHEDULED, JOBQ_READY, 9), JOBQ_ESTATE);
    /* The delete takes the job's history and dependency rows with it. */
    assert_int_equal(store_job_delete(f->st, a, JOBQ_DEAD), JOBQ_OK);
    assert_int_equal(store_job_set_priority(f->st, b, JOBQ_READY, 7), JOBQ_OK);
    assert_int_equal(store_job_set_run_at(f->st, b, JOBQ_READY, JOBQ_SCHEDULED, 90000), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, a, &r), JOBQ_ENOENT);
    attempt_row past[4];
    size_t n = 9;
    assert_int_equal(store_attempts(f->st, a, past, 4, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    bool waits = true;
    assert_int_equal(store_dep_pending(f->st, c, &waits), JOBQ_OK);
    assert_false(waits);
    assert_int_equal(store_get(f->st, b, &r), JOBQ_OK);
    assert_int_equal(r.priority, 7);
    assert_int_equal(r.state, JOBQ_SCHEDULED);
    assert_int_equal(r.run_at_ms, 90000);
    job_row_clear(&r);
    int64_t next = 0;
    assert_int_equal(store_next_due(f->st, &next), JOBQ_OK); /* the due index sees it */
    assert_int_equal(next, 90000);
}

/* Keys held until their job ends (dedupe modes): put replaces, release forgets only the held
 * keys of that job, retention never sweeps a held key by age; replace is fenced. */
static void
test_contract_held_keys_and_replace(void **state)
{
    fixture *f = *state;
    int64_t id, created;
    uint64_t hash;
    bool held;
    int64_t j = insert(f->st, "mail", 0, 0, 10);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_ENOENT);
    assert_int_equal(store_key_put(f->st, "mail", "h", j, 5, 100, true), JOBQ_OK);
    assert_int_equal(store_key_put(f->st, "mail", "t", j, 6, 100, false), JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_OK);
    assert_true(held && id == j && hash == 5 && created == 100);
    assert_int_equal(store_key_put(f->st, "mail", "h", j, UINT64_MAX, 100, true), JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_OK);
    assert_true(hash == UINT64_MAX);
    size_t n;
    int64_t at;
    assert_int_equal(store_sweep_keys(f->st, "mail", 1000, 10, &n), JOBQ_OK);
    assert_int_equal(n, 1); /* "t" only */
    assert_int_equal(store_oldest_key(f->st, "mail", &at), JOBQ_ENOENT);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_OK);
    assert_int_equal(store_key_release(f->st, j + 1), JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_OK);
    assert_int_equal(store_job_replace(f->st, j, JOBQ_SCHEDULED, JOBQ_SCHEDULED, "2", 50),
                     JOBQ_ESTATE);
    assert_int_equal(store_job_replace(f->st, j, JOBQ_READY, JOBQ_SCHEDULED, "{\"n\":2}", 50),
                     JOBQ_OK);
    assert_int_equal(store_key_release(f->st, j), JOBQ_OK);
    assert_int_equal(store_key_lock(f->st, "mail", "h", &id, &hash, &created, &held), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, j, &r), JOBQ_OK);
    assert_string_equal(r.payload, "{\"n\":2}");
    assert_int_equal(r.state, JOBQ_SCHEDULED);
    assert_int_equal(r.run_at_ms, 50);
    job_row_clear(&r);
}

/* The dedupe modes' policy (lifecycle_insert_dedupe) on every backend: until_done admits one
 * job until its end frees the key; replace gives a waiting job the new payload and run time
 * and leaves a running one alone; debounce caps the run time at the first use + max. */
static void
test_contract_dedupe_modes(void **state)
{
    fixture *f = *state;
    job_spec s = {.queue = "mail",
                  .payload = "1",
                  .payload_hash = 1,
                  .max_attempts = 1,
                  .timeout_ms = 1,
                  .key = "k",
                  .key_ttl_ms = 1000000,
                  .dedupe = JOBQ_DEDUPE_UNTIL_DONE};
    int64_t id1, id2;
    bool dup;
    int js;
    dedupe_out out;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 0, &id1, &dup, &js, &out), JOBQ_OK);
    assert_false(dup || out.replaced);
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 1, &id2, &dup, &js, &out), JOBQ_OK);
    assert_true(dup && id2 == id1);
    s.payload_hash = 2;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 1, &id2, &dup, &js, &out), JOBQ_ECONFLICT);
    /* Its end frees the key in the same transaction. */
    job_row rows[1];
    size_t n;
    assert_int_equal(store_claim(f->st, "mail", 2, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    job_row_clear(&rows[0]);
    assert_int_equal(lifecycle_finish(f->st, id1, JOBQ_SUCCEEDED, 3, 0, NULL, NULL, NULL), JOBQ_OK);
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 4, &id2, &dup, &js, &out), JOBQ_OK);
    assert_true(!dup && id2 > id1);

    /* replace: a waiting job takes the payload and the run time, same id. */
    s.key = "r";
    s.dedupe = JOBQ_DEDUPE_REPLACE;
    s.queue = "rq";
    s.payload = "{\"n\":1}";
    s.run_at_ms = 100;
    int64_t r1, r2;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 10, &r1, &dup, &js, &out), JOBQ_OK);
    assert_int_equal(js, JOBQ_SCHEDULED);
    s.payload = "{\"n\":2}";
    s.payload_hash = 3;
    s.run_at_ms = 5;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 11, &r2, &dup, &js, &out), JOBQ_OK);
    assert_true(out.replaced && !dup && r2 == r1);
    assert_int_equal(out.from, JOBQ_SCHEDULED);
    assert_int_equal(js, JOBQ_READY);
    job_row r;
    assert_int_equal(store_get(f->st, r1, &r), JOBQ_OK);
    assert_string_equal(r.payload, "{\"n\":2}");
    assert_int_equal(r.run_at_ms, 5);
    job_row_clear(&r);
    /* Running: left alone, a new job takes the key; the old one's end leaves it alone. */
    assert_int_equal(store_claim(f->st, "rq", 12, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    job_row_clear(&rows[0]);
    s.payload = "{\"n\":3}";
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 13, &r2, &dup, &js, &out), JOBQ_OK);
    assert_true(!out.replaced && !dup && r2 > r1);
    assert_int_equal(lifecycle_finish(f->st, r1, JOBQ_SUCCEEDED, 14, 0, NULL, NULL, NULL), JOBQ_OK);
    int64_t r3;
    s.payload = "{\"n\":4}";
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 15, &r3, &dup, &js, &out), JOBQ_OK);
    assert_true(out.replaced && r3 == r2);

    /* debounce: pushed, capped at the key's first use + debounce_max. */
    s.key = "d";
    s.dedupe = JOBQ_DEDUPE_DEBOUNCE;
    s.debounce_max_ms = 1000;
    s.run_at_ms = 600;
    int64_t d1, d2;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 100, &d1, &dup, &js, &out), JOBQ_OK);
    s.run_at_ms = 900;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 400, &d2, &dup, &js, &out), JOBQ_OK);
    assert_true(out.replaced && d2 == d1);
    assert_int_equal(out.run_at_ms, 900);
    s.run_at_ms = 5000;
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 800, &d2, &dup, &js, &out), JOBQ_OK);
    assert_int_equal(out.run_at_ms, 1100);
    assert_int_equal(js, JOBQ_SCHEDULED);
    /* A cancel frees a held key too. */
    assert_int_equal(lifecycle_cancel(f->st, d1, 801, false, &r, &js), JOBQ_OK);
    job_row_clear(&r);
    assert_int_equal(lifecycle_insert_dedupe(f->st, &s, 802, &d2, &dup, &js, &out), JOBQ_OK);
    assert_true(!out.replaced && d2 > d1);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

/* Expiry on every backend: a deadline recorded at submit; the jobs not started past it are
 * found (running and ended ones are not) and cancelled as expired, with an effect each. */
static void
test_contract_expiry(void **state)
{
    fixture *f = *state;
    job_spec s = {
        .queue = "x", .payload = "1", .max_attempts = 1, .timeout_ms = 1, .expires_at_ms = 500};
    int64_t a, b, c, d;
    bool dup;
    int js;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert(f->st, &s, 10, &a, &dup, &js), JOBQ_OK);
    s.run_at_ms = 10000; /* scheduled */
    assert_int_equal(lifecycle_insert(f->st, &s, 10, &b, &dup, &js), JOBQ_OK);
    s.run_at_ms = 0;
    s.expires_at_ms = 900;
    assert_int_equal(lifecycle_insert(f->st, &s, 10, &c, &dup, &js), JOBQ_OK);
    s.expires_at_ms = 0;
    assert_int_equal(lifecycle_insert(f->st, &s, 10, &d, &dup, &js), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    int64_t at;
    assert_int_equal(store_next_expiry(f->st, &at), JOBQ_OK);
    assert_int_equal(at, 500);
    assert_int_equal(store_job_expiry(f->st, c, &at), JOBQ_OK);
    assert_int_equal(at, 900);
    assert_int_equal(store_job_expiry(f->st, d, &at), JOBQ_OK);
    assert_int_equal(at, 0);
    /* a starts: it no longer expires. */
    job_row rows[1];
    size_t n;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "x", 20, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, a);
    job_row_clear(&rows[0]);
    size_t mark = store_effects_mark(f->st);
    assert_int_equal(lifecycle_expire(f->st, "other", 600, 10, &n), JOBQ_OK);
    assert_int_equal(n, 0);
    assert_int_equal(lifecycle_expire(f->st, "x", 600, 10, &n), JOBQ_OK);
    assert_int_equal(n, 1); /* b */
    size_t ne;
    store_effect *e = store_effects_take(f->st, &ne);
    assert_true(ne >= mark + 1);
    assert_true(e[ne - 1].expired && e[ne - 1].id == b && e[ne - 1].to == JOBQ_CANCELLED);
    assert_int_equal(e[ne - 1].from, JOBQ_SCHEDULED);
    store_effects_free(e, ne);
    assert_int_equal(store_next_expiry(f->st, &at), JOBQ_OK);
    assert_int_equal(at, 900);
    assert_int_equal(lifecycle_expire(f->st, NULL, 900, 10, &n), JOBQ_OK);
    assert_int_equal(n, 1); /* c */
    e = store_effects_take(f->st, &ne);
    store_effects_free(e, ne);
    assert_int_equal(store_next_expiry(f->st, &at), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r;
    assert_int_equal(store_get(f->st, b, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_CANCELLED);
    assert_string_equal(r.error, EXPIRED_ERROR);
    job_row_clear(&r);
    assert_int_equal(store_job_state(f->st, d, &js), JOBQ_OK);
    assert_int_equal(js, JOBQ_READY);
}

/* Snooze on every backend: a running job is scheduled again with its attempt given back,
 * the attempt kept as "snoozed"; a job not running is fenced. */
static void
test_contract_snooze(void **state)
{
    fixture *f = *state;
    int64_t id = insert(f->st, "s", 0, 0, 10);
    job_row rows[1];
    size_t n;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "s", 20, 1, rows, &n), JOBQ_OK);
    assert_int_equal(rows[0].attempt, 1);
    attempt_rec a = {.attempt = 1, .started_at_ms = 20, .kind = "snoozed"};
    assert_int_equal(lifecycle_snooze(f->st, id, 30, 5030, "later", &a), JOBQ_OK);
    assert_int_equal(lifecycle_snooze(f->st, id, 31, 5031, NULL, &a), JOBQ_ESTATE);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row_clear(&rows[0]);
    job_row r;
    assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
    assert_int_equal(r.state, JOBQ_SCHEDULED);
    assert_int_equal(r.attempt, 0);
    assert_int_equal(r.run_at_ms, 5030);
    assert_string_equal(r.error, "later");
    job_row_clear(&r);
    int64_t c;
    assert_int_equal(store_attempt_count(f->st, id, "snoozed", &c), JOBQ_OK);
    assert_int_equal(c, 1);
    int64_t at;
    assert_int_equal(store_next_due(f->st, &at), JOBQ_OK);
    assert_int_equal(at, 5030);
    /* Claimed again, it is attempt 1 again. */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    size_t np;
    assert_int_equal(store_promote_due(f->st, 6000, 10, NULL, NULL, &np), JOBQ_OK);
    assert_int_equal(store_claim(f->st, "s", 6000, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].attempt, 1);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row_clear(&rows[0]);
}

/* insert_key: a ready job of queue with group_key key (NULL: none) and priority prio. */
static int64_t
insert_key(store *st, const char *queue, const char *key, int32_t prio, int64_t now)
{
    job_spec s = {.queue = queue,
                  .payload = "{}",
                  .priority = prio,
                  .run_at_ms = now,
                  .max_attempts = 3,
                  .timeout_ms = 1000,
                  .group_key = key};
    int64_t id;
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(store_job_insert(st, &s, JOBQ_READY, now, 0, NULL, &id), JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    return id;
}

/* claim_keys: claims up to max jobs of queue at now with limits kl into ids (0 after the last);
 * returns how many, *info what was passed over. */
static size_t
claim_keys(store *st, const char *queue, int64_t now, size_t max, const key_limits *kl,
           int64_t *ids, key_claim_info *info)
{
    job_row rows[32];
    size_t n = 0;
    key_claim_info dummy;
    assert_true(max <= 32);
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(store_claim_keys(st, queue, now, max, kl, rows, &n, info ? info : &dummy),
                     JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].state, JOBQ_RUNNING);
        ids[i] = rows[i].id;
        job_row_clear(&rows[i]);
    }
    ids[n] = 0;
    return n;
}

static void
finish(store *st, int64_t id)
{
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(store_job_finish(st, id, JOBQ_SUCCEEDED, 5000, 0, NULL, NULL), JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
}

/* Keys take turns, the least recently served first: a key with many ready jobs does not delay
 * a key with one, one job per claim or many. The job's group_key is stored and read back. */
static void
test_contract_keys_take_turns(void **state)
{
    fixture *f = *state;
    int64_t a[5], b, c[2];
    for (int i = 0; i < 5; i++) {
        a[i] = insert_key(f->st, "q", "A", 0, 1000 + i);
    }
    b = insert_key(f->st, "q", "B", 0, 1100);
    c[0] = insert_key(f->st, "q", "C", 0, 1200);
    c[1] = insert_key(f->st, "q", "C", 0, 1201);
    insert_key(f->st, "other", "A", 0, 1000);
    int64_t want[] = {a[0], b, c[0], a[1], c[1], a[2], a[3], a[4]};
    int64_t got[33];
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(claim_keys(f->st, "q", 2000, 1, NULL, got, NULL), 1);
        assert_int_equal(got[0], want[i]);
    }
    assert_int_equal(claim_keys(f->st, "q", 2000, 1, NULL, got, NULL), 0);
    job_row r;
    assert_int_equal(store_get(f->st, b, &r), JOBQ_OK);
    assert_non_null(r.group_key);
    assert_string_equal(r.group_key, "B");
    job_row_clear(&r);

    /* The same order in one claim of many, in a queue of its own. */
    int64_t x[4], y, z;
    for (int i = 0; i < 4; i++) {
        x[i] = insert_key(f->st, "m", "X", 0, 1000 + i);
    }
    y = insert_key(f->st, "m", "Y", 0, 1100);
    z = insert_key(f->st, "m", "Z", 0, 1200);
    int64_t want2[] = {x[0], y, z, x[1], x[2], x[3]};
    assert_int_equal(claim_keys(f->st, "m", 2000, 10, NULL, got, NULL), 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(got[i], want2[i]);
    }
}

/* Priority comes first; within a priority level keys take turns, and the jobs without key take
 * the turns of one more key. */
static void
test_contract_keys_priority_and_unkeyed(void **state)
{
    fixture *f = *state;
    int64_t a0 = insert_key(f->st, "q", "A", 0, 1000);
    int64_t a1 = insert_key(f->st, "q", "A", 0, 1001);
    int64_t u0 = insert_key(f->st, "q", NULL, 0, 1002);
    int64_t u1 = insert_key(f->st, "q", NULL, 0, 1003);
    int64_t b0 = insert_key(f->st, "q", "B", 0, 1004);
    int64_t hi = insert_key(f->st, "q", "B", 5, 1005);
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, NULL, got, NULL), 6);
    /* B's priority-5 job first; then the unkeyed share (never served), A, B, unkeyed, A. */
    int64_t want[] = {hi, u0, a0, b0, u1, a1};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(got[i], want[i]);
    }
}

/* A keyed claim that takes every ready job when no key is out of the rotation says nothing
 * was held back: the queue is empty, not held. */
static void
test_contract_keys_drained_not_blocked(void **state)
{
    fixture *f = *state;
    insert_key(f->st, "q", NULL, 0, 1000);
    insert_key(f->st, "q", NULL, 0, 1001);
    key_limits kl = {.cap = 1};
    key_claim_info info = {.blocked = true};
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 2);
    assert_false(info.blocked);
    info.blocked = true;
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 0);
    assert_false(info.blocked);
}

/* key_concurrency: a key at its cap is passed over (the claim says so) until one of its
 * running jobs ends; the other keys go on. */
static void
test_contract_key_cap(void **state)
{
    fixture *f = *state;
    int64_t a0 = insert_key(f->st, "q", "A", 0, 1000);
    int64_t a1 = insert_key(f->st, "q", "A", 0, 1001);
    int64_t a2 = insert_key(f->st, "q", "A", 0, 1002);
    int64_t b0 = insert_key(f->st, "q", "B", 0, 1003);
    key_limits kl = {.cap = 1};
    key_claim_info info;
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 2);
    assert_int_equal(got[0], a0);
    assert_int_equal(got[1], b0);
    assert_true(info.blocked);
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 0);
    int64_t running = -1;
    assert_int_equal(store_key_running(f->st, "q", "A", 10, &running), JOBQ_OK);
    assert_int_equal(running, 1);
    finish(f->st, b0); /* another key's end frees nothing of A */
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 0);
    finish(f->st, a0);
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 1);
    assert_int_equal(got[0], a1);
    kl.cap = 2; /* a cap raised: the next end lets two run */
    finish(f->st, a1);
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 1);
    assert_int_equal(got[0], a2);
}

/* key_rate: a key's starts are spaced by the interval; the claim says when the held key is
 * due, and claims it then. */
static void
test_contract_key_rate(void **state)
{
    fixture *f = *state;
    int64_t a0 = insert_key(f->st, "q", "A", 0, 1000);
    int64_t a1 = insert_key(f->st, "q", "A", 0, 1001);
    int64_t b0 = insert_key(f->st, "q", "B", 0, 1002);
    key_limits kl = {.interval_ms = 1000};
    key_claim_info info;
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, &info), 2);
    assert_int_equal(got[0], a0);
    assert_int_equal(got[1], b0);
    assert_true(info.blocked);
    assert_int_equal(info.wake_ms, 3000);
    assert_int_equal(claim_keys(f->st, "q", 2999, 10, &kl, got, &info), 0);
    assert_int_equal(claim_keys(f->st, "q", 3000, 10, &kl, got, &info), 1);
    assert_int_equal(got[0], a1);
}

/* A slow-down of one key (store_key_hold): its jobs wait until then, the other keys' do not. */
static void
test_contract_key_hold(void **state)
{
    fixture *f = *state;
    int64_t a0 = insert_key(f->st, "q", "A", 0, 1000);
    int64_t a1 = insert_key(f->st, "q", "A", 0, 1001);
    int64_t b0 = insert_key(f->st, "q", "B", 0, 1002);
    int64_t b1 = insert_key(f->st, "q", "B", 0, 1003);
    key_claim_info info;
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 1, NULL, got, &info), 1);
    assert_int_equal(got[0], a0);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_key_hold(f->st, "q", "A", 5000), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    finish(f->st, a0);
    assert_int_equal(claim_keys(f->st, "q", 3000, 10, NULL, got, &info), 2);
    assert_int_equal(got[0], b0);
    assert_int_equal(got[1], b1);
    assert_true(info.blocked);
    assert_int_equal(info.wake_ms, 5000);
    assert_int_equal(claim_keys(f->st, "q", 4999, 10, NULL, got, &info), 0);
    assert_int_equal(claim_keys(f->st, "q", 5000, 10, NULL, got, &info), 1);
    assert_int_equal(got[0], a1);
}

/* A requeued or retried keyed job is claimed again (the triggers put its key back). */
static void
test_contract_keys_requeue_retry(void **state)
{
    fixture *f = *state;
    int64_t a0 = insert_key(f->st, "q", "A", 0, 1000);
    key_limits kl = {.cap = 1};
    int64_t got[33];
    assert_int_equal(claim_keys(f->st, "q", 2000, 10, &kl, got, NULL), 1);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_requeue(f->st, a0, 2100, "shutdown", NULL), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(claim_keys(f->st, "q", 2200, 10, &kl, got, NULL), 1);
    assert_int_equal(got[0], a0);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_job_finish(f->st, a0, JOBQ_DEAD, 2300, 0, NULL, "x"), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row r = {0};
    int old;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_retry(f->st, a0, 2400, &r, &old), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row_clear(&r);
    assert_int_equal(claim_keys(f->st, "q", 2500, 10, &kl, got, NULL), 1);
    assert_int_equal(got[0], a0);
}

/* A key's ready jobs are one seek of jobs_key, never a sort. */
static void
test_sqlite_key_claim_uses_key_index(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    const char *q[] = {
        "EXPLAIN QUERY PLAN SELECT id FROM jobs INDEXED BY jobs_key WHERE queue = 'q' AND "
        "group_key = 'k' AND state = 1 AND group_key IS NOT NULL AND state IN (1, 2) "
        "ORDER BY priority DESC, run_at, id LIMIT 1",
        "EXPLAIN QUERY PLAN SELECT group_key FROM group_keys INDEXED BY group_keys_turn WHERE "
        "queue = 'q' AND active = 1 ORDER BY prio DESC, turn LIMIT 1",
    };
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(db, q[i], -1, &s, NULL), SQLITE_OK);
        char plan[1024] = "";
        while (sqlite3_step(s) == SQLITE_ROW) {
            strncat(plan, (const char *)sqlite3_column_text(s, 3), sizeof(plan) - strlen(plan) - 2);
            strcat(plan, ";");
        }
        sqlite3_finalize(s);
        assert_null(strstr(plan, "TEMP B-TREE"));
        assert_null(strstr(plan, "SCAN"));
    }
    sqlite3_close(db);
}

#ifdef JOBQ_HAVE_POSTGRES
/* key_concurrency across nodes: a claim holds the key's row, so a second jobqd's claim meanwhile
 * passes the key over (it takes the other keys), and once the first commits it counts the
 * running job against the cap. */
static void
test_pg_key_cap_across_connections(void **state)
{
    fixture *f = *state;
    int64_t k0 = insert_key(f->st, "q", "K", 0, 1000);
    insert_key(f->st, "q", "K", 0, 1001);
    int64_t l0 = insert_key(f->st, "q", "L", 0, 1002);
    store *other = NULL;
    char err[1024] = "";
    if (store_open(f->path, DURABILITY_FULL, &other, err, sizeof(err)) != JOBQ_OK) {
        fail_msg("second store_open: %s", err);
    }
    key_limits kl = {.cap = 1};
    job_row a[10], b[10];
    size_t na = 0, nb = 0;
    key_claim_info info;
    /* A claim of nothing folds the keys into the rotation (committed). */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim_keys(f->st, "q", 2000, 0, &kl, a, &na, &info), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_claim_keys(f->st, "q", 2000, 1, &kl, a, &na, &info), JOBQ_OK);
    assert_int_equal(na, 1);
    assert_int_equal(a[0].id, k0);
    assert_int_equal(store_begin(other), JOBQ_OK);
    assert_int_equal(store_claim_keys(other, "q", 2000, 10, &kl, b, &nb, &info), JOBQ_OK);
    assert_int_equal(store_commit(other), JOBQ_OK);
    assert_int_equal(nb, 1); /* L's job; K's row is held: its second job waits */
    assert_int_equal(b[0].id, l0);
    job_row_clear(&b[0]);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    job_row_clear(&a[0]);
    assert_int_equal(store_begin(other), JOBQ_OK);
    assert_int_equal(store_claim_keys(other, "q", 2000, 10, &kl, b, &nb, &info), JOBQ_OK);
    assert_int_equal(store_commit(other), JOBQ_OK);
    assert_int_equal(nb, 0); /* K is at its cap, counted from the other node's claim */
    assert_true(info.blocked);
    store_close(other);
}
#endif

static void
test_redact_hides_password(void **state)
{
    (void)state;
    char b[256];
    store_redact("postgresql://jobq:s3cret@db:5432/jobq?sslmode=require", b, sizeof(b));
    assert_string_equal(b, "postgresql://jobq:***@db:5432/jobq?sslmode=require");
    store_redact("postgres://jobq@/jobq?host=/run/postgresql&password=s3cret", b, sizeof(b));
    assert_string_equal(b, "postgres://jobq@/jobq?host=/run/postgresql&password=***");
    store_redact("postgresql://jobq@db/jobq", b, sizeof(b));
    assert_string_equal(b, "postgresql://jobq@db/jobq");
    store_redact("var/jobq.db", b, sizeof(b));
    assert_string_equal(b, "var/jobq.db");
    assert_true(store_is_postgres("postgres://x") && store_is_postgres("postgresql://x"));
    assert_false(store_is_postgres("var/postgresql://x"));
}

int
main(void)
{
    const struct CMUnitTest contract[] = {
        cmocka_unit_test_setup_teardown(test_contract_insert_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_sync_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_scheduled_job_is_not_claimed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_keys_per_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_savepoint_rolls_back_one_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_set_state_is_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_claim_order_priority_run_at_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_finish_and_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_jobs_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_job_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_jobs_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_retry_dead_and_bulk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_dependencies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_parent_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_schedule_defs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_attempt_count_and_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_sweep_deletes_old_finished_jobs_and_history,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_promote_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_oldest_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_pick_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_delete_priority_run_at_fenced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_progress_and_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_logs_capped_and_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_held_keys_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_dedupe_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_snooze, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_keys_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_keys_priority_and_unkeyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_key_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_keys_drained_not_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_key_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_key_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_keys_requeue_retry, setup, teardown),
    };
    const struct CMUnitTest sqlite[] = {
        cmocka_unit_test(test_redact_hides_password),
        cmocka_unit_test_setup_teardown(test_sqlite_claim_uses_ready_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_key_claim_uses_key_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_sync_apart_and_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_fresh_database_gets_every_migration, setup,
                                        teardown),
    };
    if (pg_host() == NULL) {
        int failed = cmocka_run_group_tests_name("store_contract_sqlite", contract, NULL, NULL);
        return failed + cmocka_run_group_tests_name("store_sqlite", sqlite, NULL, NULL);
    }
#ifdef JOBQ_HAVE_POSTGRES
    const struct CMUnitTest pg[] = {
        cmocka_unit_test_setup_teardown(test_pg_claim_uses_claim_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrations_recorded_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_concurrent_claims_skip_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_key_cap_across_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_lost_connection_reconnects, setup, teardown),
        cmocka_unit_test(test_pg_unreachable_server_says_where),
        cmocka_unit_test_setup_teardown(test_pg_key_race_two_nodes, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("store_contract_pg", contract, NULL, NULL);
    return failed + cmocka_run_group_tests_name("store_pg", pg, NULL, NULL);
#else
    fprintf(stderr, "JOBQ_TEST_PG_HOST is set but this build has no PostgreSQL backend\n");
    return 1;
#endif
}
