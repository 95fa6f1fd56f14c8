/*
 * gw_json.c - JSON <-> CBOR conversion with limits (see gw_json.h).
 *
 * JSON is parsed by recursive descent, bounded by max_depth, straight
 * into CBOR.  A container's head needs its count, known only at its end:
 * the converter reserves the longest head (9 bytes), writes the members
 * after it, then writes the real head and moves the members down over
 * the unused bytes.
 *
 * CBOR is read with every declared length and count checked against the
 * bytes that remain (each item takes at least one byte), so a short
 * input can never ask for a large allocation or a long loop.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_json.h"

/* ---- buffer ------------------------------------------------------------- */

static bool
buf_reserve(gw_buf *b, size_t n)
{
    if (b->failed) {
        return false;
    }
    if (n > SIZE_MAX / 2 - b->len || (b->max != 0 && b->len + n > b->max)) {
        b->failed = b->toobig = true;
        return false;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = true;
            return false;
        }
        b->data = d;
        b->cap  = cap;
    }
    return true;
}

void
gw_buf_put(gw_buf *b, const void *p, size_t n)
{
    if (n > 0 && buf_reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

void
gw_buf_putc(gw_buf *b, uint8_t c)
{
    gw_buf_put(b, &c, 1);
}

void
gw_buf_puts(gw_buf *b, const char *s)
{
    gw_buf_put(b, s, strlen(s));
}

void
gw_buf_printf(gw_buf *b, const char *fmt, ...)
{
    char    tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        gw_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n + 1)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
gw_buf_fini(gw_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---- small writers ------------------------------------------------------ */

/* The head of an item: major type and argument, shortest form. */
static size_t
cbor_head_enc(uint8_t *h, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        h[0] = m | (uint8_t)v;
        return 1;
    }
    int    nb = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    h[0]      = m | (uint8_t)(nb == 1 ? 24 : nb == 2 ? 25 : nb == 4 ? 26 : 27);
    for (int i = 0; i < nb; i++) {
        h[1 + i] = (uint8_t)(v >> (8 * (nb - 1 - i)));
    }
    return 1 + (size_t)nb;
}

void
gw_cbor_head(gw_buf *b, unsigned major, uint64_t v)
{
    uint8_t h[9];
    gw_buf_put(b, h, cbor_head_enc(h, major, v));
}

void
gw_cbor_text(gw_buf *b, const char *s, size_t n)
{
    gw_cbor_head(b, 3, n);
    gw_buf_put(b, s, n);
}

void
gw_json_string(gw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    gw_buf_putc(b, '"');
    size_t run = 0; /* bytes copied as they are, written in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run > 0) {
            gw_buf_put(b, s + i - run, run);
        }
        run = 0;
        char esc[7] = {'\\', (char)c, 0};
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
        }
        gw_buf_puts(b, esc);
    }
    if (run > 0) {
        gw_buf_put(b, s + n - run, run);
    }
    gw_buf_putc(b, '"');
}

void
gw_base64(gw_buf *b, const uint8_t *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63],
                     i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        gw_buf_put(b, q, 4);
    }
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none.
 * Rejects overlong forms, surrogates and code points past U+10FFFF. */
static size_t
utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t  len;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

bool
gw_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/* A converter's state, either way: the input (text for JSON, bytes for
 * CBOR), how far it is read, the limits, the values seen so far, the
 * output and the first error. */
typedef struct conv {
    union {
        const char    *s; /* JSON */
        const uint8_t *b; /* CBOR */
    };
    size_t           len, pos;
    const gw_limits *lim;
    uint32_t         items;
    gw_buf          *out;
    cairn_err        err;
    const char      *what;
} conv;

/* Keeps the first error; false, for returning. */
static bool
conv_fail(conv *c, cairn_err err, const char *what)
{
    if (c->err == CAIRN_OK) {
        c->err  = err;
        c->what = what;
    }
    return false;
}

/* ---- JSON -> CBOR ------------------------------------------------------- */

typedef conv jp;

static void
jp_ws(jp *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r')) {
        p->pos++;
    }
}

static bool
jp_lit(jp *p, const char *word, uint8_t simple)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        return conv_fail(p, CAIRN_EPROTO, "unexpected character");
    }
    p->pos += n;
    gw_buf_putc(p->out, (uint8_t)(0xe0 | simple));
    return true;
}

static int
jp_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int  d = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : -1;
        if (d < 0) {
            return -1;
        }
        v = v << 4 | d;
    }
    return v;
}

static void
utf8_put(gw_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t  n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 63));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12);
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        u[2] = (uint8_t)(0x80 | (cp & 63)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18);
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        u[3] = (uint8_t)(0x80 | (cp & 63)), n = 4;
    }
    gw_buf_put(b, u, n);
}

/* One escape after the backslash at p->pos; appends its UTF-8 to b. */
static bool
jp_escape(jp *p, gw_buf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char              c      = p->s[p->pos++];
    const char       *k      = c != '\0' ? strchr(from, c) : NULL;
    if (k != NULL) {
        gw_buf_putc(b, (uint8_t)to[k - from]);
        return true;
    }
    if (c != 'u' || p->len - p->pos < 4) {
        return conv_fail(p, CAIRN_EPROTO, "bad escape in string");
    }
    int cp = jp_hex4(p->s + p->pos);
    p->pos += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        int lo = p->len - p->pos >= 6 && p->s[p->pos] == '\\' &&
                         p->s[p->pos + 1] == 'u'
                     ? jp_hex4(p->s + p->pos + 2)
                     : -1;
        if (lo < 0xdc00 || lo > 0xdfff) {
            return conv_fail(p, CAIRN_EPROTO, "lone surrogate in string");
        }
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
        return conv_fail(p, CAIRN_EPROTO, "bad \\u escape in string");
    }
    utf8_put(b, (uint32_t)cp);
    return true;
}

/* A string at p->pos (the opening quote); its text goes to tmp. */
static bool
jp_string_text(jp *p, gw_buf *tmp)
{
    p->pos++;
    for (;;) {
        size_t start = p->pos;
        while (p->pos < p->len) {
            unsigned char c = (unsigned char)p->s[p->pos];
            if (c == '"' || c == '\\' || c < 0x20) {
                break;
            }
            p->pos++;
        }
        if (!gw_utf8_valid((const uint8_t *)p->s + start, p->pos - start)) {
            return conv_fail(p, CAIRN_EPROTO, "invalid UTF-8 in string");
        }
        gw_buf_put(tmp, p->s + start, p->pos - start);
        if (p->pos >= p->len) {
            return conv_fail(p, CAIRN_EPROTO, "unterminated string");
        }
        char c = p->s[p->pos++];
        if (c == '"') {
            return true;
        }
        if (c != '\\' || p->pos >= p->len) {
            return conv_fail(p, CAIRN_EPROTO, "control character in string");
        }
        if (!jp_escape(p, tmp)) {
            return false;
        }
    }
}

static bool
jp_string(jp *p)
{
    gw_buf tmp = {.max = p->out->max};
    bool   ok  = jp_string_text(p, &tmp);
    if (ok && tmp.failed) {
        ok = conv_fail(p, tmp.toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                       "string too long");
    }
    if (ok) {
        gw_cbor_text(p->out, (const char *)tmp.data, tmp.len);
    }
    gw_buf_fini(&tmp);
    return ok;
}

static size_t
jp_digits(jp *p)
{
    size_t n = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        p->pos++, n++;
    }
    return n;
}

static bool
jp_number(jp *p)
{
    size_t start = p->pos;
    bool   neg = false, frac = false;
    if (p->s[p->pos] == '-') {
        neg = true, p->pos++;
    }
    size_t first = p->pos, nd = jp_digits(p);
    if (nd == 0 || (nd > 1 && p->s[first] == '0')) {
        return conv_fail(p, CAIRN_EPROTO, "bad number");
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++, frac = true;
        if (jp_digits(p) == 0) {
            return conv_fail(p, CAIRN_EPROTO, "bad number");
        }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++, frac = true;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) {
            p->pos++;
        }
        if (jp_digits(p) == 0) {
            return conv_fail(p, CAIRN_EPROTO, "bad number");
        }
    }
    char text[64];
    if (p->pos - start >= sizeof(text)) {
        return conv_fail(p, CAIRN_ELIMIT, "number longer than 63 characters");
    }
    memcpy(text, p->s + start, p->pos - start);
    text[p->pos - start] = '\0';
    if (!frac && nd <= 19) {
        /* 19 digits fit in 64 bits; -0 stays a float. */
        unsigned long long u = strtoull(text + neg, NULL, 10);
        if (!neg) {
            gw_cbor_head(p->out, 0, u);
            return true;
        }
        if (u > 0 && u <= (1ull << 63)) {
            gw_cbor_head(p->out, 1, u - 1);
            return true;
        }
    }
    double  d = strtod(text, NULL);
    if (isinf(d)) {
        return conv_fail(p, CAIRN_EPROTO, "number out of range");
    }
    uint8_t h[9];
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    h[0] = 0xfb;
    for (int i = 0; i < 8; i++) {
        h[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    gw_buf_put(p->out, h, 9);
    return true;
}

static bool jp_value(jp *p, uint32_t depth);

/* Rewrites the 9 reserved bytes at at with the real head, moving the
 * members written after them down. */
static void
jp_close(jp *p, size_t at, unsigned major, uint64_t count)
{
    uint8_t h[9];
    size_t  n = cbor_head_enc(h, major, count);
    if (p->out->failed) {
        return;
    }
    memcpy(p->out->data + at, h, n);
    memmove(p->out->data + at + n, p->out->data + at + 9,
            p->out->len - at - 9);
    p->out->len -= 9 - n;
}

static bool
jp_container(jp *p, uint32_t depth, bool obj)
{
    static const uint8_t zero[9];
    char   close = obj ? '}' : ']';
    size_t at    = p->out->len;
    uint64_t n   = 0;
    if (depth >= p->lim->max_depth) {
        return conv_fail(p, CAIRN_ELIMIT, "nested too deep");
    }
    gw_buf_put(p->out, zero, 9);
    p->pos++;
    jp_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        jp_close(p, at, obj ? 5 : 4, 0);
        return true;
    }
    for (;;) {
        jp_ws(p);
        if (obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                return conv_fail(p, CAIRN_EPROTO, "expected a member name");
            }
            if (!jp_string(p)) {
                return false;
            }
            jp_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                return conv_fail(p, CAIRN_EPROTO, "expected ':'");
            }
            p->pos++;
        }
        if (!jp_value(p, depth + 1)) {
            return false;
        }
        n++;
        jp_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            jp_close(p, at, obj ? 5 : 4, n);
            return true;
        }
        return conv_fail(p, CAIRN_EPROTO,
                         obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool
jp_value(jp *p, uint32_t depth)
{
    jp_ws(p);
    if (p->pos >= p->len) {
        return conv_fail(p, CAIRN_EPROTO, "unexpected end of input");
    }
    if (++p->items > p->lim->max_items) {
        return conv_fail(p, CAIRN_ELIMIT, "too many values");
    }
    if (p->out->failed) {
        return conv_fail(p, p->out->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                         "document too large");
    }
    char c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[':
        return jp_container(p, depth, c == '{');
    case '"':
        return jp_string(p);
    case 't':
        return jp_lit(p, "true", 21);
    case 'f':
        return jp_lit(p, "false", 20);
    case 'n':
        return jp_lit(p, "null", 22);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            return jp_number(p);
        }
        return conv_fail(p, CAIRN_EPROTO, "unexpected character");
    }
}

static void
set_why(char *why, size_t whylen, const char *what, const char *where,
        size_t pos)
{
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s %s %zu", what, where, pos);
    }
}

cairn_err
gw_json_to_cbor(const char *json, size_t len, const gw_limits *lim,
                gw_buf *out, char *why, size_t whylen)
{
    size_t oldmax = out->max;
    jp     p      = {.s = json, .len = len, .lim = lim, .out = out};
    if (lim->max_out != 0 && (out->max == 0 || out->len + lim->max_out <
                                                   out->max)) {
        out->max = out->len + lim->max_out;
    }
    if (jp_value(&p, 0)) {
        jp_ws(&p);
        if (p.pos != p.len) {
            conv_fail(&p, CAIRN_EPROTO, "trailing characters");
        } else if (out->failed) {
            conv_fail(&p, out->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                      "document too large");
        }
    }
    out->max = oldmax;
    if (p.err != CAIRN_OK) {
        set_why(why, whylen, p.what, "at byte", p.pos);
    }
    return p.err;
}

bool
gw_json_valid(const char *json, size_t len, const gw_limits *lim)
{
    gw_buf    tmp = {0};
    cairn_err rv  = gw_json_to_cbor(json, len, lim, &tmp, NULL, 0);
    gw_buf_fini(&tmp);
    return rv == CAIRN_OK;
}

/* ---- CBOR -> JSON ------------------------------------------------------- */

typedef conv cr;

#define CR_INDEF UINT64_MAX

/* Reads a head: major type, additional info, argument (CR_INDEF for an
 * indefinite length). */
static bool
cr_head(cr *r, unsigned *major, unsigned *ai, uint64_t *arg)
{
    if (r->pos >= r->len) {
        return conv_fail(r, CAIRN_EPROTO, "truncated");
    }
    uint8_t b = r->b[r->pos++];
    *major    = b >> 5;
    *ai       = b & 31;
    if (*ai < 24) {
        *arg = *ai;
        return true;
    }
    if (*ai == 31) {
        if (*major == 0 || *major == 1 || *major == 6) {
            return conv_fail(r, CAIRN_EPROTO, "bad indefinite length");
        }
        *arg = CR_INDEF;
        return true;
    }
    if (*ai > 27) {
        return conv_fail(r, CAIRN_EPROTO, "reserved additional information");
    }
    size_t nb = (size_t)1 << (*ai - 24);
    if (r->len - r->pos < nb) {
        return conv_fail(r, CAIRN_EPROTO, "truncated");
    }
    *arg = 0;
    for (size_t i = 0; i < nb; i++) {
        *arg = *arg << 8 | r->b[r->pos++];
    }
    return true;
}

/* The bytes of a definite or indefinite string of major m, gathered in
 * tmp (indefinite) or pointed at (definite). */
static bool
cr_string(cr *r, unsigned m, uint64_t arg, gw_buf *tmp, const uint8_t **p,
          size_t *n)
{
    if (arg != CR_INDEF) {
        if (arg > r->len - r->pos) {
            return conv_fail(r, CAIRN_EPROTO, "string longer than the input");
        }
        *p = r->b + r->pos, *n = (size_t)arg;
        r->pos += (size_t)arg;
        return true;
    }
    for (;;) {
        unsigned cm, ai;
        uint64_t len;
        if (r->pos < r->len && r->b[r->pos] == 0xff) {
            r->pos++;
            break;
        }
        if (!cr_head(r, &cm, &ai, &len)) {
            return false;
        }
        if (cm != m || len == CR_INDEF) {
            return conv_fail(r, CAIRN_EPROTO, "bad chunk in indefinite string");
        }
        if (len > r->len - r->pos) {
            return conv_fail(r, CAIRN_EPROTO, "string longer than the input");
        }
        gw_buf_put(tmp, r->b + r->pos, (size_t)len);
        r->pos += (size_t)len;
    }
    if (tmp->failed) {
        return conv_fail(r, tmp->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                         "string too long");
    }
    *p = tmp->data, *n = tmp->len;
    return true;
}

static bool
cr_text_or_bytes(cr *r, unsigned m, uint64_t arg)
{
    gw_buf         tmp = {.max = r->lim->max_out};
    const uint8_t *p   = NULL;
    size_t         n   = 0;
    bool           ok  = cr_string(r, m, arg, &tmp, &p, &n);
    if (ok && m == 3 && !gw_utf8_valid(p, n)) {
        ok = conv_fail(r, CAIRN_EPROTO, "invalid UTF-8 in text string");
    }
    if (ok && m == 3) {
        gw_json_string(r->out, (const char *)p, n);
    } else if (ok) {
        gw_buf_putc(r->out, '"');
        gw_base64(r->out, p, n);
        gw_buf_putc(r->out, '"');
    }
    gw_buf_fini(&tmp);
    return ok;
}

static double
cr_half(uint16_t h)
{
    int    e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0    ? ldexp(m, -24)
               : e == 31 ? (m == 0 ? INFINITY : NAN)
                         : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static bool
cr_simple(cr *r, unsigned ai, uint64_t arg)
{
    double d;
    if (ai < 24 || ai == 24) {
        if (arg == 20 || arg == 21) {
            gw_buf_puts(r->out, arg == 21 ? "true" : "false");
        } else if (arg == 22 || arg == 23) {
            gw_buf_puts(r->out, "null");
        } else {
            return conv_fail(r, CAIRN_EPROTO, "unsupported simple value");
        }
        return true;
    }
    if (ai == 25) {
        d = cr_half((uint16_t)arg);
    } else if (ai == 26) {
        uint32_t u = (uint32_t)arg;
        float    f;
        memcpy(&f, &u, sizeof(f));
        d = f;
    } else if (ai == 27) {
        memcpy(&d, &arg, sizeof(d));
    } else {
        return conv_fail(r, CAIRN_EPROTO, "unexpected break");
    }
    if (isnan(d) || isinf(d)) {
        gw_buf_puts(r->out, "null");
        return true;
    }
    /* Shortest text that reads back as the same double, and always
     * reads back as a float, not an integer. */
    char text[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof(text), "%.*g", prec, d);
        if (strtod(text, NULL) == d) {
            break;
        }
    }
    gw_buf_puts(r->out, text);
    if (strpbrk(text, ".e") == NULL) {
        gw_buf_puts(r->out, ".0");
    }
    return true;
}

static bool cr_item(cr *r, uint32_t depth);

static void
cr_int(cr *r, unsigned m, uint64_t arg)
{
    if (m == 0) {
        gw_buf_printf(r->out, "%llu", (unsigned long long)arg);
    } else if (arg == UINT64_MAX) {
        gw_buf_puts(r->out, "-18446744073709551616");
    } else {
        gw_buf_printf(r->out, "-%llu", (unsigned long long)arg + 1);
    }
}

/* A map key: text as it is, an integer as its decimal text. */
static bool
cr_key(cr *r)
{
    unsigned m, ai;
    uint64_t arg;
    size_t   at = r->pos;
    if (!cr_head(r, &m, &ai, &arg)) {
        return false;
    }
    if (m == 3) {
        return cr_text_or_bytes(r, m, arg);
    }
    if (m == 0 || m == 1) {
        gw_buf_putc(r->out, '"');
        cr_int(r, m, arg);
        gw_buf_putc(r->out, '"');
        return true;
    }
    r->pos = at;
    return conv_fail(r, CAIRN_EPROTO, "map key is neither text nor integer");
}

static bool
cr_container(cr *r, unsigned m, uint64_t arg, uint32_t depth)
{
    bool map = m == 5;
    if (depth >= r->lim->max_depth) {
        return conv_fail(r, CAIRN_ELIMIT, "nested too deep");
    }
    if (arg != CR_INDEF && arg > (r->len - r->pos) / (map ? 2 : 1)) {
        return conv_fail(r, CAIRN_EPROTO, "count larger than the input");
    }
    gw_buf_putc(r->out, map ? '{' : '[');
    for (uint64_t i = 0; arg == CR_INDEF || i < arg; i++) {
        if (arg == CR_INDEF && r->pos < r->len && r->b[r->pos] == 0xff) {
            r->pos++;
            break;
        }
        if (i > 0) {
            gw_buf_putc(r->out, ',');
        }
        if (map) {
            if (!cr_key(r)) {
                return false;
            }
            gw_buf_putc(r->out, ':');
        }
        if (!cr_item(r, depth + 1)) {
            return false;
        }
    }
    gw_buf_putc(r->out, map ? '}' : ']');
    return true;
}

static bool
cr_item(cr *r, uint32_t depth)
{
    unsigned m, ai;
    uint64_t arg;
    if (++r->items > r->lim->max_items) {
        return conv_fail(r, CAIRN_ELIMIT, "too many values");
    }
    if (r->out->failed) {
        return conv_fail(r, r->out->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                         "document too large");
    }
    if (!cr_head(r, &m, &ai, &arg)) {
        return false;
    }
    switch (m) {
    case 0:
    case 1:
        cr_int(r, m, arg);
        return true;
    case 2:
    case 3:
        return cr_text_or_bytes(r, m, arg);
    case 4:
    case 5:
        return cr_container(r, m, arg, depth);
    case 6:
        return cr_item(r, depth); /* a tag: its content only */
    default:
        return cr_simple(r, ai, arg);
    }
}

cairn_err
gw_cbor_to_json(const uint8_t *cbor, size_t len, const gw_limits *lim,
                gw_buf *out, char *why, size_t whylen)
{
    size_t oldmax = out->max;
    cr     r = {.b = cbor, .len = len, .lim = lim, .out = out};
    if (lim->max_out != 0 && (out->max == 0 || out->len + lim->max_out <
                                                   out->max)) {
        out->max = out->len + lim->max_out;
    }
    if (cr_item(&r, 0)) {
        if (r.pos != r.len) {
            conv_fail(&r, CAIRN_EPROTO, "trailing bytes");
        } else if (out->failed) {
            conv_fail(&r, out->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM,
                      "document too large");
        }
    }
    out->max = oldmax;
    if (r.err != CAIRN_OK) {
        set_why(why, whylen, r.what, "at byte", r.pos);
    }
    return r.err;
}
