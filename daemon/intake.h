/* intake.h: the REP side. tcp:// and ipc:// requests are read and handed over on the loop by
 * the native SP endpoint (sp.h); those of other schemes (tls+tcp://, ws://, ...) arrive on nng's
 * threads and reach the loop through a locked queue and one uv_async. Replies are sent from the
 * loop without blocking. */
#ifndef JOBQD_INTAKE_H
#define JOBQD_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

typedef struct intake intake;
typedef struct icall icall; /* one request being served: reply to it exactly once */

/* ---- the endpoint interface ----
 * Every endpoint that hands requests to the dispatcher (the native SP endpoint, nng's REP
 * contexts, the HTTP API of httpapi.c) gives each request an icall: the struct below, first
 * member of its own call type, with a table of its operations. dispatch.c, call.c and hold.c
 * only use the intake_* functions below, whatever endpoint a request came from. */

/** What an endpoint established about a request's credentials before handing it over. */
typedef enum intake_auth {
    INTAKE_AUTH_BODY,  /* nothing: the request's "token" field decides (jobq__request_decode) */
    INTAKE_AUTH_ADMIN, /* the endpoint verified auth_token (an HTTP Authorization header) */
    INTAKE_AUTH_READ,  /* the endpoint verified read_token: only ops flagged OPF_READ */
} intake_auth;

/** One endpoint's operations on its calls (loop thread). */
typedef struct icall_ops {
    /** reply: sends body (copied) as the reply; the call is done (freed by the endpoint). */
    void (*reply)(icall *call, const char *body, size_t len);
    /** drop: the call is done without a reply. */
    void (*drop)(icall *call);
    /** request_id: the SP request id a REQ socket keeps when it resends; 0 when unknown. */
    uint32_t (*request_id)(const icall *call);
    /** conn_open: whether a reply can still be written. */
    bool (*conn_open)(const icall *call);
    /** conn_alive: conn_open, and the peer has not closed even if its end is unread yet. */
    bool (*conn_alive)(icall *call);
    /** authenticated: the request carried a valid token (may be NULL: nothing to do). */
    void (*authenticated)(icall *call);
} icall_ops;

/** The part of every call the consumers see; each endpoint embeds it first in its own. */
struct icall {
    const icall_ops *ops;
    uint64_t conn;    /* the connection: unique among open ones, never reused (see below) */
    intake_auth auth; /* INTAKE_AUTH_BODY unless the endpoint checked credentials itself */
};

/* Connection numbers by endpoint: native ones count from 1, nng's carry their pipe id with
 * INTAKE_CONN_NNG set, the HTTP API's count from 1 with INTAKE_CONN_HTTP set. */
#define INTAKE_CONN_NNG ((uint64_t)1 << 63)
#define INTAKE_CONN_HTTP ((uint64_t)1 << 62)

/** intake_request_cb: a request arrived (loop thread). body is valid only during the call. */
typedef void (*intake_request_cb)(void *arg, icall *call, const char *body, size_t len);

/** TLS files of tls+tcp:// listeners (PEM paths; ca NULL: no client certificate asked). */
typedef struct intake_tls {
    const char *cert;
    const char *key;
    const char *ca;
} intake_tls;

/** What a connection may cost ([server] keys of the same names). */
typedef struct intake_limits {
    size_t max_message;                 /* bytes of a request's body */
    size_t max_unauthenticated_message; /* the same until a request carried the token */
    bool need_auth;                     /* auth_token is set */
    size_t max_connections;             /* served at once */
    size_t max_buffered;                /* bytes of unfinished messages over all connections */
    uint64_t read_timeout_ms;           /* silent this long mid-message: closed */
    uint64_t idle_timeout_ms;           /* silent this long, nothing owed: closed; 0: never */
} intake_limits;

/** intake_open: listens on every URL: tcp:// and ipc:// natively (a form of them the native
 *  endpoint does not handle, and every other scheme, on one nng REP socket, opened only when
 *  needed). On the native endpoint a message over max_message (over
 *  max_unauthenticated_message before intake_authenticated, when need_auth) is refused from
 *  its length prefix: its body is discarded unstored, then it is answered too_large
 *  (unauthorized); on nng's,
 *  messages up to 4 * max_message are read whole (and larger than max_message answered
 *  too_large by the caller), bigger ones drop the connection. A connection beyond
 *  max_connections open at once has its requests answered too_many_connections and is closed
 *  a second later. Returns 0, or -1 with a reason in err. Loop thread, before the loop runs
 *  (host names are resolved synchronously). */
int intake_open(intake **inp, uv_loop_t *loop, char *const *urls, size_t nurls,
                const intake_limits *lim, const intake_tls *tls, intake_request_cb cb, void *arg,
                char *err, size_t errlen);

/** intake_authenticated: the request call carried a valid token: its connection may send
 *  messages up to max_message from now on (native endpoint; nng's reads every message whole
 *  anyway). Call before replying to call. Loop thread. */
void intake_authenticated(icall *call);

/** intake_reply: sends body as the reply of call, without blocking; the call is then done.
 *  After intake_stop the reply is dropped. Loop thread. */
void intake_reply(icall *call, const char *body, size_t len);

/** intake_hold: the hook of writer.h's hold_cb: with seq > 0, every reply intake_reply is
 *  given from now on, whatever its endpoint, is kept under seq instead of being sent; seq 0
 *  ends that. The kept replies are the process's (one loop; arg is unused). Loop thread. */
void intake_hold(void *arg, uint64_t seq);

/** intake_release: the hook of writer.h's release_cb: sends the replies kept under a seq up to
 *  upto, in the order they were given; with body not NULL, sends body instead of each. Loop
 *  thread. */
void intake_release(void *arg, uint64_t upto, const char *body, size_t len);

/** intake_drop: the call is done without a reply (its client is gone, or sent it again).
 *  Loop thread. */
void intake_drop(icall *call);

/** intake_conn: the connection call came on: a number unique among open connections and
 *  never reused while jobqd runs (native ones count from 1; nng's carry their pipe id; the
 *  HTTP API's have INTAKE_CONN_HTTP set). Loop thread. */
uint64_t intake_conn(const icall *call);

/** intake_call_auth: what call's endpoint verified of its credentials (INTAKE_AUTH_BODY: the
 *  request's "token" field decides). Loop thread. */
intake_auth intake_call_auth(const icall *call);

/** intake_request_id: call's SP request id, which a REQ socket keeps when it sends the
 *  request again; 0 when unknown (requests that came through nng, or over HTTP). */
uint32_t intake_request_id(const icall *call);

/** intake_conn_open: whether a reply to call can still be written: false once its native or
 *  HTTP connection began to close (nng's: always true; the close is reported by the
 *  callback). */
bool intake_conn_open(const icall *call);

/** intake_conn_alive: intake_conn_open, and (tcp://, ipc://, HTTP) the peer has not closed
 *  the connection even if the loop has not read its end yet (one syscall: for held
 *  replies). */
bool intake_conn_alive(icall *call);

/** intake_on_conn_closed: cb(arg, conn) is called on the loop when a connection closed
 *  (after every request it sent was handed over); replies to its calls are dropped. */
void intake_on_conn_closed(intake *in, void (*cb)(void *arg, uint64_t conn), void *arg);

/** intake_pending: requests received and not yet replied to. */
size_t intake_pending(const intake *in);

/** intake_clients: connections served now, not counting refused ones (any thread). */
int intake_clients(intake *in);

/** intake_refused: connections refused since the start because max_connections were open:
 *  each had its requests answered too_many_connections and was closed a second after it
 *  connected (any thread). */
uint64_t intake_refused(intake *in);

/** intake_set_lag: the loop observes into *lag how long each request waited for it: between
 *  nng's thread and the loop, or for a native request between reading it and handing it over.
 *  Loop thread. */
void intake_set_lag(intake *in, hist *lag);

/** intake_stop: closes the listeners and connections: no more requests; replies still owed
 *  are dropped (intake_reply may still be called on them). */
void intake_stop(intake *in);

/** intake_close: stops (if needed) and frees everything once the loop runs the close
 *  callbacks. Loop thread; call when no reply is owed any more. Accepts NULL. */
void intake_close(intake *in);

#endif
