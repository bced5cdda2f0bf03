/* idhash.h: the one hash of a job id onto a power-of-two table of buckets (Fibonacci hashing:
 * sequential ids spread over the whole table), for every table keyed by job id. Header-only. */
#ifndef JOBQ_COMMON_IDHASH_H
#define JOBQ_COMMON_IDHASH_H

#include <stddef.h>
#include <stdint.h>

/** jobq__id_bucket: the bucket of id in a table of nbuckets (a power of two, at most 2^24). */
static inline size_t
jobq__id_bucket(int64_t id, size_t nbuckets)
{
    return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> 40) & (nbuckets - 1);
}

#endif
