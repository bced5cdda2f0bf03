/* config.c: reads jobqd's INI config file with inih, validates every value once and reports the
 * first problem as "FILE:LINE: reason". */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"

#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define HOUR_MS ((int64_t)3600 * 1000)
#define DURATION_MAX_MS                                                                            \
    JOBQ__DURATION_MAX_MS /* one year: keeps now_ms + duration from overflow                       \
                           */
#define QUEUE_NAME_MAX 64
/* Held requests take an nng context each until they are answered; the intake opens at most
 * 8192, so the rest stay free for everything else. */
#define MAX_WAITS_LIMIT 7680

enum key_kind {
    KEY_RESERVED,   /* accepted and ignored: kept for a later feature */
    KEY_LISTEN,     /* comma-separated nng URLs */
    KEY_HOSTPORT,   /* "host:port", or empty for NULL */
    KEY_STRING,     /* non-empty string (a file path) */
    KEY_SECRET,     /* non-empty string that is never echoed in an error */
    KEY_USER,       /* an account name: [A-Za-z0-9_.-], not starting with '-' */
    KEY_URL,        /* http(s)://HOST[:PORT]/PATH */
    KEY_DURABILITY, /* full | normal */
    KEY_STORE,      /* sqlite | postgres */
    KEY_LOG_LEVEL,  /* debug | info | warn | error */
    KEY_BOOL,       /* true|false|yes|no|on|off|1|0 */
    KEY_DURATION,   /* int64_t ms, within [min, max] */
    KEY_INT,        /* int, within [min, max] */
    KEY_COUNT,      /* size_t, within [min, max] */
    KEY_BYTES,      /* size_t bytes with an optional k/M suffix, within [min, max] */
    KEY_ARGV,       /* command line split into a NULL-terminated argv */
    KEY_RATE,       /* "N/s", "N/m" or "N/h": a double, per second, in (0, max] */
};

/* One key a section accepts: where it is stored and what range it allows. */
typedef struct key_def {
    const char *name;
    enum key_kind kind;
    size_t off;  /* offset of the field in config or queue_conf */
    int64_t min; /* inclusive bounds: ms for durations, bytes for sizes */
    int64_t max;
} key_def;

static const key_def server_keys[] = {
    {"listen", KEY_LISTEN, offsetof(config, listen), 0, 0},
    {"http", KEY_HOSTPORT, offsetof(config, http), 0, 0},
    {"database", KEY_STRING, offsetof(config, database), 0, 0},
    {"store", KEY_STORE, offsetof(config, store), 0, 0},
    {"durability", KEY_DURABILITY, offsetof(config, durability), 0, 0},
    {"shutdown_grace", KEY_DURATION, offsetof(config, shutdown_grace_ms), 0, DURATION_MAX_MS},
    {"log_level", KEY_LOG_LEVEL, offsetof(config, log_level), 0, 0},
    {"allow_unknown_queues", KEY_BOOL, offsetof(config, allow_unknown_queues), 0, 0},
    {"max_message", KEY_BYTES, offsetof(config, max_message), KIB, 256 * MIB},
    {"max_payload", KEY_BYTES, offsetof(config, max_payload), 16, 256 * MIB},
    {"max_batch", KEY_COUNT, offsetof(config, max_batch), 1, 1000000},
    {"max_waits", KEY_COUNT, offsetof(config, max_waits), 1, MAX_WAITS_LIMIT},
    {"max_waits_per_connection", KEY_COUNT, offsetof(config, max_waits_per_connection), 1,
     MAX_WAITS_LIMIT},
    {"max_connections", KEY_COUNT, offsetof(config, max_connections), 1, 1000000},
    {"max_queues", KEY_COUNT, offsetof(config, max_queues), 1, 1000000},
    {"max_unauthenticated_message", KEY_BYTES, offsetof(config, max_unauthenticated_message), KIB,
     256 * MIB},
    {"read_timeout", KEY_DURATION, offsetof(config, read_timeout_ms), 100, DURATION_MAX_MS},
    {"idle_timeout", KEY_DURATION, offsetof(config, idle_timeout_ms), 0, DURATION_MAX_MS},
    {"max_buffered", KEY_BYTES, offsetof(config, max_buffered), MIB, (int64_t)64 * 1024 * MIB},
    {"http_timeout", KEY_DURATION, offsetof(config, http_timeout_ms), 1000, 3600000},
    {"http_max_connections", KEY_COUNT, offsetof(config, http_max_connections), 1, 100000},
    {"http_max_connections_per_ip", KEY_COUNT, offsetof(config, http_max_per_ip), 0, 100000},
    {"http_max_request", KEY_BYTES, offsetof(config, http_max_request), 4 * KIB, MIB},
    {"backup_dir", KEY_STRING, offsetof(config, backup_dir), 0, 0},
    {"auth_token", KEY_SECRET, offsetof(config, auth_token), 0, 0},
    {"read_token", KEY_SECRET, offsetof(config, read_token), 0, 0},
    {"http_tls_cert", KEY_STRING, offsetof(config, http_tls_cert), 0, 0},
    {"http_tls_key", KEY_STRING, offsetof(config, http_tls_key), 0, 0},
    {"tls_cert", KEY_STRING, offsetof(config, tls_cert), 0, 0},
    {"tls_key", KEY_STRING, offsetof(config, tls_key), 0, 0},
    {"tls_ca", KEY_STRING, offsetof(config, tls_ca), 0, 0},
    {"user", KEY_USER, offsetof(config, user), 0, 0},
    /* several nodes on one PostgreSQL database (cluster.c) */
    {"node", KEY_STRING, offsetof(config, node), 0, 0},
    {"node_ttl", KEY_DURATION, offsetof(config, node_ttl_ms), 1000, 3600000},
    {"leader_ttl", KEY_DURATION, offsetof(config, leader_ttl_ms), 1000, 3600000},
    {"poll_interval", KEY_DURATION, offsetof(config, poll_interval_ms), 50, 3600000},
};
#define NSERVER_KEYS (sizeof(server_keys) / sizeof(server_keys[0]))

static const key_def queue_keys[] = {
    {"command", KEY_ARGV, offsetof(queue_conf, argv), 0, 0},
    {"concurrency", KEY_INT, offsetof(queue_conf, concurrency), 1, 10000},
    {"timeout", KEY_DURATION, offsetof(queue_conf, timeout_ms), 1, DURATION_MAX_MS},
    {"max_attempts", KEY_INT, offsetof(queue_conf, max_attempts), 1, 1000},
    {"backoff_base", KEY_DURATION, offsetof(queue_conf, backoff_base_ms), 1, DURATION_MAX_MS},
    {"backoff_max", KEY_DURATION, offsetof(queue_conf, backoff_max_ms), 1, DURATION_MAX_MS},
    {"breaker_failures", KEY_INT, offsetof(queue_conf, breaker_failures), 1, 1000000},
    {"breaker_failure_rate", KEY_INT, offsetof(queue_conf, breaker_failure_rate), 1, 100},
    {"breaker_window", KEY_INT, offsetof(queue_conf, breaker_window), 1, 1000},
    {"slow_down", KEY_DURATION, offsetof(queue_conf, slow_down_ms), 1, DURATION_MAX_MS},
    {"breaker_min_calls", KEY_INT, offsetof(queue_conf, breaker_min_calls), 1, 1000},
    {"breaker_cooldown", KEY_DURATION, offsetof(queue_conf, breaker_cooldown_ms), 0,
     DURATION_MAX_MS},
    {"breaker_probes", KEY_INT, offsetof(queue_conf, breaker_probes), 1, 1000000},
    {"output_cap", KEY_BYTES, offsetof(queue_conf, output_cap), 0, 64 * MIB},
    {"url", KEY_URL, offsetof(queue_conf, url), 0, 0},
    {"secret", KEY_SECRET, offsetof(queue_conf, secret), 0, 0},
    {"ca", KEY_STRING, offsetof(queue_conf, ca), 0, 0},
    {"lease", KEY_DURATION, offsetof(queue_conf, lease_ms), 1000, DURATION_MAX_MS},
    {"key_ttl", KEY_DURATION, offsetof(queue_conf, key_ttl_ms), 0, DURATION_MAX_MS},
    {"retention_succeeded", KEY_DURATION, offsetof(queue_conf, retention_succeeded_ms), 0,
     DURATION_MAX_MS},
    {"retention_dead", KEY_DURATION, offsetof(queue_conf, retention_dead_ms), 0, DURATION_MAX_MS},
    {"max_pending", KEY_COUNT, offsetof(queue_conf, max_pending), 1, 1000000000},
    {"rate", KEY_RATE, offsetof(queue_conf, rate_per_s), 0, 1000000},
    {"global_concurrency", KEY_INT, offsetof(queue_conf, global_concurrency), 1, 1000000},
    {"key_concurrency", KEY_INT, offsetof(queue_conf, key_concurrency), 1, 1000000},
    {"key_rate", KEY_RATE, offsetof(queue_conf, key_rate_per_s), 0, 1000000},
};
#define NQUEUE_KEYS (sizeof(queue_keys) / sizeof(queue_keys[0]))

static const char *const listen_schemes[] = {"tcp://", "ipc://", "tls+tcp://", "ws://",
                                             "inproc://"};

enum section_kind { SEC_NONE, SEC_SERVER, SEC_QUEUE, SEC_SCHEDULE, SEC_IGNORED };

/* The keys of a [schedule.NAME] section, in the order of schedule_lines. */
static const char *const schedule_keys[] = {"cron",   "queue",    "payload", "timezone",
                                            "missed", "priority", "overlap"};
#define NSCHEDULE_KEYS (sizeof(schedule_keys) / sizeof(schedule_keys[0]))

/* State shared by the line reader and the key handler during one config_load. */
typedef struct parse_ctx {
    FILE *f;
    config *cfg;
    int lineno;     /* line most recently handed to inih */
    int read_errno; /* errno of a failed read, or 0 */
    int err_line;   /* line of the first error; 0 = none yet, -1 = no line applies */
    char err[512];  /* reason of the first error, without the "FILE:LINE: " prefix */
    enum section_kind sec;
    size_t q;       /* SEC_QUEUE: index in cfg->queues */
    char label[96]; /* "[server]", "[queue.NAME]": the current section, for messages */
    size_t qcap;    /* allocated entries of cfg->queues and queue_lines */
    int server_lines[NSERVER_KEYS];     /* line where each key was set, 0 = not set */
    int (*queue_lines)[NQUEUE_KEYS];    /* the same per queue, parallel to cfg->queues */
    int schedule_lines[NSCHEDULE_KEYS]; /* the same for the current [schedule.NAME] */
} parse_ctx;

/* bad: records a reason for the current line unless an error was already recorded (only the
 * first one is kept). Returns 0, inih's "error" result, so handlers can `return bad(...)`. */
__attribute__((format(printf, 2, 3))) static int
bad(parse_ctx *c, const char *fmt, ...)
{
    if (c->err_line != 0) {
        return 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->err_line = c->lineno > 0 ? c->lineno : -1;
    return 0;
}

/* edit_distance: Levenshtein distance of a and b, or a large number when either is longer
 * than 63 bytes. Used only to suggest a key or section for a typo. */
static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return (size_t)-1;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* A unit to print a number in: its size and suffix. Lists go from the largest to 1. */
typedef struct unit {
    int64_t size;
    const char *suffix;
} unit;

/* format_units: n in the largest unit of units it is a whole number of, into buf. */
static const char *
format_units(int64_t n, const unit *units, char *buf, size_t len)
{
    size_t i = 0;
    while (units[i].size != 1 && (n == 0 || n % units[i].size != 0)) {
        i++;
    }
    snprintf(buf, len, "%lld%s", (long long)(n / units[i].size), units[i].suffix);
    return buf;
}

/* format_duration: ms as the shortest exact "1h", "5m", "10s" or "250ms" into buf. */
static const char *
format_duration(int64_t ms, char *buf, size_t len)
{
    static const unit units[] = {{HOUR_MS, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    return format_units(ms, units, buf, len);
}

/* format_bytes: n as "64 MiB", "1 KiB" or "100 bytes" into buf. */
static const char *
format_bytes(int64_t n, char *buf, size_t len)
{
    static const unit units[] = {{MIB, " MiB"}, {KIB, " KiB"}, {1, " bytes"}};
    return format_units(n, units, buf, len);
}

/* parse_int: a plain decimal integer (optional leading '-') into *vp. Returns false on
 * anything else or on overflow; range checks are the caller's. */
static bool
parse_int(const char *s, int64_t *vp)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    if (*p < '0' || *p > '9') {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *vp = v;
    return true;
}

/* parse_bytes: "65536", "64k", "64K", "64KiB", "1m", "1M", "1MiB" into *vp (bytes). Returns
 * false on any other text or on overflow. */
static bool
parse_bytes(const char *s, int64_t *vp)
{
    if (*s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0) {
        return false;
    }
    int64_t mult;
    if (*end == '\0') {
        mult = 1;
    } else if (strcmp(end, "k") == 0 || strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
        mult = KIB;
    } else if (strcmp(end, "m") == 0 || strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
        mult = MIB;
    } else {
        return false;
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    *vp = (int64_t)v * mult;
    return true;
}

/* parse_bool: true|false|yes|no|on|off|1|0 (any case) into *vp. Returns false otherwise. */
static bool
parse_bool(const char *s, bool *vp)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *vp = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *vp = false;
            return true;
        }
    }
    return false;
}

/* free_argv: frees a NULL-terminated argv and its words; accepts NULL. */
static void
free_argv(char **argv)
{
    if (argv == NULL) {
        return;
    }
    for (char **w = argv; *w != NULL; w++) {
        free(*w);
    }
    free(argv);
}

/* split_command: splits s into words the way a shell would for a plain command line, without
 * any other shell processing: whitespace separates words; '...' keeps everything literally;
 * "..." groups words and a backslash in it escapes the next character; outside quotes a
 * backslash escapes the next character. On success returns a NULL-terminated argv (caller
 * frees with free_argv); on failure returns NULL with *why set to a static reason. */
static char **
split_command(const char *s, const char **why)
{
    size_t len = strlen(s);
    char *buf = malloc(len + 1);                       /* one word at a time, never longer than s */
    char **argv = calloc(len / 2 + 2, sizeof(char *)); /* at most (len + 1) / 2 words */
    size_t n = 0;
    *why = "out of memory";
    if (buf == NULL || argv == NULL) {
        goto fail;
    }
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *o = buf;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            if (*p == '\'') {
                for (p++; *p != '\'' && *p != '\0'; p++) {
                    *o++ = *p;
                }
                if (*p == '\0') {
                    *why = "unterminated single quote (')";
                    goto fail;
                }
                p++;
            } else if (*p == '"') {
                for (p++; *p != '"' && *p != '\0'; p++) {
                    if (*p == '\\' && p[1] != '\0') {
                        p++;
                    }
                    *o++ = *p;
                }
                if (*p == '\0') {
                    *why = "unterminated double quote (\")";
                    goto fail;
                }
                p++;
            } else if (*p == '\\') {
                if (p[1] == '\0') {
                    *why = "a backslash at the end escapes nothing";
                    goto fail;
                }
                *o++ = p[1];
                p += 2;
            } else {
                *o++ = *p++;
            }
        }
        *o = '\0';
        argv[n] = strdup(buf);
        if (argv[n] == NULL) {
            *why = "out of memory";
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        *why = "the command is empty (leave out `command` for a queue served by remote workers)";
        goto fail;
    }
    if (argv[0][0] == '\0') {
        *why = "the program name (first word) is empty";
        goto fail;
    }
    free(buf);
    return argv;
fail:
    free(buf);
    free_argv(argv);
    return NULL;
}

/* set_listen: replaces cfg->listen with the comma-separated URLs in value. Returns 1, or 0
 * after recording why. */
static int
set_listen(parse_ctx *c, const char *value)
{
    size_t cap = 1;
    for (const char *p = value; *p != '\0'; p++) {
        cap += *p == ',';
    }
    char **urls = calloc(cap, sizeof(char *));
    if (urls == NULL) {
        return bad(c, "out of memory");
    }
    size_t n = 0;
    const char *p = value;
    for (;;) {
        const char *end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) {
            a++;
        }
        while (b > a && isspace((unsigned char)b[-1])) {
            b--;
        }
        size_t ulen = (size_t)(b - a);
        if (ulen == 0) {
            bad(c,
                "%s listen = \"%s\": empty URL in the list: expected one or more nng URLs "
                "separated by commas",
                c->label, value);
            goto fail;
        }
        bool ok = false;
        for (size_t i = 0; i < sizeof(listen_schemes) / sizeof(listen_schemes[0]); i++) {
            size_t sl = strlen(listen_schemes[i]);
            if (ulen > sl && strncmp(a, listen_schemes[i], sl) == 0) {
                ok = true;
            }
        }
        if (!ok) {
            bad(c,
                "%s listen = \"%s\": \"%.*s\" is not an nng URL: expected tcp://HOST:PORT, "
                "ipc:///PATH, tls+tcp://HOST:PORT, ws://HOST:PORT/PATH or inproc://NAME",
                c->label, value, (int)ulen, a);
            goto fail;
        }
        urls[n] = strndup(a, ulen);
        if (urls[n] == NULL) {
            bad(c, "out of memory");
            goto fail;
        }
        n++;
        if (*end == '\0') {
            break;
        }
        p = end + 1;
    }
    for (size_t i = 0; i < c->cfg->nlisten; i++) {
        free(c->cfg->listen[i]);
    }
    free(c->cfg->listen);
    c->cfg->listen = urls;
    c->cfg->nlisten = n;
    return 1;
fail:
    for (size_t i = 0; i < n; i++) {
        free(urls[i]);
    }
    free(urls);
    return 0;
}

/* valid_hostport: true when s is "HOST:PORT" with a non-empty host and a port 0-65535. */
static bool
valid_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0') {
        return false;
    }
    for (const char *p = s; p < colon; p++) {
        if (isspace((unsigned char)*p)) {
            return false;
        }
    }
    int64_t port;
    return parse_int(colon + 1, &port) && colon[1] != '-' && port <= 65535;
}

/* valid_user: true when s looks like an account name (1-32 of [A-Za-z0-9_.-], no leading '-'):
 * whether the account exists is checked at start, by privs_resolve. */
static bool
valid_user(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-') {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-') {
            return false;
        }
    }
    return true;
}

/* pick_word: the setting name = value must be one of the n words: stores the index of value
 * among them in *ip and returns 1, or returns 0 after recording "expected HINT". */
static int
pick_word(parse_ctx *c, const char *name, const char *value, const char *const *words, int n,
          const char *hint, int *ip)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(value, words[i]) == 0) {
            *ip = i;
            return 1;
        }
    }
    return bad(c, "%s %s = \"%s\": expected %s", c->label, name, value, hint);
}

/* set_value: parses value as def says and stores it in the field of obj. Returns 1, or 0
 * after recording why. */
static int
set_value(parse_ctx *c, const key_def *def, void *obj, const char *value)
{
    char *field = (char *)obj + def->off;
    const char *name = def->name;
    char lo[32], hi[32];
    int64_t v;
    int w = 0;
    switch (def->kind) {
    case KEY_RESERVED:
        return 1;
    case KEY_LISTEN:
        return set_listen(c, value);
    case KEY_HOSTPORT:
    case KEY_STRING:
    case KEY_SECRET:
    case KEY_USER:
    case KEY_URL: {
        char *copy = NULL;
        if (def->kind == KEY_USER && !valid_user(value)) {
            return bad(c,
                       "%s %s = \"%s\": expected the name of an existing unprivileged account "
                       "such as jobq (letters, digits, _ . -)",
                       c->label, name, value);
        }
        if (def->kind == KEY_SECRET && strlen(value) < 16) {
            return bad(c, "%s %s is too short: use at least 16 random characters", c->label, name);
        }
        if (def->kind == KEY_URL && strncmp(value, "http://", 7) != 0 &&
            strncmp(value, "https://", 8) != 0) {
            return bad(c,
                       "%s %s = \"%s\": expected an http:// or https:// URL such as "
                       "https://hooks.example.com/email",
                       c->label, name, value);
        }
        if (def->kind == KEY_HOSTPORT && value[0] != '\0' && !valid_hostport(value)) {
            return bad(c,
                       "%s %s = \"%s\": expected HOST:PORT such as 127.0.0.1:7451, or "
                       "nothing to disable it",
                       c->label, name, value);
        }
        if ((def->kind == KEY_STRING || def->kind == KEY_SECRET || def->kind == KEY_URL) &&
            value[0] == '\0') {
            return bad(c, "%s %s is empty: expected a file path", c->label, name);
        }
        if (value[0] != '\0' && (copy = strdup(value)) == NULL) {
            return bad(c, "out of memory");
        }
        char **dst = (char **)(void *)field;
        free(*dst);
        *dst = copy;
        return 1;
    }
    case KEY_STORE: {
        static const char *const stores[] = {"sqlite", "postgres", "postgresql"};
        if (!pick_word(c, name, value, stores, 3, "sqlite or postgres", &w)) {
            return 0;
        }
        *(enum store_kind *)(void *)field = w == 0 ? STORE_SQLITE : STORE_POSTGRES;
        return 1;
    }
    case KEY_DURABILITY: {
        static const char *const modes[] = {"full", "normal"};
        if (!pick_word(c, name, value, modes, 2, "full or normal", &w)) {
            return 0;
        }
        *(enum durability *)(void *)field = w == 0 ? DURABILITY_FULL : DURABILITY_NORMAL;
        return 1;
    }
    case KEY_LOG_LEVEL: {
        static const char *const levels[] = {"debug", "info", "warn", "error"};
        if (!pick_word(c, name, value, levels, 4, "debug, info, warn or error", &w)) {
            return 0;
        }
        *(enum log_level *)(void *)field = (enum log_level)w;
        return 1;
    }
    case KEY_BOOL:
        if (!parse_bool(value, (bool *)(void *)field)) {
            return bad(c, "%s %s = \"%s\": expected true or false (also yes/no, on/off, 1/0)",
                       c->label, name, value);
        }
        return 1;
    case KEY_DURATION: {
        size_t vl = strlen(value);
        bool has_unit = vl > 0 && isalpha((unsigned char)value[vl - 1]);
        /* A bare number would be milliseconds: "timeout = 30" is almost surely meant as 30 s,
         * so a unit is required (a bare 0 is unambiguous). */
        if ((!has_unit && strcmp(value, "0") != 0) || !jobq__duration_parse(value, &v)) {
            return bad(c,
                       "%s %s = \"%s\": expected a duration with a unit, such as 250ms, 10s, "
                       "5m, 1h or 7d",
                       c->label, name, value);
        }
        if (v < def->min) {
            return bad(c, "%s %s = \"%s\": must be greater than 0", c->label, name, value);
        }
        if (v > def->max) {
            return bad(c, "%s %s = \"%s\": must be at most %s", c->label, name, value,
                       format_duration(def->max, hi, sizeof(hi)));
        }
        *(int64_t *)(void *)field = v;
        return 1;
    }
    case KEY_INT:
    case KEY_COUNT:
        if (!parse_int(value, &v)) {
            return bad(c, "%s %s = \"%s\": expected an integer from %lld to %lld", c->label, name,
                       value, (long long)def->min, (long long)def->max);
        }
        if (v < def->min || v > def->max) {
            return bad(c, "%s %s = \"%s\": out of range: expected an integer from %lld to %lld",
                       c->label, name, value, (long long)def->min, (long long)def->max);
        }
        if (def->kind == KEY_INT) {
            *(int *)(void *)field = (int)v;
        } else {
            *(size_t *)(void *)field = (size_t)v;
        }
        return 1;
    case KEY_BYTES:
        format_bytes(def->min, lo, sizeof(lo));
        format_bytes(def->max, hi, sizeof(hi));
        if (!parse_bytes(value, &v)) {
            return bad(c,
                       "%s %s = \"%s\": expected a size in bytes with an optional k or M "
                       "suffix (such as 65536, 64k, 1M), from %s to %s",
                       c->label, name, value, lo, hi);
        }
        if (v < def->min || v > def->max) {
            return bad(c, "%s %s = \"%s\": out of range: expected a size from %s to %s", c->label,
                       name, value, lo, hi);
        }
        *(size_t *)(void *)field = (size_t)v;
        return 1;
    case KEY_RATE: {
        char *end;
        errno = 0;
        double n = strtod(value, &end);
        double per = strcmp(end, "/s") == 0   ? 1
                     : strcmp(end, "/m") == 0 ? 60
                     : strcmp(end, "/h") == 0 ? 3600
                                              : 0;
        if (end == value || per == 0 || errno != 0 || !(n > 0) || n / per > (double)def->max) {
            return bad(c,
                       "%s %s = \"%s\": expected jobs per second, minute or hour, such as 50/s, "
                       "600/m or 100/h (more than 0, at most %lld/s)",
                       c->label, name, value, (long long)def->max);
        }
        *(double *)(void *)field = n / per;
        return 1;
    }
    case KEY_ARGV: {
        const char *why;
        char **argv = split_command(value, &why);
        if (argv == NULL) {
            return bad(c, "%s %s = \"%s\": %s", c->label, name, value, why);
        }
        char ***dst = (char ***)(void *)field;
        free_argv(*dst);
        *dst = argv;
        return 1;
    }
    }
    return bad(c, "internal error: key %s has no parser", name);
}

/* set_key: looks name up in defs and stores value in obj; lines[i] remembers where key i was
 * set so a repeated key is reported. Returns 1, or 0 after recording why. */
static int
set_key(parse_ctx *c, const key_def *defs, size_t ndefs, void *obj, int *lines, const char *name,
        const char *value)
{
    for (size_t i = 0; i < ndefs; i++) {
        if (strcmp(defs[i].name, name) != 0) {
            continue;
        }
        if (defs[i].kind == KEY_RESERVED) {
            return 1;
        }
        if (lines[i] != 0) {
            return bad(c, "%s %s is set twice (first on line %d)", c->label, name, lines[i]);
        }
        lines[i] = c->lineno;
        return set_value(c, &defs[i], obj, value);
    }
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches */
    for (size_t i = 0; i < ndefs; i++) {
        size_t d = edit_distance(name, defs[i].name);
        if (d < best_d) {
            best_d = d;
            best = defs[i].name;
        }
    }
    if (best != NULL) {
        return bad(c, "%s unknown key \"%s\" (did you mean \"%s\"?)", c->label, name, best);
    }
    return bad(c, "%s unknown key \"%s\"", c->label, name);
}

/* queue_conf_clear: frees what q owns; leaves q zeroed. */
static void
queue_conf_clear(queue_conf *q)
{
    free(q->name);
    free(q->url);
    free(q->secret);
    free(q->ca);
    free_argv(q->argv);
    memset(q, 0, sizeof(*q));
}

/* valid_queue_name: 1-64 characters of [A-Za-z0-9_.-]. */
static bool
valid_queue_name(const char *s, size_t len)
{
    if (len == 0 || len > QUEUE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '_' && ch != '.' && ch != '-') {
            return false;
        }
    }
    return true;
}

/* begin_queue: makes [queue.NAME] the current section, adding the queue unless an earlier
 * section already did (a repeated section continues the same queue). */
static void
begin_queue(parse_ctx *c, const char *name, size_t len)
{
    config *cfg = c->cfg;
    snprintf(c->label, sizeof(c->label), "[queue.%.*s]", (int)len, name);
    if (!valid_queue_name(name, len)) {
        bad(c, "%s invalid queue name \"%.*s\": expected 1 to %d characters of A-Z a-z 0-9 _ . -",
            c->label, (int)len, name, QUEUE_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (strlen(cfg->queues[i].name) == len && memcmp(cfg->queues[i].name, name, len) == 0) {
            c->sec = SEC_QUEUE;
            c->q = i;
            return;
        }
    }
    if (cfg->nqueues == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 8;
        queue_conf *qs = realloc(cfg->queues, cap * sizeof(*qs));
        if (qs == NULL) {
            bad(c, "out of memory");
            return;
        }
        cfg->queues = qs;
        int(*lines)[NQUEUE_KEYS] = realloc(c->queue_lines, cap * sizeof(*lines));
        if (lines == NULL) {
            bad(c, "out of memory");
            return;
        }
        c->queue_lines = lines;
        c->qcap = cap;
    }
    queue_conf *q = &cfg->queues[cfg->nqueues];
    config_queue_defaults(q);
    if ((q->name = strndup(name, len)) == NULL) {
        bad(c, "out of memory");
        return;
    }
    memset(c->queue_lines[cfg->nqueues], 0, sizeof(c->queue_lines[0]));
    c->q = cfg->nqueues++;
    c->sec = SEC_QUEUE;
}

/* begin_schedule: makes [schedule.NAME] the current section. */
static void
begin_schedule(parse_ctx *c, const char *name, size_t len)
{
    config *cfg = c->cfg;
    snprintf(c->label, sizeof(c->label), "[schedule.%.*s]", (int)len, name);
    if (!valid_queue_name(name, len)) {
        bad(c,
            "%s invalid schedule name \"%.*s\": expected 1 to %d characters of A-Z a-z 0-9 _ . -",
            c->label, (int)len, name, QUEUE_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < cfg->nschedules; i++) {
        if (strlen(cfg->schedules[i].name) == len &&
            memcmp(cfg->schedules[i].name, name, len) == 0) {
            bad(c, "%s appears twice (first on line %d)", c->label, cfg->schedules[i].line);
            return;
        }
    }
    schedule_conf *grown = realloc(cfg->schedules, (cfg->nschedules + 1) * sizeof(*grown));
    if (grown == NULL) {
        bad(c, "out of memory");
        return;
    }
    cfg->schedules = grown;
    schedule_conf *sc = &cfg->schedules[cfg->nschedules++];
    memset(sc, 0, sizeof(*sc));
    sc->line = c->lineno;
    sc->name = strndup(name, len);
    sc->payload = strdup("null");
    char why[160];
    sc->zone = tz_load("UTC", why, sizeof(why));
    if (sc->name == NULL || sc->payload == NULL || sc->zone == NULL) {
        bad(c, "out of memory");
        return;
    }
    memset(c->schedule_lines, 0, sizeof(c->schedule_lines));
    c->sec = SEC_SCHEDULE;
}

/* set_schedule_key: one key of the current [schedule.NAME]. Returns 1, or 0 after recording
 * why. */
static int
set_schedule_key(parse_ctx *c, const char *name, const char *value)
{
    schedule_conf *sc = &c->cfg->schedules[c->cfg->nschedules - 1];
    size_t k = 0;
    while (k < NSCHEDULE_KEYS && strcmp(schedule_keys[k], name) != 0) {
        k++;
    }
    if (k == NSCHEDULE_KEYS) {
        for (size_t i = 0; i < NSCHEDULE_KEYS; i++) {
            if (edit_distance(name, schedule_keys[i]) < 3) {
                return bad(c, "%s unknown key \"%s\" (did you mean \"%s\"?)", c->label, name,
                           schedule_keys[i]);
            }
        }
        return bad(c,
                   "%s unknown key \"%s\": a schedule has cron, queue, payload, timezone, "
                   "missed, overlap and priority",
                   c->label, name);
    }
    if (c->schedule_lines[k] != 0) {
        return bad(c, "%s %s is set twice (first on line %d)", c->label, name,
                   c->schedule_lines[k]);
    }
    c->schedule_lines[k] = c->lineno;
    char why[256];
    if (strcmp(name, "cron") == 0) {
        if (cron_parse(value, &sc->expr, why, sizeof(why)) != 0) {
            return bad(c,
                       "%s cron = \"%s\": %s (five fields: minute hour day-of-month month "
                       "day-of-week, such as */5 * * * *)",
                       c->label, value, why);
        }
        free(sc->cron);
        sc->cron = strdup(value);
        return sc->cron != NULL ? 1 : bad(c, "out of memory");
    }
    if (strcmp(name, "queue") == 0) {
        if (!valid_queue_name(value, strlen(value))) {
            return bad(c, "%s queue = \"%s\": expected 1 to %d characters of A-Z a-z 0-9 _ . -",
                       c->label, value, QUEUE_NAME_MAX);
        }
        free(sc->queue);
        sc->queue = strdup(value);
        return sc->queue != NULL ? 1 : bad(c, "out of memory");
    }
    if (strcmp(name, "payload") == 0) {
        json_error_t jerr;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
            return bad(c, "%s payload is not valid JSON: %s (column %d)", c->label, jerr.text,
                       jerr.column);
        }
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(v);
        if (text == NULL) {
            return bad(c, "out of memory");
        }
        free(sc->payload);
        sc->payload = text;
        return 1;
    }
    if (strcmp(name, "timezone") == 0) {
        tz *z = tz_load(value, why, sizeof(why));
        if (z == NULL) {
            return bad(c,
                       "%s timezone: %s (use a name such as UTC, Europe/Paris or "
                       "America/New_York)",
                       c->label, why);
        }
        tz_free(sc->zone);
        sc->zone = z;
        return 1;
    }
    static const char *const missed[] = {"run_once", "skip"};
    static const char *const overlap[] = {"allow", "skip"};
    int w = 0;
    if (strcmp(name, "missed") == 0) {
        if (!pick_word(c, name, value, missed, 2,
                       "run_once (run one job for the ticks missed while jobqd was down) or skip",
                       &w)) {
            return 0;
        }
        sc->missed_skip = w == 1;
        return 1;
    }
    if (strcmp(name, "overlap") == 0) {
        if (!pick_word(c, name, value, overlap, 2,
                       "allow (every tick submits its job) or skip (no job while the last "
                       "tick's job is pending or running)",
                       &w)) {
            return 0;
        }
        sc->overlap_skip = w == 1;
        return 1;
    }
    int64_t v;
    if (!parse_int(value, &v) || v < INT32_MIN || v > INT32_MAX) {
        return bad(c, "%s priority = \"%s\": expected an integer", c->label, value);
    }
    sc->priority = (int32_t)v;
    return 1;
}

/* begin_section: makes the section named name (len bytes, as written between the brackets)
 * current, or records why it is not allowed. */
static void
begin_section(parse_ctx *c, const char *name, size_t len)
{
    c->sec = SEC_NONE;
    if (len == 6 && memcmp(name, "server", 6) == 0) {
        c->sec = SEC_SERVER;
        snprintf(c->label, sizeof(c->label), "[server]");
        return;
    }
    if (len >= 6 && memcmp(name, "queue.", 6) == 0) {
        begin_queue(c, name + 6, len - 6);
        return;
    }
    if (len >= 9 && memcmp(name, "schedule.", 9) == 0) {
        begin_schedule(c, name + 9, len - 9);
        return;
    }
    /* Suggest the closest section for a typo such as [sever] or [queu.email]. */
    char head[64];
    const char *dot = memchr(name, '.', len);
    size_t hl = dot ? (size_t)(dot - name) : len;
    snprintf(head, sizeof(head), "%.*s", (int)(hl < 63 ? hl : 63), name);
    const char *hint = NULL;
    if (dot == NULL && edit_distance(head, "server") <= 2) {
        hint = " (did you mean [server]?)";
    } else if (edit_distance(head, "queue") <= 2) {
        hint = " (did you mean [queue.NAME]?)";
    } else if (edit_distance(head, "schedule") <= 2) {
        hint = " (did you mean [schedule.NAME]?)";
    }
    bad(c, "unknown section [%.*s]%s: expected [server], [queue.NAME] or [schedule.NAME]", (int)len,
        name, hint ? hint : "");
}

/* find_end: the first of chars in s, stopping (like inih) at an inline ';' comment that
 * follows whitespace. Returns a pointer to that char, to the ';', or to the final NUL. */
static char *
find_end(char *s, const char *chars)
{
    bool was_space = false;
    while (*s != '\0' && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* scan_line: looks at a line before inih does: tracks section headers itself (inih truncates
 * section names to 49 characters and does not report sections without keys) and reports
 * lines inih would reject with a more useful message. line has no leading whitespace. */
static void
scan_line(parse_ctx *c, char *line)
{
    size_t len = strlen(line);
    while (len > 0 && isspace((unsigned char)line[len - 1])) {
        len--;
    }
    if (len == 0 || line[0] == ';' || line[0] == '#') {
        return;
    }
    if (line[0] == '[') {
        char *end = find_end(line + 1, "]");
        if (*end != ']') {
            bad(c, "section header \"%.*s\" has no closing ]", (int)len, line);
            return;
        }
        const char *after = end + 1;
        while (isspace((unsigned char)*after)) {
            after++;
        }
        if (*after != '\0' && *after != ';' && *after != '#') {
            bad(c, "unexpected text after the section header \"%.*s\"", (int)len, line);
            return;
        }
        begin_section(c, line + 1, (size_t)(end - (line + 1)));
        return;
    }
    char *sep = find_end(line, "=:");
    if (*sep != '=' && *sep != ':') {
        bad(c, "cannot read \"%.*s\": expected key = value, a [section] header or a comment",
            (int)len, line);
    }
}

/* read_line_cb: inih's reader. Reads one line, refuses lines longer than the parser's buffer
 * (inih would silently split them), strips the BOM and leading whitespace (so inih never
 * takes an indented line as a continuation of the previous value), and scans it. */
static char *
read_line_cb(char *buf, int size, void *stream)
{
    parse_ctx *c = stream;
    if (fgets(buf, size, c->f) == NULL) {
        if (ferror(c->f)) {
            c->read_errno = errno ? errno : EIO;
        }
        return NULL;
    }
    c->lineno++;
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] != '\n') {
        int ch = getc(c->f);
        if (ch != EOF && ch != '\n') {
            while (ch != EOF && ch != '\n') {
                ch = getc(c->f);
            }
            bad(c, "line is too long: at most %d characters are allowed", size - 1);
            buf[0] = '\0';
            return buf;
        }
    }
    char *p = buf;
    if (c->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
    }
    while (isspace((unsigned char)*p)) {
        p++;
    }
    memmove(buf, p, strlen(p) + 1);
    scan_line(c, buf);
    return buf;
}

/* handler_cb: inih's handler for one "name = value" line. The section argument is ignored:
 * scan_line tracked the current section from the untruncated header. */
static int
handler_cb(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *c = user;
    (void)section;
    if (c->err_line != 0) {
        return 1; /* only the first error is reported */
    }
    switch (c->sec) {
    case SEC_NONE:
        return bad(c,
                   "%s = \"%s\" is outside any section: put it under [server] or "
                   "[queue.NAME]",
                   name, value);
    case SEC_IGNORED:
        return 1;
    case SEC_SERVER:
        return set_key(c, server_keys, NSERVER_KEYS, c->cfg, c->server_lines, name, value);
    case SEC_QUEUE:
        return set_key(c, queue_keys, NQUEUE_KEYS, &c->cfg->queues[c->q], c->queue_lines[c->q],
                       name, value);
    case SEC_SCHEDULE:
        return set_schedule_key(c, name, value);
    }
    return 1;
}

/* server_key_set: whether the file set [server] key name. */
static bool
server_key_set(const parse_ctx *c, const char *name)
{
    for (size_t i = 0; i < NSERVER_KEYS; i++) {
        if (strcmp(server_keys[i].name, name) == 0) {
            return c->server_lines[i] != 0;
        }
    }
    return false;
}

bool
config_database_is_postgres(const char *database)
{
    return strncmp(database, "postgresql://", 13) == 0 || strncmp(database, "postgres://", 11) == 0;
}

/* loopback_hostport: whether hostport ("127.0.0.1:7451", "[::1]:7451", "localhost:7451")
 * names only this machine. An empty host (every address) or any other name does not. */
static bool
loopback_hostport(const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    size_t n = colon != NULL ? (size_t)(colon - hostport) : strlen(hostport);
    if (n == 9 && strncasecmp(hostport, "localhost", 9) == 0) {
        return true;
    }
    if (n == 5 && strncmp(hostport, "[::1]", 5) == 0) {
        return true;
    }
    /* 127.0.0.0/8: "127." then digits and dots only. */
    if (n < 5 || strncmp(hostport, "127.", 4) != 0) {
        return false;
    }
    for (size_t i = 4; i < n; i++) {
        if (!isdigit((unsigned char)hostport[i]) && hostport[i] != '.') {
            return false;
        }
    }
    return true;
}

/* check_http: the HTTP listener's keys together: a read_token needs an auth_token (and differs
 * from it); listening beyond loopback needs a token; TLS needs both files. */
static bool
check_http(parse_ctx *c)
{
    const config *cfg = c->cfg;
    c->lineno = -1;
    if (cfg->read_token != NULL && cfg->auth_token == NULL) {
        bad(c, "[server] read_token is set without auth_token: without auth_token every "
               "request is allowed anyway; set auth_token too");
        return false;
    }
    if (cfg->read_token != NULL && strcmp(cfg->read_token, cfg->auth_token) == 0) {
        bad(c, "[server] read_token is the same as auth_token: give the read-only token its "
               "own value");
        return false;
    }
    if ((cfg->http_tls_cert == NULL) != (cfg->http_tls_key == NULL)) {
        bad(c, "[server] http_tls_cert and http_tls_key go together: set both (a PEM "
               "certificate and its key) or neither");
        return false;
    }
    if (cfg->http != NULL && cfg->auth_token == NULL && !loopback_hostport(cfg->http)) {
        bad(c,
            "[server] http = %s listens beyond this machine without a token: anyone who reaches "
            "it could submit, cancel and read jobs. Set auth_token (and read_token for "
            "read-only access), or listen on 127.0.0.1",
            cfg->http);
        return false;
    }
    return true;
}

/* check_config: the checks that need the whole file. Returns true, or false after recording
 * why (with no line). */
static bool
check_config(parse_ctx *c)
{
    if (!check_http(c)) {
        return false;
    }
    bool tls = false;
    for (size_t i = 0; i < c->cfg->nlisten; i++) {
        tls = tls || strncmp(c->cfg->listen[i], "tls+tcp://", 10) == 0;
    }
    if (tls && (c->cfg->tls_cert == NULL || c->cfg->tls_key == NULL)) {
        c->lineno = -1;
        bad(c, "[server] a tls+tcp:// listen URL needs tls_cert and tls_key");
        return false;
    }
    bool url = config_database_is_postgres(c->cfg->database);
    if (c->cfg->store == STORE_POSTGRES && !url) {
        c->lineno = -1;
        bad(c,
            "[server] store = postgres needs database = postgresql://USER@HOST:PORT/DBNAME (a "
            "libpq URL; a socket directory goes in ?host=/run/postgresql)%s",
            server_key_set(c, "database") ? ", not a file path" : "");
        return false;
    }
    if (c->cfg->store == STORE_SQLITE && url) {
        c->lineno = -1;
        bad(c, "[server] store = sqlite needs database = a file path, not a postgresql:// URL");
        return false;
    }
    c->cfg->store = url ? STORE_POSTGRES : STORE_SQLITE;
    for (size_t i = 0; i < NSERVER_KEYS; i++) {
        if (strcmp(server_keys[i].name, "http_max_connections") == 0) {
            c->cfg->http_max_connections_line = c->server_lines[i];
        }
    }
    if (!server_key_set(c, "max_payload")) {
        c->cfg->max_payload = c->cfg->max_message; /* unset: a payload may fill a request */
    } else if (c->cfg->max_payload > c->cfg->max_message) {
        c->lineno = -1;
        bad(c,
            "[server] max_payload (%zu bytes) is over max_message (%zu bytes): a payload travels "
            "inside one request; lower max_payload or raise max_message",
            c->cfg->max_payload, c->cfg->max_message);
        return false;
    }
    if (!server_key_set(c, "max_buffered") && c->cfg->max_buffered < c->cfg->max_message) {
        c->cfg->max_buffered = c->cfg->max_message; /* unset: at least one whole message */
    } else if (c->cfg->max_buffered < c->cfg->max_message) {
        c->lineno = -1;
        bad(c,
            "[server] max_buffered (%zu bytes) is under max_message (%zu bytes): one whole "
            "message must fit; raise max_buffered or lower max_message",
            c->cfg->max_buffered, c->cfg->max_message);
        return false;
    }
    for (size_t i = 0; i < c->cfg->nqueues; i++) {
        const queue_conf *q = &c->cfg->queues[i];
        if (q->argv != NULL && q->url != NULL) {
            c->lineno = -1;
            bad(c, "[queue.%s] has both command and url: a queue runs one kind of handler",
                q->name);
            return false;
        }
        if (q->breaker_min_calls > q->breaker_window) {
            c->lineno = -1;
            bad(c,
                "[queue.%s] breaker_min_calls (%d) is more than breaker_window (%d): the rate "
                "would never be judged",
                q->name, q->breaker_min_calls, q->breaker_window);
            return false;
        }
        if ((q->secret != NULL || q->ca != NULL) && q->url == NULL) {
            c->lineno = -1;
            bad(c, "[queue.%s] has %s but no url: it signs or verifies webhook deliveries only",
                q->name, q->secret != NULL ? "secret" : "ca");
            return false;
        }
        if (q->ca != NULL && strncmp(q->url, "https://", 8) != 0) {
            c->lineno = -1;
            bad(c, "[queue.%s] has ca but its url is not https://: ca verifies an https receiver",
                q->name);
            return false;
        }
        if (q->backoff_max_ms < q->backoff_base_ms) {
            char a[32], b[32];
            c->lineno = -1;
            bad(c, "[queue.%s] backoff_max (%s) is less than backoff_base (%s)", q->name,
                format_duration(q->backoff_max_ms, a, sizeof(a)),
                format_duration(q->backoff_base_ms, b, sizeof(b)));
            return false;
        }
    }
    for (size_t i = 0; i < c->cfg->nschedules; i++) {
        const schedule_conf *sc = &c->cfg->schedules[i];
        const char *missing = sc->cron == NULL ? "cron" : sc->queue == NULL ? "queue" : NULL;
        if (missing != NULL) {
            c->lineno = sc->line;
            bad(c, "[schedule.%s] needs a %s", sc->name,
                missing[0] == 'c' ? "cron expression: cron = */5 * * * *"
                                  : "queue for its jobs: queue = NAME");
            return false;
        }
        if (config_queue(c->cfg, sc->queue) == NULL && !c->cfg->allow_unknown_queues) {
            c->lineno = sc->line;
            bad(c,
                "[schedule.%s] queue \"%s\" is not configured: add a [queue.%s] section or set "
                "allow_unknown_queues = true",
                sc->name, sc->queue, sc->queue);
            return false;
        }
    }
    return true;
}

int
config_load(const char *path, config **cfgp, char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    parse_ctx c;
    memset(&c, 0, sizeof(c));
    c.cfg = config_defaults();
    if (c.cfg == NULL || (c.cfg->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    c.f = fopen(path, "r");
    if (c.f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    int rc = ini_parse_stream(read_line_cb, &c, handler_cb, &c);
    fclose(c.f);
    if (c.read_errno != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(c.read_errno));
        goto fail;
    }
    if (rc == -2) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (rc > 0 && (c.err_line <= 0 || rc < c.err_line)) {
        /* inih rejected a line scan_line let through: should not happen, but say where. */
        snprintf(err, errlen,
                 "%s:%d: syntax error: expected key = value, a [section] header or "
                 "a comment",
                 path, rc);
        goto fail;
    }
    if (c.err_line == 0) {
        check_config(&c);
    }
    if (c.err_line > 0) {
        snprintf(err, errlen, "%s:%d: %s", path, c.err_line, c.err);
        goto fail;
    }
    if (c.err_line < 0) {
        snprintf(err, errlen, "%s: %s", path, c.err);
        goto fail;
    }
    free(c.queue_lines);
    *cfgp = c.cfg;
    return 0;
fail:
    free(c.queue_lines);
    config_free(c.cfg);
    return -1;
}

config *
config_defaults(void)
{
    config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return NULL;
    }
    cfg->durability = DURABILITY_FULL;
    cfg->shutdown_grace_ms = 30 * 1000;
    cfg->node_ttl_ms = 10 * 1000;
    cfg->leader_ttl_ms = 10 * 1000;
    cfg->poll_interval_ms = 1000;
    cfg->log_level = LOG_INFO;
    cfg->allow_unknown_queues = false;
    cfg->max_message = 1 * MIB;
    cfg->max_payload = cfg->max_message; /* follows max_message unless set */
    cfg->max_batch = 10000;
    cfg->max_waits = 4096;
    cfg->max_waits_per_connection = 256;
    cfg->max_connections = 10000;
    cfg->max_queues = 1000;
    cfg->max_unauthenticated_message = 64 * KIB;
    cfg->read_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 5 * 60 * 1000;
    cfg->max_buffered = 64 * MIB;
    cfg->http_timeout_ms = 10000;
    cfg->http_max_connections = 64;
    cfg->http_max_request = 32 * KIB;
    cfg->listen = calloc(1, sizeof(char *));
    if (cfg->listen == NULL || (cfg->listen[0] = strdup("tcp://127.0.0.1:7450")) == NULL) {
        config_free(cfg);
        return NULL;
    }
    cfg->nlisten = 1;
    cfg->http = strdup("127.0.0.1:7451");
    cfg->database = strdup("var/jobq.db");
    if (cfg->http == NULL || cfg->database == NULL) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

const queue_conf *
config_queue(const config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0) {
            return &cfg->queues[i];
        }
    }
    return NULL;
}

void
config_breaker_rates(const queue_conf *q, int *rate_pctp, int *failuresp)
{
    *failuresp = q->breaker_failures;
    if (q->breaker_failure_rate >= 0) {
        *rate_pctp = q->breaker_failure_rate;
    } else {
        *rate_pctp = q->breaker_failures > 0 ? 0 : 50;
    }
}

void
config_queue_defaults(queue_conf *q)
{
    memset(q, 0, sizeof(*q));
    q->concurrency = 1;
    q->timeout_ms = 30 * 1000;
    q->max_attempts = 8;
    q->backoff_base_ms = 1000;
    q->backoff_max_ms = HOUR_MS;
    q->breaker_failures = 0;
    q->breaker_failure_rate = -1;
    q->breaker_window = 100;
    q->slow_down_ms = 10 * 1000;
    q->breaker_min_calls = 20;
    q->breaker_cooldown_ms = 30 * 1000;
    q->breaker_probes = 1;
    q->output_cap = 64 * KIB;
    q->key_ttl_ms = 24 * HOUR_MS;
    q->retention_succeeded_ms = 24 * HOUR_MS;
    q->retention_dead_ms = 7 * 24 * HOUR_MS;
    q->lease_ms = 60 * 1000;
    q->max_pending = 10000000;
}

void
config_free(config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    if (cfg->listen != NULL) {
        for (size_t i = 0; i < cfg->nlisten; i++) {
            free(cfg->listen[i]);
        }
        free(cfg->listen);
    }
    for (size_t i = 0; i < cfg->nqueues; i++) {
        queue_conf_clear(&cfg->queues[i]);
    }
    free(cfg->queues);
    for (size_t i = 0; i < cfg->nschedules; i++) {
        schedule_conf *sc = &cfg->schedules[i];
        free(sc->name);
        free(sc->cron);
        free(sc->queue);
        free(sc->payload);
        tz_free(sc->zone);
    }
    free(cfg->schedules);
    free(cfg->path);
    free(cfg->http);
    free(cfg->database);
    free(cfg->node);
    free(cfg->auth_token);
    free(cfg->read_token);
    free(cfg->http_tls_cert);
    free(cfg->http_tls_key);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_ca);
    free(cfg->backup_dir);
    free(cfg->user);
    free(cfg);
}
