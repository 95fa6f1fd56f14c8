/*
 * runtime.c - plugin instances from load to fini.
 *
 * Order: every plugin is loaded and its config validated first (that is
 * all --check does); then each is initialized in config order; then each
 * is started in config order, with its run function on a thread of its
 * own; the admin endpoint opens last, so the CLI never sees a half-started
 * runtime.  Closing goes in reverse: admin, then per plugin (reverse
 * order) stopping flag, release of its subscriptions and services, stop,
 * join of the run thread; then fini of each, then the bus.
 *
 * A plugin marked optional that fails to load, init or start is logged,
 * left in FAILED, and the others carry on.  A required one stops the
 * daemon from starting at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cairnd.h"

const char *
cd_state_name(cd_state st)
{
    static const char *const names[] = {
        [CD_LOADED] = "loaded",   [CD_INITED] = "initialized",
        [CD_STARTED] = "running", [CD_STOPPED] = "stopped",
        [CD_FINISHED] = "finished", [CD_FAILED] = "failed",
    };
    return (unsigned)st < CAIRNI_ARRAY_LEN(names) ? names[st] : "?";
}

static void
rt_set_state(cairn_plugin *p, cd_state st)
{
    pthread_mutex_lock(&p->rt->lock);
    p->st = st;
    pthread_mutex_unlock(&p->rt->lock);
}

/* Records why p failed; returns rv so callers can pass it on. */
static cairn_err
rt_fail(cairn_plugin *p, cairn_err rv, const char *what)
{
    pthread_mutex_lock(&p->rt->lock);
    if (what != NULL) {
        snprintf(p->error, sizeof(p->error), "%s", what);
    }
    p->st = CD_FAILED;
    pthread_mutex_unlock(&p->rt->lock);
    cairni_log(p->cfg->optional ? CAIRN_LOG_WARN : CAIRN_LOG_ERROR,
               p->cfg->name, "%s%s", p->error,
               p->cfg->optional ? " (optional plugin: carrying on)" : "");
    return rv;
}

static cairn_err
rt_plugin_config(cairn_plugin *p, char *err, size_t errlen)
{
    const cairn_plugin_desc *d   = p->so.desc;
    const cairni_doc        *doc = p->rt->cfg->doc;
    if (d->config == NULL) {
        if (p->cfg->config != NULL && p->cfg->config->count > 0) {
            snprintf(err, errlen, "%s:%d: plugin '%s' takes no config",
                     doc->file, p->cfg->config->line, p->cfg->name);
            return CAIRN_ECONFIG;
        }
        return CAIRN_OK;
    }
    p->config = calloc(1, d->config_size);
    if (p->config == NULL) {
        snprintf(err, errlen, "%s: out of memory", p->cfg->name);
        return CAIRN_ENOMEM;
    }
    return cairni_cfg_fill(doc, p->cfg->config, d->config, p->config,
                           &p->arena, err, errlen);
}

static cairn_err
rt_plugin_load(cd_runtime *rt, cairn_plugin *p, bool check_only, char *err,
               size_t errlen)
{
    char      why[sizeof(p->error)];
    cairn_err rv = cd_so_open(p->cfg->path, rt->plugin_dir, &p->so, why,
                              sizeof(why));
    if (rv != CAIRN_OK) {
        snprintf(err, errlen, "plugin '%s': %s", p->cfg->name, why);
        rt_fail(p, rv, err);
        return p->cfg->optional ? CAIRN_OK : rv;
    }
    /* A config error is the user's to fix, optional plugin or not. */
    if ((rv = rt_plugin_config(p, why, sizeof(why))) != CAIRN_OK) {
        snprintf(err, errlen, "%s", why);
        rt_fail(p, rv, err);
        return rv;
    }
    if (!check_only) {
        cairni_log(CAIRN_LOG_INFO, p->cfg->name, "loaded %s (%s %s)",
                   p->so.path, p->so.desc->name,
                   p->so.desc->version ? p->so.desc->version : "");
    }
    return CAIRN_OK;
}

static cairn_err
rt_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int  n = snprintf(path, sizeof(path), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, errlen, "data_dir '%.200s' is empty or too long", dir);
        return CAIRN_EINVAL;
    }
    for (char *s = path + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s     = '\0';
            if (mkdir(path, 0750) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create data_dir %s: %s", path,
                         strerror(errno));
                return cairn_errno(errno);
            }
            *s = c;
            if (c == '\0') {
                return CAIRN_OK;
            }
        }
    }
}

static cairn_err
rt_open_core(cd_runtime *rt, char *err, size_t errlen)
{
    cairn_err rv = rt_mkdirs(rt->cfg->runtime.data_dir, err, errlen);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if ((rv = cairni_metrics_alloc(&rt->metrics)) != CAIRN_OK) {
        snprintf(err, errlen, "metrics: %s", cairn_strerror(rv));
        return rv;
    }
    cairni_bus_opts bo = {
        .sub_queue = (uint32_t)rt->cfg->runtime.sub_queue,
        .metrics   = rt->metrics,
        .calls     = &rt->cfg->calls,
    };
    if ((rv = cairni_bus_open(&rt->bus, &bo)) != CAIRN_OK) {
        snprintf(err, errlen, "bus: %s", cairn_strerror(rv));
        return rv;
    }
    return cd_durable_open(rt, err, errlen);
}

static void
rt_admin_url(cd_runtime *rt)
{
    const cairni_runtime_cfg *c = &rt->cfg->runtime;
    if (c->admin != NULL && c->admin[0] != '\0') {
        snprintf(rt->admin_url, sizeof(rt->admin_url), "%s", c->admin);
    } else {
        snprintf(rt->admin_url, sizeof(rt->admin_url), "ipc://%s/admin.sock",
                 c->data_dir);
    }
}

/* host_sleep waits against CLOCK_MONOTONIC: the condition must use it too,
 * or every timed wait returns at once and a sleeping plugin spins. */
static void
rt_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

cairn_err
cd_runtime_open(cd_runtime **rtp, cairni_config *cfg, const char *plugin_dir,
                bool check_only, char *err, size_t errlen)
{
    cairn_err   rv = CAIRN_ENOMEM;
    cd_runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        snprintf(err, errlen, "out of memory");
        return rv;
    }
    pthread_mutex_init(&rt->lock, NULL);
    rt->cfg        = cfg;
    rt->started_ms = cairni_mono_ms();
    rt->plugin_dir = plugin_dir;
    rt_admin_url(rt);
    if ((rv = cd_routes_init(rt)) != CAIRN_OK) {
        snprintf(err, errlen, "routes: %s", cairn_strerror(rv));
        goto fail;
    }
    rt->nplugins = cfg->plugins.count;
    rt->plugins  = calloc(rt->nplugins ? rt->nplugins : 1, sizeof(cairn_plugin));
    if (rt->plugins == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < rt->nplugins; i++) {
        cairn_plugin *p = &rt->plugins[i];
        p->rt           = rt;
        p->cfg          = &((const cairni_plugin_cfg *)cfg->plugins.items)[i];
        pthread_mutex_init(&p->lock, NULL);
        rt_cond_init(&p->cv);
    }
    for (size_t i = 0; i < rt->nplugins; i++) {
        rv = rt_plugin_load(rt, &rt->plugins[i], check_only, err, errlen);
        if (rv != CAIRN_OK) {
            goto fail;
        }
    }
    if (!check_only && (rv = rt_open_core(rt, err, errlen)) != CAIRN_OK) {
        goto fail;
    }
    *rtp = rt;
    return CAIRN_OK;
fail:
    cd_runtime_close(rt);
    return rv;
}

static void *
rt_run_main(void *arg)
{
    cairn_plugin *p = arg;
    p->so.desc->run(p->state);
    return NULL;
}

static cairn_err
rt_plugin_init(cairn_plugin *p)
{
    cairn_err rv = p->so.desc->init(&cd_host, p, p->config, &p->state);
    if (rv != CAIRN_OK) {
        char why[256];
        snprintf(why, sizeof(why), "init failed: %s", cairn_strerror(rv));
        cd_host_release_all(p);
        return rt_fail(p, rv, why);
    }
    p->inited = true;
    rt_set_state(p, CD_INITED);
    return CAIRN_OK;
}

static cairn_err
rt_plugin_start(cairn_plugin *p)
{
    char why[256];
    p->started   = true;
    cairn_err rv = p->so.desc->start(p->state);
    if (rv != CAIRN_OK) {
        snprintf(why, sizeof(why), "start failed: %s", cairn_strerror(rv));
        return rt_fail(p, rv, why);
    }
    if (p->so.desc->size >= offsetof(cairn_plugin_desc, run) + sizeof(void *) &&
        p->so.desc->run != NULL) {
        int e = pthread_create(&p->run_thread, NULL, rt_run_main, p);
        if (e != 0) {
            snprintf(why, sizeof(why), "cannot start run thread: %s",
                     strerror(e));
            return rt_fail(p, cairn_errno(e), why);
        }
        p->has_run_thread = true;
    }
    rt_set_state(p, CD_STARTED);
    cairni_log(CAIRN_LOG_INFO, p->cfg->name, "started");
    return CAIRN_OK;
}

cairn_err
cd_runtime_start(cd_runtime *rt, char *err, size_t errlen)
{
    cairn_err (*const steps[])(cairn_plugin *) = {rt_plugin_init,
                                                  rt_plugin_start};
    const cd_state need[] = {CD_LOADED, CD_INITED};
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < rt->nplugins; i++) {
            cairn_plugin *p = &rt->plugins[i];
            if (p->st != need[s]) {
                continue;
            }
            cairn_err rv = steps[s](p);
            if (rv != CAIRN_OK && !p->cfg->optional) {
                snprintf(err, errlen, "plugin '%s': %s", p->cfg->name,
                         p->error);
                return rv;
            }
        }
    }
    cairn_err rv = cd_admin_open(rt, rt->admin_url, &rt->admin);
    if (rv != CAIRN_OK) {
        snprintf(err, errlen, "admin endpoint %s: %s", rt->admin_url,
                 cairn_strerror(rv));
    }
    return rv;
}

static void
rt_plugin_stop(cairn_plugin *p)
{
    atomic_store(&p->stopping, true);
    cd_host_wake(p);
    /* No callback may run once stop returns: take them away first. */
    cd_host_release_all(p);
    cd_inbox_join(p);
    if (p->started) {
        p->so.desc->stop(p->state);
    }
    if (p->has_run_thread) {
        pthread_join(p->run_thread, NULL);
        p->has_run_thread = false;
    }
    cd_durable_stop(p);
    if (p->st != CD_FAILED) {
        rt_set_state(p, CD_STOPPED);
    }
    cairni_log(CAIRN_LOG_INFO, p->cfg->name, "stopped");
}

static void
rt_plugin_fini(cairn_plugin *p)
{
    if (p->inited) {
        p->so.desc->fini(p->state);
        p->inited = false;
        if (p->st != CD_FAILED) {
            rt_set_state(p, CD_FINISHED);
        }
    }
    cairni_arena_fini(&p->arena);
    free(p->metrics);
    free(p->config);
    p->config = NULL;
    cd_so_close(&p->so);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->lock);
}

void
cd_runtime_close(cd_runtime *rt)
{
    if (rt == NULL) {
        return;
    }
    if (rt->admin != NULL) {
        cd_admin_close(rt->admin);
        rt->admin = NULL;
    }
    for (size_t i = rt->nplugins; rt->plugins != NULL && i-- > 0;) {
        if (rt->plugins[i].inited) {
            rt_plugin_stop(&rt->plugins[i]);
        }
    }
    for (size_t i = rt->nplugins; rt->plugins != NULL && i-- > 0;) {
        rt_plugin_fini(&rt->plugins[i]);
    }
    if (rt->store != NULL) {
        cairni_store_close(rt->store);
    }
    if (rt->bus != NULL) {
        cairni_bus_close(rt->bus);
    }
    cairni_metrics_free(rt->metrics);
    cd_routes_fini(rt);
    free(rt->plugins);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}
