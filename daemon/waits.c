/* waits.c: what follows the end of a job on the loop: its queue's counts, the waits that name
 * it (a wait's reply, a cancel of a running job waiting for its record, a wait with
 * cancel_pending cancelling the losers), the next dispatch. */
#include "waits.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hold.h"
#include "lifecycle.h"
#include "log.h"
#include "progress.h"
#include "runner.h"
#include "scheduler.h"
#include "webhook.h"
#include "workers.h"

/* A held wait (or a cancel of a running job): replied when its return_when is met (every
 * named job ended, the first ended, or the first failed). Its hold (hold.c) has the timer
 * and the slot; c->hold_data points here. */
typedef struct waiter {
    call *c;
    json_t *jobs;             /* snapshots, in the order of c->req.ids */
    size_t remaining;         /* jobs not ended yet */
    bool cancel;              /* a cancel of a running job: replied with the cancelled job */
    int when;                 /* the wait's return_when (WAIT_ALL for a cancel) */
    int64_t first;            /* the job whose end answered it (0: none, or return_when all) */
    bool answering;           /* in waits_job_finished's list of waits to answer */
    wait_link *links;         /* its entries in the hash */
    struct waiter *next_done; /* waits_job_finished's list of waits to answer */
} waiter;

/* One (job id -> waiter) entry of the server's hash: unlinked in O(1), so that dropping or
 * answering thousands of waits on one job costs each its own entries only. */
struct wait_link {
    int64_t id; /* 0 once the job ended */
    waiter *w;
    size_t index;  /* into w->jobs */
    size_t bucket; /* of s->waits */
    wait_link *next, *prev;
    wait_link *own; /* the waiter's next entry */
};

static size_t
bucket_of(const server *s, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 40) & (s->nbuckets - 1);
}

static void
unlink_waiter(server *s, waiter *w)
{
    while (w->links != NULL) {
        wait_link *l = w->links;
        w->links = l->own;
        if (l->prev != NULL) {
            l->prev->next = l->next;
        } else {
            s->waits[l->bucket] = l->next;
        }
        if (l->next != NULL) {
            l->next->prev = l->prev;
        }
        free(l);
    }
}

/* waiter_free: takes w out of the hash and frees it; its call stays. */
static void
waiter_free(server *s, waiter *w)
{
    unlink_waiter(s, w);
    w->c->hold_data = NULL;
    json_decref(w->jobs);
    free(w);
}

/* wait_met: whether a wait of return_when `when` is answered now that a job ended in state
 * and `remaining` of its jobs have not ended. */
static bool
wait_met(int when, int state, size_t remaining)
{
    switch (when) {
    case WAIT_FIRST:
        return true;
    case WAIT_FIRST_FAILURE:
        return state == JOBQ_DEAD || state == JOBQ_CANCELLED || remaining == 0;
    default:
        return remaining == 0;
    }
}

/* wait_decided: whether jobs already in states[0..n) (ended at finished_ms) answer a wait of
 * `when`; *firstp is then the job that answers it (0 for "all"): the first to end (first),
 * the first to fail, or the last to end when none failed (first_failure). Pure. */
static bool
wait_decided(int when, const int64_t *ids, const int *states, const int64_t *finished_ms, size_t n,
             int64_t *firstp)
{
    size_t pending = 0;
    size_t first = n, failed = n, last = n;
    for (size_t i = 0; i < n; i++) {
        if (!queue_job_ended(states[i])) {
            pending++;
            continue;
        }
        if (first == n || finished_ms[i] < finished_ms[first]) {
            first = i;
        }
        if (last == n || finished_ms[i] >= finished_ms[last]) {
            last = i;
        }
        if (states[i] != JOBQ_SUCCEEDED && (failed == n || finished_ms[i] < finished_ms[failed])) {
            failed = i;
        }
    }
    *firstp = 0;
    switch (when) {
    case WAIT_FIRST:
        if (first == n) {
            return false;
        }
        *firstp = ids[first];
        return true;
    case WAIT_FIRST_FAILURE:
        if (failed != n) {
            *firstp = ids[failed];
            return true;
        }
        if (pending == 0 && last != n) {
            *firstp = ids[last];
            return true;
        }
        return false;
    default:
        return pending == 0;
    }
}

static const char *const when_names[] = {"all", "first", "first_failure"};

/* wait_answer: replies to the wait c with jobs (taken: job objects in the order of the ids).
 * states: what each job was when the wait was answered (NULL: as jobs shows it); cancelled:
 * the jobs the answer cancelled (taken; NULL: none). */
static void
wait_answer(call *c, json_t *jobs, const int *states, json_t *cancelled)
{
    json_t *ended = json_array();
    json_t *pending = json_array();
    bool done = true;
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        json_t *j = json_array_get(jobs, i);
        int st = states != NULL ? states[i]
                                : jobq__state_parse(json_string_value(json_object_get(j, "state")));
        const char *name = jobq__state_name(st);
        json_t *e = json_pack("{s:O, s:s}", "id", json_object_get(j, "id"), "state",
                              name != NULL ? name : "?");
        if (queue_job_ended(st)) {
            json_array_append_new(ended, e);
        } else {
            done = false;
            json_array_append_new(pending, e);
        }
    }
    json_t *o = ok_object();
    json_object_set_new(o, "done", json_boolean(done));
    json_object_set_new(o, "jobs", jobs);
    int when = c->req.return_when;
    json_object_set_new(
        o, "return_when",
        json_string(when_names[when >= 0 && when <= WAIT_FIRST_FAILURE ? when : 0]));
    json_object_set_new(o, "first", c->wait_first != 0 ? json_integer(c->wait_first) : json_null());
    json_object_set_new(o, "ended", ended);
    json_object_set_new(o, "pending", pending);
    json_object_set_new(o, "cancelled", cancelled != NULL ? cancelled : json_array());
    if (c->req.group_id != 0) {
        json_object_set_new(o, "group", json_integer(c->req.group_id));
    }
    send_json(c, o);
}

/* wait_stop_running: a running loser of a wait with cancel_pending is cancelled as cancel
 * does (its process, remote lease or webhook delivery ends, recorded cancelled with why).
 * false if it is not running here (it ended meanwhile). */
static bool
wait_stop_running(server *s, int64_t id, const char *why)
{
    runner *r = runner_find(s, id);
    if (r != NULL && r->state == RUN_EXECUTING && !r->exited && r->kill == KILL_NONE) {
        snprintf(r->stop_why, sizeof(r->stop_why), "%s", why);
        runner_stop(r, KILL_CANCEL);
        return true;
    }
    return workers_stop(s, id, why) || webhook_cancel(s, id, why);
}

bool
waits_stop_running(server *s, int64_t id, job_row *rowp)
{
    runner *r = runner_find(s, id);
    job_row row;
    if (r != NULL && r->state == RUN_EXECUTING && !r->exited && r->kill == KILL_NONE) {
        row = r->a.job;
        runner_stop(r, KILL_CANCEL);
    } else if (workers_cancel(s, id, &row)) {
        /* its lease ends; the record follows */
    } else {
        const job_row *hooked = webhook_stop(s, id, KILL_CANCEL);
        if (hooked == NULL) {
            return false;
        }
        row = *hooked;
    }
    if (rowp != NULL) {
        *rowp = row;
    }
    return true;
}

bool
waits_cancel_running(call *c)
{
    job_row row;
    if (!waits_stop_running(c->srv, c->req.ids[0], &row)) {
        return false;
    }
    wait_register(c, &row, 1, true);
    return true;
}

/* exec_wait_answer: the transaction that answers a wait with cancel_pending: reads every job
 * again and cancels those that have neither ended nor started, with the reason; running ones
 * are stopped by done_wait_answer. The loop decided which job answers the wait (the order in
 * which the outcomes committed); this transaction commits the cancels of that decision before
 * any claim queued after the winner's outcome (writer_push_first), so a loser that was not
 * running when the winner's end committed never starts. Work thread. */
static int
exec_wait_answer(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    char why[64];
    snprintf(why, sizeof(why), "lost a race to job %lld", (long long)c->wait_first);
    for (size_t i = 0; i < c->nrows; i++) {
        job_row_clear(&c->rows[i]);
    }
    for (size_t i = 0; i < c->req.nids; i++) {
        int64_t id = c->req.ids[i];
        int err = store_get(st, id, &c->rows[i]);
        if (err != JOBQ_OK) {
            return err;
        }
        c->states[i] = c->rows[i].state;
        if (queue_job_ended(c->states[i]) || c->states[i] == JOBQ_RUNNING) {
            continue;
        }
        job_row_clear(&c->rows[i]);
        int old;
        if ((err = lifecycle_cancel_why(st, id, now_ms, false, why, &c->rows[i], &old)) !=
            JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_wait_answer(wop *op)
{
    call *c = container_of(op, call, op);
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&s->w));
        return;
    }
    char why[64];
    snprintf(why, sizeof(why), "lost a race to job %lld", (long long)c->wait_first);
    json_t *cancelled = json_array();
    json_t *jobs = json_array();
    for (size_t i = 0; i < c->req.nids; i++) {
        job_row *row = &c->rows[i];
        if (!queue_job_ended(c->states[i]) && row->state == JOBQ_CANCELLED) {
            log_info("job_cancelled", "job=%lld queue=%s reason=lost_race winner=%lld",
                     (long long)row->id, row->queue, (long long)c->wait_first);
            json_array_append_new(cancelled, json_integer(row->id));
            qstate *q = queue_add(s, row->queue);
            if (q != NULL) {
                waits_job_finished(s, q, row, c->states[i]); /* counts and waiters */
            }
        } else if (row->state == JOBQ_RUNNING && wait_stop_running(s, row->id, why)) {
            log_info("job_cancelling", "job=%lld queue=%s reason=lost_race winner=%lld",
                     (long long)row->id, row->queue, (long long)c->wait_first);
            json_array_append_new(cancelled, json_integer(row->id));
        }
        json_array_append_new(jobs, job_json(row));
    }
    wait_answer(c, jobs, c->states, cancelled);
}

/* wait_answer_pending: a wait whose condition is met, with cancel_pending and jobs still
 * pending, is answered by one transaction that also cancels them. false (nothing started)
 * when there is nothing to cancel or nobody waits for the reply any more: a client that left
 * cancels nothing. */
static bool
wait_answer_pending(call *c, const int *states)
{
    if (!c->req.cancel_pending || c->wait_first == 0 || hold_gone(c) || c->nrows != c->req.nids ||
        c->rows == NULL) {
        return false;
    }
    bool pending = false;
    for (size_t i = 0; i < c->req.nids; i++) {
        pending = pending || !queue_job_ended(states[i]);
    }
    if (!pending) {
        return false;
    }
    int *st = malloc(c->req.nids * sizeof(*st));
    if (st == NULL) {
        return false;
    }
    free(c->states);
    c->states = st;
    c->op.exec = exec_wait_answer;
    c->op.done = done_wait_answer;
    c->op.writes = true;
    c->op.relaxed = false; /* an operator's intent: cancels */
    /* Ahead of the ops already queued: a claim queued before the decision finds the losers
     * cancelled, so a loser not started by the commit that ended the winner never starts. */
    writer_push_first(&c->srv->w, &c->op);
    return true;
}

/* waiter_finish: replies (or starts the answer's transaction) and frees. */
static void
waiter_finish(server *s, waiter *w)
{
    call *c = w->c;
    bool cancel = w->cancel;
    json_t *jobs = w->jobs;
    w->jobs = NULL;
    c->wait_first = w->first;
    hold_stop(c);
    waiter_free(s, w);
    if (cancel) {
        json_t *job = json_incref(json_array_get(jobs, 0));
        json_decref(jobs);
        const char *st = json_string_value(json_object_get(job, "state"));
        if (st != NULL && strcmp(st, "cancelled") == 0) {
            json_t *o = ok_object();
            json_object_set_new(o, "job", job);
            send_json(c, o);
        } else {
            json_decref(job);
            char msg[160];
            snprintf(msg, sizeof(msg), "job %lld finished (%s) before it could be cancelled",
                     (long long)c->req.ids[0], st ? st : "?");
            reply_error(c, "invalid_state", msg);
        }
        return;
    }
    if (c->req.cancel_pending) {
        size_t n = json_array_size(jobs);
        int *states = malloc((n > 0 ? n : 1) * sizeof(*states));
        if (states != NULL) {
            for (size_t i = 0; i < n; i++) {
                states[i] = jobq__state_parse(
                    json_string_value(json_object_get(json_array_get(jobs, i), "state")));
            }
            bool started = n == c->req.nids && wait_answer_pending(c, states);
            free(states);
            if (started) {
                json_decref(jobs);
                return;
            }
        }
    }
    wait_answer(c, jobs, NULL, NULL);
}

static int
exec_wait_read(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    for (size_t i = 0; i < c->req.nids; i++) {
        int err = store_get(st, c->req.ids[i], &c->rows[i]);
        if (err != JOBQ_OK) {
            c->failed_at = i;
            return err;
        }
        c->nrows = i + 1;
    }
    return JOBQ_OK;
}

static void start_wait(call *c);

/* wait_hold_end: the hold of a wait or cancel ended before its jobs did. A wait's time is up:
 * re-read the jobs and reply as they are now. */
static void
wait_hold_end(call *c, hold_end why)
{
    server *s = c->srv;
    waiter_free(s, c->hold_data);
    switch (why) {
    case HOLD_TIMEOUT:
        for (size_t i = 0; i < c->nrows; i++) {
            job_row_clear(&c->rows[i]);
        }
        free(c->rows); /* start_wait allocates them again */
        c->rows = NULL;
        c->nrows = 0;
        c->reread = true;
        start_wait(c);
        return;
    case HOLD_DROPPED:
    case HOLD_SHUTDOWN:
        call_hold_ended(c, why);
        return;
    }
}

/* rows_decided: wait_decided over rows. */
static bool
rows_decided(call *c, const job_row *rows, size_t n, int *states, int64_t *firstp)
{
    int64_t *ids = malloc((n > 0 ? n : 1) * sizeof(*ids));
    int64_t *fin = malloc((n > 0 ? n : 1) * sizeof(*fin));
    bool met = false;
    *firstp = 0;
    if (ids != NULL && fin != NULL) {
        for (size_t i = 0; i < n; i++) {
            ids[i] = rows[i].id;
            fin[i] = rows[i].finished_at_ms;
            states[i] = rows[i].state;
        }
        met = wait_decided(c->req.return_when, ids, states, fin, n, firstp);
    }
    free(ids);
    free(fin);
    return met;
}

void
wait_register(call *c, job_row *rows, size_t n, bool cancel)
{
    server *s = c->srv;
    waiter *w = calloc(1, sizeof(*w));
    int *states = calloc(n > 0 ? n : 1, sizeof(*states));
    if (w == NULL || states == NULL || (w->jobs = json_array()) == NULL) {
        free(w);
        free(states);
        reply_error(c, "internal", "out of memory");
        return;
    }
    w->c = c;
    w->cancel = cancel;
    w->when = cancel ? WAIT_ALL : c->req.return_when;
    c->hold_data = w;
    bool met = !cancel && rows_decided(c, rows, n, states, &w->first);
    free(states);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(w->jobs, job_json(&rows[i]));
        if (queue_job_ended(rows[i].state)) {
            continue;
        }
        wait_link *l = calloc(1, sizeof(*l));
        if (l == NULL) {
            continue; /* out of memory: this job reports as it is now, at the timeout */
        }
        l->id = rows[i].id;
        l->w = w;
        l->index = i;
        l->bucket = bucket_of(s, l->id);
        l->next = s->waits[l->bucket];
        if (l->next != NULL) {
            l->next->prev = l;
        }
        s->waits[l->bucket] = l;
        l->own = w->links;
        w->links = l;
        w->remaining++;
    }
    if (w->remaining == 0 || met) {
        waiter_finish(s, w);
        return;
    }
    if (!hold_start(c, cancel ? HOLD_CANCEL : HOLD_WAIT, cancel ? -1 : c->req.timeout_ms,
                    wait_hold_end)) {
        waiter_free(s, w);
        reply_error(c, "internal", "out of memory");
        return;
    }
    /* rows were read before this registration: an end another node notified meanwhile named
     * no wait here. The jobs are read again now (on a shared store; nothing otherwise). */
    int64_t ids[64];
    size_t nids = 0;
    for (wait_link *l = w->links; l != NULL && s->reread_waits != NULL; l = l->own) {
        ids[nids++] = l->id;
        if (nids == sizeof(ids) / sizeof(ids[0]) || l->own == NULL) {
            s->reread_waits(s, ids, nids);
            nids = 0;
        }
    }
}

static void
done_wait_read(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        char msg[128];
        if (op->err == JOBQ_ENOENT) {
            snprintf(msg, sizeof(msg), "no job with id %lld", (long long)c->req.ids[c->failed_at]);
        } else {
            snprintf(msg, sizeof(msg), "%s", writer_last_error(&c->srv->w));
        }
        reply_err(c, op->err, msg);
        return;
    }
    if (c->req.timeout_ms == 0 || c->reread || hold_gone(c)) {
        /* A poll, or the re-read after a timeout: reply with the jobs as they are (a met
         * condition with cancel_pending cancels the pending ones first). */
        int *states = calloc(c->nrows > 0 ? c->nrows : 1, sizeof(*states));
        if (states == NULL) {
            reply_error(c, "internal", "out of memory");
            return;
        }
        bool met = rows_decided(c, c->rows, c->nrows, states, &c->wait_first);
        if (!met) {
            c->wait_first = 0;
        }
        bool started = met && wait_answer_pending(c, states);
        free(states);
        if (started) {
            return;
        }
        json_t *jobs = json_array();
        for (size_t i = 0; i < c->nrows; i++) {
            json_array_append_new(jobs, job_json(&c->rows[i]));
        }
        wait_answer(c, jobs, NULL, NULL);
        return;
    }
    wait_register(c, c->rows, c->nrows, false);
}

static void
start_wait(call *c)
{
    c->rows = calloc(c->req.nids, sizeof(*c->rows));
    if (c->rows == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    c->op.exec = exec_wait_read;
    c->op.done = done_wait_read;
    c->op.writes = false;
    writer_push(&c->srv->w, &c->op);
}

void
wait_jobs(call *c)
{
    start_wait(c);
}

size_t
waits_ids(server *s, int64_t *ids, size_t max)
{
    size_t n = 0;
    for (size_t b = 0; b < s->nbuckets && n < max; b++) {
        for (wait_link *l = s->waits[b]; l != NULL && n < max; l = l->next) {
            if (l->id != 0) {
                ids[n++] = l->id;
            }
        }
    }
    return n;
}

bool
waits_named(server *s, int64_t id)
{
    for (wait_link *l = s->waits[bucket_of(s, id)]; l != NULL; l = l->next) {
        if (l->id == id) {
            return true;
        }
    }
    return false;
}

void
waits_job_finished(server *s, qstate *q, const job_row *row, int old_state)
{
    queue_count_move(q, old_state, row->state);
    if (row->state == JOBQ_RETRYING) {
        sched_note_due(s, row->run_at_ms);
    }
    if (queue_job_ended(row->state)) {
        sched_sweep_soon(s, q, row->state);
        progress_logs_changed(s, row->id); /* a `logs -f` of the job ends */
        waiter *done = NULL;
        for (wait_link *l = s->waits[bucket_of(s, row->id)]; l != NULL; l = l->next) {
            if (l->id == row->id) {
                waiter *w = l->w;
                json_array_set_new(w->jobs, l->index, job_json(row));
                l->id = 0; /* matched: a job ends once */
                w->remaining--;
                if (!w->answering && wait_met(w->when, row->state, w->remaining)) {
                    w->answering = true;
                    w->first = w->when != WAIT_ALL ? row->id : 0;
                    w->next_done = done;
                    done = w;
                }
            }
        }
        /* Answered once the bucket is walked: each answer frees its own entries only. A wait
         * with cancel_pending queues its transaction here, ahead of any queued claim and of
         * the one the dispatch below may queue: a ready loser is cancelled before a claim. */
        while (done != NULL) {
            waiter *w = done;
            done = w->next_done;
            waiter_finish(s, w);
        }
    }
    sched_dispatch(s, q);
    server_poke_drain(s);
}

static int
waits_init(server *s, char *err, size_t errlen)
{
    s->nbuckets = 1024;
    s->waits = calloc(s->nbuckets, sizeof(*s->waits));
    if (s->waits == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* waits_close: drained: the waits and cancels still held are answered shutting_down. */
static void
waits_close(server *s)
{
    hold_shutdown(s, HOLD_WAIT);
    hold_shutdown(s, HOLD_CANCEL);
}

static void
waits_free(server *s)
{
    free(s->waits);
    s->waits = NULL;
}

const server_part waits_part = {
    .name = "waits", .init = waits_init, .close = waits_close, .free = waits_free};
