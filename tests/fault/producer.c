/*
 * producer - publishes numbered messages through cairnd's admin socket and
 * writes down, for each one, whether cairnd accepted it.  It keeps going
 * across daemon crashes: a request whose reply never came is "maybe" (it
 * may or may not have been committed), and the producer moves on to the
 * next number once the daemon is back.
 *
 *   producer URL TOPIC COUNT KEYS LOG
 *
 * Message i has payload "{\"seq\":i}" and ordering key "k<i % KEYS>".
 * LOG gets one line per message: "A i" accepted, "R i" refused (an
 * error reply, e.g. full), "M i" maybe.  Exits 0 once COUNT messages were
 * tried; gives up after 60 s without a daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

static int
prod_arg(nng_msg *m, const char *s)
{
    size_t  len  = strlen(s);
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 8), (uint8_t)len};
    return nng_msg_append(m, h, 4) || nng_msg_append(m, s, len);
}

static int
prod_open(nng_socket *s, const char *url)
{
    for (int tries = 0; tries < 6000; tries++) {
        if (nng_req0_open(s) != 0) {
            return -1;
        }
        nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 5000);
        nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 5000);
        nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        if (nng_dial(*s, url, NULL, 0) == 0) {
            return 0;
        }
        nng_close(*s);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* 'A', 'R' or 'M' for message i. */
static char
prod_one(nng_socket s, const char *topic, long i, long keys)
{
    char     payload[64], key[32];
    nng_msg *m;
    snprintf(payload, sizeof(payload), "{\"seq\":%ld}", i);
    snprintf(key, sizeof(key), "k%ld", i % keys);
    if (nng_msg_alloc(&m, 0) != 0 || prod_arg(m, "pub") ||
        prod_arg(m, topic) || prod_arg(m, payload) || prod_arg(m, key)) {
        return 'M';
    }
    if (nng_sendmsg(s, m, 0) != 0) {
        nng_msg_free(m);
        return 'M'; /* not sent at all, but the caller cannot tell */
    }
    if (nng_recvmsg(s, &m, 0) != 0) {
        return 'M';
    }
    const uint8_t *b  = nng_msg_body(m);
    char           st = nng_msg_len(m) >= 4 && !(b[0] | b[1] | b[2] | b[3])
                            ? 'A'
                            : 'R';
    nng_msg_free(m);
    return st;
}

int
main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: producer URL TOPIC COUNT KEYS LOG\n");
        return 2;
    }
    long  count = atol(argv[3]), keys = atol(argv[4]);
    FILE *log   = fopen(argv[5], "w");
    nng_socket s;
    if (log == NULL || keys < 1 || prod_open(&s, argv[1]) != 0) {
        fprintf(stderr, "producer: cannot start\n");
        return 1;
    }
    for (long i = 0; i < count; i++) {
        char st = prod_one(s, argv[2], i, keys);
        fprintf(log, "%c %ld\n", st, i);
        fflush(log);
        if (st == 'M') { /* the daemon went away: wait for the next one */
            nng_close(s);
            if (prod_open(&s, argv[1]) != 0) {
                fprintf(stderr, "producer: no daemon for 60 s\n");
                return 1;
            }
        }
    }
    nng_close(s);
    fclose(log);
    return 0;
}
