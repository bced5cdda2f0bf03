/* cron.h: 5-field cron expressions (minute hour day-of-month month day-of-week) and the next
 * time one fires in a time zone. Pure: no clock reads, no globals; any thread may call. */
#ifndef JOBQD_CRON_H
#define JOBQD_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"

/* A parsed expression: one bit per value each field allows. */
typedef struct cron_expr {
    uint64_t minutes; /* bit m: minute m, 0-59 */
    uint32_t hours;   /* bit h: hour h, 0-23 */
    uint32_t mdays;   /* bit d: day of the month d, 1-31 */
    uint16_t months;  /* bit m: month m, 1-12 (1 = January) */
    uint8_t wdays;    /* bit d: day of the week d, 0-6 (0 = Sunday) */
    bool mday_any;    /* the day-of-month field starts with `*` (unrestricted) */
    bool wday_any;    /* the day-of-week field starts with `*` (unrestricted) */
} cron_expr;

/** cron_parse: accepts `*`, numbers, ranges `a-b`, lists `a,b`, steps `*\/n` and `a-b/n`
 *  and `a/n` (a to the field's end), month names jan-dec and day names sun-sat (any case),
 *  day-of-week 0-7 (0 and 7 are Sunday), and the macros @yearly @annually @monthly @weekly
 *  @daily @midnight @hourly. Standard cron rule: when both day-of-month and day-of-week are
 *  restricted (neither field starts with `*`, as crontab(5) puts it), a day matches if
 *  EITHER matches; otherwise both must. Returns 0 and fills *out, or -1 with a precise
 *  reason in err (`field 2 (hour): 24 is out of range 0-23`) and *out untouched. */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen);

/** cron_next: the first minute strictly after after_ms (Unix ms) whose local wall-clock
 *  time in zone z matches e, as Unix ms (a multiple of 60000 wherever the zone's offset is
 *  a whole number of minutes, which is everywhere since 1972). Local times skipped by DST
 *  map forward as tz_local_to_utc says (so a daily 02:30 job still runs once that day, at
 *  03:30); local times that repeat at fall-back fire once (the first occurrence). Walks
 *  months, then days, then the allowed hours and minutes of a matching day; -1 if nothing
 *  matches within 5 years (e.g. `0 0 30 2 *`) or after_ms is outside the years 1-9999. */
int64_t cron_next(const cron_expr *e, const tz *z, int64_t after_ms);

/** cron_day_matches: whether e allows a day of month m (1-12), day of the month d (1-31)
 *  and day of the week wday (0 = Sunday), by its month, day-of-month and day-of-week
 *  fields and the OR rule. */
bool cron_day_matches(const cron_expr *e, int m, int d, int wday);

#endif
