/* metrics.c: histograms, per-second series and the Prometheus text of jobqd's process. */
#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const double bounds_seconds[HIST_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300,
};
static const double bounds_size[HIST_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
};

static const double *
bounds_of(hist_kind kind)
{
    return kind == HIST_SECONDS ? bounds_seconds : bounds_size;
}

void
hist_observe(hist *h, hist_kind kind, double v)
{
    const double *b = bounds_of(kind);
    int i = 0;
    while (i < HIST_BUCKETS && v > b[i]) {
        i++;
    }
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void
series_add(series *s, enum series_kind kind, int64_t now_s, uint32_t by)
{
    size_t i = (size_t)(now_s % SERIES_LEN);
    if (s->sec[i] != now_s) {
        s->sec[i] = now_s;
        for (int k = 0; k < SERIES_KINDS; k++) {
            s->n[k][i] = 0;
        }
    }
    s->n[kind][i] += by;
}

static uint32_t
series_at(const series *s, enum series_kind kind, int64_t t)
{
    size_t i = (size_t)(t % SERIES_LEN);
    return s->sec[i] == t ? s->n[kind][i] : 0;
}

json_t *
series_json(const series *s, int64_t now_s)
{
    static const char *const names[SERIES_KINDS] = {"submitted", "succeeded", "failed"};
    int64_t start = now_s - SERIES_LEN + 1;
    json_t *o = json_object();
    json_object_set_new(o, "start", json_integer(start));
    json_object_set_new(o, "step", json_integer(1));
    for (int k = 0; k < SERIES_KINDS; k++) {
        json_t *a = json_array();
        for (int64_t t = start; t <= now_s; t++) {
            json_array_append_new(a, json_integer(series_at(s, (enum series_kind)k, t)));
        }
        json_object_set_new(o, names[k], a);
    }
    return o;
}

void
series_text(mbuf *b, const series *s, int64_t now_s)
{
    static const char *const names[SERIES_KINDS] = {"submitted", "succeeded", "failed"};
    int64_t start = now_s - SERIES_LEN + 1;
    mbuf_printf(b, "{\"start\":%lld,\"step\":1", (long long)start);
    for (int k = 0; k < SERIES_KINDS; k++) {
        mbuf_printf(b, ",\"%s\":[", names[k]);
        for (int64_t t = start; t <= now_s; t++) {
            mbuf_printf(b, t == start ? "%u" : ",%u", series_at(s, (enum series_kind)k, t));
        }
        mbuf_append(b, "]", 1);
    }
    mbuf_append(b, "}", 1);
}

double
series_rate(const series *s, enum series_kind kind, int64_t now_s, int window)
{
    uint64_t n = 0;
    for (int64_t t = now_s - window; t < now_s; t++) {
        n += series_at(s, kind, t);
    }
    return window > 0 ? (double)n / window : 0;
}

void
mbuf_append(mbuf *b, const char *text, size_t len)
{
    jobq__jt_raw(b, text, len);
}

void
mbuf_printf(mbuf *b, const char *fmt, ...)
{
    if (b->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        if (!jobq__jt_room(b, (size_t)n)) {
            return;
        }
    }
}

void
metric_help(mbuf *b, const char *name, const char *type, const char *help)
{
    mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metric_hist(mbuf *b, const char *name, const char *labels, const hist *h, hist_kind kind)
{
    const double *bd = bounds_of(kind);
    const char *sep = labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        cum += h->counts[i];
        mbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bd[i],
                    (unsigned long long)cum);
    }
    cum += h->counts[HIST_BUCKETS];
    mbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                (unsigned long long)cum);
    if (labels[0] != '\0') {
        mbuf_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                    (unsigned long long)h->count);
    } else {
        mbuf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                    (unsigned long long)h->count);
    }
}

/* ---- /proc/self ---- */

static double start_time_s;

static void
capture_start_time(void)
{
    if (start_time_s == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        start_time_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    }
}

int64_t
process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages_total = 0, pages_rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%lld %lld", &pages_total, &pages_rss) != 2) {
            pages_rss = 0;
        }
        fclose(f);
    }
    return (int64_t)pages_rss * sysconf(_SC_PAGESIZE);
}

static int64_t
process_vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages_total = 0;
    if (f != NULL) {
        if (fscanf(f, "%lld", &pages_total) != 1) {
            pages_total = 0;
        }
        fclose(f);
    }
    return (int64_t)pages_total * sysconf(_SC_PAGESIZE);
}

double
process_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int
process_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(d);
        n--; /* the directory's own fd */
    }
    return n;
}

void
process_metrics(mbuf *b)
{
    capture_start_time();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    metric_help(b, "process_cpu_seconds_total", "counter",
                "Total user and system CPU time spent in seconds.");
    mbuf_printf(b, "process_cpu_seconds_total %.6f\n", process_cpu_seconds());
    metric_help(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    mbuf_printf(b, "process_resident_memory_bytes %lld\n", (long long)process_rss_bytes());
    metric_help(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    mbuf_printf(b, "process_virtual_memory_bytes %lld\n", (long long)process_vm_bytes());
    metric_help(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    mbuf_printf(b, "process_open_fds %d\n", process_open_fds());
    metric_help(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    mbuf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    metric_help(b, "process_start_time_seconds", "gauge",
                "Start time of the process since unix epoch in seconds.");
    mbuf_printf(b, "process_start_time_seconds %.3f\n", start_time_s);
}

/* Taken as early as possible: the first call of anything here, from main. */
__attribute__((constructor)) static void
init_start_time(void)
{
    capture_start_time();
}
