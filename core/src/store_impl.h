/*
 * store_impl.h - what store.c, outbox.c, drain.c and inbox.c share, and
 * the hooks the unit tests use.  Not for anything outside the store.
 *
 * Threads and locks (never take a lock listed earlier while holding one
 * listed later, except as noted):
 *   d->imu   a drainer's write connection (inbox transactions)
 *   d->mu    a drainer's cursor, buffers, in-flight and acked tables
 *   s->mu    the destination registry (names, configs, draining flags)
 *   s->qmu   the query connection (stats, dead-letter listing)
 *   s->wmu   the writer's request queue and pending acks
 *   s->emu   the event condition drainers wait on (new rows, kicks)
 * The writer thread owns s->wdb and its statements, the batch deltas of
 * every destination (d->r, d->w) and s->wacks; it takes s->mu only for
 * a destination lookup and s->emu only to broadcast.  Producers encode
 * on their own thread, queue a request on their stack and wait on its
 * semaphore, which the writer posts once the request's result is set.
 *
 * Counters: each destination's committed depth/bytes (outbox) and
 * ddepth/dbytes (dead letters) are atomics that change only after a
 * commit, by the writer or by a drainer's inbox transaction.  Limits are
 * checked by the writer against committed + batch + request deltas.
 *
 * Ownership: the store owns destinations until cairni_store_close; a
 * request and everything it points to belong to the caller, who waits
 * for it; a handed-out record's data belongs to the record.
 */
#ifndef CAIRN_STORE_IMPL_H
#define CAIRN_STORE_IMPL_H

#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>

#include "store.h"

#pragma GCC visibility push(default)

/* ---- allocation hooks (store.c) ------------------------------------------
 * Every allocation of the store's own goes through these, so a test can
 * make the Nth one fail.  Swap them only while no store is open. */
void  cairni_store_set_allocs(void *(*m)(size_t), void *(*r)(void *, size_t),
                              void (*f)(void *));
void *cairni_store_malloc(size_t n);
void *cairni_store_calloc(size_t n, size_t size);
void *cairni_store_realloc(void *p, size_t n);
void  cairni_store_free(void *p);

/* ---- destinations (store.c) ---------------------------------------------- */

#define STORE_DEST_NAME_MAX 127
#define STORE_MAX_DESTS 1024

/* Counter changes not yet committed (writer thread only). */
typedef struct store_delta {
    int64_t  depth, bytes, ddepth, dbytes;
    uint64_t enqueued, acked, retried, expired, dropped, dead;
} store_delta;

typedef struct store_dest {
    char            name[STORE_DEST_NAME_MAX + 1];
    cairni_dest_cfg cfg; /* cfg.name points at name */
    /* committed state */
    _Atomic int64_t  depth, bytes, ddepth, dbytes;
    _Atomic uint64_t enqueued, acked, retried, expired, dropped, dead, rejected,
        duplicates, inflight;
    bool draining; /* under s->mu */
    /* writer thread only: request (r) and batch (w) deltas, and the
     * lists of destinations whose deltas are not zero */
    store_delta        r, w;
    bool               r_dirty, w_dirty;
    struct store_dest *r_next, *w_next;
} store_dest;

/* Finds (or, with create, adds with its configured or default limits) a
 * destination.  NULL: not found, invalid name, too many, out of memory. */
store_dest *cairni_store_dest(cairni_store *s, const char *name, size_t len,
                              bool create);
size_t cairni_store_dest_list(cairni_store *s, store_dest **out, size_t max);

/* Writer thread: the request-level delta of d (linked into this request's
 * dirty list).  Folded into the batch on RELEASE, dropped on ROLLBACK TO. */
store_delta *cairni_store_touch(cairni_store *s, store_dest *d);
/* Outbox + dead-letter usage of d as the writer sees it now. */
void cairni_store_usage(const store_dest *d, int64_t *n, int64_t *bytes);

/* ---- small tables keyed by a nonzero u64 (store.c), for drainers --------- */

typedef struct store_ent {
    uint64_t key;  /* seq, or key hash for lanes; 0 = empty slot */
    uint64_t a, b; /* inflight: hash; lane: head seq, next_at; acked: the
                      ticket (0: committed already), fetch counts */
    uint32_t attempt;
    uint8_t  prio;
    uint8_t  id[CAIRN_ID_LEN];
} store_ent;

typedef struct store_tab {
    store_ent *e;
    size_t     cap; /* a power of two */
    size_t     n;
} store_tab;

cairn_err  cairni_tab_init(store_tab *t, size_t min);
store_ent *cairni_tab_find(const store_tab *t, uint64_t key);
/* Adds key, which must be absent; room must have been reserved. */
store_ent *cairni_tab_put(store_tab *t, uint64_t key);
/* Makes room for extra more entries (load at most one half). */
cairn_err cairni_tab_reserve(store_tab *t, size_t extra);
void      cairni_tab_del(store_tab *t, store_ent *e);

/* ---- the writer's statements (store.c holds the SQL) --------------------- */

enum store_stmt {
    WS_BEGIN,
    WS_COMMIT,
    WS_ROLLBACK,
    WS_SAVEPOINT,
    WS_RELEASE,
    WS_ROLLBACK_TO,
    WS_PUT,
    WS_DEL_SEQ, /* ?1 seq ?2 dest -> bytes */
    WS_NACK,
    WS_TO_DEAD,
    WS_EVICT_OUT,
    WS_EVICT_DEAD,
    WS_DEL_DEAD, /* ?1 id -> bytes */
    WS_DLQ_BY_MSGID,
    WS_DLQ_ALL,
    WS_DLQ_REPLAY,
    WS_DLQ_GROUPS,
    WS_DLQ_PURGE,
    WS_ACCEPT,
    WS_SWEEP_TTL,
    WS_SWEEP_INBOX,
    WS_COUNT
};

/* ---- requests to the writer ---------------------------------------------- */

enum store_req_kind {
    STORE_REQ_PUT,
    STORE_REQ_NACK,   /* retry later */
    STORE_REQ_DEAD,   /* to dead letters */
    STORE_REQ_ACCEPT, /* inbox id, insert or ignore */
    STORE_REQ_REPLAY,
    STORE_REQ_PURGE,
    STORE_REQ_FLUSH, /* nothing: waits until pending acks are committed */
    STORE_REQ_MAINT, /* runs the TTL and inbox sweeps now */
    STORE_REQ_EXEC,  /* test hook: SQL on the writer's connection */
};

typedef struct store_item {
    uint8_t    *env; /* encoded envelope, owned by the caller */
    size_t      len;
    const char *key; /* ordering key, borrowed */
    size_t      keylen;
} store_item;

/* One more destination of a put (put_once: every matching route). */
typedef struct store_target {
    store_dest *dest;
    int         prio;
} store_target;

typedef struct store_req {
    struct store_req *next;
    int               kind;
    store_dest       *dest;
    cairn_err         rv;
    sem_t             done; /* posted by the writer */
    union {
        struct {
            store_item *items;
            size_t      n;
            int         prio; /* for dest; dest may be NULL */
            /* the same items to these too, in the same savepoint */
            const store_target *to;
            size_t              nto;
            /* when consumer is not NULL, (consumer, id) goes into the
             * inbox first, and an id there already makes the whole
             * request CAIRN_EEXIST (put_once) */
            const char    *consumer;
            const uint8_t *id;
        } put;
        struct {
            uint64_t    seq;
            uint32_t    attempt; /* failed attempts after this nack */
            uint64_t    next_at; /* wall ms */
            const char *error;
            uint8_t     id[CAIRN_ID_LEN];
        } nack;
        struct {
            const char    *consumer;
            const uint8_t *id;
        } accept;
        struct {
            const uint8_t *id; /* NULL: all */
            size_t         n;  /* out */
        } replay;
        struct {
            size_t n; /* out */
        } purge;
        const char *sql;
    } u;
} store_req;

/* Queues req for the writer and waits for its result.  CAIRN_ECLOSED once
 * the store is closing. */
cairn_err cairni_store_submit(cairni_store *s, store_req *req);

/* Queues an ack (delete of seq) for the writer's next batch without
 * waiting; *ticket orders it: once cairni_store_acks_done() >= ticket the
 * delete is committed. */
cairn_err cairni_store_queue_ack(cairni_store *s, store_dest *d, uint64_t seq,
                                 uint64_t *ticket);
uint64_t  cairni_store_acks_done(cairni_store *s);

/* ---- the store ----------------------------------------------------------- */

typedef struct store_ack {
    uint64_t    seq;
    uint64_t    ticket;
    store_dest *dest;
} store_ack;

#define STORE_HIST_BUCKETS 12 /* 1, 2, 4, ... 2048, then +Inf */

struct cairni_store {
    char            *path;
    int              sync;
    cairni_retry_cfg retry;
    uint64_t         inbox_window_ms;
    cairni_dest_cfg *cfgs; /* copies of opts->dests; names owned */
    size_t           ncfgs;
    cairni_dest_cfg  dflt;

    pthread_mutex_t mu;
    store_dest    **dests;
    size_t          ndests;

    pthread_mutex_t qmu;
    sqlite3        *qdb;
    sqlite3_stmt   *q_oldest, *q_retry, *q_dlq;

    /* the writer */
    sqlite3         *wdb;
    sqlite3_stmt    *ws[WS_COUNT];
    pthread_t        writer;
    bool             writer_started;
    pthread_mutex_t  wmu;
    pthread_cond_t   wcv; /* the writer waits: work queued */
    pthread_cond_t   acv; /* ack() waits: too many acks uncommitted */
    store_req       *qhead, *qtail;
    size_t           qlen;
    size_t           want; /* gathering: wake the writer at this qlen */
    bool             gathering;
    uint64_t         gather_us; /* how long to wait for a fuller batch */
    bool             stop;
    store_ack       *acks; /* pending, under wmu */
    size_t           nacks, acks_cap;
    uint64_t         ack_ticket;   /* last ticket handed out */
    uint64_t         ack_first_ms; /* oldest pending ack queued */
    uint64_t         retry_at_ms;  /* acks wait after a failed batch */
    store_ack       *wacks;        /* taken by the writer, not yet committed */
    size_t           nwacks, wacks_cap;
    _Atomic uint64_t ack_done;
    store_dest      *r_dirty, *w_dirty;
    uint64_t         maint_at_ms;
    bool             evicted;  /* this batch deleted rows for room */
    bool             inserted; /* this batch added outbox rows */

    /* drainers wait here for new rows */
    pthread_mutex_t  emu;
    pthread_cond_t   ecv;
    _Atomic uint64_t rows_gen;  /* bumped after a commit that added rows */
    _Atomic uint64_t evict_gen; /* bumped after a commit that evicted */
    _Atomic bool     closing;

    /* requests per commit */
    _Atomic uint64_t hist[STORE_HIST_BUCKETS + 1];
    _Atomic uint64_t hist_sum, hist_count;
};

/* Opens one more connection to the store's file with the store's pragmas
 * (WAL auto-checkpoint off: the writer checkpoints). */
cairn_err cairni_store_conn(cairni_store *s, sqlite3 **dbp);
cairn_err cairni_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* Maps an SQLite result code (extended codes on) to cairn_err. */
cairn_err cairni_store_sqlerr(int rc);
/* Steps a statement that returns no rows, then resets it. */
int cairni_store_step_done(sqlite3_stmt *st);
/* Waits (monotonic) on cv until abs_ms of cairni_mono_ms(). */
void cairni_store_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu,
                               uint64_t abs_ms);
void cairni_store_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu,
                               uint64_t abs_us);
void cairni_store_cond_init(pthread_cond_t *cv);

/* The writer thread (store_writer.c). */
void *cairni_store_writer_main(void *arg);

/* ---- writer-side operations (outbox.c, inbox.c) -------------------------- */

/* Each runs on the writer thread inside the batch transaction (and the
 * request's savepoint) and returns the request's result. */
cairn_err cairni_outbox_exec(cairni_store *s, store_req *req);
cairn_err cairni_outbox_flush_acks(cairni_store *s, const store_ack *acks,
                                   size_t n);
cairn_err cairni_outbox_sweep(cairni_store *s, uint64_t now_ms);
/* Loads committed depth and bytes per destination at open. */
cairn_err cairni_outbox_load(cairni_store *s);
cairn_err cairni_inbox_exec_accept(cairni_store *s, store_req *req);
/* Inserts (consumer, id) into the inbox: CAIRN_EEXIST if it was there. */
cairn_err cairni_inbox_mark(cairni_store *s, const char *consumer,
                            const uint8_t *id);

/* ---- between the drainer (outbox_drain.c) and the inbox (inbox.c) -------- */

typedef struct inbox_conn inbox_conn; /* a drainer's write connection */
void                      cairni_inbox_conn_free(inbox_conn *c);

cairni_store *cairni_drain_store(cairni_drain *d);
store_dest   *cairni_drain_dest(cairni_drain *d);
/* Locks d->imu and returns the slot of the drainer's inbox connection. */
inbox_conn **cairni_drain_inbox_lock(cairni_drain *d);
void         cairni_drain_inbox_unlock(cairni_drain *d);
/* CAIRN_OK if seq is in flight (and room to forget it is reserved). */
cairn_err cairni_drain_check(cairni_drain *d, uint64_t seq);
/* seq's delete has committed elsewhere: out of flight, never again. */
void cairni_drain_done(cairni_drain *d, uint64_t seq);

/* ---- hooks for the unit tests -------------------------------------------- */

/* Runs sql on the writer's connection inside a batch. */
cairn_err cairni_store_test_exec(cairni_store *s, const char *sql);
/* Runs the TTL and inbox sweeps now and waits for their commit. */
cairn_err cairni_store_maintain(cairni_store *s);
/* Waits until every ack queued so far is committed. */
cairn_err cairni_store_flush(cairni_store *s);

/* ---- damaged files (store_recover.c) ------------------------------------ */

/* Renames the database at path (db) or only its WAL (!db), with the
 * -shm, to <path>.corrupt-<UTC time>[.n], syncs the directory, logs why
 * and counts it.  err says what was done or what failed. */
cairn_err cairni_store_set_aside(const char *path, bool db, char *err,
                                 size_t errlen);
/* A WAL beside path whose header SQLite would reject is set aside. */
cairn_err cairni_store_check_wal(const char *path, char *err, size_t errlen);
/* Databases and WALs set aside since the process started. */
void cairni_store_resets(uint64_t *db, uint64_t *wal);

#pragma GCC visibility pop

#endif /* CAIRN_STORE_IMPL_H */
