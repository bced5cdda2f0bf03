/* cron.c: parses 5-field cron expressions into bitsets and finds the next local wall-clock
 * minute that matches, in a time zone from tz.c. */
#include "cron.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MIN_MS ((int64_t)-62135596800000) /* 0001-01-01T00:00:00Z */
#define MAX_MS ((int64_t)253402300799999) /* 9999-12-31T23:59:59.999Z */
#define SEARCH_DAYS (5 * 366)
#define NO_TIME INT64_MAX

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct field_def {
    const char *name;
    int min, max;
    int star_max; /* the end of `*` and of `a/n` */
    const char *const *names;
    int nnames;
    int names_base; /* the value of names[0] */
    const char *names_range;
} field_def;

static const field_def fields[5] = {
    {"minute", 0, 59, 59, NULL, 0, 0, NULL},
    {"hour", 0, 23, 23, NULL, 0, 0, NULL},
    {"day-of-month", 1, 31, 31, NULL, 0, 0, NULL},
    {"month", 1, 12, 12, month_names, 12, 1, "jan-dec"},
    {"day-of-week", 0, 7, 6, day_names, 7, 0, "sun-sat"},
};

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

#define FIELDS_HELP "minute hour day-of-month month day-of-week"

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* parse_value: a number or (for months and days) a name at *s, before end. */
static bool
parse_value(const char **s, const char *end, int fno, int *v, char *err, size_t errlen)
{
    const field_def *f = &fields[fno];
    const char *p = *s;
    if (p < end && is_digit(*p)) {
        long n = 0;
        const char *b = p;
        while (p < end && is_digit(*p)) {
            n = n < 1000000 ? n * 10 + (*p - '0') : n;
            p++;
        }
        if (n < f->min || n > f->max) {
            snprintf(err, errlen, "field %d (%s): %.*s is out of range %d-%d", fno + 1, f->name,
                     (int)(p - b), b, f->min, f->max);
            return false;
        }
        *v = (int)n;
        *s = p;
        return true;
    }
    if (p < end && is_alpha(*p)) {
        const char *b = p;
        while (p < end && is_alpha(*p)) {
            p++;
        }
        for (int i = 0; i < f->nnames; i++) {
            if (p - b == 3 && strncasecmp(b, f->names[i], 3) == 0) {
                *v = f->names_base + i;
                *s = p;
                return true;
            }
        }
        if (f->names) {
            snprintf(err, errlen,
                     "field %d (%s): \"%.*s\" is neither a %s name (%s) nor a number %d-%d",
                     fno + 1, f->name, (int)(p - b), b, fno == 3 ? "month" : "day", f->names_range,
                     f->min, f->max);
        } else {
            snprintf(err, errlen, "field %d (%s): \"%.*s\" is not a number %d-%d", fno + 1, f->name,
                     (int)(p - b), b, f->min, f->max);
        }
        return false;
    }
    if (p >= end || *p == ',') {
        snprintf(err, errlen, "field %d (%s): a value is missing", fno + 1, f->name);
    } else {
        snprintf(err, errlen, "field %d (%s): unexpected '%c' where a value should be", fno + 1,
                 f->name, *p);
    }
    return false;
}

/* parse_field: one field's text [s, end) into the bitset *bits (bit v for value v). */
static bool
parse_field(const char *s, const char *end, int fno, uint64_t *bits, char *err, size_t errlen)
{
    const field_def *f = &fields[fno];
    uint64_t set = 0;
    for (;;) {
        int lo, hi, step = 1;
        const char *item = s;
        if (s < end && *s == '*') {
            lo = f->min;
            hi = f->star_max;
            s++;
        } else {
            if (!parse_value(&s, end, fno, &lo, err, errlen)) {
                return false;
            }
            hi = lo;
            if (s < end && *s == '-') {
                s++;
                if (!parse_value(&s, end, fno, &hi, err, errlen)) {
                    return false;
                }
                if (hi < lo) {
                    snprintf(err, errlen,
                             "field %d (%s): range %.*s goes backwards; write the smaller "
                             "value first, or a list such as %d-%d,%d-%d",
                             fno + 1, f->name, (int)(s - item), item, lo, f->max, f->min, hi);
                    return false;
                }
            } else if (s < end && *s == '/') {
                hi = lo > f->star_max ? lo : f->star_max; /* a/n: a to the field's end */
            }
        }
        if (s < end && *s == '/') {
            const char *b = ++s;
            long n = 0;
            while (s < end && is_digit(*s)) {
                n = n < 1000000 ? n * 10 + (*s - '0') : n;
                s++;
            }
            if (s == b) {
                snprintf(err, errlen, "field %d (%s): '/' must be followed by a step (a number)",
                         fno + 1, f->name);
                return false;
            }
            if (n < 1 || n > f->max) {
                snprintf(err, errlen, "field %d (%s): step %.*s is out of range 1-%d", fno + 1,
                         f->name, (int)(s - b), b, f->max);
                return false;
            }
            step = (int)n;
        }
        for (int v = lo; v <= hi; v += step) {
            set |= (uint64_t)1 << (fno == 4 && v == 7 ? 0 : v);
        }
        if (s == end) {
            break;
        }
        if (*s != ',') {
            snprintf(err, errlen, "field %d (%s): unexpected '%c' after \"%.*s\"", fno + 1, f->name,
                     *s, (int)(s - item), item);
            return false;
        }
        if (++s == end) {
            snprintf(err, errlen, "field %d (%s): nothing after the last ','", fno + 1, f->name);
            return false;
        }
    }
    *bits = set;
    return true;
}

int
cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!text) {
        text = "";
    }
    while (is_space(*text)) {
        text++;
    }
    size_t len = strlen(text);
    while (len > 0 && is_space(text[len - 1])) {
        len--;
    }
    if (len > 0 && text[0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            if (strlen(macros[i].name) == len && strncasecmp(text, macros[i].name, len) == 0) {
                return cron_parse(macros[i].expr, out, err, errlen);
            }
        }
        if (len == 7 && strncasecmp(text, "@reboot", 7) == 0) {
            snprintf(err, errlen,
                     "@reboot is not supported: a schedule fires at times of day; "
                     "use a macro such as @daily or 5 fields (" FIELDS_HELP ")");
        } else {
            snprintf(err, errlen,
                     "unknown macro \"%.*s\" (known: @yearly @annually @monthly @weekly @daily "
                     "@midnight @hourly)",
                     (int)(len > 40 ? 40 : len), text);
        }
        return -1;
    }
    const char *start[5], *stop[5];
    int n = 0;
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *b = s;
        while (s < end && !is_space(*s)) {
            s++;
        }
        if (n < 5) {
            start[n] = b;
            stop[n] = s;
        }
        n++;
        while (s < end && is_space(*s)) {
            s++;
        }
    }
    if (n != 5) {
        snprintf(err, errlen, "%s cron expression: expected 5 fields (" FIELDS_HELP "), got %d%s",
                 n == 0 ? "empty" : "bad", n, n == 6 ? " (there is no seconds or year field)" : "");
        return -1;
    }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        if (!parse_field(start[i], stop[i], i, &bits[i], err, errlen)) {
            return -1;
        }
    }
    *out = (cron_expr){
        .minutes = bits[0],
        .hours = (uint32_t)bits[1],
        .mdays = (uint32_t)bits[2],
        .months = (uint16_t)bits[3],
        .wdays = (uint8_t)bits[4],
        .mday_any = *start[2] == '*',
        .wday_any = *start[4] == '*',
    };
    return 0;
}

bool
cron_day_matches(const cron_expr *e, int m, int d, int wday)
{
    if (!(e->months >> m & 1)) {
        return false;
    }
    bool md = e->mdays >> d & 1, wd = e->wdays >> wday & 1;
    if (!e->mday_any && !e->wday_any) {
        return md || wd;
    }
    return md && wd;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t
cron_next(const cron_expr *e, const tz *z, int64_t after_ms)
{
    if (after_ms < MIN_MS || after_ms > MAX_MS || !e->minutes || !e->hours) {
        return -1;
    }
    int64_t start = (floor_div(after_ms, 60000) + 1) * 60; /* Unix s, the earliest answer */
    int32_t min_off, max_off;
    tz_offset_range(z, &min_off, &max_off);
    /* Every local time L maps to an instant in [L - max_off, L - min_off]: local times
     * before l0 map before start, and once L - max_off passes the best answer so far,
     * nothing later can beat it (skipped local times map forward, so the mapping is not
     * monotonic around a DST gap; this bound makes the search exact anyway). */
    int64_t l0 = floor_div(start + min_off, 60) * 60;
    int64_t day = floor_div(l0, 86400);
    int64_t last_day = day + SEARCH_DAYS;
    int64_t best = NO_TIME;
    while (day <= last_day) {
        int64_t day_s = day * 86400;
        if (best != NO_TIME && day_s - max_off > best) {
            break;
        }
        int64_t y;
        int m, d;
        tz_civil_from_days(day, &y, &m, &d);
        if (!(e->months >> m & 1)) { /* on to the 1st of the next month */
            day = tz_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1);
            continue;
        }
        int wday = (int)(((day % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
        if (!cron_day_matches(e, m, d, wday)) {
            day++;
            continue;
        }
        for (int h = 0; h < 24; h++) {
            int64_t hour_s = day_s + h * 3600;
            if (!(e->hours >> h & 1) || hour_s + 3599 < l0) {
                continue;
            }
            if (best != NO_TIME && hour_s - max_off > best) {
                goto done;
            }
            for (int mi = 0; mi < 60; mi++) {
                int64_t local = hour_s + mi * 60;
                if (!(e->minutes >> mi & 1) || local < l0) {
                    continue;
                }
                if (best != NO_TIME && local - max_off > best) {
                    goto done;
                }
                int64_t u = tz_local_to_utc(z, local);
                if (u >= start && u < best) {
                    best = u;
                }
            }
        }
        day++;
    }
done:
    return best == NO_TIME ? -1 : best * 1000;
}
