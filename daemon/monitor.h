/* monitor.h: the monitor endpoint's content: /metrics, /stats, /healthz and the dashboard. */
#ifndef JOBQD_MONITOR_H
#define JOBQD_MONITOR_H

#include <jansson.h>

#include "http.h"
#include "server.h"

/** monitor_request: the http_request_cb of jobqd's monitor endpoint (arg: the server). */
void monitor_request(void *arg, hcall *call, enum http_route route);

/** monitor_queue_json: one queue of the stats reply: counts by state, paused, breaker,
 *  concurrency and, with with_series, totals, rates over the last 60 s and per-second series of the
 *  last 300 s. Returns a new reference. */
json_t *monitor_queue_json(const server *s, const qstate *q, bool with_series);

/** monitor_queue_counts: appends one queue of the plain stats reply to b, as the JSON member
 *  "NAME":{counts by state, paused, breaker, concurrency}: what the stats op answers without
 *  "series", written without building a JSON tree (it may list thousands of queues) and kept
 *  in q->stats_cache, reused while the values it shows are unchanged. Loop thread. */
void monitor_queue_counts(mbuf *b, qstate *q);


/** monitor_part: the HTTP monitor endpoint ([server] http): listens at start, closes once
 *  drained. */
extern const server_part monitor_part;

#endif
