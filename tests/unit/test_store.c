/*
 * test_store.c - the outbox: order per key with several keys in flight,
 * order kept across a nack and a reset, acked records never handed out
 * again (even while their delete cannot commit), priorities, limits
 * under `reject` and `drop_oldest`, oversized records, TTL expiry,
 * retries up to max_attempts, dead letters (list, replay, purge), a
 * restart on the same file, group commit under four producers, a full
 * disk, and a database newer than the code.
 *
 * Every wait is on the API with a deadline (store_test.h); backoff
 * delays are a few milliseconds so retries come back quickly.
 */
#include <pthread.h>
#include <sqlite3.h>

#include "store_test.h"

typedef struct tfix {
    tdb           db;
    cairni_store *s;
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
    cairni_store_close(f->s);
    tdb_fini(&f->db);
    free(f);
    return 0;
}

static void
ack_all(cairni_drain *d, cairn_record *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cairni_drain_ack(d, recs[i].seq), CAIRN_OK);
        cairni_record_fini(&recs[i]);
    }
}

static void
test_order_per_key(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[60];
    char              key[16];
    int               last[3] = {-1, -1, -1};
    f->s = topen(&o);
    for (int i = 0; i < 20; i++) {
        tput(f->s, "d", "k0", i, 0);
        tput(f->s, "d", "k1", i, 0);
        tput(f->s, "d", "k2", i, 0);
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    size_t got = 0;
    while (got < 60) { /* four at a time, acking as they come */
        size_t n = tnext(d, recs + got, got + 4 <= 60 ? 4 : 60 - got, 1);
        assert_true(n > 0);
        got += n;
    }
    for (size_t i = 0; i < got; i++) {
        int n = tnum(&recs[i], key);
        assert_true(n > last[key[1] - '0']);
        last[key[1] - '0'] = n;
        assert_true(i == 0 || recs[i].seq > recs[i - 1].seq);
    }
    ack_all(d, recs, got);
    cairni_drain_close(d);
    assert_int_equal(tstats(f->s, "d").depth, 0);
    assert_int_equal(tstats(f->s, "d").acked, 60);
}

static void
test_nack_keeps_order(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[16];
    char              key[16];
    f->s = topen(&o);
    static const char *const keys[] = {"A", "B", "A", "B", "A", "B", "A", "A"};
    static const int         nums[] = {0, 0, 1, 1, 2, 2, 3, 4};
    for (int i = 0; i < 8; i++) {
        tput(f->s, "d", keys[i], nums[i], 0);
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 16, 8), 8);
    /* A1 fails: A2..A4, in flight behind it, are taken back */
    assert_int_equal(tnum(&recs[2], key), 1);
    assert_int_equal(cairni_drain_nack(d, recs[2].seq, false, "nope"),
                     CAIRN_OK);
    assert_int_equal(tstats(f->s, "d").inflight, 4);
    for (size_t i = 0; i < 8; i++) {
        tnum(&recs[i], key);
        if (key[0] == 'B' || i == 0) {
            assert_int_equal(cairni_drain_ack(d, recs[i].seq), CAIRN_OK);
        }
        cairni_record_fini(&recs[i]);
    }
    assert_int_equal(tnext(d, recs, 16, 4), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tnum(&recs[i], key), i + 1);
        assert_string_equal(key, "A");
        assert_int_equal(recs[i].attempt, i == 0 ? 1 : 0);
        assert_int_equal(recs[i].env.attempt, recs[i].attempt);
    }
    ack_all(d, recs, 4);
    cairni_drain_close(d);
    cairni_dest_stats st = tstats(f->s, "d");
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.retried, 1);
}

/* Holds SQLite's write lock from outside, so the writer cannot commit. */
static sqlite3 *
hold_write_lock(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, T_WAIT_MS);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static void
test_reset_and_acked(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[16];
    f->s = topen(&o);
    for (int i = 0; i < 10; i++) {
        tput(f->s, "d", i % 2 ? "k1" : "k0", i, 0);
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 6, 6), 6);
    sqlite3 *lock = hold_write_lock(f->db.path); /* acks cannot commit */
    assert_int_equal(cairni_drain_ack(d, recs[0].seq), CAIRN_OK);
    assert_int_equal(cairni_drain_ack(d, recs[2].seq), CAIRN_OK);
    for (int i = 0; i < 6; i++) {
        cairni_record_fini(&recs[i]);
    }
    cairni_drain_reset(d);
    assert_int_equal(tstats(f->s, "d").inflight, 0);
    assert_int_equal(tnext(d, recs, 16, 8), 8);
    static const int want[] = {1, 3, 4, 5, 6, 7, 8, 9};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(tnum(&recs[i], NULL), want[i]);
        assert_int_equal(recs[i].attempt, 0);
    }
    size_t n = 0;
    assert_int_equal(cairni_drain_next(d, recs + 8, 8, 0, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(lock);
    ack_all(d, recs, 8);
    cairni_drain_close(d);
    assert_int_equal(tstats(f->s, "d").depth, 0);
}

static void
test_priority(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[8];
    char              key[16];
    f->s = topen(&o);
    for (int i = 0; i < 3; i++) {
        tput(f->s, "d", "n", i, CAIRNI_PRIO_NORMAL);
    }
    for (int i = 0; i < 3; i++) {
        tput(f->s, "d", "h", i, CAIRNI_PRIO_HIGH);
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 8, 6), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tnum(&recs[i], key), i % 3);
        assert_string_equal(key, i < 3 ? "h" : "n");
        assert_int_equal(recs[i].prio, i < 3 ? 1 : 0);
    }
    ack_all(d, recs, 6);
    cairni_drain_close(d);
}

static size_t
rec_size(const char *key)
{
    char           buf[64];
    cairn_envelope e = tenv("t/x", key, 0, buf, sizeof(buf));
    return cairn_envelope_encoded_size(&e) + strlen(key);
}

static void
test_reject(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[64];
    size_t            sz = rec_size("k");
    cairni_dest_cfg   dests[] = {
          {.name = "n", .max_messages = 3, .on_full = CAIRNI_FULL_REJECT},
          {.name = "b",
           .max_bytes = 3 * sz + sz / 2,
           .on_full = CAIRNI_FULL_REJECT},
    };
    o.dests = dests;
    o.ndests = 2;
    f->s = topen(&o);
    for (int t = 0; t < 2; t++) {
        const char *dest = t == 0 ? "n" : "b";
        for (int i = 0; i < 3; i++) {
            tput(f->s, dest, "k", i, 0);
        }
        cairn_envelope e = tenv("t/x", "k", 3, buf, sizeof(buf));
        assert_int_equal(cairni_outbox_put(f->s, dest, &e, 0), CAIRN_EFULL);
        cairni_dest_stats st = tstats(f->s, dest);
        assert_int_equal(st.depth, 3);
        assert_int_equal(st.bytes, 3 * sz);
        assert_int_equal(st.rejected, 1);
        assert_int_equal(st.enqueued, 3);
    }
}

static void
test_drop_oldest(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[8];
    char              key[16];
    size_t            sz = rec_size("h");
    cairni_dest_cfg   dests[] = {
          {.name = "n", .max_messages = 3, .on_full = CAIRNI_FULL_DROP_OLDEST},
          {.name = "b",
           .max_bytes = 2 * sz + sz / 2,
           .on_full = CAIRNI_FULL_DROP_OLDEST},
    };
    o.dests = dests;
    o.ndests = 2;
    f->s = topen(&o);
    tput(f->s, "n", "h", 0, CAIRNI_PRIO_HIGH);
    for (int i = 1; i <= 5; i++) { /* drops n1, n2, n3: normal first */
        tput(f->s, "n", "n", i, CAIRNI_PRIO_NORMAL);
    }
    cairni_dest_stats st = tstats(f->s, "n");
    assert_int_equal(st.depth, 3);
    assert_int_equal(st.dropped, 3);
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "n", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 8, 3), 3);
    static const int want[] = {0, 4, 5};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tnum(&recs[i], key), want[i]);
    }
    ack_all(d, recs, 3);
    cairni_drain_close(d);

    for (int i = 0; i < 4; i++) {
        tput(f->s, "b", "h", i, 0);
    }
    st = tstats(f->s, "b");
    assert_int_equal(st.depth, 2);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(cairni_drain_open(f->s, "b", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 8, 2), 2);
    assert_int_equal(tnum(&recs[0], NULL), 2);
    assert_int_equal(tnum(&recs[1], NULL), 3);
    ack_all(d, recs, 2);
    cairni_drain_close(d);
}

static void
test_too_big(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[4][64], big[400];
    size_t            sz = rec_size("k");
    cairni_dest_cfg   dests[] = {
          {.name = "s", .max_bytes = sz + sz / 2, .max_messages = 2}};
    o.dests = dests;
    o.ndests = 1;
    f->s = topen(&o);
    cairn_envelope e = tenv("t/x", "k", 0, buf[0], sizeof(buf[0]));
    memset(big, 'x', sizeof(big));
    e.payload.ptr = (const uint8_t *)big;
    e.payload.len = sizeof(big);
    assert_int_equal(cairni_outbox_put(f->s, "s", &e, 0), CAIRN_ETOOBIG);
    cairn_envelope two[3];
    for (int i = 0; i < 3; i++) {
        two[i] = tenv("t/x", "k", i, buf[i], sizeof(buf[i]));
    }
    assert_int_equal(cairni_outbox_put_many(f->s, "s", two, 2, 0),
                     CAIRN_ETOOBIG); /* bytes */
    assert_int_equal(cairni_outbox_put_many(f->s, "s", two, 3, 0),
                     CAIRN_ETOOBIG); /* count */
    assert_int_equal(cairni_outbox_put_many(f->s, "s", two, 1, 0), CAIRN_OK);
    cairni_dest_stats st = tstats(f->s, "s");
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.rejected, 3);
}

static void
test_ttl(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[4];
    size_t            n = 9;
    cairni_dest_cfg   dests[] = {{.name = "t", .ttl_ms = 1, .window = 8}};
    o.dests = dests;
    o.ndests = 1;
    f->s = topen(&o);
    for (int i = 0; i < 3; i++) {
        tput(f->s, "t", "k", i, 0);
    }
    uint64_t t0 = cairn_now_ms(); /* every record expires by t0 + 1 */
    while (cairn_now_ms() < t0 + 3) {
        /* let that millisecond pass */
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "t", &d), CAIRN_OK);
    assert_int_equal(cairni_drain_next(d, recs, 4, 20, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cairni_store_maintain(f->s), CAIRN_OK);
    cairni_dest_stats st = tstats(f->s, "t");
    assert_int_equal(st.expired, 3);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.bytes, 0);
    cairni_drain_close(d);
}

static void
test_max_attempts(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      r;
    char              err[32], id[37];
    cairni_buf        out = {0};
    o.retry.max_attempts = 3;
    f->s = topen(&o);
    tput(f->s, "d", "k", 0, 0);
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(tnext(d, &r, 1, 1), 1);
        assert_int_equal(r.attempt, i);
        snprintf(err, sizeof(err), "boom %u", i);
        assert_int_equal(cairni_drain_nack(d, r.seq, false, err), CAIRN_OK);
        cairn_id_format(r.env.id, id);
        cairni_record_fini(&r);
    }
    size_t n = 9;
    assert_int_equal(cairni_drain_next(d, &r, 1, 20, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    cairni_dest_stats st = tstats(f->s, "d");
    assert_int_equal(st.retried, 2);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.dead_depth, 1);
    assert_int_equal(cairni_dlq_list(f->s, 10, &out), CAIRN_OK);
    assert_non_null(strstr(out.data, id));
    assert_non_null(strstr(out.data, " d 3 "));
    assert_non_null(strstr(out.data, "boom 2"));
    cairni_buf_fini(&out);
    cairni_drain_close(d);
}

static void
test_dead_letters(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[4], r;
    char              id[37];
    cairni_buf        out = {0};
    size_t            n;
    f->s = topen(&o);
    for (int i = 0; i < 3; i++) {
        tput(f->s, "d", i == 0 ? "a" : i == 1 ? "b" : "c", i, 0);
    }
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 4, 3), 3);
    uint64_t first_seq = recs[0].seq;
    cairn_id_format(recs[0].env.id, id);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cairni_drain_nack(d, recs[i].seq, true, "bad"),
                         CAIRN_OK);
        cairni_record_fini(&recs[i]);
    }
    assert_int_equal(cairni_dlq_list(f->s, 0, &out), CAIRN_OK);
    assert_non_null(strstr(out.data, id));
    assert_non_null(strstr(out.data, " d 1 "));
    assert_int_equal(tstats(f->s, "d").dead, 3);

    assert_int_equal(cairni_dlq_replay(f->s, "not-an-id", false, &n),
                     CAIRN_EINVAL);
    assert_int_equal(cairni_dlq_replay(f->s,
                                       "00000000-0000-7000-8000-"
                                       "000000000000",
                                       false, &n),
                     CAIRN_ENOENT);
    assert_int_equal(cairni_dlq_replay(f->s, id, false, &n), CAIRN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tnext(d, &r, 1, 1), 1);
    assert_int_equal(tnum(&r, NULL), 0);
    assert_int_equal(r.attempt, 0);
    assert_true(r.seq > first_seq);
    ack_all(d, &r, 1);

    assert_int_equal(cairni_dlq_replay(f->s, NULL, true, &n), CAIRN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(tnext(d, recs, 4, 2), 2);
    assert_int_equal(tnum(&recs[0], NULL), 1);
    assert_int_equal(cairni_drain_nack(d, recs[0].seq, true, "x"), CAIRN_OK);
    cairni_record_fini(&recs[0]);
    ack_all(d, recs + 1, 1);
    assert_int_equal(cairni_dlq_purge(f->s, &n), CAIRN_OK);
    assert_int_equal(n, 1);
    cairni_drain_close(d);
    cairni_dest_stats st = tstats(f->s, "d");
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.dead_depth, 0);
    assert_int_equal(st.dead_bytes, 0);
    cairni_buf_fini(&out);
}

static void
test_restart(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      recs[16];
    char              key[16];
    f->s = topen(&o);
    tput(f->s, "d", "A", 0, 0);
    tput(f->s, "d", "B", 0, 0);
    tput(f->s, "d", "A", 1, 0);
    tput(f->s, "d", "B", 1, 0);
    tput(f->s, "d", "B", 2, 0);
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 16, 5), 5);
    assert_int_equal(cairni_drain_ack(d, recs[1].seq), CAIRN_OK);
    assert_int_equal(cairni_drain_nack(d, recs[0].seq, false, "later"),
                     CAIRN_OK); /* A1 is taken back */
    uint64_t a0 = recs[0].seq;
    assert_int_equal(cairni_drain_ack(d, recs[3].seq), CAIRN_OK);
    for (int i = 0; i < 5; i++) {
        cairni_record_fini(&recs[i]);
    }
    for (int i = 0; i < 5; i++) {
        tput(f->s, "d", "C", i, 0);
    }
    cairni_drain_close(d);
    cairni_store_close(f->s);
    /* Full jitter may pick any delay; make A0's next try an hour away. */
    sqlite3 *db;
    char     sql[128];
    assert_int_equal(sqlite3_open(f->db.path, &db), SQLITE_OK);
    snprintf(
        sql, sizeof(sql), "UPDATE outbox SET next_at = %llu WHERE seq = %llu",
        (unsigned long long)cairn_now_ms() + 3600000, (unsigned long long)a0);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);

    o.retry.max_ms = 3600000; /* an hour is a plausible retry */
    f->s = topen(&o);         /* same file, a fresh start */
    cairni_dest_stats st = tstats(f->s, "d");
    assert_int_equal(st.depth, 8);
    assert_true(st.next_retry_ms > 3500000);
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 16, 6), 6); /* not A0, not A1 */
    for (int i = 0; i < 6; i++) {
        int n = tnum(&recs[i], key);
        assert_string_equal(key, i == 0 ? "B" : "C");
        assert_int_equal(n, i == 0 ? 2 : i - 1);
        assert_int_equal(recs[i].attempt, 0);
    }
    size_t n = 9;
    assert_int_equal(cairni_drain_next(d, recs + 6, 2, 20, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    ack_all(d, recs, 6);
    cairni_drain_close(d);
    assert_int_equal(tstats(f->s, "d").depth, 2);
}

/* After a restart a later record of a key may wait for its retry while
 * an earlier one goes out; a nack of the earlier one must hold the key
 * behind it and still keep the later one waiting for its own time. */
static void
test_restart_two_waits(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairn_record      r[2];
    sqlite3          *db;
    char              sql[128];
    size_t            n = 9;
    o.retry.max_ms = 3600000;
    f->s = topen(&o);
    tput(f->s, "d", "A", 0, 0);
    tput(f->s, "d", "A", 1, 0);
    cairni_store_close(f->s);
    assert_int_equal(sqlite3_open(f->db.path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE outbox SET next_at = %llu, attempt = 1 WHERE seq = 2",
             (unsigned long long)cairn_now_ms() + 3600000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->s = topen(&o);
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    assert_int_equal(tnext(d, r, 2, 1), 1);
    assert_int_equal(tnum(&r[0], NULL), 0);
    assert_int_equal(cairni_drain_next(d, r + 1, 1, 10, &n), CAIRN_OK);
    assert_int_equal(n, 0); /* A1 waits for its hour */
    assert_int_equal(cairni_drain_nack(d, r[0].seq, false, "again"), CAIRN_OK);
    cairni_record_fini(&r[0]);
    assert_int_equal(tnext(d, r, 2, 1), 1);
    assert_int_equal(tnum(&r[0], NULL), 0);
    assert_int_equal(r[0].attempt, 1);
    assert_int_equal(cairni_drain_next(d, r + 1, 1, 20, &n), CAIRN_OK);
    assert_int_equal(n, 0); /* still: A1's time has not come */
    ack_all(d, r, 1);
    cairni_drain_close(d);
    assert_int_equal(tstats(f->s, "d").depth, 1);
}

typedef struct prod {
    cairni_store *s;
    int           t;
    int           fails;
} prod;

#define PROD_N 250

static void *
prod_main(void *arg)
{
    prod *p = arg;
    char  key[8];
    snprintf(key, sizeof(key), "p%d", p->t);
    for (int i = 0; i < PROD_N; i++) {
        char           buf[64];
        cairn_envelope e = tenv("t/x", key, i, buf, sizeof(buf));
        p->fails += cairni_outbox_put(p->s, "g", &e, 0) != CAIRN_OK;
    }
    return NULL;
}

static void
test_group_commit(void **state)
{
    tfix               *f = *state;
    cairni_store_opts   o = topts(f->db.path);
    static cairn_record recs[4 * PROD_N];
    pthread_t           th[4];
    prod                p[4];
    int                 last[4] = {-1, -1, -1, -1};
    char                key[16];
    o.sync = CAIRNI_SYNC_FULL;
    o.dest_default.window = 4 * PROD_N;
    f->s = topen(&o);
    for (int t = 0; t < 4; t++) {
        p[t] = (prod){.s = f->s, .t = t};
        pthread_create(&th[t], NULL, prod_main, &p[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(p[t].fails, 0);
    }
    uint64_t commits = atomic_load(&f->s->hist_count);
    uint64_t ones = atomic_load(&f->s->hist[0]);
    assert_int_equal(atomic_load(&f->s->hist_sum), 4 * PROD_N);
    assert_true(commits < 4 * PROD_N && ones < commits); /* batches > 1 */
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "g", &d), CAIRN_OK);
    assert_int_equal(tnext(d, recs, 4 * PROD_N, 4 * PROD_N), 4 * PROD_N);
    for (int i = 0; i < 4 * PROD_N; i++) {
        int n = tnum(&recs[i], key);
        int t = key[1] - '0';
        assert_int_equal(n, last[t] + 1); /* each once, in order */
        last[t] = n;
    }
    ack_all(d, recs, 4 * PROD_N);
    cairni_drain_close(d);
    assert_int_equal(tstats(f->s, "g").depth, 0);
}

static void
test_disk_full(void **state)
{
    tfix               *f = *state;
    cairni_store_opts   o = topts(f->db.path);
    static cairn_record recs[256];
    static char         big[3000];
    int                 ok = 0;
    cairn_err           rv = CAIRN_OK;
    f->s = topen(&o);
    for (int i = 0; i < 5; i++) {
        tput(f->s, "d", "k", i, 0);
    }
    assert_int_equal(cairni_store_test_exec(f->s, "PRAGMA max_page_count=1"),
                     CAIRN_OK); /* as big as it is now: no more pages */
    while (ok < 200) {
        cairn_envelope e = tenv("t/x", "k", 5 + ok, big, sizeof(big));
        memset(big + e.payload.len, ' ', sizeof(big) - e.payload.len);
        e.payload.len = sizeof(big); /* "k:n" and padding */
        if ((rv = cairni_outbox_put(f->s, "d", &e, 0)) != CAIRN_OK) {
            break;
        }
        ok++;
    }
    assert_int_equal(rv, CAIRN_EFULL);
    assert_int_equal(tstats(f->s, "d").depth, 5 + ok);
    assert_int_equal(
        cairni_store_test_exec(f->s, "PRAGMA max_page_count=1073741823"),
        CAIRN_OK);
    tput(f->s, "d", "k", 5 + ok, 0);
    cairni_drain *d;
    assert_int_equal(cairni_drain_open(f->s, "d", &d), CAIRN_OK);
    size_t n = tnext(d, recs, 256, (size_t)ok + 6);
    assert_int_equal(n, ok + 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tnum(&recs[i], NULL), (int)i);
    }
    ack_all(d, recs, n);
    cairni_drain_close(d);
}

static void
test_newer_schema(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    sqlite3          *db;
    char              err[256];
    cairni_store     *s2 = NULL;
    f->s = topen(&o);
    cairni_store_close(f->s);
    f->s = NULL;
    assert_int_equal(sqlite3_open(f->db.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(cairni_store_open(&s2, &o, err, sizeof(err)),
                     CAIRN_ENOTSUP);
    assert_null(s2);
    assert_non_null(strstr(err, "newer"));
}

static void
test_busy_and_metrics(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairni_buf        out = {0};
    cairni_drain     *d, *d2;
    f->s = topen(&o);
    tput(f->s, "m", "k", 0, 0);
    tput(f->s, "m", "k", 1, 0);
    assert_int_equal(cairni_drain_open(f->s, "m", &d), CAIRN_OK);
    assert_int_equal(cairni_drain_open(f->s, "m", &d2), CAIRN_EBUSY);
    cairni_drain_close(d);
    assert_int_equal(cairni_drain_open(f->s, "m", &d), CAIRN_OK);
    cairni_drain_close(d);
    cairni_store_render_metrics(f->s, &out);
    assert_non_null(strstr(out.data, "cairn_outbox_depth{dest=\"m\"} 2\n"));
    assert_non_null(
        strstr(out.data, "cairn_outbox_enqueued_total{dest=\"m\"} 2"));
    assert_non_null(
        strstr(out.data, "# TYPE cairn_store_commit_batch histogram"));
    assert_non_null(
        strstr(out.data, "cairn_store_commit_batch_bucket{le=\"+Inf\"} "));
    cairni_buf_fini(&out);
    cairni_store_render_outbox(f->s, &out);
    assert_true(strncmp(out.data, "DEST ", 5) == 0);
    assert_non_null(strstr(out.data, "\nm "));
    cairni_buf_fini(&out);
    cairni_dest_stats st;
    assert_int_equal(cairni_store_stats(f->s, "none", &st), CAIRN_ENOENT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_order_per_key),   T(test_nack_keeps_order),
        T(test_reset_and_acked), T(test_priority),
        T(test_reject),          T(test_drop_oldest),
        T(test_too_big),         T(test_ttl),
        T(test_max_attempts),    T(test_dead_letters),
        T(test_restart),         T(test_restart_two_waits),
        T(test_group_commit),    T(test_disk_full),
        T(test_newer_schema),    T(test_busy_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
