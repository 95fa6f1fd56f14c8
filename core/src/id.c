/*
 * id.c - time-ordered message ids (UUIDv7 layout) and the wall clock.
 *
 * The 48-bit millisecond and the 12-bit sequence form one counter that is
 * advanced with compare-and-swap, so ids made in one process strictly
 * increase even within one millisecond or when the clock steps back; an
 * exhausted sequence moves into the next millisecond.  The 62 random bits
 * come from a per-thread buffer filled by getrandom(), refilled after fork.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cairni.h"

/* ---- ids --------------------------------------------------------------- */

static const char id_hex[] = "0123456789abcdef";

/* (ms << 12) | sequence of the last id made in this process. */
static _Atomic uint64_t id_clock;

/* Bumped in a forked child so that it does not reuse its parent's pool. */
static _Atomic unsigned id_fork_gen;
static pthread_once_t   id_once = PTHREAD_ONCE_INIT;

static _Thread_local struct {
    uint8_t  pool[256];
    size_t   avail; /* unused bytes at the end of pool */
    unsigned gen;
} id_rand;

static void
id_atfork_child(void)
{
    atomic_fetch_add(&id_fork_gen, 1);
}

static void
id_init(void)
{
    (void)pthread_atfork(NULL, NULL, id_atfork_child);
}

static void
id_refill(void)
{
    size_t got = 0;
    while (got < sizeof(id_rand.pool)) {
        ssize_t n =
            getrandom(id_rand.pool + got, sizeof(id_rand.pool) - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* No getrandom (old kernel, sandbox): weaker bits, still unlike
             * those of other processes.  Uniqueness within the process
             * rests on the clock and sequence alone. */
            uint64_t x = (cairni_mono_us() ^ (uint64_t)getpid() << 40) | 1;
            for (size_t i = got; i < sizeof(id_rand.pool); i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                id_rand.pool[i] = (uint8_t)x;
            }
            break;
        }
        got += (size_t)n;
    }
    id_rand.avail = sizeof(id_rand.pool);
}

/* 8 random bytes from this thread's pool. */
static void
id_random8(uint8_t out[8])
{
    unsigned gen = atomic_load_explicit(&id_fork_gen, memory_order_relaxed);
    if (id_rand.avail < 8 || id_rand.gen != gen) {
        id_refill();
        id_rand.gen = gen;
    }
    id_rand.avail -= 8;
    memcpy(out, id_rand.pool + id_rand.avail, 8);
}

/* Next value of the 60-bit clock: above the last one and at least now. */
static uint64_t
id_tick(void)
{
    uint64_t now = (cairn_now_ms() & ((UINT64_C(1) << 48) - 1)) << 12;
    uint64_t last = atomic_load_explicit(&id_clock, memory_order_relaxed);
    uint64_t next;
    do {
        next = last + 1 > now ? last + 1 : now;
    } while (!atomic_compare_exchange_weak(&id_clock, &last, next));
    return next;
}

void
cairn_id_new(uint8_t id[CAIRN_ID_LEN])
{
    uint8_t rnd[8];

    pthread_once(&id_once, id_init);
    uint64_t clk = id_tick();
    uint64_t ms = clk >> 12;
    unsigned seq = (unsigned)(clk & 0xFFF);
    for (int i = 0; i < 6; i++) {
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    }
    id[6] = (uint8_t)(0x70 | (seq >> 8));
    id[7] = (uint8_t)seq;
    id_random8(rnd);
    id[8] = (uint8_t)(0x80 | (rnd[0] & 0x3F));
    memcpy(id + 9, rnd + 1, 7);
}

uint64_t
cairn_id_time_ms(const uint8_t id[CAIRN_ID_LEN])
{
    return cairni_load_be(id, 6);
}

char *
cairn_id_format(const uint8_t id[CAIRN_ID_LEN], char out[37])
{
    char *p = out;
    for (int i = 0; i < CAIRN_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }
        *p++ = id_hex[id[i] >> 4];
        *p++ = id_hex[id[i] & 0xF];
    }
    *p = '\0';
    return out;
}

static int
id_hexval(char c)
{
    const char *p =
        c != '\0' ? memchr(id_hex, tolower((unsigned char)c), 16) : NULL;
    return p != NULL ? (int)(p - id_hex) : -1;
}

cairn_err
cairn_id_parse(const char *text, uint8_t id[CAIRN_ID_LEN])
{
    uint8_t out[CAIRN_ID_LEN];
    size_t  n = 0;

    if (text == NULL || id == NULL) {
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash) {
            if (text[i] != '-') {
                return CAIRN_EINVAL;
            }
            continue;
        }
        int v = id_hexval(text[i]);
        if (v < 0) {
            return CAIRN_EINVAL;
        }
        out[n / 2] = (uint8_t)(n % 2 == 0 ? v << 4 : out[n / 2] | v);
        n++;
    }
    if (text[36] != '\0') {
        return CAIRN_EINVAL;
    }
    memcpy(id, out, CAIRN_ID_LEN);
    return CAIRN_OK;
}

uint64_t
cairn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
