/* privs.h: the account jobqd runs as: the refusal to run as root, and the switch from root to
 * [server] user once the listeners and the database are open. */
#ifndef JOBQD_PRIVS_H
#define JOBQD_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/** What privs_resolve decided: whether to switch, and to which account. */
typedef struct privs {
    bool drop;      /* started as root with [server] user set: switch after opening */
    uid_t uid;      /* of [server] user (or of the current account when user is unset) */
    gid_t gid;      /* its primary group */
    char name[64];  /* the account name; empty when user is unset */
    char home[256]; /* its home directory: HOME of the exec handlers after the switch */
} privs;

/** privs_resolve: looks up cfg->user and checks it against the account jobqd runs as. With
 *  check_euid false only the lookup is done (for --check-config). Returns 0 and fills *p, or
 *  -1 with a one-line reason that says what to do in err: unknown account, root without
 *  [server] user, user = root, or a user other than the current one when not root. */
int privs_resolve(const config *cfg, bool check_euid, privs *p, char *err, size_t errlen);

/** privs_chown_files: when p->drop, gives the account the database, its -wal and -shm files and
 *  the socket files of ipc:// listeners, so that it can still write them after the switch.
 *  Returns 0, or -1 with the reason in err. */
int privs_chown_files(const privs *p, const config *cfg, char *err, size_t errlen);

/** privs_drop: when p->drop, switches the whole process (every thread) to the account:
 *  supplementary groups, then gid, then uid, each checked, and then checks that root cannot be
 *  regained; sets HOME, USER and LOGNAME for the exec handlers; warns when the account cannot
 *  write the database's directory. Returns 0, or -1 with the reason in err (jobqd must then
 *  stop). */
int privs_drop(const privs *p, const config *cfg, char *err, size_t errlen);

#endif
