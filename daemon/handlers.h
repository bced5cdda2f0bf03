/* handlers.h: the handler of every op of proto/ops.h, op_NAME, each in the module of its
 * subject: jobs.c (jobs), admin.c (jobqd and queues), workers.c (remote workers). The
 * dispatcher (dispatch.c) calls it once the request is decoded and the op's flags are
 * checked; the handler owns the call from then on and answers it. Loop thread. */
#ifndef JOBQD_HANDLERS_H
#define JOBQD_HANDLERS_H

#include "call.h"

#define X(NAME, name, fields, flags) void op_##name(call *c);
JOBQ_OPS(X)
#undef X

#endif
