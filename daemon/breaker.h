/* breaker.h: a circuit breaker per queue. Pure: no clock reads, no I/O; the caller passes
 * the time, so every transition can be tested exhaustively. */
#ifndef JOBQD_BREAKER_H
#define JOBQD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum breaker_state {
    BREAKER_CLOSED = 0,    /* jobs start freely; consecutive failures are counted */
    BREAKER_OPEN = 1,      /* no job starts until until_ms */
    BREAKER_HALF_OPEN = 2, /* up to `probes` jobs start; the first outcome decides */
} breaker_state;

typedef struct breaker {
    breaker_state state;
    int failures;        /* consecutive failed attempts while closed */
    int threshold;       /* failures that open the circuit, >= 1 */
    int64_t cooldown_ms; /* open -> half-open after this */
    int probes;          /* jobs let through while half-open, >= 1 */
    int probes_started;  /* probes started in this half-open period */
    int64_t until_ms;    /* open: when it turns half-open */
    uint64_t opened;     /* transitions into open, ever */
    uint64_t closed;     /* transitions into closed (from half-open), ever */
    uint64_t half_opened;
} breaker;

/** breaker_init: a closed breaker with these settings. */
void breaker_init(breaker *b, int threshold, int64_t cooldown_ms, int probes);

/** breaker_permits: how many more jobs may start now: unlimited (INT32_MAX) when closed, 0
 *  when open, the probes left when half-open. Turns open into half-open once the cooldown
 *  has passed. */
int breaker_permits(breaker *b, int64_t now_ms);

/** breaker_started: a job started; while half-open it uses one probe. */
void breaker_started(breaker *b);

/** breaker_returned: a started job ended without a verdict (cancelled, permanent failure,
 *  shutdown): while half-open its probe may be used again. */
void breaker_returned(breaker *b);

/** breaker_record: the outcome of an attempt that counts (success, or a failure of the
 *  downstream: non-zero exit, signal, timeout). Closed: a success resets the count, the
 *  threshold-th consecutive failure opens. Half-open: a success closes, a failure opens
 *  again for another cooldown. Open: ignored (jobs that were already running). */
void breaker_record(breaker *b, bool ok, int64_t now_ms);

/** breaker_state_name: "closed", "open", "half_open". */
const char *breaker_state_name(breaker_state s);

#endif
