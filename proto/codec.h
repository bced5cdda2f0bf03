/* codec.h: pieces of the wire format shared by jobqd and libjobq: error codes, state names,
 * durations. Internal (jobq__ prefix): not installed. */
#ifndef JOBQ_PROTO_CODEC_H
#define JOBQ_PROTO_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "jobq.h"

/** jobq__err_code: the wire code ("not_found", ...) for a jobq_err; "internal" for any
 *  value without one. Static string. */
const char *jobq__err_code(int err);

/** jobq__err_from_code: the jobq_err for a wire code; JOBQ_EINTERNAL for an unknown code. */
int jobq__err_from_code(const char *code);

/** jobq__state_name: "scheduled" ... "cancelled", or NULL when out of range. */
const char *jobq__state_name(int state);

/** jobq__state_parse: the state number for a name, or -1. */
int jobq__state_parse(const char *name);

/** The longest duration jobq accepts anywhere (one year): keeps now + duration far from
 *  overflow. */
#define JOBQ__DURATION_MAX_MS ((int64_t)8760 * 3600 * 1000)

/** jobq__duration_parse: parses "250ms", "10s", "5m", "1h", "7d" or a bare integer (ms) into
 *  *msp. Returns false (and leaves *msp) on anything else, on a negative value or overflow. */
bool jobq__duration_parse(const char *s, int64_t *msp);

/** jobq__json_duration: a duration on the wire: a JSON integer (ms) or a string accepted by
 *  jobq__duration_parse. Returns false on any other value. */
bool jobq__json_duration(const json_t *v, int64_t *msp);

/** jobq__now_ms: wall-clock time, ms since the Unix epoch. */
int64_t jobq__now_ms(void);

#endif
