/*
 * metrics.c - counters per topic and latency histograms, rendered as
 * Prometheus text.
 *
 * Topics live in an open-addressing hash table of fixed capacity
 * (twice CAIRNI_METRICS_MAX_TOPICS, so it is never more than half full).
 * Entries are never removed, so the counters a caller got stay valid until
 * the table is freed and can be bumped with atomics without the lock.  The
 * lock covers only lookup and insertion.  Past the topic limit, new topics
 * share the "_other" entry: cardinality stays bounded whatever plugins do.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairni.h"

#define METRICS_SLOTS (2 * CAIRNI_METRICS_MAX_TOPICS)

typedef struct metrics_entry {
    char              *topic;
    uint64_t           hash;
    cairni_topic_stats stats;
} metrics_entry;

struct cairni_metrics {
    pthread_mutex_t    lock;
    size_t             count;
    metrics_entry      slots[METRICS_SLOTS];
    cairni_topic_stats other;
};

const uint64_t cairni_hist_bounds_us[CAIRNI_HIST_BUCKETS] = {
    10,    25,    50,     100,    250,    500,     1000,
    2500,  5000,  10000,  25000,  100000, 1000000, 10000000,
};

cairn_err
cairni_metrics_alloc(cairni_metrics **mp)
{
    cairni_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    *mp = m;
    return CAIRN_OK;
}

void
cairni_metrics_free(cairni_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        free(m->slots[i].topic);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static uint64_t
metrics_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    }
    return h;
}

cairni_topic_stats *
cairni_metrics_topic(cairni_metrics *m, const char *topic, size_t len)
{
    uint64_t            h  = metrics_hash(topic, len);
    cairni_topic_stats *st = &m->other;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        metrics_entry *e = &m->slots[(h + i) % METRICS_SLOTS];
        if (e->topic == NULL) {
            if (m->count >= CAIRNI_METRICS_MAX_TOPICS) {
                break;
            }
            e->topic = malloc(len + 1);
            if (e->topic == NULL) {
                break;
            }
            memcpy(e->topic, topic, len);
            e->topic[len] = '\0';
            e->hash       = h;
            m->count++;
            st = &e->stats;
            break;
        }
        if (e->hash == h && strlen(e->topic) == len &&
            memcmp(e->topic, topic, len) == 0) {
            st = &e->stats;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

void
cairni_prom_escape(cairni_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '\\':
            cairni_buf_append(out, "\\\\", 2);
            break;
        case '"':
            cairni_buf_append(out, "\\\"", 2);
            break;
        case '\n':
            cairni_buf_append(out, "\\n", 2);
            break;
        default:
            cairni_buf_append(out, &s[i], 1);
        }
    }
}

static void
metrics_render_one(cairni_buf *out, const char *topic,
                   const cairni_topic_stats *st)
{
    static const char *const names[] = {"published", "delivered", "dropped",
                                        "errors"};
    uint64_t v[4] = {atomic_load(&st->published), atomic_load(&st->delivered),
                     atomic_load(&st->dropped), atomic_load(&st->errors)};
    for (int i = 0; i < 4; i++) {
        cairni_buf_printf(out, "cairn_topic_%s_total{topic=\"", names[i]);
        cairni_prom_escape(out, topic, strlen(topic));
        cairni_buf_printf(out, "\"} %llu\n", (unsigned long long)v[i]);
    }
}

void
cairni_metrics_render(cairni_metrics *m, cairni_buf *out)
{
    cairni_buf_printf(out,
                      "# TYPE cairn_topic_published_total counter\n"
                      "# TYPE cairn_topic_delivered_total counter\n"
                      "# TYPE cairn_topic_dropped_total counter\n"
                      "# TYPE cairn_topic_errors_total counter\n");
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        if (m->slots[i].topic != NULL) {
            metrics_render_one(out, m->slots[i].topic, &m->slots[i].stats);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (m->count >= CAIRNI_METRICS_MAX_TOPICS) {
        metrics_render_one(out, "_other", &m->other);
    }
}

void
cairni_hist_observe(cairni_hist *h, uint64_t us)
{
    size_t i = 0;
    while (i < CAIRNI_HIST_BUCKETS && us > cairni_hist_bounds_us[i]) {
        i++;
    }
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->sum_us, us);
    atomic_fetch_add(&h->count, 1);
}

void
cairni_hist_render(const cairni_hist *h, const char *name, const char *labels,
                   cairni_buf *out)
{
    uint64_t    cum = 0;
    const char *sep = (labels && labels[0]) ? "," : "";
    labels          = labels ? labels : "";
    for (size_t i = 0; i <= CAIRNI_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->buckets[i]);
        if (i < CAIRNI_HIST_BUCKETS) {
            cairni_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name,
                              labels, sep,
                              (double)cairni_hist_bounds_us[i] / 1e6,
                              (unsigned long long)cum);
        } else {
            cairni_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
                              labels, sep, (unsigned long long)cum);
        }
    }
    cairni_buf_printf(out, "%s_sum{%s} %g\n%s_count{%s} %llu\n", name, labels,
                      (double)atomic_load(&h->sum_us) / 1e6, name, labels,
                      (unsigned long long)atomic_load(&h->count));
}
