/* store_common.h: what the store backends share, backend-neutral: growing arrays, ids as
 * text, a filter's states, the schedules' first-seen rows, the end of a read or a claim. No SQL,
 * no job policy. Called by whichever thread holds the store. */
#ifndef JOBQ_STORE_COMMON_H
#define JOBQ_STORE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/** store_grow: makes room for one more element in the array that arrp points at (a T **,
 *  the array NULL or malloc'd) of *capp elements of elem bytes, n of them in use: doubles it
 *  (to first elements at first) when n == *capp. Returns JOBQ_OK, or JOBQ_ENOMEM with the
 *  array and *capp unchanged. */
int store_grow(void *arrp, size_t *capp, size_t n, size_t elem, size_t first);

/** store_ids_text: the ids as text, comma-separated between open and close: '[' ']' makes a
 *  JSON array, '{' '}' a PostgreSQL array literal. Returns it malloc'd, or NULL when out of
 *  memory. */
char *store_ids_text(const int64_t *ids, size_t n, char open, char close);

/** store_filter_states: the states a job_filter selects, a bit per jobq_state: its states,
 *  or every state when it names none. */
unsigned store_filter_states(const job_filter *f);

/** STORE_SINCE_KEY_MAX: the size of a buffer for store_since_key. */
#define STORE_SINCE_KEY_MAX (sizeof(STORE_SINCE_PREFIX) + 256)

/** STORE_SINCE_PREFIX: until a schedule has a last tick, the time jobqd first saw it is kept
 *  in a row of its own in the schedules table, named with this prefix, which no schedule name
 *  can have (':' is not allowed in one). */
#define STORE_SINCE_PREFIX "since:"

/** store_since_key: the name of schedule name's first-seen row into buf (len bytes, at least
 *  STORE_SINCE_KEY_MAX). Returns JOBQ_OK, or JOBQ_EINVAL when the name is too long. */
int store_since_key(char *buf, size_t len, const char *name);

/** store_row_claimed: brings a row read before the claim's update up to date with it:
 *  running since now_ms, one attempt more, not finished. */
void store_row_claimed(job_row *row, int64_t now_ms);

/** store_rows_clear: job_row_clear on each of the n rows (a failed read's unwinding). */
void store_rows_clear(job_row *rows, size_t n);

/** store_rows_done: how a read of n rows into the caller's array ends: with err not JOBQ_OK,
 *  clears the rows and returns err; else writes *np and returns JOBQ_OK. */
int store_rows_done(int err, job_row *rows, size_t n, size_t *np);

/** store_claim_done: how a claim of n rows ends: store_rows_done, and on success info (when
 *  not NULL) told whether keys held jobs back (blocked) and when one is due back (wake_ms
 *  when above 0, else 0). */
int store_claim_done(int err, job_row *rows, size_t n, bool blocked, int64_t wake_ms,
                     key_claim_info *info, size_t *np);

#endif
