/* test_sp.c: the native SP REP endpoint (daemon/sp.c) on a real libuv loop in its own thread,
 * against real nng REQ sockets and raw sockets that speak (or break) the wire format: many
 * contexts over tcp:// and ipc://, the message size limit, handshakes, backtraces, a client
 * that never reads its replies, a reply owed to a closed connection, max_clients, and ipc://
 * socket files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sp.h"

#define MAX_MESSAGE 1024 /* so max_recv is 4096 */
#define MAX_UNSENT (256 * 1024)
#define BIG_REPLY 4096                   /* bytes of each reply in MODE_BIG */
#define DEADLINE_NS (60ull * 1000000000) /* a wait for an event that does not come fails */

enum mode { MODE_ECHO, MODE_HOLD, MODE_BIG };

typedef struct fixture fixture;
typedef void (*task_fn)(fixture *f, void *arg);

struct fixture {
    char dir[64];
    char ipc_url[128];
    char tcp_url[64];
    uv_loop_t loop;
    uv_async_t wake;
    uv_thread_t thread;
    uv_mutex_t mtx; /* guards everything below */
    uv_cond_t cond;
    task_fn task; /* run on the loop by run_on_loop */
    void *task_arg;
    bool task_done;
    sp_server *sp;
    atomic_int clients;
    enum mode mode;
    sp_req *held[16];
    int nheld;
    long requests; /* handed to the callback */
    int paused, resumed, closed;
    size_t unsent_at_pause;
    long requests_at_pause;
};

/* Loop thread. */

static void
request_cb(void *arg, sp_req *req, const char *body, size_t len)
{
    fixture *f = arg;
    if (len >= 5 && memcmp(body, "token", 5) == 0) {
        sp_authenticated(req);
    }
    uv_mutex_lock(&f->mtx);
    f->requests++;
    enum mode mode = f->mode;
    if (mode == MODE_HOLD && f->nheld < 16) {
        f->held[f->nheld++] = req;
    }
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->mtx);
    if (mode == MODE_ECHO) {
        sp_reply(req, body, len);
    } else if (mode == MODE_BIG) {
        char big[BIG_REPLY];
        memset(big, 'x', sizeof(big));
        memcpy(big, body, len < sizeof(big) ? len : sizeof(big));
        sp_reply(req, big, sizeof(big));
    }
}

static void
event_cb(void *arg, sp_event ev)
{
    fixture *f = arg;
    uv_mutex_lock(&f->mtx);
    if (ev == SP_EV_PAUSED) {
        f->paused++;
        f->unsent_at_pause = sp_unsent(f->sp);
        f->requests_at_pause = f->requests;
    } else if (ev == SP_EV_RESUMED) {
        f->resumed++;
    } else {
        f->closed++;
    }
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->mtx);
}

static void
wake_cb(uv_async_t *h)
{
    fixture *f = h->data;
    uv_mutex_lock(&f->mtx);
    task_fn task = f->task;
    void *arg = f->task_arg;
    f->task = NULL;
    uv_mutex_unlock(&f->mtx);
    if (task == NULL) {
        return;
    }
    task(f, arg);
    uv_mutex_lock(&f->mtx);
    f->task_done = true;
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->mtx);
}

static void
loop_thread(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* Test thread. */

/* run_on_loop: runs task(f, arg) on the loop thread and returns once it ran. */
static void
run_on_loop(fixture *f, task_fn task, void *arg)
{
    uv_mutex_lock(&f->mtx);
    f->task = task;
    f->task_arg = arg;
    f->task_done = false;
    uv_mutex_unlock(&f->mtx);
    uv_async_send(&f->wake);
    uv_mutex_lock(&f->mtx);
    while (!f->task_done) {
        uv_cond_wait(&f->cond, &f->mtx);
    }
    uv_mutex_unlock(&f->mtx);
}

/* WAIT_UNTIL: waits (on f->cond, under f->mtx) until pred holds; fails after DEADLINE_NS. */
#define WAIT_UNTIL(f, pred)                                                                        \
    do {                                                                                           \
        uint64_t until_ = uv_hrtime() + DEADLINE_NS;                                               \
        uv_mutex_lock(&(f)->mtx);                                                                  \
        while (!(pred)) {                                                                          \
            if (uv_hrtime() > until_) {                                                            \
                uv_mutex_unlock(&(f)->mtx);                                                        \
                fail_msg("timed out waiting for %s", #pred);                                       \
            }                                                                                      \
            uv_cond_timedwait(&(f)->cond, &(f)->mtx, 100000000);                                   \
        }                                                                                          \
        uv_mutex_unlock(&(f)->mtx);                                                                \
    } while (0)

typedef struct open_args {
    size_t max_recv;
    size_t max_recv_unauth; /* 0: no authentication needed */
    size_t max_buffered;    /* 0: 64 * MAX_MESSAGE */
    uint64_t read_ms;       /* 0: 60 s */
    uint64_t idle_ms;       /* 0: never */
    int max_clients;
    uint64_t handshake_ms;
    int rv;
} open_args;

static void
open_task(fixture *f, void *arg)
{
    open_args *a = arg;
    sp_config cfg = {.max_recv = a->max_recv,
                     .max_recv_unauth = a->max_recv_unauth,
                     .need_auth = a->max_recv_unauth > 0,
                     .too_large = "{\"too_large\":true}",
                     .unauth_large = "{\"unauthorized\":true}",
                     .max_unsent = MAX_UNSENT,
                     .max_buffered = a->max_buffered > 0 ? a->max_buffered : 64 * MAX_MESSAGE,
                     .handshake_ms = a->handshake_ms,
                     .read_ms = a->read_ms > 0 ? a->read_ms : 60000,
                     .idle_ms = a->idle_ms,
                     .clients = &f->clients,
                     .max_clients = a->max_clients,
                     .refusal = "{\"refused\":true}",
                     .refuse_linger_ms = 200,
                     .cb = request_cb,
                     .arg = f,
                     .event_cb = event_cb,
                     .event_arg = f};
    a->rv = sp_open(&f->sp, &f->loop, &cfg);
    if (a->rv == 0 && (a->rv = sp_listen(f->sp, f->tcp_url)) == 0) {
        a->rv = sp_listen(f->sp, f->ipc_url);
    }
}

/* free_port: a TCP port on 127.0.0.1 that nothing listens on now. */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static fixture *
start_with(open_args *a)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/jobq-sp.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->ipc_url, sizeof(f->ipc_url), "ipc://%s/sp.sock", f->dir);
    snprintf(f->tcp_url, sizeof(f->tcp_url), "tcp://127.0.0.1:%d", free_port());
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_mutex_init(&f->mtx);
    uv_cond_init(&f->cond);
    uv_async_init(&f->loop, &f->wake, wake_cb);
    f->wake.data = f;
    assert_int_equal(uv_thread_create(&f->thread, loop_thread, f), 0);
    run_on_loop(f, open_task, a);
    assert_int_equal(a->rv, 0);
    return f;
}

static fixture *
start(int max_clients, uint64_t handshake_ms)
{
    open_args a = {
        .max_recv = 4 * MAX_MESSAGE, .max_clients = max_clients, .handshake_ms = handshake_ms};
    return start_with(&a);
}

static void
close_task(fixture *f, void *arg)
{
    (void)arg;
    sp_close(f->sp);
    uv_close((uv_handle_t *)&f->wake, NULL);
}

static void
reply_held_task(fixture *f, void *arg)
{
    (void)arg;
    uv_mutex_lock(&f->mtx);
    int n = f->nheld;
    f->nheld = 0;
    uv_mutex_unlock(&f->mtx);
    for (int i = 0; i < n; i++) {
        sp_reply(f->held[i], "late", 4);
    }
}

static void
stop(fixture *f)
{
    run_on_loop(f, reply_held_task, NULL);
    run_on_loop(f, close_task, NULL);
    uv_thread_join(&f->thread);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_cond_destroy(&f->cond);
    uv_mutex_destroy(&f->mtx);
    char path[160];
    snprintf(path, sizeof(path), "%s/sp.sock", f->dir);
    struct stat sb;
    assert_int_not_equal(lstat(path, &sb), 0); /* the socket file went with its listener */
    rmdir(f->dir);
    free(f);
}

/* Raw sockets. */

static int
raw_connect(fixture *f, bool ipc)
{
    int fd;
    if (ipc) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->ipc_url + 6);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(strrchr(f->tcp_url, ':') + 1)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    struct timeval tv = {.tv_sec = 60}; /* a deadline, so a missing event fails the test */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void
write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* read_full: reads exactly len bytes; returns false at the end of the stream. */
static bool
read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return false;
        }
        assert_true(n > 0); /* not the SO_RCVTIMEO deadline */
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* expect_eof: the server closes the connection (after whatever it sent first). */
static void
expect_eof(int fd)
{
    char buf[256];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return;
        }
        assert_true(n > 0); /* not the SO_RCVTIMEO deadline */
    }
}

static const uint8_t req_hs[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
static const uint8_t rep_hs[8] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0};

/* handshake: a REQ peer's handshake; the server's must be REP's. */
static void
handshake(int fd)
{
    write_all(fd, req_hs, sizeof(req_hs));
    uint8_t got[8];
    assert_true(read_full(fd, got, sizeof(got)));
    assert_memory_equal(got, rep_hs, sizeof(got));
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) {
        p[i] = (uint8_t)v;
    }
}

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* frame: writes a frame carrying msg (backtrace and body) into out; returns its size. */
static size_t
frame(bool ipc, uint8_t *out, const void *msg, size_t len)
{
    size_t h = 0;
    if (ipc) {
        out[h++] = 1;
    }
    put64(out + h, len);
    memcpy(out + h + 8, msg, len);
    return h + 8 + len;
}

/* read_frame: one frame's message into buf (at most cap bytes); returns its length. */
static size_t
read_frame(int fd, bool ipc, uint8_t *buf, size_t cap)
{
    uint8_t hdr[9];
    size_t h = ipc ? 9 : 8;
    assert_true(read_full(fd, hdr, h));
    if (ipc) {
        assert_int_equal(hdr[0], 1);
    }
    uint64_t len = get64(hdr + h - 8);
    assert_true(len <= cap);
    assert_true(read_full(fd, buf, (size_t)len));
    return (size_t)len;
}

/* nng clients. */

typedef struct worker {
    nng_socket sock;
    int id;
    int n;
    int failures;
} worker;

/* roundtrip: sends body on ctx and returns the reply (to free), or NULL. */
static nng_msg *
roundtrip(nng_ctx ctx, const void *body, size_t len)
{
    nng_aio *aio;
    nng_msg *m;
    if (nng_aio_alloc(&aio, NULL, NULL) != 0 || nng_msg_alloc(&m, 0) != 0) {
        return NULL;
    }
    nng_msg_append(m, body, len);
    nng_aio_set_timeout(aio, 30000);
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) != 0) {
        nng_msg_free(m);
        nng_aio_free(aio);
        return NULL;
    }
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    nng_msg *r = nng_aio_result(aio) == 0 ? nng_aio_get_msg(aio) : NULL;
    nng_aio_free(aio);
    return r;
}

static void
worker_run(void *arg)
{
    worker *w = arg;
    nng_ctx ctx;
    if (nng_ctx_open(&ctx, w->sock) != 0) {
        w->failures = w->n;
        return;
    }
    for (int i = 0; i < w->n; i++) {
        char body[64];
        int len = snprintf(body, sizeof(body), "{\"ctx\":%d,\"request\":%d}", w->id, i);
        nng_msg *r = roundtrip(ctx, body, (size_t)len);
        if (r == NULL || nng_msg_len(r) != (size_t)len ||
            memcmp(nng_msg_body(r), body, (size_t)len) != 0) {
            w->failures++;
        }
        nng_msg_free(r);
    }
    nng_ctx_close(ctx);
}

static nng_socket
req_dial(const char *url)
{
    nng_socket s;
    assert_int_equal(nng_req0_open(&s), 0);
    int rv = nng_dial(s, url, NULL, 0);
    if (rv != 0) {
        fail_msg("nng_dial %s: %s", url, nng_strerror(rv));
    }
    return s;
}

static void
many_contexts(const char *which)
{
    fixture *f = start(100, 10000);
    const char *url = strcmp(which, "ipc") == 0 ? f->ipc_url : f->tcp_url;
    nng_socket s = req_dial(url);
    worker w[16];
    uv_thread_t t[16];
    for (int i = 0; i < 16; i++) {
        w[i] = (worker){.sock = s, .id = i, .n = 1000};
        assert_int_equal(uv_thread_create(&t[i], worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        uv_thread_join(&t[i]);
        assert_int_equal(w[i].failures, 0);
    }
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 16 * 1000);
    uv_mutex_unlock(&f->mtx);
    assert_int_equal(atomic_load(&f->clients), 1);
    nng_close(s);
    WAIT_UNTIL(f, f->closed == 1);
    assert_int_equal(atomic_load(&f->clients), 0);
    stop(f);
}

static void
test_many_contexts_tcp(void **state)
{
    (void)state;
    many_contexts("tcp");
}

static void
test_many_contexts_ipc(void **state)
{
    (void)state;
    many_contexts("ipc");
}

typedef struct writer {
    int fd;
    const uint8_t *buf;
    size_t len;
    int failed;
} writer;

static void
writer_run(void *arg)
{
    writer *w = arg;
    const uint8_t *p = w->buf;
    size_t len = w->len;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n <= 0) {
            w->failed = 1;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

static void
buffered_task(fixture *f, void *arg)
{
    *(size_t *)arg = sp_buffered(f->sp);
}

/* expect_reply: reads one frame and checks it carries request id id and body want. */
static void
expect_reply(int fd, bool ipc, uint32_t id, const char *want)
{
    uint8_t got[256];
    size_t n = read_frame(fd, ipc, got, sizeof(got));
    assert_int_equal(n, 4 + strlen(want));
    assert_int_equal(get64((const uint8_t[8]){0, 0, 0, 0, got[0], got[1], got[2], got[3]}), id);
    assert_memory_equal(got + 4, want, n - 4);
}

/* send_request: a frame of len bytes: request id id, then body (padded with 'x'). */
static void
send_request(int fd, bool ipc, uint32_t id, const char *body, size_t len)
{
    uint8_t *out = malloc(len + 9);
    uint8_t *msg = malloc(len);
    memset(msg, 'x', len);
    msg[0] = (uint8_t)(id >> 24);
    msg[1] = (uint8_t)(id >> 16);
    msg[2] = (uint8_t)(id >> 8);
    msg[3] = (uint8_t)id;
    memcpy(msg + 4, body, strlen(body) < len - 4 ? strlen(body) : len - 4);
    write_all(fd, out, frame(ipc, out, msg, len));
    free(out);
    free(msg);
}

/* A message of exactly max_recv bytes (request id included) is served. A frame that announces
 * one byte more is discarded as it comes from its request id on, nothing of it buffered, then
 * answered too_large, and the connection goes on serving. One that announces a terabyte holds
 * nothing either. */
static void
test_message_limit(void **state)
{
    (void)state;
    fixture *f = start(100, 10000);
    nng_socket s = req_dial(f->tcp_url);
    nng_ctx ctx;
    assert_int_equal(nng_ctx_open(&ctx, s), 0);
    size_t len = 4 * MAX_MESSAGE - 4; /* plus nng's 4-byte request id */
    char *body = malloc(len);
    memset(body, 'm', len);
    nng_msg *r = roundtrip(ctx, body, len);
    assert_non_null(r);
    assert_int_equal(nng_msg_len(r), len);
    nng_msg_free(r);
    free(body);
    nng_ctx_close(ctx);
    nng_close(s);

    for (int ipc = 0; ipc < 2; ipc++) {
        int fd = raw_connect(f, ipc);
        handshake(fd);
        uint64_t sizes[2] = {4 * MAX_MESSAGE + 1, (uint64_t)1 << 40};
        for (int k = 0; k < 2; k++) {
            uint8_t hdr[13] = {1};
            put64(hdr + ipc, sizes[k]);
            static const uint8_t id[4] = {0x80, 0, 0, 7};
            memcpy(hdr + ipc + 8, id, 4);
            write_all(fd, hdr, (ipc ? 9 : 8) + 4);
            size_t rest = k == 0 ? 4 * MAX_MESSAGE + 1 - 4 : 3 * MAX_MESSAGE;
            uint8_t *junk = malloc(rest);
            memset(junk, 'j', rest);
            write_all(fd, junk, rest);
            free(junk);
            if (k == 0) { /* the reply once the body is through, then a request is served */
                expect_reply(fd, ipc, 0x80000007u, "{\"too_large\":true}");
                send_request(fd, ipc, 0x80000008u, "after", 9);
                expect_reply(fd, ipc, 0x80000008u, "after");
            } else {
                send_request(fd, ipc, 0x80000009u, "lost", 9); /* part of the terabyte */
                uv_mutex_lock(&f->mtx);
                long want = f->requests;
                uv_mutex_unlock(&f->mtx);
                assert_int_equal(want, 2 + ipc);
            }
            size_t held = 1;
            run_on_loop(f, buffered_task, &held);
            assert_int_equal(held, 0);
        }
        close(fd);
    }
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 3);
    uv_mutex_unlock(&f->mtx);
    WAIT_UNTIL(f, f->closed == 3);
    stop(f);
}

/* Before a request that authenticates it (here: a body starting "token"), a connection's
 * messages are limited to max_recv_unauth: a larger one is answered with the unauthenticated
 * refusal from its prefix and discarded; afterwards max_recv applies. */
static void
test_unauthenticated_limit(void **state)
{
    (void)state;
    open_args a = {.max_recv = 4 * MAX_MESSAGE,
                   .max_recv_unauth = 256,
                   .max_clients = 100,
                   .handshake_ms = 10000};
    fixture *f = start_with(&a);
    for (int ipc = 0; ipc < 2; ipc++) {
        int fd = raw_connect(f, ipc);
        handshake(fd);
        send_request(fd, ipc, 0x80000001u, "big", 257);
        expect_reply(fd, ipc, 0x80000001u, "{\"unauthorized\":true}");
        send_request(fd, ipc, 0x80000002u, "small", 256);
        uint8_t got[300];
        assert_int_equal(read_frame(fd, ipc, got, sizeof(got)), 256);
        send_request(fd, ipc, 0x80000003u, "token", 16);
        assert_int_equal(read_frame(fd, ipc, got, sizeof(got)), 16);
        send_request(fd, ipc, 0x80000004u, "big", 1000);
        uint8_t *big = malloc(1000);
        assert_int_equal(read_frame(fd, ipc, big, 1000), 1000);
        assert_memory_equal(big, "\x80\x00\x00\x04" "big", 7);
        free(big);
        send_request(fd, ipc, 0x80000005u, "huge", 4 * MAX_MESSAGE + 1);
        expect_reply(fd, ipc, 0x80000005u, "{\"too_large\":true}");
        close(fd);
    }
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 6);
    uv_mutex_unlock(&f->mtx);
    stop(f);
}

/* read_ms: a connection that stops in the middle of a frame header, of a body, or of a refused
 * body it is sending is closed. idle_ms: one that sends nothing after its handshake is closed;
 * one owed a reply is not, however long the reply takes. */
static void
test_timeouts(void **state)
{
    (void)state;
    open_args a = {.max_recv = 4 * MAX_MESSAGE,
                   .max_clients = 100,
                   .handshake_ms = 10000,
                   .read_ms = 200,
                   .idle_ms = 400};
    fixture *f = start_with(&a);
    uv_mutex_lock(&f->mtx);
    f->mode = MODE_HOLD;
    uv_mutex_unlock(&f->mtx);
    int held = raw_connect(f, false);
    handshake(held);
    send_request(held, false, 0x80000001u, "hold", 8);
    WAIT_UNTIL(f, f->nheld == 1);
    for (int ipc = 0; ipc < 2; ipc++) {
        uint8_t hdr[13] = {1};
        int fd = raw_connect(f, ipc); /* half a header */
        handshake(fd);
        put64(hdr + ipc, 100);
        write_all(fd, hdr, 4);
        expect_eof(fd);
        close(fd);
        fd = raw_connect(f, ipc); /* half a body */
        handshake(fd);
        write_all(fd, hdr, (ipc ? 9 : 8));
        write_all(fd, "\x80\0\0\x01" "abc", 7);
        expect_eof(fd);
        close(fd);
        fd = raw_connect(f, ipc); /* half a refused body: no reply, closed */
        handshake(fd);
        put64(hdr + ipc, 1u << 20);
        write_all(fd, hdr, (ipc ? 9 : 8));
        write_all(fd, "\x80\0\0\x01" "abc", 7);
        expect_eof(fd);
        close(fd);
        fd = raw_connect(f, ipc); /* nothing at all */
        handshake(fd);
        expect_eof(fd);
        close(fd);
    }
    WAIT_UNTIL(f, f->closed == 8);
    /* The held connection outlived an idle one: it is still served. */
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->closed, 8);
    f->mode = MODE_ECHO;
    uv_mutex_unlock(&f->mtx);
    run_on_loop(f, reply_held_task, NULL);
    expect_reply(held, false, 0x80000001u, "late");
    /* Now owed nothing: idle, closed. */
    expect_eof(held);
    close(held);
    WAIT_UNTIL(f, f->closed == 9);
    stop(f);
}

/* max_buffered: a frame larger than the read buffer holds budget; a second one that does not
 * fit waits (its connection stops reading) until the first is served, then is served too. The
 * budget never exceeds the limit. */
static void
test_buffer_budget(void **state)
{
    (void)state;
    enum { BIG = 60000, PART = 20000 };
    open_args a = {.max_recv = 64 * 1024,
                   .max_buffered = 64 * 1024,
                   .max_clients = 100,
                   .handshake_ms = 10000,
                   .read_ms = 30000};
    fixture *f = start_with(&a);
    uint8_t *msg = malloc(BIG), *out = malloc(BIG + 9);
    memset(msg, 'b', BIG);
    int fd[2];
    size_t flen[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = raw_connect(f, i == 1);
        handshake(fd[i]);
        msg[0] = 0x80;
        msg[3] = (uint8_t)(i + 1);
        flen[i] = frame(i == 1, out, msg, BIG);
        write_all(fd[i], out, PART);
    }
    size_t held = 0;
    for (int tries = 0; held == 0 && tries < 6000; tries++) { /* until the loop read it */
        run_on_loop(f, buffered_task, &held);
        if (held == 0) {
            usleep(10000);
        }
    }
    assert_true(held > 0 && held <= 64 * 1024);
    /* The first completes; the second is served after it. */
    for (int i = 0; i < 2; i++) {
        msg[3] = (uint8_t)(i + 1);
        flen[i] = frame(i == 1, out, msg, BIG);
        writer w = {.fd = fd[i], .buf = out + PART, .len = flen[i] - PART};
        uv_thread_t t;
        assert_int_equal(uv_thread_create(&t, writer_run, &w), 0);
        uint8_t *got = malloc(BIG);
        assert_int_equal(read_frame(fd[i], i == 1, got, BIG), BIG);
        assert_int_equal(got[3], i + 1);
        free(got);
        uv_thread_join(&t);
        assert_int_equal(w.failed, 0);
        run_on_loop(f, buffered_task, &held);
        assert_true(held <= 64 * 1024);
    }
    for (int i = 0; i < 2; i++) {
        close(fd[i]);
    }
    free(msg);
    free(out);
    WAIT_UNTIL(f, f->closed == 2);
    run_on_loop(f, buffered_task, &held);
    assert_int_equal(held, 0);
    stop(f);
}

/* A peer of another protocol, garbage instead of a handshake, an incomplete handshake past
 * handshake_ms: each is closed, and none counts as a client. */
static void
test_handshakes_refused(void **state)
{
    (void)state;
    fixture *f = start(100, 300);
    static const uint8_t pair_hs[8] = {0, 'S', 'P', 0, 0x00, 0x10, 0, 0};
    static const uint8_t rep_peer_hs[8] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0};
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const void *hs[3] = {pair_hs, rep_peer_hs, http};
    for (int ipc = 0; ipc < 2; ipc++) {
        for (int i = 0; i < 3; i++) {
            int fd = raw_connect(f, ipc);
            write_all(fd, hs[i], 8);
            uint8_t got[8];
            assert_true(read_full(fd, got, sizeof(got)));
            assert_memory_equal(got, rep_hs, sizeof(got));
            expect_eof(fd);
            close(fd);
        }
        int fd = raw_connect(f, ipc); /* slowloris: 3 bytes, then nothing */
        write_all(fd, req_hs, 3);
        expect_eof(fd);
        close(fd);
    }
    WAIT_UNTIL(f, f->closed == 8);
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 0);
    uv_mutex_unlock(&f->mtx);
    assert_int_equal(atomic_load(&f->clients), 0);
    stop(f);
}

/* The reply carries the request's whole backtrace back; a backtrace of more than 8 words is
 * dropped (the connection stays); a message without a request id closes the connection. */
static void
test_backtraces(void **state)
{
    (void)state;
    fixture *f = start(100, 10000);
    for (int ipc = 0; ipc < 2; ipc++) {
        int fd = raw_connect(f, ipc);
        handshake(fd);
        uint8_t out[128], msg[64], got[64];
        /* 9 hops: dropped. */
        memset(msg, 0, sizeof(msg));
        memcpy(msg + 36, "drop", 4);
        msg[32] = 0x80;
        write_all(fd, out, frame(ipc, out, msg, 40));
        /* Two hops: a pipe id, then the request id. */
        static const uint8_t two[] = {0x00, 0x00, 0x00, 0x07, 0x80, 0x00, 0x12, 0x34, 'h', 'i'};
        write_all(fd, out, frame(ipc, out, two, sizeof(two)));
        size_t n = read_frame(fd, ipc, got, sizeof(got));
        assert_int_equal(n, sizeof(two));
        assert_memory_equal(got, two, sizeof(two));
        /* No request id: closed. */
        static const uint8_t none[] = {0x00, 0x01};
        write_all(fd, out, frame(ipc, out, none, sizeof(none)));
        expect_eof(fd);
        close(fd);
    }
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 2);
    uv_mutex_unlock(&f->mtx);
    stop(f);
}

/* A client that sends 10,000 requests and reads nothing: the connection stops reading once
 * MAX_UNSENT reply bytes wait, so what jobqd holds stays bounded; once the client reads, every
 * reply arrives, none dropped. */
static void
unread_replies(bool ipc)
{
    fixture *f = start(100, 10000);
    uv_mutex_lock(&f->mtx);
    f->mode = MODE_BIG;
    uv_mutex_unlock(&f->mtx);
    int fd = raw_connect(f, ipc);
    handshake(fd);
    enum { N = 10000 };
    uint8_t *reqs = malloc((size_t)N * 32);
    size_t len = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t msg[12];
        uint32_t id = 0x80000000u | i;
        msg[0] = (uint8_t)(id >> 24);
        msg[1] = (uint8_t)(id >> 16);
        msg[2] = (uint8_t)(id >> 8);
        msg[3] = (uint8_t)id;
        char digits[16];
        snprintf(digits, sizeof(digits), "%08u", i % 100000000u);
        memcpy(msg + 4, digits, 8);
        len += frame(ipc, reqs + len, msg, 12);
    }
    /* A thread writes them: once the endpoint stops reading, the kernel's buffers fill. */
    writer wr = {.fd = fd, .buf = reqs, .len = len};
    uv_thread_t wt;
    assert_int_equal(uv_thread_create(&wt, writer_run, &wr), 0);
    WAIT_UNTIL(f, f->paused >= 1);
    uv_mutex_lock(&f->mtx);
    long served = f->requests;
    assert_true(f->requests_at_pause < N);
    assert_int_equal(served, f->requests_at_pause); /* nothing read while paused */
    assert_int_equal(f->resumed, 0);
    assert_true(f->unsent_at_pause <= MAX_UNSENT + BIG_REPLY + 64);
    uv_mutex_unlock(&f->mtx);
    print_message("paused after %ld of %d requests with %zu reply bytes unsent\n", served, N,
                  f->unsent_at_pause);

    uint8_t *seen = calloc(N, 1);
    uint8_t *buf = malloc(BIG_REPLY + 4);
    for (int i = 0; i < N; i++) {
        size_t n = read_frame(fd, ipc, buf, BIG_REPLY + 4);
        assert_int_equal(n, 4 + BIG_REPLY);
        uint32_t id =
            ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) | ((uint32_t)buf[2] << 8) | buf[3];
        uint32_t k = id & 0x7fffffffu;
        assert_true(k < N);
        char want[16];
        snprintf(want, sizeof(want), "%08u", k % 100000000u);
        assert_memory_equal(buf + 4, want, 8);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
    }
    free(seen);
    free(buf);
    uv_thread_join(&wt);
    assert_int_equal(wr.failed, 0);
    free(reqs);
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, N);
    assert_true(f->resumed >= 1);
    uv_mutex_unlock(&f->mtx);
    close(fd);
    stop(f);
}

static void
test_unread_replies_bounded_tcp(void **state)
{
    (void)state;
    unread_replies(false);
}

static void
test_unread_replies_bounded_ipc(void **state)
{
    (void)state;
    unread_replies(true);
}

/* A connection that closes while its reply is owed: the late reply is dropped safely, and the
 * endpoint goes on serving. The same with the whole endpoint closed before the reply. */
static void
test_reply_after_close(void **state)
{
    (void)state;
    fixture *f = start(100, 10000);
    uv_mutex_lock(&f->mtx);
    f->mode = MODE_HOLD;
    uv_mutex_unlock(&f->mtx);
    for (int ipc = 0; ipc < 2; ipc++) {
        int fd = raw_connect(f, ipc);
        handshake(fd);
        uint8_t out[64];
        static const uint8_t msg[] = {0x80, 0, 0, 1, 'w', 'a', 'i', 't'};
        write_all(fd, out, frame(ipc, out, msg, sizeof(msg)));
        WAIT_UNTIL(f, f->nheld == 1);
        close(fd);
        WAIT_UNTIL(f, f->closed == ipc + 1);
        run_on_loop(f, reply_held_task, NULL);
    }
    uv_mutex_lock(&f->mtx);
    f->mode = MODE_ECHO;
    uv_mutex_unlock(&f->mtx);
    nng_socket s = req_dial(f->ipc_url);
    nng_ctx ctx;
    assert_int_equal(nng_ctx_open(&ctx, s), 0);
    nng_msg *r = roundtrip(ctx, "ping", 4);
    assert_non_null(r);
    nng_msg_free(r);
    nng_close(s);

    /* Held while the endpoint closes: stop() replies after the close began. */
    uv_mutex_lock(&f->mtx);
    f->mode = MODE_HOLD;
    uv_mutex_unlock(&f->mtx);
    int fd = raw_connect(f, false);
    handshake(fd);
    uint8_t out[64];
    static const uint8_t msg[] = {0x80, 0, 0, 2, 'w'};
    write_all(fd, out, frame(false, out, msg, sizeof(msg)));
    WAIT_UNTIL(f, f->nheld == 1);
    run_on_loop(f, close_task, NULL);
    expect_eof(fd);
    close(fd);
    /* The owed request holds memory, not a handle: the loop ends; the reply (from this thread,
     * the only one left) frees the rest. */
    uv_thread_join(&f->thread);
    reply_held_task(f, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_cond_destroy(&f->cond);
    uv_mutex_destroy(&f->mtx);
    rmdir(f->dir);
    free(f);
}

/* Beyond max_clients a connection has its requests answered with the refusal and is closed
 * refuse_linger_ms later; it is counted as refused, not as a client. */
static void
test_max_clients(void **state)
{
    (void)state;
    fixture *f = start(2, 10000);
    nng_socket s[2];
    for (int i = 0; i < 2; i++) {
        s[i] = req_dial(i == 0 ? f->tcp_url : f->ipc_url);
        nng_ctx ctx;
        assert_int_equal(nng_ctx_open(&ctx, s[i]), 0);
        nng_msg *r = roundtrip(ctx, "ping", 4);
        assert_non_null(r);
        assert_int_equal(nng_msg_len(r), 4);
        nng_msg_free(r);
        nng_ctx_close(ctx);
    }
    assert_int_equal(atomic_load(&f->clients), 2);
    for (int ipc = 0; ipc < 2; ipc++) {
        int fd = raw_connect(f, ipc);
        handshake(fd);
        uint8_t out[64], got[64];
        static const uint8_t msg[] = {0x80, 0, 0, 9, 'p'};
        write_all(fd, out, frame(ipc, out, msg, sizeof(msg)));
        size_t n = read_frame(fd, ipc, got, sizeof(got));
        assert_int_equal(n, 4 + strlen("{\"refused\":true}"));
        assert_memory_equal(got, msg, 4);
        assert_memory_equal(got + 4, "{\"refused\":true}", n - 4);
        expect_eof(fd);
        close(fd);
    }
    WAIT_UNTIL(f, f->closed == 2);
    assert_int_equal(atomic_load(&f->clients), 2);
    uv_mutex_lock(&f->mtx);
    assert_int_equal(f->requests, 2);
    uv_mutex_unlock(&f->mtx);
    nng_close(s[0]);
    WAIT_UNTIL(f, f->closed == 3);
    assert_int_equal(atomic_load(&f->clients), 1);
    nng_socket t = req_dial(f->tcp_url);
    nng_ctx ctx;
    assert_int_equal(nng_ctx_open(&ctx, t), 0);
    nng_msg *r = roundtrip(ctx, "again", 5);
    assert_non_null(r);
    assert_memory_equal(nng_msg_body(r), "again", 5);
    nng_msg_free(r);
    nng_close(t);
    nng_close(s[1]);
    WAIT_UNTIL(f, f->closed == 5);
    assert_int_equal(atomic_load(&f->clients), 0);
    stop(f);
}

static void
emfile_task(fixture *f, void *arg)
{
    (void)arg;
    sp__accept_failed(f->sp, UV_EMFILE);
}

/* connects: whether a connection to the fixture's tcp:// (ipc://) listener is accepted by the
 * kernel. */
static bool
connects(fixture *f, bool ipc)
{
    int fd;
    int rv;
    if (ipc) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->ipc_url + 6);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(strrchr(f->tcp_url, ':') + 1)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    close(fd);
    return rv == 0;
}

/* An accept that fails for want of descriptors (libuv reports EMFILE when even its reserve
 * descriptor is gone, and calls again at once while it lasts) closes the listeners instead of
 * spinning; they listen again after a backoff and serve as before. */
static void
test_accept_backoff(void **state)
{
    (void)state;
    fixture *f = start(100, 10000);
    run_on_loop(f, emfile_task, NULL);
    assert_false(connects(f, false)); /* nobody listens now */
    assert_false(connects(f, true));
    uint64_t until = uv_hrtime() + DEADLINE_NS;
    while (!connects(f, false) || !connects(f, true)) {
        assert_true(uv_hrtime() < until);
        usleep(20000);
    }
    for (int ipc = 0; ipc < 2; ipc++) {
        nng_socket s = req_dial(ipc ? f->ipc_url : f->tcp_url);
        nng_ctx ctx;
        assert_int_equal(nng_ctx_open(&ctx, s), 0);
        nng_msg *r = roundtrip(ctx, "back", 4);
        assert_non_null(r);
        assert_memory_equal(nng_msg_body(r), "back", 4);
        nng_msg_free(r);
        nng_close(s);
    }
    stop(f);
}

static void
refused_task(fixture *f, void *arg)
{
    *(uint64_t *)arg = sp_refused(f->sp);
}

typedef struct listen_args {
    const char *url;
    int rv;
} listen_args;

static void
listen_task(fixture *f, void *arg)
{
    listen_args *a = arg;
    a->rv = sp_listen(f->sp, a->url);
}

/* ipc://: a stale socket file (nobody accepts on it) is replaced; a live one is in use; forms
 * the endpoint does not serve are left to nng. */
static void
test_ipc_files_and_urls(void **state)
{
    (void)state;
    fixture *f = start(100, 10000);
    uint64_t refused = 1;
    run_on_loop(f, refused_task, &refused);
    assert_int_equal(refused, 0);
    char path[100];
    snprintf(path, sizeof(path), "%.80s/stale.sock", f->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* the file stays; nobody answers on it */
    char url[200];
    snprintf(url, sizeof(url), "ipc://%s", path);
    listen_args a = {.url = url};
    run_on_loop(f, listen_task, &a);
    assert_int_equal(a.rv, 0);
    a.url = f->ipc_url; /* live: ours */
    run_on_loop(f, listen_task, &a);
    assert_int_equal(a.rv, UV_EADDRINUSE);
    a.url = f->tcp_url;
    run_on_loop(f, listen_task, &a);
    assert_int_equal(a.rv, UV_EADDRINUSE);
    static const char *not_native[] = {"ws://127.0.0.1:1234",
                                       "tls+tcp://127.0.0.1:1234",
                                       "tcp://127.0.0.1",
                                       "tcp://127.0.0.1:http",
                                       "tcp://127.0.0.1:70000",
                                       "tcp://no such host:1",
                                       "ipc://"};
    for (size_t i = 0; i < sizeof(not_native) / sizeof(not_native[0]); i++) {
        a.url = not_native[i];
        run_on_loop(f, listen_task, &a);
        assert_int_equal(a.rv, SP_NOT_NATIVE);
    }
    /* A host name and every address (empty or *), each on a port of its own. A port free on
     * 127.0.0.1 a moment ago may be taken meanwhile, or be in use on another address (another
     * test's connection): another port is tried then. */
    static const char *const hosts[3] = {"localhost", "*", ""};
    char named[3][64];
    for (int i = 0; i < 3; i++) {
        for (int try = 0; try < 20; try++) {
            snprintf(named[i], sizeof(named[i]), "tcp://%s:%d", hosts[i], free_port());
            a.url = named[i];
            run_on_loop(f, listen_task, &a);
            if (a.rv != UV_EADDRINUSE) {
                break;
            }
        }
        assert_int_equal(a.rv, 0);
    }
    char any[64];
    snprintf(any, sizeof(any), "tcp://127.0.0.1%s", strrchr(named[1], ':'));
    nng_socket n = req_dial(any);
    nng_ctx nctx;
    assert_int_equal(nng_ctx_open(&nctx, n), 0);
    nng_msg *nr = roundtrip(nctx, "any", 3);
    assert_non_null(nr);
    nng_msg_free(nr);
    nng_close(n);
    nng_socket s = req_dial(url);
    nng_ctx ctx;
    assert_int_equal(nng_ctx_open(&ctx, s), 0);
    nng_msg *r = roundtrip(ctx, "stale", 5);
    assert_non_null(r);
    nng_msg_free(r);
    nng_close(s);
    stop(f);
    struct stat sb;
    assert_int_not_equal(lstat(path, &sb), 0);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_contexts_tcp),
        cmocka_unit_test(test_many_contexts_ipc),
        cmocka_unit_test(test_message_limit),
        cmocka_unit_test(test_unauthenticated_limit),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_buffer_budget),
        cmocka_unit_test(test_handshakes_refused),
        cmocka_unit_test(test_backtraces),
        cmocka_unit_test(test_unread_replies_bounded_tcp),
        cmocka_unit_test(test_unread_replies_bounded_ipc),
        cmocka_unit_test(test_reply_after_close),
        cmocka_unit_test(test_max_clients),
        cmocka_unit_test(test_ipc_files_and_urls),
        cmocka_unit_test(test_accept_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
