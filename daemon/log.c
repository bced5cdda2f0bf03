/* log.c: logfmt lines on stderr (journald keeps them). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

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

void
log_write(enum log_level level, const char *event, const char *fields, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level], event);
    if (n < 0) {
        return;
    }
    size_t used = (size_t)n;
    if (fields != NULL && fields[0] != '\0' && used + 1 < sizeof(line)) {
        line[used++] = ' ';
        va_list ap;
        va_start(ap, fields);
        int m = vsnprintf(line + used, sizeof(line) - used, fields, ap);
        va_end(ap);
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
