/* execspawn.c: starting a job's command with posix_spawn, in a session of its own, on pipes. */
#define _GNU_SOURCE /* POSIX_SPAWN_SETSID, pipe2 */
#include "execspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

/* attrs: a session of its own, no signal blocked, every signal that can be at its default. */
static int
attrs(posix_spawnattr_t *attr)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigemptyset(&all);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaddset(&all, sig); /* the C library's own are refused and stay as they are */
        }
    }
    int rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) {
        rc = posix_spawnattr_setsigmask(attr, &none);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setsigdefault(attr, &all);
    }
    return rc;
}

/* above_control: moves fd (close-on-exec) above the descriptors the command is given, so
 * that no dup2 of the file actions overwrites another's source. Returns the new descriptor,
 * or -1 (fd closed) on failure. */
static int
above_control(int fd)
{
    if (fd < 0 || fd > EXEC_CONTROL_FD) {
        return fd;
    }
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, EXEC_CONTROL_FD + 1);
    close(fd);
    return moved;
}

int
exec_spawn(char *const argv[], char *const envp[], pid_t *pidp, int fds[4], bool control)
{
    int p[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    int np = control ? 4 : 3;
    int rc = 0;
    for (int i = 0; i < np && rc == 0; i++) {
        if (pipe2(p[i], O_CLOEXEC) != 0) {
            rc = errno;
        } else if ((p[i][0] = above_control(p[i][0])) < 0 ||
                   (p[i][1] = above_control(p[i][1])) < 0) {
            rc = errno != 0 ? errno : EMFILE;
        }
    }
    /* The command's ends: stdin reads p[0], stdout, stderr and the control pipe write p[1],
     * p[2] and p[3]. */
    int child[4] = {p[0][0], p[1][1], p[2][1], p[3][1]};
    int ours[4] = {p[0][1], p[1][0], p[2][0], p[3][0]};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0) {
        for (int fd = 0; fd < np && rc == 0; fd++) {
            rc = posix_spawn_file_actions_adddup2(&fa, child[fd], fd);
        }
        if (rc == 0 && (rc = posix_spawnattr_init(&attr)) == 0) {
            rc = attrs(&attr);
            if (rc == 0) {
                rc = posix_spawnp(pidp, argv[0], &fa, &attr, argv, envp);
            }
            posix_spawnattr_destroy(&attr);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    for (int i = 0; i < 4; i++) {
        if (child[i] >= 0) {
            close(child[i]);
        }
        if (rc != 0 && ours[i] >= 0) {
            close(ours[i]);
        }
    }
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < 4; i++) {
        if (ours[i] >= 0) {
            fcntl(ours[i], F_SETFL, fcntl(ours[i], F_GETFL) | O_NONBLOCK);
        }
        fds[i] = ours[i];
    }
    return 0;
}
