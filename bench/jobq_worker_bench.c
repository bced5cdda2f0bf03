/* jobq_worker_bench.c: jobq-worker-bench, end-to-end throughput of remote workers: producer
 * threads submit N no-op jobs in batches while (or, with --backlog, before) W jobq_worker_run
 * workers (one client each, threads or, with --processes, processes) fetch and ack them;
 * prints jobs/s from the first submit (with --backlog, the workers' start) to the last
 * handler call. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    bool backlog;           /* submit every job before the workers start */
    bool processes;         /* one process per worker instead of one thread */
    _Atomic long submitted; /* jobs handed out to producers */
    _Atomic long *handled;  /* handler calls (shared with worker processes) */
    _Atomic int *failed;    /* a producer or worker failed (shared too) */
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
    atomic_fetch_add(b->handled, 1);
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
        atomic_store(w->b->failed, 1);
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
        atomic_store(b->failed, 1);
        return NULL;
    }
    const char *payloads[BATCH];
    for (int i = 0; i < BATCH; i++) {
        payloads[i] = "{\"n\":1}";
    }
    int64_t *ids = malloc(BATCH * sizeof(*ids));
    while (ids != NULL && !atomic_load(b->failed)) {
        long from = atomic_fetch_add(&b->submitted, BATCH);
        if (from >= b->jobs) {
            break;
        }
        long n = b->jobs - from < BATCH ? b->jobs - from : BATCH;
        const char *q = b->queues[(size_t)(from / BATCH) % b->nqueues];
        int err = jobq_submit_batch(c, q, payloads, (size_t)n, NULL, ids);
        if (err != JOBQ_OK) {
            fprintf(stderr, "jobq-worker-bench: submit: %s\n", jobq_errmsg());
            atomic_store(b->failed, 1);
        }
    }
    free(ids);
    jobq_client_close(c);
    return NULL;
}

/* run_producers: submits every job with b->producers threads; returns when all are in. */
static void
run_producers(bench *b)
{
    pthread_t prod[MAX_THREADS];
    for (int i = 0; i < b->producers; i++) {
        pthread_create(&prod[i], NULL, producer_main, b);
    }
    for (int i = 0; i < b->producers; i++) {
        pthread_join(prod[i], NULL);
    }
}

/* read_byte: one byte from fd, retried on EINTR; false at EOF or on an error. */
static bool
read_byte(int fd)
{
    char c;
    for (;;) {
        ssize_t n = read(fd, &c, 1);
        if (n == 1) {
            return true;
        }
        if (n == 0 || errno != EINTR) {
            return false;
        }
    }
}

/* child_main: one worker process: opens its client and worker, says it is ready on ready_fd,
 * runs the worker once go_fd gives it a byte and stops it when stop_fd reaches EOF (the
 * parent closed it, or died). Never returns. */
static void
child_main(bench *b, int ready_fd, int go_fd, int stop_fd)
{
    wctx w = {.b = b};
    if (jobq_client_open(&w.client, b->url) != JOBQ_OK ||
        jobq_worker_open(&w.worker, w.client, b->queues, b->nqueues) != JOBQ_OK) {
        fprintf(stderr, "jobq-worker-bench: worker process: %s\n", jobq_errmsg());
        atomic_store(b->failed, 1);
        _exit(3);
    }
    if (write(ready_fd, "r", 1) != 1 || !read_byte(go_fd)) {
        _exit(3);
    }
    pthread_create(&w.tid, NULL, worker_main, &w);
    read_byte(stop_fd); /* EOF: stop */
    jobq_worker_stop(w.worker);
    pthread_join(w.tid, NULL);
    jobq_worker_close(w.worker);
    jobq_client_close(w.client);
    _exit(w.err == JOBQ_OK ? 0 : 1);
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
        {"backlog", no_argument, NULL, 'b'},
        {"processes", no_argument, NULL, 'P'},
        {"limit", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    double limit_s = 0; /* with --limit, stop waiting for the last jobs after this long */
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
        case 'b':
            b.backlog = true;
            break;
        case 'P':
            b.processes = true;
            break;
        case 'l':
            limit_s = atof(optarg);
            break;
        default:
            fprintf(stderr, "usage: jobq-worker-bench [--url URL] --queue Q... [--jobs N] "
                            "[--producers P] [--workers W] [--concurrency C] [--backlog] "
                            "[--processes] [--limit SECONDS]\n");
            return 2;
        }
    }
    if (b.nqueues == 0 || b.jobs < 1 || b.producers < 1 || b.producers > MAX_THREADS ||
        b.workers < 1 || b.workers > MAX_THREADS || b.concurrency < 1 || limit_s < 0) {
        fprintf(stderr, "jobq-worker-bench: needs --queue and positive counts\n");
        return 2;
    }
    /* The counters live in shared memory, so that worker processes count into them too. */
    struct shared {
        _Atomic long handled;
        _Atomic int failed;
    } *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("jobq-worker-bench: mmap");
        return 3;
    }
    atomic_init(&b.submitted, 0);
    atomic_init(&sh->handled, 0);
    atomic_init(&sh->failed, 0);
    b.handled = &sh->handled;
    b.failed = &sh->failed;
    wctx w[MAX_THREADS];
    memset(w, 0, sizeof(w));
    pid_t kids[MAX_THREADS];
    int ready[2], go[2], stop[2];
    if (b.processes) {
        /* Fork before any libjobq thread exists; each child opens its own client. */
        if (pipe(ready) != 0 || pipe(go) != 0 || pipe(stop) != 0) {
            perror("jobq-worker-bench: pipe");
            return 3;
        }
        for (int i = 0; i < b.workers; i++) {
            kids[i] = fork();
            if (kids[i] < 0) {
                perror("jobq-worker-bench: fork");
                return 3;
            }
            if (kids[i] == 0) {
                close(ready[0]);
                close(go[1]);
                close(stop[1]);
                child_main(&b, ready[1], go[0], stop[0]);
            }
        }
        close(ready[1]);
        close(go[0]);
        close(stop[0]);
        for (int i = 0; i < b.workers; i++) {
            if (!read_byte(ready[0])) {
                fprintf(stderr, "jobq-worker-bench: a worker process did not start\n");
                return 3; /* the children see EOF on go and exit */
            }
        }
    } else {
        for (int i = 0; i < b.workers; i++) {
            w[i].b = &b;
            if (jobq_client_open(&w[i].client, b.url) != JOBQ_OK ||
                jobq_worker_open(&w[i].worker, w[i].client, b.queues, b.nqueues) != JOBQ_OK) {
                fprintf(stderr, "jobq-worker-bench: %s\n", jobq_errmsg());
                return 3;
            }
        }
    }
    double t0 = now_s(), t_submit = 0;
    if (b.backlog) {
        run_producers(&b);
        t_submit = now_s() - t0;
        t0 = now_s();
    }
    for (int i = 0; i < b.workers; i++) {
        if (b.processes) {
            if (write(go[1], "g", 1) != 1) {
                perror("jobq-worker-bench: write");
                return 3;
            }
        } else {
            pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
        }
    }
    if (!b.backlog) {
        run_producers(&b);
        t_submit = now_s() - t0;
    }
    while (atomic_load(b.handled) < b.jobs && !atomic_load(b.failed) &&
           (limit_s <= 0 || now_s() - t0 < limit_s)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    double t_all = now_s() - t0; /* the last handler ran; its ack follows within ms */
    long handled = atomic_load(b.handled);
    if (b.processes) {
        close(stop[1]); /* every child sees EOF and stops after its last acks */
        for (int i = 0; i < b.workers; i++) {
            int st;
            if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                atomic_store(b.failed, 1);
            }
        }
    } else {
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
    }
    if (atomic_load(b.failed)) {
        return 1;
    }
    printf("jobs=%ld handled=%ld producers=%d workers=%d concurrency=%d backlog=%d "
           "processes=%d submit_s=%.2f total_s=%.2f jobs_per_s=%.0f\n",
           b.jobs, handled, b.producers, b.workers, b.concurrency, b.backlog ? 1 : 0,
           b.processes ? 1 : 0, t_submit, t_all, (double)handled / t_all);
    return 0;
}
