/* httpapi.c: the HTTP API: POST /v1/ops takes the JSON request of the job port and answers its
 * JSON reply, as an endpoint of the icall interface (dispatch.c, call.c and hold.c serve it as
 * they serve the job port's); one table from error codes to HTTP statuses; Authorization. */
#include "httpapi.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatch.h"
#include "hold.h"
#include "intake.h"
#include "log.h"
#include "request.h"

/* The embedded files (cmake/embed.cmake): the dashboard and docs/openapi.yaml. */
extern const struct {
    const char *name;
    const char *data;
    size_t len;
} jobq_assets[];

/* The HTTP status of each error code of proto/PROTOCOL.md; a reply with "ok": true is 200. */
static const struct {
    const char *code;
    int status;
} statuses[] = {
    {"malformed", 400},            {"unknown_op", 400},
    {"invalid_argument", 400},     {"unauthorized", 401},
    {"forbidden", 403},            {"not_found", 404},
    {"unknown_queue", 404},        {"invalid_state", 409},
    {"key_conflict", 409},         {"lease_expired", 409},
    {"too_large", 413},            {"payload_too_large", 413},
    {"batch_too_large", 413},      {"too_many_waits", 429},
    {"too_many_connections", 429}, {"queue_full", 429},
    {"too_many_queues", 429},      {"store_error", 500},
    {"internal", 500},             {"shutting_down", 503},
    {"store_unavailable", 503},
    {"store_full", 507},
};

int
httpapi_status(const char *code)
{
    for (size_t i = 0; code != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(statuses[i].code, code) == 0) {
            return statuses[i].status;
        }
    }
    return 500;
}

/* ---- Authorization ---- */

/* b64_value: the value of one base64 character, or -1. */
static int
b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* b64_decode: in (NUL-terminated, '=' padding optional) into out (NUL-terminated); false when
 * it is not base64 or does not fit. */
static bool
b64_decode(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in != '\0' && *in != '='; in++) {
        int v = b64_value(*in);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= outlen) {
                return false;
            }
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return true;
}

/* grant_token: what token grants. */
static httpapi_grant
grant_token(const config *cfg, const char *token)
{
    bool admin = jobq__token_equal(token, cfg->auth_token);
    bool reader = cfg->read_token != NULL && jobq__token_equal(token, cfg->read_token);
    return admin ? GRANT_ADMIN : reader ? GRANT_READ : GRANT_BAD;
}

httpapi_grant
httpapi_grant_of(const server *s, hcall *hc)
{
    const config *cfg = s->cfg;
    if (cfg->auth_token == NULL) {
        return GRANT_OPEN;
    }
    const char *v = http_header(hc, "Authorization");
    if (v == NULL) {
        return GRANT_NONE;
    }
    if (strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7;
        while (*v == ' ') {
            v++;
        }
        return grant_token(cfg, v);
    }
    if (strncasecmp(v, "Basic ", 6) == 0) {
        /* A browser's login: any user name, the token as the password. */
        char plain[1024];
        v += 6;
        while (*v == ' ') {
            v++;
        }
        if (!b64_decode(v, plain, sizeof(plain))) {
            return GRANT_BAD;
        }
        const char *colon = strchr(plain, ':');
        return grant_token(cfg, colon != NULL ? colon + 1 : plain);
    }
    return GRANT_BAD;
}

/* reply_json_error: answers hc {"ok":false,"error":{code,message}} with the code's status. */
static void
reply_json_error(hcall *hc, const char *code, const char *message, const char *const *headers)
{
    json_t *o = json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message",
                          message);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        http_reply(hc, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    http_reply_headers(hc, httpapi_status(code), "application/json", text, strlen(text), headers);
    free(text);
}

void
httpapi_unauthorized(hcall *hc, httpapi_grant g, bool basic)
{
    static const char *const bearer[] = {"WWW-Authenticate", "Bearer realm=\"jobq\"", NULL};
    static const char *const browser[] = {"WWW-Authenticate",
                                          "Basic realm=\"jobq\", charset=\"UTF-8\"", NULL};
    reply_json_error(hc, "unauthorized",
                     g == GRANT_NONE
                         ? "this jobqd requires a token: send Authorization: Bearer TOKEN "
                           "(auth_token, or read_token for the read-only ops)"
                         : "wrong token in the Authorization header",
                     basic ? browser : bearer);
}

/* ---- the endpoint: an icall per HTTP request ---- */

typedef struct hapi_call {
    icall base; /* first: the endpoint interface */
    hcall *hc;
} hapi_call;

/* reply_status: the HTTP status of a reply body: 200 unless it is {"ok":false,...}, whose
 * error code picks it. */
static int
reply_status(const char *body, size_t len, const char **code_out)
{
    static const char prefix[] = "{\"ok\":false";
    *code_out = NULL;
    if (len < sizeof(prefix) - 1 || memcmp(body, prefix, sizeof(prefix) - 1) != 0) {
        return 200;
    }
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *code = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    int status = httpapi_status(code);
    if (code != NULL) {
        *code_out = strcmp(code, "unauthorized") == 0 ? "unauthorized"
                    : status == 429 || status == 503 ? "retry"
                                                     : NULL;
    }
    json_decref(o);
    return status;
}

static void
hapi_reply(icall *ic, const char *body, size_t len)
{
    hapi_call *c = (hapi_call *)ic;
    static const char *const unauth[] = {"WWW-Authenticate", "Bearer realm=\"jobq\"", NULL};
    static const char *const retry[] = {"Retry-After", "1", NULL};
    const char *kind;
    int status = reply_status(body, len, &kind);
    http_reply_headers(c->hc, status, "application/json", body, len,
                       kind == NULL                        ? NULL
                       : strcmp(kind, "unauthorized") == 0 ? unauth
                                                           : retry);
    free(c);
}

static void
hapi_drop(icall *ic)
{
    hapi_call *c = (hapi_call *)ic;
    http_drop(c->hc);
    free(c);
}

static uint32_t
hapi_request_id(const icall *ic)
{
    (void)ic;
    return 0; /* one request at a time per connection: nothing is ever sent again on it */
}

static bool
hapi_conn_open(const icall *ic)
{
    return http_conn_open(((const hapi_call *)ic)->hc);
}

static bool
hapi_conn_alive(icall *ic)
{
    return http_conn_alive(((hapi_call *)ic)->hc);
}

static const icall_ops hapi_ops = {.reply = hapi_reply,
                                   .drop = hapi_drop,
                                   .request_id = hapi_request_id,
                                   .conn_open = hapi_conn_open,
                                   .conn_alive = hapi_conn_alive,
                                   .authenticated = NULL};

/* body_limit: the most body bytes a request with grant g may send. */
static size_t
body_limit(const server *s, httpapi_grant g)
{
    return g == GRANT_NONE ? s->cfg->max_unauthenticated_message : s->cfg->max_message;
}

/* refuse_size: answers a body over the limit: 413 too_large, or 401 unauthorized while the
 * token can only be in the body (the job port's max_unauthenticated_message rule). */
static void
refuse_size(const server *s, hcall *hc, httpapi_grant g)
{
    char msg[400];
    if (g == GRANT_NONE) {
        snprintf(msg, sizeof(msg),
                 "a request without an Authorization header may hold at most %zu bytes "
                 "(max_unauthenticated_message); send Authorization: Bearer TOKEN",
                 s->cfg->max_unauthenticated_message);
        static const char *const bearer[] = {"WWW-Authenticate", "Bearer realm=\"jobq\"", NULL};
        reply_json_error(hc, "unauthorized", msg, bearer);
        return;
    }
    snprintf(msg, sizeof(msg),
             "request body over the limit of %zu bytes (max_message), refused unread; split it, "
             "e.g. into smaller batches",
             s->cfg->max_message);
    reply_json_error(hc, "too_large", msg, NULL);
}

long long
httpapi_headers(server *s, hcall *hc)
{
    httpapi_grant g = httpapi_grant_of(s, hc);
    if (g == GRANT_BAD) {
        httpapi_unauthorized(hc, g, false);
        return -1;
    }
    size_t limit = body_limit(s, g);
    const char *cl = http_header(hc, "Content-Length");
    if (cl != NULL) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > limit) {
            refuse_size(s, hc, g);
            return -1;
        }
    }
    return (long long)limit;
}

void
httpapi_request(server *s, hcall *hc)
{
    httpapi_grant g = httpapi_grant_of(s, hc);
    if (g == GRANT_BAD) { /* not expected: refused at the headers */
        httpapi_unauthorized(hc, g, false);
        return;
    }
    if (http_body_over(hc)) {
        refuse_size(s, hc, g);
        return;
    }
    hapi_call *c = malloc(sizeof(*c));
    if (c == NULL) {
        reply_json_error(hc, "internal", "out of memory", NULL);
        return;
    }
    c->base.ops = &hapi_ops;
    c->base.conn = INTAKE_CONN_HTTP | http_conn(hc);
    c->base.auth = g == GRANT_ADMIN  ? INTAKE_AUTH_ADMIN
                   : g == GRANT_READ ? INTAKE_AUTH_READ
                                     : INTAKE_AUTH_BODY;
    c->hc = hc;
    size_t len;
    const char *body = http_body(hc, &len);
    dispatch_request(s, &c->base, body, len);
}

void
httpapi_conn_closed(void *arg, uint64_t conn)
{
    hold_conn_closed(arg, INTAKE_CONN_HTTP | conn);
}

void
httpapi_openapi(hcall *hc)
{
    for (size_t i = 0; jobq_assets[i].name != NULL; i++) {
        if (strcmp(jobq_assets[i].name, "openapi.yaml") == 0) {
            http_reply(hc, 200, "application/yaml; charset=utf-8", jobq_assets[i].data,
                       jobq_assets[i].len);
            return;
        }
    }
    http_reply(hc, 404, "text/plain; charset=utf-8", "no OpenAPI document\n", 20);
}
