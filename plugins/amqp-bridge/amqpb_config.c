/*
 * amqpb_config.c - the bridge's config table (what `cairnd --describe`
 * prints), the checks the table cannot make, and templates.
 *
 * Templates: text with placeholders in braces.  {runtime} and {name} are
 * the runtime's and the bridge instance's names, {topic} the whole source
 * (a bus topic uplink, a routing key downlink) and {1}..{9} its parts: the
 * levels of a bus topic ('/'), the words of a routing key ('.').  A part
 * the source does not have is an error when rendering (the record becomes
 * a dead letter, the delivery is rejected); an unknown placeholder is a
 * config error.
 *
 * Runs at init on the host's thread; rendering keeps no state.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqpb.h"

static const cairn_cfg_field amqpb_exchange_fields[] = {
    CAIRN_FIELD_STRING(amqpb_exchange, name, NULL, "exchange name"),
    CAIRN_FIELD_ENUM(amqpb_exchange, type, "topic",
                     "topic|direct|fanout|headers", "exchange type"),
    CAIRN_FIELD_BOOL(amqpb_exchange, durable, "true",
                     "survives a broker restart"),
    CAIRN_FIELD_BOOL(amqpb_exchange, auto_delete, "false",
                     "deleted when its last binding goes"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field amqpb_queue_fields[] = {
    CAIRN_FIELD_STRING(amqpb_queue, name, NULL, "queue name"),
    CAIRN_FIELD_BOOL(amqpb_queue, durable, "true",
                     "survives a broker restart (with persistent messages)"),
    CAIRN_FIELD_STRING(amqpb_queue, dead_letter_exchange, "",
                       "x-dead-letter-exchange: where rejected and expired "
                       "messages go (empty: dropped)"),
    CAIRN_FIELD_STRING(amqpb_queue, dead_letter_routing_key, "",
                       "x-dead-letter-routing-key (empty: the message's own)"),
    CAIRN_FIELD_INT(amqpb_queue, max_length, "0", 0, 2147483647.0,
                    "x-max-length in messages (0: unlimited)"),
    CAIRN_FIELD_ENUM(amqpb_queue, overflow, "drop-head",
                     "drop-head|reject-publish|reject-publish-dlx",
                     "x-overflow: what a full queue does with a new message "
                     "(reject-publish: the broker nacks it)"),
    CAIRN_FIELD_DURATION(amqpb_queue, message_ttl, "0", 0, 2147483647.0,
                         "x-message-ttl (0: none)"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field amqpb_binding_fields[] = {
    CAIRN_FIELD_STRING(amqpb_binding, queue, NULL, "queue to bind"),
    CAIRN_FIELD_STRING(amqpb_binding, exchange, NULL, "exchange bound to"),
    CAIRN_FIELD_STRING(amqpb_binding, routing_key, "#",
                       "binding key (topic exchange: '*' and '#' words)"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field amqpb_up_fields[] = {
    CAIRN_FIELD_STRING(amqpb_up_route, filter, NULL,
                       "bus topic filter (MQTT syntax) of the messages sent"),
    CAIRN_FIELD_STRING(amqpb_up_route, exchange, "",
                       "exchange to publish to (empty: the default exchange, "
                       "where the routing key names a queue)"),
    CAIRN_FIELD_STRING(amqpb_up_route, routing_key, "{topic}",
                       "routing key template: {runtime} {name} {topic} "
                       "{1}..{9} (levels of the bus topic)"),
    CAIRN_FIELD_BOOL(amqpb_up_route, persistent, "true",
                     "delivery mode 2: the broker writes it to disk before "
                     "it confirms"),
    CAIRN_FIELD_BOOL(amqpb_up_route, mandatory, "true",
                     "unroutable messages come back (basic.return) and are "
                     "retried, then dead-lettered, instead of being dropped "
                     "by the broker"),
    CAIRN_FIELD_ENUM(amqpb_up_route, payload, "raw", "raw|envelope",
                     "raw: the message payload; envelope: the whole CBOR "
                     "envelope"),
    CAIRN_FIELD_ENUM(amqpb_up_route, priority, "normal", "normal|high",
                     "outbox priority"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field amqpb_down_fields[] = {
    CAIRN_FIELD_STRING(amqpb_down_route, queue, NULL, "AMQP queue to consume"),
    CAIRN_FIELD_STRING(amqpb_down_route, topic, "",
                       "bus topic template ({topic}: the routing key, "
                       "{1}..{9}: its words, {runtime}, {name}); or set "
                       "work_queue"),
    CAIRN_FIELD_STRING(amqpb_down_route, work_queue, "",
                       "bus work queue to push each message to instead "
                       "(one consumer gets it)"),
    CAIRN_FIELD_INT(amqpb_down_route, prefetch, "50", 1, 65535,
                    "unacknowledged deliveries the broker sends at most "
                    "(basic.qos)"),
    CAIRN_FIELD_ENUM(amqpb_down_route, payload, "raw", "raw|envelope",
                     "raw: the AMQP body is the message payload; envelope: "
                     "it is a CBOR envelope (one that does not decode is "
                     "rejected)"),
    CAIRN_FIELD_DURATION(amqpb_down_route, push_timeout, "1s", 0, 60000,
                         "work_queue: how long a push waits for a consumer "
                         "before the delivery is requeued"),
    CAIRN_FIELD_END,
};

const cairn_cfg_field amqpb_fields[] = {
    CAIRN_FIELD_STRING(amqpb_cfg, host, "127.0.0.1",
                       "broker host name or address"),
    CAIRN_FIELD_INT(amqpb_cfg, port, "5672", 1, 65535,
                    "broker port (5671 is the usual TLS port)"),
    CAIRN_FIELD_STRING(amqpb_cfg, vhost, "/", "virtual host"),
    CAIRN_FIELD_STRING(amqpb_cfg, username, "guest", "user name"),
    CAIRN_FIELD_STRING(amqpb_cfg, password, "guest", "password"),
    CAIRN_FIELD_STRING(amqpb_cfg, password_file, "",
                       "read the password from this file instead (first line)"),
    CAIRN_FIELD_BOOL(amqpb_cfg, tls, "false", "connect over TLS"),
    CAIRN_FIELD_STRING(amqpb_cfg, ca_file, "",
                       "CA certificates (PEM) that sign the broker's "
                       "(required with tls)"),
    CAIRN_FIELD_STRING(amqpb_cfg, cert_file, "",
                       "client certificate (PEM), for brokers that ask"),
    CAIRN_FIELD_STRING(amqpb_cfg, key_file, "",
                       "client certificate's key (PEM)"),
    CAIRN_FIELD_BOOL(amqpb_cfg, tls_verify_hostname, "true",
                     "check the broker's host name against its certificate "
                     "(false only for tests)"),
    CAIRN_FIELD_DURATION(amqpb_cfg, heartbeat, "30s", 0, 65535000,
                         "AMQP heartbeat (0: none); a broker silent for two "
                         "of them is taken as gone"),
    CAIRN_FIELD_STRING(amqpb_cfg, connection_name, "{runtime}-{name}",
                       "connection name the broker shows ({runtime}, {name})"),
    CAIRN_FIELD_DURATION(amqpb_cfg, reconnect_initial, "500ms", 10, 3600000,
                         "first reconnect delay"),
    CAIRN_FIELD_DURATION(amqpb_cfg, reconnect_max, "60s", 10, 86400000,
                         "longest reconnect delay"),
    CAIRN_FIELD_DOUBLE(amqpb_cfg, reconnect_multiplier, "2.0", 1.0, 100.0,
                       "delay growth per failed attempt (with jitter: each "
                       "delay is uniform in [cap/2, cap])"),
    CAIRN_FIELD_DURATION(amqpb_cfg, connect_timeout, "10s", 100, 600000,
                         "TCP connect, handshake and each setup call"),
    CAIRN_FIELD_INT(amqpb_cfg, max_inflight, "100", 1, 65535,
                    "messages published and not yet confirmed; at most "
                    "store.window of this destination (default 100) is used"),
    CAIRN_FIELD_SIZE(amqpb_cfg, max_payload, "1MiB", 1, 134217728,
                     "largest AMQP body, both ways: larger records become "
                     "dead letters, larger deliveries are rejected"),
    CAIRN_FIELD_LIST(amqpb_cfg, exchanges, amqpb_exchange_fields,
                     amqpb_exchange,
                     "exchanges declared on every connect (empty: none)"),
    CAIRN_FIELD_LIST(amqpb_cfg, queues, amqpb_queue_fields, amqpb_queue,
                     "queues declared on every connect"),
    CAIRN_FIELD_LIST(amqpb_cfg, bindings, amqpb_binding_fields, amqpb_binding,
                     "queue bindings made on every connect"),
    CAIRN_FIELD_LIST(amqpb_cfg, uplink, amqpb_up_fields, amqpb_up_route,
                     "bus to broker routes (through the outbox)"),
    CAIRN_FIELD_LIST(amqpb_cfg, downlink, amqpb_down_fields, amqpb_down_route,
                     "broker queues to the bus"),
    CAIRN_FIELD_END,
};

/* ---- templates ---------------------------------------------------------- */

/* ---- checks ------------------------------------------------------------- */

static cairn_err
amqpb_check_tpl(amqpb *b, const char *what, const char *tpl, char sep)
{
    char        out[AMQPB_NAME_CAP];
    const char *why = NULL;
    bridge_tctx t;
    const char *sample = sep == '/' ? "a/b/c/d/e/f/g/h/i" : "a.b.c.d.e.f.g.h.i";
    bridge_tctx_init(&t, b->runtime, b->name, sample, strlen(sample), sep);
    if (bridge_tpl_render(tpl, &t, out, sizeof(out), AMQPB_TOO_LONG, &why) !=
        CAIRN_OK) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "%s '%s': %s", what, tpl, why);
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

/* AMQP names are short strings: at most 255 bytes. */
static cairn_err
amqpb_check_name(amqpb *b, const char *what, size_t i, const char *name,
                 bool empty_ok)
{
    size_t n = strlen(name);
    if ((n == 0 && !empty_ok) || n >= AMQPB_NAME_CAP) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "%s[%zu]: name '%.40s%s' %s",
                     what, i, name, n > 40 ? "..." : "",
                     n == 0 ? "is empty" : "is longer than 255 bytes");
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

static cairn_err
amqpb_check_topology(amqpb *b)
{
    const amqpb_exchange *x = b->cfg.exchanges.items;
    const amqpb_queue    *q = b->cfg.queues.items;
    const amqpb_binding  *k = b->cfg.bindings.items;
    cairn_err             rv = CAIRN_OK;
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.exchanges.count; i++) {
        rv = amqpb_check_name(b, "exchanges", i, x[i].name, false);
    }
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.queues.count; i++) {
        rv = amqpb_check_name(b, "queues", i, q[i].name, false);
        if (rv == CAIRN_OK) {
            rv = amqpb_check_name(b, "queues", i, q[i].dead_letter_exchange,
                                  true);
        }
    }
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.bindings.count; i++) {
        rv = amqpb_check_name(b, "bindings", i, k[i].queue, false);
        if (rv == CAIRN_OK) {
            rv = amqpb_check_name(b, "bindings", i, k[i].exchange, false);
        }
    }
    return rv;
}

static cairn_err
amqpb_check_routes(amqpb *b)
{
    const amqpb_up_route   *u = b->cfg.uplink.items;
    const amqpb_down_route *d = b->cfg.downlink.items;
    char                    what[64];
    cairn_err               rv = CAIRN_OK;
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.uplink.count; i++) {
        if (cairn_filter_valid(u[i].filter) != CAIRN_OK) {
            b->host->log(b->self, CAIRN_LOG_ERROR,
                         "uplink[%zu].filter '%s' is not a valid topic filter",
                         i, u[i].filter);
            return CAIRN_ECONFIG;
        }
        snprintf(what, sizeof(what), "uplink[%zu].routing_key", i);
        rv = amqpb_check_name(b, "uplink", i, u[i].exchange, true);
        if (rv == CAIRN_OK) {
            rv = amqpb_check_tpl(b, what, u[i].routing_key, '/');
        }
    }
    for (size_t i = 0; rv == CAIRN_OK && i < b->cfg.downlink.count; i++) {
        bool topic = d[i].topic[0] != '\0', wq = d[i].work_queue[0] != '\0';
        rv = amqpb_check_name(b, "downlink", i, d[i].queue, false);
        if (rv == CAIRN_OK && topic == wq) {
            b->host->log(b->self, CAIRN_LOG_ERROR,
                         "downlink[%zu]: set exactly one of topic and "
                         "work_queue",
                         i);
            rv = CAIRN_ECONFIG;
        }
        snprintf(what, sizeof(what), "downlink[%zu].topic", i);
        if (rv == CAIRN_OK && topic) {
            rv = amqpb_check_tpl(b, what, d[i].topic, '.');
        }
    }
    return rv;
}

static cairn_err
amqpb_check_conn(amqpb *b)
{
    const amqpb_cfg *c = &b->cfg;
    const char      *why = NULL;
    bridge_tctx      t;
    cairn_err        rv = CAIRN_OK;
    if (c->host[0] == '\0' || c->vhost[0] == '\0') {
        b->host->log(b->self, CAIRN_LOG_ERROR, "%s is empty",
                     c->host[0] == '\0' ? "host" : "vhost");
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
    if (c->tls && c->ca_file[0] == '\0') {
        b->host->log(b->self, CAIRN_LOG_ERROR, "tls needs ca_file");
        return CAIRN_ECONFIG;
    }
    if (c->tls) {
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
    bridge_tctx_init(&t, b->runtime, b->name, NULL, 0, '/');
    if (rv == CAIRN_OK && bridge_tpl_render(c->connection_name, &t,
                                            b->conn_name, sizeof(b->conn_name),
                                            AMQPB_TOO_LONG, &why) != CAIRN_OK) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "connection_name '%s': %s",
                     c->connection_name, why);
        rv = CAIRN_ECONFIG;
    }
    return rv;
}

cairn_err
amqpb_config_check(amqpb *b)
{
    cairn_err rv = amqpb_check_conn(b);
    if (rv == CAIRN_OK) {
        rv = amqpb_check_topology(b);
    }
    if (rv == CAIRN_OK) {
        rv = amqpb_check_routes(b);
    }
    return rv;
}
