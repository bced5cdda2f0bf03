/* flow.h: workflows on the loop: groups (get, wait, completion) and the effects of one job's
 * end on others (dependencies), as the store reports them after a commit. */
#ifndef JOBQD_FLOW_H
#define JOBQD_FLOW_H

#include "call.h"
#include "server.h"

/** flow_effects: the writer's effects_cb: applies a committed batch's store effects to
 *  counts, waiters and dispatch, and frees them. arg is the server. */
void flow_effects(void *arg, store_effect *e, size_t n);

/** flow_group_request: serves get or wait of a group (c->req.group_id). */
void flow_group_request(call *c);

/** flow_part: receives the effects of every commit (flow_effects); held group waits are
 *  answered when jobqd drains. */
extern const server_part flow_part;

#endif
