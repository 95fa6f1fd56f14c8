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
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

#include "bench_rig.h"

#define PAYLOAD BENCH_PAYLOAD
#define WINDOW 100
#define WAIT_MS 300000
#define QUEUE "bench"

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
        bench_die("broker config");
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
        bench_die("mkdtemp");
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
            bench_die(
                "rabbitmq-server exited (installed? sh tests/install-deps.sh)");
        }
        usleep(100 * 1000);
    }
    bench_die("rabbitmq-server did not start");
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
        bench_die("connect");
    }
    amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0,
                       amqp_empty_table);
    amqp_queue_purge(c, 1, amqp_cstring_bytes(QUEUE));
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
        bench_die("queue declare/purge");
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
            bench_die("raw: no confirms");
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
                bench_die("raw: publish");
            }
            tag++;
        }
        if (!raw_confirms(c, tag)) {
            bench_die("raw: nacked");
        }
    }
    double secs = (double)(cairni_mono_us() - t0) / 1e6;
    amqp_done(c);
    return (double)n / secs;
}

/* ---- the bridge --------------------------------------------------------- */

static void
rig_amqp(rig *g, int port)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "port: %d\nmax_inflight: %d\nqueues:\n  - {name: " QUEUE "}\n"
             "uplink:\n  - {filter: \"bench/#\", routing_key: " QUEUE "}\n",
             port, WINDOW);
    rig_plugin(g, BENCH_AMQP_PLUGIN, yaml);
}

/* A backlog of n drained with confirms: msgs/s from start() to the last
 * ack. */
static double
bench_drain(int port, uint64_t n)
{
    rig g;
    rig_init(&g, n);
    queue_reset(port);
    rig_store(&g, WINDOW);
    rig_fill(&g, n);
    rig_amqp(&g, port);
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
    bench_prog = "bench_amqp";
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
