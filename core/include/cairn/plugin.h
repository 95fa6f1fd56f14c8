/*
 * cairn/plugin.h - plugin ABI, version 1.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * CAIRN_PLUGIN_ENTRY_SYM ("cairn_plugin_v1"), a function that returns the
 * plugin's descriptor.  Use CAIRN_PLUGIN_DEFINE() to write it.
 *
 * Versioning: the host function table (cairn_host) and the descriptor
 * (cairn_plugin_desc) both start with { abi_version, size }.  Both only
 * ever grow at the end.  The host refuses a descriptor whose ABI major
 * differs from its own, or whose size is below the v1.0 size; it reads
 * fields past desc->size as absent.  A plugin must check host->size before
 * calling a function added in a later minor (CAIRN_HOST_HAS()).
 *
 * Lifecycle, all called by the host on its own thread, never concurrently:
 *   init(host, self, config, &state)   config validated and filled already
 *   start(state)                       subscriptions, services, threads
 *   [run(state)]                       optional, on a thread of its own;
 *                                      must return once host->sleep()
 *                                      returns 0 or stop() was called
 *   stop(state)                        no new work; after it returns, no
 *                                      callback of the plugin runs again
 *   fini(state)                        free everything
 * If init fails, nothing else is called.  If start fails, stop and fini
 * are still called.
 *
 * Threads: every subscription, queue consumer and service gets a delivery
 * thread of its own; callbacks for one of them never run concurrently with
 * each other, and run in arrival order.
 *
 * Ownership: everything passed into a callback is borrowed for the
 * duration of the call.  Strings in the filled config struct are owned by
 * the host and stay valid until fini returns.
 */
#ifndef CAIRN_PLUGIN_H
#define CAIRN_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/envelope.h>
#include <cairn/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_ABI_MAJOR 1
#define CAIRN_ABI_MINOR 2
#define CAIRN_ABI_VERSION ((uint32_t)((CAIRN_ABI_MAJOR << 16) | CAIRN_ABI_MINOR))
#define CAIRN_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define CAIRN_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

#define CAIRN_PLUGIN_ENTRY_SYM "cairn_plugin_v1"

/* ---- typed configuration table ---------------------------------------- */

typedef enum cairn_cfg_type {
    CAIRN_CFG_END = 0, /* terminates a table */
    CAIRN_CFG_STRING,  /* const char *            (host-owned)        */
    CAIRN_CFG_INT,     /* int64_t                 min..max checked    */
    CAIRN_CFG_DOUBLE,  /* double                  min..max checked    */
    CAIRN_CFG_BOOL,    /* bool                                        */
    CAIRN_CFG_DURATION,/* uint64_t milliseconds:  "250ms" "5s" "2m" "1h" "1d" or a bare ms number */
    CAIRN_CFG_SIZE,    /* uint64_t bytes:         "512", "64KiB", "10MiB", "1GiB" */
    CAIRN_CFG_ENUM,    /* int: index into choices (a '|'-separated list) */
    CAIRN_CFG_STRLIST, /* cairn_cfg_list of const char *              */
    CAIRN_CFG_LIST,    /* cairn_cfg_list of structs described by sub  */
    CAIRN_CFG_MAP,     /* a struct described by sub, embedded at offset */
} cairn_cfg_type;

/* Filled by the host for CAIRN_CFG_STRLIST and CAIRN_CFG_LIST. */
typedef struct cairn_cfg_list {
    void  *items; /* array of count elements (const char * or the struct) */
    size_t count;
} cairn_cfg_list;

typedef struct cairn_cfg_field {
    const char    *name;        /* key in the YAML map */
    cairn_cfg_type type;
    const char    *def;         /* default in YAML scalar syntax; NULL = required
                                   (for LIST/STRLIST/MAP: NULL = empty/defaults) */
    size_t         offset;      /* offsetof() in the config struct */
    const char    *description; /* one line; produces the documentation */
    double         min, max;    /* INT, DOUBLE, DURATION, SIZE; both 0 = no range */
    const char    *choices;     /* ENUM: "reject|drop_oldest" */
    const struct cairn_cfg_field *sub; /* LIST, MAP: element fields */
    size_t         elem_size;   /* LIST: sizeof one element */
} cairn_cfg_field;

/*
 * Table rows.  The YAML key is the member's name.  D is the default in
 * YAML scalar syntax (NULL: required), TEXT the one-line description.
 */
#define CAIRN_FIELD_(T, S, M, D, TEXT, ...)                                \
    {.name = #M, .type = (T), .def = (D), .offset = offsetof(S, M),        \
     .description = (TEXT), __VA_ARGS__}
#define CAIRN_FIELD_STRING(S, M, D, TEXT)                                  \
    CAIRN_FIELD_(CAIRN_CFG_STRING, S, M, D, TEXT, .min = 0)
#define CAIRN_FIELD_BOOL(S, M, D, TEXT)                                    \
    CAIRN_FIELD_(CAIRN_CFG_BOOL, S, M, D, TEXT, .min = 0)
#define CAIRN_FIELD_INT(S, M, D, LO, HI, TEXT)                             \
    CAIRN_FIELD_(CAIRN_CFG_INT, S, M, D, TEXT, .min = (LO), .max = (HI))
#define CAIRN_FIELD_DOUBLE(S, M, D, LO, HI, TEXT)                          \
    CAIRN_FIELD_(CAIRN_CFG_DOUBLE, S, M, D, TEXT, .min = (LO), .max = (HI))
#define CAIRN_FIELD_DURATION(S, M, D, LO, HI, TEXT)                        \
    CAIRN_FIELD_(CAIRN_CFG_DURATION, S, M, D, TEXT, .min = (LO), .max = (HI))
#define CAIRN_FIELD_SIZE(S, M, D, LO, HI, TEXT)                            \
    CAIRN_FIELD_(CAIRN_CFG_SIZE, S, M, D, TEXT, .min = (LO), .max = (HI))
#define CAIRN_FIELD_ENUM(S, M, D, CHOICES, TEXT)                           \
    CAIRN_FIELD_(CAIRN_CFG_ENUM, S, M, D, TEXT, .choices = (CHOICES))
#define CAIRN_FIELD_STRLIST(S, M, TEXT)                                    \
    CAIRN_FIELD_(CAIRN_CFG_STRLIST, S, M, NULL, TEXT, .min = 0)
#define CAIRN_FIELD_LIST(S, M, SUB, ELEM, TEXT)                            \
    CAIRN_FIELD_(CAIRN_CFG_LIST, S, M, NULL, TEXT, .sub = (SUB),           \
                 .elem_size = sizeof(ELEM))
#define CAIRN_FIELD_MAP(S, M, SUB, TEXT)                                   \
    CAIRN_FIELD_(CAIRN_CFG_MAP, S, M, NULL, TEXT, .sub = (SUB))
#define CAIRN_FIELD_END                                                    \
    {.name = NULL, .type = CAIRN_CFG_END}

/* ---- runtime services offered to plugins -------------------------------- */

typedef struct cairn_plugin cairn_plugin; /* the host's handle for one instance */
typedef struct cairn_sub    cairn_sub;    /* a subscription or queue consumer */
typedef struct cairn_svc    cairn_svc;    /* a registered service */
typedef struct cairn_out    cairn_out;    /* a reply being built */
typedef struct cairn_txn    cairn_txn;    /* an inbox transaction */

typedef enum cairn_log_level {
    CAIRN_LOG_ERROR = 0,
    CAIRN_LOG_WARN  = 1,
    CAIRN_LOG_INFO  = 2,
    CAIRN_LOG_DEBUG = 3,
} cairn_log_level;

/* Called once per delivered message. */
typedef void (*cairn_msg_fn)(void *arg, const cairn_envelope *env);

/*
 * A service handler.  It appends its reply with host->out_append() and
 * returns the status the caller sees in cairn_reply.status.
 */
typedef cairn_err (*cairn_serve_fn)(void *arg, const cairn_envelope *req,
                                    cairn_out *out);

/* The caller's view of a reply.  Release with host->reply_fini(). */
typedef struct cairn_reply {
    cairn_err      status;  /* what the service handler returned */
    const uint8_t *data;    /* reply payload; valid until reply_fini */
    size_t         len;
    void          *impl_;   /* private */
} cairn_reply;

/*
 * One outbox record handed to a destination (a bridge).  env points into
 * data; both are owned by the record until host->record_fini().
 */
typedef struct cairn_record {
    uint64_t       seq;     /* the handle for ack/nack */
    uint32_t       attempt; /* earlier failed attempts of this record */
    int            prio;    /* 0 normal, 1 high */
    cairn_envelope env;
    uint8_t       *data;    /* the encoded envelope */
    size_t         len;
} cairn_record;

/*
 * An idempotent consumer's handler (host->inbox_consume).  It runs inside
 * a transaction: its kv_put/kv_del changes commit together with the
 * message's id, so a message delivered twice has one effect.  Returns
 * CAIRN_OK (done), CAIRN_EAGAIN (not yet: the message comes back later,
 * with backoff) or CAIRN_EPERM (failed for good: to the dead letters).
 * On anything but CAIRN_OK none of its changes are kept.
 */
typedef cairn_err (*cairn_inbox_fn)(void *arg, const cairn_envelope *env,
                                    cairn_txn *txn);

/* Options of one publish; NULL means all defaults. */
typedef struct cairn_pub_opts {
    const char    *key;     /* ordering key; NULL = topic */
    const char    *ctype;   /* content type; NULL = none */
    const uint8_t *corr;    /* CAIRN_ID_LEN bytes or NULL */
} cairn_pub_opts;

typedef struct cairn_host {
    uint32_t abi_version; /* CAIRN_ABI_VERSION of the host */
    uint32_t size;        /* sizeof(cairn_host) of the host */

    /* Logging, tagged with the plugin's instance name. */
    void (*log)(cairn_plugin *self, cairn_log_level level, const char *fmt,
                ...) CAIRN_PRINTF(3, 4);

    /* Instance name from the config, and the runtime's name. */
    const char *(*name)(cairn_plugin *self);
    const char *(*runtime_name)(cairn_plugin *self);

    /* Sleeps up to ms; returns false as soon as the plugin is stopping. */
    bool (*sleep)(cairn_plugin *self, uint32_t ms);

    /* Publish/subscribe; filters use MQTT syntax ("a/+/c", "a/#"). */
    cairn_err (*publish)(cairn_plugin *self, const char *topic,
                         const void *payload, size_t len,
                         const cairn_pub_opts *opts);
    /* Publishes a whole envelope; id and ts are filled in when zero. */
    cairn_err (*publish_env)(cairn_plugin *self, const cairn_envelope *env);
    cairn_err (*subscribe)(cairn_plugin *self, const char *filter,
                           cairn_msg_fn fn, void *arg, cairn_sub **subp);
    void (*unsubscribe)(cairn_sub *sub);

    /* Work queues: each message goes to exactly one consumer. */
    cairn_err (*queue_push)(cairn_plugin *self, const char *queue,
                            const void *payload, size_t len,
                            uint32_t timeout_ms);
    cairn_err (*queue_consume)(cairn_plugin *self, const char *queue,
                               cairn_msg_fn fn, void *arg, cairn_sub **subp);

    /* Request/reply services by name.  Every call has a deadline. */
    cairn_err (*serve)(cairn_plugin *self, const char *service,
                       cairn_serve_fn fn, void *arg, cairn_svc **svcp);
    void (*unserve)(cairn_svc *svc);
    cairn_err (*call)(cairn_plugin *self, const char *service,
                      const void *req, size_t len, uint32_t timeout_ms,
                      cairn_reply *reply);
    cairn_err (*out_append)(cairn_out *out, const void *data, size_t len);
    void (*reply_fini)(cairn_reply *reply);

    /* Counts an error against the plugin (shows in metrics). */
    void (*count_error)(cairn_plugin *self);

    /* ---- ABI 1.1: durable messaging ----------------------------------- */

    /*
     * The outbox of the destination named like this plugin instance (the
     * config's `routes` send messages there).  outbox_next hands out up to
     * max records that are due, in order per key, at most store.window in
     * flight, waiting up to wait_ms; *n may be 0.  Each record is
     * released with record_fini once it was acked or nacked.  outbox_ack:
     * the far side has it (it is deleted).  outbox_nack: failed; retried
     * with backoff, or (permanent, or out of attempts) a dead letter with
     * error.  outbox_reset: the link dropped; everything in flight is
     * handed out again, in order.
     */
    cairn_err (*outbox_next)(cairn_plugin *self, cairn_record *recs,
                             size_t max, uint32_t wait_ms, size_t *n);
    cairn_err (*outbox_ack)(cairn_plugin *self, uint64_t seq);
    cairn_err (*outbox_nack)(cairn_plugin *self, uint64_t seq,
                             bool permanent, const char *error);
    void (*outbox_reset)(cairn_plugin *self);
    void (*record_fini)(cairn_record *rec);

    /*
     * Idempotent consumer: the messages routed to this plugin instance
     * are handed to fn, one at a time on a thread of their own, each in a
     * transaction with the plugin's key-value state.
     */
    cairn_err (*inbox_consume)(cairn_plugin *self, cairn_inbox_fn fn,
                               void *arg);
    /* Records a message id as seen by this plugin; CAIRN_EEXIST if it
     * was already (a redelivery to drop).  For a bridge's downlink. */
    cairn_err (*inbox_accept)(cairn_plugin *self,
                              const uint8_t id[CAIRN_ID_LEN]);
    /* Key-value state of the plugin, inside an inbox transaction.
     * kv_get: *val is allocated, freed with host->free; CAIRN_ENOENT if
     * the key is absent. */
    cairn_err (*kv_get)(cairn_txn *txn, const char *key, void **val,
                        size_t *len);
    cairn_err (*kv_put)(cairn_txn *txn, const char *key, const void *val,
                        size_t len);
    cairn_err (*kv_del)(cairn_txn *txn, const char *key);
    void (*free)(void *ptr);

    /*
     * Makes messages on topics matching filter durable toward this plugin
     * instance: they are committed to its outbox before the publish
     * returns, as a `routes` entry of the config would.  priority: 0
     * normal, 1 high.  Call from init or start.
     */
    cairn_err (*route_durable)(cairn_plugin *self, const char *filter,
                               int priority);

    /* A one-line state shown by `cairn plugins` and `cairn status`
     * (e.g. "connected to broker:8883"). */
    void (*status)(cairn_plugin *self, const char *fmt, ...)
        CAIRN_PRINTF(2, 3);
    /* Plugin metrics, rendered as cairn_<name>{plugin="<instance>"}.
     * name: [a-z0-9_], at most 48 chars; at most 32 per plugin. */
    void (*gauge_set)(cairn_plugin *self, const char *name, double value);
    void (*counter_add)(cairn_plugin *self, const char *name,
                        uint64_t delta);

    /* ---- ABI 1.2: health and metrics of the runtime ------------------- */

    /*
     * The runtime's metrics in Prometheus text format (what `cairn
     * metrics` prints).  On success *text is allocated (NUL-terminated,
     * *len bytes without the NUL) and freed with host->free.
     */
    cairn_err (*metrics_text)(cairn_plugin *self, char **text, size_t *len);
    /*
     * True when every plugin instance has started and every one that
     * reports a link (link_state) has it up.  why, if not NULL, gets a
     * short reason when not ready ("" when ready).
     */
    bool (*ready)(cairn_plugin *self, char *why, size_t len);
    /* A bridge reports its link to the far side: up after it connected,
     * down when it lost (or could not make) the connection. */
    void (*link_state)(cairn_plugin *self, bool up);

    /*
     * Runs fn in one transaction on the plugin's key-value state:
     * fn's kv_put/kv_del commit together when fn returns CAIRN_OK, none
     * of them otherwise.  Returns fn's result, or the store's error when
     * the commit failed (nothing kept).  For state outside an inbox
     * handler (a service, the run thread); calling it from inside an
     * inbox handler or another kv_txn gives CAIRN_EBUSY.  txn is valid
     * only during fn.  fn holds the store's write lock: keep it short,
     * and do not publish or call services from it.
     */
    cairn_err (*kv_txn)(cairn_plugin *self,
                        cairn_err (*fn)(cairn_txn *txn, void *arg),
                        void *arg);

    /* Publishes env unless this plugin has already accepted env->id:
     * the id is recorded, and env is committed to the outbox of every
     * durable route its topic matches, in ONE transaction; then it is
     * published on the bus.  CAIRN_EEXIST: a redelivery (nothing done).
     * For a bridge's downlink: ack the broker after CAIRN_OK or
     * CAIRN_EEXIST.
     * env->id must not be zero (CAIRN_EINVAL); a zero ts is set to now.
     * Any other error from the commit (CAIRN_EFULL, disk) keeps neither
     * the id nor a copy: the broker's redelivery is processed afresh.
     * The bus itself keeps nothing over a crash: a topic with no durable
     * route records only the id (and a bus error after the commit is
     * returned with the id kept).  CAIRN_ENOTSUP: the runtime has no
     * store. */
    cairn_err (*publish_once)(cairn_plugin *self, const cairn_envelope *env);

    /*
     * Calls a service without waiting for it: as call (same deadline,
     * circuit breaker and retries), but the outcome goes to done.
     * Returns an error, and done is never called, when the call cannot
     * start: CAIRN_EINVAL, CAIRN_ENOENT (no such service), CAIRN_EUNAVAIL
     * (its circuit is open), CAIRN_ENOMEM, CAIRN_ECLOSED (stopping).  On
     * CAIRN_OK, done(arg, rv, reply) is called exactly once, on one of
     * the runtime's I/O threads: never on the caller's thread, but
     * possibly before call_async has returned.  rv is what call would
     * have returned; reply is NULL unless rv is CAIRN_OK, and is borrowed
     * until done returns (no reply_fini).  done must not block.  A
     * plugin's stop must wait until every done it is owed has run.
     */
    cairn_err (*call_async)(cairn_plugin *self, const char *service,
                            const void *req, size_t len, uint32_t timeout_ms,
                            void (*done)(void *arg, cairn_err rv,
                                         cairn_reply *reply),
                            void *arg);
} cairn_host;

/* True when the host table provides member m (added in a later minor). */
#define CAIRN_HOST_HAS(host, m)                                            \
    ((host)->size >= offsetof(cairn_host, m) + sizeof((host)->m))

/* ---- the descriptor a plugin exports ------------------------------------ */

typedef struct cairn_plugin_desc {
    uint32_t abi_version; /* CAIRN_ABI_VERSION the plugin was built with */
    uint32_t size;        /* sizeof(cairn_plugin_desc) the plugin saw */

    const char *name;        /* kind of plugin, e.g. "sensor-sim" */
    const char *version;     /* the plugin's own version */
    const char *description; /* one line */

    const cairn_cfg_field *config; /* terminated by CAIRN_CFG_END; may be NULL */
    size_t config_size;            /* sizeof the struct config fills */

    cairn_err (*init)(const cairn_host *host, cairn_plugin *self,
                      const void *config, void **statep);
    cairn_err (*start)(void *state);
    void (*run)(void *state); /* optional */
    void (*stop)(void *state);
    void (*fini)(void *state);
} cairn_plugin_desc;

typedef const cairn_plugin_desc *(*cairn_plugin_entry_fn)(void);

/* Size of the v1.0 descriptor: the least the host accepts. */
#define CAIRN_PLUGIN_DESC_V1_0_SIZE                                        \
    (offsetof(cairn_plugin_desc, fini) + sizeof(void (*)(void *)))

#define CAIRN_PLUGIN_DEFINE(descvar)                                       \
    CAIRN_EXPORT const cairn_plugin_desc *cairn_plugin_v1(void);           \
    const cairn_plugin_desc *cairn_plugin_v1(void)                         \
    {                                                                      \
        return &(descvar);                                                 \
    }

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_PLUGIN_H */
