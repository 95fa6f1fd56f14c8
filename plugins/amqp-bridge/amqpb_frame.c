/*
 * amqpb_frame.c - assembles the content of a basic.deliver or basic.return
 * from the frames that follow the method: one content header (class basic,
 * declared body size, properties), then body frames until that size.
 * Frames of other channels may come in between; the event loop routes
 * each frame to its channel's assembler.
 *
 * The broker's bytes are untrusted here: a body larger than max_payload
 * is not allocated (its frames are counted and dropped, the message is
 * marked oversize and rejected), a body frame past the declared size or a
 * frame of the wrong type is a protocol error (the connection is dropped),
 * and only string-valued headers within the envelope's limits are kept.
 *
 * State per assembler: IDLE -> (method) HEADER -> (header) BODY -> whole.
 */
#include <stdlib.h>
#include <string.h>

#include "amqpb.h"

bool
amqpb_copy_str(char *dst, size_t cap, amqp_bytes_t src)
{
    if (src.len >= cap) {
        dst[0] = '\0';
        return false;
    }
    if (src.len > 0) {
        memcpy(dst, src.bytes, src.len);
    }
    dst[src.len] = '\0';
    return memchr(dst, '\0', src.len) == NULL;
}

void
amqpb_asm_reset(amqpb_asm *a)
{
    free(a->body);
    free(a->props.hbuf);
    memset(a, 0, sizeof(*a));
}

static bool
amqpb_header_ok(const amqp_table_entry_t *e)
{
    return (e->value.kind == AMQP_FIELD_KIND_UTF8 ||
            e->value.kind == AMQP_FIELD_KIND_BYTES) &&
           e->key.len > 0 && e->key.len <= CAIRN_ENV_MAX_TEXT &&
           e->value.value.bytes.len <= CAIRN_ENV_MAX_TEXT &&
           memchr(e->key.bytes, '\0', e->key.len) == NULL &&
           memchr(e->value.value.bytes.bytes, '\0',
                  e->value.value.bytes.len) == NULL;
}

/* String headers, up to CAIRN_ENV_MAX_HEADERS; others are skipped. */
static cairn_err
amqpb_copy_headers(amqpb_props *p, const amqp_table_t *t)
{
    size_t need = 0;
    int    n = 0;
    for (int i = 0; i < t->num_entries && n < CAIRN_ENV_MAX_HEADERS; i++) {
        if (amqpb_header_ok(&t->entries[i])) {
            need += t->entries[i].key.len + t->entries[i].value.value.bytes.len +
                    2;
            n++;
        }
    }
    if (n == 0) {
        return CAIRN_OK;
    }
    char *s = p->hbuf = malloc(need);
    if (s == NULL) {
        return CAIRN_ENOMEM;
    }
    for (int i = 0; i < t->num_entries && p->nheaders < (uint32_t)n; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (!amqpb_header_ok(e)) {
            continue;
        }
        p->hname[p->nheaders] = s;
        memcpy(s, e->key.bytes, e->key.len);
        s[e->key.len] = '\0';
        s += e->key.len + 1;
        p->hvalue[p->nheaders] = s;
        if (e->value.value.bytes.len > 0) {
            memcpy(s, e->value.value.bytes.bytes, e->value.value.bytes.len);
        }
        s[e->value.value.bytes.len] = '\0';
        s += e->value.value.bytes.len + 1;
        p->nheaders++;
    }
    return CAIRN_OK;
}

/* Properties that do not fit (over 255 bytes cannot happen: shortstr) or
 * hold a NUL are taken as absent. */
static cairn_err
amqpb_copy_props(amqpb_props *p, const amqp_basic_properties_t *bp)
{
    amqp_flags_t f = bp->_flags;
    if (f & AMQP_BASIC_MESSAGE_ID_FLAG) {
        p->has_message_id = amqpb_copy_str(p->message_id,
                                           sizeof(p->message_id),
                                           bp->message_id);
    }
    if (f & AMQP_BASIC_CORRELATION_ID_FLAG) {
        p->has_correlation_id = amqpb_copy_str(
            p->correlation_id, sizeof(p->correlation_id), bp->correlation_id);
    }
    if (f & AMQP_BASIC_CONTENT_TYPE_FLAG) {
        p->has_content_type = amqpb_copy_str(
            p->content_type, sizeof(p->content_type), bp->content_type);
    }
    if (f & AMQP_BASIC_HEADERS_FLAG) {
        return amqpb_copy_headers(p, &bp->headers);
    }
    return CAIRN_OK;
}

static cairn_err
amqpb_asm_header(amqpb *b, amqpb_asm *a, const amqp_frame_t *f, bool *done)
{
    if (f->frame_type != AMQP_FRAME_HEADER ||
        f->payload.properties.class_id != AMQP_BASIC_CLASS ||
        f->payload.properties.decoded == NULL) {
        return CAIRN_EPROTO;
    }
    a->body_size = f->payload.properties.body_size;
    a->oversize = a->body_size > b->cfg.max_payload;
    cairn_err rv = amqpb_copy_props(&a->props, f->payload.properties.decoded);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (!a->oversize &&
        (a->body = malloc(a->body_size ? (size_t)a->body_size : 1)) == NULL) {
        return CAIRN_ENOMEM;
    }
    a->state = AMQPB_AS_BODY;
    *done = a->body_size == 0;
    return CAIRN_OK;
}

cairn_err
amqpb_asm_feed(amqpb *b, amqpb_asm *a, const amqp_frame_t *f, bool *done)
{
    *done = false;
    if (a->state == AMQPB_AS_HEADER) {
        return amqpb_asm_header(b, a, f, done);
    }
    if (a->state != AMQPB_AS_BODY || f->frame_type != AMQP_FRAME_BODY) {
        return CAIRN_EPROTO;
    }
    amqp_bytes_t frag = f->payload.body_fragment;
    if (frag.len > a->body_size - a->got) {
        return CAIRN_EPROTO;
    }
    if (!a->oversize && frag.len > 0) {
        memcpy(a->body + a->got, frag.bytes, frag.len);
    }
    a->got += frag.len;
    *done = a->got == a->body_size;
    return CAIRN_OK;
}
