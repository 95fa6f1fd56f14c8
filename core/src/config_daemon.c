/*
 * config_daemon.c - the daemon's own configuration: its typed tables (they
 * also produce the reference `cairnd --help-config` prints), the checks
 * across keys, and loading a file into a cairni_config.  The YAML
 * document it reads is config.c's; the table-driven filling is
 * cfgtable.c's.
 *
 * To add a section (say, routes): add its struct to cairni_config, a
 * table, one line to cairni_config_fields and, for checks across keys, a
 * function to cfg_checks.
 */
#include <stdlib.h>
#include <string.h>

#include "cairni.h"

/* Open upper ends of ranges, as cfgtable.c reads them. */
#define CFG_NO_MAX_INT 9223372036854775808.0  /* 2^63 */
#define CFG_NO_MAX_U64 18446744073709551616.0 /* 2^64 */

/* ---- the daemon's configuration ------------------------------------------ */

/* One row of the daemon's tables; unlike CAIRN_FIELD_*, the key is given,
 * since some members carry their unit (ttl_ms for "ttl"). */
#define CFG_ROW(KEY, T, S, M, D, TEXT, ...)                                    \
    {                                                                          \
        .name = (KEY), .type = (T), .def = (D), .offset = offsetof(S, M),      \
        .description = (TEXT), __VA_ARGS__                                     \
    }

// clang-format off
static const cairn_cfg_field cfg_runtime_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_runtime_cfg, name, "cairn",
            "name of this runtime, shown in status and metrics", .min = 0),
    CFG_ROW("data_dir", CAIRN_CFG_STRING, cairni_runtime_cfg, data_dir,
            "/var/lib/cairn", "directory of the store and the admin socket",
            .min = 0),
    CFG_ROW("plugin_dir", CAIRN_CFG_STRING, cairni_runtime_cfg, plugin_dir, "",
            "where relative plugin paths are looked up; empty: the plugin "
            "directory built into cairnd", .min = 0),
    CFG_ROW("admin", CAIRN_CFG_STRING, cairni_runtime_cfg, admin, "",
            "admin socket URL; empty: `ipc://<data_dir>/admin.sock`", .min = 0),
    CFG_ROW("log_level", CAIRN_CFG_ENUM, cairni_runtime_cfg, log_level, "info",
            "least severe level written to stderr",
            .choices = "error|warn|info|debug"),
    CFG_ROW("sub_queue", CAIRN_CFG_INT, cairni_runtime_cfg, sub_queue, "4096",
            "messages a subscriber may lag behind before its messages are "
            "dropped (and counted)", .min = 1, .max = 1048576),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_dest_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_dest_entry, name, NULL,
            "destination: a plugin instance name", .min = 0),
    CFG_ROW("max_bytes", CAIRN_CFG_SIZE, cairni_dest_entry, max_bytes, "64MiB",
            "as store.max_bytes, for this destination",
            .min = 65536, .max = CFG_NO_MAX_U64),
    CFG_ROW("max_messages", CAIRN_CFG_INT, cairni_dest_entry, max_messages,
            "1000000", "as store.max_messages", .min = 1,
            .max = CFG_NO_MAX_INT),
    CFG_ROW("ttl", CAIRN_CFG_DURATION, cairni_dest_entry, ttl_ms, "0",
            "as store.ttl", .min = 0),
    CFG_ROW("on_full", CAIRN_CFG_ENUM, cairni_dest_entry, on_full, "reject",
            "as store.on_full", .choices = "reject|drop_oldest"),
    CFG_ROW("window", CAIRN_CFG_INT, cairni_dest_entry, window, "100",
            "as store.window", .min = 1, .max = 65535),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_store_fields[] = {
    CFG_ROW("sync", CAIRN_CFG_ENUM, cairni_store_cfg, sync, "full",
            "full: survives power loss; normal: survives a crash of cairnd "
            "only", .choices = "full|normal"),
    CFG_ROW("max_bytes", CAIRN_CFG_SIZE, cairni_store_cfg, max_bytes, "64MiB",
            "per destination: most bytes waiting (encoded envelope plus "
            "key); the database stays within the sum of these",
            .min = 65536, .max = CFG_NO_MAX_U64),
    CFG_ROW("max_messages", CAIRN_CFG_INT, cairni_store_cfg, max_messages,
            "1000000", "per destination: most messages waiting",
            .min = 1, .max = CFG_NO_MAX_INT),
    CFG_ROW("ttl", CAIRN_CFG_DURATION, cairni_store_cfg, ttl_ms, "0",
            "undelivered messages older than this are dropped; 0: kept until "
            "delivered", .min = 0),
    CFG_ROW("on_full", CAIRN_CFG_ENUM, cairni_store_cfg, on_full, "reject",
            "when full: refuse the new message, or drop the oldest (counted)",
            .choices = "reject|drop_oldest"),
    CFG_ROW("window", CAIRN_CFG_INT, cairni_store_cfg, window, "100",
            "messages a destination may have in flight (sent, not yet "
            "acknowledged)", .min = 1, .max = 65535),
    CFG_ROW("inbox_window", CAIRN_CFG_DURATION, cairni_store_cfg,
            inbox_window_ms, "24h", "how long consumed message ids are kept "
            "to drop duplicates", .min = 1000, .max = CFG_NO_MAX_U64),
    CFG_ROW("destinations", CAIRN_CFG_LIST, cairni_store_cfg, destinations,
            NULL, "per-destination limits; absent keys take the values above",
            .sub = cfg_dest_fields, .elem_size = sizeof(cairni_dest_entry)),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_route_fields[] = {
    CFG_ROW("filter", CAIRN_CFG_STRING, cairni_route_cfg, filter, NULL,
            "bus topic filter (MQTT syntax) of the messages to keep", .min = 0),
    CFG_ROW("to", CAIRN_CFG_STRING, cairni_route_cfg, to, NULL,
            "destination: the name of a plugin instance (a bridge or a "
            "durable consumer)", .min = 0),
    CFG_ROW("priority", CAIRN_CFG_ENUM, cairni_route_cfg, priority, "normal",
            "high drains before normal", .choices = "normal|high"),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_retry_fields[] = {
    CFG_ROW("initial", CAIRN_CFG_DURATION, cairni_retry_cfg, initial_ms,
            "500ms", "delay before the first retry",
            .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("max", CAIRN_CFG_DURATION, cairni_retry_cfg, max_ms, "60s",
            "longest delay between retries; at least initial", .min = 0),
    CFG_ROW("multiplier", CAIRN_CFG_DOUBLE, cairni_retry_cfg, multiplier,
            "2.0", "each delay is the previous one times this (plus jitter)",
            .min = 1, .max = 10),
    CFG_ROW("max_attempts", CAIRN_CFG_INT, cairni_retry_cfg, max_attempts, "0",
            "attempts before a message goes to the dead letters; 0: retry "
            "forever", .min = 0, .max = CFG_NO_MAX_INT),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_call_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_call_cfg, name, NULL,
            "service name", .min = 0),
    CFG_ROW("failures", CAIRN_CFG_INT, cairni_call_cfg, failures, "5",
            "as calls.failures, for this service", .min = 0, .max = 1000000),
    CFG_ROW("open", CAIRN_CFG_DURATION, cairni_call_cfg, open_ms, "10s",
            "as calls.open", .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("probes", CAIRN_CFG_INT, cairni_call_cfg, probes, "1",
            "as calls.probes", .min = 1, .max = 1000),
    CFG_ROW("idempotent", CAIRN_CFG_BOOL, cairni_call_cfg, idempotent, "false",
            "calling it twice has the effect of calling it once, so a failed "
            "call may be retried", .min = 0),
    CFG_ROW("attempts", CAIRN_CFG_INT, cairni_call_cfg, attempts, "1",
            "calls made for one request, within its deadline; more than 1 "
            "needs idempotent: true", .min = 1, .max = 100),
    CFG_ROW("backoff", CAIRN_CFG_DURATION, cairni_call_cfg, backoff_ms, "20ms",
            "as calls.backoff", .min = 1, .max = CFG_NO_MAX_U64),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_calls_fields[] = {
    CFG_ROW("failures", CAIRN_CFG_INT, cairni_calls_cfg, failures, "5",
            "consecutive failed calls (timeouts, service errors) that open a "
            "service's circuit breaker; 0: no breaker", .min = 0,
            .max = 1000000),
    CFG_ROW("open", CAIRN_CFG_DURATION, cairni_calls_cfg, open_ms, "10s",
            "how long an open breaker fails calls at once before it lets a "
            "probe through", .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("probes", CAIRN_CFG_INT, cairni_calls_cfg, probes, "1",
            "successful probe calls that close a half-open breaker",
            .min = 1, .max = 1000),
    CFG_ROW("backoff", CAIRN_CFG_DURATION, cairni_calls_cfg, backoff_ms,
            "20ms", "first delay before a retried call (doubling, full "
            "jitter, at most 1s, never past the call's deadline)", .min = 1,
            .max = CFG_NO_MAX_U64),
    CFG_ROW("services", CAIRN_CFG_LIST, cairni_calls_cfg, services, NULL,
            "per-service policies; absent keys take the values above",
            .sub = cfg_call_fields, .elem_size = sizeof(cairni_call_cfg)),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_plugin_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_plugin_cfg, name, NULL,
            "instance name, unique among the plugins", .min = 0),
    CFG_ROW("path", CAIRN_CFG_STRING, cairni_plugin_cfg, path, NULL,
            "shared object; a relative name is looked up in "
            "runtime.plugin_dir", .min = 0),
    CFG_ROW("optional", CAIRN_CFG_BOOL, cairni_plugin_cfg, optional, "false",
            "if it fails to load or start, the others run anyway", .min = 0),
    CFG_ROW("config", CAIRNI_CFG_NODE, cairni_plugin_cfg, config, NULL,
            "the plugin's own settings, checked against its table", .min = 0),
    {.type = CAIRN_CFG_END},
};

/* The top level.  A new section is one more row here. */
const cairn_cfg_field cairni_config_fields[] = {
    CFG_ROW("runtime", CAIRN_CFG_MAP, cairni_config, runtime, NULL,
            "the runtime itself", .sub = cfg_runtime_fields),
    CFG_ROW("store", CAIRN_CFG_MAP, cairni_config, store, NULL,
            "the durable outbox", .sub = cfg_store_fields),
    CFG_ROW("retry", CAIRN_CFG_MAP, cairni_config, retry, NULL,
            "backoff of failed deliveries", .sub = cfg_retry_fields),
    CFG_ROW("calls", CAIRN_CFG_MAP, cairni_config, calls, NULL,
            "request/reply calls: circuit breakers and retries",
            .sub = cfg_calls_fields),
    CFG_ROW("plugins", CAIRN_CFG_LIST, cairni_config, plugins, NULL,
            "plugins to load, started in this order", .sub = cfg_plugin_fields,
            .elem_size = sizeof(cairni_plugin_cfg)),
    CFG_ROW("routes", CAIRN_CFG_LIST, cairni_config, routes, NULL,
            "durable routes: matching messages are kept in the outbox until "
            "their destination has delivered them", .sub = cfg_route_fields,
            .elem_size = sizeof(cairni_route_cfg)),
    {.type = CAIRN_CFG_END},
};
// clang-format on

/* Checks across keys, run in order after the tables have filled cfg. */
typedef cairn_err (*cfg_check_fn)(cairni_config *cfg, char *err, size_t errlen);

static cairn_err
cfg_check_retry(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_retry_cfg *r = &cfg->retry;
    if (r->max_ms >= r->initial_ms) {
        return CAIRN_OK;
    }
    const cairni_node *node = cairni_node_get(cfg->doc->root, "retry");
    cairni_cfg_errf(err, errlen, cfg->doc->file, node != NULL ? node->line : 1,
             "'retry.max' (%llums) must not be less than 'retry.initial' "
             "(%llums)",
             (unsigned long long)r->max_ms, (unsigned long long)r->initial_ms);
    return CAIRN_ECONFIG;
}

/* Sets each entry's line; names must be non-empty and unique. */
static cairn_err
cfg_check_plugins(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *seq = cairni_node_get(cfg->doc->root, "plugins");
    cairni_plugin_cfg *pl = cfg->plugins.items;
    size_t             n = cfg->plugins.count;
    if (n == 0) {
        return CAIRN_OK;
    }
    const char **names = calloc(n, sizeof(*names));
    if (names == NULL) {
        cairni_cfg_errf(err, errlen, cfg->doc->file, seq->line, "out of memory");
        return CAIRN_ENOMEM;
    }
    cairn_err rv = CAIRN_OK;
    for (size_t i = 0; i < n; i++) {
        pl[i].line = seq->items[i]->line;
        names[i] = pl[i].name;
        if (rv == CAIRN_OK && pl[i].name[0] == '\0') {
            cairni_cfg_errf(err, errlen, cfg->doc->file, pl[i].line,
                     "'plugins[%zu].name' must not be empty", i);
            rv = CAIRN_ECONFIG;
        }
    }
    size_t dup, orig = 0;
    if (rv == CAIRN_OK &&
        (rv = cairni_cfg_first_dup(names, n, &dup, &orig)) == CAIRN_OK && dup < n) {
        const cairni_node *at = cairni_node_get(seq->items[dup], "name");
        cairni_cfg_errf(err, errlen, cfg->doc->file,
                 at != NULL ? at->line : pl[dup].line,
                 "duplicate plugin name '%.*s' (first at line %d)", 64,
                 pl[dup].name, pl[orig].line);
        rv = CAIRN_ECONFIG;
    }
    free(names);
    return rv;
}

/* Destinations: absent keys inherit the store section's values; names
 * unique.  Routes: valid filters, destinations that are plugins. */
static void
cfg_dest_inherit(const cairni_store_cfg *st, const cairni_node *n,
                 cairni_dest_entry *d)
{
    if (cairni_node_get(n, "max_bytes") == NULL) {
        d->max_bytes = st->max_bytes;
    }
    if (cairni_node_get(n, "max_messages") == NULL) {
        d->max_messages = st->max_messages;
    }
    if (cairni_node_get(n, "ttl") == NULL) {
        d->ttl_ms = st->ttl_ms;
    }
    if (cairni_node_get(n, "on_full") == NULL) {
        d->on_full = st->on_full;
    }
    if (cairni_node_get(n, "window") == NULL) {
        d->window = st->window;
    }
}

static cairn_err
cfg_check_dests(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *store = cairni_node_get(cfg->doc->root, "store");
    const cairni_node *seq   = cairni_node_get(store, "destinations");
    cairni_dest_entry *d     = cfg->store.destinations.items;
    for (size_t i = 0; i < cfg->store.destinations.count; i++) {
        d[i].line = seq->items[i]->line;
        cfg_dest_inherit(&cfg->store, seq->items[i], &d[i]);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d[i].name, d[j].name) == 0) {
                cairni_cfg_errf(err, errlen, cfg->doc->file, d[i].line,
                         "duplicate destination '%.64s' (first at line %d)",
                         d[i].name, d[j].line);
                return CAIRN_ECONFIG;
            }
        }
    }
    return CAIRN_OK;
}

/* Call policies: absent keys inherit the calls section's; names
 * non-empty and unique; retries only for idempotent services. */
static void
cfg_call_inherit(const cairni_calls_cfg *c, const cairni_node *n,
                 cairni_call_cfg *e)
{
    if (cairni_node_get(n, "failures") == NULL) {
        e->failures = c->failures;
    }
    if (cairni_node_get(n, "open") == NULL) {
        e->open_ms = c->open_ms;
    }
    if (cairni_node_get(n, "probes") == NULL) {
        e->probes = c->probes;
    }
    if (cairni_node_get(n, "backoff") == NULL) {
        e->backoff_ms = c->backoff_ms;
    }
}

static cairn_err
cfg_check_calls(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *calls = cairni_node_get(cfg->doc->root, "calls");
    const cairni_node *seq   = cairni_node_get(calls, "services");
    cairni_call_cfg   *c     = cfg->calls.services.items;
    for (size_t i = 0; i < cfg->calls.services.count; i++) {
        c[i].line = seq->items[i]->line;
        cfg_call_inherit(&cfg->calls, seq->items[i], &c[i]);
        if (c[i].name[0] == '\0') {
            cairni_cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                     "'calls.services[%zu].name' must not be empty", i);
            return CAIRN_ECONFIG;
        }
        if (c[i].attempts > 1 && !c[i].idempotent) {
            cairni_cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                     "'calls.services[%zu].attempts' is %lld but the service "
                     "is not idempotent: a retried call could act twice (set "
                     "idempotent: true, or attempts: 1)",
                     i, (long long)c[i].attempts);
            return CAIRN_ECONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c[i].name, c[j].name) == 0) {
                cairni_cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                         "duplicate service '%.64s' (first at line %d)",
                         c[i].name, c[j].line);
                return CAIRN_ECONFIG;
            }
        }
    }
    return CAIRN_OK;
}

static bool
cfg_is_plugin(const cairni_config *cfg, const char *name)
{
    const cairni_plugin_cfg *pl = cfg->plugins.items;
    for (size_t i = 0; i < cfg->plugins.count; i++) {
        if (strcmp(pl[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static cairn_err
cfg_check_routes(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *seq = cairni_node_get(cfg->doc->root, "routes");
    cairni_route_cfg  *r   = cfg->routes.items;
    for (size_t i = 0; i < cfg->routes.count; i++) {
        r[i].line = seq->items[i]->line;
        if (cairn_filter_valid(r[i].filter) != CAIRN_OK) {
            cairni_cfg_errf(err, errlen, cfg->doc->file, r[i].line,
                     "'routes[%zu].filter' is not a valid topic filter: "
                     "'%.64s'", i, r[i].filter);
            return CAIRN_ECONFIG;
        }
        if (!cfg_is_plugin(cfg, r[i].to)) {
            cairni_cfg_errf(err, errlen, cfg->doc->file, r[i].line,
                     "'routes[%zu].to': no plugin named '%.64s'", i, r[i].to);
            return CAIRN_ECONFIG;
        }
    }
    return CAIRN_OK;
}

static const cfg_check_fn cfg_checks[] = {
    cfg_check_retry,
    cfg_check_plugins,
    cfg_check_dests,
    cfg_check_routes,
    cfg_check_calls,
};

/* Takes doc; on success *cfgp owns it. */
static cairn_err
cfg_config_build(cairni_doc *doc, cairni_config **cfgp, char *err,
                 size_t errlen)
{
    cairn_err      rv = CAIRN_ENOMEM;
    cairni_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        cairni_cfg_errf(err, errlen, doc->file, 1, "out of memory");
        cairni_doc_free(doc);
        return rv;
    }
    cfg->doc = doc;
    rv = cairni_cfg_fill(doc, doc->root, cairni_config_fields, cfg, &cfg->arena,
                         err, errlen);
    for (size_t i = 0; rv == CAIRN_OK && i < CAIRNI_ARRAY_LEN(cfg_checks);
         i++) {
        rv = cfg_checks[i](cfg, err, errlen);
    }
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *cfgp = cfg;
    return CAIRN_OK;
fail:
    cairni_config_free(cfg);
    return rv;
}

cairn_err
cairni_config_load(const char *path, cairni_config **cfgp, char *err,
                   size_t errlen)
{
    cairni_doc *doc = NULL;
    *cfgp = NULL;
    cairn_err rv = cairni_doc_parse_file(path, &doc, err, errlen);
    return rv != CAIRN_OK ? rv : cfg_config_build(doc, cfgp, err, errlen);
}

cairn_err
cairni_config_load_string(const char *name, const char *text,
                          cairni_config **cfgp, char *err, size_t errlen)
{
    cairni_doc *doc = NULL;
    *cfgp = NULL;
    cairn_err rv = cairni_doc_parse_string(
        name, text, text != NULL ? strlen(text) : 0, &doc, err, errlen);
    return rv != CAIRN_OK ? rv : cfg_config_build(doc, cfgp, err, errlen);
}

void
cairni_config_free(cairni_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    cairni_arena_fini(&cfg->arena);
    cairni_doc_free(cfg->doc);
    free(cfg);
}
