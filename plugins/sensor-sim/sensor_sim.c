/*
 * sensor-sim - publishes simulated sensor readings at a configured rate,
 * for demos and load tests.
 *
 * Each reading is a small JSON object:
 *   {"sensor":"s0","seq":41,"value":21.87,"ts":1764000000000}
 * on TOPIC/s<i> for sensors i = 0..sensors-1 (ordering key: the topic), or
 * pushed to a work queue when `queue` is set.  seq counts from 0 across all
 * sensors, so a consumer can check that every reading arrived once.
 *
 * The run thread keeps a schedule from its start time rather than sleeping
 * a fixed period per message: at high rates it publishes every reading
 * that is due, then sleeps until the next one, so the rate holds whatever
 * a publish costs.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn/cairn.h>

typedef struct simcfg {
    const char *topic;
    const char *queue;
    double      rate;
    int64_t     sensors;
    int64_t     count;
    int64_t     pad;
} simcfg;

static const cairn_cfg_field sim_fields[] = {
    CAIRN_FIELD_STRING(simcfg, topic, "sensors/sim",
                       "topic prefix; sensor i publishes on TOPIC/s<i>"),
    CAIRN_FIELD_STRING(simcfg, queue, "",
                       "push to this work queue instead of publishing "
                       "(empty: publish)"),
    CAIRN_FIELD_DOUBLE(simcfg, rate, "1", 0.001, 1e7,
                       "readings per second, all sensors together"),
    CAIRN_FIELD_INT(simcfg, sensors, "1", 1, 100000,
                    "number of simulated sensors"),
    CAIRN_FIELD_INT(simcfg, count, "0", 0, 1e15,
                    "stop after this many readings (0: run until stopped)"),
    CAIRN_FIELD_INT(simcfg, pad, "0", 0, 1 << 20,
                    "extra payload bytes, to load with bigger messages"),
    CAIRN_FIELD_END,
};

typedef struct sim {
    const cairn_host *host;
    cairn_plugin     *self;
    simcfg            cfg;
    char             *buf;
    uint64_t          seq;
    unsigned          rnd;
} sim;

static cairn_err
sim_init(const cairn_host *host, cairn_plugin *self, const void *config,
         void **statep)
{
    sim *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return CAIRN_ENOMEM;
    }
    s->host = host;
    s->self = self;
    s->cfg  = *(const simcfg *)config;
    s->rnd  = (unsigned)time(NULL);
    s->buf  = malloc(256 + (size_t)s->cfg.pad);
    if (s->buf == NULL) {
        free(s);
        return CAIRN_ENOMEM;
    }
    *statep = s;
    return CAIRN_OK;
}

static cairn_err
sim_start(void *state)
{
    sim *s = state;
    s->host->log(s->self, CAIRN_LOG_INFO, "%s %s at %g/s from %lld sensor(s)",
                 s->cfg.queue[0] ? "queue" : "topic",
                 s->cfg.queue[0] ? s->cfg.queue : s->cfg.topic, s->cfg.rate,
                 (long long)s->cfg.sensors);
    return CAIRN_OK;
}

static uint64_t
sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static cairn_err
sim_emit(sim *s)
{
    char     topic[512];
    unsigned i     = (unsigned)(s->seq % (uint64_t)s->cfg.sensors);
    /* A triangle wave of period 200 readings plus noise: no libm, whose
     * mapping alone would cost the daemon half a MiB of RSS. */
    unsigned phase = (unsigned)(s->seq % 200);
    double   wave  = (phase < 100 ? (double)phase : 200.0 - phase) / 20.0;
    double   value = 17.5 + wave + (double)(rand_r(&s->rnd) % 100) / 100.0;
    int n = snprintf(s->buf, 256,
                     "{\"sensor\":\"s%u\",\"seq\":%llu,\"value\":%.2f,"
                     "\"ts\":%llu",
                     i, (unsigned long long)s->seq, value,
                     (unsigned long long)cairn_now_ms());
    if (s->cfg.pad > 0) {
        n += snprintf(s->buf + n, 16, ",\"pad\":\"");
        memset(s->buf + n, 'x', (size_t)s->cfg.pad);
        n += (int)s->cfg.pad;
        s->buf[n++] = '"';
    }
    s->buf[n++] = '}';
    s->seq++;
    if (s->cfg.queue[0] != '\0') {
        return s->host->queue_push(s->self, s->cfg.queue, s->buf, (size_t)n,
                                   5000);
    }
    snprintf(topic, sizeof(topic), "%s/s%u", s->cfg.topic, i);
    return s->host->publish(s->self, topic, s->buf, (size_t)n, NULL);
}

static void
sim_run(void *state)
{
    sim     *s     = state;
    uint64_t t0    = sim_now_ms();
    bool     going = true;
    while (going && (s->cfg.count == 0 || s->seq < (uint64_t)s->cfg.count)) {
        uint64_t due = (uint64_t)((double)(sim_now_ms() - t0) * s->cfg.rate /
                                  1000.0) + 1;
        while (s->seq < due &&
               (s->cfg.count == 0 || s->seq < (uint64_t)s->cfg.count)) {
            cairn_err rv = sim_emit(s);
            if (rv != CAIRN_OK) {
                s->host->log(s->self, CAIRN_LOG_WARN, "reading %llu: %s",
                             (unsigned long long)s->seq - 1,
                             cairn_strerror(rv));
                if (rv == CAIRN_ECLOSED) {
                    return;
                }
            }
        }
        double next = (double)s->seq * 1000.0 / s->cfg.rate;
        double wait = next - (double)(sim_now_ms() - t0);
        going       = s->host->sleep(s->self, wait > 1 ? (uint32_t)wait : 1);
    }
    s->host->log(s->self, CAIRN_LOG_INFO, "published %llu readings",
                 (unsigned long long)s->seq);
}

static void
sim_stop(void *state)
{
}

static void
sim_fini(void *state)
{
    sim *s = state;
    free(s->buf);
    free(s);
}

static const cairn_plugin_desc sim_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "sensor-sim",
    .version     = "1.0.0",
    .description = "Publishes simulated sensor readings at a configured rate",
    .config      = sim_fields,
    .config_size = sizeof(simcfg),
    .init        = sim_init,
    .start       = sim_start,
    .run         = sim_run,
    .stop        = sim_stop,
    .fini        = sim_fini,
};

CAIRN_PLUGIN_DEFINE(sim_desc)
