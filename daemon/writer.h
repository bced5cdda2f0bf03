/* writer.h: group commit. Operations gather on the loop; one at a time, a batch of them runs
 * off the loop in one transaction, and each completes back on the loop. With durability full
 * the commit is pipelined: the fsync that makes a batch durable runs on another thread while
 * the next batch executes, and only the replies of the ops that must not be lost wait for it. */
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
    /** exec_many: optional: runs op and the n - 1 ops after it that have the same exec_many,
     *  in one savepoint, setting each one's err (an op that fails alone must change nothing);
     *  returns JOBQ_OK, or an error after which the writer undoes them all and runs each
     *  with exec instead. At most 64 at once. */
    int (*exec_many)(store *st, wop *op, size_t n, int64_t now_ms);
    /** done: runs on the loop thread after the batch committed, or failed (see err). */
    void (*done)(wop *op);
    bool writes; /* read-only ops keep their result when the commit fails */
    /** relaxed: a write that may ride on a later fsync (claims, outcomes, lease expiries,
     *  promotion, retention): a power cut may undo it, and then the job runs again, which
     *  at-least-once allows. A batch of relaxed writes only commits without an fsync; a
     *  batch with any other write fsyncs, covering the earlier ones too. */
    bool relaxed;
    bool joined;       /* kept in the same batch as the op after it (writer_push_group) */
    int err;           /* set before done: the exec result, or the commit's error for writers */
    size_t effects_to; /* the batch's effects before this index are this op's or earlier ones' */
};

typedef struct writer_stats {
    uint64_t batches;       /* transactions committed or failed */
    uint64_t ops;           /* operations run */
    uint64_t failures;      /* failed commits */
    uint64_t synced;        /* batches that wrote and waited for an fsync (a write not relaxed) */
    uint64_t unsynced;      /* batches that wrote only relaxed ops: no fsync of their own */
    int64_t last_commit_us; /* duration of the last batch, begin to commit */
    size_t last_batch;      /* ops in the last batch */
    hist commit_hist;       /* seconds per transaction, begin to commit */
    hist batch_hist;        /* ops per transaction */
    bool write_failing;     /* the last batch that wrote, or the last sync, failed in the store */
    /* The pipeline (durability full): */
    uint64_t syncs;         /* syncs (store_sync) done, each covering every earlier commit */
    uint64_t sync_failures; /* of them failed (their durable ops answered with an error) */
    uint64_t checkpoints;   /* checkpoints run to recover from a failed sync */
    uint64_t overlapped;    /* batches started while a sync was in flight */
    uint64_t executing_ns;  /* time with a batch on the writer's thread */
    uint64_t syncing_ns;    /* time with a sync (or a recovery checkpoint) in flight */
    uint64_t both_ns;       /* time with both */
    hist sync_hist;         /* seconds per sync */
} writer_stats;

typedef struct writer {
    uv_loop_t *loop;
    store *st;
    uv_work_t work;     /* the writer's thread: a batch, or a checkpoint after a failed sync */
    bool busy;          /* a batch is on the work thread, or its ops are being completed */
    bool executing;     /* the work is on the thread (not yet back on the loop) */
    bool checkpointing; /* the work is a checkpoint, not a batch */
    wop *pending;       /* FIFO of ops waiting for the next batch */
    wop *pending_tail;
    size_t pending_quick; /* pending ops that reply at their commit (reads, relaxed writes) */
    bool patient;     /* while a sync is in flight, ops that all wait for a sync wait to start (so
                         they join the ops that arrive meanwhile); default true */
    wop *running;     /* the batch on the work thread */
    bool pipelined;   /* the running batch commits without an fsync, its durable ops' replies
                         held until a sync covers it */
    int commit_err;   /* of the running batch */
    int op_store_err; /* a writing op of the running batch failed in the store (full, I/O) */
    bool synced;      /* the running batch holds a write not relaxed */
    char commit_msg[1200]; /* the store's message whole: its end may say a commit's outcome is unknown */
    const char *failing_msg; /* while writer_fail_pending completes its ops: their reason */
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
    /** hold_cb, release_cb: how replies wait for their fsync (intake_hold, intake_release).
     *  With both set and a store whose commits sync apart (store_sync_apart), the writer calls
     *  hold_cb(hold_arg, seq) before it applies the effects of, or completes, an op that must
     *  not be lost (a write not relaxed), and hold_cb(hold_arg, 0) after: the replies made in
     *  between are held under seq, the batch's number. release_cb(hold_arg, upto, body, len)
     *  comes once a sync that covers every batch up to upto returned: the replies held under a
     *  number up to upto are sent, in the order they were made, or, when body is not NULL (the
     *  sync failed), each is replaced by body. Unset: every commit fsyncs what it must itself
     *  and nothing is held (as with durability normal). */
    void (*hold_cb)(void *arg, uint64_t seq);
    void (*release_cb)(void *arg, uint64_t upto, const char *body, size_t len);
    void *hold_arg;
    /* The pipeline's sequence, batch numbers from 1, on the loop: */
    uv_work_t sync_work;
    bool sync_busy;      /* a sync is on another thread */
    bool recover;        /* a sync failed: the next cover is a checkpoint, not a sync */
    uint64_t seq;        /* batches started */
    uint64_t committed;  /* the last batch back on the loop */
    uint64_t wanted;     /* the last batch whose durable ops wait for a sync */
    uint64_t released;   /* replies held for batches up to this one were released */
    uint64_t cover_upto; /* the sync (or checkpoint) in flight covers batches up to this */
    int cover_err;       /* its result, and its reason: */
    char cover_msg[256];
    int64_t cover_us;      /* its duration */
    uint64_t occupancy_ns; /* when executing / sync_busy last changed (uv_hrtime) */
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

/** writer_fail_pending: completes every op waiting for the next batch with err (nothing of
 *  them ran) and msg as writer_last_error, at once: for a store that stopped answering, whose
 *  batch in flight would make them wait as long. The batch running is not touched. Loop
 *  thread only. */
void writer_fail_pending(writer *w, int err, const char *msg);

/** writer_idle: nothing queued or running, no sync in flight and no reply held for one. */
bool writer_idle(const writer *w);

/** writer_last_error: the message of the last failed commit or store-level op failure
 *  ("" if none). */
const char *writer_last_error(const writer *w);

#endif
