/* server.h: jobqd's core on the loop thread: queues and their counts, request dispatch,
 * signals and the orderly drain. */
#ifndef JOBQD_SERVER_H
#define JOBQD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "intake.h"
#include "request.h"
#include "store.h"
#include "writer.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define JOBQ_NSTATES (JOBQ_CANCELLED + 1)

/** A queue as the loop sees it: settings and live counts (never the jobs themselves). */
typedef struct qstate {
    char *name;
    const queue_conf *conf; /* the [queue.NAME] section, or &own_conf */
    queue_conf own_conf;    /* defaults, for a queue admitted by allow_unknown_queues */
    bool configured;        /* has a section in the config file */
    bool paused;
    int64_t counts[JOBQ_NSTATES]; /* jobs by state, kept in step with every commit */
} qstate;

typedef struct server {
    uv_loop_t *loop;
    config *cfg;
    store *st;
    writer w;
    intake *in;
    qstate **queues;
    size_t nqueues;
    size_t capqueues;
    request_limits limits;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    bool draining; /* SIGTERM/SIGINT seen: no new work */
    bool closing;  /* handles are being closed; the loop ends when they are */
    int64_t started_at_ms;
} server;

/** server_init: prepares the server over an open store: loads counts and paused flags,
 *  recovers jobs left running, listens. Returns 0, or -1 with a reason in err. Before the
 *  loop runs. */
int server_init(server *s, uv_loop_t *loop, config *cfg, store *st, char *err, size_t errlen);

/** server_queue: the queue named name, or NULL. */
qstate *server_queue(server *s, const char *name);

/** server_queue_add: the queue named name, created with defaults when missing. NULL on out
 *  of memory. */
qstate *server_queue_add(server *s, const char *name);

/** server_count_move: moves one job of q from state `from` to `to` in the counts (-1 for
 *  none). */
void server_count_move(qstate *q, int from, int to);

/** server_drain: starts the orderly shutdown (as SIGTERM does). */
void server_drain(server *s);

/** server_free: frees what server_init allocated, after the loop has ended. */
void server_free(server *s);

#endif
