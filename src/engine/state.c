/*
 * state.c -- the in-memory state: the document table (id -> doc), the path
 * index (path -> doc), version lists, and apply_records(), the only code
 * that changes them (db_int.h, invariant 3).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/db_int.h"
#include "engine/util.h"

int buf_put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q)
            return SDB_ENOMEM;
        b->p = q;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return SDB_OK;
}

/* ---- the state lock (db_int.h) ---- */

static _Thread_local unsigned read_depth;   /* state read locks this thread holds */

void state_read_lock(sdb_t *db)
{
    if (read_depth++ == 0 && atomic_load(&db->writer_waiting)) {
        pthread_mutex_lock(&db->gate_lock);
        while (atomic_load(&db->writer_waiting))
            pthread_cond_wait(&db->gate_cv, &db->gate_lock);
        pthread_mutex_unlock(&db->gate_lock);
    }
    pthread_rwlock_rdlock(&db->state_lock);
}

void state_read_unlock(sdb_t *db)
{
    pthread_rwlock_unlock(&db->state_lock);
    read_depth--;
}

void state_write_lock(sdb_t *db)
{
    atomic_store(&db->writer_waiting, 1);
    pthread_rwlock_wrlock(&db->state_lock);
}

void state_write_unlock(sdb_t *db)
{
    pthread_rwlock_unlock(&db->state_lock);
    pthread_mutex_lock(&db->gate_lock);
    atomic_store(&db->writer_waiting, 0);
    pthread_cond_broadcast(&db->gate_cv);
    pthread_mutex_unlock(&db->gate_lock);
}

void state_lock_init(sdb_t *db)
{
    pthread_rwlock_init(&db->state_lock, NULL);
    atomic_init(&db->writer_waiting, 0);
    pthread_mutex_init(&db->gate_lock, NULL);
    pthread_cond_init(&db->gate_cv, NULL);
}

void state_lock_destroy(sdb_t *db)
{
    pthread_rwlock_destroy(&db->state_lock);
    pthread_mutex_destroy(&db->gate_lock);
    pthread_cond_destroy(&db->gate_cv);
}

static size_t id_hash(const sdb_id_t *id, size_t cap)
{
    return (size_t)(get_u64(id->b) ^ get_u64(id->b + 8)) & (cap - 1);
}

doc_t *doc_find(const sdb_t *db, const sdb_id_t *id)
{
    if (!db->docs_cap)
        return NULL;
    for (doc_t *d = db->docs[id_hash(id, db->docs_cap)]; d; d = d->hnext)
        if (id_eq(&d->id, id))
            return d;
    return NULL;
}

/* Grows the document table to at least want buckets (a power of two).
 * 0 or SDB_ENOMEM (the table is unchanged). */
static int doc_table_grow(sdb_t *db, size_t want)
{
    size_t nc = db->docs_cap ? db->docs_cap : 1024;
    while (nc < want)
        nc *= 2;
    if (nc <= db->docs_cap)
        return SDB_OK;
    doc_t **t = slab_table_calloc(nc, sizeof(*t));
    if (!t)
        return SDB_ENOMEM;
    for (size_t i = 0; i < db->docs_cap; i++) {
        doc_t *e = db->docs[i];
        while (e) {
            doc_t *n = e->hnext;
            size_t h = id_hash(&e->id, nc);
            e->hnext = t[h];
            t[h] = e;
            e = n;
        }
    }
    free(db->docs);
    db->docs = t;
    db->docs_cap = nc;
    return SDB_OK;
}

static int doc_table_insert(sdb_t *db, doc_t *d)
{
    /* up to one document per bucket on average: a chain is short, and the
       table costs 8 to 16 bytes per document (at 3/4 it cost 11 to 21) */
    if (db->ndocs + 1 > db->docs_cap && doc_table_grow(db, db->docs_cap * 2))
        return SDB_ENOMEM;
    size_t h = id_hash(&d->id, db->docs_cap);
    d->hnext = db->docs[h];
    db->docs[h] = d;
    db->ndocs++;
    return SDB_OK;
}

static void doc_table_remove(sdb_t *db, doc_t *d)
{
    doc_t **pp = &db->docs[id_hash(&d->id, db->docs_cap)];
    while (*pp && *pp != d)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = d->hnext;
        db->ndocs--;
    }
}

/* Frees the extents of a version whose last reference is gone: directly when
 * the record that dropped it is durable, else onto the pending list. */
static void free_ext(docver_t *v)
{
    if (v->ext != &v->ext1)
        free(v->ext);
    v->ext = NULL;
}

static void release_pages(sdb_t *db, docver_t *v)
{
    pthread_mutex_lock(&db->fs_lock);
    if (v->retire_seq <= db->durable_seq || v->nextents == 0) {
        for (uint32_t i = 0; i < v->nextents; i++)
            freespace_free(&db->fs, v->ext[i].start, v->ext[i].count);
        free_ext(v);
    } else {
        pfree_t *pf = malloc(sizeof(*pf));
        if (pf) {                  /* without memory the pages leak until reopen */
            pf->seq = v->retire_seq;
            pf->n = v->nextents;
            if (v->ext == &v->ext1) {
                pf->ext1 = v->ext1;
                pf->ext = &pf->ext1;
            } else {
                pf->ext = v->ext;
            }
            v->ext = NULL;
            pf->next = NULL;
            for (uint32_t i = 0; i < pf->n; i++)
                db->pending_pages += pf->ext[i].count;
            *db->pending_tail = pf;
            db->pending_tail = &pf->next;
        } else {
            free_ext(v);
        }
    }
    pthread_mutex_unlock(&db->fs_lock);
}

void docver_unref(sdb_t *db, docver_t *v)
{
    if (atomic_fetch_sub(&v->refs, 1) == 1) {
        release_pages(db, v);
        slab_free(&db->ver_slab, v);
    }
}

static void retire(sdb_t *db, docver_t *v, uint64_t tag)
{
    v->retire_seq = tag;
    v->older = NULL;
    docver_unref(db, v);
}

/* Makes room for one more path in d (the first lives inline). */
static int doc_reserve_path(doc_t *d)
{
    if (d->cap == 0) {
        d->paths = &d->path1;
        d->cap = 1;
    }
    if (d->npaths < d->cap)
        return SDB_OK;
    uint32_t nc = d->cap * 2;
    pathidx_key_t **p = d->paths == &d->path1 ? malloc(nc * sizeof(*p))
                                              : realloc(d->paths, nc * sizeof(*p));
    if (!p)
        return SDB_ENOMEM;
    if (d->paths == &d->path1)
        p[0] = d->path1;
    d->paths = p;
    d->cap = nc;
    return SDB_OK;
}

static void doc_free_paths(doc_t *d)
{
    if (d->paths != &d->path1)
        free(d->paths);
    d->paths = NULL;
}

static int doc_add_path(doc_t *d, pathidx_key_t *k)
{
    if (doc_reserve_path(d))
        return SDB_ENOMEM;
    d->paths[d->npaths++] = k;
    return SDB_OK;
}

static void doc_remove_path(doc_t *d, const pathidx_key_t *k)
{
    for (uint32_t i = 0; i < d->npaths; i++)
        if (d->paths[i] == k) {
            d->paths[i] = d->paths[--d->npaths];
            return;
        }
}

static void doc_free(sdb_t *db, doc_t *d, uint64_t tag)
{
    docver_t *v = d->cur;
    while (v) {
        docver_t *o = v->older;
        retire(db, v, tag);
        v = o;
    }
    d->cur = NULL;                 /* state_foreach_doc: not a live document */
    doc_free_paths(d);
    slab_free(&db->doc_slab, d);
}

/* ---- record decoding ---- */

/* A checkpoint load inserts a million documents and paths into two hash
 * tables, each insert a cache miss on a random bucket.  In bulk mode the
 * inserts wait in batches of BULK_BATCH: the buckets of a whole batch are
 * prefetched, then filled, so that the misses overlap. */
#define BULK_BATCH 16

typedef struct {
    doc_t *d;
    const uint8_t *path;
    uint16_t len;
    uint32_t slot;                 /* d->paths[slot] is this binding's, NULL until then */
} bulk_bind_t;

typedef struct {
    const uint8_t *p, *end;
    int bad;
    int bulk;                      /* loading a checkpoint into an empty state */
    int tolerant;                  /* replaying over a fuzzy checkpoint (db_int.h) */
    doc_t *last;                   /* bulk: the document of the last VERSION record */
    doc_t *docs[BULK_BATCH];       /* bulk: documents not in the table yet */
    unsigned ndocs;
    bulk_bind_t binds[BULK_BATCH]; /* bulk: bindings not in the path index yet */
    unsigned nbinds;
} rd_t;

/* Puts the documents of the batch into the table (its size was reserved:
 * apply_checkpoint).  0 or SDB_ENOMEM. */
static int bulk_flush_docs(sdb_t *db, rd_t *r)
{
    int rc = SDB_OK;
    for (unsigned i = 0; i < r->ndocs && db->docs_cap; i++)
        __builtin_prefetch(&db->docs[id_hash(&r->docs[i]->id, db->docs_cap)], 1);
    for (unsigned i = 0; i < r->ndocs && !rc; i++)
        rc = doc_table_insert(db, r->docs[i]);
    r->ndocs = 0;                  /* after a failure the rest are freed with the slab */
    return rc;
}

/* Puts the bindings of the batch into the path index, each key into the
 * slot of its document's path array that apply_bind counted for it.  0,
 * SDB_ENOMEM, or SDB_ECORRUPT when a path is listed twice (the load fails
 * then, and the state is destroyed: a slot left NULL is never read). */
static int bulk_flush_binds(sdb_t *db, rd_t *r)
{
    int rc = SDB_OK;
    for (unsigned i = 0; i < r->nbinds; i++)
        pathidx_prefetch(db->paths, (const char *)r->binds[i].path, r->binds[i].len);
    for (unsigned i = 0; i < r->nbinds && !rc; i++) {
        bulk_bind_t *b = &r->binds[i];
        pathidx_key_t *k;
        void *old = NULL;
        rc = pathidx_put(db->paths, (const char *)b->path, b->len, b->d, &k, &old);
        if (!rc && old)
            rc = SDB_ECORRUPT;
        if (!rc)
            b->d->paths[b->slot] = k;
    }
    r->nbinds = 0;
    return rc;
}

static const uint8_t *take(rd_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}
static uint64_t take64(rd_t *r) { const uint8_t *q = take(r, 8); return q ? get_u64(q) : 0; }
static uint32_t take32(rd_t *r) { const uint8_t *q = take(r, 4); return q ? get_u32(q) : 0; }
static uint16_t take16(rd_t *r) { const uint8_t *q = take(r, 2); return q ? get_u16(q) : 0; }
static void take_id(rd_t *r, sdb_id_t *id)
{
    const uint8_t *q = take(r, 16);
    if (q)
        memcpy(id->b, q, 16);
    else
        memset(id->b, 0, 16);
}

static int apply_version(sdb_t *db, rd_t *r)
{
    sdb_id_t id;
    take_id(r, &id);
    uint64_t version = take64(r), size = take64(r);
    uint32_t crc = take32(r);
    int64_t created = (int64_t)take64(r), modified = (int64_t)take64(r);
    const uint8_t *blob = take(r, 16);
    uint32_t n = take32(r);
    if (r->bad || (size_t)(r->end - r->p) / 12 < n)
        return SDB_ECORRUPT;
    uint64_t pages = 0;
    docver_t *v = slab_alloc(&db->ver_slab);
    if (!v)
        return SDB_ENOMEM;
    v->ext = n > 1 ? malloc(n * sizeof(extent_t)) : &v->ext1;
    if (!v->ext) {
        slab_free(&db->ver_slab, v);
        return SDB_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        v->ext[i].start = take64(r);
        v->ext[i].count = take32(r);
        pages += v->ext[i].count;
    }
    v->nextents = n;
    v->version = version;
    v->size = size;
    v->crc = crc;
    v->modified_ms = modified;
    memcpy(v->blob, blob, 16);
    atomic_init(&v->refs, 1);
    uint64_t need = db->cap ? (size + db->cap - 1) / db->cap : 0;
    /* a checkpoint lists each document's versions together, once: no lookup */
    doc_t *d = !r->bulk ? doc_find(db, &id) : r->last && id_eq(&r->last->id, &id) ? r->last : NULL;
    int have = d && d->cur && d->cur->version >= version;
    if (pages != need || version == 0 || (have && !r->tolerant)) {
        free_ext(v);
        slab_free(&db->ver_slab, v);
        return SDB_ECORRUPT;
    }
    if (have) {                    /* the checkpoint caught the document after this */
        free_ext(v);
        slab_free(&db->ver_slab, v);
        r->last = d;
        return SDB_OK;
    }
    if (!d) {
        d = slab_alloc(&db->doc_slab);
        if (d) {
            d->id = id;
            d->created_ms = created;
        }
        if (d && r->bulk) {
            if (r->ndocs == BULK_BATCH) {
                int rc = bulk_flush_docs(db, r);
                if (rc) {
                    slab_free(&db->doc_slab, d);
                    free_ext(v);
                    slab_free(&db->ver_slab, v);
                    return rc;
                }
            }
            r->docs[r->ndocs++] = d;
        } else if (!d || doc_table_insert(db, d)) {
            slab_free(&db->doc_slab, d);
            free_ext(v);
            slab_free(&db->ver_slab, v);
            return SDB_ENOMEM;
        }
    }
    v->older = d->cur;
    d->cur = v;
    r->last = d;
    return SDB_OK;
}

static int apply_bind(sdb_t *db, rd_t *r)
{
    sdb_id_t id;
    take_id(r, &id);
    uint16_t len = take16(r);
    const uint8_t *path = take(r, len);
    if (r->bad || len == 0)
        return SDB_ECORRUPT;
    doc_t *d = r->last && id_eq(&r->last->id, &id) ? r->last : NULL;
    if (!d) {
        if (r->ndocs && bulk_flush_docs(db, r))
            return SDB_ENOMEM;
        d = doc_find(db, &id);
    }
    if (!d && r->tolerant) {
        /* The document was deleted after this record, before the checkpoint
           got to it (a document the checkpoint has, or that replay created, is
           here).  The path was moved to it, so it leaves its old document
           now and goes with the deletion, unless a later record binds it
           again: skipping the record would leave it where the checkpoint
           found it. */
        pathidx_key_t *k = pathidx_get(db->paths, (const char *)path, len);
        if (k) {
            doc_remove_path(k->val, k);
            pathidx_del(db->paths, (const char *)path, len, NULL);
        }
        return SDB_OK;
    }
    if (!d)
        return SDB_ECORRUPT;
    /* a checkpoint binds each path once: no need to look for an old binding */
    pathidx_key_t *k = r->bulk ? NULL : pathidx_get(db->paths, (const char *)path, len);
    if (k) {
        doc_t *e = k->val;
        if (e == d)
            return SDB_OK;
        doc_remove_path(e, k);
        if (doc_add_path(d, k)) {
            doc_add_path(e, k);    /* cannot fail: the slot was just freed */
            return SDB_ENOMEM;
        }
        k->val = d;
        return SDB_OK;
    }
    if (doc_reserve_path(d))       /* reserve first so the insert cannot be undone */
        return SDB_ENOMEM;
    if (r->bulk) {
        if (r->nbinds == BULK_BATCH) {
            int rc = bulk_flush_binds(db, r);
            if (rc)
                return rc;
        }
        r->binds[r->nbinds++] = (bulk_bind_t){ d, path, len, d->npaths };
        d->paths[d->npaths++] = NULL;
        return SDB_OK;
    }
    void *old = NULL;
    int rc = pathidx_put(db->paths, (const char *)path, len, d, &k, &old);
    if (rc)
        return rc;
    if (old)                       /* bulk: a path listed twice */
        return SDB_ECORRUPT;
    d->paths[d->npaths++] = k;
    return SDB_OK;
}

static int apply_unbind(sdb_t *db, rd_t *r)
{
    uint16_t len = take16(r);
    const uint8_t *path = take(r, len);
    if (r->bad)
        return SDB_ECORRUPT;
    pathidx_key_t *k = pathidx_get(db->paths, (const char *)path, len);
    if (!k)
        return r->tolerant ? SDB_OK : SDB_ECORRUPT;
    doc_remove_path(k->val, k);
    pathidx_del(db->paths, (const char *)path, len, NULL);
    return SDB_OK;
}

static int apply_delete_doc(sdb_t *db, rd_t *r, uint64_t tag)
{
    sdb_id_t id;
    take_id(r, &id);
    if (r->bad)
        return SDB_ECORRUPT;
    doc_t *d = doc_find(db, &id);
    if (!d)
        return r->tolerant ? SDB_OK : SDB_ECORRUPT;
    for (uint32_t i = 0; i < d->npaths; i++) {
        pathidx_key_t *k = d->paths[i];
        pathidx_del(db->paths, k->bytes, k->len, NULL);
    }
    d->npaths = 0;
    doc_table_remove(db, d);
    doc_free(db, d, tag);
    return SDB_OK;
}

static int apply_drop_version(sdb_t *db, rd_t *r, uint64_t tag)
{
    sdb_id_t id;
    take_id(r, &id);
    uint64_t version = take64(r);
    if (r->bad)
        return SDB_ECORRUPT;
    doc_t *d = doc_find(db, &id);
    if (!d || !d->cur)
        return r->tolerant ? SDB_OK : SDB_ECORRUPT;
    for (docver_t **pp = &d->cur->older; *pp; pp = &(*pp)->older)
        if ((*pp)->version == version) {
            docver_t *v = *pp;
            *pp = v->older;
            retire(db, v, tag);
            return SDB_OK;
        }
    return r->tolerant ? SDB_OK : SDB_ECORRUPT;
}

static int apply_stream(sdb_t *db, const uint8_t *p, size_t n, uint64_t tag, int bulk,
                        int tolerant)
{
    if (n == 0)
        return SDB_OK;          /* an empty stream (p may be NULL: no p + 0) */
    rd_t r = { .p = p, .end = p + n, .bulk = bulk, .tolerant = tolerant };
    while (r.p < r.end) {
        int rc;
        if (r.bulk && *r.p != REC_VERSION && *r.p != REC_BIND) {
            /* other records look documents and paths up: none may wait */
            if ((rc = bulk_flush_docs(db, &r)) || (rc = bulk_flush_binds(db, &r)))
                return rc;
        }
        switch (*r.p++) {
        case REC_VERSION: rc = apply_version(db, &r); break;
        case REC_BIND: rc = apply_bind(db, &r); break;
        case REC_UNBIND: rc = apply_unbind(db, &r); break;
        case REC_DELETE_DOC: rc = apply_delete_doc(db, &r, tag); break;
        case REC_DROP_VERSION: rc = apply_drop_version(db, &r, tag); break;
        default: rc = SDB_ECORRUPT; break;
        }
        if (rc)
            return rc;
    }
    if (r.bulk) {
        int rc = bulk_flush_docs(db, &r);
        return rc ? rc : bulk_flush_binds(db, &r);
    }
    return SDB_OK;
}

int apply_records(sdb_t *db, const uint8_t *p, size_t n, uint64_t tag)
{
    return apply_stream(db, p, n, tag, 0, 0);
}

int apply_replay(sdb_t *db, const uint8_t *p, size_t n, int tolerant)
{
    return apply_stream(db, p, n, 0, 0, tolerant);
}

/* Counts the documents (runs of VERSION records of one id) and the BIND
 * records of a checkpoint stream, skipping each record by its length: a
 * sequential pass, so that the path index and the document table are sized
 * once before the load instead of rehashing all along.  A malformed stream
 * stops the count (the load reports it). */
static void count_checkpoint(const uint8_t *p, size_t n, size_t *docs, size_t *binds)
{
    *docs = *binds = 0;
    if (n == 0)
        return;                    /* (p may be NULL: no arithmetic on it) */
    rd_t r = { .p = p, .end = p + n };
    const uint8_t *last_id = NULL;
    while (r.p < r.end && !r.bad) {
        uint8_t type = *r.p++;
        const uint8_t *id;
        switch (type) {
        case REC_VERSION:
            id = take(&r, 16);
            take(&r, 8 + 8 + 4 + 8 + 8 + 16);
            {
                uint32_t ne = take32(&r);
                if (!r.bad && (size_t)(r.end - r.p) / 12 < ne)
                    r.bad = 1;
                else
                    take(&r, (size_t)ne * 12);
            }
            if (id && (!last_id || memcmp(id, last_id, 16) != 0))
                (*docs)++;
            last_id = id;
            break;
        case REC_BIND:
            take(&r, 16);
            take(&r, take16(&r));
            (*binds)++;
            break;
        default:                   /* a checkpoint has no other records */
            r.bad = 1;
            break;
        }
    }
}

int apply_checkpoint(sdb_t *db, const uint8_t *p, size_t n)
{
    size_t docs, binds;
    count_checkpoint(p, n, &docs, &binds);
    /* sizing is an optimization: without memory the tables grow as they go */
    (void)doc_table_grow(db, db->ndocs + docs);
    pathidx_reserve(db->paths, pathidx_count(db->paths) + binds);
    return apply_stream(db, p, n, 0, 1, 0);
}

int records_describe(const uint8_t *p, size_t n, const char *prefix, FILE *out)
{
    rd_t r = { .p = p, .end = p + n };
    while (r.p < r.end) {
        uint8_t type = *r.p++;
        sdb_id_t id;
        char ids[37];
        uint16_t len;
        const uint8_t *path;
        uint64_t a, b;
        switch (type) {
        case REC_VERSION:
            take_id(&r, &id);
            a = take64(&r);
            b = take64(&r);
            take(&r, 4 + 8 + 8 + 16);
            take(&r, (size_t)take32(&r) * 12);
            sdb_id_format(&id, ids);
            if (!r.bad)
                fprintf(out, "%sdocument %s version %" PRIu64 " (%" PRIu64 " bytes) written\n",
                        prefix, ids, a, b);
            break;
        case REC_BIND:
        case REC_UNBIND:
            if (type == REC_BIND)
                take_id(&r, &id);
            len = take16(&r);
            path = take(&r, len);
            if (r.bad)
                break;
            if (type == REC_BIND) {
                sdb_id_format(&id, ids);
                fprintf(out, "%spath \"%.*s\" bound to document %s\n", prefix, (int)len,
                        (const char *)path, ids);
            } else {
                fprintf(out, "%spath \"%.*s\" unbound\n", prefix, (int)len, (const char *)path);
            }
            break;
        case REC_DELETE_DOC:
            take_id(&r, &id);
            sdb_id_format(&id, ids);
            if (!r.bad)
                fprintf(out, "%sdocument %s deleted\n", prefix, ids);
            break;
        case REC_DROP_VERSION:
            take_id(&r, &id);
            a = take64(&r);
            sdb_id_format(&id, ids);
            if (!r.bad)
                fprintf(out, "%sdocument %s version %" PRIu64 " dropped\n", prefix, ids, a);
            break;
        default:
            r.bad = 1;
            break;
        }
        if (r.bad)
            return SDB_ECORRUPT;
    }
    return ferror(out) ? SDB_ENOMEM : SDB_OK;
}

typedef struct {
    int (*fn)(doc_t *d, void *arg);
    void *arg;
} foreach_t;

static int foreach_cb(void *obj, void *arg)
{
    doc_t *d = obj;
    const foreach_t *f = arg;
    return d->cur ? f->fn(d, f->arg) : 0;
}

int state_foreach_doc(sdb_t *db, int (*fn)(doc_t *d, void *arg), void *arg)
{
    foreach_t f = { fn, arg };
    return slab_foreach(&db->doc_slab, foreach_cb, &f);
}

void state_init(sdb_t *db)
{
    slab_init(&db->doc_slab, sizeof(doc_t));
    slab_init(&db->ver_slab, sizeof(docver_t));
}

/* Frees the whole state (close, or a failed open); the state can be loaded
 * again afterwards. */
static int destroy_doc_cb(doc_t *d, void *arg)
{
    (void)arg;
    for (docver_t *v = d->cur; v; v = v->older)
        if (v->ext != &v->ext1)
            free(v->ext);
    if (d->paths != &d->path1)
        free(d->paths);
    return 0;
}

void state_destroy(sdb_t *db)
{
    state_foreach_doc(db, destroy_doc_cb, NULL);
    free(db->docs);
    db->docs = NULL;
    db->docs_cap = db->ndocs = 0;
    pathidx_free(db->paths);
    db->paths = NULL;
    slab_destroy(&db->doc_slab);
    slab_destroy(&db->ver_slab);
    state_init(db);
}

/* A record of a stream that ends a version: DROP_VERSION (version > 0) or
 * DELETE_DOC (version 0: every version of the document), at offset pos. */
typedef struct {
    sdb_id_t id;
    uint64_t version;
    size_t pos;
} kill_t;

static int kill_cmp(const void *a, const void *b)
{
    return memcmp(((const kill_t *)a)->id.b, ((const kill_t *)b)->id.b, 16);
}

/* 1 when a record after offset pos (k sorted by id) ends (id, version). */
static int killed_later(const kill_t *k, size_t nk, const sdb_id_t *id, uint64_t version, size_t pos)
{
    size_t lo = 0, hi = nk;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (memcmp(k[mid].id.b, id->b, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < nk && id_eq(&k[lo].id, id); lo++)
        if (k[lo].pos > pos && (k[lo].version == 0 || k[lo].version == version))
            return 1;
    return 0;
}

/* Collects the DROP_VERSION and DELETE_DOC records of a stream, sorted by
 * id.  0, SDB_ECORRUPT or SDB_ENOMEM. */
static int collect_kills(const uint8_t *p, size_t n, kill_t **out, size_t *nout)
{
    rd_t r = { .p = p, .end = p + n };
    kill_t *k = NULL;
    size_t nk = 0, cap = 0;
    while (r.p < r.end && !r.bad) {
        size_t pos = (size_t)(r.p - p);
        uint8_t type = *r.p++;
        kill_t x = { .pos = pos };
        switch (type) {
        case REC_VERSION:
            take(&r, 16 + 8 + 8 + 4 + 8 + 8 + 16);
            {
                uint32_t ne = take32(&r);
                if (!r.bad && (size_t)(r.end - r.p) / 12 < ne)
                    r.bad = 1;
                else
                    take(&r, (size_t)ne * 12);
            }
            continue;
        case REC_BIND:
            take(&r, 16);
            take(&r, take16(&r));
            continue;
        case REC_UNBIND:
            take(&r, take16(&r));
            continue;
        case REC_DELETE_DOC:
            take_id(&r, &x.id);
            break;
        case REC_DROP_VERSION:
            take_id(&r, &x.id);
            x.version = take64(&r);
            if (x.version == 0)
                r.bad = 1;
            break;
        default:
            r.bad = 1;
            continue;
        }
        if (r.bad)
            break;
        if (nk == cap) {
            size_t nc = cap ? cap * 2 : 16;
            kill_t *t = realloc(k, nc * sizeof(*t));
            if (!t) {
                free(k);
                return SDB_ENOMEM;
            }
            k = t;
            cap = nc;
        }
        k[nk++] = x;
    }
    if (r.bad) {
        free(k);
        return SDB_ECORRUPT;
    }
    if (nk > 1)
        qsort(k, nk, sizeof(*k), kill_cmp);
    *out = k;
    *nout = nk;
    return SDB_OK;
}

/* Only the versions that survive the stream are checked: a version that a
 * later record of the same stream drops or deletes is gone once the stream
 * is applied, and its pages may legitimately hold other data by now (lazy
 * mode puts many commits into one group; after the group's sync the pages
 * of versions it dropped are free and reused, while the group can still be
 * the journal's last). */
int records_check_data(sdb_t *db, const uint8_t *p, size_t n)
{
    kill_t *kills = NULL;
    size_t nkills = 0;
    int krc = collect_kills(p, n, &kills, &nkills);
    if (krc)
        return krc;
    rd_t r = { .p = p, .end = p + n };
    while (r.p < r.end && !r.bad) {
        size_t pos = (size_t)(r.p - p);
        uint8_t type = *r.p++;
        sdb_id_t id;
        switch (type) {
        case REC_VERSION: {
            docver_t v = { 0 };
            take_id(&r, &id);
            v.version = take64(&r);
            v.size = take64(&r);
            v.crc = take32(&r);
            take64(&r);
            v.modified_ms = (int64_t)take64(&r);
            const uint8_t *blob = take(&r, 16);
            v.nextents = take32(&r);
            if (r.bad || (size_t)(r.end - r.p) / 12 < v.nextents) {
                free(kills);
                return SDB_ECORRUPT;
            }
            memcpy(v.blob, blob, 16);
            extent_t *e = v.nextents ? malloc(v.nextents * sizeof(*e)) : NULL;
            if (v.nextents && !e) {
                free(kills);
                return SDB_ENOMEM;
            }
            for (uint32_t i = 0; i < v.nextents; i++) {
                e[i].start = take64(&r);
                e[i].count = take32(&r);
            }
            v.ext = e;
            int rc = killed_later(kills, nkills, &id, v.version, pos) ? SDB_OK
                                                                      : docver_verify(db, &v);
            free(e);
            if (rc) {
                free(kills);
                return rc;
            }
            break;
        }
        case REC_BIND:
            take(&r, 16);
            take(&r, take16(&r));
            break;
        case REC_UNBIND:
            take(&r, take16(&r));
            break;
        case REC_DELETE_DOC:
            take(&r, 16);
            break;
        case REC_DROP_VERSION:
            take(&r, 24);
            break;
        default:
            free(kills);
            return SDB_ECORRUPT;
        }
    }
    free(kills);
    return r.bad ? SDB_ECORRUPT : SDB_OK;
}
