/* dispatch.h: the intake's callback: one request in, decoded, checked and handed to its op's
 * handler. */
#ifndef JOBQD_DISPATCH_H
#define JOBQD_DISPATCH_H

#include <stddef.h>

#include "intake.h"
#include "server.h"

/** dispatch_request: the intake's on_request callback (arg: the server). Decodes body, applies
 *  the op's flags (proto/ops.h) once: refused while draining, a known queue, a held request's
 *  slot; then calls op_NAME (handlers.h). Every path answers ic. Loop thread. */
void dispatch_request(void *arg, icall *ic, const char *body, size_t len);

/** dispatch_part: the job port: listens at start (every [server] listen URL), closes once
 *  drained. */
extern const server_part dispatch_part;

#endif
