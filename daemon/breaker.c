/* breaker.c: the per-queue circuit breaker: closed -> open -> half-open -> closed/open. */
#include "breaker.h"

void
breaker_init(breaker *b, int threshold, int64_t cooldown_ms, int probes)
{
    *b = (breaker){.state = BREAKER_CLOSED,
                   .threshold = threshold > 0 ? threshold : 1,
                   .cooldown_ms = cooldown_ms,
                   .probes = probes > 0 ? probes : 1};
}

static void
trip(breaker *b, int64_t now_ms)
{
    b->state = BREAKER_OPEN;
    b->until_ms = now_ms + b->cooldown_ms;
    b->failures = 0;
    b->opened++;
}

int
breaker_permits(breaker *b, int64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return INT32_MAX;
    case BREAKER_OPEN:
        if (now_ms < b->until_ms) {
            return 0;
        }
        b->state = BREAKER_HALF_OPEN;
        b->probes_started = 0;
        b->half_opened++;
        return b->probes;
    case BREAKER_HALF_OPEN:
        return b->probes > b->probes_started ? b->probes - b->probes_started : 0;
    }
    return 0;
}

void
breaker_started(breaker *b)
{
    if (b->state == BREAKER_HALF_OPEN) {
        b->probes_started++;
    }
}

void
breaker_returned(breaker *b)
{
    if (b->state == BREAKER_HALF_OPEN && b->probes_started > 0) {
        b->probes_started--;
    }
}

void
breaker_record(breaker *b, bool ok, int64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        if (ok) {
            b->failures = 0;
        } else if (++b->failures >= b->threshold) {
            trip(b, now_ms);
        }
        return;
    case BREAKER_HALF_OPEN:
        if (ok) {
            b->state = BREAKER_CLOSED;
            b->failures = 0;
            b->closed++;
        } else {
            trip(b, now_ms);
        }
        return;
    case BREAKER_OPEN:
        return;
    }
}

const char *
breaker_state_name(breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
