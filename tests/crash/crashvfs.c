/* crashvfs.c: a SQLite VFS for the crash tests, loaded into an unmodified jobqd with
 * LD_PRELOAD: it holds writes in memory until the file's sync (a page cache), cuts the power
 * at a chosen operation, and fails a chosen write or sync with an I/O error.
 *
 * It registers itself as the default VFS from a constructor, layered over "unix". Configured
 * by the environment:
 *
 *   JOBQ_CRASHVFS_CUT=N     power cut: the Nth operation (a write, truncate or sync of the
 *                           database, its WAL or a rollback journal, counted from the start
 *                           of the process) is not done: the process _exits at once with
 *                           status 86 and every write not yet synced is lost.
 *   JOBQ_CRASHVFS_TORN=P    at the cut, each unsynced 4 KiB chunk (and a pending truncate)
 *                           still reaches the disk with probability P percent, in no order:
 *                           the page cache may have written back some of it. Default 0.
 *   JOBQ_CRASHVFS_SEED=S    the seed of that choice (default: the cut point).
 *   JOBQ_CRASHVFS_HOLD=1    hold writes until sync without a cut (the cut implies it).
 *   JOBQ_CRASHVFS_FAIL=write:N[:persist] or sync:N[:persist]
 *                           the Nth xWrite (or xSync) of those files returns
 *                           SQLITE_IOERR_WRITE (SQLITE_IOERR_FSYNC) without doing anything;
 *                           with :persist every later one fails too.
 *   JOBQ_CRASHVFS_SYNC_GATE=PATH
 *                           while PATH is a FIFO, a sync of those files waits at the gate
 *                           before it does anything (holding no lock, so other threads go on
 *                           writing and reading): it says "crashvfs: sync of FILE held", reads
 *                           one byte from PATH (a test opens it for writing, removes it so
 *                           that the next syncs pass, and writes the byte), says "released"
 *                           and goes on. A test thus knows a sync is in flight and decides
 *                           when it returns, without sleeping.
 *
 * Held files keep one overlay per path, shared by every handle (another connection of the
 * process sees the cache as it would see the kernel's): writes go to 4 KiB chunks in memory,
 * reads and xFileSize see them, xTruncate is pending too. xSync writes the file's chunks and
 * its truncation through to the real file and then really syncs it. The -shm file is memory
 * mapped and passes through: after a cut the next process rebuilds it from the WAL, as after a
 * real power loss. xDelete is immediate and drops the path's overlay. At a normal exit the
 * unsynced data is written without a sync (no power was lost).
 *
 * Every operation on a held file, and the counts, take one mutex: SQLite's writer thread and
 * jobqd's sync thread (which syncs the WAL while the next transaction writes it) may use the
 * same file at once.
 *
 * Lines on stderr start with "crashvfs:": one at load, one at the cut or fault, one at exit
 * with the counts (ops=N is what a cut point counts). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 4096
#define CUT_EXIT_STATUS 86

typedef struct overlay overlay;

/* overlay: the unsynced state of one held file, by path. */
struct overlay {
    overlay *next;
    char *path;
    int refs;               /* open handles */
    bool linked;            /* still in the registry (not deleted) */
    sqlite3_int64 size;     /* the size the process sees */
    sqlite3_int64 trunc_to; /* smallest size since the last sync: real bytes past it are gone */
    sqlite3_int64 real_size;
    unsigned char **chunks; /* chunk i holds [i*CHUNK, (i+1)*CHUNK) when not NULL */
    size_t nchunks;
    size_t ndirty;
};

typedef struct cfile {
    sqlite3_file base;
    overlay *ov;      /* NULL: passes through */
    bool counted;     /* database, WAL or journal: its writes and syncs are counted */
    const char *name; /* valid until xClose (SQLite's promise) */
    sqlite3_file *real;
} cfile;

static sqlite3_vfs *g_real;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static overlay *g_overlays;
static bool g_hold;
static uint64_t g_cut, g_torn_pct, g_seed;
enum { FAIL_NONE, FAIL_WRITE, FAIL_SYNC };
static int g_fail_kind = FAIL_NONE;
static uint64_t g_fail_at;
static bool g_fail_persist;
static uint64_t g_ops, g_writes, g_syncs, g_truncates, g_faults;
static const char *g_gate; /* JOBQ_CRASHVFS_SYNC_GATE */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
}

/* ---------------------------------------------------------------- overlay */

static overlay *
overlay_find(const char *path)
{
    for (overlay *o = g_overlays; o != NULL; o = o->next) {
        if (strcmp(o->path, path) == 0) {
            return o;
        }
    }
    return NULL;
}

static void
overlay_unlink(overlay *o)
{
    for (overlay **p = &g_overlays; *p != NULL; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            break;
        }
    }
    o->linked = false;
}

static void
overlay_clear(overlay *o)
{
    for (size_t i = 0; i < o->nchunks; i++) {
        free(o->chunks[i]);
        o->chunks[i] = NULL;
    }
    o->ndirty = 0;
    o->trunc_to = o->size;
}

static void
overlay_free(overlay *o)
{
    overlay_clear(o);
    free(o->chunks);
    free(o->path);
    free(o);
}

static bool
overlay_pending(const overlay *o)
{
    return o->ndirty > 0 || o->trunc_to < o->real_size || o->size != o->real_size;
}

/* real_read: reads from the real file what the process sees there: zeros past trunc_to and
 * past the real end. */
static int
real_read(cfile *f, unsigned char *buf, size_t n, sqlite3_int64 off)
{
    overlay *o = f->ov;
    size_t have = 0;
    if (off < o->trunc_to) {
        have = (size_t)(o->trunc_to - off) < n ? (size_t)(o->trunc_to - off) : n;
        int rc = f->real->pMethods->xRead(f->real, buf, (int)have, off);
        if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
            return rc;
        }
    }
    memset(buf + have, 0, n - have);
    return SQLITE_OK;
}

/* overlay_chunk: chunk i, made from what the process sees if it is not held yet. */
static unsigned char *
overlay_chunk(cfile *f, size_t i, int *rcp)
{
    overlay *o = f->ov;
    if (i >= o->nchunks) {
        size_t n = o->nchunks ? o->nchunks : 64;
        while (n <= i) {
            n *= 2;
        }
        unsigned char **c = realloc(o->chunks, n * sizeof(*c));
        if (c == NULL) {
            *rcp = SQLITE_NOMEM;
            return NULL;
        }
        memset(c + o->nchunks, 0, (n - o->nchunks) * sizeof(*c));
        o->chunks = c;
        o->nchunks = n;
    }
    if (o->chunks[i] == NULL) {
        unsigned char *c = malloc(CHUNK);
        if (c == NULL) {
            *rcp = SQLITE_NOMEM;
            return NULL;
        }
        sqlite3_int64 base = (sqlite3_int64)i * CHUNK;
        size_t valid = base >= o->size                    ? 0
                       : (size_t)(o->size - base) < CHUNK ? (size_t)(o->size - base)
                                                          : CHUNK;
        int rc = real_read(f, c, valid, base);
        if (rc != SQLITE_OK) {
            free(c);
            *rcp = rc;
            return NULL;
        }
        memset(c + valid, 0, CHUNK - valid);
        o->chunks[i] = c;
        o->ndirty++;
    }
    return o->chunks[i];
}

/* overlay_flush: writes the pending truncate and chunks of o to the real file (no sync). */
static int
overlay_flush(cfile *f)
{
    overlay *o = f->ov;
    const sqlite3_io_methods *m = f->real->pMethods;
    int rc;
    if (o->trunc_to < o->real_size && (rc = m->xTruncate(f->real, o->trunc_to)) != SQLITE_OK) {
        return rc;
    }
    for (size_t i = 0; i < o->nchunks; i++) {
        sqlite3_int64 base = (sqlite3_int64)i * CHUNK;
        if (o->chunks[i] == NULL || base >= o->size) {
            continue;
        }
        size_t n = (size_t)(o->size - base) < CHUNK ? (size_t)(o->size - base) : CHUNK;
        if ((rc = m->xWrite(f->real, o->chunks[i], (int)n, base)) != SQLITE_OK) {
            return rc;
        }
    }
    sqlite3_int64 real;
    if ((rc = m->xFileSize(f->real, &real)) != SQLITE_OK) {
        return rc;
    }
    if (real != o->size && (rc = m->xTruncate(f->real, o->size)) != SQLITE_OK) {
        return rc;
    }
    o->real_size = o->size;
    overlay_clear(o);
    return SQLITE_OK;
}

/* posix_flush: writes an overlay whose file has no open handle left (normal exit). */
static void
posix_flush(overlay *o)
{
    int fd = open(o->path, O_WRONLY);
    if (fd < 0) {
        return;
    }
    if (o->trunc_to < o->real_size && ftruncate(fd, o->trunc_to) != 0) {
        say("crashvfs: truncate %s: %s", o->path, strerror(errno));
    }
    for (size_t i = 0; i < o->nchunks; i++) {
        sqlite3_int64 base = (sqlite3_int64)i * CHUNK;
        if (o->chunks[i] != NULL && base < o->size) {
            size_t n = (size_t)(o->size - base) < CHUNK ? (size_t)(o->size - base) : CHUNK;
            if (pwrite(fd, o->chunks[i], n, base) != (ssize_t)n) {
                say("crashvfs: write %s: %s", o->path, strerror(errno));
            }
        }
    }
    if (ftruncate(fd, o->size) != 0) {
        say("crashvfs: truncate %s: %s", o->path, strerror(errno));
    }
    close(fd);
}

/* ---------------------------------------------------------------- the cut and the faults */

static uint64_t
rnd(void)
{
    g_seed ^= g_seed << 13;
    g_seed ^= g_seed >> 7;
    g_seed ^= g_seed << 17;
    return g_seed;
}

/* power_cut: what the disk keeps of the unsynced data is nothing, or with TORN a random part
 * of it; then the process ends at once. Called with g_mu held. */
static void
power_cut(const char *what, const char *path)
{
    size_t lost = 0, kept = 0;
    for (overlay *o = g_overlays; o != NULL; o = o->next) {
        int fd = -1;
        if (g_torn_pct > 0 && overlay_pending(o)) {
            fd = open(o->path, O_WRONLY);
        }
        if (fd >= 0 && o->trunc_to < o->real_size && rnd() % 100 < g_torn_pct) {
            if (ftruncate(fd, o->trunc_to) != 0) {
                say("crashvfs: truncate %s: %s", o->path, strerror(errno));
            }
        }
        for (size_t i = 0; i < o->nchunks; i++) {
            sqlite3_int64 base = (sqlite3_int64)i * CHUNK;
            if (o->chunks[i] == NULL || base >= o->size) {
                continue;
            }
            if (fd >= 0 && rnd() % 100 < g_torn_pct) {
                size_t n = (size_t)(o->size - base) < CHUNK ? (size_t)(o->size - base) : CHUNK;
                if (pwrite(fd, o->chunks[i], n, base) == (ssize_t)n) {
                    kept++;
                    continue;
                }
            }
            lost++;
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    say("crashvfs: power cut at op %llu (%s %s): %zu unsynced chunk(s) lost, %zu kept",
        (unsigned long long)g_ops, what, path, lost, kept);
    _exit(CUT_EXIT_STATUS);
}

/* count_op: counts a write, truncate or sync of a counted file and cuts the power at the cut
 * point. Called with g_mu held. */
static void
count_op(cfile *f, const char *what)
{
    if (!f->counted) {
        return;
    }
    g_ops++;
    if (g_cut != 0 && g_ops == g_cut) {
        power_cut(what, f->name);
    }
}

/* fault: whether this write (or sync), the nth of its kind, is one to fail. */
static bool
fault(int kind, uint64_t n, const char *path)
{
    if (g_fail_kind != kind || n < g_fail_at || (n > g_fail_at && !g_fail_persist)) {
        return false;
    }
    g_faults++;
    if (g_faults == 1) {
        say("crashvfs: failing %s %llu of %s%s", kind == FAIL_WRITE ? "write" : "sync",
            (unsigned long long)n, path, g_fail_persist ? " and every later one" : "");
    }
    return true;
}

/* ---------------------------------------------------------------- io methods */

static int
c_close(sqlite3_file *file)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&g_mu);
    overlay *o = f->ov;
    if (o != NULL && --o->refs == 0 && (!o->linked || !overlay_pending(o))) {
        if (o->linked) {
            overlay_unlink(o);
        }
        overlay_free(o);
    }
    f->ov = NULL;
    pthread_mutex_unlock(&g_mu);
    return f->real->pMethods != NULL ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
}

static int
c_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    cfile *f = (cfile *)file;
    if (f->ov == NULL) {
        return f->real->pMethods->xRead(f->real, buf, amt, off);
    }
    pthread_mutex_lock(&g_mu);
    overlay *o = f->ov;
    unsigned char *out = buf;
    size_t want = (size_t)amt;
    size_t avail = off >= o->size                   ? 0
                   : (size_t)(o->size - off) < want ? (size_t)(o->size - off)
                                                    : want;
    int rc = SQLITE_OK;
    size_t done = 0;
    while (done < avail && rc == SQLITE_OK) {
        sqlite3_int64 pos = off + (sqlite3_int64)done;
        size_t i = (size_t)(pos / CHUNK), in = (size_t)(pos % CHUNK);
        size_t n = CHUNK - in < avail - done ? CHUNK - in : avail - done;
        if (i < o->nchunks && o->chunks[i] != NULL) {
            memcpy(out + done, o->chunks[i] + in, n);
        } else {
            rc = real_read(f, out + done, n, pos);
        }
        done += n;
    }
    pthread_mutex_unlock(&g_mu);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (avail < want) {
        memset(out + avail, 0, want - avail);
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int
c_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&g_mu);
    count_op(f, "write");
    if (f->counted && fault(FAIL_WRITE, ++g_writes, f->name)) {
        pthread_mutex_unlock(&g_mu);
        return SQLITE_IOERR_WRITE;
    }
    overlay *o = f->ov;
    if (o == NULL) {
        pthread_mutex_unlock(&g_mu);
        return f->real->pMethods->xWrite(f->real, buf, amt, off);
    }
    const unsigned char *in = buf;
    int rc = SQLITE_OK;
    size_t done = 0;
    while (done < (size_t)amt) {
        sqlite3_int64 pos = off + (sqlite3_int64)done;
        size_t i = (size_t)(pos / CHUNK), at = (size_t)(pos % CHUNK);
        size_t n = CHUNK - at < (size_t)amt - done ? CHUNK - at : (size_t)amt - done;
        unsigned char *c = overlay_chunk(f, i, &rc);
        if (c == NULL) {
            break;
        }
        memcpy(c + at, in + done, n);
        done += n;
    }
    if (rc == SQLITE_OK && off + amt > o->size) {
        o->size = off + amt;
    }
    pthread_mutex_unlock(&g_mu);
    return rc == SQLITE_NOMEM ? SQLITE_IOERR_NOMEM : rc;
}

static int
c_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&g_mu);
    count_op(f, "truncate");
    if (f->counted) {
        g_truncates++;
    }
    overlay *o = f->ov;
    if (o == NULL) {
        pthread_mutex_unlock(&g_mu);
        return f->real->pMethods->xTruncate(f->real, size);
    }
    for (size_t i = 0; i < o->nchunks; i++) {
        sqlite3_int64 base = (sqlite3_int64)i * CHUNK;
        if (o->chunks[i] == NULL || base + CHUNK <= size) {
            continue;
        }
        if (base >= size) {
            free(o->chunks[i]);
            o->chunks[i] = NULL;
            o->ndirty--;
        } else {
            memset(o->chunks[i] + (size - base), 0, (size_t)(base + CHUNK - size));
        }
    }
    o->size = size;
    if (size < o->trunc_to) {
        o->trunc_to = size;
    }
    pthread_mutex_unlock(&g_mu);
    return SQLITE_OK;
}

/* gate_wait: JOBQ_CRASHVFS_SYNC_GATE: while the gate is a FIFO, waits for a byte on it. */
static void
gate_wait(cfile *f)
{
    struct stat sb;
    if (g_gate == NULL || !f->counted || stat(g_gate, &sb) != 0 || !S_ISFIFO(sb.st_mode)) {
        return;
    }
    say("crashvfs: sync of %s held", f->name);
    int fd;
    while ((fd = open(g_gate, O_RDONLY)) < 0 && errno == EINTR) {
    }
    if (fd >= 0) {
        char c;
        while (read(fd, &c, 1) < 0 && errno == EINTR) {
        }
        close(fd);
    }
    say("crashvfs: sync of %s released", f->name);
}

static int
c_sync(sqlite3_file *file, int flags)
{
    cfile *f = (cfile *)file;
    gate_wait(f);
    pthread_mutex_lock(&g_mu);
    count_op(f, "sync");
    if (f->counted && fault(FAIL_SYNC, ++g_syncs, f->name)) {
        pthread_mutex_unlock(&g_mu);
        return SQLITE_IOERR_FSYNC;
    }
    int rc = SQLITE_OK;
    if (f->ov != NULL) {
        rc = overlay_flush(f);
    }
    if (rc == SQLITE_OK) {
        rc = f->real->pMethods->xSync(f->real, flags);
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static int
c_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    cfile *f = (cfile *)file;
    if (f->ov == NULL) {
        return f->real->pMethods->xFileSize(f->real, size);
    }
    pthread_mutex_lock(&g_mu);
    *size = f->ov->size;
    pthread_mutex_unlock(&g_mu);
    return SQLITE_OK;
}

static int
c_lock(sqlite3_file *file, int lock)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xLock(f->real, lock);
}

static int
c_unlock(sqlite3_file *file, int lock)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int
c_check_reserved(sqlite3_file *file, int *out)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
c_file_control(sqlite3_file *file, int op, void *arg)
{
    cfile *f = (cfile *)file;
    if (f->ov != NULL && op == SQLITE_FCNTL_SIZE_HINT) {
        return SQLITE_OK; /* a hint; growing the real file would bypass the cache */
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
c_sector_size(sqlite3_file *file)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int
c_device_characteristics(sqlite3_file *file)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int
c_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **pp)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xShmMap(f->real, region, size, extend, pp);
}

static int
c_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void
c_shm_barrier(sqlite3_file *file)
{
    cfile *f = (cfile *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int
c_shm_unmap(sqlite3_file *file, int del)
{
    cfile *f = (cfile *)file;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

/* Version 2: no xFetch, so SQLite never reads a memory map that would bypass the cache. */
static const sqlite3_io_methods c_methods = {
    .iVersion = 2,
    .xClose = c_close,
    .xRead = c_read,
    .xWrite = c_write,
    .xTruncate = c_truncate,
    .xSync = c_sync,
    .xFileSize = c_file_size,
    .xLock = c_lock,
    .xUnlock = c_unlock,
    .xCheckReservedLock = c_check_reserved,
    .xFileControl = c_file_control,
    .xSectorSize = c_sector_size,
    .xDeviceCharacteristics = c_device_characteristics,
    .xShmMap = c_shm_map,
    .xShmLock = c_shm_lock,
    .xShmBarrier = c_shm_barrier,
    .xShmUnmap = c_shm_unmap,
};

/* ---------------------------------------------------------------- vfs methods */

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    cfile *f = (cfile *)file;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = g_real->xOpen(g_real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        f->real->pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &c_methods;
    f->name = name != NULL ? name : "(temporary)";
    f->counted = name != NULL &&
                 (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL));
    if (!f->counted || !g_hold) {
        return SQLITE_OK;
    }
    pthread_mutex_lock(&g_mu);
    overlay *o = overlay_find(name);
    if (o == NULL) {
        sqlite3_int64 size = 0;
        rc = f->real->pMethods->xFileSize(f->real, &size);
        o = rc == SQLITE_OK ? calloc(1, sizeof(*o)) : NULL;
        if (o != NULL && (o->path = strdup(name)) == NULL) {
            free(o);
            o = NULL;
        }
        if (o == NULL) {
            pthread_mutex_unlock(&g_mu);
            f->real->pMethods->xClose(f->real);
            f->base.pMethods = NULL;
            return rc != SQLITE_OK ? rc : SQLITE_NOMEM;
        }
        o->size = o->trunc_to = o->real_size = size;
        o->linked = true;
        o->next = g_overlays;
        g_overlays = o;
    }
    o->refs++;
    f->ov = o;
    pthread_mutex_unlock(&g_mu);
    return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    pthread_mutex_lock(&g_mu);
    overlay *o = overlay_find(name);
    if (o != NULL) {
        overlay_unlink(o);
        if (o->refs == 0) {
            overlay_free(o);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return g_real->xDelete(g_real, name, sync_dir);
}

static int
v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return g_real->xAccess(g_real, name, flags, out);
}

static int
v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return g_real->xFullPathname(g_real, name, n, out);
}

static void *
v_dl_open(sqlite3_vfs *vfs, const char *name)
{
    return g_real->xDlOpen(g_real, name);
}

static void
v_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    g_real->xDlError(g_real, n, msg);
}

static void (*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return g_real->xDlSym(g_real, h, sym);
}

static void
v_dl_close(sqlite3_vfs *vfs, void *h)
{
    g_real->xDlClose(g_real, h);
}

static int
v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return g_real->xRandomness(g_real, n, out);
}

static int
v_sleep(sqlite3_vfs *vfs, int us)
{
    return g_real->xSleep(g_real, us);
}

static int
v_current_time(sqlite3_vfs *vfs, double *out)
{
    return g_real->xCurrentTime(g_real, out);
}

static int
v_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return g_real->xGetLastError(g_real, n, out);
}

static int
v_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return g_real->xCurrentTimeInt64(g_real, out);
}

static sqlite3_vfs g_vfs = {
    .iVersion = 2,
    .zName = "crashvfs",
    .xOpen = v_open,
    .xDelete = v_delete,
    .xAccess = v_access,
    .xFullPathname = v_full_pathname,
    .xDlOpen = v_dl_open,
    .xDlError = v_dl_error,
    .xDlSym = v_dl_sym,
    .xDlClose = v_dl_close,
    .xRandomness = v_randomness,
    .xSleep = v_sleep,
    .xCurrentTime = v_current_time,
    .xGetLastError = v_get_last_error,
    .xCurrentTimeInt64 = v_current_time_int64,
};

/* ---------------------------------------------------------------- load and exit */

/* env_count: a positive integer from the environment (or 0 when zero_ok), 0 if unset; a bad
 * value ends the process (a test that asked for a fault must not run without it). */
static uint64_t
env_count(const char *name, const char *text, bool zero_ok)
{
    if (text == NULL || *text == '\0') {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || (v == 0 && !zero_ok) || text[0] == '-') {
        say("crashvfs: %s must be a %s integer, not \"%s\"", name,
            zero_ok ? "non-negative" : "positive", text);
        _exit(2);
    }
    return v;
}

static void
parse_fail(const char *text)
{
    if (text == NULL || *text == '\0') {
        return;
    }
    char kind[16], rest[32] = "";
    unsigned long long n;
    int got = sscanf(text, "%15[a-z]:%llu:%31s", kind, &n, rest);
    if (got < 2 || (strcmp(kind, "write") != 0 && strcmp(kind, "sync") != 0) || n == 0 ||
        (got == 3 && strcmp(rest, "persist") != 0) || strchr(text, '-') != NULL) {
        say("crashvfs: JOBQ_CRASHVFS_FAIL must be write:N or sync:N, optionally followed by "
            ":persist (N from 1), not \"%s\"",
            text);
        _exit(2);
    }
    g_fail_kind = strcmp(kind, "write") == 0 ? FAIL_WRITE : FAIL_SYNC;
    g_fail_at = n;
    g_fail_persist = got == 3;
}

__attribute__((constructor)) static void
crashvfs_load(void)
{
    g_cut = env_count("JOBQ_CRASHVFS_CUT", getenv("JOBQ_CRASHVFS_CUT"), false);
    g_torn_pct = env_count("JOBQ_CRASHVFS_TORN", getenv("JOBQ_CRASHVFS_TORN"), true);
    if (g_torn_pct > 100) {
        say("crashvfs: JOBQ_CRASHVFS_TORN is a percentage (0 to 100)");
        _exit(2);
    }
    g_seed = env_count("JOBQ_CRASHVFS_SEED", getenv("JOBQ_CRASHVFS_SEED"), false);
    if (g_seed == 0) {
        g_seed = g_cut * 0x9E3779B97F4A7C15ull + 1;
    }
    const char *hold = getenv("JOBQ_CRASHVFS_HOLD");
    g_hold = g_cut != 0 || (hold != NULL && strcmp(hold, "1") == 0);
    parse_fail(getenv("JOBQ_CRASHVFS_FAIL"));
    g_gate = getenv("JOBQ_CRASHVFS_SYNC_GATE");
    if (g_gate != NULL && *g_gate == '\0') {
        g_gate = NULL;
    }

    g_real = sqlite3_vfs_find(NULL);
    if (g_real == NULL) {
        say("crashvfs: SQLite has no default VFS to wrap");
        _exit(2);
    }
    g_vfs.szOsFile = (int)sizeof(cfile) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    int rc = sqlite3_vfs_register(&g_vfs, 1);
    if (rc != SQLITE_OK) {
        say("crashvfs: cannot register: %s", sqlite3_errstr(rc));
        _exit(2);
    }
    say("crashvfs: loaded over \"%s\": hold=%d cut=%llu torn=%llu%% fail=%s", g_real->zName, g_hold,
        (unsigned long long)g_cut, (unsigned long long)g_torn_pct,
        getenv("JOBQ_CRASHVFS_FAIL") != NULL ? getenv("JOBQ_CRASHVFS_FAIL") : "none");
}

__attribute__((destructor)) static void
crashvfs_exit(void)
{
    pthread_mutex_lock(&g_mu);
    for (overlay *o = g_overlays; o != NULL; o = o->next) {
        if (overlay_pending(o)) {
            posix_flush(o);
        }
    }
    say("crashvfs: exit: ops=%llu writes=%llu syncs=%llu truncates=%llu faults=%llu",
        (unsigned long long)g_ops, (unsigned long long)g_writes, (unsigned long long)g_syncs,
        (unsigned long long)g_truncates, (unsigned long long)g_faults);
    pthread_mutex_unlock(&g_mu);
}
