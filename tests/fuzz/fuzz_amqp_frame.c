/*
 * fuzz_amqp_frame.c - the amqp-bridge's content assembler (amqpb_frame.c)
 * on a broker's untrusted bytes.
 *
 * The input plays the frames that follow a basic.deliver:
 *
 *   byte 0        bit 0: the content header names another class than
 *                 basic; bit 1: a body frame comes before the header;
 *                 bit 2: the header frame has no decoded properties
 *   bytes 1-2     L, big endian: length of the encoded properties
 *   L bytes       basic properties as on the wire, decoded by rabbitmq-c
 *                 (amqp_decode_properties) as it does for a real frame
 *   bytes 4       declared body size, big endian
 *   rest          body frames: one length byte, then that many bytes
 *
 * max_payload is small (1 KiB), so the oversize path runs too.  Whatever
 * the assembler accepts must be consistent: strings NUL-terminated within
 * their caps, headers inside their buffer, a whole body exactly its
 * declared size; after a protocol error nothing more is fed.  The reset
 * frees everything (LeakSanitizer checks).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amqpb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_PAYLOAD 1024

static void
fz_check_str(const char *s, size_t cap, bool has)
{
    if (has && memchr(s, '\0', cap) == NULL) {
        abort();
    }
}

static void
fz_check(const amqpb_asm *a, bool done)
{
    const amqpb_props *p = &a->props;
    fz_check_str(p->message_id, sizeof(p->message_id), p->has_message_id);
    fz_check_str(p->correlation_id, sizeof(p->correlation_id),
                 p->has_correlation_id);
    fz_check_str(p->content_type, sizeof(p->content_type), p->has_content_type);
    if (p->nheaders > CAIRN_ENV_MAX_HEADERS ||
        (p->nheaders > 0 && p->hbuf == NULL)) {
        abort();
    }
    for (uint32_t i = 0; i < p->nheaders; i++) {
        if (strlen(p->hname[i]) == 0 ||
            strlen(p->hname[i]) > CAIRN_ENV_MAX_TEXT ||
            strlen(p->hvalue[i]) > CAIRN_ENV_MAX_TEXT) {
            abort();
        }
    }
    if (a->got > a->body_size || (done && a->got != a->body_size) ||
        (a->oversize != (a->body_size > FZ_MAX_PAYLOAD)) ||
        (!a->oversize && a->state == AMQPB_AS_BODY && a->body == NULL)) {
        abort();
    }
}

/* Feeds the body frames of the rest of the input. */
static void
fz_bodies(amqpb *b, amqpb_asm *a, const uint8_t *d, size_t n)
{
    bool done = false;
    while (n > 0 && !done) {
        amqp_frame_t f = {.frame_type = AMQP_FRAME_BODY, .channel = 2};
        size_t       len = d[0] < n - 1 ? d[0] : n - 1;
        f.payload.body_fragment.bytes = (void *)(d + 1);
        f.payload.body_fragment.len = len;
        if (amqpb_asm_feed(b, a, &f, &done) != CAIRN_OK) {
            return; /* the connection would be dropped */
        }
        fz_check(a, done);
        d += len + 1;
        n -= len + 1;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static amqpb b; /* only cfg.max_payload is read */
    amqpb_asm    a = {.state = AMQPB_AS_HEADER};
    amqp_pool_t  pool;
    void        *decoded = NULL;
    bool         done = false;
    if (size < 3) {
        return 0;
    }
    b.cfg.max_payload = FZ_MAX_PAYLOAD;
    uint8_t flags = data[0];
    size_t  plen = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (plen > size || size - plen < 4) {
        return 0;
    }
    init_amqp_pool(&pool, 4096);
    amqp_bytes_t enc = {.len = plen, .bytes = (void *)data};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, enc, &decoded) != 0) {
        goto out; /* rabbitmq-c refuses the frame: the connection drops */
    }
    const uint8_t *bs = data + plen;
    amqp_frame_t   h = {.frame_type = AMQP_FRAME_HEADER, .channel = 2};
    h.payload.properties.class_id =
        (flags & 1) ? AMQP_CONNECTION_CLASS : AMQP_BASIC_CLASS;
    h.payload.properties.body_size = (uint64_t)bs[0] << 24 |
                                     (uint64_t)bs[1] << 16 |
                                     (uint64_t)bs[2] << 8 | bs[3];
    h.payload.properties.decoded = (flags & 4) ? NULL : decoded;
    data += plen + 4;
    size -= plen + 4;
    if (flags & 2) {
        fz_bodies(&b, &a, data, size); /* out of place: must be refused */
        if (a.got != 0 || a.state != AMQPB_AS_HEADER) {
            abort();
        }
    }
    if (amqpb_asm_feed(&b, &a, &h, &done) == CAIRN_OK) {
        if ((flags & 5) != 0) {
            abort(); /* a header that is no basic content header */
        }
        fz_check(&a, done);
        if (!done) {
            fz_bodies(&b, &a, data, size);
        }
    }
out:
    amqpb_asm_reset(&a);
    empty_amqp_pool(&pool);
    return 0;
}
