/* test_schedule.c: periodic jobs against a real SQLite file with an injected clock: one job
 * per minute over a restart (missed ticks run once, or are skipped), nothing twice when the
 * clock goes back or a tick is fired again after a crash. */
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
#include "config.h"
#include "periodic.h"
#include "lifecycle.h"
#include "store.h"

#define MIN_MS 60000LL
/* 2026-11-25 10:00:30 UTC */
#define T0 1795600830000LL

typedef struct fixture {
    char dir[64];
    char path[96];
    store *st;
    schedule_conf sc;
    queue_conf qc;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/jobq-sched.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/jobq.db", f->dir);
    char err[256];
    assert_int_equal(store_open(f->path, DURABILITY_FULL, &f->st, err, sizeof(err)), JOBQ_OK);
    f->sc.name = "every-minute";
    f->sc.cron = "* * * * *";
    assert_int_equal(cron_parse(f->sc.cron, &f->sc.expr, err, sizeof(err)), 0);
    f->sc.queue = "q";
    f->sc.payload = "{\"report\":true}";
    f->sc.zone = tz_load("UTC", err, sizeof(err));
    assert_non_null(f->sc.zone);
    config_queue_defaults(&f->qc);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    tz_free(f->sc.zone);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* start: what jobqd does at start for the schedule, at time now. */
static bool
start(fixture *f, int64_t now, int64_t *lastp)
{
    bool fired;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(periodic_recover(f->st, &f->sc, &f->qc, now, &fired), JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    bool ticked;
    assert_int_equal(periodic_base(f->st, &f->sc, now, lastp, &ticked), JOBQ_OK);
    int64_t last;
    assert_int_equal(store_schedule_last(f->st, f->sc.name, &last),
                     ticked ? JOBQ_OK : JOBQ_ENOENT);
    return fired;
}

/* run: what the running daemon does when it looks at the clock from `from` to `to` every
 * step ms: fires each due tick in its own transaction. Returns the jobs submitted. */
static int
run(fixture *f, int64_t from, int64_t to, int64_t step, int64_t *lastp)
{
    int submitted = 0;
    for (int64_t now = from; now <= to; now += step) {
        int64_t tick = periodic_due(&f->sc, *lastp, now);
        if (tick < 0) {
            continue;
        }
        assert_true(tick <= now && tick > *lastp);
        assert_int_equal(tick % MIN_MS, 0);
        char key[160];
        job_spec spec;
        periodic_spec(&f->sc, &f->qc, tick, key, sizeof(key), &spec);
        int64_t id;
        bool dup;
        int state;
        assert_int_equal(store_begin(f->st), JOBQ_OK);
        assert_int_equal(
            lifecycle_schedule_fire(f->st, f->sc.name, tick, &spec, now, &id, &dup, &state), JOBQ_OK);
        assert_int_equal(store_commit(f->st), JOBQ_OK);
        submitted += !dup;
        *lastp = tick;
    }
    return submitted;
}

/* keys: the ticks of every job stored, in id order, as minutes after 10:00 UTC. */
static size_t
ticks(fixture *f, int *minutes, size_t max)
{
    job_row rows[64];
    size_t n = 0;
    list_filter lf = {.queue = "q", .state = -1, .after_id = 0, .limit = 64};
    assert_int_equal(store_list(f->st, &lf, rows, &n, NULL), JOBQ_OK);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        long long tick;
        char name[64];
        assert_int_equal(sscanf(rows[i].key, "schedule:%63[^:]:%lld", name, &tick), 2);
        assert_string_equal(name, "every-minute");
        assert_string_equal(rows[i].payload, "{\"report\":true}");
        minutes[i] = (int)((tick - (T0 - 30000)) / MIN_MS);
        job_row_clear(&rows[i]);
    }
    return n;
}

static void
test_one_job_per_minute_over_a_restart(void **state)
{
    fixture *f = *state;
    int64_t last;
    /* A new schedule starts from now: no job for the past. */
    assert_false(start(f, T0, &last));
    assert_int_equal(last, T0);
    /* Looked at every 7 s for 5 minutes: the ticks 10:01 ... 10:05. */
    assert_int_equal(run(f, T0, T0 + 5 * MIN_MS, 7000, &last), 5);
    /* jobqd stops at 10:05:40 and is back at 10:08:50: the missed 10:06, 10:07 and 10:08
     * run once, as one job (the latest tick). */
    store_close(f->st);
    char err[256];
    assert_int_equal(store_open(f->path, DURABILITY_FULL, &f->st, err, sizeof(err)), JOBQ_OK);
    assert_true(start(f, T0 + 8 * MIN_MS + 20000, &last));
    assert_int_equal(last, T0 - 30000 + 8 * MIN_MS);
    /* A second start right after fires nothing. */
    assert_false(start(f, T0 + 8 * MIN_MS + 21000, &last));
    /* On to 10:12:30, looked at every 13 s. */
    assert_int_equal(run(f, T0 + 8 * MIN_MS + 21000, T0 + 12 * MIN_MS, 13000, &last), 4);
    int m[64];
    size_t n = ticks(f, m, 64);
    int want[] = {1, 2, 3, 4, 5, 8, 9, 10, 11, 12};
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i], want[i]);
    }
}

static void
test_no_last_tick_until_it_fires(void **state)
{
    fixture *f = *state;
    int64_t base, last;
    bool ticked;
    /* A new schedule counts from when it was first seen, which is not a tick. */
    assert_false(start(f, T0, &base));
    assert_int_equal(base, T0);
    assert_int_equal(store_schedule_last(f->st, f->sc.name, &last), JOBQ_ENOENT);
    /* Restarted at 10:00:50, before its first tick: still none, still from 10:00:30. */
    assert_false(start(f, T0 + 20000, &base));
    assert_int_equal(base, T0);
    assert_int_equal(periodic_base(f->st, &f->sc, T0 + 20000, &base, &ticked), JOBQ_OK);
    assert_false(ticked);
    /* Down over its first tick (10:01) and back at 10:01:40: that tick runs once and is the
     * last tick from then on. */
    assert_true(start(f, T0 + MIN_MS + 10000, &base));
    assert_int_equal(base, T0 - 30000 + MIN_MS);
    assert_int_equal(periodic_base(f->st, &f->sc, T0 + MIN_MS + 10000, &base, &ticked), JOBQ_OK);
    assert_true(ticked);
    assert_int_equal(store_schedule_last(f->st, f->sc.name, &last), JOBQ_OK);
    assert_int_equal(last, T0 - 30000 + MIN_MS);
}

static void
test_clock_jumps_and_refires_add_nothing(void **state)
{
    fixture *f = *state;
    int64_t last;
    start(f, T0, &last);
    assert_int_equal(run(f, T0, T0 + 3 * MIN_MS, 5000, &last), 3); /* 10:01 - 10:03 */
    /* The wall clock goes back 2 minutes: nothing fires until it passes 10:04 again. */
    assert_int_equal(run(f, T0 + MIN_MS, T0 + 3 * MIN_MS + 29000, 5000, &last), 0);
    assert_int_equal(run(f, T0 + 3 * MIN_MS + 30000, T0 + 4 * MIN_MS, 5000, &last), 1);
    /* It jumps 10 minutes forward: one job, for the latest tick. */
    assert_int_equal(run(f, T0 + 14 * MIN_MS, T0 + 14 * MIN_MS, 1, &last), 1);
    assert_int_equal(last, T0 - 30000 + 14 * MIN_MS);
    /* A crash after the commit that fired 10:14, before jobqd knew: firing it again adds no job
     * (the tick's key) and keeps the tick. */
    char key[160];
    job_spec spec;
    periodic_spec(&f->sc, &f->qc, last, key, sizeof(key), &spec);
    int64_t id;
    bool dup;
    int st;
    assert_int_equal(store_begin(f->st), JOBQ_OK);
    assert_int_equal(
        lifecycle_schedule_fire(f->st, f->sc.name, last, &spec, T0 + 14 * MIN_MS, &id, &dup, &st),
        JOBQ_OK);
    assert_int_equal(store_commit(f->st), JOBQ_OK);
    assert_true(dup);
    int m[64];
    size_t n = ticks(f, m, 64);
    int want[] = {1, 2, 3, 4, 14};
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i], want[i]);
    }
}

static void
test_missed_skip(void **state)
{
    fixture *f = *state;
    f->sc.missed_skip = true;
    int64_t last;
    start(f, T0, &last);
    assert_int_equal(run(f, T0, T0 + 2 * MIN_MS, 10000, &last), 2);
    /* Down from 10:02:30 to 10:06:10: 10:03 - 10:06 are skipped, and 10:07 runs. */
    assert_false(start(f, T0 + 5 * MIN_MS + 40000, &last));
    assert_int_equal(last, T0 - 30000 + 6 * MIN_MS);
    assert_int_equal(run(f, T0 + 5 * MIN_MS + 40000, T0 + 7 * MIN_MS, 10000, &last), 1);
    int m[64];
    size_t n = ticks(f, m, 64);
    assert_int_equal(n, 3);
    assert_int_equal(m[0], 1);
    assert_int_equal(m[1], 2);
    assert_int_equal(m[2], 7);
}

static void
test_due_in_a_time_zone(void **state)
{
    fixture *f = *state;
    char err[256];
    /* 09:00 on weekdays in Paris: on Wednesday 2026-11-25 that is 08:00 UTC. */
    assert_int_equal(cron_parse("0 9 * * mon-fri", &f->sc.expr, err, sizeof(err)), 0);
    tz_free(f->sc.zone);
    f->sc.zone = tz_load("Europe/Paris", err, sizeof(err));
    assert_non_null(f->sc.zone);
    int64_t wed_0800_utc = 1795593600000LL;
    assert_int_equal(periodic_due(&f->sc, wed_0800_utc - 1, wed_0800_utc - 1), -1);
    assert_int_equal(periodic_due(&f->sc, wed_0800_utc - 1, wed_0800_utc), wed_0800_utc);
    /* From Friday 09:00 the next is Monday 09:00. */
    int64_t fri = wed_0800_utc + 2 * 86400000LL;
    assert_int_equal(periodic_due(&f->sc, fri, fri + 3 * 86400000LL - 1), -1);
    assert_int_equal(periodic_due(&f->sc, fri, fri + 3 * 86400000LL), fri + 3 * 86400000LL);
}

/* walk: the latest tick after last and at or before now, one tick at a time. */
static int64_t
walk(const schedule_conf *sc, int64_t last, int64_t now)
{
    int64_t latest = -1;
    for (int64_t t = cron_next(&sc->expr, sc->zone, last); t >= 0 && t <= now;
         t = cron_next(&sc->expr, sc->zone, t)) {
        latest = t;
    }
    return latest;
}

static void
test_due_after_years(void **state)
{
    fixture *f = *state;
    char err[256];
    const int64_t year = 365LL * 86400000;
    /* Every minute, 5 years missed: the latest is the minute now is in (a walk of 2.6M
     * ticks; the old walk gave up after 2M and returned a tick 1.2 years old). */
    int64_t last = T0 - 30000;
    int64_t now = last + 5 * year + 17000;
    assert_int_equal(periodic_due(&f->sc, last, now), now - 17000);
    assert_int_equal(periodic_due(&f->sc, last, now - 17001), now - 17000 - MIN_MS);
    /* Sparser schedules in a zone with DST, against a walk, over gaps up to 6 years. */
    const char *exprs[] = {"0 9 * * mon-fri", "30 2 * * *", "*/7 1-3 1,15 * *", "0 0 29 2 *",
                           "15 10 * jan,jul sun"};
    tz_free(f->sc.zone);
    f->sc.zone = tz_load("Europe/Paris", err, sizeof(err));
    assert_non_null(f->sc.zone);
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        assert_int_equal(cron_parse(exprs[i], &f->sc.expr, err, sizeof(err)), 0);
        for (int k = 0; k < 20; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t gap = (int64_t)((seed >> 11) % (uint64_t)(6 * year));
            int64_t from = T0 - (int64_t)((seed >> 3) % (uint64_t)year);
            assert_int_equal(periodic_due(&f->sc, from, from + gap),
                             walk(&f->sc, from, from + gap));
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_job_per_minute_over_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_last_tick_until_it_fires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_jumps_and_refires_add_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missed_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_in_a_time_zone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_after_years, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
