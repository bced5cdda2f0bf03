/* test_request.c: the request decoder: every op decodes into the right struct, and every
 * kind of bad input maps to its stable error code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "codec.h"
#include "request.h"

static const request_limits lim = {
    .max_batch = 3, .max_wait_ids = 2, .max_wait_ms = 60000, .max_payload = 64, .max_after = 3};

static const char *
decode(const char *text, request *req)
{
    char err[256];
    return jobq__request_decode(text, strlen(text), &lim, req, err, sizeof(err));
}

static void
expect_code(const char *text, const char *code)
{
    request req;
    const char *got = decode(text, &req);
    if (got == NULL || strcmp(got, code) != 0) {
        fail_msg("%s: got %s, want %s", text, got ? got : "success", code);
    }
}

/* expect_error: text is refused with code, and the message holds want (and not avoid). */
static void
expect_error(const char *text, const char *code, const char *want, const char *avoid)
{
    request req;
    char err[256];
    const char *got = jobq__request_decode(text, strlen(text), &lim, &req, err, sizeof(err));
    if (got == NULL || strcmp(got, code) != 0) {
        fail_msg("%.80s: got %s, want %s", text, got ? got : "success", code);
    }
    if (strstr(err, want) == NULL || (avoid != NULL && strstr(err, avoid) != NULL)) {
        fail_msg("%.80s: message \"%s\" should name %s", text, err, want);
    }
}

/* nested: a submit whose payload is levels - 1 nested arrays (the request object is one). */
static char *
nested(int levels)
{
    static const char head[] = "{\"op\":\"submit\",\"queue\":\"q\",\"payload\":";
    size_t n = strlen(head) + 2 * (size_t)levels + 1;
    char *s = test_malloc(n);
    char *p = s + strlen(head);
    memcpy(s, head, strlen(head));
    memset(p, '[', (size_t)levels - 1);
    memset(p + levels - 1, ']', (size_t)levels - 1);
    strcpy(p + 2 * (levels - 1), "}");
    return s;
}

static void
test_values_jobq_cannot_hold(void **state)
{
    /* Valid JSON numbers out of range are argument problems that name their field. */
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"priority\":99999999999999999999}",
                 "invalid_argument", "\"priority\" is out of range (99999999999999999999)", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":1e400}", "invalid_argument",
                 "\"run_at\"", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":{\"a\":[1,-1e400]}}",
                 "invalid_argument", "\"payload.a[1]\"", NULL);
    expect_error("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{},"
                 "{\"max_attempts\":-99999999999999999999}]}",
                 "invalid_argument", "\"jobs[1].max_attempts\"", NULL);
    expect_error("{\"op\":\"get\",\"id\":18446744073709551616}", "invalid_argument", "\"id\"",
                 NULL);
    /* A NUL character in any string, in jobq's words. */
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":{\"s\":\"a\\u0000b\"}}",
                 "invalid_argument", "\"payload.s\" holds a string with \\u0000", "JSON_");
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":{\"\\u0000\":1}}",
                 "invalid_argument", "\\u0000", "JSON_");
    /* Nesting: 2,048 levels are read (and then refused only for the payload's size, 64
     * bytes here), one more is refused with its own message. */
    char *text = nested(2048);
    expect_code(text, "payload_too_large");
    test_free(text);
    text = nested(2049);
    expect_error(text, "too_large", "more than 2048 levels deep", NULL);
    test_free(text);
}

static void
test_run_at_bounds(void **state)
{
    request req;
    char text[160];
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":0}", &req));
    assert_true(req.jobs[0].has_run_at);
    assert_int_equal(req.jobs[0].run_at_ms, 0);
    jobq__request_free(&req);
    int64_t now = jobq__now_ms();
    snprintf(text, sizeof(text), "{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":%lld}",
             (long long)(now + JOBQ__DURATION_MAX_MS - 60000));
    assert_null(decode(text, &req));
    jobq__request_free(&req);
    snprintf(text, sizeof(text), "{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":%lld}",
             (long long)(now + JOBQ__DURATION_MAX_MS + 60000));
    expect_error(text, "invalid_argument", "\"run_at\" is more than one year from now", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":9223372036854775807}",
                 "invalid_argument", "\"run_at\"", NULL);
    expect_error(
        "{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{\"run_at\":999999999999999}]}",
        "invalid_argument", "\"run_at\"", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":-1}", "invalid_argument",
                 "\"run_at\"", NULL);
}

static void
test_submit_decodes_every_field(void **state)
{
    request req;
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"mail\",\"payload\":{\"a\":[1,2]},"
                       "\"priority\":-3,\"delay\":\"10s\",\"max_attempts\":4,\"timeout\":1500,"
                       "\"key\":\"k\"}",
                       &req));
    assert_int_equal(req.op, REQ_SUBMIT);
    assert_int_equal(req.njobs, 1);
    req_job *j = &req.jobs[0];
    assert_string_equal(j->queue, "mail");
    assert_string_equal(j->payload, "{\"a\":[1,2]}");
    assert_int_equal(j->priority, -3);
    assert_int_equal(j->delay_ms, 10000);
    assert_int_equal(j->max_attempts, 4);
    assert_int_equal(j->timeout_ms, 1500);
    assert_string_equal(j->key, "k");
    assert_false(j->has_run_at);
    jobq__request_free(&req);
}

/* group_key: 1 to 200 bytes without control characters (it becomes a header and an environment
 * variable), on a submit and on each entry of a batch. */
static void
test_group_key(void **state)
{
    (void)state;
    request req;
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":\"acme \u00e9\"}", &req));
    assert_string_equal(req.jobs[0].group_key, "acme \xc3\xa9");
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{\"group_key\":\"a\"},"
                       "{}]}",
                       &req));
    assert_string_equal(req.jobs[0].group_key, "a");
    assert_null(req.jobs[1].group_key);
    jobq__request_free(&req);
    char big[320];
    snprintf(big, sizeof(big), "{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":\"%0201d\"}", 0);
    expect_error(big, "invalid_argument", "group_key", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":\"a\\r\\nX: 1\"}",
                 "invalid_argument", "control characters", NULL);
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":\"\"}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":7}", "invalid_argument");
    expect_error("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{}],\"group\":true,"
                 "\"on_complete\":{\"queue\":\"r\",\"group_key\":\"k\"}}",
                 "invalid_argument", "group_key", NULL);
}

static void
test_payload_defaults_to_null_and_hash_ignores_key_order(void **state)
{
    request a, b;
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"q\"}", &a));
    assert_string_equal(a.jobs[0].payload, "null");
    jobq__request_free(&a);
    assert_null(decode(
        "{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"payload\":{\"x\":1,\"y\":2}}", &a));
    assert_null(decode(
        "{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"payload\":{\"y\":2,\"x\":1}}", &b));
    assert_true(a.jobs[0].payload_hash == b.jobs[0].payload_hash);
    jobq__request_free(&b);
    assert_null(decode(
        "{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"payload\":{\"y\":3,\"x\":1}}", &b));
    assert_true(a.jobs[0].payload_hash != b.jobs[0].payload_hash);
    jobq__request_free(&a);
    jobq__request_free(&b);
}

static void
test_batch_default_queue_and_limits(void **state)
{
    request req;
    assert_null(decode("{\"op\":\"submit_batch\",\"queue\":\"d\",\"jobs\":[{\"payload\":1},"
                       "{\"queue\":\"o\",\"payload\":2}]}",
                       &req));
    assert_int_equal(req.njobs, 2);
    assert_string_equal(req.jobs[0].queue, "d");
    assert_string_equal(req.jobs[1].queue, "o");
    jobq__request_free(&req);
    expect_code("{\"op\":\"submit_batch\",\"jobs\":[{\"payload\":1}]}", "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"d\",\"jobs\":[]}", "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"d\",\"jobs\":[1,2,3,4]}", "batch_too_large");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"d\",\"jobs\":[{},{\"priority\":\"x\"}]}",
                "invalid_argument");
}

static void
test_wait_list_get(void **state)
{
    request req;
    assert_null(decode("{\"op\":\"wait\",\"ids\":[4,5],\"timeout\":\"2s\"}", &req));
    assert_int_equal(req.nids, 2);
    assert_int_equal(req.ids[1], 5);
    assert_int_equal(req.timeout_ms, 2000);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"wait\",\"id\":9}", &req));
    assert_int_equal(req.timeout_ms, 30000);
    jobq__request_free(&req);
    expect_code("{\"op\":\"wait\",\"ids\":[1,2,3]}", "too_large");
    expect_code("{\"op\":\"wait\",\"id\":1,\"timeout\":\"2h\"}", "invalid_argument");
    expect_code("{\"op\":\"wait\"}", "invalid_argument");
    assert_null(decode("{\"op\":\"list\",\"state\":\"dead\",\"after\":10,\"limit\":5}", &req));
    assert_int_equal(req.state, JOBQ_DEAD);
    assert_int_equal(req.after_id, 10);
    assert_int_equal(req.limit, 5);
    jobq__request_free(&req);
    expect_code("{\"op\":\"list\",\"limit\":0}", "invalid_argument");
    expect_code("{\"op\":\"list\",\"limit\":1001}", "invalid_argument");
    expect_code("{\"op\":\"get\",\"id\":0}", "invalid_argument");
    expect_code("{\"op\":\"get\",\"id\":1.5}", "invalid_argument");
    expect_code("{\"op\":\"get\"}", "invalid_argument");
}

/* The schedule_* ops: add needs name, cron and queue; update only the name (what is absent
 * stays unset: -1 or false); the enums and the priority are checked at the edge. */
static void
test_schedule_ops(void **state)
{
    (void)state;
    request req;
    assert_null(decode("{\"op\":\"schedule_add\",\"name\":\"n.1\",\"cron\":\"* * * * *\","
                       "\"queue\":\"q\",\"payload\":{\"a\":1},\"overlap\":\"skip\","
                       "\"missed\":\"run_once\",\"priority\":-3,\"timezone\":\"UTC\"}",
                       &req));
    assert_int_equal(req.op, REQ_SCHEDULE_ADD);
    assert_string_equal(req.sched_name, "n.1");
    assert_string_equal(req.sched_cron, "* * * * *");
    assert_string_equal(req.queue, "q");
    assert_string_equal(req.sched_timezone, "UTC");
    assert_true(json_is_object(req.sched_payload));
    assert_int_equal(req.sched_overlap, 1);
    assert_int_equal(req.sched_missed, 0);
    assert_true(req.sched_has_priority);
    assert_int_equal(req.sched_priority, -3);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"schedule_update\",\"name\":\"n\"}", &req));
    assert_null(req.sched_cron);
    assert_null(req.queue);
    assert_null(req.sched_payload);
    assert_int_equal(req.sched_overlap, -1);
    assert_int_equal(req.sched_missed, -1);
    assert_false(req.sched_has_priority);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"schedule_trigger\",\"name\":\"n\"}", &req));
    assert_int_equal(req.op, REQ_SCHEDULE_TRIGGER);
    jobq__request_free(&req);
    expect_code("{\"op\":\"schedule_add\",\"name\":\"n\",\"queue\":\"q\"}", "invalid_argument");
    expect_code("{\"op\":\"schedule_add\",\"name\":\"n\",\"cron\":\"* * * * *\"}",
                "invalid_argument");
    expect_code("{\"op\":\"schedule_update\",\"name\":\"n\",\"overlap\":\"never\"}",
                "invalid_argument");
    expect_code("{\"op\":\"schedule_update\",\"name\":\"n\",\"missed\":1}", "invalid_argument");
    expect_code("{\"op\":\"schedule_update\",\"name\":\"n\",\"priority\":1e3}", "invalid_argument");
    expect_code("{\"op\":\"schedule_pause\",\"name\":\"a b\"}", "invalid_argument");
    expect_code("{\"op\":\"schedule_delete\"}", "invalid_argument");
}

static void
test_stats_fields(void **state)
{
    request req;
    assert_null(decode("{\"op\":\"stats\"}", &req));
    assert_int_equal(req.op, REQ_STATS);
    assert_false(req.stats_some);
    assert_false(req.series);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"stats\",\"queues\":[\"a\",\"b.c\"],\"series\":true}", &req));
    assert_true(req.stats_some);
    assert_true(req.series);
    assert_int_equal(req.nqueues, 2);
    assert_string_equal(req.queues[1], "b.c");
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"stats\",\"queues\":[]}", &req));
    assert_true(req.stats_some);
    assert_int_equal(req.nqueues, 0);
    jobq__request_free(&req);
    expect_code("{\"op\":\"stats\",\"series\":\"yes\"}", "invalid_argument");
    expect_code("{\"op\":\"stats\",\"queues\":\"a\"}", "invalid_argument");
    expect_code("{\"op\":\"stats\",\"queues\":[\"a b\"]}", "invalid_argument");
    expect_code("{\"op\":\"stats\",\"queues\":[1]}", "invalid_argument");
}

static void
test_bad_input_codes(void **state)
{
    expect_code("", "malformed");
    expect_code("{", "malformed");
    expect_code("[]", "malformed");
    expect_code("\"ping\"", "malformed");
    expect_code("{\"op\":\"ping\",\"op\":\"stats\"}", "malformed");
    expect_code("{\"op\":1}", "unknown_op");
    expect_code("{\"op\":\"nope\"}", "unknown_op");
    expect_code("{\"op\":\"submit\",\"queue\":\"\"}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"a/b\"}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"timeout\":0}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"max_attempts\":0}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"priority\":4294967296}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":\"tomorrow\"}", "invalid_argument");
    /* Found by fuzz_request's author: now + delay overflowed in jobqd. */
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"delay\":9223372036854775807}",
                "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"delay\":\"106751991167d\"}",
                "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"timeout\":\"400d\"}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"key\":7}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":"
                "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
                "payload_too_large");
    expect_code("{\"op\":\"pause\"}", "invalid_argument");
    /* A NUL byte inside the message. */
    request req;
    char err[128];
    assert_string_equal(
        jobq__request_decode("{\"op\":\"ping\"}\0x", 15, &lim, &req, err, sizeof(err)),
        "malformed");
}

static void
test_durations(void **state)
{
    int64_t ms = -1;
    assert_true(jobq__duration_parse("250ms", &ms));
    assert_int_equal(ms, 250);
    assert_true(jobq__duration_parse("10s", &ms));
    assert_int_equal(ms, 10000);
    assert_true(jobq__duration_parse("5m", &ms));
    assert_int_equal(ms, 300000);
    assert_true(jobq__duration_parse("1h", &ms));
    assert_int_equal(ms, 3600000);
    assert_true(jobq__duration_parse("42", &ms));
    assert_int_equal(ms, 42);
    assert_false(jobq__duration_parse("", &ms));
    assert_false(jobq__duration_parse("-1s", &ms));
    assert_true(jobq__duration_parse("7d", &ms));
    assert_int_equal(ms, 7 * 24 * 3600000LL);
    assert_false(jobq__duration_parse("1w", &ms));
    assert_false(jobq__duration_parse("s", &ms));
    assert_false(jobq__duration_parse("99999999999999999999h", &ms));
    assert_false(jobq__duration_parse("9999999999999999h", &ms));
}

/* fast_same: text goes through the fast path, and decodes as the JSON decoder decodes it. */
static void
fast_same(const char *text)
{
    request f, j;
    char err[256];
    if (!jobq__request_decode_fast(text, strlen(text), &lim, &f)) {
        fail_msg("the fast path did not take %s", text);
    }
    assert_null(jobq__request_decode_json(text, strlen(text), &lim, &j, err, sizeof(err)));
    assert_int_equal(f.op, j.op);
    assert_int_equal(f.njobs, j.njobs);
    for (size_t i = 0; i < f.njobs; i++) {
        assert_string_equal(f.jobs[i].queue, j.jobs[i].queue);
        assert_string_equal(f.jobs[i].payload, j.jobs[i].payload);
        assert_int_equal(f.jobs[i].priority, j.jobs[i].priority);
        assert_int_equal(f.jobs[i].max_attempts, j.jobs[i].max_attempts);
        assert_int_equal(f.jobs[i].has_run_at, j.jobs[i].has_run_at);
        assert_int_equal(f.jobs[i].run_at_ms, j.jobs[i].run_at_ms);
    }
    jobq__request_free(&f);
    jobq__request_free(&j);
}

static void
fast_declines(const char *text)
{
    request f;
    if (jobq__request_decode_fast(text, strlen(text), &lim, &f)) {
        jobq__request_free(&f);
        fail_msg("the fast path took %s", text);
    }
    assert_null(f.jobs);
}

static void
test_fast_path_agrees_or_declines(void **state)
{
    /* What libjobq sends, and the same with white space and every field it reads. */
    fast_same("{\"op\":\"submit\",\"queue\":\"bench\",\"payload\":{\"to\":\"a@b\",\"n\":42}}");
    fast_same(" { \"queue\" : \"q\", \"op\": \"submit\", \"payload\": [ 1, -2, true, false,"
              " null, { }, [ ], { \"a\" : { \"b\" : \"c d\" } } ], \"priority\": -7,"
              " \"max_attempts\": 3, \"run_at\": 0 }\n");
    fast_same("{\"op\":\"submit\",\"queue\":\"q\"}");
    fast_same("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{\"payload\":1},"
              "{\"queue\":\"other\",\"payload\":\"x\",\"priority\":5},{}]}");
    /* Left to the JSON decoder: fields it does not know, escapes, reals, keys, errors. */
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[1]}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":\"\\u00e9\"}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":1.5}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":-0}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\"}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"group_key\":\"k\"}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"payload\":{\"a\":1,\"a\":2}}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"bad name\"}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"queue\":\"q\"}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\"} x");
    fast_declines("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{},{},{},{}]}");
    fast_declines("{\"op\":\"submit_batch\",\"queue\":\"q\",\"group\":true,\"jobs\":[{}]}");
    fast_declines("{\"op\":\"submit_batch\",\"jobs\":[{}]}");
    fast_declines("{\"op\":\"get\",\"id\":1}");
    /* The scanner runs the table's checks: out of range, it leaves the request to the JSON
     * reader, which refuses it. */
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"run_at\":999999999999999}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"max_attempts\":0}");
    fast_declines("{\"op\":\"submit\",\"queue\":\"q\",\"priority\":2147483648}");
    fast_declines(
        "{\"op\":\"submit_batch\",\"jobs\":[{\"queue\":\"q\",\"max_attempts\":1000001}]}");
}

/* outcome_same: the ack or fail text goes through the fast path, and decodes as the JSON
 * decoder decodes it. */
static void
outcome_same(const char *text)
{
    request f, j;
    char err[256];
    if (!jobq__request_decode_fast(text, strlen(text), &lim, &f)) {
        fail_msg("the fast path did not take %s", text);
    }
    assert_null(jobq__request_decode_json(text, strlen(text), &lim, &j, err, sizeof(err)));
    assert_null(f.root);
    assert_int_equal(f.op, j.op);
    assert_int_equal(f.noutcomes, j.noutcomes);
    for (size_t i = 0; i < f.noutcomes; i++) {
        const req_outcome *a = &f.outcomes[i], *b = &j.outcomes[i];
        assert_int_equal(a->id, b->id);
        assert_string_equal(a->lease, b->lease);
        assert_int_equal(a->text == NULL, b->text == NULL);
        if (a->text != NULL) {
            assert_string_equal(a->text, b->text);
        }
        assert_int_equal(a->retry, b->retry);
        assert_int_equal(a->snooze_ms, b->snooze_ms);
    }
    assert_int_equal(f.then_fetch, j.then_fetch);
    assert_int_equal(f.nqueues, j.nqueues);
    for (size_t i = 0; i < f.nqueues; i++) {
        assert_string_equal(f.queues[i], j.queues[i]);
    }
    assert_int_equal(f.limit, j.limit);
    assert_int_equal(f.timeout_ms, j.timeout_ms);
    assert_int_equal(f.worker == NULL, j.worker == NULL);
    if (f.worker != NULL) {
        assert_string_equal(f.worker, j.worker);
    }
    assert_null(f.queue);
    assert_null(j.queue);
    jobq__request_free(&f);
    jobq__request_free(&j);
}

static void
test_fast_path_outcomes(void **state)
{
    (void)state;
    /* What libjobq's worker sends, and the shapes around it. */
    outcome_same("{\"op\":\"ack\",\"jobs\":[{\"id\":7,\"lease\":\"0123abcd\",\"result\":\"ok\"}],"
                 "\"fetch\":{\"queues\":[\"a\",\"b.c\"],\"max\":4,\"timeout\":2000,"
                 "\"worker\":\"host-1\"}}");
    outcome_same("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"},{\"lease\":\"y\",\"id\":2,"
                 "\"result\":null},{\"id\":3,\"lease\":\"z\",\"result\":\"\"}]}");
    outcome_same(" { \"jobs\" : [ { \"id\" : 9 , \"lease\" : \"t\" , \"error\" : \"boom\" ,"
                 " \"retry\" : false , \"snooze\" : 1500 } ] , \"op\" : \"fail\" ,"
                 " \"fetch\" : { \"queue\" : \"q\" } }\n");
    outcome_same("{\"op\":\"fail\",\"jobs\":[{\"id\":4,\"lease\":\"t\"}],"
                 "\"fetch\":{\"queue\":\"ignored name\",\"queues\":[\"q\"],\"timeout\":0}}");
    /* Left to the JSON decoder: the single form, other fields, escapes, durations as text,
     * duplicates, errors. */
    fast_declines("{\"op\":\"ack\",\"id\":1,\"lease\":\"x\"}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1}]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":0,\"lease\":\"x\"}]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"id\":2}]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"result\":\"\\u00e9\"}]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"extra\":1}]}");
    fast_declines("{\"op\":\"fail\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"snooze\":\"1s\"}]}");
    fast_declines("{\"op\":\"fail\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"snooze\":0}]}");
    fast_declines("{\"op\":\"fail\",\"jobs\":[{\"id\":1,\"lease\":\"x\",\"retry\":null}]}");
    fast_declines("{\"op\":\"fail\",\"slow_down\":1000,\"jobs\":[{\"id\":1,\"lease\":\"x\"}]}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}],\"fetch\":{}}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}],\"fetch\":null}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}],"
                  "\"fetch\":{\"queue\":\"bad name\"}}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}],"
                  "\"fetch\":{\"queue\":\"q\",\"timeout\":\"1s\"}}");
    fast_declines("{\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}],"
                  "\"fetch\":{\"queue\":\"q\",\"max\":101}}");
    fast_declines("{\"op\":\"ack\",\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}]}");
    fast_declines("{\"op\":\"a\n\",\"op\":\"ack\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}]}");
    fast_declines("{\"op\":\"heartbeat\",\"jobs\":[{\"id\":1,\"lease\":\"x\"}]}");
}

static void
test_workflow_fields(void **state)
{
    request req;
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[4,5],"
                       "\"after_policy\":\"always\"}",
                       &req));
    assert_int_equal(req.jobs[0].nafter, 2);
    assert_int_equal(req.jobs[0].after[1], 5);
    assert_true(req.jobs[0].after_always);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{},{}],\"group\":true,"
                       "\"on_complete\":{\"queue\":\"r\",\"payload\":[1]}}",
                       &req));
    assert_true(req.group);
    assert_non_null(req.on_complete);
    assert_string_equal(req.on_complete->queue, "r");
    assert_string_equal(req.on_complete->payload, "[1]");
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"wait\",\"group\":7,\"timeout\":\"1s\"}", &req));
    assert_int_equal(req.group_id, 7);
    assert_int_equal(req.nids, 0);
    assert_int_equal(req.timeout_ms, 1000);
    assert_int_equal(req.return_when, WAIT_ALL);
    assert_false(req.cancel_pending);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"wait\",\"ids\":[1,2],\"return_when\":\"first\","
                       "\"cancel_pending\":true}",
                       &req));
    assert_int_equal(req.return_when, WAIT_FIRST);
    assert_true(req.cancel_pending);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"wait\",\"group\":3,\"return_when\":\"first_failure\"}", &req));
    assert_int_equal(req.return_when, WAIT_FIRST_FAILURE);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"wait\",\"id\":1,\"return_when\":\"all\"}", &req));
    assert_int_equal(req.return_when, WAIT_ALL);
    jobq__request_free(&req);
    expect_code("{\"op\":\"wait\",\"id\":1,\"return_when\":\"any\"}", "invalid_argument");
    expect_code("{\"op\":\"wait\",\"id\":1,\"return_when\":1}", "invalid_argument");
    expect_code("{\"op\":\"wait\",\"id\":1,\"cancel_pending\":\"yes\"}", "invalid_argument");
    assert_null(decode("{\"op\":\"get\",\"group\":9}", &req));
    assert_int_equal(req.group_id, 9);
    jobq__request_free(&req);

    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[]}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[0]}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"after\":\"4\"}", "invalid_argument");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[1,2,3,4]}", "too_large");
    expect_code("{\"op\":\"submit\",\"queue\":\"q\",\"after\":[1],\"after_policy\":\"x\"}",
                "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{}],\"group\":1}",
                "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{}],"
                "\"on_complete\":{\"queue\":\"r\"}}",
                "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{}],\"group\":true,"
                "\"on_complete\":{\"queue\":\"r\",\"key\":\"k\"}}",
                "invalid_argument");
    expect_code("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{}],\"group\":true,"
                "\"on_complete\":{\"payload\":1}}",
                "invalid_argument");
    expect_code("{\"op\":\"wait\",\"group\":1,\"id\":2}", "invalid_argument");
    expect_code("{\"op\":\"get\",\"group\":-1}", "invalid_argument");
}

/* ack and fail of many jobs: each entry decoded with its own defaults; the single form stays;
 * the shape is checked whole. */
static void
test_outcomes_of_many_jobs(void **state)
{
    (void)state;
    request req;
    assert_null(decode("{\"op\":\"fail\",\"jobs\":[{\"id\":3,\"lease\":\"a\",\"error\":\"e\"},"
                       "{\"id\":4,\"lease\":\"b\",\"retry\":false}],"
                       "\"fetch\":{\"queue\":\"q\",\"max\":2}}",
                       &req));
    assert_int_equal(req.op, REQ_FAIL);
    assert_int_equal(req.noutcomes, 2);
    assert_int_equal(req.outcomes[0].id, 3);
    assert_string_equal(req.outcomes[0].lease, "a");
    assert_string_equal(req.outcomes[0].text, "e");
    assert_true(req.outcomes[0].retry);
    assert_int_equal(req.outcomes[1].id, 4);
    assert_null(req.outcomes[1].text);
    assert_false(req.outcomes[1].retry);
    assert_true(req.then_fetch);
    assert_int_equal(req.limit, 2);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"ack\",\"jobs\":[{\"id\":5,\"lease\":\"c\",\"result\":\"r\"}]}",
                       &req));
    assert_int_equal(req.noutcomes, 1);
    assert_string_equal(req.outcomes[0].text, "r");
    assert_false(req.then_fetch);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"ack\",\"id\":6,\"lease\":\"d\",\"result\":\"r\"}", &req));
    assert_null(req.outcomes);
    assert_int_equal(req.ids[0], 6);
    assert_string_equal(req.lease, "d");
    jobq__request_free(&req);
    expect_error("{\"op\":\"ack\",\"jobs\":[{\"id\":5}]}", "invalid_argument", "jobs[0]", NULL);
    expect_error("{\"op\":\"ack\",\"jobs\":[{\"id\":5,\"lease\":\"c\"},{\"id\":0,\"lease\":\"c\"}]}",
                 "invalid_argument", "jobs[1]", NULL);
    expect_error("{\"op\":\"ack\",\"id\":5,\"jobs\":[{\"id\":5,\"lease\":\"c\"}]}",
                 "invalid_argument", "not both", NULL);
    expect_code("{\"op\":\"fail\",\"jobs\":[]}", "invalid_argument");
    expect_code("{\"op\":\"fail\",\"jobs\":{}}", "invalid_argument");
    expect_code("{\"op\":\"fail\",\"jobs\":[3]}", "invalid_argument");
    expect_code("{\"op\":\"ack\",\"jobs\":[{\"id\":5,\"lease\":\"c\",\"result\":3}]}",
                "invalid_argument");
    expect_code("{\"op\":\"ack\"}", "invalid_argument");
    /* Over REQ_OUTCOMES_MAX entries: too_large. */
    size_t cap = 32 + (REQ_OUTCOMES_MAX + 1) * 24;
    char *big = test_malloc(cap);
    size_t n = (size_t)snprintf(big, cap, "{\"op\":\"ack\",\"jobs\":[");
    for (int i = 0; i <= REQ_OUTCOMES_MAX; i++) {
        n += (size_t)snprintf(big + n, cap - n, "%s{\"id\":%d,\"lease\":\"x\"}", i ? "," : "",
                              i + 1);
    }
    snprintf(big + n, cap - n, "]}");
    expect_code(big, "too_large");
    test_free(big);
}

/* jobq__jt_int writes every int64 as printf's %lld would, INT64_MIN included. */
static void
test_text_integers(void **state)
{
    (void)state;
    const int64_t vals[] = {0,         1,         -1,           9, 10, -10, 99, 100, 1234567890123,
                            INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        jobq__jtext t = {0};
        jobq__jt_lit(&t, "[");
        jobq__jt_int(&t, vals[i]);
        jobq__jt_lit(&t, "]");
        char want[32];
        snprintf(want, sizeof(want), "[%lld]", (long long)vals[i]);
        assert_non_null(t.p);
        assert_string_equal(t.p, want);
        free(t.p);
    }
}

/* With read_token set, either token decodes; the read-only one marks the request, on the
 * fast scanner's ops too (submit: declined there, marked by the JSON reader). */
static void
test_tokens(void **state)
{
    (void)state;
    request_limits tl = lim;
    tl.token = "admin-0123456789abcdef";
    tl.read_token = "reader-0123456789abcdef";
    static const struct {
        const char *text;
        const char *code; /* NULL: decoded */
        bool read_only;
    } cases[] = {
        {"{\"op\":\"get\",\"id\":1,\"token\":\"admin-0123456789abcdef\"}", NULL, false},
        {"{\"op\":\"get\",\"id\":1,\"token\":\"reader-0123456789abcdef\"}", NULL, true},
        {"{\"op\":\"submit\",\"queue\":\"q\",\"token\":\"reader-0123456789abcdef\"}", NULL, true},
        {"{\"op\":\"submit\",\"queue\":\"q\",\"token\":\"admin-0123456789abcdef\"}", NULL, false},
        {"{\"op\":\"get\",\"id\":1,\"token\":\"reader-0123456789abcdeX\"}", "unauthorized", false},
        {"{\"op\":\"get\",\"id\":1}", "unauthorized", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request req;
        char err[256];
        const char *got = jobq__request_decode(cases[i].text, strlen(cases[i].text), &tl, &req,
                                               err, sizeof(err));
        if (cases[i].code == NULL) {
            if (got != NULL) {
                fail_msg("%s: %s (%s)", cases[i].text, got, err);
            }
            assert_int_equal(req.read_only, cases[i].read_only);
            jobq__request_free(&req);
        } else if (got == NULL || strcmp(got, cases[i].code) != 0) {
            fail_msg("%s: got %s, want %s", cases[i].text, got ? got : "success", cases[i].code);
        }
    }
}

/* mutate: the filter, the action and its argument, and the refusal of an empty filter. */
static void
test_mutate(void **state)
{
    (void)state;
    request req;
    assert_null(decode("{\"op\":\"mutate\",\"action\":\"retry\",\"queue\":\"mail\","
                       "\"state\":[\"dead\",\"cancelled\"],\"error_contains\":\"timeout\","
                       "\"key_prefix\":\"u-\",\"ids\":[3,4],\"created_before\":5000,"
                       "\"finished_after\":\"1h\",\"dry_run\":true}",
                       &req));
    assert_int_equal(req.op, REQ_MUTATE);
    assert_int_equal(req.action, MUT_RETRY);
    assert_string_equal(req.queue, "mail");
    assert_int_equal(req.states, (1u << JOBQ_DEAD) | (1u << JOBQ_CANCELLED));
    assert_string_equal(req.error_contains, "timeout");
    assert_string_equal(req.key_prefix, "u-");
    assert_int_equal(req.nids, 2);
    assert_int_equal(req.ids[1], 4);
    assert_int_equal(req.created_before_ms, 5000);
    int64_t ago = jobq__now_ms() - 3600000; /* a duration is that long before now */
    assert_true(req.finished_after_ms <= ago && req.finished_after_ms > ago - 5000);
    assert_true(req.dry_run);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"mutate\",\"action\":\"set_priority\",\"priority\":-5,"
                       "\"state\":\"ready\"}",
                       &req));
    assert_int_equal(req.action, MUT_SET_PRIORITY);
    assert_int_equal(req.priority, -5);
    assert_int_equal(req.states, 1u << JOBQ_READY);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"mutate\",\"action\":\"reschedule\",\"delay\":\"10m\","
                       "\"all\":true}",
                       &req));
    assert_true(req.has_run_at && req.all);
    assert_true(req.run_at_ms > jobq__now_ms() + 590000);
    jobq__request_free(&req);
    /* An empty filter touches every job: refused unless "all" says so. */
    expect_error("{\"op\":\"mutate\",\"action\":\"delete\"}", "invalid_argument", "\"all\"", NULL);
    expect_code("{\"op\":\"mutate\",\"action\":\"delete\",\"all\":false}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"explode\",\"all\":true}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"all\":true}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"set_priority\",\"all\":true}",
                "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"reschedule\",\"all\":true}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"reschedule\",\"all\":true,\"delay\":\"1s\","
                "\"run_at\":5}",
                "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"state\":\"gone\"}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"state\":[]}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"ids\":[]}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"ids\":[0]}", "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"created_before\":\"soon\"}",
                "invalid_argument");
    expect_code("{\"op\":\"mutate\",\"action\":\"cancel\",\"created_before\":-1}",
                "invalid_argument");
}

/* The dedupe modes, debounce_max and expiry fields of a job, in a submit and in a batch. */
static void
test_dedupe_and_expiry_fields(void **state)
{
    (void)state;
    request req;
    assert_null(decode("{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"dedupe\":\"debounce\","
                       "\"delay\":\"5s\",\"debounce_max\":\"1m\",\"expires_in\":\"10m\"}",
                       &req));
    assert_int_equal(req.jobs[0].dedupe, JOBQ_DEDUPE_DEBOUNCE);
    assert_int_equal(req.jobs[0].debounce_max_ms, 60000);
    assert_int_equal(req.jobs[0].expires_in_ms, 600000);
    jobq__request_free(&req);
    assert_null(
        decode("{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"expires_at\":123}", &req));
    assert_int_equal(req.jobs[0].dedupe, JOBQ_DEDUPE_TTL);
    assert_int_equal(req.jobs[0].expires_at_ms, 123);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{\"key\":\"a\","
                       "\"dedupe\":\"until_done\"},{\"key\":\"b\",\"dedupe\":\"replace\"},{}]}",
                       &req));
    assert_int_equal(req.jobs[0].dedupe, JOBQ_DEDUPE_UNTIL_DONE);
    assert_int_equal(req.jobs[1].dedupe, JOBQ_DEDUPE_REPLACE);
    assert_int_equal(req.jobs[2].dedupe, JOBQ_DEDUPE_TTL);
    jobq__request_free(&req);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"dedupe\":\"latest\"}",
                 "invalid_argument", "until_done", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"dedupe\":\"replace\"}", "invalid_argument",
                 "needs a \"key\"", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"key\":\"k\",\"debounce_max\":\"1m\"}",
                 "invalid_argument", "debounce_max", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"expires_at\":5,\"expires_in\":\"1s\"}",
                 "invalid_argument", "not both", NULL);
    expect_error("{\"op\":\"submit\",\"queue\":\"q\",\"expires_in\":0}", "invalid_argument",
                 "expires_in", NULL);
    /* A fail's snooze: for the single form and for each entry of a fail of many. */
    assert_null(decode("{\"op\":\"fail\",\"id\":3,\"lease\":\"a\",\"snooze\":\"30s\"}", &req));
    assert_int_equal(req.snooze_ms, 30000);
    jobq__request_free(&req);
    assert_null(decode("{\"op\":\"fail\",\"jobs\":[{\"id\":3,\"lease\":\"a\",\"snooze\":500},"
                       "{\"id\":4,\"lease\":\"b\"}]}",
                       &req));
    assert_int_equal(req.outcomes[0].snooze_ms, 500);
    assert_int_equal(req.outcomes[1].snooze_ms, 0);
    jobq__request_free(&req);
    expect_error("{\"op\":\"fail\",\"id\":3,\"lease\":\"a\",\"snooze\":0}", "invalid_argument",
                 "snooze", NULL);
    expect_error("{\"op\":\"submit_batch\",\"queue\":\"q\",\"jobs\":[{},{\"dedupe\":\"replace\"}]}",
                 "invalid_argument", "jobs[1]", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_decodes_every_field),
        cmocka_unit_test(test_group_key),
        cmocka_unit_test(test_payload_defaults_to_null_and_hash_ignores_key_order),
        cmocka_unit_test(test_batch_default_queue_and_limits),
        cmocka_unit_test(test_wait_list_get),
        cmocka_unit_test(test_stats_fields),
        cmocka_unit_test(test_bad_input_codes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_workflow_fields),
        cmocka_unit_test(test_fast_path_agrees_or_declines),
        cmocka_unit_test(test_fast_path_outcomes),
        cmocka_unit_test(test_values_jobq_cannot_hold),
        cmocka_unit_test(test_run_at_bounds),
        cmocka_unit_test(test_outcomes_of_many_jobs),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_text_integers),
        cmocka_unit_test(test_mutate),
        cmocka_unit_test(test_dedupe_and_expiry_fields),
        cmocka_unit_test(test_schedule_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
