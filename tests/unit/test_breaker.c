/*
 * test_breaker.c - circuit breakers and call policies: the state machine
 * on a clock the test drives, what counts as a failure, the `calls`
 * config section, and the bus using both: an open breaker fails calls
 * without the service seeing them, a probe closes it again, and only an
 * idempotent service is called more than once for one request.  The
 * asynchronous call goes through the same breaker and retries, and calls
 * its done exactly once (or never, when it fails to start), also when
 * the bus closes under it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "cairni.h"

#define MS 1000ull /* microseconds */

/* ---- the state machine -------------------------------------------------- */

static void
test_closed_to_open(void **state)
{
    cairni_breaker b;
    bool           probe;
    (void)state;

    cairni_breaker_init(&b, 3, 100 * MS, 1);
    /* Two failures, then a success: the count starts over. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cairni_breaker_enter(&b, 0, &probe), CAIRN_OK);
        assert_false(probe);
        cairni_breaker_done(&b, 0, probe, true);
    }
    assert_int_equal(cairni_breaker_enter(&b, 0, &probe), CAIRN_OK);
    cairni_breaker_done(&b, 0, probe, false);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cairni_breaker_enter(&b, 1, &probe), CAIRN_OK);
        cairni_breaker_done(&b, 1, probe, true);
    }
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_CLOSED);
    /* The third in a row opens it. */
    assert_int_equal(cairni_breaker_enter(&b, 2, &probe), CAIRN_OK);
    cairni_breaker_done(&b, 2, probe, true);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);
    assert_int_equal(atomic_load(&b.n_open), 1);

    /* Open: every call fails fast until the interval has passed. */
    assert_int_equal(cairni_breaker_enter(&b, 3, &probe), CAIRN_EUNAVAIL);
    assert_int_equal(cairni_breaker_enter(&b, 2 + 100 * MS - 1, &probe),
                     CAIRN_EUNAVAIL);
    assert_int_equal(atomic_load(&b.n_rejected), 2);
    cairni_breaker_fini(&b);
}

static void
test_half_open(void **state)
{
    cairni_breaker b;
    bool           p1, p2, p3;
    uint64_t       t = 0;
    (void)state;

    cairni_breaker_init(&b, 1, 50 * MS, 2);
    assert_int_equal(cairni_breaker_enter(&b, t, &p1), CAIRN_OK);
    cairni_breaker_done(&b, t, p1, true);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);

    /* After the interval: half-open, two probes at a time, no third. */
    t += 50 * MS;
    assert_int_equal(cairni_breaker_enter(&b, t, &p1), CAIRN_OK);
    assert_true(p1);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_HALF_OPEN);
    assert_int_equal(cairni_breaker_enter(&b, t, &p2), CAIRN_OK);
    assert_true(p2);
    assert_int_equal(cairni_breaker_enter(&b, t, &p3), CAIRN_EUNAVAIL);
    /* A failed probe opens it again, from now. */
    cairni_breaker_done(&b, t, p1, true);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);
    /* The other probe's late success says nothing now. */
    cairni_breaker_done(&b, t, p2, false);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);
    assert_int_equal(cairni_breaker_enter(&b, t + 49 * MS, &p1),
                     CAIRN_EUNAVAIL);

    /* Two successful probes close it; one is not enough. */
    t += 50 * MS;
    assert_int_equal(cairni_breaker_enter(&b, t, &p1), CAIRN_OK);
    cairni_breaker_done(&b, t, p1, false);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_HALF_OPEN);
    /* One probe succeeded, so only one more is let through. */
    assert_int_equal(cairni_breaker_enter(&b, t, &p2), CAIRN_OK);
    assert_int_equal(cairni_breaker_enter(&b, t, &p3), CAIRN_EUNAVAIL);
    cairni_breaker_done(&b, t, p2, false);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_CLOSED);
    assert_int_equal(atomic_load(&b.n_open), 2);
    assert_int_equal(atomic_load(&b.n_half), 2);
    assert_int_equal(atomic_load(&b.n_closed), 1);

    /* Closed again, it needs the full count of failures to open. */
    assert_int_equal(cairni_breaker_enter(&b, t, &p1), CAIRN_OK);
    assert_false(p1);
    cairni_breaker_done(&b, t, p1, true);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);
    cairni_breaker_fini(&b);
}

static void
test_cancel(void **state)
{
    cairni_breaker b;
    bool           p1, p2;
    (void)state;

    cairni_breaker_init(&b, 1, 10 * MS, 1);
    assert_int_equal(cairni_breaker_enter(&b, 0, &p1), CAIRN_OK);
    cairni_breaker_done(&b, 0, p1, true);
    /* Half-open with its one probe out: no second one... */
    assert_int_equal(cairni_breaker_enter(&b, 10 * MS, &p1), CAIRN_OK);
    assert_true(p1);
    assert_int_equal(cairni_breaker_enter(&b, 10 * MS, &p2), CAIRN_EUNAVAIL);
    /* ...until the probe is cancelled without a verdict. */
    cairni_breaker_cancel(&b, p1);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_HALF_OPEN);
    assert_int_equal(cairni_breaker_enter(&b, 10 * MS, &p2), CAIRN_OK);
    assert_true(p2);
    cairni_breaker_done(&b, 10 * MS, p2, false);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_CLOSED);
    cairni_breaker_fini(&b);
}

static void
test_stale_and_disabled(void **state)
{
    cairni_breaker b;
    bool           a, c;
    (void)state;

    /* A call that entered while closed and ends once the breaker is
     * open does not count. */
    cairni_breaker_init(&b, 1, 10 * MS, 1);
    assert_int_equal(cairni_breaker_enter(&b, 0, &a), CAIRN_OK);
    assert_int_equal(cairni_breaker_enter(&b, 0, &c), CAIRN_OK);
    cairni_breaker_done(&b, 0, a, true);
    cairni_breaker_done(&b, 0, c, false);
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_OPEN);
    cairni_breaker_fini(&b);

    /* failures 0: never opens. */
    cairni_breaker_init(&b, 0, 10 * MS, 1);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(cairni_breaker_enter(&b, 0, &a), CAIRN_OK);
        cairni_breaker_done(&b, 0, a, true);
    }
    assert_int_equal(cairni_breaker_get(&b), CAIRNI_BREAKER_CLOSED);
    assert_string_equal(cairni_breaker_name(CAIRNI_BREAKER_HALF_OPEN),
                        "half-open");
    cairni_breaker_fini(&b);
}

static void
test_failure_kinds(void **state)
{
    (void)state;
    /* The service's trouble. */
    assert_true(cairni_call_failed(CAIRN_ETIMEDOUT, CAIRN_OK));
    assert_true(cairni_call_failed(CAIRN_ECONNREFUSED, CAIRN_OK));
    assert_true(cairni_call_failed(CAIRN_OK, CAIRN_EIO));
    assert_true(cairni_call_failed(CAIRN_OK, CAIRN_EBUSY));
    assert_true(cairni_call_failed(CAIRN_OK, CAIRN_EUNAVAIL));
    assert_true(cairni_call_failed(CAIRN_OK, CAIRN_ESYSERR | 5));
    /* The caller's own, or success. */
    assert_false(cairni_call_failed(CAIRN_OK, CAIRN_OK));
    assert_false(cairni_call_failed(CAIRN_OK, CAIRN_EINVAL));
    assert_false(cairni_call_failed(CAIRN_OK, CAIRN_EPERM));
    assert_false(cairni_call_failed(CAIRN_OK, CAIRN_ENOENT));
    assert_false(cairni_call_failed(CAIRN_EINVAL, CAIRN_OK));
}

/* ---- the calls section of the config ------------------------------------ */

static cairni_config *
load(const char *yaml, cairn_err want, const char *want_err)
{
    cairni_config *cfg = NULL;
    char           err[512] = "";
    cairn_err      rv = cairni_config_load_string("t.yaml", yaml, &cfg, err,
                                                  sizeof(err));
    if (rv != want || (want_err != NULL && strstr(err, want_err) == NULL)) {
        print_error("got %d '%s', want %d '%s'\n", rv, err, want,
                    want_err ? want_err : "");
        fail();
    }
    return cfg;
}

static void
test_config_calls(void **state)
{
    cairni_config         *cfg;
    const cairni_call_cfg *c;
    (void)state;

    cfg = load("calls:\n"
               "  failures: 4\n"
               "  open: 2s\n"
               "  services:\n"
               "    - name: pay\n"
               "      probes: 3\n"
               "    - name: stock\n"
               "      idempotent: true\n"
               "      attempts: 3\n"
               "      failures: 0\n"
               "      backoff: 5ms\n",
               CAIRN_OK, NULL);
    assert_int_equal(cfg->calls.failures, 4);
    assert_int_equal(cfg->calls.open_ms, 2000);
    assert_int_equal(cfg->calls.probes, 1);
    assert_int_equal(cfg->calls.backoff_ms, 20);
    assert_int_equal(cfg->calls.services.count, 2);
    c = cfg->calls.services.items;
    /* Inherited where absent. */
    assert_string_equal(c[0].name, "pay");
    assert_int_equal(c[0].failures, 4);
    assert_int_equal(c[0].open_ms, 2000);
    assert_int_equal(c[0].probes, 3);
    assert_false(c[0].idempotent);
    assert_int_equal(c[0].attempts, 1);
    assert_string_equal(c[1].name, "stock");
    assert_int_equal(c[1].failures, 0);
    assert_true(c[1].idempotent);
    assert_int_equal(c[1].attempts, 3);
    assert_int_equal(c[1].backoff_ms, 5);
    cairni_config_free(cfg);

    /* Defaults without the section. */
    cfg = load("runtime:\n  name: x\n", CAIRN_OK, NULL);
    assert_int_equal(cfg->calls.failures, 5);
    assert_int_equal(cfg->calls.open_ms, 10000);
    cairni_config_free(cfg);

    /* Retries of a service that is not idempotent are refused. */
    assert_null(load("calls:\n  services:\n    - name: pay\n      attempts: 2\n",
                     CAIRN_ECONFIG, "t.yaml:3: 'calls.services[0].attempts'"));
    assert_null(load("calls:\n  services:\n    - name: a\n    - name: a\n",
                     CAIRN_ECONFIG, "t.yaml:4: duplicate service 'a'"));
    assert_null(load("calls:\n  services:\n    - name: ''\n", CAIRN_ECONFIG,
                     "must not be empty"));
    assert_null(load("calls:\n  probes: 0\n", CAIRN_ECONFIG, "t.yaml:2:"));
    assert_null(load("calls:\n  flaky: 1\n", CAIRN_ECONFIG, "flaky"));
}

/* ---- the bus with policies ---------------------------------------------- */

typedef struct flaky {
    _Atomic int      fail_next; /* replies with CAIRN_EIO while > 0 */
    _Atomic bool     fail;      /* replies with CAIRN_EIO while set */
    _Atomic uint64_t handled;
} flaky;

static cairn_err
flaky_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    flaky *f = arg;
    (void)req;
    (void)out;
    atomic_fetch_add(&f->handled, 1);
    if (atomic_load(&f->fail)) {
        return CAIRN_EIO;
    }
    if (atomic_fetch_sub(&f->fail_next, 1) > 0) {
        return CAIRN_EIO;
    }
    return CAIRN_OK;
}

static cairn_err
call(cairni_bus *bus, const char *svc, cairn_err *status)
{
    cairn_envelope env;
    cairn_reply    rep;
    cairn_err      rv;

    cairn_envelope_init(&env);
    env.payload.ptr = (const uint8_t *)"x";
    env.payload.len = 1;
    rv = cairni_bus_call(bus, svc, &env, 5000, &rep);
    *status = rep.status;
    cairni_reply_fini(&rep);
    return rv;
}

static bool
has(const char *text, const char *line)
{
    if (strstr(text, line) != NULL) {
        return true;
    }
    print_error("no '%s' in:\n%s\n", line, text);
    return false;
}

static void
test_bus_breaker(void **state)
{
    cairni_config *cfg = load("calls:\n"
                              "  failures: 3\n"
                              "  open: 100ms\n"
                              "  services:\n"
                              "    - name: tough\n"
                              "      failures: 0\n",
                              CAIRN_OK, NULL);
    cairni_bus_opts opts = {.calls = &cfg->calls};
    cairni_bus     *bus;
    cairn_svc      *svc, *svc2;
    flaky           f = {0}, g = {0};
    cairni_buf      out = {0};
    cairn_err       st;
    (void)state;

    assert_int_equal(cairni_bus_open(&bus, &opts), CAIRN_OK);
    cairni_config_free(cfg); /* the bus keeps its own copy */
    assert_int_equal(cairni_bus_serve(bus, "flaky", "t", flaky_fn, &f, &svc),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "tough", "t", flaky_fn, &g, &svc2),
                     CAIRN_OK);

    /* Three failures reach the service, then it is open: the fourth call
     * fails fast and the service does not see it. */
    atomic_store(&f.fail, true);
    atomic_store(&g.fail, true);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call(bus, "flaky", &st), CAIRN_OK);
        assert_int_equal(st, CAIRN_EIO);
    }
    assert_int_equal(call(bus, "flaky", &st), CAIRN_EUNAVAIL);
    assert_int_equal(atomic_load(&f.handled), 3);
    /* Not for a service whose policy has no breaker. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(call(bus, "tough", &st), CAIRN_OK);
        assert_int_equal(st, CAIRN_EIO);
    }
    cairni_bus_list_services(bus, &out);
    assert_true(has(out.data, "flaky t 3 open\n"));
    assert_true(has(out.data, "tough t 5 closed\n"));
    out.len = 0;
    cairni_bus_render_metrics(bus, &out);
    assert_true(has(out.data, "cairn_rpc_breaker_state{service=\"flaky\"} 1\n"));
    assert_true(has(out.data, "cairn_rpc_rejected_total{service=\"flaky\"} 1\n"));
    assert_true(has(out.data, "cairn_rpc_breaker_transitions_total{service="
                              "\"flaky\",to=\"open\"} 1\n"));

    /* The service recovers; once the interval has passed a probe gets
     * through and closes the breaker.  Until then calls fail fast. */
    atomic_store(&f.fail, false);
    cairn_err rv = CAIRN_EUNAVAIL;
    for (int i = 0; i < 500 && rv == CAIRN_EUNAVAIL; i++) {
        if ((rv = call(bus, "flaky", &st)) == CAIRN_EUNAVAIL) {
            nng_msleep(10);
        }
    }
    assert_int_equal(rv, CAIRN_OK);
    assert_int_equal(st, CAIRN_OK);
    assert_int_equal(atomic_load(&f.handled), 4);
    out.len = 0;
    cairni_bus_render_metrics(bus, &out);
    assert_true(has(out.data, "cairn_rpc_breaker_state{service=\"flaky\"} 0\n"));
    assert_true(has(out.data, "cairn_rpc_breaker_transitions_total{service="
                              "\"flaky\",to=\"half_open\"} 1\n"));
    assert_true(has(out.data, "cairn_rpc_breaker_transitions_total{service="
                              "\"flaky\",to=\"closed\"} 1\n"));

    cairni_buf_fini(&out);
    cairni_bus_unserve(svc);
    cairni_bus_unserve(svc2);
    cairni_bus_close(bus);
}

static void
test_bus_retries(void **state)
{
    cairni_config *cfg = load("calls:\n"
                              "  services:\n"
                              "    - name: idem\n"
                              "      idempotent: true\n"
                              "      attempts: 3\n"
                              "      backoff: 1ms\n"
                              "    - name: once\n",
                              CAIRN_OK, NULL);
    cairni_bus_opts opts = {.calls = &cfg->calls};
    cairni_bus     *bus;
    cairn_svc      *s1, *s2;
    flaky           idem = {0}, once = {0};
    cairni_buf      out = {0};
    cairn_err       st;
    (void)state;

    assert_int_equal(cairni_bus_open(&bus, &opts), CAIRN_OK);
    cairni_config_free(cfg);
    assert_int_equal(cairni_bus_serve(bus, "idem", "t", flaky_fn, &idem, &s1),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "once", "t", flaky_fn, &once, &s2),
                     CAIRN_OK);

    /* Two failures, then success: one call, three runs. */
    atomic_store(&idem.fail_next, 2);
    assert_int_equal(call(bus, "idem", &st), CAIRN_OK);
    assert_int_equal(st, CAIRN_OK);
    assert_int_equal(atomic_load(&idem.handled), 3);
    /* Always failing: the attempts run out; the last reply is returned. */
    atomic_store(&idem.fail, true);
    assert_int_equal(call(bus, "idem", &st), CAIRN_OK);
    assert_int_equal(st, CAIRN_EIO);
    assert_int_equal(atomic_load(&idem.handled), 6);
    /* Not idempotent: called once. */
    atomic_store(&once.fail_next, 1);
    assert_int_equal(call(bus, "once", &st), CAIRN_OK);
    assert_int_equal(st, CAIRN_EIO);
    assert_int_equal(atomic_load(&once.handled), 1);

    cairni_bus_render_metrics(bus, &out);
    assert_true(has(out.data, "cairn_rpc_retries_total{service=\"idem\"} 4\n"));
    assert_true(has(out.data, "cairn_rpc_retries_total{service=\"once\"} 0\n"));
    cairni_buf_fini(&out);
    cairni_bus_unserve(s1);
    cairni_bus_unserve(s2);
    cairni_bus_close(bus);
}

/* ---- asynchronous calls ------------------------------------------------- */

/* What one or more async calls reported to their done. */
typedef struct waiter {
    pthread_mutex_t mtx;
    pthread_cond_t  cv;
    int             calls;  /* done callbacks so far */
    cairn_err       rv;     /* of the last one */
    cairn_err       status; /* reply->status, when rv is CAIRN_OK */
    char            data[32];
    size_t          len;
    bool            null_reply; /* reply was NULL (it must be, on errors) */
    int             release_at; /* sets *gate once calls reaches it */
    struct gate    *gate;
} waiter;

/* A service handler that blocks until the gate opens. */
typedef struct gate {
    pthread_mutex_t  mtx;
    pthread_cond_t   cv;
    bool             open;
    _Atomic uint64_t handled;
} gate;

static void
gate_open(gate *g)
{
    pthread_mutex_lock(&g->mtx);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mtx);
}

static cairn_err
gate_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    gate *g = arg;
    (void)req;
    (void)out;
    pthread_mutex_lock(&g->mtx);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mtx);
    }
    pthread_mutex_unlock(&g->mtx);
    atomic_fetch_add(&g->handled, 1);
    return CAIRN_OK;
}

static cairn_err
echo_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    (void)arg;
    return cairni_out_append(out, req->payload.ptr, req->payload.len);
}

static void
waiter_init(waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mtx, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void
waiter_fini(waiter *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mtx);
}

static void
on_done(void *arg, cairn_err rv, cairn_reply *reply)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mtx);
    w->calls++;
    w->rv = rv;
    w->null_reply = reply == NULL;
    if (reply != NULL) {
        w->status = reply->status;
        w->len = reply->len < sizeof(w->data) ? reply->len : sizeof(w->data);
        memcpy(w->data, reply->data, w->len);
    }
    if (w->gate != NULL && w->calls == w->release_at) {
        gate_open(w->gate);
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mtx);
}

/* Waits until n callbacks came (at most 20 s, against a hang). */
static void
waiter_wait(waiter *w, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&w->mtx);
    while (w->calls < n &&
           pthread_cond_timedwait(&w->cv, &w->mtx, &until) == 0) {
    }
    int calls = w->calls;
    pthread_mutex_unlock(&w->mtx);
    assert_int_equal(calls, n);
}

static cairn_err
call_async(cairni_bus *bus, const char *svc, const char *payload,
           uint32_t ms, waiter *w)
{
    cairn_envelope env;
    cairn_envelope_init(&env);
    env.payload.ptr = (const uint8_t *)payload;
    env.payload.len = strlen(payload);
    return cairni_bus_call_async(bus, svc, &env, ms, on_done, w);
}

static void
test_async_outcomes(void **state)
{
    cairni_config *cfg = load("calls:\n"
                              "  failures: 2\n"
                              "  open: 1h\n"
                              "  services:\n"
                              "    - name: idem\n"
                              "      idempotent: true\n"
                              "      attempts: 3\n"
                              "      backoff: 1ms\n"
                              "      failures: 0\n",
                              CAIRN_OK, NULL);
    cairni_bus_opts opts = {.calls = &cfg->calls};
    cairni_bus     *bus;
    cairn_svc      *s1, *s2, *s3, *s4;
    flaky           f = {0}, idem = {0};
    gate            slow = {.open = false};
    waiter          ok, tmo, nosvc, open, bad, fl, retry;
    cairni_buf      out = {0};
    (void)state;

    pthread_mutex_init(&slow.mtx, NULL);
    pthread_cond_init(&slow.cv, NULL);
    waiter_init(&ok), waiter_init(&tmo), waiter_init(&nosvc);
    waiter_init(&open), waiter_init(&bad), waiter_init(&fl);
    waiter_init(&retry);
    assert_int_equal(cairni_bus_open(&bus, &opts), CAIRN_OK);
    cairni_config_free(cfg);
    assert_int_equal(cairni_bus_serve(bus, "echo", "t", echo_fn, NULL, &s1),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "slow", "t", gate_fn, &slow, &s2),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "flaky", "t", flaky_fn, &f, &s3),
                     CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "idem", "t", flaky_fn, &idem, &s4),
                     CAIRN_OK);

    /* A reply: done once, with the handler's bytes and status. */
    assert_int_equal(call_async(bus, "echo", "hello", 5000, &ok), CAIRN_OK);
    waiter_wait(&ok, 1);
    assert_int_equal(ok.rv, CAIRN_OK);
    assert_int_equal(ok.status, CAIRN_OK);
    assert_int_equal(ok.len, 5);
    assert_memory_equal(ok.data, "hello", 5);

    /* No reply by the deadline: CAIRN_ETIMEDOUT, no reply. */
    assert_int_equal(call_async(bus, "slow", "x", 50, &tmo), CAIRN_OK);
    waiter_wait(&tmo, 1);
    assert_int_equal(tmo.rv, CAIRN_ETIMEDOUT);
    assert_true(tmo.null_reply);

    /* Calls that cannot start fail at once and done never runs. */
    assert_int_equal(call_async(bus, "nope", "x", 5000, &nosvc),
                     CAIRN_ENOENT);
    assert_int_equal(call_async(bus, "echo", "x", 0, &bad), CAIRN_EINVAL);
    assert_int_equal(cairni_bus_call_async(bus, "echo", NULL, 10, on_done,
                                           &bad),
                     CAIRN_EINVAL);

    /* Two failures open flaky's breaker; the next call fails fast and the
     * service never sees it. */
    atomic_store(&f.fail, true);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(call_async(bus, "flaky", "x", 5000, &fl), CAIRN_OK);
        waiter_wait(&fl, i);
        assert_int_equal(fl.rv, CAIRN_OK);
        assert_int_equal(fl.status, CAIRN_EIO);
    }
    assert_int_equal(call_async(bus, "flaky", "x", 5000, &open),
                     CAIRN_EUNAVAIL);
    assert_int_equal(atomic_load(&f.handled), 2);

    /* Idempotent: failed twice, then done once with the success. */
    atomic_store(&idem.fail_next, 2);
    assert_int_equal(call_async(bus, "idem", "x", 5000, &retry), CAIRN_OK);
    waiter_wait(&retry, 1);
    assert_int_equal(retry.rv, CAIRN_OK);
    assert_int_equal(retry.status, CAIRN_OK);
    assert_int_equal(atomic_load(&idem.handled), 3);

    cairni_bus_render_metrics(bus, &out);
    assert_true(has(out.data, "cairn_rpc_retries_total{service=\"idem\"} 2\n"));
    assert_true(has(out.data, "cairn_rpc_calls_total{service=\"slow\","
                              "result=\"timeout\"} 1\n"));
    assert_true(has(out.data, "cairn_rpc_rejected_total{service=\"flaky\"} "
                              "1\n"));
    cairni_buf_fini(&out);

    gate_open(&slow); /* lets the timed-out request's handler return */
    cairni_bus_unserve(s1);
    cairni_bus_unserve(s2);
    cairni_bus_unserve(s3);
    cairni_bus_unserve(s4);
    cairni_bus_close(bus);
    /* Everything has ended now: each done ran exactly once, or never. */
    assert_int_equal(ok.calls, 1);
    assert_int_equal(tmo.calls, 1);
    assert_int_equal(nosvc.calls, 0);
    assert_int_equal(bad.calls, 0);
    assert_int_equal(open.calls, 0);
    assert_int_equal(fl.calls, 2);
    assert_int_equal(retry.calls, 1);
    waiter_fini(&ok), waiter_fini(&tmo), waiter_fini(&nosvc);
    waiter_fini(&open), waiter_fini(&bad), waiter_fini(&fl);
    waiter_fini(&retry);
    pthread_cond_destroy(&slow.cv);
    pthread_mutex_destroy(&slow.mtx);
}

/* Calls in progress when the bus closes: each done runs once, with
 * CAIRN_ECLOSED, before cairni_bus_close returns. */
static void
test_async_close(void **state)
{
    enum { N = 20 };
    cairni_bus *bus;
    cairn_svc  *svc;
    gate        g = {.open = false};
    waiter      w;
    (void)state;

    pthread_mutex_init(&g.mtx, NULL);
    pthread_cond_init(&g.cv, NULL);
    waiter_init(&w);
    /* The handler blocks until all N callbacks came, so the calls are
     * all in progress when the close starts. */
    w.gate = &g;
    w.release_at = N;
    assert_int_equal(cairni_bus_open(&bus, NULL), CAIRN_OK);
    assert_int_equal(cairni_bus_serve(bus, "held", "t", gate_fn, &g, &svc),
                     CAIRN_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(call_async(bus, "held", "x", 60000, &w), CAIRN_OK);
    }
    pthread_mutex_lock(&w.mtx);
    assert_int_equal(w.calls, 0);
    pthread_mutex_unlock(&w.mtx);
    cairni_bus_close(bus); /* unserves too, after the calls ended */
    assert_int_equal(w.calls, N);
    assert_int_equal(w.rv, CAIRN_ECLOSED);
    assert_true(w.null_reply);
    waiter_fini(&w);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mtx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_to_open),
        cmocka_unit_test(test_half_open),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_stale_and_disabled),
        cmocka_unit_test(test_failure_kinds),
        cmocka_unit_test(test_config_calls),
        cmocka_unit_test(test_bus_breaker),
        cmocka_unit_test(test_bus_retries),
        cmocka_unit_test(test_async_outcomes),
        cmocka_unit_test(test_async_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
