/* privs.c: the account jobqd runs as. Started as root it opens what needs root (listeners on
 * low ports, TLS keys, the database), hands its files to [server] user and switches to it for
 * good; it never runs jobs or serves requests as root. */
#define _GNU_SOURCE 1 /* getresuid, getresgid */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define PRIVS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRIVS_LSAN 1
#endif
#endif

int
privs_resolve(const config *cfg, bool check_euid, privs *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    uid_t euid = geteuid();
    if (cfg->user == NULL) {
        if (check_euid && euid == 0) {
            snprintf(err, errlen,
                     "%s: jobqd will not run as root: set [server] user = NAME to an unprivileged "
                     "account (jobqd opens its listeners and database as root, then switches to "
                     "it), or start jobqd as that account",
                     cfg->path);
            return -1;
        }
        p->uid = euid;
        p->gid = getegid();
        return 0;
    }
    struct passwd pwbuf, *pw = NULL;
    char buf[16384];
    int rc = getpwnam_r(cfg->user, &pwbuf, buf, sizeof(buf), &pw);
    if (pw == NULL) {
        if (rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM) {
            snprintf(err, errlen, "%s: [server] user = \"%s\": cannot look the account up: %s",
                     cfg->path, cfg->user, strerror(rc));
        } else {
            snprintf(err, errlen,
                     "%s: [server] user = \"%s\": no such account: create it (useradd --system "
                     "--no-create-home --shell /usr/sbin/nologin %s) or name an existing one",
                     cfg->path, cfg->user, cfg->user);
        }
        return -1;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, errlen,
                 "%s: [server] user = \"%s\" is root (uid 0): name an unprivileged account, such "
                 "as a dedicated jobq user",
                 cfg->path, cfg->user);
        return -1;
    }
    if (strlen(cfg->user) >= sizeof(p->name) || strlen(pw->pw_dir) >= sizeof(p->home)) {
        snprintf(err, errlen, "%s: [server] user = \"%s\": name or home directory too long",
                 cfg->path, cfg->user);
        return -1;
    }
    strcpy(p->name, cfg->user);
    strcpy(p->home, pw->pw_dir);
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    if (!check_euid) {
        return 0;
    }
    if (euid == 0) {
        p->drop = true;
    } else if (euid != pw->pw_uid) {
        snprintf(err, errlen,
                 "%s: [server] user = \"%s\" (uid %lu), but jobqd was started as uid %lu and only "
                 "root can switch accounts: start jobqd as root or as %s, or remove the user line",
                 cfg->path, cfg->user, (unsigned long)pw->pw_uid, (unsigned long)euid, cfg->user);
        return -1;
    }
    return 0;
}

/* chown_regular: gives path to the account. A missing file is fine unless must_exist; a
 * symbolic link is refused (root must not follow a link someone else could have planted).
 * Works on the path, never opening the file: closing a descriptor of a file drops every POSIX
 * lock the process holds on it, the store's SQLite locks included. Returns 0, or -1 with the
 * reason in err. */
static int
chown_regular(const privs *p, const char *path, bool must_exist, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT && !must_exist) {
            return 0;
        }
        snprintf(err, errlen, "cannot give %s to user %s: %s", path, p->name, strerror(errno));
        return -1;
    }
    if (S_ISLNK(sb.st_mode)) {
        snprintf(err, errlen,
                 "%s is a symbolic link: started as root, jobqd hands only regular files to user "
                 "%s; set database to the real path",
                 path, p->name);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        return -1;
    }
    /* lchown: should the file have been swapped for a link since lstat, the link changes
     * owner, never what it points to. */
    if ((sb.st_uid != p->uid || sb.st_gid != p->gid) && lchown(path, p->uid, p->gid) != 0) {
        snprintf(err, errlen, "cannot give %s to user %s: %s", path, p->name, strerror(errno));
        return -1;
    }
    return 0;
}

int
privs_chown_files(const privs *p, const config *cfg, char *err, size_t errlen)
{
    if (!p->drop) {
        return 0;
    }
    const char *db = cfg->database;
    if (cfg->store != STORE_POSTGRES && strcmp(db, ":memory:") != 0 && db[0] != '\0') {
        /* The store holds all three open (WAL mode): the account keeps writing through those
         * descriptors, and owns the files when it reopens them (a backup, the next start). */
        char side[4096];
        if (chown_regular(p, db, true, err, errlen) != 0) {
            return -1;
        }
        static const char *const suffixes[] = {"-wal", "-shm"};
        for (size_t i = 0; i < 2; i++) {
            if ((size_t)snprintf(side, sizeof(side), "%s%s", db, suffixes[i]) >= sizeof(side)) {
                snprintf(err, errlen, "database path too long: %s", db);
                return -1;
            }
            if (chown_regular(p, side, false, err, errlen) != 0) {
                return -1;
            }
        }
    }
    /* Socket files of ipc:// listeners: as if the account had created them (who may connect
     * follows their mode and owner). lchown never follows a link. */
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const char *url = cfg->listen[i];
        if (strncmp(url, "ipc://", 6) == 0 && lchown(url + 6, p->uid, p->gid) != 0) {
            snprintf(err, errlen, "cannot give the socket %s to user %s: %s", url + 6, p->name,
                     strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* warn_db_dir: the account must be able to create files next to the database: SQLite
 * recreates the -wal and -shm files there when they are missing, and deletes them at close. */
static void
warn_db_dir(const privs *p, const char *db)
{
    char copy[4096];
    if (strcmp(db, ":memory:") == 0 || strlen(db) >= sizeof(copy)) {
        return;
    }
    strcpy(copy, db);
    const char *dir = dirname(copy);
    if (access(dir, W_OK | X_OK) != 0) {
        char q[512];
        log_warn("database_dir_not_writable",
                 "dir=%s user=%s hint=\"make it writable by the user (chown %s DIR): SQLite "
                 "creates the -wal and -shm files next to the database\"",
                 log_quote(q, sizeof(q), dir), p->name, p->name);
    }
}

int
privs_drop(const privs *p, const config *cfg, char *err, size_t errlen)
{
    if (!p->drop) {
        return 0;
    }
    if (initgroups(p->name, p->gid) != 0) {
        snprintf(err, errlen, "cannot set the groups of user %s: initgroups: %s", p->name,
                 strerror(errno));
        return -1;
    }
    if (setgid(p->gid) != 0) {
        snprintf(err, errlen, "cannot switch to group %lu of user %s: setgid: %s",
                 (unsigned long)p->gid, p->name, strerror(errno));
        return -1;
    }
    if (setuid(p->uid) != 0) {
        snprintf(err, errlen, "cannot switch to user %s (uid %lu): setuid: %s", p->name,
                 (unsigned long)p->uid, strerror(errno));
        return -1;
    }
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != p->uid ||
        eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid) {
        snprintf(err, errlen, "switching to user %s left other ids in place", p->name);
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || (p->gid != 0 && (setgid(0) == 0 || setegid(0) == 0))) {
        snprintf(err, errlen, "root could be regained after switching to user %s", p->name);
        return -1;
    }
#ifdef PRIVS_LSAN
    /* Switching ids makes the process undumpable, which keeps LeakSanitizer's tracer (a
     * separate task that ptraces this one) out. Sanitizer builds only. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
    /* Exec handlers inherit the environment: make it name the account they run as. */
    if (setenv("HOME", p->home, 1) != 0 || setenv("USER", p->name, 1) != 0 ||
        setenv("LOGNAME", p->name, 1) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->store != STORE_POSTGRES) { /* a PostgreSQL server keeps its own files */
        warn_db_dir(p, cfg->database);
    }
    return 0;
}
