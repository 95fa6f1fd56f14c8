/*
 * amqp_rec - the stand-in cloud of the AMQP integration tests (rabbitmq-c).
 *
 *   amqp_rec ping -p PORT
 *       Exits 0 when a login to the broker works.
 *
 *   amqp_rec get -p PORT -q QUEUE -o FILE [-n COUNT] [-T SECONDS]
 *       Consumes QUEUE (manual acks, each after its line is written) and
 *       appends one line per message to FILE:
 *           ROUTING_KEY <tab> REDELIVERED <tab> MESSAGE_ID|- <tab>
 *           CORRELATION_ID|- <tab> PAYLOAD [<tab> HEADER=VALUE...]
 *       (payload bytes outside printable ASCII become '.'; the string
 *       headers, and x-death's first reason).  Exits 0 once COUNT distinct
 *       "seq" numbers were seen (-n 0: once the queue stayed empty for two
 *       seconds), 1 after SECONDS.  Reconnects when the broker goes away.
 *
 *   amqp_rec pub -p PORT -k ROUTING_KEY [-e EXCHANGE] [-n COUNT] [-s FIRST]
 *                [-d] [-b BODY]
 *       Publishes COUNT persistent messages with confirms (and waits for
 *       them): body {"seq":i} (or BODY), message-id a UUID made from i,
 *       i from FIRST (default 0).
 *       -d publishes each one twice (same message-id).
 *
 *   amqp_rec check FILE KEYS [PRODUCER_LOG]
 *       Passes when: every seq the producer log marks accepted ("A i") is
 *       in FILE (without a log: every seq below the largest seen); a seq
 *       seen more than once always carries the same message-id; within
 *       each key (seq % KEYS) first arrivals come in increasing seq order.
 *
 * Every wait is bounded.
 */
#define _GNU_SOURCE

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "rec_check.h"

static bool
rec_ok(amqp_connection_state_t c)
{
    return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

/* A logged-in connection with channel 1 open, or NULL. */
static amqp_connection_state_t
rec_connect(int port)
{
    struct timeval          tv = {5, 0};
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t          *s = amqp_tcp_socket_new(c);
    if (s == NULL || amqp_socket_open_noblock(s, "127.0.0.1", port, &tv) != 0) {
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_set_rpc_timeout(c, &tv);
    amqp_set_handshake_timeout(c, &tv);
    if (amqp_login(c, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                   AMQP_SASL_METHOD_PLAIN, "guest", "guest")
            .reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    if (!rec_ok(c)) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

static void
rec_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void
rec_str(FILE *f, amqp_bytes_t b)
{
    const unsigned char *p = b.bytes;
    for (size_t i = 0; i < b.len; i++) {
        fputc(p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\t' ? p[i] : '.', f);
    }
}

/* The first x-death entry's reason, as header x-death-reason. */
static void
rec_death(FILE *f, const amqp_field_value_t *v)
{
    if (v->kind != AMQP_FIELD_KIND_ARRAY || v->value.array.num_entries < 1 ||
        v->value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE) {
        return;
    }
    const amqp_table_t *t = &v->value.array.entries[0].value.table;
    for (int i = 0; i < t->num_entries; i++) {
        if (t->entries[i].key.len == 6 &&
            memcmp(t->entries[i].key.bytes, "reason", 6) == 0 &&
            t->entries[i].value.kind == AMQP_FIELD_KIND_UTF8) {
            fputs("\tx-death-reason=", f);
            rec_str(f, t->entries[i].value.value.bytes);
        }
    }
}

static void
rec_write(FILE *f, const amqp_envelope_t *e)
{
    const amqp_basic_properties_t *p = &e->message.properties;
    rec_str(f, e->routing_key);
    fprintf(f, "\t%d\t", e->redelivered ? 1 : 0);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        rec_str(f, p->message_id);
    } else {
        fputc('-', f);
    }
    fputc('\t', f);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        rec_str(f, p->correlation_id);
    } else {
        fputc('-', f);
    }
    fputc('\t', f);
    rec_str(f, e->message.body);
    for (int i = 0; (p->_flags & AMQP_BASIC_HEADERS_FLAG) &&
                    i < p->headers.num_entries;
         i++) {
        const amqp_table_entry_t *h = &p->headers.entries[i];
        if (h->value.kind == AMQP_FIELD_KIND_UTF8) {
            fputc('\t', f);
            rec_str(f, h->key);
            fputc('=', f);
            rec_str(f, h->value.value.bytes);
        } else if (h->key.len == 7 && memcmp(h->key.bytes, "x-death", 7) == 0) {
            rec_death(f, &h->value);
        }
    }
    fputc('\n', f);
    fflush(f);
}

static int
rec_get(int port, const char *queue, FILE *out, long want, int secs)
{
    uint8_t                *seen = calloc(REC_MAX_SEQ, 1);
    long                    distinct = 0;
    time_t                  end = time(NULL) + secs, idle = time(NULL);
    amqp_connection_state_t c = NULL;
    while (seen != NULL && time(NULL) < end) {
        if (c == NULL) {
            if ((c = rec_connect(port)) == NULL) {
                usleep(200 * 1000);
                continue;
            }
            amqp_basic_qos(c, 1, 0, 500, 0);
            amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes,
                               0, 0, 0, amqp_empty_table);
            if (!rec_ok(c)) {
                amqp_destroy_connection(c);
                c = NULL;
                usleep(200 * 1000);
                continue;
            }
        }
        amqp_envelope_t e;
        struct timeval  tv = {0, 200 * 1000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &e, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (want == 0 && time(NULL) - idle >= 2) {
                break;
            }
            continue;
        }
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            amqp_destroy_connection(c);
            c = NULL;
            continue;
        }
        idle = time(NULL);
        rec_write(out, &e);
        long seq = rec_seq(e.message.body.bytes, e.message.body.len);
        if (seq >= 0 && seq < REC_MAX_SEQ && !seen[seq]) {
            seen[seq] = 1;
            distinct++;
        }
        amqp_basic_ack(c, 1, e.delivery_tag, 0);
        amqp_destroy_envelope(&e);
        if (want > 0 && distinct >= want) {
            break;
        }
    }
    int rc = seen != NULL && (want == 0 || distinct >= want) ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "amqp_rec: %ld of %ld distinct after %d s\n", distinct,
                want, secs);
    }
    if (c != NULL) {
        rec_close(c);
    }
    free(seen);
    return rc;
}

/* Waits for confirms until every tag up to last is confirmed. */
static int
rec_confirms(amqp_connection_state_t c, uint64_t last)
{
    uint64_t done = 0;
    int      nacks = 0;
    while (done < last) {
        amqp_frame_t   f;
        struct timeval tv = {10, 0};
        if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK) {
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD) {
            continue;
        }
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            done = ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            done = ((amqp_basic_nack_t *)f.payload.method.decoded)->delivery_tag;
            nacks++;
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            return -1;
        }
    }
    return nacks;
}

static int
rec_pub(int port, const char *exchange, const char *key, long first, long n,
        bool dup, const char *body)
{
    amqp_connection_state_t c = rec_connect(port);
    uint64_t                tag = 0;
    if (c == NULL) {
        fprintf(stderr, "amqp_rec: cannot connect\n");
        return 1;
    }
    amqp_confirm_select(c, 1);
    for (long i = first; rec_ok(c) && i < first + n; i++) {
        char                    id[64], text[64];
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof(p));
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012lld",
                 (long long)i % 1000000000000LL);
        snprintf(text, sizeof(text), "{\"seq\":%ld}", i);
        p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        p.message_id = amqp_cstring_bytes(id);
        for (int k = 0; k < (dup ? 2 : 1); k++) {
            if (amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange),
                                   amqp_cstring_bytes(key), 0, 0, &p,
                                   amqp_cstring_bytes(body ? body : text)) !=
                0) {
                fprintf(stderr, "amqp_rec: publish failed\n");
                amqp_destroy_connection(c);
                return 1;
            }
            tag++;
        }
    }
    int nacks = rec_confirms(c, tag);
    rec_close(c);
    if (nacks != 0) {
        fprintf(stderr, "amqp_rec: confirms: %d\n", nacks);
    }
    return nacks == 0 ? 0 : 1;
}

static int
rec_usage(void)
{
    fprintf(stderr,
            "usage: amqp_rec ping -p PORT\n"
            "       amqp_rec get -p PORT -q QUEUE -o FILE [-n COUNT] [-T SECS]\n"
            "       amqp_rec pub -p PORT -k KEY [-e EXCHANGE] [-n COUNT] "
            "[-s FIRST] [-d] [-b BODY]\n"
            "       amqp_rec check FILE KEYS [PRODUCER_LOG]\n");
    return 2;
}

int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "", *queue = NULL, *exchange = "";
    const char *key = NULL, *body = NULL;
    FILE       *out = NULL;
    long        n = 1, first = 0;
    int         port = 0, secs = 60, o;
    bool        dup = false;
    if (strcmp(cmd, "check") == 0) {
        return rec_check("amqp_rec", argc, argv);
    }
    optind = 2;
    while ((o = getopt(argc, argv, "p:q:o:n:T:k:e:db:s:")) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'q': queue = optarg; break;
        case 'o': out = fopen(optarg, "a"); break;
        case 'n': n = atol(optarg); break;
        case 'T': secs = atoi(optarg); break;
        case 'k': key = optarg; break;
        case 'e': exchange = optarg; break;
        case 'd': dup = true; break;
        case 'b': body = optarg; break;
        case 's': first = atol(optarg); break;
        default: return rec_usage();
        }
    }
    int rc = 2;
    if (port <= 0) {
        rc = rec_usage();
    } else if (strcmp(cmd, "ping") == 0) {
        amqp_connection_state_t c = rec_connect(port);
        rc = c != NULL ? 0 : 1;
        if (c != NULL) {
            rec_close(c);
        }
    } else if (strcmp(cmd, "get") == 0 && queue != NULL && out != NULL) {
        rc = rec_get(port, queue, out, n, secs);
    } else if (strcmp(cmd, "pub") == 0 && key != NULL) {
        rc = rec_pub(port, exchange, key, first, n, dup, body);
    } else {
        rc = rec_usage();
    }
    if (out != NULL) {
        fclose(out);
    }
    return rc;
}
