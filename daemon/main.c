/* main.c: jobqd's entry point: options, config, store, then the loop until drained. */
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "privs.h"
#include "server.h"
#include "store.h"

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

    store *st = NULL;
    if (store_open(cfg->database, cfg->durability, &st, err, sizeof(err)) != JOBQ_OK) {
        fprintf(stderr, "jobqd: %s (does the directory exist and is it writable?)\n", err);
        config_free(cfg);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    server srv;
    int code = 0;
    if (server_init(&srv, &loop, cfg, st, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        code = 1; /* the loop only runs the close callbacks of what was opened */
        uv_walk(&loop, close_walk_cb, NULL);
    } else if (privs_chown_files(&pv, cfg, err, sizeof(err)) != 0 ||
               privs_drop(&pv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "jobqd: %s\n", err);
        code = 1;
        server_drain(&srv); /* nothing runs yet: this only closes the listeners */
    } else {
        char q[512];
        server_start(&srv);
        log_info("ready", "version=%s database=%s durability=%s queues=%zu uid=%lu gid=%lu",
                 JOBQ_VERSION_STRING, log_quote(q, sizeof(q), cfg->database),
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
