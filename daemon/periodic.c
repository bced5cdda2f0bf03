/* periodic.c: periodic jobs. One timer for every schedule, armed at the earliest next tick
 * (and at least once a minute, so a wall clock that jumps is noticed); each tick submits one
 * job whose key names the schedule and the tick, in the transaction that records the tick as
 * the schedule's last. A restart, a crash or a clock that goes back never fires a tick twice;
 * ticks missed while jobqd was down run once at start, or are skipped.
 *
 * Schedules come from the config file ([schedule.NAME], read-only at runtime but for pause,
 * resume and trigger) or from the schedule_* ops (stored in schedule_defs; a config schedule
 * of the same name wins). Each is one periodic_state in the list s->periodics. A state is
 * never changed in place: an update, a delete or a reload unlinks it (removed) and, for an
 * update or a reload, links a new one with the same last tick; a removed state whose fire is
 * in flight is freed when that fire completes. A fire copies what its writer-thread half
 * reads (name, queue, payload), so a config reloaded meanwhile may be freed at once. */
#include "periodic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "cluster.h"
#include "codec.h"
#include "handlers.h"
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
    periodic_state *next;  /* the list s->periodics */
    bool runtime;          /* added by schedule_add: sc is &own, stored in schedule_defs */
    schedule_conf own;     /* runtime: the schedule (owned strings and zone) */
    bool paused;           /* schedule_pause: its ticks pass without a job, unrecorded */
    bool removed;          /* unlinked: freed when the fire in flight completes */
    int64_t created_at_ms; /* runtime */
    int64_t updated_at_ms; /* runtime */
};

typedef struct fire_op {
    wop op;
    server *s;
    periodic_state *p;
    int64_t tick_ms;
    job_spec spec; /* its queue and payload: the copies below */
    char key[160];
    int64_t id;
    bool dup;
    int state;
    char name[65]; /* the schedule's (names are at most 64 bytes) */
    char *queue;   /* owned copy */
    char *payload; /* owned copy */
    bool overlap_skip;
    bool skipped; /* out: overlap = skip, and the last job has not ended */
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
    bool dup, skipped;
    int state;
    err = lifecycle_schedule_tick(st, sc->name, tick, &spec, sc->overlap_skip, now_ms, &id, &dup,
                                  &state, &skipped);
    if (err == JOBQ_OK) {
        *firedp = !dup && !skipped;
        log_info("schedule_missed", "schedule=%s tick=%lld id=%lld run=%s", sc->name,
                 (long long)tick, (long long)id, skipped ? "skipped_overlap" : "once");
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
    return lifecycle_schedule_tick(st, f->name, f->tick_ms, &f->spec, f->overlap_skip, now_ms,
                                   &f->id, &f->dup, &f->state, &f->skipped);
}

static void
fire_op_free(fire_op *f)
{
    free(f->queue);
    free(f->payload);
    free(f);
}

static void pstate_free(periodic_state *p);

/* count_new_job: a schedule's new job (state) joins its queue's counts and may start. */
static void
count_new_job(server *s, const char *queue, int state, int64_t run_at_ms)
{
    qstate *q = queue_add(s, queue);
    if (q != NULL) {
        queue_count_move(q, -1, state);
        if (state == JOBQ_SCHEDULED) {
            sched_note_due(s, run_at_ms);
        } else {
            sched_dispatch(s, q);
        }
    }
}

static void
done_fire(wop *op)
{
    fire_op *f = container_of(op, fire_op, op);
    server *s = f->s;
    periodic_state *p = f->p;
    p->firing = false;
    if (op->err != JOBQ_OK) {
        log_error("schedule_failed", "schedule=%s tick=%lld err=%s reason=\"%s\"", f->name,
                  (long long)f->tick_ms, jobq__err_code(op->err), writer_last_error(&s->w));
        p->retry_ms = jobq__now_ms() + RETRY_MS;
    } else {
        if (!p->removed) {
            p->last_ms = f->tick_ms;
            p->ticked = true;
            p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
            p->retry_ms = 0;
        }
        if (!f->dup && !f->skipped) {
            count_new_job(s, f->spec.queue, f->state, f->spec.run_at_ms);
        }
        if (f->skipped) {
            log_info("schedule_skipped", "schedule=%s tick=%lld overlap=skip running=%lld", f->name,
                     (long long)f->tick_ms, (long long)f->id);
        } else {
            log_info("schedule_fired", "schedule=%s tick=%lld id=%lld%s", f->name,
                     (long long)f->tick_ms, (long long)f->id, f->dup ? " duplicate=true" : "");
        }
    }
    if (p->removed) {
        pstate_free(p);
    }
    fire_op_free(f);
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
    f->overlap_skip = p->sc->overlap_skip;
    snprintf(f->name, sizeof(f->name), "%s", p->sc->name);
    periodic_spec(p->sc, queue_of(s, p->sc, &defaults), tick_ms, f->key, sizeof(f->key), &f->spec);
    f->queue = strdup(p->sc->queue);
    f->payload = strdup(p->sc->payload);
    if (f->queue == NULL || f->payload == NULL) {
        fire_op_free(f);
        p->retry_ms = jobq__now_ms() + RETRY_MS;
        return;
    }
    f->spec.queue = f->queue;
    f->spec.payload = f->payload;
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
    if (s->closing) {
        return;
    }
    if (s->periodics == NULL) {
        uv_timer_stop(&s->periodic_timer);
        return;
    }
    int64_t now = jobq__now_ms();
    int64_t wake = now + RECHECK_MS;
    if (!s->leads) {
        /* Several nodes: the leader fires (periodic_lead when elected); a tick another node
         * fired is a duplicate key here anyway. */
        uv_timer_start(&s->periodic_timer, timer_cb, RECHECK_MS, 0);
        return;
    }
    for (periodic_state *p = s->periodics; p != NULL; p = p->next) {
        if (p->firing || p->paused) {
            continue; /* re-armed when it completes; resumed by schedule_resume */
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

/* ---- the list of schedules ---- */

/* conf_clear: frees a runtime schedule_conf's strings and zone. */
static void
conf_clear(schedule_conf *sc)
{
    free(sc->name);
    free(sc->cron);
    free(sc->queue);
    free(sc->payload);
    tz_free(sc->zone);
    memset(sc, 0, sizeof(*sc));
}

static void
pstate_free(periodic_state *p)
{
    if (p->runtime) {
        conf_clear(&p->own);
    }
    free(p);
}

/* find: the schedule named name in the list, or NULL. */
static periodic_state *
find(server *s, const char *name)
{
    for (periodic_state *p = s->periodics; p != NULL; p = p->next) {
        if (strcmp(p->sc->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* link_state: appends p to the list (config schedules come first, in the file's order). */
static void
link_state(server *s, periodic_state *p)
{
    periodic_state **pp = &s->periodics;
    while (*pp != NULL) {
        pp = &(*pp)->next;
    }
    p->next = NULL;
    *pp = p;
    s->nperiodics++;
}

/* unlink_state: takes p out of the list; it is freed now, or when its fire completes. */
static void
unlink_state(server *s, periodic_state *p)
{
    for (periodic_state **pp = &s->periodics; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            s->nperiodics--;
            break;
        }
    }
    p->next = NULL;
    p->removed = true;
    if (!p->firing) {
        pstate_free(p);
    }
}

/* conf_from_def: a runtime schedule's conf (owned: conf_clear) from d. Reads a zone file:
 * the writer's thread, or before the loop runs. Returns 0, or -1 with the reason in why. */
static int
conf_from_def(const sched_def *d, schedule_conf *sc, char *why, size_t len)
{
    char err[256];
    memset(sc, 0, sizeof(*sc));
    if (cron_parse(d->cron, &sc->expr, err, sizeof(err)) != 0) {
        snprintf(why, len,
                 "cron \"%.60s\": %.120s (five fields: minute hour day-of-month month day-of-week, "
                 "such as */5 * * * *)",
                 d->cron, err);
        return -1;
    }
    sc->zone = tz_load(d->timezone, err, sizeof(err));
    if (sc->zone == NULL) {
        snprintf(why, len, "timezone: %.200s", err);
        return -1;
    }
    sc->name = strdup(d->name);
    sc->cron = strdup(d->cron);
    sc->queue = strdup(d->queue);
    sc->payload = strdup(d->payload);
    sc->priority = d->priority;
    sc->missed_skip = d->missed_skip;
    sc->overlap_skip = d->overlap_skip;
    if (sc->name == NULL || sc->cron == NULL || sc->queue == NULL || sc->payload == NULL) {
        conf_clear(sc);
        snprintf(why, len, "out of memory");
        return -1;
    }
    return 0;
}

/* pstate_start: before the loop runs: p's paused flag, its catch-up (unless paused) and the
 * tick it counts from. Returns a jobq_err. */
static int
pstate_start(server *s, periodic_state *p, int64_t now)
{
    bool paused = false;
    int64_t last_job;
    int err = store_sstate_get(s->st, p->sc->name, &paused, &last_job);
    if (err != JOBQ_OK && err != JOBQ_ENOENT) {
        return err;
    }
    p->paused = paused;
    queue_conf defaults;
    bool fired;
    err = store_begin(s->st);
    if (err == JOBQ_OK && !paused && !store_shared(s->st)) {
        /* Several nodes (a shared store): the catch-up is the leader's (periodic_lead). */
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
    if (err == JOBQ_OK) {
        p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
    }
    return err;
}

int
periodic_init(server *s)
{
    config *cfg = s->cfg;
    uv_timer_init(s->loop, &s->periodic_timer);
    s->periodic_timer.data = s;
    int64_t now = jobq__now_ms();
    for (size_t i = 0; i < cfg->nschedules; i++) {
        periodic_state *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            return JOBQ_ENOMEM;
        }
        p->sc = &cfg->schedules[i];
        link_state(s, p);
        int err = pstate_start(s, p, now);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    sched_def *defs = NULL;
    size_t n = 0;
    int err = store_sdef_list(s->st, &defs, &n);
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        if (find(s, defs[i].name) != NULL) {
            log_warn("schedule_shadowed",
                     "schedule=%s reason=\"a [schedule.%s] section of the config has its name: "
                     "the config's runs, this one is kept in the database\"",
                     defs[i].name, defs[i].name);
            continue;
        }
        periodic_state *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            err = JOBQ_ENOMEM;
            break;
        }
        char why[300];
        if (conf_from_def(&defs[i], &p->own, why, sizeof(why)) != 0) {
            log_error("schedule_unusable", "schedule=%s reason=\"%s\"", defs[i].name, why);
            free(p);
            continue;
        }
        p->sc = &p->own;
        p->runtime = true;
        p->created_at_ms = defs[i].created_at_ms;
        p->updated_at_ms = defs[i].updated_at_ms;
        link_state(s, p);
        err = pstate_start(s, p, now);
    }
    for (size_t i = 0; i < n; i++) {
        sched_def_clear(&defs[i]);
    }
    free(defs);
    return err;
}

/* ---- a node elected leader: the catch-up, from the ticks as stored ---- */

/* One schedule of the catch-up: the state (firing meanwhile, so kept alive), what the
 * writer's thread needs of it, copied on the loop, and what it finds. */
typedef struct lead_item {
    periodic_state *p;
    const schedule_conf *sc; /* p's, unchanged while it is firing */
    queue_conf qc;           /* its queue's settings (or the defaults) */
    bool paused;
    int64_t last_ms;
    bool ticked;
} lead_item;

typedef struct lead_op {
    wop op;
    server *s;
    size_t n;
    lead_item *items;
} lead_op;

static int
exec_lead(store *st, wop *op, int64_t now_ms)
{
    lead_op *l = container_of(op, lead_op, op);
    for (size_t i = 0; i < l->n; i++) {
        lead_item *it = &l->items[i];
        bool fired;
        int err = JOBQ_OK;
        if (!it->paused) {
            err = periodic_recover(st, it->sc, &it->qc, now_ms, &fired);
        }
        if (err == JOBQ_OK) {
            err = periodic_base(st, it->sc, now_ms, &it->last_ms, &it->ticked);
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
    for (size_t i = 0; i < l->n; i++) {
        periodic_state *p = l->items[i].p;
        p->firing = false;
        if (p->removed) {
            pstate_free(p);
        } else if (op->err == JOBQ_OK) {
            p->last_ms = l->items[i].last_ms;
            p->ticked = l->items[i].ticked;
            p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
        } else {
            p->retry_ms = jobq__now_ms() + RETRY_MS;
        }
    }
    if (op->err != JOBQ_OK) {
        log_error("schedule_failed", "reason=\"%s\"", writer_last_error(&s->w));
    }
    free(l->items);
    free(l);
    if (!s->closing) {
        arm(s);
    }
}

void
periodic_lead(server *s)
{
    if (s->periodics == NULL || s->closing) {
        return;
    }
    size_t n = 0;
    for (periodic_state *p = s->periodics; p != NULL; p = p->next, n++) {
        if (p->firing) {
            return; /* a fire in flight: the tick as stored is read again after it */
        }
    }
    lead_op *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->items = calloc(n, sizeof(*l->items))) == NULL) {
        free(l);
        return;
    }
    l->s = s;
    l->n = n;
    size_t i = 0;
    for (periodic_state *p = s->periodics; p != NULL; p = p->next, i++) {
        queue_conf defaults;
        l->items[i].p = p;
        l->items[i].sc = p->sc;
        l->items[i].qc = *queue_of(s, p->sc, &defaults);
        l->items[i].paused = p->paused;
        p->firing = true; /* arm leaves them alone until the catch-up is done */
    }
    l->op.exec = exec_lead;
    l->op.done = done_lead;
    l->op.writes = true;
    writer_push(&s->w, &l->op);
}

/* periodic_start: the first arming, once the writer exists. */
void
periodic_start(server *s)
{
    arm(s);
}

/* schedule_json: one schedule as the schedules op and the schedule_* replies show it. */
static json_t *
schedule_json(const periodic_state *p)
{
    const schedule_conf *sc = p->sc;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(sc->name));
    json_object_set_new(o, "cron", json_string(sc->cron));
    json_object_set_new(o, "timezone", json_string(tz_name(sc->zone)));
    json_object_set_new(o, "queue", json_string(sc->queue));
    json_object_set_new(o, "missed", json_string(sc->missed_skip ? "skip" : "run_once"));
    json_object_set_new(o, "last_tick", p->ticked ? json_integer(p->last_ms) : json_null());
    json_object_set_new(o, "next",
                        p->next_ms >= 0 && !p->paused ? json_integer(p->next_ms) : json_null());
    json_object_set_new(o, "source", json_string(p->runtime ? "runtime" : "config"));
    json_object_set_new(o, "paused", json_boolean(p->paused));
    json_object_set_new(o, "overlap", json_string(sc->overlap_skip ? "skip" : "allow"));
    json_object_set_new(o, "priority", json_integer(sc->priority));
    json_t *payload = json_loads(sc->payload, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "payload", payload != NULL ? payload : json_null());
    if (p->runtime) {
        json_object_set_new(o, "created_at", json_integer(p->created_at_ms));
        json_object_set_new(o, "updated_at", json_integer(p->updated_at_ms));
    }
    return o;
}

json_t *
periodic_json(server *s)
{
    json_t *a = json_array();
    for (const periodic_state *p = s->periodics; p != NULL; p = p->next) {
        json_array_append_new(a, schedule_json(p));
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
    while (s->periodics != NULL) {
        periodic_state *p = s->periodics;
        s->periodics = p->next;
        pstate_free(p);
    }
    s->nperiodics = 0;
}

/* ---- reload (SIGHUP) ---- */

/* link_config_state: p (a config schedule) into the list after the other config ones. */
static void
link_config_state(server *s, periodic_state *p)
{
    periodic_state **pp = &s->periodics;
    while (*pp != NULL && !(*pp)->runtime) {
        pp = &(*pp)->next;
    }
    p->next = *pp;
    *pp = p;
    s->nperiodics++;
}

/* A schedule new to the config: where its ticks count from is read on the writer's thread. */
typedef struct base_op {
    wop op;
    server *s;
    periodic_state *p; /* not linked yet */
    char name[65];
    bool paused;
} base_op;

static int
exec_base(store *st, wop *op, int64_t now_ms)
{
    base_op *b = container_of(op, base_op, op);
    int64_t last_job;
    int err = store_sstate_get(st, b->name, &b->paused, &last_job);
    if (err == JOBQ_ENOENT) {
        b->paused = false;
        err = JOBQ_OK;
    }
    if (err == JOBQ_OK) {
        err = periodic_base(st, b->p->sc, now_ms, &b->p->last_ms, &b->p->ticked);
    }
    return err;
}

static void
done_base(wop *op)
{
    base_op *b = container_of(op, base_op, op);
    server *s = b->s;
    periodic_state *p = b->p;
    if (op->err != JOBQ_OK || find(s, b->name) != NULL) {
        if (op->err != JOBQ_OK) {
            log_error("schedule_failed", "schedule=%s err=%s reason=\"%s\"", b->name,
                      jobq__err_code(op->err), writer_last_error(&s->w));
        }
        pstate_free(p);
    } else {
        p->paused = b->paused;
        p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
        link_config_state(s, p);
        log_info("schedule_added", "schedule=%s cron=\"%s\" queue=%s source=config", b->name,
                 p->sc->cron, p->sc->queue);
        arm(s);
    }
    free(b);
}

void
periodic_reload(server *s)
{
    const config *cfg = s->cfg;
    /* Config schedules gone from the file stop. */
    for (periodic_state *p = s->periodics, *next; p != NULL; p = next) {
        next = p->next;
        bool kept = false;
        for (size_t i = 0; !p->runtime && i < cfg->nschedules; i++) {
            kept = kept || strcmp(cfg->schedules[i].name, p->sc->name) == 0;
        }
        if (!p->runtime && !kept) {
            log_info("schedule_removed", "schedule=%s source=config", p->sc->name);
            unlink_state(s, p);
        }
    }
    for (size_t i = 0; i < cfg->nschedules; i++) {
        const schedule_conf *sc = &cfg->schedules[i];
        periodic_state *old = find(s, sc->name);
        periodic_state *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            log_error("schedule_failed", "schedule=%s reason=\"out of memory\"", sc->name);
            continue;
        }
        p->sc = sc;
        if (old != NULL) {
            /* The same name's ticks go on from its last one (a runtime schedule of that name
             * gives way: the config's wins, and it stays stored). */
            p->last_ms = old->last_ms;
            p->ticked = old->ticked;
            p->paused = old->paused;
            p->retry_ms = old->retry_ms;
            p->next_ms = cron_next(&sc->expr, sc->zone, p->last_ms);
            if (old->runtime) {
                log_warn("schedule_shadowed",
                         "schedule=%s reason=\"a [schedule.%s] section of the config has its "
                         "name: the config's runs, this one is kept in the database\"",
                         sc->name, sc->name);
            }
            unlink_state(s, old);
            link_config_state(s, p);
            continue;
        }
        base_op *b = calloc(1, sizeof(*b));
        if (b == NULL) {
            free(p);
            log_error("schedule_failed", "schedule=%s reason=\"out of memory\"", sc->name);
            continue;
        }
        b->s = s;
        b->p = p;
        snprintf(b->name, sizeof(b->name), "%s", sc->name);
        b->op.exec = exec_base;
        b->op.done = done_base;
        b->op.writes = true; /* it may record when jobqd first saw the schedule */
        writer_push(&s->w, &b->op);
    }
    arm(s);
}

/* ---- the schedule_* ops ---- */

/* One schedule_* op in flight: its store operation and what its two halves hand over. */
typedef struct sched_op {
    wop op;
    call *c;
    sched_def def;      /* add, update: the schedule as it will be (owned strings) */
    schedule_conf conf; /* add, update: built on the writer's thread (owned) */
    bool restart_ticks; /* update of cron or timezone: its ticks count from now */
    int64_t base_ms;    /* add, update, resume: the tick it counts from */
    bool ticked;        /* ... and whether that is a tick */
    char why[300];      /* the writer half's refusal (err JOBQ_EINVAL) */
    job_spec spec;      /* trigger */
    char key[160];
    char *queue, *payload; /* trigger: owned copies */
    int64_t id;
    bool dup;
    int state;
    int64_t now_ms; /* the batch's clock */
} sched_op;

static void
sched_op_free(sched_op *o)
{
    sched_def_clear(&o->def);
    conf_clear(&o->conf);
    free(o->queue);
    free(o->payload);
    free(o);
}

static void
sched_reply(call *c, const periodic_state *p)
{
    json_t *o = ok_object();
    json_object_set_new(o, "schedule", schedule_json(p));
    send_json(c, o);
}

static int
exec_sched(store *st, wop *op, int64_t now_ms)
{
    sched_op *o = container_of(op, sched_op, op);
    const request *r = &o->c->req;
    o->now_ms = now_ms;
    int err = JOBQ_OK;
    switch (r->op) {
    case REQ_SCHEDULE_ADD:
    case REQ_SCHEDULE_UPDATE:
        if (conf_from_def(&o->def, &o->conf, o->why, sizeof(o->why)) != 0) {
            return JOBQ_EINVAL;
        }
        err = store_sdef_put(st, &o->def, now_ms);
        if (err == JOBQ_OK && r->op == REQ_SCHEDULE_ADD) {
            err = store_sstate_set_paused(st, r->sched_name, false);
        }
        if (err == JOBQ_OK && o->restart_ticks) {
            err = store_schedule_set(st, r->sched_name, now_ms);
        }
        if (err == JOBQ_OK) {
            err = periodic_base(st, &o->conf, now_ms, &o->base_ms, &o->ticked);
        }
        return err;
    case REQ_SCHEDULE_PAUSE:
        return store_sstate_set_paused(st, r->sched_name, true);
    case REQ_SCHEDULE_RESUME:
        /* The ticks that passed while it was paused are skipped: it counts from now. */
        err = store_sstate_set_paused(st, r->sched_name, false);
        if (err == JOBQ_OK) {
            err = store_schedule_set(st, r->sched_name, now_ms);
        }
        return err;
    case REQ_SCHEDULE_TRIGGER:
        return lifecycle_schedule_trigger(st, r->sched_name, &o->spec, now_ms, &o->id, &o->dup,
                                          &o->state);
    case REQ_SCHEDULE_DELETE:
        return store_sdef_delete(st, r->sched_name);
    default:
        return JOBQ_EINTERNAL;
    }
}

static void
done_sched(wop *op)
{
    sched_op *o = container_of(op, sched_op, op);
    call *c = o->c;
    server *s = c->srv;
    const request *r = &c->req;
    if (op->err != JOBQ_OK) {
        if (op->err == JOBQ_EINVAL && o->why[0] != '\0') {
            reply_error(c, "invalid_argument", o->why);
        } else if (op->err == JOBQ_ENOENT) {
            reply_error(c, "not_found", "no such schedule");
        } else {
            reply_err(c, op->err, writer_last_error(&s->w));
        }
        sched_op_free(o);
        return;
    }
    periodic_state *p = find(s, r->sched_name);
    switch (r->op) {
    case REQ_SCHEDULE_ADD:
    case REQ_SCHEDULE_UPDATE: {
        periodic_state *np = calloc(1, sizeof(*np));
        if (np == NULL) {
            reply_error(c, "internal", "out of memory (the schedule is stored: restart jobqd)");
            break;
        }
        np->own = o->conf;
        memset(&o->conf, 0, sizeof(o->conf));
        np->sc = &np->own;
        np->runtime = true;
        np->last_ms = o->base_ms;
        np->ticked = o->ticked;
        np->next_ms = cron_next(&np->sc->expr, np->sc->zone, np->last_ms);
        np->created_at_ms = o->now_ms;
        np->updated_at_ms = o->now_ms;
        if (p != NULL && !p->runtime) {
            /* A reload brought a config schedule of this name meanwhile: it wins. */
            pstate_free(np);
            reply_error(c, "invalid_state",
                        "a schedule of the config file has this name now: the config's wins "
                        "(this one is kept in the database)");
            break;
        }
        if (p != NULL) {
            np->paused = p->paused;
            np->created_at_ms = p->created_at_ms;
            unlink_state(s, p);
        }
        link_state(s, np);
        log_info(r->op == REQ_SCHEDULE_ADD ? "schedule_added" : "schedule_updated",
                 "schedule=%s cron=\"%s\" queue=%s", np->sc->name, np->sc->cron, np->sc->queue);
        sched_reply(c, np);
        arm(s);
        break;
    }
    case REQ_SCHEDULE_PAUSE:
    case REQ_SCHEDULE_RESUME:
        if (p == NULL) {
            reply_error(c, "not_found", "no such schedule");
            break;
        }
        p->paused = r->op == REQ_SCHEDULE_PAUSE;
        if (!p->paused) {
            p->last_ms = o->now_ms;
            p->ticked = true;
            p->next_ms = cron_next(&p->sc->expr, p->sc->zone, p->last_ms);
            p->retry_ms = 0;
        }
        log_info(p->paused ? "schedule_paused" : "schedule_resumed", "schedule=%s", p->sc->name);
        sched_reply(c, p);
        arm(s);
        break;
    case REQ_SCHEDULE_TRIGGER: {
        if (!o->dup) {
            count_new_job(s, o->spec.queue, o->state, o->spec.run_at_ms);
        }
        log_info("schedule_triggered", "schedule=%s id=%lld", r->sched_name, (long long)o->id);
        json_t *j = ok_object();
        json_object_set_new(j, "id", json_integer(o->id));
        json_object_set_new(j, "state", json_string(jobq__state_name(o->state)));
        send_json(c, j);
        break;
    }
    case REQ_SCHEDULE_DELETE: {
        if (p != NULL && p->runtime) {
            unlink_state(s, p);
        }
        log_info("schedule_deleted", "schedule=%s", r->sched_name);
        json_t *j = ok_object();
        json_object_set_new(j, "name", json_string(r->sched_name));
        json_object_set_new(j, "deleted", json_true());
        send_json(c, j);
        arm(s);
        break;
    }
    default:
        reply_error(c, "internal", "not a schedule op");
        break;
    }
    sched_op_free(o);
}

/* sched_push: c's store operation, with o. */
static void
sched_push(call *c, sched_op *o)
{
    o->c = c;
    o->op.exec = exec_sched;
    o->op.done = done_sched;
    o->op.writes = true;
    writer_push(&c->srv->w, &o->op);
}

/* sched_def_fill: d (owned copies) from c's request over base (NULL: the defaults). Returns
 * false after replying. */
static bool
sched_def_fill(call *c, const schedule_conf *base, sched_def *d)
{
    const request *r = &c->req;
    server *s = c->srv;
    const char *queue = r->queue != NULL ? r->queue : base->queue;
    if (config_queue(s->cfg, queue) == NULL && !s->cfg->allow_unknown_queues &&
        queue_find(s, queue) == NULL) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "queue \"%s\" is not configured: add a [queue.%s] section or set "
                 "allow_unknown_queues = true",
                 queue, queue);
        reply_error(c, "unknown_queue", msg);
        return false;
    }
    char *payload = NULL;
    if (r->sched_payload != NULL) {
        payload = json_dumps(r->sched_payload, JSON_COMPACT | JSON_ENCODE_ANY);
    } else {
        payload = strdup(base != NULL ? base->payload : "null");
    }
    if (payload != NULL && strlen(payload) > s->cfg->max_payload) {
        free(payload);
        reply_error(c, "payload_too_large", "the schedule's payload is over max_payload");
        return false;
    }
    *d = (sched_def){
        .name = strdup(r->sched_name),
        .cron = strdup(r->sched_cron != NULL ? r->sched_cron : base->cron),
        .timezone = strdup(r->sched_timezone != NULL ? r->sched_timezone
                           : base != NULL            ? tz_name(base->zone)
                                                     : "UTC"),
        .queue = strdup(queue),
        .payload = payload,
        .priority = r->sched_has_priority ? r->sched_priority
                    : base != NULL        ? base->priority
                                          : 0,
        .missed_skip =
            r->sched_missed >= 0 ? r->sched_missed == 1 : base != NULL && base->missed_skip,
        .overlap_skip =
            r->sched_overlap >= 0 ? r->sched_overlap == 1 : base != NULL && base->overlap_skip,
    };
    if (d->name == NULL || d->cron == NULL || d->timezone == NULL || d->queue == NULL ||
        d->payload == NULL) {
        sched_def_clear(d);
        reply_error(c, "internal", "out of memory");
        return false;
    }
    return true;
}

/* sched_op_alloc: a zeroed sched_op for c, or NULL after replying out of memory. */
static sched_op *
sched_op_alloc(call *c)
{
    sched_op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        reply_error(c, "internal", "out of memory");
    }
    return o;
}

/* sched_define: the op of add or update, its definition read from c's request over base (NULL:
 * the defaults). Returns NULL after replying why not. */
static sched_op *
sched_define(call *c, const schedule_conf *base)
{
    sched_op *o = sched_op_alloc(c);
    if (o != NULL && !sched_def_fill(c, base, &o->def)) {
        free(o);
        return NULL;
    }
    return o;
}

/* sched_on_leader: true when this node may change schedules; else replies invalid_state.
 * Several nodes on PostgreSQL: the leader alone fires ticks from the schedules it holds in
 * memory, so a schedule is added, changed, paused or deleted on the leader (a trigger, one
 * job now, may go to any node). */
static bool
sched_on_leader(call *c)
{
    if (c->srv->leads) {
        return true;
    }
    const char *leader = c->srv->leader_name;
    char msg[400];
    snprintf(msg, sizeof(msg),
             "this node does not lead: schedules are changed on the leader%s%s%s, which fires "
             "them (jobq nodes shows it); send the request there",
             leader[0] != '\0' ? " (node " : "", leader, leader[0] != '\0' ? ")" : "");
    reply_error(c, "invalid_state", msg);
    return false;
}

/* sched_target: the schedule c names, or NULL after replying not_found (or invalid_state for
 * a config schedule when runtime_only). */
static periodic_state *
sched_target(call *c, bool runtime_only)
{
    periodic_state *p = find(c->srv, c->req.sched_name);
    if (p == NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no schedule \"%s\"", c->req.sched_name);
        reply_error(c, "not_found", msg);
        return NULL;
    }
    if (runtime_only && !p->runtime) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "schedule \"%s\" comes from the config file ([schedule.%s]): change it there "
                 "and reload jobqd (systemctl reload jobqd, or SIGHUP)",
                 p->sc->name, p->sc->name);
        reply_error(c, "invalid_state", msg);
        return NULL;
    }
    return p;
}

void
op_schedule_add(call *c)
{
    if (!sched_on_leader(c)) {
        return;
    }
    periodic_state *p = find(c->srv, c->req.sched_name);
    if (p != NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "schedule \"%s\" exists already%s", c->req.sched_name,
                 p->runtime ? ": change it with schedule_update"
                            : " in the config file (a config schedule wins on a name)");
        reply_error(c, "invalid_state", msg);
        return;
    }
    sched_op *o = sched_define(c, NULL);
    if (o == NULL) {
        return;
    }
    sched_push(c, o);
}

void
op_schedule_update(call *c)
{
    if (!sched_on_leader(c)) {
        return;
    }
    periodic_state *p = sched_target(c, true);
    if (p == NULL) {
        return;
    }
    sched_op *o = sched_define(c, p->sc);
    if (o == NULL) {
        return;
    }
    o->restart_ticks =
        strcmp(o->def.cron, p->sc->cron) != 0 || strcmp(o->def.timezone, tz_name(p->sc->zone)) != 0;
    sched_push(c, o);
}

/* sched_simple: pause, resume and delete: the schedule must exist (delete: a runtime one). */
static void
sched_simple(call *c, bool runtime_only)
{
    if (!sched_on_leader(c) || sched_target(c, runtime_only) == NULL) {
        return;
    }
    sched_op *o = sched_op_alloc(c);
    if (o == NULL) {
        return;
    }
    sched_push(c, o);
}

void
op_schedule_pause(call *c)
{
    sched_simple(c, false);
}

void
op_schedule_resume(call *c)
{
    sched_simple(c, false);
}

void
op_schedule_delete(call *c)
{
    sched_simple(c, true);
}

/* op_schedule_trigger: one job of the schedule now, besides its ticks (whatever its overlap
 * policy and even while paused: an operator asked for it), keyed by the schedule and the
 * time so that a retried request within the same millisecond adds nothing. */
void
op_schedule_trigger(call *c)
{
    periodic_state *p = sched_target(c, false);
    if (p == NULL) {
        return;
    }
    sched_op *o = sched_op_alloc(c);
    if (o == NULL) {
        return;
    }
    queue_conf defaults;
    int64_t now = jobq__now_ms();
    periodic_spec(p->sc, queue_of(c->srv, p->sc, &defaults), now, o->key, sizeof(o->key), &o->spec);
    snprintf(o->key, sizeof(o->key), "schedule:%s:trigger:%lld", p->sc->name, (long long)now);
    o->queue = strdup(p->sc->queue);
    o->payload = strdup(p->sc->payload);
    if (o->queue == NULL || o->payload == NULL) {
        sched_op_free(o);
        reply_error(c, "internal", "out of memory");
        return;
    }
    o->spec.queue = o->queue;
    o->spec.payload = o->payload;
    sched_push(c, o);
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
