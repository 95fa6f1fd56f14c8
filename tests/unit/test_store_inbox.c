/*
 * test_store_inbox.c - the idempotent inbox and the failing-allocator
 * sweep of the store.
 *
 * Inbox: one message delivered twice has one effect on the key-value
 * state; "not yet" rolls the handler's changes back and brings the
 * message back with its attempt counted; a permanent failure makes a
 * dead letter and leaves the state alone; inbox_accept says EEXIST for a
 * duplicate, and the window sweep forgets old ids.
 *
 * Allocation failures (modelled on libcbor's test_allocator.h): every
 * allocation of the store's own (cairni_store_set_allocs) and of SQLite
 * (SQLITE_CONFIG_MALLOC, installed before SQLite initializes) goes
 * through a counter; arm(n) makes the n-th allocation from now fail.
 * Each sweep raises n until an operation runs with no failure injected;
 * every failing run must return CAIRN_ENOMEM and leave the store as it
 * was (ASan's leak checker runs at exit).
 */
#include <sqlite3.h>

#include "store_test.h"

/* ---- the failing allocator ----------------------------------------------- */

static _Atomic long        fail_countdown; /* > 0: that allocation fails */
static _Atomic long        fail_hits;
static sqlite3_mem_methods fail_orig;

static bool
fail_now(void)
{
    long v = atomic_load(&fail_countdown);
    while (v > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1)) {
            if (v == 1) {
                atomic_fetch_add(&fail_hits, 1);
                return true;
            }
            return false;
        }
    }
    return false;
}

static void *
fail_malloc(size_t n)
{
    return fail_now() ? NULL : malloc(n);
}

static void *
fail_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : realloc(p, n);
}

static void *
fail_sq_malloc(int n)
{
    return fail_now() ? NULL : fail_orig.xMalloc(n);
}

static void *
fail_sq_realloc(void *p, int n)
{
    return fail_now() ? NULL : fail_orig.xRealloc(p, n);
}

static void
arm(long n)
{
    atomic_store(&fail_hits, 0);
    atomic_store(&fail_countdown, n);
}

/* Disarms; true if a failure was injected. */
static bool
disarm(void)
{
    atomic_store(&fail_countdown, 0);
    return atomic_load(&fail_hits) > 0;
}

/* ---- fixtures and handlers ----------------------------------------------- */

typedef struct tfix {
    tdb           db;
    cairni_store *s;
    cairni_drain *d;
} tfix;

static int
fix_setup(void **state)
{
    tfix *f = calloc(1, sizeof(*f));
    tdb_init(&f->db);
    *state = f;
    return 0;
}

static int
fix_teardown(void **state)
{
    tfix *f = *state;
    cairni_drain_close(f->d);
    cairni_store_close(f->s);
    tdb_fini(&f->db);
    free(f);
    return 0;
}

typedef struct hctx {
    int       calls;
    cairn_err verdict[4];
    uint32_t  attempt[4];
} hctx;

/* Adds one to kv "count", then returns the next verdict. */
static cairn_err
count_handler(void *arg, const cairn_envelope *env, cairn_txn *txn)
{
    hctx     *h = arg;
    int64_t   count = 0;
    void     *v;
    size_t    len;
    cairn_err rv = cairni_kv_get(txn, "count", &v, &len);
    if (rv == CAIRN_OK) {
        assert_int_equal(len, sizeof(count));
        memcpy(&count, v, sizeof(count));
        free(v);
    } else if (rv != CAIRN_ENOENT) {
        return rv;
    }
    count++;
    rv = cairni_kv_put(txn, "count", &count, sizeof(count));
    if (rv != CAIRN_OK) {
        return rv;
    }
    h->attempt[h->calls] = env->attempt;
    return h->verdict[h->calls++];
}

/* kv "count" of consumer c, read straight from the file; -1 if absent. */
static int64_t
kv_count(const char *path, const char *c)
{
    sqlite3      *db;
    sqlite3_stmt *st;
    int64_t       v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT value FROM kv WHERE ns = ?1"
                                        " AND key = 'count'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, c, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        memcpy(&v, sqlite3_column_blob(st, 0), sizeof(v));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void
put_env(tfix *f, const cairn_envelope *e)
{
    assert_int_equal(cairni_outbox_put(f->s, "c", e, 0), CAIRN_OK);
}

static void
open_drain(tfix *f)
{
    cairni_store_opts o = topts(f->db.path);
    f->s = topen(&o);
    assert_int_equal(cairni_drain_open(f->s, "c", &f->d), CAIRN_OK);
}

/* ---- inbox --------------------------------------------------------------- */

static void
test_inbox_dedup(void **state)
{
    tfix          *f = *state;
    char           buf[64];
    cairn_record   recs[2];
    hctx           h = {.verdict = {CAIRN_OK, CAIRN_OK}};
    cairn_envelope e = tenv("t/x", "k", 0, buf, sizeof(buf));
    open_drain(f);
    put_env(f, &e);
    put_env(f, &e); /* the same message id, twice */
    assert_int_equal(tnext(f->d, recs, 2, 2), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            cairni_inbox_process(f->d, "c", &recs[i], count_handler, &h),
            CAIRN_OK);
    }
    assert_int_equal(
        cairni_inbox_process(f->d, "c", &recs[0], count_handler, &h),
        CAIRN_ENOENT); /* not in flight any more */
    for (int i = 0; i < 2; i++) {
        cairni_record_fini(&recs[i]);
    }
    assert_int_equal(h.calls, 1);
    assert_int_equal(kv_count(f->db.path, "c"), 1);
    cairni_dest_stats st = tstats(f->s, "c");
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.bytes, 0);
}

static void
test_inbox_not_yet(void **state)
{
    tfix          *f = *state;
    char           buf[64];
    cairn_record   r;
    hctx           h = {.verdict = {CAIRN_EAGAIN, CAIRN_OK}};
    cairn_envelope e = tenv("t/x", "k", 0, buf, sizeof(buf));
    open_drain(f);
    put_env(f, &e);
    assert_int_equal(tnext(f->d, &r, 1, 1), 1);
    assert_int_equal(cairni_inbox_process(f->d, "c", &r, count_handler, &h),
                     CAIRN_EAGAIN);
    cairni_record_fini(&r);
    assert_int_equal(kv_count(f->db.path, "c"), -1); /* rolled back */
    assert_int_equal(tnext(f->d, &r, 1, 1), 1);
    assert_int_equal(r.attempt, 1);
    assert_int_equal(cairni_inbox_process(f->d, "c", &r, count_handler, &h),
                     CAIRN_OK);
    cairni_record_fini(&r);
    assert_int_equal(h.calls, 2);
    assert_int_equal(h.attempt[0], 0);
    assert_int_equal(h.attempt[1], 1);
    assert_int_equal(kv_count(f->db.path, "c"), 1);
    assert_int_equal(tstats(f->s, "c").retried, 1);
}

static void
test_inbox_permanent(void **state)
{
    tfix          *f = *state;
    char           buf[64];
    cairn_record   r;
    cairni_buf     out = {0};
    hctx           h = {.verdict = {CAIRN_EPERM}};
    cairn_envelope e = tenv("t/x", "k", 0, buf, sizeof(buf));
    open_drain(f);
    put_env(f, &e);
    assert_int_equal(tnext(f->d, &r, 1, 1), 1);
    assert_int_equal(cairni_inbox_process(f->d, "c", &r, count_handler, &h),
                     CAIRN_EPERM);
    cairni_record_fini(&r);
    assert_int_equal(kv_count(f->db.path, "c"), -1);
    cairni_dest_stats st = tstats(f->s, "c");
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.depth, 0);
    assert_int_equal(cairni_dlq_list(f->s, 0, &out), CAIRN_OK);
    assert_non_null(strstr(out.data, " c 1 "));
    cairni_buf_fini(&out);
}

static void
test_inbox_accept(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    uint8_t           id[CAIRN_ID_LEN];
    f->s = topen(&o); /* an hour's window */
    cairn_id_new(id);
    assert_int_equal(cairni_inbox_accept(f->s, "c", id), CAIRN_OK);
    assert_int_equal(cairni_inbox_accept(f->s, "c", id), CAIRN_EEXIST);
    assert_int_equal(cairni_inbox_accept(f->s, "other", id), CAIRN_OK);
    cairni_store_close(f->s);
    o.inbox_window_ms = 1; /* the same file, ids kept for 1 ms */
    f->s = topen(&o);
    uint64_t t0 = cairn_now_ms();
    while (cairn_now_ms() < t0 + 3) {
        /* let the window pass */
    }
    assert_int_equal(cairni_store_maintain(f->s), CAIRN_OK);
    assert_int_equal(cairni_inbox_accept(f->s, "c", id), CAIRN_OK);
    assert_int_equal(cairni_inbox_accept(f->s, "c", id), CAIRN_EEXIST);
}

/* ---- kv transactions outside an inbox handler ----------------------------- */

typedef struct kvctx {
    cairni_drain *d;
    int64_t       put;     /* value written to "count" */
    cairn_err     verdict; /* what the function returns */
    int64_t       seen;    /* "count" read back inside the txn */
    cairn_err     nested;  /* result of a kv_txn from inside */
} kvctx;

static cairn_err
kv_fn(cairni_txn *t, void *arg)
{
    kvctx    *k = arg;
    void     *v;
    size_t    len;
    cairn_err rv = cairni_kv_put(t, "count", &k->put, sizeof(k->put));
    if (rv != CAIRN_OK) {
        return rv;
    }
    assert_int_equal(cairni_kv_get(t, "count", &v, &len), CAIRN_OK);
    assert_int_equal(len, sizeof(k->seen));
    memcpy(&k->seen, v, sizeof(k->seen));
    free(v);
    k->nested = cairni_kv_txn(k->d, "c", kv_fn, k);
    return k->verdict;
}

static cairn_err
kv_from_handler(void *arg, const cairn_envelope *env, cairn_txn *txn)
{
    kvctx *k = arg;
    k->nested = cairni_kv_txn(k->d, "c", kv_fn, k);
    return CAIRN_OK;
}

static void
test_kv_txn(void **state)
{
    tfix *f = *state;
    open_drain(f);
    kvctx k = {.d = f->d, .put = 7, .verdict = CAIRN_OK};
    assert_int_equal(cairni_kv_txn(f->d, "c", kv_fn, &k), CAIRN_OK);
    assert_int_equal(k.seen, 7);
    assert_int_equal(k.nested, CAIRN_EBUSY); /* never waits on itself */
    assert_int_equal(kv_count(f->db.path, "c"), 7); /* committed */
    assert_int_equal(kv_count(f->db.path, "other"), -1);

    k.put = 9; /* declined: nothing of it stays */
    k.verdict = CAIRN_EPERM;
    assert_int_equal(cairni_kv_txn(f->d, "c", kv_fn, &k), CAIRN_EPERM);
    assert_int_equal(k.seen, 9);
    assert_int_equal(kv_count(f->db.path, "c"), 7);
    k.verdict = CAIRN_EAGAIN;
    assert_int_equal(cairni_kv_txn(f->d, "c", kv_fn, &k), CAIRN_EAGAIN);
    assert_int_equal(kv_count(f->db.path, "c"), 7);

    /* The inbox handler's state and kv_txn's are the same namespace. */
    char           buf[64];
    cairn_record   r;
    hctx           h = {.verdict = {CAIRN_OK}};
    cairn_envelope e = tenv("t/x", "k", 0, buf, sizeof(buf));
    put_env(f, &e);
    assert_int_equal(tnext(f->d, &r, 1, 1), 1);
    assert_int_equal(cairni_inbox_process(f->d, "c", &r, count_handler, &h),
                     CAIRN_OK);
    cairni_record_fini(&r);
    assert_int_equal(kv_count(f->db.path, "c"), 8);

    /* A kv_txn from inside an inbox handler is refused, not a deadlock. */
    k.nested = CAIRN_OK;
    cairn_envelope e2 = tenv("t/x", "k", 1, buf, sizeof(buf));
    put_env(f, &e2);
    assert_int_equal(tnext(f->d, &r, 1, 1), 1);
    assert_int_equal(cairni_inbox_process(f->d, "c", &r, kv_from_handler, &k),
                     CAIRN_OK);
    cairni_record_fini(&r);
    assert_int_equal(k.nested, CAIRN_EBUSY);
    assert_int_equal(cairni_kv_txn(NULL, "c", kv_fn, &k), CAIRN_EINVAL);
    assert_int_equal(cairni_kv_txn(f->d, "c", NULL, &k), CAIRN_EINVAL);
}

/* ---- allocation failures ------------------------------------------------- */

static void
test_alloc_open(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              err[256];
    long              n;
    /* Every allocation among the first 64, then one in every ~3% of the
     * rest: each try opens a fresh file (migration and quick_check
     * included), which under qemu or ASan costs too much to try all. */
    for (n = 1; n < 100000; n += n < 64 ? 1 : n / 32) {
        tdb_fini(&f->db); /* a fresh file: the migration runs too */
        tdb_init(&f->db);
        o.path = f->db.path;
        cairni_store *s = NULL;
        arm(n);
        cairn_err rv = cairni_store_open(&s, &o, err, sizeof(err));
        bool      failed = disarm();
        if (rv == CAIRN_OK) {
            cairni_store_close(s);
            if (!failed) {
                break;
            }
            continue;
        }
        if (rv != CAIRN_ENOMEM) {
            fail_msg("allocation %ld: %s (%s)", n, cairn_strerror(rv), err);
        }
        assert_null(s);
    }
    assert_true(n > 10 && n < 100000);
}

static void
test_alloc_put(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[64];
    long              ok = 0, n;
    f->s = topen(&o);
    for (n = 1; n < 100000; n++) {
        cairn_envelope e = tenv("t/x", "k", (int)ok, buf, sizeof(buf));
        arm(n);
        cairn_err rv = cairni_outbox_put(f->s, "c", &e, 0);
        bool      failed = disarm();
        if (rv != CAIRN_OK && rv != CAIRN_ENOMEM) {
            fail_msg("allocation %ld: %s", n, cairn_strerror(rv));
        }
        ok += rv == CAIRN_OK;
        if (rv == CAIRN_OK && !failed) {
            break;
        }
    }
    assert_int_equal(tstats(f->s, "c").depth, ok); /* nothing half-done */
    assert_true(n > 1 && ok >= 1);
}

static void
test_alloc_drain(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[3];
    size_t            got;
    long              n;
    f->s = topen(&o);
    for (int i = 0; i < 3; i++) {
        tput(f->s, "c", "k", i, 0);
    }
    for (n = 1;; n++) { /* open */
        arm(n);
        cairn_err rv = cairni_drain_open(f->s, "c", &f->d);
        bool      failed = disarm();
        if (rv == CAIRN_OK && !failed) {
            break;
        }
        assert_int_equal(rv, rv == CAIRN_OK ? CAIRN_OK : CAIRN_ENOMEM);
        cairni_drain_close(rv == CAIRN_OK ? f->d : NULL);
        f->d = NULL;
    }
    for (n = 1;; n++) { /* next, then everything taken back */
        arm(n);
        cairn_err rv = cairni_drain_next(f->d, recs, 3, 0, &got);
        bool      failed = disarm();
        assert_int_equal(rv, rv == CAIRN_OK ? CAIRN_OK : CAIRN_ENOMEM);
        for (size_t i = 0; i < got; i++) {
            cairni_record_fini(&recs[i]);
        }
        cairni_drain_reset(f->d);
        if (rv == CAIRN_OK && got == 3 && !failed) {
            break;
        }
    }
    assert_int_equal(tnext(f->d, recs, 3, 3), 3);
    for (int i = 0; i < 3; i++) { /* ack, until it works */
        cairn_err rv;
        for (n = 1;; n++) {
            arm(n);
            rv = cairni_drain_ack(f->d, recs[i].seq);
            disarm();
            if (rv == CAIRN_OK) {
                break;
            }
            assert_int_equal(rv, CAIRN_ENOMEM);
        }
        assert_int_equal(tnum(&recs[i], NULL), i);
        cairni_record_fini(&recs[i]);
    }
    assert_int_equal(cairni_store_flush(f->s), CAIRN_OK);
    assert_int_equal(tstats(f->s, "c").depth, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int
main(void)
{
    /* Before SQLite initializes: route its allocations through ours. */
    sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fail_orig) != SQLITE_OK) {
        return 1;
    }
    m = fail_orig;
    m.xMalloc = fail_sq_malloc;
    m.xRealloc = fail_sq_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
        return 1;
    }
    cairni_store_set_allocs(fail_malloc, fail_realloc, free);
    const struct CMUnitTest tests[] = {
        T(test_inbox_dedup),  T(test_inbox_not_yet), T(test_inbox_permanent),
        T(test_inbox_accept), T(test_kv_txn),        T(test_alloc_open),
        T(test_alloc_put),
        T(test_alloc_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
