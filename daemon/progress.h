/* progress.h: what a running job reports besides its outcome: progress (0 to 100, a short
 * note), a checkpoint (JSON) and log lines, from an exec command's control pipe (runner.c)
 * and a remote worker's heartbeats (workers.c). Reports are kept on the attempt and written
 * coalesced: one relaxed store operation a second carries every attempt that reported, and
 * what is left when an attempt ends goes in the transaction of its outcome (attempt.c), so a
 * checkpoint reported before a kill -9 of the command is the next attempt's. Held `logs`
 * requests are answered when lines of their job commit or the job ends. Loop thread. */
#ifndef JOBQD_PROGRESS_H
#define JOBQD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "server.h"

/** How often, at most, an attempt's reports are written (ms). */
#define PROGRESS_FLUSH_MS 1000
/** A job's log as kept: the newest lines within these (older ones are dropped). */
#define PROGRESS_LOG_LINES 1000
#define PROGRESS_LOG_BYTES (256 * 1024)

/** What an attempt reported and has not been written yet. Owned strings. */
typedef struct progress_pending {
    bool has_progress;
    double pct;
    char *note;       /* NULL: none */
    char *checkpoint; /* compact JSON; NULL: none reported */
    char **lines;     /* log lines, oldest first */
    size_t nlines, caplines;
    size_t bytes; /* of lines */
} progress_pending;

/** Where an attempt's reports live (embedded in struct attempt). */
typedef struct progress_slot {
    progress_pending p;
    bool dirty; /* in the list of reports to write */
    struct progress_slot *next, *prev;
    int64_t job_id;
    int32_t attempt;
} progress_slot;

/** progress_report: job id's attempt (slot) reports progress pct (0..100) with note (NULL:
 *  none): it replaces an earlier one not yet written. */
void progress_report(server *s, progress_slot *slot, int64_t id, int32_t attempt, double pct,
                     const char *note, size_t note_len);

/** progress_checkpoint: the attempt's checkpoint, JSON text (checked and made compact here;
 *  not JSON: ignored, false). */
bool progress_checkpoint(server *s, progress_slot *slot, int64_t id, int32_t attempt,
                         const char *json, size_t len);

/** progress_log: one log line of the attempt (copied; cut to EXEC_LOG_LINE_MAX). */
void progress_log(server *s, progress_slot *slot, int64_t id, int32_t attempt, const char *line,
                  size_t len);

/** progress_take: moves what slot holds unwritten into *out (which the caller frees with
 *  progress_pending_free) and takes slot out of the list: the attempt's end writes it. */
void progress_take(server *s, progress_slot *slot, progress_pending *out);

/** progress_forget: takes slot out of the list and frees what it holds (its attempt ends
 *  without a record). Accepts an unused slot. */
void progress_forget(server *s, progress_slot *slot);

/** progress_write: writes p for attempt of job id (writer's thread, inside the caller's
 *  transaction): its progress and checkpoint on the job, its lines appended to the job's
 *  capped log. A job gone meanwhile is no error. */
int progress_write(store *st, int64_t id, int32_t attempt, const progress_pending *p,
                   int64_t now_ms);

/** progress_pending_free: frees what p holds and empties it. */
void progress_pending_free(progress_pending *p);

/** progress_logs_request: serves the `logs` op: c's lines after its cursor, held until some
 *  commit or the job ends when c has a timeout. */
void progress_logs_request(call *c);

/** progress_logs_changed: lines of job id committed, or it ended: held `logs` requests for it
 *  read again. */
void progress_logs_changed(server *s, int64_t id);

/** progress_part: the flush timer, and held `logs` answered at shutdown. */
extern const server_part progress_part;

#endif
