/* test_common.c: the small utilities every binary shares (common/): the duration grammar, the
 * intrusive list, the id hash and the clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "clock.h"
#include "duration.h"
#include "idhash.h"
#include "list.h"

static void
test_duration_one_term(void **state)
{
    int64_t ms = -1;
    assert_true(jobq__duration_scan("250ms", false, &ms));
    assert_int_equal(ms, 250);
    assert_true(jobq__duration_scan("10s", false, &ms));
    assert_int_equal(ms, 10000);
    assert_true(jobq__duration_scan("5m", false, &ms));
    assert_int_equal(ms, 300000);
    assert_true(jobq__duration_scan("1h", false, &ms));
    assert_int_equal(ms, 3600000);
    assert_true(jobq__duration_scan("7d", false, &ms));
    assert_int_equal(ms, 7 * 86400000LL);
    assert_true(jobq__duration_scan("1500", false, &ms)); /* bare: ms */
    assert_int_equal(ms, 1500);
    assert_true(jobq__duration_scan("0", false, &ms));
    assert_int_equal(ms, 0);
    ms = 42;
    const char *bad[] = {"",
                         "s",
                         "-5s",
                         "+5s",
                         " 5s",
                         "5 s",
                         "5x",
                         "5sec",
                         "5ms5",
                         "1h30m",
                         "5S",
                         "1.5s",
                         "5s ",
                         "9223372036854775807s",
                         "99999999999999999999",
                         NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        assert_false(jobq__duration_scan(bad[i], false, &ms));
    }
    assert_false(jobq__duration_scan(NULL, false, &ms));
    assert_int_equal(ms, 42); /* written only on success */
}

static void
test_duration_several_terms(void **state)
{
    int64_t ms = -1;
    assert_true(jobq__duration_scan("1h30m", true, &ms));
    assert_int_equal(ms, 5400000);
    assert_true(jobq__duration_scan("1d2h3m4s5ms", true, &ms));
    assert_int_equal(ms, 86400000LL + 7200000 + 180000 + 4000 + 5);
    assert_true(jobq__duration_scan("250", true, &ms));
    assert_int_equal(ms, 250);
    assert_false(jobq__duration_scan("1h30", true, &ms)); /* a bare number stands alone */
    assert_false(jobq__duration_scan("1h 30m", true, &ms));
    assert_false(jobq__duration_scan("9223372036854775s9223372036854775s", true, &ms));
}

typedef struct item {
    int v;
    struct item *next, *prev;
    struct item *all_next, *all_prev;
} item;

static void
test_list_push_and_unlink(void **state)
{
    item it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
    item *head = NULL;
    item *all = NULL;
    for (int i = 0; i < 4; i++) {
        JOBQ_LIST_PUSH(head, &it[i], next, prev);
        JOBQ_LIST_PUSH(all, &it[i], all_next, all_prev);
    }
    JOBQ_LIST_UNLINK(head, &it[3], next, prev); /* the first */
    JOBQ_LIST_UNLINK(head, &it[1], next, prev); /* one in the middle */
    assert_ptr_equal(it[1].next, &it[0]);       /* a loop standing on it steps on */
    JOBQ_LIST_UNLINK(head, &it[0], next, prev); /* the last */
    assert_ptr_equal(head, &it[2]);
    assert_null(it[2].next);
    assert_null(it[2].prev);
    JOBQ_LIST_UNLINK(head, &it[2], next, prev);
    assert_null(head);
    /* The other list is untouched. */
    int seen = 0;
    for (item *p = all; p != NULL; p = p->all_next) {
        assert_int_equal(p->v, 3 - seen);
        if (p->all_next != NULL) {
            assert_ptr_equal(p->all_next->all_prev, p);
        }
        seen++;
    }
    assert_int_equal(seen, 4);
}

/* 100,000 consecutive ids spread evenly over 1,024 buckets, and the hash is the tables' own. */
static void
test_id_hash_spreads_sequential_ids(void **state)
{
    static int count[1024];
    for (int64_t id = 1; id <= 100000; id++) {
        size_t b = jobq__id_bucket(id, 1024);
        assert_true(b < 1024);
        count[b]++;
    }
    for (int b = 0; b < 1024; b++) {
        assert_in_range(count[b], 80, 115); /* 97.7 on average */
    }
    assert_int_equal(jobq__id_bucket(42, 1024),
                     (size_t)((42ULL * 0x9e3779b97f4a7c15ULL) >> 40) & 1023);
}

static void
test_clock_is_monotonic(void **state)
{
    int64_t a = jobq__mono_ns();
    int64_t b = jobq__mono_ns();
    assert_true(b >= a);
    assert_true(jobq__mono_ms() >= a / 1000000);
    assert_true(jobq__wall_ms() > 1600000000000LL); /* after 2020 */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_one_term),
        cmocka_unit_test(test_duration_several_terms),
        cmocka_unit_test(test_list_push_and_unlink),
        cmocka_unit_test(test_id_hash_spreads_sequential_ids),
        cmocka_unit_test(test_clock_is_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
