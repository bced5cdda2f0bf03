/* loopq.h: the one way work crosses from another thread (nng's callbacks) into the loop: a
 * FIFO of items under a mutex and one uv_async_t that drains it on the loop, oldest first.
 *
 * Threads and ownership:
 *   - loopq_open and loopq_close run on the loop thread; the drain callback runs there too.
 *   - loopq_push may be called from any thread, the loop's included. A push that returns true
 *     hands the item to the queue: it comes back exactly once, either to the drain callback
 *     (in push order per pushing thread: one FIFO for all) or, if the queue closes first, to
 *     the drop callback given to loopq_close. A push that returns false (the queue is closing)
 *     leaves the item with the caller.
 *   - The queue owns no item memory: an item is a loopq_node embedded in the caller's struct,
 *     reached with container_of, and must stay valid until it comes back.
 *   - uv_async_send coalesces: one drain serves every item pushed before it took the list.
 * Model: libuv's uv__work_done (src/threadpool.c), which drains its completed work the same
 * way. */
#ifndef JOBQD_LOOPQ_H
#define JOBQD_LOOPQ_H

#include <stdbool.h>
#include <uv.h>

/** loopq_node: the link of one queued item, embedded in the item. */
typedef struct loopq_node {
    struct loopq_node *next;
} loopq_node;

typedef struct loopq loopq;

/** loopq_cb: an item back on the loop thread; arg is loopq_open's. The callback owns the item
 *  and may push to the queue or close it (the items still to serve then go to the drop
 *  callback). */
typedef void (*loopq_cb)(void *arg, loopq_node *n);

/** loopq_open: a queue on loop whose items are served by cb(arg, item) on the loop thread.
 *  Returns 0 and *qp (owned; loopq_close frees it), or a negative libuv error. Loop thread. */
int loopq_open(loopq **qp, uv_loop_t *loop, loopq_cb cb, void *arg);

/** loopq_push: queues n (any thread) and wakes the loop. Returns true (the item is the
 *  queue's until it comes back to cb or to the drop callback), or false when the queue is
 *  closing (the item stays the caller's). */
bool loopq_push(loopq *q, loopq_node *n);

/** loopq_close: refuses further pushes, hands every item not yet served to drop(arg, item) in
 *  FIFO order on this thread (NULL drop: no item is touched, so they may be freed already by
 *  their owner), and closes the async handle; the queue's memory is freed in its close
 *  callback, at the loop's next turn. Threads that may still push must be stopped by then (a
 *  push in between is refused). Accepts NULL. Loop thread. */
void loopq_close(loopq *q, loopq_cb drop);

#endif
