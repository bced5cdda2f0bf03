/* scheduler.c: the scheduler: one uv_timer armed at the earliest run_at (never a timer per job,
 * never polling while idle) and the claims that feed the runners. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "runner.h"

#define PROMOTE_BATCH 1000
#define CLAIM_BATCH 64

typedef struct promoted {
    char queue[65];
    int old_state;
} promoted;

typedef struct promote_op {
    wop op;
    server *s;
    promoted *items; /* PROMOTE_BATCH entries */
    size_t n;
    int64_t next_due_ms; /* INT64_MAX: none */
} promote_op;

typedef struct claim_op {
    wop op;
    server *s;
    qstate *q;
    size_t max;
    job_row *rows;
    size_t n;
} claim_op;

static void timer_cb(uv_timer_t *t);

static void
arm(server *s)
{
    if (s->promoting || s->closing) {
        return; /* re-armed when the promotion in flight completes */
    }
    if (s->next_due_ms == INT64_MAX) {
        uv_timer_stop(&s->sched_timer);
        return;
    }
    int64_t delay = s->next_due_ms - jobq__now_ms();
    uv_timer_start(&s->sched_timer, timer_cb, delay > 0 ? (uint64_t)delay : 0, 0);
}

int
sched_init(server *s)
{
    uv_timer_init(s->loop, &s->sched_timer);
    s->sched_timer.data = s;
    s->next_due_ms = INT64_MAX;
    int64_t at;
    int err = store_next_due(s->st, &at);
    if (err == JOBQ_OK) {
        s->next_due_ms = at;
    } else if (err != JOBQ_ENOENT) {
        return err;
    }
    arm(s);
    return JOBQ_OK;
}

void
sched_note_due(server *s, int64_t run_at_ms)
{
    if (run_at_ms < s->next_due_ms) {
        s->next_due_ms = run_at_ms;
        arm(s);
    }
}

static void
collect_promoted(void *arg, const char *queue, int old_state)
{
    promote_op *p = arg;
    promoted *it = &p->items[p->n++];
    strncpy(it->queue, queue, sizeof(it->queue) - 1);
    it->queue[sizeof(it->queue) - 1] = '\0';
    it->old_state = old_state;
}

static int
exec_promote(store *st, wop *op, int64_t now_ms)
{
    promote_op *p = container_of(op, promote_op, op);
    size_t n;
    p->n = 0;
    int err = store_promote_due(st, now_ms, PROMOTE_BATCH, collect_promoted, p, &n);
    if (err == JOBQ_OK) {
        int64_t at;
        int e2 = store_next_due(st, &at);
        p->next_due_ms = e2 == JOBQ_OK ? at : INT64_MAX;
        if (e2 != JOBQ_OK && e2 != JOBQ_ENOENT) {
            err = e2;
        }
    }
    if (err != JOBQ_OK) {
        p->n = 0;
    }
    return err;
}

static void
done_promote(wop *op)
{
    promote_op *p = container_of(op, promote_op, op);
    server *s = p->s;
    s->promoting = false;
    if (op->err != JOBQ_OK) {
        /* The store failed (e.g. disk full): try again in a second. */
        log_error("promote_failed", "err=%s", jobq__err_code(op->err));
        s->next_due_ms = jobq__now_ms() + 1000;
    } else {
        for (size_t i = 0; i < p->n; i++) {
            qstate *q = server_queue_add(s, p->items[i].queue);
            if (q != NULL) {
                server_count_move(q, p->items[i].old_state, JOBQ_READY);
            }
        }
        /* Jobs scheduled meanwhile were noted by sched_note_due: keep the earlier. */
        int64_t next = p->n == PROMOTE_BATCH ? jobq__now_ms() : p->next_due_ms;
        if (next < s->next_due_ms) {
            s->next_due_ms = next;
        }
        if (p->n > 0) {
            log_debug("promoted", "jobs=%zu", p->n);
        }
    }
    free(p->items);
    free(p);
    arm(s);
    sched_dispatch_all(s);
}

static void
timer_cb(uv_timer_t *t)
{
    server *s = t->data;
    if (s->promoting || s->closing) {
        return;
    }
    promote_op *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->items = calloc(PROMOTE_BATCH, sizeof(*p->items))) == NULL) {
        free(p);
        uv_timer_start(&s->sched_timer, timer_cb, 1000, 0);
        return;
    }
    p->s = s;
    p->op.exec = exec_promote;
    p->op.done = done_promote;
    p->op.writes = true;
    s->promoting = true;
    /* Whatever becomes due from now on is noted again by sched_note_due. */
    s->next_due_ms = INT64_MAX;
    writer_push(&s->w, &p->op);
}

static int
exec_claim(store *st, wop *op, int64_t now_ms)
{
    claim_op *c = container_of(op, claim_op, op);
    return store_claim(st, c->q->name, now_ms, c->max, c->rows, &c->n);
}

static void
done_claim(wop *op)
{
    claim_op *c = container_of(op, claim_op, op);
    server *s = c->s;
    qstate *q = c->q;
    q->claiming = 0;
    if (op->err != JOBQ_OK) {
        log_error("claim_failed", "queue=%s err=%s", q->name, jobq__err_code(op->err));
        for (size_t i = 0; i < c->n; i++) {
            job_row_clear(&c->rows[i]);
        }
        c->n = 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        server_count_move(q, JOBQ_READY, JOBQ_RUNNING);
        runner_start(s, q, &c->rows[i]); /* takes the row */
    }
    if (op->err == JOBQ_OK && c->n < c->max && q->counts[JOBQ_READY] > 0) {
        /* The counts said more were ready than the store had: trust the store. */
        log_warn("count_resync", "queue=%s ready_counted=%lld", q->name,
                 (long long)q->counts[JOBQ_READY]);
        q->counts[JOBQ_READY] = 0;
    }
    bool ok = op->err == JOBQ_OK;
    free(c->rows);
    free(c);
    if (ok) {
        sched_dispatch(s, q);
    }
}

void
sched_dispatch(server *s, qstate *q)
{
    if (q->conf->argv == NULL || q->paused || s->draining || q->claiming ||
        q->counts[JOBQ_READY] <= 0) {
        return;
    }
    int free_slots = q->conf->concurrency - q->running;
    if (free_slots <= 0) {
        return;
    }
    size_t max = (size_t)free_slots;
    if (max > CLAIM_BATCH) {
        max = CLAIM_BATCH;
    }
    if ((int64_t)max > q->counts[JOBQ_READY]) {
        max = (size_t)q->counts[JOBQ_READY];
    }
    claim_op *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->rows = calloc(max, sizeof(*c->rows))) == NULL) {
        free(c);
        return;
    }
    c->s = s;
    c->q = q;
    c->max = max;
    c->op.exec = exec_claim;
    c->op.done = done_claim;
    c->op.writes = true;
    q->claiming = 1;
    writer_push(&s->w, &c->op);
}

void
sched_dispatch_all(server *s)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        sched_dispatch(s, s->queues[i]);
    }
}

void
sched_close(server *s)
{
    uv_timer_stop(&s->sched_timer);
    uv_close((uv_handle_t *)&s->sched_timer, NULL);
}
