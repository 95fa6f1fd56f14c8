/*
 * powervfs.c - the power-loss and I/O-error VFS of the fault tests (see
 * powervfs.h for the model).
 *
 * State: one node per tracked path (so every handle of a file shares it,
 * as every descriptor of a file shares the page cache), holding the
 * synced size and the saved synced contents of each sector changed since
 * the last xSync.  A sector is saved the first time a write or truncate
 * touches it after a sync, before the change reaches the real file, so
 * the saved copy is always what the platter holds.  One mutex guards all
 * of it and is held across the real call, so saving and writing a sector
 * are one step for every thread.
 */
#include "powervfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

typedef struct pv_sector {
    int64_t  off;
    uint32_t lo, hi; /* bytes of the sector written since the sync */
    uint8_t  old[PVFS_SECTOR];
} pv_sector;

typedef struct pv_node {
    struct pv_node *next;
    char           *path;
    int64_t         synced_size;
    pv_sector     **sec;
    size_t          nsec, cap;
} pv_node;

typedef struct pv_file {
    sqlite3_file  base;
    pv_node      *node; /* NULL: not tracked (-shm, temporary files) */
    sqlite3_file *real; /* right after this struct */
} pv_file;

static struct {
    pthread_mutex_t mu;
    sqlite3_vfs     vfs;
    sqlite3_vfs    *root;
    pv_node        *nodes;
    uint64_t        writes, cut_at;
    bool            dead;
    int             fail_op, fail_errno;
    uint64_t        fail_left, failed;
    uint64_t        rng;
} pv = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Under pv.mu: xorshift64*. */
static uint64_t
pv_rand_locked(void)
{
    uint64_t x = pv.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    pv.rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t
pvfs_rand(void)
{
    pthread_mutex_lock(&pv.mu);
    uint64_t x = pv_rand_locked();
    pthread_mutex_unlock(&pv.mu);
    return x;
}

/* ---- nodes (under pv.mu) ------------------------------------------------- */

static pv_node *
pv_node_get(const char *path)
{
    for (pv_node *n = pv.nodes; n != NULL; n = n->next) {
        if (strcmp(n->path, path) == 0) {
            return n;
        }
    }
    pv_node *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->path = strdup(path)) == NULL) {
        free(n);
        return NULL;
    }
    n->synced_size = -1; /* set from the real size at open */
    n->next = pv.nodes;
    pv.nodes = n;
    return n;
}

static void
pv_node_clear(pv_node *n)
{
    for (size_t i = 0; i < n->nsec; i++) {
        free(n->sec[i]);
    }
    n->nsec = 0;
}

static void
pv_node_drop(const char *path)
{
    for (pv_node **pp = &pv.nodes; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->path, path) == 0) {
            pv_node *n = *pp;
            *pp = n->next;
            pv_node_clear(n);
            free(n->sec);
            free(n->path);
            free(n);
            return;
        }
    }
}

static pv_sector *
pv_find(const pv_node *n, int64_t off)
{
    for (size_t i = 0; i < n->nsec; i++) {
        if (n->sec[i]->off == off) {
            return n->sec[i];
        }
    }
    return NULL;
}

/* Saves the platter's copy of the sector at off unless saved already. */
static int
pv_save(pv_file *f, int64_t off)
{
    pv_node *n = f->node;
    if (pv_find(n, off) != NULL) {
        return SQLITE_OK;
    }
    if (n->nsec == n->cap) {
        size_t      cap = n->cap ? n->cap * 2 : 64;
        pv_sector **a = realloc(n->sec, cap * sizeof(*a));
        if (a == NULL) {
            return SQLITE_IOERR_NOMEM;
        }
        n->sec = a;
        n->cap = cap;
    }
    pv_sector *s = malloc(sizeof(*s));
    if (s == NULL) {
        return SQLITE_IOERR_NOMEM;
    }
    s->off = off;
    s->lo = PVFS_SECTOR;
    s->hi = 0;
    int rc = f->real->pMethods->xRead(f->real, s->old, PVFS_SECTOR, off);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
        free(s);
        return rc; /* a short read zero-fills the rest */
    }
    n->sec[n->nsec++] = s;
    return SQLITE_OK;
}

/* Saves every sector [from, to) touches and widens the part of each that
 * was written since the sync: only those bytes are at risk in a cut. */
static int
pv_save_range(pv_file *f, int64_t from, int64_t to)
{
    int rc = SQLITE_OK;
    for (int64_t off = from / PVFS_SECTOR * PVFS_SECTOR;
         off < to && rc == SQLITE_OK; off += PVFS_SECTOR) {
        if ((rc = pv_save(f, off)) == SQLITE_OK) {
            pv_sector *s = pv_find(f->node, off);
            uint32_t   lo = (uint32_t)((from > off ? from : off) - off);
            uint32_t   hi = (uint32_t)((to < off + PVFS_SECTOR ? to
                                                           : off + PVFS_SECTOR) -
                                     off);
            s->lo = lo < s->lo ? lo : s->lo;
            s->hi = hi > s->hi ? hi : s->hi;
        }
    }
    return rc;
}

/* Under pv.mu: does the next op of this kind fail?  Counts it. */
static int
pv_op(int op)
{
    if (pv.dead) {
        return SQLITE_IOERR;
    }
    if (op == PVFS_OP_WRITE && pv.cut_at != 0 && ++pv.writes >= pv.cut_at) {
        pv.dead = true; /* the machine stops before this write lands */
        return SQLITE_IOERR;
    }
    if (op == PVFS_OP_WRITE && pv.cut_at == 0) {
        pv.writes++;
    }
    if (pv.fail_op == op && pv.fail_left > 0) {
        pv.fail_left--;
        pv.failed++;
        if (op == PVFS_OP_WRITE) {
            return pv.fail_errno == ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
        }
        return SQLITE_IOERR_FSYNC; /* as the unix VFS reports any fsync error */
    }
    return SQLITE_OK;
}

/* ---- io methods ---------------------------------------------------------- */

static int
pv_close(sqlite3_file *p)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xClose(f->real);
}

static int
pv_read(sqlite3_file *p, void *buf, int amt, sqlite3_int64 off)
{
    pv_file *f = (pv_file *)p;
    pthread_mutex_lock(&pv.mu);
    bool dead = pv.dead;
    pthread_mutex_unlock(&pv.mu);
    return dead ? SQLITE_IOERR_READ
                : f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int
pv_write(sqlite3_file *p, const void *buf, int amt, sqlite3_int64 off)
{
    pv_file *f = (pv_file *)p;
    pthread_mutex_lock(&pv.mu);
    int rc = pv_op(PVFS_OP_WRITE);
    if (rc == SQLITE_IOERR) {
        rc = SQLITE_IOERR_WRITE;
    }
    if (rc == SQLITE_OK && f->node != NULL) {
        rc = pv_save_range(f, off, off + amt);
    }
    if (rc == SQLITE_OK) {
        rc = f->real->pMethods->xWrite(f->real, buf, amt, off);
    }
    pthread_mutex_unlock(&pv.mu);
    return rc;
}

static int
pv_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    pv_file      *f = (pv_file *)p;
    sqlite3_int64 cur = 0;
    pthread_mutex_lock(&pv.mu);
    int rc = pv.dead ? SQLITE_IOERR_TRUNCATE : SQLITE_OK;
    if (rc == SQLITE_OK && f->node != NULL) {
        rc = f->real->pMethods->xFileSize(f->real, &cur);
        if (rc == SQLITE_OK && cur > size) {
            rc = pv_save_range(f, size, cur);
        }
    }
    if (rc == SQLITE_OK) {
        rc = f->real->pMethods->xTruncate(f->real, size);
    }
    pthread_mutex_unlock(&pv.mu);
    return rc;
}

static int
pv_sync(sqlite3_file *p, int flags)
{
    pv_file      *f = (pv_file *)p;
    sqlite3_int64 size = 0;
    (void)flags;
    pthread_mutex_lock(&pv.mu);
    int rc = pv_op(PVFS_OP_SYNC);
    if (rc == SQLITE_IOERR) {
        rc = SQLITE_IOERR_FSYNC;
    }
    if (rc == SQLITE_OK && f->node != NULL) {
        rc = f->real->pMethods->xFileSize(f->real, &size);
        if (rc == SQLITE_OK) {
            pv_node_clear(f->node);
            f->node->synced_size = size;
        }
    }
    pthread_mutex_unlock(&pv.mu);
    return rc;
}

static int
pv_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int
pv_lock(sqlite3_file *p, int lk)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xLock(f->real, lk);
}

static int
pv_unlock(sqlite3_file *p, int lk)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xUnlock(f->real, lk);
}

static int
pv_check_lock(sqlite3_file *p, int *out)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
pv_fcntl(sqlite3_file *p, int op, void *arg)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
pv_sector_size(sqlite3_file *p)
{
    (void)p;
    return PVFS_SECTOR;
}

static int
pv_devchar(sqlite3_file *p)
{
    (void)p;
    /* Powersafe overwrite: a cut damages only the bytes being written,
     * not the synced bytes beside them in the same sector. */
    return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int
pv_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **pp)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int
pv_shm_lock(sqlite3_file *p, int off, int n, int flags)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xShmLock(f->real, off, n, flags);
}

static void
pv_shm_barrier(sqlite3_file *p)
{
    pv_file *f = (pv_file *)p;
    f->real->pMethods->xShmBarrier(f->real);
}

static int
pv_shm_unmap(sqlite3_file *p, int del)
{
    pv_file *f = (pv_file *)p;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static const sqlite3_io_methods pv_io = {
    .iVersion = 2, /* no xFetch: SQLite reads through xRead */
    .xClose = pv_close,
    .xRead = pv_read,
    .xWrite = pv_write,
    .xTruncate = pv_truncate,
    .xSync = pv_sync,
    .xFileSize = pv_file_size,
    .xLock = pv_lock,
    .xUnlock = pv_unlock,
    .xCheckReservedLock = pv_check_lock,
    .xFileControl = pv_fcntl,
    .xSectorSize = pv_sector_size,
    .xDeviceCharacteristics = pv_devchar,
    .xShmMap = pv_shm_map,
    .xShmLock = pv_shm_lock,
    .xShmBarrier = pv_shm_barrier,
    .xShmUnmap = pv_shm_unmap,
};

/* ---- vfs methods --------------------------------------------------------- */

static int
pv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags,
        int *out)
{
    pv_file *f = (pv_file *)p;
    bool     track =
        name != NULL && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL |
                                  SQLITE_OPEN_MAIN_JOURNAL)) != 0;
    (void)vfs;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    pthread_mutex_lock(&pv.mu);
    int rc = pv.dead ? SQLITE_CANTOPEN : SQLITE_OK;
    if (rc == SQLITE_OK) {
        rc = pv.root->xOpen(pv.root, name, f->real, flags, out);
    }
    if (rc == SQLITE_OK && track) {
        sqlite3_int64 size = 0;
        f->node = pv_node_get(name);
        if (f->node == NULL) {
            rc = SQLITE_NOMEM;
        } else if (f->node->synced_size < 0 &&
                   f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK) {
            f->node->synced_size = size;
        }
    }
    pthread_mutex_unlock(&pv.mu);
    if (rc != SQLITE_OK && f->real->pMethods != NULL) {
        f->real->pMethods->xClose(f->real);
        f->real->pMethods = NULL;
    }
    p->pMethods = rc == SQLITE_OK ? &pv_io : NULL;
    return rc;
}

static int
pv_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
    (void)vfs;
    pthread_mutex_lock(&pv.mu);
    int rc = pv.dead ? SQLITE_IOERR_DELETE : SQLITE_OK;
    if (rc == SQLITE_OK) {
        pv_node_drop(name);
        rc = pv.root->xDelete(pv.root, name, dirsync);
    }
    pthread_mutex_unlock(&pv.mu);
    return rc;
}

static int
pv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return pv.root->xAccess(pv.root, name, flags, out);
}

static int
pv_full_path(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return pv.root->xFullPathname(pv.root, name, n, out);
}

static int
pv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return pv.root->xRandomness(pv.root, n, out);
}

static int
pv_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return pv.root->xSleep(pv.root, us);
}

static int
pv_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return pv.root->xCurrentTime(pv.root, out);
}

static int
pv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return pv.root->xGetLastError(pv.root, n, out);
}

static int
pv_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return pv.root->xCurrentTimeInt64(pv.root, out);
}

int
pvfs_register(const char *name, uint64_t seed)
{
    sqlite3_vfs *root = sqlite3_vfs_find(NULL);
    if (root == NULL || root->iVersion < 2) {
        return SQLITE_ERROR;
    }
    pv.root = root;
    pv.rng = seed != 0 ? seed : 0x9E3779B97F4A7C15ull;
    pv.vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(pv_file) + root->szOsFile,
        .mxPathname = root->mxPathname,
        .zName = name,
        .xOpen = pv_open,
        .xDelete = pv_delete,
        .xAccess = pv_access,
        .xFullPathname = pv_full_path,
        .xRandomness = pv_randomness,
        .xSleep = pv_sleep,
        .xCurrentTime = pv_time,
        .xGetLastError = pv_last_error,
        .xCurrentTimeInt64 = pv_time64,
    };
    return sqlite3_vfs_register(&pv.vfs, 0);
}

/* ---- the switch ---------------------------------------------------------- */

void
pvfs_arm_cut(uint64_t at)
{
    pthread_mutex_lock(&pv.mu);
    pv.writes = 0;
    pv.cut_at = at;
    pthread_mutex_unlock(&pv.mu);
}

void
pvfs_cut_now(void)
{
    pthread_mutex_lock(&pv.mu);
    pv.dead = true;
    pthread_mutex_unlock(&pv.mu);
}

bool
pvfs_is_dead(void)
{
    pthread_mutex_lock(&pv.mu);
    bool dead = pv.dead;
    pthread_mutex_unlock(&pv.mu);
    return dead;
}

uint64_t
pvfs_writes(void)
{
    pthread_mutex_lock(&pv.mu);
    uint64_t n = pv.writes;
    pthread_mutex_unlock(&pv.mu);
    return n;
}

void
pvfs_fail(int op, int errnum, uint64_t count)
{
    pthread_mutex_lock(&pv.mu);
    pv.fail_op = op;
    pv.fail_errno = errnum;
    pv.fail_left = count;
    pthread_mutex_unlock(&pv.mu);
}

uint64_t
pvfs_failed(void)
{
    pthread_mutex_lock(&pv.mu);
    uint64_t n = pv.failed;
    pthread_mutex_unlock(&pv.mu);
    return n;
}

/* What the platter holds of one unsynced sector after the cut. */
static void
pv_settle(int fd, const pv_sector *s, bool undone, pvfs_report *r)
{
    uint8_t now[PVFS_SECTOR];
    ssize_t got = pread(fd, now, sizeof(now), s->off);
    memset(now + (got > 0 ? got : 0), 0,
           sizeof(now) - (size_t)(got > 0 ? got : 0));
    /* cut off by a truncate that did not survive: the old data is there */
    switch (undone ? 1 : pv_rand_locked() % 4) {
    case 0: /* the write made it */
        r->kept++;
        return;
    case 1: /* dropped */
        memcpy(now, s->old, sizeof(now));
        r->dropped++;
        break;
    case 2: { /* torn: the written part's first blocks new, the rest old */
        size_t cut = s->lo + 512 * (pv_rand_locked() % (PVFS_SECTOR / 512));
        if (cut < s->hi) {
            memcpy(now + cut, s->old + cut, s->hi - cut);
        }
        r->torn++;
        break;
    }
    default: /* garbage where it was written */
        for (size_t i = s->lo; i < s->hi; i++) {
            now[i] = (uint8_t)pv_rand_locked();
        }
        r->garbage++;
        break;
    }
    if (pwrite(fd, now, sizeof(now), s->off) != (ssize_t)sizeof(now)) {
        abort(); /* the test's own disk failed: nothing sensible left */
    }
}

static void
pv_settle_file(pv_node *n, pvfs_report *r)
{
    struct stat st;
    int         fd = open(n->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return; /* deleted: a delete is durable in this model */
    }
    if (fstat(fd, &st) != 0) {
        abort();
    }
    int64_t size = st.st_size;
    if (n->nsec == 0 && size == n->synced_size) {
        close(fd);
        return;
    }
    r->files++;
    if (size != n->synced_size && n->synced_size >= 0 &&
        pv_rand_locked() % 2 == 0) {
        size = n->synced_size; /* the size change did not survive */
        r->resized++;
    }
    if (ftruncate(fd, size > st.st_size ? size : st.st_size) != 0) {
        abort();
    }
    for (size_t i = 0; i < n->nsec; i++) {
        if (n->sec[i]->off < size) {
            pv_settle(fd, n->sec[i], n->sec[i]->off >= st.st_size, r);
        }
    }
    if (ftruncate(fd, size) != 0) {
        abort();
    }
    close(fd);
}

void
pvfs_restart(pvfs_report *r)
{
    pvfs_report scratch;
    r = r != NULL ? r : &scratch;
    memset(r, 0, sizeof(*r));
    pthread_mutex_lock(&pv.mu);
    while (pv.nodes != NULL) {
        pv_node *n = pv.nodes;
        pv_settle_file(n, r);
        pv_node_drop(n->path);
    }
    pv.dead = false;
    pv.writes = 0;
    pv.cut_at = 0;
    pthread_mutex_unlock(&pv.mu);
}

void
pvfs_forget(void)
{
    pthread_mutex_lock(&pv.mu);
    while (pv.nodes != NULL) {
        pv_node_drop(pv.nodes->path);
    }
    pthread_mutex_unlock(&pv.mu);
}
