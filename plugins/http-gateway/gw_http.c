/*
 * gw_http.c - the gateway's HTTP side: one NNG handler for the whole
 * tree, so every answer (404, 405 included) is the gateway's own JSON.
 *
 * The handler runs on an NNG thread and must not block.  It refuses what
 * it can tell from the head alone (URI too long 414, chunked body 411,
 * body too large 413: those close the connection, since the body is left
 * unread), reads a body of Content-Length bytes with its own aio bounded
 * by request_timeout, and queues the request.  A worker then routes it,
 * checks auth and the client's bucket, converts the body, calls the
 * service with the route's deadline and finishes the server's aio with
 * the response.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gw.h"

static const char *const gw_counter_names[GW_C_COUNT] = {
    [GW_C_REQUESTS]     = "http_requests_total",
    [GW_C_2XX]          = "http_responses_2xx_total",
    [GW_C_4XX]          = "http_responses_4xx_total",
    [GW_C_5XX]          = "http_responses_5xx_total",
    [GW_C_AUTH_FAILED]  = "http_auth_failures_total",
    [GW_C_RATE_LIMITED] = "http_rate_limited_total",
    [GW_C_WS_SENT]      = "ws_sent_total",
    [GW_C_WS_DROPPED]   = "ws_dropped_total",
};

void
gw_count(gw *g, int which)
{
    atomic_fetch_add_explicit(&g->count[which], 1, memory_order_relaxed);
}

/* Worker: the counters' growth since the last flush, and the gauges. */
static void
gw_flush(gw *g)
{
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < GW_C_COUNT; i++) {
        uint64_t v = atomic_load(&g->count[i]);
        if (v != g->flushed[i] || v == 0) {
            g->host->counter_add(g->self, gw_counter_names[i],
                                 v - g->flushed[i]);
            g->flushed[i] = v;
        }
    }
    size_t nws = g->nws, queued = g->qlen;
    pthread_mutex_unlock(&g->lock);
    g->host->gauge_set(g->self, "ws_clients", (double)nws);
    g->host->gauge_set(g->self, "http_queued", (double)queued);
}

static uint64_t
gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- responses ---------------------------------------------------------- */

static nng_http_res *
gw_res(uint16_t status, const char *ctype, const void *body, size_t len)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        return NULL;
    }
    if (nng_http_res_set_status(res, status) != 0 ||
        nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
        nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
        nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_free(res);
        return NULL;
    }
    return res;
}

nng_http_res *
gw_error_res(uint16_t status, const char *text)
{
    gw_buf b = {0};
    gw_buf_puts(&b, "{\"error\":");
    gw_json_string(&b, text, strlen(text));
    gw_buf_puts(&b, "}\n");
    nng_http_res *res =
        b.failed ? NULL : gw_res(status, "application/json", b.data, b.len);
    gw_buf_fini(&b);
    return res;
}

/* An error response that also closes the connection (unread body). */
static nng_http_res *
gw_error_close(uint16_t status, const char *text)
{
    nng_http_res *res = gw_error_res(status, text);
    if (res != NULL && nng_http_res_set_header(res, "Connection", "close")) {
        nng_http_res_free(res);
        res = NULL;
    }
    return res;
}

static void
gw_count_status(gw *g, uint16_t st)
{
    gw_count(g, st < 400 ? GW_C_2XX : st < 500 ? GW_C_4XX : GW_C_5XX);
}

/* Finishes the server's aio with res (NULL: out of memory, or the
 * connection was taken over) and frees the request. */
static void
gw_finish(gw *g, gw_req *rq, nng_http_res *res, bool hijacked)
{
    nng_aio *aio = rq->cbaio;
    if (res != NULL) {
        gw_count_status(g, nng_http_res_get_status(res));
    }
    if (rq->rdaio != NULL) {
        /* Reaped: this may run inside the read's own callback, where
         * nng_aio_free would wait for itself. */
        nng_aio_reap(rq->rdaio);
    }
    free(rq->body);
    free(rq);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, res != NULL || hijacked ? 0 : NNG_ENOMEM);
    pthread_mutex_lock(&g->lock);
    if (--g->inflight == 0) {
        pthread_cond_broadcast(&g->idle_cv);
    }
    pthread_mutex_unlock(&g->lock);
}

/* ---- auth and limits ---------------------------------------------------- */

/* Checks the bearer credentials against mode; on success sub gets the
 * subject.  Otherwise the error response. */
static nng_http_res *
gw_authenticate(gw *g, nng_http_req *req, int mode, char *sub, size_t sublen)
{
    const char *h = nng_http_req_get_header(req, "Authorization");
    const char *why = "missing bearer token";
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && strlen(h) < 4096) {
        const char *tok = h + 7;
        bool        jwt = mode == GW_AUTH_JWT ||
                   (mode == GW_AUTH_ANY && strchr(tok, '.') != NULL);
        const char *name;
        if (jwt && g->jwt_klen > 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (gw_jwt_verify(tok, g->jwt_key, g->jwt_klen,
                              (uint64_t)now.tv_sec, g->cfg.jwt_leeway / 1000,
                              sub, sublen, &why) == CAIRN_OK) {
                return NULL;
            }
        } else if (!jwt && (name = gw_token_check(g, tok)) != NULL) {
            snprintf(sub, sublen, "%s", name);
            return NULL;
        } else {
            why = "invalid token";
        }
    }
    gw_count(g, GW_C_AUTH_FAILED);
    nng_http_res *res = gw_error_res(401, why);
    if (res != NULL &&
        nng_http_res_set_header(res, "WWW-Authenticate", "Bearer") != 0) {
        nng_http_res_free(res);
        res = NULL;
    }
    return res;
}

static bool
gw_allowed(const gw_route_cfg *c, const char *sub)
{
    const char *const *names = c->allow.items;
    if (c->allow.count == 0) {
        return true;
    }
    for (size_t i = 0; i < c->allow.count; i++) {
        if (strcmp(names[i], sub) == 0) {
            return true;
        }
    }
    return false;
}

/* The client's bucket: the subject, else the configured header, else
 * one shared anonymous bucket.  NULL if a token is left. */
static nng_http_res *
gw_limit(gw *g, nng_http_req *req, const char *sub)
{
    char        key[GW_SUB_LEN];
    const char *hv = g->cfg.client_header[0]
                         ? nng_http_req_get_header(req, g->cfg.client_header)
                         : NULL;
    uint32_t    retry = 1;
    char        ra[16];
    if (g->cfg.rate <= 0) {
        return NULL;
    }
    snprintf(key, sizeof(key), "%s%.60s", sub ? "s:" : hv ? "h:" : "-",
             sub ? sub : hv ? hv : "");
    if (gw_rate_take(g, key, gw_now_ms(), &retry)) {
        return NULL;
    }
    gw_count(g, GW_C_RATE_LIMITED);
    nng_http_res *res = gw_error_res(429, "rate limit exceeded");
    snprintf(ra, sizeof(ra), "%u", retry);
    if (res != NULL && nng_http_res_set_header(res, "Retry-After", ra) != 0) {
        nng_http_res_free(res);
        res = NULL;
    }
    return res;
}

/* ---- the service call --------------------------------------------------- */

/* The reply's payload as a response body: CBOR as JSON, JSON as it is,
 * anything else as bytes. */
static nng_http_res *
gw_reply_res(gw *g, uint16_t st, cairn_err status, const uint8_t *data,
             size_t len)
{
    gw_buf        b    = {.max = g->cfg.max_reply};
    nng_http_res *res  = NULL;
    bool          cbor = false;
    if (st != 200) {
        gw_buf_puts(&b, "{\"error\":");
        gw_json_string(&b, cairn_strerror(status),
                       strlen(cairn_strerror(status)));
        gw_buf_puts(&b, ",\"detail\":");
    }
    size_t at = b.len;
    if (len == 0) {
        gw_buf_puts(&b, "null");
        cbor = true;
    } else if (gw_cbor_to_json(data, len, &g->lim, &b, NULL, 0) == CAIRN_OK) {
        cbor = true;
    } else {
        b.len = at, b.failed = b.toobig = false;
        if (gw_json_valid((const char *)data, len, &g->lim)) {
            gw_buf_put(&b, data, len);
            cbor = true;
        } else if (st != 200) {
            gw_json_string(&b, (const char *)data, len);
            cbor = true;
        }
    }
    if (st != 200) {
        gw_buf_puts(&b, "}");
    }
    if (b.failed) {
        res = gw_error_res(502, "the service's reply is too large");
    } else if (cbor) {
        gw_buf_putc(&b, '\n');
        res = gw_res(st, "application/json", b.data, b.len);
    } else {
        res = gw_res(st, "application/octet-stream", data, len);
    }
    gw_buf_fini(&b);
    return res;
}

/* The response to a call that got no reply. */
static nng_http_res *
gw_call_error(gw *g, const gw_route *r, cairn_err rv)
{
    char text[192];
    snprintf(text, sizeof(text), "service %s: %s", r->cfg->service,
             cairn_strerror(rv));
    return gw_error_res(gw_status_of_call(rv), text);
}

/* The reply callback of call_async (an NNG thread): answers the request. */
static void
gw_call_done(void *arg, cairn_err rv, cairn_reply *reply)
{
    gw_req       *rq = arg;
    gw           *g  = rq->g;
    nng_http_res *res;
    if (rv != CAIRN_OK) {
        g->host->count_error(g->self); /* as call counts its failures */
        res = gw_call_error(g, rq->route, rv);
    } else {
        res = gw_reply_res(g, gw_status_of_reply(reply->status),
                           reply->status, reply->data, reply->len);
    }
    gw_finish(g, rq, res, false);
}

/* Calls r's service with the request map.  With rq->async the call is
 * started and *pending set: the reply callback answers, and rq must not
 * be touched any more (it may be gone already). */
static nng_http_res *
gw_call(gw *g, gw_req *rq, const gw_route *r, const char *path,
        const char *query, const char *sub, bool *pending)
{
    const char   *method = nng_http_req_get_method(rq->req);
    const char   *ct     = nng_http_req_get_header(rq->req, "Content-Type");
    gw_buf        b      = {.max = CAIRN_ENV_MAX_SIZE / 2};
    char          why[128] = "";
    cairn_reply   reply;
    nng_http_res *res;
    if (rq->blen > 0 && ct != NULL &&
        strncasecmp(ct, "application/json", 16) != 0) {
        return gw_error_res(415, "the body must be application/json");
    }
    cairn_err rv = gw_request_cbor(g, r, method, path, query, rq->body,
                                   rq->blen, sub, &b, why, sizeof(why));
    if (rv != CAIRN_OK) {
        char text[192];
        snprintf(text, sizeof(text), "bad JSON body: %s", why);
        gw_buf_fini(&b);
        return rv == CAIRN_ETOOBIG ? gw_error_res(413, "body too large")
               : rv == CAIRN_ENOMEM ? NULL
               : gw_error_res(400, rv == CAIRN_EPROTO || rv == CAIRN_ELIMIT
                                       ? text
                                       : why);
    }
    uint64_t tmo = r->cfg->timeout < g->cfg.request_timeout
                       ? r->cfg->timeout
                       : g->cfg.request_timeout;
    if (rq->async) {
        rq->route = r;
        rv = g->host->call_async(g->self, r->cfg->service, b.data, b.len,
                                 (uint32_t)tmo, gw_call_done, rq);
        gw_buf_fini(&b);
        *pending = rv == CAIRN_OK;
        return rv == CAIRN_OK ? NULL : gw_call_error(g, r, rv);
    }
    rv = g->host->call(g->self, r->cfg->service, b.data, b.len,
                       (uint32_t)tmo, &reply);
    gw_buf_fini(&b);
    if (rv != CAIRN_OK) {
        return gw_call_error(g, r, rv);
    }
    res = gw_reply_res(g, gw_status_of_reply(reply.status), reply.status,
                       reply.data, reply.len);
    g->host->reply_fini(&reply);
    return res;
}

/* ---- built-in endpoints ------------------------------------------------- */

static nng_http_res *
gw_builtin(gw *g, nng_http_req *req, const char *path, bool *handled)
{
    char          why[160];
    char          sub[GW_SUB_LEN];
    char         *text;
    size_t        len;
    nng_http_res *res;
    *handled = true;
    if ((strcmp(path, "/openapi.json") == 0 ||
         strcmp(path, "/metrics") == 0) &&
        g->cfg.metrics_auth != GW_AUTH_NONE &&
        (res = gw_authenticate(g, req, g->cfg.metrics_auth, sub,
                               sizeof(sub))) != NULL) {
        return res;
    }
    if (strcmp(path, "/healthz") == 0) {
        return gw_res(200, "application/json", "{\"status\":\"ok\"}\n", 16);
    }
    if (strcmp(path, "/readyz") == 0) {
        if (g->host->ready(g->self, why, sizeof(why))) {
            return gw_res(200, "application/json",
                          "{\"status\":\"ready\"}\n", 19);
        }
        return gw_error_res(503, why);
    }
    if (strcmp(path, "/openapi.json") == 0) {
        return gw_res(200, "application/json", g->openapi, g->openapi_len);
    }
    if (strcmp(path, "/metrics") == 0) {
        if (g->host->metrics_text(g->self, &text, &len) != CAIRN_OK) {
            return NULL;
        }
        res = gw_res(200, "text/plain; version=0.0.4", text, len);
        g->host->free(text);
        return res;
    }
    *handled = false;
    return NULL;
}

/* Routes one request; NULL only when out of memory, hijacked, or
 * *pending (an asynchronous call answers it: rq is not ours any more). */
static nng_http_res *
gw_dispatch(gw *g, gw_req *rq, bool *hijacked, bool *pending)
{
    const char   *method = nng_http_req_get_method(rq->req);
    const char   *uri    = nng_http_req_get_uri(rq->req);
    char         *path   = strdup(uri);
    char          sub[GW_SUB_LEN];
    nng_http_res *res = NULL;
    bool          handled;
    uint16_t      st;
    if (path == NULL) {
        return NULL;
    }
    char *q     = strchr(path, '?');
    const char *query = "";
    if (q != NULL) {
        *q    = '\0';
        query = q + 1;
    }
    if (rq->rdaio != NULL && nng_aio_result(rq->rdaio) != 0) {
        res = gw_error_close(408, "the body did not arrive in time");
        goto done;
    }
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (get && (res = gw_builtin(g, rq->req, path, &handled), handled)) {
        goto done;
    }
    if (g->cfg.ws_path[0] != '\0' && strcmp(path, g->cfg.ws_path) == 0) {
        if (!get) {
            res = gw_error_res(405, "method not allowed");
        } else if (g->cfg.ws_auth != GW_AUTH_NONE &&
                   (res = gw_authenticate(g, rq->req, g->cfg.ws_auth, sub,
                                          sizeof(sub))) != NULL) {
        } else if ((res = gw_limit(g, rq->req,
                                   g->cfg.ws_auth ? sub : NULL)) == NULL) {
            res       = gw_ws_accept(g, rq, query,
                                     g->cfg.ws_auth ? sub : NULL);
            *hijacked = res == NULL;
        }
        goto done;
    }
    const gw_route *r = gw_route_match(g, method, path, &st);
    if (r == NULL) {
        res = gw_error_res(st, st == 405 ? "method not allowed"
                                         : "no such route");
    } else if (r->cfg->auth != GW_AUTH_NONE &&
               (res = gw_authenticate(g, rq->req, r->cfg->auth, sub,
                                      sizeof(sub))) != NULL) {
    } else if (r->cfg->auth != GW_AUTH_NONE && !gw_allowed(r->cfg, sub)) {
        res = gw_error_res(403, "not allowed for this subject");
    } else if (!r->cfg->rate_limit ||
               (res = gw_limit(g, rq->req,
                               r->cfg->auth ? sub : NULL)) == NULL) {
        res = gw_call(g, rq, r, path, query,
                      r->cfg->auth != GW_AUTH_NONE ? sub : NULL, pending);
    }
done:
    free(path);
    return res;
}

/* ---- workers ------------------------------------------------------------ */

static void
gw_serve(gw *g, gw_req *rq)
{
    bool          hijacked = false;
    bool          pending  = false;
    nng_http_res *res      = gw_dispatch(g, rq, &hijacked, &pending);
    if (!pending) {
        gw_finish(g, rq, res, hijacked);
    }
}

static void *
gw_worker(void *arg)
{
    gw *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (g->qhead == NULL && !g->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += GW_TICK_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++, until.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&g->cv, &g->lock, &until) != 0) {
                pthread_mutex_unlock(&g->lock);
                gw_ws_reap(g, false);
                gw_flush(g);
                pthread_mutex_lock(&g->lock);
            }
        }
        gw_req *rq = g->qhead;
        if (rq == NULL) {
            break; /* stopping, and nothing left */
        }
        g->qhead = rq->next;
        if (g->qhead == NULL) {
            g->qtail = NULL;
        }
        g->qlen--;
        pthread_mutex_unlock(&g->lock);
        gw_serve(g, rq);
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static void
gw_enqueue(gw *g, gw_req *rq)
{
    pthread_mutex_lock(&g->lock);
    rq->next = NULL;
    if (g->qtail != NULL) {
        g->qtail->next = rq;
    } else {
        g->qhead = rq;
    }
    g->qtail = rq;
    g->qlen++;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->lock);
}

/* True if the request's path (without the query) is path. */
static bool
gw_path_is(nng_http_req *req, const char *path)
{
    const char *uri = nng_http_req_get_uri(req);
    size_t      n   = strlen(path);
    return n > 0 && strncmp(uri, path, n) == 0 &&
           (uri[n] == '\0' || uri[n] == '?');
}

/* The request is complete: served right here (an NNG thread; nothing
 * on this path blocks) unless it needs a worker: a WebSocket upgrade,
 * and /metrics and /readyz, which ask the runtime (its store too). */
static void
gw_ready(gw *g, gw_req *rq)
{
    rq->async = CAIRN_HOST_HAS(g->host, call_async);
    if (!rq->async || gw_path_is(rq->req, g->cfg.ws_path) ||
        gw_path_is(rq->req, "/metrics") || gw_path_is(rq->req, "/readyz")) {
        gw_enqueue(g, rq);
        return;
    }
    gw_serve(g, rq);
}

static void
gw_body_done(void *arg)
{
    gw_req *rq = arg;
    gw_ready(rq->g, rq);
}

/* ---- the handler (NNG's thread: never blocks) --------------------------- */

/* Answers straight from the handler. */
static void
gw_early(gw *g, nng_aio *aio, nng_http_res *res)
{
    gw_count(g, GW_C_REQUESTS);
    if (res != NULL) {
        gw_count_status(g, nng_http_res_get_status(res));
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, res != NULL ? 0 : NNG_ENOMEM);
}

/* Checks the head; *len gets the Content-Length (0 if none). */
static nng_http_res *
gw_check_head(gw *g, nng_http_req *req, uint64_t *len)
{
    const char *cl = nng_http_req_get_header(req, "Content-Length");
    const char *te = nng_http_req_get_header(req, "Transfer-Encoding");
    char       *end;
    *len = 0;
    if (strlen(nng_http_req_get_uri(req)) > g->cfg.max_uri) {
        return gw_error_close(414, "URI too long");
    }
    if (te != NULL && strcasecmp(te, "identity") != 0) {
        return gw_error_close(411, "a body needs Content-Length "
                                   "(no chunked encoding)");
    }
    if (cl != NULL) {
        if (cl[0] < '0' || cl[0] > '9' ||
            (*len = strtoull(cl, &end, 10), *end != '\0') ||
            strlen(cl) > 19) {
            return gw_error_close(400, "bad Content-Length");
        }
        if (*len > g->cfg.max_body) {
            return gw_error_close(413, "body too large");
        }
    }
    return NULL;
}

static void
gw_handle(nng_aio *aio)
{
    nng_http_req     *req  = nng_aio_get_input(aio, 0);
    nng_http_handler *h    = nng_aio_get_input(aio, 1);
    nng_http_conn    *conn = nng_aio_get_input(aio, 2);
    gw               *g    = nng_http_handler_get_data(h);
    uint64_t          len;
    nng_http_res     *res = gw_check_head(g, req, &len);
    gw_req           *rq;
    if (res != NULL) {
        gw_early(g, aio, res);
        return;
    }
    pthread_mutex_lock(&g->lock);
    /* Waiting for a worker, or (asynchronous calls) for a service: at
     * most queue; and no more in progress than the workers would have
     * had with a full queue. */
    bool full = g->stopping || g->qlen >= (size_t)g->cfg.queue ||
                g->inflight >= (size_t)(g->cfg.queue + g->cfg.workers);
    if (!full) {
        g->inflight++;
    }
    pthread_mutex_unlock(&g->lock);
    if (full) {
        gw_early(g, aio, gw_error_res(503, "busy, try again"));
        return;
    }
    gw_count(g, GW_C_REQUESTS);
    if ((rq = calloc(1, sizeof(*rq))) == NULL) {
        goto nomem;
    }
    rq->g     = g;
    rq->cbaio = aio;
    rq->req   = req;
    rq->conn  = conn;
    if (len == 0) {
        gw_ready(g, rq);
        return;
    }
    rq->blen = (size_t)len;
    if ((rq->body = malloc(rq->blen)) == NULL ||
        nng_aio_alloc(&rq->rdaio, gw_body_done, rq) != 0) {
        goto nomem;
    }
    nng_iov iov = {.iov_buf = rq->body, .iov_len = rq->blen};
    nng_aio_set_iov(rq->rdaio, 1, &iov);
    nng_aio_set_timeout(rq->rdaio, (nng_duration)g->cfg.request_timeout);
    nng_http_conn_read_all(conn, rq->rdaio);
    return;
nomem:
    if (rq != NULL) {
        gw_finish(g, rq, NULL, false);
    } else {
        gw_early(g, aio, NULL);
        pthread_mutex_lock(&g->lock);
        if (--g->inflight == 0) {
            pthread_cond_broadcast(&g->idle_cv);
        }
        pthread_mutex_unlock(&g->lock);
    }
}

/* ---- start and stop ----------------------------------------------------- */

static cairn_err
gw_listen(gw *g)
{
    int          e;
    nng_sockaddr sa;
    if ((e = nng_url_parse(&g->url, g->cfg.listen)) != 0 ||
        strcmp(g->url->u_scheme, "http") != 0) {
        g->host->log(g->self, CAIRN_LOG_ERROR,
                     "listen '%s': not an http:// URL", g->cfg.listen);
        return CAIRN_ECONFIG;
    }
    if ((e = nng_http_server_hold(&g->srv, g->url)) != 0 ||
        (e = nng_http_handler_alloc(&g->handler, "/", gw_handle)) != 0 ||
        (e = nng_http_handler_set_method(g->handler, NULL)) != 0 ||
        (e = nng_http_handler_set_tree(g->handler)) != 0 ||
        (e = nng_http_handler_collect_body(g->handler, false, 0)) != 0 ||
        (e = nng_http_handler_set_data(g->handler, g, NULL)) != 0 ||
        (e = nng_http_server_add_handler(g->srv, g->handler)) != 0) {
        g->host->log(g->self, CAIRN_LOG_ERROR, "http server: %s",
                     nng_strerror(e));
        return CAIRN_EIO;
    }
    if ((e = nng_http_server_start(g->srv)) != 0) {
        g->host->log(g->self, CAIRN_LOG_ERROR, "cannot listen on %s: %s",
                     g->cfg.listen, nng_strerror(e));
        return CAIRN_EIO;
    }
    int port = 0;
    if (nng_http_server_get_addr(g->srv, &sa) == 0) {
        port = ntohs(sa.s_family == NNG_AF_INET6 ? sa.s_in6.sa_port
                                                 : sa.s_in.sa_port);
    }
    snprintf(g->bound, sizeof(g->bound), "http://%s:%d", g->url->u_hostname,
             port);
    g->host->status(g->self, "listening on %s", g->bound);
    g->host->log(g->self, CAIRN_LOG_INFO, "listening on %s (%zu routes)",
                 g->bound, g->nroutes);
    return CAIRN_OK;
}

cairn_err
gw_http_start(gw *g)
{
    g->threads = calloc((size_t)g->cfg.workers, sizeof(pthread_t));
    if (g->threads == NULL) {
        return CAIRN_ENOMEM;
    }
    for (; g->nthreads < (size_t)g->cfg.workers; g->nthreads++) {
        if (pthread_create(&g->threads[g->nthreads], NULL, gw_worker, g)) {
            return CAIRN_ENOMEM;
        }
    }
    gw_flush(g);
    return gw_listen(g);
}

void
gw_http_stop(gw *g)
{
    if (g->srv != NULL) {
        nng_http_server_stop(g->srv); /* closes the listener and conns */
    }
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_broadcast(&g->cv);
    while (g->inflight > 0) {
        pthread_cond_wait(&g->idle_cv, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    for (size_t i = 0; i < g->nthreads; i++) {
        pthread_join(g->threads[i], NULL);
    }
    g->nthreads = 0;
    gw_ws_reap(g, true);
    gw_flush(g);
    /* Deleted from the server (or never added), the handler is ours. */
    if (g->handler != NULL) {
        if (g->srv != NULL) {
            (void)nng_http_server_del_handler(g->srv, g->handler);
        }
        nng_http_handler_free(g->handler);
        g->handler = NULL;
    }
    if (g->srv != NULL) {
        nng_http_server_release(g->srv);
        g->srv = NULL;
    }
    if (g->url != NULL) {
        nng_url_free(g->url);
        g->url = NULL;
    }
}
