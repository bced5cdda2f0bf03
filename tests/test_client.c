/* test_client.c: libjobq's client against a real nng REP server run by the test (contexts on
 * nng's threads, JSON like jobqd's) over tcp:// and ipc://: concurrent calls, timeouts,
 * lost connections, a restarted server, closing with calls blocked, JOBQ_TRANSPORT=nng, and
 * a raw SP peer that breaks the framing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <jobq.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "spwire.h"

#define NCTX 24
#define EVENT_WAIT_S 20 /* how long an awaited event may take before the test fails */

typedef struct server server;

/* worker: one REP context of the server and its aio, driven by worker_cb. */
typedef struct worker {
    server *s;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
} worker;

/* server: an nng REP socket answering like jobqd: ping, echo (replies {"ok":true,"n":N}),
 * hold (counted, never answered), drop (closes the connection it came on). */
struct server {
    char url[300];
    bool tcp;
    const char *host; /* tcp: the address listened on, as written in a URL */
    nng_socket sock;
    worker w[NCTX];
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int pipes_added;      /* connections accepted, over the server's whole life */
    int pipes_removed;    /* connections closed */
    int held;             /* hold requests received */
    atomic_bool stopping; /* server_stop began: the contexts start no new operation */
};

/* fixture: a server on a fresh address and a client of it. */
typedef struct fixture {
    bool tcp;
    char dir[64];
    server srv;
    jobq_client *client;
} fixture;

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    server *s = arg;
    pthread_mutex_lock(&s->lock);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        s->pipes_added++;
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        s->pipes_removed++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
}

/* answer: the reply text for a request, or NULL for none (hold, drop). */
static char *
answer(server *s, nng_msg *msg)
{
    json_t *req = json_loadb(nng_msg_body(msg), nng_msg_len(msg), 0, NULL);
    const char *op = json_string_value(json_object_get(req, "op"));
    char *text = NULL;
    if (op == NULL) {
        text = strdup("{\"ok\":false,\"error\":{\"code\":\"malformed\",\"message\":\"no op\"}}");
    } else if (strcmp(op, "ping") == 0) {
        text = strdup("{\"ok\":true,\"version\":\"test\",\"time\":1}");
    } else if (strcmp(op, "echo") == 0) {
        char buf[64];
        snprintf(buf, sizeof(buf), "{\"ok\":true,\"n\":%lld}",
                 (long long)json_integer_value(json_object_get(req, "n")));
        text = strdup(buf);
    } else if (strcmp(op, "hold") == 0) {
        pthread_mutex_lock(&s->lock);
        s->held++;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->lock);
    } else if (strcmp(op, "drop") == 0) {
        nng_pipe_close(nng_msg_get_pipe(msg));
    } else {
        text = strdup("{\"ok\":false,\"error\":{\"code\":\"unknown_op\",\"message\":\"?\"}}");
    }
    json_decref(req);
    return text;
}

/* worker_cb: nng's thread. Receive a request, send its answer (if any), receive again. */
static void
worker_cb(void *arg)
{
    worker *w = arg;
    int rv = nng_aio_result(w->aio);
    bool stopping = atomic_load(&w->s->stopping);
    if (w->sending) {
        w->sending = false;
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
        }
        if (rv != NNG_ECLOSED && !stopping) {
            nng_ctx_recv(w->ctx, w->aio);
        }
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED && !stopping) {
            nng_ctx_recv(w->ctx, w->aio);
        }
        return;
    }
    nng_msg *msg = nng_aio_get_msg(w->aio);
    if (stopping) {
        nng_msg_free(msg);
        return;
    }
    char *text = answer(w->s, msg);
    if (text == NULL) {
        nng_msg_free(msg);
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    nng_msg_clear(msg);
    nng_msg_append(msg, text, strlen(text));
    free(text);
    w->sending = true;
    nng_aio_set_msg(w->aio, msg);
    nng_ctx_send(w->ctx, w->aio);
}

/* server_start: listens on s->url (for tcp:// with port 0, s->url then names the bound port). */
static int
server_start(server *s)
{
    atomic_store(&s->stopping, false);
    int rv = nng_rep0_open(&s->sock);
    if (rv != 0) {
        return rv;
    }
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 0);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
    nng_listener l;
    if ((rv = nng_listen(s->sock, s->url, &l, 0)) != 0) {
        nng_close(s->sock);
        return rv;
    }
    if (s->tcp) {
        int port = 0;
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
        snprintf(s->url, sizeof(s->url), "tcp://%s:%d", s->host, port);
    }
    for (int i = 0; i < NCTX; i++) {
        worker *w = &s->w[i];
        w->s = s;
        w->sending = false;
        if ((rv = nng_ctx_open(&w->ctx, s->sock)) != 0 ||
            (rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0) {
            return rv;
        }
        nng_ctx_recv(w->ctx, w->aio);
    }
    return 0;
}

/* server_stop: stops the contexts, then closes the socket (and with it every connection).
 * nng 1.5.2 panics when nng_close overlaps an nng_ctx_* call of a callback, so every
 * callback is over, and starts nothing new, before the socket closes. Safe to call twice. */
static void
server_stop(server *s)
{
    atomic_store(&s->stopping, true);
    for (int i = 0; i < NCTX; i++) {
        if (s->w[i].aio != NULL) {
            nng_aio_stop(s->w[i].aio); /* cancels its operation and waits for its callback */
        }
    }
    for (int i = 0; i < NCTX; i++) {
        if (s->w[i].aio != NULL) {
            nng_ctx_close(s->w[i].ctx);
            nng_aio_free(s->w[i].aio);
            s->w[i].aio = NULL;
        }
    }
    nng_close(s->sock);
}

/* wait_count: waits until *counter >= n (an event of the server), at most EVENT_WAIT_S. */
static bool
wait_count(server *s, const int *counter, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += EVENT_WAIT_S;
    pthread_mutex_lock(&s->lock);
    int rv = 0;
    while (*counter < n && rv == 0) {
        rv = pthread_cond_timedwait(&s->cv, &s->lock, &until);
    }
    bool ok = *counter >= n;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static int
count(server *s, const int *counter)
{
    pthread_mutex_lock(&s->lock);
    int n = *counter;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->tcp = *state != NULL && strcmp(*state, "tcp") == 0;
    strcpy(f->dir, "/tmp/test_client.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    pthread_mutex_init(&f->srv.lock, NULL);
    pthread_cond_init(&f->srv.cv, NULL);
    f->srv.tcp = f->tcp;
    f->srv.host = "127.0.0.1";
    if (f->tcp) {
        snprintf(f->srv.url, sizeof(f->srv.url), "tcp://127.0.0.1:0");
    } else {
        snprintf(f->srv.url, sizeof(f->srv.url), "ipc://%s/jobq.sock", f->dir);
    }
    assert_int_equal(server_start(&f->srv), 0);
    int err = jobq_client_open(&f->client, f->srv.url);
    if (err != JOBQ_OK) {
        fail_msg("open %s: %s", f->srv.url, jobq_errmsg());
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    if (f->client != NULL) {
        /* nng 1.5.2 strands (leaks) an ipc:// pipe whose peer leaves during the handshake
         * (nng issue #1518): the server is done with the open's connection before it goes. */
        wait_count(&f->srv, &f->srv.pipes_added, 1);
    }
    jobq_client_close(f->client);
    server_stop(&f->srv);
    pthread_cond_destroy(&f->srv.cv);
    pthread_mutex_destroy(&f->srv.lock);
    char path[128];
    snprintf(path, sizeof(path), "%s/jobq.sock", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/raw.sock", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    unsetenv("JOBQ_TRANSPORT");
    return 0;
}

/* setup_nng: the fixture with JOBQ_TRANSPORT=nng set while the client opens. */
static int
setup_nng(void **state)
{
    setenv("JOBQ_TRANSPORT", "nng", 1);
    return setup(state);
}

/* ---- concurrent calls ---- */

typedef struct caller {
    jobq_client *client;
    int index;
    int calls;
    atomic_int *mismatches;
} caller;

static void *
echo_thread(void *arg)
{
    caller *k = arg;
    for (int i = 0; i < k->calls; i++) {
        long long n = (long long)k->index * 1000000 + i;
        char req[64];
        char want[64];
        snprintf(req, sizeof(req), "{\"op\":\"echo\",\"n\":%lld}", n);
        snprintf(want, sizeof(want), "{\"ok\":true,\"n\":%lld}", n);
        char *reply = NULL;
        int err = jobq_call(k->client, req, &reply);
        if (err != JOBQ_OK || strcmp(reply, want) != 0) {
            atomic_fetch_add(k->mismatches, 1);
        }
        jobq_free(reply);
    }
    return NULL;
}

/* run_echo: threads x calls echo calls on one client; returns the calls whose reply was not
 * the one to their own request. */
static int
run_echo(jobq_client *client, int threads, int calls)
{
    atomic_int mismatches = 0;
    pthread_t t[32];
    caller k[32];
    for (int i = 0; i < threads; i++) {
        k[i] = (caller){.client = client, .index = i, .calls = calls, .mismatches = &mismatches};
        assert_int_equal(pthread_create(&t[i], NULL, echo_thread, &k[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
    }
    return atomic_load(&mismatches);
}

static void
test_concurrent_calls_get_their_replies(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_echo(f->client, 16, 500), 0);
    /* A connection per call in flight, kept for the next call: never more than the callers. */
    assert_true(wait_count(&f->srv, &f->srv.pipes_added, 1));
    assert_in_range(count(&f->srv, &f->srv.pipes_added), 1, 16);
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
}

/* ---- timeout ---- */

static void
test_timeout_then_fresh_connection(void **state)
{
    fixture *f = *state;
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
    assert_true(wait_count(&f->srv, &f->srv.pipes_added, 1)); /* the one of the open */
    int added = count(&f->srv, &f->srv.pipes_added);
    int removed = count(&f->srv, &f->srv.pipes_removed);
    assert_int_equal(jobq_client_set_timeout(f->client, 300), JOBQ_OK);
    char *reply = NULL;
    assert_int_equal(jobq_call(f->client, "{\"op\":\"hold\"}", &reply), JOBQ_ETIMEDOUT);
    assert_null(reply);
    assert_non_null(strstr(jobq_errmsg(), "no reply from jobqd within 300 ms"));
    /* The connection that timed out is closed, so that its late reply reaches nobody. */
    assert_true(wait_count(&f->srv, &f->srv.pipes_removed, removed + 1));
    assert_int_equal(jobq_client_set_timeout(f->client, 30000), JOBQ_OK);
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
    assert_true(wait_count(&f->srv, &f->srv.pipes_added, added + 1));
}

/* ---- restart ---- */

static void
test_server_restart_between_calls(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_echo(f->client, 4, 20), 0); /* a few idle connections in the pool */
    server_stop(&f->srv);
    assert_int_equal(server_start(&f->srv), 0);
    for (int i = 0; i < 8; i++) {
        int err = jobq_ping(f->client);
        if (err != JOBQ_OK) {
            fail_msg("ping %d after the restart: %s", i, jobq_errmsg());
        }
    }
    assert_int_equal(run_echo(f->client, 4, 20), 0);
}

/* ---- a daemon that is down ---- */

static void
test_call_while_down_fails_fast(void **state)
{
    fixture *f = *state;
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
    server_stop(&f->srv);
    /* The call dials again for a moment (a restart), then says that nobody listens: it does
     * not wait out its timeout, an hour here. */
    assert_int_equal(jobq_client_set_timeout(f->client, 3600 * 1000), JOBQ_OK);
    assert_int_equal(jobq_ping(f->client), JOBQ_EUNREACH);
    assert_non_null(strstr(jobq_errmsg(), "cannot reach jobqd"));
}

/* ---- a connection lost with a request in flight ---- */

static void
test_connection_lost_in_flight(void **state)
{
    fixture *f = *state;
    char *reply = NULL;
    assert_int_equal(jobq_call(f->client, "{\"op\":\"drop\"}", &reply), JOBQ_EUNREACH);
    assert_null(reply);
    assert_non_null(strstr(jobq_errmsg(), "the connection to jobqd was lost before the reply "
                                          "came"));
    assert_non_null(strstr(jobq_errmsg(), "may or may not have been carried out"));
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
}

/* ---- close with calls blocked ---- */

typedef struct blocked {
    jobq_client *client;
    int err;
} blocked;

static void *
hold_thread(void *arg)
{
    blocked *b = arg;
    char *reply = NULL;
    b->err = jobq_call(b->client, "{\"op\":\"hold\"}", &reply);
    jobq_free(reply);
    return NULL;
}

static void
test_close_ends_blocked_calls(void **state)
{
    fixture *f = *state;
    /* Far beyond ctest's timeout: only jobq_client_close can end these calls in time. */
    assert_int_equal(jobq_client_set_timeout(f->client, 24 * 3600 * 1000), JOBQ_OK);
    pthread_t t[4];
    blocked b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (blocked){.client = f->client, .err = -1};
        assert_int_equal(pthread_create(&t[i], NULL, hold_thread, &b[i]), 0);
    }
    assert_true(wait_count(&f->srv, &f->srv.held, 4));
    jobq_client_close(f->client);
    f->client = NULL;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(b[i].err, JOBQ_ECLOSED);
    }
}

static void
test_native_uses_a_connection_per_call(void **state)
{
    fixture *f = *state;
    /* Four calls held at once are on four connections. */
    test_close_ends_blocked_calls(state);
    assert_true(wait_count(&f->srv, &f->srv.pipes_added, 4));
}

/* ---- JOBQ_TRANSPORT=nng ---- */

static void
test_transport_nng(void **state)
{
    fixture *f = *state;
    assert_int_equal(jobq_ping(f->client), JOBQ_OK);
    assert_int_equal(run_echo(f->client, 8, 100), 0);
    /* nng's REQ socket: every call on the one connection. */
    assert_true(wait_count(&f->srv, &f->srv.pipes_added, 1));
    assert_int_equal(count(&f->srv, &f->srv.pipes_added), 1);
}

static void
test_transport_bad_value(void **state)
{
    fixture *f = *state;
    setenv("JOBQ_TRANSPORT", "carrier-pigeon", 1);
    jobq_client *c = NULL;
    assert_int_equal(jobq_client_open(&c, f->srv.url), JOBQ_EINVAL);
    assert_null(c);
    assert_non_null(strstr(jobq_errmsg(), "JOBQ_TRANSPORT"));
    unsetenv("JOBQ_TRANSPORT");
}

/* ---- opening ---- */

static void
test_open_unreachable(void **state)
{
    fixture *f = *state;
    jobq_client *c = NULL;
    char url[400];
    if (f->tcp) {
        /* A port bound by the test but not listened on: connects are refused. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
        assert_int_equal(jobq_client_open(&c, url), JOBQ_EUNREACH);
        assert_non_null(strstr(jobq_errmsg(), "connection refused (nothing listens there)"));
        close(fd);
    } else {
        snprintf(url, sizeof(url), "ipc://%s/none.sock", f->dir);
        assert_int_equal(jobq_client_open(&c, url), JOBQ_EUNREACH);
        assert_non_null(strstr(jobq_errmsg(), "cannot reach jobqd at"));
    }
    assert_null(c);
}

static void
test_open_host_name(void **state)
{
    fixture *f = *state;
    const char *port = strrchr(f->srv.url, ':') + 1;
    char url[400];
    snprintf(url, sizeof(url), "tcp://localhost:%s", port);
    jobq_client *c = NULL;
    if (jobq_client_open(&c, url) != JOBQ_OK) {
        fail_msg("open %s: %s", url, jobq_errmsg());
    }
    assert_int_equal(jobq_ping(c), JOBQ_OK);
    jobq_client_close(c);
    c = NULL;
    snprintf(url, sizeof(url), "tcp://localhost:%s:", port);
    assert_int_equal(jobq_client_open(&c, url), JOBQ_EUNREACH);
    assert_null(c);
}

static void
test_open_ipv6(void **state)
{
    (void)state;
    server s = {.tcp = true, .host = "[::1]"};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cv, NULL);
    snprintf(s.url, sizeof(s.url), "tcp://[::1]:0");
    if (server_start(&s) != 0) {
        skip(); /* no IPv6 loopback here */
    }
    jobq_client *c = NULL;
    if (jobq_client_open(&c, s.url) != JOBQ_OK) {
        fail_msg("open %s: %s", s.url, jobq_errmsg());
    }
    assert_int_equal(run_echo(c, 4, 50), 0);
    jobq_client_close(c);
    server_stop(&s);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.lock);
}

/* ---- a raw SP peer ---- */

/* raw_peer: a listening unix socket that answers one connection by a script. */
#define SP_PROTO_PAIR 0x0010 /* pair0's handshake: an SP peer, but not a REP one */

typedef enum raw_mode {
    RAW_PAIR,     /* handshake as PAIR (not REP) */
    RAW_HUGE,     /* a reply frame announcing 2 GiB */
    RAW_STALE_ID, /* a reply to another id first, then the right one */
    RAW_BAD_TYPE, /* an ipc frame whose type byte is not 1 */
    RAW_SHORT,    /* a frame of 2 bytes: shorter than a request id */
} raw_mode;

typedef struct raw_peer {
    int lfd;
    raw_mode mode;
    pthread_t thread;
} raw_peer;

static bool
read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

/* write_frame: an ipc:// frame header announcing len bytes, with type as its type byte
 * (JOBQ__SPW_IPC_MSG unless the test breaks it), then n bytes of data. */
static void
write_frame(int fd, uint64_t len, const void *data, size_t n, uint8_t type)
{
    uint8_t h[JOBQ__SPW_HDR_MAX];
    size_t hl = jobq__spw_frame_put(h, true, len);
    h[0] = type;
    (void)!send(fd, h, hl, MSG_NOSIGNAL);
    if (n > 0) {
        (void)!send(fd, data, n, MSG_NOSIGNAL);
    }
}

/* write_reply: a well-formed ipc:// reply frame: the backtrace bt (a request id), then body. */
static void
write_reply(int fd, const uint8_t *bt, const char *body)
{
    uint8_t h[JOBQ__SPW_REPLY_HEAD_MAX];
    size_t hl = jobq__spw_reply_head(h, true, bt, 4, strlen(body));
    (void)!send(fd, h, hl, MSG_NOSIGNAL);
    (void)!send(fd, body, strlen(body), MSG_NOSIGNAL);
}

static void *
raw_thread(void *arg)
{
    raw_peer *p = arg;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    uint8_t hs[JOBQ__SPW_HANDSHAKE_LEN];
    jobq__spw_handshake(hs, p->mode == RAW_PAIR ? SP_PROTO_PAIR : JOBQ__SPW_PROTO_REP);
    (void)!send(fd, hs, sizeof(hs), MSG_NOSIGNAL);
    uint8_t peer[JOBQ__SPW_HANDSHAKE_LEN];
    if (!read_full(fd, peer, sizeof(peer)) || p->mode == RAW_PAIR) {
        close(fd);
        return NULL;
    }
    uint8_t head[JOBQ__SPW_IPC_HDR];
    uint64_t len;
    if (read_full(fd, head, sizeof(head)) &&
        jobq__spw_frame_get(head, sizeof(head), true, &len) == JOBQ__SPW_FRAME_OK && len >= 4) {
        uint8_t *body = malloc(len);
        if (body != NULL && read_full(fd, body, len)) {
            uint8_t id[4];
            memcpy(id, body, 4);
            const char *ok = "{\"ok\":true,\"n\":7}";
            char frame[64];
            switch (p->mode) {
            case RAW_HUGE:
                write_frame(fd, (uint64_t)2 << 30, id, 4, JOBQ__SPW_IPC_MSG);
                break;
            case RAW_STALE_ID: {
                uint8_t other[4];
                jobq__spw_put32(other, jobq__spw_get32(id) ^ 1);
                write_reply(fd, other, "{\"ok\":false}");
                write_reply(fd, id, ok);
                break;
            }
            case RAW_BAD_TYPE:
                memcpy(frame, id, 4);
                memcpy(frame + 4, ok, strlen(ok));
                write_frame(fd, 4 + strlen(ok), frame, 4 + strlen(ok), 2);
                break;
            case RAW_SHORT:
                write_frame(fd, 2, id, 2, JOBQ__SPW_IPC_MSG);
                break;
            case RAW_PAIR:
                break;
            }
        }
        free(body);
    }
    /* Wait for the client to hang up, so that what was written is read. */
    char b;
    while (read(fd, &b, 1) > 0) {
    }
    close(fd);
    return NULL;
}

static void
raw_start(fixture *f, raw_peer *p, raw_mode mode, char *url, size_t urlsz)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/raw.sock", f->dir);
    unlink(sun.sun_path);
    p->mode = mode;
    p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(p->lfd, 4), 0);
    assert_int_equal(pthread_create(&p->thread, NULL, raw_thread, p), 0);
    snprintf(url, urlsz, "ipc://%s", sun.sun_path);
}

static void
raw_stop(raw_peer *p)
{
    pthread_join(p->thread, NULL);
    close(p->lfd);
}

/* raw_call: one echo call on a fresh client of a raw peer in mode; returns its error. */
static int
raw_call(fixture *f, raw_mode mode, char **replyp)
{
    raw_peer p;
    char url[200];
    raw_start(f, &p, mode, url, sizeof(url));
    jobq_client *c = NULL;
    int err = jobq_client_open(&c, url);
    if (err == JOBQ_OK) {
        jobq_client_set_timeout(c, 24 * 3600 * 1000);
        err = jobq_call(c, "{\"op\":\"echo\",\"n\":7}", replyp);
        jobq_client_close(c);
    }
    raw_stop(&p);
    return err;
}

static void
test_raw_not_rep(void **state)
{
    char *reply = NULL;
    assert_int_equal(raw_call(*state, RAW_PAIR, &reply), JOBQ_EPROTO);
    assert_non_null(strstr(jobq_errmsg(), "did not accept an nng REQ connection"));
}

static void
test_raw_huge_reply(void **state)
{
    char *reply = NULL;
    assert_int_equal(raw_call(*state, RAW_HUGE, &reply), JOBQ_EPROTO);
    assert_non_null(strstr(jobq_errmsg(), "announced a reply over 1073741824 bytes"));
}

static void
test_raw_bad_frames(void **state)
{
    char *reply = NULL;
    assert_int_equal(raw_call(*state, RAW_BAD_TYPE, &reply), JOBQ_EPROTO);
    assert_non_null(strstr(jobq_errmsg(), "malformed SP frame"));
    assert_int_equal(raw_call(*state, RAW_SHORT, &reply), JOBQ_EPROTO);
    assert_non_null(strstr(jobq_errmsg(), "malformed SP frame"));
}

static void
test_raw_stale_reply_skipped(void **state)
{
    char *reply = NULL;
    int err = raw_call(*state, RAW_STALE_ID, &reply);
    if (err != JOBQ_OK) {
        fail_msg("call: %s", jobq_errmsg());
    }
    assert_string_equal(reply, "{\"ok\":true,\"n\":7}");
    jobq_free(reply);
}

int
main(void)
{
    static char tcp[] = "tcp";
    static char ipc[] = "ipc";
#define BOTH(t)                                                                                    \
    cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, tcp),                             \
        cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, ipc)
#define BOTH_NNG(t)                                                                                \
    cmocka_unit_test_prestate_setup_teardown(t, setup_nng, teardown, tcp),                         \
        cmocka_unit_test_prestate_setup_teardown(t, setup_nng, teardown, ipc)
    const struct CMUnitTest tests[] = {
        BOTH(test_concurrent_calls_get_their_replies),
        BOTH(test_timeout_then_fresh_connection),
        BOTH(test_server_restart_between_calls),
        BOTH(test_call_while_down_fails_fast),
        BOTH(test_connection_lost_in_flight),
        BOTH(test_native_uses_a_connection_per_call),
        BOTH(test_open_unreachable),
        cmocka_unit_test_prestate_setup_teardown(test_open_host_name, setup, teardown, tcp),
        cmocka_unit_test(test_open_ipv6),
        BOTH(test_transport_bad_value),
        cmocka_unit_test_prestate_setup_teardown(test_raw_not_rep, setup, teardown, ipc),
        cmocka_unit_test_prestate_setup_teardown(test_raw_huge_reply, setup, teardown, ipc),
        cmocka_unit_test_prestate_setup_teardown(test_raw_bad_frames, setup, teardown, ipc),
        cmocka_unit_test_prestate_setup_teardown(test_raw_stale_reply_skipped, setup, teardown,
                                                 ipc),
        BOTH_NNG(test_transport_nng),
        BOTH_NNG(test_concurrent_calls_get_their_replies),
        BOTH_NNG(test_close_ends_blocked_calls),
    };
    /* TEST_FILTER=PATTERN runs only the tests whose name matches (cmocka's wildcards). */
    if (getenv("TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
