/* log.c: logfmt lines on stderr (journald keeps them), at most LOG_BURST a second per event. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Event names tracked for the rate limit; events beyond them share the last slot. */
#define LOG_SLOTS 256
#define LOG_NAME_MAX 48

/* One event name's rate limit: lines written in the current second and lines dropped. */
typedef struct log_slot {
    char name[LOG_NAME_MAX]; /* "": unused */
    int64_t sec;             /* the second `lines` counts */
    unsigned lines;
    uint64_t pending;     /* dropped and not reported by a log_suppressed line yet */
    uint64_t dropped;     /* dropped since jobqd started */
    enum log_level level; /* of the last line dropped: the report's level */
} log_slot;

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The rate limit's state, shared by every thread that logs. */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static log_slot slots[LOG_SLOTS];
static int64_t swept_sec; /* the last second whose pending counts were reported */

/* A log_suppressed line to write once the lock is released. */
typedef struct log_report {
    char name[LOG_NAME_MAX];
    uint64_t count;
    enum log_level level;
} log_report;

void
log_set_level(enum log_level level)
{
    min_level = level;
}

bool
log_enabled(enum log_level level)
{
    return level >= min_level;
}

/* slot_of: the slot of event (found or claimed); the last slot when all are taken. Under
 * slots_mu. */
static log_slot *
slot_of(const char *event)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)event; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    for (size_t i = 0; i < LOG_SLOTS - 1; i++) {
        log_slot *sl = &slots[(h + i) % (LOG_SLOTS - 1)];
        if (sl->name[0] == '\0') {
            snprintf(sl->name, sizeof(sl->name), "%s", event);
            return sl;
        }
        if (strncmp(sl->name, event, sizeof(sl->name) - 1) == 0) {
            return sl;
        }
    }
    log_slot *other = &slots[LOG_SLOTS - 1];
    if (other->name[0] == '\0') {
        snprintf(other->name, sizeof(other->name), "other");
    }
    return other;
}

/* take_pending: moves the pending counts of past seconds into reports (at most max), once a
 * second. Returns how many. Under slots_mu. */
static size_t
take_pending(int64_t now_s, log_report *reports, size_t max)
{
    if (now_s == swept_sec) {
        return 0;
    }
    swept_sec = now_s;
    size_t n = 0;
    for (size_t i = 0; i < LOG_SLOTS && n < max; i++) {
        log_slot *sl = &slots[i];
        if (sl->pending > 0 && sl->sec != now_s) {
            memcpy(reports[n].name, sl->name, sizeof(reports[n].name));
            reports[n].count = sl->pending;
            reports[n].level = sl->level;
            sl->pending = 0;
            n++;
        }
    }
    if (n == max) {
        swept_sec = now_s - 1; /* the rest on the next line */
    }
    return n;
}

/* write_line: one line "ts=... level=... event=EVENT fields\n" in one write(2). */
static void
write_line(const struct timeval *tv, enum log_level level, const char *event, const char *fields,
           va_list ap)
{
    char line[2048];
    struct tm tm;
    gmtime_r(&tv->tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv->tv_usec / 1000), level_names[level], event);
    if (n < 0) {
        return;
    }
    size_t used = (size_t)n;
    if (fields != NULL && fields[0] != '\0' && used + 1 < sizeof(line)) {
        line[used++] = ' ';
        int m = vsnprintf(line + used, sizeof(line) - used, fields, ap);
        if (m > 0) {
            used += (size_t)m;
        }
    }
    if (used > sizeof(line) - 2) {
        used = sizeof(line) - 2;
    }
    line[used++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w;
}

/* write_plain: write_line with its arguments (checked as printf's). */
static void write_plain(const struct timeval *tv, enum log_level level, const char *event,
                        const char *fields, ...) __attribute__((format(printf, 4, 5)));

static void
write_plain(const struct timeval *tv, enum log_level level, const char *event, const char *fields,
            ...)
{
    va_list ap;
    va_start(ap, fields);
    write_line(tv, level, event, fields, ap);
    va_end(ap);
}

static void
write_reports(const struct timeval *tv, const log_report *reports, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        write_plain(tv, reports[i].level, "log_suppressed", "name=%s count=%llu", reports[i].name,
                    (unsigned long long)reports[i].count);
    }
}

void
log_write(enum log_level level, const char *event, const char *fields, ...)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t now_s = (int64_t)tv.tv_sec;
    log_report reports[8];
    pthread_mutex_lock(&slots_mu);
    size_t nreports = take_pending(now_s, reports, sizeof(reports) / sizeof(reports[0]));
    log_slot *sl = slot_of(event);
    if (sl->sec != now_s) {
        sl->sec = now_s;
        sl->lines = 0;
    }
    bool drop = sl->lines >= LOG_BURST;
    if (drop) {
        sl->pending++;
        sl->dropped++;
        sl->level = level;
    } else {
        sl->lines++;
    }
    pthread_mutex_unlock(&slots_mu);
    write_reports(&tv, reports, nreports);
    if (drop) {
        return;
    }
    va_list ap;
    va_start(ap, fields);
    write_line(&tv, level, event, fields, ap);
    va_end(ap);
}

void
log_flush_suppressed(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    log_report reports[8];
    pthread_mutex_lock(&slots_mu);
    size_t n = take_pending((int64_t)tv.tv_sec, reports, sizeof(reports) / sizeof(reports[0]));
    pthread_mutex_unlock(&slots_mu);
    write_reports(&tv, reports, n);
}

void
log_suppressed_each(void (*cb)(void *arg, const char *event, uint64_t dropped), void *arg)
{
    log_report copy[LOG_SLOTS];
    size_t n = 0;
    pthread_mutex_lock(&slots_mu);
    for (size_t i = 0; i < LOG_SLOTS; i++) {
        if (slots[i].dropped > 0) {
            memcpy(copy[n].name, slots[i].name, sizeof(copy[n].name));
            copy[n++].count = slots[i].dropped;
        }
    }
    pthread_mutex_unlock(&slots_mu);
    for (size_t i = 0; i < n; i++) {
        cb(arg, copy[i].name, copy[i].count);
    }
}

const char *
log_quote(char *buf, size_t len, const char *s)
{
    if (len < 3) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return buf;
    }
    if (s == NULL) {
        s = "";
    }
    bool plain = s[0] != '\0';
    for (const char *p = s; *p != '\0'; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f) {
            plain = false;
            break;
        }
    }
    if (plain) {
        snprintf(buf, len, "%s", s);
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *p = s; *p != '\0' && o + 4 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < ' ' || c == 0x7f) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
