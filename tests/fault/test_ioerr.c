/*
 * test_ioerr - failing writes and syncs under the store, through the
 * power-loss VFS (powervfs.h), with sync: full.
 *
 * For each case (a write failing with EIO, with ENOSPC; an fsync failing
 * with EIO, with ENOSPC; and a longer outage of writes) the test makes
 * the next such operations fail and checks that the put in flight is not
 * acknowledged (the error the caller sees), that the store counted the
 * error (cairn_store_errors_total in its metrics), and that puts succeed
 * again once the disk does.  Then the power is cut: every message
 * acknowledged before, between and after the failures is there exactly
 * once, in order, integrity_check ok; the failed ones at most once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"
#include "powervfs.h"
#include "store_impl.h"

#define VFS_NAME "cairn-ioerr"
#define NMSG 4096

static char ledger_st[NMSG];
static long next_msg;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL: " __VA_ARGS__);                                      \
            printf("\n");                                                      \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static cairn_err
io_put(cairni_store *s)
{
    char           payload[32];
    long           i = next_msg++;
    cairn_envelope e;
    CHECK(i < NMSG, "ledger too small");
    cairn_envelope_init(&e);
    e.topic = cairn_str_c("io/x");
    e.key = cairn_str_c("k0");
    e.flags |= CAIRN_ENV_HAS_KEY;
    e.ts = cairn_now_ms();
    cairn_id_new(e.id);
    e.payload.len = (size_t)snprintf(payload, sizeof(payload), "m%ld", i);
    e.payload.ptr = (const uint8_t *)payload;
    ledger_st[i] = 'M';
    cairn_err rv = cairni_outbox_put(s, "sink", &e, CAIRNI_PRIO_NORMAL);
    if (rv == CAIRN_OK) {
        ledger_st[i] = 'A';
    }
    return rv;
}

static void
io_put_ok(cairni_store *s, int n, const char *when)
{
    for (int k = 0; k < n; k++) {
        cairn_err rv = io_put(s);
        CHECK(rv == CAIRN_OK, "put %s: %s", when, cairn_strerror(rv));
    }
}

/* The value of the metrics line that starts with name. */
static long long
io_metric(cairni_store *s, const char *name)
{
    cairni_buf b = {0};
    long long  v = -1;
    cairni_store_render_metrics(s, &b);
    CHECK(!b.failed && b.data != NULL, "metrics: out of memory");
    const char *p = strstr(b.data, name);
    if (p != NULL) {
        v = strtoll(p + strlen(name), NULL, 10);
    }
    cairni_buf_fini(&b);
    return v;
}

typedef struct io_case {
    const char *what;
    int         op, errnum;
    uint64_t    count; /* operations that fail */
    cairn_err   want;  /* what the put says */
    const char *metric;
} io_case;

static void
io_run(cairni_store *s, const io_case *c)
{
    long long before = io_metric(s, c->metric);
    uint64_t  failed0 = pvfs_failed();
    pvfs_fail(c->op, c->errnum, c->count);
    int refused = 0;
    /* every put fails while operations fail; bounded: each failed put
     * uses up at least one failing operation */
    for (uint64_t k = 0; k <= c->count && pvfs_failed() - failed0 < c->count;
         k++) {
        cairn_err rv = io_put(s);
        CHECK(rv != CAIRN_OK,
              "%s: a put was acknowledged while the disk"
              " failed",
              c->what);
        CHECK(rv == c->want, "%s: put said %s, want %s", c->what,
              cairn_strerror(rv), cairn_strerror(c->want));
        refused++;
    }
    pvfs_fail(0, 0, 0);
    long long after = io_metric(s, c->metric);
    CHECK(after > before, "%s: %s did not count the error (%lld -> %lld)",
          c->what, c->metric, before, after);
    io_put_ok(s, 20, "after the errors stopped");
    printf("ok - %s: %d puts refused with %s; %.*s %lld -> %lld; puts work"
           " again\n",
           c->what, refused, cairn_strerror(c->want),
           (int)strlen(c->metric) - 1, c->metric, before, after);
}

int
main(void)
{
    static const io_case cases[] = {
        {"write EIO", PVFS_OP_WRITE, EIO, 1, CAIRN_EIO,
         "cairn_store_errors_total{cause=\"io\"} "},
        {"write ENOSPC", PVFS_OP_WRITE, ENOSPC, 1, CAIRN_EFULL,
         "cairn_store_errors_total{cause=\"full\"} "},
        {"fsync EIO", PVFS_OP_SYNC, EIO, 1, CAIRN_EIO,
         "cairn_store_errors_total{cause=\"io\"} "},
        {"fsync ENOSPC", PVFS_OP_SYNC, ENOSPC, 1, CAIRN_EIO,
         "cairn_store_errors_total{cause=\"io\"} "},
        {"50 writes EIO", PVFS_OP_WRITE, EIO, 50, CAIRN_EIO,
         "cairn_store_errors_total{cause=\"io\"} "},
        {"20 fsyncs EIO", PVFS_OP_SYNC, EIO, 20, CAIRN_EIO,
         "cairn_store_errors_total{cause=\"io\"} "},
    };
    char        dir[256], path[320], err[512];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/cairn-ioerr-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/cairn.db", dir);
    CHECK(pvfs_register(VFS_NAME, 1) == 0, "cannot register the VFS");
    cairni_log_set_level(CAIRN_LOG_WARN);

    cairni_store     *s = NULL;
    cairni_store_opts o = {
        .path = path,
        .sync = CAIRNI_SYNC_FULL,
        .retry = {.initial_ms = 1, .max_ms = 4, .multiplier = 2},
        .inbox_window_ms = 3600000,
        .dest_default = {.name = "", .window = 100},
        .vfs = VFS_NAME,
    };
    CHECK(cairni_store_open(&s, &o, err, sizeof(err)) == CAIRN_OK, "open: %s",
          err);
    io_put_ok(s, 50, "before any error");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        io_run(s, &cases[i]);
        CHECK(cairni_store_maintain(s) == CAIRN_OK, "maintenance");
    }

    /* nothing acknowledged may depend on a write that was never synced */
    pvfs_cut_now();
    cairni_store_close(s);
    pvfs_report rep;
    pvfs_restart(&rep);
    ledger_counts c;
    CHECK(ledger_check(path, "sink", ledger_st, NMSG, &c, err, sizeof(err)) ==
              0,
          "%s", err);
    printf("after a power cut: %ld acked, %ld failed (%ld of them stored);"
           " lost %ld duplicated %ld unexpected %ld reordered %ld;"
           " integrity %s\n",
           c.acked, c.maybe, c.maybe_found, c.lost, c.duplicated, c.unexpected,
           c.reordered, c.integrity);
    CHECK(c.integrity_ok, "integrity_check: %s", c.integrity);
    CHECK(ledger_bad(&c) == 0, "the ledger does not match");
    CHECK(c.acked == next_msg - c.maybe, "ledger bookkeeping");

    /* and the store opens and works on what is left */
    CHECK(cairni_store_open(&s, &o, err, sizeof(err)) == CAIRN_OK, "reopen: %s",
          err);
    io_put_ok(s, 10, "after the restart");
    cairni_store_close(s);
    CHECK(ledger_check(path, "sink", ledger_st, NMSG, &c, err, sizeof(err)) ==
                  0 &&
              c.integrity_ok && ledger_bad(&c) == 0,
          "after the restart: %s", err);
    printf("ok - %ld messages acknowledged across the errors, all kept\n",
           c.acked);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[400];
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}
