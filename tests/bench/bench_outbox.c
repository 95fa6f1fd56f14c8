/*
 * bench_outbox.c - the store against raw SQLite, measured in the same run
 * on the same disk.
 *
 *   ingest  producer threads (8, as the target says; also 64, to show
 *           how group commit scales with requests in flight) call
 *           cairni_outbox_put with 200-byte envelopes under sync: full;
 *           each call returns once its record is durable, so 8 producers
 *           can never put more than 8 records into one fsync.  A third
 *           run has 8 producers call put_many with 16 records, commits
 *           as big as the baseline's: the store's own overhead.  Baseline:
 *           the same rows (pre-encoded) inserted with raw SQLite into the
 *           same schema under the same pragmas, 100 rows per transaction.
 *           Prints msg/s of both, the ratio (target >= 0.5) and the mean
 *           number of records per commit.
 *   drain   a backlog of 200-byte records, drained with next (window
 *           100) + ack + record_fini; baseline: raw SQLite reading the
 *           same rows in seq order and deleting them, 100 rows per
 *           transaction.  Prints msg/s of both and the ratio; the
 *           store's figure stops when the last record was acked, and a
 *           second one when the last delete committed.
 *
 * Databases live in a fresh directory under the build tree (never tmpfs:
 * fsync must cost what it costs on the device; the run says which file
 * system it used).  Each benchmark ends with one JSON line.  Usage:
 * bench_outbox [--quick] (also CAIRN_BENCH_QUICK=1): fewer messages and
 * one round, for CTest.  Otherwise the best of three alternating rounds.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store_impl.h"

#define ENV_BYTES 200
#define TOPIC "bench/telemetry"
#define DEST "cloud"

typedef struct bench_cfg {
    size_t ingest;
    size_t drain;
    int    rounds;
} bench_cfg;

static char bench_dir[600];

static void
die(const char *what, int rv)
{
    fprintf(stderr, "bench_outbox: %s: %d\n", what, rv);
    exit(1);
}

static double
secs_since(uint64_t t0_us)
{
    return (double)(cairni_mono_us() - t0_us) / 1e6;
}

static void
bench_path(char *out, size_t cap, const char *name)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    snprintf(out, cap, "%s/%s", bench_dir, name);
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s%s", out, sfx[i]);
        unlink(p);
    }
}

static void
bench_mkdir(void)
{
    struct statfs fs;
    snprintf(bench_dir, sizeof(bench_dir), "%s/bench-outbox-XXXXXX",
             CAIRN_BENCH_DIR);
    if (mkdtemp(bench_dir) == NULL) {
        die("mkdtemp", 0);
    }
    if (statfs(bench_dir, &fs) == 0) {
        printf("databases in the build tree, file system type 0x%lx%s\n",
               (unsigned long)fs.f_type,
               fs.f_type == 0x01021994 ? " (tmpfs: fsync is free, figures"
                                         " are not representative)"
                                       : "");
    }
}

/* An envelope whose encoding is exactly ENV_BYTES bytes. */
static void
bench_env(cairn_envelope *e, uint8_t *payload)
{
    cairn_envelope_init(e);
    e->topic = cairn_str_c(TOPIC);
    e->ts = cairn_now_ms();
    cairn_id_new(e->id);
    e->payload.ptr = payload;
    e->payload.len = 1;
    size_t base = cairn_envelope_encoded_size(e);
    e->payload.len = ENV_BYTES - base;
    while (cairn_envelope_encoded_size(e) > ENV_BYTES) {
        e->payload.len--;
    }
}

static cairni_store *
bench_store(const char *path, uint32_t window)
{
    cairni_store     *s;
    char              err[256];
    cairni_store_opts o = {
        .path = path,
        .sync = CAIRNI_SYNC_FULL,
        .retry = {.initial_ms = 100, .max_ms = 1000, .multiplier = 2},
        .dest_default = {.name = "", .window = window},
    };
    cairn_err rv = cairni_store_open(&s, &o, err, sizeof(err));
    if (rv != CAIRN_OK) {
        fprintf(stderr, "bench_outbox: %s\n", err);
        exit(1);
    }
    return s;
}

/* ---- ingest -------------------------------------------------------------- */

typedef struct producer {
    cairni_store      *s;
    size_t             n;
    size_t             per_call; /* 1: cairni_outbox_put, else put_many */
    pthread_barrier_t *start;
} producer;

static void *
producer_main(void *arg)
{
    producer      *p = arg;
    uint8_t        payload[ENV_BYTES];
    cairn_envelope e[16];
    memset(payload, 'p', sizeof(payload));
    pthread_barrier_wait(p->start);
    for (size_t i = 0; i < p->n; i += p->per_call) {
        for (size_t k = 0; k < p->per_call; k++) {
            bench_env(&e[k], payload);
        }
        cairn_err rv =
            p->per_call == 1
                ? cairni_outbox_put(p->s, DEST, &e[0], 0)
                : cairni_outbox_put_many(p->s, DEST, e, p->per_call, 0);
        if (rv != CAIRN_OK) {
            die("put", rv);
        }
    }
    return NULL;
}

static double
ingest_store(size_t n, int threads, size_t per_call, double *batch)
{
    char              path[700];
    pthread_t         th[64];
    producer          p[64];
    pthread_barrier_t start;
    bench_path(path, sizeof(path), "store.db");
    cairni_store *s = bench_store(path, 100);
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        p[i] = (producer){s, n / (size_t)threads, per_call, &start};
        pthread_create(&th[i], NULL, producer_main, &p[i]);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = cairni_mono_us();
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    double t = secs_since(t0);
    *batch = (double)atomic_load(&s->hist_sum) * (double)per_call /
             (double)atomic_load(&s->hist_count);
    pthread_barrier_destroy(&start);
    cairni_store_close(s);
    return (double)(n / (size_t)threads * (size_t)threads) / t;
}

/* A raw connection to a database whose schema the store created. */
static sqlite3 *
raw_open(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     " PRAGMA journal_size_limit = 4194304;"
                     " PRAGMA cache_size = -2048; PRAGMA temp_store = MEMORY;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        die("raw open", sqlite3_errcode(db));
    }
    return db;
}

static void
raw_exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        die(sql, sqlite3_errcode(db));
    }
}

static double
ingest_raw(size_t n)
{
    char           path[700];
    uint8_t        payload[ENV_BYTES];
    cairn_envelope e;
    sqlite3_stmt  *st;
    uint8_t       *rows = malloc(n * ENV_BYTES);
    size_t        *lens = malloc(n * sizeof(*lens));
    memset(payload, 'p', sizeof(payload));
    for (size_t i = 0; i < n; i++) {
        bench_env(&e, payload);
        if (cairn_envelope_encode(&e, rows + i * ENV_BYTES, ENV_BYTES,
                                  &lens[i]) != CAIRN_OK) {
            die("encode", 0);
        }
    }
    bench_path(path, sizeof(path), "raw.db");
    cairni_store_close(bench_store(path, 100)); /* the same schema */
    sqlite3 *db = raw_open(path);
    sqlite3_prepare_v2(db,
                       "INSERT INTO outbox(dest, okey, prio, env, bytes,"
                       " created, expires) VALUES(?1, ?2, 0, ?3, ?4, ?5, 0)",
                       -1, &st, NULL);
    uint64_t t0 = cairni_mono_us();
    for (size_t i = 0; i < n; i++) {
        if (i % 100 == 0) {
            raw_exec(db, "BEGIN IMMEDIATE");
        }
        sqlite3_bind_text(st, 1, DEST, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, TOPIC, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, rows + i * ENV_BYTES, (int)lens[i],
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)(lens[i] + strlen(TOPIC)));
        sqlite3_bind_int64(st, 5, (int64_t)cairn_now_ms());
        if (sqlite3_step(st) != SQLITE_DONE) {
            die("raw insert", sqlite3_errcode(db));
        }
        sqlite3_reset(st);
        if (i % 100 == 99 || i == n - 1) {
            raw_exec(db, "COMMIT");
        }
    }
    double t = secs_since(t0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(rows);
    free(lens);
    return (double)n / t;
}

/* ---- drain --------------------------------------------------------------- */

static void
backlog(cairni_store *s, size_t n)
{
    static cairn_envelope envs[500];
    uint8_t               payload[ENV_BYTES];
    memset(payload, 'd', sizeof(payload));
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 500 ? n - done : 500;
        for (size_t i = 0; i < k; i++) {
            bench_env(&envs[i], payload);
        }
        cairn_err rv = cairni_outbox_put_many(s, DEST, envs, k, 0);
        if (rv != CAIRN_OK) {
            die("put_many", rv);
        }
        done += k;
    }
}

static double
drain_store(size_t n, double *committed)
{
    char          path[700];
    cairn_record  recs[100];
    cairni_drain *d;
    size_t        got = 0, k;
    bench_path(path, sizeof(path), "store.db");
    cairni_store *s = bench_store(path, 100);
    backlog(s, n);
    if (cairni_drain_open(s, DEST, &d) != CAIRN_OK) {
        die("drain open", 0);
    }
    uint64_t t0 = cairni_mono_us();
    while (got < n) {
        cairn_err rv = cairni_drain_next(d, recs, 100, 1000, &k);
        if (rv != CAIRN_OK || k == 0) {
            die("next", rv);
        }
        for (size_t i = 0; i < k; i++) {
            if (cairni_drain_ack(d, recs[i].seq) != CAIRN_OK) {
                die("ack", 0);
            }
            cairni_record_fini(&recs[i]);
        }
        got += k;
    }
    double t = secs_since(t0);
    cairni_drain_close(d); /* waits for the last deletes to commit */
    *committed = (double)n / secs_since(t0);
    if (atomic_load(&cairni_store_dest(s, DEST, strlen(DEST), false)->depth)) {
        die("drain left records", 0);
    }
    cairni_store_close(s);
    return (double)n / t;
}

static double
drain_raw(size_t n)
{
    char          path[700];
    sqlite3_stmt *sel, *del;
    size_t        got = 0;
    int64_t       last = 0;
    bench_path(path, sizeof(path), "raw.db");
    cairni_store *s = bench_store(path, 100);
    backlog(s, n);
    cairni_store_close(s);
    sqlite3 *db = raw_open(path);
    sqlite3_prepare_v2(db,
                       "SELECT seq, env FROM outbox WHERE dest = ?1"
                       " AND prio = 0 AND seq > ?2 ORDER BY seq LIMIT 100",
                       -1, &sel, NULL);
    sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE seq = ?1", -1, &del, NULL);
    uint64_t t0 = cairni_mono_us();
    while (got < n) {
        int64_t seqs[100];
        size_t  k = 0;
        raw_exec(db, "BEGIN IMMEDIATE");
        sqlite3_bind_text(sel, 1, DEST, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 2, last);
        while (sqlite3_step(sel) == SQLITE_ROW) {
            size_t len = (size_t)sqlite3_column_bytes(sel, 1);
            void  *copy = malloc(len); /* what a consumer gets */
            memcpy(copy, sqlite3_column_blob(sel, 1), len);
            free(copy);
            seqs[k++] = sqlite3_column_int64(sel, 0);
        }
        sqlite3_reset(sel);
        for (size_t i = 0; i < k; i++) {
            sqlite3_bind_int64(del, 1, seqs[i]);
            if (sqlite3_step(del) != SQLITE_DONE) {
                die("raw delete", sqlite3_errcode(db));
            }
            sqlite3_reset(del);
        }
        raw_exec(db, "COMMIT");
        if (k == 0) {
            die("raw drain ran dry", 0);
        }
        last = seqs[k - 1];
        got += k;
    }
    double t = secs_since(t0);
    sqlite3_finalize(sel);
    sqlite3_finalize(del);
    sqlite3_close(db);
    return (double)n / t;
}

/* ---- reports ------------------------------------------------------------- */

static void
run_ingest(const bench_cfg *cfg, int threads, size_t per_call)
{
    double store = 0, raw = 0, batch = 0, x, b;
    for (int i = 0; i < cfg->rounds; i++) {
        x = ingest_raw(cfg->ingest);
        raw = x > raw ? x : raw;
        x = ingest_store(cfg->ingest, threads, per_call, &b);
        if (x > store) {
            store = x;
            batch = b;
        }
    }
    printf("ingest: %zu msgs of %d B, sync full, %d producers, %zu per call,"
           " best of %d\n",
           cfg->ingest, ENV_BYTES, threads, per_call, cfg->rounds);
    printf("  store %-18s %9.0f msg/s  %.1f records/commit\n",
           per_call == 1 ? "put (group commit)" : "put_many", store, batch);
    printf("  raw SQLite, 100/txn      %9.0f msg/s\n", raw);
    printf("  ratio store/raw          %9.2f  (target >= 0.5)\n", store / raw);
    printf("{\"bench\":\"outbox_ingest\",\"n\":%zu,\"bytes\":%d,"
           "\"producers\":%d,\"per_call\":%zu,\"store_msgs_per_s\":%.0f,"
           "\"raw_msgs_per_s\":%.0f,\"ratio\":%.3f,"
           "\"records_per_commit\":%.2f}\n",
           cfg->ingest, ENV_BYTES, threads, per_call, store, raw, store / raw,
           batch);
}

static void
run_drain(const bench_cfg *cfg)
{
    double store = 0, raw = 0, committed = 0, x, c;
    for (int i = 0; i < cfg->rounds; i++) {
        x = drain_raw(cfg->drain);
        raw = x > raw ? x : raw;
        x = drain_store(cfg->drain, &c);
        if (x > store) {
            store = x;
            committed = c;
        }
    }
    printf("drain: %zu-record backlog of %d B, window 100, sync full, "
           "best of %d\n",
           cfg->drain, ENV_BYTES, cfg->rounds);
    printf("  store next+ack           %9.0f msg/s  (%.0f msg/s until the "
           "last delete committed)\n",
           store, committed);
    printf("  raw SQLite read+delete   %9.0f msg/s  (100/txn)\n", raw);
    printf("  ratio store/raw          %9.2f\n", store / raw);
    printf("{\"bench\":\"outbox_drain\",\"n\":%zu,\"bytes\":%d,\"window\":100,"
           "\"store_msgs_per_s\":%.0f,\"store_committed_msgs_per_s\":%.0f,"
           "\"raw_msgs_per_s\":%.0f,\"ratio\":%.3f}\n",
           cfg->drain, ENV_BYTES, store, committed, raw, store / raw);
}

int
main(int argc, char **argv)
{
    bench_cfg   cfg = {.ingest = 100000, .drain = 100000, .rounds = 3};
    const char *env = getenv("CAIRN_BENCH_QUICK");
    bool        quick = env != NULL && env[0] != '\0' && env[0] != '0';
    char        path[700];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (quick) {
        cfg = (bench_cfg){.ingest = 8000, .drain = 20000, .rounds = 1};
    }
    bench_mkdir();
    run_ingest(&cfg, 8, 1);  /* the target's case */
    run_ingest(&cfg, 64, 1); /* more requests in flight */
    run_ingest(&cfg, 8, 16); /* batches as big as the baseline's */
    run_drain(&cfg);
    bench_path(path, sizeof(path), "store.db");
    bench_path(path, sizeof(path), "raw.db");
    rmdir(bench_dir);
    return 0;
}
