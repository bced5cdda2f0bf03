/* jobq_bench.c: jobq-bench, a load generator that drives a running jobqd through libjobq
 * and reports throughput and per-request latency percentiles. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobq.h"

#define BATCH_SIZE 1000       /* jobs per submit_batch request */
#define PAYLOAD_BYTES 200     /* the size of every job's payload */
#define CALL_TIMEOUT_MS 10000 /* bounds the tail of a run: in-flight calls at the deadline */
#define MAX_PRODUCERS 1024

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACH = 3 };

/* row: the measured result of one workload at one concurrency. */
typedef struct row {
    const char *workload;
    int producers;
    uint64_t jobs;
    uint64_t requests;
    uint64_t errors;
    double seconds;
    double p50_us, p99_us, p999_us;
} row;

/* producer: one thread's state and samples. */
typedef struct producer {
    pthread_t thread;
    jobq_client *client;
    const char *queue;
    bool batch;
    double deadline;  /* monotonic seconds */
    uint64_t *lat_ns; /* one per request */
    size_t n, cap;
    uint64_t errors;
    int first_err;
    char first_errmsg[256];
    const atomic_bool *stop;
} producer;

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* make_payload: a PAYLOAD_BYTES-long JSON object that looks like a typical job. */
static void
make_payload(char *buf, size_t size, uint64_t seq)
{
    int n = snprintf(buf, size,
                     "{\"to\":\"user-%06llu@example.com\",\"template\":\"weekly-report\","
                     "\"locale\":\"en-US\",\"vars\":{\"name\":\"Ada Lovelace\",\"plan\":\"pro\","
                     "\"items\":42},\"pad\":\"",
                     (unsigned long long)(seq % 1000000));
    size_t len = n > 0 ? (size_t)n : 0;
    while (len + 2 < PAYLOAD_BYTES && len + 3 < size) {
        buf[len++] = 'x';
    }
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = '\0';
}

static bool
record(producer *p, uint64_t ns)
{
    if (p->n == p->cap) {
        size_t ncap = p->cap == 0 ? 4096 : p->cap * 2;
        uint64_t *nl = realloc(p->lat_ns, ncap * sizeof(uint64_t));
        if (nl == NULL) {
            return false;
        }
        p->lat_ns = nl;
        p->cap = ncap;
    }
    p->lat_ns[p->n++] = ns;
    return true;
}

static void *
producer_main(void *arg)
{
    producer *p = arg;
    char payload[PAYLOAD_BYTES + 64];
    const char *payloads[BATCH_SIZE];
    int64_t ids[BATCH_SIZE];
    uint64_t seq = (uint64_t)(uintptr_t)p;
    make_payload(payload, sizeof(payload), seq);
    for (size_t i = 0; i < BATCH_SIZE; i++) {
        payloads[i] = payload;
    }
    while (mono_s() < p->deadline && !atomic_load(p->stop)) {
        uint64_t t0 = mono_ns();
        int err;
        if (p->batch) {
            err = jobq_submit_batch(p->client, p->queue, payloads, BATCH_SIZE, NULL, ids);
        } else {
            int64_t id;
            make_payload(payload, sizeof(payload), ++seq);
            err = jobq_submit(p->client, p->queue, payload, NULL, &id, NULL);
        }
        uint64_t t1 = mono_ns();
        if (err != JOBQ_OK) {
            if (p->errors++ == 0) {
                p->first_err = err;
                snprintf(p->first_errmsg, sizeof(p->first_errmsg), "%s",
                         jobq_errmsg()[0] != '\0' ? jobq_errmsg() : jobq_strerror(err));
            }
            break; /* a failing daemon would only be measured spinning */
        }
        if (!record(p, t1 - t0)) {
            break;
        }
    }
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* percentile_us: the nearest-rank percentile p (0..1) of sorted samples, in µs. */
static double
percentile_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return 0.0;
    }
    size_t rank = (size_t)ceil(p * (double)n);
    size_t idx = rank == 0 ? 0 : rank - 1;
    return (double)sorted[idx < n ? idx : n - 1] / 1000.0;
}

/* run: one workload at one concurrency for seconds. Returns false when it could not run
 * at all (the message is printed). */
static bool
run(jobq_client *client, const char *queue, const char *workload, bool batch, int producers,
    double seconds, row *out)
{
    producer *ps = calloc((size_t)producers, sizeof(producer));
    if (ps == NULL) {
        fprintf(stderr, "jobq-bench: out of memory\n");
        return false;
    }
    atomic_bool stop;
    atomic_init(&stop, false);
    double start = mono_s();
    int started = 0;
    for (; started < producers; started++) {
        producer *p = &ps[started];
        *p = (producer){.client = client,
                        .queue = queue,
                        .batch = batch,
                        .deadline = start + seconds,
                        .stop = &stop};
        int rv = pthread_create(&p->thread, NULL, producer_main, p);
        if (rv != 0) {
            fprintf(stderr, "jobq-bench: cannot start producer thread %d: %s\n", started,
                    strerror(rv));
            atomic_store(&stop, true);
            break;
        }
    }
    size_t total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ps[i].thread, NULL);
        total += ps[i].n;
    }
    double elapsed = mono_s() - start;
    uint64_t *all = malloc((total > 0 ? total : 1) * sizeof(uint64_t));
    *out = (row){.workload = workload, .producers = producers, .seconds = elapsed};
    size_t k = 0;
    for (int i = 0; i < started; i++) {
        if (all != NULL) {
            memcpy(all + k, ps[i].lat_ns, ps[i].n * sizeof(uint64_t));
        }
        k += ps[i].n;
        out->errors += ps[i].errors;
        if (ps[i].errors > 0 && out->errors == ps[i].errors) {
            fprintf(stderr, "jobq-bench: %s x%d: %s\n", workload, producers, ps[i].first_errmsg);
        }
        free(ps[i].lat_ns);
    }
    out->requests = total;
    out->jobs = total * (batch ? BATCH_SIZE : 1);
    if (all != NULL) {
        qsort(all, total, sizeof(uint64_t), cmp_u64);
        out->p50_us = percentile_us(all, total, 0.50);
        out->p99_us = percentile_us(all, total, 0.99);
        out->p999_us = percentile_us(all, total, 0.999);
    }
    free(all);
    free(ps);
    return started == producers;
}

static void
print_header(void)
{
    printf("%-8s %9s %10s %8s %10s %10s %10s %10s %7s\n", "WORKLOAD", "PRODUCERS", "JOBS",
           "SECONDS", "JOBS/S", "P50_US", "P99_US", "P99.9_US", "ERRORS");
}

static void
print_row(const row *r)
{
    printf("%-8s %9d %10llu %8.2f %10.0f %10.0f %10.0f %10.0f %7llu\n", r->workload, r->producers,
           (unsigned long long)r->jobs, r->seconds,
           r->seconds > 0 ? (double)r->jobs / r->seconds : 0.0, r->p50_us, r->p99_us, r->p999_us,
           (unsigned long long)r->errors);
    fflush(stdout);
}

static bool
write_json(const char *path, const row *rows, size_t n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "jobq-bench: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    fprintf(f, "[");
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        fprintf(f,
                "%s\n  {\"workload\": \"%s\", \"producers\": %d, \"jobs\": %llu, "
                "\"requests\": %llu, \"errors\": %llu, \"seconds\": %.3f, \"jobs_per_s\": %.1f, "
                "\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"payload_bytes\": %d}",
                i == 0 ? "" : ",", r->workload, r->producers, (unsigned long long)r->jobs,
                (unsigned long long)r->requests, (unsigned long long)r->errors, r->seconds,
                r->seconds > 0 ? (double)r->jobs / r->seconds : 0.0, r->p50_us, r->p99_us,
                r->p999_us, PAYLOAD_BYTES);
    }
    fprintf(f, "\n]\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "jobq-bench: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: jobq-bench [--url URL] [--queue Q] [--seconds N] [--producers LIST]\n"
                 "                  [--json FILE] [WORKLOAD...]\n");
}

static int
help(void)
{
    usage(stdout);
    printf("\nDrives a running jobqd through libjobq and prints, per workload, the jobs stored,\n"
           "jobs/s and the latency of each request (p50, p99, p99.9, in microseconds).\n"
           "\n"
           "Workloads (default: both):\n"
           "  submit   single submits from P producer threads sharing one client\n"
           "  batch    submit_batch of %d jobs, from 1 and from 4 threads\n"
           "\n"
           "Options:\n"
           "  --url URL          the daemon (default: $JOBQ_URL, else tcp://127.0.0.1:7450)\n"
           "  --queue Q          the queue to fill (default \"bench\"); the jobs stay there, so\n"
           "                     use a queue that is served by remote workers or none\n"
           "  --seconds N        how long each row runs (default 5)\n"
           "  --producers LIST   producer counts for submit, e.g. 1,16,64 (default 1,16)\n"
           "  --json FILE        also write every row as a JSON array to FILE\n"
           "  -h, --help         this help\n"
           "\n"
           "Every job's payload is a %d-byte JSON object. Each row stops after N seconds (plus\n"
           "at most %d s for requests in flight).\n",
           BATCH_SIZE, PAYLOAD_BYTES, CALL_TIMEOUT_MS / 1000);
    return EXIT_OK;
}

/* parse_producers: "1,16,64" into list (at most max entries). */
static int
parse_producers(const char *s, int *list, int max)
{
    int n = 0;
    while (*s != '\0') {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0 || end == s || v < 1 || v > MAX_PRODUCERS || n == max ||
            (*end != ',' && *end != '\0')) {
            return -1;
        }
        list[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int
main(int argc, char **argv)
{
    const char *url = NULL, *queue = "bench", *json_path = NULL;
    double seconds = 5.0;
    int producers[16] = {1, 16};
    int nproducers = 2;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"seconds", required_argument, NULL, 's'},
        {"producers", required_argument, NULL, 'p'},
        {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'u':
            url = optarg;
            break;
        case 'q':
            queue = optarg;
            break;
        case 's':
            seconds = strtod(optarg, &end);
            if (*end != '\0' || !(seconds > 0 && seconds <= 3600)) {
                fprintf(stderr, "jobq-bench: --seconds needs a number from 0 to 3600, not \"%s\"\n",
                        optarg);
                usage(stderr);
                return EXIT_USAGE;
            }
            break;
        case 'p':
            nproducers = parse_producers(optarg, producers, 16);
            if (nproducers <= 0) {
                fprintf(stderr,
                        "jobq-bench: --producers needs up to 16 counts from 1 to %d, like 1,16,64; "
                        "not \"%s\"\n",
                        MAX_PRODUCERS, optarg);
                usage(stderr);
                return EXIT_USAGE;
            }
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'h':
            return help();
        case ':':
            fprintf(stderr, "jobq-bench: option %s needs a value\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "jobq-bench: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    bool do_submit = optind == argc, do_batch = optind == argc;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "submit") == 0) {
            do_submit = true;
        } else if (strcmp(argv[i], "batch") == 0) {
            do_batch = true;
        } else {
            fprintf(stderr, "jobq-bench: unknown workload \"%s\" (submit, batch)\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }

    jobq_client *client;
    int err = jobq_client_open(&client, url);
    if (err != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: %s\n", jobq_errmsg());
        if (err == JOBQ_EUNREACH) {
            fprintf(stderr, "jobq-bench: start jobqd first, or point --url or JOBQ_URL at it\n");
            return EXIT_UNREACH;
        }
        return err == JOBQ_EINVAL ? EXIT_USAGE : EXIT_FAILED;
    }
    jobq_client_set_timeout(client, CALL_TIMEOUT_MS);
    char probe[PAYLOAD_BYTES + 64];
    make_payload(probe, sizeof(probe), 0);
    int64_t id;
    err = jobq_submit(client, queue, probe, NULL, &id, NULL);
    if (err != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: a first submit to queue \"%s\" failed: %s\n", queue,
                jobq_errmsg()[0] != '\0' ? jobq_errmsg() : jobq_strerror(err));
        jobq_client_close(client);
        return EXIT_FAILED;
    }

    row rows[32];
    size_t nrows = 0;
    int rc = EXIT_OK;
    print_header();
    for (int i = 0; do_submit && i < nproducers; i++) {
        if (!run(client, queue, "submit", false, producers[i], seconds, &rows[nrows])) {
            rc = EXIT_FAILED;
        }
        rc = rows[nrows].errors > 0 ? EXIT_FAILED : rc;
        print_row(&rows[nrows++]);
    }
    static const int batch_threads[] = {1, 4};
    for (size_t i = 0; do_batch && i < 2; i++) {
        if (!run(client, queue, "batch", true, batch_threads[i], seconds, &rows[nrows])) {
            rc = EXIT_FAILED;
        }
        rc = rows[nrows].errors > 0 ? EXIT_FAILED : rc;
        print_row(&rows[nrows++]);
    }
    jobq_client_close(client);
    if (json_path != NULL && !write_json(json_path, rows, nrows)) {
        rc = EXIT_FAILED;
    }
    return rc;
}
