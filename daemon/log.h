/* log.h: logfmt lines on stderr, one event a line; the level is checked before formatting and
 * each event is limited to LOG_BURST lines a second (the rest are counted, and reported by one
 * event=log_suppressed line per event and second). */
#ifndef JOBQD_LOG_H
#define JOBQD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/** log_set_level: lines below level are dropped. Call before any other thread logs. */
void log_set_level(enum log_level level);

/** log_enabled: whether a line at level would be written. */
bool log_enabled(enum log_level level);

/** Lines of one event written per second; the rest are dropped and counted. */
#define LOG_BURST 20

/** log_write: writes "ts=... level=... event=EVENT " followed by fields (printf format of
 *  logfmt pairs, e.g. "queue=%s id=%lld") and a newline, in one write(2); past LOG_BURST lines
 *  of EVENT in the current second, counts the line instead (before formatting it). Lines
 *  dropped in an earlier second are first reported, one "event=log_suppressed name=EVENT
 *  count=N" line per event. Any thread. */
void log_write(enum log_level level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/** log_flush_suppressed: writes the log_suppressed lines of past seconds that no later line
 *  has written yet. Any thread. */
void log_flush_suppressed(void);

/** log_suppressed_each: calls cb with each event name that had lines dropped and how many
 *  since start (jobq_log_suppressed_total). cb runs without the log's lock. Any thread. */
void log_suppressed_each(void (*cb)(void *arg, const char *event, uint64_t dropped), void *arg);

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
