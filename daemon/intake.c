/* intake.c: nng REP contexts, each a small state machine driven by its aio callback. */
#include "intake.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CTX_INITIAL 64
#define CTX_GROW 32
#define CTX_MAX 8192

enum ictx_state { IC_RECV, IC_WORK, IC_SEND };

struct icall {
    intake *in;
    nng_ctx ctx;
    nng_aio *aio;
    enum ictx_state state; /* written by whoever owns the context at the time */
    nng_msg *msg;          /* the request, while IC_WORK */
    icall *next_ready;     /* link in in->ready */
    uint64_t queued_ns;    /* when nng handed the request over (for the loop's lag) */
    icall *next_all;       /* link in in->all */
};

struct intake {
    uv_loop_t *loop;
    uv_async_t async;
    uv_mutex_t mtx;
    icall *ready; /* received requests for the loop, LIFO under mtx (order restored on drain) */
    nng_socket sock;
    bool stopped;
    icall *all;
    size_t nctx;
    size_t nworking; /* loop-owned: calls handed to the callback and not replied */
    intake_request_cb cb;
    void *arg;
    atomic_int clients; /* connected pipes, bumped by nng's pipe callbacks */
    hist *lag;          /* where the loop's lag is observed; may be NULL */
};

static void aio_cb(void *arg);

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    intake *in = arg;
    (void)p;
    atomic_fetch_add(&in->clients, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

static int
add_ctx(intake *in)
{
    icall *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NNG_ENOMEM;
    }
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
    icall *c = arg;
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

/* async_cb: the loop. Takes every received request, oldest first. */
static void
async_cb(uv_async_t *h)
{
    intake *in = h->data;
    uv_mutex_lock(&in->mtx);
    icall *list = in->ready;
    in->ready = NULL;
    uv_mutex_unlock(&in->mtx);
    icall *rev = NULL;
    while (list != NULL) {
        icall *next = list->next_ready;
        list->next_ready = rev;
        rev = list;
        list = next;
    }
    uint64_t now = uv_hrtime();
    for (icall *c = rev; c != NULL;) {
        icall *next = c->next_ready;
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
            in->cb(in->arg, c, nng_msg_body(m), nng_msg_len(m));
            nng_msg_free(m);
        }
        c = next;
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

/* read_text: the whole file as a NUL-terminated string (malloc'ed), or NULL. */
static char *
read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* listen_tls: a tls+tcp:// listener with the server's certificate (and, with a CA, required
 * client certificates). */
static int
listen_tls(nng_socket sock, const char *url, const intake_tls *tls, char *err, size_t errlen)
{
    nng_listener l;
    nng_tls_config *cfg = NULL;
    char *cert = read_text(tls->cert);
    char *key = read_text(tls->key);
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
        snprintf(err, errlen, "cannot set up TLS on %s: %s (are tls_cert and tls_key a PEM "
                 "certificate and its key?)", url, nng_strerror(rv));
        goto out;
    }
    if (tls->ca != NULL && ((rv = nng_tls_config_ca_file(cfg, tls->ca)) != 0 ||
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

int
intake_open(intake **inp, uv_loop_t *loop, char *const *urls, size_t nurls, size_t max_message,
            const intake_tls *tls, intake_request_cb cb, void *arg, char *err, size_t errlen)
{
    intake *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    in->loop = loop;
    in->cb = cb;
    in->arg = arg;
    uv_mutex_init(&in->mtx);
    int rv = nng_rep0_open(&in->sock);
    if (rv != 0) {
        snprintf(err, errlen, "cannot open the nng socket: %s", nng_strerror(rv));
        uv_mutex_destroy(&in->mtx);
        free(in);
        return -1;
    }
    nng_socket_set_size(in->sock, NNG_OPT_RECVMAXSZ, max_message * 4);
    nng_pipe_notify(in->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, in);
    nng_pipe_notify(in->sock, NNG_PIPE_EV_REM_POST, pipe_cb, in);
    uv_async_init(loop, &in->async, async_cb);
    in->async.data = in;
    for (size_t i = 0; i < nurls; i++) {
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
        /* An ipc:// socket of an instance that was just killed can still be held for a moment
         * by a handler it was forking (the descriptor closes at exec): retry for up to 1 s. */
        bool ipc = strncmp(urls[i], "ipc://", 6) == 0;
        for (int retry = 0; rv == NNG_EADDRINUSE && ipc && retry < 20; retry++) {
            nng_msleep(50);
            rv = nng_listen(in->sock, urls[i], NULL, 0);
        }
        if (rv != 0) {
            const char *hint = rv == NNG_EADDRINUSE ? ": another process listens there (is jobqd "
                                                      "already running?)"
                               : rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP
                                   ? ": not a valid nng URL (tcp://HOST:PORT, ipc:///PATH)"
                                   : "";
            snprintf(err, errlen, "cannot listen on %s: %s%s", urls[i], nng_strerror(rv), hint);
            intake_close(in);
            return -1;
        }
        log_info("listen", "url=%s", urls[i]);
    }
    for (int i = 0; i < CTX_INITIAL; i++) {
        if ((rv = add_ctx(in)) != 0) {
            snprintf(err, errlen, "cannot open an nng context: %s", nng_strerror(rv));
            intake_close(in);
            return -1;
        }
    }
    *inp = in;
    return 0;
}

void
intake_reply(icall *c, const char *body, size_t len)
{
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

int
intake_clients(intake *in)
{
    return atomic_load(&in->clients);
}

void
intake_set_lag(intake *in, hist *lag)
{
    in->lag = lag;
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
    nng_close(in->sock);
}

static void
close_cb(uv_handle_t *h)
{
    intake *in = h->data;
    uv_mutex_destroy(&in->mtx);
    free(in);
}

void
intake_close(intake *in)
{
    if (in == NULL) {
        return;
    }
    intake_stop(in);
    while (in->all != NULL) {
        icall *c = in->all;
        in->all = c->next_all;
        nng_aio_stop(c->aio); /* waits for a running callback; it frees a failed send */
        nng_msg_free(c->msg);
        nng_aio_free(c->aio);
        nng_ctx_close(c->ctx);
        free(c);
    }
    /* Requests queued for the loop but never taken: their contexts were freed above. */
    in->ready = NULL;
    uv_close((uv_handle_t *)&in->async, close_cb);
}
