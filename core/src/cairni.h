/*
 * cairni.h - libcairn's internal interfaces, shared by the modules of
 * core/src, the daemon, the CLI and the unit tests (which link the static
 * cairn_core).  Nothing here is part of the plugin ABI.
 *
 * Modules:
 *   util.c     growable byte buffer, arena, monotonic clock
 *   log.c      leveled logging to stderr
 *   metrics.c  per-topic counters and latency histograms, Prometheus text
 *   topic.c    topic and filter validation and matching (public API)
 *   envelope.c CBOR envelope codec (public API)
 *   id.c       time-ordered ids, wall clock (public API)
 *   config.c   YAML loading into a node tree, the daemon's config
 *   cfgtable.c typed tables: validation, filling, documentation
 *   bus.c      NNG in-process pub/sub, work queues, request/reply
 */
#ifndef CAIRNI_H
#define CAIRNI_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cairn/cairn.h>

/* Internal symbols stay visible in libcairn.so: cairnd and the CLI link it. */
#pragma GCC visibility push(default)

#define CAIRNI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- util.c ------------------------------------------------------------ */

/* A growable byte buffer.  Zero-initialize, then append; owns data. */
typedef struct cairni_buf {
    char  *data; /* always NUL-terminated after a successful append */
    size_t len;
    size_t cap;
    bool   failed; /* an append ran out of memory; later appends no-op */
} cairni_buf;

cairn_err cairni_buf_append(cairni_buf *b, const void *data, size_t len);
cairn_err cairni_buf_printf(cairni_buf *b, const char *fmt, ...)
    CAIRN_PRINTF(2, 3);
void      cairni_buf_fini(cairni_buf *b);

/* An arena: many allocations, freed together.  Zero-initialize. */
typedef struct cairni_arena {
    struct cairni_arena_blk *head;
} cairni_arena;

void *cairni_arena_alloc(cairni_arena *a, size_t size); /* zeroed; NULL on OOM */
char *cairni_arena_strndup(cairni_arena *a, const char *s, size_t n);
void  cairni_arena_fini(cairni_arena *a);

/* Big-endian unsigned integer of n <= 8 bytes. */
uint64_t cairni_load_be(const uint8_t *p, size_t n);

uint64_t cairni_mono_us(void); /* monotonic microseconds */
uint64_t cairni_mono_ms(void);

/* Maps an NNG error number to a cairn_err. */
cairn_err cairni_nng_err(int rv);

/* ---- log.c ------------------------------------------------------------- */

void cairni_log_set_level(cairn_log_level level);
cairn_log_level cairni_log_get_level(void);
void cairni_log(cairn_log_level level, const char *tag, const char *fmt, ...)
    CAIRN_PRINTF(3, 4);
void cairni_vlog(cairn_log_level level, const char *tag, const char *fmt,
                 va_list ap);

/* ---- metrics.c --------------------------------------------------------- */

/* Counters per topic, shared by all plugins.  All fields atomic. */
typedef struct cairni_topic_stats {
    _Atomic uint64_t published;
    _Atomic uint64_t delivered;
    _Atomic uint64_t dropped;
    _Atomic uint64_t errors;
} cairni_topic_stats;

/* Latency histogram with fixed microsecond bucket bounds. */
#define CAIRNI_HIST_BUCKETS 14
extern const uint64_t cairni_hist_bounds_us[CAIRNI_HIST_BUCKETS];
typedef struct cairni_hist {
    _Atomic uint64_t buckets[CAIRNI_HIST_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_us;
    _Atomic uint64_t count;
} cairni_hist;

void cairni_hist_observe(cairni_hist *h, uint64_t us);
/* Appends Prometheus histogram lines for metric name with given labels
 * (e.g. "service=\"echo\""). */
void cairni_hist_render(const cairni_hist *h, const char *name,
                        const char *labels, cairni_buf *out);

typedef struct cairni_metrics cairni_metrics;

cairn_err cairni_metrics_alloc(cairni_metrics **mp);
void      cairni_metrics_free(cairni_metrics *m);

/*
 * Counters of one topic.  Never NULL: past CAIRNI_METRICS_MAX_TOPICS
 * distinct topics, all further topics share the "_other" entry.  The
 * pointer stays valid until cairni_metrics_free.
 */
#define CAIRNI_METRICS_MAX_TOPICS 512
cairni_topic_stats *cairni_metrics_topic(cairni_metrics *m, const char *topic,
                                         size_t len);

/* Appends the per-topic counters in Prometheus text format. */
void cairni_metrics_render(cairni_metrics *m, cairni_buf *out);

/* Escapes a label value for Prometheus text (backslash, quote, newline). */
void cairni_prom_escape(cairni_buf *out, const char *s, size_t len);

/* ---- breaker.c: circuit breaker ------------------------------------------
 * closed: calls pass; `failures` consecutive failures open it.  open:
 * calls fail at once (CAIRN_EUNAVAIL) until `open_us` has passed, then it
 * is half-open: up to `probes` calls pass as probes, the others fail at
 * once; a failed probe opens it again, `probes` successful ones close it.
 * Thread-safe; the time is the caller's (cairni_mono_us), so tests can
 * drive it. */

typedef enum cairni_breaker_state {
    CAIRNI_BREAKER_CLOSED = 0,
    CAIRNI_BREAKER_OPEN = 1,
    CAIRNI_BREAKER_HALF_OPEN = 2,
} cairni_breaker_state;

typedef struct cairni_breaker {
    pthread_mutex_t mtx;
    uint32_t        failures; /* threshold; 0 = never opens */
    uint32_t        probes;
    uint64_t        open_us;

    cairni_breaker_state state; /* mtx */
    uint32_t             fails;     /* consecutive, while closed */
    uint32_t             probing;   /* probes out, while half-open */
    uint32_t             probe_ok;  /* successful probes, while half-open */
    uint64_t             opened_at; /* when it last opened */

    _Atomic uint64_t n_open;     /* transitions to open */
    _Atomic uint64_t n_half;     /* transitions to half-open */
    _Atomic uint64_t n_closed;   /* transitions back to closed */
    _Atomic uint64_t n_rejected; /* calls failed fast */
} cairni_breaker;

/* probes == 0 counts as 1. */
void cairni_breaker_init(cairni_breaker *b, uint32_t failures,
                         uint64_t open_us, uint32_t probes);
void cairni_breaker_fini(cairni_breaker *b);
/* Before a call: CAIRN_OK (go; *probe says whether it is a probe that
 * cairni_breaker_done must be told about) or CAIRN_EUNAVAIL. */
cairn_err cairni_breaker_enter(cairni_breaker *b, uint64_t now, bool *probe);
/* After a call that entered: failed says whether it counts as a failure. */
void cairni_breaker_done(cairni_breaker *b, uint64_t now, bool probe,
                         bool failed);
/* After a call that entered but gives no verdict (it is sent again):
 * a probe's place is given back. */
void cairni_breaker_cancel(cairni_breaker *b, bool probe);
cairni_breaker_state cairni_breaker_get(cairni_breaker *b);
const char *cairni_breaker_name(cairni_breaker_state st);
/* Whether an outcome counts against the service: a call that failed to
 * get a reply (rv), or a reply whose status says the service is in
 * trouble (timeouts, I/O, busy, ...), not the caller's own errors. */
bool cairni_call_failed(cairn_err rv, cairn_err status);

/* ---- bus.c, bus_queue.c, bus_rpc.c ---------------------------------------
 * Design, invariants, locks and threads: the top of bus.c.  Queue and
 * service names are 1..256 bytes (CAIRN_EINVAL otherwise).  Do not call
 * anything on a bus concurrently with cairni_bus_close. */

typedef struct cairni_bus cairni_bus;
typedef struct cairni_calls_cfg cairni_calls_cfg; /* config, below */

typedef struct cairni_bus_opts {
    uint32_t        sub_queue; /* messages a subscriber may lag before its
                                  drops start; 0 = 4096 */
    cairni_metrics *metrics;   /* per-topic counters; may be NULL */
    const cairni_calls_cfg *calls; /* call policies (copied); NULL = no
                                      breakers, no retries */
} cairni_bus_opts;

typedef struct cairni_sub_stats {
    uint64_t delivered; /* callbacks made */
    uint64_t dropped;   /* messages dropped because the subscriber lagged */
    uint64_t wakeups;   /* times the delivery thread woke from a blocking
                           receive (batches) */
} cairni_sub_stats;

cairn_err cairni_bus_open(cairni_bus **busp, const cairni_bus_opts *opts);
/* Closes every remaining subscription, consumer and service, then the bus. */
void cairni_bus_close(cairni_bus *bus);

/*
 * Publishes env to every subscription whose filter matches env->topic.
 * env->topic must be a valid topic name (no wildcards).  When env->id is
 * all zero a new id is made; when env->ts is 0 it is set to now.
 * Never blocks on a slow subscriber: that subscriber's message is dropped
 * and counted in its dropped counter and the topic's.
 */
cairn_err cairni_bus_publish(cairni_bus *bus, const cairn_envelope *env);

/*
 * Subscribes with an MQTT-style filter.  fn runs on a delivery thread of
 * the subscription's own, in publish order; when several messages are
 * waiting they are all delivered before the thread blocks again.
 * owner labels the subscription in metrics (a plugin instance name).
 */
cairn_err cairni_bus_subscribe(cairni_bus *bus, const char *filter,
                               const char *owner, cairn_msg_fn fn, void *arg,
                               cairn_sub **subp);
/* Stops delivery and frees the subscription (or queue consumer).  Waits
 * for a running callback; must not be called from the subscription's own
 * callback.  Messages still on their way to it are discarded. */
void cairni_bus_unsubscribe(cairn_sub *sub);
void cairni_sub_get_stats(const cairn_sub *sub, cairni_sub_stats *st);

/*
 * Work queues: named point-to-point queues with competing consumers.
 * Each message goes to exactly one consumer.  queue_push returns once a
 * consumer's pipe has taken the message; it waits up to timeout_ms for
 * one (0: try once, do not wait) and then fails with CAIRN_ENOENT if no
 * consumer has ever attached to the queue, CAIRN_ETIMEDOUT otherwise.
 * env->topic defaults to the queue name.  While consumers run nothing
 * accepted is lost; a consumer that unsubscribes takes with it the (at
 * most two) messages NNG had already routed to it (see bus_queue.c).
 */
cairn_err cairni_bus_queue_push(cairni_bus *bus, const char *queue,
                                const cairn_envelope *env,
                                uint32_t timeout_ms);
cairn_err cairni_bus_queue_consume(cairni_bus *bus, const char *queue,
                                   const char *owner, cairn_msg_fn fn,
                                   void *arg, cairn_sub **subp);

/*
 * Request/reply services by name.  The handler runs on the service's own
 * thread, one request at a time; a request whose caller's deadline has
 * passed is skipped, not run.  CAIRN_EEXIST if the name is taken.
 */
cairn_err cairni_bus_serve(cairni_bus *bus, const char *service,
                           const char *owner, cairn_serve_fn fn, void *arg,
                           cairn_svc **svcp);
void      cairni_bus_unserve(cairn_svc *svc);

/*
 * Calls a service.  timeout_ms must be > 0 (CAIRN_EINVAL otherwise); the
 * call fails with CAIRN_ETIMEDOUT when no reply came by then, with
 * CAIRN_ENOENT when no such service is registered, and with
 * CAIRN_ECONNREFUSED when the service was unserved while the call waited.
 * A request is never sent twice.  env->topic defaults to the service
 * name.  On CAIRN_OK the reply must be released with cairni_reply_fini;
 * reply->status carries the handler's own return value.  The reply is
 * at most CAIRN_ENV_MAX_SIZE bytes (cairni_out_append: CAIRN_ETOOBIG).
 */
cairn_err cairni_bus_call(cairni_bus *bus, const char *service,
                          const cairn_envelope *req, uint32_t timeout_ms,
                          cairn_reply *reply);

/*
 * Calls a service without waiting: the same deadline, breaker, retries
 * of idempotent services and accounting as cairni_bus_call.  It returns
 * an error, and done is never called, when the call cannot start:
 * CAIRN_EINVAL (bad arguments), CAIRN_ENOENT (no such service),
 * CAIRN_EUNAVAIL (its breaker is open), CAIRN_ENOMEM, CAIRN_ECLOSED (the
 * bus is closing).  On CAIRN_OK, done(arg, rv, reply) is called exactly
 * once, on one of NNG's threads: never on the caller's own thread, but
 * possibly before cairni_bus_call_async has returned, so do not hold a
 * lock across the call that done takes.  rv is what cairni_bus_call would
 * return; reply is NULL unless rv is CAIRN_OK, and then borrowed: valid
 * until done returns, released by the bus (never cairni_reply_fini it).
 * done must not block: it runs where NNG completes I/O.  Calls still in
 * progress when the bus closes end with CAIRN_ECLOSED; cairni_bus_close
 * returns after their done has returned.  env is read only during the
 * call.
 */
typedef void (*cairni_call_done)(void *arg, cairn_err rv, cairn_reply *reply);
cairn_err cairni_bus_call_async(cairni_bus *bus, const char *service,
                                const cairn_envelope *req,
                                uint32_t timeout_ms, cairni_call_done done,
                                void *arg);
cairn_err cairni_out_append(cairn_out *out, const void *data, size_t len);
void      cairni_reply_fini(cairn_reply *reply);

/* Appends subscriber, queue and service metrics in Prometheus text:
 * cairn_sub_delivered_total, cairn_sub_dropped_total, cairn_sub_wakeups_total
 * {owner,filter}; cairn_queue_pushed_total, cairn_queue_push_timeouts_total,
 * cairn_queue_delivered_total {queue}; cairn_consumer_delivered_total,
 * cairn_consumer_wakeups_total {owner,queue}; cairn_rpc_latency_seconds
 * histogram {service}; cairn_rpc_calls_total{service,result} with result
 * ok, timeout or error (a reply whose status is not CAIRN_OK is an error);
 * cairn_rpc_handled_total, cairn_rpc_expired_total,
 * cairn_rpc_malformed_total, cairn_rpc_retries_total,
 * cairn_rpc_rejected_total (failed fast by an open breaker) {service};
 * cairn_rpc_breaker_state{service} (0 closed, 1 open, 2 half-open) and
 * cairn_rpc_breaker_transitions_total{service,to}. */
void cairni_bus_render_metrics(cairni_bus *bus, cairni_buf *out);

/* Appends one line per registered service: "name owner calls breaker\n",
 * where calls counts the requests its handler ran, owner is "-" if empty
 * and breaker is closed, open or half-open. */
void cairni_bus_list_services(cairni_bus *bus, cairni_buf *out);

/* ---- config.c ---------------------------------------------------------- */

typedef enum cairni_node_kind {
    CAIRNI_NODE_SCALAR = 1,
    CAIRNI_NODE_MAP,
    CAIRNI_NODE_SEQ,
} cairni_node_kind;

/* One node of a parsed YAML document.  Owned by its document. */
typedef struct cairni_node {
    cairni_node_kind     kind;
    int                  line;   /* 1-based */
    const char          *value;  /* SCALAR: text, NUL-terminated */
    bool                 quoted; /* SCALAR: was written in quotes */
    size_t               count;  /* MAP: pairs; SEQ: items */
    const char         **keys;   /* MAP: count keys */
    int                 *key_lines;
    struct cairni_node **items;  /* MAP: values; SEQ: items */
} cairni_node;

typedef struct cairni_doc {
    char        *file; /* name used in messages */
    cairni_node *root; /* NULL for an empty document */
    cairni_arena arena;
} cairni_doc;

/*
 * Parses YAML.  Anchors, aliases, tags and multiple documents are
 * rejected.  On error, err gets "file:line: message" and *docp is NULL.
 */
cairn_err cairni_doc_parse_file(const char *path, cairni_doc **docp,
                                char *err, size_t errlen);
cairn_err cairni_doc_parse_string(const char *name, const char *text,
                                  size_t len, cairni_doc **docp, char *err,
                                  size_t errlen);
void      cairni_doc_free(cairni_doc *doc);

/* Value of key in a MAP node, or NULL. */
const cairni_node *cairni_node_get(const cairni_node *map, const char *key);

/*
 * Validates node (a MAP, or NULL for "all defaults") against fields and
 * fills the struct at base.  Unknown keys, wrong types, values out of
 * range and missing required keys are errors: err gets
 * "file:line: message".  Strings and lists are allocated in arena.
 * Every field of the table is written (defaults for absent keys).
 */
cairn_err cairni_cfg_fill(const cairni_doc *doc, const cairni_node *node,
                          const cairn_cfg_field *fields, void *base,
                          cairni_arena *arena, char *err, size_t errlen);

/* Writes a Markdown reference of a table (used by --help-config). */
void cairni_cfg_document(const cairn_cfg_field *fields, const char *prefix,
                         cairni_buf *out);

/* The daemon's own configuration. */
typedef enum { CAIRNI_SYNC_FULL = 0, CAIRNI_SYNC_NORMAL = 1 } cairni_sync;
typedef enum { CAIRNI_FULL_REJECT = 0, CAIRNI_FULL_DROP_OLDEST = 1 } cairni_full;

typedef struct cairni_runtime_cfg {
    const char *name;
    const char *data_dir;
    const char *plugin_dir;
    const char *admin;     /* NNG URL, ipc:// */
    int         log_level; /* cairn_log_level */
    int64_t     sub_queue;
} cairni_runtime_cfg;

/* Limits of one destination; absent keys inherit the store section's. */
typedef struct cairni_dest_entry {
    const char *name;
    uint64_t    max_bytes;
    int64_t     max_messages;
    uint64_t    ttl_ms;
    int         on_full;
    int64_t     window;
    int         line;
} cairni_dest_entry;

typedef struct cairni_store_cfg {
    int            sync;     /* cairni_sync */
    uint64_t       max_bytes;
    int64_t        max_messages;
    uint64_t       ttl_ms;   /* 0 = keep until delivered */
    int            on_full;  /* cairni_full */
    int64_t        window;   /* records in flight per destination */
    uint64_t       inbox_window_ms;
    cairn_cfg_list destinations; /* of cairni_dest_entry */
} cairni_store_cfg;

/* A durable route: bus topics matching filter go through the outbox to
 * destination `to` (a plugin instance). */
typedef struct cairni_route_cfg {
    const char *filter;
    const char *to;
    int         priority; /* 0 normal, 1 high */
    int         line;
} cairni_route_cfg;

typedef struct cairni_retry_cfg {
    uint64_t initial_ms;
    uint64_t max_ms;
    double   multiplier;
    int64_t  max_attempts; /* 0 = forever */
} cairni_retry_cfg;

/* Policy of request/reply calls to one service (`calls.services[]`);
 * absent keys inherit the `calls` section's values. */
typedef struct cairni_call_cfg {
    const char *name;       /* service name */
    int64_t     failures;   /* consecutive failures that open the breaker;
                               0 = no breaker */
    uint64_t    open_ms;    /* open this long before a probe is let through */
    int64_t     probes;     /* successful probes that close it again */
    bool        idempotent; /* a failed call may be made again */
    int64_t     attempts;   /* calls made for one request (idempotent only) */
    uint64_t    backoff_ms; /* first delay between attempts (full jitter) */
    int         line;
} cairni_call_cfg;

struct cairni_calls_cfg {
    int64_t        failures;
    uint64_t       open_ms;
    int64_t        probes;
    uint64_t       backoff_ms;
    cairn_cfg_list services; /* of cairni_call_cfg */
};

typedef struct cairni_plugin_cfg {
    const char        *name;     /* instance name, unique */
    const char        *path;     /* shared object; relative names are
                                    looked up in runtime.plugin_dir */
    bool               optional; /* may fail without stopping the others */
    const cairni_node *config;   /* raw map, validated by the plugin's table */
    int                line;     /* where the entry starts */
} cairni_plugin_cfg;

typedef struct cairni_config {
    cairni_runtime_cfg runtime;
    cairni_store_cfg   store;
    cairni_retry_cfg   retry;
    cairni_calls_cfg   calls;
    cairn_cfg_list     plugins; /* of cairni_plugin_cfg */
    cairn_cfg_list     routes;  /* of cairni_route_cfg */
    cairni_doc        *doc;
    cairni_arena       arena;
} cairni_config;

/*
 * Host-internal field type, for the daemon's own tables only: stores the
 * raw `const cairni_node *` (NULL when absent or null) at offset, without
 * validation.  Used for each plugin's free-form `config` map, which is
 * checked later against the plugin's own table.
 */
#define CAIRNI_CFG_NODE ((cairn_cfg_type)100)

/* "file:line: message" into err (config.c), control bytes from the input
 * replaced by '?'; line 0: "file: message". */
void cairni_cfg_errf(char *err, size_t errlen, const char *file, int line,
                     const char *fmt, ...) CAIRN_PRINTF(5, 6);
/* The first of strs equal to an earlier one: *dupp (n if none) and the
 * earlier one's index *origp. */
cairn_err cairni_cfg_first_dup(const char *const *strs, size_t n,
                               size_t *dupp, size_t *origp);

extern const cairn_cfg_field cairni_config_fields[]; /* top level */

/* Loads and validates the daemon's config (not the plugins' own maps). */
cairn_err cairni_config_load(const char *path, cairni_config **cfgp,
                             char *err, size_t errlen);
cairn_err cairni_config_load_string(const char *name, const char *text,
                                    cairni_config **cfgp, char *err,
                                    size_t errlen);
void      cairni_config_free(cairni_config *cfg);

#pragma GCC visibility pop

#endif /* CAIRNI_H */
