/* store.c: the backend-neutral part of the store: picks the backend by the `database`
 * setting, forwards each operation to it, and keeps the effects list. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store_common.h"

bool
store_is_postgres(const char *database)
{
    return config_database_is_postgres(database); /* the one rule, config.c's */
}

int
store_open(const char *path, enum durability durability, store **stp, char *err, size_t errlen)
{
    if (store_is_postgres(path)) {
#ifdef JOBQ_HAVE_POSTGRES
        return store_pg_open(path, durability, stp, err, errlen);
#else
        snprintf(err, errlen,
                 "[server] database is a PostgreSQL URL but this jobqd was built without "
                 "PostgreSQL (libpq); rebuild with libpq-dev installed and -DJOBQ_POSTGRES=ON");
        return JOBQ_EINVAL;
#endif
    }
    return store_sqlite_open(path, durability, stp, err, errlen);
}

int
store_backup(const char *db_path, const char *dest, char *err, size_t errlen)
{
    if (store_is_postgres(db_path)) {
        snprintf(err, errlen,
                 "backup is unsupported for a PostgreSQL database: use pg_dump (or "
                 "pg_basebackup) against the server, which owns backups");
        return JOBQ_EINVAL;
    }
    return store_sqlite_backup(db_path, dest, err, errlen);
}

void
store_redact(const char *database, char *buf, size_t len)
{
    /* postgresql://user:password@host/...: the password goes; key=value strings say
     * password=... and go whole. */
    const char *scheme = strstr(database, "://");
    if (!store_is_postgres(database) || scheme == NULL) {
        snprintf(buf, len, "%s", strstr(database, "password") != NULL ? "(redacted)" : database);
        return;
    }
    const char *auth = scheme + 3;
    const char *at = strchr(auth, '@');
    const char *colon = strchr(auth, ':');
    const char *slash = strchr(auth, '/');
    if (at != NULL && colon != NULL && colon < at && (slash == NULL || at < slash)) {
        snprintf(buf, len, "%.*s:***%s", (int)(colon - database), database, at);
    } else {
        snprintf(buf, len, "%s", database);
    }
    char *pw = strstr(buf, "password=");
    if (pw != NULL) {
        snprintf(pw, len - (size_t)(pw - buf), "password=***");
    }
}

void
store_close(store *st)
{
    if (st == NULL) {
        return;
    }
    store_effects_free(st->effects, st->neffects);
    st->effects = NULL;
    st->neffects = st->capeffects = 0;
    st->ops->close(st);
}

const char *
store_errmsg(const store *st)
{
    return st != NULL ? st->ops->errmsg(st) : "no database";
}

/* ---- effects ---- */

size_t
store_effects_mark(const store *st)
{
    return st->neffects;
}

void
store_effects_free(store_effect *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].queue);
        job_row_clear(&e[i].row);
    }
    free(e);
}

void
store_effects_undo(store *st, size_t mark)
{
    while (st->neffects > mark) {
        store_effect *e = &st->effects[--st->neffects];
        free(e->queue);
        job_row_clear(&e->row);
    }
}

store_effect *
store_effects_take(store *st, size_t *np)
{
    store_effect *e = st->effects;
    *np = st->neffects;
    st->effects = NULL;
    st->neffects = st->capeffects = 0;
    return e;
}

store_effect *
store_effect_add(store *st, effect_kind kind, int64_t id)
{
    if (store_grow(&st->effects, &st->capeffects, st->neffects, sizeof(*st->effects), 16) !=
        JOBQ_OK) {
        return NULL;
    }
    store_effect *e = &st->effects[st->neffects++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->id = id;
    e->from = -1;
    return e;
}

/* ---- forwarding to the backend ---- */

void
store_set_sync(store *st, bool sync)
{
    st->ops->set_sync(st, sync);
}

bool
store_sync_apart(const store *st)
{
    return st->ops->sync_apart != NULL && st->ops->sync != NULL && st->ops->sync_apart(st);
}

int
store_sync(store *st, char *msg, size_t msglen)
{
    if (st->ops->sync == NULL) {
        return JOBQ_OK; /* its commits are durable on return */
    }
    return st->ops->sync(st, msg, msglen);
}

int
store_checkpoint(store *st, char *msg, size_t msglen)
{
    return st->ops->checkpoint != NULL ? st->ops->checkpoint(st, msg, msglen) : JOBQ_OK;
}

int
store_begin(store *st)
{
    return st->ops->begin(st);
}

int
store_commit(store *st)
{
    return st->ops->commit(st);
}

void
store_rollback(store *st)
{
    st->ops->rollback(st);
}

int
store_savepoint(store *st)
{
    return st->ops->savepoint(st);
}

void
store_release(store *st)
{
    st->ops->release(st);
}

void
store_rollback_savepoint(store *st)
{
    st->ops->rollback_savepoint(st);
}

bool
store_in_transaction(const store *st)
{
    return st->ops->in_transaction(st);
}

int
store_job_insert(store *st, const job_spec *spec, int state, int64_t now_ms, int64_t finished_at_ms,
                 const char *error, int64_t *idp)
{
    return st->ops->job_insert(st, spec, state, now_ms, finished_at_ms, error, idp);
}

int
store_job_state(store *st, int64_t id, int *statep)
{
    return st->ops->job_state(st, id, statep);
}

int
store_job_set_state(store *st, int64_t id, int from, int to, int64_t finished_at_ms,
                    const char *error)
{
    return st->ops->job_set_state(st, id, from, to, finished_at_ms, error);
}

int
store_get(store *st, int64_t id, job_row *row)
{
    return st->ops->get(st, id, row);
}

int
store_list(store *st, const list_filter *f, job_row *rows, size_t *np, bool *morep)
{
    return st->ops->list(st, f, rows, np, morep);
}

int
store_count_each(store *st, void (*fn)(void *arg, const char *queue, int state, int64_t n),
                 void *arg)
{
    return st->ops->count_each(st, fn, arg);
}

int
store_paused_each(store *st, void (*fn)(void *arg, const char *queue), void *arg)
{
    return st->ops->paused_each(st, fn, arg);
}

int
store_set_paused(store *st, const char *queue, bool paused)
{
    return st->ops->set_paused(st, queue, paused);
}

/* What store_claim gathers of the claimed jobs' parents: one object per job, built in id
 * order of the parents, each capped at STORE_PARENT_RESULTS_MAX bytes of JSON text. */
typedef struct parents_acc {
    job_row *rows;
    size_t n;
    json_t **objs; /* per row; NULL: no parent seen */
    size_t *bytes; /* per row: the object's text length so far */
    bool oom;
} parents_acc;

static void
parents_acc_cb(void *arg, int64_t id, int64_t parent, const char *result)
{
    parents_acc *a = arg;
    size_t i = 0;
    while (i < a->n && a->rows[i].id != id) {
        i++;
    }
    if (i == a->n) {
        return;
    }
    if (a->objs[i] == NULL && (a->objs[i] = json_object()) == NULL) {
        a->oom = true;
        return;
    }
    char key[24];
    snprintf(key, sizeof(key), "%lld", (long long)parent);
    json_t *v = result != NULL ? json_string(result) : json_null();
    if (v == NULL) {
        v = json_null(); /* not UTF-8: the codec keeps results as strings; say nothing */
    }
    /* "key": value, plus the braces or a comma: the exact size of the compact encoding. */
    size_t vlen = json_dumpb(v, NULL, 0, JSON_ENCODE_ANY | JSON_COMPACT);
    size_t add = strlen(key) + 3 + vlen + 1;
    if (a->bytes[i] + add + 1 > STORE_PARENT_RESULTS_MAX) {
        json_decref(v);
        v = json_null();
        add = strlen(key) + 3 + 4 + 1;
    }
    a->bytes[i] += add;
    json_object_set_new(a->objs[i], key, v);
}

/* with_parents: the n rows just claimed get their parents' results (parent_results); on
 * an error they are cleared. */
static int
with_parents(store *st, job_row *rows, size_t n, size_t *np)
{
    int err = JOBQ_OK;
    if (n == 0) {
        *np = 0;
        return JOBQ_OK;
    }
    int64_t *ids = malloc(n * sizeof(*ids));
    parents_acc a = {.rows = rows,
                     .n = n,
                     .objs = calloc(n, sizeof(*a.objs)),
                     .bytes = calloc(n, sizeof(*a.bytes))};
    if (ids == NULL || a.objs == NULL || a.bytes == NULL) {
        err = JOBQ_ENOMEM;
    } else {
        for (size_t i = 0; i < n; i++) {
            ids[i] = rows[i].id;
            a.bytes[i] = 1; /* "{" */
        }
        err = st->ops->parents_of(st, ids, n, parents_acc_cb, &a);
    }
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        if (a.objs[i] != NULL) {
            rows[i].parent_results = json_dumps(a.objs[i], JSON_COMPACT | JSON_SORT_KEYS);
            if (rows[i].parent_results == NULL) {
                a.oom = true;
            }
        }
    }
    if (err == JOBQ_OK && a.oom) {
        err = JOBQ_ENOMEM;
    }
    for (size_t i = 0; a.objs != NULL && i < n; i++) {
        json_decref(a.objs[i]);
    }
    free(a.objs);
    free(a.bytes);
    free(ids);
    if (err != JOBQ_OK) {
        for (size_t i = 0; i < n; i++) {
            job_row_clear(&rows[i]);
        }
        return err;
    }
    *np = n;
    return JOBQ_OK;
}

int
store_claim(store *st, const char *queue, int64_t now_ms, size_t max, job_row *rows, size_t *np)
{
    size_t n = 0;
    int err = st->ops->claim(st, queue, now_ms, max, rows, &n);
    return err != JOBQ_OK ? err : with_parents(st, rows, n, np);
}

int
store_claim_keys(store *st, const char *queue, int64_t now_ms, size_t max, const key_limits *kl,
                 job_row *rows, size_t *np, key_claim_info *info)
{
    size_t n = 0;
    int err = st->ops->claim_keys(st, queue, now_ms, max, kl, rows, &n, info);
    return err != JOBQ_OK ? err : with_parents(st, rows, n, np);
}

int
store_key_running(store *st, const char *queue, const char *group_key, int64_t limit, int64_t *np)
{
    return st->ops->key_running(st, queue, group_key, limit, np);
}

int
store_key_hold(store *st, const char *queue, const char *group_key, int64_t until_ms)
{
    return st->ops->key_hold(st, queue, group_key, until_ms);
}

int
store_running(store *st, job_row **rowsp, size_t *np)
{
    return st->ops->running(st, rowsp, np);
}

int
store_job_finish(store *st, int64_t id, int new_state, int64_t finished_at_ms, int64_t run_at_ms,
                 const char *result, const char *error)
{
    return st->ops->job_finish(st, id, new_state, finished_at_ms, run_at_ms, result, error);
}

int
store_jobs_end(store *st, job_end *ends, size_t n, int64_t now_ms)
{
    if (st->ops->jobs_end != NULL) {
        return st->ops->jobs_end(st, ends, n, now_ms);
    }
    for (size_t i = 0; i < n; i++) {
        job_end *e = &ends[i];
        e->err = store_job_end(st, e->id, e->new_state, now_ms, e->run_at_ms, e->result, e->error,
                               &e->a, &e->gid, &e->kids);
        if (e->err != JOBQ_OK && e->err != JOBQ_ESTATE) {
            return e->err;
        }
    }
    return JOBQ_OK;
}

int
store_jobs_insert(store *st, const job_spec *specs, const int *states, size_t n, int64_t now_ms,
                  int64_t *ids)
{
    if (st->ops->jobs_insert != NULL) {
        return st->ops->jobs_insert(st, specs, states, n, now_ms, ids);
    }
    for (size_t i = 0; i < n; i++) {
        int err = st->ops->job_insert(st, &specs[i], states[i], now_ms, 0, NULL, &ids[i]);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

int
store_job_end(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
              const char *result, const char *error, const attempt_rec *a, int64_t *gidp,
              bool *kidsp)
{
    *gidp = 0;
    *kidsp = false;
    if (st->ops->job_end != NULL) {
        return st->ops->job_end(st, id, new_state, now_ms, run_at_ms, result, error, a, gidp,
                                kidsp);
    }
    bool end = store_state_ends(new_state);
    int err = st->ops->job_finish(st, id, new_state, end ? now_ms : 0,
                                  new_state == JOBQ_RETRYING ? run_at_ms : 0, result, error);
    if (err == JOBQ_OK && a != NULL) {
        err = st->ops->attempt_add(st, id, a, now_ms, error);
    }
    if (err != JOBQ_OK || !end) {
        return err;
    }
    if ((err = st->ops->key_release(st, id)) != JOBQ_OK) {
        return err;
    }
    *kidsp = true; /* not looked at here: the caller's store_dep_children does */
    err = st->ops->group_of(st, id, gidp);
    return err == JOBQ_ENOENT ? JOBQ_OK : err;
}

int
store_requeue(store *st, int64_t id, int64_t now_ms, const char *error, const attempt_rec *a)
{
    return st->ops->requeue(st, id, now_ms, error, a);
}

int
store_promote_due(store *st, int64_t now_ms, size_t max,
                  void (*fn)(void *arg, const char *queue, int old_state), void *arg, size_t *np)
{
    return st->ops->promote_due(st, now_ms, max, fn, arg, np);
}

int
store_next_due(store *st, int64_t *atp)
{
    return st->ops->next_due(st, atp);
}

int
store_retry(store *st, int64_t id, int64_t now_ms, job_row *row, int *old_statep)
{
    return st->ops->retry(st, id, now_ms, row, old_statep);
}

int
store_retry_bulk(store *st, const char *queue, int state, int64_t now_ms, size_t max,
                 void (*fn)(void *arg, const char *queue), void *arg, size_t *np)
{
    return st->ops->retry_bulk(st, queue, state, now_ms, max, fn, arg, np);
}

int
store_ready_ahead(store *st, const job_row *row, int64_t limit, int64_t *np)
{
    return st->ops->ready_ahead(st, row, limit, np);
}

int
store_max_id(store *st, int64_t *idp)
{
    return st->ops->max_id(st, idp);
}

int
store_pick(store *st, const job_filter *f, int64_t after_id, int64_t upto_id, size_t max,
           void (*fn)(void *arg, int64_t id, const char *queue, int state), void *arg, size_t *np)
{
    return st->ops->pick(st, f, after_id, upto_id, max, fn, arg, np);
}

int
store_job_delete(store *st, int64_t id, int from)
{
    return st->ops->job_delete(st, id, from);
}

int
store_job_set_priority(store *st, int64_t id, int from, int32_t priority)
{
    return st->ops->job_set_priority(st, id, from, priority);
}

int
store_job_set_run_at(store *st, int64_t id, int from, int to, int64_t run_at_ms)
{
    return st->ops->job_set_run_at(st, id, from, to, run_at_ms);
}

int
store_attempt_add(store *st, int64_t id, const attempt_rec *a, int64_t now_ms, const char *error)
{
    return st->ops->attempt_add(st, id, a, now_ms, error);
}

int
store_attempt_count(store *st, int64_t id, const char *kind, int64_t *np)
{
    return st->ops->attempt_count(st, id, kind, np);
}

int
store_attempts(store *st, int64_t id, attempt_row *rows, size_t max, size_t *np)
{
    return st->ops->attempts(st, id, rows, max, np);
}

int
store_job_progress(store *st, int64_t id, const progress_set *p)
{
    return st->ops->job_progress(st, id, p);
}

int
store_log_append(store *st, int64_t id, int32_t attempt, int64_t at_ms, const char *const *lines,
                 size_t n, size_t max_lines, size_t max_bytes, int64_t *last_seqp)
{
    return st->ops->log_append(st, id, attempt, at_ms, lines, n, max_lines, max_bytes,
                               last_seqp);
}

int
store_logs(store *st, int64_t id, int64_t after_seq, log_row *rows, size_t max, size_t *np)
{
    return st->ops->logs(st, id, after_seq, rows, max, np);
}

int
store_key_find(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
               int64_t *created_at_msp)
{
    return st->ops->key_find(st, queue, key, idp, hashp, created_at_msp);
}

int
store_key_add(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
              int64_t now_ms)
{
    return st->ops->key_add(st, queue, key, id, hash, now_ms);
}

int
store_key_delete(store *st, const char *queue, const char *key)
{
    return st->ops->key_delete(st, queue, key);
}

int
store_dep_add(store *st, int64_t parent, int64_t child)
{
    return st->ops->dep_add(st, parent, child);
}

int
store_dep_children(store *st, int64_t parent, int64_t **idsp, size_t *np)
{
    return st->ops->dep_children(st, parent, idsp, np);
}

int
store_dep_drop_parent(store *st, int64_t parent)
{
    return st->ops->dep_drop_parent(st, parent);
}

int
store_dep_drop_child(store *st, int64_t id)
{
    return st->ops->dep_drop_child(st, id);
}

int
store_dep_pending(store *st, int64_t id, bool *waitsp)
{
    return st->ops->dep_pending(st, id, waitsp);
}

int
store_dep_job(store *st, int64_t id, int *statep, bool *alwaysp, int64_t *run_at_msp)
{
    return st->ops->dep_job(st, id, statep, alwaysp, run_at_msp);
}

int
store_waiting_for(store *st, int64_t id, int64_t *ids, size_t max, size_t *np)
{
    return st->ops->waiting_for(st, id, ids, max, np);
}

int
store_sweep(store *st, const char *queue, int state, int64_t before_ms, size_t max, size_t *np)
{
    return st->ops->sweep(st, queue, state, before_ms, max, np);
}

int
store_sweep_groups(store *st, int64_t before_ms, size_t max, size_t *np)
{
    return st->ops->sweep_groups(st, before_ms, max, np);
}

int
store_sweep_keys(store *st, const char *queue, int64_t before_ms, size_t max, size_t *np)
{
    return st->ops->sweep_keys(st, queue, before_ms, max, np);
}

int
store_oldest_finished(store *st, const char *queue, int state, int64_t *atp)
{
    return st->ops->oldest_finished(st, queue, state, atp);
}

int
store_oldest_due(store *st, const char *queue, int64_t now_ms, int64_t *readyp, int64_t *overduep)
{
    return st->ops->oldest_due(st, queue, now_ms, readyp, overduep);
}

int
store_oldest_key(store *st, const char *queue, int64_t *atp)
{
    return st->ops->oldest_key(st, queue, atp);
}

int
store_recent(store *st, const char *queue, int state, job_row *rows, size_t max, size_t *np)
{
    return st->ops->recent(st, queue, state, rows, max, np);
}

int
store_group_create(store *st, const group_spec *g, int64_t now_ms, int64_t *gidp)
{
    return st->ops->group_create(st, g, now_ms, gidp);
}

int
store_group_of(store *st, int64_t id, int64_t *gidp)
{
    return st->ops->group_of(st, id, gidp);
}

int
store_group_ended(store *st, int64_t gid, group_oc *oc)
{
    return st->ops->group_ended(st, gid, oc);
}

int
store_group_complete(store *st, int64_t gid, int64_t now_ms, int64_t oc_job_id)
{
    return st->ops->group_complete(st, gid, now_ms, oc_job_id);
}

int
store_group_get(store *st, int64_t gid, bool members, group_info *g)
{
    return st->ops->group_get(st, gid, members, g);
}

int
store_schedule_last(store *st, const char *name, int64_t *tickp)
{
    return st->ops->schedule_last(st, name, tickp);
}

int
store_schedule_set(store *st, const char *name, int64_t tick_ms)
{
    return st->ops->schedule_set(st, name, tick_ms);
}

int
store_schedule_since(store *st, const char *name, int64_t now_ms, int64_t *sincep)
{
    return st->ops->schedule_since(st, name, now_ms, sincep);
}

int
store_parents_add(store *st, int64_t child, int64_t parent)
{
    return st->ops->parents_add(st, child, parent);
}

int
store_parents_settle(store *st, int64_t parent)
{
    return st->ops->parents_settle(st, parent);
}

int
store_parents_of(store *st, const int64_t *ids, size_t n,
                 void (*fn)(void *arg, int64_t id, int64_t parent, const char *result), void *arg)
{
    return st->ops->parents_of(st, ids, n, fn, arg);
}

int
store_sdef_list(store *st, sched_def **defsp, size_t *np)
{
    return st->ops->sdef_list(st, defsp, np);
}

int
store_sdef_put(store *st, const sched_def *d, int64_t now_ms)
{
    return st->ops->sdef_put(st, d, now_ms);
}

int
store_sdef_delete(store *st, const char *name)
{
    return st->ops->sdef_delete(st, name);
}

int
store_sstate_get(store *st, const char *name, bool *pausedp, int64_t *last_jobp)
{
    return st->ops->sstate_get(st, name, pausedp, last_jobp);
}

int
store_sstate_set_paused(store *st, const char *name, bool paused)
{
    return st->ops->sstate_set_paused(st, name, paused);
}

int
store_sstate_set_job(store *st, const char *name, int64_t job_id)
{
    return st->ops->sstate_set_job(st, name, job_id);
}

int
store_key_lock(store *st, const char *queue, const char *key, int64_t *idp, uint64_t *hashp,
               int64_t *created_at_msp, bool *heldp)
{
    return st->ops->key_lock(st, queue, key, idp, hashp, created_at_msp, heldp);
}

int
store_key_put(store *st, const char *queue, const char *key, int64_t id, uint64_t hash,
              int64_t created_ms, bool held)
{
    return st->ops->key_put(st, queue, key, id, hash, created_ms, held);
}

int
store_key_release(store *st, int64_t id)
{
    return st->ops->key_release(st, id);
}

int
store_job_replace(store *st, int64_t id, int from, int to, const char *payload, int64_t run_at_ms)
{
    return st->ops->job_replace(st, id, from, to, payload, run_at_ms);
}

int
store_job_set_expiry(store *st, int64_t id, int64_t at_ms)
{
    return st->ops->job_set_expiry(st, id, at_ms);
}

int
store_job_expiry(store *st, int64_t id, int64_t *at_msp)
{
    return st->ops->job_expiry(st, id, at_msp);
}

int
store_expired(store *st, const char *queue, int64_t now_ms, size_t max, int64_t *ids, size_t *np)
{
    return st->ops->expired(st, queue, now_ms, max, ids, np);
}

int
store_next_expiry(store *st, int64_t *atp)
{
    return st->ops->next_expiry(st, atp);
}

int
store_job_snooze(store *st, int64_t id, int64_t run_at_ms, const char *error)
{
    return st->ops->job_snooze(st, id, run_at_ms, error);
}
