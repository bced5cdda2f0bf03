/* http.h: the monitor endpoint's transport: nng's HTTP server, whose handlers run on nng's
 * threads and hand each request to the loop (one uv_async); the loop answers without
 * blocking. It is never on the job path. */
#ifndef JOBQD_HTTP_H
#define JOBQD_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct http http;
typedef struct hcall hcall; /* one request: answer it exactly once with http_reply */

enum http_route { ROUTE_INDEX, ROUTE_METRICS, ROUTE_STATS, ROUTE_HEALTHZ, ROUTE_COUNT };

/** http_request_cb: a request for route arrived (loop thread). */
typedef void (*http_request_cb)(void *arg, hcall *call, enum http_route route);

/** http_open: serves GET /, /metrics, /stats and /healthz on hostport ("127.0.0.1:7451"; port
 *  0 picks a free one, logged as event=http_listen). Returns 0, or -1 with a reason in err.
 *  Loop thread. */
int http_open(http **hp, uv_loop_t *loop, const char *hostport, http_request_cb cb, void *arg,
              char *err, size_t errlen);

/** http_reply: answers call with status, content type and body (copied). Loop thread. */
void http_reply(hcall *call, int status, const char *content_type, const char *body, size_t len);

/** http_close: answers what is queued with 503, stops the server, frees the rest once the
 *  loop runs the close callback. Call when no hcall is held by the loop. Accepts NULL. */
void http_close(http *h);

#endif
