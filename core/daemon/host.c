/*
 * host.c - the cairn_host table: what a plugin can ask of the runtime.
 *
 * Every entry takes the plugin's own handle, so the runtime can count per
 * plugin and release, at stop, whatever the plugin left registered.  The
 * cairn_sub and cairn_svc handles given to a plugin are cd_handle
 * pointers: the handle remembers its owner, so unsubscribe needs no
 * search.  A plugin's handle list is guarded by its lock; callbacks run on
 * the bus's delivery threads, never under that lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairnd.h"

static void
host_log(cairn_plugin *self, cairn_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairni_vlog(level, self->cfg->name, fmt, ap);
    va_end(ap);
}

static const char *
host_name(cairn_plugin *self)
{
    return self->cfg->name;
}

static const char *
host_runtime_name(cairn_plugin *self)
{
    return self->rt->cfg->runtime.name;
}

static bool
host_sleep(cairn_plugin *self, uint32_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->lock);
    int rv = 0;
    while (!atomic_load(&self->stopping) && rv != ETIMEDOUT) {
        rv = pthread_cond_timedwait(&self->cv, &self->lock, &until);
    }
    pthread_mutex_unlock(&self->lock);
    return !atomic_load(&self->stopping);
}

void
cd_host_wake(cairn_plugin *p)
{
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

static cairn_err
host_count(cairn_plugin *self, cairn_err rv)
{
    if (rv != CAIRN_OK) {
        atomic_fetch_add(&self->errors, 1);
    }
    return rv;
}

static cairn_err
host_publish_env(cairn_plugin *self, const cairn_envelope *env)
{
    if (atomic_load(&self->stopping)) {
        return CAIRN_ECLOSED;
    }
    cairn_err rv = cd_publish(self->rt, env, NULL);
    if (rv == CAIRN_OK) {
        atomic_fetch_add(&self->published, 1);
    }
    return host_count(self, rv);
}

static void
host_fill(cairn_envelope *env, const char *topic, const void *payload,
          size_t len, const cairn_pub_opts *opts)
{
    cairn_envelope_init(env);
    env->topic       = cairn_str_c(topic);
    env->payload.ptr = payload;
    env->payload.len = len;
    if (opts == NULL) {
        return;
    }
    if (opts->key != NULL) {
        env->key = cairn_str_c(opts->key);
        env->flags |= CAIRN_ENV_HAS_KEY;
    }
    if (opts->ctype != NULL) {
        env->ctype = cairn_str_c(opts->ctype);
        env->flags |= CAIRN_ENV_HAS_CTYPE;
    }
    if (opts->corr != NULL) {
        memcpy(env->corr, opts->corr, CAIRN_ID_LEN);
        env->flags |= CAIRN_ENV_HAS_CORR;
    }
}

static cairn_err
host_publish(cairn_plugin *self, const char *topic, const void *payload,
             size_t len, const cairn_pub_opts *opts)
{
    cairn_envelope env;
    if (topic == NULL || (payload == NULL && len > 0)) {
        return host_count(self, CAIRN_EINVAL);
    }
    host_fill(&env, topic, payload, len, opts);
    return host_publish_env(self, &env);
}

static void
host_deliver(void *arg, const cairn_envelope *env)
{
    cd_handle *h = arg;
    atomic_fetch_add(&h->owner->delivered, 1);
    h->fn(h->arg, env);
}

static cairn_err
host_handle_new(cairn_plugin *self, cairn_msg_fn fn, void *arg,
                cd_handle **hp)
{
    if (atomic_load(&self->stopping)) {
        return CAIRN_ECLOSED;
    }
    cd_handle *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return CAIRN_ENOMEM;
    }
    h->owner = self;
    h->fn    = fn;
    h->arg   = arg;
    *hp      = h;
    return CAIRN_OK;
}

static void
host_handle_link(cd_handle *h)
{
    pthread_mutex_lock(&h->owner->lock);
    h->next          = h->owner->handles;
    h->owner->handles = h;
    pthread_mutex_unlock(&h->owner->lock);
}

static cairn_err
host_subscribe_kind(cairn_plugin *self, const char *name, bool queue,
                    cairn_msg_fn fn, void *arg, cairn_sub **subp)
{
    cd_handle *h;
    cairn_err  rv;
    if (name == NULL || fn == NULL || subp == NULL) {
        return host_count(self, CAIRN_EINVAL);
    }
    if ((rv = host_handle_new(self, fn, arg, &h)) != CAIRN_OK) {
        return host_count(self, rv);
    }
    if (queue) {
        rv = cairni_bus_queue_consume(self->rt->bus, name, self->cfg->name,
                                      host_deliver, h, &h->sub);
    } else {
        rv = cairni_bus_subscribe(self->rt->bus, name, self->cfg->name,
                                  host_deliver, h, &h->sub);
    }
    if (rv != CAIRN_OK) {
        free(h);
        return host_count(self, rv);
    }
    host_handle_link(h);
    *subp = (cairn_sub *)h;
    return CAIRN_OK;
}

static cairn_err
host_subscribe(cairn_plugin *self, const char *filter, cairn_msg_fn fn,
               void *arg, cairn_sub **subp)
{
    return host_subscribe_kind(self, filter, false, fn, arg, subp);
}

static cairn_err
host_queue_consume(cairn_plugin *self, const char *queue, cairn_msg_fn fn,
                   void *arg, cairn_sub **subp)
{
    return host_subscribe_kind(self, queue, true, fn, arg, subp);
}

/* Unlinks h from its owner; false if it was not linked (already gone). */
static bool
host_handle_unlink(cd_handle *h)
{
    bool found = false;
    pthread_mutex_lock(&h->owner->lock);
    for (cd_handle **pp = &h->owner->handles; *pp != NULL;
         pp             = &(*pp)->next) {
        if (*pp == h) {
            *pp   = h->next;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&h->owner->lock);
    return found;
}

static void
host_handle_release(cd_handle *h)
{
    if (h->sub != NULL) {
        cairni_bus_unsubscribe(h->sub);
    }
    if (h->svc != NULL) {
        cairni_bus_unserve(h->svc);
    }
    free(h);
}

static void
host_unsubscribe(cairn_sub *sub)
{
    cd_handle *h = (cd_handle *)sub;
    if (h != NULL && host_handle_unlink(h)) {
        host_handle_release(h);
    }
}

void
cd_host_release_all(cairn_plugin *p)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        cd_handle *h = p->handles;
        if (h != NULL) {
            p->handles = h->next;
        }
        pthread_mutex_unlock(&p->lock);
        if (h == NULL) {
            return;
        }
        host_handle_release(h);
    }
}

static cairn_err
host_queue_push(cairn_plugin *self, const char *queue, const void *payload,
                size_t len, uint32_t timeout_ms)
{
    cairn_envelope env;
    if (queue == NULL || (payload == NULL && len > 0)) {
        return host_count(self, CAIRN_EINVAL);
    }
    host_fill(&env, queue, payload, len, NULL);
    cairn_err rv =
        cairni_bus_queue_push(self->rt->bus, queue, &env, timeout_ms);
    if (rv == CAIRN_OK) {
        atomic_fetch_add(&self->published, 1);
    }
    return host_count(self, rv);
}

static cairn_err
host_serve_call(void *arg, const cairn_envelope *req, cairn_out *out)
{
    cd_handle     *h  = arg;
    cairn_serve_fn fn = (cairn_serve_fn)(void (*)(void))h->fn;
    atomic_fetch_add(&h->owner->calls, 1);
    cairn_err rv = fn(h->arg, req, out);
    if (rv != CAIRN_OK) {
        atomic_fetch_add(&h->owner->errors, 1);
    }
    return rv;
}

static cairn_err
host_serve(cairn_plugin *self, const char *service, cairn_serve_fn fn,
           void *arg, cairn_svc **svcp)
{
    cd_handle *h;
    cairn_err  rv;
    if (service == NULL || fn == NULL) {
        return host_count(self, CAIRN_EINVAL);
    }
    /* The handle keeps the serve function in its generic slot. */
    rv = host_handle_new(self, (cairn_msg_fn)(void (*)(void))fn, arg, &h);
    if (rv != CAIRN_OK) {
        return host_count(self, rv);
    }
    rv = cairni_bus_serve(self->rt->bus, service, self->cfg->name,
                          host_serve_call, h, &h->svc);
    if (rv != CAIRN_OK) {
        free(h);
        return host_count(self, rv);
    }
    host_handle_link(h);
    if (svcp != NULL) {
        *svcp = (cairn_svc *)h;
    }
    return CAIRN_OK;
}

static void
host_unserve(cairn_svc *svc)
{
    host_unsubscribe((cairn_sub *)svc);
}

static cairn_err
host_call(cairn_plugin *self, const char *service, const void *req,
          size_t len, uint32_t timeout_ms, cairn_reply *reply)
{
    cairn_envelope env;
    if (service == NULL || reply == NULL || (req == NULL && len > 0)) {
        return host_count(self, CAIRN_EINVAL);
    }
    host_fill(&env, service, req, len, NULL);
    return host_count(self, cairni_bus_call(self->rt->bus, service, &env,
                                            timeout_ms, reply));
}

static cairn_err
host_out_append(cairn_out *out, const void *data, size_t len)
{
    return cairni_out_append(out, data, len);
}

static void
host_reply_fini(cairn_reply *reply)
{
    cairni_reply_fini(reply);
}

/* call_async: done goes straight to the bus, which calls it once. */
static cairn_err
host_call_async(cairn_plugin *self, const char *service, const void *req,
                size_t len, uint32_t timeout_ms,
                void (*done)(void *arg, cairn_err rv, cairn_reply *reply),
                void *arg)
{
    cairn_envelope env;
    if (service == NULL || done == NULL || (req == NULL && len > 0)) {
        return host_count(self, CAIRN_EINVAL);
    }
    host_fill(&env, service, req, len, NULL);
    return host_count(self, cairni_bus_call_async(self->rt->bus, service,
                                                  &env, timeout_ms, done,
                                                  arg));
}

static void
host_count_error(cairn_plugin *self)
{
    atomic_fetch_add(&self->errors, 1);
}

static void
host_record_fini(cairn_record *rec)
{
    cairni_record_fini(rec);
}

static cairn_err
host_kv_get(cairn_txn *txn, const char *key, void **val, size_t *len)
{
    return cairni_kv_get(txn, key, val, len);
}

static cairn_err
host_kv_put(cairn_txn *txn, const char *key, const void *val, size_t len)
{
    return cairni_kv_put(txn, key, val, len);
}

static cairn_err
host_kv_del(cairn_txn *txn, const char *key)
{
    return cairni_kv_del(txn, key);
}

static void
host_free(void *ptr)
{
    free(ptr);
}

static cairn_err
host_route_durable(cairn_plugin *self, const char *filter, int priority)
{
    if (filter == NULL || (priority != 0 && priority != 1)) {
        return host_count(self, CAIRN_EINVAL);
    }
    return host_count(self, cd_route_add(self->rt, filter, self->cfg->name,
                                         priority));
}

static void
host_status(cairn_plugin *self, const char *fmt, ...)
{
    char    text[sizeof(self->status)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&self->rt->lock);
    memcpy(self->status, text, sizeof(text));
    pthread_mutex_unlock(&self->rt->lock);
}

static bool
host_metric_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 48) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

/* The slot of metric name, created on first use; NULL when invalid or
 * the plugin has CD_MAX_METRICS already. */
static cd_metric *
host_metric(cairn_plugin *self, const char *name, bool gauge)
{
    cd_metric *m = NULL;
    if (name == NULL || !host_metric_name_ok(name)) {
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    if (self->metrics == NULL) {
        self->metrics = calloc(CD_MAX_METRICS, sizeof(cd_metric));
    }
    for (size_t i = 0; self->metrics != NULL && i < CD_MAX_METRICS; i++) {
        cd_metric *c = &self->metrics[i];
        if (c->name[0] == '\0') {
            snprintf(c->name, sizeof(c->name), "%s", name);
            c->gauge = gauge;
            m        = c;
            break;
        }
        if (strcmp(c->name, name) == 0) {
            m = c->gauge == gauge ? c : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return m;
}

static void
host_gauge_set(cairn_plugin *self, const char *name, double value)
{
    cd_metric *m = host_metric(self, name, true);
    uint64_t   bits;
    memcpy(&bits, &value, sizeof(bits));
    if (m != NULL) {
        atomic_store(&m->value, bits);
    }
}

static void
host_counter_add(cairn_plugin *self, const char *name, uint64_t delta)
{
    cd_metric *m = host_metric(self, name, false);
    if (m != NULL) {
        atomic_fetch_add(&m->value, delta);
    }
}


/* ---- ABI 1.2: health and metrics ---------------------------------------- */

static void
host_plugin_metrics(cd_runtime *rt, cairni_buf *out)
{
    static const char *const names[] = {"published", "delivered", "errors",
                                        "calls"};
    for (int k = 0; k < 4; k++) {
        cairni_buf_printf(out, "# TYPE cairn_plugin_%s_total counter\n",
                          names[k]);
        for (size_t i = 0; i < rt->nplugins; i++) {
            const cairn_plugin *p    = &rt->plugins[i];
            const _Atomic uint64_t *v[] = {&p->published, &p->delivered,
                                           &p->errors, &p->calls};
            cairni_buf_printf(out, "cairn_plugin_%s_total{plugin=\"",
                              names[k]);
            cairni_prom_escape(out, p->cfg->name, strlen(p->cfg->name));
            cairni_buf_printf(out, "\"} %llu\n",
                              (unsigned long long)atomic_load(v[k]));
        }
    }
    cairni_buf_printf(out, "# TYPE cairn_plugin_up gauge\n");
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->nplugins; i++) {
        cairni_buf_printf(out, "cairn_plugin_up{plugin=\"");
        cairni_prom_escape(out, rt->plugins[i].cfg->name,
                           strlen(rt->plugins[i].cfg->name));
        cairni_buf_printf(out, "\"} %d\n", rt->plugins[i].st == CD_STARTED);
    }
    pthread_mutex_unlock(&rt->lock);
}

/* The plugins' own metrics: cairn_<name>{plugin="..."}.  The metrics
 * array only grows, and a slot's name is written once before it is
 * visible, so reading without the plugin's lock is safe once the slot
 * pointer is seen under it. */
static void
host_own_metrics(cd_runtime *rt, cairni_buf *out)
{
    for (size_t i = 0; i < rt->nplugins; i++) {
        cairn_plugin *p = &rt->plugins[i];
        pthread_mutex_lock(&p->lock);
        for (size_t k = 0; p->metrics != NULL && k < CD_MAX_METRICS; k++) {
            cd_metric *m = &p->metrics[k];
            if (m->name[0] == '\0') {
                break;
            }
            uint64_t bits = atomic_load(&m->value);
            double   d;
            memcpy(&d, &bits, sizeof(d));
            cairni_buf_printf(out, "cairn_%s{plugin=\"", m->name);
            cairni_prom_escape(out, p->cfg->name, strlen(p->cfg->name));
            if (m->gauge) {
                cairni_buf_printf(out, "\"} %.17g\n", d);
            } else {
                cairni_buf_printf(out, "\"} %llu\n", (unsigned long long)bits);
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
}

void
cd_metrics_render(cd_runtime *rt, cairni_buf *out)
{
    cairni_buf_printf(out,
                      "# TYPE cairn_uptime_seconds gauge\n"
                      "cairn_uptime_seconds %llu\n",
                      (unsigned long long)((cairni_mono_ms() - rt->started_ms) /
                                           1000));
    host_plugin_metrics(rt, out);
    host_own_metrics(rt, out);
    cairni_metrics_render(rt->metrics, out);
    cairni_bus_render_metrics(rt->bus, out);
    cairni_store_render_metrics(rt->store, out);
}

bool
cd_ready(cd_runtime *rt, char *why, size_t len)
{
    char text[160] = "";
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->nplugins && text[0] == '\0'; i++) {
        const cairn_plugin *p = &rt->plugins[i];
        if (p->st != CD_STARTED) {
            snprintf(text, sizeof(text), "plugin %.64s is %s", p->cfg->name,
                     cd_state_name(p->st));
        } else if (atomic_load(&p->link) == 2) {
            snprintf(text, sizeof(text), "plugin %.64s: link down",
                     p->cfg->name);
        }
    }
    pthread_mutex_unlock(&rt->lock);
    if (why != NULL && len > 0) {
        snprintf(why, len, "%s", text);
    }
    return text[0] == '\0';
}

static cairn_err
host_metrics_text(cairn_plugin *self, char **text, size_t *len)
{
    cairni_buf out = {0};
    if (text == NULL || len == NULL) {
        return CAIRN_EINVAL;
    }
    cd_metrics_render(self->rt, &out);
    if (out.data == NULL) {
        (void)cairni_buf_append(&out, "", 0);
    }
    if (out.failed || out.data == NULL) {
        cairni_buf_fini(&out);
        return CAIRN_ENOMEM;
    }
    *text = out.data; /* malloc'ed, NUL-terminated: host->free releases it */
    *len  = out.len;
    return CAIRN_OK;
}

static bool
host_ready(cairn_plugin *self, char *why, size_t len)
{
    return cd_ready(self->rt, why, len);
}

static void
host_link_state(cairn_plugin *self, bool up)
{
    atomic_store(&self->link, up ? 1 : 2);
}

/*
 * kv_txn: the plugin's key-value state outside an inbox handler.  It runs
 * on the connection of the plugin's drainer (opened here on first use,
 * as inbox_consume does, and closed at stop after every thread of the
 * plugin ended), so it is serialized with the plugin's inbox handler.
 * fn's own verdict is not counted as an error: declining is how it asks
 * for a rollback.
 */
static cairn_err
host_kv_txn(cairn_plugin *self, cairn_err (*fn)(cairn_txn *txn, void *arg),
            void *arg)
{
    cairn_err     rv = CAIRN_OK;
    cairni_drain *d;
    if (fn == NULL) {
        return host_count(self, CAIRN_EINVAL);
    }
    if (self->rt->store == NULL) {
        return host_count(self, CAIRN_ENOTSUP);
    }
    pthread_mutex_lock(&self->lock);
    if (self->drain == NULL) {
        rv = cairni_drain_open(self->rt->store, self->cfg->name, &self->drain);
    }
    d = self->drain;
    pthread_mutex_unlock(&self->lock);
    if (rv != CAIRN_OK) {
        return host_count(self, rv);
    }
    return cairni_kv_txn(d, self->cfg->name, fn, arg);
}

/* publish_once: a redelivery (CAIRN_EEXIST) is not an error. */
static cairn_err
host_publish_once(cairn_plugin *self, const cairn_envelope *env)
{
    if (env == NULL) {
        return host_count(self, CAIRN_EINVAL);
    }
    if (atomic_load(&self->stopping)) {
        return CAIRN_ECLOSED;
    }
    cairn_err rv = cd_publish_once(self->rt, self->cfg->name, env);
    if (rv == CAIRN_OK) {
        atomic_fetch_add(&self->published, 1);
    }
    return rv == CAIRN_EEXIST ? rv : host_count(self, rv);
}

const cairn_host cd_host = {
    .abi_version   = CAIRN_ABI_VERSION,
    .size          = sizeof(cairn_host),
    .log           = host_log,
    .name          = host_name,
    .runtime_name  = host_runtime_name,
    .sleep         = host_sleep,
    .publish       = host_publish,
    .publish_env   = host_publish_env,
    .subscribe     = host_subscribe,
    .unsubscribe   = host_unsubscribe,
    .queue_push    = host_queue_push,
    .queue_consume = host_queue_consume,
    .serve         = host_serve,
    .unserve       = host_unserve,
    .call          = host_call,
    .out_append    = host_out_append,
    .reply_fini    = host_reply_fini,
    .count_error   = host_count_error,
    .outbox_next   = cd_outbox_next,
    .outbox_ack    = cd_outbox_ack,
    .outbox_nack   = cd_outbox_nack,
    .outbox_reset  = cd_outbox_reset,
    .record_fini   = host_record_fini,
    .inbox_consume = cd_inbox_consume,
    .inbox_accept  = cd_inbox_accept,
    .kv_get        = host_kv_get,
    .kv_put        = host_kv_put,
    .kv_del        = host_kv_del,
    .free          = host_free,
    .route_durable = host_route_durable,
    .status        = host_status,
    .gauge_set     = host_gauge_set,
    .counter_add   = host_counter_add,
    .metrics_text  = host_metrics_text,
    .ready         = host_ready,
    .link_state    = host_link_state,
    .kv_txn        = host_kv_txn,
    .publish_once  = host_publish_once,
    .call_async    = host_call_async,
};
