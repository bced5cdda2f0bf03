/* metrics.h: counters, histograms and per-second series bumped where events happen, and the
 * one place that prints them (Prometheus text and the JSON of /stats). Loop thread only. */
#ifndef JOBQD_METRICS_H
#define JOBQD_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define HIST_BUCKETS 14
#define SERIES_LEN 300 /* seconds of per-second history */

/** A Prometheus histogram with fixed upper bounds (see hist_bounds). */
typedef struct hist {
    uint64_t counts[HIST_BUCKETS + 1]; /* per bucket, the last one is +Inf; not cumulative */
    double sum;
    uint64_t count;
} hist;

/** The two sets of bucket bounds: seconds (waits, runs, commits, lag) and sizes. */
typedef enum hist_kind { HIST_SECONDS, HIST_SIZE } hist_kind;

/** hist_observe: adds one observation v (seconds, or a size). */
void hist_observe(hist *h, hist_kind kind, double v);

/** Per-second counts of the last SERIES_LEN seconds, kept without a timer: each bump clears
 *  the slot it lands in if that slot holds an older second. */
enum series_kind { SERIES_SUBMITTED, SERIES_SUCCEEDED, SERIES_FAILED, SERIES_KINDS };
typedef struct series {
    int64_t sec[SERIES_LEN]; /* the Unix second each slot counts */
    uint32_t n[SERIES_KINDS][SERIES_LEN];
} series;

/** series_add: counts `by` events of kind at Unix second now_s. */
void series_add(series *s, enum series_kind kind, int64_t now_s, uint32_t by);

/** series_json: {"start": S, "step": 1, "submitted": [...], ...} for the SERIES_LEN seconds
 *  ending at now_s, oldest first. */
json_t *series_json(const series *s, int64_t now_s);

/** series_rate: events of kind per second over the last `window` seconds before now_s. */
double series_rate(const series *s, enum series_kind kind, int64_t now_s, int window);

/** A growable text buffer for the exposition format: codec.h's (p, len, cap; failed: out of
 *  memory, the text is incomplete). Zero-initialise; release with free(b.p). */
typedef jobq__jtext mbuf;

/** mbuf_printf: appends formatted text; on out of memory sets b->failed. */
void mbuf_printf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** mbuf_append: appends len bytes of text; on out of memory sets b->failed. */
void mbuf_append(mbuf *b, const char *text, size_t len);

/** series_text: what series_json returns, as JSON text appended to b (no JSON tree built). */
void series_text(mbuf *b, const series *s, int64_t now_s);

/** metric_help: "# HELP name help\n# TYPE name type\n". */
void metric_help(mbuf *b, const char *name, const char *type, const char *help);

/** metric_hist: the _bucket, _sum and _count lines of h, with labels ("" or `queue="x"`). */
void metric_hist(mbuf *b, const char *name, const char *labels, const hist *h, hist_kind kind);

/** process_metrics: the process_* metrics, read from /proc/self. */
void process_metrics(mbuf *b);

/** process_rss_bytes, process_cpu_seconds, process_open_fds: for /stats. */
int64_t process_rss_bytes(void);
double process_cpu_seconds(void);
int process_open_fds(void);

#endif
