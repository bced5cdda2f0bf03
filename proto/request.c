/* request.c: the request decoder: JSON text -> validated struct request, with precise errors.
 * Each op's fields are described once, in a table (name, kind, range, required, default,
 * offset), and every check lives in one function per kind. Two readers use them: the JSON
 * reader (jansson) takes every request; a fast scanner takes the common simple submits
 * straight from the text, runs the same checks, and leaves anything else to the JSON reader,
 * which alone writes error messages. */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* The nesting limit PROTOCOL.md states is jansson's parser limit, which enforces it. */
#define REQUEST_MAX_DEPTH 2048
_Static_assert(JSON_PARSER_MAX_DEPTH == REQUEST_MAX_DEPTH,
               "jansson's nesting limit differs from the one proto/PROTOCOL.md documents");

#define QUEUE_NAME_MAX 64
#define FETCH_MAX_QUEUES 64
#define FETCH_MAX_MS (5 * 60 * 1000)
#define DEFAULT_TIMEOUT_MS 30000 /* wait and fetch */

/* queue_name_ok: s (n bytes) is 1-64 characters of [A-Za-z0-9_.-]. */
static bool
queue_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > QUEUE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

bool
jobq__valid_queue_name(const char *name)
{
    return queue_name_ok(name, strlen(name));
}

/* token_equal_n: a (la bytes) equals b (a C string), in time independent of where they differ. */
static bool
token_equal_n(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) {
        diff |= (unsigned char)a[i < la ? i : 0] ^ (unsigned char)b[i];
    }
    return diff == 0;
}

bool
jobq__token_equal(const char *a, const char *b)
{
    return token_equal_n(a, strlen(a), b);
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

int64_t
jobq__run_at_max_ms(void)
{
    return jobq__now_ms() + JOBQ__DURATION_MAX_MS;
}

/* field_path: the path ("jobs[2].priority", "payload.a") of the value that ends at byte pos
 * of a message that is valid JSON up to there, into out (at most outlen bytes with the NUL);
 * "(request)" for the request object itself. */
static void
field_path(const char *buf, size_t pos, char *out, size_t outlen)
{
    enum { MAX_FRAMES = 8 };
    struct frame {
        bool array;
        size_t index;
        const char *key;
        size_t keylen;
    } st[MAX_FRAMES];
    size_t depth = 0;
    bool expect_key = false;
    for (size_t i = 0; i < pos; i++) {
        char c = buf[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < pos && buf[i] != '"') {
                i += buf[i] == '\\' ? 2 : 1;
            }
            if (expect_key && depth >= 1 && depth <= MAX_FRAMES) {
                st[depth - 1].key = buf + start;
                st[depth - 1].keylen = (i < pos ? i : pos) - start;
            }
            expect_key = false;
        } else if (c == '{' || c == '[') {
            if (depth < MAX_FRAMES) {
                st[depth] = (struct frame){.array = c == '[', .key = NULL};
            }
            depth++;
            expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            depth -= depth > 0;
        } else if (c == ',' && depth >= 1 && depth <= MAX_FRAMES) {
            st[depth - 1].index++;
            expect_key = !st[depth - 1].array;
        } else if (c == ',') {
            expect_key = false;
        }
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t f = 0; f < depth && f < MAX_FRAMES && used < outlen; f++) {
        int n;
        if (st[f].array) {
            n = snprintf(out + used, outlen - used, "[%zu]", st[f].index);
        } else if (st[f].key != NULL) {
            n = snprintf(out + used, outlen - used, "%s%.*s", f > 0 ? "." : "",
                         (int)(st[f].keylen < 64 ? st[f].keylen : 64), st[f].key);
        } else {
            break;
        }
        used += n > 0 ? (size_t)n : 0;
    }
    if (out[0] == '\0') {
        snprintf(out, outlen, "(request)");
    }
}

/* load_error: the wire code and message for a message jansson did not load. A valid JSON
 * value jobq cannot hold (a number out of range, a NUL character) is an argument problem
 * naming its field; nesting past REQUEST_MAX_DEPTH is a limit; anything else is malformed. */
static const char *
load_error(const char *buf, size_t len, const json_error_t *jerr, char *err, size_t errlen)
{
    char path[160];
    size_t pos = jerr->position > 0 && (size_t)jerr->position <= len ? (size_t)jerr->position : 0;
    switch (json_error_code(jerr)) {
    case json_error_numeric_overflow: {
        size_t start = pos;
        while (start > 0 && strchr("0123456789+-.eE", buf[start - 1]) != NULL) {
            start--;
        }
        field_path(buf, start, path, sizeof(path));
        snprintf(err, errlen,
                 "field \"%s\" is out of range (%.*s): a number must fit in a signed 64-bit "
                 "integer, or in a double if it has a fraction or an exponent",
                 path, (int)(pos - start < 40 ? pos - start : 40), buf + start);
        return "invalid_argument";
    }
    case json_error_null_character:
    case json_error_null_byte_in_key:
        field_path(buf, pos, path, sizeof(path));
        snprintf(err, errlen,
                 "field \"%s\" holds a string with \\u0000: jobq takes no NUL character in any "
                 "string; encode binary data (in base64, for example)",
                 path);
        return "invalid_argument";
    case json_error_stack_overflow:
        snprintf(err, errlen,
                 "the request nests arrays and objects more than %d levels deep (the request "
                 "object counts as one)",
                 REQUEST_MAX_DEPTH);
        return "too_large";
    default:
        snprintf(err, errlen, "request is not valid JSON: %s at byte %d", jerr->text,
                 jerr->position);
        return "malformed";
    }
}

/* The decoder's context: the first error wins. With err == NULL (the fast scanner) a
 * failure only records its code: the JSON reader decodes the request again and words it. */
typedef struct dec {
    const char *code;
    char *err;
    size_t errlen;
    const request_limits *lim;
    int64_t run_at_max; /* now + one year, read once per request (0: not yet) */
    size_t batch_index; /* the batch member being decoded; NOT_IN_BATCH for any other job */
    bool read_only;     /* the token was lim->read_token: only ops flagged OPF_READ */
} dec;

#define NOT_IN_BATCH SIZE_MAX

static bool fail(dec *d, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
fail(dec *d, const char *code, const char *fmt, ...)
{
    if (d->code == NULL) {
        d->code = code;
        if (d->err != NULL) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err, d->errlen, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

/* ---- Field tables ---------------------------------------------------------------------- */

/* The kinds of field; check_* below hold each kind's rules, json_field reads each from JSON. */
typedef enum field_kind {
    F_INT,      /* integer in [min, max], into an int32_t or int64_t */
    F_STRING,   /* non-empty string without NUL of at most max bytes, borrowed */
    F_QUEUE,    /* F_STRING that is a queue name; a value already in place is the default */
    F_DURATION, /* duration (ms or "10s") in [min, max] (max 0: lim->max_wait_ms) */
    F_TIME,     /* ms since the epoch, 0 to one year from now; sets req_job.has_run_at */
    F_BOOL,     /* true or false (null is neither) */
    F_TEXT,     /* any string or null, borrowed */
    F_STATE,    /* a job state name, into an int */
    F_PATH,     /* an absolute path of at most max bytes, borrowed */
    F_CUSTOM,   /* decoded by fn, which reads whatever members it needs from the object */
} field_kind;

typedef struct field_def field_def;
/* A custom field: reads obj (the request or the job object) into dst. */
typedef bool (*field_fn)(dec *d, const json_t *obj, void *dst);

struct field_def {
    const char *name;
    size_t namelen;
    field_kind kind;
    size_t off;          /* offset of the destination in request or req_job */
    size_t size;         /* its size: 4 or 8 for F_INT */
    int64_t min, max;    /* inclusive bounds: value, ms, or bytes of a string */
    unsigned flags;      /* FD_* */
    int64_t def;         /* with FD_DEFAULT: stored before the request is read */
    const char *over;    /* F_DURATION: what the message says after the field's name when
                          * over max (NULL: "is over the limit of N ms") */
    const char *missing; /* FD_REQUIRED, F_PATH: the message when missing or wrong (NULL:
                          * "field is required") */
    field_fn fn;         /* F_CUSTOM */
};

enum { FD_REQUIRED = 1, FD_DEFAULT = 2 };

#define FIELD(type, name_, kind_, member, min_, max_, ...)                                         \
    {                                                                                              \
        .name = (name_), .namelen = sizeof(name_) - 1, .kind = (kind_),                            \
        .off = offsetof(type, member), .size = sizeof(((type *)0)->member), .min = (min_),         \
        .max = (max_), __VA_ARGS__                                                                 \
    }
#define CUSTOM(name_, fn_)                                                                         \
    {                                                                                              \
        .name = (name_), .namelen = sizeof(name_) - 1, .kind = F_CUSTOM, .fn = (fn_)               \
    }
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* store_int: v into the int32_t or int64_t field f of dst. */
static void
store_int(const field_def *f, void *dst, int64_t v)
{
    char *p = (char *)dst + f->off;
    if (f->size == sizeof(int32_t)) {
        int32_t i = (int32_t)v;
        memcpy(p, &i, sizeof(i));
    } else {
        memcpy(p, &v, sizeof(v));
    }
}

/* store_ptr: v into the pointer field f of dst. */
static void
store_ptr(const field_def *f, void *dst, const void *v)
{
    memcpy((char *)dst + f->off, &v, sizeof(v));
}

/* load_ptr: the pointer field f of dst. */
static const void *
load_ptr(const field_def *f, const void *dst)
{
    const void *v;
    memcpy(&v, (const char *)dst + f->off, sizeof(v));
    return v;
}

/* check_int: an integer field's range. */
static bool
check_int(dec *d, const field_def *f, long long v)
{
    if (v < f->min || v > f->max) {
        return fail(d, "invalid_argument", "field \"%s\" is out of range (%lld)", f->name, v);
    }
    return true;
}

/* check_time: a run_at: 0 (the past runs at once) to one year from now. */
static bool
check_time(dec *d, const field_def *f, long long v)
{
    if (v < 0) {
        return fail(d, "invalid_argument", "field \"%s\" must be a time in ms since the Unix epoch",
                    f->name);
    }
    if (d->run_at_max == 0) {
        d->run_at_max = jobq__run_at_max_ms();
    }
    if (v > d->run_at_max) {
        return fail(d, "invalid_argument", "field \"%s\" is more than one year from now", f->name);
    }
    return true;
}

/* bad_queue_name: the failure for a queue name (s: n bytes) that queue_name_ok refuses. */
static bool
bad_queue_name(dec *d, const char *s, size_t n)
{
    return fail(d, "invalid_argument",
                "queue name \"%.*s\" is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -",
                (int)(n < 256 ? n : 256), s);
}

/* check_string: a string field (s: n bytes, with NUL bytes if any): its length, and for a
 * queue or a path what it must look like. */
static bool
check_string(dec *d, const field_def *f, const char *s, size_t n)
{
    if (n == 0 || n > (size_t)f->max || memchr(s, '\0', n) != NULL) {
        return fail(d, "invalid_argument",
                    "field \"%s\" must be a non-empty string without NUL of at most %lld bytes",
                    f->name, (long long)f->max);
    }
    if (f->kind == F_QUEUE && !queue_name_ok(s, n)) {
        return bad_queue_name(d, s, n);
    }
    if (f->kind == F_PATH && s[0] != '/') {
        return fail(d, "invalid_argument", "%s", f->missing);
    }
    return true;
}

/* check_duration: a duration's bounds. */
static bool
check_duration(dec *d, const field_def *f, int64_t ms)
{
    int64_t max = f->max != 0 ? f->max : d->lim->max_wait_ms;
    if (ms > max) {
        if (f->over != NULL) {
            return fail(d, "invalid_argument", "field \"%s\" %s", f->name, f->over);
        }
        return fail(d, "invalid_argument", "field \"%s\" is over the limit of %lld ms", f->name,
                    (long long)max);
    }
    if (ms < f->min) {
        return fail(d, "invalid_argument", "field \"%s\" must be greater than 0", f->name);
    }
    return true;
}

/* check_payload: a payload's compact size (n bytes). */
static bool
check_payload(dec *d, size_t n)
{
    if (n > d->lim->max_payload) {
        return fail(d, "payload_too_large",
                    "payload of %zu bytes is over the limit of %lld bytes (max_payload); keep "
                    "large data elsewhere and pass a reference to it",
                    n, (long long)d->lim->max_payload);
    }
    return true;
}

/* check_batch: the number of jobs in a submit_batch. */
static bool
check_batch(dec *d, size_t n)
{
    if (n > d->lim->max_batch) {
        return fail(d, "batch_too_large",
                    "a batch of %zu jobs is over the limit of %lld (max_batch); split it", n,
                    (long long)d->lim->max_batch);
    }
    return true;
}

/* check_token: the request's token (NULL if none; n bytes) when the daemon requires one.
 * lim->read_token, when set, passes too, marking the request read-only (d->read_only). Both
 * tokens are compared every time, each in time independent of where it differs. */
static bool
check_token(dec *d, const char *token, size_t n)
{
    if (d->lim->token == NULL) {
        return true;
    }
    if (token == NULL) {
        return fail(d, "unauthorized", "this jobqd requires a token: set JOBQ_TOKEN or --token");
    }
    bool admin = token_equal_n(token, n, d->lim->token);
    bool reader = d->lim->read_token != NULL && token_equal_n(token, n, d->lim->read_token);
    if (!admin && !reader) {
        return fail(d, "unauthorized", "wrong token");
    }
    d->read_only = !admin;
    return true;
}

/* json_field: reads one table field from obj into dst and checks it. */
static bool
json_field(dec *d, const field_def *f, const json_t *obj, void *dst)
{
    if (f->kind == F_CUSTOM) {
        return f->fn(d, obj, dst);
    }
    json_t *v = json_object_get(obj, f->name);
    bool absent = v == NULL || (json_is_null(v) && f->kind != F_BOOL);
    if (absent && f->kind == F_DURATION && v != NULL && f->min > 0) {
        return check_duration(d, f, 0); /* an explicit null is no positive duration */
    }
    if (absent) {
        if (f->kind == F_QUEUE && load_ptr(f, dst) != NULL) {
            const char *q = load_ptr(f, dst); /* the batch's default queue */
            return queue_name_ok(q, strlen(q)) || bad_queue_name(d, q, strlen(q));
        }
        if ((f->flags & FD_REQUIRED) == 0) {
            return true;
        }
        if (f->missing != NULL) {
            return fail(d, "invalid_argument", "%s", f->missing);
        }
        return fail(d, "invalid_argument", "field \"%s\" is required", f->name);
    }
    switch (f->kind) {
    case F_INT:
    case F_TIME:
        if (!json_is_integer(v)) {
            if (f->kind == F_TIME) {
                return check_time(d, f, -1);
            }
            return fail(d, "invalid_argument", "field \"%s\" must be an integer", f->name);
        }
        if (!(f->kind == F_INT ? check_int(d, f, json_integer_value(v))
                               : check_time(d, f, json_integer_value(v)))) {
            return false;
        }
        store_int(f, dst, json_integer_value(v));
        if (f->kind == F_TIME) {
            ((req_job *)dst)->has_run_at = true;
        }
        return true;
    case F_STRING:
    case F_QUEUE:
    case F_PATH:
        if (!json_is_string(v)) {
            return fail(d, "invalid_argument", "field \"%s\" must be a string", f->name);
        }
        if (!check_string(d, f, json_string_value(v), json_string_length(v))) {
            return false;
        }
        store_ptr(f, dst, json_string_value(v));
        return true;
    case F_DURATION: {
        int64_t ms;
        if (!jobq__json_duration(v, &ms)) {
            return fail(d, "invalid_argument",
                        "field \"%s\" must be a duration: integer ms or a string like \"10s\"",
                        f->name);
        }
        if (!check_duration(d, f, ms)) {
            return false;
        }
        store_int(f, dst, ms);
        return true;
    }
    case F_BOOL:
        if (!json_is_boolean(v)) {
            return fail(d, "invalid_argument", "field \"%s\" must be true or false", f->name);
        }
        *((bool *)((char *)dst + f->off)) = json_is_true(v);
        return true;
    case F_TEXT:
        if (!json_is_string(v)) {
            return fail(d, "invalid_argument", "field \"%s\" must be a string", f->name);
        }
        store_ptr(f, dst, json_string_value(v));
        return true;
    case F_STATE: {
        const field_def as_string = {.name = f->name, .kind = F_STRING, .max = 32};
        if (!json_is_string(v)) {
            return fail(d, "invalid_argument", "field \"%s\" must be a string", f->name);
        }
        if (!check_string(d, &as_string, json_string_value(v), json_string_length(v))) {
            return false;
        }
        int state = jobq__state_parse(json_string_value(v));
        if (state < 0) {
            return fail(d, "invalid_argument",
                        "unknown state \"%s\": use scheduled, ready, running, retrying, "
                        "succeeded, dead, cancelled or waiting",
                        json_string_value(v));
        }
        *((int *)((char *)dst + f->off)) = state;
        return true;
    }
    case F_CUSTOM:
        break;
    }
    return true;
}

/* json_fields: every field of a table, in order, from obj into dst (defaults first). */
static bool
json_fields(dec *d, const field_def *defs, size_t n, const json_t *obj, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        if (defs[i].flags & FD_DEFAULT) {
            if (defs[i].kind == F_BOOL) {
                *((bool *)((char *)dst + defs[i].off)) = defs[i].def != 0;
            } else if (defs[i].kind == F_STATE) {
                *((int *)((char *)dst + defs[i].off)) = (int)defs[i].def;
            } else {
                store_int(&defs[i], dst, defs[i].def);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!json_field(d, &defs[i], obj, dst)) {
            return false;
        }
    }
    return true;
}

/* ---- Custom fields: the members whose shape a table row cannot say ---------------------- */

/* need_id: v as a job id (a positive integer) into *out; field names it in the message. */
static bool
need_id(dec *d, const json_t *v, const char *field, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        return fail(d, "invalid_argument", "field \"%s\" must be a positive integer job id", field);
    }
    *out = json_integer_value(v);
    return true;
}

/* job_payload: the job's payload as compact JSON text (null when absent), and its hash when
 * the job has a key. */
static bool
job_payload(dec *d, const json_t *obj, void *dst)
{
    req_job *j = dst;
    json_t *payload = json_object_get(obj, "payload");
    if (payload == NULL) {
        payload = json_null();
    }
    j->payload = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    if (j->payload == NULL) {
        return fail(d, "internal", "out of memory encoding the payload");
    }
    if (!check_payload(d, strlen(j->payload))) {
        return false;
    }
    if (j->key != NULL) {
        j->payload_hash = jobq__payload_hash(payload);
    }
    return true;
}

/* batch_ref: an entry {"batch": N} of "after": the member jobs[N] of the same submit_batch,
 * which must come before this one (so a batch holds no cycle), as -(N + 1) in *out
 * (REQ_AFTER_BATCH). */
static bool
batch_ref(dec *d, const json_t *e, int64_t *out)
{
    const json_t *n = json_object_get(e, "batch");
    if (json_object_size(e) != 1 || !json_is_integer(n) || json_integer_value(n) < 0) {
        return fail(d, "invalid_argument",
                    "an entry of field \"after\" is a job id or {\"batch\": N}, the index of an "
                    "earlier job of the same submit_batch");
    }
    if (d->batch_index == NOT_IN_BATCH) {
        return fail(d, "invalid_argument",
                    "{\"batch\": N} in field \"after\" names a job of the same submit_batch; "
                    "this job is not one of a batch's \"jobs\"");
    }
    json_int_t idx = json_integer_value(n);
    if ((uint64_t)idx >= d->batch_index) {
        return fail(d, "invalid_argument",
                    "field \"after\" names jobs[%lld], which does not come before this job: a "
                    "batch's job may wait only for earlier ones, so a batch holds no cycle",
                    (long long)idx);
    }
    *out = -((int64_t)idx + 1);
    return true;
}

/* job_after: the optional "after" (ids of parent jobs) and "after_policy" of a job. */
static bool
job_after(dec *d, const json_t *obj, void *dst)
{
    static const field_def policy_def = {.name = "after_policy", .kind = F_STRING, .max = 16};
    req_job *j = dst;
    json_t *after = json_object_get(obj, "after");
    const char *policy = NULL;
    if (!json_field(d, &policy_def, obj, &policy)) {
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
    if (n > d->lim->max_after) {
        return fail(d, "too_large", "field \"after\" names at most %lld jobs",
                    (long long)d->lim->max_after);
    }
    j->after = calloc(n, sizeof(*j->after));
    if (j->after == NULL) {
        return fail(d, "internal", "out of memory");
    }
    j->nafter = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(after, i);
        if (json_is_object(e)) {
            if (!batch_ref(d, e, &j->after[i])) {
                return false;
            }
        } else if (!need_id(d, e, "after", &j->after[i])) {
            return false;
        }
    }
    return true;
}

/* hexes: s[0..n) are lowercase hex digits, not all zero when nonzero is set. */
static bool
hexes(const char *s, size_t n, bool nonzero)
{
    bool zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
        zero = zero && s[i] == '0';
    }
    return !(nonzero && zero);
}

/* job_trace: the optional W3C trace context: "traceparent" (VERSION-TRACEID-PARENTID-FLAGS,
 * lowercase hex, ids not all zero, version ff refused; a later version may add fields) and
 * "tracestate" (kept as given, up to 512 bytes). */
static bool
job_trace(dec *d, const json_t *obj, void *dst)
{
    static const field_def parent_def = {.name = "traceparent", .kind = F_STRING, .max = 512};
    static const field_def state_def = {.name = "tracestate", .kind = F_STRING, .max = 512};
    req_job *j = dst;
    if (!json_field(d, &parent_def, obj, &j->traceparent) ||
        !json_field(d, &state_def, obj, &j->tracestate)) {
        return false;
    }
    const char *t = j->traceparent;
    if (t == NULL) {
        if (j->tracestate != NULL) {
            return fail(d, "invalid_argument", "field \"tracestate\" goes with a traceparent");
        }
        return true;
    }
    size_t n = strlen(t);
    bool ok = n >= 55 && hexes(t, 2, false) && strncmp(t, "ff", 2) != 0 && t[2] == '-' &&
              hexes(t + 3, 32, true) && t[35] == '-' && hexes(t + 36, 16, true) &&
              t[52] == '-' && hexes(t + 53, 2, false) &&
              (n == 55 ? true : strncmp(t, "00", 2) != 0 && t[55] == '-');
    if (!ok) {
        return fail(d, "invalid_argument",
                    "field \"traceparent\" must be a W3C traceparent such as "
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }
    return true;
}

/* job_group_key: the optional "group_key", 1 to 200 bytes without control characters (it
 * becomes an environment variable of a command and a header of a webhook delivery). */
static bool
job_group_key(dec *d, const json_t *obj, void *dst)
{
    static const field_def key_def = {.name = "group_key", .kind = F_STRING, .max = 200};
    req_job *j = dst;
    if (!json_field(d, &key_def, obj, &j->group_key)) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)j->group_key; p != NULL && *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return fail(d, "invalid_argument",
                        "field \"group_key\" must not contain control characters");
        }
    }
    return true;
}

/* job_dedupe: "dedupe", how a used key is decided (ttl, until_done, replace, debounce), after
 * "key" and "debounce_max" were read: a mode other than ttl needs a key, debounce_max needs
 * debounce. */
static bool
job_dedupe(dec *d, const json_t *obj, void *dst)
{
    static const char *const names[] = {"ttl", "until_done", "replace", "debounce"};
    static const field_def def = {.name = "dedupe", .kind = F_STRING, .max = 16};
    req_job *j = dst;
    const char *mode = NULL;
    if (!json_field(d, &def, obj, &mode)) {
        return false;
    }
    j->dedupe = JOBQ_DEDUPE_TTL;
    if (mode != NULL) {
        size_t i = 0;
        while (i < NFIELDS(names) && strcmp(mode, names[i]) != 0) {
            i++;
        }
        if (i == NFIELDS(names)) {
            return fail(d, "invalid_argument",
                        "field \"dedupe\" must be ttl, until_done, replace or debounce");
        }
        j->dedupe = (int)i;
        if (j->key == NULL) {
            return fail(d, "invalid_argument", "field \"dedupe\" needs a \"key\"");
        }
    }
    if (j->debounce_max_ms > 0 && j->dedupe != JOBQ_DEDUPE_DEBOUNCE) {
        return fail(d, "invalid_argument",
                    "field \"debounce_max\" goes with \"dedupe\": \"debounce\"");
    }
    if (j->expires_at_ms > 0 && j->expires_in_ms > 0) {
        return fail(d, "invalid_argument", "give \"expires_at\" or \"expires_in\", not both");
    }
    return true;
}

/* The fields of one job: a submit, each entry of a submit_batch's "jobs", its on_complete.
 * The fast scanner takes the F_QUEUE, F_INT and F_TIME rows and "payload". */
static const field_def job_fields[] = {
    FIELD(req_job, "queue", F_QUEUE, queue, 1, QUEUE_NAME_MAX, .flags = FD_REQUIRED),
    FIELD(req_job, "priority", F_INT, priority, INT32_MIN, INT32_MAX),
    FIELD(req_job, "max_attempts", F_INT, max_attempts, 1, 1000000),
    FIELD(req_job, "timeout", F_DURATION, timeout_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
    FIELD(req_job, "delay", F_DURATION, delay_ms, 0, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
    FIELD(req_job, "run_at", F_TIME, run_at_ms, 0, 0),
    FIELD(req_job, "key", F_STRING, key, 1, 512),
    CUSTOM("payload", job_payload),
    CUSTOM("after", job_after),
    CUSTOM("traceparent", job_trace),
    CUSTOM("group_key", job_group_key),
    FIELD(req_job, "debounce_max", F_DURATION, debounce_max_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
    FIELD(req_job, "expires_at", F_INT, expires_at_ms, 1, INT64_MAX),
    FIELD(req_job, "expires_in", F_DURATION, expires_in_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
    CUSTOM("dedupe", job_dedupe),
};

/* decode_job: one job object into j; default_queue is used when it names none. */
static bool
decode_job(dec *d, const json_t *obj, const char *default_queue, req_job *j)
{
    memset(j, 0, sizeof(*j));
    if (!json_is_object(obj)) {
        return fail(d, "invalid_argument", "each job must be a JSON object");
    }
    j->queue = default_queue;
    return json_fields(d, job_fields, NFIELDS(job_fields), obj, j);
}

/* in_job: appends " (WHAT; nothing was submitted)" to the message of a failure. */
static bool
in_job(dec *d, const char *what)
{
    if (d->err != NULL) {
        size_t used = strlen(d->err);
        snprintf(d->err + used, d->errlen - used, " (%s; nothing was submitted)", what);
    }
    return false;
}

/* submit_one: the submit request itself as its one job. */
static bool
submit_one(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    req->jobs = calloc(1, sizeof(*req->jobs));
    if (req->jobs == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->njobs = 1;
    return decode_job(d, obj, NULL, &req->jobs[0]);
}

/* batch_jobs: a submit_batch's "jobs", with its "queue" as their default. */
static bool
batch_jobs(dec *d, const json_t *obj, void *dst)
{
    static const field_def queue_def = {.name = "queue", .kind = F_STRING, .max = QUEUE_NAME_MAX};
    request *req = dst;
    const char *queue = NULL;
    if (!json_field(d, &queue_def, obj, &queue)) {
        return false;
    }
    json_t *jobs = json_object_get(obj, "jobs");
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        return fail(d, "invalid_argument", "field \"%s\" must be a non-empty array", "jobs");
    }
    size_t n = json_array_size(jobs);
    if (!check_batch(d, n)) {
        return false;
    }
    req->jobs = calloc(n, sizeof(*req->jobs));
    if (req->jobs == NULL) {
        return fail(d, "internal", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        req->njobs = i + 1;
        d->batch_index = i;
        bool ok = decode_job(d, json_array_get(jobs, i), queue, &req->jobs[i]);
        d->batch_index = NOT_IN_BATCH;
        if (!ok) {
            char what[32];
            snprintf(what, sizeof(what), "jobs[%zu]", i);
            return in_job(d, what);
        }
    }
    return true;
}

/* batch_group: a batch's optional "group" flag and its "on_complete" job. */
static bool
batch_group(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *g = json_object_get(obj, "group");
    json_t *oc = json_object_get(obj, "on_complete");
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
    if (json_object_get(oc, "group_key") != NULL) {
        return fail(d, "invalid_argument", "on_complete: \"group_key\" is not allowed");
    }
    req->on_complete = calloc(1, sizeof(*req->on_complete));
    if (req->on_complete == NULL) {
        return fail(d, "internal", "out of memory");
    }
    if (!decode_job(d, oc, NULL, req->on_complete)) {
        return in_job(d, "on_complete");
    }
    return true;
}

/* one_id: the request's "id", as its only id. */
static bool
one_id(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    req->ids = calloc(1, sizeof(*req->ids));
    if (req->ids == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->nids = 1;
    return need_id(d, json_object_get(obj, "id"), "id", &req->ids[0]);
}

/* opt_group: "group" (a group id) in place of "id" in get and wait. */
static bool
opt_group(dec *d, const json_t *obj, request *req)
{
    json_t *g = json_object_get(obj, "group");
    if (g == NULL) {
        return true;
    }
    if (json_object_get(obj, "id") != NULL || json_object_get(obj, "ids") != NULL) {
        return fail(d, "invalid_argument", "give either \"group\" or job ids, not both");
    }
    if (!json_is_integer(g) || json_integer_value(g) < 1) {
        return fail(d, "invalid_argument", "field \"group\" must be a positive integer group id");
    }
    req->group_id = json_integer_value(g);
    return true;
}

/* get_target: get's "id", or its "group". */
static bool
get_target(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    if (!opt_group(d, obj, req)) {
        return false;
    }
    return req->group_id != 0 || one_id(d, obj, dst);
}

/* retry_target: retry's "id" (as get), or every job of a "state" (dead or cancelled),
 * optionally of one "queue". */
static bool
retry_target(dec *d, const json_t *obj, void *dst)
{
    static const field_def bulk[] = {
        FIELD(request, "queue", F_STRING, queue, 1, QUEUE_NAME_MAX),
        {.name = "state", .kind = F_STRING, .max = 32},
    };
    request *req = dst;
    if (json_object_get(obj, "id") != NULL) {
        return get_target(d, obj, dst);
    }
    const char *state = NULL;
    if (!json_field(d, &bulk[0], obj, req) || !json_field(d, &bulk[1], obj, &state)) {
        return false;
    }
    req->state = state != NULL ? jobq__state_parse(state) : -1;
    if (req->state != JOBQ_DEAD && req->state != JOBQ_CANCELLED) {
        return fail(d, "invalid_argument",
                    "give \"id\", or \"state\" (dead or cancelled) and optionally \"queue\"");
    }
    return true;
}

/* wait_ids: wait's "id" or "ids", or its "group". */
static bool
wait_ids(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *id = json_object_get(obj, "id");
    json_t *ids = json_object_get(obj, "ids");
    size_t n = ids != NULL ? json_array_size(ids) : 1;
    if (!opt_group(d, obj, req)) {
        return false;
    }
    if (req->group_id != 0) {
        n = 0;
    } else if ((id == NULL) == (ids == NULL) || (ids != NULL && (!json_is_array(ids) || n == 0))) {
        return fail(d, "invalid_argument", "give either \"id\" or a non-empty array \"ids\"");
    }
    if (n > d->lim->max_wait_ids) {
        return fail(d, "too_large", "a wait names at most %lld jobs",
                    (long long)d->lim->max_wait_ids);
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
    return true;
}

/* wait_when_field: wait's "return_when": "all" (the default), "first" or "first_failure". */
static bool
wait_when_field(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *v = json_object_get(obj, "return_when");
    req->return_when = WAIT_ALL;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "all") == 0) {
        req->return_when = WAIT_ALL;
    } else if (s != NULL && strcmp(s, "first") == 0) {
        req->return_when = WAIT_FIRST;
    } else if (s != NULL && strcmp(s, "first_failure") == 0) {
        req->return_when = WAIT_FIRST_FAILURE;
    } else {
        return fail(d, "invalid_argument",
                    "field \"return_when\" must be \"all\", \"first\" or \"first_failure\"");
    }
    return true;
}

/* fetch_queues: the queues of a fetch: "queues", or the one "queue" read before it into
 * req->queue (which a fetch leaves NULL). */
static bool
fetch_queues(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *qs = json_object_get(obj, "queues");
    const char *one = req->queue;
    req->queue = NULL;
    size_t n = qs != NULL ? json_array_size(qs) : one != NULL ? 1 : 0;
    if ((qs != NULL && (!json_is_array(qs) || n > FETCH_MAX_QUEUES)) || n == 0) {
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
    return true;
}

/* The fields of a fetch: the request itself, or the "fetch" object of an ack or fail. */
static const field_def fetch_fields[] = {
    FIELD(request, "queue", F_STRING, queue, 1, QUEUE_NAME_MAX),
    FIELD(request, "worker", F_STRING, worker, 1, 128),
    CUSTOM("queues", fetch_queues),
    FIELD(request, "max", F_INT, limit, 1, 100, .flags = FD_DEFAULT, .def = 1),
    FIELD(request, "timeout", F_DURATION, timeout_ms, 0, FETCH_MAX_MS, .flags = FD_DEFAULT,
          .def = DEFAULT_TIMEOUT_MS, .over = "of a fetch is at most 5m"),
};

/* then_fetch: the "fetch" of an ack or fail: the fetch to hold once the outcome is recorded. */
static bool
then_fetch(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *f = json_object_get(obj, "fetch");
    if (f == NULL || json_is_null(f)) {
        return true;
    }
    if (!json_is_object(f)) {
        return fail(d, "invalid_argument",
                    "field \"fetch\" must be an object with the fields of a fetch");
    }
    req->then_fetch = true;
    return json_fields(d, fetch_fields, NFIELDS(fetch_fields), f, req);
}

/* ---- One table per op -------------------------------------------------------------------
 * A new field of an op is one row in its table (a new kind of value, one F_ kind with its
 * check and its case in json_field); a new op is one row in ops[] and its req_op. Rows are
 * read in order, and the first failure is the one reported. */

static const field_def submit_fields[] = {CUSTOM("(the job)", submit_one)};

static const field_def submit_batch_fields[] = {
    CUSTOM("jobs", batch_jobs),
    CUSTOM("group", batch_group),
};

static const field_def get_fields[] = {CUSTOM("id", get_target)};

static const field_def id_fields[] = {CUSTOM("id", one_id)};

static const field_def retry_fields[] = {CUSTOM("id", retry_target)};

static const field_def wait_fields[] = {
    CUSTOM("ids", wait_ids),
    FIELD(request, "timeout", F_DURATION, timeout_ms, 0, 0 /* lim->max_wait_ms */,
          .flags = FD_DEFAULT, .def = DEFAULT_TIMEOUT_MS),
    CUSTOM("return_when", wait_when_field),
    FIELD(request, "cancel_pending", F_BOOL, cancel_pending, 0, 0),
};

static const field_def list_fields[] = {
    FIELD(request, "queue", F_STRING, queue, 1, QUEUE_NAME_MAX),
    FIELD(request, "state", F_STATE, state, 0, 0, .flags = FD_DEFAULT, .def = -1),
    FIELD(request, "after", F_INT, after_id, 0, INT64_MAX),
    FIELD(request, "limit", F_INT, limit, 1, 1000, .flags = FD_DEFAULT, .def = 100),
};

static const field_def queue_fields[] = {
    FIELD(request, "queue", F_STRING, queue, 1, QUEUE_NAME_MAX, .flags = FD_REQUIRED),
};

#define LEASE_FIELD                                                                                \
    FIELD(request, "lease", F_STRING, lease, 1, 64, .flags = FD_REQUIRED,                          \
          .missing = "field \"lease\" (the token from fetch) is required")
#define RETRY_FIELD FIELD(request, "retry", F_BOOL, retry, 0, 0, .flags = FD_DEFAULT, .def = 1)

/* The fields of one entry of an ack's or a fail's "jobs". */
static const field_def ack_job_fields[] = {
    FIELD(req_outcome, "id", F_INT, id, 1, INT64_MAX, .flags = FD_REQUIRED,
          .missing = "field \"id\" (a positive integer job id) is required in each job"),
    FIELD(req_outcome, "lease", F_STRING, lease, 1, 64, .flags = FD_REQUIRED,
          .missing = "field \"lease\" (the token from fetch) is required in each job"),
    FIELD(req_outcome, "result", F_TEXT, text, 0, 0),
};

static const field_def fail_job_fields[] = {
    FIELD(req_outcome, "id", F_INT, id, 1, INT64_MAX, .flags = FD_REQUIRED,
          .missing = "field \"id\" (a positive integer job id) is required in each job"),
    FIELD(req_outcome, "lease", F_STRING, lease, 1, 64, .flags = FD_REQUIRED,
          .missing = "field \"lease\" (the token from fetch) is required in each job"),
    FIELD(req_outcome, "error", F_TEXT, text, 0, 0),
    FIELD(req_outcome, "retry", F_BOOL, retry, 0, 0, .flags = FD_DEFAULT, .def = 1),
    FIELD(req_outcome, "snooze", F_DURATION, snooze_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
};

/* The fields of the single form: one job named by the request itself. */
static const field_def ack_one_fields[] = {
    CUSTOM("id", one_id),
    LEASE_FIELD,
    FIELD(request, "result", F_TEXT, text, 0, 0),
    RETRY_FIELD,
};

static const field_def fail_one_fields[] = {
    CUSTOM("id", one_id),
    LEASE_FIELD,
    FIELD(request, "error", F_TEXT, text, 0, 0),
    RETRY_FIELD,
};

/* outcome_jobs: an ack's or a fail's jobs: "jobs", an array of 1 to REQ_OUTCOMES_MAX
 * entries of the fields in defs, or else the single form of one_defs. */
static bool
outcome_jobs(dec *d, const json_t *obj, request *req, const field_def *defs, size_t ndefs,
             const field_def *one_defs, size_t none)
{
    json_t *jobs = json_object_get(obj, "jobs");
    if (jobs == NULL || json_is_null(jobs)) {
        return json_fields(d, one_defs, none, obj, req);
    }
    if (json_object_get(obj, "id") != NULL || json_object_get(obj, "lease") != NULL) {
        return fail(d, "invalid_argument", "give either \"id\" and \"lease\" or \"jobs\", not both");
    }
    size_t n = json_array_size(jobs);
    if (!json_is_array(jobs) || n == 0) {
        return fail(d, "invalid_argument",
                    "field \"jobs\" must be a non-empty array of {\"id\", \"lease\", ...}");
    }
    if (n > REQ_OUTCOMES_MAX) {
        return fail(d, "too_large", "an ack or fail names at most %d jobs, not %zu; split it",
                    REQ_OUTCOMES_MAX, n);
    }
    req->outcomes = calloc(n, sizeof(*req->outcomes));
    if (req->outcomes == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->noutcomes = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(jobs, i);
        if (!json_is_object(e)) {
            return fail(d, "invalid_argument", "jobs[%zu] must be a JSON object", i);
        }
        if (!json_fields(d, defs, ndefs, e, &req->outcomes[i])) {
            if (d->err != NULL) {
                size_t used = strlen(d->err);
                snprintf(d->err + used, d->errlen - used, " (jobs[%zu]; nothing was recorded)", i);
            }
            return false;
        }
    }
    return true;
}

/* ack_jobs: an ack's "jobs", or its single job. */
static bool
ack_jobs(dec *d, const json_t *obj, void *dst)
{
    return outcome_jobs(d, obj, dst, ack_job_fields, NFIELDS(ack_job_fields), ack_one_fields,
                        NFIELDS(ack_one_fields));
}

/* fail_jobs: a fail's "jobs", or its single job. */
static bool
fail_jobs(dec *d, const json_t *obj, void *dst)
{
    return outcome_jobs(d, obj, dst, fail_job_fields, NFIELDS(fail_job_fields), fail_one_fields,
                        NFIELDS(fail_one_fields));
}

static const field_def ack_fields[] = {
    CUSTOM("jobs", ack_jobs),
    CUSTOM("fetch", then_fetch),
};

static const field_def fail_fields[] = {
    CUSTOM("jobs", fail_jobs),
    CUSTOM("fetch", then_fetch),
    FIELD(request, "slow_down", F_DURATION, slow_down_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
    FIELD(request, "snooze", F_DURATION, snooze_ms, 1, JOBQ__DURATION_MAX_MS,
          .over = "is over the limit of one year"),
};

/* hb_report: what a heartbeat reports of its job: "progress" (a number from 0 to 100) with
 * "note", "checkpoint" (any JSON, kept compact) and "log" (an array of lines). */
static bool
hb_report(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    const json_t *p = json_object_get(obj, "progress");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_number(p) || !(json_number_value(p) >= 0 && json_number_value(p) <= 100)) {
            return fail(d, "invalid_argument", "field \"progress\" must be a number from 0 to 100");
        }
        req->has_progress = true;
        req->progress = json_number_value(p);
    }
    const json_t *n = json_object_get(obj, "note");
    if (n != NULL && !json_is_null(n)) {
        if (!json_is_string(n) || json_string_length(n) > REQ_NOTE_MAX) {
            return fail(d, "invalid_argument", "field \"note\" must be a string of at most %d bytes",
                        REQ_NOTE_MAX);
        }
        if (!req->has_progress) {
            return fail(d, "invalid_argument", "field \"note\" needs \"progress\"");
        }
        req->note = json_string_value(n);
    }
    const json_t *c = json_object_get(obj, "checkpoint");
    if (c != NULL && !json_is_null(c)) {
        req->checkpoint = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
        if (req->checkpoint == NULL) {
            return fail(d, "internal", "out of memory");
        }
        if (strlen(req->checkpoint) > REQ_CHECKPOINT_MAX) {
            return fail(d, "too_large", "field \"checkpoint\" is over %d bytes (compact JSON)",
                        REQ_CHECKPOINT_MAX);
        }
    }
    const json_t *l = json_object_get(obj, "log");
    if (l != NULL && !json_is_null(l)) {
        size_t nl = json_array_size(l);
        if (!json_is_array(l)) {
            return fail(d, "invalid_argument", "field \"log\" must be an array of strings");
        }
        if (nl > REQ_LOG_LINES_MAX) {
            return fail(d, "too_large", "field \"log\" holds at most %d lines, not %zu",
                        REQ_LOG_LINES_MAX, nl);
        }
        req->log = calloc(nl ? nl : 1, sizeof(*req->log));
        if (req->log == NULL) {
            return fail(d, "internal", "out of memory");
        }
        for (size_t i = 0; i < nl; i++) {
            const json_t *e = json_array_get(l, i);
            if (!json_is_string(e) || json_string_length(e) > REQ_LOG_LINE_MAX) {
                return fail(d, "invalid_argument",
                            "log[%zu] must be a string of at most %d bytes", i, REQ_LOG_LINE_MAX);
            }
            req->log[i] = json_string_value(e);
        }
        req->nlog = nl;
    }
    return true;
}

static const field_def heartbeat_fields[] = {
    CUSTOM("id", one_id),
    LEASE_FIELD,
    FIELD(request, "error", F_TEXT, text, 0, 0),
    RETRY_FIELD,
    CUSTOM("progress", hb_report),
};

/* logs: a job's log lines after a cursor, held up to "timeout" until there are some. */
static const field_def logs_fields[] = {
    CUSTOM("id", one_id),
    FIELD(request, "after", F_INT, after_id, 0, INT64_MAX),
    FIELD(request, "limit", F_INT, limit, 1, 1000, .flags = FD_DEFAULT, .def = 1000),
    FIELD(request, "timeout", F_DURATION, timeout_ms, 0, 0 /* lim->max_wait_ms */,
          .flags = FD_DEFAULT, .def = 0),
};

/* sched_extra: a schedule's optional payload (any JSON), missed ("run_once" or "skip"),
 * overlap ("allow" or "skip") and priority, each left unset when absent. */
static bool
sched_extra(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    req->sched_payload = json_object_get(obj, "payload");
    req->sched_missed = -1;
    req->sched_overlap = -1;
    const json_t *v = json_object_get(obj, "missed");
    if (v != NULL) {
        const char *m = json_string_value(v);
        if (m == NULL || (strcmp(m, "run_once") != 0 && strcmp(m, "skip") != 0)) {
            return fail(d, "invalid_argument",
                        "field \"missed\" must be \"run_once\" (one job for the ticks missed "
                        "while jobqd was down) or \"skip\"");
        }
        req->sched_missed = strcmp(m, "skip") == 0;
    }
    v = json_object_get(obj, "overlap");
    if (v != NULL) {
        const char *m = json_string_value(v);
        if (m == NULL || (strcmp(m, "allow") != 0 && strcmp(m, "skip") != 0)) {
            return fail(d, "invalid_argument",
                        "field \"overlap\" must be \"allow\" (a tick submits its job whatever "
                        "the last one is doing) or \"skip\" (not while the last tick's job is "
                        "pending or running)");
        }
        req->sched_overlap = strcmp(m, "skip") == 0;
    }
    v = json_object_get(obj, "priority");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX) {
            return fail(d, "invalid_argument", "field \"priority\" must be a 32-bit integer");
        }
        req->sched_has_priority = true;
        req->sched_priority = (int32_t)json_integer_value(v);
    }
    return true;
}

#define SCHED_NAME_FIELD                                                                           \
    FIELD(request, "name", F_QUEUE, sched_name, 1, QUEUE_NAME_MAX, .flags = FD_REQUIRED,           \
          .missing = "field \"name\" (the schedule's name) is required")

static const field_def schedule_add_fields[] = {
    SCHED_NAME_FIELD,
    FIELD(request, "cron", F_STRING, sched_cron, 1, 256, .flags = FD_REQUIRED,
          .missing = "field \"cron\" (five fields, such as \"*/5 * * * *\") is required"),
    FIELD(request, "queue", F_QUEUE, queue, 1, QUEUE_NAME_MAX, .flags = FD_REQUIRED,
          .missing = "field \"queue\" (where its jobs go) is required"),
    FIELD(request, "timezone", F_STRING, sched_timezone, 1, 128),
    CUSTOM("payload", sched_extra),
};

static const field_def schedule_update_fields[] = {
    SCHED_NAME_FIELD,
    FIELD(request, "cron", F_STRING, sched_cron, 1, 256),
    FIELD(request, "queue", F_QUEUE, queue, 1, QUEUE_NAME_MAX),
    FIELD(request, "timezone", F_STRING, sched_timezone, 1, 128),
    CUSTOM("payload", sched_extra),
};

static const field_def schedule_name_fields[] = {
    SCHED_NAME_FIELD,
};

/* stats_queues: the names stats restricts its reply to ("queues": an array, maybe empty). */
static bool
stats_queues(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *qs = json_object_get(obj, "queues");
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

static const field_def stats_fields[] = {
    FIELD(request, "series", F_BOOL, series, 0, 0),
    CUSTOM("queues", stats_queues),
};

static const field_def backup_fields[] = {
    FIELD(request, "path", F_PATH, path, 1, 4096, .flags = FD_REQUIRED,
          .missing = "field \"path\" must be an absolute path on the daemon's machine"),
};

/* ---- mutate ---- */

const char *
jobq__mutate_action_name(int action)
{
    static const char *const names[] = {
#define X(NAME, name) #name,
        MUTATE_ACTIONS(X)
#undef X
    };
    return action >= 0 && action < MUT_NACTIONS ? names[action] : "?";
}

/* mutate_states: the filter's "state": one state name or an array of them, as bits. */
static bool
mutate_states(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *v = json_object_get(obj, "state");
    req->states = 0;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if ((!json_is_array(v) && !json_is_string(v)) || n == 0) {
        return fail(d, "invalid_argument",
                    "field \"state\" must be a state name or a non-empty array of them");
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        int state = name != NULL ? jobq__state_parse(name) : -1;
        if (state < 0) {
            return fail(d, "invalid_argument",
                        "unknown state in field \"state\": use scheduled, ready, running, "
                        "retrying, succeeded, dead, cancelled or waiting");
        }
        req->states |= 1u << state;
    }
    return true;
}

/* mutate_ids: the filter's "ids": a non-empty array of job ids. */
static bool
mutate_ids(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    json_t *v = json_object_get(obj, "ids");
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0) {
        return fail(d, "invalid_argument", "field \"ids\" must be a non-empty array of job ids");
    }
    if (n > REQ_MUTATE_MAX_IDS) {
        return fail(d, "too_large", "a mutate's \"ids\" names at most %d jobs; use another filter",
                    REQ_MUTATE_MAX_IDS);
    }
    if ((req->ids = calloc(n, sizeof(*req->ids))) == NULL) {
        return fail(d, "internal", "out of memory");
    }
    req->nids = n;
    for (size_t i = 0; i < n; i++) {
        if (!need_id(d, json_array_get(v, i), "ids", &req->ids[i])) {
            return false;
        }
    }
    return true;
}

/* mutate_times: the filter's bounds on created_at and finished_at: a time (an integer, ms
 * since the epoch) or a duration ago (a string like "7d": that long before now). */
static bool
mutate_times(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    static const struct {
        const char *name;
        size_t off;
    } bounds[] = {
        {"created_after", offsetof(request, created_after_ms)},
        {"created_before", offsetof(request, created_before_ms)},
        {"finished_after", offsetof(request, finished_after_ms)},
        {"finished_before", offsetof(request, finished_before_ms)},
    };
    int64_t now = 0;
    for (size_t i = 0; i < NFIELDS(bounds); i++) {
        json_t *v = json_object_get(obj, bounds[i].name);
        int64_t ms;
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        if (json_is_integer(v) && json_integer_value(v) > 0) {
            ms = json_integer_value(v);
        } else if (json_is_string(v) && jobq__json_duration(v, &ms) &&
                   ms <= JOBQ__DURATION_MAX_MS) {
            now = now != 0 ? now : jobq__now_ms();
            ms = now - ms;
        } else {
            return fail(d, "invalid_argument",
                        "field \"%s\" must be a time (ms since the Unix epoch) or a duration ago "
                        "(a string like \"7d\", at most one year)",
                        bounds[i].name);
        }
        memcpy((char *)req + bounds[i].off, &ms, sizeof(ms));
    }
    return true;
}

/* mutate_check: what the fields of a mutate must say together: a known action with its
 * argument, and a filter (or "all": true, so that an empty filter never touches every job
 * by mistake). */
static bool
mutate_check(dec *d, const json_t *obj, void *dst)
{
    request *req = dst;
    const char *action = json_string_value(json_object_get(obj, "action"));
    req->action = -1;
    for (int a = 0; action != NULL && a < MUT_NACTIONS; a++) {
        if (strcmp(action, jobq__mutate_action_name(a)) == 0) {
            req->action = a;
        }
    }
    if (req->action < 0) {
        return fail(d, "invalid_argument",
                    "field \"action\" must be cancel, retry, delete, run_now, reschedule, "
                    "set_priority or rerun");
    }
    bool has_priority = json_object_get(obj, "priority") != NULL;
    if (req->action == MUT_SET_PRIORITY && !has_priority) {
        return fail(d, "invalid_argument", "action set_priority needs field \"priority\"");
    }
    json_t *run_at = json_object_get(obj, "run_at");
    json_t *delay = json_object_get(obj, "delay");
    if (req->action == MUT_RESCHEDULE) {
        if ((run_at == NULL) == (delay == NULL)) {
            return fail(d, "invalid_argument",
                        "action reschedule needs either \"run_at\" (a time) or \"delay\" (a "
                        "duration from now)");
        }
        int64_t ms;
        const field_def at = {.name = "run_at", .kind = F_INT, .min = 0, .max = INT64_MAX};
        if (run_at != NULL) {
            if (!json_is_integer(run_at)) {
                return check_time(d, &at, -1);
            }
            if (!check_time(d, &at, json_integer_value(run_at))) {
                return false;
            }
            ms = json_integer_value(run_at);
        } else {
            const field_def def = {.name = "delay", .kind = F_DURATION, .min = 0,
                                   .max = JOBQ__DURATION_MAX_MS};
            if (!jobq__json_duration(delay, &ms)) {
                return fail(d, "invalid_argument",
                            "field \"delay\" must be a duration: integer ms or a string like "
                            "\"10s\"");
            }
            if (!check_duration(d, &def, ms)) {
                return false;
            }
            ms += jobq__now_ms();
        }
        req->run_at_ms = ms;
        req->has_run_at = true;
    }
    bool filtered = req->queue != NULL || req->states != 0 || req->nids > 0 ||
                    req->created_after_ms != 0 || req->created_before_ms != 0 ||
                    req->finished_after_ms != 0 || req->finished_before_ms != 0 ||
                    req->error_contains != NULL || req->key_prefix != NULL;
    if (!filtered && !req->all) {
        return fail(d, "invalid_argument",
                    "a mutate without a filter (queue, state, ids, created_before/after, "
                    "finished_before/after, error_contains, key_prefix) would touch every job: "
                    "add a filter, or \"all\": true to mean it");
    }
    return true;
}

static const field_def mutate_fields[] = {
    FIELD(request, "queue", F_STRING, queue, 1, QUEUE_NAME_MAX),
    CUSTOM("state", mutate_states),
    CUSTOM("ids", mutate_ids),
    CUSTOM("(times)", mutate_times),
    FIELD(request, "error_contains", F_STRING, error_contains, 1, 1024),
    FIELD(request, "key_prefix", F_STRING, key_prefix, 1, 512),
    FIELD(request, "all", F_BOOL, all, 0, 0),
    FIELD(request, "dry_run", F_BOOL, dry_run, 0, 0),
    FIELD(request, "priority", F_INT, priority, INT32_MIN, INT32_MAX),
    FIELD(request, "after", F_INT, after_id, 0, INT64_MAX),
    FIELD(request, "max_id", F_INT, max_id, 1, INT64_MAX),
    FIELD(request, "limit", F_INT, limit, 1, INT32_MAX),
    CUSTOM("action", mutate_check),
};

#define FIELDS(table) (table), NFIELDS(table)
#define NO_FIELDS NULL, 0

static const struct op_def {
    const char *name;
    req_op op;
    const field_def *fields; /* what the request holds besides "op" and "token" */
    size_t nfields;
    unsigned flags;
} ops[] = {
#define X(NAME, name, fields, flags) {#name, REQ_##NAME, fields, flags},
    JOBQ_OPS(X)
#undef X
};
_Static_assert(NFIELDS(ops) == REQ_NOPS, "every req_op has a row in ops[]");

const char *
jobq__op_name(req_op op)
{
    return (unsigned)op < REQ_NOPS ? ops[op].name : "?";
}

unsigned
jobq__op_flags(req_op op)
{
    return (unsigned)op < REQ_NOPS ? ops[op].flags : 0;
}

/* ---- The JSON reader -------------------------------------------------------------------- */

const char *
jobq__request_decode_json(const char *buf, size_t len, const request_limits *lim, request *req,
                          char *err, size_t errlen)
{
    dec d = {
        .code = NULL, .err = err, .errlen = errlen, .lim = lim, .batch_index = NOT_IN_BATCH};
    json_error_t jerr;
    memset(req, 0, sizeof(*req));
    req->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req->root == NULL) {
        return load_error(buf, len, &jerr, err, errlen);
    }
    if (!json_is_object(req->root)) {
        json_decref(req->root);
        req->root = NULL;
        snprintf(err, errlen, "request must be a JSON object like {\"op\": \"ping\"}");
        return "malformed";
    }
    json_t *token = json_object_get(req->root, "token");
    if (!check_token(&d, json_string_value(token), json_string_length(token))) {
        json_decref(req->root);
        req->root = NULL;
        return d.code;
    }
    const char *name = json_string_value(json_object_get(req->root, "op"));
    const struct op_def *op = NULL;
    for (size_t i = 0; name != NULL && i < NFIELDS(ops); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            op = &ops[i];
        }
    }
    if (op == NULL) {
        if (name == NULL) {
            snprintf(err, errlen, "field \"op\" (a string) is required");
        } else {
            snprintf(err, errlen, "unknown op \"%.64s\"; see proto/PROTOCOL.md for the ops", name);
        }
        json_decref(req->root);
        req->root = NULL;
        return "unknown_op";
    }
    req->op = op->op;
    if (!json_fields(&d, op->fields, op->nfields, req->root, req)) {
        jobq__request_free(req);
        return d.code;
    }
    req->read_only = d.read_only;
    return NULL;
}

/* ---- The fast scanner ------------------------------------------------------------------- *
 * submit and submit_batch in their common, simple shapes, read straight from the text
 * without building a JSON tree: job fields of job_fields' F_QUEUE, F_INT and F_TIME rows
 * and "payload", printable ASCII without escapes, integers without fraction or exponent,
 * no duplicate names. Each value goes through the same check_* as in the JSON reader.
 * Anything else (another field, an error) is declined, nothing allocated, and the JSON
 * reader decodes the request. */

#define FAST_MAX_DEPTH 16 /* payload nesting the scanner follows */
#define FAST_MAX_KEYS 32  /* members per payload object whose names it checks for duplicates */
#define FAST_MAX_INT 18   /* digits of an integer it reads (no overflow of json_int_t) */

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct fp {
    const char *s, *end;
    dec *d;
} fp;

/* One job as read: its fields in place, with spans into the message for the queue and the
 * payload until the request is assembled. */
typedef struct fjob {
    req_job job;
    span queue;     /* n == 0: none given */
    span payload;   /* n == 0: none given (null) */
    size_t compact; /* bytes of the payload without insignificant white space */
} fjob;

static void
skip_ws(fp *f)
{
    while (f->s < f->end && (*f->s == ' ' || *f->s == '\t' || *f->s == '\n' || *f->s == '\r')) {
        f->s++;
    }
}

static bool
eat(fp *f, char c)
{
    skip_ws(f);
    if (f->s < f->end && *f->s == c) {
        f->s++;
        return true;
    }
    return false;
}

/* str: a string of printable ASCII without escapes (what JSON and jansson's compact encoder
 * write identically); its contents into *out. */
static bool
str(fp *f, span *out)
{
    skip_ws(f);
    if (f->s >= f->end || *f->s != '"') {
        return false;
    }
    const char *start = ++f->s;
    while (f->s < f->end) {
        unsigned char c = (unsigned char)*f->s;
        if (c == '"') {
            out->p = start;
            out->n = (size_t)(f->s - start);
            f->s++;
            return true;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            return false;
        }
        f->s++;
    }
    return false;
}

/* integer: -?(0|[1-9][0-9]*) of at most FAST_MAX_INT digits, not "-0" (jansson writes 0). */
static bool
integer(fp *f, long long *out)
{
    skip_ws(f);
    const char *p = f->s;
    bool neg = p < f->end && *p == '-';
    p += neg;
    const char *digits = p;
    long long v = 0;
    while (p < f->end && *p >= '0' && *p <= '9') {
        if (p - digits == FAST_MAX_INT) {
            return false;
        }
        v = v * 10 + (*p - '0');
        p++;
    }
    size_t n = (size_t)(p - digits);
    if (n == 0 || (digits[0] == '0' && (n > 1 || neg))) {
        return false;
    }
    if (p < f->end && (*p == '.' || *p == 'e' || *p == 'E')) {
        return false; /* a real: its compact form is jansson's to write */
    }
    f->s = p;
    *out = neg ? -v : v;
    return true;
}

static bool
literal(fp *f, const char *word, size_t n)
{
    if ((size_t)(f->end - f->s) >= n && memcmp(f->s, word, n) == 0) {
        f->s += n;
        return true;
    }
    return false;
}

static bool
same(span a, const char *b)
{
    size_t n = strlen(b);
    return a.n == n && memcmp(a.p, b, n) == 0;
}

/* value: any JSON value in the simple subset, validated; adds its compact size to *compact. */
static bool
value(fp *f, int depth, size_t *compact)
{
    skip_ws(f);
    if (f->s >= f->end || depth > FAST_MAX_DEPTH) {
        return false;
    }
    const char *start = f->s;
    switch (*f->s) {
    case '"': {
        span s;
        if (!str(f, &s)) {
            return false;
        }
        *compact += s.n + 2;
        return true;
    }
    case '{': {
        span keys[FAST_MAX_KEYS];
        size_t nkeys = 0;
        f->s++;
        *compact += 2;
        if (eat(f, '}')) {
            return true;
        }
        do {
            span k;
            if (!str(f, &k) || nkeys == FAST_MAX_KEYS) {
                return false;
            }
            for (size_t i = 0; i < nkeys; i++) {
                if (keys[i].n == k.n && memcmp(keys[i].p, k.p, k.n) == 0) {
                    return false; /* a duplicate: the JSON reader refuses the request */
                }
            }
            keys[nkeys++] = k;
            if (!eat(f, ':') || !value(f, depth + 1, compact)) {
                return false;
            }
            *compact += k.n + 3 + (nkeys > 1); /* "k": and the comma before it */
        } while (eat(f, ','));
        return eat(f, '}');
    }
    case '[': {
        f->s++;
        *compact += 2;
        if (eat(f, ']')) {
            return true;
        }
        size_t n = 0;
        do {
            if (!value(f, depth + 1, compact)) {
                return false;
            }
            *compact += n++ > 0;
        } while (eat(f, ','));
        return eat(f, ']');
    }
    case 't':
        *compact += 4;
        return literal(f, "true", 4);
    case 'f':
        *compact += 5;
        return literal(f, "false", 5);
    case 'n':
        *compact += 4;
        return literal(f, "null", 4);
    default: {
        long long v;
        if (!integer(f, &v)) {
            return false;
        }
        *compact += (size_t)(f->s - start);
        return true;
    }
    }
}

/* compact_copy: the payload's text without white space outside strings (the payload is
 * known valid and escape-free, so a quote always opens or closes a string). */
static void
compact_copy(span v, char *out)
{
    bool in_str = false;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == '"') {
            in_str = !in_str;
        } else if (!in_str && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            continue;
        }
        *out++ = c;
    }
    *out = '\0';
}

/* job_member: one member (name k) of a job object, or of a submit request, that describes
 * the job, read and checked by its row of job_fields; *seen has a bit per row already read.
 * False for a name the scanner does not take, a repeated one, or a value it refuses. */
static bool
job_member(fp *f, span k, fjob *j, unsigned *seen)
{
    _Static_assert(NFIELDS(job_fields) <= 32, "seen is a bit mask of job_fields' rows");
    const field_def *def = NULL;
    unsigned bit = 0;
    for (unsigned i = 0; i < NFIELDS(job_fields); i++) {
        if (k.n == job_fields[i].namelen && memcmp(k.p, job_fields[i].name, k.n) == 0) {
            def = &job_fields[i];
            bit = 1u << i;
            break;
        }
    }
    if (def == NULL || (*seen & bit) != 0) {
        return false;
    }
    *seen |= bit;
    long long v;
    switch (def->kind) {
    case F_QUEUE:
        return str(f, &j->queue) && check_string(f->d, def, j->queue.p, j->queue.n);
    case F_INT:
    case F_TIME:
        if (!integer(f, &v) ||
            !(def->kind == F_INT ? check_int(f->d, def, v) : check_time(f->d, def, v))) {
            return false;
        }
        store_int(def, &j->job, v);
        j->job.has_run_at |= def->kind == F_TIME;
        return true;
    case F_CUSTOM:
        if (def->fn == job_payload) {
            skip_ws(f);
            const char *start = f->s;
            j->compact = 0;
            if (!value(f, 0, &j->compact)) {
                return false;
            }
            j->payload = (span){start, (size_t)(f->s - start)};
            return true;
        }
        return false;
    default:
        return false;
    }
}

/* queue_bit: the bit of job_fields' "queue" row in job_member's mask. */
static unsigned
queue_bit(void)
{
    for (unsigned i = 0; i < NFIELDS(job_fields); i++) {
        if (job_fields[i].kind == F_QUEUE) {
            return 1u << i;
        }
    }
    return 0;
}

/* assemble: the request from the jobs read; queue names are copied behind the jobs array
 * (one allocation, freed with it), payloads are compacted into their own buffers. */
static bool
assemble(dec *d, request *req, req_op op, const fjob *fj, size_t n, span default_queue)
{
    size_t names = 0;
    for (size_t i = 0; i < n; i++) {
        span q = fj[i].queue.n > 0 ? fj[i].queue : default_queue;
        if (q.n == 0 || !check_payload(d, fj[i].compact)) { /* queues: checked when read */
            return false;
        }
        names += q.n + 1;
    }
    req_job *jobs = calloc(1, n * sizeof(req_job) + names);
    if (jobs == NULL) {
        return false;
    }
    char *arena = (char *)(jobs + n);
    req->op = op;
    req->jobs = jobs;
    req->njobs = 0;
    for (size_t i = 0; i < n; i++) {
        const fjob *f = &fj[i];
        req_job *j = &jobs[i];
        span q = f->queue.n > 0 ? f->queue : default_queue;
        *j = f->job;
        memcpy(arena, q.p, q.n);
        arena[q.n] = '\0';
        j->queue = arena;
        arena += q.n + 1;
        j->payload = malloc(f->payload.n > 0 ? f->compact + 1 : 5);
        if (j->payload == NULL) {
            return false;
        }
        req->njobs = i + 1;
        if (f->payload.n > 0) {
            compact_copy(f->payload, j->payload);
        } else {
            memcpy(j->payload, "null", 5);
        }
    }
    return true;
}

/* batch_scan: the "jobs" array of a submit_batch into a growing array of fjob. */
static bool
batch_scan(fp *f, fjob **out, size_t *nout)
{
    if (!eat(f, '[')) {
        return false;
    }
    fjob *v = NULL;
    size_t n = 0, cap = 0;
    do {
        if (!check_batch(f->d, n + 1)) {
            goto fail;
        }
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            fjob *grown = realloc(v, cap * sizeof(*v));
            if (grown == NULL) {
                goto fail;
            }
            v = grown;
        }
        fjob *j = &v[n++];
        *j = (fjob){.compact = 4};
        unsigned seen = 0;
        if (!eat(f, '{')) {
            goto fail;
        }
        if (!eat(f, '}')) {
            do {
                span k;
                if (!str(f, &k) || !eat(f, ':') || !job_member(f, k, j, &seen)) {
                    goto fail;
                }
            } while (eat(f, ','));
            if (!eat(f, '}')) {
                goto fail;
            }
        }
    } while (eat(f, ','));
    if (!eat(f, ']')) {
        goto fail;
    }
    *out = v;
    *nout = n;
    return true;
fail:
    free(v);
    return false;
}

/* A request object's envelope as the scanners read it. */
typedef struct envelope {
    span op, token;
    bool has_op, has_token;
} envelope;

/* scan_request: reads the text as one request object: "op" and "token" (each once, strings)
 * into *e, every other member by member(f, name, arg), false to decline. True when the
 * whole text was that object, with an op and a token the JSON reader takes (not a read-only
 * one: the JSON reader marks those requests). */
typedef bool (*member_fn)(fp *f, span name, void *arg);

/* scan_object: an object whose members member reads, one by one (false to decline). */
static bool
scan_object(fp *f, member_fn member, void *arg)
{
    if (!eat(f, '{')) {
        return false;
    }
    do {
        span k;
        if (!str(f, &k) || !eat(f, ':') || !member(f, k, arg)) {
            return false;
        }
    } while (eat(f, ','));
    return eat(f, '}');
}

/* The state of scan_request's reading of members. */
typedef struct envelope_read {
    envelope *e;
    member_fn member; /* the op's other members */
    void *arg;
} envelope_read;

/* envelope_member: "op" or "token" into the envelope, any other member by the op's reader. */
static bool
envelope_member(fp *f, span k, void *arg)
{
    envelope_read *er = arg;
    bool is_op = same(k, "op");
    if (!is_op && !same(k, "token")) {
        return er->member(f, k, er->arg);
    }
    bool *has = is_op ? &er->e->has_op : &er->e->has_token;
    if (*has || !str(f, is_op ? &er->e->op : &er->e->token)) {
        return false;
    }
    *has = true;
    return true;
}

static bool
scan_request(fp *f, envelope *e, member_fn member, void *arg)
{
    envelope_read er = {.e = e, .member = member, .arg = arg};
    if (!scan_object(f, envelope_member, &er)) {
        return false;
    }
    skip_ws(f);
    return f->s == f->end && e->has_op &&
           check_token(f->d, e->has_token ? e->token.p : NULL, e->token.n) && !f->d->read_only;
}

/* A submit or submit_batch as read. */
typedef struct fsubmit {
    fjob one;     /* the submit's job; for a batch, its default "queue" */
    unsigned seen; /* job_member's mask for one */
    fjob *batch;  /* "jobs" (owned) */
    size_t nbatch;
    bool has_jobs;
} fsubmit;

/* submit_member: a member of a submit or submit_batch other than op and token. */
static bool
submit_member(fp *f, span k, void *arg)
{
    fsubmit *sub = arg;
    if (same(k, "jobs")) {
        if (sub->has_jobs || !batch_scan(f, &sub->batch, &sub->nbatch)) {
            return false;
        }
        sub->has_jobs = true;
        return true;
    }
    return job_member(f, k, &sub->one, &sub->seen); /* "queue" too: the submit's own, or the
                                                     * batch's default */
}

/* fast_decode: the scanner of submits; true with *req decoded exactly as the JSON reader
 * would, false (nothing to free) for anything it does not take. */
static bool
fast_decode(dec *d, const char *buf, size_t len, request *req)
{
    fp f = {.s = buf, .end = buf + len, .d = d};
    envelope e = {0};
    fsubmit sub = {.one = {.compact = 4}};
    bool ok = false;
    memset(req, 0, sizeof(*req));
    if (scan_request(&f, &e, submit_member, &sub)) {
        if (same(e.op, "submit") && !sub.has_jobs) {
            ok = assemble(d, req, REQ_SUBMIT, &sub.one, 1, (span){0});
        } else if (same(e.op, "submit_batch") && sub.has_jobs &&
                   (sub.seen & ~queue_bit()) == 0) {
            ok = assemble(d, req, REQ_SUBMIT_BATCH, sub.batch, sub.nbatch, sub.one.queue);
        }
    }
    free(sub.batch);
    if (!ok) {
        jobq__request_free(req);
    }
    return ok;
}

/* ---- The fast scanner: ack and fail ------------------------------------------------------
 * An ack or fail of many jobs ("jobs") with an optional "fetch", in the shapes libjobq and
 * the clients send: entries of ack_job_fields' or fail_job_fields' rows ("snooze" as integer
 * ms), a fetch of fetch_fields' rows ("timeout" as integer ms) and "queues". Strings as str()
 * takes them; no other member (the single form, "slow_down", a null "fetch" go to the JSON
 * reader). Each value goes through the row's check, as json_field does. */

#define FAST_OUTCOMES_STACK 32 /* entries read without an allocation */

/* One entry as read: its fields in place, its strings as spans into the message. */
typedef struct fout {
    req_outcome o;
    span lease;
    span text; /* p NULL: none (absent or null) */
} fout;

/* The "fetch" as read. */
typedef struct ffetch {
    span queue, worker; /* n == 0: not given */
    span queues[FETCH_MAX_QUEUES];
    size_t nqueues; /* 0: "queues" not given */
} ffetch;

/* row: the row of defs (n of them) named k, its bit set in *seen; NULL for a name the table
 * does not have or one already read. */
static const field_def *
row(const field_def *defs, size_t n, span k, unsigned *seen)
{
    for (size_t i = 0; i < n && i < 32; i++) {
        if (k.n == defs[i].namelen && memcmp(k.p, defs[i].name, k.n) == 0) {
            if ((*seen & (1u << i)) != 0) {
                return NULL;
            }
            *seen |= 1u << i;
            return &defs[i];
        }
    }
    return NULL;
}

/* row_value: the value of the row def into dst (F_INT, F_BOOL, F_DURATION as integer ms),
 * or into *sp (F_STRING; F_TEXT, whose null leaves sp->p NULL), checked as json_field
 * checks it. False to decline. */
static bool
row_value(fp *f, const field_def *def, void *dst, span *sp)
{
    long long v;
    skip_ws(f);
    switch (def->kind) {
    case F_INT:
        if (!integer(f, &v) || !check_int(f->d, def, v)) {
            return false;
        }
        store_int(def, dst, v);
        return true;
    case F_DURATION:
        if (!integer(f, &v) || v < 0 || !check_duration(f->d, def, v)) {
            return false;
        }
        store_int(def, dst, v);
        return true;
    case F_BOOL:
        if (literal(f, "true", 4)) {
            *((bool *)((char *)dst + def->off)) = true;
            return true;
        }
        *((bool *)((char *)dst + def->off)) = false;
        return literal(f, "false", 5);
    case F_STRING:
        return str(f, sp) && check_string(f->d, def, sp->p, sp->n);
    case F_TEXT:
        if (literal(f, "null", 4)) {
            *sp = (span){0};
            return true;
        }
        return str(f, sp);
    default:
        return false;
    }
}

/* The state of outcome_entry's reading. */
typedef struct entry_read {
    const field_def *defs; /* ack_job_fields or fail_job_fields */
    size_t ndefs;
    fout *e;
    unsigned seen; /* row's mask */
} entry_read;

/* entry_member: one member of an entry of "jobs", by its row. */
static bool
entry_member(fp *f, span k, void *arg)
{
    entry_read *er = arg;
    const field_def *def = row(er->defs, er->ndefs, k, &er->seen);
    return def != NULL &&
           row_value(f, def, &er->e->o, def->kind == F_TEXT ? &er->e->text : &er->e->lease);
}

/* outcome_entry: one object of "jobs" into *e, by the rows of defs. */
static bool
outcome_entry(fp *f, const field_def *defs, size_t ndefs, fout *e)
{
    *e = (fout){0};
    for (size_t i = 0; i < ndefs; i++) {
        if ((defs[i].flags & FD_DEFAULT) && defs[i].kind == F_BOOL) {
            *((bool *)((char *)&e->o + defs[i].off)) = defs[i].def != 0;
        }
    }
    entry_read er = {.defs = defs, .ndefs = ndefs, .e = e};
    return scan_object(f, entry_member, &er) && (er.seen & 3u) == 3u; /* "id" and "lease",
                                                                        * the first two rows */
}

/* outcome_list: the "jobs" array into out (the first FAST_OUTCOMES_STACK entries in stack,
 * the rest in a growing array whose first entries copy them; *heap owns it). */
static bool
outcome_list(fp *f, const field_def *defs, size_t ndefs, fout *stack, fout **heap, fout **out,
             size_t *nout)
{
    if (!eat(f, '[')) {
        return false;
    }
    fout *v = stack;
    size_t n = 0, cap = FAST_OUTCOMES_STACK;
    do {
        if (n == REQ_OUTCOMES_MAX) {
            return false;
        }
        if (n == cap) {
            cap *= 2;
            fout *grown = realloc(*heap, cap * sizeof(*grown));
            if (grown == NULL) {
                return false;
            }
            if (*heap == NULL) {
                memcpy(grown, stack, n * sizeof(*grown));
            }
            *heap = v = grown;
        }
        if (!outcome_entry(f, defs, ndefs, &v[n++])) {
            return false;
        }
    } while (eat(f, ','));
    *out = v;
    *nout = n;
    return eat(f, ']');
}

/* The state of fetch_object's reading. */
typedef struct fetch_read {
    ffetch *ff;
    request *req;
    unsigned seen;   /* row's mask of fetch_fields */
    bool has_queues;
} fetch_read;

/* fetch_member: one member of a "fetch": "queues", or a row of fetch_fields. */
static bool
fetch_member(fp *f, span k, void *arg)
{
    fetch_read *fr = arg;
    ffetch *ff = fr->ff;
    if (same(k, "queues")) {
        if (fr->has_queues || !eat(f, '[')) {
            return false;
        }
        fr->has_queues = true;
        do {
            if (ff->nqueues == FETCH_MAX_QUEUES || !str(f, &ff->queues[ff->nqueues]) ||
                !queue_name_ok(ff->queues[ff->nqueues].p, ff->queues[ff->nqueues].n)) {
                return false;
            }
            ff->nqueues++;
        } while (eat(f, ','));
        return eat(f, ']');
    }
    const field_def *def = row(fetch_fields, NFIELDS(fetch_fields), k, &fr->seen);
    return def != NULL && def->kind != F_CUSTOM &&
           row_value(f, def, fr->req,
                     def->off == offsetof(request, worker) ? &ff->worker : &ff->queue);
}

/* fetch_object: the "fetch" of an ack or fail into *ff and req's limit and timeout. */
static bool
fetch_object(fp *f, ffetch *ff, request *req)
{
    req->limit = 1; /* fetch_fields' defaults */
    req->timeout_ms = DEFAULT_TIMEOUT_MS;
    fetch_read fr = {.ff = ff, .req = req};
    if (!scan_object(f, fetch_member, &fr)) {
        return false;
    }
    /* fetch_queues: "queues" wins; else the one "queue", which must then be a queue name */
    return ff->nqueues > 0 || (ff->queue.n > 0 && queue_name_ok(ff->queue.p, ff->queue.n));
}

/* arena_copy: s as a C string at *arena, which moves past it. */
static const char *
arena_copy(char **arena, span s)
{
    char *p = *arena;
    memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    *arena += s.n + 1;
    return p;
}

/* outcome_assemble: the request from what was read: the outcomes with every string behind
 * them (one allocation, freed with them) and the fetch's queue list. */
static bool
outcome_assemble(request *req, req_op op, const fout *v, size_t n, const ffetch *ff,
                 bool then)
{
    size_t bytes = n * sizeof(req_outcome) + ff->worker.n + 1 + ff->queue.n + 1;
    for (size_t i = 0; i < n; i++) {
        bytes += v[i].lease.n + 1 + (v[i].text.p != NULL ? v[i].text.n + 1 : 0);
    }
    for (size_t i = 0; i < ff->nqueues; i++) {
        bytes += ff->queues[i].n + 1;
    }
    size_t nq = ff->nqueues > 0 ? ff->nqueues : 1;
    req->outcomes = malloc(bytes);
    req->queues = then ? calloc(nq, sizeof(*req->queues)) : NULL;
    if (req->outcomes == NULL || (then && req->queues == NULL)) {
        return false;
    }
    req->op = op;
    req->noutcomes = n;
    char *arena = (char *)(req->outcomes + n);
    for (size_t i = 0; i < n; i++) {
        req->outcomes[i] = v[i].o;
        req->outcomes[i].lease = arena_copy(&arena, v[i].lease);
        req->outcomes[i].text = v[i].text.p != NULL ? arena_copy(&arena, v[i].text) : NULL;
    }
    if (!then) {
        return true;
    }
    req->then_fetch = true;
    req->nqueues = nq;
    for (size_t i = 0; i < ff->nqueues; i++) {
        req->queues[i] = arena_copy(&arena, ff->queues[i]);
    }
    if (ff->nqueues == 0) {
        req->queues[0] = arena_copy(&arena, ff->queue);
    }
    req->worker = ff->worker.n > 0 ? arena_copy(&arena, ff->worker) : NULL;
    return true;
}

/* An ack or fail as read. */
typedef struct foutcome {
    span jobs; /* the "jobs" array's text, read once the op is known */
    ffetch ff;
    bool then; /* "fetch" given */
    request *req;
} foutcome;

/* outcome_member: a member of an ack or fail other than op and token. */
static bool
outcome_member(fp *f, span k, void *arg)
{
    foutcome *oc = arg;
    if (same(k, "jobs") && oc->jobs.p == NULL) {
        size_t ignored = 0;
        skip_ws(f);
        oc->jobs.p = f->s;
        if (!value(f, 0, &ignored)) {
            return false;
        }
        oc->jobs.n = (size_t)(f->s - oc->jobs.p);
        return true;
    }
    if (same(k, "fetch") && !oc->then) {
        oc->then = true;
        return fetch_object(f, &oc->ff, oc->req);
    }
    return false;
}

/* outcome_decode: the scanner of ack and fail; true with *req decoded exactly as the JSON
 * reader would, false (nothing to free) for anything it does not take. */
static bool
outcome_decode(dec *d, const char *buf, size_t len, request *req)
{
    fp f = {.s = buf, .end = buf + len, .d = d};
    envelope e = {0};
    foutcome oc = {.req = req};
    bool ok = false;
    memset(req, 0, sizeof(*req));
    bool failed = false;
    if (scan_request(&f, &e, outcome_member, &oc) && oc.jobs.p != NULL &&
        ((failed = same(e.op, "fail")) || same(e.op, "ack"))) {
        fout stack[FAST_OUTCOMES_STACK];
        fout *heap = NULL, *v = NULL;
        size_t n = 0;
        fp jf = {.s = oc.jobs.p, .end = oc.jobs.p + oc.jobs.n, .d = d};
        ok = outcome_list(&jf, failed ? fail_job_fields : ack_job_fields,
                          failed ? NFIELDS(fail_job_fields) : NFIELDS(ack_job_fields), stack,
                          &heap, &v, &n) &&
             outcome_assemble(req, failed ? REQ_FAIL : REQ_ACK, v, n, &oc.ff, oc.then);
        free(heap);
    }
    if (!ok) {
        jobq__request_free(req);
    }
    return ok;
}

bool
jobq__request_decode_fast(const char *buf, size_t len, const request_limits *lim, request *req)
{
    dec d = {.code = NULL, .err = NULL, .lim = lim, .batch_index = NOT_IN_BATCH};
    if (fast_decode(&d, buf, len, req)) {
        return true;
    }
    d = (dec){.code = NULL, .err = NULL, .lim = lim, .batch_index = NOT_IN_BATCH};
    return outcome_decode(&d, buf, len, req);
}

/* ---- The decoder ------------------------------------------------------------------------ */

const char *
jobq__request_decode(const char *buf, size_t len, const request_limits *lim, request *req,
                     char *err, size_t errlen)
{
    if (jobq__request_decode_fast(buf, len, lim, req)) {
        return NULL;
    }
    return jobq__request_decode_json(buf, len, lim, req, err, errlen);
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
    free(req->outcomes);
    free(req->queues);
    free(req->checkpoint);
    free(req->log);
    json_decref(req->root);
    memset(req, 0, sizeof(*req));
}
