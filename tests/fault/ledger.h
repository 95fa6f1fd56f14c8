/*
 * ledger.h - the C fault tests' ledger: what each put was told, checked
 * against what a database file holds.
 *
 * Message i has payload "m<i>" and ordering key "k<key>".  The ledger
 * holds per message 0 (never tried), 'A' (the put returned CAIRN_OK:
 * acknowledged) or 'M' (tried, the put failed or never returned: may or
 * may not be stored).  ledger_check opens the file with SQLite's default
 * VFS (recovering its WAL, never checkpointing it, so the file stays as
 * the test left it), runs PRAGMA integrity_check, reads the destination's
 * rows in seq order and counts:
 *   lost        acknowledged, not there
 *   duplicated  there more than once
 *   unexpected  there, never tried (or not a message of this ledger)
 *   reordered   within an ordering key, i not increasing in seq order
 */
#ifndef CAIRN_FAULT_LEDGER_H
#define CAIRN_FAULT_LEDGER_H

#include <stddef.h>

typedef struct ledger_counts {
    long acked, maybe, rows;
    long maybe_found; /* 'M' messages that are there */
    long lost, duplicated, unexpected, reordered;
    int  integrity_ok;
    char integrity[256]; /* the first line of integrity_check */
} ledger_counts;

/* 0 when the check ran (its findings are in *c), -1 when the file could
 * not be read (err says why). */
int ledger_check(const char *path, const char *dest, const char *st, long n,
                 ledger_counts *c, char *err, size_t errlen);

/* The four anomalies summed; 0: the store kept its promise. */
long ledger_bad(const ledger_counts *c);

#endif /* CAIRN_FAULT_LEDGER_H */
