/* log.h: logfmt lines on stderr, one event a line; the level is checked before formatting. */
#ifndef JOBQD_LOG_H
#define JOBQD_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/** log_set_level: lines below level are dropped. Call before any other thread logs. */
void log_set_level(enum log_level level);

/** log_enabled: whether a line at level would be written. */
bool log_enabled(enum log_level level);

/** log_write: writes "ts=... level=... event=EVENT " followed by fields (printf format of
 *  logfmt pairs, e.g. "queue=%s id=%lld") and a newline, in one write(2). Any thread. */
void log_write(enum log_level level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/** log_quote: s as a logfmt value: quoted and escaped when it holds spaces, quotes, '=' or
 *  control characters; truncated to fit buf. Returns buf. */
const char *log_quote(char *buf, size_t len, const char *s);

#define LOG_AT(level, event, ...)                                                                  \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            log_write(level, event, __VA_ARGS__);                                                  \
        }                                                                                          \
    } while (0)
#define log_debug(event, ...) LOG_AT(LOG_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...) LOG_AT(LOG_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) LOG_AT(LOG_WARN, event, __VA_ARGS__)
#define log_error(event, ...) LOG_AT(LOG_ERROR, event, __VA_ARGS__)

#endif
