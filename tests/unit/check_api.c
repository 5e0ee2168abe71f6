/*
 * check_api.c -- the public engine API (include/streamdb.h) against the
 * semantics of docs/ARCHITECTURE.md section 1: documents, versions, paths,
 * bindings, listings, streaming, conditional writes, statistics and the
 * handling of bad input.  Most tests run on a file database (with and without
 * mmap) and on a memory database (loop index: see env_init); "reopen" steps
 * close and reopen file databases and are no-ops in memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "check_util.h"

/* ---- Test environment: one database in one of three modes ---- */

enum { MODE_FILE = 0, MODE_MEMORY = 1, MODE_FILE_NOMMAP = 2 };

typedef struct {
    int mode;
    char path[512];
    sdb_config_t cfg;
} env_t;

static void env_init(env_t *e, int mode, const char *name)
{
    memset(e, 0, sizeof *e);
    e->mode = mode;
    sdb_config_default(&e->cfg);
    if (mode == MODE_FILE_NOMMAP)
        e->cfg.use_mmap = 0;
    tu_file(e->path, sizeof e->path, name);
}

static sdb_t *env_open(env_t *e)
{
    sdb_t *db = NULL;
    int rc = e->mode == MODE_MEMORY ? sdb_open_memory(&e->cfg, &db)
                                    : sdb_open(e->path, &e->cfg, &db);
    ck_assert_msg(rc == SDB_OK, "open (mode %d): %d (%s)", e->mode, rc, sdb_strerror(rc));
    ck_assert_ptr_nonnull(db);
    return db;
}

/* Closes and reopens a file database; returns db unchanged in memory mode. */
static sdb_t *env_reopen(env_t *e, sdb_t *db)
{
    if (e->mode == MODE_MEMORY)
        return db;
    CK_OK(sdb_close(db));
    return env_open(e);
}

static sdb_docinfo_t put_ok(sdb_t *db, const char *path, const void *d, size_t n)
{
    sdb_docinfo_t info;
    memset(&info, 0xEE, sizeof info);
    int rc = sdb_put(db, path, d, n, &info);
    ck_assert_msg(rc == SDB_OK, "put '%s' (%zu bytes): %d (%s)", path, n, rc, sdb_strerror(rc));
    ck_assert_msg(info.size == n, "put '%s': info.size %llu", path, (unsigned long long)info.size);
    ck_assert_msg(info.crc32 == tu_crc(d, n), "put '%s': info.crc32 is not zlib crc32", path);
    return info;
}

static void expect_lookup(sdb_t *db, const char *path, const sdb_id_t *id, uint64_t version,
                          uint64_t size)
{
    sdb_docinfo_t info;
    int rc = sdb_lookup(db, path, &info);
    ck_assert_msg(rc == SDB_OK, "lookup '%s': %d (%s)", path, rc, sdb_strerror(rc));
    ck_assert_msg(tu_id_eq(&info.id, id), "lookup '%s': wrong id", path);
    ck_assert_msg(info.version == version, "lookup '%s': version %llu, expected %llu", path,
                  (unsigned long long)info.version, (unsigned long long)version);
    ck_assert_msg(info.size == size, "lookup '%s': size %llu, expected %llu", path,
                  (unsigned long long)info.size, (unsigned long long)size);
}

static void list_paths(sdb_t *db, const sdb_id_t *id, tu_list_t *l)
{
    memset(l, 0, sizeof *l);
    CK_OK(sdb_list_paths(db, id, tu_list_cb, l));
}

static void search(sdb_t *db, const char *prefix, const char *start_after, size_t limit,
                   char delim, tu_list_t *l)
{
    sdb_search_opts_t o = {start_after, limit, delim};
    memset(l, 0, sizeof *l);
    int rc = sdb_search(db, prefix, &o, tu_list_cb, l);
    ck_assert_msg(rc == SDB_OK, "search '%s': %d (%s)", prefix, rc, sdb_strerror(rc));
}

static sdb_stats_t stats(sdb_t *db)
{
    sdb_stats_t s;
    memset(&s, 0xEE, sizeof s);
    CK_OK(sdb_stats(db, &s));
    return s;
}

static sdb_id_t random_id(uint32_t seed)
{
    sdb_id_t id;
    tu_fill(id.b, 16, seed);
    id.b[6] = (uint8_t)((id.b[6] & 0x0F) | 0x40);
    id.b[8] = (uint8_t)((id.b[8] & 0x3F) | 0x80);
    return id;
}

/* ---- Round trips ---- */

START_TEST(test_roundtrip_100k)
{
    env_t e;
    env_init(&e, _i, "rt");
    sdb_t *db = env_open(&e);
    const char *p1 = "/user's files/my document one.bin";
    const char *p2 = "it's here/another 'quoted' doc with  spaces ";
    size_t n1 = 100 * 1024, n2 = 100 * 1000 + 333;
    uint8_t *d1 = tu_bytes(n1, 1), *d2 = tu_bytes(n2, 2);
    sdb_docinfo_t i1 = put_ok(db, p1, d1, n1), i2 = put_ok(db, p2, d2, n2);
    ck_assert_uint_eq(i1.version, 1);
    ck_assert_uint_eq(i2.version, 1);
    ck_assert_msg(!tu_id_eq(&i1.id, &i2.id), "two documents got the same id");
    tu_expect_get(db, p1, d1, n1);
    tu_expect_get(db, p2, d2, n2);
    db = env_reopen(&e, db);
    tu_expect_get(db, p1, d1, n1);
    tu_expect_get(db, p2, d2, n2);
    expect_lookup(db, p1, &i1.id, 1, n1);
    expect_lookup(db, p2, &i2.id, 1, n2);
    tu_expect_get_id(db, &i1.id, 0, d1, n1);
    CK_OK(sdb_close(db));
    free(d1);
    free(d2);
}
END_TEST

START_TEST(test_overwrite_reopen)
{
    env_t e;
    env_init(&e, _i, "ow");
    sdb_t *db = env_open(&e);
    uint8_t *data[10];
    size_t len[10];
    sdb_id_t ids[10];
    char path[64];
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "/docs/doc %d", i);
        len[i] = (size_t)(i * 7919) % 20000 + (size_t)i;
        data[i] = tu_bytes(len[i], (uint32_t)i + 10);
        ids[i] = put_ok(db, path, data[i], len[i]).id;
    }
    for (int i = 3; i <= 6; i++) {
        snprintf(path, sizeof path, "/docs/doc %d", i);
        free(data[i]);
        len[i] = (size_t)(i * 1231) % 30000 + 1;
        data[i] = tu_bytes(len[i], (uint32_t)i + 100);
        sdb_docinfo_t info = put_ok(db, path, data[i], len[i]);
        ck_assert_uint_eq(info.version, 2);
        ck_assert_msg(tu_id_eq(&info.id, &ids[i]), "overwrite changed the id");
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        for (int i = 0; i < 10; i++) {
            snprintf(path, sizeof path, "/docs/doc %d", i);
            tu_expect_get(db, path, data[i], len[i]);
            expect_lookup(db, path, &ids[i], (i >= 3 && i <= 6) ? 2 : 1, len[i]);
        }
    }
    sdb_stats_t s = stats(db);
    ck_assert_uint_eq(s.documents, 10);
    ck_assert_uint_eq(s.paths, 10);
    CK_OK(sdb_close(db));
    for (int i = 0; i < 10; i++)
        free(data[i]);
}
END_TEST

START_TEST(test_page_sizes)
{
    static const uint32_t sizes[] = {512, 1024, 65536};
    env_t e;
    env_init(&e, MODE_FILE, "ps");
    e.cfg.page_size = sizes[_i];
    size_t ps = sizes[_i];
    size_t lens[] = {0, 1, ps - 1, ps, ps + 1, 3 * ps + 5, 200000};
    uint8_t *d[7];
    char path[32];
    sdb_t *db = env_open(&e);
    for (int i = 0; i < 7; i++) {
        d[i] = tu_bytes(lens[i], (uint32_t)(i + 1) * 7);
        snprintf(path, sizeof path, "/ps/%d", i);
        put_ok(db, path, d[i], lens[i]);
    }
    /* An existing file keeps its own page size whatever cfg says. */
    e.cfg.page_size = sizes[_i] == 4096 ? 8192 : 4096;
    db = env_reopen(&e, db);
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "/ps/%d", i);
        tu_expect_get(db, path, d[i], lens[i]);
    }
    uint8_t *more = tu_bytes(3 * ps + 1, 77);
    put_ok(db, "/ps/more", more, 3 * ps + 1);
    db = env_reopen(&e, db);
    tu_expect_get(db, "/ps/more", more, 3 * ps + 1);
    tu_expect_get(db, "/ps/6", d[6], lens[6]);
    CK_OK(sdb_close(db));
    free(more);
    for (int i = 0; i < 7; i++)
        free(d[i]);
}
END_TEST

/* ---- Paths and bindings ---- */

START_TEST(test_list_paths_bind)
{
    env_t e;
    env_init(&e, _i, "lp");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(5000, 3);
    sdb_docinfo_t info = put_ok(db, "/m", d, 5000);
    CK_OK(sdb_bind(db, &info.id, "/z"));
    CK_OK(sdb_bind(db, &info.id, "/b/c"));
    CK_OK(sdb_bind(db, &info.id, "/0"));
    CK_OK(sdb_bind(db, &info.id, "/z")); /* no-op: already bound there */
    static const char *const want[] = {"/0", "/b/c", "/m", "/z"};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_list_t l;
        list_paths(db, &info.id, &l);
        tu_list_expect(&l, want, 4, "list_paths");
        for (size_t i = 0; i < l.n; i++)
            ck_assert_msg(tu_id_eq(&l.info[i].id, &info.id), "list_paths info has wrong id");
        tu_list_free(&l);
        tu_expect_get(db, "/z", d, 5000);
        tu_expect_get(db, "/b/c", d, 5000);
        expect_lookup(db, "/0", &info.id, 1, 5000);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 4);
    }
    sdb_id_t other = random_id(99);
    tu_list_t l = {0};
    CK_RC(sdb_list_paths(db, &other, tu_list_cb, &l), SDB_ENOTFOUND);
    ck_assert_uint_eq(l.n, 0);
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

START_TEST(test_many_bindings)
{
    env_t e;
    env_init(&e, _i, "mb");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(1000, 4);
    sdb_docinfo_t info = put_ok(db, "/base", d, 1000);
    char path[64];
    for (int i = 0; i < 250; i++) {
        snprintf(path, sizeof path, "/alias/%03d", (i * 37) % 250); /* shuffled order */
        CK_OK(sdb_bind(db, &info.id, path));
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_list_t l;
        list_paths(db, &info.id, &l);
        ck_assert_uint_eq(l.n, 251);
        for (size_t i = 0; i < 250; i++) {
            snprintf(path, sizeof path, "/alias/%03zu", i);
            ck_assert_str_eq(l.paths[i], path);
        }
        ck_assert_str_eq(l.paths[250], "/base");
        tu_list_free(&l);
        search(db, "/alias/", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 250);
        tu_list_free(&l);
        for (int i = 0; i < 250; i++) {
            snprintf(path, sizeof path, "/alias/%03d", i);
            expect_lookup(db, path, &info.id, 1, 1000);
        }
        tu_expect_get(db, "/alias/249", d, 1000);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 251);
    }
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

START_TEST(test_interleaved_bindings)
{
    /* Five documents bound to 400 paths in turn (path j to document
     * (7 j) mod 5), so that in the checkpoint's byte order each document's
     * bindings come between the others': a reopen that loads them in
     * batches must give each binding its own slot of its document. */
    env_t e;
    env_init(&e, _i, "ib");
    sdb_t *db = env_open(&e);
    sdb_docinfo_t docs[5];
    char path[64];
    for (int k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "/doc/%d", k);
        docs[k] = put_ok(db, path, path, strlen(path));
    }
    for (int j = 0; j < 400; j++) {
        snprintf(path, sizeof path, "/p/%04d", j);
        CK_OK(sdb_bind(db, &docs[(j * 7) % 5].id, path));
    }
    for (int pass = 0; pass < 3; pass++) {
        if (pass > 0)
            db = env_reopen(&e, db);
        for (int j = 0; j < 400; j++) {
            snprintf(path, sizeof path, "/p/%04d", j);
            expect_lookup(db, path, &docs[(j * 7) % 5].id, 1, strlen("/doc/0"));
        }
        for (int k = 0; k < 5; k++) {
            tu_list_t l;
            list_paths(db, &docs[k].id, &l);
            ck_assert_uint_eq(l.n, 81);
            for (size_t i = 0; i < 80; i++) {
                /* the j with (7 j) mod 5 == k, in order: j = 3k mod 5 + 5 i */
                snprintf(path, sizeof path, "/p/%04zu", (size_t)((3 * k) % 5) + 5 * i);
                ck_assert_str_eq(l.paths[i + 1], path);
            }
            tu_list_free(&l);
        }
        sdb_stats_t st = stats(db);
        ck_assert_uint_eq(st.documents, 5);
        ck_assert_uint_eq(st.paths, 405);
        if (pass == 1) {
            /* unbind some, so that the next checkpoint differs */
            for (int j = 0; j < 400; j += 50) {
                snprintf(path, sizeof path, "/p/%04d", j);
                CK_OK(sdb_unbind(db, &docs[(j * 7) % 5].id, path));
                CK_OK(sdb_bind(db, &docs[(j * 7) % 5].id, path));
            }
        }
    }
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_prefix_search)
{
    env_t e;
    env_init(&e, _i, "ps");
    sdb_t *db = env_open(&e);
    static const char *const paths[] = {"/o", "/p", "/p/a", "/p/b", "/pa", "/q", "/p/a/deep",
                                        "/p\xC3\xA9"};
    uint8_t buf[64];
    tu_fill(buf, sizeof buf, 5);
    for (size_t i = 0; i < 8; i++)
        put_ok(db, paths[i], buf, i + 1); /* size identifies the path */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_list_t l;
        static const char *const w1[] = {"/p", "/p/a", "/p/a/deep", "/p/b", "/pa",
                                         "/p\xC3\xA9"};
        search(db, "/p", NULL, 0, 0, &l);
        tu_list_expect(&l, w1, 6, "search /p");
        for (size_t i = 0; i < l.n; i++) {
            size_t k = 0;
            while (strcmp(paths[k], l.paths[i]) != 0)
                k++;
            ck_assert_msg(l.info[i].size == k + 1 && l.info[i].version == 1,
                          "search info for %s: size %llu", l.paths[i],
                          (unsigned long long)l.info[i].size);
        }
        tu_list_free(&l);
        static const char *const w2[] = {"/p/a", "/p/a/deep", "/p/b"};
        search(db, "/p/", NULL, 0, 0, &l);
        tu_list_expect(&l, w2, 3, "search /p/");
        tu_list_free(&l);
        static const char *const w3[] = {"/p/a/deep"};
        search(db, "/p/a/deep", NULL, 0, 0, &l);
        tu_list_expect(&l, w3, 1, "search of an exact bound path");
        tu_list_free(&l);
        static const char *const w4[] = {"/o", "/p", "/p/a", "/p/a/deep", "/p/b", "/pa",
                                         "/p\xC3\xA9", "/q"};
        search(db, "", NULL, 0, 0, &l);
        tu_list_expect(&l, w4, 8, "search all (byte order)");
        tu_list_free(&l);
        memset(&l, 0, sizeof l);
        CK_OK(sdb_search(db, "", NULL, tu_list_cb, &l)); /* opts NULL = all */
        ck_assert_uint_eq(l.n, 8);
        tu_list_free(&l);
        search(db, "/zz", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 0);
        tu_list_free(&l);
        search(db, "/p/a/deeper", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 0);
        tu_list_free(&l);
    }
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_delete_id)
{
    env_t e;
    env_init(&e, _i, "di");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(9000, 6), *k = tu_bytes(100, 7);
    sdb_docinfo_t info = put_ok(db, "/x", d, 9000);
    put_ok(db, "/x", d, 8000); /* a second version */
    CK_OK(sdb_bind(db, &info.id, "/y"));
    CK_OK(sdb_bind(db, &info.id, "/w/z"));
    put_ok(db, "/keep", k, 100);
    CK_OK(sdb_delete_id(db, &info.id));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_absent(db, "/x");
        tu_expect_absent(db, "/y");
        tu_expect_absent(db, "/w/z");
        void *p = NULL;
        size_t n = 0;
        CK_RC(sdb_get_id(db, &info.id, 0, &p, &n, NULL), SDB_ENOTFOUND);
        CK_RC(sdb_get_id(db, &info.id, 1, &p, &n, NULL), SDB_ENOTFOUND);
        tu_list_t l = {0};
        CK_RC(sdb_list_paths(db, &info.id, tu_list_cb, &l), SDB_ENOTFOUND);
        CK_RC(sdb_list_versions(db, &info.id, tu_list_cb, &l), SDB_ENOTFOUND);
        ck_assert_uint_eq(l.n, 0);
        static const char *const w[] = {"/keep"};
        search(db, "", NULL, 0, 0, &l);
        tu_list_expect(&l, w, 1, "search after delete_id");
        tu_list_free(&l);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 1);
        CK_RC(sdb_delete_id(db, &info.id), SDB_ENOTFOUND);
        CK_RC(sdb_bind(db, &info.id, "/new"), SDB_ENOTFOUND);
        tu_expect_absent(db, "/new");
        tu_expect_get(db, "/keep", k, 100);
    }
    CK_OK(sdb_close(db));
    free(d);
    free(k);
}
END_TEST

START_TEST(test_unbind_one)
{
    env_t e;
    env_init(&e, _i, "u1");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(3000, 8);
    sdb_docinfo_t info = put_ok(db, "/a", d, 3000);
    sdb_docinfo_t other = put_ok(db, "/other", d, 10);
    CK_OK(sdb_bind(db, &info.id, "/b"));
    CK_OK(sdb_bind(db, &info.id, "/c"));
    CK_OK(sdb_unbind(db, &info.id, "/b"));
    CK_RC(sdb_unbind(db, &info.id, "/b"), SDB_ENOTFOUND);
    CK_RC(sdb_unbind(db, &info.id, "/nonexistent"), SDB_ENOTFOUND);
    CK_RC(sdb_unbind(db, &other.id, "/a"), SDB_ENOTFOUND); /* bound, but to another id */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_absent(db, "/b");
        tu_expect_get(db, "/a", d, 3000);
        tu_expect_get(db, "/c", d, 3000);
        expect_lookup(db, "/a", &info.id, 1, 3000);
        static const char *const w[] = {"/a", "/c"};
        tu_list_t l;
        list_paths(db, &info.id, &l);
        tu_list_expect(&l, w, 2, "list_paths after unbind");
        tu_list_free(&l);
        ck_assert_uint_eq(stats(db).paths, 3);
    }
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

START_TEST(test_unbind_last)
{
    env_t e;
    env_init(&e, _i, "ul");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(7000, 9), *d2 = tu_bytes(50, 10);
    sdb_docinfo_t info = put_ok(db, "/only", d, 7000);
    CK_OK(sdb_unbind(db, &info.id, "/only"));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_absent(db, "/only");
        tu_expect_get_id(db, &info.id, 0, d, 7000);
        tu_list_t l;
        list_paths(db, &info.id, &l);
        ck_assert_uint_eq(l.n, 0);
        tu_list_free(&l);
        search(db, "", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 0);
        tu_list_free(&l);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 0);
        char *text = NULL;
        CK_OK(sdb_info(db, &info.id, &text));
        ck_assert_ptr_nonnull(text);
        free(text);
    }
    /* The path is free now: a put there makes a new document. */
    sdb_docinfo_t fresh = put_ok(db, "/only", d2, 50);
    ck_assert_msg(!tu_id_eq(&fresh.id, &info.id), "put on an unbound path reused the old doc");
    ck_assert_uint_eq(fresh.version, 1);
    tu_expect_get_id(db, &info.id, 0, d, 7000);
    /* Rebind the orphan elsewhere. */
    CK_OK(sdb_bind(db, &info.id, "/again"));
    db = env_reopen(&e, db);
    tu_expect_get(db, "/again", d, 7000);
    expect_lookup(db, "/again", &info.id, 1, 7000);
    tu_expect_get(db, "/only", d2, 50);
    CK_OK(sdb_unbind(db, &info.id, "/again"));
    CK_OK(sdb_delete_id(db, &info.id));
    void *p;
    size_t n;
    CK_RC(sdb_get_id(db, &info.id, 0, &p, &n, NULL), SDB_ENOTFOUND);
    ck_assert_uint_eq(stats(db).documents, 1);
    db = env_reopen(&e, db);
    CK_RC(sdb_get_id(db, &info.id, 0, &p, &n, NULL), SDB_ENOTFOUND);
    CK_OK(sdb_close(db));
    free(d);
    free(d2);
}
END_TEST

START_TEST(test_delete_last_path)
{
    env_t e;
    env_init(&e, _i, "dl");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(6000, 11);
    sdb_docinfo_t info = put_ok(db, "/a", d, 6000);
    put_ok(db, "/a", d, 5000); /* version 2 */
    CK_OK(sdb_bind(db, &info.id, "/b"));
    CK_OK(sdb_delete(db, "/a"));
    tu_expect_absent(db, "/a");
    tu_expect_get(db, "/b", d, 5000);
    tu_expect_get_id(db, &info.id, 1, d, 6000);
    db = env_reopen(&e, db);
    tu_expect_get(db, "/b", d, 5000);
    CK_OK(sdb_delete(db, "/b"));
    CK_RC(sdb_delete(db, "/b"), SDB_ENOTFOUND);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        void *p;
        size_t n;
        CK_RC(sdb_get_id(db, &info.id, 0, &p, &n, NULL), SDB_ENOTFOUND);
        CK_RC(sdb_get_id(db, &info.id, 1, &p, &n, NULL), SDB_ENOTFOUND);
        tu_list_t l = {0};
        CK_RC(sdb_list_versions(db, &info.id, tu_list_cb, &l), SDB_ENOTFOUND);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 0);
        ck_assert_uint_eq(s.paths, 0);
    }
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

START_TEST(test_bind_moves)
{
    env_t e;
    env_init(&e, _i, "bm");
    sdb_t *db = env_open(&e);
    uint8_t *de = tu_bytes(2000, 12), *dd = tu_bytes(3000, 13), *dm = tu_bytes(400, 14);
    sdb_docinfo_t E = put_ok(db, "/e1", de, 2000);
    CK_OK(sdb_bind(db, &E.id, "/shared"));
    sdb_docinfo_t D = put_ok(db, "/d", dd, 3000);
    CK_OK(sdb_bind(db, &D.id, "/shared"));
    sdb_docinfo_t M = put_ok(db, "/m", dm, 400);
    CK_OK(sdb_bind(db, &D.id, "/m")); /* M loses its only path, survives */
    CK_OK(sdb_bind(db, &D.id, "/d")); /* no-op */
    sdb_id_t nobody = random_id(4242);
    CK_RC(sdb_bind(db, &nobody, "/x"), SDB_ENOTFOUND);
    CK_RC(sdb_bind(db, &nobody, "/d"), SDB_ENOTFOUND); /* and /d stays with D */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/shared", dd, 3000);
        expect_lookup(db, "/shared", &D.id, 1, 3000);
        tu_expect_get(db, "/m", dd, 3000);
        tu_expect_get(db, "/e1", de, 2000);
        expect_lookup(db, "/d", &D.id, 1, 3000);
        tu_expect_get_id(db, &E.id, 0, de, 2000);
        tu_expect_get_id(db, &M.id, 0, dm, 400);
        tu_expect_absent(db, "/x");
        tu_list_t l;
        static const char *const we[] = {"/e1"};
        list_paths(db, &E.id, &l);
        tu_list_expect(&l, we, 1, "list_paths(E)");
        tu_list_free(&l);
        static const char *const wd[] = {"/d", "/m", "/shared"};
        list_paths(db, &D.id, &l);
        tu_list_expect(&l, wd, 3, "list_paths(D)");
        tu_list_free(&l);
        list_paths(db, &M.id, &l);
        ck_assert_uint_eq(l.n, 0);
        tu_list_free(&l);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 3);
        ck_assert_uint_eq(s.paths, 4);
    }
    CK_OK(sdb_close(db));
    free(de);
    free(dd);
    free(dm);
}
END_TEST

/* The C# original's stale-length bug: a recycled page kept its old length. */
START_TEST(test_shrink_after_reuse)
{
    env_t e;
    env_init(&e, _i, "sr");
    e.cfg.page_size = 512;
    e.cfg.versions_to_keep = 0;
    sdb_t *db = env_open(&e);
    uint8_t *big = tu_bytes(200000, 15), *filler = tu_bytes(150000, 16);
    uint8_t *small = tu_bytes(10001, 17);
    put_ok(db, "/big", big, 200000);
    put_ok(db, "/filler", filler, 150000);
    CK_OK(sdb_delete(db, "/filler"));
    CK_OK(sdb_flush(db));
    put_ok(db, "/big", small, 10001); /* smaller version; the old one is dropped */
    CK_OK(sdb_flush(db));
    static const size_t sz[] = {777, 513, 1, 511, 1024, 2049, 30000};
    uint8_t *n[7];
    char path[32];
    for (int i = 0; i < 7; i++) {
        n[i] = tu_bytes(sz[i], (uint32_t)(20 + i));
        snprintf(path, sizeof path, "/new%d", i);
        put_ok(db, path, n[i], sz[i]);
    }
    static const size_t caps[] = {100, 4096};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/big", small, 10001);
        tu_expect_stream(db, "/big", small, 10001, caps, 2);
        for (int i = 0; i < 7; i++) {
            snprintf(path, sizeof path, "/new%d", i);
            tu_expect_get(db, path, n[i], sz[i]);
            tu_expect_stream(db, path, n[i], sz[i], caps, 2);
        }
    }
    CK_OK(sdb_close(db));
    free(big);
    free(filler);
    free(small);
    for (int i = 0; i < 7; i++)
        free(n[i]);
}
END_TEST

START_TEST(test_zero_length)
{
    env_t e;
    env_init(&e, _i, "zl");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(1500, 18);
    sdb_docinfo_t i0 = put_ok(db, "/empty", NULL, 0);
    ck_assert_uint_eq(i0.version, 1);
    ck_assert_uint_eq(i0.crc32, 0);
    put_ok(db, "/empty-ptr", d, 0); /* non-NULL pointer, zero length */
    sdb_writer_t *w = NULL;
    CK_OK(sdb_writer_open(db, "/empty-stream", UINT64_MAX, &w));
    sdb_docinfo_t iw;
    CK_OK(sdb_writer_commit(w, &iw));
    ck_assert_uint_eq(iw.size, 0);
    put_ok(db, "/shrinks", d, 1500);
    put_ok(db, "/shrinks", NULL, 0); /* v2 empty */
    put_ok(db, "/grows", NULL, 0);
    put_ok(db, "/grows", d, 1500);    /* v2 non-empty */
    static const size_t caps[] = {1, 100};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/empty", NULL, 0);
        tu_expect_get(db, "/empty-ptr", NULL, 0);
        tu_expect_get(db, "/empty-stream", NULL, 0);
        tu_expect_get(db, "/shrinks", NULL, 0);
        tu_expect_get(db, "/grows", d, 1500);
        tu_expect_stream(db, "/empty", NULL, 0, caps, 2);
        tu_expect_stream(db, "/shrinks", NULL, 0, caps, 2);
        expect_lookup(db, "/empty", &i0.id, 1, 0);
        tu_expect_get_id(db, &i0.id, 0, NULL, 0);
        tu_expect_get_id(db, &i0.id, 1, NULL, 0);
        sdb_docinfo_t li;
        CK_OK(sdb_lookup(db, "/shrinks", &li));
        ck_assert_uint_eq(li.version, 2);
        ck_assert_uint_eq(li.size, 0);
        tu_expect_get_id(db, &li.id, 1, d, 1500);
        CK_OK(sdb_lookup(db, "/grows", &li));
        tu_expect_get_id(db, &li.id, 1, NULL, 0);
        tu_list_t l;
        search(db, "/empty", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 3);
        for (size_t i = 0; i < l.n; i++)
            ck_assert_uint_eq(l.info[i].size, 0);
        tu_list_free(&l);
    }
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

/* ---- Versions ---- */

START_TEST(test_alias_overwrite)
{
    env_t e;
    env_init(&e, _i, "ao");
    sdb_t *db = env_open(&e);
    uint8_t *a = tu_bytes(4000, 19), *b = tu_bytes(6000, 20), *c = tu_bytes(100, 21);
    sdb_docinfo_t i1 = put_ok(db, "/orig", a, 4000);
    CK_OK(sdb_bind(db, &i1.id, "/alias"));
    sdb_docinfo_t i2 = put_ok(db, "/alias", b, 6000);
    ck_assert_msg(tu_id_eq(&i1.id, &i2.id), "write through an alias made a new document");
    ck_assert_uint_eq(i2.version, 2);
    tu_expect_get(db, "/orig", b, 6000);
    expect_lookup(db, "/orig", &i1.id, 2, 6000);
    sdb_writer_t *w;
    CK_OK(sdb_writer_open(db, "/orig", UINT64_MAX, &w));
    CK_OK(sdb_writer_write(w, c, 100));
    sdb_docinfo_t i3;
    CK_OK(sdb_writer_commit(w, &i3));
    ck_assert_uint_eq(i3.version, 3);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/alias", c, 100);
        tu_expect_get(db, "/orig", c, 100);
        expect_lookup(db, "/alias", &i1.id, 3, 100);
        tu_expect_get_id(db, &i1.id, 2, b, 6000);
        tu_expect_get_id(db, &i1.id, 1, a, 4000);
    }
    CK_OK(sdb_close(db));
    free(a);
    free(b);
    free(c);
}
END_TEST

static void expect_versions(sdb_t *db, const sdb_id_t *id, const uint64_t *want, size_t n,
                            uint8_t *const *data, const size_t *len)
{
    tu_list_t l = {0};
    CK_OK(sdb_list_versions(db, id, tu_list_cb, &l));
    char got[256] = "";
    for (size_t i = 0, off = 0; i < l.n && off < 200; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, " %llu",
                                (unsigned long long)l.info[i].version);
    ck_assert_msg(l.n == n, "list_versions: %zu versions (%s), expected %zu", l.n, got, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(l.paths[i] == NULL, "list_versions: path not NULL");
        ck_assert_msg(!l.rolled[i], "list_versions: info NULL");
        ck_assert_msg(l.info[i].version == want[i], "list_versions[%zu] = v%llu (%s)", i,
                      (unsigned long long)l.info[i].version, got);
        ck_assert_msg(tu_id_eq(&l.info[i].id, id), "list_versions: wrong id");
        uint64_t v = want[i];
        ck_assert_uint_eq(l.info[i].size, len[v]);
        ck_assert_uint_eq(l.info[i].crc32, tu_crc(data[v], len[v]));
    }
    tu_list_free(&l);
}

START_TEST(test_old_versions)
{
    env_t e;
    env_init(&e, _i, "ov");
    sdb_t *db = env_open(&e);
    ck_assert_uint_eq(e.cfg.versions_to_keep, 2);
    uint8_t *data[8];
    size_t len[8];
    sdb_docinfo_t info[8];
    for (int v = 1; v <= 7; v++) {
        len[v] = (size_t)v * 1700 + 3;
        data[v] = tu_bytes(len[v], (uint32_t)(30 + v));
    }
    for (int v = 1; v <= 5; v++) {
        info[v] = put_ok(db, "/v", data[v], len[v]);
        ck_assert_uint_eq(info[v].version, (uint64_t)v);
        ck_assert_msg(tu_id_eq(&info[v].id, &info[1].id), "overwrite changed id");
        if (v >= 3) /* the previous two versions stay readable even before a flush */
            tu_expect_get_id(db, &info[1].id, (uint64_t)v - 2, data[v - 2], len[v - 2]);
    }
    CK_OK(sdb_flush(db));
    sdb_id_t id = info[1].id;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get_id(db, &id, 5, data[5], len[5]);
        tu_expect_get_id(db, &id, 4, data[4], len[4]);
        tu_expect_get_id(db, &id, 3, data[3], len[3]);
        tu_expect_get_id(db, &id, 0, data[5], len[5]);
        void *p;
        size_t n;
        CK_RC(sdb_get_id(db, &id, 2, &p, &n, NULL), SDB_ENOTFOUND);
        CK_RC(sdb_get_id(db, &id, 1, &p, &n, NULL), SDB_ENOTFOUND);
        CK_RC(sdb_get_id(db, &id, 6, &p, &n, NULL), SDB_ENOTFOUND);
        sdb_reader_t *r = NULL;
        CK_RC(sdb_reader_open_id(db, &id, 2, &r, NULL), SDB_ENOTFOUND);
        static const uint64_t want[] = {5, 4, 3};
        expect_versions(db, &id, want, 3, data, len);
        /* The old version streams too, with its own metadata. */
        sdb_docinfo_t ri;
        CK_OK(sdb_reader_open_id(db, &id, 4, &r, &ri));
        ck_assert_uint_eq(ri.version, 4);
        ck_assert_uint_eq(ri.size, len[4]);
        uint8_t *buf = malloc(len[4] + 10);
        size_t got = 0, m;
        do {
            CK_OK(sdb_reader_read(r, buf + got, len[4] + 10 - got, &m));
            got += m;
        } while (m > 0);
        sdb_reader_close(r);
        ck_assert_uint_eq(got, len[4]);
        ck_assert(memcmp(buf, data[4], len[4]) == 0);
        free(buf);
        ck_assert_msg(info[5].created_ms == info[1].created_ms, "created_ms changed");
    }
    sdb_docinfo_t i6 = put_ok(db, "/v", data[6], len[6]);
    ck_assert_uint_eq(i6.version, 6);
    put_ok(db, "/v", data[7], len[7]);
    CK_OK(sdb_flush(db));
    static const uint64_t want2[] = {7, 6, 5};
    expect_versions(db, &id, want2, 3, data, len);
    void *p;
    size_t n;
    CK_RC(sdb_get_id(db, &id, 4, &p, &n, NULL), SDB_ENOTFOUND);
    tu_expect_get(db, "/v", data[7], len[7]);
    CK_OK(sdb_close(db));
    for (int v = 1; v <= 7; v++)
        free(data[v]);
}
END_TEST

START_TEST(test_versions_zero)
{
    env_t e;
    env_init(&e, _i, "v0");
    e.cfg.versions_to_keep = 0;
    e.cfg.page_size = 512;
    sdb_t *db = env_open(&e);
    uint8_t *data[4];
    size_t len[4];
    sdb_docinfo_t info;
    for (int v = 1; v <= 3; v++) {
        len[v] = 20000 + (size_t)v;
        data[v] = tu_bytes(len[v], (uint32_t)(40 + v));
        info = put_ok(db, "/v0", data[v], len[v]);
    }
    CK_OK(sdb_flush(db));
    sdb_stats_t s = stats(db);
    ck_assert_msg(s.free_pages > 0, "no free pages after dropping two 20 KB versions");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get_id(db, &info.id, 3, data[3], len[3]);
        void *p;
        size_t n;
        CK_RC(sdb_get_id(db, &info.id, 2, &p, &n, NULL), SDB_ENOTFOUND);
        CK_RC(sdb_get_id(db, &info.id, 1, &p, &n, NULL), SDB_ENOTFOUND);
        static const uint64_t want[] = {3};
        expect_versions(db, &info.id, want, 1, data, len);
    }
    CK_OK(sdb_close(db));
    for (int v = 1; v <= 3; v++)
        free(data[v]);
}
END_TEST

/* ---- Conditional writes ---- */

START_TEST(test_conditional_put)
{
    env_t e;
    env_init(&e, _i, "cp");
    sdb_t *db = env_open(&e);
    uint8_t *a = tu_bytes(1000, 50), *b = tu_bytes(2000, 51), *c = tu_bytes(3000, 52);
    sdb_docinfo_t i1;
    CK_OK(sdb_put_if(db, "/c", a, 1000, 0, &i1));
    ck_assert_uint_eq(i1.version, 1);
    CK_RC(sdb_put_if(db, "/c", b, 2000, 0, NULL), SDB_ECONFLICT);
    tu_expect_get(db, "/c", a, 1000);
    sdb_docinfo_t i2;
    CK_OK(sdb_put_if(db, "/c", b, 2000, 1, &i2));
    ck_assert_uint_eq(i2.version, 2);
    ck_assert(tu_id_eq(&i1.id, &i2.id));
    CK_RC(sdb_put_if(db, "/c", c, 3000, 1, NULL), SDB_ECONFLICT);
    CK_RC(sdb_put_if(db, "/c", c, 3000, 3, NULL), SDB_ECONFLICT);
    CK_RC(sdb_put_if(db, "/c", c, 3000, UINT64_MAX - 1, NULL), SDB_ECONFLICT);
    CK_RC(sdb_put_if(db, "/unbound", c, 3000, 1, NULL), SDB_ECONFLICT);
    /* Through an alias the document's version counts. */
    CK_OK(sdb_bind(db, &i1.id, "/c-alias"));
    CK_RC(sdb_put_if(db, "/c-alias", c, 3000, 0, NULL), SDB_ECONFLICT);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/c", b, 2000);
        expect_lookup(db, "/c", &i1.id, 2, 2000);
        tu_expect_get_id(db, &i1.id, 1, a, 1000);
        tu_expect_absent(db, "/unbound");
        void *p;
        size_t n;
        CK_RC(sdb_get_id(db, &i1.id, 3, &p, &n, NULL), SDB_ENOTFOUND);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 2);
    }
    sdb_docinfo_t i3;
    CK_OK(sdb_put_if(db, "/c-alias", c, 3000, 2, &i3));
    ck_assert_uint_eq(i3.version, 3);
    tu_expect_get(db, "/c", c, 3000);
    CK_OK(sdb_close(db));
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(test_writer_conditional)
{
    env_t e;
    env_init(&e, _i, "wc");
    sdb_t *db = env_open(&e);
    uint8_t *x = tu_bytes(5000, 53), *y = tu_bytes(700, 54), *z = tu_bytes(9000, 55);
    sdb_writer_t *w;
    sdb_docinfo_t info;
    CK_OK(sdb_writer_open(db, "/c", 0, &w));
    CK_OK(sdb_writer_write(w, x, 5000));
    CK_OK(sdb_writer_commit(w, &info));
    ck_assert_uint_eq(info.version, 1);
    sdb_id_t id = info.id;
    /* if_version matched at open, but a put lands before the commit. */
    CK_OK(sdb_writer_open(db, "/c", 1, &w));
    CK_OK(sdb_writer_write(w, z, 9000));
    put_ok(db, "/c", y, 700); /* v2 */
    CK_RC(sdb_writer_commit(w, &info), SDB_ECONFLICT);
    tu_expect_get(db, "/c", y, 700);
    expect_lookup(db, "/c", &id, 2, 700);
    /* Wrong version from the start: refused at open or at commit. */
    int rc = sdb_writer_open(db, "/c", 7, &w);
    if (rc == SDB_OK) {
        CK_OK(sdb_writer_write(w, z, 9000));
        CK_RC(sdb_writer_commit(w, NULL), SDB_ECONFLICT);
    } else {
        ck_assert_msg(rc == SDB_ECONFLICT, "writer_open with a wrong version: %d (%s)", rc,
                      sdb_strerror(rc));
    }
    expect_lookup(db, "/c", &id, 2, 700);
    /* if_version 0 on a path that gets bound meanwhile. */
    CK_OK(sdb_writer_open(db, "/n", 0, &w));
    CK_OK(sdb_writer_write(w, z, 9000));
    sdb_docinfo_t ni = put_ok(db, "/n", x, 5000);
    CK_RC(sdb_writer_commit(w, NULL), SDB_ECONFLICT);
    tu_expect_get(db, "/n", x, 5000);
    /* Unconditional writer wins over the put in between. */
    CK_OK(sdb_writer_open(db, "/c", UINT64_MAX, &w));
    CK_OK(sdb_writer_write(w, z, 4000));
    CK_OK(sdb_writer_write(w, z + 4000, 5000));
    put_ok(db, "/c", x, 10); /* v3 */
    CK_OK(sdb_writer_commit(w, &info));
    ck_assert_uint_eq(info.version, 4);
    /* A matching if_version commits. */
    CK_OK(sdb_writer_open(db, "/c", 4, &w));
    CK_OK(sdb_writer_write(w, y, 700));
    CK_OK(sdb_writer_commit(w, &info));
    ck_assert_uint_eq(info.version, 5);
    db = env_reopen(&e, db);
    tu_expect_get(db, "/c", y, 700);
    tu_expect_get_id(db, &id, 4, z, 9000);
    tu_expect_get_id(db, &id, 3, x, 10);
    expect_lookup(db, "/n", &ni.id, 1, 5000);
    sdb_stats_t s = stats(db);
    ck_assert_uint_eq(s.documents, 2);
    CK_OK(sdb_close(db));
    free(x);
    free(y);
    free(z);
}
END_TEST

/* ---- Listings ---- */

static const char *const tree[] = {
    "/photos/2023/a.jpg", "/photos/2024/b.jpg", "/photos/2024/c.jpg", "/photos/2024/sub/d.jpg",
    "/photos/readme",     "/photos/x",          "/photosz",           "/photos/",
    "rel/x",              "/other"};

static sdb_t *make_tree(env_t *e, int mode, const char *name)
{
    env_init(e, mode, name);
    sdb_t *db = env_open(e);
    uint8_t b[16];
    tu_fill(b, sizeof b, 60);
    for (size_t i = 0; i < sizeof tree / sizeof *tree; i++)
        put_ok(db, tree[i], b, i);
    return env_reopen(e, db);
}

START_TEST(test_delimiter)
{
    env_t e;
    sdb_t *db = make_tree(&e, _i, "dl");
    tu_list_t l;
    static const char *const w1[] = {"/photos/", "/photos/2023/*", "/photos/2024/*",
                                     "/photos/readme", "/photos/x"};
    search(db, "/photos/", NULL, 0, '/', &l);
    tu_list_expect(&l, w1, 5, "delimiter listing of /photos/");
    ck_assert_uint_eq(l.info[3].size, 4); /* /photos/readme is tree[4] */
    tu_list_free(&l);
    static const char *const w2[] = {"/*", "rel/*"};
    search(db, "", NULL, 0, '/', &l);
    tu_list_expect(&l, w2, 2, "delimiter listing of the root");
    tu_list_free(&l);
    static const char *const w3[] = {"/photos/2024/b.jpg", "/photos/2024/c.jpg",
                                     "/photos/2024/sub/*"};
    search(db, "/photos/2024/", NULL, 0, '/', &l);
    tu_list_expect(&l, w3, 3, "delimiter listing of /photos/2024/");
    tu_list_free(&l);
    static const char *const w4[] = {"/other", "/photos/*", "/photosz"};
    search(db, "/", NULL, 0, '/', &l);
    tu_list_expect(&l, w4, 3, "delimiter listing of /");
    tu_list_free(&l);
    static const char *const w5[] = {"/photos/*", "/photosz"};
    search(db, "/photos", NULL, 0, '/', &l);
    tu_list_expect(&l, w5, 2, "delimiter listing of /photos (no slash)");
    tu_list_free(&l);
    /* Another delimiter character. */
    static const char *const w6[] = {"/photos/2024/b.*", "/photos/2024/c.*",
                                     "/photos/2024/sub/d.*"};
    search(db, "/photos/2024/", NULL, 0, '.', &l);
    tu_list_expect(&l, w6, 3, "delimiter '.'");
    tu_list_free(&l);
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_delimiter_groups)
{
    /* Rolled-up directories of 1 to 40 paths each, around the point where
     * a listing stops stepping over a directory's keys and seeks past
     * them, with loose files between; listed whole and in pages of 3. */
    env_t e;
    env_init(&e, _i, "dg");
    sdb_t *db = env_open(&e);
    char path[64], want[200][32];
    size_t nwant = 0;
    for (int d = 0; d < 40; d++) {
        snprintf(path, sizeof path, "/g/%02d.txt", d);
        put_ok(db, path, "x", 1);
        snprintf(want[nwant++], sizeof want[0], "/g/%02d.txt", d);
        for (int f = 0; f < d; f++) {
            snprintf(path, sizeof path, "/g/%02d/%03d", d, f);
            put_ok(db, path, "y", 1);
        }
        if (d > 0)
            snprintf(want[nwant++], sizeof want[0], "/g/%02d/", d);
    }
    put_ok(db, "/h", "z", 1);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_list_t l;
        search(db, "/g/", NULL, 0, '/', &l);
        ck_assert_uint_eq(l.n, nwant);
        for (size_t i = 0; i < nwant; i++)
            ck_assert_str_eq(l.paths[i], want[i]);
        tu_list_free(&l);
        size_t got = 0;
        char after[64] = "";
        for (;;) {
            search(db, "/g/", got ? after : NULL, 3, '/', &l);
            ck_assert_uint_le(l.n, 3);
            for (size_t i = 0; i < l.n; i++)
                ck_assert_str_eq(l.paths[i], want[got + i]);
            got += l.n;
            if (l.n)
                snprintf(after, sizeof after, "%s", l.paths[l.n - 1]);
            size_t n = l.n;
            tu_list_free(&l);
            if (n < 3)
                break;
        }
        ck_assert_uint_eq(got, nwant);
    }
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_pagination)
{
    env_t e;
    sdb_t *db = make_tree(&e, _i, "pg");
    tu_list_t l;
    /* Limit counts a rolled-up prefix as one result. */
    static const char *const p1[] = {"/photos/", "/photos/2023/*", "/photos/2024/*"};
    search(db, "/photos/", NULL, 3, '/', &l);
    tu_list_expect(&l, p1, 3, "limit 3 with delimiter");
    tu_list_free(&l);
    /* The cursor continues after a rolled-up prefix, not inside it. */
    static const char *const p2[] = {"/photos/readme", "/photos/x"};
    search(db, "/photos/", "/photos/2024/", 2, '/', &l);
    tu_list_expect(&l, p2, 2, "start_after a rolled-up prefix");
    tu_list_free(&l);
    static const char *const p3[] = {"/photos/2024/*", "/photos/readme"};
    search(db, "/photos/", "/photos/2023/", 2, '/', &l);
    tu_list_expect(&l, p3, 2, "start_after /photos/2023/");
    tu_list_free(&l);
    search(db, "/photos/", "/photos/x", 2, '/', &l);
    ck_assert_uint_eq(l.n, 0);
    tu_list_free(&l);
    /* Paging one result at a time reproduces the full delimiter listing. */
    static const char *const full[] = {"/photos/", "/photos/2023/*", "/photos/2024/*",
                                       "/photos/readme", "/photos/x"};
    char cursor[256] = "";
    int have_cursor = 0;
    for (int page = 0; page < 5; page++) {
        search(db, "/photos/", have_cursor ? cursor : NULL, 1, '/', &l);
        ck_assert_msg(l.n == 1, "page %d: %zu results", page, l.n);
        tu_list_expect(&l, full + page, 1, "paging by one");
        snprintf(cursor, sizeof cursor, "%s", l.paths[0]);
        have_cursor = 1;
        tu_list_free(&l);
    }
    search(db, "/photos/", cursor, 1, '/', &l);
    ck_assert_msg(l.n == 0, "a page past the end returned %s", l.n ? l.paths[0] : "");
    tu_list_free(&l);
    /* Without delimiter: pages of 3 over everything equal one full listing. */
    tu_list_t all;
    search(db, "", NULL, 0, 0, &all);
    ck_assert_uint_eq(all.n, sizeof tree / sizeof *tree);
    size_t k = 0;
    have_cursor = 0;
    for (int page = 0; page < 10; page++) {
        search(db, "", have_cursor ? cursor : NULL, 3, 0, &l);
        ck_assert(l.n <= 3);
        for (size_t i = 0; i < l.n; i++, k++) {
            ck_assert_msg(k < all.n, "paging returned too many results");
            ck_assert_str_eq(l.paths[i], all.paths[k]);
        }
        if (l.n == 0) {
            tu_list_free(&l);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", l.paths[l.n - 1]);
        have_cursor = 1;
        tu_list_free(&l);
    }
    ck_assert_uint_eq(k, all.n);
    tu_list_free(&all);
    /* A cursor that is not itself a bound path. */
    static const char *const p4[] = {"/photos/2024/c.jpg", "/photos/2024/sub/d.jpg"};
    search(db, "/photos/2024/", "/photos/2024/bb", 0, 0, &l);
    tu_list_expect(&l, p4, 2, "start_after between keys");
    tu_list_free(&l);
    /* A cursor before the prefix range: everything; after it: nothing. */
    search(db, "/photos/2024/", "/a", 0, 0, &l);
    ck_assert_uint_eq(l.n, 3);
    tu_list_free(&l);
    search(db, "/photos/2024/", "/zzz", 0, 0, &l);
    ck_assert_uint_eq(l.n, 0);
    tu_list_free(&l);
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_callback_stop)
{
    env_t e;
    sdb_t *db = make_tree(&e, _i, "cs");
    tu_list_t l;
    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    CK_OK(sdb_search(db, "", NULL, tu_list_cb, &l));
    ck_assert_uint_eq(l.n, 2);
    tu_list_free(&l);
    sdb_search_opts_t o = {NULL, 0, '/'};
    l.stop_after = 1;
    CK_OK(sdb_search(db, "/photos/", &o, tu_list_cb, &l));
    ck_assert_uint_eq(l.n, 1);
    tu_list_free(&l);
    sdb_docinfo_t info;
    CK_OK(sdb_lookup(db, "/photos/x", &info));
    CK_OK(sdb_bind(db, &info.id, "/x2"));
    CK_OK(sdb_bind(db, &info.id, "/x3"));
    l.stop_after = 2;
    CK_OK(sdb_list_paths(db, &info.id, tu_list_cb, &l));
    ck_assert_uint_eq(l.n, 2);
    tu_list_free(&l);
    uint8_t b[10] = {0};
    put_ok(db, "/x2", b, 3);
    put_ok(db, "/x2", b, 4);
    l.stop_after = 1;
    CK_OK(sdb_list_versions(db, &info.id, tu_list_cb, &l));
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.info[0].version, 3);
    tu_list_free(&l);
    CK_OK(sdb_close(db));
}
END_TEST

/* ---- Streaming ---- */

START_TEST(test_stream_chunks)
{
    env_t e;
    env_init(&e, _i, "sc");
    sdb_t *db = env_open(&e);
    static const size_t chunks[] = {1, 4095, 4097, 1 << 20, 1, 4097, 4095, 1 << 20, 3, 1000};
    size_t total = 0;
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++)
        total += chunks[i];
    uint8_t *d = tu_bytes(total, 70);
    sdb_writer_t *w = NULL;
    CK_OK(sdb_writer_open(db, "/stream", UINT64_MAX, &w));
    size_t off = 0;
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        CK_OK(sdb_writer_write(w, d + off, chunks[i]));
        off += chunks[i];
    }
    sdb_docinfo_t info;
    CK_OK(sdb_writer_commit(w, &info));
    ck_assert_uint_eq(info.size, total);
    ck_assert_uint_eq(info.version, 1);
    ck_assert_uint_eq(info.crc32, tu_crc(d, total));
    static const size_t caps[] = {1, 4095, 4097, 1 << 20, 7};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/stream", d, total);
        tu_expect_stream(db, "/stream", d, total, caps, 5);
        /* Byte by byte across the first few page boundaries. */
        sdb_reader_t *r;
        CK_OK(sdb_reader_open(db, "/stream", &r, NULL));
        for (size_t i = 0; i < 20000; i++) {
            uint8_t c;
            size_t m;
            CK_OK(sdb_reader_read(r, &c, 1, &m));
            ck_assert_uint_eq(m, 1);
            ck_assert_msg(c == d[i], "byte %zu differs", i);
        }
        sdb_reader_close(r); /* closing early is fine */
    }
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

static void read_exact(sdb_reader_t *r, uint8_t *out, size_t n, size_t cap)
{
    size_t got = 0;
    while (got < n) {
        size_t m, want = n - got < cap ? n - got : cap;
        CK_OK(sdb_reader_read(r, out + got, want, &m));
        ck_assert_msg(m > 0, "reader ended early at %zu of %zu", got, n);
        got += m;
    }
}

static void read_to_end(sdb_reader_t *r, const uint8_t *exp, size_t from, size_t n)
{
    uint8_t buf[3000];
    size_t got = from, m;
    for (;;) {
        int rc = sdb_reader_read(r, buf, sizeof buf, &m);
        ck_assert_msg(rc == SDB_OK, "snapshot read at %zu: %d (%s)", got, rc, sdb_strerror(rc));
        if (m == 0)
            break;
        ck_assert_msg(got + m <= n, "snapshot reader returns too many bytes");
        ck_assert_msg(memcmp(buf, exp + got, m) == 0, "snapshot bytes differ at %zu", got);
        got += m;
    }
    ck_assert_msg(got == n, "snapshot reader: %zu of %zu bytes", got, n);
}

START_TEST(test_reader_snapshot)
{
    env_t e;
    env_init(&e, _i, "rs");
    e.cfg.page_size = 512;
    e.cfg.versions_to_keep = 0;
    sdb_t *db = env_open(&e);
    size_t na = 300000, nb = 250000, nf = 50000;
    uint8_t *a = tu_bytes(na, 80), *b = tu_bytes(nb, 81), *f = tu_bytes(nf, 82);
    uint8_t *head = malloc(1000);
    char path[32];
    sdb_docinfo_t ia = put_ok(db, "/s", a, na);
    sdb_reader_t *r1;
    sdb_docinfo_t ri;
    CK_OK(sdb_reader_open(db, "/s", &r1, &ri));
    ck_assert_uint_eq(ri.version, 1);
    ck_assert_uint_eq(ri.size, na);
    read_exact(r1, head, 1000, 333);
    ck_assert(memcmp(head, a, 1000) == 0);
    put_ok(db, "/s", b, nb); /* v2; v1 is beyond versions_to_keep */
    CK_OK(sdb_flush(db));
    for (int i = 0; i < 12; i++) { /* churn: would reuse v1's pages if they were freed */
        snprintf(path, sizeof path, "/fill%d", i % 4);
        f[0] = (uint8_t)i;
        put_ok(db, path, f, nf);
        CK_OK(sdb_flush(db));
    }
    read_to_end(r1, a, 1000, na);
    sdb_reader_close(r1);

    /* A reader keeps a deleted document. */
    sdb_reader_t *r2;
    CK_OK(sdb_reader_open(db, "/s", &r2, &ri));
    ck_assert_uint_eq(ri.version, 2);
    read_exact(r2, head, 1000, 1000);
    ck_assert(memcmp(head, b, 1000) == 0);
    CK_OK(sdb_delete(db, "/s"));
    tu_expect_absent(db, "/s");
    void *p;
    size_t n;
    CK_RC(sdb_get_id(db, &ia.id, 0, &p, &n, NULL), SDB_ENOTFOUND);
    CK_OK(sdb_flush(db));
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof path, "/fill%d", i % 4);
        f[1] = (uint8_t)i;
        put_ok(db, path, f, nf);
        CK_OK(sdb_flush(db));
    }
    read_to_end(r2, b, 1000, nb);
    sdb_stats_t held = stats(db);
    sdb_reader_close(r2);
    CK_OK(sdb_flush(db));
    sdb_stats_t after = stats(db);
    /* Closing the last reader of the deleted version releases its pages. */
    ck_assert_msg(after.free_pages >= held.free_pages + nb / 512,
                  "free pages %llu -> %llu after closing the reader of a deleted 250 KB doc",
                  (unsigned long long)held.free_pages, (unsigned long long)after.free_pages);
    for (int i = 0; i < 4; i++) { /* last writes: f[0] = 11, f[1] = 8 + i */
        snprintf(path, sizeof path, "/fill%d", i);
        f[0] = 11;
        f[1] = (uint8_t)(8 + i);
        tu_expect_get(db, path, f, nf);
    }
    CK_OK(sdb_close(db));
    free(a);
    free(b);
    free(f);
    free(head);
}
END_TEST

/* sdb_writer_commit_many refuses bad arguments with SDB_EINVAL and then
 * commits and frees nothing, leaves rcs alone: the same writers commit
 * afterwards (a writer freed by the refused call would be a use after free
 * under ASan). */
START_TEST(test_commit_many_bad_args)
{
    sdb_t *db = NULL, *db2 = NULL;
    CK_OK(sdb_open_memory(NULL, &db));
    CK_OK(sdb_open_memory(NULL, &db2));
    sdb_writer_t *a, *b, *o;
    CK_OK(sdb_writer_open(db, "/a", UINT64_MAX, &a));
    CK_OK(sdb_writer_write(a, "aaa", 3));
    CK_OK(sdb_writer_open(db, "/b", UINT64_MAX, &b));
    CK_OK(sdb_writer_write(b, "bb", 2));
    CK_OK(sdb_writer_open(db2, "/o", UINT64_MAX, &o));
    int rcs[3] = { 12345, 12345, 12345 };
    sdb_writer_t *ab[2] = { a, b }, *anull[2] = { a, NULL }, *aba[3] = { a, b, a },
                 *bb[2] = { b, b }, *ao[2] = { a, o };
    CK_RC(sdb_writer_commit_many(NULL, 1, NULL, rcs), SDB_EINVAL);
    CK_RC(sdb_writer_commit_many(ab, 2, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_writer_commit_many(anull, 2, NULL, rcs), SDB_EINVAL);
    CK_RC(sdb_writer_commit_many(aba, 3, NULL, rcs), SDB_EINVAL);
    CK_RC(sdb_writer_commit_many(bb, 2, NULL, rcs), SDB_EINVAL);
    CK_RC(sdb_writer_commit_many(ao, 2, NULL, rcs), SDB_EINVAL);
    CK_OK(sdb_writer_commit_many(NULL, 0, NULL, NULL));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rcs[i], 12345);
    tu_expect_absent(db, "/a");
    /* none of them was committed nor freed */
    sdb_docinfo_t out[2];
    CK_OK(sdb_writer_commit_many(ab, 2, out, rcs));
    CK_OK(rcs[0]);
    CK_OK(rcs[1]);
    tu_expect_get(db, "/a", "aaa", 3);
    tu_expect_get(db, "/b", "bb", 2);
    ck_assert_uint_eq(out[1].size, 2);
    CK_OK(sdb_writer_commit(o, NULL));
    CK_OK(sdb_close(db));
    CK_OK(sdb_close(db2));
}
END_TEST

START_TEST(test_writer_abort)
{
    env_t e;
    env_init(&e, _i, "wa");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(100000, 90), *v1 = tu_bytes(3000, 91);
    sdb_docinfo_t i1 = put_ok(db, "/ex", v1, 3000);
    sdb_writer_t *w;
    CK_OK(sdb_writer_open(db, "/ex", UINT64_MAX, &w));
    CK_OK(sdb_writer_write(w, d, 100000));
    sdb_writer_abort(w);
    CK_OK(sdb_writer_open(db, "/new", 0, &w));
    CK_OK(sdb_writer_write(w, d, 50000));
    CK_OK(sdb_writer_write(w, d + 50000, 50000));
    sdb_writer_abort(w);
    sdb_writer_abort(NULL);
    CK_OK(sdb_flush(db));
    uint64_t t1 = stats(db).total_pages;
    for (int i = 0; i < 20; i++) {
        CK_OK(sdb_writer_open(db, "/new", 0, &w));
        CK_OK(sdb_writer_write(w, d, 100000));
        sdb_writer_abort(w);
        CK_OK(sdb_flush(db));
    }
    uint64_t t2 = stats(db).total_pages;
    ck_assert_msg(t2 <= t1 + t1 / 10 + 16,
                  "20 aborted 100 KB writers grew the database from %llu to %llu pages",
                  (unsigned long long)t1, (unsigned long long)t2);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/ex", v1, 3000);
        expect_lookup(db, "/ex", &i1.id, 1, 3000);
        tu_expect_absent(db, "/new");
        tu_list_t l = {0};
        CK_OK(sdb_list_versions(db, &i1.id, tu_list_cb, &l));
        ck_assert_uint_eq(l.n, 1);
        tu_list_free(&l);
        search(db, "", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 1);
        tu_list_free(&l);
        sdb_stats_t s = stats(db);
        ck_assert_uint_eq(s.documents, 1);
        ck_assert_uint_eq(s.paths, 1);
    }
    CK_OK(sdb_close(db));
    free(d);
    free(v1);
}
END_TEST

START_TEST(test_quick_mode)
{
    env_t e;
    env_init(&e, _i, "qm");
    e.cfg.quick_mode = 1;
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(123456, 92);
    put_ok(db, "/q", d, 123456);
    static const size_t caps[] = {4097};
    tu_expect_get(db, "/q", d, 123456);
    tu_expect_stream(db, "/q", d, 123456, caps, 1);
    sdb_set_quick_mode(db, 0);
    tu_expect_get(db, "/q", d, 123456);
    sdb_set_quick_mode(db, 1);
    db = env_reopen(&e, db);
    tu_expect_get(db, "/q", d, 123456);
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

/* ---- Metadata, info, stats ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_docinfo_fields)
{
    env_t e;
    env_init(&e, _i, "df");
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(2500, 93);
    int64_t t0 = now_ms();
    sdb_docinfo_t i1 = put_ok(db, "/t", d, 2500);
    int64_t t1 = now_ms();
    ck_assert_msg(i1.created_ms >= t0 - 1000 && i1.created_ms <= t1 + 1000,
                  "created_ms %lld not near now %lld", (long long)i1.created_ms, (long long)t0);
    ck_assert_msg(i1.modified_ms >= i1.created_ms, "modified before created");
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    sdb_docinfo_t i2 = put_ok(db, "/t", d, 1000);
    ck_assert_msg(i2.created_ms == i1.created_ms, "created_ms changed on overwrite");
    ck_assert_msg(i2.modified_ms >= i1.modified_ms + 20, "modified_ms %lld not after %lld",
                  (long long)i2.modified_ms, (long long)i1.modified_ms);
    db = env_reopen(&e, db);
    sdb_docinfo_t li;
    CK_OK(sdb_lookup(db, "/t", &li));
    ck_assert(li.created_ms == i1.created_ms && li.modified_ms == i2.modified_ms);
    ck_assert_uint_eq(li.crc32, tu_crc(d, 1000));
    void *p;
    size_t n;
    CK_OK(sdb_get_id(db, &i1.id, 1, &p, &n, &li));
    free(p);
    ck_assert(li.version == 1 && li.modified_ms == i1.modified_ms && li.size == 2500);
    ck_assert_uint_eq(li.crc32, tu_crc(d, 2500));
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

START_TEST(test_info_text)
{
    env_t e;
    env_init(&e, _i, "it");
    sdb_t *db = env_open(&e);
    uint8_t d[100] = {1, 2, 3};
    sdb_docinfo_t i = put_ok(db, "/info/first path", d, sizeof d);
    CK_OK(sdb_bind(db, &i.id, "/info/second"));
    char ids[37];
    sdb_id_format(&i.id, ids);
    char *text = NULL;
    CK_OK(sdb_info(db, &i.id, &text));
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, ids) != NULL, "info text lacks the id %s:\n%s", ids, text);
    ck_assert_msg(strstr(text, "/info/first path") != NULL, "info lacks a path:\n%s", text);
    ck_assert_msg(strstr(text, "/info/second") != NULL, "info lacks a path:\n%s", text);
    free(text);
    sdb_id_t other = random_id(7);
    text = NULL;
    CK_RC(sdb_info(db, &other, &text), SDB_ENOTFOUND);
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_stats_figures)
{
    env_t e;
    env_init(&e, _i, "st");
    e.cfg.page_size = 512;
    e.cfg.use_mmap = 0;
    sdb_t *db = env_open(&e);
    sdb_stats_t s = stats(db);
    ck_assert_uint_eq(s.documents, 0);
    ck_assert_uint_eq(s.paths, 0);
    uint8_t *d = tu_bytes(20000, 94);
    sdb_id_t ids[5];
    char path[32];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "/st/%d", i);
        d[0] = (uint8_t)i;
        ids[i] = put_ok(db, path, d, 20000).id;
    }
    CK_OK(sdb_bind(db, &ids[0], "/alias/1"));
    CK_OK(sdb_bind(db, &ids[0], "/alias/2"));
    CK_OK(sdb_flush(db));
    s = stats(db);
    ck_assert_uint_eq(s.documents, 5);
    ck_assert_uint_eq(s.paths, 7);
    ck_assert_msg(s.total_pages >= 5 * 20000 / 512, "total_pages %llu for 100 KB in 512 B pages",
                  (unsigned long long)s.total_pages);
    ck_assert_msg(s.free_pages < s.total_pages, "free_pages %llu >= total_pages %llu",
                  (unsigned long long)s.free_pages, (unsigned long long)s.total_pages);
    if (e.mode != MODE_MEMORY) {
        uint64_t fsz = tu_file_size(e.path);
        ck_assert_msg(s.file_bytes == fsz, "file_bytes %llu, stat says %llu",
                      (unsigned long long)s.file_bytes, (unsigned long long)fsz);
        /* total_pages is the logical end: it may include a few allocated pages
         * not yet written (the page reserved for the next journal group). */
        ck_assert_msg(s.total_pages >= fsz / 512 && s.total_pages <= fsz / 512 + 16,
                      "total_pages %llu for a file of %llu pages of 512 B",
                      (unsigned long long)s.total_pages, (unsigned long long)(fsz / 512));
        /* Reads through the page cache (use_mmap 0) are counted. */
        void *p;
        size_t n;
        for (int k = 0; k < 3; k++) {
            CK_OK(sdb_get(db, "/st/1", &p, &n, NULL));
            free(p);
        }
        sdb_stats_t c = stats(db);
        ck_assert_msg(c.cache_hits + c.cache_misses > s.cache_hits + s.cache_misses,
                      "cache counters did not move on reads with use_mmap 0");
    }
    uint64_t free0 = s.free_pages;
    for (int i = 2; i < 5; i++)
        CK_OK(sdb_delete_id(db, &ids[i]));
    CK_OK(sdb_flush(db));
    s = stats(db);
    ck_assert_uint_eq(s.documents, 2);
    ck_assert_uint_eq(s.paths, 4);
    ck_assert_msg(s.free_pages >= free0 + 3 * 20000 / 512,
                  "free_pages %llu -> %llu after deleting 60 KB in 512 B pages",
                  (unsigned long long)free0, (unsigned long long)s.free_pages);
    db = env_reopen(&e, db);
    sdb_stats_t r = stats(db);
    ck_assert_uint_eq(r.documents, 2);
    ck_assert_uint_eq(r.paths, 4);
    if (e.mode != MODE_MEMORY)
        ck_assert_msg(r.free_pages >= free0 + 3 * 20000 / 512,
                      "free_pages after reopen %llu", (unsigned long long)r.free_pages);
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

/* ---- Ids and error texts ---- */

START_TEST(test_id_format_parse)
{
    sdb_id_t id;
    for (int i = 0; i < 16; i++)
        id.b[i] = (uint8_t)(i * 0x11);
    char s[37];
    memset(s, 'Z', sizeof s);
    sdb_id_format(&id, s);
    ck_assert_str_eq(s, "00112233-4455-6677-8899-aabbccddeeff");
    sdb_id_t back;
    memset(&back, 0, sizeof back);
    CK_OK(sdb_id_parse("00112233-4455-6677-8899-AABBCCDDEEFF", &back));
    ck_assert(tu_id_eq(&back, &id));
    CK_OK(sdb_id_parse("00112233-4455-6677-8899-aAbBcCdDeEfF", &back));
    ck_assert(tu_id_eq(&back, &id));

    sdb_t *db;
    CK_OK(sdb_open_memory(NULL, &db));
    sdb_id_t seen[64];
    for (int i = 0; i < 64; i++) {
        char path[16];
        snprintf(path, sizeof path, "/id%d", i);
        sdb_docinfo_t info = put_ok(db, path, "x", 1);
        seen[i] = info.id;
        for (int j = 0; j < i; j++)
            ck_assert_msg(!tu_id_eq(&seen[j], &info.id), "duplicate id");
        ck_assert_msg((info.id.b[6] >> 4) == 4, "version nibble %x", info.id.b[6] >> 4);
        ck_assert_msg((info.id.b[8] & 0xC0) == 0x80, "variant bits %x", info.id.b[8]);
        sdb_id_format(&info.id, s);
        ck_assert_uint_eq(strlen(s), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                ck_assert_msg(s[k] == '-', "format %s", s);
            else
                ck_assert_msg((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f'),
                              "format %s not lower-case hex", s);
        }
        ck_assert_msg(s[14] == '4' && strchr("89ab", s[19]) != NULL, "not a v4 uuid: %s", s);
        CK_OK(sdb_id_parse(s, &back));
        ck_assert(tu_id_eq(&back, &info.id));
        for (int k = 0; k < 36; k++)
            if (s[k] >= 'a' && s[k] <= 'f')
                s[k] = (char)(s[k] - 'a' + 'A');
        CK_OK(sdb_id_parse(s, &back));
        ck_assert(tu_id_eq(&back, &info.id));
    }
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_strerror)
{
    static const int codes[] = {SDB_OK,     SDB_ENOTFOUND, SDB_EINVAL,  SDB_ETOOLARGE,
                                SDB_ECORRUPT, SDB_EIO,     SDB_ENOSPC,  SDB_ELOCKED,
                                SDB_ECONFLICT, SDB_ENOMEM, SDB_EPERM};
    size_t n = sizeof codes / sizeof *codes;
    for (size_t i = 0; i < n; i++) {
        const char *a = sdb_strerror(codes[i]);
        ck_assert_msg(a != NULL && a[0] != '\0', "sdb_strerror(%d) empty", codes[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(a, sdb_strerror(codes[j])) != 0,
                          "sdb_strerror(%d) == sdb_strerror(%d): %s", codes[i], codes[j], a);
    }
    static const int odd[] = {1, 42, -11, -1000, 12345678};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        ck_assert_ptr_nonnull(sdb_strerror(odd[i]));
}
END_TEST

/* ---- Bad input: refused with EINVAL / ETOOLARGE, and nothing changes ---- */

/* The state that bad calls must not change: one document "/keep". */
typedef struct {
    sdb_docinfo_t info;
    uint8_t *data;
} keep_t;

static void keep_make(sdb_t *db, keep_t *k)
{
    k->data = tu_bytes(5000, 95);
    k->info = put_ok(db, "/keep", k->data, 5000);
}

static void keep_check(sdb_t *db, const keep_t *k, uint64_t docs, uint64_t paths)
{
    tu_expect_get(db, "/keep", k->data, 5000);
    expect_lookup(db, "/keep", &k->info.id, 1, 5000);
    sdb_stats_t s = stats(db);
    ck_assert_msg(s.documents == docs && s.paths == paths,
                  "bad input changed the database: %llu documents, %llu paths",
                  (unsigned long long)s.documents, (unsigned long long)s.paths);
    tu_list_t l = {0};
    CK_OK(sdb_list_versions(db, &k->info.id, tu_list_cb, &l));
    ck_assert_uint_eq(l.n, 1);
    tu_list_free(&l);
}

START_TEST(test_null_args)
{
    env_t e;
    env_init(&e, _i, "na");
    sdb_t *db = env_open(&e);
    keep_t k;
    keep_make(db, &k);
    sdb_id_t id = k.info.id;
    void *p = NULL;
    size_t n = 0;
    sdb_docinfo_t info;
    tu_list_t l = {0};
    char *text = NULL;
    sdb_stats_t s;
    sdb_writer_t *w = NULL;
    sdb_reader_t *r = NULL;
    uint8_t buf[16] = {0};

    sdb_t *tmp = NULL;
    CK_RC(sdb_open(NULL, NULL, &tmp), SDB_EINVAL);
    CK_RC(sdb_open(e.path, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_open_memory(NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_put(NULL, "/keep", buf, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_put(db, NULL, buf, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_put(db, "/keep", NULL, 5, NULL), SDB_EINVAL);
    CK_RC(sdb_put_if(NULL, "/keep", buf, 1, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_put_if(db, NULL, buf, 1, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_put_if(db, "/keep", NULL, 5, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_writer_open(NULL, "/w", UINT64_MAX, &w), SDB_EINVAL);
    CK_RC(sdb_writer_open(db, NULL, UINT64_MAX, &w), SDB_EINVAL);
    CK_RC(sdb_writer_open(db, "/w", UINT64_MAX, NULL), SDB_EINVAL);
    CK_RC(sdb_writer_write(NULL, buf, 1), SDB_EINVAL);
    CK_RC(sdb_writer_commit(NULL, NULL), SDB_EINVAL);
    CK_OK(sdb_writer_open(db, "/keep", UINT64_MAX, &w));
    CK_RC(sdb_writer_write(w, NULL, 5), SDB_EINVAL);
    CK_OK(sdb_writer_write(w, buf, 3));
    sdb_writer_abort(w);
    sdb_writer_abort(NULL);
    CK_RC(sdb_get(NULL, "/keep", &p, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get(db, NULL, &p, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get(db, "/keep", NULL, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get(db, "/keep", &p, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_get_id(NULL, &id, 0, &p, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get_id(db, NULL, 0, &p, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get_id(db, &id, 0, NULL, &n, NULL), SDB_EINVAL);
    CK_RC(sdb_get_id(db, &id, 0, &p, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open(NULL, "/keep", &r, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open(db, NULL, &r, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open(db, "/keep", NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open_id(NULL, &id, 0, &r, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open_id(db, NULL, 0, &r, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_open_id(db, &id, 0, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_read(NULL, buf, 1, &n), SDB_EINVAL);
    CK_OK(sdb_reader_open(db, "/keep", &r, NULL));
    CK_RC(sdb_reader_read(r, NULL, 5, &n), SDB_EINVAL);
    CK_RC(sdb_reader_read(r, buf, 5, NULL), SDB_EINVAL);
    CK_OK(sdb_reader_read(r, buf, 5, &n));
    ck_assert(n > 0 && n <= 5 && memcmp(buf, k.data, n) == 0); /* bad calls did not advance */
    sdb_reader_close(r);
    sdb_reader_close(NULL);
    CK_RC(sdb_lookup(NULL, "/keep", &info), SDB_EINVAL);
    CK_RC(sdb_lookup(db, NULL, &info), SDB_EINVAL);
    CK_RC(sdb_delete(NULL, "/keep"), SDB_EINVAL);
    CK_RC(sdb_delete(db, NULL), SDB_EINVAL);
    CK_RC(sdb_delete_id(NULL, &id), SDB_EINVAL);
    CK_RC(sdb_delete_id(db, NULL), SDB_EINVAL);
    CK_RC(sdb_bind(NULL, &id, "/b"), SDB_EINVAL);
    CK_RC(sdb_bind(db, NULL, "/b"), SDB_EINVAL);
    CK_RC(sdb_bind(db, &id, NULL), SDB_EINVAL);
    CK_RC(sdb_unbind(NULL, &id, "/keep"), SDB_EINVAL);
    CK_RC(sdb_unbind(db, NULL, "/keep"), SDB_EINVAL);
    CK_RC(sdb_unbind(db, &id, NULL), SDB_EINVAL);
    CK_RC(sdb_search(NULL, "", NULL, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_search(db, NULL, NULL, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_search(db, "", NULL, NULL, &l), SDB_EINVAL);
    CK_RC(sdb_list_paths(NULL, &id, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_list_paths(db, NULL, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_list_paths(db, &id, NULL, &l), SDB_EINVAL);
    CK_RC(sdb_list_versions(NULL, &id, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_list_versions(db, NULL, tu_list_cb, &l), SDB_EINVAL);
    CK_RC(sdb_list_versions(db, &id, NULL, &l), SDB_EINVAL);
    ck_assert_uint_eq(l.n, 0);
    CK_RC(sdb_info(NULL, &id, &text), SDB_EINVAL);
    CK_RC(sdb_info(db, NULL, &text), SDB_EINVAL);
    CK_RC(sdb_info(db, &id, NULL), SDB_EINVAL);
    CK_RC(sdb_stats(NULL, &s), SDB_EINVAL);
    CK_RC(sdb_stats(db, NULL), SDB_EINVAL);
    CK_RC(sdb_flush(NULL), SDB_EINVAL);
    CK_RC(sdb_check(NULL, 0, &text), SDB_EINVAL);
    CK_RC(sdb_id_parse(NULL, &id), SDB_EINVAL);
    CK_RC(sdb_id_parse("00112233-4455-6677-8899-aabbccddeeff", NULL), SDB_EINVAL);
    sdb_set_quick_mode(NULL, 1);
    CK_OK(sdb_close(NULL));
    keep_check(db, &k, 1, 1);
    db = env_reopen(&e, db);
    keep_check(db, &k, 1, 1);
    CK_OK(sdb_close(db));
    free(k.data);
}
END_TEST

static const char *const bad_utf8[] = {
    "/\xC0\xAF",             /* overlong '/' */
    "/\xC1\xBF",             /* overlong */
    "/\xE0\x80\xAF",         /* overlong 3-byte */
    "/\xE0\x9F\xBF",         /* overlong 3-byte (U+07FF) */
    "/\xF0\x80\x80\xAF",     /* overlong 4-byte */
    "/\xF0\x8F\xBF\xBF",     /* overlong 4-byte (U+FFFF) */
    "/\x80",                 /* lone continuation */
    ("/a\xBF" "b"),          /* lone continuation inside (split: \xBF ends the escape) */
    "\x80/leading",          /* continuation first */
    "/\xED\xA0\x80",         /* surrogate U+D800 */
    "/\xED\xBF\xBF",         /* surrogate U+DFFF */
    "/\xED\xA0\xBD\xED\xB8\x80", /* CESU-8 surrogate pair */
    "/\xE2\x82",             /* truncated 3-byte */
    "/\xE2\x82/x",           /* truncated, then ASCII */
    "/\xC3",                 /* truncated 2-byte at end */
    "/\xF4\x90\x80\x80",     /* above U+10FFFF */
    "/\xF5\x80\x80\x80",     /* F5 lead byte */
    "/\xF8\x88\x80\x80\x80", /* 5-byte form */
    "/\xFE",
    "/\xFF",
};

static const char *const good_utf8[] = {
    "/caf\xC3\xA9",          /* U+00E9 */
    "/\xC2\x80",             /* U+0080, smallest 2-byte */
    "/\xE0\xA0\x80",         /* U+0800, smallest 3-byte */
    "/\xE2\x82\xAC",         /* euro */
    "/\xED\x9F\xBF",         /* U+D7FF, just below the surrogates */
    "/\xEE\x80\x80",         /* U+E000, just above */
    "/\xEF\xBF\xBF",         /* U+FFFF */
    "/\xF0\x90\x80\x80",     /* U+10000 */
    "/\xF0\x9D\x84\x9E",     /* G clef */
    "/\xF4\x8F\xBF\xBF",     /* U+10FFFF */
    "no leading slash",
    "/\x7F",
};

static void expect_bad_path(sdb_t *db, const sdb_id_t *id, const char *path, const char *what)
{
    uint8_t b[4] = {1, 2, 3, 4};
    void *p = NULL;
    size_t n = 0;
    sdb_writer_t *w = NULL;
    sdb_reader_t *r = NULL;
    sdb_docinfo_t info;
    int rc;
#define BAD(expr)                                                                        \
    do {                                                                                 \
        rc = (expr);                                                                     \
        ck_assert_msg(rc == SDB_EINVAL, "%s with %s path: %d (%s), expected EINVAL",     \
                      #expr, what, rc, sdb_strerror(rc));                                \
    } while (0)
    BAD(sdb_put(db, path, b, 4, &info));
    BAD(sdb_put_if(db, path, b, 4, 0, &info));
    BAD(sdb_writer_open(db, path, UINT64_MAX, &w));
    BAD(sdb_get(db, path, &p, &n, &info));
    BAD(sdb_lookup(db, path, &info));
    BAD(sdb_reader_open(db, path, &r, &info));
    BAD(sdb_delete(db, path));
    BAD(sdb_bind(db, id, path));
    BAD(sdb_unbind(db, id, path));
#undef BAD
}

START_TEST(test_bad_paths)
{
    env_t e;
    env_init(&e, _i, "bp");
    sdb_t *db = env_open(&e);
    keep_t k;
    keep_make(db, &k);
    char *longp = malloc(SDB_MAX_PATH + 2);
    memset(longp, 'a', SDB_MAX_PATH + 1);
    longp[0] = '/';
    longp[SDB_MAX_PATH + 1] = '\0'; /* 4097 bytes */
    expect_bad_path(db, &k.info.id, "", "an empty");
    expect_bad_path(db, &k.info.id, longp, "a 4097-byte");
    char what[64];
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        snprintf(what, sizeof what, "invalid UTF-8 #%zu", i);
        expect_bad_path(db, &k.info.id, bad_utf8[i], what);
    }
    keep_check(db, &k, 1, 1);
    /* The limits themselves are fine: 4096 bytes, and valid UTF-8 of every length. */
    longp[SDB_MAX_PATH] = '\0';
    put_ok(db, longp, "long", 4);
    for (size_t i = 0; i < sizeof good_utf8 / sizeof *good_utf8; i++)
        put_ok(db, good_utf8[i], good_utf8[i], strlen(good_utf8[i]));
    CK_OK(sdb_bind(db, &k.info.id, good_utf8[0])); /* moves it; its doc survives */
    size_t ngood = sizeof good_utf8 / sizeof *good_utf8;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, longp, "long", 4);
        for (size_t i = 1; i < ngood; i++)
            tu_expect_get(db, good_utf8[i], good_utf8[i], strlen(good_utf8[i]));
        tu_expect_get(db, good_utf8[0], k.data, 5000);
        tu_list_t l;
        search(db, "", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 1 + 1 + ngood);
        tu_list_free(&l);
        search(db, "/aaaa", NULL, 0, 0, &l);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_uint_eq(strlen(l.paths[0]), SDB_MAX_PATH);
        tu_list_free(&l);
    }
    CK_OK(sdb_close(db));
    free(longp);
    free(k.data);
}
END_TEST

START_TEST(test_bad_ids)
{
    static const char *const bad[] = {
        "",
        "0",
        "00112233-4455-6677-8899-aabbccddeef",     /* 35 */
        "00112233-4455-6677-8899-aabbccddeeff0",   /* 37 */
        "00112233-4455-6677-8899-aabbccddeeff ",
        " 0112233-4455-6677-8899-aabbccddeeff",
        "{0112233-4455-6677-8899-aabbccddeeff}",
        "00112233445566778899aabbccddeeff",       /* no hyphens */
        "0011223344556677-8899-aabbccddeeff-abcd",
        "001122334-455-6677-8899-aabbccddeeff",   /* hyphen moved */
        "00112233-4455-6677-8899-aabbccddeefg",   /* g */
        "0x112233-4455-6677-8899-aabbccddeeff",
        "+0112233-4455-6677-8899-aabbccddeeff",
        "-0112233-4455-6677-8899-aabbccddeeff",
        "00112233-+455-6677-8899-aabbccddeeff",
        "00112233_4455_6677_8899_aabbccddeeff",
        "00112233-4455-6677-8899-aabbccddee\xC3\xA9",
        "00112233-4455-6677-8899--abbccddeeff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sdb_id_t id;
        int rc = sdb_id_parse(bad[i], &id);
        ck_assert_msg(rc == SDB_EINVAL, "sdb_id_parse(\"%s\") = %d, expected EINVAL", bad[i], rc);
    }
    /* A well-formed id that names nothing is ENOTFOUND, not EINVAL. */
    sdb_t *db;
    CK_OK(sdb_open_memory(NULL, &db));
    keep_t k;
    keep_make(db, &k);
    sdb_id_t none = random_id(31337);
    void *p;
    size_t n;
    CK_RC(sdb_get_id(db, &none, 0, &p, &n, NULL), SDB_ENOTFOUND);
    CK_RC(sdb_delete_id(db, &none), SDB_ENOTFOUND);
    CK_RC(sdb_bind(db, &none, "/keep"), SDB_ENOTFOUND);
    CK_RC(sdb_unbind(db, &none, "/keep"), SDB_ENOTFOUND);
    CK_RC(sdb_get_id(db, &k.info.id, 2, &p, &n, NULL), SDB_ENOTFOUND);
    keep_check(db, &k, 1, 1);
    CK_OK(sdb_close(db));
    free(k.data);
}
END_TEST

START_TEST(test_too_large)
{
    env_t e;
    env_init(&e, _i, "tl");
    e.cfg.max_document_size = 1000;
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(2000, 96);
    CK_RC(sdb_put(db, "/big", d, 1001, NULL), SDB_ETOOLARGE);
    CK_RC(sdb_put_if(db, "/big", d, 1001, 0, NULL), SDB_ETOOLARGE);
    tu_expect_absent(db, "/big");
    sdb_docinfo_t i1 = put_ok(db, "/ok", d, 1000);
    CK_RC(sdb_put(db, "/ok", d + 1, 2000, NULL), SDB_ETOOLARGE);
    CK_RC(sdb_put_if(db, "/ok", d + 1, 1001, 1, NULL), SDB_ETOOLARGE);
    /* A writer that crosses the limit stays open and keeps what it had. */
    sdb_writer_t *w;
    CK_OK(sdb_writer_open(db, "/streamed", 0, &w));
    CK_OK(sdb_writer_write(w, d, 600));
    CK_RC(sdb_writer_write(w, d + 600, 401), SDB_ETOOLARGE);
    CK_OK(sdb_writer_write(w, d + 1000, 400));
    sdb_docinfo_t iw;
    CK_OK(sdb_writer_commit(w, &iw));
    ck_assert_uint_eq(iw.size, 1000);
    uint8_t *exp = malloc(1000);
    memcpy(exp, d, 600);
    memcpy(exp + 600, d + 1000, 400);
    CK_OK(sdb_writer_open(db, "/ok", UINT64_MAX, &w));
    CK_OK(sdb_writer_write(w, d, 1000));
    CK_RC(sdb_writer_write(w, d, 1), SDB_ETOOLARGE);
    sdb_writer_abort(w);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        tu_expect_get(db, "/ok", d, 1000);
        expect_lookup(db, "/ok", &i1.id, 1, 1000);
        tu_expect_get(db, "/streamed", exp, 1000);
        tu_expect_absent(db, "/big");
        ck_assert_uint_eq(stats(db).documents, 2);
    }
    CK_OK(sdb_close(db));
    free(d);
    free(exp);
}
END_TEST

START_TEST(test_bad_config)
{
    static const uint32_t bad_ps[] = {256, 1000, 4095, 131072, 3 * 4096};
    char path[512];
    tu_file(path, sizeof path, "bc");
    for (size_t i = 0; i < sizeof bad_ps / sizeof *bad_ps; i++) {
        sdb_config_t cfg;
        sdb_config_default(&cfg);
        cfg.page_size = bad_ps[i];
        sdb_t *db = NULL;
        int rc = sdb_open_memory(&cfg, &db);
        ck_assert_msg(rc == SDB_EINVAL, "page_size %u in memory: %d", bad_ps[i], rc);
        rc = sdb_open(path, &cfg, &db);
        ck_assert_msg(rc == SDB_EINVAL, "page_size %u on file: %d", bad_ps[i], rc);
    }
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    ck_assert_uint_eq(cfg.page_size, 4096);
    ck_assert_uint_eq(cfg.page_cache_pages, 1024);
    ck_assert_uint_eq(cfg.versions_to_keep, 2);
    ck_assert_uint_eq(cfg.max_document_size, 256ull << 20);
    ck_assert_int_eq(cfg.use_mmap, 1);
    ck_assert_int_eq(cfg.quick_mode, 0);
    ck_assert_int_eq(cfg.durable, 1);
    static const uint32_t good_ps[] = {512, 65536};
    for (size_t i = 0; i < 2; i++) {
        cfg.page_size = good_ps[i];
        sdb_t *db = NULL;
        CK_OK(sdb_open_memory(&cfg, &db));
        put_ok(db, "/x", "abc", 3);
        tu_expect_get(db, "/x", "abc", 3);
        CK_OK(sdb_close(db));
    }
}
END_TEST

/* ---- Concurrency smoke on one handle (details in check_durability) ---- */

typedef struct {
    sdb_t *db;
    int t;
    int errors;
} thr_arg_t;

static void *mixed_thread(void *p)
{
    thr_arg_t *a = p;
    uint8_t buf[3000];
    char path[32];
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "/mt/%d/%d", a->t, i);
        size_t n = (size_t)(a->t * 131 + i * 17) % sizeof buf;
        tu_fill(buf, n, (uint32_t)(a->t * 1000 + i));
        if (sdb_put(a->db, path, buf, n, NULL) != SDB_OK) {
            a->errors++;
            continue;
        }
        void *d;
        size_t len;
        if (sdb_get(a->db, path, &d, &len, NULL) != SDB_OK) {
            a->errors++;
            continue;
        }
        if (len != n || memcmp(d, buf, n) != 0)
            a->errors++;
        free(d);
        tu_list_t l = {0};
        if (sdb_search(a->db, "/mt/", NULL, tu_list_cb, &l) != SDB_OK)
            a->errors++;
        tu_list_free(&l);
    }
    return NULL;
}

START_TEST(test_threads_one_handle)
{
    env_t e;
    env_init(&e, _i, "th");
    e.cfg.durable = 0;
    sdb_t *db = env_open(&e);
    pthread_t th[4];
    thr_arg_t a[4];
    for (int t = 0; t < 4; t++) {
        a[t] = (thr_arg_t){db, t, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, mixed_thread, &a[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(a[t].errors == 0, "thread %d: %d errors", t, a[t].errors);
    }
    sdb_stats_t s = stats(db);
    ck_assert_uint_eq(s.documents, 160);
    ck_assert_uint_eq(s.paths, 160);
    CK_OK(sdb_close(db));
}
END_TEST

/* Conditional writes from several threads: every success is one version, no
 * update is lost, and each conflict is a real conflict. */
typedef struct {
    sdb_t *db;
    int t, ok, conflicts, errors;
} cas_arg_t;

static void *cas_thread(void *p)
{
    cas_arg_t *a = p;
    uint8_t buf[64];
    for (int i = 0; i < 50; i++) {
        sdb_docinfo_t cur, out;
        if (sdb_lookup(a->db, "/cas", &cur) != SDB_OK) {
            a->errors++;
            continue;
        }
        tu_fill(buf, sizeof buf, (uint32_t)(a->t * 100 + i));
        int rc = sdb_put_if(a->db, "/cas", buf, sizeof buf, cur.version, &out);
        if (rc == SDB_OK && out.version == cur.version + 1)
            a->ok++;
        else if (rc == SDB_ECONFLICT)
            a->conflicts++;
        else
            a->errors++;
    }
    return NULL;
}

START_TEST(test_conditional_threads)
{
    env_t e;
    env_init(&e, _i, "cas");
    e.cfg.durable = 0;
    sdb_t *db = env_open(&e);
    put_ok(db, "/cas", "start", 5);
    pthread_t th[4];
    cas_arg_t a[4];
    for (int t = 0; t < 4; t++) {
        a[t] = (cas_arg_t){db, t, 0, 0, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, cas_thread, &a[t]), 0);
    }
    int ok = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(a[t].errors == 0, "thread %d: %d unexpected results", t, a[t].errors);
        ok += a[t].ok;
    }
    sdb_docinfo_t info;
    CK_OK(sdb_lookup(db, "/cas", &info));
    ck_assert_msg(info.version == 1 + (uint64_t)ok,
                  "%d conditional writes succeeded but the version is %llu", ok,
                  (unsigned long long)info.version);
    ck_assert(ok >= 50); /* at least one thread's worth of progress */
    CK_OK(sdb_close(db));
}
END_TEST

/* Reads from inside a listing callback are allowed, even while another
 * thread writes (a recursive read lock behind a waiting writer deadlocks). */
typedef struct {
    sdb_t *db;
    int errors;
} cbr_arg_t;

static int reading_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    cbr_arg_t *a = arg;
    void *d = NULL;
    size_t n = 0;
    sdb_docinfo_t gi;
    if (sdb_get(a->db, path, &d, &n, &gi) != SDB_OK || n != info->size ||
        !tu_id_eq(&gi.id, &info->id))
        a->errors++;
    free(d);
    return 0;
}

static atomic_int cbr_stop;

static void *busy_writer(void *p)
{
    sdb_t *db = p;
    uint8_t buf[2000] = {0};
    char path[32];
    for (int i = 0; !atomic_load(&cbr_stop); i++) {
        snprintf(path, sizeof path, "/busy/%d", i % 10);
        if (sdb_put(db, path, buf, sizeof buf, NULL) != SDB_OK)
            break;
    }
    return NULL;
}

START_TEST(test_callback_reads)
{
    env_t e;
    env_init(&e, _i, "cbr");
    e.cfg.durable = 0;
    sdb_t *db = env_open(&e);
    char path[32];
    uint8_t buf[300] = {0};
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/cb/%02d", i);
        put_ok(db, path, buf, (size_t)i * 10);
    }
    atomic_store(&cbr_stop, 0);
    pthread_t wt;
    ck_assert_int_eq(pthread_create(&wt, NULL, busy_writer, db), 0);
    cbr_arg_t a = {db, 0};
    for (int k = 0; k < 200; k++) {
        CK_OK(sdb_search(db, "/cb/", NULL, reading_cb, &a));
        sdb_docinfo_t info;
        CK_OK(sdb_lookup(db, "/cb/00", &info));
        CK_OK(sdb_list_paths(db, &info.id, reading_cb, &a));
    }
    atomic_store(&cbr_stop, 1);
    pthread_join(wt, NULL);
    ck_assert_int_eq(a.errors, 0);
    CK_OK(sdb_close(db));
}
END_TEST

START_TEST(test_max_db_size)
{
    env_t e;
    env_init(&e, _i, "mdb");
    e.cfg.max_db_size = 256 * 1024;
    sdb_t *db = env_open(&e);
    uint8_t *d = tu_bytes(400000, 97);
    put_ok(db, "/small", d, 50000);
    CK_RC(sdb_put(db, "/huge", d, 400000, NULL), SDB_ETOOLARGE);
    CK_RC(sdb_put(db, "/small", d + 1, 400000, NULL), SDB_ETOOLARGE);
    sdb_writer_t *w;
    CK_OK(sdb_writer_open(db, "/streamed", UINT64_MAX, &w));
    int rc = SDB_OK;
    for (size_t off = 0; off < 400000 && rc == SDB_OK; off += 10000)
        rc = sdb_writer_write(w, d + off, 10000);
    ck_assert_msg(rc == SDB_ETOOLARGE, "streaming 400 KB into a 256 KB database: %d (%s)", rc,
                  sdb_strerror(rc));
    sdb_writer_abort(w);
    tu_expect_absent(db, "/huge");
    tu_expect_absent(db, "/streamed");
    tu_expect_get(db, "/small", d, 50000);
    put_ok(db, "/small2", d, 20000); /* the space of the refused writes came back */
    db = env_reopen(&e, db);
    tu_expect_get(db, "/small", d, 50000);
    tu_expect_get(db, "/small2", d, 20000);
    if (e.mode != MODE_MEMORY)
        ck_assert_msg(tu_file_size(e.path) <= 256 * 1024, "file is %llu bytes",
                      (unsigned long long)tu_file_size(e.path));
    CK_OK(sdb_close(db));
    free(d);
}
END_TEST

/* Enough commits to make the engine checkpoint (during the run and at close):
 * the checkpoint must carry every kind of state. */
#define CP_N 100

static size_t cp_len(int i)
{
    return (size_t)(i * 37) % 5000;
}

static void cp_verify(sdb_t *db, const sdb_id_t *ids, uint8_t **cur, int overwritten_rounds)
{
    char path[32];
    for (int i = 0; i < CP_N; i++) {
        snprintf(path, sizeof path, "/cp/%03d", i);
        if (i >= 30 && i < 45) { /* 30..34 orphans, 35..44 deleted */
            tu_expect_absent(db, path);
            void *p = NULL;
            size_t n;
            if (i < 35)
                tu_expect_get_id(db, &ids[i], 0, cur[i], cp_len(i));
            else
                CK_RC(sdb_get_id(db, &ids[i], 0, &p, &n, NULL), SDB_ENOTFOUND);
            continue;
        }
        tu_expect_get(db, path, cur[i], cp_len(i));
        uint64_t v = i < 20 ? 1 + (uint64_t)overwritten_rounds : 1;
        expect_lookup(db, path, &ids[i], v, cp_len(i));
        if (i < 20) { /* retained old versions: v-1, v-2 (content: round r has byte 0 = r) */
            uint8_t *old = malloc(cp_len(i) + 1);
            for (uint64_t o = v > 2 ? v - 2 : 1; o < v; o++) {
                memcpy(old, cur[i], cp_len(i));
                if (cp_len(i) > 0)
                    old[0] = (uint8_t)(o - 1);
                tu_expect_get_id(db, &ids[i], o, old, cp_len(i));
            }
            free(old);
            if (v > 3) {
                void *p;
                size_t n;
                CK_RC(sdb_get_id(db, &ids[i], v - 3, &p, &n, NULL), SDB_ENOTFOUND);
            }
        }
        if (i >= 20 && i < 30) {
            snprintf(path, sizeof path, "/alias/%03d", i);
            expect_lookup(db, path, &ids[i], 1, cp_len(i));
        }
    }
    tu_expect_absent(db, "/toggle");
    sdb_stats_t s = stats(db);
    ck_assert_uint_eq(s.documents, CP_N - 10);
    ck_assert_uint_eq(s.paths, CP_N - 15 + 10);
}

START_TEST(test_checkpoint_roundtrip)
{
    env_t e;
    env_init(&e, _i == 0 ? MODE_FILE : MODE_FILE_NOMMAP, "cp");
    e.cfg.page_size = 512;
    sdb_t *db = env_open(&e);
    uint8_t *cur[CP_N];
    sdb_id_t ids[CP_N];
    char path[32];
    for (int i = 0; i < CP_N; i++) {
        cur[i] = tu_bytes(cp_len(i), (uint32_t)(700 + i));
        if (cp_len(i) > 0)
            cur[i][0] = 0;
        snprintf(path, sizeof path, "/cp/%03d", i);
        ids[i] = put_ok(db, path, cur[i], cp_len(i)).id;
    }
    for (int r = 1; r <= 2; r++)
        for (int i = 0; i < 20; i++) {
            snprintf(path, sizeof path, "/cp/%03d", i);
            if (cp_len(i) > 0)
                cur[i][0] = (uint8_t)r;
            put_ok(db, path, cur[i], cp_len(i));
        }
    for (int i = 20; i < 30; i++) {
        snprintf(path, sizeof path, "/alias/%03d", i);
        CK_OK(sdb_bind(db, &ids[i], path));
    }
    for (int i = 30; i < 35; i++) {
        snprintf(path, sizeof path, "/cp/%03d", i);
        CK_OK(sdb_unbind(db, &ids[i], path));
    }
    for (int i = 35; i < 40; i++) {
        snprintf(path, sizeof path, "/cp/%03d", i);
        CK_OK(sdb_delete(db, path));
    }
    for (int i = 40; i < 45; i++)
        CK_OK(sdb_delete_id(db, &ids[i]));
    for (int k = 0; k < 1100; k++) { /* > 1024 journal pages: a checkpoint mid-run */
        if (k % 2 == 0)
            CK_OK(sdb_bind(db, &ids[50], "/toggle"));
        else
            CK_OK(sdb_unbind(db, &ids[50], "/toggle"));
    }
    cp_verify(db, ids, cur, 2);
    db = env_reopen(&e, db);
    cp_verify(db, ids, cur, 2);
    for (int i = 0; i < 20; i++) { /* round 3: version 1 drops out */
        snprintf(path, sizeof path, "/cp/%03d", i);
        if (cp_len(i) > 0)
            cur[i][0] = 3;
        put_ok(db, path, cur[i], cp_len(i));
    }
    CK_OK(sdb_flush(db));
    cp_verify(db, ids, cur, 3);
    db = env_reopen(&e, db);
    cp_verify(db, ids, cur, 3);
    CK_OK(sdb_close(db));
    char *report = NULL;
    int rc = sdb_check(e.path, 0, &report);
    ck_assert_msg(rc == SDB_OK, "check: %s\n%s", sdb_strerror(rc), report ? report : "");
    free(report);
    for (int i = 0; i < CP_N; i++)
        free(cur[i]);
}
END_TEST

/* ---- Byte ranges (sdb_reader_range, sdb_reader_seek) ---- */

#define RANGE_HDR 48   /* docs/FORMAT.md: the page header; a page holds page_size - 48 bytes */

static uint64_t range_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Reads r to its end in reads of cap bytes and asserts it delivers exactly
 * exp[0..n).  Returns the first error, or SDB_OK. */
static int range_expect(sdb_reader_t *r, const uint8_t *exp, uint64_t n, size_t cap,
                        const char *what)
{
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    uint64_t got = 0;
    int rc;
    for (;;) {
        size_t m = 999999;
        rc = sdb_reader_read(r, buf, cap, &m);
        if (rc != SDB_OK)
            break;
        /* plain ifs: a ck_assert per byte read would be slow (it reports
           its location to the runner each time) */
        if (m > cap)
            ck_abort_msg("%s: read returned %zu > cap %zu", what, m, cap);
        if (m == 0)
            break;
        if (got + m > n)
            ck_abort_msg("%s: more than the %llu bytes of the range", what,
                         (unsigned long long)n);
        if (memcmp(buf, exp + got, m) != 0)
            ck_abort_msg("%s: WRONG BYTES at range offset %llu", what, (unsigned long long)got);
        got += m;
    }
    if (rc == SDB_OK)
        ck_assert_msg(got == n, "%s: %llu bytes, expected %llu", what, (unsigned long long)got,
                      (unsigned long long)n);
    free(buf);
    return rc;
}

/* Loop index: mode (i % 3) x page size 512, 4096, 65536 (i / 3).  Random
 * ranges over documents of 0, 1, about one page and many pages, one of them
 * spread over several extents, compare to the bytes put. */
START_TEST(test_range_random)
{
    static const uint32_t sizes[] = {512, 4096, 65536};
    env_t e;
    env_init(&e, _i % 3, "rr");
    e.cfg.durable = 0;             /* speed: durability is not what this tests */
    e.cfg.page_size = sizes[_i / 3];
    size_t cap = e.cfg.page_size - RANGE_HDR;
    sdb_t *db = env_open(&e);
    /* Fragment the free space: every other one-page document is deleted, so
     * that the large document of index 6 reuses those pages (several extents). */
    char path[32];
    uint8_t *small = tu_bytes(cap, 5);
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "/frag/%d", i);
        put_ok(db, path, small, cap);
    }
    for (int i = 0; i < 40; i += 2) {
        snprintf(path, sizeof path, "/frag/%d", i);
        CK_OK(sdb_delete(db, path));
    }
    CK_OK(sdb_flush(db));
    size_t lens[] = {0, 1, cap - 1, cap, cap + 1, 7 * cap + 13, 45 * cap + 100};
    enum { NDOC = sizeof lens / sizeof *lens };
    uint8_t *d[NDOC];
    for (int i = NDOC - 1; i >= 0; i--) {   /* the largest first: it gets the holes */
        d[i] = tu_bytes(lens[i], (uint32_t)(i + 1) * 31 + _i);
        snprintf(path, sizeof path, "/range/%d", i);
        put_ok(db, path, d[i], lens[i]);
    }
    uint64_t x = 0x9e3779b97f4a7c15ull + (uint64_t)_i;
    static const size_t caps[] = {1, 7, 511, 4096, 70000};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            db = env_reopen(&e, db);
        for (int i = 0; i < NDOC; i++) {
            uint64_t n = lens[i];
            snprintf(path, sizeof path, "/range/%d", i);
            sdb_reader_t *r;
            sdb_docinfo_t info;
            CK_OK(sdb_reader_open(db, path, &r, &info));
            ck_assert_uint_eq(info.size, n);
            for (int k = 0; k < 60; k++) {
                uint64_t off = k == 0 ? 0 : k == 1 ? n : range_rand(&x) % (n + 1);
                uint64_t len = k == 2 ? 0 : k == 3 ? UINT64_MAX
                               : range_rand(&x) % (n - off + cap + 2);
                uint64_t avail = 12345;
                CK_OK(sdb_reader_range(r, off, len, &avail));
                uint64_t want = len < n - off ? len : n - off;
                ck_assert_msg(avail == want, "%s [%llu, +%llu): avail %llu, expected %llu",
                              path, (unsigned long long)off, (unsigned long long)len,
                              (unsigned long long)avail, (unsigned long long)want);
                char what[96];
                snprintf(what, sizeof what, "%s range [%llu, +%llu)", path,
                         (unsigned long long)off, (unsigned long long)len);
                CK_OK(range_expect(r, d[i] + off, want, caps[range_rand(&x) % 5], what));
                /* a read after the range's end stays at the end */
                uint8_t c;
                size_t m = 5;
                CK_OK(sdb_reader_read(r, &c, 1, &m));
                ck_assert_uint_eq(m, 0);
            }
            /* seek drops the range and goes on to the end of the content */
            uint64_t off = n / 3;
            CK_OK(sdb_reader_range(r, 0, 1, NULL));
            CK_OK(sdb_reader_seek(r, off));
            CK_OK(range_expect(r, d[i] + off, n - off, 4096, "seek"));
            /* past the end: an error, and the reader is left as it was */
            CK_OK(sdb_reader_range(r, 0, n, NULL));
            CK_RC(sdb_reader_range(r, n + 1, 1, NULL), SDB_EINVAL);
            CK_RC(sdb_reader_seek(r, UINT64_MAX), SDB_EINVAL);
            CK_OK(range_expect(r, d[i], n, 70000, "after a refused seek"));
            sdb_reader_close(r);
        }
    }
    CK_RC(sdb_reader_range(NULL, 0, 1, NULL), SDB_EINVAL);
    CK_RC(sdb_reader_seek(NULL, 0), SDB_EINVAL);
    if (e.mode != MODE_MEMORY) {
        /* The large document really is in several runs of pages (else the
         * extent walk of a seek went untested). */
        CK_OK(sdb_close(db));
        size_t flen;
        uint8_t *img = tu_read_file(e.path, &flen);
        int jumps = 0;
        size_t prev = 0;
        for (size_t p = 0; p * cap < lens[NDOC - 1]; p++) {
            const uint8_t *at = memmem(img, flen, d[NDOC - 1] + p * cap, 32);
            ck_assert_msg(at != NULL, "page %zu of the large document not found", p);
            size_t off = (size_t)(at - img);
            if (p > 0 && off != prev + e.cfg.page_size)
                jumps++;
            prev = off;
        }
        ck_assert_msg(jumps >= 2, "the large document lies in %d runs only", jumps + 1);
        free(img);
    } else {
        CK_OK(sdb_close(db));
    }
    free(small);
    for (int i = 0; i < NDOC; i++)
        free(d[i]);
}
END_TEST

/* Finds the file offset of data page p of content d (each page's first 32
 * bytes are unique in the file: random content). */
static size_t range_page_at(const uint8_t *img, size_t flen, const uint8_t *d, size_t cap,
                            size_t p)
{
    const uint8_t *at = memmem(img, flen, d + p * cap, 32);
    ck_assert_msg(at != NULL, "data page %zu not found in the file", p);
    return (size_t)(at - img);       /* the page's data; its header is 48 bytes before */
}

/* Loop index: page size 512 / 4096 (i / 2) x mmap on / off (i % 2).  A range
 * is read correctly while every data page outside it is damaged (so none of
 * them is read); a damaged page inside it, even in bytes past the range's
 * end on its last page, is reported as SDB_ECORRUPT. */
START_TEST(test_range_damage)
{
    env_t e;
    env_init(&e, _i % 2 ? MODE_FILE_NOMMAP : MODE_FILE, "rd");
    e.cfg.page_size = _i / 2 ? 4096 : 512;
    size_t cap = e.cfg.page_size - RANGE_HDR;
    size_t npages = 40, n = npages * cap - 10;
    uint8_t *d = tu_bytes(n, 4242 + _i);
    sdb_t *db = env_open(&e);
    put_ok(db, "/big", d, n);
    CK_OK(sdb_close(db));
    /* the range: from inside page 11 to inside page 17 */
    uint64_t off = 11 * cap + 5, len = 6 * cap + 20, p0 = 11, p1 = 17;
    size_t flen;
    uint8_t *orig = tu_read_file(e.path, &flen);
    size_t at[64];
    for (size_t p = 0; p < npages; p++)
        at[p] = range_page_at(orig, flen, d, cap, p);
    uint8_t *img = malloc(flen);
    ck_assert_ptr_nonnull(img);

    /* 1. Every page outside the range damaged: the range still reads. */
    memcpy(img, orig, flen);
    for (size_t p = 0; p < npages; p++)
        if (p < p0 || p > p1)
            img[at[p] + 3] ^= 0x5A;
    tu_write_file(e.path, img, flen);
    db = env_open(&e);
    void *all = NULL;
    size_t alen;
    CK_RC(sdb_get(db, "/big", &all, &alen, NULL), SDB_ECORRUPT);   /* the damage is real */
    sdb_reader_t *r;
    CK_OK(sdb_reader_open(db, "/big", &r, NULL));
    uint64_t avail;
    CK_OK(sdb_reader_range(r, off, len, &avail));
    ck_assert_uint_eq(avail, len);
    CK_OK(range_expect(r, d + off, len, 1000, "range among damaged pages"));
    /* ranges that start or end exactly on the range's page boundaries */
    CK_OK(sdb_reader_range(r, p0 * cap, (p1 + 1 - p0) * cap, NULL));
    CK_OK(range_expect(r, d + p0 * cap, (p1 + 1 - p0) * cap, 4096, "whole pages"));
    /* one byte further reaches a damaged page */
    CK_OK(sdb_reader_range(r, p0 * cap, (p1 + 1 - p0) * cap + 1, NULL));
    CK_RC(range_expect(r, d + p0 * cap, (p1 + 1 - p0) * cap + 1, 4096, "one byte more"),
          SDB_ECORRUPT);
    CK_OK(sdb_reader_range(r, p0 * cap - 1, 2, NULL));
    CK_RC(range_expect(r, d + p0 * cap - 1, 2, 4096, "one byte before"), SDB_ECORRUPT);
    sdb_reader_close(r);
    CK_OK(sdb_close(db));

    /* 2. One damaged page inside the range (13), or a byte of page 17 past
     * the range's end: SDB_ECORRUPT, and no byte of that page delivered. */
    static const size_t bad_page[] = {13, 17, 11};
    static const size_t bad_byte[] = {100, 0, 1};   /* offsets in the page's data (17: set below) */
    for (int t = 0; t < 3; t++) {
        memcpy(img, orig, flen);
        size_t bp = bad_page[t], bb = bad_byte[t];
        if (bp == p1)
            bb = (size_t)(off + len - p1 * cap) + 3;   /* past the range's end */
        img[at[bp] + bb] ^= 0x01;
        tu_write_file(e.path, img, flen);
        db = env_open(&e);
        CK_OK(sdb_reader_open(db, "/big", &r, NULL));
        CK_OK(sdb_reader_range(r, off, len, NULL));
        uint8_t *buf = malloc(len);
        ck_assert_ptr_nonnull(buf);
        uint64_t got = 0;
        int rc;
        for (;;) {
            size_t m;
            rc = sdb_reader_read(r, buf + got, 777 < len - got ? 777 : len - got, &m);
            if (rc || m == 0)
                break;
            got += m;
        }
        ck_assert_msg(rc == SDB_ECORRUPT, "damaged page %zu in the range: %d (%s)", bp, rc,
                      sdb_strerror(rc));
        ck_assert_msg(got == 0 || off + got <= bp * cap, "delivered %llu bytes, into damaged page %zu",
                      (unsigned long long)got, bp);
        ck_assert_msg(memcmp(buf, d + off, got) == 0, "WRONG BYTES before the damaged page");
        /* the error stays until the reader is moved; a range that avoids the page reads */
        size_t m;
        CK_RC(sdb_reader_read(r, buf, 1, &m), SDB_ECORRUPT);
        if (bp > p0) {
            CK_OK(sdb_reader_range(r, off, bp * cap - off, NULL));
            CK_OK(range_expect(r, d + off, bp * cap - off, 500, "before the damage"));
        }
        free(buf);
        sdb_reader_close(r);
        CK_OK(sdb_close(db));
    }
    free(img);
    free(orig);
    free(d);
}
END_TEST

/* A reader moved by ranges still reads the version it opened after that
 * version is overwritten, deleted and its pages could be reused. */
START_TEST(test_range_snapshot)
{
    env_t e;
    env_init(&e, _i, "rs");
    e.cfg.page_size = 512;
    sdb_t *db = env_open(&e);
    size_t n = 100000;
    uint8_t *a = tu_bytes(n, 61), *b = tu_bytes(n, 62);
    put_ok(db, "/snap", a, n);
    sdb_reader_t *r;
    CK_OK(sdb_reader_open(db, "/snap", &r, NULL));
    CK_OK(sdb_reader_range(r, 50000, 100, NULL));
    CK_OK(range_expect(r, a + 50000, 100, 64, "before the overwrite"));
    put_ok(db, "/snap", b, n);
    CK_OK(sdb_delete(db, "/snap"));
    CK_OK(sdb_flush(db));
    put_ok(db, "/other", b, n);          /* would reuse freed pages, were any freed */
    for (uint64_t off = 0; off < n; off += 9973) {
        CK_OK(sdb_reader_range(r, off, 3000, NULL));
        uint64_t len = n - off < 3000 ? n - off : 3000;
        CK_OK(range_expect(r, a + off, len, 1000, "after the overwrite and delete"));
    }
    CK_OK(sdb_reader_seek(r, 0));
    CK_OK(range_expect(r, a, n, 4096, "whole, after the delete"));
    sdb_reader_close(r);
    CK_OK(sdb_close(db));
    free(a);
    free(b);
}
END_TEST

/* ---- Atomic batches ---- */

static sdb_batch_t *batch_new(void)
{
    sdb_batch_t *b = NULL;
    CK_OK(sdb_batch_new(&b));
    ck_assert_ptr_nonnull(b);
    return b;
}

static size_t count_paths(sdb_t *db)
{
    tu_list_t l = { 0 };
    CK_OK(sdb_search(db, "", NULL, tu_list_cb, &l));
    size_t n = l.n;
    tu_list_free(&l);
    return n;
}

/* A batch whose last item fails leaves nothing of the earlier ones, in
 * memory and after a reopen; the same batch without that item commits whole,
 * and its results describe each item. */
START_TEST(test_batch_all_or_none)
{
    env_t e;
    env_init(&e, _i, "batch_aon");
    sdb_t *db = env_open(&e);
    sdb_docinfo_t keep = put_ok(db, "/b/keep", "keep", 4);
    put_ok(db, "/b/gone", "gone", 4);
    sdb_batch_t *b = batch_new();
    enum { N = 50 };
    char path[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(path[i], sizeof path[i], "/b/new/%02d", i);
        uint8_t *d = tu_bytes(16 + (size_t)i, (uint32_t)i);
        CK_OK(sdb_batch_put(b, path[i], d, 16 + (size_t)i, UINT64_MAX));
        free(d);
    }
    CK_OK(sdb_batch_delete(b, "/b/gone", UINT64_MAX));
    CK_OK(sdb_batch_put(b, "/b/keep", "v2", 2, 1));
    CK_OK(sdb_batch_bind(b, &keep.id, "/b/alias", UINT64_MAX));
    CK_OK(sdb_batch_put(b, "/b/keep", "v3", 2, 7));     /* keep is at 2 here: conflict */
    ck_assert_uint_eq(sdb_batch_count(b), N + 4);
    size_t failed = 0;
    CK_RC(sdb_batch_commit(db, b, NULL, &failed), SDB_ECONFLICT);
    ck_assert_uint_eq(failed, N + 3);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++)
            tu_expect_absent(db, path[i]);
        tu_expect_get(db, "/b/gone", "gone", 4);
        tu_expect_get(db, "/b/keep", "keep", 4);
        tu_expect_absent(db, "/b/alias");
        ck_assert_uint_eq(count_paths(db), 2);
        db = env_reopen(&e, db);
    }

    /* the same items without the failing one */
    sdb_batch_clear(b);
    ck_assert_uint_eq(sdb_batch_count(b), 0);
    for (int i = 0; i < N; i++) {
        uint8_t *d = tu_bytes(16 + (size_t)i, (uint32_t)i);
        CK_OK(sdb_batch_put(b, path[i], d, 16 + (size_t)i, 0));
        free(d);
    }
    CK_OK(sdb_batch_delete(b, "/b/gone", 1));
    CK_OK(sdb_batch_put(b, "/b/keep", "v2", 2, 1));
    CK_OK(sdb_batch_bind(b, &keep.id, "/b/alias", 2));
    sdb_docinfo_t res[N + 3];
    memset(res, 0, sizeof res);
    failed = 0;
    CK_OK(sdb_batch_commit(db, b, res, &failed));
    ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            uint8_t *d = tu_bytes(16 + (size_t)i, (uint32_t)i);
            tu_expect_get(db, path[i], d, 16 + (size_t)i);
            if (pass == 0) {
                ck_assert_uint_eq(res[i].version, 1);
                ck_assert_uint_eq(res[i].size, 16 + (size_t)i);
                ck_assert_uint_eq(res[i].crc32, tu_crc(d, 16 + (size_t)i));
                expect_lookup(db, path[i], &res[i].id, 1, 16 + (size_t)i);
            }
            free(d);
        }
        tu_expect_absent(db, "/b/gone");
        tu_expect_get(db, "/b/keep", "v2", 2);
        tu_expect_get(db, "/b/alias", "v2", 2);
        expect_lookup(db, "/b/alias", &keep.id, 2, 2);
        ck_assert_uint_eq(count_paths(db), N + 2);
        db = env_reopen(&e, db);
    }
    ck_assert_uint_eq(res[N + 1].version, 2);
    ck_assert(tu_id_eq(&res[N + 1].id, &keep.id));
    ck_assert(tu_id_eq(&res[N + 2].id, &keep.id));
    sdb_batch_free(b);
    CK_OK(sdb_close(db));
}
END_TEST

/* Later items see the effects of earlier ones: two puts of one path make two
 * versions; a delete then a put of the same path makes a new document; a
 * new path then bound to another document; a bind then a delete of that
 * path; an unbind of a path bound earlier in the batch; conditions checked
 * against the batch's own versions. */
START_TEST(test_batch_dependencies)
{
    env_t e;
    env_init(&e, _i, "batch_dep");
    e.cfg.versions_to_keep = 1;
    sdb_t *db = env_open(&e);
    sdb_docinfo_t a = put_ok(db, "/d/a", "a1", 2);
    sdb_docinfo_t old = put_ok(db, "/d/old", "old", 3);
    sdb_docinfo_t o = put_ok(db, "/d/other", "o", 1);
    sdb_batch_t *b = batch_new();
    CK_OK(sdb_batch_put(b, "/d/a", "a2", 2, 1));          /* 0: a v2 */
    CK_OK(sdb_batch_put(b, "/d/a", "a3", 2, 2));          /* 1: a v3 (drops v1) */
    CK_OK(sdb_batch_delete(b, "/d/old", 1));              /* 2: old deleted */
    CK_OK(sdb_batch_put(b, "/d/old", "new", 3, 0));       /* 3: a new document there */
    CK_OK(sdb_batch_put(b, "/d/n", "n", 1, UINT64_MAX));  /* 4: new document */
    CK_OK(sdb_batch_bind(b, &o.id, "/d/n", 1));           /* 5: /d/n moves to other */
    CK_OK(sdb_batch_bind(b, &a.id, "/d/tmp", 3));         /* 6 */
    CK_OK(sdb_batch_delete(b, "/d/tmp", 3));              /* 7: a keeps /d/a */
    CK_OK(sdb_batch_bind(b, &a.id, "/d/a2", UINT64_MAX)); /* 8 */
    CK_OK(sdb_batch_unbind(b, &a.id, "/d/a2", 3));        /* 9 */
    CK_OK(sdb_batch_bind(b, &o.id, "/d/o2", UINT64_MAX)); /* 10 */
    sdb_docinfo_t res[11];
    size_t failed = 0;
    CK_OK(sdb_batch_commit(db, b, res, &failed));
    ck_assert_uint_eq(res[0].version, 2);
    ck_assert_uint_eq(res[1].version, 3);
    ck_assert(tu_id_eq(&res[2].id, &old.id));
    ck_assert(!tu_id_eq(&res[3].id, &old.id));
    ck_assert_uint_eq(res[3].version, 1);
    for (int pass = 0; pass < 2; pass++) {
        tu_expect_get(db, "/d/a", "a3", 2);
        expect_lookup(db, "/d/a", &a.id, 3, 2);
        tu_expect_get_id(db, &a.id, 2, "a2", 2);
        void *data = NULL;
        size_t len;
        CK_RC(sdb_get_id(db, &a.id, 1, &data, &len, NULL), SDB_ENOTFOUND);
        tu_expect_get(db, "/d/old", "new", 3);
        expect_lookup(db, "/d/old", &res[3].id, 1, 3);
        CK_RC(sdb_get_id(db, &old.id, 0, &data, &len, NULL), SDB_ENOTFOUND);
        tu_expect_get(db, "/d/n", "o", 1);
        CK_RC(sdb_get_id(db, &res[4].id, 0, &data, &len, NULL), SDB_OK);  /* no path left */
        free(data);
        tu_expect_absent(db, "/d/tmp");
        tu_expect_absent(db, "/d/a2");
        tu_expect_get(db, "/d/o2", "o", 1);
        ck_assert_uint_eq(count_paths(db), 5);   /* a, old, other, n, o2 */
        db = env_reopen(&e, db);
    }
    sdb_batch_free(b);
    CK_OK(sdb_close(db));
}
END_TEST

/* Each kind of failing item names itself and leaves the state unchanged;
 * an empty batch commits nothing; bad arguments and limits are refused. */
START_TEST(test_batch_failures)
{
    env_t e;
    env_init(&e, _i, "batch_fail");
    sdb_t *db = env_open(&e);
    sdb_docinfo_t a = put_ok(db, "/f/a", "a", 1);
    sdb_id_t ghost;
    CK_OK(sdb_id_parse("00000000-0000-4000-8000-000000000001", &ghost));
    struct {
        int kind;          /* 0 delete, 1 bind, 2 unbind, 3 put */
        const char *path;
        const sdb_id_t *id;
        uint64_t ifv;
        int want;
    } cases[] = {
        { 0, "/f/none", NULL, UINT64_MAX, SDB_ENOTFOUND },
        { 0, "/f/a", NULL, 2, SDB_ECONFLICT },
        { 1, "/f/x", &ghost, UINT64_MAX, SDB_ENOTFOUND },
        { 1, "/f/x", &a.id, 5, SDB_ECONFLICT },
        { 2, "/f/x", &a.id, UINT64_MAX, SDB_ENOTFOUND },
        { 2, "/f/a", &ghost, UINT64_MAX, SDB_ENOTFOUND },
        { 3, "/f/a", NULL, 0, SDB_ECONFLICT },
        { 3, "/f/new", NULL, 1, SDB_ECONFLICT },
        { 0, "/f/a", NULL, UINT64_MAX, SDB_OK },     /* a deleted ... */
        { 1, "/f/y", &a.id, UINT64_MAX, SDB_ENOTFOUND },   /* ... so it cannot be bound */
    };
    size_t nc = sizeof cases / sizeof cases[0];
    for (size_t c = 0; c < nc; c++) {
        if (cases[c].want == SDB_OK)
            continue;
        sdb_batch_t *b = batch_new();
        CK_OK(sdb_batch_put(b, "/f/first", "1", 1, UINT64_MAX));
        if (c == nc - 1)
            CK_OK(sdb_batch_delete(b, "/f/a", UINT64_MAX));
        int rc;
        switch (cases[c].kind) {
        case 0: rc = sdb_batch_delete(b, cases[c].path, cases[c].ifv); break;
        case 1: rc = sdb_batch_bind(b, cases[c].id, cases[c].path, cases[c].ifv); break;
        case 2: rc = sdb_batch_unbind(b, cases[c].id, cases[c].path, cases[c].ifv); break;
        default: rc = sdb_batch_put(b, cases[c].path, "z", 1, cases[c].ifv); break;
        }
        CK_OK(rc);
        CK_OK(sdb_batch_put(b, "/f/last", "2", 1, UINT64_MAX));
        size_t failed = 99;
        rc = sdb_batch_commit(db, b, NULL, &failed);
        ck_assert_msg(rc == cases[c].want, "case %zu: %s", c, sdb_strerror(rc));
        ck_assert_msg(failed == sdb_batch_count(b) - 2, "case %zu: failed item %zu", c, failed);
        tu_expect_absent(db, "/f/first");
        tu_expect_absent(db, "/f/last");
        tu_expect_get(db, "/f/a", "a", 1);
        sdb_batch_free(b);
    }
    ck_assert_uint_eq(count_paths(db), 1);

    /* empty batch */
    sdb_batch_t *b = batch_new();
    size_t failed = 5;
    CK_OK(sdb_batch_commit(db, b, NULL, &failed));
    ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);

    /* bad arguments */
    uint8_t one = 1;
    CK_RC(sdb_batch_new(NULL), SDB_EINVAL);
    CK_RC(sdb_batch_put(NULL, "/p", "x", 1, UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_put(b, "", "x", 1, UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_put(b, "/p", NULL, 1, UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_bind(b, NULL, "/p", UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_unbind(b, NULL, "/p", UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_delete(b, NULL, UINT64_MAX), SDB_EINVAL);
    CK_RC(sdb_batch_commit(NULL, b, NULL, NULL), SDB_EINVAL);
    CK_RC(sdb_batch_commit(db, NULL, NULL, NULL), SDB_EINVAL);
    ck_assert_uint_eq(sdb_batch_count(b), 0);
    (void)one;

    /* limits: content in all, and max_document_size per put (named) */
    uint8_t *big = calloc(1, SDB_BATCH_MAX_BYTES);
    ck_assert_ptr_nonnull(big);
    CK_OK(sdb_batch_put(b, "/l/1", big, SDB_BATCH_MAX_BYTES - 1, UINT64_MAX));
    CK_RC(sdb_batch_put(b, "/l/2", big, 2, UINT64_MAX), SDB_ETOOLARGE);
    CK_OK(sdb_batch_put(b, "/l/2", big, 1, UINT64_MAX));
    CK_RC(sdb_batch_put(b, "/l/3", big, 1, UINT64_MAX), SDB_ETOOLARGE);
    ck_assert_uint_eq(sdb_batch_count(b), 2);
    free(big);
    sdb_batch_clear(b);
    for (size_t i = 0; i < SDB_BATCH_MAX_OPS; i++)
        CK_OK(sdb_batch_delete(b, "/x", UINT64_MAX));
    CK_RC(sdb_batch_delete(b, "/x", UINT64_MAX), SDB_ETOOLARGE);
    sdb_batch_clear(b);
    sdb_close(db);
    e.cfg.max_document_size = 100;
    db = env_reopen(&e, env_open(&e));
    CK_OK(sdb_batch_put(b, "/m/1", "x", 1, UINT64_MAX));
    uint8_t d101[101] = { 0 };
    CK_OK(sdb_batch_put(b, "/m/2", d101, sizeof d101, UINT64_MAX));
    CK_RC(sdb_batch_commit(db, b, NULL, &failed), SDB_ETOOLARGE);
    ck_assert_uint_eq(failed, 1);
    tu_expect_absent(db, "/m/1");
    sdb_batch_free(b);
    sdb_batch_free(NULL);
    CK_OK(sdb_close(db));
}
END_TEST

/* ---- Suite ---- */

static TCase *tcase(Suite *s, const char *name, int timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *suite_api(void)
{
    Suite *s = suite_create("api");
    /* loop index = mode: 0 file, 1 memory, 2 file without mmap */
    TCase *tc = tcase(s, "roundtrip", 60);
    tcase_add_loop_test(tc, test_roundtrip_100k, 0, 3);
    tcase_add_loop_test(tc, test_overwrite_reopen, 0, 3);
    tcase_add_loop_test(tc, test_page_sizes, 0, 3);
    tcase_add_loop_test(tc, test_shrink_after_reuse, 0, 3);
    tcase_add_loop_test(tc, test_zero_length, 0, 3);
    tcase_add_loop_test(tc, test_quick_mode, 0, 3);
    tcase_add_loop_test(tc, test_checkpoint_roundtrip, 0, 2);

    tc = tcase(s, "paths", 60);
    tcase_add_loop_test(tc, test_list_paths_bind, 0, 2);
    tcase_add_loop_test(tc, test_many_bindings, 0, 2);
    tcase_add_loop_test(tc, test_interleaved_bindings, 0, 3);
    tcase_add_loop_test(tc, test_prefix_search, 0, 2);
    tcase_add_loop_test(tc, test_delete_id, 0, 2);
    tcase_add_loop_test(tc, test_unbind_one, 0, 2);
    tcase_add_loop_test(tc, test_unbind_last, 0, 2);
    tcase_add_loop_test(tc, test_delete_last_path, 0, 2);
    tcase_add_loop_test(tc, test_bind_moves, 0, 2);

    tc = tcase(s, "versions", 60);
    tcase_add_loop_test(tc, test_alias_overwrite, 0, 2);
    tcase_add_loop_test(tc, test_old_versions, 0, 2);
    tcase_add_loop_test(tc, test_versions_zero, 0, 2);
    tcase_add_loop_test(tc, test_conditional_put, 0, 2);
    tcase_add_loop_test(tc, test_writer_conditional, 0, 2);
    tcase_add_loop_test(tc, test_docinfo_fields, 0, 2);

    tc = tcase(s, "listing", 60);
    tcase_add_loop_test(tc, test_delimiter, 0, 2);
    tcase_add_loop_test(tc, test_delimiter_groups, 0, 2);
    tcase_add_loop_test(tc, test_pagination, 0, 2);
    tcase_add_loop_test(tc, test_callback_stop, 0, 2);

    tc = tcase(s, "streaming", 120);
    tcase_add_loop_test(tc, test_stream_chunks, 0, 3);
    tcase_add_loop_test(tc, test_reader_snapshot, 0, 3);
    tcase_add_loop_test(tc, test_writer_abort, 0, 2);
    tcase_add_loop_test(tc, test_threads_one_handle, 0, 2);
    tcase_add_loop_test(tc, test_conditional_threads, 0, 2);
    tcase_add_loop_test(tc, test_callback_reads, 0, 2);

    tc = tcase(s, "meta", 60);
    tcase_add_loop_test(tc, test_info_text, 0, 2);
    tcase_add_loop_test(tc, test_stats_figures, 0, 3);
    tcase_add_test(tc, test_id_format_parse);
    tcase_add_test(tc, test_strerror);

    tc = tcase(s, "bad_input", 60);
    tcase_add_loop_test(tc, test_null_args, 0, 2);
    tcase_add_test(tc, test_commit_many_bad_args);
    tcase_add_loop_test(tc, test_bad_paths, 0, 2);
    tcase_add_test(tc, test_bad_ids);
    tcase_add_loop_test(tc, test_too_large, 0, 2);
    tcase_add_loop_test(tc, test_max_db_size, 0, 2);
    tcase_add_test(tc, test_bad_config);

    tc = tcase(s, "batches", 120);
    tcase_add_loop_test(tc, test_batch_all_or_none, 0, 3);
    tcase_add_loop_test(tc, test_batch_dependencies, 0, 3);
    tcase_add_loop_test(tc, test_batch_failures, 0, 2);

    tc = tcase(s, "ranges", 120);
    tcase_add_loop_test(tc, test_range_random, 0, 9);
    tcase_add_loop_test(tc, test_range_damage, 0, 4);
    tcase_add_loop_test(tc, test_range_snapshot, 0, 3);
    return s;
}
