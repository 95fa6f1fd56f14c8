/*
 * saga-orders - the orchestrator of the order saga: reserve stock, take
 * payment, dispense; when a step fails, the compensations of the steps
 * already done run in reverse (refund, then release stock).
 *
 * Durability, piece by piece:
 *   orders.create   checks the request, picks the order id and publishes
 *                   it on "<service>/new".  That topic is routed durably
 *                   to this instance (route_durable at init), so the
 *                   order is committed before the reply says "accepted".
 *   inbox handler   takes each new order exactly once (inbox_consume):
 *                   writes its record and adds it to the pending list, in
 *                   the message's transaction.
 *   run thread      advances each pending order one step at a time:
 *                   calls the participant, publishes the step's events,
 *                   then commits the new state with kv_txn.  A crash
 *                   anywhere repeats at most the last step; participants
 *                   are idempotent by order id, and the events of a step
 *                   carry ids derived from (order, event), so a repeat
 *                   has no second effect and consumers drop the
 *                   duplicate events by id.
 *
 * The record of an order (key "o/<id>"):
 *   "<state> <qty> <amount> <attempts> <item> <card> <reason>"
 * States and transitions (DONE / REFUSED by the participant; a call that
 * failed or timed out is retried, counted in attempts):
 *   new        reserve:  DONE reserved | REFUSED compensated |
 *                        step_attempts exhausted: releasing (in doubt)
 *   reserved   charge:   DONE paid | REFUSED releasing |
 *                        exhausted: refunding (in doubt)
 *   paid       dispense: DONE completed | REFUSED refunding
 *                        (retried without limit: it cannot be undone)
 *   refunding  refund:   DONE releasing (retried without limit)
 *   releasing  release:  DONE compensated (retried without limit)
 * completed and compensated are terminal: the order leaves the pending
 * list in the same transaction.  Events on "<service>/<id>/<event>":
 * started, reserved, paid, dispensed, completed, failed, refunded,
 * released, compensated (JSON).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga.h"

typedef struct ordcfg {
    const char *service;
    const char *stock;
    const char *payment;
    const char *dispenser;
    int64_t     price;
    uint64_t    step_delay;
    uint64_t    call_timeout;
    int64_t     step_attempts;
    int64_t     max_pending;
} ordcfg;

static const cairn_cfg_field ord_fields[] = {
    CAIRN_FIELD_STRING(ordcfg, service, "orders",
                       "services <service>.create/.get/.report; new orders "
                       "on <service>/new, events on <service>/<id>/<event>"),
    CAIRN_FIELD_STRING(ordcfg, stock, "stock",
                       "instance name of the stock participant"),
    CAIRN_FIELD_STRING(ordcfg, payment, "payment",
                       "instance name of the payment participant"),
    CAIRN_FIELD_STRING(ordcfg, dispenser, "dispenser",
                       "instance name of the dispenser participant"),
    CAIRN_FIELD_INT(ordcfg, price, "150", 0, 100000,
                    "price of one unit, in cents"),
    CAIRN_FIELD_DURATION(ordcfg, step_delay, "0", 0, 60000,
                         "pause between a participant's answer and "
                         "recording it (widens the window a crash can "
                         "hit, for demos and tests)"),
    CAIRN_FIELD_DURATION(ordcfg, call_timeout, "2s", 10, 60000,
                         "deadline of each call to a participant"),
    CAIRN_FIELD_INT(ordcfg, step_attempts, "5", 1, 1000,
                    "failed calls of reserve or charge before the order "
                    "is compensated"),
    CAIRN_FIELD_INT(ordcfg, max_pending, "1000", 1, 10000,
                    "orders in progress at most; more wait in the inbox"),
    CAIRN_FIELD_END,
};

enum {
    ST_NEW,
    ST_RESERVED,
    ST_PAID,
    ST_COMPLETED,
    ST_REFUNDING,
    ST_RELEASING,
    ST_COMPENSATED,
    ST_COUNT
};

static const char *const ord_states[ST_COUNT] = {
    "new",       "reserved",  "paid",       "completed",
    "refunding", "releasing", "compensated",
};

typedef struct ord_rec {
    int      state;
    uint64_t qty, amount, attempts;
    char     item[SAGA_ITEM_MAX + 1];
    char     card[SAGA_CARD_MAX + 1];
    char     reason[32];
} ord_rec;

typedef struct orders {
    const cairn_host *host;
    cairn_plugin     *self;
    ordcfg            cfg;
    char              new_topic[128];
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    bool              stop; /* under mu */
    bool              kick; /* under mu: new orders came */
} orders;

/* ---- records and the pending list ----------------------------------------- */

static void
rec_format(const ord_rec *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s %llu %llu %llu %s %s %s", ord_states[r->state],
             (unsigned long long)r->qty, (unsigned long long)r->amount,
             (unsigned long long)r->attempts, r->item, r->card,
             r->reason[0] ? r->reason : "-");
}

static bool
rec_parse(const char *s, ord_rec *r)
{
    char               st[16];
    unsigned long long q, a, n;
    memset(r, 0, sizeof(*r));
    if (sscanf(s, "%15s %llu %llu %llu %32s %64s %31s", st, &q, &a, &n,
               r->item, r->card, r->reason) != 7) {
        return false;
    }
    r->qty = q, r->amount = a, r->attempts = n;
    for (r->state = 0; r->state < ST_COUNT; r->state++) {
        if (strcmp(st, ord_states[r->state]) == 0) {
            return true;
        }
    }
    return false;
}

static cairn_err
rec_get(orders *o, cairn_txn *t, const char *id, ord_rec *r)
{
    char key[SAGA_ID_LEN + 3], buf[SAGA_REC_MAX];
    saga_order_key(id, key);
    cairn_err rv = saga_kv_str(o->host, t, key, buf, sizeof(buf));
    if (rv == CAIRN_OK && !rec_parse(buf, r)) {
        rv = CAIRN_EPROTO;
    }
    return rv;
}

static cairn_err
rec_put(orders *o, cairn_txn *t, const char *id, const ord_rec *r)
{
    char key[SAGA_ID_LEN + 3], buf[SAGA_REC_MAX];
    saga_order_key(id, key);
    rec_format(r, buf, sizeof(buf));
    return saga_kv_put_str(o->host, t, key, buf);
}

/* The pending ids, space-separated, NUL-terminated, malloc'd. */
static cairn_err
pending_get(orders *o, cairn_txn *t, char **out)
{
    void     *val = NULL;
    size_t    len = 0;
    cairn_err rv = o->host->kv_get(t, "pending", &val, &len);
    if (rv != CAIRN_OK && rv != CAIRN_ENOENT) {
        return rv;
    }
    char *s = malloc(len + 1);
    if (s != NULL && len > 0) {
        memcpy(s, val, len);
    }
    if (val != NULL) {
        o->host->free(val);
    }
    if (s == NULL) {
        return CAIRN_ENOMEM;
    }
    s[len] = '\0';
    *out = s;
    return CAIRN_OK;
}

static size_t
pending_count(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s != ' ' && (s[1] == ' ' || s[1] == '\0');
    }
    return n;
}

/* Adds id (add) or removes it from the pending list. */
static cairn_err
pending_edit(orders *o, cairn_txn *t, const char *id, bool add)
{
    char     *s, *n;
    size_t    idl = strlen(id);
    cairn_err rv = pending_get(o, t, &s);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if ((n = malloc(strlen(s) + idl + 2)) == NULL) {
        free(s);
        return CAIRN_ENOMEM;
    }
    n[0] = '\0';
    for (char *w = strtok(s, " "); w != NULL; w = strtok(NULL, " ")) {
        if (strcmp(w, id) != 0) {
            strcat(strcat(n, n[0] ? " " : ""), w);
        }
    }
    if (add) {
        strcat(strcat(n, n[0] ? " " : ""), id);
    }
    rv = o->host->kv_put(t, "pending", n, strlen(n));
    free(n);
    free(s);
    return rv;
}

/* ---- the inbox: new orders, exactly once --------------------------------- */

static void
ord_kick(orders *o)
{
    pthread_mutex_lock(&o->mu);
    o->kick = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static cairn_err
ord_on_new(void *arg, const cairn_envelope *env, cairn_txn *t)
{
    orders     *o = arg;
    saga_req    r;
    ord_rec     rec;
    const char *why;
    char       *pend;
    if (saga_req_parse(env->payload.ptr, env->payload.len, &r, &why) !=
            CAIRN_OK ||
        saga_req_need(&r, SAGA_HAS_ORDER | SAGA_HAS_ITEM | SAGA_HAS_QTY |
                              SAGA_HAS_CARD,
                      &why) != CAIRN_OK) {
        o->host->log(o->self, CAIRN_LOG_WARN, "bad new order: %s", why);
        return CAIRN_EPERM; /* a dead letter: it will not get better */
    }
    cairn_err rv = rec_get(o, t, r.order, &rec);
    if (rv != CAIRN_ENOENT) {
        return rv; /* CAIRN_OK: this order id is known already */
    }
    if ((rv = pending_get(o, t, &pend)) != CAIRN_OK) {
        return rv;
    }
    size_t n = pending_count(pend);
    free(pend);
    if (n >= (size_t)o->cfg.max_pending) {
        return CAIRN_EAGAIN; /* back later, once some are done */
    }
    rec = (ord_rec){.state = ST_NEW, .qty = r.qty,
                    .amount = r.qty * (uint64_t)o->cfg.price};
    memcpy(rec.item, r.item, sizeof(rec.item));
    memcpy(rec.card, r.card, sizeof(rec.card));
    if ((rv = rec_put(o, t, r.order, &rec)) != CAIRN_OK ||
        (rv = pending_edit(o, t, r.order, true)) != CAIRN_OK ||
        (rv = saga_kv_put_u64(o->host, t, "accepted",
                              saga_kv_u64(o->host, t, "accepted", 0) + 1)) !=
            CAIRN_OK) {
        return rv;
    }
    ord_kick(o); /* committed right after we return */
    return CAIRN_OK;
}

/* ---- events ------------------------------------------------------------------ */

static uint64_t
fnv1a(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

/* Publishes <service>/<id>/<event> with an id made from (id, event), so
 * the event of a repeated step is a duplicate by id. */
static cairn_err
ord_event(orders *o, const char *id, const char *event, const ord_rec *r)
{
    char           topic[256], body[512];
    cairn_envelope env;
    uint64_t       h1 = fnv1a(0xcbf29ce484222325ull, id);
    uint64_t       h2 = fnv1a(fnv1a(h1, "/"), event);
    int            n = snprintf(
        body, sizeof(body),
        "{\"order\":\"%s\",\"event\":\"%s\",\"state\":\"%s\",\"item\":\"%s\","
        "\"qty\":%llu,\"amount\":%llu,\"reason\":\"%s\"}",
        id, event, ord_states[r->state], r->item, (unsigned long long)r->qty,
        (unsigned long long)r->amount, r->reason[0] ? r->reason : "-");
    snprintf(topic, sizeof(topic), "%s/%s/%s", o->cfg.service, id, event);
    cairn_envelope_init(&env);
    for (int i = 0; i < 8; i++) {
        env.id[i] = (uint8_t)(h1 >> (56 - 8 * i));
        env.id[8 + i] = (uint8_t)(h2 >> (56 - 8 * i));
    }
    env.topic = cairn_str_c(topic);
    env.payload.ptr = (const uint8_t *)body;
    env.payload.len = (size_t)n;
    env.key = cairn_str_c(id); /* in order per order */
    env.ctype = cairn_str_c("application/json");
    env.flags |= CAIRN_ENV_HAS_KEY | CAIRN_ENV_HAS_CTYPE;
    return o->host->publish_env(o->self, &env);
}

/* ---- the run thread: one step of one order --------------------------------- */

enum { CALL_DONE, CALL_REFUSED, CALL_RETRY, CALL_DOWN };

/* Calls <instance>.<op> with the order's fields; the refusal's reason
 * (the participant's record) goes to reason. */
static int
ord_call(orders *o, const char *id, const ord_rec *r, const char *inst,
         const char *op, char reason[32])
{
    char        svc[256];
    uint8_t     buf[256];
    cairn_reply rep;
    saga_req    q = {.qty = r->qty, .amount = r->amount,
                     .has = SAGA_HAS_ORDER | SAGA_HAS_ITEM | SAGA_HAS_QTY |
                            SAGA_HAS_CARD | SAGA_HAS_AMOUNT};
    snprintf(q.order, sizeof(q.order), "%s", id);
    memcpy(q.item, r->item, sizeof(q.item));
    memcpy(q.card, r->card, sizeof(q.card));
    snprintf(svc, sizeof(svc), "%s.%s", inst, op);
    size_t    len = saga_req_encode(&q, buf, sizeof(buf));
    cairn_err rv = o->host->call(o->self, svc, buf, len,
                                 (uint32_t)o->cfg.call_timeout, &rep);
    if (rv != CAIRN_OK || rep.status != CAIRN_OK) {
        o->host->log(o->self, CAIRN_LOG_WARN, "order %s: %s: %s", id, svc,
                     cairn_strerror(rv != CAIRN_OK ? rv : rep.status));
    }
    if (rv != CAIRN_OK) {
        /* No such service (yet, or any more): not the step's fault. */
        return rv == CAIRN_ENOENT || rv == CAIRN_ECLOSED ? CALL_DOWN
                                                         : CALL_RETRY;
    }
    int res = CALL_RETRY;
    if (rep.status == CAIRN_OK && rep.len >= 4 &&
        memcmp(rep.data, "done", 4) == 0) {
        res = CALL_DONE;
    } else if (rep.status == CAIRN_OK && rep.len > 8 &&
               memcmp(rep.data, "refused ", 8) == 0) {
        size_t n = 0;
        while (n < 31 && 8 + n < rep.len && rep.data[8 + n] != ' ') {
            reason[n] = (char)rep.data[8 + n];
            n++;
        }
        reason[n] = '\0';
        res = CALL_REFUSED;
    }
    o->host->reply_fini(&rep);
    return res;
}

typedef struct ord_step {
    const char *inst, *op;
    int         done, refused, exhausted; /* next states; -1: retry */
    const char *ev_done[2];
} ord_step;

static ord_step
ord_plan(const orders *o, int state)
{
    const ordcfg *c = &o->cfg;
    switch (state) {
    case ST_NEW:
        return (ord_step){c->stock, "reserve", ST_RESERVED, ST_COMPENSATED,
                          ST_RELEASING, {"reserved", NULL}};
    case ST_RESERVED:
        return (ord_step){c->payment, "charge", ST_PAID, ST_RELEASING,
                          ST_REFUNDING, {"paid", NULL}};
    case ST_PAID:
        return (ord_step){c->dispenser, "dispense", ST_COMPLETED, ST_REFUNDING,
                          -1, {"dispensed", "completed"}};
    case ST_REFUNDING:
        return (ord_step){c->payment, "refund", ST_RELEASING, -1, -1,
                          {"refunded", NULL}};
    default: /* ST_RELEASING */
        return (ord_step){c->stock, "release", ST_COMPENSATED, -1, -1,
                          {"released", "compensated"}};
    }
}

typedef struct ord_commit {
    orders        *o;
    const char    *id;
    int            from;   /* the state the step started in */
    const ord_rec *to;
} ord_commit;

static cairn_err
ord_commit_txn(cairn_txn *t, void *arg)
{
    ord_commit *c = arg;
    orders     *o = c->o;
    ord_rec     cur;
    cairn_err   rv = rec_get(o, t, c->id, &cur);
    if (rv != CAIRN_OK || cur.state != c->from) {
        return rv != CAIRN_OK ? rv : CAIRN_EBUSY; /* moved on meanwhile */
    }
    if ((rv = rec_put(o, t, c->id, c->to)) != CAIRN_OK) {
        return rv;
    }
    if (c->to->state == ST_COMPLETED || c->to->state == ST_COMPENSATED) {
        const char *k = ord_states[c->to->state];
        if ((rv = pending_edit(o, t, c->id, false)) != CAIRN_OK ||
            (rv = saga_kv_put_u64(o->host, t, k,
                                  saga_kv_u64(o->host, t, k, 0) + 1)) !=
                CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

typedef struct ord_read {
    orders     *o;
    const char *id;
    ord_rec    *rec;
    char      **pending; /* or, to snapshot the pending list */
} ord_read;

static cairn_err
ord_read_txn(cairn_txn *t, void *arg)
{
    ord_read *r = arg;
    if (r->pending != NULL) {
        return pending_get(r->o, t, r->pending);
    }
    return rec_get(r->o, t, r->id, r->rec);
}

/* The next state after the call's result; -1 to stay (and retry). */
static int
ord_next(const orders *o, const ord_step *s, int res, ord_rec *r)
{
    if (res == CALL_DONE) {
        return s->done;
    }
    if (res == CALL_REFUSED && s->refused >= 0) {
        return s->refused;
    }
    if (res == CALL_RETRY && s->exhausted >= 0 &&
        ++r->attempts >= (uint64_t)o->cfg.step_attempts) {
        snprintf(r->reason, sizeof(r->reason), "no-answer");
        return s->exhausted;
    }
    return -1;
}

/* Waits ms, or (kickable) until new orders come; false once stopping. */
static bool
ord_wait(orders *o, uint64_t ms, bool kickable)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&o->mu);
    int e = 0;
    while (!o->stop && !(kickable && o->kick) && e == 0) {
        e = pthread_cond_timedwait(&o->cv, &o->mu, &until);
    }
    if (kickable) {
        o->kick = false;
    }
    bool go = !o->stop;
    pthread_mutex_unlock(&o->mu);
    return go;
}

static void
ord_advance(orders *o, const char *id)
{
    ord_rec   rec, next;
    char      reason[32] = "";
    ord_read  rd = {o, id, &rec, NULL};
    cairn_err rv = o->host->kv_txn(o->self, ord_read_txn, &rd);
    if (rv != CAIRN_OK || rec.state == ST_COMPLETED ||
        rec.state == ST_COMPENSATED) {
        return;
    }
    ord_step s = ord_plan(o, rec.state);
    if (rec.state == ST_NEW && rec.attempts == 0 &&
        ord_event(o, id, "started", &rec) != CAIRN_OK) {
        return;
    }
    int res = ord_call(o, id, &rec, s.inst, s.op, reason);
    if (!ord_wait(o, o->cfg.step_delay, false)) {
        return; /* stopping: the step is repeated after the restart */
    }
    next = rec;
    int to = ord_next(o, &s, res, &next);
    if (to < 0 && next.attempts == rec.attempts) {
        return; /* nothing to record: try again next round */
    }
    if (to >= 0) {
        next.state = to;
        next.attempts = 0;
        if (res == CALL_REFUSED) {
            snprintf(next.reason, sizeof(next.reason), "%s", reason);
        }
        bool failed = res != CALL_DONE;
        const char *ev[3] = {failed ? "failed" : s.ev_done[0],
                             failed ? NULL : s.ev_done[1], NULL};
        if (failed && to == ST_COMPENSATED) {
            ev[1] = "compensated"; /* nothing was done: nothing to undo */
        }
        for (int i = 0; i < 2 && ev[i] != NULL; i++) {
            if (ord_event(o, id, ev[i], &next) != CAIRN_OK) {
                return; /* committed nothing: the step is repeated */
            }
        }
    }
    ord_commit c = {o, id, rec.state, &next};
    if ((rv = o->host->kv_txn(o->self, ord_commit_txn, &c)) != CAIRN_OK) {
        o->host->log(o->self, CAIRN_LOG_WARN, "order %s: commit: %s", id,
                     cairn_strerror(rv));
    }
}

static void
ord_run(void *state)
{
    orders *o = state;
    while (ord_wait(o, 0, false)) {
        char    *pend = NULL;
        ord_read rd = {o, NULL, NULL, &pend};
        if (o->host->kv_txn(o->self, ord_read_txn, &rd) != CAIRN_OK ||
            pend[0] == '\0') {
            free(pend);
            ord_wait(o, 100, true);
            continue;
        }
        char *save = NULL;
        for (char *id = strtok_r(pend, " ", &save); id != NULL;
             id = strtok_r(NULL, " ", &save)) {
            ord_advance(o, id);
        }
        free(pend);
    }
}

/* ---- services ------------------------------------------------------------------ */

static cairn_err
ord_reply_err(orders *o, cairn_out *out, cairn_err rv, const char *why)
{
    (void)o->host->out_append(out, why, strlen(why));
    return rv;
}

static cairn_err
ord_create(void *arg, const cairn_envelope *env, cairn_out *out)
{
    orders        *o = arg;
    saga_req       r;
    const char    *why;
    uint8_t        buf[256], id[CAIRN_ID_LEN];
    char           msg[128];
    cairn_pub_opts opts = {0};
    cairn_err      rv = saga_req_parse(env->payload.ptr, env->payload.len, &r,
                                       &why);
    if (rv == CAIRN_OK &&
        saga_req_need(&r, SAGA_HAS_ITEM | SAGA_HAS_QTY | SAGA_HAS_CARD,
                      &why) != CAIRN_OK) {
        snprintf(msg, sizeof(msg), "missing %s", why);
        return ord_reply_err(o, out, CAIRN_EPROTO, msg);
    }
    if (rv != CAIRN_OK) {
        return ord_reply_err(o, out, rv, why);
    }
    if (!(r.has & SAGA_HAS_ORDER)) { /* a given id makes create idempotent */
        cairn_id_new(id);
        cairn_id_format(id, r.order);
        r.has |= SAGA_HAS_ORDER;
    }
    r.has &= ~(unsigned)SAGA_HAS_AMOUNT; /* the price is ours */
    size_t len = saga_req_encode(&r, buf, sizeof(buf));
    opts.key = r.order;
    if ((rv = o->host->publish(o->self, o->new_topic, buf, len, &opts)) !=
        CAIRN_OK) {
        snprintf(msg, sizeof(msg), "order not accepted: %s",
                 cairn_strerror(rv));
        return ord_reply_err(o, out, rv, msg);
    }
    if (r.cbor) {
        saga_cbor w = {buf, 0, sizeof(buf), false};
        saga_cbor_map(&w, 2);
        saga_cbor_text(&w, "order"), saga_cbor_text(&w, r.order);
        saga_cbor_text(&w, "state"), saga_cbor_text(&w, "accepted");
        return o->host->out_append(out, buf, w.len);
    }
    int n = snprintf(msg, sizeof(msg), "{\"order\":\"%s\",\"state\":\"accepted\"}",
                     r.order);
    return o->host->out_append(out, msg, (size_t)n);
}

typedef struct ord_q {
    orders *o;
    char   *out;
    size_t  cap;
    const char *id; /* NULL: the report */
} ord_q;

static cairn_err
ord_query_txn(cairn_txn *t, void *arg)
{
    ord_q    *q = arg;
    orders   *o = q->o;
    ord_rec   r;
    char     *pend;
    cairn_err rv;
    if (q->id != NULL) {
        if ((rv = rec_get(o, t, q->id, &r)) == CAIRN_OK) {
            snprintf(q->out, q->cap,
                     "{\"order\":\"%s\",\"state\":\"%s\",\"item\":\"%s\","
                     "\"qty\":%llu,\"amount\":%llu,\"attempts\":%llu,"
                     "\"reason\":\"%s\"}",
                     q->id, ord_states[r.state], r.item,
                     (unsigned long long)r.qty, (unsigned long long)r.amount,
                     (unsigned long long)r.attempts,
                     r.reason[0] ? r.reason : "-");
        }
        return rv;
    }
    if ((rv = pending_get(o, t, &pend)) != CAIRN_OK) {
        return rv;
    }
    snprintf(q->out, q->cap,
             "{\"accepted\":%llu,\"pending\":%zu,\"completed\":%llu,"
             "\"compensated\":%llu}",
             (unsigned long long)saga_kv_u64(o->host, t, "accepted", 0),
             pending_count(pend),
             (unsigned long long)saga_kv_u64(o->host, t, "completed", 0),
             (unsigned long long)saga_kv_u64(o->host, t, "compensated", 0));
    free(pend);
    return CAIRN_OK;
}

static cairn_err
ord_query(orders *o, const char *id, cairn_out *out)
{
    char      text[512];
    ord_q     q = {o, text, sizeof(text), id};
    cairn_err rv = o->host->kv_txn(o->self, ord_query_txn, &q);
    if (rv != CAIRN_OK) {
        return ord_reply_err(o, out, rv,
                             rv == CAIRN_ENOENT ? "no such order"
                                                : cairn_strerror(rv));
    }
    return o->host->out_append(out, text, strlen(text));
}

static cairn_err
ord_get(void *arg, const cairn_envelope *env, cairn_out *out)
{
    saga_req    r;
    const char *why;
    cairn_err   rv = saga_req_parse(env->payload.ptr, env->payload.len, &r,
                                    &why);
    if (rv == CAIRN_OK && saga_req_need(&r, SAGA_HAS_ORDER, &why) != CAIRN_OK) {
        why = "missing order";
        rv = CAIRN_EPROTO;
    }
    return rv != CAIRN_OK ? ord_reply_err(arg, out, rv, why)
                          : ord_query(arg, r.order, out);
}

static cairn_err
ord_report(void *arg, const cairn_envelope *env, cairn_out *out)
{
    return ord_query(arg, NULL, out);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static cairn_err
ord_init(const cairn_host *host, cairn_plugin *self, const void *config,
         void **statep)
{
    const ordcfg *c = config;
    if (!CAIRN_HOST_HAS(host, kv_txn)) {
        host->log(self, CAIRN_LOG_ERROR,
                  "needs a cairnd with kv_txn (plugin ABI 1.2)");
        return CAIRN_ENOTSUP;
    }
    orders *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return CAIRN_ENOMEM;
    }
    o->host = host;
    o->self = self;
    o->cfg = *c;
    snprintf(o->new_topic, sizeof(o->new_topic), "%s/new", c->service);
    cairn_err rv = cairn_topic_valid(o->new_topic, strlen(o->new_topic));
    if (rv != CAIRN_OK || strlen(c->service) > 64 ||
        strpbrk(c->service, "+#/") != NULL) {
        host->log(self, CAIRN_LOG_ERROR,
                  "service: '%s' must be one topic level of at most 64 chars",
                  c->service);
        free(o);
        return CAIRN_ECONFIG;
    }
    if ((rv = host->route_durable(self, o->new_topic, 0)) != CAIRN_OK) {
        free(o);
        return rv;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&o->mu, NULL);
    *statep = o;
    return CAIRN_OK;
}

static cairn_err
ord_start(void *state)
{
    orders           *o = state;
    const cairn_host *h = o->host;
    char              name[128];
    static const char *const ops[] = {"create", "get", "report"};
    cairn_serve_fn const fns[] = {ord_create, ord_get, ord_report};
    cairn_err rv = h->inbox_consume(o->self, ord_on_new, o);
    for (size_t i = 0; i < 3 && rv == CAIRN_OK; i++) {
        snprintf(name, sizeof(name), "%s.%s", o->cfg.service, ops[i]);
        rv = h->serve(o->self, name, fns[i], o, NULL);
    }
    if (rv == CAIRN_OK) {
        h->status(o->self, "orders on %s, steps %s -> %s -> %s",
                  o->new_topic, o->cfg.stock, o->cfg.payment,
                  o->cfg.dispenser);
    }
    return rv;
}

static void
ord_stop(void *state)
{
    orders *o = state;
    pthread_mutex_lock(&o->mu);
    o->stop = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void
ord_fini(void *state)
{
    orders *o = state;
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static const cairn_plugin_desc ord_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "saga-orders",
    .version     = "1.0.0",
    .description = "Order saga orchestrator: reserve, pay, dispense; "
                   "compensates in reverse",
    .config      = ord_fields,
    .config_size = sizeof(ordcfg),
    .init        = ord_init,
    .start       = ord_start,
    .run         = ord_run,
    .stop        = ord_stop,
    .fini        = ord_fini,
};

CAIRN_PLUGIN_DEFINE(ord_desc)
