/* expiry.h: jobs with a deadline to start (expires_at): one timer armed at the earliest
 * deadline of a job not started, whose sweep cancels the expired ones (error "expired") so the
 * counts stay true; claims cancel them too before they pick (scheduler.c). Loop thread. */
#ifndef JOBQD_EXPIRY_H
#define JOBQD_EXPIRY_H

#include <stdint.h>

#include "server.h"

/** expiry_part: the timer, armed from the store at start, closed once drained. Before the
 *  scheduler's part: a claim reads s->next_expiry_ms. */
extern const server_part expiry_part;

/** expiry_note: a job not started has deadline at_ms (a submit): the timer is armed at it
 *  if it is the earliest. */
void expiry_note(server *s, int64_t at_ms);

#endif
