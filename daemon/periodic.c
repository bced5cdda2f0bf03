/* periodic.c: periodic jobs. One timer for every schedule, armed at the earliest next tick
 * (and at least once a minute, so a wall clock that jumps is noticed); each tick submits one
 * job whose key names the schedule and the tick, in the transaction that records the tick as
 * the schedule's last. A restart, a crash or a clock that goes back never fires a tick twice;
 * ticks missed while jobqd was down run once at start, or are skipped. */
#include "periodic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "codec.h"
#include "lifecycle.h"
#include "log.h"
#include "request.h"
#include "scheduler.h"
#include "store_cluster.h"

#define RECHECK_MS 60000 /* the timer looks at the wall clock at least this often */
#define RETRY_MS 1000    /* after a failed fire (e.g. a full disk) */

struct periodic_state {
    const schedule_conf *sc;
    int64_t last_ms;  /* the last tick fired or skipped, or when jobqd first saw it */
    bool ticked;      /* last_ms is a tick (else the schedule never fired nor skipped one) */
    int64_t next_ms;  /* cron_next after last_ms; -1: never */
    int64_t retry_ms; /* after a failure: not before this */
    bool firing;
};

typedef struct fire_op {
    wop op;
    server *s;
    periodic_state *p;
    int64_t tick_ms;
    job_spec spec;
    char key[160];
    int64_t id;
    bool dup;
    int state;
} fire_op;

static void arm(server *s);

int64_t
periodic_due(const schedule_conf *sc, int64_t last_ms, int64_t now_ms)
{
    int64_t t = cron_next(&sc->expr, sc->zone, last_ms);
    if (t < 0 || t > now_ms) {
        return -1;
    }
    int64_t n = cron_next(&sc->expr, sc->zone, t);
    if (n < 0 || n > now_ms) {
        return t; /* the usual case: one tick is due */
    }
    /* Several ticks were missed (jobqd was down, or the clock jumped by years): bisect for
     * the latest. cron_next(x) never decreases as x grows, so "its next tick is due" holds
     * for every x before the latest due tick and for none from it on: lo keeps a time where
     * it holds, hi one where it does not. About 40 cron_next calls, however long the gap. */
    int64_t lo = t, hi = now_ms;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t m = cron_next(&sc->expr, sc->zone, mid);
        if (m >= 0 && m <= now_ms) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return cron_next(&sc->expr, sc->zone, lo);
}

void
periodic_spec(const schedule_conf *sc, const queue_conf *qc, int64_t tick_ms, char *key,
              size_t keylen, job_spec *spec)
{
    snprintf(key, keylen, "schedule:%s:%lld", sc->name, (long long)tick_ms);
    json_t *v = json_loads(sc->payload, JSON_DECODE_ANY, NULL);
    *spec = (job_spec){
        .queue = sc->queue,
        .payload = sc->payload,
        .payload_hash = v != NULL ? jobq__payload_hash(v) : 0,
        .priority = sc->priority,
        .run_at_ms = tick_ms,
        .max_attempts = qc->max_attempts,
        .timeout_ms = qc->timeout_ms,
        .key = key,
        /* The key must outlive the tick's window: a day, or the queue's key_ttl if longer. */
        .key_ttl_ms = qc->key_ttl_ms > 86400000 ? qc->key_ttl_ms : 86400000,
    };
    json_decref(v);
}

int
periodic_base(store *st, const schedule_conf *sc, int64_t now_ms, int64_t *basep, bool *tickedp)
{
    int64_t base;
    int err = store_schedule_last(st, sc->name, &base);
    bool ticked = err == JOBQ_OK;
    if (err == JOBQ_ENOENT) {
        /* Never fired: it counts from when jobqd first saw it (now, for a new schedule:
         * earlier ticks were never its to run). */
        err = store_schedule_since(st, sc->name, now_ms, &base);
    }
    if (err == JOBQ_OK) {
        *basep = base;
        *tickedp = ticked;
    }
    return err;
}

int
periodic_recover(store *st, const schedule_conf *sc, const queue_conf *qc, int64_t now_ms,
                 bool *firedp)
{
    *firedp = false;
    int64_t last;
    bool ticked;
    int err = periodic_base(st, sc, now_ms, &last, &ticked);
    if (err != JOBQ_OK) {
        return err;
    }
    int64_t tick = periodic_due(sc, last, now_ms);
    if (tick < 0) {
        return JOBQ_OK;
    }
    if (sc->missed_skip) {
        log_info("schedule_missed", "schedule=%s last_tick=%lld skipped_to=%lld", sc->name,
                 (long long)last, (long long)tick);
        return lifecycle_schedule_fire(st, sc->name, tick, NULL, now_ms, NULL, NULL, NULL);
    }
    char key[160];
    job_spec spec;
    periodic_spec(sc, qc, tick, key, sizeof(key), &spec);
    int64_t id;
    bool dup;
    int state;
    err = lifecycle_schedule_fire(st, sc->name, tick, &spec, now_ms, &id, &dup, &state);
    if (err == JOBQ_OK) {
        *firedp = !dup;
        log_info("schedule_missed", "schedule=%s tick=%lld id=%lld run=once", sc->name,
                 (long long)tick, (long long)id);
    }
    return err;
}

static const queue_conf *
queue_of(server *s, const schedule_conf *sc, queue_conf *defaults)
{
    qstate *q = queue_add(s, sc->queue);
    if (q != NULL) {
        return q->conf;
    }
    config_queue_defaults(defaults);
    return defaults;
}

static void
timer_cb(uv_timer_t *t)
{
    arm(t->data);
}

static int
exec_fire(store *st, wop *op, int64_t now_ms)
{
    fire_op *f = container_of(op, fire_op, op);
    return lifecycle_schedule_fire(st, f->p->sc->name, f->tick_ms, &f->spec, now_ms, &f->id,
                                   &f->dup, &f->state);
}

static void
done_fire(wop *op)
{
    fire_op *f = container_of(op, fire_op, op);
    server *s = f->s;
    periodic_state *p = f->p;
    p->firing = false;
    if (op->err != JOBQ_OK) {
        log_error("schedule_failed", "schedule=%s tick=%lld err=%s reason=\"%s\"", p->sc->name,
                  (long long)f->tick_ms, jobq__err_code(op->err), writer_last_error(&s->w));
        p->retry_ms = jobq__now_ms() + RETRY_MS;
    } else {
        p->last_ms = f->tick_ms;
        p->ticked = true;
        p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
        p->retry_ms = 0;
        if (!f->dup) {
            qstate *q = queue_add(s, f->spec.queue);
            if (q != NULL) {
                queue_count_move(q, -1, f->state);
                if (f->state == JOBQ_SCHEDULED) {
                    sched_note_due(s, f->spec.run_at_ms);
                } else {
                    sched_dispatch(s, q);
                }
            }
        }
        log_info("schedule_fired", "schedule=%s tick=%lld id=%lld%s", p->sc->name,
                 (long long)f->tick_ms, (long long)f->id, f->dup ? " duplicate=true" : "");
    }
    free(f);
    if (!s->closing) {
        arm(s);
    }
}

/* fire: pushes the op that submits p's job of tick_ms. */
static void
fire(server *s, periodic_state *p, int64_t tick_ms)
{
    fire_op *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        p->retry_ms = jobq__now_ms() + RETRY_MS;
        return;
    }
    queue_conf defaults;
    f->s = s;
    f->p = p;
    f->tick_ms = tick_ms;
    periodic_spec(p->sc, queue_of(s, p->sc, &defaults), tick_ms, f->key, sizeof(f->key), &f->spec);
    f->op.exec = exec_fire;
    f->op.done = done_fire;
    f->op.writes = true;
    p->firing = true;
    writer_push(&s->w, &f->op);
}

/* arm: fires what is due, then sets the timer at the earliest next tick (at most a minute
 * away: the wall clock may jump; the timer runs on the monotonic one). */
static void
arm(server *s)
{
    if (s->nperiodics == 0 || s->closing) {
        return;
    }
    int64_t now = jobq__now_ms();
    int64_t wake = now + RECHECK_MS;
    if (!cluster_leads(s)) {
        /* Several nodes: the leader fires (periodic_lead when elected); a tick another node
         * fired is a duplicate key here anyway. */
        uv_timer_start(&s->periodic_timer, timer_cb, RECHECK_MS, 0);
        return;
    }
    for (size_t i = 0; i < s->nperiodics; i++) {
        periodic_state *p = &s->periodics[i];
        if (p->firing) {
            continue; /* re-armed when it completes */
        }
        if (s->draining) {
            continue;
        }
        if (p->retry_ms > now) {
            wake = p->retry_ms < wake ? p->retry_ms : wake;
            continue;
        }
        int64_t tick = periodic_due(p->sc, p->last_ms, now);
        if (tick >= 0) {
            fire(s, p, tick);
            continue;
        }
        if (p->next_ms >= 0 && p->next_ms < wake) {
            wake = p->next_ms;
        }
    }
    uv_timer_start(&s->periodic_timer, timer_cb, (uint64_t)(wake > now ? wake - now : 0), 0);
}

int
periodic_init(server *s)
{
    config *cfg = s->cfg;
    uv_timer_init(s->loop, &s->periodic_timer);
    s->periodic_timer.data = s;
    if (cfg->nschedules == 0) {
        return JOBQ_OK;
    }
    s->periodics = calloc(cfg->nschedules, sizeof(*s->periodics));
    if (s->periodics == NULL) {
        return JOBQ_ENOMEM;
    }
    s->nperiodics = cfg->nschedules;
    int64_t now = jobq__now_ms();
    for (size_t i = 0; i < cfg->nschedules; i++) {
        periodic_state *p = &s->periodics[i];
        p->sc = &cfg->schedules[i];
        queue_conf defaults;
        bool fired;
        int err = store_begin(s->st);
        if (err == JOBQ_OK && store_shared(s->st)) {
            /* Several nodes: the catch-up is the leader's, once elected (periodic_lead). */
        } else if (err == JOBQ_OK) {
            err = periodic_recover(s->st, p->sc, queue_of(s, p->sc, &defaults), now, &fired);
        }
        if (err == JOBQ_OK) {
            err = store_commit(s->st);
        } else {
            store_rollback(s->st);
        }
        if (err == JOBQ_OK) {
            err = periodic_base(s->st, p->sc, now, &p->last_ms, &p->ticked);
        }
        if (err != JOBQ_OK) {
            return err;
        }
        p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
    }
    return JOBQ_OK;
}

/* ---- a node elected leader: the catch-up, from the ticks as stored ---- */

typedef struct lead_op {
    wop op;
    server *s;
    int64_t *last_ms; /* per schedule */
    bool *ticked;
} lead_op;

static int
exec_lead(store *st, wop *op, int64_t now_ms)
{
    lead_op *l = container_of(op, lead_op, op);
    server *s = l->s;
    for (size_t i = 0; i < s->nperiodics; i++) {
        const schedule_conf *sc = s->periodics[i].sc;
        queue_conf defaults;
        config_queue_defaults(&defaults);
        const queue_conf *qc = &defaults;
        for (size_t k = 0; k < s->cfg->nqueues; k++) {
            if (strcmp(s->cfg->queues[k].name, sc->queue) == 0) {
                qc = &s->cfg->queues[k];
            }
        }
        bool fired;
        int err = periodic_recover(st, sc, qc, now_ms, &fired);
        if (err == JOBQ_OK) {
            err = periodic_base(st, sc, now_ms, &l->last_ms[i], &l->ticked[i]);
        }
        if (err != JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_lead(wop *op)
{
    lead_op *l = container_of(op, lead_op, op);
    server *s = l->s;
    for (size_t i = 0; i < s->nperiodics; i++) {
        periodic_state *p = &s->periodics[i];
        p->firing = false;
        if (op->err == JOBQ_OK) {
            p->last_ms = l->last_ms[i];
            p->ticked = l->ticked[i];
            p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
        } else {
            p->retry_ms = jobq__now_ms() + RETRY_MS;
        }
    }
    if (op->err != JOBQ_OK) {
        log_error("schedule_failed", "reason=\"%s\"", writer_last_error(&s->w));
    }
    free(l->last_ms);
    free(l->ticked);
    free(l);
    if (!s->closing) {
        arm(s);
    }
}

void
periodic_lead(server *s)
{
    if (s->nperiodics == 0 || s->closing) {
        return;
    }
    for (size_t i = 0; i < s->nperiodics; i++) {
        if (s->periodics[i].firing) {
            return; /* a fire in flight: the tick as stored is read again after it */
        }
    }
    lead_op *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->last_ms = calloc(s->nperiodics, sizeof(*l->last_ms))) == NULL ||
        (l->ticked = calloc(s->nperiodics, sizeof(*l->ticked))) == NULL) {
        if (l != NULL) {
            free(l->last_ms);
        }
        free(l);
        return;
    }
    l->s = s;
    l->op.exec = exec_lead;
    l->op.done = done_lead;
    l->op.writes = true;
    for (size_t i = 0; i < s->nperiodics; i++) {
        s->periodics[i].firing = true; /* arm leaves them alone until the catch-up is done */
    }
    writer_push(&s->w, &l->op);
}

/* periodic_start: the first arming, once the writer exists. */
void
periodic_start(server *s)
{
    arm(s);
}

json_t *
periodic_json(server *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->nperiodics; i++) {
        const periodic_state *p = &s->periodics[i];
        const schedule_conf *sc = p->sc;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(sc->name));
        json_object_set_new(o, "cron", json_string(sc->cron));
        json_object_set_new(o, "timezone", json_string(tz_name(sc->zone)));
        json_object_set_new(o, "queue", json_string(sc->queue));
        json_object_set_new(o, "missed", json_string(sc->missed_skip ? "skip" : "run_once"));
        json_object_set_new(o, "last_tick", p->ticked ? json_integer(p->last_ms) : json_null());
        json_object_set_new(o, "next", p->next_ms >= 0 ? json_integer(p->next_ms) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

void
periodic_close(server *s)
{
    uv_timer_stop(&s->periodic_timer);
    uv_close((uv_handle_t *)&s->periodic_timer, NULL);
}

void
periodic_free(server *s)
{
    free(s->periodics);
    s->periodics = NULL;
    s->nperiodics = 0;
}

static int
periodic_part_init(server *s, char *err, size_t errlen)
{
    if (periodic_init(s) != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(s->st));
        return -1;
    }
    return 0;
}

const server_part periodic_part = {.name = "periodic",
                                   .init = periodic_part_init,
                                   .start = periodic_start,
                                   .close = periodic_close,
                                   .free = periodic_free};
