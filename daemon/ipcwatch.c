/* ipcwatch.c: keeps ipc:// listeners accepting. nng 1.5 stops accepting on an ipc:// listener
 * for good once a peer disconnects during the SP handshake (nng issue 1518, fixed in 1.6), so
 * one local process that connects and hangs up would cut jobqd off. Each second the watch
 * connects to every ipc:// URL and sends a ping; a listener whose ping is not answered within
 * three seconds is closed and listened on again. */
#include "ipcwatch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define WATCH_PERIOD_MS 1000
/* Ticks a ping may stay unanswered before the listener counts as stuck: a loop starved of
 * CPU for a moment must not be mistaken for it. */
#define WATCH_PATIENCE 3

static const char req_handshake[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0}; /* req0 */
/* What answers the probe: nng's handshake (8 bytes), then a reply frame's type and length. */
#define ANSWER_BYTES 17

typedef struct probe {
    ipcwatch *w;
    size_t index; /* into w->urls */
    uv_pipe_t pipe;
    uv_connect_t conn;
    uv_write_t wr;
    char buf[ANSWER_BYTES];
    size_t got;
    int ticks; /* ticks since it was sent */
    bool done; /* answered (or failed): the next tick only frees it */
} probe;

struct ipcwatch {
    uv_loop_t *loop;
    intake *in;
    char **urls; /* the ipc:// URLs being watched */
    size_t n;
    probe **probes; /* the probe in flight per URL, or NULL */
    uv_timer_t timer;
    char *request; /* the handshake and a ping in one ipc frame */
    size_t request_len;
    size_t closing; /* handles whose close callback is still due */
    bool stopped;
};

/* closed: one close callback less is due; once stopped and none is, frees w. */
static void
closed(ipcwatch *w)
{
    if (--w->closing > 0 || !w->stopped) {
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        free(w->urls[i]);
    }
    free(w->urls);
    free(w->probes);
    free(w->request);
    free(w);
}

static void
probe_closed_cb(uv_handle_t *h)
{
    probe *p = h->data;
    ipcwatch *w = p->w;
    free(p);
    closed(w);
}

/* probe_end: closes the probe's connection; healthy or not, it is done. */
static void
probe_end(probe *p)
{
    p->done = true;
    if (!uv_is_closing((uv_handle_t *)&p->pipe)) {
        p->w->closing++;
        uv_close((uv_handle_t *)&p->pipe, probe_closed_cb);
    }
    if (p->w->probes[p->index] == p) {
        p->w->probes[p->index] = NULL;
    }
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    probe *p = h->data;
    (void)suggested;
    *buf = uv_buf_init(p->buf + p->got, (unsigned)(sizeof(p->buf) - p->got));
}

static void
read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    probe *p = s->data;
    (void)buf;
    if (n < 0) {
        probe_end(p); /* refused or closed: the next tick tries again */
        return;
    }
    p->got += (size_t)n;
    if (p->got == sizeof(p->buf)) {
        probe_end(p); /* the request went through nng and the loop and came back */
    }
}

static void
write_cb(uv_write_t *wr, int status)
{
    probe *p = wr->data;
    if (status < 0 && !p->done) {
        probe_end(p);
    }
}

static void
connect_cb(uv_connect_t *c, int status)
{
    probe *p = c->data;
    if (p->done) {
        return;
    }
    if (status < 0) {
        probe_end(p);
        return;
    }
    uv_buf_t b = uv_buf_init(p->w->request, (unsigned)p->w->request_len);
    p->wr.data = p;
    if (uv_write(&p->wr, (uv_stream_t *)&p->pipe, &b, 1, write_cb) != 0 ||
        uv_read_start((uv_stream_t *)&p->pipe, alloc_cb, read_cb) != 0) {
        probe_end(p);
    }
}

static void
tick_cb(uv_timer_t *t)
{
    ipcwatch *w = t->data;
    for (size_t i = 0; i < w->n; i++) {
        probe *p = w->probes[i];
        if (p != NULL && ++p->ticks < WATCH_PATIENCE) {
            continue; /* unanswered for now: a busy machine may be slow */
        }
        if (p != NULL) {
            /* WATCH_PATIENCE ticks without an answer: the listener is stuck. */
            log_warn("listener_stuck", "url=%s action=listen_again", w->urls[i]);
            probe_end(p);
            intake_relisten(w->in, w->urls[i]);
            continue;
        }
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            continue;
        }
        p->w = w;
        p->index = i;
        uv_pipe_init(w->loop, &p->pipe, 0);
        p->pipe.data = p;
        p->conn.data = p;
        w->probes[i] = p;
        uv_pipe_connect(&p->conn, &p->pipe, w->urls[i] + strlen("ipc://"), connect_cb);
    }
}

static void
timer_closed_cb(uv_handle_t *h)
{
    closed(h->data);
}

/* build_request: the handshake, then one ipc frame (type 1, 64-bit big-endian length) holding
 * a request id and {"op":"ping"} (with the token when one is required). */
static char *
build_request(const char *token, size_t *lenp)
{
    char body[600];
    int n = token != NULL
                ? snprintf(body, sizeof(body), "{\"op\":\"ping\",\"token\":\"%s\"}", token)
                : snprintf(body, sizeof(body), "{\"op\":\"ping\"}");
    if (n < 0 || (size_t)n >= sizeof(body)) {
        n = snprintf(body, sizeof(body), "{\"op\":\"ping\"}");
    }
    uint64_t frame = 4 + (uint64_t)n;
    size_t len = sizeof(req_handshake) + 9 + (size_t)frame;
    char *r = malloc(len);
    if (r == NULL) {
        return NULL;
    }
    memcpy(r, req_handshake, sizeof(req_handshake));
    char *q = r + sizeof(req_handshake);
    *q++ = 1;
    for (int i = 0; i < 8; i++) {
        *q++ = (char)(frame >> (56 - 8 * i));
    }
    static const char req_id[4] = {(char)0x80, 0, 0, 1};
    memcpy(q, req_id, 4);
    memcpy(q + 4, body, (size_t)n);
    *lenp = len;
    return r;
}

int
ipcwatch_open(ipcwatch **wp, uv_loop_t *loop, intake *in, char *const *urls, size_t nurls,
              const char *token)
{
    *wp = NULL;
    ipcwatch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -1;
    }
    w->loop = loop;
    w->in = in;
    w->urls = calloc(nurls + 1, sizeof(*w->urls));
    w->probes = calloc(nurls + 1, sizeof(*w->probes));
    w->request = build_request(token, &w->request_len);
    if (w->urls == NULL || w->probes == NULL || w->request == NULL) {
        free(w->urls);
        free(w->probes);
        free(w->request);
        free(w);
        return -1;
    }
    for (size_t i = 0; i < nurls; i++) {
        if (strncmp(urls[i], "ipc://", 6) == 0 && (w->urls[w->n] = strdup(urls[i])) != NULL) {
            w->n++;
        }
    }
    if (w->n == 0) {
        free(w->urls);
        free(w->probes);
        free(w->request);
        free(w);
        return 0; /* nothing to watch */
    }
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, tick_cb, WATCH_PERIOD_MS, WATCH_PERIOD_MS);
    uv_unref((uv_handle_t *)&w->timer); /* the watch alone does not keep the loop running */
    *wp = w;
    return 0;
}

void
ipcwatch_close(ipcwatch *w)
{
    if (w == NULL) {
        return;
    }
    w->stopped = true;
    for (size_t i = 0; i < w->n; i++) {
        if (w->probes[i] != NULL) {
            probe_end(w->probes[i]);
        }
    }
    w->closing++;
    uv_close((uv_handle_t *)&w->timer, timer_closed_cb);
}
