/* outcome.h: what an ended attempt means: the kinds of ending (one list carrying each kind's
 * persisted name and its effect on the breaker) and outcome_decide, the one decision from an
 * explicit verdict to the job's next state. Pure: no clock, no I/O, any thread. */
#ifndef JOBQD_OUTCOME_H
#define JOBQD_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

/** outcome_breaker: what a kind says of the queue's downstream (its circuit breaker) and
 *  whether it counts in the queue's failed total. */
typedef enum outcome_breaker {
    OUTCOME_BREAKER_OK,   /* a success: breaker_record(ok) */
    OUTCOME_BREAKER_FAIL, /* a failure of the downstream: failed total, breaker_record(fail) */
    OUTCOME_BREAKER_DEAD, /* a permanent failure: failed total; nothing of the downstream */
    OUTCOME_BREAKER_NONE, /* nothing of the downstream; counts nothing */
} outcome_breaker;

/* OUTCOME_KIND_MAP(XX): every kind of attempt ending, as XX(ID, name, breaker effect). The name
 * is persisted in attempts.kind and shown by get and explain: never change one. Append only. */
#define OUTCOME_KIND_MAP(XX)                                                                       \
    XX(SUCCESS, "success", OUTCOME_BREAKER_OK)       /* the handler succeeded */                   \
    XX(EXIT, "exit", OUTCOME_BREAKER_FAIL)           /* a process exited non-zero (not 65) */      \
    XX(SIGNAL, "signal", OUTCOME_BREAKER_FAIL)       /* a process was killed by a signal */        \
    XX(TIMEOUT, "timeout", OUTCOME_BREAKER_FAIL)     /* the job's timeout ended it */              \
    XX(SPAWN, "spawn", OUTCOME_BREAKER_FAIL)         /* the command could not be started */        \
    XX(LEASE, "lease", OUTCOME_BREAKER_FAIL)         /* a worker's lease expired */                \
    XX(ERROR, "error", OUTCOME_BREAKER_FAIL)         /* a worker reported a retryable failure */   \
    XX(HTTP, "http", OUTCOME_BREAKER_FAIL)           /* a webhook answered 5xx or 429 */           \
    XX(CONNECT, "connect", OUTCOME_BREAKER_FAIL)     /* a webhook could not be delivered */        \
    XX(PERMANENT, "permanent", OUTCOME_BREAKER_DEAD) /* exit 65, HTTP 4xx, a worker's fail */      \
    XX(CANCELLED, "cancelled", OUTCOME_BREAKER_NONE) /* cancelled while running */                 \
    XX(SHUTDOWN, "shutdown", OUTCOME_BREAKER_NONE)   /* interrupted by jobqd's shutdown */         \
    XX(CRASH, "crash", OUTCOME_BREAKER_NONE)         /* found running at start (store recovery) */ \
    XX(SNOOZED, "snoozed", OUTCOME_BREAKER_NONE)     /* snoozed: runs again later, attempt given   \
                                                      * back */

/** outcome_kind: one value per OUTCOME_KIND_MAP entry, OUTCOME_<ID>. */
typedef enum outcome_kind {
#define XX(id, name, breaker) OUTCOME_##id,
    OUTCOME_KIND_MAP(XX)
#undef XX
        OUTCOME_NKINDS
} outcome_kind;

/** outcome_verdict: what the party that ran the attempt says of it; the only input besides
 *  the attempt count that decides the job's next state. */
typedef enum outcome_verdict {
    VERDICT_SUCCESS,   /* succeeded */
    VERDICT_RETRYABLE, /* failed; may succeed if run again (retrying, or dead at max_attempts) */
    VERDICT_PERMANENT, /* failed; running it again cannot help (dead) */
    VERDICT_CANCELLED, /* ended by a cancel (cancelled) */
    VERDICT_SHUTDOWN,  /* interrupted by jobqd's shutdown (put back to ready) */
} outcome_verdict;

/** The outcome of an attempt, made by outcome_decide. */
typedef struct run_outcome {
    int state;         /* succeeded, retrying, dead, cancelled; ready = put back (shutdown) */
    int64_t run_at_ms; /* retrying: when to run again */
    const char *kind;  /* the kind's persisted name (outcome_kind_name); static */
} run_outcome;

/** outcome_kind_name: the persisted name of k ("success", "exit", ...); "?" if out of range. */
const char *outcome_kind_name(outcome_kind k);

/** outcome_kind_from_name: the kind whose persisted name is name; false (out untouched) if
 *  none is. */
bool outcome_kind_from_name(const char *name, outcome_kind *out);

/** outcome_kind_breaker: k's effect on the breaker (OUTCOME_BREAKER_NONE if out of range). */
outcome_breaker outcome_kind_breaker(outcome_kind k);

/** outcome_decide: the job's next state after an attempt with verdict v: success ->
 *  succeeded (kind "success"); permanent -> dead ("permanent"); cancelled -> cancelled
 *  ("cancelled"); shutdown -> ready ("shutdown"); retryable -> retrying at now_ms plus a
 *  full-jitter backoff drawn from rnd (between base_ms and max_ms), or dead once attempt
 *  (from 1) reaches max_attempts; its kind is why, one of the OUTCOME_BREAKER_FAIL kinds. */
run_outcome outcome_decide(outcome_verdict v, outcome_kind why, int32_t attempt,
                           int32_t max_attempts, int64_t backoff_base_ms, int64_t backoff_max_ms,
                           int64_t now_ms, uint64_t rnd);

/** outcome_snooze: the handler snoozed the job: scheduled again at now_ms + delay_ms (kind
 *  "snoozed"), its attempt given back (it does not count toward max_attempts). Pure. */
run_outcome outcome_snooze(int64_t now_ms, int64_t delay_ms);

#endif
