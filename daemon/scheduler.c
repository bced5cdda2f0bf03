/* scheduler.c: the scheduler: one uv_timer armed at the earliest run_at (never a timer per job,
 * never polling while idle) and the claims that feed the runners. */
#include "scheduler.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "codec.h"
#include "lifecycle.h"
#include "log.h"
#include "runner.h"
#include "shared_limits.h"
#include "store_cluster.h"
#include "webhook.h"

#define PROMOTE_BATCH 1000
#define CLAIM_BATCH 64
#define EXPIRE_CLAIM_BATCH 256 /* expired jobs a claim cancels per store call */

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
    size_t want; /* jobs asked for (max, or fewer when the shared rate allows fewer) */
    claim_deliver deliver;
    void *arg;
    int64_t rate_interval_us;  /* the rate kept in the database (0: none, or the node's own) */
    int64_t rate_tolerance_us; /* its burst */
    bool rate_held;            /* the shared rate allowed fewer than max, and all were taken */
    int64_t rate_wait_ms;      /* then: until one more may start */
    int64_t expire_from_ms;    /* from then on a job may have expired: cancel those first */
    key_limits kl;             /* the queue's key_concurrency and key_rate, copied for the writer */
    key_claim_info info;       /* what the claim passed over for them */
} claim_op;

static void timer_cb(uv_timer_t *t);
static void queue_timer_cb(uv_timer_t *t);

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
            qstate *q = queue_add(s, p->items[i].queue);
            if (q != NULL) {
                queue_count_move(q, p->items[i].old_state, JOBQ_READY);
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
    if (s->promoting || s->closing || !s->leads) {
        return; /* several nodes: the leader promotes (sched_maintain_now when elected) */
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
    p->op.relaxed = true; /* promotion is redone after a power cut */
    s->promoting = true;
    /* Whatever becomes due from now on is noted again by sched_note_due. */
    s->next_due_ms = INT64_MAX;
    writer_push(&s->w, &p->op);
}

static int
exec_claim(store *st, wop *op, int64_t now_ms)
{
    claim_op *c = container_of(op, claim_op, op);
    store_set_claim_limit(st, c->q->conf->global_concurrency);
    size_t n = EXPIRE_CLAIM_BATCH; /* a job past its deadline to start is cancelled first */
    while (now_ms >= c->expire_from_ms && n == EXPIRE_CLAIM_BATCH) {
        int err = lifecycle_expire(st, c->q->name, now_ms, EXPIRE_CLAIM_BATCH, &n);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    c->want = c->max;
    int64_t granted = (int64_t)c->max;
    if (c->rate_interval_us > 0) {
        int err = store_rate_take(st, c->q->name, (int64_t)c->max, c->rate_interval_us,
                                  c->rate_tolerance_us, &granted, &c->rate_wait_ms);
        if (err != JOBQ_OK) {
            return err;
        }
        if (granted < 0) { /* another node's claim of the queue holds the row: soon again */
            granted = 0;
            c->rate_wait_ms = RATE_BUSY_RETRY_MS;
        }
        c->want = (size_t)granted;
        c->rate_held = c->want < c->max;
        if (c->want == 0) {
            c->n = 0;
            return JOBQ_OK;
        }
    }
    int err = store_claim_keys(st, c->q->name, now_ms, c->want, &c->kl, c->rows, &c->n, &c->info);
    if (err == JOBQ_OK && c->rate_interval_us > 0 && c->n < c->want) {
        /* Fewer were ready than the rate allowed: the rest of the allowance stays free. */
        c->rate_held = false;
        err = store_rate_return(st, c->q->name, (int64_t)(c->want - c->n), c->rate_interval_us);
    }
    return err;
}

/* key_timer_cb: a key held by key_rate may start again. */
static void
key_timer_cb(uv_timer_t *t)
{
    qstate *q = t->data;
    q->keys_blocked = false;
    sched_dispatch(q->srv, q);
}

/* keys_passed_over: the claim of q took fewer jobs than asked because keys were at their
 * key_concurrency or held by key_rate: q claims nothing more until a job of it becomes ready
 * or stops running (queue_count_move), or until the earliest held key is due (key_timer). */
static void
keys_passed_over(qstate *q, const key_claim_info *info)
{
    q->keys_blocked = true;
    if (info->wake_ms > 0) {
        int64_t delay = info->wake_ms - jobq__now_ms();
        uv_timer_start(&q->key_timer, key_timer_cb, delay > 0 ? (uint64_t)delay : 0, 0);
    }
}

void
sched_key_limits(const queue_conf *qc, key_limits *kl)
{
    memset(kl, 0, sizeof(*kl));
    kl->cap = qc->key_concurrency;
    if (qc->key_rate_per_s > 0) {
        /* The queue's rate (rate.c) holds a quarter of a second's worth, at least one: so
         * may a key's, as the tolerance of its spacing (GCRA). */
        double interval = 1000.0 / qc->key_rate_per_s;
        double burst = qc->key_rate_per_s / 4 > 1 ? qc->key_rate_per_s / 4 : 1;
        kl->interval_ms = interval < 1 ? 1 : (int64_t)(interval + 0.5);
        kl->tolerance_ms = (int64_t)((burst - 1) * interval);
    }
}

/* ---- claims whose commit's outcome is unknown ----
 * On a shared store a claim whose COMMIT lost its connection (a server stopped or frozen) may
 * have committed: its jobs would then run in the database, owned by this node, with nothing
 * here to run them or end their lease. Each is handed back (store_requeue, fenced by this node
 * and the attempt: nothing when the claim did not commit). Until that is recorded the queue
 * claims nothing, so no later claim takes one of them at the attempt the fence names; a hand
 * back that meets the store down is tried again at the next dispatch. */
typedef struct unclaim_op {
    wop op;
    server *s;
    qstate *q;
    bool pending; /* in the writer's queue */
    size_t n;
    struct {
        int64_t id;
        attempt_rec rec; /* the fence: this node, this attempt */
    } jobs[];
} unclaim_op;

#define UNCLAIM_ERROR                                                                              \
    "claimed in a commit whose outcome is unknown (the store's connection was lost)"

static int
exec_unclaim(store *st, wop *op, int64_t now_ms)
{
    unclaim_op *u = container_of(op, unclaim_op, op);
    for (size_t i = 0; i < u->n; i++) {
        int err = store_requeue(st, u->jobs[i].id, now_ms, UNCLAIM_ERROR, &u->jobs[i].rec);
        if (err != JOBQ_OK && err != JOBQ_ESTATE) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_unclaim(wop *op)
{
    unclaim_op *u = container_of(op, unclaim_op, op);
    u->pending = false;
    if (op->err != JOBQ_OK) {
        sched_note_due(u->s, jobq__now_ms() + 1000); /* sched_dispatch pushes it again */
        return;
    }
    log_info("claim_returned", "queue=%s jobs=%zu reason=\"%s\"", u->q->name, u->n, UNCLAIM_ERROR);
    qstate *q = u->q;
    q->unclaim = NULL;
    free(u);
    sched_dispatch(q->srv, q);
}

static void
unclaim_push(unclaim_op *u)
{
    u->pending = true;
    u->op.exec = exec_unclaim;
    u->op.done = done_unclaim;
    u->op.writes = true;
    u->op.relaxed = true; /* undone by a power cut, the claim is undone with it */
    writer_push(&u->s->w, &u->op);
}

/* unclaim_start: the rows of a failed claim (it may have committed) are handed back. */
static void
unclaim_start(server *s, qstate *q, const job_row *rows, size_t n)
{
    unclaim_op *u = q->unclaim == NULL ? calloc(1, sizeof(*u) + n * sizeof(u->jobs[0])) : NULL;
    if (u == NULL) { /* (one claim of a queue at a time, and none while a hand back waits) */
        log_error("claim_return_failed", "queue=%s jobs=%zu err=out_of_memory", q->name, n);
        return;
    }
    u->s = s;
    u->q = q;
    for (size_t i = 0; i < n; i++) {
        u->jobs[i].id = rows[i].id;
        u->jobs[i].rec = (attempt_rec){
            .attempt = rows[i].attempt, .started_at_ms = rows[i].started_at_ms, .kind = "shutdown"};
    }
    u->n = n;
    q->unclaim = u;
    unclaim_push(u);
}

/* unclaim_busy: whether q must not claim now (a hand back is unresolved; pushed again if
 * the store failed it). */
static bool
unclaim_busy(qstate *q)
{
    if (q->unclaim == NULL) {
        return false;
    }
    if (!q->unclaim->pending) {
        unclaim_push(q->unclaim);
    }
    return true;
}

/* done_claim: the claimed rows are running now: count them, then hand them over. */
static void
done_claim(wop *op)
{
    claim_op *c = container_of(op, claim_op, op);
    server *s = c->s;
    qstate *q = c->q;
    q->claiming = 0;
    if (op->err != JOBQ_OK) {
        /* The store failed (e.g. disk full): the promotion a second from now dispatches
         * every queue again, so ready jobs start once the store takes writes again. */
        log_error("claim_failed", "queue=%s err=%s", q->name, jobq__err_code(op->err));
        if (c->n > 0 && store_shared(s->st)) {
            unclaim_start(s, q, c->rows, c->n);
        }
        c->n = 0;
        sched_note_due(s, jobq__now_ms() + 1000);
    }
    if (c->rate_interval_us == 0) {
        rate_take(&q->rate, (int)c->n);
    }
    for (size_t i = 0; i < c->n; i++) {
        queue_count_move(q, JOBQ_READY, JOBQ_RUNNING);
        breaker_started(&q->br);
        int64_t due = c->rows[i].run_at_ms > c->rows[i].created_at_ms ? c->rows[i].run_at_ms
                                                                      : c->rows[i].created_at_ms;
        int64_t waited = c->rows[i].started_at_ms - due;
        hist_observe(&q->wait_hist, HIST_SECONDS, waited > 0 ? waited / 1000.0 : 0);
    }
    bool passed_over = op->err == JOBQ_OK && c->n < c->want && c->info.blocked;
    if (op->err == JOBQ_OK && c->rate_held) {
        /* The queue's rate over all nodes: no claim until one more start fits. */
        int64_t wait = c->rate_wait_ms > 0 ? c->rate_wait_ms : 1;
        q->rate_wait_until_ms = jobq__now_ms() + wait;
        uv_timer_start(&q->rate_timer, queue_timer_cb, (uint64_t)wait, 0);
    }
    if (passed_over) {
        keys_passed_over(q, &c->info);
    } else if (op->err == JOBQ_OK && c->n < c->want && !c->rate_held && q->counts[JOBQ_READY] > 0 &&
               q->conf->global_concurrency == 0) {
        /* The counts said more were ready than the store had: trust the store. (With several
         * nodes the counts are an estimate: another node took them, or global_concurrency
         * held them back; the heartbeat reads the backlog again.) */
        if (store_shared(s->st)) {
            log_debug("count_resync", "queue=%s ready_counted=%lld", q->name,
                      (long long)q->counts[JOBQ_READY]);
        } else {
            log_warn("count_resync", "queue=%s ready_counted=%lld", q->name,
                     (long long)q->counts[JOBQ_READY]);
        }
        q->counts[JOBQ_READY] = 0;
    }
    c->deliver(s, q, c->arg, c->rows, c->n, op->err);
    for (size_t i = 0; i < c->max; i++) {
        job_row_clear(&c->rows[i]); /* what deliver did not take */
    }
    free(c->rows);
    free(c);
}

bool
sched_claim(server *s, qstate *q, size_t max, claim_deliver deliver, void *arg)
{
    if (unclaim_busy(q)) {
        return false;
    }
    claim_op *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->rows = calloc(max, sizeof(*c->rows))) == NULL) {
        free(c);
        return false;
    }
    c->s = s;
    c->q = q;
    c->max = max;
    c->deliver = deliver;
    c->arg = arg;
    /* On PostgreSQL another jobqd may have admitted a job with a deadline this one never
     * noted: its claims always look (one range of jobs_expiring, empty when none expire). */
    c->expire_from_ms = s->cfg->store == STORE_POSTGRES ? INT64_MIN : s->next_expiry_ms;
    sched_key_limits(q->conf, &c->kl);
    if (shared_rate_on(s, q)) {
        rate_spacing(q->conf->rate_per_s, &c->rate_interval_us, &c->rate_tolerance_us);
    }
    c->op.exec = exec_claim;
    c->op.done = done_claim;
    c->op.writes = true;
    c->op.relaxed = true; /* a claim lost to a power cut leaves the job ready: it runs again */
    q->claiming = 1;
    writer_push(&s->w, &c->op);
    return true;
}

/* start_claimed: jobqd's own consumers take the claimed jobs. */
static void
start_claimed(server *s, qstate *q, void *arg, job_row *rows, size_t n, int err)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        if (q->conf->url != NULL) {
            webhook_start(s, q, &rows[i]); /* takes the row */
        } else {
            runner_start(s, q, &rows[i]);
        }
    }
    if (err == JOBQ_OK) {
        sched_dispatch(s, q);
    }
}

/* breaker_note: logs a transition of q's breaker since `before`. */
static void
breaker_note(qstate *q, breaker_state before)
{
    if (q->br.state == before) {
        return;
    }
    if (q->br.state == BREAKER_OPEN) {
        char why[96];
        breaker_describe(&q->br, why, sizeof(why));
        log_warn("breaker_open", "queue=%s reason=\"%s\" cooldown_ms=%lld", q->name, why,
                 (long long)q->br.rule.cooldown_ms);
    } else if (q->br.state == BREAKER_HALF_OPEN && q->br.remote) {
        log_info("breaker_half_open", "queue=%s probe=another_node", q->name);
    } else {
        log_info(q->br.state == BREAKER_HALF_OPEN ? "breaker_half_open" : "breaker_closed",
                 "queue=%s", q->name);
    }
    shared_breaker_note(q->srv, q, before);
}

/* queue_timer_cb: a queue's rate or breaker timer fired: the queue may start jobs again. */
static void
queue_timer_cb(uv_timer_t *t)
{
    qstate *q = t->data;
    sched_dispatch(q->srv, q);
}

int
sched_rate_permits(server *s, qstate *q, int64_t now_ms)
{
    if (now_ms < q->slow_until_ms) {
        /* Slowed down: the rate's timer serves as the queue's wake-up (a shorter one armed
         * already only dispatches early, and lands here again). */
        if (!uv_is_active((uv_handle_t *)&q->rate_timer)) {
            uv_timer_start(&q->rate_timer, queue_timer_cb, (uint64_t)(q->slow_until_ms - now_ms),
                           0);
        }
        return 0;
    }
    if (shared_rate_on(s, q)) {
        /* Kept in the database, taken by the claim (exec_claim), which says how long to wait
         * when it allowed fewer than asked. */
        if (now_ms >= q->rate_wait_until_ms) {
            return INT32_MAX;
        }
        if (!uv_is_active((uv_handle_t *)&q->rate_timer)) {
            uv_timer_start(&q->rate_timer, queue_timer_cb,
                           (uint64_t)(q->rate_wait_until_ms - now_ms), 0);
        }
        return 0;
    }
    int permits = rate_permits(&q->rate, now_ms);
    if (permits <= 0 && !uv_is_active((uv_handle_t *)&q->rate_timer)) {
        uv_timer_start(&q->rate_timer, queue_timer_cb, (uint64_t)rate_wait_ms(&q->rate), 0);
    }
    return permits;
}

void
sched_dispatch(server *s, qstate *q)
{
    if (queue_is_remote(q)) {
        if (s->remote_dispatch != NULL) {
            s->remote_dispatch(s, q);
        }
        return;
    }
    if ((q->conf->argv == NULL && q->conf->url == NULL) || q->paused || s->draining ||
        q->claiming || q->counts[JOBQ_READY] <= 0 || q->keys_blocked) {
        return;
    }
    int free_slots = q->conf->concurrency - q->running;
    if (free_slots <= 0) {
        return;
    }
    int64_t now = jobq__now_ms();
    breaker_state before = q->br.state;
    int permits = breaker_permits(&q->br, now);
    breaker_note(q, before);
    if (permits <= 0) {
        /* Open: until it half-opens; half-open as another node opened it: until this node
         * may probe (that node's verdict, notified, usually comes first). */
        int64_t at = q->br.state == BREAKER_OPEN ? q->br.until_ms : 0;
        if (at == 0 && q->br.remote) {
            at = q->br.hold_ms;
        }
        if (at > 0) {
            uv_timer_start(&q->breaker_timer, queue_timer_cb, (uint64_t)(at > now ? at - now : 0),
                           0);
        }
        return;
    }
    int rate = sched_rate_permits(s, q, now);
    if (rate <= 0) {
        return;
    }
    if (rate < permits) {
        permits = rate;
    }
    size_t max = (size_t)(permits < free_slots ? permits : free_slots);
    if (max > CLAIM_BATCH) {
        max = CLAIM_BATCH;
    }
    if ((int64_t)max > q->counts[JOBQ_READY]) {
        max = (size_t)q->counts[JOBQ_READY];
    }
    sched_claim(s, q, max, start_claimed, NULL);
}

void
sched_outcome(server *s, qstate *q, outcome_kind kind)
{
    breaker_state before = q->br.state;
    switch (outcome_kind_breaker(kind)) {
    case OUTCOME_BREAKER_OK:
        breaker_record(&q->br, true, jobq__now_ms());
        break;
    case OUTCOME_BREAKER_FAIL:
        queue_total(q, TOTAL_FAILED, 1);
        breaker_record(&q->br, false, jobq__now_ms());
        break;
    case OUTCOME_BREAKER_DEAD:
        queue_total(q, TOTAL_FAILED, 1);
        breaker_returned(&q->br); /* says nothing of the downstream */
        break;
    case OUTCOME_BREAKER_NONE:
        breaker_returned(&q->br); /* cancelled, shutdown: says nothing of the downstream */
        break;
    }
    breaker_note(q, before);
    (void)s;
}

void
sched_dispatch_all(server *s)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        sched_dispatch(s, s->queues[i]);
    }
}

/* ---- retention ---- */

#define SWEEP_BATCH 500

/* What one sweep does for one queue, filled on the work thread. */
typedef struct sweep_q {
    char name[65];
    int64_t retention_ms[JOBQ_NSTATES]; /* for succeeded, dead, cancelled */
    int64_t key_ttl_ms;
    size_t deleted[JOBQ_NSTATES];
    int64_t next_ms; /* when this queue next has something to delete; INT64_MAX: never */
    bool more;       /* a batch was full: sweep again at once */
} sweep_q;

typedef struct sweep_op {
    wop op;
    server *s;
    sweep_q *qs;
    size_t n;
} sweep_op;

static void sweep_timer_cb(uv_timer_t *t);

static void
sweep_arm(server *s, int64_t at_ms)
{
    if (s->closing || s->sweeping || at_ms >= s->sweep_at_ms) {
        return;
    }
    s->sweep_at_ms = at_ms;
    int64_t delay = at_ms - jobq__now_ms();
    uv_timer_start(&s->sweep_timer, sweep_timer_cb, delay > 0 ? (uint64_t)delay : 0, 0);
}

static int64_t
retention_of(const queue_conf *qc, int state)
{
    return state == JOBQ_SUCCEEDED ? qc->retention_succeeded_ms : qc->retention_dead_ms;
}

static int
exec_sweep(store *st, wop *op, int64_t now_ms)
{
    sweep_op *p = container_of(op, sweep_op, op);
    for (size_t i = 0; i < p->n; i++) {
        sweep_q *q = &p->qs[i];
        int err = lifecycle_sweep_queue(st, q->name, q->retention_ms, q->key_ttl_ms, now_ms,
                                        SWEEP_BATCH, q->deleted, &q->more, &q->next_ms);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    /* Groups whose last member this sweep (or an earlier one) deleted. */
    size_t groups = 0;
    return store_sweep_groups(st, now_ms, SWEEP_BATCH, &groups);
}

static void
done_sweep(wop *op)
{
    sweep_op *p = container_of(op, sweep_op, op);
    server *s = p->s;
    s->sweeping = false;
    int64_t next = INT64_MAX;
    if (op->err != JOBQ_OK) {
        log_error("sweep_failed", "err=%s", jobq__err_code(op->err));
        next = jobq__now_ms() + 60 * 1000;
    } else {
        size_t total = 0;
        for (size_t i = 0; i < p->n; i++) {
            sweep_q *sq = &p->qs[i];
            qstate *q = queue_find(s, sq->name);
            for (int st = 0; st < JOBQ_NSTATES; st++) {
                if (q != NULL) {
                    q->counts[st] -= (int64_t)sq->deleted[st];
                }
                total += sq->deleted[st];
            }
            int64_t at = sq->more ? jobq__now_ms() : sq->next_ms;
            if (at < next) {
                next = at;
            }
        }
        if (total > 0) {
            log_debug("retention_deleted", "jobs=%zu", total);
        }
    }
    free(p->qs);
    free(p);
    if (next != INT64_MAX) {
        sweep_arm(s, next);
    }
}

static void
sweep_timer_cb(uv_timer_t *t)
{
    server *s = t->data;
    s->sweep_at_ms = INT64_MAX;
    if (s->sweeping || s->closing || !s->leads) {
        return; /* several nodes: the leader sweeps (sched_maintain_now when elected) */
    }
    sweep_op *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->qs = calloc(s->nqueues ? s->nqueues : 1, sizeof(*p->qs))) == NULL) {
        free(p);
        sweep_arm(s, jobq__now_ms() + 1000);
        return;
    }
    p->s = s;
    p->n = s->nqueues;
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        sweep_q *sq = &p->qs[i];
        snprintf(sq->name, sizeof(sq->name), "%s", q->name);
        sq->retention_ms[JOBQ_SUCCEEDED] = q->conf->retention_succeeded_ms;
        sq->retention_ms[JOBQ_DEAD] = q->conf->retention_dead_ms;
        sq->retention_ms[JOBQ_CANCELLED] = q->conf->retention_dead_ms;
        sq->key_ttl_ms = q->conf->key_ttl_ms;
    }
    p->op.exec = exec_sweep;
    p->op.done = done_sweep;
    p->op.writes = true;
    p->op.relaxed = true; /* a sweep undone by a power cut is swept again */
    s->sweeping = true;
    writer_push(&s->w, &p->op);
}

void
sched_sweep_soon(server *s, qstate *q, int state)
{
    sweep_arm(s, jobq__now_ms() + retention_of(q->conf, state));
}

void
sched_maintain_now(server *s)
{
    /* A timer that fired while this node followed did nothing and left its mark in the past:
     * what it was set for is due now. */
    int64_t now = jobq__now_ms();
    if (s->sweep_at_ms <= now) {
        s->sweep_at_ms = INT64_MAX;
    }
    sweep_arm(s, now);
    if (s->next_due_ms <= now) {
        s->next_due_ms = INT64_MAX;
    }
    sched_note_due(s, now);
}

void
sched_sweep_init(server *s)
{
    uv_timer_init(s->loop, &s->sweep_timer);
    s->sweep_timer.data = s;
    s->sweep_at_ms = INT64_MAX;
    sweep_arm(s, jobq__now_ms());
}

void
sched_close(server *s)
{
    uv_timer_stop(&s->sched_timer);
    uv_close((uv_handle_t *)&s->sched_timer, NULL);
    uv_timer_stop(&s->sweep_timer);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
    for (size_t i = 0; i < s->nqueues; i++) {
        uv_close((uv_handle_t *)&s->queues[i]->breaker_timer, NULL);
        uv_close((uv_handle_t *)&s->queues[i]->rate_timer, NULL);
        uv_close((uv_handle_t *)&s->queues[i]->key_timer, NULL);
    }
}

static int
sched_part_init(server *s, char *err, size_t errlen)
{
    s->dispatch = sched_dispatch; /* for the modules it calls (shared_limits.c) */
    sched_sweep_init(s);
    if (sched_init(s) != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(s->st));
        return -1;
    }
    if (shared_breakers_load(s) != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the breakers other nodes opened: %s",
                 store_errmsg(s->st));
        return -1;
    }
    return 0;
}

const server_part sched_part = {.name = "scheduler",
                                .init = sched_part_init,
                                .start = sched_dispatch_all,
                                .close = sched_close};
