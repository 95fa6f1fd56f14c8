/*
 * gw_route.c - routes: templates like /orders/{id} compiled into
 * segments, matching, the CBOR request map a service receives, the map
 * from errors to HTTP statuses, and the OpenAPI 3 document of it all.
 *
 * Matching is segment by segment: a literal segment matches itself, a
 * {name} segment any one non-empty segment.  Among routes whose path
 * matches, the first in config order with the request's method wins; a
 * path that matches only with other methods is a 405, none at all a 404.
 * Runs at init (compile, document) and on worker threads (the rest);
 * routes are immutable after init.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"

static const char *const gw_methods[] = {"GET",  "POST",   "PUT",
                                         "PATCH", "DELETE", NULL};

static cairn_err
gw_route_compile(gw *g, const gw_route_cfg *c, gw_route *r, size_t i)
{
    const char *p = c->path;
    bool        known = false;
    for (size_t k = 0; gw_methods[k] != NULL; k++) {
        known = known || strcmp(c->method, gw_methods[k]) == 0;
    }
    if (!known) {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "routes[%zu].method '%s': one of GET POST PUT PATCH "
                     "DELETE (upper case)", i, c->method);
        return CAIRN_ECONFIG;
    }
    if (p[0] != '/') {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "routes[%zu].path '%s' must start with '/'", i, p);
        return CAIRN_ECONFIG;
    }
    r->cfg = c;
    while (*p == '/' && p[1] != '\0') {
        const char *s = ++p, *e = strchr(s, '/');
        size_t      n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || r->nsegs == GW_MAX_SEGS) {
            g->host->log(g->self, CAIRN_LOG_ERROR,
                         "routes[%zu].path '%s': empty segment or more "
                         "than %d", i, c->path, GW_MAX_SEGS);
            return CAIRN_ECONFIG;
        }
        gw_seg *sg = &r->segs[r->nsegs++];
        sg->param  = s[0] == '{';
        if (sg->param && (n < 3 || s[n - 1] != '}')) {
            g->host->log(g->self, CAIRN_LOG_ERROR,
                         "routes[%zu].path '%s': a parameter is {name}", i,
                         c->path);
            return CAIRN_ECONFIG;
        }
        sg->text = sg->param ? s + 1 : s;
        sg->len  = sg->param ? n - 2 : n;
        p += n;
    }
    if (c->service[0] == '\0') {
        g->host->log(g->self, CAIRN_LOG_ERROR, "routes[%zu].service is empty",
                     i);
        return CAIRN_ECONFIG;
    }
    if (c->auth != GW_AUTH_NONE && g->ntokens == 0 && g->jwt_klen == 0) {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "routes[%zu] wants auth but neither tokens nor "
                     "jwt_secret is configured", i);
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

cairn_err
gw_routes_init(gw *g)
{
    const gw_route_cfg *rc = g->cfg.routes.items;
    g->nroutes             = g->cfg.routes.count;
    g->routes = calloc(g->nroutes ? g->nroutes : 1, sizeof(gw_route));
    if (g->routes == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < g->nroutes; i++) {
        cairn_err rv = gw_route_compile(g, &rc[i], &g->routes[i], i);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

/* True if path (already without its query) fits r's segments. */
static bool
gw_path_fits(const gw_route *r, const char *path)
{
    const char *p = path;
    size_t      k = 0;
    if (strcmp(path, "/") == 0) {
        return r->nsegs == 0;
    }
    while (*p == '/') {
        const char *s = ++p, *e = strchr(s, '/');
        size_t      n = e ? (size_t)(e - s) : strlen(s);
        if (k == r->nsegs || n == 0) {
            return false;
        }
        const gw_seg *sg = &r->segs[k++];
        if (!sg->param && (n != sg->len || memcmp(s, sg->text, n) != 0)) {
            return false;
        }
        p += n;
    }
    return k == r->nsegs && *p == '\0';
}

const gw_route *
gw_route_match(const gw *g, const char *method, const char *path,
               uint16_t *status)
{
    *status = 404;
    for (size_t i = 0; i < g->nroutes; i++) {
        const gw_route *r = &g->routes[i];
        if (!gw_path_fits(r, path)) {
            continue;
        }
        if (strcmp(r->cfg->method, method) == 0) {
            return r;
        }
        *status = 405;
    }
    return NULL;
}

static int
gw_hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

bool
gw_pct_decode(const char *s, size_t n, bool plus_space, char *out,
              size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && gw_hexval(s[i + 1]) >= 0 &&
            gw_hexval(s[i + 2]) >= 0) {
            c = (char)(gw_hexval(s[i + 1]) << 4 | gw_hexval(s[i + 2]));
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o + 1 >= cap || c == '\0') {
            return false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* "params": the values of the route's {name} segments. */
static void
gw_put_params(const gw_route *r, const char *path, gw_buf *out, bool *bad)
{
    size_t      np = 0, k = 0;
    const char *p  = path;
    for (size_t i = 0; i < r->nsegs; i++) {
        np += r->segs[i].param;
    }
    gw_cbor_head(out, 5, np);
    while (*p == '/' && k < r->nsegs) {
        const char *s = ++p, *e = strchr(s, '/');
        size_t      n = e ? (size_t)(e - s) : strlen(s);
        char        val[1024] = "";
        const gw_seg *sg = &r->segs[k++];
        p += n;
        if (!sg->param) {
            continue;
        }
        if (!gw_pct_decode(s, n, false, val, sizeof(val))) {
            *bad = true;
        }
        gw_cbor_text(out, sg->text, sg->len);
        gw_cbor_text(out, val, strlen(val));
    }
}

/* "query": name -> value; a name given twice keeps the last value. */
static cairn_err
gw_put_query(const char *query, gw_buf *out, char *why, size_t whylen)
{
    struct {
        char name[256], val[1024];
    } *kv;
    size_t    n  = 0;
    cairn_err rv = CAIRN_OK;
    if (query[0] == '\0') {
        gw_cbor_head(out, 5, 0);
        return CAIRN_OK;
    }
    if ((kv = calloc(GW_MAX_PARAMS, sizeof(*kv))) == NULL) {
        return CAIRN_ENOMEM;
    }
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        const char *eq  = memchr(p, '=', (size_t)(end - p));
        char        name[256], val[1024];
        size_t      k;
        if (end == p) {
            p = amp ? amp + 1 : end;
            continue;
        }
        if (!gw_pct_decode(p, (size_t)((eq ? eq : end) - p), true, name,
                           sizeof(name)) ||
            !gw_pct_decode(eq ? eq + 1 : end, eq ? (size_t)(end - eq - 1) : 0,
                           true, val, sizeof(val))) {
            snprintf(why, whylen, "bad query parameter");
            rv = CAIRN_EPROTO;
            break;
        }
        for (k = 0; k < n && strcmp(kv[k].name, name) != 0; k++) {
        }
        if (k == GW_MAX_PARAMS) {
            snprintf(why, whylen, "more than %d query parameters",
                     GW_MAX_PARAMS);
            rv = CAIRN_ELIMIT;
            break;
        }
        memcpy(kv[k].name, name, sizeof(name));
        memcpy(kv[k].val, val, sizeof(val));
        n += k == n;
        p = amp ? amp + 1 : end;
    }
    if (rv == CAIRN_OK) {
        gw_cbor_head(out, 5, n);
        for (size_t k = 0; k < n; k++) {
            gw_cbor_text(out, kv[k].name, strlen(kv[k].name));
            gw_cbor_text(out, kv[k].val, strlen(kv[k].val));
        }
    }
    free(kv);
    return rv;
}

cairn_err
gw_request_cbor(const gw *g, const gw_route *r, const char *method,
                const char *path, const char *query, const uint8_t *body,
                size_t blen, const char *subject, gw_buf *out, char *why,
                size_t whylen)
{
    bool      bad = false;
    cairn_err rv;
    gw_cbor_head(out, 5, subject != NULL ? 6 : 5);
    gw_cbor_text(out, "method", 6);
    gw_cbor_text(out, method, strlen(method));
    gw_cbor_text(out, "path", 4);
    gw_cbor_text(out, path, strlen(path));
    gw_cbor_text(out, "params", 6);
    gw_put_params(r, path, out, &bad);
    if (bad) {
        snprintf(why, whylen, "bad path parameter");
        return CAIRN_EPROTO;
    }
    gw_cbor_text(out, "query", 5);
    if ((rv = gw_put_query(query, out, why, whylen)) != CAIRN_OK) {
        return rv;
    }
    gw_cbor_text(out, "body", 4);
    if (blen == 0) {
        gw_buf_putc(out, 0xf6); /* null */
    } else if ((rv = gw_json_to_cbor((const char *)body, blen, &g->lim, out,
                                     why, whylen)) != CAIRN_OK) {
        return rv;
    }
    if (subject != NULL) {
        gw_cbor_text(out, "subject", 7);
        gw_cbor_text(out, subject, strlen(subject));
    }
    return out->failed ? (out->toobig ? CAIRN_ETOOBIG : CAIRN_ENOMEM)
                       : CAIRN_OK;
}

/* ---- statuses ----------------------------------------------------------- */

uint16_t
gw_status_of_call(cairn_err rv)
{
    switch (rv) {
    case CAIRN_ETIMEDOUT:
        return 504;
    case CAIRN_ECONNREFUSED:
    case CAIRN_EPROTO:
        return 502;
    case CAIRN_ETOOBIG:
        return 413;
    case CAIRN_EINVAL:
        return 500;
    default: /* no such service, stopping, full, circuit open */
        return 503;
    }
}

uint16_t
gw_status_of_reply(cairn_err st)
{
    switch (st) {
    case CAIRN_OK:
        return 200;
    case CAIRN_EINVAL:
    case CAIRN_EPROTO:
        return 400;
    case CAIRN_EPERM:
        return 403;
    case CAIRN_ENOENT:
        return 404;
    case CAIRN_EEXIST:
        return 409;
    case CAIRN_ETOOBIG:
        return 413;
    case CAIRN_ELIMIT:
        return 422;
    case CAIRN_ENOTSUP:
        return 501;
    case CAIRN_EFULL:
    case CAIRN_EBUSY:
    case CAIRN_EAGAIN:
    case CAIRN_ECLOSED:
        return 503;
    case CAIRN_ETIMEDOUT:
        return 504;
    default:
        return 500;
    }
}

/* ---- OpenAPI ------------------------------------------------------------ */

static void
oa_error_responses(gw_buf *b, bool auth)
{
    static const char *const codes[][2] = {
        {"400", "malformed request (bad JSON, bad parameter)"},
        {"404", "no such route"},
        {"413", "body too large"},
        {"429", "rate limited (see Retry-After)"},
        {"502", "the service failed"},
        {"503", "no such service, or the runtime is stopping"},
        {"504", "the service did not answer in time"},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        gw_buf_printf(b, ",\"%s\":{\"description\":\"%s\",\"content\":{"
                         "\"application/json\":{\"schema\":{\"$ref\":"
                         "\"#/components/schemas/Error\"}}}}",
                      codes[i][0], codes[i][1]);
    }
    if (auth) {
        gw_buf_puts(b, ",\"401\":{\"description\":\"no or bad credentials\"}"
                       ",\"403\":{\"description\":\"not allowed\"}");
    }
}

static void
oa_operation(const gw *g, const gw_route *r, gw_buf *b)
{
    const gw_route_cfg *c = r->cfg;
    char                m[8];
    size_t              np = 0;
    for (size_t i = 0; c->method[i] != '\0' && i < sizeof(m) - 1; i++) {
        m[i]     = (char)(c->method[i] | 0x20);
        m[i + 1] = '\0';
    }
    gw_json_string(b, m, strlen(m));
    gw_buf_puts(b, ":{\"operationId\":");
    gw_json_string(b, c->service, strlen(c->service));
    gw_buf_puts(b, ",\"summary\":");
    gw_json_string(b, c->summary[0] ? c->summary : c->service,
                   strlen(c->summary[0] ? c->summary : c->service));
    gw_buf_puts(b, ",\"parameters\":[");
    for (size_t i = 0; i < r->nsegs; i++) {
        if (!r->segs[i].param) {
            continue;
        }
        gw_buf_puts(b, np++ ? ",{\"name\":" : "{\"name\":");
        gw_json_string(b, r->segs[i].text, r->segs[i].len);
        gw_buf_puts(b, ",\"in\":\"path\",\"required\":true,\"schema\":"
                       "{\"type\":\"string\"}}");
    }
    gw_buf_puts(b, "]");
    if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "DELETE") != 0) {
        gw_buf_puts(b, ",\"requestBody\":{\"required\":false,\"content\":{"
                       "\"application/json\":{\"schema\":{}}}}");
    }
    if (c->auth != GW_AUTH_NONE) {
        gw_buf_puts(b, ",\"security\":[{\"bearer\":[]}]");
    }
    gw_buf_puts(b, ",\"responses\":{\"200\":{\"description\":\"the "
                   "service's reply\",\"content\":{\"application/json\":"
                   "{\"schema\":{}}}}");
    oa_error_responses(b, c->auth != GW_AUTH_NONE);
    gw_buf_puts(b, "}}");
}

static void
oa_builtin(gw_buf *b, size_t *npaths, const char *path, const char *summary,
           const char *ctype)
{
    gw_buf_puts(b, (*npaths)++ ? "," : "");
    gw_buf_printf(b, "\"%s\":{\"get\":{\"operationId\":\"%s\",\"summary\":"
                     "\"%s\",\"responses\":{\"200\":{\"description\":\"%s\","
                     "\"content\":{\"%s\":{\"schema\":{}}}}}}}",
                  path, path + 1, summary, summary, ctype);
}

cairn_err
gw_openapi_build(gw *g)
{
    gw_buf b = {0};
    gw_buf_puts(&b, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":");
    gw_json_string(&b, g->cfg.title, strlen(g->cfg.title));
    gw_buf_puts(&b, ",\"version\":\"1.0.0\"},\"paths\":{");
    size_t npaths = 0;
    for (size_t i = 0; i < g->nroutes; i++) {
        const char *path = g->routes[i].cfg->path;
        bool        seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = strcmp(g->routes[k].cfg->path, path) == 0;
        }
        if (seen) {
            continue;
        }
        gw_buf_puts(&b, npaths++ ? "," : "");
        gw_json_string(&b, path, strlen(path));
        gw_buf_puts(&b, ":{");
        size_t nops = 0;
        for (size_t k = i; k < g->nroutes; k++) {
            bool dup = false;
            for (size_t j = i; j < k && !dup; j++) {
                dup = strcmp(g->routes[j].cfg->path, path) == 0 &&
                      strcmp(g->routes[j].cfg->method,
                             g->routes[k].cfg->method) == 0;
            }
            if (strcmp(g->routes[k].cfg->path, path) == 0 && !dup) {
                gw_buf_puts(&b, nops++ ? "," : "");
                oa_operation(g, &g->routes[k], &b);
            }
        }
        gw_buf_puts(&b, "}");
    }
    oa_builtin(&b, &npaths, "/healthz", "alive", "application/json");
    oa_builtin(&b, &npaths, "/readyz", "ready: plugins started, links up",
               "application/json");
    oa_builtin(&b, &npaths, "/metrics", "Prometheus metrics of the runtime",
               "text/plain");
    oa_builtin(&b, &npaths, "/openapi.json", "this document", "application/json");
    gw_buf_puts(&b, "},\"components\":{\"securitySchemes\":{\"bearer\":{"
                    "\"type\":\"http\",\"scheme\":\"bearer\"}},\"schemas\":{"
                    "\"Error\":{\"type\":\"object\",\"required\":[\"error\"],"
                    "\"properties\":{\"error\":{\"type\":\"string\"}}}}}}\n");
    gw_buf_putc(&b, '\0');
    if (b.failed) {
        gw_buf_fini(&b);
        return CAIRN_ENOMEM;
    }
    g->openapi     = (char *)b.data;
    g->openapi_len = b.len - 1;
    return CAIRN_OK;
}
