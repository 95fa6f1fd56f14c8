/*
 * bus_call.c - the caller side of request/reply: finding and dialing a
 * service's entry, request contexts, the exchange with its deadline,
 * the attempts a policy allows (circuit breaker, retries of idempotent
 * services), and the blocking and asynchronous calls.  The design, wire
 * format and locking are at the top of bus_rpc.c.
 */
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bus_rpc_impl.h"
#include "store.h"

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

void
cairni_bus_slots_free(bus_slot *s)
{
    while (s != NULL) {
        bus_slot *next = s->next;
        bus_slot_free(s);
        s = next;
    }
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
    rv = cairni_bus_rpc_find(bus, name, false, &rpc);
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
