/* call.h: one request in progress on the loop, and the reply helpers shared by the files
 * that serve requests (jobs.c, admin.c, waits.c, flow.c, workers.c). A reply to a held call
 * nobody waits for any more (hold_gone) is dropped instead of sent. */
#ifndef JOBQD_CALL_H
#define JOBQD_CALL_H

#include <jansson.h>

#include "lifecycle.h"
#include "request.h"
#include "server.h"

/* One request in progress: the decoded request, its store operation and its outputs. */
typedef struct call {
    wop op;
    server *srv;
    icall *ic;
    request req;
    submit_set sub; /* submit: the jobs and what their insert gave (lifecycle.h); its arrays
                     * are one allocation, at sub.specs */
    int *states;    /* wait with cancel_pending: the state each job had when answered */
    job_row row;    /* get, cancel: out */
    int old_state;  /* cancel: out */
    job_row *rows;  /* list: out */
    size_t nrows;
    bool more;             /* list: jobs match after the last of rows */
    size_t failed_at;      /* wait: index of the id that named no job */
    attempt_row *attempts; /* get: the history */
    size_t nattempts;
    int64_t ahead;       /* explain: ready jobs that claim first */
    int64_t key_running; /* explain of a ready keyed job: running jobs of its group_key */
    char **names;        /* bulk retry: the queue of each job of the last chunk */
    size_t nnames;
    size_t retried;      /* bulk retry: jobs made ready so far */
    group_info grp;      /* get, wait of a group: out */
    int64_t parents[16]; /* explain of a waiting job: the parents it waits for */
    size_t nparents;
    struct hold *hold;  /* held (hold.h): its slot, timer and connection; NULL when not */
    void *hold_data;    /* the kind's state while held (a job wait's waiter) */
    bool reread;        /* a held wait ended: read again and reply as things are now */
    int64_t wait_first; /* a wait with return_when first or first_failure: the job that
                         * answered it (0: none) */
    bool claiming;      /* a fetch: a claim for it is in flight */
    bool fetch_ended;   /* a fetch: answer it when that claim completes */
    /* An ack or fail with a fetch: the outcome is recorded while the fetch is held, and the
     * reply waits for both. */
    bool outcome_pending;      /* the outcome is being recorded */
    int outcome_err;           /* it failed: the reply is this error, the fetched jobs go back */
    json_t *extra;             /* the outcome's fields ("job") once recorded */
    json_t *fetched;           /* the fetch's reply, when it came before the outcome */
    struct mutate_run *mutate; /* a mutate in progress (mutate.c, which frees it) */
    log_row *logs;             /* logs: out, the lines read */
    size_t nlogs;
    int log_state;           /* logs: out, the job's state */
    int64_t log_deadline_ms; /* logs: held until this (monotonic; 0: not held yet) */
    int64_t expires_at_ms;   /* get, explain: out, the job's deadline to start (0: none) */
} call;

/** send_json: replies with obj (taking it) and frees the call. */
void send_json(call *c, json_t *obj);

/** reply_error: replies {"ok":false,"error":{code,message}}, logs it, frees the call. */
void reply_error(call *c, const char *code, const char *message);

/** reply_err: reply_error with the wire code of a jobq_err. */
void reply_err(call *c, int err, const char *message);

/** ok_object: a new {"ok":true} to add fields to. */
json_t *ok_object(void);

/** nullable_str: a JSON string, or null for NULL. */
json_t *nullable_str(const char *s);

/** job_json: the job object of proto/PROTOCOL.md. */
json_t *job_json(const job_row *r);

/** call_free: frees the call and what it owns. Accepts NULL. */
void call_free(call *c);

/** call_drop: frees the call without a reply (nobody waits for it any more). */
void call_drop(call *c);

/** call_hold_ended: answers a held wait whose hold ended without its jobs (a hold_end): dropped
 *  (its client is gone: no reply) or shut down (shutting_down). A timeout is the kind's own. */
void call_hold_ended(call *c, int why);

/** call_store: queues c's store operation (exec on the writer's thread, then done on the
 *  loop); it writes when c's op has OPF_WRITES. */
void call_store(call *c, int (*exec)(store *, wop *, int64_t), void (*done)(wop *));

#endif
