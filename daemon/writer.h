/* writer.h: group commit. Operations gather on the loop; one at a time, a batch of them runs
 * off the loop in one transaction (one fsync), and each completes back on the loop. */
#ifndef JOBQD_WRITER_H
#define JOBQD_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"
#include "store.h"

typedef struct wop wop;

/** One store operation. The owner embeds it and reaches its struct with container_of. */
struct wop {
    wop *next;
    /** exec: runs on the work thread inside its own savepoint; returns JOBQ_OK or an error
     *  (then the savepoint is rolled back: the op changed nothing). now_ms is the batch's
     *  wall-clock time. Must not touch loop state. */
    int (*exec)(store *st, wop *op, int64_t now_ms);
    /** done: runs on the loop thread after the batch committed, or failed (see err). */
    void (*done)(wop *op);
    bool writes; /* read-only ops keep their result when the commit fails */
    /** relaxed: a write that may ride on a later fsync (claims, outcomes, lease expiries,
     *  promotion, retention): a power cut may undo it, and then the job runs again, which
     *  at-least-once allows. A batch of relaxed writes only commits without an fsync; a
     *  batch with any other write fsyncs, covering the earlier ones too. */
    bool relaxed;
    bool joined; /* kept in the same batch as the op after it (writer_push_group) */
    int err;     /* set before done: the exec result, or the commit's error for writers */
};

typedef struct writer_stats {
    uint64_t batches;       /* transactions committed or failed */
    uint64_t ops;           /* operations run */
    uint64_t failures;      /* failed commits */
    uint64_t synced;        /* batches that wrote and whose commit fsynced */
    uint64_t unsynced;      /* batches that wrote only relaxed ops: no fsync of their own */
    int64_t last_commit_us; /* duration of the last batch, begin to commit */
    size_t last_batch;      /* ops in the last batch */
    hist commit_hist;       /* seconds per transaction, begin to commit */
    hist batch_hist;        /* ops per transaction */
    bool write_failing;     /* the last batch that wrote failed in the store */
} writer_stats;

typedef struct writer {
    uv_loop_t *loop;
    store *st;
    uv_work_t work;
    bool busy;    /* a batch is on the work thread, or its ops are being completed */
    wop *pending; /* FIFO of ops waiting for the next batch */
    wop *pending_tail;
    wop *running;     /* the batch on the work thread */
    int commit_err;   /* of the running batch */
    int op_store_err; /* a writing op of the running batch failed in the store (full, I/O) */
    bool synced;      /* the running batch's commit fsyncs (it holds a write not relaxed) */
    char commit_msg[256];
    size_t max_batch; /* ops per transaction */
    writer_stats stats;
    void (*idle_cb)(void *arg); /* optional: called when a batch ends with nothing pending */
    void *idle_arg;
    /** effects_cb: the committed batch's store effects (see store.h), taken over by the
     *  callee, before the ops' done callbacks run. NULL: they are dropped. */
    void (*effects_cb)(void *arg, store_effect *e, size_t n);
    void *effects_arg;
    store_effect *effects; /* of the running batch, once committed */
    size_t neffects;
} writer;

/** writer_init: the writer uses st only from its work thread from now on. Loop thread. */
void writer_init(writer *w, uv_loop_t *loop, store *st);

/** writer_push: queues op; it runs in the next batch. Loop thread only. */
void writer_push(writer *w, wop *op);

/** writer_push_first: queues op ahead of every op waiting for the next batch: it runs first
 *  in the next batch (the batch running now, if any, is not touched). For a decision that
 *  must commit before work already queued could act on what it decided (a wait answered
 *  with cancel_pending cancels its losers before a queued claim can take one). Loop thread
 *  only. */
void writer_push_first(writer *w, wop *op);

/** writer_push_group: queues the ops linked from first through their next (NULL-terminated)
 *  to run in order in one batch (one transaction), each in its own savepoint as writer_push's:
 *  a failed op fails alone. Loop thread only. */
void writer_push_group(writer *w, wop *first);

/** writer_idle: nothing queued or running. */
bool writer_idle(const writer *w);

/** writer_last_error: the message of the last failed commit or store-level op failure
 *  ("" if none). */
const char *writer_last_error(const writer *w);

#endif
