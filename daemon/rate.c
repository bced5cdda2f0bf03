/* rate.c: the token bucket behind a queue's `rate`. Tokens accrue continuously at the rate, up
 * to a burst of a quarter of a second's worth (at least one), so a queue at 50/s starts at most
 * 12 jobs at once and 50 in any second, plus that burst. The burst also absorbs a slow claim
 * (a commit held up by a busy disk): tokens are lost only when one takes over 250 ms. */
#include "rate.h"

#include <math.h>

void
rate_init(rate_bucket *b, double per_s, int64_t now_ms)
{
    b->per_ms = per_s > 0 ? per_s / 1000.0 : 0;
    b->burst = per_s / 4.0 < 1.0 ? 1.0 : per_s / 4.0;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

static void
refill(rate_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->per_ms;
        if (b->tokens > b->burst) {
            b->tokens = b->burst;
        }
    }
    b->last_ms = now_ms;
}

int
rate_permits(rate_bucket *b, int64_t now_ms)
{
    if (b->per_ms == 0) {
        return INT32_MAX;
    }
    refill(b, now_ms);
    return b->tokens >= 1.0 ? (int)floor(b->tokens) : 0;
}

void
rate_take(rate_bucket *b, int n)
{
    if (b->per_ms != 0) {
        b->tokens -= n;
    }
}

int64_t
rate_wait_ms(const rate_bucket *b)
{
    if (b->per_ms == 0 || b->tokens >= 1.0) {
        return 0;
    }
    return (int64_t)ceil((1.0 - b->tokens) / b->per_ms);
}

void
rate_spacing(double per_s, int64_t *interval_usp, int64_t *tolerance_usp)
{
    if (per_s <= 0) {
        *interval_usp = *tolerance_usp = 0;
        return;
    }
    double interval = 1e6 / per_s;
    double burst = per_s / 4.0 < 1.0 ? 1.0 : per_s / 4.0;
    *interval_usp = interval < 1 ? 1 : (int64_t)(interval + 0.5);
    *tolerance_usp = (int64_t)((burst - 1.0) * interval);
}
