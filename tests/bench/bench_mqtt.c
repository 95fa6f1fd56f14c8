/*
 * bench_mqtt.c - the mqtt-bridge against raw libmosquitto, measured in the
 * same run against a local mosquitto this program starts (loopback, its
 * own config, no persistence, receive maximum 100).
 *
 *   drain_qos1  N messages of 200 B wait in the outbox (the real store,
 *               sync normal); the mqtt-bridge plugin (dlopen'ed, driven
 *               through a host table of this file backed by that store)
 *               connects and drains them at QoS 1, each acked in the store
 *               after its PUBACK.  Timed from start() to the last ack.
 *               Baseline: raw libmosquitto publishing the same N payloads
 *               at QoS 1, max inflight 100, network loop on its own thread
 *               (loop_start), timed from the first publish to the last
 *               PUBACK.  Prints both rates and the ratio (target >= 0.8).
 *               The bridge runs with its defaults (max_inflight 50 under
 *               the runtime's store.window 100): half the window in
 *               flight, half ready to go.
 *   drain_qos0  the same backlog at QoS 0 (acked once written).
 *   online      the bridge connected and idle; four producer threads
 *               commit N messages to the outbox one by one (group commit)
 *               while it drains; timed from the first commit to the last
 *               ack: what reaches the broker per second when the link is up.
 *
 * One JSON line per benchmark.  Every wait is bounded.  Usage: bench_mqtt
 * [--quick] [-n N] [-w WINDOW] [-i INFLIGHT] (also CAIRN_BENCH_QUICK=1):
 * --quick runs 20k messages and one round, for CTest; otherwise 100k and
 * the best of three rounds.  WINDOW is the outbox's store.window, INFLIGHT
 * the bridge's max_inflight; the defaults are the shipped ones (100 and
 * 50).  The raw client always has max inflight 100.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "cairni.h"
#include "store.h"

#define PAYLOAD 200
#define INFLIGHT 100
#define WAIT_MS 120000
#define PRODUCERS 4

/* The outbox's store.window and the bridge's max_inflight: the defaults
 * of the runtime (100) and of the bridge (50) unless -w, -i say else. */
static uint32_t bench_window = 100;
static uint32_t bench_inflight = 50;

static void
die(const char *what)
{
    fprintf(stderr, "bench_mqtt: %s\n", what);
    exit(1);
}

/* ---- the host table ----------------------------------------------------- */

struct cairn_plugin {
    cairni_drain   *drain;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint64_t        acked, want, errors;
    bool            connected;
    atomic_bool     stopping;
};

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
    if (strcmp(name, "mqtt_connected") == 0) {
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

static cairn_err
h_subscribe(cairn_plugin *p, const char *f, cairn_msg_fn fn, void *arg,
            cairn_sub **s)
{
    return CAIRN_ENOTSUP;
}

static const cairn_host bench_host = {
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
};

/* ---- the broker --------------------------------------------------------- */

typedef struct broker {
    pid_t pid;
    int   port;
    char  dir[256];
} broker;

static bool
broker_up(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    int                fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void
broker_conf(broker *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        die("cannot write the broker config");
    }
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nmax_inflight_messages %d\n"
            "max_queued_messages 0\nlog_type error\n%s",
            b->port, INFLIGHT, getuid() == 0 ? "user root\n" : "");
    fclose(f);
}

static void
broker_start(broker *b)
{
    const char *exe = access("/usr/sbin/mosquitto", X_OK) == 0
                          ? "/usr/sbin/mosquitto"
                          : "mosquitto";
    char        conf[300];
    snprintf(b->dir, sizeof(b->dir), "%s/bench-mqtt-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(b->dir) == NULL) {
        die("mkdtemp");
    }
    snprintf(conf, sizeof(conf), "%s/m.conf", b->dir);
    for (int tries = 0; tries < 20; tries++) {
        b->port = 20000 + (int)((unsigned)rand() % 30000);
        broker_conf(b, conf);
        if ((b->pid = fork()) == 0) {
            /* Dies with the benchmark, even one killed by a timeout. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            freopen("/dev/null", "w", stderr);
            execlp(exe, exe, "-c", conf, (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 200 && waitpid(b->pid, NULL, WNOHANG) == 0; i++) {
            if (broker_up(b->port)) {
                return;
            }
            usleep(10000);
        }
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
    }
    die("cannot start mosquitto (is it installed?)");
}

static void
broker_stop(broker *b)
{
    char path[300];
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
    snprintf(path, sizeof(path), "%s/m.conf", b->dir);
    unlink(path);
    rmdir(b->dir);
}

/* ---- raw libmosquitto --------------------------------------------------- */

typedef struct raw {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint64_t        acked;
    bool            up;
} raw;

static void
raw_on_connect(struct mosquitto *m, void *arg, int rc)
{
    raw *r = arg;
    pthread_mutex_lock(&r->mu);
    r->up = rc == 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void
raw_on_publish(struct mosquitto *m, void *arg, int mid)
{
    raw *r = arg;
    pthread_mutex_lock(&r->mu);
    r->acked++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until *v reaches want (or the flag is set); false on timeout. */
static bool
wait_u64(pthread_mutex_t *mu, pthread_cond_t *cv, const uint64_t *v,
         uint64_t want)
{
    uint64_t end = cairni_mono_ms() + WAIT_MS;
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

static double
bench_raw(int port, uint64_t n, int qos)
{
    raw r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    uint8_t payload[PAYLOAD];
    char    topic[32];
    memset(payload, 'r', sizeof(payload));
    struct mosquitto *m = mosquitto_new("bench-raw", true, &r);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, INFLIGHT);
    mosquitto_connect_callback_set(m, raw_on_connect);
    mosquitto_publish_callback_set(m, raw_on_publish);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        die("raw: cannot connect");
    }
    bool up = false;
    for (int i = 0; i < 5000 && !up; i++) {
        usleep(1000);
        pthread_mutex_lock(&r.mu);
        up = r.up;
        pthread_mutex_unlock(&r.mu);
    }
    if (!up) {
        die("raw: no CONNACK");
    }
    uint64_t t0 = cairni_mono_us();
    for (uint64_t i = 0; i < n; i++) {
        snprintf(topic, sizeof(topic), "bench/k%llu",
                 (unsigned long long)(i % 8));
        if (mosquitto_publish(m, NULL, topic, PAYLOAD, payload, qos, false) !=
            MOSQ_ERR_SUCCESS) {
            die("raw: publish failed");
        }
    }
    if (!wait_u64(&r.mu, &r.cv, &r.acked, n)) {
        die("raw: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    return (double)n / secs;
}

/* ---- the bridge
 * -------------------------------------------------------------- */

typedef struct rig {
    char                     dir[256];
    cairni_store            *store;
    const cairn_plugin_desc *desc;
    void                    *dl;
    struct cairn_plugin      self;
    void                    *cfg;
    cairni_arena             arena;
    void                    *state;
    pthread_t                run;
} rig;

static void
rig_store(rig *g, uint32_t window)
{
    char err[256], path[320];
    snprintf(g->dir, sizeof(g->dir), "%s/bench-store-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g->dir) == NULL) {
        die("mkdtemp");
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
        die(err);
    }
}

/* n envelopes of PAYLOAD bytes on bench/k<i % 8>, committed 1000 at a time. */
static void
rig_fill(rig *g, uint64_t n)
{
    static uint8_t payload[PAYLOAD];
    static char    topics[8][16];
    cairn_envelope envs[1000];
    memset(payload, 'b', sizeof(payload));
    for (uint64_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < 1000 && i < n; k++, i++) {
            snprintf(topics[i % 8], sizeof(topics[0]), "bench/k%llu",
                     (unsigned long long)(i % 8));
            cairn_envelope_init(&envs[k]);
            envs[k].topic = cairn_str_c(topics[i % 8]);
            envs[k].payload.ptr = payload;
            envs[k].payload.len = PAYLOAD;
            envs[k].ts = cairn_now_ms();
            cairn_id_new(envs[k].id);
        }
        if (cairni_outbox_put_many(g->store, "bench", envs, k, 0) != CAIRN_OK) {
            die("outbox fill failed");
        }
    }
}

static void *
rig_run_main(void *arg)
{
    rig *g = arg;
    g->desc->run(g->state);
    return NULL;
}

static void
rig_plugin(rig *g, int port, int qos)
{
    char        yaml[512], err[256];
    cairni_doc *doc;
    snprintf(
        yaml, sizeof(yaml),
        "host: 127.0.0.1\nport: %d\nmax_inflight: %d\nstatus_topic: \"\"\n"
        "uplink:\n  - {filter: \"bench/#\", topic: \"bench/{2}\", qos: %d}\n",
        port, (int)bench_inflight, qos);
    g->dl = dlopen(BENCH_MQTT_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    cairn_plugin_entry_fn entry =
        g->dl ? (cairn_plugin_entry_fn)(uintptr_t)dlsym(g->dl,
                                                        CAIRN_PLUGIN_ENTRY_SYM)
              : NULL;
    if (entry == NULL) {
        die(dlerror());
    }
    g->desc = entry();
    g->cfg = calloc(1, g->desc->config_size);
    if (cairni_doc_parse_string("bench", yaml, strlen(yaml), &doc, err,
                                sizeof(err)) != CAIRN_OK ||
        cairni_cfg_fill(doc, doc->root, g->desc->config, g->cfg, &g->arena, err,
                        sizeof(err)) != CAIRN_OK) {
        die(err);
    }
    cairni_doc_free(doc);
    if (g->desc->init(&bench_host, &g->self, g->cfg, &g->state) != CAIRN_OK) {
        die("plugin init failed");
    }
}

static void
rig_start(rig *g)
{
    if (g->desc->start(g->state) != CAIRN_OK ||
        pthread_create(&g->run, NULL, rig_run_main, g) != 0) {
        die("plugin start failed");
    }
}

static void
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
}

static void
rig_init(rig *g, uint64_t n)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->self.mu, NULL);
    pthread_cond_init(&g->self.cv, NULL);
    g->self.want = n;
}

/* A backlog of n, drained at qos: msgs/s from start() to the last ack. */
static double
bench_drain(int port, uint64_t n, int qos)
{
    rig g;
    rig_init(&g, n);
    rig_store(&g, bench_window);
    rig_fill(&g, n);
    rig_plugin(&g, port, qos);
    uint64_t t0 = cairni_mono_us();
    rig_start(&g);
    if (!wait_u64(&g.self.mu, &g.self.cv, &g.self.acked, n)) {
        die("drain: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    if (g.self.errors != 0) {
        die("drain: nacks");
    }
    rig_close(&g);
    return (double)n / secs;
}

typedef struct prod {
    rig     *g;
    uint64_t from, to;
} prod;

static void *
prod_main(void *arg)
{
    prod   *p = arg;
    uint8_t payload[PAYLOAD];
    char    topic[16];
    memset(payload, 'o', sizeof(payload));
    for (uint64_t i = p->from; i < p->to; i++) {
        cairn_envelope env;
        cairn_envelope_init(&env);
        snprintf(topic, sizeof(topic), "bench/k%llu",
                 (unsigned long long)(i % 8));
        env.topic = cairn_str_c(topic);
        env.payload.ptr = payload;
        env.payload.len = PAYLOAD;
        env.ts = cairn_now_ms();
        cairn_id_new(env.id);
        if (cairni_outbox_put(p->g->store, "bench", &env, 0) != CAIRN_OK) {
            die("online: put failed");
        }
    }
    return NULL;
}

/* Connected first; then PRODUCERS threads commit n messages while the
 * bridge drains.  msgs/s from the first commit to the last ack. */
static double
bench_online(int port, uint64_t n)
{
    rig       g;
    prod      p[PRODUCERS];
    pthread_t t[PRODUCERS];
    rig_init(&g, n);
    rig_store(&g, bench_window);
    rig_plugin(&g, port, 1);
    rig_start(&g);
    bool up = false;
    for (int i = 0; i < 5000 && !up; i++) {
        usleep(1000);
        pthread_mutex_lock(&g.self.mu);
        up = g.self.connected;
        pthread_mutex_unlock(&g.self.mu);
    }
    uint64_t t0 = cairni_mono_us();
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (prod){&g, n * (uint64_t)i / PRODUCERS,
                      n * (uint64_t)(i + 1) / PRODUCERS};
        pthread_create(&t[i], NULL, prod_main, &p[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
    }
    if (!wait_u64(&g.self.mu, &g.self.cv, &g.self.acked, n)) {
        die("online: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    rig_close(&g);
    return (double)n / secs;
}

/* ---- main
 * ----------------------------------------------------------------------- */

static double
best(double a, double b)
{
    return a > b ? a : b;
}

int
main(int argc, char **argv)
{
    bool     quick = getenv("CAIRN_BENCH_QUICK") != NULL;
    uint64_t n = 0;
    double   raw1 = 0, drain1 = 0, raw0 = 0, drain0 = 0, online = 0;
    broker   b;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
            bench_inflight = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
            bench_window = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [-n N] [-w WINDOW] [-i INFLIGHT]\n",
                    argv[0]);
            return 2;
        }
    }
    n = n ? n : quick ? 20000 : 100000;
    int rounds = quick ? 1 : 3;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    broker_start(&b);
    for (int r = 0; r < rounds; r++) { /* alternate: noise hits both */
        raw1 = best(raw1, bench_raw(b.port, n, 1));
        drain1 = best(drain1, bench_drain(b.port, n, 1));
        raw0 = best(raw0, bench_raw(b.port, n, 0));
        drain0 = best(drain0, bench_drain(b.port, n, 0));
        online = best(online, bench_online(b.port, n));
    }
    broker_stop(&b);
    mosquitto_lib_cleanup();
    printf("drain: %llu msgs of %d B from the outbox to a local mosquitto, "
           "best of %d round(s)\n",
           (unsigned long long)n, PAYLOAD, rounds);
    printf("  QoS 1  bridge %10.0f msg/s   raw libmosquitto %10.0f msg/s   "
           "ratio %.2f (target >= 0.8)\n",
           drain1, raw1, drain1 / raw1);
    printf("  QoS 0  bridge %10.0f msg/s   raw libmosquitto %10.0f msg/s   "
           "ratio %.2f\n",
           drain0, raw0, drain0 / raw0);
    printf("online: %d producers committing while the bridge drains (QoS 1): "
           "%.0f msg/s\n",
           PRODUCERS, online);
    printf("{\"bench\":\"mqtt_drain_qos1\",\"n\":%llu,\"payload\":%d,"
           "\"window\":%u,\"inflight\":%u,\"bridge_msgs_s\":%.0f,"
           "\"raw_msgs_s\":%.0f,\"ratio\":%.3f}\n",
           (unsigned long long)n, PAYLOAD, bench_window, bench_inflight, drain1,
           raw1, drain1 / raw1);
    printf("{\"bench\":\"mqtt_drain_qos0\",\"n\":%llu,\"payload\":%d,"
           "\"bridge_msgs_s\":%.0f,\"raw_msgs_s\":%.0f,\"ratio\":%.3f}\n",
           (unsigned long long)n, PAYLOAD, drain0, raw0, drain0 / raw0);
    printf("{\"bench\":\"mqtt_online\",\"n\":%llu,\"payload\":%d,"
           "\"producers\":%d,\"msgs_s\":%.0f}\n",
           (unsigned long long)n, PAYLOAD, PRODUCERS, online);
    return 0;
}
