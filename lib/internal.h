/* internal.h: declarations shared by the libjobq sources (jobq__ prefix); not installed. */
#ifndef JOBQ_LIB_INTERNAL_H
#define JOBQ_LIB_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "codec.h"
#include "jobq.h"

#if defined(__GNUC__)
#define JOBQ__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define JOBQ__PRINTF(f, a)
#endif

/** jobq__fail: records a printf-style message as the calling thread's jobq_errmsg() and
 *  returns err, so that `return jobq__fail(JOBQ_EINVAL, "...")` reads naturally. */
int jobq__fail(int err, const char *fmt, ...) JOBQ__PRINTF(2, 3);

/** jobq__from_nng: the jobq_err for an nng error code (the one place that translates them).
 *  Does not touch jobq_errmsg(); callers add the context they know. */
int jobq__from_nng(int nng_err);

/** jobq__call_json: one request/reply round trip on client (client.c). req is a JSON object
 *  (the caller keeps its reference; the client's token is added to it); extra_ms is added to
 *  the client's call timeout (for ops the daemon holds: wait, fetch). On an {"ok": true} reply
 *  *replyp owns it; an {"ok": false} reply returns its code's jobq_err with the daemon's
 *  message as jobq_errmsg(). req NULL counts as out of memory. Any thread. */
int jobq__call_json(jobq_client *client, const char *op, json_t *req, int64_t extra_ms,
                    json_t **replyp);

/** jobq__call_text: jobq__call_json with the request written as text (codec.h's
 *  jobq__jtext) instead of a tree: req holds a JSON object without its closing brace, which
 *  the call writes after the client's token; the caller still frees req->p. req's failed
 *  flag counts as out of memory. Any thread. */
int jobq__call_text(jobq_client *client, const char *op, jobq__jtext *req, int64_t extra_ms,
                    json_t **replyp);

/** jobq__job_from_json: builds a snapshot from a job object of a reply. Takes a new
 *  reference to obj (the caller keeps its own). Returns JOBQ_EPROTO when obj is not a job
 *  object, JOBQ_ENOMEM; on success *jobp owns the snapshot. Any thread. */
int jobq__job_from_json(json_t *obj, jobq_job **jobp);

#endif
