/* test_loopq.c: the thread-to-loop queue (daemon/loopq.c) on a real libuv loop: many producer
 * threads, each item served once and in its producer's order; items a callback pushes; and
 * closing with items pending, which hands each to the drop callback (ASan and valgrind see a
 * leak or a double free otherwise). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

#include "loopq.h"
#include "server.h" /* container_of */

#define PRODUCERS 8
#define PER_PRODUCER 20000

typedef struct item {
    loopq_node node;
    int producer;
    int seq;
} item;

typedef struct ctx {
    uv_loop_t loop;
    loopq *q;
    int next[PRODUCERS]; /* the next sequence number each producer's items must carry */
    int served;
    int dropped;
    int last;      /* the producer of the item served or dropped last */
    int total;     /* close the queue once this many were served */
    int close_at;  /* serve: close the queue while serving this sequence number (-1: never) */
    int push_at;   /* serve: push one more item while serving this one (-1: never) */
    bool in_order; /* every item came in its producer's order */
} ctx;

static item *
item_new(int producer, int seq)
{
    item *it = malloc(sizeof(*it));
    assert_non_null(it);
    it->producer = producer;
    it->seq = seq;
    return it;
}

/* take: the item of n, checked against its producer's order; returns its sequence number
 * after freeing it. */
static int
take(ctx *c, loopq_node *n)
{
    item *it = container_of(n, item, node);
    int seq = it->seq;
    if (seq != c->next[it->producer]) {
        c->in_order = false;
    }
    c->next[it->producer] = seq + 1;
    c->last = it->producer;
    free(it);
    return seq;
}

/* serve_drop: the drop callback: items must still come in order, after the served ones. */
static void
serve_drop(void *arg, loopq_node *n)
{
    ctx *c = arg;
    (void)take(c, n);
    c->dropped++;
}

/* serve: the drain callback; pushes or closes at the sequence numbers the test set. */
static void
serve(void *arg, loopq_node *n)
{
    ctx *c = arg;
    int seq = take(c, n);
    c->served++;
    if (seq == c->push_at) {
        assert_true(loopq_push(c->q, &item_new(1, 0)->node));
    }
    if (seq == c->close_at || c->served == c->total) {
        loopq_close(c->q, serve_drop);
    }
}

typedef struct producer {
    pthread_t thread;
    loopq *q;
    int id;
    int refused;
} producer;

static void *
produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        item *it = malloc(sizeof(*it));
        if (it == NULL) {
            abort();
        }
        it->producer = p->id;
        it->seq = i;
        if (!loopq_push(p->q, &it->node)) {
            p->refused++;
            free(it);
        }
        if (i % 1000 == 0) {
            sched_yield(); /* let the others interleave */
        }
    }
    return NULL;
}

/* setup: a loop and a queue on it served by serve; the ctx is the state. */
static int
setup(void **state)
{
    ctx *c = calloc(1, sizeof(*c));
    if (c == NULL || uv_loop_init(&c->loop) != 0) {
        free(c);
        return -1;
    }
    c->close_at = -1;
    c->push_at = -1;
    c->in_order = true;
    if (loopq_open(&c->q, &c->loop, serve, c) != 0) {
        return -1;
    }
    *state = c;
    return 0;
}

/* teardown: the queue is closed by now: the loop ends with nothing left open. */
static int
teardown(void **state)
{
    ctx *c = *state;
    int rv = uv_loop_close(&c->loop);
    free(c);
    return rv == 0 ? 0 : -1;
}

/* push_seq: pushes producer 0's items 0 ... n-1 from this thread. */
static void
push_seq(ctx *c, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(loopq_push(c->q, &item_new(0, i)->node));
    }
}

/* Producers on their own threads while the loop drains: every item is served exactly once,
 * each producer's in the order it pushed them. */
static void
test_many_producers_fifo(void **state)
{
    ctx *c = *state;
    c->total = PRODUCERS * PER_PRODUCER;
    producer ps[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = (producer){.q = c->q, .id = i};
        assert_int_equal(pthread_create(&ps[i].thread, NULL, produce, &ps[i]), 0);
    }
    /* The loop runs until the last item closed the queue (its only handle). */
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(ps[i].thread, NULL);
        assert_int_equal(ps[i].refused, 0);
        assert_int_equal(c->next[i], PER_PRODUCER);
    }
    assert_true(c->in_order);
    assert_int_equal(c->served, PRODUCERS * PER_PRODUCER);
    assert_int_equal(c->dropped, 0);
}

/* One thread's items come in push order; an item the callback pushes is served after the
 * ones queued before it. */
static void
test_fifo_and_push_from_callback(void **state)
{
    ctx *c = *state;
    c->total = 11;
    c->push_at = 3;
    push_seq(c, 10);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_true(c->in_order);
    assert_int_equal(c->next[0], 10);
    assert_int_equal(c->next[1], 1);
    assert_int_equal(c->last, 1); /* the pushed one, served last */
    assert_int_equal(c->served, 11);
}

/* Closing with items queued hands each to the drop callback, in order; later pushes are
 * refused and leave the item with the caller. */
static void
test_close_with_items_pending(void **state)
{
    ctx *c = *state;
    push_seq(c, 100);
    loopq_close(c->q, serve_drop);
    assert_int_equal(c->dropped, 100);
    assert_int_equal(c->next[0], 100);
    assert_true(c->in_order);
    item *late = item_new(0, 100);
    assert_false(loopq_push(c->q, &late->node));
    free(late);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0); /* the close callback frees it */
    assert_int_equal(c->served, 0);
}

/* Without a drop callback, closing touches no queued item: their owner may have freed them
 * (ASan and valgrind would report a read of freed memory). */
static void
test_close_without_drop(void **state)
{
    ctx *c = *state;
    item *its[3];
    for (int i = 0; i < 3; i++) {
        its[i] = item_new(0, i);
        assert_true(loopq_push(c->q, &its[i]->node));
    }
    for (int i = 0; i < 3; i++) {
        free(its[i]);
    }
    loopq_close(c->q, NULL);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c->served, 0);
}

/* A callback that closes the queue mid-batch: the rest of the batch, then what was queued
 * after it, go to the drop callback in order; none is served. */
static void
test_close_from_callback(void **state)
{
    ctx *c = *state;
    c->close_at = 4;
    c->push_at = 2; /* queued behind the batch: dropped after the batch's rest */
    push_seq(c, 10);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_true(c->in_order);
    assert_int_equal(c->served, 5);  /* 0 ... 4 */
    assert_int_equal(c->dropped, 6); /* 5 ... 9, then producer 1's item */
    assert_int_equal(c->next[0], 10);
    assert_int_equal(c->next[1], 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_producers_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_push_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_items_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_without_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
