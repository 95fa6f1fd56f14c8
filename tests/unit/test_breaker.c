/*
 * test_breaker.c - circuit breakers and call policies: the state machine
 * on a clock the test drives, what counts as a failure, the `calls`
 * config section, and the bus using both: an open breaker fails calls
 * without the service seeing them, a probe closes it again, and only an
 * idempotent service is called more than once for one request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_to_open),
        cmocka_unit_test(test_half_open),
        cmocka_unit_test(test_stale_and_disabled),
        cmocka_unit_test(test_failure_kinds),
        cmocka_unit_test(test_config_calls),
        cmocka_unit_test(test_bus_breaker),
        cmocka_unit_test(test_bus_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
