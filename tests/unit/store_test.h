/*
 * store_test.h - helpers shared by the store's unit tests: a temporary
 * database directory, default options with tiny backoff delays,
 * envelopes whose payload says "key:n", and draining with a deadline
 * (tests wait on the API, never on sleep()).
 */
#ifndef CAIRN_STORE_TEST_H
#define CAIRN_STORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_impl.h"

#define T_WAIT_MS 10000 /* bound on any wait for an event */

typedef struct tdb {
    char dir[256];
    char path[320];
} tdb;

static inline void
tdb_init(tdb *t)
{
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof(t->dir), "%s/cairn-store-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/cairn.db", t->dir);
}

static inline void
tdb_fini(tdb *t)
{
    char                     p[400];
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static inline cairni_store_opts
topts(const char *path)
{
    cairni_store_opts o = {
        .path = path,
        .sync = CAIRNI_SYNC_NORMAL,
        .retry = {.initial_ms = 1, .max_ms = 4, .multiplier = 2},
        .inbox_window_ms = 3600000,
        .dest_default = {.name = "", .window = 100},
    };
    return o;
}

static inline cairni_store *
topen(const cairni_store_opts *o)
{
    cairni_store *s = NULL;
    char          err[256];
    cairn_err     rv = cairni_store_open(&s, o, err, sizeof(err));
    if (rv != CAIRN_OK) {
        fail_msg("store open: %s (%s)", err, cairn_strerror(rv));
    }
    return s;
}

/* An envelope on topic with ordering key (NULL: the topic) whose payload
 * is "key:n", written into buf. */
static inline cairn_envelope
tenv(const char *topic, const char *key, int n, char *buf, size_t cap)
{
    cairn_envelope e;
    cairn_envelope_init(&e);
    e.topic = cairn_str_c(topic);
    if (key != NULL) {
        e.key = cairn_str_c(key);
        e.flags |= CAIRN_ENV_HAS_KEY;
    }
    e.ts = cairn_now_ms(); /* fixed sizes: ts and id are set, not filled */
    cairn_id_new(e.id);
    int len = snprintf(buf, cap, "%s:%d", key ? key : topic, n);
    e.payload.ptr = (const uint8_t *)buf;
    e.payload.len = (size_t)len;
    return e;
}

static inline void
tput(cairni_store *s, const char *dest, const char *key, int n, int prio)
{
    char           buf[64];
    cairn_envelope e = tenv("t/x", key, n, buf, sizeof(buf));
    assert_int_equal(cairni_outbox_put(s, dest, &e, prio), CAIRN_OK);
}

/* The n of a record's "key:n" payload; its key into key (cap 16). */
static inline int
tnum(const cairn_record *r, char key[16])
{
    const char *p = memchr(r->env.payload.ptr, ':', r->env.payload.len);
    assert_non_null(p);
    size_t kl = (size_t)(p - (const char *)r->env.payload.ptr);
    if (key != NULL) {
        snprintf(key, 16, "%.*s", (int)kl, (const char *)r->env.payload.ptr);
    }
    return atoi(p + 1);
}

/* Calls next until want records came or T_WAIT_MS passed. */
static inline size_t
tnext(cairni_drain *d, cairn_record *recs, size_t max, size_t want)
{
    size_t   got = 0;
    uint64_t deadline = cairni_mono_ms() + T_WAIT_MS;
    while (got < want && cairni_mono_ms() < deadline) {
        size_t    n = 0;
        cairn_err rv = cairni_drain_next(d, recs + got, max - got, 50, &n);
        assert_int_equal(rv, CAIRN_OK);
        got += n;
    }
    return got;
}

static inline cairni_dest_stats
tstats(cairni_store *s, const char *dest)
{
    cairni_dest_stats st;
    assert_int_equal(cairni_store_stats(s, dest, &st), CAIRN_OK);
    return st;
}

#endif /* CAIRN_STORE_TEST_H */
