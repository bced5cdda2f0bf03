/* breaker.h: a circuit breaker per queue. Pure: no clock reads, no I/O; the caller passes
 * the time, so every transition can be tested exhaustively. */
#ifndef JOBQD_BREAKER_H
#define JOBQD_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum breaker_state {
    BREAKER_CLOSED = 0,    /* jobs start freely; outcomes are counted */
    BREAKER_OPEN = 1,      /* no job starts until until_ms */
    BREAKER_HALF_OPEN = 2, /* up to `probes` jobs start; the first outcome decides */
} breaker_state;

/** The most attempts the failure-rate rule looks back on. */
#define BREAKER_WINDOW_MAX 1000

/** When a closed breaker opens: either rule, each off at 0. */
typedef struct breaker_rule {
    int failures;        /* this many consecutive failed attempts */
    int rate_pct;        /* at least this percent of the last `window` attempts failed, */
    int window;          /* 1 .. BREAKER_WINDOW_MAX */
    int min_calls;       /* once at least this many of them were seen (1 .. window) */
    int64_t cooldown_ms; /* open -> half-open after this */
    int probes;          /* jobs let through while half-open, >= 1 */
} breaker_rule;

/** Why a breaker last opened. */
typedef enum breaker_cause {
    BREAKER_CAUSE_NONE = 0,
    BREAKER_CAUSE_CONSECUTIVE, /* rule.failures consecutive failures */
    BREAKER_CAUSE_RATE,        /* trip_failed of the last trip_calls attempts */
    BREAKER_CAUSE_PROBE,       /* a probe failed while half-open */
    BREAKER_CAUSE_REMOTE,      /* another node opened it (several nodes on one database) */
} breaker_cause;

typedef struct breaker {
    breaker_rule rule;
    breaker_state state;
    int failures;       /* consecutive failed attempts while closed */
    int probes_started; /* probes started in this half-open period */
    int64_t until_ms;   /* open: when it turns half-open */
    uint64_t seen[(BREAKER_WINDOW_MAX + 63) / 64]; /* the last attempts: bit set = failed */
    int nseen;          /* attempts in seen (<= rule.window) */
    int next;           /* where the next attempt goes in seen */
    int nfailed;        /* set bits among the nseen */
    breaker_cause cause;
    int trip_failed, trip_calls; /* BREAKER_CAUSE_RATE: the figures that opened it */
    uint64_t opened;             /* transitions into open, ever */
    uint64_t closed;             /* transitions into closed (from half-open), ever */
    uint64_t half_opened;
    /* Opened by another node (breaker_force_open): this node's outcomes do not count, and
     * once half-open it starts no probe before hold_ms: the opener's probe decides. */
    bool remote;
    int64_t hold_ms;
    int64_t stamp;        /* the opening applied last (the opener's end, database time) */
    char remote_why[160]; /* the opener's account: "node b: 5 consecutive failures" */
} breaker;

/** breaker_init: a closed breaker with rule r (its bounds are clamped). */
void breaker_init(breaker *b, const breaker_rule *r);

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
 *  downstream: non-zero exit, signal, timeout). Closed: it opens on the rule.failures-th
 *  consecutive failure, or when at least rule.rate_pct percent of the last rule.window
 *  attempts (rule.min_calls of them at least) failed. Half-open: a success closes (with a
 *  clean window), a failure opens again for another cooldown. Open: ignored (jobs that were
 *  already running). */
void breaker_record(breaker *b, bool ok, int64_t now_ms);

/** breaker_force_open: another node opened this breaker until until_ms (this node's clock):
 *  open until then, then half-open with no probe here before hold_ms (the opener probes for
 *  all; past hold_ms this node probes itself). stamp names the opening (non-zero): one
 *  already applied changes nothing, nor does an end earlier than this breaker's own open
 *  period. why: the opener's account, for breaker_describe. Returns whether it changed. */
bool breaker_force_open(breaker *b, int64_t until_ms, int64_t hold_ms, int64_t stamp,
                        const char *why);

/** breaker_force_close: the node that probed closed it for all: closed with a clean window.
 *  Only a breaker another node opened (remote) is closed; returns whether it was. */
bool breaker_force_close(breaker *b);

/** breaker_state_name: "closed", "open", "half_open". */
const char *breaker_state_name(breaker_state s);

/** breaker_describe: why it last opened, for people: "5 consecutive failures", "12 of the
 *  last 20 attempts failed", "its probe failed". */
void breaker_describe(const breaker *b, char *buf, size_t len);

#endif
