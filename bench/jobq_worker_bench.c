/* jobq_worker_bench.c: jobq-worker-bench, end-to-end throughput of remote workers: producer
 * threads submit N no-op jobs in batches while W jobq_worker_run workers (one client each)
 * fetch and ack them; prints jobs/s from the first submit to the last ack. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobq.h"

#define BATCH 1000
#define MAX_THREADS 256

typedef struct bench {
    const char *url;
    const char *queues[8];
    size_t nqueues;
    long jobs;
    int producers;
    int workers;
    int concurrency;
    _Atomic long submitted; /* jobs handed out to producers */
    _Atomic long handled;   /* handler calls */
    _Atomic int failed;     /* a producer or worker failed */
} bench;

typedef struct wctx {
    bench *b;
    jobq_client *client;
    jobq_worker *worker;
    pthread_t tid;
    int err;
} wctx;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
noop(void *arg, const jobq_lease *job, char **resultp, char **errorp)
{
    bench *b = arg;
    atomic_fetch_add(&b->handled, 1);
    return 0;
}

static void *
worker_main(void *arg)
{
    wctx *w = arg;
    w->err = jobq_worker_run(w->worker, noop, w->b, w->b->concurrency);
    if (w->err != JOBQ_OK) {
        fprintf(stderr, "jobq-worker-bench: worker: %s: %s\n", jobq_strerror(w->err),
                jobq_errmsg());
        atomic_store(&w->b->failed, 1);
    }
    return NULL;
}

static void *
producer_main(void *arg)
{
    bench *b = arg;
    jobq_client *c;
    if (jobq_client_open(&c, b->url) != JOBQ_OK) {
        fprintf(stderr, "jobq-worker-bench: producer: %s\n", jobq_errmsg());
        atomic_store(&b->failed, 1);
        return NULL;
    }
    const char *payloads[BATCH];
    for (int i = 0; i < BATCH; i++) {
        payloads[i] = "{\"n\":1}";
    }
    int64_t *ids = malloc(BATCH * sizeof(*ids));
    while (ids != NULL && !atomic_load(&b->failed)) {
        long from = atomic_fetch_add(&b->submitted, BATCH);
        if (from >= b->jobs) {
            break;
        }
        long n = b->jobs - from < BATCH ? b->jobs - from : BATCH;
        const char *q = b->queues[(size_t)(from / BATCH) % b->nqueues];
        int err = jobq_submit_batch(c, q, payloads, (size_t)n, NULL, ids);
        if (err != JOBQ_OK) {
            fprintf(stderr, "jobq-worker-bench: submit: %s\n", jobq_errmsg());
            atomic_store(&b->failed, 1);
        }
    }
    free(ids);
    jobq_client_close(c);
    return NULL;
}

int
main(int argc, char **argv)
{
    bench b = {.url = NULL, .jobs = 100000, .producers = 2, .workers = 4, .concurrency = 8};
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"jobs", required_argument, NULL, 'n'},
        {"producers", required_argument, NULL, 'p'},
        {"workers", required_argument, NULL, 'w'},
        {"concurrency", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            b.url = optarg;
            break;
        case 'q':
            if (b.nqueues < 8) {
                b.queues[b.nqueues++] = optarg;
            }
            break;
        case 'n':
            b.jobs = atol(optarg);
            break;
        case 'p':
            b.producers = atoi(optarg);
            break;
        case 'w':
            b.workers = atoi(optarg);
            break;
        case 'c':
            b.concurrency = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: jobq-worker-bench [--url URL] --queue Q... [--jobs N] "
                            "[--producers P] [--workers W] [--concurrency C]\n");
            return 2;
        }
    }
    if (b.nqueues == 0 || b.jobs < 1 || b.producers < 1 || b.producers > MAX_THREADS ||
        b.workers < 1 || b.workers > MAX_THREADS || b.concurrency < 1) {
        fprintf(stderr, "jobq-worker-bench: needs --queue and positive counts\n");
        return 2;
    }
    atomic_init(&b.submitted, 0);
    atomic_init(&b.handled, 0);
    atomic_init(&b.failed, 0);
    wctx w[MAX_THREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < b.workers; i++) {
        w[i].b = &b;
        if (jobq_client_open(&w[i].client, b.url) != JOBQ_OK ||
            jobq_worker_open(&w[i].worker, w[i].client, b.queues, b.nqueues) != JOBQ_OK) {
            fprintf(stderr, "jobq-worker-bench: %s\n", jobq_errmsg());
            return 3;
        }
        pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
    }
    double t0 = now_s();
    pthread_t prod[MAX_THREADS];
    for (int i = 0; i < b.producers; i++) {
        pthread_create(&prod[i], NULL, producer_main, &b);
    }
    for (int i = 0; i < b.producers; i++) {
        pthread_join(prod[i], NULL);
    }
    double t_submit = now_s() - t0;
    while (atomic_load(&b.handled) < b.jobs && !atomic_load(&b.failed)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    double t_all = now_s() - t0; /* the last handler ran; its ack follows within ms */
    for (int i = 0; i < b.workers; i++) {
        jobq_worker_stop(w[i].worker);
    }
    for (int i = 0; i < b.workers; i++) {
        pthread_join(w[i].tid, NULL); /* returns after the last acks */
    }
    for (int i = 0; i < b.workers; i++) {
        jobq_worker_close(w[i].worker);
        jobq_client_close(w[i].client);
    }
    if (atomic_load(&b.failed)) {
        return 1;
    }
    printf("jobs=%ld producers=%d workers=%d concurrency=%d submit_s=%.2f total_s=%.2f "
           "jobs_per_s=%.0f\n",
           b.jobs, b.producers, b.workers, b.concurrency, t_submit, t_all, (double)b.jobs / t_all);
    return 0;
}
