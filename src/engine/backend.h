/*
 * backend.h -- the storage backend layer (private to the engine and its tests).
 *
 * A backend is a flat byte array with positional read/write, a durability
 * barrier (sync) and optionally a stable memory view (map).  Only backends
 * touch files.  Three exist:
 *   - file:  pread/pwrite/fdatasync on one file, an advisory lock (flock) so a
 *            second process gets SDB_ELOCKED, and read-only mmap segments when
 *            use_mmap is set;
 *   - mem:   growable segmented memory, for sdb_open_memory and tests;
 *   - fault: wraps a mem "disk" and models a crash for tests: writes since the
 *            last sync are volatile; at the Nth write or sync the backend
 *            "crashes" (that call and every later one fail with SDB_EIO) and
 *            backend_fault_image() returns what the disk would hold after the
 *            power cut (unsynced writes dropped or kept, the last write torn).
 */
#ifndef SDB_BACKEND_H
#define SDB_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "streamdb.h"

typedef struct sdb_backend sdb_backend_t;

struct sdb_backend {
    /* Reads len bytes at off into buf.  Bytes beyond the end read as zero.
     * Returns 0 or SDB_EIO. */
    int (*read)(sdb_backend_t *be, uint64_t off, void *buf, size_t len);
    /* Writes len bytes at off, growing the array as needed.
     * Returns 0, SDB_EIO or SDB_ENOSPC. */
    int (*write)(sdb_backend_t *be, uint64_t off, const void *buf, size_t len);
    /* Makes every completed write durable.  Returns 0 or SDB_EIO. */
    int (*sync)(sdb_backend_t *be);
    /* Current size in bytes. */
    uint64_t (*size)(sdb_backend_t *be);
    /* Returns a pointer to bytes [off, off+len) that stays valid until close
     * and reflects later writes, or NULL when the backend cannot (no mmap, a
     * range across a segment boundary or beyond the end).  May be NULL. */
    const uint8_t *(*map)(sdb_backend_t *be, uint64_t off, size_t len);
    /* Hints that [off, off+len) was written and may be sent to the disk now,
     * so that a later sync has less to wait for.  Optional (may be NULL). */
    void (*writeback)(sdb_backend_t *be, uint64_t off, uint64_t len);
    /* Hints that the mapped bytes [off, off+len) will not be read again soon:
     * their memory may leave the process's resident set (the data stays in
     * the OS page cache).  Optional (may be NULL). */
    void (*release)(sdb_backend_t *be, uint64_t off, uint64_t len);
    /* Releases everything (the file lock too).  Never fails. */
    void (*close)(sdb_backend_t *be);
    /* Writes into buf[cap] what the last failed system call was and the
     * system's error ("pwrite at offset 8192: File too large") and returns
     * 1, or returns 0 when none has failed.  Optional (may be NULL). */
    int (*last_error)(sdb_backend_t *be, char *buf, size_t cap);
};

/* Opens or creates path (mode 0600) with an exclusive advisory lock.
 * use_mmap enables map().  Stores the backend in *out.  Errors: SDB_ELOCKED,
 * SDB_EPERM (EACCES/EPERM from open), SDB_EIO, SDB_EINVAL, SDB_ENOMEM. */
int backend_file_open(const char *path, int use_mmap, sdb_backend_t **out);

/* As backend_file_open without mmap, for a file that must exist already
 * (sdb_check): SDB_EINVAL when it does not. */
int backend_file_open_existing(const char *path, sdb_backend_t **out);

/* Returns a new empty memory backend, or NULL when out of memory. */
sdb_backend_t *backend_mem_new(void);

/* Returns a new memory backend holding a copy of len bytes (NULL on ENOMEM). */
sdb_backend_t *backend_mem_from(const void *data, size_t len);

/* Copies the whole content of a memory backend into a malloc()ed buffer. */
int backend_mem_dump(sdb_backend_t *be, uint8_t **data, size_t *len);

/* ---- Fault injection (tests) ---- */

typedef struct {
    uint64_t crash_at_write;   /* 1-based index of the write that crashes; 0 = never */
    uint64_t crash_at_sync;    /* 1-based index of the sync that crashes; 0 = never */
    int keep_unsynced;         /* at the crash, unsynced writes survive (1), are lost (0), or
                                  a pseudo-random subset of them survives (2, from seed):
                                  a disk that reorders writes between two syncs */
    int tear_last;             /* the crashing write lands half (first half of its bytes) */
    uint32_t seed;             /* for keep_unsynced 2 (set it with a designated initializer) */
    uint32_t sync_delay_ms;    /* each sync first sleeps this long (a slow disk: lets
                                  concurrent commits queue up behind it) */
} fault_plan_t;

/* Wraps a new empty disk (or a copy of `initial` when not NULL). */
sdb_backend_t *backend_fault_new(const fault_plan_t *plan, const void *initial, size_t len);

/* Makes every call fail with err (0 = stop failing) without crashing. */
void backend_fault_set_error(sdb_backend_t *be, int err);

/* How many calls have failed so far because of the crash or the error set
 * with backend_fault_set_error: a fault-injection test asserts that it is
 * above 0, i.e. that the fault it is about really fired. */
uint64_t backend_fault_injected(sdb_backend_t *be);

/* Counts of write and sync calls so far; crashed is 1 once the crash fired. */
void backend_fault_counts(sdb_backend_t *be, uint64_t *writes, uint64_t *syncs, int *crashed);

/* The disk as it would be found after a power cut now: the durable bytes,
 * plus unsynced writes when keep_unsynced, plus the torn crashing write.
 * Returns a malloc()ed copy (caller frees).  0 or SDB_ENOMEM. */
int backend_fault_image(sdb_backend_t *be, uint8_t **data, size_t *len);

/* Test hook: with on, databases opened afterwards in this process write
 * their checkpoints in the foreground, inside the commit that triggers one
 * (as before background checkpoints existed), so that the order of writes
 * depends only on the calls made: tests that crash at the Nth write rely on
 * it.  Off (the default): in a background thread (journal_bg_start). */
void sdb_test_foreground_checkpoints(int on);

/* Test hook: databases opened afterwards end each slice of a background
 * checkpoint's encoding after this many entries and yield the CPU (0, the
 * default: after about 0.1 ms), so that small test states are encoded in
 * many slices with commits in between. */
void sdb_test_checkpoint_slice(unsigned entries);

/* Test and benchmark hooks on one database: how many checkpoints became the
 * durable state, written in the foreground and in the background (either
 * pointer may be NULL); whether a background one runs; and a request that
 * the next commit start a background checkpoint whatever the journal's size
 * (ignored while one runs). */
void sdb_test_checkpoint_counts(sdb_t *db, uint64_t *foreground, uint64_t *background);
int sdb_test_checkpoint_running(sdb_t *db);
/* With on, a background checkpoint of db waits after each slice until it is
 * called with 0 (or the handle closes); sdb_test_checkpoint_pausing() is 1
 * while it waits.  Tests then commit at a known point of its encoding. */
void sdb_test_checkpoint_pause(sdb_t *db, int on);
int sdb_test_checkpoint_pausing(sdb_t *db);
void sdb_test_checkpoint_soon(sdb_t *db);

/* Test hooks on the engine's monotonic clock (util_mono_ns), which times
 * lazy-mode syncs (durable 0: at most one a second): with on, the clock
 * stops at its current reading for every handle of the process; with 0 it
 * runs again from where it stood.  sdb_test_clock_advance() moves it
 * forward by ns, stopped or not.  Waits and time budgets (the commit
 * leader's gathering, checkpoint slices) keep the real clock. */
void sdb_test_clock_freeze(int on);
void sdb_test_clock_advance(uint64_t ns);

/* Opens a database on an already-open backend, taking ownership of be (it
 * is closed on failure too).  As sdb_open otherwise. */
int sdb_open_backend(sdb_backend_t *be, const sdb_config_t *cfg, sdb_t **out);

#endif
