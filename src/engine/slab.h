/*
 * slab.h -- a fixed-size object allocator (private): objects are carved from
 * 64 KiB chunks and recycled through a free list, and destroying the slab
 * releases every chunk at once.  The engine keeps millions of small document
 * and version records; malloc/free of each one dominated open and close.
 * Thread-safe (one mutex).
 */
#ifndef SDB_SLAB_H
#define SDB_SLAB_H

#include <pthread.h>
#include <stddef.h>

typedef struct {
    pthread_mutex_t lock;
    size_t objsize, per_chunk;
    void *free_list;
    void **chunks;
    size_t nchunks, cap;
    size_t used_in_last;           /* objects handed out of the newest chunk */
} slab_t;

/* Sets up a slab of objects of objsize bytes. */
void slab_init(slab_t *s, size_t objsize);
/* Returns a zeroed object, or NULL when out of memory. */
void *slab_alloc(slab_t *s);
/* Returns obj (from this slab; NULL ok) to the free list. */
void slab_free(slab_t *s, void *obj);
/* Releases every chunk: all objects become invalid. */
void slab_destroy(slab_t *s);

#endif
