/* http.c: the HTTP server of the monitor and the HTTP API: libmicrohttpd run from the loop,
 * fed by a listener this file accepts on (cap, per-address cap, accept backoff, request
 * deadline), with request bodies within a limit, and suspended connections watched for their
 * peer's close. */
#define _GNU_SOURCE 1 /* accept4 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define ACCEPT_BATCH 64          /* accepts per readable event, so the loop moves on */
#define BACKOFF_MIN_MS 50        /* first pause of the listener after a failed accept */
#define BACKOFF_MAX_MS 2000      /* longest pause */
#define REPORT_INTERVAL_MS 10000 /* one log line per kind of trouble per interval, with a count */
#define SWEEP_MS 250             /* how often request deadlines are checked */

static const char busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Cache-Control: no-store\r\n"
                                 "Retry-After: 1\r\n"
                                 "Connection: close\r\n"
                                 "Content-Length: 29\r\n\r\n"
                                 "too many monitor connections\n";

/* Bytes a body route may send beyond its limit, read and discarded, before its connection is
 * closed (a bit more than nng's four times, so a 413 reaches the usual oversized body). */
#define BODY_DISCARD_FACTOR 4
#define BODY_DISCARD_SLACK (64 * 1024)

/* One connection MHD serves: on the list of connections whose request deadline is watched. */
typedef struct hconn {
    struct hconn *prev, *next;
    int fd;
    int64_t deadline_ms; /* when a request still incomplete by then is cut off; 0: none */
    uint64_t id;         /* http_conn: from 1 */
    bool peer_gone;      /* its peer closed (seen while an answer was owed) */
    bool closed_reported; /* the closed callback ran for it */
    struct hcall *cur;   /* the request being served, or NULL */
} hconn;

/* A suspended connection's watch for its peer's close (MHD does not poll it meanwhile). */
typedef struct watch {
    uv_poll_t poll; /* first: freed in its close callback */
    struct hcall *c;
} watch;

struct hcall {
    http *h;
    struct MHD_Connection *conn;
    hconn *hc; /* its connection's record (NULL once orphaned) */
    int route; /* enum http_route, or -1: no such path */
    bool in_handler;              /* the request callback is running: reply queues at once */
    bool dispatched;              /* handed to the request callback (or answered 404/405) */
    bool replied;                 /* http_reply was called */
    bool dropped;                 /* http_drop was called: MHD closes the connection */
    bool owed;                    /* handed to the callback, neither answered nor dropped */
    bool orphan;                  /* its connection went while owed: the answer frees it */
    bool suspended;               /* waits for http_reply; MHD does not read it meanwhile */
    struct MHD_Response *pending; /* reply made while suspended, queued when resumed */
    unsigned pending_status;
    bool takes_body;   /* its route takes a body, kept up to max_body bytes */
    size_t max_body;
    char *body;        /* what was kept of it */
    size_t len, cap;
    uint64_t seen;     /* body bytes read, kept or not */
    bool over;         /* the body was longer than max_body */
    watch *w;          /* while suspended */
};

/* A kind of trouble logged at most once per REPORT_INTERVAL_MS, with how often it happened. */
typedef struct report {
    const char *event;
    enum log_level level;
    int64_t logged_at_ms; /* last line; 0: never */
    uint64_t count;       /* since that line */
    char detail[160];
} report;

enum { REP_REFUSED, REP_EVICTED, REP_ACCEPT_FAILED, REP_TIMED_OUT, REP_MHD, REP_COUNT };

struct http {
    uv_loop_t *loop;
    http_limits lim;
    struct MHD_Daemon *d;
    int listen_fd;
    uv_poll_t listen_poll;
    uv_poll_t mhd_poll; /* MHD's epoll descriptor */
    uv_timer_t mhd_timer;
    uv_timer_t sweep_timer;
    uv_timer_t backoff_timer;
    int64_t backoff_ms; /* current pause after a failed accept; 0: accepting */
    bool in_run;        /* inside MHD_run (a handler answering): no nested run */
    hconn *conns;       /* every connection MHD serves */
    size_t nconns;
    report reports[REP_COUNT];
    int open_handles; /* freed when the last close callback ran */
    http_request_cb cb;
    http_headers_cb headers;
    void *arg;
    http_closed_cb closed_cb;
    void *closed_arg;
    uint64_t next_conn; /* the id of the last connection taken on */
    char *tls_cert, *tls_key; /* copies of the PEM texts MHD was started with; NULL: none */
};

static const struct {
    const char *path;
    bool post; /* POST with a body; else GET and HEAD */
} routes[ROUTE_COUNT] = {
    [ROUTE_INDEX] = {"/", false},
    [ROUTE_METRICS] = {"/metrics", false},
    [ROUTE_STATS] = {"/stats", false},
    [ROUTE_HEALTHZ] = {"/healthz", false},
    [ROUTE_OPS] = {"/v1/ops", true},
    [ROUTE_OPENAPI] = {"/v1/openapi.yaml", false},
};

/* ---- logging, rate-limited ---- */

/* report_flush: logs what r counted if its interval is over. */
static void
report_flush(report *r, int64_t now, bool force)
{
    if (r->count == 0 ||
        (!force && r->logged_at_ms != 0 && now - r->logged_at_ms < REPORT_INTERVAL_MS)) {
        return;
    }
    LOG_AT(r->level, r->event, "count=%llu interval_ms=%d %s", (unsigned long long)r->count,
           REPORT_INTERVAL_MS, r->detail);
    r->logged_at_ms = now;
    r->count = 0;
}

/* report_note: counts one occurrence (detail is the latest one's) and logs if due. */
static void
report_note(http *h, int kind, const char *fmt, ...)
{
    report *r = &h->reports[kind];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    r->count++;
    report_flush(r, (int64_t)uv_now(h->loop), false);
}

/* mhd_log_cb: MHD's own messages (loop thread), counted and logged once per interval. */
static void
mhd_log_cb(void *cls, const char *fm, va_list ap)
{
    http *h = cls;
    char msg[140];
    vsnprintf(msg, sizeof(msg), fm, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    char q[160];
    report_note(h, REP_MHD, "last=%s", log_quote(q, sizeof(q), msg));
}

/* ---- driving MHD from the loop ---- */

static void mhd_timer_cb(uv_timer_t *t);
static void sweep_cb(uv_timer_t *t);

/* mhd_run: lets MHD do its work, then arms the timer at MHD's next deadline. */
static void
mhd_run(http *h)
{
    if (h->in_run) {
        return; /* the outer run re-arms; a resumed connection wakes MHD's epoll set */
    }
    h->in_run = true;
    MHD_run(h->d);
    h->in_run = false;
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
        uv_timer_start(&h->mhd_timer, mhd_timer_cb, ms > 3600000 ? 3600000 : (uint64_t)ms, 0);
    } else {
        uv_timer_stop(&h->mhd_timer);
    }
}

static void
mhd_timer_cb(uv_timer_t *t)
{
    mhd_run(t->data);
}

static void
mhd_poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    mhd_run(p->data);
}

/* ---- connections and their request deadline ---- */

/* report_closed: tells the closed callback, once, that c's connection (or its peer) is gone. */
static void
report_closed(http *h, hconn *c)
{
    if (c->closed_reported) {
        return;
    }
    c->closed_reported = true;
    if (h->closed_cb != NULL) {
        h->closed_cb(h->closed_arg, c->id);
    }
}

static void
watch_closed_cb(uv_handle_t *p)
{
    free(p); /* the watch: its poll handle is its first member */
}

/* watch_stop: c's connection is no longer watched for its peer's close. */
static void
watch_stop(hcall *c)
{
    if (c->w != NULL) {
        c->w->c = NULL;
        uv_close((uv_handle_t *)&c->w->poll, watch_closed_cb);
        c->w = NULL;
    }
}

/* watch_cb: the peer of a suspended connection hung up (or its socket failed): whoever owes
 * it an answer hears that the connection is gone (held requests are dropped). */
static void
watch_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    watch *w = p->data;
    hcall *c = w->c;
    if (c == NULL) {
        return;
    }
    http *h = c->h;
    hconn *hc = c->hc;
    watch_stop(c);
    if (hc != NULL) {
        hc->peer_gone = true;
        report_closed(h, hc);
    }
}

/* watch_start: while c's connection is suspended, its peer's close is watched for (MHD only
 * sees it once resumed). Without memory it is not: the close is then seen at the answer. */
static void
watch_start(hcall *c)
{
    if (c->hc == NULL || c->hc->fd < 0 || c->w != NULL) {
        return;
    }
    watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return;
    }
    if (uv_poll_init(c->h->loop, &w->poll, c->hc->fd) != 0) {
        free(w);
        return;
    }
    w->c = c;
    w->poll.data = w;
    uv_poll_start(&w->poll, UV_DISCONNECT, watch_cb);
    c->w = w;
}

/* conn_of: the hconn of an MHD connection, or NULL. */
static hconn *
conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? *(hconn *const *)ci : NULL;
}

/* notify_cb: MHD took on or let go of a connection (loop thread). A new connection has
 * timeout_ms to deliver a complete request. */
static void
notify_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
          enum MHD_ConnectionNotificationCode toe)
{
    http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        hconn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            return; /* served without a deadline of its own; MHD's idle timeout still applies */
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci != NULL ? ci->connect_fd : -1;
        c->deadline_ms = (int64_t)uv_now(h->loop) + h->lim.timeout_ms;
        c->id = ++h->next_conn;
        c->next = h->conns;
        if (h->conns != NULL) {
            h->conns->prev = c;
        }
        h->conns = c;
        h->nconns++;
        *socket_context = c;
        if (!uv_is_active((uv_handle_t *)&h->sweep_timer)) {
            uv_timer_start(&h->sweep_timer, sweep_cb, SWEEP_MS, SWEEP_MS);
        }
        return;
    }
    hconn *c = *socket_context;
    if (c == NULL) {
        return;
    }
    report_closed(h, c);
    if (c->cur != NULL) { /* not expected: MHD ends the request first */
        c->cur->hc = NULL;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    h->nconns--;
    free(c);
    *socket_context = NULL;
}

/* sweep_cb: cuts off connections past their request deadline (MHD's own timeout only
 * measures idleness: a client dribbling a byte a second would never meet it), and flushes
 * the reports. Shutting the socket down makes MHD see the end of the stream and close it. */
static void
sweep_cb(uv_timer_t *t)
{
    http *h = t->data;
    int64_t now = (int64_t)uv_now(h->loop);
    bool cut = false;
    for (hconn *c = h->conns; c != NULL; c = c->next) {
        if (c->deadline_ms != 0 && now >= c->deadline_ms && c->fd >= 0) {
            c->deadline_ms = 0;
            shutdown(c->fd, SHUT_RDWR);
            report_note(h, REP_TIMED_OUT, "timeout_ms=%lld", (long long)h->lim.timeout_ms);
            cut = true;
        }
    }
    bool pending = false;
    for (int i = 0; i < REP_COUNT; i++) {
        report_flush(&h->reports[i], now, false);
        pending = pending || h->reports[i].count > 0;
    }
    if (h->nconns == 0 && !pending) {
        uv_timer_stop(t);
    }
    if (cut) {
        mhd_run(h);
    }
}

/* completed_cb: a request is over (answered, or its connection closed). The connection's
 * next request, if any, has timeout_ms from now. */
static void
completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    http *h = cls;
    (void)toe;
    hcall *c = *req_cls;
    hconn *hc = conn_of(conn);
    if (c != NULL) {
        if (c->pending != NULL) {
            MHD_destroy_response(c->pending);
            c->pending = NULL;
        }
        free(c->body);
        c->body = NULL;
        watch_stop(c);
        if (hc != NULL && hc->cur == c) {
            hc->cur = NULL;
        }
        if (c->owed) { /* its answer will come: it frees the call then */
            c->orphan = true;
            c->hc = NULL;
            c->conn = NULL;
        } else {
            free(c);
        }
        *req_cls = NULL;
    }
    if (hc != NULL) {
        hc->deadline_ms = (int64_t)uv_now(h->loop) + h->lim.timeout_ms;
    }
}

/* ---- requests ---- */

/* make_response: a response with jobqd's headers, body copied; NULL on out of memory. */
static struct MHD_Response *
make_response(const char *content_type, const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return r;
}

/* answer_now: queues a plain-text reply from inside the access handler. */
static enum MHD_Result
answer_now(struct MHD_Connection *conn, unsigned status, const char *text, const char *allow)
{
    struct MHD_Response *r = make_response("text/plain; charset=utf-8", text, strlen(text));
    if (r == NULL) {
        return MHD_NO;
    }
    if (allow != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    enum MHD_Result rv = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rv;
}

/* queue_pending: queues the reply http_reply left in c. */
static enum MHD_Result
queue_pending(struct MHD_Connection *conn, hcall *c)
{
    struct MHD_Response *r = c->pending;
    c->pending = NULL;
    if (r == NULL) {
        return MHD_NO; /* no memory for a reply: MHD closes the connection */
    }
    enum MHD_Result rv = MHD_queue_response(conn, c->pending_status, r);
    MHD_destroy_response(r);
    return rv;
}

/* find_route: the route of path, or -1. */
static int
find_route(const char *path)
{
    for (int i = 0; i < ROUTE_COUNT; i++) {
        if (strcmp(path, routes[i].path) == 0) {
            return i;
        }
    }
    return -1;
}

/* take_body: keeps n more bytes of c's body within its limit; beyond it they are discarded
 * and, past BODY_DISCARD_FACTOR times the limit, the connection is closed (false). */
static bool
take_body(hcall *c, const char *data, size_t n)
{
    c->seen += n;
    if (!c->over && c->len + n <= c->max_body) {
        if (c->len + n > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n) {
                cap *= 2;
            }
            cap = cap > c->max_body ? c->max_body : cap;
            char *grown = realloc(c->body, cap);
            if (grown == NULL) {
                return false;
            }
            c->body = grown;
            c->cap = cap;
        }
        memcpy(c->body + c->len, data, n);
        c->len += n;
        return true;
    }
    if (!c->over) {
        c->over = true;
        free(c->body); /* only the fact that it was too long matters now */
        c->body = NULL;
        c->len = c->cap = 0;
    }
    return c->seen <= (uint64_t)c->max_body * BODY_DISCARD_FACTOR + BODY_DISCARD_SLACK;
}

/* access_cb: MHD's request callback (loop thread). The first call brings the line and
 * headers: a route that takes a body asks the headers callback how much of it to keep (or
 * is answered at once, its body never read). Later calls bring the body (kept within that
 * limit; other routes' is discarded) and then its end, when the request goes to the request
 * callback (a reply queued before the request is read whole would make MHD close the
 * connection). A reply not given at once suspends the connection, watched for its peer's
 * close, until http_reply (or http_drop), which resumes it; MHD then calls again and the
 * reply is queued (or the connection closed). */
static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    http *h = cls;
    (void)version;
    hcall *c = *req_cls;
    if (c == NULL) {
        hconn *hc = conn_of(conn);
        if (hc == NULL || (c = calloc(1, sizeof(*c))) == NULL) {
            return MHD_NO;
        }
        c->h = h;
        c->conn = conn;
        c->hc = hc;
        hc->cur = c;
        c->route = find_route(url);
        *req_cls = c;
        if (c->route >= 0 && routes[c->route].post && h->headers != NULL &&
            strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
            c->takes_body = true;
            c->in_handler = true;
            long long max = h->headers(h->arg, c, (enum http_route)c->route);
            c->in_handler = false;
            if (c->replied) {
                c->dispatched = true;
                return queue_pending(conn, c);
            }
            c->max_body = max > 0 ? (size_t)max : 0;
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->takes_body && !take_body(c, upload_data, n)) {
            report_note(h, REP_REFUSED, "reason=body_over_limit max_body=%zu", c->max_body);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (c->dispatched) { /* resumed */
        if (c->dropped) {
            return MHD_NO;
        }
        return c->pending != NULL ? queue_pending(conn, c) : MHD_YES;
    }
    c->dispatched = true;
    hconn *hc = conn_of(conn);
    if (hc != NULL) {
        hc->deadline_ms = 0; /* the request is in: answering may take its time */
    }
    if (c->route < 0) {
        return answer_now(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (routes[c->route].post ? !post : !get) {
        return answer_now(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
                          routes[c->route].post ? "POST" : "GET, HEAD");
    }
    c->in_handler = true;
    c->owed = true;
    h->cb(h->arg, c, (enum http_route)c->route);
    c->in_handler = false;
    if (c->dropped) {
        return MHD_NO;
    }
    if (c->replied) {
        return queue_pending(conn, c);
    }
    c->suspended = true;
    MHD_suspend_connection(conn);
    watch_start(c);
    return MHD_YES;
}

/* resume: a suspended call was answered or dropped: MHD serves its connection again. */
static void
resume(hcall *c)
{
    if (!c->suspended) {
        return;
    }
    c->suspended = false;
    watch_stop(c);
    MHD_resume_connection(c->conn);
    mhd_run(c->h);
}

void
http_reply_headers(hcall *c, int status, const char *content_type, const char *body, size_t len,
                   const char *const *headers)
{
    if (c->orphan) {
        free(c);
        return;
    }
    struct MHD_Response *r = make_response(content_type, body, len);
    if (r == NULL) {
        static const char oom[] = "out of memory\n";
        status = 500;
        r = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else {
        for (size_t i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL;
             i += 2) {
            MHD_add_response_header(r, headers[i], headers[i + 1]);
        }
    }
    c->pending = r; /* NULL still resumes: MHD then closes the connection */
    c->pending_status = (unsigned)status;
    c->replied = true;
    c->owed = false;
    if (c->in_handler) {
        return; /* access_cb queues it on return */
    }
    resume(c);
}

void
http_reply(hcall *c, int status, const char *content_type, const char *body, size_t len)
{
    http_reply_headers(c, status, content_type, body, len, NULL);
}

void
http_drop(hcall *c)
{
    if (c->orphan) {
        free(c);
        return;
    }
    c->dropped = true;
    c->owed = false;
    if (c->in_handler) {
        return; /* access_cb closes it on return */
    }
    resume(c);
}

const char *
http_header(hcall *c, const char *name)
{
    return c->conn != NULL ? MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *
http_body(hcall *c, size_t *len)
{
    *len = c->len;
    return c->body != NULL ? c->body : "";
}

bool
http_body_over(const hcall *c)
{
    return c->over;
}

uint64_t
http_conn(const hcall *c)
{
    return c->hc != NULL ? c->hc->id : 0;
}

bool
http_conn_open(const hcall *c)
{
    return !c->orphan && c->hc != NULL && !c->hc->peer_gone;
}

bool
http_conn_alive(hcall *c)
{
    if (!http_conn_open(c)) {
        return false;
    }
    /* The watch reports a hang-up on the loop's next turn; an answer that hands out jobs
     * looks now. Found, the watch (still on: the connection is suspended) reports it. */
    char b;
    if (c->hc->fd >= 0 && recv(c->hc->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        c->hc->peer_gone = true;
        return false;
    }
    return true;
}

void
http_on_conn_closed(http *h, http_closed_cb cb, void *arg)
{
    h->closed_cb = cb;
    h->closed_arg = arg;
}

/* ---- the listener ---- */

static void listen_cb(uv_poll_t *p, int status, int events);

static void
backoff_cb(uv_timer_t *t)
{
    http *h = t->data;
    uv_poll_start(&h->listen_poll, UV_READABLE, listen_cb);
}

/* refuse: tells a connection over the cap to come back later, and closes it. */
static void
refuse(int fd)
{
    (void)send(fd, busy_reply, sizeof(busy_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

/* evict_one: at the cap, closes the connection that has waited longest for a request that
 * has not come (idle, or dribbling its headers), so that a client that sends its request at
 * once is served even while slow clients fill every slot. Returns whether one went (MHD has
 * then closed it and nconns is one less). */
static bool
evict_one(http *h)
{
    hconn *victim = NULL;
    for (hconn *c = h->conns; c != NULL; c = c->next) {
        if (c->deadline_ms != 0 && c->fd >= 0 &&
            (victim == NULL || c->deadline_ms < victim->deadline_ms)) {
            victim = c;
        }
    }
    if (victim == NULL) {
        return false; /* every connection is being answered: the newcomer is refused */
    }
    size_t before = h->nconns;
    victim->deadline_ms = 0;
    shutdown(victim->fd, SHUT_RDWR);
    mhd_run(h); /* MHD reads the end of the stream and closes it */
    return h->nconns < before;
}

/* listen_cb: accepts what is waiting. At the cap, the connection waiting longest for its
 * request makes room; when none waits, the newcomer is answered 503 and closed;
 * when accept fails for want of descriptors or memory, the listener pauses (doubling up to
 * BACKOFF_MAX_MS) instead of spinning, and the failure is counted, not logged each time. */
static void
listen_cb(uv_poll_t *p, int status, int events)
{
    http *h = p->data;
    (void)status;
    (void)events;
    bool added = false;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            h->backoff_ms = h->backoff_ms == 0 ? BACKOFF_MIN_MS : h->backoff_ms * 2;
            if (h->backoff_ms > BACKOFF_MAX_MS) {
                h->backoff_ms = BACKOFF_MAX_MS;
            }
            report_note(h, REP_ACCEPT_FAILED, "err=%s backoff_ms=%lld", strerror(errno),
                        (long long)h->backoff_ms);
            uv_poll_stop(&h->listen_poll);
            uv_timer_start(&h->backoff_timer, backoff_cb, (uint64_t)h->backoff_ms, 0);
            if (!uv_is_active((uv_handle_t *)&h->sweep_timer)) {
                uv_timer_start(&h->sweep_timer, sweep_cb, SWEEP_MS, SWEEP_MS);
            }
            break;
        }
        h->backoff_ms = 0;
        if (h->nconns >= h->lim.max_connections && evict_one(h)) {
            report_note(h, REP_EVICTED, "max_connections=%zu", h->lim.max_connections);
        }
        if (h->nconns >= h->lim.max_connections) {
            refuse(fd);
            report_note(h, REP_REFUSED, "max_connections=%zu", h->lim.max_connections);
            if (!uv_is_active((uv_handle_t *)&h->sweep_timer)) {
                uv_timer_start(&h->sweep_timer, sweep_cb, SWEEP_MS, SWEEP_MS);
            }
            continue;
        }
        /* MHD closes fd itself when it cannot take it (per-address cap, memory). */
        if (MHD_add_connection(h->d, fd, (struct sockaddr *)&ss, sl) != MHD_YES) {
            report_note(h, REP_REFUSED, "max_per_ip=%zu err=%s", h->lim.max_per_ip,
                        strerror(errno));
        }
        added = true;
    }
    if (added) {
        mhd_run(h);
    }
}

/* open_listener: a non-blocking listening socket on hostport. Returns it, or -1 with err. */
static int
open_listener(const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon[1] == '\0' || (size_t)(colon - hostport) >= sizeof(host)) {
        snprintf(err, errlen, "http = %s: not a HOST:PORT", hostport);
        return -1;
    }
    const char *hs = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (hl >= 2 && hs[0] == '[' && hs[hl - 1] == ']') {
        hs++;
        hl -= 2;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(hl > 0 ? host : NULL, colon + 1, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "http = %s: not a HOST:PORT (%s)", hostport, gai_strerror(rv));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot serve http on %s: %s%s", hostport, strerror(saved),
                 saved == EADDRINUSE ? " (another process listens there; change [server] http)"
                                     : "");
    }
    return fd;
}

/* log_listen: event=http_listen with the address actually bound. */
static void
log_listen(int fd, const char *hostport)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];
    snprintf(addr, sizeof(addr), "%s", hostport);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            if (inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)) != NULL) {
                snprintf(addr, sizeof(addr), "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
            }
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            if (inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)) != NULL) {
                snprintf(addr, sizeof(addr), "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
            }
        }
    }
    log_info("http_listen", "addr=%s", addr);
}

int
http_open(http **hp, uv_loop_t *loop, const char *hostport, const http_limits *lim,
          http_request_cb cb, http_headers_cb headers, void *arg, char *err, size_t errlen)
{
    http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->loop = loop;
    h->lim = *lim;
    h->cb = cb;
    h->headers = headers;
    h->arg = arg;
    static const struct {
        const char *event;
        enum log_level level;
    } kinds[REP_COUNT] = {[REP_REFUSED] = {"http_refused", LOG_WARN},
                          [REP_EVICTED] = {"http_evicted", LOG_WARN},
                          [REP_ACCEPT_FAILED] = {"http_accept_failed", LOG_ERROR},
                          [REP_TIMED_OUT] = {"http_timed_out", LOG_INFO},
                          [REP_MHD] = {"http_error", LOG_INFO}}; /* mostly clients leaving */
    for (int i = 0; i < REP_COUNT; i++) {
        h->reports[i].event = kinds[i].event;
        h->reports[i].level = kinds[i].level;
    }
    if ((h->listen_fd = open_listener(hostport, err, errlen)) < 0) {
        free(h);
        return -1;
    }
    /* MHD's idle timeout in whole seconds, rounded up; the request deadline is sweep_cb's. */
    unsigned idle_s = (unsigned)((h->lim.timeout_ms + 999) / 1000);
    /* With a certificate, MHD speaks TLS on every connection handed to it (GnuTLS). */
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)lim->tls_key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)lim->tls_cert},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_USE_ERROR_LOG;
    if (lim->tls_cert != NULL) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen,
                     "http_tls_cert is set but this libmicrohttpd was built without TLS");
            close(h->listen_fd);
            free(h);
            return -1;
        }
        h->tls_cert = strdup(lim->tls_cert);
        h->tls_key = strdup(lim->tls_key);
        tls[0].ptr_value = h->tls_key;
        tls[1].ptr_value = h->tls_cert;
        h->lim.tls_cert = h->lim.tls_key = NULL; /* the caller's; the copies are h's */
        flags |= MHD_USE_TLS;
    } else {
        tls[0].option = MHD_OPTION_END;
    }
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, h, MHD_OPTION_ARRAY, tls,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)h->lim.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)h->lim.max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            h->lim.max_request, MHD_OPTION_NOTIFY_CONNECTION, notify_cb, h,
                            MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        h->d != NULL ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (di == NULL) {
        snprintf(err, errlen, "cannot serve http on %s: libmicrohttpd did not start", hostport);
        if (h->d != NULL) {
            MHD_stop_daemon(h->d);
        }
        close(h->listen_fd);
        free(h->tls_cert);
        free(h->tls_key);
        free(h);
        return -1;
    }
    uv_poll_init(loop, &h->mhd_poll, di->epoll_fd);
    uv_poll_init(loop, &h->listen_poll, h->listen_fd);
    uv_timer_init(loop, &h->mhd_timer);
    uv_timer_init(loop, &h->sweep_timer);
    uv_timer_init(loop, &h->backoff_timer);
    h->mhd_poll.data = h->listen_poll.data = h;
    h->mhd_timer.data = h->sweep_timer.data = h->backoff_timer.data = h;
    h->open_handles = 5;
    uv_poll_start(&h->mhd_poll, UV_READABLE, mhd_poll_cb);
    uv_poll_start(&h->listen_poll, UV_READABLE, listen_cb);
    log_listen(h->listen_fd, hostport);
    *hp = h;
    return 0;
}

static void
close_cb(uv_handle_t *hd)
{
    http *h = hd->data;
    if (--h->open_handles == 0) {
        free(h->tls_cert);
        free(h->tls_key);
        free(h);
    }
}

void
http_close(http *h)
{
    if (h == NULL) {
        return;
    }
    uv_poll_stop(&h->listen_poll);
    uv_poll_stop(&h->mhd_poll);
    h->closed_cb = NULL;
    /* MHD may not stop with connections suspended: resume them; an answer still owed finds
     * its call orphaned (completed_cb) and frees it. */
    for (hconn *c = h->conns; c != NULL; c = c->next) {
        if (c->cur != NULL && c->cur->suspended) {
            c->cur->suspended = false;
            c->cur->dropped = true;
            watch_stop(c->cur);
            MHD_resume_connection(c->cur->conn);
        }
    }
    int64_t now = (int64_t)uv_now(h->loop);
    for (int i = 0; i < REP_COUNT; i++) {
        report_flush(&h->reports[i], now, true);
    }
    close(h->listen_fd);
    MHD_stop_daemon(h->d); /* closes every connection and the epoll descriptor */
    h->d = NULL;
    uv_close((uv_handle_t *)&h->listen_poll, close_cb);
    uv_close((uv_handle_t *)&h->mhd_poll, close_cb);
    uv_close((uv_handle_t *)&h->mhd_timer, close_cb);
    uv_close((uv_handle_t *)&h->sweep_timer, close_cb);
    uv_close((uv_handle_t *)&h->backoff_timer, close_cb);
}
