/* fastreq.c: the fast path of the request decoder: submit and submit_batch in their common,
 * simple shapes, read straight from the text without building a JSON tree. Anything else
 * (an unknown or unusual field, escapes, non-ASCII text, reals, a key, any error) is left to
 * the JSON decoder of request.c, so both always agree on what they accept. */
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define FAST_MAX_DEPTH 16 /* payload nesting the fast path follows */
#define FAST_MAX_KEYS 32  /* members per payload object whose names it checks for duplicates */
#define FAST_MAX_INT 18   /* digits of an integer it reads (no overflow of json_int_t) */

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct fp {
    const char *s, *end;
} fp;

/* One job as read: spans into the message, until the request is assembled. */
typedef struct fjob {
    span queue;     /* n == 0: none given */
    span payload;   /* n == 0: none given (null) */
    size_t compact; /* bytes of the payload without insignificant white space */
    long long priority, max_attempts, run_at;
    bool has_run_at;
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
                    return false; /* a duplicate: the JSON decoder rejects the request */
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

/* job_member: one member of a job object (or of a submit request) that describes the job;
 * false for a name the fast path does not handle or a value it does not take. */
static bool
job_member(fp *f, span k, fjob *j, unsigned *seen)
{
    static const char *const names[] = {"queue", "payload", "priority", "max_attempts", "run_at"};
    unsigned bit = 0;
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (same(k, names[i])) {
            bit = 1u << i;
        }
    }
    if (bit == 0 || (*seen & bit) != 0) {
        return false;
    }
    *seen |= bit;
    switch (bit) {
    case 1u << 0:
        return str(f, &j->queue) && j->queue.n > 0 && j->queue.n <= 64;
    case 1u << 1: {
        skip_ws(f);
        const char *start = f->s;
        j->compact = 0;
        if (!value(f, 0, &j->compact)) {
            return false;
        }
        j->payload = (span){start, (size_t)(f->s - start)};
        return true;
    }
    case 1u << 2:
        return integer(f, &j->priority) && j->priority >= INT32_MIN && j->priority <= INT32_MAX;
    case 1u << 3:
        return integer(f, &j->max_attempts) && j->max_attempts >= 1 && j->max_attempts <= 1000000;
    default:
        j->has_run_at = true;
        return integer(f, &j->run_at) && j->run_at >= 0 && j->run_at <= jobq__run_at_max_ms();
    }
}

static bool
valid_queue(span q)
{
    char name[65];
    memcpy(name, q.p, q.n);
    name[q.n] = '\0';
    return jobq__valid_queue_name(name);
}

/* assemble: the request from the jobs read; queue names are copied behind the jobs array
 * (one allocation, freed with it), payloads are compacted into their own buffers. */
static bool
assemble(request *req, req_op op, const fjob *fj, size_t n, span default_queue,
         const request_limits *lim)
{
    size_t names = 0;
    for (size_t i = 0; i < n; i++) {
        span q = fj[i].queue.n > 0 ? fj[i].queue : default_queue;
        if (q.n == 0 || !valid_queue(q) || fj[i].compact > lim->max_payload) {
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
        j->priority = (int32_t)f->priority;
        j->max_attempts = (int32_t)f->max_attempts;
        j->has_run_at = f->has_run_at;
        j->run_at_ms = f->run_at;
    }
    return true;
}

/* batch_jobs: the "jobs" array of a submit_batch into a growing array of fjob. */
static bool
batch_jobs(fp *f, const request_limits *lim, fjob **out, size_t *nout)
{
    if (!eat(f, '[')) {
        return false;
    }
    fjob *v = NULL;
    size_t n = 0, cap = 0;
    do {
        if (n == lim->max_batch) {
            goto fail; /* too_large, from the JSON decoder */
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

bool
jobq__request_decode_fast(const char *buf, size_t len, const request_limits *lim, request *req)
{
    fp f = {.s = buf, .end = buf + len};
    span op = {0}, queue = {0}, token = {0};
    fjob one = {.compact = 4};
    unsigned seen = 0;
    fjob *batch = NULL;
    size_t nbatch = 0;
    bool has_op = false, has_token = false, has_jobs = false, ok = false;
    memset(req, 0, sizeof(*req));
    if (!eat(&f, '{')) {
        return false;
    }
    do {
        span k;
        if (!str(&f, &k) || !eat(&f, ':')) {
            goto out;
        }
        if (same(k, "op")) {
            if (has_op || !str(&f, &op)) {
                goto out;
            }
            has_op = true;
        } else if (same(k, "token")) {
            if (has_token || !str(&f, &token)) {
                goto out;
            }
            has_token = true;
        } else if (same(k, "jobs")) {
            if (has_jobs || !batch_jobs(&f, lim, &batch, &nbatch)) {
                goto out;
            }
            has_jobs = true;
        } else if (same(k, "queue")) {
            /* The submit's own queue, or the batch's default: the same rules. */
            if (!job_member(&f, k, &one, &seen)) {
                goto out;
            }
            queue = one.queue;
        } else if (!job_member(&f, k, &one, &seen)) {
            goto out;
        }
    } while (eat(&f, ','));
    if (!eat(&f, '}')) {
        goto out;
    }
    skip_ws(&f);
    if (f.s != f.end || !has_op) {
        goto out;
    }
    if (lim->token != NULL) {
        char t[256];
        if (!has_token || token.n >= sizeof(t)) {
            goto out;
        }
        memcpy(t, token.p, token.n);
        t[token.n] = '\0';
        if (!jobq__token_equal(t, lim->token)) {
            goto out;
        }
    }
    if (same(op, "submit") && !has_jobs) {
        ok = assemble(req, REQ_SUBMIT, &one, 1, (span){0}, lim);
    } else if (same(op, "submit_batch") && has_jobs && (seen & ~1u) == 0) {
        ok = assemble(req, REQ_SUBMIT_BATCH, batch, nbatch, queue, lim);
    }
out:
    free(batch);
    if (!ok) {
        jobq__request_free(req);
    }
    return ok;
}

const char *
jobq__request_decode(const char *buf, size_t len, const request_limits *lim, request *req,
                     char *err, size_t errlen)
{
    if (jobq__request_decode_fast(buf, len, lim, req)) {
        return NULL;
    }
    return jobq__request_decode_json(buf, len, lim, req, err, errlen);
}
