/* main.c: jobqd's entry point: options, config, store, then the loop until drained. */
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "dispatch.h"
#include "flow.h"
#include "gauges.h"
#include "hold.h"
#include "log.h"
#include "migrate.h"
#include "monitor.h"
#include "periodic.h"
#include "privs.h"
#include "progress.h"
#include "queues.h"
#include "runner.h"
#include "scheduler.h"
#include "server.h"
#include "store.h"
#include "waits.h"
#include "webhook.h"
#include "workers.h"
#include "expiry.h"

static const server_part reload_part;

/* jobqd's parts, in the order they start (init, then start), learn of the drain, and close
 * once drained; freed in the reverse order. The job port and the monitor come last: nothing
 * is served before the state they serve is loaded. */
static const server_part *const parts[] = {
    &cluster_part,        /* PostgreSQL: this node registered before anything is recovered */
    &queues_recover_part, /* the queues, and jobs left running made ready again */
    &periodic_part,       /* the schedules' catch-up (adds jobs), their timer */
    &queues_count_part,   /* the counts by state, once every job is in */
    &hold_part,           /* held requests */
    &waits_part,          /* waits and cancels waiting for jobs to end */
    &progress_part,       /* running jobs' progress, checkpoints and logs; held logs */
    &flow_part,           /* what follows a commit: dependencies, groups */
    &expiry_part,         /* jobs not started by their deadline (before claims start) */
    &sched_part,          /* the scheduler: ready jobs start */
    &workers_part,        /* remote workers' leases and fetches */
    &webhook_part,        /* webhook deliveries */
    &runner_part,         /* local processes */
    &gauges_part,         /* the age of each queue's oldest waiting job */
    &dispatch_part,       /* the job port */
    &monitor_part,        /* the HTTP monitor */
    &reload_part,         /* SIGHUP: the config file read again */
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: jobqd [-c FILE] [--check-config] [--version]\n"
               "  -c, --config FILE   configuration file (default /etc/jobq/jobq.conf)\n"
               "      --check-config  only read and validate FILE, then exit (0 if valid)\n"
               "      --version       print the version and exit\n"
               "Signals: SIGTERM or SIGINT drain and exit 0; SIGHUP reads FILE again and applies\n"
               "its queues and schedules (a bad file is refused whole, logged with its line).\n");
}

/* close_walk_cb: closes what a failed server_init left open, so that the loop ends. */
static void
close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Descriptors jobqd holds besides connections: the database and its -wal and -shm, a
 * backup's own connection to them and its target, stdio, the loop's own (epoll, signals,
 * async), nng's and the HTTP server's internals, webhook connections, with room to spare. */
#define DB_FDS 8
#define FD_MARGIN 64
#define HTTP_OWN_FDS 4 /* its listener, MHD's epoll and wake-up descriptors, a refused accept */

/* fd_budget: raises RLIMIT_NOFILE's soft limit to the hard one, reserves what the job port
 * needs (max_connections, its listeners, the database, three pipes per job jobqd runs, a
 * margin) and leaves HTTP the rest, lowering http_max_connections to fit (with a log line).
 * Returns 0, or -1 with a "FILE:LINE: ..." reason in err when nothing is left for HTTP. */
static int
fd_budget(config *cfg, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    rlim_t was = rl.rlim_cur;
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    unsigned long long nofile = rl.rlim_cur == RLIM_INFINITY ? 1ULL << 20 : rl.rlim_cur;
    unsigned long long jobs = 0;
    for (size_t i = 0; i < cfg->nqueues; i++) {
        jobs += (unsigned long long)cfg->queues[i].concurrency;
    }
    unsigned long long reserved =
        cfg->max_connections + cfg->nlisten + DB_FDS + 3 * jobs + FD_MARGIN;
    long long left =
        (long long)nofile - (long long)reserved - (cfg->http != NULL ? HTTP_OWN_FDS : 0);
    log_info("fd_limit", "nofile=%llu was=%llu reserved=%llu max_connections=%zu jobs=%llu", nofile,
             (unsigned long long)was, reserved, cfg->max_connections, jobs);
    if (cfg->http == NULL) {
        return 0;
    }
    if (left < 1) {
        char where[300];
        if (cfg->http_max_connections_line > 0) {
            snprintf(where, sizeof(where), "%s:%d: http_max_connections = %zu", cfg->path,
                     cfg->http_max_connections_line, cfg->http_max_connections);
        } else {
            snprintf(where, sizeof(where), "%s: [server] http", cfg->path);
        }
        snprintf(err, errlen,
                 "%s: no file descriptor is left for HTTP: RLIMIT_NOFILE is %llu and the job port "
                 "reserves %llu (max_connections %zu + %zu listeners + %d for the database + 3 "
                 "per running job x %llu + %d spare); raise the limit (ulimit -n, systemd "
                 "LimitNOFILE=), lower max_connections, or turn HTTP off (http =)",
                 where, nofile, reserved, cfg->max_connections, cfg->nlisten, DB_FDS, jobs,
                 FD_MARGIN);
        return -1;
    }
    if ((unsigned long long)left < cfg->http_max_connections) {
        log_warn("http_connections_clamped",
                 "configured=%zu allowed=%lld nofile=%llu reserved=%llu", cfg->http_max_connections,
                 left, nofile, reserved);
        cfg->http_max_connections = (size_t)left;
    }
    return 0;
}

/* ---- reload (SIGHUP) ----
 * The file is read and validated whole; a bad one changes nothing. The new queue and schedule
 * sections replace those of the config in use (s->cfg, whose [server] settings stay: they
 * need a restart, and each one that differs is logged). The replaced sections are kept until
 * jobqd exits: queues, running jobs and schedules in flight point into them. */
static uv_signal_t reload_sig;
static config **retired; /* configs holding replaced sections */
static size_t nretired;

/* str_differs: whether two optional settings differ. */
static bool
str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* needs_restart: logs each [server] setting of b that differs from a's (in use). */
static void
needs_restart(const config *a, const config *b)
{
    bool listen = a->nlisten != b->nlisten;
    for (size_t i = 0; !listen && i < a->nlisten; i++) {
        listen = strcmp(a->listen[i], b->listen[i]) != 0;
    }
    const struct {
        const char *key;
        bool differs;
    } keys[] = {
        {"listen", listen},
        {"database", str_differs(a->database, b->database) || a->store != b->store},
        {"http", str_differs(a->http, b->http)},
        {"auth_token", str_differs(a->auth_token, b->auth_token)},
        {"read_token", str_differs(a->read_token, b->read_token)},
        {"http_tls_cert", str_differs(a->http_tls_cert, b->http_tls_cert) ||
                              str_differs(a->http_tls_key, b->http_tls_key)},
        {"tls_cert", str_differs(a->tls_cert, b->tls_cert) || str_differs(a->tls_key, b->tls_key) ||
                         str_differs(a->tls_ca, b->tls_ca)},
        {"user", str_differs(a->user, b->user)},
        {"durability", a->durability != b->durability},
        {"shutdown_grace", a->shutdown_grace_ms != b->shutdown_grace_ms},
        {"log_level", a->log_level != b->log_level},
        {"allow_unknown_queues", a->allow_unknown_queues != b->allow_unknown_queues},
        {"max_message", a->max_message != b->max_message},
        {"max_payload", a->max_payload != b->max_payload},
        {"max_batch", a->max_batch != b->max_batch},
        {"max_waits", a->max_waits != b->max_waits ||
                          a->max_waits_per_connection != b->max_waits_per_connection},
        {"max_connections", a->max_connections != b->max_connections},
        {"max_queues", a->max_queues != b->max_queues},
        {"max_unauthenticated_message",
         a->max_unauthenticated_message != b->max_unauthenticated_message},
        {"read_timeout", a->read_timeout_ms != b->read_timeout_ms},
        {"idle_timeout", a->idle_timeout_ms != b->idle_timeout_ms},
        {"max_buffered", a->max_buffered != b->max_buffered},
        {"http_timeout", a->http_timeout_ms != b->http_timeout_ms},
        {"http_max_per_ip", a->http_max_per_ip != b->http_max_per_ip},
        {"http_max_request", a->http_max_request != b->http_max_request},
        {"backup_dir", str_differs(a->backup_dir, b->backup_dir)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].differs) {
            log_warn("reload_needs_restart",
                     "key=%s reason=\"[server] %s changed: it takes effect when jobqd restarts\"",
                     keys[i].key, keys[i].key);
        }
    }
}

/* One reload: the file read and checked, and the https queues' TLS settings made (CA files
 * read), on the thread pool; the swap on the loop. */
typedef struct reload_job {
    uv_work_t work;
    server *s;
    char *path;
    config *nc;
    struct nng_tls_config **tls; /* per queue section of nc (NULL: not https) */
    int rc;
    char err[1024];
} reload_job;
static bool reloading;

static void
reload_job_free(reload_job *j)
{
    for (size_t i = 0; j->tls != NULL && j->nc != NULL && i < j->nc->nqueues; i++) {
        webhook_tls_free(j->tls[i]);
    }
    free(j->tls);
    config_free(j->nc);
    free(j->path);
    free(j);
}

static void
reload_work(uv_work_t *w)
{
    reload_job *j = container_of(w, reload_job, work);
    j->rc = config_load(j->path, &j->nc, j->err, sizeof(j->err));
    if (j->rc != 0) {
        return;
    }
    j->tls = calloc(j->nc->nqueues > 0 ? j->nc->nqueues : 1, sizeof(*j->tls));
    if (j->tls == NULL) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        j->rc = -1;
        return;
    }
    for (size_t i = 0; j->rc == 0 && i < j->nc->nqueues; i++) {
        j->rc = webhook_tls_make(&j->nc->queues[i], &j->tls[i], j->err, sizeof(j->err));
    }
}

static void
reload_after(uv_work_t *w, int status)
{
    reload_job *j = container_of(w, reload_job, work);
    server *s = j->s;
    char q[1100];
    reloading = false;
    if (status != 0 || s->draining) {
        log_warn("reload_ignored", "reason=\"jobqd is shutting down\"");
        reload_job_free(j);
        return;
    }
    config **grown = j->rc == 0 ? realloc(retired, (nretired + 1) * sizeof(*grown)) : NULL;
    if (j->rc == 0 && grown == NULL) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        j->rc = -1;
    }
    if (j->rc != 0) {
        log_error("reload_refused", "reason=%s config=unchanged", log_quote(q, sizeof(q), j->err));
        reload_job_free(j);
        return;
    }
    retired = grown;
    config *nc = j->nc;
    needs_restart(s->cfg, nc);
    config *cur = s->cfg;
    queue_conf *qs = cur->queues;
    size_t nq = cur->nqueues;
    schedule_conf *ss = cur->schedules;
    size_t ns = cur->nschedules;
    cur->queues = nc->queues;
    cur->nqueues = nc->nqueues;
    cur->schedules = nc->schedules;
    cur->nschedules = nc->nschedules;
    nc->queues = qs; /* the replaced sections, kept (see above) */
    nc->nqueues = nq;
    nc->schedules = ss;
    nc->nschedules = ns;
    retired[nretired++] = nc;
    queues_reload(s);
    /* Each queue of the file gets the TLS settings made for its section (none but https). */
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *qs_i = s->queues[i];
        if (qs_i->conf >= cur->queues && qs_i->conf < cur->queues + cur->nqueues) {
            size_t k = (size_t)(qs_i->conf - cur->queues);
            webhook_tls_set(qs_i, j->tls[k]);
            j->tls[k] = NULL;
        }
    }
    for (size_t k = 0; k < cur->nqueues; k++) {
        webhook_tls_free(j->tls[k]); /* a section no queue took */
    }
    free(j->tls);
    free(j->path);
    free(j);
    periodic_reload(s);
    sched_dispatch_all(s);
    log_info("reloaded", "path=%s queues=%zu schedules=%zu", log_quote(q, sizeof(q), cur->path),
             cur->nqueues, cur->nschedules);
}

static void
reload_cb(uv_signal_t *h, int signum)
{
    (void)signum;
    server *s = h->data;
    if (s->draining) {
        log_warn("reload_ignored", "reason=\"jobqd is shutting down\"");
        return;
    }
    if (reloading) {
        log_warn("reload_ignored", "reason=\"a reload is in progress: send SIGHUP again after "
                                   "its reloaded or reload_refused line\"");
        return;
    }
    reload_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->path = strdup(s->cfg->path)) == NULL) {
        free(j);
        log_error("reload_refused", "reason=\"out of memory\"");
        return;
    }
    j->s = s;
    if (uv_queue_work(s->loop, &j->work, reload_work, reload_after) != 0) {
        reload_job_free(j);
        log_error("reload_refused", "reason=\"cannot queue the reload on the thread pool\"");
        return;
    }
    reloading = true;
}

static int
reload_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    uv_signal_init(s->loop, &reload_sig);
    reload_sig.data = s;
    return 0;
}

static void
reload_start(server *s)
{
    (void)s;
    uv_signal_start(&reload_sig, reload_cb, SIGHUP);
    uv_unref((uv_handle_t *)&reload_sig); /* it keeps no loop alive */
}

static void
reload_close(server *s)
{
    (void)s;
    uv_close((uv_handle_t *)&reload_sig, NULL);
}

static void
reload_free(server *s)
{
    (void)s;
    for (size_t i = 0; i < nretired; i++) {
        config_free(retired[i]);
    }
    free(retired);
    retired = NULL;
    nretired = 0;
}

static const server_part reload_part = {.name = "reload",
                                        .init = reload_init,
                                        .start = reload_start,
                                        .close = reload_close,
                                        .free = reload_free};

int
main(int argc, char **argv)
{
    const char *path = "/etc/jobq/jobq.conf";
    bool check_only = false;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'V':
            printf("jobqd %s (schema %d, sqlite %s, libuv %s)\n", JOBQ_VERSION_STRING,
                   migrate_latest(), sqlite3_libversion(), uv_version_string());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "jobqd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    char err[1024];
    config *cfg = NULL;
    if (config_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        return 1;
    }
    privs pv;
    if (privs_resolve(cfg, !check_only, &pv, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        config_free(cfg);
        return 1;
    }
    if (check_only) {
        printf("%s: ok (%zu queue%s)\n", path, cfg->nqueues, cfg->nqueues == 1 ? "" : "s");
        config_free(cfg);
        return 0;
    }
    log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (fd_budget(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        config_free(cfg);
        return 1;
    }

    store *st = NULL;
    if (store_open(cfg->database, cfg->durability, &st, err, sizeof(err)) != JOBQ_OK) {
        fprintf(stderr, "jobqd: %s%s\n", err,
                cfg->store == STORE_POSTGRES ? ""
                                             : " (does the directory exist and is it writable?)");
        config_free(cfg);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    server srv;
    int code = 0;
    if (server_init(&srv, &loop, cfg, st, parts, sizeof(parts) / sizeof(parts[0]), err,
                    sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        code = 1; /* the loop only runs the close callbacks of what was opened */
        uv_walk(&loop, close_walk_cb, NULL);
    } else if (privs_chown_files(&pv, cfg, err, sizeof(err)) != 0 ||
               privs_drop(&pv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        code = 1;
        server_drain(&srv); /* nothing runs yet: this only closes the listeners */
    } else {
        char q[512], db[512];
        server_start(&srv);
        store_redact(cfg->database, db, sizeof(db)); /* a URL may carry a password */
        log_info("ready", "version=%s database=%s durability=%s queues=%zu uid=%lu gid=%lu",
                 JOBQ_VERSION_STRING, log_quote(q, sizeof(q), db),
                 cfg->durability == DURABILITY_FULL ? "full" : "normal", cfg->nqueues,
                 (unsigned long)geteuid(), (unsigned long)getegid());
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    server_free(&srv);
    int rc = uv_loop_close(&loop);
    if (rc != 0) {
        log_error("loop_close", "err=%s", uv_strerror(rc));
    }
    store_close(st);
    log_info("stopped", "code=%d", code);
    config_free(cfg);
    return code;
}
