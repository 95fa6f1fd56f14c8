/*
 * util.c - small pieces every module uses: a growable byte buffer, an
 * arena whose allocations are freed together, the monotonic clock and the
 * mapping of NNG errors onto cairn_err.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "cairni.h"

static cairn_err
buf_reserve(cairni_buf *b, size_t extra)
{
    if (b->failed) {
        return CAIRN_ENOMEM;
    }
    if (b->len + extra + 1 <= b->cap) {
        return CAIRN_OK;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            goto fail;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        goto fail;
    }
    b->data = p;
    b->cap  = cap;
    return CAIRN_OK;
fail:
    b->failed = true;
    return CAIRN_ENOMEM;
}

cairn_err
cairni_buf_append(cairni_buf *b, const void *data, size_t len)
{
    cairn_err rv = buf_reserve(b, len);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return CAIRN_OK;
}

cairn_err
cairni_buf_printf(cairni_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CAIRN_EINVAL;
    }
    cairn_err rv = buf_reserve(b, (size_t)n);
    if (rv != CAIRN_OK) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CAIRN_OK;
}

void
cairni_buf_fini(cairni_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

struct cairni_arena_blk {
    struct cairni_arena_blk *next;
    max_align_t              data[];
};

void *
cairni_arena_alloc(cairni_arena *a, size_t size)
{
    if (size > SIZE_MAX - sizeof(struct cairni_arena_blk)) {
        return NULL;
    }
    struct cairni_arena_blk *blk =
        calloc(1, sizeof(struct cairni_arena_blk) + size);
    if (blk == NULL) {
        return NULL;
    }
    blk->next = a->head;
    a->head   = blk;
    return blk->data;
}

char *
cairni_arena_strndup(cairni_arena *a, const char *s, size_t n)
{
    char *p = cairni_arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void
cairni_arena_fini(cairni_arena *a)
{
    struct cairni_arena_blk *blk = a->head;
    while (blk != NULL) {
        struct cairni_arena_blk *next = blk->next;
        free(blk);
        blk = next;
    }
    a->head = NULL;
}

uint64_t
cairni_load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t
cairni_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
cairni_mono_ms(void)
{
    return cairni_mono_us() / 1000u;
}

cairn_err
cairni_nng_err(int rv)
{
    switch (rv) {
    case 0:
        return CAIRN_OK;
    case NNG_ENOMEM:
        return CAIRN_ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
        return CAIRN_EINVAL;
    case NNG_ETIMEDOUT:
        return CAIRN_ETIMEDOUT;
    case NNG_ENOENT:
        return CAIRN_ENOENT;
    case NNG_EADDRINUSE:
        return CAIRN_EEXIST;
    case NNG_EAGAIN:
        return CAIRN_EFULL;
    case NNG_ECLOSED:
    case NNG_ECANCELED:
        return CAIRN_ECLOSED;
    case NNG_EPROTO:
        return CAIRN_EPROTO;
    case NNG_EMSGSIZE:
        return CAIRN_ETOOBIG;
    case NNG_ENOTSUP:
        return CAIRN_ENOTSUP;
    case NNG_EBUSY:
        return CAIRN_EBUSY;
    case NNG_ECONNREFUSED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
        return CAIRN_ECONNREFUSED;
    default:
        if (rv & NNG_ESYSERR) {
            return cairn_errno(rv & ~NNG_ESYSERR);
        }
        return CAIRN_EIO;
    }
}
