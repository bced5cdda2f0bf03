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

/** JSON text written straight into one growing buffer, without a jansson tree: replies and
 *  requests on the hot path of fetch and ack. Bytes are those json_dumps(JSON_COMPACT) writes
 *  for the same values (strings escaped alike). Once an allocation failed, failed is set and
 *  further writes do nothing. Zero-initialise; release with free(t->p). */
typedef struct jobq__jtext {
    char *p;     /* NUL-terminated while not failed */
    size_t len;  /* bytes written, without the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* out of memory */
} jobq__jtext;

/** jobq__jt_room: makes room for n more bytes and the NUL (the capacity doubles); false, with
 *  failed set, when out of memory (or after an earlier failure). */
bool jobq__jt_room(jobq__jtext *t, size_t n);

/** jobq__jt_raw: appends n bytes of s as they are (text already JSON, or punctuation). */
void jobq__jt_raw(jobq__jtext *t, const char *s, size_t n);

/** jobq__jt_lit: appends a string literal as it is (a literal only: its size is taken). */
#define jobq__jt_lit(t, lit) jobq__jt_raw((t), "" lit, sizeof(lit) - 1)

/** jobq__jt_str: appends s (UTF-8) as a JSON string, quoted and escaped as jansson does. */
void jobq__jt_str(jobq__jtext *t, const char *s);

/** jobq__jt_int: appends v as a JSON integer. */
void jobq__jt_int(jobq__jtext *t, int64_t v);

/** jobq__jt_real: appends v as jansson writes a real ("%.17g", with ".0" when it reads as an
 *  integer). */
void jobq__jt_real(jobq__jtext *t, double v);

/** jobq__utf8_valid: s is valid UTF-8 as jansson takes it (no overlong forms, surrogates or
 *  code points past U+10FFFF). */
bool jobq__utf8_valid(const char *s);

/** jobq__jt_key: appends ,"key": (no comma when first): the start of an object member. */
void jobq__jt_key(jobq__jtext *t, const char *key, bool first);

#endif
