/* flow.c: workflows on the loop: what the store's effects mean for counts, waiters and
 * dispatch (dependent jobs released or cancelled, groups completed, completion jobs
 * submitted), and the get and wait of a group. */
#include "flow.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hold.h"
#include "log.h"
#include "scheduler.h"
#include "waits.h"

/* A wait on a group is held (hold.h, HOLD_GROUP_WAIT) until the group completes or the
 * timeout; then the group is read again and the wait replied as it is. */

static void start_group_read(call *c);

/* ---- effects ---- */

static void
group_completed(server *s, int64_t gid)
{
    call *next;
    for (call *c = hold_next(s, NULL, HOLD_GROUP_WAIT); c != NULL; c = next) {
        next = hold_next(s, c, HOLD_GROUP_WAIT);
        if (c->req.group_id == gid) {
            hold_stop(c);
            c->reread = true; /* read again and reply as it is now */
            start_group_read(c);
        }
    }
}

void
flow_effects(void *arg, store_effect *e, size_t n)
{
    server *s = arg;
    for (size_t i = 0; i < n; i++) {
        if (e[i].kind == EFFECT_GROUP) {
            log_debug("group_completed", "group=%lld", (long long)e[i].id);
            group_completed(s, e[i].id);
            continue;
        }
        qstate *q = queue_add(s, e[i].queue);
        if (q == NULL) {
            continue;
        }
        if (e[i].expired) {
            q->totals[TOTAL_EXPIRED]++;
        }
        if (store_state_ends(e[i].to)) {
            log_info("job_cancelled", "id=%lld queue=%s reason=\"%s\"", (long long)e[i].id, q->name,
                     e[i].row.error != NULL ? e[i].row.error : "");
            waits_job_finished(s, q, &e[i].row, e[i].from);
            continue;
        }
        queue_count_move(q, e[i].from, e[i].to);
        if (e[i].to == JOBQ_SCHEDULED) {
            sched_note_due(s, e[i].run_at_ms);
        } else {
            sched_dispatch(s, q);
        }
        if (e[i].from < 0) {
            log_info("group_on_complete", "id=%lld queue=%s", (long long)e[i].id, q->name);
        }
    }
    store_effects_free(e, n);
}

/* ---- get and wait of a group ---- */

static int
exec_group_read(store *st, wop *op, int64_t now_ms)
{
    call *c = container_of(op, call, op);
    group_info_clear(&c->grp);
    return store_group_get(st, c->req.group_id, c->req.op == REQ_WAIT, &c->grp);
}

/* group_json: the group object of proto/PROTOCOL.md. */
static json_t *
group_json(const group_info *g)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(g->id));
    json_object_set_new(o, "size", json_integer(g->size));
    json_object_set_new(o, "done", json_boolean(g->completed_at_ms != 0));
    json_t *counts = json_object();
    for (int st = 0; st <= JOBQ_WAITING; st++) {
        json_object_set_new(counts, jobq__state_name(st), json_integer(g->counts[st]));
    }
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "created_at", json_integer(g->created_at_ms));
    json_object_set_new(o, "completed_at",
                        g->completed_at_ms != 0 ? json_integer(g->completed_at_ms) : json_null());
    if (g->oc_queue != NULL) {
        json_t *oc = json_object();
        json_object_set_new(oc, "queue", json_string(g->oc_queue));
        json_object_set_new(oc, "id", g->oc_job_id != 0 ? json_integer(g->oc_job_id) : json_null());
        json_object_set_new(o, "on_complete", oc);
    } else {
        json_object_set_new(o, "on_complete", json_null());
    }
    return o;
}

static void group_hold_end(call *c, hold_end why);

/* group_wait_jobs: a wait on a group for its first job to end (or fail) is a wait on the
 * group's jobs (read just now): it is held and answered as a wait on their ids. */
static void
group_wait_jobs(call *c)
{
    size_t n = c->grp.nmembers;
    int64_t *ids = calloc(n > 0 ? n : 1, sizeof(*ids));
    if (ids == NULL) {
        reply_error(c, "internal", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = c->grp.members[i].id;
    }
    free(c->req.ids);
    c->req.ids = ids;
    c->req.nids = n;
    wait_jobs(c);
}

static void
done_group_read(wop *op)
{
    call *c = container_of(op, call, op);
    server *s = c->srv;
    if (op->err != JOBQ_OK) {
        char msg[128];
        if (op->err == JOBQ_ENOENT) {
            snprintf(msg, sizeof(msg), "no group with id %lld", (long long)c->req.group_id);
        } else {
            snprintf(msg, sizeof(msg), "%s", writer_last_error(&s->w));
        }
        reply_err(c, op->err, msg);
        return;
    }
    bool done = c->grp.completed_at_ms != 0;
    if (c->req.op == REQ_WAIT && c->req.return_when != WAIT_ALL) {
        group_wait_jobs(c);
        return;
    }
    if (c->req.op == REQ_WAIT && !done && c->req.timeout_ms > 0 && !c->reread && !s->draining &&
        !hold_gone(c)) {
        if (!hold_start(c, HOLD_GROUP_WAIT, c->req.timeout_ms, group_hold_end)) {
            reply_error(c, "internal", "out of memory");
        }
        return;
    }
    json_t *o = ok_object();
    json_object_set_new(o, "group", group_json(&c->grp));
    if (c->req.op == REQ_WAIT) {
        json_object_set_new(o, "done", json_boolean(done));
        json_t *jobs = json_array();
        for (size_t i = 0; i < c->grp.nmembers; i++) {
            const group_member *m = &c->grp.members[i];
            json_t *j = json_object();
            json_object_set_new(j, "id", json_integer(m->id));
            json_object_set_new(j, "state", json_string(jobq__state_name(m->state)));
            json_object_set_new(j, "attempt", json_integer(m->attempt));
            json_object_set_new(j, "error", nullable_str(m->error));
            json_array_append_new(jobs, j);
        }
        json_object_set_new(o, "jobs", jobs);
    }
    send_json(c, o);
}

static void
start_group_read(call *c)
{
    c->op.exec = exec_group_read;
    c->op.done = done_group_read;
    c->op.writes = false;
    writer_push(&c->srv->w, &c->op);
}

/* group_hold_end: the wait's time is up (read again and reply as it is now), its client is
 * gone, or jobqd stops. */
static void
group_hold_end(call *c, hold_end why)
{
    switch (why) {
    case HOLD_TIMEOUT:
        c->reread = true;
        group_info_clear(&c->grp);
        start_group_read(c);
        return;
    case HOLD_DROPPED:
    case HOLD_SHUTDOWN:
        call_hold_ended(c, why);
        return;
    }
}

void
flow_group_request(call *c)
{
    start_group_read(c);
}

static int
flow_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s->w.effects_cb = flow_effects;
    s->w.effects_arg = s;
    return 0;
}

/* flow_close: drained: the group waits still held are answered shutting_down. */
static void
flow_close(server *s)
{
    hold_shutdown(s, HOLD_GROUP_WAIT);
}

const server_part flow_part = {.name = "flow", .init = flow_init, .close = flow_close};
