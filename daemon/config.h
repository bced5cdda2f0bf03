/* config.h: jobqd's configuration, read from an INI file with inih and validated once. */
#ifndef JOBQD_CONFIG_H
#define JOBQD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "tz.h"

enum durability { DURABILITY_FULL = 0, DURABILITY_NORMAL = 1 };
/* Which store backend `database` names. STORE_AUTO only while reading: config_load resolves it
 * from database (a postgresql:// or postgres:// URL is PostgreSQL, anything else a file). */
enum store_kind { STORE_AUTO = 0, STORE_SQLITE = 1, STORE_POSTGRES = 2 };
enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/** One [queue.NAME] section. */
typedef struct queue_conf {
    char *name;         /* NAME of [queue.NAME]: 1-64 chars of [A-Za-z0-9_.-] */
    char **argv;        /* command split into words (no shell), NULL-terminated; NULL if none */
    char *url;          /* webhook: http(s)://HOST:PORT/PATH each job is POSTed to; NULL if none */
    char *secret;       /* webhook: signs each delivery (Jobq-Signature); NULL: unsigned */
    char *ca;           /* webhook over https: PEM CA file that verifies the receiver; NULL:
                         * the system's (CONFIG_SYSTEM_CA) */
    int64_t lease_ms;   /* remote workers: how long a fetched job is theirs; default 60 s */
    int concurrency;    /* jobs running at once on this node, >= 1; default 1 */
    int global_concurrency; /* PostgreSQL: jobs running at once across nodes; 0: no limit */
    int64_t timeout_ms; /* per attempt, > 0; default 30 s */
    int max_attempts;   /* >= 1; default 8 */
    int64_t backoff_base_ms;     /* default 1 s */
    int64_t backoff_max_ms;      /* default 1 h; >= backoff_base_ms */
    int breaker_failures;        /* consecutive failures that open the circuit; 0: unset */
    int breaker_failure_rate;    /* percent of failed attempts in the window that opens it;
                                  * -1: unset (see config_breaker_rule) */
    int breaker_window;          /* attempts the rate looks back on; default 100 */
    int64_t slow_down_ms;        /* a command's exit 75 holds the queue this long; 10 s */
    int breaker_min_calls;       /* attempts in the window before the rate counts; default 20 */
    int64_t breaker_cooldown_ms; /* default 30 s */
    int breaker_probes;          /* jobs let through while half-open, >= 1; default 1 */
    size_t output_cap;           /* bytes of stdout/stderr kept; default 64 KiB */
    size_t max_pending; /* unfinished jobs the queue may hold; more: queue_full; default 10M */
    int64_t key_ttl_ms; /* a key admits one job per this window; default 24 h */
    int64_t retention_succeeded_ms; /* succeeded jobs are deleted after this; default 24 h */
    int64_t retention_dead_ms;      /* dead and cancelled jobs: default 7 days */
    double rate_per_s;              /* jobs started per second at most; 0: no limit */
    int key_concurrency;            /* running jobs of one group_key at most; 0: no cap */
    double key_rate_per_s;          /* jobs of one group_key started per second; 0: no limit */
} queue_conf;

/** One [schedule.NAME] section: a job submitted at every tick of a cron expression. */
typedef struct schedule_conf {
    char *name;     /* NAME of [schedule.NAME]: 1-64 chars of [A-Za-z0-9_.-] */
    int line;       /* where its section starts */
    char *cron;     /* the expression as written */
    cron_expr expr; /* ... parsed */
    char *queue;    /* where its jobs go */
    char *payload;  /* compact JSON text of each job's payload; default null */
    int32_t priority;
    tz *zone;         /* `timezone`; default UTC */
    bool missed_skip; /* missed = skip: ticks missed while jobqd was down are not run */
    bool overlap_skip; /* overlap = skip: no job while the last tick's job has not ended */
} schedule_conf;

typedef struct config {
    char *path;    /* the file it was read from */
    char **listen; /* nng URLs; at least one */
    size_t nlisten;
    char *http;                 /* "host:port" of the monitor endpoint; NULL when disabled */
    char *database;             /* SQLite file path (relative to the cwd), or a PostgreSQL URL */
    enum store_kind store;      /* `store`, or what database names; never STORE_AUTO once loaded */
    char *auth_token;           /* when set, every request must carry it; NULL: none */
    char *read_token;           /* with auth_token: a token for the read-only ops (OPF_READ), the
                                 * dashboard and /metrics; NULL: none */
    char *http_tls_cert;        /* PEM certificate: the HTTP listener speaks HTTPS; NULL: HTTP */
    char *http_tls_key;         /* PEM key of http_tls_cert */
    char *tls_cert;             /* PEM certificate for tls+tcp:// listeners */
    char *tls_key;              /* PEM key of tls_cert */
    char *tls_ca;               /* PEM CA: when set, clients must present a certificate */
    char *user;                 /* started as root: the account to switch to; NULL: none */
    enum durability durability; /* default full */
    int64_t shutdown_grace_ms;  /* default 30 s */
    char *node;                 /* PostgreSQL: this node's name, unique and stable; NULL:
                                 * hostname:port of the first listener (cluster.c) */
    int64_t node_ttl_ms;        /* PostgreSQL: a node silent this long is dead; 10 s */
    int64_t leader_ttl_ms;      /* PostgreSQL: the leader's lease; 10 s */
    int64_t poll_interval_ms;   /* PostgreSQL: heartbeat and re-read of the backlog; 1 s */
    enum log_level log_level;   /* default info */
    bool allow_unknown_queues;  /* default false */
    size_t max_message;         /* bytes of one request; default 1 MiB */
    size_t max_payload;         /* bytes of one job's payload (compact); default max_message */
    size_t max_batch;           /* jobs in one submit_batch; default 10000 */
    size_t max_waits;           /* held waits and long-poll fetches at once; default 4096 */
    size_t max_waits_per_connection; /* of them, held for one connection; default 256 */
    size_t max_connections;     /* nng connections served at once; default 10000 */
    size_t max_queues;          /* queues without a section (allow_unknown_queues); default 1000 */
    size_t max_unauthenticated_message; /* bytes of a message before a valid token (auth_token
                                         * set, tcp:// and ipc://); default 64 KiB */
    int64_t read_timeout_ms;    /* a connection silent this long mid-message is closed; 10 s */
    int64_t idle_timeout_ms;    /* one silent this long with nothing owed is closed; 5 min;
                                 * 0: never */
    size_t max_buffered;        /* bytes of unfinished messages held at once over all
                                 * connections, beyond each one's 16 KiB buffer; 64 MiB */

    /* The HTTP side and backups. */
    int64_t http_timeout_ms;       /* an HTTP request's whole arrival, and idleness; 10 s */
    size_t http_max_connections;   /* HTTP connections at once; 64, lowered at start to fit */
    int http_max_connections_line; /* where http_max_connections was set; 0: the default */
    size_t http_max_per_ip;        /* HTTP connections from one address; 0 (no cap) */
    size_t http_max_request;       /* bytes of an HTTP request's line and headers; 32 KiB */
    char *backup_dir;              /* where `backup` may write; NULL: the database's directory */

    queue_conf *queues;
    size_t nqueues;
    schedule_conf *schedules;
    size_t nschedules;
} config;

/** config_database_is_postgres: whether a `database` setting names a PostgreSQL server (a
 *  postgresql:// or postgres:// URL) rather than a SQLite file. */
bool config_database_is_postgres(const char *database);

/** config_load: reads and validates FILE. On success returns 0 and *cfgp owns a config
 *  (free with config_free). On failure returns -1, leaves *cfgp alone and writes a one-line
 *  reason "FILE:LINE: what is wrong" (or "FILE: ..." when no line applies) into err. */
int config_load(const char *path, config **cfgp, char *err, size_t errlen);

/** config_defaults: a config with every default and no queue (listen tcp://127.0.0.1:7450,
 *  database var/jobq.db). Returns NULL on out of memory. */
config *config_defaults(void);

/** config_queue: the queue named name, or NULL. */
const queue_conf *config_queue(const config *cfg, const char *name);

/** config_breaker_rates: the failure rate (percent, 0: off) and consecutive failures (0: off)
 *  that open q's circuit breaker: as set; unset, the rate rule (50%) alone, unless only
 *  breaker_failures is set, which keeps the consecutive rule alone. */
void config_breaker_rates(const queue_conf *q, int *rate_pctp, int *failuresp);

/** config_queue_defaults: fills q with the defaults of a queue that has no section
 *  (used for queues admitted by allow_unknown_queues). q->name is left NULL. */
void config_queue_defaults(queue_conf *q);

/** config_free: accepts NULL and half-built configs. */
void config_free(config *cfg);

#endif
