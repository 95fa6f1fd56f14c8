/*
 * outbox.c - the outbox's writes: enqueue with limits and policy, the
 * writer-side half of acks and nacks, dead letters, the TTL sweep, and
 * the stats and metrics of every destination.  The drainer's side
 * (next/ack/nack/reset) is in outbox_drain.c.
 *
 * A record's bytes are its encoded envelope plus its ordering key.  Each
 * destination's limits (max_messages, max_bytes; 0 = none) bound its
 * outbox records and its dead letters together, so a destination never
 * holds more than its limits, whatever fails downstream.  A record (or a
 * put_many) that cannot fit even in an empty destination is CAIRN_ETOOBIG.
 * When a record does not fit: `reject` fails it with CAIRN_EFULL (counted
 * as rejected) and stores nothing; `drop_oldest` deletes the oldest
 * records first (normal priority before high, lowest seq first), then the
 * oldest dead letters, until it fits, counting each as dropped.
 *
 * Threads: cairni_outbox_put* encode on the caller's thread and wait for
 * the writer; every cairni_outbox_exec* runs on the writer thread inside
 * the batch transaction and the request's savepoint, and reports counter
 * changes through cairni_store_touch().  Stats read the committed atomics
 * and, for ages, the query connection under s->qmu.
 *
 * Ownership: the encoded envelopes of a put belong to the put and are
 * freed when the writer has answered; nothing here keeps a pointer to the
 * caller's envelope after returning.
 */
#include <string.h>

#include "store_impl.h"

#define OUTBOX_SWEEP_ROUNDS 16
#define OUTBOX_SWEEP_LIMIT 1024

/* ---- producers ----------------------------------------------------------- */

static bool
outbox_id_zero(const uint8_t *id)
{
    for (size_t i = 0; i < CAIRN_ID_LEN; i++) {
        if (id[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Encodes env (with an id and ts filled in when zero) into it; d, when
 * not NULL, is the destination whose max_bytes it must fit. */
static cairn_err
outbox_encode(const cairn_envelope *env, store_item *it, const store_dest *d)
{
    cairn_envelope        tmp;
    const cairn_envelope *e = env;
    if (outbox_id_zero(env->id) || env->ts == 0) {
        tmp = *env;
        if (outbox_id_zero(tmp.id)) {
            cairn_id_new(tmp.id);
        }
        tmp.ts = tmp.ts != 0 ? tmp.ts : cairn_now_ms();
        e = &tmp;
    }
    size_t n = cairn_envelope_encoded_size(e);
    if (n == 0 || n > CAIRN_ENV_MAX_SIZE) {
        return n == 0 ? CAIRN_EINVAL : CAIRN_ETOOBIG;
    }
    it->env = cairni_store_malloc(n);
    if (it->env == NULL) {
        return CAIRN_ENOMEM;
    }
    cairn_err rv = cairn_envelope_encode(e, it->env, n, &it->len);
    if (rv != CAIRN_OK) {
        return rv;
    }
    cairn_str key = (e->flags & CAIRN_ENV_HAS_KEY) ? e->key : e->topic;
    it->key = key.ptr != NULL ? key.ptr : "";
    it->keylen = key.len;
    if (d != NULL && d->cfg.max_bytes != 0 &&
        it->len + it->keylen > d->cfg.max_bytes) {
        return CAIRN_ETOOBIG;
    }
    return CAIRN_OK;
}

static cairn_err
outbox_check_whole(const store_dest *d, const store_item *items, size_t n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += items[i].len + items[i].keylen;
    }
    if ((d->cfg.max_messages > 0 && n > (uint64_t)d->cfg.max_messages) ||
        (d->cfg.max_bytes != 0 && bytes > d->cfg.max_bytes)) {
        return CAIRN_ETOOBIG;
    }
    return CAIRN_OK;
}

cairn_err
cairni_outbox_put_many(cairni_store *s, const char *dest,
                       const cairn_envelope *envs, size_t n, int prio)
{
    store_item one = {0}, *items = &one;
    cairn_err  rv = CAIRN_OK;
    if (s == NULL || dest == NULL || envs == NULL || n == 0 ||
        (prio != CAIRNI_PRIO_NORMAL && prio != CAIRNI_PRIO_HIGH)) {
        return CAIRN_EINVAL;
    }
    size_t      dlen = strlen(dest);
    store_dest *d = cairni_store_dest(s, dest, dlen, true);
    if (d == NULL) {
        return dlen == 0 || dlen > STORE_DEST_NAME_MAX ? CAIRN_EINVAL
                                                       : CAIRN_ENOMEM;
    }
    if (n > 1 && (items = cairni_store_calloc(n, sizeof(*items))) == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < n && rv == CAIRN_OK; i++) {
        rv = outbox_encode(&envs[i], &items[i], d);
    }
    if (rv == CAIRN_OK) {
        rv = outbox_check_whole(d, items, n);
    }
    if (rv == CAIRN_OK) {
        store_req req = {.kind = STORE_REQ_PUT, .dest = d};
        req.u.put.items = items;
        req.u.put.n = n;
        req.u.put.prio = prio;
        rv = cairni_store_submit(s, &req);
    } else if (rv == CAIRN_ETOOBIG) {
        atomic_fetch_add(&d->rejected, 1);
    }
    for (size_t i = 0; i < n; i++) {
        cairni_store_free(items[i].env);
    }
    if (items != &one) {
        cairni_store_free(items);
    }
    return rv;
}

cairn_err
cairni_outbox_put(cairni_store *s, const char *dest, const cairn_envelope *env,
                  int prio)
{
    return cairni_outbox_put_many(s, dest, env, 1, prio);
}

/* Finds (or adds) each destination of a put_once, once each, and checks
 * that the record fits in every one of them. */
static cairn_err
outbox_once_targets(cairni_store *s, const cairni_put_to *to, size_t n,
                    const store_item *it, store_target *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t dlen = to[i].dest != NULL ? strlen(to[i].dest) : 0;
        if (to[i].prio != CAIRNI_PRIO_NORMAL &&
            to[i].prio != CAIRNI_PRIO_HIGH) {
            return CAIRN_EINVAL;
        }
        store_dest *d = cairni_store_dest(s, to[i].dest, dlen, true);
        if (d == NULL) {
            return dlen == 0 || dlen > STORE_DEST_NAME_MAX ? CAIRN_EINVAL
                                                           : CAIRN_ENOMEM;
        }
        for (size_t j = 0; j < i; j++) {
            if (out[j].dest == d) {
                return CAIRN_EINVAL; /* the caller merges duplicates */
            }
        }
        if (outbox_check_whole(d, it, 1) != CAIRN_OK) {
            atomic_fetch_add(&d->rejected, 1);
            return CAIRN_ETOOBIG;
        }
        out[i] = (store_target){d, to[i].prio};
    }
    return CAIRN_OK;
}

cairn_err
cairni_outbox_put_once(cairni_store *s, const char *consumer,
                       const cairn_envelope *env, const cairni_put_to *to,
                       size_t n)
{
    store_target  one[8], *tg = one;
    store_item    it = {0};
    cairn_envelope e;
    if (s == NULL || consumer == NULL || env == NULL ||
        (to == NULL && n > 0) || outbox_id_zero(env->id)) {
        return CAIRN_EINVAL;
    }
    e = *env; /* one ts for every copy */
    e.ts = e.ts != 0 ? e.ts : cairn_now_ms();
    if (n > sizeof(one) / sizeof(one[0]) &&
        (tg = cairni_store_calloc(n, sizeof(*tg))) == NULL) {
        return CAIRN_ENOMEM;
    }
    cairn_err rv = outbox_encode(&e, &it, NULL);
    if (rv == CAIRN_OK) {
        rv = outbox_once_targets(s, to, n, &it, tg);
    }
    if (rv == CAIRN_OK) {
        store_req req = {.kind = STORE_REQ_PUT, .dest = NULL};
        req.u.put.items = &it;
        req.u.put.n = 1;
        req.u.put.to = tg;
        req.u.put.nto = n;
        req.u.put.consumer = consumer;
        req.u.put.id = e.id;
        rv = cairni_store_submit(s, &req);
    }
    cairni_store_free(it.env);
    if (tg != one) {
        cairni_store_free(tg);
    }
    return rv;
}

/* ---- writer side: room, inserts ------------------------------------------ */

static bool
outbox_fits(const store_dest *d, int64_t n, int64_t bytes)
{
    int64_t used_n, used_b;
    cairni_store_usage(d, &used_n, &used_b);
    return (d->cfg.max_messages <= 0 || used_n + n <= d->cfg.max_messages) &&
           (d->cfg.max_bytes == 0 ||
            (uint64_t)(used_b + bytes) <= d->cfg.max_bytes);
}

/* Deletes one evicted row (outbox seq or dead-letter id). */
static cairn_err
outbox_evict_one(cairni_store *s, store_dest *d, bool dead, int64_t id)
{
    sqlite3_stmt *del = s->ws[dead ? WS_DEL_DEAD : WS_DEL_SEQ];
    sqlite3_bind_int64(del, 1, id);
    if (!dead) {
        sqlite3_bind_text(del, 2, d->name, -1, SQLITE_STATIC);
    }
    int rc = sqlite3_step(del);
    if (rc == SQLITE_ROW) {
        int64_t      b = sqlite3_column_int64(del, 0);
        store_delta *dl = cairni_store_touch(s, d);
        if (dead) {
            dl->ddepth--;
            dl->dbytes -= b;
        } else {
            dl->depth--;
            dl->bytes -= b;
        }
        dl->dropped++;
        s->evicted = true;
    }
    sqlite3_reset(del);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CAIRN_OK
                                                 : cairni_store_sqlerr(rc);
}

/* Drops the oldest rows of one table until n records of bytes fit. */
static cairn_err
outbox_evict(cairni_store *s, store_dest *d, bool dead, int64_t n,
             int64_t bytes)
{
    sqlite3_stmt *sel = s->ws[dead ? WS_EVICT_DEAD : WS_EVICT_OUT];
    int64_t       ids[64];
    while (!outbox_fits(d, n, bytes)) {
        size_t cnt = 0;
        int    rc;
        sqlite3_bind_text(sel, 1, d->name, -1, SQLITE_STATIC);
        while (cnt < 64 && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
            ids[cnt++] = sqlite3_column_int64(sel, 0);
        }
        sqlite3_reset(sel);
        if (cnt < 64 && rc != SQLITE_DONE) {
            return cairni_store_sqlerr(rc);
        }
        if (cnt == 0) {
            return CAIRN_OK; /* nothing left to drop */
        }
        for (size_t i = 0; i < cnt && !outbox_fits(d, n, bytes); i++) {
            cairn_err rv = outbox_evict_one(s, d, dead, ids[i]);
            if (rv != CAIRN_OK) {
                return rv;
            }
        }
    }
    return CAIRN_OK;
}

static cairn_err
outbox_make_room(cairni_store *s, store_dest *d, int64_t n, int64_t bytes)
{
    cairn_err rv = CAIRN_OK;
    if (outbox_fits(d, n, bytes)) {
        return CAIRN_OK;
    }
    if (d->cfg.on_full == CAIRNI_FULL_DROP_OLDEST) {
        rv = outbox_evict(s, d, false, n, bytes);
        if (rv == CAIRN_OK) {
            rv = outbox_evict(s, d, true, n, bytes);
        }
    }
    if (rv == CAIRN_OK && !outbox_fits(d, n, bytes)) {
        atomic_fetch_add(&d->rejected, 1);
        rv = CAIRN_EFULL;
    }
    return rv;
}

static int64_t
outbox_expires(const store_dest *d, uint64_t now)
{
    return d->cfg.ttl_ms != 0 ? (int64_t)(now + d->cfg.ttl_ms) : 0;
}

/* Inserts the put's items into d (with priority prio). */
static cairn_err
outbox_put_into(cairni_store *s, const store_req *req, store_dest *d,
                int prio)
{
    sqlite3_stmt *st = s->ws[WS_PUT];
    int64_t       bytes = 0;
    for (size_t i = 0; i < req->u.put.n; i++) {
        bytes +=
            (int64_t)(req->u.put.items[i].len + req->u.put.items[i].keylen);
    }
    cairn_err rv = outbox_make_room(s, d, (int64_t)req->u.put.n, bytes);
    if (rv != CAIRN_OK) {
        return rv;
    }
    uint64_t now = cairni_store_now_ms();
    for (size_t i = 0; i < req->u.put.n; i++) {
        const store_item *it = &req->u.put.items[i];
        sqlite3_bind_text(st, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, it->key, (int)it->keylen, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, prio);
        sqlite3_bind_blob(st, 4, it->env, (int)it->len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (int64_t)(it->len + it->keylen));
        sqlite3_bind_int64(st, 6, (int64_t)now);
        sqlite3_bind_int64(st, 7, outbox_expires(d, now));
        int rc = cairni_store_step_done(st);
        if (rc != SQLITE_OK) {
            return cairni_store_sqlerr(rc);
        }
    }
    store_delta *dl = cairni_store_touch(s, d);
    dl->depth += (int64_t)req->u.put.n;
    dl->bytes += bytes;
    dl->enqueued += req->u.put.n;
    s->inserted = true;
    return CAIRN_OK;
}

/* A put: the inbox id first (put_once), then every destination.  All of
 * it runs in the request's savepoint, so a duplicate id, a full
 * destination or an I/O error leaves nothing behind. */
static cairn_err
outbox_exec_put(cairni_store *s, store_req *req)
{
    cairn_err rv = CAIRN_OK;
    if (req->u.put.consumer != NULL) {
        rv = cairni_inbox_mark(s, req->u.put.consumer, req->u.put.id);
    }
    if (rv == CAIRN_OK && req->dest != NULL) {
        rv = outbox_put_into(s, req, req->dest, req->u.put.prio);
    }
    for (size_t i = 0; i < req->u.put.nto && rv == CAIRN_OK; i++) {
        rv = outbox_put_into(s, req, req->u.put.to[i].dest,
                             req->u.put.to[i].prio);
    }
    return rv;
}

/* ---- writer side: acks, nacks, dead letters ------------------------------ */

/* Deletes outbox row seq of d; *bytes < 0 when it was not there. */
static cairn_err
outbox_delete(cairni_store *s, store_dest *d, uint64_t seq, int64_t *bytes)
{
    sqlite3_stmt *del = s->ws[WS_DEL_SEQ];
    sqlite3_bind_int64(del, 1, (int64_t)seq);
    sqlite3_bind_text(del, 2, d->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(del);
    *bytes = rc == SQLITE_ROW ? sqlite3_column_int64(del, 0) : -1;
    sqlite3_reset(del);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CAIRN_OK
                                                 : cairni_store_sqlerr(rc);
}

cairn_err
cairni_outbox_flush_acks(cairni_store *s, const store_ack *acks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t   b;
        cairn_err rv = outbox_delete(s, acks[i].dest, acks[i].seq, &b);
        if (rv != CAIRN_OK) {
            return rv;
        }
        if (b >= 0) { /* gone already: dropped, expired or processed */
            store_delta *dl = cairni_store_touch(s, acks[i].dest);
            dl->depth--;
            dl->bytes -= b;
            dl->acked++;
        }
    }
    return CAIRN_OK;
}

static cairn_err
outbox_exec_nack(cairni_store *s, store_req *req)
{
    sqlite3_stmt *st = s->ws[WS_NACK];
    sqlite3_bind_int64(st, 1, (int64_t)req->u.nack.seq);
    sqlite3_bind_int64(st, 2, req->u.nack.attempt);
    sqlite3_bind_int64(st, 3, (int64_t)req->u.nack.next_at);
    sqlite3_bind_text(st, 4, req->u.nack.error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, req->dest->name, -1, SQLITE_STATIC);
    int rc = cairni_store_step_done(st);
    if (rc != SQLITE_OK) {
        return cairni_store_sqlerr(rc);
    }
    if (sqlite3_changes(s->wdb) == 0) {
        return CAIRN_ENOENT;
    }
    cairni_store_touch(s, req->dest)->retried++;
    return CAIRN_OK;
}

static cairn_err
outbox_exec_dead(cairni_store *s, store_req *req)
{
    store_dest   *d = req->dest;
    sqlite3_stmt *st = s->ws[WS_TO_DEAD];
    int64_t       b;
    sqlite3_bind_int64(st, 1, (int64_t)req->u.nack.seq);
    sqlite3_bind_blob(st, 2, req->u.nack.id, CAIRN_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, req->u.nack.attempt);
    sqlite3_bind_int64(st, 4, (int64_t)cairni_store_now_ms());
    sqlite3_bind_text(st, 5, req->u.nack.error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, d->name, -1, SQLITE_STATIC);
    int rc = cairni_store_step_done(st);
    if (rc != SQLITE_OK) {
        return cairni_store_sqlerr(rc);
    }
    if (sqlite3_changes(s->wdb) == 0) {
        return CAIRN_ENOENT;
    }
    cairn_err rv = outbox_delete(s, d, req->u.nack.seq, &b);
    if (rv != CAIRN_OK || b < 0) {
        return rv != CAIRN_OK ? rv : CAIRN_EINTERNAL;
    }
    store_delta *dl = cairni_store_touch(s, d);
    dl->depth--;
    dl->bytes -= b;
    dl->ddepth++;
    dl->dbytes += b;
    dl->dead++;
    return CAIRN_OK;
}

/* Moves dead letter id of d back to the outbox with attempt 0. */
static cairn_err
outbox_replay_one(cairni_store *s, store_dest *d, int64_t id, uint64_t now)
{
    sqlite3_stmt *ins = s->ws[WS_DLQ_REPLAY], *del = s->ws[WS_DEL_DEAD];
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_int64(ins, 2, (int64_t)now);
    sqlite3_bind_int64(ins, 3, outbox_expires(d, now));
    int rc = cairni_store_step_done(ins);
    if (rc != SQLITE_OK) {
        return cairni_store_sqlerr(rc);
    }
    sqlite3_bind_int64(del, 1, id);
    rc = sqlite3_step(del);
    int64_t b = rc == SQLITE_ROW ? sqlite3_column_int64(del, 0) : 0;
    sqlite3_reset(del);
    if (rc != SQLITE_ROW) {
        return rc == SQLITE_DONE ? CAIRN_EINTERNAL : cairni_store_sqlerr(rc);
    }
    store_delta *dl = cairni_store_touch(s, d);
    dl->ddepth--;
    dl->dbytes -= b;
    dl->depth++;
    dl->bytes += b;
    s->inserted = true;
    return CAIRN_OK;
}

/* Collects up to 256 dead letters after *last (of msgid, or all). */
static cairn_err
outbox_dead_page(cairni_store *s, const uint8_t *msgid, int64_t last,
                 int64_t *ids, store_dest **dests, size_t *cnt)
{
    sqlite3_stmt *sel = s->ws[msgid != NULL ? WS_DLQ_BY_MSGID : WS_DLQ_ALL];
    cairn_err     rv = CAIRN_OK;
    int           rc;
    if (msgid != NULL) {
        sqlite3_bind_blob(sel, 1, msgid, CAIRN_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 2, last);
    } else {
        sqlite3_bind_int64(sel, 1, last);
    }
    *cnt = 0;
    while (rv == CAIRN_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(sel, 1);
        size_t      len = (size_t)sqlite3_column_bytes(sel, 1);
        ids[*cnt] = sqlite3_column_int64(sel, 0);
        dests[*cnt] = cairni_store_dest(s, name, len, true);
        rv = dests[*cnt] != NULL ? CAIRN_OK : CAIRN_ENOMEM;
        *cnt += rv == CAIRN_OK;
    }
    sqlite3_reset(sel);
    if (rv == CAIRN_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rv = cairni_store_sqlerr(rc);
    }
    return rv;
}

static cairn_err
outbox_exec_replay(cairni_store *s, store_req *req)
{
    int64_t     ids[256], last = 0;
    store_dest *dests[256];
    size_t      cnt, total = 0;
    uint64_t    now = cairni_store_now_ms();
    do {
        cairn_err rv =
            outbox_dead_page(s, req->u.replay.id, last, ids, dests, &cnt);
        for (size_t i = 0; i < cnt && rv == CAIRN_OK; i++) {
            rv = outbox_replay_one(s, dests[i], ids[i], now);
        }
        if (rv != CAIRN_OK) {
            return rv;
        }
        total += cnt;
        last = cnt > 0 ? ids[cnt - 1] : last;
    } while (cnt == 256);
    req->u.replay.n = total;
    return total > 0 || req->u.replay.id == NULL ? CAIRN_OK : CAIRN_ENOENT;
}

static cairn_err
outbox_exec_purge(cairni_store *s, store_req *req)
{
    sqlite3_stmt *st = s->ws[WS_DLQ_GROUPS];
    cairn_err     rv = CAIRN_OK;
    int           rc;
    req->u.purge.n = 0;
    while (rv == CAIRN_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_dest *d =
            cairni_store_dest(s, (const char *)sqlite3_column_text(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0), true);
        if (d == NULL) {
            rv = CAIRN_ENOMEM;
            break;
        }
        store_delta *dl = cairni_store_touch(s, d);
        dl->ddepth -= sqlite3_column_int64(st, 1);
        dl->dbytes -= sqlite3_column_int64(st, 2);
        req->u.purge.n += (size_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rv == CAIRN_OK && rc != SQLITE_DONE) {
        rv = cairni_store_sqlerr(rc);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_sqlerr(cairni_store_step_done(s->ws[WS_DLQ_PURGE]));
    }
    return rv;
}

cairn_err
cairni_outbox_exec(cairni_store *s, store_req *req)
{
    switch (req->kind) {
    case STORE_REQ_PUT:
        return outbox_exec_put(s, req);
    case STORE_REQ_NACK:
        return outbox_exec_nack(s, req);
    case STORE_REQ_DEAD:
        return outbox_exec_dead(s, req);
    case STORE_REQ_REPLAY:
        return outbox_exec_replay(s, req);
    case STORE_REQ_PURGE:
        return outbox_exec_purge(s, req);
    default:
        return CAIRN_EINTERNAL;
    }
}

/* ---- maintenance and loading --------------------------------------------- */

/* One round of the TTL sweep; *n is how many expired records it deleted. */
static cairn_err
outbox_sweep_round(cairni_store *s, uint64_t now, size_t *n)
{
    sqlite3_stmt *st = s->ws[WS_SWEEP_TTL];
    int           rc;
    *n = 0;
    sqlite3_bind_int64(st, 1, (int64_t)now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_dest *d =
            cairni_store_dest(s, (const char *)sqlite3_column_text(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0), true);
        if (d != NULL) { /* NULL: out of memory; the count drifts by one */
            store_delta *dl = cairni_store_touch(s, d);
            dl->depth--;
            dl->bytes -= sqlite3_column_int64(st, 1);
            dl->expired++;
        }
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CAIRN_OK : cairni_store_sqlerr(rc);
}

cairn_err
cairni_outbox_sweep(cairni_store *s, uint64_t now_ms)
{
    size_t    n = OUTBOX_SWEEP_LIMIT;
    cairn_err rv = CAIRN_OK;
    for (int i = 0;
         i < OUTBOX_SWEEP_ROUNDS && n == OUTBOX_SWEEP_LIMIT && rv == CAIRN_OK;
         i++) {
        rv = outbox_sweep_round(s, now_ms, &n);
    }
    if (rv == CAIRN_OK) {
        sqlite3_stmt *st = s->ws[WS_SWEEP_INBOX];
        uint64_t      w = s->inbox_window_ms;
        sqlite3_bind_int64(st, 1, now_ms > w ? (int64_t)(now_ms - w) : 0);
        rv = cairni_store_sqlerr(cairni_store_step_done(st));
    }
    return rv;
}

static cairn_err
outbox_load_table(cairni_store *s, sqlite3_stmt *st, bool dead)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_dest *d =
            cairni_store_dest(s, (const char *)sqlite3_column_text(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0), true);
        if (d == NULL) {
            sqlite3_reset(st);
            return CAIRN_ENOMEM;
        }
        atomic_store(dead ? &d->ddepth : &d->depth,
                     sqlite3_column_int64(st, 1));
        atomic_store(dead ? &d->dbytes : &d->bytes,
                     sqlite3_column_int64(st, 2));
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CAIRN_OK : cairni_store_sqlerr(rc);
}

cairn_err
cairni_outbox_load(cairni_store *s)
{
    sqlite3_stmt *st = NULL;
    cairn_err     rv = cairni_store_prepare(s->wdb,
                                            "SELECT dest, count(*), sum(bytes)"
                                                " FROM outbox GROUP BY dest",
                                            &st);
    if (rv == CAIRN_OK) {
        rv = outbox_load_table(s, st, false);
    }
    sqlite3_finalize(st);
    if (rv == CAIRN_OK) {
        rv = outbox_load_table(s, s->ws[WS_DLQ_GROUPS], true);
    }
    return rv;
}
