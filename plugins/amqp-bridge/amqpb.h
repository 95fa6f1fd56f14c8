/*
 * amqpb.h - the AMQP 0-9-1 bridge plugin (rabbitmq-c 0.11): shared types
 * of its modules.
 *
 *   amqpb_main.c      descriptor, lifecycle, counters and gauges
 *   amqpb_config.c    the config table, its checks, templates
 *   amqpb_conn.c      connect (TCP or TLS, login, channels, topology),
 *                     reconnect with backoff and jitter, the event loop
 *   amqpb_uplink.c    outbox -> basic.publish with publisher confirms;
 *                     basic.ack / basic.nack / basic.return
 *   amqpb_downlink.c  basic.deliver -> inbox -> bus -> basic.ack, or
 *                     basic.reject without requeue
 *   amqpb_frame.c     assembles content (header and body frames) of
 *                     deliveries and returns, within max_payload
 *
 * Threads.  rabbitmq-c connections are not thread-safe, so one thread
 * (the plugin's run thread) does everything: it owns the connection, calls
 * host->outbox_next/ack/nack/reset, reads every frame and hands downlink
 * messages to the bus.  No other thread touches struct amqpb after start,
 * except stop(), which only sets `stopping` (and the host's sleep returns
 * false), and the metric counters, which are plain fields flushed by the
 * run thread.  Hence no lock.
 *
 * Channels.  Channel 1 publishes, in confirm mode; it also declares the
 * topology.  Channel 2 consumes the downlink queues (basic.qos prefetch
 * per consumer, manual acks).  A channel or connection error from the
 * broker drops the whole connection: everything unconfirmed is handed
 * back to the outbox (host->outbox_reset), every delivery not yet acked is
 * redelivered by the broker.
 *
 * Uplink invariants:
 *  - Delivery tags on channel 1 count from 1 after confirm.select and
 *    grow by one per basic.publish; `fly` holds the unconfirmed records
 *    in tag order (a ring of max_inflight), so a multiple ack pops from
 *    its head.
 *  - A record is acked to the outbox only on the broker's basic.ack for
 *    its tag, and only if no basic.return came for it (a return precedes
 *    the ack of the same message); a returned or nacked record is nacked
 *    to the outbox (retried with backoff, a dead letter once out of
 *    attempts) with the broker's reason.
 *  - The outbox may hand out a record the bridge still has in flight
 *    (after a nack of an earlier record of its key); it is skipped, the
 *    confirm of the copy in flight settles it.
 */
#ifndef AMQPB_H
#define AMQPB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include <cairn/cairn.h>

#include "bridge.h"

#define AMQPB_NAME_CAP 256    /* exchange, routing key, queue (shortstr) */
#define AMQPB_ERR_CAP 256     /* last error text */
#define AMQPB_BATCH 256       /* records asked of the outbox at once */
#define AMQPB_IDLE_MS 20      /* longest wait in one loop turn */
#define AMQPB_FRAMES_TURN 512 /* frames read per loop turn at most */
#define AMQPB_FLUSH_MS 250    /* metrics to the host */
#define AMQPB_REQUEUED 64     /* ids remembered as accepted yet requeued */
#define AMQPB_CH_PUB 1
#define AMQPB_CH_SUB 2

enum { AMQPB_RAW = 0, AMQPB_ENVELOPE = 1 };

/* ---- configuration (amqpb_config.c) ------------------------------------- */

typedef struct amqpb_exchange {
    const char *name;
    int         type; /* index into "topic|direct|fanout|headers" */
    bool        durable;
    bool        auto_delete;
} amqpb_exchange;

typedef struct amqpb_queue {
    const char *name;
    bool        durable;
    const char *dead_letter_exchange;
    const char *dead_letter_routing_key;
    int64_t     max_length;  /* 0: none */
    int         overflow;    /* "drop-head|reject-publish|reject-publish-dlx" */
    uint64_t    message_ttl; /* ms, 0: none */
} amqpb_queue;

typedef struct amqpb_binding {
    const char *queue;
    const char *exchange;
    const char *routing_key;
} amqpb_binding;

typedef struct amqpb_up_route {
    const char *filter;      /* bus topic filter */
    const char *exchange;    /* "" is the default exchange */
    const char *routing_key; /* template */
    bool        persistent;  /* delivery mode 2 */
    bool        mandatory;
    int         payload; /* AMQPB_RAW | AMQPB_ENVELOPE */
    int         priority;
} amqpb_up_route;

typedef struct amqpb_down_route {
    const char *queue;      /* AMQP queue to consume */
    const char *topic;      /* bus topic template, or "" */
    const char *work_queue; /* bus work queue, or "" */
    int64_t     prefetch;
    int         payload;
    uint64_t    push_timeout; /* ms, work queue pushes */
} amqpb_down_route;

typedef struct amqpb_cfg {
    const char    *host;
    int64_t        port;
    const char    *vhost;
    const char    *username;
    const char    *password;
    const char    *password_file;
    bool           tls;
    const char    *ca_file;
    const char    *cert_file;
    const char    *key_file;
    bool           tls_verify_hostname;
    uint64_t       heartbeat;
    const char    *connection_name;
    uint64_t       reconnect_initial;
    uint64_t       reconnect_max;
    double         reconnect_multiplier;
    uint64_t       connect_timeout;
    int64_t        max_inflight;
    uint64_t       max_payload;
    cairn_cfg_list exchanges; /* amqpb_exchange */
    cairn_cfg_list queues;    /* amqpb_queue */
    cairn_cfg_list bindings;  /* amqpb_binding */
    cairn_cfg_list uplink;    /* amqpb_up_route */
    cairn_cfg_list downlink;  /* amqpb_down_route */
} amqpb_cfg;

extern const cairn_cfg_field amqpb_fields[];

/* Templates (bridge.h): {runtime}, {name}, {topic} and {1}..{9}, the
 * parts of topic split at '/' for bus topics, '.' for routing keys.  A
 * rendered name longer than an AMQP short string is an error. */
#define AMQPB_TOO_LONG "the rendered name is longer than 255 bytes"

struct amqpb;
cairn_err amqpb_config_check(struct amqpb *b);

/* ---- content assembly (amqpb_frame.c) ----------------------------------- */

/* Properties copied out of a content header (the library's pool is
 * recycled between loop turns).  Strings are NUL-terminated. */
typedef struct amqpb_props {
    char     message_id[AMQPB_NAME_CAP];
    char     correlation_id[AMQPB_NAME_CAP];
    char     content_type[AMQPB_NAME_CAP];
    bool     has_message_id, has_correlation_id, has_content_type;
    uint32_t nheaders;
    char    *hname[CAIRN_ENV_MAX_HEADERS]; /* into hbuf */
    char    *hvalue[CAIRN_ENV_MAX_HEADERS];
    char    *hbuf; /* owned */
} amqpb_props;

typedef enum {
    AMQPB_AS_IDLE = 0,
    AMQPB_AS_HEADER, /* method seen, content header due */
    AMQPB_AS_BODY,   /* body frames due */
} amqpb_as_state;

/* One message being assembled on a channel: a basic.deliver (channel 2)
 * or a basic.return (channel 1). */
typedef struct amqpb_asm {
    amqpb_as_state state;
    uint64_t       delivery_tag;
    bool           redelivered;
    uint16_t       reply_code; /* returns */
    char           reply_text[AMQPB_NAME_CAP];
    char           exchange[AMQPB_NAME_CAP];
    char           routing_key[AMQPB_NAME_CAP];
    char           consumer_tag[AMQPB_NAME_CAP];
    amqpb_props    props;
    uint64_t       body_size;
    uint64_t       got;
    bool           oversize; /* body over max_payload: not kept */
    uint8_t       *body;     /* owned, body_size bytes (unless oversize) */
} amqpb_asm;

/* Feeds a content frame; CAIRN_OK and *done when the message is whole,
 * CAIRN_EPROTO for a frame out of place (a broken stream). */
cairn_err amqpb_asm_feed(struct amqpb *b, amqpb_asm *a,
                         const amqp_frame_t *f, bool *done);
void      amqpb_asm_reset(amqpb_asm *a);
/* Copies bytes into a NUL-terminated string; false if it does not fit. */
bool amqpb_copy_str(char *dst, size_t cap, amqp_bytes_t src);

/* ---- the bridge --------------------------------------------------------- */

enum {
    AMQPB_C_RECONNECTS,
    AMQPB_C_CONNECT_ERRORS,
    AMQPB_C_SENT,
    AMQPB_C_SENT_BYTES,
    AMQPB_C_ACKED,
    AMQPB_C_NACKED,
    AMQPB_C_RETURNED,
    AMQPB_C_DEAD,
    AMQPB_C_RETRIED,
    AMQPB_C_DUP_SKIPPED,
    AMQPB_C_LOOP_SKIPPED,
    AMQPB_C_DOWN_RECEIVED,
    AMQPB_C_DOWN_BYTES,
    AMQPB_C_DOWN_DUPLICATES,
    AMQPB_C_DOWN_REJECTED,
    AMQPB_C_DOWN_REQUEUED,
    AMQPB_C_COUNT
};

typedef enum { AMQPB_DOWN, AMQPB_UP } amqpb_state;

/* A record published and not yet confirmed. */
typedef struct amqpb_fly {
    uint64_t     tag;
    bool         returned;
    char         why[AMQPB_ERR_CAP]; /* the return's reason */
    char         idtext[37];
    cairn_record rec;
} amqpb_fly;

typedef struct amqpb {
    const cairn_host *host;
    cairn_plugin     *self;
    amqpb_cfg         cfg;
    const char       *name;
    const char       *runtime;
    char             *password; /* from password_file, owned */
    char              conn_name[AMQPB_NAME_CAP];
    atomic_bool       stopping; /* set by stop(); see above */
    pthread_mutex_t   lock;     /* running, for stop() to wait on */
    pthread_cond_t    cv;
    bool              running;  /* the run thread is in amqpb_run_loop */

    /* Run thread only. */
    amqp_connection_state_t conn;
    amqpb_state             state;
    bool                    ever_up;
    bool                    no_outbox;  /* outbox_next said ENOTSUP */
    uint32_t                attempt;    /* failed attempts in a row */
    uint64_t                next_try_ms;
    uint64_t                rnd;        /* xorshift, jitter */
    char                    last_error[AMQPB_ERR_CAP];
    amqpb_fly              *fly;        /* ring of max_inflight */
    cairn_record           *recs;       /* AMQPB_BATCH, for outbox_next */
    size_t                  fly_head, fly_count;
    uint64_t                next_tag;   /* of the next basic.publish */
    amqpb_asm               ret;        /* a basic.return on channel 1 */
    amqpb_asm               dlv;        /* a basic.deliver on channel 2 */
    bool                    busy;       /* the last turn did something */
    uint8_t  requeued[AMQPB_REQUEUED][CAIRN_ID_LEN];
    size_t   nrequeued;
    uint64_t count[AMQPB_C_COUNT];
    uint64_t flushed[AMQPB_C_COUNT];
    uint64_t next_flush_ms;
    bool     accept_warned;
} amqpb;

/* ---- amqpb_main.c ------------------------------------------------------- */

uint64_t amqpb_now_ms(void); /* monotonic */
void     amqpb_flush_metrics(amqpb *b, bool force);

void amqpb_status(amqpb *b); /* the status line from the state */

static inline void
amqpb_count(amqpb *b, int which, uint64_t n)
{
    b->count[which] += n;
}

/* ---- amqpb_conn.c ------------------------------------------------------- */

void amqpb_run_loop(amqpb *b); /* the run thread */
/* The link is unusable: logs, releases everything, schedules a retry. */
void amqpb_conn_lost(amqpb *b, const char *fmt, ...) CAIRN_PRINTF(2, 3);
/* Text of a failed RPC (library or broker). */
void amqpb_rpc_text(amqp_rpc_reply_t r, char *out, size_t cap);

/* ---- amqpb_uplink.c ----------------------------------------------------- */

cairn_err amqpb_uplink_init(amqpb *b); /* durable routes, the ring */
void      amqpb_uplink_fini(amqpb *b);
/* One turn: fills the window from the outbox; returns records sent. */
size_t amqpb_uplink_fill(amqpb *b, uint32_t wait_ms);
void   amqpb_on_ack(amqpb *b, uint64_t tag, bool multiple, bool ok);
void   amqpb_on_return(amqpb *b, const amqpb_asm *a);
/* Link lost or stop: everything in flight goes back to the outbox. */
void amqpb_uplink_reset(amqpb *b);

/* ---- amqpb_downlink.c --------------------------------------------------- */

/* After login: basic.qos and basic.consume on channel 2. */
bool amqpb_downlink_consume(amqpb *b);
void amqpb_on_deliver(amqpb *b, const amqpb_asm *a);

#endif /* AMQPB_H */
