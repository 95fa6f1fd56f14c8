/*
 * bus_rpc.c - request/reply services by name over NNG req0/rep0: the
 * service side, the entries, call policies, close and metrics.  The
 * caller side (contexts, attempts, blocking and asynchronous calls) is
 * bus_call.c; what both share is bus_rpc_impl.h.
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

#include "bus_rpc_impl.h"

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
bus_rpc_free(cairni_bus_rpc *rpc)
{
    cairni_bus_slots_free(rpc->slots);
    cairni_bus_slots_free(rpc->aslots);
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
cairn_err
cairni_bus_rpc_find(cairni_bus *bus, const char *name, bool create,
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
    if ((rv = cairni_bus_rpc_find(bus, service, true, &rpc)) == CAIRN_OK) {
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
