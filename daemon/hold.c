/* hold.c: the one registry of held requests: slots (max_waits, max_waits_per_connection),
 * one timer per hold, the holds of each connection (dropped when it closes), and the
 * replacement of a request a REQ socket sent again. */
#include "hold.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

typedef struct hold hold;
typedef struct hconn hconn;

/* One held request. Freed with its call, or once its timer closed. */
struct hold {
    server *s;
    call *c; /* NULL once released */
    hold_kind kind;
    uint64_t conn;
    uint32_t reqid; /* 0: unknown */
    bool counted;   /* takes a slot (nheld, hc->n) */
    bool gone;      /* its connection closed or it was sent again: reply nothing */
    bool waiting;   /* in the kind's list, cb pending */
    bool timer_on;  /* timer initialised: free in its close callback */
    hold_end_cb cb;
    uv_timer_t timer;
    hconn *hc;           /* its connection's record, while linked there */
    hold *cprev, *cnext; /* in hc->first */
    hold *kprev, *knext; /* in the registry's list of waiting holds of its kind */
};

/* The holds of one connection. */
struct hconn {
    uint64_t conn;
    size_t n; /* counted holds */
    hold *first;
    hconn *next; /* hash chain */
};

typedef struct hold_registry {
    hconn **buckets;
    size_t nbuckets; /* a power of two */
    hold *kfirst[HOLD_KINDS], *klast[HOLD_KINDS];
} hold_registry;

#define HOLD_BUCKETS 1024

int
hold_init(server *s)
{
    hold_registry *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->buckets = calloc(HOLD_BUCKETS, sizeof(*r->buckets))) == NULL) {
        free(r);
        return -1;
    }
    r->nbuckets = HOLD_BUCKETS;
    s->holds = r;
    return 0;
}

static hconn **
conn_slot(hold_registry *r, uint64_t conn)
{
    hconn **pp = &r->buckets[(size_t)((conn * 0x9e3779b97f4a7c15ULL) >> 40) & (r->nbuckets - 1)];
    while (*pp != NULL && (*pp)->conn != conn) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* conn_unlink: takes h out of its connection's list (and its slot, if it has one). */
static void
conn_unlink(hold *h)
{
    hconn *hc = h->hc;
    if (hc == NULL) {
        return;
    }
    if (h->counted) {
        h->counted = false;
        h->s->nheld--;
        hc->n--;
    }
    if (h->cprev != NULL) {
        h->cprev->cnext = h->cnext;
    } else {
        hc->first = h->cnext;
    }
    if (h->cnext != NULL) {
        h->cnext->cprev = h->cprev;
    }
    h->hc = NULL;
    h->cprev = h->cnext = NULL;
    if (hc->first == NULL) {
        hconn **pp = conn_slot(h->s->holds, hc->conn);
        *pp = hc->next;
        free(hc);
    }
}

/* conn_link: adds h to its connection's list. false on out of memory. */
static bool
conn_link(hold *h)
{
    hconn **pp = conn_slot(h->s->holds, h->conn);
    if (*pp == NULL) {
        if ((*pp = calloc(1, sizeof(**pp))) == NULL) {
            return false;
        }
        (*pp)->conn = h->conn;
    }
    hconn *hc = *pp;
    h->hc = hc;
    h->cnext = hc->first;
    if (hc->first != NULL) {
        hc->first->cprev = h;
    }
    hc->first = h;
    return true;
}

static void
kind_unlink(hold *h)
{
    hold_registry *r = h->s->holds;
    if (!h->waiting) {
        return;
    }
    h->waiting = false;
    if (h->kprev != NULL) {
        h->kprev->knext = h->knext;
    } else {
        r->kfirst[h->kind] = h->knext;
    }
    if (h->knext != NULL) {
        h->knext->kprev = h->kprev;
    } else {
        r->klast[h->kind] = h->kprev;
    }
    h->kprev = h->knext = NULL;
    if (h->timer_on) {
        uv_timer_stop(&h->timer);
    }
}

/* end: h stops waiting and its kind hears why. */
static void
end(hold *h, hold_end why)
{
    kind_unlink(h);
    h->cb(h->c, why);
}

/* drop: nobody waits for h's reply any more: its slot is free now; a waiting one ends. */
static void
drop(hold *h)
{
    h->gone = true;
    conn_unlink(h);
    if (h->waiting) {
        end(h, HOLD_DROPPED);
    }
}

static hold *
hold_new(call *c, hold_kind kind)
{
    hold *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->s = c->srv;
    h->c = c;
    h->kind = kind;
    h->conn = intake_conn(c->ic);
    h->reqid = intake_request_id(c->ic);
    return h;
}

const char *
hold_admit(call *c, hold_kind kind, char *msg, size_t msglen)
{
    server *s = c->srv;
    if (c->req.timeout_ms <= 0) {
        return NULL; /* a poll: answered at once */
    }
    hold *h = hold_new(c, kind);
    if (h == NULL) {
        snprintf(msg, msglen, "out of memory");
        return "internal";
    }
    hconn **pp = conn_slot(s->holds, h->conn);
    if (*pp != NULL && h->reqid != 0) {
        for (hold *o = (*pp)->first; o != NULL; o = o->cnext) {
            if (o->reqid == h->reqid) {
                log_debug("hold_replaced", "conn=%llu request_id=%u", (unsigned long long)h->conn,
                          h->reqid);
                drop(o);
                break;
            }
        }
    }
    const char *key = NULL;
    if (s->nheld >= s->cfg->max_waits) {
        key = "max_waits";
        snprintf(msg, msglen,
                 "jobqd holds %zu waits and long-poll fetches, its limit (max_waits); retry "
                 "later, poll with \"timeout\": 0, or raise max_waits",
                 s->nheld);
    } else if ((pp = conn_slot(s->holds, h->conn), *pp != NULL) &&
               (*pp)->n >= s->cfg->max_waits_per_connection) {
        key = "max_waits_per_connection";
        snprintf(msg, msglen,
                 "this connection holds %zu waits and long-poll fetches, the limit for one "
                 "connection (max_waits_per_connection); retry later, poll with \"timeout\": 0, "
                 "use another connection, or raise max_waits_per_connection",
                 (*pp)->n);
    }
    if (key != NULL) {
        free(h);
        return "too_many_waits";
    }
    if (!conn_link(h)) {
        free(h);
        snprintf(msg, msglen, "out of memory");
        return "internal";
    }
    h->counted = true;
    h->hc->n++;
    s->nheld++;
    c->hold = h;
    return NULL;
}

static void
timer_cb(uv_timer_t *t)
{
    hold *h = t->data;
    end(h, HOLD_TIMEOUT);
}

bool
hold_start(call *c, hold_kind kind, int64_t timeout_ms, hold_end_cb cb)
{
    hold *h = c->hold;
    if (h == NULL) {
        if ((h = hold_new(c, kind)) == NULL || !conn_link(h)) {
            free(h);
            return false;
        }
        c->hold = h;
    }
    hold_registry *r = c->srv->holds;
    h->kind = kind;
    h->cb = cb;
    h->waiting = true;
    h->kprev = r->klast[kind];
    h->knext = NULL;
    if (r->klast[kind] != NULL) {
        r->klast[kind]->knext = h;
    } else {
        r->kfirst[kind] = h;
    }
    r->klast[kind] = h;
    if (h->gone) {
        end(h, HOLD_DROPPED);
        return true;
    }
    if (timeout_ms >= 0) {
        if (!h->timer_on) {
            uv_timer_init(c->srv->loop, &h->timer);
            h->timer.data = h;
            h->timer_on = true;
        }
        uv_timer_start(&h->timer, timer_cb, (uint64_t)timeout_ms, 0);
    }
    return true;
}

void
hold_stop(call *c)
{
    if (c->hold != NULL) {
        kind_unlink(c->hold);
    }
}

bool
hold_waiting(const call *c)
{
    return c->hold != NULL && c->hold->waiting;
}

bool
hold_gone(const call *c)
{
    if (c->hold == NULL) {
        return !intake_conn_open(c->ic);
    }
    /* A held reply looks for a peer that left before its end was read: a fetch's jobs go
     * back instead of to a closed connection. */
    return c->hold->gone || !intake_conn_alive(c->ic);
}

call *
hold_next(server *s, call *prev, hold_kind kind)
{
    hold *h = prev != NULL ? prev->hold->knext : s->holds->kfirst[kind];
    return h != NULL ? h->c : NULL;
}

void
hold_conn_closed(void *arg, uint64_t conn)
{
    server *s = arg;
    size_t n = 0;
    uint64_t t0 = uv_hrtime();
    hconn **pp;
    while ((pp = conn_slot(s->holds, conn), *pp != NULL)) {
        drop((*pp)->first); /* frees the record with its last hold */
        n++;
    }
    if (n > 0) {
        log_info("holds_dropped", "conn=%llu requests=%zu reason=connection_closed us=%llu",
                 (unsigned long long)conn, n, (unsigned long long)((uv_hrtime() - t0) / 1000));
    }
}

void
hold_shutdown(server *s, hold_kind kind)
{
    while (s->holds->kfirst[kind] != NULL) {
        end(s->holds->kfirst[kind], HOLD_SHUTDOWN);
    }
}

static void
hold_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

void
hold_release(call *c)
{
    hold *h = c->hold;
    if (h == NULL) {
        return;
    }
    c->hold = NULL;
    kind_unlink(h);
    conn_unlink(h);
    h->c = NULL;
    if (h->timer_on) {
        uv_close((uv_handle_t *)&h->timer, hold_closed_cb);
    } else {
        free(h);
    }
}

void
hold_close(server *s)
{
    hold_registry *r = s->holds;
    if (r == NULL) {
        return;
    }
    for (size_t b = 0; b < r->nbuckets; b++) {
        while (r->buckets[b] != NULL) {
            hconn *hc = r->buckets[b];
            r->buckets[b] = hc->next;
            free(hc);
        }
    }
    free(r->buckets);
    free(r);
    s->holds = NULL;
}

static int
hold_part_init(server *s, char *err, size_t errlen)
{
    if (hold_init(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const server_part hold_part = {.name = "hold", .init = hold_part_init, .free = hold_close};
