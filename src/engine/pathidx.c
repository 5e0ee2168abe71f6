/*
 * pathidx.c -- the in-memory ordered path index: a B+tree that keeps the keys
 * in byte order (for seeks, prefix scans and cursors) plus a hash table that
 * finds a key in O(1) (for the engine's exact path lookups).
 *
 * Every key is one pathidx_key_t, carved from a chunk of its size class
 * (invariant 9).  Both structures point to it: the hash table through the
 * key's own hnext chain, the tree through the leaf arrays and the
 * separators of inner nodes.  No key text is copied into nodes, so a key
 * costs its entry plus one leaf slot and one bucket share.
 *
 * Design notes (numbered invariants, checked by the unit tests through
 * seek/next/get):
 *
 *   1. Every key is in exactly one leaf and in exactly one hash chain;
 *      idx->count is the number of keys.
 *   2. Keys within a leaf are strictly increasing; the leaves, linked by
 *      `next` from the leftmost, hold all keys in increasing order.
 *   3. An inner node with n children has n-1 separators, and sep[i] is the
 *      smallest key in the subtree of child[i+1] (a pointer to that very key,
 *      never a copy).  So every separator points to a live key, and a search
 *      for K descends into child[i] where i = number of separators <= K.
 *   4. All leaves are at the same depth, idx->height levels below the root
 *      (height 1: the root is a leaf).  The root is a leaf (possibly empty)
 *      or an inner node with at least 2 children.
 *   5. A non-root inner node has PI_INNER_MIN..PI_INNER_MAX children.  A
 *      non-root leaf has 1..PI_LEAF_MAX keys: a full leaf is split in half,
 *      except where the new key goes before the first or after the last key
 *      of the index, or continues a run (it lands right after or right
 *      before the previous put's key): there the split is made at the new
 *      key, so that ordered loads, ascending or descending, into an empty
 *      index or into a gap between existing keys, leave full leaves behind.  A leaf that drops below PI_LEAF_MIN
 *      after a delete takes keys from, or merges with, a sibling; likewise an
 *      inner node below PI_INNER_MIN.  Hence the height is O(log n).
 *   6. The hash table has a power-of-two number of buckets and at most
 *      PI_HASH_LOAD keys per bucket on average (4 to 8 bytes of buckets per
 *      key while the index grows); it doubles when a put would exceed that
 *      and halves when a delete leaves under a quarter key per bucket.  Each
 *      entry keeps its 32-bit hash, so a chain walk compares hashes before
 *      bytes and a resize never rereads key bytes.
 *   7. A put allocates everything it needs (the key and every node a split
 *      cascade can need) before it changes anything, so SDB_ENOMEM leaves the
 *      index unchanged.  A delete never allocates.  Resizing the hash table
 *      is an optimization: if that allocation fails the old table is kept.
 *   8. idx->mem is the sum of the sizes requested from malloc for the index
 *      header, the nodes and the bucket array, plus the size of every key
 *      entry in use (for an entry from a chunk, its size class; see 9).
 *      Chunk space not handed out yet, or back on a free list, and the
 *      allocator's own bookkeeping are not included.
 *   9. Key entries up to PI_CLASS_MAX * 8 bytes are carved from chunks
 *      (one bump region for all sizes, chunks doubling from PI_CHUNK_MIN to
 *      a 2 MiB huge page, slab_chunk_alloc), with one free list per size
 *      class of 8 bytes, not malloc'd one by one: a
 *      malloc'd entry cost 8 bytes of malloc header and up to 15 of rounding
 *      (about 20 bytes per real path), and a million malloc()s and free()s
 *      dominated the engine's open and close.  A deleted entry goes on its
 *      class's free list, and so does the tail of a chunk too short for the
 *      next entry; chunks are released only by pathidx_free().
 *      Larger entries are malloc'd (idx->nbig counts them, so that
 *      pathidx_free() visits the keys only when there are some).
 */
#include "pathidx.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "streamdb.h"
#include "engine/slab.h"

#define PI_LEAF_MAX 64                  /* keys per leaf */
#define PI_LEAF_MIN (PI_LEAF_MAX / 2)   /* rebalance a leaf below this */
#define PI_INNER_MAX 64                 /* children per inner node */
#define PI_INNER_MIN (PI_INNER_MAX / 2) /* rebalance an inner node below this */
#define PI_MAX_HEIGHT 24                /* 2 + log32(2^64) < 24 */
#define PI_HASH_MIN 16                  /* smallest bucket count (power of two) */
#define PI_HASH_LOAD 2                  /* double the buckets above this many keys each */
#define PI_CLASS_MAX 64                 /* entries up to 64 * 8 bytes come from chunks */
#define PI_CHUNK_MIN 4096               /* the first key chunk, in bytes */
#define PI_CHUNK_MAX SLAB_HUGE_BYTES    /* key chunks double up to this size */
#define PI_ENTRY_MIN 32                 /* the smallest entry: header, 1 byte, NUL */

/* A rebalance needs a sibling, so an inner node keeps at least 2 children;
 * two nodes just under/at the minimum must fit in one (merge); a split
 * must leave both halves at or above the minimum. */
_Static_assert(PI_INNER_MIN >= 2 && 2 * PI_INNER_MIN <= PI_INNER_MAX + 1
               && (PI_INNER_MAX + 1) / 2 >= PI_INNER_MIN, "inner fanout");
_Static_assert(PI_LEAF_MIN >= 1 && 2 * PI_LEAF_MIN <= PI_LEAF_MAX + 1, "leaf fanout");

typedef struct pi_node {
    uint32_t n;       /* keys in a leaf, children in an inner node */
    uint32_t is_leaf;
} pi_node_t;

typedef struct pi_leaf {
    pi_node_t hdr;
    struct pi_leaf *next;               /* right neighbour, NULL for the last */
    pathidx_key_t *keys[PI_LEAF_MAX];
} pi_leaf_t;

typedef struct pi_inner {
    pi_node_t hdr;
    pathidx_key_t *sep[PI_INNER_MAX - 1];   /* sep[i]: smallest key under child[i+1] */
    pi_node_t *child[PI_INNER_MAX];
} pi_inner_t;

/* The free entries of one size class (invariant 9), linked through their
 * first word. */
typedef struct {
    void *free;
} pi_class_t;

struct pathidx {
    pi_node_t *root;
    uint32_t height;            /* levels, leaves included */
    size_t count;               /* keys */
    pathidx_key_t **buckets;
    size_t nbuckets;            /* power of two */
    size_t mem;                 /* bytes requested from malloc, see invariant 8 */
    pathidx_key_t *last_put;    /* the key the previous put inserted, or NULL */
    void *chunks;               /* every key chunk, linked through its first word */
    char *cur;                  /* the unused end of the newest chunk */
    size_t left;                /* its bytes */
    size_t next_chunk;          /* bytes of the next chunk */
    size_t nbig;                /* malloc'd key entries (invariant 9) */
    pi_class_t cls[PI_CLASS_MAX + 1];   /* cls[c]: entries of c * 8 bytes */
};

/* The root-to-leaf path of a search: node[d] at depth d and the index of
 * the child taken there (pos[d]); node[height-1] is the leaf. */
typedef struct {
    pi_node_t *node[PI_MAX_HEIGHT];
    int pos[PI_MAX_HEIGHT];
} pi_path_t;

#define LEAF(n) ((pi_leaf_t *)(n))
#define INNER(n) ((pi_inner_t *)(n))

/* ---- keys ----------------------------------------------------------------------- */

/* Hashes path[0..len) 8 bytes at a time (multiply / xor-shift rounds and the
 * MurmurHash3 64-bit finalizer), folded to 32 bits. */
static uint32_t pi_hash(const char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0xc2b2ae3d27d4eb4fULL);
    uint64_t w;

    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 31;
    }
    w = 0;
    if (len > 0)
        memcpy(&w, p, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (uint32_t)(h ^ (h >> 32));
}

/* Compares a stored key with path[0..len): memcmp on the common length,
 * then the shorter first.  Returns <0, 0 or >0. */
static inline int pi_cmp(const pathidx_key_t *k, const char *p, size_t len)
{
    size_t m = k->len < len ? k->len : len;
    int c = m > 0 ? memcmp(k->bytes, p, m) : 0;

    if (c != 0)
        return c;
    return (k->len > len) - (k->len < len);
}

/* The bytes a key entry of len bytes takes: its size class (a multiple of
 * 8) when it comes from a chunk, else its exact size (invariant 9). */
static size_t pi_key_size(size_t len)
{
    size_t sz = offsetof(pathidx_key_t, bytes) + len + 1;
    size_t rounded = (sz + 7) & ~(size_t)7;

    return rounded <= PI_CLASS_MAX * 8 ? rounded : sz;
}

/* Returns an uninitialized entry for a key of len bytes, or NULL when out
 * of memory.  Changes nothing that a reader of the index can see. */
static pathidx_key_t *pi_key_alloc(pathidx_t *idx, size_t len)
{
    size_t sz = pi_key_size(len);
    pi_class_t *c;
    void *e;

    if (sz > PI_CLASS_MAX * 8)
        return malloc(sz);
    c = &idx->cls[sz / 8];
    if (c->free != NULL) {
        e = c->free;
        memcpy(&c->free, e, sizeof(void *));
        return e;
    }
    if (idx->left < sz) {
        size_t cb = idx->next_chunk ? idx->next_chunk : PI_CHUNK_MIN;
        char *chunk = cb == SLAB_HUGE_BYTES ? slab_chunk_alloc(cb) : malloc(cb);

        if (chunk == NULL)
            return NULL;
        if (idx->left >= PI_ENTRY_MIN) {
            /* the old chunk's tail: an entry of its class */
            memcpy(idx->cur, &idx->cls[idx->left / 8].free, sizeof(void *));
            idx->cls[idx->left / 8].free = idx->cur;
        }
        memcpy(chunk, &idx->chunks, sizeof(void *));
        idx->chunks = chunk;
        idx->cur = chunk + 8;
        idx->left = cb - 8;
        idx->next_chunk = cb * 2 <= PI_CHUNK_MAX ? cb * 2 : PI_CHUNK_MAX;
    }
    e = idx->cur;
    idx->cur += sz;
    idx->left -= sz;
    return e;
}

/* Returns entry k (from pi_key_alloc, for the same length) for reuse. */
static void pi_key_release(pathidx_t *idx, pathidx_key_t *k, size_t len)
{
    size_t sz = pi_key_size(len);

    if (sz > PI_CLASS_MAX * 8) {
        free(k);
        return;
    }
    memcpy(k, &idx->cls[sz / 8].free, sizeof(void *));
    idx->cls[sz / 8].free = k;
}

/* ---- hash table ------------------------------------------------------------------ */

static pathidx_key_t **pi_bucket(const pathidx_t *idx, uint32_t h)
{
    return &idx->buckets[h & (idx->nbuckets - 1)];
}

static pathidx_key_t *pi_hash_find(const pathidx_t *idx, const char *p, size_t len, uint32_t h)
{
    pathidx_key_t *k;

    for (k = *pi_bucket(idx, h); k != NULL; k = k->hnext)
        if (k->hash == h && k->len == len && (len == 0 || memcmp(k->bytes, p, len) == 0))
            return k;
    return NULL;
}

/* Rehashes into nb buckets.  On allocation failure keeps the old table
 * (lookups stay correct, only chains get longer). */
static void pi_hash_resize(pathidx_t *idx, size_t nb)
{
    pathidx_key_t **nbk = nb * sizeof(*nbk) >= SLAB_HUGE_BYTES ? slab_table_calloc(nb, sizeof(*nbk))
                                                              : calloc(nb, sizeof(*nbk));
    size_t i;

    if (nbk == NULL)
        return;
    for (i = 0; i < idx->nbuckets; i++) {
        pathidx_key_t *k = idx->buckets[i], *next;
        for (; k != NULL; k = next) {
            next = k->hnext;
            k->hnext = nbk[k->hash & (nb - 1)];
            nbk[k->hash & (nb - 1)] = k;
        }
    }
    free(idx->buckets);
    idx->mem -= idx->nbuckets * sizeof(*nbk);
    idx->mem += nb * sizeof(*nbk);
    idx->buckets = nbk;
    idx->nbuckets = nb;
}

/* ---- search ---------------------------------------------------------------------- */

/* Returns the number of separators of inner node n that are <= key. */
static int pi_inner_search(const pi_inner_t *n, const char *key, size_t len)
{
    int lo = 0, hi = (int)n->hdr.n - 1;

    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (pi_cmp(n->sep[mid], key, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Returns the index of the first key of leaf l that is >= key (inclusive)
 * or > key (!inclusive); l->hdr.n when there is none. */
static int pi_leaf_search(const pi_leaf_t *l, const char *key, size_t len, int inclusive)
{
    int lo = 0, hi = (int)l->hdr.n;
    int lim = inclusive ? 0 : 1;

    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (pi_cmp(l->keys[mid], key, len) < lim)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Descends to the leaf whose key range holds key, recording the path. */
static pi_leaf_t *pi_descend(const pathidx_t *idx, const char *key, size_t len, pi_path_t *path)
{
    pi_node_t *n = idx->root;
    uint32_t d;

    for (d = 0; d + 1 < idx->height; d++) {
        int i = pi_inner_search(INNER(n), key, len);
        if (path != NULL) {
            path->node[d] = n;
            path->pos[d] = i;
        }
        n = INNER(n)->child[i];
    }
    if (path != NULL)
        path->node[d] = n;
    assert(n->is_leaf);
    return LEAF(n);
}

/* Descends to the last leaf along the rightmost children, recording the
 * path as pi_descend does. */
static pi_leaf_t *pi_descend_last(const pathidx_t *idx, pi_path_t *path)
{
    pi_node_t *n = idx->root;
    uint32_t d;

    for (d = 0; d + 1 < idx->height; d++) {
        path->node[d] = n;
        path->pos[d] = (int)n->n - 1;
        n = INNER(n)->child[n->n - 1];
    }
    path->node[d] = n;
    return LEAF(n);
}

/* ---- insertion ------------------------------------------------------------------- */

/* Inserts k at position pos of leaf l.  When l is full, moves the upper part
 * into the spare leaf r (linked after l) and returns r; otherwise NULL.
 * prev is the key of the previous put (or NULL), for invariant 5. */
static pi_leaf_t *pi_leaf_insert(pi_leaf_t *l, int pos, pathidx_key_t *k, pi_leaf_t *r,
                                 const pathidx_key_t *prev)
{
    pathidx_key_t *all[PI_LEAF_MAX + 1];
    int n = (int)l->hdr.n, keep;

    if (n < PI_LEAF_MAX) {
        memmove(&l->keys[pos + 1], &l->keys[pos], (size_t)(n - pos) * sizeof(k));
        l->keys[pos] = k;
        l->hdr.n++;
        return NULL;
    }
    memcpy(all, l->keys, (size_t)pos * sizeof(k));
    all[pos] = k;
    memcpy(&all[pos + 1], &l->keys[pos], (size_t)(n - pos) * sizeof(k));
    /* Invariant 5.  keep = entries of all[] that stay in l (1..n). */
    if (prev != NULL && (pos < n ? l->keys[pos] == prev
                                 : l->next != NULL && l->next->hdr.n > 0
                                   && l->next->keys[0] == prev)) {
        /* A descending run: its next keys fall between keys[pos-1] and k,
         * i.e. into the leaf of keys[pos-1].  Move that key right, in front
         * of k, so the run fills the new leaf and then leaves it full. */
        keep = pos >= 2 ? pos - 1 : 1;
    } else if (pos > 0 && (l->keys[pos - 1] == prev || (pos == n && l->next == NULL))) {
        /* An ascending run, or an append after the last key: the next keys
         * will follow k, so k ends l's keys (or starts r alone). */
        keep = pos == n ? n : pos + 1;
    } else if (pos == 0) {
        keep = 1;           /* before the first key: k alone in l */
    } else {
        keep = (n + 1) / 2;
    }
    memcpy(l->keys, all, (size_t)keep * sizeof(k));
    memcpy(r->keys, &all[keep], (size_t)(n + 1 - keep) * sizeof(k));
    l->hdr.n = (uint32_t)keep;
    r->hdr.n = (uint32_t)(n + 1 - keep);
    r->hdr.is_leaf = 1;
    r->next = l->next;
    l->next = r;
    return r;
}

/* Inserts child c (whose smallest key is sep) right after child[pos] of
 * inner node p.  When p is full, moves the upper half into the spare node r,
 * stores the separator for r in *up and returns r; otherwise NULL. */
static pi_inner_t *pi_inner_insert(pi_inner_t *p, int pos, pathidx_key_t *sep, pi_node_t *c,
                                   pi_inner_t *r, pathidx_key_t **up)
{
    pathidx_key_t *seps[PI_INNER_MAX];
    pi_node_t *kids[PI_INNER_MAX + 1];
    int n = (int)p->hdr.n, m;

    if (n < PI_INNER_MAX) {
        memmove(&p->child[pos + 2], &p->child[pos + 1], (size_t)(n - pos - 1) * sizeof(c));
        memmove(&p->sep[pos + 1], &p->sep[pos], (size_t)(n - 1 - pos) * sizeof(sep));
        p->child[pos + 1] = c;
        p->sep[pos] = sep;
        p->hdr.n++;
        return NULL;
    }
    memcpy(kids, p->child, (size_t)(pos + 1) * sizeof(c));
    kids[pos + 1] = c;
    memcpy(&kids[pos + 2], &p->child[pos + 1], (size_t)(n - pos - 1) * sizeof(c));
    memcpy(seps, p->sep, (size_t)pos * sizeof(sep));
    seps[pos] = sep;
    memcpy(&seps[pos + 1], &p->sep[pos], (size_t)(n - 1 - pos) * sizeof(sep));
    /* n + 1 children: the left keeps m, the right gets the rest, and seps[m-1]
     * (the smallest key under kids[m]) moves up. */
    m = (n + 1) / 2;
    memcpy(p->child, kids, (size_t)m * sizeof(c));
    memcpy(p->sep, seps, (size_t)(m - 1) * sizeof(sep));
    memcpy(r->child, &kids[m], (size_t)(n + 1 - m) * sizeof(c));
    memcpy(r->sep, &seps[m], (size_t)(n - m) * sizeof(sep));
    p->hdr.n = (uint32_t)m;
    r->hdr.n = (uint32_t)(n + 1 - m);
    r->hdr.is_leaf = 0;
    *up = seps[m - 1];
    return r;
}

/* ---- deletion -------------------------------------------------------------------- */

/* Removes child[c] and sep[c-1] (c >= 1) from inner node p. */
static void pi_inner_remove(pi_inner_t *p, int c)
{
    int n = (int)p->hdr.n;

    assert(c >= 1 && c < n);
    memmove(&p->child[c], &p->child[c + 1], (size_t)(n - c - 1) * sizeof(p->child[0]));
    memmove(&p->sep[c - 1], &p->sep[c], (size_t)(n - c - 1) * sizeof(p->sep[0]));
    p->hdr.n--;
}

static void pi_free_node(pathidx_t *idx, pi_node_t *n)
{
    idx->mem -= n->is_leaf ? sizeof(pi_leaf_t) : sizeof(pi_inner_t);
    free(n);
}

/* Rebalances leaf x (the path's last node) after a delete left it with
 * fewer than PI_LEAF_MIN keys.  Returns 1 when its parent lost a child. */
static int pi_leaf_rebalance(pathidx_t *idx, pi_path_t *path)
{
    uint32_t d = idx->height - 1;
    pi_leaf_t *x = LEAF(path->node[d]);
    pi_inner_t *p = INNER(path->node[d - 1]);
    int ci = path->pos[d - 1];
    size_t sz = sizeof(x->keys[0]);

    if (ci > 0) {
        pi_leaf_t *l = LEAF(p->child[ci - 1]);
        if (l->hdr.n > PI_LEAF_MIN) {
            /* Take the upper part of the left sibling: x gets a new minimum. */
            uint32_t t = (l->hdr.n - x->hdr.n) / 2;
            memmove(&x->keys[t], x->keys, x->hdr.n * sz);
            memcpy(x->keys, &l->keys[l->hdr.n - t], t * sz);
            l->hdr.n -= t;
            x->hdr.n += t;
            p->sep[ci - 1] = x->keys[0];
            return 0;
        }
        memcpy(&l->keys[l->hdr.n], x->keys, x->hdr.n * sz);
        l->hdr.n += x->hdr.n;
        l->next = x->next;
        pi_inner_remove(p, ci);
        pi_free_node(idx, &x->hdr);
        return 1;
    }
    pi_leaf_t *r = LEAF(p->child[1]);
    if (r->hdr.n > PI_LEAF_MIN) {
        /* Take the lower part of the right sibling: r gets a new minimum. */
        uint32_t t = (r->hdr.n - x->hdr.n) / 2;
        memcpy(&x->keys[x->hdr.n], r->keys, t * sz);
        memmove(r->keys, &r->keys[t], (r->hdr.n - t) * sz);
        r->hdr.n -= t;
        x->hdr.n += t;
        p->sep[0] = r->keys[0];
        return 0;
    }
    memcpy(&x->keys[x->hdr.n], r->keys, r->hdr.n * sz);
    x->hdr.n += r->hdr.n;
    x->next = r->next;
    pi_inner_remove(p, 1);
    pi_free_node(idx, &r->hdr);
    return 1;
}

/* Rebalances inner node path->node[d] (d >= 1) after it lost a child and
 * fell below PI_INNER_MIN.  Returns 1 when its parent lost a child. */
static int pi_inner_rebalance(pathidx_t *idx, pi_path_t *path, uint32_t d)
{
    pi_inner_t *x = INNER(path->node[d]);
    pi_inner_t *g = INNER(path->node[d - 1]);
    int j = path->pos[d - 1];
    size_t cs = sizeof(x->child[0]), ss = sizeof(x->sep[0]);

    if (j > 0) {
        pi_inner_t *l = INNER(g->child[j - 1]);
        uint32_t ln = l->hdr.n;
        if (ln > PI_INNER_MIN) {
            /* Rotate l's last child into x: the separators shift down. */
            memmove(&x->child[1], x->child, x->hdr.n * cs);
            memmove(&x->sep[1], x->sep, (x->hdr.n - 1) * ss);
            x->child[0] = l->child[ln - 1];
            x->sep[0] = g->sep[j - 1];
            g->sep[j - 1] = l->sep[ln - 2];
            l->hdr.n--;
            x->hdr.n++;
            return 0;
        }
        l->sep[ln - 1] = g->sep[j - 1];
        memcpy(&l->sep[ln], x->sep, (x->hdr.n - 1) * ss);
        memcpy(&l->child[ln], x->child, x->hdr.n * cs);
        l->hdr.n += x->hdr.n;
        pi_inner_remove(g, j);
        pi_free_node(idx, &x->hdr);
        return 1;
    }
    pi_inner_t *r = INNER(g->child[1]);
    uint32_t xn = x->hdr.n;
    if (r->hdr.n > PI_INNER_MIN) {
        /* Rotate r's first child into x. */
        x->child[xn] = r->child[0];
        x->sep[xn - 1] = g->sep[0];
        g->sep[0] = r->sep[0];
        memmove(r->child, &r->child[1], (r->hdr.n - 1) * cs);
        memmove(r->sep, &r->sep[1], (r->hdr.n - 2) * ss);
        r->hdr.n--;
        x->hdr.n++;
        return 0;
    }
    x->sep[xn - 1] = g->sep[0];
    memcpy(&x->sep[xn], r->sep, (r->hdr.n - 1) * ss);
    memcpy(&x->child[xn], r->child, r->hdr.n * cs);
    x->hdr.n += r->hdr.n;
    pi_inner_remove(g, 1);
    pi_free_node(idx, &r->hdr);
    return 1;
}

/* ---- public functions ------------------------------------------------------------ */

/* Returns a new empty index (an empty root leaf and PI_HASH_MIN buckets), or
 * NULL when out of memory.  The caller frees it with pathidx_free(). */
pathidx_t *pathidx_new(void)
{
    pathidx_t *idx = calloc(1, sizeof(*idx));
    pi_leaf_t *root = NULL;

    if (idx == NULL)
        return NULL;
    root = calloc(1, sizeof(*root));
    idx->buckets = calloc(PI_HASH_MIN, sizeof(*idx->buckets));
    if (root == NULL || idx->buckets == NULL)
        goto fail;
    root->hdr.is_leaf = 1;
    idx->root = &root->hdr;
    idx->height = 1;
    idx->nbuckets = PI_HASH_MIN;
    idx->mem = sizeof(*idx) + sizeof(*root) + PI_HASH_MIN * sizeof(*idx->buckets);
    return idx;
fail:
    free(root);
    free(idx->buckets);
    free(idx);
    return NULL;
}

/* Frees node n and its subtree, and the malloc'd key entries in it when
 * big_keys (the others go with their chunks). */
static void pi_free_tree(pi_node_t *n, int big_keys)
{
    uint32_t i;

    if (n->is_leaf) {
        for (i = 0; big_keys && i < n->n; i++)
            if (pi_key_size(LEAF(n)->keys[i]->len) > PI_CLASS_MAX * 8)
                free(LEAF(n)->keys[i]);
    } else {
        for (i = 0; i < n->n; i++)
            pi_free_tree(INNER(n)->child[i], big_keys);
    }
    free(n);
}

/* Frees the index, its nodes and its key entries; the values are the
 * caller's and are not touched.  Every pathidx_key_t pointer obtained from
 * the index becomes invalid.  NULL is accepted. */
void pathidx_free(pathidx_t *idx)
{
    void *c, *next;

    if (idx == NULL)
        return;
    pi_free_tree(idx->root, idx->nbig > 0);
    for (c = idx->chunks; c != NULL; c = next) {
        memcpy(&next, c, sizeof(void *));
        free(c);
    }
    free(idx->buckets);
    free(idx);
}

/* Returns the key entry for path[0..len), or NULL when absent.  The entry
 * stays valid until that key is deleted or the index freed.  Uses only the
 * hash table: O(1) expected, one hash of the path and usually one memcmp. */
pathidx_key_t *pathidx_get(const pathidx_t *idx, const char *path, size_t len)
{
    return pi_hash_find(idx, path, len, pi_hash(path, len));
}

/* Starts loading the hash bucket of path[0..len) into the cache, for a put
 * or get of that path soon after: a caller with many keys at hand lets the
 * cache misses of several overlap.  Changes nothing. */
void pathidx_prefetch(const pathidx_t *idx, const char *path, size_t len)
{
    __builtin_prefetch(pi_bucket(idx, pi_hash(path, len)), 1);
}

/* Inserts path[0..len) -> val (the index copies the path, not the value), or
 * replaces the value when the path exists.  On success stores the key entry
 * in *keyp and the previous value (NULL for a new path) in *old; either
 * pointer may be NULL.  The caller has checked the path (at most
 * SDB_MAX_PATH bytes).  Returns 0, or SDB_ENOMEM with the index unchanged. */
int pathidx_put(pathidx_t *idx, const char *path, size_t len, void *val,
                pathidx_key_t **keyp, void **old)
{
    uint32_t h = pi_hash(path, len);
    pathidx_key_t *k;
    pi_node_t *spare[PI_MAX_HEIGHT + 1];
    int nspare = 0, used = 0, need = 0, d;
    pi_path_t pp;
    pi_leaf_t *leaf;
    int pos;

    assert(len <= SDB_MAX_PATH);
    /* The descent is needed for an insert anyway, and an existing key is in
     * that leaf: no hash-chain walk (a cache miss per entry) for new keys.
     * A key after the last one (a load in byte order: a checkpoint) goes to
     * the last leaf: the rightmost path, with no key comparisons on it. */
    leaf = idx->count > 0 ? pi_descend_last(idx, &pp) : NULL;
    if (leaf != NULL && pi_cmp(leaf->keys[leaf->hdr.n - 1], path, len) < 0) {
        pos = (int)leaf->hdr.n;
    } else {
        leaf = pi_descend(idx, path, len, &pp);
        pos = pi_leaf_search(leaf, path, len, 1);
    }
    if (pos < (int)leaf->hdr.n && pi_cmp(leaf->keys[pos], path, len) == 0) {
        k = leaf->keys[pos];
        if (old != NULL)
            *old = k->val;
        k->val = val;
        if (keyp != NULL)
            *keyp = k;
        return 0;
    }
    /* Count the nodes a split cascade needs: the leaf, each full ancestor,
     * and a new root when every level is full (invariant 7). */
    if (leaf->hdr.n == PI_LEAF_MAX) {
        need = 1;
        for (d = (int)idx->height - 2; d >= 0 && pp.node[d]->n == PI_INNER_MAX; d--)
            need++;
        if (d < 0)
            need++;
    }
    k = pi_key_alloc(idx, len);
    if (k == NULL)
        return SDB_ENOMEM;
    for (; nspare < need; nspare++) {
        spare[nspare] = malloc(nspare == 0 ? sizeof(pi_leaf_t) : sizeof(pi_inner_t));
        if (spare[nspare] == NULL)
            goto fail;
    }
    if (need > 0)
        idx->mem += sizeof(pi_leaf_t) + (size_t)(need - 1) * sizeof(pi_inner_t);

    k->val = val;
    k->len = (uint32_t)len;
    k->hash = h;
    if (len > 0)
        memcpy(k->bytes, path, len);
    k->bytes[len] = '\0';
    idx->mem += pi_key_size(len);
    idx->nbig += pi_key_size(len) > PI_CLASS_MAX * 8;

    if (idx->count + 1 > PI_HASH_LOAD * idx->nbuckets)
        pi_hash_resize(idx, idx->nbuckets * 2);
    k->hnext = *pi_bucket(idx, h);
    *pi_bucket(idx, h) = k;
    idx->count++;

    /* From here on nothing can fail.  right is the node a split produced at
     * the current level and sep its smallest key. */
    pi_leaf_t *rleaf = pi_leaf_insert(leaf, pos, k, need > 0 ? LEAF(spare[used++]) : NULL,
                                      idx->last_put);
    pi_node_t *right = rleaf != NULL ? &rleaf->hdr : NULL;
    pathidx_key_t *sep = rleaf != NULL ? rleaf->keys[0] : NULL;
    for (d = (int)idx->height - 2; right != NULL && d >= 0; d--) {
        pi_inner_t *r = pi_inner_insert(INNER(pp.node[d]), pp.pos[d], sep, right,
                                        used < need ? INNER(spare[used]) : NULL, &sep);
        if (r != NULL)
            used++;
        right = r != NULL ? &r->hdr : NULL;
    }
    if (right != NULL) {
        /* The root split: grow a level. */
        pi_inner_t *root = INNER(spare[used++]);
        root->hdr.is_leaf = 0;
        root->hdr.n = 2;
        root->child[0] = idx->root;
        root->child[1] = right;
        root->sep[0] = sep;
        idx->root = &root->hdr;
        idx->height++;
        assert(idx->height <= PI_MAX_HEIGHT);
    }
    assert(used == need);
    idx->last_put = k;

    if (keyp != NULL)
        *keyp = k;
    if (old != NULL)
        *old = NULL;
    return 0;
fail:
    while (nspare > 0)
        free(spare[--nspare]);
    pi_key_release(idx, k, len);
    return SDB_ENOMEM;
}

/* Removes path[0..len) and frees its key entry (pointers to it become
 * invalid); stores its value in *old (old may be NULL).  Never allocates.
 * Returns 0, or SDB_ENOTFOUND when the path is not in the index. */
int pathidx_del(pathidx_t *idx, const char *path, size_t len, void **old)
{
    uint32_t h = pi_hash(path, len);
    pathidx_key_t **pk, *k;
    pi_path_t pp;
    pi_leaf_t *leaf;
    uint32_t d;
    int pos;

    for (pk = pi_bucket(idx, h); (k = *pk) != NULL; pk = &k->hnext)
        if (k->hash == h && k->len == len && (len == 0 || memcmp(k->bytes, path, len) == 0))
            break;
    if (k == NULL)
        return SDB_ENOTFOUND;

    leaf = pi_descend(idx, path, len, &pp);
    pos = pi_leaf_search(leaf, path, len, 1);
    assert(pos < (int)leaf->hdr.n && leaf->keys[pos] == k);
    *pk = k->hnext;
    memmove(&leaf->keys[pos], &leaf->keys[pos + 1], (leaf->hdr.n - (uint32_t)pos - 1) * sizeof(k));
    leaf->hdr.n--;

    if (pos == 0 && idx->height > 1) {
        /* k was the leaf's minimum; if it is a subtree minimum it is the
         * separator at the lowest ancestor entered through child > 0
         * (invariant 3).  Point that separator at the new minimum: the
         * leaf's next key, or, for a now empty first child, its right
         * sibling's minimum, which the rebalance below moves into it.  An
         * empty leaf at child > 0 is fixed by the rebalance itself. */
        pi_inner_t *parent = INNER(pp.node[idx->height - 2]);
        for (d = idx->height - 1; d-- > 0;) {
            if (pp.pos[d] > 0) {
                pi_inner_t *a = INNER(pp.node[d]);
                assert(a->sep[pp.pos[d] - 1] == k);
                if (leaf->hdr.n > 0)
                    a->sep[pp.pos[d] - 1] = leaf->keys[0];
                else if (pp.pos[idx->height - 2] == 0)
                    a->sep[pp.pos[d] - 1] = parent->sep[0];
                break;
            }
        }
    }

    if (idx->height > 1 && leaf->hdr.n < PI_LEAF_MIN && pi_leaf_rebalance(idx, &pp)) {
        for (d = idx->height - 2; d > 0 && pp.node[d]->n < PI_INNER_MIN; d--)
            if (!pi_inner_rebalance(idx, &pp, d))
                break;
        if (idx->root->n == 1 && !idx->root->is_leaf) {
            /* The root kept one child: drop a level. */
            pi_node_t *oldroot = idx->root;
            idx->root = INNER(oldroot)->child[0];
            idx->height--;
            pi_free_node(idx, oldroot);
        }
    }

    if (idx->last_put == k)
        idx->last_put = NULL;
    if (old != NULL)
        *old = k->val;
    idx->mem -= pi_key_size(len);
    idx->nbig -= pi_key_size(len) > PI_CLASS_MAX * 8;
    pi_key_release(idx, k, len);
    idx->count--;
    if (idx->nbuckets > PI_HASH_MIN && idx->count * 4 < idx->nbuckets)
        pi_hash_resize(idx, idx->nbuckets / 2);
    return 0;
}

/* Makes the hash table large enough for n keys in all (a load of n keys then
 * rehashes nothing).  An optimization only: when the allocation fails the
 * table stays as it is and grows as keys come. */
void pathidx_reserve(pathidx_t *idx, size_t n)
{
    size_t nb = idx->nbuckets;

    while (n > PI_HASH_LOAD * nb && nb < ((size_t)1 << 40))
        nb *= 2;
    if (nb > idx->nbuckets)
        pi_hash_resize(idx, nb);
}

/* Returns the number of keys in the index. */
size_t pathidx_count(const pathidx_t *idx)
{
    return idx->count;
}

/* Returns the bytes the index has requested from malloc: its header, the
 * tree nodes, the bucket array and every key entry (header + text + NUL).
 * The allocator's own per-block overhead is not included. */
size_t pathidx_mem_bytes(const pathidx_t *idx)
{
    return idx->mem;
}

/* Positions *it at the first key >= key[0..len) (inclusive) or > key
 * (!inclusive); key may be NULL with len 0 to start at the first key.  The
 * cursor is valid until the next put or delete on the index.  Costs one
 * root-to-leaf descent with a binary search per node. */
void pathidx_seek(const pathidx_t *idx, pathidx_iter_t *it, const char *key, size_t len,
                  int inclusive)
{
    pi_leaf_t *leaf = pi_descend(idx, key, len, NULL);

    it->idx = idx;
    it->leaf = leaf;
    it->pos = pi_leaf_search(leaf, key, len, inclusive);
}

/* Returns the key at the cursor and advances it, or NULL at the end (and on
 * every later call).  The entry stays valid until that key is deleted. */
pathidx_key_t *pathidx_next(pathidx_iter_t *it)
{
    pi_leaf_t *leaf = it->leaf;

    while (leaf != NULL && it->pos >= (int)leaf->hdr.n) {
        leaf = leaf->next;
        it->pos = 0;
    }
    it->leaf = leaf;
    if (leaf == NULL)
        return NULL;
    return leaf->keys[it->pos++];
}

/* Returns the key `ahead` places after the one pathidx_next() returns next
 * (0: that very key), or NULL past the end; the cursor does not move.  For
 * prefetching: a scan that asks for keys a few places ahead can have their
 * cache misses overlap.  Costs a walk over the leaves in between. */
pathidx_key_t *pathidx_peek(const pathidx_iter_t *it, unsigned ahead)
{
    const pi_leaf_t *leaf = it->leaf;
    size_t pos = (size_t)it->pos + ahead;

    while (leaf != NULL && pos >= leaf->hdr.n) {
        pos -= leaf->hdr.n;
        leaf = leaf->next;
    }
    return leaf != NULL ? leaf->keys[pos] : NULL;
}
