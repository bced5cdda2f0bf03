/* dispatch.c: the intake's callback: decodes a request, applies its op's flags and calls its
 * handler (the op table is proto/ops.h). */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>

#include "call.h"
#include "handlers.h"
#include "hold.h"

typedef void (*op_handler)(call *c);

static const op_handler handlers[] = {
#define X(NAME, name, fields, flags) [REQ_##NAME] = op_##name,
    JOBQ_OPS(X)
#undef X
};
_Static_assert(sizeof(handlers) / sizeof(handlers[0]) == REQ_NOPS, "a handler for every op");

/* checked: applies the flags of c's op (read_only: it came with read_token, so only OPF_READ
 * ops pass); false when it replied (the call is gone). */
static bool
checked(call *c, bool read_only)
{
    server *s = c->srv;
    unsigned flags = jobq__op_flags(c->req.op);
    char msg[512];
    if (read_only && !(flags & OPF_READ)) {
        snprintf(msg, sizeof(msg),
                 "the read-only token (read_token) may not %s: it serves only ping, get, wait, "
                 "logs, list, stats, explain and schedules; use auth_token",
                 jobq__op_name(c->req.op));
        reply_error(c, "forbidden", msg);
        return false;
    }
    if ((flags & OPF_NOT_DRAINING) && s->draining) {
        reply_error(c, "shutting_down",
                    "jobqd is shutting down and takes no new jobs; retry when it is back");
        return false;
    }
    if (flags & OPF_QUEUE) {
        const char *code;
        if (!jobq__valid_queue_name(c->req.queue)) {
            reply_error(c, "invalid_argument", "field \"queue\" is not a valid queue name");
            return false;
        }
        if (queue_admit(s, c->req.queue, &code, msg, sizeof(msg)) == NULL) {
            reply_error(c, code, msg);
            return false;
        }
    }
    if (flags & (OPF_HOLD_WAIT | OPF_HOLD_FETCH)) {
        hold_kind kind = (flags & OPF_HOLD_FETCH) ? HOLD_FETCH
                         : c->req.group_id != 0   ? HOLD_GROUP_WAIT
                                                  : HOLD_WAIT;
        const char *code = hold_admit(c, kind, msg, sizeof(msg));
        if (code != NULL) {
            reply_error(c, code, msg);
            return false;
        }
    }
    return true;
}

void
dispatch_request(void *arg, icall *ic, const char *body, size_t len)
{
    server *s = arg;
    call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        static const char oom[] =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        intake_reply(ic, oom, sizeof(oom) - 1);
        return;
    }
    c->srv = s;
    c->ic = ic;
    char err[512];
    if (len > s->cfg->max_message) {
        snprintf(err, sizeof(err),
                 "request of %zu bytes is over the limit of %zu bytes (max_message); split it, "
                 "e.g. into smaller batches",
                 len, s->cfg->max_message);
        reply_error(c, "too_large", err);
        return;
    }
    /* An endpoint that verified the credentials itself (an HTTP Authorization header) has
     * the body decoded without a token check; otherwise its "token" field decides. */
    intake_auth auth = intake_call_auth(ic);
    request_limits lim = s->limits;
    if (auth != INTAKE_AUTH_BODY) {
        lim.token = lim.read_token = NULL;
    }
    const char *code = jobq__request_decode(body, len, &lim, &c->req, err, sizeof(err));
    if (code != NULL) {
        reply_error(c, code, err);
        return;
    }
    if (s->cfg->auth_token != NULL) {
        intake_authenticated(ic); /* the token was checked: larger messages may follow */
    }
    if (checked(c, auth == INTAKE_AUTH_READ || c->req.read_only)) {
        handlers[c->req.op](c);
    }
}

/* dispatch_listen: the job port: every [server] listen URL, its limits and TLS. */
static int
dispatch_listen(server *s, char *err, size_t errlen)
{
    const config *cfg = s->cfg;
    s->limits.read_token = cfg->read_token;
    intake_tls tls = {.cert = cfg->tls_cert, .key = cfg->tls_key, .ca = cfg->tls_ca};
    intake_limits lim = {.max_message = cfg->max_message,
                         .max_unauthenticated_message = cfg->max_unauthenticated_message,
                         .need_auth = cfg->auth_token != NULL,
                         .max_connections = cfg->max_connections,
                         .max_buffered = cfg->max_buffered,
                         .read_timeout_ms = (uint64_t)cfg->read_timeout_ms,
                         .idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms};
    if (intake_open(&s->in, s->loop, cfg->listen, cfg->nlisten, &lim, &tls, dispatch_request, s,
                    err, errlen) != 0) {
        return -1;
    }
    intake_set_lag(s->in, &s->lag_hist);
    intake_on_conn_closed(s->in, hold_conn_closed, s);
    return 0;
}

static void
dispatch_close(server *s)
{
    if (s->in != NULL) {
        intake_close(s->in);
        s->in = NULL;
    }
}

const server_part dispatch_part = {
    .name = "dispatch", .init = dispatch_listen, .close = dispatch_close};
