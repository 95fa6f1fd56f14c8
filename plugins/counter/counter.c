/*
 * counter - a small consumer: counts the messages matching a filter (and,
 * when configured, those it takes from a work queue), and answers a
 * request/reply service with its tallies as JSON:
 *
 *   {"count":N,"queue":Q,"seq_sum":S,"bytes":B,"last_topic":"..."}
 *
 * seq_sum adds up the "seq" numbers found in payloads (sensor-sim writes
 * them), so a test can prove every reading arrived exactly once across
 * several competing consumers.  `delay` makes each delivery and each
 * reply slow on purpose, for demonstrating drops and deadlines.
 * Delivery callbacks run on the bus's threads; the tallies are guarded by
 * one mutex.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn/cairn.h>

typedef struct countcfg {
    const char *filter;
    const char *queue;
    const char *service;
    const char *report_topic;
    uint64_t    report_every;
    uint64_t    delay;
    bool        durable;
} countcfg;

static const cairn_cfg_field counter_fields[] = {
    CAIRN_FIELD_STRING(countcfg, filter, "sensors/#",
                       "topic filter to count (MQTT syntax; empty: none)"),
    CAIRN_FIELD_STRING(countcfg, queue, "",
                       "also consume this work queue (empty: none)"),
    CAIRN_FIELD_STRING(countcfg, service, "",
                       "request/reply service answering the tallies "
                       "(empty: NAME.count)"),
    CAIRN_FIELD_STRING(countcfg, report_topic, "",
                       "publish the tallies here every report_every "
                       "(empty: never)"),
    CAIRN_FIELD_DURATION(countcfg, report_every, "10s", 10, 86400000,
                         "reporting period"),
    CAIRN_FIELD_DURATION(countcfg, delay, "0", 0, 0,
                         "time spent on each message and each reply "
                         "(simulates a slow consumer)"),
    CAIRN_FIELD_BOOL(countcfg, durable, "false",
                     "also count the messages routed to this instance, "
                     "exactly once, in its key-value state (needs a route)"),
    CAIRN_FIELD_END,
};

typedef struct counter {
    const cairn_host *host;
    cairn_plugin     *self;
    countcfg          cfg;
    char              service[256];
    pthread_mutex_t   lock;
    uint64_t          count, queued, seq_sum, bytes;
    uint64_t          durable_count, durable_seq_sum; /* as last committed */
    char              last_topic[256];
} counter;

static void
counter_pause(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0) {
    }
}

/* The "seq" number in a payload, or 0. */
static uint64_t
counter_seq(const cairn_bytes *p)
{
    static const char key[] = "\"seq\":";
    size_t            k     = sizeof(key) - 1;
    for (size_t i = 0; i + k < p->len; i++) {
        if (memcmp(p->ptr + i, key, k) == 0) {
            uint64_t v = 0;
            for (i += k; i < p->len && p->ptr[i] >= '0' && p->ptr[i] <= '9';
                 i++) {
                v = v * 10 + (uint64_t)(p->ptr[i] - '0');
            }
            return v;
        }
    }
    return 0;
}

static void
counter_take(counter *c, const cairn_envelope *env, bool queued)
{
    counter_pause(c->cfg.delay);
    pthread_mutex_lock(&c->lock);
    c->count += !queued;
    c->queued += queued;
    c->seq_sum += counter_seq(&env->payload);
    c->bytes += env->payload.len;
    snprintf(c->last_topic, sizeof(c->last_topic), "%.*s",
             (int)env->topic.len, env->topic.ptr);
    pthread_mutex_unlock(&c->lock);
}

static void
counter_on_msg(void *arg, const cairn_envelope *env)
{
    counter_take(arg, env, false);
}

static void
counter_on_job(void *arg, const cairn_envelope *env)
{
    counter_take(arg, env, true);
}

static uint64_t
counter_kv_u64(counter *c, cairn_txn *txn, const char *key)
{
    void    *val;
    size_t   len;
    uint64_t v = 0;
    if (c->host->kv_get(txn, key, &val, &len) == CAIRN_OK) {
        if (len == sizeof(v)) {
            memcpy(&v, val, sizeof(v));
        }
        c->host->free(val);
    }
    return v;
}

/*
 * The durable tally: read, add, write, all in the message's transaction,
 * so a redelivered message (same id) never counts twice, and a crash
 * between two messages loses neither.
 */
static cairn_err
counter_on_durable(void *arg, const cairn_envelope *env, cairn_txn *txn)
{
    counter  *c   = arg;
    uint64_t  n   = counter_kv_u64(c, txn, "count") + 1;
    uint64_t  sum = counter_kv_u64(c, txn, "seq_sum") + counter_seq(&env->payload);
    cairn_err rv  = c->host->kv_put(txn, "count", &n, sizeof(n));
    if (rv == CAIRN_OK) {
        rv = c->host->kv_put(txn, "seq_sum", &sum, sizeof(sum));
    }
    if (rv == CAIRN_OK) {
        /* Shown before the commit; the commit follows at once. */
        pthread_mutex_lock(&c->lock);
        c->durable_count   = n;
        c->durable_seq_sum = sum;
        pthread_mutex_unlock(&c->lock);
    }
    return rv;
}

static int
counter_json(counter *c, char *buf, size_t n)
{
    pthread_mutex_lock(&c->lock);
    int len = snprintf(buf, n,
                       "{\"count\":%llu,\"queue\":%llu,\"seq_sum\":%llu,"
                       "\"bytes\":%llu,\"durable\":%llu,"
                       "\"durable_seq_sum\":%llu,\"last_topic\":\"%s\"}",
                       (unsigned long long)c->count,
                       (unsigned long long)c->queued,
                       (unsigned long long)c->seq_sum,
                       (unsigned long long)c->bytes,
                       (unsigned long long)c->durable_count,
                       (unsigned long long)c->durable_seq_sum, c->last_topic);
    pthread_mutex_unlock(&c->lock);
    return len < (int)n ? len : (int)n - 1;
}

static cairn_err
counter_serve(void *arg, const cairn_envelope *req, cairn_out *out)
{
    counter *c = arg;
    char     buf[512];
    counter_pause(c->cfg.delay);
    int n = counter_json(c, buf, sizeof(buf));
    return c->host->out_append(out, buf, (size_t)n);
}

static cairn_err
counter_init(const cairn_host *host, cairn_plugin *self, const void *config,
             void **statep)
{
    counter *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return CAIRN_ENOMEM;
    }
    c->host = host;
    c->self = self;
    c->cfg  = *(const countcfg *)config;
    if (c->cfg.filter[0] != '\0' &&
        cairn_filter_valid(c->cfg.filter) != CAIRN_OK) {
        host->log(self, CAIRN_LOG_ERROR, "invalid filter '%s'", c->cfg.filter);
        free(c);
        return CAIRN_ECONFIG;
    }
    snprintf(c->service, sizeof(c->service), "%s",
             c->cfg.service[0] ? c->cfg.service : host->name(self));
    if (c->cfg.service[0] == '\0') {
        strncat(c->service, ".count", sizeof(c->service) - strlen(c->service) - 1);
    }
    pthread_mutex_init(&c->lock, NULL);
    *statep = c;
    return CAIRN_OK;
}

static cairn_err
counter_start(void *state)
{
    counter   *c = state;
    cairn_sub *sub;
    cairn_err  rv = CAIRN_OK;
    if (c->cfg.filter[0] != '\0') {
        rv = c->host->subscribe(c->self, c->cfg.filter, counter_on_msg, c,
                                &sub);
    }
    if (rv == CAIRN_OK && c->cfg.queue[0] != '\0') {
        rv = c->host->queue_consume(c->self, c->cfg.queue, counter_on_job, c,
                                    &sub);
    }
    if (rv == CAIRN_OK && c->cfg.durable) {
        if (!CAIRN_HOST_HAS(c->host, inbox_consume)) {
            c->host->log(c->self, CAIRN_LOG_ERROR,
                         "durable: this cairnd has no inbox (ABI < 1.1)");
            return CAIRN_ENOTSUP;
        }
        rv = c->host->inbox_consume(c->self, counter_on_durable, c);
    }
    if (rv == CAIRN_OK) {
        rv = c->host->serve(c->self, c->service, counter_serve, c, NULL);
    }
    return rv;
}

static void
counter_run(void *state)
{
    counter *c = state;
    char     buf[512];
    if (c->cfg.report_topic[0] == '\0') {
        return;
    }
    while (c->host->sleep(c->self, (uint32_t)c->cfg.report_every)) {
        int n = counter_json(c, buf, sizeof(buf));
        c->host->publish(c->self, c->cfg.report_topic, buf, (size_t)n, NULL);
    }
}

static void
counter_stop(void *state)
{
}

static void
counter_fini(void *state)
{
    counter *c = state;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static const cairn_plugin_desc counter_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "counter",
    .version     = "1.0.0",
    .description = "Counts messages and work items; answers its tallies",
    .config      = counter_fields,
    .config_size = sizeof(countcfg),
    .init        = counter_init,
    .start       = counter_start,
    .run         = counter_run,
    .stop        = counter_stop,
    .fini        = counter_fini,
};

CAIRN_PLUGIN_DEFINE(counter_desc)
