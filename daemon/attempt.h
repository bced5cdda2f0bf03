/* attempt.h: recording the end of an attempt: one store operation that writes the job's new
 * state and a row of history, then updates counts, the breaker and waiters on the loop.
 * Shared by the exec runners, remote-worker leases and webhooks. */
#ifndef JOBQD_ATTEMPT_H
#define JOBQD_ATTEMPT_H

#include "outcome.h"
#include "progress.h"
#include "server.h"


typedef struct attempt attempt;

/** attempt_done_cb: the record committed (err == JOBQ_OK: a->job shows the new state; counts,
 *  the breaker and waiters are updated right after this returns), or the store failed (the
 *  job is still running in the database; the owner may call attempt_record again later). */
typedef void (*attempt_done_cb)(attempt *a, int err);

struct attempt {
    wop op;
    server *s;
    qstate *q;
    job_row job;         /* the running job (owned); its new state once recorded */
    run_outcome outcome; /* what to record (outcome_decide) */
    char *result;        /* owned; kept on success */
    char *error;         /* owned; the failure's text */
    attempt_done_cb done;           /* gives the owner's slot back; must not free a */
    void (*release)(attempt *a);    /* optional: called last; the owner may free a here */
    progress_slot prog;             /* what the attempt reported, not written yet */
    progress_pending prog_rec;      /* what its record writes with the outcome */
};

/** attempt_record: commits a->outcome for a->job (result and error move into a->job when it
 *  succeeds), with what the attempt reported and was not written yet (progress.h), then calls
 *  a->done. Loop thread. */
void attempt_record(attempt *a);

/** attempt_record_group: attempt_record for as[0..n), in one transaction (each its own unit
 *  in it: a failed record fails alone). Loop thread. */
void attempt_record_group(attempt *const *as, size_t n);

/** attempt_clear: frees what a owns. */
void attempt_clear(attempt *a);

#endif
