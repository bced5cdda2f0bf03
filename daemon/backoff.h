/* backoff.h: retry delays: capped exponential backoff with full jitter. Pure functions. */
#ifndef JOBQD_BACKOFF_H
#define JOBQD_BACKOFF_H

#include <stdint.h>

/** backoff_cap_ms: min(max_ms, base_ms * 2^(attempt-1)) without overflow; attempt >= 1. */
int64_t backoff_cap_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt);

/** backoff_delay_ms: the delay before retrying after failed attempt number `attempt`:
 *  uniform in [0, backoff_cap_ms] drawn from rnd (a uniformly random 64-bit value).
 *  "Full jitter": spreads retries of jobs that failed together. Pure. */
int64_t backoff_delay_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt, uint64_t rnd);

/** backoff_rand: a 64-bit random value from a splitmix64 state (advances *state). */
uint64_t backoff_rand(uint64_t *state);

#endif
