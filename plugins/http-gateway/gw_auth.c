/*
 * gw_auth.c - what the gateway checks before a request reaches a
 * service: bearer tokens, HS256 JWTs, and per-client token buckets; and
 * the hashes they need (SHA-256, HMAC-SHA256, and SHA-1 for the
 * WebSocket handshake), written here from FIPS 180-4 and RFC 2104 so
 * the plugin needs no crypto library.
 *
 * Tokens are never stored: the config holds the SHA-256 of each, in hex,
 * and a presented token is hashed and compared in constant time with
 * every configured hash (all of them, so the time does not tell which
 * matched).  JWT signatures are compared in constant time as well.
 *
 * Buckets: a fixed table (GW_BUCKETS slots) keyed by client; a new
 * client takes a free slot in its probe window or the one idle longest,
 * so the table never grows and a flood of client keys only evicts.
 * Guarded by one mutex; each check is a few arithmetic operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"

/* ---- SHA-256 ------------------------------------------------------------ */

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void
sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++) {
        w[i] = be32(p + 4 * i);
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^
                      (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^
                      (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, h, sizeof(s));
    for (int i = 0; i < 64; i++) {
        uint32_t e = s[4], a = s[0];
        uint32_t t1 = s[7] + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) +
                      ((e & s[5]) ^ (~e & s[6])) + sha256_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) +
                      ((a & s[1]) ^ (a & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof(uint32_t));
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) {
        h[i] += s[i];
    }
}

void
gw_sha256_init(gw_sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->n    = 0;
    c->used = 0;
}

void
gw_sha256_update(gw_sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->n += len;
    while (len > 0) {
        size_t k = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->buf + c->used, p, k);
        c->used += k, p += k, len -= k;
        if (c->used == 64) {
            sha256_block(c->h, c->buf);
            c->used = 0;
        }
    }
}

/* Padding shared by SHA-256 and SHA-1: 0x80, zeros, 64-bit bit count. */
static void
md_pad(uint8_t *buf, size_t *used, uint64_t n,
       void (*block)(uint32_t *, const uint8_t *), uint32_t *h)
{
    buf[(*used)++] = 0x80;
    if (*used > 56) {
        memset(buf + *used, 0, 64 - *used);
        block(h, buf);
        *used = 0;
    }
    memset(buf + *used, 0, 56 - *used);
    for (int i = 0; i < 8; i++) {
        buf[56 + i] = (uint8_t)((n * 8) >> (56 - 8 * i));
    }
    block(h, buf);
}

void
gw_sha256_final(gw_sha256_ctx *c, uint8_t out[32])
{
    md_pad(c->buf, &c->used, c->n, sha256_block, c->h);
    for (int i = 0; i < 32; i++) {
        out[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

void
gw_sha256(const void *data, size_t len, uint8_t out[32])
{
    gw_sha256_ctx c;
    gw_sha256_init(&c);
    gw_sha256_update(&c, data, len);
    gw_sha256_final(&c, out);
}

void
gw_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
               uint8_t out[32])
{
    uint8_t   k[64] = {0}, pad[64], inner[32];
    gw_sha256_ctx c;
    if (klen > 64) {
        gw_sha256(key, klen, k);
    } else if (klen > 0) {
        memcpy(k, key, klen);
    }
    for (int i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    gw_sha256_init(&c);
    gw_sha256_update(&c, pad, 64);
    gw_sha256_update(&c, msg, mlen);
    gw_sha256_final(&c, inner);
    for (int i = 0; i < 64; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    gw_sha256_init(&c);
    gw_sha256_update(&c, pad, 64);
    gw_sha256_update(&c, inner, 32);
    gw_sha256_final(&c, out);
}

/* ---- SHA-1 (only for Sec-WebSocket-Accept, RFC 6455) ------------------- */

static void
sha1_block(uint32_t *h, const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++) {
        w[i] = be32(p + 4 * i);
    }
    for (int i = 16; i < 80; i++) {
        w[i] = ROL32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d), k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d, k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d, k = 0xca62c1d6;
        }
        uint32_t t = ROL32(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL32(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void
gw_sha1(const void *data, size_t len, uint8_t out[20])
{
    uint32_t       h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
                           0xc3d2e1f0};
    uint8_t        buf[64];
    size_t         used = 0;
    const uint8_t *p    = data;
    for (size_t i = 0; i + 64 <= len; i += 64) {
        sha1_block(h, p + i);
    }
    used = len % 64;
    memcpy(buf, p + len - used, used);
    md_pad(buf, &used, len, sha1_block, h);
    for (int i = 0; i < 20; i++) {
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

/* ---- helpers ------------------------------------------------------------ */

bool
gw_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) {
        d |= a[i] ^ b[i];
    }
    return d == 0;
}

bool
gw_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int  v = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : -1;
        if (v < 0) {
            return false;
        }
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return true;
}

/* Base64url without padding (RFC 7515 section 2); false if malformed. */
static bool
b64url_decode(const char *s, size_t n, gw_buf *out)
{
    uint32_t acc = 0;
    int      bits = 0;
    if (n % 4 == 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int  v = c >= 'A' && c <= 'Z'   ? c - 'A'
                 : c >= 'a' && c <= 'z' ? c - 'a' + 26
                 : c >= '0' && c <= '9' ? c - '0' + 52
                 : c == '-'             ? 62
                 : c == '_'             ? 63
                                        : -1;
        if (v < 0) {
            return false;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            gw_buf_putc(out, (uint8_t)(acc >> bits));
        }
    }
    return !out->failed;
}

/* ---- JWT (HS256) -------------------------------------------------------- */

/* A top-level member of a flat JSON object: a number (num) or a string
 * (copied to text).  Enough for the claims and header we read; the
 * document itself was already checked to be valid JSON. */
static bool
jwt_member(const char *json, size_t len, const char *name, double *num,
           char *text, size_t tlen)
{
    char key[40];
    int  k = snprintf(key, sizeof(key), "\"%s\"", name);
    for (const char *p = json; p != NULL && p < json + len;) {
        p = memmem(p, (size_t)(json + len - p), key, (size_t)k);
        if (p == NULL) {
            return false;
        }
        const char *q = p + k;
        while (q < json + len && (*q == ' ' || *q == '\t' || *q == '\n' ||
                                  *q == '\r')) {
            q++;
        }
        if (q >= json + len || *q != ':') {
            p = q; /* the name appeared as a value: keep looking */
            continue;
        }
        q++;
        while (q < json + len && (*q == ' ' || *q == '\t')) {
            q++;
        }
        if (num != NULL && q < json + len &&
            (*q == '-' || (*q >= '0' && *q <= '9'))) {
            *num = strtod(q, NULL);
            return true;
        }
        if (text != NULL && q < json + len && *q == '"') {
            const char *e = memchr(q + 1, '"', (size_t)(json + len - q - 1));
            if (e == NULL || (size_t)(e - q - 1) >= tlen) {
                return false;
            }
            memcpy(text, q + 1, (size_t)(e - q - 1));
            text[e - q - 1] = '\0';
            return true;
        }
        return false;
    }
    return false;
}

cairn_err
gw_jwt_verify(const char *tok, const uint8_t *key, size_t klen,
              uint64_t now_s, uint64_t leeway_s, char *sub, size_t sublen,
              const char **why)
{
    static const gw_limits lim = {.max_depth = 4, .max_items = 256};
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    gw_buf      hdr = {.max = 4096}, body = {.max = 4096}, sig = {.max = 64};
    uint8_t     mac[32];
    char        alg[16];
    double      exp = 0, nbf = 0;
    cairn_err   rv  = CAIRN_EPERM;
    *why            = "malformed token";
    if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL ||
        !b64url_decode(tok, (size_t)(d1 - tok), &hdr) ||
        !b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &body) ||
        !b64url_decode(d2 + 1, strlen(d2 + 1), &sig) || sig.len != 32 ||
        !gw_json_valid((const char *)hdr.data, hdr.len, &lim) ||
        !gw_json_valid((const char *)body.data, body.len, &lim)) {
        goto done;
    }
    if (!jwt_member((const char *)hdr.data, hdr.len, "alg", NULL, alg,
                    sizeof(alg)) ||
        strcmp(alg, "HS256") != 0) {
        *why = "token algorithm is not HS256";
        goto done;
    }
    gw_hmac_sha256(key, klen, tok, (size_t)(d2 - tok), mac);
    if (!gw_ct_equal(mac, sig.data, 32)) {
        *why = "bad token signature";
        goto done;
    }
    if (!jwt_member((const char *)body.data, body.len, "exp", &exp, NULL, 0)) {
        *why = "token has no exp claim";
        goto done;
    }
    if (exp + (double)leeway_s <= (double)now_s) {
        *why = "token expired";
        goto done;
    }
    if (jwt_member((const char *)body.data, body.len, "nbf", &nbf, NULL, 0) &&
        nbf > (double)(now_s + leeway_s)) {
        *why = "token not valid yet";
        goto done;
    }
    if (!jwt_member((const char *)body.data, body.len, "sub", NULL, sub,
                    sublen)) {
        snprintf(sub, sublen, "jwt");
    }
    rv   = CAIRN_OK;
    *why = "";
done:
    gw_buf_fini(&hdr);
    gw_buf_fini(&body);
    gw_buf_fini(&sig);
    return rv;
}

/* ---- static tokens ------------------------------------------------------ */

const char *
gw_token_check(const gw *g, const char *token)
{
    uint8_t     h[32];
    const char *found = NULL;
    gw_sha256(token, strlen(token), h);
    for (size_t i = 0; i < g->ntokens; i++) {
        /* All of them, every time: no early exit on a match. */
        bool eq = gw_ct_equal(h, g->tokens[i].hash, 32);
        if (eq && found == NULL) {
            found = g->tokens[i].name;
        }
    }
    return found;
}

/* ---- token buckets ------------------------------------------------------ */

static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

#define GW_PROBE 8

bool
gw_rate_take(gw *g, const char *client, uint64_t now_ms, uint32_t *retry_s)
{
    double    rate = g->cfg.rate, burst = (double)g->cfg.burst;
    uint64_t  h    = fnv1a(client);
    gw_bucket *b   = NULL, *oldest = NULL;
    bool      ok;
    pthread_mutex_lock(&g->rate_lock);
    for (int i = 0; i < GW_PROBE && b == NULL; i++) {
        gw_bucket *c = &g->buckets[(h + (uint64_t)i) % GW_BUCKETS];
        if (c->used && c->hash == h && strcmp(c->key, client) == 0) {
            b = c;
        } else if (oldest == NULL || !c->used ||
                   (oldest->used && c->last_ms < oldest->last_ms)) {
            oldest = c;
        }
    }
    if (b == NULL) {
        b = oldest;
        b->used   = true;
        b->hash   = h;
        b->tokens = burst;
        b->last_ms = now_ms;
        snprintf(b->key, sizeof(b->key), "%s", client);
    }
    b->tokens += rate * (double)(now_ms - b->last_ms) / 1000.0;
    if (b->tokens > burst) {
        b->tokens = burst;
    }
    b->last_ms = now_ms;
    ok         = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double wait = (1.0 - b->tokens) / rate;
        *retry_s    = (uint32_t)wait + ((double)(uint32_t)wait < wait);
        if (*retry_s == 0) {
            *retry_s = 1;
        }
    }
    pthread_mutex_unlock(&g->rate_lock);
    return ok;
}
