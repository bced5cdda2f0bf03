/* sp.h: the REP side of the SP (scalability protocols) wire format on tcp:// and ipc://,
 * served on the libuv loop: every request is read, decoded, handed over and answered on the
 * loop thread. nng REQ clients (libjobq, nngcat) talk to it as to an nng REP socket. */
#ifndef JOBQD_SP_H
#define JOBQD_SP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

typedef struct sp_server sp_server;
typedef struct sp_req sp_req; /* one request owed a reply: answer it exactly once */

/** sp_request_cb: a request arrived (loop thread). body is valid only during the call. */
typedef void (*sp_request_cb)(void *arg, sp_req *req, const char *body, size_t len);

/** What sp_event_cb reports. */
typedef enum sp_event {
    SP_EV_PAUSED,  /* a connection stopped reading: too many of its reply bytes are unwritten */
    SP_EV_RESUMED, /* it reads again */
    SP_EV_CLOSED,  /* a connection (served, refused or still in its handshake) closed */
} sp_event;

/** sp_event_cb: optional observer of connections (loop thread). */
typedef void (*sp_event_cb)(void *arg, sp_event ev);

/** sp_closed_cb: optional; the connection numbered conn (sp_req_conn) closed: replies to its
 *  requests are dropped from now on (loop thread, with event_arg; not after sp_stop). */
typedef void (*sp_closed_cb)(void *arg, uint64_t conn);

typedef struct sp_config {
    size_t max_recv;           /* largest message read (bytes, backtrace included) once the
                                * connection is authenticated */
    size_t max_recv_unauth;    /* the same before sp_authenticated (need_auth only) */
    bool need_auth;            /* false: every connection is authenticated from the start */
    const char *too_large;     /* the reply to a message over max_recv (copied) */
    const char *unauth_large;  /* the reply to one over max_recv_unauth before authentication
                                * (copied). Either message is refused from its length prefix:
                                * only its backtrace is kept, the rest is discarded unstored,
                                * and the reply is sent once the whole message arrived */
    size_t max_unsent;         /* reply bytes of one connection that may wait unwritten before the
                                * connection stops reading (it resumes below half of it) */
    size_t max_buffered;       /* bytes of messages longer than a connection's 16 KiB read
                                * buffer held at once over all connections: a connection whose
                                * message does not fit stops reading until it does */
    uint64_t handshake_ms;     /* a connection that has not sent its SP header by then is closed */
    uint64_t read_ms;          /* one that sends no byte for this long in the middle of a message
                                * (or waiting for max_buffered) is closed */
    uint64_t idle_ms;          /* one that sends nothing for this long while it is owed no reply
                                * and has none unwritten is closed; 0: never */
    atomic_int *clients;       /* connections served now, shared with other endpoints */
    int max_clients;           /* a connection that finds clients at this count is refused */
    const char *refusal;       /* the reply to every request of a refused connection (copied) */
    uint64_t refuse_linger_ms; /* a refused connection is closed this long after its handshake */
    sp_request_cb cb;
    void *arg;
    sp_event_cb event_cb; /* may be NULL */
    void *event_arg;
    sp_closed_cb closed_cb; /* may be NULL; called with event_arg */
} sp_config;

/** SP_BACKTRACE_MAX: bytes of the longest backtrace served (8 hops); a limit on a message's
 *  body plus this is a limit on the whole message. */
#define SP_BACKTRACE_MAX 32

/** sp_open: an endpoint without listeners. Returns 0, or -1 on out of memory. Loop thread. */
int sp_open(sp_server **spp, uv_loop_t *loop, const sp_config *cfg);

/** SP_NOT_NATIVE: sp_listen's answer for a URL it does not serve (another scheme, or a form
 *  of tcp:// or ipc:// it leaves to nng). */
#define SP_NOT_NATIVE 1

/** sp_listen: listens on url (tcp://HOST:PORT with an IPv4 or [IPv6] literal, a host name or
 *  * or nothing for every address; ipc://PATH). A stale ipc:// socket file that nobody answers
 *  on is replaced, as nng does; the file is removed at close. Returns 0, SP_NOT_NATIVE, or a
 *  negative libuv error (UV_EADDRINUSE: someone listens there). Loop thread, before or while
 *  the loop runs (names are resolved synchronously). */
int sp_listen(sp_server *sp, const char *url);

/** sp_reply: sends body as the reply of req, without blocking, and frees req. On a
 *  connection closed since, or after sp_stop, the reply is dropped. Loop thread. */
void sp_reply(sp_req *req, const char *body, size_t len);

/** sp_drop: frees req without replying (the client is not waiting for it any more). Loop
 *  thread. */
void sp_drop(sp_req *req);

/** sp_req_conn: the number of the connection req came on (unique while sp lives, from 1). */
uint64_t sp_req_conn(const sp_req *req);

/** sp_req_id: req's SP request id (the last word of its backtrace; a REQ socket that sends a
 *  request again keeps it). */
uint32_t sp_req_id(const sp_req *req);

/** sp_req_open: whether a reply to req can still be written (its connection is served). */
bool sp_req_open(const sp_req *req);

/** sp_req_alive: sp_req_open, and its peer has not closed the connection: one recv with
 *  MSG_PEEK looks for an end the loop has not read yet (found, the connection is closed
 *  now). For a reply that hands out jobs. Loop thread. */
bool sp_req_alive(sp_req *req);

/** sp_authenticated: the connection of req presented a valid token: its messages may now be
 *  up to max_recv bytes. Call before answering req. Loop thread. */
void sp_authenticated(sp_req *req);

/** sp_buffered: bytes of unfinished messages held beyond the connections' read buffers (what
 *  max_buffered caps). Loop thread. */
size_t sp_buffered(const sp_server *sp);

/** sp_set_lag: observes into lag, per request, the time between reading it and handing it to
 *  the callback (time spent on requests read before it). NULL stops. Loop thread. */
void sp_set_lag(sp_server *sp, hist *lag);

/** sp_refused: connections refused since sp_open (max_clients). Any thread. */
uint64_t sp_refused(const sp_server *sp);

/** sp_unsent: reply bytes accepted by sp_reply and not yet written, over all connections.
 *  Loop thread. */
size_t sp_unsent(const sp_server *sp);

/** sp__accept_failed: a test seam: every listener sees status (a negative libuv error) as if
 *  accepting had failed, as libuv reports EMFILE when it cannot free a descriptor. Loop
 *  thread. */
void sp__accept_failed(sp_server *sp, int status);

/** sp_stop: closes every listener and connection; replies still owed are dropped. */
void sp_stop(sp_server *sp);

/** sp_close: stops, and frees everything once the handles closed and every sp_req was
 *  answered (sp_reply). Accepts NULL. Loop thread. */
void sp_close(sp_server *sp);

#endif
