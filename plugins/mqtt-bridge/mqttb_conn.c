/*
 * mqttb_conn.c - the network thread: the one thread that drives the
 * libmosquitto client after init.
 *
 * It waits in poll() on the broker socket and on the bridge's eventfd
 * (other threads queue work and wake it), then lets mosquitto_loop()
 * (timeout 0) do the reading, writing, TLS handshake and keepalive, so
 * every libmosquitto callback runs here, then publishes what waits
 * (mqttb_uplink_pump).  The client is not threaded: mosquitto_publish_v5
 * writes to the socket at once, and nothing else touches the client.
 *
 * Connection states (b->state), changed only here:
 *
 *   DOWN --attempt--> CONNECTING --CONNACK 0--> UP
 *     ^                   |                      |
 *     +---- failure ------+------ link lost -----+
 *
 * Each failure schedules the next attempt after a delay: the cap grows
 * from reconnect_initial by reconnect_multiplier per failed attempt up to
 * reconnect_max, and the delay is uniform in [cap/2, cap] (jitter, so a
 * fleet does not reconnect in step).  A CONNECTING attempt without
 * CONNACK within connect_timeout is a failure.
 *
 * libmosquitto 2.0 takes MQTT 5 CONNECT properties (the session expiry)
 * only in the blocking mosquitto_connect_bind_v5, and keeps them for
 * every later mosquitto_reconnect_async.  So the first MQTT 5 attempt
 * checks with a non-blocking probe (bounded by connect_timeout and by
 * stop) that the broker answers before it makes the blocking call; every
 * later attempt, and every MQTT 3.1.1 attempt, is non-blocking.
 *
 * The session is persistent (clean_session false, and on MQTT 5 a session
 * expiry), so the broker keeps the subscriptions and queues downlink
 * messages while the device is away, and libmosquitto resends the QoS 1/2
 * messages it holds, with their packet ids, after the next CONNACK.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mqtt_protocol.h>

#include "mqttb.h"

#define MQTTB_STOP_WAIT_MS 1000 /* for the offline status's ack at stop */

bool
mqttb_is_v5(const mqttb *b)
{
    return b->cfg.protocol == MQTTB_V5;
}

static const char *
mqttb_proto_name(const mqttb *b)
{
    return mqttb_is_v5(b) ? "MQTT 5" : "MQTT 3.1.1";
}

/* ---- status line and errors --------------------------------------------- */

static void
mqttb_status_now(mqttb *b)
{
    const char *h = b->cfg.host;
    int         p = (int)b->cfg.port;
    if (b->state == MQTTB_UP) {
        b->host->status(b->self, "connected to %s:%d (%s)", h, p,
                        mqttb_proto_name(b));
    } else if (b->state == MQTTB_CONNECTING) {
        b->host->status(
            b->self, "connecting to %s:%d (%s)%s%s", h, p, mqttb_proto_name(b),
            b->last_error[0] ? ", last error: " : "", b->last_error);
    } else {
        uint64_t now = mqttb_now_ms();
        uint64_t left = b->next_try_ms > now ? b->next_try_ms - now : 0;
        b->host->status(b->self, "disconnected: %s, retry in %llus",
                        b->last_error[0] ? b->last_error : "not connected",
                        (unsigned long long)((left + 999) / 1000));
    }
}

/* libmosquitto 2.0.11's mosquitto_strerror knows no text for some codes. */
static const char *
mqttb_strerror(int rc)
{
    switch (rc) {
    case MOSQ_ERR_KEEPALIVE:
        return "no reply from the broker within the keepalive";
    case MOSQ_ERR_LOOKUP:
        return "host name lookup failed";
    case MOSQ_ERR_MALFORMED_PACKET:
        return "malformed packet from the broker";
    case MOSQ_ERR_TLS_HANDSHAKE:
        return "TLS handshake failed";
    case MOSQ_ERR_OVERSIZE_PACKET:
        return "packet larger than the broker accepts";
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
        return "QoS not supported by the broker";
    case MOSQ_ERR_TIMEOUT:
        return "timed out";
    default:
        return mosquitto_strerror(rc);
    }
}

/* What went wrong, as one line: a reason a callback recorded, else the
 * libmosquitto error (with errno, or the TLS library's message). */
static void
mqttb_error_text(mqttb *b, int rc, int err, const char *why)
{
    if (why != NULL && why[0] != '\0') {
        snprintf(b->last_error, sizeof(b->last_error), "%s", why);
    } else if (b->why[0] != '\0') {
        snprintf(b->last_error, sizeof(b->last_error), "%s", b->why);
    } else if (rc == MOSQ_ERR_ERRNO && err != 0) {
        snprintf(b->last_error, sizeof(b->last_error), "%s", strerror(err));
    } else if (b->cfg.tls && b->lib_error[0] != '\0' &&
               (rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE ||
                rc == MOSQ_ERR_PROTOCOL || rc == MOSQ_ERR_CONN_LOST)) {
        snprintf(b->last_error, sizeof(b->last_error), "TLS error: %.200s",
                 b->lib_error);
    } else {
        snprintf(b->last_error, sizeof(b->last_error), "%s",
                 mqttb_strerror(rc));
    }
    b->why[0] = '\0';
}

static void
mqttb_schedule(mqttb *b)
{
    b->attempt++;
    b->state = MQTTB_DOWN;
    b->next_try_ms =
        mqttb_now_ms() +
        bridge_backoff(b->cfg.reconnect_initial, b->cfg.reconnect_max,
                       b->cfg.reconnect_multiplier, b->attempt, &b->rnd);
    mqttb_status_now(b);
}

void
mqttb_conn_lost(mqttb *b, int rc, const char *why)
{
    int err = errno;
    if (b->state == MQTTB_DOWN) {
        return;
    }
    bool was_up = b->state == MQTTB_UP;
    mqttb_error_text(b, rc, err, why);
    b->state = MQTTB_DOWN;
    bridge_link_state(b->host, b->self, false);
    if (was_up) {
        pthread_mutex_lock(&b->lock);
        atomic_store(&b->connected, false);
        pthread_mutex_unlock(&b->lock);
        mqttb_uplink_lost(b);
        b->host->log(b->self, CAIRN_LOG_WARN, "connection to %s:%d lost: %s",
                     b->cfg.host, (int)b->cfg.port, b->last_error);
    } else {
        mqttb_count(b, MQTTB_C_CONNECT_ERRORS, 1);
        b->host->log(b->self, CAIRN_LOG_WARN, "cannot connect to %s:%d: %s",
                     b->cfg.host, (int)b->cfg.port, b->last_error);
    }
    if (b->mosq != NULL && mosquitto_socket(b->mosq) >= 0) {
        mosquitto_disconnect(b->mosq); /* closes a half-open attempt */
    }
    mqttb_schedule(b);
}

/* ---- libmosquitto callbacks (network thread) ---------------------------- */

/* CONNACK return codes of MQTT 3.1.1. */
static const char *
mqttb_connack_v311(int rc)
{
    static const char *const text[] = {
        "accepted",
        "unacceptable protocol version",
        "identifier rejected",
        "server unavailable",
        "bad user name or password",
        "not authorized",
    };
    return rc >= 0 && rc < 6 ? text[rc] : "unknown reason";
}

static void
mqttb_on_connect(struct mosquitto *m, void *arg, int rc, int flags,
                 const mosquitto_property *props)
{
    mqttb   *b = arg;
    uint16_t rx = 0;
    uint8_t  mq = 2;
    if (rc != 0) {
        snprintf(b->why, sizeof(b->why), "connection refused: %s",
                 mqttb_is_v5(b) ? mosquitto_reason_string(rc)
                                : mqttb_connack_v311(rc));
        return; /* mosquitto_loop returns an error: mqttb_conn_lost */
    }
    mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &rx, false);
    mosquitto_property_read_byte(props, MQTT_PROP_MAXIMUM_QOS, &mq, false);
    b->receive_max = rx ? rx : MQTTB_RX_MAX;
    b->max_qos = mq;
    if (b->ever_up) {
        mqttb_count(b, MQTTB_C_RECONNECTS, 1);
    }
    b->ever_up = true;
    b->state = MQTTB_UP;
    bridge_link_state(b->host, b->self, true);
    b->attempt = 0;
    b->last_error[0] = '\0';
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->connected, true);
    pthread_cond_broadcast(&b->drain_cv);
    pthread_mutex_unlock(&b->lock);
    b->host->log(b->self, CAIRN_LOG_INFO,
                 "connected to %s:%d (%s, session %s, receive maximum %u)",
                 b->cfg.host, (int)b->cfg.port, mqttb_proto_name(b),
                 (flags & 1) ? "resumed" : "new", (unsigned)b->receive_max);
    b->announce = true; /* birth and subscriptions, after the callback */
    mqttb_status_now(b);
}

/* The retained status message (birth or offline). */
static void
mqttb_send_status(mqttb *b, const char *payload)
{
    mqttb_entry *e =
        mqttb_entry_direct(b->status_topic, payload, strlen(payload), NULL, 0);
    if (e != NULL) {
        e->kind = MQTTB_E_STATUS;
        e->qos = (int)b->cfg.status_qos;
        e->retain = true;
        mqttb_uplink_send(b, e);
    }
}

/* After a CONNACK: the birth message and the subscriptions, sent once
 * mosquitto_loop returned rather than inside the connect callback, so
 * libmosquitto's own locks are always taken in the same order. */
static void
mqttb_announce(mqttb *b)
{
    b->announce = false;
    if (b->status_topic[0] != '\0') {
        mqttb_send_status(b, b->cfg.online_payload);
    }
    if (b->state == MQTTB_UP) {
        mqttb_downlink_subscribe(b);
    }
}

static void
mqttb_on_disconnect(struct mosquitto *m, void *arg, int rc,
                    const mosquitto_property *props)
{
    mqttb *b = arg;
    if (rc >= 0x80 && mqttb_is_v5(b)) {
        snprintf(b->why, sizeof(b->why), "broker disconnected: %s",
                 mosquitto_reason_string(rc));
    }
    if (rc != 0) {
        mqttb_conn_lost(b, rc < 0x80 ? rc : MOSQ_ERR_CONN_LOST, NULL);
    }
}

static void
mqttb_on_log(struct mosquitto *m, void *arg, int level, const char *text)
{
    mqttb *b = arg;
    if (level & MOSQ_LOG_ERR) {
        const char *p = strstr(text, "error:");
        snprintf(b->lib_error, sizeof(b->lib_error), "%s", p ? p : text);
    }
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING | MOSQ_LOG_NOTICE)) {
        b->host->log(b->self, CAIRN_LOG_DEBUG, "libmosquitto: %s", text);
    }
}

static void
mqttb_on_subscribe(struct mosquitto *m, void *arg, int mid, int n,
                   const int *granted, const mosquitto_property *props)
{
    mqttb *b = arg;
    for (int i = 0; i < n; i++) {
        if (granted[i] >= 0x80) {
            mqttb_count(b, MQTTB_C_DOWN_ERRORS, 1);
            b->host->log(b->self, CAIRN_LOG_ERROR,
                         "subscription refused by the broker: %s",
                         mqttb_is_v5(b) ? mosquitto_reason_string(granted[i])
                                        : "failure");
        }
    }
}

/* ---- setup (init, host thread) ------------------------------------------ */

static cairn_err
mqttb_mosq_err(mqttb *b, const char *what, int rc)
{
    b->host->log(b->self, CAIRN_LOG_ERROR, "%s: %s", what,
                 mosquitto_strerror(rc));
    return rc == MOSQ_ERR_NOMEM ? CAIRN_ENOMEM : CAIRN_ECONFIG;
}

static cairn_err
mqttb_setup_tls(mqttb *b)
{
    const mqttb_cfg *c = &b->cfg;
    int              rc;
    if (c->ca_file[0] == '\0') {
        mosquitto_int_option(b->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    }
    rc = mosquitto_tls_set(b->mosq, c->ca_file[0] ? c->ca_file : NULL, NULL,
                           c->cert_file[0] ? c->cert_file : NULL,
                           c->key_file[0] ? c->key_file : NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        return mqttb_mosq_err(b, "TLS setup", rc);
    }
    rc = mosquitto_tls_insecure_set(b->mosq, c->tls_insecure);
    return rc == MOSQ_ERR_SUCCESS ? CAIRN_OK : mqttb_mosq_err(b, "TLS", rc);
}

static cairn_err
mqttb_setup_will(mqttb *b)
{
    const char *p = b->cfg.offline_payload;
    int rc = mosquitto_will_set(b->mosq, b->status_topic, (int)strlen(p), p,
                                (int)b->cfg.status_qos, true);
    return rc == MOSQ_ERR_SUCCESS ? CAIRN_OK
                                  : mqttb_mosq_err(b, "last will", rc);
}

static cairn_err
mqttb_setup_options(mqttb *b)
{
    const mqttb_cfg *c = &b->cfg;
    const char      *pass = b->password ? b->password : c->password;
    int              rc;
    mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         mqttb_is_v5(b) ? MQTT_PROTOCOL_V5
                                        : MQTT_PROTOCOL_V311);
    mosquitto_int_option(b->mosq, MOSQ_OPT_SEND_MAXIMUM, (int)c->max_inflight);
    mosquitto_int_option(b->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 100);
    mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (c->username[0] != '\0' || pass[0] != '\0') {
        rc = mosquitto_username_pw_set(b->mosq,
                                       c->username[0] ? c->username : NULL,
                                       pass[0] ? pass : NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            return mqttb_mosq_err(b, "credentials", rc);
        }
    }
    mosquitto_connect_v5_callback_set(b->mosq, mqttb_on_connect);
    mosquitto_disconnect_v5_callback_set(b->mosq, mqttb_on_disconnect);
    mosquitto_publish_v5_callback_set(b->mosq, mqttb_on_publish);
    mosquitto_message_v5_callback_set(b->mosq, mqttb_on_message);
    mosquitto_subscribe_v5_callback_set(b->mosq, mqttb_on_subscribe);
    mosquitto_log_callback_set(b->mosq, mqttb_on_log);
    return CAIRN_OK;
}

cairn_err
mqttb_conn_init(mqttb *b)
{
    cairn_err rv;
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        return CAIRN_EINTERNAL;
    }
    b->lib_inited = true;
    b->max_qos = 2;
    b->mosq = mosquitto_new(b->client_id, b->cfg.clean_session, b);
    if (b->mosq == NULL) {
        b->host->log(b->self, CAIRN_LOG_ERROR, "cannot create the client: %s",
                     strerror(errno));
        return CAIRN_ENOMEM;
    }
    rv = mqttb_setup_options(b);
    if (rv == CAIRN_OK && b->cfg.tls) {
        rv = mqttb_setup_tls(b);
    }
    if (rv == CAIRN_OK && b->status_topic[0] != '\0') {
        rv = mqttb_setup_will(b);
    }
    return rv;
}

void
mqttb_conn_fini(mqttb *b)
{
    if (b->mosq != NULL) {
        mosquitto_destroy(b->mosq);
        b->mosq = NULL;
    }
    if (b->lib_inited) {
        mosquitto_lib_cleanup();
        b->lib_inited = false;
    }
}

/* ---- connecting --------------------------------------------------------- */

/* Waits for fd to become writable (a non-blocking connect): false on
 * timeout, stop, or a connect error (why set). */
static bool
mqttb_probe_wait(mqttb *b, int fd, uint64_t until, char *why, size_t n)
{
    int err = 0;
    for (;;) {
        uint64_t now = mqttb_now_ms();
        if (now >= until || atomic_load(&b->stopping)) {
            snprintf(why, n, "timed out connecting");
            return false;
        }
        struct pollfd p[2] = {{fd, POLLOUT, 0}, {b->wakefd, POLLIN, 0}};
        if (poll(p, 2, (int)(until - now)) > 0 && (p[0].revents != 0)) {
            break;
        }
    }
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        snprintf(why, n, "%s", strerror(err));
    }
    return err == 0;
}

/* True when host:port accepts a TCP connection within connect_timeout. */
static bool
mqttb_probe(mqttb *b, char *why, size_t n)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char            port[16];
    bool            ok = false;
    uint64_t        until = mqttb_now_ms() + b->cfg.connect_timeout;
    snprintf(port, sizeof(port), "%d", (int)b->cfg.port);
    int e = getaddrinfo(b->cfg.host, port, &hints, &ai);
    if (e != 0) {
        snprintf(why, n, "%s: %s", b->cfg.host, gai_strerror(e));
        return false;
    }
    for (struct addrinfo *a = ai; a != NULL && !ok; a = a->ai_next) {
        int fd = socket(a->ai_family,
                        a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, n, "%s", strerror(errno));
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            ok = mqttb_probe_wait(b, fd, until, why, n);
        } else {
            snprintf(why, n, "%s", strerror(errno));
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return ok;
}

/* The first MQTT 5 connect: the blocking call that stores the CONNECT
 * properties (session expiry) for every later reconnect. */
static int
mqttb_connect_v5_first(mqttb *b)
{
    mosquitto_property *props = NULL;
    uint64_t exp = b->cfg.clean_session ? 0 : b->cfg.session_expiry / 1000;
    int      rc;
    if (exp > UINT32_MAX) {
        exp = UINT32_MAX;
    }
    if (!mqttb_probe(b, b->why, sizeof(b->why))) {
        return MOSQ_ERR_NO_CONN;
    }
    rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                      (uint32_t)exp);
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_connect_bind_v5(b->mosq, b->cfg.host, (int)b->cfg.port,
                                       (int)(b->cfg.keepalive / 1000), NULL,
                                       props);
    }
    mosquitto_property_free_all(&props);
    return rc;
}

static void
mqttb_try_connect(mqttb *b)
{
    int rc;
    b->why[0] = '\0';
    b->lib_error[0] = '\0';
    b->state = MQTTB_CONNECTING;
    mqttb_status_now(b);
    errno = 0;
    if (b->client_ready) {
        rc = mosquitto_reconnect_async(b->mosq);
    } else if (mqttb_is_v5(b)) {
        rc = mqttb_connect_v5_first(b);
    } else {
        rc =
            mosquitto_connect_bind_async(b->mosq, b->cfg.host, (int)b->cfg.port,
                                         (int)(b->cfg.keepalive / 1000), NULL);
    }
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_CONN_PENDING) {
        mqttb_conn_lost(b, rc, NULL);
        return;
    }
    b->client_ready = true;
    b->deadline_ms = mqttb_now_ms() + b->cfg.connect_timeout;
}

/* ---- the loop ----------------------------------------------------------- */

static int
mqttb_poll_timeout(mqttb *b, uint64_t now)
{
    uint64_t until = b->next_flush_ms;
    if (b->state == MQTTB_DOWN && b->next_try_ms < until) {
        until = b->next_try_ms;
    }
    if (b->state == MQTTB_CONNECTING && b->deadline_ms < until) {
        until = b->deadline_ms;
    }
    return until > now ? (int)(until - now) : 0;
}

static void
mqttb_net_wait(mqttb *b)
{
    struct pollfd p[2] = {{b->wakefd, POLLIN, 0}, {-1, 0, 0}};
    int      sock = b->state != MQTTB_DOWN ? mosquitto_socket(b->mosq) : -1;
    uint64_t buf;
    if (sock >= 0) {
        p[1].fd = sock;
        p[1].events = POLLIN | (mosquitto_want_write(b->mosq) ? POLLOUT : 0);
    }
    if (poll(p, 2, mqttb_poll_timeout(b, mqttb_now_ms())) > 0 &&
        (p[0].revents & POLLIN)) {
        if (read(b->wakefd, &buf, sizeof(buf)) < 0) {
            /* EAGAIN: someone else's wake was read already */
        }
        atomic_store(&b->wake_pending, false);
    }
}

static void
mqttb_net_step(mqttb *b)
{
    if (b->state == MQTTB_DOWN && mqttb_now_ms() >= b->next_try_ms) {
        mqttb_try_connect(b);
    }
    mqttb_net_wait(b);
    /* The runtime flags a stopping plugin before it calls stop(): from
     * then on the bus refuses what comes down, so stop reading (what the
     * broker sent stays unacknowledged in its session). */
    if (!b->host->sleep(b->self, 0)) {
        atomic_store(&b->stopping, true);
        return;
    }
    if (b->state != MQTTB_DOWN) {
        errno = 0;
        int rc = mosquitto_loop(b->mosq, 0, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            mqttb_conn_lost(b, rc, NULL);
        }
    }
    if (b->state == MQTTB_CONNECTING && mqttb_now_ms() >= b->deadline_ms) {
        char why[64];
        snprintf(why, sizeof(why), "no CONNACK within %llums",
                 (unsigned long long)b->cfg.connect_timeout);
        mqttb_conn_lost(b, MOSQ_ERR_KEEPALIVE, why);
    }
    if (b->announce && b->state == MQTTB_UP) {
        mqttb_announce(b);
    }
    if (b->state == MQTTB_UP) {
        mqttb_uplink_pump(b);
    }
    if (mqttb_now_ms() >= b->next_flush_ms) {
        mqttb_flush_metrics(b);
        if (b->state == MQTTB_DOWN) {
            mqttb_status_now(b); /* the countdown */
        }
    }
}

/* Stop: the retained offline status (a clean DISCONNECT sends no will),
 * waited for briefly, then DISCONNECT. */
static void
mqttb_net_shutdown(mqttb *b)
{
    if (b->state != MQTTB_UP) {
        return;
    }
    if (b->status_topic[0] != '\0') {
        mqttb_send_status(b, b->cfg.offline_payload);
        uint64_t until = mqttb_now_ms() + MQTTB_STOP_WAIT_MS;
        while (b->state == MQTTB_UP && b->live.count > 0 &&
               mqttb_now_ms() < until) {
            mqttb_net_wait(b);
            if (mosquitto_loop(b->mosq, 0, 1) != MOSQ_ERR_SUCCESS) {
                break;
            }
        }
    }
    mosquitto_disconnect(b->mosq);
    mosquitto_loop(b->mosq, 0, 1);
}

static void *
mqttb_net_main(void *arg)
{
    mqttb *b = arg;
    b->state = MQTTB_DOWN;
    b->next_try_ms = 0;
    b->next_flush_ms = 0;
    mqttb_flush_metrics(b);
    while (!atomic_load(&b->stopping)) {
        mqttb_net_step(b);
    }
    mqttb_net_shutdown(b);
    b->state = MQTTB_DOWN;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->connected, false);
    pthread_mutex_unlock(&b->lock);
    b->host->status(b->self, "stopped");
    return NULL;
}

cairn_err
mqttb_conn_start(mqttb *b)
{
    int e = pthread_create(&b->net_thread, NULL, mqttb_net_main, b);
    if (e != 0) {
        return cairn_errno(e);
    }
    b->has_net_thread = true;
    return CAIRN_OK;
}

void
mqttb_conn_stop(mqttb *b)
{
    if (b->has_net_thread) {
        mqttb_wake(b);
        pthread_join(b->net_thread, NULL);
        b->has_net_thread = false;
    }
}
