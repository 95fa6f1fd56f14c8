/*
 * saga-dispenser - the last step of the order saga: hands out the item.
 * It has no compensation (what was dispensed is gone), so the
 * orchestrator runs it last and retries it until it answers.  An item
 * equal to `jam_item` jams the machine: the step fails and the order is
 * refunded and its stock released, in that order.
 *
 * State (this instance's key-value store):
 *   o/<order>   "dispensed <item> <qty>" or "jammed"
 *   units, dispensed   units handed out, and for how many orders
 */
#include <stdio.h>
#include <string.h>

#include "saga.h"

typedef struct dispcfg {
    const char *jam_item;
} dispcfg;

static const cairn_cfg_field disp_fields[] = {
    CAIRN_FIELD_STRING(dispcfg, jam_item, "",
                       "an item that always jams the dispenser "
                       "(empty: none)"),
    CAIRN_FIELD_END,
};

static cairn_err
disp_dispense(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
              size_t cap)
{
    const cairn_host *h = p->host;
    const dispcfg    *c = p->cfg;
    char              key[SAGA_ID_LEN + 3], rec[SAGA_REC_MAX];
    saga_order_key(r->order, key);
    cairn_err rv = saga_kv_str(h, t, key, rec, sizeof(rec));
    if (rv == CAIRN_OK) { /* seen before: the same answer */
        snprintf(out, cap, "%s %s",
                 strncmp(rec, "dispensed ", 10) == 0 ? "done" : "refused",
                 rec);
        return CAIRN_OK;
    }
    if (rv != CAIRN_ENOENT) {
        return rv;
    }
    if (c->jam_item[0] != '\0' && strcmp(r->item, c->jam_item) == 0) {
        snprintf(out, cap, "refused jammed");
        return saga_kv_put_str(h, t, key, "jammed");
    }
    if ((rv = saga_kv_add(h, t, "units", r->qty)) != CAIRN_OK ||
        (rv = saga_kv_add(h, t, "dispensed", 1)) != CAIRN_OK) {
        return rv;
    }
    snprintf(rec, sizeof(rec), "dispensed %s %llu", r->item,
             (unsigned long long)r->qty);
    snprintf(out, cap, "done %s", rec);
    return saga_kv_put_str(h, t, key, rec);
}

static cairn_err
disp_report(saga_part *p, cairn_txn *t, const saga_req *r, char *out,
            size_t cap)
{
    snprintf(out, cap, "{\"units\":%llu,\"dispensed\":%llu}",
             (unsigned long long)saga_kv_u64(p->host, t, "units", 0),
             (unsigned long long)saga_kv_u64(p->host, t, "dispensed", 0));
    return CAIRN_OK;
}

static const saga_op disp_ops[] = {
    {"dispense", SAGA_HAS_ORDER | SAGA_HAS_ITEM | SAGA_HAS_QTY, disp_dispense},
    {"get", SAGA_HAS_ORDER, saga_part_get},
    {"report", 0, disp_report},
    {NULL, 0, NULL},
};

static cairn_err
disp_init(const cairn_host *host, cairn_plugin *self, const void *config,
          void **statep)
{
    return saga_part_init(host, self, config, disp_ops, statep);
}

static const cairn_plugin_desc disp_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "saga-dispenser",
    .version     = "1.0.0",
    .description = "Order saga participant: dispenses the item (no undo)",
    .config      = disp_fields,
    .config_size = sizeof(dispcfg),
    .init        = disp_init,
    .start       = saga_part_start,
    .stop        = saga_part_stop,
    .fini        = saga_part_fini,
};

CAIRN_PLUGIN_DEFINE(disp_desc)
