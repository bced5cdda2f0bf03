/* attempt.c: the one place that records how an attempt ended. */
#include "attempt.h"

#include <stdbool.h>
#include <stdlib.h>

#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"
#include "waits.h"

static int
exec_attempt(store *st, wop *op, int64_t now_ms)
{
    attempt *a = container_of(op, attempt, op);
    attempt_rec rec = {.attempt = a->job.attempt,
                       .started_at_ms = a->job.started_at_ms,
                       .kind = a->outcome.kind};
    int err = progress_write(st, a->job.id, a->job.attempt, &a->prog_rec, now_ms);
    if (err != JOBQ_OK) {
        return err;
    }
    if (a->outcome.state == JOBQ_READY) {
        return store_requeue(st, a->job.id, now_ms, a->error, &rec);
    }
    if (a->outcome.state == JOBQ_SCHEDULED) {
        return lifecycle_snooze(st, a->job.id, now_ms, a->outcome.run_at_ms, a->error, &rec);
    }
    a->job.finished_at_ms = now_ms;
    return lifecycle_finish(st, a->job.id, a->outcome.state, now_ms, a->outcome.run_at_ms,
                            a->result, a->error, &rec);
}

/* exec_attempts: exec_attempt of op and the n - 1 attempts after it, all plain ends (see
 * plain_end), in one lifecycle_finish_many. */
static int
exec_attempts(store *st, wop *op, size_t n, int64_t now_ms)
{
    job_end ends[64];
    if (n > 64) {
        return JOBQ_EINVAL; /* the writer runs them one by one */
    }
    wop *o = op;
    for (size_t i = 0; i < n; i++, o = o->next) {
        attempt *a = container_of(o, attempt, op);
        ends[i] = (job_end){.id = a->job.id,
                            .new_state = a->outcome.state,
                            .run_at_ms = a->outcome.run_at_ms,
                            .result = a->result,
                            .error = a->error,
                            .a = {.attempt = a->job.attempt,
                                  .started_at_ms = a->job.started_at_ms,
                                  .kind = a->outcome.kind}};
    }
    int err = lifecycle_finish_many(st, ends, n, now_ms);
    if (err != JOBQ_OK) {
        return err;
    }
    o = op;
    for (size_t i = 0; i < n; i++, o = o->next) {
        o->err = ends[i].err;
        container_of(o, attempt, op)->job.finished_at_ms = now_ms;
    }
    return JOBQ_OK;
}

/* plain_end: a record exec_attempts can make with others: the attempt ended (succeeded, dead,
 * cancelled) or is retried later, with no reports to write beside it. */
static bool
plain_end(const attempt *a)
{
    const progress_pending *p = &a->prog_rec;
    return a->outcome.state != JOBQ_READY && a->outcome.state != JOBQ_SCHEDULED &&
           !p->has_progress && p->checkpoint == NULL && p->nlines == 0;
}

static void
done_attempt(wop *op)
{
    attempt *a = container_of(op, attempt, op);
    bool recorded = op->err == JOBQ_OK;
    bool lines = recorded && a->prog_rec.nlines > 0;
    if (op->err == JOBQ_OK || op->err == JOBQ_ESTATE) {
        /* Written, or the job was cancelled meanwhile (and the reports with it): a retry of
         * the record (after a store failure) writes them again otherwise. */
        progress_pending_free(&a->prog_rec);
    }
    if (recorded) {
        job_row *j = &a->job;
        j->state = a->outcome.state;
        if (a->outcome.state == JOBQ_RETRYING) {
            j->run_at_ms = a->outcome.run_at_ms;
            j->finished_at_ms = 0;
        } else if (a->outcome.state == JOBQ_READY) {
            j->finished_at_ms = 0;
            j->attempt--; /* store_requeue gave the attempt back */
        } else if (a->outcome.state == JOBQ_SCHEDULED) {
            j->run_at_ms = a->outcome.run_at_ms; /* snoozed: the attempt was given back */
            j->finished_at_ms = 0;
            j->attempt--;
        }
        free(j->result);
        free(j->error);
        j->result = a->result;
        j->error = a->error;
        a->result = a->error = NULL;
    }
    /* The owner gives its slot back first, so the dispatch below can fill it. */
    server *s = a->s;
    qstate *q = a->q;
    outcome_kind kind = OUTCOME_SHUTDOWN; /* an unknown name says nothing of the downstream */
    if (!outcome_kind_from_name(a->outcome.kind, &kind)) {
        log_error("outcome_kind_unknown", "job=%lld kind=%s", (long long)a->job.id,
                  a->outcome.kind != NULL ? a->outcome.kind : "(null)");
    }
    a->done(a, op->err == JOBQ_ESTATE ? JOBQ_OK : op->err);
    if (recorded) {
        if (a->outcome.state == JOBQ_SCHEDULED) {
            sched_note_due(s, a->outcome.run_at_ms);
        }
        sched_outcome(s, q, kind);
        waits_job_finished(s, q, &a->job, JOBQ_RUNNING);
    }
    if (lines) {
        progress_logs_changed(s, a->job.id);
    }
    if (a->release != NULL) {
        a->release(a);
    }
}

void
attempt_record(attempt *a)
{
    progress_take(a->s, &a->prog, &a->prog_rec);
    a->op.exec = exec_attempt;
    a->op.exec_many = plain_end(a) ? exec_attempts : NULL;
    a->op.done = done_attempt;
    a->op.writes = true;
    a->op.relaxed = true; /* an outcome lost to a power cut only makes the job run again */
    writer_push(&a->s->w, &a->op);
}

void
attempt_record_group(attempt *const *as, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        attempt *a = as[i];
        progress_take(a->s, &a->prog, &a->prog_rec);
        a->op.exec = exec_attempt;
        a->op.exec_many = plain_end(a) ? exec_attempts : NULL;
        a->op.done = done_attempt;
        a->op.writes = true;
        a->op.relaxed = true; /* as attempt_record's */
        a->op.next = i + 1 < n ? &as[i + 1]->op : NULL;
    }
    if (n > 0) {
        writer_push_group(&as[0]->s->w, &as[0]->op);
    }
}

void
attempt_clear(attempt *a)
{
    progress_forget(a->s, &a->prog);
    progress_pending_free(&a->prog_rec);
    job_row_clear(&a->job);
    free(a->result);
    free(a->error);
    a->result = a->error = NULL;
}
