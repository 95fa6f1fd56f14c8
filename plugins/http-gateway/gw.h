/*
 * gw.h - the http-gateway plugin: REST routes onto bus services, a
 * WebSocket stream of bus topics, health, metrics and an OpenAPI
 * document, on NNG's HTTP server.
 *
 *   gw_main.c    descriptor, config table, lifecycle, checks
 *   gw_http.c    the server's one handler, body reading, the worker pool,
 *                responses, built-in endpoints
 *   gw_route.c   route templates and matching, the service request map,
 *                error -> status map, the OpenAPI document
 *   gw_auth.c    SHA-256/HMAC/SHA-1, tokens, HS256 JWTs, token buckets
 *   gw_ws.c      the WebSocket endpoint (handshake, frames, forwarding)
 *   gw_json.c    JSON <-> CBOR with limits
 *
 * Threads.  NNG's own threads run the handler callback and I/O
 * completions; they never block.  A REST request is read (body
 * included), routed, checked and converted right there, and its service
 * is called with host->call_async: the reply's callback, on the
 * runtime's I/O threads, converts the reply and finishes the server's
 * aio.  No thread waits for a service.  WebSocket upgrades (and every
 * request on a cairnd without call_async) are queued for one of
 * cfg.workers worker threads instead, which may block.  Bus delivery
 * threads feed WebSocket clients.  g->lock guards the queue, the
 * in-flight count and the WebSocket list; the workers also reap closed
 * WebSocket clients (unsubscribe may block, so it never runs on an NNG
 * or bus thread).
 *
 * Lifecycle of a request: handler -> (body read) -> dispatch ->
 * call_async -> reply callback -> nng_aio_finish; or handler -> (body
 * read) -> queue -> worker -> nng_aio_finish.  Every request holds one
 * count of g->inflight from the handler until it is finished; stop waits
 * for zero, so no callback of a call is owed after stop.
 */
#ifndef GW_H
#define GW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include <cairn/cairn.h>

#include "gw_json.h"

#define GW_MAX_SEGS 16    /* path segments of a route */
#define GW_MAX_PARAMS 16  /* query parameters passed on */
#define GW_BUCKETS 1024   /* rate-limit table slots */
#define GW_SUB_LEN 64     /* subject (token name or JWT sub) */
#define GW_TICK_MS 200    /* workers wake at least this often to reap */

enum { GW_AUTH_NONE = 0, GW_AUTH_TOKEN, GW_AUTH_JWT, GW_AUTH_ANY };

typedef struct gw_token_cfg {
    const char *name;
    const char *sha256;
} gw_token_cfg;

typedef struct gw_route_cfg {
    const char    *method;
    const char    *path;
    const char    *service;
    const char    *summary;
    uint64_t       timeout;
    int            auth;
    cairn_cfg_list allow;
    bool           rate_limit;
} gw_route_cfg;

typedef struct gw_cfg {
    const char    *listen;
    uint64_t       max_body;
    uint64_t       max_uri;
    uint64_t       max_reply;
    int64_t        max_depth;
    int64_t        max_items;
    uint64_t       request_timeout;
    int64_t        workers;
    int64_t        queue;
    double         rate;
    int64_t        burst;
    const char    *client_header;
    cairn_cfg_list tokens;
    const char    *jwt_secret;
    const char    *jwt_secret_file;
    uint64_t       jwt_leeway;
    int            metrics_auth;
    const char    *ws_path;
    int            ws_auth;
    int64_t        ws_max_clients;
    int64_t        ws_queue;
    const char    *title;
    cairn_cfg_list routes;
} gw_cfg;

extern const cairn_cfg_field gw_fields[];

typedef struct gw_seg {
    const char *text;
    size_t      len;
    bool        param; /* {name}: text is the name */
} gw_seg;

typedef struct gw_route {
    const gw_route_cfg *cfg;
    gw_seg              segs[GW_MAX_SEGS];
    size_t              nsegs;
} gw_route;

typedef struct gw_token {
    const char *name;
    uint8_t     hash[32];
} gw_token;

typedef struct gw_bucket {
    bool     used;
    uint64_t hash;
    char     key[GW_SUB_LEN];
    double   tokens;
    uint64_t last_ms;
} gw_bucket;

typedef struct gw_sha256_ctx {
    uint32_t h[8];
    uint64_t n;
    uint8_t  buf[64];
    size_t   used;
} gw_sha256_ctx;

typedef struct gw     gw;
typedef struct gw_ws  gw_ws;

/* One request between the handler and its answer. */
typedef struct gw_req {
    struct gw_req *next;
    gw            *g;
    nng_aio       *cbaio; /* the server's; finished exactly once */
    nng_http_req  *req;
    nng_http_conn *conn;
    nng_aio       *rdaio; /* body read */
    uint8_t       *body;
    size_t         blen;
    bool           async; /* services are called with call_async */
    const gw_route *route; /* of the call in progress */
} gw_req;

/* Counters, flushed to the host by the workers. */
enum {
    GW_C_REQUESTS,
    GW_C_2XX,
    GW_C_4XX,
    GW_C_5XX,
    GW_C_AUTH_FAILED,
    GW_C_RATE_LIMITED,
    GW_C_WS_SENT,
    GW_C_WS_DROPPED,
    GW_C_COUNT
};

struct gw {
    const cairn_host *host;
    cairn_plugin     *self;
    gw_cfg            cfg;
    const char       *name;
    gw_limits         lim;

    gw_route *routes;
    size_t    nroutes;
    gw_token *tokens;
    size_t    ntokens;
    uint8_t  *jwt_key;
    size_t    jwt_klen;
    char     *openapi; /* the document served at /openapi.json */
    size_t    openapi_len;

    nng_url          *url;
    nng_http_server  *srv;
    nng_http_handler *handler;
    char              bound[128]; /* "http://127.0.0.1:PORT" */

    pthread_mutex_t lock;
    pthread_cond_t  cv;      /* queue not empty, or stopping */
    pthread_cond_t  idle_cv; /* inflight dropped */
    gw_req         *qhead, *qtail;
    size_t          qlen;
    size_t          inflight;
    bool            stopping;
    pthread_t      *threads;
    size_t          nthreads;
    gw_ws          *ws;  /* open WebSocket clients */
    size_t          nws;

    pthread_mutex_t rate_lock;
    gw_bucket      *buckets; /* GW_BUCKETS */

    _Atomic uint64_t count[GW_C_COUNT];
    uint64_t         flushed[GW_C_COUNT]; /* under lock */
};

/* ---- gw_http.c --------------------------------------------------------- */

cairn_err gw_http_start(gw *g);
void      gw_http_stop(gw *g);
void      gw_count(gw *g, int which);
/* A JSON error response {"error": text}; NULL when out of memory. */
nng_http_res *gw_error_res(uint16_t status, const char *text);

/* ---- gw_route.c -------------------------------------------------------- */

cairn_err gw_routes_init(gw *g);
/* The route for method and path; NULL with *status 404 or 405. */
const gw_route *gw_route_match(const gw *g, const char *method,
                               const char *path, uint16_t *status);
/* The request map for the service (see the README's "HTTP gateway"). */
cairn_err gw_request_cbor(const gw *g, const gw_route *r, const char *method,
                          const char *path, const char *query,
                          const uint8_t *body, size_t blen,
                          const char *subject, gw_buf *out, char *why,
                          size_t whylen);
/* HTTP status for a failed call (call error) or a handler's status. */
uint16_t  gw_status_of_call(cairn_err rv);
uint16_t  gw_status_of_reply(cairn_err status);
cairn_err gw_openapi_build(gw *g);
/* Percent-decodes n bytes of s into out (capacity cap, NUL added);
 * plus_space: '+' is a space (query strings).  False if too long. */
bool      gw_pct_decode(const char *s, size_t n, bool plus_space, char *out,
                        size_t cap);

/* ---- gw_auth.c --------------------------------------------------------- */

void gw_sha256_init(gw_sha256_ctx *c);
void gw_sha256_update(gw_sha256_ctx *c, const void *data, size_t len);
void gw_sha256_final(gw_sha256_ctx *c, uint8_t out[32]);
void gw_sha256(const void *data, size_t len, uint8_t out[32]);
void gw_hmac_sha256(const void *key, size_t klen, const void *msg,
                    size_t mlen, uint8_t out[32]);
void gw_sha1(const void *data, size_t len, uint8_t out[20]);
bool gw_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);
bool gw_hex_decode(const char *hex, uint8_t *out, size_t n);
/* The configured name of a static token, or NULL. */
const char *gw_token_check(const gw *g, const char *token);
/* CAIRN_OK and the subject, or CAIRN_EPERM and *why. */
cairn_err gw_jwt_verify(const char *tok, const uint8_t *key, size_t klen,
                        uint64_t now_s, uint64_t leeway_s, char *sub,
                        size_t sublen, const char **why);
/* Takes one token from client's bucket; false and *retry_s if empty. */
bool gw_rate_take(gw *g, const char *client, uint64_t now_ms,
                  uint32_t *retry_s);

/* ---- gw_ws.c ----------------------------------------------------------- */

/* Takes over the connection of a WebSocket upgrade request (a worker
 * runs it); on refusal returns the error response to send instead. */
nng_http_res *gw_ws_accept(gw *g, gw_req *rq, const char *query,
                           const char *subject);
/* Closes and frees clients that went away (all, when all is set). */
void gw_ws_reap(gw *g, bool all);

#endif /* GW_H */
