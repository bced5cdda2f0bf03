/* writer.c: group commit on libuv's thread pool: at most one transaction in flight; ops that
 * arrive meanwhile form the next one. Replies are sent only after COMMIT returned, and those of
 * ops that must not be lost only after an fsync covering it (see "The pipeline" below). */
#include "writer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void kick(writer *w);
static void cover(writer *w);

/* quick: whether op's reply goes out at its commit (a read or a relaxed write), not after a
 * sync. */
static bool
quick(const wop *op)
{
    return !op->writes || op->relaxed;
}

void
writer_init(writer *w, uv_loop_t *loop, store *st)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->st = st;
    /* A batch is one transaction with a savepoint per op: no more than the store holds well
     * (the ops of a group, kept together, may pass it). */
    w->max_batch = st != NULL && st->max_savepoints > 0 ? st->max_savepoints : 4096;
    w->patient = true;
}

bool
writer_idle(const writer *w)
{
    return !w->busy && w->pending == NULL && !w->sync_busy && w->wanted <= w->released;
}

const char *
writer_last_error(const writer *w)
{
    return w->failing_msg != NULL ? w->failing_msg : w->commit_msg;
}

void
writer_fail_pending(writer *w, int err, const char *msg)
{
    wop *op = w->pending;
    w->pending = w->pending_tail = NULL;
    w->pending_quick = 0;
    w->failing_msg = msg;
    while (op != NULL) {
        wop *next = op->next; /* done may free op, or push it again */
        op->err = err;
        op->done(op);
        op = next;
    }
    w->failing_msg = NULL;
}

void
writer_push(writer *w, wop *op)
{
    op->next = NULL;
    op->err = JOBQ_OK;
    op->joined = false;
    w->pending_quick += quick(op);
    if (w->pending_tail != NULL) {
        w->pending_tail->next = op;
    } else {
        w->pending = op;
    }
    w->pending_tail = op;
    kick(w);
}

void
writer_push_first(writer *w, wop *op)
{
    op->err = JOBQ_OK;
    op->joined = false;
    w->pending_quick += quick(op);
    op->next = w->pending;
    w->pending = op;
    if (w->pending_tail == NULL) {
        w->pending_tail = op;
    }
    kick(w);
}

void
writer_push_group(writer *w, wop *first)
{
    if (first == NULL) {
        return;
    }
    wop *last = first;
    for (wop *op = first; op != NULL; op = op->next) {
        op->err = JOBQ_OK;
        op->joined = op->next != NULL;
        w->pending_quick += quick(op);
        last = op;
    }
    if (w->pending_tail != NULL) {
        w->pending_tail->next = first;
    } else {
        w->pending = first;
    }
    w->pending_tail = last;
    kick(w);
}

static int64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* undo_before: SQLite rolled the whole transaction back (it does on SQLITE_FULL, IOERR,
 * NOMEM): the writes of every op before `stop` are gone, so they fail too. */
static void
undo_before(writer *w, wop *stop, int err)
{
    for (wop *op = w->running; op != stop; op = op->next) {
        if (op->writes && op->err == JOBQ_OK) {
            op->err = err;
        }
        op->effects_to = 0; /* the caller forgets every effect recorded so far */
    }
}

/* note_store_err: op failed in the store itself (full, I/O, or the connection lost, which
 * rolled the whole transaction back: the ops before it did nothing either and may be retried
 * as it may), not for a reason of its own: the ops that a rollback of the transaction undoes
 * fail with its error and the store's message. always: whatever the error (a savepoint). */
static void
note_store_err(writer *w, const wop *op, bool always)
{
    if (always || (op->writes && (op->err == JOBQ_EFULL || op->err == JOBQ_ESTORE)) ||
        op->err == JOBQ_EUNAVAIL) {
        w->op_store_err = op->err;
        snprintf(w->commit_msg, sizeof(w->commit_msg), "%s", store_errmsg(w->st));
    }
}

/* many_run: how many ops from op on share op's exec_many (at most 64; 1 when none does), the
 * last of them into *lastp. */
static size_t
many_run(wop *op, wop **lastp)
{
    wop *last = op;
    size_t n = 1;
    while (op->exec_many != NULL && last->next != NULL && n < 64 &&
           last->next->exec_many == op->exec_many) {
        last = last->next;
        n++;
    }
    *lastp = last;
    return n;
}

/* run_many: ops op..last (n of them) with their exec_many, in one savepoint: JOBQ_OK, or an
 * error after which nothing of them is left (undone with the savepoint, or with the whole
 * transaction when the store lost it). */
static int
run_many(writer *w, wop *op, wop *last, size_t n, int64_t now)
{
    int err = store_savepoint(w->st);
    if (err != JOBQ_OK) {
        return err;
    }
    size_t mark = store_effects_mark(w->st);
    err = op->exec_many(w->st, op, n, now);
    if (err == JOBQ_OK && store_in_transaction(w->st)) {
        store_release(w->st);
        size_t to = store_effects_mark(w->st);
        for (wop *o = op; o != last->next; o = o->next) {
            o->effects_to = to;
        }
        return JOBQ_OK;
    }
    store_effects_undo(w->st, mark);
    if (store_in_transaction(w->st)) {
        store_rollback_savepoint(w->st);
    }
    return err != JOBQ_OK ? err : JOBQ_ESTORE;
}

/* work_cb: the work thread. One transaction; one savepoint per op (or per run of ops that
 * share an exec_many). */
static void
work_cb(uv_work_t *req)
{
    writer *w = container_of(req, writer, work);
    int64_t t0 = mono_us();
    int64_t now = jobq__now_ms();
    w->commit_err = JOBQ_OK;
    w->op_store_err = JOBQ_OK;
    bool open = false;
    store_effects_undo(w->st, 0);
    bool sync = false;
    for (wop *op = w->running; op != NULL && !sync; op = op->next) {
        sync = op->writes && !op->relaxed;
    }
    w->synced = sync;
    store_set_sync(w->st, sync && !w->pipelined); /* pipelined: a sync apart covers it */
    for (wop *op = w->running; op != NULL; op = op->next) {
        op->effects_to = 0;
    }
    wop *single_last = NULL; /* ops up to it run one by one (their exec_many failed) */
    for (wop *op = w->running; op != NULL; op = op->next) {
        if (open && !store_in_transaction(w->st)) {
            undo_before(w, op, w->op_store_err != JOBQ_OK ? w->op_store_err : JOBQ_ESTORE);
            store_effects_undo(w->st, 0);
            open = false;
        }
        if (!open) {
            int err = store_begin(w->st);
            if (err != JOBQ_OK) {
                snprintf(w->commit_msg, sizeof(w->commit_msg), "begin: %s", store_errmsg(w->st));
                w->commit_err = err;
                for (wop *rest = op; rest != NULL; rest = rest->next) {
                    rest->err = err;
                }
                break;
            }
            open = true;
        }
        wop *last = op;
        size_t n = single_last == NULL ? many_run(op, &last) : 1;
        if (n > 1) {
            int err = run_many(w, op, last, n, now);
            if (err == JOBQ_OK) {
                op = last;
                continue;
            }
            if (!store_in_transaction(w->st)) {
                for (wop *o = op; o != last->next; o = o->next) {
                    o->err = err;
                    o->effects_to = 0;
                }
                note_store_err(w, op, false);
                op = last; /* the lost transaction is found at the top of the next turn */
                continue;
            }
            single_last = last; /* again one by one, each in its own savepoint */
        }
        if (op == single_last) {
            single_last = NULL;
        }
        if ((op->err = store_savepoint(w->st)) != JOBQ_OK) {
            note_store_err(w, op, true);
            continue;
        }
        size_t mark = store_effects_mark(w->st);
        op->err = op->exec(w->st, op, now);
        if (op->err != JOBQ_OK) {
            store_effects_undo(w->st, mark);
        }
        op->effects_to = store_effects_mark(w->st);
        note_store_err(w, op, false);
        if (!store_in_transaction(w->st)) {
            continue; /* rolled back whole: found at the top of the next turn or below */
        }
        if (op->err == JOBQ_OK) {
            store_release(w->st);
        } else {
            store_rollback_savepoint(w->st);
        }
    }
    if (open && !store_in_transaction(w->st)) {
        undo_before(w, NULL, w->op_store_err != JOBQ_OK ? w->op_store_err : JOBQ_ESTORE);
        store_effects_undo(w->st, 0);
    } else if (open) {
        int err = store_commit(w->st);
        if (err != JOBQ_OK) {
            snprintf(w->commit_msg, sizeof(w->commit_msg), "commit: %s", store_errmsg(w->st));
            store_rollback(w->st);
            undo_before(w, NULL, err);
            store_effects_undo(w->st, 0);
            w->commit_err = err;
        }
    }
    w->effects = store_effects_take(w->st, &w->neffects);
    w->stats.last_commit_us = mono_us() - t0;
}

/* ---- The pipeline ----
 * With a store whose commits sync apart (SQLite, durability full) and the hold hooks set, a
 * batch commits without an fsync and completes at once: effects and done callbacks run on the
 * loop in batch order, exactly as if the commit had synced, so the loop's counts and states
 * move in the order the store changed. What must not be lost is only what a client is told:
 * the replies made while an op that is not relaxed completes (its done callback and its
 * effects) are held (hold_cb) until a sync that started after its commit returned. One sync is
 * in flight at a time, on another thread of the pool, while the next batch executes; batches
 * committed meanwhile are covered by the next sync (coalesced). Relaxed ops and reads reply at
 * commit. A job submitted in batch N may thus be claimed and run before its submit is durable:
 * a power cut then undoes the submit, the claim and the outcome together (the log is a
 * sequence), and the producer, never answered, submits again, which at-least-once allows.
 *
 * A failed sync answers the ops it covered with an error (their replies replaced), and the
 * writer does not trust a later sync of the same log (a kernel may drop the pages it could
 * not write and report the next fsync clean): the next cover is a checkpoint on the writer's
 * thread, which copies the log into the database and syncs both. */

/* occupancy: adds the time since the last change to the pipeline's counters; call it before
 * executing, checkpointing or sync_busy change. */
static void
occupancy(writer *w)
{
    uint64_t now = uv_hrtime();
    uint64_t dt = w->occupancy_ns != 0 && now > w->occupancy_ns ? now - w->occupancy_ns : 0;
    w->occupancy_ns = now;
    bool exec = w->executing && !w->checkpointing;
    bool sync = w->sync_busy || (w->executing && w->checkpointing);
    w->stats.executing_ns += exec ? dt : 0;
    w->stats.syncing_ns += sync ? dt : 0;
    w->stats.both_ns += exec && sync ? dt : 0;
}

/* durable: whether op's replies wait for a sync (decided before its done may free it). */
static bool
durable(const writer *w, const wop *op)
{
    return w->pipelined && op->writes && !op->relaxed && op->err == JOBQ_OK;
}

/* release: the replies held for batches up to upto go out, or with err their replacement: an
 * error saying why the commit is not known to be durable. */
static void
release(writer *w, uint64_t upto, int err, const char *why)
{
    if (upto <= w->released) {
        return;
    }
    w->released = upto;
    if (err == JOBQ_OK) {
        w->release_cb(w->hold_arg, upto, NULL, 0);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof(msg),
             "committed, but the fsync that makes it durable failed (%s): it may be lost in a "
             "power cut; send it again to be sure (a submit with a key is not stored twice)",
             why);
    json_t *o =
        json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code",
                  jobq__err_code(err == JOBQ_EFULL ? JOBQ_EFULL : JOBQ_ESTORE), "message", msg);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    static const char oom[] =
        "{\"ok\":false,\"error\":{\"code\":\"store_error\",\"message\":\"committed, but "
        "the fsync that makes it durable failed\"}}";
    if (body != NULL) {
        w->release_cb(w->hold_arg, upto, body, strlen(body));
    } else {
        w->release_cb(w->hold_arg, upto, oom, sizeof(oom) - 1);
    }
    free(body);
}

/* advance: starts what may start: the next batch and the next cover (a sync, or after a
 * failed one a checkpoint, which goes ahead of the batch); the batch first when batch_first
 * (a sync just returned: ops that waited for it go before a new one is in flight). Then tells
 * idle_cb when nothing is left. */
static void
advance(writer *w, bool batch_first)
{
    if (batch_first && !w->recover) {
        kick(w);
        cover(w);
    } else {
        cover(w);
        kick(w);
    }
    if (writer_idle(w) && w->idle_cb != NULL) {
        w->idle_cb(w->idle_arg);
    }
}

/* sync_work_cb: a pool thread other than the writer's, while the next batch may execute. */
static void
sync_work_cb(uv_work_t *req)
{
    writer *w = container_of(req, writer, sync_work);
    int64_t t0 = mono_us();
    w->cover_msg[0] = '\0';
    w->cover_err = store_sync(w->st, w->cover_msg, sizeof(w->cover_msg));
    w->cover_us = mono_us() - t0;
}

/* covered: a sync or a checkpoint ended: the replies it covers go out, or fail. */
static void
covered(writer *w, int status)
{
    int err = status != 0 ? JOBQ_ESTORE : w->cover_err;
    if (status != 0) {
        snprintf(w->cover_msg, sizeof(w->cover_msg), "the sync never ran: %s", uv_strerror(status));
    }
    hist_observe(&w->stats.sync_hist, HIST_SECONDS, w->cover_us / 1e6);
    if (err != JOBQ_OK) {
        w->stats.sync_failures++;
        w->stats.write_failing = true;
        w->recover = true;
        snprintf(w->commit_msg, sizeof(w->commit_msg), "%s", w->cover_msg);
        log_error("store_sync_failed", "err=%s upto=%llu reason=\"%s\"", jobq__err_code(err),
                  (unsigned long long)w->cover_upto, w->cover_msg);
    } else {
        w->recover = false;
    }
    release(w, w->cover_upto, err, w->cover_msg);
}

static void
sync_after_cb(uv_work_t *req, int status)
{
    writer *w = container_of(req, writer, sync_work);
    occupancy(w);
    w->sync_busy = false;
    w->stats.syncs++;
    covered(w, status);
    advance(w, true);
}

/* checkpoint_work_cb: the writer's thread, between batches. */
static void
checkpoint_work_cb(uv_work_t *req)
{
    writer *w = container_of(req, writer, work);
    int64_t t0 = mono_us();
    w->cover_msg[0] = '\0';
    w->cover_err = store_checkpoint(w->st, w->cover_msg, sizeof(w->cover_msg));
    w->cover_us = mono_us() - t0;
}

static void
checkpoint_after_cb(uv_work_t *req, int status)
{
    writer *w = container_of(req, writer, work);
    occupancy(w);
    w->executing = false;
    w->checkpointing = false;
    w->busy = false;
    w->stats.checkpoints++;
    covered(w, status);
    if (w->cover_err == JOBQ_OK && status == 0) {
        log_info("store_sync_recovered", "upto=%llu", (unsigned long long)w->cover_upto);
    }
    advance(w, true);
}

/* cover: starts what makes the batches whose replies are held durable, if nothing does yet:
 * a sync on another thread, or after a failed one a checkpoint on the writer's (which then
 * goes ahead of the next batch). */
static void
cover(writer *w)
{
    if (w->wanted <= w->released || w->sync_busy || (w->busy && w->checkpointing)) {
        return;
    }
    if (w->recover) {
        if (w->busy) {
            return; /* after this batch, which it will cover too */
        }
        occupancy(w);
        w->busy = w->executing = w->checkpointing = true;
        w->cover_upto = w->committed;
        int rc = uv_queue_work(w->loop, &w->work, checkpoint_work_cb, checkpoint_after_cb);
        if (rc != 0) {
            log_error("store_queue_failed", "err=%s", uv_strerror(rc));
            checkpoint_after_cb(&w->work, rc);
        }
        return;
    }
    occupancy(w);
    w->sync_busy = true;
    w->cover_upto = w->committed;
    int rc = uv_queue_work(w->loop, &w->sync_work, sync_work_cb, sync_after_cb);
    if (rc != 0) {
        log_error("store_queue_failed", "err=%s", uv_strerror(rc));
        sync_after_cb(&w->sync_work, rc);
    }
}

/* apply_effects: hands the batch's effects to effects_cb in op order, those of a durable op
 * with its replies held: one call per run of ops held alike, each run's entries in an array
 * of its own (the last run in the batch's array, moved to its front). Takes effects over. */
static void
apply_effects(writer *w, wop *ops, uint64_t seq, store_effect *effects, size_t n)
{
    if (w->effects_cb == NULL) {
        store_effects_free(effects, n);
        return;
    }
    bool any_durable = false;
    for (wop *op = ops; op != NULL && !any_durable; op = op->next) {
        any_durable = durable(w, op);
    }
    if (!any_durable || n == 0) {
        w->effects_cb(w->effects_arg, effects, n);
        return;
    }
    size_t from = 0;
    wop *op = ops;
    while (from < n) {
        bool held = op != NULL && durable(w, op);
        size_t to = from;
        for (; op != NULL && durable(w, op) == held; op = op->next) {
            size_t end = op->effects_to < n ? op->effects_to : n;
            to = end > to ? end : to;
        }
        if (op == NULL) {
            to = n;
        }
        if (to == from) {
            continue; /* the run recorded nothing; op moved on */
        }
        store_effect *part = to < n ? malloc((to - from) * sizeof(*part)) : NULL;
        if (to < n && part == NULL) {
            /* Out of memory: the rest in one call, held if any of it must be. */
            for (wop *rest = op; rest != NULL && !held; rest = rest->next) {
                held = durable(w, rest);
            }
            to = n;
        }
        if (held) {
            w->hold_cb(w->hold_arg, seq);
        }
        if (to < n) {
            memcpy(part, effects + from, (to - from) * sizeof(*part));
            w->effects_cb(w->effects_arg, part, to - from);
        } else {
            memmove(effects, effects + from, (n - from) * sizeof(*effects));
            w->effects_cb(w->effects_arg, effects, n - from);
        }
        if (held) {
            w->hold_cb(w->hold_arg, 0);
        }
        from = to;
    }
}

static void
after_work_cb(uv_work_t *req, int status)
{
    writer *w = container_of(req, writer, work);
    occupancy(w);
    w->executing = false;
    wop *done = w->running;
    w->running = NULL;
    uint64_t seq = w->seq;
    w->committed = seq;
    w->stats.batches++;
    hist_observe(&w->stats.commit_hist, HIST_SECONDS, w->stats.last_commit_us / 1e6);
    hist_observe(&w->stats.batch_hist, HIST_SIZE, (double)w->stats.last_batch);
    bool wrote = false;
    for (wop *op = done; op != NULL; op = op->next) {
        wrote = wrote || op->writes;
        if (status != 0) {
            op->err = JOBQ_EINTERNAL;
        }
    }
    if (wrote && w->synced) {
        w->stats.synced++;
    } else if (wrote) {
        w->stats.unsynced++;
    }
    if (wrote) {
        w->stats.write_failing =
            status != 0 || w->commit_err != JOBQ_OK || w->op_store_err != JOBQ_OK;
    }
    if (status != 0 || w->commit_err != JOBQ_OK) {
        w->stats.failures++;
        log_error("store_commit_failed", "err=%s reason=\"%s\"",
                  jobq__err_code(status != 0 ? JOBQ_EINTERNAL : w->commit_err), w->commit_msg);
    }
    store_effect *effects = w->effects;
    size_t neffects = w->neffects;
    w->effects = NULL;
    w->neffects = 0;
    if (status != 0) {
        store_effects_free(effects, neffects); /* the work never ran */
    } else {
        apply_effects(w, done, seq, effects, neffects);
    }
    while (done != NULL) {
        wop *next = done->next;
        if (durable(w, done)) {
            w->wanted = seq;
            w->hold_cb(w->hold_arg, seq);
            done->done(done);
            w->hold_cb(w->hold_arg, 0);
        } else {
            done->done(done);
        }
        done = next;
    }
    /* Busy until every op of the batch is done: a done callback that ends a drain (the last
     * runner recorded) must not find the writer idle and close the intake while later ops of
     * the same batch still have replies to send. The sync that covers this batch starts
     * first, then ops pushed meanwhile (see kick). */
    w->busy = false;
    advance(w, false);
}

/* kick: starts a batch with what is pending, unless one is running. */
static void
kick(writer *w)
{
    if (w->busy || w->pending == NULL) {
        return;
    }
    if (w->sync_busy && w->pending_quick == 0 && w->patient) {
        /* Only ops whose replies wait for a sync: the one in flight cannot cover them, and
         * the next cannot start before it returns. Executing them now would only split them
         * from the ops that arrive meanwhile into more, smaller transactions (more CPU, more
         * log pages per job); they start when the sync returns, or with the next quick op. */
        return;
    }
    size_t n = 1;
    wop *last = w->pending;
    size_t nquick = quick(last);
    while (last->next != NULL && (n < w->max_batch || last->joined)) {
        last = last->next;
        nquick += quick(last);
        n++;
    }
    w->pending_quick -= nquick;
    w->running = w->pending;
    w->pending = last->next;
    if (w->pending == NULL) {
        w->pending_tail = NULL;
    }
    last->next = NULL;
    occupancy(w);
    w->busy = w->executing = true;
    w->seq++;
    w->pipelined = w->hold_cb != NULL && w->release_cb != NULL && store_sync_apart(w->st);
    w->stats.overlapped += w->sync_busy;
    w->stats.ops += n;
    w->stats.last_batch = n;
    int rc = uv_queue_work(w->loop, &w->work, work_cb, after_work_cb);
    if (rc != 0) {
        /* Cannot happen with a live loop; fail the batch rather than lose it silently. */
        log_error("store_queue_failed", "err=%s", uv_strerror(rc));
        after_work_cb(&w->work, rc);
    }
}
