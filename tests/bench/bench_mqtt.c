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
#include <pthread.h>
#include <signal.h>
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

#include "bench_rig.h"

#define PAYLOAD BENCH_PAYLOAD
#define INFLIGHT 100
#define WAIT_MS 120000
#define PRODUCERS 4

/* The outbox's store.window and the bridge's max_inflight: the defaults
 * of the runtime (100) and of the bridge (50) unless -w, -i say else. */
static uint32_t bench_window = 100;
static uint32_t bench_inflight = 50;

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
        bench_die("cannot write the broker config");
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
        bench_die("mkdtemp");
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
    bench_die("cannot start mosquitto (is it installed?)");
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
        bench_die("raw: cannot connect");
    }
    bool up = false;
    for (int i = 0; i < 5000 && !up; i++) {
        usleep(1000);
        pthread_mutex_lock(&r.mu);
        up = r.up;
        pthread_mutex_unlock(&r.mu);
    }
    if (!up) {
        bench_die("raw: no CONNACK");
    }
    uint64_t t0 = cairni_mono_us();
    for (uint64_t i = 0; i < n; i++) {
        snprintf(topic, sizeof(topic), "bench/k%llu",
                 (unsigned long long)(i % 8));
        if (mosquitto_publish(m, NULL, topic, PAYLOAD, payload, qos, false) !=
            MOSQ_ERR_SUCCESS) {
            bench_die("raw: publish failed");
        }
    }
    if (!bench_wait_u64(&r.mu, &r.cv, &r.acked, n, WAIT_MS)) {
        bench_die("raw: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    return (double)n / secs;
}

/* ---- the bridge
 * -------------------------------------------------------------- */

static void
rig_mqtt(rig *g, int port, int qos)
{
    char yaml[512];
    snprintf(
        yaml, sizeof(yaml),
        "host: 127.0.0.1\nport: %d\nmax_inflight: %d\nstatus_topic: \"\"\n"
        "uplink:\n  - {filter: \"bench/#\", topic: \"bench/{2}\", qos: %d}\n",
        port, (int)bench_inflight, qos);
    g->self.connected_gauge = "mqtt_connected";
    rig_plugin(g, BENCH_MQTT_PLUGIN, yaml);
}

/* A backlog of n, drained at qos: msgs/s from start() to the last ack. */
static double
bench_drain(int port, uint64_t n, int qos)
{
    rig g;
    rig_init(&g, n);
    rig_store(&g, bench_window);
    rig_fill(&g, n);
    rig_mqtt(&g, port, qos);
    uint64_t t0 = cairni_mono_us();
    rig_start(&g);
    if (!bench_wait_u64(&g.self.mu, &g.self.cv, &g.self.acked, n, WAIT_MS)) {
        bench_die("drain: acks missing");
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    if (g.self.errors != 0) {
        bench_die("drain: nacks");
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
            bench_die("online: put failed");
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
    rig_mqtt(&g, port, 1);
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
    if (!bench_wait_u64(&g.self.mu, &g.self.cv, &g.self.acked, n, WAIT_MS)) {
        bench_die("online: acks missing");
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
    bench_prog = "bench_mqtt";
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
