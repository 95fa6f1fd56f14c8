/*
 * mqtt_rec - the stand-in cloud of the MQTT integration tests: records
 * what a broker delivers, and checks a recording.
 *
 *   mqtt_rec sub -p PORT -t FILTER [-t FILTER...] -o FILE [-q QOS] [-V 5|311]
 *                [-i CLIENT_ID] [-n COUNT] [-T SECONDS]
 *       Subscribes with a persistent session (clean session off; on MQTT
 *       5 a session expiry of a day) and appends one line per message to
 *       FILE, flushed at once:
 *           TOPIC <tab> QOS <tab> CAIRN_ID|- <tab> CORR_HEX|- <tab> PAYLOAD
 *       (bytes of the payload outside printable ASCII become '.').  Reconnects
 * on its own when the broker goes away.  Exits 0 once COUNT distinct "seq"
 * numbers were seen (COUNT 0: never), 1 after SECONDS.
 *
 *   mqtt_rec pub -p PORT -t TOPIC -n COUNT [-s FIRST] [-q QOS] [-i ID]
 *                [-T SECONDS]
 *       Publishes COUNT messages (MQTT 5) with payloads {"seq":N}, N from
 *       FIRST (default 1), each with the user property cairn-id set to an
 *       id made from N alone, so a second run sends the same commands
 *       again with the same ids (a cloud retrying).  Exits 0 once the
 *       broker acknowledged every one, 1 after SECONDS.
 *
 *   mqtt_rec check FILE KEYS [PRODUCER_LOG]
 *       Passes when: every seq the producer log marks accepted ("A i") is
 *       in FILE (without a log: every seq below the largest seen); a seq
 *       seen more than once always carries the same cairn-id (when it has
 *       one); and within each key (seq % KEYS) the first arrivals come in
 *       increasing seq order.  Prints what it found.
 *
 * Every wait is bounded; the tool never blocks past -T.
 */
#define _GNU_SOURCE

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "rec_check.h"

#define REC_MAX_FILTERS 8

typedef struct rec {
    FILE       *out;
    const char *filters[REC_MAX_FILTERS];
    int         nfilters;
    int         qos;
    bool        v5;
    long        want;
    long        distinct;
    uint8_t    *seen; /* per seq */
} rec;

static void
rec_on_connect(struct mosquitto *m, void *arg, int rc, int flags,
               const mosquitto_property *props)
{
    rec *r = arg;
    for (int i = 0; rc == 0 && i < r->nfilters; i++) {
        mosquitto_subscribe(m, NULL, r->filters[i], r->qos);
    }
}

static void
rec_write(rec *r, const struct mosquitto_message *msg, const char *id,
          const void *corr, uint16_t corr_len)
{
    fprintf(r->out, "%s\t%d\t%s\t", msg->topic, msg->qos, id ? id : "-");
    for (uint16_t i = 0; i < corr_len; i++) {
        fprintf(r->out, "%02x", ((const uint8_t *)corr)[i]);
    }
    fprintf(r->out, "%s\t", corr_len ? "" : "-");
    const unsigned char *p = msg->payload;
    for (int i = 0; i < msg->payloadlen; i++) {
        fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.', r->out);
    }
    fputc('\n', r->out);
    fflush(r->out);
}

static void
rec_on_message(struct mosquitto *m, void *arg,
               const struct mosquitto_message *msg,
               const mosquitto_property       *props)
{
    rec                      *r = arg;
    char                     *name = NULL, *value = NULL, *id = NULL;
    void                     *corr = NULL;
    uint16_t                  clen = 0;
    const mosquitto_property *p = props;
    for (bool skip = false;
         (p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY,
                                                  &name, &value, skip));
         skip = true) {
        if (id == NULL && strcmp(name, "cairn-id") == 0) {
            id = strdup(value);
        }
        free(name);
        free(value);
    }
    mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr,
                                   &clen, false);
    rec_write(r, msg, id, corr, clen);
    long seq = rec_seq(msg->payload, (size_t)msg->payloadlen);
    if (seq >= 0 && seq < REC_MAX_SEQ && !r->seen[seq]) {
        r->seen[seq] = 1;
        r->distinct++;
    }
    free(id);
    free(corr);
}

static int
rec_sub_args(rec *r, int argc, char **argv, int *port, const char **id,
             int *secs)
{
    int c;
    while ((c = getopt(argc, argv, "p:t:o:q:V:i:n:T:")) != -1) {
        switch (c) {
        case 'p':
            *port = atoi(optarg);
            break;
        case 't':
            if (r->nfilters < REC_MAX_FILTERS) {
                r->filters[r->nfilters++] = optarg;
            }
            break;
        case 'o':
            r->out = fopen(optarg, "a");
            break;
        case 'q':
            r->qos = atoi(optarg);
            break;
        case 'V':
            r->v5 = strcmp(optarg, "311") != 0;
            break;
        case 'i':
            *id = optarg;
            break;
        case 'n':
            r->want = atol(optarg);
            break;
        case 'T':
            *secs = atoi(optarg);
            break;
        default:
            return -1;
        }
    }
    return r->out != NULL && r->nfilters > 0 && *port > 0 ? 0 : -1;
}

static int
rec_sub(int argc, char **argv)
{
    rec                 r = {.qos = 1, .v5 = true};
    int                 port = 0, secs = 60;
    const char         *id = "mqtt-rec";
    mosquitto_property *props = NULL;
    if (rec_sub_args(&r, argc, argv, &port, &id, &secs) != 0 ||
        (r.seen = calloc(REC_MAX_SEQ, 1)) == NULL) {
        fprintf(stderr, "usage: mqtt_rec sub -p PORT -t FILTER -o FILE "
                        "[-q QOS] [-V 5|311] [-i ID] [-n COUNT] [-T SECS]\n");
        return 2;
    }
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, false, &r);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                         r.v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 1000);
    mosquitto_connect_v5_callback_set(m, rec_on_connect);
    mosquitto_message_v5_callback_set(m, rec_on_message);
    if (r.v5) {
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     86400);
    }
    time_t end = time(NULL) + secs;
    bool up = mosquitto_connect_bind_v5(m, "127.0.0.1", port, 5, NULL, props) ==
              MOSQ_ERR_SUCCESS;
    while (time(NULL) < end && (r.want == 0 || r.distinct < r.want)) {
        if (!up) {
            usleep(200 * 1000);
            up = mosquitto_reconnect(m) == MOSQ_ERR_SUCCESS;
            continue;
        }
        up = mosquitto_loop(m, 100, 1) == MOSQ_ERR_SUCCESS;
    }
    int rc = (r.want == 0 || r.distinct >= r.want) ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "mqtt_rec: %ld of %ld distinct after %d s\n",
                r.distinct, r.want, secs);
    }
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_property_free_all(&props);
    mosquitto_lib_cleanup();
    fclose(r.out);
    free(r.seen);
    return rc;
}

/* ---- pub
 * --------------------------------------------------------------------- */

typedef struct pubst {
    long acked;
} pubst;

static void
pub_on_publish(struct mosquitto *m, void *arg, int mid, int reason,
               const mosquitto_property *props)
{
    pubst *p = arg;
    p->acked += reason < 128; /* a refused publish stays unacked */
}

static int
rec_pub(int argc, char **argv)
{
    int         c, port = 0, qos = 1, secs = 60;
    long        count = 0, first = 1;
    const char *topic = NULL, *cid = "mqtt-rec-pub";
    pubst       st = {0};
    while ((c = getopt(argc, argv, "p:t:n:s:q:i:T:")) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 't': topic = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': first = atol(optarg); break;
        case 'q': qos = atoi(optarg); break;
        case 'i': cid = optarg; break;
        case 'T': secs = atoi(optarg); break;
        default: topic = NULL; break;
        }
    }
    if (topic == NULL || port <= 0 || count <= 0 || qos < 1 || qos > 2) {
        fprintf(stderr, "usage: mqtt_rec pub -p PORT -t TOPIC -n COUNT "
                        "[-s FIRST] [-q 1|2] [-i ID] [-T SECS]\n");
        return 2;
    }
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(cid, true, &st);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_publish_v5_callback_set(m, pub_on_publish);
    time_t end = time(NULL) + secs;
    bool   up = mosquitto_connect_bind_v5(m, "127.0.0.1", port, 5, NULL,
                                          NULL) == MOSQ_ERR_SUCCESS;
    long   sent = 0;
    /* Clean session: after a reconnect, whatever was not acked is sent
     * again from the first unacked on (at least once, same ids). */
    while (time(NULL) < end && st.acked < count) {
        if (!up) {
            usleep(200 * 1000);
            up = mosquitto_reconnect(m) == MOSQ_ERR_SUCCESS;
            sent = st.acked;
            continue;
        }
        while (up && sent < count && sent - st.acked < 100) {
            char                payload[48], id[40];
            mosquitto_property *props = NULL;
            long                n = first + sent;
            int len = snprintf(payload, sizeof(payload), "{\"seq\":%ld}", n);
            snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012lx",
                     (unsigned long)n);
            mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY,
                                               "cairn-id", id);
            up = mosquitto_publish_v5(m, NULL, topic, len, payload, qos, false,
                                      props) == MOSQ_ERR_SUCCESS;
            mosquitto_property_free_all(&props);
            sent += up;
        }
        up = up && mosquitto_loop(m, 100, 1) == MOSQ_ERR_SUCCESS;
    }
    int rc = st.acked >= count ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "mqtt_rec: %ld of %ld acked after %d s\n", st.acked,
                count, secs);
    }
    mosquitto_disconnect(m);
    mosquitto_loop(m, 100, 1);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return rc;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "sub") == 0) {
        return rec_sub(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        return rec_check("mqtt_rec", argc, argv);
    }
    if (argc > 1 && strcmp(argv[1], "pub") == 0) {
        return rec_pub(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: mqtt_rec sub ... | mqtt_rec pub ... | "
                    "mqtt_rec check ...\n");
    return 2;
}
