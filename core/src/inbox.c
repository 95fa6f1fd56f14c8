/*
 * inbox.c - idempotent consumers: a message id is recorded in the same
 * transaction as the handler's key-value changes and the delete of the
 * outbox record, so a message takes effect exactly once however often
 * it is delivered.
 *
 * cairni_inbox_process runs on the drainer's own write connection
 * (opened on first use, under d->imu, so one inbox transaction per
 * drainer at a time):
 *
 *   BEGIN IMMEDIATE            (busy timeout; retried on SQLITE_BUSY)
 *   (consumer, id) in inbox?   yes: a duplicate, done without fn
 *   fn(arg, env, txn)          kv reads and writes on this transaction
 *   CAIRN_OK:    insert (consumer, id, now), delete the outbox row, COMMIT
 *   CAIRN_EPERM: ROLLBACK, nack permanent (dead letter)
 *   otherwise:   ROLLBACK, nack (retry after backoff; attempt counts)
 *
 * BEGIN IMMEDIATE takes SQLite's write lock, so the handler runs while
 * the writer thread waits (its busy timeout covers it): handlers must be
 * short.  The outbox delete changes the destination's committed depth
 * directly, after COMMIT; the drainer forgets the record (never handed
 * out again).  cairni_inbox_accept records an id through the writer
 * (group commit); cairni_outbox_put_once (outbox.c) records one in the
 * same savepoint as its outbox rows, for a bridge's downlink.  Ids older
 * than the store's inbox window are deleted by the writer's sweep.
 *
 * cairni_kv_txn runs a function on the same connection, under the same
 * lock, for key-value state changed outside an inbox handler (a
 * service, a plugin's own thread): BEGIN IMMEDIATE, fn, COMMIT or
 * ROLLBACK.  A thread-local flag marks a thread inside either kind of
 * transaction, so a nested kv_txn fails with CAIRN_EBUSY instead of
 * waiting on the lock its own thread holds.
 *
 * Ownership: kv_get's value is malloc'd for the caller, who frees it
 * with free().  Everything else is borrowed for the call.
 */
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

#define INBOX_BUSY_TRIES 3

enum {
    IS_BEGIN,
    IS_COMMIT,
    IS_ROLLBACK,
    IS_SEEN,
    IS_MARK,
    IS_DEL,
    IS_KV_GET,
    IS_KV_PUT,
    IS_KV_DEL,
    IS_COUNT
};

static const char *const inbox_sql[IS_COUNT] = {
    [IS_BEGIN] = "BEGIN IMMEDIATE",
    [IS_COMMIT] = "COMMIT",
    [IS_ROLLBACK] = "ROLLBACK",
    [IS_SEEN] = "SELECT 1 FROM inbox WHERE consumer = ?1 AND id = ?2",
    [IS_MARK] = "INSERT INTO inbox(consumer, id, ts) VALUES(?1, ?2, ?3)",
    [IS_DEL] =
        "DELETE FROM outbox WHERE seq = ?1 AND dest = ?2 RETURNING bytes",
    [IS_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [IS_KV_PUT] = ("INSERT INTO kv(ns, key, value) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value"),
    [IS_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
};

struct inbox_conn {
    sqlite3      *db;
    sqlite3_stmt *st[IS_COUNT];
};

struct cairn_txn { /* cairni_txn */
    inbox_conn *c;
    const char *ns;
};

/* Set while this thread runs a handler or kv function in a transaction. */
static _Thread_local bool inbox_in_txn;

/* After an error SQLite may have rolled the transaction back; a kv call
 * then must not run (it would commit on its own). */
static bool
inbox_txn_gone(const cairni_txn *t)
{
    return sqlite3_get_autocommit(t->c->db) != 0;
}

void
cairni_inbox_conn_free(inbox_conn *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < IS_COUNT; i++) {
        sqlite3_finalize(c->st[i]);
    }
    sqlite3_close(c->db);
    cairni_store_free(c);
}

static cairn_err
inbox_conn_get(cairni_drain *d, inbox_conn **slot)
{
    if (*slot != NULL) {
        return CAIRN_OK;
    }
    inbox_conn *c = cairni_store_calloc(1, sizeof(*c));
    if (c == NULL) {
        return CAIRN_ENOMEM;
    }
    cairn_err rv = cairni_store_conn(cairni_drain_store(d), &c->db);
    for (size_t i = 0; i < IS_COUNT && rv == CAIRN_OK; i++) {
        rv = cairni_store_prepare(c->db, inbox_sql[i], &c->st[i]);
    }
    if (rv != CAIRN_OK) {
        cairni_inbox_conn_free(c);
        return rv;
    }
    *slot = c;
    return CAIRN_OK;
}

static cairn_err
inbox_begin(inbox_conn *c)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < INBOX_BUSY_TRIES && (rc & 0xff) == SQLITE_BUSY; i++) {
        rc = cairni_store_step_done(c->st[IS_BEGIN]);
    }
    return cairni_store_sqlerr(rc);
}

static void
inbox_rollback(inbox_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) {
        (void)cairni_store_step_done(c->st[IS_ROLLBACK]);
    }
}

static cairn_err
inbox_seen(inbox_conn *c, const char *consumer, const uint8_t *id, bool *seen)
{
    sqlite3_stmt *st = c->st[IS_SEEN];
    sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, id, CAIRN_ID_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *seen = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CAIRN_OK
                                                 : cairni_store_sqlerr(rc);
}

/* Records the id (unless seen), deletes the record, commits. */
static cairn_err
inbox_finish(inbox_conn *c, const char *consumer, const cairn_record *rec,
             const store_dest *dest, bool seen, int64_t *bytes)
{
    int rc = SQLITE_OK;
    if (!seen) {
        sqlite3_stmt *st = c->st[IS_MARK];
        sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, rec->env.id, CAIRN_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (int64_t)cairni_store_now_ms());
        rc = cairni_store_step_done(st);
    }
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = c->st[IS_DEL];
        sqlite3_bind_int64(st, 1, (int64_t)rec->seq);
        sqlite3_bind_text(st, 2, dest->name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        *bytes = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_reset(st);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK) {
        rc = cairni_store_step_done(c->st[IS_COMMIT]);
    }
    return cairni_store_sqlerr(rc);
}

/* The handler declined: roll back and nack; returns what happened. */
static cairn_err
inbox_decline(cairni_drain *d, inbox_conn *c, const cairn_record *rec,
              cairn_err verdict)
{
    const cairni_retry_cfg *r = &cairni_drain_store(d)->retry;
    bool                    permanent = verdict == CAIRN_EPERM;
    inbox_rollback(c);
    cairn_err rv = cairni_drain_nack(
        d, rec->seq, permanent,
        verdict == CAIRN_EAGAIN ? "not yet" : cairn_strerror(verdict));
    if (rv != CAIRN_OK) {
        return rv;
    }
    bool dead = permanent || (r->max_attempts > 0 &&
                              (int64_t)rec->attempt + 1 >= r->max_attempts);
    return dead ? CAIRN_EPERM : CAIRN_EAGAIN;
}

/* Commits a handled (or duplicate) record and forgets it. */
static cairn_err
inbox_done(cairni_drain *d, inbox_conn *c, const char *consumer,
           const cairn_record *rec, bool seen)
{
    store_dest *dest = cairni_drain_dest(d);
    int64_t     bytes = -1;
    cairn_err   rv = inbox_finish(c, consumer, rec, dest, seen, &bytes);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (bytes >= 0) {
        atomic_fetch_sub(&dest->depth, 1);
        atomic_fetch_sub(&dest->bytes, bytes);
        atomic_fetch_add(&dest->acked, 1);
    }
    atomic_fetch_add(&dest->duplicates, seen ? 1 : 0);
    cairni_drain_done(d, rec->seq);
    return CAIRN_OK;
}

cairn_err
cairni_inbox_process(cairni_drain *d, const char *consumer,
                     const cairn_record *rec, cairni_inbox_fn fn, void *arg)
{
    bool seen = false;
    if (d == NULL || consumer == NULL || rec == NULL || fn == NULL) {
        return CAIRN_EINVAL;
    }
    inbox_conn **slot = cairni_drain_inbox_lock(d);
    cairn_err    rv = inbox_conn_get(d, slot);
    inbox_conn  *c = *slot;
    if (rv == CAIRN_OK) {
        rv = cairni_drain_check(d, rec->seq);
    }
    if (rv != CAIRN_OK) {
        goto out; /* not in flight, or no connection: nothing to undo */
    }
    rv = inbox_begin(c);
    if (rv == CAIRN_OK) {
        rv = inbox_seen(c, consumer, rec->env.id, &seen);
    }
    if (rv == CAIRN_OK) {
        cairni_txn txn = {.c = c, .ns = consumer};
        cairn_err  verdict = CAIRN_OK;
        if (!seen) {
            inbox_in_txn = true;
            verdict = fn(arg, &rec->env, &txn);
            inbox_in_txn = false;
        }
        if (verdict == CAIRN_OK && sqlite3_get_autocommit(c->db)) {
            verdict = CAIRN_EIO; /* an error inside fn ended the txn */
        }
        if (verdict != CAIRN_OK) {
            rv = inbox_decline(d, c, rec, verdict);
            goto out;
        }
        rv = inbox_done(d, c, consumer, rec, seen);
    }
    if (rv != CAIRN_OK) { /* the store failed: retry it later */
        inbox_rollback(c);
        (void)cairni_drain_nack(d, rec->seq, false, cairn_strerror(rv));
    }
out:
    if (c != NULL) {
        inbox_rollback(c);
    }
    cairni_drain_inbox_unlock(d);
    return rv;
}

cairn_err
cairni_inbox_accept(cairni_store *s, const char *consumer,
                    const uint8_t id[CAIRN_ID_LEN])
{
    if (s == NULL || consumer == NULL || id == NULL) {
        return CAIRN_EINVAL;
    }
    store_req req = {.kind = STORE_REQ_ACCEPT};
    req.u.accept.consumer = consumer;
    req.u.accept.id = id;
    return cairni_store_submit(s, &req);
}

cairn_err
cairni_inbox_mark(cairni_store *s, const char *consumer, const uint8_t *id)
{
    sqlite3_stmt *st = s->ws[WS_ACCEPT];
    sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, id, CAIRN_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)cairni_store_now_ms());
    int rc = cairni_store_step_done(st);
    if (rc != SQLITE_OK) {
        return cairni_store_sqlerr(rc);
    }
    return sqlite3_changes(s->wdb) > 0 ? CAIRN_OK : CAIRN_EEXIST;
}

cairn_err
cairni_inbox_exec_accept(cairni_store *s, store_req *req)
{
    return cairni_inbox_mark(s, req->u.accept.consumer, req->u.accept.id);
}

/* ---- key-value state ----------------------------------------------------- */

cairn_err
cairni_kv_txn(cairni_drain *d, const char *ns, cairni_kv_fn fn, void *arg)
{
    if (d == NULL || ns == NULL || fn == NULL) {
        return CAIRN_EINVAL;
    }
    if (inbox_in_txn) {
        return CAIRN_EBUSY;
    }
    inbox_conn **slot = cairni_drain_inbox_lock(d);
    cairn_err    rv = inbox_conn_get(d, slot);
    inbox_conn  *c = *slot;
    if (rv == CAIRN_OK) {
        rv = inbox_begin(c);
    }
    if (rv == CAIRN_OK) {
        cairni_txn txn = {.c = c, .ns = ns};
        inbox_in_txn = true;
        rv = fn(&txn, arg);
        inbox_in_txn = false;
        if (rv == CAIRN_OK && sqlite3_get_autocommit(c->db)) {
            rv = CAIRN_EIO; /* an error inside fn ended the txn */
        }
        if (rv == CAIRN_OK) {
            rv = cairni_store_sqlerr(
                cairni_store_step_done(c->st[IS_COMMIT]));
        }
    }
    if (c != NULL) {
        inbox_rollback(c); /* fn declined, or BEGIN/COMMIT failed */
    }
    cairni_drain_inbox_unlock(d);
    return rv;
}

cairn_err
cairni_kv_get(cairni_txn *t, const char *key, void **val, size_t *len)
{
    if (t == NULL || key == NULL || val == NULL || len == NULL) {
        return CAIRN_EINVAL;
    }
    if (inbox_txn_gone(t)) {
        return CAIRN_EIO;
    }
    sqlite3_stmt *st = t->c->st[IS_KV_GET];
    cairn_err     rv = CAIRN_ENOENT;
    sqlite3_bind_text(st, 1, t->ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t      n = (size_t)sqlite3_column_bytes(st, 0);
        const void *src = sqlite3_column_blob(st, 0);
        void       *p = malloc(n != 0 ? n : 1);
        rv = p != NULL ? CAIRN_OK : CAIRN_ENOMEM;
        if (p != NULL) {
            memcpy(p, src != NULL ? src : "", n);
            *val = p;
            *len = n;
        }
    } else if (rc != SQLITE_DONE) {
        rv = cairni_store_sqlerr(rc);
    }
    sqlite3_reset(st);
    return rv;
}

cairn_err
cairni_kv_put(cairni_txn *t, const char *key, const void *val, size_t len)
{
    if (t == NULL || key == NULL || (val == NULL && len > 0) ||
        len > CAIRN_ENV_MAX_SIZE) {
        return CAIRN_EINVAL;
    }
    if (inbox_txn_gone(t)) {
        return CAIRN_EIO;
    }
    sqlite3_stmt *st = t->c->st[IS_KV_PUT];
    sqlite3_bind_text(st, 1, t->ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, len > 0 ? val : "", (int)len, SQLITE_STATIC);
    return cairni_store_sqlerr(cairni_store_step_done(st));
}

cairn_err
cairni_kv_del(cairni_txn *t, const char *key)
{
    if (t == NULL || key == NULL) {
        return CAIRN_EINVAL;
    }
    if (inbox_txn_gone(t)) {
        return CAIRN_EIO;
    }
    sqlite3_stmt *st = t->c->st[IS_KV_DEL];
    sqlite3_bind_text(st, 1, t->ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    return cairni_store_sqlerr(cairni_store_step_done(st));
}
