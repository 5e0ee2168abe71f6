/*
 * db.c -- the public API of streamdb.h on top of the state, the group
 * commit and the journal: opening and closing, streamed writers and
 * snapshot readers, lookups, listings, stats.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/commit.h"
#include "engine/journal.h"
#include "engine/pcache.h"
#include "engine/util.h"

/* ---- opening and closing ---- */

static int config_ok(const sdb_config_t *c)
{
    return c->page_size >= 512 && c->page_size <= 65536 && !(c->page_size & (c->page_size - 1)) &&
           c->max_document_size > 0 && c->max_db_size >= 3ull * c->page_size;
}

static _Atomic int g_fg_checkpoints;

static _Atomic unsigned g_cp_slice_entries;

void sdb_test_foreground_checkpoints(int on)
{
    atomic_store(&g_fg_checkpoints, on ? 1 : 0);
}

void sdb_test_checkpoint_slice(unsigned entries)
{
    atomic_store(&g_cp_slice_entries, entries);
}

void sdb_test_checkpoint_counts(sdb_t *db, uint64_t *foreground, uint64_t *background)
{
    if (foreground)
        *foreground = atomic_load(&db->n_fg_checkpoints);
    if (background)
        *background = atomic_load(&db->n_bg_checkpoints);
}

int sdb_test_checkpoint_running(sdb_t *db)
{
    return journal_bg_running(db);
}

void sdb_test_checkpoint_pause(sdb_t *db, int on)
{
    atomic_store(&db->cp_pause, on ? 1 : 0);
}

int sdb_test_checkpoint_pausing(sdb_t *db)
{
    return atomic_load(&db->cp_pausing);
}

void sdb_test_checkpoint_soon(sdb_t *db)
{
    atomic_store(&db->cp_soon, 1);
}

sdb_t *db_new(sdb_backend_t *be, const sdb_config_t *cfg)
{
    sdb_t *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    db->cfg = *cfg;
    db->be = be;
    db->fg_checkpoints = atomic_load(&g_fg_checkpoints);
    db->cp_slice_entries = atomic_load(&g_cp_slice_entries);
    db->page_size = cfg->page_size;
    db->cap = cfg->page_size - PAGE_HDR;
    db->crc_op_full = crc32_combine_gen(db->cap);
    atomic_init(&db->quick, cfg->quick_mode);
    state_lock_init(db);
    state_init(db);
    pthread_mutex_init(&db->fs_lock, NULL);
    pthread_mutex_init(&db->q_lock, NULL);
    pthread_cond_init(&db->gather_cv, NULL);
    pthread_mutex_init(&db->ls.lock, NULL);
    pthread_cond_init(&db->ls.cv, NULL);
    db->q_tail = &db->q_head;
    db->pending_tail = &db->pending;
    db->last_sync_ns = util_mono_ns();
    return db;
}

void db_free(sdb_t *db)
{
    journal_bg_stop(db);
    commit_lazy_stop(db);
    state_destroy(db);
    freespace_destroy(&db->fs);
    while (db->pending) {
        pfree_t *pf = db->pending;
        db->pending = pf->next;
        if (pf->ext != &pf->ext1)
            free(pf->ext);
        free(pf);
    }
    free(db->jpages);
    free(db->jres);
    free(db->cppages);
    free(db->jbuf.p);
    pcache_free(db->cache);
    if (db->be)
        db->be->close(db->be);
    state_lock_destroy(db);
    pthread_mutex_destroy(&db->fs_lock);
    pthread_mutex_destroy(&db->q_lock);
    pthread_cond_destroy(&db->gather_cv);
    pthread_mutex_destroy(&db->ls.lock);
    pthread_cond_destroy(&db->ls.cv);
    free(db);
}

int sdb_open_backend(sdb_backend_t *be, const sdb_config_t *cfg, sdb_t **out)
{
    sdb_config_t def;
    if (!cfg) {
        sdb_config_default(&def);
        cfg = &def;
    }
    if (!be)
        return SDB_EINVAL;
    if (!out || !config_ok(cfg)) {
        be->close(be);
        return SDB_EINVAL;
    }
    sdb_t *db = db_new(be, cfg);
    if (!db) {
        be->close(be);
        return SDB_ENOMEM;
    }
    int rc = journal_open(db);
    atomic_store(&db->stat_jpages, db->njpages);
    if (!rc && !be->map) {
        db->cache = pcache_new(cfg->page_cache_pages, db->page_size);
        if (!db->cache && cfg->page_cache_pages)
            rc = SDB_ENOMEM;
    }
    if (rc) {
        db->fatal = SDB_EIO;       /* nothing to flush */
        sdb_close(db);
        return rc;
    }
    if (db->slot_damaged && (rc = journal_repair_slot(db)) != SDB_OK) {
        sdb_close(db);
        return rc;
    }
    /* The state came from the older slot because the newest checkpoint is
       damaged (journal_open): a fresh checkpoint replaces the damaged slot,
       so that both slots are good again. */
    if (db->slot_fallback && (rc = journal_checkpoint(db)) != SDB_OK) {
        sdb_close(db);
        return rc;
    }
    db->slot_fallback = 0;
    *out = db;
    return SDB_OK;
}

int sdb_open(const char *file, const sdb_config_t *cfg, sdb_t **out)
{
    sdb_config_t def;
    if (!cfg) {
        sdb_config_default(&def);
        cfg = &def;
    }
    if (!file || !*file || !out || !config_ok(cfg))
        return SDB_EINVAL;
    sdb_backend_t *be;
    int rc = backend_file_open(file, cfg->use_mmap, &be);
    if (rc)
        return rc;
    return sdb_open_backend(be, cfg, out);
}

int sdb_open_memory(const sdb_config_t *cfg, sdb_t **out)
{
    sdb_config_t def;
    if (!cfg) {
        sdb_config_default(&def);
        cfg = &def;
    }
    if (!out || !config_ok(cfg))
        return SDB_EINVAL;
    sdb_backend_t *be = backend_mem_new();
    if (!be)
        return SDB_ENOMEM;
    return sdb_open_backend(be, cfg, out);
}

int sdb_close(sdb_t *db)
{
    if (!db)
        return SDB_OK;
    journal_bg_stop(db);           /* a checkpoint follows anyway */
    int rc = atomic_load(&db->fatal);
    if (!rc) {
        /* a clean close leaves a checkpoint and an empty journal: reopening is
           one sequential read, and damage anywhere is caught by its CRCs */
        commit_req_t r = { .op = db->njpages > 0 || db->jbuf.len ? OP_CHECKPOINT : OP_FLUSH };
        rc = commit_submit(db, &r);
    }
    db_free(db);
    return rc;
}

void sdb_set_quick_mode(sdb_t *db, int enabled)
{
    if (db)
        atomic_store(&db->quick, enabled ? 1 : 0);
}

/* ---- page reads ---- */

int pager_read(sdb_t *db, pgno_t pg, uint8_t *out)
{
    const uint8_t *m = db->be->map ? db->be->map(db->be, pg * db->page_size, db->page_size) : NULL;
    if (m) {
        memcpy(out, m, db->page_size);
        return SDB_OK;
    }
    if (db->cache && pcache_get(db->cache, pg, out)) {
        atomic_fetch_add(&db->cache_hits, 1);
        return SDB_OK;
    }
    atomic_fetch_add(&db->cache_misses, 1);
    int rc = db->be->read(db->be, pg * db->page_size, out, db->page_size);
    if (!rc && db->cache)
        pcache_put(db->cache, pg, out);
    return rc;
}

void db_data_written(sdb_t *db, pgno_t start, uint64_t n, int rc)
{
    if (db->cache)                 /* never serve an earlier life of a reused page */
        pcache_invalidate(db->cache, start, n);
    atomic_store(&db->data_dirty, 1);
    if (rc == SDB_EIO)             /* a failing disk: stop acknowledging (ENOSPC is not sticky) */
        atomic_store(&db->fatal, SDB_EIO);
    if (rc == SDB_ENOSPC) {
        /* the file system had no block for (some of) these pages: once given
           back they wait in quarantine while written pages are free */
        pthread_mutex_lock(&db->fs_lock);
        freespace_mark_unbacked(&db->fs, start, n);
        pthread_mutex_unlock(&db->fs_lock);
    }
}

/* ---- writers ---- */

struct sdb_writer {
    sdb_t *db;
    char *path;
    size_t plen;
    uint64_t if_version;
    docver_t *ver;
    uint32_t ecap;
    pgno_t pool;
    uint64_t pool_left;
    uint64_t expect_pages;        /* pages still expected (sdb_put), or 0 */
    uint64_t grow;
    uint8_t *run;
    uint32_t run_cap, run_n;
    pgno_t run_start;
    int have_page;
    uint32_t fill;
    uint32_t index;
    int err;                      /* sticky I/O error */
    int in_group;                 /* sdb_writer_commit_many's duplicate check */
};

static void writer_free_pages(sdb_writer_t *w)
{
    sdb_t *db = w->db;
    pthread_mutex_lock(&db->fs_lock);
    if (w->pool_left)
        freespace_free(&db->fs, w->pool, w->pool_left);
    for (uint32_t i = 0; i < w->ver->nextents; i++)
        freespace_free(&db->fs, w->ver->ext[i].start, w->ver->ext[i].count);
    pthread_mutex_unlock(&db->fs_lock);
    w->pool_left = 0;
    w->ver->nextents = 0;
}

static void writer_destroy(sdb_writer_t *w)
{
    free(w->path);
    free(w->run);
    if (w->ver) {
        free(w->ver->ext);
        free(w->ver);
    }
    free(w);
}

int sdb_writer_open(sdb_t *db, const char *path, uint64_t if_version, sdb_writer_t **out)
{
    size_t plen;
    if (!db || !out || util_check_path(path, &plen))
        return SDB_EINVAL;
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    sdb_writer_t *w = calloc(1, sizeof(*w));
    if (!w)
        return SDB_ENOMEM;
    w->db = db;
    w->if_version = if_version;
    w->plen = plen;
    w->path = malloc(plen + 1);
    w->ver = calloc(1, sizeof(*w->ver));
    w->run_cap = db->page_size >= (1u << 20) ? 1 : (1u << 20) / db->page_size;
    w->grow = 8;
    if (!w->path || !w->ver || util_fast_random(w->ver->blob, 16)) {
        writer_destroy(w);
        return SDB_ENOMEM;
    }
    memcpy(w->path, path, plen + 1);
    *out = w;
    return SDB_OK;
}

static int writer_flush(sdb_writer_t *w)
{
    if (w->run_n == 0)
        return SDB_OK;
    sdb_t *db = w->db;
    int rc = db->be->write(db->be, w->run_start * db->page_size, w->run,
                           (size_t)w->run_n * db->page_size);
    if (!rc && db->cfg.durable && db->be->writeback && w->run_n == w->run_cap && w->run_cap >= 64)
        db->be->writeback(db->be, w->run_start * db->page_size, (uint64_t)w->run_n * db->page_size);
    db_data_written(db, w->run_start, w->run_n, rc);
    w->run_n = 0;
    return rc;
}

static void writer_seal(sdb_writer_t *w, int last)
{
    uint8_t *pg = w->run + (size_t)w->run_n * w->db->page_size;
    if (w->fill < w->db->cap)          /* never write stale heap bytes to the file */
        memset(pg + PAGE_HDR + w->fill, 0, w->db->cap - w->fill);
    page_hdr_t h = { .type = PT_DATA, .flags = last ? PF_LAST : 0, .data_len = w->fill,
                     .index = w->index };
    memcpy(h.owner, w->ver->blob, 16);
    uint32_t dcrc;
    page_seal(pg, &h, pg + PAGE_HDR, &dcrc);
    w->ver->crc = crc_add(w->db, w->ver->crc, dcrc, w->fill);
    w->run_n++;
    w->index++;
    w->have_page = 0;
}

/* Takes the next page for the writer and records it in its extents. */
static int writer_next_page(sdb_writer_t *w)
{
    sdb_t *db = w->db;
    if (w->pool_left == 0) {
        uint64_t want = w->expect_pages ? w->expect_pages : w->grow;
        if (want > 4096)
            want = 4096;
        if (!w->expect_pages && w->grow < 4096)
            w->grow *= 2;
        pthread_mutex_lock(&db->fs_lock);
        int rc = freespace_alloc(&db->fs, want, &w->pool, &w->pool_left);
        pthread_mutex_unlock(&db->fs_lock);
        if (rc)
            return rc;
    }
    pgno_t pg = w->pool++;
    w->pool_left--;
    if (w->expect_pages)
        w->expect_pages--;
    docver_t *v = w->ver;
    if (v->nextents && v->ext[v->nextents - 1].start + v->ext[v->nextents - 1].count == pg &&
        v->ext[v->nextents - 1].count < UINT32_MAX) {
        v->ext[v->nextents - 1].count++;
    } else {
        if (v->nextents == w->ecap) {
            uint32_t nc = w->ecap ? w->ecap * 2 : 4;
            extent_t *e = realloc(v->ext, nc * sizeof(*e));
            if (!e) {
                pthread_mutex_lock(&db->fs_lock);
                freespace_free(&db->fs, pg, 1);
                pthread_mutex_unlock(&db->fs_lock);
                return SDB_ENOMEM;
            }
            v->ext = e;
            w->ecap = nc;
        }
        v->ext[v->nextents++] = (extent_t){ pg, 1 };
    }
    if (w->run_n > 0 && (w->run_n == w->run_cap || pg != w->run_start + w->run_n)) {
        int rc = writer_flush(w);
        if (rc)
            return rc;
    }
    if (w->run_n == 0)
        w->run_start = pg;
    w->have_page = 1;
    w->fill = 0;
    return SDB_OK;
}

int sdb_writer_write(sdb_writer_t *w, const void *data, size_t len)
{
    if (!w || (!data && len))
        return SDB_EINVAL;
    if (w->err)
        return w->err;
    sdb_t *db = w->db;
    if (len > db->cfg.max_document_size || w->ver->size + len > db->cfg.max_document_size)
        return SDB_ETOOLARGE;
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    if (!w->run) {
        w->run = malloc((size_t)w->run_cap * db->page_size);
        if (!w->run)
            return SDB_ENOMEM;
    }
    const uint8_t *p = data;
    while (len > 0) {
        if (w->have_page && w->fill == db->cap)
            writer_seal(w, 0);
        if (!w->have_page) {
            int rc = writer_next_page(w);
            if (rc) {
                w->err = rc;       /* bytes already taken cannot be un-taken: abort only */
                return rc;
            }
        }
        uint32_t room = db->cap - w->fill;
        uint32_t k = len < room ? (uint32_t)len : room;
        memcpy(w->run + (size_t)w->run_n * db->page_size + PAGE_HDR + w->fill, p, k);
        w->fill += k;
        w->ver->size += k;
        p += k;
        len -= k;
    }
    return SDB_OK;
}

int sdb_writer_checksum(sdb_writer_t *w, uint64_t *size, uint32_t *crc)
{
    if (!w)
        return SDB_EINVAL;
    /* sealed pages are in ver->crc; the page being filled is hashed here */
    uint32_t c = w->ver->crc;
    if (w->have_page && w->fill) {
        const uint8_t *data = w->run + (size_t)w->run_n * w->db->page_size + PAGE_HDR;
        c = (uint32_t)crc32_combine(c, crc32(0L, data, w->fill), w->fill);
    }
    if (size)
        *size = w->ver->size;
    if (crc)
        *crc = c;
    return SDB_OK;
}

/* Seals the writer's last page, gives back the pages it took and did not
 * use, and makes *r its commit request (the last run is written by the
 * commit leader, with its batch's). */
static void writer_request(sdb_writer_t *w, commit_req_t *r)
{
    sdb_t *db = w->db;
    if (w->have_page)
        writer_seal(w, 1);
    pthread_mutex_lock(&db->fs_lock);
    if (w->pool_left)
        freespace_free(&db->fs, w->pool, w->pool_left);
    pthread_mutex_unlock(&db->fs_lock);
    w->pool_left = 0;
    *r = (commit_req_t){ .op = OP_PUT, .path = w->path, .plen = w->plen,
                         .if_version = w->if_version, .ver = w->ver,
                         .run = w->run, .run_start = w->run_start, .run_n = w->run_n };
    w->run_n = 0;
}

/* Frees the writer after its commit ended with rc (its pages too when rc
 * is an error: on success the state owns them). */
static void writer_release(sdb_writer_t *w, int rc)
{
    if (rc)
        writer_free_pages(w);
    writer_destroy(w);
}

int sdb_writer_commit(sdb_writer_t *w, sdb_docinfo_t *out)
{
    if (!w)
        return SDB_EINVAL;
    int rc = w->err;
    if (!rc) {
        commit_req_t r;
        writer_request(w, &r);
        rc = commit_submit(w->db, &r);
        if (!rc && out)
            *out = r.info;
    }
    writer_release(w, rc);
    return rc;
}

#define MANY_ON_STACK 16

int sdb_writer_commit_many(sdb_writer_t *const *w, size_t n, sdb_docinfo_t *out, int *rcs)
{
    if (n == 0)
        return SDB_OK;
    if (!w || !rcs)
        return SDB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!w[i] || w[i]->db != w[0]->db)
            return SDB_EINVAL;
    size_t marked = 0;
    while (marked < n && !w[marked]->in_group)
        w[marked++]->in_group = 1;
    for (size_t i = 0; i < marked; i++)
        w[i]->in_group = 0;
    if (marked < n)
        return SDB_EINVAL;             /* a writer given twice */

    sdb_t *db = w[0]->db;
    commit_req_t rbuf[MANY_ON_STACK], *pbuf[MANY_ON_STACK];
    commit_req_t *r = rbuf, **p = pbuf;
    if (n > MANY_ON_STACK) {
        r = malloc(n * sizeof(*r));
        p = malloc(n * sizeof(*p));
        if (!r || !p) {
            /* no memory to queue them together: commit them one by one (same
               results, one sync each in durable mode) */
            free(r);
            free(p);
            for (size_t i = 0; i < n; i++)
                rcs[i] = sdb_writer_commit(w[i], out ? &out[i] : NULL);
            return SDB_OK;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        rcs[i] = w[i]->err;
        if (!rcs[i]) {
            writer_request(w[i], &r[i]);
            p[m++] = &r[i];
        }
    }
    commit_submit_many(db, p, m);
    for (size_t i = 0; i < n; i++) {
        if (!rcs[i]) {
            rcs[i] = r[i].rc;
            if (!rcs[i] && out)
                out[i] = r[i].info;
        }
        writer_release(w[i], rcs[i]);
    }
    if (r != rbuf) {
        free(r);
        free(p);
    }
    return SDB_OK;
}

void sdb_writer_abort(sdb_writer_t *w)
{
    if (!w)
        return;
    writer_free_pages(w);
    writer_destroy(w);
}

static int put_common(sdb_t *db, const char *path, const void *data, size_t len,
                      uint64_t if_version, sdb_docinfo_t *out)
{
    if (!db || (!data && len))
        return SDB_EINVAL;
    if (len > db->cfg.max_document_size)
        return util_check_path(path, NULL) ? SDB_EINVAL : SDB_ETOOLARGE;
    sdb_writer_t *w;
    int rc = sdb_writer_open(db, path, if_version, &w);
    if (rc)
        return rc;
    w->expect_pages = (len + db->cap - 1) / db->cap;
    if (w->expect_pages < w->run_cap) {
        w->run_cap = (uint32_t)(w->expect_pages ? w->expect_pages : 1);
    }
    rc = sdb_writer_write(w, data, len);
    if (rc) {
        sdb_writer_abort(w);
        return rc;
    }
    return sdb_writer_commit(w, out);
}

int sdb_put(sdb_t *db, const char *path, const void *data, size_t len, sdb_docinfo_t *out)
{
    return put_common(db, path, data, len, UINT64_MAX, out);
}

int sdb_put_if(sdb_t *db, const char *path, const void *data, size_t len, uint64_t if_version,
               sdb_docinfo_t *out)
{
    if (if_version == UINT64_MAX)
        return SDB_EINVAL;
    return put_common(db, path, data, len, if_version, out);
}

/* ---- atomic batches ---- */

typedef struct {
    int op;                        /* OP_PUT, OP_DELETE, OP_BIND, OP_UNBIND */
    size_t path_off, plen;         /* the path, NUL-terminated, in the batch's bytes */
    size_t data_off, len;          /* OP_PUT: the content in the batch's bytes */
    sdb_id_t id;
    uint64_t if_version;
} batch_item_t;

struct sdb_batch {
    batch_item_t *items;
    size_t n, cap;
    buf_t bytes;                   /* paths and contents */
    uint64_t content;              /* put bytes in all */
};

int sdb_batch_new(sdb_batch_t **out)
{
    if (!out)
        return SDB_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? SDB_OK : SDB_ENOMEM;
}

void sdb_batch_free(sdb_batch_t *b)
{
    if (!b)
        return;
    free(b->items);
    free(b->bytes.p);
    free(b);
}

void sdb_batch_clear(sdb_batch_t *b)
{
    if (!b)
        return;
    b->n = 0;
    b->bytes.len = 0;
    b->content = 0;
}

size_t sdb_batch_count(const sdb_batch_t *b)
{
    return b ? b->n : 0;
}

static int batch_add(sdb_batch_t *b, int op, const char *path, const sdb_id_t *id,
                     const void *data, size_t len, uint64_t if_version)
{
    size_t plen;
    if (!b || util_check_path(path, &plen) || (!data && len) ||
        ((op == OP_BIND || op == OP_UNBIND) && !id))
        return SDB_EINVAL;
    if (b->n >= SDB_BATCH_MAX_OPS || len > SDB_BATCH_MAX_BYTES - b->content)
        return SDB_ETOOLARGE;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        batch_item_t *t = realloc(b->items, nc * sizeof(*t));
        if (!t)
            return SDB_ENOMEM;
        b->items = t;
        b->cap = nc;
    }
    size_t mark = b->bytes.len;
    batch_item_t *it = &b->items[b->n];
    *it = (batch_item_t){ .op = op, .path_off = mark, .plen = plen, .len = len,
                          .if_version = if_version };
    if (id)
        it->id = *id;
    if (buf_put(&b->bytes, path, plen + 1))
        return SDB_ENOMEM;
    it->data_off = b->bytes.len;
    if (len && buf_put(&b->bytes, data, len)) {
        b->bytes.len = mark;
        return SDB_ENOMEM;
    }
    b->content += len;
    b->n++;
    return SDB_OK;
}

int sdb_batch_put(sdb_batch_t *b, const char *path, const void *data, size_t len,
                  uint64_t if_version)
{
    return batch_add(b, OP_PUT, path, NULL, data, len, if_version);
}

int sdb_batch_delete(sdb_batch_t *b, const char *path, uint64_t if_version)
{
    return batch_add(b, OP_DELETE, path, NULL, NULL, 0, if_version);
}

int sdb_batch_bind(sdb_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version)
{
    return batch_add(b, OP_BIND, path, id, NULL, 0, if_version);
}

int sdb_batch_unbind(sdb_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version)
{
    return batch_add(b, OP_UNBIND, path, id, NULL, 0, if_version);
}

/* Writes the data runs of a batch's puts that writer_request left to the
 * commit leader, merging runs that follow each other on disk into writes
 * of up to BATCH_MERGE bytes (a batch of small puts takes its pages in one
 * stretch, and one large write costs far less than many small ones), and
 * frees each run's buffer once written, so that a commit holds about one
 * merge buffer of pages rather than one page per put. */
#define BATCH_MERGE (1u << 20)

typedef struct {
    sdb_t *db;
    uint8_t *buf;                  /* BATCH_MERGE bytes, or NULL: write run by run */
    pgno_t start;
    uint64_t n;                    /* pages in buf */
} merge_t;

static int merge_flush(merge_t *m)
{
    if (m->n == 0)
        return SDB_OK;
    sdb_t *db = m->db;
    int rc = db->be->write(db->be, m->start * db->page_size, m->buf, m->n * db->page_size);
    db_data_written(db, m->start, m->n, rc);
    m->n = 0;
    return rc;
}

static int merge_run(merge_t *m, commit_req_t *r)
{
    sdb_t *db = m->db;
    size_t ps = db->page_size, bytes = (size_t)r->run_n * ps;
    int rc = SDB_OK;
    if (r->run_n == 0)
        return SDB_OK;
    if (m->n && (r->run_start != m->start + m->n || m->n * ps + bytes > BATCH_MERGE))
        rc = merge_flush(m);
    if (!rc && m->buf && bytes <= BATCH_MERGE) {
        if (m->n == 0)
            m->start = r->run_start;
        memcpy(m->buf + m->n * ps, r->run, bytes);
        m->n += r->run_n;
    } else if (!rc) {
        rc = db->be->write(db->be, r->run_start * ps, r->run, bytes);
        db_data_written(db, r->run_start, r->run_n, rc);
    }
    r->run_n = 0;
    return rc;
}

int sdb_batch_commit(sdb_t *db, const sdb_batch_t *b, sdb_docinfo_t *results, size_t *failed)
{
    if (failed)
        *failed = SDB_BATCH_NO_ITEM;
    if (!db || !b)
        return SDB_EINVAL;
    if (b->n == 0)
        return SDB_OK;
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].op == OP_PUT && b->items[i].len > db->cfg.max_document_size) {
            if (failed)
                *failed = i;
            return SDB_ETOOLARGE;
        }
    int rc = SDB_OK;
    size_t nw = 0;
    merge_t m = { .db = db, .buf = malloc(BATCH_MERGE) };
    commit_req_t *items = calloc(b->n, sizeof(*items));
    sdb_writer_t **w = calloc(b->n, sizeof(*w));
    if (!items || !w) {
        rc = SDB_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < b->n && !rc; i++) {
        const batch_item_t *bi = &b->items[i];
        const char *path = (const char *)b->bytes.p + bi->path_off;
        commit_req_t *it = &items[i];
        if (bi->op != OP_PUT) {
            *it = (commit_req_t){ .op = bi->op, .path = path, .plen = bi->plen, .id = bi->id,
                                  .if_version = bi->if_version };
            continue;
        }
        /* as put_common: a writer sized for the content, its last pages
           handed over as a run, written here (merged) rather than by the
           leader, and its buffer freed once written */
        rc = sdb_writer_open(db, path, bi->if_version, &w[nw]);
        if (rc)
            break;
        sdb_writer_t *x = w[nw++];
        x->expect_pages = (bi->len + db->cap - 1) / db->cap;
        if (x->expect_pages < x->run_cap)
            x->run_cap = (uint32_t)(x->expect_pages ? x->expect_pages : 1);
        rc = sdb_writer_write(x, b->bytes.p ? b->bytes.p + bi->data_off : NULL, bi->len);
        if (!rc)
            rc = x->err;
        if (rc)
            break;
        writer_request(x, it);
        it->if_version = bi->if_version;
        rc = merge_run(&m, it);
        free(x->run);
        x->run = NULL;
        it->run = NULL;
    }
    if (!rc)
        rc = merge_flush(&m);
    if (!rc) {
        commit_req_t r = { .op = OP_MULTI, .items = items, .nitems = b->n,
                           .failed = SDB_BATCH_NO_ITEM };
        rc = commit_submit(db, &r);
        if (rc && failed)
            *failed = r.failed;
        if (!rc && results)
            for (size_t i = 0; i < b->n; i++)
                results[i] = items[i].info;
    }
done:
    for (size_t i = 0; i < nw; i++)
        writer_release(w[i], rc);
    free(m.buf);
    free(items);
    free(w);
    return rc;
}

/* ---- readers ---- */

#define RELEASE_MIN_SIZE (32u << 20)   /* documents above this drop what they have read */
#define RELEASE_PAGES 256

/*
 * A reader walks the data pages of one version in order.  `pos` is the
 * content offset of the next page to load (page `index`, page eoff of
 * extent ei); the bytes of the page loaded last are r->page[pg_off..pg_len)
 * when it had to be copied.  `at` is the next byte to deliver and `end` the
 * first byte not to deliver: the version's size, or the end of the range set
 * by sdb_reader_range().  A seek moves `at` and recomputes the page to load
 * (page at / cap), so a range touches only the pages that hold its bytes.
 * `whole` is 1 while the reader reads the content from byte 0 to its end:
 * only then is the content CRC accumulated and checked (a seek or a shorter
 * range clears it; every page read is still checked against its own CRC).
 */
struct sdb_reader {
    sdb_t *db;
    docver_t *v;
    int quick;
    int whole;
    pgno_t rel_start;              /* mapped pages read but not yet released */
    uint32_t rel_count;
    uint64_t pos, at, end;
    uint32_t ei, eoff, index;
    uint8_t *page;
    uint32_t pg_len, pg_off;
    uint32_t crc;
    int err;
};

static void fill_info(const doc_t *d, const docver_t *v, sdb_docinfo_t *info)
{
    info->id = d->id;
    info->version = v->version;
    info->size = v->size;
    info->crc32 = v->crc;
    info->created_ms = d->created_ms;
    info->modified_ms = v->modified_ms;
}

static int reader_new(sdb_t *db, doc_t *d, uint64_t version, sdb_reader_t **out, sdb_docinfo_t *info)
{
    docver_t *v = d ? d->cur : NULL;
    while (v && version && v->version != version)
        v = v->older;
    if (!v)
        return SDB_ENOTFOUND;
    sdb_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        return SDB_ENOMEM;
    atomic_fetch_add(&v->refs, 1);
    r->db = db;
    r->v = v;
    r->quick = atomic_load(&db->quick);
    r->whole = 1;
    r->end = v->size;
    if (info)
        fill_info(d, v, info);
    *out = r;
    return SDB_OK;
}

int sdb_reader_open(sdb_t *db, const char *path, sdb_reader_t **out, sdb_docinfo_t *info)
{
    size_t plen;
    if (!db || !out || util_check_path(path, &plen))
        return SDB_EINVAL;
    state_read_lock(db);
    pathidx_key_t *k = pathidx_get(db->paths, path, plen);
    int rc = reader_new(db, k ? k->val : NULL, 0, out, info);
    state_read_unlock(db);
    return rc;
}

int sdb_reader_open_id(sdb_t *db, const sdb_id_t *id, uint64_t version, sdb_reader_t **out,
                       sdb_docinfo_t *info)
{
    if (!db || !id || !out)
        return SDB_EINVAL;
    state_read_lock(db);
    int rc = reader_new(db, doc_find(db, id), version, out, info);
    state_read_unlock(db);
    return rc;
}

/* A large document read through the mapping would otherwise stay resident
 * in the process as it is read (a 256 MiB GET, 256 MiB of RSS): every
 * RELEASE_PAGES pages read, drop them from the mapping (not from the cache). */
static void reader_release(sdb_reader_t *r, pgno_t pg)
{
    sdb_t *db = r->db;
    if (r->rel_count && pg == r->rel_start + r->rel_count && r->rel_count < RELEASE_PAGES) {
        r->rel_count++;
        return;
    }
    if (r->rel_count)
        db->be->release(db->be, r->rel_start * db->page_size, (uint64_t)r->rel_count * db->page_size);
    r->rel_start = pg;
    r->rel_count = 1;
}

/* Verifies data page `index` of the reader's version: header at hdr, data
 * (already copied or in place) at data.  The content CRC is accumulated and
 * checked at the last page only while the reader reads the whole content. */
static int reader_check(sdb_reader_t *r, const uint8_t *hdr, const uint8_t *data, uint32_t expect)
{
    page_hdr_t h;
    uint32_t dcrc = 0;
    int last = r->pos + expect == r->v->size;
    if (page_open(hdr, data, r->db->cap, !r->quick, &h, &dcrc) || h.type != PT_DATA ||
        h.data_len != expect || h.index != r->index || memcmp(h.owner, r->v->blob, 16) ||
        !!(h.flags & PF_LAST) != last)
        return SDB_ECORRUPT;
    if (!r->quick && r->whole) {
        r->crc = crc_add(r->db, r->crc, dcrc, expect);
        if (last && r->crc != r->v->crc)
            return SDB_ECORRUPT;
    }
    return SDB_OK;
}

int sdb_reader_read(sdb_reader_t *r, void *buf, size_t cap, size_t *n)
{
    if (!r || !n || (!buf && cap))
        return SDB_EINVAL;
    *n = 0;
    if (r->err)
        return r->err;
    sdb_t *db = r->db;
    uint8_t *out = buf;
    size_t got = 0;
    while (got < cap && r->at < r->end) {
        if (r->pg_off < r->pg_len) {
            size_t k = r->pg_len - r->pg_off;
            if (k > cap - got)
                k = cap - got;
            if (k > r->end - r->at)
                k = (size_t)(r->end - r->at);
            memcpy(out + got, r->page + PAGE_HDR + r->pg_off, k);
            r->pg_off += (uint32_t)k;
            r->at += k;
            got += k;
            continue;
        }
        /* at < end <= size, so the page holding byte `at` exists: it is the
         * next one (pos <= at < pos + cap, set up by sdb_reader_range). */
        const extent_t *e = &r->v->ext[r->ei];
        pgno_t pg = e->start + r->eoff;
        uint64_t left = r->v->size - r->pos;
        uint32_t expect = left < db->cap ? (uint32_t)left : db->cap;
        uint32_t skip = (uint32_t)(r->at - r->pos);   /* > 0 only after a seek */
        const uint8_t *m = db->be->map ? db->be->map(db->be, pg * db->page_size, db->page_size) : NULL;
        int rc;
        if (m && skip == 0 && cap - got >= expect && r->end - r->at >= expect) {
            rc = reader_check(r, m, m + PAGE_HDR, expect);
            if (!rc) {
                memcpy(out + got, m + PAGE_HDR, expect);
                got += expect;
                r->at += expect;
                if (r->v->size > RELEASE_MIN_SIZE && db->be->release)
                    reader_release(r, pg);
            }
            r->pg_len = r->pg_off = 0;
        } else {
            if (!r->page && !(r->page = malloc(db->page_size))) {
                rc = SDB_ENOMEM;
            } else {
                rc = pager_read(db, pg, r->page);
                if (!rc)
                    rc = reader_check(r, r->page, r->page + PAGE_HDR, expect);
            }
            r->pg_len = rc ? 0 : expect;
            r->pg_off = rc ? 0 : skip;
        }
        if (rc) {
            r->err = rc;
            *n = got;
            return got ? SDB_OK : rc;  /* deliver what was good; the error comes next call */
        }
        r->pos += expect;
        r->index++;
        if (++r->eoff == e->count) {
            r->eoff = 0;
            r->ei++;
        }
    }
    *n = got;
    return SDB_OK;
}

int sdb_reader_range(sdb_reader_t *r, uint64_t offset, uint64_t length, uint64_t *avail)
{
    if (!r || offset > r->v->size)
        return SDB_EINVAL;
    uint64_t n = r->v->size - offset;
    if (length < n)
        n = length;
    uint64_t page = offset / r->db->cap;   /* the page holding byte `offset` */
    uint32_t ei = 0;
    uint64_t before = 0;                   /* pages in the extents before ei */
    while (ei < r->v->nextents && before + r->v->ext[ei].count <= page)
        before += r->v->ext[ei++].count;
    if (ei == r->v->nextents && offset < r->v->size)
        return SDB_ECORRUPT;               /* fewer pages than the size needs */
    r->ei = ei;
    r->eoff = (uint32_t)(page - before);
    r->index = (uint32_t)page;
    r->pos = page * r->db->cap;
    r->at = offset;
    r->end = offset + n;
    r->pg_len = r->pg_off = 0;
    r->err = 0;
    /* The content CRC can be checked only over every page from the start. */
    r->whole = offset == 0 && r->end == r->v->size;
    r->crc = 0;
    if (avail)
        *avail = n;
    return SDB_OK;
}

int sdb_reader_seek(sdb_reader_t *r, uint64_t offset)
{
    return sdb_reader_range(r, offset, UINT64_MAX, NULL);
}

void sdb_reader_set_quick(sdb_reader_t *r, int enabled)
{
    /* the content CRC needs every page from the start: while it is being
     * accumulated, the mode changes only before the first page is read */
    if (r && (!r->whole || r->pos == 0))
        r->quick = enabled ? 1 : 0;
}

void sdb_reader_close(sdb_reader_t *r)
{
    if (!r)
        return;
    if (r->rel_count && r->db->be->release)
        r->db->be->release(r->db->be, r->rel_start * r->db->page_size,
                           (uint64_t)r->rel_count * r->db->page_size);
    docver_unref(r->db, r->v);
    free(r->page);
    free(r);
}

static int read_all(sdb_reader_t *r, const sdb_docinfo_t *info, void **data, size_t *len)
{
    if (info->size > SIZE_MAX - 1)
        return SDB_ENOMEM;
    uint8_t *p = malloc(info->size ? info->size : 1);
    if (!p)
        return SDB_ENOMEM;
    size_t got = 0, n;
    int rc;
    do {
        rc = sdb_reader_read(r, p + got, info->size - got, &n);
        got += n;
    } while (!rc && n > 0 && got < info->size);
    if (!rc && got < info->size)
        rc = SDB_ECORRUPT;
    if (rc) {
        free(p);
        return rc;
    }
    *data = p;
    *len = got;
    return SDB_OK;
}

int sdb_get(sdb_t *db, const char *path, void **data, size_t *len, sdb_docinfo_t *out)
{
    if (!data || !len)
        return SDB_EINVAL;
    sdb_reader_t *r;
    sdb_docinfo_t info;
    int rc = sdb_reader_open(db, path, &r, &info);
    if (rc)
        return rc;
    rc = read_all(r, &info, data, len);
    sdb_reader_close(r);
    if (!rc && out)
        *out = info;
    return rc;
}

int sdb_get_id(sdb_t *db, const sdb_id_t *id, uint64_t version, void **data, size_t *len,
               sdb_docinfo_t *out)
{
    if (!data || !len)
        return SDB_EINVAL;
    sdb_reader_t *r;
    sdb_docinfo_t info;
    int rc = sdb_reader_open_id(db, id, version, &r, &info);
    if (rc)
        return rc;
    rc = read_all(r, &info, data, len);
    sdb_reader_close(r);
    if (!rc && out)
        *out = info;
    return rc;
}

/* ---- paths and documents ---- */

int sdb_lookup(sdb_t *db, const char *path, sdb_docinfo_t *out)
{
    size_t plen;
    if (!db || util_check_path(path, &plen))
        return SDB_EINVAL;
    state_read_lock(db);
    pathidx_key_t *k = pathidx_get(db->paths, path, plen);
    if (k && out)
        fill_info(k->val, ((doc_t *)k->val)->cur, out);
    state_read_unlock(db);
    return k ? SDB_OK : SDB_ENOTFOUND;
}

static int simple_commit(sdb_t *db, int op, const char *path, const sdb_id_t *id)
{
    commit_req_t r = { .op = op };
    if (!db)
        return SDB_EINVAL;
    if (path || op == OP_DELETE || op == OP_BIND || op == OP_UNBIND) {
        if (util_check_path(path, &r.plen))
            return SDB_EINVAL;
        r.path = path;
    }
    if (op == OP_DELETE_ID || op == OP_BIND || op == OP_UNBIND) {
        if (!id)
            return SDB_EINVAL;
        r.id = *id;
    }
    return commit_submit(db, &r);
}

int sdb_delete(sdb_t *db, const char *path) { return simple_commit(db, OP_DELETE, path, NULL); }
int sdb_delete_id(sdb_t *db, const sdb_id_t *id) { return simple_commit(db, OP_DELETE_ID, NULL, id); }
int sdb_bind(sdb_t *db, const sdb_id_t *id, const char *path) { return simple_commit(db, OP_BIND, path, id); }
int sdb_unbind(sdb_t *db, const sdb_id_t *id, const char *path) { return simple_commit(db, OP_UNBIND, path, id); }
int sdb_flush(sdb_t *db) { return simple_commit(db, OP_FLUSH, NULL, NULL); }

/* Stores in succ the smallest string greater than every string starting
 * with p[0..len); returns its length, 0 when there is none. */
static size_t successor(const char *p, size_t len, char *succ)
{
    memcpy(succ, p, len);
    while (len > 0 && (uint8_t)succ[len - 1] == 0xff)
        len--;
    if (len)
        succ[len - 1] = (char)((uint8_t)succ[len - 1] + 1);
    return len;
}

static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* A delimiter listing steps over up to this many keys of a rolled-up
 * prefix before it seeks past the rest (a seek costs about as many cache
 * misses as a dozen steps). */
#define ROLL_STEPS 16

int sdb_search(sdb_t *db, const char *prefix, const sdb_search_opts_t *opts, sdb_entry_cb cb,
               void *arg)
{
    if (!db || !prefix || !cb)
        return SDB_EINVAL;
    size_t plen = strnlen(prefix, SDB_MAX_PATH + 1);
    const char *after = opts ? opts->start_after : NULL;
    size_t alen = after ? strnlen(after, SDB_MAX_PATH + 1) : 0;
    if (plen > SDB_MAX_PATH || alen > SDB_MAX_PATH)
        return SDB_EINVAL;
    size_t limit = opts ? opts->limit : 0, count = 0;
    char delim = opts ? opts->delimiter : 0;
    char tmp[SDB_MAX_PATH + 2];
    pathidx_iter_t it;
    state_read_lock(db);
    if (after && keycmp(after, alen, prefix, plen) >= 0)
        pathidx_seek(db->paths, &it, after, alen, 0);
    else
        pathidx_seek(db->paths, &it, prefix, plen, 1);
    pathidx_key_t *k;
    paths_prefetch_start(&it);
    while ((k = pathidx_next(&it)) != NULL) {
        paths_prefetch_step(&it);
        if (k->len < plen || memcmp(k->bytes, prefix, plen) != 0)
            break;
        const char *dp = delim ? memchr(k->bytes + plen, delim, k->len - plen) : NULL;
        if (dp) {
            size_t cl = (size_t)(dp - k->bytes) + 1;
            int skip = after && keycmp(k->bytes, cl, after, alen) <= 0;
            if (!skip) {
                memcpy(tmp, k->bytes, cl);
                tmp[cl] = 0;
                count++;
                if (cb(arg, tmp, NULL))
                    break;
            }
            /* Pass the rest of the rolled-up range: step over a few keys
               (most directories are small, and the next keys are being
               prefetched), seek past it only when it is longer. */
            unsigned steps = 0;
            const pathidx_key_t *n;
            while (steps < ROLL_STEPS && (n = pathidx_peek(&it, 0)) != NULL && n->len >= cl &&
                   memcmp(n->bytes, k->bytes, cl) == 0) {
                pathidx_next(&it);
                paths_prefetch_step(&it);
                steps++;
            }
            if (steps == ROLL_STEPS) {
                size_t sl = successor(k->bytes, cl, tmp);
                if (!sl)
                    break;
                pathidx_seek(db->paths, &it, tmp, sl, 1);
                paths_prefetch_start(&it);
            }
        } else {
            sdb_docinfo_t info;
            doc_t *d = k->val;
            fill_info(d, d->cur, &info);
            count++;
            if (cb(arg, k->bytes, &info))
                break;
        }
        if (limit && count >= limit)
            break;
    }
    state_read_unlock(db);
    return SDB_OK;
}

static int cmp_keyp(const void *a, const void *b)
{
    const pathidx_key_t *x = *(pathidx_key_t *const *)a, *y = *(pathidx_key_t *const *)b;
    return keycmp(x->bytes, x->len, y->bytes, y->len);
}

int sdb_list_paths(sdb_t *db, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    if (!db || !id || !cb)
        return SDB_EINVAL;
    state_read_lock(db);
    doc_t *d = doc_find(db, id);
    int rc = d ? SDB_OK : SDB_ENOTFOUND;
    pathidx_key_t **ks = NULL;
    if (d && d->npaths) {
        ks = malloc(d->npaths * sizeof(*ks));
        if (!ks)
            rc = SDB_ENOMEM;
    }
    if (!rc && d->npaths) {
        memcpy(ks, d->paths, d->npaths * sizeof(*ks));
        qsort(ks, d->npaths, sizeof(*ks), cmp_keyp);
        sdb_docinfo_t info;
        fill_info(d, d->cur, &info);
        for (uint32_t i = 0; i < d->npaths; i++)
            if (cb(arg, ks[i]->bytes, &info))
                break;
    }
    state_read_unlock(db);
    free(ks);
    return rc;
}

int sdb_list_versions(sdb_t *db, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    if (!db || !id || !cb)
        return SDB_EINVAL;
    state_read_lock(db);
    doc_t *d = doc_find(db, id);
    for (docver_t *v = d ? d->cur : NULL; v; v = v->older) {
        sdb_docinfo_t info;
        fill_info(d, v, &info);
        if (cb(arg, NULL, &info))
            break;
    }
    state_read_unlock(db);
    return d ? SDB_OK : SDB_ENOTFOUND;
}

int sdb_info(sdb_t *db, const sdb_id_t *id, char **text)
{
    if (!db || !id || !text)
        return SDB_EINVAL;
    char *s = NULL;
    size_t sl = 0;
    FILE *f = open_memstream(&s, &sl);
    if (!f)
        return SDB_ENOMEM;
    state_read_lock(db);
    doc_t *d = doc_find(db, id);
    if (d) {
        char ids[37];
        sdb_id_format(&d->id, ids);
        docver_t *v = d->cur;
        fprintf(f, "id: %s\nversion: %" PRIu64 "\nsize: %" PRIu64 "\ncrc32: %08x\n"
                   "created_ms: %" PRId64 "\nmodified_ms: %" PRId64 "\npaths: %u\n",
                ids, v->version, v->size, v->crc, d->created_ms, v->modified_ms, d->npaths);
        pathidx_key_t **ks = d->npaths ? malloc(d->npaths * sizeof(*ks)) : NULL;
        if (ks) {
            memcpy(ks, d->paths, d->npaths * sizeof(*ks));
            qsort(ks, d->npaths, sizeof(*ks), cmp_keyp);
            for (uint32_t i = 0; i < d->npaths; i++)
                fprintf(f, "  %s\n", ks[i]->bytes);
            free(ks);
        }
        fprintf(f, "versions:\n");
        for (; v; v = v->older)
            fprintf(f, "  %" PRIu64 " size %" PRIu64 " crc32 %08x modified_ms %" PRId64 "\n",
                    v->version, v->size, v->crc, v->modified_ms);
    }
    state_read_unlock(db);
    int bad = fclose(f);
    if (!d || bad) {
        free(s);
        return d ? SDB_ENOMEM : SDB_ENOTFOUND;
    }
    *text = s;
    return SDB_OK;
}

int sdb_last_os_error(sdb_t *db, char *buf, size_t cap)
{
    if (!db || !buf || cap == 0)
        return 0;
    buf[0] = '\0';
    return db->be && db->be->last_error ? db->be->last_error(db->be, buf, cap) : 0;
}

int sdb_stats(sdb_t *db, sdb_stats_t *out)
{
    if (!db || !out)
        return SDB_EINVAL;
    memset(out, 0, sizeof(*out));
    state_read_lock(db);
    out->documents = db->ndocs;
    out->paths = pathidx_count(db->paths);
    state_read_unlock(db);
    pthread_mutex_lock(&db->fs_lock);
    out->total_pages = db->fs.npages;
    out->free_pages = db->fs.nfree + db->fs.nquar;   /* quarantined pages: handed out last */
    pthread_mutex_unlock(&db->fs_lock);
    out->file_bytes = db->be->size(db->be);
    out->cache_hits = atomic_load(&db->cache_hits);
    out->cache_misses = atomic_load(&db->cache_misses);
    out->checkpoints = atomic_load(&db->n_fg_checkpoints) + atomic_load(&db->n_bg_checkpoints);
    out->journal_pages = atomic_load(&db->stat_jpages);
    out->checkpoint_running = (uint64_t)journal_bg_running(db);
    return SDB_OK;
}
