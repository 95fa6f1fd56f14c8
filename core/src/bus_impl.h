/*
 * bus_impl.h - what bus.c, bus_queue.c and bus_rpc.c share, and nobody
 * else.  The bus's contract is the "bus.c" section of cairni.h; the
 * invariants, locks and threads are described at the top of bus.c.
 *
 * Every inproc URL of a bus is "<prefix>/<kind>/<n>": prefix is unique
 * per bus in the process ("inproc://cairn-<bus pointer>-<counter>") and n
 * comes from the bus's own counter, so buses never collide and no user
 * supplied name has to survive URL parsing.
 */
#ifndef CAIRN_BUS_IMPL_H
#define CAIRN_BUS_IMPL_H

#include <pthread.h>

#include <nng/nng.h>

#include "cairni.h"

#define CAIRNI_BUS_URL_MAX 96            /* fits NNG_MAXADDRLEN (128) */
#define CAIRNI_BUS_NAME_MAX 256          /* queue and service names, bytes */
#define CAIRNI_BUS_SUB_QUEUE 4096        /* default opts->sub_queue */
#define CAIRNI_BUS_BATCH_MAX (16u << 20) /* bytes pending per subscriber */

typedef struct cairni_bus_queue cairni_bus_queue;
typedef struct cairni_bus_rpc   cairni_bus_rpc;

typedef enum cairni_bus_kind {
    CAIRNI_BUS_SUB = 1,  /* pub/sub subscription */
    CAIRNI_BUS_CONSUMER, /* work queue consumer */
} cairni_bus_kind;

struct cairni_bus {
    char            prefix[48]; /* immutable after open */
    uint32_t        sub_queue;  /* immutable after open */
    cairni_metrics *metrics;    /* borrowed; may be NULL */

    /* Subscriptions.  Publish holds it shared for the whole fan-out;
     * subscribe, unsubscribe and close hold it exclusive.  Writers are
     * preferred so a steady stream of publishes cannot starve them. */
    pthread_rwlock_t subs_lock;
    cairn_sub      **subs; /* owned array of owned subscriptions */
    size_t           nsubs;
    size_t           capsubs;

    _Atomic uint64_t next_id; /* last number used in a URL */

    /* Guards the three lists below (not what they point to, whose own
     * fields say what guards them). */
    pthread_mutex_t   lock;
    cairni_bus_queue *queues;    /* owned; freed at close only */
    cairn_sub        *consumers; /* owned */
    cairni_bus_rpc   *rpcs;      /* owned; freed at close only */

    /* Call policies, copied at open and immutable after it. */
    cairni_call_cfg *policies; /* owned, names owned */
    size_t           npolicies;
    cairni_call_cfg  policy_default; /* name NULL */
};

/* A subscription or a queue consumer: a pull0 socket and the delivery
 * thread that drains it.  Subscriptions also own the push0 side. */
struct cairn_sub {
    cairni_bus     *bus; /* borrowed */
    cairni_bus_kind kind;
    char           *filter; /* owned: the filter, or the queue name */
    char           *owner;  /* owned, never NULL */
    cairn_msg_fn    fn;
    void           *arg;

    nng_socket rx;   /* pull0; read only by the delivery thread */
    nng_aio   *raio; /* the delivery thread's receives */
    pthread_t  thread;
    bool       started; /* thread was created and must be joined */

    /* Subscriptions only.  mtx guards pending..closing; it is taken by
     * publishers (under subs_lock) and by the send callback. */
    nng_socket      tx;  /* push0 listening on the subscription's URL */
    nng_aio        *aio; /* the one send in flight */
    pthread_mutex_t mtx;
    bool            mtx_init;
    nng_msg        *pending;   /* batch being filled while aio is busy */
    uint32_t        npending;  /* messages in pending */
    uint32_t        ninflight; /* messages in the batch aio is sending */
    bool            inflight;  /* aio is busy; pending != NULL => true */
    bool            closing;   /* the callback must not send again */

    /* Queue consumers only. */
    cairni_bus_queue *queue; /* borrowed from bus->queues */
    cairn_sub        *next;  /* in bus->consumers, under bus->lock */

    /* Counters: written by publishers, the send callback and the
     * delivery thread; read by anyone. */
    _Atomic uint64_t delivered;
    _Atomic uint64_t dropped;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t errors; /* records that failed to decode */
};

/* ---- bus.c: shared helpers -------------------------------------------- */

/* Writes "<prefix>/<kind>/<n>" with a fresh n into url. */
void cairni_bus_url(cairni_bus *bus, const char *kind,
                    char url[CAIRNI_BUS_URL_MAX]);

/* CAIRN_OK for a queue or service name: 1..CAIRNI_BUS_NAME_MAX bytes. */
cairn_err cairni_bus_name_valid(const char *name);

/* Starts a bus thread with every signal blocked: signals stay with the
 * threads of the program that embeds the bus. */
cairn_err cairni_bus_thread_start(pthread_t *thr, void *(*fn)(void *),
                                  void      *arg);

/* Appends one Prometheus sample: metric{k1="v1"[,k2="v2"]} value.
 * Label values are escaped; k2 may be NULL. */
void cairni_bus_prom(cairni_buf *out, const char *metric, const char *k1,
                     const char *v1, const char *k2, const char *v2,
                     uint64_t value);

/*
 * Encodes env into a new message: hlen bytes of hdr, then, when record
 * is true, a 4-byte big-endian length, then the envelope.  When env has
 * no id, no ts or (with default_topic) no topic, a copy is filled in;
 * env itself is never written.  On success *msgp is owned by the caller.
 */
cairn_err cairni_bus_env_msg(const cairn_envelope *env,
                             const char *default_topic, const void *hdr,
                             size_t hlen, bool record, nng_msg **msgp);

/* Allocates a subscription or consumer with its strings, no sockets. */
cairn_err cairni_bus_sub_alloc(cairni_bus *bus, cairni_bus_kind kind,
                               const char *filter, const char *owner,
                               cairn_msg_fn fn, void *arg, cairn_sub **subp);
/* Starts the delivery thread on sub->rx. */
cairn_err cairni_bus_sub_start(cairn_sub *sub);
/* Stops sending to sub and ends its delivery thread (waiting for a
 * callback that is running).  Idempotent.  sub is unlinked already. */
void cairni_bus_sub_stop(cairn_sub *sub);
/* cairni_bus_sub_stop, then closes whatever of sub was opened and frees
 * it. */
void cairni_bus_sub_teardown(cairn_sub *sub);

/* ---- bus_queue.c ------------------------------------------------------ */

/* Unlinks a consumer, stops its thread and frees it. */
void cairni_bus_consumer_close(cairn_sub *sub);
void cairni_bus_queues_close(cairni_bus *bus);
void cairni_bus_queues_render(cairni_bus *bus, cairni_buf *out);

/* ---- bus_rpc.c -------------------------------------------------------- */

/* Copies the call policies (calls may be NULL: no breakers, no retries). */
cairn_err cairni_bus_policies_set(cairni_bus *bus, const cairni_calls_cfg *calls);
void cairni_bus_rpcs_close(cairni_bus *bus);
void cairni_bus_rpcs_render(cairni_bus *bus, cairni_buf *out);

#endif /* CAIRN_BUS_IMPL_H */
