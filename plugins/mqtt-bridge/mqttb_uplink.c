/*
 * mqttb_uplink.c - bus to cloud.
 *
 * Durable routes: the drain thread (the plugin's run thread) takes due
 * records from the outbox with host->outbox_next, renders each into an
 * entry (cloud topic from the route's template, payload raw or the whole
 * envelope, the id as the MQTT 5 user property cairn-id) and appends it
 * to the handoff list; the network thread publishes from there, at most
 * min(max_inflight, broker's Receive Maximum) unacknowledged at a time
 * (store.window bounds what the outbox hands out).  A record is acked
 * when libmosquitto reports PUBACK (QoS 1) or PUBCOMP (QoS 2), or for
 * QoS 0 when the whole PUBLISH was written to the socket: QoS 0 means at
 * most once beyond the device, so a broker or link failure after that
 * write loses the message, which is what QoS 0 asks for.  Records that
 * cannot be published at all (topic invalid after templating, payload
 * over max_payload or refused as too large, a broker reason code that
 * will not change) are nacked as permanent and become dead letters.
 *
 * The owned map (seq -> entry, under b->lock) holds every record the
 * bridge has: in the handoff list or live in libmosquitto.  The outbox
 * hands a record out again after a reset or after a nack of an earlier
 * record of its key; the drain thread skips those it owns, since
 * libmosquitto resends its own after a reconnect, in order.
 *
 * Non-durable routes subscribe on the bus; their delivery threads render
 * the message and append it to the direct list, or drop and count it
 * while disconnected or when the list is full.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "mqttb.h"

#define MQTTB_LOOP_HEADER "cairn-bridge" /* set on downlink messages */

/* The route of records no uplink route matches (a `routes:` entry of the
 * runtime's config that names this instance). */
static const mqttb_up_route mqttb_default_route = {
    .filter = "#",
    .topic = "{topic}",
    .qos = 1,
    .durable = true,
};

typedef struct mqttb_sub_arg {
    mqttb                *b;
    const mqttb_up_route *route;
} mqttb_sub_arg;

/* ---- entries ------------------------------------------------------------ */

/* One block: the entry, its topic, content type, correlation data and
 * (when payload is not NULL) a copy of the payload. */
static mqttb_entry *
mqttb_entry_alloc(const char *topic, const cairn_str *ctype,
                  const void *payload, size_t len, const uint8_t *corr,
                  size_t corr_len)
{
    size_t tl = strlen(topic), cl = ctype ? ctype->len : 0;
    size_t pl = payload ? len : 0;
    char  *p = malloc(sizeof(mqttb_entry) + tl + 1 + cl + 1 + corr_len + pl);
    if (p == NULL) {
        return NULL;
    }
    mqttb_entry *e = (mqttb_entry *)(void *)p;
    memset(e, 0, sizeof(*e));
    e->topic = p + sizeof(*e);
    memcpy(e->topic, topic, tl + 1);
    if (ctype != NULL && cl > 0) {
        char *c = e->topic + tl + 1;
        memcpy(c, ctype->ptr, cl);
        c[cl] = '\0';
        e->ctype = c;
    }
    uint8_t *tail = (uint8_t *)e->topic + tl + 1 + cl + 1;
    if (corr != NULL && corr_len > 0) {
        memcpy(tail, corr, corr_len);
        e->corr = tail;
        e->corr_len = corr_len;
    }
    if (payload != NULL && len > 0) {
        memcpy(tail + corr_len, payload, len);
        e->payload = tail + corr_len;
    }
    e->len = len;
    return e;
}

mqttb_entry *
mqttb_entry_direct(const char *topic, const void *payload, size_t len,
                   const uint8_t *corr, size_t corr_len)
{
    mqttb_entry *e =
        mqttb_entry_alloc(topic, NULL, payload, len, corr, corr_len);
    if (e != NULL) {
        e->kind = MQTTB_E_DIRECT;
    }
    return e;
}

void
mqttb_entry_free(mqttb *b, mqttb_entry *e)
{
    if (e->kind == MQTTB_E_RECORD) {
        b->host->record_fini(&e->rec);
    }
    free(e);
}

size_t
mqttb_inflight(const mqttb *b)
{
    return b->live.count;
}

/* Network thread: the bridge is done with record e.  An acked record that
 * was live at the last reset may be on its way out of the outbox again:
 * the done map makes the drain thread skip it. */
static void
mqttb_record_done(mqttb *b, mqttb_entry *e, bool acked)
{
    static mqttb_entry mark;
    pthread_mutex_lock(&b->lock);
    mqttb_map_del(&b->owned, e->rec.seq);
    if (acked && e->pre_reset) {
        mqttb_map_put(&b->done, e->rec.seq, &mark);
    }
    pthread_mutex_unlock(&b->lock);
    mqttb_entry_free(b, e);
}

static void
mqttb_nack(mqttb *b, cairn_record *rec, bool permanent, const char *why)
{
    char id[37];
    mqttb_count(b, permanent ? MQTTB_C_DEAD : MQTTB_C_RETRIED, 1);
    b->host->log(b->self, CAIRN_LOG_WARN, "message %s on '%.*s': %s%s",
                 cairn_id_format(rec->env.id, id), (int)rec->env.topic.len,
                 rec->env.topic.ptr, why,
                 permanent ? " (to the dead letters)" : " (retried later)");
    b->host->outbox_nack(b->self, rec->seq, permanent, why);
}

/* ---- drain thread ------------------------------------------------------- */

static bool
mqttb_own_header(const mqttb *b, const cairn_envelope *env)
{
    size_t n = strlen(b->name);
    for (uint32_t i = 0; i < env->nheaders; i++) {
        const cairn_header *h = &env->headers[i];
        if (h->name.len == sizeof(MQTTB_LOOP_HEADER) - 1 &&
            memcmp(h->name.ptr, MQTTB_LOOP_HEADER, h->name.len) == 0 &&
            h->value.len == n && memcmp(h->value.ptr, b->name, n) == 0) {
            return true;
        }
    }
    return false;
}

static const mqttb_up_route *
mqttb_route_of(const mqttb *b, const cairn_envelope *env)
{
    const mqttb_up_route *r = b->cfg.uplink.items;
    for (size_t i = 0; i < b->cfg.uplink.count; i++) {
        if (r[i].durable &&
            cairn_topic_match(r[i].filter, env->topic.ptr, env->topic.len)) {
            return &r[i];
        }
    }
    return &mqttb_default_route;
}

/* The cloud topic of env under route r, checked; why on error. */
static bool
mqttb_cloud_topic(const mqttb *b, const mqttb_up_route *r,
                  const cairn_envelope *env, char *out, const char **why)
{
    bridge_tctx t;
    bridge_tctx_init(&t, b->runtime, b->name, env->topic.ptr, env->topic.len,
                     '/');
    if (bridge_tpl_render(r->topic, &t, out, MQTTB_TOPIC_CAP, MQTTB_TOO_LONG,
                          why) != CAIRN_OK) {
        return false;
    }
    if (mosquitto_pub_topic_check(out) != MOSQ_ERR_SUCCESS ||
        mosquitto_validate_utf8(out, (int)strlen(out)) != MOSQ_ERR_SUCCESS) {
        *why = "topic invalid after templating (empty, wildcard or bad UTF-8)";
        return false;
    }
    return true;
}

/* Renders rec into a new entry (which then owns the record's data), or
 * settles it at once: NULL then, and the record is released. */
static mqttb_entry *
mqttb_record_entry(mqttb *b, cairn_record *rec)
{
    char                  topic[MQTTB_TOPIC_CAP];
    const char           *why = NULL;
    const mqttb_up_route *r = mqttb_route_of(b, &rec->env);
    const cairn_envelope *env = &rec->env;
    const void           *pl =
        r->payload == MQTTB_ENVELOPE ? rec->data : env->payload.ptr;
    size_t len = r->payload == MQTTB_ENVELOPE ? rec->len : env->payload.len;
    mqttb_entry *e = NULL;
    if (mqttb_own_header(b, env)) {
        mqttb_count(b, MQTTB_C_LOOP_SKIPPED, 1); /* came from this broker */
        b->host->outbox_ack(b->self, rec->seq);
    } else if (!mqttb_cloud_topic(b, r, env, topic, &why)) {
        mqttb_nack(b, rec, true, why);
    } else if (len > b->cfg.max_payload) {
        mqttb_nack(b, rec, true, "payload larger than max_payload");
    } else if ((e = mqttb_entry_alloc(
                    topic,
                    (env->flags & CAIRN_ENV_HAS_CTYPE) ? &env->ctype : NULL,
                    NULL, 0, NULL, 0)) == NULL) {
        mqttb_nack(b, rec, false, "out of memory");
    }
    if (e == NULL) {
        b->host->record_fini(rec);
        return NULL;
    }
    e->kind = MQTTB_E_RECORD;
    e->qos = (int)r->qos;
    e->retain = r->retain;
    e->rec = *rec;
    e->payload = pl;
    e->len = len;
    cairn_id_format(env->id, e->idtext);
    return e;
}

/* Under b->lock, at a reset: what is owned now is live in libmosquitto;
 * acks from before this reset need no remembering any more. */
static void
mqttb_mark_live(mqttb *b)
{
    for (size_t i = 0; i < b->owned.cap; i++) {
        if (b->owned.slots[i].val != NULL) {
            b->owned.slots[i].val->pre_reset = true;
        }
    }
    mqttb_map_fini(&b->done);
}

/* Waits until records may be fetched: connected, no reset pending (a
 * pending reset is done here first), the handoff list below low water.
 * False once stopping. */
static bool
mqttb_drain_gate(mqttb *b)
{
    pthread_mutex_lock(&b->lock);
    for (;;) {
        if (atomic_load(&b->stopping)) {
            pthread_mutex_unlock(&b->lock);
            return false;
        }
        if (b->reset_pending) {
            mqttb_list stale = b->handoff;
            memset(&b->handoff, 0, sizeof(b->handoff));
            for (mqttb_entry *e = stale.head; e != NULL; e = e->next) {
                mqttb_map_del(&b->owned, e->rec.seq);
            }
            mqttb_mark_live(b);
            pthread_mutex_unlock(&b->lock);
            for (mqttb_entry *e; (e = mqttb_list_pop(&stale)) != NULL;) {
                mqttb_entry_free(b, e);
            }
            b->host->outbox_reset(b->self);
            pthread_mutex_lock(&b->lock);
            b->reset_pending = false;
            continue;
        }
        if (atomic_load(&b->connected) && b->handoff.count < b->low_water) {
            pthread_mutex_unlock(&b->lock);
            return true;
        }
        b->drain_waiting = true;
        pthread_cond_wait(&b->drain_cv, &b->lock);
        b->drain_waiting = false;
    }
}

/* Appends the rendered records to the handoff list, skipping those the
 * bridge owns already; drops all when a reset came in between (they come
 * back after it). */
static void
mqttb_drain_take(mqttb *b, mqttb_entry **es, size_t n)
{
    size_t skipped = 0;
    pthread_mutex_lock(&b->lock);
    bool stale = b->reset_pending || atomic_load(&b->stopping);
    for (size_t i = 0; i < n; i++) {
        if (es[i] == NULL) {
            continue;
        }
        uint64_t seq = es[i]->rec.seq;
        if (stale || mqttb_map_get(&b->owned, seq) != NULL ||
            mqttb_map_get(&b->done, seq) != NULL ||
            mqttb_map_put(&b->owned, seq, es[i]) != CAIRN_OK) {
            skipped += !stale;
            continue; /* freed below */
        }
        mqttb_list_push(&b->handoff, es[i]);
        es[i] = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n; i++) {
        if (es[i] != NULL) {
            mqttb_entry_free(b, es[i]);
        }
    }
    mqttb_count(b, MQTTB_C_DUP_SKIPPED, skipped);
    mqttb_wake(b);
}

/* True to go on; logs and waits after an unexpected error. */
static bool
mqttb_drain_error(mqttb *b, cairn_err rv, uint32_t *errors)
{
    if (rv == CAIRN_ECLOSED) {
        return false;
    }
    if (rv == CAIRN_ENOTSUP) {
        b->host->log(b->self, CAIRN_LOG_WARN,
                     "no durable store: durable routes are not drained");
        return false;
    }
    if ((*errors)++ % 60 == 0) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "outbox: %s",
                     cairn_strerror(rv));
    }
    return b->host->sleep(b->self, 1000);
}

void
mqttb_drain_main(mqttb *b)
{
    cairn_record recs[MQTTB_DRAIN_BATCH];
    mqttb_entry *es[MQTTB_DRAIN_BATCH];
    uint32_t     errors = 0;
    pthread_mutex_lock(&b->lock);
    b->drain_running = !atomic_load(&b->stopping);
    pthread_mutex_unlock(&b->lock);
    while (b->drain_running && mqttb_drain_gate(b)) {
        size_t    n = 0;
        cairn_err rv = b->host->outbox_next(b->self, recs, MQTTB_DRAIN_BATCH,
                                            MQTTB_DRAIN_WAIT_MS, &n);
        if (rv != CAIRN_OK && rv != CAIRN_ETIMEDOUT &&
            !mqttb_drain_error(b, rv, &errors)) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            es[i] = mqttb_record_entry(b, &recs[i]);
        }
        if (n > 0) {
            mqttb_drain_take(b, es, n);
        }
        /* A full pipeline hands out records one per acknowledgement; a
         * short pause lets them gather, at no cost to the link. */
        if (n < MQTTB_DRAIN_TRICKLE && atomic_load(&b->saturated) &&
            !b->host->sleep(b->self, 1)) {
            break;
        }
    }
    pthread_mutex_lock(&b->lock);
    b->drain_running = false;
    pthread_cond_broadcast(&b->drain_cv);
    pthread_mutex_unlock(&b->lock);
}

/* ---- network thread: publishing and acks -------------------------------- */

/* Errors of the link (not of the message): libmosquitto keeps a QoS 1/2
 * message it got this far, and the link is to be dropped. */
static bool
mqttb_conn_error(int rc)
{
    return rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST ||
           rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_TLS;
}

static mosquitto_property *
mqttb_props(const mqttb *b, const mqttb_entry *e)
{
    mosquitto_property *p = NULL;
    if (!mqttb_is_v5(b)) {
        return NULL;
    }
    if (e->idtext[0] != '\0') {
        mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY,
                                           "cairn-id", e->idtext);
    }
    if (e->ctype != NULL) {
        mosquitto_property_add_string(&p, MQTT_PROP_CONTENT_TYPE, e->ctype);
    }
    if (e->corr != NULL && e->corr_len <= UINT16_MAX) {
        mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, e->corr,
                                      (uint16_t)e->corr_len);
    }
    if (e->status != NULL) {
        mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY,
                                           "cairn-status", e->status);
    }
    return p;
}

/* A broker refusal that will not change with a retry. */
static bool
mqttb_reason_permanent(int reason)
{
    return reason == MQTT_RC_NOT_AUTHORIZED ||
           reason == MQTT_RC_TOPIC_NAME_INVALID ||
           reason == MQTT_RC_PACKET_TOO_LARGE ||
           reason == MQTT_RC_PAYLOAD_FORMAT_INVALID;
}

/* Network thread: libmosquitto is done with e; reason is the broker's. */
static void
mqttb_complete(mqttb *b, mqttb_entry *e, int reason)
{
    /* PUBCOMP "packet id not found" after a session loss: the broker had
     * acknowledged the PUBLISH with PUBREC already. */
    bool ok =
        reason < 0x80 || (e->qos == 2 && reason == MQTT_RC_PACKET_ID_NOT_FOUND);
    if (e->prev != NULL || b->live.head == e) {
        mqttb_list_remove(&b->live, e);
    }
    if (e->kind != MQTTB_E_RECORD) {
        if (!ok) {
            mqttb_count(b, MQTTB_C_DROPPED, 1);
            b->host->log(b->self, CAIRN_LOG_WARN, "publish to '%s' refused: %s",
                         e->topic, mosquitto_reason_string(reason));
        }
        free(e);
        return;
    }
    if (ok) {
        mqttb_count(b, MQTTB_C_ACKED, 1);
        b->host->outbox_ack(b->self, e->rec.seq);
    } else {
        char why[128];
        snprintf(why, sizeof(why), "refused by the broker: %s",
                 mosquitto_reason_string(reason));
        mqttb_nack(b, &e->rec, mqttb_reason_permanent(reason), why);
    }
    mqttb_record_done(b, e, ok);
}

void
mqttb_on_publish(struct mosquitto *m, void *arg, int mid, int reason,
                 const mosquitto_property *props)
{
    mqttb *b = arg;
    for (mqttb_entry *e = b->live.head; e != NULL; e = e->next) {
        if (e->mid == mid) {
            mqttb_complete(b, e, reason);
            return;
        }
    }
    if (b->publishing != NULL) {
        /* QoS 0, written inside mosquitto_publish_v5 before its mid was
         * known to us. */
        b->publishing_done = true;
        b->publishing_reason = reason;
    }
}

/* mosquitto_publish_v5 failed with rc before the message was queued. */
static void
mqttb_publish_failed(mqttb *b, mqttb_entry *e, int rc)
{
    bool link = mqttb_conn_error(rc);
    if (e->kind != MQTTB_E_RECORD) {
        mqttb_count(b, MQTTB_C_DROPPED, 1);
        free(e);
    } else if (link) {
        mqttb_record_done(b, e, false); /* handed out after the reset */
    } else {
        mqttb_nack(b, &e->rec, rc != MOSQ_ERR_NOMEM, mosquitto_strerror(rc));
        mqttb_record_done(b, e, false);
    }
    if (link) {
        mqttb_conn_lost(b, rc, NULL);
    }
}

void
mqttb_uplink_send(mqttb *b, mqttb_entry *e)
{
    int                 mid = 0;
    int                 qos = e->qos < b->max_qos ? e->qos : b->max_qos;
    mosquitto_property *props = mqttb_props(b, e);
    e->qos = qos;
    b->publishing = e;
    b->publishing_done = false;
    int rc = mosquitto_publish_v5(b->mosq, &mid, e->topic, (int)e->len,
                                  e->payload, qos, e->retain, props);
    b->publishing = NULL;
    mosquitto_property_free_all(&props);
    /* QoS 1/2 messages are queued even when sending failed: libmosquitto
     * sends them after the reconnect. */
    if (rc != MOSQ_ERR_SUCCESS && !(qos > 0 && mqttb_conn_error(rc))) {
        mqttb_publish_failed(b, e, rc);
        return;
    }
    e->mid = mid;
    mqttb_count(b, MQTTB_C_SENT, 1);
    mqttb_count(b, MQTTB_C_SENT_BYTES, e->len);
    if (b->publishing_done) {
        mqttb_complete(b, e, b->publishing_reason);
    } else {
        mqttb_list_push(&b->live, e);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        mqttb_conn_lost(b, rc, NULL);
    }
}

void
mqttb_uplink_pump(mqttb *b)
{
    size_t limit = (size_t)b->cfg.max_inflight < b->receive_max
                       ? (size_t)b->cfg.max_inflight
                       : b->receive_max;
    while (b->state == MQTTB_UP && b->live.count < limit) {
        pthread_mutex_lock(&b->lock);
        mqttb_entry *e = mqttb_list_pop(&b->direct);
        if (e == NULL && !b->reset_pending) {
            e = mqttb_list_pop(&b->handoff);
        }
        if (b->drain_waiting && b->handoff.count < b->low_water) {
            pthread_cond_broadcast(&b->drain_cv);
        }
        pthread_mutex_unlock(&b->lock);
        if (e == NULL) {
            break;
        }
        mqttb_uplink_send(b, e);
    }
    atomic_store(&b->saturated, b->live.count >= limit);
}

void
mqttb_uplink_lost(mqttb *b)
{
    mqttb_list drop = {0};
    for (mqttb_entry *e = b->live.head, *next; e != NULL; e = next) {
        next = e->next;
        if (e->qos == 0) { /* libmosquitto forgets unsent QoS 0 */
            mqttb_list_remove(&b->live, e);
            mqttb_list_push(&drop, e);
        }
    }
    pthread_mutex_lock(&b->lock);
    for (mqttb_entry *e = drop.head; e != NULL; e = e->next) {
        if (e->kind == MQTTB_E_RECORD) {
            mqttb_map_del(&b->owned, e->rec.seq);
        }
    }
    mqttb_list direct = b->direct;
    memset(&b->direct, 0, sizeof(b->direct));
    b->reset_pending = true;
    pthread_cond_broadcast(&b->drain_cv);
    pthread_mutex_unlock(&b->lock);
    mqttb_count(b, MQTTB_C_DROPPED, direct.count);
    for (mqttb_entry *e; (e = mqttb_list_pop(&drop)) != NULL;) {
        mqttb_entry_free(b, e);
    }
    for (mqttb_entry *e; (e = mqttb_list_pop(&direct)) != NULL;) {
        free(e);
    }
}

void
mqttb_uplink_release(mqttb *b)
{
    mqttb_list *lists[] = {&b->live, &b->handoff, &b->direct};
    for (size_t i = 0; i < 3; i++) {
        for (mqttb_entry *e; (e = mqttb_list_pop(lists[i])) != NULL;) {
            mqttb_entry_free(b, e);
        }
    }
    mqttb_map_fini(&b->owned);
    mqttb_map_fini(&b->done);
}

/* ---- non-durable routes ------------------------------------------------- */

bool
mqttb_direct_push(mqttb *b, mqttb_entry *e)
{
    pthread_mutex_lock(&b->lock);
    bool ok = atomic_load(&b->connected) && !atomic_load(&b->stopping) &&
              b->direct.count < (size_t)b->cfg.queue;
    if (ok) {
        mqttb_list_push(&b->direct, e);
    }
    pthread_mutex_unlock(&b->lock);
    if (ok) {
        mqttb_wake(b);
    } else {
        mqttb_count(b, MQTTB_C_DROPPED, 1);
        free(e);
    }
    return ok;
}

/* The payload of a non-durable message: raw, or the envelope encoded
 * into buf (allocated; the caller frees it). */
static const void *
mqttb_direct_payload(const mqttb_up_route *r, const cairn_envelope *env,
                     uint8_t **buf, size_t *len)
{
    *buf = NULL;
    if (r->payload == MQTTB_RAW) {
        *len = env->payload.len;
        return env->payload.ptr;
    }
    size_t cap = cairn_envelope_encoded_size(env);
    if ((*buf = malloc(cap ? cap : 1)) == NULL ||
        cairn_envelope_encode(env, *buf, cap, len) != CAIRN_OK) {
        free(*buf);
        *buf = NULL;
        return NULL;
    }
    return *buf;
}

static void
mqttb_on_bus(void *arg, const cairn_envelope *env)
{
    const mqttb_sub_arg *s = arg;
    mqttb               *b = s->b;
    char                 topic[MQTTB_TOPIC_CAP];
    const char          *why = NULL;
    uint8_t             *buf;
    size_t               len = 0;
    if (!atomic_load(&b->connected)) {
        mqttb_count(b, MQTTB_C_DROPPED, 1);
        return;
    }
    if (mqttb_own_header(b, env)) {
        mqttb_count(b, MQTTB_C_LOOP_SKIPPED, 1);
        return;
    }
    const void *pl = mqttb_direct_payload(s->route, env, &buf, &len);
    if (pl == NULL || len > b->cfg.max_payload ||
        !mqttb_cloud_topic(b, s->route, env, topic, &why)) {
        mqttb_count(b, MQTTB_C_DROPPED, 1);
        b->host->log(b->self, CAIRN_LOG_DEBUG,
                     "dropped a message on '%.*s': %s", (int)env->topic.len,
                     env->topic.ptr,
                     why ? why : "payload too large or not encodable");
        free(buf);
        return;
    }
    mqttb_entry *e = mqttb_entry_alloc(
        topic, (env->flags & CAIRN_ENV_HAS_CTYPE) ? &env->ctype : NULL, pl, len,
        NULL, 0);
    free(buf);
    if (e == NULL) {
        mqttb_count(b, MQTTB_C_DROPPED, 1);
        return;
    }
    e->kind = MQTTB_E_DIRECT;
    e->qos = (int)s->route->qos;
    e->retain = s->route->retain;
    cairn_id_format(env->id, e->idtext);
    mqttb_direct_push(b, e);
}

cairn_err
mqttb_uplink_start(mqttb *b)
{
    const mqttb_up_route *r = b->cfg.uplink.items;
    mqttb_sub_arg        *s = calloc(b->cfg.uplink.count + 1, sizeof(*s));
    if (s == NULL) {
        return CAIRN_ENOMEM;
    }
    b->subs = s; /* freed in fini, after the subscriptions are gone */
    for (size_t i = 0; i < b->cfg.uplink.count; i++) {
        cairn_sub *sub;
        if (r[i].durable) {
            continue;
        }
        s[i] = (mqttb_sub_arg){b, &r[i]};
        cairn_err rv =
            b->host->subscribe(b->self, r[i].filter, mqttb_on_bus, &s[i], &sub);
        if (rv != CAIRN_OK) {
            b->host->log(b->self, CAIRN_LOG_ERROR,
                         "uplink[%zu]: subscribe '%s': %s", i, r[i].filter,
                         cairn_strerror(rv));
            return rv;
        }
    }
    return CAIRN_OK;
}
