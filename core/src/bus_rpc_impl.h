/*
 * bus_rpc_impl.h - what bus_rpc.c (services, entries, policies, close,
 * metrics) and bus_call.c (the caller side: blocking and asynchronous
 * calls) share.  The design is at the top of bus_rpc.c.
 */
#ifndef CAIRN_BUS_RPC_IMPL_H
#define CAIRN_BUS_RPC_IMPL_H

#include <nng/nng.h>

#include "bus_impl.h"

#pragma GCC visibility push(hidden)

#define BUS_SLOTS_MAX 16       /* idle request contexts kept per name */
#define BUS_REPLY_SEND_MS 1000 /* a reply never blocks a service longer */
#define BUS_REQ_HDR 8          /* deadline header of a request */
#define BUS_REP_HDR 4          /* status header of a reply */
#define BUS_BACKOFF_MAX_MS 1000 /* longest pause between call attempts */
#define BUS_REFUSED_RESENDS 2   /* resends of a request a closing provider
                                   refused (it never ran) */

typedef enum bus_astate {
    BUS_A_SEND = 1, /* the request is being sent */
    BUS_A_RECV,     /* waiting for the reply */
    BUS_A_PAUSE,    /* backoff before the next attempt */
} bus_astate;

typedef struct bus_slot {
    struct bus_slot *next;  /* free list, or busy list (async) */
    struct bus_slot *prev;  /* busy list (async) */
    nng_ctx          ctx;
    nng_aio         *aio;   /* blocking: no callback, callers wait on it;
                               async: bus_acall_cb */
    bool             async;

    /* The asynchronous call the slot carries (owned by the callback). */
    cairni_bus_rpc  *rpc;
    bus_astate       state;
    cairni_call_done done;
    void            *arg;
    nng_msg         *req;  /* encoded request, copied per attempt; owned */
    uint64_t         deadline;
    uint64_t         t0;    /* start of the current attempt */
    uint32_t         attempt;
    bool             probe;
} bus_slot;

struct cairni_bus_rpc {
    cairni_bus_rpc *next; /* in bus->rpcs, under bus->lock */
    char           *name; /* owned */
    char            url[CAIRNI_BUS_URL_MAX];
    cairn_svc      *svc;     /* current provider or NULL; bus->lock */
    bool            has_req; /* req is open; bus->lock */
    nng_socket      req;     /* immutable once has_req */

    pthread_mutex_t slot_lock;
    bus_slot       *slots; /* owned free list */
    unsigned        nslots;
    bus_slot       *aslots; /* owned free list of asynchronous slots */
    unsigned        naslots;
    bus_slot       *busy;   /* asynchronous calls in progress */
    unsigned        nbusy;
    pthread_cond_t  idle_cv; /* nbusy dropped to 0 */
    atomic_bool     closing; /* no new operation may start */

    cairni_hist      latency; /* calls that got a reply */
    _Atomic uint64_t ok;      /* reply with status CAIRN_OK */
    _Atomic uint64_t timeout; /* no reply by the deadline */
    _Atomic uint64_t error;   /* any other outcome */
    _Atomic uint64_t handled; /* requests the handler ran */
    _Atomic uint64_t expired; /* requests skipped: deadline passed */
    _Atomic uint64_t bad;     /* malformed requests */
    _Atomic uint64_t retries; /* attempts after the first */
    _Atomic bool     served;  /* svc != NULL, readable without the lock */

    cairni_call_cfg policy;  /* immutable; name borrowed */
    cairni_breaker  breaker;
};

struct cairn_svc {
    cairni_bus     *bus; /* borrowed */
    cairni_bus_rpc *rpc; /* borrowed from bus->rpcs */
    char           *owner;
    cairn_serve_fn  fn;
    void           *arg;
    nng_socket      rep;
    nng_aio        *raio; /* the service thread's receives */
    nng_aio        *saio; /* its replies (nng_sendmsg would allocate an
                             aio, and draw a random number, per reply) */
    pthread_t       thread;
    bool            started;
};

/* A reply being built: the nng_msg that will be sent, status first. */
struct cairn_out {
    nng_msg *msg;
};

static const nng_socket bus_nosock = NNG_SOCKET_INITIALIZER;

static inline void
bus_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t
bus_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* bus->lock held.  The entry for name, made if create and missing. */
cairn_err cairni_bus_rpc_find(cairni_bus *bus, const char *name, bool create,
                              cairni_bus_rpc **rpcp);
/* Frees a list of request contexts (bus_call.c). */
void cairni_bus_slots_free(bus_slot *s);

#pragma GCC visibility pop

#endif /* CAIRN_BUS_RPC_IMPL_H */
