/* test_resilience.c: the pure parts of failure handling: backoff with full jitter, the
 * circuit breaker's transitions and the rate bucket (what an ended attempt means:
 * test_outcome.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "backoff.h"
#include "breaker.h"
#include "rate.h"
#include "jobq.h"

static void
test_backoff_cap_doubles_until_max(void **state)
{
    assert_int_equal(backoff_cap_ms(1000, 3600000, 1), 1000);
    assert_int_equal(backoff_cap_ms(1000, 3600000, 2), 2000);
    assert_int_equal(backoff_cap_ms(1000, 3600000, 5), 16000);
    assert_int_equal(backoff_cap_ms(1000, 3600000, 13), 3600000);
    assert_int_equal(backoff_cap_ms(1000, 3600000, 4000000000u), 3600000); /* no overflow */
    assert_int_equal(backoff_cap_ms(INT64_MAX / 2, INT64_MAX, 64), INT64_MAX);
}

/* Over many seeded draws the delay stays in [0, cap] and spreads over the whole range. */
static void
test_backoff_full_jitter_bounds_and_spread(void **state)
{
    uint64_t seed = 42;
    for (uint32_t n = 1; n <= 12; n++) {
        int64_t cap = backoff_cap_ms(100, 60000, n);
        int buckets[10] = {0};
        int64_t lo = INT64_MAX, hi = -1;
        const int draws = 20000;
        for (int i = 0; i < draws; i++) {
            int64_t d = backoff_delay_ms(100, 60000, n, backoff_rand(&seed));
            assert_true(d >= 0 && d <= cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            int b = (int)(d * 10 / (cap + 1));
            buckets[b]++;
        }
        /* Every tenth of the range gets between 8% and 12% of the draws. */
        for (int b = 0; b < 10; b++) {
            assert_in_range(buckets[b], draws * 8 / 100, draws * 12 / 100);
        }
        assert_true(lo <= cap / 100);
        assert_true(hi >= cap - cap / 100);
    }
}

static void
test_breaker_opens_after_threshold_consecutive_failures(void **state)
{
    breaker b;
    breaker_init(&b, &(breaker_rule){.failures = 3, .window = 10, .cooldown_ms = 1000});
    breaker_record(&b, false, 0);
    breaker_record(&b, false, 0);
    breaker_record(&b, true, 0); /* a success resets the count */
    breaker_record(&b, false, 0);
    breaker_record(&b, false, 0);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(breaker_permits(&b, 0), INT32_MAX);
    breaker_record(&b, false, 10);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.opened, 1);
    assert_int_equal(breaker_permits(&b, 1009), 0);
    /* Outcomes of jobs that were already running change nothing while open. */
    breaker_record(&b, true, 500);
    assert_int_equal(b.state, BREAKER_OPEN);
}

static void
test_breaker_half_open_probe_closes_or_reopens(void **state)
{
    breaker b;
    breaker_init(&b, &(breaker_rule){.failures = 1, .cooldown_ms = 1000, .probes = 2});
    breaker_record(&b, false, 0);
    assert_int_equal(breaker_permits(&b, 999), 0);
    assert_int_equal(breaker_permits(&b, 1000), 2); /* cooldown over: half-open */
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    breaker_started(&b);
    assert_int_equal(breaker_permits(&b, 1000), 1);
    breaker_started(&b);
    assert_int_equal(breaker_permits(&b, 1000), 0);
    /* A probe cancelled says nothing: its slot is given back. */
    breaker_returned(&b);
    assert_int_equal(breaker_permits(&b, 1000), 1);
    breaker_record(&b, false, 1100);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.until_ms, 2100);
    assert_int_equal(b.opened, 2);
    assert_int_equal(breaker_permits(&b, 2100), 2);
    breaker_started(&b);
    breaker_record(&b, true, 2200);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.closed, 1);
    assert_string_equal(breaker_state_name(b.state), "closed");
}

/* The rate rule: at least rate_pct percent of the last `window` attempts failed, once
 * min_calls were seen; older attempts slide out; a half-open success starts a clean window. */
static void
test_breaker_failure_rate_over_a_sliding_window(void **state)
{
    breaker b;
    breaker_init(&b, &(breaker_rule){.rate_pct = 50, .window = 10, .min_calls = 4,
                                     .cooldown_ms = 1000, .probes = 1});
    breaker_record(&b, false, 0);
    breaker_record(&b, false, 0);
    breaker_record(&b, false, 0); /* 3 of 3 failed, but fewer than min_calls seen */
    assert_int_equal(b.state, BREAKER_CLOSED);
    breaker_record(&b, true, 0);
    for (int i = 0; i < 20; i++) { /* alternating: 50% but never a failure ... */
        breaker_record(&b, true, 0);
        assert_int_equal(b.state, BREAKER_CLOSED);
        breaker_record(&b, i % 3 == 0, 0); /* ... no: one success in three, the rest fail */
        if (b.state == BREAKER_OPEN) {
            break;
        }
    }
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.cause, BREAKER_CAUSE_RATE);
    assert_true(b.trip_failed * 100 >= 50 * b.trip_calls);
    char why[96];
    breaker_describe(&b, why, sizeof(why));
    assert_non_null(strstr(why, "of the last"));
    /* Half-open, a success closes with an empty window: 3 failures do not reopen it. */
    assert_int_equal(breaker_permits(&b, 1000), 1);
    breaker_started(&b);
    breaker_record(&b, true, 1000);
    assert_int_equal(b.state, BREAKER_CLOSED);
    breaker_record(&b, false, 1000);
    breaker_record(&b, false, 1000);
    breaker_record(&b, false, 1000);
    assert_int_equal(b.state, BREAKER_CLOSED);
    /* 10% failures for 100,000 attempts never reach 50% of the last 100. */
    breaker_init(&b, &(breaker_rule){.rate_pct = 50, .window = 100, .min_calls = 20,
                                     .cooldown_ms = 1000, .probes = 1});
    for (int i = 0; i < 100000; i++) {
        breaker_record(&b, i % 10 != 0, 0);
    }
    assert_int_equal(b.state, BREAKER_CLOSED);
    /* The downstream goes down: open within the window (the 10% of old failures help). */
    int n = 0;
    while (b.state == BREAKER_CLOSED && n < 100) {
        breaker_record(&b, false, 0);
        n++;
    }
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_in_range(n, 40, 50);
    /* From a fresh start, down at once: open after min_calls attempts. */
    breaker_init(&b, &(breaker_rule){.rate_pct = 50, .window = 100, .min_calls = 20,
                                     .cooldown_ms = 1000, .probes = 1});
    for (n = 0; b.state == BREAKER_CLOSED && n < 100; n++) {
        breaker_record(&b, false, 0);
    }
    assert_int_equal(n, 20);
}

/* The token bucket of `rate`: a quarter of a second of burst, then one job per 1/rate. */
static void
test_rate_bucket(void **state)
{
    rate_bucket b;
    rate_init(&b, 50, 1000);
    assert_int_equal(rate_permits(&b, 1000), 12); /* the burst: 12.5 tokens */
    rate_take(&b, 12);
    assert_int_equal(rate_permits(&b, 1000), 0);
    assert_int_equal(rate_wait_ms(&b), 10); /* half a token left: 10 ms to the next */
    assert_int_equal(rate_permits(&b, 1009), 0);
    assert_int_equal(rate_permits(&b, 1010), 1);
    rate_take(&b, 1);
    /* Over 10 s of asking every millisecond, 500 start. */
    int started = 0;
    for (int64_t t = 1010; t < 11010; t++) {
        int n = rate_permits(&b, t);
        rate_take(&b, n);
        started += n;
    }
    assert_in_range(started, 499, 501);
    /* An idle bucket refills to the burst, no more. */
    assert_int_equal(rate_permits(&b, 100000), 12);
    /* A claim that took 200 ms loses nothing: the tokens wait in the burst. */
    rate_take(&b, 12);
    assert_int_equal(rate_permits(&b, 100200), 10);
    /* Per minute: 6/m is one job per 10 s. */
    rate_init(&b, 6.0 / 60, 0);
    assert_int_equal(rate_permits(&b, 0), 1);
    rate_take(&b, 1);
    assert_int_equal(rate_wait_ms(&b), 10000);
    /* 0 is no limit. */
    rate_init(&b, 0, 0);
    assert_int_equal(rate_permits(&b, 0), INT32_MAX);
    assert_int_equal(rate_wait_ms(&b), 0);
}

/* A breaker another node opened: held until its end, then half-open with no probe here until
 * the hold (the opener's verdict) passes; this node's own outcomes meanwhile count for nothing;
 * the opener's close closes it; an opening already applied changes nothing. */
static void
test_breaker_opened_by_another_node(void **state)
{
    breaker b;
    breaker_init(&b, &(breaker_rule){.failures = 2, .cooldown_ms = 1000, .probes = 1});
    assert_true(breaker_force_open(&b, 1000, 2000, 77, "node a: 2 consecutive failures"));
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.opened, 1);
    char why[96];
    breaker_describe(&b, why, sizeof(why));
    assert_string_equal(why, "node a: 2 consecutive failures");
    assert_false(breaker_force_open(&b, 1500, 2500, 77, "again")); /* read again: nothing new */
    assert_int_equal(breaker_permits(&b, 999), 0);
    breaker_record(&b, false, 999); /* a job that ran before: says nothing here */
    breaker_record(&b, true, 999);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(breaker_permits(&b, 1000), 0); /* half-open, the opener probes */
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    breaker_record(&b, true, 1500);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    /* The opener's probe failed: open again, for longer. */
    assert_true(breaker_force_open(&b, 2500, 3500, 78, "node a: its half-open probe failed"));
    assert_int_equal(b.opened, 2);
    assert_int_equal(breaker_permits(&b, 2600), 0);
    /* Its probe succeeded: closed here too, with a clean count. */
    assert_true(breaker_force_close(&b));
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.closed, 1);
    assert_false(breaker_force_close(&b));
    breaker_record(&b, false, 2700);
    assert_int_equal(b.state, BREAKER_CLOSED);
    /* No verdict by the hold (the opener stopped): this node probes, and its verdict counts. */
    assert_true(breaker_force_open(&b, 3000, 4000, 79, "node a: 2 consecutive failures"));
    assert_int_equal(breaker_permits(&b, 3999), 0);
    assert_int_equal(breaker_permits(&b, 4000), 1);
    breaker_started(&b);
    breaker_record(&b, true, 4100);
    assert_int_equal(b.state, BREAKER_CLOSED);
    /* A breaker this node opened itself is not closed by another's close. */
    breaker_record(&b, false, 5000);
    breaker_record(&b, false, 5000);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_false(breaker_force_close(&b));
    assert_int_equal(b.state, BREAKER_OPEN);
}

/* The rate as a spacing kept in the database: the bucket's burst as tolerance. */
static void
test_rate_spacing(void **state)
{
    int64_t iv, tol;
    rate_spacing(10, &iv, &tol);
    assert_int_equal(iv, 100000);
    assert_int_equal(tol, 150000); /* 2.5 starts of burst: 1.5 intervals early */
    rate_spacing(2, &iv, &tol);
    assert_int_equal(iv, 500000);
    assert_int_equal(tol, 0); /* a burst of one */
    rate_spacing(0, &iv, &tol);
    assert_int_equal(iv, 0);
    assert_int_equal(tol, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_cap_doubles_until_max),
        cmocka_unit_test(test_backoff_full_jitter_bounds_and_spread),
        cmocka_unit_test(test_breaker_opens_after_threshold_consecutive_failures),
        cmocka_unit_test(test_breaker_half_open_probe_closes_or_reopens),
        cmocka_unit_test(test_breaker_failure_rate_over_a_sliding_window),
        cmocka_unit_test(test_rate_bucket),
        cmocka_unit_test(test_breaker_opened_by_another_node),
        cmocka_unit_test(test_rate_spacing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
