/* cluster.c: several jobqd nodes on one PostgreSQL database (issue 17). This node registers
 * (a new incarnation: the owner of the jobs it claims), heartbeats every poll_interval from a
 * writer op (never blocking the loop), holds or seeks the leader's lease (database time), and
 * re-reads the cluster's backlog (the unfinished jobs by queue and state). The leader alone
 * runs maintenance: promotion of due jobs, retention, cron schedules and the rescue of jobs
 * whose node stopped heartbeating. A listener connection (LISTEN jobq) wakes the scheduler,
 * held fetches, held waits and cancels when another node commits a batch that concerns them;
 * the heartbeat's re-read is the poll fallback, and a lost listener reconnects with backoff
 * and resyncs (every queue re-read, every held wait re-read).
 *
 * The module's state is one struct per process (jobqd runs one server). Loop thread, except
 * the exec_* functions (the writer's thread) and listen_work (a pool thread). */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "handlers.h"
#include "lifecycle.h"
#include "log.h"
#include "periodic.h"
#include "scheduler.h"
#include "shared_limits.h"
#include "store_cluster.h"
#include "waits.h"

#define POISON_CRASHES 3     /* as queues.c: crashes with a job running before it is dead */
#define MAX_CANCELS 64       /* cancel requests read per heartbeat */
#define MAX_REREAD 256       /* jobs read again per wake-up of held waits */
#define RECONNECT_MIN_MS 250 /* the listener's backoff, doubling up to RECONNECT_MAX_MS */
#define RECONNECT_MAX_MS 10000
#define LOCK_TIMEOUT_MS 1000 /* the heartbeat's and the rescue's wait for a row lock */
#define STALL_MS 1000        /* a batch this long in the store: does the server answer at all? */

#ifdef JOBQ_HAVE_POSTGRES

typedef struct count_item {
    char queue[65];
    int state;
    int64_t n;
} count_item;

typedef struct cluster {
    server *s;
    bool on; /* a shared store: everything below is in use */
    char name[128];
    char host[128];
    node_self me;
    uv_timer_t tick; /* the heartbeat, every poll_interval */
    bool beating;    /* a heartbeat op is in flight */
    bool again;      /* another heartbeat was asked for meanwhile (a resync) */
    bool rescuing;   /* a rescue op is in flight */
    bool leader;
    char leader_name[128];
    bool store_up;      /* the last heartbeat committed */
    int64_t db_skew_ms; /* the database's clock minus ours, at the last heartbeat */
    int64_t last_beat_ms;
    /* the listener */
    store_listener *l;
    uv_poll_t *poll;
    uv_work_t lwork;
    bool connecting;
    store_listener *lnew; /* listen_work's result */
    char lerr[300];
    uv_timer_t retry;
    int64_t backoff_ms;
    bool listening;
    bool closing;
    /* a server that stopped answering (frozen: its connections open, nothing answered) */
    uint64_t batch_seq;     /* the writer's batch seen running at the last tick */
    int64_t batch_since_ms; /* since when */
    bool probing;           /* a store_ping is on a pool thread, for batch probe_seq */
    uint64_t probe_seq;
    int probe_err;
    uv_work_t pwork;
    /* counters for /metrics */
    uint64_t beats, beat_failures, elections, fenced, rescued, notifies, resyncs, reconnects;
    uint64_t analyzes, stalls;
    int64_t analyzed_backlog; /* the unfinished jobs at the last ANALYZE (the leader's) */
    int64_t analyzed_at_ms;
    /* the backlog's re-read, on a connection of its own on a pool thread: a count of every
     * unfinished job (and the leader's ANALYZE) takes as long as the backlog is big, and on
     * the writer's connection every request would wait behind it */
    store *side;       /* opened by the first count */
    uv_work_t cwork;
    bool counting;     /* a count is on a pool thread */
    bool count_again;  /* a resync asked for another one meanwhile */
    bool analyze_next; /* the leader's next count runs ANALYZE after it */
    bool count_failing; /* the last count failed (logged once until one succeeds) */
    uint64_t counts_read, count_failures;
} cluster;

/* The unfinished jobs by queue and state, as a count reads them. */
typedef struct count_list {
    count_item *items;
    size_t n, cap;
} count_list;

static cluster cl;

/* ---- the heartbeat: beat, leader, backlog, cancel requests ---- */

typedef struct beat_op {
    wop op;
    int running;
    bool fenced;
    bool leader;
    char leader_name[128];
    int64_t db_now_ms;
    int64_t next_due_ms; /* the leader: the earliest due job (0: none) */
    int64_t cancels[MAX_CANCELS];
    size_t ncancels;
    char (*paused)[65]; /* the queues whose paused flag is stored set */
    size_t npaused, cappaused;
} beat_op;

/* publish: what the other modules read of this node's role (server.h). */
static void
publish(void)
{
    server *s = cl.s;
    s->leads = !cl.on || cl.leader;
    snprintf(s->node_name, sizeof(s->node_name), "%s", cl.on ? cl.name : "");
    snprintf(s->leader_name, sizeof(s->leader_name), "%s", cl.on ? cl.leader_name : "");
}

static void
paused_cb(void *arg, const char *queue)
{
    beat_op *b = arg;
    if (b->npaused == b->cappaused) {
        size_t cap = b->cappaused ? b->cappaused * 2 : 8;
        char(*p)[65] = realloc(b->paused, cap * sizeof(*p));
        if (p == NULL) {
            return;
        }
        b->paused = p;
        b->cappaused = cap;
    }
    snprintf(b->paused[b->npaused++], 65, "%s", queue);
}

static void
count_cb(void *arg, const char *queue, int state, int64_t n)
{
    count_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        count_item *c = realloc(l->items, cap * sizeof(*c));
        if (c == NULL) {
            return; /* out of memory: this queue keeps its counts until the next count */
        }
        l->items = c;
        l->cap = cap;
    }
    count_item *it = &l->items[l->n++];
    snprintf(it->queue, sizeof(it->queue), "%s", queue);
    it->state = state;
    it->n = n;
}

static int
exec_beat(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    beat_op *b = container_of(op, beat_op, op);
    int err = store_lock_timeout(st, LOCK_TIMEOUT_MS);
    if (err == JOBQ_OK) {
        err = store_node_beat(st, &cl.me, b->running, &b->fenced, &b->db_now_ms);
    }
    if (err == JOBQ_OK) {
        err = store_leader_try(st, cl.me.name, cl.s->cfg->leader_ttl_ms, &b->leader, b->leader_name,
                               sizeof(b->leader_name));
    }
    if (err == JOBQ_OK && b->leader) {
        int64_t at;
        int e2 = store_next_due(st, &at);
        if (e2 == JOBQ_OK) {
            b->next_due_ms = at;
        } else if (e2 != JOBQ_ENOENT) {
            err = e2;
        }
    }
    if (err == JOBQ_OK) {
        err = store_cancel_requests(st, b->cancels, MAX_CANCELS, &b->ncancels);
    }
    if (err == JOBQ_OK) {
        err = store_paused_each(st, paused_cb, b);
    }
    if (err == JOBQ_OK) {
        err = store_lock_timeout(st, 0); /* the batch's other ops wait as they always did */
    }
    return err;
}

static void rescue(server *s);
static void beat(server *s);
static void count_start(server *s);

/* apply_counts: the cluster's backlog replaces this node's view of the unfinished states (the
 * finished ones stay this node's own counts: they only grow, and retention is the leader's).
 * The read ran beside the writer, so it may predate what this node committed and counted
 * since: ready never goes below this node's own count (a claim that finds fewer corrects an
 * excess at once, while a shortfall would hold ready jobs back until the next read), except
 * for a queue under global_concurrency, whose claims do not correct it. */
static void
apply_counts(server *s, const count_list *l)
{
    static const int active[] = {JOBQ_SCHEDULED, JOBQ_READY, JOBQ_RUNNING, JOBQ_RETRYING,
                                 JOBQ_WAITING};
    int64_t *ready = calloc(s->nqueues > 0 ? s->nqueues : 1, sizeof(*ready));
    size_t nq = s->nqueues;
    for (size_t i = 0; i < nq; i++) {
        if (ready != NULL) {
            ready[i] = s->queues[i]->counts[JOBQ_READY];
        }
        for (size_t k = 0; k < sizeof(active) / sizeof(active[0]); k++) {
            s->queues[i]->counts[active[k]] = 0;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        qstate *q = queue_add(s, l->items[i].queue);
        if (q != NULL) {
            q->counts[l->items[i].state] = l->items[i].n;
        }
    }
    for (size_t i = 0; i < nq && ready != NULL; i++) {
        qstate *q = s->queues[i];
        if (q->conf->global_concurrency == 0 && ready[i] > q->counts[JOBQ_READY]) {
            q->counts[JOBQ_READY] = ready[i];
        }
    }
    free(ready);
}

static void
done_beat(wop *op)
{
    beat_op *b = container_of(op, beat_op, op);
    server *s = cl.s;
    cl.beating = false;
    if (op->err != JOBQ_OK) {
        cl.beat_failures++;
        if (cl.store_up) {
            log_error("heartbeat_failed", "node=%s err=%s reason=\"%s\"", cl.name,
                      jobq__err_code(op->err), writer_last_error(&s->w));
        }
        cl.store_up = false;
        /* Not renewed: step down now rather than act on a lease that may have expired. */
        if (cl.leader) {
            cl.leader = false;
            publish();
            log_warn("leader_lost", "node=%s reason=\"heartbeat failed\"", cl.name);
        }
    } else {
        bool was_up = cl.store_up;
        cl.store_up = true;
        cl.beats++;
        cl.last_beat_ms = jobq__now_ms();
        cl.db_skew_ms = b->db_now_ms - cl.last_beat_ms;
        if (!was_up && cl.beats > 1) {
            log_info("heartbeat_resumed", "node=%s", cl.name);
        }
        if (b->fenced) {
            cl.fenced++;
            log_warn("node_fenced",
                     "node=%s incarnation=%lld reason=\"declared dead by the leader: the jobs it "
                     "ran were rescued; outcomes recorded from now on for them change nothing\"",
                     cl.name, (long long)store_incarnation(s->st));
        }
        bool was = cl.leader;
        cl.leader = b->leader;
        snprintf(cl.leader_name, sizeof(cl.leader_name), "%s", b->leader_name);
        publish();
        count_start(s);
        /* pause and resume are the cluster's: the flags as stored */
        for (size_t i = 0; i < s->nqueues; i++) {
            qstate *q = s->queues[i];
            bool paused = false;
            for (size_t k = 0; k < b->npaused && !paused; k++) {
                paused = strcmp(b->paused[k], q->name) == 0;
            }
            if (paused != q->paused) {
                log_info(paused ? "queue_paused" : "queue_resumed", "queue=%s by=another_node",
                         q->name);
                q->paused = paused;
            }
        }
        for (size_t i = 0; i < b->ncancels; i++) {
            if (waits_stop_running(s, b->cancels[i], NULL)) {
                log_info("job_cancel_remote", "job=%lld", (long long)b->cancels[i]);
            }
        }
        if (cl.leader && !was) {
            cl.elections++;
            log_info("leader_elected", "node=%s", cl.name);
            periodic_lead(s);
            sched_maintain_now(s);
        } else if (!cl.leader && was) {
            log_warn("leader_lost", "node=%s leader=%s", cl.name, cl.leader_name);
        }
        if (cl.leader) {
            if (b->next_due_ms > 0) {
                sched_note_due(s, b->next_due_ms);
            }
            rescue(s);
        }
        sched_dispatch_all(s);
    }
    free(b->paused);
    free(b);
    if (cl.again && !s->closing) {
        cl.again = false;
        beat(s);
    }
}

static int
running_here(const server *s)
{
    return s->nrunning + (int)s->nleases;
}

/* beat: pushes a heartbeat op now (or once the one in flight completes). */
static void
beat(server *s)
{
    if (cl.beating) {
        cl.again = true;
        return;
    }
    beat_op *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return; /* the next tick tries again */
    }
    b->running = running_here(s);
    b->op.exec = exec_beat;
    b->op.done = done_beat;
    b->op.writes = true;
    b->op.relaxed = true; /* a heartbeat lost to a crash of the database is the next one's */
    cl.beating = true;
    writer_push(&s->w, &b->op);
}

/* ---- a server that stopped answering ----
 * A frozen PostgreSQL (SIGSTOP, a hung host behind a unix socket or a live TCP connection)
 * answers nothing and closes nothing: the batch in flight would wait until it wakes, and every
 * request queued behind it too. When a batch has run for STALL_MS, a new connection is tried
 * on a pool thread; when that gets no answer either, the batch's connection is cut (its ops
 * fail as at a lost connection: a COMMIT already sent is resolved as always) and the ops
 * waiting for the next batch are answered store_unavailable at once (nothing of them ran), as
 * are the ones that queue up while that batch still hangs. A server that answers the new
 * connection is slow, not gone: nothing is done then. */

static const char stalled_msg[] =
    "the database does not answer (a statement waited over 1 s and a new connection got no "
    "reply in 2 s): nothing was done; retry (jobqd reconnects by itself)";

static void
probe_work(uv_work_t *w)
{
    (void)w;
    cl.probe_err = store_ping(cl.s->st);
}

static void
probe_after(uv_work_t *w, int status)
{
    (void)w;
    server *s = cl.s;
    cl.probing = false;
    if (status != 0 || cl.closing || cl.probe_err == JOBQ_OK || !s->w.executing ||
        s->w.seq != cl.probe_seq) {
        return; /* it answers, or the batch ended meanwhile */
    }
    cl.stalls++;
    log_error("store_stalled",
              "node=%s batch_ms=%lld pending=%s reason=\"no reply to the batch in flight nor to a "
              "new connection: the connection is cut and requests are answered "
              "store_unavailable until it answers\"",
              cl.name, (long long)(jobq__now_ms() - cl.batch_since_ms),
              s->w.pending != NULL ? "yes" : "no");
    store_interrupt(s->st);
    if (cl.counting && cl.side != NULL) {
        store_interrupt(cl.side); /* the backlog's read waits on the same server */
    }
    writer_fail_pending(&s->w, JOBQ_EUNAVAIL, stalled_msg);
}

/* stall_check: at each tick: a batch running since STALL_MS starts a probe; while the batch
 * found hung still runs, what queues behind it is answered store_unavailable. */
static void
stall_check(server *s)
{
    const writer *w = &s->w;
    int64_t now = jobq__now_ms();
    if (!w->executing || w->seq != cl.batch_seq) {
        cl.batch_seq = w->executing ? w->seq : 0;
        cl.batch_since_ms = now;
        return;
    }
    if (cl.probing || now - cl.batch_since_ms < STALL_MS) {
        return;
    }
    if (cl.probe_seq == w->seq) {
        if (cl.probe_err != JOBQ_OK) {
            writer_fail_pending(&s->w, JOBQ_EUNAVAIL, stalled_msg);
        }
        return; /* probed once for this batch: it answered (slow, not gone), or it hangs */
    }
    cl.probing = true;
    cl.probe_seq = w->seq;
    if (uv_queue_work(s->loop, &cl.pwork, probe_work, probe_after) != 0) {
        cl.probing = false;
    }
}

static void
tick_cb(uv_timer_t *t)
{
    (void)t;
    if (!cl.s->draining) {
        beat(cl.s);
    }
    stall_check(cl.s);
}

/* ---- the rescue (leader): jobs of nodes that stopped heartbeating ---- */

typedef struct rescued_job {
    char queue[65];
    int64_t id;
    bool poisoned;
} rescued_job;

typedef struct rescue_op {
    wop op;
    char (*fenced)[128];
    size_t nfenced, capfenced;
    rescued_job *jobs;
    size_t njobs, capjobs;
} rescue_op;

static void
fenced_cb(void *arg, const char *name)
{
    rescue_op *r = arg;
    if (r->nfenced == r->capfenced) {
        size_t cap = r->capfenced ? r->capfenced * 2 : 4;
        char(*f)[128] = realloc(r->fenced, cap * sizeof(*f));
        if (f == NULL) {
            return;
        }
        r->fenced = f;
        r->capfenced = cap;
    }
    snprintf(r->fenced[r->nfenced++], 128, "%s", name);
}

static void
rescued_cb(void *arg, const char *queue, int64_t id, bool poisoned)
{
    rescue_op *r = arg;
    if (r->njobs == r->capjobs) {
        size_t cap = r->capjobs ? r->capjobs * 2 : 64;
        rescued_job *j = realloc(r->jobs, cap * sizeof(*j));
        if (j == NULL) {
            return; /* the counts follow at the next heartbeat */
        }
        r->jobs = j;
        r->capjobs = cap;
    }
    rescued_job *j = &r->jobs[r->njobs++];
    snprintf(j->queue, sizeof(j->queue), "%s", queue);
    j->id = id;
    j->poisoned = poisoned;
}

static int
exec_rescue(store *st, wop *op, int64_t now_ms)
{
    rescue_op *r = container_of(op, rescue_op, op);
    size_t n;
    int err = store_lock_timeout(st, LOCK_TIMEOUT_MS);
    if (err == JOBQ_OK) {
        err = store_nodes_fence_dead(st, fenced_cb, r, &n);
    }
    if (err == JOBQ_OK) {
        err = lifecycle_recover_running(st, now_ms, POISON_CRASHES, NULL, rescued_cb, r, &n);
    }
    if (err == JOBQ_OK) {
        err = store_lock_timeout(st, 0);
    }
    if (err != JOBQ_OK) {
        r->njobs = r->nfenced = 0;
    }
    return err;
}

static void
done_rescue(wop *op)
{
    rescue_op *r = container_of(op, rescue_op, op);
    server *s = cl.s;
    cl.rescuing = false;
    if (op->err != JOBQ_OK) {
        log_error("rescue_failed", "err=%s reason=\"%s\"", jobq__err_code(op->err),
                  writer_last_error(&s->w));
    }
    for (size_t i = 0; i < r->nfenced; i++) {
        log_warn("node_dead", "node=%s reason=\"no heartbeat for node_ttl: its jobs are rescued\"",
                 r->fenced[i]);
    }
    for (size_t i = 0; i < r->njobs; i++) {
        rescued_job *j = &r->jobs[i];
        qstate *q = queue_add(s, j->queue);
        if (q != NULL) {
            queue_count_move(q, JOBQ_RUNNING, j->poisoned ? JOBQ_DEAD : JOBQ_READY);
        }
        log_info("job_rescued", "job=%lld queue=%s next=%s", (long long)j->id, j->queue,
                 j->poisoned ? "dead" : "ready");
    }
    cl.rescued += r->njobs;
    if (r->njobs > 0) {
        log_warn("rescued", "jobs=%zu reason=\"their node stopped heartbeating\"", r->njobs);
        sched_dispatch_all(s);
    }
    free(r->fenced);
    free(r->jobs);
    free(r);
}

/* ANALYZE once the backlog is this many times what it was at the last one (or a fraction). */
#define ANALYZE_FACTOR 4
#define ANALYZE_MIN_JOBS 2000
#define ANALYZE_EVERY_MS 5000

static void
rescue(server *s)
{
    if (cl.rescuing || s->draining) {
        return;
    }
    rescue_op *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return;
    }
    r->op.exec = exec_rescue;
    r->op.done = done_rescue;
    r->op.writes = true;
    r->op.relaxed = true; /* a rescue undone is done again */
    cl.rescuing = true;
    writer_push(&s->w, &r->op);
}

/* analyze_due: the leader's decision, after a count of backlog jobs, to ANALYZE jobs with the
 * next count (the planner's statistics follow a backlog that grew or shrank a lot). */
static void
analyze_due(int64_t backlog)
{
    int64_t now = jobq__now_ms();
    int64_t was = cl.analyzed_backlog;
    if (now - cl.analyzed_at_ms >= ANALYZE_EVERY_MS &&
        (backlog > was * ANALYZE_FACTOR + ANALYZE_MIN_JOBS ||
         (was > ANALYZE_MIN_JOBS && backlog * ANALYZE_FACTOR < was))) {
        cl.analyze_next = true;
        cl.analyzed_backlog = backlog;
        cl.analyzed_at_ms = now;
    }
}

/* ---- the backlog's re-read (on its own connection) ---- */

typedef struct count_job {
    count_list list;
    char *database; /* the first count's: to open the connection with (a copy: a reload may
                     * replace the config meanwhile) */
    enum durability durability;
    store *side;   /* the connection to read on (cl.side; NULL: open one) */
    store *opened; /* out: the one opened (cl.side from now on, set on the loop) */
    bool analyze;
    int err;
    char msg[300];
} count_job;

static count_job cjob;

static void
count_work(uv_work_t *w)
{
    (void)w;
    count_job *c = &cjob;
    store *st = c->side;
    if (st == NULL) {
        snprintf(c->msg, sizeof(c->msg), "out of memory");
        c->err = c->database == NULL
                     ? JOBQ_ENOMEM
                     : store_open(c->database, c->durability, &c->opened, c->msg, sizeof(c->msg));
        if (c->err != JOBQ_OK) {
            c->opened = NULL;
            return;
        }
        st = c->opened;
    }
    c->err = store_begin(st);
    if (c->err == JOBQ_OK) {
        c->err = store_count_active_each(st, count_cb, &c->list);
    }
    if (c->err == JOBQ_OK && c->analyze) {
        c->err = store_analyze(st);
    }
    if (c->err == JOBQ_OK) {
        c->err = store_commit(st);
    } else {
        store_rollback(st);
    }
    if (c->err != JOBQ_OK) {
        snprintf(c->msg, sizeof(c->msg), "%s", store_errmsg(st));
    }
}

static void
count_after(uv_work_t *w, int status)
{
    (void)w;
    server *s = cl.s;
    count_job *c = &cjob;
    cl.counting = false;
    if (c->opened != NULL) {
        cl.side = c->opened;
        c->opened = NULL;
    }
    if (status == 0 && c->err == JOBQ_OK && !cl.closing) {
        cl.counts_read++;
        cl.analyzes += c->analyze;
        if (cl.count_failing) {
            cl.count_failing = false;
            log_info("backlog_read_resumed", "node=%s", cl.name);
        }
        apply_counts(s, &c->list);
        if (cl.leader) {
            int64_t backlog = 0;
            for (size_t i = 0; i < c->list.n; i++) {
                backlog += c->list.items[i].n;
            }
            analyze_due(backlog);
        }
        sched_dispatch_all(s);
    } else if (!cl.closing) {
        cl.count_failures++;
        if (c->analyze) {
            cl.analyze_next = true;
        }
        if (!cl.count_failing) {
            cl.count_failing = true;
            log_warn("backlog_read_failed", "node=%s err=%s reason=\"%s\"", cl.name,
                     jobq__err_code(status != 0 ? JOBQ_ESTORE : c->err), c->msg);
        }
    }
    free(c->list.items);
    c->list = (count_list){0};
    free(c->database);
    c->database = NULL;
    if (cl.count_again && !cl.closing) {
        cl.count_again = false;
        count_start(s);
    }
}

/* count_start: reads the cluster's backlog now (or once the read in flight is done). */
static void
count_start(server *s)
{
    if (cl.closing) {
        return;
    }
    if (cl.counting) {
        cl.count_again = true;
        return;
    }
    cjob = (count_job){
        .analyze = cl.analyze_next, .durability = s->cfg->durability, .side = cl.side};
    if (cl.side == NULL) {
        cjob.database = strdup(s->cfg->database);
    }
    cl.analyze_next = false;
    if (uv_queue_work(s->loop, &cl.cwork, count_work, count_after) == 0) {
        cl.counting = true;
    } else {
        free(cjob.database); /* the next heartbeat tries again */
        cjob.database = NULL;
    }
}

/* ---- wake-ups from the other nodes ---- */

typedef struct reread_op {
    wop op;
    int64_t ids[MAX_REREAD];
    job_row rows[MAX_REREAD];
    bool got[MAX_REREAD];
    size_t n;
} reread_op;

static int
exec_reread(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    reread_op *r = container_of(op, reread_op, op);
    for (size_t i = 0; i < r->n; i++) {
        int err = store_get(st, r->ids[i], &r->rows[i]);
        if (err == JOBQ_OK) {
            r->got[i] = true;
        } else if (err != JOBQ_ENOENT) {
            return err;
        }
    }
    return JOBQ_OK;
}

/* done_reread: jobs that ended on another node answer the waits here that name them (counts
 * are the heartbeat's business: the move is from the state to itself). */
static void
done_reread(wop *op)
{
    reread_op *r = container_of(op, reread_op, op);
    server *s = cl.s;
    for (size_t i = 0; i < r->n; i++) {
        if (op->err == JOBQ_OK && r->got[i] && queue_job_ended(r->rows[i].state) &&
            waits_named(s, r->ids[i])) {
            qstate *q = queue_add(s, r->rows[i].queue);
            if (q != NULL) {
                waits_job_finished(s, q, &r->rows[i], r->rows[i].state);
            }
        }
        job_row_clear(&r->rows[i]);
    }
    free(r);
}

/* reread: reads ids again (those a wait here names) and answers the waits they meet. */
static void
reread(server *s, const int64_t *ids, size_t n)
{
    reread_op *r = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!waits_named(s, ids[i])) {
            continue;
        }
        if (r == NULL && (r = calloc(1, sizeof(*r))) == NULL) {
            return;
        }
        r->ids[r->n++] = ids[i];
        if (r->n == MAX_REREAD) {
            break;
        }
    }
    if (r == NULL) {
        return;
    }
    r->op.exec = exec_reread;
    r->op.done = done_reread;
    r->op.writes = false;
    writer_push(&s->w, &r->op);
}

/* resync: everything may have changed unseen: the backlog is read again (and every queue
 * dispatched after it), and every held wait's jobs. */
static void
resync(server *s)
{
    cl.resyncs++;
    beat(s);
    shared_breakers_read(s);
    int64_t ids[MAX_REREAD];
    size_t n = waits_ids(s, ids, MAX_REREAD);
    reread(s, ids, n);
}

static void
notify_cb(void *arg, const char *payload)
{
    server *s = arg;
    cl.notifies++;
    json_t *o = json_loads(payload, 0, NULL);
    const char *from = json_string_value(json_object_get(o, "n"));
    if (o == NULL || from == NULL) {
        json_decref(o);
        return;
    }
    if (strcmp(from, cl.name) == 0) {
        json_decref(o); /* this node's own batch: its effects ran here already */
        return;
    }
    if (json_is_true(json_object_get(o, "resync"))) {
        json_decref(o);
        resync(s);
        return;
    }
    const char *qname;
    json_t *v;
    size_t i;
    json_object_foreach(json_object_get(o, "r"), qname, v)
    {
        qstate *q = queue_add(s, qname);
        if (q != NULL) {
            q->counts[JOBQ_READY] += json_integer_value(v);
            sched_dispatch(s, q);
        }
    }
    if (json_object_get(o, "b") != NULL) {
        shared_breakers_read(s); /* a node opened or closed a breaker */
    }
    if (json_is_true(json_object_get(o, "p"))) {
        beat(s); /* a queue was paused or resumed: the flags are read again */
    }
    json_t *due = json_object_get(o, "d");
    if (json_is_integer(due) && cl.leader) {
        sched_note_due(s, json_integer_value(due));
    }
    json_t *ended = json_object_get(o, "e");
    if (json_is_true(ended)) {
        int64_t ids[MAX_REREAD];
        reread(s, ids, waits_ids(s, ids, MAX_REREAD));
    } else if (json_is_array(ended)) {
        int64_t ids[MAX_REREAD];
        size_t n = 0;
        json_array_foreach(ended, i, v)
        {
            if (n < MAX_REREAD && json_is_integer(v)) {
                ids[n++] = json_integer_value(v);
            }
        }
        reread(s, ids, n);
    }
    json_array_foreach(json_object_get(o, "c"), i, v)
    {
        if (json_is_integer(v) && waits_stop_running(s, json_integer_value(v), NULL)) {
            log_info("job_cancel_remote", "job=%lld", (long long)json_integer_value(v));
        }
    }
    json_decref(o);
}

static void listen_start(server *s);

static void
retry_cb(uv_timer_t *t)
{
    (void)t;
    listen_start(cl.s);
}

/* listen_retry: the next connection attempt, after a backoff that doubles up to a maximum. */
static void
listen_retry(void)
{
    cl.backoff_ms = cl.backoff_ms == 0 ? RECONNECT_MIN_MS : cl.backoff_ms * 2;
    if (cl.backoff_ms > RECONNECT_MAX_MS) {
        cl.backoff_ms = RECONNECT_MAX_MS;
    }
    uv_timer_start(&cl.retry, retry_cb, (uint64_t)cl.backoff_ms, 0);
}

static void
poll_closed(uv_handle_t *h)
{
    free(h);
}

/* listen_lost: the listener's connection is gone: close it, poll meanwhile (the heartbeat),
 * reconnect after a backoff. */
static void
listen_lost(server *s, const char *why)
{
    if (cl.poll != NULL) {
        uv_poll_stop(cl.poll);
        uv_close((uv_handle_t *)cl.poll, poll_closed);
        cl.poll = NULL;
    }
    store_listen_close(cl.l);
    cl.l = NULL;
    if (cl.listening) {
        log_warn("listener_lost", "node=%s reason=\"%s\"", cl.name, why);
    }
    cl.listening = false;
    if (!cl.closing) {
        listen_retry();
        beat(s); /* meanwhile the heartbeat polls: read the backlog now */
    }
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
    (void)events;
    server *s = h->data;
    if (status < 0 || store_listen_read(cl.l, notify_cb, s) != JOBQ_OK) {
        listen_lost(s, status < 0 ? uv_strerror(status) : "connection lost");
    }
}

static void
listen_work(uv_work_t *w)
{
    (void)w;
    cl.lnew = NULL;
    if (store_listen_open(cl.s->st, &cl.lnew, cl.lerr, sizeof(cl.lerr)) != JOBQ_OK) {
        cl.lnew = NULL;
    }
}

static void
listen_after(uv_work_t *w, int status)
{
    (void)w;
    server *s = cl.s;
    cl.connecting = false;
    if (cl.closing || status != 0 || cl.lnew == NULL) {
        store_listen_close(cl.lnew);
        cl.lnew = NULL;
        if (!cl.closing) {
            if (cl.backoff_ms == 0) {
                log_warn("listener_failed", "node=%s reason=\"%s\"", cl.name, cl.lerr);
            }
            listen_retry();
        }
        return;
    }
    cl.l = cl.lnew;
    cl.lnew = NULL;
    cl.poll = calloc(1, sizeof(*cl.poll));
    if (cl.poll == NULL || uv_poll_init(s->loop, cl.poll, store_listen_fd(cl.l)) != 0) {
        free(cl.poll);
        cl.poll = NULL;
        listen_lost(s, "cannot watch the socket");
        return;
    }
    cl.poll->data = s;
    uv_poll_start(cl.poll, UV_READABLE | UV_DISCONNECT, poll_cb);
    bool again = cl.reconnects++ > 0;
    cl.listening = true;
    cl.backoff_ms = 0;
    log_info(again ? "listener_reconnected" : "listener_started", "node=%s", cl.name);
    if (again) {
        resync(s); /* what was notified while no one listened */
    }
}

static void
listen_start(server *s)
{
    if (cl.connecting || cl.closing || cl.l != NULL) {
        return;
    }
    cl.connecting = true;
    uv_queue_work(s->loop, &cl.lwork, listen_work, listen_after);
}

/* ---- cancel of a job running on another node ---- */

static int
exec_cancel_elsewhere(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    call *c = container_of(op, call, op);
    job_row_clear(&c->row);
    int err = store_request_cancel(st, c->req.ids[0]);
    return err == JOBQ_OK ? store_get(st, c->req.ids[0], &c->row) : err;
}

static void
done_cancel_elsewhere(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_ESTATE) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "job %lld is not running on a live node (it ended, or its node stopped "
                 "heartbeating and it will be rescued): try again",
                 (long long)c->req.ids[0]);
        reply_err(c, JOBQ_ESTATE, msg);
        return;
    }
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
        return;
    }
    log_info("job_cancel_asked", "job=%lld queue=%s", (long long)c->row.id, c->row.queue);
    /* Answered with the job once its end is known here (the owner's wake-up, or a resync). */
    wait_register(c, &c->row, 1, true);
}

/* ---- the part ---- */

static void
default_name(server *s, char *buf, size_t len)
{
    const char *l = s->cfg->nlisten > 0 ? s->cfg->listen[0] : "";
    char host[64];
    snprintf(host, sizeof(host), "%.63s", cl.host);
    const char *tail = strrchr(l, ':');
    const char *slash = strrchr(l, '/');
    if (slash != NULL && (tail == NULL || slash > tail)) {
        tail = slash;
    }
    snprintf(buf, len, "%s:%.60s", host, tail != NULL ? tail + 1 : l);
}

static int
cluster_init(server *s, char *err, size_t errlen)
{
    memset(&cl, 0, sizeof(cl));
    cl.s = s;
    cl.store_up = true;
    uv_timer_init(s->loop, &cl.tick);
    uv_timer_init(s->loop, &cl.retry);
    if (!store_shared(s->st)) {
        cl.leader = true;
        publish();
        return 0;
    }
    cl.on = true;
    s->reread_waits = reread;
    if (gethostname(cl.host, sizeof(cl.host) - 1) != 0) {
        snprintf(cl.host, sizeof(cl.host), "localhost");
    }
    if (s->cfg->node != NULL) {
        snprintf(cl.name, sizeof(cl.name), "%s", s->cfg->node);
    } else {
        default_name(s, cl.name, sizeof(cl.name));
    }
    publish();
    cl.me = (node_self){.name = cl.name,
                        .host = cl.host,
                        .version = JOBQ_VERSION_STRING,
                        .pid = (int)getpid(),
                        .ttl_ms = s->cfg->node_ttl_ms};
    int rc = store_node_register(s->st, &cl.me);
    if (rc != JOBQ_OK) {
        snprintf(err, errlen, "cannot register the node: %s", store_errmsg(s->st));
        return -1;
    }
    log_info("node_registered", "node=%s incarnation=%lld node_ttl_ms=%lld leader_ttl_ms=%lld",
             cl.name, (long long)store_incarnation(s->st), (long long)s->cfg->node_ttl_ms,
             (long long)s->cfg->leader_ttl_ms);
    return 0;
}

static void
cluster_start(server *s)
{
    if (!cl.on) {
        return;
    }
    beat(s);
    uv_timer_start(&cl.tick, tick_cb, (uint64_t)s->cfg->poll_interval_ms,
                   (uint64_t)s->cfg->poll_interval_ms);
    listen_start(s);
}

typedef struct resign_op {
    wop op;
} resign_op;

static int
exec_resign(store *st, wop *op, int64_t now_ms)
{
    (void)op;
    (void)now_ms;
    return store_leader_resign(st);
}

static void
done_resign(wop *op)
{
    if (op->err == JOBQ_OK) {
        log_info("leader_resigned", "node=%s", cl.name);
    }
    free(container_of(op, resign_op, op));
}

static void
cluster_drain(server *s)
{
    if (!cl.on) {
        return;
    }
    uv_timer_stop(&cl.tick);
    if (cl.leader) {
        cl.leader = false; /* no maintenance while draining; another node takes over now */
        publish();
        resign_op *r = calloc(1, sizeof(*r));
        if (r != NULL) {
            r->op.exec = exec_resign;
            r->op.done = done_resign;
            r->op.writes = true;
            r->op.relaxed = true;
            writer_push(&s->w, &r->op);
        }
    }
}

static void
cluster_close(server *s)
{
    (void)s;
    cl.closing = true;
    if (cl.counting && cl.side != NULL) {
        store_interrupt(cl.side); /* a read in flight must not hold the exit up */
    }
    uv_timer_stop(&cl.tick);
    uv_timer_stop(&cl.retry);
    uv_close((uv_handle_t *)&cl.tick, NULL);
    uv_close((uv_handle_t *)&cl.retry, NULL);
    if (cl.poll != NULL) {
        uv_poll_stop(cl.poll);
        uv_close((uv_handle_t *)cl.poll, poll_closed);
        cl.poll = NULL;
    }
}

static void
cluster_free(server *s)
{
    (void)s;
    store_listen_close(cl.l);
    cl.l = NULL;
    store_close(cl.side);
    cl.side = NULL;
}

const server_part cluster_part = {.name = "cluster",
                                  .init = cluster_init,
                                  .start = cluster_start,
                                  .drain = cluster_drain,
                                  .close = cluster_close,
                                  .free = cluster_free};

bool
cluster_cancel_elsewhere(call *c)
{
    if (!cl.on) {
        return false;
    }
    c->op.exec = exec_cancel_elsewhere;
    c->op.done = done_cancel_elsewhere;
    c->op.writes = true;
    c->op.relaxed = false; /* an operator's intent */
    writer_push(&c->srv->w, &c->op);
    return true;
}

json_t *
cluster_json(const server *s)
{
    if (!cl.on) {
        return NULL;
    }
    return json_pack("{s:s, s:I, s:b, s:s, s:s, s:I}", "node", cl.name, "incarnation",
                     (json_int_t)store_incarnation(s->st), "leader", cl.leader, "leader_node",
                     cl.leader_name, "store", cl.store_up ? "up" : "down", "db_skew_ms",
                     (json_int_t)cl.db_skew_ms);
}

void
cluster_metrics(const server *s, mbuf *b)
{
    (void)s;
    if (!cl.on) {
        return;
    }
    metric_help(b, "jobq_node_info", "gauge", "This node of a cluster on PostgreSQL; always 1.");
    mbuf_printf(b, "jobq_node_info{node=\"%s\",host=\"%s\"} 1\n", cl.name, cl.host);
    metric_help(b, "jobq_node_leader", "gauge",
                "1 while this node holds the leader's lease (runs maintenance and schedules).");
    mbuf_printf(b, "jobq_node_leader{node=\"%s\"} %d\n", cl.name, cl.leader ? 1 : 0);
    metric_help(b, "jobq_store_up", "gauge", "1 while the last heartbeat reached the database.");
    mbuf_printf(b, "jobq_store_up{node=\"%s\"} %d\n", cl.name, cl.store_up ? 1 : 0);
    metric_help(b, "jobq_listener_up", "gauge",
                "1 while the LISTEN connection (wake-ups from other nodes) is up.");
    mbuf_printf(b, "jobq_listener_up{node=\"%s\"} %d\n", cl.name, cl.listening ? 1 : 0);
    metric_help(b, "jobq_cluster_events_total", "counter", "Cluster events on this node.");
    const struct {
        const char *name;
        uint64_t v;
    } ev[] = {{"heartbeat", cl.beats},     {"heartbeat_failed", cl.beat_failures},
              {"elected", cl.elections},   {"fenced", cl.fenced},
              {"rescued_job", cl.rescued}, {"notification", cl.notifies},
              {"resync", cl.resyncs},      {"listener_connect", cl.reconnects},
              {"analyze", cl.analyzes},    {"store_stalled", cl.stalls},
              {"backlog_read", cl.counts_read}, {"backlog_read_failed", cl.count_failures}};
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
        mbuf_printf(b, "jobq_cluster_events_total{node=\"%s\",event=\"%s\"} %llu\n", cl.name,
                    ev[i].name, (unsigned long long)ev[i].v);
    }
}

bool
cluster_store_up(const server *s)
{
    (void)s;
    return !cl.on || cl.store_up;
}

/* ---- the nodes op ---- */

typedef struct nodes_op {
    wop op;
    call *c;
    node_row *rows;
    size_t n;
} nodes_op;

static int
exec_nodes(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    nodes_op *o = container_of(op, nodes_op, op);
    return store_nodes(st, &o->rows, &o->n);
}

static void
done_nodes(wop *op)
{
    nodes_op *o = container_of(op, nodes_op, op);
    call *c = o->c;
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
    } else {
        json_t *r = ok_object();
        json_t *a = json_array();
        for (size_t i = 0; i < o->n; i++) {
            node_row *n = &o->rows[i];
            json_array_append_new(
                a,
                json_pack("{s:s, s:s, s:i, s:s, s:I, s:b, s:b, s:b, s:i, s:I, s:I, s:I}", "name",
                          n->name, "host", n->host, "pid", n->pid, "version", n->version,
                          "incarnation", (json_int_t)n->incarnation, "alive", n->alive, "fenced",
                          n->fenced, "leader", n->leader, "running", n->running, "started_at",
                          (json_int_t)n->started_at_ms, "heartbeat_at", (json_int_t)n->beat_at_ms,
                          "expires_at", (json_int_t)n->expires_at_ms));
        }
        json_object_set_new(r, "shared", json_true());
        json_object_set_new(r, "nodes", a);
        json_t *self = cluster_json(c->srv);
        json_object_set_new(self, "running", json_integer(running_here(c->srv)));
        json_object_set_new(r, "self", self);
        send_json(c, r);
    }
    for (size_t i = 0; i < o->n; i++) {
        node_row_clear(&o->rows[i]);
    }
    free(o->rows);
    free(o);
}

void
op_nodes(call *c)
{
    if (!cl.on) {
        json_t *r = ok_object();
        json_object_set_new(r, "shared", json_false());
        json_object_set_new(r, "nodes", json_array());
        send_json(c, r);
        return;
    }
    nodes_op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    o->c = c;
    o->op.exec = exec_nodes;
    o->op.done = done_nodes;
    o->op.writes = false;
    writer_push(&c->srv->w, &o->op);
}

#else /* a build without PostgreSQL: every store is the node's own */

void
op_nodes(call *c)
{
    json_t *r = ok_object();
    json_object_set_new(r, "shared", json_false());
    json_object_set_new(r, "nodes", json_array());
    send_json(c, r);
}

static int
cluster_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s->leads = true;
    return 0;
}

const server_part cluster_part = {.name = "cluster", .init = cluster_init};

bool
cluster_cancel_elsewhere(call *c)
{
    (void)c;
    return false;
}

json_t *
cluster_json(const server *s)
{
    (void)s;
    return NULL;
}

void
cluster_metrics(const server *s, mbuf *b)
{
    (void)s;
    (void)b;
}

bool
cluster_store_up(const server *s)
{
    (void)s;
    return true;
}

bool
store_shared(const store *st)
{
    (void)st;
    return false;
}

void
store_set_claim_limit(store *st, int limit)
{
    (void)st;
    (void)limit;
}

#endif /* JOBQ_HAVE_POSTGRES */
