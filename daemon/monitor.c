/* monitor.c: what the monitor endpoint serves: /metrics (Prometheus text), /stats (JSON),
 * /healthz and the embedded dashboard at /. The one file that prints the counters. */
#include "monitor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "codec.h"
#include "gauges.h"
#include "httpapi.h"
#include "log.h"
#include "textfile.h"

#define RECENT_PER_QUEUE 5
#define RECENT_SHOWN 10

/* The dashboard page, embedded at build time by cmake/embed.cmake. */
extern const struct {
    const char *name;
    const char *data;
    size_t len;
} jobq_assets[];

static const char *const state_label[JOBQ_NSTATES] = {
    "scheduled", "ready", "running", "retrying", "succeeded", "dead", "cancelled", "waiting",
};

json_t *
monitor_queue_json(const server *s, const qstate *q, bool with_series)
{
    (void)s;
    int64_t now_ms = jobq__now_ms();
    int64_t now_s = now_ms / 1000;
    json_t *qo = json_object();
    for (int st = 0; st < JOBQ_NSTATES; st++) {
        json_object_set_new(qo, state_label[st], json_integer(q->counts[st]));
    }
    json_object_set_new(qo, "paused", json_boolean(q->paused));
    json_object_set_new(qo, "breaker", json_string(breaker_state_name(q->br.state)));
    json_object_set_new(qo, "concurrency",
                        q->conf->argv != NULL ? json_integer(q->conf->concurrency) : json_null());
    if (!with_series) {
        return qo;
    }
    json_object_set_new(qo, "oldest_ready_s",
                        json_integer(gauges_age_s(q->oldest_ready_ms, now_ms)));
    json_object_set_new(qo, "oldest_overdue_s",
                        json_integer(gauges_age_s(q->oldest_overdue_ms, now_ms)));
    json_object_set_new(qo, "totals",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "submitted",
                                  (json_int_t)q->totals[TOTAL_SUBMITTED], "started",
                                  (json_int_t)q->totals[TOTAL_STARTED], "succeeded",
                                  (json_int_t)q->totals[TOTAL_SUCCEEDED], "failed",
                                  (json_int_t)q->totals[TOTAL_FAILED], "retried",
                                  (json_int_t)q->totals[TOTAL_RETRIED], "dead",
                                  (json_int_t)q->totals[TOTAL_DEAD], "cancelled",
                                  (json_int_t)q->totals[TOTAL_CANCELLED]));
    json_object_set_new(qo, "rates",
                        json_pack("{s:f, s:f, s:f}", "submitted",
                                  series_rate(&q->series, SERIES_SUBMITTED, now_s, 60), "succeeded",
                                  series_rate(&q->series, SERIES_SUCCEEDED, now_s, 60), "failed",
                                  series_rate(&q->series, SERIES_FAILED, now_s, 60)));
    json_object_set_new(qo, "series", series_json(&q->series, now_s));
    return qo;
}

void
monitor_queue_counts(mbuf *b, qstate *q)
{
    stats_cache *sc = &q->stats_cache;
    if (sc->text != NULL && sc->paused == q->paused && sc->breaker == (int)q->br.state &&
        memcmp(sc->counts, q->counts, sizeof(sc->counts)) == 0) {
        mbuf_append(b, sc->text, sc->len);
        return;
    }
    /* Queue names are [A-Za-z0-9_.-]: nothing to escape. 64 + 8 * 33 + 70 bytes at most. */
    char text[512];
    size_t n = (size_t)snprintf(text, sizeof(text), "\"%s\":{", q->name);
    for (int st = 0; st < JOBQ_NSTATES; st++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\"%s\":%lld,", state_label[st],
                              (long long)q->counts[st]);
    }
    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "\"paused\":%s,\"breaker\":\"%s\",\"concurrency\":",
                          q->paused ? "true" : "false", breaker_state_name(q->br.state));
    if (q->conf->argv != NULL) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%d}", q->conf->concurrency);
    } else {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "null}");
    }
    mbuf_append(b, text, n);
    char *copy = realloc(sc->text, n);
    if (copy == NULL) {
        free(sc->text);
        sc->text = NULL;
        return;
    }
    memcpy(copy, text, n);
    sc->text = copy;
    sc->len = n;
    memcpy(sc->counts, q->counts, sizeof(sc->counts));
    sc->paused = q->paused;
    sc->breaker = (int)q->br.state;
}

/* ---- /metrics ---- */

static void
per_queue_counter(mbuf *b, const server *s, const char *name, const char *help,
                  enum total_kind kind)
{
    metric_help(b, name, "counter", help);
    for (size_t i = 0; i < s->nqueues; i++) {
        mbuf_printf(b, "%s{queue=\"%s\"} %llu\n", name, s->queues[i]->name,
                    (unsigned long long)s->queues[i]->totals[kind]);
    }
}

/* suppressed_line: one sample of jobq_log_suppressed_total (log_suppressed_each's callback). */
static void
suppressed_line(void *arg, const char *event, uint64_t dropped)
{
    mbuf_printf(arg, "jobq_log_suppressed_total{event=\"%s\"} %llu\n", event,
                (unsigned long long)dropped);
}

/* render_metrics: the exposition text of everything jobqd counts. */
static void
render_metrics(const server *s, mbuf *b)
{
    metric_help(b, "jobq_build_info", "gauge", "Version of jobqd; always 1.");
    mbuf_printf(b, "jobq_build_info{version=\"%s\"} 1\n", JOBQ_VERSION_STRING);
    cluster_metrics(s, b); /* several nodes on PostgreSQL: the node, its role, the store */
    metric_help(b, "jobq_jobs", "gauge", "Jobs by queue and state.");
    for (size_t i = 0; i < s->nqueues; i++) {
        for (int st = 0; st < JOBQ_NSTATES; st++) {
            mbuf_printf(b, "jobq_jobs{queue=\"%s\",state=\"%s\"} %lld\n", s->queues[i]->name,
                        state_label[st], (long long)s->queues[i]->counts[st]);
        }
    }
    per_queue_counter(b, s, "jobq_jobs_submitted_total", "Jobs submitted (duplicates excluded).",
                      TOTAL_SUBMITTED);
    per_queue_counter(b, s, "jobq_jobs_started_total", "Attempts started.", TOTAL_STARTED);
    per_queue_counter(b, s, "jobq_jobs_failed_total", "Attempts that failed.", TOTAL_FAILED);
    per_queue_counter(b, s, "jobq_jobs_retried_total", "Failed attempts scheduled for a retry.",
                      TOTAL_RETRIED);
    per_queue_counter(b, s, "jobq_jobs_expired_total",
                      "Jobs cancelled because they had not started by their deadline.",
                      TOTAL_EXPIRED);
    metric_help(b, "jobq_jobs_completed_total", "counter", "Jobs that ended, by outcome.");
    for (size_t i = 0; i < s->nqueues; i++) {
        const qstate *q = s->queues[i];
        mbuf_printf(b,
                    "jobq_jobs_completed_total{queue=\"%s\",outcome=\"succeeded\"} %llu\n"
                    "jobq_jobs_completed_total{queue=\"%s\",outcome=\"dead\"} %llu\n"
                    "jobq_jobs_completed_total{queue=\"%s\",outcome=\"cancelled\"} %llu\n",
                    q->name, (unsigned long long)q->totals[TOTAL_SUCCEEDED], q->name,
                    (unsigned long long)q->totals[TOTAL_DEAD], q->name,
                    (unsigned long long)q->totals[TOTAL_CANCELLED]);
    }
    char labels[100];
    metric_help(b, "jobq_job_wait_seconds", "histogram",
                "Seconds from when a job was due to when it started.");
    for (size_t i = 0; i < s->nqueues; i++) {
        snprintf(labels, sizeof(labels), "queue=\"%s\"", s->queues[i]->name);
        metric_hist(b, "jobq_job_wait_seconds", labels, &s->queues[i]->wait_hist, HIST_SECONDS);
    }
    metric_help(b, "jobq_job_run_seconds", "histogram", "Seconds an attempt ran.");
    for (size_t i = 0; i < s->nqueues; i++) {
        snprintf(labels, sizeof(labels), "queue=\"%s\"", s->queues[i]->name);
        metric_hist(b, "jobq_job_run_seconds", labels, &s->queues[i]->run_hist, HIST_SECONDS);
    }
    metric_help(b, "jobq_breaker_state", "gauge",
                "Circuit breaker of the queue: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < s->nqueues; i++) {
        mbuf_printf(b, "jobq_breaker_state{queue=\"%s\"} %d\n", s->queues[i]->name,
                    (int)s->queues[i]->br.state);
    }
    metric_help(b, "jobq_breaker_transitions_total", "counter",
                "Circuit breaker transitions, by the state entered.");
    for (size_t i = 0; i < s->nqueues; i++) {
        const breaker *br = &s->queues[i]->br;
        const char *n = s->queues[i]->name;
        mbuf_printf(b,
                    "jobq_breaker_transitions_total{queue=\"%s\",to=\"open\"} %llu\n"
                    "jobq_breaker_transitions_total{queue=\"%s\",to=\"half_open\"} %llu\n"
                    "jobq_breaker_transitions_total{queue=\"%s\",to=\"closed\"} %llu\n",
                    n, (unsigned long long)br->opened, n, (unsigned long long)br->half_opened, n,
                    (unsigned long long)br->closed);
    }
    int64_t now = jobq__now_ms();
    metric_help(b, "jobq_queue_oldest_ready_seconds", "gauge",
                "How long the queue's oldest ready job has waited to start (sampled every 5 s; "
                "0: none ready).");
    for (size_t i = 0; i < s->nqueues; i++) {
        mbuf_printf(b, "jobq_queue_oldest_ready_seconds{queue=\"%s\"} %lld\n", s->queues[i]->name,
                    (long long)gauges_age_s(s->queues[i]->oldest_ready_ms, now));
    }
    metric_help(b, "jobq_queue_oldest_overdue_seconds", "gauge",
                "How long the queue's oldest scheduled or retrying job has been due without being "
                "made ready (sampled every 5 s; 0: none).");
    for (size_t i = 0; i < s->nqueues; i++) {
        mbuf_printf(b, "jobq_queue_oldest_overdue_seconds{queue=\"%s\"} %lld\n", s->queues[i]->name,
                    (long long)gauges_age_s(s->queues[i]->oldest_overdue_ms, now));
    }
    metric_help(b, "jobq_queue_slowed_seconds", "gauge",
                "Seconds until the queue starts jobs again after a downstream asked it to slow "
                "down (0: not slowed).");
    for (size_t i = 0; i < s->nqueues; i++) {
        const qstate *q = s->queues[i];
        mbuf_printf(b, "jobq_queue_slowed_seconds{queue=\"%s\"} %.3f\n", q->name,
                    q->slow_until_ms > now ? (double)(q->slow_until_ms - now) / 1000 : 0.0);
    }
    metric_help(b, "jobq_queue_paused", "gauge", "1 if the queue is paused.");
    for (size_t i = 0; i < s->nqueues; i++) {
        mbuf_printf(b, "jobq_queue_paused{queue=\"%s\"} %d\n", s->queues[i]->name,
                    s->queues[i]->paused ? 1 : 0);
    }
    metric_help(b, "jobq_store_commit_seconds", "histogram",
                "Seconds per store transaction, begin to commit (with durability full the "
                "fsync runs apart: jobq_store_sync_seconds).");
    metric_hist(b, "jobq_store_commit_seconds", "", &s->w.stats.commit_hist, HIST_SECONDS);
    metric_help(b, "jobq_store_batch_ops", "histogram", "Operations per store transaction.");
    metric_hist(b, "jobq_store_batch_ops", "", &s->w.stats.batch_hist, HIST_SIZE);
    metric_help(b, "jobq_store_failures_total", "counter", "Store transactions that failed.");
    mbuf_printf(b, "jobq_store_failures_total %llu\n", (unsigned long long)s->w.stats.failures);
    metric_help(b, "jobq_store_write_failing", "gauge",
                "1 while the store's last write failed (a full disk, an I/O error, an "
                "unreachable database).");
    mbuf_printf(b, "jobq_store_write_failing %d\n", s->w.stats.write_failing ? 1 : 0);
    metric_help(b, "jobq_store_commits_total", "counter",
                "Store transactions that wrote, by whether they waited for an fsync (a batch of "
                "claims and outcomes only does not).");
    mbuf_printf(b, "jobq_store_commits_total{fsync=\"yes\"} %llu\n",
                (unsigned long long)s->w.stats.synced);
    mbuf_printf(b, "jobq_store_commits_total{fsync=\"no\"} %llu\n",
                (unsigned long long)s->w.stats.unsynced);
    /* The commit pipeline (durability full): a sync in flight while the next batch executes. */
    const writer_stats *ws = &s->w.stats;
    metric_help(b, "jobq_store_pipeline_seconds_total", "counter",
                "Seconds the commit pipeline spent with a batch executing on the writer's "
                "thread, with a sync in flight, and with both at once.");
    mbuf_printf(b,
                "jobq_store_pipeline_seconds_total{stage=\"execute\"} %.6f\n"
                "jobq_store_pipeline_seconds_total{stage=\"sync\"} %.6f\n"
                "jobq_store_pipeline_seconds_total{stage=\"both\"} %.6f\n",
                ws->executing_ns / 1e9, ws->syncing_ns / 1e9, ws->both_ns / 1e9);
    metric_help(b, "jobq_store_pipeline_overlapped_batches_total", "counter",
                "Store transactions started while a sync was in flight.");
    mbuf_printf(b, "jobq_store_pipeline_overlapped_batches_total %llu\n",
                (unsigned long long)ws->overlapped);
    metric_help(b, "jobq_store_syncs_total", "counter",
                "Syncs of the write-ahead log apart from the commits, each covering every "
                "commit before it, by result (a failed one fails the replies it covered).");
    mbuf_printf(b,
                "jobq_store_syncs_total{result=\"ok\"} %llu\n"
                "jobq_store_syncs_total{result=\"failed\"} %llu\n",
                (unsigned long long)(ws->syncs + ws->checkpoints - ws->sync_failures),
                (unsigned long long)ws->sync_failures);
    metric_help(b, "jobq_store_sync_seconds", "histogram", "Seconds per sync of the log.");
    metric_hist(b, "jobq_store_sync_seconds", "", &ws->sync_hist, HIST_SECONDS);
    metric_help(b, "jobq_event_loop_lag_seconds", "histogram",
                "Seconds a request waited between nng's thread and the event loop.");
    metric_hist(b, "jobq_event_loop_lag_seconds", "", &s->lag_hist, HIST_SECONDS);
    metric_help(b, "jobq_connected_clients", "gauge", "Open connections to the nng listeners.");
    mbuf_printf(b, "jobq_connected_clients %d\n", s->in != NULL ? intake_clients(s->in) : 0);
    metric_help(b, "jobq_connections_refused_total", "counter",
                "Connections answered too_many_connections and closed (max_connections).");
    mbuf_printf(b, "jobq_connections_refused_total %llu\n",
                (unsigned long long)(s->in != NULL ? intake_refused(s->in) : 0));
    metric_help(b, "jobq_held_requests", "gauge",
                "Waits and long-poll fetches held until their jobs end (max_waits).");
    mbuf_printf(b, "jobq_held_requests %zu\n", s->nheld);
    metric_help(b, "jobq_log_suppressed_total", "counter",
                "Log lines dropped by the rate limit of their event (20 lines a second).");
    log_flush_suppressed();
    log_suppressed_each(suppressed_line, b);
    metric_help(b, "jobq_running_jobs", "gauge", "Jobs running in jobqd's own consumers.");
    mbuf_printf(b, "jobq_running_jobs %d\n", s->nrunning);
    process_metrics(b);
}

/* ---- store reads for /stats and /healthz ---- */

typedef struct mon_op {
    wop op;
    server *s;
    hcall *hc;
    enum http_route route;
    char (*names)[65]; /* the queues to read, copied on the loop */
    size_t nnames;
    job_row *rows; /* RECENT_PER_QUEUE per queue */
    size_t nrows;
} mon_op;

static int
exec_mon(store *st, wop *op, int64_t now_ms)
{
    mon_op *m = container_of(op, mon_op, op);
    if (m->route == ROUTE_HEALTHZ) {
        int64_t at;
        int err = store_next_due(st, &at);
        return err == JOBQ_ENOENT ? JOBQ_OK : err;
    }
    for (size_t i = 0; i < m->nnames; i++) {
        size_t n = 0;
        int err =
            store_recent(st, m->names[i], JOBQ_DEAD, m->rows + m->nrows, RECENT_PER_QUEUE, &n);
        if (err != JOBQ_OK) {
            return err;
        }
        m->nrows += n;
    }
    return JOBQ_OK;
}

static int
by_finished_desc(const void *a, const void *b)
{
    const job_row *x = a, *y = b;
    return x->finished_at_ms < y->finished_at_ms   ? 1
           : x->finished_at_ms > y->finished_at_ms ? -1
                                                   : 0;
}

/* append_json: o (its reference taken) as compact JSON text. */
static void
append_json(mbuf *b, json_t *o)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        b->failed = true;
        return;
    }
    mbuf_append(b, text, strlen(text));
    free(text);
}

/* stats_text: the /stats object: every queue as monitor_queue_json gives it with series, the
 * process figures and recent_dead (its reference taken), written as text: with thousands of
 * queues a JSON tree of their series would cost the loop about a second. */
static void
stats_text(const server *s, mbuf *b, json_t *recent_dead)
{
    int64_t now = jobq__now_ms();
    int64_t now_s = now / 1000;
    mbuf_printf(b, "{\"ok\":true,\"version\":\"%s\",\"time\":%lld,\"uptime_s\":%lld,\"queues\":{",
                JOBQ_VERSION_STRING, (long long)now, (long long)((now - s->started_at_ms) / 1000));
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        if (i > 0) {
            mbuf_append(b, ",", 1);
        }
        monitor_queue_counts(b, q);
        if (b->failed) {
            break;
        }
        b->len--; /* reopen the queue's object */
        mbuf_printf(b,
                    ",\"totals\":{\"submitted\":%llu,\"started\":%llu,\"succeeded\":%llu,"
                    "\"failed\":%llu,\"retried\":%llu,\"dead\":%llu,\"cancelled\":%llu}",
                    (unsigned long long)q->totals[TOTAL_SUBMITTED],
                    (unsigned long long)q->totals[TOTAL_STARTED],
                    (unsigned long long)q->totals[TOTAL_SUCCEEDED],
                    (unsigned long long)q->totals[TOTAL_FAILED],
                    (unsigned long long)q->totals[TOTAL_RETRIED],
                    (unsigned long long)q->totals[TOTAL_DEAD],
                    (unsigned long long)q->totals[TOTAL_CANCELLED]);
        mbuf_printf(b, ",\"rates\":{\"submitted\":%.6g,\"succeeded\":%.6g,\"failed\":%.6g}",
                    series_rate(&q->series, SERIES_SUBMITTED, now_s, 60),
                    series_rate(&q->series, SERIES_SUCCEEDED, now_s, 60),
                    series_rate(&q->series, SERIES_FAILED, now_s, 60));
        mbuf_printf(b, ",\"oldest_ready_s\":%lld,\"oldest_overdue_s\":%lld",
                    (long long)gauges_age_s(q->oldest_ready_ms, now),
                    (long long)gauges_age_s(q->oldest_overdue_ms, now));
        mbuf_append(b, ",\"series\":", sizeof(",\"series\":") - 1);
        series_text(b, &q->series, now_s);
        mbuf_append(b, "}", 1);
    }
    mbuf_append(b, "},\"process\":", sizeof("},\"process\":") - 1);
    append_json(b, json_pack("{s:I, s:f, s:i, s:i, s:i}", "rss_bytes",
                             (json_int_t)process_rss_bytes(), "cpu_seconds", process_cpu_seconds(),
                             "open_fds", process_open_fds(), "connected_clients",
                             s->in != NULL ? intake_clients(s->in) : 0, "running", s->nrunning));
    mbuf_append(b, ",\"recent_dead\":", sizeof(",\"recent_dead\":") - 1);
    append_json(b, recent_dead);
    json_t *cl = cluster_json(s); /* several nodes: this node, its role, the leader */
    if (cl != NULL) {
        mbuf_append(b, ",\"cluster\":", sizeof(",\"cluster\":") - 1);
        append_json(b, cl);
    }
    mbuf_append(b, "}", 1);
}

static void
done_mon(wop *op)
{
    mon_op *m = container_of(op, mon_op, op);
    server *s = m->s;
    char msg[400];
    if (m->route == ROUTE_HEALTHZ) {
        if (op->err != JOBQ_OK) {
            snprintf(msg, sizeof(msg), "store: %s\n", writer_last_error(&s->w));
            http_reply(m->hc, 503, "text/plain; charset=utf-8", msg, strlen(msg));
        } else if (s->w.stats.write_failing) {
            snprintf(msg, sizeof(msg), "store: writes are failing: %s\n", writer_last_error(&s->w));
            http_reply(m->hc, 503, "text/plain; charset=utf-8", msg, strlen(msg));
        } else if (s->draining) {
            http_reply(m->hc, 503, "text/plain; charset=utf-8", "draining\n", 9);
        } else if (s->node_name[0] != '\0') {
            /* Several nodes: which node answers, its role, and that the store is up. */
            snprintf(msg, sizeof(msg), "ok\nnode: %s\nrole: %s\nstore: up\n", s->node_name,
                     s->leads ? "leader" : "follower");
            http_reply(m->hc, 200, "text/plain; charset=utf-8", msg, strlen(msg));
        } else {
            http_reply(m->hc, 200, "text/plain; charset=utf-8", "ok\n", 3);
        }
    } else {
        json_t *dead = json_array();
        if (op->err == JOBQ_OK) {
            qsort(m->rows, m->nrows, sizeof(*m->rows), by_finished_desc);
            for (size_t i = 0; i < m->nrows && i < RECENT_SHOWN; i++) {
                const job_row *r = &m->rows[i];
                char line[300];
                snprintf(line, sizeof(line), "%s", r->error != NULL ? r->error : "");
                line[strcspn(line, "\n")] = '\0';
                json_array_append_new(
                    dead, json_pack("{s:I, s:s, s:i, s:I, s:s}", "id", (json_int_t)r->id, "queue",
                                    r->queue, "attempt", r->attempt, "finished_at",
                                    (json_int_t)r->finished_at_ms, "error", line));
            }
        }
        mbuf text = {0};
        stats_text(s, &text, dead);
        if (text.failed) {
            http_reply(m->hc, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        } else {
            http_reply(m->hc, 200, "application/json", text.p, text.len);
        }
        free(text.p);
    }
    for (size_t i = 0; i < m->nrows; i++) {
        job_row_clear(&m->rows[i]);
    }
    free(m->rows);
    free(m->names);
    free(m);
}

/* monitor_headers: the http_headers_cb: only the HTTP API's POST /v1/ops takes a body. */
static long long
monitor_headers(void *arg, hcall *hc, enum http_route route)
{
    server *s = arg;
    if (route == ROUTE_OPS) {
        return httpapi_headers(s, hc);
    }
    return 0;
}

void
monitor_request(void *arg, hcall *hc, enum http_route route)
{
    server *s = arg;
    /* With auth_token, what shows jobs and counts needs a token (read_token will do); a
     * browser is asked for it as the password of a login (any user name). /healthz and the
     * OpenAPI document stay open; /v1/ops reads its Authorization itself. */
    if (route == ROUTE_INDEX || route == ROUTE_METRICS || route == ROUTE_STATS) {
        httpapi_grant g = httpapi_grant_of(s, hc);
        if (g == GRANT_NONE || g == GRANT_BAD) {
            httpapi_unauthorized(hc, g, true);
            return;
        }
    }
    switch (route) {
    case ROUTE_OPS:
        httpapi_request(s, hc);
        return;
    case ROUTE_OPENAPI:
        httpapi_openapi(hc);
        return;
    case ROUTE_INDEX:
        for (size_t i = 0; jobq_assets[i].name != NULL; i++) {
            if (strcmp(jobq_assets[i].name, "dashboard.html") == 0) {
                http_reply(hc, 200, "text/html; charset=utf-8", jobq_assets[i].data,
                           jobq_assets[i].len);
                return;
            }
        }
        http_reply(hc, 404, "text/plain; charset=utf-8", "no dashboard\n", 13);
        return;
    case ROUTE_METRICS: {
        mbuf b = {0};
        render_metrics(s, &b);
        if (b.failed) {
            http_reply(hc, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        } else {
            http_reply(hc, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
        }
        free(b.p);
        return;
    }
    case ROUTE_STATS:
    case ROUTE_HEALTHZ:
        break;
    case ROUTE_COUNT:
        return;
    }
    mon_op *m = calloc(1, sizeof(*m));
    if (m != NULL && route == ROUTE_STATS) {
        m->names = calloc(s->nqueues ? s->nqueues : 1, sizeof(*m->names));
        m->rows = calloc((s->nqueues ? s->nqueues : 1) * RECENT_PER_QUEUE, sizeof(*m->rows));
        if (m->names == NULL || m->rows == NULL) {
            free(m->names);
            free(m->rows);
            free(m);
            m = NULL;
        }
    }
    if (m == NULL) {
        http_reply(hc, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    m->s = s;
    m->hc = hc;
    m->route = route;
    if (route == ROUTE_STATS) {
        /* Only queues with dead jobs have recent ones to read: one query each. */
        for (size_t i = 0; i < s->nqueues; i++) {
            if (s->queues[i]->counts[JOBQ_DEAD] > 0) {
                snprintf(m->names[m->nnames++], sizeof(m->names[0]), "%s", s->queues[i]->name);
            }
        }
    }
    m->op.exec = exec_mon;
    m->op.done = done_mon;
    m->op.writes = false;
    writer_push(&s->w, &m->op);
}

/* monitor_listen: the HTTP listener (monitor and HTTP API), when [server] http is set; HTTPS
 * with http_tls_cert and http_tls_key. */
static int
monitor_listen(server *s, char *err, size_t errlen)
{
    const config *cfg = s->cfg;
    if (cfg->http == NULL) {
        return 0;
    }
    http_limits hlim = {.timeout_ms = cfg->http_timeout_ms,
                        .max_connections = cfg->http_max_connections,
                        .max_per_ip = cfg->http_max_per_ip,
                        .max_request = cfg->http_max_request};
    char *cert = NULL, *key = NULL;
    if (cfg->http_tls_cert != NULL) {
        cert = text_file_read(cfg->http_tls_cert);
        key = text_file_read(cfg->http_tls_key);
        if (cert == NULL || key == NULL) {
            snprintf(err, errlen, "cannot read http_tls_%s %s", cert == NULL ? "cert" : "key",
                     cert == NULL ? cfg->http_tls_cert : cfg->http_tls_key);
            free(cert);
            free(key);
            return -1;
        }
        hlim.tls_cert = cert;
        hlim.tls_key = key;
    }
    int rv = http_open(&s->http, s->loop, cfg->http, &hlim, monitor_request, monitor_headers, s,
                       err, errlen);
    free(cert); /* MHD copies them (GnuTLS parses them at start) */
    free(key);
    if (rv == 0) {
        http_on_conn_closed(s->http, httpapi_conn_closed, s);
    }
    return rv;
}

static void
monitor_close(server *s)
{
    http_close(s->http);
    s->http = NULL;
}

const server_part monitor_part = {
    .name = "monitor", .init = monitor_listen, .close = monitor_close};
