/* err.c: libjobq's error texts, the per-thread last-error message, nng error translation,
 * state names and jobq_free. */
#include <nng/nng.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* The calling thread's last failure message: jobq_errmsg() returns it. */
static _Thread_local char last_errmsg[512];

static const char *const err_texts[] = {
    [JOBQ_OK] = "success",
    [JOBQ_ENOMEM] = "out of memory",
    [JOBQ_EINVAL] = "invalid argument",
    [JOBQ_ETIMEDOUT] = "timed out",
    [JOBQ_ECLOSED] = "client closed",
    [JOBQ_EPROTO] = "protocol error (malformed request or reply, or unknown op)",
    [JOBQ_ETOOBIG] = "over a size limit of the daemon (message, payload or batch)",
    [JOBQ_ENOENT] = "no such job",
    [JOBQ_EUNAUTH] = "unauthorized",
    [JOBQ_ESTORE] = "the daemon's database failed",
    [JOBQ_EFULL] = "the daemon's disk or queue is full",
    [JOBQ_EUNREACH] = "daemon unreachable",
    [JOBQ_EQUEUE] = "queue not configured (or over the daemon's max_queues)",
    [JOBQ_ESTATE] = "the job's state forbids this",
    [JOBQ_ECONFLICT] = "key already used with a different payload",
    [JOBQ_ESHUTDOWN] = "the daemon is shutting down",
    [JOBQ_EINTERNAL] = "internal error in the daemon",
    [JOBQ_ELEASE] = "the lease on the job has ended (expired, revoked or jobqd restarted)",
    [JOBQ_EBUSY] = "the daemon is at a limit (held requests or connections); retry later",
    [JOBQ_EFORBIDDEN] = "forbidden: the token is read-only (read_token) and this op changes jobs",
    [JOBQ_EUNAVAIL] = "the daemon's database cannot be reached now; nothing was done: retry",
};

JOBQ_API const char *
jobq_strerror(int err)
{
    if (err < 0 || (size_t)err >= sizeof(err_texts) / sizeof(err_texts[0]) ||
        err_texts[err] == NULL) {
        return "unknown error";
    }
    return err_texts[err];
}

JOBQ_API const char *
jobq_errmsg(void)
{
    return last_errmsg;
}

int
jobq__fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_errmsg, sizeof(last_errmsg), fmt, ap);
    va_end(ap);
    return err;
}

int
jobq__from_nng(int nng_err)
{
    switch (nng_err) {
    case 0:
        return JOBQ_OK;
    case NNG_ETIMEDOUT:
        return JOBQ_ETIMEDOUT;
    case NNG_ECLOSED:
        return JOBQ_ECLOSED;
    case NNG_ENOMEM:
        return JOBQ_ENOMEM;
    case NNG_EMSGSIZE:
        return JOBQ_ETOOBIG;
    case NNG_EINVAL:
    case NNG_ENOTSUP:
        return JOBQ_EINVAL;
    case NNG_ECONNREFUSED:
    case NNG_ENOENT:
    case NNG_EADDRINVAL:
    case NNG_EUNREACHABLE:
    case NNG_ECONNABORTED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_EPERM:
        return JOBQ_EUNREACH;
    case NNG_EPROTO:
    case NNG_ECRYPTO:
    case NNG_EPEERAUTH:
        return JOBQ_EPROTO;
    default:
        return JOBQ_EINTERNAL;
    }
}

JOBQ_API const char *
jobq_state_name(int state)
{
    const char *name = jobq__state_name(state);
    return name != NULL ? name : "unknown";
}

JOBQ_API int
jobq_state_parse(const char *name)
{
    return jobq__state_parse(name);
}

JOBQ_API void
jobq_free(void *ptr)
{
    free(ptr);
}
