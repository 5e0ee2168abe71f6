/*
 * streamdb.h -- public API of libstreamdb, the embeddable StreamDb storage engine.
 *
 * StreamDb stores immutable binary documents under string paths.  A document
 * has a UUID v4 id and a version (1, 2, ...); writing to a bound path writes a
 * new version of the document bound there.  A path is bound to exactly one
 * document; a document may have any number of paths (or none).  The newest
 * `versions_to_keep` previous versions stay readable by number.
 *
 * Conventions (every function):
 *   - Returns SDB_OK (0) or a negative SDB_E* code; sdb_strerror() gives text.
 *   - Bad input (NULL pointers, an empty path, a path over SDB_MAX_PATH bytes,
 *     a path containing NUL or not valid UTF-8, a bad id) returns SDB_EINVAL and
 *     changes nothing.  A document over max_document_size returns SDB_ETOOLARGE.
 *   - Every function is safe to call concurrently from many threads on one
 *     sdb_t, except sdb_close(), which must be the last call on a handle, and
 *     the functions on one sdb_writer_t / sdb_reader_t, which one thread at a
 *     time may call.  Writers and readers must be finished before sdb_close().
 *   - Memory returned to the caller (documents from sdb_get, text from
 *     sdb_info / sdb_check) is allocated with malloc() and owned by the caller,
 *     who releases it with free().  Pointers handed to callbacks are valid only
 *     for the duration of the callback.
 *   - Durability: with cfg.durable = 1 (default), a write function returns
 *     SDB_OK only after the write is on stable storage (fdatasync).  After a
 *     failed sync the handle is in a sticky error state: every later write
 *     returns SDB_EIO until the database is closed and reopened.
 */
#ifndef STREAMDB_H
#define STREAMDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Export: libstreamdb.so is built with -fvisibility=hidden, so that only the
 * functions declared between this push and the pop at the end of each public
 * header (streamdb.h, streamdb_client.h, streamdb_proto.h) are exported; a
 * function declared anywhere else stays internal to the library.
 * tests/packaging/test_exports.sh checks the exported list against them. */
#if defined(__GNUC__) || defined(__clang__)
#define SDB_VISIBILITY_PUSH _Pragma("GCC visibility push(default)")
#define SDB_VISIBILITY_POP _Pragma("GCC visibility pop")
#else
#define SDB_VISIBILITY_PUSH
#define SDB_VISIBILITY_POP
#endif
SDB_VISIBILITY_PUSH

#define SDB_VERSION_STRING "0.1.0"
#define SDB_MAX_PATH 4096            /* bytes, excluding the terminating NUL */

typedef struct sdb sdb_t;                 /* an open database */
typedef struct sdb_writer sdb_writer_t;   /* a streamed upload of one document version */
typedef struct sdb_reader sdb_reader_t;   /* a streamed read of one document version */
typedef struct { uint8_t b[16]; } sdb_id_t;   /* UUID v4 */

/* Error codes.  Every failure is one of these (never a crash, exit or abort). */
enum {
    SDB_OK = 0,
    SDB_ENOTFOUND = -1,  /* no such path, document or version */
    SDB_EINVAL = -2,     /* bad argument: NULL, bad path, bad id, bad config */
    SDB_ETOOLARGE = -3,  /* document over max_document_size, or file over max_db_size */
    SDB_ECORRUPT = -4,   /* a CRC or structural check failed; no wrong bytes are returned */
    SDB_EIO = -5,        /* an I/O call failed, or the handle is in its sticky error state */
    SDB_ENOSPC = -6,     /* the file system is full */
    SDB_ELOCKED = -7,    /* another process holds the database file */
    SDB_ECONFLICT = -8,  /* a conditional write found another version */
    SDB_ENOMEM = -9,     /* out of memory */
    SDB_EPERM = -10      /* permission denied: the file or its directory (EACCES, EPERM) */
};

/* Returns a static, human-readable text for an SDB_E* code (never NULL). */
const char *sdb_strerror(int err);

/* Writes the canonical lower-case 8-4-4-4-12 form of *id and a NUL into out. */
void sdb_id_format(const sdb_id_t *id, char out[37]);

/* Parses a 36-character 8-4-4-4-12 UUID (either case) into *out.
 * Returns SDB_OK, or SDB_EINVAL for NULL or any other text. */
int sdb_id_parse(const char *text, sdb_id_t *out);

typedef struct {
    uint32_t page_size;          /* power of two, 512..65536; default 4096.  Fixed at creation:
                                    an existing file keeps its own page size. */
    uint32_t page_cache_pages;   /* pages of the LRU cache used when use_mmap is 0; default 1024;
                                    over 2^30 fails the open with SDB_ENOMEM */
    uint32_t versions_to_keep;   /* previous versions kept readable per document; default 2 */
    uint64_t max_document_size;  /* default 256 MiB */
    uint64_t max_db_size;        /* bytes; default 8 TB */
    int use_mmap;                /* read committed pages through a shared mapping; default 1 */
    int quick_mode;              /* skip CRC checks on read; default 0 */
    int durable;                 /* 1 (default): acknowledge only after sync; 0: sync lazily,
                                    at sdb_flush, sdb_close, checkpoints and at most once a
                                    second on a commit; earlier only when 8 MiB of commit
                                    records wait in memory (about 70,000 small puts), or
                                    when pages freed by overwrites and deletes (reusable
                                    after a sync) exceed 1/16 of the file while fewer are
                                    free */
} sdb_config_t;

/* Fills *cfg with the defaults listed above. */
void sdb_config_default(sdb_config_t *cfg);

/* Metadata of one document version. */
typedef struct {
    sdb_id_t id;
    uint64_t version;       /* 1 for the first write, +1 per overwrite */
    uint64_t size;          /* content bytes */
    uint32_t crc32;         /* zlib crc32() of the whole content */
    int64_t created_ms;     /* Unix ms when the document was first written */
    int64_t modified_ms;    /* Unix ms when this version was written */
} sdb_docinfo_t;

/* ---- Opening and closing ---------------------------------------------- */

/* Opens (creating if absent) the database file `file` with cfg (NULL =
 * defaults) and stores a new handle in *out, which sdb_close() releases.
 * Recovers automatically from any crash: the newest valid header slot is
 * used and the commit journal is replayed up to its last complete commit.
 * While open, the handle may run a background thread of its own, which
 * writes checkpoints (when the journal has grown past twice the last one)
 * while commits go on, and with cfg.durable 0 a second one, which runs the
 * timed syncs while commits go on; sdb_close() stops them.
 * Errors: SDB_EINVAL (NULL, bad cfg), SDB_ELOCKED (another process has the
 * file open), SDB_ECORRUPT (not a StreamDb file, or both header slots or the
 * checkpoint damaged), SDB_EPERM (the file or its directory may not be
 * read or written), SDB_EIO, SDB_ENOSPC, SDB_ENOMEM. */
int sdb_open(const char *file, const sdb_config_t *cfg, sdb_t **out);

/* Opens a new, empty database held in memory only (lost at close).
 * Errors: SDB_EINVAL, SDB_ENOMEM. */
int sdb_open_memory(const sdb_config_t *cfg, sdb_t **out);

/* Makes everything durable (writing a checkpoint, so that the next open
 * reads no journal), stops the handle's background thread, releases the
 * file lock and frees db.  All readers and writers must be closed first.  db is invalid afterwards even
 * when an error is returned.  NULL is accepted (returns SDB_OK).
 * Errors: SDB_EIO (a final sync failed: the latest writes may be lost). */
int sdb_close(sdb_t *db);

/* Enables (nonzero) or disables CRC checks on read for this handle only. */
void sdb_set_quick_mode(sdb_t *db, int enabled);

/* ---- Writing ------------------------------------------------------------ */

/* Writes len bytes from data (NULL allowed when len is 0) under path: a new
 * version of the document bound to path, or a new document bound to path.
 * On success fills *out (may be NULL) with the new version's metadata.
 * Errors: SDB_EINVAL, SDB_ETOOLARGE, SDB_EIO, SDB_ENOSPC, SDB_ENOMEM. */
int sdb_put(sdb_t *db, const char *path, const void *data, size_t len, sdb_docinfo_t *out);

/* Like sdb_put, but only if the document bound to path currently has
 * version if_version (0: only if path is unbound).  Otherwise SDB_ECONFLICT
 * and nothing changes.  Other errors as sdb_put. */
int sdb_put_if(sdb_t *db, const char *path, const void *data, size_t len,
               uint64_t if_version, sdb_docinfo_t *out);

/* Starts a streamed write to path.  if_version is checked at commit as in
 * sdb_put_if; UINT64_MAX means unconditional.  The new writer (*out) is
 * owned by the caller until sdb_writer_commit() or sdb_writer_abort().
 * Errors: SDB_EINVAL, SDB_EIO (sticky error state), SDB_ENOMEM. */
int sdb_writer_open(sdb_t *db, const char *path, uint64_t if_version, sdb_writer_t **out);

/* Appends len bytes to the writer's content.  Data is written to free pages
 * as it arrives, so memory use does not grow with document size.  On error
 * the writer stays open and unchanged in meaning; the caller aborts it.
 * Errors: SDB_EINVAL, SDB_ETOOLARGE (past max_document_size or max_db_size),
 * SDB_EIO, SDB_ENOSPC, SDB_ENOMEM. */
int sdb_writer_write(sdb_writer_t *w, const void *data, size_t len);

/* Stores in *size and *crc32 the byte count and the zlib crc32() of all the
 * content written to w so far (either pointer may be NULL), without a second
 * pass over the bytes (the writer's page CRCs are combined).  Lets a caller
 * check an upload's declared checksum before committing.  SDB_EINVAL for NULL. */
int sdb_writer_checksum(sdb_writer_t *w, uint64_t *size, uint32_t *crc32);

/* Commits the written content as one new version, atomically, and frees w
 * (always, even on error).  On success fills *out (may be NULL).
 * Errors: SDB_ECONFLICT (if_version did not match), SDB_EIO, SDB_ENOSPC,
 * SDB_ENOMEM, SDB_EINVAL (w NULL).  On error nothing becomes visible and the
 * writer's pages are reclaimed. */
int sdb_writer_commit(sdb_writer_t *w, sdb_docinfo_t *out);

/* Commits the n writers w[0..n) as one group: each one succeeds or fails on
 * its own exactly as sdb_writer_commit() would (rcs[i] receives its result,
 * out[i] its new version's metadata when out is not NULL and rcs[i] is
 * SDB_OK; out[i] is left alone otherwise), but their requests are queued
 * together, in array order, so that the group commit takes them in one
 * batch and, in durable mode, one sync covers all of them.  Writers that
 * touch the same path or document as an earlier member go to a later batch
 * (with its own sync) and commit after it, in array order: two members
 * writing one path both commit, and the later one's version is current.
 * Without memory to queue them together the members are committed one by
 * one (same results, one sync each).
 *
 * Ownership: every writer is freed, whatever its result (as by
 * sdb_writer_commit); w, out and rcs are the caller's and are used only
 * during the call.  Returns SDB_OK (look at rcs for each member's result:
 * SDB_ECONFLICT, SDB_EIO, SDB_ENOSPC, SDB_ETOOLARGE, SDB_ENOMEM as for
 * sdb_writer_commit), or SDB_EINVAL when n > 0 and w or rcs is NULL, a
 * writer is NULL, the same writer appears twice, or the writers belong to
 * different handles: then nothing is committed, no writer is freed and rcs
 * is not written.  n == 0 returns SDB_OK and does nothing. */
int sdb_writer_commit_many(sdb_writer_t *const *w, size_t n, sdb_docinfo_t *out, int *rcs);

/* Discards the writer's content, reclaims its pages and frees w (NULL ok). */
void sdb_writer_abort(sdb_writer_t *w);

/* ---- Atomic batches ----------------------------------------------------- */

/* A batch is a list of operations committed as one unit by
 * sdb_batch_commit(): puts of documents held in memory, deletes, binds and
 * unbinds, all applied or none, in one journal group (a crash leaves all of
 * them or none) and, in durable mode, one sync.  The items are planned in
 * order, each seeing the effect of the earlier ones: a put of a new path
 * then a bind of that path to another document, a put then a put of the
 * same path (two versions), a delete then a put of the same path (a new
 * document), a bind then a delete of the path, and so on.  Each item may carry a condition, if_version (UINT64_MAX: none):
 * the version the document it concerns must have at that point of the
 * batch (0: that there is none, for puts and deletes).
 *
 * Limits: at most SDB_BATCH_MAX_OPS items and SDB_BATCH_MAX_BYTES bytes of
 * put content in all (each put also within max_document_size, checked at
 * commit).  Each put is a document of its own, of at least one page (as
 * with sdb_put); a commit holds about 1 KiB per item (its writer, journal
 * record and planning view) plus about 2 MiB of pages.
 *
 * A batch belongs to the caller, is not tied to a handle, and may be
 * committed any number of times (to one or more handles); one thread at a
 * time may use it. */
typedef struct sdb_batch sdb_batch_t;

#define SDB_BATCH_MAX_OPS 100000
#define SDB_BATCH_MAX_BYTES (64u << 20)
#define SDB_BATCH_NO_ITEM ((size_t)-1)   /* sdb_batch_commit: no item to blame */

/* Creates an empty batch in *out, to be released with sdb_batch_free().
 * Errors: SDB_EINVAL (out NULL), SDB_ENOMEM. */
int sdb_batch_new(sdb_batch_t **out);

/* Releases b and everything it holds (NULL ok). */
void sdb_batch_free(sdb_batch_t *b);

/* Empties b for reuse (its memory is kept).  NULL ok. */
void sdb_batch_clear(sdb_batch_t *b);

/* Number of items in b (0 for NULL). */
size_t sdb_batch_count(const sdb_batch_t *b);

/* Appends a put of len bytes from data (copied; NULL allowed when len is
 * 0) under path: a new version of the document bound to path at that point
 * of the batch, or a new document.  if_version as sdb_put_if, or UINT64_MAX.
 * Errors: SDB_EINVAL (b NULL, a bad path, data NULL with len > 0),
 * SDB_ETOOLARGE (SDB_BATCH_MAX_OPS items or SDB_BATCH_MAX_BYTES of content
 * would be exceeded), SDB_ENOMEM.  On error b is unchanged. */
int sdb_batch_put(sdb_batch_t *b, const char *path, const void *data, size_t len,
                  uint64_t if_version);

/* Appends a delete of path (as sdb_delete: unbinds it, and deletes its
 * document when that leaves it with no path).  if_version: the version the
 * document bound to path must have.  Errors as sdb_batch_put. */
int sdb_batch_delete(sdb_batch_t *b, const char *path, uint64_t if_version);

/* Appends a bind of path to document id (as sdb_bind).  if_version: the
 * version document id must have.  Errors as sdb_batch_put (id NULL:
 * SDB_EINVAL). */
int sdb_batch_bind(sdb_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version);

/* Appends an unbind of path from document id (as sdb_unbind).  if_version:
 * the version document id must have.  Errors as sdb_batch_bind. */
int sdb_batch_unbind(sdb_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version);

/* Commits every item of b to db as one atomic unit (see above).
 *
 * results (may be NULL) is an array of sdb_batch_count(b) entries, written
 * only on SDB_OK: for a put, the new version's metadata; for a delete, the
 * document deleted or unbound, as it was; for a bind or an unbind, the
 * document id as the batch left it at that item.  *failed (may be NULL)
 * receives the index of the item that made the batch fail, or
 * SDB_BATCH_NO_ITEM (on success too, and for failures of no one item).
 *
 * Errors (nothing of the batch is applied on any of them):
 *   SDB_ECONFLICT  item *failed: its if_version did not match;
 *   SDB_ENOTFOUND  item *failed: a delete of a path bound to nothing, a bind
 *                  or unbind naming a document that does not exist (or was
 *                  deleted earlier in the batch), an unbind of a path not
 *                  bound to that document;
 *   SDB_ETOOLARGE  item *failed: a put over max_document_size; or (no item)
 *                  the file would exceed max_db_size;
 *   SDB_EINVAL (db or b NULL), SDB_EIO, SDB_ENOSPC, SDB_ENOMEM (no item).
 * An empty batch returns SDB_OK and writes nothing.  A batch is committed
 * in a group of its own: concurrent writes by other threads are ordered
 * entirely before or after it. */
int sdb_batch_commit(sdb_t *db, const sdb_batch_t *b, sdb_docinfo_t *results, size_t *failed);

/* ---- Reading ------------------------------------------------------------ */

/* Reads the current version of the document bound to path into a new
 * malloc()ed buffer (*data, owned by the caller; a valid non-NULL pointer
 * even for an empty document) of *len bytes; fills *out (may be NULL).
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ECORRUPT (a page failed its check:
 * nothing is returned), SDB_EIO, SDB_ENOMEM. */
int sdb_get(sdb_t *db, const char *path, void **data, size_t *len, sdb_docinfo_t *out);

/* As sdb_get, for document id at version (0 = the current one).
 * SDB_ENOTFOUND when the document or that version does not exist (any more). */
int sdb_get_id(sdb_t *db, const sdb_id_t *id, uint64_t version,
               void **data, size_t *len, sdb_docinfo_t *out);

/* Opens a streamed reader on the current version bound to path and fills
 * *info (may be NULL).  The reader sees that exact version to its end even if
 * the document is overwritten or deleted meanwhile; its pages are not reused
 * until sdb_reader_close().  Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ENOMEM. */
int sdb_reader_open(sdb_t *db, const char *path, sdb_reader_t **out, sdb_docinfo_t *info);

/* As sdb_reader_open, by id and version (0 = current). */
int sdb_reader_open_id(sdb_t *db, const sdb_id_t *id, uint64_t version, sdb_reader_t **out,
                       sdb_docinfo_t *info);

/* Copies up to cap bytes of content into buf and stores the count in *n;
 * *n == 0 means the end (of the content, or of the range set by
 * sdb_reader_range).  Every data page the bytes come from is checked against
 * its page CRC, index and owner before any of its bytes is delivered (unless
 * quick mode).  A reader that reads the content from byte 0 to its end
 * (never moved by sdb_reader_seek / sdb_reader_range, or moved to offset 0
 * with no shorter range) also checks the whole content's CRC32 at the last
 * page.  Errors: SDB_EINVAL, SDB_ECORRUPT (a page or the content CRC failed;
 * the bytes of the failing page are not delivered), SDB_EIO, SDB_ENOMEM. */
int sdb_reader_read(sdb_reader_t *r, void *buf, size_t cap, size_t *n);

/* Byte ranges.  Moves r so that the next sdb_reader_read delivers content
 * from byte `offset` on, and at most `length` bytes in all (UINT64_MAX: to
 * the end); the range is cut at the end of the content, and the number of
 * bytes it holds, min(length, size - offset), is stored in *avail (may be
 * NULL).  offset == size is an empty range (reads return *n == 0 at once);
 * offset > size is SDB_EINVAL and leaves r unchanged.  length 0 is an empty
 * range too.  May be called at any time, any number of times (it clears an
 * earlier read error of r).
 * Only the pages holding the range's bytes are read: page offset / cap up to
 * page (offset + length - 1) / cap, where cap is page_size - 48 data bytes
 * (docs/FORMAT.md).  What is verified: each of those pages, whole, against
 * its page CRC (and its index and owner), before any byte of it is returned,
 * exactly as a full read does; so a damaged page inside the range gives
 * SDB_ECORRUPT and one outside it is never read.  What is not: the CRC32 of
 * the whole content (sdb_docinfo_t.crc32) needs every page, so it is checked
 * only when the range is the whole content (offset 0, length >= size).
 * Errors: SDB_EINVAL (r NULL, offset past the end), SDB_ECORRUPT (the
 * version has fewer pages than its size needs). */
int sdb_reader_range(sdb_reader_t *r, uint64_t offset, uint64_t length, uint64_t *avail);

/* sdb_reader_range(r, offset, UINT64_MAX, NULL): reads go on from byte
 * offset to the end of the content (any earlier range is dropped).
 * Errors as sdb_reader_range. */
int sdb_reader_seek(sdb_reader_t *r, uint64_t offset);

/* Enables (nonzero) or disables CRC checks for this reader only (the
 * server's per-request QUICK flag).  Readers start with the handle's mode.
 * While the whole content's CRC is being accumulated (see sdb_reader_read)
 * the mode can change only before the first page is read; otherwise at any
 * time (it then applies to the pages read next). */
void sdb_reader_set_quick(sdb_reader_t *r, int enabled);

/* Closes r and releases its snapshot (NULL ok). */
void sdb_reader_close(sdb_reader_t *r);

/* ---- Paths and documents ------------------------------------------------ */

/* Fills *out (may be NULL) with the current version bound to path.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND. */
int sdb_lookup(sdb_t *db, const char *path, sdb_docinfo_t *out);

/* Unbinds path; when its document is left with no path, deletes the document
 * and all its versions.  Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_EIO, SDB_ENOMEM. */
int sdb_delete(sdb_t *db, const char *path);

/* Deletes the document, all its versions and all its paths.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_EIO, SDB_ENOMEM. */
int sdb_delete_id(sdb_t *db, const sdb_id_t *id);

/* Binds path to document id.  If path was bound to another document E, it
 * moves (E keeps its other paths and is not deleted, even with none left).
 * Binding a path to the document it already names is a no-op success.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND (no such document), SDB_EIO, SDB_ENOMEM. */
int sdb_bind(sdb_t *db, const sdb_id_t *id, const char *path);

/* Unbinds path from document id; the document survives with no path.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND (path not bound to that id), SDB_EIO. */
int sdb_unbind(sdb_t *db, const sdb_id_t *id, const char *path);

/* Callback for listings.  path is NUL-terminated; info is NULL when the entry
 * is a common prefix rolled up by the delimiter (and for sdb_list_versions the
 * path is NULL).  Both are valid only during the call.  Return nonzero to
 * stop the iteration (the listing function then returns SDB_OK). */
typedef int (*sdb_entry_cb)(void *arg, const char *path, const sdb_docinfo_t *info);

typedef struct {
    const char *start_after;   /* NULL: from the beginning; else only paths > this */
    size_t limit;              /* 0: no limit; a rolled-up prefix counts as one result */
    char delimiter;            /* 0: none; else roll up paths at the first delimiter after the prefix */
} sdb_search_opts_t;

/* Calls cb for every bound path starting with prefix ("" = all), in byte
 * order, including prefix itself if bound.  The callback must not call back
 * into db for writes (reads are fine).  Errors: SDB_EINVAL. */
int sdb_search(sdb_t *db, const char *prefix, const sdb_search_opts_t *opts,
               sdb_entry_cb cb, void *arg);

/* Calls cb for every path of document id in byte order.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND (no such document). */
int sdb_list_paths(sdb_t *db, const sdb_id_t *id, sdb_entry_cb cb, void *arg);

/* Calls cb for every readable version of id, newest (current) first; path is
 * NULL.  Errors: SDB_EINVAL, SDB_ENOTFOUND. */
int sdb_list_versions(sdb_t *db, const sdb_id_t *id, sdb_entry_cb cb, void *arg);

/* Stores in *text a malloc()ed, NUL-terminated, human-readable description
 * of document id (id, version, size, crc, times, paths, retained versions),
 * owned by the caller.  Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ENOMEM. */
int sdb_info(sdb_t *db, const sdb_id_t *id, char **text);

typedef struct {
    uint64_t total_pages, free_pages, documents, paths, file_bytes,
             cache_hits, cache_misses;
    uint64_t checkpoints;          /* written since open (in the background or at close) */
    uint64_t journal_pages;        /* journal since the last checkpoint: what a reopen replays */
    uint64_t checkpoint_running;   /* 1 while a background checkpoint is being written */
} sdb_stats_t;

/* Fills *out with current figures (free_pages counts pages reusable now).
 * cache_hits/misses count the LRU page cache, used when use_mmap is 0.
 * journal_pages is as of the last commit.  Errors: SDB_EINVAL. */
int sdb_stats(sdb_t *db, sdb_stats_t *out);

/* Describes the system error behind the last failed file operation on db
 * (a pread, pwrite or fdatasync that made a call fail with SDB_EIO or
 * SDB_ENOSPC): the call, the offset and the system's text, e.g. "pwrite at
 * offset 8192: No space left on device", written NUL-terminated into the
 * caller's buf of cap bytes (truncated to fit).  For messages only; the
 * wording may change.  Safe to call from any thread while db is open.
 * Returns 1, or 0 (buf empty when cap > 0) when no file operation has
 * failed, db is not on a file, or db or buf is NULL or cap 0; it never fails
 * otherwise.  (A file that cannot be opened has no handle: sdb_open's
 * SDB_EPERM, SDB_EIO and the like name the kind of failure only.) */
int sdb_last_os_error(sdb_t *db, char *buf, size_t cap);

/* Makes everything written so far durable and drops old versions beyond
 * versions_to_keep.  Errors: SDB_EIO, SDB_ENOSPC, SDB_ENOMEM. */
int sdb_flush(sdb_t *db);

/* Verifies the database file (which must not be open in another process):
 * both header slots, the checkpoint, the journal, every page of every
 * retained version against its CRC and stamp, each version's content CRC,
 * and that no page is used twice.  Stores a malloc()ed, NUL-terminated report
 * in *report (report may be NULL), owned by the caller, who free()s it; it
 * is set on every return but SDB_EINVAL and an SDB_ENOMEM that left no room
 * for a report (then *report is untouched, or NULL).
 *
 * The report has one line per finding and ends with "result: clean" or
 * "result: <error text>".  A newest header slot with one flipped bit is
 * corrected when the pages it names prove the correction ("header slot N:
 * one flipped bit ... corrected", reported as damage).  A last journal group
 * that replay did not apply (its data does not verify: a torn commit, or a
 * damaged last one; the file cannot tell) gets one "not applied: journal
 * group S: ..." line per record and the result "clean, except that the last
 * journal group was not applied ..." (SDB_OK).  Each thing the recovered state
 * does not hold gets
 * a "lost:" line naming it: "lost: document ID (current version N damaged)
 * and its paths: ..." (the document goes with its paths), "lost: document ID
 * version N" (a damaged older version), "lost: journal group S: ..." (one
 * line per record of a group that cannot be replayed, saying what it did),
 * and, after a read around a damaged checkpoint, "lost: path ..." and the
 * range of paths the damaged pages held (docs/FORMAT.md, Check and repair).
 *
 * With repair nonzero, a damaged file is rewritten in place to the newest
 * state that can be proved consistent, keeping paths and ids: the newest
 * header slot (corrected as above if need be) and its journal up to a cut;
 * or, when its checkpoint is
 * damaged, the older slot and its journal if they lead up to it, else the
 * newest checkpoint read around the damage and its journal replayed.  The
 * damaged versions are dropped (each listed by a "lost:" line) and a fresh
 * checkpoint is written into both slots ("repair: done, the file is
 * consistent now").  Only when no slot names a checkpoint that can be read
 * at all are the data pages salvaged, each complete run as a new document
 * under "lost+found/<new id>" (its path and id are lost).
 *
 * Fails closed: an allocation, read or report failure ends in that error,
 * never in "clean", and a repair that fails leaves the file as it found it
 * until its checkpoints are written.
 * Returns SDB_OK for a clean file (or one repaired to consistent),
 * SDB_ECORRUPT when damage was found (and not repaired), SDB_ELOCKED,
 * SDB_EPERM (the file may not be read, or written for a repair), SDB_EIO,
 * SDB_ENOSPC (repair), SDB_EINVAL (file NULL or ""), SDB_ENOMEM. */
int sdb_check(const char *file, int repair, char **report);

SDB_VISIBILITY_POP

#ifdef __cplusplus
}
#endif
#endif /* STREAMDB_H */
