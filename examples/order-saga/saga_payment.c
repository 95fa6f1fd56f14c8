/*
 * saga-payment - the payment participant of the order saga: charges a
 * card for an order and refunds it (the compensation).  A card equal to
 * `decline_card` is declined, so the failure path can be shown and
 * tested.
 *
 * State (this instance's key-value store):
 *   o/<order>   "charged <amount>", "refunded <amount>", "declined", or
 *               "void" when a refund came first (a tombstone: a late
 *               charge is refused)
 *   charged, refunded   sums of all charges and refunds
 *   charges, refunds    how many of each
 */
#include <stdio.h>
#include <string.h>

#include "saga.h"

typedef struct paycfg {
    const char *decline_card;
} paycfg;

static const cairn_cfg_field pay_fields[] = {
    CAIRN_FIELD_STRING(paycfg, decline_card, "declined",
                       "a card number that is always declined "
                       "(empty: none)"),
    CAIRN_FIELD_END,
};

static cairn_err
pay_add(saga_part *p, cairn_txn *t, const char *sum, const char *count,
        uint64_t amount)
{
    const cairn_host *h = p->host;
    cairn_err         rv = saga_kv_add(h, t, sum, amount);
    return rv != CAIRN_OK ? rv : saga_kv_add(h, t, count, 1);
}

static cairn_err
pay_charge(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
           size_t cap)
{
    const paycfg *c = p->cfg;
    char          key[SAGA_ID_LEN + 3], rec[SAGA_REC_MAX];
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(p->host, t, key, rec, sizeof(rec));
    if (rv == CAIRN_OK) { /* seen before: the same answer */
        snprintf(out, cap, "%s %s",
                 strncmp(rec, "charged ", 8) == 0 ? "done" : "refused", rec);
        return CAIRN_OK;
    }
    if (rv != CAIRN_ENOENT) {
        return rv;
    }
    if (c->decline_card[0] != '\0' && strcmp(r->card, c->decline_card) == 0) {
        snprintf(out, cap, "refused declined");
        return saga_kv_put_str(p->host, t, key, "declined");
    }
    if ((rv = pay_add(p, t, "charged", "charges", r->amount)) != CAIRN_OK) {
        return rv;
    }
    snprintf(rec, sizeof(rec), "charged %llu", (unsigned long long)r->amount);
    snprintf(out, cap, "done %s", rec);
    return saga_kv_put_str(p->host, t, key, rec);
}

static cairn_err
pay_refund(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
           size_t cap)
{
    char               key[SAGA_ID_LEN + 3], rec[SAGA_REC_MAX];
    unsigned long long amount;
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(p->host, t, key, rec, sizeof(rec));
    if (rv == CAIRN_ENOENT) { /* nothing charged yet: never will be */
        snprintf(out, cap, "done nothing-charged");
        return saga_kv_put_str(p->host, t, key, "void");
    }
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (sscanf(rec, "charged %llu", &amount) != 1) {
        snprintf(out, cap, "done %s",
                 strncmp(rec, "refunded ", 9) == 0 ? rec : "nothing-charged");
        return CAIRN_OK;
    }
    if ((rv = pay_add(p, t, "refunded", "refunds", amount)) != CAIRN_OK) {
        return rv;
    }
    snprintf(rec, sizeof(rec), "refunded %llu", amount);
    snprintf(out, cap, "done %s", rec);
    return saga_kv_put_str(p->host, t, key, rec);
}

static cairn_err
pay_report(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
           size_t cap)
{
    const cairn_host *h = p->host;
    snprintf(out, cap,
             "{\"charged\":%llu,\"refunded\":%llu,\"charges\":%llu,"
             "\"refunds\":%llu}",
             (unsigned long long)saga_kv_u64(h, t, "charged", 0),
             (unsigned long long)saga_kv_u64(h, t, "refunded", 0),
             (unsigned long long)saga_kv_u64(h, t, "charges", 0),
             (unsigned long long)saga_kv_u64(h, t, "refunds", 0));
    return CAIRN_OK;
}

static const saga_op pay_ops[] = {
    {"charge", SAGA_HAS_ORDER | SAGA_HAS_CARD | SAGA_HAS_AMOUNT, pay_charge},
    {"refund", SAGA_HAS_ORDER, pay_refund},
    {"get", SAGA_HAS_ORDER, saga_part_get},
    {"report", 0, pay_report},
    {NULL, 0, NULL},
};

static cairn_err
pay_init(const cairn_host *host, cairn_plugin *self, const void *config,
         void **statep)
{
    return saga_part_init(host, self, config, pay_ops, statep);
}

static const cairn_plugin_desc pay_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "saga-payment",
    .version     = "1.0.0",
    .description = "Order saga participant: charges and refunds payments",
    .config      = pay_fields,
    .config_size = sizeof(paycfg),
    .init        = pay_init,
    .start       = saga_part_start,
    .stop        = saga_part_stop,
    .fini        = saga_part_fini,
};

CAIRN_PLUGIN_DEFINE(pay_desc)
