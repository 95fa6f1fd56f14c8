/*
 * mqttb_downlink.c - cloud to bus.
 *
 * Subscriptions: every downlink filter is subscribed after each CONNACK
 * (the persistent session keeps them, so this only matters after the
 * broker lost the session or the config changed; MQTT 5 asks for
 * retained messages only for new subscriptions).
 *
 * A message (mqttb_on_message, on the network thread, inside
 * mosquitto_loop): the first downlink route whose filter matches decides.
 * Checked first: size (max_payload), the envelope (payload: envelope; the
 * decoder takes untrusted bytes), the bus topic after templating (no
 * wildcards).  Its id is the MQTT 5 user property cairn-id when present
 * and valid, else (envelope mode) the envelope's id, else none.  Then:
 *
 *   topic route    onto the bus topic, with the id, the MQTT 5 content
 *                  type and correlation data, and headers mqtt-topic (the
 *                  cloud topic) and cairn-bridge (this instance, so no
 *                  uplink route sends it back).  A QoS 1/2 message with an
 *                  id goes through host->publish_once: the id and the
 *                  copies for durable routes commit in one transaction,
 *                  so a crash keeps both or neither, never an id "seen"
 *                  whose message is gone; CAIRN_EEXIST is a redelivery,
 *                  counted and dropped.  Otherwise host->publish_env (and,
 *                  on a host older than ABI 1.2, host->inbox_accept first)
 *   service route  queued for the service worker, which calls the service
 *                  (host->call, with the route's timeout) and publishes
 *                  the reply to the request's Response Topic (or the
 *                  route's reply_topic) with its Correlation Data; a failed
 *                  call replies with an empty payload and the user property
 *                  cairn-status naming the error; a QoS 1/2 request
 *                  with an id goes through host->inbox_accept first (a
 *                  service call is not durable: nothing to commit with it)
 *
 * libmosquitto 2.0 acknowledges a QoS 1 message (PUBACK; QoS 2: PUBREC)
 * before it calls on_message, and there is no manual acknowledgement: a
 * crash between that acknowledgement and the commit loses the message,
 * and the broker does not send it again.  Topic routes commit
 * synchronously in the callback (one commit: publish_once) to keep that
 * window as short as it gets.  What publish_once guarantees here is that
 * a message sent again (the cloud retrying a command with the same
 * cairn-id, or a PUBLISH the crash caught unread) is processed, not taken
 * for a duplicate of a copy that was never committed.
 *
 * Threads: on_message runs on the network thread; the service queue is
 * under b->lock, the worker waits on b->svc_cv.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "mqttb.h"

/* What the MQTT 5 properties of one message say.  Strings are allocated by
 * libmosquitto and freed by mqttb_props_fini. */
typedef struct mqttb_props_in {
    bool     has_id;
    uint8_t  id[CAIRN_ID_LEN];
    char    *response_topic;
    void    *corr;
    uint16_t corr_len;
    char    *ctype;
} mqttb_props_in;

static void
mqttb_props_read(const mosquitto_property *props, mqttb_props_in *in)
{
    const mosquitto_property *p = props;
    char                     *name, *value;
    memset(in, 0, sizeof(*in));
    for (bool skip = false;
         (p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY,
                                                  &name, &value, skip)) != NULL;
         skip = true) {
        if (!in->has_id && strcmp(name, "cairn-id") == 0) {
            in->has_id = cairn_id_parse(value, in->id) == CAIRN_OK;
        }
        free(name);
        free(value);
    }
    mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC,
                                   &in->response_topic, false);
    mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &in->corr,
                                   &in->corr_len, false);
    mosquitto_property_read_string(props, MQTT_PROP_CONTENT_TYPE, &in->ctype,
                                   false);
}

static void
mqttb_props_fini(mqttb_props_in *in)
{
    free(in->response_topic);
    free(in->corr);
    free(in->ctype);
}

static void
mqttb_down_error(mqttb *b, const char *topic, const char *why)
{
    mqttb_count(b, MQTTB_C_DOWN_ERRORS, 1);
    b->host->log(b->self, CAIRN_LOG_WARN,
                 "downlink message on '%s' dropped: %s", topic, why);
}

/* ---- subscriptions ------------------------------------------------------ */

void
mqttb_downlink_subscribe(mqttb *b)
{
    const mqttb_down_route *r = b->cfg.downlink.items;
    for (size_t i = 0; i < b->cfg.downlink.count; i++) {
        int rc = mqttb_is_v5(b)
                     ? mosquitto_subscribe_v5(
                           b->mosq, NULL, r[i].filter, (int)r[i].qos,
                           MQTT_SUB_OPT_SEND_RETAIN_NEW, NULL)
                     : mosquitto_subscribe(b->mosq, NULL, r[i].filter,
                                           (int)r[i].qos);
        if (rc != MOSQ_ERR_SUCCESS) {
            mqttb_count(b, MQTTB_C_DOWN_ERRORS, 1);
            b->host->log(b->self, CAIRN_LOG_ERROR, "subscribe '%s': %s",
                         r[i].filter, mosquitto_strerror(rc));
        }
    }
}

static const mqttb_down_route *
mqttb_down_route_of(const mqttb *b, const char *topic)
{
    const mqttb_down_route *r = b->cfg.downlink.items;
    for (size_t i = 0; i < b->cfg.downlink.count; i++) {
        bool match = false;
        if (mosquitto_topic_matches_sub(r[i].filter, topic, &match) ==
                MOSQ_ERR_SUCCESS &&
            match) {
            return &r[i];
        }
    }
    return NULL;
}

/* ---- one message -------------------------------------------------------- */

/* Records the id; false when the message must be dropped (a redelivery). */
static bool
mqttb_down_accept(mqttb *b, const struct mosquitto_message *msg,
                  const uint8_t id[CAIRN_ID_LEN])
{
    cairn_err rv = b->host->inbox_accept(b->self, id);
    if (rv == CAIRN_EEXIST) {
        mqttb_count(b, MQTTB_C_DOWN_DUPLICATES, 1);
        return false;
    }
    if (rv != CAIRN_OK && !atomic_exchange(&b->accept_warned, true)) {
        bridge_dup_check_warn(b->host, b->self, rv);
    }
    return true;
}

/* Raw mode: the envelope around the MQTT payload and properties. */
static void
mqttb_env_raw(cairn_envelope *env, const struct mosquitto_message *msg,
              const mqttb_props_in *in)
{
    cairn_envelope_init(env);
    env->payload.ptr = msg->payload;
    env->payload.len = (size_t)msg->payloadlen;
    if (in->ctype != NULL) {
        env->ctype = cairn_str_c(in->ctype);
        env->flags |= CAIRN_ENV_HAS_CTYPE;
    }
    if (in->corr != NULL && in->corr_len == CAIRN_ID_LEN) {
        memcpy(env->corr, in->corr, CAIRN_ID_LEN);
        env->flags |= CAIRN_ENV_HAS_CORR;
    }
}

static void
mqttb_down_publish(mqttb *b, const mqttb_down_route *r,
                   const struct mosquitto_message *msg, cairn_envelope *env,
                   bool has_id)
{
    char        topic[MQTTB_TOPIC_CAP];
    const char *why = NULL;
    bridge_tctx t;
    bridge_tctx_init(&t, b->runtime, b->name, msg->topic, strlen(msg->topic),
                     '/');
    if (bridge_tpl_render(r->topic, &t, topic, sizeof(topic), MQTTB_TOO_LONG,
                          &why) != CAIRN_OK ||
        strlen(topic) > CAIRN_TOPIC_MAX ||
        cairn_topic_valid(topic, strlen(topic)) != CAIRN_OK) {
        mqttb_down_error(b, msg->topic,
                         why ? why : "bus topic invalid after templating");
        return;
    }
    env->topic = cairn_str_c(topic);
    bridge_env_header(env, "mqtt-topic", msg->topic);
    bridge_env_header(env, "cairn-bridge", b->name);
    cairn_err rv = CAIRN_ENOTSUP;
    if (has_id && msg->qos > 0 && !bridge_id_zero(env->id) &&
        CAIRN_HOST_HAS(b->host, publish_once)) {
        rv = b->host->publish_once(b->self, env);
        if (rv == CAIRN_EEXIST) {
            mqttb_count(b, MQTTB_C_DOWN_DUPLICATES, 1);
            return;
        }
        if (rv == CAIRN_ENOTSUP && !atomic_exchange(&b->accept_warned, true)) {
            bridge_dup_check_warn(b->host, b->self, rv);
        }
    } else if (has_id && msg->qos > 0 && !bridge_id_zero(env->id) &&
               !mqttb_down_accept(b, msg, env->id)) {
        return; /* a host before ABI 1.2: the id commits on its own */
    }
    if (rv == CAIRN_ENOTSUP) {
        rv = b->host->publish_env(b->self, env);
    }
    if (rv != CAIRN_OK) {
        mqttb_down_error(b, msg->topic, cairn_strerror(rv));
    }
}

/* ---- service routes
 * ---------------------------------------------------------- */

static void
mqttb_req_free(mqttb_req *q)
{
    if (q != NULL) {
        free(q->topic);
        free(q->reply);
        free(q->corr);
        free(q->payload);
        free(q);
    }
}

static char *
mqttb_reply_topic(const mqttb *b, const mqttb_down_route *r, const char *topic,
                  const mqttb_props_in *in)
{
    char        out[MQTTB_TOPIC_CAP];
    const char *why = NULL;
    bridge_tctx t;
    if (in->response_topic != NULL) {
        return strdup(in->response_topic);
    }
    if (r->reply_topic[0] == '\0') {
        return NULL;
    }
    bridge_tctx_init(&t, b->runtime, b->name, topic, strlen(topic), '/');
    if (bridge_tpl_render(r->reply_topic, &t, out, sizeof(out), MQTTB_TOO_LONG,
                          &why) != CAIRN_OK) {
        return NULL;
    }
    return strdup(out);
}

static mqttb_req *
mqttb_req_new(const mqttb *b, const mqttb_down_route *r, const char *topic,
              const mqttb_props_in *in, const cairn_bytes *payload)
{
    mqttb_req *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->route = r;
    q->topic = strdup(topic);
    q->reply = mqttb_reply_topic(b, r, topic, in);
    q->len = payload->len;
    q->payload = malloc(payload->len ? payload->len : 1);
    q->corr_len = in->corr ? in->corr_len : 0;
    q->corr = in->corr ? malloc(in->corr_len ? in->corr_len : 1) : NULL;
    if (q->topic == NULL || q->payload == NULL ||
        (in->corr != NULL && q->corr == NULL)) {
        mqttb_req_free(q);
        return NULL;
    }
    if (payload->len > 0) {
        memcpy(q->payload, payload->ptr, payload->len);
    }
    if (q->corr != NULL && in->corr_len > 0) {
        memcpy(q->corr, in->corr, in->corr_len);
    }
    return q;
}

static void
mqttb_down_request(mqttb *b, const mqttb_down_route *r,
                   const struct mosquitto_message *msg,
                   const mqttb_props_in *in, const cairn_envelope *env,
                   bool has_id)
{
    if (has_id && msg->qos > 0 && !mqttb_down_accept(b, msg, env->id)) {
        return;
    }
    mqttb_req *q = mqttb_req_new(b, r, msg->topic, in, &env->payload);
    pthread_mutex_lock(&b->lock);
    bool ok = q != NULL && b->svc_count < (size_t)b->cfg.queue;
    if (ok) {
        if (b->svc_tail != NULL) {
            b->svc_tail->next = q;
        } else {
            b->svc_head = q;
        }
        b->svc_tail = q;
        b->svc_count++;
        pthread_cond_signal(&b->svc_cv);
    }
    pthread_mutex_unlock(&b->lock);
    if (!ok) {
        mqttb_count(b, MQTTB_C_REQUEST_ERRORS, 1);
        b->host->log(b->self, CAIRN_LOG_WARN,
                     "request on '%s' dropped: the service queue is full",
                     msg->topic);
        mqttb_req_free(q);
    }
}

/* Service worker: one call and its reply. */
static void
mqttb_serve_one(mqttb *b, mqttb_req *q)
{
    cairn_reply reply = {0};
    cairn_err rv = b->host->call(b->self, q->route->service, q->payload, q->len,
                                 (uint32_t)q->route->timeout, &reply);
    cairn_err st = rv == CAIRN_OK ? reply.status : rv;
    mqttb_count(b, MQTTB_C_REQUESTS, 1);
    if (st != CAIRN_OK) {
        mqttb_count(b, MQTTB_C_REQUEST_ERRORS, 1);
        b->host->log(b->self, CAIRN_LOG_WARN, "request on '%s' to %s: %s",
                     q->topic, q->route->service, cairn_strerror(st));
    }
    if (q->reply != NULL) {
        mqttb_entry *e = mqttb_entry_direct(
            q->reply, rv == CAIRN_OK ? reply.data : NULL,
            rv == CAIRN_OK ? reply.len : 0, q->corr, q->corr_len);
        if (e != NULL) {
            e->qos = (int)q->route->qos;
            e->status = st != CAIRN_OK ? cairn_strerror(st) : NULL;
            mqttb_direct_push(b, e);
        }
    }
    if (rv == CAIRN_OK) {
        b->host->reply_fini(&reply);
    }
}

static void *
mqttb_svc_main(void *arg)
{
    mqttb *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!atomic_load(&b->stopping)) {
        mqttb_req *q = b->svc_head;
        if (q == NULL) {
            pthread_cond_wait(&b->svc_cv, &b->lock);
            continue;
        }
        b->svc_head = q->next;
        b->svc_tail = b->svc_head ? b->svc_tail : NULL;
        b->svc_count--;
        pthread_mutex_unlock(&b->lock);
        mqttb_serve_one(b, q);
        mqttb_req_free(q);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

cairn_err
mqttb_downlink_start(mqttb *b)
{
    const mqttb_down_route *r = b->cfg.downlink.items;
    bool                    services = false;
    for (size_t i = 0; i < b->cfg.downlink.count; i++) {
        services = services || r[i].service[0] != '\0';
    }
    if (!services) {
        return CAIRN_OK;
    }
    int e = pthread_create(&b->svc_thread, NULL, mqttb_svc_main, b);
    if (e != 0) {
        return cairn_errno(e);
    }
    b->has_svc_thread = true;
    return CAIRN_OK;
}

void
mqttb_downlink_stop(mqttb *b)
{
    if (b->has_svc_thread) {
        pthread_join(b->svc_thread, NULL);
        b->has_svc_thread = false;
    }
    while (b->svc_head != NULL) {
        mqttb_req *q = b->svc_head;
        b->svc_head = q->next;
        mqttb_req_free(q);
    }
    b->svc_tail = NULL;
    b->svc_count = 0;
}

/* ---- the callback
 * ------------------------------------------------------------- */

void
mqttb_on_message(struct mosquitto *m, void *arg,
                 const struct mosquitto_message *msg,
                 const mosquitto_property       *props)
{
    mqttb                  *b = arg;
    mqttb_props_in          in;
    cairn_envelope          env;
    const mqttb_down_route *r = mqttb_down_route_of(b, msg->topic);
    mqttb_count(b, MQTTB_C_DOWN_RECEIVED, 1);
    mqttb_count(b, MQTTB_C_DOWN_BYTES, (uint64_t)msg->payloadlen);
    if (r == NULL) {
        mqttb_down_error(b, msg->topic, "no downlink route matches");
        return;
    }
    if ((uint64_t)msg->payloadlen > b->cfg.max_payload) {
        mqttb_down_error(b, msg->topic, "payload larger than max_payload");
        return;
    }
    mqttb_props_read(props, &in);
    if (r->payload == MQTTB_ENVELOPE) {
        cairn_err rv =
            cairn_envelope_decode(msg->payload, (size_t)msg->payloadlen, &env);
        if (rv != CAIRN_OK) {
            mqttb_down_error(b, msg->topic, "payload is not a valid envelope");
            goto done;
        }
    } else {
        mqttb_env_raw(&env, msg, &in);
    }
    if (in.has_id) {
        memcpy(env.id, in.id, CAIRN_ID_LEN);
    }
    bool has_id = in.has_id || r->payload == MQTTB_ENVELOPE;
    if (r->service[0] != '\0') {
        mqttb_down_request(b, r, msg, &in, &env, has_id);
    } else {
        mqttb_down_publish(b, r, msg, &env, has_id);
    }
done:
    mqttb_props_fini(&in);
}
