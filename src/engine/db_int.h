/*
 * db_int.h -- the engine's in-memory state and commit machinery (private).
 *
 * Design of commits (numbered invariants; docs/FORMAT.md has the bytes):
 *  1. Copy-on-write: no commit overwrites a page that the durable state
 *     references.  Document data goes to free pages; the durable state is the
 *     checkpoint named by the newest valid header slot plus the journal groups
 *     chained after it.
 *  2. A commit group is acknowledged only after one sync that covers its
 *     journal pages and the data pages of its documents (the leader writes the
 *     batch's last data runs itself, merged, before the group).  Replay
 *     applies only complete groups (every page's CRC, sequence, index and
 *     nonce check out), and the last one only if its data verifies.  In lazy
 *     mode a group is written only right before the sync that covers it and
 *     its data, so it is the journal's last until then (commit.c persist);
 *     its pages are reserved before each batch in it is acknowledged
 *     (journal_reserve), so that writing it cannot fail for lack of space.
 *  3. The in-memory state changes only by apply_records(), both live (after a
 *     group is durable, or buffered in lazy mode) and at replay, so that the
 *     recovered state equals the acknowledged one.
 *  4. Exactly one thread, the group-commit leader, plans and applies records;
 *     it reads the state without a lock and takes the state write lock only
 *     to apply.  Readers take the read lock.  Lock order: state -> fs (every
 *     lock of the engine: docs/ARCHITECTURE.md section 6).
 *  5. Pages a commit frees (dropped versions) return to the free set only when
 *     that commit is durable and no open reader still holds the version.
 *  6. A background checkpoint (journal_bg_start) reads the state only under
 *     the read lock, in slices, and writes nothing but its own pages and
 *     doc_t.cp_mark (no other code reads that field while it runs).  Its
 *     stream may catch the groups applied meanwhile in part; the slot it
 *     switches to says which groups replay must apply tolerantly
 *     (apply_replay), and the switch itself runs as a commit of its own.
 */
#ifndef SDB_DB_INT_H
#define SDB_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "streamdb.h"
#include "engine/backend.h"
#include "engine/freespace.h"
#include "engine/page.h"
#include "engine/pathidx.h"
#include "engine/slab.h"

typedef struct {
    pgno_t start;
    uint32_t count;
} extent_t;

typedef struct docver {
    uint64_t version, size;
    uint32_t crc;
    int64_t modified_ms;
    uint8_t blob[16];             /* stamp of its data pages */
    uint32_t nextents;
    extent_t *ext;                /* &ext1 when there is one extent */
    extent_t ext1;
    _Atomic int refs;             /* 1 while in its document + 1 per open reader */
    uint64_t retire_seq;          /* journal sequence of the record that dropped it */
    struct docver *older;
} docver_t;

typedef struct doc {
    sdb_id_t id;
    int64_t created_ms;
    docver_t *cur;                /* newest; ->older goes back in time */
    pathidx_key_t **paths;        /* &path1 while cap is 1 */
    pathidx_key_t *path1;
    uint32_t npaths, cap;
    uint64_t cp_mark;             /* checkpoint encoding: written in generation cp_mark */
    struct doc *hnext;
} doc_t;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

typedef struct pfree {
    uint64_t seq;
    uint32_t n;
    extent_t *ext;                /* &ext1 when there is one extent */
    extent_t ext1;
    struct pfree *next;
} pfree_t;

typedef struct commit_req commit_req_t;

struct sdb {
    sdb_config_t cfg;
    sdb_backend_t *be;
    uint32_t page_size, cap;       /* cap: data bytes per page */
    unsigned long crc_op_full;     /* crc32_combine_gen(cap): combines a full page's CRC fast */
    uint8_t file_id[16];
    _Atomic int quick;
    _Atomic int fatal;             /* sticky error: 0 or SDB_EIO */
    _Atomic int data_dirty;        /* data pages written since the last sync */

    /* state (invariant 4) */
    pthread_rwlock_t state_lock;   /* through state_read_lock() / state_write_lock() */
    _Atomic int writer_waiting;    /* the leader wants state_lock: new readers wait */
    pthread_mutex_t gate_lock;     /* with gate_cv: where those readers wait */
    pthread_cond_t gate_cv;
    pathidx_t *paths;
    slab_t doc_slab, ver_slab;     /* doc_t and docver_t records */
    doc_t **docs;
    size_t docs_cap, ndocs;

    /* free space (invariant 5) */
    pthread_mutex_t fs_lock;
    freespace_t fs;
    pfree_t *pending, **pending_tail;
    uint64_t pending_pages;        /* pages waiting in `pending` */
    uint64_t durable_seq;

    /* group commit queue */
    pthread_mutex_t q_lock;
    commit_req_t *q_head, **q_tail;
    int leader;
    int leader_waiting;            /* the leader gathers its batch on gather_cv */
    size_t last_batch;             /* members of the previous batch */
    pthread_cond_t gather_cv;

    /* journal, owned by the leader */
    slot_t slot;
    uint64_t jseq;                 /* sequence of the group being built */
    pgno_t jnext;                  /* page reserved for that group */
    buf_t jbuf;                    /* records not yet written (lazy mode) */
    int jbuf_adds, jbuf_frees;     /* jbuf holds records of puts or binds / of deletes or
                                      unbinds (only: freeing batches, commit.c lead) */
    pgno_t *jpages;                /* journal pages since the checkpoint */
    size_t njpages, jpages_cap;
    pgno_t jspare[16];             /* pages written with zeros, kept for the journal to
                                      reserve (journal.c reserve_page): writing there cannot
                                      fail for lack of space, and the last ones are only for
                                      commits that free space */
    unsigned njspare;
    pgno_t *jres;                  /* lazy mode: pages written with zeros, reserved for the
                                      buffered group (jbuf) as it grows, taken from
                                      jres[jres_off] on (journal_reserve): the group can
                                      always be written at the sync */
    size_t njres, jres_off, jres_cap;
    pgno_t *cppages;               /* pages of the current checkpoint */
    size_t ncppages, cppages_cap;
    uint64_t cp_mark_gen;          /* doc_t.cp_mark of the checkpoint being encoded */
    uint64_t last_sync_ns;
    int gc_needed;                 /* some document keeps more than versions_to_keep old versions */
    int slot_damaged;              /* the other header slot failed its check at open */
    int unsynced_groups;           /* journal groups written since the last sync */
    int tolerate_cut;              /* sdb_check: load what precedes a cut */
    int slot_fallback;             /* open: the newest slot's checkpoint is damaged and the
                                      state comes from the older slot: 1 its journal reached
                                      the newer one (nothing lost), 2 it ends before
                                      (sdb_check only) */
    slot_t fallback_from;          /* with slot_fallback: the newer slot */
    int slot_corrected;            /* open: the newest slot failed its CRC and was corrected
                                      (journal_open, slot_correct): 1 + its page (0 or 1) */
    unsigned slot_corrected_bit;   /* with slot_corrected: the bit flipped back (byte * 8 + bit) */
    uint64_t unapplied_seq;        /* open: the last journal group, complete on disk, was not
                                      applied because its data did not verify (a torn commit,
                                      or damage: sdb_check names its records); 0 = none */
    pgno_t unapplied_page;         /* with unapplied_seq: its first page */

    /* the background checkpoint (journal.c, journal_bg_start) */
    int fg_checkpoints;            /* sdb_test_foreground_checkpoints() at open */
    unsigned cp_slice_entries;     /* sdb_test_checkpoint_slice() at open */
    _Atomic int cp_soon;           /* sdb_test_checkpoint_soon() */
    _Atomic int cp_pause;          /* sdb_test_checkpoint_pause() */
    _Atomic int cp_pausing;        /* the background checkpoint waits in that pause */
    _Atomic uint64_t n_fg_checkpoints, n_bg_checkpoints;
    _Atomic uint64_t stat_jpages;  /* njpages as the leader last left it (sdb_stats) */
    struct {
        pthread_t thread;
        int have_thread;           /* a thread to join (leader, close) */
        _Atomic int running;       /* from its start until its thread is done */
        _Atomic int stop;          /* close: give up */
        _Atomic int failed;        /* it ended without switching (not stopped) */
        uint64_t retry_jp;         /* leader: after a failure, wait for this many journal pages */
        uint64_t gen;              /* generation of the slot it will write */
        uint64_t s0;               /* the last journal group in the state at its start */
        pgno_t j0;                 /* page of group s0 + 1: the new slot's journal head */
        size_t n0;                 /* db->jpages entries of groups up to s0 */
        uint64_t hint;             /* expected bytes of its stream (the last one's + 1/8) */
        void *chain;               /* the written checkpoint, handed to the switch */
    } bg;
    int journal_suspect;           /* open: the journal ends on a damaged or torn group */

    /* lazy mode's timed syncs run in a thread of their own, so that commits
       go on meanwhile (commit.c, lazy_sync_start) */
    struct {
        pthread_t thread;
        int have_thread;           /* leader; db_free joins it */
        pthread_mutex_t lock;      /* with cv: the fields below */
        pthread_cond_t cv;
        int want, busy, stop;      /* a sync asked for / running / close */
        int done, rc;              /* one ended with rc, not yet taken by the leader */
        uint64_t seq;              /* the last journal group it covers */
    } ls;

    _Atomic uint64_t cache_hits, cache_misses;
    struct pcache *cache;          /* LRU page cache (use_mmap 0) */
};

/* Record types of the journal and checkpoint streams. */
enum { REC_VERSION = 1, REC_BIND = 2, REC_UNBIND = 3, REC_DELETE_DOC = 4, REC_DROP_VERSION = 5 };

/* Applies a stream of records to the state (caller holds the state write
 * lock or is opening).  tag is the journal sequence for freed pages.
 * Returns 0, SDB_ECORRUPT (malformed or inconsistent record) or SDB_ENOMEM. */
int apply_records(sdb_t *db, const uint8_t *p, size_t n, uint64_t tag);

/* Writes one line per record of a record stream to out, each starting with
 * prefix: what the record does, naming its document ids, versions and paths
 * (sdb_check's list of what a repair loses).  0, SDB_ECORRUPT (a malformed
 * record; the lines before it are written) or SDB_ENOMEM (out failed). */
int records_describe(const uint8_t *p, size_t n, const char *prefix, FILE *out);

/* Applies one journal group at open (tag 0).  With tolerant, a record that
 * the state already reflects, or one about a document, path or version that
 * is gone, is skipped instead of being SDB_ECORRUPT: the groups a background
 * checkpoint overlapped (slot_t.cp_tolerant_until) may be caught in it in
 * part.  0, SDB_ECORRUPT or SDB_ENOMEM. */
int apply_replay(sdb_t *db, const uint8_t *p, size_t n, int tolerant);

/* Applies a checkpoint's record stream to an empty state: as apply_records,
 * trusting the checkpoint's shape (each document's versions together, each
 * path once) to skip lookups.  0, SDB_ECORRUPT or SDB_ENOMEM. */
int apply_checkpoint(sdb_t *db, const uint8_t *p, size_t n);

/* Reads every page of v and checks its CRC, its stamp and the content CRC.
 * Returns 0, SDB_ECORRUPT, SDB_EIO or SDB_ENOMEM. */
int docver_verify(sdb_t *db, const docver_t *v);

/* Checks the data of every VERSION record in a record stream with
 * docver_verify.  0 or the first error. */
int records_check_data(sdb_t *db, const uint8_t *p, size_t n);

/* Combines the running content CRC with the CRC of a page's len data bytes. */
static inline uint32_t crc_add(const sdb_t *db, uint32_t crc, uint32_t dcrc, uint32_t len)
{
    return len == db->cap ? (uint32_t)crc32_combine_op(crc, dcrc, db->crc_op_full)
                          : (uint32_t)crc32_combine(crc, dcrc, len);
}

/* The state lock.  glibc's rwlock prefers readers: with readers overlapping
 * all the time the leader's write lock was never granted and every commit
 * stalled.  So the leader raises writer_waiting first, and a reader that
 * does not hold the lock already waits for it to drop before taking its read
 * lock; a read from inside a listing callback (this thread holds a read lock
 * already) goes straight in, so that it cannot deadlock behind the leader. */
void state_read_lock(sdb_t *db);
void state_read_unlock(sdb_t *db);
void state_write_lock(sdb_t *db);
void state_write_unlock(sdb_t *db);
/* Sets up / releases state_lock and the reader gate. */
void state_lock_init(sdb_t *db);
void state_lock_destroy(sdb_t *db);

/* Calls fn(d, arg) for every document, in the order they were allocated
 * (sequential in memory: much faster over millions of documents than the
 * table's order), until fn returns nonzero; returns that value or 0.  The
 * caller holds the state lock or is the leader, and fn changes no document
 * table or allocation. */
int state_foreach_doc(sdb_t *db, int (*fn)(doc_t *d, void *arg), void *arg);

/* A walk over the path index in order (a listing, a checkpoint) reads, per
 * entry, the key (in the index), its document and the document's current
 * version: three dependent cache misses, 200 ns or more
 * each when paid one after the other.  Each step of the scan prefetches the
 * key SP_KEY places ahead, the document of the key SP_DOC places ahead (whose
 * entry was prefetched earlier) and the version of the one SP_VER ahead, so
 * that the misses of several entries overlap. */
enum { SP_KEY = 8, SP_DOC = 5, SP_VER = 2 };

static inline void prefetch_key(const pathidx_key_t *k)
{
    __builtin_prefetch(k);
    __builtin_prefetch((const char *)k + 64);
}

/* After a seek: the first entries' keys, then their documents. */
static inline void paths_prefetch_start(const pathidx_iter_t *it)
{
    for (unsigned i = 0; i < SP_KEY; i++) {
        const pathidx_key_t *k = pathidx_peek(it, i);
        if (!k)
            return;
        prefetch_key(k);
    }
    for (unsigned i = 0; i < SP_DOC; i++) {
        const pathidx_key_t *k = pathidx_peek(it, i);
        if (!k)
            return;
        __builtin_prefetch(k->val);
    }
}

/* One step: the cursor has just passed an entry. */
static inline void paths_prefetch_step(const pathidx_iter_t *it)
{
    const pathidx_key_t *k = pathidx_peek(it, SP_KEY - 1);
    if (k)
        prefetch_key(k);
    if ((k = pathidx_peek(it, SP_DOC - 1)) != NULL)
        __builtin_prefetch(k->val);
    if ((k = pathidx_peek(it, SP_VER - 1)) != NULL)
        __builtin_prefetch(((const doc_t *)k->val)->cur);
}

/* Looks a document up by id (caller holds the state lock or is the leader). */
doc_t *doc_find(const sdb_t *db, const sdb_id_t *id);

/* Returns a new handle on be with cfg: locks, allocators and queues set up,
 * nothing loaded (journal_open does that).  NULL when out of memory (be is
 * not closed then). */
sdb_t *db_new(sdb_backend_t *be, const sdb_config_t *cfg);

/* Frees everything db holds and closes its backend; no flush, no sync. */
void db_free(sdb_t *db);

/* Sets up the state's allocators (open).  Cannot fail. */
void state_init(sdb_t *db);

/* Bookkeeping after data pages [start, start+n) were written with result
 * rc: drops them from the page cache, marks data unsynced, makes EIO
 * sticky, and marks the pages unbacked after ENOSPC (freespace_free then
 * quarantines them).  (db.c; writers, the commit leader, the journal.) */
void db_data_written(sdb_t *db, pgno_t start, uint64_t n, int rc);

/* Drops one reference to v; the last one frees it and its pages. */
void docver_unref(sdb_t *db, docver_t *v);

/* Appends n bytes to b.  0 or SDB_ENOMEM. */
int buf_put(buf_t *b, const void *p, size_t n);

/* Reads one page (header and data) into out[page_size] through the
 * mapping, the cache or the backend. 0 or an error. */
int pager_read(sdb_t *db, pgno_t pg, uint8_t *out);

#endif
