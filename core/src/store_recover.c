/*
 * store_recover.c - damaged store files: found at open, moved aside (never
 * deleted), counted.  The store's open path (store.c) calls
 * cairni_store_check_wal before SQLite opens the files, and
 * cairni_store_set_aside when SQLite reports the database damaged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_impl.h"

static _Atomic uint64_t store_reset_db, store_reset_wal;

void
cairni_store_resets(uint64_t *db, uint64_t *wal)
{
    *db = atomic_load(&store_reset_db);
    *wal = atomic_load(&store_reset_wal);
}

/* ---- damaged files -------------------------------------------------------
 * A database that SQLite reports damaged is never deleted and never
 * repaired in place: it is renamed, with its -wal and -shm, to
 * <path>.corrupt-<UTC time>[.<n>] (the same stem keeps the three
 * together, so `sqlite3 <stem>` opens the copy with its WAL), and the
 * store starts empty.  A WAL whose header fails SQLite's own check is
 * one SQLite would ignore: it is renamed to <stem>-wal (and the -shm to
 * <stem>-shm) before SQLite can overwrite it, and the database is kept.
 * Power loss can leave such a header too (a WAL restarted, its header
 * not yet synced: nothing committed in it), so that case costs no data;
 * it is only reported. */

/* The directory of path (".": none), into dir. */
static void
store_dirname(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, cap, ".");
    } else {
        snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path),
                 path);
    }
}

static bool
store_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 || errno != ENOENT;
}

/* A free stem <path>.corrupt-<UTC>[.<n>] (nothing of that name with any
 * suffix exists yet). */
static cairn_err
store_aside_stem(const char *path, char *stem, size_t cap)
{
    char      ts[32], p[4200];
    struct tm tm;
    time_t    now = time(NULL);
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm) == 0) {
        return CAIRN_EINTERNAL;
    }
    for (int n = 0; n < 1000; n++) {
        int len = n == 0 ? snprintf(stem, cap, "%s.corrupt-%s", path, ts)
                         : snprintf(stem, cap, "%s.corrupt-%s.%d", path, ts, n);
        if (len < 0 || (size_t)len >= cap || (size_t)len + 5 > sizeof(p)) {
            return CAIRN_ETOOBIG;
        }
        bool used = store_exists(stem);
        snprintf(p, sizeof(p), "%s-wal", stem);
        used = used || store_exists(p);
        snprintf(p, sizeof(p), "%s-shm", stem);
        if (!used && !store_exists(p)) {
            return CAIRN_OK;
        }
    }
    return CAIRN_EEXIST;
}

/* Renames path+sfx to stem+sfx; a missing -wal or -shm is not an error. */
static cairn_err
store_rename(const char *path, const char *stem, const char *sfx, bool must)
{
    char from[4200], to[4200];
    snprintf(from, sizeof(from), "%s%s", path, sfx);
    snprintf(to, sizeof(to), "%s%s", stem, sfx);
    if (rename(from, to) != 0 && (must || errno != ENOENT)) {
        return cairn_errno(errno);
    }
    return CAIRN_OK;
}

/*
 * Moves the damaged files aside (db: the database with its -wal and -shm;
 * otherwise the -wal and -shm alone), syncs the directory, logs why (the
 * reason is in err on entry) and counts it.  On return err is empty, or
 * says why the files could not be moved (then nothing was opened).
 */
cairn_err
cairni_store_set_aside(const char *path, bool db, char *err, size_t errlen)
{
    char      stem[4096], dir[4096], why[512];
    cairn_err rv = store_aside_stem(path, stem, sizeof(stem));
    snprintf(why, sizeof(why), "%s", err);
    if (rv == CAIRN_OK && db) {
        rv = store_rename(path, stem, "", true);
    }
    if (rv == CAIRN_OK) {
        rv = store_rename(path, stem, "-wal", false);
    }
    if (rv == CAIRN_OK) {
        rv = store_rename(path, stem, "-shm", false);
    }
    if (rv != CAIRN_OK) {
        snprintf(err, errlen, "%.300s; cannot move the damaged file aside: %s",
                 why, cairn_strerror(rv));
        return rv;
    }
    store_dirname(path, dir, sizeof(dir));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* the renames survive a power cut */
        close(fd);
    }
    atomic_fetch_add(db ? &store_reset_db : &store_reset_wal, 1);
    if (db) {
        cairni_log(CAIRN_LOG_ERROR, "store",
                   "%s is damaged (%s): moved aside to %s (with its -wal"
                   " and -shm); starting with an empty store",
                   path, why, stem);
    } else {
        cairni_log(CAIRN_LOG_WARN, "store",
                   "%s-wal has an invalid header (%s), which SQLite would"
                   " ignore: kept as %s-wal; the database is kept",
                   path, why, stem);
    }
    err[0] = '\0';
    return CAIRN_OK;
}

/* SQLite's own test of a WAL header (the file format's 32 bytes): magic,
 * version, page size, and the checksum of the first 24 bytes, computed on
 * 32-bit words in the byte order the magic's low bit names. */
static bool
store_wal_header_ok(const uint8_t h[32], char *why, size_t cap)
{
    uint32_t magic = (uint32_t)cairni_load_be(h, 4);
    uint32_t pg = (uint32_t)cairni_load_be(h + 8, 4);
    uint32_t s1 = 0, s2 = 0;
    pg = pg == 1 ? 65536 : pg;
    if ((magic & 0xfffffffeu) != 0x377f0682u) {
        snprintf(why, cap, "bad magic 0x%08x", (unsigned)magic);
        return false;
    }
    if (cairni_load_be(h + 4, 4) != 3007000 || pg < 512 || pg > 65536 ||
        (pg & (pg - 1)) != 0) {
        snprintf(why, cap, "bad version or page size");
        return false;
    }
    for (size_t i = 0; i < 24; i += 8) {
        uint32_t x0 = (uint32_t)cairni_load_be(h + i, 4);
        uint32_t x1 = (uint32_t)cairni_load_be(h + i + 4, 4);
        if ((magic & 1) == 0) { /* little-endian words */
            x0 = __builtin_bswap32(x0);
            x1 = __builtin_bswap32(x1);
        }
        s1 += x0 + s2;
        s2 += x1 + s1;
    }
    if (s1 != cairni_load_be(h + 24, 4) || s2 != cairni_load_be(h + 28, 4)) {
        snprintf(why, cap, "bad header checksum");
        return false;
    }
    return true;
}

/* Before SQLite opens path: sets a WAL with an invalid header aside. */
cairn_err
cairni_store_check_wal(const char *path, char *err, size_t errlen)
{
    char        wal[4200];
    uint8_t     h[32];
    struct stat st;
    snprintf(wal, sizeof(wal), "%s-wal", path);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return CAIRN_OK; /* no WAL (or none we may read: SQLite will say) */
    }
    bool bad = fstat(fd, &st) == 0 && st.st_size >= 32 &&
               pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
               !store_wal_header_ok(h, err, errlen);
    close(fd);
    return bad ? cairni_store_set_aside(path, false, err, errlen) : CAIRN_OK;
}

size_t
cairni_store_corrupt_files(const char *path)
{
    char        dir[4096], p[4200];
    const char *base = strrchr(path, '/');
    size_t      n = 0;
    base = base != NULL ? base + 1 : path;
    store_dirname(path, dir, sizeof(dir));
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        return 0;
    }
    size_t         blen = strlen(base);
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        const char *nm = e->d_name;
        size_t      len = strlen(nm);
        if (strncmp(nm, base, blen) != 0 ||
            strncmp(nm + blen, ".corrupt-", 9) != 0 ||
            (len > 4 && strcmp(nm + len - 4, "-shm") == 0)) {
            continue;
        }
        if (len > 4 && strcmp(nm + len - 4, "-wal") == 0) {
            /* counts only when it was set aside alone */
            snprintf(p, sizeof(p), "%s/%.*s", dir, (int)(len - 4), nm);
            n += !store_exists(p);
        } else {
            n++;
        }
    }
    closedir(dh);
    return n;
}
