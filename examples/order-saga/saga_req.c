/*
 * saga_req.c - the request format of the order-saga services: a bounded
 * CBOR map reader, the "key=value" text form, and the CBOR writer the
 * orchestrator uses for its own requests and replies.
 *
 * The CBOR reader knows the little it needs: unsigned integers, text
 * and byte strings, arrays, maps and simple values, definite lengths
 * only.  Every declared length is checked against the bytes that remain
 * before anything is read, so a short input cannot ask for more; nested
 * values of unknown keys are skipped up to SAGA_MAX_DEPTH.  The fuzz
 * target (fuzz_saga_req.c) drives saga_req_parse with arbitrary bytes.
 */
#include <string.h>

#include "saga.h"

typedef struct req_rd {
    const uint8_t *p, *end;
} req_rd;

/* Reads one item's head: major type and argument.  False when the input
 * ends early or uses what we do not take (indefinite lengths, reserved
 * additional information). */
static bool
rd_head(req_rd *r, int *major, uint64_t *arg)
{
    if (r->p >= r->end) {
        return false;
    }
    uint8_t b = *r->p++;
    int     ai = b & 0x1f;
    size_t  n = ai < 24 ? 0 : ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : 8;
    *major = b >> 5;
    if (ai > 27 || (size_t)(r->end - r->p) < n) {
        return false;
    }
    uint64_t v = ai < 24 ? (uint64_t)ai : 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | *r->p++;
    }
    *arg = v;
    return true;
}

static bool
rd_skip(req_rd *r, int depth)
{
    int      major;
    uint64_t arg;
    if (depth > SAGA_MAX_DEPTH || !rd_head(r, &major, &arg)) {
        return false;
    }
    switch (major) {
    case 2: /* byte string */
    case 3: /* text string */
        if (arg > (uint64_t)(r->end - r->p)) {
            return false;
        }
        r->p += arg;
        return true;
    case 4: /* array */
    case 5: /* map */
        /* Each item takes a byte at least: more than remain is a lie. */
        if (arg > (uint64_t)(r->end - r->p)) {
            return false;
        }
        for (uint64_t i = 0; i < arg * (major == 5 ? 2 : 1); i++) {
            if (!rd_skip(r, depth + 1)) {
                return false;
            }
        }
        return true;
    case 6: /* tag: skip what it tags */
        return rd_skip(r, depth + 1);
    default: /* integers, simple values, floats: the head was all */
        return true;
    }
}

static bool
req_text_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Stores a value (text, or a number as text) under the field named by
 * key; unknown keys are ignored. */
static cairn_err
req_set(saga_req *r, const char *key, size_t klen, const char *val,
        size_t vlen, const char **why)
{
#define REQ_KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
    char    *dst = NULL;
    size_t   max = 0;
    unsigned bit = 0;
    if (REQ_KEY("order")) {
        dst = r->order, max = SAGA_ID_LEN, bit = SAGA_HAS_ORDER;
    } else if (REQ_KEY("item")) {
        dst = r->item, max = SAGA_ITEM_MAX, bit = SAGA_HAS_ITEM;
    } else if (REQ_KEY("card")) {
        dst = r->card, max = SAGA_CARD_MAX, bit = SAGA_HAS_CARD;
    } else if (REQ_KEY("qty") || REQ_KEY("amount")) {
        uint64_t v = 0;
        bool     qty = REQ_KEY("qty");
        for (size_t i = 0; i < vlen; i++) {
            if (val[i] < '0' || val[i] > '9' || v > SAGA_AMOUNT_MAX) {
                *why = "qty and amount are whole numbers";
                return CAIRN_EPROTO;
            }
            v = v * 10 + (uint64_t)(val[i] - '0');
        }
        if (vlen == 0 || (qty && (v < 1 || v > SAGA_QTY_MAX)) ||
            v > SAGA_AMOUNT_MAX) {
            *why = qty ? "qty must be 1..1000" : "amount out of range";
            return CAIRN_EPROTO;
        }
        *(qty ? &r->qty : &r->amount) = v;
        r->has |= qty ? SAGA_HAS_QTY : SAGA_HAS_AMOUNT;
        return CAIRN_OK;
    } else {
        return CAIRN_OK;
    }
#undef REQ_KEY
    if (!req_text_ok(val, vlen, max)) {
        *why = bit == SAGA_HAS_ORDER
                   ? "order must be an order id"
                   : "item and card are 1-64 of [A-Za-z0-9_-] (item 1-32)";
        return CAIRN_EPROTO;
    }
    memcpy(dst, val, vlen);
    dst[vlen] = '\0';
    r->has |= bit;
    return CAIRN_OK;
}

static cairn_err
req_parse_cbor(req_rd *rd, saga_req *r, const char **why)
{
    int      major;
    uint64_t n;
    *why = "malformed CBOR";
    if (!rd_head(rd, &major, &n) || major != 5) {
        return CAIRN_EPROTO;
    }
    if (n > SAGA_MAX_KEYS) {
        *why = "too many keys";
        return CAIRN_EPROTO;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t klen, v;
        int      vmajor;
        if (!rd_head(rd, &major, &klen) || klen > (uint64_t)(rd->end - rd->p)) {
            return CAIRN_EPROTO; /* malformed */
        }
        if (major != 3) {
            *why = "keys must be text";
            return CAIRN_EPROTO;
        }
        const char *key = (const char *)rd->p;
        rd->p += klen;
        req_rd peek = *rd;
        if (!rd_head(&peek, &vmajor, &v)) {
            return CAIRN_EPROTO;
        }
        cairn_err rv = CAIRN_OK;
        if (vmajor == 3 && v <= (uint64_t)(peek.end - peek.p)) {
            rv = req_set(r, key, klen, (const char *)peek.p, v, why);
            *rd = peek;
            rd->p += v;
        } else if (vmajor == 0) {
            char num[24];
            int  nl = 0;
            do {
                num[sizeof(num) - 1 - nl++] = (char)('0' + v % 10);
            } while ((v /= 10) != 0);
            rv = req_set(r, key, klen, num + sizeof(num) - nl, (size_t)nl, why);
            *rd = peek;
        } else if (!rd_skip(rd, 1)) {
            return CAIRN_EPROTO;
        }
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    if (rd->p != rd->end) {
        *why = "bytes after the request map";
        return CAIRN_EPROTO;
    }
    return CAIRN_OK;
}

static bool
req_sep(char c)
{
    return c == ' ' || c == '&' || c == ',' || c == '\n' || c == '\t';
}

static cairn_err
req_parse_text(const char *s, size_t len, saga_req *r, const char **why)
{
    size_t i = 0, words = 0;
    while (i < len) {
        while (i < len && req_sep(s[i])) {
            i++;
        }
        size_t start = i;
        while (i < len && !req_sep(s[i])) {
            i++;
        }
        if (i == start) {
            break;
        }
        if (++words > SAGA_MAX_KEYS) {
            *why = "too many keys";
            return CAIRN_EPROTO;
        }
        const char *eq = memchr(s + start, '=', i - start);
        cairn_err   rv;
        if (eq == NULL) { /* a lone word: the order id */
            rv = req_set(r, "order", 5, s + start, i - start, why);
        } else {
            size_t kl = (size_t)(eq - (s + start));
            rv = req_set(r, s + start, kl, eq + 1, i - start - kl - 1, why);
        }
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

cairn_err
saga_req_parse(const uint8_t *p, size_t len, saga_req *r, const char **why)
{
    memset(r, 0, sizeof(*r));
    *why = "";
    if (p == NULL && len > 0) {
        return CAIRN_EINVAL;
    }
    if (len > 0 && (p[0] >> 5) == 5) {
        req_rd rd = {p, p + len};
        r->cbor = true;
        return req_parse_cbor(&rd, r, why);
    }
    return req_parse_text((const char *)p, len, r, why);
}

cairn_err
saga_req_need(const saga_req *r, unsigned need, const char **why)
{
    static const char *const names[] = {"order", "item", "card", "qty",
                                        "amount"};
    for (unsigned i = 0; i < 5; i++) {
        if ((need & (1u << i)) && !(r->has & (1u << i))) {
            *why = names[i];
            return CAIRN_EPROTO;
        }
    }
    return CAIRN_OK;
}

/* ---- writer --------------------------------------------------------------- */

static void
cbor_head(saga_cbor *w, int major, uint64_t v)
{
    uint8_t b[9];
    size_t  n;
    if (v < 24) {
        b[0] = (uint8_t)(major << 5 | (int)v), n = 1;
    } else if (v <= 0xff) {
        b[0] = (uint8_t)(major << 5 | 24), n = 2;
    } else if (v <= 0xffff) {
        b[0] = (uint8_t)(major << 5 | 25), n = 3;
    } else if (v <= 0xffffffffu) {
        b[0] = (uint8_t)(major << 5 | 26), n = 5;
    } else {
        b[0] = (uint8_t)(major << 5 | 27), n = 9;
    }
    for (size_t i = 1; i < n; i++) {
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    if (w->cap - w->len < n) {
        w->ovf = true;
        return;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

void
saga_cbor_map(saga_cbor *w, size_t n)
{
    cbor_head(w, 5, n);
}

void
saga_cbor_uint(saga_cbor *w, uint64_t v)
{
    cbor_head(w, 0, v);
}

void
saga_cbor_text(saga_cbor *w, const char *s)
{
    size_t n = strlen(s);
    cbor_head(w, 3, n);
    if (w->ovf || w->cap - w->len < n) {
        w->ovf = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

size_t
saga_req_encode(const saga_req *r, uint8_t *buf, size_t cap)
{
    saga_cbor w = {buf, 0, cap, false};
    size_t    n = 0;
    for (unsigned b = r->has; b != 0; b &= b - 1) {
        n++;
    }
    saga_cbor_map(&w, n);
    if (r->has & SAGA_HAS_ORDER) {
        saga_cbor_text(&w, "order"), saga_cbor_text(&w, r->order);
    }
    if (r->has & SAGA_HAS_ITEM) {
        saga_cbor_text(&w, "item"), saga_cbor_text(&w, r->item);
    }
    if (r->has & SAGA_HAS_CARD) {
        saga_cbor_text(&w, "card"), saga_cbor_text(&w, r->card);
    }
    if (r->has & SAGA_HAS_QTY) {
        saga_cbor_text(&w, "qty"), saga_cbor_uint(&w, r->qty);
    }
    if (r->has & SAGA_HAS_AMOUNT) {
        saga_cbor_text(&w, "amount"), saga_cbor_uint(&w, r->amount);
    }
    return w.ovf ? 0 : w.len;
}
