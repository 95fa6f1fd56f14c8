/*
 * amqpb_uplink.c - bus to broker, through the outbox.
 *
 * Every uplink route is durable: init registers its filter with
 * host->route_durable, so matching messages are committed to this
 * instance's outbox before the publish returns.  The run thread takes due
 * records with host->outbox_next, at most max_inflight unconfirmed, and
 * publishes each on channel 1 (confirm mode) to the route's exchange with
 * the rendered routing key, mandatory, delivery mode 2, and properties:
 *
 *   message-id      the cairn id (UUID text)
 *   correlation-id  the envelope's corr (UUID text), when present
 *   content-type    the envelope's ctype, when present
 *   timestamp       the envelope's ts, in seconds
 *   app-id          the runtime's name
 *   headers         the envelope's headers, plus cairn-topic (the bus
 *                   topic) and cairn-key (the ordering key, when set)
 *
 * The record is deleted (host->outbox_ack) on the broker's basic.ack.  A
 * basic.return (unroutable, mandatory) or a basic.nack (e.g. a full queue
 * with x-overflow reject-publish) becomes host->outbox_nack, not
 * permanent: the runtime retries it with backoff and makes it a dead
 * letter with the reason once out of attempts.  What can never be sent
 * (a routing key that does not render, a body over max_payload) is
 * nacked as permanent at once.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqpb.h"

#define AMQPB_LOOP_HEADER "cairn-bridge" /* set on downlink messages */

/* Records that no uplink route matches (a `routes:` entry of the runtime
 * naming this instance): the default exchange, the queue named like the
 * bus topic. */
static const amqpb_up_route amqpb_default_route = {
    .filter = "#",
    .exchange = "",
    .routing_key = "{topic}",
    .persistent = true,
    .mandatory = true,
};

cairn_err
amqpb_uplink_init(amqpb *b)
{
    const amqpb_up_route *r = b->cfg.uplink.items;
    b->fly = calloc((size_t)b->cfg.max_inflight, sizeof(*b->fly));
    b->recs = calloc(AMQPB_BATCH, sizeof(*b->recs));
    if (b->fly == NULL || b->recs == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < b->cfg.uplink.count; i++) {
        cairn_err rv = bridge_route_durable(b->host, b->self, i, r[i].filter,
                                            r[i].priority);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

void
amqpb_uplink_fini(amqpb *b)
{
    free(b->fly);
    free(b->recs);
    b->fly = NULL;
    b->recs = NULL;
}

static amqpb_fly *
amqpb_fly_at(amqpb *b, size_t i)
{
    return &b->fly[(b->fly_head + i) % (size_t)b->cfg.max_inflight];
}

static void
amqpb_nack(amqpb *b, cairn_record *rec, bool permanent, const char *why)
{
    char id[37];
    amqpb_count(b, permanent ? AMQPB_C_DEAD : AMQPB_C_RETRIED, 1);
    b->host->log(b->self, CAIRN_LOG_WARN, "message %s on '%.*s': %s%s",
                 cairn_id_format(rec->env.id, id), (int)rec->env.topic.len,
                 rec->env.topic.ptr, why,
                 permanent ? " (to the dead letters)"
                           : " (retried later, a dead letter once out of "
                             "attempts)");
    b->host->outbox_nack(b->self, rec->seq, permanent, why);
}

/* ---- confirms ----------------------------------------------------------- */

static void
amqpb_settle(amqpb *b, amqpb_fly *f, bool ok)
{
    if (ok && !f->returned) {
        amqpb_count(b, AMQPB_C_ACKED, 1);
        b->host->outbox_ack(b->self, f->rec.seq);
    } else {
        amqpb_count(b, f->returned ? AMQPB_C_RETURNED : AMQPB_C_NACKED, 1);
        amqpb_nack(b, &f->rec, false,
                   f->returned ? f->why : "nacked by the broker (queue full "
                                          "with reject-publish, or an internal "
                                          "error)");
    }
    b->host->record_fini(&f->rec);
    f->tag = 0; /* settled */
}

void
amqpb_on_ack(amqpb *b, uint64_t tag, bool multiple, bool ok)
{
    if (b->fly_count == 0 || tag == 0) {
        return;
    }
    uint64_t first = amqpb_fly_at(b, 0)->tag;
    /* Tags in the ring are consecutive from the head's (settled entries
     * keep their place until they reach the head). */
    uint64_t base = first != 0 ? first : b->next_tag - b->fly_count;
    if (tag < base || tag - base >= b->fly_count) {
        return; /* settled already, or not ours */
    }
    size_t lo = multiple ? 0 : (size_t)(tag - base);
    for (size_t i = lo; i <= (size_t)(tag - base); i++) {
        amqpb_fly *f = amqpb_fly_at(b, i);
        if (f->tag != 0) {
            amqpb_settle(b, f, ok);
        }
    }
    while (b->fly_count > 0 && amqpb_fly_at(b, 0)->tag == 0) {
        b->fly_head = (b->fly_head + 1) % (size_t)b->cfg.max_inflight;
        b->fly_count--;
    }
}

void
amqpb_on_return(amqpb *b, const amqpb_asm *a)
{
    for (size_t i = 0; i < b->fly_count; i++) {
        amqpb_fly *f = amqpb_fly_at(b, i);
        if (f->tag != 0 && !f->returned && a->props.has_message_id &&
            strcmp(f->idtext, a->props.message_id) == 0) {
            f->returned = true;
            snprintf(f->why, sizeof(f->why),
                     "returned by the broker: %u %.60s (exchange '%.60s', "
                     "routing key '%.60s')",
                     (unsigned)a->reply_code, a->reply_text, a->exchange,
                     a->routing_key);
            return;
        }
    }
    b->host->log(b->self, CAIRN_LOG_WARN,
                 "basic.return for no message in flight: %u %s",
                 (unsigned)a->reply_code, a->reply_text);
}

void
amqpb_uplink_reset(amqpb *b)
{
    bool any = b->fly_count > 0;
    for (size_t i = 0; i < b->fly_count; i++) {
        amqpb_fly *f = amqpb_fly_at(b, i);
        if (f->tag != 0) {
            b->host->record_fini(&f->rec);
            f->tag = 0;
        }
    }
    b->fly_head = b->fly_count = 0;
    if (any) {
        b->host->outbox_reset(b->self); /* all unconfirmed comes back */
    }
}

/* ---- publishing --------------------------------------------------------- */

static const amqpb_up_route *
amqpb_route_of(const amqpb *b, const cairn_envelope *env)
{
    const amqpb_up_route *r = b->cfg.uplink.items;
    for (size_t i = 0; i < b->cfg.uplink.count; i++) {
        if (cairn_topic_match(r[i].filter, env->topic.ptr, env->topic.len)) {
            return &r[i];
        }
    }
    return &amqpb_default_route;
}

static bool
amqpb_own_header(const amqpb *b, const cairn_envelope *env)
{
    size_t n = strlen(b->name);
    for (uint32_t i = 0; i < env->nheaders; i++) {
        const cairn_header *h = &env->headers[i];
        if (h->name.len == sizeof(AMQPB_LOOP_HEADER) - 1 &&
            memcmp(h->name.ptr, AMQPB_LOOP_HEADER, h->name.len) == 0 &&
            h->value.len == n && memcmp(h->value.ptr, b->name, n) == 0) {
            return true;
        }
    }
    return false;
}

static amqp_bytes_t
amqpb_bytes(const void *p, size_t len)
{
    amqp_bytes_t x = {len, (void *)(uintptr_t)p};
    return x;
}

static bool
amqpb_in_flight(amqpb *b, uint64_t seq)
{
    for (size_t i = 0; i < b->fly_count; i++) {
        amqpb_fly *f = amqpb_fly_at(b, i);
        if (f->tag != 0 && f->rec.seq == seq) {
            return true;
        }
    }
    return false;
}

/* The headers table: the envelope's, cairn-topic and cairn-key. */
static int
amqpb_headers(const cairn_envelope *env, amqp_table_entry_t *h)
{
    int n = 0;
    for (uint32_t i = 0; i < env->nheaders; i++, n++) {
        h[n].key = amqpb_bytes(env->headers[i].name.ptr,
                               env->headers[i].name.len);
        h[n].value.kind = AMQP_FIELD_KIND_UTF8;
        h[n].value.value.bytes = amqpb_bytes(env->headers[i].value.ptr,
                                             env->headers[i].value.len);
    }
    h[n].key = amqp_cstring_bytes("cairn-topic");
    h[n].value.kind = AMQP_FIELD_KIND_UTF8;
    h[n++].value.value.bytes = amqpb_bytes(env->topic.ptr, env->topic.len);
    if (env->flags & CAIRN_ENV_HAS_KEY) {
        h[n].key = amqp_cstring_bytes("cairn-key");
        h[n].value.kind = AMQP_FIELD_KIND_UTF8;
        h[n++].value.value.bytes = amqpb_bytes(env->key.ptr, env->key.len);
    }
    return n;
}

/* Publishes f's record; false when the link failed (the caller drops it). */
static bool
amqpb_publish(amqpb *b, const amqpb_up_route *r, amqpb_fly *f,
              const char *key)
{
    const cairn_envelope    *env = &f->rec.env;
    amqp_table_entry_t       hdr[CAIRN_ENV_MAX_HEADERS + 2];
    char                     corr[37];
    amqp_basic_properties_t  p;
    bool                     whole = r->payload == AMQPB_ENVELOPE;
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
               AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
               AMQP_BASIC_HEADERS_FLAG;
    p.delivery_mode = r->persistent ? AMQP_DELIVERY_PERSISTENT
                                    : AMQP_DELIVERY_NONPERSISTENT;
    p.message_id = amqp_cstring_bytes(f->idtext);
    p.timestamp = env->ts / 1000;
    p.app_id = amqp_cstring_bytes(b->runtime);
    p.headers.num_entries = amqpb_headers(env, hdr);
    p.headers.entries = hdr;
    if (env->flags & CAIRN_ENV_HAS_CORR) {
        p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = amqp_cstring_bytes(cairn_id_format(env->corr, corr));
    }
    if ((env->flags & CAIRN_ENV_HAS_CTYPE) && env->ctype.len < 256) {
        p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        p.content_type = amqpb_bytes(env->ctype.ptr, env->ctype.len);
    }
    amqp_bytes_t body = whole ? amqpb_bytes(f->rec.data, f->rec.len)
                              : amqpb_bytes(env->payload.ptr, env->payload.len);
    int rc = amqp_basic_publish(b->conn, AMQPB_CH_PUB,
                                amqp_cstring_bytes(r->exchange),
                                amqp_cstring_bytes(key), r->mandatory, 0, &p,
                                body);
    if (rc != AMQP_STATUS_OK) {
        amqpb_conn_lost(b, "publish: %s", amqp_error_string2(rc));
        return false;
    }
    amqpb_count(b, AMQPB_C_SENT, 1);
    amqpb_count(b, AMQPB_C_SENT_BYTES, body.len);
    return true;
}

/* Sends rec or settles it at once.  Takes the record; false once the link
 * is gone. */
static bool
amqpb_send_record(amqpb *b, cairn_record *rec)
{
    char                  key[AMQPB_NAME_CAP];
    const char           *why = NULL;
    const amqpb_up_route *r = amqpb_route_of(b, &rec->env);
    bridge_tctx           t;
    size_t len = r->payload == AMQPB_ENVELOPE ? rec->len : rec->env.payload.len;
    bridge_tctx_init(&t, b->runtime, b->name, rec->env.topic.ptr,
                     rec->env.topic.len, '/');
    if (amqpb_in_flight(b, rec->seq)) {
        amqpb_count(b, AMQPB_C_DUP_SKIPPED, 1); /* its confirm settles it */
    } else if (amqpb_own_header(b, &rec->env)) {
        amqpb_count(b, AMQPB_C_LOOP_SKIPPED, 1); /* came from this broker */
        b->host->outbox_ack(b->self, rec->seq);
    } else if (bridge_tpl_render(r->routing_key, &t, key, sizeof(key),
                                 AMQPB_TOO_LONG, &why) != CAIRN_OK) {
        amqpb_nack(b, rec, true, why);
    } else if (len > b->cfg.max_payload) {
        amqpb_nack(b, rec, true, "payload larger than max_payload");
    } else {
        amqpb_fly *f = amqpb_fly_at(b, b->fly_count++);
        memset(f, 0, sizeof(*f));
        f->tag = b->next_tag++;
        f->rec = *rec;
        cairn_id_format(rec->env.id, f->idtext);
        return amqpb_publish(b, r, f, key); /* a lost link frees f */
    }
    b->host->record_fini(rec);
    return true;
}

static void
amqpb_outbox_error(amqpb *b, cairn_err rv)
{
    if (rv == CAIRN_ENOTSUP) {
        b->no_outbox = true;
        b->host->log(b->self, CAIRN_LOG_INFO,
                     "no durable store: the uplink is off");
    } else if (rv != CAIRN_ECLOSED) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "outbox: %s",
                     cairn_strerror(rv));
        b->host->sleep(b->self, 1000);
    }
}

size_t
amqpb_uplink_fill(amqpb *b, uint32_t wait_ms)
{
    size_t room = (size_t)b->cfg.max_inflight - b->fly_count;
    size_t n = 0, i = 0;
    if (room == 0) {
        return 0;
    }
    cairn_err rv = b->host->outbox_next(
        b->self, b->recs, room < AMQPB_BATCH ? room : AMQPB_BATCH, wait_ms, &n);
    if (rv != CAIRN_OK && rv != CAIRN_ETIMEDOUT) {
        amqpb_outbox_error(b, rv);
        return 0;
    }
    while (i < n && amqpb_send_record(b, &b->recs[i])) {
        i++;
    }
    for (i = i < n ? i + 1 : n; i < n; i++) {
        b->host->record_fini(&b->recs[i]); /* handed out again after reset */
    }
    return n;
}
