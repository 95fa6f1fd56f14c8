/*
 * gw_main.c - the http-gateway plugin: config table (which produces its
 * documentation), checks, and lifecycle.
 *
 *   init   checks the config: routes compiled, token hashes decoded, the
 *          JWT secret read, the OpenAPI document built
 *   start  the worker threads, then the HTTP server (listening)
 *   stop   the server stops taking requests; requests in flight are
 *          answered; workers joined; WebSocket clients closed
 *   fini   frees everything
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static const cairn_cfg_field gw_token_fields[] = {
    CAIRN_FIELD_STRING(gw_token_cfg, name, NULL,
                       "who holds the token (the subject services see)"),
    CAIRN_FIELD_STRING(gw_token_cfg, sha256, NULL,
                       "SHA-256 of the token, 64 hex digits (printf %s "
                       "TOKEN | sha256sum); the token itself is never stored"),
    CAIRN_FIELD_END,
};

static const cairn_cfg_field gw_route_fields[] = {
    CAIRN_FIELD_STRING(gw_route_cfg, method, NULL,
                       "GET, POST, PUT, PATCH or DELETE"),
    CAIRN_FIELD_STRING(gw_route_cfg, path, NULL,
                       "path template; {name} segments are parameters "
                       "(/orders/{id})"),
    CAIRN_FIELD_STRING(gw_route_cfg, service, NULL,
                       "bus service called with the request map"),
    CAIRN_FIELD_STRING(gw_route_cfg, summary, "",
                       "one line for the OpenAPI document"),
    CAIRN_FIELD_DURATION(gw_route_cfg, timeout, "5s", 1, 600000,
                         "deadline of the service call (504 after it)"),
    CAIRN_FIELD_ENUM(gw_route_cfg, auth, "none", "none|token|jwt|any",
                     "bearer credentials required: a configured token, an "
                     "HS256 JWT, or either"),
    CAIRN_FIELD_STRLIST(gw_route_cfg, allow,
                        "subjects allowed (token names or JWT sub); empty: "
                        "every authenticated subject"),
    CAIRN_FIELD_BOOL(gw_route_cfg, rate_limit, "true",
                     "count requests against the client's bucket"),
    CAIRN_FIELD_END,
};

const cairn_cfg_field gw_fields[] = {
    CAIRN_FIELD_STRING(gw_cfg, listen, "http://127.0.0.1:8080",
                       "address to listen on (http://HOST:PORT; port 0 "
                       "picks a free one, shown in the status)"),
    CAIRN_FIELD_SIZE(gw_cfg, max_body, "64KiB", 0, 16777216,
                     "largest request body (413 above)"),
    CAIRN_FIELD_SIZE(gw_cfg, max_uri, "2KiB", 64, 65536,
                     "longest request target, path and query (414 above); "
                     "NNG caps the whole request head at 8 KiB"),
    CAIRN_FIELD_SIZE(gw_cfg, max_reply, "1MiB", 1024, 16777216,
                     "largest JSON reply or WebSocket frame (502 above)"),
    CAIRN_FIELD_INT(gw_cfg, max_depth, "32", 1, 256,
                    "deepest nesting of JSON and CBOR documents"),
    CAIRN_FIELD_INT(gw_cfg, max_items, "10000", 1, 1000000,
                    "most values in one JSON or CBOR document"),
    CAIRN_FIELD_DURATION(gw_cfg, request_timeout, "10s", 10, 600000,
                         "longest wait for a request body (408 after it), "
                         "and cap on every route's timeout"),
    CAIRN_FIELD_INT(gw_cfg, workers, "4", 1, 256,
                    "threads that take WebSocket upgrades (and, on a "
                    "cairnd without call_async, make the service calls)"),
    CAIRN_FIELD_INT(gw_cfg, queue, "256", 1, 100000,
                    "requests waiting for a worker or for a service's "
                    "reply (503 above)"),
    CAIRN_FIELD_DOUBLE(gw_cfg, rate, "0", 0, 1000000,
                       "requests per second per client (token bucket "
                       "refill); 0: no rate limit"),
    CAIRN_FIELD_INT(gw_cfg, burst, "20", 1, 1000000,
                    "bucket size: requests a client may send at once"),
    CAIRN_FIELD_STRING(gw_cfg, client_header, "",
                       "header naming the client of an unauthenticated "
                       "request (e.g. X-Forwarded-For set by a trusted "
                       "proxy); empty: such requests share one bucket"),
    CAIRN_FIELD_LIST(gw_cfg, tokens, gw_token_fields, gw_token_cfg,
                     "static bearer tokens, stored as SHA-256 hashes"),
    CAIRN_FIELD_STRING(gw_cfg, jwt_secret, "",
                       "HMAC key of HS256 JWTs (empty: no JWTs)"),
    CAIRN_FIELD_STRING(gw_cfg, jwt_secret_file, "",
                       "read the HMAC key from this file instead (first "
                       "line)"),
    CAIRN_FIELD_DURATION(gw_cfg, jwt_leeway, "30s", 0, 3600000,
                         "clock skew allowed on exp and nbf"),
    CAIRN_FIELD_ENUM(gw_cfg, metrics_auth, "none", "none|token|jwt|any",
                     "credentials for /metrics and /openapi.json (/healthz "
                     "and /readyz are always open)"),
    CAIRN_FIELD_STRING(gw_cfg, ws_path, "/ws",
                       "WebSocket endpoint (GET PATH?filter=F); empty: none"),
    CAIRN_FIELD_ENUM(gw_cfg, ws_auth, "none", "none|token|jwt|any",
                     "credentials for the WebSocket endpoint"),
    CAIRN_FIELD_INT(gw_cfg, ws_max_clients, "16", 1, 10000,
                    "WebSocket clients at once (503 above)"),
    CAIRN_FIELD_INT(gw_cfg, ws_queue, "256", 1, 1000000,
                    "frames waiting per WebSocket client (more are "
                    "dropped and counted)"),
    CAIRN_FIELD_STRING(gw_cfg, title, "cairn gateway",
                       "title of the OpenAPI document"),
    CAIRN_FIELD_LIST(gw_cfg, routes, gw_route_fields, gw_route_cfg,
                     "REST routes onto bus services"),
    CAIRN_FIELD_END,
};

static cairn_err
gw_tokens_init(gw *g)
{
    const gw_token_cfg *t = g->cfg.tokens.items;
    g->ntokens            = g->cfg.tokens.count;
    g->tokens = calloc(g->ntokens ? g->ntokens : 1, sizeof(gw_token));
    if (g->tokens == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < g->ntokens; i++) {
        g->tokens[i].name = t[i].name;
        if (t[i].name[0] == '\0' ||
            !gw_hex_decode(t[i].sha256, g->tokens[i].hash, 32)) {
            g->host->log(g->self, CAIRN_LOG_ERROR,
                         "tokens[%zu]: needs a name and sha256 of 64 hex "
                         "digits", i);
            return CAIRN_ECONFIG;
        }
    }
    return CAIRN_OK;
}

static cairn_err
gw_jwt_init(gw *g)
{
    char        line[1024];
    const char *key = g->cfg.jwt_secret;
    if (g->cfg.jwt_secret_file[0] != '\0') {
        FILE *f = fopen(g->cfg.jwt_secret_file, "r");
        if (f == NULL) {
            g->host->log(g->self, CAIRN_LOG_ERROR, "jwt_secret_file '%s': %s",
                         g->cfg.jwt_secret_file, strerror(errno));
            return CAIRN_ECONFIG;
        }
        if (fgets(line, sizeof(line), f) == NULL) {
            line[0] = '\0';
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        key                         = line;
    }
    g->jwt_klen = strlen(key);
    if (g->jwt_klen > 0 && (g->jwt_key = malloc(g->jwt_klen)) == NULL) {
        return CAIRN_ENOMEM;
    }
    if (g->jwt_klen > 0) {
        memcpy(g->jwt_key, key, g->jwt_klen);
    }
    explicit_bzero(line, sizeof(line));
    if (g->jwt_klen > 0 && g->jwt_klen < 16) {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "the JWT secret is shorter than 16 bytes");
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

static cairn_err
gw_check(gw *g)
{
    cairn_err rv;
    if ((rv = gw_tokens_init(g)) != CAIRN_OK ||
        (rv = gw_jwt_init(g)) != CAIRN_OK ||
        (rv = gw_routes_init(g)) != CAIRN_OK) {
        return rv;
    }
    bool creds = g->ntokens > 0 || g->jwt_klen > 0;
    if ((g->cfg.ws_auth != GW_AUTH_NONE ||
         g->cfg.metrics_auth != GW_AUTH_NONE) && !creds) {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "ws_auth/metrics_auth need tokens or jwt_secret");
        return CAIRN_ECONFIG;
    }
    if (g->cfg.ws_path[0] != '\0' && g->cfg.ws_path[0] != '/') {
        g->host->log(g->self, CAIRN_LOG_ERROR, "ws_path must start with '/'");
        return CAIRN_ECONFIG;
    }
    return gw_openapi_build(g);
}

static void
gw_free(gw *g)
{
    free(g->routes);
    free(g->tokens);
    if (g->jwt_key != NULL) {
        explicit_bzero(g->jwt_key, g->jwt_klen);
        free(g->jwt_key);
    }
    free(g->openapi);
    free(g->buckets);
    free(g->threads);
    pthread_mutex_destroy(&g->rate_lock);
    pthread_cond_destroy(&g->idle_cv);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static cairn_err
gw_init(const cairn_host *host, cairn_plugin *self, const void *config,
        void **statep)
{
    cairn_err rv;
    if (!CAIRN_HOST_HAS(host, link_state)) {
        host->log(self, CAIRN_LOG_ERROR,
                  "this cairnd lacks /readyz and /metrics (ABI 1.2 needed)");
        return CAIRN_ENOTSUP;
    }
    gw *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return CAIRN_ENOMEM;
    }
    g->host = host;
    g->self = self;
    g->cfg  = *(const gw_cfg *)config;
    g->name = host->name(self);
    g->lim  = (gw_limits){.max_depth = (uint32_t)g->cfg.max_depth,
                          .max_items = (uint32_t)g->cfg.max_items,
                          .max_out   = g->cfg.max_reply};
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_cond_init(&g->idle_cv, NULL);
    pthread_mutex_init(&g->rate_lock, NULL);
    g->buckets = calloc(GW_BUCKETS, sizeof(gw_bucket));
    if (g->buckets == NULL) {
        rv = CAIRN_ENOMEM;
        goto fail;
    }
    if ((rv = gw_check(g)) != CAIRN_OK) {
        goto fail;
    }
    *statep = g;
    return CAIRN_OK;
fail:
    gw_free(g);
    return rv;
}

static cairn_err
gw_start(void *state)
{
    return gw_http_start(state);
}

static void
gw_stop(void *state)
{
    gw_http_stop(state);
}

static void
gw_fini(void *state)
{
    gw_free(state);
}

static const cairn_plugin_desc gw_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "http-gateway",
    .version     = "1.0.0",
    .description = "REST and WebSocket gateway: HTTP routes onto bus "
                   "services, bus topics to WebSocket clients, health, "
                   "metrics and OpenAPI",
    .config      = gw_fields,
    .config_size = sizeof(gw_cfg),
    .init        = gw_init,
    .start       = gw_start,
    .stop        = gw_stop,
    .fini        = gw_fini,
};

CAIRN_PLUGIN_DEFINE(gw_desc)
