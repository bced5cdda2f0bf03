/* codec.c: error codes, state names and durations as they appear on the wire. */
#include "codec.h"

#include "clock.h"
#include "duration.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *code;
    int err;
} err_codes[] = {
    {"malformed", JOBQ_EPROTO},        {"unknown_op", JOBQ_EPROTO},
    {"invalid_argument", JOBQ_EINVAL}, {"too_large", JOBQ_ETOOBIG},
    {"unknown_queue", JOBQ_EQUEUE},    {"not_found", JOBQ_ENOENT},
    {"invalid_state", JOBQ_ESTATE},    {"key_conflict", JOBQ_ECONFLICT},
    {"store_full", JOBQ_EFULL},        {"queue_full", JOBQ_EFULL},
    {"store_error", JOBQ_ESTORE},      {"shutting_down", JOBQ_ESHUTDOWN},
    {"unauthorized", JOBQ_EUNAUTH},    {"timeout", JOBQ_ETIMEDOUT},
    {"out_of_memory", JOBQ_ENOMEM},    {"lease_expired", JOBQ_ELEASE}, {"internal", JOBQ_EINTERNAL},
    /* limits, each with its own code */
    {"payload_too_large", JOBQ_ETOOBIG},
    {"batch_too_large", JOBQ_ETOOBIG},
    {"too_many_waits", JOBQ_EBUSY},
    {"too_many_connections", JOBQ_EBUSY},
    {"too_many_queues", JOBQ_EQUEUE},
    {"forbidden", JOBQ_EFORBIDDEN},
    {"store_unavailable", JOBQ_EUNAVAIL},
};

const char *
jobq__err_code(int err)
{
    for (size_t i = 0; i < sizeof(err_codes) / sizeof(err_codes[0]); i++) {
        if (err_codes[i].err == err) {
            return err_codes[i].code;
        }
    }
    return "internal";
}

int
jobq__err_from_code(const char *code)
{
    if (code != NULL) {
        for (size_t i = 0; i < sizeof(err_codes) / sizeof(err_codes[0]); i++) {
            if (strcmp(err_codes[i].code, code) == 0) {
                return err_codes[i].err;
            }
        }
    }
    return JOBQ_EINTERNAL;
}

static const char *const state_names[] = {
    "scheduled", "ready", "running", "retrying", "succeeded", "dead", "cancelled", "waiting",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == JOBQ_WAITING + 1,
               "one name per jobq_state");

const char *
jobq__state_name(int state)
{
    if (state < 0 || state > JOBQ_WAITING) {
        return NULL;
    }
    return state_names[state];
}

int
jobq__state_parse(const char *name)
{
    if (name != NULL) {
        for (int i = 0; i <= JOBQ_WAITING; i++) {
            if (strcmp(state_names[i], name) == 0) {
                return i;
            }
        }
    }
    return -1;
}

bool
jobq__duration_parse(const char *s, int64_t *msp)
{
    return jobq__duration_scan(s, false, msp); /* one term on the wire and in the config */
}

bool
jobq__json_duration(const json_t *v, int64_t *msp)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) {
            return false;
        }
        *msp = (int64_t)i;
        return true;
    }
    if (json_is_string(v)) {
        return jobq__duration_parse(json_string_value(v), msp);
    }
    return false;
}

int64_t
jobq__now_ms(void)
{
    return jobq__wall_ms();
}

/* ---- JSON text without a tree ---- */

bool
jobq__jt_room(jobq__jtext *t, size_t n)
{
    if (t->failed) {
        return false;
    }
    if (t->len + n + 1 <= t->cap) {
        return true;
    }
    size_t cap = t->cap > 0 ? t->cap : 256;
    while (cap < t->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            t->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(t->p, cap);
    if (p == NULL) {
        t->failed = true;
        return false;
    }
    t->p = p;
    t->cap = cap;
    return true;
}

void
jobq__jt_raw(jobq__jtext *t, const char *s, size_t n)
{
    if (jobq__jt_room(t, n)) {
        memcpy(t->p + t->len, s, n);
        t->len += n;
        t->p[t->len] = '\0';
    }
}

void
jobq__jt_str(jobq__jtext *t, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    if (!jobq__jt_room(t, n * 6 + 2)) { /* the worst case: every byte as \u00XX */
        return;
    }
    char *o = t->p + t->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c >= 0x20) {
            *o++ = (char)*c;
        } else {
            *o++ = '\\';
            switch (*c) {
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                memcpy(o, "u00", 3);
                o[3] = hex[*c >> 4];
                o[4] = hex[*c & 15];
                o += 5;
                break;
            }
        }
    }
    *o++ = '"';
    *o = '\0';
    t->len = (size_t)(o - t->p);
}

void
jobq__jt_int(jobq__jtext *t, int64_t v)
{
    /* Digits from the end, without snprintf (a fetch's reply writes about ten numbers per
     * job). The magnitude as unsigned, so INT64_MIN has one too. */
    char buf[24];
    char *p = buf + sizeof(buf);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    jobq__jt_raw(t, p, (size_t)(buf + sizeof(buf) - p));
}

void
jobq__jt_real(jobq__jtext *t, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    if (n <= 0 || (size_t)n >= sizeof(buf) - 2) {
        return;
    }
    if (strpbrk(buf, ".e") == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(buf, 'e');
    if (e != NULL) {
        /* jansson drops the exponent's '+' and its leading zeros: 1e+20 -> 1e20 */
        char *from = e + 1, *to = e + 1;
        if (*from == '-') {
            from++;
            to++;
        } else if (*from == '+') {
            from++;
        }
        while (*from == '0' && from[1] != '\0') {
            from++;
        }
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(buf);
    }
    jobq__jt_raw(t, buf, (size_t)n);
}

void
jobq__jt_key(jobq__jtext *t, const char *key, bool first)
{
    if (!first) {
        jobq__jt_lit(t, ",");
    }
    jobq__jt_str(t, key);
    jobq__jt_lit(t, ":");
}

bool
jobq__utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned c = *p;
        size_t n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                 : c >= 0xf0 && c <= 0xf4 ? 3 : 4;
        if (n == 4) {
            return false;
        }
        uint32_t cp = n == 0 ? c : c & (0x3fu >> n);
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return false;
        }
        p += n + 1;
    }
    return true;
}
