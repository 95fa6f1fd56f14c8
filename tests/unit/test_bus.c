/*
 * test_bus.c - the in-process bus: filter semantics and ordering of
 * publish/subscribe, exact drop accounting for a slow subscriber,
 * batched delivery, work queues (each message exactly once), request/
 * reply with deadlines, and teardown while other threads keep working.
 *
 * Nothing here sleeps to wait for an event: callbacks record what they
 * get under a mutex and signal a condition variable; the test waits on
 * it with a bounded deadline and fails when the deadline passes.  Work
 * done on other threads reports failures through counters that the main
 * thread asserts on (cmocka's asserts are for the main thread only).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cairni.h"

#define WAIT_MS 20000  /* bound on any wait for an event */
#define END UINT64_MAX /* payload of a sentinel message */

#if defined(__SANITIZE_ADDRESS__)
/*
 * NNG 1.5.2 itself now and then leaks a message that is in flight
 * between two inproc sockets when one of them closes: a push0 message
 * on its way to a pull0 socket being closed, a req0 request on its way
 * to a rep0 socket being closed.  Both reproduce with NNG alone (pushers
 * with a zero timeout while pull sockets come and go; a req0 context
 * calling while rep0 sockets come and go).  test_churn does exactly that
 * through the bus, so leaks allocated under its pushing and calling
 * threads are not reported; every other test runs with leak checking,
 * queue pushes and calls included.
 */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:churn_pub_main\nleak:churn_call_main\n";
}
#endif

/* ---- a recording subscriber --------------------------------------------- */

typedef struct col {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    size_t          n;    /* callbacks, sentinels included */
    size_t          ends; /* sentinels seen */
    uint64_t       *seq;  /* payloads other than sentinels, in order */
    char (*topic)[32];
    size_t   nseq;
    size_t   cap;
    bool     gate;   /* callbacks wait while set */
    bool     inside; /* a callback waits at the gate */
    uint8_t  last_id[CAIRN_ID_LEN];
    uint64_t last_ts;
} col;

/* Condition variables time their waits on the monotonic clock, as
 * deadline_in() computes them. */
static void
cv_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void
col_init(col *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    cv_init(&c->cv);
    c->cap = cap;
    c->seq = calloc(cap, sizeof(*c->seq));
    c->topic = calloc(cap, sizeof(*c->topic));
    assert_non_null(c->seq);
    assert_non_null(c->topic);
}

static void
col_fini(col *c)
{
    free(c->seq);
    free(c->topic);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void
col_fn(void *arg, const cairn_envelope *env)
{
    col     *c = arg;
    uint64_t v = env->payload.len == 8 ? get64(env->payload.ptr) : END - 1;

    pthread_mutex_lock(&c->mu);
    while (c->gate) {
        c->inside = true;
        pthread_cond_broadcast(&c->cv);
        pthread_cond_wait(&c->cv, &c->mu);
    }
    c->inside = false;
    if (v == END) {
        c->ends++;
    } else if (c->nseq < c->cap) {
        size_t n = env->topic.len < 31 ? env->topic.len : 31;
        memcpy(c->topic[c->nseq], env->topic.ptr, n);
        c->topic[c->nseq][n] = '\0';
        c->seq[c->nseq++] = v;
    }
    memcpy(c->last_id, env->id, CAIRN_ID_LEN);
    c->last_ts = env->ts;
    c->n++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static struct timespec
deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

enum { UNTIL_N, UNTIL_ENDS, UNTIL_INSIDE };

/* Waits until the condition holds; false when WAIT_MS passed first. */
static bool
col_wait(col *c, int what, size_t n)
{
    struct timespec dl = deadline_in(WAIT_MS);
    bool            ok = false;
    int             rv = 0;

    pthread_mutex_lock(&c->mu);
    while (rv == 0) {
        ok = what == UNTIL_N      ? c->n >= n
             : what == UNTIL_ENDS ? c->ends >= n
                                  : c->inside;
        if (ok) {
            break;
        }
        rv = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void
col_gate(col *c, bool closed)
{
    pthread_mutex_lock(&c->mu);
    c->gate = closed;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static cairn_err
pub(cairni_bus *bus, const char *topic, uint64_t v)
{
    uint8_t        p[8];
    cairn_envelope env;

    put64(p, v);
    cairn_envelope_init(&env);
    env.topic = cairn_str_c(topic);
    env.payload.ptr = p;
    env.payload.len = sizeof(p);
    return cairni_bus_publish(bus, &env);
}

static cairni_bus *
bus_new(uint32_t sub_queue, cairni_metrics *m)
{
    cairni_bus     *bus = NULL;
    cairni_bus_opts opts = {.sub_queue = sub_queue, .metrics = m};

    assert_int_equal(cairni_bus_open(&bus, &opts), CAIRN_OK);
    return bus;
}

static cairni_sub_stats
stats(const cairn_sub *s)
{
    cairni_sub_stats st;
    cairni_sub_get_stats(s, &st);
    return st;
}

/* ---- publish/subscribe -------------------------------------------------- */

static void
test_filters(void **state)
{
    static const char *const filters[] = {"a/+/c", "a/#", "#", "x/y", "a/b/c"};
    static const char *const topics[] = {
        "a/b/c", "a/x/c", "a", "a/b", "b/c", "a/b/c/d", "$SYS/x", "a/b/c/"};
    /* Expected topics per filter, in publish order. */
    static const char *const want[][8] = {
        {"a/b/c", "a/x/c"},
        {"a/b/c", "a/x/c", "a", "a/b", "a/b/c/d", "a/b/c/"},
        {"a/b/c", "a/x/c", "a", "a/b", "b/c", "a/b/c/d", "a/b/c/"},
        {NULL},
        {"a/b/c"},
    };
    cairni_bus *bus = bus_new(0, NULL);
    cairn_sub  *subs[5];
    col         cols[5];
    (void)state;

    for (size_t i = 0; i < 5; i++) {
        col_init(&cols[i], 64);
        assert_int_equal(cairni_bus_subscribe(bus, filters[i], "t", col_fn,
                                              &cols[i], &subs[i]),
                         CAIRN_OK);
    }
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(topics); i++) {
        assert_int_equal(pub(bus, topics[i], i), CAIRN_OK);
    }
    /* Sentinels: every filter matches at least one; delivery is in
     * publish order, so a sentinel seen means all before it arrived. */
    assert_int_equal(pub(bus, "a/end/c", END), CAIRN_OK);
    assert_int_equal(pub(bus, "x/y", END), CAIRN_OK);
    assert_int_equal(pub(bus, "a/b/c", END), CAIRN_OK);
    for (size_t i = 0; i < 5; i++) {
        size_t n = 0;
        assert_true(col_wait(&cols[i], UNTIL_ENDS, 1));
        while (n < 8 && want[i][n] != NULL) {
            n++;
        }
        pthread_mutex_lock(&cols[i].mu);
        assert_int_equal(cols[i].nseq, n);
        for (size_t k = 0; k < n; k++) {
            assert_string_equal(cols[i].topic[k], want[i][k]);
        }
        pthread_mutex_unlock(&cols[i].mu);
    }
    cairni_bus_close(bus);
    for (size_t i = 0; i < 5; i++) {
        col_fini(&cols[i]);
    }
}

static void
test_invalid(void **state)
{
    cairni_bus    *bus = bus_new(0, NULL);
    cairn_sub     *sub = NULL;
    col            c;
    cairn_envelope env;
    (void)state;

    col_init(&c, 4);
    assert_int_equal(pub(bus, "a/+", 1), CAIRN_EINVAL);
    assert_int_equal(pub(bus, "a/#", 1), CAIRN_EINVAL);
    assert_int_equal(pub(bus, "", 1), CAIRN_EINVAL);
    cairn_envelope_init(&env);
    assert_int_equal(cairni_bus_publish(bus, &env), CAIRN_EINVAL);
    assert_int_equal(cairni_bus_subscribe(bus, "a/#/b", "t", col_fn, &c, &sub),
                     CAIRN_EINVAL);
    assert_int_equal(cairni_bus_subscribe(bus, "a+", "t", col_fn, &c, &sub),
                     CAIRN_EINVAL);
    assert_null(sub);
    cairni_bus_close(bus);
    col_fini(&c);
}

/* The bus fills in id and ts when zero, on a copy, and keeps them when
 * set. */
static void
test_id_ts(void **state)
{
    static const uint8_t zero[CAIRN_ID_LEN];
    cairni_bus          *bus = bus_new(0, NULL);
    cairn_sub           *sub;
    cairn_envelope       env;
    col                  c;
    uint64_t             now = cairn_now_ms();
    (void)state;

    col_init(&c, 4);
    assert_int_equal(cairni_bus_subscribe(bus, "#", "t", col_fn, &c, &sub),
                     CAIRN_OK);
    cairn_envelope_init(&env);
    env.topic = cairn_str_c("id/ts");
    assert_int_equal(cairni_bus_publish(bus, &env), CAIRN_OK);
    assert_memory_equal(env.id, zero, CAIRN_ID_LEN); /* env not written */
    assert_int_equal(env.ts, 0);
    assert_true(col_wait(&c, UNTIL_N, 1));
    assert_memory_not_equal(c.last_id, zero, CAIRN_ID_LEN);
    assert_true(c.last_ts >= now && c.last_ts < now + 60000);

    memset(env.id, 0xab, CAIRN_ID_LEN);
    env.ts = 12345;
    assert_int_equal(cairni_bus_publish(bus, &env), CAIRN_OK);
    assert_true(col_wait(&c, UNTIL_N, 2));
    assert_memory_equal(c.last_id, env.id, CAIRN_ID_LEN);
    assert_int_equal(c.last_ts, 12345);
    cairni_bus_close(bus);
    col_fini(&c);
}

static void
test_fanout_order(void **state)
{
    enum { N = 3000, NSUB = 3 };
    cairni_bus *bus = bus_new(2 * N, NULL);
    cairn_sub  *subs[NSUB];
    col         cols[NSUB];
    char        topic[16];
    (void)state;

    for (int i = 0; i < NSUB; i++) {
        col_init(&cols[i], N);
        assert_int_equal(
            cairni_bus_subscribe(bus, "t/#", "t", col_fn, &cols[i], &subs[i]),
            CAIRN_OK);
    }
    for (uint64_t k = 0; k < N; k++) {
        snprintf(topic, sizeof(topic), "t/%u", (unsigned)(k % 3));
        assert_int_equal(pub(bus, topic, k), CAIRN_OK);
    }
    for (int i = 0; i < NSUB; i++) {
        assert_true(col_wait(&cols[i], UNTIL_N, N));
        for (uint64_t k = 0; k < N; k++) {
            assert_int_equal(cols[i].seq[k], k);
        }
        assert_int_equal(stats(subs[i]).dropped, 0);
        assert_int_equal(stats(subs[i]).delivered, N);
    }
    cairni_bus_close(bus);
    for (int i = 0; i < NSUB; i++) {
        col_fini(&cols[i]);
    }
}

typedef struct pubarg {
    cairni_bus      *bus;
    unsigned         id;
    unsigned         n;
    _Atomic unsigned failed;
} pubarg;

static void *
publisher_main(void *arg)
{
    pubarg *p = arg;
    char    topic[16];

    snprintf(topic, sizeof(topic), "m/%u", p->id);
    for (unsigned k = 0; k < p->n; k++) {
        if (pub(p->bus, topic, ((uint64_t)p->id << 32) | k) != CAIRN_OK) {
            atomic_fetch_add(&p->failed, 1);
        }
    }
    return NULL;
}

static void
test_many_publishers(void **state)
{
    enum { NT = 4, PER = 2000 };
    cairni_bus *bus = bus_new(NT * PER, NULL);
    pthread_t   thr[NT];
    pubarg      args[NT];
    cairn_sub  *all, *one;
    col         call, cone;
    uint32_t    next[NT] = {0};
    (void)state;

    col_init(&call, NT * PER);
    col_init(&cone, PER);
    assert_int_equal(cairni_bus_subscribe(bus, "m/#", "t", col_fn, &call, &all),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_subscribe(bus, "m/2", "t", col_fn, &cone, &one),
                     CAIRN_OK);
    for (unsigned i = 0; i < NT; i++) {
        args[i] = (pubarg){.bus = bus, .id = i, .n = PER};
        assert_int_equal(
            pthread_create(&thr[i], NULL, publisher_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < NT; i++) {
        pthread_join(thr[i], NULL);
        assert_int_equal(atomic_load(&args[i].failed), 0);
    }
    assert_true(col_wait(&call, UNTIL_N, NT * PER));
    assert_true(col_wait(&cone, UNTIL_N, PER));
    /* Each publisher's messages arrive complete and in its order. */
    for (size_t k = 0; k < NT * PER; k++) {
        unsigned t = (unsigned)(call.seq[k] >> 32);
        assert_true(t < NT);
        assert_int_equal((uint32_t)call.seq[k], next[t]);
        next[t]++;
    }
    for (size_t k = 0; k < PER; k++) {
        assert_int_equal(cone.seq[k], ((uint64_t)2 << 32) | k);
    }
    assert_int_equal(stats(all).dropped, 0);
    cairni_bus_close(bus);
    col_fini(&call);
    col_fini(&cone);
}

/* A blocked subscriber loses exactly what it could not hold, counted;
 * a subscriber that keeps up on the same topic loses nothing. */
static void
test_slow_subscriber(void **state)
{
    enum { QUEUE = 16, N = 400, ROUND = 8 };
    cairni_metrics     *m;
    cairni_bus         *bus;
    cairn_sub          *slow, *fast;
    col                 cs, cf;
    cairni_topic_stats *ts;
    uint64_t            delivered, dropped;
    (void)state;

    assert_int_equal(cairni_metrics_alloc(&m), CAIRN_OK);
    bus = bus_new(QUEUE, m);
    col_init(&cs, N);
    col_init(&cf, N);
    assert_int_equal(
        cairni_bus_subscribe(bus, "s/t", "slow", col_fn, &cs, &slow), CAIRN_OK);
    assert_int_equal(
        cairni_bus_subscribe(bus, "s/#", "fast", col_fn, &cf, &fast), CAIRN_OK);
    col_gate(&cs, true);
    /* Publish in rounds the fast subscriber absorbs, so its pending batch
     * never exceeds ROUND < QUEUE messages. */
    for (uint64_t k = 0; k < N; k++) {
        assert_int_equal(pub(bus, "s/t", k), CAIRN_OK);
        if (k == 0) {
            assert_true(col_wait(&cs, UNTIL_INSIDE, 0));
        }
        if ((k + 1) % ROUND == 0) {
            assert_true(col_wait(&cf, UNTIL_N, k + 1));
        }
    }
    /* Drops are decided inside publish: the count is final now. */
    dropped = stats(slow).dropped;
    assert_true(dropped > 0);
    assert_true(dropped < N - QUEUE);
    col_gate(&cs, false);
    /* Everything not counted as dropped arrives: a message lost without
     * being counted makes this wait fail. */
    assert_true(col_wait(&cs, UNTIL_N, N - dropped));
    /* The slow one is drained: a sentinel now gets through, and nothing
     * (no dropped message) arrives before it. */
    assert_int_equal(pub(bus, "s/t", END), CAIRN_OK);
    assert_true(col_wait(&cs, UNTIL_ENDS, 1));
    assert_true(col_wait(&cf, UNTIL_ENDS, 1));
    delivered = cs.nseq;
    assert_int_equal(delivered, N - dropped);
    assert_int_equal(stats(slow).dropped, dropped);
    assert_int_equal(stats(slow).delivered, delivered + 1);
    for (size_t k = 1; k < cs.nseq; k++) {
        assert_true(cs.seq[k] > cs.seq[k - 1]); /* order kept */
    }
    assert_int_equal(stats(fast).dropped, 0);
    assert_int_equal(cf.nseq, N);
    ts = cairni_metrics_topic(m, "s/t", 3);
    assert_int_equal(atomic_load(&ts->published), N + 1);
    assert_int_equal(atomic_load(&ts->dropped), N - delivered);
    assert_int_equal(atomic_load(&ts->delivered), (N + 1) + (delivered + 1));
    cairni_bus_close(bus);
    cairni_metrics_free(m);
    col_fini(&cs);
    col_fini(&cf);
}

/* Messages that queue up while the subscriber is busy arrive in a few
 * batches, not one wakeup each. */
static void
test_batching(void **state)
{
    enum { N = 2000 };
    cairni_bus      *bus = bus_new(0, NULL);
    cairn_sub       *sub;
    col              c;
    cairni_sub_stats st;
    (void)state;

    col_init(&c, N + 1);
    assert_int_equal(cairni_bus_subscribe(bus, "b", "t", col_fn, &c, &sub),
                     CAIRN_OK);
    col_gate(&c, true);
    assert_int_equal(pub(bus, "b", 0), CAIRN_OK);
    assert_true(col_wait(&c, UNTIL_INSIDE, 0));
    for (uint64_t k = 1; k <= N; k++) {
        assert_int_equal(pub(bus, "b", k), CAIRN_OK);
    }
    col_gate(&c, false);
    assert_true(col_wait(&c, UNTIL_N, N + 1));
    st = stats(sub);
    assert_int_equal(st.delivered, N + 1);
    assert_int_equal(st.dropped, 0);
    assert_true(st.wakeups >= 1);
    assert_true(st.wakeups <= N / 100);
    for (uint64_t k = 0; k <= N; k++) {
        assert_int_equal(c.seq[k], k);
    }
    cairni_bus_close(bus);
    col_fini(&c);
}

/* ---- work queues -------------------------------------------------------- */

typedef struct qshared {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint8_t        *seen; /* times each message arrived */
    size_t          total;
    size_t          dup;
} qshared;

typedef struct qcons {
    qshared *sh;
    size_t   got;
} qcons;

static void
qcons_fn(void *arg, const cairn_envelope *env)
{
    qcons   *qc = arg;
    qshared *sh = qc->sh;
    uint64_t v = get64(env->payload.ptr);

    pthread_mutex_lock(&sh->mu);
    if (sh->seen[v]++ != 0) {
        sh->dup++;
    }
    sh->total++;
    qc->got++;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

static cairn_err
qpush(cairni_bus *bus, const char *q, uint64_t v, uint32_t ms)
{
    uint8_t        p[8];
    cairn_envelope env;

    put64(p, v);
    cairn_envelope_init(&env);
    env.payload.ptr = p;
    env.payload.len = sizeof(p);
    return cairni_bus_queue_push(bus, q, &env, ms);
}

static void
test_queue_exactly_once(void **state)
{
    enum { N = 10000, NC = 3 };
    cairni_bus     *bus = bus_new(0, NULL);
    cairn_sub      *subs[NC];
    qcons           qc[NC];
    qshared         sh;
    struct timespec dl = deadline_in(WAIT_MS);
    (void)state;

    memset(&sh, 0, sizeof(sh));
    pthread_mutex_init(&sh.mu, NULL);
    cv_init(&sh.cv);
    sh.seen = calloc(N, 1);
    for (int i = 0; i < NC; i++) {
        qc[i] = (qcons){.sh = &sh};
        assert_int_equal(cairni_bus_queue_consume(bus, "jobs", "t", qcons_fn,
                                                  &qc[i], &subs[i]),
                         CAIRN_OK);
    }
    for (uint64_t k = 0; k < N; k++) {
        assert_int_equal(qpush(bus, "jobs", k, 5000), CAIRN_OK);
    }
    pthread_mutex_lock(&sh.mu);
    while (sh.total < N && pthread_cond_timedwait(&sh.cv, &sh.mu, &dl) == 0) {
    }
    pthread_mutex_unlock(&sh.mu);
    assert_int_equal(sh.total, N);
    assert_int_equal(sh.dup, 0);
    for (size_t k = 0; k < N; k++) {
        assert_int_equal(sh.seen[k], 1);
    }
    for (int i = 0; i < NC; i++) {
        assert_true(qc[i].got > 0);
    }
    cairni_bus_close(bus);
    free(sh.seen);
    pthread_cond_destroy(&sh.cv);
    pthread_mutex_destroy(&sh.mu);
}

static void
test_queue_errors(void **state)
{
    cairni_bus *bus = bus_new(0, NULL);
    cairn_sub  *sub;
    col         c;
    (void)state;

    col_init(&c, 16);
    /* Nobody ever consumed "none". */
    assert_int_equal(qpush(bus, "none", 1, 0), CAIRN_ENOENT);
    assert_int_equal(qpush(bus, "none", 1, 20), CAIRN_ENOENT);
    assert_int_equal(qpush(bus, "", 1, 20), CAIRN_EINVAL);
    assert_int_equal(
        cairni_bus_queue_consume(bus, "once", "t", col_fn, &c, &sub), CAIRN_OK);
    assert_int_equal(qpush(bus, "once", 7, 1000), CAIRN_OK);
    assert_true(col_wait(&c, UNTIL_N, 1));
    assert_int_equal(c.seq[0], 7);
    assert_string_equal(c.topic[0], "once"); /* topic defaults to queue */
    cairni_bus_unsubscribe(sub);
    /* Consumers existed but none is left. */
    assert_int_equal(qpush(bus, "once", 8, 20), CAIRN_ETIMEDOUT);
    cairni_bus_close(bus);
    col_fini(&c);
}

/* ---- request/reply ------------------------------------------------------ */

static cairn_err
echo_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    (void)arg;
    return cairni_out_append(out, req->payload.ptr, req->payload.len);
}

static cairn_err
later_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    (void)arg;
    (void)req;
    if (cairni_out_append(out, "later", 5) != CAIRN_OK) {
        return CAIRN_ENOMEM;
    }
    return CAIRN_EAGAIN;
}

static cairn_err
call_bytes(cairni_bus *bus, const char *svc, const void *p, size_t len,
           uint32_t ms, cairn_reply *rep)
{
    cairn_envelope env;

    cairn_envelope_init(&env);
    env.payload.ptr = p;
    env.payload.len = len;
    return cairni_bus_call(bus, svc, &env, ms, rep);
}

static void
test_rpc_basics(void **state)
{
    cairni_bus *bus = bus_new(0, NULL);
    cairn_svc  *echo, *later, *dup = NULL;
    cairn_reply rep;
    cairni_buf  out = {0};
    (void)state;

    assert_int_equal(cairni_bus_serve(bus, "echo", "p1", echo_fn, NULL, &echo),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "echo", "p2", echo_fn, NULL, &dup),
                     CAIRN_EEXIST);
    assert_null(dup);
    assert_int_equal(
        cairni_bus_serve(bus, "later", "p1", later_fn, NULL, &later), CAIRN_OK);

    assert_int_equal(call_bytes(bus, "echo", "hello", 5, 2000, &rep), CAIRN_OK);
    assert_int_equal(rep.status, CAIRN_OK);
    assert_int_equal(rep.len, 5);
    assert_memory_equal(rep.data, "hello", 5);
    cairni_reply_fini(&rep);
    assert_null(rep.impl_);

    assert_int_equal(call_bytes(bus, "echo", NULL, 0, 2000, &rep), CAIRN_OK);
    assert_int_equal(rep.len, 0);
    cairni_reply_fini(&rep);

    assert_int_equal(call_bytes(bus, "later", "x", 1, 2000, &rep), CAIRN_OK);
    assert_int_equal(rep.status, CAIRN_EAGAIN);
    assert_int_equal(rep.len, 5);
    assert_memory_equal(rep.data, "later", 5);
    cairni_reply_fini(&rep);

    assert_int_equal(call_bytes(bus, "nobody", "x", 1, 2000, &rep),
                     CAIRN_ENOENT);
    assert_int_equal(call_bytes(bus, "echo", "x", 1, 0, &rep), CAIRN_EINVAL);
    assert_null(rep.impl_);

    cairni_bus_list_services(bus, &out);
    assert_non_null(strstr(out.data, "echo p1 2 closed\n"));
    assert_non_null(strstr(out.data, "later p1 1 closed\n"));
    out.len = 0;
    cairni_bus_render_metrics(bus, &out);
    assert_non_null(strstr(
        out.data, "cairn_rpc_calls_total{service=\"echo\",result=\"ok\"} 2\n"));
    assert_non_null(strstr(
        out.data,
        "cairn_rpc_calls_total{service=\"later\",result=\"error\"} 1\n"));
    assert_non_null(strstr(
        out.data, "cairn_rpc_latency_seconds_count{service=\"echo\"} 2\n"));

    cairni_bus_unserve(echo);
    assert_int_equal(call_bytes(bus, "echo", "x", 1, 100, &rep), CAIRN_ENOENT);
    /* Serving the name again works, and callers reach the new one. */
    assert_int_equal(cairni_bus_serve(bus, "echo", "p3", echo_fn, NULL, &echo),
                     CAIRN_OK);
    assert_int_equal(call_bytes(bus, "echo", "again", 5, 2000, &rep), CAIRN_OK);
    assert_memory_equal(rep.data, "again", 5);
    cairni_reply_fini(&rep);
    cairni_buf_fini(&out);
    cairni_bus_close(bus);
}

/* A service whose handler can be held at a gate; counts runs by the
 * first payload byte. */
typedef struct slowsvc {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            gate;
    bool            inside;
    unsigned        runs[256];
} slowsvc;

static cairn_err
slow_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    slowsvc *s = arg;
    uint8_t  k = req->payload.len > 0 ? req->payload.ptr[0] : 0;

    pthread_mutex_lock(&s->mu);
    s->runs[k]++;
    while (k == 'B' && s->gate) {
        s->inside = true;
        pthread_cond_broadcast(&s->cv);
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return cairni_out_append(out, &k, 1);
}

typedef struct blockcall {
    cairni_bus *bus;
    cairn_err   rv;
    uint64_t    ms; /* how long the call took */
} blockcall;

static void *
blockcall_main(void *arg)
{
    blockcall  *b = arg;
    uint64_t    t0 = cairni_mono_ms();
    cairn_reply rep;

    b->rv = call_bytes(b->bus, "slow", "B", 1, 150, &rep);
    b->ms = cairni_mono_ms() - t0;
    if (b->rv == CAIRN_OK) {
        cairni_reply_fini(&rep);
    }
    return NULL;
}

static void
test_rpc_deadline(void **state)
{
    cairni_bus     *bus = bus_new(0, NULL);
    cairn_svc      *svc;
    slowsvc         s;
    blockcall       b = {.bus = bus};
    pthread_t       thr;
    cairn_reply     rep;
    uint64_t        t0, ms;
    cairni_buf      out = {0};
    struct timespec dl = deadline_in(WAIT_MS);
    (void)state;

    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    cv_init(&s.cv);
    s.gate = true;
    assert_int_equal(cairni_bus_serve(bus, "slow", "t", slow_fn, &s, &svc),
                     CAIRN_OK);
    assert_int_equal(pthread_create(&thr, NULL, blockcall_main, &b), 0);
    pthread_mutex_lock(&s.mu);
    while (!s.inside && pthread_cond_timedwait(&s.cv, &s.mu, &dl) == 0) {
    }
    assert_true(s.inside);
    pthread_mutex_unlock(&s.mu);

    /* Queued behind the blocked one; its deadline passes in the queue. */
    t0 = cairni_mono_ms();
    assert_int_equal(call_bytes(bus, "slow", "Q", 1, 60, &rep),
                     CAIRN_ETIMEDOUT);
    ms = cairni_mono_ms() - t0;
    assert_true(ms >= 59 && ms < 1000);
    pthread_join(thr, NULL);
    assert_int_equal(b.rv, CAIRN_ETIMEDOUT);
    assert_true(b.ms >= 149 && b.ms < 1500);

    pthread_mutex_lock(&s.mu);
    s.gate = false;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    /* One service thread: when this returns, what was queued before it
     * has been run or skipped. */
    assert_int_equal(call_bytes(bus, "slow", "P", 1, 5000, &rep), CAIRN_OK);
    assert_int_equal(rep.data[0], 'P');
    cairni_reply_fini(&rep);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.runs['B'], 1); /* not run twice */
    assert_int_equal(s.runs['Q'], 0); /* expired: not run late */
    assert_int_equal(s.runs['P'], 1);
    pthread_mutex_unlock(&s.mu);
    cairni_bus_render_metrics(bus, &out);
    assert_non_null(
        strstr(out.data, "cairn_rpc_expired_total{service=\"slow\"} 1\n"));
    assert_non_null(strstr(
        out.data,
        "cairn_rpc_calls_total{service=\"slow\",result=\"timeout\"} 2\n"));
    cairni_buf_fini(&out);
    cairni_bus_close(bus);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

typedef struct caller {
    cairni_bus      *bus;
    unsigned         id;
    unsigned         n;
    _Atomic unsigned bad;
} caller;

static void *
caller_main(void *arg)
{
    caller     *c = arg;
    uint8_t     p[8];
    cairn_reply rep;

    for (unsigned k = 0; k < c->n; k++) {
        put64(p, ((uint64_t)c->id << 32) | k);
        if (call_bytes(c->bus, "echo", p, sizeof(p), 5000, &rep) != CAIRN_OK) {
            atomic_fetch_add(&c->bad, 1);
            continue;
        }
        if (rep.status != CAIRN_OK || rep.len != sizeof(p) ||
            memcmp(rep.data, p, sizeof(p)) != 0) {
            atomic_fetch_add(&c->bad, 1);
        }
        cairni_reply_fini(&rep);
    }
    return NULL;
}

static void
test_rpc_concurrent(void **state)
{
    enum { NT = 4, PER = 300 };
    cairni_bus *bus = bus_new(0, NULL);
    cairn_svc  *svc;
    pthread_t   thr[NT];
    caller      c[NT];
    cairni_buf  out = {0};
    char        want[128];
    (void)state;

    assert_int_equal(cairni_bus_serve(bus, "echo", "t", echo_fn, NULL, &svc),
                     CAIRN_OK);
    for (unsigned i = 0; i < NT; i++) {
        c[i] = (caller){.bus = bus, .id = i, .n = PER};
        assert_int_equal(pthread_create(&thr[i], NULL, caller_main, &c[i]), 0);
    }
    for (unsigned i = 0; i < NT; i++) {
        pthread_join(thr[i], NULL);
        assert_int_equal(atomic_load(&c[i].bad), 0);
    }
    cairni_bus_render_metrics(bus, &out);
    snprintf(want, sizeof(want),
             "cairn_rpc_calls_total{service=\"echo\",result=\"ok\"} %u\n",
             NT * PER);
    assert_non_null(strstr(out.data, want));
    cairni_buf_fini(&out);
    cairni_bus_close(bus);
}

/* ---- teardown under load ------------------------------------------------ */

typedef struct churn {
    cairni_bus      *bus;
    _Atomic bool     stop;
    _Atomic unsigned bad;
    _Atomic unsigned calls_ok;
} churn;

static void *
churn_pub_main(void *arg)
{
    churn *c = arg;

    for (unsigned k = 0; k < 200000 && !atomic_load(&c->stop); k++) {
        if (pub(c->bus, "c/x", k) != CAIRN_OK) {
            atomic_fetch_add(&c->bad, 1);
        }
        cairn_err rv = qpush(c->bus, "cq", k, 0);
        if (rv != CAIRN_OK && rv != CAIRN_ETIMEDOUT && rv != CAIRN_ENOENT) {
            fprintf(stderr, "push: %s\n", cairn_strerror(rv));
            atomic_fetch_add(&c->bad, 1);
        }
    }
    return NULL;
}

static void *
churn_call_main(void *arg)
{
    churn      *c = arg;
    cairn_reply rep;

    for (unsigned k = 0; k < 100000 && !atomic_load(&c->stop); k++) {
        cairn_err rv = call_bytes(c->bus, "churn", "x", 1, 200, &rep);
        if (rv == CAIRN_OK) {
            atomic_fetch_add(&c->calls_ok, 1);
            cairni_reply_fini(&rep);
        } else if (rv != CAIRN_ENOENT && rv != CAIRN_ETIMEDOUT &&
                   rv != CAIRN_ECONNREFUSED) {
            fprintf(stderr, "call: %s\n", cairn_strerror(rv));
            atomic_fetch_add(&c->bad, 1);
        }
    }
    return NULL;
}

static void
count_fn(void *arg, const cairn_envelope *env)
{
    (void)env;
    atomic_fetch_add((_Atomic unsigned *)arg, 1);
}

static void
test_churn(void **state)
{
    enum { ROUNDS = 40 };
    churn            c = {.bus = bus_new(64, NULL)};
    pthread_t        p1, p2, cl;
    _Atomic unsigned hits = 0;
    (void)state;

    assert_int_equal(pthread_create(&p1, NULL, churn_pub_main, &c), 0);
    assert_int_equal(pthread_create(&p2, NULL, churn_pub_main, &c), 0);
    assert_int_equal(pthread_create(&cl, NULL, churn_call_main, &c), 0);
    for (int r = 0; r < ROUNDS; r++) {
        cairn_sub *s1, *s2, *q1;
        cairn_svc *svc;
        assert_int_equal(
            cairni_bus_subscribe(c.bus, "c/#", "t", count_fn, &hits, &s1),
            CAIRN_OK);
        assert_int_equal(
            cairni_bus_subscribe(c.bus, "c/+", "t", count_fn, &hits, &s2),
            CAIRN_OK);
        assert_int_equal(
            cairni_bus_queue_consume(c.bus, "cq", "t", count_fn, &hits, &q1),
            CAIRN_OK);
        assert_int_equal(
            cairni_bus_serve(c.bus, "churn", "t", echo_fn, NULL, &svc),
            CAIRN_OK);
        cairni_bus_unsubscribe(s1);
        cairni_bus_unserve(svc);
        cairni_bus_unsubscribe(q1);
        cairni_bus_unsubscribe(s2);
    }
    atomic_store(&c.stop, true);
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    pthread_join(cl, NULL);
    assert_int_equal(atomic_load(&c.bad), 0);
    cairni_bus_close(c.bus);
}

/* Closing a bus with everything still attached and messages in flight,
 * one subscriber busy in its callback until just before the close. */
static void
test_close_live(void **state)
{
    cairni_bus      *bus = bus_new(0, NULL);
    cairn_sub       *subs[3], *cons[2];
    cairn_svc       *svc;
    col              c;
    _Atomic unsigned n = 0;
    cairn_reply      rep;
    (void)state;

    col_init(&c, 4096);
    assert_int_equal(
        cairni_bus_subscribe(bus, "l/#", "t", col_fn, &c, &subs[0]), CAIRN_OK);
    assert_int_equal(
        cairni_bus_subscribe(bus, "#", "t", count_fn, &n, &subs[1]), CAIRN_OK);
    assert_int_equal(
        cairni_bus_subscribe(bus, "l/+", "t", count_fn, &n, &subs[2]),
        CAIRN_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            cairni_bus_queue_consume(bus, "lq", "t", count_fn, &n, &cons[i]),
            CAIRN_OK);
    }
    assert_int_equal(cairni_bus_serve(bus, "live", "t", echo_fn, NULL, &svc),
                     CAIRN_OK);
    assert_int_equal(call_bytes(bus, "live", "x", 1, 2000, &rep), CAIRN_OK);
    cairni_reply_fini(&rep);
    col_gate(&c, true);
    for (uint64_t k = 0; k < 3000; k++) {
        assert_int_equal(pub(bus, "l/x", k), CAIRN_OK);
    }
    for (uint64_t k = 0; k < 100; k++) {
        assert_int_equal(qpush(bus, "lq", k, 1000), CAIRN_OK);
    }
    assert_true(col_wait(&c, UNTIL_INSIDE, 0));
    col_gate(&c, false);
    cairni_bus_close(bus);
    col_fini(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_id_ts),
        cmocka_unit_test(test_fanout_order),
        cmocka_unit_test(test_many_publishers),
        cmocka_unit_test(test_slow_subscriber),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_queue_exactly_once),
        cmocka_unit_test(test_queue_errors),
        cmocka_unit_test(test_rpc_basics),
        cmocka_unit_test(test_rpc_deadline),
        cmocka_unit_test(test_rpc_concurrent),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_close_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
