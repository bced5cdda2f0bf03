/* rate.h: a token bucket that caps how many jobs of a queue start per second (`rate`). Pure:
 * the caller passes the time. */
#ifndef JOBQD_RATE_H
#define JOBQD_RATE_H

#include <stdint.h>

typedef struct rate_bucket {
    double per_ms; /* tokens added per millisecond; 0: no limit */
    double burst;  /* the most tokens it holds: a quarter of a second's worth, at least 1 */
    double tokens;
    int64_t last_ms; /* when tokens was last brought up to date */
} rate_bucket;

/** rate_init: a full bucket for per_s jobs per second (0: unlimited). */
void rate_init(rate_bucket *b, double per_s, int64_t now_ms);

/** rate_permits: how many jobs may start now (INT32_MAX when unlimited). */
int rate_permits(rate_bucket *b, int64_t now_ms);

/** rate_take: n jobs started (n may exceed the permits: the bucket goes into debt). */
void rate_take(rate_bucket *b, int n);

/** rate_wait_ms: how long until the next job may start (0 if one may now). */
int64_t rate_wait_ms(const rate_bucket *b);

/** rate_spacing: the same limit as a spacing between starts (GCRA), for a rate kept in the
 *  database across nodes: interval_us between two starts, and tolerance_us, how much earlier
 *  than that a start may come (the bucket's burst less one start). Both 0 when per_s is 0. */
void rate_spacing(double per_s, int64_t *interval_usp, int64_t *tolerance_usp);

#endif
