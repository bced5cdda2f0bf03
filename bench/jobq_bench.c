/* jobq_bench.c: jobq-bench, a load generator that drives a running jobqd through libjobq
 * and reports throughput, latency percentiles, idle CPU and memory of the daemon. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "jobq.h"

#define BATCH_SIZE 1000       /* jobs per submit_batch request */
#define PAYLOAD_BYTES 200     /* the size of every job's payload */
#define CALL_TIMEOUT_MS 10000 /* bounds the tail of a run: in-flight calls at the deadline */
#define MAX_PRODUCERS 1024
#define MAX_EXEC_QUEUES 8
#define MAX_ROWS 64
#define EXEC_POLL_MS 10        /* how often exec reads the stats while it keeps the backlog */
#define DRAIN_LIMIT_S 60.0     /* the longest exec/latency wait for a queue to run empty */
#define LATENCY_JOBS 200       /* default jobs of the latency workload */
#define RSS_JOBS 1000000       /* default jobs of the rss workload */
#define RSS_JOBS_QUICK 100000  /* ... with --quick */
#define RSS_THREADS 4          /* producer threads of the rss workload */
#define RSS_LIMIT_S 300.0      /* the rss workload stops after this even if not all were sent */
#define IDLE_SECONDS 10.0      /* idle measures this long ... */
#define IDLE_SECONDS_QUICK 2.0 /* ... or this with --quick */
#define QUICK_SECONDS 2.0      /* every timed row with --quick */
#define SMALL_BATCH 100        /* jobs per submit_batch of the batch100 rows */
#define LOAD_THREADS 64        /* senders of the fixed-load rows (open loop) */
#define LOAD_SAMPLES 1000      /* jobs whose started_at load.start reads back */

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACH = 3 };

/* row: the measured result of one workload at one setting. Fields that do not apply are
 * negative (numbers) or NULL/empty (strings) and print as "-". */
typedef struct row {
    const char *workload;
    char queue[64];
    int producers;
    uint64_t jobs;
    uint64_t requests;
    uint64_t errors;
    double seconds;
    double rate;      /* jobs/s; < 0: not applicable */
    const char *unit; /* unit of the percentiles ("us", "ms"); NULL: no percentiles */
    double p50, p99, p999, max;
    char note[160];  /* free text for the table */
    char extra[320]; /* more JSON members, each starting with ", " */
} row;

/* producer: one thread's state and samples. */
typedef struct producer {
    pthread_t thread;
    jobq_client *client;
    const char *queue;
    size_t batch;         /* jobs per submit_batch; 0: single submits */
    double deadline;      /* monotonic seconds */
    atomic_llong *budget; /* jobs left to submit, shared; NULL: until the deadline */
    uint64_t *lat_ns;     /* one per request */
    size_t n, cap;
    uint64_t errors;
    int first_err;
    char first_errmsg[256];
    const atomic_bool *stop;
} producer;

/* settings: the command line. */
typedef struct settings {
    const char *url, *queue, *json_path, *tag;
    const char *exec_queues[MAX_EXEC_QUEUES];
    int nexec;
    double seconds;
    bool quick, header;
    long pid;
    long long rss_jobs;
    int latency_jobs;
    double load_rate; /* load: jobs/s of the load.ack row; 0: half the measured maximum */
} settings;

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

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* errtext: the best description of the calling thread's last libjobq failure err. */
static const char *
errtext(int err)
{
    return jobq_errmsg()[0] != '\0' ? jobq_errmsg() : jobq_strerror(err);
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

/* samples_push: appends ns to a growable array. Returns false when out of memory. */
static bool
samples_push(uint64_t **v, size_t *n, size_t *cap, uint64_t ns)
{
    if (*n == *cap) {
        size_t ncap = *cap == 0 ? 4096 : *cap * 2;
        uint64_t *nv = realloc(*v, ncap * sizeof(uint64_t));
        if (nv == NULL) {
            return false;
        }
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = ns;
    return true;
}

/* take_budget: claims up to want jobs of the shared budget; returns how many (0: none left). */
static size_t
take_budget(atomic_llong *budget, size_t want)
{
    long long left = atomic_fetch_sub(budget, (long long)want);
    if (left <= 0) {
        return 0;
    }
    return left < (long long)want ? (size_t)left : want;
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
        size_t n = p->batch > 0 ? p->batch : 1;
        if (p->budget != NULL && (n = take_budget(p->budget, n)) == 0) {
            break;
        }
        uint64_t t0 = mono_ns();
        int err;
        if (p->batch > 0) {
            err = jobq_submit_batch(p->client, p->queue, payloads, n, NULL, ids);
        } else {
            int64_t id;
            make_payload(payload, sizeof(payload), ++seq);
            err = jobq_submit(p->client, p->queue, payload, NULL, &id, NULL);
        }
        uint64_t t1 = mono_ns();
        if (err != JOBQ_OK) {
            if (p->errors++ == 0) {
                p->first_err = err;
                snprintf(p->first_errmsg, sizeof(p->first_errmsg), "%s", errtext(err));
            }
            break; /* a failing daemon would only be measured spinning */
        }
        if (!samples_push(&p->lat_ns, &p->n, &p->cap, t1 - t0)) {
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

/* percentile: the nearest-rank percentile p (0..1) of n sorted samples, divided by scale. */
static double
percentile(const uint64_t *sorted, size_t n, double p, double scale)
{
    if (n == 0) {
        return 0.0;
    }
    size_t rank = (size_t)ceil(p * (double)n);
    size_t idx = rank == 0 ? 0 : rank - 1;
    return (double)sorted[idx < n ? idx : n - 1] / scale;
}

/* fill_percentiles: sorts samples (ns) and writes p50/p99/p99.9/max to r in unit. */
static void
fill_percentiles(row *r, uint64_t *samples, size_t n, const char *unit)
{
    double scale = strcmp(unit, "ms") == 0 ? 1e6 : 1e3;
    qsort(samples, n, sizeof(uint64_t), cmp_u64);
    r->unit = unit;
    r->p50 = percentile(samples, n, 0.50, scale);
    r->p99 = percentile(samples, n, 0.99, scale);
    r->p999 = percentile(samples, n, 0.999, scale);
    r->max = n > 0 ? (double)samples[n - 1] / scale : 0.0;
}

/* row_init: a row with every optional field marked "not applicable". */
static void
row_init(row *r, const char *workload, const char *queue)
{
    *r = (row){.workload = workload, .producers = -1, .rate = -1.0};
    snprintf(r->queue, sizeof(r->queue), "%s", queue != NULL ? queue : "");
}

/* run: one submit workload (single, or batches of batch jobs) at one concurrency for seconds,
 * or until budget jobs were sent when budget > 0. Returns false when it could not run at all
 * (the message is printed). */
static bool
run(jobq_client *client, const char *queue, const char *workload, size_t batch, int producers,
    double seconds, long long budget, row *out)
{
    producer *ps = calloc((size_t)producers, sizeof(producer));
    if (ps == NULL) {
        fprintf(stderr, "jobq-bench: out of memory\n");
        return false;
    }
    atomic_bool stop;
    atomic_init(&stop, false);
    atomic_llong left;
    atomic_init(&left, budget);
    double start = mono_s();
    int started = 0;
    for (; started < producers; started++) {
        producer *p = &ps[started];
        *p = (producer){.client = client,
                        .queue = queue,
                        .batch = batch,
                        .deadline = start + seconds,
                        .budget = budget > 0 ? &left : NULL,
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
    row_init(out, workload, queue);
    out->producers = producers;
    out->seconds = elapsed;
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
    out->jobs = total * (batch > 0 ? batch : 1);
    if (budget > 0 && out->jobs > (uint64_t)budget) {
        out->jobs = (uint64_t)budget; /* the last batch of each thread may be short */
    }
    out->rate = elapsed > 0 ? (double)out->jobs / elapsed : 0.0;
    if (all != NULL) {
        fill_percentiles(out, all, total, "us");
    }
    if (batch > 0) {
        snprintf(out->extra, sizeof(out->extra), ", \"batch_size\": %zu", batch);
    }
    free(all);
    free(ps);
    return started == producers;
}

/* qcounts: one queue's line of the stats reply. */
typedef struct qcounts {
    int64_t scheduled, ready, running, retrying, succeeded, dead, cancelled;
} qcounts;

static int64_t
count_of(json_t *q, const char *state)
{
    json_t *v = json_object_get(q, state);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* get_counts: the counters of queue from the stats op. Returns JOBQ_OK, the transport's
 * error, JOBQ_EPROTO for an unreadable or failed reply, JOBQ_EQUEUE if the queue is not
 * listed; the reason is printed. *out is written only on success. */
static int
get_counts(jobq_client *client, const char *queue, qcounts *out)
{
    char *text;
    int err = jobq_call(client, "{\"op\":\"stats\"}", &text);
    if (err != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: stats: %s\n", errtext(err));
        return err;
    }
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    jobq_free(text);
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "jobq-bench: stats: unreadable or failed reply\n");
        json_decref(reply);
        return JOBQ_EPROTO;
    }
    json_t *q = json_object_get(json_object_get(reply, "queues"), queue);
    if (!json_is_object(q)) {
        fprintf(stderr, "jobq-bench: stats: queue \"%s\" is not listed (not configured?)\n", queue);
        json_decref(reply);
        return JOBQ_EQUEUE;
    }
    *out = (qcounts){.scheduled = count_of(q, "scheduled"),
                     .ready = count_of(q, "ready"),
                     .running = count_of(q, "running"),
                     .retrying = count_of(q, "retrying"),
                     .succeeded = count_of(q, "succeeded"),
                     .dead = count_of(q, "dead"),
                     .cancelled = count_of(q, "cancelled")};
    json_decref(reply);
    return JOBQ_OK;
}

/* wait_empty: waits until queue holds no job that is ready, running, retrying or scheduled,
 * at most limit_s. Returns the seconds it took, or -1 on a stats failure or at the limit
 * (the reason is printed). */
static double
wait_empty(jobq_client *client, const char *queue, double limit_s)
{
    double start = mono_s();
    for (;;) {
        qcounts c;
        if (get_counts(client, queue, &c) != JOBQ_OK) {
            return -1.0;
        }
        if (c.ready + c.running + c.retrying + c.scheduled == 0) {
            return mono_s() - start;
        }
        if (mono_s() - start > limit_s) {
            fprintf(stderr,
                    "jobq-bench: queue \"%s\" still holds %lld ready, %lld running, %lld "
                    "retrying, %lld scheduled jobs after %.0f s\n",
                    queue, (long long)c.ready, (long long)c.running, (long long)c.retrying,
                    (long long)c.scheduled, limit_s);
            return -1.0;
        }
        sleep_ms(50);
    }
}

/* run_exec: keeps a backlog of BATCH_SIZE..2*BATCH_SIZE ready jobs on queue (whose command
 * should be /bin/true) and measures how fast the daemon's own consumers complete them,
 * from the queue's succeeded counter, for seconds after a short warm-up. Then lets the
 * backlog drain (bounded). Returns false if it could not measure (the reason is printed). */
static bool
run_exec(jobq_client *client, const char *queue, double seconds, row *out)
{
    row_init(out, "exec", queue);
    out->producers = 1;
    char payload[PAYLOAD_BYTES + 64];
    const char *payloads[BATCH_SIZE];
    static int64_t ids[BATCH_SIZE];
    make_payload(payload, sizeof(payload), 1);
    for (size_t i = 0; i < BATCH_SIZE; i++) {
        payloads[i] = payload;
    }
    qcounts c0 = {0}, c1 = {0}, c;
    if (get_counts(client, queue, &c) != JOBQ_OK) {
        return false;
    }
    double warmup = seconds / 4 < 1.0 ? seconds / 4 : 1.0;
    double start = mono_s(), t0 = 0, t1 = 0;
    bool measuring = false, ok = true;
    for (;;) {
        double now = mono_s();
        if (get_counts(client, queue, &c) != JOBQ_OK) {
            ok = false;
            break;
        }
        double at = (now + mono_s()) / 2; /* when the counters were read, about */
        if (!measuring && at >= start + warmup) {
            measuring = true;
            c0 = c;
            t0 = at;
        } else if (measuring && at >= t0 + seconds) {
            c1 = c;
            t1 = at;
            break;
        }
        if (c.ready < BATCH_SIZE) {
            int err = jobq_submit_batch(client, queue, payloads, BATCH_SIZE, NULL, ids);
            if (err != JOBQ_OK) {
                fprintf(stderr, "jobq-bench: exec %s: submit_batch: %s\n", queue, errtext(err));
                out->errors++;
                ok = false;
                break;
            }
            out->requests++;
        } else {
            sleep_ms(EXEC_POLL_MS);
        }
    }
    if (!ok) {
        wait_empty(client, queue, DRAIN_LIMIT_S);
        return false;
    }
    out->seconds = t1 - t0;
    out->jobs = (uint64_t)(c1.succeeded - c0.succeeded);
    out->rate = out->seconds > 0 ? (double)out->jobs / out->seconds : 0.0;
    out->errors = (uint64_t)((c1.dead - c0.dead) +
                             (c1.retrying > c0.retrying ? c1.retrying - c0.retrying : 0));
    double drain = wait_empty(client, queue, DRAIN_LIMIT_S);
    snprintf(out->note, sizeof(out->note), "backlog kept >= %d; drained %lld left in %.1f s",
             BATCH_SIZE, (long long)(c1.ready + c1.running), drain);
    snprintf(out->extra, sizeof(out->extra),
             ", \"submitted_batches\": %llu, \"dead\": %lld, \"drain_s\": %.3f",
             (unsigned long long)out->requests, (long long)(c1.dead - c0.dead), drain);
    if (out->jobs == 0) {
        fprintf(stderr,
                "jobq-bench: exec %s: no job succeeded in %.1f s; does the queue have a "
                "command (/bin/true)?\n",
                queue, out->seconds);
        return false;
    }
    return drain >= 0;
}

/* run_latency: on an idle queue, submits one job at a time and waits for it; records the
 * daemon's started_at - created_at (ms) and the client's submit..finished round trip (µs),
 * for up to njobs jobs or seconds. Fills two rows. Returns false on an error (printed). */
static bool
run_latency(jobq_client *client, const char *queue, int njobs, double seconds, row *start_row,
            row *rtt_row)
{
    row_init(start_row, "latency.start", queue);
    row_init(rtt_row, "latency.rtt", queue);
    start_row->producers = rtt_row->producers = 1;
    if (wait_empty(client, queue, DRAIN_LIMIT_S) < 0) {
        return false;
    }
    uint64_t *start_ns = calloc((size_t)njobs, sizeof(uint64_t));
    uint64_t *rtt_ns = calloc((size_t)njobs, sizeof(uint64_t));
    if (start_ns == NULL || rtt_ns == NULL) {
        free(start_ns);
        free(rtt_ns);
        fprintf(stderr, "jobq-bench: out of memory\n");
        return false;
    }
    char payload[PAYLOAD_BYTES + 64];
    size_t n = 0;
    uint64_t errors = 0;
    double start = mono_s();
    while ((int)n < njobs && mono_s() < start + seconds) {
        make_payload(payload, sizeof(payload), n);
        uint64_t t0 = mono_ns();
        int64_t id;
        jobq_job *job = NULL;
        int err = jobq_submit(client, queue, payload, NULL, &id, NULL);
        if (err == JOBQ_OK) {
            err = jobq_wait(client, id, CALL_TIMEOUT_MS, &job);
        }
        uint64_t t1 = mono_ns();
        if (err != JOBQ_OK || jobq_job_state(job) != JOBQ_SUCCEEDED ||
            jobq_job_started_at_ms(job) == 0) {
            fprintf(stderr, "jobq-bench: latency %s: %s\n", queue,
                    err != JOBQ_OK ? errtext(err) : "the job did not succeed");
            jobq_job_free(job);
            errors++;
            break;
        }
        int64_t d = jobq_job_started_at_ms(job) - jobq_job_created_at_ms(job);
        start_ns[n] = (uint64_t)(d > 0 ? d : 0) * 1000000u;
        rtt_ns[n] = t1 - t0;
        n++;
        jobq_job_free(job);
    }
    double elapsed = mono_s() - start;
    row *rows[2] = {start_row, rtt_row};
    for (int i = 0; i < 2; i++) {
        rows[i]->jobs = rows[i]->requests = n;
        rows[i]->seconds = elapsed;
        rows[i]->rate = elapsed > 0 ? (double)n / elapsed : 0.0;
        rows[i]->errors = errors;
    }
    fill_percentiles(start_row, start_ns, n, "ms");
    fill_percentiles(rtt_row, rtt_ns, n, "us");
    snprintf(start_row->note, sizeof(start_row->note),
             "started_at - created_at (ms resolution), one job at a time");
    snprintf(rtt_row->note, sizeof(rtt_row->note), "client submit -> wait returns finished");
    free(start_ns);
    free(rtt_ns);
    return errors == 0 && n > 0;
}

/* proc_cpu_ticks: utime + stime of pid in clock ticks. Returns false if unreadable. */
static bool
proc_cpu_ticks(long pid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st;
    /* After ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15). */
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return false;
    }
    *ticks = ut + st;
    return true;
}

/* proc_ctx_switches: voluntary + involuntary context switches summed over every thread
 * of pid (a proxy for wake-ups). Returns false if unreadable. */
static bool
proc_ctx_switches(long pid, unsigned long long *total)
{
    char path[300];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return false;
    }
    unsigned long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%ld/task/%.32s/status", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue; /* the thread exited meanwhile */
        }
        char line[256];
        unsigned long long v;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1) {
                sum += v;
            }
        }
        fclose(f);
    }
    closedir(d);
    *total = sum;
    return true;
}

/* proc_status_kb: a "Key:   N kB" line of /proc/PID/status, in kB. false if absent. */
static bool
proc_status_kb(long pid, const char *key, long long *kb)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t klen = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            found = sscanf(line + klen + 1, "%lld", kb) == 1;
        }
    }
    fclose(f);
    return found;
}

/* run_idle: the CPU time pid uses over seconds while this program sends nothing. */
static bool
run_idle(long pid, double seconds, row *out)
{
    row_init(out, "idle", NULL);
    unsigned long long t0, t1, cs0 = 0, cs1 = 0;
    double start = mono_s();
    if (!proc_cpu_ticks(pid, &t0)) {
        fprintf(stderr, "jobq-bench: idle: cannot read /proc/%ld/stat\n", pid);
        return false;
    }
    bool have_cs = proc_ctx_switches(pid, &cs0);
    sleep_ms((long)(seconds * 1000));
    if (!proc_cpu_ticks(pid, &t1)) {
        fprintf(stderr, "jobq-bench: idle: cannot read /proc/%ld/stat (did jobqd exit?)\n", pid);
        return false;
    }
    have_cs = have_cs && proc_ctx_switches(pid, &cs1);
    out->seconds = mono_s() - start;
    long hz = sysconf(_SC_CLK_TCK);
    double cpu_s = (double)(t1 - t0) / (double)(hz > 0 ? hz : 100);
    double cs_per_s = have_cs ? (double)(cs1 - cs0) / out->seconds : -1.0;
    snprintf(out->note, sizeof(out->note), "cpu %.3f s (%.3f%% of a core), %.1f ctx switches/s",
             cpu_s, 100.0 * cpu_s / out->seconds, cs_per_s);
    snprintf(out->extra, sizeof(out->extra),
             ", \"pid\": %ld, \"cpu_s\": %.3f, \"cpu_pct\": %.4f, \"ctx_switches_per_s\": %.2f",
             pid, cpu_s, 100.0 * cpu_s / out->seconds, cs_per_s);
    return true;
}

/* run_rss: jobqd's VmRSS before and after njobs jobs are submitted in batches from
 * RSS_THREADS threads to queue (which should have no command, so the jobs stay). */
static bool
run_rss(jobq_client *client, long pid, const char *queue, long long njobs, row *out)
{
    long long before, after, hwm = -1;
    if (!proc_status_kb(pid, "VmRSS", &before)) {
        row_init(out, "rss", queue);
        fprintf(stderr, "jobq-bench: rss: cannot read VmRSS of /proc/%ld/status\n", pid);
        return false;
    }
    bool ok = run(client, queue, "rss", BATCH_SIZE, RSS_THREADS, RSS_LIMIT_S, njobs, out);
    if (!proc_status_kb(pid, "VmRSS", &after)) {
        fprintf(stderr, "jobq-bench: rss: cannot read VmRSS of /proc/%ld/status\n", pid);
        return false;
    }
    proc_status_kb(pid, "VmHWM", &hwm);
    if (out->jobs < (uint64_t)njobs && out->errors == 0) {
        fprintf(stderr, "jobq-bench: rss: only %llu of %lld jobs sent within %.0f s\n",
                (unsigned long long)out->jobs, njobs, RSS_LIMIT_S);
        out->errors++;
    }
    snprintf(out->note, sizeof(out->note), "VmRSS %.1f -> %.1f MB (VmHWM %.1f MB)",
             (double)before / 1024, (double)after / 1024, (double)hwm / 1024);
    snprintf(out->extra, sizeof(out->extra),
             ", \"pid\": %ld, \"rss_before_mb\": %.1f, \"rss_after_mb\": %.1f, \"hwm_mb\": %.1f",
             pid, (double)before / 1024, (double)after / 1024, (double)hwm / 1024);
    return ok && out->errors == 0;
}

/* ---- fixed offered load ---- */

/* pacer: an open-loop run: job k is due at start + k / rate, whichever thread sends it; the
 * latency of a job counts from when it was due, so a daemon that falls behind shows it. */
typedef struct pacer {
    jobq_client *client;
    const char *queue;
    double start, seconds, rate;
    atomic_llong next;
    pthread_mutex_t lock; /* guards everything below */
    uint64_t *lat_ns;     /* due -> acknowledged */
    size_t n, cap;
    int64_t *ids;    /* with record: the id of every job sent ... */
    double *sent_ms; /* ... and the wall-clock ms when it was due */
    size_t nids, capids;
    bool record;
    uint64_t errors;
    char errmsg[256];
} pacer;

static double
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *
pacer_main(void *arg)
{
    pacer *pc = arg;
    char payload[PAYLOAD_BYTES + 64];
    for (;;) {
        long long k = atomic_fetch_add(&pc->next, 1);
        double due = pc->start + (double)k / pc->rate;
        if (due >= pc->start + pc->seconds) {
            break;
        }
        double now = mono_s();
        if (due > now) {
            double d = due - now;
            struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (time_t)d) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        double due_wall = wall_ms() - (mono_s() - due) * 1e3;
        make_payload(payload, sizeof(payload), (uint64_t)k);
        int64_t id;
        int err = jobq_submit(pc->client, pc->queue, payload, NULL, &id, NULL);
        double t1 = mono_s();
        pthread_mutex_lock(&pc->lock);
        if (err != JOBQ_OK) {
            if (pc->errors++ == 0) {
                snprintf(pc->errmsg, sizeof(pc->errmsg), "%s", errtext(err));
            }
            pthread_mutex_unlock(&pc->lock);
            break;
        }
        bool ok = samples_push(&pc->lat_ns, &pc->n, &pc->cap, (uint64_t)((t1 - due) * 1e9));
        if (ok && pc->record) {
            if (pc->nids == pc->capids) {
                size_t ncap = pc->capids == 0 ? 4096 : pc->capids * 2;
                int64_t *ni = realloc(pc->ids, ncap * sizeof(*ni));
                double *ns = ni != NULL ? realloc(pc->sent_ms, ncap * sizeof(*ns)) : NULL;
                if (ni != NULL) {
                    pc->ids = ni;
                }
                if (ns == NULL) {
                    pthread_mutex_unlock(&pc->lock);
                    break;
                }
                pc->sent_ms = ns;
                pc->capids = ncap;
            }
            pc->ids[pc->nids] = id;
            pc->sent_ms[pc->nids++] = due_wall;
        }
        pthread_mutex_unlock(&pc->lock);
        if (!ok) {
            break;
        }
    }
    return NULL;
}

/* run_load: submits to queue at a fixed rate (jobs/s) for seconds from LOAD_THREADS threads.
 * Without start: one row of submit -> acknowledged latency (µs). With start (queue served
 * by jobqd's own consumers): one row of submit -> started latency (ms, from the daemon's
 * started_at of up to LOAD_SAMPLES jobs spread over the run). Returns false on an error. */
static bool
run_load(jobq_client *client, const char *queue, double rate, double seconds, bool start, row *out)
{
    row_init(out, start ? "load.start" : "load.ack", queue);
    out->producers = LOAD_THREADS;
    if (start && wait_empty(client, queue, DRAIN_LIMIT_S) < 0) {
        return false;
    }
    pacer pc = {
        .client = client, .queue = queue, .seconds = seconds, .rate = rate, .record = start};
    atomic_init(&pc.next, 0);
    pthread_mutex_init(&pc.lock, NULL);
    pthread_t th[LOAD_THREADS];
    int started = 0;
    pc.start = mono_s() + 0.05;
    for (; started < LOAD_THREADS; started++) {
        if (pthread_create(&th[started], NULL, pacer_main, &pc) != 0) {
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    out->seconds = mono_s() - pc.start;
    out->jobs = out->requests = pc.n;
    out->errors = pc.errors;
    out->rate = out->seconds > 0 ? (double)pc.n / out->seconds : 0.0;
    if (pc.errors > 0) {
        fprintf(stderr, "jobq-bench: load %s: %s\n", queue, pc.errmsg);
    }
    bool ok = started == LOAD_THREADS && pc.errors == 0;
    if (!start) {
        fill_percentiles(out, pc.lat_ns, pc.n, "us");
        snprintf(out->note, sizeof(out->note),
                 "offered %.0f jobs/s (half the max); due -> acknowledged", rate);
    } else {
        double drain = wait_empty(client, queue, DRAIN_LIMIT_S);
        ok = ok && drain >= 0;
        size_t want = pc.nids < LOAD_SAMPLES ? pc.nids : LOAD_SAMPLES;
        uint64_t *d = calloc(want > 0 ? want : 1, sizeof(uint64_t));
        size_t got = 0;
        for (size_t i = 0; ok && d != NULL && i < want; i++) {
            size_t at = i * pc.nids / want;
            jobq_job *job = NULL;
            int err = jobq_get(client, pc.ids[at], &job);
            if (err != JOBQ_OK) {
                fprintf(stderr, "jobq-bench: load %s: get: %s\n", queue, errtext(err));
                ok = false;
                break;
            }
            int64_t st = jobq_job_started_at_ms(job);
            jobq_job_free(job);
            if (st == 0) {
                continue; /* not started: counted as missing below */
            }
            double ms = (double)st - pc.sent_ms[at];
            d[got++] = (uint64_t)((ms > 0 ? ms : 0) * 1e6);
        }
        if (d != NULL) {
            fill_percentiles(out, d, got, "ms");
        }
        free(d);
        snprintf(out->note, sizeof(out->note),
                 "offered %.0f jobs/s (half the max); due -> started_at (ms), %zu sampled", rate,
                 got);
        snprintf(out->extra, sizeof(out->extra), ", \"offered_per_s\": %.1f, \"sampled\": %zu",
                 rate, got);
    }
    if (!start) {
        snprintf(out->extra, sizeof(out->extra), ", \"offered_per_s\": %.1f", rate);
    }
    free(pc.lat_ns);
    free(pc.ids);
    free(pc.sent_ms);
    pthread_mutex_destroy(&pc.lock);
    return ok;
}

/* ---- claim cost ---- */

/* run_claim: one remote worker fetches and acks one job at a time from queue (which should
 * hold a prepared backlog and no command) for seconds: the cost of a claim at that depth. */
static bool
run_claim(jobq_client *client, const char *queue, double seconds, row *out)
{
    row_init(out, "claim", queue);
    out->producers = 1;
    qcounts c;
    if (get_counts(client, queue, &c) != JOBQ_OK) {
        return false;
    }
    jobq_worker *w;
    const char *qs[1] = {queue};
    int err = jobq_worker_open(&w, client, qs, 1);
    if (err != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: claim: %s\n", errtext(err));
        return false;
    }
    uint64_t *lat = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    double start = mono_s();
    while (mono_s() < start + seconds) {
        jobq_lease *lease[1];
        size_t got = 0;
        uint64_t t0 = mono_ns();
        err = jobq_worker_fetch(w, 1, 1000, lease, &got);
        if (err == JOBQ_OK && got == 0) {
            fprintf(stderr, "jobq-bench: claim: queue \"%s\" ran empty\n", queue);
            ok = false;
            break;
        }
        if (err == JOBQ_OK) {
            err = jobq_worker_ack(w, lease[0], NULL);
            jobq_lease_free(lease[0]);
        }
        if (err != JOBQ_OK) {
            fprintf(stderr, "jobq-bench: claim: %s\n", errtext(err));
            out->errors++;
            ok = false;
            break;
        }
        if (!samples_push(&lat, &n, &cap, mono_ns() - t0)) {
            break;
        }
    }
    out->seconds = mono_s() - start;
    out->jobs = out->requests = n;
    out->rate = out->seconds > 0 ? (double)n / out->seconds : 0.0;
    fill_percentiles(out, lat, n, "us");
    free(lat);
    jobq_worker_close(w);
    snprintf(out->note, sizeof(out->note), "fetch + ack, one at a time, %lld queued",
             (long long)c.ready);
    snprintf(out->extra, sizeof(out->extra), ", \"queued\": %lld", (long long)c.ready);
    return ok;
}

/* ---- the nng limit ---- */

/* echo_ctx: one context of the in-process echo server: receive, send the message back. */
typedef struct echo_ctx {
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
} echo_ctx;

static void
echo_cb(void *arg)
{
    echo_ctx *e = arg;
    int rv = nng_aio_result(e->aio);
    if (rv != 0) {
        if (e->sending) {
            nng_msg_free(nng_aio_get_msg(e->aio));
        }
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
            return;
        }
        e->sending = false;
        nng_ctx_recv(e->ctx, e->aio);
        return;
    }
    if (e->sending) {
        e->sending = false;
        nng_ctx_recv(e->ctx, e->aio);
    } else {
        e->sending = true;
        nng_ctx_send(e->ctx, e->aio);
    }
}

typedef struct echo_client {
    pthread_t thread;
    nng_socket sock;
    double deadline;
    uint64_t *lat_ns;
    size_t n, cap;
    int err;
} echo_client;

static void *
echo_client_main(void *arg)
{
    echo_client *c = arg;
    char payload[PAYLOAD_BYTES + 64], req[PAYLOAD_BYTES + 128];
    make_payload(payload, sizeof(payload), 1);
    int len = snprintf(req, sizeof(req), "{\"op\":\"submit\",\"queue\":\"bench\",\"payload\":%s}",
                       payload);
    nng_ctx ctx;
    nng_aio *aio;
    if ((c->err = nng_ctx_open(&ctx, c->sock)) != 0) {
        return NULL;
    }
    if ((c->err = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        nng_ctx_close(ctx);
        return NULL;
    }
    while (mono_s() < c->deadline) {
        nng_msg *m;
        uint64_t t0 = mono_ns();
        if ((c->err = nng_msg_alloc(&m, 0)) != 0 ||
            (c->err = nng_msg_append(m, req, (size_t)len)) != 0) {
            break;
        }
        nng_aio_set_msg(aio, m);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if ((c->err = nng_aio_result(aio)) != 0) {
            nng_msg_free(m);
            break;
        }
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if ((c->err = nng_aio_result(aio)) != 0) {
            break;
        }
        nng_msg_free(nng_aio_get_msg(aio));
        if (!samples_push(&c->lat_ns, &c->n, &c->cap, mono_ns() - t0)) {
            break;
        }
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return NULL;
}

/* run_echo: nng REQ/REP round trips of a submit-sized message through an in-process echo
 * server on the same transport as the daemon's URL, producers contexts on one REQ socket (as
 * jobq-bench's producers share one client), for seconds: what jobqd could at most answer. */
static bool
run_echo(const char *daemon_url, int producers, double seconds, row *out)
{
    row_init(out, "echo", NULL);
    out->producers = producers;
    char url[300];
    bool ipc = daemon_url != NULL && strncmp(daemon_url, "ipc://", 6) == 0;
    const char *tmp = getenv("TMPDIR");
    if (ipc) {
        snprintf(url, sizeof(url), "ipc://%s/jobq-bench-echo.%ld.sock",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", (long)getpid());
    } else {
        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
    }
    nng_socket srv, cli;
    nng_listener l;
    int rv;
    if ((rv = nng_rep0_open(&srv)) != 0) {
        fprintf(stderr, "jobq-bench: echo: %s\n", nng_strerror(rv));
        return false;
    }
    if ((rv = nng_listen(srv, url, &l, 0)) != 0) {
        fprintf(stderr, "jobq-bench: echo: cannot listen on %s: %s\n", url, nng_strerror(rv));
        nng_close(srv);
        return false;
    }
    if (!ipc) {
        int port = 0;
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    }
    int nctx = producers + 16;
    echo_ctx *ctxs = calloc((size_t)nctx, sizeof(*ctxs));
    echo_client *cs = calloc((size_t)producers, sizeof(*cs));
    bool ok = ctxs != NULL && cs != NULL;
    int opened = 0;
    for (; ok && opened < nctx; opened++) {
        echo_ctx *e = &ctxs[opened];
        if (nng_ctx_open(&e->ctx, srv) != 0) {
            ok = false;
            break;
        }
        if (nng_aio_alloc(&e->aio, echo_cb, e) != 0) {
            nng_ctx_close(e->ctx);
            ok = false;
            break;
        }
        nng_ctx_recv(e->ctx, e->aio);
    }
    bool cli_open = ok && nng_req0_open(&cli) == 0;
    if (ok && (!cli_open || (rv = nng_dial(cli, url, NULL, 0)) != 0)) {
        fprintf(stderr, "jobq-bench: echo: cannot dial %s: %s\n", url,
                cli_open ? nng_strerror(rv) : "cannot open a REQ socket");
        ok = false;
    }
    int started = 0;
    double start = mono_s();
    for (; ok && started < producers; started++) {
        cs[started] = (echo_client){.sock = cli, .deadline = start + seconds};
        if (pthread_create(&cs[started].thread, NULL, echo_client_main, &cs[started]) != 0) {
            break;
        }
    }
    size_t total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(cs[i].thread, NULL);
        total += cs[i].n;
        if (cs[i].err != 0 && out->errors++ == 0) {
            fprintf(stderr, "jobq-bench: echo: %s\n", nng_strerror(cs[i].err));
        }
    }
    out->seconds = mono_s() - start;
    uint64_t *all = malloc((total > 0 ? total : 1) * sizeof(uint64_t));
    size_t k = 0;
    for (int i = 0; i < started; i++) {
        if (all != NULL) {
            memcpy(all + k, cs[i].lat_ns, cs[i].n * sizeof(uint64_t));
        }
        k += cs[i].n;
        free(cs[i].lat_ns);
    }
    out->jobs = out->requests = total;
    out->rate = out->seconds > 0 ? (double)total / out->seconds : 0.0;
    if (all != NULL) {
        fill_percentiles(out, all, total, "us");
    }
    free(all);
    snprintf(out->note, sizeof(out->note), "nng REQ/REP echo, %d contexts, in-process server",
             producers);
    if (cli_open) {
        nng_close(cli);
    }
    nng_close(srv);
    for (int i = 0; i < opened; i++) {
        nng_aio_stop(ctxs[i].aio);
        nng_aio_free(ctxs[i].aio);
    }
    free(ctxs);
    free(cs);
    return ok && started == producers && out->errors == 0;
}

/* fmt_num: v with prec decimals into buf, or "-" when v < 0. Returns buf. */
static const char *
fmt_num(char *buf, size_t size, double v, int prec)
{
    if (v < 0) {
        snprintf(buf, size, "-");
    } else {
        snprintf(buf, size, "%.*f", prec, v);
    }
    return buf;
}

static void
print_header(void)
{
    printf("%-13s %-7s %-6s %7s %9s %7s %9s %9s %9s %9s %9s %-4s %6s  %s\n", "WORKLOAD", "QUEUE",
           "TAG", "THREADS", "JOBS", "SECONDS", "JOBS/S", "P50", "P99", "P99.9", "MAX", "UNIT",
           "ERRORS", "NOTE");
}

static void
print_row(const row *r, const char *tag)
{
    char b[6][32];
    bool lat = r->unit != NULL;
    int prec = lat && strcmp(r->unit, "ms") == 0 ? 1 : 0;
    char threads[16];
    if (r->producers > 0) {
        snprintf(threads, sizeof(threads), "%d", r->producers);
    } else {
        snprintf(threads, sizeof(threads), "-");
    }
    printf("%-13s %-7s %-6s %7s %9llu %7.2f %9s %9s %9s %9s %9s %-4s %6llu  %s\n", r->workload,
           r->queue[0] != '\0' ? r->queue : "-", tag[0] != '\0' ? tag : "-", threads,
           (unsigned long long)r->jobs, r->seconds, fmt_num(b[0], sizeof(b[0]), r->rate, 0),
           fmt_num(b[1], sizeof(b[1]), lat ? r->p50 : -1, prec),
           fmt_num(b[2], sizeof(b[2]), lat ? r->p99 : -1, prec),
           fmt_num(b[3], sizeof(b[3]), lat ? r->p999 : -1, prec),
           fmt_num(b[4], sizeof(b[4]), lat ? r->max : -1, prec), lat ? r->unit : "-",
           (unsigned long long)r->errors, r->note);
    fflush(stdout);
}

/* json_str: s as a JSON string literal (the names here hold no quotes or controls, but a
 * queue name from the command line might). */
static void
json_str(FILE *f, const char *s)
{
    json_t *v = json_string(s);
    char *t = v != NULL ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    fputs(t != NULL ? t : "null", f);
    free(t);
    json_decref(v);
}

static bool
write_json(const char *path, const row *rows, size_t n, const char *tag)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "jobq-bench: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    fprintf(f, "[");
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        fprintf(f, "%s\n  {\"workload\": \"%s\", \"queue\": ", i == 0 ? "" : ",", r->workload);
        json_str(f, r->queue);
        fprintf(f, ", \"tag\": ");
        json_str(f, tag);
        fprintf(f,
                ", \"producers\": %d, \"jobs\": %llu, \"requests\": %llu, \"errors\": %llu, "
                "\"seconds\": %.3f",
                r->producers, (unsigned long long)r->jobs, (unsigned long long)r->requests,
                (unsigned long long)r->errors, r->seconds);
        if (r->rate >= 0) {
            fprintf(f, ", \"jobs_per_s\": %.1f", r->rate);
        }
        if (r->unit != NULL) {
            fprintf(f, ", \"p50_%s\": %.1f, \"p99_%s\": %.1f, \"p999_%s\": %.1f, \"max_%s\": %.1f",
                    r->unit, r->p50, r->unit, r->p99, r->unit, r->p999, r->unit, r->max);
        }
        fprintf(f, ", \"payload_bytes\": %d%s}", PAYLOAD_BYTES, r->extra);
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
    fprintf(out, "usage: jobq-bench [--url URL] [--queue Q] [--exec-queue Q[,Q...]] [--pid PID]\n"
                 "                  [--seconds N] [--quick] [--producers LIST] [--rss-jobs N]\n"
                 "                  [--latency-jobs N] [--load-rate R] [--tag TEXT] [--no-header]\n"
                 "                  [--json FILE]\n"
                 "                  [WORKLOAD...]\n");
}

static int
help(void)
{
    usage(stdout);
    printf("\nDrives a running jobqd through libjobq and prints one row per measurement.\n"
           "\n"
           "Workloads (default: submit and batch, plus exec and latency with --exec-queue,\n"
           "plus idle and rss with --pid):\n"
           "  submit   single submits from P producer threads sharing one client (--queue)\n"
           "  batch    submit_batch of %d jobs from 1 thread (batch100), of %d jobs from 1 and\n"
           "           from 4 threads (batch) (--queue)\n"
           "  echo     the nng limit: REQ/REP round trips of a submit-sized message through an\n"
           "           in-process echo server, P contexts as for submit (not a default)\n"
           "  exec     end-to-end: keeps a backlog of ready jobs on each --exec-queue (its\n"
           "           command should be /bin/true) and counts completed jobs/s from stats\n"
           "  latency  one job at a time on the first --exec-queue: started_at - created_at\n"
           "           (ms) and the submit -> finished round trip (us); up to --latency-jobs\n"
           "  load     fixed offered load, half the maximum measured in this run (or measured\n"
           "           first): submit -> acknowledged on --queue (load.ack, or --load-rate R),\n"
           "           submit -> started_at on the first --exec-queue (load.start)\n"
           "  claim    one remote worker fetches and acks one job at a time from --queue,\n"
           "           which holds a prepared backlog (not a default)\n"
           "  idle     CPU seconds jobqd (--pid) uses in %.0f s while nothing is sent\n"
           "  rss      jobqd's (--pid) VmRSS before and after --rss-jobs jobs are submitted\n"
           "           in batches from %d threads to --queue\n"
           "\n"
           "Options:\n"
           "  --url URL          the daemon (default: $JOBQ_URL, else tcp://127.0.0.1:7450)\n"
           "  --queue Q          the queue to fill (default \"bench\"); the jobs stay there, so\n"
           "                     use a queue that is served by remote workers or none\n"
           "  --exec-queue LIST  queues whose command is /bin/true, e.g. true2,true8\n"
           "  --pid PID          jobqd's process id (idle, rss; read from /proc)\n"
           "  --seconds N        how long each timed row runs (default 5)\n"
           "  --quick            every workload runs about %.0f s; rss sends %d jobs\n"
           "  --producers LIST   producer counts for submit, e.g. 1,16,64 (default 1,16)\n"
           "  --rss-jobs N       jobs the rss workload submits (default %d)\n"
           "  --latency-jobs N   jobs the latency workload runs at most (default %d)\n"
           "  --load-rate R      jobs/s of the load.ack row instead of half the maximum\n"
           "  --tag TEXT         a label printed and stored with every row (e.g. durability)\n"
           "  --no-header        do not print the table's header line\n"
           "  --json FILE        also write every row as a JSON array to FILE\n"
           "  -h, --help         this help\n"
           "\n"
           "Every job's payload is a %d-byte JSON object. Timed rows stop after N seconds (plus\n"
           "at most %d s for requests in flight); exec and latency then wait at most %.0f s for\n"
           "their queue to run empty; rss stops after %.0f s whatever it sent.\n",
           SMALL_BATCH, BATCH_SIZE, IDLE_SECONDS, RSS_THREADS, QUICK_SECONDS, RSS_JOBS_QUICK,
           RSS_JOBS, LATENCY_JOBS, PAYLOAD_BYTES, CALL_TIMEOUT_MS / 1000, DRAIN_LIMIT_S,
           RSS_LIMIT_S);
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

/* parse_list: splits s (modified) at commas into at most max non-empty names. */
static int
parse_list(char *s, const char **list, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            return -1;
        }
        list[n++] = t;
    }
    return n;
}

/* parse_count: a whole number from lo to hi, or -1. */
static long long
parse_count(const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    return v;
}

/* bad_value: prints the complaint about option's value and returns EXIT_USAGE. */
static int
bad_value(const char *option, const char *want, const char *value)
{
    fprintf(stderr, "jobq-bench: %s needs %s, not \"%s\"\n", option, want, value);
    usage(stderr);
    return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    settings s = {.queue = "bench",
                  .tag = "",
                  .seconds = 5.0,
                  .header = true,
                  .rss_jobs = -1,
                  .latency_jobs = LATENCY_JOBS};
    int producers[16] = {1, 16};
    int nproducers = 2;
    bool seconds_set = false;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"exec-queue", required_argument, NULL, 'e'},
        {"pid", required_argument, NULL, 'P'},
        {"seconds", required_argument, NULL, 's'},
        {"quick", no_argument, NULL, 'Q'},
        {"producers", required_argument, NULL, 'p'},
        {"rss-jobs", required_argument, NULL, 'r'},
        {"latency-jobs", required_argument, NULL, 'l'},
        {"load-rate", required_argument, NULL, 'L'},
        {"tag", required_argument, NULL, 't'},
        {"no-header", no_argument, NULL, 'H'},
        {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        long long v;
        switch (ch) {
        case 'u':
            s.url = optarg;
            break;
        case 'q':
            s.queue = optarg;
            break;
        case 'e':
            s.nexec = parse_list(optarg, s.exec_queues, MAX_EXEC_QUEUES);
            if (s.nexec <= 0) {
                return bad_value("--exec-queue", "1 to 8 queue names, comma separated", optarg);
            }
            break;
        case 'P':
            if ((v = parse_count(optarg, 1, 1LL << 31)) < 0) {
                return bad_value("--pid", "a process id", optarg);
            }
            s.pid = (long)v;
            break;
        case 's':
            s.seconds = strtod(optarg, &end);
            if (*end != '\0' || !(s.seconds > 0 && s.seconds <= 3600)) {
                return bad_value("--seconds", "a number from 0 to 3600", optarg);
            }
            seconds_set = true;
            break;
        case 'Q':
            s.quick = true;
            break;
        case 'p':
            nproducers = parse_producers(optarg, producers, 16);
            if (nproducers <= 0) {
                return bad_value("--producers", "up to 16 counts from 1 to 1024, like 1,16,64",
                                 optarg);
            }
            break;
        case 'r':
            if ((s.rss_jobs = parse_count(optarg, 1, 1000000000)) < 0) {
                return bad_value("--rss-jobs", "a count from 1 to 1e9", optarg);
            }
            break;
        case 'l':
            if ((v = parse_count(optarg, 1, 1000000)) < 0) {
                return bad_value("--latency-jobs", "a count from 1 to 1000000", optarg);
            }
            s.latency_jobs = (int)v;
            break;
        case 'L':
            s.load_rate = strtod(optarg, &end);
            if (*end != '\0' || !(s.load_rate > 0 && s.load_rate <= 1e7)) {
                return bad_value("--load-rate", "jobs per second, from 1 to 1e7", optarg);
            }
            break;
        case 't':
            s.tag = optarg;
            break;
        case 'H':
            s.header = false;
            break;
        case 'j':
            s.json_path = optarg;
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
    if (s.quick && !seconds_set) {
        s.seconds = QUICK_SECONDS;
    }
    if (s.rss_jobs < 0) {
        s.rss_jobs = s.quick ? RSS_JOBS_QUICK : RSS_JOBS;
    }
    bool all = optind == argc;
    bool do_submit = all, do_batch = all, do_exec = all && s.nexec > 0,
         do_latency = all && s.nexec > 0, do_idle = all && s.pid > 0, do_rss = all && s.pid > 0;
    bool do_echo = false, do_load = false, do_claim = false;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "submit") == 0) {
            do_submit = true;
        } else if (strcmp(argv[i], "batch") == 0) {
            do_batch = true;
        } else if (strcmp(argv[i], "exec") == 0) {
            do_exec = true;
        } else if (strcmp(argv[i], "latency") == 0) {
            do_latency = true;
        } else if (strcmp(argv[i], "idle") == 0) {
            do_idle = true;
        } else if (strcmp(argv[i], "rss") == 0) {
            do_rss = true;
        } else if (strcmp(argv[i], "echo") == 0) {
            do_echo = true;
        } else if (strcmp(argv[i], "load") == 0) {
            do_load = true;
        } else if (strcmp(argv[i], "claim") == 0) {
            do_claim = true;
        } else {
            fprintf(stderr,
                    "jobq-bench: unknown workload \"%s\" (submit, batch, echo, exec, load, "
                    "latency, claim, idle, rss)\n",
                    argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if ((do_exec || do_latency || do_load) && s.nexec == 0) {
        fprintf(stderr, "jobq-bench: exec, latency and load need --exec-queue\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((do_idle || do_rss) && s.pid <= 0) {
        fprintf(stderr, "jobq-bench: idle and rss need --pid (jobqd's process id)\n");
        usage(stderr);
        return EXIT_USAGE;
    }

    jobq_client *client;
    int err = jobq_client_open(&client, s.url);
    if (err != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: %s\n", jobq_errmsg());
        if (err == JOBQ_EUNREACH) {
            fprintf(stderr, "jobq-bench: start jobqd first, or point --url or JOBQ_URL at it\n");
            return EXIT_UNREACH;
        }
        return err == JOBQ_EINVAL ? EXIT_USAGE : EXIT_FAILED;
    }
    jobq_client_set_timeout(client, CALL_TIMEOUT_MS);
    if ((err = jobq_ping(client)) != JOBQ_OK) {
        fprintf(stderr, "jobq-bench: ping: %s\n", errtext(err));
        jobq_client_close(client);
        return err == JOBQ_EUNREACH || err == JOBQ_ETIMEDOUT ? EXIT_UNREACH : EXIT_FAILED;
    }
    if (do_submit || do_batch || do_rss || do_load) {
        char probe[PAYLOAD_BYTES + 64];
        make_payload(probe, sizeof(probe), 0);
        int64_t id;
        err = jobq_submit(client, s.queue, probe, NULL, &id, NULL);
        if (err != JOBQ_OK) {
            fprintf(stderr, "jobq-bench: a first submit to queue \"%s\" failed: %s\n", s.queue,
                    errtext(err));
            jobq_client_close(client);
            return EXIT_FAILED;
        }
    }

    static row rows[MAX_ROWS];
    size_t nrows = 0;
    int rc = EXIT_OK;
    if (s.header) {
        print_header();
    }
#define EMIT(ok)                                                                                   \
    do {                                                                                           \
        if (!(ok) || rows[nrows].errors > 0) {                                                     \
            rc = EXIT_FAILED;                                                                      \
        }                                                                                          \
        print_row(&rows[nrows++], s.tag);                                                          \
    } while (0)
    for (int i = 0; do_submit && i < nproducers; i++) {
        EMIT(run(client, s.queue, "submit", false, producers[i], s.seconds, 0, &rows[nrows]));
    }
    static const struct {
        const char *name;
        size_t size;
        int threads;
    } batches[] = {
        {"batch100", SMALL_BATCH, 1}, {"batch", BATCH_SIZE, 1}, {"batch", BATCH_SIZE, 4}};
    for (size_t i = 0; do_batch && i < sizeof(batches) / sizeof(batches[0]); i++) {
        EMIT(run(client, s.queue, batches[i].name, batches[i].size, batches[i].threads, s.seconds,
                 0, &rows[nrows]));
    }
    for (int i = 0; do_echo && i < nproducers; i++) {
        EMIT(run_echo(s.url != NULL ? s.url : getenv("JOBQ_URL"), producers[i], s.seconds,
                      &rows[nrows]));
    }
    for (int i = 0; do_exec && i < s.nexec; i++) {
        EMIT(run_exec(client, s.exec_queues[i], s.seconds, &rows[nrows]));
    }
    if (do_load) {
        /* Half the maximum measured in this run, else measured now. */
        double max_submit = 0, max_exec = 0;
        for (size_t i = 0; i < nrows; i++) {
            if (strcmp(rows[i].workload, "submit") == 0 && rows[i].rate > max_submit) {
                max_submit = rows[i].rate;
            }
            if (strcmp(rows[i].workload, "exec") == 0 &&
                strcmp(rows[i].queue, s.exec_queues[0]) == 0) {
                max_exec = rows[i].rate;
            }
        }
        row probe;
        if (s.load_rate <= 0 && max_submit <= 0 &&
            run(client, s.queue, "probe", 0, 16, s.seconds, 0, &probe)) {
            max_submit = probe.rate;
        }
        if (max_exec <= 0 && run_exec(client, s.exec_queues[0], s.seconds, &probe)) {
            max_exec = probe.rate;
        }
        double ack_rate = s.load_rate > 0 ? s.load_rate : max_submit / 2;
        row_init(&rows[nrows], "load.ack", s.queue); /* what prints if nothing was measured */
        EMIT(ack_rate > 0 && run_load(client, s.queue, ack_rate, s.seconds, false, &rows[nrows]));
        row_init(&rows[nrows], "load.start", s.exec_queues[0]);
        EMIT(max_exec > 0 &&
             run_load(client, s.exec_queues[0], max_exec / 2, s.seconds, true, &rows[nrows]));
    }
    if (do_latency) {
        bool ok = run_latency(client, s.exec_queues[0], s.latency_jobs, s.seconds, &rows[nrows],
                              &rows[nrows + 1]);
        EMIT(ok);
        EMIT(ok);
    }
    if (do_claim) {
        EMIT(run_claim(client, s.queue, s.seconds, &rows[nrows]));
    }
    if (do_idle) {
        EMIT(run_idle(s.pid, s.quick ? IDLE_SECONDS_QUICK : IDLE_SECONDS, &rows[nrows]));
    }
    if (do_rss) {
        EMIT(run_rss(client, s.pid, s.queue, s.rss_jobs, &rows[nrows]));
    }
#undef EMIT
    jobq_client_close(client);
    if (s.json_path != NULL && !write_json(s.json_path, rows, nrows, s.tag)) {
        rc = EXIT_FAILED;
    }
    return rc;
}
