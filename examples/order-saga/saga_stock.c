/*
 * saga-stock - the stock participant of the order saga: reserves items
 * for an order and releases them again (the compensation).
 *
 * State (this instance's key-value store):
 *   level/<item>   units on hand (absent: `initial`)
 *   o/<order>      "reserved <item> <qty>", "released <item> <qty>",
 *                  "refused <reason>", or "released - 0" when a release
 *                  came first (a tombstone: a late reserve is refused)
 *   reserved, released   how many reservations were made and undone
 * Each operation reads o/<order> first, so a repeated request answers
 * as before and changes nothing (see saga_part.c).
 */
#include <stdio.h>
#include <string.h>

#include "saga.h"

typedef struct stockcfg {
    cairn_cfg_list items;
    int64_t        initial;
} stockcfg;

static const cairn_cfg_field stock_fields[] = {
    CAIRN_FIELD_STRLIST(stockcfg, items,
                        "items this machine stocks (empty: cola, water)"),
    CAIRN_FIELD_INT(stockcfg, initial, "100", 0, 1000000,
                    "units of each item on hand before the first order"),
    CAIRN_FIELD_END,
};

static bool
stock_known(const stockcfg *c, const char *item)
{
    const char *const *v = c->items.items;
    if (c->items.count == 0) {
        return strcmp(item, "cola") == 0 || strcmp(item, "water") == 0;
    }
    for (size_t i = 0; i < c->items.count; i++) {
        if (strcmp(v[i], item) == 0) {
            return true;
        }
    }
    return false;
}

static cairn_err
stock_level(saga_part *p, cairn_txn *t, const char *item, int64_t delta)
{
    const stockcfg *c = p->cfg;
    char            key[sizeof("level/") + 64]; /* items: at most 63 bytes */
    snprintf(key, sizeof(key), "level/%s", item);
    uint64_t lvl = saga_kv_u64(p->host, t, key, (uint64_t)c->initial);
    return saga_kv_put_u64(p->host, t, key, (uint64_t)((int64_t)lvl + delta));
}

static cairn_err
stock_reserve(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
              size_t cap)
{
    const cairn_host *h = p->host;
    char              key[SAGA_ID_LEN + 3], rec[SAGA_REC_MAX], lk[64];
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(h, t, key, rec, sizeof(rec));
    if (rv == CAIRN_OK) { /* seen before: the same answer */
        snprintf(out, cap, "%s %s",
                 strncmp(rec, "reserved ", 9) == 0 ? "done" : "refused", rec);
        return CAIRN_OK;
    }
    if (rv != CAIRN_ENOENT) {
        return rv;
    }
    snprintf(lk, sizeof(lk), "level/%s", r->item);
    uint64_t lvl = saga_kv_u64(h, t, lk, (uint64_t)((stockcfg *)p->cfg)->initial);
    if (!stock_known(p->cfg, r->item) || lvl < r->qty) {
        snprintf(rec, sizeof(rec), "refused %s",
                 stock_known(p->cfg, r->item) ? "out-of-stock"
                                              : "unknown-item");
    } else {
        snprintf(rec, sizeof(rec), "reserved %s %llu", r->item,
                 (unsigned long long)r->qty);
        if ((rv = stock_level(p, t, r->item, -(int64_t)r->qty)) != CAIRN_OK ||
            (rv = saga_kv_add(h, t, "reserved", 1)) != CAIRN_OK) {
            return rv;
        }
    }
    snprintf(out, cap, "%s %s",
             strncmp(rec, "reserved ", 9) == 0 ? "done" : "refused", rec);
    return saga_kv_put_str(h, t, key, rec);
}

static cairn_err
stock_release(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
              size_t cap)
{
    const cairn_host  *h = p->host;
    char               key[SAGA_ID_LEN + 3], rec[SAGA_REC_MAX], item[64];
    unsigned long long qty;
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(h, t, key, rec, sizeof(rec));
    if (rv == CAIRN_ENOENT) { /* nothing reserved yet: never will be */
        snprintf(out, cap, "done nothing-reserved");
        return saga_kv_put_str(h, t, key, "released - 0");
    }
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (sscanf(rec, "reserved %63s %llu", item, &qty) != 2) {
        snprintf(out, cap, "done %s",
                 strncmp(rec, "released", 8) == 0 ? rec : "nothing-reserved");
        return CAIRN_OK;
    }
    snprintf(rec, sizeof(rec), "released %s %llu", item, qty);
    if ((rv = stock_level(p, t, item, (int64_t)qty)) != CAIRN_OK ||
        (rv = saga_kv_add(h, t, "released", 1)) != CAIRN_OK) {
        return rv;
    }
    snprintf(out, cap, "done %s", rec);
    return saga_kv_put_str(h, t, key, rec);
}

/* {"levels":{"cola":97,...},"reserved":N,"released":M} */
static cairn_err
stock_report(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
             size_t cap)
{
    const stockcfg    *c = p->cfg;
    static const char *dflt[] = {"cola", "water"};
    const char *const *items = c->items.count ? c->items.items : dflt;
    size_t             n = c->items.count ? c->items.count : 2, len;
    char               key[64];
    len = (size_t)snprintf(out, cap, "{\"levels\":{");
    for (size_t i = 0; i < n && len < cap; i++) {
        snprintf(key, sizeof(key), "level/%s", items[i]);
        len += (size_t)snprintf(
            out + len, cap - len, "%s\"%s\":%llu", i ? "," : "", items[i],
            (unsigned long long)saga_kv_u64(p->host, t, key,
                                            (uint64_t)c->initial));
    }
    if (len < cap) {
        snprintf(out + len, cap - len, "},\"reserved\":%llu,\"released\":%llu}",
                 (unsigned long long)saga_kv_u64(p->host, t, "reserved", 0),
                 (unsigned long long)saga_kv_u64(p->host, t, "released", 0));
    }
    return CAIRN_OK;
}

static const saga_op stock_ops[] = {
    {"reserve", SAGA_HAS_ORDER | SAGA_HAS_ITEM | SAGA_HAS_QTY, stock_reserve},
    {"release", SAGA_HAS_ORDER, stock_release},
    {"get", SAGA_HAS_ORDER, saga_part_get},
    {"report", 0, stock_report},
    {NULL, 0, NULL},
};

static cairn_err
stock_init(const cairn_host *host, cairn_plugin *self, const void *config,
           void **statep)
{
    const stockcfg *c = config;
    const char *const *v = c->items.items;
    for (size_t i = 0; i < c->items.count; i++) {
        saga_req    r;
        const char *why;
        char        text[64];
        snprintf(text, sizeof(text), "item=%s", v[i]);
        if (saga_req_parse((const uint8_t *)text, strlen(text), &r, &why) !=
                CAIRN_OK ||
            strcmp(r.item, v[i]) != 0) {
            host->log(self, CAIRN_LOG_ERROR,
                      "items: '%s' is not 1-32 of [A-Za-z0-9_-]", v[i]);
            return CAIRN_ECONFIG;
        }
    }
    return saga_part_init(host, self, config, stock_ops, statep);
}

static const cairn_plugin_desc stock_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "saga-stock",
    .version     = "1.0.0",
    .description = "Order saga participant: reserves and releases stock",
    .config      = stock_fields,
    .config_size = sizeof(stockcfg),
    .init        = stock_init,
    .start       = saga_part_start,
    .stop        = saga_part_stop,
    .fini        = saga_part_fini,
};

CAIRN_PLUGIN_DEFINE(stock_desc)
