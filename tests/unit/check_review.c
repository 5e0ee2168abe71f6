/*
 * check_review.c -- regression tests from a review of the storage engine
 * (src/engine): each test pins down one bug that was found (and fixed), or
 * one rule of ARCHITECTURE.md sections 1-2 that the review probed, plus a
 * concurrency stress meant to be run under ThreadSanitizer too:
 *
 *   make BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" LDLIBS="-fsanitize=thread" \
 *        build-tsan/check_all && CK_FORK=no build-tsan/check_all review
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
} full_be_t;

static int fb2_read(sdb_backend_t *be, uint64_t off, void *buf, size_t len)
{
    full_be_t *f = (full_be_t *)be;
    return f->inner->read(f->inner, off, buf, len);
}

static int fb2_write(sdb_backend_t *be, uint64_t off, const void *buf, size_t len)
{
    full_be_t *f = (full_be_t *)be;
    if (atomic_load(&f->full) && off >= 2ull * f->page_size) {
        const uint8_t *p = buf;
        for (size_t o = 0; o + f->page_size <= len; o += f->page_size)
            if (p[o + 4] == 2 /* PT_JOURNAL */)
                return SDB_ENOSPC;
    }
    return f->inner->write(f->inner, off, buf, len);
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

/* Loop 0: the database reaches max_db_size exactly when a commit's journal
 * group needs its next page; loop 1: the file system is full when the journal
 * group is written (ENOSPC).  Neither is a failed sync: the commit fails
 * (ETOOLARGE / ENOSPC), nothing of it is visible, and once space is back the
 * same handle commits again.  The engine used to turn both into its sticky
 * EIO state (every later write refused until reopen). */
START_TEST(test_full_not_sticky)
{
    sdb_config_t cfg = small_cfg(1);
    uint8_t *d = tu_bytes(64 * 464, 21);
    sdb_t *db = NULL;
    full_be_t *fbe = NULL;
    if (_i == 0) {
        cfg.max_db_size = 64 * 512;
        CK_OK(sdb_open_memory(&cfg, &db));
    } else {
        fbe = full_be_new(cfg.page_size);
        CK_OK(sdb_open_backend(&fbe->base, &cfg, &db));
    }
    put_ok(db, "/keep", d, 100);
    put_ok(db, "/keep2", d, 100);
    int rc;
    if (_i == 0) {
        /* take every page the limit allows for the data: nothing is left for
           the journal's next page */
        sdb_stats_t st;
        CK_OK(sdb_stats(db, &st));
        uint64_t avail = st.free_pages + 64 - st.total_pages;
        ck_assert(avail > 2 && avail < 64);
        rc = sdb_put(db, "/fill", d, (size_t)avail * 464, NULL);
        ck_assert_msg(rc == SDB_ETOOLARGE, "filling put: %d (%s)", rc, sdb_strerror(rc));
    } else {
        atomic_store(&fbe->full, 1);
        rc = sdb_put(db, "/fill", d, 1000, NULL);
        ck_assert_msg(rc == SDB_ENOSPC, "put on a full disk: %d (%s)", rc, sdb_strerror(rc));
        atomic_store(&fbe->full, 0); /* the administrator made room */
    }
    tu_expect_absent(db, "/fill");
    /* the handle is not in its fatal state: writes go on */
    rc = sdb_delete(db, "/keep");
    ck_assert_msg(rc == SDB_OK, "delete after a %s commit: %d (%s): the handle went fatal",
                  _i == 0 ? "too large" : "disk-full", rc, sdb_strerror(rc));
    put_ok(db, "/after", d, 1000);
    tu_expect_get(db, "/after", d, 1000);
    tu_expect_get(db, "/keep2", d, 100);
    tu_expect_absent(db, "/keep");
    CK_OK(sdb_flush(db));
    free(d);
    CK_OK(sdb_close(db));
}
END_TEST

/* After a refused journal group, a crash at any later point must still
 * recover exactly the acknowledged state: the refused group's pages (written
 * in part, with this file's id and the next sequence number) must not be
 * replayed nor be taken for a cut journal. */
START_TEST(test_full_then_crash)
{
    sdb_config_t cfg = small_cfg(1);
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
        atomic_store(&fbe->full, 1);
        /* a long path: a journal group of several pages */
        CK_RC(sdb_put(db, longp, d, 5000, NULL), SDB_ENOSPC);
        atomic_store(&fbe->full, 0);
        if (crash_after > 0)
            put_ok(db, "/b", d + 1, 2000);
        if (crash_after > 1)
            put_ok(db, longp, d + 2, 4000);
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
        CK_OK(sdb_close(db));
    }
    free(d);
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
    int rc = sdb_open_backend(fb, &cfg, &db); /* used to never return */
    ck_assert_msg(rc == SDB_OK || rc == SDB_ENOMEM, "open: %d (%s)", rc, sdb_strerror(rc));
    if (rc == SDB_OK)
        CK_OK(sdb_close(db));
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

/* ---- 6. semantics of ARCHITECTURE.md section 1 probed by the review ---- */

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
            sdb_writer_t *w;
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

/* ---- Suite ---- */

Suite *suite_review(void)
{
    Suite *s = suite_create("review");
    TCase *tc = tcase_create("review");
    tcase_add_unchecked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lazy_flushed_group_survives_page_reuse);
    tcase_add_test(tc, test_torn_last_group_still_refused);
    tcase_add_loop_test(tc, test_full_not_sticky, 0, 2);
    tcase_add_test(tc, test_full_then_crash);
    tcase_add_test(tc, test_stream_fits_near_limit);
    tcase_add_test(tc, test_create_syncs_directory);
    tcase_add_test(tc, test_semantics);
    tcase_add_loop_test(tc, test_reader_snapshot_keep0, 0, 2);
    tcase_add_loop_test(tc, test_stress, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("review-config");
    tcase_set_timeout(tc, 10);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* huge allocations after the fix: sanitizers' allocators abort on them */
    tcase_add_test(tc, test_huge_cache_config);
#endif
    suite_add_tcase(s, tc);
    return s;
}
