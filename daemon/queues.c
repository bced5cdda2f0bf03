/* queues.c: the loop's registry of queues (a hash by name) and their live counts and event
 * totals. */
#include "queues.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lifecycle.h"
#include "log.h"
#include "server.h"

/* A job running during this many crashes of jobqd is dead: a suspected poison job. */
#define POISON_CRASHES 3

/* queue_hash: FNV-1a of a queue name. */
static size_t
queue_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

qstate *
queue_find(server *s, const char *name)
{
    if (s->nqbuckets == 0) {
        return NULL;
    }
    for (qstate *q = s->qbuckets[queue_hash(name) & (s->nqbuckets - 1)]; q != NULL; q = q->hnext) {
        if (strcmp(q->name, name) == 0) {
            return q;
        }
    }
    return NULL;
}

/* queue_rehash: keeps a bucket per queue at least. Returns false on out of memory. */
static bool
queue_rehash(server *s)
{
    if (s->nqueues < s->nqbuckets) {
        return true;
    }
    size_t n = s->nqbuckets ? s->nqbuckets * 2 : 64;
    qstate **b = calloc(n, sizeof(*b));
    if (b == NULL) {
        return false;
    }
    for (size_t i = 0; i < s->nqueues; i++) {
        qstate *q = s->queues[i];
        size_t k = queue_hash(q->name) & (n - 1);
        q->hnext = b[k];
        b[k] = q;
    }
    free(s->qbuckets);
    s->qbuckets = b;
    s->nqbuckets = n;
    return true;
}

qstate *
queue_add(server *s, const char *name)
{
    qstate *q = queue_find(s, name);
    if (q != NULL) {
        return q;
    }
    if (!queue_rehash(s)) {
        return NULL;
    }
    if (s->nqueues == s->capqueues) {
        size_t cap = s->capqueues ? s->capqueues * 2 : 16;
        qstate **nq = realloc(s->queues, cap * sizeof(*nq));
        if (nq == NULL) {
            return NULL;
        }
        s->queues = nq;
        s->capqueues = cap;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL || (q->name = strdup(name)) == NULL) {
        free(q);
        return NULL;
    }
    const queue_conf *qc = config_queue(s->cfg, name);
    if (qc != NULL) {
        q->conf = qc;
        q->configured = true;
    } else {
        config_queue_defaults(&q->own_conf);
        q->conf = &q->own_conf;
        s->nunconfigured++;
    }
    q->srv = s;
    breaker_rule rule = {.window = q->conf->breaker_window,
                         .min_calls = q->conf->breaker_min_calls,
                         .cooldown_ms = q->conf->breaker_cooldown_ms,
                         .probes = q->conf->breaker_probes};
    config_breaker_rates(q->conf, &rule.rate_pct, &rule.failures);
    breaker_init(&q->br, &rule);
    uv_timer_init(s->loop, &q->breaker_timer);
    q->breaker_timer.data = q;
    rate_init(&q->rate, q->conf->rate_per_s, jobq__now_ms());
    uv_timer_init(s->loop, &q->rate_timer);
    q->rate_timer.data = q;
    uv_timer_init(s->loop, &q->key_timer);
    q->key_timer.data = q;
    s->queues[s->nqueues++] = q;
    size_t k = queue_hash(name) & (s->nqbuckets - 1);
    q->hnext = s->qbuckets[k];
    s->qbuckets[k] = q;
    return q;
}

qstate *
queue_admit(server *s, const char *name, const char **code, char *msg, size_t msglen)
{
    qstate *q = queue_find(s, name);
    if (q != NULL) {
        return q;
    }
    if (!s->cfg->allow_unknown_queues) {
        *code = "unknown_queue";
        snprintf(msg, msglen,
                 "queue \"%s\" is not configured; add a [queue.%s] section to the config or set "
                 "allow_unknown_queues = true",
                 name, name);
        return NULL;
    }
    if (s->nunconfigured >= s->cfg->max_queues) {
        *code = "too_many_queues";
        snprintf(msg, msglen,
                 "queue \"%s\" would be created, but jobqd already keeps %zu queues without a "
                 "[queue.NAME] section, its limit (max_queues); use an existing queue, add a "
                 "[queue.%s] section, or raise max_queues",
                 name, s->nunconfigured, name);
        return NULL;
    }
    q = queue_add(s, name);
    if (q == NULL) {
        *code = "internal";
        snprintf(msg, msglen, "out of memory");
    }
    return q;
}

void
queue_total(qstate *q, enum total_kind kind, uint64_t n)
{
    q->totals[kind] += n;
    enum series_kind sk = kind == TOTAL_SUBMITTED   ? SERIES_SUBMITTED
                          : kind == TOTAL_SUCCEEDED ? SERIES_SUCCEEDED
                          : kind == TOTAL_FAILED    ? SERIES_FAILED
                                                    : SERIES_KINDS;
    if (sk != SERIES_KINDS) {
        series_add(&q->series, sk, jobq__now_ms() / 1000, (uint32_t)n);
    }
}

/* The event counters follow the moves: one place sees every transition. */
void
queue_count_move(qstate *q, int from, int to)
{
    if (from < 0) {
        queue_total(q, TOTAL_SUBMITTED, 1);
    }
    switch (to) {
    case JOBQ_RUNNING:
        queue_total(q, TOTAL_STARTED, 1);
        break;
    case JOBQ_SUCCEEDED:
        queue_total(q, TOTAL_SUCCEEDED, 1);
        break;
    case JOBQ_RETRYING:
        queue_total(q, TOTAL_RETRIED, 1);
        break;
    case JOBQ_DEAD:
        queue_total(q, TOTAL_DEAD, 1);
        break;
    case JOBQ_CANCELLED:
        queue_total(q, TOTAL_CANCELLED, 1);
        break;
    default:
        break;
    }
    if (to == JOBQ_READY || from == JOBQ_RUNNING) {
        q->keys_blocked = false; /* a key may have a job to start now */
    }
    if (from >= 0 && from < JOBQ_NSTATES) {
        q->counts[from]--;
    }
    if (to >= 0 && to < JOBQ_NSTATES) {
        q->counts[to]++;
    }
}

int64_t
queue_pending(const qstate *q)
{
    return q->counts[JOBQ_SCHEDULED] + q->counts[JOBQ_READY] + q->counts[JOBQ_RUNNING] +
           q->counts[JOBQ_RETRYING] + q->counts[JOBQ_WAITING];
}

void
queue_slow_down(qstate *q, int64_t until_ms, const char *why)
{
    if (until_ms <= q->slow_until_ms) {
        return;
    }
    q->slow_until_ms = until_ms;
    snprintf(q->slow_why, sizeof(q->slow_why), "%s", why);
    log_info("queue_slowed", "queue=%s until_ms=%lld reason=\"%s\"", q->name, (long long)until_ms,
             why);
}

/* A slow-down of one key, written for the claims (store_key_hold). */
typedef struct key_hold_op {
    wop op;
    qstate *q;
    char *key;
    int64_t until_ms;
} key_hold_op;

static int
exec_key_hold(store *st, wop *op, int64_t now_ms)
{
    key_hold_op *h = container_of(op, key_hold_op, op);
    (void)now_ms;
    return store_key_hold(st, h->q->name, h->key, h->until_ms);
}

static void
done_key_hold(wop *op)
{
    key_hold_op *h = container_of(op, key_hold_op, op);
    if (op->err != JOBQ_OK) {
        log_error("key_hold_failed", "queue=%s err=%s", h->q->name, jobq__err_code(op->err));
    }
    free(h->key);
    free(h);
}

void
queue_slow_down_job(server *s, qstate *q, const job_row *job, int64_t until_ms, const char *why)
{
    if (job->group_key == NULL || (q->conf->key_concurrency <= 0 && q->conf->key_rate_per_s <= 0)) {
        queue_slow_down(q, until_ms, why);
        return;
    }
    key_hold_op *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->key = strdup(job->group_key)) == NULL) {
        free(h);
        queue_slow_down(q, until_ms, why); /* out of memory: the wider hold */
        return;
    }
    h->q = q;
    h->until_ms = until_ms;
    h->op.exec = exec_key_hold;
    h->op.done = done_key_hold;
    h->op.writes = true;
    h->op.relaxed = true; /* a hold lost to a power cut is asked for again by the downstream */
    log_info("key_slowed", "queue=%s group_key=\"%s\" until_ms=%lld reason=\"%s\"", q->name,
             job->group_key, (long long)until_ms, why);
    writer_push(&s->w, &h->op);
}

bool
queue_is_remote(const qstate *q)
{
    return q->conf->argv == NULL && q->conf->url == NULL;
}

bool
queue_job_ended(int state)
{
    return store_state_ends(state);
}

void
queues_free(server *s)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        free(s->queues[i]->name);
        free(s->queues[i]->stats_cache.text);
        free(s->queues[i]->unclaim); /* a hand back the store never took (scheduler.c) */
        free(s->queues[i]);
    }
    free(s->queues);
    free(s->qbuckets);
    s->queues = NULL;
    s->qbuckets = NULL;
    s->nqueues = 0;
    s->nqbuckets = 0;
}

/* ---- start: the configured queues, jobs left running, counts ---- */

/* runs_locally: whether jobqd runs the jobs of queue itself (a command or a url), so that one
 * of them may have crashed it; remote workers' jobs run elsewhere. */
static bool
runs_locally(void *arg, const char *queue)
{
    qstate *q = queue_find(arg, queue);
    return q != NULL && !queue_is_remote(q);
}

static void
recovered_cb(void *arg, const char *queue, int64_t id, bool poisoned)
{
    (void)arg;
    if (poisoned) {
        log_warn("job_poisoned", "job=%lld queue=%s crashes=%d next=dead", (long long)id, queue,
                 POISON_CRASHES);
    } else {
        log_info("job_recovered", "job=%lld queue=%s next=ready", (long long)id, queue);
    }
}

/* queues_recover: the configured queues, and the jobs left running by the last jobqd put back
 * to ready (or dead, after POISON_CRASHES crashes with it running here). */
static int
queues_recover(server *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->cfg->nqueues; i++) {
        if (queue_add(s, s->cfg->queues[i].name) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    size_t recovered = 0;
    int rc = store_begin(s->st);
    if (rc == JOBQ_OK) {
        rc = lifecycle_recover_running(s->st, jobq__now_ms(), POISON_CRASHES, runs_locally,
                                       recovered_cb, s, &recovered);
    }
    if (rc == JOBQ_OK) {
        rc = store_commit(s->st);
    } else {
        store_rollback(s->st);
    }
    store_effects_undo(s->st, 0); /* the counts are read after the recovery */
    if (rc != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(s->st));
        return -1;
    }
    if (recovered > 0) {
        log_warn("recovered", "jobs=%zu reason=\"running when jobqd stopped\"", recovered);
    }
    return 0;
}

static void
count_cb(void *arg, const char *queue, int state, int64_t n)
{
    qstate *q = queue_add(arg, queue);
    if (q != NULL && state >= 0 && state < JOBQ_NSTATES) {
        q->counts[state] += n;
    }
}

static void
paused_cb(void *arg, const char *queue)
{
    qstate *q = queue_add(arg, queue);
    if (q != NULL) {
        q->paused = true;
    }
}

/* queues_count: the counts by state and the paused flags of every queue in the store. */
static int
queues_count(server *s, char *err, size_t errlen)
{
    int rc = store_count_each(s->st, count_cb, s);
    if (rc == JOBQ_OK) {
        rc = store_paused_each(s->st, paused_cb, s);
    }
    if (rc != JOBQ_OK) {
        snprintf(err, errlen, "cannot read the database: %s", store_errmsg(s->st));
        return -1;
    }
    return 0;
}

/* rule_of: the breaker rule of qc. */
static breaker_rule
rule_of(const queue_conf *qc)
{
    breaker_rule rule = {.window = qc->breaker_window,
                         .min_calls = qc->breaker_min_calls,
                         .cooldown_ms = qc->breaker_cooldown_ms,
                         .probes = qc->breaker_probes};
    config_breaker_rates(qc, &rule.rate_pct, &rule.failures);
    return rule;
}

void
queues_reload(server *s)
{
    size_t n = s->nqueues; /* the queues from before: new ones are added below */
    for (size_t i = 0; i < n; i++) {
        qstate *q = s->queues[i];
        const queue_conf *qc = config_queue(s->cfg, q->name);
        if (qc == NULL) {
            if (q->configured) {
                log_warn("queue_removed",
                         "queue=%s reason=\"its section is gone from the config: it keeps its "
                         "settings until jobqd restarts\"",
                         q->name);
            }
            continue;
        }
        const queue_conf *old = q->conf;
        q->conf = qc;
        if (!q->configured) {
            q->configured = true;
            s->nunconfigured--;
        }
        breaker_rule rule = rule_of(qc);
        breaker_rule was = rule_of(old);
        if (memcmp(&rule, &was, sizeof(rule)) != 0) {
            breaker b; /* the new rule, clamped; the breaker's state is kept */
            breaker_init(&b, &rule);
            q->br.rule = b.rule;
        }
        if (qc->rate_per_s != old->rate_per_s) {
            rate_init(&q->rate, qc->rate_per_s, jobq__now_ms());
        }
        log_info("queue_reloaded", "queue=%s concurrency=%d rate=%g max_attempts=%d", q->name,
                 qc->concurrency, qc->rate_per_s, qc->max_attempts);
    }
    for (size_t i = 0; i < s->cfg->nqueues; i++) {
        const char *name = s->cfg->queues[i].name;
        if (queue_find(s, name) == NULL) {
            if (queue_add(s, name) == NULL) {
                log_error("queue_add_failed", "queue=%s reason=\"out of memory\"", name);
                continue;
            }
            log_info("queue_added", "queue=%s", name);
        }
    }
}

const server_part queues_recover_part = {
    .name = "queues_recover", .init = queues_recover, .free = queues_free};
const server_part queues_count_part = {.name = "queues_count", .init = queues_count};
