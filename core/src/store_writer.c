/*
 * store_writer.c - the writer thread: the one connection that changes the
 * outbox, and how it turns queued changes into group commits.
 *
 * Producers and drainers queue requests (store_req, on the caller's stack;
 * the caller waits on the request's semaphore, posted once its result is
 * set) and acks (store_ack, copied, not waited for) under s->wmu.  The
 * writer takes everything queued, at most STORE_BATCH_MAX requests, and
 * runs one batch on s->wdb:
 *
 *   BEGIN IMMEDIATE
 *     maintenance, when due, in a savepoint   failure: skipped (if SQLite
 *                                             dropped the transaction, a
 *                                             new one begins)
 *     pending acks (deletes)                  failure: the batch fails
 *     per request: SAVEPOINT, the change, RELEASE; on failure ROLLBACK
 *     TO, so a full or oversized request fails alone
 *   COMMIT
 *
 * If COMMIT fails (disk full, I/O error), or a statement error made SQLite
 * roll the whole transaction back (sqlite3_get_autocommit() says so), every
 * request of the batch gets the error, the acks stay queued for a later
 * batch (retried after 100 ms), and nothing of the batch remains.  The
 * thread keeps going; later batches succeed once the cause is gone.
 *
 * Counter changes (store_delta) are collected per request (d->r), folded
 * into the batch (d->w) on RELEASE, dropped on ROLLBACK TO, and published
 * to the destinations' atomics only after COMMIT: what readers see was
 * always committed.  Only this thread touches d->r, d->w and s->wacks;
 * s->nwacks changes only under s->wmu.
 *
 * Gathering: synchronous producers come back with their next request as
 * soon as the batch that held their last one commits.  While fewer
 * requests are queued than the last batch had, the writer waits for
 * them, at most half as long as that batch took (STORE_GATHER_MAX_US at
 * most), so commits stay shared instead of alternating between halves.
 *
 * Acks are lazy: they wait until STORE_ACK_GROUP are pending,
 * STORE_ACK_DELAY_MS has passed since the oldest, or the writer wakes for
 * anything else, and ride along with that batch.  A drainer can hand out
 * records faster than the disk deletes them; once STORE_ACKS_MAX acks are
 * waiting for their commit, an ack waits (STORE_ACK_WAIT_MS at most, so a
 * failing disk cannot wedge a bridge) until the writer has caught up:
 * memory stays bounded under any burst.  Maintenance (TTL and
 * inbox sweeps, a passive checkpoint) runs about once a second; SQLite's
 * auto-checkpoint also runs here, as only this connection has it enabled.
 */
#include <errno.h>
#include <string.h>

#include "store_impl.h"

#define STORE_BATCH_MAX 1024
#define STORE_ACK_GROUP 256
#define STORE_ACK_DELAY_MS 4
#define STORE_MAINT_MS 1000
#define STORE_BUSY_TRIES 3
#define STORE_GATHER_MAX_US 1000
#define STORE_ACKS_MAX 16384
#define STORE_ACK_WAIT_MS 1000

store_delta *
cairni_store_touch(cairni_store *s, store_dest *d)
{
    if (!d->r_dirty) {
        d->r_dirty = true;
        d->r_next = s->r_dirty;
        s->r_dirty = d;
    }
    return &d->r;
}

void
cairni_store_usage(const store_dest *d, int64_t *n, int64_t *bytes)
{
    *n = atomic_load(&d->depth) + atomic_load(&d->ddepth) + d->w.depth +
         d->w.ddepth + d->r.depth + d->r.ddepth;
    *bytes = atomic_load(&d->bytes) + atomic_load(&d->dbytes) + d->w.bytes +
             d->w.dbytes + d->r.bytes + d->r.dbytes;
}

static void
store_delta_add(store_delta *to, const store_delta *from)
{
    to->depth += from->depth;
    to->bytes += from->bytes;
    to->ddepth += from->ddepth;
    to->dbytes += from->dbytes;
    to->enqueued += from->enqueued;
    to->acked += from->acked;
    to->retried += from->retried;
    to->expired += from->expired;
    to->dropped += from->dropped;
    to->dead += from->dead;
}

/* Ends a request: its deltas join the batch (keep) or vanish. */
static void
store_fold(cairni_store *s, bool keep)
{
    store_dest *d = s->r_dirty;
    while (d != NULL) {
        store_dest *next = d->r_next;
        if (keep) {
            store_delta_add(&d->w, &d->r);
            if (!d->w_dirty) {
                d->w_dirty = true;
                d->w_next = s->w_dirty;
                s->w_dirty = d;
            }
        }
        memset(&d->r, 0, sizeof(d->r));
        d->r_dirty = false;
        d->r_next = NULL;
        d = next;
    }
    s->r_dirty = NULL;
}

/* Ends a batch: its deltas become the committed state (commit) or vanish. */
static void
store_publish(cairni_store *s, bool commit)
{
    store_dest *d = s->w_dirty;
    while (d != NULL) {
        store_dest *next = d->w_next;
        if (commit) {
            atomic_fetch_add(&d->depth, d->w.depth);
            atomic_fetch_add(&d->bytes, d->w.bytes);
            atomic_fetch_add(&d->ddepth, d->w.ddepth);
            atomic_fetch_add(&d->dbytes, d->w.dbytes);
            atomic_fetch_add(&d->enqueued, d->w.enqueued);
            atomic_fetch_add(&d->acked, d->w.acked);
            atomic_fetch_add(&d->retried, d->w.retried);
            atomic_fetch_add(&d->expired, d->w.expired);
            atomic_fetch_add(&d->dropped, d->w.dropped);
            atomic_fetch_add(&d->dead, d->w.dead);
        }
        memset(&d->w, 0, sizeof(d->w));
        d->w_dirty = false;
        d->w_next = NULL;
        d = next;
    }
    s->w_dirty = NULL;
}

/* ---- the writer ---------------------------------------------------------- */

cairn_err
cairni_store_submit(cairni_store *s, store_req *req)
{
    req->next = NULL;
    req->rv = CAIRN_OK;
    if (sem_init(&req->done, 0, 0) != 0) {
        return cairn_errno(errno);
    }
    pthread_mutex_lock(&s->wmu);
    if (s->stop) {
        pthread_mutex_unlock(&s->wmu);
        sem_destroy(&req->done);
        return CAIRN_ECLOSED;
    }
    bool wake = s->qhead == NULL;
    if (s->qtail != NULL) {
        s->qtail->next = req;
    } else {
        s->qhead = req;
    }
    s->qtail = req;
    s->qlen++;
    if (wake || (s->gathering && s->qlen >= s->want)) {
        pthread_cond_signal(&s->wcv);
    }
    pthread_mutex_unlock(&s->wmu);
    while (sem_wait(&req->done) != 0) {
        /* EINTR: wait on */
    }
    /* Pass the wake-up on down the batch (see store_settle). */
    store_req *next = req->next;
    cairn_err  rv = req->rv;
    sem_destroy(&req->done);
    (void)next;
    return rv;
}

cairn_err
cairni_store_queue_ack(cairni_store *s, store_dest *d, uint64_t seq,
                       uint64_t *ticket)
{
    cairn_err rv = CAIRN_OK;
    uint64_t  until = cairni_mono_ms() + STORE_ACK_WAIT_MS;
    pthread_mutex_lock(&s->wmu);
    while (!s->stop && s->nacks + s->nwacks >= STORE_ACKS_MAX &&
           cairni_mono_ms() < until) {
        pthread_cond_signal(&s->wcv); /* the disk is behind: wait a bit */
        cairni_store_cond_wait_ms(&s->acv, &s->wmu, until);
    }
    if (s->stop) {
        rv = CAIRN_ECLOSED;
        goto out;
    }
    if (s->nacks == s->acks_cap) {
        size_t     cap = s->acks_cap ? s->acks_cap * 2 : STORE_ACK_GROUP;
        store_ack *a = cairni_store_realloc(s->acks, cap * sizeof(*a));
        if (a == NULL) {
            rv = CAIRN_ENOMEM;
            goto out;
        }
        s->acks = a;
        s->acks_cap = cap;
    }
    if (s->nacks == 0 && s->nwacks == 0) {
        s->ack_first_ms = cairni_mono_ms();
    }
    s->acks[s->nacks++] = (store_ack){seq, ++s->ack_ticket, d};
    *ticket = s->ack_ticket;
    if (s->nacks == STORE_ACK_GROUP) {
        pthread_cond_signal(&s->wcv);
    }
out:
    pthread_mutex_unlock(&s->wmu);
    return rv;
}

uint64_t
cairni_store_acks_done(cairni_store *s)
{
    return atomic_load(&s->ack_done);
}

static cairn_err
store_begin(cairni_store *s)
{
    int rc = SQLITE_BUSY;
    if (!sqlite3_get_autocommit(s->wdb)) {
        (void)cairni_store_step_done(s->ws[WS_ROLLBACK]);
    }
    for (int i = 0; i < STORE_BUSY_TRIES && (rc & 0xff) == SQLITE_BUSY; i++) {
        rc = cairni_store_step_done(s->ws[WS_BEGIN]);
    }
    return cairni_store_sqlerr(rc);
}

static cairn_err
store_commit(cairni_store *s)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < STORE_BUSY_TRIES && (rc & 0xff) == SQLITE_BUSY; i++) {
        rc = cairni_store_step_done(s->ws[WS_COMMIT]);
    }
    return cairni_store_sqlerr(rc);
}

static cairn_err
store_exec(cairni_store *s, store_req *req)
{
    switch (req->kind) {
    case STORE_REQ_FLUSH:
    case STORE_REQ_MAINT:
        return CAIRN_OK;
    case STORE_REQ_EXEC:
        return cairni_store_sqlerr(
            sqlite3_exec(s->wdb, req->u.sql, NULL, NULL, NULL));
    case STORE_REQ_ACCEPT:
        return cairni_inbox_exec_accept(s, req);
    default:
        return cairni_outbox_exec(s, req);
    }
}

/* One request in a savepoint of its own.  Never runs outside the batch
 * transaction: a SAVEPOINT there would start (and RELEASE commit) one of
 * its own. */
static cairn_err
store_run_req(cairni_store *s, store_req *req)
{
    if (sqlite3_get_autocommit(s->wdb)) {
        return CAIRN_EINTERNAL;
    }
    int rc = cairni_store_step_done(s->ws[WS_SAVEPOINT]);
    if (rc != SQLITE_OK) {
        return cairni_store_sqlerr(rc);
    }
    cairn_err rv = store_exec(s, req);
    if (rv == CAIRN_OK) {
        rc = cairni_store_step_done(s->ws[WS_RELEASE]);
        rv = cairni_store_sqlerr(rc);
    }
    store_fold(s, rv == CAIRN_OK);
    if (rv != CAIRN_OK && !sqlite3_get_autocommit(s->wdb)) {
        (void)cairni_store_step_done(s->ws[WS_ROLLBACK_TO]);
        (void)cairni_store_step_done(s->ws[WS_RELEASE]);
    }
    return rv;
}

static void
store_observe(cairni_store *s, size_t n)
{
    size_t i = 0;
    while (i < STORE_HIST_BUCKETS && n > ((size_t)1 << i)) {
        i++;
    }
    atomic_fetch_add(&s->hist[i], 1);
    atomic_fetch_add(&s->hist_sum, n);
    atomic_fetch_add(&s->hist_count, 1);
}

/* After a commit: publish counters and new rows. */
static void
store_committed(cairni_store *s, size_t nreq)
{
    store_publish(s, true);
    if (nreq > 0) {
        store_observe(s, nreq);
    }
    if (s->inserted || s->evicted) {
        pthread_mutex_lock(&s->emu);
        if (s->inserted) {
            atomic_fetch_add(&s->rows_gen, 1);
        }
        if (s->evicted) {
            atomic_fetch_add(&s->evict_gen, 1);
        }
        pthread_cond_broadcast(&s->ecv);
        pthread_mutex_unlock(&s->emu);
    }
}

/* The sweeps, in a savepoint; their failure is not the batch's.  Runs
 * first, so that if an error made SQLite drop the whole transaction,
 * a new one starts with nothing lost. */
static cairn_err
store_maint(cairni_store *s)
{
    cairn_err rv =
        cairni_store_sqlerr(cairni_store_step_done(s->ws[WS_SAVEPOINT]));
    if (rv == CAIRN_OK) {
        rv = cairni_outbox_sweep(s, cairni_store_now_ms());
    }
    if (rv == CAIRN_OK) {
        rv = cairni_store_sqlerr(cairni_store_step_done(s->ws[WS_RELEASE]));
    }
    store_fold(s, rv == CAIRN_OK);
    if (rv != CAIRN_OK && !sqlite3_get_autocommit(s->wdb)) {
        (void)cairni_store_step_done(s->ws[WS_ROLLBACK_TO]);
        (void)cairni_store_step_done(s->ws[WS_RELEASE]);
    }
    return sqlite3_get_autocommit(s->wdb) ? store_begin(s) : CAIRN_OK;
}

/* Runs one batch; false if it failed as a whole. */
static bool
store_run_batch(cairni_store *s, store_req *head, bool maint)
{
    size_t    nreq = 0;
    cairn_err rv = store_begin(s);
    s->inserted = s->evicted = false;
    if (rv == CAIRN_OK && maint) {
        rv = store_maint(s);
    }
    if (rv == CAIRN_OK && s->nwacks > 0) {
        rv = cairni_outbox_flush_acks(s, s->wacks, s->nwacks);
        store_fold(s, rv == CAIRN_OK);
    }
    for (store_req *r = head; r != NULL && rv == CAIRN_OK;
         r = r->next, nreq++) {
        r->rv = store_run_req(s, r);
        if (r->rv != CAIRN_OK && sqlite3_get_autocommit(s->wdb)) {
            rv = r->rv; /* SQLite rolled the whole transaction back */
        }
    }
    if (rv == CAIRN_OK) {
        rv = sqlite3_get_autocommit(s->wdb) ? CAIRN_EINTERNAL : store_commit(s);
    }
    if (rv != CAIRN_OK) {
        goto fail;
    }
    store_committed(s, nreq);
    return true;
fail:
    if (!sqlite3_get_autocommit(s->wdb)) {
        (void)cairni_store_step_done(s->ws[WS_ROLLBACK]);
    }
    store_fold(s, false);
    store_publish(s, false);
    for (store_req *r = head; r != NULL; r = r->next) {
        if (r->rv == CAIRN_OK) {
            r->rv = rv;
        }
    }
    return false;
}

/* Under wmu: moves pending acks to the writer's list; what does not fit
 * stays pending. */
static void
store_take_acks(cairni_store *s)
{
    size_t need = s->nwacks + s->nacks;
    if (need > s->wacks_cap) {
        store_ack *a = cairni_store_realloc(s->wacks, need * sizeof(*a));
        if (a != NULL) {
            s->wacks = a;
            s->wacks_cap = need;
        }
    }
    size_t n = s->wacks_cap - s->nwacks;
    n = n < s->nacks ? n : s->nacks;
    if (n > 0) {
        memcpy(s->wacks + s->nwacks, s->acks, n * sizeof(*s->acks));
        memmove(s->acks, s->acks + n, (s->nacks - n) * sizeof(*s->acks));
    }
    s->nwacks += n;
    s->nacks -= n;
}

/* Under wmu: takes up to STORE_BATCH_MAX queued requests. */
static store_req *
store_take_reqs(cairni_store *s, bool *maint, size_t *n)
{
    *n = 0;
    store_req *head = s->qhead, *last = head;
    if (head == NULL) {
        return NULL;
    }
    for (size_t i = 1; i < STORE_BATCH_MAX && last->next != NULL; i++) {
        last = last->next;
    }
    s->qhead = last->next;
    s->qtail = s->qhead != NULL ? s->qtail : NULL;
    last->next = NULL;
    for (store_req *r = head; r != NULL; r = r->next) {
        *maint = *maint || r->kind == STORE_REQ_MAINT;
        s->qlen--;
        (*n)++;
    }
    return head;
}

/* Under wmu: is there anything to do now?  Else *wake_ms says when. */
static bool
store_has_work(cairni_store *s, uint64_t now, bool *maint, uint64_t *wake_ms)
{
    size_t   pending = s->nacks + s->nwacks;
    uint64_t ack_at = s->ack_first_ms + STORE_ACK_DELAY_MS;
    if (s->stop || pending >= STORE_ACK_GROUP) {
        ack_at = 0;
    }
    ack_at = ack_at > s->retry_at_ms ? ack_at : s->retry_at_ms;
    *maint = now >= s->maint_at_ms;
    *wake_ms = s->maint_at_ms;
    if (pending > 0 && ack_at < *wake_ms) {
        *wake_ms = ack_at;
    }
    return s->qhead != NULL || *maint || (pending > 0 && now >= ack_at);
}

/* Under wmu, after a batch: settle the acks.  The callers are woken by
 * store_wake. */
static void
store_settle(cairni_store *s, size_t nreq, bool ok, uint64_t now)
{
    if (ok && s->nwacks > 0) {
        atomic_store(&s->ack_done, s->wacks[s->nwacks - 1].ticket);
        s->nwacks = 0;
        pthread_cond_broadcast(&s->acv);
    } else if (!ok && s->nwacks > 0) {
        s->retry_at_ms = now + 100;
        if (s->stop && nreq == 0) {
            s->nwacks = 0; /* closing and still failing: give them up */
            s->nacks = 0;
        }
    }
    if (s->nacks > 0) {
        s->ack_first_ms = now;
    }
}

/* Wakes the callers of a batch, without holding s->wmu (they come
 * straight back to queue their next request).  No request may be touched
 * after its post: it vanishes as soon as its caller returns. */
static void
store_wake(store_req *head)
{
    while (head != NULL) {
        store_req *next = head->next;
        sem_post(&head->done);
        head = next;
    }
}

/* Under wmu: the callers just answered usually come straight back with
 * their next request.  While the queue holds fewer requests than the last
 * batch had, wait a little (at most half a commit) for them, so that
 * synchronous producers share commits instead of alternating halves. */
static void
store_gather(cairni_store *s)
{
    if (s->qlen == 0 || s->qlen >= s->want || s->stop) {
        return;
    }
    uint64_t until = cairni_mono_us() + s->gather_us;
    s->gathering = true;
    while (s->qlen < s->want && !s->stop && cairni_mono_us() < until) {
        cairni_store_cond_wait_us(&s->wcv, &s->wmu, until);
    }
    s->gathering = false;
}

void *
cairni_store_writer_main(void *arg)
{
    cairni_store *s = arg;
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        bool     maint;
        uint64_t wake, now = cairni_mono_ms();
        if (!store_has_work(s, now, &maint, &wake)) {
            if (s->stop) {
                break;
            }
            cairni_store_cond_wait_ms(&s->wcv, &s->wmu, wake);
            continue;
        }
        store_gather(s);
        size_t     nreq;
        store_req *head = store_take_reqs(s, &maint, &nreq);
        store_take_acks(s);
        if (maint) {
            s->maint_at_ms = now + STORE_MAINT_MS;
        }
        pthread_mutex_unlock(&s->wmu);
        uint64_t t0 = cairni_mono_us();
        bool     ok = store_run_batch(s, head, maint);
        uint64_t us = cairni_mono_us() - t0;
        if (maint) {
            (void)sqlite3_wal_checkpoint_v2(
                s->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        }
        store_wake(head);
        pthread_mutex_lock(&s->wmu);
        store_settle(s, nreq, ok, cairni_mono_ms());
        if (nreq > 0) { /* ack-only batches say nothing about callers */
            s->want = nreq;
            s->gather_us =
                us / 2 < STORE_GATHER_MAX_US ? us / 2 : STORE_GATHER_MAX_US;
        }
    }
    pthread_mutex_unlock(&s->wmu);
    return NULL;
}

/* ---- hooks --------------------------------------------------------------- */

static cairn_err
store_simple(cairni_store *s, int kind, const char *sql)
{
    store_req req = {.kind = kind};
    req.u.sql = sql;
    return cairni_store_submit(s, &req);
}

cairn_err
cairni_store_test_exec(cairni_store *s, const char *sql)
{
    return store_simple(s, STORE_REQ_EXEC, sql);
}

cairn_err
cairni_store_maintain(cairni_store *s)
{
    return store_simple(s, STORE_REQ_MAINT, NULL);
}

cairn_err
cairni_store_flush(cairni_store *s)
{
    return store_simple(s, STORE_REQ_FLUSH, NULL);
}
