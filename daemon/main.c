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
    &sched_part,          /* the scheduler: ready jobs start */
    &workers_part,        /* remote workers' leases and fetches */
    &webhook_part,        /* webhook deliveries */
    &runner_part,         /* local processes */
    &gauges_part,         /* the age of each queue's oldest waiting job */
    &dispatch_part,       /* the job port */
    &monitor_part,        /* the HTTP monitor */
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: jobqd [-c FILE] [--check-config] [--version]\n"
               "  -c, --config FILE   configuration file (default /etc/jobq/jobq.conf)\n"
               "      --check-config  only read and validate FILE, then exit (0 if valid)\n"
               "      --version       print the version and exit\n"
               "Signals: SIGTERM or SIGINT drain and exit 0.\n");
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
