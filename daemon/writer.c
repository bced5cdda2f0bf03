/* writer.c: group commit on libuv's thread pool: at most one transaction in flight; ops that
 * arrive meanwhile form the next one. Replies are sent only after COMMIT returned. */
#include "writer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void kick(writer *w);

void
writer_init(writer *w, uv_loop_t *loop, store *st)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->st = st;
    w->max_batch = 4096;
}

bool
writer_idle(const writer *w)
{
    return !w->busy && w->pending == NULL;
}

const char *
writer_last_error(const writer *w)
{
    return w->commit_msg;
}

void
writer_push(writer *w, wop *op)
{
    op->next = NULL;
    op->err = JOBQ_OK;
    op->joined = false;
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
    }
}

/* work_cb: the work thread. One transaction; one savepoint per op. */
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
    store_set_sync(w->st, sync);
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
        if ((op->err = store_savepoint(w->st)) != JOBQ_OK) {
            continue;
        }
        size_t mark = store_effects_mark(w->st);
        op->err = op->exec(w->st, op, now);
        if (op->err != JOBQ_OK) {
            store_effects_undo(w->st, mark);
        }
        if (op->writes && (op->err == JOBQ_EFULL || op->err == JOBQ_ESTORE)) {
            w->op_store_err = op->err;
            snprintf(w->commit_msg, sizeof(w->commit_msg), "%s", store_errmsg(w->st));
        }
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

static void
after_work_cb(uv_work_t *req, int status)
{
    writer *w = container_of(req, writer, work);
    wop *done = w->running;
    w->running = NULL;
    w->stats.batches++;
    hist_observe(&w->stats.commit_hist, HIST_SECONDS, w->stats.last_commit_us / 1e6);
    hist_observe(&w->stats.batch_hist, HIST_SIZE, (double)w->stats.last_batch);
    bool wrote = false;
    for (wop *op = done; op != NULL; op = op->next) {
        wrote = wrote || op->writes;
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
    } else if (w->effects_cb != NULL) {
        w->effects_cb(w->effects_arg, effects, neffects);
    } else {
        store_effects_free(effects, neffects);
    }
    while (done != NULL) {
        wop *next = done->next;
        if (status != 0) {
            done->err = JOBQ_EINTERNAL;
        }
        done->done(done);
        done = next;
    }
    /* Busy until every op of the batch is done: a done callback that ends a drain (the last
     * runner recorded) must not find the writer idle and close the intake while later ops of
     * the same batch still have replies to send. Ops pushed meanwhile start below. */
    w->busy = false;
    kick(w);
    if (!w->busy && w->idle_cb != NULL) {
        w->idle_cb(w->idle_arg);
    }
}

/* kick: starts a batch with what is pending, unless one is running. */
static void
kick(writer *w)
{
    if (w->busy || w->pending == NULL) {
        return;
    }
    size_t n = 1;
    wop *last = w->pending;
    while (last->next != NULL && (n < w->max_batch || last->joined)) {
        last = last->next;
        n++;
    }
    w->running = w->pending;
    w->pending = last->next;
    if (w->pending == NULL) {
        w->pending_tail = NULL;
    }
    last->next = NULL;
    w->busy = true;
    w->stats.ops += n;
    w->stats.last_batch = n;
    int rc = uv_queue_work(w->loop, &w->work, work_cb, after_work_cb);
    if (rc != 0) {
        /* Cannot happen with a live loop; fail the batch rather than lose it silently. */
        log_error("store_queue_failed", "err=%s", uv_strerror(rc));
        after_work_cb(&w->work, rc);
    }
}
