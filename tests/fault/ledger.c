/*
 * ledger.c - checks a store file against a test's ledger (ledger.h).
 */
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <cairn/envelope.h>

#define LEDGER_KEYS 64

/* The number after prefix in (p, n); -1 if not exactly prefix digits. */
static long
ledger_num(const uint8_t *p, size_t n, char prefix)
{
    long v = 0;
    if (n < 2 || n > 12 || p[0] != (uint8_t)prefix) {
        return -1;
    }
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static void
ledger_integrity(sqlite3 *db, ledger_counts *c)
{
    sqlite3_stmt *st = NULL;
    const char   *row = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        row = (const char *)sqlite3_column_text(st, 0);
    }
    snprintf(c->integrity, sizeof(c->integrity), "%s",
             row != NULL ? row : sqlite3_errmsg(db));
    c->integrity_ok = row != NULL && strcmp(row, "ok") == 0;
    sqlite3_finalize(st);
}

/* One stored row against the ledger. */
static void
ledger_row(const void *blob, int len, const char *st, long n, uint8_t *seen,
           long last[LEDGER_KEYS], ledger_counts *c)
{
    cairn_envelope env;
    c->rows++;
    if (blob == NULL || len <= 0 ||
        cairn_envelope_decode(blob, (size_t)len, &env) != CAIRN_OK) {
        c->unexpected++;
        return;
    }
    long i = ledger_num(env.payload.ptr, env.payload.len, 'm');
    long k = ledger_num((const uint8_t *)env.key.ptr, env.key.len, 'k');
    if (i < 0 || i >= n || st[i] == 0 || k < 0 || k >= LEDGER_KEYS) {
        c->unexpected++;
        return;
    }
    if (seen[i]++ > 0) {
        c->duplicated++;
    }
    if (i <= last[k]) {
        c->reordered++;
    }
    last[k] = i;
}

static int
ledger_rows(sqlite3 *db, const char *dest, const char *st, long n,
            uint8_t *seen, ledger_counts *c)
{
    sqlite3_stmt *q = NULL;
    long          last[LEDGER_KEYS];
    int           rc;
    for (size_t k = 0; k < LEDGER_KEYS; k++) {
        last[k] = -1;
    }
    /* a cut while the schema was created leaves no table: no rows */
    rc = sqlite3_prepare_v2(db,
                            "SELECT count(*) FROM sqlite_schema"
                            " WHERE name = 'outbox'",
                            -1, &q, NULL);
    int have = rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
               sqlite3_column_int(q, 0) == 1;
    sqlite3_finalize(q);
    if (rc != SQLITE_OK || !have) {
        return rc == SQLITE_OK ? 0 : -1;
    }
    rc = sqlite3_prepare_v2(
        db, "SELECT env FROM outbox WHERE dest = ?1 ORDER BY seq", -1, &q,
        NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(q, 1, dest, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            ledger_row(sqlite3_column_blob(q, 0), sqlite3_column_bytes(q, 0),
                       st, n, seen, last, c);
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

int
ledger_check(const char *path, const char *dest, const char *st, long n,
             ledger_counts *c, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    uint8_t *seen = calloc((size_t)n + 1, 1);
    int      ret = -1;
    memset(c, 0, sizeof(*c));
    if (seen == NULL ||
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(db, 5000);
    ledger_integrity(db, c);
    if (ledger_rows(db, dest, st, n, seen, c) != 0) {
        snprintf(err, errlen, "%s: reading the outbox: %s", path,
                 sqlite3_errmsg(db));
        goto out;
    }
    for (long i = 0; i < n; i++) {
        c->acked += st[i] == 'A';
        c->maybe += st[i] == 'M';
        c->lost += st[i] == 'A' && seen[i] == 0;
        c->maybe_found += st[i] == 'M' && seen[i] != 0;
    }
    ret = 0;
out:
    sqlite3_close(db);
    free(seen);
    return ret;
}

long
ledger_bad(const ledger_counts *c)
{
    return c->lost + c->duplicated + c->unexpected + c->reordered;
}
