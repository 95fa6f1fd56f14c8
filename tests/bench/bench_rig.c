/*
 * bench_rig.c - the host table, plugin rig and waits the bridge
 * benchmarks share (see bench_rig.h).
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_rig.h"

const char *bench_prog = "bench";

void
bench_die(const char *what)
{
    fprintf(stderr, "%s: %s\n", bench_prog, what);
    exit(1);
}

/* ---- the host table ----------------------------------------------------- */

static void
h_log(cairn_plugin *p, cairn_log_level lv, const char *fmt, ...)
{
    va_list ap;
    if (lv > CAIRN_LOG_WARN) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *
h_name(cairn_plugin *p)
{
    return "bench";
}

static bool
h_sleep(cairn_plugin *p, uint32_t ms)
{
    for (uint32_t t = 0; t < ms && !atomic_load(&p->stopping); t += 10) {
        uint32_t        step = ms - t < 10 ? ms - t : 10;
        struct timespec ts = {0, (long)step * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return !atomic_load(&p->stopping);
}

static cairn_err
h_next(cairn_plugin *p, cairn_record *r, size_t max, uint32_t wait_ms,
       size_t *n)
{
    *n = 0;
    if (atomic_load(&p->stopping)) {
        return CAIRN_ECLOSED;
    }
    return cairni_drain_next(p->drain, r, max, wait_ms, n);
}

static cairn_err
h_ack(cairn_plugin *p, uint64_t seq)
{
    cairn_err rv = cairni_drain_ack(p->drain, seq);
    pthread_mutex_lock(&p->mu);
    if (++p->acked >= p->want) {
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rv;
}

static cairn_err
h_nack(cairn_plugin *p, uint64_t seq, bool permanent, const char *error)
{
    pthread_mutex_lock(&p->mu);
    p->errors++;
    pthread_mutex_unlock(&p->mu);
    return cairni_drain_nack(p->drain, seq, permanent, error);
}

static void
h_reset(cairn_plugin *p)
{
    cairni_drain_reset(p->drain);
}

static void
h_record_fini(cairn_record *r)
{
    cairni_record_fini(r);
}

static cairn_err
h_route(cairn_plugin *p, const char *filter, int prio)
{
    return CAIRN_OK; /* the benchmark fills the outbox itself */
}

static void
h_status(cairn_plugin *p, const char *fmt, ...)
{
}

static void
h_gauge(cairn_plugin *p, const char *name, double v)
{
    if (p->connected_gauge != NULL && strcmp(name, p->connected_gauge) == 0) {
        pthread_mutex_lock(&p->mu);
        p->connected = v > 0.5;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void
h_counter(cairn_plugin *p, const char *name, uint64_t d)
{
}

static void
h_link_state(cairn_plugin *p, bool up)
{
}

static cairn_err
h_subscribe(cairn_plugin *p, const char *f, cairn_msg_fn fn, void *arg,
            cairn_sub **s)
{
    return CAIRN_ENOTSUP;
}

const cairn_host bench_host = {
    .abi_version = CAIRN_ABI_VERSION,
    .size = sizeof(cairn_host),
    .log = h_log,
    .name = h_name,
    .runtime_name = h_name,
    .sleep = h_sleep,
    .subscribe = h_subscribe,
    .outbox_next = h_next,
    .outbox_ack = h_ack,
    .outbox_nack = h_nack,
    .outbox_reset = h_reset,
    .record_fini = h_record_fini,
    .free = free,
    .route_durable = h_route,
    .status = h_status,
    .gauge_set = h_gauge,
    .counter_add = h_counter,
    .link_state = h_link_state,
};

/* ---- the rig ------------------------------------------------------------ */

void
rig_init(rig *g, uint64_t want)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->self.mu, NULL);
    pthread_cond_init(&g->self.cv, NULL);
    g->self.want = want;
}

void
rig_store(rig *g, uint32_t window)
{
    char err[256], path[320];
    snprintf(g->dir, sizeof(g->dir), "%s/bench-store-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g->dir) == NULL) {
        bench_die("mkdtemp");
    }
    snprintf(path, sizeof(path), "%s/cairn.db", g->dir);
    cairni_store_opts o = {
        .path = path,
        .sync = CAIRNI_SYNC_NORMAL,
        .retry = {.initial_ms = 100, .max_ms = 1000, .multiplier = 2},
        .inbox_window_ms = 3600000,
        .dest_default = {.name = "",
                         .max_bytes = 1ull << 30,
                         .max_messages = 10000000,
                         .window = window},
    };
    if (cairni_store_open(&g->store, &o, err, sizeof(err)) != CAIRN_OK ||
        cairni_drain_open(g->store, "bench", &g->self.drain) != CAIRN_OK) {
        bench_die(err);
    }
}

void
rig_fill(rig *g, uint64_t n)
{
    static uint8_t        payload[BENCH_PAYLOAD];
    static char           topics[8][16];
    static cairn_envelope envs[1000];
    memset(payload, 'b', sizeof(payload));
    for (int k = 0; k < 8; k++) {
        snprintf(topics[k], sizeof(topics[k]), "bench/k%d", k);
    }
    for (uint64_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < 1000 && i < n; k++, i++) {
            cairn_envelope_init(&envs[k]);
            envs[k].topic = cairn_str_c(topics[i % 8]);
            envs[k].payload.ptr = payload;
            envs[k].payload.len = BENCH_PAYLOAD;
            envs[k].ts = cairn_now_ms();
            cairn_id_new(envs[k].id);
        }
        if (cairni_outbox_put_many(g->store, "bench", envs, k, 0) != CAIRN_OK) {
            bench_die("outbox fill failed");
        }
    }
}

void
rig_plugin(rig *g, const char *path, const char *yaml)
{
    char        err[256];
    cairni_doc *doc;
    g->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cairn_plugin_entry_fn entry =
        g->dl ? (cairn_plugin_entry_fn)(uintptr_t)dlsym(g->dl,
                                                        CAIRN_PLUGIN_ENTRY_SYM)
              : NULL;
    if (entry == NULL) {
        bench_die(dlerror());
    }
    g->desc = entry();
    g->cfg = calloc(1, g->desc->config_size);
    if (cairni_doc_parse_string("bench", yaml, strlen(yaml), &doc, err,
                                sizeof(err)) != CAIRN_OK ||
        cairni_cfg_fill(doc, doc->root, g->desc->config, g->cfg, &g->arena, err,
                        sizeof(err)) != CAIRN_OK) {
        bench_die(err);
    }
    cairni_doc_free(doc);
    if (g->desc->init(&bench_host, &g->self, g->cfg, &g->state) != CAIRN_OK) {
        bench_die("plugin init failed");
    }
}

static void *
rig_run_main(void *arg)
{
    rig *g = arg;
    g->desc->run(g->state);
    return NULL;
}

void
rig_start(rig *g)
{
    if (g->desc->start(g->state) != CAIRN_OK ||
        pthread_create(&g->run, NULL, rig_run_main, g) != 0) {
        bench_die("plugin start failed");
    }
}

void
rig_close(rig *g)
{
    char path[400];
    atomic_store(&g->self.stopping, true);
    g->desc->stop(g->state);
    pthread_join(g->run, NULL);
    g->desc->fini(g->state);
    cairni_drain_close(g->self.drain);
    cairni_store_close(g->store);
    cairni_arena_fini(&g->arena);
    free(g->cfg);
    dlclose(g->dl);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/cairn.db%s", g->dir, sfx[i]);
        unlink(path);
    }
    rmdir(g->dir);
    pthread_cond_destroy(&g->self.cv);
    pthread_mutex_destroy(&g->self.mu);
}

bool
bench_wait_u64(pthread_mutex_t *mu, pthread_cond_t *cv, const uint64_t *v,
               uint64_t want, uint64_t wait_ms)
{
    uint64_t end = cairni_mono_ms() + wait_ms;
    pthread_mutex_lock(mu);
    while (*v < want && cairni_mono_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(cv, mu, &ts);
    }
    bool ok = *v >= want;
    pthread_mutex_unlock(mu);
    return ok;
}
