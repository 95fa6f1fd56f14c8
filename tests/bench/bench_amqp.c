/*
 * bench_amqp.c - the amqp-bridge against raw rabbitmq-c, measured in the
 * same run against a local RabbitMQ this program starts (Debian's
 * rabbitmq-server on loopback ports of its own, node name, data dir and
 * epmd under a temporary dir).
 *
 *   drain  N messages of 200 B wait in the outbox (the real store, sync
 *          normal); the amqp-bridge plugin (dlopen'ed, driven through a
 *          host table of this file backed by that store) connects and
 *          publishes them, persistent, to a durable queue with publisher
 *          confirms; each record is acked in the store after its
 *          basic.ack.  Timed from start() to the last ack.
 *          Baseline: raw rabbitmq-c publishing the same N payloads,
 *          persistent, to the same queue (purged in between) with
 *          confirms in batches of the bridge's window (publish a batch,
 *          wait for its confirms).  Prints both rates and the ratio
 *          (target >= 0.8).
 *
 * One JSON line.  Every wait is bounded.  Usage: bench_amqp [--quick]
 * [-n N] (or CAIRN_BENCH_AMQP_N=N): --quick runs 10k messages and one
 * round, for CTest; otherwise 100k and the best of three rounds.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "cairni.h"
#include "store.h"

#define PAYLOAD 200
#define WINDOW 100
#define WAIT_MS 300000
#define QUEUE "bench"

static void
die(const char *what)
{
    fprintf(stderr, "bench_amqp: %s\n", what);
    exit(1);
}

/* ---- the host table ----------------------------------------------------- */

struct cairn_plugin {
    cairni_drain   *drain;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint64_t        acked, want, errors;
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
}

static void
h_counter(cairn_plugin *p, const char *name, uint64_t d)
{
}

static const cairn_host bench_host = {
    .abi_version = CAIRN_ABI_VERSION,
    .size = sizeof(cairn_host),
    .log = h_log,
    .name = h_name,
    .runtime_name = h_name,
    .sleep = h_sleep,
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

static amqp_connection_state_t
amqp_open(int port)
{
    struct timeval          tv = {5, 0};
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t          *s = amqp_tcp_socket_new(c);
    if (s == NULL || amqp_socket_open_noblock(s, "127.0.0.1", port, &tv) != 0 ||
        amqp_login(c, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                   AMQP_SASL_METHOD_PLAIN, "guest", "guest")
                .reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_set_rpc_timeout(c, &tv);
    amqp_channel_open(c, 1);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static void
amqp_done(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void
broker_env(const broker *b)
{
    char v[512];
#define BENV(k, ...)                                                       \
    do {                                                                   \
        snprintf(v, sizeof(v), __VA_ARGS__);                               \
        setenv(k, v, 1);                                                   \
    } while (0)
    BENV("HOME", "%s", b->dir);
    BENV("RABBITMQ_MNESIA_BASE", "%s/mnesia", b->dir);
    BENV("RABBITMQ_LOG_BASE", "%s/log", b->dir);
    BENV("RABBITMQ_NODENAME", "bench%d@localhost", b->port);
    BENV("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1");
    BENV("RABBITMQ_NODE_PORT", "%d", b->port);
    BENV("RABBITMQ_DIST_PORT", "%d", b->port + 1);
    BENV("ERL_EPMD_PORT", "%d", b->port + 2);
    BENV("ERL_EPMD_ADDRESS", "127.0.0.1");
    BENV("RABBITMQ_PID_FILE", "%s/pid", b->dir);
    BENV("RABBITMQ_ENABLED_PLUGINS_FILE", "%s/enabled_plugins", b->dir);
    BENV("RABBITMQ_CONFIG_FILE", "%s/rabbitmq", b->dir);
    BENV("RABBITMQ_ADVANCED_CONFIG_FILE", "%s/advanced.config", b->dir);
    BENV("RABBITMQ_CONF_ENV_FILE", "%s/rabbitmq-env.conf", b->dir);
    BENV("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
         "-kernel inet_dist_use_interface {127,0,0,1}");
#undef BENV
}

static void
broker_file(const broker *b, const char *name, const char *text)
{
    char  path[320];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", b->dir, name);
    if ((f = fopen(path, "w")) == NULL) {
        die("broker config");
    }
    fputs(text, f);
    fclose(f);
}

static void
broker_start(broker *b)
{
    snprintf(b->dir, sizeof(b->dir), "%s/bench-rmq-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(b->dir) == NULL) {
        die("mkdtemp");
    }
    b->port = 30000 + rand() % 20000;
    broker_file(b, "enabled_plugins", "[].\n");
    broker_file(b, "rabbitmq.conf", "disk_free_limit.absolute = 10MB\n");
    if ((b->pid = fork()) == 0) {
        /* Dies with the benchmark, even one killed by a timeout. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        broker_env(b);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 900; i++) {
        amqp_connection_state_t c = amqp_open(b->port);
        if (c != NULL) {
            amqp_done(c);
            return;
        }
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            die("rabbitmq-server exited (installed? sh tests/install-deps.sh)");
        }
        usleep(100 * 1000);
    }
    die("rabbitmq-server did not start");
}

static void
broker_stop(broker *b)
{
    char  path[400], cmd[700];
    long  pid = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s/pid", b->dir);
    if ((f = fopen(path, "r")) != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    kill(pid > 0 ? (pid_t)pid : b->pid, SIGTERM);
    for (int i = 0; i < 300 && kill(pid > 0 ? (pid_t)pid : b->pid, 0) == 0;
         i++) {
        usleep(50 * 1000);
        waitpid(b->pid, NULL, WNOHANG);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "epmd -port %d -kill >/dev/null 2>&1; rm -rf '%s'",
             b->port + 2, b->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_amqp: cleanup of %s failed\n", b->dir);
    }
}

/* ---- raw rabbitmq-c ----------------------------------------------------- */

static void
queue_reset(int port)
{
    amqp_connection_state_t c = amqp_open(port);
    if (c == NULL) {
        die("connect");
    }
    amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0,
                       amqp_empty_table);
    amqp_queue_purge(c, 1, amqp_cstring_bytes(QUEUE));
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        die("queue declare/purge");
    }
    amqp_done(c);
}

/* Waits until every tag up to last is confirmed; false on a nack. */
static bool
raw_confirms(amqp_connection_state_t c, uint64_t last)
{
    uint64_t done = 0;
    bool     ok = true;
    while (done < last) {
        amqp_frame_t   f;
        struct timeval tv = {10, 0};
        if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK) {
            die("raw: no confirms");
        }
        if (f.frame_type != AMQP_FRAME_METHOD) {
            continue;
        }
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            done = a->multiple || a->delivery_tag > done ? a->delivery_tag
                                                         : done;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            ok = false;
            done = ((amqp_basic_nack_t *)f.payload.method.decoded)->delivery_tag;
        }
    }
    amqp_maybe_release_buffers(c);
    return ok;
}

/* n persistent messages in batches of WINDOW, each batch confirmed. */
static double
bench_raw(int port, uint64_t n)
{
    static uint8_t payload[PAYLOAD];
    queue_reset(port);
    amqp_connection_state_t c = amqp_open(port);
    memset(payload, 'r', sizeof(payload));
    amqp_confirm_select(c, 1);
    uint64_t t0 = cairni_mono_us(), tag = 0;
    for (uint64_t i = 0; i < n;) {
        for (int k = 0; k < WINDOW && i < n; k++, i++) {
            amqp_basic_properties_t p;
            uint8_t                 id[CAIRN_ID_LEN];
            char                    idtext[37];
            cairn_id_new(id);
            memset(&p, 0, sizeof(p));
            p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
            p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
            p.message_id = amqp_cstring_bytes(cairn_id_format(id, idtext));
            amqp_bytes_t body = {PAYLOAD, payload};
            if (amqp_basic_publish(c, 1, amqp_cstring_bytes(""),
                                   amqp_cstring_bytes(QUEUE), 1, 0, &p,
                                   body) != 0) {
                die("raw: publish");
            }
            tag++;
        }
        if (!raw_confirms(c, tag)) {
            die("raw: nacked");
        }
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    amqp_done(c);
    return (double)n / secs;
}

/* ---- the bridge --------------------------------------------------------- */

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
rig_store(rig *g)
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
                         .window = WINDOW},
    };
    if (cairni_store_open(&g->store, &o, err, sizeof(err)) != CAIRN_OK ||
        cairni_drain_open(g->store, "bench", &g->self.drain) != CAIRN_OK) {
        die(err);
    }
}

/* n envelopes of PAYLOAD bytes on bench/k<i % 8>, 1000 per commit. */
static void
rig_fill(rig *g, uint64_t n)
{
    static uint8_t        payload[PAYLOAD];
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
rig_plugin(rig *g, int port)
{
    char        yaml[512], err[256];
    cairni_doc *doc;
    snprintf(yaml, sizeof(yaml),
             "port: %d\nmax_inflight: %d\nqueues:\n  - {name: " QUEUE "}\n"
             "uplink:\n  - {filter: \"bench/#\", routing_key: " QUEUE "}\n",
             port, WINDOW);
    g->dl = dlopen(BENCH_AMQP_PLUGIN, RTLD_NOW | RTLD_LOCAL);
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

static bool
wait_acks(cairn_plugin *p, uint64_t want)
{
    uint64_t end = cairni_mono_ms() + WAIT_MS;
    pthread_mutex_lock(&p->mu);
    while (p->acked < want && cairni_mono_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool ok = p->acked >= want;
    pthread_mutex_unlock(&p->mu);
    return ok;
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
    pthread_cond_destroy(&g->self.cv);
    pthread_mutex_destroy(&g->self.mu);
}

/* A backlog of n drained with confirms: msgs/s from start() to the last
 * ack. */
static double
bench_drain(int port, uint64_t n)
{
    rig g;
    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.self.mu, NULL);
    pthread_cond_init(&g.self.cv, NULL);
    g.self.want = n;
    queue_reset(port);
    rig_store(&g);
    rig_fill(&g, n);
    rig_plugin(&g, port);
    uint64_t t0 = cairni_mono_us();
    if (g.desc->start(g.state) != CAIRN_OK ||
        pthread_create(&g.run, NULL, rig_run_main, &g) != 0) {
        die("plugin start failed");
    }
    if (!wait_acks(&g.self, n)) {
        die("drain: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    if (g.self.errors != 0) {
        die("drain: nacks");
    }
    rig_close(&g);
    return (double)n / secs;
}

/* ---- main --------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    bool        quick = getenv("CAIRN_BENCH_QUICK") != NULL;
    const char *env_n = getenv("CAIRN_BENCH_AMQP_N");
    uint64_t    n = env_n ? strtoull(env_n, NULL, 10) : 0;
    double      raw = 0, drain = 0;
    broker      b;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--quick] [-n N]\n", argv[0]);
            return 2;
        }
    }
    n = n ? n : quick ? 10000 : 100000;
    int rounds = quick ? 1 : 3;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    signal(SIGPIPE, SIG_IGN);
    broker_start(&b);
    for (int r = 0; r < rounds; r++) { /* alternate: noise hits both */
        double x = bench_raw(b.port, n), y = bench_drain(b.port, n);
        raw = x > raw ? x : raw;
        drain = y > drain ? y : drain;
    }
    broker_stop(&b);
    printf("drain: %llu msgs of %d B from the outbox to a local RabbitMQ "
           "(persistent, durable queue, confirms), best of %d round(s)\n",
           (unsigned long long)n, PAYLOAD, rounds);
    printf("  bridge %10.0f msg/s   raw rabbitmq-c (batches of %d) %10.0f "
           "msg/s   ratio %.2f (target >= 0.8)\n",
           drain, WINDOW, raw, drain / raw);
    printf("{\"bench\":\"amqp_drain\",\"n\":%llu,\"payload\":%d,"
           "\"window\":%d,\"bridge_msgs_s\":%.0f,\"raw_msgs_s\":%.0f,"
           "\"ratio\":%.3f}\n",
           (unsigned long long)n, PAYLOAD, WINDOW, drain, raw, drain / raw);
    return 0;
}
