/* duration.h: the one grammar of numbers with units in jobq: durations ("250ms", "10s", "5m",
 * "1h", "7d", a bare number of milliseconds, and where the caller allows it, as the CLI does,
 * several terms in a row: "1h30m"), through one scanner that a table of units drives (sizes
 * such as "64k" can use it too). Header-only, for jobqd, libjobq and the CLI alike. */
#ifndef JOBQ_COMMON_DURATION_H
#define JOBQ_COMMON_DURATION_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/** One unit: its suffix and what one of it is worth. A table ends with {NULL, 0}; a suffix
 *  that starts another (ms, m) comes first. */
typedef struct jobq__unit {
    const char *suffix;
    int64_t mult;
} jobq__unit;

/** jobq__unit_scan: parses s, digits each followed by a unit of units, into *vp (written only
 *  on success): one term, or with several, terms in a row whose values add up. A bare number
 *  (worth bare_mult) must stand alone. Returns false on anything else (signs, spaces, unknown
 *  units) or on overflow. */
static inline bool
jobq__unit_scan(const char *s, const jobq__unit *units, int64_t bare_mult, bool several,
                int64_t *vp)
{
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    int64_t total = 0;
    for (bool first = true; *s != '\0'; first = false) {
        if (*s < '0' || *s > '9' || (!first && !several)) {
            return false;
        }
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        const jobq__unit *u = units;
        while (u->suffix != NULL && strncmp(end, u->suffix, strlen(u->suffix)) != 0) {
            u++;
        }
        int64_t mult = u->suffix != NULL ? u->mult : *end == '\0' && first ? bare_mult : 0;
        if (errno != 0 || mult == 0 || v > (INT64_MAX - total) / mult) {
            return false;
        }
        total += (int64_t)v * mult;
        s = end + (u->suffix != NULL ? strlen(u->suffix) : 0);
    }
    *vp = total;
    return true;
}

/** jobq__duration_scan: a duration into *msp (see jobq__unit_scan; a bare number is ms). */
static inline bool
jobq__duration_scan(const char *s, bool several, int64_t *msp)
{
    static const jobq__unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
        {NULL, 0},
    };
    return jobq__unit_scan(s, units, 1, several, msp);
}

#endif
