/* loopq.c: a FIFO of items pushed from any thread and served on the loop through one
 * uv_async_t; see loopq.h for threads and ownership. */
#include "loopq.h"

#include <stdlib.h>

struct loopq {
    uv_async_t async;
    uv_mutex_t mtx;
    loopq_node *head; /* under mtx: the oldest item, NULL when empty */
    loopq_node *tail; /* under mtx: the newest item */
    bool closing;     /* under mtx: pushes are refused */
    loopq_cb cb;
    void *arg;
    loopq_cb drop;       /* loop thread: set by loopq_close */
    loopq_node *batch;   /* loop thread: the items async_cb took and has not served yet */
};

/* take_all: the whole list, oldest first, leaving the queue empty. */
static loopq_node *
take_all(loopq *q)
{
    uv_mutex_lock(&q->mtx);
    loopq_node *list = q->head;
    q->head = q->tail = NULL;
    uv_mutex_unlock(&q->mtx);
    return list;
}

/* drop_all: hands list to the drop callback, oldest first; without one, touches no item (they
 * may be freed already). */
static void
drop_all(loopq *q, loopq_node *list)
{
    if (q->drop == NULL) {
        return;
    }
    while (list != NULL) {
        loopq_node *next = list->next;
        q->drop(q->arg, list);
        list = next;
    }
}

/* async_cb: the loop. Serves every item queued so far, oldest first. Items a callback
 * pushes meanwhile wait for the next turn (the async fires again); if a callback closes the
 * queue, loopq_close hands the rest of the batch to the drop callback. */
static void
async_cb(uv_async_t *h)
{
    loopq *q = h->data;
    q->batch = take_all(q);
    while (q->batch != NULL) {
        loopq_node *n = q->batch;
        q->batch = n->next;
        n->next = NULL;
        q->cb(q->arg, n);
    }
}

int
loopq_open(loopq **qp, uv_loop_t *loop, loopq_cb cb, void *arg)
{
    loopq *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return UV_ENOMEM;
    }
    int rv = uv_async_init(loop, &q->async, async_cb);
    if (rv != 0) {
        free(q);
        return rv;
    }
    uv_mutex_init(&q->mtx);
    q->async.data = q;
    q->cb = cb;
    q->arg = arg;
    *qp = q;
    return 0;
}

bool
loopq_push(loopq *q, loopq_node *n)
{
    n->next = NULL;
    uv_mutex_lock(&q->mtx);
    if (q->closing) {
        uv_mutex_unlock(&q->mtx);
        return false;
    }
    if (q->tail != NULL) {
        q->tail->next = n;
    } else {
        q->head = n;
    }
    q->tail = n;
    /* Under the lock, as uv__work_done's producers do: once loopq_close took the lock, no
     * push is still touching the handle it closes. */
    uv_async_send(&q->async);
    uv_mutex_unlock(&q->mtx);
    return true;
}

static void
closed_cb(uv_handle_t *h)
{
    loopq *q = h->data;
    uv_mutex_destroy(&q->mtx);
    free(q);
}

void
loopq_close(loopq *q, loopq_cb drop)
{
    if (q == NULL) {
        return;
    }
    uv_mutex_lock(&q->mtx);
    q->closing = true;
    uv_mutex_unlock(&q->mtx);
    q->drop = drop;
    loopq_node *batch = q->batch; /* older than anything still queued */
    q->batch = NULL;
    drop_all(q, batch);
    drop_all(q, take_all(q));
    uv_close((uv_handle_t *)&q->async, closed_cb);
}
