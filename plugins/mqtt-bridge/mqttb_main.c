/*
 * mqttb_main.c - the mqtt-bridge plugin: descriptor and lifecycle.
 *
 * One instance bridges one broker; several instances (to several brokers)
 * share nothing but libmosquitto's global init, which counts references.
 *
 *   init   checks the config, creates the libmosquitto client (TLS,
 *          credentials, will), registers the durable uplink filters with
 *          host->route_durable
 *   start  bus subscriptions of non-durable routes, the service worker,
 *          the network thread
 *   run    the drain thread (outbox -> network thread), until stopping
 *   stop   offline status and DISCONNECT, joins the network thread and the
 *          service worker, waits for the drain thread to leave, releases
 *          every record still held (unacked: they stay in the outbox)
 *   fini   destroys the client
 *
 * Threads: see mqttb.h.  Counters are atomics any thread adds to; the
 * network thread passes them to the host (mqttb_flush_metrics).
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "mqttb.h"

/* Metric names, in the order of the MQTTB_C_* counters. */
static const char *const mqttb_counter_names[MQTTB_C_COUNT] = {
    [MQTTB_C_RECONNECTS] = "mqtt_reconnects_total",
    [MQTTB_C_CONNECT_ERRORS] = "mqtt_connect_errors_total",
    [MQTTB_C_SENT] = "mqtt_sent_total",
    [MQTTB_C_SENT_BYTES] = "mqtt_sent_bytes_total",
    [MQTTB_C_ACKED] = "mqtt_acked_total",
    [MQTTB_C_DEAD] = "mqtt_dead_total",
    [MQTTB_C_RETRIED] = "mqtt_retried_total",
    [MQTTB_C_DUP_SKIPPED] = "mqtt_redelivered_skipped_total",
    [MQTTB_C_LOOP_SKIPPED] = "mqtt_loop_skipped_total",
    [MQTTB_C_DROPPED] = "mqtt_dropped_total",
    [MQTTB_C_DOWN_RECEIVED] = "mqtt_downlink_received_total",
    [MQTTB_C_DOWN_BYTES] = "mqtt_downlink_bytes_total",
    [MQTTB_C_DOWN_DUPLICATES] = "mqtt_downlink_duplicates_total",
    [MQTTB_C_DOWN_ERRORS] = "mqtt_downlink_errors_total",
    [MQTTB_C_REQUESTS] = "mqtt_requests_total",
    [MQTTB_C_REQUEST_ERRORS] = "mqtt_request_errors_total",
};

uint64_t
mqttb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
mqttb_count(mqttb *b, int which, uint64_t n)
{
    atomic_fetch_add_explicit(&b->count[which], n, memory_order_relaxed);
}

/* Network thread: counter increments since the last flush, and gauges. */
void
mqttb_flush_metrics(mqttb *b)
{
    for (int i = 0; i < MQTTB_C_COUNT; i++) {
        uint64_t v = atomic_load_explicit(&b->count[i], memory_order_relaxed);
        if (v != b->flushed[i] || b->next_flush_ms == 0) {
            b->host->counter_add(b->self, mqttb_counter_names[i],
                                 v - b->flushed[i]);
            b->flushed[i] = v;
        }
    }
    pthread_mutex_lock(&b->lock);
    size_t queued = b->handoff.count + b->direct.count;
    pthread_mutex_unlock(&b->lock);
    b->host->gauge_set(b->self, "mqtt_connected",
                       atomic_load(&b->connected) ? 1.0 : 0.0);
    b->host->gauge_set(b->self, "mqtt_inflight", (double)mqttb_inflight(b));
    b->host->gauge_set(b->self, "mqtt_queued", (double)queued);
    b->host->gauge_set(b->self, "mqtt_receive_maximum", (double)b->receive_max);
    b->next_flush_ms = mqttb_now_ms() + MQTTB_FLUSH_MS;
}

void
mqttb_wake(mqttb *b)
{
    uint64_t one = 1;
    if (!atomic_exchange(&b->wake_pending, true)) {
        if (write(b->wakefd, &one, sizeof(one)) < 0) {
            /* The counter cannot overflow here; nothing else can fail. */
        }
    }
}

/* Durable uplink filters go to the outbox of this instance. */
static cairn_err
mqttb_routes_durable(mqttb *b)
{
    const mqttb_up_route *r = b->cfg.uplink.items;
    for (size_t i = 0; i < b->cfg.uplink.count; i++) {
        if (!r[i].durable) {
            continue;
        }
        cairn_err rv = bridge_route_durable(b->host, b->self, i, r[i].filter,
                                            r[i].priority);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

static void
mqttb_free(mqttb *b)
{
    mqttb_conn_fini(b);
    if (b->wakefd >= 0) {
        close(b->wakefd);
    }
    mqttb_map_fini(&b->owned);
    mqttb_map_fini(&b->done);
    pthread_cond_destroy(&b->svc_cv);
    pthread_cond_destroy(&b->drain_cv);
    pthread_mutex_destroy(&b->lock);
    free(b->subs);
    if (b->password != NULL) {
        explicit_bzero(b->password, strlen(b->password));
        free(b->password);
    }
    free(b);
}

static mqttb *
mqttb_alloc(const cairn_host *host, cairn_plugin *self, const void *config)
{
    mqttb *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->host = host;
    b->self = self;
    b->cfg = *(const mqttb_cfg *)config;
    b->name = host->name(self);
    b->runtime = host->runtime_name(self);
    b->wakefd = -1;
    b->receive_max = MQTTB_RX_MAX;
    b->low_water =
        b->cfg.max_inflight > 1 ? (size_t)b->cfg.max_inflight / 2 : 1;
    b->rnd = ((uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)b << 16)) | 1u;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->drain_cv, NULL);
    pthread_cond_init(&b->svc_cv, NULL);
    return b;
}

static cairn_err
mqttb_init(const cairn_host *host, cairn_plugin *self, const void *config,
           void **statep)
{
    cairn_err rv;
    if (!CAIRN_HOST_HAS(host, counter_add)) {
        host->log(self, CAIRN_LOG_ERROR,
                  "this cairnd lacks durable routes (ABI 1.1 needed)");
        return CAIRN_ENOTSUP;
    }
    mqttb *b = mqttb_alloc(host, self, config);
    if (b == NULL) {
        return CAIRN_ENOMEM;
    }
    if ((rv = mqttb_config_check(b)) != CAIRN_OK) {
        goto fail;
    }
    b->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->wakefd < 0) {
        rv = CAIRN_EIO;
        goto fail;
    }
    if ((rv = mqttb_conn_init(b)) != CAIRN_OK) {
        goto fail;
    }
    if ((rv = mqttb_routes_durable(b)) != CAIRN_OK) {
        goto fail;
    }
    *statep = b;
    return CAIRN_OK;
fail:
    mqttb_free(b);
    return rv;
}

static cairn_err
mqttb_start(void *state)
{
    mqttb    *b = state;
    cairn_err rv = mqttb_uplink_start(b);
    if (rv == CAIRN_OK) {
        rv = mqttb_downlink_start(b);
    }
    if (rv == CAIRN_OK) {
        rv = mqttb_conn_start(b);
    }
    return rv;
}

static void
mqttb_run(void *state)
{
    mqttb_drain_main(state);
}

static void
mqttb_stop(void *state)
{
    mqttb *b = state;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->stopping, true);
    pthread_cond_broadcast(&b->drain_cv);
    pthread_cond_broadcast(&b->svc_cv);
    pthread_mutex_unlock(&b->lock);
    mqttb_conn_stop(b);
    mqttb_downlink_stop(b);
    /* The drain thread leaves within one outbox_next wait. */
    pthread_mutex_lock(&b->lock);
    while (b->drain_running) {
        pthread_cond_wait(&b->drain_cv, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    mqttb_uplink_release(b);
    mqttb_flush_metrics(b);
}

static void
mqttb_fini(void *state)
{
    mqttb_free(state);
}

static const cairn_plugin_desc mqttb_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size = sizeof(cairn_plugin_desc),
    .name = "mqtt-bridge",
    .version = "1.0.0",
    .description = "Bridges the bus to an MQTT broker: durable uplink "
                   "through the outbox, downlink commands and requests",
    .config = mqttb_fields,
    .config_size = sizeof(mqttb_cfg),
    .init = mqttb_init,
    .start = mqttb_start,
    .run = mqttb_run,
    .stop = mqttb_stop,
    .fini = mqttb_fini,
};

CAIRN_PLUGIN_DEFINE(mqttb_desc)
