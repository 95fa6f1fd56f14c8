/*
 * gw_ws.c - the WebSocket endpoint (RFC 6455): GET ws_path?filter=F
 * streams every bus message whose topic matches F to the client, one
 * JSON text frame per message:
 *
 *   {"topic":"orders/1","id":"0190...","ts":1700000000000,
 *    "encoding":"cbor|json|text|base64","payload":...}
 *
 * The payload is the message's CBOR as JSON when it is CBOR, the JSON
 * itself when it is JSON, else a string: the text when it is UTF-8,
 * base64 otherwise (encoding says which).  A ctype of application/cbor,
 * application/json or text/... decides without guessing.
 *
 * The upgrade is handled here rather than by NNG's websocket transport,
 * so the gateway's auth, rate limits and JSON errors apply to it: the
 * worker checks the request, subscribes, takes the connection over
 * (nng_http_hijack) and writes the 101 itself.  Then:
 *
 *   bus delivery thread   formats a frame and queues it (at most
 *                         ws_queue; more are dropped and counted)
 *   write aio callback    writes queued frames one at a time
 *   read aio callback     reads client frames: answers ping with pong,
 *                         close (or any error, or a frame over 4 KiB)
 *                         marks the client dead
 *
 * A dead client is closed and freed by a worker (gw_ws_reap): unsubscribe
 * first (no more deliveries), then stop both aios (no more callbacks),
 * then close the connection.  ws->lock guards the frame queue and the
 * writing flag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_RBUF 8192
#define WS_MAX_IN 4096

typedef struct ws_frame {
    struct ws_frame *next;
    size_t           len;
    uint8_t          data[];
} ws_frame;

struct gw_ws {
    gw_ws          *next;
    gw             *g;
    nng_http_conn  *conn;
    nng_http_req   *req; /* ours after the hijack */
    nng_http_res   *res; /* the 101, until written */
    nng_aio        *wr, *rd;
    cairn_sub      *sub;
    pthread_mutex_t lock;
    ws_frame       *head, *tail, *cur;
    size_t          qn;
    bool            writing;
    atomic_bool     dead;
    uint8_t         rbuf[WS_RBUF];
    size_t          rlen;
};

static ws_frame *
ws_frame_new(uint8_t opcode, const uint8_t *p, size_t n)
{
    size_t    hl = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
    ws_frame *f  = malloc(sizeof(*f) + hl + n);
    if (f == NULL) {
        return NULL;
    }
    f->next    = NULL;
    f->len     = hl + n;
    f->data[0] = (uint8_t)(0x80 | opcode);
    if (hl == 2) {
        f->data[1] = (uint8_t)n;
    } else if (hl == 4) {
        f->data[1] = 126;
        f->data[2] = (uint8_t)(n >> 8), f->data[3] = (uint8_t)n;
    } else {
        f->data[1] = 127;
        for (int i = 0; i < 8; i++) {
            f->data[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        }
    }
    if (n > 0) {
        memcpy(f->data + hl, p, n);
    }
    return f;
}

/* Starts the next write if none runs; ws->lock held. */
static void
ws_kick(gw_ws *ws)
{
    if (ws->writing || ws->head == NULL || atomic_load(&ws->dead)) {
        return;
    }
    ws->cur  = ws->head;
    ws->head = ws->cur->next;
    if (ws->head == NULL) {
        ws->tail = NULL;
    }
    ws->qn--;
    ws->writing = true;
    nng_iov iov = {.iov_buf = ws->cur->data, .iov_len = ws->cur->len};
    nng_aio_set_iov(ws->wr, 1, &iov);
    nng_http_conn_write_all(ws->conn, ws->wr);
}

static void
ws_push(gw_ws *ws, ws_frame *f, bool control)
{
    pthread_mutex_lock(&ws->lock);
    if (atomic_load(&ws->dead) ||
        (!control && ws->qn >= (size_t)ws->g->cfg.ws_queue)) {
        pthread_mutex_unlock(&ws->lock);
        free(f);
        gw_count(ws->g, GW_C_WS_DROPPED);
        return;
    }
    if (ws->tail != NULL) {
        ws->tail->next = f;
    } else {
        ws->head = f;
    }
    ws->tail = f;
    ws->qn++;
    ws_kick(ws);
    pthread_mutex_unlock(&ws->lock);
}

static void
ws_write_done(void *arg)
{
    gw_ws *ws = arg;
    pthread_mutex_lock(&ws->lock);
    ws->writing = false;
    free(ws->cur);
    ws->cur = NULL;
    if (ws->res != NULL) {
        nng_http_res_free(ws->res);
        ws->res = NULL;
    } else if (nng_aio_result(ws->wr) == 0) {
        gw_count(ws->g, GW_C_WS_SENT);
    }
    if (nng_aio_result(ws->wr) != 0) {
        atomic_store(&ws->dead, true);
    }
    ws_kick(ws);
    pthread_mutex_unlock(&ws->lock);
}

static void ws_read_more(gw_ws *ws);

/* Handles the complete client frames in rbuf; false: close the client. */
static bool
ws_parse(gw_ws *ws)
{
    for (;;) {
        uint8_t *b = ws->rbuf;
        if (ws->rlen < 2) {
            return true;
        }
        uint8_t op = b[0] & 0x0f;
        size_t  n = b[1] & 0x7f, hl = 2;
        if (!(b[1] & 0x80)) {
            return false; /* clients must mask */
        }
        if (n == 126) {
            hl = 4;
            n  = ws->rlen >= 4 ? (size_t)b[2] << 8 | b[3] : 0;
        } else if (n == 127) {
            return false; /* never this large from a client here */
        }
        if (n > WS_MAX_IN) {
            return false;
        }
        if (ws->rlen < hl + 4 + n) {
            return true;
        }
        uint8_t *mask = b + hl, *p = b + hl + 4;
        for (size_t i = 0; i < n; i++) {
            p[i] ^= mask[i % 4];
        }
        if (op == 0x8) {
            return false;
        }
        if (op == 0x9) {
            ws_frame *f = ws_frame_new(0xa, p, n);
            if (f != NULL) {
                ws_push(ws, f, true);
            }
        }
        size_t used = hl + 4 + n;
        memmove(b, b + used, ws->rlen - used);
        ws->rlen -= used;
    }
}

static void
ws_read_done(void *arg)
{
    gw_ws *ws = arg;
    if (nng_aio_result(ws->rd) != 0) {
        atomic_store(&ws->dead, true);
        return;
    }
    ws->rlen += nng_aio_count(ws->rd);
    if (!ws_parse(ws)) {
        atomic_store(&ws->dead, true);
        return;
    }
    ws_read_more(ws);
}

static void
ws_read_more(gw_ws *ws)
{
    nng_iov iov = {.iov_buf = ws->rbuf + ws->rlen,
                   .iov_len = sizeof(ws->rbuf) - ws->rlen};
    nng_aio_set_iov(ws->rd, 1, &iov);
    nng_http_conn_read(ws->conn, ws->rd);
}

/* ---- messages to frames ------------------------------------------------- */

static bool
ws_ctype_is(const cairn_envelope *env, const char *prefix)
{
    size_t n = strlen(prefix);
    return (env->flags & CAIRN_ENV_HAS_CTYPE) && env->ctype.len >= n &&
           strncasecmp(env->ctype.ptr, prefix, n) == 0;
}

static void
ws_payload(gw *g, const cairn_envelope *env, gw_buf *b)
{
    const uint8_t *p = env->payload.ptr;
    size_t         n = env->payload.len, at;
    bool cbor = ws_ctype_is(env, "application/cbor"),
         json = ws_ctype_is(env, "application/json"),
         text = ws_ctype_is(env, "text/"), any = !cbor && !json && !text;
    gw_buf_puts(b, "\"encoding\":");
    at = b->len;
    if ((cbor || any) && n > 0) {
        gw_buf_puts(b, "\"cbor\",\"payload\":");
        if (gw_cbor_to_json(p, n, &g->lim, b, NULL, 0) == CAIRN_OK) {
            return;
        }
        b->len = at, b->failed = b->toobig = false;
    }
    if ((json || any) && gw_json_valid((const char *)p, n, &g->lim)) {
        gw_buf_puts(b, "\"json\",\"payload\":");
        gw_buf_put(b, p, n);
        return;
    }
    gw_buf *tmp  = b;
    bool    utf8 = n == 0 || (gw_utf8_valid(p, n) && memchr(p, 0, n) == NULL);
    if (utf8) {
        gw_buf_puts(tmp, "\"text\",\"payload\":");
        gw_json_string(tmp, (const char *)p, n);
    } else {
        gw_buf_puts(tmp, "\"base64\",\"payload\":\"");
        gw_base64(tmp, p, n);
        gw_buf_putc(tmp, '"');
    }
}

static void
ws_deliver(void *arg, const cairn_envelope *env)
{
    gw_ws *ws = arg;
    gw_buf b  = {.max = ws->g->cfg.max_reply};
    char   id[37];
    if (atomic_load(&ws->dead)) {
        return;
    }
    gw_buf_puts(&b, "{\"topic\":");
    gw_json_string(&b, env->topic.ptr, env->topic.len);
    gw_buf_printf(&b, ",\"id\":\"%s\",\"ts\":%llu,",
                  cairn_id_format(env->id, id),
                  (unsigned long long)env->ts);
    ws_payload(ws->g, env, &b);
    gw_buf_putc(&b, '}');
    ws_frame *f = b.failed ? NULL : ws_frame_new(0x1, b.data, b.len);
    gw_buf_fini(&b);
    if (f == NULL) {
        gw_count(ws->g, GW_C_WS_DROPPED);
        return;
    }
    ws_push(ws, f, false);
}

/* ---- accept and reap ---------------------------------------------------- */

static void
ws_free(gw_ws *ws)
{
    if (ws->sub != NULL) {
        ws->g->host->unsubscribe(ws->sub);
    }
    atomic_store(&ws->dead, true);
    if (ws->wr != NULL) {
        nng_aio_stop(ws->wr);
    }
    if (ws->rd != NULL) {
        nng_aio_stop(ws->rd);
    }
    if (ws->conn != NULL) {
        nng_http_conn_close(ws->conn);
    }
    while (ws->head != NULL) {
        ws_frame *f = ws->head;
        ws->head    = f->next;
        free(f);
    }
    free(ws->cur);
    if (ws->res != NULL) {
        nng_http_res_free(ws->res);
    }
    if (ws->req != NULL) {
        nng_http_req_free(ws->req);
    }
    nng_aio_free(ws->wr);
    nng_aio_free(ws->rd);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

static bool
ws_header_has(nng_http_req *req, const char *name, const char *word)
{
    const char *v = nng_http_req_get_header(req, name);
    return v != NULL && strcasestr(v, word) != NULL;
}

/* The 101 response for key. */
static nng_http_res *
ws_switch_res(const char *key)
{
    char          cat[128];
    uint8_t       dig[20];
    gw_buf        acc = {0};
    nng_http_res *res = NULL;
    snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    gw_sha1(cat, strlen(cat), dig);
    gw_base64(&acc, dig, sizeof(dig));
    gw_buf_putc(&acc, '\0');
    if (!acc.failed && nng_http_res_alloc(&res) == 0 &&
        (nng_http_res_set_status(res, 101) != 0 ||
         nng_http_res_set_reason(res, "Switching Protocols") != 0 ||
         nng_http_res_set_header(res, "Upgrade", "websocket") != 0 ||
         nng_http_res_set_header(res, "Connection", "Upgrade") != 0 ||
         nng_http_res_set_header(res, "Sec-WebSocket-Accept",
                                 (const char *)acc.data) != 0)) {
        nng_http_res_free(res);
        res = NULL;
    }
    gw_buf_fini(&acc);
    return res;
}

/* The filter from the query string; false if missing or malformed. */
static bool
ws_filter(const char *query, char *out, size_t cap)
{
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        if (strncmp(p, "filter=", 7) == 0) {
            return gw_pct_decode(p + 7, (size_t)(end - p - 7), true, out,
                                 cap) &&
                   cairn_filter_valid(out) == CAIRN_OK;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

static nng_http_res *
ws_check(gw *g, nng_http_req *req, const char *query, char *filter,
         size_t cap)
{
    const char *key = nng_http_req_get_header(req, "Sec-WebSocket-Key");
    const char *ver = nng_http_req_get_header(req, "Sec-WebSocket-Version");
    if (!ws_header_has(req, "Upgrade", "websocket") ||
        !ws_header_has(req, "Connection", "upgrade") || key == NULL ||
        strlen(key) != 24) {
        return gw_error_res(400, "not a WebSocket upgrade request");
    }
    if (ver == NULL || strcmp(ver, "13") != 0) {
        nng_http_res *res = gw_error_res(426, "WebSocket version 13 only");
        if (res != NULL) {
            (void)nng_http_res_set_header(res, "Sec-WebSocket-Version", "13");
        }
        return res;
    }
    if (!ws_filter(query, filter, cap)) {
        return gw_error_res(400, "filter=F (a valid topic filter) is "
                                 "required");
    }
    pthread_mutex_lock(&g->lock);
    bool full = g->nws >= (size_t)g->cfg.ws_max_clients;
    pthread_mutex_unlock(&g->lock);
    return full ? gw_error_res(503, "too many WebSocket clients") : NULL;
}

nng_http_res *
gw_ws_accept(gw *g, gw_req *rq, const char *query, const char *subject)
{
    char          filter[512];
    nng_http_res *res = ws_check(g, rq->req, query, filter, sizeof(filter));
    gw_ws        *ws;
    if (res != NULL) {
        return res;
    }
    if ((ws = calloc(1, sizeof(*ws))) == NULL) {
        return gw_error_res(503, "out of memory");
    }
    ws->g = g;
    pthread_mutex_init(&ws->lock, NULL);
    ws->res = ws_switch_res(
        nng_http_req_get_header(rq->req, "Sec-WebSocket-Key"));
    if (ws->res == NULL || nng_aio_alloc(&ws->wr, ws_write_done, ws) != 0 ||
        nng_aio_alloc(&ws->rd, ws_read_done, ws) != 0) {
        ws_free(ws);
        return gw_error_res(503, "out of memory");
    }
    cairn_err rv = g->host->subscribe(g->self, filter, ws_deliver, ws,
                                      &ws->sub);
    if (rv != CAIRN_OK) {
        ws_free(ws);
        return gw_error_res(503, cairn_strerror(rv));
    }
    /* From here the connection and the request are ours. */
    nng_http_hijack(rq->conn);
    ws->conn = rq->conn;
    ws->req  = rq->req;
    g->host->log(g->self, CAIRN_LOG_DEBUG, "websocket client for '%s'%s%s",
                 filter, subject ? " as " : "", subject ? subject : "");
    pthread_mutex_lock(&ws->lock);
    ws->writing = true;
    nng_http_conn_write_res(ws->conn, ws->res, ws->wr);
    pthread_mutex_unlock(&ws->lock);
    ws_read_more(ws);
    pthread_mutex_lock(&g->lock);
    ws->next = g->ws;
    g->ws    = ws;
    g->nws++;
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

void
gw_ws_reap(gw *g, bool all)
{
    gw_ws *dead = NULL;
    pthread_mutex_lock(&g->lock);
    for (gw_ws **pp = &g->ws; *pp != NULL;) {
        gw_ws *ws = *pp;
        if (all || atomic_load(&ws->dead)) {
            *pp      = ws->next;
            ws->next = dead;
            dead     = ws;
            g->nws--;
        } else {
            pp = &ws->next;
        }
    }
    pthread_mutex_unlock(&g->lock);
    while (dead != NULL) {
        gw_ws *ws = dead;
        dead      = ws->next;
        ws_free(ws);
    }
}
