/*
 * check_pathidx.c -- unit tests of the in-memory path index (src/engine/pathidx.c),
 * through its interface in pathidx.h: put/get/del, raw byte order, seeks,
 * a long randomized workload against a simple reference, the real Debian
 * paths sample (tests/data/paths-sample.txt.gz), memory accounting and
 * out-of-memory behaviour.
 *
 * The reference is a "pool": a sorted array of distinct keys with a presence
 * flag and the expected value per key.  Iterating it, counting it and finding
 * the first key >= / > a probe are obviously correct, so any difference is a
 * bug in the index.
 *
 * The out-of-memory tests compile a second copy of pathidx.c at the end of
 * this file, with malloc/calloc redirected to a failing allocator and its
 * public functions renamed fs_pathidx_*; see "Fault injection" below.
 */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/pathidx.h"
#include "streamdb.h"

/* ---- Helpers ---------------------------------------------------------------------- */

/* Like ck_assert_msg, but calls into Check only on failure: every passing
 * ck_assert* sends its location to the runner (one write(2)), which would
 * dominate the millions of checks in the loops below. */
#define T_CHECK(cond, ...)                                                              \
    do {                                                                                \
        if (!(cond))                                                                    \
            ck_abort_msg("check failed: " #cond ": " __VA_ARGS__);                      \
    } while (0)

/* Deterministic xorshift64* generator: every run sees the same keys. */
typedef struct {
    uint64_t s;
} t_rng;

static uint64_t t_rand(t_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

static size_t t_below(t_rng *r, size_t n)
{
    return (size_t)(t_rand(r) % n);
}

/* Raw byte order: memcmp on the common length, then shorter first. */
static int t_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m > 0 ? memcmp(a, b, m) : 0;
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

typedef struct {
    char *s;
    size_t len;
} t_str;

static int t_str_cmp(const void *a, const void *b)
{
    const t_str *x = a, *y = b;
    return t_cmp(x->s, x->len, y->s, y->len);
}

static t_str t_dup(const char *s, size_t len)
{
    t_str r;
    r.s = malloc(len + 1);
    T_CHECK(r.s != NULL, "out of memory");
    memcpy(r.s, s, len);
    r.s[len] = '\0';
    r.len = len;
    return r;
}

#define T_VAL(i) ((void *)(uintptr_t)(0x1000u + (uintptr_t)(i)))

/* Alphabet of the random keys: separators, ASCII, control and high bytes,
 * so that raw byte order differs from signed-char and locale order. */
static const unsigned char t_alpha[] = {'/', 'a', 'b', 'z', 0x01, 0x7f, 0x80, 0xc3, 0xfe, 0xff};

/* Fills buf with a random key of 1..maxlen bytes (never NUL).  One key in
 * four is a prefix or an extension of the previous one, so that the keys
 * share prefixes and some are prefixes of others.  Returns the length. */
static size_t t_rand_key(t_rng *r, char *buf, size_t prev_len, size_t maxlen)
{
    size_t len, i = 0;
    uint64_t mode = t_rand(r) % 8;

    if (mode == 0 && prev_len > 1)
        return 1 + t_below(r, prev_len - 1);        /* a proper prefix of prev */
    if (mode == 1 && prev_len > 0 && prev_len < maxlen)
        i = prev_len;                               /* an extension of prev */
    len = i + 1 + t_below(r, maxlen - i);
    for (; i < len; i++)
        buf[i] = (char)t_alpha[t_below(r, sizeof t_alpha)];
    return len;
}

/* ---- The reference: a sorted pool of distinct keys with presence flags ---------- */

typedef struct {
    t_str *k;          /* sorted, distinct */
    size_t n;
    unsigned char *in; /* in[i]: k[i] is in the index */
    void **val;        /* the value expected for k[i] */
    size_t count;      /* keys present */
} t_pool;

/* Sorts and deduplicates k[0..n) into a pool (taking ownership of k). */
static void t_pool_init(t_pool *p, t_str *k, size_t n)
{
    size_t i, w = 0;

    qsort(k, n, sizeof(*k), t_str_cmp);
    for (i = 0; i < n; i++) {
        if (w > 0 && t_str_cmp(&k[w - 1], &k[i]) == 0)
            free(k[i].s);
        else
            k[w++] = k[i];
    }
    p->k = k;
    p->n = w;
    p->in = calloc(w ? w : 1, 1);
    p->val = calloc(w ? w : 1, sizeof(void *));
    ck_assert(p->in != NULL && p->val != NULL);
    p->count = 0;
}

/* Builds a pool of up to n random keys of at most maxlen bytes. */
static void t_pool_random(t_pool *p, size_t n, size_t maxlen, uint64_t seed)
{
    t_rng r = {seed};
    t_str *k = malloc(n * sizeof(*k));
    char buf[SDB_MAX_PATH];
    size_t i, len = 0;

    ck_assert_ptr_nonnull(k);
    for (i = 0; i < n; i++) {
        len = t_rand_key(&r, buf, len, maxlen);
        k[i] = t_dup(buf, len);
    }
    t_pool_init(p, k, n);
}

static void t_pool_free(t_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->k[i].s);
    free(p->k);
    free(p->in);
    free(p->val);
}

/* Index of the first pool key >= (incl) or > (!incl) s, among all keys. */
static size_t t_pool_bound(const t_pool *p, const char *s, size_t len, int incl)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = t_cmp(p->k[mid].s, p->k[mid].len, s, len);
        if (incl ? c < 0 : c <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the first present key at or after i, or p->n. */
static size_t t_pool_next_in(const t_pool *p, size_t i)
{
    while (i < p->n && !p->in[i])
        i++;
    return i;
}

/* Asserts that iterator output k is pool key i (bytes, length, NUL, value). */
static void t_expect_key(const t_pool *p, size_t i, const pathidx_key_t *k, const char *what)
{
    T_CHECK(k != NULL, "%s: iteration ended early, expected key #%zu", what, i);
    T_CHECK(k->len == p->k[i].len && memcmp(k->bytes, p->k[i].s, k->len) == 0,
            "%s: got key of %u bytes, expected #%zu ('%s')", what, k->len, i, p->k[i].s);
    T_CHECK(k->bytes[k->len] == '\0', "%s: key not NUL-terminated", what);
    T_CHECK(k->val == p->val[i], "%s: wrong value for key #%zu", what, i);
}

/* Asserts that a full iteration of idx yields exactly the present pool keys,
 * in order, and that the count agrees. */
static void t_expect_same(const pathidx_t *idx, const t_pool *p)
{
    pathidx_iter_t it;
    pathidx_key_t *k;
    size_t i = t_pool_next_in(p, 0), seen = 0;

    ck_assert_uint_eq(pathidx_count(idx), p->count);
    pathidx_seek(idx, &it, NULL, 0, 1);
    while ((k = pathidx_next(&it)) != NULL) {
        T_CHECK(i < p->n, "iteration yields %zu+ keys, expected %zu", seen + 1, p->count);
        t_expect_key(p, i, k, "full iteration");
        i = t_pool_next_in(p, i + 1);
        seen++;
    }
    ck_assert_msg(seen == p->count, "iteration yields %zu keys, expected %zu", seen, p->count);
    ck_assert_ptr_null(pathidx_next(&it));
}

/* Asserts that seeking s (inclusive or not) yields the right next nmax keys. */
static void t_expect_seek(const pathidx_t *idx, const t_pool *p, const char *s, size_t len,
                          int incl, int nmax)
{
    pathidx_iter_t it;
    size_t i = t_pool_next_in(p, t_pool_bound(p, s, len, incl));

    pathidx_seek(idx, &it, s, len, incl);
    for (int n = 0; n < nmax; n++) {
        pathidx_key_t *k = pathidx_next(&it);
        if (i >= p->n) {
            T_CHECK(k == NULL, "seek(%s, %s) +%d: got a key past the end", s,
                    incl ? "incl" : "excl", n);
            return;
        }
        t_expect_key(p, i, k, incl ? "seek inclusive" : "seek exclusive");
        i = t_pool_next_in(p, i + 1);
    }
}

/* Puts pool key i with value v, checking the reported old value and entry. */
static void t_pool_put(pathidx_t *idx, t_pool *p, size_t i, void *v)
{
    pathidx_key_t *k = NULL;
    void *old = (void *)1;
    int rc = pathidx_put(idx, p->k[i].s, p->k[i].len, v, &k, &old);
    T_CHECK(rc == 0, "put #%zu returned %d", i, rc);
    T_CHECK(old == (p->in[i] ? p->val[i] : NULL), "put #%zu: wrong old value", i);
    T_CHECK(k != NULL && k->val == v, "put #%zu: wrong entry", i);
    T_CHECK(pathidx_get(idx, p->k[i].s, p->k[i].len) == k, "get #%zu after put", i);
    if (!p->in[i])
        p->count++;
    p->in[i] = 1;
    p->val[i] = v;
}

/* Deletes pool key i, checking the result against the reference. */
static void t_pool_del(pathidx_t *idx, t_pool *p, size_t i)
{
    void *old = (void *)1;
    int rc = pathidx_del(idx, p->k[i].s, p->k[i].len, &old);
    if (p->in[i]) {
        T_CHECK(rc == 0 && old == p->val[i], "del #%zu: rc %d or wrong old value", i, rc);
        p->in[i] = 0;
        p->count--;
    } else {
        T_CHECK(rc == SDB_ENOTFOUND, "del of absent #%zu returned %d", i, rc);
        T_CHECK(old == (void *)1, "del of absent #%zu wrote *old", i);
    }
    T_CHECK(pathidx_get(idx, p->k[i].s, p->k[i].len) == NULL, "get #%zu after del", i);
}

/* Builds a pool of keys "<prefix><n>" for n in 0..count-1, zero-padded. */
static void t_pool_numbered(t_pool *p, const char *prefix, size_t count, size_t step)
{
    t_str *k = malloc(count * sizeof(*k));
    char buf[64];
    ck_assert_ptr_nonnull(k);
    for (size_t i = 0; i < count; i++) {
        int n = snprintf(buf, sizeof buf, "%s%07zu", prefix, i * step);
        k[i] = t_dup(buf, (size_t)n);
    }
    t_pool_init(p, k, count);
}

/* ---- Basic operations ------------------------------------------------------------- */

START_TEST(test_empty)
{
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    void *old = (void *)1;

    ck_assert_ptr_nonnull(idx);
    ck_assert_uint_eq(pathidx_count(idx), 0);
    ck_assert_uint_gt(pathidx_mem_bytes(idx), 0);
    ck_assert_ptr_null(pathidx_get(idx, "/a", 2));
    ck_assert_int_eq(pathidx_del(idx, "/a", 2, &old), SDB_ENOTFOUND);
    ck_assert_ptr_eq(old, (void *)1);
    pathidx_seek(idx, &it, NULL, 0, 1);
    ck_assert_ptr_null(pathidx_next(&it));
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "/a", 2, 0);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "\xff\xff", 2, 1);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_free(idx);
    pathidx_free(NULL);
}
END_TEST

START_TEST(test_one_key)
{
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    pathidx_key_t *k = NULL, *k2;
    void *old = (void *)1;
    size_t mem0 = pathidx_mem_bytes(idx);

    ck_assert_int_eq(pathidx_put(idx, "/m", 2, T_VAL(1), &k, &old), 0);
    ck_assert_ptr_null(old);
    ck_assert_ptr_nonnull(k);
    ck_assert_uint_eq(k->len, 2);
    ck_assert_str_eq(k->bytes, "/m");
    ck_assert_ptr_eq(k->val, T_VAL(1));
    ck_assert_uint_eq(pathidx_count(idx), 1);
    ck_assert_uint_gt(pathidx_mem_bytes(idx), mem0);

    /* Seeks before, at and after the only key. */
    pathidx_seek(idx, &it, NULL, 0, 0);
    ck_assert_ptr_eq(pathidx_next(&it), k);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "/", 1, 1);
    ck_assert_ptr_eq(pathidx_next(&it), k);
    pathidx_seek(idx, &it, "/m", 2, 1);
    ck_assert_ptr_eq(pathidx_next(&it), k);
    pathidx_seek(idx, &it, "/m", 2, 0);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "/m\x01", 3, 1);
    ck_assert_ptr_null(pathidx_next(&it));

    /* Lookups of near misses: a prefix, an extension, another last byte. */
    ck_assert_ptr_eq(pathidx_get(idx, "/m", 2), k);
    ck_assert_ptr_null(pathidx_get(idx, "/", 1));
    ck_assert_ptr_null(pathidx_get(idx, "/mm", 3));
    ck_assert_ptr_null(pathidx_get(idx, "/n", 2));

    ck_assert_int_eq(pathidx_put(idx, "/m", 2, T_VAL(2), &k2, &old), 0);
    ck_assert_ptr_eq(old, T_VAL(1));
    ck_assert_ptr_eq(k2, k);
    ck_assert_uint_eq(pathidx_count(idx), 1);

    ck_assert_int_eq(pathidx_del(idx, "/m", 2, &old), 0);
    ck_assert_ptr_eq(old, T_VAL(2));
    ck_assert_uint_eq(pathidx_count(idx), 0);
    ck_assert_uint_eq(pathidx_mem_bytes(idx), mem0);
    ck_assert_ptr_null(pathidx_get(idx, "/m", 2));
    pathidx_seek(idx, &it, NULL, 0, 1);
    ck_assert_ptr_null(pathidx_next(&it));
    ck_assert_int_eq(pathidx_del(idx, "/m", 2, NULL), SDB_ENOTFOUND);
    pathidx_free(idx);
}
END_TEST

START_TEST(test_put_get_replace_del)
{
    t_pool p;
    pathidx_t *idx = pathidx_new();
    size_t i, j;

    t_pool_numbered(&p, "/docs/", 5000, 3);
    for (i = 0; i < p.n; i++)
        t_pool_put(idx, &p, i, T_VAL(i));
    ck_assert_uint_eq(pathidx_count(idx), 5000);
    /* Replacing keeps the count and the entry, and returns the old value. */
    for (i = 0; i < p.n; i += 7)
        t_pool_put(idx, &p, i, T_VAL(i + 100000));
    ck_assert_uint_eq(pathidx_count(idx), 5000);
    for (i = 0; i < p.n; i++) {
        pathidx_key_t *k = pathidx_get(idx, p.k[i].s, p.k[i].len);
        T_CHECK(k != NULL && k->val == p.val[i], "get #%zu", i);
    }
    /* Absent neighbours: numbers that are not multiples of 3. */
    ck_assert_ptr_null(pathidx_get(idx, "/docs/0000001", 13));
    ck_assert_ptr_null(pathidx_get(idx, "/docs/000000", 12));
    ck_assert_int_eq(pathidx_del(idx, "/docs/0000002", 13, NULL), SDB_ENOTFOUND);
    /* Delete every other key, then again (ENOTFOUND), and check the rest. */
    for (j = 0; j < 2; j++)
        for (i = 0; i < p.n; i += 2)
            t_pool_del(idx, &p, i);
    ck_assert_uint_eq(pathidx_count(idx), 2500);
    t_expect_same(idx, &p);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_key_entries_stable)
{
    /* Entries returned by put stay at the same address with the same bytes
     * while thousands of other keys force splits, merges and rehashes. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    pathidx_key_t *first[100];
    size_t i;

    t_pool_numbered(&p, "/s/", 20000, 1);
    for (i = 0; i < 100; i++) {
        int rc = pathidx_put(idx, p.k[i * 200].s, p.k[i * 200].len, T_VAL(i), &first[i], NULL);
        ck_assert_int_eq(rc, 0);
    }
    for (i = 0; i < p.n; i++)
        if (i % 200 != 0)
            T_CHECK(pathidx_put(idx, p.k[i].s, p.k[i].len, NULL, NULL, NULL) == 0, "put %zu", i);
    for (i = 0; i < p.n; i++)
        if (i % 200 != 0 && i % 3 != 0)
            T_CHECK(pathidx_del(idx, p.k[i].s, p.k[i].len, NULL) == 0, "del %zu", i);
    for (i = 0; i < 100; i++) {
        ck_assert_ptr_eq(pathidx_get(idx, p.k[i * 200].s, p.k[i * 200].len), first[i]);
        ck_assert_uint_eq(first[i]->len, p.k[i * 200].len);
        ck_assert_str_eq(first[i]->bytes, p.k[i * 200].s);
        ck_assert_ptr_eq(first[i]->val, T_VAL(i));
    }
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

/* ---- Ordering --------------------------------------------------------------------- */

START_TEST(test_byte_order)
{
    /* Expected order, smallest first: raw unsigned bytes, prefixes first. */
    static const char *const want[] = {
        "\x01", "/", "/a", "/a\x01", "/a/", "/a/b", "/a0", "/aa", "/a\x7f", "/a\x80",
        "/a\xc3\xa9", "/a\xff", "/a\xff\xff", "A", "a", "\x7f", "\x80", "\xff",
    };
    size_t n = sizeof want / sizeof want[0], i;
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    pathidx_key_t *k;

    for (i = n; i-- > 0;) /* reverse order */
        ck_assert_int_eq(pathidx_put(idx, want[i], strlen(want[i]), T_VAL(i), NULL, NULL), 0);
    pathidx_seek(idx, &it, NULL, 0, 1);
    for (i = 0; i < n; i++) {
        k = pathidx_next(&it);
        ck_assert_ptr_nonnull(k);
        ck_assert_msg(strcmp(k->bytes, want[i]) == 0, "position %zu: wrong key", i);
        ck_assert_ptr_eq(k->val, T_VAL(i));
    }
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_free(idx);
}
END_TEST

START_TEST(test_order_random_keys)
{
    /* 30,000 random keys (high bytes, shared prefixes, prefixes of other
     * keys) inserted in random order iterate in the reference's order. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    t_rng r = {0x5eed0001};
    size_t *perm, i;

    t_pool_random(&p, 30000, 24, 42);
    ck_assert_uint_gt(p.n, 20000);
    perm = malloc(p.n * sizeof(*perm));
    ck_assert_ptr_nonnull(perm);
    for (i = 0; i < p.n; i++)
        perm[i] = i;
    for (i = p.n; i > 1; i--) {
        size_t j = t_below(&r, i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (i = 0; i < p.n; i++)
        t_pool_put(idx, &p, perm[i], T_VAL(perm[i]));
    t_expect_same(idx, &p);
    /* Every key seeks to itself inclusive and to its successor exclusive. */
    for (i = 0; i < p.n; i += 13) {
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 1, 2);
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 0, 2);
    }
    free(perm);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_long_keys)
{
    /* Keys of SDB_MAX_PATH bytes that differ only in their last byte, and
     * their prefixes of SDB_MAX_PATH - 1 bytes. */
    static char buf[SDB_MAX_PATH];
    t_str *k = malloc(40 * sizeof(*k));
    pathidx_t *idx = pathidx_new();
    t_pool p;
    size_t i;

    ck_assert_ptr_nonnull(k);
    memset(buf, 'x', sizeof buf);
    for (i = 0; i < 20; i++) {
        buf[SDB_MAX_PATH - 1] = (char)(0x70 + i * 7);
        buf[SDB_MAX_PATH - 2] = (char)('a' + i % 3);
        k[2 * i] = t_dup(buf, SDB_MAX_PATH);
        k[2 * i + 1] = t_dup(buf, SDB_MAX_PATH - 1);
    }
    t_pool_init(&p, k, 40);
    ck_assert_uint_eq(p.n, 23); /* 20 full keys, 3 distinct prefixes */
    for (i = p.n; i-- > 0;)
        t_pool_put(idx, &p, i, T_VAL(i));
    t_expect_same(idx, &p);
    for (i = 0; i < p.n; i++) {
        T_CHECK(pathidx_get(idx, p.k[i].s, p.k[i].len) != NULL, "get #%zu", i);
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 0, 3);
    }
    for (i = 0; i < p.n; i += 2)
        t_pool_del(idx, &p, i);
    t_expect_same(idx, &p);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

/* ---- Seeks ------------------------------------------------------------------------ */

START_TEST(test_seek_cases)
{
    /* Keys /k/0000000, /k/0000010, ... /k/0049990 (5,000 keys). */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    pathidx_key_t *k;
    size_t i;

    t_pool_numbered(&p, "/k/", 5000, 10);
    for (i = 0; i < p.n; i++)
        t_pool_put(idx, &p, i, T_VAL(i));

    /* Existing keys: inclusive yields the key, exclusive the next one. */
    pathidx_seek(idx, &it, "/k/0012340", 10, 1);
    k = pathidx_next(&it);
    ck_assert_str_eq(k->bytes, "/k/0012340");
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012350");
    pathidx_seek(idx, &it, "/k/0012340", 10, 0);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012350");
    /* Missing keys: both yield the next key. */
    pathidx_seek(idx, &it, "/k/0012345", 10, 1);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012350");
    pathidx_seek(idx, &it, "/k/0012345", 10, 0);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012350");
    /* A prefix of a key sorts before it; an extension after it. */
    pathidx_seek(idx, &it, "/k/001234", 9, 0);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012340");
    pathidx_seek(idx, &it, "/k/0012340\x01", 11, 1);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0012350");
    /* Before the first key. */
    pathidx_seek(idx, &it, "/", 1, 0);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0000000");
    pathidx_seek(idx, &it, NULL, 0, 0);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0000000");
    /* The last key, and after it. */
    pathidx_seek(idx, &it, "/k/0049990", 10, 1);
    ck_assert_str_eq(pathidx_next(&it)->bytes, "/k/0049990");
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "/k/0049990", 10, 0);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "/k/\xff", 4, 1);
    ck_assert_ptr_null(pathidx_next(&it));
    pathidx_seek(idx, &it, "0", 1, 1);
    ck_assert_ptr_null(pathidx_next(&it));
    /* A seek followed by a long scan crosses many leaves in order. */
    pathidx_seek(idx, &it, "/k/0000005", 10, 1);
    for (i = 1; i < p.n; i++) {
        k = pathidx_next(&it);
        T_CHECK(k != NULL && k->val == T_VAL(i), "scan position %zu", i);
    }
    ck_assert_ptr_null(pathidx_next(&it));
    /* Every key and every gap between keys, both ways, against the pool. */
    for (i = 0; i < p.n; i++) {
        char gap[32];
        int n = snprintf(gap, sizeof gap, "/k/%07zu", i * 10 + 5);
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 1, 2);
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 0, 2);
        t_expect_seek(idx, &p, gap, (size_t)n, i % 2, 2);
    }
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

/* ---- Workloads -------------------------------------------------------------------- */

START_TEST(test_random_workload)
{
    /* 200,000 operations with a fixed seed over a pool of 16,000 keys, in
     * four phases that grow the index to ~12k keys and shrink it to ~1k
     * (splits, borrows and merges at every level).  Each operation's result
     * is checked; every 4,000 operations the full iteration and count. */
    t_pool p, probes;
    pathidx_t *idx = pathidx_new();
    t_rng r = {0xc0ffee};
    size_t op, checks = 0, max_count = 0, min_count_after_max = SIZE_MAX;

    t_pool_random(&p, 16000, 20, 7);
    t_pool_random(&probes, 2000, 20, 8); /* mostly keys outside the pool */
    for (op = 0; op < 200000; op++) {
        int phase = (int)(op / 50000) % 2; /* 0: mostly puts, 1: mostly deletes */
        uint64_t x = t_rand(&r);
        size_t i = (size_t)(x >> 20) % p.n;
        unsigned dice = (unsigned)(x % 100);
        unsigned put_pct = phase == 0 ? 70 : 4;

        if (dice < put_pct) {
            t_pool_put(idx, &p, i, T_VAL(op));
        } else if (dice < 92) {
            t_pool_del(idx, &p, i);
        } else if (dice < 96) {
            pathidx_key_t *k = pathidx_get(idx, p.k[i].s, p.k[i].len);
            T_CHECK((k != NULL ? k->val : NULL) == (p.in[i] ? p.val[i] : NULL), "get #%zu", i);
        } else {
            const t_str *s = dice < 98 ? &p.k[i] : &probes.k[i % probes.n];
            t_expect_seek(idx, &p, s->s, s->len, (int)(x >> 8) & 1, 3);
        }
        if (p.count > max_count)
            max_count = p.count;
        if (op > 150000 && p.count < min_count_after_max)
            min_count_after_max = p.count;
        if (op % 4000 == 3999) {
            t_expect_same(idx, &p);
            checks++;
        }
    }
    t_expect_same(idx, &p);
    ck_assert_uint_eq(checks, 50);
    /* The phases must really have grown and shrunk the tree. */
    ck_assert_uint_gt(max_count, 10000);
    ck_assert_uint_lt(min_count_after_max, 2000);
    pathidx_free(idx);
    t_pool_free(&p);
    t_pool_free(&probes);
}
END_TEST

START_TEST(test_delete_all_reinsert)
{
    /* Fill, delete everything in random order (checking along the way),
     * then reinsert in another order: the index must work as new and its
     * memory must return exactly to that of an empty index. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    t_rng r = {99};
    size_t mem_empty = pathidx_mem_bytes(idx), i, left, round;

    t_pool_random(&p, 40000, 30, 3);
    for (round = 0; round < 2; round++) {
        for (i = 0; i < p.n; i++)
            t_pool_put(idx, &p, round ? p.n - 1 - i : i, T_VAL(i + round));
        t_expect_same(idx, &p);
        ck_assert_uint_gt(pathidx_mem_bytes(idx), mem_empty);
        for (left = p.n; left > 0;) {
            i = t_below(&r, p.n);
            i = t_pool_next_in(&p, i);
            if (i == p.n)
                i = t_pool_next_in(&p, 0);
            t_pool_del(idx, &p, i);
            left--;
            if (left % 5000 == 0)
                t_expect_same(idx, &p);
        }
        ck_assert_uint_eq(pathidx_count(idx), 0);
        ck_assert_uint_eq(pathidx_mem_bytes(idx), mem_empty);
        t_expect_same(idx, &p);
    }
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_ordered_loads)
{
    /* Ascending and descending loads (the append splits), then deleting runs
     * from the front, the back and the middle. */
    for (int dir = 0; dir < 2; dir++) {
        t_pool p;
        pathidx_t *idx = pathidx_new();
        size_t i, n = 30000;

        t_pool_numbered(&p, dir ? "/desc/" : "/asc/", n, 1);
        for (i = 0; i < n; i++)
            t_pool_put(idx, &p, dir ? n - 1 - i : i, T_VAL(i));
        t_expect_same(idx, &p);
        for (i = 0; i < n; i += 97)
            t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 0, 2);
        for (i = 0; i < 5000; i++)
            t_pool_del(idx, &p, i);
        for (i = n - 5000; i < n; i++)
            t_pool_del(idx, &p, i);
        for (i = 10000; i < 20000; i++)
            t_pool_del(idx, &p, i);
        t_expect_same(idx, &p);
        for (i = 0; i < n; i += 101)
            t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 1, 2);
        pathidx_free(idx);
        t_pool_free(&p);
    }
}
END_TEST

START_TEST(test_emptied_first_leaf)
{
    /* An ascending load of 6,144 keys fills every leaf.  Then, on a fresh
     * copy for each leaf, its next-to-last key r is deleted and put again,
     * and a key just after r is put: that continues an ascending run in a
     * full leaf, which is split at the new key and leaves the old last key
     * alone in a new leaf.  At one of these leaves the full inner node above
     * splits too, so that the one-key leaf becomes the first child of a new
     * inner node and its key a separator in the root.  Deleting that key
     * empties a leaf whose minimum is a separator higher up.  (The places
     * assume 64 keys per leaf and 64 children per inner node, as in
     * pathidx.c.)  Then a key of the same length is put elsewhere, reusing
     * the freed memory, so that a dangling separator would misroute the
     * seeks checked next (those into the subtree after the gap). */
    const size_t n = 6144, fan = 64;
    t_str *k = malloc((2 * n + 1) * sizeof(*k));
    char buf[32];
    t_pool p;
    size_t i, leaf, far;

    T_CHECK(k != NULL, "out of memory");
    for (i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "/g/%07zu0", i);
        k[2 * i] = t_dup(buf, 11);
        snprintf(buf, sizeof buf, "/g/%07zu5", i); /* the gap after key i */
        k[2 * i + 1] = t_dup(buf, 11);
    }
    k[2 * n] = t_dup("/h/00000000", 11);
    t_pool_init(&p, k, 2 * n + 1);
    far = 2 * n;
    for (leaf = 0; leaf < n / fan; leaf++) {
        pathidx_t *idx = pathidx_new();
        size_t r = 2 * (leaf * fan + fan - 2), gap = r + 1, last = r + 2;
        for (i = 0; i < n; i++)
            t_pool_put(idx, &p, 2 * i, T_VAL(i));
        t_pool_del(idx, &p, r);
        t_pool_put(idx, &p, r, T_VAL(r));
        t_pool_put(idx, &p, gap, T_VAL(gap));
        t_pool_del(idx, &p, last);
        t_pool_put(idx, &p, far, T_VAL(far));
        for (i = r; i < p.n && i < r + 600; i += 37)
            t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 1, 3);
        t_expect_seek(idx, &p, p.k[last].s, p.k[last].len, 1, 3);
        t_expect_seek(idx, &p, p.k[last].s, p.k[last].len, 0, 3);
        t_expect_same(idx, &p);
        t_pool_del(idx, &p, far);
        for (i = 0; i < p.n; i++)
            p.in[i] = 0;
        p.count = 0;
        pathidx_free(idx);
    }
    t_pool_free(&p);
}
END_TEST

START_TEST(test_ordered_runs_fill)
{
    /* Ordered runs into the gaps between existing keys must leave leaves
     * nearly full: blocks of 1,000 keys, first every fourth block, then the
     * other blocks, ascending or descending.  The nodes and buckets the runs
     * add beyond their key entries: about 8.3 B/key of full leaves plus
     * 6.6 B/key of bucket growth, but over 23 B/key if the runs split
     * leaves in half. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    size_t n = 40000, text = 0, i, b, mem0, over;

    t_pool_numbered(&p, "/runs/", n, 1);
    for (b = 0; b < n / 1000; b += 4)
        for (i = b * 1000; i < (b + 1) * 1000; i++)
            t_pool_put(idx, &p, i, T_VAL(i));
    mem0 = pathidx_mem_bytes(idx);
    for (b = 0; b < n / 1000; b++) {
        if (b % 4 == 0)
            continue;
        for (i = 0; i < 1000; i++) {
            size_t at = b * 1000 + (b % 2 ? i : 999 - i);
            t_pool_put(idx, &p, at, T_VAL(at));
            text += p.k[at].len;
        }
    }
    t_expect_same(idx, &p);
    over = pathidx_mem_bytes(idx) - mem0 - text - 30000 * (sizeof(pathidx_key_t) + 1);
    ck_assert_msg(over < 30000 * 19, "%.1f bytes/key of nodes and buckets",
                  (double)over / 30000.0);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_mem_bytes)
{
    /* The accounting covers at least every key entry and text, grows with
     * inserts, ignores value replacement and shrinks with deletes. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    size_t mem0 = pathidx_mem_bytes(idx), text = 0, i, mem_full, mem_half;

    t_pool_numbered(&p, "/usr/share/doc/package-with-a-long-name/", 20000, 1);
    for (i = 0; i < p.n; i++) {
        t_pool_put(idx, &p, i, NULL);
        text += p.k[i].len;
    }
    mem_full = pathidx_mem_bytes(idx);
    ck_assert_uint_ge(mem_full, mem0 + text + p.n * (sizeof(pathidx_key_t) + 1));
    /* Plus at least one leaf slot per key, and a sane upper bound (a leak in
     * the accounting would exceed it). */
    ck_assert_uint_ge(mem_full, mem0 + text + p.n * (sizeof(pathidx_key_t) + 1 + sizeof(void *)));
    ck_assert_uint_le(mem_full, mem0 + text + p.n * (sizeof(pathidx_key_t) + 1 + 8 * sizeof(void *)));
    for (i = 0; i < p.n; i++)
        t_pool_put(idx, &p, i, T_VAL(i));
    ck_assert_uint_eq(pathidx_mem_bytes(idx), mem_full);
    for (i = 0; i < p.n; i += 2)
        t_pool_del(idx, &p, i);
    mem_half = pathidx_mem_bytes(idx);
    ck_assert_uint_lt(mem_half, mem_full - text / 2);
    for (i = 1; i < p.n; i += 2)
        t_pool_del(idx, &p, i);
    ck_assert_uint_eq(pathidx_mem_bytes(idx), mem0);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_key_classes)
{
    /* Key entries of every length from 1 to 700 bytes (the chunked size
     * classes end at 512-byte entries, longer ones are malloc'd), plus
     * SDB_MAX_PATH; bytes 0x00 and 0xff inside; loaded in a scrambled
     * order, half deleted, reinserted with new values (the freed entries
     * are reused), and each insert accounted at its 8-byte class. */
    size_t nlen = 700, n = 2 * nlen + 2, i;
    t_str *k = malloc(n * sizeof(*k));
    char *buf = malloc(SDB_MAX_PATH);
    t_pool p;
    pathidx_t *idx = pathidx_new();

    ck_assert(k != NULL && buf != NULL && idx != NULL);
    for (i = 0; i < nlen; i++) {
        /* two keys per length: all 0x00 after a '/', and all 0xff */
        memset(buf, 0, i + 1);
        buf[0] = '/';
        k[2 * i] = t_dup(buf, i + 1);
        memset(buf, 0xff, i + 1);
        k[2 * i + 1] = t_dup(buf, i + 1);
    }
    memset(buf, 'x', SDB_MAX_PATH);
    k[n - 2] = t_dup(buf, SDB_MAX_PATH);
    buf[SDB_MAX_PATH - 1] = '\0';
    k[n - 1] = t_dup(buf, SDB_MAX_PATH);
    t_pool_init(&p, k, n);
    ck_assert_uint_eq(p.n, n);
    for (int round = 0; round < 2; round++) {
        for (i = 0; i < p.n; i++) {
            size_t at = (i * 613) % p.n, mem0 = pathidx_mem_bytes(idx);
            size_t sz = offsetof(pathidx_key_t, bytes) + p.k[at].len + 1;
            if (p.in[at])
                continue;
            t_pool_put(idx, &p, at, T_VAL(at + (size_t)round));
            sz = sz <= 512 ? (sz + 7) / 8 * 8 : sz;
            /* exactly the class (or exact size), plus a node on a split */
            T_CHECK(pathidx_mem_bytes(idx) - mem0 == sz || pathidx_mem_bytes(idx) - mem0 > 256,
                    "key of %zu bytes accounted as %zu, expected %zu", p.k[at].len,
                    pathidx_mem_bytes(idx) - mem0, sz);
        }
        t_expect_same(idx, &p);
        t_expect_seek(idx, &p, "/", 1, 0, 20);
        t_expect_seek(idx, &p, "\xff\xff\xff", 3, 1, 5);
        t_expect_seek(idx, &p, "x", 1, 1, 5);
        for (i = 0; i < p.n; i += 2)
            t_pool_del(idx, &p, i);
        t_expect_same(idx, &p);
    }
    pathidx_free(idx);
    t_pool_free(&p);
    free(buf);
}
END_TEST

START_TEST(test_reserve)
{
    /* pathidx_reserve(n) sizes the bucket array for n keys up front (to
     * the size that loading them grows it to), so that the load rehashes
     * nothing; the index behaves the same. */
    t_pool p;
    pathidx_t *idx = pathidx_new(), *ref = pathidx_new();
    size_t i, empty = pathidx_mem_bytes(ref);

    t_pool_numbered(&p, "/var/lib/dpkg/info/", 50000, 3);
    pathidx_reserve(idx, p.n);
    /* 50,000 keys at 2 per bucket: 32768 buckets (16 at first) */
    ck_assert_uint_eq(pathidx_mem_bytes(idx) - empty, (32768 - 16) * sizeof(void *));
    pathidx_reserve(idx, 10);   /* never shrinks */
    ck_assert_uint_eq(pathidx_mem_bytes(idx) - empty, (32768 - 16) * sizeof(void *));
    for (i = 0; i < p.n; i++) {
        size_t at = (i * 7919) % p.n;
        t_pool_put(idx, &p, at, T_VAL(at));
        ck_assert_int_eq(pathidx_put(ref, p.k[at].s, p.k[at].len, T_VAL(at), NULL, NULL), 0);
    }
    t_expect_same(idx, &p);
    ck_assert_uint_eq(pathidx_mem_bytes(idx), pathidx_mem_bytes(ref));
    pathidx_free(idx);
    pathidx_free(ref);
    t_pool_free(&p);
}
END_TEST

START_TEST(test_peek)
{
    /* pathidx_peek(it, a) is the key that a more pathidx_next() calls
     * later return, across leaf boundaries, and NULL past the end. */
    t_pool p;
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    size_t i, n = 0;

    t_pool_random(&p, 3000, 12, 5);
    for (i = 0; i < p.n; i++)
        if (i % 3 != 1)
            t_pool_put(idx, &p, i, T_VAL(i));
    for (i = 0; i < p.n; i += 97) {
        pathidx_seek(idx, &it, p.k[i].s, p.k[i].len, (int)(i % 2));
        size_t at = t_pool_next_in(&p, t_pool_bound(&p, p.k[i].s, p.k[i].len, (int)(i % 2)));
        for (int step = 0; step < 150; step++) {
            size_t want = at;
            for (unsigned a = 0; a < 140; a++) {
                pathidx_key_t *k = pathidx_peek(&it, a);
                if (want >= p.n) {
                    T_CHECK(k == NULL, "peek %u past the end", a);
                    break;
                }
                t_expect_key(&p, want, k, "peek");
                want = t_pool_next_in(&p, want + 1);
                n++;
            }
            pathidx_key_t *k = pathidx_next(&it);
            if (at >= p.n) {
                T_CHECK(k == NULL, "next past the end");
                break;
            }
            t_expect_key(&p, at, k, "next after peeks");
            at = t_pool_next_in(&p, at + 1);
        }
    }
    ck_assert_uint_gt(n, 100000);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

/* ---- The real paths sample ------------------------------------------------------ */

#define T_SAMPLE "paths-sample.txt.gz"

/* Opens tests/data/paths-sample.txt.gz from the repository root (where
 * `make test` runs), else from the directory $SDB_TEST_DATA. */
static gzFile t_open_sample(char *name, size_t cap)
{
    const char *dir = getenv("SDB_TEST_DATA");
    gzFile f;

    snprintf(name, cap, "tests/data/%s", T_SAMPLE);
    f = gzopen(name, "rb");
    if (f == NULL && dir != NULL) {
        snprintf(name, cap, "%s/%s", dir, T_SAMPLE);
        f = gzopen(name, "rb");
    }
    ck_assert_msg(f != NULL, "cannot open tests/data/" T_SAMPLE
                  " (run from the repository root or set SDB_TEST_DATA)");
    return f;
}

/* Reads the sample's lines (without newline) into a pool; returns the lines
 * in file order through *lines / *nlines (the pool owns the strings). */
static void t_load_sample(t_pool *p, t_str **lines, size_t *nlines)
{
    char name[512], buf[SDB_MAX_PATH + 2];
    gzFile f = t_open_sample(name, sizeof name);
    size_t n = 0, cap = 16384;
    t_str *k = malloc(cap * sizeof(*k)), *copy;

    ck_assert_ptr_nonnull(k);
    while (gzgets(f, buf, (int)sizeof buf) != NULL) {
        size_t len = strlen(buf);
        if (len > 0 && buf[len - 1] == '\n')
            buf[--len] = '\0';
        T_CHECK(len > 0 && len <= SDB_MAX_PATH, "%s: bad line %zu", name, n + 1);
        if (n == cap) {
            cap *= 2;
            k = realloc(k, cap * sizeof(*k));
            ck_assert_ptr_nonnull(k);
        }
        k[n++] = t_dup(buf, len);
    }
    gzclose(f);
    copy = malloc(n * sizeof(*copy));
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, k, n * sizeof(*copy));
    t_pool_init(p, k, n);
    *lines = copy;
    *nlines = n;
}

START_TEST(test_real_paths)
{
    static const char prefix[] = "/usr/share/doc/";
    const size_t plen = sizeof prefix - 1;
    t_pool p;
    t_str *lines;
    size_t nlines, i, j, want, got;
    pathidx_t *idx = pathidx_new();
    pathidx_iter_t it;
    pathidx_key_t *k;
    t_rng r = {2024};
    int high = 0;

    t_load_sample(&p, &lines, &nlines);
    ck_assert_uint_gt(nlines, 10000);
    ck_assert_uint_eq(p.n, nlines); /* the sample has no duplicates */
    for (i = 0; i < nlines; i++)
        for (j = 0; j < lines[i].len; j++)
            high |= (unsigned char)lines[i].s[j] >= 0x80;
    ck_assert_msg(high, "the sample should hold a non-ASCII path");
    /* Insert in shuffled order. */
    for (i = nlines; i > 1; i--) {
        size_t x = t_below(&r, i);
        t_str t = lines[i - 1];
        lines[i - 1] = lines[x];
        lines[x] = t;
    }
    for (i = 0; i < nlines; i++) {
        size_t at = t_pool_bound(&p, lines[i].s, lines[i].len, 1);
        t_pool_put(idx, &p, at, T_VAL(at));
    }
    t_expect_same(idx, &p);

    /* Prefix scan: every key under /usr/share/doc/, as a linear count says. */
    for (want = 0, i = 0; i < p.n; i++)
        want += p.k[i].len >= plen && memcmp(p.k[i].s, prefix, plen) == 0;
    ck_assert_uint_gt(want, 100);
    pathidx_seek(idx, &it, prefix, plen, 1);
    for (got = 0; (k = pathidx_next(&it)) != NULL && k->len >= plen
                  && memcmp(k->bytes, prefix, plen) == 0;)
        got++;
    ck_assert_uint_eq(got, want);

    /* Delimiter listing of /usr/share/doc/: the files directly in it and its
     * subdirectories, with one seek per subdirectory that skips the block
     * of keys starting with "<dir>/" by seeking to "<dir>0" ('0' follows
     * '/').  The reference counts them linearly (such a block is contiguous
     * in byte order). */
    {
        static char last[SDB_MAX_PATH + 1];
        size_t want_dirs = 0, want_files = 0, got_dirs = 0, got_files = 0, lastlen = 0;
        for (i = 0; i < p.n; i++) {
            const char *s = p.k[i].s, *slash;
            size_t dl;
            if (p.k[i].len <= plen || memcmp(s, prefix, plen) != 0)
                continue;
            slash = memchr(s + plen, '/', p.k[i].len - plen);
            if (slash == NULL) {
                want_files++;
                continue;
            }
            dl = (size_t)(slash - s);
            if (dl != lastlen || memcmp(s, last, dl) != 0) {
                want_dirs++;
                memcpy(last, s, dl);
                lastlen = dl;
            }
        }
        pathidx_seek(idx, &it, prefix, plen, 0);
        while ((k = pathidx_next(&it)) != NULL && k->len > plen
               && memcmp(k->bytes, prefix, plen) == 0) {
            const char *slash = memchr(k->bytes + plen, '/', k->len - plen);
            size_t dl;
            if (slash == NULL) {
                got_files++;
                continue;
            }
            got_dirs++;
            dl = (size_t)(slash - k->bytes);
            memcpy(last, k->bytes, dl);
            last[dl] = '0';
            pathidx_seek(idx, &it, last, dl + 1, 1);
        }
        ck_assert_uint_gt(want_dirs, 20);
        ck_assert_uint_gt(want_files, 20);
        ck_assert_uint_eq(got_dirs, want_dirs);
        ck_assert_uint_eq(got_files, want_files);
    }

    /* Delete every third path, check, then everything. */
    for (i = 0; i < p.n; i += 3)
        t_pool_del(idx, &p, i);
    t_expect_same(idx, &p);
    for (i = 0; i < p.n; i += 211)
        t_expect_seek(idx, &p, p.k[i].s, p.k[i].len, 1, 5);
    for (i = 0; i < p.n; i++)
        if (p.in[i])
            t_pool_del(idx, &p, i);
    ck_assert_uint_eq(pathidx_count(idx), 0);
    t_expect_same(idx, &p);
    free(lines);
    pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

/* ---- Fault injection ---------------------------------------------------------------
 *
 * A second copy of pathidx.c, compiled here with malloc and calloc replaced
 * by t_fault_malloc / t_fault_calloc and its public functions renamed
 * fs_pathidx_*.  t_alloc_budget allocations succeed, then every one fails
 * (-1: no limit).  The copy has the same struct layout, so the ordinary
 * read functions (get, count, seek, next, mem_bytes) work on its indexes.
 */
static long t_alloc_budget = -1;
static long t_alloc_calls;

static int t_alloc_ok(void)
{
    t_alloc_calls++;
    if (t_alloc_budget == 0)
        return 0;
    if (t_alloc_budget > 0)
        t_alloc_budget--;
    return 1;
}

static void *t_fault_malloc(size_t n)
{
    return t_alloc_ok() ? malloc(n) : NULL;
}

static void *t_fault_calloc(size_t n, size_t m)
{
    return t_alloc_ok() ? calloc(n, m) : NULL;
}

#define malloc(n) t_fault_malloc(n)
#define calloc(n, m) t_fault_calloc(n, m)
#define pathidx_new fs_pathidx_new
#define pathidx_free fs_pathidx_free
#define pathidx_get fs_pathidx_get
#define pathidx_put fs_pathidx_put
#define pathidx_del fs_pathidx_del
#define pathidx_count fs_pathidx_count
#define pathidx_mem_bytes fs_pathidx_mem_bytes
#define pathidx_seek fs_pathidx_seek
#define pathidx_next fs_pathidx_next
#define pathidx_reserve fs_pathidx_reserve
#define pathidx_prefetch fs_pathidx_prefetch
#define pathidx_peek fs_pathidx_peek
#include "engine/pathidx.c"
#undef malloc
#undef calloc
#undef pathidx_new
#undef pathidx_free
#undef pathidx_get
#undef pathidx_put
#undef pathidx_del
#undef pathidx_count
#undef pathidx_mem_bytes
#undef pathidx_seek
#undef pathidx_next
#undef pathidx_reserve
#undef pathidx_prefetch
#undef pathidx_peek

START_TEST(test_enomem_new)
{
    /* Every allocation of pathidx_new failing in turn gives NULL (and no
     * leak: the sanitizer build checks that). */
    long fail_at;
    pathidx_t *idx = NULL;

    for (fail_at = 0; fail_at < 10; fail_at++) {
        t_alloc_budget = fail_at;
        idx = fs_pathidx_new();
        t_alloc_budget = -1;
        if (idx != NULL)
            break;
    }
    ck_assert_msg(idx != NULL && fail_at == 3, "pathidx_new made %ld allocations, expected 3",
                  fail_at);
    ck_assert_uint_eq(pathidx_count(idx), 0);
    fs_pathidx_free(idx);
}
END_TEST

START_TEST(test_enomem_put)
{
    /* Each of 12,000 inserts is first tried with 0, 1, 2, ... allocations
     * allowed until it succeeds.  Every failure must return SDB_ENOMEM and
     * leave the index unchanged: count, memory, the key still absent and,
     * when a node allocation failed (a split was under way), the full
     * iteration.  Deletes and replaces must succeed with no memory at all. */
    t_pool p;
    pathidx_t *idx;
    size_t i, n_fail = 0, n_node_fail = 0, resize_skips = 0, n_needy = 0, n_split = 0;
    long max_fail_at = 0;

    t_pool_random(&p, 14000, 16, 11);
    idx = fs_pathidx_new();
    ck_assert_ptr_nonnull(idx);
    ck_assert_uint_ne(p.n % 7919, 0);
    for (i = 0; i < p.n && p.count < 12000; i++) {
        size_t at = (i * 7919) % p.n; /* a permutation of the pool */
        size_t count0 = pathidx_count(idx), mem0 = pathidx_mem_bytes(idx);
        long fail_at;
        int rc = SDB_ENOMEM;

        if (p.in[at])
            continue;
        if (i % 4 == 3) {
            /* Unlimited: lets the hash table grow now and then. */
            t_pool_put(idx, &p, at, T_VAL(at));
            continue;
        }
        for (fail_at = 0; rc != 0; fail_at++) {
            t_alloc_budget = fail_at;
            t_alloc_calls = 0;
            rc = fs_pathidx_put(idx, p.k[at].s, p.k[at].len, T_VAL(at), NULL, NULL);
            t_alloc_budget = -1;
            if (rc == 0)
                break;
            T_CHECK(rc == SDB_ENOMEM, "put with %ld allocations returned %d", fail_at, rc);
            T_CHECK(pathidx_count(idx) == count0, "count changed by a failed put");
            T_CHECK(pathidx_mem_bytes(idx) == mem0, "memory changed by a failed put");
            T_CHECK(pathidx_get(idx, p.k[at].s, p.k[at].len) == NULL, "failed put is visible");
            n_fail++;
            if (fail_at > 0) {
                n_node_fail++;
                t_expect_same(idx, &p);
            }
            if (fail_at > max_fail_at)
                max_fail_at = fail_at;
        }
        /* When the hash table wanted to grow and that allocation was the
         * one refused, the put still succeeds (the table grows later). */
        if (t_alloc_calls > fail_at)
            resize_skips++;
        /* An insert that needed memory (a new key chunk, or nodes for a
         * split) must have failed with less; one that split a leaf grew
         * the accounting by more than its key entry. */
        if (fail_at > 0)
            n_needy++;
        if (pathidx_mem_bytes(idx) - mem0 > offsetof(pathidx_key_t, bytes) + p.k[at].len + 8)
            n_split++;
        p.in[at] = 1;
        p.val[at] = T_VAL(at);
        p.count++;
        T_CHECK(pathidx_get(idx, p.k[at].s, p.k[at].len)->val == T_VAL(at), "get #%zu", at);
    }
    t_expect_same(idx, &p);
    /* Key entries come from chunks (pathidx.c invariant 9): most inserts
     * need no allocation at all.  Each one that needed some failed first:
     * the splits (about 12,000 / 45) and the new chunks, at least. */
    ck_assert_uint_ge(n_needy, n_split);
    ck_assert_uint_gt(n_split, 150);
    ck_assert_uint_ge(n_fail, n_needy);
    ck_assert_uint_ge(n_node_fail, 3);      /* some failed in the middle of a split */
    ck_assert_int_ge(max_fail_at, 2);       /* including leaf + inner + new root */
    ck_assert_uint_gt(resize_skips, 5);

    /* With no memory at all, replacing and deleting still work. */
    t_alloc_budget = 0;
    for (i = 0; i < p.n; i++) {
        if (!p.in[i])
            continue;
        if (i % 2) {
            int rc = fs_pathidx_put(idx, p.k[i].s, p.k[i].len, T_VAL(i + 1), NULL, NULL);
            T_CHECK(rc == 0, "replace without memory returned %d", rc);
            p.val[i] = T_VAL(i + 1);
        } else {
            int rc = fs_pathidx_del(idx, p.k[i].s, p.k[i].len, NULL);
            T_CHECK(rc == 0, "delete without memory returned %d", rc);
            p.in[i] = 0;
            p.count--;
        }
    }
    t_alloc_budget = -1;
    t_expect_same(idx, &p);
    fs_pathidx_free(idx);
    t_pool_free(&p);
}
END_TEST

Suite *suite_pathidx(void)
{
    Suite *s = suite_create("pathidx");
    TCase *tc = tcase_create("basic");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_one_key);
    tcase_add_test(tc, test_put_get_replace_del);
    tcase_add_test(tc, test_key_entries_stable);
    tcase_add_test(tc, test_mem_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_test(tc, test_byte_order);
    tcase_add_test(tc, test_order_random_keys);
    tcase_add_test(tc, test_long_keys);
    tcase_add_test(tc, test_key_classes);
    tcase_add_test(tc, test_reserve);
    tcase_add_test(tc, test_peek);
    tcase_add_test(tc, test_seek_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("workload");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_workload);
    tcase_add_test(tc, test_delete_all_reinsert);
    tcase_add_test(tc, test_ordered_loads);
    tcase_add_test(tc, test_emptied_first_leaf);
    tcase_add_test(tc, test_ordered_runs_fill);
    tcase_add_test(tc, test_real_paths);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_enomem_new);
    tcase_add_test(tc, test_enomem_put);
    suite_add_tcase(s, tc);
    return s;
}
