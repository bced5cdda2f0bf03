/* lifecycle.c: job policy, run on the writer's thread inside the batch's transaction. */
#include "lifecycle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "request.h"
#include "store_common.h"

/* What a user reads when jobqd stopped under a running job. */
static const char crash_error[] = "interrupted: jobqd stopped (crash, kill -9 or power loss) "
                                  "while the job ran";
/* The attempt kind that records such an interruption. */
#define CRASH_KIND "crash"

bool
lifecycle_ended_state(int state)
{
    return store_state_ends(state);
}

/* parent_ended: the reason a child of parent, which ended in pstate, is cancelled. */
static void
parent_ended(char *why, size_t len, int64_t parent, int pstate)
{
    snprintf(why, len, "parent job %lld ended %s", (long long)parent,
             pstate == JOBQ_DEAD ? "dead" : "cancelled");
}

/* job_effect: records that job id went from `from` to `to`; an ended job carries its row. */
static int
job_effect(store *st, int64_t id, int from, int to, int64_t run_at_ms)
{
    job_row row;
    int err = store_get(st, id, &row);
    if (err != JOBQ_OK) {
        return err;
    }
    store_effect *e = store_effect_add(st, EFFECT_JOB, id);
    if (e == NULL) {
        job_row_clear(&row);
        return JOBQ_ENOMEM;
    }
    e->from = from;
    e->to = to;
    e->run_at_ms = run_at_ms;
    e->queue = row.queue;
    row.queue = NULL;
    if (lifecycle_ended_state(to)) {
        e->row = row;
        e->row.queue = strdup(e->queue);
        if (e->row.queue == NULL) {
            return JOBQ_ENOMEM; /* the whole operation is undone, effects too */
        }
    } else {
        job_row_clear(&row);
    }
    return JOBQ_OK;
}

/* The jobs that ended in this cascade and whose children are still to visit. */
typedef struct worklist {
    int64_t *ids;
    int *states;
    size_t n, cap;
} worklist;

static int
work_push(worklist *w, int64_t id, int state)
{
    /* Both arrays grow to the same capacity; it counts once both have. */
    size_t cap_ids = w->cap, cap_states = w->cap;
    if (store_grow(&w->ids, &cap_ids, w->n, sizeof(*w->ids), 8) != JOBQ_OK ||
        store_grow(&w->states, &cap_states, w->n, sizeof(*w->states), 8) != JOBQ_OK) {
        return JOBQ_ENOMEM;
    }
    w->cap = cap_ids;
    w->ids[w->n] = id;
    w->states[w->n++] = state;
    return JOBQ_OK;
}

/* release_children: parent ended in pstate: each job waiting for it is released (when it
 * waits for nothing else) or cancelled; cancelled ones are pushed on the work list. */
static int
release_children(store *st, int64_t parent, int pstate, int64_t now_ms, worklist *w)
{
    int64_t *kids = NULL;
    size_t nkids = 0;
    int err = store_dep_children(st, parent, &kids, &nkids);
    if (err == JOBQ_OK && nkids > 0) {
        err = store_dep_drop_parent(st, parent);
    }
    if (err == JOBQ_OK && nkids > 0) {
        err = store_parents_settle(st, parent); /* its result, for the children's claims */
    }
    for (size_t i = 0; i < nkids && err == JOBQ_OK; i++) {
        int64_t kid = kids[i];
        int kstate;
        bool always;
        int64_t run_at;
        err = store_dep_job(st, kid, &kstate, &always, &run_at);
        if (err == JOBQ_ENOENT) {
            err = JOBQ_OK;
            continue; /* deleted meanwhile */
        }
        if (err != JOBQ_OK || kstate != JOBQ_WAITING) {
            continue;
        }
        if (pstate != JOBQ_SUCCEEDED && !always) {
            char why[160];
            parent_ended(why, sizeof(why), parent, pstate);
            if ((err = store_job_set_state(st, kid, JOBQ_WAITING, JOBQ_CANCELLED, now_ms, why)) !=
                    JOBQ_OK ||
                (err = store_dep_drop_child(st, kid)) != JOBQ_OK ||
                (err = job_effect(st, kid, JOBQ_WAITING, JOBQ_CANCELLED, run_at)) != JOBQ_OK) {
                break;
            }
            err = work_push(w, kid, JOBQ_CANCELLED);
            continue;
        }
        bool waits;
        if ((err = store_dep_pending(st, kid, &waits)) != JOBQ_OK || waits) {
            continue; /* an error, or it still waits for another parent */
        }
        int to = run_at > now_ms ? JOBQ_SCHEDULED : JOBQ_READY;
        if ((err = store_job_set_state(st, kid, JOBQ_WAITING, to, 0, NULL)) == JOBQ_OK) {
            err = job_effect(st, kid, JOBQ_WAITING, to, run_at);
        }
    }
    free(kids);
    return err;
}

/* ended_more: the rest of an end: the jobs waiting for each job of the work list are released
 * or cancelled, its held keys forgotten and its group settled; the same for every job that
 * cancels in turn. */
static int
ended_more(store *st, worklist *w, int64_t now_ms)
{
    int err = JOBQ_OK;
    while (err == JOBQ_OK && w->n > 0) {
        w->n--;
        int64_t jid = w->ids[w->n];
        int jstate = w->states[w->n];
        if ((err = release_children(st, jid, jstate, now_ms, w)) != JOBQ_OK) {
            break;
        }
        /* dedupe until_done, replace, debounce: the key is free again with this commit. */
        if ((err = store_key_release(st, jid)) != JOBQ_OK) {
            break;
        }
        int64_t gid = 0;
        err = store_group_of(st, jid, &gid);
        if (err == JOBQ_ENOENT) {
            err = JOBQ_OK;
        } else if (err == JOBQ_OK && gid != 0) {
            err = lifecycle_group_settle(st, gid, now_ms);
        }
    }
    free(w->ids);
    free(w->states);
    return err;
}

/* ended: job id has just ended in state, in this transaction: ended_more for it. */
static int
ended(store *st, int64_t id, int state, int64_t now_ms)
{
    worklist w = {0};
    int err = work_push(&w, id, state);
    if (err != JOBQ_OK) {
        w.n = 0;
    }
    int more = ended_more(st, &w, now_ms);
    return err != JOBQ_OK ? err : more;
}

/* ended_known: ended, for a job whose held keys store_job_end already forgot and whose group
 * (gid) and jobs waiting for it (kids: any may) it told: nothing is looked up again. */
static int
ended_known(store *st, int64_t id, int state, int64_t gid, bool kids, int64_t now_ms)
{
    worklist w = {0};
    int err = kids ? release_children(st, id, state, now_ms, &w) : JOBQ_OK;
    if (err == JOBQ_OK && gid != 0) {
        err = lifecycle_group_settle(st, gid, now_ms);
    }
    if (err != JOBQ_OK) {
        w.n = 0;
    }
    int more = ended_more(st, &w, now_ms);
    return err != JOBQ_OK ? err : more;
}

int
lifecycle_insert(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp, bool *dupp,
                 int *statep)
{
    return lifecycle_insert_dedupe(st, spec, now_ms, idp, dupp, statep, NULL);
}

/* waiting_to_run: whether a job in state has not started and may still take a new payload
 * (dedupe replace and debounce). */
static bool
waiting_to_run(int state)
{
    return state == JOBQ_SCHEDULED || state == JOBQ_READY || state == JOBQ_RETRYING ||
           state == JOBQ_WAITING;
}

/* replace_job: dedupe replace or debounce of job kid (in kstate, its key first used at
 * created): the new payload and run time (a debounce's capped at created +
 * debounce_max_ms), its state following the run time. */
static int
replace_job(store *st, const job_spec *spec, int64_t now_ms, int64_t kid, int kstate,
            int64_t created, int64_t *idp, int *statep, dedupe_out *out)
{
    int64_t run_at = spec->run_at_ms;
    if (spec->dedupe == JOBQ_DEDUPE_DEBOUNCE && spec->debounce_max_ms > 0 &&
        run_at > created + spec->debounce_max_ms) {
        run_at = created + spec->debounce_max_ms;
    }
    int to = kstate;
    if (kstate != JOBQ_WAITING) {
        to = run_at <= now_ms          ? JOBQ_READY
             : kstate == JOBQ_RETRYING ? JOBQ_RETRYING
                                       : JOBQ_SCHEDULED;
    }
    int err = store_job_replace(st, kid, kstate, to, spec->payload, run_at);
    if (err == JOBQ_OK && spec->expires_at_ms > 0) {
        err = store_job_set_expiry(st, kid, spec->expires_at_ms);
    }
    if (err == JOBQ_OK) {
        err = store_key_put(st, spec->queue, spec->key, kid, spec->payload_hash, created, true);
    }
    if (err != JOBQ_OK) {
        return err;
    }
    *idp = kid;
    *statep = to;
    out->replaced = true;
    out->from = kstate;
    out->run_at_ms = run_at;
    return JOBQ_OK;
}

int
lifecycle_insert_dedupe(store *st, const job_spec *spec, int64_t now_ms, int64_t *idp, bool *dupp,
                        int *statep, dedupe_out *out)
{
    int err;
    dedupe_out none;
    if (out == NULL) {
        out = &none;
    }
    memset(out, 0, sizeof(*out));
    bool held = spec->key != NULL && spec->dedupe != JOBQ_DEDUPE_TTL;
    if (spec->key != NULL) {
        int64_t kid, created;
        uint64_t hash;
        bool kheld = false;
        err = store_key_lock(st, spec->queue, spec->key, &kid, &hash, &created, &kheld);
        if (err == JOBQ_OK && kheld) {
            /* Held by its job until that job ends: the submit's mode decides. */
            int kstate = -1;
            int e = store_job_state(st, kid, &kstate);
            if (e != JOBQ_OK && e != JOBQ_ENOENT) {
                return e;
            }
            bool unfinished = e == JOBQ_OK && !lifecycle_ended_state(kstate);
            bool replacing =
                spec->dedupe == JOBQ_DEDUPE_REPLACE || spec->dedupe == JOBQ_DEDUPE_DEBOUNCE;
            if (replacing && unfinished && waiting_to_run(kstate)) {
                *dupp = false;
                err = replace_job(st, spec, now_ms, kid, kstate, created, idp, statep, out);
                if (err != JOBQ_ESTATE) {
                    return err;
                }
                /* Claimed meanwhile by another jobqd on the same database (its transaction
                 * held the row): it runs now, so a new job takes the key, as below. */
                kstate = JOBQ_RUNNING;
            }
            if (unfinished && !replacing) {
                if (hash != spec->payload_hash) {
                    return JOBQ_ECONFLICT;
                }
                *statep = kstate;
                *idp = kid;
                *dupp = true;
                return JOBQ_OK;
            }
            /* Running, with replace or debounce: the running job is left alone and a new one
             * is admitted, which takes the key. Ended (or gone): admitted again. */
        } else if (err == JOBQ_OK && now_ms - created < spec->key_ttl_ms) {
            /* A key of the ttl mode within its window, whatever the submit's mode. */
            if (hash != spec->payload_hash) {
                return JOBQ_ECONFLICT;
            }
            int kstate;
            *statep = store_job_state(st, kid, &kstate) == JOBQ_OK ? kstate : -1;
            *idp = kid;
            *dupp = true;
            return JOBQ_OK;
        }
        if (err != JOBQ_OK && err != JOBQ_ENOENT) {
            return err;
        }
        /* None, or its window has passed: admitted; store_key_put below takes it over. */
    }
    int state = spec->run_at_ms > now_ms ? JOBQ_SCHEDULED : JOBQ_READY;
    char why[160] = "";
    size_t unfinished = 0;
    for (size_t i = 0; i < spec->nafter; i++) {
        int ps;
        err = store_job_state(st, spec->after[i], &ps);
        if (err == JOBQ_ENOENT) {
            st->missing_parent = spec->after[i];
        }
        if (err != JOBQ_OK) {
            return err;
        }
        if (ps == JOBQ_DEAD || ps == JOBQ_CANCELLED) {
            if (!spec->after_always && why[0] == '\0') {
                parent_ended(why, sizeof(why), spec->after[i], ps);
            }
        } else if (ps != JOBQ_SUCCEEDED) {
            unfinished++;
        }
    }
    if (why[0] != '\0') {
        state = JOBQ_CANCELLED;
    } else if (unfinished > 0) {
        state = JOBQ_WAITING;
    }
    int64_t id;
    bool cancelled = state == JOBQ_CANCELLED;
    err = store_job_insert(st, spec, state, now_ms, cancelled ? now_ms : 0, cancelled ? why : NULL,
                           &id);
    for (size_t i = 0; err == JOBQ_OK && state == JOBQ_WAITING && i < spec->nafter; i++) {
        int ps;
        if ((err = store_job_state(st, spec->after[i], &ps)) == JOBQ_OK && ps != JOBQ_SUCCEEDED) {
            err = store_dep_add(st, spec->after[i], id); /* succeeded: nothing to wait for */
        }
    }
    /* Every parent for good, with the result of those that ended: the child's claim reads
     * them (job_deps keeps only the ones still to end). */
    for (size_t i = 0; err == JOBQ_OK && state != JOBQ_CANCELLED && i < spec->nafter; i++) {
        err = store_parents_add(st, id, spec->after[i]);
    }
    if (err == JOBQ_OK && spec->expires_at_ms > 0 && state != JOBQ_CANCELLED) {
        err = store_job_set_expiry(st, id, spec->expires_at_ms);
    }
    if (err == JOBQ_OK && spec->key != NULL && !(held && state == JOBQ_CANCELLED)) {
        /* A job cancelled at birth does not hold a key until its end: it has ended. */
        err = store_key_put(st, spec->queue, spec->key, id, spec->payload_hash, now_ms, held);
    }
    if (err != JOBQ_OK) {
        return err;
    }
    *idp = id;
    *dupp = false;
    *statep = state;
    return JOBQ_OK;
}

bool
submit_alloc(submit_set *s, size_t n)
{
    memset(s, 0, sizeof(*s));
    /* Widest alignment first: job_spec, int64_t and dedupe_out are multiples of 8 bytes. */
    size_t specs = (n + 1) * sizeof(job_spec), ids = n * sizeof(int64_t),
           dedupe = n * sizeof(dedupe_out), states = n * sizeof(int);
    char *p = calloc(1, specs + ids + dedupe + states + n * sizeof(bool));
    if (p == NULL) {
        return false;
    }
    _Static_assert(sizeof(job_spec) % sizeof(int64_t) == 0 &&
                       sizeof(dedupe_out) % sizeof(int64_t) == 0,
                   "submit_alloc's layout keeps every array aligned");
    s->specs = (job_spec *)p;
    s->ids = (int64_t *)(p + specs);
    s->dedupe = (dedupe_out *)(p + specs + ids);
    s->states = (int *)(p + specs + ids + dedupe);
    s->dups = (bool *)(p + specs + ids + dedupe + states);
    s->n = n;
    return true;
}

/* resolve_after: spec's "after" with earlier members (-(index + 1)) replaced by their ids, in
 * buf (cap entries) or a new array (*heap, the caller frees it); NULL when out of memory. */
static const int64_t *
resolve_after(const job_spec *spec, const int64_t *ids, int64_t *buf, size_t cap, int64_t **heap)
{
    bool batch = false;
    for (size_t k = 0; k < spec->nafter; k++) {
        batch |= spec->after[k] < 0;
    }
    if (!batch) {
        return spec->after;
    }
    int64_t *out = buf;
    if (spec->nafter > cap && (out = *heap = malloc(spec->nafter * sizeof(*out))) == NULL) {
        return NULL;
    }
    for (size_t k = 0; k < spec->nafter; k++) {
        out[k] = spec->after[k] < 0 ? ids[-spec->after[k] - 1] : spec->after[k];
    }
    return out;
}

/* plain: a job with nothing to look up or add beside its row: no key, no after, no expiry. */
static bool
plain(const job_spec *spec)
{
    return spec->key == NULL && spec->nafter == 0 && spec->expires_at_ms == 0;
}

/* plain_run: how many plain jobs follow from s->specs[i] on (i's included). */
static size_t
plain_run(const submit_set *s, size_t i)
{
    size_t n = 0;
    while (i + n < s->n && plain(&s->specs[i + n])) {
        n++;
    }
    return n;
}

/* plain_outs: what the plain jobs s->specs[i..i+n) answer, but their ids: in s's group, ready
 * or scheduled, no duplicate. */
static void
plain_outs(submit_set *s, size_t i, size_t n, int64_t now_ms)
{
    for (size_t k = i; k < i + n; k++) {
        s->specs[k].group_id = s->group_id;
        s->states[k] = s->specs[k].run_at_ms > now_ms ? JOBQ_SCHEDULED : JOBQ_READY;
        s->dups[k] = false;
        memset(&s->dedupe[k], 0, sizeof(s->dedupe[k]));
    }
}

/* insert_plain: the run of n plain jobs from s->specs[i], in one store_jobs_insert. */
static int
insert_plain(store *st, submit_set *s, size_t i, size_t n, int64_t now_ms)
{
    plain_outs(s, i, n, now_ms);
    return store_jobs_insert(st, &s->specs[i], &s->states[i], n, now_ms, &s->ids[i]);
}

int
lifecycle_submit(store *st, submit_set *s, int64_t now_ms)
{
    s->group_id = 0;
    s->failed_at = 0;
    if (s->group) {
        group_spec g = {.size = s->n};
        if (s->group_oc) {
            const job_spec *oc = &s->specs[s->n];
            g.oc_queue = oc->queue;
            g.oc_payload = oc->payload;
            g.oc_priority = oc->priority;
            g.oc_max_attempts = oc->max_attempts;
            g.oc_timeout_ms = oc->timeout_ms;
        }
        int err = store_group_create(st, &g, now_ms, &s->group_id);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        size_t run = plain_run(s, i);
        if (run > 1) {
            int err = insert_plain(st, s, i, run, now_ms);
            if (err != JOBQ_OK) {
                s->failed_at = i;
                s->missing_parent = 0;
                return err;
            }
            i += run - 1;
            continue;
        }
        job_spec spec = s->specs[i];
        spec.group_id = s->group_id;
        int64_t buf[16], *heap = NULL;
        spec.after = resolve_after(&s->specs[i], s->ids, buf, 16, &heap);
        int err = spec.after == NULL && spec.nafter > 0
                      ? JOBQ_ENOMEM
                      : lifecycle_insert_dedupe(st, &spec, now_ms, &s->ids[i], &s->dups[i],
                                                &s->states[i], &s->dedupe[i]);
        free(heap);
        if (err != JOBQ_OK) {
            s->failed_at = i;
            s->missing_parent = err == JOBQ_ENOENT ? st->missing_parent : 0;
            return err;
        }
    }
    return s->group_id != 0 ? lifecycle_group_settle(st, s->group_id, now_ms) : JOBQ_OK;
}

bool
lifecycle_submit_plain(const submit_set *s)
{
    return !s->group && s->n > 0 && plain_run(s, 0) == s->n;
}

int
lifecycle_exec_submits(store *st, wop *op, size_t n, int64_t now_ms)
{
    size_t total = 0;
    wop *o = op;
    for (size_t i = 0; i < n; i++, o = o->next) {
        total += ((submit_set *)((char *)o - offsetof(submit_set, op)))->n;
    }
    job_spec *specs = malloc(total * sizeof(*specs));
    int *states = malloc(total * sizeof(*states));
    int64_t *ids = malloc(total * sizeof(*ids));
    int err = specs != NULL && states != NULL && ids != NULL ? JOBQ_OK : JOBQ_ENOMEM;
    size_t k = 0;
    o = op;
    for (size_t i = 0; err == JOBQ_OK && i < n; i++, o = o->next) {
        submit_set *s = (submit_set *)((char *)o - offsetof(submit_set, op));
        s->group_id = 0;
        s->failed_at = 0;
        s->missing_parent = 0;
        plain_outs(s, 0, s->n, now_ms);
        memcpy(&specs[k], s->specs, s->n * sizeof(*specs));
        memcpy(&states[k], s->states, s->n * sizeof(*states));
        k += s->n;
    }
    if (err == JOBQ_OK) {
        err = store_jobs_insert(st, specs, states, total, now_ms, ids);
    }
    k = 0;
    o = op;
    for (size_t i = 0; err == JOBQ_OK && i < n; i++, o = o->next) {
        submit_set *s = (submit_set *)((char *)o - offsetof(submit_set, op));
        memcpy(s->ids, &ids[k], s->n * sizeof(*ids));
        k += s->n;
        o->err = JOBQ_OK;
    }
    free(specs);
    free(states);
    free(ids);
    return err;
}

int
lifecycle_exec_submit(store *st, wop *op, int64_t now_ms)
{
    return lifecycle_submit(st, (submit_set *)((char *)op - offsetof(submit_set, op)), now_ms);
}

int64_t
lifecycle_missing_parent(const store *st)
{
    return st->missing_parent;
}

int
lifecycle_cancel(store *st, int64_t id, int64_t now_ms, bool allow_running, job_row *row,
                 int *old_statep)
{
    return lifecycle_cancel_why(st, id, now_ms, allow_running, NULL, row, old_statep);
}

int
lifecycle_cancel_why(store *st, int64_t id, int64_t now_ms, bool allow_running, const char *why,
                     job_row *row, int *old_statep)
{
    int old;
    int err = store_job_state(st, id, &old);
    if (err != JOBQ_OK) {
        return err;
    }
    if (lifecycle_ended_state(old) || (old == JOBQ_RUNNING && !allow_running)) {
        return JOBQ_ESTATE;
    }
    err = store_job_set_state(st, id, old, JOBQ_CANCELLED, now_ms, why);
    if (err == JOBQ_OK && old == JOBQ_WAITING) {
        err = store_dep_drop_child(st, id);
    }
    if (err == JOBQ_OK) {
        err = ended(st, id, JOBQ_CANCELLED, now_ms);
    }
    if (err == JOBQ_OK) {
        err = store_get(st, id, row);
    }
    if (err == JOBQ_OK) {
        *old_statep = old;
    }
    return err;
}

int
lifecycle_finish(store *st, int64_t id, int new_state, int64_t now_ms, int64_t run_at_ms,
                 const char *result, const char *error, const attempt_rec *a)
{
    int64_t gid = 0;
    bool kids = false;
    int err = store_job_end(st, id, new_state, now_ms, run_at_ms, result, error, a, &gid, &kids);
    if (err == JOBQ_OK && lifecycle_ended_state(new_state)) {
        err = ended_known(st, id, new_state, gid, kids, now_ms);
    }
    return err;
}

int
lifecycle_finish_many(store *st, job_end *ends, size_t n, int64_t now_ms)
{
    int err = store_jobs_end(st, ends, n, now_ms);
    for (size_t i = 0; err == JOBQ_OK && i < n; i++) {
        const job_end *e = &ends[i];
        if (e->err == JOBQ_OK && lifecycle_ended_state(e->new_state) && (e->kids || e->gid != 0)) {
            err = ended_known(st, e->id, e->new_state, e->gid, e->kids, now_ms);
        }
    }
    return err;
}

/* group_payload: the payload of group gid's on_complete job: the user's payload (JSON text,
 * NULL: null) wrapped with the outcome of each member, e.g.
 * {"group":7,"payload":{...},"succeeded":2,"dead":1,"cancelled":0,
 *  "members":[{"id":41,"state":"succeeded"},...]}. Allocated into *outp. */
static int
group_payload(store *st, int64_t gid, const char *user, char **outp)
{
    group_info g;
    int err = store_group_get(st, gid, true, &g);
    if (err != JOBQ_OK) {
        return err;
    }
    if (user == NULL) {
        user = "null";
    }
    size_t cap = strlen(user) + 160 + g.nmembers * 64;
    char *out = malloc(cap);
    if (out == NULL) {
        group_info_clear(&g);
        return JOBQ_ENOMEM;
    }
    size_t n = (size_t)snprintf(out, cap,
                                "{\"group\":%" PRId64 ",\"payload\":%s,\"succeeded\":%" PRId64
                                ",\"dead\":%" PRId64 ",\"cancelled\":%" PRId64 ",\"members\":[",
                                gid, user, g.counts[JOBQ_SUCCEEDED], g.counts[JOBQ_DEAD],
                                g.counts[JOBQ_CANCELLED]);
    for (size_t i = 0; i < g.nmembers; i++) {
        const group_member *m = &g.members[i];
        n += (size_t)snprintf(out + n, cap - n, "%s{\"id\":%" PRId64 ",\"state\":\"%s\"}",
                              i > 0 ? "," : "", m->id, jobq__state_name(m->state));
    }
    snprintf(out + n, cap - n, "]}");
    group_info_clear(&g);
    *outp = out;
    return JOBQ_OK;
}

int
lifecycle_group_settle(store *st, int64_t gid, int64_t now_ms)
{
    group_oc oc;
    int err = store_group_ended(st, gid, &oc);
    if (err != JOBQ_OK) {
        return err == JOBQ_ENOENT ? JOBQ_OK : err; /* done already, or still open */
    }
    int64_t oc_id = 0;
    if (oc.queue != NULL) {
        char *payload = NULL;
        err = group_payload(st, gid, oc.payload, &payload);
        if (err == JOBQ_OK) {
            job_spec spec = {.queue = oc.queue,
                             .payload = payload,
                             .priority = oc.priority,
                             .max_attempts = oc.max_attempts,
                             .timeout_ms = oc.timeout_ms,
                             .run_at_ms = now_ms};
            bool dup;
            int state;
            err = lifecycle_insert(st, &spec, now_ms, &oc_id, &dup, &state);
            store_effect *e = err == JOBQ_OK ? store_effect_add(st, EFFECT_JOB, oc_id) : NULL;
            if (err == JOBQ_OK && (e == NULL || (e->queue = strdup(oc.queue)) == NULL)) {
                err = JOBQ_ENOMEM;
            } else if (e != NULL) {
                e->to = state;
                e->run_at_ms = now_ms;
            }
        }
        free(payload);
    }
    if (err == JOBQ_OK) {
        err = store_group_complete(st, gid, now_ms, oc_id);
    }
    if (err == JOBQ_OK && store_effect_add(st, EFFECT_GROUP, gid) == NULL) {
        err = JOBQ_ENOMEM;
    }
    group_oc_clear(&oc);
    return err;
}

/* recover_one: the crash-interrupted attempt of running job row; dead as a suspected poison
 * job after poison_crashes crashes when it ran here, else ready again. */
static int
recover_one(store *st, const job_row *row, int64_t now_ms, int poison_crashes, bool local,
            bool *poisonedp)
{
    attempt_rec a = {
        .attempt = row->attempt, .started_at_ms = row->started_at_ms, .kind = CRASH_KIND};
    int64_t crashes = 0;
    int err = store_attempt_add(st, row->id, &a, now_ms, crash_error);
    if (err == JOBQ_OK) {
        err = store_attempt_count(st, row->id, CRASH_KIND, &crashes);
    }
    if (err != JOBQ_OK) {
        return err;
    }
    *poisonedp = crashes >= poison_crashes && local;
    if (!*poisonedp) {
        return store_job_set_state(st, row->id, JOBQ_RUNNING, JOBQ_READY, 0, crash_error);
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "suspected poison job: it was running during %d crashes of jobqd",
             (int)crashes);
    err = store_job_set_state(st, row->id, JOBQ_RUNNING, JOBQ_DEAD, now_ms, msg);
    return err == JOBQ_OK ? ended(st, row->id, JOBQ_DEAD, now_ms) : err;
}

int
lifecycle_recover_running(store *st, int64_t now_ms, int poison_crashes,
                          bool (*local)(void *arg, const char *queue),
                          void (*fn)(void *arg, const char *queue, int64_t id, bool poisoned),
                          void *arg, size_t *np)
{
    /* Read them all first: the rows change under the read otherwise. */
    job_row *rows = NULL;
    size_t n = 0;
    int err = store_running(st, &rows, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        bool poisoned = false;
        if (err == JOBQ_OK) {
            bool here = local == NULL || local(arg, rows[i].queue);
            err = recover_one(st, &rows[i], now_ms, poison_crashes, here, &poisoned);
        }
        if (err == JOBQ_OK && fn != NULL) {
            fn(arg, rows[i].queue, rows[i].id, poisoned);
        }
        job_row_clear(&rows[i]);
    }
    free(rows);
    if (err == JOBQ_OK) {
        *np = n;
    }
    return err;
}

int
lifecycle_schedule_fire(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                        int64_t now_ms, int64_t *idp, bool *dupp, int *statep)
{
    int err = store_schedule_set(st, name, tick_ms);
    if (err != JOBQ_OK || spec == NULL) {
        return err;
    }
    return lifecycle_insert(st, spec, now_ms, idp, dupp, statep);
}

int
lifecycle_schedule_tick(store *st, const char *name, int64_t tick_ms, const job_spec *spec,
                        bool overlap_skip, int64_t now_ms, int64_t *idp, bool *dupp, int *statep,
                        bool *skippedp)
{
    *skippedp = false;
    if (spec != NULL && overlap_skip) {
        bool paused;
        int64_t last = 0;
        int lstate;
        int err = store_sstate_get(st, name, &paused, &last);
        if (err != JOBQ_OK && err != JOBQ_ENOENT) {
            return err;
        }
        if (err == JOBQ_OK && last != 0 && (err = store_job_state(st, last, &lstate)) == JOBQ_OK &&
            !lifecycle_ended_state(lstate)) {
            *skippedp = true;
            *idp = last;
            *dupp = false;
            *statep = lstate;
            return store_schedule_set(st, name, tick_ms);
        }
        if (err != JOBQ_OK && err != JOBQ_ENOENT) {
            return err;
        }
    }
    int err = lifecycle_schedule_fire(st, name, tick_ms, spec, now_ms, idp, dupp, statep);
    if (err == JOBQ_OK && spec != NULL && !*dupp) {
        err = store_sstate_set_job(st, name, *idp);
    }
    return err;
}

int
lifecycle_schedule_trigger(store *st, const char *name, const job_spec *spec, int64_t now_ms,
                           int64_t *idp, bool *dupp, int *statep)
{
    int err = lifecycle_insert(st, spec, now_ms, idp, dupp, statep);
    if (err == JOBQ_OK && !*dupp) {
        err = store_sstate_set_job(st, name, *idp);
    }
    return err;
}

int
lifecycle_sweep_queue(store *st, const char *queue, const int64_t *retention_ms, int64_t key_ttl_ms,
                      int64_t now_ms, size_t max, size_t *deleted, bool *morep, int64_t *next_msp)
{
    static const int ends[] = {JOBQ_SUCCEEDED, JOBQ_DEAD, JOBQ_CANCELLED};
    int64_t next_ms = INT64_MAX, at;
    size_t n = 0;
    for (size_t k = 0; k < sizeof(ends) / sizeof(ends[0]); k++) {
        int state = ends[k];
        int err = store_sweep(st, queue, state, now_ms - retention_ms[state], max, &n);
        if (err != JOBQ_OK) {
            return err;
        }
        deleted[state] = n;
        *morep = *morep || n == max;
        if (store_oldest_finished(st, queue, state, &at) == JOBQ_OK &&
            at + retention_ms[state] < next_ms) {
            next_ms = at + retention_ms[state];
        }
    }
    int err = store_sweep_keys(st, queue, now_ms - key_ttl_ms, max, &n);
    if (err != JOBQ_OK) {
        return err;
    }
    *morep = *morep || n == max;
    if (store_oldest_key(st, queue, &at) == JOBQ_OK && at + key_ttl_ms < next_ms) {
        next_ms = at + key_ttl_ms;
    }
    *next_msp = next_ms;
    return JOBQ_OK;
}

mutate_verdict
lifecycle_mutate_verdict(int action, int state)
{
    bool ended = lifecycle_ended_state(state);
    bool pending = !ended && state != JOBQ_RUNNING;
    bool due = state == JOBQ_SCHEDULED || state == JOBQ_RETRYING;
    bool yes;
    switch (action) {
    case MUT_CANCEL:
        return state == JOBQ_RUNNING ? MUTATE_STOP : pending ? MUTATE_APPLY : MUTATE_SKIP;
    case MUT_RETRY:
        yes = state == JOBQ_DEAD || state == JOBQ_CANCELLED;
        break;
    case MUT_DELETE:
    case MUT_RERUN:
        yes = ended;
        break;
    case MUT_RUN_NOW:
        yes = due;
        break;
    case MUT_RESCHEDULE:
        yes = due || state == JOBQ_READY;
        break;
    case MUT_SET_PRIORITY:
        yes = pending;
        break;
    default:
        yes = false;
        break;
    }
    return yes ? MUTATE_APPLY : MUTATE_SKIP;
}

/* mutate_rerun: job id (finished) submitted again as a new job, ready now. */
static int
mutate_rerun(store *st, int64_t id, int64_t now_ms, mutate_change *out)
{
    job_row row;
    int err = store_get(st, id, &row);
    if (err != JOBQ_OK) {
        return err == JOBQ_ENOENT ? JOBQ_ESTATE : err;
    }
    if (!lifecycle_ended_state(row.state)) {
        job_row_clear(&row);
        return JOBQ_ESTATE;
    }
    job_spec spec = {.queue = row.queue,
                     .payload = row.payload,
                     .priority = row.priority,
                     .run_at_ms = now_ms,
                     .max_attempts = row.max_attempts,
                     .timeout_ms = row.timeout_ms,
                     .traceparent = row.traceparent,
                     .tracestate = row.tracestate};
    bool dup;
    int state;
    err = lifecycle_insert(st, &spec, now_ms, &out->new_id, &dup, &state);
    job_row_clear(&row);
    if (err == JOBQ_OK) {
        out->from = -1;
        out->to = state;
        out->run_at_ms = now_ms;
    }
    return err;
}

int
lifecycle_mutate_job(store *st, const mutate_args *m, int64_t id, int state, int64_t now_ms,
                     mutate_change *out)
{
    memset(out, 0, sizeof(*out));
    out->id = id;
    out->from = state;
    out->to = state;
    int err;
    int to = JOBQ_READY;
    switch (m->action) {
    case MUT_CANCEL: {
        int old;
        err = lifecycle_cancel(st, id, now_ms, false, &out->row, &old);
        if (err == JOBQ_ESTATE && store_job_state(st, id, &old) == JOBQ_OK &&
            old == JOBQ_CANCELLED) {
            return JOBQ_OK; /* cancelled by the cascade of a job before it: done, and the
                             * cascade's effects tell the loop */
        }
        if (err == JOBQ_OK) {
            out->from = old;
            out->to = JOBQ_CANCELLED;
        }
        return err;
    }
    case MUT_RETRY: {
        int old;
        err = store_retry(st, id, now_ms, &out->row, &old);
        job_row_clear(&out->row);
        if (err == JOBQ_OK) {
            out->from = old;
            out->to = JOBQ_READY;
        }
        return err;
    }
    case MUT_DELETE:
        if (!lifecycle_ended_state(state)) {
            return JOBQ_ESTATE;
        }
        err = store_job_delete(st, id, state);
        if (err == JOBQ_OK) {
            out->to = -1;
        }
        return err;
    case MUT_RUN_NOW:
        if (state != JOBQ_SCHEDULED && state != JOBQ_RETRYING) {
            return JOBQ_ESTATE;
        }
        err = store_job_set_state(st, id, state, JOBQ_READY, 0, NULL);
        if (err == JOBQ_OK) {
            out->to = JOBQ_READY;
        }
        return err;
    case MUT_RESCHEDULE:
        if (lifecycle_mutate_verdict(m->action, state) != MUTATE_APPLY) {
            return JOBQ_ESTATE;
        }
        if (m->run_at_ms > now_ms) {
            to = state == JOBQ_RETRYING ? JOBQ_RETRYING : JOBQ_SCHEDULED;
        }
        err = store_job_set_run_at(st, id, state, to, m->run_at_ms);
        if (err == JOBQ_OK) {
            out->to = to;
            out->run_at_ms = m->run_at_ms;
        }
        return err;
    case MUT_SET_PRIORITY:
        if (lifecycle_mutate_verdict(m->action, state) != MUTATE_APPLY) {
            return JOBQ_ESTATE;
        }
        return store_job_set_priority(st, id, state, m->priority);
    case MUT_RERUN:
        return mutate_rerun(st, id, now_ms, out);
    default:
        return JOBQ_EINVAL;
    }
}

int
lifecycle_expire(store *st, const char *queue, int64_t now_ms, size_t max, size_t *np)
{
    int64_t ids[256];
    size_t n = 0, done = 0;
    int err = store_expired(st, queue, now_ms, max < 256 ? max : 256, ids, &n);
    for (size_t i = 0; i < n && err == JOBQ_OK; i++) {
        job_row row = {0};
        int old;
        err = lifecycle_cancel_why(st, ids[i], now_ms, false, EXPIRED_ERROR, &row, &old);
        if (err == JOBQ_ESTATE || err == JOBQ_ENOENT) {
            err = JOBQ_OK; /* started or ended meanwhile */
            continue;
        }
        if (err == JOBQ_OK) {
            err = job_effect(st, ids[i], old, JOBQ_CANCELLED, row.run_at_ms);
        }
        if (err == JOBQ_OK) {
            st->effects[st->neffects - 1].expired = true;
            done++;
        }
        job_row_clear(&row);
    }
    if (err == JOBQ_OK) {
        *np = done;
    }
    return err;
}

int
lifecycle_snooze(store *st, int64_t id, int64_t now_ms, int64_t run_at_ms, const char *error,
                 const attempt_rec *a)
{
    int err = store_job_snooze(st, id, run_at_ms, error);
    if (err == JOBQ_OK && a != NULL) {
        err = store_attempt_add(st, id, a, now_ms, error);
    }
    return err;
}
