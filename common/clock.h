/* clock.h: the one clock of every jobq binary (jobqd, libjobq, the CLI): CLOCK_MONOTONIC for
 * deadlines and durations, CLOCK_REALTIME for timestamps. Header-only: each binary compiles it
 * in without linking anything (libjobq's static archive then needs no companion). */
#ifndef JOBQ_COMMON_CLOCK_H
#define JOBQ_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/** jobq__mono_ns: CLOCK_MONOTONIC in ns. Any thread. */
static inline int64_t
jobq__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/** jobq__mono_ms: CLOCK_MONOTONIC in ms, the clock of every deadline. Any thread. */
static inline int64_t
jobq__mono_ms(void)
{
    return jobq__mono_ns() / 1000000;
}

/** jobq__wall_ms: wall-clock time, ms since the Unix epoch. Any thread. */
static inline int64_t
jobq__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
