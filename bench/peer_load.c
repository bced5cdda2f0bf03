/* peer_load.c: jobq-peer-load, the load generator of bench/compare.sh: drives beanstalkd (text
 * protocol), Redis (RESP) and jobqd (libjobq) on loopback with the same shapes of work, and
 * measures the raw SQLite limit (the jobs table, 1,000-row transactions, synchronous=FULL). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

#define BODY_BYTES 200           /* every job's body: the size jobq-bench submits */
#define MAX_THREADS 256          /* producers + consumers */
#define IO_TIMEOUT_S 10          /* a send or a reply that takes longer fails the thread */
#define CONN_BUF 16384           /* a connection's read buffer: a reply line or a body fits */
#define SCHEMA_MAX (1024 * 1024) /* the largest schema file the sqlite command reads */
#define MAX_SCHEMAS 16
#define DEFAULT_SECONDS 5.0
#define DEFAULT_TXN_ROWS 1000
#define DEFAULT_BACKLOG 20000 /* drain: jobs put before the consumers start */
#define MAX_SECONDS 3600.0
#define WAIT_STEP_MS 50         /* the wait command retries this often */
#define SLOT_SAMPLES (1u << 21) /* latencies a consumer process hands back (16 MiB of address) */
#define READY_TIMEOUT_MS 30000  /* a consumer process that is not ready by then fails the run */

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };
enum target { T_BEANSTALKD, T_REDIS, T_JOBQ };

static const char *const target_names[] = {"beanstalkd", "redis", "jobq"};

/* samples: a growable array of nanosecond latencies. */
typedef struct samples {
    uint64_t *v;
    size_t n, cap;
} samples;

/* conn: one blocking TCP connection to 127.0.0.1 with a read buffer. */
typedef struct conn {
    int fd;
    size_t off, len; /* unread bytes are buf[off..len) */
    char buf[CONN_BUF];
} conn;

struct run;

/* worker: one producer or consumer thread and what it measured. */
typedef struct worker {
    pthread_t tid;
    struct run *run;
    int index;
    bool consumer;
    conn c;
    jobq_client *client;
    jobq_worker *jw;
    pthread_mutex_t lock; /* guards lat and done for jobq handlers (concurrency > 1) */
    samples lat;          /* submit: per request; e2e consumer: put start to consumed */
    uint64_t done;        /* jobs put (producer) or consumed by the deadline (consumer) */
    uint64_t errors;
    char err[256]; /* the first error */
} worker;

/* run: one workload against one server. */
typedef struct run {
    enum target target;
    bool e2e;
    bool drain;         /* consumers only, on a backlog of jobs put before the clock starts */
    long jobs;          /* drain: the backlog */
    _Atomic long taken; /* drain: jobs consumed so far */
    _Atomic uint64_t drained_ns; /* drain: when the last job of the backlog was consumed */
    int port;                    /* beanstalkd, redis */
    const char *urls[8];         /* jobq: one or more nodes; worker i talks to urls[i % nurls] */
    int nurls;
    const char *name; /* tube, list key or queue */
    int producers, consumers, concurrency;
    bool processes; /* jobq e2e: each consumer is a process of its own */
    double seconds;
    double rate; /* submit, e2e: jobs/s of all producers together, on a fixed timetable (0: as fast
                    as they can) */
    uint64_t start_ns, deadline_ns; /* written by main between the two barriers */
    atomic_bool stop;
    pthread_barrier_t barrier;
} run;

/* URL_OF: the jobq node worker i talks to. */
#define URL_OF(r, i) ((r)->urls[(i) % (r)->nurls])

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* samples_push: appends ns; drops the sample when out of memory (the count stays right). */
static void
samples_push(samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap == 0 ? 4096 : s->cap * 2;
        uint64_t *nv = realloc(s->v, ncap * sizeof(uint64_t));
        if (nv == NULL) {
            return;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = ns;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* percentile_us: the nearest-rank percentile p (0..1) of n sorted samples, in microseconds;
 * -1 when there are none. */
static double
percentile_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return -1.0;
    }
    size_t rank = (size_t)ceil(p * (double)n);
    size_t idx = rank == 0 ? 0 : rank - 1;
    return (double)sorted[idx < n ? idx : n - 1] / 1e3;
}

/* make_body: a BODY_BYTES-long JSON object carrying the put's start time t (monotonic ns),
 * so that a consumer can tell the job's age. */
static size_t
make_body(char *buf, size_t size, uint64_t seq, uint64_t t_ns)
{
    int n = snprintf(buf, size, "{\"t\":%llu,\"seq\":%llu,\"pad\":\"", (unsigned long long)t_ns,
                     (unsigned long long)seq);
    size_t len = n > 0 ? (size_t)n : 0;
    while (len + 2 < BODY_BYTES && len + 3 < size) {
        buf[len++] = 'x';
    }
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = '\0';
    return len;
}

/* body_time: the t member of a body made by make_body; 0 when it has none. */
static uint64_t
body_time(const char *body)
{
    const char *p = strstr(body, "\"t\":");
    return p != NULL ? strtoull(p + 4, NULL, 10) : 0;
}

/* fail: records the worker's first error (printf-style) and stops the whole run. */
static void __attribute__((format(printf, 2, 3))) fail(worker *w, const char *fmt, ...)
{
    if (w->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap);
        va_end(ap);
    }
    atomic_store(&w->run->stop, true);
}

/* conn_open: connects c to 127.0.0.1:port with IO_TIMEOUT_S send and receive timeouts.
 * Returns false with the reason in err. */
static bool
conn_open(conn *c, int port, char *err, size_t errlen)
{
    c->off = c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return false;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return false;
    }
    return true;
}

static void
conn_close(conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* conn_write: sends all n bytes. Returns false on an error or a timeout. */
static bool
conn_write(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* conn_fill: reads more bytes into the buffer. Returns false on EOF, an error, a timeout or
 * a full buffer. */
static bool
conn_fill(conn *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof(c->buf)) {
        return false;
    }
    for (;;) {
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        c->len += (size_t)k;
        return true;
    }
}

/* conn_line: the next line without its CRLF into out (NUL-terminated). Returns false when
 * the connection fails or the line does not fit. */
static bool
conn_line(conn *c, char *out, size_t cap)
{
    for (;;) {
        char *s = c->buf + c->off;
        size_t avail = c->len - c->off;
        char *e = memchr(s, '\n', avail); /* every protocol here ends a line with CRLF */
        if (e != NULL && e > s && e[-1] == '\r') {
            e--;
            size_t n = (size_t)(e - s);
            if (n + 1 > cap) {
                return false;
            }
            memcpy(out, s, n);
            out[n] = '\0';
            c->off += n + 2;
            return true;
        }
        if (!conn_fill(c)) {
            return false;
        }
    }
}

/* conn_bytes: the next n bytes and a CRLF; the bytes go to out (NUL-terminated) when they
 * fit in cap. Returns false when the connection fails or no CRLF follows. */
static bool
conn_bytes(conn *c, size_t n, char *out, size_t cap)
{
    if (n + 2 > sizeof(c->buf)) {
        return false;
    }
    while (c->len - c->off < n + 2) {
        if (!conn_fill(c)) {
            return false;
        }
    }
    const char *s = c->buf + c->off;
    if (s[n] != '\r' || s[n + 1] != '\n') {
        return false;
    }
    if (out != NULL && cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(out, s, k);
        out[k] = '\0';
    }
    c->off += n + 2;
    return true;
}

/* expect: sends req and reads one reply line into line; true when it starts with want.
 * Otherwise records what happened as the worker's error (what names the request). */
static bool
expect(worker *w, const char *req, size_t n, const char *want, char *line, size_t cap,
       const char *what)
{
    const char *server = target_names[w->run->target];
    if (!conn_write(&w->c, req, n)) {
        fail(w, "%s on 127.0.0.1:%d: %s: send failed: %s", server, w->run->port, what,
             strerror(errno));
        return false;
    }
    if (!conn_line(&w->c, line, cap)) {
        fail(w, "%s on 127.0.0.1:%d: %s: no reply within %d s or connection lost", server,
             w->run->port, what, IO_TIMEOUT_S);
        return false;
    }
    if (strncmp(line, want, strlen(want)) != 0) {
        fail(w, "%s on 127.0.0.1:%d: %s: unexpected reply \"%.100s\"", server, w->run->port, what,
             line);
        return false;
    }
    return true;
}

/* consumed: counts one job consumed at now (if by the deadline) with the age its body tells. */
static void
consumed(worker *w, const char *body, uint64_t now)
{
    if (now > w->run->deadline_ns) {
        return;
    }
    if (w->run->drain) {
        long n = atomic_fetch_add(&w->run->taken, 1) + 1;
        if (n > w->run->jobs) {
            return;
        }
        if (n == w->run->jobs) {
            atomic_store(&w->run->drained_ns, now);
            atomic_store(&w->run->stop, true);
        }
    }
    uint64_t t = body_time(body);
    pthread_mutex_lock(&w->lock);
    w->done++;
    if (t > 0 && t <= now) {
        samples_push(&w->lat, now - t);
    }
    pthread_mutex_unlock(&w->lock);
}

/* setup: connects the worker and prepares its connection (tube, watch list). Returns false
 * with the error recorded. */
static bool
setup(worker *w)
{
    run *r = w->run;
    char req[256], line[256];
    int n;
    if (r->target == T_JOBQ) {
        int err = jobq_client_open(&w->client, URL_OF(r, w->index));
        if (err == JOBQ_OK) {
            err = jobq_ping(w->client);
        }
        if (err == JOBQ_OK && w->consumer) {
            const char *queues[] = {r->name};
            err = jobq_worker_open(&w->jw, w->client, queues, 1);
        }
        if (err != JOBQ_OK) {
            fail(w, "jobqd at %s: %s: %s", URL_OF(r, w->index), jobq_strerror(err), jobq_errmsg());
            return false;
        }
        return true;
    }
    w->c.fd = -1;
    if (!conn_open(&w->c, r->port, req, sizeof(req))) {
        fail(w, "%s: %s (is it running?)", target_names[r->target], req);
        return false;
    }
    if (r->target == T_REDIS) {
        return true;
    }
    if (!w->consumer) {
        n = snprintf(req, sizeof(req), "use %s\r\n", r->name);
        return expect(w, req, (size_t)n, "USING ", line, sizeof(line), "use");
    }
    n = snprintf(req, sizeof(req), "watch %s\r\n", r->name);
    if (!expect(w, req, (size_t)n, "WATCHING ", line, sizeof(line), "watch")) {
        return false;
    }
    if (strcmp(r->name, "default") == 0) {
        return true;
    }
    return expect(w, "ignore default\r\n", 16, "WATCHING ", line, sizeof(line), "ignore");
}

/* put: one job with body; true once the server acknowledged it. */
static bool
put(worker *w, const char *body, size_t len)
{
    run *r = w->run;
    char req[BODY_BYTES + 256], line[256];
    int n;
    switch (r->target) {
    case T_BEANSTALKD:
        n = snprintf(req, sizeof(req), "put 0 0 60 %zu\r\n%s\r\n", len, body);
        return expect(w, req, (size_t)n, "INSERTED ", line, sizeof(line), "put");
    case T_REDIS:
        n = snprintf(req, sizeof(req), "*3\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                     strlen(r->name), r->name, len, body);
        return expect(w, req, (size_t)n, ":", line, sizeof(line), "LPUSH");
    case T_JOBQ: {
        int64_t id;
        int err = jobq_submit(w->client, r->name, body, NULL, &id, NULL);
        if (err != JOBQ_OK) {
            fail(w, "jobqd at %s: submit: %s: %s", URL_OF(r, w->index), jobq_strerror(err),
                 jobq_errmsg());
            return false;
        }
        return true;
    }
    }
    return false;
}

/* take_beanstalkd: reserves one job (waiting at most 1 s) and deletes it. Returns false on
 * an error (recorded); a wait that timed out is not one. */
static bool
take_beanstalkd(worker *w)
{
    char line[256], body[BODY_BYTES + 64], req[64];
    if (!expect(w, "reserve-with-timeout 1\r\n", 24, "", line, sizeof(line), "reserve")) {
        return false;
    }
    unsigned long long id;
    size_t bytes;
    if (strcmp(line, "TIMED_OUT") == 0 || strcmp(line, "DEADLINE_SOON") == 0) {
        return true;
    }
    if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2) {
        fail(w, "beanstalkd on 127.0.0.1:%d: reserve: unexpected reply \"%.100s\"", w->run->port,
             line);
        return false;
    }
    if (!conn_bytes(&w->c, bytes, body, sizeof(body))) {
        fail(w, "beanstalkd on 127.0.0.1:%d: reserve: a %zu-byte body did not arrive", w->run->port,
             bytes);
        return false;
    }
    int n = snprintf(req, sizeof(req), "delete %llu\r\n", id);
    if (!expect(w, req, (size_t)n, "DELETED", line, sizeof(line), "delete")) {
        return false;
    }
    consumed(w, body, mono_ns());
    return true;
}

/* take_redis: pops one job with BRPOP (waiting at most 1 s). Returns false on an error
 * (recorded); a wait that timed out is not one. */
static bool
take_redis(worker *w)
{
    run *r = w->run;
    char req[256], line[256], body[BODY_BYTES + 64];
    int n = snprintf(req, sizeof(req), "*3\r\n$5\r\nBRPOP\r\n$%zu\r\n%s\r\n$1\r\n1\r\n",
                     strlen(r->name), r->name);
    if (!expect(w, req, (size_t)n, "*", line, sizeof(line), "BRPOP")) {
        return false;
    }
    if (strcmp(line, "*-1") == 0) {
        return true;
    }
    size_t klen, blen;
    bool ok = strcmp(line, "*2") == 0 && conn_line(&w->c, line, sizeof(line)) &&
              sscanf(line, "$%zu", &klen) == 1 && conn_bytes(&w->c, klen, NULL, 0) &&
              conn_line(&w->c, line, sizeof(line)) && sscanf(line, "$%zu", &blen) == 1 &&
              conn_bytes(&w->c, blen, body, sizeof(body));
    if (!ok) {
        fail(w, "redis on 127.0.0.1:%d: BRPOP: unreadable reply (last line \"%.100s\")", r->port,
             line);
        return false;
    }
    consumed(w, body, mono_ns());
    return true;
}

/* jobq_noop_cb: the jobq consumers' handler: counts the job and succeeds. */
static int
jobq_noop_cb(void *arg, const jobq_lease *job, char **resultp, char **errorp)
{
    consumed(arg, jobq_lease_payload(job), mono_ns());
    return 0;
}

/* put_chunk: puts n jobs in one round trip on c (beanstalkd: n pipelined puts, then their n
 * replies; Redis: one LPUSH of n values; jobq: one submit_batch on client), numbered from
 * seq. Returns false with the reason in err. */
static bool
put_chunk(run *r, conn *c, jobq_client *client, uint64_t seq, int n, char *err, size_t errlen)
{
    char body[BODY_BYTES + 64], line[256];
    if (r->target == T_JOBQ) {
        static char bodies[1000][BODY_BYTES + 64];
        const char *payloads[1000];
        static int64_t ids[1000];
        if (n > 1000) {
            n = 1000;
        }
        for (int i = 0; i < n; i++) {
            make_body(bodies[i], sizeof(bodies[i]), seq + (uint64_t)i, mono_ns());
            payloads[i] = bodies[i];
        }
        int e = jobq_submit_batch(client, r->name, payloads, (size_t)n, NULL, ids);
        if (e != JOBQ_OK) {
            snprintf(err, errlen, "jobqd at %s: submit_batch: %s", URL_OF(r, 0), jobq_errmsg());
            return false;
        }
        return true;
    }
    size_t cap = (size_t)n * (BODY_BYTES + 96) + 256, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (r->target == T_REDIS) {
        len += (size_t)snprintf(buf, cap, "*%d\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n", n + 2,
                                strlen(r->name), r->name);
    }
    for (int i = 0; i < n; i++) {
        size_t bl = make_body(body, sizeof(body), seq + (uint64_t)i, mono_ns());
        len += (size_t)snprintf(
            buf + len, cap - len,
            r->target == T_REDIS ? "$%zu\r\n%s\r\n" : "put 0 0 60 %zu\r\n%s\r\n", bl, body);
    }
    bool ok = conn_write(c, buf, len);
    free(buf);
    for (int i = 0; ok && i < (r->target == T_REDIS ? 1 : n); i++) {
        ok = conn_line(c, line, sizeof(line)) &&
             strncmp(line, r->target == T_REDIS ? ":" : "INSERTED ",
                     r->target == T_REDIS ? 1 : 9) == 0;
    }
    if (!ok) {
        snprintf(err, errlen, "%s on 127.0.0.1:%d: a put of %d jobs failed or was refused",
                 target_names[r->target], r->port, n);
    }
    return ok;
}

/* open_putter: the connection (or client) put_chunk uses; false with the reason in err. */
static bool
open_putter(run *r, conn *c, jobq_client **client, char *err, size_t errlen)
{
    char req[256], line[256];
    c->fd = -1;
    *client = NULL;
    if (r->target == T_JOBQ) {
        if (jobq_client_open(client, URL_OF(r, 0)) != JOBQ_OK) {
            snprintf(err, errlen, "jobqd at %s: %s", URL_OF(r, 0), jobq_errmsg());
            return false;
        }
        return true;
    }
    if (!conn_open(c, r->port, err, errlen)) {
        return false;
    }
    if (r->target == T_BEANSTALKD) {
        int n = snprintf(req, sizeof(req), "use %s\r\n", r->name);
        if (!conn_write(c, req, (size_t)n) || !conn_line(c, line, sizeof(line)) ||
            strncmp(line, "USING ", 6) != 0) {
            snprintf(err, errlen, "beanstalkd on 127.0.0.1:%d: use %s failed", r->port, r->name);
            conn_close(c);
            return false;
        }
    }
    return true;
}

/* cmd_batch: puts chunks of rows jobs in one round trip each (put_chunk) for seconds;
 * prints jobs/s and p50/p99 per chunk. */
static int
cmd_batch(run *r, int rows)
{
    static conn c;
    jobq_client *client;
    char err[256];
    samples lat = {0};
    if (!open_putter(r, &c, &client, err, sizeof(err))) {
        fprintf(stderr, "jobq-peer-load: %s\n", err);
        return EXIT_FAILED;
    }
    uint64_t start = mono_ns(), deadline = start + (uint64_t)(r->seconds * 1e9), now = start;
    uint64_t total = 0;
    int rc = EXIT_OK;
    while (now < deadline) {
        uint64_t t0 = mono_ns();
        if (!put_chunk(r, &c, client, total, rows, err, sizeof(err))) {
            fprintf(stderr, "jobq-peer-load: %s\n", err);
            rc = EXIT_FAILED;
            break;
        }
        now = mono_ns();
        samples_push(&lat, now - t0);
        total += (uint64_t)rows;
    }
    double secs = (double)(now - start) / 1e9;
    qsort(lat.v, lat.n, sizeof(uint64_t), cmp_u64);
    printf("result target=%s workload=batch rows_per_req=%d seconds=%.3f jobs=%llu "
           "jobs_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%d\n",
           target_names[r->target], rows, secs, (unsigned long long)total,
           secs > 0 ? (double)total / secs : 0.0, percentile_us(lat.v, lat.n, 0.50),
           percentile_us(lat.v, lat.n, 0.99), rc == EXIT_OK ? 0 : 1);
    conn_close(&c);
    jobq_client_close(client);
    free(lat.v);
    return rc;
}

/* preload: puts the drain's backlog of r->jobs jobs, 1,000 per round trip. */
static bool
preload(run *r)
{
    static conn c;
    jobq_client *client;
    char err[256];
    bool ok = open_putter(r, &c, &client, err, sizeof(err));
    for (long done = 0; ok && done < r->jobs; done += 1000) {
        int n = r->jobs - done < 1000 ? (int)(r->jobs - done) : 1000;
        ok = put_chunk(r, &c, client, (uint64_t)done, n, err, sizeof(err));
    }
    if (!ok) {
        fprintf(stderr, "jobq-peer-load: drain: preload: %s\n", err);
    }
    conn_close(&c);
    jobq_client_close(client);
    return ok;
}

static void *
worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->run;
    bool ok = setup(w);
    pthread_barrier_wait(&r->barrier); /* every connection is up (or failed) */
    pthread_barrier_wait(&r->barrier); /* main has set start_ns and deadline_ns */
    if (!ok) {
        return NULL;
    }
    if (w->consumer && r->target == T_JOBQ) {
        int err = jobq_worker_run(w->jw, jobq_noop_cb, w, r->concurrency);
        if (err != JOBQ_OK) {
            fail(w, "jobqd at %s: worker: %s: %s", URL_OF(r, w->index), jobq_strerror(err),
                 jobq_errmsg());
        }
        return NULL;
    }
    char body[BODY_BYTES + 64];
    uint64_t seq = (uint64_t)w->index << 40;
    /* With --rate, each producer puts on a timetable of its own (staggered among them); one
     * that falls behind puts at once until it is on time again (an open loop: a slow reply
     * does not lower the offered load). */
    uint64_t every = 0, next = 0;
    if (!w->consumer && r->rate > 0) {
        every = (uint64_t)((double)r->producers * 1e9 / r->rate);
        next = r->start_ns + every * (uint64_t)w->index / (uint64_t)r->producers;
    }
    while (!atomic_load(&r->stop)) {
        if (w->consumer) {
            bool got = r->target == T_BEANSTALKD ? take_beanstalkd(w) : take_redis(w);
            if (!got) {
                break;
            }
            continue;
        }
        if (every > 0) {
            if (next >= r->deadline_ns) {
                break;
            }
            struct timespec at = {.tv_sec = (time_t)(next / 1000000000u),
                                  .tv_nsec = (long)(next % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {
            }
            next += every;
        }
        uint64_t t0 = mono_ns();
        if (t0 >= r->deadline_ns) {
            break;
        }
        size_t len = make_body(body, sizeof(body), ++seq, t0);
        if (!put(w, body, len)) {
            break;
        }
        uint64_t t1 = mono_ns();
        if (t1 <= r->deadline_ns) {
            w->done++;
            if (!r->e2e) {
                samples_push(&w->lat, t1 - t0);
            }
        }
    }
    return NULL;
}

/* slot: what one consumer process hands back through shared memory when it ends. */
typedef struct slot {
    uint64_t done, errors, n;
    char err[256];
    uint64_t lat[SLOT_SAMPLES];
} slot;

/* read_full: n bytes from fd (EINTR retried); false at EOF or on an error. */
static bool
read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void *
child_worker_main(void *arg)
{
    worker *w = arg;
    int err = jobq_worker_run(w->jw, jobq_noop_cb, w, w->run->concurrency);
    if (err != JOBQ_OK) {
        fail(w, "jobqd at %s: worker: %s: %s", URL_OF(w->run, w->index), jobq_strerror(err),
             jobq_errmsg());
    }
    return NULL;
}

/* consumer_process: the body of a forked jobq consumer: sets up, says so on ready_fd ('r' or
 * 'f'), reads the run's start and deadline from go_fd, runs until stop_fd reaches EOF, then
 * hands its counts and latencies back in sl. Never returns. */
static void
consumer_process(worker *w, slot *sl, int ready_fd, int go_fd, int stop_fd)
{
    run *r = w->run;
    bool ok = setup(w);
    uint64_t times[2];
    if (write(ready_fd, ok ? "r" : "f", 1) != 1 || !ok || !read_full(go_fd, times, sizeof(times))) {
        snprintf(sl->err, sizeof(sl->err), "%s", w->err);
        sl->errors = w->errors > 0 ? w->errors : 1;
        _exit(EXIT_FAILED);
    }
    r->start_ns = times[0];
    r->deadline_ns = times[1];
    pthread_create(&w->tid, NULL, child_worker_main, w);
    char c;
    while (read(stop_fd, &c, 1) < 0 && errno == EINTR) {
    }
    atomic_store(&r->stop, true);
    jobq_worker_stop(w->jw);
    pthread_join(w->tid, NULL);
    sl->done = w->done;
    sl->errors = w->errors;
    snprintf(sl->err, sizeof(sl->err), "%s", w->err);
    sl->n = w->lat.n < SLOT_SAMPLES ? w->lat.n : SLOT_SAMPLES;
    memcpy(sl->lat, w->lat.v, sl->n * sizeof(uint64_t));
    jobq_worker_close(w->jw);
    jobq_client_close(w->client);
    _exit(EXIT_OK);
}

/* merge: all of the chosen workers' samples, sorted, into *out (NULL when out of memory). */
static size_t
merge(worker *ws, int from, int to, uint64_t **out)
{
    size_t total = 0;
    for (int i = from; i < to; i++) {
        total += ws[i].lat.n;
    }
    uint64_t *all = malloc((total > 0 ? total : 1) * sizeof(uint64_t));
    size_t k = 0;
    for (int i = from; all != NULL && i < to; i++) {
        memcpy(all + k, ws[i].lat.v, ws[i].lat.n * sizeof(uint64_t));
        k += ws[i].lat.n;
    }
    if (all != NULL) {
        qsort(all, k, sizeof(uint64_t), cmp_u64);
    }
    *out = all;
    return all != NULL ? k : 0;
}

/* cmd_load: runs one workload and prints its result line. Returns an exit status. */
static int
cmd_load(run *r)
{
    if (r->drain) {
        r->producers = 0;
        r->e2e = true; /* consumers, counted as such */
        atomic_init(&r->taken, 0);
        atomic_init(&r->drained_ns, 0);
        if (!preload(r)) {
            return EXIT_FAILED;
        }
    }
    int nthreads = r->producers + (r->e2e ? r->consumers : 0);
    worker *ws = calloc((size_t)nthreads, sizeof(worker));
    if (ws == NULL || pthread_barrier_init(&r->barrier, NULL, (unsigned)nthreads + 1) != 0) {
        fprintf(stderr, "jobq-peer-load: out of memory\n");
        free(ws);
        return EXIT_FAILED;
    }
    atomic_init(&r->stop, false);
    r->deadline_ns = UINT64_MAX;
    for (int i = 0; i < nthreads; i++) {
        ws[i].run = r;
        ws[i].index = i;
        ws[i].consumer = i >= r->producers;
        ws[i].c.fd = -1;
        pthread_mutex_init(&ws[i].lock, NULL);
    }
    /* Consumer processes are forked before any thread exists; each opens its own client. */
    bool procs = r->processes && r->target == T_JOBQ && r->e2e && !r->drain;
    int nkids = procs ? r->consumers : 0;
    pid_t kids[MAX_THREADS];
    slot *slots = NULL;
    int ready[2] = {-1, -1}, go[2] = {-1, -1}, stopp[2] = {-1, -1};
    if (procs) {
        slots = mmap(NULL, (size_t)nkids * sizeof(slot), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (slots == MAP_FAILED || pipe(ready) != 0 || pipe(go) != 0 || pipe(stopp) != 0) {
            fprintf(stderr, "jobq-peer-load: mmap or pipe: %s\n", strerror(errno));
            return EXIT_FAILED;
        }
        fflush(NULL);
        for (int i = 0; i < nkids; i++) {
            kids[i] = fork();
            if (kids[i] < 0) {
                fprintf(stderr, "jobq-peer-load: fork: %s\n", strerror(errno));
                exit(EXIT_FAILED); /* the children see EOF on go and end */
            }
            if (kids[i] == 0) {
                close(ready[0]);
                close(go[1]);
                close(stopp[1]);
                consumer_process(&ws[r->producers + i], &slots[i], ready[1], go[0], stopp[0]);
            }
        }
        close(ready[1]);
        close(go[0]);
        close(stopp[0]);
        for (int i = 0; i < nkids; i++) {
            struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
            char c = 'f';
            if (poll(&pfd, 1, READY_TIMEOUT_MS) != 1 || read(ready[0], &c, 1) != 1 || c != 'r') {
                fprintf(stderr, "jobq-peer-load: a consumer process did not start (%s)\n",
                        c == 'f' ? "it could not reach jobqd" : "no word in 30 s");
                exit(EXIT_FAILED); /* the children see EOF on go and end */
            }
        }
        nthreads = r->producers;
        pthread_barrier_destroy(&r->barrier);
        pthread_barrier_init(&r->barrier, NULL, (unsigned)nthreads + 1);
    }
    int started = 0;
    for (; started < nthreads; started++) {
        worker *w = &ws[started];
        int rv = pthread_create(&w->tid, NULL, worker_main, w);
        if (rv != 0) {
            fprintf(stderr, "jobq-peer-load: cannot start thread %d: %s\n", started, strerror(rv));
            exit(EXIT_FAILED); /* the barrier would wait for it forever */
        }
    }
    pthread_barrier_wait(&r->barrier);
    r->start_ns = mono_ns();
    r->deadline_ns = r->start_ns + (uint64_t)(r->seconds * 1e9);
    for (int i = 0; i < nkids; i++) {
        uint64_t times[2] = {r->start_ns, r->deadline_ns};
        if (write(go[1], times, sizeof(times)) != (ssize_t)sizeof(times)) {
            fprintf(stderr, "jobq-peer-load: cannot start the consumer processes\n");
            exit(EXIT_FAILED);
        }
    }
    pthread_barrier_wait(&r->barrier);
    /* Sleep to the deadline in slices, so that a failed thread ends the run early. */
    for (uint64_t now = mono_ns(); now < r->deadline_ns && !atomic_load(&r->stop);
         now = mono_ns()) {
        uint64_t left = r->deadline_ns - now;
        uint64_t slice = r->drain ? 1000000u : 50000000u;
        sleep_ns(left < slice ? left : slice);
    }
    uint64_t end = mono_ns();
    atomic_store(&r->stop, true);
    for (int i = 0; i < nthreads; i++) {
        jobq_worker_stop(ws[i].jw);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
    }
    if (procs) {
        close(stopp[1]); /* every consumer process sees EOF, stops and reports */
        for (int i = 0; i < nkids; i++) {
            worker *w = &ws[r->producers + i];
            int st;
            if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) ||
                WEXITSTATUS(st) != EXIT_OK) {
                snprintf(w->err, sizeof(w->err), "consumer process %d failed: %.200s", i,
                         slots[i].err[0] != '\0' ? slots[i].err : "it died");
                w->errors++;
                continue;
            }
            w->done = slots[i].done;
            w->errors = slots[i].errors;
            snprintf(w->err, sizeof(w->err), "%s", slots[i].err);
            for (uint64_t k = 0; k < slots[i].n; k++) {
                samples_push(&w->lat, slots[i].lat[k]);
            }
        }
        munmap(slots, (size_t)nkids * sizeof(slot));
        close(ready[0]);
        close(go[1]);
        nthreads += nkids;
    }
    uint64_t drained = r->drain ? atomic_load(&r->drained_ns) : 0;
    if (drained != 0) {
        end = drained;
    }
    double secs = (double)((end < r->deadline_ns ? end : r->deadline_ns) - r->start_ns) / 1e9;
    uint64_t puts = 0, jobs = 0, errors = 0;
    for (int i = 0; i < nthreads; i++) {
        if (ws[i].consumer) {
            jobs += ws[i].done;
        } else {
            puts += ws[i].done;
        }
        if (ws[i].errors > 0 && errors == 0) {
            fprintf(stderr, "jobq-peer-load: %s\n", ws[i].err);
        }
        errors += ws[i].errors;
    }
    if (!r->e2e) {
        jobs = puts;
    }
    uint64_t *lat;
    size_t n = merge(ws, r->e2e ? r->producers : 0, r->e2e ? nthreads : r->producers, &lat);
    double p50 = lat != NULL ? percentile_us(lat, n, 0.50) : -1;
    double p99 = lat != NULL ? percentile_us(lat, n, 0.99) : -1;
    if (r->drain) {
        puts = (uint64_t)r->jobs; /* put before the clock started */
        p50 = p99 = -1;           /* a job's age there is how long it waited in the backlog */
    }
    printf("result target=%s workload=%s producers=%d consumers=%d seconds=%.3f puts=%llu "
           "put_per_s=%.1f jobs=%llu jobs_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu",
           target_names[r->target],
           r->drain ? "drain"
           : r->e2e ? "e2e"
                    : "submit",
           r->producers, r->e2e ? r->consumers : 0, secs, (unsigned long long)puts,
           secs > 0 ? (double)puts / secs : 0.0, (unsigned long long)jobs,
           secs > 0 ? (double)jobs / secs : 0.0, p50, p99, (unsigned long long)errors);
    if (r->drain) {
        printf(" backlog=%ld unfinished=%llu", r->jobs,
               (unsigned long long)(drained != 0 ? 0 : (uint64_t)r->jobs - jobs));
    }
    printf("\n");
    free(lat);
    for (int i = 0; i < nthreads; i++) {
        conn_close(&ws[i].c);
        jobq_worker_close(ws[i].jw);
        jobq_client_close(ws[i].client);
        free(ws[i].lat.v);
        pthread_mutex_destroy(&ws[i].lock);
    }
    pthread_barrier_destroy(&r->barrier);
    free(ws);
    return errors == 0 && jobs > 0 ? EXIT_OK : EXIT_FAILED;
}

/* cmd_port: prints a TCP port of 127.0.0.1 that was free a moment ago. */
static int
cmd_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "jobq-peer-load: cannot find a free port on 127.0.0.1: %s\n",
                strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return EXIT_FAILED;
    }
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return EXIT_OK;
}

/* cmd_wait: waits up to seconds until the server on port answers a stats (beanstalkd) or a
 * PING (redis). */
static int
cmd_wait(enum target t, int port, double seconds)
{
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
    char err[256] = "", line[256];
    static conn c;
    for (;;) {
        if (conn_open(&c, port, err, sizeof(err))) {
            const char *req = t == T_BEANSTALKD ? "stats\r\n" : "*1\r\n$4\r\nPING\r\n";
            const char *want = t == T_BEANSTALKD ? "OK " : "+PONG";
            bool ok = conn_write(&c, req, strlen(req)) && conn_line(&c, line, sizeof(line));
            conn_close(&c);
            if (ok && strncmp(line, want, strlen(want)) == 0) {
                return EXIT_OK;
            }
            snprintf(err, sizeof(err), "answered \"%.100s\"", ok ? line : "nothing");
        }
        if (mono_ns() >= end) {
            fprintf(stderr, "jobq-peer-load: %s on 127.0.0.1:%d not ready after %.0f s: %s\n",
                    target_names[t], port, seconds, err);
            return EXIT_FAILED;
        }
        sleep_ns(WAIT_STEP_MS * 1000000u);
    }
}

/* read_file: the whole file as a NUL-terminated string (caller frees), or NULL. */
static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *buf = malloc(SCHEMA_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, SCHEMA_MAX, f) : 0;
    bool ok = buf != NULL && !ferror(f) && feof(f);
    fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* cmd_sqlite: inserts jobq's job rows into a new database at path (schemas applied in order)
 * in transactions of rows rows with WAL and synchronous=FULL, for seconds; prints the rate
 * and the per-transaction latency. */
static int
cmd_sqlite(const char *path, const char *const *schemas, int nschemas, int rows, double seconds)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    char *msg = NULL;
    samples lat = {0};
    int rc = EXIT_FAILED;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fprintf(stderr, "jobq-peer-load: cannot open %s: %s\n", path,
                db != NULL ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    /* The daemon's own settings for durability = full (daemon/store.c). */
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                     "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "jobq-peer-load: %s: pragmas: %s\n", path, msg);
        goto done;
    }
    for (int i = 0; i < nschemas; i++) {
        char *sql = read_file(schemas[i]);
        if (sql == NULL) {
            fprintf(stderr, "jobq-peer-load: cannot read schema %s (missing or over %d bytes)\n",
                    schemas[i], SCHEMA_MAX);
            goto done;
        }
        int src = sqlite3_exec(db, sql, NULL, NULL, &msg);
        free(sql);
        if (src != SQLITE_OK) {
            fprintf(stderr, "jobq-peer-load: schema %s: %s\n", schemas[i], msg);
            goto done;
        }
    }
    /* The daemon's submit statement (daemon/store.c, S_INSERT). */
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO jobs (queue, payload, priority, state, run_at, "
                           "max_attempts, timeout_ms, key, created_at) VALUES (?1, ?2, ?3, ?4, "
                           "?5, ?6, ?7, ?8, ?9)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "jobq-peer-load: %s: prepare: %s (was the jobs schema applied?)\n", path,
                sqlite3_errmsg(db));
        goto done;
    }
    char body[BODY_BYTES + 64];
    uint64_t start = mono_ns(), deadline = start + (uint64_t)(seconds * 1e9), now = start;
    uint64_t total = 0, seq = 0;
    while (now < deadline) {
        uint64_t t0 = mono_ns();
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
            fprintf(stderr, "jobq-peer-load: %s: begin: %s\n", path, msg);
            goto done;
        }
        int64_t ms = wall_ms();
        for (int i = 0; i < rows; i++) {
            size_t len = make_body(body, sizeof(body), ++seq, t0);
            sqlite3_bind_text(ins, 1, "bench", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, body, (int)len, SQLITE_STATIC);
            sqlite3_bind_int(ins, 3, 0);
            sqlite3_bind_int(ins, 4, 1); /* ready */
            sqlite3_bind_int64(ins, 5, ms);
            sqlite3_bind_int(ins, 6, 8);
            sqlite3_bind_int64(ins, 7, 30000);
            sqlite3_bind_null(ins, 8);
            sqlite3_bind_int64(ins, 9, ms);
            int src = sqlite3_step(ins);
            sqlite3_reset(ins);
            if (src != SQLITE_DONE) {
                fprintf(stderr, "jobq-peer-load: %s: insert: %s\n", path, sqlite3_errmsg(db));
                goto done;
            }
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            fprintf(stderr, "jobq-peer-load: %s: commit: %s\n", path, msg);
            goto done;
        }
        now = mono_ns();
        samples_push(&lat, now - t0);
        total += (uint64_t)rows;
    }
    double secs = (double)(now - start) / 1e9;
    qsort(lat.v, lat.n, sizeof(uint64_t), cmp_u64);
    printf("result target=sqlite workload=batch rows_per_txn=%d seconds=%.3f jobs=%llu "
           "jobs_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=0\n",
           rows, secs, (unsigned long long)total, secs > 0 ? (double)total / secs : 0.0,
           percentile_us(lat.v, lat.n, 0.50), percentile_us(lat.v, lat.n, 0.99));
    rc = EXIT_OK;
done:
    sqlite3_free(msg);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    free(lat.v);
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: jobq-peer-load port\n"
            "       jobq-peer-load wait beanstalkd|redis PORT [--seconds S]\n"
            "       jobq-peer-load beanstalkd|redis PORT submit|e2e|drain|batch [OPTIONS]\n"
            "       jobq-peer-load jobq URL[,URL...] submit|e2e|drain|batch [OPTIONS]\n"
            "       jobq-peer-load sqlite DB --schema FILE... [--rows N] [--seconds S]\n"
            "\n"
            "Every server is on 127.0.0.1 (jobq: a tcp://127.0.0.1:PORT or ipc:// URL; with\n"
            "several, nodes of one cluster, producer or consumer i uses the (i mod n)th).\n"
            "submit: producers put %d-byte bodies (beanstalkd put, Redis LPUSH, jobq submit),\n"
            "one request in flight each; prints puts/s and p50/p99 per put.\n"
            "e2e: the same producers plus consumers (beanstalkd reserve + delete, Redis BRPOP,\n"
            "jobq_worker_run with a no-op handler); prints jobs consumed/s and p50/p99 of a\n"
            "job's age (put start to consumed).\n"
            "drain: --jobs N jobs are put first (1,000 per round trip), then the consumers\n"
            "take them; prints jobs consumed/s until the last (--seconds caps the wait).\n"
            "batch: one thread puts --rows jobs (at most 1,000) per round trip (beanstalkd:\n"
            "pipelined puts, Redis: one LPUSH, jobq: submit_batch); prints jobs/s, p50/p99\n"
            "per round trip.\n"
            "sqlite: jobq's INSERT into a new database with the given schema files, N rows per\n"
            "transaction, WAL and synchronous=FULL; prints rows/s and p50/p99 per transaction.\n"
            "\n"
            "  --producers N    producer threads, one connection each (default 16)\n"
            "  --consumers N    consumer threads, one connection each (default 4)\n"
            "  --concurrency N  jobq: jobs each consumer runs at once (default 1)\n"
            "  --processes      jobq e2e: each consumer in a process of its own\n"
            "  --name NAME      beanstalkd tube, Redis list or jobq queue (default bench)\n"
            "  --seconds S      how long the workload runs (default %.0f)\n"
            "  --rate R         submit, e2e: R jobs/s from all producers together, each on a\n"
            "                   fixed timetable (default: as fast as they can)\n"
            "  --rows N         sqlite: rows per transaction, batch: jobs per put (default %d)\n"
            "  --jobs N         drain: the backlog (default %d)\n"
            "  --schema FILE    sqlite: a schema file to apply first (repeatable)\n",
            BODY_BYTES, DEFAULT_SECONDS, DEFAULT_TXN_ROWS, DEFAULT_BACKLOG);
}

/* parse_int: s as an integer in lo..hi, or -1. */
static long
parse_int(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && v >= lo && v <= hi ? v : -1;
}

static int
bad(const char *what, const char *value)
{
    fprintf(stderr, "jobq-peer-load: %s, not \"%s\"\n", what, value);
    usage(stderr);
    return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    static run r = {.producers = 16, .consumers = 4, .concurrency = 1, .name = "bench"};
    const char *schemas[MAX_SCHEMAS];
    int nschemas = 0;
    long rows = DEFAULT_TXN_ROWS;
    long jobs = DEFAULT_BACKLOG;
    double seconds = DEFAULT_SECONDS;
    static const struct option opts[] = {
        {"producers", required_argument, NULL, 'p'},
        {"consumers", required_argument, NULL, 'c'},
        {"concurrency", required_argument, NULL, 'C'},
        {"name", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 's'},
        {"rows", required_argument, NULL, 'r'},
        {"schema", required_argument, NULL, 'S'},
        {"jobs", required_argument, NULL, 'j'},
        {"processes", no_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'p':
        case 'c':
            if ((v = parse_int(optarg, ch == 'c' ? 0 : 1, MAX_THREADS / 2)) < 0) {
                return bad("--producers and --consumers take 1 to 128 (consumers: 0 to 128)",
                           optarg);
            }
            *(ch == 'p' ? &r.producers : &r.consumers) = (int)v;
            break;
        case 'C':
            if ((v = parse_int(optarg, 1, 64)) < 0) {
                return bad("--concurrency takes 1 to 64", optarg);
            }
            r.concurrency = (int)v;
            break;
        case 'n':
            if (strlen(optarg) == 0 || strlen(optarg) > 64 || strpbrk(optarg, " \r\n") != NULL) {
                return bad("--name takes 1 to 64 characters without spaces", optarg);
            }
            r.name = optarg;
            break;
        case 's':
            seconds = strtod(optarg, &end);
            if (*end != '\0' || !(seconds > 0 && seconds <= MAX_SECONDS)) {
                return bad("--seconds takes a number from 0 to 3600", optarg);
            }
            break;
        case 'r':
            if ((rows = parse_int(optarg, 1, 1000000)) < 0) {
                return bad("--rows takes 1 to 1000000", optarg);
            }
            break;
        case 'P':
            r.processes = true;
            break;
        case 'R':
            r.rate = strtod(optarg, &end);
            if (*end != '\0' || !(r.rate > 0 && r.rate <= 1e7)) {
                return bad("--rate takes jobs per second, more than 0", optarg);
            }
            break;
        case 'j':
            if ((jobs = parse_int(optarg, 1, 10000000)) < 0) {
                return bad("--jobs takes 1 to 10000000", optarg);
            }
            break;
        case 'S':
            if (nschemas == MAX_SCHEMAS) {
                return bad("--schema is given at most 16 times", optarg);
            }
            schemas[nschemas++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case ':':
            fprintf(stderr, "jobq-peer-load: option %s needs a value\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "jobq-peer-load: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    char **pos = argv + optind;
    int npos = argc - optind;
    if (npos == 1 && strcmp(pos[0], "port") == 0) {
        return cmd_port();
    }
    if (npos == 3 && strcmp(pos[0], "wait") == 0) {
        enum target t = strcmp(pos[1], "redis") == 0 ? T_REDIS : T_BEANSTALKD;
        if ((strcmp(pos[1], "redis") != 0 && strcmp(pos[1], "beanstalkd") != 0) ||
            (v = parse_int(pos[2], 1, 65535)) < 0) {
            return bad("wait takes beanstalkd or redis and a port", pos[1]);
        }
        return cmd_wait(t, (int)v, seconds);
    }
    if (npos == 2 && strcmp(pos[0], "sqlite") == 0) {
        if (nschemas == 0) {
            return bad("sqlite needs --schema with jobq's migrations", pos[1]);
        }
        return cmd_sqlite(pos[1], schemas, nschemas, (int)rows, seconds);
    }
    if (npos != 3 || (strcmp(pos[2], "submit") != 0 && strcmp(pos[2], "e2e") != 0 &&
                      strcmp(pos[2], "drain") != 0 && strcmp(pos[2], "batch") != 0)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    r.e2e = strcmp(pos[2], "e2e") == 0;
    r.drain = strcmp(pos[2], "drain") == 0;
    r.jobs = jobs;
    r.seconds = seconds;
    if (strcmp(pos[0], "beanstalkd") == 0 || strcmp(pos[0], "redis") == 0) {
        r.target = strcmp(pos[0], "redis") == 0 ? T_REDIS : T_BEANSTALKD;
        if ((v = parse_int(pos[1], 1, 65535)) < 0) {
            return bad("the port is 1 to 65535", pos[1]);
        }
        r.port = (int)v;
    } else if (strcmp(pos[0], "jobq") == 0) {
        r.target = T_JOBQ;
        char *list = strdup(pos[1]), *save = NULL;
        if (list == NULL) {
            return bad("out of memory reading", pos[1]);
        }
        for (char *u = strtok_r(list, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
            if (strncmp(u, "tcp://127.0.0.1:", 16) != 0 && strncmp(u, "ipc://", 6) != 0) {
                return bad("a jobq URL is tcp://127.0.0.1:PORT or ipc://PATH (loopback only)", u);
            }
            if (r.nurls == (int)(sizeof(r.urls) / sizeof(r.urls[0]))) {
                return bad("at most 8 jobq URLs", pos[1]);
            }
            r.urls[r.nurls++] = u; /* list is kept to the end */
        }
        if (r.nurls == 0) {
            return bad("the jobq URL is tcp://127.0.0.1:PORT or ipc://PATH", pos[1]);
        }
    } else {
        return bad("the target is beanstalkd, redis, jobq or sqlite", pos[0]);
    }
    if ((r.e2e || r.drain) && r.consumers == 0) {
        return bad("e2e and drain need at least one consumer", "0");
    }
    if (strcmp(pos[2], "batch") == 0) {
        return cmd_batch(&r, (int)(rows < 1000 ? rows : 1000));
    }
    return cmd_load(&r);
}
