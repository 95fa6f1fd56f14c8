/*
 * rec_check.c - the seq of a payload and the check of a recording, shared
 * by the integration tests' recorders (see rec_check.h).
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_check.h"

long
rec_seq(const char *p, size_t len)
{
    static const char key[] = "\"seq\":";
    const char       *s = memmem(p, len, key, sizeof(key) - 1);
    return s ? atol(s + sizeof(key) - 1) : -1;
}

typedef struct chk {
    char (*ids)[40]; /* per seq: the id first seen */
    long *count;     /* per seq */
    long  last[1024];
    long  max, lines, dups, bad;
} chk;

static void
chk_line(chk *c, char *line, long keys)
{
    char *f[5];
    int   n = 0;
    for (char *s = line; n < 5 && s != NULL; n++) {
        f[n] = s;
        s = strchr(s, '\t');
        if (s != NULL) {
            *s++ = '\0';
        }
    }
    long seq = n == 5 ? rec_seq(f[4], strlen(f[4])) : -1;
    if (seq < 0 || seq >= REC_MAX_SEQ) {
        return;
    }
    c->lines++;
    c->max = seq > c->max ? seq : c->max;
    if (c->count[seq]++ > 0) {
        c->dups++;
        if (strcmp(c->ids[seq], f[2]) != 0) {
            printf("seq %ld again with another id: %s, then %s\n", seq,
                   c->ids[seq], f[2]);
            c->bad++;
        }
        return;
    }
    snprintf(c->ids[seq], sizeof(c->ids[seq]), "%s", f[2]);
    long k = seq % keys;
    if (seq <= c->last[k]) {
        printf("order: key %ld got seq %ld after %ld\n", k, seq, c->last[k]);
        c->bad++;
    }
    c->last[k] = seq;
}

static void
chk_want(const chk *c, long i, long *want, long *missing)
{
    if (i < 0 || i >= REC_MAX_SEQ) {
        return;
    }
    (*want)++;
    if (c->count[i] == 0 && (*missing)++ < 10) {
        printf("missing: seq %ld\n", i);
    }
}

/* Seqs the producer saw accepted (all up to the largest seen, without a
 * producer log): every one must have arrived. */
static long
chk_missing(const chk *c, const char *plog)
{
    long  missing = 0, want = 0, i;
    char  st;
    FILE *f;
    if (plog == NULL) {
        for (i = 0; i <= c->max; i++) {
            chk_want(c, i, &want, &missing);
        }
    } else if ((f = fopen(plog, "r")) != NULL) {
        while (fscanf(f, " %c %ld", &st, &i) == 2) {
            if (st == 'A') {
                chk_want(c, i, &want, &missing);
            }
        }
        fclose(f);
    } else {
        printf("cannot read %s\n", plog);
        return 1;
    }
    printf("%ld expected, %ld missing\n", want, missing);
    return missing;
}

int
rec_check(const char *prog, int argc, char **argv)
{
    static char line[65536];
    chk         c = {.max = -1};
    long        keys = argc > 3 ? atol(argv[3]) : 0;
    FILE       *f = argc > 2 ? fopen(argv[2], "r") : NULL;
    if (f == NULL || keys < 1 || keys > 1024) {
        fprintf(stderr, "usage: %s check FILE KEYS [PRODUCER_LOG]\n", prog);
        if (f != NULL) {
            fclose(f);
        }
        return 2;
    }
    c.ids = calloc(REC_MAX_SEQ, sizeof(*c.ids));
    c.count = calloc(REC_MAX_SEQ, sizeof(*c.count));
    for (long k = 0; k < 1024; k++) {
        c.last[k] = -1;
    }
    while (c.ids && c.count && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        chk_line(&c, line, keys);
    }
    fclose(f);
    long missing = chk_missing(&c, argc > 4 ? argv[4] : NULL);
    printf("%ld messages, %ld duplicates (same id), %ld errors\n", c.lines,
           c.dups, c.bad);
    free(c.ids);
    free(c.count);
    return missing == 0 && c.bad == 0 && c.lines > 0 ? 0 : 1;
}
