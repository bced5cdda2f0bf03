/* test_config.c: unit tests of daemon/config.c: values, defaults, quoting, and the line and
 * wording of every kind of error. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* A temp file that holds one config text; removed by the test's teardown. */
static char tmp_path[4096];

static int
teardown_tmp(void **state)
{
    (void)state;
    if (tmp_path[0] != '\0') {
        unlink(tmp_path);
        tmp_path[0] = '\0';
    }
    return 0;
}

/* write_conf: writes text to a fresh temp file and returns its path (tmp_path). */
static const char *
write_conf(const char *text)
{
    teardown_tmp(NULL);
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0') {
        dir = "/tmp";
    }
    snprintf(tmp_path, sizeof(tmp_path), "%s/jobq-test-config-XXXXXX", dir);
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return tmp_path;
}

/* load_ok: loads text and fails the test (showing the error) unless it is accepted. */
static config *
load_ok(const char *text)
{
    config *cfg = NULL;
    char err[512] = "";
    int rc = config_load(write_conf(text), &cfg, err, sizeof(err));
    if (rc != 0) {
        print_error("unexpected error: %s\n", err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, tmp_path);
    return cfg;
}

/* load_err: loads text, expects it rejected, and copies the message (without the path prefix)
 * into out. Checks that *cfgp is left alone. */
static void
load_err(const char *text, char *out, size_t outlen)
{
    config *sentinel = (config *)(uintptr_t)0x1234;
    config *cfg = sentinel;
    char err[512] = "";
    int rc = config_load(write_conf(text), &cfg, err, sizeof(err));
    if (rc == 0) {
        config_free(cfg);
        fail_msg("config was accepted:\n%s", text);
    }
    assert_int_equal(rc, -1);
    assert_ptr_equal(cfg, sentinel);
    size_t plen = strlen(tmp_path);
    if (strncmp(err, tmp_path, plen) != 0) {
        fail_msg("error does not start with the path: %s", err);
    }
    snprintf(out, outlen, "%s", err + plen);
}

/* expect_err: the error for text is at line (0: no line) and contains every needle. */
static void
expect_err(const char *text, int line, const char *n1, const char *n2)
{
    char msg[512];
    load_err(text, msg, sizeof(msg));
    char prefix[32];
    if (line > 0) {
        snprintf(prefix, sizeof(prefix), ":%d: ", line);
    } else {
        snprintf(prefix, sizeof(prefix), ": ");
    }
    if (strncmp(msg, prefix, strlen(prefix)) != 0) {
        fail_msg("expected the error on line %d, got \"%s\" for:\n%s", line, msg, text);
    }
    const char *needles[] = {n1, n2};
    for (size_t i = 0; i < 2; i++) {
        if (needles[i] != NULL && strstr(msg, needles[i]) == NULL) {
            fail_msg("error \"%s\" lacks \"%s\" for:\n%s", msg, needles[i], text);
        }
    }
}

/* expect_argv: queue q's argv is exactly the words given (NULL-terminated list). */
static void
expect_argv(const queue_conf *q, const char *const *words)
{
    assert_non_null(q->argv);
    size_t i = 0;
    for (; words[i] != NULL; i++) {
        if (q->argv[i] == NULL) {
            fail_msg("argv has %zu words, expected more (\"%s\")", i, words[i]);
        }
        assert_string_equal(q->argv[i], words[i]);
    }
    assert_null(q->argv[i]);
}

static void
assert_queue_defaults(const queue_conf *q)
{
    assert_null(q->argv);
    assert_int_equal(q->concurrency, 1);
    assert_int_equal(q->timeout_ms, 30000);
    assert_int_equal(q->max_attempts, 8);
    assert_int_equal(q->backoff_base_ms, 1000);
    assert_int_equal(q->backoff_max_ms, 3600000);
    int rate, failures;
    config_breaker_rates(q, &rate, &failures);
    assert_int_equal(rate, 50); /* the failure-rate rule alone */
    assert_int_equal(failures, 0);
    assert_int_equal(q->breaker_window, 100);
    assert_int_equal(q->breaker_min_calls, 20);
    assert_int_equal(q->breaker_cooldown_ms, 30000);
    assert_int_equal(q->breaker_probes, 1);
    assert_int_equal(q->output_cap, 64 * 1024);
}

static void
assert_server_defaults(const config *cfg)
{
    assert_int_equal(cfg->nlisten, 1);
    assert_string_equal(cfg->listen[0], "tcp://127.0.0.1:7450");
    assert_string_equal(cfg->http, "127.0.0.1:7451");
    assert_string_equal(cfg->database, "var/jobq.db");
    assert_null(cfg->user);
    assert_int_equal(cfg->durability, DURABILITY_FULL);
    assert_int_equal(cfg->shutdown_grace_ms, 30000);
    assert_int_equal(cfg->log_level, LOG_INFO);
    assert_false(cfg->allow_unknown_queues);
    assert_int_equal(cfg->max_message, 1024 * 1024);
    assert_int_equal(cfg->max_payload, 1024 * 1024);
    assert_int_equal(cfg->max_batch, 10000);
    assert_int_equal(cfg->max_waits, 4096);
    assert_int_equal(cfg->max_connections, 10000);
}

/* The example of DESIGN.md, verbatim, inline comments included. */
static void
test_design_example(void **state)
{
    config *cfg = load_ok(
        "[server]\n"
        "listen = tcp://127.0.0.1:7450      ; one or more nng URLs, comma separated (ipc://, "
        "tls+tcp:// too)\n"
        "http = 127.0.0.1:7451              ; monitor endpoint; empty disables it\n"
        "database = var/jobq.db\n"
        "durability = full                  ; full: fsync before a submit is acknowledged; "
        "normal: WAL without fsync\n"
        "shutdown_grace = 30s\n"
        "log_level = info                   ; logfmt lines on stderr\n"
        "\n"
        "[queue.email]\n"
        "command = /usr/local/bin/send-mail --json   ; argv, no shell; payload on stdin\n"
        "concurrency = 4\n"
        "timeout = 30s\n"
        "max_attempts = 8\n"
        "backoff_base = 1s\n"
        "backoff_max = 1h                   ; delay = random(0, min(max, base * 2^(attempt-1)))  "
        "(full jitter)\n"
        "breaker_failures = 5               ; consecutive failures that open the circuit\n"
        "breaker_cooldown = 30s             ; open -> half-open after this\n"
        "breaker_probes = 1                 ; jobs let through while half-open\n");
    assert_server_defaults(cfg);
    assert_int_equal(cfg->nqueues, 1);
    const queue_conf *q = config_queue(cfg, "email");
    assert_non_null(q);
    assert_string_equal(q->name, "email");
    expect_argv(q, (const char *const[]){"/usr/local/bin/send-mail", "--json", NULL});
    assert_int_equal(q->concurrency, 4);
    assert_int_equal(q->timeout_ms, 30000);
    assert_int_equal(q->max_attempts, 8);
    assert_int_equal(q->backoff_base_ms, 1000);
    assert_int_equal(q->backoff_max_ms, 3600000);
    int rate, failures;
    config_breaker_rates(q, &rate, &failures);
    assert_int_equal(rate, 0); /* breaker_failures alone keeps the consecutive rule alone */
    assert_int_equal(failures, 5);
    assert_int_equal(q->breaker_cooldown_ms, 30000);
    assert_int_equal(q->breaker_probes, 1);
    assert_int_equal(q->output_cap, 64 * 1024);
    assert_null(config_queue(cfg, "nope"));
    assert_null(config_queue(cfg, "emai"));
    config_free(cfg);
}

/* Every key set to a value other than its default. */
static void
test_every_key(void **state)
{
    config *cfg = load_ok("\xEF\xBB\xBF; a BOM first, then indented keys\n"
                          "[server]\n"
                          "  listen = tcp://0.0.0.0:9000 ,ipc:///tmp/jobq.sock,  inproc://x\n"
                          "\thttp =\n"
                          "database = /var/lib/jobq/jobq.db\n"
                          "durability = normal\n"
                          "shutdown_grace = 250ms\n"
                          "log_level = debug\n"
                          "allow_unknown_queues = yes\n"
                          "max_message = 4MiB\n"
                          "max_batch = 1000000\n"
                          "[queue.a-b_c.9]\n"
                          "command = /bin/true\n"
                          "concurrency = 10000\n"
                          "timeout = 5m\n"
                          "max_attempts = 1000\n"
                          "backoff_base = 2s\n"
                          "backoff_max = 2s\n"
                          "breaker_failures = 1\n"
                          "breaker_cooldown = 0\n"
                          "breaker_probes = 3\n"
                          "output_cap = 0\n");
    assert_int_equal(cfg->nlisten, 3);
    assert_string_equal(cfg->listen[0], "tcp://0.0.0.0:9000");
    assert_string_equal(cfg->listen[1], "ipc:///tmp/jobq.sock");
    assert_string_equal(cfg->listen[2], "inproc://x");
    assert_null(cfg->http);
    assert_string_equal(cfg->database, "/var/lib/jobq/jobq.db");
    assert_int_equal(cfg->durability, DURABILITY_NORMAL);
    assert_int_equal(cfg->shutdown_grace_ms, 250);
    assert_int_equal(cfg->log_level, LOG_DEBUG);
    assert_true(cfg->allow_unknown_queues);
    assert_int_equal(cfg->max_message, 4 * 1024 * 1024);
    assert_int_equal(cfg->max_batch, 1000000);
    const queue_conf *q = config_queue(cfg, "a-b_c.9");
    assert_non_null(q);
    expect_argv(q, (const char *const[]){"/bin/true", NULL});
    assert_int_equal(q->concurrency, 10000);
    assert_int_equal(q->timeout_ms, 300000);
    assert_int_equal(q->max_attempts, 1000);
    assert_int_equal(q->backoff_base_ms, 2000);
    assert_int_equal(q->backoff_max_ms, 2000);
    assert_int_equal(q->breaker_failures, 1);
    assert_int_equal(q->breaker_cooldown_ms, 0);
    assert_int_equal(q->breaker_probes, 3);
    assert_int_equal(q->output_cap, 0);
    config_free(cfg);
}

/* The spellings each kind of value accepts. */
static void
test_value_spellings(void **state)
{
    static const struct {
        const char *text;
        bool allow;
    } bools[] = {{"true", true}, {"false", false}, {"yes", true}, {"no", false},  {"on", true},
                 {"off", false}, {"1", true},      {"0", false},  {"TRUE", true}, {"Off", false}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[server]\nallow_unknown_queues = %s\n", bools[i].text);
        config *cfg = load_ok(text);
        assert_int_equal(cfg->allow_unknown_queues, bools[i].allow);
        config_free(cfg);
    }
    static const struct {
        const char *text;
        size_t bytes;
    } sizes[] = {{"1024", 1024},  {"1k", 1024},        {"64K", 65536},    {"64KiB", 65536},
                 {"1m", 1048576}, {"256M", 268435456}, {"2MiB", 2097152}, {"1500", 1500}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char text[128];
        bool cap_ok = sizes[i].bytes <= 64 * 1024 * 1024; /* output_cap's limit */
        snprintf(text, sizeof(text), "[server]\nmax_message = %s\n[queue.q]\n%s%s\n", sizes[i].text,
                 cap_ok ? "output_cap = " : "; ", sizes[i].text);
        config *cfg = load_ok(text);
        assert_int_equal(cfg->max_message, sizes[i].bytes);
        if (cap_ok) {
            assert_int_equal(cfg->queues[0].output_cap, sizes[i].bytes);
        }
        config_free(cfg);
    }
    static const struct {
        const char *text;
        int64_t ms;
    } durs[] = {{"1ms", 1},     {"250ms", 250},  {"10s", 10000},
                {"5m", 300000}, {"1h", 3600000}, {"8760h", 8760LL * 3600000}};
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[queue.q]\ntimeout = %s\n", durs[i].text);
        config *cfg = load_ok(text);
        assert_int_equal(cfg->queues[0].timeout_ms, durs[i].ms);
        config_free(cfg);
    }
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof(text), "[server]\nlog_level = %s\n", levels[i]);
        config *cfg = load_ok(text);
        assert_int_equal(cfg->log_level, i);
        config_free(cfg);
    }
}

static void
test_defaults(void **state)
{
    config *cfg = config_defaults();
    assert_non_null(cfg);
    assert_server_defaults(cfg);
    assert_int_equal(cfg->nqueues, 0);
    config_free(cfg);

    cfg = load_ok("");
    assert_server_defaults(cfg);
    assert_int_equal(cfg->nqueues, 0);
    config_free(cfg);

    cfg = load_ok("; only comments\n# and blank lines\n\n");
    assert_server_defaults(cfg);
    config_free(cfg);

    queue_conf q;
    memset(&q, 0x5a, sizeof(q));
    config_queue_defaults(&q);
    assert_null(q.name);
    assert_queue_defaults(&q);
}

/* A section with no key still declares the queue (inih alone would not even report it). */
static void
test_queue_without_keys(void **state)
{
    config *cfg = load_ok("[queue.remote]\n"
                          "; served by remote workers\n"
                          "[queue.other]\n");
    assert_int_equal(cfg->nqueues, 2);
    const queue_conf *q = config_queue(cfg, "remote");
    assert_non_null(q);
    assert_string_equal(q->name, "remote");
    assert_queue_defaults(q);
    assert_non_null(config_queue(cfg, "other"));
    config_free(cfg);
}

/* inih keeps only 49 characters of a section name: a 64-character queue name must survive. */
static void
test_long_queue_name(void **state)
{
    char name[65];
    memset(name, 'n', 64);
    name[64] = '\0';
    name[63] = 'Z';
    char text[256];
    snprintf(text, sizeof(text), "[queue.%s]\nconcurrency = 3\n", name);
    config *cfg = load_ok(text);
    assert_int_equal(cfg->nqueues, 1);
    assert_string_equal(cfg->queues[0].name, name);
    assert_int_equal(cfg->queues[0].concurrency, 3);
    config_free(cfg);

    snprintf(text, sizeof(text), "[queue.%sx]\n", name);
    expect_err(text, 1, "invalid queue name", "1 to 64 characters");
}

static void
test_repeated_section_merges(void **state)
{
    config *cfg = load_ok("[queue.a]\n"
                          "concurrency = 2\n"
                          "[queue.b]\n"
                          "concurrency = 7\n"
                          "[server]\n"
                          "log_level = warn\n"
                          "[queue.a]\n"
                          "timeout = 5s\n"
                          "[server]\n"
                          "durability = normal\n");
    assert_int_equal(cfg->nqueues, 2);
    const queue_conf *a = config_queue(cfg, "a");
    assert_non_null(a);
    assert_int_equal(a->concurrency, 2);
    assert_int_equal(a->timeout_ms, 5000);
    assert_int_equal(config_queue(cfg, "b")->concurrency, 7);
    assert_int_equal(cfg->log_level, LOG_WARN);
    assert_int_equal(cfg->durability, DURABILITY_NORMAL);
    config_free(cfg);

    /* Many queues: the array grows past its first allocation. */
    char text[4096] = "";
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof(line), "[queue.q%d]\nconcurrency = %d\n", i, i + 1);
        strcat(text, line);
    }
    strcat(text, "[queue.q0]\ntimeout = 1s\n");
    cfg = load_ok(text);
    assert_int_equal(cfg->nqueues, 40);
    assert_int_equal(config_queue(cfg, "q39")->concurrency, 40);
    assert_int_equal(config_queue(cfg, "q0")->timeout_ms, 1000);
    config_free(cfg);
}

static void
test_reserved_keys_accepted(void **state)
{
    config *cfg = load_ok("[server]\n"
                          "auth_token = s3cret-0123456789abcdef\n"
                          "tls_cert = /etc/jobq/cert.pem\n"
                          "tls_key = /etc/jobq/key.pem\n"
                          "tls_ca = /etc/jobq/ca.pem\n"
                          "user = jobq\n"
                          "max_connections = 100\n"
                          "max_waits = 1000\n"
                          "[queue.q]\n"
                          "url = http://127.0.0.1:8080/hook\n"
                          "lease = 5m\n"
                          "key_ttl = 1h\n"
                          "retention_succeeded = 7d\n"
                          "retention_dead = 30d\n"
                          "max_pending = 100000\n"
                          "rate = 10/s\n"
                          "key_concurrency = 3\n"
                          "key_rate = 120/m\n"
                          "[schedule.nightly]\n"
                          "cron = 0 3 * * *\n"
                          "queue = q\n"
                          "timezone = America/New_York\n"
                          "payload = { \"a\" : [1, 2] }\n"
                          "missed = skip\n"
                          "priority = -2\n"
                          "overlap = skip\n");
    assert_int_equal(cfg->max_connections, 100);
    assert_int_equal(cfg->max_waits, 1000);
    assert_string_equal(cfg->auth_token, "s3cret-0123456789abcdef");
    assert_string_equal(cfg->tls_cert, "/etc/jobq/cert.pem");
    assert_string_equal(cfg->tls_key, "/etc/jobq/key.pem");
    assert_string_equal(cfg->tls_ca, "/etc/jobq/ca.pem");
    assert_string_equal(cfg->user, "jobq");
    assert_int_equal(cfg->nqueues, 1);
    const queue_conf *q = &cfg->queues[0];
    assert_string_equal(q->url, "http://127.0.0.1:8080/hook");
    assert_int_equal(q->lease_ms, 5 * 60 * 1000);
    assert_int_equal(q->key_ttl_ms, 3600 * 1000);
    assert_int_equal(q->retention_succeeded_ms, 7 * 24 * 3600 * 1000LL);
    assert_int_equal(q->retention_dead_ms, 30 * 24 * 3600 * 1000LL);
    assert_true(q->rate_per_s == 10.0);
    assert_int_equal(q->key_concurrency, 3);
    assert_true(q->key_rate_per_s == 2.0);
    assert_int_equal(cfg->nschedules, 1);
    const schedule_conf *sc = &cfg->schedules[0];
    assert_string_equal(sc->name, "nightly");
    assert_string_equal(sc->cron, "0 3 * * *");
    assert_string_equal(sc->queue, "q");
    assert_string_equal(tz_name(sc->zone), "America/New_York");
    assert_string_equal(sc->payload, "{\"a\":[1,2]}");
    assert_true(sc->missed_skip);
    assert_int_equal(sc->priority, -2);
    assert_true(sc->overlap_skip);
    config_free(cfg);
}

/* [schedule.NAME] and rate: each mistake is refused on its line with what to write. */
static void
test_schedule_and_rate_errors(void **state)
{
    expect_err("[queue.q]\nrate = 50\n", 2, "rate = \"50\"", "50/s");
    expect_err("[queue.q]\nrate = 0/s\n", 2, "rate", "more than 0");
    expect_err("[queue.q]\nrate = 5/d\n", 2, "rate", "600/m");
    expect_err("[queue.q]\nkey_rate = 10\n", 2, "key_rate = \"10\"", "50/s");
    expect_err("[queue.q]\nkey_concurrency = 0\n", 2, "key_concurrency", "");
    expect_err("[queue.q]\n[schedule.s]\ncron = 60 * * * *\nqueue = q\n", 3, "field 1",
               "five fields");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * *\nqueue = q\n", 3, "cron", "five fields");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * * * *\nqueue = q\ntimezone = Nowhere/City\n", 5,
               "Nowhere/City", "Europe/Paris");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * * * *\nqueue = q\nmissed = later\n", 5,
               "missed", "run_once");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * * * *\nqueue = q\noverlap = never\n", 5,
               "overlap", "allow");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * * * *\nqueue = q\npayload = {oops}\n", 5,
               "payload", "not valid JSON");
    expect_err("[queue.q]\n[schedule.s]\ncron = * * * * *\nqueue = q\ncorn = 1\n", 5, "corn",
               "did you mean");
    expect_err("[queue.q]\n[schedule.s]\nqueue = q\n", 2, "[schedule.s]", "needs a cron");
    expect_err("[queue.q]\n[schedule.s]\ncron = @daily\n", 2, "[schedule.s]", "needs a queue");
    expect_err("[queue.q]\n[schedule.s]\ncron = @daily\nqueue = other\n", 2, "\"other\"",
               "not configured");
    expect_err("[queue.q]\n[schedule.s]\ncron = @daily\nqueue = q\n[schedule.s]\n", 5, "twice",
               "line 2");
    expect_err("[queue.q]\n[schedule.s]\ncron = @daily\ncron = @hourly\nqueue = q\n", 4, "cron",
               "set twice");
}

static void
test_remote_and_security_errors(void **state)
{
    char err[512];
    static const char *const bad[][2] = {
        {"[server]\nauth_token = short\n", "too short"},
        {"[queue.q]\nurl = ftp://x/y\n", "http:// or https:// URL"},
        {"[queue.q]\nsecret = 0123456789abcdef\n", "has secret but no url"},
        {"[queue.q]\nbreaker_window = 10\nbreaker_min_calls = 11\n", "would never be judged"},
        {"[queue.q]\nurl = http://127.0.0.1:1/x\nca = /etc/ca.pem\n", "url is not https://"},
        {"[queue.q]\nurl = https://127.0.0.1:1/x\nsecret = short\n", "too short"},
        {"[queue.q]\ncommand = /bin/true\nurl = http://127.0.0.1:1/x\n", "both command and url"},
        {"[server]\nlisten = tls+tcp://127.0.0.1:7460\n", "needs tls_cert and tls_key"},
        {"[queue.q]\nlease = 10ms\n", "lease"},
        {"[server]\nuser = -jobq\n", "expected the name of an existing unprivileged account"},
        {"[server]\nuser = job q\n", "user = \"job q\""},
        {"[server]\nuser =\n", "account"},
        {"[server]\nread_token = r3ad-0123456789abcdef\n", "read_token is set without auth_token"},
        {"[server]\nauth_token = s3cret-0123456789abcdef\nread_token = s3cret-0123456789abcdef\n",
         "the same as auth_token"},
        {"[server]\nhttp = 0.0.0.0:7451\n", "Set auth_token"},
        {"[server]\nhttp = [::]:7451\n", "listen on 127.0.0.1"},
        {"[server]\nhttp = example.com:7451\n", "without a token"},
        {"[server]\nhttp_tls_cert = /x.pem\n", "http_tls_cert and http_tls_key go together"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        load_err(bad[i][0], err, sizeof(err));
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i][0], err, bad[i][1]);
        }
    }
}

/* The HTTP listener may leave loopback only with a token; read_token is loaded. */
static void
test_http_exposure(void **state)
{
    (void)state;
    static const char *const loopback[] = {"127.0.0.1:7451", "127.1.2.3:0", "[::1]:7451",
                                           "localhost:7451"};
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[server]\nhttp = %s\n", loopback[i]);
        config_free(load_ok(text));
    }
    config *cfg = load_ok("[server]\nhttp = 0.0.0.0:7451\nauth_token = s3cret-0123456789abcdef\n"
                          "read_token = r3ad-0123456789abcdef\n");
    assert_string_equal(cfg->read_token, "r3ad-0123456789abcdef");
    assert_string_equal(cfg->http, "0.0.0.0:7451");
    config_free(cfg);
}

static void
test_command_quoting(void **state)
{
    static const struct {
        const char *command;
        const char *const words[10];
    } cases[] = {
        {"/bin/echo  a\tb   c", {"/bin/echo", "a", "b", "c"}},
        {"/bin/sh -c 'echo \"hi\" $HOME; exit 3'", {"/bin/sh", "-c", "echo \"hi\" $HOME; exit 3"}},
        {"prog \"a b\" \"say \\\"hi\\\"\" \"back\\\\slash\"",
         {"prog", "a b", "say \"hi\"", "back\\slash"}},
        {"prog 'it''s' a'b'\"c\"d", {"prog", "its", "abcd"}},
        {"prog 'single \\ keeps \\\" backslashes'", {"prog", "single \\ keeps \\\" backslashes"}},
        {"prog a\\ b \\'q\\' \\\\", {"prog", "a b", "'q'", "\\"}},
        {"prog '' \"\" x", {"prog", "", "", "x"}},
        {"prog ~ * $X `y` | > <", {"prog", "~", "*", "$X", "`y`", "|", ">", "<"}}, /* no shell */
        {"/bin/sh -c 'test $(od -An -N1 -tu1 /dev/urandom) -lt 128'",
         {"/bin/sh", "-c", "test $(od -An -N1 -tu1 /dev/urandom) -lt 128"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "[queue.q]\ncommand = %s\n", cases[i].command);
        config *cfg = load_ok(text);
        expect_argv(&cfg->queues[0], cases[i].words);
        config_free(cfg);
    }
}

static void
test_command_errors(void **state)
{
    expect_err("[queue.q]\ncommand = /bin/sh -c 'echo hi\n", 2, "command", "unterminated single");
    expect_err("[queue.q]\ncommand = prog \"abc\n", 2, "command", "unterminated double");
    expect_err("[queue.q]\ncommand = prog \"abc\\\"\n", 2, "command", "unterminated double");
    expect_err("[queue.q]\ncommand = prog abc\\\n", 2, "command", "backslash");
    expect_err("[queue.q]\ncommand = '' x\n", 2, "command", "program name");
    expect_err("[queue.q]\ncommand =\n", 2, "command", "empty");
    /* inih cuts a value at " ;" even inside quotes: the cut quote is reported, not run. */
    expect_err("[queue.q]\ncommand = /bin/sh -c 'a ; b'\n", 2, "command", "unterminated single");
}

/* Each kind of bad line is reported at its line, naming the key and the value. */
static void
test_bad_lines(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *n1, *n2;
    } cases[] = {
        /* durations */
        {"[server]\nlog_level = info\nshutdown_grace = 30 s\n", 3,
         "[server] shutdown_grace = \"30 s\"", "expected a duration"},
        {"[queue.q]\n\n; c\ntimeout = soon\n", 4, "[queue.q] timeout = \"soon\"", "250ms"},
        {"[queue.q]\ntimeout = 30\n", 2, "timeout = \"30\"", "with a unit"},
        {"[queue.q]\ntimeout = 0s\n", 2, "timeout = \"0s\"", "greater than 0"},
        {"[queue.q]\nbackoff_base = 0ms\n", 2, "backoff_base", "greater than 0"},
        {"[queue.q]\nbackoff_max = -1s\n", 2, "backoff_max = \"-1s\"", "duration"},
        {"[queue.q]\nbreaker_cooldown = 1w\n", 2, "breaker_cooldown = \"1w\"", "duration"},
        {"[queue.q]\ntimeout = 8761h\n", 2, "timeout = \"8761h\"", "at most 8760h"},
        {"[queue.q]\ntimeout = 99999999999999999999h\n", 2, "timeout", "duration"},
        /* integers */
        {"[queue.email]\nconcurrency = abc\n", 2,
         "[queue.email] concurrency = \"abc\": expected an integer from 1 to 10000", NULL},
        {"[queue.q]\nconcurrency = 4x\n", 2, "concurrency = \"4x\"", "integer"},
        {"[queue.q]\nconcurrency = 0\n", 2, "concurrency = \"0\"", "out of range"},
        {"[queue.q]\nconcurrency = 10001\n", 2, "concurrency = \"10001\"", "1 to 10000"},
        {"[queue.q]\nmax_attempts = 1001\n", 2, "max_attempts", "1 to 1000"},
        {"[queue.q]\nmax_attempts = -3\n", 2, "max_attempts = \"-3\"", "out of range"},
        {"[queue.q]\nbreaker_failures = 0\n", 2, "breaker_failures", "out of range"},
        {"[queue.q]\nbreaker_probes = 0\n", 2, "breaker_probes", "out of range"},
        {"[queue.q]\nconcurrency = 99999999999999999999\n", 2, "concurrency", "integer"},
        {"[server]\nmax_batch = 0\n", 2, "max_batch = \"0\"", "1 to 1000000"},
        {"[server]\nmax_waits = 7681\n", 2, "max_waits", "out of range"},
        {"[server]\nmax_connections = 0\n", 2, "max_connections", NULL},
        {"[server]\nmax_message = 64k\nmax_payload = 128k\n", 0, "max_payload", "max_message"},
        {"[server]\nmax_batch = 1000001\n", 2, "max_batch", "out of range"},
        /* sizes */
        {"[server]\nmax_message = 1023\n", 2, "max_message = \"1023\"", "1 KiB to 256 MiB"},
        {"[server]\nmax_message = 257M\n", 2, "max_message = \"257M\"", "out of range"},
        {"[server]\nmax_message = 1G\n", 2, "max_message = \"1G\"", "size"},
        {"[server]\nmax_message = 1 MiB\n", 2, "max_message = \"1 MiB\"", "size"},
        {"[queue.q]\noutput_cap = 65M\n", 2, "output_cap = \"65M\"", "0 bytes to 64 MiB"},
        /* enums and booleans */
        {"[server]\ndurability = fast\n", 2, "durability = \"fast\"", "full or normal"},
        {"[server]\nlog_level = verbose\n", 2, "log_level = \"verbose\"", "debug, info"},
        {"[server]\nallow_unknown_queues = maybe\n", 2, "allow_unknown_queues = \"maybe\"",
         "true or false"},
        /* addresses */
        {"[server]\nlisten = http://127.0.0.1:80\n", 2, "listen", "\"http://127.0.0.1:80\" is not"},
        {"[server]\nlisten = tcp://a:1, 127.0.0.1:2\n", 2, "listen", "\"127.0.0.1:2\" is not"},
        {"[server]\nlisten = tcp://a:1,\n", 2, "listen", "empty URL"},
        {"[server]\nlisten =\n", 2, "listen", "empty URL"},
        {"[server]\nlisten = tcp://\n", 2, "listen", "\"tcp://\" is not"},
        {"[server]\nhttp = 7451\n", 2, "http = \"7451\"", "HOST:PORT"},
        {"[server]\nhttp = localhost:http\n", 2, "http = \"localhost:http\"", "HOST:PORT"},
        {"[server]\nhttp = localhost:70000\n", 2, "http", "HOST:PORT"},
        {"[server]\ndatabase =\n", 2, "database", "empty"},
        /* keys and sections */
        {"[server]\nlisten = tcp://a:1\nlistn = tcp://b:2\n", 3, "[server] unknown key \"listn\"",
         "did you mean \"listen\""},
        {"[queue.q]\nconcurency = 4\n", 2, "unknown key \"concurency\"", "\"concurrency\""},
        {"[queue.q]\nfrobnicate = 4\n", 2, "[queue.q] unknown key \"frobnicate\"", NULL},
        {"[queue.q]\nauth_token = x\n", 2, "unknown key \"auth_token\"", NULL},
        {"[server]\nurl = x\n", 2, "unknown key \"url\"", NULL},
        {"[queue.q]\nconcurrency = 1\n\nconcurrency = 2\n", 4, "concurrency is set twice",
         "line 2"},
        {"[queue.q]\ntimeout = 1s\n[queue.q]\ntimeout = 2s\n", 4, "timeout is set twice", NULL},
        {"listen = tcp://a:1\n[server]\n", 1, "listen", "outside any section"},
        {"[server]\n[sever]\nlog_level = info\n", 2, "unknown section [sever]", "[server]?"},
        {"[queu.email]\n", 1, "unknown section [queu.email]", "[queue.NAME]"},
        {"[Server]\n", 1, "[Server]", NULL},
        {"[ server ]\n", 1, "[ server ]", NULL},
        {"[schedule.]\n", 1, "[schedule.]", NULL},
        {"[queue.bad name]\n", 1, "invalid queue name \"bad name\"", "A-Z a-z 0-9 _ . -"},
        {"[queue.]\ntimeout = 1s\n", 1, "invalid queue name \"\"", NULL},
        {"[queue.a/b]\n", 1, "invalid queue name \"a/b\"", NULL},
        /* syntax */
        {"[server]\n[queue.x\n", 2, "\"[queue.x\"", "closing ]"},
        {"[server] junk\n", 1, "after the section header", NULL},
        {"[server]\nlog_level info\n", 2, "\"log_level info\"", "key = value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_err(cases[i].text, cases[i].line, cases[i].n1, cases[i].n2);
    }
}

/* Only the first error is reported, even when inih itself rejects a later line. */
static void
test_first_error_wins(void **state)
{
    expect_err("[server]\nlog_level = info\ndurability = fast\nmax_batch = 0\n[bogus\n", 3,
               "durability", NULL);
    expect_err("[server]\nnot a key\nmax_batch = 0\n", 2, "not a key", NULL);
    expect_err("[nope]\n[queue.q]\nconcurrency = x\n", 1, "[nope]", NULL);
    /* a line error wins over the whole-file checks */
    expect_err("[queue.q]\nbackoff_base = 5s\nbackoff_max = 1s\nconcurrency = 0\n", 4,
               "concurrency", NULL);
}

static void
test_long_line(void **state)
{
    char text[1024];
    char pad[400];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    /* 199 characters plus the newline still fit inih's 200-byte buffer ... */
    snprintf(text, sizeof(text), "[queue.q]\ncommand = /bin/echo %.*s\n", 199 - 20, pad);
    config *cfg = load_ok(text);
    assert_int_equal(strlen(cfg->queues[0].argv[1]), 179);
    config_free(cfg);
    /* ... also as the last line without a newline ... */
    snprintf(text, sizeof(text), "[queue.q]\ncommand = /bin/echo %.*s", 199 - 20, pad);
    cfg = load_ok(text);
    config_free(cfg);
    /* ... 200 do not, and the rest of the line must not be read as a new line. */
    snprintf(text, sizeof(text), "[queue.q]\ncommand = /bin/echo %.*s\nconcurrency = 0\n", 200 - 20,
             pad);
    expect_err(text, 2, "line is too long", "199");
    snprintf(text, sizeof(text), "[queue.q]\ncommand = /bin/echo %s\n", pad);
    expect_err(text, 2, "line is too long", NULL);
}

static void
test_backoff_max_below_base(void **state)
{
    char msg[512];
    load_err("[queue.x]\nbackoff_max = 1s\nbackoff_base = 5s\n", msg, sizeof(msg));
    assert_string_equal(msg, ": [queue.x] backoff_max (1s) is less than backoff_base (5s)");
    /* the default backoff_max (1h) counts too */
    load_err("[queue.ok]\n[queue.y]\nbackoff_base = 90m\n", msg, sizeof(msg));
    assert_string_equal(msg, ": [queue.y] backoff_max (1h) is less than backoff_base (90m)");
    load_err("[queue.z]\nbackoff_base = 1500ms\nbackoff_max = 1s\n", msg, sizeof(msg));
    assert_string_equal(msg, ": [queue.z] backoff_max (1s) is less than backoff_base (1500ms)");
    /* checked after the whole file: a later section may fix it */
    config *cfg = load_ok("[queue.x]\nbackoff_base = 5s\n[queue.x]\nbackoff_max = 5s\n");
    assert_int_equal(cfg->queues[0].backoff_max_ms, 5000);
    config_free(cfg);
}

static void
test_missing_file(void **state)
{
    config *cfg = (config *)(uintptr_t)0x1234;
    char err[512];
    assert_int_equal(config_load("/nonexistent/jobq.conf", &cfg, err, sizeof(err)), -1);
    assert_ptr_equal(cfg, (config *)(uintptr_t)0x1234);
    assert_string_equal(err, "/nonexistent/jobq.conf: cannot open: No such file or directory");

    /* a directory opens but cannot be read */
    assert_int_equal(config_load("/", &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "/: cannot read: Is a directory");

    /* a tiny or absent error buffer is not overrun */
    char small[8];
    assert_int_equal(config_load("/nonexistent/jobq.conf", &cfg, small, sizeof(small)), -1);
    assert_string_equal(small, "/nonexi");
    assert_int_equal(config_load("/nonexistent/jobq.conf", &cfg, NULL, 0), -1);
}

static void
test_free_accepts_null(void **state)
{
    config_free(NULL);
    config *cfg = calloc(1, sizeof(*cfg)); /* half-built: nothing set */
    assert_non_null(cfg);
    config_free(cfg);
    cfg = calloc(1, sizeof(*cfg)); /* half-built: a queue with a name only */
    assert_non_null(cfg);
    cfg->queues = calloc(1, sizeof(queue_conf));
    assert_non_null(cfg->queues);
    cfg->queues[0].name = strdup("q");
    cfg->nqueues = 1;
    config_free(cfg);
    assert_null(config_queue(NULL, "q"));
}

/* deploy/jobq.conf.example, the file `make run` starts with, must load with its demo queues. */
static void
test_deploy_example(void **state)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char path[4200];
    snprintf(path, sizeof(path), "%s/../deploy/jobq.conf.example", dirname(src));
    config *cfg = NULL;
    char err[512] = "";
    int rc = config_load(path, &cfg, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(cfg->nlisten, 1);
    assert_string_equal(cfg->listen[0], "tcp://127.0.0.1:7450");
    assert_string_equal(cfg->http, "127.0.0.1:7451");
    assert_string_equal(cfg->database, "var/jobq.db");
    assert_string_equal(cfg->user, "jobq"); /* the account `make run` creates as root */
    assert_int_equal(cfg->durability, DURABILITY_FULL);
    const queue_conf *q = config_queue(cfg, "default");
    assert_non_null(q);
    expect_argv(q, (const char *const[]){"/bin/cat", NULL});
    q = config_queue(cfg, "flaky");
    assert_non_null(q);
    assert_string_equal(q->argv[0], "/bin/sh");
    assert_string_equal(q->argv[1], "-c");
    assert_non_null(q->argv[2]);
    assert_null(q->argv[3]);
    assert_int_equal(q->backoff_base_ms, 1000);
    assert_int_equal(q->backoff_max_ms, 10000);
    assert_int_equal(q->max_attempts, 5);
    q = config_queue(cfg, "remote");
    assert_non_null(q);
    assert_null(q->argv);
    config_free(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_design_example, teardown_tmp),
        cmocka_unit_test_teardown(test_every_key, teardown_tmp),
        cmocka_unit_test_teardown(test_value_spellings, teardown_tmp),
        cmocka_unit_test_teardown(test_defaults, teardown_tmp),
        cmocka_unit_test_teardown(test_queue_without_keys, teardown_tmp),
        cmocka_unit_test_teardown(test_long_queue_name, teardown_tmp),
        cmocka_unit_test_teardown(test_repeated_section_merges, teardown_tmp),
        cmocka_unit_test_teardown(test_reserved_keys_accepted, teardown_tmp),
        cmocka_unit_test_teardown(test_remote_and_security_errors, teardown_tmp),
        cmocka_unit_test_teardown(test_http_exposure, teardown_tmp),
        cmocka_unit_test_teardown(test_schedule_and_rate_errors, teardown_tmp),
        cmocka_unit_test_teardown(test_command_quoting, teardown_tmp),
        cmocka_unit_test_teardown(test_command_errors, teardown_tmp),
        cmocka_unit_test_teardown(test_bad_lines, teardown_tmp),
        cmocka_unit_test_teardown(test_first_error_wins, teardown_tmp),
        cmocka_unit_test_teardown(test_long_line, teardown_tmp),
        cmocka_unit_test_teardown(test_backoff_max_below_base, teardown_tmp),
        cmocka_unit_test_teardown(test_missing_file, teardown_tmp),
        cmocka_unit_test_teardown(test_free_accepts_null, teardown_tmp),
        cmocka_unit_test_teardown(test_deploy_example, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
