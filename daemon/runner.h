/* runner.h: one running job of an exec queue: a state machine on the loop that spawns the
 * queue's command, feeds the payload, captures output, enforces the timeout and records the
 * outcome. */
#ifndef JOBQD_RUNNER_H
#define JOBQD_RUNNER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "attempt.h"
#include "server.h"

/** How long a process group has between SIGTERM and SIGKILL (timeout, cancel). */
#define RUNNER_KILL_GRACE_MS 2000
/** How long output pipes may stay open after the process exited (a child that escaped the
 *  process group may hold them). */
#define RUNNER_PIPE_DRAIN_MS 1000

enum run_state {
    RUN_STARTING,  /* spawning */
    RUN_EXECUTING, /* waiting for exit and end of output */
    RUN_RECORDING, /* the outcome is being committed */
    RUN_CLOSING,   /* handles closing; freed in the last close callback */
};

enum run_kill {
    KILL_NONE,
    KILL_TIMEOUT,
    KILL_CANCEL,
    KILL_SHUTDOWN,
};


typedef struct runner runner;
struct runner {
    server *srv;
    qstate *q;
    enum run_state state;
    uv_process_t proc;
    uv_pipe_t pin, pout, perr;
    uv_timer_t timer;
    uv_write_t wreq;
    int handles; /* open handles; freed when it drops to 0 in RUN_CLOSING */
    int reading; /* output pipes not at EOF yet */
    bool spawned;
    bool exited;
    int64_t exit_status;
    int term_signal;
    enum run_kill kill;
    int kill_stage; /* 0, 1: SIGTERM sent, 2: SIGKILL sent */
    char spawn_error[160];
    char *out; /* first output_cap bytes of stdout */
    size_t out_len;
    bool out_truncated;
    char *err; /* last output_cap bytes of stderr (buffer of 2 * cap) */
    size_t err_len;
    bool err_truncated;
    uint64_t started_mono_ms;
    int record_tries;
    bool give_up; /* jobqd is stopping: a failed record is not retried */
    char stop_why[64]; /* a cancel's reason for the recorded error ("": the default) */
    struct attempt a; /* the job as claimed (state running, attempt counted) and its outcome */
    runner *next; /* in s->runners */
    runner *prev;
};

/** runner_start: runs row (a claimed job; the runner takes its strings) on q. Loop thread. */
void runner_start(server *s, qstate *q, job_row *row);

/** runner_find: the runner of job id, or NULL. */
runner *runner_find(server *s, int64_t id);

/** runner_stop: ends the attempt early: the process group gets SIGTERM (SIGKILL after a
 *  grace; at once for KILL_SHUTDOWN) and the outcome is cancelled (KILL_CANCEL) or put back
 *  to ready (KILL_SHUTDOWN). KILL_SHUTDOWN of a runner whose outcome the store refuses stops
 *  its retries: the job stays running in the database until the next start recovers it. */
void runner_stop(runner *r, enum run_kill why);

/** How an attempt ended, as runner_outcome needs it. */
typedef struct attempt_end {
    bool spawn_failed;
    int64_t exit_status; /* valid when term_signal == 0 */
    int term_signal;     /* the signal that ended the process, or 0 */
    enum run_kill kill;  /* why jobqd ended it, if it did */
    int32_t attempt;     /* this attempt's number, from 1 */
    int32_t max_attempts;
} attempt_end;

/** runner_outcome: the pure decision of what an ended attempt means: exit 0 -> succeeded;
 *  65 -> dead; cancel -> cancelled; shutdown -> ready; any other failure -> retrying after
 *  a full-jitter backoff drawn from rnd, or dead after max_attempts. */
run_outcome runner_outcome(const attempt_end *e, const queue_conf *qc, int64_t now_ms,
                           uint64_t rnd);

#endif
