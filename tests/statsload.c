/* statsload.c: jobq-statsload, load for tests/it_stats_cost.sh: concurrent callers of one
 * request while another connection pings and times each ping; or a flood of one request.
 *
 *   jobq-statsload load URL CALLERS PINGS TEXT   CALLERS connections send TEXT in a loop
 *                                                while PINGS pings go one after another on
 *                                                their own connection
 *   jobq-statsload flood URL N TEXT              sends TEXT N times on one connection
 *
 * load prints "pings=N p50_ms=X p99_ms=X max_ms=X calls=N reply_bytes=N" (calls: the callers'
 * replies received while the pings ran); flood prints "replies=N". Exits 0 when every request
 * got a reply, 1 otherwise (reported on stderr), 2 on bad usage. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 60000

static atomic_bool stop;
static atomic_long calls;
static atomic_long reply_bytes;
static atomic_int errors;

static const char *url;
static const char *text;

static int
usage(void)
{
    fprintf(stderr, "usage: jobq-statsload load URL CALLERS PINGS TEXT\n"
                    "       jobq-statsload flood URL N TEXT\n");
    return 2;
}

static int
open_req(nng_socket *s)
{
    int rv = nng_req0_open(s);
    if (rv == 0) {
        nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, TIMEOUT_MS);
        nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 0);
        rv = nng_dial(*s, url, NULL, 0);
    }
    if (rv != 0) {
        fprintf(stderr, "jobq-statsload: %s: %s\n", url, nng_strerror(rv));
    }
    return rv;
}

/* call: one request and its reply; returns the reply's size, or -1. */
static long
call(nng_socket s, const char *req)
{
    int rv = nng_send(s, (void *)req, strlen(req), 0);
    char *buf = NULL;
    size_t len = 0;
    if (rv == 0) {
        rv = nng_recv(s, &buf, &len, NNG_FLAG_ALLOC);
    }
    if (rv != 0) {
        fprintf(stderr, "jobq-statsload: request: %s\n", nng_strerror(rv));
        return -1;
    }
    nng_free(buf, len);
    return (long)len;
}

static void *
caller(void *arg)
{
    (void)arg;
    nng_socket s;
    if (open_req(&s) != 0) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        long n = call(s, text);
        if (n < 0) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        if (!atomic_load(&stop)) {
            atomic_fetch_add(&calls, 1);
            atomic_fetch_add(&reply_bytes, n);
        }
    }
    nng_close(s);
    return NULL;
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int
load(int ncallers, int npings)
{
    pthread_t *th = calloc((size_t)ncallers, sizeof(*th));
    double *lat = calloc((size_t)npings, sizeof(*lat));
    nng_socket ps;
    if (th == NULL || lat == NULL || open_req(&ps) != 0) {
        return 1;
    }
    /* The first ping connects; the callers start once it answered. */
    if (call(ps, "{\"op\":\"ping\"}") < 0) {
        return 1;
    }
    for (int i = 0; i < ncallers; i++) {
        pthread_create(&th[i], NULL, caller, NULL);
    }
    /* Pings start once every caller has had a reply, so that they run under the full load. */
    while (atomic_load(&calls) < ncallers && atomic_load(&errors) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&calls, 0);
    atomic_store(&reply_bytes, 0);
    int rc = 0;
    for (int i = 0; i < npings && rc == 0; i++) {
        double t0 = now_ms();
        if (call(ps, "{\"op\":\"ping\"}") < 0) {
            rc = 1;
        }
        lat[i] = now_ms() - t0;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < ncallers; i++) {
        pthread_join(th[i], NULL);
    }
    nng_close(ps);
    if (rc != 0 || atomic_load(&errors) != 0) {
        return 1;
    }
    qsort(lat, (size_t)npings, sizeof(*lat), cmp_double);
    size_t p99 = (size_t)npings * 99 / 100;
    printf("pings=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f calls=%ld reply_bytes=%ld\n", npings,
           lat[npings / 2], lat[p99 < (size_t)npings ? p99 : (size_t)npings - 1], lat[npings - 1],
           atomic_load(&calls), atomic_load(&reply_bytes));
    free(th);
    free(lat);
    return 0;
}

static int
flood(long n)
{
    nng_socket s;
    if (open_req(&s) != 0) {
        return 1;
    }
    long replies = 0;
    for (long i = 0; i < n; i++) {
        if (call(s, text) < 0) {
            break;
        }
        replies++;
    }
    nng_close(s);
    printf("replies=%ld\n", replies);
    return replies == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "load") == 0) {
        url = argv[2];
        text = argv[5];
        int ncallers = atoi(argv[3]), npings = atoi(argv[4]);
        if (ncallers < 0 || npings < 1) {
            return usage();
        }
        return load(ncallers, npings);
    }
    if (argc == 5 && strcmp(argv[1], "flood") == 0) {
        url = argv[2];
        text = argv[4];
        long n = atol(argv[3]);
        return n < 1 ? usage() : flood(n);
    }
    return usage();
}
