/*
 * slab.h -- a fixed-size object allocator (private): objects are carved from
 * chunks (64 KiB, doubling up to a 2 MiB huge page each) and recycled
 * through a free list, and destroying the slab
 * releases every chunk at once.  The engine keeps millions of small document
 * and version records; malloc/free of each one dominated open and close.
 * Objects are aligned to 8 bytes (every record holds at most 64-bit
 * fields), not 16 as malloc's: a 72-byte record takes 72 bytes.
 * Thread-safe (one mutex).
 */
#ifndef SDB_SLAB_H
#define SDB_SLAB_H

#include <pthread.h>
#include <stddef.h>

/* The largest chunk: one transparent huge page.  A million records span
 * hundreds of megabytes that lookups and listings touch at random; in 4 KiB
 * pages nearly every such touch also missed the TLB. */
#define SLAB_HUGE_BYTES ((size_t)2 << 20)

typedef struct {
    pthread_mutex_t lock;
    size_t objsize, per_chunk;     /* per_chunk: objects in the newest chunk */
    void *free_list;
    void **chunks;
    size_t nchunks, cap;
    size_t used_in_last;           /* objects handed out of the newest chunk */
} slab_t;

/* Returns n bytes from malloc, or, for n == SLAB_HUGE_BYTES, an aligned
 * block advised to the kernel as a transparent huge page (MADV_HUGEPAGE);
 * either way freed with free().  NULL when out of memory.  (Also the path
 * index's key chunks.) */
void *slab_chunk_alloc(size_t n);

/* Returns n * size zeroed bytes as calloc() does; an array of 2 MiB or
 * more (a hash table of millions of entries, read at random) is placed in
 * advised huge pages.  Freed with free().  NULL when out of memory. */
void *slab_table_calloc(size_t n, size_t size);

/* Sets up a slab of objects of objsize bytes. */
void slab_init(slab_t *s, size_t objsize);
/* Returns a zeroed object, or NULL when out of memory. */
void *slab_alloc(slab_t *s);
/* Returns obj (from this slab; NULL ok) to the free list. */
void slab_free(slab_t *s, void *obj);
/* Releases every chunk: all objects become invalid. */
void slab_destroy(slab_t *s);
/* Calls fn(obj, arg) for every object ever handed out and not yet reused
 * from the free list, freed ones included, in allocation order (chunk by
 * chunk, so memory is walked sequentially); the caller tells live objects
 * from freed ones by their contents.  Stops at the first nonzero return of
 * fn and returns it; 0 when every object was visited.  The caller keeps
 * the slab unchanged meanwhile. */
int slab_foreach(slab_t *s, int (*fn)(void *obj, void *arg), void *arg);

#endif
