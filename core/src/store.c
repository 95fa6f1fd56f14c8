/*
 * store.c - the store's database: open and close, schema and migrations,
 * the connections and their pragmas, the registry of destinations, and
 * the allocation hooks.  The writer thread is in store_writer.c.
 *
 * The database is one SQLite file in WAL mode.  PRAGMA user_version is
 * the schema version; store_migrations[i] takes version i to i+1, each in
 * a transaction of its own (re-reading the version under the write lock,
 * so two processes opening one file at once migrate it once).  A file
 * newer than this code is refused with a message that says so.
 *
 * Connections: the writer's (s->wdb, WAL auto-checkpoint on), the query
 * connection for stats and dead-letter listings (s->qdb, under s->qmu),
 * and per drainer a read connection and, for inbox transactions, a write
 * connection (auto-checkpoint off: the writer checkpoints).  All have the
 * same synchronous level, a busy timeout, a bounded page cache and
 * journal_size_limit, which truncates the WAL after a checkpoint resets it.
 *
 * Destinations are created on first use (configured limits, or the
 * defaults under that name) and live until the store closes, so pointers
 * to them stay valid; s->mu guards the list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_impl.h"

#define STORE_BUSY_MS 10000

/* ---- allocation hooks ---------------------------------------------------- */

static void *(*store_malloc_fn)(size_t) = malloc;
static void *(*store_realloc_fn)(void *, size_t) = realloc;
static void (*store_free_fn)(void *) = free;

void
cairni_store_set_allocs(void *(*m)(size_t), void *(*r)(void *, size_t),
                        void (*f)(void *))
{
    store_malloc_fn = m != NULL ? m : malloc;
    store_realloc_fn = r != NULL ? r : realloc;
    store_free_fn = f != NULL ? f : free;
}

void *
cairni_store_malloc(size_t n)
{
    return store_malloc_fn(n != 0 ? n : 1);
}

void *
cairni_store_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = cairni_store_malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
cairni_store_realloc(void *p, size_t n)
{
    return store_realloc_fn(p, n != 0 ? n : 1);
}

void
cairni_store_free(void *p)
{
    if (p != NULL) {
        store_free_fn(p);
    }
}

/* ---- failures the operator sees ------------------------------------------
 * Process-wide counts (a process has one store; the unit tests open more,
 * and read differences).  store_saw_corrupt tells the open path that an
 * SQLite call on this thread reported a damaged file. */

static _Atomic uint64_t   store_errs_io, store_errs_full, store_errs_corrupt;
static _Thread_local bool store_saw_corrupt;

void
cairni_store_faults_get(cairni_store_faults *f)
{
    f->io = atomic_load(&store_errs_io);
    f->full = atomic_load(&store_errs_full);
    f->corrupt = atomic_load(&store_errs_corrupt);
    cairni_store_resets(&f->reset_db, &f->reset_wal);
}

/* ---- the store's clock ---------------------------------------------------
 * Times kept in the file (created, expires, next_at, inbox ts) must carry
 * a record's age across restarts, which only the wall clock can do; but
 * within a run a step of the wall clock (NTP, an operator, a board
 * without an RTC learning the date) must neither expire records early
 * nor stall retries.  So the store's "now" is the wall clock read once,
 * at the first call, advanced by the monotonic clock from then on.  A
 * jump while cairnd runs moves nothing; across a restart the new wall
 * clock is taken as it is (time that passed while the device was off is
 * real).  A retry due implausibly far ahead (the clock went back across a
 * restart) is not waited for: the drainer treats it as due. */

static pthread_once_t store_clock_once = PTHREAD_ONCE_INIT;
static uint64_t       store_clock_wall, store_clock_mono;

static void
store_clock_init(void)
{
    store_clock_mono = cairni_mono_ms();
    store_clock_wall = cairn_now_ms();
}

uint64_t
cairni_store_now_ms(void)
{
    pthread_once(&store_clock_once, store_clock_init);
    return store_clock_wall + (cairni_mono_ms() - store_clock_mono);
}

/* ---- helpers ------------------------------------------------------------- */

/* Every SQLite result the store acts on passes through here, so this is
 * where its I/O errors, full disks and damaged files are counted. */
cairn_err
cairni_store_sqlerr(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
        if (rc != SQLITE_IOERR_NOMEM) {
            atomic_fetch_add((rc & 0xff) == SQLITE_FULL ? &store_errs_full
                                                        : &store_errs_io,
                             1);
        }
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        atomic_fetch_add(&store_errs_corrupt, 1);
        store_saw_corrupt = true;
        break;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return CAIRN_OK;
    case SQLITE_NOMEM:
        return CAIRN_ENOMEM;
    case SQLITE_FULL:
        return CAIRN_EFULL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CAIRN_EBUSY;
    case SQLITE_TOOBIG:
        return CAIRN_ETOOBIG;
    case SQLITE_IOERR:
        return rc == SQLITE_IOERR_NOMEM ? CAIRN_ENOMEM : CAIRN_EIO;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return CAIRN_EINTERNAL;
    default:
        return CAIRN_EIO;
    }
}

int
cairni_store_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

cairn_err
cairni_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc =
        sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return cairni_store_sqlerr(rc);
    }
    return CAIRN_OK;
}

void
cairni_store_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void
cairni_store_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu,
                          uint64_t abs_ms)
{
    cairni_store_cond_wait_us(cv, mu, abs_ms * 1000);
}

void
cairni_store_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu,
                          uint64_t abs_us)
{
    struct timespec ts = {.tv_sec = (time_t)(abs_us / 1000000),
                          .tv_nsec = (long)(abs_us % 1000000) * 1000L};
    (void)pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- tables keyed by seq (linear probing, backward-shift delete) --------- */

static size_t
store_tab_slot(const store_tab *t, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (t->cap - 1);
}

cairn_err
cairni_tab_init(store_tab *t, size_t min)
{
    t->cap = 16;
    while (t->cap < min) {
        t->cap *= 2;
    }
    t->n = 0;
    t->e = cairni_store_calloc(t->cap, sizeof(*t->e));
    return t->e != NULL ? CAIRN_OK : CAIRN_ENOMEM;
}

store_ent *
cairni_tab_find(const store_tab *t, uint64_t key)
{
    for (size_t i = store_tab_slot(t, key);; i = (i + 1) & (t->cap - 1)) {
        if (t->e[i].key == key) {
            return &t->e[i];
        }
        if (t->e[i].key == 0) {
            return NULL;
        }
    }
}

/* Adds key (which must be absent); room must have been reserved. */
store_ent *
cairni_tab_put(store_tab *t, uint64_t key)
{
    size_t i = store_tab_slot(t, key);
    while (t->e[i].key != 0) {
        i = (i + 1) & (t->cap - 1);
    }
    memset(&t->e[i], 0, sizeof(t->e[i]));
    t->e[i].key = key;
    t->n++;
    return &t->e[i];
}

/* Makes room for extra more entries at a load of at most one half. */
cairn_err
cairni_tab_reserve(store_tab *t, size_t extra)
{
    if ((t->n + extra) * 2 <= t->cap) {
        return CAIRN_OK;
    }
    store_tab nt;
    if (cairni_tab_init(&nt, (t->n + extra) * 2) != CAIRN_OK) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->e[i].key != 0) {
            *cairni_tab_put(&nt, t->e[i].key) = t->e[i];
        }
    }
    cairni_store_free(t->e);
    *t = nt;
    return CAIRN_OK;
}

void
cairni_tab_del(store_tab *t, store_ent *e)
{
    size_t hole = (size_t)(e - t->e);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & (t->cap - 1);
        if (t->e[i].key == 0) {
            break;
        }
        size_t home = store_tab_slot(t, t->e[i].key);
        /* move e[i] into the hole unless its home lies in (hole, i] */
        bool stays =
            hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            t->e[hole] = t->e[i];
            hole = i;
        }
    }
    t->e[hole].key = 0;
    t->n--;
}

/* ---- schema -------------------------------------------------------------- */

static const char *const store_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE outbox("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, dest TEXT NOT NULL,"
    " okey TEXT NOT NULL, prio INTEGER NOT NULL, env BLOB NOT NULL,"
    " bytes INTEGER NOT NULL, created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
    " next_at INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE INDEX outbox_dest ON outbox(dest, prio);"
    "CREATE INDEX outbox_retry ON outbox(dest, next_at) WHERE next_at > 0;"
    "CREATE INDEX outbox_expiry ON outbox(expires) WHERE expires > 0;"
    "CREATE TABLE dead("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, msgid BLOB NOT NULL,"
    " dest TEXT NOT NULL, okey TEXT NOT NULL, prio INTEGER NOT NULL,"
    " env BLOB NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, died INTEGER NOT NULL, error TEXT);"
    "CREATE INDEX dead_msgid ON dead(msgid);"
    "CREATE INDEX dead_dest ON dead(dest);"
    "CREATE TABLE inbox(consumer TEXT NOT NULL, id BLOB NOT NULL,"
    " ts INTEGER NOT NULL, PRIMARY KEY(consumer, id)) WITHOUT ROWID;"
    "CREATE INDEX inbox_ts ON inbox(ts);"
    "CREATE TABLE kv(ns TEXT NOT NULL, key TEXT NOT NULL,"
    " value BLOB NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;",
};
#define STORE_SCHEMA_VERSION ((int)CAIRNI_ARRAY_LEN(store_migrations))

static const char *const store_sql[WS_COUNT] = {
    [WS_BEGIN] = "BEGIN IMMEDIATE",
    [WS_COMMIT] = "COMMIT",
    [WS_ROLLBACK] = "ROLLBACK",
    [WS_SAVEPOINT] = "SAVEPOINT req",
    [WS_RELEASE] = "RELEASE req",
    [WS_ROLLBACK_TO] = "ROLLBACK TO req",
    [WS_PUT] = "INSERT INTO outbox(dest, okey, prio, env, bytes, created,"
               " expires) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [WS_DEL_SEQ] =
        "DELETE FROM outbox WHERE seq = ?1 AND dest = ?2 RETURNING bytes",
    [WS_NACK] = "UPDATE outbox SET attempt = ?2, next_at = ?3,"
                " last_error = ?4 WHERE seq = ?1 AND dest = ?5",
    [WS_TO_DEAD] = "INSERT INTO dead(msgid, dest, okey, prio, env, bytes,"
                   " created, attempt, died, error) SELECT ?2, dest, okey,"
                   " prio, env, bytes, created, ?3, ?4, ?5 FROM outbox"
                   " WHERE seq = ?1 AND dest = ?6",
    [WS_EVICT_OUT] = "SELECT seq, bytes FROM outbox WHERE dest = ?1"
                     " ORDER BY prio, seq LIMIT 64",
    [WS_EVICT_DEAD] =
        "SELECT id, bytes FROM dead WHERE dest = ?1 ORDER BY id LIMIT 64",
    [WS_DEL_DEAD] = "DELETE FROM dead WHERE id = ?1 RETURNING bytes",
    [WS_DLQ_BY_MSGID] = "SELECT id, dest FROM dead WHERE msgid = ?1"
                        " AND id > ?2 ORDER BY id LIMIT 256",
    [WS_DLQ_ALL] =
        "SELECT id, dest FROM dead WHERE id > ?1 ORDER BY id LIMIT 256",
    [WS_DLQ_REPLAY] = "INSERT INTO outbox(dest, okey, prio, env, bytes,"
                      " created, expires) SELECT dest, okey, prio, env,"
                      " bytes, ?2, ?3 FROM dead WHERE id = ?1",
    [WS_DLQ_GROUPS] =
        "SELECT dest, count(*), sum(bytes) FROM dead GROUP BY dest",
    [WS_DLQ_PURGE] = "DELETE FROM dead",
    [WS_ACCEPT] =
        "INSERT OR IGNORE INTO inbox(consumer, id, ts) VALUES(?1, ?2, ?3)",
    [WS_SWEEP_TTL] = "DELETE FROM outbox WHERE seq IN (SELECT seq FROM"
                     " outbox WHERE expires > 0 AND expires <= ?1"
                     " LIMIT 1024) RETURNING dest, bytes",
    [WS_SWEEP_INBOX] = "DELETE FROM inbox WHERE ts < ?1",
};

static int
store_user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* One migration step, from *v to *v + 1, unless another process did it. */
static int
store_migrate_one(sqlite3 *db, int *v)
{
    char sql[64];
    int  rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = store_user_version(db, v); /* re-read under the write lock */
    if (rc == SQLITE_OK && *v >= 0 && *v < STORE_SCHEMA_VERSION) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", *v + 1);
        rc = sqlite3_exec(db, store_migrations[*v], NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static cairn_err
store_migrate(cairni_store *s, char *err, size_t errlen)
{
    int v = 0;
    int rc = store_user_version(s->wdb, &v);
    while (rc == SQLITE_OK && v >= 0 && v < STORE_SCHEMA_VERSION) {
        rc = store_migrate_one(s->wdb, &v);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: schema migration: %s", s->path,
                 sqlite3_errstr(rc));
        return cairni_store_sqlerr(rc);
    }
    if (v != STORE_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s: database schema version %d is newer than this cairn"
                 " supports (%d); upgrade cairn or use another file",
                 s->path, v, STORE_SCHEMA_VERSION);
        return CAIRN_ENOTSUP;
    }
    return CAIRN_OK;
}

/* ---- connections --------------------------------------------------------- */

static cairn_err
store_pragmas(cairni_store *s, sqlite3 *db, bool writer)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "PRAGMA synchronous = %s; PRAGMA journal_size_limit = 4194304;"
             " PRAGMA cache_size = -%d; PRAGMA temp_store = MEMORY;"
             " PRAGMA wal_autocheckpoint = %d;",
             s->sync == CAIRNI_SYNC_NORMAL ? "NORMAL" : "FULL",
             writer ? 2048 : 1024, writer ? 1000 : 0);
    return cairni_store_sqlerr(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* s->path holds the database path and, after its NUL, the VFS name
 * ("": SQLite's default), so the one allocation carries both. */
static const char *
store_vfs(const cairni_store *s)
{
    const char *vfs = s->path + strlen(s->path) + 1;
    return vfs[0] != '\0' ? vfs : NULL;
}

cairn_err
cairni_store_conn(cairni_store *s, sqlite3 **dbp)
{
    sqlite3 *db = NULL;
    int      flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int       rc = sqlite3_open_v2(s->path, &db, flags, store_vfs(s));
    cairn_err rv = cairni_store_sqlerr(rc);
    if (rv != CAIRN_OK) {
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_MS);
    rv = store_pragmas(s, db, false);
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *dbp = db;
    return CAIRN_OK;
fail:
    sqlite3_close(db);
    *dbp = NULL;
    return rv;
}

/* The writer's connection: WAL on, auto-checkpoint on. */
static cairn_err
store_open_writer(cairni_store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    cairn_err     rv = cairni_store_conn(s, &s->wdb);
    if (rv != CAIRN_OK) {
        snprintf(err, errlen, "%s: cannot open: %s", s->path,
                 cairn_strerror(rv));
        return rv;
    }
    rv = store_pragmas(s, s->wdb, true);
    if (rv == CAIRN_OK) {
        rv = cairni_store_sqlerr(sqlite3_prepare_v2(
            s->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL));
    }
    if (rv == CAIRN_OK) {
        int         rc = sqlite3_step(st);
        const char *mode =
            rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        rv = cairni_store_sqlerr(rc);
        if (rc == SQLITE_ROW && (mode == NULL || strcmp(mode, "wal") != 0)) {
            rv = mode == NULL ? CAIRN_ENOMEM : CAIRN_ENOTSUP;
        }
    }
    sqlite3_finalize(st);
    if (rv != CAIRN_OK) {
        snprintf(err, errlen, "%s: cannot use WAL mode: %s", s->path,
                 sqlite3_errmsg(s->wdb));
    }
    return rv;
}

/* ---- destinations -------------------------------------------------------- */

static const cairni_dest_cfg *
store_cfg_for(const cairni_store *s, const char *name)
{
    for (size_t i = 0; i < s->ncfgs; i++) {
        if (strcmp(s->cfgs[i].name, name) == 0) {
            return &s->cfgs[i];
        }
    }
    return &s->dflt;
}

static store_dest *
store_dest_add(cairni_store *s, const char *name, size_t len)
{
    if (s->ndests >= STORE_MAX_DESTS) {
        return NULL;
    }
    store_dest **arr =
        cairni_store_realloc(s->dests, (s->ndests + 1) * sizeof(*s->dests));
    if (arr == NULL) {
        return NULL;
    }
    s->dests = arr;
    store_dest *d = cairni_store_calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    memcpy(d->name, name, len);
    d->cfg = *store_cfg_for(s, d->name);
    d->cfg.name = d->name;
    if (d->cfg.window == 0) {
        d->cfg.window = 100;
    }
    s->dests[s->ndests++] = d;
    return d;
}

store_dest *
cairni_store_dest(cairni_store *s, const char *name, size_t len, bool create)
{
    store_dest *d = NULL;
    if (name == NULL || len == 0 || len > STORE_DEST_NAME_MAX ||
        memchr(name, '\0', len) != NULL) {
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ndests && d == NULL; i++) {
        if (strncmp(s->dests[i]->name, name, len) == 0 &&
            s->dests[i]->name[len] == '\0') {
            d = s->dests[i];
        }
    }
    if (d == NULL && create) {
        d = store_dest_add(s, name, len);
    }
    pthread_mutex_unlock(&s->mu);
    return d;
}

size_t
cairni_store_dest_list(cairni_store *s, store_dest **out, size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->ndests < max ? s->ndests : max;
    if (n > 0) { /* s->dests is NULL while there are none */
        memcpy(out, s->dests, n * sizeof(*out));
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- open and close ------------------------------------------------------ */

/* Closes the connections and forgets the destinations (their counters
 * came from the file): what an open that failed leaves behind. */
static void
store_close_db(cairni_store *s)
{
    for (size_t i = 0; i < WS_COUNT; i++) {
        sqlite3_finalize(s->ws[i]);
        s->ws[i] = NULL;
    }
    sqlite3_finalize(s->q_oldest);
    sqlite3_finalize(s->q_retry);
    sqlite3_finalize(s->q_dlq);
    s->q_oldest = s->q_retry = s->q_dlq = NULL;
    sqlite3_close(s->qdb);
    sqlite3_close(s->wdb);
    s->qdb = s->wdb = NULL;
    for (size_t i = 0; i < s->ndests; i++) {
        cairni_store_free(s->dests[i]);
    }
    cairni_store_free(s->dests);
    s->dests = NULL;
    s->ndests = 0;
}

static void
store_free(cairni_store *s)
{
    store_close_db(s);
    for (size_t i = 0; i < s->ncfgs; i++) {
        cairni_store_free((char *)s->cfgs[i].name);
    }
    cairni_store_free(s->cfgs);
    cairni_store_free(s->acks);
    cairni_store_free(s->wacks);
    cairni_store_free(s->path);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->emu);
    pthread_cond_destroy(&s->wcv);
    pthread_cond_destroy(&s->acv);
    pthread_cond_destroy(&s->ecv);
    cairni_store_free(s);
}

static char *
store_strdup(const char *str)
{
    size_t n = strlen(str) + 1;
    char  *p = cairni_store_malloc(n);
    if (p != NULL) {
        memcpy(p, str, n);
    }
    return p;
}

static cairn_err
store_copy_opts(cairni_store *s, const cairni_store_opts *o)
{
    s->sync = o->sync;
    s->retry = o->retry;
    s->inbox_window_ms = o->inbox_window_ms ? o->inbox_window_ms : 86400000u;
    s->dflt = o->dest_default;
    const char *vfs = o->vfs != NULL ? o->vfs : "";
    size_t      plen = strlen(o->path) + 1, vlen = strlen(vfs) + 1;
    s->path = cairni_store_malloc(plen + vlen);
    if (s->path == NULL) {
        return CAIRN_ENOMEM;
    }
    memcpy(s->path, o->path, plen);
    memcpy(s->path + plen, vfs, vlen);
    if (o->ndests > 0) {
        s->cfgs = cairni_store_calloc(o->ndests, sizeof(*s->cfgs));
        if (s->cfgs == NULL) {
            return CAIRN_ENOMEM;
        }
    }
    for (size_t i = 0; i < o->ndests; i++) {
        if (o->dests[i].name == NULL) {
            return CAIRN_EINVAL;
        }
        s->cfgs[i] = o->dests[i];
        s->cfgs[i].name = store_strdup(o->dests[i].name);
        if (s->cfgs[i].name == NULL) {
            return CAIRN_ENOMEM;
        }
        s->ncfgs++;
    }
    return CAIRN_OK;
}

static cairn_err
store_prepare_all(cairni_store *s)
{
    cairn_err rv = CAIRN_OK;
    for (size_t i = 0; i < WS_COUNT && rv == CAIRN_OK; i++) {
        rv = cairni_store_prepare(s->wdb, store_sql[i], &s->ws[i]);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_conn(s, &s->qdb);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_prepare(
            s->qdb,
            "SELECT created FROM outbox WHERE dest = ?1 AND prio = ?2"
            " ORDER BY seq LIMIT 1",
            &s->q_oldest);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_prepare(
            s->qdb,
            "SELECT min(next_at) FROM outbox WHERE dest = ?1"
            " AND next_at > 0 AND next_at > ?2",
            &s->q_retry);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_prepare(
            s->qdb,
            "SELECT msgid, dest, attempt, died, error FROM dead"
            " ORDER BY id LIMIT ?1",
            &s->q_dlq);
    }
    return rv;
}

/* Runs PRAGMA quick_check on the writer's connection: anything but one
 * "ok" row means the file is damaged (and sets store_saw_corrupt). */
static cairn_err
store_quick_check(cairni_store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->wdb, "PRAGMA quick_check(4)", -1, &st, NULL);
    cairn_err rv = cairni_store_sqlerr(rc);
    if (rv == CAIRN_OK) {
        rc = sqlite3_step(st);
        const char *row =
            rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        rv = cairni_store_sqlerr(rc);
        if (rv == CAIRN_OK && (row == NULL || strcmp(row, "ok") != 0)) {
            snprintf(err, errlen, "%s: quick_check: %.200s", s->path,
                     row != NULL ? row : "no answer");
            for (char *nl = strchr(err, '\n'); nl != NULL;
                 nl = strchr(nl, '\n')) {
                *nl = ' '; /* one log line */
            }
            store_saw_corrupt = true;
            rv = CAIRN_EIO;
        }
    }
    if (rv != CAIRN_OK && err[0] == '\0') {
        snprintf(err, errlen, "%s: quick_check: %s", s->path,
                 sqlite3_errmsg(s->wdb));
    }
    sqlite3_finalize(st);
    return rv;
}

/*
 * Opens the database: the writer's connection in WAL mode, the schema, a
 * quick check of every page, the statements and the counters.  *corrupt
 * says the failure was a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB, or
 * quick_check's findings), as opposed to permissions, memory or a newer
 * schema, which must not cost the operator the file.
 */
static cairn_err
store_open_db(cairni_store *s, bool *corrupt, char *err, size_t errlen)
{
    store_saw_corrupt = false;
    err[0] = '\0';
    cairn_err rv = store_open_writer(s, err, errlen);
    if (rv == CAIRN_OK) {
        rv = store_migrate(s, err, errlen);
    }
    if (rv == CAIRN_OK) {
        rv = store_quick_check(s, err, errlen);
    }
    if (rv == CAIRN_OK) {
        rv = store_prepare_all(s);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_outbox_load(s);
    }
    *corrupt = rv != CAIRN_OK && store_saw_corrupt;
    if (rv != CAIRN_OK && err[0] == '\0') {
        snprintf(err, errlen, "%s: %s", s->path,
                 s->wdb != NULL ? sqlite3_errmsg(s->wdb) : cairn_strerror(rv));
    }
    return rv;
}

static void
store_init_sync(cairni_store *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->emu, NULL);
    cairni_store_cond_init(&s->wcv);
    cairni_store_cond_init(&s->acv);
    cairni_store_cond_init(&s->ecv);
}

cairn_err
cairni_store_open(cairni_store **sp, const cairni_store_opts *o, char *err,
                  size_t errlen)
{
    char      scratch[8];
    cairn_err rv;

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (sp == NULL || o == NULL || o->path == NULL) {
        snprintf(err, errlen, "store: no database path");
        return CAIRN_EINVAL;
    }
    cairni_store *s = cairni_store_calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return CAIRN_ENOMEM;
    }
    store_init_sync(s);
    rv = store_copy_opts(s, o);
    if (rv == CAIRN_OK) {
        rv = cairni_store_check_wal(s->path, err, errlen);
    }
    if (rv == CAIRN_OK) {
        bool corrupt;
        rv = store_open_db(s, &corrupt, err, errlen);
        if (rv != CAIRN_OK && corrupt) {
            store_close_db(s);
            rv = cairni_store_set_aside(s->path, true, err, errlen);
            if (rv == CAIRN_OK) {
                rv = store_open_db(s, &corrupt, err, errlen);
            }
        }
    }
    for (size_t i = 0; i < s->ncfgs && rv == CAIRN_OK; i++) {
        const char *n = s->cfgs[i].name;
        if (cairni_store_dest(s, n, strlen(n), true) == NULL) {
            rv = strlen(n) - 1 < STORE_DEST_NAME_MAX ? CAIRN_ENOMEM
                                                     : CAIRN_EINVAL;
        }
    }
    if (rv == CAIRN_OK &&
        pthread_create(&s->writer, NULL, cairni_store_writer_main, s) != 0) {
        rv = CAIRN_ENOMEM;
    }
    if (rv != CAIRN_OK) {
        goto fail;
    }
    s->writer_started = true;
    *sp = s;
    return CAIRN_OK;
fail:
    if (err[0] == '\0') {
        snprintf(err, errlen, "%s: %s", o->path, cairn_strerror(rv));
    }
    store_free(s);
    return rv;
}

void
cairni_store_close(cairni_store *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->wmu);
    s->stop = true;
    pthread_cond_signal(&s->wcv);
    pthread_mutex_unlock(&s->wmu);
    if (s->writer_started) {
        pthread_join(s->writer, NULL);
    }
    pthread_mutex_lock(&s->emu);
    atomic_store(&s->closing, true);
    pthread_cond_broadcast(&s->ecv);
    pthread_mutex_unlock(&s->emu);
    store_free(s);
}
