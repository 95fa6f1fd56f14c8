/*
 * testplug.c - one source, several deliberately odd plugins, chosen with
 * TP_MODE at compile time, for the loader's refusal tests:
 *
 *   TP_NOENTRY   exports no entry symbol
 *   TP_ABI2      claims plugin ABI 2.0
 *   TP_SMALL     descriptor smaller than ABI 1.0's
 *   TP_INITFAIL  init fails
 *   TP_V10       frozen ABI 1.0 layout (size exactly the 1.0 size): must
 *                keep loading as the ABI grows
 *   TP_FUTURE    a later 1.x minor with a bigger descriptor: must load
 *   TP_ECHO      a working plugin with an "echo" service
 */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn/cairn.h>

/* Macros, not an enum: TP_MODE is also tested with #if. */
#define TP_NOENTRY 1
#define TP_ABI2 2
#define TP_SMALL 3
#define TP_INITFAIL 4
#define TP_V10 5
#define TP_FUTURE 6
#define TP_ECHO 7

typedef struct tp {
    const cairn_host *host;
    cairn_plugin     *self;
    _Atomic long      slept_ms; /* how long host->sleep(200) really took */
} tp;

static long
tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "slept": how long the run thread's host->sleep(200) took, -1 before. */
static cairn_err
tp_slept(void *arg, const cairn_envelope *req, cairn_out *out)
{
    tp  *t = arg;
    char buf[32];
    int  n = snprintf(buf, sizeof(buf), "%ld", atomic_load(&t->slept_ms));
    return t->host->out_append(out, buf, (size_t)n);
}

static void
tp_run(void *state)
{
    tp  *t  = state;
    long t0 = tp_now_ms();
    if (t->host->sleep(t->self, 200)) {
        atomic_store(&t->slept_ms, tp_now_ms() - t0);
    }
}

static cairn_err
tp_echo(void *arg, const cairn_envelope *req, cairn_out *out)
{
    tp *t = arg;
    return t->host->out_append(out, req->payload.ptr, req->payload.len);
}

static cairn_err
tp_init(const cairn_host *host, cairn_plugin *self, const void *config,
        void **statep)
{
    if (TP_MODE == TP_INITFAIL) {
        host->log(self, CAIRN_LOG_ERROR, "refusing to initialize on purpose");
        return CAIRN_EIO;
    }
    tp *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return CAIRN_ENOMEM;
    }
    t->host = host;
    t->self = self;
    atomic_store(&t->slept_ms, -1);
    *statep = t;
    return CAIRN_OK;
}

static cairn_err
tp_start(void *state)
{
    tp *t = state;
    if (TP_MODE == TP_ECHO) {
        cairn_err rv = t->host->serve(t->self, "echo", tp_echo, t, NULL);
        return rv != CAIRN_OK
                   ? rv
                   : t->host->serve(t->self, "echo.slept", tp_slept, t, NULL);
    }
    return CAIRN_OK;
}

static void
tp_stop(void *state)
{
}

static void
tp_fini(void *state)
{
    free(state);
}

/* A descriptor from a later minor: the 1.0 fields, then more. */
typedef struct tp_desc_future {
    cairn_plugin_desc base;
    void (*later_hook)(void *state);
    uint64_t later_flags;
} tp_desc_future;

static const tp_desc_future tp_desc = {
    .base =
        {
            .abi_version = TP_MODE == TP_ABI2     ? (2u << 16)
                           : TP_MODE == TP_FUTURE ? ((1u << 16) | 7u)
                                                  : CAIRN_ABI_VERSION,
            .size = TP_MODE == TP_SMALL    ? 16
                    : TP_MODE == TP_V10    ? CAIRN_PLUGIN_DESC_V1_0_SIZE
                    : TP_MODE == TP_FUTURE ? sizeof(tp_desc_future)
                                           : sizeof(cairn_plugin_desc),
            .name        = "testplug",
            .version     = "0",
            .description = "loader test plugin",
            .init        = tp_init,
            .start       = tp_start,
            .run         = TP_MODE == TP_ECHO ? tp_run : NULL,
            .stop        = tp_stop,
            .fini        = tp_fini,
        },
    .later_flags = 1,
};

#if TP_MODE == TP_NOENTRY
CAIRN_EXPORT const void *not_the_entry(void);
const void *
not_the_entry(void)
{
    return &tp_desc;
}
#else
CAIRN_EXPORT const cairn_plugin_desc *cairn_plugin_v1(void);
const cairn_plugin_desc *
cairn_plugin_v1(void)
{
    return &tp_desc.base;
}
#endif
