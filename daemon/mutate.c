/* mutate.c: the mutate op: one action (cancel, retry, delete, run_now, reschedule,
 * set_priority, rerun) on every job a filter matches, in transactions of at most MUTATE_CHUNK
 * jobs. Loop thread; each chunk's store operation runs on the writer's thread.
 *
 * The driver: a mutate reads the largest job id first (max_id: jobs submitted after it
 * started, a rerun's new jobs among them, are not its business), then walks the ids upward
 * from "after" in windows of at most MUTATE_WINDOW ids, picking at most MUTATE_CHUNK matching
 * jobs per window with one statement (store_pick). Each chunk is one writer operation: the
 * pick and the action on every job picked (lifecycle_mutate_job), one transaction; after its
 * commit the loop follows the changes (counts, waiters, scheduler) and queues the next chunk
 * behind whatever else waits for the writer, as bulk retry does, so a mutate of millions of
 * jobs never holds the writer for long. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "codec.h"
#include "handlers.h"
#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"
#include "waits.h"

/* Jobs changed by one transaction at most. */
#define MUTATE_CHUNK 1000
/* Ids one transaction's pick spans at most (a rowid or primary key range): a filter that
 * matches few jobs reads at most this many rows per transaction. */
#define MUTATE_WINDOW 50000
/* New ids a rerun's reply lists at most (changed counts them all). */
#define MUTATE_IDS_SHOWN 1000

/* One job as the pick found it. */
typedef struct picked {
    int64_t id;
    int state;
    char *queue;
} picked;

/* A mutate in progress: its filter and action, the totals so far, and the last chunk's
 * outputs (written by exec on the writer's thread, read by done on the loop). */
typedef struct mutate_run {
    job_filter f;
    mutate_args args;
    int64_t upto;  /* the largest id it touches: max_id, or the largest id at its start */
    int64_t after; /* the next chunk picks ids above this one */
    int64_t t0_ms; /* when it started, for the log line */
    size_t chunks; /* transactions committed */
    /* totals, by the state each job was found in */
    int64_t matched[JOBQ_WAITING + 1];
    int64_t changed[JOBQ_WAITING + 1];
    int64_t skipped[JOBQ_WAITING + 1];
    int64_t stopping; /* cancel: running jobs stopped where they run */
    int64_t *new_ids; /* rerun: the first MUTATE_IDS_SHOWN new ids */
    size_t nnew;
    /* the last chunk */
    picked *pick;
    size_t npick;
    mutate_change *chg; /* the changes for the loop to follow */
    size_t nchg;
    int64_t *stops; /* cancel: running jobs to stop */
    size_t nstops;
    int64_t c_matched[JOBQ_WAITING + 1];
    int64_t c_changed[JOBQ_WAITING + 1];
    int64_t c_skipped[JOBQ_WAITING + 1];
    size_t *chg_pick;   /* the pick of each change */
    int64_t next_after; /* where the next chunk starts */
} mutate_run;

static void
chunk_clear(mutate_run *m)
{
    for (size_t i = 0; i < m->npick; i++) {
        free(m->pick[i].queue);
        m->pick[i].queue = NULL;
    }
    for (size_t i = 0; i < m->nchg; i++) {
        job_row_clear(&m->chg[i].row);
    }
    m->npick = m->nchg = m->nstops = 0;
    memset(m->c_matched, 0, sizeof(m->c_matched));
    memset(m->c_changed, 0, sizeof(m->c_changed));
    memset(m->c_skipped, 0, sizeof(m->c_skipped));
}

static void
mutate_free(call *c)
{
    mutate_run *m = c->mutate;
    if (m == NULL) {
        return;
    }
    chunk_clear(m);
    free(m->pick);
    free(m->chg);
    free(m->stops);
    free(m->chg_pick);
    free(m->new_ids);
    free(m);
    c->mutate = NULL;
}

static void
collect_pick(void *arg, int64_t id, const char *queue, int state)
{
    mutate_run *m = arg;
    picked *p = &m->pick[m->npick];
    p->id = id;
    p->state = state;
    p->queue = strdup(queue);
    if (p->queue != NULL) {
        m->npick++;
    }
}

/* exec_mutate: one chunk: the pick of a window and the action on each job picked. A failure
 * rolls the whole chunk back (the writer's savepoint); the chunks before it stay. Work
 * thread. */
static int
exec_mutate(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    mutate_run *m = c->mutate;
    chunk_clear(m);
    if (m->upto == 0) {
        int64_t max;
        int err = store_max_id(st, &max);
        if (err != JOBQ_OK) {
            return err;
        }
        m->upto = c->req.max_id != 0 && c->req.max_id < max ? c->req.max_id : max;
    }
    int64_t hi = m->upto - m->after > MUTATE_WINDOW ? m->after + MUTATE_WINDOW : m->upto;
    if (m->f.ids != NULL) {
        hi = m->upto; /* the ids bound the read already */
    }
    size_t n = 0;
    int err = store_pick(st, &m->f, m->after, hi, MUTATE_CHUNK, collect_pick, m, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    if (m->npick < n) {
        return JOBQ_ENOMEM; /* a queue name could not be copied */
    }
    for (size_t i = 0; i < m->npick; i++) {
        const picked *p = &m->pick[i];
        m->c_matched[p->state]++;
        mutate_verdict v = lifecycle_mutate_verdict(m->args.action, p->state);
        if (v == MUTATE_SKIP) {
            m->c_skipped[p->state]++;
            continue;
        }
        if (v == MUTATE_STOP) {
            if (!c->req.dry_run) {
                m->stops[m->nstops++] = p->id;
            } else {
                m->c_changed[p->state]++; /* would be stopped: counted in stopping below */
            }
            continue;
        }
        if (c->req.dry_run) {
            m->c_changed[p->state]++;
            continue;
        }
        mutate_change *chg = &m->chg[m->nchg];
        err = lifecycle_mutate_job(st, &m->args, p->id, p->state, now_ms, chg);
        if (err == JOBQ_ESTATE) {
            m->c_skipped[p->state]++; /* it changed since the pick: left alone */
            continue;
        }
        if (err != JOBQ_OK) {
            job_row_clear(&chg->row);
            return err;
        }
        m->c_changed[p->state]++;
        m->chg_pick[m->nchg++] = i;
    }
    m->next_after = m->npick == MUTATE_CHUNK ? m->pick[m->npick - 1].id : hi;
    return JOBQ_OK;
}

/* follow: the loop's side of the chunk's changes: counts, waiters, the scheduler. */
static void
follow(call *c, mutate_run *m)
{
    server *s = c->srv;
    bool ready = false;
    for (size_t i = 0; i < m->nchg; i++) {
        mutate_change *chg = &m->chg[i];
        const picked *p = &m->pick[m->chg_pick[i]];
        if (chg->from == chg->to) {
            continue;
        }
        qstate *q = queue_add(s, p->queue);
        if (q == NULL) {
            continue;
        }
        if (chg->new_id != 0 && m->nnew < MUTATE_IDS_SHOWN) {
            m->new_ids[m->nnew++] = chg->new_id;
        }
        if (chg->to == JOBQ_CANCELLED) {
            waits_job_finished(s, q, &chg->row, chg->from); /* counts, waiters, dispatch */
            continue;
        }
        queue_count_move(q, chg->from, chg->to);
        if (chg->to == JOBQ_READY) {
            ready = true;
        } else if (chg->to == JOBQ_SCHEDULED || chg->to == JOBQ_RETRYING) {
            sched_note_due(s, chg->run_at_ms);
        }
    }
    for (size_t i = 0; i < m->nstops; i++) {
        if (waits_stop_running(s, m->stops[i], NULL)) {
            m->stopping++;
        } else {
            m->c_skipped[JOBQ_RUNNING]++; /* claimed but not started yet, or ended meanwhile */
        }
    }
    if (ready) {
        sched_dispatch_all(s);
    }
}

/* counts_json: {state: n} of the non-zero entries. */
static json_t *
counts_json(const int64_t *n)
{
    json_t *o = json_object();
    for (int st = 0; st <= JOBQ_WAITING; st++) {
        if (n[st] != 0) {
            json_object_set_new(o, jobq__state_name(st), json_integer(n[st]));
        }
    }
    return o;
}

static int64_t
sum(const int64_t *n)
{
    int64_t t = 0;
    for (int st = 0; st <= JOBQ_WAITING; st++) {
        t += n[st];
    }
    return t;
}

/* reply_mutate: the reply of PROTOCOL.md and the one log line of the mutate. */
static void
reply_mutate(call *c, bool finished)
{
    mutate_run *m = c->mutate;
    bool dry = c->req.dry_run;
    int64_t changed = sum(m->changed);
    int64_t stopping = m->stopping;
    if (dry && c->req.action == MUT_CANCEL) {
        stopping = m->changed[JOBQ_RUNNING]; /* what would be stopped */
        changed -= stopping;
    }
    char q[200];
    log_info("jobs_mutated",
             "action=%s dry_run=%s queue=%s matched=%lld changed=%lld skipped=%lld "
             "stopping=%lld chunks=%zu done=%s ms=%lld",
             jobq__mutate_action_name(c->req.action), dry ? "true" : "false",
             log_quote(q, sizeof(q), c->req.queue != NULL ? c->req.queue : "*"),
             (long long)sum(m->matched), (long long)changed, (long long)sum(m->skipped),
             (long long)stopping, m->chunks, finished ? "true" : "false",
             (long long)(jobq__now_ms() - m->t0_ms));
    json_t *o = ok_object();
    json_object_set_new(o, "action", json_string(jobq__mutate_action_name(c->req.action)));
    json_object_set_new(o, "dry_run", json_boolean(dry));
    json_object_set_new(o, "matched", json_integer(sum(m->matched)));
    json_object_set_new(o, "changed", json_integer(changed));
    json_object_set_new(o, "stopping", json_integer(stopping));
    json_object_set_new(o, "skipped", counts_json(m->skipped));
    json_object_set_new(o, "states", counts_json(m->matched));
    json_object_set_new(o, "max_id", json_integer(m->upto));
    json_object_set_new(o, "next", finished ? json_null() : json_integer(m->after));
    if (c->req.action == MUT_RERUN) {
        json_t *ids = json_array();
        for (size_t i = 0; i < m->nnew; i++) {
            json_array_append_new(ids, json_integer(m->new_ids[i]));
        }
        json_object_set_new(o, "ids", ids);
    }
    mutate_free(c);
    send_json(c, o);
}

static void
done_mutate(wop *op)
{
    call *c = container_of(op, call, op);
    mutate_run *m = c->mutate;
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "%s (this chunk of at most %d jobs changed nothing; %lld jobs were changed "
                 "before it; continue with \"after\": %lld and \"max_id\": %lld)",
                 writer_last_error(&s->w), MUTATE_CHUNK, (long long)sum(m->changed),
                 (long long)m->after, (long long)m->upto);
        log_info("jobs_mutated", "action=%s changed=%lld failed=true after=%lld",
                 jobq__mutate_action_name(c->req.action), (long long)sum(m->changed),
                 (long long)m->after);
        mutate_free(c);
        reply_err(c, op->err, msg);
        return;
    }
    m->chunks++;
    if (!c->req.dry_run) {
        follow(c, m);
    }
    for (int st = 0; st <= JOBQ_WAITING; st++) {
        m->matched[st] += m->c_matched[st];
        m->changed[st] += m->c_changed[st];
        m->skipped[st] += m->c_skipped[st];
    }
    m->after = m->next_after;
    chunk_clear(m);
    bool finished = m->after >= m->upto;
    bool limited = c->req.limit > 0 && sum(m->matched) >= c->req.limit;
    if (finished || limited || s->draining) {
        reply_mutate(c, finished);
        return;
    }
    writer_push(&s->w, &c->op); /* the next chunk, behind what waits already */
}

void
op_mutate(call *c)
{
    mutate_run *m = calloc(1, sizeof(*m));
    c->mutate = m;
    if (m == NULL || (m->pick = calloc(MUTATE_CHUNK, sizeof(*m->pick))) == NULL ||
        (m->chg = calloc(MUTATE_CHUNK, sizeof(*m->chg))) == NULL ||
        (m->stops = calloc(MUTATE_CHUNK, sizeof(*m->stops))) == NULL ||
        (m->chg_pick = calloc(MUTATE_CHUNK, sizeof(*m->chg_pick))) == NULL ||
        (m->new_ids = calloc(MUTATE_IDS_SHOWN, sizeof(*m->new_ids))) == NULL) {
        mutate_free(c);
        reply_error(c, "internal", "out of memory");
        return;
    }
    const request *r = &c->req;
    m->f = (job_filter){.queue = r->queue,
                        .states = r->states,
                        .ids = r->nids > 0 ? r->ids : NULL,
                        .nids = r->nids,
                        .created_after_ms = r->created_after_ms,
                        .created_before_ms = r->created_before_ms,
                        .finished_after_ms = r->finished_after_ms,
                        .finished_before_ms = r->finished_before_ms,
                        .error_contains = r->error_contains,
                        .key_prefix = r->key_prefix};
    m->args =
        (mutate_args){.action = r->action, .priority = r->priority, .run_at_ms = r->run_at_ms};
    m->after = r->after_id;
    m->t0_ms = jobq__now_ms();
    c->op.exec = exec_mutate;
    c->op.done = done_mutate;
    c->op.writes = !r->dry_run; /* a dry run reads only: no fsync of its own */
    writer_push(&c->srv->w, &c->op);
}
