/*
 * backend_fault.c -- a fault-injecting backend for tests (SQLite faultsim
 * style).  It keeps two memory arrays: `cur`, what reads see, and `disk`,
 * what survives a power cut.  A write goes to `cur` and to a list of
 * unsynced writes; a sync moves that list onto `disk`.  At the planned Nth
 * write or sync the backend crashes: that call and every later one fail with
 * SDB_EIO, and backend_fault_image() returns `disk` plus (when planned) the
 * unsynced writes and half of the crashing write.
 */
#include <pthread.h>
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/util.h"

typedef struct pending {
    uint64_t off;
    size_t len;
    struct pending *next;
    uint8_t data[];
} pending_t;

typedef struct {
    sdb_backend_t be;
    pthread_mutex_t lock;
    fault_plan_t plan;
    sdb_backend_t *cur, *disk;
    pending_t *head, **tail;
    pending_t *torn;             /* the crashing write (or last unsynced), for tear_last */
    uint64_t writes, syncs;
    int crashed;
    int error;
    uint64_t injected;           /* calls failed by the crash or the error (tests assert it) */
} fault_backend_t;

static void free_pending(fault_backend_t *f)
{
    while (f->head) {
        pending_t *p = f->head;
        f->head = p->next;
        if (p != f->torn)
            free(p);
    }
    f->tail = &f->head;
}

static int fa_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    fault_backend_t *f = (fault_backend_t *)be;
    pthread_mutex_lock(&f->lock);
    int rc = f->crashed ? SDB_EIO : f->error ? f->error : f->cur->read(f->cur, off, buf, len);
    if (f->crashed || f->error)
        f->injected++;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int fa_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    fault_backend_t *f = (fault_backend_t *)be;
    int rc = SDB_OK;
    pthread_mutex_lock(&f->lock);
    if (f->crashed || f->error) {
        rc = f->crashed ? SDB_EIO : f->error;
        f->injected++;
        goto out;
    }
    f->writes++;
    pending_t *p = malloc(sizeof(*p) + len);
    if (!p) {
        rc = SDB_ENOMEM;
        goto out;
    }
    p->off = off;
    p->len = len;
    p->next = NULL;
    memcpy(p->data, buf, len);
    if (f->plan.crash_at_write && f->writes == f->plan.crash_at_write) {
        f->crashed = 1;
        f->injected++;
        f->torn = p;             /* never reached `cur`: the call failed */
        rc = SDB_EIO;
        goto out;
    }
    rc = f->cur->write(f->cur, off, buf, len);
    *f->tail = p;
    f->tail = &p->next;
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int fa_sync(sdb_backend_t *be)
{
    fault_backend_t *f = (fault_backend_t *)be;
    int rc = SDB_OK;
    if (f->plan.sync_delay_ms) {
        struct timespec ts = { f->plan.sync_delay_ms / 1000,
                               (long)(f->plan.sync_delay_ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&f->lock);
    if (f->crashed || f->error) {
        rc = f->crashed ? SDB_EIO : f->error;
        f->injected++;
        goto out;
    }
    f->syncs++;
    if (f->plan.crash_at_sync && f->syncs == f->plan.crash_at_sync) {
        f->crashed = 1;
        f->injected++;
        /* the last unsynced write is the one that may be torn */
        for (pending_t *p = f->head; p; p = p->next)
            if (!p->next)
                f->torn = p;
        rc = SDB_EIO;
        goto out;
    }
    for (pending_t *p = f->head; p; p = p->next) {
        rc = f->disk->write(f->disk, p->off, p->data, p->len);
        if (rc)
            break;
    }
    free_pending(f);
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static uint64_t fa_size(sdb_backend_t *be)
{
    fault_backend_t *f = (fault_backend_t *)be;
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->cur->size(f->cur);
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void fa_close(sdb_backend_t *be)
{
    fault_backend_t *f = (fault_backend_t *)be;
    free_pending(f);
    free(f->torn);
    f->cur->close(f->cur);
    f->disk->close(f->disk);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

sdb_backend_t *backend_fault_new(const fault_plan_t *plan, const void *initial, size_t len)
{
    fault_backend_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    if (plan)
        f->plan = *plan;
    f->cur = backend_mem_from(initial, initial ? len : 0);
    f->disk = backend_mem_from(initial, initial ? len : 0);
    f->tail = &f->head;
    if (!f->cur || !f->disk) {
        if (f->cur) f->cur->close(f->cur);
        if (f->disk) f->disk->close(f->disk);
        free(f);
        return NULL;
    }
    f->be.read = fa_read;
    f->be.write = fa_write;
    f->be.sync = fa_sync;
    f->be.size = fa_size;
    f->be.map = NULL;
    f->be.close = fa_close;
    return &f->be;
}

void backend_fault_set_error(sdb_backend_t *be, int err)
{
    fault_backend_t *f = (fault_backend_t *)be;
    pthread_mutex_lock(&f->lock);
    f->error = err;
    pthread_mutex_unlock(&f->lock);
}

uint64_t backend_fault_injected(sdb_backend_t *be)
{
    fault_backend_t *f = (fault_backend_t *)be;
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->injected;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void backend_fault_counts(sdb_backend_t *be, uint64_t *writes, uint64_t *syncs, int *crashed)
{
    fault_backend_t *f = (fault_backend_t *)be;
    pthread_mutex_lock(&f->lock);
    if (writes) *writes = f->writes;
    if (syncs) *syncs = f->syncs;
    if (crashed) *crashed = f->crashed;
    pthread_mutex_unlock(&f->lock);
}

int backend_fault_image(sdb_backend_t *be, uint8_t **data, size_t *len)
{
    fault_backend_t *f = (fault_backend_t *)be;
    int rc = SDB_ENOMEM;
    pthread_mutex_lock(&f->lock);
    uint8_t *disk = NULL;
    size_t n = 0;
    if (backend_mem_dump(f->disk, &disk, &n))
        goto out;
    sdb_backend_t *img = backend_mem_from(disk, n);
    free(disk);
    if (!img)
        goto out;
    uint32_t x = f->plan.seed * 2654435761u + 1;
    for (pending_t *p = f->head; p && f->plan.keep_unsynced; p = p->next) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (p != f->torn && (f->plan.keep_unsynced == 1 || (x & 1)))
            img->write(img, p->off, p->data, p->len);
    }
    if (f->crashed && f->torn && f->plan.tear_last)
        img->write(img, f->torn->off, f->torn->data, f->torn->len / 2);
    rc = backend_mem_dump(img, data, len);
    img->close(img);
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}
