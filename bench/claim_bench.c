/* claim_bench.c: jobq-claim-bench, the cost of a claim in the store itself (no daemon, no
 * socket): a backlog of --jobs ready jobs spread over --keys group_keys (0: jobs without key,
 * claimed as before keys existed), then --claims claims of one job each, each in its own
 * transaction as the writer runs them, and as many jobs again in claims of 64. Prints the
 * microseconds per claimed job. Opt-in (bench/run.sh does not run it): filling a backlog of
 * 1,000,000 jobs takes a while.
 * Usage: jobq-claim-bench --db PATH|URL [--jobs N] [--keys K] [--claims C] [--cap N]
 *                         [--rate R]
 * PATH must not exist yet (a new SQLite database); a postgresql:// URL names an empty
 * database. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"

static double
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* fill: n ready jobs of queue "bench", job i with key "k(i % keys)" (keys 0: none), in
 * transactions of 10,000. */
static int
fill(store *st, long n, long keys)
{
    char key[32], payload[256];
    memset(payload, 0, sizeof(payload));
    snprintf(payload, sizeof(payload), "{\"pad\":\"%0*d\"}", 180, 0);
    long done = 0;
    double t0 = now_us();
    while (done < n) {
        if (store_begin(st) != JOBQ_OK) {
            return -1;
        }
        for (long j = 0; j < 10000 && done < n; j++, done++) {
            job_spec s = {.queue = "bench",
                          .payload = payload,
                          .run_at_ms = 1000 + done,
                          .max_attempts = 3,
                          .timeout_ms = 30000};
            if (keys > 0) {
                snprintf(key, sizeof(key), "k%ld", done % keys);
                s.group_key = key;
            }
            int64_t id;
            if (store_job_insert(st, &s, JOBQ_READY, 1000 + done, 0, NULL, &id) != JOBQ_OK) {
                fprintf(stderr, "jobq-claim-bench: insert: %s\n", store_errmsg(st));
                return -1;
            }
        }
        if (store_commit(st) != JOBQ_OK) {
            return -1;
        }
    }
    fprintf(stderr, "jobq-claim-bench: %ld jobs over %ld keys inserted in %.1f s\n", n, keys,
            (now_us() - t0) / 1e6);
    return 0;
}

/* claims: c claims of up to batch jobs each; prints the cost per job. */
static int
claims(store *st, long c, size_t batch, const key_limits *kl, const char *what)
{
    double *lat = calloc((size_t)c, sizeof(*lat));
    job_row rows[64];
    long jobs = 0;
    double total0 = now_us();
    for (long i = 0; i < c; i++) {
        size_t n = 0;
        double t0 = now_us();
        if (store_begin(st) != JOBQ_OK ||
            store_claim_keys(st, "bench", 2000000000000LL + i, batch, kl, rows, &n, NULL) !=
                JOBQ_OK ||
            store_commit(st) != JOBQ_OK) {
            fprintf(stderr, "jobq-claim-bench: claim: %s\n", store_errmsg(st));
            free(lat);
            return -1;
        }
        lat[i] = (now_us() - t0) / (n > 0 ? (double)n : 1);
        jobs += (long)n;
        for (size_t k = 0; k < n; k++) {
            job_row_clear(&rows[k]);
        }
        if (n == 0) {
            c = i;
            break;
        }
    }
    double total = now_us() - total0;
    qsort(lat, (size_t)c, sizeof(*lat), cmp_double);
    printf("%-34s claims=%-6ld jobs=%-7ld us_per_job mean=%.1f p50=%.1f p99=%.1f\n", what, c, jobs,
           jobs > 0 ? total / (double)jobs : 0, c > 0 ? lat[c / 2] : 0,
           c > 0 ? lat[c * 99 / 100] : 0);
    free(lat);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *db = NULL;
    long jobs = 1000000, keys = 0, c = 10000, cap = 0;
    double rate = 0;
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"jobs", required_argument, NULL, 'j'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"claims", required_argument, NULL, 'c'},
                                         {"cap", required_argument, NULL, 'p'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            db = optarg;
            break;
        case 'j':
            jobs = atol(optarg);
            break;
        case 'k':
            keys = atol(optarg);
            break;
        case 'c':
            c = atol(optarg);
            break;
        case 'p':
            cap = atol(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (db == NULL || jobs <= 0 || keys < 0 || c <= 0) {
        fprintf(stderr, "usage: jobq-claim-bench --db PATH|URL [--jobs N] [--keys K] "
                        "[--claims C] [--cap N] [--rate R]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    store *st;
    char err[512];
    if (store_open(db, DURABILITY_NORMAL, &st, err, sizeof(err)) != JOBQ_OK) {
        fprintf(stderr, "jobq-claim-bench: %s\n", err);
        return 1;
    }
    key_limits kl = {.cap = (int32_t)cap};
    if (rate > 0) {
        kl.interval_ms = (int64_t)(1000 / rate);
    }
    char what[96];
    int rc = fill(st, jobs, keys);
    snprintf(what, sizeof(what), "%ld ready, %ld keys, 1 a claim", jobs, keys);
    if (rc == 0) {
        rc = claims(st, c, 1, &kl, what);
    }
    snprintf(what, sizeof(what), "%ld ready, %ld keys, 64 a claim", jobs - c, keys);
    if (rc == 0) {
        rc = claims(st, c / 64 > 0 ? c / 64 : 1, 64, &kl, what);
    }
    store_close(st);
    return rc == 0 ? 0 : 1;
}
