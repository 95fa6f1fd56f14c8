/*
 * test_powerloss - power cuts under the store, through the power-loss VFS
 * (powervfs.h).
 *
 *   test_powerloss [SEED [FULL_CUTS [NORMAL_CUTS]]]
 *
 * Each round opens the store through the VFS, lets NTHREADS producers
 * commit messages (one ordering key each; thread 0 also runs the store's
 * maintenance now and then, so checkpoints happen under the cuts) and
 * writes down every put that returned CAIRN_OK, then cuts the power at a
 * random write (a few rounds early, during the open; a round that ends
 * first is cut at its end), closes everything, lets the VFS settle the
 * unsynced sectors (kept, dropped, torn, garbage) and checks the file
 * with the ledger.  The next round reopens the same file: the store's
 * own recovery runs every time.  Every EPOCH rounds the data dir starts
 * afresh, so the checks stay short.
 *
 * sync: full   every acknowledged message is there exactly once, in
 *              order per key, nothing unexpected, integrity_check ok,
 *              and the store never judged its file damaged.
 * sync: normal integrity_check ok, nothing duplicated, unexpected or
 *              reordered; what was lost is printed, not judged.
 *
 * The seed is printed; pass it back to replay a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "powervfs.h"
#include "store_impl.h"

#define NTHREADS 3
#define PER 300  /* most messages per thread and round */
#define EPOCH 12 /* rounds per fresh data dir */
#define NMSG ((long)EPOCH * NTHREADS * PER)
#define VFS_NAME "cairn-powerloss"

typedef struct epoch {
    char dir[256], path[320];
    char st[NMSG];
    int  round; /* rounds run in this dir */
    long lost;  /* acknowledged and lost in this dir so far */
} epoch;

typedef struct prod {
    cairni_store *s;
    epoch        *ep;
    int           t;
} prod;

typedef struct totals {
    long cuts, in_open, acked, maybe_found, lost, bad;
    long kept, dropped, torn, garbage, resized;
} totals;

static void *
pl_producer(void *arg)
{
    prod *p = arg;
    char  payload[32], key[8];
    snprintf(key, sizeof(key), "k%d", p->t);
    for (long n = 0; n < PER; n++) {
        long           i = ((long)p->ep->round * NTHREADS + p->t) * PER + n;
        cairn_envelope e;
        cairn_envelope_init(&e);
        e.topic = cairn_str_c("power/x");
        e.key = cairn_str_c(key);
        e.flags |= CAIRN_ENV_HAS_KEY;
        e.ts = cairn_now_ms();
        cairn_id_new(e.id);
        e.payload.len = (size_t)snprintf(payload, sizeof(payload), "m%ld", i);
        e.payload.ptr = (const uint8_t *)payload;
        p->ep->st[i] = 'M';
        if (cairni_outbox_put(p->s, "sink", &e, CAIRNI_PRIO_NORMAL) !=
            CAIRN_OK) {
            break;
        }
        p->ep->st[i] = 'A';
        if (p->t == 0 && n % 48 == 47 &&
            cairni_store_maintain(p->s) != CAIRN_OK) {
            break;
        }
    }
    return NULL;
}

static void
pl_fresh(epoch *ep)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char                     p[400];
    if (ep->dir[0] != '\0') {
        for (size_t i = 0; i < 4; i++) {
            snprintf(p, sizeof(p), "%s%s", ep->path, sfx[i]);
            unlink(p);
        }
        /* WAL files the store set aside (a torn WAL header) */
        snprintf(p, sizeof(p), "rm -f '%s'/cairn.db.corrupt-*", ep->dir);
        if (system(p) != 0 || rmdir(ep->dir) != 0) {
            fprintf(stderr, "cannot remove %s\n", ep->dir);
        }
    }
    const char *base = getenv("TMPDIR");
    memset(ep, 0, sizeof(*ep));
    snprintf(ep->dir, sizeof(ep->dir), "%s/cairn-power-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(ep->dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(ep->path, sizeof(ep->path), "%s/cairn.db", ep->dir);
}

/* One round: open, produce until the cut, close, restart.  0: the open
 * failed because of the cut. */
static int
pl_round(epoch *ep, int sync, totals *tt)
{
    cairni_store     *s = NULL;
    char              err[512];
    pthread_t         th[NTHREADS];
    prod              pr[NTHREADS];
    cairni_store_opts o = {
        .path = ep->path,
        .sync = sync,
        .retry = {.initial_ms = 1, .max_ms = 4, .multiplier = 2},
        .inbox_window_ms = 3600000,
        .dest_default = {.name = "", .window = 100},
        .vfs = VFS_NAME,
    };
    uint64_t r = pvfs_rand();
    pvfs_arm_cut(r % 8 == 0 ? 1 + (r >> 8) % 40 : 1 + (r >> 8) % 700);
    cairn_err rv = cairni_store_open(&s, &o, err, sizeof(err));
    if (rv != CAIRN_OK) {
        if (!pvfs_is_dead()) {
            fprintf(stderr, "FAIL: store open without a cut: %s\n", err);
            exit(1);
        }
        tt->in_open++;
        return 0;
    }
    for (int t = 0; t < NTHREADS; t++) {
        pr[t] = (prod){s, ep, t};
        if (pthread_create(&th[t], NULL, pl_producer, &pr[t]) != 0) {
            exit(1);
        }
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
    }
    pvfs_cut_now(); /* a round the producers finished is cut at its end */
    cairni_store_close(s);
    return 1;
}

static int
pl_phase(const char *name, int sync, int cuts, totals *tt)
{
    epoch *ep = calloc(1, sizeof(*ep));
    char   err[512];
    if (ep == NULL) {
        return 1;
    }
    pl_fresh(ep);
    for (int cut = 0; cut < cuts; cut++) {
        if (ep->round == EPOCH) {
            pl_fresh(ep);
        }
        (void)pl_round(ep, sync, tt);
        uint64_t    at = pvfs_writes();
        pvfs_report rep;
        pvfs_restart(&rep);
        ep->round++;
        tt->cuts++;
        tt->kept += rep.kept;
        tt->dropped += rep.dropped;
        tt->torn += rep.torn;
        tt->garbage += rep.garbage;
        tt->resized += rep.resized;
        ledger_counts c;
        if (ledger_check(ep->path, "sink", ep->st, NMSG, &c, err,
                         sizeof(err)) != 0) {
            printf("FAIL: %s cut %d: %s\n", name, cut, err);
            free(ep);
            return 1;
        }
        printf("%s cut %d at write %" PRIu64 ": %u files unsynced, sectors"
               " %u kept %u dropped %u torn %u garbage, %u sizes undone;"
               " %ld acked, %ld maybe (%ld there); lost %ld duplicated %ld"
               " unexpected %ld reordered %ld; integrity %s\n",
               name, cut, at, rep.files, rep.kept, rep.dropped, rep.torn,
               rep.garbage, rep.resized, c.acked, c.maybe, c.maybe_found,
               c.lost, c.duplicated, c.unexpected, c.reordered, c.integrity);
        tt->acked = c.acked; /* of this epoch so far */
        tt->maybe_found += c.maybe_found;
        tt->lost += c.lost - ep->lost; /* lost stays lost: count it once */
        ep->lost = c.lost;
        tt->bad += c.duplicated + c.unexpected + c.reordered;
        if (!c.integrity_ok) {
            printf("FAIL: %s cut %d: integrity_check: %s\n", name, cut,
                   c.integrity);
            free(ep);
            return 1;
        }
        if (c.duplicated + c.unexpected + c.reordered != 0 ||
            (sync == CAIRNI_SYNC_FULL && c.lost != 0)) {
            printf("FAIL: %s cut %d broke the ledger (dir %s kept)\n", name,
                   cut, ep->dir);
            free(ep);
            return 1;
        }
    }
    pl_fresh(ep);
    rmdir(ep->dir);
    free(ep);
    return 0;
}

int
main(int argc, char **argv)
{
    /* Line by line: a failure's reason must reach the log even when the
     * process then ends in a sanitizer's abort. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0;
    int      full_cuts = argc > 2 ? atoi(argv[2]) : 200;
    int      normal_cuts = argc > 3 ? atoi(argv[3]) : 30;
    if (seed == 0) {
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    }
    printf("seed %" PRIu64 " (replay: test_powerloss %" PRIu64 " %d %d)\n",
           seed, seed, full_cuts, normal_cuts);
    if (pvfs_register(VFS_NAME, seed) != 0) {
        printf("FAIL: cannot register the VFS\n");
        return 1;
    }
    cairni_log_set_level(CAIRN_LOG_WARN);
    totals full = {0}, normal = {0};
    if (pl_phase("full", CAIRNI_SYNC_FULL, full_cuts, &full) != 0) {
        return 1;
    }
    cairni_store_faults f;
    cairni_store_faults_get(&f);
    printf("sync full: %ld power cuts (%ld during open); sectors %ld kept"
           " %ld dropped %ld torn %ld garbage, %ld sizes undone; lost 0 of"
           " the acknowledged; %llu torn WAL headers set aside\n",
           full.cuts, full.in_open, full.kept, full.dropped, full.torn,
           full.garbage, full.resized, (unsigned long long)f.reset_wal);
    if (f.reset_db != 0) {
        printf("FAIL: the store judged its file damaged after a power cut"
               " (%llu times)\n",
               (unsigned long long)f.reset_db);
        return 1;
    }
    if (full.dropped + full.torn + full.garbage == 0) {
        printf("FAIL: no unsynced sector was ever damaged: the cuts tested"
               " nothing\n");
        return 1;
    }
    if (pl_phase("normal", CAIRNI_SYNC_NORMAL, normal_cuts, &normal) != 0) {
        return 1;
    }
    cairni_store_faults_get(&f);
    printf("sync normal: %ld power cuts; %ld acknowledged messages lost"
           " (allowed under sync: normal); integrity ok every time\n",
           normal.cuts, normal.lost);
    if (f.reset_db != 0) {
        printf("FAIL: the store judged its file damaged after a power cut\n");
        return 1;
    }
    printf("ok - %ld + %ld power cuts\n", full.cuts, normal.cuts);
    return 0;
}
