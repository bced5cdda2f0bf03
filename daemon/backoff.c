/* backoff.c: capped exponential backoff with full jitter (AWS architecture blog's
 * "full jitter": delay = random(0, min(max, base * 2^(attempt-1)))). */
#include "backoff.h"

int64_t
backoff_cap_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt)
{
    if (base_ms <= 0 || max_ms <= 0) {
        return 0;
    }
    int64_t cap = base_ms;
    for (uint32_t i = 1; i < attempt && cap < max_ms; i++) {
        cap = cap > INT64_MAX / 2 ? INT64_MAX : cap * 2;
    }
    return cap < max_ms ? cap : max_ms;
}

int64_t
backoff_delay_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt, uint64_t rnd)
{
    int64_t cap = backoff_cap_ms(base_ms, max_ms, attempt == 0 ? 1 : attempt);
    return (int64_t)(rnd % ((uint64_t)cap + 1));
}

uint64_t
backoff_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
