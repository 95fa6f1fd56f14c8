/*
 * mqttb.h - the MQTT bridge plugin: shared types of its modules.
 *
 *   mqttb_main.c      descriptor, lifecycle (init/start/run/stop/fini),
 *                     counters and the status line
 *   mqttb_config.c    the config table, its checks, topic templates
 *   mqttb_conn.c      the network thread: connect with backoff and jitter,
 *                     TLS, the poll loop around libmosquitto, birth/will
 *   mqttb_uplink.c    the drain thread (outbox -> handoff), publishing,
 *                     acks on PUBACK/PUBCOMP, non-durable routes
 *   mqttb_downlink.c  messages from the broker onto the bus, and the
 *                     request/response worker for service routes
 *   mqttb_map.c       the entry list and the seq -> entry map
 *
 * Threads and what each may touch:
 *
 *   network thread (mqttb_conn.c)  owns the struct mosquitto: it is the
 *       only thread that calls into libmosquitto after init, and every
 *       libmosquitto callback (connect, disconnect, publish, message, log)
 *       runs on it, inside mosquitto_loop() or mosquitto_publish_v5().
 *       It alone touches the live list (what libmosquitto holds) and the
 *       connection state machine.  It calls host->outbox_ack/nack and
 *       host->inbox_accept/publish_env (downlink topic routes).
 *   drain thread (the plugin's run thread)  calls host->outbox_next and
 *       host->outbox_reset, renders records into entries and appends them
 *       to the handoff list.  Nothing else calls outbox_next or
 *       outbox_reset, so a reset and the records handed out around it are
 *       always ordered.
 *   bus delivery threads  (host->subscribe callbacks, non-durable routes)
 *       render the message and append it to the direct list.
 *   service worker  (only with service routes) runs host->call and
 *       appends the reply to the direct list.
 *
 * One mutex, b->lock, guards what those threads share: the handoff and
 * direct lists, the owned map (seq -> entry of every record the bridge
 * holds, handed off or live), the done map, the service queue, the flags
 * connected, reset_pending, drain_running and stopping.  It is never held
 * across a call into libmosquitto or into the host.  Others wake the network
 * thread through an eventfd (mqttb_wake); the drain thread and the
 * service worker sleep on condition variables under b->lock.
 *
 * Uplink invariants:
 *  - A record is acked only after the broker's PUBACK (QoS 1) or PUBCOMP
 *    (QoS 2), or, for QoS 0, once libmosquitto wrote the whole PUBLISH to
 *    the socket.  A broker refusal (reason code >= 0x80) is a nack.
 *  - libmosquitto keeps QoS 1/2 messages across reconnects and sends them
 *    again, in order, right after the next CONNACK (same packet ids, so
 *    the broker's session stays consistent); the bridge keeps those
 *    records live.  When the link drops, the network thread drops the
 *    QoS 0 records libmosquitto could not finish and sets reset_pending;
 *    the drain thread then discards its handoff list and calls
 *    host->outbox_reset, so everything not live comes back in order, and
 *    it skips records it already owns.  The network thread publishes
 *    nothing while reset_pending is set.
 *  - Per ordering key, records reach libmosquitto in outbox order, and
 *    libmosquitto sends in that order (retransmissions first).
 *  - The drain thread asks the outbox for more only when the handoff list
 *    is below low_water (half of max_inflight), and when the outbox hands
 *    out only a trickle while the bridge has its maximum in flight (a
 *    store.window no larger than max_inflight), it pauses 1 ms: records
 *    come in batches, not one per acknowledgement, which keeps the two
 *    threads from waking each other for every message.
 */
#ifndef MQTTB_H
#define MQTTB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

#include <cairn/cairn.h>

#include "bridge.h"

#define MQTTB_TOPIC_CAP 2048  /* rendered topic, NUL included */
#define MQTTB_ERR_CAP 256     /* last error text */
#define MQTTB_DRAIN_BATCH 256 /* records asked of the outbox at once */
#define MQTTB_DRAIN_WAIT_MS 200
#define MQTTB_DRAIN_TRICKLE 16 /* fewer records than this from a full pipe */
#define MQTTB_RX_MAX 65535     /* receive maximum when the broker names none */

enum { MQTTB_V5 = 0, MQTTB_V311 = 1 };      /* protocol enum */
enum { MQTTB_RAW = 0, MQTTB_ENVELOPE = 1 }; /* payload enum */

/* ---- configuration (mqttb_config.c) ------------------------------------- */

typedef struct mqttb_up_route {
    const char *filter; /* bus topic filter */
    const char *topic;  /* cloud topic template */
    int64_t     qos;
    bool        durable;
    int         payload; /* MQTTB_RAW | MQTTB_ENVELOPE */
    bool        retain;
    int         priority; /* 0 normal, 1 high (durable routes) */
} mqttb_up_route;

typedef struct mqttb_down_route {
    const char *filter;  /* cloud topic filter */
    const char *topic;   /* bus topic template ("" with service) */
    const char *service; /* bus service to call ("" with topic) */
    const char
            *reply_topic; /* template; when a request has no Response Topic */
    uint64_t timeout;     /* ms, service calls */
    int64_t  qos;
    int      payload;
} mqttb_down_route;

typedef struct mqttb_cfg {
    const char    *host;
    int64_t        port;
    int            protocol; /* MQTTB_V5 | MQTTB_V311 */
    const char    *client_id;
    uint64_t       keepalive;
    const char    *username;
    const char    *password;
    const char    *password_file;
    bool           tls;
    const char    *ca_file;
    const char    *cert_file;
    const char    *key_file;
    bool           tls_insecure;
    bool           clean_session;
    uint64_t       session_expiry;
    const char    *status_topic;
    const char    *online_payload;
    const char    *offline_payload;
    int64_t        status_qos;
    uint64_t       reconnect_initial;
    uint64_t       reconnect_max;
    double         reconnect_multiplier;
    uint64_t       connect_timeout;
    int64_t        max_inflight;
    uint64_t       max_payload;
    int64_t        queue;
    cairn_cfg_list uplink;   /* mqttb_up_route */
    cairn_cfg_list downlink; /* mqttb_down_route */
} mqttb_cfg;

extern const cairn_cfg_field mqttb_fields[];

/* Templates (bridge.h): {runtime}, {name}, {topic} and {1}..{9}, the
 * '/'-separated levels of the topic. */
#define MQTTB_TOO_LONG "the rendered topic is too long"

struct mqttb;
/* Checks everything the table cannot: filters, templates, files. */
cairn_err mqttb_config_check(struct mqttb *b);

/* ---- the bridge --------------------------------------------------------- */

/* Something to publish: an outbox record, a non-durable message or reply,
 * or the status (birth/offline) message. */
typedef enum { MQTTB_E_RECORD, MQTTB_E_DIRECT, MQTTB_E_STATUS } mqttb_kind;

typedef struct mqttb_entry {
    struct mqttb_entry *prev, *next;
    mqttb_kind          kind;
    int                 qos;
    bool                retain;
    int                 mid;   /* once published */
    char               *topic; /* owned (inside the entry's block for
                                  DIRECT and STATUS) */
    const void    *payload;    /* into rec.data or the entry's block */
    size_t         len;
    char           idtext[37]; /* cairn-id property, "" for none */
    const char    *ctype;      /* content type, NUL-terminated, or NULL */
    const uint8_t *corr;       /* correlation data, or NULL */
    size_t         corr_len;
    const char    *status;    /* cairn-status property, or NULL */
    bool           pre_reset; /* live when the last reset was made
                                 (under b->lock) */
    cairn_record rec;         /* MQTTB_E_RECORD */
} mqttb_entry;

typedef struct mqttb_list {
    mqttb_entry *head, *tail;
    size_t       count;
} mqttb_list;

void         mqttb_list_push(mqttb_list *l, mqttb_entry *e);
mqttb_entry *mqttb_list_pop(mqttb_list *l);
void         mqttb_list_remove(mqttb_list *l, mqttb_entry *e);

/* seq -> entry, open addressing (mqttb_map.c). */
struct mqttb_slot {
    uint64_t            key;
    struct mqttb_entry *val; /* NULL: free */
};

typedef struct mqttb_map {
    struct mqttb_slot *slots;
    size_t             cap, count;
} mqttb_map;

cairn_err    mqttb_map_put(mqttb_map *m, uint64_t key, mqttb_entry *e);
mqttb_entry *mqttb_map_get(const mqttb_map *m, uint64_t key);
void         mqttb_map_del(mqttb_map *m, uint64_t key);
void         mqttb_map_fini(mqttb_map *m);

/* Counters, added to from any thread; the network thread hands the
 * increments to the host every MQTTB_FLUSH_MS (host->counter_add costs a
 * lock and a search, too much per message). */
enum {
    MQTTB_C_RECONNECTS,
    MQTTB_C_CONNECT_ERRORS,
    MQTTB_C_SENT,
    MQTTB_C_SENT_BYTES,
    MQTTB_C_ACKED,
    MQTTB_C_DEAD,
    MQTTB_C_RETRIED,
    MQTTB_C_DUP_SKIPPED,
    MQTTB_C_LOOP_SKIPPED,
    MQTTB_C_DROPPED,
    MQTTB_C_DOWN_RECEIVED,
    MQTTB_C_DOWN_BYTES,
    MQTTB_C_DOWN_DUPLICATES,
    MQTTB_C_DOWN_ERRORS,
    MQTTB_C_REQUESTS,
    MQTTB_C_REQUEST_ERRORS,
    MQTTB_C_COUNT
};
#define MQTTB_FLUSH_MS 250

typedef enum { MQTTB_DOWN, MQTTB_CONNECTING, MQTTB_UP } mqttb_state;

/* A request for a service route, queued for the service worker. */
typedef struct mqttb_req {
    struct mqttb_req       *next;
    const mqttb_down_route *route;
    char                   *topic; /* the request's cloud topic */
    char                   *reply; /* reply topic, or NULL */
    uint8_t                *corr;
    size_t                  corr_len;
    uint8_t                *payload;
    size_t                  len;
} mqttb_req;

typedef struct mqttb {
    const cairn_host *host;
    cairn_plugin     *self;
    mqttb_cfg         cfg;
    const char       *name;
    const char       *runtime;
    char             *password; /* from password_file, owned */
    char              client_id[256];
    char              status_topic[MQTTB_TOPIC_CAP];

    /* Shared, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t  drain_cv; /* drain thread: connected, reset, stop,
                                 handoff below low water */
    pthread_cond_t svc_cv;    /* service worker: queue, stop */
    mqttb_list     handoff;   /* records not yet given to libmosquitto */
    mqttb_list     direct;    /* non-durable messages and replies */
    mqttb_map      owned;     /* seq -> entry: handoff and live records */
    mqttb_map      done;      /* seqs acked since the last reset that
                                 were live at it: the outbox may have
                                 handed them out again already */
    mqttb_req  *svc_head, *svc_tail;
    size_t      svc_count;
    bool        reset_pending;
    bool        drain_running;
    bool        drain_waiting; /* asleep until the handoff runs low */
    size_t      low_water;     /* refill the handoff below this */
    atomic_bool connected;     /* written under lock, read anywhere */
    atomic_bool saturated;     /* max in flight (network thread writes) */
    atomic_bool stopping;

    /* Network thread only (after start). */
    struct mosquitto *mosq;
    int               wakefd;
    atomic_bool       wake_pending;
    pthread_t         net_thread;
    bool              has_net_thread;
    mqttb_state       state;
    bool              client_ready; /* a connect call went through: later
                                       attempts use mosquitto_reconnect_async
                                       (which reuses the CONNECT properties) */
    bool       ever_up;             /* a CONNACK was seen */
    bool       announce; /* birth and subscriptions are due (after a CONNACK) */
    uint64_t   next_try_ms;  /* monotonic, in MQTTB_DOWN */
    uint64_t   deadline_ms;  /* CONNACK due, in MQTTB_CONNECTING */
    uint32_t   attempt;      /* failed attempts in a row */
    uint32_t   receive_max;  /* broker's, 65535 if unnamed */
    int        max_qos;      /* broker's, 2 if unnamed */
    mqttb_list live;         /* handed to libmosquitto */
    mqttb_entry *publishing; /* inside mosquitto_publish_v5 */
    bool         publishing_done;
    int          publishing_reason;
    char         last_error[MQTTB_ERR_CAP];
    char         why[MQTTB_ERR_CAP];       /* reason a callback saw */
    char         lib_error[MQTTB_ERR_CAP]; /* last libmosquitto error log */
    bool         lib_inited;
    uint64_t     flushed[MQTTB_C_COUNT];
    uint64_t     next_flush_ms;
    uint64_t     rnd; /* xorshift state for jitter */

    pthread_t svc_thread;
    bool      has_svc_thread;
    void     *subs; /* subscription arguments of non-durable routes */

    atomic_bool      accept_warned; /* inbox_accept failed once */
    _Atomic uint64_t count[MQTTB_C_COUNT];
} mqttb;

/* ---- mqttb_main.c ------------------------------------------------------- */

uint64_t mqttb_now_ms(void); /* monotonic */
void     mqttb_count(mqttb *b, int which, uint64_t n);
void     mqttb_flush_metrics(mqttb *b);
void     mqttb_wake(mqttb *b); /* wakes the network thread */

/* ---- mqttb_conn.c ------------------------------------------------------- */

cairn_err mqttb_conn_init(mqttb *b); /* creates the client, in init */
void      mqttb_conn_fini(mqttb *b);
cairn_err mqttb_conn_start(mqttb *b); /* starts the network thread */
void      mqttb_conn_stop(mqttb *b);  /* offline status, disconnect, join */
/* The link is gone (rc: a MOSQ_ERR_*; why: text or NULL). */
void mqttb_conn_lost(mqttb *b, int rc, const char *why);
bool mqttb_is_v5(const mqttb *b);

/* ---- mqttb_uplink.c ----------------------------------------------------- */

cairn_err mqttb_uplink_start(mqttb *b); /* durable routes, subscriptions */
void      mqttb_drain_main(mqttb *b);   /* the run thread */
/* Network thread: publishes what waits, within the in-flight limit. */
void mqttb_uplink_pump(mqttb *b);
/* Network thread: publishes one entry now (status messages). */
void mqttb_uplink_send(mqttb *b, mqttb_entry *e);
void mqttb_on_publish(struct mosquitto *m, void *arg, int mid, int reason,
                      const mosquitto_property *props);
/* Network thread, link lost: drops what libmosquitto will not resend. */
void mqttb_uplink_lost(mqttb *b);
/* Stop: releases every record and entry still held (no acks). */
void mqttb_uplink_release(mqttb *b);
/* Any thread: queues a non-durable publish; false if dropped. */
bool mqttb_direct_push(mqttb *b, mqttb_entry *e);
/* Allocates a DIRECT entry with copies of topic, payload, corr. */
mqttb_entry *mqttb_entry_direct(const char *topic, const void *payload,
                                size_t len, const uint8_t *corr,
                                size_t corr_len);
void         mqttb_entry_free(mqttb *b, mqttb_entry *e);
size_t       mqttb_inflight(const mqttb *b);

/* ---- mqttb_downlink.c --------------------------------------------------- */

void      mqttb_downlink_subscribe(mqttb *b); /* network thread, on CONNACK */
void      mqttb_on_message(struct mosquitto *m, void *arg,
                           const struct mosquitto_message *msg,
                           const mosquitto_property       *props);
cairn_err mqttb_downlink_start(mqttb *b); /* service worker */
void      mqttb_downlink_stop(mqttb *b);

#endif /* MQTTB_H */
