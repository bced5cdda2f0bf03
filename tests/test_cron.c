/* test_cron.c: cron expressions and time zones: the parser's accepts and rejects, next-fire
 * times across month ends, leap days and both DST changes in real zones from
 * /usr/share/zoneinfo, and tz.c's offsets checked against glibc over two centuries. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "cron.h"
#include "tz.h"

#define MIN_S 60
#define HOUR_S 3600
#define DAY_S 86400

/* U: Unix seconds of a UTC date and time, by libc's timegm (independent of tz.c). */
static int64_t
U(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static cron_expr
parse_ok(const char *text)
{
    cron_expr e;
    char err[256] = "";
    int rc = cron_parse(text, &e, err, sizeof err);
    if (rc != 0) {
        fail_msg("cron_parse(\"%s\") failed: %s", text, err);
    }
    return e;
}

static void
parse_fails(const char *text, const char *want)
{
    cron_expr e;
    memset(&e, 0xa5, sizeof e);
    cron_expr before = e;
    char err[256] = "";
    assert_int_equal(cron_parse(text, &e, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_memory_equal(&e, &before, sizeof e); /* out is written only on success */
}

static tz *
zone(const char *name)
{
    char err[512] = "";
    tz *z = tz_load(name, err, sizeof err);
    if (!z) {
        fail_msg("tz_load(\"%s\"): %s", name, err);
    }
    return z;
}

/* next_s: cron_next of text in zone name after Unix second after_s, in seconds. */
static int64_t
next_s(const char *text, const char *name, int64_t after_s)
{
    cron_expr e = parse_ok(text);
    tz *z = zone(name);
    int64_t ms = cron_next(&e, z, after_s * 1000);
    tz_free(z);
    if (ms == -1) {
        return -1;
    }
    assert_int_equal(ms % 60000, 0);
    return ms / 1000;
}

/* ---- parsing ---- */

static uint64_t
range_bits(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int v = lo; v <= hi; v += step) {
        b |= (uint64_t)1 << v;
    }
    return b;
}

static void
test_parse_every_field_syntax(void **state)
{
    cron_expr e = parse_ok("* * * * *");
    assert_true(e.minutes == range_bits(0, 59, 1));
    assert_true(e.hours == range_bits(0, 23, 1));
    assert_true(e.mdays == range_bits(1, 31, 1));
    assert_true(e.months == range_bits(1, 12, 1));
    assert_true(e.wdays == range_bits(0, 6, 1));
    assert_true(e.mday_any && e.wday_any);

    e = parse_ok("5 4 3 2 1");
    assert_true(e.minutes == 1u << 5 && e.hours == 1u << 4 && e.mdays == 1u << 3);
    assert_true(e.months == 1u << 2 && e.wdays == 1u << 1);
    assert_false(e.mday_any || e.wday_any);

    e = parse_ok("10-20 1-3 1,15,31 1,6-8 1-5");
    assert_true(e.minutes == range_bits(10, 20, 1));
    assert_true(e.hours == range_bits(1, 3, 1));
    assert_true(e.mdays == ((1u << 1) | (1u << 15) | (1u << 31)));
    assert_true(e.months == ((1u << 1) | range_bits(6, 8, 1)));
    assert_true(e.wdays == range_bits(1, 5, 1));

    e = parse_ok("*/15 */6 */10 */3 */2");
    assert_true(e.minutes == range_bits(0, 59, 15));
    assert_true(e.hours == range_bits(0, 23, 6));
    assert_true(e.mdays == range_bits(1, 31, 10));
    assert_true(e.months == range_bits(1, 12, 3));
    assert_true(e.wdays == range_bits(0, 6, 2));
    assert_true(e.mday_any && e.wday_any); /* they start with `*` */

    e = parse_ok("10-30/7 8-18/5 5/10 2/4 1/2"); /* a-b/n and a/n (a to the field's end) */
    assert_true(e.minutes == range_bits(10, 30, 7));
    assert_true(e.hours == range_bits(8, 18, 5));
    assert_true(e.mdays == range_bits(5, 31, 10));
    assert_true(e.months == range_bits(2, 12, 4));
    assert_true(e.wdays == range_bits(1, 6, 2));

    e = parse_ok("0,30 0-5,12,20-23/2 1-7,*/10 * *");
    assert_true(e.minutes == ((1ull << 0) | (1ull << 30)));
    assert_true(e.hours == (range_bits(0, 5, 1) | (1u << 12) | range_bits(20, 23, 2)));
    assert_true(e.mdays == (range_bits(1, 7, 1) | range_bits(1, 31, 10)));
    assert_false(e.mday_any);

    /* Names in any case, in lists and ranges; 0 and 7 are both Sunday. */
    e = parse_ok("0 0 * JAN,mar-May,Dec sun");
    assert_true(e.months == ((1u << 1) | range_bits(3, 5, 1) | (1u << 12)));
    assert_true(e.wdays == 1u << 0);
    assert_true(parse_ok("0 0 * * 7").wdays == 1u << 0);
    assert_true(parse_ok("0 0 * * 0").wdays == 1u << 0);
    assert_true(parse_ok("0 0 * * 5-7").wdays == ((1u << 0) | (1u << 5) | (1u << 6)));
    assert_true(parse_ok("0 0 * * 0-7").wdays == range_bits(0, 6, 1));
    assert_true(parse_ok("0 0 * * Mon-FRI").wdays == range_bits(1, 5, 1));
    assert_true(parse_ok("0 0 * * sat,SUN").wdays == ((1u << 0) | (1u << 6)));
    assert_true(parse_ok("0 0 * * 7/2").wdays == 1u << 0);
    assert_true(parse_ok("0 0 * feb-aug/3 *").months == ((1u << 2) | (1u << 5) | (1u << 8)));
    assert_true(parse_ok("59 23 31 12 6").minutes == 1ull << 59);
    /* Tabs and surrounding blanks are fine. */
    assert_true(parse_ok("  0\t12  *\t* *\n").hours == 1u << 12);
    assert_true(parse_ok("*/1 * * * *").minutes == range_bits(0, 59, 1));
    assert_true(parse_ok("*/59 * * * *").minutes == ((1ull << 0) | (1ull << 59)));
    assert_true(parse_ok("007 * * * *").minutes == 1ull << 7);
}

static void
test_parse_macros(void **state)
{
    static const char *const pairs[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}, {" @DAILY ", "0 0 * * *"},  {"@Hourly", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cron_expr a = parse_ok(pairs[i][0]), b = parse_ok(pairs[i][1]);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

static void
test_parse_rejects_with_reasons(void **state)
{
    parse_fails("0 24 * * *", "field 2 (hour): 24 is out of range 0-23");
    parse_fails("60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    parse_fails("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1-31");
    parse_fails("* * 32 * *", "field 3 (day-of-month): 32 is out of range 1-31");
    parse_fails("* * * 0 *", "field 4 (month): 0 is out of range 1-12");
    parse_fails("* * * 13 *", "field 4 (month): 13 is out of range 1-12");
    parse_fails("* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7");
    parse_fails("99999999999999999999 * * * *",
                "field 1 (minute): 99999999999999999999 is out of range 0-59");
    parse_fails("* * * foo *",
                "field 4 (month): \"foo\" is neither a month name (jan-dec) nor a number 1-12");
    parse_fails("* * * january *", "field 4 (month): \"january\" is neither a month name "
                                   "(jan-dec) nor a number 1-12");
    parse_fails("* * * * funday", "field 5 (day-of-week): \"funday\" is neither a day name "
                                  "(sun-sat) nor a number 0-7");
    parse_fails("mon * * * *", "field 1 (minute): \"mon\" is not a number 0-59");
    parse_fails("* * jan * *", "field 3 (day-of-month): \"jan\" is not a number 1-31");
    parse_fails("*/0 * * * *", "field 1 (minute): step 0 is out of range 1-59");
    parse_fails("* */24 * * *", "field 2 (hour): step 24 is out of range 1-23");
    parse_fails("*/ * * * *", "field 1 (minute): '/' must be followed by a step (a number)");
    parse_fails("*/x * * * *", "field 1 (minute): '/' must be followed by a step (a number)");
    parse_fails("5-2 * * * *", "field 1 (minute): range 5-2 goes backwards; write the smaller "
                               "value first, or a list such as 5-59,0-2");
    parse_fails("0 22-2 * * *", "field 2 (hour): range 22-2 goes backwards; write the smaller "
                                "value first, or a list such as 22-23,0-2");
    parse_fails("0 0 * * fri-mon", "field 5 (day-of-week): range fri-mon goes backwards; write "
                                   "the smaller value first, or a list such as 5-7,0-1");
    parse_fails("1,,2 * * * *", "field 1 (minute): a value is missing");
    parse_fails(",1 * * * *", "field 1 (minute): a value is missing");
    parse_fails("1- * * * *", "field 1 (minute): a value is missing");
    parse_fails("1, * * * *", "field 1 (minute): nothing after the last ','");
    parse_fails("5x * * * *", "field 1 (minute): unexpected 'x' after \"5\"");
    parse_fails("*-5 * * * *", "field 1 (minute): unexpected '-' after \"*\"");
    parse_fails("1-5-7 * * * *", "field 1 (minute): unexpected '-' after \"1-5\"");
    parse_fails("*/5/2 * * * *", "field 1 (minute): unexpected '/' after \"*/5\"");
    parse_fails("-5 * * * *", "field 1 (minute): unexpected '-' where a value should be");
    parse_fails("? * * * *", "field 1 (minute): unexpected '?' where a value should be");
    parse_fails("", "empty cron expression: expected 5 fields (minute hour day-of-month month "
                    "day-of-week), got 0");
    parse_fails(" \t ", "empty cron expression: expected 5 fields (minute hour day-of-month "
                        "month day-of-week), got 0");
    parse_fails(NULL, "empty cron expression: expected 5 fields (minute hour day-of-month month "
                      "day-of-week), got 0");
    parse_fails("* * * *", "bad cron expression: expected 5 fields (minute hour day-of-month "
                           "month day-of-week), got 4");
    parse_fails("0 0 * * * *", "bad cron expression: expected 5 fields (minute hour "
                               "day-of-month month day-of-week), got 6 (there is no seconds or "
                               "year field)");
    parse_fails("@reboot", "@reboot is not supported: a schedule fires at times of day; use a "
                           "macro such as @daily or 5 fields (minute hour day-of-month month "
                           "day-of-week)");
    parse_fails("@fortnightly", "unknown macro \"@fortnightly\" (known: @yearly @annually "
                                "@monthly @weekly @daily @midnight @hourly)");
    parse_fails("@daily 5", "unknown macro \"@daily 5\" (known: @yearly @annually @monthly "
                            "@weekly @daily @midnight @hourly)");

    /* No err buffer: still -1, no crash. */
    cron_expr e;
    assert_int_equal(cron_parse("61 * * * *", &e, NULL, 0), -1);
}

/* ---- days ---- */

static void
test_civil_days_match_libc(void **state)
{
    assert_int_equal(tz_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(tz_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(tz_days_from_civil(1969, 12, 31), -1);
    for (int64_t days = -800000; days <= 800000; days += 97) { /* 0160 to 4160 */
        int64_t y;
        int m, d;
        tz_civil_from_days(days, &y, &m, &d);
        time_t t = (time_t)(days * DAY_S);
        struct tm tm;
        gmtime_r(&t, &tm);
        assert_int_equal(y, tm.tm_year + 1900);
        assert_int_equal(m, tm.tm_mon + 1);
        assert_int_equal(d, tm.tm_mday);
        assert_int_equal(tz_days_from_civil(y, m, d), days);
    }
}

/* The OR rule applies only when neither day field starts with `*`. */
static void
test_day_of_month_or_day_of_week(void **state)
{
    cron_expr e = parse_ok("0 12 13 * fri");
    assert_true(cron_day_matches(&e, 2, 6, 5));   /* Friday the 6th */
    assert_true(cron_day_matches(&e, 2, 13, 5));  /* Friday the 13th */
    assert_true(cron_day_matches(&e, 1, 13, 2));  /* Tuesday the 13th */
    assert_false(cron_day_matches(&e, 2, 12, 4)); /* neither */

    /* 2026-02-01 is a Sunday: Friday the 6th, then the 13th (a Friday too), then Friday the
     * 20th; from March, Friday the 6th and then Friday the 13th (a Friday again). */
    assert_int_equal(next_s("0 12 13 * fri", "UTC", U(2026, 2, 1, 0, 0)), U(2026, 2, 6, 12, 0));
    assert_int_equal(next_s("0 12 13 * fri", "UTC", U(2026, 2, 6, 12, 0)), U(2026, 2, 13, 12, 0));
    assert_int_equal(next_s("0 12 13 * mon", "UTC", U(2026, 2, 9, 12, 0)), U(2026, 2, 13, 12, 0));
    assert_int_equal(next_s("0 12 13 * mon", "UTC", U(2026, 2, 13, 12, 0)), U(2026, 2, 16, 12, 0));

    /* One field `*`: the other decides alone. */
    assert_int_equal(next_s("0 0 * * mon-fri", "UTC", U(2026, 2, 6, 18, 0)), U(2026, 2, 9, 0, 0));
    assert_int_equal(next_s("0 0 13 * *", "UTC", U(2026, 2, 1, 0, 0)), U(2026, 2, 13, 0, 0));
    /* `*` with a step still counts as unrestricted (crontab(5)): both must match. */
    e = parse_ok("0 0 */2 * mon");
    assert_true(cron_day_matches(&e, 2, 9, 1));   /* the 9th, a Monday */
    assert_false(cron_day_matches(&e, 2, 16, 1)); /* the 16th is even */
    assert_false(cron_day_matches(&e, 2, 11, 3)); /* a Wednesday */
    /* Months restrict every day. */
    e = parse_ok("0 0 13 jun fri");
    assert_false(cron_day_matches(&e, 2, 13, 5));
    assert_true(cron_day_matches(&e, 6, 5, 5));
}

/* ---- next fire times in UTC ---- */

static void
test_next_every_15_minutes(void **state)
{
    const char *x = "*/15 * * * *";
    assert_int_equal(next_s(x, "UTC", U(2026, 1, 1, 0, 7)), U(2026, 1, 1, 0, 15));
    /* Strictly after: at 00:15:00.000 the next is 00:30; a millisecond before, 00:15. */
    cron_expr e = parse_ok(x);
    tz *z = zone("UTC");
    assert_int_equal(cron_next(&e, z, U(2026, 1, 1, 0, 15) * 1000), U(2026, 1, 1, 0, 30) * 1000);
    assert_int_equal(cron_next(&e, z, U(2026, 1, 1, 0, 15) * 1000 - 1),
                     U(2026, 1, 1, 0, 15) * 1000);
    assert_int_equal(cron_next(&e, z, 1767226020000), 1767226500000); /* by `date -d` */
    /* Across an hour, a day and a year. */
    assert_int_equal(cron_next(&e, z, U(2026, 1, 1, 0, 59) * 1000), U(2026, 1, 1, 1, 0) * 1000);
    assert_int_equal(cron_next(&e, z, U(2026, 12, 31, 23, 45) * 1000 + 30000),
                     U(2027, 1, 1, 0, 0) * 1000);
    /* Before 1970 too. */
    assert_int_equal(cron_next(&e, z, U(1969, 12, 31, 23, 50) * 1000), 0);
    assert_int_equal(cron_next(&e, z, U(1969, 12, 31, 23, 29) * 1000),
                     U(1969, 12, 31, 23, 30) * 1000);
    /* A run of them: every quarter hour of a day, 96 of them. */
    int64_t t = U(2026, 5, 1, 0, 0) * 1000 - 1;
    for (int i = 0; i < 96; i++) {
        t = cron_next(&e, z, t);
        assert_int_equal(t, (U(2026, 5, 1, 0, 0) + i * 15 * MIN_S) * 1000);
    }
    tz_free(z);
}

static void
test_next_month_year_and_leap_day(void **state)
{
    assert_int_equal(next_s("0 0 1 * *", "UTC", U(2026, 1, 31, 12, 0)), U(2026, 2, 1, 0, 0));
    assert_int_equal(next_s("0 0 1 * *", "UTC", 1769860800), 1769904000); /* by `date -d` */
    assert_int_equal(next_s("0 0 1 * *", "UTC", U(2026, 12, 31, 23, 59) + 30), U(2027, 1, 1, 0, 0));
    assert_int_equal(next_s("0 0 31 * *", "UTC", U(2026, 2, 1, 0, 0)), U(2026, 3, 31, 0, 0));
    assert_int_equal(next_s("0 0 31 * *", "UTC", U(2026, 3, 31, 0, 0)), U(2026, 5, 31, 0, 0));
    assert_int_equal(next_s("59 23 31 12 *", "UTC", U(2026, 12, 31, 23, 59)),
                     U(2027, 12, 31, 23, 59));
    /* Leap days: 2028, then 2032. */
    assert_int_equal(next_s("0 0 29 2 *", "UTC", U(2025, 1, 1, 0, 0)), U(2028, 2, 29, 0, 0));
    assert_int_equal(next_s("0 0 29 2 *", "UTC", 1735689600), 1835395200); /* by `date -d` */
    assert_int_equal(next_s("0 0 29 2 *", "UTC", U(2028, 2, 29, 0, 0)), U(2032, 2, 29, 0, 0));
    assert_int_equal(next_s("0 0 * * *", "UTC", U(2028, 2, 28, 0, 0)), U(2028, 2, 29, 0, 0));
    assert_int_equal(next_s("0 0 * * *", "UTC", U(2028, 2, 29, 0, 0)), U(2028, 3, 1, 0, 0));
    assert_int_equal(next_s("0 0 1 3 *", "UTC", U(2100, 2, 28, 0, 0)), U(2100, 3, 1, 0, 0));
    /* 2100 is not a leap year; 2104 is more than 5 years on. */
    assert_int_equal(next_s("0 0 29 2 *", "UTC", U(2097, 3, 1, 0, 0)), -1);
    assert_int_equal(next_s("0 0 29 2 *", "UTC", U(2099, 3, 1, 0, 0)), U(2104, 2, 29, 0, 0));
    /* Never. */
    assert_int_equal(next_s("0 0 30 2 *", "UTC", U(2026, 1, 1, 0, 0)), -1);
    assert_int_equal(next_s("0 0 31 4,6,9,11 *", "UTC", U(2026, 1, 1, 0, 0)), -1);
    assert_int_equal(next_s("0 0 30 2 *", "Europe/Paris", U(2026, 1, 1, 0, 0)), -1);
    /* ... unless the day of the week can match instead. */
    assert_int_equal(next_s("0 0 30 2 mon", "UTC", U(2026, 2, 1, 0, 0)), U(2026, 2, 2, 0, 0));
    /* Outside the years 1-9999. */
    cron_expr e = parse_ok("* * * * *");
    tz *z = zone("UTC");
    assert_int_equal(cron_next(&e, z, INT64_MAX), -1);
    assert_int_equal(cron_next(&e, z, INT64_MIN), -1);
    assert_int_equal(cron_next(&e, z, U(9999, 12, 31, 23, 58) * 1000),
                     U(9999, 12, 31, 23, 59) * 1000);
    tz_free(z);
}

static void
test_next_macros(void **state)
{
    /* 2026-11-25 is a Wednesday. */
    int64_t now = U(2026, 11, 25, 12, 0);
    assert_int_equal(next_s("@hourly", "UTC", now), U(2026, 11, 25, 13, 0));
    assert_int_equal(next_s("@hourly", "UTC", U(2026, 11, 25, 10, 59) + 59),
                     U(2026, 11, 25, 11, 0));
    assert_int_equal(next_s("@daily", "UTC", now), U(2026, 11, 26, 0, 0));
    assert_int_equal(next_s("@midnight", "UTC", now), U(2026, 11, 26, 0, 0));
    assert_int_equal(next_s("@weekly", "UTC", now), U(2026, 11, 29, 0, 0));
    assert_int_equal(next_s("@weekly", "UTC", now), 1795910400); /* a Sunday, by `date -d` */
    assert_int_equal(next_s("@monthly", "UTC", now), U(2026, 12, 1, 0, 0));
    assert_int_equal(next_s("@yearly", "UTC", now), U(2027, 1, 1, 0, 0));
    assert_int_equal(next_s("@annually", "UTC", U(2026, 6, 15, 0, 0)), U(2027, 1, 1, 0, 0));
    /* @daily in a zone: local midnight. */
    assert_int_equal(next_s("@daily", "Asia/Kolkata", now), U(2026, 11, 25, 18, 30));
    assert_int_equal(next_s("@daily", "America/New_York", now), U(2026, 11, 26, 5, 0));
}

/* ---- zones ---- */

static void
test_utc_and_fixed_offsets(void **state)
{
    tz *u = zone("UTC"), *eu = zone("Etc/UTC"), *k = zone("Asia/Kolkata");
    assert_string_equal(tz_name(u), "UTC");
    assert_string_equal(tz_name(eu), "Etc/UTC");
    assert_string_equal(tz_name(k), "Asia/Kolkata");
    for (int64_t t = -4000000000; t < 8000000000; t += 123456789) {
        assert_int_equal(tz_offset_at(u, t), 0);
        assert_int_equal(tz_offset_at(eu, t), 0);
        assert_int_equal(tz_local_to_utc(u, t), t);
    }
    assert_int_equal(tz_offset_at(k, U(2026, 1, 1, 0, 0)), 5 * HOUR_S + 30 * MIN_S);
    assert_int_equal(tz_offset_at(k, U(2060, 7, 1, 0, 0)), 19800);
    assert_int_equal(tz_local_to_utc(k, U(2026, 1, 1, 9, 30)), U(2026, 1, 1, 4, 0));
    tz_free(u);
    tz_free(eu);
    tz_free(k);
    /* 09:30 IST is 04:00 UTC (by `TZ=Asia/Kolkata date -d`). */
    assert_int_equal(next_s("30 9 * * *", "Asia/Kolkata", U(2026, 1, 1, 0, 0)), 1767240000);
    assert_int_equal(next_s("30 9 * * *", "Asia/Kolkata", U(2026, 1, 1, 4, 0)),
                     U(2026, 1, 2, 4, 0));
    assert_int_equal(next_s("0 * * * *", "Asia/Kolkata", U(2026, 1, 1, 0, 0)),
                     U(2026, 1, 1, 0, 30));
    tz_free(NULL);
}

/* Europe/Paris, 2026: CET -> CEST on March 29 at 01:00 UTC (02:00 -> 03:00 local),
 * CEST -> CET on October 25 at 01:00 UTC (03:00 -> 02:00 local). */
static void
test_paris_2026(void **state)
{
    tz *z = zone("Europe/Paris");
    assert_int_equal(tz_offset_at(z, U(2026, 3, 29, 1, 0) - 1), HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 3, 29, 1, 0)), 2 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 10, 25, 1, 0) - 1), 2 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 10, 25, 1, 0)), HOUR_S);
    /* Spring gap: 02:30 does not exist; it maps an hour on, to 03:30 CEST (01:30 UTC). */
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 29, 2, 30)), U(2026, 3, 29, 1, 30));
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 29, 2, 0)), U(2026, 3, 29, 1, 0));
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 29, 1, 59)), U(2026, 3, 29, 0, 59));
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 29, 3, 0)), U(2026, 3, 29, 1, 0));
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 29, 3, 30)), U(2026, 3, 29, 1, 30));
    /* Fall back: 02:30 happens twice (00:30 and 01:30 UTC): the first. */
    assert_int_equal(tz_local_to_utc(z, U(2026, 10, 25, 2, 30)), U(2026, 10, 25, 0, 30));
    assert_int_equal(tz_local_to_utc(z, U(2026, 10, 25, 1, 59)), U(2026, 10, 24, 23, 59));
    assert_int_equal(tz_local_to_utc(z, U(2026, 10, 25, 3, 0)), U(2026, 10, 25, 2, 0));
    tz_free(z);

    /* 30 2 * * *: once on the spring day, at 03:30 CEST; next day 02:30 CEST again. */
    const char *x = "30 2 * * *";
    assert_int_equal(next_s(x, "Europe/Paris", U(2026, 3, 28, 12, 0)), U(2026, 3, 29, 1, 30));
    assert_int_equal(next_s(x, "Europe/Paris", 1774699200), 1774747800); /* by `date -d` */
    assert_int_equal(next_s(x, "Europe/Paris", U(2026, 3, 29, 1, 30)), U(2026, 3, 30, 0, 30));
    assert_int_equal(next_s(x, "Europe/Paris", 1774747800), 1774830600);
    /* Once on the autumn day, at the first 02:30 (CEST); then 02:30 CET. */
    assert_int_equal(next_s(x, "Europe/Paris", U(2026, 10, 24, 12, 0)), U(2026, 10, 25, 0, 30));
    assert_int_equal(next_s(x, "Europe/Paris", U(2026, 10, 25, 0, 30)), U(2026, 10, 26, 1, 30));
    assert_int_equal(next_s(x, "Europe/Paris", 1792888200), 1792978200); /* by `date -d` */

    /* Local times on both sides of the gap that land on one instant fire once, in order. */
    const char *y = "0,30 2,3 * * *";
    assert_int_equal(next_s(y, "Europe/Paris", U(2026, 3, 29, 0, 0)), U(2026, 3, 29, 1, 0));
    assert_int_equal(next_s(y, "Europe/Paris", U(2026, 3, 29, 1, 0)), U(2026, 3, 29, 1, 30));
    assert_int_equal(next_s(y, "Europe/Paris", U(2026, 3, 29, 1, 30)), U(2026, 3, 30, 0, 0));
    /* 03:00 alone is the one non-skipped time of that list; 02:00 maps onto it. */
    assert_int_equal(next_s("0 3 * * *", "Europe/Paris", U(2026, 3, 29, 0, 0)),
                     U(2026, 3, 29, 1, 0));

    /* Every 15 minutes through the gap: one fire every 15 minutes of real time. */
    cron_expr e = parse_ok("*/15 * * * *");
    z = zone("Europe/Paris");
    int64_t t = U(2026, 3, 29, 0, 30) * 1000;
    for (int i = 1; i <= 8; i++) {
        t = cron_next(&e, z, t);
        assert_int_equal(t, (U(2026, 3, 29, 0, 30) + i * 15 * MIN_S) * 1000);
    }
    /* ... and through the repeated hour: 02:00-02:45 fire in CEST, not again in CET; after
     * 02:45 CEST (00:45 UTC) comes 03:00 CET (02:00 UTC). */
    assert_int_equal(cron_next(&e, z, U(2026, 10, 25, 0, 30) * 1000),
                     U(2026, 10, 25, 0, 45) * 1000);
    assert_int_equal(cron_next(&e, z, U(2026, 10, 25, 0, 45) * 1000), U(2026, 10, 25, 2, 0) * 1000);
    tz_free(z);
}

/* America/New_York, 2026: EST -> EDT on March 8 at 07:00 UTC (02:00 -> 03:00 local), EDT ->
 * EST on November 1 at 06:00 UTC (02:00 -> 01:00 local). */
static void
test_new_york_2026(void **state)
{
    tz *z = zone("America/New_York");
    assert_int_equal(tz_offset_at(z, U(2026, 3, 8, 7, 0) - 1), -5 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 3, 8, 7, 0)), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 11, 1, 6, 0) - 1), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 11, 1, 6, 0)), -5 * HOUR_S);
    assert_int_equal(tz_local_to_utc(z, U(2026, 3, 8, 2, 30)), U(2026, 3, 8, 7, 30));
    assert_int_equal(tz_local_to_utc(z, U(2026, 11, 1, 1, 30)), U(2026, 11, 1, 5, 30));
    assert_int_equal(tz_local_to_utc(z, U(2026, 11, 1, 2, 0)), U(2026, 11, 1, 7, 0));
    tz_free(z);

    /* Spring: 02:30 does not exist on March 8: it runs at 03:30 EDT, once. */
    const char *x = "30 2 * * *";
    assert_int_equal(next_s(x, "America/New_York", U(2026, 3, 7, 12, 0)), U(2026, 3, 8, 7, 30));
    assert_int_equal(next_s(x, "America/New_York", 1772884800), 1772955000); /* `date -d` */
    assert_int_equal(next_s(x, "America/New_York", U(2026, 3, 8, 7, 30)), U(2026, 3, 9, 6, 30));
    /* Fall: 01:30 happens twice on November 1: only the first (EDT) fires. */
    const char *y = "30 1 * * *";
    assert_int_equal(next_s(y, "America/New_York", U(2026, 10, 31, 12, 0)), U(2026, 11, 1, 5, 30));
    assert_int_equal(next_s(y, "America/New_York", 1793448000), 1793511000); /* `date -d` */
    assert_int_equal(next_s(y, "America/New_York", U(2026, 11, 1, 5, 30)), U(2026, 11, 2, 6, 30));
    assert_int_equal(next_s(y, "America/New_York", U(2026, 11, 1, 6, 0)), U(2026, 11, 2, 6, 30));
    /* Every quarter hour: after 01:45 EDT comes 02:00 EST; the EST 01:xx repeat is skipped. */
    assert_int_equal(next_s("*/15 * * * *", "America/New_York", U(2026, 11, 1, 5, 45)),
                     U(2026, 11, 1, 7, 0));
    assert_int_equal(next_s("@hourly", "America/New_York", U(2026, 11, 1, 5, 0)),
                     U(2026, 11, 1, 7, 0));
    /* A weekday job across the change: Monday 09:00 is 14:00 UTC in EST, 13:00 in EDT. */
    assert_int_equal(next_s("0 9 * * mon", "America/New_York", U(2026, 3, 3, 0, 0)),
                     U(2026, 3, 9, 13, 0));
    assert_int_equal(next_s("0 9 * * mon", "America/New_York", U(2026, 2, 24, 0, 0)),
                     U(2026, 3, 2, 14, 0));
}

/* 2040 lies past the last transition in the files (2037): the footer rule decides. */
static void
test_far_future_uses_the_footer_rule(void **state)
{
    tz *p = zone("Europe/Paris"), *n = zone("America/New_York");
    assert_int_equal(tz_offset_at(p, U(2040, 3, 25, 1, 0) - 1), HOUR_S);
    assert_int_equal(tz_offset_at(p, U(2040, 3, 25, 1, 0)), 2 * HOUR_S);
    assert_int_equal(tz_offset_at(p, U(2040, 10, 28, 1, 0) - 1), 2 * HOUR_S);
    assert_int_equal(tz_offset_at(p, U(2040, 10, 28, 1, 0)), HOUR_S);
    assert_int_equal(tz_offset_at(n, U(2040, 3, 11, 7, 0) - 1), -5 * HOUR_S);
    assert_int_equal(tz_offset_at(n, U(2040, 3, 11, 7, 0)), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(n, U(2040, 11, 4, 6, 0) - 1), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(n, U(2040, 11, 4, 6, 0)), -5 * HOUR_S);
    assert_int_equal(tz_offset_at(p, U(2400, 7, 1, 0, 0)), 2 * HOUR_S);
    assert_int_equal(tz_offset_at(p, U(2400, 1, 1, 0, 0)), HOUR_S);
    tz_free(p);
    tz_free(n);
    const char *x = "30 2 * * *";
    assert_int_equal(next_s(x, "Europe/Paris", U(2040, 3, 24, 12, 0)), U(2040, 3, 25, 1, 30));
    assert_int_equal(next_s(x, "Europe/Paris", 2216203200), 2216251800); /* by `date -d` */
    assert_int_equal(next_s(x, "Europe/Paris", U(2040, 3, 25, 1, 30)), U(2040, 3, 26, 0, 30));
    assert_int_equal(next_s(x, "Europe/Paris", U(2040, 10, 27, 12, 0)), U(2040, 10, 28, 0, 30));
    assert_int_equal(next_s(x, "Europe/Paris", U(2040, 10, 28, 0, 30)), U(2040, 10, 29, 1, 30));
    assert_int_equal(next_s(x, "America/New_York", U(2040, 3, 10, 12, 0)), U(2040, 3, 11, 7, 30));
    const char *y = "30 1 * * *";
    assert_int_equal(next_s(y, "America/New_York", U(2040, 11, 3, 12, 0)), U(2040, 11, 4, 5, 30));
    assert_int_equal(next_s(y, "America/New_York", 2235619800), 2235709800); /* `date -d` */
}

/* Australia/Lord_Howe moves by 30 minutes: +10:30 -> +11 on 2026-10-04 at 02:00 local,
 * back on 2026-04-05 at 02:00 (+11) -> 01:30 (+10:30). */
static void
test_lord_howe_half_hour_dst(void **state)
{
    tz *z = zone("Australia/Lord_Howe");
    assert_int_equal(tz_offset_at(z, U(2026, 10, 3, 15, 30) - 1), 10 * HOUR_S + 30 * MIN_S);
    assert_int_equal(tz_offset_at(z, U(2026, 10, 3, 15, 30)), 11 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 4, 4, 15, 0) - 1), 11 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 4, 4, 15, 0)), 10 * HOUR_S + 30 * MIN_S);
    assert_int_equal(tz_offset_at(z, U(2045, 1, 1, 0, 0)), 11 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2045, 7, 1, 0, 0)), 10 * HOUR_S + 30 * MIN_S);
    tz_free(z);
    /* 02:15 on October 4 is skipped: it runs 30 minutes on, at 02:45 (+11). */
    assert_int_equal(next_s("15 2 * * *", "Australia/Lord_Howe", U(2026, 10, 3, 12, 0)),
                     U(2026, 10, 3, 15, 45));
    /* 01:45 on April 5 happens twice: the first, at +11. */
    assert_int_equal(next_s("45 1 * * *", "Australia/Lord_Howe", U(2026, 4, 4, 12, 0)),
                     U(2026, 4, 4, 14, 45));
    assert_int_equal(next_s("45 1 * * *", "Australia/Lord_Howe", U(2026, 4, 4, 14, 45)),
                     U(2026, 4, 5, 15, 15));
}

/* ---- against glibc ---- */

static const char *const oracle_zones[] = {
    "Europe/Paris",       "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
    "Europe/Dublin",      "America/Nuuk",     "America/Santiago",    "Africa/Casablanca",
    "Antarctica/Troll",   "Pacific/Apia",     "America/Sao_Paulo",   "Australia/Sydney",
    "Pacific/Chatham",    "Asia/Tehran",      "Europe/London",       "America/St_Johns",
    "Pacific/Kiritimati", "America/Adak",
};

/* glibc_offset: libc's answer for TZ=zone (the test sets TZ for itself; tz.c never does). */
static long
glibc_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return tm.tm_gmtoff;
}

/* From 1900 to 2200, at instants 7h13m apart and around every change, tz_offset_at agrees
 * with glibc; tz_local_to_utc inverts it and gives the first of two, and maps a skipped
 * local time forward by the size of the gap. */
static void
test_offsets_agree_with_glibc(void **state)
{
    char env[128];
    for (size_t zi = 0; zi < sizeof oracle_zones / sizeof oracle_zones[0]; zi++) {
        const char *name = oracle_zones[zi];
        tz *z = zone(name);
        snprintf(env, sizeof env, ":%s", name);
        setenv("TZ", env, 1);
        tzset();
        int32_t lo, hi;
        tz_offset_range(z, &lo, &hi);
        for (int64_t t = U(1900, 1, 1, 0, 0); t < U(2200, 1, 1, 0, 0); t += 7 * HOUR_S + 13 * 60) {
            int32_t off = tz_offset_at(z, t);
            if (off != glibc_offset(t)) {
                fail_msg("%s at %lld: %d, glibc %ld", name, (long long)t, off, glibc_offset(t));
            }
            assert_true(off >= lo && off <= hi);
            int64_t local = t + off;
            int64_t r = tz_local_to_utc(z, local);
            assert_int_equal(r + tz_offset_at(z, r), local);
            assert_true(r <= t && t - r <= 26 * HOUR_S);
        }
        /* Each change from 1970 to 2100, found by bisection. */
        int changes = 0;
        for (int64_t t = U(1970, 1, 1, 0, 0); t < U(2100, 1, 1, 0, 0); t += 6 * HOUR_S) {
            int32_t a = tz_offset_at(z, t), b = tz_offset_at(z, t + 6 * HOUR_S);
            if (a == b) {
                continue;
            }
            int64_t l = t, h = t + 6 * HOUR_S; /* off(l) == a, off(h) != a */
            while (h - l > 1) {
                int64_t m = l + (h - l) / 2;
                if (tz_offset_at(z, m) == a) {
                    l = m;
                } else {
                    h = m;
                }
            }
            int32_t before = tz_offset_at(z, h - 1), after = tz_offset_at(z, h);
            assert_int_equal(before, glibc_offset(h - 1));
            assert_int_equal(after, glibc_offset(h));
            changes++;
            if (after > before) { /* local [h + before, h + after) is skipped */
                for (int64_t L = h + before; L < h + after; L += 60) {
                    assert_int_equal(tz_local_to_utc(z, L), L - before);
                }
                assert_int_equal(tz_local_to_utc(z, h + after), h);
            } else { /* local [h + after, h + before) happens twice: the first */
                for (int64_t L = h + after; L < h + before; L += 60) {
                    assert_int_equal(tz_local_to_utc(z, L), L - before);
                }
                assert_int_equal(tz_local_to_utc(z, h + before), h + before - after);
            }
        }
        if (strcmp(name, "Asia/Kolkata") != 0) {
            assert_true(changes > 0);
        }
        tz_free(z);
    }
    unsetenv("TZ");
    tzset();
}

/* ---- cron_next against a minute-by-minute scan ---- */

/* brute_day_ok, brute_time_ok: e's fields checked on libc's reading of a local time. */
static bool
brute_day_ok(const cron_expr *e, int64_t local_s)
{
    time_t t = (time_t)local_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!(e->months >> (tm.tm_mon + 1) & 1)) {
        return false;
    }
    bool md = e->mdays >> tm.tm_mday & 1, wd = e->wdays >> tm.tm_wday & 1;
    return (!e->mday_any && !e->wday_any) ? (md || wd) : (md && wd);
}

static bool
brute_time_ok(const cron_expr *e, int64_t local_s)
{
    time_t t = (time_t)local_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    return (e->minutes >> tm.tm_min & 1) && (e->hours >> tm.tm_hour & 1);
}

static void
random_field(char *out, size_t n, uint64_t *seed, int lo, int hi, const char *const *names)
{
    uint64_t r = backoff_rand(seed);
    int a = lo + (int)(backoff_rand(seed) % (uint64_t)(hi - lo + 1));
    int b = lo + (int)(backoff_rand(seed) % (uint64_t)(hi - lo + 1));
    int step = 1 + (int)(backoff_rand(seed) % (uint64_t)(hi > 12 ? 12 : hi));
    if (a > b) {
        int t = a;
        a = b;
        b = t;
    }
    switch (r % 8) {
    case 0:
    case 1:
        snprintf(out, n, "*");
        break;
    case 2:
        snprintf(out, n, "*/%d", step);
        break;
    case 3:
        if (names && a <= 6 + lo && b <= 6 + lo) {
            snprintf(out, n, "%s-%s", names[a - lo], names[b - lo]);
        } else {
            snprintf(out, n, "%d-%d", a, b);
        }
        break;
    case 4:
        snprintf(out, n, "%d-%d/%d", a, b, step);
        break;
    case 5:
        snprintf(out, n, "%d/%d", a, step);
        break;
    case 6:
        snprintf(out, n, "%d,%d", a, b);
        break;
    default:
        snprintf(out, n, "%d", a);
        break;
    }
}

static void
test_next_matches_a_brute_force_scan(void **state)
{
    static const char *const mon[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul"};
    static const char *const dow[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    static const struct {
        const char *name;
        int32_t off; /* fixed since 1945 */
    } zones[] = {{"UTC", 0}, {"Asia/Kolkata", 19800}, {"Asia/Tokyo", 9 * HOUR_S}};
    uint64_t seed = 20260325;
    const int64_t window = 4 * 366 * DAY_S;
    int found = 0;
    for (int i = 0; i < 3000; i++) {
        char f[5][32], text[200];
        random_field(f[0], sizeof f[0], &seed, 0, 59, NULL);
        random_field(f[1], sizeof f[1], &seed, 0, 23, NULL);
        random_field(f[2], sizeof f[2], &seed, 1, 31, NULL);
        random_field(f[3], sizeof f[3], &seed, 1, 12, mon);
        random_field(f[4], sizeof f[4], &seed, 0, 7, dow);
        snprintf(text, sizeof text, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
        cron_expr e = parse_ok(text);
        tz *z = zone(zones[i % 3].name);
        int32_t off = zones[i % 3].off;
        int64_t after_ms =
            (U(2020, 1, 1, 0, 0) + (int64_t)(backoff_rand(&seed) % (10 * 365 * DAY_S))) * 1000 +
            (int64_t)(backoff_rand(&seed) % 60000);
        int64_t got = cron_next(&e, z, after_ms);
        /* Every minute of the days that match, up to the window's end. */
        int64_t first = (after_ms / 60000 + 1) * 60, want = -1;
        for (int64_t u = first; u < first + window;) {
            if (!brute_day_ok(&e, u + off)) {
                u += DAY_S - ((u + off) % DAY_S); /* the next local midnight */
                continue;
            }
            if (brute_time_ok(&e, u + off)) {
                want = u * 1000;
                break;
            }
            u += 60;
        }
        if (want != -1) {
            found++;
            if (got != want) {
                fail_msg("\"%s\" in %s after %lld: %lld, scan %lld", text, zones[i % 3].name,
                         (long long)after_ms, (long long)got, (long long)want);
            }
        } else if (got != -1) { /* later than the scan: it must still match */
            assert_true(got >= (first + window) * 1000);
            assert_true(brute_day_ok(&e, got / 1000 + off) && brute_time_ok(&e, got / 1000 + off));
        }
        tz_free(z);
    }
    print_message("%d of 3000 random expressions fire within 4 years\n", found);
    assert_true(found > 2700);
}

/* Whole years of daily and hourly jobs in DST zones: one fire per local day (or hour of
 * local time that exists), strictly increasing, at the expected local time. */
static void
test_next_walks_whole_years_in_dst_zones(void **state)
{
    static const char *const names[] = {"Europe/Paris", "America/New_York", "Australia/Lord_Howe",
                                        "America/Santiago"};
    for (size_t zi = 0; zi < sizeof names / sizeof names[0]; zi++) {
        tz *z = zone(names[zi]);
        cron_expr daily = parse_ok("30 2 * * *");
        int64_t t = U(2026, 1, 1, 0, 0) * 1000, prev = t;
        for (int i = 0; i < 2 * 365; i++) {
            t = cron_next(&daily, z, t);
            assert_true(t > prev);
            int64_t s = t / 1000, local = s + tz_offset_at(z, s);
            /* 02:30 local, or the time it is pushed to by a gap */
            int64_t tod = ((local % DAY_S) + DAY_S) % DAY_S;
            if (tod != 2 * HOUR_S + 30 * MIN_S) {
                assert_int_not_equal(tz_offset_at(z, s - HOUR_S), tz_offset_at(z, s));
            }
            assert_true(i == 0 || t - prev >= 22 * HOUR_S * 1000);
            assert_true(t - prev <= 26 * HOUR_S * 1000 || i == 0);
            prev = t;
        }
        cron_expr hourly = parse_ok("0 * * * *");
        t = U(2026, 1, 1, 0, 0) * 1000;
        int fires = 0;
        while (t < U(2027, 1, 1, 0, 0) * 1000) {
            int64_t n = cron_next(&hourly, z, t);
            assert_true(n > t);
            t = n;
            fires++;
        }
        /* 8760 hours; a skipped hour merges with the next one and a repeated hour of
         * local time fires once, so each change costs one fire (Lord Howe's half hours do
         * not touch the top of the hour in autumn). */
        assert_in_range(fires, 8760 - 2, 8760);
        tz_free(z);
    }
}

/* ---- loading zones ---- */

static void
load_fails(const char *name, const char *want)
{
    char err[512] = "";
    tz *z = tz_load(name, err, sizeof err);
    assert_null(z);
    if (strcmp(err, want) != 0) {
        fail_msg("tz_load(\"%s\"): got  %s\nwant %s", name ? name : "(null)", err, want);
    }
}

#define HINT "zone names look like Europe/Paris, America/New_York or UTC"

static void
test_load_rejects_bad_names(void **state)
{
    load_fails("Mars/Base",
               "unknown time zone \"Mars/Base\": no file /usr/share/zoneinfo/Mars/Base (" HINT ")");
    load_fails("../etc/passwd",
               "time zone \"../etc/passwd\": \"..\" is not allowed in a zone name; " HINT);
    load_fails("Europe/../../../etc/passwd", "time zone \"Europe/../../../etc/passwd\": \"..\" is "
                                             "not allowed in a zone name; " HINT);
    load_fails("/etc/localtime",
               "time zone \"/etc/localtime\": absolute paths are not accepted; " HINT);
    load_fails("Europe", "unknown time zone \"Europe\": /usr/share/zoneinfo/Europe is not a zone "
                         "file (" HINT ")");
    load_fails("", "empty time zone name: " HINT);
    load_fails(NULL, "empty time zone name: " HINT);
    load_fails("Europe/Paris ",
               "time zone \"Europe/Paris \": unexpected character ' ' (0x20); " HINT);
    load_fails("utc", "unknown time zone \"utc\": no file /usr/share/zoneinfo/utc (" HINT ")");
    char longname[300];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    load_fails(longname, "time zone name too long (299 bytes, at most 255): " HINT);
    assert_null(tz_load("Mars/Base", NULL, 0));
}

/* ---- hand-made TZif files in a TZDIR ---- */

typedef struct tzif_spec {
    int version;
    int n;
    const int64_t *at;
    const uint8_t *idx;
    int ntypes;
    const int32_t *off;
    const uint8_t *isdst;
    int leaps;
    const char *footer; /* NULL: none (version 1), or written between newlines */
} tzif_spec;

static size_t
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static size_t
put_block(unsigned char *p, const tzif_spec *s, int timesize)
{
    size_t o = 0;
    memcpy(p, "TZif", 4);
    p[4] = s->version == 1 ? 0 : (unsigned char)('0' + s->version);
    memset(p + 5, 0, 15);
    o = 20;
    o += put32(p + o, 0);                  /* isut */
    o += put32(p + o, 0);                  /* isstd */
    o += put32(p + o, (uint32_t)s->leaps); /* leap */
    o += put32(p + o, (uint32_t)s->n);
    o += put32(p + o, (uint32_t)s->ntypes);
    o += put32(p + o, 4); /* chars: "ABC\0" */
    for (int i = 0; i < s->n; i++) {
        if (timesize == 8) {
            o += put32(p + o, (uint32_t)((uint64_t)s->at[i] >> 32));
        }
        o += put32(p + o, (uint32_t)s->at[i]);
    }
    for (int i = 0; i < s->n; i++) {
        p[o++] = s->idx[i];
    }
    for (int i = 0; i < s->ntypes; i++) {
        o += put32(p + o, (uint32_t)s->off[i]);
        p[o++] = s->isdst[i];
        p[o++] = 0;
    }
    memcpy(p + o, "ABC", 4);
    o += 4;
    for (int i = 0; i < s->leaps; i++) {
        memset(p + o, 0, (size_t)timesize + 4);
        o += (size_t)timesize + 4;
    }
    return o;
}

static void
write_tzif(const char *dir, const char *name, const tzif_spec *s, size_t truncate_to)
{
    unsigned char buf[8192];
    size_t len = put_block(buf, s, 4);
    if (s->version >= 2) {
        len += put_block(buf + len, s, 8);
        len += (size_t)snprintf((char *)buf + len, sizeof buf - len, "\n%s\n",
                                s->footer ? s->footer : "");
    }
    if (truncate_to) {
        len = truncate_to;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Offsets of a zone that is only a footer rule, compared with glibc reading the same
 * POSIX TZ string, over 2000-2030 and a few far years. */
static void
footer_agrees_with_glibc(const char *dir, const char *rule)
{
    static const int32_t off[] = {0};
    static const uint8_t isdst[] = {0};
    tzif_spec s = {.version = 2, .ntypes = 1, .off = off, .isdst = isdst, .footer = rule};
    write_tzif(dir, "Rule", &s, 0);
    tz *z = zone("Rule");
    setenv("TZ", rule, 1);
    tzset();
    for (int64_t t = U(2000, 1, 1, 0, 0); t < U(2030, 1, 1, 0, 0); t += 5 * HOUR_S + 7 * 60) {
        if (tz_offset_at(z, t) != glibc_offset(t)) {
            fail_msg("\"%s\" at %lld: %d, glibc %ld", rule, (long long)t, tz_offset_at(z, t),
                     glibc_offset(t));
        }
    }
    for (int64_t t = U(2399, 12, 1, 0, 0); t < U(2401, 2, 1, 0, 0); t += 3 * HOUR_S + 7 * 60) {
        assert_int_equal(tz_offset_at(z, t), glibc_offset(t));
    }
    unsetenv("TZ");
    tzset();
    tz_free(z);
}

static void
test_tzdir_and_handmade_files(void **state)
{
    char dir[] = "/tmp/test_cron.XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("TZDIR", dir, 1);
    char err[512], want[1024];

    /* UTC needs no file; a missing zone names the TZDIR path. */
    tz *z = tz_load("UTC", err, sizeof err);
    assert_non_null(z);
    tz_free(z);
    snprintf(want, sizeof want,
             "unknown time zone \"Europe/Paris\": no file %s/Europe/Paris (" HINT ")", dir);
    load_fails("Europe/Paris", want);

    /* A copy of a real file under another name loads from TZDIR. */
    {
        char path[512];
        snprintf(path, sizeof path, "%s/My", dir);
        assert_int_equal(mkdir(path, 0700), 0);
        FILE *in = fopen("/usr/share/zoneinfo/Europe/Paris", "rb");
        assert_non_null(in);
        unsigned char buf[16384];
        size_t len = fread(buf, 1, sizeof buf, in);
        fclose(in);
        assert_true(len > 44 && len < sizeof buf);
        snprintf(path, sizeof path, "%s/My/Zone", dir);
        FILE *out = fopen(path, "wb");
        assert_non_null(out);
        assert_int_equal(fwrite(buf, 1, len, out), len);
        fclose(out);
        z = zone("My/Zone");
        assert_string_equal(tz_name(z), "My/Zone");
        assert_int_equal(tz_offset_at(z, U(2026, 7, 1, 0, 0)), 2 * HOUR_S);
        tz_free(z);
        /* The same bytes cut short: corrupt. */
        snprintf(path, sizeof path, "%s/Short", dir);
        out = fopen(path, "wb");
        assert_non_null(out);
        assert_int_equal(fwrite(buf, 1, len / 2, out), len / 2);
        fclose(out);
        snprintf(want, sizeof want,
                 "time zone \"Short\": %s/Short is a truncated or corrupt TZif file", dir);
        load_fails("Short", want);
    }

    /* Not a TZif file. */
    {
        char path[512];
        snprintf(path, sizeof path, "%s/Text", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("Europe/Paris\n", f);
        fclose(f);
        snprintf(want, sizeof want, "time zone \"Text\": %s/Text is not a TZif file", dir);
        load_fails("Text", want);
    }

    /* Version 1: 32-bit times, no footer; the last type holds after the last change. */
    static const int64_t at1[] = {1000000000, 1100000000};
    static const uint8_t idx1[] = {1, 2};
    static const int32_t off1[] = {-3600, 7200, 3 * 3600};
    static const uint8_t dst1[] = {0, 1, 0};
    tzif_spec v1 = {
        .version = 1, .n = 2, .at = at1, .idx = idx1, .ntypes = 3, .off = off1, .isdst = dst1};
    write_tzif(dir, "V1", &v1, 0);
    z = zone("V1");
    assert_int_equal(tz_offset_at(z, -5000000000), -3600);
    assert_int_equal(tz_offset_at(z, 999999999), -3600);
    assert_int_equal(tz_offset_at(z, 1000000000), 7200);
    assert_int_equal(tz_offset_at(z, 1100000000), 3 * 3600);
    assert_int_equal(tz_offset_at(z, 5000000000), 3 * 3600);
    tz_free(z);

    /* Before the first change: the first type that is not DST. */
    static const int32_t off2[] = {7200, 3600};
    static const uint8_t dst2[] = {1, 0};
    static const uint8_t idx2[] = {0, 1};
    tzif_spec first = {.version = 2,
                       .n = 2,
                       .at = at1,
                       .idx = idx2,
                       .ntypes = 2,
                       .off = off2,
                       .isdst = dst2,
                       .footer = ""};
    write_tzif(dir, "First", &first, 0);
    z = zone("First");
    assert_int_equal(tz_offset_at(z, 0), 3600);
    assert_int_equal(tz_offset_at(z, 1000000000), 7200);
    assert_int_equal(tz_offset_at(z, 4000000000), 3600); /* empty footer: the last type */
    tz_free(z);

    /* Leap seconds (right/ zones), disordered times, a bad footer: refused. */
    tzif_spec leap = v1;
    leap.leaps = 1;
    write_tzif(dir, "Leap", &leap, 0);
    snprintf(want, sizeof want,
             "time zone \"Leap\": %s/Leap is a zone with leap seconds (a right/ zone), which "
             "jobqd does not use",
             dir);
    load_fails("Leap", want);
    static const int64_t back[] = {1100000000, 1000000000};
    tzif_spec disorder = v1;
    disorder.at = back;
    write_tzif(dir, "Disorder", &disorder, 0);
    snprintf(want, sizeof want, "time zone \"Disorder\": %s/Disorder is a corrupt TZif file", dir);
    load_fails("Disorder", want);
    static const uint8_t badidx[] = {1, 3};
    tzif_spec badtype = v1;
    badtype.idx = badidx;
    write_tzif(dir, "BadType", &badtype, 0);
    snprintf(want, sizeof want, "time zone \"BadType\": %s/BadType is a corrupt TZif file", dir);
    load_fails("BadType", want);
    tzif_spec badfooter = first;
    badfooter.footer = "CET-1CEST,M3.5.0";
    write_tzif(dir, "BadFooter", &badfooter, 0);
    snprintf(want, sizeof want,
             "time zone \"BadFooter\": %s/BadFooter is a TZif file whose footer rule is not a "
             "POSIX TZ string",
             dir);
    load_fails("BadFooter", want);

    /* Footer rules of every form against glibc: Mm.w.d with odd times, Jn, n, negative
     * and quoted names, southern and negative DST, all-year DST, no DST. */
    footer_agrees_with_glibc(dir, "CET-1CEST,M3.5.0,M10.5.0/3");
    footer_agrees_with_glibc(dir, "EST5EDT,M3.2.0,M11.1.0");
    footer_agrees_with_glibc(dir, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    footer_agrees_with_glibc(dir, "IST-1GMT0,M10.5.0,M3.5.0/1");
    footer_agrees_with_glibc(dir, "<-04>4<-03>,M9.1.6/24,M4.1.6/24");
    footer_agrees_with_glibc(dir, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    footer_agrees_with_glibc(dir, "AAA-1BBB,J60,J300");
    footer_agrees_with_glibc(dir, "AAA-1BBB-2:30,59/1:30,299/23:59:59");
    footer_agrees_with_glibc(dir, "<+0545>-5:45");
    footer_agrees_with_glibc(dir, "XXX3YYY,M2.5.4/167,M11.1.0/-167");

    /* DST all year ("EST5EDT,0/0,J365/25" in RFC 8536): glibc reads the first hours of
     * each UTC year as standard time; the rule means DST throughout. */
    static const int32_t off0[] = {0};
    static const uint8_t dst0[] = {0};
    tzif_spec rule = {
        .version = 3, .ntypes = 1, .off = off0, .isdst = dst0, .footer = "EST5EDT,0/0,J365/25"};
    write_tzif(dir, "AllYear", &rule, 0);
    z = zone("AllYear");
    for (int64_t t = U(2020, 1, 1, 0, 0); t < U(2030, 1, 1, 0, 0); t += HOUR_S + 60) {
        assert_int_equal(tz_offset_at(z, t), -4 * HOUR_S);
    }
    tz_free(z);
    /* No rule after the DST name: the US rule, as glibc assumes. */
    rule.footer = "AAA5BBB";
    write_tzif(dir, "NoRule", &rule, 0);
    z = zone("NoRule");
    assert_int_equal(tz_offset_at(z, U(2026, 3, 8, 7, 0) - 1), -5 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 3, 8, 7, 0)), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 11, 1, 6, 0) - 1), -4 * HOUR_S);
    assert_int_equal(tz_offset_at(z, U(2026, 11, 1, 6, 0)), -5 * HOUR_S);
    tz_free(z);

    /* TZDIR that does not exist: say so; UTC still works. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", dir);
    setenv("TZDIR", missing, 1);
    snprintf(want, sizeof want,
             "unknown time zone \"Europe/Paris\": no zone directory %s (install tzdata, or set "
             "TZDIR)",
             missing);
    load_fails("Europe/Paris", want);
    z = zone("Etc/UTC");
    assert_int_equal(tz_offset_at(z, 0), 0);
    tz_free(z);
    unsetenv("TZDIR");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The worst cases stay cheap: a search that fails after 5 years, a leap day 3 years away,
 * and a fire every minute. Minute-by-minute search would take about 2.6 million steps for
 * the first; the bound leaves two orders of magnitude for slow machines and valgrind. */
static void
test_next_is_fast(void **state)
{
    static const char *const exprs[] = {"0 0 30 2 *", "0 0 29 2 *", "* * * * *", "0 0 13 * fri",
                                        "30 2 * * *"};
    tz *z = zone("Europe/Paris");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        cron_expr e = parse_ok(exprs[i]);
        for (int k = 0; k < 200; k++) {
            int64_t n = cron_next(&e, z, (U(2025, 1, 1, 0, 0) + k * 7919) * 1000);
            assert_true(n == -1 || n > 0);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    print_message("1000 cron_next calls in %.3f s\n", secs);
    assert_true(secs < 5.0);
    tz_free(z);
}

int
main(void)
{
    unsetenv("TZDIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_every_field_syntax),
        cmocka_unit_test(test_parse_macros),
        cmocka_unit_test(test_parse_rejects_with_reasons),
        cmocka_unit_test(test_civil_days_match_libc),
        cmocka_unit_test(test_day_of_month_or_day_of_week),
        cmocka_unit_test(test_next_every_15_minutes),
        cmocka_unit_test(test_next_month_year_and_leap_day),
        cmocka_unit_test(test_next_macros),
        cmocka_unit_test(test_utc_and_fixed_offsets),
        cmocka_unit_test(test_paris_2026),
        cmocka_unit_test(test_new_york_2026),
        cmocka_unit_test(test_far_future_uses_the_footer_rule),
        cmocka_unit_test(test_lord_howe_half_hour_dst),
        cmocka_unit_test(test_offsets_agree_with_glibc),
        cmocka_unit_test(test_next_matches_a_brute_force_scan),
        cmocka_unit_test(test_next_walks_whole_years_in_dst_zones),
        cmocka_unit_test(test_load_rejects_bad_names),
        cmocka_unit_test(test_tzdir_and_handmade_files),
        cmocka_unit_test(test_next_is_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
