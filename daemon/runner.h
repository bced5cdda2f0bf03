/* runner.h: one running job of an exec queue: a state machine on the loop that spawns the
 * queue's command, feeds the payload, captures output, enforces the timeout and records the
 * outcome. */
#ifndef JOBQD_RUNNER_H
#define JOBQD_RUNNER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "attempt.h"
#include "exec.h"
#include "server.h"

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
    pid_t pid;          /* the command's process (and process group); 0 before the spawn */
    int pidfd;          /* its pidfd, readable once it exited; -1 when closed */
    uv_poll_t exit_poll; /* on pidfd: the exit */
    uv_pipe_t pin, pout, perr;
    uv_pipe_t pctl; /* the control pipe (JOBQ_CONTROL_FD): progress, checkpoint, log */
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
    exec_out out; /* first output_cap bytes of stdout */
    exec_out err; /* last output_cap bytes of stderr */
    exec_ctl ctl; /* the control pipe's lines */
    int64_t started_mono_ms; /* jobq__mono_ms() at the start */
    int record_tries;
    bool give_up; /* jobqd is stopping: a failed record is not retried */
    char stop_why[64]; /* a cancel's reason for the recorded error ("": the default) */
    struct attempt a; /* the job as claimed (state running, attempt counted) and its outcome */
    runner *next; /* in s->runners */
    runner *prev;
    bool has_snooze;   /* the command wrote a "snooze DUR" control line */
    int64_t snooze_ms; /* its delay (the last one), for an exit with EXEC_EXIT_SNOOZE */
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

/** runner_part: local processes still running when the grace is over are killed. */
extern const server_part runner_part;

#endif
