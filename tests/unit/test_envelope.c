/*
 * test_envelope.c - the CBOR envelope codec and message ids.
 *
 * Round trips cover every combination of optional fields and the head
 * sizes of lengths and integers; malformed inputs are built byte by byte
 * (tb_* below) so that each class of error is checked with its exact code:
 * truncation at every offset, trailing bytes, wrong types, indefinite
 * lengths on known keys, lengths beyond the input, duplicates, missing
 * fields, size, text, header, key, depth and item limits.  Unknown keys
 * must be skipped whatever their value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cairni.h"

/* ---- a tiny CBOR writer for hand-made inputs ----------------------------- */

typedef struct tb {
    uint8_t b[16384];
    size_t  n;
} tb;

static void
tb_raw(tb *t, const void *p, size_t n)
{
    assert_true(t->n + n <= sizeof(t->b));
    memcpy(t->b + t->n, p, n);
    t->n += n;
}

static void
tb_byte(tb *t, uint8_t v)
{
    tb_raw(t, &v, 1);
}

/* Shortest head for major type and value. */
static void
tb_head(tb *t, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        tb_byte(t, m | (uint8_t)v);
        return;
    }
    int n = v <= 0xFF ? 1 : v <= 0xFFFF ? 2 : v <= 0xFFFFFFFF ? 4 : 8;
    tb_byte(t, m | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27));
    for (int i = n - 1; i >= 0; i--) {
        tb_byte(t, (uint8_t)(v >> (8 * i)));
    }
}

static void
tb_bytes(tb *t, const void *p, size_t n)
{
    tb_head(t, 2, n);
    tb_raw(t, p, n);
}

static void
tb_text(tb *t, const char *s)
{
    tb_head(t, 3, strlen(s));
    tb_raw(t, s, strlen(s));
}

/* A byte string literal that may hold NULs. */
typedef struct raw {
    const char *s;
    size_t      n;
} raw;

#define R(x)                                                                   \
    {                                                                          \
        x, sizeof(x) - 1                                                       \
    }

static void
tb_lit(tb *t, raw r)
{
    tb_raw(t, r.s, r.n);
}

static const uint8_t id_a[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                 9, 10, 11, 12, 13, 14, 15, 16};

/* Writes the value of required key k (0..3). */
static void
tb_required_value(tb *t, unsigned k)
{
    switch (k) {
    case 0:
        tb_bytes(t, "hello", 5);
        break;
    case 1:
        tb_bytes(t, id_a, 16);
        break;
    case 2:
        tb_text(t, "a/b");
        break;
    default:
        tb_head(t, 0, 1700000000000u);
        break;
    }
}

/* A map head for 4 + extra entries and the required fields but skip. */
static void
tb_base(tb *t, size_t extra, int skip)
{
    t->n = 0;
    tb_head(t, 5, 4 + extra - (skip >= 0 ? 1 : 0));
    for (unsigned k = 0; k < 4; k++) {
        if ((int)k != skip) {
            tb_head(t, 0, k);
            tb_required_value(t, k);
        }
    }
}

/*
 * A valid map whose entry for key (raw bytes val) is added, replacing the
 * required field of that key if there is one.
 */
static void
tb_with(tb *t, uint64_t key, const void *val, size_t vlen)
{
    if (key < 4) {
        tb_base(t, 1, (int)key);
    } else {
        tb_base(t, 1, -1);
    }
    tb_head(t, 0, key);
    tb_raw(t, val, vlen);
}

static cairn_err
tb_decode(const tb *t, cairn_envelope *env)
{
    return cairn_envelope_decode(t->b, t->n, env);
}

/* ---- comparing envelopes ------------------------------------------------- */

static void
assert_str_eq(cairn_str a, cairn_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.ptr, b.ptr, a.len);
    }
}

static void
assert_env_eq(const cairn_envelope *a, const cairn_envelope *b)
{
    assert_int_equal(a->payload.len, b->payload.len);
    if (a->payload.len > 0) {
        assert_memory_equal(a->payload.ptr, b->payload.ptr, a->payload.len);
    }
    assert_memory_equal(a->id, b->id, CAIRN_ID_LEN);
    assert_str_eq(a->topic, b->topic);
    assert_true(a->ts == b->ts);
    assert_int_equal(a->flags, b->flags);
    if (a->flags & CAIRN_ENV_HAS_CORR) {
        assert_memory_equal(a->corr, b->corr, CAIRN_ID_LEN);
    }
    if (a->flags & CAIRN_ENV_HAS_CTYPE) {
        assert_str_eq(a->ctype, b->ctype);
    }
    if (a->flags & CAIRN_ENV_HAS_ATTEMPT) {
        assert_int_equal(a->attempt, b->attempt);
    }
    if (a->flags & CAIRN_ENV_HAS_KEY) {
        assert_str_eq(a->key, b->key);
    }
    assert_int_equal(a->nheaders, b->nheaders);
    for (uint32_t i = 0; i < a->nheaders; i++) {
        assert_str_eq(a->headers[i].name, b->headers[i].name);
        assert_str_eq(a->headers[i].value, b->headers[i].value);
    }
}

/* A fully populated envelope (strings borrowed from static storage). */
static void
env_full(cairn_envelope *env)
{
    static const uint8_t payload[] = {0x00, 0xFF, 0x10, 0x20, 0x30};
    cairn_envelope_init(env);
    env->payload.ptr = payload;
    env->payload.len = sizeof(payload);
    cairn_id_new(env->id);
    env->topic = cairn_str_c("sensors/temp/1");
    env->ts = 1700000000123u;
    cairn_id_new(env->corr);
    env->ctype = cairn_str_c("application/json");
    env->headers[0].name = cairn_str_c("traceparent");
    env->headers[0].value = cairn_str_c("00-abc-def-01");
    env->headers[1].name = cairn_str_c("x");
    env->headers[1].value = cairn_str_c("");
    env->nheaders = 2;
    env->attempt = 3;
    env->key = cairn_str_c("dev-7");
    env->flags = CAIRN_ENV_HAS_CORR | CAIRN_ENV_HAS_CTYPE |
                 CAIRN_ENV_HAS_ATTEMPT | CAIRN_ENV_HAS_KEY;
}

static void
roundtrip(const cairn_envelope *env, uint8_t *buf, size_t cap)
{
    size_t         len = 0;
    size_t         want = cairn_envelope_encoded_size(env);
    cairn_envelope out;

    assert_true(want > 0);
    assert_int_equal(cairn_envelope_encode(env, buf, cap, &len), CAIRN_OK);
    assert_int_equal(len, want);
    assert_int_equal(cairn_envelope_decode(buf, len, &out), CAIRN_OK);
    assert_env_eq(env, &out);
    /* Zero copy: strings point into the input. */
    assert_true(out.topic.ptr >= (const char *)buf &&
                out.topic.ptr + out.topic.len <= (const char *)buf + len);
    if (out.payload.len > 0) {
        assert_true(out.payload.ptr >= buf &&
                    out.payload.ptr + out.payload.len <= buf + len);
    }
}

/* ---- round trips --------------------------------------------------------- */

static void
test_roundtrip_combinations(void **state)
{
    static uint8_t buf[4096];
    (void)state;
    for (unsigned mask = 0; mask < 32; mask++) {
        cairn_envelope env;
        env_full(&env);
        env.flags = 0;
        if (mask & 1) {
            env.flags |= CAIRN_ENV_HAS_CORR;
        }
        if (mask & 2) {
            env.flags |= CAIRN_ENV_HAS_CTYPE;
        }
        if (mask & 4) {
            env.flags |= CAIRN_ENV_HAS_ATTEMPT;
        }
        if (mask & 8) {
            env.flags |= CAIRN_ENV_HAS_KEY;
        }
        if (!(mask & 16)) {
            env.nheaders = 0;
        }
        roundtrip(&env, buf, sizeof(buf));
        /* Empty payload and NULL pointers for empty strings. */
        env.payload.ptr = NULL;
        env.payload.len = 0;
        env.ctype = (cairn_str){NULL, 0};
        env.key = (cairn_str){NULL, 0};
        roundtrip(&env, buf, sizeof(buf));
    }
}

static void
test_roundtrip_sizes(void **state)
{
    static const uint64_t ints[] = {
        0,     1,     23,          24,           255,        256,
        65535, 65536, 0xFFFFFFFFu, 0x100000000u, UINT64_MAX,
    };
    static const size_t lens[] = {0, 1, 23, 24, 255, 256, 65535, 65536, 70000};
    size_t              cap = 200000;
    uint8_t            *buf = malloc(cap);
    uint8_t            *data = malloc(70000);
    cairn_envelope      env;
    (void)state;
    assert_non_null(buf);
    assert_non_null(data);
    for (size_t i = 0; i < 70000; i++) {
        data[i] = (uint8_t)(i * 7);
    }
    env_full(&env);
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(ints); i++) {
        env.ts = ints[i];
        env.attempt = ints[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)ints[i];
        roundtrip(&env, buf, cap);
    }
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(lens); i++) {
        env.payload.ptr = data;
        env.payload.len = lens[i];
        roundtrip(&env, buf, cap);
    }
    /* Every header slot, texts at the limit. */
    char big[CAIRN_ENV_MAX_TEXT];
    memset(big, 'h', sizeof(big));
    for (uint32_t i = 0; i < CAIRN_ENV_MAX_HEADERS; i++) {
        env.headers[i].name = (cairn_str){big, CAIRN_ENV_MAX_TEXT - i};
        env.headers[i].value = (cairn_str){big, i};
    }
    env.nheaders = CAIRN_ENV_MAX_HEADERS;
    env.topic = (cairn_str){big, CAIRN_TOPIC_MAX};
    env.key = (cairn_str){big, CAIRN_ENV_MAX_TEXT};
    env.ctype = (cairn_str){big, CAIRN_ENV_MAX_TEXT};
    roundtrip(&env, buf, cap);
    free(data);
    free(buf);
}

static void
test_encode_canonical(void **state)
{
    static const uint8_t want[] = {
        0xA7,                  /* map(7), keys ascending */
        0x00, 0x42, 'h',  'i', /* payload */
        0x01, 0x50, 1,    2,   3,    4,  5,  6,    7,    8,   9,
        10,   11,   12,   13,  14,   15, 16, 0x02, 0x61, 't', /* topic */
        0x03, 0x18, 0x18,                                     /* ts 24 */
        0x06, 0xA1, 0x61, 'k', 0x60, /* headers {"k": ""} */
        0x07, 0x00,                  /* attempt 0 */
        0x08, 0x61, 'q',             /* key */
    };
    uint8_t        buf[128];
    size_t         len = 0;
    cairn_envelope env;
    (void)state;
    cairn_envelope_init(&env);
    env.payload = (cairn_bytes){(const uint8_t *)"hi", 2};
    memcpy(env.id, id_a, 16);
    env.topic = cairn_str_c("t");
    env.ts = 24;
    env.headers[0].name = cairn_str_c("k");
    env.headers[0].value = cairn_str_c("");
    env.nheaders = 1;
    env.key = cairn_str_c("q");
    env.flags = CAIRN_ENV_HAS_ATTEMPT | CAIRN_ENV_HAS_KEY;
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_OK);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void
test_encode_errors(void **state)
{
    uint8_t        buf[512];
    size_t         len = 0;
    cairn_envelope env;
    char           big[CAIRN_ENV_MAX_TEXT + 1];
    (void)state;
    memset(big, 'x', sizeof(big));
    env_full(&env);
    size_t size = cairn_envelope_encoded_size(&env);
    for (size_t cap = 0; cap < size; cap++) {
        assert_int_equal(cairn_envelope_encode(&env, buf, cap, &len),
                         CAIRN_ETOOBIG);
    }
    assert_int_equal(cairn_envelope_encode(&env, buf, size, &len), CAIRN_OK);
    assert_int_equal(cairn_envelope_encode(NULL, buf, size, &len),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_envelope_encode(&env, buf, size, NULL),
                     CAIRN_EINVAL);

    env.nheaders = CAIRN_ENV_MAX_HEADERS + 1;
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_envelope_encoded_size(&env), 0);
    env_full(&env);
    env.topic = cairn_str_c("a/+");
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    env.topic = cairn_str_c("");
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    env_full(&env);
    env.ctype = (cairn_str){big, sizeof(big)};
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    env.flags &= ~(uint32_t)CAIRN_ENV_HAS_CTYPE; /* absent: not checked */
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_OK);
    env_full(&env);
    env.headers[1].value = (cairn_str){big, sizeof(big)};
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    env_full(&env);
    env.payload = (cairn_bytes){NULL, 3};
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
    env_full(&env);
    env.key = (cairn_str){NULL, 1};
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_EINVAL);
}

static void
test_encode_max_size(void **state)
{
    size_t         cap = CAIRN_ENV_MAX_SIZE + 64;
    uint8_t       *buf = malloc(cap);
    uint8_t       *data = calloc(1, CAIRN_ENV_MAX_SIZE);
    size_t         len = 0;
    cairn_envelope env, out;
    (void)state;
    assert_non_null(buf);
    assert_non_null(data);
    env_full(&env);
    env.payload = (cairn_bytes){data, CAIRN_ENV_MAX_SIZE};
    assert_int_equal(cairn_envelope_encoded_size(&env), 0);
    assert_int_equal(cairn_envelope_encode(&env, buf, cap, &len), CAIRN_EINVAL);
    /* The largest payload that fits decodes again. */
    env.payload.len = 0;
    size_t rest = CAIRN_ENV_MAX_SIZE - cairn_envelope_encoded_size(&env);
    env.payload.len = rest - 4; /* the length head grows by 4 bytes */
    assert_int_equal(cairn_envelope_encoded_size(&env), CAIRN_ENV_MAX_SIZE);
    assert_int_equal(cairn_envelope_encode(&env, buf, cap, &len), CAIRN_OK);
    assert_int_equal(cairn_envelope_decode(buf, len, &out), CAIRN_OK);
    assert_env_eq(&env, &out);
    env.payload.len++;
    assert_int_equal(cairn_envelope_encode(&env, buf, cap, &len), CAIRN_EINVAL);
    free(data);
    free(buf);
}

/* ---- malformed input ----------------------------------------------------- */

static void
test_decode_truncated(void **state)
{
    uint8_t        buf[512];
    size_t         len = 0;
    cairn_envelope env, out;
    (void)state;
    env_full(&env);
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_OK);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes so that ASan sees any over-read. */
        uint8_t *cut = malloc(n > 0 ? n : 1);
        assert_non_null(cut);
        memcpy(cut, buf, n);
        assert_int_equal(cairn_envelope_decode(cut, n, &out), CAIRN_EPROTO);
        free(cut);
    }
    assert_int_equal(cairn_envelope_decode(buf, len, &out), CAIRN_OK);
}

static void
test_decode_trailing(void **state)
{
    uint8_t        buf[512];
    size_t         len = 0;
    cairn_envelope env, out;
    (void)state;
    env_full(&env);
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_OK);
    buf[len] = 0x00;
    assert_int_equal(cairn_envelope_decode(buf, len + 1, &out), CAIRN_EPROTO);
    /* A second envelope after the first. */
    memcpy(buf + len, buf, len);
    assert_int_equal(cairn_envelope_decode(buf, 2 * len, &out), CAIRN_EPROTO);
}

static void
test_decode_args(void **state)
{
    cairn_envelope env;
    uint8_t        one = 0xA0;
    (void)state;
    assert_int_equal(cairn_envelope_decode(NULL, 0, &env), CAIRN_EPROTO);
    assert_int_equal(cairn_envelope_decode(NULL, 5, &env), CAIRN_EINVAL);
    assert_int_equal(cairn_envelope_decode(&one, 1, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_envelope_decode(&one, 1, &env), CAIRN_EPROTO);
}

struct bad_value {
    uint64_t    key;
    const char *val;
    size_t      len;
    cairn_err   err;
};

#define BV(k, s, e)                                                            \
    {                                                                          \
        k, s, sizeof(s) - 1, e                                                 \
    }

static const struct bad_value bad_values[] = {
    /* payload: bstr only, definite only */
    BV(0, "\x65hello", CAIRN_EPROTO),
    BV(0, "\x05", CAIRN_EPROTO),
    BV(0, "\xf6", CAIRN_EPROTO),
    BV(0, "\x5f\x41x\xff", CAIRN_EPROTO),
    BV(0, "\x80", CAIRN_EPROTO),
    /* id: bstr of exactly 16 */
    BV(1,
       "\x4f"
       "123456789012345",
       CAIRN_EPROTO),
    BV(1,
       "\x51"
       "12345678901234567",
       CAIRN_EPROTO),
    BV(1, "\x40", CAIRN_EPROTO),
    BV(1,
       "\x70"
       "1234567890123456",
       CAIRN_EPROTO),
    BV(1,
       "\x5f\x50"
       "1234567890123456\xff",
       CAIRN_EPROTO),
    /* topic: valid tstr */
    BV(2,
       "\x43"
       "a/b",
       CAIRN_EPROTO),
    BV(2,
       "\x7f\x63"
       "a/b\xff",
       CAIRN_EPROTO),
    BV(2, "\x60", CAIRN_EPROTO),
    BV(2,
       "\x63"
       "a/+",
       CAIRN_EPROTO),
    BV(2, "\x61#", CAIRN_EPROTO),
    BV(2,
       "\x63"
       "a\x00"
       "b",
       CAIRN_EPROTO),
    BV(2, "\x62\xc3\x28", CAIRN_EPROTO),
    /* ts: uint */
    BV(3, "\x20", CAIRN_EPROTO),
    BV(3, "\x3b\xff\xff\xff\xff\xff\xff\xff\xff", CAIRN_EPROTO),
    BV(3,
       "\x61"
       "1",
       CAIRN_EPROTO),
    BV(3, "\xfb\x40\x00\x00\x00\x00\x00\x00\x00", CAIRN_EPROTO),
    BV(3, "\xc1\x01", CAIRN_EPROTO),
    /* corr: bstr of exactly 16 */
    BV(4,
       "\x4f"
       "123456789012345",
       CAIRN_EPROTO),
    BV(4, "\xf6", CAIRN_EPROTO),
    /* ctype, key: definite tstr */
    BV(5, "\x41x", CAIRN_EPROTO),
    BV(5, "\x7f\xff", CAIRN_EPROTO),
    BV(8, "\x41x", CAIRN_EPROTO),
    BV(8, "\x01", CAIRN_EPROTO),
    /* headers: definite map of tstr to tstr */
    BV(6, "\x80", CAIRN_EPROTO),
    BV(6, "\xbf\xff", CAIRN_EPROTO),
    BV(6, "\xbf\x61k\x61v\xff", CAIRN_EPROTO),
    BV(6, "\xa1\x61k\x01", CAIRN_EPROTO),
    BV(6, "\xa1\x01\x61v", CAIRN_EPROTO),
    BV(6, "\xa1\x41k\x61v", CAIRN_EPROTO),
    BV(6, "\xa1\x61k\x7f\xff", CAIRN_EPROTO),
    BV(6, "\xa2\x61k\x61v", CAIRN_EPROTO),
    /* attempt: uint within 32 bits */
    BV(7, "\x1b\x00\x00\x00\x01\x00\x00\x00\x00", CAIRN_EPROTO),
    BV(7, "\x20", CAIRN_EPROTO),
    BV(7, "\xf5", CAIRN_EPROTO),
    /* malformed values of unknown keys */
    BV(9, "\xff", CAIRN_EPROTO),
    BV(9, "\x1c", CAIRN_EPROTO),
    BV(9, "\xf8\x10", CAIRN_EPROTO),
    BV(9, "\xf8", CAIRN_EPROTO),
    BV(9, "\xfc", CAIRN_EPROTO),
    BV(9, "\x5f\x61x\xff", CAIRN_EPROTO),
    BV(9, "\x7f\x41x\xff", CAIRN_EPROTO),
    BV(9, "\x5f\x5f\xff\xff", CAIRN_EPROTO),
    BV(9, "\xbf\x01\xff", CAIRN_EPROTO),
    BV(9, "\x9f\x01", CAIRN_EPROTO),
    BV(9, "\x82\x01", CAIRN_EPROTO),
    BV(9, "\xc1", CAIRN_EPROTO),
    BV(9, "", CAIRN_EPROTO),
};

static void
test_decode_bad_values(void **state)
{
    tb             t;
    cairn_envelope env;
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad_values); i++) {
        const struct bad_value *b = &bad_values[i];
        tb_with(&t, b->key, b->val, b->len);
        cairn_err rv = tb_decode(&t, &env);
        if (rv != b->err) {
            fail_msg("case %zu (key %u): expected %d, got %d", i,
                     (unsigned)b->key, b->err, rv);
        }
    }
}

static void
test_decode_wrong_top(void **state)
{
    static const struct {
        const char *in;
        size_t      len;
    } cases[] = {
        {"\x80", 1},     /* array */
        {"\x00", 1},     /* uint */
        {"\xf6", 1},     /* null */
        {"\xff", 1},     /* break */
        {"\xa0", 1},     /* empty map: required fields missing */
        {"\xbf\xff", 2}, /* indefinite map */
        {"\xc0\xa0", 2}, /* tagged map */
    };
    cairn_envelope env;
    tb             t;
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(cases); i++) {
        assert_int_equal(cairn_envelope_decode((const uint8_t *)cases[i].in,
                                               cases[i].len, &env),
                         CAIRN_EPROTO);
    }
    /* A valid envelope as an indefinite map is still refused. */
    tb_base(&t, 0, -1);
    t.b[0] = 0xBF;
    tb_byte(&t, 0xFF);
    assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
    /* Keys that are not unsigned integers. */
    static const raw keys[] = {R("\x20"), R("\x61k"),        R("\x41k"),
                               R("\xf6"), R("\xf9\x00\x00"), R("\xc0\x00"),
                               R("\x80"), R("\xa0")};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(keys); i++) {
        tb_base(&t, 1, -1);
        tb_lit(&t, keys[i]);
        tb_byte(&t, 0x00);
        assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
    }
}

static void
test_decode_oversize_lengths(void **state)
{
    /* A 4 GiB byte string declared in a few bytes. */
    static const uint8_t bstr4g[] = {0xA1, 0x00, 0x5A, 0xFF, 0xFF,
                                     0xFF, 0xFF, 0x01, 0x02, 0x03};
    static const uint8_t bstr64[] = {0xA1, 0x00, 0x5B, 0x00, 0x00, 0x00,
                                     0x01, 0x00, 0x00, 0x00, 0x05, 'a'};
    static const uint8_t bstrmax[] = {0xA1, 0x00, 0x5B, 0xFF, 0xFF, 0xFF,
                                      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 'a'};
    static const uint8_t tstr4g[] = {0xA1, 0x02, 0x7A, 0xFF, 0xFF,
                                     0xFF, 0xFF, 'a',  '/',  'b'};
    static const uint8_t map4g[] = {0xBA, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x40};
    static const uint8_t map64[] = {0xBB, 0x00, 0x00, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x01, 0x00, 0x40};
    static const struct {
        const uint8_t *in;
        size_t         len;
    } cases[] = {
        {bstr4g, sizeof(bstr4g)},   {bstr64, sizeof(bstr64)},
        {bstrmax, sizeof(bstrmax)}, {tstr4g, sizeof(tstr4g)},
        {map4g, sizeof(map4g)},     {map64, sizeof(map64)},
    };
    cairn_envelope env;
    tb             t;
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(cases); i++) {
        assert_int_equal(cairn_envelope_decode(cases[i].in, cases[i].len, &env),
                         CAIRN_EPROTO);
    }
    /* Counts and lengths beyond the input inside unknown values and the
     * headers map, with every head width. */
    static const raw vals[] = {
        R("\x9a\xff\xff\xff\xff\x00"),
        R("\x9b\x00\x00\x00\x01\x00\x00\x00\x00\x00"),
        R("\xba\xff\xff\xff\xff\x00"),
        R("\xbb\xff\xff\xff\xff\xff\xff\xff\xff\x00"),
        R("\x59\xff\xff\x00"),
        R("\x7a\x00\x01\x00\x00\x00"),
        R("\x5f\x5a\xff\xff\xff\xff\xff\xff"),
        R("\x98\x20\x00"),
        R("\x5b\x00\x00\x00\x00\x00\x00\x00\x02\x00"),
        R("\xb8\x02\x00\x00\x00"),
    };
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(vals); i++) {
        tb_with(&t, 100, vals[i].s, vals[i].n);
        assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
    }
    tb_with(&t, 6, "\xba\xff\xff\xff\xff\x61k\x61v", 9);
    assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
    tb_with(&t, 6, "\xb8\x21\x61k\x61v", 6); /* 33 declared, 1 present */
    assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
}

static void
test_decode_missing(void **state)
{
    tb             t;
    cairn_envelope env;
    (void)state;
    for (int k = 0; k < 4; k++) {
        tb_base(&t, 0, k);
        assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
        /* Still missing when an unknown key takes its place. */
        tb_base(&t, 1, k);
        tb_head(&t, 0, 9);
        tb_head(&t, 0, 0);
        assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
    }
    tb_base(&t, 0, -1);
    assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
}

static void
test_decode_duplicates(void **state)
{
    static const char *const vals[] = {
        "\x41x",
        "\x50"
        "0123456789abcdef",
        "\x61x",
        "\x01",
        "\x50"
        "0123456789abcdef",
        "\x61x",
        "\xa0",
        "\x01",
        "\x61x",
    };
    tb             t;
    cairn_envelope env;
    (void)state;
    for (unsigned k = 0; k < CAIRNI_ARRAY_LEN(vals); k++) {
        /* The known key twice (required ones are in the base already). */
        size_t extra = k < 4 ? 1 : 2;
        tb_base(&t, extra, -1);
        for (size_t i = 0; i < extra; i++) {
            tb_head(&t, 0, k);
            tb_raw(&t, vals[k], strlen(vals[k]));
        }
        assert_int_equal(tb_decode(&t, &env), CAIRN_EPROTO);
        /* Once is fine. */
        tb_base(&t, 1, k < 4 ? (int)k : -1);
        tb_head(&t, 0, k);
        tb_raw(&t, vals[k], strlen(vals[k]));
        assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
    }
    /* Unknown keys may repeat; duplicate header names are kept. */
    tb_base(&t, 3, -1);
    tb_raw(&t, "\x09\x01\x09\x02", 4);
    tb_lit(&t, (raw)R("\x06\xa2\x61k\x61"
                      "1\x61k\x61"
                      "2"));
    assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
    assert_int_equal(env.nheaders, 2);
    assert_memory_equal(env.headers[1].value.ptr, "2", 1);
}

static void
test_decode_limits(void **state)
{
    tb             t;
    cairn_envelope env;
    char           text[CAIRN_ENV_MAX_TEXT + 1];
    (void)state;
    memset(text, 'x', sizeof(text));

    /* Whole input over CAIRN_ENV_MAX_SIZE, whatever it holds. */
    uint8_t *huge = calloc(1, CAIRN_ENV_MAX_SIZE + 1);
    assert_non_null(huge);
    assert_int_equal(cairn_envelope_decode(huge, CAIRN_ENV_MAX_SIZE + 1, &env),
                     CAIRN_ETOOBIG);
    free(huge);

    /* Text fields one byte over the limit, and at the limit. */
    for (unsigned k = 2; k <= 8; k += 3) { /* topic, ctype, key */
        for (size_t len = CAIRN_ENV_MAX_TEXT; len <= sizeof(text); len++) {
            tb_base(&t, k == 2 ? 0 : 1, k == 2 ? 2 : -1);
            t.b[0] += k == 2 ? 1 : 0;
            tb_head(&t, 0, k);
            tb_head(&t, 3, len);
            tb_raw(&t, text, len);
            assert_int_equal(tb_decode(&t, &env), len > CAIRN_ENV_MAX_TEXT
                                                      ? CAIRN_ETOOBIG
                                                      : CAIRN_OK);
        }
    }
    /* Header name and value over the limit. */
    for (int which = 0; which < 2; which++) {
        tb_base(&t, 1, -1);
        tb_raw(&t, "\x06\xa1", 2);
        if (which == 1) {
            tb_text(&t, "k");
        }
        tb_head(&t, 3, sizeof(text));
        tb_raw(&t, text, sizeof(text));
        if (which == 0) {
            tb_text(&t, "v");
        }
        assert_int_equal(tb_decode(&t, &env), CAIRN_ETOOBIG);
    }
    /* Headers: the limit is fine, one more is not. */
    for (size_t n = CAIRN_ENV_MAX_HEADERS; n <= CAIRN_ENV_MAX_HEADERS + 1;
         n++) {
        tb_base(&t, 1, -1);
        tb_head(&t, 0, 6);
        tb_head(&t, 5, n);
        for (size_t i = 0; i < n; i++) {
            tb_text(&t, "n");
            tb_text(&t, "v");
        }
        if (n > CAIRN_ENV_MAX_HEADERS) {
            assert_int_equal(tb_decode(&t, &env), CAIRN_ELIMIT);
        } else {
            assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
            assert_int_equal(env.nheaders, n);
        }
    }
    /* Top-level keys: the limit is fine, one more is not. */
    for (size_t n = CAIRN_ENV_MAX_KEYS; n <= CAIRN_ENV_MAX_KEYS + 1; n++) {
        tb_base(&t, n - 4, -1);
        for (size_t i = 4; i < n; i++) {
            tb_head(&t, 0, 100 + i);
            tb_head(&t, 0, i);
        }
        assert_int_equal(tb_decode(&t, &env),
                         n > CAIRN_ENV_MAX_KEYS ? CAIRN_ELIMIT : CAIRN_OK);
    }
}

/* An unknown key whose value is depth nested containers of one kind. */
static cairn_err
nested(unsigned depth, const char *open, size_t olen, const char *close,
       size_t clen, const char *leaf)
{
    tb             t;
    cairn_envelope env;
    tb_base(&t, 1, -1);
    tb_head(&t, 0, 77);
    for (unsigned i = 0; i < depth; i++) {
        tb_raw(&t, open, olen);
    }
    tb_raw(&t, leaf, strlen(leaf));
    for (unsigned i = 0; i < depth; i++) {
        tb_raw(&t, close, clen);
    }
    return tb_decode(&t, &env);
}

static void
test_decode_depth(void **state)
{
    (void)state;
    const unsigned max = CAIRN_ENV_MAX_DEPTH;
    assert_int_equal(nested(max, "\x81", 1, "", 0, "\x01"), CAIRN_OK);
    assert_int_equal(nested(max + 1, "\x81", 1, "", 0, "\x01"), CAIRN_ELIMIT);
    assert_int_equal(nested(max, "\x9f", 1, "\xff", 1, "\x01"), CAIRN_OK);
    assert_int_equal(nested(max + 1, "\x9f", 1, "\xff", 1, ""), CAIRN_ELIMIT);
    assert_int_equal(nested(max, "\xa1\x01", 2, "", 0, "\x01"), CAIRN_OK);
    assert_int_equal(nested(max + 1, "\xa1\x01", 2, "", 0, "\x01"),
                     CAIRN_ELIMIT);
    assert_int_equal(nested(max, "\xbf\x01", 2, "\xff", 1, "\x01"), CAIRN_OK);
    assert_int_equal(nested(max + 1, "\xbf\x01", 2, "\xff", 1, "\x01"),
                     CAIRN_ELIMIT);
    assert_int_equal(nested(max, "\xc1", 1, "", 0, "\x01"), CAIRN_OK);
    assert_int_equal(nested(max + 1, "\xd8\x40", 2, "", 0, "\x01"),
                     CAIRN_ELIMIT);
    assert_int_equal(nested(2000, "\x81", 1, "", 0, "\x01"), CAIRN_ELIMIT);
    assert_int_equal(nested(2000, "\x9f", 1, "", 0, ""), CAIRN_ELIMIT);
    assert_int_equal(nested(2000, "\xc6", 1, "", 0, "\x01"), CAIRN_ELIMIT);
}

static void
test_decode_items(void **state)
{
    tb             t;
    cairn_envelope env;
    (void)state;
    /* The value itself and its elements count: an array head plus
     * MAX_ITEMS - 1 elements is the most one unknown value may hold. */
    for (size_t n = CAIRN_ENV_MAX_ITEMS - 1; n <= CAIRN_ENV_MAX_ITEMS; n++) {
        tb_base(&t, 1, -1);
        tb_head(&t, 0, 50);
        tb_head(&t, 4, n);
        for (size_t i = 0; i < n; i++) {
            tb_byte(&t, 0x00);
        }
        assert_int_equal(tb_decode(&t, &env),
                         n >= CAIRN_ENV_MAX_ITEMS ? CAIRN_ELIMIT : CAIRN_OK);
    }
    /* The budget is shared by all unknown values of one envelope. */
    tb_base(&t, 2, -1);
    for (int k = 0; k < 2; k++) {
        tb_head(&t, 0, 50 + (uint64_t)k);
        tb_head(&t, 4, CAIRN_ENV_MAX_ITEMS / 2);
        for (size_t i = 0; i < CAIRN_ENV_MAX_ITEMS / 2; i++) {
            tb_byte(&t, 0x00);
        }
    }
    assert_int_equal(tb_decode(&t, &env), CAIRN_ELIMIT);
    /* Indefinite arrays and strings of many small chunks count as well. */
    tb_base(&t, 1, -1);
    tb_raw(&t, "\x18\x32\x5f", 3);
    for (size_t i = 0; i < CAIRN_ENV_MAX_ITEMS; i++) {
        tb_byte(&t, 0x40);
    }
    tb_byte(&t, 0xFF);
    assert_int_equal(tb_decode(&t, &env), CAIRN_ELIMIT);
}

static void
test_decode_unknown_skipped(void **state)
{
    static const raw vals[] = {
        R("\x00"),
        R("\x1b\xff\xff\xff\xff\xff\xff\xff\xff"),
        R("\x20"),
        R("\x3b\xff\xff\xff\xff\xff\xff\xff\xff"),
        R("\x43"
          "abc"),
        R("\x63"
          "abc"),
        R("\x5f\x41"
          "a\x40\x42"
          "bc\xff"),
        R("\x7f\x61"
          "a\x60\xff"),
        R("\x5f\xff"),
        R("\x80"),
        R("\x83\x01\x82\x02\x03\xa1\x61k\x80"),
        R("\xa0"),
        R("\xa2\x01\x02\x61k\xbf\x01\x9f\xff\xff"),
        R("\x9f\x01\x9f\xff\x5f\xff\xff"),
        R("\xbf\xff"),
        R("\xbf\x01\x02\x63key\xa0\xff"),
        R("\xc0\x74"
          "2013-03-21T20:04:00Z"),
        R("\xc6\x01"),
        R("\xd4\x02"),
        R("\xd5\x40"),
        R("\xd8\x40\x40"),
        R("\xd9\x01\x00\x01"),
        R("\xda\x00\x01\x00\x00\x01"),
        R("\xdb\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
        R("\xc1\xc2\x41\x01"),
        R("\xf4"),
        R("\xf5"),
        R("\xf6"),
        R("\xf7"),
        R("\xe0"),
        R("\xf3"),
        R("\xf8\x20"),
        R("\xf8\xff"),
        R("\xf9\x3c\x00"),
        R("\xfa\x47\xc3\x50\x00"),
        R("\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a"),
        R("\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00"),
        R("\x5b\x00\x00\x00\x00\x00\x00\x00\x01"
          "a"),
        R("\x9b\x00\x00\x00\x00\x00\x00\x00\x01\x00"),
    };
    static const raw keys[] = {
        R("\x09"),
        R("\x17"),
        R("\x18\x18"),
        R("\x19\x01\x00"),
        R("\x1a\x00\x01\x00\x00"),
        R("\x1b\xff\xff\xff\xff\xff\xff\xff\xff"),
        R("\x18\x09"),
    };
    tb             t;
    cairn_envelope env;
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(vals); i++) {
        for (size_t j = 0; j < CAIRNI_ARRAY_LEN(keys); j++) {
            /* Between the required fields and after them. */
            tb_base(&t, 1, -1);
            tb_lit(&t, keys[j]);
            tb_lit(&t, vals[i]);
            if (tb_decode(&t, &env) != CAIRN_OK) {
                fail_msg("value %zu key %zu refused", i, j);
            }
            assert_int_equal(env.topic.len, 3);
            assert_true(env.ts == 1700000000000u);
            t.n = 0;
            tb_head(&t, 5, 5);
            tb_lit(&t, keys[j]);
            tb_lit(&t, vals[i]);
            for (unsigned k = 0; k < 4; k++) {
                tb_head(&t, 0, 3 - k);
                tb_required_value(&t, 3 - k);
            }
            assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
            assert_int_equal(env.payload.len, 5);
        }
    }
}

static void
test_decode_liberal(void **state)
{
    tb             t;
    cairn_envelope env;
    (void)state;
    /* Keys in any order and in longer than needed heads. */
    t.n = 0;
    tb_raw(&t, "\xb8\x05", 2);
    tb_raw(&t, "\x1b\x00\x00\x00\x00\x00\x00\x00\x08\x61q", 11);
    tb_raw(&t, "\x18\x03\x1a\x00\x00\x00\x07", 7);
    tb_raw(&t,
           "\x19\x00\x02\x78\x03"
           "a/b",
           8);
    tb_raw(&t, "\x01\x58\x10", 3);
    tb_raw(&t, id_a, 16);
    tb_raw(&t, "\x00\x5a\x00\x00\x00\x01z", 7);
    assert_int_equal(tb_decode(&t, &env), CAIRN_OK);
    assert_true(env.ts == 7);
    assert_int_equal(env.flags, CAIRN_ENV_HAS_KEY);
    assert_memory_equal(env.key.ptr, "q", 1);
    assert_memory_equal(env.payload.ptr, "z", 1);
    assert_memory_equal(env.id, id_a, 16);
}

/* Every single-bit corruption of a valid envelope: no crash, and whatever
 * still decodes re-encodes to an equal envelope. */
static void
test_decode_bitflips(void **state)
{
    uint8_t        buf[512], re[512];
    size_t         len = 0, relen = 0;
    cairn_envelope env, out, again;
    (void)state;
    env_full(&env);
    assert_int_equal(cairn_envelope_encode(&env, buf, sizeof(buf), &len),
                     CAIRN_OK);
    for (size_t i = 0; i < len * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        cairn_err rv = cairn_envelope_decode(buf, len, &out);
        assert_true(rv == CAIRN_OK || rv == CAIRN_EPROTO ||
                    rv == CAIRN_ELIMIT || rv == CAIRN_ETOOBIG);
        if (rv == CAIRN_OK) {
            assert_int_equal(
                cairn_envelope_encode(&out, re, sizeof(re), &relen), CAIRN_OK);
            assert_int_equal(cairn_envelope_decode(re, relen, &again),
                             CAIRN_OK);
            assert_env_eq(&out, &again);
        }
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
}

/* ---- ids ----------------------------------------------------------------- */

static void
test_id_monotonic(void **state)
{
    enum { N = 100000 };
    uint8_t  prev[CAIRN_ID_LEN], id[CAIRN_ID_LEN];
    uint64_t t0 = cairn_now_ms();
    (void)state;
    cairn_id_new(prev);
    for (int i = 0; i < N; i++) {
        cairn_id_new(id);
        if (memcmp(prev, id, CAIRN_ID_LEN) >= 0) {
            fail_msg("id %d not above the previous one", i);
        }
        assert_int_equal(id[6] >> 4, 7); /* version */
        assert_int_equal(id[8] >> 6, 2); /* variant */
        memcpy(prev, id, CAIRN_ID_LEN);
    }
    uint64_t t1 = cairn_now_ms();
    uint64_t ms = cairn_id_time_ms(id);
    /* Sequence overflow may run a few ms ahead of the clock. */
    assert_true(ms + 5 >= t0);
    assert_true(ms <= t1 + N / 4096 + 5);
    cairn_id_new(id);
    assert_true(cairn_id_time_ms(id) + 5 >= cairn_now_ms());
}

static void
test_id_random_bits(void **state)
{
    uint8_t a[CAIRN_ID_LEN], b[CAIRN_ID_LEN];
    (void)state;
    cairn_id_new(a);
    cairn_id_new(b);
    /* The 62 random bits differ (chance of equality: 2^-62). */
    assert_memory_not_equal(a + 8, b + 8, 8);
}

enum { ID_THREADS = 4, ID_PER_THREAD = 25000 };

static void *
id_worker(void *arg)
{
    uint8_t(*ids)[CAIRN_ID_LEN] = arg;
    for (int i = 0; i < ID_PER_THREAD; i++) {
        cairn_id_new(ids[i]);
    }
    return NULL;
}

static int
id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CAIRN_ID_LEN);
}

static void
test_id_threads(void **state)
{
    size_t n = (size_t)ID_THREADS * ID_PER_THREAD;
    uint8_t(*ids)[CAIRN_ID_LEN] = malloc(n * CAIRN_ID_LEN);
    pthread_t th[ID_THREADS];
    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < ID_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, id_worker,
                                        ids + (size_t)i * ID_PER_THREAD),
                         0);
    }
    for (int i = 0; i < ID_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int t = 0; t < ID_THREADS; t++) {
        uint8_t(*mine)[CAIRN_ID_LEN] = ids + (size_t)t * ID_PER_THREAD;
        for (int i = 1; i < ID_PER_THREAD; i++) {
            assert_true(memcmp(mine[i - 1], mine[i], CAIRN_ID_LEN) < 0);
        }
    }
    /* The time-and-sequence part alone is unique across threads. */
    qsort(ids, n, CAIRN_ID_LEN, id_cmp);
    for (size_t i = 1; i < n; i++) {
        assert_memory_not_equal(ids[i - 1], ids[i], 8);
    }
    free(ids);
}

static void
test_id_format_parse(void **state)
{
    static const uint8_t known[CAIRN_ID_LEN] = {
        0x01, 0x90, 0xb2, 0xc4, 0x5e, 0x6f, 0x7a, 0xbc,
        0x8d, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    };
    static const char *const bad[] = {
        "",
        "0190b2c4-5e6f-7abc-8def-0123456789a",
        "0190b2c4-5e6f-7abc-8def-0123456789abc",
        "0190b2c45e6f-7abc-8def-0123456789ab-",
        "0190b2c4-5e6f-7abc-8def_0123456789ab",
        "0190b2c4-5e6f-7abc-8deg-0123456789ab",
        "0190b2c4-5e6f-7abc-8def-0123456789a ",
        " 190b2c4-5e6f-7abc-8def-0123456789ab",
        "0190b2c4-5e6f-7abc-8def-0123456789ab\n",
        "{0190b2c4-5e6f-7abc-8def-0123456789ab}",
    };
    char    text[37];
    uint8_t id[CAIRN_ID_LEN], back[CAIRN_ID_LEN];
    (void)state;
    assert_ptr_equal(cairn_id_format(known, text), text);
    assert_string_equal(text, "0190b2c4-5e6f-7abc-8def-0123456789ab");
    assert_int_equal(cairn_id_parse(text, back), CAIRN_OK);
    assert_memory_equal(known, back, CAIRN_ID_LEN);
    assert_int_equal(
        cairn_id_parse("0190B2C4-5E6F-7ABC-8DEF-0123456789AB", back), CAIRN_OK);
    assert_memory_equal(known, back, CAIRN_ID_LEN);
    assert_true(cairn_id_time_ms(known) == 0x0190b2c45e6fu);
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        memset(back, 0xAA, sizeof(back));
        assert_int_equal(cairn_id_parse(bad[i], back), CAIRN_EINVAL);
        assert_int_equal(back[0], 0xAA); /* untouched on error */
    }
    assert_int_equal(cairn_id_parse(NULL, back), CAIRN_EINVAL);
    for (int i = 0; i < 1000; i++) {
        cairn_id_new(id);
        cairn_id_format(id, text);
        assert_int_equal(strlen(text), 36);
        assert_int_equal(cairn_id_parse(text, back), CAIRN_OK);
        assert_memory_equal(id, back, CAIRN_ID_LEN);
    }
}

static void
test_now_ms(void **state)
{
    (void)state;
    uint64_t now = cairn_now_ms();
    uint64_t sec = (uint64_t)time(NULL);
    assert_true(now / 1000 + 2 >= sec && now / 1000 <= sec + 2);
    assert_true(now > 1600000000000u);
}

static void
test_str_c(void **state)
{
    (void)state;
    cairn_str s = cairn_str_c("abc");
    assert_int_equal(s.len, 3);
    s = cairn_str_c(NULL);
    assert_int_equal(s.len, 0);
    cairn_envelope env;
    memset(&env, 0xFF, sizeof(env));
    cairn_envelope_init(&env);
    assert_int_equal(env.flags, 0);
    assert_int_equal(env.nheaders, 0);
    assert_int_equal(env.payload.len, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_combinations),
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_encode_canonical),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_encode_max_size),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_trailing),
        cmocka_unit_test(test_decode_args),
        cmocka_unit_test(test_decode_bad_values),
        cmocka_unit_test(test_decode_wrong_top),
        cmocka_unit_test(test_decode_oversize_lengths),
        cmocka_unit_test(test_decode_missing),
        cmocka_unit_test(test_decode_duplicates),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_decode_depth),
        cmocka_unit_test(test_decode_items),
        cmocka_unit_test(test_decode_unknown_skipped),
        cmocka_unit_test(test_decode_liberal),
        cmocka_unit_test(test_decode_bitflips),
        cmocka_unit_test(test_id_monotonic),
        cmocka_unit_test(test_id_random_bits),
        cmocka_unit_test(test_id_threads),
        cmocka_unit_test(test_id_format_parse),
        cmocka_unit_test(test_now_ms),
        cmocka_unit_test(test_str_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
