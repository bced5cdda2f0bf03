/* test_lifecycle.c: job policy over a real SQLite store: the dependency cascade, group
 * settlement and its payload, poison jobs after crashes, idempotency-key windows, cancel,
 * retention. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "lifecycle.h"
#include "request.h"
#include "store.h"

typedef struct fixture {
    char dir[64];
    char path[128];
    store *st;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/jobq-lifecycle.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/jobq.db", f->dir);
    char err[256] = "";
    if (store_open(f->path, DURABILITY_NORMAL, &f->st, err, sizeof(err)) != JOBQ_OK) {
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
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* submit: admits a job of queue q after the nafter jobs in after, at now; returns its id and
 * its state in *statep (unless NULL). */
static int64_t
submit(store *st, const char *q, const int64_t *after, size_t nafter, bool always, int64_t gid,
       int *statep)
{
    job_spec s = {.queue = q,
                  .payload = "{}",
                  .max_attempts = 3,
                  .timeout_ms = 1000,
                  .after = after,
                  .nafter = nafter,
                  .after_always = always,
                  .group_id = gid};
    int64_t id;
    bool dup;
    int js;
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(lifecycle_insert(st, &s, 100, &id, &dup, &js), JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    assert_false(dup);
    if (statep != NULL) {
        *statep = js;
    }
    return id;
}

static int
state_of(store *st, int64_t id)
{
    int js = -1;
    assert_int_equal(store_job_state(st, id, &js), JOBQ_OK);
    return js;
}

/* run: claims job id (the only ready one of its queue q) and ends it in `end`; the effects
 * of the transaction are returned (free them with store_effects_free). */
static store_effect *
run(store *st, const char *q, int64_t id, int end, size_t *np)
{
    job_row rows[1];
    size_t n;
    attempt_rec a = {.attempt = 1, .started_at_ms = 200, .kind = "success"};
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(store_claim(st, q, 200, 1, rows, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, id);
    job_row_clear(&rows[0]);
    assert_int_equal(
        lifecycle_finish(st, id, end, 300, 0, NULL, end == JOBQ_SUCCEEDED ? NULL : "failed", &a),
        JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    return store_effects_take(st, np);
}

/* find_effect: the EFFECT_JOB of job id in e, or NULL. */
static const store_effect *
find_effect(const store_effect *e, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].kind == EFFECT_JOB && e[i].id == id) {
            return &e[i];
        }
    }
    return NULL;
}

/* A diamond: a -> b, a -> c, (b, c) -> d. d runs only once both b and c have succeeded, and
 * each release is reported once, as an effect. */
static void
test_cascade_diamond(void **state)
{
    fixture *f = *state;
    int js;
    int64_t a = submit(f->st, "q", NULL, 0, false, 0, &js);
    assert_int_equal(js, JOBQ_READY);
    int64_t b = submit(f->st, "q", &a, 1, false, 0, &js);
    assert_int_equal(js, JOBQ_WAITING);
    int64_t c = submit(f->st, "q", &a, 1, false, 0, NULL);
    int64_t bc[] = {b, c};
    int64_t d = submit(f->st, "q", bc, 2, false, 0, &js);
    assert_int_equal(js, JOBQ_WAITING);

    size_t n;
    store_effect *e = run(f->st, "q", a, JOBQ_SUCCEEDED, &n);
    assert_int_equal(n, 2);
    assert_non_null(find_effect(e, n, b));
    assert_int_equal(find_effect(e, n, b)->from, JOBQ_WAITING);
    assert_int_equal(find_effect(e, n, c)->to, JOBQ_READY);
    assert_string_equal(find_effect(e, n, c)->queue, "q");
    store_effects_free(e, n);
    assert_int_equal(state_of(f->st, d), JOBQ_WAITING);

    e = run(f->st, "q", b, JOBQ_SUCCEEDED, &n);
    assert_int_equal(n, 0); /* d still waits for c */
    store_effects_free(e, n);
    assert_int_equal(state_of(f->st, d), JOBQ_WAITING);
    int64_t parents[4];
    assert_int_equal(store_waiting_for(f->st, d, parents, 4, &n), JOBQ_OK);
    assert_int_equal(n, 1);
    assert_int_equal(parents[0], c);

    e = run(f->st, "q", c, JOBQ_SUCCEEDED, &n);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, d);
    assert_int_equal(e[0].to, JOBQ_READY);
    store_effects_free(e, n);
    assert_int_equal(state_of(f->st, d), JOBQ_READY);

    /* A job submitted after parents that all succeeded is ready at once. */
    int64_t late = submit(f->st, "q", bc, 2, false, 0, &js);
    assert_int_equal(js, JOBQ_READY);
    assert_int_equal(store_waiting_for(f->st, late, parents, 4, &n), JOBQ_OK);
    assert_int_equal(n, 0);
}

/* A dead parent cancels the chain below it, each with the reason; a child that runs after
 * any end is released instead. */
static void
test_dead_parent_cancels_chain(void **state)
{
    fixture *f = *state;
    int64_t a = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t b = submit(f->st, "q", &a, 1, false, 0, NULL);
    int64_t c = submit(f->st, "q", &b, 1, false, 0, NULL);
    int64_t cleanup = submit(f->st, "q", &b, 1, true, 0, NULL);

    size_t n;
    store_effect *e = run(f->st, "q", a, JOBQ_DEAD, &n);
    assert_int_equal(n, 3);
    const store_effect *eb = find_effect(e, n, b), *ec = find_effect(e, n, c);
    assert_non_null(eb);
    assert_int_equal(eb->to, JOBQ_CANCELLED);
    assert_int_equal(eb->row.state, JOBQ_CANCELLED); /* an ended job carries its row */
    char want[64];
    snprintf(want, sizeof(want), "parent job %lld ended dead", (long long)a);
    assert_string_equal(eb->row.error, want);
    assert_int_equal(eb->row.finished_at_ms, 300);
    assert_non_null(ec);
    snprintf(want, sizeof(want), "parent job %lld ended cancelled", (long long)b);
    assert_string_equal(ec->row.error, want);
    assert_int_equal(find_effect(e, n, cleanup)->to, JOBQ_READY);
    store_effects_free(e, n);

    /* Submitted after a dead parent: cancelled at once, with the reason. */
    int js;
    int64_t late = submit(f->st, "q", &a, 1, false, 0, &js);
    assert_int_equal(js, JOBQ_CANCELLED);
    job_row r;
    assert_int_equal(store_get(f->st, late, &r), JOBQ_OK);
    snprintf(want, sizeof(want), "parent job %lld ended dead", (long long)a);
    assert_string_equal(r.error, want);
    job_row_clear(&r);

    /* A parent that does not exist: refused, and named. */
    int64_t ghost = a + 1000, id;
    bool dup;
    job_spec s = {.queue = "q", .payload = "{}", .max_attempts = 1, .after = &ghost, .nafter = 1};
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert(f->st, &s, 100, &id, &dup, &js), JOBQ_ENOENT);
    assert_int_equal(lifecycle_missing_parent(f->st), ghost);
    store_rollback(f->st);
}

/* A group completes once, when its last member ends: one on_complete job whose payload wraps
 * the user's with each member's outcome, and one group effect. */
static void
test_group_settles_exactly_once(void **state)
{
    fixture *f = *state;
    group_spec g = {.size = 4,
                    .oc_queue = "report",
                    .oc_payload = "{\"to\":\"ops\"}",
                    .oc_priority = 2,
                    .oc_max_attempts = 5,
                    .oc_timeout_ms = 7000};
    int64_t gid;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(store_group_create(f->st, &g, 100, &gid), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    int64_t m1 = submit(f->st, "q", NULL, 0, false, gid, NULL);
    int64_t m2 = submit(f->st, "q", &m1, 1, false, gid, NULL);
    int64_t m3 = submit(f->st, "r", NULL, 0, false, gid, NULL);

    size_t n;
    store_effect *e = run(f->st, "r", m3, JOBQ_SUCCEEDED, &n);
    assert_int_equal(n, 0); /* m1 and m2 have not ended */
    store_effects_free(e, n);
    int64_t m4 = submit(f->st, "r", NULL, 0, false, gid, NULL);
    e = run(f->st, "r", m4, JOBQ_SUCCEEDED, &n);
    assert_int_equal(n, 0);
    store_effects_free(e, n);

    /* m1 dies: m2 is cancelled in the cascade, and the group completes in the same step. */
    e = run(f->st, "q", m1, JOBQ_DEAD, &n);
    size_t groups = 0;
    int64_t oc_id = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].kind == EFFECT_GROUP) {
            assert_int_equal(e[i].id, gid);
            groups++;
        } else if (e[i].id != m2) {
            oc_id = e[i].id;
            assert_string_equal(e[i].queue, "report");
            assert_int_equal(e[i].from, -1);
            assert_int_equal(e[i].to, JOBQ_READY);
        }
    }
    store_effects_free(e, n);
    assert_int_equal(groups, 1);
    assert_true(oc_id != 0);
    job_row r;
    assert_int_equal(store_get(f->st, oc_id, &r), JOBQ_OK);
    char want[256];
    snprintf(want, sizeof(want),
             "{\"group\":%lld,\"payload\":{\"to\":\"ops\"},\"succeeded\":2,\"dead\":1,"
             "\"cancelled\":1,\"members\":[{\"id\":%lld,\"state\":\"dead\"},{\"id\":%lld,"
             "\"state\":\"cancelled\"},{\"id\":%lld,\"state\":\"succeeded\"},{\"id\":%lld,"
             "\"state\":\"succeeded\"}]}",
             (long long)gid, (long long)m1, (long long)m2, (long long)m3, (long long)m4);
    assert_string_equal(r.payload, want);
    assert_int_equal(r.priority, 2);
    assert_int_equal(r.max_attempts, 5);
    assert_int_equal(r.timeout_ms, 7000);
    job_row_clear(&r);

    /* Settling again does nothing: no second job, no second effect. */
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_group_settle(f->st, gid, 400), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    e = store_effects_take(f->st, &n);
    assert_int_equal(n, 0);
    store_effects_free(e, n);
    group_info gi;
    assert_int_equal(store_group_get(f->st, gid, false, &gi), JOBQ_OK);
    assert_int_equal(gi.oc_job_id, oc_id);
    assert_int_equal(gi.completed_at_ms, 300);
    group_info_clear(&gi);
}

/* claim_one: claims the only ready job of q at now and returns its id. */
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

static bool
only_queue_q(void *arg, const char *queue)
{
    (void)arg;
    return strcmp(queue, "q") == 0;
}

static int recovered_calls;
static void
count_recovered(void *arg, const char *queue, int64_t id, bool poisoned)
{
    (void)arg;
    (void)queue;
    (void)id;
    (void)poisoned;
    recovered_calls++;
}

/* recover: lifecycle_recover_running as jobqd runs it at start (local queues: only q). */
static size_t
recover(store *st)
{
    size_t n = 0;
    assert_int_equal(store_begin(st), JOBQ_OK);
    assert_int_equal(
        lifecycle_recover_running(st, 1000, 3, only_queue_q, count_recovered, NULL, &n), JOBQ_OK);
    assert_int_equal(store_commit(st), JOBQ_OK);
    store_effects_undo(st, 0);
    return n;
}

/* A local job running during 3 crashes is dead, a suspected poison job, and its children are
 * cancelled; a job of a queue whose jobs run elsewhere never is. */
static void
test_poison_after_three_crashes_only_local(void **state)
{
    fixture *f = *state;
    int64_t id = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t child = submit(f->st, "q", &id, 1, false, 0, NULL);
    int64_t remote = submit(f->st, "remote", NULL, 0, false, 0, NULL);
    job_row r;
    recovered_calls = 0;
    for (int crash = 1; crash <= 4; crash++) {
        if (crash <= 3) {
            assert_int_equal(claim_one(f->st, "q", crash * 10), id);
        }
        assert_int_equal(claim_one(f->st, "remote", crash * 10), remote);
        assert_int_equal(recover(f->st), crash <= 3 ? 2 : 1);
        assert_int_equal(store_get(f->st, id, &r), JOBQ_OK);
        assert_int_equal(r.state, crash < 3 ? JOBQ_READY : JOBQ_DEAD);
        if (crash < 3) {
            assert_non_null(strstr(r.error, "interrupted: jobqd stopped"));
        } else {
            assert_string_equal(r.error,
                                "suspected poison job: it was running during 3 crashes of jobqd");
        }
        job_row_clear(&r);
        assert_int_equal(state_of(f->st, remote), JOBQ_READY);
    }
    assert_int_equal(recovered_calls, 7);
    assert_int_equal(state_of(f->st, child), JOBQ_CANCELLED);
    attempt_row h[4];
    size_t n;
    assert_int_equal(store_attempts(f->st, id, h, 4, &n), JOBQ_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(h[i].kind, "crash");
        assert_int_equal(h[i].attempt, (int)i + 1); /* each interrupted attempt stays counted */
        attempt_row_clear(&h[i]);
    }
}

/* A key admits one job per window from its first use: the same payload gets the first job
 * back, another is a conflict, and after the window the key admits again. Keys are per
 * queue. */
static void
test_key_ttl_admission(void **state)
{
    fixture *f = *state;
    job_spec s = {.queue = "mail",
                  .payload = "1",
                  .payload_hash = 42,
                  .max_attempts = 1,
                  .timeout_ms = 1,
                  .key = "k",
                  .key_ttl_ms = 1000};
    int64_t id1, id2;
    bool dup;
    int js;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert(f->st, &s, 0, &id1, &dup, &js), JOBQ_OK);
    assert_false(dup);
    assert_int_equal(lifecycle_insert(f->st, &s, 999, &id2, &dup, &js), JOBQ_OK);
    assert_true(dup);
    assert_int_equal(id2, id1);
    assert_int_equal(js, JOBQ_READY);
    s.payload_hash = 43;
    assert_int_equal(lifecycle_insert(f->st, &s, 999, &id2, &dup, &js), JOBQ_ECONFLICT);
    s.queue = "other";
    assert_int_equal(lifecycle_insert(f->st, &s, 999, &id2, &dup, &js), JOBQ_OK);
    assert_false(dup);
    s.queue = "mail"; /* the window has passed: another payload is admitted */
    assert_int_equal(lifecycle_insert(f->st, &s, 1000, &id2, &dup, &js), JOBQ_OK);
    assert_false(dup);
    assert_true(id2 > id1);
    int64_t at;
    assert_int_equal(store_oldest_key(f->st, "mail", &at), JOBQ_OK);
    assert_int_equal(at, 1000); /* the new window starts at its new first use */
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

/* Cancel: any state but an end (and running, unless allowed); a cancelled parent cancels its
 * children. */
static void
test_cancel(void **state)
{
    fixture *f = *state;
    int64_t a = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t b = submit(f->st, "q", &a, 1, false, 0, NULL);
    job_row r;
    int old;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_cancel(f->st, a, 10, false, &r, &old), JOBQ_OK);
    assert_int_equal(old, JOBQ_READY);
    assert_int_equal(r.state, JOBQ_CANCELLED);
    assert_int_equal(r.finished_at_ms, 10);
    job_row_clear(&r);
    assert_int_equal(lifecycle_cancel(f->st, a, 10, false, &r, &old), JOBQ_ESTATE);
    assert_int_equal(lifecycle_cancel(f->st, a + 100, 10, false, &r, &old), JOBQ_ENOENT);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(state_of(f->st, b), JOBQ_CANCELLED);
    size_t n;
    store_effect *e = store_effects_take(f->st, &n);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, b);
    store_effects_free(e, n);

    int64_t c = submit(f->st, "q", NULL, 0, false, 0, NULL);
    assert_int_equal(claim_one(f->st, "q", 20), c);
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_cancel(f->st, c, 30, false, &r, &old), JOBQ_ESTATE);
    assert_int_equal(lifecycle_cancel(f->st, c, 30, true, &r, &old), JOBQ_OK);
    assert_int_equal(old, JOBQ_RUNNING);
    job_row_clear(&r);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
}

/* Retention: ended jobs go once older than their state's retention, keys once older than
 * their window; a full batch asks for another at once; the next sweep is due when the oldest
 * thing left expires. */
static void
test_retention_sweep(void **state)
{
    fixture *f = *state;
    int64_t ok1 = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t ok2 = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t bad = submit(f->st, "q", NULL, 0, false, 0, NULL);
    size_t n;
    store_effect *e = run(f->st, "q", ok1, JOBQ_SUCCEEDED, &n); /* each ends at 300 */
    store_effects_free(e, n);
    e = run(f->st, "q", ok2, JOBQ_SUCCEEDED, &n);
    store_effects_free(e, n);
    e = run(f->st, "q", bad, JOBQ_DEAD, &n);
    store_effects_free(e, n);
    job_spec s = {.queue = "q",
                  .payload = "1",
                  .max_attempts = 1,
                  .timeout_ms = 1,
                  .key = "k",
                  .key_ttl_ms = 50};
    int64_t kid;
    bool dup;
    int js;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_insert(f->st, &s, 350, &kid, &dup, &js), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);

    int64_t retention[JOBQ_WAITING + 1] = {0};
    retention[JOBQ_SUCCEEDED] = 100;
    retention[JOBQ_DEAD] = 1000;
    retention[JOBQ_CANCELLED] = 1000;
    size_t deleted[JOBQ_WAITING + 1] = {0};
    bool more = false;
    int64_t next = 0;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    /* At 399 nothing has expired: the keys' window ends first (350 + 50). */
    assert_int_equal(
        lifecycle_sweep_queue(f->st, "q", retention, 50, 399, 1, deleted, &more, &next), JOBQ_OK);
    assert_int_equal(deleted[JOBQ_SUCCEEDED], 0);
    assert_false(more);
    assert_int_equal(next, 400);
    /* At 401 the two succeeded jobs (ended 300, kept 100) and the key have expired; one per
     * batch. */
    assert_int_equal(
        lifecycle_sweep_queue(f->st, "q", retention, 50, 401, 1, deleted, &more, &next), JOBQ_OK);
    assert_int_equal(deleted[JOBQ_SUCCEEDED], 1);
    assert_int_equal(deleted[JOBQ_DEAD], 0);
    assert_true(more);
    assert_int_equal(next, 400); /* the other succeeded job */
    more = false;
    assert_int_equal(
        lifecycle_sweep_queue(f->st, "q", retention, 50, 401, 1, deleted, &more, &next), JOBQ_OK);
    assert_int_equal(deleted[JOBQ_SUCCEEDED], 1);
    assert_int_equal(next, 1300); /* the dead job */
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(state_of(f->st, bad), JOBQ_DEAD);
    job_row r;
    assert_int_equal(store_get(f->st, ok1, &r), JOBQ_ENOENT);
    assert_int_equal(store_get(f->st, ok2, &r), JOBQ_ENOENT);
}

/* The policy of each mutate action by state, whole. */
static void
test_mutate_verdicts(void **state)
{
    (void)state;
    /* Rows: actions in MUTATE_ACTIONS order; columns: scheduled, ready, running, retrying,
     * succeeded, dead, cancelled, waiting. A apply, S skip, T stop. */
    static const char *const want[MUT_NACTIONS] = {
        [MUT_CANCEL] = "AATASSSA",      [MUT_RETRY] = "SSSSSAAS",
        [MUT_DELETE] = "SSSSAAAS",      [MUT_RUN_NOW] = "ASSASSSS",
        [MUT_RESCHEDULE] = "AASASSSS",  [MUT_SET_PRIORITY] = "AASASSSA",
        [MUT_RERUN] = "SSSSAAAS",
    };
    for (int a = 0; a < MUT_NACTIONS; a++) {
        for (int st = 0; st <= JOBQ_WAITING; st++) {
            mutate_verdict v = lifecycle_mutate_verdict(a, st);
            char got = v == MUTATE_APPLY ? 'A' : v == MUTATE_STOP ? 'T' : 'S';
            if (got != want[a][st]) {
                fail_msg("%s of a %s job: got %c, want %c", jobq__mutate_action_name(a),
                         jobq__state_name(st), got, want[a][st]);
            }
        }
    }
}

/* A mutate cancel of a parent cascades to its waiting child; the child, picked before as
 * waiting, is then found cancelled already: done, nothing more for the loop. A rerun makes a
 * new job and leaves the finished one as it was. */
static void
test_mutate_cancel_cascade_and_rerun(void **state)
{
    fixture *f = *state;
    int64_t a = submit(f->st, "q", NULL, 0, false, 0, NULL);
    int64_t b = submit(f->st, "q", &a, 1, false, 0, NULL);
    mutate_args m = {.action = MUT_CANCEL};
    mutate_change ch;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(lifecycle_mutate_job(f->st, &m, a, JOBQ_READY, 10, &ch), JOBQ_OK);
    assert_int_equal(ch.from, JOBQ_READY);
    assert_int_equal(ch.to, JOBQ_CANCELLED);
    assert_int_equal(ch.row.state, JOBQ_CANCELLED);
    job_row_clear(&ch.row);
    assert_int_equal(lifecycle_mutate_job(f->st, &m, b, JOBQ_WAITING, 10, &ch), JOBQ_OK);
    assert_int_equal(ch.from, ch.to);
    job_row_clear(&ch.row);
    mutate_args r = {.action = MUT_RERUN};
    assert_int_equal(lifecycle_mutate_job(f->st, &r, a, JOBQ_CANCELLED, 20, &ch), JOBQ_OK);
    assert_true(ch.new_id > b);
    assert_int_equal(ch.from, -1);
    assert_int_equal(ch.to, JOBQ_READY);
    /* Not finished: a rerun refuses, changing nothing. */
    assert_int_equal(lifecycle_mutate_job(f->st, &r, ch.new_id, JOBQ_READY, 20, &ch),
                     JOBQ_ESTATE);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_int_equal(state_of(f->st, a), JOBQ_CANCELLED);
    size_t n;
    store_effect *e = store_effects_take(f->st, &n);
    assert_int_equal(n, 1); /* the child's cancel, for the loop */
    assert_int_equal(e[0].id, b);
    store_effects_free(e, n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cascade_diamond, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_parent_cancels_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_settles_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_after_three_crashes_only_local, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_ttl_admission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test(test_mutate_verdicts),
        cmocka_unit_test_setup_teardown(test_mutate_cancel_cascade_and_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
