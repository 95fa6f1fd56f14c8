/*
 * amqpb_main.c - the amqp-bridge plugin: descriptor and lifecycle.
 *
 *   init   checks the config, registers the durable uplink filters with
 *          host->route_durable, allocates the in-flight ring
 *   start  nothing to start: the run thread does all the work
 *   run    the one thread that owns the connection (amqpb_conn.c), until
 *          stopping
 *   stop   sets stopping and waits for the run thread to leave; records
 *          not confirmed stay in the outbox, deliveries not acked are
 *          redelivered by the broker
 *   fini   frees everything
 *
 * Counters are plain fields of the run thread; it hands the increments
 * to the host every AMQPB_FLUSH_MS (host->counter_add costs a lock and a
 * search, too much per message).
 */
#define _GNU_SOURCE

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqpb.h"

/* Metric names, in the order of the AMQPB_C_* counters. */
static const char *const amqpb_counter_names[AMQPB_C_COUNT] = {
    [AMQPB_C_RECONNECTS] = "amqp_reconnects_total",
    [AMQPB_C_CONNECT_ERRORS] = "amqp_connect_errors_total",
    [AMQPB_C_SENT] = "amqp_sent_total",
    [AMQPB_C_SENT_BYTES] = "amqp_sent_bytes_total",
    [AMQPB_C_ACKED] = "amqp_acked_total",
    [AMQPB_C_NACKED] = "amqp_nacked_total",
    [AMQPB_C_RETURNED] = "amqp_returned_total",
    [AMQPB_C_DEAD] = "amqp_dead_total",
    [AMQPB_C_RETRIED] = "amqp_retried_total",
    [AMQPB_C_DUP_SKIPPED] = "amqp_redelivered_skipped_total",
    [AMQPB_C_LOOP_SKIPPED] = "amqp_loop_skipped_total",
    [AMQPB_C_DOWN_RECEIVED] = "amqp_downlink_received_total",
    [AMQPB_C_DOWN_BYTES] = "amqp_downlink_bytes_total",
    [AMQPB_C_DOWN_DUPLICATES] = "amqp_downlink_duplicates_total",
    [AMQPB_C_DOWN_REJECTED] = "amqp_downlink_rejected_total",
    [AMQPB_C_DOWN_REQUEUED] = "amqp_downlink_requeued_total",
};

uint64_t
amqpb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run thread: counter increments since the last flush, and gauges. */
void
amqpb_flush_metrics(amqpb *b, bool force)
{
    uint64_t now = amqpb_now_ms();
    if (!force && now < b->next_flush_ms) {
        return;
    }
    for (int i = 0; i < AMQPB_C_COUNT; i++) {
        if (b->count[i] != b->flushed[i] || b->next_flush_ms == 0) {
            b->host->counter_add(b->self, amqpb_counter_names[i],
                                 b->count[i] - b->flushed[i]);
            b->flushed[i] = b->count[i];
        }
    }
    b->host->gauge_set(b->self, "amqp_connected",
                       b->state == AMQPB_UP ? 1.0 : 0.0);
    b->host->gauge_set(b->self, "amqp_inflight", (double)b->fly_count);
    b->next_flush_ms = now + AMQPB_FLUSH_MS;
    if (b->state == AMQPB_DOWN) {
        amqpb_status(b); /* the countdown */
    }
}

static void
amqpb_free(amqpb *b)
{
    amqpb_uplink_fini(b);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->lock);
    if (b->password != NULL) {
        explicit_bzero(b->password, strlen(b->password));
        free(b->password);
    }
    free(b);
}

static amqpb *
amqpb_alloc(const cairn_host *host, cairn_plugin *self, const void *config)
{
    amqpb *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->host = host;
    b->self = self;
    b->cfg = *(const amqpb_cfg *)config;
    b->name = host->name(self);
    b->runtime = host->runtime_name(self);
    b->rnd = ((uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)b << 16)) | 1u;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cv, NULL);
    return b;
}

static cairn_err
amqpb_init(const cairn_host *host, cairn_plugin *self, const void *config,
           void **statep)
{
    cairn_err rv;
    if (!CAIRN_HOST_HAS(host, counter_add)) {
        host->log(self, CAIRN_LOG_ERROR,
                  "this cairnd lacks durable routes (ABI 1.1 needed)");
        return CAIRN_ENOTSUP;
    }
    amqpb *b = amqpb_alloc(host, self, config);
    if (b == NULL) {
        return CAIRN_ENOMEM;
    }
    if ((rv = amqpb_config_check(b)) != CAIRN_OK ||
        (rv = amqpb_uplink_init(b)) != CAIRN_OK) {
        goto fail;
    }
    *statep = b;
    return CAIRN_OK;
fail:
    amqpb_free(b);
    return rv;
}

static cairn_err
amqpb_start(void *state)
{
    amqpb *b = state;
    b->host->status(b->self, "starting");
    return CAIRN_OK;
}

static void
amqpb_run(void *state)
{
    amqpb *b = state;
    pthread_mutex_lock(&b->lock);
    b->running = !atomic_load(&b->stopping);
    pthread_mutex_unlock(&b->lock);
    if (b->running) {
        amqpb_run_loop(b);
    }
    pthread_mutex_lock(&b->lock);
    b->running = false;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->lock);
}

static void
amqpb_stop(void *state)
{
    amqpb *b = state;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->stopping, true);
    /* The run thread leaves within one loop turn (or one setup call, at
     * most connect_timeout). */
    while (b->running) {
        pthread_cond_wait(&b->cv, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
}

static void
amqpb_fini(void *state)
{
    amqpb_free(state);
}

static const cairn_plugin_desc amqpb_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size = sizeof(cairn_plugin_desc),
    .name = "amqp-bridge",
    .version = "1.0.0",
    .description = "Bridges the bus to an AMQP 0-9-1 broker: durable uplink "
                   "with publisher confirms, downlink work queues with acks",
    .config = amqpb_fields,
    .config_size = sizeof(amqpb_cfg),
    .init = amqpb_init,
    .start = amqpb_start,
    .run = amqpb_run,
    .stop = amqpb_stop,
    .fini = amqpb_fini,
};

CAIRN_PLUGIN_DEFINE(amqpb_desc)
