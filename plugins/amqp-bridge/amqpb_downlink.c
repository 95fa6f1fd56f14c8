/*
 * amqpb_downlink.c - broker to bus: work queues with manual acks.
 *
 * Each downlink route consumes one AMQP queue on channel 2 with its own
 * prefetch (basic.qos before its basic.consume) and consumer tag
 * "cairn.<route index>".  A delivery, once its content is whole:
 *
 *   1. checks: body within max_payload; with payload: envelope, a body
 *      that decodes; a bus topic that renders from the routing key
 *   2. its id: the message-id property when it is a UUID; any other
 *      message-id is hashed into one (so redeliveries still match); else
 *      (payload: envelope) the envelope's id; else none, and the runtime
 *      gives it a fresh one
 *   3+4. topic routes with an id: host->publish_once (with the id,
 *      correlation-id, content type and the string headers, plus
 *      amqp-routing-key and cairn-bridge): the id and the copies for the
 *      durable routes of the topic commit in one transaction, then the
 *      bus gets it; CAIRN_EEXIST is a redelivery of a message done
 *      before, acked and dropped.  Without an id: host->publish_env.
 *   3. work queue routes: host->inbox_accept(id) (CAIRN_EEXIST as above),
 *   4. then host->queue_push (the payload only; the bus queue keeps
 *      nothing over a crash, durable or not)
 *   5. basic.ack once that returned OK.
 *
 * A failure that will not change (1, or a bus refusal such as an invalid
 * argument or a message too large) is basic.reject without requeue: the
 * queue's dead-letter exchange gets it.  A failure that may pass (the bus
 * queue has no free consumer, the store is full) is basic.reject with
 * requeue after a short pause.  publish_once keeps no id when it fails;
 * on a work queue route the id is committed already, so it is remembered
 * (the last AMQPB_REQUEUED) and the redelivery skips step 3.
 *
 * A crash before the basic.ack: the broker redelivers.  On a topic route
 * the id was committed together with the durable copies or not at all,
 * so the redelivery is either a duplicate of a stored message or
 * processed afresh; nothing accepted is lost.  On a host older than ABI
 * 1.2 (no publish_once), inbox_accept and publish_env commit apart, and
 * a crash between them loses the message.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqpb.h"

#define AMQPB_REQUEUE_PAUSE_MS 200

bool
amqpb_downlink_consume(amqpb *b)
{
    const amqpb_down_route *r = b->cfg.downlink.items;
    char                    tag[32], what[AMQPB_NAME_CAP + 32];
    for (size_t i = 0; i < b->cfg.downlink.count; i++) {
        amqp_rpc_reply_t rr;
        snprintf(what, sizeof(what), "basic.qos for '%s'", r[i].queue);
        if (amqp_basic_qos(b->conn, AMQPB_CH_SUB, 0, (uint16_t)r[i].prefetch,
                           0) != NULL) {
            snprintf(tag, sizeof(tag), "cairn.%zu", i);
            snprintf(what, sizeof(what), "consume queue '%s'", r[i].queue);
            amqp_basic_consume(b->conn, AMQPB_CH_SUB,
                               amqp_cstring_bytes(r[i].queue),
                               amqp_cstring_bytes(tag), 0, 0, 0,
                               amqp_empty_table);
        }
        rr = amqp_get_rpc_reply(b->conn);
        if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
            char text[AMQPB_ERR_CAP];
            amqpb_rpc_text(rr, text, sizeof(text));
            amqpb_conn_lost(b, "%s: %s", what, text);
            return false;
        }
    }
    return true;
}

static const amqpb_down_route *
amqpb_down_route_of(const amqpb *b, const char *tag)
{
    const amqpb_down_route *r = b->cfg.downlink.items;
    char                   *end;
    if (strncmp(tag, "cairn.", 6) != 0) {
        return NULL;
    }
    unsigned long i = strtoul(tag + 6, &end, 10);
    return *end == '\0' && i < b->cfg.downlink.count ? &r[i] : NULL;
}

/* A stable 16-byte id for a message-id that is not a UUID: two FNV-1a
 * hashes with different offsets. */
static void
amqpb_hash_id(const char *s, uint8_t id[CAIRN_ID_LEN])
{
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    for (int k = 0; k < 2; k++) {
        for (const char *p = s; *p != '\0'; p++) {
            h[k] = (h[k] ^ (uint8_t)*p) * 0x100000001b3ull;
        }
        for (int j = 0; j < 8; j++) {
            id[k * 8 + j] = (uint8_t)(h[k] >> (56 - 8 * j));
        }
    }
}

static void
amqpb_settle_delivery(amqpb *b, uint64_t tag, int how)
{
    int rc = how == 0   ? amqp_basic_ack(b->conn, AMQPB_CH_SUB, tag, 0)
             : how == 1 ? amqp_basic_reject(b->conn, AMQPB_CH_SUB, tag, 0)
                        : amqp_basic_reject(b->conn, AMQPB_CH_SUB, tag, 1);
    if (rc != AMQP_STATUS_OK) {
        amqpb_conn_lost(b, "basic.%s: %s", how == 0 ? "ack" : "reject",
                        amqp_error_string2(rc));
    }
}

/* Rejects the delivery for good (to the queue's dead-letter exchange). */
static void
amqpb_reject(amqpb *b, const amqpb_asm *a, const char *why)
{
    amqpb_count(b, AMQPB_C_DOWN_REJECTED, 1);
    b->host->log(b->self, CAIRN_LOG_WARN,
                 "delivery from '%s' (routing key '%s', message-id '%s') "
                 "rejected: %s",
                 a->exchange, a->routing_key,
                 a->props.has_message_id ? a->props.message_id : "-", why);
    amqpb_settle_delivery(b, a->delivery_tag, 1);
}

/* The envelope of a raw delivery (borrowing from a). */
static void
amqpb_env_raw(const amqpb_asm *a, cairn_envelope *env)
{
    const amqpb_props *p = &a->props;
    cairn_envelope_init(env);
    env->payload.ptr = a->body;
    env->payload.len = (size_t)a->body_size;
    if (p->has_content_type) {
        env->ctype = cairn_str_c(p->content_type);
        env->flags |= CAIRN_ENV_HAS_CTYPE;
    }
    if (p->has_correlation_id &&
        cairn_id_parse(p->correlation_id, env->corr) == CAIRN_OK) {
        env->flags |= CAIRN_ENV_HAS_CORR;
    }
    for (uint32_t i = 0; i < p->nheaders && env->nheaders + 2 <
                                                   CAIRN_ENV_MAX_HEADERS;
         i++) {
        if (strcmp(p->hname[i], "cairn-bridge") != 0) {
            bridge_env_header(env, p->hname[i], p->hvalue[i]);
        }
    }
}

/* Step 2: fills env->id; false when the message has no id. */
static bool
amqpb_take_id(const amqpb_asm *a, const amqpb_down_route *r,
              cairn_envelope *env)
{
    const amqpb_props *p = &a->props;
    if (p->has_message_id && p->message_id[0] != '\0') {
        if (cairn_id_parse(p->message_id, env->id) != CAIRN_OK) {
            amqpb_hash_id(p->message_id, env->id);
        }
        return true;
    }
    if (r->payload == AMQPB_ENVELOPE) {
        return true;
    }
    memset(env->id, 0, sizeof(env->id));
    return false;
}

/* Step 3: false when the delivery was a duplicate (acked already). */
static bool
amqpb_accept(amqpb *b, const amqpb_asm *a, const uint8_t id[CAIRN_ID_LEN])
{
    for (size_t i = 0; i < b->nrequeued; i++) {
        if (memcmp(b->requeued[i], id, CAIRN_ID_LEN) == 0) {
            memmove(b->requeued[i], b->requeued[i + 1],
                    (b->nrequeued - i - 1) * CAIRN_ID_LEN);
            b->nrequeued--;
            return true; /* ours, requeued after its commit */
        }
    }
    cairn_err rv = b->host->inbox_accept(b->self, id);
    if (rv == CAIRN_EEXIST) {
        amqpb_count(b, AMQPB_C_DOWN_DUPLICATES, 1);
        amqpb_settle_delivery(b, a->delivery_tag, 0);
        return false;
    }
    if (rv != CAIRN_OK && !b->accept_warned) {
        b->accept_warned = true;
        bridge_dup_check_warn(b->host, b->self, rv);
    }
    return true;
}

static bool
amqpb_permanent(cairn_err rv)
{
    return rv == CAIRN_EINVAL || rv == CAIRN_EPROTO || rv == CAIRN_ETOOBIG ||
           rv == CAIRN_ELIMIT || rv == CAIRN_EPERM;
}

/* A transient failure after the id was committed: requeue, remembering. */
static void
amqpb_requeue(amqpb *b, const amqpb_asm *a, const cairn_envelope *env,
              bool has_id, cairn_err rv)
{
    amqpb_count(b, AMQPB_C_DOWN_REQUEUED, 1);
    b->host->log(b->self, CAIRN_LOG_DEBUG, "delivery on '%s' requeued: %s",
                 a->routing_key, cairn_strerror(rv));
    if (has_id) {
        if (b->nrequeued == AMQPB_REQUEUED) {
            memmove(b->requeued[0], b->requeued[1],
                    (AMQPB_REQUEUED - 1) * CAIRN_ID_LEN);
            b->nrequeued--;
        }
        memcpy(b->requeued[b->nrequeued++], env->id, CAIRN_ID_LEN);
    }
    b->host->sleep(b->self, AMQPB_REQUEUE_PAUSE_MS);
    amqpb_settle_delivery(b, a->delivery_tag, 2);
}

/* Steps 3 and 4 of a topic route with an id, in one: publish_once.
 * False when the delivery was a duplicate (acked).  A failed commit
 * keeps no id, so a requeued delivery has nothing to remember: its
 * redelivery is processed afresh (or, if only the bus refused it after
 * the commit, is a duplicate whose durable copies are stored). */
static bool
amqpb_publish_once(amqpb *b, const amqpb_asm *a, const cairn_envelope *env,
                   cairn_err *rv)
{
    *rv = b->host->publish_once(b->self, env);
    if (*rv == CAIRN_EEXIST) {
        amqpb_count(b, AMQPB_C_DOWN_DUPLICATES, 1);
        amqpb_settle_delivery(b, a->delivery_tag, 0);
        return false;
    }
    if (*rv == CAIRN_ENOTSUP && !b->accept_warned) {
        b->accept_warned = true;
        bridge_dup_check_warn(b->host, b->self, *rv);
    }
    return true;
}

/* Steps 3 to 5 for a checked delivery. */
static void
amqpb_deliver(amqpb *b, const amqpb_asm *a, const amqpb_down_route *r,
              cairn_envelope *env, const char *topic, bool has_id)
{
    cairn_err rv = CAIRN_ENOTSUP;
    bool      once = has_id && r->work_queue[0] == '\0' &&
                !bridge_id_zero(env->id) &&
                CAIRN_HOST_HAS(b->host, publish_once);
    if (r->work_queue[0] == '\0') {
        env->topic = cairn_str_c(topic);
        bridge_env_header(env, "amqp-routing-key", a->routing_key);
        bridge_env_header(env, "cairn-bridge", b->name);
    }
    if (once && !amqpb_publish_once(b, a, env, &rv)) {
        return;
    }
    has_id = has_id && !once; /* only inbox_accept leaves an id to mind */
    if (!once && has_id && !amqpb_accept(b, a, env->id)) {
        return;
    }
    if (r->work_queue[0] != '\0') {
        rv = b->host->queue_push(b->self, r->work_queue, env->payload.ptr,
                                 env->payload.len, (uint32_t)r->push_timeout);
    } else if (rv == CAIRN_ENOTSUP) {
        rv = b->host->publish_env(b->self, env);
    }
    if (rv == CAIRN_OK) {
        amqpb_settle_delivery(b, a->delivery_tag, 0);
    } else if (amqpb_permanent(rv)) {
        amqpb_reject(b, a, cairn_strerror(rv));
    } else {
        /* has_id: the id is recorded (inbox_accept) and must not make its
         * own redelivery a duplicate */
        amqpb_requeue(b, a, env, has_id, rv);
    }
}

void
amqpb_on_deliver(amqpb *b, const amqpb_asm *a)
{
    const amqpb_down_route *r = amqpb_down_route_of(b, a->consumer_tag);
    cairn_envelope          env;
    char                    topic[AMQPB_NAME_CAP];
    const char             *why = NULL;
    bridge_tctx             t;
    amqpb_count(b, AMQPB_C_DOWN_RECEIVED, 1);
    amqpb_count(b, AMQPB_C_DOWN_BYTES, a->body_size);
    if (r == NULL) {
        amqpb_reject(b, a, "unknown consumer tag");
        return;
    }
    if (a->oversize) {
        amqpb_reject(b, a, "body larger than max_payload");
        return;
    }
    if (r->payload == AMQPB_ENVELOPE) {
        if (cairn_envelope_decode(a->body, (size_t)a->body_size, &env) !=
            CAIRN_OK) {
            amqpb_reject(b, a, "body is not a valid envelope");
            return;
        }
    } else {
        amqpb_env_raw(a, &env);
    }
    bool has_id = amqpb_take_id(a, r, &env);
    topic[0] = '\0';
    if (r->topic[0] != '\0') {
        bridge_tctx_init(&t, b->runtime, b->name, a->routing_key,
                         strlen(a->routing_key), '.');
        if (bridge_tpl_render(r->topic, &t, topic, sizeof(topic),
                              AMQPB_TOO_LONG, &why) != CAIRN_OK ||
            cairn_topic_valid(topic, strlen(topic)) != CAIRN_OK) {
            amqpb_reject(b, a, why ? why : "bus topic invalid after templating");
            return;
        }
    }
    amqpb_deliver(b, a, r, &env, topic, has_id);
}
