/* test_outcome.c: what an ended attempt means: the kinds' names and breaker effects, the one
 * decision from a verdict to a job state, and the webhook's mapping of HTTP answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "jobq.h"
#include "outcome.h"
#include "webhook.h"

/* The names are persisted in attempts.kind: they never change. */
static void
test_kind_names_are_the_persisted_ones(void **state)
{
    static const char *const names[] = {"success",   "exit",     "signal", "timeout", "spawn",
                                        "lease",     "error",    "http",   "connect", "permanent",
                                        "cancelled", "shutdown", "crash",  "snoozed"};
    assert_int_equal(OUTCOME_NKINDS, sizeof(names) / sizeof(names[0]));
    for (int k = 0; k < OUTCOME_NKINDS; k++) {
        assert_string_equal(outcome_kind_name((outcome_kind)k), names[k]);
        outcome_kind back = OUTCOME_NKINDS;
        assert_true(outcome_kind_from_name(names[k], &back));
        assert_int_equal(back, k);
    }
    outcome_kind untouched = OUTCOME_CRASH;
    assert_false(outcome_kind_from_name("succes", &untouched));
    assert_false(outcome_kind_from_name(NULL, &untouched));
    assert_int_equal(untouched, OUTCOME_CRASH);
    assert_string_equal(outcome_kind_name(OUTCOME_NKINDS), "?");
}

/* Only failures of the downstream feed the breaker as failures; a permanent failure is counted
 * as failed but says nothing of the downstream; cancel, shutdown and crash say nothing. */
static void
test_kind_breaker_effects(void **state)
{
    assert_int_equal(outcome_kind_breaker(OUTCOME_SUCCESS), OUTCOME_BREAKER_OK);
    const outcome_kind fail[] = {OUTCOME_EXIT,  OUTCOME_SIGNAL, OUTCOME_TIMEOUT, OUTCOME_SPAWN,
                                 OUTCOME_LEASE, OUTCOME_ERROR,  OUTCOME_HTTP,    OUTCOME_CONNECT};
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
        assert_int_equal(outcome_kind_breaker(fail[i]), OUTCOME_BREAKER_FAIL);
    }
    assert_int_equal(outcome_kind_breaker(OUTCOME_PERMANENT), OUTCOME_BREAKER_DEAD);
    assert_int_equal(outcome_kind_breaker(OUTCOME_CANCELLED), OUTCOME_BREAKER_NONE);
    assert_int_equal(outcome_kind_breaker(OUTCOME_SHUTDOWN), OUTCOME_BREAKER_NONE);
    assert_int_equal(outcome_kind_breaker(OUTCOME_CRASH), OUTCOME_BREAKER_NONE);
}

static run_outcome
decide(outcome_verdict v, outcome_kind why, int32_t attempt_no, int64_t now, uint64_t rnd)
{
    return outcome_decide(v, why, attempt_no, 3, 1000, 10000, now, rnd);
}

static void
test_decide_each_verdict(void **state)
{
    run_outcome o = decide(VERDICT_SUCCESS, OUTCOME_EXIT, 1, 5000, 0);
    assert_int_equal(o.state, JOBQ_SUCCEEDED);
    assert_string_equal(o.kind, "success");

    o = decide(VERDICT_PERMANENT, OUTCOME_EXIT, 1, 5000, 0); /* dead at once, whatever the count */
    assert_int_equal(o.state, JOBQ_DEAD);
    assert_string_equal(o.kind, "permanent");

    o = decide(VERDICT_RETRYABLE, OUTCOME_EXIT, 1, 5000, 999); /* delay = 999 % (1000 + 1) */
    assert_int_equal(o.state, JOBQ_RETRYING);
    assert_int_equal(o.run_at_ms, 5999);
    assert_string_equal(o.kind, "exit");

    o = decide(VERDICT_RETRYABLE, OUTCOME_LEASE, 3, 5000, 0); /* the last attempt */
    assert_int_equal(o.state, JOBQ_DEAD);
    assert_string_equal(o.kind, "lease");

    o = decide(VERDICT_CANCELLED, OUTCOME_EXIT, 3, 0, 0);
    assert_int_equal(o.state, JOBQ_CANCELLED);
    assert_string_equal(o.kind, "cancelled");

    o = decide(VERDICT_SHUTDOWN, OUTCOME_EXIT, 3, 0, 0); /* put back even after the last */
    assert_int_equal(o.state, JOBQ_READY);
    assert_string_equal(o.kind, "shutdown");
}

static run_outcome
hook(int status, bool timed_out, enum run_kill kill, int64_t retry_after_s, int32_t attempt_no)
{
    queue_conf qc;
    config_queue_defaults(&qc);
    qc.backoff_base_ms = 1000;
    qc.backoff_max_ms = 10000;
    return webhook_outcome(status, timed_out, kill, retry_after_s, attempt_no, 3, &qc, 5000, 0);
}

/* 2xx succeeds; 4xx but 429 is permanent; 5xx and 429 retry ("http"), no answer retries
 * ("connect"); Retry-After holds a 429 or 503 back; a timeout retries ("timeout"). */
static void
test_webhook_answers(void **state)
{
    run_outcome o = hook(204, false, KILL_NONE, -1, 1);
    assert_int_equal(o.state, JOBQ_SUCCEEDED);
    assert_string_equal(o.kind, "success");

    o = hook(404, false, KILL_NONE, -1, 1);
    assert_int_equal(o.state, JOBQ_DEAD);
    assert_string_equal(o.kind, "permanent");

    o = hook(500, false, KILL_NONE, 60, 1); /* Retry-After counts only for 429 and 503 */
    assert_int_equal(o.state, JOBQ_RETRYING);
    assert_int_equal(o.run_at_ms, 5000);
    assert_string_equal(o.kind, "http");

    o = hook(429, false, KILL_NONE, 60, 1);
    assert_int_equal(o.state, JOBQ_RETRYING);
    assert_int_equal(o.run_at_ms, 65000);
    assert_string_equal(o.kind, "http");

    o = hook(503, false, KILL_NONE, 60, 3); /* the last attempt: dead, Retry-After or not */
    assert_int_equal(o.state, JOBQ_DEAD);

    o = hook(0, false, KILL_NONE, -1, 1);
    assert_int_equal(o.state, JOBQ_RETRYING);
    assert_string_equal(o.kind, "connect");

    o = hook(0, true, KILL_NONE, -1, 1);
    assert_int_equal(o.state, JOBQ_RETRYING);
    assert_string_equal(o.kind, "timeout");

    o = hook(0, false, KILL_CANCEL, -1, 1);
    assert_int_equal(o.state, JOBQ_CANCELLED);
    assert_string_equal(o.kind, "cancelled");

    o = hook(200, false, KILL_SHUTDOWN, -1, 1);
    assert_int_equal(o.state, JOBQ_READY);
    assert_string_equal(o.kind, "shutdown");
}

/* A snooze schedules the job again after its delay, says nothing of the downstream. */
static void
test_snooze(void **state)
{
    (void)state;
    run_outcome o = outcome_snooze(1000, 30000);
    assert_int_equal(o.state, JOBQ_SCHEDULED);
    assert_int_equal(o.run_at_ms, 31000);
    assert_string_equal(o.kind, "snoozed");
    assert_int_equal(outcome_kind_breaker(OUTCOME_SNOOZED), OUTCOME_BREAKER_NONE);
    assert_int_equal(outcome_snooze(1000, -5).run_at_ms, 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_are_the_persisted_ones),
        cmocka_unit_test(test_kind_breaker_effects),
        cmocka_unit_test(test_decide_each_verdict),
        cmocka_unit_test(test_webhook_answers),
        cmocka_unit_test(test_snooze),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
