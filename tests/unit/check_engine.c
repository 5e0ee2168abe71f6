/*
 * check_engine.c -- engine-internal tests: page sealing, free-space
 * allocation, journal replay after reopen, and a crash sweep over the
 * fault backend at the engine's level (every write and every sync of a
 * workload that mixes puts, overwrites, binds and deletes).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "streamdb.h"
#include "engine/backend.h"
#include "engine/freespace.h"
#include "engine/page.h"

START_TEST(test_page_seal_open)
{
    uint8_t pg[512] = { 0 };
    for (int i = 0; i < 100; i++)
        pg[PAGE_HDR + i] = (uint8_t)i;
    page_hdr_t h = { .type = PT_DATA, .flags = PF_LAST, .data_len = 100, .index = 7 }, g;
    memset(h.owner, 0xab, 16);
    uint32_t c1, c2;
    page_seal(pg, &h, pg + PAGE_HDR, &c1);
    ck_assert_int_eq(page_open(pg, pg + PAGE_HDR, 512 - PAGE_HDR, 1, &g, &c2), 0);
    ck_assert_uint_eq(c1, c2);
    ck_assert_uint_eq(g.index, 7);
    ck_assert_uint_eq(g.data_len, 100);
    pg[PAGE_HDR + 50] ^= 1;
    ck_assert_int_eq(page_open(pg, pg + PAGE_HDR, 512 - PAGE_HDR, 1, &g, NULL), SDB_ECORRUPT);
    pg[PAGE_HDR + 50] ^= 1;
    pg[12] ^= 1;  /* header byte */
    ck_assert_int_eq(page_open(pg, pg + PAGE_HDR, 512 - PAGE_HDR, 1, &g, NULL), SDB_ECORRUPT);
}
END_TEST

START_TEST(test_freespace)
{
    freespace_t fs;
    ck_assert_int_eq(freespace_init(&fs, 2, 100), 0);
    pgno_t s;
    uint64_t got;
    ck_assert_int_eq(freespace_alloc(&fs, 10, &s, &got), 0);
    ck_assert_uint_eq(s, 2);
    ck_assert_uint_eq(got, 10);
    freespace_free(&fs, 4, 3);
    ck_assert_uint_eq(fs.nfree, 3);
    ck_assert_int_eq(freespace_alloc(&fs, 2, &s, &got), 0);
    ck_assert_uint_eq(s, 4);
    ck_assert_uint_eq(got, 2);
    ck_assert_int_eq(freespace_mark_used(&fs, 4, 1), SDB_ECORRUPT);  /* already used */
    ck_assert_int_eq(freespace_alloc(&fs, 200, &s, &got), 0);   /* the one free page left */
    ck_assert_uint_eq(s, 6);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(freespace_alloc(&fs, 200, &s, &got), 0);   /* what is left below the limit */
    ck_assert_uint_eq(s, 12);
    ck_assert_uint_eq(got, 88);
    ck_assert_int_eq(freespace_alloc(&fs, 1, &s, &got), SDB_ETOOLARGE);
    freespace_destroy(&fs);
}
END_TEST

/* A fragmented file (every other page free, as overwrites of one-page
 * documents leave it): allocations that want a run of 16 pages (a writer that
 * does not know its size) get single pages, and the work of finding them is
 * about one scan of the bitmap in all, not one per allocation.  Each such
 * allocation used to scan the whole bitmap for a run before it took the
 * first free page: the daemon spent a third of its time there under small
 * PUTs, more as the file grew.  Freeing a page forgets the failed search. */
START_TEST(test_freespace_fragmented)
{
    enum { NPAGES = 200000, ALLOCS = 5000 };
    freespace_t fs;
    ck_assert_int_eq(freespace_init(&fs, NPAGES, NPAGES), 0);
    for (pgno_t p = FIRST_PAGE; p < NPAGES; p += 2)
        ck_assert_int_eq(freespace_mark_used(&fs, p, 1), 0);
    uint64_t nfree = fs.nfree;
    fs.scan_steps = 0;
    pgno_t s, prev = 0;
    uint64_t got;
    for (int i = 0; i < ALLOCS; i++) {
        ck_assert_int_eq(freespace_alloc(&fs, 16, &s, &got), 0);
        ck_assert_uint_eq(got, 1);
        ck_assert_uint_eq(s % 2, 1);               /* a page that was free */
        ck_assert(s > prev);                        /* each once, lowest first */
        prev = s;
    }
    ck_assert_uint_eq(fs.nfree, nfree - ALLOCS);
    /* one scan of the bitmap (about NPAGES / 2 single-page runs), then a few
       steps per allocation */
    ck_assert_msg(fs.scan_steps < NPAGES + (uint64_t)ALLOCS * 8,
                  "%llu search steps for %d allocations", (unsigned long long)fs.scan_steps, ALLOCS);
    /* a freed run of 16 is found again */
    freespace_free(&fs, 3, 1);                      /* (a page below the hint) */
    for (pgno_t p = NPAGES - 40; p < NPAGES - 20; p++)
        if (!freespace_is_free(&fs, p))
            freespace_free(&fs, p, 1);
    ck_assert_int_eq(freespace_alloc(&fs, 16, &s, &got), 0);
    ck_assert_uint_eq(got, 16);
    ck_assert_uint_eq(s, NPAGES - 41);              /* (an odd page, free already) */
    freespace_destroy(&fs);
}
END_TEST

/* The scripted workload; returns how many steps succeeded before an error. */
static int workload(sdb_t *db, int *acked)
{
    static char big[20000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    sdb_docinfo_t a;
    int n = 0;
#define STEP(x) do { if ((x) != SDB_OK) return n; acked[n++] = 1; } while (0)
    STEP(sdb_put(db, "/a", "alpha", 5, &a));
    STEP(sdb_put(db, "/b", big, sizeof(big), NULL));
    STEP(sdb_put(db, "/a", "alpha2", 6, NULL));
    STEP(sdb_bind(db, &a.id, "/a-alias"));
    STEP(sdb_put(db, "/c", "", 0, NULL));
    STEP(sdb_delete(db, "/b"));
    STEP(sdb_put(db, "/b", big, 1000, NULL));
    STEP(sdb_unbind(db, &a.id, "/a"));
    STEP(sdb_put(db, "/a-alias", "alpha3", 6, NULL));
    STEP(sdb_flush(db));
#undef STEP
    return n;
}

/* Expected content of each path after k steps (NULL: absent). */
static const char *model(int k, const char *path, size_t *len)
{
    static char big[20000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    if (!strcmp(path, "/a")) {
        *len = k < 3 ? 5 : 6;
        return k < 1 ? NULL : k < 3 ? "alpha" : k < 8 ? "alpha2" : NULL;
    }
    if (!strcmp(path, "/a-alias")) {
        *len = 6;
        return k < 4 ? NULL : k < 9 ? "alpha2" : "alpha3";
    }
    if (!strcmp(path, "/b")) {
        *len = k < 6 ? sizeof(big) : 1000;
        return k < 2 ? NULL : k < 6 ? big : k < 7 ? NULL : big;
    }
    *len = 0;
    return k < 5 ? NULL : "";
}

static int matches(sdb_t *db, int k)
{
    const char *all[] = { "/a", "/a-alias", "/b", "/c" };
    for (int i = 0; i < 4; i++) {
        size_t wl;
        const char *want = model(k, all[i], &wl);
        void *d = NULL;
        size_t n = 0;
        int rc = sdb_get(db, all[i], &d, &n, NULL);
        int ok = want ? rc == 0 && n == wl && memcmp(d, want, n) == 0 : rc == SDB_ENOTFOUND;
        free(d);
        if (!ok)
            return 0;
    }
    return 1;
}

START_TEST(test_crash_sweep)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    /* count writes and syncs of a clean run */
    fault_plan_t none = { 0 };
    sdb_backend_t *be = backend_fault_new(&none, NULL, 0);
    sdb_t *db;
    ck_assert_int_eq(sdb_open_backend(be, &cfg, &db), 0);
    int acked[16] = { 0 };
    ck_assert_int_eq(workload(db, acked), 10);
    uint64_t writes, syncs;
    backend_fault_counts(be, &writes, &syncs, NULL);
    sdb_close(db);
    int cases = 0;
    for (int kind = 0; kind < 2; kind++)
        for (uint64_t at = 1; at <= (kind ? syncs : writes); at++)
            for (int keep = 0; keep < 6; keep++) {
                fault_plan_t plan = { 0 };
                if (kind) plan.crash_at_sync = at; else plan.crash_at_write = at;
                /* 0: unsynced writes lost; 1: all kept; 2..5: a reordering disk keeps
                   a different pseudo-random subset each time */
                plan.keep_unsynced = keep < 2 ? keep : 2;
                plan.seed = (uint32_t)(keep * 7919 + at);
                plan.tear_last = 1;
                be = backend_fault_new(&plan, NULL, 0);
                int rc = sdb_open_backend(be, &cfg, &db);
                memset(acked, 0, sizeof(acked));
                int done = rc == 0 ? workload(db, acked) : -1;
                uint8_t *img;
                size_t len;
                int crashed = 0;
                if (rc == 0) {
                    backend_fault_counts(be, NULL, NULL, &crashed);
                    ck_assert_int_eq(backend_fault_image(be, &img, &len), 0);
                    sdb_close(db);
                } else {
                    /* crashed while creating: nothing acknowledged */
                    crashed = 1;
                    ck_assert_msg(rc == SDB_EIO, "create with a crash at %s %llu: %d (%s)",
                                  kind ? "sync" : "write", (unsigned long long)at, rc,
                                  sdb_strerror(rc));
                    continue;
                }
                /* the crash fired: the sweep covers what it claims */
                ck_assert_msg(crashed, "crash at %s %llu never fired (the clean run made %llu/%llu)",
                              kind ? "sync" : "write", (unsigned long long)at,
                              (unsigned long long)writes, (unsigned long long)syncs);
                /* an acknowledged database never reopens as CORRUPT after a crash */
                sdb_t *db2;
                rc = sdb_open_backend(backend_mem_from(img, len), &cfg, &db2);
                free(img);
                ck_assert_msg(rc == 0, "reopen after crash at %s %llu keep %d (%d steps acknowledged): "
                              "%d (%s)", kind ? "sync" : "write", (unsigned long long)at, keep, done,
                              rc, sdb_strerror(rc));
                /* the state is that after the acknowledged steps, or after one more
                   (the step in flight when the power went) -- never anything else */
                ck_assert_msg(matches(db2, done) || matches(db2, done + 1),
                              "crash at %s %llu keep %d: state matches neither step %d nor %d",
                              kind ? "sync" : "write", (unsigned long long)at, keep, done, done + 1);
                /* and the recovered database accepts new writes */
                ck_assert_int_eq(sdb_put(db2, "/after", "x", 1, NULL), 0);
                ck_assert_int_eq(sdb_close(db2), 0);
                cases++;
            }
    ck_assert_int_gt(cases, 20);
}
END_TEST

static int count_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    (void)info;
    (*(int *)arg)++;
    return 0;
}

/* Lowering versions_to_keep at reopen: sdb_flush drops the excess, and the
 * drop survives another reopen. */
START_TEST(test_retention_lowered)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    cfg.versions_to_keep = 3;
    sdb_t *db;
    sdb_docinfo_t info;
    char buf[1000];
    int n;
    uint8_t *img;
    size_t len;
    fault_plan_t none = { 0 };
    sdb_backend_t *be = backend_fault_new(&none, NULL, 0);
    ck_assert_int_eq(sdb_open_backend(be, &cfg, &db), 0);
    for (int v = 1; v <= 5; v++) {
        memset(buf, 'a' + v, sizeof(buf));
        ck_assert_int_eq(sdb_put(db, "/doc", buf, sizeof(buf), &info), 0);
    }
    n = 0;
    ck_assert_int_eq(sdb_list_versions(db, &info.id, count_cb, &n), 0);
    ck_assert_int_eq(n, 4);                /* current + 3 kept */
    ck_assert_int_eq(sdb_flush(db), 0);
    ck_assert_int_eq(backend_fault_image(be, &img, &len), 0);
    ck_assert_int_eq(sdb_close(db), 0);
    cfg.versions_to_keep = 1;
    ck_assert_int_eq(sdb_open_backend(backend_mem_from(img, len), &cfg, &db), 0);
    free(img);
    n = 0;
    ck_assert_int_eq(sdb_list_versions(db, &info.id, count_cb, &n), 0);
    ck_assert_int_eq(n, 4);                /* nothing dropped before a flush */
    ck_assert_int_eq(sdb_flush(db), 0);
    n = 0;
    ck_assert_int_eq(sdb_list_versions(db, &info.id, count_cb, &n), 0);
    ck_assert_int_eq(n, 2);                /* current + 1 kept */
    void *data;
    size_t dl;
    ck_assert_int_eq(sdb_get_id(db, &info.id, 4, &data, &dl, NULL), 0);
    ck_assert_uint_eq(((uint8_t *)data)[0], 'a' + 4);
    free(data);
    ck_assert_int_eq(sdb_get_id(db, &info.id, 3, &data, &dl, NULL), SDB_ENOTFOUND);
    ck_assert_int_eq(sdb_close(db), 0);
}
END_TEST

/* sdb_writer_checksum equals zlib's crc32 of what was written, at every
 * point of a streamed upload (page boundaries included). */
START_TEST(test_writer_checksum)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    sdb_t *db;
    ck_assert_int_eq(sdb_open_memory(&cfg, &db), 0);
    uint8_t data[5000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31 + 7);
    sdb_writer_t *w;
    ck_assert_int_eq(sdb_writer_open(db, "/c", UINT64_MAX, &w), 0);
    size_t off = 0, steps[] = { 1, 463, 464, 1, 999, 17, 2000, 1055 };
    for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
        uint64_t size;
        uint32_t crc;
        ck_assert_int_eq(sdb_writer_write(w, data + off, steps[i]), 0);
        off += steps[i];
        ck_assert_int_eq(sdb_writer_checksum(w, &size, &crc), 0);
        ck_assert_uint_eq(size, off);
        ck_assert_uint_eq(crc, (uint32_t)crc32(0L, data, (uInt)off));
    }
    sdb_docinfo_t info;
    ck_assert_int_eq(sdb_writer_commit(w, &info), 0);
    ck_assert_uint_eq(info.crc32, (uint32_t)crc32(0L, data, (uInt)off));
    ck_assert_int_eq(sdb_writer_checksum(NULL, NULL, NULL), SDB_EINVAL);
    ck_assert_int_eq(sdb_close(db), 0);
}
END_TEST

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Reading a 96 MiB document through the mapping leaves the process's
 * resident set about where it was: the reader drops what it has read. */
START_TEST(test_large_read_rss)
{
    char dir[] = "/tmp/sdb-rss-XXXXXX", file[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/db", dir);
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.durable = 0;
    sdb_t *db;
    ck_assert_int_eq(sdb_open(file, &cfg, &db), 0);
    size_t chunk = 1 << 20, total = 96u << 20;
    uint8_t *buf = malloc(chunk);
    ck_assert_ptr_nonnull(buf);
    sdb_writer_t *w;
    ck_assert_int_eq(sdb_writer_open(db, "/big", UINT64_MAX, &w), 0);
    for (size_t off = 0; off < total; off += chunk) {
        memset(buf, (int)(off >> 20), chunk);
        ck_assert_int_eq(sdb_writer_write(w, buf, chunk), 0);
    }
    ck_assert_int_eq(sdb_writer_commit(w, NULL), 0);
    ck_assert_int_eq(sdb_close(db), 0);
    ck_assert_int_eq(sdb_open(file, &cfg, &db), 0);
    long before = rss_kb();
    sdb_reader_t *r;
    ck_assert_int_eq(sdb_reader_open(db, "/big", &r, NULL), 0);
    size_t n, got = 0;
    while (sdb_reader_read(r, buf, chunk, &n) == 0 && n > 0) {
        ck_assert_uint_eq(buf[0], (uint8_t)(got >> 20));   /* chunks line up with MiB */
        got += n;
    }
    long after = rss_kb();
    sdb_reader_close(r);
    ck_assert_uint_eq(got, total);
    ck_assert_msg(after - before < 16 * 1024, "reading 96 MiB grew RSS by %ld KiB", after - before);
    ck_assert_int_eq(sdb_close(db), 0);
    free(buf);
    unlink(file);
    rmdir(dir);
}
END_TEST

Suite *suite_engine(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_page_seal_open);
    tcase_add_test(tc, test_freespace);
    tcase_add_test(tc, test_freespace_fragmented);
    tcase_add_test(tc, test_crash_sweep);
    tcase_add_test(tc, test_retention_lowered);
    tcase_add_test(tc, test_large_read_rss);
    tcase_add_test(tc, test_writer_checksum);
    suite_add_tcase(s, tc);
    return s;
}
