/* exec.c: the pure parts of the exec contract (environment, output kept, verdict, error text),
 * shared by jobqd and `jobq work`. No I/O. */
#define _GNU_SOURCE /* strsignal */
#include "exec.h"
#include "utf8.h"

#include "duration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
exec_env_build(exec_env *e, char *const *env, const exec_job *job)
{
    size_t n = 0;
    while (env != NULL && env[n] != NULL) {
        n++;
    }
    e->checkpoint = NULL;
    e->parent_results = NULL;
    e->envp = calloc(n + EXEC_ENV_VARS + 3, sizeof(*e->envp));
    if (e->envp == NULL) {
        return false;
    }
    if (job->checkpoint != NULL) {
        size_t cl = strlen(job->checkpoint);
        e->checkpoint = malloc(sizeof("JOBQ_CHECKPOINT=") + cl);
        if (e->checkpoint == NULL) {
            free(e->envp);
            e->envp = NULL;
            return false;
        }
        memcpy(e->checkpoint, "JOBQ_CHECKPOINT=", sizeof("JOBQ_CHECKPOINT=") - 1);
        memcpy(e->checkpoint + sizeof("JOBQ_CHECKPOINT=") - 1, job->checkpoint, cl + 1);
    }
    if (job->parent_results != NULL) {
        size_t pl = strlen(job->parent_results);
        e->parent_results = malloc(sizeof("JOBQ_PARENT_RESULTS=") + pl);
        if (e->parent_results == NULL) {
            free(e->envp);
            free(e->checkpoint);
            e->envp = NULL;
            e->checkpoint = NULL;
            return false;
        }
        memcpy(e->parent_results, "JOBQ_PARENT_RESULTS=", sizeof("JOBQ_PARENT_RESULTS=") - 1);
        memcpy(e->parent_results + sizeof("JOBQ_PARENT_RESULTS=") - 1, job->parent_results,
               pl + 1);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(env[i], "JOBQ_", 5) != 0 && strncmp(env[i], "TRACEPARENT=", 12) != 0 &&
            strncmp(env[i], "TRACESTATE=", 11) != 0) {
            e->envp[k++] = env[i];
        }
    }
    size_t size = sizeof(e->vars[0]);
    int nv = 0;
    snprintf(e->vars[nv++], size, "JOBQ_JOB_ID=%lld", (long long)job->id);
    snprintf(e->vars[nv++], size, "JOBQ_QUEUE=%s", job->queue);
    snprintf(e->vars[nv++], size, "JOBQ_ATTEMPT=%d", (int)job->attempt);
    snprintf(e->vars[nv++], size, "JOBQ_MAX_ATTEMPTS=%d", (int)job->max_attempts);
    if (job->traceparent != NULL) {
        snprintf(e->vars[nv++], size, "TRACEPARENT=%s", job->traceparent);
        if (job->tracestate != NULL) {
            snprintf(e->vars[nv++], size, "TRACESTATE=%s", job->tracestate);
        }
    }
    if (job->control) {
        snprintf(e->vars[nv++], size, "JOBQ_CONTROL_FD=%d", EXEC_CONTROL_FD);
    }
    if (job->group_key != NULL) {
        snprintf(e->vars[nv++], size, "JOBQ_GROUP_KEY=%s", job->group_key);
    }
    for (int i = 0; i < nv; i++) {
        e->envp[k++] = e->vars[i];
    }
    if (e->checkpoint != NULL) {
        e->envp[k++] = e->checkpoint;
    }
    if (e->parent_results != NULL) {
        e->envp[k++] = e->parent_results;
    }
    e->envp[k] = NULL;
    return true;
}

void
exec_env_free(exec_env *e)
{
    free(e->envp);
    free(e->checkpoint);
    free(e->parent_results);
    e->envp = NULL;
    e->checkpoint = NULL;
    e->parent_results = NULL;
}

/* ---- the control pipe ---- */

bool
exec_ctl_init(exec_ctl *c)
{
    *c = (exec_ctl){.buf = malloc(256), .cap = 256};
    return c->buf != NULL;
}

void
exec_ctl_free(exec_ctl *c)
{
    free(c->buf);
    c->buf = NULL;
}

bool
exec_ctl_parse(char *line, size_t len, exec_ctl_msg *m)
{
    if (len > 0 && line[len - 1] == '\r') {
        line[--len] = '\0';
    }
    exec_sanitize(line, len);
    char *sp = memchr(line, ' ', len);
    size_t kw = sp != NULL ? (size_t)(sp - line) : len;
    char *rest = sp != NULL ? sp + 1 : line + len;
    size_t rlen = len - (size_t)(rest - line);
    if (kw == 8 && memcmp(line, "progress", 8) == 0) {
        char *end = NULL;
        double pct = strtod(rest, &end);
        if (end == rest || !(pct >= 0 && pct <= 100) || (*end != ' ' && *end != '\0')) {
            return false;
        }
        const char *note = *end == ' ' ? end + 1 : end;
        size_t nlen = strlen(note);
        nlen = utf8_cut(note, nlen, EXEC_NOTE_MAX);
        ((char *)note)[nlen] = '\0';
        *m = (exec_ctl_msg){.kind = EXEC_CTL_PROGRESS, .pct = pct, .text = note, .len = nlen};
        return true;
    }
    if (kw == 10 && memcmp(line, "checkpoint", 10) == 0 && rlen > 0 &&
        rlen <= EXEC_CHECKPOINT_MAX) {
        *m = (exec_ctl_msg){.kind = EXEC_CTL_CHECKPOINT, .text = rest, .len = rlen};
        return true;
    }
    if (kw == 6 && memcmp(line, "snooze", 6) == 0) {
        int64_t ms;
        if (!jobq__duration_scan(rest, false, &ms) || ms < 0 || ms > EXEC_SNOOZE_MAX_MS) {
            return false;
        }
        *m = (exec_ctl_msg){.kind = EXEC_CTL_SNOOZE, .text = rest, .len = rlen, .ms = ms};
        return true;
    }
    if (kw == 3 && memcmp(line, "log", 3) == 0) {
        rlen = utf8_cut(rest, rlen, EXEC_LOG_LINE_MAX);
        rest[rlen] = '\0';
        *m = (exec_ctl_msg){.kind = EXEC_CTL_LOG, .text = rest, .len = rlen};
        return true;
    }
    return false;
}

/* ctl_room: c's buffer holds need bytes and a NUL; false (the line is dropped) when out of
 * memory. */
static bool
ctl_room(exec_ctl *c, size_t need)
{
    if (need + 1 <= c->cap) {
        return true;
    }
    size_t cap = c->cap;
    while (cap < need + 1) {
        cap *= 2;
    }
    if (cap > EXEC_CTL_LINE_MAX + 1) {
        cap = EXEC_CTL_LINE_MAX + 1;
    }
    char *b = realloc(c->buf, cap);
    if (b == NULL) {
        return false;
    }
    c->buf = b;
    c->cap = cap;
    return true;
}

/* ctl_line: the line buffered in c is whole: parse it and hand it on. */
static void
ctl_line(exec_ctl *c, void (*fn)(void *arg, const exec_ctl_msg *m), void *arg)
{
    c->buf[c->len] = '\0';
    exec_ctl_msg m;
    if (!c->skipping && exec_ctl_parse(c->buf, c->len, &m)) {
        fn(arg, &m);
    }
    c->len = 0;
    c->skipping = false;
}

void
exec_ctl_feed(exec_ctl *c, const char *buf, size_t n,
              void (*fn)(void *arg, const exec_ctl_msg *m), void *arg)
{
    while (n > 0) {
        const char *nl = memchr(buf, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - buf) : n;
        if (!c->skipping) {
            if (c->len + take > EXEC_CTL_LINE_MAX || !ctl_room(c, c->len + take)) {
                c->skipping = true; /* too long: dropped whole */
            } else {
                memcpy(c->buf + c->len, buf, take);
                c->len += take;
            }
        }
        if (nl == NULL) {
            return;
        }
        ctl_line(c, fn, arg);
        buf += take + 1;
        n -= take + 1;
    }
}

void
exec_ctl_end(exec_ctl *c, void (*fn)(void *arg, const exec_ctl_msg *m), void *arg)
{
    if (c->len > 0 || c->skipping) {
        ctl_line(c, fn, arg);
    }
}

/* ---- output kept ---- */

bool
exec_out_init(exec_out *o, size_t cap, bool last)
{
    *o = (exec_out){.buf = malloc((last ? 2 * cap : cap) + 1), .cap = cap, .last = last};
    return o->buf != NULL;
}

void
exec_out_add(exec_out *o, const char *buf, size_t n)
{
    o->total += n;
    if (!o->last) {
        size_t take = n < o->cap - o->len ? n : o->cap - o->len;
        memcpy(o->buf + o->len, buf, take);
        o->len += take;
        return;
    }
    if (n > o->cap) { /* only the tail matters */
        buf += n - o->cap;
        n = o->cap;
    }
    if (o->len + n > 2 * o->cap) {
        size_t keep = o->cap - n < o->len ? o->cap - n : o->len;
        memmove(o->buf, o->buf + o->len - keep, keep);
        o->len = keep;
    }
    memcpy(o->buf + o->len, buf, n);
    o->len += n;
}

const char *
exec_out_kept(const exec_out *o, size_t *np)
{
    size_t n = o->len > o->cap ? o->cap : o->len;
    *np = n;
    return o->buf + o->len - n;
}

char *
exec_out_take(exec_out *o)
{
    if (o->buf == NULL) {
        return NULL;
    }
    size_t n;
    const char *from = exec_out_kept(o, &n);
    memmove(o->buf, from, n);
    o->buf[n] = '\0';
    exec_sanitize(o->buf, n);
    char *text = o->buf;
    char *fit = realloc(text, n + 1); /* give the unused part of the buffer back */
    o->buf = NULL;
    o->len = 0;
    return fit != NULL ? fit : text;
}

void
exec_out_free(exec_out *o)
{
    free(o->buf);
    o->buf = NULL;
}

void
exec_sanitize(char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool okseq = n > 0 && i + n <= len && !(n == 2 && c < 0xc2);
        for (size_t k = 1; okseq && k < n; k++) {
            okseq = ((unsigned char)buf[i + k] & 0xc0) == 0x80;
        }
        if (!okseq || c == 0) {
            buf[i++] = '?';
            continue;
        }
        i += n;
    }
}

/* ---- verdict and error text ---- */

exec_verdict
exec_verdict_of(const exec_end *e, exec_failure *why)
{
    if (e->cancelled) {
        return EXEC_CANCELLED;
    }
    if (e->shutdown) {
        return EXEC_SHUTDOWN;
    }
    if (e->spawn_error != NULL) {
        *why = EXEC_FAIL_SPAWN;
    } else if (e->timed_out) {
        *why = EXEC_FAIL_TIMEOUT;
    } else if (e->term_signal != 0) {
        *why = EXEC_FAIL_SIGNAL;
    } else if (e->exit_status == 0) {
        return EXEC_SUCCEEDED;
    } else if (e->exit_status == EXEC_EXIT_PERMANENT) {
        return EXEC_PERMANENT;
    } else if (e->exit_status == EXEC_EXIT_SNOOZE) {
        return EXEC_SNOOZED;
    } else {
        *why = EXEC_FAIL_EXIT;
    }
    return EXEC_FAILED;
}

void
exec_error_head(const exec_end *e, char *buf, size_t size)
{
    exec_failure why = EXEC_FAIL_EXIT;
    switch (exec_verdict_of(e, &why)) {
    case EXEC_CANCELLED:
        snprintf(buf, size, "%s", e->cancel_why != NULL ? e->cancel_why : "cancelled while running");
        return;
    case EXEC_SHUTDOWN:
        snprintf(buf, size, "interrupted: jobqd shut down before the job finished");
        return;
    case EXEC_PERMANENT:
        snprintf(buf, size, "exit status %d (EX_DATAERR): permanent failure, not retried",
                 EXEC_EXIT_PERMANENT);
        return;
    case EXEC_SNOOZED:
        snprintf(buf, size, "exit status %d: snoozed, runs again later (attempt not counted)",
                 EXEC_EXIT_SNOOZE);
        return;
    case EXEC_SUCCEEDED: /* not a failure; said as what it was */
    case EXEC_FAILED:
        break;
    }
    switch (why) {
    case EXEC_FAIL_SPAWN:
        snprintf(buf, size, "%s", e->spawn_error);
        return;
    case EXEC_FAIL_TIMEOUT:
        snprintf(buf, size, "timed out after %lld ms", (long long)e->timeout_ms);
        return;
    case EXEC_FAIL_SIGNAL:
        snprintf(buf, size, "killed by signal %d (%s)", e->term_signal, strsignal(e->term_signal));
        return;
    case EXEC_FAIL_EXIT:
        break;
    }
    snprintf(buf, size, "exit status %lld", (long long)e->exit_status);
}

char *
exec_error_text(const exec_end *e, const exec_out *err)
{
    char head[256];
    exec_error_head(e, head, sizeof(head));
    size_t tail = 0;
    const char *from = "";
    bool cut = false;
    if (err != NULL && err->buf != NULL) {
        from = exec_out_kept(err, &tail);
        cut = err->total > err->cap;
    }
    while (tail > 0 && (from[tail - 1] == '\n' || from[tail - 1] == '\r')) {
        tail--; /* the last line's newline says nothing */
    }
    /* The first line names the failure and its last words (what dashboards and explain show);
     * the stderr tail follows. */
    size_t last = tail;
    while (last > 0 && from[last - 1] != '\n') {
        last--;
    }
    size_t last_len = tail - last > 160 ? 160 : tail - last;
    size_t total = strlen(head) + last_len + tail + 64;
    char *text = malloc(total);
    if (text == NULL) {
        return NULL;
    }
    if (tail == 0) {
        snprintf(text, total, "%s", head);
        return text;
    }
    size_t n = (size_t)snprintf(text, total, "%s: ", head);
    memcpy(text + n, from + last, last_len);
    exec_sanitize(text + n, last_len);
    for (size_t i = 0; i < last_len; i++) {
        if (text[n + i] == '\r') {
            text[n + i] = ' ';
        }
    }
    n += last_len;
    n += (size_t)snprintf(text + n, total - n, "\nstderr%s:\n", cut ? " (tail)" : "");
    memcpy(text + n, from, tail);
    text[n + tail] = '\0';
    exec_sanitize(text + n, tail);
    return text;
}
