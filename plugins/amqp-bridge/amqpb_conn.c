/*
 * amqpb_conn.c - the run thread: the connection and the event loop.
 *
 * Connection states (b->state), changed only here:
 *
 *   DOWN --connect, login, channels, topology, consumers--> UP
 *     ^                                                      |
 *     +------------- any error (library or broker) ----------+
 *
 * Both transitions are reported to the runtime (host->link_state, ABI
 * 1.2), so its readiness (/readyz) follows the AMQP link.
 *
 * Setting up is a series of blocking calls, each bounded by
 * connect_timeout (TCP connect, the handshake, every RPC).  A failure
 * anywhere drops the connection and schedules the next attempt: the delay
 * cap grows from reconnect_initial by reconnect_multiplier per failed
 * attempt up to reconnect_max, and the delay is uniform in [cap/2, cap]
 * (jitter, so a fleet does not reconnect in step).  Every attempt
 * re-opens both channels and declares the topology again.
 *
 * One loop turn while UP: take records from the outbox into the window
 * and publish them (waiting up to AMQPB_IDLE_MS for records only when
 * nothing else is going on), then read the frames that came in (waiting
 * up to AMQPB_IDLE_MS only when confirms are due and nothing else was
 * done): confirms and returns on channel 1, deliveries on channel 2,
 * closes from the broker.  rabbitmq-c sends heartbeats from inside these
 * calls and reports a broker silent for two heartbeats as an error.
 */
#define _GNU_SOURCE

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "amqpb.h"

/* ---- status and errors -------------------------------------------------- */

void
amqpb_status(amqpb *b)
{
    const char *h = b->cfg.host;
    int         p = (int)b->cfg.port;
    if (atomic_load(&b->stopping)) {
        b->host->status(b->self, "stopped");
    } else if (b->state == AMQPB_UP) {
        b->host->status(b->self, "connected to %s:%d (vhost %s%s)", h, p,
                        b->cfg.vhost, b->cfg.tls ? ", TLS" : "");
    } else {
        uint64_t now = amqpb_now_ms();
        uint64_t left = b->next_try_ms > now ? b->next_try_ms - now : 0;
        b->host->status(b->self, "disconnected: %s, retry in %llus",
                        b->last_error[0] ? b->last_error : "not connected",
                        (unsigned long long)((left + 999) / 1000));
    }
}

void
amqpb_rpc_text(amqp_rpc_reply_t r, char *out, size_t cap)
{
    const amqp_connection_close_t *cc = r.reply.decoded;
    const amqp_channel_close_t    *ch = r.reply.decoded;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(out, cap, "ok");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, cap, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD && cc != NULL) {
            snprintf(out, cap, "connection closed by the broker: %u %.*s",
                     (unsigned)cc->reply_code, (int)cc->reply_text.len,
                     (const char *)cc->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD && ch != NULL) {
            snprintf(out, cap, "channel closed by the broker: %u %.*s",
                     (unsigned)ch->reply_code, (int)ch->reply_text.len,
                     (const char *)ch->reply_text.bytes);
        } else {
            snprintf(out, cap, "unexpected method %s from the broker",
                     amqp_method_name(r.reply.id));
        }
        break;
    default:
        snprintf(out, cap, "no reply from the broker");
        break;
    }
}

static void
amqpb_drop(amqpb *b)
{
    amqpb_uplink_reset(b);
    amqpb_asm_reset(&b->ret);
    amqpb_asm_reset(&b->dlv);
    b->nrequeued = 0;
    if (b->conn != NULL) {
        amqp_destroy_connection(b->conn);
        b->conn = NULL;
    }
}

void
amqpb_conn_lost(amqpb *b, const char *fmt, ...)
{
    va_list ap;
    bool    was_up = b->state == AMQPB_UP;
    va_start(ap, fmt);
    vsnprintf(b->last_error, sizeof(b->last_error), fmt, ap);
    va_end(ap);
    amqpb_drop(b);
    b->state = AMQPB_DOWN;
    bridge_link_state(b->host, b->self, false);
    if (was_up) {
        b->host->log(b->self, CAIRN_LOG_WARN, "connection to %s:%d lost: %s",
                     b->cfg.host, (int)b->cfg.port, b->last_error);
    } else {
        amqpb_count(b, AMQPB_C_CONNECT_ERRORS, 1);
        b->host->log(b->self, CAIRN_LOG_WARN, "cannot connect to %s:%d: %s",
                     b->cfg.host, (int)b->cfg.port, b->last_error);
    }
    b->attempt++;
    b->next_try_ms =
        amqpb_now_ms() +
        bridge_backoff(b->cfg.reconnect_initial, b->cfg.reconnect_max,
                       b->cfg.reconnect_multiplier, b->attempt, &b->rnd);
    amqpb_status(b);
}

/* ---- setting up --------------------------------------------------------- */

static struct timeval
amqpb_tv(uint64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (long)(ms % 1000) * 1000;
    return tv;
}

/* False (and the connection dropped) unless the last RPC went through. */
static bool
amqpb_rpc_ok(amqpb *b, const char *what)
{
    char             text[AMQPB_ERR_CAP];
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        return true;
    }
    amqpb_rpc_text(r, text, sizeof(text));
    amqpb_conn_lost(b, "%s: %s", what, text);
    return false;
}

static amqp_socket_t *
amqpb_socket(amqpb *b)
{
    const amqpb_cfg *c = &b->cfg;
    amqp_socket_t   *s;
    if (!c->tls) {
        return amqp_tcp_socket_new(b->conn);
    }
    if ((s = amqp_ssl_socket_new(b->conn)) == NULL) {
        return NULL;
    }
    amqp_ssl_socket_set_verify_peer(s, 1);
    amqp_ssl_socket_set_verify_hostname(s, c->tls_verify_hostname);
    if (amqp_ssl_socket_set_cacert(s, c->ca_file) != AMQP_STATUS_OK ||
        (c->cert_file[0] != '\0' &&
         amqp_ssl_socket_set_key(s, c->cert_file, c->key_file) !=
             AMQP_STATUS_OK)) {
        return NULL;
    }
    return s;
}

static bool
amqpb_login(amqpb *b)
{
    const char        *pass = b->password ? b->password : b->cfg.password;
    amqp_table_entry_t caps[1], props[2];
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(b->conn_name);
    props[1].key = amqp_cstring_bytes("capabilities");
    props[1].value.kind = AMQP_FIELD_KIND_TABLE;
    props[1].value.value.table = (amqp_table_t){1, caps};
    amqp_table_t     t = {2, props};
    amqp_rpc_reply_t r = amqp_login_with_properties(
        b->conn, b->cfg.vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
        (int)(b->cfg.heartbeat / 1000), &t, AMQP_SASL_METHOD_PLAIN,
        b->cfg.username, pass);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char text[AMQPB_ERR_CAP];
        amqpb_rpc_text(r, text, sizeof(text));
        amqpb_conn_lost(b, "login: %s", text);
        return false;
    }
    return true;
}

static bool
amqpb_open(amqpb *b)
{
    char            text[AMQPB_ERR_CAP];
    uint64_t        ms = b->cfg.connect_timeout;
    struct timeval  tv = amqpb_tv(ms);
    amqp_socket_t  *s;
    if ((b->conn = amqp_new_connection()) == NULL ||
        (s = amqpb_socket(b)) == NULL) {
        amqpb_conn_lost(b, "%s", b->cfg.tls ? "TLS setup failed (CA, "
                                              "certificate or key)"
                                            : "out of memory");
        return false;
    }
    amqp_set_handshake_timeout(b->conn, &tv);
    amqp_set_rpc_timeout(b->conn, &tv);
    int rc = amqp_socket_open_noblock(s, b->cfg.host, (int)b->cfg.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(text, sizeof(text), "%s", amqp_error_string2(rc));
        amqpb_conn_lost(b, "%s", text);
        return false;
    }
    return amqpb_login(b);
}

static amqp_table_entry_t
amqpb_arg_str(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static amqp_table_entry_t
amqpb_arg_int(const char *key, int64_t value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = value;
    return e;
}

static bool
amqpb_declare_queue(amqpb *b, const amqpb_queue *q)
{
    static const char *const overflow[] = {"drop-head", "reject-publish",
                                           "reject-publish-dlx"};
    amqp_table_entry_t       args[5];
    int                      n = 0;
    char                     what[AMQPB_NAME_CAP + 32];
    if (q->dead_letter_exchange[0] != '\0') {
        args[n++] =
            amqpb_arg_str("x-dead-letter-exchange", q->dead_letter_exchange);
    }
    if (q->dead_letter_routing_key[0] != '\0') {
        args[n++] = amqpb_arg_str("x-dead-letter-routing-key",
                                  q->dead_letter_routing_key);
    }
    if (q->max_length > 0) {
        args[n++] = amqpb_arg_int("x-max-length", q->max_length);
        args[n++] = amqpb_arg_str("x-overflow", overflow[q->overflow]);
    }
    if (q->message_ttl > 0) {
        args[n++] = amqpb_arg_int("x-message-ttl", (int64_t)q->message_ttl);
    }
    amqp_table_t t = {n, n ? args : NULL};
    amqp_queue_declare(b->conn, AMQPB_CH_PUB, amqp_cstring_bytes(q->name), 0,
                       q->durable, 0, 0, t);
    snprintf(what, sizeof(what), "declare queue '%s'", q->name);
    return amqpb_rpc_ok(b, what);
}

static bool
amqpb_topology(amqpb *b)
{
    static const char *const types[] = {"topic", "direct", "fanout",
                                        "headers"};
    const amqpb_exchange    *x = b->cfg.exchanges.items;
    const amqpb_queue       *q = b->cfg.queues.items;
    const amqpb_binding     *k = b->cfg.bindings.items;
    char                     what[2 * AMQPB_NAME_CAP + 32];
    for (size_t i = 0; i < b->cfg.exchanges.count; i++) {
        amqp_exchange_declare(b->conn, AMQPB_CH_PUB,
                              amqp_cstring_bytes(x[i].name),
                              amqp_cstring_bytes(types[x[i].type]), 0,
                              x[i].durable, x[i].auto_delete, 0,
                              amqp_empty_table);
        snprintf(what, sizeof(what), "declare exchange '%s'", x[i].name);
        if (!amqpb_rpc_ok(b, what)) {
            return false;
        }
    }
    for (size_t i = 0; i < b->cfg.queues.count; i++) {
        if (!amqpb_declare_queue(b, &q[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < b->cfg.bindings.count; i++) {
        amqp_queue_bind(b->conn, AMQPB_CH_PUB, amqp_cstring_bytes(k[i].queue),
                        amqp_cstring_bytes(k[i].exchange),
                        amqp_cstring_bytes(k[i].routing_key),
                        amqp_empty_table);
        snprintf(what, sizeof(what), "bind queue '%s' to '%s'", k[i].queue,
                 k[i].exchange);
        if (!amqpb_rpc_ok(b, what)) {
            return false;
        }
    }
    return true;
}

static bool
amqpb_channels(amqpb *b)
{
    amqp_channel_open(b->conn, AMQPB_CH_PUB);
    if (!amqpb_rpc_ok(b, "open channel")) {
        return false;
    }
    amqp_confirm_select(b->conn, AMQPB_CH_PUB);
    if (!amqpb_rpc_ok(b, "confirm.select")) {
        return false;
    }
    b->next_tag = 1;
    if (!amqpb_topology(b)) {
        return false;
    }
    if (b->cfg.downlink.count == 0) {
        return true;
    }
    amqp_channel_open(b->conn, AMQPB_CH_SUB);
    return amqpb_rpc_ok(b, "open channel") && amqpb_downlink_consume(b);
}

static void
amqpb_connect(amqpb *b)
{
    if (!amqpb_open(b) || !amqpb_channels(b)) {
        return;
    }
    if (b->ever_up) {
        amqpb_count(b, AMQPB_C_RECONNECTS, 1);
    }
    b->ever_up = true;
    b->state = AMQPB_UP;
    bridge_link_state(b->host, b->self, true);
    b->attempt = 0;
    b->last_error[0] = '\0';
    b->busy = true;
    b->host->log(b->self, CAIRN_LOG_INFO,
                 "connected to %s:%d (vhost %s, heartbeat %ds, frame max %d)",
                 b->cfg.host, (int)b->cfg.port, b->cfg.vhost,
                 amqp_get_heartbeat(b->conn), amqp_get_frame_max(b->conn));
    amqpb_status(b);
    amqpb_flush_metrics(b, true);
}

/* ---- frames ------------------------------------------------------------- */

static void
amqpb_asm_start(amqpb_asm *a, uint64_t tag, bool redelivered,
                amqp_bytes_t exchange, amqp_bytes_t key)
{
    amqpb_asm_reset(a);
    a->state = AMQPB_AS_HEADER;
    a->delivery_tag = tag;
    a->redelivered = redelivered;
    amqpb_copy_str(a->exchange, sizeof(a->exchange), exchange);
    amqpb_copy_str(a->routing_key, sizeof(a->routing_key), key);
}

static void
amqpb_on_close(amqpb *b, const amqp_frame_t *f)
{
    amqp_rpc_reply_t r = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
                          .reply = f->payload.method};
    char             text[AMQPB_ERR_CAP];
    amqpb_rpc_text(r, text, sizeof(text));
    if (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    amqpb_conn_lost(b, "%s", text);
}

static void
amqpb_on_method(amqpb *b, const amqp_frame_t *f)
{
    const void *m = f->payload.method.decoded;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m;
        amqpb_on_ack(b, a->delivery_tag, a->multiple, true);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = m;
        amqpb_on_ack(b, n->delivery_tag, n->multiple, false);
        break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        const amqp_basic_return_t *r = m;
        amqpb_asm_start(&b->ret, 0, false, r->exchange, r->routing_key);
        b->ret.reply_code = r->reply_code;
        amqpb_copy_str(b->ret.reply_text, sizeof(b->ret.reply_text),
                       r->reply_text);
        break;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = m;
        amqpb_asm_start(&b->dlv, d->delivery_tag, d->redelivered, d->exchange,
                        d->routing_key);
        amqpb_copy_str(b->dlv.consumer_tag, sizeof(b->dlv.consumer_tag),
                       d->consumer_tag);
        break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        amqpb_on_close(b, f);
        break;
    case AMQP_BASIC_CANCEL_METHOD:
        amqpb_conn_lost(b, "the broker cancelled a consumer (queue deleted?)");
        break;
    case AMQP_CONNECTION_BLOCKED_METHOD:
        b->host->log(b->self, CAIRN_LOG_WARN,
                     "the broker blocks publishing (resource alarm)");
        break;
    default:
        b->host->log(b->self, CAIRN_LOG_DEBUG, "ignored %s on channel %u",
                     amqp_method_name(f->payload.method.id),
                     (unsigned)f->channel);
        break;
    }
}

static void
amqpb_on_content(amqpb *b, const amqp_frame_t *f)
{
    amqpb_asm *a = f->channel == AMQPB_CH_PUB   ? &b->ret
                   : f->channel == AMQPB_CH_SUB ? &b->dlv
                                                : NULL;
    bool       done = false;
    cairn_err  rv = a != NULL ? amqpb_asm_feed(b, a, f, &done) : CAIRN_EPROTO;
    if (rv != CAIRN_OK) {
        amqpb_conn_lost(b, "%s on channel %u",
                        rv == CAIRN_ENOMEM ? "out of memory"
                                           : "content frame out of place",
                        (unsigned)f->channel);
        return;
    }
    if (!done) {
        return;
    }
    if (a == &b->ret) {
        amqpb_on_return(b, a);
    } else {
        amqpb_on_deliver(b, a);
    }
    if (b->state == AMQPB_UP) {
        amqpb_asm_reset(a);
    }
}

static void
amqpb_on_frame(amqpb *b, const amqp_frame_t *f)
{
    if (f->frame_type == AMQP_FRAME_METHOD) {
        if ((f->channel == AMQPB_CH_PUB && b->ret.state != AMQPB_AS_IDLE) ||
            (f->channel == AMQPB_CH_SUB && b->dlv.state != AMQPB_AS_IDLE)) {
            amqpb_conn_lost(b, "method frame inside content on channel %u",
                            (unsigned)f->channel);
            return;
        }
        amqpb_on_method(b, f);
    } else if (f->frame_type == AMQP_FRAME_HEADER ||
               f->frame_type == AMQP_FRAME_BODY) {
        amqpb_on_content(b, f);
    }
}

/* Reads what came in: the first wait up to wait_ms, then what is ready. */
static void
amqpb_read(amqpb *b, uint32_t wait_ms)
{
    for (int i = 0; i < AMQPB_FRAMES_TURN && b->state == AMQPB_UP; i++) {
        uint32_t       ms = i == 0 ? wait_ms : 0;
        struct timeval tv = amqpb_tv(ms);
        amqp_frame_t   f;
        int            rc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) {
            break;
        }
        if (rc != AMQP_STATUS_OK) {
            amqpb_conn_lost(b, "%s", amqp_error_string2(rc));
            return;
        }
        b->busy = true;
        amqpb_on_frame(b, &f);
    }
    if (b->state == AMQPB_UP && b->ret.state == AMQPB_AS_IDLE &&
        b->dlv.state == AMQPB_AS_IDLE) {
        amqp_maybe_release_buffers(b->conn);
    }
}

static void
amqpb_turn(amqpb *b)
{
    bool     pending = amqp_frames_enqueued(b->conn) ||
                   amqp_data_in_buffer(b->conn);
    bool     was_busy = b->busy;
    uint32_t wait = !was_busy && !pending && b->fly_count == 0 ? AMQPB_IDLE_MS
                                                               : 0;
    size_t   sent = 0;
    b->busy = false;
    if (!b->no_outbox) {
        sent = amqpb_uplink_fill(b, wait);
        b->busy = sent > 0;
    }
    if (b->state != AMQPB_UP) {
        return;
    }
    bool idle_read = sent == 0 && !was_busy && !pending &&
                     (b->fly_count > 0 || b->no_outbox);
    amqpb_read(b, idle_read ? AMQPB_IDLE_MS : 0);
}

/* Stop: a clean close, bounded by connect_timeout (the RPC timeout). */
static void
amqpb_shutdown(amqpb *b)
{
    if (b->state == AMQPB_UP) {
        amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
    }
    amqpb_drop(b);
    b->state = AMQPB_DOWN;
}

void
amqpb_run_loop(amqpb *b)
{
    b->state = AMQPB_DOWN;
    b->next_try_ms = 0;
    amqpb_flush_metrics(b, true);
    while (!atomic_load(&b->stopping) && b->host->sleep(b->self, 0)) {
        uint64_t now = amqpb_now_ms();
        if (b->state == AMQPB_UP) {
            amqpb_turn(b);
        } else if (now >= b->next_try_ms) {
            amqpb_connect(b);
        } else {
            uint64_t until = b->next_try_ms < b->next_flush_ms
                                 ? b->next_try_ms
                                 : b->next_flush_ms;
            if (until > now && !b->host->sleep(b->self, (uint32_t)(until - now))) {
                break;
            }
        }
        amqpb_flush_metrics(b, false);
    }
    atomic_store(&b->stopping, true);
    amqpb_shutdown(b);
    amqpb_flush_metrics(b, true);
    amqpb_status(b);
}
