/* breaker.c: the per-queue circuit breaker: closed -> open -> half-open -> closed/open, opened
 * by consecutive failures or by a failure rate over a sliding window of attempts. */
#include "breaker.h"

#include <stdio.h>
#include <string.h>

static int
clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void
breaker_init(breaker *b, const breaker_rule *r)
{
    memset(b, 0, sizeof(*b));
    b->rule = *r;
    b->rule.failures = r->failures > 0 ? r->failures : 0;
    b->rule.rate_pct = clamp(r->rate_pct, 0, 100);
    b->rule.window = clamp(r->window, 1, BREAKER_WINDOW_MAX);
    b->rule.min_calls = clamp(r->min_calls, 1, b->rule.window);
    b->rule.probes = r->probes > 0 ? r->probes : 1;
    b->state = BREAKER_CLOSED;
}

/* forget: an empty window and no consecutive failures. */
static void
forget(breaker *b)
{
    memset(b->seen, 0, sizeof(b->seen));
    b->nseen = b->next = b->nfailed = 0;
    b->failures = 0;
}

static void
trip(breaker *b, int64_t now_ms, breaker_cause cause)
{
    b->state = BREAKER_OPEN;
    b->until_ms = now_ms + b->rule.cooldown_ms;
    b->cause = cause;
    b->opened++;
    b->remote = false;
    forget(b);
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
        return breaker_permits(b, now_ms);
    case BREAKER_HALF_OPEN:
        if (b->remote) {
            if (now_ms < b->hold_ms) {
                return 0; /* the opener's probe decides */
            }
            b->remote = false; /* no verdict came: this node probes */
        }
        return b->rule.probes > b->probes_started ? b->rule.probes - b->probes_started : 0;
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

/* observe: one attempt into the sliding window (the oldest falls out once it is full). */
static void
observe(breaker *b, bool failed)
{
    uint64_t bit = 1ULL << (b->next % 64);
    uint64_t *w = &b->seen[b->next / 64];
    if (b->nseen == b->rule.window) {
        b->nfailed -= (*w & bit) != 0;
    } else {
        b->nseen++;
    }
    if (failed) {
        *w |= bit;
        b->nfailed++;
    } else {
        *w &= ~bit;
    }
    b->next = (b->next + 1) % b->rule.window;
}

void
breaker_record(breaker *b, bool ok, int64_t now_ms)
{
    if (b->remote && b->state != BREAKER_CLOSED) {
        return; /* jobs started before another node opened it: its probe decides */
    }
    switch (b->state) {
    case BREAKER_CLOSED:
        observe(b, !ok);
        b->failures = ok ? 0 : b->failures + 1;
        if (b->rule.failures > 0 && b->failures >= b->rule.failures) {
            trip(b, now_ms, BREAKER_CAUSE_CONSECUTIVE);
        } else if (!ok && b->rule.rate_pct > 0 && b->nseen >= b->rule.min_calls &&
                   (int64_t)b->nfailed * 100 >= (int64_t)b->rule.rate_pct * b->nseen) {
            b->trip_failed = b->nfailed;
            b->trip_calls = b->nseen;
            trip(b, now_ms, BREAKER_CAUSE_RATE);
        }
        return;
    case BREAKER_HALF_OPEN:
        if (ok) {
            b->state = BREAKER_CLOSED;
            forget(b);
            b->closed++;
        } else {
            trip(b, now_ms, BREAKER_CAUSE_PROBE);
        }
        return;
    case BREAKER_OPEN:
        return;
    }
}

bool
breaker_force_open(breaker *b, int64_t until_ms, int64_t hold_ms, int64_t stamp, const char *why)
{
    if (stamp == b->stamp || (b->state == BREAKER_OPEN && until_ms <= b->until_ms)) {
        return false;
    }
    if (b->state != BREAKER_OPEN) {
        b->opened++;
    }
    b->state = BREAKER_OPEN;
    b->until_ms = until_ms;
    b->hold_ms = hold_ms;
    b->remote = true;
    b->stamp = stamp;
    b->cause = BREAKER_CAUSE_REMOTE;
    b->probes_started = 0;
    snprintf(b->remote_why, sizeof(b->remote_why), "%s", why != NULL ? why : "another node");
    forget(b);
    return true;
}

bool
breaker_force_close(breaker *b)
{
    if (!b->remote || b->state == BREAKER_CLOSED) {
        return false;
    }
    b->state = BREAKER_CLOSED;
    b->remote = false;
    b->stamp = 0;
    b->closed++;
    forget(b);
    return true;
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

void
breaker_describe(const breaker *b, char *buf, size_t len)
{
    switch (b->cause) {
    case BREAKER_CAUSE_CONSECUTIVE:
        snprintf(buf, len, "%d consecutive failures", b->rule.failures);
        return;
    case BREAKER_CAUSE_RATE:
        snprintf(buf, len, "%d of the last %d attempts failed", b->trip_failed, b->trip_calls);
        return;
    case BREAKER_CAUSE_PROBE:
        snprintf(buf, len, "its half-open probe failed");
        return;
    case BREAKER_CAUSE_REMOTE:
        snprintf(buf, len, "%s", b->remote_why);
        return;
    case BREAKER_CAUSE_NONE:
        break;
    }
    snprintf(buf, len, "failures");
}
