/* monitor.h: the monitor endpoint's content: /metrics, /stats, /healthz and the dashboard. */
#ifndef JOBQD_MONITOR_H
#define JOBQD_MONITOR_H

#include <jansson.h>

#include "http.h"
#include "server.h"

/** monitor_request: the http_request_cb of jobqd's monitor endpoint (arg: the server). */
void monitor_request(void *arg, hcall *call, enum http_route route);

/** monitor_queue_json: one queue of the stats reply: counts by state, paused, breaker,
 *  concurrency, totals, rates over the last 60 s and per-second series of the last 300 s. */
json_t *monitor_queue_json(const server *s, const qstate *q);

/** monitor_stats_json: the /stats object (without recent_dead). */
json_t *monitor_stats_json(const server *s);

#endif
