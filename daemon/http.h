/* http.h: the HTTP side's transport (monitor and HTTP API): libmicrohttpd driven from the loop
 * (no thread of its own), behind a listener jobqd accepts itself so that the connection cap,
 * the accept backoff and the deadlines are its own. Handlers run on the loop thread and may
 * answer at once or later; a connection whose answer is owed is suspended and watched for its
 * peer's close. */
#ifndef JOBQD_HTTP_H
#define JOBQD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http http;
typedef struct hcall hcall; /* one request: answer it exactly once with http_reply */

enum http_route {
    ROUTE_INDEX,   /* GET / */
    ROUTE_METRICS, /* GET /metrics */
    ROUTE_STATS,   /* GET /stats */
    ROUTE_HEALTHZ, /* GET /healthz */
    ROUTE_OPS,     /* POST /v1/ops: takes a body */
    ROUTE_OPENAPI, /* GET /v1/openapi.yaml */
    ROUTE_COUNT
};

/** The limits of the HTTP side (the [server] http_* keys). */
typedef struct http_limits {
    int64_t timeout_ms;     /* a whole request (headers and body), and idleness, at most */
    size_t max_connections; /* connections at once; at the cap, the one waiting longest for its
                               request is closed, or the newcomer gets 503 if none waits */
    size_t max_per_ip;      /* connections from one address at once; 0: no cap */
    size_t max_request;     /* bytes of one request's line and headers (per-connection memory) */
    const char *tls_cert;   /* PEM text of the certificate: HTTPS only; NULL: plain HTTP */
    const char *tls_key;    /* PEM text of its key */
} http_limits;

/** http_request_cb: a request for route arrived whole (loop thread). The callback answers with
 *  http_reply, at once or later (the connection waits, without its timeout, meanwhile), or
 *  drops it with http_drop. */
typedef void (*http_request_cb)(void *arg, hcall *call, enum http_route route);

/** http_headers_cb: the line and headers of a request for a route that takes a body arrived,
 *  its body unread (loop thread). Returns the most body bytes to take (a longer body is read
 *  and discarded up to four times that, then the connection is closed; http_body_over says
 *  so), or -1 after answering with http_reply: then the body is never read and the
 *  connection closes after the answer. */
typedef long long (*http_headers_cb)(void *arg, hcall *call, enum http_route route);

/** http_closed_cb: connection conn (http_conn) closed, or its peer did while a request of
 *  it was owed an answer; called once per connection (loop thread, not after http_close). */
typedef void (*http_closed_cb)(void *arg, uint64_t conn);

/** http_open: serves GET (and HEAD) /, /metrics, /stats, /healthz, /v1/openapi.yaml and POST
 *  /v1/ops on hostport ("127.0.0.1:7451"; port 0 picks a free one, logged as
 *  event=http_listen) within lim (copied; with lim->tls_cert, HTTPS). headers may be NULL (no
 *  body is taken). Returns 0, or -1 with a reason in err. Loop thread. */
int http_open(http **hp, uv_loop_t *loop, const char *hostport, const http_limits *lim,
              http_request_cb cb, http_headers_cb headers, void *arg, char *err, size_t errlen);

/** http_on_conn_closed: cb(arg, conn) runs when a connection closes (see http_closed_cb). */
void http_on_conn_closed(http *h, http_closed_cb cb, void *arg);

/** http_reply: answers call with status, content type and body (copied); call is the
 *  transport's again afterwards. Loop thread. */
void http_reply(hcall *call, int status, const char *content_type, const char *body, size_t len);

/** http_reply_headers: http_reply with more response headers: headers holds name, value,
 *  name, value, ..., NULL (copied). */
void http_reply_headers(hcall *call, int status, const char *content_type, const char *body,
                        size_t len, const char *const *headers);

/** http_drop: closes call's connection without an answer (nobody waits for it any more). */
void http_drop(hcall *call);

/** http_header: the value of request header name (case-insensitive), or NULL. Borrowed, valid
 *  until the call is answered. */
const char *http_header(hcall *call, const char *name);

/** http_body: the request's body as read (len: its bytes; at most the headers callback's
 *  limit). Borrowed, valid until the call is answered. */
const char *http_body(hcall *call, size_t *len);

/** http_body_over: whether the body was longer than the headers callback's limit (the rest
 *  was discarded unread). */
bool http_body_over(const hcall *call);

/** http_conn: call's connection: a number from 1, unique while h lives. */
uint64_t http_conn(const hcall *call);

/** http_conn_open: whether an answer to call can still be written (its peer was not seen
 *  leaving). */
bool http_conn_open(const hcall *call);

/** http_conn_alive: http_conn_open, and one recv with MSG_PEEK finds no end of stream from the
 *  peer (for an answer that hands out jobs). */
bool http_conn_alive(hcall *call);

/** http_close: stops listening, closes every connection and frees the rest once the loop runs
 *  the close callbacks. Call when no hcall is held by the loop. Accepts NULL. */
void http_close(http *h);

#endif
