/* request.c: the request decoder: JSON text -> validated struct request, with precise errors. */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static const struct {
    const char *name;
    req_op op;
} ops[] = {
    {"ping", REQ_PING},
    {"submit", REQ_SUBMIT},
    {"submit_batch", REQ_SUBMIT_BATCH},
    {"get", REQ_GET},
    {"wait", REQ_WAIT},
    {"cancel", REQ_CANCEL},
    {"list", REQ_LIST},
    {"stats", REQ_STATS},
    {"pause", REQ_PAUSE},
    {"resume", REQ_RESUME},
    {"retry", REQ_RETRY},
    {"explain", REQ_EXPLAIN},
    {"fetch", REQ_FETCH},
    {"ack", REQ_ACK},
    {"fail", REQ_FAIL},
    {"heartbeat", REQ_HEARTBEAT},
    {"backup", REQ_BACKUP},
    {"schedules", REQ_SCHEDULES},
};

bool
jobq__valid_queue_name(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p != '\0'; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 64;
}

bool
jobq__token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) {
        diff |= (unsigned char)a[i < la ? i : 0] ^ (unsigned char)b[i];
    }
    return diff == 0;
}

static int
hash_cb(const char *buf, size_t size, void *data)
{
    uint64_t *h = data;
    for (size_t i = 0; i < size; i++) {
        *h ^= (unsigned char)buf[i];
        *h *= 1099511628211ULL;
    }
    return 0;
}

uint64_t
jobq__payload_hash(const json_t *v)
{
    uint64_t h = 14695981039346656037ULL;
    json_dump_callback(v, hash_cb, &h, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    return h;
}

/* The decoder's context: the first error wins. */
typedef struct dec {
    const char *code;
    char *err;
    size_t errlen;
} dec;

static bool fail(dec *d, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
fail(dec *d, const char *code, const char *fmt, ...)
{
    if (d->code == NULL) {
        d->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err, d->errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* opt_int: an optional integer field in [lo, hi]. */
static bool
opt_int(dec *d, const json_t *obj, const char *field, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (!json_is_integer(v)) {
        return fail(d, "invalid_argument", "field \"%s\" must be an integer", field);
    }
    long long i = json_integer_value(v);
    if (i < lo || i > hi) {
        return fail(d, "invalid_argument", "field \"%s\" is out of range (%lld)", field, i);
    }
    *out = i;
    return true;
}

static bool
opt_string(dec *d, const json_t *obj, const char *field, size_t maxlen, const char **out)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (!json_is_string(v)) {
        return fail(d, "invalid_argument", "field \"%s\" must be a string", field);
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > maxlen || strlen(json_string_value(v)) != n) {
        return fail(d, "invalid_argument",
                    "field \"%s\" must be a non-empty string without NUL of at most %lld bytes",
                    field, (long long)maxlen);
    }
    *out = json_string_value(v);
    return true;
}

static bool
opt_duration(dec *d, const json_t *obj, const char *field, int64_t *out)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (!jobq__json_duration(v, out)) {
        return fail(d, "invalid_argument",
                    "field \"%s\" must be a duration: integer ms or a string like \"10s\"", field);
    }
    return true;
}

static bool
need_id(dec *d, const json_t *v, const char *field, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        return fail(d, "invalid_argument", "field \"%s\" must be a positive integer job id", field);
    }
    *out = json_integer_value(v);
    return true;
}

/* decode_after: the optional "after" (ids of parent jobs) and "after_policy" of a job. */
static bool
decode_after(dec *d, const json_t *obj, const request_limits *lim, req_job *j)
{
    json_t *after = json_object_get(obj, "after");
    const char *policy = NULL;
    if (!opt_string(d, obj, "after_policy", 16, &policy)) {
        return false;
    }
    if (policy != NULL) {
        if (strcmp(policy, "always") != 0 && strcmp(policy, "success") != 0) {
            return fail(d, "invalid_argument",
                        "field \"after_policy\" must be \"success\" (the default: run only if "
                        "every parent succeeded) or \"always\"");
        }
        j->after_always = strcmp(policy, "always") == 0;
    }
    if (after == NULL || json_is_null(after)) {
        return true;
    }
    size_t n = json_array_size(after);
    if (!json_is_array(after) || n == 0) {
        return fail(d, "invalid_argument", "field \"after\" must be a non-empty array of job ids");
    }
    if (n > lim->max_after) {
        return fail(d, "too_large", "field \"after\" names at most %lld jobs",
                    (long long)lim->max_after);
    }
    j->after = calloc(n, sizeof(*j->after));
    if (j->after == NULL) {
        return fail(d, "internal", "out of memory");
    }
    j->nafter = n;
    for (size_t i = 0; i < n; i++) {
        if (!need_id(d, json_array_get(after, i), "after", &j->after[i])) {
            return false;
        }
    }
    return true;
}

/* decode_job: one submit object; default_queue is used when it names none. */
static bool
decode_job(dec *d, const json_t *obj, const char *default_queue, const request_limits *lim,
           req_job *j)
{
    long long v;
    memset(j, 0, sizeof(*j));
    if (!json_is_object(obj)) {
        return fail(d, "invalid_argument", "each job must be a JSON object");
    }
    j->queue = default_queue;
    if (!opt_string(d, obj, "queue", 64, &j->queue)) {
        return false;
    }
    if (j->queue == NULL) {
        return fail(d, "invalid_argument", "field \"%s\" is required", "queue");
    }
    if (!jobq__valid_queue_name(j->queue)) {
        return fail(d, "invalid_argument",
                    "queue name \"%s\" is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -",
                    j->queue);
    }
    v = 0;
    if (!opt_int(d, obj, "priority", INT32_MIN, INT32_MAX, &v)) {
        return false;
    }
    j->priority = (int32_t)v;
    v = 0;
    if (!opt_int(d, obj, "max_attempts", 1, 1000000, &v)) {
        return false;
    }
    j->max_attempts = (int32_t)v;
    if (!opt_duration(d, obj, "timeout", &j->timeout_ms) ||
        !opt_duration(d, obj, "delay", &j->delay_ms)) {
        return false;
    }
    /* One year at most: run_at = now + delay must not overflow, and nothing sensible waits
     * longer (the config's durations have the same bound). */
    if (j->delay_ms > JOBQ__DURATION_MAX_MS || j->timeout_ms > JOBQ__DURATION_MAX_MS) {
        return fail(d, "invalid_argument", "field \"%s\" is over the limit of one year",
                    j->delay_ms > JOBQ__DURATION_MAX_MS ? "delay" : "timeout");
    }
    if (json_object_get(obj, "timeout") != NULL && j->timeout_ms == 0) {
        return fail(d, "invalid_argument", "field \"%s\" must be greater than 0", "timeout");
    }
    json_t *at = json_object_get(obj, "run_at");
    if (at != NULL && !json_is_null(at)) {
        if (!json_is_integer(at) || json_integer_value(at) < 0) {
            return fail(d, "invalid_argument",
                        "field \"%s\" must be a time in ms since the Unix epoch", "run_at");
        }
        j->has_run_at = true;
        j->run_at_ms = json_integer_value(at);
    }
    if (!opt_string(d, obj, "key", 512, &j->key)) {
        return false;
    }
    json_t *payload = json_object_get(obj, "payload");
    if (payload == NULL) {
        payload = json_null();
    }
    j->payload = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    if (j->payload == NULL) {
        return fail(d, "internal", "out of memory encoding the payload");
    }
    if (strlen(j->payload) > lim->max_payload) {
        return fail(d, "payload_too_large",
                    "payload of %zu bytes is over the limit of %lld bytes (max_payload); keep "
                    "large data elsewhere and pass a reference to it",
                    strlen(j->payload), (long long)lim->max_payload);
    }
    if (j->key != NULL) {
        j->payload_hash = jobq__payload_hash(payload);
    }
    return decode_after(d, obj, lim, j);
}

/* decode_group: a batch's optional "group" flag and its "on_complete" job. */
static bool
decode_group(dec *d, const json_t *root, const request_limits *lim, request *req)
{
    json_t *g = json_object_get(root, "group");
    json_t *oc = json_object_get(root, "on_complete");
    if (g != NULL && !json_is_boolean(g)) {
        return fail(d, "invalid_argument", "field \"group\" must be true or false");
    }
    req->group = g != NULL && json_is_true(g);
    if (oc == NULL || json_is_null(oc)) {
        return true;
    }
    if (!req->group) {
        return fail(d, "invalid_argument", "field \"on_complete\" needs \"group\": true");
    }
    if (json_object_get(oc, "after") != NULL || json_object_get(oc, "key") != NULL) {
        return fail(d, "invalid_argument",
                    "on_complete: \"after\" and \"key\" are not allowed (it runs once, when "
                    "the group ends)");
    }
    req->on_complete = calloc(1, sizeof(*req->on_complete));
    if (req->on_complete == NULL) {
        return fail(d, "internal", "out of memory");
    }
    if (!decode_job(d, oc, NULL, lim, req->on_complete)) {
        size_t used = strlen(d->err);
        snprintf(d->err + used, d->errlen - used, " (on_complete; nothing was submitted)");
        return false;
    }
    return true;
}

/* decode_fetch: the fields of a fetch (queue or queues, max, timeout, worker) from obj: the
 * request itself, or the "fetch" object of an ack or fail. */
static bool
decode_fetch(dec *d, const json_t *obj, request *req)
{
    long long v;
    json_t *qs = json_object_get(obj, "queues");
    const char *one = NULL;
    if (!opt_string(d, obj, "queue", 64, &one) ||
        !opt_string(d, obj, "worker", 128, &req->worker)) {
        return false;
    }
    size_t n = qs != NULL ? json_array_size(qs) : one != NULL ? 1 : 0;
    if ((qs != NULL && (!json_is_array(qs) || n > 64)) || n == 0) {
        return fail(d, "invalid_argument",
                    "give \"queue\" or \"queues\", an array of 1 to 64 queue names");
    }
    req->queues = calloc(n, sizeof(*req->queues));
    if (req->queues == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->nqueues = n;
    for (size_t i = 0; i < n; i++) {
        const char *name = qs != NULL ? json_string_value(json_array_get(qs, i)) : one;
        if (name == NULL || !jobq__valid_queue_name(name)) {
            return fail(d, "invalid_argument", "queues[%zu] is not a valid queue name", i);
        }
        req->queues[i] = name;
    }
    v = 1;
    if (!opt_int(d, obj, "max", 1, 100, &v)) {
        return false;
    }
    req->limit = (int)v;
    req->timeout_ms = 30000;
    if (!opt_duration(d, obj, "timeout", &req->timeout_ms)) {
        return false;
    }
    if (req->timeout_ms > 5 * 60 * 1000) {
        return fail(d, "invalid_argument", "field \"timeout\" of a fetch is at most 5m");
    }
    return true;
}

/* opt_group: "group" (a group id) in place of "id" in get and wait. */
static bool
opt_group(dec *d, const json_t *root, request *req)
{
    json_t *g = json_object_get(root, "group");
    if (g == NULL) {
        return true;
    }
    if (json_object_get(root, "id") != NULL || json_object_get(root, "ids") != NULL) {
        return fail(d, "invalid_argument", "give either \"group\" or job ids, not both");
    }
    if (!json_is_integer(g) || json_integer_value(g) < 1) {
        return fail(d, "invalid_argument", "field \"group\" must be a positive integer group id");
    }
    req->group_id = json_integer_value(g);
    return true;
}

/* decode_stats: the optional "queues" (names to restrict the reply to) and "series". */
static bool
decode_stats(dec *d, const json_t *root, request *req)
{
    json_t *series = json_object_get(root, "series");
    if (series != NULL && !json_is_boolean(series)) {
        return fail(d, "invalid_argument", "field \"series\" must be true or false");
    }
    req->series = json_is_true(series);
    json_t *qs = json_object_get(root, "queues");
    if (qs == NULL) {
        return true;
    }
    size_t n = json_array_size(qs);
    if (!json_is_array(qs) || n > STATS_MAX_QUEUES) {
        return fail(d, "invalid_argument",
                    "field \"queues\" must be an array of at most %d queue names",
                    STATS_MAX_QUEUES);
    }
    req->queues = calloc(n ? n : 1, sizeof(*req->queues));
    if (req->queues == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->nqueues = n;
    req->stats_some = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(qs, i));
        if (name == NULL || !jobq__valid_queue_name(name)) {
            return fail(d, "invalid_argument", "queues[%zu] is not a valid queue name", i);
        }
        req->queues[i] = name;
    }
    return true;
}

static bool
decode_body(dec *d, request *req, const request_limits *lim)
{
    json_t *root = req->root;
    long long v;
    switch (req->op) {
    case REQ_PING:
    case REQ_SCHEDULES:
        return true;
    case REQ_STATS:
        return decode_stats(d, root, req);
    case REQ_SUBMIT:
        req->jobs = calloc(1, sizeof(*req->jobs));
        if (req->jobs == NULL) {
            return fail(d, "internal", "out of memory");
        }
        req->njobs = 1;
        return decode_job(d, root, NULL, lim, &req->jobs[0]);
    case REQ_SUBMIT_BATCH: {
        const char *queue = NULL;
        if (!opt_string(d, root, "queue", 64, &queue)) {
            return false;
        }
        json_t *jobs = json_object_get(root, "jobs");
        if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
            return fail(d, "invalid_argument", "field \"%s\" must be a non-empty array", "jobs");
        }
        size_t n = json_array_size(jobs);
        if (n > lim->max_batch) {
            return fail(d, "batch_too_large",
                        "a batch of %zu jobs is over the limit of %lld (max_batch); split it", n,
                        (long long)lim->max_batch);
        }
        req->jobs = calloc(n, sizeof(*req->jobs));
        if (req->jobs == NULL) {
            return fail(d, "internal", "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            req->njobs = i + 1;
            if (!decode_job(d, json_array_get(jobs, i), queue, lim, &req->jobs[i])) {
                size_t used = strlen(d->err);
                snprintf(d->err + used, d->errlen - used, " (jobs[%zu]; nothing was submitted)", i);
                return false;
            }
        }
        return decode_group(d, root, lim, req);
    }
    case REQ_RETRY:
        if (json_object_get(root, "id") == NULL) {
            /* Bulk: every job of a state, optionally of one queue. */
            const char *state = NULL;
            if (!opt_string(d, root, "queue", 64, &req->queue) ||
                !opt_string(d, root, "state", 32, &state)) {
                return false;
            }
            req->state = state != NULL ? jobq__state_parse(state) : -1;
            if (req->state != JOBQ_DEAD && req->state != JOBQ_CANCELLED) {
                return fail(d, "invalid_argument",
                            "give \"id\", or \"state\" (dead or cancelled) and optionally "
                            "\"queue\"");
            }
            return true;
        }
        /* One job: decoded as get is. */
        /* fall through */
    case REQ_GET:
        if (!opt_group(d, root, req)) {
            return false;
        }
        if (req->group_id != 0) {
            return true;
        }
        /* fall through */
    case REQ_CANCEL:
    case REQ_EXPLAIN:
        req->ids = calloc(1, sizeof(*req->ids));
        if (req->ids == NULL) {
            return fail(d, "internal", "out of memory");
        }
        req->nids = 1;
        return need_id(d, json_object_get(root, "id"), "id", &req->ids[0]);
    case REQ_WAIT: {
        json_t *id = json_object_get(root, "id");
        json_t *ids = json_object_get(root, "ids");
        size_t n = ids != NULL ? json_array_size(ids) : 1;
        if (!opt_group(d, root, req)) {
            return false;
        }
        if (req->group_id != 0) {
            n = 0;
        } else if ((id == NULL) == (ids == NULL) ||
                   (ids != NULL && (!json_is_array(ids) || n == 0))) {
            return fail(d, "invalid_argument", "give either \"id\" or a non-empty array \"ids\"");
        }
        if (n > lim->max_wait_ids) {
            return fail(d, "too_large", "a wait names at most %lld jobs",
                        (long long)lim->max_wait_ids);
        }
        req->ids = n > 0 ? calloc(n, sizeof(*req->ids)) : NULL;
        if (n > 0 && req->ids == NULL) {
            return fail(d, "internal", "out of memory");
        }
        req->nids = n;
        for (size_t i = 0; i < n; i++) {
            if (!need_id(d, ids != NULL ? json_array_get(ids, i) : id, ids ? "ids" : "id",
                         &req->ids[i])) {
                return false;
            }
        }
        req->timeout_ms = 30000;
        if (!opt_duration(d, root, "timeout", &req->timeout_ms)) {
            return false;
        }
        if (req->timeout_ms > lim->max_wait_ms) {
            return fail(d, "invalid_argument", "field \"%s\" is over the limit of %lld ms",
                        "timeout", (long long)lim->max_wait_ms);
        }
        return true;
    }
    case REQ_LIST: {
        req->state = -1;
        req->limit = 100;
        const char *state = NULL;
        if (!opt_string(d, root, "queue", 64, &req->queue) ||
            !opt_string(d, root, "state", 32, &state)) {
            return false;
        }
        if (state != NULL && (req->state = jobq__state_parse(state)) < 0) {
            return fail(d, "invalid_argument",
                        "unknown state \"%s\": use scheduled, ready, running, retrying, "
                        "succeeded, dead, cancelled or waiting",
                        state);
        }
        v = 0;
        if (!opt_int(d, root, "after", 0, INT64_MAX, &v)) {
            return false;
        }
        req->after_id = v;
        v = 100;
        if (!opt_int(d, root, "limit", 1, 1000, &v)) {
            return false;
        }
        req->limit = (int)v;
        return true;
    }
    case REQ_FETCH:
        return decode_fetch(d, root, req);
    case REQ_ACK:
    case REQ_FAIL:
    case REQ_HEARTBEAT: {
        req->ids = calloc(1, sizeof(*req->ids));
        if (req->ids == NULL) {
            return fail(d, "internal", "out of memory");
        }
        req->nids = 1;
        if (!need_id(d, json_object_get(root, "id"), "id", &req->ids[0]) ||
            !opt_string(d, root, "lease", 64, &req->lease)) {
            return false;
        }
        if (req->lease == NULL) {
            return fail(d, "invalid_argument",
                        "field \"lease\" (the token from fetch) is required");
        }
        const char *field = req->op == REQ_ACK ? "result" : "error";
        json_t *t = json_object_get(root, field);
        if (t != NULL && !json_is_null(t) && !json_is_string(t)) {
            return fail(d, "invalid_argument", "field \"%s\" must be a string", field);
        }
        req->text = json_string_value(t);
        req->retry = true;
        json_t *r = json_object_get(root, "retry");
        if (r != NULL && !json_is_boolean(r)) {
            return fail(d, "invalid_argument", "field \"retry\" must be true or false");
        }
        if (r != NULL) {
            req->retry = json_is_true(r);
        }
        json_t *f = json_object_get(root, "fetch");
        if (f == NULL || json_is_null(f) || req->op == REQ_HEARTBEAT) {
            return true;
        }
        if (!json_is_object(f)) {
            return fail(d, "invalid_argument",
                        "field \"fetch\" must be an object with the fields of a fetch");
        }
        req->then_fetch = true;
        return decode_fetch(d, f, req);
    }
    case REQ_BACKUP:
        if (!opt_string(d, root, "path", 4096, &req->path)) {
            return false;
        }
        if (req->path == NULL || req->path[0] != '/') {
            return fail(d, "invalid_argument",
                        "field \"path\" must be an absolute path on the daemon's machine");
        }
        return true;
    case REQ_PAUSE:
    case REQ_RESUME:
        if (!opt_string(d, root, "queue", 64, &req->queue)) {
            return false;
        }
        if (req->queue == NULL) {
            return fail(d, "invalid_argument", "field \"%s\" is required", "queue");
        }
        return true;
    }
    return fail(d, "unknown_op", "unknown op");
}

const char *
jobq__request_decode_json(const char *buf, size_t len, const request_limits *lim, request *req,
                          char *err, size_t errlen)
{
    dec d = {.code = NULL, .err = err, .errlen = errlen};
    json_error_t jerr;
    memset(req, 0, sizeof(*req));
    req->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req->root == NULL) {
        snprintf(err, errlen, "request is not valid JSON: %s at byte %d", jerr.text, jerr.position);
        return "malformed";
    }
    if (!json_is_object(req->root)) {
        json_decref(req->root);
        req->root = NULL;
        snprintf(err, errlen, "request must be a JSON object like {\"op\": \"ping\"}");
        return "malformed";
    }
    if (lim->token != NULL) {
        const char *token = json_string_value(json_object_get(req->root, "token"));
        if (token == NULL || !jobq__token_equal(token, lim->token)) {
            json_decref(req->root);
            req->root = NULL;
            snprintf(err, errlen, "%s",
                     token == NULL ? "this jobqd requires a token: set JOBQ_TOKEN or --token"
                                   : "wrong token");
            return "unauthorized";
        }
    }
    json_t *op = json_object_get(req->root, "op");
    const char *name = json_string_value(op);
    bool found = false;
    for (size_t i = 0; name != NULL && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            req->op = ops[i].op;
            found = true;
        }
    }
    if (!found) {
        if (name == NULL) {
            snprintf(err, errlen, "field \"op\" (a string) is required");
        } else {
            snprintf(err, errlen, "unknown op \"%.64s\"; see proto/PROTOCOL.md for the ops", name);
        }
        json_decref(req->root);
        req->root = NULL;
        return "unknown_op";
    }
    if (!decode_body(&d, req, lim)) {
        jobq__request_free(req);
        return d.code;
    }
    return NULL;
}

void
jobq__request_free(request *req)
{
    for (size_t i = 0; i < req->njobs; i++) {
        free(req->jobs[i].payload);
        free(req->jobs[i].after);
    }
    free(req->jobs);
    if (req->on_complete != NULL) {
        free(req->on_complete->payload);
        free(req->on_complete->after);
        free(req->on_complete);
    }
    free(req->ids);
    free(req->queues);
    json_decref(req->root);
    memset(req, 0, sizeof(*req));
}
