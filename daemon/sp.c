/* sp.c: nng's REP wire format on tcp:// and ipc:// served on the libuv loop. Each connection
 * is a state machine (handshake, serving or refused, closing) driven by its read, write and
 * timer callbacks; a request is decoded and handed over in the read callback that completed
 * it, and its reply is written from the loop without blocking. What a connection may cost is
 * bounded here: a message over its limit is refused from its length prefix and discarded
 * unstored, messages beyond the 16 KiB read buffer share one budget (max_buffered), and the
 * timer closes a connection stalled mid-message (read_ms) or idle (idle_ms).
 *
 * Wire format (nng's tcp and ipc transports, rep0 protocol):
 *   handshake, each side: 00 'S' 'P' 00 PH PL 00 00 (protocol: REQ 0x0030, REP 0x0031)
 *   tcp:// frame: 8-byte big-endian length, then the message
 *   ipc:// frame: type byte 0x01, 8-byte big-endian length, then the message
 *   message: a backtrace of 32-bit big-endian words ending with the first whose high bit is
 *   set (the request id), then the body; the reply carries the backtrace back. */
#include "sp.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define SP_PROTO_REQ 0x0030
#define SP_PROTO_REP 0x0031
#define SP_MAX_HOPS 8     /* rep0's default NNG_OPT_MAXTTL: longer backtraces are dropped */
#define SP_READ_BUF 16384 /* a connection's read buffer, grown for a larger message */
#define SP_BACKLOG SOMAXCONN
_Static_assert(4 * SP_MAX_HOPS == SP_BACKTRACE_MAX, "one backtrace limit");
#define SP_HDR_MAX (9 + 4 * SP_MAX_HOPS) /* frame header and backtrace of a reply */
#define SP_NOTE_MS 10000 /* a kind of bad or timed-out connection is logged once per this */
#define SP_RELISTEN_MIN_MS 100  /* a listener out of descriptors listens again after this, */
#define SP_RELISTEN_MAX_MS 2000 /* doubled up to this while it fails */

typedef struct sp_conn sp_conn;
typedef struct sp_listener sp_listener;

enum conn_state {
    CONN_HANDSHAKE, /* our header is sent; the peer's is awaited until the timer fires */
    CONN_SERVING,   /* requests go to the callback */
    CONN_REFUSED,   /* over max_clients: requests get the refusal until the timer closes it */
    CONN_CLOSING,   /* handles closing; replies still owed are dropped */
};

/* What is logged about connections, each kind at most once per SP_NOTE_MS with a count. */
enum sp_note {
    NOTE_BAD_HANDSHAKE,  /* not an SP REQ header: closed (no reply is possible) */
    NOTE_BAD_FRAME,      /* an ipc frame without its type byte: closed */
    NOTE_LONG_BACKTRACE, /* more than SP_MAX_HOPS hops: the message is dropped, as rep0 does */
    NOTE_NO_REQUEST_ID,  /* a message without a request id: closed */
    NOTE_TOO_LARGE,      /* refused from its length prefix */
    NOTE_UNAUTH_LARGE,   /* the same, over the limit before authentication */
    NOTE_HANDSHAKE_TIMEOUT,
    NOTE_READ_TIMEOUT,
    NOTE_IDLE_TIMEOUT,
    NOTE_ACCEPT_FAILED,
    NOTE_COUNT
};

static const struct {
    enum log_level level;
    const char *event;
    const char *reason;
} notes[NOTE_COUNT] = {
    [NOTE_BAD_HANDSHAKE] = {LOG_WARN, "sp_malformed", "bad_handshake"},
    [NOTE_BAD_FRAME] = {LOG_WARN, "sp_malformed", "bad_frame_type"},
    [NOTE_LONG_BACKTRACE] = {LOG_WARN, "sp_malformed", "backtrace_too_long"},
    [NOTE_NO_REQUEST_ID] = {LOG_WARN, "sp_malformed", "no_request_id"},
    [NOTE_TOO_LARGE] = {LOG_WARN, "message_refused", "too_large"},
    [NOTE_UNAUTH_LARGE] = {LOG_WARN, "message_refused", "unauthenticated"},
    [NOTE_HANDSHAKE_TIMEOUT] = {LOG_INFO, "connection_timeout", "handshake"},
    [NOTE_READ_TIMEOUT] = {LOG_INFO, "connection_timeout", "read"},
    [NOTE_IDLE_TIMEOUT] = {LOG_DEBUG, "connection_timeout", "idle"},
    [NOTE_ACCEPT_FAILED] = {LOG_ERROR, "accept_failed", NULL},
};

/* sp_stream: a connection's or a listener's libuv handle, TCP or a unix socket. */
typedef union sp_stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} sp_stream;

struct sp_conn {
    sp_server *sp;
    sp_stream h;
    uv_timer_t timer; /* the handshake deadline, then a refused connection's linger */
    enum conn_state state;
    bool ipc;             /* frames carry the type byte */
    bool paused;          /* reading stopped until unsent drains */
    bool reading;         /* uv_read_start in effect */
    int open_handles;     /* of h and timer, while closing */
    unsigned refs;        /* the handles (one), each request owed a reply, a parse running */
    uint8_t hs[8];        /* the peer's handshake */
    size_t hs_got;        /* bytes of it read */
    char *buf;            /* bytes read and not yet served; NULL until the first frame */
    size_t len, cap;      /* of buf */
    size_t unsent;        /* reply bytes queued with uv_write and not yet written */
    uint64_t read_ns;     /* when the last read completed (for the lag) */
    uint64_t id;          /* this connection's number (sp_req_conn), never reused */
    bool authed;          /* may send messages up to max_recv (else max_recv_unauth) */
    bool budget_wait;     /* reading stopped until max_buffered can hold its message */
    size_t charged;       /* bytes of max_buffered it holds: cap beyond SP_READ_BUF */
    size_t need;          /* while budget_wait: the capacity its message needs */
    uint64_t skip;        /* bytes of a refused message still to discard as they arrive */
    const char *skip_reply; /* its answer once discarded (NULL: none), of skip_reply_len */
    size_t skip_reply_len;
    uint8_t skip_bt[4 * SP_MAX_HOPS]; /* its backtrace */
    uint32_t skip_nbt;
    unsigned owed;        /* requests handed over and not answered yet */
    uint64_t active_ms;   /* uv_now of its last byte read or its last reply done */
    uint64_t due_ms;      /* when the timer, while serving, fires (it then looks again) */
    sp_conn *prev, *next; /* in sp->conns */
    sp_conn *wprev, *wnext; /* in sp->waiters while budget_wait */
};

struct sp_req {
    sp_conn *conn;
    uint32_t nbt;                /* bytes of bt */
    uint8_t bt[4 * SP_MAX_HOPS]; /* the backtrace, request id last */
};

struct sp_listener {
    sp_server *sp;
    sp_stream h;
    bool ipc;
    char *url;
    char *path; /* ipc: the socket file, removed when the listener closes */
    sp_listener *next;
};

/* A listener closed because accepting failed for want of descriptors or memory: it listens
 * again from its timer. */
typedef struct sp_relisten {
    sp_server *sp;
    uv_timer_t timer;
    char *url;
    uint64_t delay_ms;
    struct sp_relisten *next;
} sp_relisten;

/* A reply's bytes that uv_try_write could not write at once (one allocation). */
typedef struct sp_write {
    uv_write_t req;
    sp_conn *conn;
    size_t len;
    char data[];
} sp_write;

struct sp_server {
    uv_loop_t *loop;
    sp_config cfg; /* cfg.refusal is sp's own copy */
    size_t refusal_len;
    sp_listener *listeners;
    sp_relisten *relistens; /* listeners waiting to listen again */
    sp_conn *conns;
    size_t alive;           /* listeners and connections not yet freed */
    size_t nrefusing;       /* connections in CONN_REFUSED */
    atomic_ullong nrefused; /* read from any thread */
    size_t unsent;          /* sum of the connections' unsent */
    hist *lag;
    uint64_t next_id; /* the last connection number given */
    size_t too_large_len, unauth_large_len; /* cfg.too_large and cfg.unauth_large are copies */
    size_t buffered;                /* sum of the connections' charged */
    sp_conn *waiters, *waiters_tail; /* connections in budget_wait, oldest first */
    bool granting;                   /* budget_grant is running */
    uint64_t note_count[NOTE_COUNT]; /* events of each kind not logged yet */
    uint64_t note_ms[NOTE_COUNT];    /* when each kind was last logged (0: never) */
    char note_detail[NOTE_COUNT][96]; /* the last event's detail, for the next line */
    bool stopped;
    bool closed;
};

static const char rep_handshake[8] = {0, 'S', 'P', 0, SP_PROTO_REP >> 8, SP_PROTO_REP & 0xff, 0, 0};

static void conn_parse(sp_conn *c);
static void conn_read_start(sp_conn *c);
static void conn_arm(sp_conn *c);
static void budget_grant(sp_server *sp);
static void listener_pause(sp_listener *l);

/* note_line: logs the pending count of kind k. */
static void
note_line(sp_server *sp, enum sp_note k)
{
    if (sp->note_count[k] == 0) {
        return;
    }
    const char *detail = sp->note_detail[k];
    if (notes[k].reason != NULL) {
        LOG_AT(notes[k].level, notes[k].event, "reason=%s count=%llu%s%s", notes[k].reason,
               (unsigned long long)sp->note_count[k], detail[0] != '\0' ? " " : "", detail);
    } else {
        LOG_AT(notes[k].level, notes[k].event, "count=%llu%s%s",
               (unsigned long long)sp->note_count[k], detail[0] != '\0' ? " " : "", detail);
    }
    sp->note_count[k] = 0;
}

/* note: one event of kind k (detail: logfmt fields of this one, may be ""). The first of a
 * kind is logged at once; later ones are counted and logged with the next event of that kind
 * SP_NOTE_MS after the last line (or at sp_stop), so a flood writes one line per interval. */
static void
note(sp_server *sp, enum sp_note k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->note_detail[k], sizeof(sp->note_detail[k]), fmt, ap);
    va_end(ap);
    sp->note_count[k]++;
    uint64_t now = uv_now(sp->loop);
    if (sp->note_ms[k] == 0 || now >= sp->note_ms[k] + SP_NOTE_MS) {
        note_line(sp, k);
        sp->note_ms[k] = now == 0 ? 1 : now;
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

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static void
emit(sp_server *sp, sp_event ev)
{
    if (sp->cfg.event_cb != NULL) {
        sp->cfg.event_cb(sp->cfg.event_arg, ev);
    }
}

/* server_release: one listener or connection less; a closed server with none left is freed. */
static void
server_release(sp_server *sp)
{
    if (--sp->alive > 0 || !sp->closed) {
        return;
    }
    free((char *)sp->cfg.refusal);
    free((char *)sp->cfg.too_large);
    free((char *)sp->cfg.unauth_large);
    free(sp);
}

static void
conn_unref(sp_conn *c)
{
    if (--c->refs > 0) {
        return;
    }
    sp_server *sp = c->sp;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        sp->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c->buf);
    free(c);
    server_release(sp);
}

static void
conn_closed_cb(uv_handle_t *h)
{
    sp_conn *c = h->data;
    if (--c->open_handles == 0) {
        emit(c->sp, SP_EV_CLOSED);
        if (c->sp->cfg.closed_cb != NULL && !c->sp->stopped) {
            c->sp->cfg.closed_cb(c->sp->cfg.event_arg, c->id);
        }
        conn_unref(c);
    }
}

/* conn_close: closes the connection (once); it is freed when its handles closed and every
 * request it still owes was answered. */
static void
conn_close(sp_conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (c->state == CONN_SERVING) {
        atomic_fetch_sub(c->sp->cfg.clients, 1);
    } else if (c->state == CONN_REFUSED) {
        c->sp->nrefusing--;
    }
    c->state = CONN_CLOSING;
    c->len = 0;
    c->skip = 0;
    sp_server *sp = c->sp;
    if (c->budget_wait) {
        c->budget_wait = false;
        if (c->wprev != NULL) {
            c->wprev->wnext = c->wnext;
        } else {
            sp->waiters = c->wnext;
        }
        if (c->wnext != NULL) {
            c->wnext->wprev = c->wprev;
        } else {
            sp->waiters_tail = c->wprev;
        }
    }
    if (c->charged > 0) {
        sp->buffered -= c->charged; /* the buffer itself is freed with the connection */
        c->charged = 0;
        budget_grant(sp);
    }
    uv_close(&c->h.handle, conn_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
}

static void
write_cb(uv_write_t *req, int status)
{
    sp_write *w = (sp_write *)req;
    sp_conn *c = w->conn;
    c->unsent -= w->len;
    c->sp->unsent -= w->len;
    free(w);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->paused && c->state != CONN_CLOSING && c->unsent <= c->sp->cfg.max_unsent / 2) {
        c->paused = false;
        emit(c->sp, SP_EV_RESUMED);
        conn_parse(c); /* frames read before the pause, then reading again */
    } else if (c->unsent == 0 && c->state == CONN_SERVING) {
        c->active_ms = uv_now(c->sp->loop);
        conn_arm(c);
    }
}

/* conn_send: writes bufs without blocking: what the socket does not take at once is copied
 * into one allocation and queued behind earlier writes. On an error the connection closes. */
static void
conn_send(sp_conn *c, const uv_buf_t *bufs, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += bufs[i].len;
    }
    int r = uv_try_write(&c->h.stream, bufs, n);
    if (r == UV_EAGAIN) {
        r = 0;
    }
    if (r < 0) {
        conn_close(c);
        return;
    }
    size_t done = (size_t)r;
    if (done == total) {
        return;
    }
    size_t rest = total - done;
    sp_write *w = malloc(sizeof(*w) + rest);
    if (w == NULL) {
        /* Part of a frame may be written already: the stream cannot go on. */
        log_error("reply_failed", "reason=out_of_memory bytes=%zu", rest);
        conn_close(c);
        return;
    }
    size_t skip = done, at = 0;
    for (unsigned i = 0; i < n; i++) {
        if (skip >= bufs[i].len) {
            skip -= bufs[i].len;
            continue;
        }
        memcpy(w->data + at, bufs[i].base + skip, bufs[i].len - skip);
        at += bufs[i].len - skip;
        skip = 0;
    }
    w->conn = c;
    w->len = rest;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    if (uv_write(&w->req, &c->h.stream, &b, 1, write_cb) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->unsent += rest;
    c->sp->unsent += rest;
}

/* conn_reply: one reply frame: the backtrace bt, then body. */
static void
conn_reply(sp_conn *c, const uint8_t *bt, size_t nbt, const char *body, size_t len)
{
    uint8_t hdr[SP_HDR_MAX];
    size_t h = 0;
    if (c->ipc) {
        hdr[h++] = 1;
    }
    put64(hdr + h, (uint64_t)(nbt + len));
    h += 8;
    memcpy(hdr + h, bt, nbt);
    h += nbt;
    uv_buf_t bufs[2] = {uv_buf_init((char *)hdr, (unsigned)h),
                        uv_buf_init((char *)body, (unsigned)len)};
    conn_send(c, bufs, len > 0 ? 2 : 1);
}

/* conn_frame: one whole message: its backtrace is split off and the request handed over (or,
 * on a refused connection, answered with the refusal). As rep0 does, a message whose
 * backtrace is longer than SP_MAX_HOPS words is dropped, and one without a request id closes
 * the connection. */
static void
conn_frame(sp_conn *c, const uint8_t *p, size_t len)
{
    sp_server *sp = c->sp;
    size_t nbt = 0;
    for (int hops = 1;; hops++) {
        if (hops > SP_MAX_HOPS) {
            note(sp, NOTE_LONG_BACKTRACE, "hops=%d", hops);
            return;
        }
        if (len - nbt < 4) {
            note(sp, NOTE_NO_REQUEST_ID, "bytes=%zu", len);
            conn_close(c);
            return;
        }
        bool end = (p[nbt] & 0x80) != 0;
        nbt += 4;
        if (end) {
            break;
        }
    }
    if (c->state == CONN_REFUSED) {
        conn_reply(c, p, nbt, sp->cfg.refusal, sp->refusal_len);
        return;
    }
    sp_req *r = malloc(sizeof(*r));
    if (r == NULL) {
        log_error("request_dropped", "reason=out_of_memory bytes=%zu", len);
        return; /* the client times out */
    }
    r->conn = c;
    r->nbt = (uint32_t)nbt;
    memcpy(r->bt, p, nbt);
    c->refs++;
    c->owed++;
    if (sp->lag != NULL) {
        hist_observe(sp->lag, HIST_SECONDS, (double)(uv_hrtime() - c->read_ns) / 1e9);
    }
    sp->cfg.cb(sp->cfg.arg, r, (const char *)p + nbt, len - nbt);
}

/* conn_refuse: a message of mlen bytes over the connection's limit, of which avail bytes
 * are read (at p): once its backtrace is read, the rest of it is to be skipped (discarded as
 * it arrives, never stored) and then answered: too_large, the reply for an unauthenticated
 * connection, or the refusal of a refused connection. The answer waits for the whole message,
 * as a REQ peer expects it after its send (nng 1.5's REQ socket may hang in nng_close when the
 * reply comes while it still sends). Returns true when done (c->skip set), false when more
 * bytes are needed (at most 4 * SP_MAX_HOPS). A backtrace over SP_MAX_HOPS words is dropped
 * unanswered. */
static bool
conn_refuse(sp_conn *c, const uint8_t *p, size_t avail, uint64_t mlen)
{
    sp_server *sp = c->sp;
    size_t nbt = 0;
    bool end = false;
    while (!end && nbt < 4 * SP_MAX_HOPS) {
        if (avail < nbt + 4) {
            return false;
        }
        end = (p[nbt] & 0x80) != 0;
        nbt += 4;
    }
    c->skip = mlen;
    c->skip_reply = NULL;
    if (!end) {
        note(sp, NOTE_LONG_BACKTRACE, "hops=%d", SP_MAX_HOPS + 1);
        return true;
    }
    memcpy(c->skip_bt, p, nbt);
    c->skip_nbt = (uint32_t)nbt;
    if (c->state == CONN_REFUSED) {
        c->skip_reply = sp->cfg.refusal;
        c->skip_reply_len = sp->refusal_len;
    } else if (c->authed) {
        note(sp, NOTE_TOO_LARGE, "bytes=%llu max=%zu", (unsigned long long)mlen, sp->cfg.max_recv);
        c->skip_reply = sp->cfg.too_large;
        c->skip_reply_len = sp->too_large_len;
    } else {
        note(sp, NOTE_UNAUTH_LARGE, "bytes=%llu max=%zu", (unsigned long long)mlen,
             sp->cfg.max_recv_unauth);
        c->skip_reply = sp->cfg.unauth_large;
        c->skip_reply_len = sp->unauth_large_len;
    }
    return true;
}

/* conn_resize: the read buffer's capacity becomes cap (at least c->len), charged to (or given
 * back to) max_buffered beyond SP_READ_BUF; cap 0 frees it. Returns false on out of memory
 * (nothing changed). */
static bool
conn_resize(sp_conn *c, size_t cap)
{
    sp_server *sp = c->sp;
    if (cap == 0) {
        free(c->buf);
        c->buf = NULL;
    } else {
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            return false;
        }
        c->buf = b;
    }
    c->cap = cap;
    size_t charge = cap > SP_READ_BUF ? cap - SP_READ_BUF : 0;
    sp->buffered = sp->buffered - c->charged + charge;
    c->charged = charge;
    return true;
}

/* budget_fits: whether max_buffered can take a connection's buffer growing to need bytes. An
 * empty budget takes any message, so that one always makes progress. */
static bool
budget_fits(const sp_conn *c, size_t need)
{
    const sp_server *sp = c->sp;
    size_t more = need - SP_READ_BUF - c->charged;
    return sp->buffered == 0 || sp->buffered + more <= sp->cfg.max_buffered;
}

/* budget_grant: the connections waiting for max_buffered, oldest first, get their buffer while
 * it fits; each then reads again. */
static void
budget_grant(sp_server *sp)
{
    if (sp->granting) {
        return;
    }
    sp->granting = true;
    while (sp->waiters != NULL && budget_fits(sp->waiters, sp->waiters->need)) {
        sp_conn *c = sp->waiters;
        sp->waiters = c->wnext;
        if (sp->waiters != NULL) {
            sp->waiters->wprev = NULL;
        } else {
            sp->waiters_tail = NULL;
        }
        c->wnext = c->wprev = NULL;
        c->budget_wait = false;
        c->active_ms = uv_now(sp->loop); /* its read_ms counts from now */
        if (!conn_resize(c, c->need)) {
            log_error("request_dropped", "reason=out_of_memory bytes=%zu", c->need);
            conn_close(c);
            continue;
        }
        if (!c->paused && !c->reading) {
            conn_read_start(c);
        }
    }
    sp->granting = false;
}

/* conn_parse: serves the whole frames in the buffer in order, until a frame is incomplete
 * (the buffer then grows to hold it, within max_buffered, else the connection waits for the
 * budget), the connection owes more than max_unsent reply bytes (reading stops), or it
 * closes. A frame over the connection's limit is refused from its length prefix (conn_refuse)
 * and its body skipped. Reads again when it is not paused. */
static void
conn_parse(sp_conn *c)
{
    sp_server *sp = c->sp;
    size_t hlen = c->ipc ? 9 : 8;
    size_t off = 0;
    /* What the buffer must hold: the frame being read, when it is larger than usual. */
    size_t need = 0;
    c->refs++; /* the callbacks may close the connection */
    while (c->state == CONN_SERVING || c->state == CONN_REFUSED) {
        if (c->skip > 0) {
            size_t take = c->len - off < c->skip ? c->len - off : (size_t)c->skip;
            off += take;
            c->skip -= take;
            if (c->skip > 0) {
                break;
            }
            if (c->skip_reply != NULL) {
                conn_reply(c, c->skip_bt, c->skip_nbt, c->skip_reply, c->skip_reply_len);
                c->skip_reply = NULL;
            }
            continue;
        }
        if (c->unsent > sp->cfg.max_unsent) {
            if (!c->paused) {
                c->paused = true;
                c->reading = false;
                uv_read_stop(&c->h.stream);
                emit(sp, SP_EV_PAUSED);
            }
            break;
        }
        size_t avail = c->len - off;
        if (avail < hlen) {
            break;
        }
        const uint8_t *p = (const uint8_t *)c->buf + off;
        if (c->ipc && p[0] != 1) {
            note(sp, NOTE_BAD_FRAME, "type=%u", p[0]);
            conn_close(c);
            break;
        }
        uint64_t mlen = get64(p + hlen - 8);
        if (mlen > (c->authed ? sp->cfg.max_recv : sp->cfg.max_recv_unauth)) {
            if (!conn_refuse(c, p + hlen, avail - hlen, mlen)) {
                break;
            }
            off += hlen;
            continue;
        }
        if (avail - hlen < mlen) {
            need = hlen + (size_t)mlen;
            break;
        }
        off += hlen + (size_t)mlen;
        conn_frame(c, p + hlen, (size_t)mlen);
    }
    if (c->state != CONN_CLOSING) {
        size_t rest = c->len - off;
        if (off > 0 && rest > 0) {
            memmove(c->buf, c->buf + off, rest);
        }
        c->len = rest;
        if (need > c->cap && need > SP_READ_BUF) {
            if (budget_fits(c, need) && sp->waiters == NULL) {
                if (!conn_resize(c, need)) {
                    log_error("request_dropped", "reason=out_of_memory bytes=%zu", need);
                    conn_close(c);
                }
            } else if (!c->budget_wait) {
                /* max_buffered is taken: stop reading until it frees (or read_ms passes). */
                c->budget_wait = true;
                c->need = need;
                c->reading = false;
                uv_read_stop(&c->h.stream);
                c->wprev = sp->waiters_tail;
                c->wnext = NULL;
                if (sp->waiters_tail != NULL) {
                    sp->waiters_tail->wnext = c;
                } else {
                    sp->waiters = c;
                }
                sp->waiters_tail = c;
            }
        } else if (rest == 0 && c->cap > 0 && !c->paused && c->skip == 0) {
            conn_resize(c, 0); /* nothing held between messages */
            budget_grant(sp);
        } else if (c->cap > SP_READ_BUF && rest <= SP_READ_BUF && need <= SP_READ_BUF) {
            conn_resize(c, SP_READ_BUF); /* a large message is served: back to the usual size */
            budget_grant(sp);
        }
        if (c->state != CONN_CLOSING && !c->paused && !c->budget_wait && !c->reading) {
            conn_read_start(c);
        }
        conn_arm(c);
    }
    conn_unref(c);
}

/* conn_deadline: when the connection, serving, is to be closed if nothing happens: read_ms
 * after its last byte while a message is unfinished (or waits for max_buffered), idle_ms
 * after its last activity while it is owed nothing and has nothing unwritten; 0: never. */
static uint64_t
conn_deadline(const sp_conn *c, enum sp_note *why)
{
    const sp_server *sp = c->sp;
    if (c->paused) {
        return 0; /* its replies wait for it to read: not idle, not stalled */
    }
    if (c->len > 0 || c->skip > 0 || c->budget_wait) {
        *why = NOTE_READ_TIMEOUT;
        return c->active_ms + sp->cfg.read_ms;
    }
    if (c->owed == 0 && c->unsent == 0 && sp->cfg.idle_ms > 0) {
        *why = NOTE_IDLE_TIMEOUT;
        return c->active_ms + sp->cfg.idle_ms;
    }
    return 0;
}

static void
serve_timer_cb(uv_timer_t *t)
{
    sp_conn *c = t->data;
    if (c->state != CONN_SERVING) {
        return;
    }
    c->due_ms = 0;
    enum sp_note why = NOTE_READ_TIMEOUT;
    uint64_t due = conn_deadline(c, &why);
    if (due != 0 && due <= uv_now(c->sp->loop)) {
        note(c->sp, why, "");
        conn_close(c);
        return;
    }
    conn_arm(c);
}

/* conn_arm: the timer of a served connection fires at its deadline (or earlier, and then looks
 * again); restarted only when the deadline came closer, so a busy connection costs nothing. */
static void
conn_arm(sp_conn *c)
{
    if (c->state != CONN_SERVING) {
        return;
    }
    enum sp_note why;
    uint64_t due = conn_deadline(c, &why);
    if (due == 0) {
        if (c->due_ms != 0) {
            uv_timer_stop(&c->timer);
            c->due_ms = 0;
        }
        return;
    }
    if (c->due_ms != 0 && c->due_ms <= due) {
        return;
    }
    uint64_t now = uv_now(c->sp->loop);
    c->due_ms = due;
    uv_timer_start(&c->timer, serve_timer_cb, due > now ? due - now : 0, 0);
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sp_conn *c = h->data;
    if (c->state == CONN_HANDSHAKE) {
        *buf = uv_buf_init((char *)c->hs + c->hs_got, (unsigned)(sizeof(c->hs) - c->hs_got));
        return;
    }
    if (c->buf == NULL) {
        conn_resize(c, SP_READ_BUF); /* charges nothing: on failure buf stays NULL */
    }
    *buf = c->buf == NULL ? uv_buf_init(NULL, 0)
                          : uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void
linger_cb(uv_timer_t *t)
{
    conn_close(t->data);
}

/* conn_admit: the handshake is done: the connection is served, or refused when max_clients
 * connections are served already. */
static void
conn_admit(sp_conn *c)
{
    sp_server *sp = c->sp;
    uv_timer_stop(&c->timer);
    c->authed = !sp->cfg.need_auth;
    if (atomic_fetch_add(sp->cfg.clients, 1) < sp->cfg.max_clients) {
        c->state = CONN_SERVING;
        c->active_ms = uv_now(sp->loop);
        conn_arm(c);
        return;
    }
    atomic_fetch_sub(sp->cfg.clients, 1);
    c->state = CONN_REFUSED;
    atomic_fetch_add(&sp->nrefused, 1);
    if (sp->nrefusing++ == 0) { /* once per burst, not per connection */
        log_warn("connection_refused", "reason=max_connections max=%d", sp->cfg.max_clients);
    }
    uv_timer_start(&c->timer, linger_cb, sp->cfg.refuse_linger_ms, 0);
}

static void
read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    sp_conn *c = s->data;
    if (n < 0) {
        conn_close(c); /* end of stream, an error, or no memory for the buffer */
        return;
    }
    if (n == 0 || c->state == CONN_CLOSING) {
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        c->hs_got += (size_t)n;
        if (c->hs_got < sizeof(c->hs)) {
            return;
        }
        if (memcmp(c->hs, "\0SP\0", 4) != 0 || c->hs[6] != 0 || c->hs[7] != 0 ||
            ((c->hs[4] << 8) | c->hs[5]) != SP_PROTO_REQ) {
            note(c->sp, NOTE_BAD_HANDSHAKE, "peer=%02x%02x%02x%02x%02x%02x%02x%02x", c->hs[0],
                 c->hs[1], c->hs[2], c->hs[3], c->hs[4], c->hs[5], c->hs[6], c->hs[7]);
            conn_close(c);
            return;
        }
        conn_admit(c);
        return;
    }
    c->len += (size_t)n;
    c->active_ms = uv_now(c->sp->loop);
    if (c->sp->lag != NULL) {
        c->read_ns = uv_hrtime();
    }
    conn_parse(c);
}

static void
conn_read_start(sp_conn *c)
{
    c->reading = true;
    if (uv_read_start(&c->h.stream, alloc_cb, read_cb) != 0) {
        conn_close(c);
    }
}

static void
handshake_timeout_cb(uv_timer_t *t)
{
    sp_conn *c = t->data;
    if (c->state == CONN_HANDSHAKE) {
        note(c->sp, NOTE_HANDSHAKE_TIMEOUT, "ms=%llu", (unsigned long long)c->sp->cfg.handshake_ms);
        conn_close(c);
    }
}

static void
accept_cb(uv_stream_t *server, int status)
{
    sp_listener *l = server->data;
    sp_server *sp = l->sp;
    if (status < 0) {
        note(sp, NOTE_ACCEPT_FAILED, "url=%s err=\"%s\"", l->url, uv_strerror(status));
        if (status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS ||
            status == UV_ENOMEM) {
            /* libuv calls again at once, in a loop that never yields, while accept fails: stop
             * listening, and listen again later. */
            listener_pause(l);
        }
        return;
    }
    sp_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_error("accept_failed", "url=%s reason=out_of_memory", l->url);
        abort(); /* libuv holds the accepted descriptor until a handle takes it */
    }
    c->sp = sp;
    c->id = ++sp->next_id;
    c->ipc = l->ipc;
    c->refs = 1;
    c->open_handles = 2;
    c->state = CONN_HANDSHAKE;
    if (c->ipc) {
        uv_pipe_init(sp->loop, &c->h.pipe, 0);
    } else {
        uv_tcp_init(sp->loop, &c->h.tcp);
    }
    uv_timer_init(sp->loop, &c->timer);
    c->h.handle.data = c;
    c->timer.data = c;
    c->next = sp->conns;
    if (sp->conns != NULL) {
        sp->conns->prev = c;
    }
    sp->conns = c;
    sp->alive++;
    if (uv_accept(server, &c->h.stream) != 0) {
        conn_close(c);
        return;
    }
    if (!c->ipc) {
        uv_tcp_nodelay(&c->h.tcp, 1);
    }
    uv_buf_t b = uv_buf_init((char *)rep_handshake, sizeof(rep_handshake));
    conn_send(c, &b, 1);
    if (c->state == CONN_CLOSING) {
        return;
    }
    uv_timer_start(&c->timer, handshake_timeout_cb, sp->cfg.handshake_ms, 0);
    conn_read_start(c);
}

int
sp_open(sp_server **spp, uv_loop_t *loop, const sp_config *cfg)
{
    sp_server *sp = calloc(1, sizeof(*sp));
    char *refusal = strdup(cfg->refusal != NULL ? cfg->refusal : "");
    char *too_large = strdup(cfg->too_large != NULL ? cfg->too_large : "");
    char *unauth_large = strdup(cfg->unauth_large != NULL ? cfg->unauth_large : "");
    if (sp == NULL || refusal == NULL || too_large == NULL || unauth_large == NULL) {
        free(sp);
        free(refusal);
        free(too_large);
        free(unauth_large);
        return -1;
    }
    sp->loop = loop;
    sp->cfg = *cfg;
    sp->cfg.refusal = refusal;
    sp->refusal_len = strlen(refusal);
    sp->cfg.too_large = too_large;
    sp->too_large_len = strlen(too_large);
    sp->cfg.unauth_large = unauth_large;
    sp->unauth_large_len = strlen(unauth_large);
    if (!sp->cfg.need_auth || sp->cfg.max_recv_unauth > sp->cfg.max_recv) {
        sp->cfg.max_recv_unauth = sp->cfg.max_recv;
    }
    *spp = sp;
    return 0;
}

/* parse_tcp: the address of a tcp://HOST:PORT URL as nng's listener resolves it (the first
 * IPv4 or IPv6 address; no host or * for every address). Returns 0, or SP_NOT_NATIVE for a
 * form left to nng (its error messages then describe a bad URL). */
static int
parse_tcp(const char *hostport, struct sockaddr_storage *ss)
{
    char host[256];
    const char *port;
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - hostport - 1) >= sizeof(host)) {
            return SP_NOT_NATIVE;
        }
        memcpy(host, hostport + 1, (size_t)(end - hostport - 1));
        host[end - hostport - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(hostport, ':');
        if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
            return SP_NOT_NATIVE;
        }
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        port = colon + 1;
        if (strchr(host, ':') != NULL) {
            return SP_NOT_NATIVE;
        }
    }
    for (const char *h = host; *h != '\0'; h++) {
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '.' || *h == '-' || *h == '_' || *h == ':' || *h == '*')) {
            return SP_NOT_NATIVE;
        }
    }
    unsigned long pnum = 0;
    if (*port == '\0' || strlen(port) > 5) {
        return SP_NOT_NATIVE;
    }
    for (const char *q = port; *q != '\0'; q++) {
        if (*q < '0' || *q > '9') {
            return SP_NOT_NATIVE;
        }
        pnum = pnum * 10 + (unsigned long)(*q - '0');
    }
    if (pnum == 0 || pnum > 65535) {
        return SP_NOT_NATIVE;
    }
    struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL;
    bool any = host[0] == '\0' || strcmp(host, "*") == 0;
    if (getaddrinfo(any ? NULL : host, port, &hints, &res) != 0) {
        return SP_NOT_NATIVE;
    }
    int rv = SP_NOT_NATIVE;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
            memset(ss, 0, sizeof(*ss));
            memcpy(ss, a->ai_addr, a->ai_addrlen);
            rv = 0;
            break;
        }
    }
    freeaddrinfo(res);
    return rv;
}

/* remove_stale: as nng does before binding again: a socket file nobody accepts on is removed. */
static void
remove_stale(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 && errno == ECONNREFUSED) {
        unlink(path);
    }
    close(fd);
}

/* bind_ipc: a listening unix socket at path (a stale one replaced). Returns the descriptor,
 * or a negative libuv error. */
static int
bind_ipc(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int rv = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    if (rv != 0 && (errno == EADDRINUSE || errno == EEXIST)) {
        remove_stale(path);
        rv = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    }
    if (rv != 0) {
        rv = -errno;
        close(fd);
        return rv == -EEXIST ? UV_EADDRINUSE : rv;
    }
    if (listen(fd, SP_BACKLOG) != 0) {
        rv = -errno;
        unlink(path);
        close(fd);
        return rv;
    }
    return fd;
}

static void
listener_closed_cb(uv_handle_t *h)
{
    sp_listener *l = h->data;
    sp_server *sp = l->sp;
    free(l->url);
    free(l->path);
    free(l);
    server_release(sp);
}

/* listener_close: stops accepting; the socket file of an ipc:// listener is removed before
 * its descriptor closes (so another listener's file is never the one removed). */
static void
listener_close(sp_listener *l)
{
    if (l->path != NULL) {
        unlink(l->path);
    }
    uv_close(&l->h.handle, listener_closed_cb);
}

static void
relisten_closed_cb(uv_handle_t *h)
{
    sp_relisten *r = h->data;
    sp_server *sp = r->sp;
    free(r->url);
    free(r);
    server_release(sp);
}

/* relisten_drop: r leaves sp->relistens and is freed once its timer closed. */
static void
relisten_drop(sp_relisten *r)
{
    for (sp_relisten **pp = &r->sp->relistens; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&r->timer, relisten_closed_cb);
}

static void
relisten_cb(uv_timer_t *t)
{
    sp_relisten *r = t->data;
    int rv = sp_listen(r->sp, r->url);
    if (rv == 0) {
        log_info("listen_resumed", "url=%s", r->url);
        relisten_drop(r);
        return;
    }
    note(r->sp, NOTE_ACCEPT_FAILED, "url=%s err=\"%s\"", r->url,
         rv == SP_NOT_NATIVE ? "cannot listen again" : uv_strerror(rv));
    r->delay_ms = r->delay_ms * 2 < SP_RELISTEN_MAX_MS ? r->delay_ms * 2 : SP_RELISTEN_MAX_MS;
    uv_timer_start(&r->timer, relisten_cb, r->delay_ms, 0);
}

/* listener_pause: closes l and listens on its URL again SP_RELISTEN_MIN_MS later (backing off
 * while that fails). Pending connections wait in the kernel's backlog, or are refused while
 * nobody listens. */
static void
listener_pause(sp_listener *l)
{
    sp_server *sp = l->sp;
    for (sp_listener **pp = &sp->listeners; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    sp_relisten *r = calloc(1, sizeof(*r));
    char *url = strdup(l->url);
    listener_close(l);
    if (r == NULL || url == NULL) {
        free(r);
        free(url);
        log_error("accept_failed", "url=%s reason=out_of_memory listening=no", l->url);
        return;
    }
    r->sp = sp;
    r->url = url;
    r->delay_ms = SP_RELISTEN_MIN_MS;
    uv_timer_init(sp->loop, &r->timer);
    r->timer.data = r;
    sp->alive++;
    r->next = sp->relistens;
    sp->relistens = r;
    uv_timer_start(&r->timer, relisten_cb, r->delay_ms, 0);
}

void
sp__accept_failed(sp_server *sp, int status)
{
    sp_listener *l = sp->listeners;
    while (l != NULL) {
        sp_listener *next = l->next;
        accept_cb(&l->h.stream, status);
        l = next;
    }
}

int
sp_listen(sp_server *sp, const char *url)
{
    bool ipc = strncmp(url, "ipc://", 6) == 0;
    struct sockaddr_storage ss;
    if (ipc) {
        size_t plen = strlen(url + 6);
        if (plen == 0 || plen >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            return SP_NOT_NATIVE;
        }
    } else if (strncmp(url, "tcp://", 6) != 0 || parse_tcp(url + 6, &ss) != 0) {
        return SP_NOT_NATIVE;
    }
    if (sp->stopped) {
        return UV_EINVAL;
    }
    sp_listener *l = calloc(1, sizeof(*l));
    char *path = ipc ? strdup(url + 6) : NULL;
    if (l == NULL || (l->url = strdup(url)) == NULL || (ipc && path == NULL)) {
        if (l != NULL) {
            free(l->url);
        }
        free(l);
        free(path);
        return UV_ENOMEM;
    }
    l->sp = sp;
    l->ipc = ipc;
    int rv;
    if (ipc) {
        uv_pipe_init(sp->loop, &l->h.pipe, 0);
        int fd = bind_ipc(path);
        rv = fd < 0 ? fd : uv_pipe_open(&l->h.pipe, fd);
        if (fd >= 0 && rv != 0) {
            unlink(path);
            close(fd);
        }
        if (rv == 0) {
            l->path = path; /* ours now: removed at close */
        } else {
            free(path);
        }
    } else {
        uv_tcp_init(sp->loop, &l->h.tcp);
        rv = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss, 0);
    }
    l->h.handle.data = l;
    sp->alive++;
    if (rv == 0) {
        rv = uv_listen(&l->h.stream, SP_BACKLOG, accept_cb);
    }
    if (rv != 0) {
        listener_close(l);
        return rv;
    }
    l->next = sp->listeners;
    sp->listeners = l;
    return 0;
}

void
sp_reply(sp_req *r, const char *body, size_t len)
{
    sp_conn *c = r->conn;
    c->owed--;
    if (c->state == CONN_SERVING) {
        conn_reply(c, r->bt, r->nbt, body, len);
        if (c->owed == 0 && c->state == CONN_SERVING) {
            c->active_ms = uv_now(c->sp->loop);
            conn_arm(c);
        }
    }
    free(r);
    conn_unref(c);
}

void
sp_drop(sp_req *r)
{
    sp_conn *c = r->conn;
    free(r);
    conn_unref(c);
}

uint64_t
sp_req_conn(const sp_req *r)
{
    return r->conn->id;
}

uint32_t
sp_req_id(const sp_req *r)
{
    const uint8_t *p = r->bt + r->nbt - 4;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool
sp_req_open(const sp_req *r)
{
    return r->conn->state == CONN_SERVING;
}

bool
sp_req_alive(sp_req *r)
{
    sp_conn *c = r->conn;
    if (c->state != CONN_SERVING) {
        return false;
    }
    /* The loop may not have read the peer's end yet (it was read in a later turn than the
     * request): look for it now, so that jobs are not handed to a connection already gone. */
    uv_os_fd_t fd;
    char b;
    if (uv_fileno(&c->h.handle, &fd) == 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        conn_close(c);
        return false;
    }
    return true;
}

void
sp_authenticated(sp_req *r)
{
    r->conn->authed = true;
}

size_t
sp_buffered(const sp_server *sp)
{
    return sp->buffered;
}

void
sp_set_lag(sp_server *sp, hist *lag)
{
    sp->lag = lag;
}

uint64_t
sp_refused(const sp_server *sp)
{
    return atomic_load(&sp->nrefused);
}

size_t
sp_unsent(const sp_server *sp)
{
    return sp->unsent;
}

void
sp_stop(sp_server *sp)
{
    if (sp == NULL || sp->stopped) {
        return;
    }
    sp->stopped = true;
    for (int k = 0; k < NOTE_COUNT; k++) {
        note_line(sp, (enum sp_note)k);
    }
    while (sp->listeners != NULL) {
        sp_listener *l = sp->listeners;
        sp->listeners = l->next;
        listener_close(l);
    }
    while (sp->relistens != NULL) {
        relisten_drop(sp->relistens);
    }
    for (sp_conn *c = sp->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
}

void
sp_close(sp_server *sp)
{
    if (sp == NULL) {
        return;
    }
    sp_stop(sp);
    sp->closed = true;
    sp->alive++;
    server_release(sp); /* frees it now when nothing is left */
}
