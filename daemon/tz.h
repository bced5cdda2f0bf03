/* tz.h: time zones read from the system's TZif files, without touching TZ or libc's zone.
 * A loaded zone is immutable: any thread may use it until tz_free. */
#ifndef JOBQD_TZ_H
#define JOBQD_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct tz tz;

/** tz_load: the zone named name ("UTC" and "Etc/UTC" always work, even without tzdata),
 *  read from $TZDIR or /usr/share/zoneinfo. Rejects absolute names and "..". NULL with a
 *  reason in err (e.g. `unknown time zone "Mars/Base": no file /usr/share/zoneinfo/...`).
 *  The caller owns the result (tz_free). Thread-safe: reads the file, no global state. */
tz *tz_load(const char *name, char *err, size_t errlen);

/** tz_free: frees a zone from tz_load; accepts NULL. */
void tz_free(tz *z);

/** tz_name: the name the zone was loaded under (borrowed, lives as long as z). */
const char *tz_name(const tz *z);

/** tz_offset_at: seconds east of UTC in effect at utc_s (Unix seconds). */
int32_t tz_offset_at(const tz *z, int64_t utc_s);

/** tz_local_to_utc: the Unix time of local wall-clock time local_s (seconds since the epoch
 *  as if local were UTC). A time that does not exist (skipped by a DST jump forward) maps
 *  forward by the size of the gap (02:30 on a spring-forward day in Europe/Paris -> 03:30
 *  CEST); a time that occurs twice (fall back) gives the first occurrence. */
int64_t tz_local_to_utc(const tz *z, int64_t local_s);

/** tz_offset_range: the smallest and largest offsets (seconds east of UTC) the zone ever
 *  uses, so that for every local time L, L - max <= tz_local_to_utc(z, L) <= L - min. */
void tz_offset_range(const tz *z, int32_t *min_s, int32_t *max_s);

/** tz_days_from_civil: days since 1970-01-01 of the proleptic Gregorian date y-m-d
 *  (m 1-12, d 1-31). Pure. */
int64_t tz_days_from_civil(int64_t y, int m, int d);

/** tz_civil_from_days: the date `days` days after 1970-01-01 (negative: before). Pure. */
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
