/* tz.c: time zones from TZif files (RFC 8536, versions 1 to 4) and the POSIX TZ rule in
 * their footer, kept in an immutable struct: no TZ, no tzset, no localtime, no globals. */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_FILE_MAX (1024 * 1024) /* real TZif files are a few KiB */
#define TZ_NAME_MAX 255
#define TZ_HINT "zone names look like Europe/Paris, America/New_York or UTC"
#define DAY_S 86400
#define T_LIMIT ((int64_t)1 << 50) /* about 35 million years: keeps date arithmetic exact */

typedef struct tz_type {
    int32_t utoff_s; /* seconds east of UTC */
    bool isdst;
} tz_type;

enum rule_kind {
    RULE_J1,  /* Jn: day n of 1-365, February 29 never counted */
    RULE_J0,  /* n: day n of 0-365, February 29 counted */
    RULE_MWD, /* Mm.w.d: day d (0 = Sunday) of week w (5 = last) of month m */
};

typedef struct tz_rule {
    enum rule_kind kind;
    int yday; /* RULE_J1, RULE_J0 */
    int month, week, wday;
    int32_t time_s; /* local time of day of the change, may be negative or past 24h */
} tz_rule;

/* The footer's "std offset [dst [offset] [,start[/time],end[/time]]]". */
typedef struct tz_posix {
    int32_t std_s; /* seconds east of UTC */
    int32_t dst_s;
    bool has_dst;
    tz_rule start; /* into DST, at a time in standard time */
    tz_rule end;   /* out of DST, at a time in DST */
} tz_posix;

struct tz {
    char *name;
    int64_t *at;  /* transition times, Unix seconds, ascending */
    uint8_t *idx; /* idx[i]: the type in effect from at[i] */
    size_t n;     /* transitions */
    tz_type *types;
    size_t ntypes;
    size_t first; /* type in effect before at[0] */
    bool has_posix;
    tz_posix posix; /* in effect from at[n - 1] on (everywhere when n == 0) */
    int32_t min_s, max_s;
};

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar). */
int64_t
tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool
is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* weekday: 0 = Sunday; 1970-01-01 was a Thursday. */
static int
weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* ---- the POSIX TZ rule ---- */

/* rule_utc: the Unix time of rule r in year y, when the offset in effect before it is off. */
static int64_t
rule_utc(const tz_rule *r, int64_t y, int32_t off)
{
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    int64_t day;
    switch (r->kind) {
    case RULE_J1:
        day = jan1 + r->yday - 1 + (is_leap(y) && r->yday >= 60);
        break;
    case RULE_J0:
        day = jan1 + r->yday;
        break;
    default: {
        int64_t first = tz_days_from_civil(y, r->month, 1);
        int d = (r->wday - weekday(first) + 7) % 7 + (r->week - 1) * 7;
        while (d >= month_days(y, r->month)) {
            d -= 7;
        }
        day = first + d;
        break;
    }
    }
    return day * DAY_S + r->time_s - off;
}

static int32_t
posix_offset(const tz_posix *p, int64_t t)
{
    if (!p->has_dst) {
        return p->std_s;
    }
    t = t > T_LIMIT ? T_LIMIT : t < -T_LIMIT ? -T_LIMIT : t;
    int64_t y;
    int m, d;
    tz_civil_from_days(floor_div(t, DAY_S), &y, &m, &d);
    /* DST runs from start(yy) to the first end after it: end(yy) in the northern
     * hemisphere, end(yy + 1) in the southern one. Neighbouring years cover rules whose
     * instants cross New Year in UTC. */
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = rule_utc(&p->start, yy, p->std_s);
        int64_t e = rule_utc(&p->end, yy, p->dst_s);
        if (e <= s) {
            e = rule_utc(&p->end, yy + 1, p->dst_s);
        }
        if (s <= t && t < e) {
            return p->dst_s;
        }
    }
    return p->std_s;
}

/* parse_num: up to maxdigits decimal digits into *v; the rest of s, or NULL. */
static const char *
parse_num(const char *s, int maxdigits, int *v)
{
    int n = 0, k = 0;
    while (*s >= '0' && *s <= '9' && k < maxdigits) {
        n = n * 10 + (*s++ - '0');
        k++;
    }
    if (k == 0) {
        return NULL;
    }
    *v = n;
    return s;
}

/* parse_hms: [+-]h[hh][:mm[:ss]] with hours up to maxh, as signed seconds. */
static const char *
parse_hms(const char *s, int maxh, int32_t *out)
{
    int sign = 1, h, mi = 0, se = 0;
    if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
    }
    if (!(s = parse_num(s, 3, &h)) || h > maxh) {
        return NULL;
    }
    if (*s == ':') {
        if (!(s = parse_num(s + 1, 2, &mi)) || mi > 59) {
            return NULL;
        }
        if (*s == ':' && (!(s = parse_num(s + 1, 2, &se)) || se > 59)) {
            return NULL;
        }
    }
    *out = sign * (h * 3600 + mi * 60 + se);
    return s;
}

/* parse_abbr: "CET" (3+ letters) or "<+0530>" (3+ of alnum, '+', '-'). */
static const char *
parse_abbr(const char *s)
{
    const char *b;
    if (*s == '<') {
        for (b = ++s; *s && *s != '>'; s++) {
            bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                      (*s >= '0' && *s <= '9') || *s == '+' || *s == '-';
            if (!ok) {
                return NULL;
            }
        }
        return *s == '>' && s - b >= 3 ? s + 1 : NULL;
    }
    for (b = s; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'); s++) {
    }
    return s - b >= 3 ? s : NULL;
}

static const char *
parse_rule(const char *s, tz_rule *r)
{
    memset(r, 0, sizeof *r);
    r->time_s = 2 * 3600;
    if (*s == 'M') {
        r->kind = RULE_MWD;
        if (!(s = parse_num(s + 1, 2, &r->month)) || r->month < 1 || r->month > 12 || *s != '.' ||
            !(s = parse_num(s + 1, 1, &r->week)) || r->week < 1 || r->week > 5 || *s != '.' ||
            !(s = parse_num(s + 1, 1, &r->wday)) || r->wday > 6) {
            return NULL;
        }
    } else if (*s == 'J') {
        r->kind = RULE_J1;
        if (!(s = parse_num(s + 1, 3, &r->yday)) || r->yday < 1 || r->yday > 365) {
            return NULL;
        }
    } else {
        r->kind = RULE_J0;
        if (!(s = parse_num(s, 3, &r->yday)) || r->yday > 365) {
            return NULL;
        }
    }
    if (*s == '/') {
        s = parse_hms(s + 1, 167, &r->time_s);
    }
    return s;
}

/* parse_posix: the footer rule; false if it is not one this reader understands. */
static bool
parse_posix(const char *s, tz_posix *p)
{
    int32_t off;
    memset(p, 0, sizeof *p);
    if (!(s = parse_abbr(s)) || !(s = parse_hms(s, 24, &off))) {
        return false;
    }
    p->std_s = -off; /* POSIX offsets count hours west */
    p->dst_s = p->std_s;
    if (*s == '\0') {
        return true;
    }
    if (!(s = parse_abbr(s))) {
        return false;
    }
    p->has_dst = true;
    p->dst_s = p->std_s + 3600;
    if (*s != ',' && *s != '\0') {
        if (!(s = parse_hms(s, 24, &off))) {
            return false;
        }
        p->dst_s = -off;
    }
    if (*s == '\0') {
        /* No rule: POSIX leaves it to the implementation; the US rule, as glibc does. */
        s = ",M3.2.0,M11.1.0";
    }
    if (*s != ',' || !(s = parse_rule(s + 1, &p->start)) || *s != ',' ||
        !(s = parse_rule(s + 1, &p->end))) {
        return false;
    }
    return *s == '\0';
}

/* ---- TZif ---- */

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    size_t isut, isstd, leap, time, type, chars;
} tzif_counts;

/* read_header: the 44-byte header at buf[off]; false if it is not one. */
static bool
read_header(const unsigned char *buf, size_t len, size_t off, int *version, tzif_counts *c)
{
    if (len < 44 || off > len - 44 || memcmp(buf + off, "TZif", 4) != 0) {
        return false;
    }
    const unsigned char *h = buf + off;
    *version = h[4] == 0 ? 1 : h[4] - '0';
    c->isut = be32(h + 20);
    c->isstd = be32(h + 24);
    c->leap = be32(h + 28);
    c->time = be32(h + 32);
    c->type = be32(h + 36);
    c->chars = be32(h + 40);
    return true;
}

static size_t
block_size(const tzif_counts *c, size_t timesize)
{
    return c->time * timesize + c->time + c->type * 6 + c->chars + c->leap * (timesize + 4) +
           c->isstd + c->isut;
}

/* parse_tzif: fills z from a TZif file's bytes; a reason in why (for the caller's message)
 * on failure. */
static bool
parse_tzif(tz *z, const unsigned char *buf, size_t len, const char **why)
{
    int version;
    tzif_counts c;
    size_t timesize = 4, off = 0;
    *why = "not a TZif file";
    if (!read_header(buf, len, 0, &version, &c)) {
        return false;
    }
    *why = "a truncated or corrupt TZif file";
    if (version >= 2) { /* skip the 32-bit block: the 64-bit one follows */
        off = 44 + block_size(&c, 4);
        if (off > len || !read_header(buf, len, off, &version, &c)) {
            return false;
        }
        timesize = 8;
    }
    off += 44;
    if (c.type == 0 || c.type > 256 || block_size(&c, timesize) > len - off) {
        return false;
    }
    if (c.leap > 0) {
        *why = "a zone with leap seconds (a right/ zone), which jobqd does not use";
        return false;
    }
    const unsigned char *p = buf + off;
    z->n = c.time;
    z->ntypes = c.type;
    z->at = malloc((c.time ? c.time : 1) * sizeof *z->at);
    z->idx = malloc(c.time ? c.time : 1);
    z->types = malloc(c.type * sizeof *z->types);
    if (!z->at || !z->idx || !z->types) {
        *why = "out of memory";
        return false;
    }
    *why = "a corrupt TZif file";
    for (size_t i = 0; i < c.time; i++, p += timesize) {
        z->at[i] = timesize == 8 ? be64(p) : (int32_t)be32(p);
        if (i > 0 && z->at[i] <= z->at[i - 1]) {
            return false;
        }
    }
    for (size_t i = 0; i < c.time; i++) {
        z->idx[i] = *p++;
        if (z->idx[i] >= c.type) {
            return false;
        }
    }
    for (size_t i = 0; i < c.type; i++, p += 6) {
        int32_t u = (int32_t)be32(p);
        if (u < -25 * 3600 || u > 26 * 3600) { /* RFC 8536: -2^31 is invalid; real: +-26h */
            return false;
        }
        z->types[i] = (tz_type){.utoff_s = u, .isdst = p[4] != 0};
    }
    z->first = 0;
    for (size_t i = 0; i < c.type; i++) {
        if (!z->types[i].isdst) {
            z->first = i;
            break;
        }
    }
    off += block_size(&c, timesize);
    if (version >= 2 && off < len && buf[off] == '\n') {
        const unsigned char *nl = memchr(buf + off + 1, '\n', len - off - 1);
        size_t flen = nl ? (size_t)(nl - (buf + off + 1)) : 0;
        if (nl && flen > 0) {
            char footer[256];
            if (flen >= sizeof footer || memchr(buf + off + 1, '\0', flen)) {
                *why = "a TZif file whose footer rule is unreadable";
                return false;
            }
            memcpy(footer, buf + off + 1, flen);
            footer[flen] = '\0';
            if (!parse_posix(footer, &z->posix)) {
                *why = "a TZif file whose footer rule is not a POSIX TZ string";
                return false;
            }
            z->has_posix = true;
        }
    }
    return true;
}

static void
set_range(tz *z)
{
    z->min_s = INT32_MAX;
    z->max_s = INT32_MIN;
    for (size_t i = 0; i < z->ntypes; i++) {
        int32_t u = z->types[i].utoff_s;
        z->min_s = u < z->min_s ? u : z->min_s;
        z->max_s = u > z->max_s ? u : z->max_s;
    }
    if (z->has_posix) {
        int32_t a = z->posix.std_s, b = z->posix.dst_s;
        z->min_s = a < z->min_s ? a : z->min_s;
        z->min_s = b < z->min_s ? b : z->min_s;
        z->max_s = a > z->max_s ? a : z->max_s;
        z->max_s = b > z->max_s ? b : z->max_s;
    }
}

static bool
name_ok(const char *name, char *err, size_t errlen)
{
    if (!name || !*name) {
        snprintf(err, errlen, "empty time zone name: %s", TZ_HINT);
        return false;
    }
    if (strlen(name) > TZ_NAME_MAX) {
        snprintf(err, errlen, "time zone name too long (%zu bytes, at most %d): %s", strlen(name),
                 TZ_NAME_MAX, TZ_HINT);
        return false;
    }
    if (name[0] == '/') {
        snprintf(err, errlen, "time zone \"%s\": absolute paths are not accepted; %s", name,
                 TZ_HINT);
        return false;
    }
    if (strstr(name, "..")) {
        snprintf(err, errlen, "time zone \"%s\": \"..\" is not allowed in a zone name; %s", name,
                 TZ_HINT);
        return false;
    }
    for (const char *s = name; *s; s++) {
        bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                  (*s >= '0' && *s <= '9') || strchr("/_+-.", *s);
        if (!ok) {
            snprintf(err, errlen, "time zone \"%s\": unexpected character '%c' (0x%02x); %s", name,
                     (*s >= 0x20 && *s < 0x7f) ? *s : '?', (unsigned char)*s, TZ_HINT);
            return false;
        }
    }
    return true;
}

/* read_zone_file: the bytes of path into *buf (malloc'd); false with err set. */
static bool
read_zone_file(const char *name, const char *dir, const char *path, unsigned char **buf,
               size_t *len, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if ((e == ENOENT || e == ENOTDIR) && stat(dir, &st) != 0) {
            snprintf(err, errlen,
                     "unknown time zone \"%s\": no zone directory %s (install tzdata, or set "
                     "TZDIR)",
                     name, dir);
        } else if (e == ENOENT || e == ENOTDIR) {
            snprintf(err, errlen, "unknown time zone \"%s\": no file %s (%s)", name, path, TZ_HINT);
        } else {
            snprintf(err, errlen, "time zone \"%s\": cannot open %s: %s", name, path, strerror(e));
        }
        return false;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "unknown time zone \"%s\": %s is not a zone file (%s)", name, path,
                 TZ_HINT);
        close(fd);
        return false;
    }
    if (st.st_size > TZ_FILE_MAX) {
        snprintf(err, errlen, "time zone \"%s\": %s is %lld bytes, too big for a TZif file", name,
                 path, (long long)st.st_size);
        close(fd);
        return false;
    }
    *len = 0;
    *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (!*buf) {
        snprintf(err, errlen, "time zone \"%s\": out of memory", name);
        close(fd);
        return false;
    }
    while (*len < (size_t)st.st_size) {
        ssize_t r = read(fd, *buf + *len, (size_t)st.st_size - *len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            snprintf(err, errlen, "time zone \"%s\": cannot read %s: %s", name, path,
                     r < 0 ? strerror(errno) : "file shrank while reading");
            close(fd);
            free(*buf);
            *buf = NULL;
            return false;
        }
        *len += (size_t)r;
    }
    close(fd);
    return true;
}

tz *
tz_load(const char *name, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!name_ok(name, err, errlen)) {
        return NULL;
    }
    tz *z = calloc(1, sizeof *z);
    if (!z || !(z->name = strdup(name))) {
        snprintf(err, errlen, "time zone \"%s\": out of memory", name);
        tz_free(z);
        return NULL;
    }
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
        z->types = calloc(1, sizeof *z->types);
        if (!z->types) {
            snprintf(err, errlen, "time zone \"%s\": out of memory", name);
            tz_free(z);
            return NULL;
        }
        z->ntypes = 1;
        set_range(z);
        return z;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) {
        dir = TZ_DEFAULT_DIR;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(err, errlen, "time zone \"%s\": path under %s too long", name, dir);
        tz_free(z);
        return NULL;
    }
    unsigned char *buf;
    size_t len;
    if (!read_zone_file(name, dir, path, &buf, &len, err, errlen)) {
        tz_free(z);
        return NULL;
    }
    const char *why;
    bool ok = parse_tzif(z, buf, len, &why);
    free(buf);
    if (!ok) {
        snprintf(err, errlen, "time zone \"%s\": %s is %s", name, path, why);
        tz_free(z);
        return NULL;
    }
    set_range(z);
    return z;
}

void
tz_free(tz *z)
{
    if (!z) {
        return;
    }
    free(z->name);
    free(z->at);
    free(z->idx);
    free(z->types);
    free(z);
}

const char *
tz_name(const tz *z)
{
    return z->name;
}

int32_t
tz_offset_at(const tz *z, int64_t utc_s)
{
    if (z->n == 0) {
        return z->has_posix ? posix_offset(&z->posix, utc_s) : z->types[z->first].utoff_s;
    }
    if (utc_s < z->at[0]) {
        return z->types[z->first].utoff_s;
    }
    if (utc_s >= z->at[z->n - 1] && z->has_posix) {
        return posix_offset(&z->posix, utc_s);
    }
    size_t lo = 0, hi = z->n; /* at[lo] <= utc_s; the answer is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= utc_s) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return z->types[z->idx[lo]].utoff_s;
}

int64_t
tz_local_to_utc(const tz *z, int64_t local_s)
{
    if (local_s > T_LIMIT || local_s < -T_LIMIT) {
        return local_s - tz_offset_at(z, local_s);
    }
    /* Offsets stay within +-26h, so the instants that can show local_s lie within a day of
     * it: the offset a day before and the one a day after bracket any change there. */
    int32_t before = tz_offset_at(z, local_s - DAY_S);
    int32_t after = tz_offset_at(z, local_s + DAY_S);
    int64_t t_before = local_s - before, t_after = local_s - after;
    if (before == after) {
        return t_before;
    }
    bool ok_before = tz_offset_at(z, t_before) == before;
    bool ok_after = tz_offset_at(z, t_after) == after;
    if (ok_before && ok_after) { /* it occurs twice: the first one */
        return t_before < t_after ? t_before : t_after;
    }
    if (ok_after) {
        return t_after;
    }
    /* ok_before alone, or neither: in a gap, the offset from before the jump reads it as
     * the time that far past the jump. */
    return t_before;
}

void
tz_offset_range(const tz *z, int32_t *min_s, int32_t *max_s)
{
    *min_s = z->min_s;
    *max_s = z->max_s;
}
