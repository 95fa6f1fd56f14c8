/*
 * bench_bus.c - the bus against raw NNG, measured in the same run.
 *
 *   events  a publisher thread sends 64-byte payloads to a subscriber
 *           thread through the bus; baseline: raw push0/pull0 over
 *           inproc, one nng_sendmsg per message, receiver on its own
 *           thread.  Prints msg/s of both, the ratio bus/raw (target
 *           >= 1.0, and >= 200k msg/s), wakeups per message and drops.
 *           Only delivered messages count; the publisher keeps at most
 *           a window of messages in flight, so nothing should drop.
 *   rpc     sequential round trips with a 64-byte payload: bus call/serve
 *           against raw req0/rep0 over inproc.  Prints the mean latency
 *           of both and the ratio bus/raw (target <= 1.2).
 *
 * Each benchmark ends with one JSON line.  Every loop is bounded by a
 * count.  Usage: bench_bus [--quick] (also CAIRN_BENCH_QUICK=1): fewer
 * messages and one round, for CTest.  Otherwise the best of three
 * alternating rounds is reported, which filters out a noisy neighbour.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "cairni.h"

#define PAYLOAD 64

typedef struct bench_cfg {
    uint64_t events;
    uint64_t calls;
    int      rounds;
} bench_cfg;

static void
die(const char *what, int rv)
{
    fprintf(stderr, "bench_bus: %s: %d\n", what, rv);
    exit(1);
}

static double
secs_since(uint64_t t0_us)
{
    return (double)(cairni_mono_us() - t0_us) / 1e6;
}

/* ---- events through the bus --------------------------------------------- */

typedef struct evsub {
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    _Atomic uint64_t got;
    _Atomic bool     waiting; /* publisher waits for got >= wake_at */
    uint64_t         wake_at;
    uint64_t         want;
    uint64_t         end_us; /* when the last message arrived */
} evsub;

static void
evsub_fn(void *arg, const cairn_envelope *env)
{
    evsub   *s = arg;
    uint64_t n = atomic_fetch_add(&s->got, 1) + 1;

    (void)env;
    if (n == s->want) {
        s->end_us = cairni_mono_us();
    }
    if ((atomic_load(&s->waiting) && n >= s->wake_at) || n == s->want) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Blocks while more than window messages are in flight.  The seq_cst
 * store of waiting and load of got pair with the subscriber's increment
 * and load of waiting, so a wakeup cannot be missed. */
static void
evsub_window(evsub *s, uint64_t sent, uint64_t window)
{
    if (sent - atomic_load(&s->got) < window) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->wake_at = sent - window / 2;
    atomic_store(&s->waiting, true);
    while (sent - atomic_load(&s->got) > window / 2) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    atomic_store(&s->waiting, false);
    pthread_mutex_unlock(&s->mu);
}

typedef struct evrun {
    cairni_bus *bus;
    evsub      *sub;
    uint64_t    n;
    uint64_t    window;
} evrun;

static void *
evpub_main(void *arg)
{
    evrun         *r = arg;
    uint8_t        payload[PAYLOAD];
    cairn_envelope env;

    memset(payload, 0xa5, sizeof(payload));
    cairn_envelope_init(&env);
    env.topic = cairn_str_c("bench/events");
    env.payload.ptr = payload;
    env.payload.len = sizeof(payload);
    for (uint64_t i = 0; i < r->n; i++) {
        evsub_window(r->sub, i, r->window);
        if (cairni_bus_publish(r->bus, &env) != CAIRN_OK) {
            die("publish", (int)i);
        }
    }
    return NULL;
}

typedef struct evresult {
    double   rate;
    double   wakeups_per_msg;
    uint64_t dropped;
} evresult;

static evresult
bench_bus_events(uint64_t n)
{
    enum { QUEUE = 8192 };
    cairni_bus_opts  opts = {.sub_queue = QUEUE};
    cairni_bus      *bus;
    cairn_sub       *sub;
    evsub            s;
    evrun            r;
    pthread_t        thr;
    uint64_t         t0;
    cairni_sub_stats st;
    evresult         res;

    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.want = n;
    if (cairni_bus_open(&bus, &opts) != CAIRN_OK ||
        cairni_bus_subscribe(bus, "bench/#", "bench", evsub_fn, &s, &sub) !=
            CAIRN_OK) {
        die("bus setup", 0);
    }
    r = (evrun){.bus = bus, .sub = &s, .n = n, .window = QUEUE / 2};
    t0 = cairni_mono_us();
    if (pthread_create(&thr, NULL, evpub_main, &r) != 0) {
        die("pthread_create", 0);
    }
    pthread_join(thr, NULL);
    pthread_mutex_lock(&s.mu);
    while (atomic_load(&s.got) < n) {
        pthread_cond_wait(&s.cv, &s.mu);
    }
    pthread_mutex_unlock(&s.mu);
    cairni_sub_get_stats(sub, &st);
    res.rate = (double)n / ((double)(s.end_us - t0) / 1e6);
    res.wakeups_per_msg = (double)st.wakeups / (double)n;
    res.dropped = st.dropped;
    cairni_bus_close(bus);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return res;
}

/* ---- events through raw push0/pull0 -------------------------------------- */

typedef struct rawrecv {
    nng_socket s;
    uint64_t   n;
    uint64_t   end_us;
} rawrecv;

static void *
rawrecv_main(void *arg)
{
    rawrecv *r = arg;
    nng_msg *m;
    int      rv;

    for (uint64_t i = 0; i < r->n; i++) {
        if ((rv = nng_recvmsg(r->s, &m, 0)) != 0) {
            die("nng_recvmsg", rv);
        }
        nng_msg_free(m);
    }
    r->end_us = cairni_mono_us();
    return NULL;
}

static double
bench_raw_events(uint64_t n)
{
    static unsigned counter;
    char            url[64];
    nng_socket      push = NNG_SOCKET_INITIALIZER;
    nng_socket      pull = NNG_SOCKET_INITIALIZER;
    rawrecv         r;
    pthread_t       thr;
    uint8_t         payload[PAYLOAD];
    uint64_t        t0;
    nng_msg        *m;
    int             rv;

    memset(payload, 0xa5, sizeof(payload));
    snprintf(url, sizeof(url), "inproc://bench-raw-%u", counter++);
    if ((rv = nng_push0_open(&push)) != 0 ||
        (rv = nng_pull0_open(&pull)) != 0 ||
        (rv = nng_listen(pull, url, NULL, 0)) != 0 ||
        (rv = nng_dial(push, url, NULL, 0)) != 0) {
        die("raw push/pull setup", rv);
    }
    r = (rawrecv){.s = pull, .n = n};
    if (pthread_create(&thr, NULL, rawrecv_main, &r) != 0) {
        die("pthread_create", 0);
    }
    t0 = cairni_mono_us();
    for (uint64_t i = 0; i < n; i++) {
        if (nng_msg_alloc(&m, 0) != 0 ||
            nng_msg_append(m, payload, sizeof(payload)) != 0) {
            die("nng_msg_alloc", 0);
        }
        if ((rv = nng_sendmsg(push, m, 0)) != 0) {
            die("nng_sendmsg", rv);
        }
    }
    pthread_join(thr, NULL);
    nng_close(push);
    nng_close(pull);
    return (double)n / ((double)(r.end_us - t0) / 1e6);
}

/* ---- request/reply ---------------------------------------------------------
 */

static cairn_err
echo_fn(void *arg, const cairn_envelope *req, cairn_out *out)
{
    (void)arg;
    return cairni_out_append(out, req->payload.ptr, req->payload.len);
}

static double
bench_bus_rpc(uint64_t n, uint64_t warm)
{
    cairni_bus    *bus;
    cairn_svc     *svc;
    cairn_reply    rep;
    cairn_envelope env;
    uint8_t        payload[PAYLOAD];
    uint64_t       t0 = 0;

    memset(payload, 0x5a, sizeof(payload));
    cairn_envelope_init(&env);
    env.topic = cairn_str_c("bench/rpc");
    env.payload.ptr = payload;
    env.payload.len = sizeof(payload);
    if (cairni_bus_open(&bus, NULL) != CAIRN_OK ||
        cairni_bus_serve(bus, "echo", "bench", echo_fn, NULL, &svc) !=
            CAIRN_OK) {
        die("bus rpc setup", 0);
    }
    for (uint64_t i = 0; i < warm + n; i++) {
        if (i == warm) {
            t0 = cairni_mono_us();
        }
        if (cairni_bus_call(bus, "echo", &env, 5000, &rep) != CAIRN_OK ||
            rep.status != CAIRN_OK || rep.len != sizeof(payload)) {
            die("bus call", (int)i);
        }
        cairni_reply_fini(&rep);
    }
    double mean_us = secs_since(t0) * 1e6 / (double)n;
    cairni_bus_close(bus);
    return mean_us;
}

typedef struct rawrep {
    nng_socket s;
    nng_aio   *aio; /* stopped to end the thread: see bus.c on closing */
} rawrep;

static void *
rawrep_main(void *arg)
{
    rawrep  *r = arg;
    nng_msg *m;

    for (;;) {
        nng_recv_aio(r->s, r->aio);
        nng_aio_wait(r->aio);
        if (nng_aio_result(r->aio) != 0) {
            break;
        }
        m = nng_aio_get_msg(r->aio);
        nng_aio_set_msg(r->aio, NULL);
        if (nng_sendmsg(r->s, m, 0) != 0) {
            nng_msg_free(m);
        }
    }
    return NULL;
}

static double
bench_raw_rpc(uint64_t n, uint64_t warm)
{
    static unsigned counter;
    char            url[64];
    nng_socket      req;
    rawrep          rep;
    pthread_t       thr;
    uint8_t         payload[PAYLOAD];
    nng_msg        *m;
    uint64_t        t0 = 0;
    int             rv;

    memset(payload, 0x5a, sizeof(payload));
    snprintf(url, sizeof(url), "inproc://bench-rpc-%u", counter++);
    if ((rv = nng_req0_open(&req)) != 0 || (rv = nng_rep0_open(&rep.s)) != 0 ||
        (rv = nng_aio_alloc(&rep.aio, NULL, NULL)) != 0 ||
        (rv = nng_listen(rep.s, url, NULL, 0)) != 0 ||
        (rv = nng_dial(req, url, NULL, 0)) != 0) {
        die("raw req/rep setup", rv);
    }
    if (pthread_create(&thr, NULL, rawrep_main, &rep) != 0) {
        die("pthread_create", 0);
    }
    for (uint64_t i = 0; i < warm + n; i++) {
        if (i == warm) {
            t0 = cairni_mono_us();
        }
        if (nng_msg_alloc(&m, 0) != 0 ||
            nng_msg_append(m, payload, sizeof(payload)) != 0) {
            die("nng_msg_alloc", 0);
        }
        if ((rv = nng_sendmsg(req, m, 0)) != 0 ||
            (rv = nng_recvmsg(req, &m, 0)) != 0) {
            die("raw req", rv);
        }
        nng_msg_free(m);
    }
    double mean_us = secs_since(t0) * 1e6 / (double)n;
    nng_aio_stop(rep.aio);
    pthread_join(thr, NULL);
    nng_aio_free(rep.aio);
    nng_close(rep.s);
    nng_close(req);
    return mean_us;
}

/* ---- main ---------------------------------------------------------------- */

static void
run_events(const bench_cfg *cfg)
{
    evresult best = {0}, r;
    double   raw = 0, x;
    uint64_t dropped = 0;

    for (int i = 0; i < cfg->rounds; i++) {
        x = bench_raw_events(cfg->events);
        raw = x > raw ? x : raw;
        r = bench_bus_events(cfg->events);
        dropped += r.dropped;
        if (r.rate > best.rate) {
            best = r;
        }
    }
    printf("events: %llu msgs of %d B, best of %d round(s)\n",
           (unsigned long long)cfg->events, PAYLOAD, cfg->rounds);
    printf("  bus (batched pub/sub)  %10.0f msg/s  wakeups/msg %.4f  "
           "dropped %llu\n",
           best.rate, best.wakeups_per_msg, (unsigned long long)dropped);
    printf("  raw NNG push/pull      %10.0f msg/s\n", raw);
    printf("  ratio bus/raw          %10.2f  (target >= 1.0, bus >= 200000 "
           "msg/s)\n",
           best.rate / raw);
    printf("{\"bench\":\"bus_events\",\"n\":%llu,\"payload\":%d,"
           "\"bus_msgs_per_s\":%.0f,\"raw_msgs_per_s\":%.0f,\"ratio\":%.3f,"
           "\"wakeups_per_msg\":%.5f,\"dropped\":%llu}\n",
           (unsigned long long)cfg->events, PAYLOAD, best.rate, raw,
           best.rate / raw, best.wakeups_per_msg, (unsigned long long)dropped);
}

static void
run_rpc(const bench_cfg *cfg)
{
    double   bus = 0, raw = 0, x;
    uint64_t warm = cfg->calls / 20 + 10;

    for (int i = 0; i < cfg->rounds; i++) {
        x = bench_raw_rpc(cfg->calls, warm);
        raw = (raw == 0 || x < raw) ? x : raw;
        x = bench_bus_rpc(cfg->calls, warm);
        bus = (bus == 0 || x < bus) ? x : bus;
    }
    printf("rpc: %llu sequential round trips of %d B, best of %d round(s)\n",
           (unsigned long long)cfg->calls, PAYLOAD, cfg->rounds);
    printf("  bus call/serve         %8.2f us mean\n", bus);
    printf("  raw NNG req/rep        %8.2f us mean\n", raw);
    printf("  ratio bus/raw          %8.2f  (target <= 1.2)\n", bus / raw);
    printf("{\"bench\":\"bus_rpc\",\"n\":%llu,\"payload\":%d,"
           "\"bus_mean_us\":%.3f,\"raw_mean_us\":%.3f,\"ratio\":%.3f}\n",
           (unsigned long long)cfg->calls, PAYLOAD, bus, raw, bus / raw);
}

int
main(int argc, char **argv)
{
    bench_cfg   cfg = {.events = 1000000, .calls = 100000, .rounds = 3};
    const char *env = getenv("CAIRN_BENCH_QUICK");
    bool        quick = env != NULL && env[0] != '\0' && env[0] != '0';

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (quick) {
        cfg = (bench_cfg){.events = 100000, .calls = 5000, .rounds = 1};
    }
    run_events(&cfg);
    run_rpc(&cfg);
    return 0;
}
