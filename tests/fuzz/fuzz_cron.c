/* fuzz_cron.c: libFuzzer target for the schedule modules (daemon/cron.c, daemon/tz.c).
 * The first byte picks what the rest is:
 *   even: a cron expression (up to the first newline), then up to 8 bytes of a start time.
 *         A parsed expression's next tick in UTC must be after the start, on a whole minute,
 *         match the expression, and be the first such minute (checked over up to 3 days);
 *         in Europe/Paris (DST) it must be after the start on a whole minute. A rejected one
 *         must come with a reason.
 *   odd:  a TZif file, loaded with tz_load from a private TZDIR; a zone that loads must give
 *         offsets within 26 hours, also at the instants its local times map back to, and
 *         a daily 02:30 schedule in it must advance. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cron.h"
#include "tz.h"

#define MIN_MS 60000LL
#define DAY_S 86400LL
#define OFF_MAX_S (26 * 3600LL)        /* the widest offset a TZif file may give (RFC 8536) */
#define START_MIN_MS 0LL               /* 1970 */
#define START_SPAN_MS 13569465600000LL /* 430 years: up to 2400 */
#define BRUTE_MINUTES (3 * 24 * 60)    /* a next tick this close is checked minute by minute */

/* check: aborts with the failed invariant (libFuzzer then saves the input as a crash). */
#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cron: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static tz *utc;
static tz *paris;
static char dir[4096];  /* the private TZDIR */
static char file[4200]; /* dir/Fuzz: the zone file each odd input is written to */

static void
cleanup(void)
{
    unlink(file);
    rmdir(dir);
    tz_free(utc);
    tz_free(paris);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    utc = tz_load("UTC", err, sizeof(err));
    paris = tz_load("Europe/Paris", err, sizeof(err));
    if (utc == NULL || paris == NULL) {
        fprintf(stderr, "fuzz_cron: %s (install tzdata)\n", err);
        exit(1);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/jobq-fuzz-tz-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("fuzz_cron: mkdtemp");
        exit(1);
    }
    snprintf(file, sizeof(file), "%s/Fuzz", dir);
    setenv("TZDIR", dir, 1);
    atexit(cleanup);
    return 0;
}

/* matches: whether the UTC minute t (Unix ms) matches e. */
static bool
matches(const cron_expr *e, int64_t t)
{
    int64_t s = t / 1000;
    int64_t days = s / DAY_S;
    int64_t sod = s % DAY_S;
    int64_t y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    int wday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
    return (e->minutes >> (sod / 60 % 60) & 1) && (e->hours >> (sod / 3600) & 1) &&
           cron_day_matches(e, m, d, wday);
}

static void
fuzz_expr(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (n < size && data[n] != '\n' && n < 256) {
        n++;
    }
    char text[257];
    memcpy(text, data, n);
    text[n] = '\0';
    uint64_t raw = 0;
    for (size_t i = n + 1; i < size && i < n + 9; i++) {
        raw = raw << 8 | data[i];
    }
    int64_t after = START_MIN_MS + (int64_t)(raw % (uint64_t)START_SPAN_MS);

    cron_expr e;
    char err[256];
    err[0] = '\0';
    if (cron_parse(text, &e, err, sizeof(err)) != 0) {
        check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    int64_t next = cron_next(&e, utc, after);
    if (next >= 0) {
        check(next > after);
        check(next % MIN_MS == 0);
        check(matches(&e, next));
        if (next - after <= BRUTE_MINUTES * MIN_MS) {
            for (int64_t t = (after / MIN_MS + 1) * MIN_MS; t < next; t += MIN_MS) {
                check(!matches(&e, t));
            }
        }
    }
    int64_t local = cron_next(&e, paris, after);
    check(local < 0 || (local > after && local % MIN_MS == 0));
}

static void
fuzz_zone(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file, "wb");
    if (f == NULL) {
        perror("fuzz_cron: fopen");
        abort();
    }
    check(fwrite(data, 1, size, f) == size);
    check(fclose(f) == 0);
    char err[256];
    tz *z = tz_load("Fuzz", err, sizeof(err));
    if (z == NULL) {
        check(err[0] != '\0');
        return;
    }
    static const int64_t probes[] = {-2208988800LL, 0, 1000000000LL, 1795600830LL, 4102444800LL};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        int32_t off = tz_offset_at(z, probes[i]);
        check(off >= -OFF_MAX_S && off <= OFF_MAX_S);
        int64_t back = tz_local_to_utc(z, probes[i] + off);
        int32_t off2 = tz_offset_at(z, back);
        check(off2 >= -OFF_MAX_S && off2 <= OFF_MAX_S);
    }
    cron_expr e;
    check(cron_parse("30 2 * * *", &e, err, sizeof(err)) == 0);
    int64_t t = 1795600830000LL;
    for (int i = 0; i < 3; i++) {
        int64_t next = cron_next(&e, z, t);
        if (next < 0) {
            break;
        }
        check(next > t);
        t = next;
    }
    tz_free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        fuzz_expr(data + 1, size - 1);
    } else {
        fuzz_zone(data + 1, size - 1);
    }
    return 0;
}
