/* server.c: jobqd's life on the loop thread: the start of its parts (main.c lists them),
 * signals, and the orderly drain. Requests go to dispatch.c; what follows a job's end, to
 * waits.c. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "log.h"

static void
closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* server_check_drained: once draining and nothing is left in flight (no runner, no lease, no
 * backup, no store operation), every part closes its handles so the loop ends. */
static void
server_check_drained(server *s)
{
    if (!s->draining || s->closing || s->nrunning > 0 || s->nleases > 0 || s->backups > 0 ||
        !writer_idle(&s->w)) {
        return;
    }
    s->closing = true;
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i]->close != NULL) {
            s->parts[i]->close(s);
        }
    }
    uv_close((uv_handle_t *)&s->grace_timer, closed_cb);
    uv_close((uv_handle_t *)&s->drain_async, closed_cb);
    uv_close((uv_handle_t *)&s->sig_term, closed_cb);
    uv_close((uv_handle_t *)&s->sig_int, closed_cb);
    log_info("drained", "%s", "");
}

static void
writer_idle_cb(void *arg)
{
    server_check_drained(arg);
}

static void
drain_async_cb(uv_async_t *h)
{
    server_check_drained(h->data);
}

/* grace_cb: shutdown_grace is over: what still runs is killed and put back to ready. */
static void
grace_cb(uv_timer_t *t)
{
    server *s = t->data;
    log_warn("grace_expired", "killing=%d", s->nrunning);
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i]->grace_over != NULL) {
            s->parts[i]->grace_over(s);
        }
    }
}

void
server_drain(server *s)
{
    if (s->draining) {
        return;
    }
    s->draining = true;
    log_info("draining", "running=%d pending_requests=%zu grace_ms=%lld", s->nrunning,
             s->in ? intake_pending(s->in) : (size_t)0, (long long)s->cfg->shutdown_grace_ms);
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i]->drain != NULL) {
            s->parts[i]->drain(s);
        }
    }
    /* Armed even with nothing running: a claim in flight may still start a job. */
    uv_timer_start(&s->grace_timer, grace_cb, (uint64_t)s->cfg->shutdown_grace_ms, 0);
    server_check_drained(s); /* else server_poke_drain or the writer's idle callback does */
}

static void
signal_cb(uv_signal_t *h, int signum)
{
    server *s = h->data;
    log_info("signal", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_drain(s);
}

int
server_init(server *s, uv_loop_t *loop, config *cfg, store *st, const server_part *const *parts,
            size_t nparts, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->st = st;
    s->parts = parts;
    s->started_at_ms = jobq__now_ms();
    s->limits = (request_limits){.max_batch = cfg->max_batch,
                                 .max_wait_ids = 1000,
                                 .max_wait_ms = 3600 * 1000,
                                 .max_payload = cfg->max_payload,
                                 .max_after = 1000,
                                 .token = cfg->auth_token};
    s->rng = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32);
    writer_init(&s->w, loop, st);
    s->w.idle_cb = writer_idle_cb;
    s->w.idle_arg = s;
    s->w.hold_cb = intake_hold; /* replies wait for the fsync covering their commit */
    s->w.release_cb = intake_release;
    uv_timer_init(loop, &s->grace_timer);
    s->grace_timer.data = s;
    uv_async_init(loop, &s->drain_async, drain_async_cb);
    s->drain_async.data = s;
    for (size_t i = 0; i < nparts; i++) {
        s->nparts = i + 1; /* server_free frees what the parts so far allocated */
        if (parts[i]->init != NULL && parts[i]->init(s, err, errlen) != 0) {
            return -1;
        }
    }
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    s->sig_term.data = s;
    s->sig_int.data = s;
    uv_signal_start(&s->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&s->sig_int, signal_cb, SIGINT);
    return 0;
}

void
server_start(server *s)
{
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i]->start != NULL) {
            s->parts[i]->start(s);
        }
    }
}

void
server_free(server *s)
{
    for (size_t i = s->nparts; i-- > 0;) {
        if (s->parts[i]->free != NULL) {
            s->parts[i]->free(s);
        }
    }
}
