/*
 * backend_mem.c -- the memory backend: a growable array kept in 1 MiB
 * segments so that pointers returned by map() stay valid as it grows.
 * Used by sdb_open_memory() and as the "disk" of the fault backend.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/util.h"

#define MSEG_SHIFT 20
#define MSEG_SIZE (1u << MSEG_SHIFT)
#define MAX_MSEGS (1u << 16)     /* 64 GiB */

typedef struct {
    sdb_backend_t be;
    pthread_mutex_t lock;
    _Atomic uint64_t size;
    _Atomic(uint8_t *) segs[MAX_MSEGS];
} mem_backend_t;

static int mb_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    mem_backend_t *m = (mem_backend_t *)be;
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t seg = off >> MSEG_SHIFT;
        size_t in = (size_t)(off & (MSEG_SIZE - 1));
        size_t n = MSEG_SIZE - in < len ? MSEG_SIZE - in : len;
        uint8_t *s = seg < MAX_MSEGS ? atomic_load(&m->segs[seg]) : NULL;
        if (s)
            memcpy(p, s + in, n);
        else
            memset(p, 0, n);
        p += n;
        off += n;
        len -= n;
    }
    return SDB_OK;
}

static int mb_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    mem_backend_t *m = (mem_backend_t *)be;
    const uint8_t *p = buf;
    uint64_t end = off + len;
    if ((end + MSEG_SIZE - 1) >> MSEG_SHIFT > MAX_MSEGS)
        return SDB_ENOSPC;
    while (len > 0) {
        uint64_t seg = off >> MSEG_SHIFT;
        size_t in = (size_t)(off & (MSEG_SIZE - 1));
        size_t n = MSEG_SIZE - in < len ? MSEG_SIZE - in : len;
        uint8_t *s = atomic_load(&m->segs[seg]);
        if (!s) {
            pthread_mutex_lock(&m->lock);
            s = atomic_load(&m->segs[seg]);
            if (!s) {
                s = calloc(1, MSEG_SIZE);
                if (s)
                    atomic_store(&m->segs[seg], s);
            }
            pthread_mutex_unlock(&m->lock);
            if (!s)
                return SDB_ENOMEM;
        }
        memcpy(s + in, p, n);
        p += n;
        off += n;
        len -= n;
    }
    uint64_t cur = atomic_load(&m->size);
    while (end > cur && !atomic_compare_exchange_weak(&m->size, &cur, end))
        ;
    return SDB_OK;
}

static int mb_sync(sdb_backend_t *be)
{
    (void)be;
    return SDB_OK;
}

static uint64_t mb_size(sdb_backend_t *be)
{
    return atomic_load(&((mem_backend_t *)be)->size);
}

static const uint8_t *mb_map(sdb_backend_t *be, uint64_t off, size_t len)
{
    mem_backend_t *m = (mem_backend_t *)be;
    uint64_t seg = off >> MSEG_SHIFT;
    if (len == 0 || seg >= MAX_MSEGS || ((off + len - 1) >> MSEG_SHIFT) != seg ||
        off + len > atomic_load(&m->size))
        return NULL;
    uint8_t *s = atomic_load(&m->segs[seg]);
    return s ? s + (off & (MSEG_SIZE - 1)) : NULL;
}

static void mb_close(sdb_backend_t *be)
{
    mem_backend_t *m = (mem_backend_t *)be;
    for (size_t i = 0; i < MAX_MSEGS; i++)
        free(m->segs[i]);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

sdb_backend_t *backend_mem_new(void)
{
    mem_backend_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->be.read = mb_read;
    m->be.write = mb_write;
    m->be.sync = mb_sync;
    m->be.size = mb_size;
    m->be.map = mb_map;
    m->be.close = mb_close;
    return &m->be;
}

sdb_backend_t *backend_mem_from(const void *data, size_t len)
{
    sdb_backend_t *be = backend_mem_new();
    if (be && len > 0 && mb_write(be, 0, data, len) != SDB_OK) {
        mb_close(be);
        return NULL;
    }
    return be;
}

int backend_mem_dump(sdb_backend_t *be, uint8_t **data, size_t *len)
{
    size_t n = (size_t)mb_size(be);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return SDB_ENOMEM;
    mb_read(be, 0, buf, n);
    *data = buf;
    *len = n;
    return SDB_OK;
}
