/*
 * test_store_once.c - cairni_outbox_put_once, the store's half of
 * host->publish_once: a bridge's message id and the message's outbox
 * records commit in one transaction, or neither does.
 *
 * What must hold: after OK the id and a record in every destination are
 * there (also after reopening the store); a duplicate id adds nothing and
 * says CAIRN_EEXIST, even when the two copies meet in one group commit;
 * a failure (a full destination under `reject`, a record too big for one
 * of them) leaves no id behind, so the redelivery is processed once there
 * is room; a put to no destination records just the id.  The inbox is
 * read back through a connection of the test's own.
 */
#include <pthread.h>
#include <sqlite3.h>

#include "store_test.h"

typedef struct tfix {
    tdb           db;
    cairni_store *s;
} tfix;

static int
setup(void **state)
{
    tfix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    tdb_init(&f->db);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    tfix *f = *state;
    if (f->s != NULL) {
        cairni_store_close(f->s);
    }
    tdb_fini(&f->db);
    free(f);
    return 0;
}

/* Ids of consumer in the inbox, as committed. */
static long
inbox_count(const char *path, const char *consumer)
{
    sqlite3      *db = NULL;
    sqlite3_stmt *st = NULL;
    long          v = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM inbox WHERE consumer = ?1",
                           -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, consumer, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = (long)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static const cairni_put_to two[] = {{"a", CAIRNI_PRIO_NORMAL},
                                    {"b", CAIRNI_PRIO_HIGH}};

static void
test_once_together(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[64];
    cairn_envelope    e = tenv("cmd/x", NULL, 1, buf, sizeof(buf));
    f->s = topen(&o);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2), CAIRN_OK);
    assert_int_equal(tstats(f->s, "a").depth, 1);
    assert_int_equal(tstats(f->s, "b").depth, 1);
    assert_int_equal(inbox_count(f->db.path, "br"), 1);

    /* The redelivery: nothing more anywhere. */
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2),
                     CAIRN_EEXIST);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 1),
                     CAIRN_EEXIST);
    assert_int_equal(tstats(f->s, "a").depth, 1);
    assert_int_equal(tstats(f->s, "b").depth, 1);
    assert_int_equal(tstats(f->s, "a").enqueued, 1);
    assert_int_equal(inbox_count(f->db.path, "br"), 1);

    /* Another consumer has not seen it. */
    assert_int_equal(cairni_outbox_put_once(f->s, "other", &e, two, 1),
                     CAIRN_OK);
    assert_int_equal(tstats(f->s, "a").depth, 2);

    /* Committed: a reopened store still knows the id and has the rows,
     * with the envelope's id and the route's priority. */
    cairni_store_close(f->s);
    f->s = topen(&o);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2),
                     CAIRN_EEXIST);
    cairni_drain *d = NULL;
    cairn_record  rec;
    assert_int_equal(cairni_drain_open(f->s, "b", &d), CAIRN_OK);
    assert_int_equal(tnext(d, &rec, 1, 1), 1);
    assert_memory_equal(rec.env.id, e.id, CAIRN_ID_LEN);
    assert_int_equal(rec.prio, CAIRNI_PRIO_HIGH);
    assert_int_equal(tnum(&rec, NULL), 1);
    cairni_record_fini(&rec);
    cairni_drain_close(d);
}

/* A destination full under `reject`: neither the id nor the other
 * destination's copy stays; once there is room the same id goes in. */
static void
test_once_full(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairni_dest_cfg   lim[] = {{.name = "b",
                                .max_messages = 1,
                                .on_full = CAIRNI_FULL_REJECT,
                                .window = 10}};
    char              buf[64];
    cairn_envelope    e = tenv("cmd/x", NULL, 2, buf, sizeof(buf));
    cairni_drain     *d = NULL;
    cairn_record      rec;
    o.dests = lim;
    o.ndests = 1;
    f->s = topen(&o);
    tput(f->s, "b", "k", 0, 0); /* b is full now */
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2),
                     CAIRN_EFULL);
    assert_int_equal(tstats(f->s, "a").depth, 0);
    assert_int_equal(tstats(f->s, "a").enqueued, 0);
    assert_int_equal(tstats(f->s, "b").depth, 1);
    assert_int_equal(tstats(f->s, "b").rejected, 1);
    assert_int_equal(inbox_count(f->db.path, "br"), 0);

    /* b drains; the redelivery is processed now, once. */
    assert_int_equal(cairni_drain_open(f->s, "b", &d), CAIRN_OK);
    assert_int_equal(tnext(d, &rec, 1, 1), 1);
    assert_int_equal(cairni_drain_ack(d, rec.seq), CAIRN_OK);
    cairni_record_fini(&rec);
    assert_int_equal(cairni_store_flush(f->s), CAIRN_OK);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2), CAIRN_OK);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2),
                     CAIRN_EEXIST);
    assert_int_equal(tstats(f->s, "a").depth, 1);
    assert_int_equal(tstats(f->s, "b").depth, 1);
    assert_int_equal(inbox_count(f->db.path, "br"), 1);
    cairni_drain_close(d);
}

/* Too big for one destination: refused before anything is queued. */
static void
test_once_too_big(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    cairni_dest_cfg   lim[] = {{.name = "b", .max_bytes = 16, .window = 10}};
    char              buf[64];
    cairn_envelope    e = tenv("cmd/x", NULL, 3, buf, sizeof(buf));
    o.dests = lim;
    o.ndests = 1;
    f->s = topen(&o);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 2),
                     CAIRN_ETOOBIG);
    assert_int_equal(tstats(f->s, "a").depth, 0);
    assert_int_equal(inbox_count(f->db.path, "br"), 0);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 1), CAIRN_OK);
    assert_int_equal(inbox_count(f->db.path, "br"), 1);
}

/* No destination (a topic without a durable route): just the id. */
static void
test_once_no_route(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[64];
    cairn_envelope    e = tenv("cmd/x", NULL, 4, buf, sizeof(buf));
    f->s = topen(&o);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, NULL, 0), CAIRN_OK);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, NULL, 0),
                     CAIRN_EEXIST);
    assert_int_equal(inbox_count(f->db.path, "br"), 1);
    /* The id was accepted: with a route now, it is still a duplicate. */
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 1),
                     CAIRN_EEXIST);
    assert_int_equal(tstats(f->s, "a").depth, 0);
}

static void
test_once_bad_args(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    char              buf[64];
    cairn_envelope    e = tenv("cmd/x", NULL, 5, buf, sizeof(buf));
    cairni_put_to     dup[] = {{"a", 0}, {"a", 0}};
    cairni_put_to     prio[] = {{"a", 7}};
    cairni_put_to     noname[] = {{"", 0}};
    f->s = topen(&o);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, dup, 2),
                     CAIRN_EINVAL);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, prio, 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, noname, 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairni_outbox_put_once(f->s, NULL, &e, two, 1),
                     CAIRN_EINVAL);
    memset(e.id, 0, sizeof(e.id));
    assert_int_equal(cairni_outbox_put_once(f->s, "br", &e, two, 1),
                     CAIRN_EINVAL);
    assert_int_equal(inbox_count(f->db.path, "br"), 0);
    assert_int_equal(tstats(f->s, "a").depth, 0);
}

/* Racing redeliveries: THREADS threads put the same ONCE_IDS ids at once,
 * so copies of one id meet in one group commit.  Each id is OK exactly
 * once and stored exactly once. */
#define THREADS 4
#define ONCE_IDS 200

typedef struct race {
    cairni_store *s;
    uint8_t (*ids)[CAIRN_ID_LEN];
    int ok, dup, other;
} race;

static void *
race_main(void *arg)
{
    race *r = arg;
    char  buf[64];
    for (int i = 0; i < ONCE_IDS; i++) {
        cairn_envelope e = tenv("cmd/x", NULL, i, buf, sizeof(buf));
        memcpy(e.id, r->ids[i], CAIRN_ID_LEN);
        cairn_err rv = cairni_outbox_put_once(r->s, "br", &e, two, 2);
        r->ok += rv == CAIRN_OK;
        r->dup += rv == CAIRN_EEXIST;
        r->other += rv != CAIRN_OK && rv != CAIRN_EEXIST;
    }
    return NULL;
}

static void
test_once_race(void **state)
{
    tfix             *f = *state;
    cairni_store_opts o = topts(f->db.path);
    uint8_t           ids[ONCE_IDS][CAIRN_ID_LEN];
    race              r[THREADS];
    pthread_t         th[THREADS];
    int               ok = 0, dup = 0;
    f->s = topen(&o);
    for (int i = 0; i < ONCE_IDS; i++) {
        cairn_id_new(ids[i]);
    }
    for (int t = 0; t < THREADS; t++) {
        r[t] = (race){.s = f->s, .ids = ids};
        assert_int_equal(pthread_create(&th[t], NULL, race_main, &r[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(r[t].other, 0);
        ok += r[t].ok;
        dup += r[t].dup;
    }
    assert_int_equal(ok, ONCE_IDS);
    assert_int_equal(dup, (THREADS - 1) * ONCE_IDS);
    assert_int_equal(tstats(f->s, "a").depth, ONCE_IDS);
    assert_int_equal(tstats(f->s, "b").depth, ONCE_IDS);
    assert_int_equal(inbox_count(f->db.path, "br"), ONCE_IDS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_once_together), T(test_once_full),     T(test_once_too_big),
        T(test_once_no_route), T(test_once_bad_args), T(test_once_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
