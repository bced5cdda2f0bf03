/* exec.h: the pure parts of the exec contract, shared by jobqd's runner (libuv) and `jobq work`
 * (poll + posix_spawn): the JOBQ_* environment, the stdout head and stderr tail kept, UTF-8
 * sanitising, the verdict on an ended process and the error text. No I/O. It lives in common/,
 * a static library that jobqd and the jobq CLI both link (as redis-cli links the server's
 * anet.o): the CLI otherwise uses only the public libjobq. */
#ifndef JOBQ_COMMON_EXEC_H
#define JOBQ_COMMON_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The exit status that means "the input is wrong, do not retry" (EX_DATAERR). */
#define EXEC_EXIT_PERMANENT 65
/** How long a process group has between SIGTERM and SIGKILL (timeout, cancel). */
#define EXEC_KILL_GRACE_MS 2000
/** The descriptor number a command's control pipe has in the command (JOBQ_CONTROL_FD). */
#define EXEC_CONTROL_FD 3
/** How many JOBQ_* variables a command gets in vars (JOBQ_CHECKPOINT is apart). */
#define EXEC_ENV_VARS 8

/** The exit status with which a command says "slow down" (EX_TEMPFAIL): its job is retried
 *  with backoff and the whole queue starts nothing for its slow_down. */
#define EXEC_EXIT_SLOW_DOWN 75

/** The exit status with which a command snoozes its job: it runs again after the delay of
 *  its last `snooze DUR` control line (EXEC_SNOOZE_DEFAULT_MS without one), and the attempt
 *  does not count toward max_attempts. */
#define EXEC_EXIT_SNOOZE 76
/** A snooze's delay when the command gave none. */
#define EXEC_SNOOZE_DEFAULT_MS 30000
/** The longest snooze a control line may ask for (one year, as any duration on the wire). */
#define EXEC_SNOOZE_MAX_MS ((int64_t)8760 * 3600 * 1000)

/** The job as its command sees it. Borrowed strings. */
typedef struct exec_job {
    int64_t id;
    const char *queue;
    int32_t attempt; /* from 1 */
    int32_t max_attempts;
    const char *traceparent; /* W3C trace context of the job (NULL: none) */
    const char *tracestate;
    const char *checkpoint; /* the last checkpoint of an earlier attempt, JSON (NULL: none) */
    bool control;           /* the command has a control pipe at EXEC_CONTROL_FD */
    const char *group_key;  /* the job's group_key: JOBQ_GROUP_KEY (NULL: none) */
    const char *parent_results; /* its parents' results, a JSON object (NULL: no parent) */
} exec_job;

/** A command's environment: ours without JOBQ_*, TRACEPARENT and TRACESTATE variables, then
 *  JOBQ_JOB_ID, JOBQ_QUEUE, JOBQ_ATTEMPT, JOBQ_MAX_ATTEMPTS, the job's TRACEPARENT and
 *  TRACESTATE when it has a trace context (the environment carrier of OpenTelemetry),
 *  JOBQ_CONTROL_FD=3 when it has a control pipe, JOBQ_GROUP_KEY when the job has a
 *  group_key, JOBQ_CHECKPOINT (JSON text) when an earlier attempt left a checkpoint, and
 *  JOBQ_PARENT_RESULTS (a JSON object keyed by parent id, at most 64 KiB) when the job ran
 *  `after` others. envp points into vars, checkpoint and the environment
 *  it was built from: keep them in place while envp is used. */
typedef struct exec_env {
    char **envp; /* NULL-terminated; owned */
    char vars[EXEC_ENV_VARS][600];
    char *checkpoint; /* "JOBQ_CHECKPOINT=..." (owned; NULL: none) */
    char *parent_results; /* "JOBQ_PARENT_RESULTS=..." (owned; NULL: none) */
} exec_env;

/** exec_env_build: fills e from env (NULL-terminated, borrowed) and job. Returns false when
 *  out of memory (e->envp is then NULL). Any thread. */
bool exec_env_build(exec_env *e, char *const *env, const exec_job *job);

/** exec_env_free: frees e->envp; accepts a failed build. */
void exec_env_free(exec_env *e);

/* ---- the control pipe ----
 * A command may write lines to the descriptor named by JOBQ_CONTROL_FD:
 *   progress PCT [NOTE]   PCT a number from 0 to 100, NOTE the rest of the line (<= 200 bytes)
 *   checkpoint JSON       any JSON value: the next attempt gets it (JOBQ_CHECKPOINT)
 *   log TEXT              one line of the job's log
 *   snooze DUR            the delay of a snooze (exit status EXEC_EXIT_SNOOZE): 30s, 500ms
 * Other lines, and lines over EXEC_CTL_LINE_MAX bytes, are ignored. */

/** The longest control line taken (a checkpoint of EXEC_CHECKPOINT_MAX and its keyword). */
#define EXEC_CTL_LINE_MAX (EXEC_CHECKPOINT_MAX + 16)
/** The largest checkpoint, in bytes of JSON text. */
#define EXEC_CHECKPOINT_MAX (64 * 1024)
/** The longest progress note, in bytes. */
#define EXEC_NOTE_MAX 200
/** The longest log line kept, in bytes (longer lines are cut). */
#define EXEC_LOG_LINE_MAX 4096

/** What one control line says. Strings point into the line. */
typedef enum exec_ctl_kind {
    EXEC_CTL_PROGRESS,
    EXEC_CTL_CHECKPOINT,
    EXEC_CTL_LOG,
    EXEC_CTL_SNOOZE,
} exec_ctl_kind;
typedef struct exec_ctl_msg {
    exec_ctl_kind kind;
    double pct;       /* progress: 0..100 */
    const char *text; /* progress: the note ("" for none); checkpoint: the JSON text; log: the
                       * line; NUL-terminated, valid UTF-8 */
    size_t len;       /* of text */
    int64_t ms;       /* snooze: the delay */
} exec_ctl_msg;

/** A control pipe's reader: bytes in, whole lines out. */
typedef struct exec_ctl {
    char *buf; /* grown as lines need, up to EXEC_CTL_LINE_MAX + 1 bytes; owned */
    size_t len;
    size_t cap;
    bool skipping; /* the line in progress is too long: dropped up to its newline */
} exec_ctl;

/** exec_ctl_init: an empty reader (its buffer grows with the lines it meets). False when out
 *  of memory. */
bool exec_ctl_init(exec_ctl *c);

/** exec_ctl_feed: adds buf[0..n) and calls fn for each complete, valid line (in order). A
 *  final line without its newline is taken by exec_ctl_end. */
void exec_ctl_feed(exec_ctl *c, const char *buf, size_t n,
                   void (*fn)(void *arg, const exec_ctl_msg *m), void *arg);

/** exec_ctl_end: the pipe reached EOF: a last line without newline is taken. */
void exec_ctl_end(exec_ctl *c, void (*fn)(void *arg, const exec_ctl_msg *m), void *arg);

/** exec_ctl_free: frees c's buffer; accepts a failed init. */
void exec_ctl_free(exec_ctl *c);

/** exec_ctl_parse: what line (NUL-terminated, len bytes, no newline; modified in place: its
 *  text sanitised, a note or log line cut to its limit) says, into *m. False for a line that
 *  is none of the three (a checkpoint is not checked for being JSON here). Pure. */
bool exec_ctl_parse(char *line, size_t len, exec_ctl_msg *m);

/** What is kept of an output stream: its first cap bytes (stdout: the job's result) or its
 *  last cap bytes (stderr: the error's tail, in a buffer of 2 * cap so that most writes are
 *  one memcpy). */
typedef struct exec_out {
    char *buf;  /* cap + 1 bytes (first) or 2 * cap + 1 (last); owned */
    size_t len; /* bytes in buf; what is kept is its first or last min(len, cap) */
    size_t cap;
    bool last;      /* keeps the last cap bytes rather than the first */
    uint64_t total; /* bytes written in all: the stream was cut when total > cap */
} exec_out;

/** exec_out_init: an empty stream that keeps the first (last: false) or the last cap bytes.
 *  False when out of memory. */
bool exec_out_init(exec_out *o, size_t cap, bool last);

/** exec_out_add: writes buf[0..n) to the stream, keeping what the stream keeps. */
void exec_out_add(exec_out *o, const char *buf, size_t n);

/** exec_out_kept: the bytes kept, *np of them; borrowed from o. */
const char *exec_out_kept(const exec_out *o, size_t *np);

/** exec_out_take: the bytes kept as sanitised text (exec_sanitize), NUL-terminated; the caller
 *  owns it and o is left without a buffer. NULL if o has none. */
char *exec_out_take(exec_out *o);

/** exec_out_free: frees o's buffer; accepts a failed init or a taken stream. */
void exec_out_free(exec_out *o);

/** exec_sanitize: makes buf[0..len) valid UTF-8 without NUL, in place: each byte that does not
 *  start a valid sequence becomes '?'. */
void exec_sanitize(char *buf, size_t len);

/** How a command's attempt ended, as its runner saw it. */
typedef struct exec_end {
    const char *spawn_error; /* non-NULL: the command could not start (this says why) */
    bool cancelled;          /* ended by a cancel */
    const char *cancel_why;  /* the cancel's reason (NULL: "cancelled while running") */
    bool shutdown;           /* ended because jobqd shuts down */
    bool timed_out;          /* ended by the job's timeout */
    int term_signal;         /* the signal that ended the process, or 0 */
    int64_t exit_status;     /* valid when term_signal == 0 */
    int64_t timeout_ms;      /* the job's timeout, for the error text */
} exec_end;

/** exec_verdict: what an ended attempt means. */
typedef enum exec_verdict {
    EXEC_SUCCEEDED, /* exit status 0 */
    EXEC_FAILED,    /* retryable: see exec_failure */
    EXEC_PERMANENT, /* exit status 65 */
    EXEC_CANCELLED,
    EXEC_SHUTDOWN,
    EXEC_SNOOZED, /* exit status 76: run again later, the attempt not counted */
} exec_verdict;

/** exec_failure: why an attempt failed retryably. */
typedef enum exec_failure {
    EXEC_FAIL_EXIT,    /* a non-zero exit status other than 65 */
    EXEC_FAIL_SIGNAL,  /* killed by a signal */
    EXEC_FAIL_TIMEOUT, /* the job's timeout */
    EXEC_FAIL_SPAWN,   /* the command could not start */
} exec_failure;

/** exec_verdict_of: the verdict on e, first match wins: cancelled, shutdown, spawn failure,
 *  timeout, signal, exit 0 (succeeded), exit 65 (permanent), exit 76 (snoozed), other exit.
 *  *why is set for
 *  EXEC_FAILED only. */
exec_verdict exec_verdict_of(const exec_end *e, exec_failure *why);

/** exec_error_head: the one-line reason of a failed attempt into buf ("exit status 1",
 *  "exit status 65 (EX_DATAERR): permanent failure, not retried", "killed by signal 9
 *  (Killed)", "timed out after 1000 ms", "cancelled while running", ...). */
void exec_error_head(const exec_end *e, char *buf, size_t size);

/** exec_error_text: the error of a failed attempt: its head; when stderr said something,
 *  ": " and stderr's last line (160 bytes at most) on the first line, then "\nstderr:\n" (or
 *  "\nstderr (tail):\n" when stderr was cut) and the tail, trailing newlines dropped. Valid
 *  UTF-8 without NUL. err (what stderr kept; may be NULL) is borrowed. malloc'd; NULL when out
 *  of memory. */
char *exec_error_text(const exec_end *e, const exec_out *err);

#endif
