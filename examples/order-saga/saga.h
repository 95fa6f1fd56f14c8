/*
 * saga.h - what the plugins of the order-saga example share: the request
 * format of their services, a small CBOR writer, key-value helpers and
 * the skeleton of a participant.
 *
 * Requests are one of two forms, told apart by their first byte:
 *   CBOR   a map with text keys (what the HTTP gateway and the
 *          orchestrator send): {"order":"...","item":"cola","qty":1,
 *          "card":"...","amount":150}; other keys (the gateway's
 *          "params" and "query") are skipped
 *   text   "key=value" words separated by spaces, '&' or ',' (what a
 *          person types: cairn call orders.create "item=cola qty=1
 *          card=4242"); a lone word is the order id
 * Both are untrusted and parsed with limits: at most SAGA_MAX_KEYS
 * entries, SAGA_MAX_DEPTH of nesting in skipped values, no indefinite
 * lengths, no declared length past the end of the input.
 *
 * A participant (stock, payment, dispenser) answers services named
 * "<instance>.<op>"; each op runs in one kv_txn of the participant's own
 * state, keyed by order id, so a request seen twice (a retry, NNG's
 * resend, a saga step re-run after a crash) has one effect.  Business
 * outcomes are replies with status CAIRN_OK: "done ..." or
 * "refused <reason>"; malformed requests get CAIRN_EPROTO.
 */
#ifndef SAGA_H
#define SAGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/cairn.h>

#define SAGA_ID_LEN 36  /* canonical text form of a cairn id */
#define SAGA_ITEM_MAX 32
#define SAGA_CARD_MAX 64
#define SAGA_QTY_MAX 1000
#define SAGA_AMOUNT_MAX 100000000u
#define SAGA_MAX_KEYS 16
#define SAGA_MAX_DEPTH 4
#define SAGA_REC_MAX 256 /* a participant's record of one order */

enum {
    SAGA_HAS_ORDER  = 1u << 0,
    SAGA_HAS_ITEM   = 1u << 1,
    SAGA_HAS_CARD   = 1u << 2,
    SAGA_HAS_QTY    = 1u << 3,
    SAGA_HAS_AMOUNT = 1u << 4,
};

typedef struct saga_req {
    char     order[SAGA_ID_LEN + 1];
    char     item[SAGA_ITEM_MAX + 1];
    char     card[SAGA_CARD_MAX + 1];
    uint64_t qty;
    uint64_t amount;
    unsigned has;  /* SAGA_HAS_* */
    bool     cbor; /* it came as CBOR (reply in CBOR) */
} saga_req;

/*
 * Parses a request.  On error *why is a constant message for the
 * caller.  Values are checked: item and card are [A-Za-z0-9_-], order
 * an id's text form, qty 1..SAGA_QTY_MAX, amount at most SAGA_AMOUNT_MAX.
 */
cairn_err saga_req_parse(const uint8_t *p, size_t len, saga_req *r,
                         const char **why);
/* CAIRN_EPROTO with *why naming the first field of need that is missing. */
cairn_err saga_req_need(const saga_req *r, unsigned need, const char **why);
/* Encodes the fields present in r as a CBOR map; 0 if cap is too small. */
size_t saga_req_encode(const saga_req *r, uint8_t *buf, size_t cap);

/* A CBOR writer into a caller's buffer; ovf once it did not fit. */
typedef struct saga_cbor {
    uint8_t *p;
    size_t   len, cap;
    bool     ovf;
} saga_cbor;
void saga_cbor_map(saga_cbor *w, size_t n);
void saga_cbor_text(saga_cbor *w, const char *s);
void saga_cbor_uint(saga_cbor *w, uint64_t v);

/* Key-value helpers (inside a transaction).  Numbers are stored as
 * decimal text; saga_kv_str gives CAIRN_ENOENT when absent and
 * CAIRN_ETOOBIG when the value does not fit cap with its NUL. */
uint64_t  saga_kv_u64(const cairn_host *h, cairn_txn *t, const char *key,
                      uint64_t dflt);
cairn_err saga_kv_put_u64(const cairn_host *h, cairn_txn *t, const char *key,
                          uint64_t v);
/* Adds n to the number at key (0 when absent). */
cairn_err saga_kv_add(const cairn_host *h, cairn_txn *t, const char *key,
                      uint64_t n);
cairn_err saga_kv_str(const cairn_host *h, cairn_txn *t, const char *key,
                      char *buf, size_t cap);
cairn_err saga_kv_put_str(const cairn_host *h, cairn_txn *t, const char *key,
                          const char *s);

/* ---- participants ------------------------------------------------------- */

typedef struct saga_part saga_part;

/* One operation: runs inside the participant's kv_txn and writes its
 * reply text into out (cap bytes).  Returning anything but CAIRN_OK rolls
 * the transaction back and makes the reply's status. */
typedef cairn_err (*saga_op_fn)(saga_part *p, cairn_txn *t,
                                const saga_req *r, char *out, size_t cap);

typedef struct saga_op {
    const char *name; /* service "<instance>.<name>" */
    unsigned    need; /* SAGA_HAS_* the request must have */
    saga_op_fn  fn;
} saga_op;

struct saga_part {
    const cairn_host *host;
    cairn_plugin     *self;
    const void       *cfg; /* the participant's filled config */
    const saga_op    *ops; /* terminated by a NULL name */
};

/* init and start of a participant: checks the host has kv_txn, then
 * serves every op. */
cairn_err saga_part_init(const cairn_host *host, cairn_plugin *self,
                         const void *cfg, const saga_op *ops, void **statep);
cairn_err saga_part_start(void *state);
void      saga_part_stop(void *state);
void      saga_part_fini(void *state);

/* The op "get" of every participant: the order's record, or "none". */
cairn_err saga_part_get(saga_part *p, cairn_txn *t, const saga_req *r,
                        char *out, size_t cap);

/* The key of an order's record: "o/<order>". */
void saga_order_key(const char *order, char key[SAGA_ID_LEN + 3]);

#endif /* SAGA_H */
