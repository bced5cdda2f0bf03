/* progress.c: a running job's progress, checkpoint and log lines: kept per attempt, written
 * coalesced (one relaxed store operation a second for every attempt that reported), and the
 * `logs` op, held until lines of its job commit or the job ends. */
#include "progress.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "exec.h"
#include "hold.h"
#include "log.h"
#include "queues.h"

/* ---- pending reports ---- */

void
progress_pending_free(progress_pending *p)
{
    free(p->note);
    free(p->checkpoint);
    for (size_t i = 0; i < p->nlines; i++) {
        free(p->lines[i]);
    }
    free(p->lines);
    memset(p, 0, sizeof(*p));
}

/* drop_oldest: forgets p's oldest lines beyond the newest ones the store would keep (at most
 * PROGRESS_LOG_LINES and PROGRESS_LOG_BYTES). Called when twice that is reached, so a
 * command that floods its log costs bounded memory and amortised constant time per line. */
static void
drop_oldest(progress_pending *p)
{
    size_t keep = 0, bytes = 0;
    while (keep < p->nlines && keep < PROGRESS_LOG_LINES) {
        size_t len = strlen(p->lines[p->nlines - 1 - keep]);
        if (keep > 0 && bytes + len > PROGRESS_LOG_BYTES) {
            break;
        }
        bytes += len;
        keep++;
    }
    size_t drop = p->nlines - keep;
    for (size_t i = 0; i < drop; i++) {
        free(p->lines[i]);
    }
    memmove(p->lines, p->lines + drop, keep * sizeof(*p->lines));
    p->nlines = keep;
    p->bytes = bytes;
}

/* add_line: appends line (taken) to p; false when out of memory (line freed). */
static bool
add_line(progress_pending *p, char *line)
{
    size_t len = strlen(line);
    if (p->nlines >= 2 * PROGRESS_LOG_LINES || p->bytes + len > 2 * PROGRESS_LOG_BYTES) {
        drop_oldest(p);
    }
    if (p->nlines == p->caplines) {
        size_t cap = p->caplines ? 2 * p->caplines : 16;
        char **l = realloc(p->lines, cap * sizeof(*l));
        if (l == NULL) {
            free(line);
            return false;
        }
        p->lines = l;
        p->caplines = cap;
    }
    p->lines[p->nlines++] = line;
    p->bytes += len;
    return true;
}

/* merge: moves what from holds into into (newer progress and checkpoint replace older ones;
 * lines are appended), leaving from empty. */
static void
merge(progress_pending *into, progress_pending *from)
{
    if (from->has_progress) {
        into->has_progress = true;
        into->pct = from->pct;
        free(into->note);
        into->note = from->note;
        from->note = NULL;
    }
    if (from->checkpoint != NULL) {
        free(into->checkpoint);
        into->checkpoint = from->checkpoint;
        from->checkpoint = NULL;
    }
    for (size_t i = 0; i < from->nlines; i++) {
        (void)add_line(into, from->lines[i]);
        from->lines[i] = NULL;
    }
    from->nlines = 0;
    progress_pending_free(from);
}

static void flush_cb(uv_timer_t *t);

/* mark: slot has something to write: it joins the list, and the timer is armed. */
static void
mark(server *s, progress_slot *slot, int64_t id, int32_t attempt)
{
    slot->job_id = id;
    slot->attempt = attempt;
    if (slot->dirty) {
        return;
    }
    slot->dirty = true;
    slot->prev = NULL;
    slot->next = s->prog_dirty;
    if (s->prog_dirty != NULL) {
        s->prog_dirty->prev = slot;
    }
    s->prog_dirty = slot;
    if (!uv_is_active((uv_handle_t *)&s->prog_timer) && !s->closing) {
        uv_timer_start(&s->prog_timer, flush_cb, PROGRESS_FLUSH_MS, 0);
    }
}

static void
unmark(server *s, progress_slot *slot)
{
    if (!slot->dirty) {
        return;
    }
    if (slot->prev != NULL) {
        slot->prev->next = slot->next;
    } else {
        s->prog_dirty = slot->next;
    }
    if (slot->next != NULL) {
        slot->next->prev = slot->prev;
    }
    slot->dirty = false;
    slot->next = slot->prev = NULL;
}

/* dup_n: a NUL-terminated copy of text[0..len), NULL when out of memory. */
static char *
dup_n(const char *text, size_t len)
{
    char *t = malloc(len + 1);
    if (t != NULL) {
        memcpy(t, text, len);
        t[len] = '\0';
    }
    return t;
}

void
progress_report(server *s, progress_slot *slot, int64_t id, int32_t attempt, double pct,
                const char *note, size_t note_len)
{
    char *n = NULL;
    if (note != NULL && note_len > 0 && (n = dup_n(note, note_len)) == NULL) {
        return;
    }
    slot->p.has_progress = true;
    slot->p.pct = pct;
    free(slot->p.note);
    slot->p.note = n;
    mark(s, slot, id, attempt);
}

bool
progress_checkpoint(server *s, progress_slot *slot, int64_t id, int32_t attempt, const char *json,
                    size_t len)
{
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        return false;
    }
    char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (compact == NULL || strlen(compact) > REQ_CHECKPOINT_MAX) {
        free(compact);
        return false;
    }
    free(slot->p.checkpoint);
    slot->p.checkpoint = compact;
    mark(s, slot, id, attempt);
    return true;
}

void
progress_log(server *s, progress_slot *slot, int64_t id, int32_t attempt, const char *line,
             size_t len)
{
    if (len > EXEC_LOG_LINE_MAX) {
        len = EXEC_LOG_LINE_MAX;
        while (len > 0 && ((unsigned char)line[len] & 0xC0) == 0x80) {
            len--; /* not in the middle of a UTF-8 sequence */
        }
    }
    char *l = dup_n(line, len);
    if (l != NULL && add_line(&slot->p, l)) {
        mark(s, slot, id, attempt);
    }
}

void
progress_take(server *s, progress_slot *slot, progress_pending *out)
{
    unmark(s, slot);
    merge(out, &slot->p);
}

void
progress_forget(server *s, progress_slot *slot)
{
    if (s != NULL) {
        unmark(s, slot);
    }
    progress_pending_free(&slot->p);
}

int
progress_write(store *st, int64_t id, int32_t attempt, const progress_pending *p, int64_t now_ms)
{
    int err = JOBQ_OK;
    if (p->has_progress || p->checkpoint != NULL) {
        progress_set set = {.has_progress = p->has_progress,
                            .progress = p->pct,
                            .note = p->note,
                            .checkpoint = p->checkpoint};
        err = store_job_progress(st, id, &set);
    } else if (p->nlines > 0) {
        int state;
        err = store_job_state(st, id, &state); /* no log for a job that is gone */
    }
    if (err == JOBQ_OK && p->nlines > 0) {
        err = store_log_append(st, id, attempt, now_ms, (const char *const *)p->lines, p->nlines,
                               PROGRESS_LOG_LINES, PROGRESS_LOG_BYTES, NULL);
    }
    return err == JOBQ_ENOENT ? JOBQ_OK : err;
}

/* ---- the flush: one relaxed operation for every attempt that reported ---- */

typedef struct flush_item {
    int64_t id;
    int32_t attempt;
    progress_pending p;
} flush_item;

typedef struct flush_op {
    wop op;
    server *s;
    size_t n;
    flush_item items[];
} flush_op;

static int
exec_flush(store *st, wop *op, int64_t now_ms)
{
    flush_op *f = container_of(op, flush_op, op);
    for (size_t i = 0; i < f->n; i++) {
        int err = progress_write(st, f->items[i].id, f->items[i].attempt, &f->items[i].p, now_ms);
        if (err != JOBQ_OK) {
            return err;
        }
    }
    return JOBQ_OK;
}

static void
done_flush(wop *op)
{
    flush_op *f = container_of(op, flush_op, op);
    if (op->err != JOBQ_OK) {
        /* Relaxed reports: the next ones (or the outcome) carry newer progress. */
        log_warn("progress_lost", "jobs=%zu err=%s", f->n, jobq__err_code(op->err));
    }
    for (size_t i = 0; i < f->n; i++) {
        if (op->err == JOBQ_OK && f->items[i].p.nlines > 0) {
            progress_logs_changed(f->s, f->items[i].id);
        }
        progress_pending_free(&f->items[i].p);
    }
    free(f);
}

static void
flush_cb(uv_timer_t *t)
{
    server *s = container_of(t, server, prog_timer);
    size_t n = 0;
    for (progress_slot *slot = s->prog_dirty; slot != NULL; slot = slot->next) {
        n++;
    }
    if (n == 0) {
        return;
    }
    flush_op *f = calloc(1, sizeof(*f) + n * sizeof(f->items[0]));
    if (f == NULL) {
        uv_timer_start(&s->prog_timer, flush_cb, PROGRESS_FLUSH_MS, 0); /* try again later */
        return;
    }
    f->s = s;
    while (s->prog_dirty != NULL) {
        progress_slot *slot = s->prog_dirty;
        flush_item *it = &f->items[f->n++];
        it->id = slot->job_id;
        it->attempt = slot->attempt;
        progress_take(s, slot, &it->p);
    }
    f->op.exec = exec_flush;
    f->op.done = done_flush;
    f->op.writes = true;
    f->op.relaxed = true; /* lost to a power cut: the job reports again, or resumes earlier */
    writer_push(&s->w, &f->op);
}

/* ---- the logs op ---- */

static void logs_read(call *c);

/* logs_reply: the lines read, the cursor to pass next, and whether the job ended with no
 * line left after them. */
static void
logs_reply(call *c)
{
    hold_stop(c);
    json_t *o = ok_object();
    json_t *lines = json_array();
    int64_t next = c->req.after_id;
    for (size_t i = 0; i < c->nlogs; i++) {
        const log_row *l = &c->logs[i];
        json_array_append_new(lines, json_pack("{s:I, s:i, s:I, s:s}", "seq", (json_int_t)l->seq,
                                               "attempt", (int)l->attempt, "at",
                                               (json_int_t)l->at_ms, "line", l->line));
        next = l->seq;
    }
    json_object_set_new(o, "id", json_integer(c->req.ids[0]));
    json_object_set_new(o, "state", json_string(jobq__state_name(c->log_state)));
    json_object_set_new(o, "done", json_boolean(queue_job_ended(c->log_state) &&
                                                 c->nlogs < (size_t)c->req.limit));
    json_object_set_new(o, "lines", lines);
    json_object_set_new(o, "next", json_integer(next));
    send_json(c, o);
}

static void
logs_hold_end(call *c, hold_end why)
{
    switch (why) {
    case HOLD_TIMEOUT:
        c->reread = true; /* answer as things are now */
        logs_read(c);
        return;
    case HOLD_DROPPED:
        call_drop(c);
        return;
    case HOLD_SHUTDOWN:
        reply_error(c, "shutting_down", "jobqd is shutting down; ask again when it is back");
        return;
    }
}

static int
exec_logs(store *st, wop *op, int64_t now_ms)
{
    (void)now_ms;
    call *c = container_of(op, call, op);
    for (size_t i = 0; i < c->nlogs; i++) {
        log_row_clear(&c->logs[i]);
    }
    c->nlogs = 0;
    int err = store_job_state(st, c->req.ids[0], &c->log_state);
    if (err != JOBQ_OK) {
        return err;
    }
    if (c->logs == NULL && (c->logs = calloc((size_t)c->req.limit, sizeof(*c->logs))) == NULL) {
        return JOBQ_ENOMEM;
    }
    return store_logs(st, c->req.ids[0], c->req.after_id, c->logs, (size_t)c->req.limit,
                      &c->nlogs);
}

static void
done_logs(wop *op)
{
    call *c = container_of(op, call, op);
    if (op->err == JOBQ_ENOENT) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no job %lld", (long long)c->req.ids[0]);
        reply_error(c, "not_found", msg);
        return;
    }
    if (op->err != JOBQ_OK) {
        reply_err(c, op->err, writer_last_error(&c->srv->w));
        return;
    }
    int64_t now = jobq__mono_ms();
    if (c->log_deadline_ms == 0) {
        c->log_deadline_ms = now + c->req.timeout_ms;
    }
    int64_t left = c->log_deadline_ms - now;
    if (c->nlogs > 0 || queue_job_ended(c->log_state) || c->req.timeout_ms <= 0 || c->reread ||
        left <= 0 || !hold_start(c, HOLD_LOGS, left, logs_hold_end)) {
        logs_reply(c);
    }
}

/* logs_read: reads c's lines (and its job's state) again. */
static void
logs_read(call *c)
{
    call_store(c, exec_logs, done_logs);
}

void
progress_logs_request(call *c)
{
    logs_read(c);
}

void
progress_logs_changed(server *s, int64_t id)
{
    call *next;
    for (call *c = hold_next(s, NULL, HOLD_LOGS); c != NULL; c = next) {
        next = hold_next(s, c, HOLD_LOGS);
        if (c->req.ids[0] == id) {
            hold_stop(c);
            logs_read(c);
        }
    }
}

/* ---- the part ---- */

static int
progress_init(server *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    uv_timer_init(s->loop, &s->prog_timer);
    return 0;
}

/* progress_close: drained: held logs are answered shutting_down (reports of the attempts that
 * ran went with their outcomes). */
static void
progress_close(server *s)
{
    hold_shutdown(s, HOLD_LOGS);
    uv_timer_stop(&s->prog_timer);
    uv_close((uv_handle_t *)&s->prog_timer, NULL);
}

const server_part progress_part = {
    .name = "progress", .init = progress_init, .close = progress_close};
