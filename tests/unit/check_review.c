/*
 * check_review.c -- regression tests from a review of the storage engine
 * (src/engine): each test pins down one bug that was found (and fixed), or
 * one rule of docs/ARCHITECTURE.md sections 1-2 that the review probed, plus a
 * concurrency stress meant to be run under ThreadSanitizer too:
 *
 *   make BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" LDLIBS="-fsanitize=thread" \
 *        build-tsan/check_all && CK_FORK=no build-tsan/check_all review
 *
 * (SDB_STRESS_MS sets how long the stress runs; 600 ms by default.)  Two
 * tests interpose a libc function for the whole test binary, forwarding to
 * the real one: fsync() (counts directory syncs) and, outside sanitizer
 * builds, malloc(), calloc() and realloc() (fail one planner allocation,
 * or the Nth allocation of sdb_check, while armed).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "check_util.h"
#include "engine/backend.h"

/* ---- helpers ---- */

static sdb_config_t small_cfg(int durable)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    cfg.page_cache_pages = 64;
    cfg.durable = durable;
    return cfg;
}

static void put_ok(sdb_t *db, const char *path, const void *d, size_t n)
{
    int rc = sdb_put(db, path, d, n, NULL);
    ck_assert_msg(rc == SDB_OK, "put %s (%zu bytes): %d (%s)", path, n, rc, sdb_strerror(rc));
}

/* A pass-through backend around a memory disk that can refuse, on demand,
 * every write carrying a journal page (ENOSPC: the file system filled up
 * just as the commit's journal group was written, which is where a file
 * grows: the group's pages past the first come from the end of the file). */
typedef struct {
    sdb_backend_t base;
    sdb_backend_t *inner;
    uint32_t page_size;
    _Atomic int full;
    int zero_blocks;               /* while full, all-zero pages (the journal reserving
                                      its pages) are refused too, and journal pages
                                      succeed where zeros were written before (their
                                      blocks exist) */
    uint8_t zeroed[1 << 16];       /* per page: last written with zeros */
} full_be_t;

static int fb2_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    full_be_t *f = (full_be_t *)be;
    return f->inner->read(f->inner, off, buf, len);
}

static int fb2_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    full_be_t *f = (full_be_t *)be;
    const uint8_t *p = buf;
    uint64_t pg0 = off / f->page_size;
    if (atomic_load(&f->full) && off >= 2ull * f->page_size) {
        for (size_t o = 0; o + f->page_size <= len; o += f->page_size) {
            uint64_t pg = pg0 + o / f->page_size;
            int zero = 1;
            for (size_t i = 0; i < f->page_size && zero; i++)
                zero = p[o + i] == 0;
            if (p[o + 4] == 2 /* PT_JOURNAL */ &&
                !(f->zero_blocks && pg < sizeof f->zeroed && f->zeroed[pg]))
                return SDB_ENOSPC;
            if (zero && f->zero_blocks)
                return SDB_ENOSPC;
        }
    }
    int rc = f->inner->write(f->inner, off, buf, len);
    for (size_t o = 0; !rc && o + f->page_size <= len; o += f->page_size) {
        uint64_t pg = pg0 + o / f->page_size;
        int zero = 1;
        for (size_t i = 0; i < f->page_size && zero; i++)
            zero = p[o + i] == 0;
        if (pg < sizeof f->zeroed)
            f->zeroed[pg] = (uint8_t)zero;
    }
    return rc;
}

static int fb2_sync(sdb_backend_t *be)
{
    full_be_t *f = (full_be_t *)be;
    return f->inner->sync(f->inner);
}

static uint64_t fb2_size(sdb_backend_t *be)
{
    full_be_t *f = (full_be_t *)be;
    return f->inner->size(f->inner);
}

static const uint8_t *fb2_map(sdb_backend_t *be, uint64_t off, size_t len)
{
    full_be_t *f = (full_be_t *)be;
    return f->inner->map(f->inner, off, len);
}

static void fb2_close(sdb_backend_t *be)
{
    full_be_t *f = (full_be_t *)be;
    f->inner->close(f->inner);
    free(f);
}

static full_be_t *full_be_new(uint32_t page_size)
{
    full_be_t *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    f->inner = backend_mem_new();
    ck_assert_ptr_nonnull(f->inner);
    f->page_size = page_size;
    f->base.read = fb2_read;
    f->base.write = fb2_write;
    f->base.sync = fb2_sync;
    f->base.size = fb2_size;
    f->base.map = fb2_map;
    f->base.close = fb2_close;
    return f;
}

/* ---- 1. lazy mode: a flushed journal group is lost after page reuse ---- */

/* Lazy mode buffers the records of many commits into one journal group.  With
 * versions_to_keep 0, overwriting /a twice puts VERSION(v1), DROP(v1),
 * VERSION(v2), DROP(v2), VERSION(v3) into that one group.  sdb_flush writes
 * and syncs it; the pages of v1 and v2 are free from then on and the next
 * put reuses them.  If the process dies now (every write reached the file,
 * as after kill -9), the flushed group is the last one of the journal, and
 * replay used to check the data of EVERY version it names -- v1's pages now
 * hold /b's bytes, so the whole group was taken for a torn commit and
 * dropped: /a (flushed, hence acknowledged as durable) vanished.  Replay
 * must only check the versions that survive the group. */
START_TEST(test_lazy_flushed_group_survives_page_reuse)
{
    fault_plan_t plan = {.keep_unsynced = 1};
    sdb_backend_t *fb = backend_fault_new(&plan, NULL, 0);
    ck_assert_ptr_nonnull(fb);
    /* a wrapper whose close leaves fb open, so its image can be taken */
    sdb_config_t cfg = small_cfg(0);
    cfg.versions_to_keep = 0;
    uint8_t *a1 = tu_bytes(2000, 1), *a2 = tu_bytes(2000, 2), *a3 = tu_bytes(2000, 3);
    uint8_t *b = tu_bytes(2000, 4);
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(fb, &cfg, &db));
    put_ok(db, "/a", a1, 2000);
    put_ok(db, "/a", a2, 2000);
    put_ok(db, "/a", a3, 2000);
    CK_OK(sdb_flush(db));          /* /a v3 is durable now */
    put_ok(db, "/b", b, 2000);     /* reuses the pages of v1 (lazy: not synced) */
    uint8_t *img;
    size_t len;
    CK_OK(backend_fault_image(fb, &img, &len)); /* the process dies here */
    CK_OK(sdb_close(db));

    sdb_backend_t *mb = backend_mem_from(img, len);
    ck_assert_ptr_nonnull(mb);
    free(img);
    CK_OK(sdb_open_backend(mb, &cfg, &db));
    void *p = NULL;
    size_t n = 0;
    int rc = sdb_get(db, "/a", &p, &n, NULL);
    ck_assert_msg(rc == SDB_OK, "/a was flushed (durable) but after a crash reads %d (%s)", rc,
                  sdb_strerror(rc));
    ck_assert_msg(n == 2000 && memcmp(p, a3, 2000) == 0, "/a: wrong bytes after reopen");
    free(p);
    CK_OK(sdb_close(db));
    free(a1);
    free(a2);
    free(a3);
    free(b);
}
END_TEST

/* The rule "check only the versions that survive the group" must keep the
 * torn-commit check for the versions that do survive: when the data of the
 * last group's live version is incomplete (here: its first page zeroed, as a
 * power cut before the data reached the disk leaves it), the group is not
 * applied, and no wrong bytes are served. */
START_TEST(test_torn_last_group_still_refused)
{
    sdb_config_t cfg = small_cfg(1);
    cfg.versions_to_keep = 0;
    fault_plan_t none = {0};
    sdb_backend_t *fb = backend_fault_new(&none, NULL, 0);
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(fb, &cfg, &db));
    uint8_t *x = tu_bytes(3000, 9), *y = tu_bytes(3000, 10);
    put_ok(db, "/x", x, 3000);
    put_ok(db, "/y", y, 3000);     /* the last journal group */
    uint8_t *img;
    size_t len;
    CK_OK(backend_fault_image(fb, &img, &len));
    CK_OK(sdb_close(db));
    /* zero /y's first data page */
    size_t at = 0;
    for (size_t o = 2 * 512; o + 512 <= len; o += 512)
        if (memcmp(img + o + 48, y, 464) == 0)
            at = o;
    ck_assert_msg(at != 0, "data page of /y not found");
    memset(img + at, 0, 512);
    sdb_backend_t *mb = backend_mem_from(img, len);
    free(img);
    CK_OK(sdb_open_backend(mb, &cfg, &db));
    tu_expect_get(db, "/x", x, 3000);
    tu_expect_absent(db, "/y");
    CK_OK(sdb_close(db));
    free(x);
    free(y);
}
END_TEST

/* ---- 2. a full database or file system must not make the handle fatal ---- */

/* Loop 0: the database reaches max_db_size (the data first, then the
 * journal's pages up to the reserve kept for deletes); loop 1: the file
 * system is full when the journal group is written (ENOSPC).  Neither is a failed sync: the commit fails
 * (ETOOLARGE / ENOSPC), nothing of it is visible, and once space is back the
 * same handle commits again.  The engine used to turn both into its sticky
 * EIO state (every later write refused until reopen). */
START_TEST(test_full_not_sticky)
{
    sdb_config_t cfg = small_cfg(_i < 2);   /* loops 2 and 3: lazy mode */
    uint8_t *d = tu_bytes(64 * 464, 21);
    sdb_t *db = NULL;
    full_be_t *fbe = NULL;
    int full_db = _i % 2 == 0;
    if (full_db) {
        cfg.max_db_size = 64 * 512;
        CK_OK(sdb_open_memory(&cfg, &db));
    } else {
        fbe = full_be_new(cfg.page_size);
        CK_OK(sdb_open_backend(&fbe->base, &cfg, &db));
    }
    put_ok(db, "/keep", d, 100);
    put_ok(db, "/keep2", d, 100);
    int rc;
    if (!cfg.durable)
        CK_OK(sdb_flush(db));     /* lazy: the put's group is written at its flush */
    if (full_db) {
        /* take every page the limit allows for the data: the journal keeps
           the pages it reserves for its next groups apart, so this commits */
        sdb_stats_t st;
        CK_OK(sdb_stats(db, &st));
        uint64_t avail = st.free_pages + 64 - st.total_pages;
        ck_assert(avail > 2 && avail < 64);
        rc = sdb_put(db, "/fill", d, (size_t)avail * 464, NULL);
        if (!cfg.durable && rc == SDB_OK)    /* lazy: the group is written now */
            rc = sdb_flush(db);
        ck_assert_msg(rc == SDB_OK, "filling put: %d (%s)", rc, sdb_strerror(rc));
        CK_RC(sdb_put(db, "/more", d, 100, NULL), SDB_ETOOLARGE);   /* no data page */
        /* puts without data take the journal's reserved pages, but not the
           last ones: those are for commits that free space */
        char zp[32];
        int k = 0;
        for (rc = SDB_OK; k < 40 && rc == SDB_OK; k++) {
            snprintf(zp, sizeof zp, "/z%d", k);
            rc = sdb_put(db, zp, d, 0, NULL);
            if (!cfg.durable && rc == SDB_OK)
                rc = sdb_flush(db);
        }
        ck_assert_msg(rc == SDB_ETOOLARGE && k > 1, "put %s at the journal's reserve: %d (%s)",
                      zp, rc, sdb_strerror(rc));
        if (cfg.durable)
            tu_expect_absent(db, zp);
        /* (lazy mode acknowledged it before its group could be written; the
           flush below writes it with the delete) */
        rc = sdb_delete(db, "/fill");
        ck_assert_msg(rc == SDB_OK, "delete in a full database: %d (%s)", rc, sdb_strerror(rc));
        if (!cfg.durable)
            CK_OK(sdb_flush(db));
    } else {
        atomic_store(&fbe->full, 1);
        rc = sdb_put(db, "/fill", d, 1000, NULL);
        if (!cfg.durable && rc == SDB_OK)
            rc = sdb_flush(db);
        ck_assert_msg(rc == SDB_ENOSPC, "put on a full disk: %d (%s)", rc, sdb_strerror(rc));
        atomic_store(&fbe->full, 0); /* the administrator made room */
        if (!cfg.durable)
            CK_OK(sdb_delete(db, "/fill"));
    }
    tu_expect_absent(db, "/fill");
    /* the handle is not in its fatal state: writes go on */
    rc = sdb_delete(db, "/keep");
    ck_assert_msg(rc == SDB_OK, "delete after a %s commit: %d (%s): the handle went fatal",
                  full_db ? "too large" : "disk-full", rc, sdb_strerror(rc));
    put_ok(db, "/after", d, 1000);
    tu_expect_get(db, "/after", d, 1000);
    tu_expect_get(db, "/keep2", d, 100);
    tu_expect_absent(db, "/keep");
    CK_OK(sdb_flush(db));
    free(d);
    CK_OK(sdb_close(db));
}
END_TEST

/* A file system with room for `blocks` pages: a page takes a block when it
 * is first written (holes and the end of the file take none), and a write
 * that needs more blocks than are left fails with ENOSPC and changes
 * nothing, as a full disk does.  Writes inside blocks already taken succeed. */
typedef struct {
    sdb_backend_t base;
    sdb_backend_t *inner;
    pthread_mutex_t lock;
    uint8_t *backed;               /* one byte per page */
    uint64_t npages, used, blocks;
    _Atomic uint64_t enospc;       /* writes refused */
} disk_be_t;

static int dk_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    disk_be_t *k = (disk_be_t *)be;
    return k->inner->read(k->inner, off, buf, len);
}

static int dk_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    disk_be_t *k = (disk_be_t *)be;
    uint64_t first = off / 512, last = (off + len + 511) / 512, need = 0;
    pthread_mutex_lock(&k->lock);
    ck_assert(last <= k->npages);
    for (uint64_t p = first; p < last; p++)
        need += !k->backed[p];
    int rc = SDB_ENOSPC;
    if (need == 0 || k->used + need <= k->blocks) {
        rc = k->inner->write(k->inner, off, buf, len);
        if (!rc) {
            for (uint64_t p = first; p < last; p++)
                k->backed[p] = 1;
            k->used += need;
        }
    } else {
        atomic_fetch_add(&k->enospc, 1);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static int dk_sync(sdb_backend_t *be)
{
    disk_be_t *k = (disk_be_t *)be;
    return k->inner->sync(k->inner);
}

static uint64_t dk_size(sdb_backend_t *be)
{
    disk_be_t *k = (disk_be_t *)be;
    return k->inner->size(k->inner);
}

static void dk_close(sdb_backend_t *be)
{
    (void)be;                      /* dk_free() after the test looked at it */
}

/* A disk of `blocks` pages holding img (every page of it taken). */
static disk_be_t *dk_new(uint64_t blocks, const uint8_t *img, size_t len)
{
    disk_be_t *k = calloc(1, sizeof(*k));
    ck_assert_ptr_nonnull(k);
    fault_plan_t none = {0};
    k->inner = backend_fault_new(&none, img, len);
    ck_assert_ptr_nonnull(k->inner);
    k->npages = 1 << 20;
    k->backed = calloc(k->npages, 1);
    ck_assert_ptr_nonnull(k->backed);
    memset(k->backed, 1, len / 512);
    k->used = len / 512;
    k->blocks = blocks;
    pthread_mutex_init(&k->lock, NULL);
    k->base.read = dk_read;
    k->base.write = dk_write;
    k->base.sync = dk_sync;
    k->base.size = dk_size;
    k->base.close = dk_close;
    return k;
}

static void dk_free(disk_be_t *k)
{
    k->inner->close(k->inner);
    pthread_mutex_destroy(&k->lock);
    free(k->backed);
    free(k);
}

#define DF_T 4
#define DF_MAX 400

typedef struct {
    sdb_t *db;
    int t;
    const uint8_t *d;
    int n;                         /* puts acknowledged: /df<t>/<i> for i < n */
    size_t len[DF_MAX];
    int full, bad;
} df_arg_t;

static size_t df_len(int t, int i)
{
    return (size_t)((t * 7 + i * 13) % 20) * 464 + 100;
}

static void *df_writer(void *p)
{
    df_arg_t *a = p;
    char path[32];
    for (int i = 0; a->n < DF_MAX && a->full < 30 && i < 5 * DF_MAX; i++) {
        snprintf(path, sizeof path, "/df%d/%03d", a->t, a->n);
        size_t len = df_len(a->t, i);
        int rc = sdb_put(a->db, path, a->d, len, NULL);
        if (rc == SDB_OK)
            a->len[a->n++] = len;
        else if (rc == SDB_ENOSPC || rc == SDB_ETOOLARGE)
            a->full++;
        else
            a->bad = rc;
    }
    return NULL;
}

/* Deletes every path the writers acknowledged: each delete must commit. */
static void df_delete_all(sdb_t *db, const df_arg_t *a, const char *where)
{
    char path[32];
    for (int t = 0; t < DF_T; t++)
        for (int i = 0; i < a[t].n; i++) {
            snprintf(path, sizeof path, "/df%d/%03d", t, i);
            sdb_stats_t st;
            int rc = sdb_delete(db, path);
            CK_OK(sdb_stats(db, &st));
            ck_assert_msg(rc == SDB_OK, "%s: delete %s: %d (%s) with %llu of %llu pages free",
                          where, path, rc, sdb_strerror(rc), (unsigned long long)st.free_pages,
                          (unsigned long long)st.total_pages);
        }
}

/* Several writers fill the disk (0: a file system that runs out of blocks,
 * 1: max_db_size); then every document can be deleted through the API, the
 * space it frees takes new puts, and the same holds after a crash (the
 * image reopened on the same full disk).  Deletes used to fail with NO_SPACE
 * for good: the page reserved for the next journal group could be one that
 * had no block on the full disk (taken at the end of the file by a write
 * that failed, then given back), and a delete's group needs a page for the
 * group after it that a full database did not have. */
START_TEST(test_full_disk_delete_all)
{
    sdb_config_t cfg = small_cfg(1);
    const uint64_t pages = 1500;
    disk_be_t *k = dk_new(_i == 0 ? pages : UINT64_MAX, NULL, 0);
    if (_i == 1)
        cfg.max_db_size = pages * 512;
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(&k->base, &cfg, &db));
    uint8_t *d = tu_bytes(20 * 464 + 100, 31);
    df_arg_t a[DF_T];
    pthread_t th[DF_T];
    for (int t = 0; t < DF_T; t++) {
        a[t] = (df_arg_t){ .db = db, .t = t, .d = d };
        ck_assert_int_eq(pthread_create(&th[t], NULL, df_writer, &a[t]), 0);
    }
    int acked = 0;
    for (int t = 0; t < DF_T; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(a[t].bad == 0, "writer %d: %s", t, sdb_strerror(a[t].bad));
        ck_assert_msg(a[t].full > 0, "writer %d never saw the disk full", t);
        acked += a[t].n;
    }
    ck_assert_msg(acked > 20, "only %d puts fit", acked);
    if (_i == 0)
        ck_assert_msg(atomic_load(&k->enospc) > 0, "the disk never refused a write");
    uint8_t *img;
    size_t len;
    CK_OK(backend_fault_image(k->inner, &img, &len));    /* the power fails now */

    df_delete_all(db, a, "live");
    /* the space freed takes puts again */
    for (int i = 0; i < 10; i++) {
        char path[32];
        snprintf(path, sizeof path, "/again/%d", i);
        int rc = sdb_put(db, path, d, 10 * 464, NULL);
        ck_assert_msg(rc == SDB_OK, "put %s after emptying: %d (%s)", path, rc, sdb_strerror(rc));
    }
    CK_OK(sdb_close(db));
    dk_free(k);

    /* the crash image on the same full disk */
    k = dk_new(_i == 0 ? pages : UINT64_MAX, img, len);
    free(img);
    CK_OK(sdb_open_backend(&k->base, &cfg, &db));
    for (int t = 0; t < DF_T; t++)
        for (int i = 0; i < a[t].n; i++) {
            char path[32];
            snprintf(path, sizeof path, "/df%d/%03d", t, i);
            tu_expect_get(db, path, d, a[t].len[i]);
        }
    df_delete_all(db, a, "after a crash");
    put_ok(db, "/again", d, 10 * 464);
    CK_OK(sdb_close(db));
    dk_free(k);
    free(d);
}
END_TEST

/* After a refused journal group, a crash at any later point must still
 * recover exactly the acknowledged state: the refused group's pages (written
 * in part, with this file's id and the next sequence number) must not be
 * replayed nor be taken for a cut journal. */
START_TEST(test_full_then_crash)
{
    sdb_config_t cfg = small_cfg(!_i);     /* loop 1: lazy mode */
    int lazy = _i;
    uint8_t *d = tu_bytes(8000, 22);
    char longp[2000];
    memset(longp, 'p', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = 0;
    for (int crash_after = 0; crash_after < 3; crash_after++) {
        full_be_t *fbe = full_be_new(cfg.page_size);
        sdb_t *db = NULL;
        CK_OK(sdb_open_backend(&fbe->base, &cfg, &db));
        put_ok(db, "/a", d, 3000);
        if (lazy)
            CK_OK(sdb_flush(db));
        atomic_store(&fbe->full, 1);
        /* a long path: a journal group of several pages, refused.  Lazy
           mode writes its group only at the sync (here the flush), on pages
           it reserved (wrote with zeros) as its buffered records grew: puts
           of long paths are acknowledged while reserved pages last, then
           refused at once; the flush, on the full disk, writes every one
           acknowledged.  (It used to acknowledge them all and refuse the
           flush.) */
        int nlong = 0;
        if (lazy) {
            fbe->zero_blocks = 1;
            put_ok(db, "/c", d + 3, 1000);
            int rc = SDB_OK;
            for (; nlong < 40; nlong++) {
                longp[1] = (char)('A' + nlong);
                if ((rc = sdb_put(db, longp, d, 5000, NULL)) != SDB_OK)
                    break;
            }
            ck_assert_msg(rc == SDB_ENOSPC, "lazy puts of long paths on a full disk: %d "
                          "acknowledged, then %d (%s)", nlong, rc, sdb_strerror(rc));
            tu_expect_absent(db, longp);
            CK_OK(sdb_flush(db));
            tu_expect_get(db, "/c", d + 3, 1000);
            fbe->zero_blocks = 0;
            longp[1] = 'p';
        } else {
            CK_RC(sdb_put(db, longp, d, 5000, NULL), SDB_ENOSPC);
        }
        atomic_store(&fbe->full, 0);
        if (crash_after > 0) {
            put_ok(db, "/b", d + 1, 2000);
            if (lazy)
                CK_OK(sdb_flush(db));         /* writes the kept records too */
        }
        if (crash_after > 1) {
            put_ok(db, longp, d + 2, 4000);
            if (lazy)
                CK_OK(sdb_flush(db));
        }
        /* the process dies: take the file as it is */
        uint8_t *img;
        size_t len;
        CK_OK(backend_mem_dump(fbe->inner, &img, &len));
        sdb_close(db);
        sdb_backend_t *mb = backend_mem_from(img, len);
        free(img);
        CK_OK(sdb_open_backend(mb, &cfg, &db));
        tu_expect_get(db, "/a", d, 3000);
        if (crash_after > 0)
            tu_expect_get(db, "/b", d + 1, 2000);
        else
            tu_expect_absent(db, "/b");
        if (crash_after > 1)
            tu_expect_get(db, longp, d + 2, 4000);
        else
            tu_expect_absent(db, longp);
        if (lazy) {
            tu_expect_get(db, "/c", d + 3, 1000);   /* flushed on the full disk */
            for (int k = 0; k <= nlong; k++) {
                longp[1] = (char)('A' + k);
                if (k < nlong)
                    tu_expect_get(db, longp, d, 5000);
                else
                    tu_expect_absent(db, longp);    /* refused */
            }
            longp[1] = 'p';
        }
        CK_OK(sdb_close(db));
    }
    free(d);
}
END_TEST

/* Lazy mode on a file system that fills up (a disk of so many blocks, as
 * above) while puts are buffered: a put is acknowledged only once the pages
 * its journal records take at the sync are in hand (written with zeros), so
 * every put acknowledged with SDB_OK is durable after sdb_flush on the full
 * disk, and the refused ones (SDB_ENOSPC, at the put) are absent.  Unbinds
 * and deletes of earlier documents succeed with the acknowledged puts still
 * buffered, and the space freed takes new puts.  Every third put has no
 * data, so that only its journal records can find the disk full.  Lazy
 * mode used to acknowledge every put whose data fitted and refuse the
 * flush: their one group had no blocks (nor had the deletes' group, which
 * carries them).  The engine clock is stopped: no timed sync. */
START_TEST(test_lazy_full_acked_durable)
{
    sdb_config_t cfg = small_cfg(0);
    sdb_test_clock_freeze(1);
    disk_be_t *k = dk_new(UINT64_MAX, NULL, 0);
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(&k->base, &cfg, &db));
    sdb_test_checkpoint_pause(db, 1);
    uint8_t *d = tu_bytes(4000, 41);
    char path[32];
    sdb_id_t ids[10];
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "/old/%02d", i);
        sdb_docinfo_t info;
        CK_OK(sdb_put(db, path, d + i, 1400, &info));
        if (i < 10) {                  /* a second path, unbound on the full disk */
            ids[i] = info.id;
            snprintf(path, sizeof path, "/alias/%02d", i);
            CK_OK(sdb_bind(db, &ids[i], path));
        }
    }
    CK_OK(sdb_flush(db));
    pthread_mutex_lock(&k->lock);
    k->blocks = k->used + 60;      /* the file system fills up now */
    pthread_mutex_unlock(&k->lock);
    enum { NEW = 1500 };
    int acked[NEW] = { 0 }, n = 0, nacked = 0, refused = 0, refused_nodata = 0;
    for (; n < NEW && refused_nodata < 3; n++) {
        snprintf(path, sizeof path, "/new/%04d", n);
        size_t len = n % 3 == 2 ? 0 : 300;
        int rc = sdb_put(db, path, d + n % 1000, len, NULL);
        ck_assert_msg(rc == SDB_OK || rc == SDB_ENOSPC, "put %s: %d (%s)", path, rc,
                      sdb_strerror(rc));
        acked[n] = rc == SDB_OK;
        nacked += acked[n];
        refused += !acked[n];
        refused_nodata += !acked[n] && len == 0;
    }
    ck_assert_msg(nacked > 10 && refused_nodata == 3,
                  "%d puts acknowledged, %d refused (%d without data)", nacked, refused,
                  refused_nodata);
    /* unbinds and deletes on the full disk, with the acknowledged puts
       buffered */
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "/alias/%02d", i);
        int rc = sdb_unbind(db, &ids[i], path);
        ck_assert_msg(rc == SDB_OK, "unbind %s on the full disk: %d (%s)", path, rc,
                      sdb_strerror(rc));
    }
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "/old/%02d", i);
        int rc = sdb_delete(db, path);
        ck_assert_msg(rc == SDB_OK, "delete %s on the full disk: %d (%s)", path, rc,
                      sdb_strerror(rc));
    }
    int rc = sdb_flush(db);
    ck_assert_msg(rc == SDB_OK, "flush of %d acknowledged puts: %d (%s)", nacked, rc,
                  sdb_strerror(rc));
    uint8_t *img;
    size_t len;
    CK_OK(backend_fault_image(k->inner, &img, &len));    /* the power fails now */
    /* the space freed takes puts again */
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/again/%02d", i);
        put_ok(db, path, d + i, 1400);
    }
    CK_OK(sdb_flush(db));
    CK_OK(sdb_close(db));
    uint8_t *img2;
    size_t len2;
    CK_OK(backend_fault_image(k->inner, &img2, &len2));
    dk_free(k);

    for (int round = 0; round < 2; round++) {
        /* round 0: the image of the power cut; 1: the file after close */
        k = round ? dk_new(UINT64_MAX, img2, len2) : dk_new(UINT64_MAX, img, len);
        CK_OK(sdb_open_backend(&k->base, &cfg, &db));
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "/new/%04d", i);
            if (acked[i])
                tu_expect_get(db, path, d + i % 1000, i % 3 == 2 ? 0 : 300);
            else
                tu_expect_absent(db, path);
        }
        for (int i = 0; i < 40; i++) {
            snprintf(path, sizeof path, i < 10 ? "/alias/%02d" : "/old/%02d", i);
            tu_expect_absent(db, path);
            snprintf(path, sizeof path, "/old/%02d", i);
            tu_expect_absent(db, path);
        }
        for (int i = 0; round == 1 && i < 20; i++) {
            snprintf(path, sizeof path, "/again/%02d", i);
            tu_expect_get(db, path, d + i, 1400);
        }
        CK_OK(sdb_close(db));
        dk_free(k);
    }
    free(img);
    free(img2);
    free(d);
    sdb_test_clock_freeze(0);
}
END_TEST

/* ---- 3. a streamed document that fits is refused near max_db_size ---- */

/* A streamed writer asks for 8, 16, 32, ... pages at a time; the allocator
 * refused a request that ran past max_db_size instead of handing out the
 * pages that remain, so a document that fits (sdb_put of the same bytes
 * succeeds) failed with ETOOLARGE when streamed. */
START_TEST(test_stream_fits_near_limit)
{
    sdb_config_t cfg = small_cfg(1);
    cfg.max_db_size = 100 * 512;
    size_t n = 26000;              /* 57 pages of 464 bytes */
    uint8_t *d = tu_bytes(n, 31);
    for (int streamed = 0; streamed < 2; streamed++) {
        sdb_t *db = NULL;
        CK_OK(sdb_open_memory(&cfg, &db));
        if (!streamed) {
            put_ok(db, "/doc", d, n);
        } else {
            sdb_writer_t *w;
            CK_OK(sdb_writer_open(db, "/doc", UINT64_MAX, &w));
            int rc = SDB_OK;
            for (size_t off = 0; off < n && rc == SDB_OK; off += 1000)
                rc = sdb_writer_write(w, d + off, n - off < 1000 ? n - off : 1000);
            ck_assert_msg(rc == SDB_OK, "streaming %zu bytes (57 of 100 pages): %d (%s)", n, rc,
                          sdb_strerror(rc));
            CK_OK(sdb_writer_commit(w, NULL));
        }
        tu_expect_get(db, "/doc", d, n);
        CK_OK(sdb_close(db));
    }
    free(d);
}
END_TEST

/* ---- 4. a huge page_cache_pages hangs sdb_open ---- */

/* pcache_new sized its hash table with `while (nbuckets < pages * 2)
 * nbuckets *= 2` in 32 bits: above 2^30 pages, pages * 2 wraps past 2^31 and
 * nbuckets overflows to 0, an endless loop inside sdb_open. */
START_TEST(test_huge_cache_config)
{
    sdb_config_t cfg = small_cfg(1);
    cfg.page_cache_pages = 0x50000000u;
    fault_plan_t none = {0};
    sdb_backend_t *fb = backend_fault_new(&none, NULL, 0); /* no map(): the cache is used */
    sdb_t *db = NULL;
    /* used to never return; over 2^30 pages is refused as out of memory */
    CK_RC(sdb_open_backend(fb, &cfg, &db), SDB_ENOMEM);
}
END_TEST

/* ---- 5. creating a database file makes its directory entry durable ---- */

/* fdatasync() of a new file does not make its directory entry durable
 * (fsync(2): "an explicit fsync() on a file descriptor for the directory is
 * also needed").  Without it, the first acknowledged writes of a new database
 * can vanish with the whole file after a power cut.  This test interposes
 * fsync() for the whole test binary (forwarding to the system call) and
 * counts the calls made on directories. */
static _Atomic int dir_fsyncs;

int fsync(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        atomic_fetch_add(&dir_fsyncs, 1);
    return (int)syscall(SYS_fsync, fd);
}

START_TEST(test_create_syncs_directory)
{
    char path[512];
    tu_file(path, sizeof path, "newdb");
    sdb_t *db = NULL;
    int before = atomic_load(&dir_fsyncs);
    CK_OK(sdb_open(path, NULL, &db));
    put_ok(db, "/first", "x", 1);   /* acknowledged: durable, file and name */
    ck_assert_msg(atomic_load(&dir_fsyncs) > before,
                  "a new database file was created and written without an fsync of its "
                  "directory");
    CK_OK(sdb_close(db));
    /* reopening an existing file needs none */
    before = atomic_load(&dir_fsyncs);
    CK_OK(sdb_open(path, NULL, &db));
    CK_OK(sdb_close(db));
    ck_assert_int_eq(atomic_load(&dir_fsyncs), before);
}
END_TEST

/* ---- 5b. a crash while a new database file is created ---- */

/* sdb_open of a new file writes two zero header pages and the two slots,
 * then syncs.  A crash in between leaves zeros and pieces of slots: nothing
 * was acknowledged, yet every later sdb_open returned CORRUPT ("not a
 * StreamDb file") and the file had to be deleted by hand.  It must open as a
 * new, empty database.  A file with data past its header pages is still
 * refused when both slots are bad. */
START_TEST(test_crash_during_create)
{
    sdb_config_t cfg = small_cfg(1);
    cfg.page_size = _i ? 4096 : 512;
    for (uint64_t k = 1; k <= 4; k++)
        for (int mode = 0; mode < 3; mode++) {
            fault_plan_t plan = {.crash_at_write = k <= 3 ? k : 0, .crash_at_sync = k == 4,
                                 .keep_unsynced = mode, .tear_last = 1, .seed = (uint32_t)k};
            sdb_backend_t *fb = backend_fault_new(&plan, NULL, 0);
            sdb_t *db = NULL;
            int rc = sdb_open_backend(fb, &cfg, &db); /* takes fb: closes it on failure */
            ck_assert_msg(rc == SDB_EIO, "crash at step %llu: open %s", (unsigned long long)k,
                          sdb_strerror(rc));
            (void)db;
        }
    /* the same through images: build each crash image by hand */
    for (int variant = 0; variant < 4; variant++) {
        size_t ps = cfg.page_size, len = variant == 0 ? ps / 2 : 2 * ps;
        uint8_t *img = calloc(1, len);
        if (variant >= 2) {        /* a torn slot: its first half */
            sdb_t *tmp = NULL;
            CK_OK(sdb_open_memory(&cfg, &tmp));
            CK_OK(sdb_close(tmp));
            fault_plan_t none = {0};
            sdb_backend_t *fb = backend_fault_new(&none, NULL, 0);
            CK_OK(sdb_open_backend(fb, &cfg, &tmp));
            uint8_t *full;
            size_t flen;
            CK_OK(backend_fault_image(fb, &full, &flen));
            CK_OK(sdb_close(tmp));
            memcpy(img, full, 50);                         /* slot 0, torn */
            if (variant == 3)
                memcpy(img + ps, full + ps, 60);           /* slot 1, torn */
            free(full);
        }
        sdb_backend_t *mb = backend_mem_from(img, len);
        sdb_t *db = NULL;
        int rc = sdb_open_backend(mb, &cfg, &db);
        ck_assert_msg(rc == SDB_OK, "variant %d: reopening a torn new file: %s", variant,
                      sdb_strerror(rc));
        put_ok(db, "/x", "abc", 3);
        tu_expect_get(db, "/x", "abc", 3);
        CK_OK(sdb_close(db));
        free(img);
    }
    /* both slots destroyed in a database with content: still CORRUPT */
    {
        fault_plan_t none = {0};
        sdb_backend_t *fb = backend_fault_new(&none, NULL, 0);
        sdb_t *db = NULL;
        CK_OK(sdb_open_backend(fb, &cfg, &db));
        put_ok(db, "/x", "abc", 3);
        uint8_t *img;
        size_t len;
        CK_OK(backend_fault_image(fb, &img, &len));
        CK_OK(sdb_close(db));
        memset(img, 0, 2 * (size_t)cfg.page_size);
        sdb_backend_t *mb = backend_mem_from(img, len);
        free(img);
        CK_RC(sdb_open_backend(mb, &cfg, &db), SDB_ECORRUPT);
    }
}
END_TEST

/* ---- 5c. sdb_check of a missing file ---- */

/* sdb_check opened the file like sdb_open, creating it: checking a mistyped
 * path left an empty file behind (and with repair, a new database). */
START_TEST(test_check_missing_file)
{
    char path[512];
    tu_file(path, sizeof path, "missing");
    for (int repair = 0; repair < 2; repair++) {
        char *report = NULL;
        int rc = sdb_check(path, repair, &report);
        ck_assert_msg(rc == SDB_EINVAL, "check (repair %d) of a missing file: %s", repair,
                      sdb_strerror(rc));
        free(report);
        ck_assert_msg(access(path, F_OK) != 0, "sdb_check (repair %d) created %s", repair, path);
    }
}
END_TEST

/* ---- 6. semantics of docs/ARCHITECTURE.md section 1 probed by the review ---- */

typedef struct {
    int n;
    char paths[8][64];
    uint64_t versions[8];
} coll_t;

static int coll_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    coll_t *c = arg;
    if (c->n < 8) {
        snprintf(c->paths[c->n], 64, "%s%s", path ? path : "(null)", info ? "" : "*");
        c->versions[c->n] = info ? info->version : 0;
    }
    c->n++;
    return 0;
}

START_TEST(test_semantics)
{
    sdb_config_t cfg = small_cfg(1);
    sdb_t *db = NULL;
    CK_OK(sdb_open_memory(&cfg, &db));
    sdb_docinfo_t a, e, i2;
    CK_OK(sdb_put(db, "/a", "A1", 2, &a));
    CK_OK(sdb_put(db, "/e", "E1", 2, &e));
    /* bind: a second path; a write through either path is a new version of D */
    CK_OK(sdb_bind(db, &a.id, "/a2"));
    CK_OK(sdb_put(db, "/a2", "A2", 2, &i2));
    ck_assert(tu_id_eq(&i2.id, &a.id) && i2.version == 2);
    ck_assert_int_eq(i2.created_ms, a.created_ms);
    tu_expect_get(db, "/a", "A2", 2);
    /* bind moves /e to D; E survives with no path, by id */
    CK_OK(sdb_bind(db, &a.id, "/e"));
    tu_expect_get(db, "/e", "A2", 2);
    tu_expect_get_id(db, &e.id, 0, "E1", 2);
    CK_OK(sdb_bind(db, &a.id, "/e"));               /* already bound there: no-op */
    CK_RC(sdb_unbind(db, &e.id, "/e"), SDB_ENOTFOUND); /* bound to another id */
    /* delete(path) of a document with other paths only unbinds */
    CK_OK(sdb_delete(db, "/a2"));
    tu_expect_get(db, "/a", "A2", 2);
    /* unbind keeps the document, even without paths */
    CK_OK(sdb_unbind(db, &a.id, "/a"));
    CK_OK(sdb_unbind(db, &a.id, "/e"));
    tu_expect_get_id(db, &a.id, 0, "A2", 2);
    tu_expect_get_id(db, &a.id, 1, "A1", 2);
    coll_t c = {0};
    CK_OK(sdb_list_paths(db, &a.id, coll_cb, &c));
    ck_assert_int_eq(c.n, 0);
    memset(&c, 0, sizeof c);
    CK_OK(sdb_list_versions(db, &a.id, coll_cb, &c));
    ck_assert_int_eq(c.n, 2);
    ck_assert(c.versions[0] == 2 && c.versions[1] == 1);
    /* a write to an unbound path creates a new document */
    sdb_docinfo_t n1;
    CK_OK(sdb_put(db, "/a", "N1", 2, &n1));
    ck_assert(!tu_id_eq(&n1.id, &a.id) && n1.version == 1);
    /* conditional writes */
    CK_RC(sdb_put_if(db, "/a", "N2", 2, 0, NULL), SDB_ECONFLICT);
    CK_RC(sdb_put_if(db, "/zz", "Z", 1, 1, NULL), SDB_ECONFLICT);
    CK_OK(sdb_put_if(db, "/zz", "Z", 1, 0, NULL));
    CK_OK(sdb_put_if(db, "/a", "N2", 2, 1, NULL));
    /* delete_id removes every path */
    CK_OK(sdb_bind(db, &a.id, "/x/1"));
    CK_OK(sdb_bind(db, &a.id, "/x/2"));
    CK_OK(sdb_delete_id(db, &a.id));
    tu_expect_absent(db, "/x/1");
    tu_expect_absent(db, "/x/2");
    CK_RC(sdb_bind(db, &a.id, "/x/3"), SDB_ENOTFOUND);
    /* search: prefix itself, delimiter roll-up, cursor past a rolled-up prefix */
    CK_OK(sdb_put(db, "/p/", "", 0, NULL));
    CK_OK(sdb_put(db, "/p/a/1", "1", 1, NULL));
    CK_OK(sdb_put(db, "/p/a/2", "2", 1, NULL));
    CK_OK(sdb_put(db, "/p/b", "3", 1, NULL));
    sdb_search_opts_t o = {.delimiter = '/'};
    memset(&c, 0, sizeof c);
    CK_OK(sdb_search(db, "/p/", &o, coll_cb, &c));
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.paths[0], "/p/");
    ck_assert_str_eq(c.paths[1], "/p/a/*");
    ck_assert_str_eq(c.paths[2], "/p/b");
    o.start_after = "/p/a/";
    o.limit = 1;
    memset(&c, 0, sizeof c);
    CK_OK(sdb_search(db, "/p/", &o, coll_cb, &c));
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.paths[0], "/p/b");
    /* zero-length documents read back */
    tu_expect_get(db, "/p/", "", 0);
    CK_OK(sdb_close(db));
}
END_TEST

/* versions_to_keep 0 with a reader on the old version: the reader finishes
 * that exact version while its pages would be reused by later writes. */
START_TEST(test_reader_snapshot_keep0)
{
    sdb_config_t cfg = small_cfg(_i);
    cfg.versions_to_keep = 0;
    cfg.page_cache_pages = 8;
    fault_plan_t none = {0};
    sdb_backend_t *fb = backend_fault_new(&none, NULL, 0); /* page cache path */
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(fb, &cfg, &db));
    uint8_t *v1 = tu_bytes(20000, 41);
    put_ok(db, "/s", v1, 20000);
    sdb_reader_t *r;
    sdb_docinfo_t info;
    CK_OK(sdb_reader_open(db, "/s", &r, &info));
    uint8_t buf[700];
    size_t got = 0, n;
    CK_OK(sdb_reader_read(r, buf, sizeof buf, &n));
    ck_assert(memcmp(buf, v1, n) == 0);
    got += n;
    for (int k = 0; k < 20; k++) {
        uint8_t *x = tu_bytes(20000, 100 + (uint32_t)k);
        put_ok(db, "/s", x, 20000);
        put_ok(db, "/t", x, 20000);
        free(x);
        if (k == 10)
            CK_OK(sdb_flush(db));
    }
    CK_OK(sdb_delete(db, "/s"));
    CK_OK(sdb_flush(db));
    for (;;) {
        CK_OK(sdb_reader_read(r, buf, sizeof buf, &n));
        if (n == 0)
            break;
        ck_assert_msg(memcmp(buf, v1 + got, n) == 0, "snapshot bytes differ at %zu", got);
        got += n;
    }
    ck_assert_uint_eq(got, 20000);
    sdb_reader_close(r);
    CK_OK(sdb_close(db));
    free(v1);
}
END_TEST

/* ---- 7. concurrency stress (run it under TSan too) ---- */

#define ST_PATHS 12
#define ST_HDR 8

typedef struct {
    sdb_t *db;
    int id;
    _Atomic int *stop;
    _Atomic int *errors;
    char msg[256];
} st_arg_t;

static size_t st_len(uint32_t seed)
{
    return ST_HDR + (seed * 2654435761u) % 6000;
}

/* Content: the seed (8 bytes) then tu_fill(seed): self-describing. */
static uint8_t *st_content(uint32_t seed, size_t *len)
{
    *len = st_len(seed);
    uint8_t *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    memset(b, 0, ST_HDR);
    memcpy(b, &seed, sizeof seed);
    tu_fill(b + ST_HDR, *len - ST_HDR, seed);
    return b;
}

static int st_valid(const uint8_t *p, size_t n)
{
    if (n < ST_HDR)
        return 0;
    uint32_t seed;
    memcpy(&seed, p, sizeof seed);
    if (st_len(seed) != n)
        return 0;
    uint8_t *exp = malloc(n);
    tu_fill(exp, n - ST_HDR, seed);
    int ok = memcmp(exp, p + ST_HDR, n - ST_HDR) == 0;
    free(exp);
    return ok;
}

static void st_fail(st_arg_t *a, const char *what, int rc)
{
    if (atomic_fetch_add(a->errors, 1) == 0)
        snprintf(a->msg, sizeof a->msg, "thread %d: %s: %d (%s)", a->id, what, rc,
                 sdb_strerror(rc));
}

static void *st_writer(void *p)
{
    st_arg_t *a = p;
    uint32_t x = 7u + (uint32_t)a->id * 1000003u;
    while (!atomic_load(a->stop)) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        char path[32];
        snprintf(path, sizeof path, "/st/%u", x % ST_PATHS);
        size_t n;
        uint8_t *d = st_content(x, &n);
        int rc;
        if (x & 0x100) {
            rc = sdb_put(a->db, path, d, n, NULL);
        } else {
            sdb_writer_t *w = NULL;
            rc = sdb_writer_open(a->db, path, UINT64_MAX, &w);
            for (size_t off = 0; !rc && off < n; off += 777)
                rc = sdb_writer_write(w, d + off, n - off < 777 ? n - off : 777);
            if (rc)
                sdb_writer_abort(w);
            else
                rc = sdb_writer_commit(w, NULL);
        }
        free(d);
        if (rc)
            st_fail(a, "write", rc);
    }
    return NULL;
}

static void *st_mutator(void *p)
{
    st_arg_t *a = p;
    uint32_t x = 99u + (uint32_t)a->id;
    while (!atomic_load(a->stop)) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        char path[32], other[32];
        snprintf(path, sizeof path, "/st/%u", x % ST_PATHS);
        snprintf(other, sizeof other, "/st/%u", (x >> 8) % ST_PATHS);
        sdb_docinfo_t info;
        int rc = sdb_lookup(a->db, path, &info);
        if (rc == SDB_ENOTFOUND)
            continue;
        if (rc) {
            st_fail(a, "lookup", rc);
            continue;
        }
        switch ((x >> 16) % 5) {
        case 0: rc = sdb_delete(a->db, path); break;
        case 1: rc = sdb_bind(a->db, &info.id, other); break;
        case 2: rc = sdb_unbind(a->db, &info.id, path); break;
        case 3: rc = sdb_delete_id(a->db, &info.id); break;
        default: rc = sdb_flush(a->db); break;
        }
        if (rc && rc != SDB_ENOTFOUND)
            st_fail(a, "mutate", rc);
    }
    return NULL;
}

static void *st_reader(void *p)
{
    st_arg_t *a = p;
    uint32_t x = 5u + (uint32_t)a->id;
    uint8_t buf[1000];
    while (!atomic_load(a->stop)) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        char path[32];
        snprintf(path, sizeof path, "/st/%u", x % ST_PATHS);
        if (x & 1) {
            void *d = NULL;
            size_t n = 0;
            sdb_docinfo_t info;
            int rc = sdb_get(a->db, path, &d, &n, &info);
            if (rc == SDB_OK && (!st_valid(d, n) || info.size != n))
                st_fail(a, "get: WRONG BYTES", 0);
            else if (rc && rc != SDB_ENOTFOUND)
                st_fail(a, "get", rc);
            free(d);
        } else {
            /* a slow streamed read across commits: the snapshot must hold */
            sdb_reader_t *r;
            sdb_docinfo_t info;
            int rc = sdb_reader_open(a->db, path, &r, &info);
            if (rc == SDB_ENOTFOUND)
                continue;
            if (rc) {
                st_fail(a, "reader_open", rc);
                continue;
            }
            uint8_t *all = malloc(info.size + 1);
            size_t got = 0, n;
            do {
                rc = sdb_reader_read(r, buf, 1 + x % sizeof buf, &n);
                if (!rc && got + n <= info.size)
                    memcpy(all + got, buf, n);
                got += n;
                sched_yield();
            } while (!rc && n > 0);
            if (rc)
                st_fail(a, "reader_read", rc);
            else if (got != info.size || !st_valid(all, got))
                st_fail(a, "reader: WRONG BYTES", 0);
            free(all);
            sdb_reader_close(r);
        }
    }
    return NULL;
}

static int st_search_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    (void)info;
    (*(int *)arg)++;
    return 0;
}

static void *st_lister(void *p)
{
    st_arg_t *a = p;
    while (!atomic_load(a->stop)) {
        int cnt = 0;
        int rc = sdb_search(a->db, "/st/", NULL, st_search_cb, &cnt);
        sdb_stats_t st;
        if (!rc)
            rc = sdb_stats(a->db, &st);
        sdb_docinfo_t info;
        if (!rc && sdb_lookup(a->db, "/st/1", &info) == SDB_OK) {
            char *text = NULL;
            int r2 = sdb_info(a->db, &info.id, &text);
            free(text);
            if (r2 && r2 != SDB_ENOTFOUND)
                rc = r2;
            r2 = sdb_list_versions(a->db, &info.id, st_search_cb, &cnt);
            if (r2 && r2 != SDB_ENOTFOUND)
                rc = r2;
        }
        if (rc)
            st_fail(a, "list", rc);
    }
    return NULL;
}

/* Loop index: bit 0 lazy mode, bit 1 page cache (else mmap). */
START_TEST(test_stress)
{
    char path[512];
    tu_file(path, sizeof path, "stress");
    sdb_config_t cfg = small_cfg(!(_i & 1));
    cfg.versions_to_keep = 1;
    cfg.use_mmap = !(_i & 2);
    cfg.page_cache_pages = 32;
    sdb_t *db = NULL;
    CK_OK(sdb_open(path, &cfg, &db));
    _Atomic int stop = 0, errors = 0;
    enum { NT = 7 };
    pthread_t th[NT];
    st_arg_t args[NT];
    void *(*fn[NT])(void *) = { st_writer, st_writer, st_mutator, st_reader, st_reader,
                                st_reader, st_lister };
    for (int i = 0; i < NT; i++) {
        args[i] = (st_arg_t){ .db = db, .id = i, .stop = &stop, .errors = &errors };
        ck_assert_int_eq(pthread_create(&th[i], NULL, fn[i], &args[i]), 0);
    }
    const char *env = getenv("SDB_STRESS_MS");
    usleep((useconds_t)(env ? atoi(env) : 600) * 1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++)
        ck_assert_msg(args[i].msg[0] == 0, "%s (%d errors)", args[i].msg, atomic_load(&errors));
    CK_OK(sdb_close(db));
    char *report = NULL;
    int rc = sdb_check(path, 0, &report);
    ck_assert_msg(rc == SDB_OK, "check after the stress: %s\n%s", sdb_strerror(rc),
                  report ? report : "");
    free(report);
    /* every document still reads back whole */
    CK_OK(sdb_open(path, &cfg, &db));
    for (int i = 0; i < ST_PATHS; i++) {
        char p[32];
        snprintf(p, sizeof p, "/st/%d", i);
        void *d = NULL;
        size_t n;
        rc = sdb_get(db, p, &d, &n, NULL);
        ck_assert(rc == SDB_OK || rc == SDB_ENOTFOUND);
        if (rc == SDB_OK)
            ck_assert_msg(st_valid(d, n), "%s: wrong bytes after reopen", p);
        free(d);
    }
    CK_OK(sdb_close(db));
}
END_TEST

/* ---- 7b. readers must not starve the committer ---- */

/* The state lock was a default (reader-preferring) rwlock: while readers
 * overlap -- a few threads doing lookups and listings -- the commit leader's
 * write lock is never granted, and every write blocks for as long as reads
 * go on (measured: 4 reader threads, one put in 3 s, blocked 61 s).  A
 * waiting committer must hold new readers back; reads made from inside a
 * listing callback must still work (no deadlock on the recursive read). */
typedef struct {
    sdb_t *db;
    _Atomic int *stop;
    _Atomic long *puts;
} sv_arg_t;

static int sv_nested_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    sdb_t *db = arg;
    sdb_docinfo_t i2;
    (void)info;
    if (path && path[3] == '1')    /* a read from inside the callback */
        sdb_lookup(db, path, &i2);
    return 0;
}

static void *sv_reader(void *p)
{
    sv_arg_t *a = p;
    while (!atomic_load(a->stop)) {
        sdb_docinfo_t info;
        sdb_lookup(a->db, "/k/1", &info);
        sdb_search(a->db, "/k/", NULL, sv_nested_cb, a->db);
    }
    return NULL;
}

static void *sv_writer(void *p)
{
    sv_arg_t *a = p;
    while (!atomic_load(a->stop)) {
        if (sdb_put(a->db, "/k/1", "y", 1, NULL) == SDB_OK)
            atomic_fetch_add(a->puts, 1);
    }
    return NULL;
}

START_TEST(test_readers_do_not_starve_writes)
{
    sdb_config_t cfg = small_cfg(0);
    sdb_t *db = NULL;
    CK_OK(sdb_open_memory(&cfg, &db));
    char p[32];
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof p, "/k/%d", i);
        put_ok(db, p, "x", 1);
    }
    _Atomic int stop = 0;
    _Atomic long puts = 0;
    sv_arg_t a = { db, &stop, &puts };
    pthread_t r[4], w;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&r[i], NULL, sv_reader, &a), 0);
    usleep(20000);
    ck_assert_int_eq(pthread_create(&w, NULL, sv_writer, &a), 0);
    /* until the writer has committed 5 puts.  Starved by the readers it
     * commits none at all (0 in 500 ms, 0 in 10 s without the gate in
     * state.c), so the 10 s limit tells "starved" from "slow" whatever the
     * load; a fixed 500 ms window measured the scheduler too */
    for (int i = 0; i < 10000 && atomic_load(&puts) < 5; i++)
        usleep(1000);
    long done = atomic_load(&puts);
    atomic_store(&stop, 1);         /* the readers stop: a starved put completes */
    pthread_join(w, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(r[i], NULL);
    ck_assert_msg(done >= 5, "only %ld puts in 10 s next to 4 reader threads: the "
                  "committer is starved by readers", done);
    CK_OK(sdb_close(db));
}
END_TEST

/* ---- 8. lazy mode: every crash point of random workloads ---- */

/* Lazy mode acknowledges before the sync; what it promises is that a crash
 * loses nothing that an sdb_flush covered and exposes no partial document:
 * the recovered state is the state after some prefix of the operations that
 * includes every operation before the last successful flush.  For random
 * workloads of puts, overwrites (versions_to_keep 0 and 1: pages freed and
 * reused at once), streamed puts, deletes and flushes, the image of the disk
 * is taken after every operation both as after kill -9 (every write kept)
 * and as after a power cut (only synced writes, or a random subset of the
 * unsynced ones), and reopened. */
#define LZ_PATHS 5
#define LZ_OPS 40

typedef struct {
    int seed[LZ_PATHS];   /* 0: absent */
} lz_state_t;

static size_t lz_len(int seed)
{
    return (size_t)(seed * 7919) % 3000;
}

static int lz_matches(sdb_t *db, const lz_state_t *st)
{
    for (int i = 0; i < LZ_PATHS; i++) {
        char path[16];
        snprintf(path, sizeof path, "/lz/%d", i);
        void *d = NULL;
        size_t n = 0;
        int rc = sdb_get(db, path, &d, &n, NULL);
        int ok;
        if (st->seed[i] == 0) {
            ok = rc == SDB_ENOTFOUND;
        } else {
            size_t want = lz_len(st->seed[i]);
            uint8_t *exp = tu_bytes(want, (uint32_t)st->seed[i]);
            ok = rc == SDB_OK && n == want && memcmp(d, exp, n) == 0;
            free(exp);
        }
        free(d);
        if (!ok)
            return 0;
    }
    return 1;
}

static void lz_verify(const uint8_t *img, size_t len, const lz_state_t *states, int from, int to,
                      const char *what, int seed, int op)
{
    sdb_config_t cfg = small_cfg(1);
    sdb_backend_t *mb = backend_mem_from(img, len);
    ck_assert_ptr_nonnull(mb);
    sdb_t *db = NULL;
    int rc = sdb_open_backend(mb, &cfg, &db);
    ck_assert_msg(rc == SDB_OK, "workload %d op %d (%s): reopen: %s", seed, op, what,
                  sdb_strerror(rc));
    int found = 0;
    for (int k = to; k >= from && !found; k--)
        found = lz_matches(db, &states[k]);
    /* and sdb_check accepts the crash image as it is */
    char f[512];
    tu_file(f, sizeof f, "lzchk");
    tu_write_file(f, img, len);
    char *rep = NULL;
    rc = sdb_check(f, 0, &rep);
    ck_assert_msg(rc == SDB_OK, "workload %d op %d (%s): sdb_check of the crash image: %s\n%s",
                  seed, op, what, sdb_strerror(rc), rep ? rep : "");
    free(rep);
    unlink(f);
    ck_assert_msg(found, "workload %d, after op %d (%s): the recovered state is none of the "
                  "states after ops %d..%d (the last flush was op %d)", seed, op, what, from - 1,
                  to - 1, from - 1);
    CK_OK(sdb_close(db));
}

/* A backend that sends every call to TEE_N fault backends (reads from the
 * first): one disk, seen after a crash three ways. */
#define TEE_N 3
typedef struct {
    sdb_backend_t base;
    sdb_backend_t *inner[TEE_N];
} tee_be_t;

static int tee_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    tee_be_t *t = (tee_be_t *)be;
    return t->inner[0]->read(t->inner[0], off, buf, len);
}

static int tee_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    tee_be_t *t = (tee_be_t *)be;
    int rc = 0;
    for (int i = 0; i < TEE_N; i++)
        rc |= t->inner[i]->write(t->inner[i], off, buf, len);
    return rc ? SDB_EIO : SDB_OK;
}

static int tee_sync(sdb_backend_t *be)
{
    tee_be_t *t = (tee_be_t *)be;
    int rc = 0;
    for (int i = 0; i < TEE_N; i++)
        rc |= t->inner[i]->sync(t->inner[i]);
    return rc ? SDB_EIO : SDB_OK;
}

static uint64_t tee_size(sdb_backend_t *be)
{
    tee_be_t *t = (tee_be_t *)be;
    return t->inner[0]->size(t->inner[0]);
}

static void tee_close(sdb_backend_t *be)
{
    (void)be;                      /* tee_free() releases it after the images */
}

/* single-inner variants for dr_run (inner[0] only) */
static int tee1_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    tee_be_t *t = (tee_be_t *)be;
    return t->inner[0]->write(t->inner[0], off, buf, len);
}

static int tee1_sync(sdb_backend_t *be)
{
    tee_be_t *t = (tee_be_t *)be;
    return t->inner[0]->sync(t->inner[0]);
}

static tee_be_t *tee_new(uint32_t seed)
{
    tee_be_t *t = calloc(1, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    fault_plan_t plans[TEE_N] = { {.keep_unsynced = 1}, {.keep_unsynced = 0},
                                  {.keep_unsynced = 2, .seed = seed} };
    for (int i = 0; i < TEE_N; i++) {
        t->inner[i] = backend_fault_new(&plans[i], NULL, 0);
        ck_assert_ptr_nonnull(t->inner[i]);
    }
    t->base.read = tee_read;
    t->base.write = tee_write;
    t->base.sync = tee_sync;
    t->base.size = tee_size;
    t->base.close = tee_close;
    return t;
}

static void tee_free(tee_be_t *t)
{
    for (int i = 0; i < TEE_N; i++)
        t->inner[i]->close(t->inner[i]);
    free(t);
}

START_TEST(test_lazy_every_point)
{
    uint32_t x = 0x1234567u + (uint32_t)_i * 7777u;
    for (int w = 0; w < 6; w++) {
        int seed = _i * 6 + w;
        sdb_config_t cfg = small_cfg(0);
        cfg.versions_to_keep = (unsigned)(w & 1);
        tee_be_t *tee = tee_new(x);
        sdb_t *db = NULL;
        CK_OK(sdb_open_backend(&tee->base, &cfg, &db));
        lz_state_t states[LZ_OPS + 1];
        memset(&states[0], 0, sizeof states[0]);
        int last_flush = 0, next_seed = 1 + seed * 100;
        for (int op = 0; op < LZ_OPS; op++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            states[op + 1] = states[op];
            int pi = (int)(x % LZ_PATHS);
            char path[16];
            snprintf(path, sizeof path, "/lz/%d", pi);
            int kind = (int)((x >> 8) % 10);
            if (kind < 6) {
                int sd = next_seed++;
                size_t n = lz_len(sd);
                uint8_t *d = tu_bytes(n, (uint32_t)sd);
                if (kind < 4) {
                    put_ok(db, path, d, n);
                } else {
                    sdb_writer_t *wr;
                    CK_OK(sdb_writer_open(db, path, UINT64_MAX, &wr));
                    for (size_t off = 0; off < n; off += 500)
                        CK_OK(sdb_writer_write(wr, d + off, n - off < 500 ? n - off : 500));
                    CK_OK(sdb_writer_commit(wr, NULL));
                }
                free(d);
                states[op + 1].seed[pi] = sd;
            } else if (kind < 8) {
                int rc = sdb_delete(db, path);
                ck_assert(rc == SDB_OK || rc == SDB_ENOTFOUND);
                states[op + 1].seed[pi] = 0;
            } else {
                CK_OK(sdb_flush(db));
                last_flush = op + 1;
            }
            /* kill -9 now (every write so far is in the file), or a power cut
               (synced writes only, or a random subset of the others) */
            static const char *const what[TEE_N] = { "process killed", "power cut",
                                                     "power cut, some unsynced writes kept" };
            for (int k = 0; k < TEE_N; k++) {
                uint8_t *img;
                size_t len;
                CK_OK(backend_fault_image(tee->inner[k], &img, &len));
                lz_verify(img, len, states, last_flush, op + 1, what[k], seed, op);
                free(img);
            }
        }
        CK_OK(sdb_close(db));
        tee_free(tee);
    }
}
END_TEST

/* ---- 9. durable mode: crash at every write of random workloads ---- */

/* Random puts, streamed puts, overwrites, binds, unbinds, deletes by path and
 * by id, with a crash at every write call (unsynced writes lost, kept, or a
 * random subset kept; the crashing write torn).  The recovered state must be
 * the acknowledged one, or that plus the interrupted operation, whole. */
#define DR_PATHS 5
#define DR_DOCS 24
#define DR_OPS 24

typedef struct {
    int path_doc[DR_PATHS];        /* -1: unbound */
    int seed[DR_DOCS];             /* 0: no such document */
    int have_id[DR_DOCS];
    sdb_id_t id[DR_DOCS];
    int ndocs;
} dr_state_t;

typedef struct {
    int kind, path, doc, seed;
} dr_op_t;

static size_t dr_len(int seed)
{
    return (size_t)(seed * 4567) % 2500;
}

static int dr_doc_paths(const dr_state_t *s, int d)
{
    int n = 0;
    for (int i = 0; i < DR_PATHS; i++)
        n += s->path_doc[i] == d;
    return n;
}

/* Applies op to s (as the engine must); returns the expected return code. */
static int dr_apply(dr_state_t *s, const dr_op_t *op)
{
    int d = s->path_doc[op->path];
    switch (op->kind) {
    case 0:
    case 1:
        if (d < 0) {
            d = s->ndocs++;
            s->path_doc[op->path] = d;
        }
        s->seed[d] = op->seed;
        return SDB_OK;
    case 2:
        if (d < 0)
            return SDB_ENOTFOUND;
        s->path_doc[op->path] = -1;
        if (dr_doc_paths(s, d) == 0)
            s->seed[d] = 0;
        return SDB_OK;
    case 3:
        if (!s->seed[op->doc])
            return SDB_ENOTFOUND;
        for (int i = 0; i < DR_PATHS; i++)
            if (s->path_doc[i] == op->doc)
                s->path_doc[i] = -1;
        s->seed[op->doc] = 0;
        return SDB_OK;
    case 4:
        if (!s->seed[op->doc])
            return SDB_ENOTFOUND;
        s->path_doc[op->path] = op->doc;
        return SDB_OK;
    default:
        if (!s->seed[op->doc] || d != op->doc)
            return SDB_ENOTFOUND;
        s->path_doc[op->path] = -1;
        return SDB_OK;
    }
}

static int dr_exec(sdb_t *db, const dr_state_t *s, const dr_op_t *op, sdb_docinfo_t *info)
{
    char path[16];
    snprintf(path, sizeof path, "/dr/%d", op->path);
    size_t n = dr_len(op->seed);
    int rc;
    switch (op->kind) {
    case 0: {
        uint8_t *d = tu_bytes(n, (uint32_t)op->seed);
        rc = sdb_put(db, path, d, n, info);
        free(d);
        return rc;
    }
    case 1: {
        uint8_t *d = tu_bytes(n, (uint32_t)op->seed);
        sdb_writer_t *w = NULL;
        rc = sdb_writer_open(db, path, UINT64_MAX, &w);
        for (size_t off = 0; !rc && off < n; off += 300)
            rc = sdb_writer_write(w, d + off, n - off < 300 ? n - off : 300);
        if (rc)
            sdb_writer_abort(w);   /* NULL when the open failed */
        else
            rc = sdb_writer_commit(w, info);
        free(d);
        return rc;
    }
    case 2:
        return sdb_delete(db, path);
    case 3:
        return s->have_id[op->doc] ? sdb_delete_id(db, &s->id[op->doc]) : SDB_ENOTFOUND;
    case 4:
        return s->have_id[op->doc] ? sdb_bind(db, &s->id[op->doc], path) : SDB_ENOTFOUND;
    default:
        return s->have_id[op->doc] ? sdb_unbind(db, &s->id[op->doc], path) : SDB_ENOTFOUND;
    }
}

static int dr_matches(sdb_t *db, const dr_state_t *s, char *why, size_t cap)
{
    for (int i = 0; i < DR_PATHS; i++) {
        char path[16];
        snprintf(path, sizeof path, "/dr/%d", i);
        void *p = NULL;
        size_t n = 0;
        int rc = sdb_get(db, path, &p, &n, NULL);
        int d = s->path_doc[i];
        int ok = d < 0 ? rc == SDB_ENOTFOUND : rc == SDB_OK && n == dr_len(s->seed[d]);
        if (ok && d >= 0) {
            uint8_t *exp = tu_bytes(n, (uint32_t)s->seed[d]);
            ok = memcmp(exp, p, n) == 0;
            free(exp);
        }
        free(p);
        if (!ok) {
            snprintf(why, cap, "%s: %s", path, sdb_strerror(rc));
            return 0;
        }
    }
    for (int d = 0; d < s->ndocs; d++) {
        if (!s->have_id[d])
            continue;
        void *p = NULL;
        size_t n = 0;
        int rc = sdb_get_id(db, &s->id[d], 0, &p, &n, NULL);
        int ok = s->seed[d] ? rc == SDB_OK && n == dr_len(s->seed[d]) : rc == SDB_ENOTFOUND;
        free(p);
        if (!ok) {
            snprintf(why, cap, "doc %d by id: %s", d, sdb_strerror(rc));
            return 0;
        }
    }
    return 1;
}

static void dr_script(uint32_t x, dr_op_t *ops)
{
    int seed = 1;
    for (int i = 0; i < DR_OPS; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int k = (int)(x % 12);
        ops[i].kind = k < 4 ? 0 : k < 6 ? 1 : k < 7 ? 2 : k < 8 ? 3 : k < 10 ? 4 : 5;
        ops[i].path = (int)((x >> 8) % DR_PATHS);
        ops[i].doc = (int)((x >> 16) % (unsigned)(i / 2 + 1));
        ops[i].seed = seed++ + (int)(x % 1000) * 50;
    }
}

/* Wraps fb in a pass-through whose close is a no-op, so that the fault
 * backend (and its image) outlives sdb_close; free the wrapper after. */
static tee_be_t *tee_keep(sdb_backend_t *fb)
{
    tee_be_t *t = calloc(1, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < TEE_N; i++)
        t->inner[i] = fb;
    t->base.read = tee_read;
    t->base.write = tee1_write;
    t->base.sync = tee1_sync;
    t->base.size = tee_size;
    t->base.close = tee_close;
    return t;
}

/* Runs ops on a db over a fault backend with plan; returns the number of
 * acknowledged ops (all ops fail after the crash). */
static int dr_run(const dr_op_t *ops, const fault_plan_t *plan, unsigned keep, dr_state_t *acked,
                  dr_state_t *alt, uint8_t **img, size_t *len, uint64_t *writes)
{
    sdb_config_t cfg = small_cfg(1);
    cfg.versions_to_keep = keep;
    sdb_backend_t *fb = backend_fault_new(plan, NULL, 0);
    tee_be_t *t = tee_keep(fb);   /* the fault backend outlives sdb_close */
    memset(acked, 0, sizeof *acked);
    for (int i = 0; i < DR_PATHS; i++)
        acked->path_doc[i] = -1;
    *alt = *acked;
    sdb_t *db = NULL;
    int nacked = -1;
    if (sdb_open_backend(&t->base, &cfg, &db) == SDB_OK) {
        nacked = 0;
        int failed = 0;
        for (int i = 0; i < DR_OPS; i++) {
            dr_state_t next = *acked;
            int want = dr_apply(&next, &ops[i]);
            sdb_docinfo_t info;
            int rc = dr_exec(db, acked, &ops[i], &info);
            if (!failed && rc == want) {
                if (rc == SDB_OK && ops[i].kind <= 1) {
                    int d = next.path_doc[ops[i].path];
                    next.have_id[d] = 1;
                    next.id[d] = info.id;
                }
                *acked = next;
                nacked++;
            } else if (!failed) {
                ck_assert_msg(rc == SDB_EIO, "op %d: %s, expected %s", i, sdb_strerror(rc),
                              sdb_strerror(want));
                failed = 1;
                *alt = next;
            } else {
                ck_assert_msg(rc != SDB_OK || want != SDB_OK,
                              "op %d acknowledged after a failure", i);
            }
        }
        sdb_close(db);
    }
    if (!alt->ndocs && !alt->seed[0])
        *alt = *acked;
    int crashed = 0;
    backend_fault_counts(fb, writes, NULL, &crashed);
    ck_assert_msg(!plan->crash_at_write || crashed, "the crash at write %llu never fired",
                  (unsigned long long)plan->crash_at_write);
    CK_OK(backend_fault_image(fb, img, len));
    fb->close(fb);
    free(t);
    return nacked;
}

START_TEST(test_durable_every_write)
{
    dr_op_t ops[DR_OPS];
    dr_script(0xabcdefu + (uint32_t)_i * 31337u, ops);
    unsigned keep = (unsigned)(_i & 1);
    fault_plan_t none = {0};
    dr_state_t acked, alt;
    uint8_t *img;
    size_t len;
    uint64_t total;
    ck_assert_int_eq(dr_run(ops, &none, keep, &acked, &alt, &img, &len, &total), DR_OPS);
    free(img);
    for (uint64_t k = 1; k <= total; k++)
        for (int mode = 0; mode < 3; mode++) {
            fault_plan_t plan = {.crash_at_write = k, .keep_unsynced = mode, .tear_last = 1,
                                 .seed = (uint32_t)k};
            uint64_t reached;   /* not total: that bounds the sweep */
            int n = dr_run(ops, &plan, keep, &acked, &alt, &img, &len, &reached);
            ck_assert_msg(reached >= k, "script %d: the crash at write %llu never fired (%llu writes)",
                          _i, (unsigned long long)k, (unsigned long long)reached);
            sdb_config_t cfg = small_cfg(1);
            sdb_backend_t *mb = backend_mem_from(img, len);
            sdb_t *db = NULL;
            int rc = sdb_open_backend(mb, &cfg, &db);
            ck_assert_msg(rc == SDB_OK, "script %d, crash at write %llu mode %d: reopen: %s",
                          _i, (unsigned long long)k, mode, sdb_strerror(rc));
            char w1[128] = "", w2[128] = "";
            int ok = dr_matches(db, &acked, w1, sizeof w1) ||
                     dr_matches(db, &alt, w2, sizeof w2);
            ck_assert_msg(ok, "script %d, crash at write %llu mode %d after %d acked ops: "
                          "state wrong (%s | with the interrupted op: %s)", _i,
                          (unsigned long long)k, mode, n, w1, w2);
            CK_OK(sdb_close(db));
            free(img);
        }
}
END_TEST

/* ---- 10. out of memory while planning a batch ---- */

/* The planner records what each request of a batch touches (paths,
 * documents) so that two requests on the same document go to different
 * batches; it ignored an allocation failure of that record.  Two overwrites
 * of one document could then be planned in one batch, both as version v+1:
 * the group was made durable, its apply failed (sticky EIO), and replay of
 * the same durable group failed too -- the database no longer opened.  The
 * test fails the planner's first allocation (32 entries of 24 bytes) with a
 * realloc() interposed for the whole test binary (forwarding to glibc's);
 * not under sanitizers, which own realloc. */
/* clang says __has_feature(thread_sanitizer), not __SANITIZE_THREAD__ */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
extern void *__libc_realloc(void *p, size_t n);
static _Atomic int fail_touch_alloc;
static _Atomic int touch_alloc_failed;   /* allocations failed: the fault fired */

/* The allocation fault: while alloc_countdown is positive, each malloc,
 * calloc or realloc counts it down, and the one that brings it to 0 fails
 * (alloc_fired is then 1); the others go on (SQLite's faultsim, one-shot). */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
static _Atomic long alloc_countdown;
static _Atomic int alloc_fired;

static int alloc_fail_now(void)
{
    if (atomic_load(&alloc_countdown) <= 0 || atomic_fetch_sub(&alloc_countdown, 1) != 1)
        return 0;
    atomic_store(&alloc_fired, 1);
    return 1;
}

void *malloc(size_t n)
{
    return alloc_fail_now() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    return alloc_fail_now() ? NULL : __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (n == 32 * 3 * sizeof(void *) && p == NULL && atomic_load(&fail_touch_alloc)) {
        atomic_fetch_add(&touch_alloc_failed, 1);
        return NULL;
    }
    return alloc_fail_now() ? NULL : __libc_realloc(p, n);
}

typedef struct {
    sdb_t *db;
    _Atomic int *stop;
    int bad;
} om_arg_t;

static void *om_writer(void *p)
{
    om_arg_t *a = p;
    uint8_t d[600];
    memset(d, 7, sizeof d);
    while (!atomic_load(a->stop)) {
        int rc = sdb_put(a->db, "/same", d, sizeof d, NULL);
        if (rc != SDB_OK && rc != SDB_ENOMEM)
            a->bad = rc;
    }
    return NULL;
}

START_TEST(test_plan_enomem)
{
    sdb_config_t cfg = small_cfg(1);
    fault_plan_t none = {0};
    sdb_backend_t *fb = backend_fault_new(&none, NULL, 0);
    tee_be_t *t = tee_keep(fb);   /* keep the disk across sdb_close */
    sdb_t *db = NULL;
    CK_OK(sdb_open_backend(&t->base, &cfg, &db));
    put_ok(db, "/same", "x", 1);
    _Atomic int stop = 0;
    om_arg_t a[4];
    pthread_t th[4];
    atomic_store(&fail_touch_alloc, 1);
    for (int i = 0; i < 4; i++) {
        a[i] = (om_arg_t){ db, &stop, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, om_writer, &a[i]), 0);
    }
    /* until the planner's allocation has failed 50 times (no timing: the
       deadline is a safety net) */
    for (int i = 0; i < 120000 && atomic_load(&touch_alloc_failed) < 50; i++)
        usleep(1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    atomic_store(&fail_touch_alloc, 0);
    ck_assert_msg(atomic_load(&touch_alloc_failed) >= 50, "the planner's allocation failed %d "
                  "times, not 50", atomic_load(&touch_alloc_failed));
    for (int i = 0; i < 4; i++)
        ck_assert_msg(a[i].bad == 0, "a put failed with %s (not ENOMEM) while the planner "
                      "could not allocate", sdb_strerror(a[i].bad));
    CK_OK(sdb_flush(db));
    sdb_close(db);
    uint8_t *img;
    size_t len;
    CK_OK(backend_fault_image(fb, &img, &len));
    fb->close(fb);
    free(t);
    sdb_backend_t *mb = backend_mem_from(img, len);
    free(img);
    int rc = sdb_open_backend(mb, &cfg, &db);
    ck_assert_msg(rc == SDB_OK, "reopen after planning without memory: %s", sdb_strerror(rc));
    void *p = NULL;
    size_t n;
    CK_OK(sdb_get(db, "/same", &p, &n, NULL));
    free(p);
    CK_OK(sdb_close(db));
}
END_TEST

/* sdb_writer_commit_many when an allocation fails (the Nth one after the
 * writers are written, for every N until a run makes fewer): the call still
 * answers SDB_OK, each member SDB_OK, SDB_ENOMEM or (memory and state
 * disagree after a durable group: the sticky error) SDB_EIO, every member
 * answered SDB_OK reads back whole, and every writer is released (run it
 * under valgrind: make valgrind SUITE=review TEST=review-alloc).  18
 * members: more than the call keeps on its stack, so its own allocation is
 * swept too (without it, the members commit one by one). */
#define OM_N 18
START_TEST(test_commit_many_enomem)
{
    long n = 1;
    int enomem = 0;
    for (;; n++) {
        sdb_t *db = NULL;
        CK_OK(sdb_open_memory(NULL, &db));
        put_ok(db, "/om/0", "old", 3);
        sdb_writer_t *w[OM_N];
        char path[32];
        for (int i = 0; i < OM_N; i++) {
            snprintf(path, sizeof path, "/om/%d", i);
            CK_OK(sdb_writer_open(db, path, UINT64_MAX, &w[i]));
            uint8_t *d = tu_bytes(100 + (size_t)i * 700, (uint32_t)i);
            CK_OK(sdb_writer_write(w[i], d, 100 + (size_t)i * 700));
            free(d);
        }
        int rcs[OM_N];
        sdb_docinfo_t out[OM_N];
        atomic_store(&alloc_fired, 0);
        atomic_store(&alloc_countdown, n);
        int rc = sdb_writer_commit_many(w, OM_N, out, rcs);
        atomic_store(&alloc_countdown, 0);
        int fired = atomic_load(&alloc_fired);
        ck_assert_msg(rc == SDB_OK, "allocation %ld failed: the call answered %s", n,
                      sdb_strerror(rc));
        for (int i = 0; i < OM_N; i++) {
            ck_assert_msg(rcs[i] == SDB_OK || rcs[i] == SDB_ENOMEM || rcs[i] == SDB_EIO,
                          "allocation %ld failed: member %d answered %s", n, i,
                          sdb_strerror(rcs[i]));
            enomem += rcs[i] == SDB_ENOMEM;
            if (rcs[i] == SDB_OK) {
                snprintf(path, sizeof path, "/om/%d", i);
                uint8_t *d = tu_bytes(100 + (size_t)i * 700, (uint32_t)i);
                tu_expect_get(db, path, d, 100 + (size_t)i * 700);
                free(d);
                ck_assert_uint_eq(out[i].version, i == 0 ? 2 : 1);
            }
        }
        sdb_close(db);
        if (!fired)
            break;
    }
    ck_assert_msg(n > 5 && enomem > 0, "%ld allocations swept, %d members refused", n, enomem);
}
END_TEST

/* sdb_batch_commit when an allocation fails (the Nth one of the commit, for
 * every N until a run makes fewer): SDB_OK with the whole batch applied,
 * SDB_ENOMEM naming no item with nothing of it applied, or (memory and
 * state disagree after the group was written: the sticky error) SDB_EIO;
 * and nothing leaks (make valgrind SUITE=review TEST=review-alloc). */
START_TEST(test_batch_enomem)
{
    long n = 1;
    int enomem = 0, ok = 0;
    for (;; n++) {
        sdb_t *db = NULL;
        CK_OK(sdb_open_memory(NULL, &db));
        sdb_docinfo_t keep;
        CK_OK(sdb_put(db, "/ob/keep", "old", 3, &keep));
        sdb_batch_t *b = NULL;
        CK_OK(sdb_batch_new(&b));
        char path[32];
        for (int i = 0; i < 20; i++) {
            snprintf(path, sizeof path, "/ob/%02d", i);
            uint8_t *d = tu_bytes(20 + (size_t)i * 300, (uint32_t)i);
            CK_OK(sdb_batch_put(b, path, d, 20 + (size_t)i * 300, UINT64_MAX));
            free(d);
        }
        CK_OK(sdb_batch_put(b, "/ob/keep", "new", 3, 1));
        CK_OK(sdb_batch_bind(b, &keep.id, "/ob/alias", 2));
        CK_OK(sdb_batch_delete(b, "/ob/00", 1));
        size_t failed = 0;
        atomic_store(&alloc_fired, 0);
        atomic_store(&alloc_countdown, n);
        int rc = sdb_batch_commit(db, b, NULL, &failed);
        atomic_store(&alloc_countdown, 0);
        int fired = atomic_load(&alloc_fired);
        ck_assert_msg(rc == SDB_OK || rc == SDB_ENOMEM || rc == SDB_EIO,
                      "allocation %ld failed: the batch answered %s", n, sdb_strerror(rc));
        if (rc != SDB_OK)
            ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);
        if (rc == SDB_ENOMEM || rc == SDB_OK) {
            int applied = rc == SDB_OK;
            enomem += !applied;
            ok += applied;
            for (int i = 1; i < 20; i++) {
                snprintf(path, sizeof path, "/ob/%02d", i);
                if (applied) {
                    uint8_t *d = tu_bytes(20 + (size_t)i * 300, (uint32_t)i);
                    tu_expect_get(db, path, d, 20 + (size_t)i * 300);
                    free(d);
                } else {
                    CK_RC(sdb_lookup(db, path, NULL), SDB_ENOTFOUND);
                }
            }
            ck_assert_msg(sdb_lookup(db, "/ob/00", NULL) == SDB_ENOTFOUND, "allocation %ld: %s: /ob/00 exists", n, sdb_strerror(rc));
            tu_expect_get(db, "/ob/keep", applied ? "new" : "old", 3);
            CK_RC(sdb_lookup(db, "/ob/alias", NULL), applied ? SDB_OK : SDB_ENOTFOUND);
        }
        sdb_batch_free(b);
        sdb_close(db);
        if (!fired)
            break;
    }
    ck_assert_msg(n > 20 && enomem > 0 && ok > 0, "%ld allocations swept, %d refused, %d applied", n,
                  enomem, ok);
}
END_TEST

/* sdb_check and repair fail closed: an allocation that fails anywhere in
 * them (the Nth one, for every N until a run makes fewer) ends in an error,
 * never in "clean" (SDB_OK) nor in "damage found" (SDB_ECORRUPT, which
 * would send a user to a repair that drops documents); and a repair that
 * failed so leaves a file that a later repair still brings back whole.  _i
 * 0: a clean file, checked; 1: a file with a damaged newest checkpoint,
 * repaired; 2: a file with a damaged data page, repaired; 3: a damaged
 * newest checkpoint whose older one is overwritten (read around). */
static void alloc_sweep_file(const char *file, int variant)
{
    sdb_config_t cfg = small_cfg(1);
    sdb_test_foreground_checkpoints(1);
    uint8_t d[2000];
    char path[32];
    uint8_t *live = NULL;
    size_t live_len = 0;
    for (int s = 0; s < (variant == 3 ? 3 : 2); s++) {
        sdb_t *db = NULL;
        CK_OK(sdb_open(file, &cfg, &db));
        for (int i = 0; i < 30; i++) {
            snprintf(path, sizeof path, "/a/%d/%02d", s, i);
            memset(d, 'a' + i % 26, sizeof d);
            put_ok(db, path, d, 300 + (size_t)i * 50);
        }
        if (s == 2)                  /* the process dies: the file as it is */
            live = tu_read_file(file, &live_len);
        CK_OK(sdb_close(db));
    }
    if (live) {
        tu_write_file(file, live, live_len);
        free(live);
    }
    sdb_test_foreground_checkpoints(0);
    if (variant == 0)
        return;
    size_t len;
    uint8_t *img = tu_read_file(file, &len);
    uint64_t g[2] = { 0, 0 };
    for (int k = 0; k < 2; k++)
        for (int b = 7; b >= 0; b--)
            g[k] = g[k] << 8 | img[(size_t)k * 512 + 16 + (size_t)b];
    uint64_t newest = g[0] > g[1] ? g[0] : g[1];
    int hit = 0;
    for (size_t pg = 2; pg < len / 512 && !hit; pg++) {
        uint8_t *h = img + pg * 512;
        uint64_t seq = 0;
        for (int b = 7; b >= 0; b--)
            seq = seq << 8 | h[16 + b];
        if (((variant == 1 || variant == 3) && h[4] == 3 && seq == newest) ||
            (variant == 2 && h[4] == 1 && h[48 + 10] == 'a' + 7)) {   /* /a/x/07's data */
            h[48 + 10] ^= 0x01;
            hit = 1;
        }
    }
    ck_assert(hit);
    tu_write_file(file, img, len);
    free(img);
}

static int count_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    (void)info;
    ++*(int *)arg;
    return 0;
}

START_TEST(test_check_alloc_fail_closed)
{
    char base[512], work[600];
    tu_file(base, sizeof base, "allocsweep");
    snprintf(work, sizeof work, "%s.work", base);
    alloc_sweep_file(base, _i);
    size_t len;
    uint8_t *img = tu_read_file(base, &len);
    int repair = _i > 0;
    /* the answer without a fault: a failed allocation that the engine gets
       around (a hash table that stays smaller) must give the same report */
    tu_write_file(work, img, len);
    char *ref = NULL;
    CK_OK(sdb_check(work, repair, &ref));
    int ref_paths = 0;
    if (repair) {
        sdb_config_t cfg = small_cfg(1);
        sdb_t *db = NULL;
        CK_OK(sdb_open(work, &cfg, &db));
        CK_OK(sdb_search(db, "", NULL, count_cb, &ref_paths));
        CK_OK(sdb_close(db));
        ck_assert_msg(_i == 1 ? ref_paths == 60 : _i == 2 ? ref_paths == 59 : ref_paths >= 80,
                      "%d paths after the reference repair:\n%s", ref_paths, ref);
        ck_assert_msg(_i != 3 || strstr(ref, "reading around the damage"), "%s", ref);
    }
    long n = 1;
    for (;; n++) {
        tu_write_file(work, img, len);
        char *report = NULL;
        atomic_store(&alloc_fired, 0);
        atomic_store(&alloc_countdown, n);
        int rc = sdb_check(work, repair, &report);
        atomic_store(&alloc_countdown, 0);
        int fired = atomic_load(&alloc_fired);
        ck_assert_msg(rc == SDB_OK ? report && strcmp(report, ref) == 0
                                   : rc != SDB_ECORRUPT || !fired,
                      "allocation %ld failed, and sdb_check (repair %d) answered %s:\n%s\n"
                      "without the fault:\n%s", n, repair, rc ? sdb_strerror(rc) : "clean",
                      report ? report : "(no report)", ref);
        free(report);
        if (repair) {       /* the file is whole still (or repaired): repair it now */
            rc = sdb_check(work, 1, &report);
            ck_assert_msg(rc == SDB_OK && (_i != 1 || !strstr(report, "lost:")),
                          "repair after allocation %ld failed in a repair: %s\n%s", n,
                          sdb_strerror(rc), report ? report : "");
            free(report);
            sdb_config_t cfg = small_cfg(1);
            sdb_t *db = NULL;
            CK_OK(sdb_open(work, &cfg, &db));
            int paths = 0;
            CK_OK(sdb_search(db, "", NULL, count_cb, &paths));
            ck_assert_msg(paths == ref_paths, "allocation %ld: %d paths after repair, %d "
                          "without the fault", n, paths, ref_paths);
            CK_OK(sdb_close(db));
        }
        if (!fired)                   /* every allocation of the run succeeded */
            break;
    }
    ck_assert_msg(n > 20, "only %ld allocations swept", n);
    free(ref);
    free(img);
}
END_TEST
#endif

/* ---- Suite ---- */

Suite *suite_review(void)
{
    Suite *s = suite_create("review");
    TCase *tc = tcase_create("review");
    tcase_add_unchecked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lazy_flushed_group_survives_page_reuse);
    tcase_add_test(tc, test_torn_last_group_still_refused);
    tcase_add_loop_test(tc, test_full_not_sticky, 0, 4);
    tcase_add_loop_test(tc, test_full_then_crash, 0, 2);
    tcase_add_loop_test(tc, test_full_disk_delete_all, 0, 2);
    tcase_add_test(tc, test_lazy_full_acked_durable);
    tcase_add_test(tc, test_stream_fits_near_limit);
    tcase_add_test(tc, test_create_syncs_directory);
    tcase_add_loop_test(tc, test_crash_during_create, 0, 2);
    tcase_add_test(tc, test_check_missing_file);
    tcase_add_test(tc, test_semantics);
    tcase_add_loop_test(tc, test_reader_snapshot_keep0, 0, 2);
    tcase_add_loop_test(tc, test_stress, 0, 4);
    tcase_add_test(tc, test_readers_do_not_starve_writes);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, test_plan_enomem);
    tcase_add_loop_test(tc, test_check_alloc_fail_closed, 0, 4);
#endif
    tcase_add_loop_test(tc, test_lazy_every_point, 0, 4);
    tcase_add_loop_test(tc, test_durable_every_write, 0, 4);
    suite_add_tcase(s, tc);

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tc = tcase_create("review-alloc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_commit_many_enomem);
    tcase_add_test(tc, test_batch_enomem);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("review-config");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_huge_cache_config);
    suite_add_tcase(s, tc);
    return s;
}
