/* execspawn.h: starting a job's command, as jobqd's runner and `jobq work` both do. */
#ifndef JOBQ_COMMON_EXECSPAWN_H
#define JOBQ_COMMON_EXECSPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "exec.h" /* EXEC_CONTROL_FD */

/** exec_spawn: starts argv (argv[0] searched in PATH) with envp in a session of its own (so
 *  its process group can be killed as one), every signal at its default and none blocked,
 *  its stdin, stdout and stderr on three new pipes, and with control a fourth pipe whose
 *  write end is the command's descriptor EXEC_CONTROL_FD (the exec contract's control
 *  lines: progress, checkpoint, log). fds[0] (write: its stdin), fds[1] (read: its stdout),
 *  fds[2] (read: its stderr) and fds[3] (read: its control pipe; -1 without control) are the
 *  caller's ends, close-on-exec and non-blocking. posix_spawn: the caller's memory is shared
 *  until the exec, never copied, so a large caller spawns as fast as a small one. Returns 0,
 *  or an errno value (an exec that failed too: ENOENT, EACCES); then nothing is left open.
 *  Any thread. */
int exec_spawn(char *const argv[], char *const envp[], pid_t *pidp, int fds[4], bool control);

#endif
