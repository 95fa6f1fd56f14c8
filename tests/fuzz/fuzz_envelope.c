/*
 * fuzz_envelope.c - libFuzzer target for the envelope decoder.
 *
 * Every input must decode to OK or to one of the documented error classes.
 * Whatever decodes must encode again into no more bytes than the input
 * (unknown keys are dropped and heads are shortest), the encoding must
 * decode to an equal envelope, and encoding that one must give the same
 * bytes (the encoder is canonical).  Any breach aborts, which libFuzzer
 * reports as a crash with the input saved.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairn/cairn.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_envelope: %s\n", what);
    abort();
}

static int
fz_str_eq(cairn_str a, cairn_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int
fz_env_eq(const cairn_envelope *a, const cairn_envelope *b)
{
    if (a->payload.len != b->payload.len ||
        (a->payload.len > 0 &&
         memcmp(a->payload.ptr, b->payload.ptr, a->payload.len) != 0)) {
        return 0;
    }
    if (memcmp(a->id, b->id, CAIRN_ID_LEN) != 0 ||
        !fz_str_eq(a->topic, b->topic) || a->ts != b->ts ||
        a->flags != b->flags || a->nheaders != b->nheaders) {
        return 0;
    }
    if (((a->flags & CAIRN_ENV_HAS_CORR) &&
         memcmp(a->corr, b->corr, CAIRN_ID_LEN) != 0) ||
        ((a->flags & CAIRN_ENV_HAS_CTYPE) && !fz_str_eq(a->ctype, b->ctype)) ||
        ((a->flags & CAIRN_ENV_HAS_ATTEMPT) && a->attempt != b->attempt) ||
        ((a->flags & CAIRN_ENV_HAS_KEY) && !fz_str_eq(a->key, b->key))) {
        return 0;
    }
    for (uint32_t i = 0; i < a->nheaders; i++) {
        if (!fz_str_eq(a->headers[i].name, b->headers[i].name) ||
            !fz_str_eq(a->headers[i].value, b->headers[i].value)) {
            return 0;
        }
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_envelope a, b;
    size_t         len = 0, len2 = 0;

    cairn_err rv = cairn_envelope_decode(data, size, &a);
    if (rv != CAIRN_OK) {
        if (rv != CAIRN_EPROTO && rv != CAIRN_ELIMIT && rv != CAIRN_ETOOBIG) {
            fz_fail("undocumented decode error");
        }
        return 0;
    }
    size_t need = cairn_envelope_encoded_size(&a);
    if (need == 0 || need > size) {
        fz_fail("encoded size of a decoded envelope");
    }
    uint8_t *buf = malloc(need);
    uint8_t *buf2 = malloc(need);
    if (buf == NULL || buf2 == NULL) {
        fz_fail("out of memory");
    }
    if (cairn_envelope_encode(&a, buf, need, &len) != CAIRN_OK || len != need) {
        fz_fail("re-encoding failed");
    }
    if (cairn_envelope_decode(buf, len, &b) != CAIRN_OK) {
        fz_fail("re-encoded envelope does not decode");
    }
    if (!fz_env_eq(&a, &b)) {
        fz_fail("decode, encode, decode changed the envelope");
    }
    if (cairn_envelope_encode(&b, buf2, need, &len2) != CAIRN_OK ||
        len2 != len || memcmp(buf, buf2, len) != 0) {
        fz_fail("encoding is not canonical");
    }
    free(buf2);
    free(buf);
    return 0;
}
