/* execspawn.h: starting a job's command, as jobqd's runner and `jobq work` both do. */
#ifndef JOBQ_COMMON_EXECSPAWN_H
#define JOBQ_COMMON_EXECSPAWN_H

#include <sys/types.h>

/** exec_spawn: starts argv (argv[0] searched in PATH) with envp in a session of its own (so
 *  its process group can be killed as one), every signal at its default and none blocked,
 *  its stdin, stdout and stderr on three new pipes. fds[0] (write: its stdin), fds[1] (read:
 *  its stdout) and fds[2] (read: its stderr) are the caller's ends, close-on-exec and
 *  non-blocking. posix_spawn: the caller's memory is shared until the exec, never copied, so
 *  a large caller spawns as fast as a small one. Returns 0, or an errno value (an exec that
 *  failed too: ENOENT, EACCES); then nothing is left open. Any thread. */
int exec_spawn(char *const argv[], char *const envp[], pid_t *pidp, int fds[3]);

#endif
