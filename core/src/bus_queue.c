/*
 * bus_queue.c - named work queues with competing consumers: each message
 * goes to exactly one consumer.
 *
 * A queue is a push0 socket listening on a URL of its own, made on the
 * first push or consume that names it and kept until the bus closes.
 * Each consumer is a pull0 socket dialed to it, with a delivery thread
 * of its own (the one of bus.c: it delivers everything waiting before
 * it blocks again).  NNG's push0 hands each message to one ready pipe,
 * round robin; that is the whole distribution policy.
 *
 * Buffering and loss.  The push socket keeps no buffer of its own
 * (NNG_OPT_SENDBUF 0) and the pull sockets ask for none (NNG_OPT_RECVBUF
 * 0), so cairni_bus_queue_push returns only once NNG has handed the
 * message toward one consumer's pipe, and waits up to timeout_ms while
 * every consumer's pipe is full.  With NNG 1.5 over inproc a consumer
 * that is busy in its callback still has two messages routed to it: one
 * held by its pull pipe and one in the push pipe's pending send.  While
 * consumers run, nothing accepted is lost: each of those is delivered
 * when that consumer next receives.  When a consumer unsubscribes (or
 * the bus closes), NNG frees those (at most two per consumer) with the
 * pipe; nothing tells the bus which they were (and NNG 1.5.2 now and
 * then leaks, rather than frees, one caught in transit between the
 * sockets at that moment, under pushes that race the close).  The loss
 * shows in the metrics as cairn_queue_pushed_total minus
 * cairn_queue_delivered_total once the queue is idle.  Work that must survive a consumer going away
 * goes through the store, not through a bus queue alone.
 *
 * Errors of push: CAIRN_ENOENT when no consumer has ever attached to the
 * queue by the time the wait ends, CAIRN_ETIMEDOUT when consumers exist
 * (or existed) but none took the message in time.  timeout_ms 0 tries
 * once without waiting.
 *
 * Locks and threads: bus->lock guards bus->queues and bus->consumers;
 * a queue's fields are immutable after it is made, except its atomic
 * counters.  Pushers may be any thread; they wait in nng_aio_wait.
 */
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "bus_impl.h"

struct cairni_bus_queue {
    cairni_bus_queue *next; /* in bus->queues, under bus->lock */
    char             *name; /* owned */
    char              url[CAIRNI_BUS_URL_MAX];
    nng_socket        push;

    _Atomic uint64_t pushed;         /* accepted by NNG */
    _Atomic uint64_t timeouts;       /* pushes that gave up */
    _Atomic uint64_t delivered_gone; /* by consumers since removed */
    _Atomic uint32_t attached;       /* consumers ever attached */
};

static const nng_socket bus_nosock = NNG_SOCKET_INITIALIZER;

static void
bus_queue_free(cairni_bus_queue *q)
{
    if (nng_socket_id(q->push) > 0) {
        nng_close(q->push);
    }
    free(q->name);
    free(q);
}

static cairn_err
bus_queue_open(cairni_bus *bus, const char *name, cairni_bus_queue **qp)
{
    cairni_bus_queue *q = calloc(1, sizeof(*q));
    nng_socket        s;
    int               rv = NNG_ENOMEM;

    if (q == NULL) {
        return CAIRN_ENOMEM;
    }
    q->push = bus_nosock;
    if ((q->name = strdup(name)) == NULL || (rv = nng_push0_open(&s)) != 0) {
        goto fail;
    }
    q->push = s;
    cairni_bus_url(bus, "queue", q->url);
    if ((rv = nng_socket_set_int(q->push, NNG_OPT_SENDBUF, 0)) != 0 ||
        (rv = nng_listen(q->push, q->url, NULL, 0)) != 0) {
        goto fail;
    }
    *qp = q;
    return CAIRN_OK;
fail:
    bus_queue_free(q);
    return cairni_nng_err(rv);
}

/* The queue named name, made if needed.  Queues live until bus close, so
 * the pointer stays valid without the lock. */
static cairn_err
bus_queue_get(cairni_bus *bus, const char *name, cairni_bus_queue **qp)
{
    cairni_bus_queue *q;
    cairn_err         rv = CAIRN_OK;

    pthread_mutex_lock(&bus->lock);
    for (q = bus->queues; q != NULL; q = q->next) {
        if (strcmp(q->name, name) == 0) {
            break;
        }
    }
    if (q == NULL && (rv = bus_queue_open(bus, name, &q)) == CAIRN_OK) {
        q->next = bus->queues;
        bus->queues = q;
    }
    pthread_mutex_unlock(&bus->lock);
    *qp = q;
    return rv;
}

static nng_duration
bus_push_timeout(uint32_t ms)
{
    if (ms == 0) {
        return NNG_DURATION_ZERO; /* try once, do not wait */
    }
    return ms > INT32_MAX ? NNG_DURATION_INFINITE : (nng_duration)ms;
}

cairn_err
cairni_bus_queue_push(cairni_bus *bus, const char *queue,
                      const cairn_envelope *env, uint32_t timeout_ms)
{
    cairni_bus_queue *q;
    nng_msg          *msg = NULL;
    nng_aio          *aio = NULL;
    cairn_err         rv;
    int               nrv;

    if (bus == NULL || env == NULL ||
        cairni_bus_name_valid(queue) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if ((rv = bus_queue_get(bus, queue, &q)) != CAIRN_OK ||
        (rv = cairni_bus_env_msg(env, queue, NULL, 0, true, &msg)) !=
            CAIRN_OK) {
        return rv;
    }
    if (nng_aio_alloc(&aio, NULL, NULL) != 0) {
        rv = CAIRN_ENOMEM;
        goto fail;
    }
    /* A timeout per call on the aio, not NNG_OPT_SENDTIMEO on the shared
     * socket, so concurrent pushers with different timeouts don't race. */
    nng_aio_set_msg(aio, msg);
    nng_aio_set_timeout(aio, bus_push_timeout(timeout_ms));
    nng_send_aio(q->push, aio);
    nng_aio_wait(aio);
    nrv = nng_aio_result(aio);
    msg = nrv != 0 ? nng_aio_get_msg(aio) : NULL; /* ours on failure */
    nng_aio_free(aio);
    if (nrv != 0) {
        rv = cairni_nng_err(nrv);
        if (nrv == NNG_ETIMEDOUT) {
            atomic_fetch_add(&q->timeouts, 1);
            rv = atomic_load(&q->attached) ? CAIRN_ETIMEDOUT : CAIRN_ENOENT;
        }
        goto fail;
    }
    atomic_fetch_add(&q->pushed, 1);
    return CAIRN_OK;
fail:
    if (msg != NULL) {
        nng_msg_free(msg);
    }
    return rv;
}

/* Opens the consumer's pull0 socket and dials the queue. */
static cairn_err
bus_consumer_open(cairn_sub *sub)
{
    nng_socket s;
    int        rv;

    if ((rv = nng_pull0_open(&s)) != 0) {
        return cairni_nng_err(rv);
    }
    sub->rx = s;
    /* Best effort: NNG versions without the option keep their default. */
    (void)nng_socket_set_int(sub->rx, NNG_OPT_RECVBUF, 0);
    if ((rv = nng_dial(sub->rx, sub->queue->url, NULL, 0)) != 0) {
        return cairni_nng_err(rv);
    }
    atomic_fetch_add(&sub->queue->attached, 1);
    return CAIRN_OK;
}

cairn_err
cairni_bus_queue_consume(cairni_bus *bus, const char *queue, const char *owner,
                         cairn_msg_fn fn, void *arg, cairn_sub **subp)
{
    cairni_bus_queue *q;
    cairn_sub        *sub = NULL;
    cairn_err         rv;

    if (bus == NULL || fn == NULL || subp == NULL ||
        cairni_bus_name_valid(queue) != CAIRN_OK) {
        return CAIRN_EINVAL;
    }
    if ((rv = bus_queue_get(bus, queue, &q)) != CAIRN_OK ||
        (rv = cairni_bus_sub_alloc(bus, CAIRNI_BUS_CONSUMER, queue, owner, fn,
                                   arg, &sub)) != CAIRN_OK) {
        return rv;
    }
    sub->queue = q;
    if ((rv = bus_consumer_open(sub)) != CAIRN_OK ||
        (rv = cairni_bus_sub_start(sub)) != CAIRN_OK) {
        goto fail;
    }
    pthread_mutex_lock(&bus->lock);
    sub->next = bus->consumers;
    bus->consumers = sub;
    pthread_mutex_unlock(&bus->lock);
    *subp = sub;
    return CAIRN_OK;
fail:
    cairni_bus_sub_teardown(sub);
    return rv;
}

/* Stops the delivery thread (messages still in the pipe are discarded by
 * NNG, see the top of this file), folds the consumer's count into its
 * queue's, and frees it. */
static void
bus_consumer_stop(cairn_sub *sub)
{
    cairni_bus_sub_stop(sub);
    atomic_fetch_add(&sub->queue->delivered_gone, atomic_load(&sub->delivered));
    cairni_bus_sub_teardown(sub);
}

void
cairni_bus_consumer_close(cairn_sub *sub)
{
    cairni_bus *bus = sub->bus;

    pthread_mutex_lock(&bus->lock);
    for (cairn_sub **pp = &bus->consumers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    }
    pthread_mutex_unlock(&bus->lock);
    bus_consumer_stop(sub);
}

void
cairni_bus_queues_close(cairni_bus *bus)
{
    cairn_sub        *subs;
    cairni_bus_queue *queues;

    pthread_mutex_lock(&bus->lock);
    subs = bus->consumers;
    queues = bus->queues;
    bus->consumers = NULL;
    bus->queues = NULL;
    pthread_mutex_unlock(&bus->lock);
    while (subs != NULL) {
        cairn_sub *next = subs->next;
        bus_consumer_stop(subs);
        subs = next;
    }
    while (queues != NULL) {
        cairni_bus_queue *next = queues->next;
        bus_queue_free(queues);
        queues = next;
    }
}

/* Messages delivered from q: by live consumers, and by those gone. */
static uint64_t
bus_queue_delivered(cairni_bus *bus, const cairni_bus_queue *q)
{
    uint64_t n = atomic_load(&q->delivered_gone);

    for (const cairn_sub *s = bus->consumers; s != NULL; s = s->next) {
        if (s->queue == q) {
            n += atomic_load(&s->delivered);
        }
    }
    return n;
}

/* bus->lock held.  One family at a time (Prometheus text groups them). */
static void
bus_render_queue_family(cairni_bus *bus, cairni_buf *out, int which)
{
    static const char *const names[] = {"cairn_queue_pushed_total",
                                        "cairn_queue_push_timeouts_total",
                                        "cairn_queue_delivered_total"};
    cairni_buf_printf(out, "# TYPE %s counter\n", names[which]);
    for (const cairni_bus_queue *q = bus->queues; q != NULL; q = q->next) {
        uint64_t v = which == 0   ? atomic_load(&q->pushed)
                     : which == 1 ? atomic_load(&q->timeouts)
                                  : bus_queue_delivered(bus, q);
        cairni_bus_prom(out, names[which], "queue", q->name, NULL, NULL, v);
    }
}

void
cairni_bus_queues_render(cairni_bus *bus, cairni_buf *out)
{
    pthread_mutex_lock(&bus->lock);
    for (int i = 0; i < 3; i++) {
        bus_render_queue_family(bus, out, i);
    }
    cairni_buf_printf(out, "# TYPE cairn_consumer_delivered_total counter\n");
    for (const cairn_sub *s = bus->consumers; s != NULL; s = s->next) {
        cairni_bus_prom(out, "cairn_consumer_delivered_total", "owner",
                        s->owner, "queue", s->filter,
                        atomic_load(&s->delivered));
    }
    cairni_buf_printf(out, "# TYPE cairn_consumer_wakeups_total counter\n");
    for (const cairn_sub *s = bus->consumers; s != NULL; s = s->next) {
        cairni_bus_prom(out, "cairn_consumer_wakeups_total", "owner", s->owner,
                        "queue", s->filter, atomic_load(&s->wakeups));
    }
    pthread_mutex_unlock(&bus->lock);
}
