/* expiry.c: the sweep of jobs not started by their deadline: one timer, one relaxed store
 * operation at a time (a sweep undone by a power cut is redone at start). */
#include "expiry.h"

#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "lifecycle.h"
#include "log.h"

#define EXPIRE_BATCH 256

typedef struct expire_op {
    wop op;
    server *s;
    size_t n;        /* jobs cancelled */
    int64_t next_ms; /* the next deadline (INT64_MAX: none) */
} expire_op;

static void expiry_timer_cb(uv_timer_t *t);

/* arm: the timer at s->next_expiry_ms, unless a sweep is in flight (it arms on its end). */
static void
arm(server *s)
{
    if (s->closing || s->expiring) {
        return;
    }
    if (s->next_expiry_ms == INT64_MAX) {
        uv_timer_stop(&s->expiry_timer);
        return;
    }
    int64_t delay = s->next_expiry_ms - jobq__now_ms();
    uv_timer_start(&s->expiry_timer, expiry_timer_cb, delay > 0 ? (uint64_t)delay : 0, 0);
}

void
expiry_note(server *s, int64_t at_ms)
{
    if (at_ms > 0 && at_ms < s->next_expiry_ms) {
        s->next_expiry_ms = at_ms;
        arm(s);
    }
}

/* exec_expire: on the writer's thread. */
static int
exec_expire(store *st, wop *op, int64_t now_ms)
{
    expire_op *p = container_of(op, expire_op, op);
    int err = lifecycle_expire(st, NULL, now_ms, EXPIRE_BATCH, &p->n);
    if (err != JOBQ_OK) {
        return err;
    }
    if (p->n == EXPIRE_BATCH) {
        p->next_ms = now_ms; /* more: again at once */
        return JOBQ_OK;
    }
    int64_t at;
    err = store_next_expiry(st, &at);
    p->next_ms = err == JOBQ_OK ? at : INT64_MAX;
    return err == JOBQ_ENOENT ? JOBQ_OK : err;
}

static void
done_expire(wop *op)
{
    expire_op *p = container_of(op, expire_op, op);
    server *s = p->s;
    s->expiring = false;
    int64_t next = p->next_ms;
    if (op->err != JOBQ_OK) {
        log_error("expire_failed", "err=%s", jobq__err_code(op->err));
        next = jobq__now_ms() + 1000;
    } else if (p->n > 0) {
        log_debug("expired", "jobs=%zu", p->n); /* each one is logged with its effect */
    }
    /* Deadlines noted meanwhile by expiry_note: keep the earlier. */
    if (next < s->next_expiry_ms) {
        s->next_expiry_ms = next;
    }
    free(p);
    arm(s);
}

static void
expiry_timer_cb(uv_timer_t *t)
{
    server *s = t->data;
    if (s->expiring || s->closing) {
        return;
    }
    expire_op *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        uv_timer_start(&s->expiry_timer, expiry_timer_cb, 1000, 0);
        return;
    }
    p->s = s;
    p->op.exec = exec_expire;
    p->op.done = done_expire;
    p->op.writes = true;
    p->op.relaxed = true; /* an expiry undone by a power cut is redone */
    s->expiring = true;
    /* Whatever gets a deadline from now on is noted again by expiry_note. A claim meanwhile
     * still looks for expired jobs: the sweep has not committed yet. */
    s->next_expiry_ms = jobq__now_ms();
    writer_push(&s->w, &p->op);
}

static int
expiry_init(server *s, char *err, size_t errlen)
{
    uv_timer_init(s->loop, &s->expiry_timer);
    s->expiry_timer.data = s;
    s->next_expiry_ms = INT64_MAX;
    int64_t at;
    int e = store_next_expiry(s->st, &at);
    if (e == JOBQ_OK) {
        s->next_expiry_ms = at;
    } else if (e != JOBQ_ENOENT) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(s->st));
        return -1;
    }
    return 0;
}

static void
expiry_start(server *s)
{
    arm(s);
}

static void
expiry_close(server *s)
{
    uv_timer_stop(&s->expiry_timer);
    uv_close((uv_handle_t *)&s->expiry_timer, NULL);
}

const server_part expiry_part = {
    .name = "expiry", .init = expiry_init, .start = expiry_start, .close = expiry_close};
