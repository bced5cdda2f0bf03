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
#include "sha256.h"

#include <string.h>

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

/* sha256_hex: the hex digest of s. */
static void
sha256_hex(const char *s, size_t len, char out[65])
{
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    /* in two pieces, to cross a block boundary inside update */
    sha256_update(&c, s, len / 3);
    sha256_update(&c, s + len / 3, len - len / 3);
    sha256_final(&c, d);
    hex32(d, out);
}

/* FIPS 180-4 examples, and a message of exactly one block less the padding. */
static void
test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char a[1000];
    memset(a, 'a', sizeof(a));
    sha256_hex(a, sizeof(a), hex);
    assert_string_equal(hex, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than a block). */
static void
test_hmac_sha256_vectors(void **state)
{
    (void)state;
    uint8_t d[32];
    char hex[65];
    uint8_t key1[20];
    memset(key1, 0x0b, sizeof(key1));
    const void *p1[] = {"Hi There"};
    size_t l1[] = {8};
    hmac_sha256(key1, sizeof(key1), p1, l1, 1, d);
    hex32(d, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    const void *p2[] = {"what do ya want ", "for nothing?"};
    size_t l2[] = {16, 12};
    hmac_sha256("Jefe", 4, p2, l2, 2, d);
    hex32(d, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    uint8_t key6[131];
    memset(key6, 0xaa, sizeof(key6));
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    const void *p6[] = {m6};
    size_t l6[] = {strlen(m6)};
    hmac_sha256(key6, sizeof(key6), p6, l6, 1, d);
    hex32(d, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
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
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_hmac_sha256_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
