/* gauges.c: samples, every GAUGE_PERIOD_MS, how long each queue's oldest waiting job has
 * waited (its oldest ready job, and its oldest scheduled or retrying job past due and not yet
 * made ready): one read on the writer's thread, for /metrics, the stats' series and alerts. */
#include "gauges.h"

#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "log.h"

#define GAUGE_PERIOD_MS 5000

/* One sample: the queues that had waiting jobs, and what the store says of each. */
typedef struct sample {
    wop op;
    server *s;
    size_t n;
    qstate **queues;  /* loop-owned; only their names, which never change, are read there */
    const char **names;
    int64_t *ready;   /* out */
    int64_t *overdue; /* out */
} sample;

static void
sample_free(sample *sm)
{
    free(sm->queues);
    free(sm->names);
    free(sm->ready);
    free(sm->overdue);
    free(sm);
}

static int
exec_sample(store *st, wop *op, int64_t now_ms)
{
    sample *sm = container_of(op, sample, op);
    for (size_t i = 0; i < sm->n; i++) {
        int err = store_oldest_due(st, sm->names[i], now_ms, &sm->ready[i], &sm->overdue[i]);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_sample(wop *op)
{
    sample *sm = container_of(op, sample, op);
    server *s = sm->s;
    s->gauging = false;
    if (op->err == JOBQ_OK) {
        for (size_t i = 0; i < sm->n; i++) {
            sm->queues[i]->oldest_ready_ms = sm->ready[i];
            sm->queues[i]->oldest_overdue_ms = sm->overdue[i];
        }
    } else {
        log_warn("gauge_sample_failed", "err=%s", jobq__err_code(op->err));
    }
    sample_free(sm);
}

/* gauge_timer_cb: a sample of the queues with waiting jobs; those without have waited 0. */
static void
gauge_timer_cb(uv_timer_t *t)
{
    server *s = t->data;
    if (s->gauging || s->draining) {
        return;
    }
    sample *sm = calloc(1, sizeof(*sm));
    size_t cap = s->nqueues > 0 ? s->nqueues : 1;
    if (sm == NULL || (sm->queues = calloc(cap, sizeof(*sm->queues))) == NULL ||
        (sm->names = calloc(cap, sizeof(*sm->names))) == NULL ||
        (sm->ready = calloc(cap, sizeof(*sm->ready))) == NULL ||
        (sm->overdue = calloc(cap, sizeof(*sm->overdue))) == NULL) {
        if (sm != NULL) {
            sample_free(sm);
        }
        return;
    }
    sm->s = s;
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        if (q->counts[JOBQ_READY] > 0 || q->counts[JOBQ_SCHEDULED] > 0 ||
            q->counts[JOBQ_RETRYING] > 0) {
            sm->queues[sm->n] = q;
            sm->names[sm->n++] = q->name;
        } else {
            q->oldest_ready_ms = q->oldest_overdue_ms = 0;
        }
    }
    if (sm->n == 0) {
        sample_free(sm);
        return;
    }
    sm->op.exec = exec_sample;
    sm->op.done = done_sample;
    sm->op.writes = false;
    s->gauging = true;
    writer_push(&s->w, &sm->op);
}

static int
gauges_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    uv_timer_init(s->loop, &s->gauge_timer);
    s->gauge_timer.data = s;
    return 0;
}

static void
gauges_start(server *s)
{
    uv_timer_start(&s->gauge_timer, gauge_timer_cb, 0, GAUGE_PERIOD_MS);
}

static void
gauges_close(server *s)
{
    uv_close((uv_handle_t *)&s->gauge_timer, NULL);
}

const server_part gauges_part = {
    .name = "gauges", .init = gauges_init, .start = gauges_start, .close = gauges_close};

int64_t
gauges_age_s(int64_t since_ms, int64_t now_ms)
{
    return since_ms > 0 && now_ms > since_ms ? (now_ms - since_ms) / 1000 : 0;
}
