/* hold.h: the one registry of held requests (waits on jobs and on groups, long-poll fetches,
 * cancels of running jobs): admission against max_waits and max_waits_per_connection, one
 * timer per hold, ownership by the connection the request came on (its close drops every
 * hold at once), and a request sent again replacing the earlier one. Loop thread. */
#ifndef JOBQD_HOLD_H
#define JOBQD_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "call.h"
#include "server.h"

/** What a hold waits for. */
typedef enum hold_kind {
    HOLD_WAIT,       /* jobs to end (waits.c) */
    HOLD_GROUP_WAIT, /* a group to complete (flow.c) */
    HOLD_FETCH,      /* a ready job for a remote worker (workers.c) */
    HOLD_CANCEL,     /* a running job's cancel to be recorded (waits.c) */
    HOLD_LOGS,       /* a job's log lines after a cursor, or its end (progress.c) */
    HOLD_KINDS
} hold_kind;

/** Why a hold ended other than by what it waits for. */
typedef enum hold_end {
    HOLD_TIMEOUT,  /* its timeout passed: answer as things are now */
    HOLD_DROPPED,  /* its connection closed, or the request was sent again: answer nothing
                    * (call_drop), and claim nothing for it */
    HOLD_SHUTDOWN, /* jobqd stops: answer now (shutting_down, or an empty fetch) */
} hold_end;

/** hold_end_cb: the hold of c ended for why; it is no longer waiting (hold_next skips it).
 *  The kind takes c out of its own index and answers or drops it; it frees no other call. */
typedef void (*hold_end_cb)(call *c, hold_end why);

/** hold_init: an empty registry in s. Before the loop runs; 0, or -1 on out of memory. */
int hold_init(server *s);

/** hold_admit: a request of kind that may be held (timeout over 0) takes a slot of max_waits
 *  and of its connection's max_waits_per_connection, counted in s->nheld until call_free;
 *  an earlier held request of the same connection with the same SP request id is dropped
 *  first (a REQ socket sent it again). A poll (timeout 0) passes without a slot. Returns
 *  NULL when admitted; else the wire error code (too_many_waits, or internal when out of
 *  memory) with a message for people in msg; the caller answers c. */
const char *hold_admit(call *c, hold_kind kind, char *msg, size_t msglen);

/** hold_start: c waits (kind), until cb is called or hold_stop. timeout_ms < 0: no timer.
 *  A call not admitted (a cancel, a fetch polling with timeout 0) gets an uncounted hold,
 *  still owned by its connection. If c's connection is already gone, cb(c, HOLD_DROPPED)
 *  runs at once. Returns false on out of memory (c is not held; the caller answers it). */
bool hold_start(call *c, hold_kind kind, int64_t timeout_ms, hold_end_cb cb);

/** hold_stop: what c waited for came: its timer stops and hold_next skips it; its slot stays
 *  taken until the call is freed. Accepts a call without a hold. */
void hold_stop(call *c);

/** hold_waiting: whether c is held and waiting (hold_start, not yet ended or stopped). */
bool hold_waiting(const call *c);

/** hold_gone: nobody waits for c's reply any more (its connection closed, or the request was
 *  sent again): jobs claimed for it go back. */
bool hold_gone(const call *c);

/** hold_next: the next waiting call of kind after prev (NULL: the first), oldest first. The
 *  caller may stop or end the call it holds, not the one returned next. */
call *hold_next(server *s, call *prev, hold_kind kind);

/** hold_conn_closed: the intake's callback: every request the connection holds is dropped
 *  now and its slot freed. arg is the server. */
void hold_conn_closed(void *arg, uint64_t conn);

/** hold_shutdown: every waiting hold of kind ends with HOLD_SHUTDOWN. */
void hold_shutdown(server *s, hold_kind kind);

/** hold_release: call_free's part: frees c's hold and its slot. */
void hold_release(call *c);

/** hold_close: frees the registry (every call is freed; the loop is ending). */
void hold_close(server *s);

/** hold_part: the registry of held requests (hold_init, hold_close). */
extern const server_part hold_part;

#endif
