/*
 * powervfs.h - a test SQLite VFS, layered over the default one, that
 * simulates power loss and failing disks under the store.
 *
 * Model: the operating system's page cache is the "disk cache" and what
 * was in a file at its last xSync is the "platter".  For each file
 * (database, WAL, rollback journal; not the -shm, which SQLite rebuilds),
 * the VFS keeps the synced contents of every 4 KiB sector written or cut
 * off by a truncate since the last xSync of that file, and its synced
 * size.  xSync itself only marks the file synced: nothing real needs to
 * reach the real disk, which keeps hundreds of cuts fast.
 *
 * Power cut: from write number N on (pvfs_arm_cut), every read, write,
 * sync, truncate and delete fails, as if the machine had stopped.  The
 * test then closes everything and calls pvfs_restart, which decides, per
 * unsynced sector, with the seeded generator: the new data made it, the
 * write was dropped (synced data back), the write is torn (its first
 * 512-byte blocks new, the rest old), or the bytes written hold garbage;
 * and per file whether an unsynced size change survived.  Only the bytes
 * written since the sync are at risk: the device has the
 * powersafe-overwrite property, as SQLite assumes of Linux filesystems
 * by default.  (Without it, a torn write may also wreck the synced bytes
 * beside it in the sector; SQLite pads each WAL commit to a sector
 * boundary, but after a cut that destroyed the padding's unsynced tail
 * the next transaction is appended inside the commit's last sector, and
 * such a device can then take a committed transaction with it.)
 *
 * I/O errors: pvfs_fail makes writes or syncs fail (EIO or ENOSPC, as the
 * unix VFS reports them) from the next one on, count times.
 *
 * Limits: directory entries are durable at once (a created or deleted
 * file stays so); there is one simulated machine per process.
 */
#ifndef CAIRN_POWERVFS_H
#define CAIRN_POWERVFS_H

#include <stdbool.h>
#include <stdint.h>

#define PVFS_SECTOR 4096

/* What pvfs_restart did to the unsynced sectors. */
typedef struct pvfs_report {
    unsigned files; /* files with unsynced changes */
    unsigned kept, dropped, torn, garbage;
    unsigned resized; /* files whose unsynced size change was undone */
} pvfs_report;

enum { PVFS_OP_WRITE = 1, PVFS_OP_SYNC = 2 };

/* Registers the VFS under name (not as the default).  0 or SQLite's
 * error. */
int pvfs_register(const char *name, uint64_t seed);

/* The power goes at the at-th write from now (1: the next); 0: never. */
void pvfs_arm_cut(uint64_t at);
/* The power goes now. */
void pvfs_cut_now(void);
bool pvfs_is_dead(void);
/* Writes since the last pvfs_arm_cut or pvfs_restart. */
uint64_t pvfs_writes(void);

/* Applies the cut to the real files (every connection must be closed)
 * and powers the machine on again.  *r may be NULL. */
void pvfs_restart(pvfs_report *r);
/* Marks every file synced (a clean start, e.g. after creating files). */
void pvfs_forget(void);

/* From the next op (PVFS_OP_*) on, count of them fail with errnum (EIO
 * or ENOSPC).  count 0: none fail any more. */
void pvfs_fail(int op, int errnum, uint64_t count);
/* How many operations pvfs_fail made fail so far. */
uint64_t pvfs_failed(void);

/* The generator the cuts use (tests may draw from it too). */
uint64_t pvfs_rand(void);

#endif /* CAIRN_POWERVFS_H */
