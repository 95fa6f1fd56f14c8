/*
 * envelope.c - the CBOR envelope codec and message ids.
 *
 * Encoding writes one definite-length map with keys in ascending order
 * straight into the caller's buffer with libcbor's buffer encoders.  The
 * size comes first, from a counting pass through the same writer, so a
 * short buffer is refused before a byte is written; and only what the
 * decoder accepts is ever encoded.
 *
 * Decoding takes untrusted bytes and allocates nothing.  It walks the
 * input one data item at a time with cbor_stream_decode(): the callbacks
 * only describe the item just read (env_item), and the structure is
 * checked here by plain recursive descent.  Invariants of the walk:
 *
 *   - dec->pos never passes dec->len; a string is accepted only when all
 *     of its declared bytes are present (libcbor reports NEDATA otherwise,
 *     and an 8-byte length is checked here first so that no cast to a
 *     32-bit size_t can shorten it);
 *   - a container is entered only when its declared count could fit in
 *     the bytes that remain, so counts never drive work beyond the input;
 *   - unknown values are skipped within CAIRN_ENV_MAX_DEPTH levels of
 *     nesting and CAIRN_ENV_MAX_ITEMS items for the whole envelope, so
 *     recursion depth and total work are bounded whatever the input.
 *
 * libcbor 0.8 refuses a few well-formed heads (tags 6..20, simple values
 * 0..19 and the two-byte simple value); env_next() reads those itself so
 * that such values inside unknown keys are skipped like any other.
 *
 * Ids follow the UUIDv7 layout.  The 48-bit millisecond and the 12-bit
 * sequence form one 60-bit counter that only ever grows (compare and swap),
 * so ids strictly increase even within one millisecond or when the wall
 * clock steps back; an exhausted sequence carries into the millisecond.
 * The 62 random bits come from a per-thread pool refilled by getrandom().
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cbor.h>

#include "cairni.h"

/* Map keys of the fields. */
enum {
    ENV_K_PAYLOAD = 0,
    ENV_K_ID = 1,
    ENV_K_TOPIC = 2,
    ENV_K_TS = 3,
    ENV_K_CORR = 4,
    ENV_K_CTYPE = 5,
    ENV_K_HEADERS = 6,
    ENV_K_ATTEMPT = 7,
    ENV_K_KEY = 8,
    ENV_K_LAST = ENV_K_KEY,
};

#define ENV_REQUIRED                                                           \
    ((1u << ENV_K_PAYLOAD) | (1u << ENV_K_ID) | (1u << ENV_K_TOPIC) |          \
     (1u << ENV_K_TS))

void
cairn_envelope_init(cairn_envelope *env)
{
    memset(env, 0, sizeof(*env));
}

cairn_str
cairn_str_c(const char *s)
{
    cairn_str str = {s, s != NULL ? strlen(s) : 0};
    return str;
}

/* ---- encoding ---------------------------------------------------------- */

static bool
env_text_ok(cairn_str s)
{
    return s.len <= CAIRN_ENV_MAX_TEXT && (s.ptr != NULL || s.len == 0);
}

/* Refuses what the decoder would refuse, so encoded envelopes round-trip. */
static cairn_err
env_check(const cairn_envelope *env)
{
    if (env->payload.ptr == NULL && env->payload.len > 0) {
        return CAIRN_EINVAL;
    }
    if (cairn_topic_valid(env->topic.ptr, env->topic.len) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if (((env->flags & CAIRN_ENV_HAS_CTYPE) && !env_text_ok(env->ctype)) ||
        ((env->flags & CAIRN_ENV_HAS_KEY) && !env_text_ok(env->key))) {
        return CAIRN_EINVAL;
    }
    if (env->nheaders > CAIRN_ENV_MAX_HEADERS) {
        return CAIRN_EINVAL;
    }
    for (uint32_t i = 0; i < env->nheaders; i++) {
        if (!env_text_ok(env->headers[i].name) ||
            !env_text_ok(env->headers[i].value)) {
            return CAIRN_EINVAL;
        }
    }
    return CAIRN_OK;
}

/*
 * Writes into buf, or with buf NULL only counts: the size comes from the
 * same code that writes, so the two cannot disagree.
 */
typedef struct env_writer {
    uint8_t *buf;
    size_t   cap;
    size_t   pos;
    bool     failed; /* an encoder ran out of room */
} env_writer;

/* A head of major type 0 (uint), 2 (bstr), 3 (tstr) or 5 (map). */
static void
env_put_head(env_writer *w, unsigned major, uint64_t v)
{
    uint8_t  tmp[9];
    uint8_t *p = w->buf != NULL ? w->buf + w->pos : tmp;
    size_t   room = w->buf != NULL ? w->cap - w->pos : sizeof(tmp);
    size_t   n;

    if (major == 0) {
        n = cbor_encode_uint(v, p, room);
    } else if (major == 2) {
        n = cbor_encode_bytestring_start((size_t)v, p, room);
    } else if (major == 3) {
        n = cbor_encode_string_start((size_t)v, p, room);
    } else {
        n = cbor_encode_map_start((size_t)v, p, room);
    }
    w->failed |= n == 0;
    w->pos += n;
}

static void
env_put_data(env_writer *w, unsigned major, const void *data, size_t len)
{
    env_put_head(w, major, len);
    if (w->buf != NULL && !w->failed) {
        if (len > w->cap - w->pos) {
            w->failed = true;
            return;
        }
        if (len > 0) {
            memcpy(w->buf + w->pos, data, len);
        }
    }
    w->pos += len;
}

static void
env_put_text(env_writer *w, cairn_str s)
{
    env_put_data(w, 3, s.ptr, s.len);
}

static void
env_put_uint(env_writer *w, uint64_t v)
{
    env_put_head(w, 0, v);
}

static size_t
env_nkeys(const cairn_envelope *env)
{
    size_t n = 4 + (env->nheaders > 0);
    for (uint32_t f = env->flags; f != 0; f &= f - 1) {
        n++; /* one key per CAIRN_ENV_HAS_* bit */
    }
    return n;
}

static void
env_put_fields(env_writer *w, const cairn_envelope *env)
{
    env_put_head(w, 5, env_nkeys(env));
    env_put_uint(w, ENV_K_PAYLOAD);
    env_put_data(w, 2, env->payload.ptr, env->payload.len);
    env_put_uint(w, ENV_K_ID);
    env_put_data(w, 2, env->id, CAIRN_ID_LEN);
    env_put_uint(w, ENV_K_TOPIC);
    env_put_text(w, env->topic);
    env_put_uint(w, ENV_K_TS);
    env_put_uint(w, env->ts);
    if (env->flags & CAIRN_ENV_HAS_CORR) {
        env_put_uint(w, ENV_K_CORR);
        env_put_data(w, 2, env->corr, CAIRN_ID_LEN);
    }
    if (env->flags & CAIRN_ENV_HAS_CTYPE) {
        env_put_uint(w, ENV_K_CTYPE);
        env_put_text(w, env->ctype);
    }
    if (env->nheaders > 0) {
        env_put_uint(w, ENV_K_HEADERS);
        env_put_head(w, 5, env->nheaders);
        for (uint32_t i = 0; i < env->nheaders; i++) {
            env_put_text(w, env->headers[i].name);
            env_put_text(w, env->headers[i].value);
        }
    }
    if (env->flags & CAIRN_ENV_HAS_ATTEMPT) {
        env_put_uint(w, ENV_K_ATTEMPT);
        env_put_uint(w, env->attempt);
    }
    if (env->flags & CAIRN_ENV_HAS_KEY) {
        env_put_uint(w, ENV_K_KEY);
        env_put_text(w, env->key);
    }
}

/* Size of a checked envelope, or 0 when it would exceed the limit. */
static size_t
env_size(const cairn_envelope *env)
{
    env_writer w = {NULL, 0, 0, false};
    env_put_fields(&w, env);
    return w.failed || w.pos > CAIRN_ENV_MAX_SIZE ? 0 : w.pos;
}

size_t
cairn_envelope_encoded_size(const cairn_envelope *env)
{
    if (env == NULL || env_check(env) != CAIRN_OK) {
        return 0;
    }
    return env_size(env);
}

cairn_err
cairn_envelope_encode(const cairn_envelope *env, uint8_t *buf, size_t cap,
                      size_t *len)
{
    if (env == NULL || len == NULL || (buf == NULL && cap > 0)) {
        return CAIRN_EINVAL;
    }
    cairn_err rv = env_check(env);
    if (rv != CAIRN_OK) {
        return rv;
    }
    size_t size = env_size(env);
    if (size == 0) {
        return CAIRN_EINVAL; /* over CAIRN_ENV_MAX_SIZE */
    }
    if (size > cap) {
        return CAIRN_ETOOBIG;
    }
    env_writer w = {buf, size, 0, false};
    env_put_fields(&w, env);
    if (w.failed || w.pos != size) {
        return CAIRN_EINTERNAL;
    }
    *len = size;
    return CAIRN_OK;
}

/* ---- decoding: one data item at a time ---------------------------------- */

typedef enum env_kind {
    ENV_NONE = 0,
    ENV_UINT,
    ENV_NEGINT,
    ENV_BSTR,
    ENV_TSTR,
    ENV_BSTR_INDEF,
    ENV_TSTR_INDEF,
    ENV_ARRAY,
    ENV_ARRAY_INDEF,
    ENV_MAP,
    ENV_MAP_INDEF,
    ENV_TAG,
    ENV_SIMPLE, /* false, true, null, undefined, other simple values, floats */
    ENV_BREAK,
} env_kind;

/* The item cbor_stream_decode() just read. */
typedef struct env_item {
    env_kind       kind;
    uint64_t       u;   /* ENV_UINT: value */
    const uint8_t *ptr; /* ENV_BSTR, ENV_TSTR: data in the input */
    size_t         len; /* strings: bytes; ENV_ARRAY, ENV_MAP: count */
} env_item;

typedef struct env_dec {
    const uint8_t *buf;
    size_t         len;
    size_t         pos;   /* next unread byte */
    uint32_t       items; /* items read while skipping unknown values */
} env_dec;

/*
 * libcbor calls one of these per item, with ctx the env_item to fill.
 * ENV_CB0 and ENV_CB1 define callbacks that only record the kind of item
 * (without and with an argument); the others keep the value, the string
 * or the count as well.
 */
#define ENV_CB0(name, k)                                                       \
    static void name(void *ctx)                                                \
    {                                                                          \
        ((env_item *)ctx)->kind = (k);                                         \
    }
#define ENV_CB1(name, k, type)                                                 \
    static void name(void *ctx, type v)                                        \
    {                                                                          \
        ((env_item *)ctx)->kind = (k);                                         \
    }
#define ENV_CB_UINT(name, type)                                                \
    static void name(void *ctx, type v)                                        \
    {                                                                          \
        ((env_item *)ctx)->kind = ENV_UINT;                                    \
        ((env_item *)ctx)->u = v;                                              \
    }

ENV_CB_UINT(env_cb_u8, uint8_t)
ENV_CB_UINT(env_cb_u16, uint16_t)
ENV_CB_UINT(env_cb_u32, uint32_t)
ENV_CB_UINT(env_cb_u64, uint64_t)
ENV_CB1(env_cb_n8, ENV_NEGINT, uint8_t)
ENV_CB1(env_cb_n16, ENV_NEGINT, uint16_t)
ENV_CB1(env_cb_n32, ENV_NEGINT, uint32_t)
ENV_CB1(env_cb_n64, ENV_NEGINT, uint64_t)
ENV_CB1(env_cb_tag, ENV_TAG, uint64_t)
ENV_CB1(env_cb_f4, ENV_SIMPLE, float)
ENV_CB1(env_cb_f8, ENV_SIMPLE, double)
ENV_CB1(env_cb_bool, ENV_SIMPLE, bool)
ENV_CB0(env_cb_simple, ENV_SIMPLE)
ENV_CB0(env_cb_break, ENV_BREAK)
ENV_CB0(env_cb_bstr_indef, ENV_BSTR_INDEF)
ENV_CB0(env_cb_tstr_indef, ENV_TSTR_INDEF)
ENV_CB0(env_cb_array_indef, ENV_ARRAY_INDEF)
ENV_CB0(env_cb_map_indef, ENV_MAP_INDEF)

#define ENV_CB_STR(name, k)                                                    \
    static void name(void *ctx, cbor_data data, size_t len)                    \
    {                                                                          \
        ((env_item *)ctx)->kind = (k);                                         \
        ((env_item *)ctx)->ptr = data;                                         \
        ((env_item *)ctx)->len = len;                                          \
    }
#define ENV_CB_COUNT(name, k)                                                  \
    static void name(void *ctx, size_t count)                                  \
    {                                                                          \
        ((env_item *)ctx)->kind = (k);                                         \
        ((env_item *)ctx)->len = count;                                        \
    }

ENV_CB_STR(env_cb_bstr, ENV_BSTR)
ENV_CB_STR(env_cb_tstr, ENV_TSTR)
ENV_CB_COUNT(env_cb_array, ENV_ARRAY)
ENV_CB_COUNT(env_cb_map, ENV_MAP)

static const struct cbor_callbacks env_callbacks = {
    .uint8 = env_cb_u8,
    .uint16 = env_cb_u16,
    .uint32 = env_cb_u32,
    .uint64 = env_cb_u64,
    .negint8 = env_cb_n8,
    .negint16 = env_cb_n16,
    .negint32 = env_cb_n32,
    .negint64 = env_cb_n64,
    .byte_string = env_cb_bstr,
    .byte_string_start = env_cb_bstr_indef,
    .string = env_cb_tstr,
    .string_start = env_cb_tstr_indef,
    .array_start = env_cb_array,
    .indef_array_start = env_cb_array_indef,
    .map_start = env_cb_map,
    .indef_map_start = env_cb_map_indef,
    .tag = env_cb_tag,
    .float2 = env_cb_f4,
    .float4 = env_cb_f4,
    .float8 = env_cb_f8,
    .undefined = env_cb_simple,
    .null = env_cb_simple,
    .boolean = env_cb_bool,
    .indef_break = env_cb_break,
};

/*
 * Heads that need care before libcbor sees them.  Returns true when the
 * item was read here (*rv says how it went).
 */
static bool
env_next_quirk(env_dec *d, env_item *it, cairn_err *rv)
{
    const uint8_t *p = d->buf + d->pos;
    size_t         left = d->len - d->pos;
    unsigned       b = p[0], major = b >> 5;

    *rv = CAIRN_OK;
    if ((b >= 0xC6 && b <= 0xD4) || (b >= 0xE0 && b <= 0xF3)) {
        it->kind = b < 0xE0 ? ENV_TAG : ENV_SIMPLE;
        d->pos += 1;
        return true;
    }
    if (b == 0xF8) {
        /* Simple values below 32 must use the one-byte form. */
        if (left < 2 || p[1] < 32) {
            *rv = CAIRN_EPROTO;
            return true;
        }
        it->kind = ENV_SIMPLE;
        d->pos += 2;
        return true;
    }
    if ((b & 0x1F) == 27 && major >= 2 && major <= 5) {
        /* Keep a 64-bit length from being cut down to a 32-bit size_t:
         * any length or count above what remains cannot be complete. */
        if (left < 9 || cairni_load_be(p + 1, 8) > left - 9) {
            *rv = CAIRN_EPROTO;
            return true;
        }
    }
    return false;
}

/* Reads the next item; strings are complete, containers only their head. */
static cairn_err
env_next(env_dec *d, env_item *it)
{
    cairn_err rv;

    memset(it, 0, sizeof(*it));
    if (d->pos >= d->len) {
        return CAIRN_EPROTO;
    }
    if (env_next_quirk(d, it, &rv)) {
        return rv;
    }
    struct cbor_decoder_result r = cbor_stream_decode(
        d->buf + d->pos, d->len - d->pos, &env_callbacks, it);
    if (r.status != CBOR_DECODER_FINISHED) {
        return CAIRN_EPROTO; /* NEDATA: a length beyond the input */
    }
    if (it->kind == ENV_NONE || r.read == 0 || r.read > d->len - d->pos) {
        return CAIRN_EINTERNAL;
    }
    d->pos += r.read;
    return CAIRN_OK;
}

/*
 * Checks the count of a container just read: each entry takes at least
 * `per` items of one byte or more, and at most `limit` entries may follow.
 */
static cairn_err
env_count(const env_dec *d, size_t count, size_t per, size_t limit)
{
    if (count > (d->len - d->pos) / per) {
        return CAIRN_EPROTO;
    }
    return count > limit ? CAIRN_ELIMIT : CAIRN_OK;
}

/* ---- decoding: unknown values ------------------------------------------- */

static cairn_err env_skip_item(env_dec *d, const env_item *it, unsigned depth);

/* Reads one more item of an unknown value, within the item budget. */
static cairn_err
env_skip_next(env_dec *d, env_item *it)
{
    if (++d->items > CAIRN_ENV_MAX_ITEMS) {
        return CAIRN_ELIMIT;
    }
    return env_next(d, it);
}

static cairn_err
env_skip_value(env_dec *d, unsigned depth)
{
    env_item  it;
    cairn_err rv = env_skip_next(d, &it);
    return rv != CAIRN_OK ? rv : env_skip_item(d, &it, depth);
}

/* The chunks of an indefinite string: definite strings of its kind. */
static cairn_err
env_skip_chunks(env_dec *d, env_kind chunk)
{
    for (;;) {
        env_item  it;
        cairn_err rv = env_skip_next(d, &it);
        if (rv != CAIRN_OK || it.kind == ENV_BREAK) {
            return rv;
        }
        if (it.kind != chunk) {
            return CAIRN_EPROTO;
        }
    }
}

/* Items of an indefinite array or map up to the break. */
static cairn_err
env_skip_indef(env_dec *d, unsigned depth, bool map)
{
    for (size_t n = 0;; n++) {
        env_item  it;
        cairn_err rv = env_skip_next(d, &it);
        if (rv != CAIRN_OK) {
            return rv;
        }
        if (it.kind == ENV_BREAK) {
            /* A map holds pairs: a break after a key is malformed. */
            return map && n % 2 != 0 ? CAIRN_EPROTO : CAIRN_OK;
        }
        rv = env_skip_item(d, &it, depth);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
}

/* The entries of a definite array (per 1) or map (per 2). */
static cairn_err
env_skip_items(env_dec *d, size_t count, size_t per, unsigned depth)
{
    cairn_err rv = env_count(d, count, per, SIZE_MAX);
    for (size_t i = 0; i < count * per && rv == CAIRN_OK; i++) {
        rv = env_skip_value(d, depth);
    }
    return rv;
}

/* Skips the rest of an item already read, at the given nesting depth. */
static cairn_err
env_skip_item(env_dec *d, const env_item *it, unsigned depth)
{
    switch (it->kind) {
    case ENV_BSTR_INDEF:
        return env_skip_chunks(d, ENV_BSTR);
    case ENV_TSTR_INDEF:
        return env_skip_chunks(d, ENV_TSTR);
    case ENV_ARRAY:
    case ENV_MAP:
    case ENV_ARRAY_INDEF:
    case ENV_MAP_INDEF:
    case ENV_TAG:
        break;
    case ENV_BREAK:
        return CAIRN_EPROTO;
    default:
        return CAIRN_OK;
    }
    if (depth >= CAIRN_ENV_MAX_DEPTH) {
        return CAIRN_ELIMIT;
    }
    switch (it->kind) {
    case ENV_ARRAY:
        return env_skip_items(d, it->len, 1, depth + 1);
    case ENV_MAP:
        return env_skip_items(d, it->len, 2, depth + 1);
    case ENV_TAG:
        return env_skip_value(d, depth + 1);
    default:
        return env_skip_indef(d, depth + 1, it->kind == ENV_MAP_INDEF);
    }
}

/* ---- decoding: known fields --------------------------------------------- */

static cairn_err
env_get_kind(env_dec *d, env_item *it, env_kind kind)
{
    cairn_err rv = env_next(d, it);
    if (rv == CAIRN_OK && it->kind != kind) {
        rv = CAIRN_EPROTO;
    }
    return rv;
}

static cairn_err
env_get_bytes(env_dec *d, cairn_bytes *out)
{
    env_item  it;
    cairn_err rv = env_get_kind(d, &it, ENV_BSTR);
    if (rv == CAIRN_OK) {
        out->ptr = it.ptr;
        out->len = it.len;
    }
    return rv;
}

static cairn_err
env_get_id(env_dec *d, uint8_t id[CAIRN_ID_LEN])
{
    cairn_bytes b;
    cairn_err   rv = env_get_bytes(d, &b);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (b.len != CAIRN_ID_LEN) {
        return CAIRN_EPROTO;
    }
    memcpy(id, b.ptr, CAIRN_ID_LEN);
    return CAIRN_OK;
}

static cairn_err
env_get_text(env_dec *d, cairn_str *out)
{
    env_item  it;
    cairn_err rv = env_get_kind(d, &it, ENV_TSTR);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (it.len > CAIRN_ENV_MAX_TEXT) {
        return CAIRN_ETOOBIG;
    }
    out->ptr = (const char *)it.ptr;
    out->len = it.len;
    return CAIRN_OK;
}

static cairn_err
env_get_uint(env_dec *d, uint64_t max, uint64_t *out)
{
    env_item  it;
    cairn_err rv = env_get_kind(d, &it, ENV_UINT);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (it.u > max) {
        return CAIRN_EPROTO;
    }
    *out = it.u;
    return CAIRN_OK;
}

static cairn_err
env_get_topic(env_dec *d, cairn_str *topic)
{
    cairn_err rv = env_get_text(d, topic);
    if (rv == CAIRN_OK &&
        cairn_topic_valid(topic->ptr, topic->len) != CAIRN_OK) {
        rv = CAIRN_EPROTO;
    }
    return rv;
}

static cairn_err
env_get_headers(env_dec *d, cairn_envelope *env)
{
    env_item  it;
    cairn_err rv = env_get_kind(d, &it, ENV_MAP);
    if (rv == CAIRN_OK) {
        rv = env_count(d, it.len, 2, CAIRN_ENV_MAX_HEADERS);
    }
    for (size_t i = 0; i < it.len && rv == CAIRN_OK; i++) {
        rv = env_get_text(d, &env->headers[i].name);
        if (rv == CAIRN_OK) {
            rv = env_get_text(d, &env->headers[i].value);
        }
    }
    env->nheaders = rv == CAIRN_OK ? (uint32_t)it.len : 0;
    return rv;
}

/* Decodes the value of a known key into env. */
static cairn_err
env_get_field(env_dec *d, uint64_t key, cairn_envelope *env)
{
    uint64_t  v = 0;
    cairn_err rv = CAIRN_OK;

    switch (key) {
    case ENV_K_PAYLOAD:
        return env_get_bytes(d, &env->payload);
    case ENV_K_ID:
        return env_get_id(d, env->id);
    case ENV_K_TOPIC:
        return env_get_topic(d, &env->topic);
    case ENV_K_TS:
        return env_get_uint(d, UINT64_MAX, &env->ts);
    case ENV_K_CORR:
        env->flags |= CAIRN_ENV_HAS_CORR;
        return env_get_id(d, env->corr);
    case ENV_K_CTYPE:
        env->flags |= CAIRN_ENV_HAS_CTYPE;
        return env_get_text(d, &env->ctype);
    case ENV_K_HEADERS:
        return env_get_headers(d, env);
    case ENV_K_ATTEMPT:
        env->flags |= CAIRN_ENV_HAS_ATTEMPT;
        rv = env_get_uint(d, UINT32_MAX, &v);
        env->attempt = (uint32_t)v;
        return rv;
    case ENV_K_KEY:
        env->flags |= CAIRN_ENV_HAS_KEY;
        return env_get_text(d, &env->key);
    default:
        return CAIRN_EINTERNAL;
    }
}

/* One key and its value of the top-level map. */
static cairn_err
env_get_entry(env_dec *d, cairn_envelope *env, uint32_t *seen)
{
    env_item  key;
    cairn_err rv = env_get_kind(d, &key, ENV_UINT);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (key.u > ENV_K_LAST) {
        return env_skip_value(d, 0);
    }
    uint32_t bit = 1u << key.u;
    if (*seen & bit) {
        return CAIRN_EPROTO;
    }
    *seen |= bit;
    return env_get_field(d, key.u, env);
}

cairn_err
cairn_envelope_decode(const uint8_t *buf, size_t len, cairn_envelope *env)
{
    env_dec  d = {buf, len, 0, 0};
    uint32_t seen = 0;
    env_item map;

    if (env == NULL || (buf == NULL && len > 0)) {
        return CAIRN_EINVAL;
    }
    if (len > CAIRN_ENV_MAX_SIZE) {
        return CAIRN_ETOOBIG;
    }
    cairn_envelope_init(env);
    cairn_err rv = env_get_kind(&d, &map, ENV_MAP);
    if (rv == CAIRN_OK) {
        rv = env_count(&d, map.len, 2, CAIRN_ENV_MAX_KEYS);
    }
    for (size_t i = 0; i < map.len && rv == CAIRN_OK; i++) {
        rv = env_get_entry(&d, env, &seen);
    }
    if (rv == CAIRN_OK && (seen & ENV_REQUIRED) != ENV_REQUIRED) {
        rv = CAIRN_EPROTO;
    }
    if (rv == CAIRN_OK && d.pos != len) {
        rv = CAIRN_EPROTO; /* trailing bytes */
    }
    return rv;
}
