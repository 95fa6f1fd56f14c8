/*
 * mqttb_config.c - the bridge's config table (what `cairnd --describe`
 * prints), the checks the table cannot make, and topic templates.
 *
 * Templates: text with placeholders in braces.  {runtime} is the
 * runtime's name, {name} the bridge instance's, {topic} the whole source
 * topic and {1}..{9} its levels (1 = first).  A placeholder that names a
 * level the topic does not have is an error at the time of rendering
 * (the record goes to the dead letters, the downlink message is counted
 * as an error); an unknown placeholder is a config error.
 *
 * Runs at init only, on the host's thread; renders on any thread (the
 * functions keep no state).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqttb.h"

static const cairn_cfg_field mqttb_up_fields[] = {
    CAIRN_FIELD_STRING(mqttb_up_route, filter, NULL,
                       "bus topic filter (MQTT syntax) of the messages sent"),
    CAIRN_FIELD_STRING(mqttb_up_route, topic, "{topic}",
                       "cloud topic template: {runtime} {name} {topic} "
                       "{1}..{9} (levels of the bus topic)"),
    CAIRN_FIELD_INT(mqttb_up_route, qos, "1", 0, 2, "MQTT QoS of the publish"),
    CAIRN_FIELD_BOOL(mqttb_up_route, durable, "true",
                     "through the outbox (kept across outages and crashes); "
                     "false: straight from the bus, dropped and counted "
                     "while disconnected"),
    CAIRN_FIELD_ENUM(mqttb_up_route, payload, "raw", "raw|envelope",
                     "raw: the message payload; envelope: the whole CBOR "
                     "envelope"),
    CAIRN_FIELD_BOOL(mqttb_up_route, retain, "false", "publish retained"),
    CAIRN_FIELD_ENUM(mqttb_up_route, priority, "normal", "normal|high",
                     "outbox priority of a durable route"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field mqttb_down_fields[] = {
    CAIRN_FIELD_STRING(mqttb_down_route, filter, NULL,
                       "cloud topic filter to subscribe to"),
    CAIRN_FIELD_STRING(mqttb_down_route, topic, "",
                       "bus topic template ({1}..{9}: levels of the cloud "
                       "topic, {topic}, {runtime}, {name}); or set service"),
    CAIRN_FIELD_STRING(mqttb_down_route, service, "",
                       "bus service to call instead; the reply goes to the "
                       "request's Response Topic with its Correlation Data"),
    CAIRN_FIELD_STRING(mqttb_down_route, reply_topic, "",
                       "reply topic template for requests without a "
                       "Response Topic (MQTT 3.1.1); empty: no reply"),
    CAIRN_FIELD_DURATION(mqttb_down_route, timeout, "5s", 1, 3600000,
                         "deadline of a service call"),
    CAIRN_FIELD_INT(mqttb_down_route, qos, "1", 0, 2,
                    "subscription QoS (and the reply's)"),
    CAIRN_FIELD_ENUM(mqttb_down_route, payload, "raw", "raw|envelope",
                     "raw: the MQTT payload is the message payload; "
                     "envelope: it is a CBOR envelope"),
    CAIRN_FIELD_END,
};

const cairn_cfg_field mqttb_fields[] = {
    CAIRN_FIELD_STRING(mqttb_cfg, host, "127.0.0.1",
                       "broker host name or address"),
    CAIRN_FIELD_INT(mqttb_cfg, port, "1883", 1, 65535, "broker port"),
    CAIRN_FIELD_ENUM(mqttb_cfg, protocol, "5", "5|3.1.1", "MQTT version"),
    CAIRN_FIELD_STRING(mqttb_cfg, client_id, "{runtime}-{name}",
                       "client id template ({runtime}, {name}); stable, for "
                       "the persistent session"),
    CAIRN_FIELD_DURATION(mqttb_cfg, keepalive, "60s", 5000, 65535000,
                         "MQTT keepalive"),
    CAIRN_FIELD_STRING(mqttb_cfg, username, "", "user name (empty: none)"),
    CAIRN_FIELD_STRING(mqttb_cfg, password, "", "password (empty: none)"),
    CAIRN_FIELD_STRING(mqttb_cfg, password_file, "",
                       "read the password from this file instead (first line)"),
    CAIRN_FIELD_BOOL(mqttb_cfg, tls, "false", "connect over TLS"),
    CAIRN_FIELD_STRING(mqttb_cfg, ca_file, "",
                       "CA certificates (PEM) that sign the broker's; empty: "
                       "the system's"),
    CAIRN_FIELD_STRING(mqttb_cfg, cert_file, "",
                       "client certificate (PEM), for brokers that ask"),
    CAIRN_FIELD_STRING(mqttb_cfg, key_file, "",
                       "client certificate's key (PEM)"),
    CAIRN_FIELD_BOOL(mqttb_cfg, tls_insecure, "false",
                     "skip the broker host name check (never in production)"),
    CAIRN_FIELD_BOOL(mqttb_cfg, clean_session, "false",
                     "start a fresh session on every connect (loses what the "
                     "broker queued while away)"),
    CAIRN_FIELD_DURATION(mqttb_cfg, session_expiry, "7d", 0, 4294967295000.0,
                         "MQTT 5: how long the broker keeps the session after "
                         "a disconnect"),
    CAIRN_FIELD_STRING(mqttb_cfg, status_topic, "cairn/{runtime}/{name}/status",
                       "retained online/offline status (birth and last will); "
                       "empty: none"),
    CAIRN_FIELD_STRING(mqttb_cfg, online_payload, "online", "birth message"),
    CAIRN_FIELD_STRING(mqttb_cfg, offline_payload, "offline",
                       "last will, and the message of a clean stop"),
    CAIRN_FIELD_INT(mqttb_cfg, status_qos, "1", 0, 2,
                    "QoS of the status messages"),
    CAIRN_FIELD_DURATION(mqttb_cfg, reconnect_initial, "500ms", 10, 3600000,
                         "first reconnect delay"),
    CAIRN_FIELD_DURATION(mqttb_cfg, reconnect_max, "60s", 10, 86400000,
                         "longest reconnect delay"),
    CAIRN_FIELD_DOUBLE(mqttb_cfg, reconnect_multiplier, "2.0", 1.0, 100.0,
                       "delay growth per failed attempt (with jitter: each "
                       "delay is uniform in [cap/2, cap])"),
    CAIRN_FIELD_DURATION(mqttb_cfg, connect_timeout, "10s", 100, 600000,
                         "give up on a connection attempt without CONNACK "
                         "after this long"),
    CAIRN_FIELD_INT(mqttb_cfg, max_inflight, "50", 1, 65535,
                    "messages published and not yet acknowledged (also "
                    "bounded by the broker's Receive Maximum); keep it at "
                    "most half of store.window, so records are ready when "
                    "acknowledgements free room"),
    CAIRN_FIELD_SIZE(mqttb_cfg, max_payload, "256KiB", 1, 268435455,
                     "largest MQTT payload, both ways; larger records go to "
                     "the dead letters, larger downlink messages are dropped"),
    CAIRN_FIELD_INT(mqttb_cfg, queue, "1000", 1, 1000000,
                    "non-durable messages waiting for the network thread "
                    "(more are dropped and counted)"),
    CAIRN_FIELD_LIST(mqttb_cfg, uplink, mqttb_up_fields, mqttb_up_route,
                     "bus to cloud routes"),
    CAIRN_FIELD_LIST(mqttb_cfg, downlink, mqttb_down_fields, mqttb_down_route,
                     "cloud to bus routes"),
    CAIRN_FIELD_END,
};

/* ---- templates ---------------------------------------------------------- */

/* ---- checks ------------------------------------------------------------- */

/* Renders tpl against a made-up topic with nine levels: catches unknown
 * placeholders (and {topic} where there is no topic, when topic is NULL). */
static cairn_err
mqttb_check_tpl(mqttb *b, const char *what, const char *tpl, const char *topic)
{
    char        out[MQTTB_TOPIC_CAP];
    const char *why = NULL;
    bridge_tctx t;
    bridge_tctx_init(&t, b->runtime, b->name, topic, topic ? strlen(topic) : 0,
                     '/');
    if (bridge_tpl_render(tpl, &t, out, sizeof(out), MQTTB_TOO_LONG, &why) !=
        CAIRN_OK) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "%s '%s': %s", what, tpl, why);
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

static cairn_err
mqttb_check_up(mqttb *b, const mqttb_up_route *r, size_t i)
{
    char what[64];
    snprintf(what, sizeof(what), "uplink[%zu].topic", i);
    if (cairn_filter_valid(r->filter) != CAIRN_OK) {
        b->host->log(b->self, CAIRN_LOG_ERROR,
                     "uplink[%zu].filter '%s' is not a valid topic filter", i,
                     r->filter);
        return CAIRN_ECONFIG;
    }
    return mqttb_check_tpl(b, what, r->topic, "a/b/c/d/e/f/g/h/i");
}

static cairn_err
mqttb_check_down(mqttb *b, const mqttb_down_route *r, size_t i)
{
    char what[64];
    bool has_topic = r->topic[0] != '\0', has_svc = r->service[0] != '\0';
    if (mosquitto_sub_topic_check(r->filter) != MOSQ_ERR_SUCCESS) {
        b->host->log(b->self, CAIRN_LOG_ERROR,
                     "downlink[%zu].filter '%s' is not a valid MQTT filter", i,
                     r->filter);
        return CAIRN_ECONFIG;
    }
    if (has_topic == has_svc) {
        b->host->log(b->self, CAIRN_LOG_ERROR,
                     "downlink[%zu]: set exactly one of topic and service", i);
        return CAIRN_ECONFIG;
    }
    snprintf(what, sizeof(what), "downlink[%zu].%s", i,
             has_topic ? "topic" : "reply_topic");
    return mqttb_check_tpl(b, what, has_topic ? r->topic : r->reply_topic,
                           "a/b/c/d/e/f/g/h/i");
}

static cairn_err
mqttb_check_conn(mqttb *b)
{
    const mqttb_cfg *c = &b->cfg;
    cairn_err        rv = CAIRN_OK;
    if (c->host[0] == '\0') {
        b->host->log(b->self, CAIRN_LOG_ERROR, "host is empty");
        return CAIRN_ECONFIG;
    }
    if (c->reconnect_max < c->reconnect_initial) {
        b->host->log(b->self, CAIRN_LOG_ERROR,
                     "reconnect_max is below reconnect_initial");
        return CAIRN_ECONFIG;
    }
    if ((c->cert_file[0] == '\0') != (c->key_file[0] == '\0')) {
        b->host->log(b->self, CAIRN_LOG_ERROR,
                     "cert_file and key_file go together");
        return CAIRN_ECONFIG;
    }
    if (rv == CAIRN_OK && c->tls) {
        rv = bridge_check_file(b->host, b->self, "ca_file", c->ca_file);
        if (rv == CAIRN_OK) {
            rv = bridge_check_file(b->host, b->self, "cert_file", c->cert_file);
        }
        if (rv == CAIRN_OK) {
            rv = bridge_check_file(b->host, b->self, "key_file", c->key_file);
        }
    }
    if (rv == CAIRN_OK && c->password_file[0] != '\0') {
        rv = bridge_read_password(b->host, b->self, c->password_file,
                                  &b->password);
    }
    return rv;
}

static cairn_err
mqttb_check_names(mqttb *b)
{
    const char *why = NULL;
    bridge_tctx t;
    bridge_tctx_init(&t, b->runtime, b->name, NULL, 0, '/');
    if (bridge_tpl_render(b->cfg.client_id, &t, b->client_id,
                          sizeof(b->client_id), MQTTB_TOO_LONG,
                          &why) != CAIRN_OK ||
        b->client_id[0] == '\0') {
        b->host->log(b->self, CAIRN_LOG_ERROR, "client_id '%s': %s",
                     b->cfg.client_id, why ? why : "empty");
        return CAIRN_ECONFIG;
    }
    if (bridge_tpl_render(b->cfg.status_topic, &t, b->status_topic,
                          sizeof(b->status_topic), MQTTB_TOO_LONG,
                          &why) != CAIRN_OK ||
        (b->status_topic[0] != '\0' &&
         mosquitto_pub_topic_check(b->status_topic) != MOSQ_ERR_SUCCESS)) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "status_topic '%s': %s",
                     b->cfg.status_topic, why ? why : "not a valid topic");
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

cairn_err
mqttb_config_check(mqttb *b)
{
    const mqttb_up_route   *up = b->cfg.uplink.items;
    const mqttb_down_route *dn = b->cfg.downlink.items;
    cairn_err               rv = mqttb_check_conn(b);
    if (rv == CAIRN_OK) {
        rv = mqttb_check_names(b);
    }
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.uplink.count; i++) {
        rv = mqttb_check_up(b, &up[i], i);
    }
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.downlink.count; i++) {
        rv = mqttb_check_down(b, &dn[i], i);
    }
    return rv;
}
