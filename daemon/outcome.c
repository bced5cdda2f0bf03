/* outcome.c: the kinds of attempt ending and the one decision of a job's next state. Pure. */
#include "outcome.h"

#include <string.h>

#include "backoff.h"
#include "jobq.h"

static const struct {
    const char *name;
    outcome_breaker breaker;
} kinds[OUTCOME_NKINDS] = {
#define XX(id, name, breaker) [OUTCOME_##id] = {name, breaker},
    OUTCOME_KIND_MAP(XX)
#undef XX
};

const char *
outcome_kind_name(outcome_kind k)
{
    return (unsigned)k < OUTCOME_NKINDS ? kinds[k].name : "?";
}

bool
outcome_kind_from_name(const char *name, outcome_kind *out)
{
    for (int k = 0; name != NULL && k < OUTCOME_NKINDS; k++) {
        if (strcmp(kinds[k].name, name) == 0) {
            *out = (outcome_kind)k;
            return true;
        }
    }
    return false;
}

outcome_breaker
outcome_kind_breaker(outcome_kind k)
{
    return (unsigned)k < OUTCOME_NKINDS ? kinds[k].breaker : OUTCOME_BREAKER_NONE;
}

run_outcome
outcome_decide(outcome_verdict v, outcome_kind why, int32_t attempt, int32_t max_attempts,
               int64_t backoff_base_ms, int64_t backoff_max_ms, int64_t now_ms, uint64_t rnd)
{
    switch (v) {
    case VERDICT_SUCCESS:
        return (run_outcome){.state = JOBQ_SUCCEEDED, .kind = kinds[OUTCOME_SUCCESS].name};
    case VERDICT_PERMANENT:
        return (run_outcome){.state = JOBQ_DEAD, .kind = kinds[OUTCOME_PERMANENT].name};
    case VERDICT_CANCELLED:
        return (run_outcome){.state = JOBQ_CANCELLED, .kind = kinds[OUTCOME_CANCELLED].name};
    case VERDICT_SHUTDOWN:
        return (run_outcome){.state = JOBQ_READY, .kind = kinds[OUTCOME_SHUTDOWN].name};
    case VERDICT_RETRYABLE:
        break;
    }
    run_outcome o = {.state = JOBQ_DEAD, .kind = outcome_kind_name(why)};
    if (attempt >= max_attempts) {
        return o;
    }
    o.state = JOBQ_RETRYING;
    o.run_at_ms =
        now_ms + backoff_delay_ms(backoff_base_ms, backoff_max_ms, (uint32_t)attempt, rnd);
    return o;
}

run_outcome
outcome_snooze(int64_t now_ms, int64_t delay_ms)
{
    return (run_outcome){.state = JOBQ_SCHEDULED,
                         .run_at_ms = now_ms + (delay_ms > 0 ? delay_ms : 0),
                         .kind = kinds[OUTCOME_SNOOZED].name};
}
