/*
 * outbox_check - reads a destination's whole outbox the way a bridge
 * would (through the drain API, so the order checked is the order a
 * bridge gets) and compares it with a producer's log:
 *
 *   outbox_check DB DEST LOG [TOPIC]
 *
 * With TOPIC, only the records of that topic are checked.
 * Passes (exit 0) when every message the producer saw accepted ("A") is
 * there exactly once, nothing appears that the producer saw refused or
 * never sent, "maybe" messages ("M") appear at most once, and within each
 * ordering key the seq numbers increase.  Prints what it found; its last
 * line is the ledger:
 *
 *   outbox DEST: N records; producer: A accepted, M maybe; lost L,
 *   duplicated D, unexpected U, reordered O
 *
 * lost: accepted, not there; duplicated: there more than once;
 * unexpected: there, but refused or never sent; reordered: a seq not
 * above the one before it in its key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct check {
    char    *state; /* per seq: 'A', 'R', 'M' or 0 (never sent) */
    uint8_t *seen;  /* per seq: times found */
    long     n;
    long     last[256]; /* per key: last seq, -1 */
    long     found, duplicated, unexpected, reordered;
} check;

/* The decimal number after the first ':' of (p, n); -1 if none.  The
 * bytes are not NUL-terminated, so no atol. */
static long
check_num(const uint8_t *p, size_t n, size_t from)
{
    long v = -1;
    for (size_t i = from; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        v = (v < 0 ? 0 : v * 10) + (p[i] - '0');
    }
    return v;
}

static long
check_seq(const cairn_envelope *env)
{
    const uint8_t *c = memchr(env->payload.ptr, ':', env->payload.len);
    return c ? check_num(env->payload.ptr, env->payload.len,
                         (size_t)(c - env->payload.ptr) + 1)
             : -1;
}

static int
check_load(check *c, const char *path)
{
    FILE *f = fopen(path, "r");
    char  st;
    long  i;
    if (f == NULL) {
        return -1;
    }
    c->n     = 0;
    c->state = NULL;
    while (fscanf(f, " %c %ld", &st, &i) == 2) {
        if (i >= c->n) {
            long  nn = i + 1024;
            char *ns = realloc(c->state, (size_t)nn);
            if (ns == NULL) {
                fclose(f);
                return -1;
            }
            memset(ns + c->n, 0, (size_t)(nn - c->n));
            c->state = ns;
            c->n     = nn;
        }
        c->state[i] = st;
    }
    fclose(f);
    c->seen = calloc((size_t)c->n + 1, 1);
    return c->seen ? 0 : -1;
}

static void
check_record(check *c, const cairn_record *r)
{
    long seq = check_seq(&r->env);
    long key = check_num((const uint8_t *)r->env.key.ptr, r->env.key.len, 1);
    key      = key < 0 ? 0 : key & 255;
    c->found++;
    if (seq < 0 || seq >= c->n || c->state[seq] == 0 || c->state[seq] == 'R') {
        printf("never accepted: seq %ld\n", seq);
        c->unexpected++;
        return;
    }
    if (c->seen[seq]++ > 0) {
        printf("duplicate: seq %ld\n", seq);
        c->duplicated++;
    }
    if (seq <= c->last[key]) {
        printf("order: seq %ld after %ld in key k%ld\n", seq, c->last[key],
               key);
        c->reordered++;
    }
    c->last[key] = seq;
}

int
main(int argc, char **argv)
{
    cairni_store     *s;
    cairni_drain     *d;
    char              err[512];
    check             c = {0};
    cairn_record      recs[64];
    cairni_store_opts o = {.path = argv[1],
                           .retry = {.initial_ms = 1, .max_ms = 1,
                                     .multiplier = 1},
                           .inbox_window_ms = 1000,
                           .dest_default = {.name = "",
                                            .max_bytes = 1ull << 40,
                                            .max_messages = 1ll << 40,
                                            .window = 1u << 30}};
    const char *topic = argc == 5 ? argv[4] : NULL;
    if (argc < 4 || argc > 5 || check_load(&c, argv[3]) != 0) {
        fprintf(stderr, "usage: outbox_check DB DEST LOG [TOPIC]\n");
        return 2;
    }
    memset(c.last, 0xff, sizeof(c.last));
    if (cairni_store_open(&s, &o, err, sizeof(err)) != CAIRN_OK ||
        cairni_drain_open(s, argv[2], &d) != CAIRN_OK) {
        fprintf(stderr, "outbox_check: %s\n", err);
        return 1;
    }
    size_t n;
    do {
        n = 0;
        if (cairni_drain_next(d, recs, 64, 0, &n) != CAIRN_OK && n == 0) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (topic == NULL ||
                (recs[i].env.topic.len == strlen(topic) &&
                 memcmp(recs[i].env.topic.ptr, topic, strlen(topic)) == 0)) {
                check_record(&c, &recs[i]); /* never acked: nothing deleted */
            }
            cairni_record_fini(&recs[i]);
        }
    } while (n > 0);
    long accepted = 0, missing = 0, maybe = 0;
    for (long i = 0; i < c.n; i++) {
        accepted += c.state[i] == 'A';
        maybe += c.state[i] == 'M';
        if (c.state[i] == 'A' && c.seen[i] == 0) {
            if (missing++ < 10) {
                printf("lost: seq %ld was accepted\n", i);
            }
        }
    }
    printf("outbox %s: %ld records; producer: %ld accepted, %ld maybe; "
           "lost %ld, duplicated %ld, unexpected %ld, reordered %ld\n",
           argv[2], c.found, accepted, maybe, missing, c.duplicated,
           c.unexpected, c.reordered);
    cairni_drain_close(d);
    cairni_store_close(s);
    free(c.state);
    free(c.seen);
    return missing + c.duplicated + c.unexpected + c.reordered == 0 ? 0 : 1;
}
