/*
 * pathidx.h -- the in-memory ordered path index (private to the engine).
 *
 * Maps path bytes to an opaque value (the engine's document pointer).  It is
 * an ordered structure (an in-memory B+tree of sorted leaves) for prefix
 * scans and cursors, plus a hash table for O(1) exact lookups.  The index
 * copies keys; it never owns or frees values.  It does no locking: the
 * engine serializes writers and lets readers in only while no writer runs.
 *
 * Keys are arbitrary byte strings (length 1..SDB_MAX_PATH) compared with
 * memcmp then length (shorter first), i.e. raw byte order.
 */
#ifndef SDB_PATHIDX_H
#define SDB_PATHIDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct pathidx pathidx_t;

/* A key stored in the index.  The bytes are NUL-terminated for convenience
 * (the NUL is not part of the key).  Stable in memory until the key is
 * deleted or the index freed: callers may keep the pointer. */
typedef struct pathidx_key {
    void *val;
    uint32_t len;
    uint32_t hash;
    struct pathidx_key *hnext;   /* hash chain (internal) */
    char bytes[];                /* len bytes + NUL */
} pathidx_key_t;

/* A cursor over the index in byte order.  Valid until the next change. */
typedef struct {
    const pathidx_t *idx;
    void *leaf;
    int pos;
} pathidx_iter_t;

/* Returns a new empty index, or NULL when out of memory. */
pathidx_t *pathidx_new(void);

/* Frees the index and its keys (not the values).  NULL is accepted. */
void pathidx_free(pathidx_t *idx);

/* Returns the key entry for path[0..len), or NULL when absent. */
pathidx_key_t *pathidx_get(const pathidx_t *idx, const char *path, size_t len);

/* Prefetches the hash bucket of path for a put or get soon after (many
 * keys at hand: their cache misses overlap).  Changes nothing. */
void pathidx_prefetch(const pathidx_t *idx, const char *path, size_t len);

/* Inserts path -> val, or replaces the value when path exists.  On success
 * stores the key entry in *keyp (may be NULL) and the previous value (or
 * NULL when the path was new) in *old (may be NULL).
 * Returns 0, or SDB_ENOMEM (the index is unchanged). */
int pathidx_put(pathidx_t *idx, const char *path, size_t len, void *val,
                pathidx_key_t **keyp, void **old);

/* Removes path; stores its value in *old (may be NULL).  The key entry is
 * freed.  Returns 0 or SDB_ENOTFOUND. */
int pathidx_del(pathidx_t *idx, const char *path, size_t len, void **old);

/* Sizes the hash table for n keys in all, so that loading them rehashes
 * nothing.  Cannot fail (without memory the table grows as keys come). */
void pathidx_reserve(pathidx_t *idx, size_t n);

/* Number of keys. */
size_t pathidx_count(const pathidx_t *idx);

/* Bytes of memory held by the index (keys, nodes, hash table). */
size_t pathidx_mem_bytes(const pathidx_t *idx);

/* Positions it at the first key >= key[0..len) (inclusive) or > key
 * (!inclusive).  key may be NULL with len 0: the first key. */
void pathidx_seek(const pathidx_t *idx, pathidx_iter_t *it, const char *key, size_t len,
                  int inclusive);

/* Returns the key at the cursor and advances it, or NULL at the end. */
pathidx_key_t *pathidx_next(pathidx_iter_t *it);

/* Returns the key `ahead` places after the one pathidx_next() would return
 * (0: that key), or NULL past the end, without moving the cursor: a scan
 * prefetches what it will read a few keys later. */
pathidx_key_t *pathidx_peek(const pathidx_iter_t *it, unsigned ahead);

#endif
