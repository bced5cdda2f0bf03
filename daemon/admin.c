/* admin.c: the ops on jobqd and its queues: ping, stats, schedules, pause and resume, backup.
 * Loop thread; a backup runs on the thread pool. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "cluster.h"
#include "codec.h"
#include "handlers.h"
#include "log.h"
#include "monitor.h"
#include "periodic.h"
#include "scheduler.h"

void
op_ping(call *c)
{
    json_t *o = ok_object();
    json_object_set_new(o, "version", json_string(JOBQ_VERSION_STRING));
    json_object_set_new(o, "time", json_integer(jobq__now_ms()));
    send_json(c, o);
}

void
op_schedules(call *c)
{
    json_t *o = ok_object();
    json_object_set_new(o, "schedules", periodic_json(c->srv));
    send_json(c, o);
}

/* reply_stats: counts, paused and breaker of every queue, or of the queues the request
 * names (at most STATS_MAX_QUEUES; unknown ones are left out); with "series", totals, rates
 * and per-second series too. Only the plain reply of every queue, which may list thousands,
 * is written without building a JSON tree. */
void
op_stats(call *c)
{
    server *s = c->srv;
    size_t n = c->req.stats_some ? c->req.nqueues : s->nqueues;
    if (c->req.series || c->req.stats_some) {
        json_t *o = ok_object();
        json_t *queues = json_object();
        for (size_t i = 0; i < n; i++) {
            qstate *q = c->req.stats_some ? queue_find(s, c->req.queues[i]) : s->queues[i];
            if (q != NULL) {
                json_object_set_new(queues, q->name, monitor_queue_json(s, q, c->req.series));
            }
        }
        json_object_set_new(o, "queues", queues);
        json_t *cl = cluster_json(s);
        if (cl != NULL) {
            json_object_set_new(o, "cluster", cl);
        }
        send_json(c, o);
        return;
    }
    mbuf b = {0};
    mbuf_printf(&b, "{\"ok\":true,\"queues\":{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            mbuf_append(&b, ",", 1);
        }
        monitor_queue_counts(&b, s->queues[i]);
    }
    mbuf_printf(&b, "}");
    json_t *cl = cluster_json(s);
    char *cls = cl != NULL ? json_dumps(cl, JSON_COMPACT) : NULL;
    json_decref(cl);
    if (cls != NULL) {
        mbuf_printf(&b, ",\"cluster\":%s", cls); /* this node, its role, the leader */
        free(cls);
    }
    mbuf_printf(&b, "}");
    if (b.failed) {
        free(b.p);
        reply_error(c, "internal", "out of memory");
        return;
    }
    intake_reply(c->ic, b.p, b.len);
    free(b.p);
    call_free(c);
}

static int
exec_pause(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    return store_set_paused(st, c->req.queue, c->req.op == REQ_PAUSE);
}

static void
done_pause(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
        return;
    }
    qstate *q = queue_add(c->srv, c->req.queue);
    if (q != NULL) {
        q->paused = c->req.op == REQ_PAUSE;
        sched_dispatch(c->srv, q);
    }
    log_info(c->req.op == REQ_PAUSE ? "queue_paused" : "queue_resumed", "queue=%s", c->req.queue);
    json_t *o = ok_object();
    json_object_set_new(o, "queue", json_string(c->req.queue));
    json_object_set_new(o, "paused", json_boolean(c->req.op == REQ_PAUSE));
    send_json(c, o);
}

/* A backup runs on the thread pool with a connection of its own (the writer goes on). */
typedef struct backup_op {
    uv_work_t work;
    call *c;
    char *db_path;
    char *dir; /* where backups may go: backup_dir, or the database's directory */
    int err;
    char msg[512];
    int64_t ms;
} backup_op;

/* backup_check: whether dest is a new file inside dir: an absolute path without "." or ".."
 * components, whose folder exists and lies within dir (symbolic links resolved), and that
 * does not exist yet. Returns JOBQ_OK, or JOBQ_EINVAL with the reason in msg. Thread pool
 * (it touches the file system). */
static int
backup_check(const char *dir, const char *dest, char *msg, size_t len)
{
    if (dest[0] != '/') {
        snprintf(msg, len, "backup path %.300s is not absolute", dest);
        return JOBQ_EINVAL;
    }
    for (const char *p = dest; (p = strchr(p, '/')) != NULL; p++) {
        if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0 || strncmp(p, "/./", 3) == 0 ||
            strcmp(p, "/.") == 0) {
            snprintf(msg, len, "backup path %.300s has a \".\" or \"..\" component", dest);
            return JOBQ_EINVAL;
        }
    }
    const char *slash = strrchr(dest, '/');
    if (slash[1] == '\0') {
        snprintf(msg, len, "backup path %.300s names a folder, not a file", dest);
        return JOBQ_EINVAL;
    }
    char folder[PATH_MAX], real_folder[PATH_MAX], real_dir[PATH_MAX];
    snprintf(folder, sizeof(folder), "%.*s", slash == dest ? 1 : (int)(slash - dest), dest);
    if (realpath(dir, real_dir) == NULL) {
        snprintf(msg, len, "backup_dir %.300s is not usable: %s (set [server] backup_dir)", dir,
                 strerror(errno));
        return JOBQ_EINVAL;
    }
    if (realpath(folder, real_folder) == NULL) {
        snprintf(msg, len, "backup folder %.300s does not exist (%s)", folder, strerror(errno));
        return JOBQ_EINVAL;
    }
    size_t n = strlen(real_dir);
    bool inside = strncmp(real_folder, real_dir, n) == 0 &&
                  (real_folder[n] == '\0' || real_folder[n] == '/' || strcmp(real_dir, "/") == 0);
    if (!inside) {
        snprintf(msg, len,
                 "backup path %.150s is outside backup_dir %.150s (set [server] backup_dir)", dest,
                 real_dir);
        return JOBQ_EINVAL;
    }
    struct stat st;
    if (lstat(dest, &st) == 0) {
        snprintf(msg, len, "backup path %.300s already exists", dest);
        return JOBQ_EINVAL;
    }
    return JOBQ_OK;
}

static void
backup_work_cb(uv_work_t *w)
{
    backup_op *b = container_of(w, backup_op, work);
    int64_t t0 = jobq__now_ms();
    /* A PostgreSQL store says first that backups are the server's (pg_dump). */
    b->err = store_is_postgres(b->db_path)
                 ? JOBQ_OK
                 : backup_check(b->dir, b->c->req.path, b->msg, sizeof(b->msg));
    if (b->err == JOBQ_OK) {
        b->err = store_backup(b->db_path, b->c->req.path, b->msg, sizeof(b->msg));
    }
    b->ms = jobq__now_ms() - t0;
}

static void
backup_after_cb(uv_work_t *w, int status)
{
    backup_op *b = container_of(w, backup_op, work);
    server *s = b->c->srv;
    s->backups--;
    if (status != 0 || b->err != JOBQ_OK) {
        reply_err(b->c, status != 0 ? JOBQ_EINTERNAL : b->err, b->msg);
    } else {
        log_info("backup_written", "path=%s ms=%lld", b->c->req.path, (long long)b->ms);
        json_t *o = ok_object();
        json_object_set_new(o, "path", json_string(b->c->req.path));
        json_object_set_new(o, "ms", json_integer(b->ms));
        send_json(b->c, o);
    }
    free(b->db_path);
    free(b->dir);
    free(b);
    server_poke_drain(s);
}

/* backup_dir_dup: the folder backups may go to (malloc'd): backup_dir, or the database's. */
static char *
backup_dir_dup(const config *cfg)
{
    if (cfg->backup_dir != NULL) {
        return strdup(cfg->backup_dir);
    }
    const char *slash = strrchr(cfg->database, '/');
    if (slash == NULL) {
        return strdup(".");
    }
    return strndup(cfg->database, slash == cfg->database ? 1 : (size_t)(slash - cfg->database));
}

void
op_backup(call *c)
{
    server *s = c->srv;
    if (c->req.path == NULL) {
        reply_error(c, "invalid_argument", "backup needs a path");
        return;
    }
    backup_op *b = calloc(1, sizeof(*b));
    if (b == NULL || (b->db_path = strdup(s->cfg->database)) == NULL ||
        (b->dir = backup_dir_dup(s->cfg)) == NULL) {
        if (b != NULL) {
            free(b->db_path);
        }
        free(b);
        reply_error(c, "internal", "out of memory");
        return;
    }
    b->c = c;
    snprintf(b->msg, sizeof(b->msg), "backup failed");
    s->backups++;
    if (uv_queue_work(s->loop, &b->work, backup_work_cb, backup_after_cb) != 0) {
        s->backups--;
        free(b->db_path);
        free(b->dir);
        free(b);
        reply_error(c, "internal", "cannot start the backup");
    }
}

/* op_pause, op_resume: the dispatcher checked the queue (OPF_QUEUE). */
void
op_pause(call *c)
{
    call_store(c, exec_pause, done_pause);
}

void
op_resume(call *c)
{
    call_store(c, exec_pause, done_pause);
}
