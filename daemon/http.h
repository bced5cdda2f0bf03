/* http.h: the monitor endpoint's transport: libmicrohttpd driven from the loop (no thread of
 * its own), behind a listener jobqd accepts itself so that the connection cap, the accept
 * backoff and the deadlines are its own. Handlers run on the loop thread and may answer at
 * once or later. It is never on the job path. */
#ifndef JOBQD_HTTP_H
#define JOBQD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http http;
typedef struct hcall hcall; /* one request: answer it exactly once with http_reply */

enum http_route { ROUTE_INDEX, ROUTE_METRICS, ROUTE_STATS, ROUTE_HEALTHZ, ROUTE_COUNT };

/** The limits of the HTTP side (the [server] http_* keys). */
typedef struct http_limits {
    int64_t timeout_ms;     /* a whole request (headers and body), and idleness, at most */
    size_t max_connections; /* connections at once; at the cap, the one waiting longest for its
                               request is closed, or the newcomer gets 503 if none waits */
    size_t max_per_ip;      /* connections from one address at once; 0: no cap */
    size_t max_request;     /* bytes of one request's line and headers (per-connection memory) */
} http_limits;

/** http_request_cb: a request for route arrived (loop thread). The callback answers with
 *  http_reply, at once or later (the connection waits, without its timeout, meanwhile). */
typedef void (*http_request_cb)(void *arg, hcall *call, enum http_route route);

/** http_open: serves GET (and HEAD) /, /metrics, /stats and /healthz on hostport
 *  ("127.0.0.1:7451"; port 0 picks a free one, logged as event=http_listen) within lim
 *  (copied). Returns 0, or -1 with a reason in err. Loop thread. */
int http_open(http **hp, uv_loop_t *loop, const char *hostport, const http_limits *lim,
              http_request_cb cb, void *arg, char *err, size_t errlen);

/** http_reply: answers call with status, content type and body (copied); call is the
 *  transport's again afterwards. Loop thread. */
void http_reply(hcall *call, int status, const char *content_type, const char *body, size_t len);

/** http_close: stops listening, closes every connection and frees the rest once the loop runs
 *  the close callbacks. Call when no hcall is held by the loop. Accepts NULL. */
void http_close(http *h);

#endif
