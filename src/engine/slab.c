/*
 * slab.c -- see slab.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/slab.h"

#define CHUNK_MIN 65536               /* the first chunk; each next one doubles */

/* Bytes of chunk i: 64 KiB, doubling up to SLAB_HUGE_BYTES. */
static size_t chunk_bytes(size_t i)
{
    return i >= 5 ? SLAB_HUGE_BYTES : (size_t)CHUNK_MIN << i;
}

void *slab_chunk_alloc(size_t n)
{
    if (n != SLAB_HUGE_BYTES)
        return malloc(n);
    void *p = aligned_alloc(SLAB_HUGE_BYTES, n);
#ifdef MADV_HUGEPAGE
    if (p)
        (void)madvise(p, n, MADV_HUGEPAGE);   /* advice: without it, 4 KiB pages */
#endif
    return p;
}

void *slab_table_calloc(size_t n, size_t size)
{
    size_t bytes = n * size;
    if (size && bytes / size != n)
        return NULL;
    if (bytes < SLAB_HUGE_BYTES)
        return calloc(n, size);
    bytes = (bytes + SLAB_HUGE_BYTES - 1) & ~(SLAB_HUGE_BYTES - 1);
    void *p = aligned_alloc(SLAB_HUGE_BYTES, bytes);
    if (p) {
#ifdef MADV_HUGEPAGE
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
        memset(p, 0, bytes);
    }
    return p;
}

void slab_init(slab_t *s, size_t objsize)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->objsize = (objsize + 7) & ~(size_t)7;
    s->per_chunk = 0;
    s->used_in_last = 0;                   /* no chunk yet */
}

void *slab_alloc(slab_t *s)
{
    void *obj = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->free_list) {
        obj = s->free_list;
        s->free_list = *(void **)obj;
    } else {
        if (s->used_in_last == s->per_chunk) {
            if (s->nchunks == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 16;
                void **c = realloc(s->chunks, nc * sizeof(*c));
                if (!c)
                    goto out;
                s->chunks = c;
                s->cap = nc;
            }
            void *chunk = slab_chunk_alloc(chunk_bytes(s->nchunks));
            if (!chunk)
                goto out;
            s->per_chunk = chunk_bytes(s->nchunks) / s->objsize;
            s->chunks[s->nchunks++] = chunk;
            s->used_in_last = 0;
        }
        obj = (char *)s->chunks[s->nchunks - 1] + s->used_in_last++ * s->objsize;
    }
out:
    pthread_mutex_unlock(&s->lock);
    if (obj)
        memset(obj, 0, s->objsize);
    return obj;
}

void slab_free(slab_t *s, void *obj)
{
    if (!obj)
        return;
    pthread_mutex_lock(&s->lock);
    *(void **)obj = s->free_list;
    s->free_list = obj;
    pthread_mutex_unlock(&s->lock);
}

void slab_destroy(slab_t *s)
{
    for (size_t i = 0; i < s->nchunks; i++)
        free(s->chunks[i]);
    free(s->chunks);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof(*s));
}

int slab_foreach(slab_t *s, int (*fn)(void *obj, void *arg), void *arg)
{
    for (size_t i = 0; i < s->nchunks; i++) {
        size_t n = i + 1 == s->nchunks ? s->used_in_last : chunk_bytes(i) / s->objsize;
        char *c = s->chunks[i];
        for (size_t j = 0; j < n; j++) {
            int rc = fn(c + j * s->objsize, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}
