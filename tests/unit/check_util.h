/*
 * check_util.h -- small helpers shared by the engine test suites: a temporary
 * directory per test case, deterministic test content, read-back assertions
 * and a collector for listing callbacks.  Header-only (static inline) so that
 * each suite stays one file.
 */
#ifndef CHECK_UTIL_H
#define CHECK_UTIL_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../check_run.h"   /* CK_SKIP */
#include "streamdb.h"

/* ---- Assertions on return codes ---- */

#define CK_RC(expr, want)                                                               \
    do {                                                                                \
        int rc_ = (expr);                                                               \
        ck_assert_msg(rc_ == (want), "%s returned %d (%s), expected %d (%s)", #expr,    \
                      rc_, sdb_strerror(rc_), (int)(want), sdb_strerror(want));         \
    } while (0)
#define CK_OK(expr) CK_RC(expr, SDB_OK)

/* ---- Temporary directory: one per TCase, made and removed by the runner ---- */

/* Set by tu_dir_setup (an unchecked fixture: it runs in the runner process,
 * so the teardown removes the directory even when a forked test fails). */
static char tu_dir[256];

static inline void tu_dir_setup(void)
{
    snprintf(tu_dir, sizeof tu_dir, "/tmp/sdbtest.XXXXXX");
    if (mkdtemp(tu_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static inline int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void tu_dir_teardown(void)
{
    if (tu_dir[0] != '\0')
        nftw(tu_dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    tu_dir[0] = '\0';
}

/* Builds a unique file name under the test case's directory (the file itself
 * is not created).  Unique across the tests of one TCase and loop indices. */
static inline void tu_file(char *out, size_t cap, const char *name)
{
    static unsigned seq;
    ck_assert_msg(tu_dir[0] != '\0', "no temp dir (missing fixture)");
    snprintf(out, cap, "%s/%s.%ld.%u.sdb", tu_dir, name, (long)getpid(), seq++);
}

/* ---- Deterministic content ---- */

static inline void tu_fill(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    if (x == 0)
        x = 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x >> 24);
    }
}

/* malloc()ed n pseudo-random bytes (never NULL, even for n == 0). */
static inline uint8_t *tu_bytes(size_t n, uint32_t seed)
{
    uint8_t *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    tu_fill(b, n, seed);
    return b;
}

static inline uint32_t tu_crc(const void *p, size_t n)
{
    return (uint32_t)crc32(0L, (const Bytef *)p, (uInt)n);
}

static inline int tu_id_eq(const sdb_id_t *a, const sdb_id_t *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}

/* ---- Read-back assertions ---- */

/* Asserts that path reads back as exactly exp[0..n) with a matching info. */
static inline void tu_expect_get(sdb_t *db, const char *path, const void *exp, size_t n)
{
    void *d = NULL;
    size_t len = 12345;
    sdb_docinfo_t info;
    int rc = sdb_get(db, path, &d, &len, &info);
    ck_assert_msg(rc == SDB_OK, "get '%s': %d (%s)", path, rc, sdb_strerror(rc));
    ck_assert_msg(d != NULL, "get '%s': NULL data", path);
    ck_assert_msg(len == n, "get '%s': %zu bytes, expected %zu", path, len, n);
    ck_assert_msg(n == 0 || memcmp(d, exp, n) == 0, "get '%s': content differs", path);
    ck_assert_msg(info.size == n, "get '%s': info.size %llu, expected %zu", path,
                  (unsigned long long)info.size, n);
    ck_assert_msg(info.crc32 == tu_crc(exp, n), "get '%s': info.crc32 wrong", path);
    free(d);
}

/* Asserts that id at version reads back as exactly exp[0..n). */
static inline void tu_expect_get_id(sdb_t *db, const sdb_id_t *id, uint64_t version,
                                    const void *exp, size_t n)
{
    void *d = NULL;
    size_t len = 12345;
    sdb_docinfo_t info;
    int rc = sdb_get_id(db, id, version, &d, &len, &info);
    ck_assert_msg(rc == SDB_OK, "get_id v%llu: %d (%s)", (unsigned long long)version, rc,
                  sdb_strerror(rc));
    ck_assert_msg(d != NULL, "get_id: NULL data");
    ck_assert_msg(len == n, "get_id v%llu: %zu bytes, expected %zu", (unsigned long long)version,
                  len, n);
    ck_assert_msg(n == 0 || memcmp(d, exp, n) == 0, "get_id v%llu: content differs",
                  (unsigned long long)version);
    ck_assert_msg(tu_id_eq(&info.id, id), "get_id: info.id differs");
    if (version != 0)
        ck_assert_msg(info.version == version, "get_id: info.version %llu, asked %llu",
                      (unsigned long long)info.version, (unsigned long long)version);
    free(d);
}

/* Streams path through a reader with the given read sizes (cycled) and asserts
 * the exact content; every read returns at most cap bytes. */
static inline void tu_expect_stream(sdb_t *db, const char *path, const uint8_t *exp, size_t n,
                                    const size_t *caps, size_t ncaps)
{
    sdb_reader_t *r = NULL;
    sdb_docinfo_t info;
    int rc = sdb_reader_open(db, path, &r, &info);
    ck_assert_msg(rc == SDB_OK, "reader_open '%s': %d (%s)", path, rc, sdb_strerror(rc));
    ck_assert_msg(info.size == n, "reader_open '%s': size %llu, expected %zu", path,
                  (unsigned long long)info.size, n);
    size_t maxcap = 1;
    for (size_t i = 0; i < ncaps; i++)
        if (caps[i] > maxcap)
            maxcap = caps[i];
    uint8_t *buf = malloc(maxcap);
    ck_assert_ptr_nonnull(buf);
    size_t got = 0, k = 0;
    for (;;) {
        size_t cap = caps[k++ % ncaps], m = 99999999;
        rc = sdb_reader_read(r, buf, cap, &m);
        ck_assert_msg(rc == SDB_OK, "reader_read '%s' at %zu: %d (%s)", path, got, rc,
                      sdb_strerror(rc));
        ck_assert_msg(m <= cap, "reader_read returned %zu > cap %zu", m, cap);
        if (m == 0)
            break;
        ck_assert_msg(got + m <= n, "reader '%s' delivers more than %zu bytes", path, n);
        ck_assert_msg(memcmp(buf, exp + got, m) == 0, "reader '%s': bytes differ at %zu", path,
                      got);
        got += m;
    }
    ck_assert_msg(got == n, "reader '%s': %zu bytes, expected %zu", path, got, n);
    size_t m = 7;
    CK_OK(sdb_reader_read(r, buf, maxcap, &m));
    ck_assert_msg(m == 0, "read after the end returned %zu bytes", m);
    sdb_reader_close(r);
    free(buf);
}

static inline void tu_expect_absent(sdb_t *db, const char *path)
{
    void *d = NULL;
    size_t len = 0;
    int rc = sdb_get(db, path, &d, &len, NULL);
    ck_assert_msg(rc == SDB_ENOTFOUND, "get '%s': %d (%s), expected ENOTFOUND", path, rc,
                  sdb_strerror(rc));
    rc = sdb_lookup(db, path, NULL);
    ck_assert_msg(rc == SDB_ENOTFOUND, "lookup '%s': %d (%s), expected ENOTFOUND", path, rc,
                  sdb_strerror(rc));
}

/* ---- Listing collector ---- */

typedef struct {
    size_t n, cap;
    char **paths;          /* NULL entries for sdb_list_versions */
    int *rolled;           /* 1 when info was NULL */
    sdb_docinfo_t *info;   /* zeroed when info was NULL */
    size_t stop_after;     /* return nonzero after this many calls (0: never) */
} tu_list_t;

static inline int tu_list_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    tu_list_t *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
        l->rolled = realloc(l->rolled, l->cap * sizeof *l->rolled);
        l->info = realloc(l->info, l->cap * sizeof *l->info);
        if (!l->paths || !l->rolled || !l->info)
            abort();
    }
    l->paths[l->n] = path ? strdup(path) : NULL;
    l->rolled[l->n] = info == NULL;
    if (info)
        l->info[l->n] = *info;
    else
        memset(&l->info[l->n], 0, sizeof l->info[l->n]);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static inline void tu_list_free(tu_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    free(l->rolled);
    free(l->info);
    memset(l, 0, sizeof *l);
}

/* Asserts that the collected paths are exactly want[0..n) in order; a want
 * entry ending in "*" must be a rolled-up prefix (info NULL), the "*" not part
 * of the path; other entries must carry info. */
static inline void tu_list_expect(const tu_list_t *l, const char *const *want, size_t n,
                                  const char *what)
{
    char got[4096];
    size_t off = 0;
    got[0] = '\0';
    for (size_t i = 0; i < l->n && off < sizeof got - 64; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "[%s%s]",
                                l->paths[i] ? l->paths[i] : "(null)", l->rolled[i] ? "*" : "");
    ck_assert_msg(l->n == n, "%s: %zu results, expected %zu; got %s", what, l->n, n, got);
    for (size_t i = 0; i < n; i++) {
        size_t wl = strlen(want[i]);
        int roll = wl > 0 && want[i][wl - 1] == '*';
        if (roll)
            wl--;
        ck_assert_msg(l->paths[i] != NULL && strlen(l->paths[i]) == wl &&
                          memcmp(l->paths[i], want[i], wl) == 0,
                      "%s: result %zu is '%s', expected '%.*s'; got %s", what, i,
                      l->paths[i] ? l->paths[i] : "(null)", (int)wl, want[i], got);
        ck_assert_msg(l->rolled[i] == roll, "%s: result %zu '%s' %s; got %s", what, i,
                      l->paths[i], roll ? "should be a rolled-up prefix (info NULL)"
                                        : "should carry info (not rolled up)", got);
    }
}

/* ---- Files ---- */

static inline uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(fread(b, 1, (size_t)sz, f) == (size_t)sz, "short read of %s", path);
    fclose(f);
    *len = (size_t)sz;
    return b;
}

static inline void tu_write_file(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_msg(fwrite(b, 1, len, f) == len, "short write of %s", path);
    ck_assert_msg(fclose(f) == 0, "close %s", path);
}

static inline uint64_t tu_file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

#endif
