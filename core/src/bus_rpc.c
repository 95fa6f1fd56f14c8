/*
 * bus_rpc.c - request/reply services by name over NNG req0/rep0.
 *
 * For every service name ever served, the bus keeps one entry
 * (cairni_bus_rpc) until it closes: its inproc URL, the service that
 * currently provides it (or none), the req0 socket callers share, a free
 * list of request contexts, and the name's counters and latency
 * histogram.  Serving the name again after an unserve listens on the
 * same URL, and the req0 dialer reconnects to it by itself.
 *
 * Wire format, both directions inside one process:
 *   request  8-byte big-endian absolute deadline (cairni_mono_us), then
 *            the encoded envelope
 *   reply    4-byte big-endian cairn_err returned by the handler, then
 *            what the handler appended with cairni_out_append
 *
 * Deadlines.  A call carries its absolute deadline.  The service thread
 * skips a request whose deadline has passed (counted as expired) rather
 * than running work nobody waits for.  REQ resending is turned off
 * (NNG_OPT_REQ_RESENDTIME infinite): NNG would otherwise send the same
 * request again on its timer, and a service could run it twice.  The
 * call's waits use the aio's own timeout, set to what is left of the
 * deadline before the send and again before the receive; that is what
 * NNG_OPT_SENDTIMEO/RECVTIMEO would do, without an option call per
 * request.
 *
 * Contexts.  Each call takes an nng_ctx (and its aio) from the entry's
 * free list, or opens one, and gives it back afterwards; up to
 * BUS_SLOTS_MAX idle ones are kept.  A context whose receive timed out
 * has abandoned its request (NNG discards a late reply by request id),
 * so it can serve the next call.
 *
 * Threads and locks.  One thread per service runs the handler, one
 * request at a time, in arrival order.  Callers are any threads.
 * bus->lock guards bus->rpcs, each entry's svc and the creation of its
 * req socket (immutable once made); slot_lock guards the free list;
 * counters are atomic.  No lock is held while a handler runs or while a
 * caller waits.
 *
 * Call policies (the config's `calls`).  Each entry has a circuit
 * breaker (breaker.c) set from its service's policy when the entry is
 * made.  A call passes the breaker first: while it is open the call fails
 * at once with CAIRN_EUNAVAIL and the service never sees it.  Outcomes
 * that count against the service (cairni_call_failed) feed the breaker.
 * A service marked idempotent may be called up to `attempts` times for
 * one request, with full-jitter backoff between the attempts, all within
 * the one deadline the caller gave; no other call is ever repeated.
 *
 * Asynchronous calls (cairni_bus_call_async) run the same attempts
 * (breaker, accounting, retries of idempotent services) as the blocking
 * call, as a state machine driven by the slot's aio callback on NNG's
 * task threads:
 *
 *   SEND --sent--> RECV --reply or error--> attempt ends --> done
 *                                                |
 *                       (idempotent, failed) PAUSE --> SEND
 *
 * An asynchronous slot is on its entry's busy list (slot_lock) from the
 * start of the call until done has returned.  Closing the bus sets
 * `closing`, aborts every busy slot's aio and waits for the list to
 * empty; a callback that starts a new operation checks `closing` after
 * starting it and aborts it itself if it was set, so no operation
 * outlives the close.  A slot freed from its own callback goes through
 * nng_aio_reap (nng_aio_free would wait for the callback it runs in).
 *
 * Unserve: the entry forgets the service under bus->lock (new calls get
 * CAIRN_ENOENT), the thread's receive aio is stopped, which ends the
 * thread once a running handler has returned and replied, the thread is
 * joined, and then the rep socket is closed.  A call still waiting on
 * that service fails with CAIRN_ECONNREFUSED when its pipe closes (NNG
 * resends nothing, see above), or with CAIRN_ETIMEDOUT.
 */
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bus_impl.h"
#include "store.h"

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

static void
bus_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
bus_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* ---- the service side -------------------------------------------------- */

cairn_err
cairni_out_append(cairn_out *out, const void *data, size_t len)
{
    size_t have;
    size_t cap;

    if (out == NULL || out->msg == NULL || (data == NULL && len > 0)) {
        return CAIRN_EINVAL;
    }
    have = nng_msg_len(out->msg) - BUS_REP_HDR;
    if (len > CAIRN_ENV_MAX_SIZE - have) {
        return CAIRN_ETOOBIG;
    }
    /* Grow geometrically: nng_msg_append alone reallocates each time. */
    if (nng_msg_len(out->msg) + len > nng_msg_capacity(out->msg)) {
        cap = 2 * nng_msg_capacity(out->msg);
        if (cap < nng_msg_len(out->msg) + len) {
            cap = nng_msg_len(out->msg) + len;
        }
        if (nng_msg_reserve(out->msg, cap) != 0) {
            return CAIRN_ENOMEM;
        }
    }
    return nng_msg_append(out->msg, data, len) == 0 ? CAIRN_OK : CAIRN_ENOMEM;
}

/* Runs one request.  req is freed here; the handler's envelope points
 * into it, so only after the handler has returned. */
static void
bus_svc_handle(cairn_svc *svc, nng_msg *req)
{
    cairni_bus_rpc *rpc = svc->rpc;
    const uint8_t  *body = nng_msg_body(req);
    size_t          len = nng_msg_len(req);
    cairn_out       out = {NULL};
    cairn_envelope  env;
    cairn_err       st;

    if (len < BUS_REQ_HDR) {
        atomic_fetch_add(&rpc->bad, 1);
        goto done; /* no reply: the caller times out */
    }
    if (cairni_mono_us() >= bus_get_be(body, BUS_REQ_HDR)) {
        atomic_fetch_add(&rpc->expired, 1);
        goto done; /* the caller has given up: do not run late work */
    }
    if (nng_msg_alloc(&out.msg, BUS_REP_HDR) != 0) {
        goto done;
    }
    if (cairn_envelope_decode(body + BUS_REQ_HDR, len - BUS_REQ_HDR, &env) !=
        CAIRN_OK) {
        atomic_fetch_add(&rpc->bad, 1);
        st = CAIRN_EPROTO;
    } else {
        st = svc->fn(svc->arg, &env, &out);
        atomic_fetch_add(&rpc->handled, 1);
    }
    bus_put_be(nng_msg_body(out.msg), (uint32_t)st, BUS_REP_HDR);
    nng_aio_set_msg(svc->saio, out.msg);
    nng_aio_set_timeout(svc->saio, BUS_REPLY_SEND_MS);
    nng_send_aio(svc->rep, svc->saio);
    nng_aio_wait(svc->saio);
    if (nng_aio_result(svc->saio) != 0) {
        nng_msg_free(nng_aio_get_msg(svc->saio)); /* a failed send leaves
                                                     it ours */
        nng_aio_set_msg(svc->saio, NULL);
    }
done:
    nng_msg_free(req);
}

static void *
bus_svc_main(void *arg)
{
    cairn_svc *svc = arg;
    nng_msg   *req;
    int        rv;

    for (;;) {
        nng_recv_aio(svc->rep, svc->raio);
        nng_aio_wait(svc->raio);
        if ((rv = nng_aio_result(svc->raio)) != 0) {
            if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
                break; /* bus_svc_free */
            }
            continue; /* e.g. NNG_ENOMEM: transient */
        }
        req = nng_aio_get_msg(svc->raio);
        nng_aio_set_msg(svc->raio, NULL);
        bus_svc_handle(svc, req);
    }
    return NULL;
}

/* Ends the thread by stopping its receive aio (a running handler
 * finishes and sends its reply first), joins it, and only then closes
 * the socket: closing a socket while a thread may be entering a receive
 * on it is not safe with NNG 1.5.  svc is unlinked already. */
static void
bus_svc_free(cairn_svc *svc)
{
    if (svc->raio != NULL) {
        nng_aio_stop(svc->raio);
    }
    if (svc->started) {
        pthread_join(svc->thread, NULL);
    }
    if (nng_socket_id(svc->rep) > 0) {
        nng_close(svc->rep);
    }
    if (svc->raio != NULL) {
        nng_aio_free(svc->raio);
    }
    if (svc->saio != NULL) {
        nng_aio_free(svc->saio);
    }
    free(svc->owner);
    free(svc);
}

/* bus->lock held.  Listens on rpc's URL and starts the thread. */
static cairn_err
bus_svc_open(cairn_svc *svc, cairni_bus_rpc *rpc)
{
    nng_socket s;
    int        rv;
    cairn_err  err;

    if ((rv = nng_rep0_open(&s)) != 0) {
        return cairni_nng_err(rv);
    }
    svc->rep = s;
    svc->rpc = rpc;
    if ((rv = nng_socket_set_ms(svc->rep, NNG_OPT_SENDTIMEO,
                                BUS_REPLY_SEND_MS)) != 0 ||
        (rv = nng_listen(svc->rep, rpc->url, NULL, 0)) != 0) {
        return cairni_nng_err(rv);
    }
    err = cairni_bus_thread_start(&svc->thread, bus_svc_main, svc);
    svc->started = err == CAIRN_OK;
    return err;
}

/* ---- entries ------------------------------------------------------------ */

static void
bus_slot_free(bus_slot *s)
{
    if (s->aio != NULL) {
        nng_aio_free(s->aio);
    }
    if (nng_ctx_id(s->ctx) > 0) {
        nng_ctx_close(s->ctx);
    }
    free(s);
}

static void
bus_slots_free(bus_slot *s)
{
    while (s != NULL) {
        bus_slot *next = s->next;
        bus_slot_free(s);
        s = next;
    }
}

static void
bus_rpc_free(cairni_bus_rpc *rpc)
{
    bus_slots_free(rpc->slots);
    bus_slots_free(rpc->aslots);
    if (rpc->has_req) {
        nng_close(rpc->req);
    }
    pthread_cond_destroy(&rpc->idle_cv);
    pthread_mutex_destroy(&rpc->slot_lock);
    cairni_breaker_fini(&rpc->breaker);
    free(rpc->name);
    free(rpc);
}

/* ---- call policies ------------------------------------------------------ */

static void
bus_policies_free(cairni_bus *bus)
{
    for (size_t i = 0; i < bus->npolicies; i++) {
        free((char *)bus->policies[i].name);
    }
    free(bus->policies);
    bus->policies = NULL;
    bus->npolicies = 0;
}

cairn_err
cairni_bus_policies_set(cairni_bus *bus, const cairni_calls_cfg *calls)
{
    cairni_call_cfg *d = &bus->policy_default;

    memset(d, 0, sizeof(*d));
    d->attempts = 1;
    d->probes = 1;
    d->backoff_ms = 1;
    if (calls == NULL) {
        return CAIRN_OK; /* failures 0: no breaker */
    }
    d->failures = calls->failures;
    d->open_ms = calls->open_ms;
    d->probes = calls->probes;
    d->backoff_ms = calls->backoff_ms;
    if (calls->services.count == 0) {
        return CAIRN_OK;
    }
    bus->policies = calloc(calls->services.count, sizeof(*bus->policies));
    if (bus->policies == NULL) {
        return CAIRN_ENOMEM;
    }
    const cairni_call_cfg *src = calls->services.items;
    for (size_t i = 0; i < calls->services.count; i++) {
        bus->policies[i] = src[i];
        if ((bus->policies[i].name = strdup(src[i].name)) == NULL) {
            bus_policies_free(bus);
            return CAIRN_ENOMEM;
        }
        bus->npolicies++;
    }
    return CAIRN_OK;
}

static const cairni_call_cfg *
bus_policy(const cairni_bus *bus, const char *service)
{
    for (size_t i = 0; i < bus->npolicies; i++) {
        if (strcmp(bus->policies[i].name, service) == 0) {
            return &bus->policies[i];
        }
    }
    return &bus->policy_default;
}

/* bus->lock held.  The entry for name, made if create and missing. */
static cairn_err
bus_rpc_find(cairni_bus *bus, const char *name, bool create,
             cairni_bus_rpc **rpcp)
{
    cairni_bus_rpc *rpc;

    for (rpc = bus->rpcs; rpc != NULL; rpc = rpc->next) {
        if (strcmp(rpc->name, name) == 0) {
            *rpcp = rpc;
            return CAIRN_OK;
        }
    }
    if (!create) {
        return CAIRN_ENOENT;
    }
    if ((rpc = calloc(1, sizeof(*rpc))) == NULL) {
        return CAIRN_ENOMEM;
    }
    if ((rpc->name = strdup(name)) == NULL) {
        free(rpc);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&rpc->slot_lock, NULL);
    pthread_cond_init(&rpc->idle_cv, NULL);
    rpc->policy = *bus_policy(bus, name);
    cairni_breaker_init(&rpc->breaker, (uint32_t)rpc->policy.failures,
                        rpc->policy.open_ms * 1000,
                        (uint32_t)rpc->policy.probes);
    rpc->req = bus_nosock;
    cairni_bus_url(bus, "svc", rpc->url);
    rpc->next = bus->rpcs;
    bus->rpcs = rpc;
    *rpcp = rpc;
    return CAIRN_OK;
}

cairn_err
cairni_bus_serve(cairni_bus *bus, const char *service, const char *owner,
                 cairn_serve_fn fn, void *arg, cairn_svc **svcp)
{
    cairni_bus_rpc *rpc;
    cairn_svc      *svc;
    cairn_err       rv;

    if (bus == NULL || fn == NULL || svcp == NULL ||
        cairni_bus_name_valid(service) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if ((svc = calloc(1, sizeof(*svc))) == NULL) {
        return CAIRN_ENOMEM;
    }
    svc->bus = bus;
    svc->fn = fn;
    svc->arg = arg;
    svc->rep = bus_nosock;
    if ((svc->owner = strdup(owner != NULL ? owner : "")) == NULL ||
        nng_aio_alloc(&svc->raio, NULL, NULL) != 0 ||
        nng_aio_alloc(&svc->saio, NULL, NULL) != 0) {
        rv = CAIRN_ENOMEM;
        goto fail;
    }
    pthread_mutex_lock(&bus->lock);
    if ((rv = bus_rpc_find(bus, service, true, &rpc)) == CAIRN_OK) {
        rv = rpc->svc != NULL ? CAIRN_EEXIST : bus_svc_open(svc, rpc);
    }
    if (rv == CAIRN_OK) {
        rpc->svc = svc;
        atomic_store(&rpc->served, true);
    }
    pthread_mutex_unlock(&bus->lock);
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *svcp = svc;
    return CAIRN_OK;
fail:
    bus_svc_free(svc);
    return rv;
}

void
cairni_bus_unserve(cairn_svc *svc)
{
    if (svc == NULL) {
        return;
    }
    pthread_mutex_lock(&svc->bus->lock);
    if (svc->rpc->svc == svc) {
        svc->rpc->svc = NULL;
        atomic_store(&svc->rpc->served, false);
    }
    pthread_mutex_unlock(&svc->bus->lock);
    bus_svc_free(svc);
}

/* ---- the caller side ---------------------------------------------------- */

/* bus->lock held.  Opens the req0 socket callers of rpc share. */
static cairn_err
bus_rpc_dial(cairni_bus_rpc *rpc)
{
    nng_socket s;
    int        rv;

    if ((rv = nng_req0_open(&s)) != 0) {
        return cairni_nng_err(rv);
    }
    /* Never resend (see the top of this file); redial a re-served name
     * quickly. */
    if ((rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME,
                                NNG_DURATION_INFINITE)) != 0 ||
        (rv = nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 1)) != 0 ||
        (rv = nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 100)) != 0 ||
        (rv = nng_dial(s, rpc->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        nng_close(s);
        return cairni_nng_err(rv);
    }
    rpc->req = s;
    rpc->has_req = true;
    return CAIRN_OK;
}

/* The entry of a registered service, with its req socket open. */
static cairn_err
bus_rpc_lookup(cairni_bus *bus, const char *name, cairni_bus_rpc **rpcp)
{
    cairni_bus_rpc *rpc = NULL;
    cairn_err       rv;

    pthread_mutex_lock(&bus->lock);
    rv = bus_rpc_find(bus, name, false, &rpc);
    if (rv == CAIRN_OK && rpc->svc == NULL) {
        rv = CAIRN_ENOENT;
    }
    if (rv == CAIRN_OK && !rpc->has_req) {
        rv = bus_rpc_dial(rpc);
    }
    pthread_mutex_unlock(&bus->lock);
    *rpcp = rpc;
    return rv;
}

static void bus_acall_cb(void *arg);

/* A slot from the free list of its kind, or a new one.  An asynchronous
 * slot is put on the busy list; CAIRN_ECLOSED once the bus is closing. */
static cairn_err
bus_slot_get(cairni_bus_rpc *rpc, bool async, bus_slot **sp)
{
    bus_slot **list = async ? &rpc->aslots : &rpc->slots;
    bus_slot  *s;
    int        rv = NNG_ENOMEM;

    pthread_mutex_lock(&rpc->slot_lock);
    if ((s = *list) != NULL) {
        *list = s->next;
        async ? rpc->naslots-- : rpc->nslots--;
    }
    pthread_mutex_unlock(&rpc->slot_lock);
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            return CAIRN_ENOMEM;
        }
        s->ctx = (nng_ctx)NNG_CTX_INITIALIZER;
        s->async = async;
        s->rpc = rpc;
        if ((rv = nng_ctx_open(&s->ctx, rpc->req)) != 0 ||
            (rv = nng_aio_alloc(&s->aio, async ? bus_acall_cb : NULL, s)) !=
                0) {
            bus_slot_free(s);
            return cairni_nng_err(rv);
        }
    }
    if (async) {
        pthread_mutex_lock(&rpc->slot_lock);
        if (atomic_load(&rpc->closing)) {
            pthread_mutex_unlock(&rpc->slot_lock);
            bus_slot_free(s); /* not from a callback: plain free */
            return CAIRN_ECLOSED;
        }
        s->prev = NULL;
        s->next = rpc->busy;
        if (rpc->busy != NULL) {
            rpc->busy->prev = s;
        }
        rpc->busy = s;
        rpc->nbusy++;
        pthread_mutex_unlock(&rpc->slot_lock);
    }
    *sp = s;
    return CAIRN_OK;
}

/* Gives a slot back.  An asynchronous one leaves the busy list; after
 * that its entry may be freed by a close, so nothing of rpc is touched
 * once the lock is dropped.  from_cb: called from the slot's own aio
 * callback, where the aio can only be reaped. */
static void
bus_slot_put(cairni_bus_rpc *rpc, bus_slot *s, bool from_cb)
{
    bus_slot **list = s->async ? &rpc->aslots : &rpc->slots;
    unsigned  *n = s->async ? &rpc->naslots : &rpc->nslots;

    pthread_mutex_lock(&rpc->slot_lock);
    if (s->async) {
        if (s->prev != NULL) {
            s->prev->next = s->next;
        } else {
            rpc->busy = s->next;
        }
        if (s->next != NULL) {
            s->next->prev = s->prev;
        }
        if (--rpc->nbusy == 0) {
            pthread_cond_broadcast(&rpc->idle_cv);
        }
    }
    if (*n < BUS_SLOTS_MAX && !atomic_load(&rpc->closing)) {
        s->next = *list;
        *list = s;
        (*n)++;
        s = NULL;
    }
    pthread_mutex_unlock(&rpc->slot_lock);
    if (s != NULL && from_cb) {
        nng_ctx_close(s->ctx);
        nng_aio_reap(s->aio);
        free(s);
    } else if (s != NULL) {
        bus_slot_free(s);
    }
}

/* Milliseconds left until deadline, rounded up; 0 once it has passed. */
static nng_duration
bus_left_ms(uint64_t deadline)
{
    uint64_t now = cairni_mono_us();
    uint64_t ms;

    if (now >= deadline) {
        return 0;
    }
    ms = (deadline - now + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

static cairn_err
bus_call_err(int rv)
{
    return rv == NNG_ETIMEDOUT ? CAIRN_ETIMEDOUT : cairni_nng_err(rv);
}

/* Waits for one operation on the slot's context with what is left of
 * the deadline. */
static int
bus_slot_run(bus_slot *s, uint64_t deadline, void (*op)(nng_ctx, nng_aio *))
{
    nng_duration left = bus_left_ms(deadline);

    if (left == 0) {
        return NNG_ETIMEDOUT;
    }
    nng_aio_set_timeout(s->aio, left);
    op(s->ctx, s->aio);
    nng_aio_wait(s->aio);
    return nng_aio_result(s->aio);
}

/* Sends *msgp and waits for the reply.  On success *msgp is the reply;
 * on failure it is the request if NNG gave it back, or NULL. */
static cairn_err
bus_exchange(bus_slot *s, nng_msg **msgp, uint64_t deadline)
{
    int rv;

    nng_aio_set_msg(s->aio, *msgp);
    if ((rv = bus_slot_run(s, deadline, nng_ctx_send)) != 0) {
        /* Still ours: a failed send gives the message back. */
        *msgp = nng_aio_get_msg(s->aio);
        nng_aio_set_msg(s->aio, NULL);
        return bus_call_err(rv);
    }
    *msgp = NULL; /* the context owns the request now */
    if ((rv = bus_slot_run(s, deadline, nng_ctx_recv)) != 0) {
        return bus_call_err(rv);
    }
    *msgp = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    return CAIRN_OK;
}

/* The request message: the deadline header, then env. */
static cairn_err
bus_req_msg(const cairn_envelope *req, const char *service,
            uint64_t deadline, nng_msg **msgp)
{
    uint8_t hdr[BUS_REQ_HDR];

    bus_put_be(hdr, deadline, BUS_REQ_HDR);
    return cairni_bus_env_msg(req, service, hdr, sizeof(hdr), false, msgp);
}

/* Makes reply the view of msg, which it then owns; msg is freed if it
 * is no reply. */
static cairn_err
bus_reply_take(nng_msg *msg, cairn_reply *reply)
{
    if (nng_msg_len(msg) < BUS_REP_HDR) {
        nng_msg_free(msg);
        return CAIRN_EPROTO;
    }
    reply->status = (cairn_err)bus_get_be(nng_msg_body(msg), BUS_REP_HDR);
    reply->data = (const uint8_t *)nng_msg_body(msg) + BUS_REP_HDR;
    reply->len = nng_msg_len(msg) - BUS_REP_HDR;
    reply->impl_ = msg; /* released by cairni_reply_fini */
    return CAIRN_OK;
}

static void
bus_rpc_account(cairni_bus_rpc *rpc, cairn_err rv, const cairn_reply *reply,
                uint64_t t0)
{
    if (rv == CAIRN_OK) {
        cairni_hist_observe(&rpc->latency, cairni_mono_us() - t0);
        atomic_fetch_add(reply->status == CAIRN_OK ? &rpc->ok : &rpc->error, 1);
    } else {
        atomic_fetch_add(rv == CAIRN_ETIMEDOUT ? &rpc->timeout : &rpc->error,
                         1);
    }
}

/* One exchange with the service; reply is filled on CAIRN_OK. */
static cairn_err
bus_call_once(cairni_bus_rpc *rpc, const char *service,
              const cairn_envelope *req, uint64_t deadline, cairn_reply *reply)
{
    bus_slot *slot = NULL;
    nng_msg  *msg = NULL;
    cairn_err rv;

    if ((rv = bus_req_msg(req, service, deadline, &msg)) != CAIRN_OK ||
        (rv = bus_slot_get(rpc, false, &slot)) != CAIRN_OK ||
        (rv = bus_exchange(slot, &msg, deadline)) != CAIRN_OK) {
        goto done;
    }
    rv = bus_reply_take(msg, reply);
    msg = NULL;
done:
    if (slot != NULL) {
        bus_slot_put(rpc, slot, false);
    }
    if (msg != NULL) {
        nng_msg_free(msg);
    }
    return rv;
}

/* Whether attempt (1-based) may be followed by another: the service is
 * idempotent, attempts are left, and the pause ends before the deadline.
 * *pause_ms is that pause. */
static bool
bus_may_retry(const cairni_bus_rpc *rpc, uint32_t attempt, uint64_t deadline,
              uint32_t *pause_ms)
{
    const cairni_call_cfg *p = &rpc->policy;
    cairni_retry_cfg       r = {
              .initial_ms = p->backoff_ms,
              .max_ms = p->backoff_ms > BUS_BACKOFF_MAX_MS ? p->backoff_ms
                                                           : BUS_BACKOFF_MAX_MS,
              .multiplier = 2.0,
    };
    uint64_t               ms;

    if (!p->idempotent || attempt >= (uint64_t)p->attempts) {
        return false;
    }
    ms = cairni_backoff_delay(&r, attempt, cairni_retry_rand());
    if (cairni_mono_us() + ms * 1000 >= deadline) {
        return false;
    }
    *pause_ms = (uint32_t)ms;
    return true;
}

/*
 * The end of one attempt, blocking or not: accounts it, feeds the
 * breaker, and says whether another attempt follows after *pause_ms
 * (reply is then released and the retry counted).
 */
static bool
bus_attempt_end(cairni_bus_rpc *rpc, uint32_t attempt, uint64_t deadline,
                uint64_t t0, bool probe, cairn_err rv, cairn_reply *reply,
                uint32_t *pause_ms)
{
    bool failed = cairni_call_failed(rv, reply->status);

    /* Refused: the pipe to a provider that was being unserved closed
     * under the request.  Unserve joins the handler thread before it
     * closes the socket, so that request never reached a handler and is
     * sent again, to the provider serving the name now, whatever the
     * service's policy.  It says nothing about the service: no verdict
     * for the breaker. */
    if (rv == CAIRN_ECONNREFUSED && attempt <= BUS_REFUSED_RESENDS &&
        atomic_load(&rpc->served) && cairni_mono_us() + 1000 < deadline) {
        cairni_breaker_cancel(&rpc->breaker, probe);
        *pause_ms = 1;
        return true;
    }

    bus_rpc_account(rpc, rv, reply, t0);
    cairni_breaker_done(&rpc->breaker, cairni_mono_us(), probe, failed);
    if (!failed || !bus_may_retry(rpc, attempt, deadline, pause_ms)) {
        return false;
    }
    cairni_reply_fini(reply);
    atomic_fetch_add(&rpc->retries, 1);
    return true;
}

/* Validates a call and finds the entry of its service. */
static cairn_err
bus_call_begin(cairni_bus *bus, const char *service,
               const cairn_envelope *req, uint32_t timeout_ms,
               cairni_bus_rpc **rpcp)
{
    if (bus == NULL || req == NULL || timeout_ms == 0 ||
        cairni_bus_name_valid(service) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    return bus_rpc_lookup(bus, service, rpcp);
}

cairn_err
cairni_bus_call(cairni_bus *bus, const char *service, const cairn_envelope *req,
                uint32_t timeout_ms, cairn_reply *reply)
{
    uint64_t        deadline = cairni_mono_us() + (uint64_t)timeout_ms * 1000;
    cairni_bus_rpc *rpc;
    cairn_err       rv;
    uint32_t        pause_ms;

    if (reply == NULL) {
        return CAIRN_EINVAL;
    }
    memset(reply, 0, sizeof(*reply));
    if ((rv = bus_call_begin(bus, service, req, timeout_ms, &rpc)) !=
        CAIRN_OK) {
        return rv;
    }
    for (uint32_t attempt = 1;; attempt++) {
        uint64_t t0 = cairni_mono_us();
        bool     probe;

        if ((rv = cairni_breaker_enter(&rpc->breaker, t0, &probe)) !=
            CAIRN_OK) {
            return rv;
        }
        rv = bus_call_once(rpc, service, req, deadline, reply);
        if (!bus_attempt_end(rpc, attempt, deadline, t0, probe, rv, reply,
                             &pause_ms)) {
            return rv;
        }
        nng_msleep((nng_duration)pause_ms);
    }
}

/* ---- asynchronous calls ------------------------------------------------- */

/* Starts op on s (a send, a receive, or with op NULL a pause of
 * pause_ms), bounded by the deadline.  A close that began meanwhile
 * aborts it (see the top of this file). */
static void
bus_acall_op(bus_slot *s, void (*op)(nng_ctx, nng_aio *), uint32_t pause_ms)
{
    if (op == NULL) {
        nng_aio_set_timeout(s->aio, NNG_DURATION_INFINITE);
        nng_sleep_aio((nng_duration)pause_ms, s->aio);
    } else {
        /* Once the deadline has passed this is NNG_DURATION_ZERO: the
         * operation completes at once, with NNG_ETIMEDOUT unless it
         * could be done without waiting. */
        nng_aio_set_timeout(s->aio, bus_left_ms(s->deadline));
        op(s->ctx, s->aio);
    }
    if (atomic_load(&s->rpc->closing)) {
        nng_aio_abort(s->aio, NNG_ECLOSED);
    }
}

/* Calls done once, then gives the slot back.  reply is NULL or filled. */
static void
bus_acall_finish(bus_slot *s, cairn_err rv, cairn_reply *reply)
{
    if (s->req != NULL) {
        nng_msg_free(s->req);
        s->req = NULL;
    }
    s->done(s->arg, rv, rv == CAIRN_OK ? reply : NULL);
    if (rv == CAIRN_OK) {
        cairni_reply_fini(reply);
    }
    bus_slot_put(s->rpc, s, true);
}

/* Starts the next attempt: the breaker first, then the send of the
 * request (a copy of it while more attempts may follow).  CAIRN_OK: the
 * callback takes it from here. */
static cairn_err
bus_acall_attempt(bus_slot *s)
{
    const cairni_call_cfg *p = &s->rpc->policy;
    nng_msg               *msg;
    cairn_err              rv;

    s->t0 = cairni_mono_us();
    if ((rv = cairni_breaker_enter(&s->rpc->breaker, s->t0, &s->probe)) !=
        CAIRN_OK) {
        return rv;
    }
    s->attempt++;
    if (p->idempotent && s->attempt < (uint64_t)p->attempts) {
        if (nng_msg_dup(&msg, s->req) != 0) {
            msg = NULL;
        }
    } else {
        msg = s->req;
        s->req = NULL;
    }
    if (msg == NULL) { /* an attempt that failed: no retry after it */
        cairn_reply none = {0};
        uint32_t    pause_ms;
        (void)bus_attempt_end(s->rpc, UINT32_MAX, s->deadline, s->t0,
                              s->probe, CAIRN_ENOMEM, &none, &pause_ms);
        return CAIRN_ENOMEM;
    }
    s->state = BUS_A_SEND;
    nng_aio_set_msg(s->aio, msg);
    bus_acall_op(s, nng_ctx_send, 0);
    return CAIRN_OK;
}

/* The end of an attempt with rv (and the reply msg on success). */
static void
bus_acall_ended(bus_slot *s, cairn_err rv, nng_msg *msg)
{
    cairn_reply reply = {0};
    uint32_t    pause_ms;

    if (rv == CAIRN_OK) {
        rv = bus_reply_take(msg, &reply);
    }
    if (bus_attempt_end(s->rpc, s->attempt, s->deadline, s->t0, s->probe, rv,
                        &reply, &pause_ms)) {
        s->state = BUS_A_PAUSE;
        bus_acall_op(s, NULL, pause_ms);
        return;
    }
    bus_acall_finish(s, rv, &reply);
}

static void
bus_acall_cb(void *arg)
{
    bus_slot *s = arg;
    int       rv = nng_aio_result(s->aio);
    nng_msg  *msg = nng_aio_get_msg(s->aio);
    cairn_err err;

    nng_aio_set_msg(s->aio, NULL);
    switch (s->state) {
    case BUS_A_SEND:
        if (rv != 0) {
            nng_msg_free(msg); /* a failed send gives it back */
            bus_acall_ended(s, bus_call_err(rv), NULL);
            return;
        }
        s->state = BUS_A_RECV;
        bus_acall_op(s, nng_ctx_recv, 0);
        return;
    case BUS_A_RECV:
        bus_acall_ended(s, rv == 0 ? CAIRN_OK : bus_call_err(rv), msg);
        return;
    case BUS_A_PAUSE:
        if (rv != 0) {
            bus_acall_finish(s, bus_call_err(rv), NULL);
        } else if ((err = bus_acall_attempt(s)) != CAIRN_OK) {
            bus_acall_finish(s, err, NULL);
        }
        return;
    }
}

cairn_err
cairni_bus_call_async(cairni_bus *bus, const char *service,
                      const cairn_envelope *req, uint32_t timeout_ms,
                      cairni_call_done done, void *arg)
{
    uint64_t        deadline = cairni_mono_us() + (uint64_t)timeout_ms * 1000;
    cairni_bus_rpc *rpc;
    bus_slot       *s = NULL;
    nng_msg        *msg = NULL;
    cairn_err       rv;

    if (done == NULL) {
        return CAIRN_EINVAL;
    }
    if ((rv = bus_call_begin(bus, service, req, timeout_ms, &rpc)) !=
            CAIRN_OK ||
        (rv = bus_req_msg(req, service, deadline, &msg)) != CAIRN_OK ||
        (rv = bus_slot_get(rpc, true, &s)) != CAIRN_OK) {
        goto fail;
    }
    s->done = done;
    s->arg = arg;
    s->req = msg;
    s->deadline = deadline;
    s->attempt = 0;
    msg = NULL;
    if ((rv = bus_acall_attempt(s)) != CAIRN_OK) {
        goto fail;
    }
    return CAIRN_OK;
fail:
    if (s != NULL) {
        if (s->req != NULL) {
            nng_msg_free(s->req);
            s->req = NULL;
        }
        bus_slot_put(rpc, s, false);
    }
    if (msg != NULL) {
        nng_msg_free(msg);
    }
    return rv;
}

void
cairni_reply_fini(cairn_reply *reply)
{
    if (reply == NULL) {
        return;
    }
    if (reply->impl_ != NULL) {
        nng_msg_free(reply->impl_);
    }
    memset(reply, 0, sizeof(*reply));
}

/* ---- close, metrics, listing -------------------------------------------- */

/* Ends the asynchronous calls in progress on rpc: each one's done runs
 * (with CAIRN_ECLOSED, unless it was finishing anyway) before this
 * returns.  No new one can start. */
static void
bus_rpc_drain(cairni_bus_rpc *rpc)
{
    pthread_mutex_lock(&rpc->slot_lock);
    atomic_store(&rpc->closing, true);
    for (bus_slot *s = rpc->busy; s != NULL; s = s->next) {
        nng_aio_abort(s->aio, NNG_ECLOSED);
    }
    while (rpc->nbusy > 0) {
        pthread_cond_wait(&rpc->idle_cv, &rpc->slot_lock);
    }
    pthread_mutex_unlock(&rpc->slot_lock);
}

void
cairni_bus_rpcs_close(cairni_bus *bus)
{
    cairni_bus_rpc *rpcs;

    pthread_mutex_lock(&bus->lock);
    rpcs = bus->rpcs;
    bus->rpcs = NULL;
    pthread_mutex_unlock(&bus->lock);
    while (rpcs != NULL) {
        cairni_bus_rpc *next = rpcs->next;
        bus_rpc_drain(rpcs);
        if (rpcs->svc != NULL) {
            bus_svc_free(rpcs->svc); /* joins before the entry goes */
        }
        bus_rpc_free(rpcs);
        rpcs = next;
    }
    bus_policies_free(bus);
}

/* bus->lock held. */
static void
bus_render_rpc_latency(cairni_bus *bus, cairni_buf *out)
{
    cairni_buf labels = {0};

    cairni_buf_printf(out, "# TYPE cairn_rpc_latency_seconds histogram\n");
    for (const cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        labels.len = 0;
        cairni_buf_printf(&labels, "service=\"");
        cairni_prom_escape(&labels, r->name, strlen(r->name));
        cairni_buf_printf(&labels, "\"");
        if (!labels.failed) {
            cairni_hist_render(&r->latency, "cairn_rpc_latency_seconds",
                               labels.data, out);
        }
    }
    cairni_buf_fini(&labels);
}

/* bus->lock held.  One counter family over all entries. */
static void
bus_render_rpc_family(cairni_bus *bus, cairni_buf *out, const char *metric,
                      size_t field)
{
    cairni_buf_printf(out, "# TYPE %s counter\n", metric);
    for (const cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)((const char *)r + field);
        cairni_bus_prom(out, metric, "service", r->name, NULL, NULL,
                        atomic_load(v));
    }
}

/* bus->lock held.  State (0 closed, 1 open, 2 half-open), transitions
 * and fast failures of each service's breaker. */
static void
bus_render_breakers(cairni_bus *bus, cairni_buf *out)
{
    static const char *const to[] = {"open", "half_open", "closed"};

    cairni_buf_printf(out, "# TYPE cairn_rpc_breaker_state gauge\n");
    for (cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        cairni_bus_prom(out, "cairn_rpc_breaker_state", "service", r->name,
                        NULL, NULL, (uint64_t)cairni_breaker_get(&r->breaker));
    }
    cairni_buf_printf(out,
                      "# TYPE cairn_rpc_breaker_transitions_total counter\n");
    for (cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        uint64_t v[3] = {atomic_load(&r->breaker.n_open),
                         atomic_load(&r->breaker.n_half),
                         atomic_load(&r->breaker.n_closed)};
        for (int i = 0; i < 3; i++) {
            cairni_bus_prom(out, "cairn_rpc_breaker_transitions_total",
                            "service", r->name, "to", to[i], v[i]);
        }
    }
    bus_render_rpc_family(bus, out, "cairn_rpc_rejected_total",
                          offsetof(cairni_bus_rpc, breaker.n_rejected));
}

void
cairni_bus_rpcs_render(cairni_bus *bus, cairni_buf *out)
{
    static const char *const results[] = {"ok", "timeout", "error"};

    pthread_mutex_lock(&bus->lock);
    bus_render_rpc_latency(bus, out);
    cairni_buf_printf(out, "# TYPE cairn_rpc_calls_total counter\n");
    for (const cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        uint64_t v[3] = {atomic_load(&r->ok), atomic_load(&r->timeout),
                         atomic_load(&r->error)};
        for (int i = 0; i < 3; i++) {
            cairni_bus_prom(out, "cairn_rpc_calls_total", "service", r->name,
                            "result", results[i], v[i]);
        }
    }
    bus_render_rpc_family(bus, out, "cairn_rpc_handled_total",
                          offsetof(cairni_bus_rpc, handled));
    bus_render_rpc_family(bus, out, "cairn_rpc_expired_total",
                          offsetof(cairni_bus_rpc, expired));
    bus_render_rpc_family(bus, out, "cairn_rpc_malformed_total",
                          offsetof(cairni_bus_rpc, bad));
    bus_render_rpc_family(bus, out, "cairn_rpc_retries_total",
                          offsetof(cairni_bus_rpc, retries));
    bus_render_breakers(bus, out);
    pthread_mutex_unlock(&bus->lock);
}

void
cairni_bus_list_services(cairni_bus *bus, cairni_buf *out)
{
    pthread_mutex_lock(&bus->lock);
    for (cairni_bus_rpc *r = bus->rpcs; r != NULL; r = r->next) {
        if (r->svc != NULL) {
            cairni_buf_printf(
                out, "%s %s %llu %s\n", r->name,
                r->svc->owner[0] ? r->svc->owner : "-",
                (unsigned long long)atomic_load(&r->handled),
                cairni_breaker_name(cairni_breaker_get(&r->breaker)));
        }
    }
    pthread_mutex_unlock(&bus->lock);
}
