/*
 * retry.c - exponential backoff with full jitter, and the random numbers
 * it draws.
 *
 * The cap before attempt a (1-based) is min(max_ms, initial_ms *
 * multiplier^(a-1)); the delay is uniform in [0, cap] ("full jitter"), so
 * a crowd of retrying records spreads out instead of hammering the far
 * side in step.  The power is computed by squaring in double precision
 * and compared against max_ms before any conversion, so huge attempts,
 * huge multipliers and infinities all end at max_ms, never in overflow.
 *
 * Random numbers: each thread has its own xorshift64* state, seeded from
 * getrandom() on first use (and from the clock and the thread's address
 * if getrandom fails); no lock, no shared state.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "store_impl.h"

/* x^e for e >= 0, by squaring; stops early once the result passes limit
 * (only meaningful when x >= 1). */
static double
retry_pow(double x, uint64_t e, double limit)
{
    double r = 1.0;
    while (e > 0) {
        if (e & 1) {
            r *= x;
            if (x >= 1.0 && r > limit) {
                return limit * 2.0;
            }
        }
        e >>= 1;
        if (e > 0) {
            x *= x;
        }
    }
    return r;
}

uint64_t
cairni_backoff_cap(const cairni_retry_cfg *r, uint32_t attempt)
{
    uint64_t init = r->initial_ms;
    uint64_t max = r->max_ms;
    double   mult = r->multiplier;

    if (init >= max) {
        return max;
    }
    if (attempt <= 1 || !(mult > 0.0)) { /* also catches NaN */
        return init;
    }
    double limit = (double)max / (double)init;
    double f = retry_pow(mult, (uint64_t)attempt - 1, limit);
    if (!(f < limit)) { /* too big, infinite or NaN */
        return max;
    }
    double v = (double)init * f;
    if (!(v < (double)max)) {
        return max;
    }
    return (uint64_t)v;
}

/* High 64 bits of a * b, without a 128-bit type (armhf has none). */
static uint64_t
retry_mulhi(uint64_t a, uint64_t b)
{
    uint64_t alo = (uint32_t)a, ahi = a >> 32;
    uint64_t blo = (uint32_t)b, bhi = b >> 32;
    uint64_t ll = alo * blo, lh = alo * bhi, hl = ahi * blo, hh = ahi * bhi;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

uint64_t
cairni_backoff_delay(const cairni_retry_cfg *r, uint32_t attempt, uint64_t rnd)
{
    uint64_t cap = cairni_backoff_cap(r, attempt);
    if (cap == UINT64_MAX) {
        return rnd;
    }
    /* floor(rnd * (cap + 1) / 2^64): uniform over 0..cap */
    return retry_mulhi(rnd, cap + 1);
}

static _Thread_local uint64_t retry_state;

static void
retry_seed(void)
{
    uint64_t seed = 0;
    ssize_t  n;
    do {
        n = getrandom(&seed, sizeof(seed), 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(seed)) {
        seed = cairni_mono_us() ^ (uint64_t)(uintptr_t)&retry_state;
    }
    retry_state = seed != 0 ? seed : 0x9E3779B97F4A7C15ull;
}

uint64_t
cairni_retry_rand(void)
{
    if (retry_state == 0) {
        retry_seed();
    }
    uint64_t x = retry_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    retry_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
