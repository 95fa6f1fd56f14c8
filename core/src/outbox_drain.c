/*
 * outbox_drain.c - a destination's side of the outbox: records handed
 * out in order per key, acked, nacked or taken back.
 *
 * A drainer reads on a connection of its own and pages through the
 * outbox with one prepared statement per page: rows of its destination
 * and one priority with seq > cursor, in seq order (index outbox_dest:
 * dest, prio, then the rowid).  It never rescans from the start and runs
 * no transaction per record.  Its state, per priority p:
 *
 *   cursor[p]   the last seq considered; only moves back on a rewind
 *   buf[p]      prefetched rows after cursor[p] (one page, <= 1 MiB)
 *   lanes[p]    keys held back: key hash -> (head seq, next_at).  The
 *               head waits for its backoff; every later row of that key
 *               is skipped while the lane exists
 * and, for both: inflight (seq -> key hash, attempt, id), at most the
 * window; acked (seq -> ack ticket), acks whose delete may not be
 * committed yet.
 *
 * Invariant: every row of priority p with seq <= cursor[p] is in flight,
 * acked, expired, or of a key with a lane.  Hence:
 *   - a row is handed out when it is not in flight, not acked, not
 *     expired, its key has no lane, and it is due (next_at <= now);
 *   - a row that is not due opens a lane (the restart case: a retry
 *     that was waiting when the process stopped);
 *   - nack(r) of key K: r's attempt and next_at are committed first,
 *     then K gets a lane headed by r, and K's records after r that are
 *     in flight are taken back (not in flight, <= cursor, lane: still
 *     covered).  Pipelining within a key is fine until then;
 *   - when a lane's time comes it is removed and cursor[p] rewinds to
 *     head - 1: the rescan hands out r first, then K's later records in
 *     seq order, skipping what is in flight or acked (about a window of
 *     rows, since acked rows are deleted within milliseconds);
 *   - reset rewinds every priority to before its oldest record in flight
 *     and empties inflight: everything goes out again in seq order.
 * Keys are compared by 64-bit hash only; two keys with one hash share a
 * lane, which delays the innocent key but never breaks the invariant.
 *
 * Acks are queued to the writer (lazy group commit) and kept in `acked`
 * until a page fetched after their commit (cairni_store_acks_done() read
 * before the query) proves them gone; an acked record is never handed
 * out again by this process, even before its delete commits.  Closing a
 * drainer waits for its acks to commit, so a new drainer does not see them.
 *
 * Threads: all state is under d->mu; next() drops it while it waits on
 * s->ecv (new rows, kicks from ack/nack/reset, the earliest lane time).
 * At most DRAIN_LANES_MAX keys are held back at once; past that the scan
 * stops at the next record that is not due until a lane's time comes
 * (memory stays bounded; other keys wait meanwhile).
 * nack() holds d->mu while its change commits.  inbox.c uses d->imu for
 * its connection.  One drainer per destination (CAIRN_EBUSY otherwise).
 *
 * Ownership: a handed-out record owns its data (one allocation holding
 * the encoded envelope, which rec->env points into) until
 * cairni_record_fini.  Rows in buf are owned by the buffer.
 */
#include <string.h>

#include "store_impl.h"

#define DRAIN_PAGE 256
#define DRAIN_PAGE_BYTES (1u << 20)
#define DRAIN_LANES_MAX 4096
#define DRAIN_PRIO_ANY 0xff

typedef struct drain_row {
    uint64_t seq, hash;
    int64_t  next_at, expires;
    uint32_t attempt;
    uint8_t *blk; /* the encoded envelope; owned until handed out */
    size_t   len;
} drain_row;

typedef struct drain_buf {
    drain_row rows[DRAIN_PAGE];
    size_t    pos, n;
    uint64_t  cursor;
    bool      at_end;    /* the last fetch reached the end ... */
    uint64_t  end_gen;   /* ... when rows_gen was this */
    uint64_t  evict_gen; /* evictions invalidate prefetched rows */
    uint32_t  fetches;   /* fetches so far */
    uint64_t  done;      /* acks_done when the last fetch began */
} drain_buf;

struct cairni_drain {
    cairni_store    *s;
    store_dest      *dest;
    uint32_t         window;
    pthread_mutex_t  mu;
    sqlite3         *rdb;
    sqlite3_stmt    *page;
    drain_buf        buf[2];
    store_tab        inflight, acked, lanes[2];
    uint64_t         lane_min; /* earliest lane next_at, UINT64_MAX: none */
    _Atomic int      waiting;  /* threads in next() waiting on s->ecv */
    _Atomic uint64_t kicks;    /* bumped by ack/nack/reset */
    pthread_mutex_t  imu;
    inbox_conn      *inbox;
};

/* ---- cursors and buffers ------------------------------------------------- */

static void
drain_buf_clear(drain_buf *b)
{
    for (size_t i = b->pos; i < b->n; i++) {
        cairni_store_free(b->rows[i].blk);
    }
    b->pos = b->n = 0;
    b->at_end = false;
}

/* Moves cursor[p] back to seq (if it is ahead): those rows are seen again. */
static void
drain_rewind(cairni_drain *d, int p, uint64_t seq)
{
    if (seq < d->buf[p].cursor) {
        d->buf[p].cursor = seq;
        drain_buf_clear(&d->buf[p]);
    }
}

static uint64_t
drain_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
    }
    return h != 0 ? h : 1;
}

/* Has every fetch of priority x begun after the delete of e committed? */
static bool
drain_gone(const cairni_drain *d, const store_ent *e, int x)
{
    const drain_buf *b = &d->buf[x];
    uint32_t         at_insert = (uint32_t)(x == 0 ? e->b >> 32 : e->b);
    return e->a != 0 ? e->a <= b->done : b->fetches != at_insert;
}

/* Forgets acked records that no buffer can hold any more: rows deleted
 * before the last fetch of their priority (of both, when unknown). */
static void
drain_prune(cairni_drain *d)
{
    for (size_t i = 0; i < d->acked.cap;) {
        store_ent *e = &d->acked.e[i];
        bool       gone =
            e->key != 0 && (e->prio == DRAIN_PRIO_ANY
                                ? drain_gone(d, e, 0) && drain_gone(d, e, 1)
                                : drain_gone(d, e, e->prio));
        if (gone) {
            cairni_tab_del(&d->acked, e); /* a later entry may move into i */
        } else {
            i++;
        }
    }
}

/* Remembers that seq is done (ticket 0: its delete has committed). */
static void
drain_mark_acked(cairni_drain *d, uint64_t seq, uint64_t ticket, int prio)
{
    store_ent *e = cairni_tab_find(&d->acked, seq);
    e = e != NULL ? e : cairni_tab_put(&d->acked, seq);
    e->a = ticket;
    e->b = ((uint64_t)d->buf[0].fetches << 32) | d->buf[1].fetches;
    e->prio = (uint8_t)prio;
}

static cairn_err
drain_row_read(sqlite3_stmt *st, drain_row *r)
{
    const void *env = sqlite3_column_blob(st, 2);
    r->len = (size_t)sqlite3_column_bytes(st, 2);
    r->blk = cairni_store_malloc(r->len);
    if (r->blk == NULL) {
        return CAIRN_ENOMEM;
    }
    if (r->len > 0) {
        memcpy(r->blk, env, r->len);
    }
    r->seq = (uint64_t)sqlite3_column_int64(st, 0);
    r->hash = drain_hash((const char *)sqlite3_column_text(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1));
    r->attempt = (uint32_t)sqlite3_column_int64(st, 3);
    r->next_at = sqlite3_column_int64(st, 4);
    r->expires = sqlite3_column_int64(st, 5);
    return CAIRN_OK;
}

/* Reads the next page of priority p after its cursor. */
static cairn_err
drain_fetch(cairni_drain *d, int p)
{
    drain_buf    *b = &d->buf[p];
    sqlite3_stmt *st = d->page;
    uint64_t      done = cairni_store_acks_done(d->s);
    uint64_t      gen = atomic_load(&d->s->rows_gen);
    size_t        bytes = 0;
    cairn_err     rv = CAIRN_OK;
    int           rc = SQLITE_ROW;

    drain_buf_clear(b);
    b->evict_gen = atomic_load(&d->s->evict_gen);
    b->fetches++;
    b->done = done;
    sqlite3_bind_text(st, 1, d->dest->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p);
    sqlite3_bind_int64(st, 3, (int64_t)b->cursor);
    sqlite3_bind_int(st, 4, DRAIN_PAGE);
    while (b->n < DRAIN_PAGE && bytes < DRAIN_PAGE_BYTES &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rv = drain_row_read(st, &b->rows[b->n]);
        if (rv != CAIRN_OK) {
            break;
        }
        bytes += b->rows[b->n++].len;
    }
    sqlite3_reset(st); /* ends the read transaction */
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = cairni_store_sqlerr(rc);
    }
    b->at_end = rv == CAIRN_OK && rc == SQLITE_DONE;
    b->end_gen = gen;
    drain_prune(d);
    return b->n > 0 ? CAIRN_OK : rv;
}

/* ---- handing out --------------------------------------------------------- */

static bool
drain_due(const cairni_drain *d, int64_t next_at, uint64_t now)
{
    /* far in the future: the wall clock stepped back; do not wait for it */
    return next_at <= (int64_t)now ||
           (uint64_t)next_at > now + d->s->retry.max_ms + 60000u;
}

/* Holds key hash back from head on until next_at.  The key may have a
 * lane already (after a restart, a later record of it waits for its own
 * retry while an earlier one is in flight): the earlier head wins, and
 * the later record opens its lane again when the rescan meets it. */
static cairn_err
drain_lane_add(cairni_drain *d, int p, uint64_t hash, uint64_t head,
               int64_t next_at)
{
    store_ent *l = cairni_tab_find(&d->lanes[p], hash);
    if (l == NULL) {
        if (d->lanes[p].n >= DRAIN_LANES_MAX) {
            return CAIRN_EFULL;
        }
        if (cairni_tab_reserve(&d->lanes[p], 1) != CAIRN_OK) {
            return CAIRN_ENOMEM;
        }
        l = cairni_tab_put(&d->lanes[p], hash);
        l->a = UINT64_MAX;
    }
    if (head < l->a) {
        l->a = head;
        l->b = (uint64_t)next_at;
    }
    d->lane_min = l->b < d->lane_min ? l->b : d->lane_min;
    return CAIRN_OK;
}

/* Removes the lanes whose time has come; their keys are scanned again. */
static void
drain_lanes_due(cairni_drain *d, uint64_t now)
{
    if (d->lane_min > now) {
        return;
    }
    d->lane_min = UINT64_MAX;
    for (int p = 0; p < 2; p++) {
        store_tab *t = &d->lanes[p];
        for (size_t i = 0; i < t->cap;) {
            store_ent *l = &t->e[i];
            if (l->key != 0 && drain_due(d, (int64_t)l->b, now)) {
                drain_rewind(d, p, l->a - 1);
                cairni_tab_del(t, l);
                continue;
            }
            if (l->key != 0 && l->b < d->lane_min) {
                d->lane_min = l->b;
            }
            i++;
        }
    }
}

/* Gives row r to rec and records it in flight. */
static cairn_err
drain_hand(cairni_drain *d, int p, drain_row *r, cairn_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (cairn_envelope_decode(r->blk, r->len, &rec->env) != CAIRN_OK) {
        return CAIRN_EPROTO;
    }
    store_ent *e = cairni_tab_put(&d->inflight, r->seq);
    e->a = r->hash;
    e->attempt = r->attempt;
    e->prio = (uint8_t)p;
    memcpy(e->id, rec->env.id, CAIRN_ID_LEN);
    rec->seq = r->seq;
    rec->attempt = r->attempt;
    rec->prio = p;
    rec->data = r->blk;
    rec->len = r->len;
    rec->env.attempt = r->attempt;
    if (r->attempt > 0) {
        rec->env.flags |= CAIRN_ENV_HAS_ATTEMPT;
    }
    r->blk = NULL;
    atomic_fetch_add(&d->dest->inflight, 1);
    return CAIRN_OK;
}

/* A row that cannot be decoded: to dead letters, never handed out. */
static void
drain_bury(cairni_drain *d, uint64_t seq)
{
    store_req req = {.kind = STORE_REQ_DEAD, .dest = d->dest};
    req.u.nack.seq = seq;
    req.u.nack.error = "stored envelope does not decode";
    (void)cairni_store_submit(d->s, &req);
}

enum { DRAIN_HAND, DRAIN_SKIP, DRAIN_STOP };

static int
drain_judge(cairni_drain *d, int p, const drain_row *r, uint64_t now,
            cairn_err *rv)
{
    if (cairni_tab_find(&d->inflight, r->seq) != NULL ||
        cairni_tab_find(&d->acked, r->seq) != NULL ||
        (r->expires != 0 && r->expires <= (int64_t)now) ||
        (d->lanes[p].n > 0 && cairni_tab_find(&d->lanes[p], r->hash) != NULL)) {
        return DRAIN_SKIP;
    }
    if (drain_due(d, r->next_at, now)) {
        return DRAIN_HAND;
    }
    cairn_err lr = drain_lane_add(d, p, r->hash, r->seq, r->next_at);
    if (lr != CAIRN_OK) {
        *rv = lr == CAIRN_ENOMEM ? lr : CAIRN_OK; /* full: wait for lanes */
        return DRAIN_STOP;
    }
    return DRAIN_SKIP;
}

/* Hands out rows of priority p until max, the window, or the end. */
static cairn_err
drain_take(cairni_drain *d, int p, cairn_record *recs, size_t max, size_t *got,
           uint64_t now)
{
    drain_buf *b = &d->buf[p];
    cairn_err  rv = CAIRN_OK;
    while (*got < max && d->inflight.n < d->window) {
        if (b->evict_gen != atomic_load(&d->s->evict_gen)) {
            drain_buf_clear(b); /* rows may have been dropped for room */
            b->evict_gen = atomic_load(&d->s->evict_gen);
        }
        if (b->pos == b->n) {
            if ((b->at_end && b->end_gen == atomic_load(&d->s->rows_gen)) ||
                (rv = drain_fetch(d, p)) != CAIRN_OK || b->n == 0) {
                return rv;
            }
            continue;
        }
        drain_row *r = &b->rows[b->pos];
        int        verdict = drain_judge(d, p, r, now, &rv);
        if (verdict == DRAIN_STOP) {
            return rv;
        }
        if (verdict == DRAIN_HAND) {
            if (cairni_tab_reserve(&d->inflight, 1) != CAIRN_OK) {
                return CAIRN_ENOMEM; /* the row stays for the next call */
            }
            if (drain_hand(d, p, r, &recs[*got]) == CAIRN_OK) {
                (*got)++;
            } else {
                drain_bury(d, r->seq);
            }
        }
        cairni_store_free(r->blk);
        r->blk = NULL;
        b->cursor = r->seq;
        b->pos++;
    }
    return CAIRN_OK;
}

static cairn_err
drain_fill(cairni_drain *d, cairn_record *recs, size_t max, size_t *got)
{
    uint64_t now = cairni_store_now_ms();
    drain_lanes_due(d, now);
    cairn_err rv = drain_take(d, CAIRNI_PRIO_HIGH, recs, max, got, now);
    if (rv == CAIRN_OK) {
        rv = drain_take(d, CAIRNI_PRIO_NORMAL, recs, max, got, now);
    }
    return *got > 0 ? CAIRN_OK : rv;
}

/* ---- the API ------------------------------------------------------------- */

/* Under d->mu: the window may have room; wake waiting next() calls.  The
 * broadcast takes s->emu, so it cannot fall between a waiter's check of
 * kicks and its wait. */
static void
drain_kick(cairni_drain *d)
{
    atomic_fetch_add(&d->kicks, 1);
    if (atomic_load(&d->waiting) > 0) {
        pthread_mutex_lock(&d->s->emu);
        pthread_cond_broadcast(&d->s->ecv);
        pthread_mutex_unlock(&d->s->emu);
    }
}

/* Drops d->mu until new rows, a kick, or wake_ms (monotonic). */
static void
drain_wait(cairni_drain *d, uint64_t gen, uint64_t wake_ms)
{
    cairni_store *s = d->s;
    uint64_t      kicks = atomic_load(&d->kicks);
    atomic_fetch_add(&d->waiting, 1);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&s->emu);
    while (atomic_load(&d->kicks) == kicks &&
           atomic_load(&s->rows_gen) == gen && !atomic_load(&s->closing) &&
           cairni_mono_ms() < wake_ms) {
        cairni_store_cond_wait_ms(&s->ecv, &s->emu, wake_ms);
    }
    pthread_mutex_unlock(&s->emu);
    pthread_mutex_lock(&d->mu);
    atomic_fetch_sub(&d->waiting, 1);
}

cairn_err
cairni_drain_next(cairni_drain *d, cairn_record *recs, size_t max,
                  uint32_t wait_ms, size_t *n)
{
    cairn_err rv = CAIRN_OK;
    if (d == NULL || recs == NULL || n == NULL || max == 0) {
        return CAIRN_EINVAL;
    }
    *n = 0;
    uint64_t deadline = cairni_mono_ms() + wait_ms;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        uint64_t gen = atomic_load(&d->s->rows_gen);
        rv = drain_fill(d, recs, max, n);
        uint64_t now = cairni_mono_ms();
        if (*n > 0 || rv != CAIRN_OK || now >= deadline ||
            atomic_load(&d->s->closing)) {
            break;
        }
        uint64_t wake = deadline;
        if (d->lane_min != UINT64_MAX) {
            uint64_t wall = cairni_store_now_ms();
            uint64_t in = d->lane_min > wall ? d->lane_min - wall : 0;
            wake = now + in + 1 < wake ? now + in + 1 : wake;
        }
        drain_wait(d, gen, wake);
    }
    pthread_mutex_unlock(&d->mu);
    return rv;
}

void
cairni_record_fini(cairn_record *r)
{
    if (r != NULL) {
        cairni_store_free(r->data);
        r->data = NULL;
        r->len = 0;
    }
}

/* Leaves flight: the window has room again. */
static void
drain_land(cairni_drain *d, store_ent *e)
{
    cairni_tab_del(&d->inflight, e);
    atomic_fetch_sub(&d->dest->inflight, 1);
    drain_kick(d);
}

cairn_err
cairni_drain_ack(cairni_drain *d, uint64_t seq)
{
    uint64_t ticket;
    if (d == NULL || seq == 0) {
        return CAIRN_EINVAL;
    }
    pthread_mutex_lock(&d->mu);
    cairn_err rv = cairni_tab_reserve(&d->acked, 1);
    if (rv == CAIRN_OK) {
        rv = cairni_store_queue_ack(d->s, d->dest, seq, &ticket);
    }
    if (rv == CAIRN_OK) {
        /* Not in flight: taken back by a nack or reset, yet the far side
         * has it after all.  Delete it; rescans skip it. */
        store_ent *e = cairni_tab_find(&d->inflight, seq);
        drain_mark_acked(d, seq, ticket, e != NULL ? e->prio : DRAIN_PRIO_ANY);
        if (e != NULL) {
            drain_land(d, e);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return rv;
}

/* After r of key hash was nacked for a retry: hold the key back until
 * next_at, and take back its later records in flight. */
static void
drain_hold_key(cairni_drain *d, int p, uint64_t hash, uint64_t seq,
               uint64_t next_at)
{
    if (drain_lane_add(d, p, hash, seq, (int64_t)next_at) != CAIRN_OK) {
        drain_rewind(d, p, seq - 1); /* no lane: retried without waiting */
    }
    for (size_t i = 0; i < d->inflight.cap;) {
        store_ent *e = &d->inflight.e[i];
        if (e->key > seq && e->prio == p && e->a == hash) {
            if (d->lanes[p].n == 0 || !cairni_tab_find(&d->lanes[p], hash)) {
                drain_rewind(d, p, e->key - 1);
            }
            drain_land(d, e); /* a later entry may move into i */
        } else {
            i++;
        }
    }
}

static void
drain_nack_req(cairni_drain *d, const store_ent *e, bool permanent,
               const char *error, store_req *req)
{
    const cairni_retry_cfg *r = &d->s->retry;
    uint32_t                attempt = e->attempt + 1;
    bool                    dead = permanent ||
                (r->max_attempts > 0 && (int64_t)attempt >= r->max_attempts);
    memset(req, 0, sizeof(*req));
    req->kind = dead ? STORE_REQ_DEAD : STORE_REQ_NACK;
    req->dest = d->dest;
    req->u.nack.seq = e->key;
    req->u.nack.attempt = attempt;
    req->u.nack.error = error != NULL ? error : "nack";
    memcpy(req->u.nack.id, e->id, CAIRN_ID_LEN);
    if (!dead) {
        req->u.nack.next_at =
            cairni_store_now_ms() +
            cairni_backoff_delay(r, attempt, cairni_retry_rand());
    }
}

cairn_err
cairni_drain_nack(cairni_drain *d, uint64_t seq, bool permanent,
                  const char *error)
{
    store_req req;
    if (d == NULL || seq == 0) {
        return CAIRN_EINVAL;
    }
    pthread_mutex_lock(&d->mu);
    store_ent *e = cairni_tab_find(&d->inflight, seq);
    cairn_err  rv = e != NULL ? cairni_tab_reserve(&d->acked, 1) : CAIRN_ENOENT;
    if (rv != CAIRN_OK) {
        goto out;
    }
    drain_nack_req(d, e, permanent, error, &req);
    rv = cairni_store_submit(d->s, &req); /* commits before we go on */
    if (rv != CAIRN_OK && rv != CAIRN_ENOENT) {
        goto out; /* still in flight; the caller may try again */
    }
    int      p = e->prio;
    uint64_t hash = e->a;
    drain_land(d, e);
    if (rv == CAIRN_ENOENT || req.kind == STORE_REQ_DEAD) {
        drain_mark_acked(d, seq, 0, p); /* gone: never hand it out again */
    } else {
        drain_hold_key(d, p, hash, seq, req.u.nack.next_at);
    }
out:
    pthread_mutex_unlock(&d->mu);
    return rv;
}

void
cairni_drain_reset(cairni_drain *d)
{
    if (d == NULL) {
        return;
    }
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->inflight.cap; i++) {
        store_ent *e = &d->inflight.e[i];
        if (e->key != 0) {
            drain_rewind(d, e->prio, e->key - 1);
            e->key = 0;
        }
    }
    atomic_fetch_sub(&d->dest->inflight, d->inflight.n);
    d->inflight.n = 0;
    drain_kick(d);
    pthread_mutex_unlock(&d->mu);
}

/* ---- open and close ------------------------------------------------------ */

static void
drain_free(cairni_drain *d)
{
    cairni_inbox_conn_free(d->inbox);
    for (int p = 0; p < 2; p++) {
        drain_buf_clear(&d->buf[p]);
        cairni_store_free(d->lanes[p].e);
    }
    cairni_store_free(d->inflight.e);
    cairni_store_free(d->acked.e);
    sqlite3_finalize(d->page);
    sqlite3_close(d->rdb);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->imu);
    cairni_store_free(d);
}

static cairn_err
drain_init(cairni_drain *d)
{
    size_t    w = d->window < 512 ? d->window : 512; /* grows if needed */
    cairn_err rv = cairni_tab_init(&d->inflight, 2 * w + 2);
    if (rv == CAIRN_OK) {
        rv = cairni_tab_init(&d->acked, 64);
    }
    for (int p = 0; p < 2 && rv == CAIRN_OK; p++) {
        rv = cairni_tab_init(&d->lanes[p], 16);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_conn(d->s, &d->rdb);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_prepare(
            d->rdb,
            "SELECT seq, okey, env, attempt, next_at, expires FROM outbox"
            " WHERE dest = ?1 AND prio = ?2 AND seq > ?3 ORDER BY seq"
            " LIMIT ?4",
            &d->page);
    }
    return rv;
}

cairn_err
cairni_drain_open(cairni_store *s, const char *dest, cairni_drain **dp)
{
    if (s == NULL || dest == NULL || dp == NULL) {
        return CAIRN_EINVAL;
    }
    size_t      len = strlen(dest);
    store_dest *sd = cairni_store_dest(s, dest, len, true);
    if (sd == NULL) {
        return len == 0 || len > STORE_DEST_NAME_MAX ? CAIRN_EINVAL
                                                     : CAIRN_ENOMEM;
    }
    cairni_drain *d = cairni_store_calloc(1, sizeof(*d));
    if (d == NULL) {
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->imu, NULL);
    d->s = s;
    d->dest = sd;
    d->window = sd->cfg.window;
    d->lane_min = UINT64_MAX;
    pthread_mutex_lock(&s->mu);
    cairn_err rv = sd->draining ? CAIRN_EBUSY : CAIRN_OK;
    sd->draining = true;
    pthread_mutex_unlock(&s->mu);
    if (rv != CAIRN_OK) {
        drain_free(d);
        return rv;
    }
    rv = drain_init(d);
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *dp = d;
    return CAIRN_OK;
fail:
    pthread_mutex_lock(&s->mu);
    sd->draining = false;
    pthread_mutex_unlock(&s->mu);
    drain_free(d);
    return rv;
}

void
cairni_drain_close(cairni_drain *d)
{
    if (d == NULL) {
        return;
    }
    (void)cairni_store_flush(d->s); /* our acks commit before we go */
    atomic_fetch_sub(&d->dest->inflight, d->inflight.n);
    pthread_mutex_lock(&d->s->mu);
    d->dest->draining = false;
    pthread_mutex_unlock(&d->s->mu);
    drain_free(d);
}

/* ---- for inbox.c --------------------------------------------------------- */

cairni_store *
cairni_drain_store(cairni_drain *d)
{
    return d->s;
}

store_dest *
cairni_drain_dest(cairni_drain *d)
{
    return d->dest;
}

inbox_conn **
cairni_drain_inbox_lock(cairni_drain *d)
{
    pthread_mutex_lock(&d->imu);
    return &d->inbox;
}

void
cairni_drain_inbox_unlock(cairni_drain *d)
{
    pthread_mutex_unlock(&d->imu);
}

cairn_err
cairni_drain_check(cairni_drain *d, uint64_t seq)
{
    pthread_mutex_lock(&d->mu);
    cairn_err rv = cairni_tab_find(&d->inflight, seq) != NULL
                       ? cairni_tab_reserve(&d->acked, 1)
                       : CAIRN_ENOENT;
    pthread_mutex_unlock(&d->mu);
    return rv;
}

void
cairni_drain_done(cairni_drain *d, uint64_t seq)
{
    pthread_mutex_lock(&d->mu);
    store_ent *e = cairni_tab_find(&d->inflight, seq);
    if (cairni_tab_reserve(&d->acked, 1) == CAIRN_OK) {
        drain_mark_acked(d, seq, 0, e != NULL ? e->prio : DRAIN_PRIO_ANY);
    }
    if (e != NULL) {
        drain_land(d, e);
    }
    pthread_mutex_unlock(&d->mu);
}
