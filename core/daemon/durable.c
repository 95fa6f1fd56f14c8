/*
 * durable.c - where the bus meets the store.
 *
 * Publishing: a message whose topic matches a route in the config is
 * committed to the outbox of each route's destination before it goes on
 * the bus, so once cairn_publish returns, the message survives a crash.
 * Several routes to one destination store it once.  If a commit fails
 * (the destination is full under `reject`, the disk is full) the producer
 * gets the error and nothing is published.
 *
 * Destinations: a plugin instance drains the destination of its own name,
 * either itself (a bridge: outbox_next/ack/nack) or through the runtime
 * (an idempotent consumer: inbox_consume runs the plugin's handler on a
 * thread of its own, each message in a transaction with the plugin's
 * key-value state).  The drainer is opened on first use, under the
 * plugin's lock, and closed at stop after every thread that uses it ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairnd.h"

#define DURABLE_INBOX_BATCH 32
#define DURABLE_INBOX_WAIT_MS 200

cairn_err
cd_durable_open(cd_runtime *rt, char *err, size_t errlen)
{
    const cairni_store_cfg *sc = &rt->cfg->store;
    const cairni_dest_entry *de = sc->destinations.items;
    char      path[4200];
    cairn_err rv = CAIRN_ENOMEM;
    cairni_dest_cfg *dests =
        calloc(sc->destinations.count + 1, sizeof(*dests));
    if (dests == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return rv;
    }
    for (size_t i = 0; i < sc->destinations.count; i++) {
        dests[i] = (cairni_dest_cfg){
            .name = de[i].name, .max_bytes = de[i].max_bytes,
            .max_messages = de[i].max_messages, .ttl_ms = de[i].ttl_ms,
            .on_full = de[i].on_full, .window = (uint32_t)de[i].window};
    }
    snprintf(path, sizeof(path), "%s/cairn.db", rt->cfg->runtime.data_dir);
    cairni_store_opts o = {
        .path            = path,
        .sync            = sc->sync,
        .retry           = rt->cfg->retry,
        .inbox_window_ms = sc->inbox_window_ms,
        .dests           = dests,
        .ndests          = sc->destinations.count,
        .dest_default    = {.name = "", .max_bytes = sc->max_bytes,
                            .max_messages = sc->max_messages,
                            .ttl_ms = sc->ttl_ms, .on_full = sc->on_full,
                            .window = (uint32_t)sc->window},
    };
    rv = cairni_store_open(&rt->store, &o, err, errlen);
    free(dests);
    return rv;
}

/* "high" in the cairn-priority header raises a message above its route. */
static int
durable_priority(const cairn_envelope *env, int route_prio)
{
    static const char name[] = "cairn-priority";
    for (uint32_t i = 0; i < env->nheaders; i++) {
        const cairn_header *h = &env->headers[i];
        if (h->name.len == sizeof(name) - 1 &&
            memcmp(h->name.ptr, name, h->name.len) == 0) {
            return h->value.len == 4 && memcmp(h->value.ptr, "high", 4) == 0
                       ? CAIRNI_PRIO_HIGH
                       : CAIRNI_PRIO_NORMAL;
        }
    }
    return route_prio;
}

cairn_err
cd_route_add(cd_runtime *rt, const char *filter, const char *to, int priority)
{
    cairn_err rv = CAIRN_ENOMEM;
    char     *f;
    if (cairn_filter_valid(filter) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if ((f = strdup(filter)) == NULL) {
        return rv;
    }
    pthread_rwlock_wrlock(&rt->routes_lock);
    cd_route *r = realloc(rt->routes, (rt->nroutes + 1) * sizeof(*r));
    if (r != NULL) {
        rt->routes                = r;
        rt->routes[rt->nroutes++] = (cd_route){f, to, priority};
        rv                        = CAIRN_OK;
    }
    pthread_rwlock_unlock(&rt->routes_lock);
    if (rv != CAIRN_OK) {
        free(f);
    }
    return rv;
}

cairn_err
cd_routes_init(cd_runtime *rt)
{
    const cairni_route_cfg *r = rt->cfg->routes.items;
    pthread_rwlock_init(&rt->routes_lock, NULL);
    for (size_t i = 0; i < rt->cfg->routes.count; i++) {
        cairn_err rv = cd_route_add(rt, r[i].filter, r[i].to, r[i].priority);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

void
cd_routes_fini(cd_runtime *rt)
{
    for (size_t i = 0; i < rt->nroutes; i++) {
        free(rt->routes[i].filter);
    }
    free(rt->routes);
    rt->routes  = NULL;
    rt->nroutes = 0;
    pthread_rwlock_destroy(&rt->routes_lock);
}

/* Commits env to every destination whose route matches, once each.
 * Called under the routes read lock. */
static cairn_err
durable_store(cd_runtime *rt, const cairn_envelope *env)
{
    const cd_route *r = rt->routes;
    for (size_t i = 0; i < rt->nroutes; i++) {
        if (!cairn_topic_match(r[i].filter, env->topic.ptr, env->topic.len)) {
            continue;
        }
        bool seen = false; /* an earlier matching route, same destination */
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(r[j].to, r[i].to) == 0 &&
                   cairn_topic_match(r[j].filter, env->topic.ptr,
                                     env->topic.len);
        }
        if (seen) {
            continue;
        }
        cairn_err rv = cairni_outbox_put(rt->store, r[i].to, env,
                                         durable_priority(env, r[i].priority));
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

static bool
durable_id_zero(const uint8_t id[CAIRN_ID_LEN])
{
    for (int i = 0; i < CAIRN_ID_LEN; i++) {
        if (id[i] != 0) {
            return false;
        }
    }
    return true;
}

cairn_err
cd_publish(cd_runtime *rt, const cairn_envelope *in,
           uint8_t env_id[CAIRN_ID_LEN])
{
    cairn_envelope env = *in;
    if (cairn_topic_valid(env.topic.ptr, env.topic.len) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if (durable_id_zero(env.id)) {
        cairn_id_new(env.id);
    }
    if (env.ts == 0) {
        env.ts = cairn_now_ms();
    }
    cairn_err rv = CAIRN_OK;
    if (rt->store != NULL) {
        pthread_rwlock_rdlock(&rt->routes_lock);
        rv = durable_store(rt, &env);
        pthread_rwlock_unlock(&rt->routes_lock);
    }
    if (rv == CAIRN_OK) {
        rv = cairni_bus_publish(rt->bus, &env);
    }
    if (rv == CAIRN_OK && env_id != NULL) {
        memcpy(env_id, env.id, CAIRN_ID_LEN);
    }
    return rv;
}

/* The destinations whose routes match env's topic, once each, with the
 * first matching route's priority.  Called under the routes read lock;
 * *top is malloc'd (NULL when n is 0). */
static cairn_err
durable_targets(cd_runtime *rt, const cairn_envelope *env, cairni_put_to **top,
                size_t *n)
{
    const cd_route *r = rt->routes;
    cairni_put_to  *to = NULL;
    *n = 0;
    for (size_t i = 0; i < rt->nroutes; i++) {
        if (!cairn_topic_match(r[i].filter, env->topic.ptr, env->topic.len)) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < *n && !seen; j++) {
            seen = strcmp(to[j].dest, r[i].to) == 0;
        }
        if (seen) {
            continue;
        }
        if (to == NULL && (to = calloc(rt->nroutes, sizeof(*to))) == NULL) {
            return CAIRN_ENOMEM;
        }
        to[(*n)++] =
            (cairni_put_to){r[i].to, durable_priority(env, r[i].priority)};
    }
    *top = to;
    return CAIRN_OK;
}

/*
 * The id and the outbox rows commit together (cairni_outbox_put_once), so
 * a crash either keeps both (the redelivery is a duplicate, and the
 * message is in the outbox of every durable route) or neither (the
 * redelivery is processed as new).  A topic with no durable route commits
 * just the id: the bus alone loses its messages in a crash anyway, by
 * design, durable or not is the config's choice.
 */
cairn_err
cd_publish_once(cd_runtime *rt, const char *consumer, const cairn_envelope *in)
{
    cairn_envelope env = *in;
    cairni_put_to *to = NULL;
    size_t         n = 0;
    if (cairn_topic_valid(env.topic.ptr, env.topic.len) != CAIRN_OK ||
        durable_id_zero(env.id)) {
        return CAIRN_EINVAL;
    }
    if (rt->store == NULL) {
        return CAIRN_ENOTSUP;
    }
    if (env.ts == 0) {
        env.ts = cairn_now_ms();
    }
    pthread_rwlock_rdlock(&rt->routes_lock);
    cairn_err rv = durable_targets(rt, &env, &to, &n);
    if (rv == CAIRN_OK) {
        rv = cairni_outbox_put_once(rt->store, consumer, &env, to, n);
    }
    pthread_rwlock_unlock(&rt->routes_lock);
    free(to);
    if (rv == CAIRN_OK) {
        rv = cairni_bus_publish(rt->bus, &env);
    }
    return rv;
}

/* The plugin's drainer, opened on first use. */
static cairn_err
durable_drain(cairn_plugin *p, cairni_drain **dp)
{
    cairn_err rv = CAIRN_OK;
    if (p->rt->store == NULL) {
        return CAIRN_ENOTSUP;
    }
    pthread_mutex_lock(&p->lock);
    if (p->drain == NULL) {
        rv = cairni_drain_open(p->rt->store, p->cfg->name, &p->drain);
    }
    *dp = p->drain;
    pthread_mutex_unlock(&p->lock);
    return rv;
}

cairn_err
cd_outbox_next(cairn_plugin *self, cairn_record *recs, size_t max,
               uint32_t wait_ms, size_t *n)
{
    cairni_drain *d;
    cairn_err     rv;
    *n = 0;
    if (atomic_load(&self->stopping)) {
        return CAIRN_ECLOSED;
    }
    if ((rv = durable_drain(self, &d)) != CAIRN_OK) {
        return rv;
    }
    return cairni_drain_next(d, recs, max, wait_ms, n);
}

cairn_err
cd_outbox_ack(cairn_plugin *self, uint64_t seq)
{
    cairni_drain *d;
    cairn_err     rv = durable_drain(self, &d);
    return rv == CAIRN_OK ? cairni_drain_ack(d, seq) : rv;
}

cairn_err
cd_outbox_nack(cairn_plugin *self, uint64_t seq, bool permanent,
               const char *error)
{
    cairni_drain *d;
    cairn_err     rv = durable_drain(self, &d);
    return rv == CAIRN_OK ? cairni_drain_nack(d, seq, permanent, error) : rv;
}

void
cd_outbox_reset(cairn_plugin *self)
{
    cairni_drain *d;
    if (durable_drain(self, &d) == CAIRN_OK) {
        cairni_drain_reset(d);
    }
}

static void *
durable_inbox_main(void *arg)
{
    cairn_plugin *p = arg;
    cairn_record  recs[DURABLE_INBOX_BATCH];
    while (!atomic_load(&p->stopping)) {
        size_t    n  = 0;
        cairn_err rv = cairni_drain_next(p->drain, recs, DURABLE_INBOX_BATCH,
                                         DURABLE_INBOX_WAIT_MS, &n);
        if (rv != CAIRN_OK && rv != CAIRN_ETIMEDOUT) {
            cairni_log(CAIRN_LOG_ERROR, p->cfg->name, "inbox: %s",
                       cairn_strerror(rv));
            break;
        }
        for (size_t i = 0; i < n; i++) {
            /* Even when stopping: a handed-out record is finished or,
             * unprocessed, simply handed out again after a restart. */
            if (!atomic_load(&p->stopping)) {
                rv = cairni_inbox_process(p->drain, p->cfg->name, &recs[i],
                                          p->inbox_fn, p->inbox_arg);
                if (rv == CAIRN_OK) {
                    atomic_fetch_add(&p->delivered, 1);
                } else if (rv != CAIRN_EAGAIN) {
                    atomic_fetch_add(&p->errors, 1);
                }
            }
            cairni_record_fini(&recs[i]);
        }
    }
    return NULL;
}

cairn_err
cd_inbox_consume(cairn_plugin *self, cairn_inbox_fn fn, void *arg)
{
    cairni_drain *d;
    cairn_err     rv;
    if (fn == NULL) {
        return CAIRN_EINVAL;
    }
    if (self->has_inbox_thread) {
        return CAIRN_EEXIST;
    }
    if ((rv = durable_drain(self, &d)) != CAIRN_OK) {
        return rv;
    }
    self->inbox_fn  = fn;
    self->inbox_arg = arg;
    int e = pthread_create(&self->inbox_thread, NULL, durable_inbox_main, self);
    if (e != 0) {
        return cairn_errno(e);
    }
    self->has_inbox_thread = true;
    return CAIRN_OK;
}

cairn_err
cd_inbox_accept(cairn_plugin *self, const uint8_t id[CAIRN_ID_LEN])
{
    if (self->rt->store == NULL) {
        return CAIRN_ENOTSUP;
    }
    return cairni_inbox_accept(self->rt->store, self->cfg->name, id);
}

void
cd_inbox_join(cairn_plugin *p)
{
    if (p->has_inbox_thread) {
        pthread_join(p->inbox_thread, NULL);
        p->has_inbox_thread = false;
    }
}

void
cd_durable_stop(cairn_plugin *p)
{
    cd_inbox_join(p);
    if (p->drain != NULL) {
        cairni_drain_close(p->drain);
        p->drain = NULL;
    }
}
