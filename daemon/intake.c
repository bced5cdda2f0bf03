/* intake.c: where requests come in, and the endpoint interface (icall). tcp:// and ipc:// URLs
 * are served on the loop by the native SP endpoint (sp.c); every other scheme by nng REP
 * contexts, each a small state machine driven by its aio callback on nng's threads, handing
 * requests to the loop through one uv_async. Both are endpoints of icall; so is the HTTP API
 * (httpapi.c). */
#include "intake.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "textfile.h"
#include "sp.h"

#define CTX_INITIAL 64
#define CTX_GROW 32
#define CTX_MAX 8192
/* A connection over max_connections is answered too_many_connections for this long, then
 * closed (the delay lets the answer reach it before the close). */
#define REFUSE_LINGER_MS 1000
/* A native connection stops reading while this many bytes of its replies are unwritten. */
#define SP_MAX_UNSENT (1024 * 1024)
/* A native connection that has not sent its SP header by then is closed (nng's own limit). */
#define SP_HANDSHAKE_MS 10000

enum ictx_state { IC_RECV, IC_WORK, IC_SEND };

/* A request of one of nng's REP contexts: one per context, reused for its next request. */
typedef struct ncall {
    icall base; /* first: the endpoint interface */
    intake *in;
    nng_ctx ctx;
    nng_aio *aio;
    enum ictx_state state;    /* written by whoever owns the context at the time */
    nng_msg *msg;             /* the request, while IC_WORK */
    struct ncall *next_ready; /* link in in->ready */
    uint64_t queued_ns;       /* when nng handed the request over (for the loop's lag) */
    struct ncall *next_all;   /* link in in->all */
} ncall;

/* A request of the native endpoint (tcp://, ipc://). */
typedef struct spcall {
    icall base; /* first: the endpoint interface */
    intake *in;
    sp_req *req;
} spcall;

/* A closed nng pipe, on its way to the loop. */
typedef struct closed_pipe {
    uint64_t conn;
    struct closed_pipe *next;
} closed_pipe;

/* A connection over max_connections: its requests are refused until its timer closes it. */
typedef struct refusal {
    intake *in;
    nng_pipe pipe;
    nng_aio *aio; /* sleeps REFUSE_LINGER_MS, then closes the pipe */
    struct refusal *next;
} refusal;

struct intake {
    uv_loop_t *loop;
    uv_async_t async;
    uv_mutex_t mtx;
    ncall *ready; /* received requests for the loop, LIFO under mtx (order restored on drain) */
    nng_socket sock;
    bool nng_open; /* sock, async and the contexts exist: some URL is served by nng */
    sp_server *sp; /* the native endpoint (tcp://, ipc://), or NULL */
    bool stopped;
    ncall *all;
    size_t nctx;
    size_t nworking; /* loop-owned: calls handed to the callback and not replied */
    intake_request_cb cb;
    void *arg;
    atomic_int clients; /* connected pipes, bumped by nng's pipe callbacks */
    hist *lag;          /* where the loop's lag is observed; may be NULL */
    int max_clients;    /* connections served at once (max_connections) */
    uv_mutex_t refuse_mtx;
    refusal *refusing;     /* connections over the limit, still open; under refuse_mtx */
    refusal *refused;      /* closed ones whose timer is to be freed; under refuse_mtx */
    atomic_int nrefusing;  /* entries of refusing: 0 keeps the request path lock-free */
    atomic_ulong nrefused; /* connections refused since the start */
    closed_pipe *closed;   /* nng pipes gone, for the loop, LIFO under mtx */
    void (*closed_cb)(void *arg, uint64_t conn);
    void *closed_arg;
};

static void aio_cb(void *arg);
static const icall_ops nng_call_ops, sp_call_ops;

/* refusal_cb: nng's thread. The connection had its time to read the refusal: close it. */
static void
refusal_cb(void *arg)
{
    refusal *r = arg;
    if (nng_aio_result(r->aio) == 0) {
        nng_pipe_close(r->pipe);
    }
}

/* refusals_free: frees a list of refusals (their timers are stopped first). Not on a timer's
 * own callback. */
static void
refusals_free(refusal *list)
{
    while (list != NULL) {
        refusal *next = list->next;
        nng_aio_free(list->aio);
        free(list);
        list = next;
    }
}

/* refuse_pipe: nng's thread. A connection beyond max_connections: remembered (its requests
 * are answered too_many_connections) and closed after REFUSE_LINGER_MS. Returns false when
 * it cannot be remembered; the caller then closes it at once. */
static bool
refuse_pipe(intake *in, nng_pipe p)
{
    uv_mutex_lock(&in->refuse_mtx);
    refusal *done = in->refused;
    in->refused = NULL;
    uv_mutex_unlock(&in->refuse_mtx);
    refusals_free(done);
    refusal *r = calloc(1, sizeof(*r));
    if (r == NULL || nng_aio_alloc(&r->aio, refusal_cb, r) != 0) {
        free(r);
        return false;
    }
    r->in = in;
    r->pipe = p;
    uv_mutex_lock(&in->refuse_mtx);
    r->next = in->refusing;
    in->refusing = r;
    atomic_fetch_add(&in->nrefusing, 1);
    uv_mutex_unlock(&in->refuse_mtx);
    atomic_fetch_add(&in->nrefused, 1);
    nng_sleep_aio(REFUSE_LINGER_MS, r->aio);
    return true;
}

/* unrefuse_pipe: nng's thread. Whether p was a refused connection (then forgotten). */
static bool
unrefuse_pipe(intake *in, nng_pipe p)
{
    if (atomic_load(&in->nrefusing) == 0) {
        return false;
    }
    bool found = false;
    uv_mutex_lock(&in->refuse_mtx);
    for (refusal **pp = &in->refusing; *pp != NULL; pp = &(*pp)->next) {
        if (nng_pipe_id((*pp)->pipe) == nng_pipe_id(p)) {
            refusal *r = *pp;
            *pp = r->next;
            r->next = in->refused;
            in->refused = r;
            atomic_fetch_sub(&in->nrefusing, 1);
            found = true;
            break;
        }
    }
    uv_mutex_unlock(&in->refuse_mtx);
    return found;
}

/* pipe_cb: nng's thread. Counts connections; one beyond max_connections is refused. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    intake *in = arg;
    if (ev == NNG_PIPE_EV_REM_POST) {
        if (!unrefuse_pipe(in, p)) {
            atomic_fetch_sub(&in->clients, 1);
            closed_pipe *cp = malloc(sizeof(*cp));
            if (cp != NULL) { /* out of memory: its held requests end at their timeout */
                cp->conn = INTAKE_CONN_NNG | (uint64_t)nng_pipe_id(p);
                uv_mutex_lock(&in->mtx);
                cp->next = in->closed;
                in->closed = cp;
                uv_mutex_unlock(&in->mtx);
                uv_async_send(&in->async);
            }
        }
        return;
    }
    if (atomic_fetch_add(&in->clients, 1) < in->max_clients) {
        return;
    }
    atomic_fetch_sub(&in->clients, 1);
    if (!refuse_pipe(in, p)) {
        nng_pipe_close(p); /* out of memory: cannot even say why; no REM_POST follows */
        return;
    }
    if (atomic_load(&in->nrefusing) == 1) { /* once per burst, not per connection */
        log_warn("connection_refused", "reason=max_connections max=%d", in->max_clients);
    }
}

/* refusal_body: the reply to the requests of a connection over max_connections. */
static int
refusal_body(char *buf, size_t size, int max_clients)
{
    return snprintf(buf, size,
                    "{\"ok\":false,\"error\":{\"code\":\"too_many_connections\",\"message\":"
                    "\"jobqd serves at most %d connections (max_connections) and closes this "
                    "one; retry later or raise max_connections\"}}",
                    max_clients);
}

/* refused_request: the loop. When the request came on a refused connection, answers it
 * too_many_connections and returns true. */
static bool
refused_request(intake *in, ncall *c, nng_msg *m)
{
    if (atomic_load(&in->nrefusing) == 0) {
        return false;
    }
    nng_pipe p = nng_msg_get_pipe(m);
    bool refused = false;
    uv_mutex_lock(&in->refuse_mtx);
    for (refusal *r = in->refusing; r != NULL && !refused; r = r->next) {
        refused = nng_pipe_id(r->pipe) == nng_pipe_id(p);
    }
    uv_mutex_unlock(&in->refuse_mtx);
    if (!refused) {
        return false;
    }
    char body[300];
    int n = refusal_body(body, sizeof(body), in->max_clients);
    nng_msg_free(m);
    intake_reply(&c->base, body, (size_t)n);
    return true;
}

static int
add_ctx(intake *in)
{
    ncall *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NNG_ENOMEM;
    }
    c->base.ops = &nng_call_ops;
    c->in = in;
    int rv = nng_ctx_open(&c->ctx, in->sock);
    if (rv == 0 && (rv = nng_aio_alloc(&c->aio, aio_cb, c)) != 0) {
        nng_ctx_close(c->ctx);
    }
    if (rv != 0) {
        free(c);
        return rv;
    }
    c->next_all = in->all;
    in->all = c;
    in->nctx++;
    c->state = IC_RECV;
    nng_ctx_recv(c->ctx, c->aio);
    return 0;
}

/* aio_cb: nng's thread. Receive done -> hand to the loop; send done -> receive again. */
static void
aio_cb(void *arg)
{
    ncall *c = arg;
    intake *in = c->in;
    int rv = nng_aio_result(c->aio);
    switch (c->state) {
    case IC_RECV:
        if (rv != 0) {
            if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
                nng_ctx_recv(c->ctx, c->aio);
            }
            return;
        }
        c->msg = nng_aio_get_msg(c->aio);
        c->state = IC_WORK;
        c->queued_ns = uv_hrtime();
        uv_mutex_lock(&in->mtx);
        c->next_ready = in->ready;
        in->ready = c;
        uv_mutex_unlock(&in->mtx);
        uv_async_send(&in->async);
        return;
    case IC_SEND:
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(c->aio));
            nng_aio_set_msg(c->aio, NULL);
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
                return;
            }
        }
        c->state = IC_RECV;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    case IC_WORK:
        return;
    }
}

/* async_cb: the loop. Takes every received request, oldest first, then the connections that
 * closed (after their requests, so that what they left held is dropped). */
static void
async_cb(uv_async_t *h)
{
    intake *in = h->data;
    uv_mutex_lock(&in->mtx);
    ncall *list = in->ready;
    in->ready = NULL;
    closed_pipe *closed = in->closed;
    in->closed = NULL;
    uv_mutex_unlock(&in->mtx);
    ncall *rev = NULL;
    while (list != NULL) {
        ncall *next = list->next_ready;
        list->next_ready = rev;
        rev = list;
        list = next;
    }
    uint64_t now = uv_hrtime();
    for (ncall *c = rev; c != NULL;) {
        ncall *next = c->next_ready;
        if (in->lag != NULL) {
            hist_observe(in->lag, HIST_SECONDS, (double)(now - c->queued_ns) / 1e9);
        }
        in->nworking++;
        if (in->stopped) {
            nng_msg_free(c->msg);
            c->msg = NULL;
            in->nworking--;
        } else {
            nng_msg *m = c->msg;
            c->msg = NULL;
            c->base.conn = INTAKE_CONN_NNG | (uint64_t)nng_pipe_id(nng_msg_get_pipe(m));
            c->base.auth = INTAKE_AUTH_BODY;
            if (!refused_request(in, c, m)) {
                in->cb(in->arg, &c->base, nng_msg_body(m), nng_msg_len(m));
                nng_msg_free(m);
            }
        }
        c = next;
    }
    while (closed != NULL) {
        closed_pipe *next = closed->next;
        if (!in->stopped && in->closed_cb != NULL) {
            in->closed_cb(in->closed_arg, closed->conn);
        }
        free(closed);
        closed = next;
    }
    /* Keep contexts free for new requests while others are held (e.g. long waits). */
    while (!in->stopped && in->nworking + CTX_GROW / 2 > in->nctx && in->nctx < CTX_MAX) {
        for (int i = 0; i < CTX_GROW; i++) {
            if (add_ctx(in) != 0) {
                return;
            }
        }
        log_debug("intake_grow", "contexts=%zu", in->nctx);
    }
}

/* listen_tls: a tls+tcp:// listener with the server's certificate (and, with a CA, required
 * client certificates). */
static int
listen_tls(nng_socket sock, const char *url, const intake_tls *tls, char *err, size_t errlen)
{
    nng_listener l;
    nng_tls_config *cfg = NULL;
    char *cert = text_file_read(tls->cert);
    char *key = text_file_read(tls->key);
    int rv;
    if (cert == NULL || key == NULL) {
        snprintf(err, errlen, "cannot read tls_%s %s", cert == NULL ? "cert" : "key",
                 cert == NULL ? tls->cert : tls->key);
        rv = NNG_ENOENT;
        goto out;
    }
    if ((rv = nng_listener_create(&l, sock, url)) != 0 ||
        (rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0 ||
        (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        snprintf(err, errlen,
                 "cannot set up TLS on %s: %s (are tls_cert and tls_key a PEM "
                 "certificate and its key?)",
                 url, nng_strerror(rv));
        goto out;
    }
    if (tls->ca != NULL &&
        ((rv = nng_tls_config_ca_file(cfg, tls->ca)) != 0 ||
         (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0)) {
        snprintf(err, errlen, "cannot use tls_ca %s: %s", tls->ca, nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
        (rv = nng_listener_start(l, 0)) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(rv));
    }
out:
    if (cfg != NULL) {
        nng_tls_config_free(cfg); /* the listener keeps its own reference */
    }
    free(cert);
    free(key);
    return rv;
}

/* native_request_cb: the loop. A request of the native endpoint, handed straight over. */
static void
native_request_cb(void *arg, sp_req *req, const char *body, size_t len)
{
    intake *in = arg;
    spcall *c = malloc(sizeof(*c));
    if (c == NULL) {
        static const char oom[] =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        sp_reply(req, oom, sizeof(oom) - 1);
        return;
    }
    c->base.ops = &sp_call_ops;
    c->base.conn = sp_req_conn(req);
    c->base.auth = INTAKE_AUTH_BODY;
    c->in = in;
    c->req = req;
    in->nworking++;
    in->cb(in->arg, &c->base, body, len);
}

/* native_closed_cb: the loop. A native connection closed. */
static void
native_closed_cb(void *arg, uint64_t conn)
{
    intake *in = arg;
    if (in->closed_cb != NULL) {
        in->closed_cb(in->closed_arg, conn);
    }
}

/* open_native: the native endpoint, for the tcp:// and ipc:// URLs. */
static int
open_native(intake *in, const intake_limits *lim)
{
    char body[300], too_large[300], unauth[400];
    refusal_body(body, sizeof(body), in->max_clients);
    snprintf(too_large, sizeof(too_large),
             "{\"ok\":false,\"error\":{\"code\":\"too_large\",\"message\":\"request over the "
             "limit of %zu bytes (max_message), refused unread; split it, e.g. into smaller "
             "batches\"}}",
             lim->max_message);
    snprintf(unauth, sizeof(unauth),
             "{\"ok\":false,\"error\":{\"code\":\"unauthorized\",\"message\":\"this connection "
             "has not presented a valid token yet: until one of its requests carries it, each "
             "may hold at most %zu bytes (max_unauthenticated_message); refused unread\"}}",
             lim->max_unauthenticated_message);
    sp_config cfg = {.max_recv = lim->max_message + SP_BACKTRACE_MAX,
                     .max_recv_unauth = lim->max_unauthenticated_message + SP_BACKTRACE_MAX,
                     .need_auth = lim->need_auth,
                     .too_large = too_large,
                     .unauth_large = unauth,
                     .max_unsent = SP_MAX_UNSENT,
                     .max_buffered = lim->max_buffered,
                     .handshake_ms = SP_HANDSHAKE_MS,
                     .read_ms = lim->read_timeout_ms,
                     .idle_ms = lim->idle_timeout_ms,
                     .clients = &in->clients,
                     .max_clients = in->max_clients,
                     .refusal = body,
                     .refuse_linger_ms = REFUSE_LINGER_MS,
                     .cb = native_request_cb,
                     .arg = in,
                     .event_arg = in,
                     .closed_cb = native_closed_cb};
    return sp_open(&in->sp, in->loop, &cfg);
}

/* open_nng: the nng REP socket, for the URLs the native endpoint leaves to nng. Returns 0, or
 * an nng error with the reason in err. */
static int
open_nng(intake *in, size_t max_message, char *err, size_t errlen)
{
    int rv = nng_rep0_open(&in->sock);
    if (rv != 0) {
        snprintf(err, errlen, "cannot open the nng socket: %s", nng_strerror(rv));
        return rv;
    }
    in->nng_open = true;
    nng_socket_set_size(in->sock, NNG_OPT_RECVMAXSZ, max_message * 4);
    /* ADD_PRE: before the protocol starts receiving on the pipe, so a connection over the
     * limit is marked before its first request can be read (at ADD_POST it may be served). */
    nng_pipe_notify(in->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, in);
    nng_pipe_notify(in->sock, NNG_PIPE_EV_REM_POST, pipe_cb, in);
    uv_async_init(in->loop, &in->async, async_cb);
    in->async.data = in;
    for (int i = 0; i < CTX_INITIAL; i++) {
        if ((rv = add_ctx(in)) != 0) {
            snprintf(err, errlen, "cannot open an nng context: %s", nng_strerror(rv));
            return rv;
        }
    }
    return 0;
}

/* listen_hint: what to tell the operator after an nng error of a listener. */
static const char *
listen_hint(int nng_err)
{
    if (nng_err == NNG_EADDRINUSE) {
        return ": another process listens there (is jobqd already running?)";
    }
    if (nng_err == NNG_EADDRINVAL || nng_err == NNG_ENOTSUP) {
        return ": not a valid nng URL (tcp://HOST:PORT, ipc:///PATH)";
    }
    return "";
}

/* listen_native: url on the native endpoint. Returns 0, SP_NOT_NATIVE, or -1 with the reason in
 * err. Right after a crash, a job's process that jobqd forked may not have reached exec yet and
 * still holds the old ipc:// socket open: it gets two seconds to let go. */
static int
listen_native(intake *in, const char *url, char *err, size_t errlen)
{
    int rv = sp_listen(in->sp, url);
    for (int tries = 0; rv == UV_EADDRINUSE && strncmp(url, "ipc://", 6) == 0 && tries < 20;
         tries++) {
        nng_msleep(100);
        rv = sp_listen(in->sp, url);
    }
    if (rv == 0 || rv == SP_NOT_NATIVE) {
        return rv;
    }
    if (rv == UV_EADDRINUSE) {
        snprintf(err, errlen, "cannot listen on %s: Address in use%s", url,
                 listen_hint(NNG_EADDRINUSE));
    } else {
        snprintf(err, errlen, "cannot listen on %s: %s", url, uv_strerror(rv));
    }
    return -1;
}

int
intake_open(intake **inp, uv_loop_t *loop, char *const *urls, size_t nurls,
            const intake_limits *lim, const intake_tls *tls, intake_request_cb cb, void *arg,
            char *err, size_t errlen)
{
    size_t max_message = lim->max_message;
    size_t max_connections = lim->max_connections;
    intake *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    in->loop = loop;
    in->cb = cb;
    in->arg = arg;
    in->max_clients = max_connections < INT_MAX ? (int)max_connections : INT_MAX;
    uv_mutex_init(&in->mtx);
    uv_mutex_init(&in->refuse_mtx);
    if (open_native(in, lim) != 0) {
        snprintf(err, errlen, "out of memory");
        intake_close(in);
        return -1;
    }
    for (size_t i = 0; i < nurls; i++) {
        int rv = strncmp(urls[i], "tls+tcp://", 10) == 0 ? SP_NOT_NATIVE
                                                         : listen_native(in, urls[i], err, errlen);
        if (rv == 0) {
            log_info("listen", "url=%s", urls[i]);
            continue;
        }
        if (rv < 0 || (!in->nng_open && open_nng(in, max_message, err, errlen) != 0)) {
            intake_close(in);
            return -1;
        }
        if (strncmp(urls[i], "tls+tcp://", 10) == 0) {
            if (listen_tls(in->sock, urls[i], tls, err, errlen) != 0) {
                intake_close(in);
                return -1;
            }
            log_info("listen", "url=%s tls=yes client_certs=%s", urls[i],
                     tls->ca != NULL ? "required" : "no");
            continue;
        }
        rv = nng_listen(in->sock, urls[i], NULL, 0);
        for (int tries = 0;
             rv == NNG_EADDRINUSE && strncmp(urls[i], "ipc://", 6) == 0 && tries < 20; tries++) {
            nng_msleep(100);
            rv = nng_listen(in->sock, urls[i], NULL, 0);
        }
        if (rv != 0) {
            snprintf(err, errlen, "cannot listen on %s: %s%s", urls[i], nng_strerror(rv),
                     listen_hint(rv));
            intake_close(in);
            return -1;
        }
        log_info("listen", "url=%s", urls[i]);
    }
    *inp = in;
    return 0;
}

/* ---- the native endpoint's calls ---- */

static void
sp_call_reply(icall *ic, const char *body, size_t len)
{
    spcall *c = (spcall *)ic;
    c->in->nworking--;
    sp_reply(c->req, body, len); /* dropped after intake_stop or once the peer left */
    free(c);
}

static void
sp_call_drop(icall *ic)
{
    spcall *c = (spcall *)ic;
    c->in->nworking--;
    sp_drop(c->req);
    free(c);
}

static uint32_t
sp_call_request_id(const icall *ic)
{
    return sp_req_id(((const spcall *)ic)->req);
}

static bool
sp_call_conn_open(const icall *ic)
{
    return sp_req_open(((const spcall *)ic)->req);
}

static bool
sp_call_conn_alive(icall *ic)
{
    return sp_req_alive(((spcall *)ic)->req);
}

static void
sp_call_authenticated(icall *ic)
{
    sp_authenticated(((spcall *)ic)->req);
}

static const icall_ops sp_call_ops = {.reply = sp_call_reply,
                                      .drop = sp_call_drop,
                                      .request_id = sp_call_request_id,
                                      .conn_open = sp_call_conn_open,
                                      .conn_alive = sp_call_conn_alive,
                                      .authenticated = sp_call_authenticated};

/* ---- nng's calls: the context goes back to receiving once the call is done ---- */

static void
nng_call_reply(icall *ic, const char *body, size_t len)
{
    ncall *c = (ncall *)ic;
    intake *in = c->in;
    in->nworking--;
    if (in->stopped) {
        return;
    }
    nng_msg *m;
    if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, body, len) != 0) {
        /* Out of memory: the client times out; the context goes back to receiving. */
        log_error("reply_failed", "reason=out_of_memory bytes=%zu", len);
        c->state = IC_RECV;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    c->state = IC_SEND;
    nng_aio_set_msg(c->aio, m);
    nng_ctx_send(c->ctx, c->aio);
}

static void
nng_call_drop(icall *ic)
{
    ncall *c = (ncall *)ic;
    intake *in = c->in;
    in->nworking--;
    if (in->stopped) {
        return;
    }
    c->state = IC_RECV; /* a new receive forgets the request's backtrace */
    nng_ctx_recv(c->ctx, c->aio);
}

static uint32_t
nng_call_request_id(const icall *ic)
{
    (void)ic;
    return 0; /* nng keeps the backtrace to itself */
}

static bool
nng_call_conn_open(const icall *ic)
{
    (void)ic;
    return true; /* a close is reported by the pipe callback */
}

static bool
nng_call_conn_alive(icall *ic)
{
    (void)ic;
    return true;
}

static const icall_ops nng_call_ops = {.reply = nng_call_reply,
                                       .drop = nng_call_drop,
                                       .request_id = nng_call_request_id,
                                       .conn_open = nng_call_conn_open,
                                       .conn_alive = nng_call_conn_alive,
                                       .authenticated = NULL};

/* ---- the endpoint interface: every endpoint's calls ---- */

void
intake_authenticated(icall *c)
{
    if (c->ops->authenticated != NULL) {
        c->ops->authenticated(c);
    }
}

/* A reply kept until the commit it tells of is durable (intake_hold). */
typedef struct held_reply {
    struct held_reply *next;
    icall *call;
    uint64_t seq;
    size_t len;
    char body[];
} held_reply;

/* The kept replies: loop thread only. */
static struct {
    uint64_t seq;     /* replies are kept under this, unless 0 */
    held_reply *head; /* oldest first */
    held_reply **tail;
} holding;

void
intake_reply(icall *c, const char *body, size_t len)
{
    if (holding.seq == 0) {
        c->ops->reply(c, body, len);
        return;
    }
    held_reply *h = malloc(sizeof(*h) + len);
    if (h == NULL) {
        /* Nothing may be said before the commit is durable: an error needs no copy. */
        static const char oom[] = "{\"ok\":false,\"error\":{\"code\":\"internal\","
                                  "\"message\":\"out of memory\"}}";
        log_error("reply_failed", "reason=out_of_memory bytes=%zu", len);
        c->ops->reply(c, oom, sizeof(oom) - 1);
        return;
    }
    h->next = NULL;
    h->call = c;
    h->seq = holding.seq;
    h->len = len;
    memcpy(h->body, body, len);
    if (holding.head == NULL) {
        holding.tail = &holding.head;
    }
    *holding.tail = h;
    holding.tail = &h->next;
}

void
intake_hold(void *arg, uint64_t seq)
{
    (void)arg;
    holding.seq = seq;
}

void
intake_release(void *arg, uint64_t upto, const char *body, size_t len)
{
    (void)arg;
    while (holding.head != NULL && holding.head->seq <= upto) {
        held_reply *h = holding.head;
        holding.head = h->next;
        if (body != NULL) {
            h->call->ops->reply(h->call, body, len);
        } else {
            h->call->ops->reply(h->call, h->body, h->len);
        }
        free(h);
    }
}

void
intake_drop(icall *c)
{
    c->ops->drop(c);
}

uint64_t
intake_conn(const icall *c)
{
    return c->conn;
}

intake_auth
intake_call_auth(const icall *c)
{
    return c->auth;
}

uint32_t
intake_request_id(const icall *c)
{
    return c->ops->request_id(c);
}

bool
intake_conn_open(const icall *c)
{
    return c->ops->conn_open(c);
}

bool
intake_conn_alive(icall *c)
{
    return c->ops->conn_alive(c);
}

void
intake_on_conn_closed(intake *in, void (*cb)(void *arg, uint64_t conn), void *arg)
{
    in->closed_cb = cb;
    in->closed_arg = arg;
}

int
intake_clients(intake *in)
{
    return atomic_load(&in->clients);
}

uint64_t
intake_refused(intake *in)
{
    return atomic_load(&in->nrefused) + (in->sp != NULL ? sp_refused(in->sp) : 0);
}

void
intake_set_lag(intake *in, hist *lag)
{
    in->lag = lag;
    if (in->sp != NULL) {
        sp_set_lag(in->sp, lag);
    }
}

size_t
intake_pending(const intake *in)
{
    return in->nworking;
}

void
intake_stop(intake *in)
{
    if (in == NULL || in->stopped) {
        return;
    }
    in->stopped = true;
    sp_stop(in->sp);
    if (in->nng_open) {
        nng_close(in->sock);
    }
}

static void
free_intake(intake *in)
{
    uv_mutex_destroy(&in->mtx);
    uv_mutex_destroy(&in->refuse_mtx);
    free(in);
}

static void
close_cb(uv_handle_t *h)
{
    free_intake(h->data);
}

void
intake_close(intake *in)
{
    if (in == NULL) {
        return;
    }
    intake_stop(in);
    sp_close(in->sp); /* freed once its handles closed */
    in->sp = NULL;
    while (in->all != NULL) {
        ncall *c = in->all;
        in->all = c->next_all;
        nng_aio_stop(c->aio); /* waits for a running callback; it frees a failed send */
        nng_msg_free(c->msg);
        nng_aio_free(c->aio);
        nng_ctx_close(c->ctx);
        free(c);
    }
    /* Requests queued for the loop but never taken: their contexts were freed above. */
    in->ready = NULL;
    while (in->closed != NULL) {
        closed_pipe *next = in->closed->next;
        free(in->closed);
        in->closed = next;
    }
    /* The socket is closed: no pipe callback runs any more. */
    refusals_free(in->refusing);
    refusals_free(in->refused);
    in->refusing = in->refused = NULL;
    if (in->nng_open) {
        uv_close((uv_handle_t *)&in->async, close_cb);
    } else {
        free_intake(in);
    }
}
