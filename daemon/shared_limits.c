/* shared_limits.c: a queue's `rate` and circuit breaker across the nodes of one PostgreSQL
 * database (shared_limits.h). The rate's part here is the switch (shared_rate_on); the claim
 * takes it (scheduler.c). The breaker's part: an open this node's breaker makes is written for
 * all, a close after its probe releases them; the rows other nodes wrote are read at start,
 * when one is notified and at each resync, and hold the queue here until their end. Loop
 * thread, but the exec_* functions (the writer's thread). */
#include "shared_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "codec.h"
#include "log.h"
#include "scheduler.h"
#include "store_cluster.h"

bool
shared_rate_on(const server *s, const qstate *q)
{
    return q->conf->rate_per_s > 0 && store_shared(s->st);
}

/* ---- this node's transitions, written for all ---- */

typedef struct breaker_op {
    wop op;
    bool open;
    int64_t cooldown_ms;
    char queue[65];
    char reason[96];
} breaker_op;

static int
exec_breaker(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    breaker_op *b = container_of(op, breaker_op, op);
    return b->open ? store_breaker_open(st, b->queue, b->cooldown_ms, b->reason)
                   : store_breaker_close(st, b->queue);
}

static void
done_breaker(wop *op)
{
    breaker_op *b = container_of(op, breaker_op, op);
    if (op->err != JOBQ_OK) {
        /* The other nodes learn it from their own failures, or the next transition. */
        log_error("breaker_share_failed", "queue=%s to=%s err=%s", b->queue,
                  b->open ? "open" : "closed", jobq__err_code(op->err));
    }
    free(b);
}

void
shared_breaker_note(server *s, qstate *q, breaker_state before)
{
    if (!store_shared(s->st) || q->br.state == before || q->br.remote) {
        return;
    }
    bool open = q->br.state == BREAKER_OPEN;
    if (!open && q->br.state != BREAKER_CLOSED) {
        return; /* half-open: each node's own timer; only the verdict is shared */
    }
    breaker_op *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        log_error("breaker_share_failed", "queue=%s err=out_of_memory", q->name);
        return;
    }
    b->open = open;
    b->cooldown_ms = q->br.rule.cooldown_ms;
    snprintf(b->queue, sizeof(b->queue), "%s", q->name);
    breaker_describe(&q->br, b->reason, sizeof(b->reason));
    b->op.exec = exec_breaker;
    b->op.done = done_breaker;
    b->op.writes = true;
    b->op.relaxed = true; /* lost to a power cut: the nodes open on their own failures again */
    writer_push(&s->w, &b->op);
}

/* ---- the other nodes' openings, read and applied ---- */

typedef struct brow {
    char queue[65];
    int64_t stamp;
    int64_t left_ms;
    char node[128];
    char reason[96];
} brow;

typedef struct read_op {
    wop op;
    server *s;
    brow *rows;
    size_t n, cap;
    bool oom;
} read_op;

static void
collect_cb(void *arg, const breaker_row *row)
{
    read_op *r = arg;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        brow *p = realloc(r->rows, cap * sizeof(*p));
        if (p == NULL) {
            r->oom = true;
            return;
        }
        r->rows = p;
        r->cap = cap;
    }
    brow *b = &r->rows[r->n++];
    snprintf(b->queue, sizeof(b->queue), "%s", row->queue);
    b->stamp = row->open_until_db_ms;
    b->left_ms = row->left_ms;
    snprintf(b->node, sizeof(b->node), "%s", row->node);
    snprintf(b->reason, sizeof(b->reason), "%s", row->reason);
}

/* apply_row: q's breaker as row (NULL: no node holds it open) says. */
static void
apply_row(server *s, qstate *q, const brow *row, int64_t now)
{
    if (row == NULL) {
        if (breaker_force_close(&q->br)) {
            log_info("breaker_closed", "queue=%s by=another_node", q->name);
            s->dispatch(s, q);
        }
        return;
    }
    bool mine = strcmp(row->node, s->node_name) == 0;
    if (mine && (q->br.state != BREAKER_CLOSED || row->left_ms <= 0)) {
        return; /* this node's own opening: its breaker decides */
    }
    /* Held until the row's end; then the opener probes for all. A verdict that does not come
     * within a cooldown more (the opener stopped) lets this node probe. This node's own row
     * from before a restart: it probes at the end. */
    int64_t until = now + row->left_ms;
    int64_t hold = mine ? until : until + q->br.rule.cooldown_ms;
    char why[sizeof(q->br.remote_why)];
    snprintf(why, sizeof(why), "node %.60s: %.90s", row->node, row->reason);
    if (breaker_force_open(&q->br, until, hold, row->stamp, why)) {
        log_warn("breaker_open", "queue=%s reason=\"%s\" open_ms=%lld", q->name, why,
                 (long long)(row->left_ms > 0 ? row->left_ms : 0));
        s->dispatch(s, q); /* arms the breaker's timer */
    }
}

static void
apply(server *s, const brow *rows, size_t n)
{
    int64_t now = jobq__now_ms();
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        const brow *row = NULL;
        for (size_t k = 0; k < n && row == NULL; k++) {
            row = strcmp(rows[k].queue, q->name) == 0 ? &rows[k] : NULL;
        }
        apply_row(s, q, row, now);
    }
}

static int
exec_read(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    read_op *r = container_of(op, read_op, op);
    return store_breakers(st, collect_cb, r);
}

static void
done_read(wop *op)
{
    read_op *r = container_of(op, read_op, op);
    if (op->err != JOBQ_OK || r->oom) {
        /* The next notification or resync reads them again. */
        log_error("breakers_read_failed", "err=%s", jobq__err_code(r->oom ? JOBQ_ENOMEM : op->err));
    } else {
        apply(r->s, r->rows, r->n);
    }
    free(r->rows);
    free(r);
}

void
shared_breakers_read(server *s)
{
    if (!store_shared(s->st)) {
        return;
    }
    read_op *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        log_error("breakers_read_failed", "err=%s", jobq__err_code(JOBQ_ENOMEM));
        return;
    }
    r->s = s;
    r->op.exec = exec_read;
    r->op.done = done_read;
    r->op.writes = false;
    writer_push(&s->w, &r->op);
}

int
shared_breakers_load(server *s)
{
    if (!store_shared(s->st)) {
        return JOBQ_OK;
    }
    read_op r = {.s = s};
    int err = store_breakers(s->st, collect_cb, &r);
    if (err == JOBQ_OK && r.oom) {
        err = JOBQ_ENOMEM;
    }
    if (err == JOBQ_OK) {
        apply(s, r.rows, r.n);
    }
    free(r.rows);
    return err;
}

#ifndef JOBQ_HAVE_POSTGRES
/* Builds without libpq: the store is never shared, so none of these runs. */
int
store_rate_take(store *st, const char *queue, int64_t max, int64_t interval_us,
                int64_t tolerance_us, int64_t *grantedp, int64_t *wait_msp)
{
    (void)st, (void)queue, (void)interval_us, (void)tolerance_us;
    *grantedp = max;
    *wait_msp = 0;
    return JOBQ_OK;
}

int
store_rate_return(store *st, const char *queue, int64_t n, int64_t interval_us)
{
    (void)st, (void)queue, (void)n, (void)interval_us;
    return JOBQ_OK;
}

int
store_breaker_open(store *st, const char *queue, int64_t cooldown_ms, const char *reason)
{
    (void)st, (void)queue, (void)cooldown_ms, (void)reason;
    return JOBQ_OK;
}

int
store_breaker_close(store *st, const char *queue)
{
    (void)st, (void)queue;
    return JOBQ_OK;
}

int
store_breakers(store *st, void (*fn)(void *arg, const breaker_row *row), void *arg)
{
    (void)st, (void)fn, (void)arg;
    return JOBQ_OK;
}
#endif
