/*
 * backend_file.c -- the file backend: pread/pwrite/fdatasync on one file,
 * an exclusive flock() so that a second process gets SDB_ELOCKED, and
 * read-only MAP_SHARED segments of 1 GiB mapped lazily for zero-copy reads.
 *
 * Invariants:
 *  1. A segment is mapped only once and unmapped only at close, so a pointer
 *     returned by map() stays valid until close.
 *  2. map() returns a pointer only for bytes below the current file size, so
 *     no access can fault past the end of the file (SIGBUS).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/util.h"

#define SEG_SHIFT 30
#define SEG_SIZE (1ull << SEG_SHIFT)
#define MAX_SEGS 8192            /* 8 TiB */

typedef struct {
    sdb_backend_t be;
    int fd;
    int use_mmap;
    _Atomic uint64_t size;
    pthread_mutex_t map_lock;    /* also guards last_err */
    _Atomic(uint8_t *) *segs;    /* MAX_SEGS entries */
    char last_err[160];          /* the last failed call and its errno text, or "" */
} file_backend_t;

/* Remembers a failed system call (errno e) for fb_last_error(): the SDB_E*
 * code says what kind of failure, this says which call and why. */
static void fb_note(file_backend_t *f, const char *call, uint64_t off, int e)
{
    char text[96];
    const char *t = strerror_r(e, text, sizeof(text));
    pthread_mutex_lock(&f->map_lock);
    snprintf(f->last_err, sizeof(f->last_err), "%s at offset %llu: %s", call, (unsigned long long)off, t);
    pthread_mutex_unlock(&f->map_lock);
}

static int fb_last_error(sdb_backend_t *be, char *buf, size_t cap)
{
    file_backend_t *f = (file_backend_t *)be;
    pthread_mutex_lock(&f->map_lock);
    int have = f->last_err[0] != 0;
    if (have)
        snprintf(buf, cap, "%s", f->last_err);
    pthread_mutex_unlock(&f->map_lock);
    return have;
}

static int fb_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    file_backend_t *f = (file_backend_t *)be;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(f->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fb_note(f, "pread", off, errno);
            return SDB_EIO;
        }
        if (n == 0) {            /* past the end: zeros */
            memset(p, 0, len);
            return SDB_OK;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return SDB_OK;
}

static int fb_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    file_backend_t *f = (file_backend_t *)be;
    const uint8_t *p = buf;
    uint64_t end = off + len;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            fb_note(f, "pwrite", off, e);
            return util_errno_to_sdb(e) == SDB_ENOSPC ? SDB_ENOSPC : SDB_EIO;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    uint64_t cur = atomic_load(&f->size);
    while (end > cur && !atomic_compare_exchange_weak(&f->size, &cur, end))
        ;
    return SDB_OK;
}

static int fb_sync(sdb_backend_t *be)
{
    file_backend_t *f = (file_backend_t *)be;
    int rc;
    do {
        rc = fdatasync(f->fd);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        fb_note(f, "fdatasync", 0, errno);
    return rc < 0 ? SDB_EIO : SDB_OK;
}

static uint64_t fb_size(sdb_backend_t *be)
{
    return atomic_load(&((file_backend_t *)be)->size);
}

static const uint8_t *fb_map(sdb_backend_t *be, uint64_t off, size_t len)
{
    file_backend_t *f = (file_backend_t *)be;
    uint64_t seg = off >> SEG_SHIFT;
    if (!f->use_mmap || seg >= MAX_SEGS || ((off + len - 1) >> SEG_SHIFT) != seg ||
        off + len > atomic_load(&f->size))
        return NULL;
    uint8_t *base = atomic_load_explicit(&f->segs[seg], memory_order_acquire);
    if (!base) {
        pthread_mutex_lock(&f->map_lock);
        base = atomic_load(&f->segs[seg]);
        if (!base) {
            void *m = mmap(NULL, SEG_SIZE, PROT_READ, MAP_SHARED, f->fd, (off_t)(seg << SEG_SHIFT));
            if (m != MAP_FAILED) {
                base = m;
                atomic_store_explicit(&f->segs[seg], base, memory_order_release);
            }
        }
        pthread_mutex_unlock(&f->map_lock);
        if (!base)
            return NULL;
    }
    return base + (off & (SEG_SIZE - 1));
}

static void fb_writeback(sdb_backend_t *be, uint64_t off, uint64_t len)
{
    file_backend_t *f = (file_backend_t *)be;
    /* start writeback without waiting; errors surface at the next fdatasync */
    (void)sync_file_range(f->fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

static void fb_release(sdb_backend_t *be, uint64_t off, uint64_t len)
{
    file_backend_t *f = (file_backend_t *)be;
    uint64_t seg = off >> SEG_SHIFT;
    long psz = sysconf(_SC_PAGESIZE);
    if (!f->use_mmap || seg >= MAX_SEGS || ((off + len - 1) >> SEG_SHIFT) != seg || psz <= 0)
        return;
    uint8_t *base = atomic_load(&f->segs[seg]);
    if (!base)
        return;
    /* only whole OS pages inside the range */
    uint64_t a = (off + (uint64_t)psz - 1) & ~((uint64_t)psz - 1), b = (off + len) & ~((uint64_t)psz - 1);
    if (b > a)
        madvise(base + (a & (SEG_SIZE - 1)), b - a, MADV_DONTNEED);
}

static void fb_close(sdb_backend_t *be)
{
    file_backend_t *f = (file_backend_t *)be;
    if (f->segs) {
        for (size_t i = 0; i < MAX_SEGS; i++)
            if (f->segs[i])
                munmap(f->segs[i], SEG_SIZE);
        free(f->segs);
    }
    if (f->fd >= 0)
        close(f->fd);            /* releases the flock */
    pthread_mutex_destroy(&f->map_lock);
    free(f);
}

/* Makes the directory entry of a new file durable: fdatasync() of the file
 * alone does not (fsync(2)), and a power cut could take the whole new
 * database, acknowledged writes included.  Best effort when the directory
 * cannot be opened or does not support fsync; SDB_EIO when it fails. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return SDB_ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return SDB_OK;
    int rc;
    do {
        rc = fsync(fd);
    } while (rc < 0 && errno == EINTR);
    int err = rc < 0 ? errno : 0;
    close(fd);
    return err == EIO ? SDB_EIO : SDB_OK;
}

static int file_open(const char *path, int use_mmap, int create, sdb_backend_t **out)
{
    if (!path || !*path || !out)
        return SDB_EINVAL;
    file_backend_t *f = calloc(1, sizeof(*f));
    if (!f)
        return SDB_ENOMEM;
    f->fd = -1;
    pthread_mutex_init(&f->map_lock, NULL);
    int rc;
    f->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);   /* the owner only */
    if (f->fd < 0) {
        rc = errno == ENOENT || errno == EISDIR || errno == ENOTDIR ? SDB_EINVAL : util_errno_to_sdb(errno);
        goto fail;
    }
    if (flock(f->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? SDB_ELOCKED : SDB_EIO;
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = SDB_EINVAL;
        goto fail;
    }
    /* an empty file is new (or was never initialised): its name must last */
    if (create && st.st_size == 0 && (rc = sync_parent_dir(path)) != SDB_OK)
        goto fail;
    atomic_store(&f->size, (uint64_t)st.st_size);
    f->use_mmap = use_mmap;
    if (use_mmap) {
        f->segs = calloc(MAX_SEGS, sizeof(*f->segs));
        if (!f->segs) {
            rc = SDB_ENOMEM;
            goto fail;
        }
    }
    f->be.read = fb_read;
    f->be.write = fb_write;
    f->be.sync = fb_sync;
    f->be.size = fb_size;
    f->be.map = fb_map;
    f->be.writeback = fb_writeback;
    f->be.release = fb_release;
    f->be.close = fb_close;
    f->be.last_error = fb_last_error;
    *out = &f->be;
    return SDB_OK;
fail:
    fb_close(&f->be);
    return rc;
}

int backend_file_open(const char *path, int use_mmap, sdb_backend_t **out)
{
    return file_open(path, use_mmap, 1, out);
}

int backend_file_open_existing(const char *path, sdb_backend_t **out)
{
    return file_open(path, 0, 0, out);
}
