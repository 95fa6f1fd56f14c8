/*
 * bus.c - the in-process bus: publish/subscribe with MQTT-style filters
 * over NNG inproc transports, and what the work queues (bus_queue.c) and
 * request/reply services (bus_rpc.c) share with it.
 *
 * Publish/subscribe.  NNG's own sub0 prefix matching knows nothing of
 * '+' and '#', so the bus keeps the list of subscriptions itself and
 * matches every publish against every filter with cairn_topic_match.  A
 * publish encodes the envelope once and hands the same bytes to each
 * matching subscription.  Each subscription owns a push0 socket that
 * listens on a URL of its own, a pull0 socket dialed to it, and a
 * delivery thread that reads the pull0 side.
 *
 * Batching, sender side.  At most one nng_send_aio per subscription is
 * in flight.  While it is, matching messages are appended to the
 * subscription's pending batch (an nng_msg of records: 4-byte big-endian
 * length, then the encoded envelope).  The send callback, on an NNG
 * thread, sends the pending batch next, if there is one.  When the
 * pending batch already holds bus->sub_queue messages (or
 * CAIRNI_BUS_BATCH_MAX bytes), the new message is dropped and counted in
 * the subscription's and the topic's dropped counters: a publish never
 * waits for a subscriber.
 *
 * Batching, receiver side.  The delivery thread blocks in a receive,
 * delivers every record of the batch in order, then keeps receiving
 * without blocking (polls) until nothing is left, and only then blocks
 * again.  "wakeups" counts the blocking receives that returned a batch.
 * Queue consumers (bus_queue.c) run the same thread; their messages are
 * batches of one record.
 *
 * Invariants.
 *   - sub->pending != NULL implies sub->inflight; so a message finds
 *     either an idle aio (and is sent at once) or a batch to join, and
 *     the order of publishes is the order of delivery per subscription.
 *   - Once sub->closing is set (under sub->mtx), the send callback never
 *     starts another send; it frees what it holds.
 *   - A subscription reachable from bus->subs has its sockets open, its
 *     aio allocated and its delivery thread running.
 *
 * Locks, in the order they nest:
 *   bus->subs_lock (rwlock)  publish: shared, for the whole fan-out;
 *                            subscribe/unsubscribe/close: exclusive.
 *   sub->mtx                 pending batch and in-flight state; taken by
 *                            publishers and by the send callback.
 * Neither is held while a user callback runs.
 *
 * Threads.  Publishers: any thread.  Send callbacks: NNG's task threads.
 * Delivery: one thread per subscription or consumer, running fn; it
 * receives through an aio of its own so that another thread can end it
 * with nng_aio_stop.  Unsubscribe: removes the subscription under the
 * exclusive lock (no publisher can reach it afterwards), sets closing,
 * stops the send aio (which cancels a blocked send and waits for the
 * callback), stops the receive aio and joins the delivery thread (after
 * the callback it may be running), and only then closes both sockets
 * and frees.  Batches still inside NNG's pipes at that moment are
 * discarded with the subscription (NNG 1.5.2 now and then leaks, rather
 * than frees, a message caught in transit between two inproc sockets
 * when one of them closes; nothing above NNG can reach it).
 *
 * Ownership.  The bus owns every subscription, consumer, service and
 * queue until they are removed or the bus is closed.  Envelopes handed to
 * a callback point into a message the delivery thread frees after the
 * callback returns.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "bus_impl.h"

#define BUS_STACK_ENCODE 512 /* envelopes up to this size encode on stack */

static const nng_socket bus_nosock = NNG_SOCKET_INITIALIZER;

/* Delivery thread's cache of the last topic's counters, so that a run of
 * messages on one topic costs one metrics lookup. */
typedef struct bus_topic_cache {
    cairni_topic_stats *st;
    size_t              len;
    char                name[CAIRN_TOPIC_MAX];
} bus_topic_cache;

/* ---- small helpers ----------------------------------------------------- */

static void
bus_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
bus_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void
cairni_bus_url(cairni_bus *bus, const char *kind, char url[CAIRNI_BUS_URL_MAX])
{
    unsigned long long n = atomic_fetch_add(&bus->next_id, 1) + 1;
    snprintf(url, CAIRNI_BUS_URL_MAX, "%s/%s/%llu", bus->prefix, kind, n);
}

cairn_err
cairni_bus_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' ||
        strnlen(name, CAIRNI_BUS_NAME_MAX + 1) > CAIRNI_BUS_NAME_MAX) {
        return CAIRN_EINVAL;
    }
    return CAIRN_OK;
}

cairn_err
cairni_bus_thread_start(pthread_t *thr, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int      rv;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(thr, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rv == 0 ? CAIRN_OK : cairn_errno(rv);
}

void
cairni_bus_prom(cairni_buf *out, const char *metric, const char *k1,
                const char *v1, const char *k2, const char *v2, uint64_t value)
{
    cairni_buf_printf(out, "%s{%s=\"", metric, k1);
    cairni_prom_escape(out, v1, strlen(v1));
    if (k2 != NULL) {
        cairni_buf_printf(out, "\",%s=\"", k2);
        cairni_prom_escape(out, v2, strlen(v2));
    }
    cairni_buf_printf(out, "\"} %llu\n", (unsigned long long)value);
}

static bool
bus_id_is_zero(const uint8_t id[CAIRN_ID_LEN])
{
    for (size_t i = 0; i < CAIRN_ID_LEN; i++) {
        if (id[i] != 0) {
            return false;
        }
    }
    return true;
}

/* env itself, or *copy with what env lacks filled in (env is const). */
static const cairn_envelope *
bus_env_fill(const cairn_envelope *env, const char *default_topic,
             cairn_envelope *copy)
{
    bool need_id = bus_id_is_zero(env->id);
    bool need_ts = env->ts == 0;
    bool need_topic = default_topic != NULL && env->topic.len == 0;

    if (!need_id && !need_ts && !need_topic) {
        return env;
    }
    *copy = *env;
    if (need_id) {
        cairn_id_new(copy->id);
    }
    if (need_ts) {
        copy->ts = cairn_now_ms();
    }
    if (need_topic) {
        copy->topic = cairn_str_c(default_topic);
    }
    return copy;
}

/* Encodes into stack when it fits, else into a malloc'ed buffer that the
 * caller frees when *bufp != stack. */
static cairn_err
bus_encode(const cairn_envelope *env, uint8_t *stack, size_t cap,
           uint8_t **bufp, size_t *lenp)
{
    cairn_envelope        copy;
    const cairn_envelope *e = bus_env_fill(env, NULL, &copy);
    size_t                need = cairn_envelope_encoded_size(e);
    uint8_t              *buf = stack;
    cairn_err             rv;

    if (need > CAIRN_ENV_MAX_SIZE) {
        return CAIRN_ETOOBIG;
    }
    if (need > cap && (buf = malloc(need)) == NULL) {
        return CAIRN_ENOMEM;
    }
    if ((rv = cairn_envelope_encode(e, buf, need, lenp)) != CAIRN_OK) {
        goto fail;
    }
    *bufp = buf;
    return CAIRN_OK;
fail:
    if (buf != stack) {
        free(buf);
    }
    return rv;
}

cairn_err
cairni_bus_env_msg(const cairn_envelope *env, const char *default_topic,
                   const void *hdr, size_t hlen, bool record, nng_msg **msgp)
{
    cairn_envelope        copy;
    const cairn_envelope *e = bus_env_fill(env, default_topic, &copy);
    size_t                need = cairn_envelope_encoded_size(e);
    size_t                pre = hlen + (record ? 4 : 0);
    nng_msg              *msg = NULL;
    uint8_t              *body;
    size_t                len;
    cairn_err             rv;

    if (need > CAIRN_ENV_MAX_SIZE) {
        return CAIRN_ETOOBIG;
    }
    if (nng_msg_alloc(&msg, pre + need) != 0) {
        return CAIRN_ENOMEM;
    }
    body = nng_msg_body(msg);
    if (hlen > 0) {
        memcpy(body, hdr, hlen);
    }
    if ((rv = cairn_envelope_encode(e, body + pre, need, &len)) != CAIRN_OK) {
        goto fail;
    }
    if (record) {
        bus_put32(body + hlen, (uint32_t)len);
    }
    nng_msg_chop(msg, need - len); /* encoded_size is exact; be safe */
    *msgp = msg;
    return CAIRN_OK;
fail:
    nng_msg_free(msg);
    return rv;
}

/* ---- open and close ---------------------------------------------------- */

cairn_err
cairni_bus_open(cairni_bus **busp, const cairni_bus_opts *opts)
{
    static _Atomic unsigned counter;
    pthread_rwlockattr_t    attr;
    cairni_bus             *bus;

    if (busp == NULL) {
        return CAIRN_EINVAL;
    }
    if ((bus = calloc(1, sizeof(*bus))) == NULL) {
        return CAIRN_ENOMEM;
    }
    bus->sub_queue = CAIRNI_BUS_SUB_QUEUE;
    if (opts != NULL) {
        bus->sub_queue = opts->sub_queue ? opts->sub_queue : bus->sub_queue;
        bus->metrics = opts->metrics;
    }
    if (cairni_bus_policies_set(bus, opts != NULL ? opts->calls : NULL) !=
        CAIRN_OK) {
        free(bus);
        return CAIRN_ENOMEM;
    }
    snprintf(bus->prefix, sizeof(bus->prefix), "inproc://cairn-%p-%u",
             (void *)bus, atomic_fetch_add(&counter, 1));
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&bus->subs_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&bus->lock, NULL);
    *busp = bus;
    return CAIRN_OK;
}

void
cairni_bus_close(cairni_bus *bus)
{
    cairn_sub **subs;
    size_t      n;

    if (bus == NULL) {
        return;
    }
    pthread_rwlock_wrlock(&bus->subs_lock);
    subs = bus->subs;
    n = bus->nsubs;
    bus->subs = NULL;
    bus->nsubs = bus->capsubs = 0;
    pthread_rwlock_unlock(&bus->subs_lock);
    for (size_t i = 0; i < n; i++) {
        cairni_bus_sub_teardown(subs[i]);
    }
    free(subs);
    cairni_bus_queues_close(bus);
    cairni_bus_rpcs_close(bus);
    pthread_mutex_destroy(&bus->lock);
    pthread_rwlock_destroy(&bus->subs_lock);
    free(bus);
}

/* ---- subscriptions and consumers: life cycle --------------------------- */

cairn_err
cairni_bus_sub_alloc(cairni_bus *bus, cairni_bus_kind kind, const char *filter,
                     const char *owner, cairn_msg_fn fn, void *arg,
                     cairn_sub **subp)
{
    cairn_sub *sub = calloc(1, sizeof(*sub));

    if (sub == NULL) {
        return CAIRN_ENOMEM;
    }
    sub->bus = bus;
    sub->kind = kind;
    sub->fn = fn;
    sub->arg = arg;
    sub->rx = bus_nosock;
    sub->tx = bus_nosock;
    sub->filter = strdup(filter);
    sub->owner = strdup(owner != NULL ? owner : "");
    if (sub->filter == NULL || sub->owner == NULL ||
        nng_aio_alloc(&sub->raio, NULL, NULL) != 0 ||
        pthread_mutex_init(&sub->mtx, NULL) != 0) {
        goto fail;
    }
    sub->mtx_init = true;
    *subp = sub;
    return CAIRN_OK;
fail:
    cairni_bus_sub_teardown(sub);
    return CAIRN_ENOMEM;
}

/* Makes sure no send is in flight and none will start, and frees the
 * batches the subscription still holds. */
static void
bus_sub_stop_sending(cairn_sub *sub)
{
    nng_msg *left;

    pthread_mutex_lock(&sub->mtx);
    sub->closing = true;
    pthread_mutex_unlock(&sub->mtx);

    /* Cancels a send waiting for room in the pipe, and waits for the
     * callback, which sees closing and frees both batches. */
    nng_aio_stop(sub->aio);

    /* A send started on a stopped aio fails without a callback and
     * leaves its message in the aio (NNG 1.5).  closing prevents that;
     * free it should it ever happen.  After a successful send NNG has
     * already cleared the aio's message. */
    if ((left = nng_aio_get_msg(sub->aio)) != NULL) {
        nng_aio_set_msg(sub->aio, NULL);
        nng_msg_free(left);
    }
    if (sub->pending != NULL) {
        nng_msg_free(sub->pending);
        sub->pending = NULL;
    }
}

void
cairni_bus_sub_stop(cairn_sub *sub)
{
    if (sub->aio != NULL) {
        bus_sub_stop_sending(sub);
    }
    /* Stopping the thread's own aio ends it: a pending receive fails with
     * NNG_ECANCELED, and so does any receive it starts after a callback
     * it may be running returns.  Sockets are closed only once the
     * thread is gone: closing a socket while another thread is entering
     * a receive on it can leave that receive waiting forever (NNG 1.5). */
    if (sub->raio != NULL) {
        nng_aio_stop(sub->raio);
    }
    if (sub->started) {
        pthread_join(sub->thread, NULL);
        sub->started = false;
    }
}

void
cairni_bus_sub_teardown(cairn_sub *sub)
{
    cairni_bus_sub_stop(sub);
    if (nng_socket_id(sub->tx) > 0) {
        nng_close(sub->tx);
    }
    if (nng_socket_id(sub->rx) > 0) {
        nng_close(sub->rx);
    }
    if (sub->aio != NULL) {
        nng_aio_free(sub->aio);
    }
    if (sub->raio != NULL) {
        nng_aio_free(sub->raio);
    }
    if (sub->mtx_init) {
        pthread_mutex_destroy(&sub->mtx);
    }
    free(sub->filter);
    free(sub->owner);
    free(sub);
}

/* ---- delivery thread ---------------------------------------------------- */

static void
bus_count_delivered(cairn_sub *sub, const cairn_envelope *env,
                    bus_topic_cache *tc)
{
    cairni_metrics *m = sub->bus->metrics;

    atomic_fetch_add_explicit(&sub->delivered, 1, memory_order_relaxed);
    if (sub->kind != CAIRNI_BUS_SUB || m == NULL) {
        return;
    }
    if (env->topic.len > sizeof(tc->name)) {
        /* Too long to cache (the decoder does not let this happen). */
        atomic_fetch_add(
            &cairni_metrics_topic(m, env->topic.ptr, env->topic.len)->delivered,
            1);
        return;
    }
    if (tc->st == NULL || tc->len != env->topic.len ||
        (env->topic.len > 0 &&
         memcmp(tc->name, env->topic.ptr, env->topic.len) != 0)) {
        tc->st = cairni_metrics_topic(m, env->topic.ptr, env->topic.len);
        if (env->topic.len > 0) {
            memcpy(tc->name, env->topic.ptr, env->topic.len);
        }
        tc->len = env->topic.len;
    }
    atomic_fetch_add_explicit(&tc->st->delivered, 1, memory_order_relaxed);
}

/* Delivers every record of a batch in order, then frees it.  Counted
 * before the callback, so a callback that signals a waiter already finds
 * itself in the counters. */
static void
bus_deliver_batch(cairn_sub *sub, nng_msg *msg, bus_topic_cache *tc)
{
    const uint8_t *p = nng_msg_body(msg);
    size_t         left = nng_msg_len(msg);
    cairn_envelope env;
    uint32_t       n;

    while (left > 0) {
        if (left < 4 || (n = bus_get32(p)) > left - 4) {
            atomic_fetch_add(&sub->errors, 1);
            break;
        }
        p += 4;
        left -= 4;
        if (cairn_envelope_decode(p, n, &env) == CAIRN_OK) {
            bus_count_delivered(sub, &env, tc);
            sub->fn(sub->arg, &env);
        } else {
            atomic_fetch_add(&sub->errors, 1);
        }
        p += n;
        left -= n;
    }
    nng_msg_free(msg);
}

/* One receive on the thread's aio: blocking, or a poll that fails with
 * NNG_ETIMEDOUT when nothing is waiting.  On success *msgp is ours. */
static int
bus_sub_recv(cairn_sub *sub, bool block, nng_msg **msgp)
{
    int rv;

    nng_aio_set_timeout(sub->raio,
                        block ? NNG_DURATION_INFINITE : NNG_DURATION_ZERO);
    nng_recv_aio(sub->rx, sub->raio);
    nng_aio_wait(sub->raio);
    if ((rv = nng_aio_result(sub->raio)) == 0) {
        *msgp = nng_aio_get_msg(sub->raio);
        nng_aio_set_msg(sub->raio, NULL);
    }
    return rv;
}

static void *
bus_sub_main(void *arg)
{
    cairn_sub      *sub = arg;
    bus_topic_cache tc;
    nng_msg        *msg;
    int             rv;

    memset(&tc, 0, sizeof(tc));
    for (;;) {
        if ((rv = bus_sub_recv(sub, true, &msg)) != 0) {
            if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
                break; /* cairni_bus_sub_stop */
            }
            continue; /* e.g. NNG_ENOMEM: transient */
        }
        atomic_fetch_add_explicit(&sub->wakeups, 1, memory_order_relaxed);
        do {
            bus_deliver_batch(sub, msg, &tc);
        } while (bus_sub_recv(sub, false, &msg) == 0);
    }
    return NULL;
}

cairn_err
cairni_bus_sub_start(cairn_sub *sub)
{
    cairn_err rv = cairni_bus_thread_start(&sub->thread, bus_sub_main, sub);

    sub->started = rv == CAIRN_OK;
    return rv;
}

void
cairni_sub_get_stats(const cairn_sub *sub, cairni_sub_stats *st)
{
    st->delivered = atomic_load(&sub->delivered);
    st->dropped = atomic_load(&sub->dropped);
    st->wakeups = atomic_load(&sub->wakeups);
}

/* ---- publish/subscribe: the sender side --------------------------------- */

/* Sends the pending batch.  sub->mtx held, !sub->inflight.  The send
 * callback never runs inside nng_send_aio (NNG dispatches completions to
 * its task threads), so holding mtx here cannot deadlock with it. */
static void
bus_sub_kick(cairn_sub *sub)
{
    sub->inflight = true;
    sub->ninflight = sub->npending;
    nng_aio_set_msg(sub->aio, sub->pending);
    sub->pending = NULL;
    sub->npending = 0;
    nng_send_aio(sub->tx, sub->aio);
}

/* Send completion, on an NNG thread.  On failure the message is still
 * ours (nng_send_aio takes it only on success). */
static void
bus_sub_sent(void *arg)
{
    cairn_sub *sub = arg;
    uint64_t   lost = 0;
    nng_msg   *msg;

    pthread_mutex_lock(&sub->mtx);
    if (nng_aio_result(sub->aio) != 0) {
        msg = nng_aio_get_msg(sub->aio);
        nng_aio_set_msg(sub->aio, NULL);
        nng_msg_free(msg);
        lost += sub->ninflight;
    }
    sub->inflight = false;
    sub->ninflight = 0;
    if (sub->closing) {
        lost += sub->npending;
        if (sub->pending != NULL) {
            nng_msg_free(sub->pending);
        }
        sub->pending = NULL;
        sub->npending = 0;
    } else if (sub->pending != NULL) {
        bus_sub_kick(sub);
    }
    pthread_mutex_unlock(&sub->mtx);
    if (lost > 0) {
        atomic_fetch_add(&sub->dropped, lost);
    }
}

/* Appends one record to *mp, growing it geometrically: nng_msg_append
 * alone reallocates to the exact size each time. */
static cairn_err
bus_batch_append(nng_msg **mp, const uint8_t *rec, size_t len)
{
    nng_msg *m = *mp;
    size_t   need;
    size_t   cap;

    if (m == NULL) {
        if (nng_msg_alloc(&m, 0) != 0) {
            return CAIRN_ENOMEM;
        }
        *mp = m;
    }
    need = nng_msg_len(m) + 4 + len;
    if (need > nng_msg_capacity(m)) {
        cap = 2 * nng_msg_capacity(m);
        if (nng_msg_reserve(m, cap > need ? cap : need) != 0) {
            return CAIRN_ENOMEM;
        }
    }
    if (nng_msg_append_u32(m, (uint32_t)len) != 0 ||
        nng_msg_append(m, rec, len) != 0) {
        return CAIRN_ENOMEM; /* cannot happen after reserve */
    }
    return CAIRN_OK;
}

/* Queues one encoded envelope for sub, or drops it and counts the drop. */
static void
bus_sub_offer(cairn_sub *sub, const uint8_t *rec, size_t len,
              cairni_topic_stats *st)
{
    bool drop = true;

    pthread_mutex_lock(&sub->mtx);
    if (sub->npending < sub->bus->sub_queue &&
        (sub->pending == NULL ||
         nng_msg_len(sub->pending) + 4 + len <= CAIRNI_BUS_BATCH_MAX) &&
        bus_batch_append(&sub->pending, rec, len) == CAIRN_OK) {
        drop = false;
        sub->npending++;
        if (!sub->inflight) {
            bus_sub_kick(sub);
        }
    }
    pthread_mutex_unlock(&sub->mtx);
    if (drop) {
        atomic_fetch_add(&sub->dropped, 1);
        if (st != NULL) {
            atomic_fetch_add(&st->dropped, 1);
        }
    }
}

cairn_err
cairni_bus_publish(cairni_bus *bus, const cairn_envelope *env)
{
    uint8_t             stack[BUS_STACK_ENCODE];
    uint8_t            *buf = NULL;
    size_t              len = 0;
    cairni_topic_stats *st = NULL;
    cairn_err           rv;

    if (bus == NULL || env == NULL ||
        cairn_topic_valid(env->topic.ptr, env->topic.len) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if ((rv = bus_encode(env, stack, sizeof(stack), &buf, &len)) != CAIRN_OK) {
        return rv;
    }
    if (bus->metrics != NULL) {
        st = cairni_metrics_topic(bus->metrics, env->topic.ptr, env->topic.len);
        atomic_fetch_add(&st->published, 1);
    }
    pthread_rwlock_rdlock(&bus->subs_lock);
    for (size_t i = 0; i < bus->nsubs; i++) {
        cairn_sub *sub = bus->subs[i];
        if (cairn_topic_match(sub->filter, env->topic.ptr, env->topic.len)) {
            bus_sub_offer(sub, buf, len, st);
        }
    }
    pthread_rwlock_unlock(&bus->subs_lock);
    if (buf != stack) {
        free(buf);
    }
    return CAIRN_OK;
}

/* ---- publish/subscribe: subscribe and unsubscribe ----------------------- */

/* Opens the subscription's push0 -> pull0 pair and its send aio. */
static cairn_err
bus_sub_open(cairn_sub *sub)
{
    char       url[CAIRNI_BUS_URL_MAX];
    nng_socket s;
    int        rv;

    cairni_bus_url(sub->bus, "sub", url);
    if ((rv = nng_push0_open(&s)) != 0) {
        goto fail;
    }
    sub->tx = s;
    if ((rv = nng_listen(sub->tx, url, NULL, 0)) != 0 ||
        (rv = nng_pull0_open(&s)) != 0) {
        goto fail;
    }
    sub->rx = s;
    /* Synchronous: inproc connects at once to the listener above. */
    if ((rv = nng_dial(sub->rx, url, NULL, 0)) != 0 ||
        (rv = nng_aio_alloc(&sub->aio, bus_sub_sent, sub)) != 0) {
        goto fail;
    }
    return CAIRN_OK;
fail:
    return cairni_nng_err(rv); /* the caller tears down what is open */
}

static cairn_err
bus_subs_add(cairni_bus *bus, cairn_sub *sub)
{
    cairn_err rv = CAIRN_OK;

    pthread_rwlock_wrlock(&bus->subs_lock);
    if (bus->nsubs == bus->capsubs) {
        size_t      cap = bus->capsubs ? 2 * bus->capsubs : 8;
        cairn_sub **subs = realloc(bus->subs, cap * sizeof(*subs));
        if (subs == NULL) {
            rv = CAIRN_ENOMEM;
            goto done;
        }
        bus->subs = subs;
        bus->capsubs = cap;
    }
    bus->subs[bus->nsubs++] = sub;
done:
    pthread_rwlock_unlock(&bus->subs_lock);
    return rv;
}

static void
bus_subs_remove(cairni_bus *bus, cairn_sub *sub)
{
    pthread_rwlock_wrlock(&bus->subs_lock);
    for (size_t i = 0; i < bus->nsubs; i++) {
        if (bus->subs[i] == sub) {
            memmove(&bus->subs[i], &bus->subs[i + 1],
                    (bus->nsubs - i - 1) * sizeof(bus->subs[0]));
            bus->nsubs--;
            break;
        }
    }
    pthread_rwlock_unlock(&bus->subs_lock);
}

cairn_err
cairni_bus_subscribe(cairni_bus *bus, const char *filter, const char *owner,
                     cairn_msg_fn fn, void *arg, cairn_sub **subp)
{
    cairn_sub *sub = NULL;
    cairn_err  rv;

    if (bus == NULL || filter == NULL || fn == NULL || subp == NULL ||
        cairn_filter_valid(filter) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    rv =
        cairni_bus_sub_alloc(bus, CAIRNI_BUS_SUB, filter, owner, fn, arg, &sub);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if ((rv = bus_sub_open(sub)) != CAIRN_OK ||
        (rv = cairni_bus_sub_start(sub)) != CAIRN_OK ||
        (rv = bus_subs_add(bus, sub)) != CAIRN_OK) {
        goto fail;
    }
    *subp = sub;
    return CAIRN_OK;
fail:
    cairni_bus_sub_teardown(sub);
    return rv;
}

void
cairni_bus_unsubscribe(cairn_sub *sub)
{
    if (sub == NULL) {
        return;
    }
    if (sub->kind == CAIRNI_BUS_CONSUMER) {
        cairni_bus_consumer_close(sub);
        return;
    }
    bus_subs_remove(sub->bus, sub);
    cairni_bus_sub_teardown(sub);
}

/* ---- metrics ------------------------------------------------------------ */

/* One family at a time: Prometheus text wants each metric's samples
 * together, after its TYPE line. */
static void
bus_render_subs(cairni_bus *bus, cairni_buf *out, const char *metric,
                size_t field)
{
    cairni_buf_printf(out, "# TYPE %s counter\n", metric);
    for (size_t i = 0; i < bus->nsubs; i++) {
        const cairn_sub        *s = bus->subs[i];
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)((const char *)s + field);
        cairni_bus_prom(out, metric, "owner", s->owner, "filter", s->filter,
                        atomic_load(v));
    }
}

void
cairni_bus_render_metrics(cairni_bus *bus, cairni_buf *out)
{
    pthread_rwlock_rdlock(&bus->subs_lock);
    bus_render_subs(bus, out, "cairn_sub_delivered_total",
                    offsetof(cairn_sub, delivered));
    bus_render_subs(bus, out, "cairn_sub_dropped_total",
                    offsetof(cairn_sub, dropped));
    bus_render_subs(bus, out, "cairn_sub_wakeups_total",
                    offsetof(cairn_sub, wakeups));
    pthread_rwlock_unlock(&bus->subs_lock);
    cairni_bus_queues_render(bus, out);
    cairni_bus_rpcs_render(bus, out);
}
