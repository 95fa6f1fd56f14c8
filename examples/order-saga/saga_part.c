/*
 * saga_part.c - the skeleton every participant of the order saga shares:
 * one request/reply service per operation, each request parsed with
 * limits and run in one transaction of the participant's key-value state
 * (host->kv_txn, ABI 1.2).  The operation reads the order's record,
 * decides, writes; the reply is the text it produced.  Since the record
 * is keyed by order id and written in the same transaction as the effect,
 * a request repeated for any reason finds the record and answers what it
 * answered the first time, with no second effect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga.h"

typedef struct part_svc {
    saga_part     *part;
    const saga_op *op;
} part_svc;

typedef struct part_state {
    saga_part part;
    part_svc  svcs[8];
    size_t    nsvcs;
} part_state;

/* What a kv_txn of one operation needs. */
typedef struct part_call {
    part_svc       *svc;
    const saga_req *req;
    char            out[SAGA_REC_MAX + 64];
} part_call;

void
saga_order_key(const char *order, char key[SAGA_ID_LEN + 3])
{
    snprintf(key, SAGA_ID_LEN + 3, "o/%s", order);
}

uint64_t
saga_kv_u64(const cairn_host *h, cairn_txn *t, const char *key, uint64_t dflt)
{
    char buf[24];
    if (saga_kv_str(h, t, key, buf, sizeof(buf)) != CAIRN_OK) {
        return dflt;
    }
    return strtoull(buf, NULL, 10);
}

cairn_err
saga_kv_put_u64(const cairn_host *h, cairn_txn *t, const char *key,
                uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return h->kv_put(t, key, buf, strlen(buf));
}

cairn_err
saga_kv_add(const cairn_host *h, cairn_txn *t, const char *key, uint64_t n)
{
    return saga_kv_put_u64(h, t, key, saga_kv_u64(h, t, key, 0) + n);
}

cairn_err
saga_kv_str(const cairn_host *h, cairn_txn *t, const char *key, char *buf,
            size_t cap)
{
    void     *val;
    size_t    len;
    cairn_err rv = h->kv_get(t, key, &val, &len);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (len >= cap) {
        rv = CAIRN_ETOOBIG;
    } else {
        memcpy(buf, val, len);
        buf[len] = '\0';
    }
    h->free(val);
    return rv;
}

cairn_err
saga_kv_put_str(const cairn_host *h, cairn_txn *t, const char *key,
                const char *s)
{
    return h->kv_put(t, key, s, strlen(s));
}

static cairn_err
part_txn(cairn_txn *t, void *arg)
{
    part_call *c = arg;
    return c->svc->op->fn(c->svc->part, t, c->req, c->out, sizeof(c->out));
}

static cairn_err
part_serve(void *arg, const cairn_envelope *env, cairn_out *out)
{
    part_svc         *s = arg;
    const cairn_host *h = s->part->host;
    saga_req          req;
    const char       *why;
    char              msg[96];
    cairn_err rv = saga_req_parse(env->payload.ptr, env->payload.len, &req,
                                  &why);
    if (rv == CAIRN_OK && (rv = saga_req_need(&req, s->op->need, &why)) !=
                              CAIRN_OK) {
        snprintf(msg, sizeof(msg), "missing %s", why);
        why = msg;
    }
    if (rv != CAIRN_OK) {
        (void)h->out_append(out, why, strlen(why));
        return rv;
    }
    part_call c = {.svc = s, .req = &req};
    rv = h->kv_txn(s->part->self, part_txn, &c);
    if (rv != CAIRN_OK) {
        snprintf(c.out, sizeof(c.out), "%s", cairn_strerror(rv));
    }
    (void)h->out_append(out, c.out, strlen(c.out));
    return rv;
}

cairn_err
saga_part_init(const cairn_host *host, cairn_plugin *self, const void *cfg,
               const saga_op *ops, void **statep)
{
    if (!CAIRN_HOST_HAS(host, kv_txn)) {
        host->log(self, CAIRN_LOG_ERROR,
                  "needs a cairnd with kv_txn (plugin ABI 1.2)");
        return CAIRN_ENOTSUP;
    }
    part_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return CAIRN_ENOMEM;
    }
    st->part = (saga_part){host, self, cfg, ops};
    for (size_t i = 0; ops[i].name != NULL && i < 8; i++) {
        st->svcs[st->nsvcs++] = (part_svc){&st->part, &ops[i]};
    }
    *statep = st;
    return CAIRN_OK;
}

cairn_err
saga_part_start(void *state)
{
    part_state       *st = state;
    const cairn_host *h = st->part.host;
    char              name[256];
    for (size_t i = 0; i < st->nsvcs; i++) {
        snprintf(name, sizeof(name), "%s.%s", h->name(st->part.self),
                 st->svcs[i].op->name);
        cairn_err rv = h->serve(st->part.self, name, part_serve,
                                &st->svcs[i], NULL);
        if (rv != CAIRN_OK) {
            h->log(st->part.self, CAIRN_LOG_ERROR, "serve %s: %s", name,
                   cairn_strerror(rv));
            return rv;
        }
    }
    h->status(st->part.self, "serving %zu operations", st->nsvcs);
    return CAIRN_OK;
}

void
saga_part_stop(void *state)
{
}

void
saga_part_fini(void *state)
{
    free(state);
}

cairn_err
saga_part_get(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
              size_t cap)
{
    char key[SAGA_ID_LEN + 3];
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(p->host, t, key, out, cap);
    if (rv == CAIRN_ENOENT) {
        snprintf(out, cap, "none");
        rv = CAIRN_OK;
    }
    return rv;
}
