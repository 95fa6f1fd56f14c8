/*
 * test_retry.c - exponential backoff with full jitter: the sequence of
 * caps, the bounds of the jittered delay, the spread of the random
 * source, and the arithmetic at the edges (attempt 0, huge attempts,
 * huge or odd multipliers, initial above max) where a naive power
 * overflows.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_impl.h"

static void
test_cap_sequence(void **state)
{
    cairni_retry_cfg r = {
        .initial_ms = 100, .max_ms = 10000, .multiplier = 2.0};
    const uint64_t want[] = {100,  100,  200,  400,   800,
                             1600, 3200, 6400, 10000, 10000};
    for (uint32_t a = 0; a < 10; a++) {
        assert_int_equal(cairni_backoff_cap(&r, a), want[a]);
    }
    r.multiplier = 1.5;
    assert_int_equal(cairni_backoff_cap(&r, 3), 225);
    r.multiplier = 1.0;
    assert_int_equal(cairni_backoff_cap(&r, 1000000), 100);
    (void)state;
}

static void
test_cap_edges(void **state)
{
    cairni_retry_cfg r = {
        .initial_ms = 1, .max_ms = UINT64_MAX, .multiplier = 2.0};
    /* 2^63 is still below max; 2^64 and beyond are not representable */
    assert_int_equal(cairni_backoff_cap(&r, 64), UINT64_C(1) << 63);
    assert_int_equal(cairni_backoff_cap(&r, 65), UINT64_MAX);
    assert_int_equal(cairni_backoff_cap(&r, UINT32_MAX), UINT64_MAX);

    r = (cairni_retry_cfg){
        .initial_ms = 50, .max_ms = 60000, .multiplier = 1e300};
    assert_int_equal(cairni_backoff_cap(&r, 2), 60000);
    assert_int_equal(cairni_backoff_cap(&r, UINT32_MAX), 60000);
    r.multiplier = INFINITY;
    assert_int_equal(cairni_backoff_cap(&r, 2), 60000);
    r.multiplier = NAN;
    assert_int_equal(cairni_backoff_cap(&r, 7), 50);
    r.multiplier = 0.5; /* shrinking, never below zero */
    assert_int_equal(cairni_backoff_cap(&r, 2), 25);
    assert_int_equal(cairni_backoff_cap(&r, UINT32_MAX), 0);

    r = (cairni_retry_cfg){
        .initial_ms = 5000, .max_ms = 1000, .multiplier = 2.0};
    assert_int_equal(cairni_backoff_cap(&r, 1), 1000);
    (void)state;
}

static void
test_jitter_bounds(void **state)
{
    cairni_retry_cfg r = {.initial_ms = 100, .max_ms = 1000, .multiplier = 2.0};
    assert_int_equal(cairni_backoff_delay(&r, 3, 0), 0);
    assert_int_equal(cairni_backoff_delay(&r, 3, UINT64_MAX), 400);
    assert_int_equal(cairni_backoff_delay(&r, 3, UINT64_C(1) << 63), 200);

    r.max_ms = UINT64_MAX;
    r.initial_ms = 1;
    assert_int_equal(cairni_backoff_delay(&r, 100, 12345), 12345);

    /* random draws: within [0, cap], and spread over the range */
    r = (cairni_retry_cfg){
        .initial_ms = 1000, .max_ms = 1000, .multiplier = 2.0};
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t v = cairni_backoff_delay(&r, 5, cairni_retry_rand());
        assert_true(v <= 1000);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    assert_true(lo < 20 && hi > 980);
    assert_true(sum / 20000 > 450 && sum / 20000 < 550);
    (void)state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_sequence),
        cmocka_unit_test(test_cap_edges),
        cmocka_unit_test(test_jitter_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
