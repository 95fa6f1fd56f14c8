/*
 * store.h - the durable store: one SQLite database (WAL) holding the
 * outbox, the dead letters, the idempotent inbox and the plugins' key-value
 * state.  Internal to libcairn; the daemon and the unit tests use it.
 *
 * Modules:
 *   store.c   open, schema and migrations, connections, destinations
 *   store_writer.c  the writer thread (group commit), maintenance (TTL
 *             sweep, inbox window, checkpoint)
 *   outbox.c  enqueue with limits and policy, the writer's side of
 *             acks, nacks and dead letters
 *   outbox_drain.c  drain (next/ack/nack/reset)
 *   outbox_stats.c  stats, metrics, dead-letter commands
 *   inbox.c   idempotent consumers: id recorded in the same transaction
 *             as the handler's key-value changes
 *   retry.c   exponential backoff with full jitter
 *
 * Threads: every write of the outbox goes through the one writer thread,
 * which batches whatever producers and drainers queued into one
 * transaction (group commit).  A drainer reads on a connection of its own.
 * An inbox handler runs its own transaction on its own connection; SQLite's
 * single-writer lock (with a busy timeout) orders it with the writer.
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include "cairni.h"

#pragma GCC visibility push(default)

typedef struct cairni_store  cairni_store;
typedef struct cairni_drain  cairni_drain;

enum { CAIRNI_PRIO_NORMAL = 0, CAIRNI_PRIO_HIGH = 1 };

/* Limits and policy of one destination. */
typedef struct cairni_dest_cfg {
    const char *name;         /* destination: a plugin instance name */
    uint64_t    max_bytes;    /* sum of record bytes (envelope + key) */
    int64_t     max_messages;
    uint64_t    ttl_ms;       /* 0 = no expiry */
    int         on_full;      /* cairni_full */
    uint32_t    window;       /* records handed out and not yet acked */
} cairni_dest_cfg;

typedef struct cairni_store_opts {
    const char      *path;      /* database file */
    int              sync;      /* cairni_sync */
    cairni_retry_cfg retry;
    uint64_t         inbox_window_ms; /* how long inbox ids are kept */
    const cairni_dest_cfg *dests;     /* known destinations and limits */
    size_t           ndests;
    cairni_dest_cfg  dest_default;    /* for destinations not listed */
    const char      *vfs; /* SQLite VFS by name; NULL: the default (the
                             fault tests pass one that simulates power
                             loss and I/O errors) */
} cairni_store_opts;

cairn_err cairni_store_open(cairni_store **sp, const cairni_store_opts *o,
                            char *err, size_t errlen);
/* Flushes pending acks, stops the writer, closes every connection. */
void      cairni_store_close(cairni_store *s);

/* ---- outbox: producers --------------------------------------------------- */

/*
 * Appends one record for destination dest and returns once it is
 * committed (or failed).  Concurrent callers share commits.  Errors:
 * CAIRN_EFULL when the destination is full under `reject` or the disk is
 * full; CAIRN_ETOOBIG when the record alone exceeds max_bytes.  Under
 * `drop_oldest`, the oldest records are deleted (and counted) to make room.
 */
cairn_err cairni_outbox_put(cairni_store *s, const char *dest,
                            const cairn_envelope *env, int prio);

/* The same for n records in one transaction: all or none. */
cairn_err cairni_outbox_put_many(cairni_store *s, const char *dest,
                                 const cairn_envelope *envs, size_t n,
                                 int prio);

/* One destination of cairni_outbox_put_once. */
typedef struct cairni_put_to {
    const char *dest;
    int         prio; /* CAIRNI_PRIO_* */
} cairni_put_to;

/*
 * Accepts env->id for consumer and appends env to each destination of
 * to[0..n) (distinct; n may be 0), all in ONE transaction, and returns
 * once that committed: CAIRN_OK, both the id and every record are there;
 * CAIRN_EEXIST, consumer had accepted this id before and nothing was
 * done; any other error (CAIRN_EFULL of any destination under `reject`,
 * CAIRN_ETOOBIG, the disk), neither the id nor any record was kept, so a
 * redelivery is processed afresh.  env->id must not be zero (CAIRN_EINVAL);
 * a zero ts is set to now.  For a bridge's downlink (host->publish_once).
 */
cairn_err cairni_outbox_put_once(cairni_store *s, const char *consumer,
                                 const cairn_envelope *env,
                                 const cairni_put_to *to, size_t n);

/* ---- outbox: the destination's side ------------------------------------- */

cairn_err cairni_drain_open(cairni_store *s, const char *dest,
                            cairni_drain **dp);
void      cairni_drain_close(cairni_drain *d);

/*
 * Hands out up to max records that are due, in order per key (within a
 * priority; high first), never more than the window in flight.  Waits up
 * to wait_ms for one to become available.  *n may be 0 (timeout).  The
 * records must be released with cairni_record_fini after ack or nack.
 */
cairn_err cairni_drain_next(cairni_drain *d, cairn_record *recs, size_t max,
                            uint32_t wait_ms, size_t *n);
void      cairni_record_fini(cairn_record *r);

/* The far side acknowledged seq: it is deleted (committed lazily, in
 * groups; a crash before that commit redelivers it, with the same id). */
cairn_err cairni_drain_ack(cairni_drain *d, uint64_t seq);

/*
 * seq failed.  permanent, or the last attempt: to dead letters with error.
 * Otherwise: attempt+1, retried after the backoff delay; records of the
 * same key handed out after it are taken back and follow it again.
 * Returns once the change is committed.  CAIRN_ENOENT: seq is not in
 * flight (taken back by an earlier nack or reset) or no longer stored;
 * nothing to retry.  Other errors (disk full): seq stays in flight.
 */
cairn_err cairni_drain_nack(cairni_drain *d, uint64_t seq, bool permanent,
                            const char *error);

/* Takes back every record in flight (the link dropped): they are handed
 * out again, in order, without counting an attempt. */
void      cairni_drain_reset(cairni_drain *d);

/* ---- stats, dead letters ------------------------------------------------ */

typedef struct cairni_dest_stats {
    char     name[128];
    uint64_t depth, bytes, inflight;
    uint64_t oldest_ms;  /* age of the oldest record, 0 when empty */
    uint64_t next_retry_ms; /* ms until the earliest retry, 0 = none waiting */
    uint64_t enqueued, acked, retried, expired, dropped, dead, rejected;
    uint64_t dead_depth, dead_bytes; /* dead letters held (count against
                                        the destination's limits) */
    uint64_t duplicates; /* inbox_process found the id already done */
} cairni_dest_stats;

/* Appends one line per destination (for `cairn outbox`). */
void cairni_store_render_outbox(cairni_store *s, cairni_buf *out);
/* Prometheus text: cairn_outbox_* {dest} and the group-commit histogram. */
void cairni_store_render_metrics(cairni_store *s, cairni_buf *out);
cairn_err cairni_store_stats(cairni_store *s, const char *dest,
                             cairni_dest_stats *st);

/*
 * The store's failures, process-wide (every store of the process):
 * SQLite I/O errors (EIO, failed fsync), writes refused for a full disk,
 * damaged files seen (SQLITE_CORRUPT, SQLITE_NOTADB, quick_check), and,
 * at open, damaged databases moved aside (the store starts empty) and
 * WAL files with an invalid header moved aside (the database is kept).
 */
typedef struct cairni_store_faults {
    uint64_t io, full, corrupt;
    uint64_t reset_db, reset_wal;
} cairni_store_faults;
void cairni_store_faults_get(cairni_store_faults *f);
/* Files moved aside next to the database at path and still there
 * (<path>.corrupt-*, a database with its WAL counted once). */
size_t cairni_store_corrupt_files(const char *path);

cairn_err cairni_dlq_list(cairni_store *s, size_t limit, cairni_buf *out);
/* Moves a dead letter (id in text form) or all of them back to the
 * outbox with attempt 0; *n says how many. */
cairn_err cairni_dlq_replay(cairni_store *s, const char *id, bool all,
                            size_t *n);
cairn_err cairni_dlq_purge(cairni_store *s, size_t *n);

/* ---- idempotent inbox and key-value state -------------------------------- */

/* The transaction of one inbox handler run (the ABI's cairn_txn). */
typedef struct cairn_txn cairni_txn;

/*
 * A handler's verdict: CAIRN_OK (done), CAIRN_EAGAIN (not yet: redelivered
 * later with backoff), CAIRN_EPERM (failed permanently: dead letter).
 * Any other error counts as a retryable failure.  Same as the ABI's
 * cairn_inbox_fn.
 */
typedef cairn_inbox_fn cairni_inbox_fn;

/*
 * Runs fn for rec inside one transaction on the drainer's connection: if
 * consumer has seen rec's id, nothing runs (duplicate: acked); otherwise
 * fn's key-value changes, the id and the outbox delete commit together,
 * or, for "not yet" and failures, none of fn's changes do.
 * Returns CAIRN_OK (done or duplicate: the record is gone), CAIRN_EAGAIN
 * (nacked: it comes back after the backoff), CAIRN_EPERM (a dead letter:
 * fn said so, or its attempts ran out), CAIRN_ENOENT (rec is not in
 * flight; fn did not run).  Any other error is the store's own (disk
 * full, I/O): the record was nacked for a retry where that was possible.
 * fn runs while SQLite's write lock is held: keep it short.
 */
cairn_err cairni_inbox_process(cairni_drain *d, const char *consumer,
                               const cairn_record *rec, cairni_inbox_fn fn,
                               void *arg);

/* Records id for consumer unless already there: CAIRN_EEXIST for a
 * duplicate.  For a bridge's downlink. */
cairn_err cairni_inbox_accept(cairni_store *s, const char *consumer,
                              const uint8_t id[CAIRN_ID_LEN]);

/* Key-value state within an inbox transaction (ns = consumer name).
 * kv_get: *val is malloc'd, CAIRN_ENOENT if absent. */
cairn_err cairni_kv_get(cairni_txn *t, const char *key, void **val,
                        size_t *len);
cairn_err cairni_kv_put(cairni_txn *t, const char *key, const void *val,
                        size_t len);
cairn_err cairni_kv_del(cairni_txn *t, const char *key);

/* A function run by cairni_kv_txn (the ABI's kv_txn callback). */
typedef cairn_err (*cairni_kv_fn)(cairni_txn *t, void *arg);

/*
 * Runs fn in one transaction on d's inbox connection with the key-value
 * state of namespace ns: fn's changes commit when it returns CAIRN_OK,
 * none of them otherwise.  Serialized with d's inbox handler (the same
 * connection, under d->imu).  Returns fn's verdict, or the store's error
 * (nothing committed); CAIRN_EBUSY when called from inside an inbox
 * handler or another kv transaction on this thread (it would wait on
 * itself).
 */
cairn_err cairni_kv_txn(cairni_drain *d, const char *ns, cairni_kv_fn fn,
                        void *arg);

/* The store's clock, ms since the epoch: the wall clock at the first
 * call, advanced by the monotonic clock since (store.c says why).  Every
 * time the store keeps or compares (TTL, retry, inbox window) uses it. */
uint64_t cairni_store_now_ms(void);

/* ---- retry.c ------------------------------------------------------------ */

/* The cap of the delay before attempt (1-based):
 * min(max, initial * multiplier^(attempt-1)). */
uint64_t cairni_backoff_cap(const cairni_retry_cfg *r, uint32_t attempt);
/* Full jitter: uniform in [0, cap]; rnd is a uniform 64-bit value. */
uint64_t cairni_backoff_delay(const cairni_retry_cfg *r, uint32_t attempt,
                              uint64_t rnd);
/* A uniform 64-bit value (per-thread xorshift, seeded by getrandom). */
uint64_t cairni_retry_rand(void);

#pragma GCC visibility pop

#endif /* CAIRN_STORE_H */
