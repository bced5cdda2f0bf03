/* shared_limits.h: a queue's `rate` and circuit breaker held across several jobqd nodes on one
 * PostgreSQL database. The rate is a GCRA row taken in each claim's transaction; a breaker a
 * node opens is a row with its end in database time, notified to every node, which holds the
 * queue until then; the opener's probe then decides for all. On SQLite (one node) nothing here
 * runs: the queue's own token bucket and breaker are the whole story. */
#ifndef JOBQD_SHARED_LIMITS_H
#define JOBQD_SHARED_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "breaker.h"
#include "queues.h"
#include "server.h"
#include "store.h"

/** RATE_BUSY_RETRY_MS: how soon a claim that found the rate's row held by another node's
 *  claim tries again. */
#define RATE_BUSY_RETRY_MS 10

/** shared_rate_on: whether q's rate is kept in the database (a shared store, a rate set). */
bool shared_rate_on(const server *s, const qstate *q);

/** shared_breaker_note: q's breaker changed on its own from `before` (loop thread): an open
 *  is recorded for every node, a close after this node's probe releases the queue on all.
 *  Nothing on SQLite, nor for changes another node made. */
void shared_breaker_note(server *s, qstate *q, breaker_state before);

/** shared_breakers_read: reads the breakers other nodes opened and applies them (a writer op;
 *  the notification of a change, a resync). Loop thread. */
void shared_breakers_read(server *s);

/** shared_breakers_load: shared_breakers_read, synchronously, before the loop runs (start).
 *  Returns a jobq_err. */
int shared_breakers_load(server *s);

/* ---- the store's side (store_pg.c; the only SQL), on the store's thread ---- */

/** store_rate_take: up to max starts of queue now, interval_us apart with tolerance_us of
 *  burst, in the caller's transaction (the queue's row stays locked until its end).
 *  *grantedp: how many, -1 when another node's claim holds the row; *wait_msp: ms until one
 *  more may start after them (0: now). */
int store_rate_take(store *st, const char *queue, int64_t max, int64_t interval_us,
                    int64_t tolerance_us, int64_t *grantedp, int64_t *wait_msp);

/** store_rate_return: n starts taken by store_rate_take in this transaction were not used. */
int store_rate_return(store *st, const char *queue, int64_t n, int64_t interval_us);

/** store_breaker_open: this node opened queue's breaker for cooldown_ms (from the database's
 *  now) for the reason given; notifies every node at commit. */
int store_breaker_open(store *st, const char *queue, int64_t cooldown_ms, const char *reason);

/** store_breaker_close: this node's probe closed queue's breaker: the row goes, unless another
 *  node opened it again meanwhile (its open_until ahead and its name on it); notifies. */
int store_breaker_close(store *st, const char *queue);

/** One breaker row as store_breakers reads it. Borrowed strings. */
typedef struct breaker_row {
    const char *queue;
    int64_t open_until_db_ms; /* the database's clock: names this opening */
    int64_t left_ms;          /* until open_until from the database's now (negative once past) */
    const char *node;         /* the node that opened it, whose probe decides */
    const char *reason;       /* its account: "5 consecutive failures" */
} breaker_row;

/** store_breakers: every breaker row a node opened, to fn. A read. */
int store_breakers(store *st, void (*fn)(void *arg, const breaker_row *row), void *arg);

#endif
