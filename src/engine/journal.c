/*
 * journal.c -- the commit journal and checkpoints.
 *
 * The durable state is a checkpoint (a chain of PT_CHECKPOINT pages holding
 * a record stream that recreates every document, version and binding) plus
 * the journal: groups of PT_JOURNAL pages, one group per commit batch, each
 * naming in its last page the page reserved for the next group.  Opening
 * replays complete groups until the first page that fails its checks.  When
 * the journal has grown past 64 + twice the checkpoint's pages, a new
 * checkpoint is written by a background thread while commits go on
 * (journal_bg_start), and a commit of its own switches the older header slot
 * to it (journal_bg_switch); close writes one in the foreground.  See
 * docs/FORMAT.md, and docs/ARCHITECTURE.md for the threads and locks.
 */
#include <sched.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/commit.h"
#include "engine/journal.h"
#include "engine/pcache.h"
#include "engine/util.h"

/* ---- records ---- */

static int put8(buf_t *b, uint8_t v) { return buf_put(b, &v, 1); }
static int put64(buf_t *b, uint64_t v) { uint8_t t[8]; put_u64(t, v); return buf_put(b, t, 8); }
static int put32(buf_t *b, uint32_t v) { uint8_t t[4]; put_u32(t, v); return buf_put(b, t, 4); }
static int put16(buf_t *b, uint16_t v) { uint8_t t[2]; put_u16(t, v); return buf_put(b, t, 2); }

int rec_version(buf_t *b, const sdb_id_t *id, const docver_t *v, int64_t created_ms)
{
    int rc = put8(b, REC_VERSION) | buf_put(b, id->b, 16) | put64(b, v->version) |
             put64(b, v->size) | put32(b, v->crc) | put64(b, (uint64_t)created_ms) |
             put64(b, (uint64_t)v->modified_ms) | buf_put(b, v->blob, 16) | put32(b, v->nextents);
    for (uint32_t i = 0; i < v->nextents && !rc; i++)
        rc = put64(b, v->ext[i].start) | put32(b, v->ext[i].count);
    return rc ? SDB_ENOMEM : SDB_OK;
}

int rec_bind(buf_t *b, const sdb_id_t *id, const char *path, size_t len)
{
    return put8(b, REC_BIND) | buf_put(b, id->b, 16) | put16(b, (uint16_t)len) |
           buf_put(b, path, len) ? SDB_ENOMEM : SDB_OK;
}

int rec_unbind(buf_t *b, const char *path, size_t len)
{
    return put8(b, REC_UNBIND) | put16(b, (uint16_t)len) | buf_put(b, path, len) ? SDB_ENOMEM : SDB_OK;
}

int rec_delete_doc(buf_t *b, const sdb_id_t *id)
{
    return put8(b, REC_DELETE_DOC) | buf_put(b, id->b, 16) ? SDB_ENOMEM : SDB_OK;
}

int rec_drop_version(buf_t *b, const sdb_id_t *id, uint64_t version)
{
    return put8(b, REC_DROP_VERSION) | buf_put(b, id->b, 16) | put64(b, version) ? SDB_ENOMEM : SDB_OK;
}

/* ---- page allocation helpers ---- */

static int alloc_pages(sdb_t *db, uint64_t want, pgno_t *start, uint64_t *got)
{
    pthread_mutex_lock(&db->fs_lock);
    int rc = freespace_alloc(&db->fs, want, start, got);
    pthread_mutex_unlock(&db->fs_lock);
    return rc;
}

static void free_pages(sdb_t *db, pgno_t start, uint64_t count)
{
    pthread_mutex_lock(&db->fs_lock);
    freespace_free(&db->fs, start, count);
    pthread_mutex_unlock(&db->fs_lock);
}

/* ---- the journal's reserved pages ----
 *
 * The page reserved for the next journal group is named by the group before
 * it (or by the slot), so the journal cannot move it: if writing there
 * failed for lack of space (a page with no block on a full file system: a
 * hole, or past the end of the file), no commit could ever be made again,
 * deletes included, until a checkpoint started a new chain.  So every page
 * the journal reserves has been written (with zeros) first, and a group
 * counts only once its successor's page is in hand.  The leader keeps a
 * pool of such pages (db->jspare), topped up a run at a time; ordinary
 * commits leave the last JSPARE_KEEP of them alone, so that commits that
 * free space (deletes, unbinds, checkpoints) always find the pages their
 * group needs on a full disk or at max_db_size. */

#define JSPARE ((unsigned)(sizeof(((sdb_t *)0)->jspare) / sizeof(pgno_t)))
#define JSPARE_KEEP 8

/* Writes zeros over [pg, pg + n) (db_data_written's bookkeeping: an ENOSPC
 * marks them unbacked).  0 or the write's error. */
static int zero_pages(sdb_t *db, pgno_t pg, uint64_t n)
{
    uint8_t *z = calloc(n, db->page_size);
    if (!z)
        return SDB_ENOMEM;
    int rc = db->be->write(db->be, pg * db->page_size, z, n * db->page_size);
    free(z);
    db_data_written(db, pg, n, rc);
    return rc;
}

/* Tops the spare pool up (leader).  A failure leaves it shorter; *err gets
 * the last error (or keeps its value). */
static void spare_refill(sdb_t *db, int *err)
{
    int fails = 0;
    while (db->njspare < JSPARE && fails < 4) {
        pgno_t s;
        uint64_t got;
        int rc = alloc_pages(db, fails ? 1 : JSPARE - db->njspare, &s, &got);
        if (!rc && (rc = zero_pages(db, s, got)) != SDB_OK)
            free_pages(db, s, got);
        if (rc) {
            *err = rc;
            if (rc != SDB_ENOSPC)  /* ENOSPC: the pages wait in quarantine; try others */
                return;
            fails++;
            continue;
        }
        for (uint64_t i = 0; i < got; i++)
            db->jspare[db->njspare++] = s + i;
    }
}

/* Takes a page for the journal to reserve (the next group's first page, a
 * new chain's head): one written already, so that writing there later needs
 * no new block.  An ordinary commit takes it while the pool holds more than
 * JSPARE_KEEP pages; a freeing one may empty the pool.  0, SDB_ENOSPC,
 * SDB_ETOOLARGE, SDB_ENOMEM or SDB_EIO. */
static int reserve_page(sdb_t *db, int freeing, pgno_t *pg)
{
    int err = SDB_ENOSPC;
    if (db->njspare <= JSPARE_KEEP)
        spare_refill(db, &err);
    if (db->njspare > JSPARE_KEEP || (freeing && db->njspare > 0)) {
        *pg = db->jspare[--db->njspare];
        return SDB_OK;
    }
    return err;
}

/* Gives back a page reserve_page handed out and that nothing names. */
static void unreserve_page(sdb_t *db, pgno_t pg)
{
    if (db->njspare < JSPARE)
        db->jspare[db->njspare++] = pg;
    else
        free_pages(db, pg, 1);
}

/* ---- lazy mode: the pages of the buffered group ----
 *
 * Lazy mode writes the records it buffers (db->jbuf) as one group only right
 * before a sync (commit.c persist), a second or 8 MiB of records later.  So
 * that this write cannot fail for lack of space after the puts in it were
 * acknowledged, the group's pages are reserved as it grows: for every
 * `cap - 8` bytes buffered one page written with zeros (the group's pages
 * past its first, which is jnext, and the page reserved for the group after
 * it), held in db->jres and taken first by write_group.  They come a run at
 * a time from the free space, or else from the ordinary part of the spare
 * pool; never from its last JSPARE_KEEP pages, which stay for the groups
 * that free space (commit.c writes and syncs such a group at once when its
 * own pages cannot be reserved). */

#define JRES_RUN 16                /* pages reserved at a time */
#define JRES_KEEP 16               /* kept after a checkpoint emptied the buffer */

/* Takes a reserved page; 0 when none is left. */
static int res_take(sdb_t *db, pgno_t *pg)
{
    if (db->jres_off == db->njres)
        return 0;
    *pg = db->jres[db->jres_off++];
    return 1;
}

/* Gives back the page res_take handed out last (in reverse order). */
static void res_give_back(sdb_t *db, pgno_t pg)
{
    db->jres[--db->jres_off] = pg;
}

int journal_reserve(sdb_t *db, size_t len)
{
    uint32_t per = db->cap - 8;    /* (the group's nonce prefix) */
    size_t need = (len + per - 1) / per, have = db->njres - db->jres_off;
    if (have >= need)
        return SDB_OK;
    int err = SDB_OK;
    if (db->njspare <= JSPARE_KEEP)
        spare_refill(db, &err);    /* the pages kept for freeing groups come first */
    if (db->jres_off) {
        memmove(db->jres, db->jres + db->jres_off, have * sizeof(pgno_t));
        db->njres = have;
        db->jres_off = 0;
    }
    if (db->jres_cap < need + JRES_RUN) {
        size_t nc = (need + JRES_RUN) * 2;
        pgno_t *a = realloc(db->jres, nc * sizeof(pgno_t));
        if (!a)
            return SDB_ENOMEM;
        db->jres = a;
        db->jres_cap = nc;
    }
    while (db->njres < need) {
        pgno_t s;
        uint64_t got, want = need - db->njres;
        /* a run when the space is plentiful (pages that the file's
           growth adds anyway, or many free ones); else only what the group
           needs, so that data keeps the last free pages */
        pthread_mutex_lock(&db->fs_lock);
        int roomy = db->fs.nfree > 4 * JRES_RUN + want ||
                    (db->fs.nfree == 0 && db->fs.npages + 4 * JRES_RUN + want <= db->fs.max_pages);
        pthread_mutex_unlock(&db->fs_lock);
        if (roomy && want < JRES_RUN)
            want = JRES_RUN;
        int rc = alloc_pages(db, want, &s, &got);
        if (!rc && (rc = zero_pages(db, s, got)) != SDB_OK)
            free_pages(db, s, got);    /* (ENOSPC: they wait in quarantine) */
        if (rc == SDB_ENOSPC || rc == SDB_ETOOLARGE) {
            got = 1;                   /* no run: a page of the spare pool */
            rc = reserve_page(db, 0, &s);
        }
        if (rc)
            return rc;
        for (uint64_t i = 0; i < got; i++)
            db->jres[db->njres++] = s + i;
    }
    return SDB_OK;
}

/* Frees reserved pages beyond JRES_KEEP (nothing names them). */
static void res_trim(sdb_t *db)
{
    while (db->njres - db->jres_off > JRES_KEEP)
        free_pages(db, db->jres[--db->njres], 1);
}

static int pages_push(pgno_t **arr, size_t *n, size_t *cap, pgno_t pg)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        pgno_t *a = realloc(*arr, nc * sizeof(pgno_t));
        if (!a)
            return SDB_ENOMEM;
        *arr = a;
        *cap = nc;
    }
    (*arr)[(*n)++] = pg;
    return SDB_OK;
}

int db_sync(sdb_t *db)
{
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    atomic_store(&db->data_dirty, 0);
    int rc = db->be->sync(db->be);
    if (rc) {
        atomic_store(&db->fatal, SDB_EIO);
        return SDB_EIO;
    }
    db->last_sync_ns = util_mono_ns();
    db->unsynced_groups = 0;
    return SDB_OK;
}

/* ---- chain writer: a byte stream over a chain of pages ---- */

#define RUN_PAGES 64

typedef struct {
    sdb_t *db;
    uint8_t type;
    uint8_t flags;                 /* extra page flags (PF_ORDERED) */
    uint64_t seqno;
    uint8_t prefix[8];
    uint32_t prefix_len;
    uint8_t *run;                  /* RUN_PAGES pages, contiguous on disk from run_start */
    pgno_t run_start;
    uint32_t run_n;                /* sealed pages in run */
    pgno_t cur;                    /* page being filled, at run slot run_n */
    uint32_t fill;
    uint32_t index;
    pgno_t pool;                   /* preallocated pages */
    uint64_t pool_left;
    uint64_t hint;                 /* pages still expected */
    pgno_t *pages;
    size_t npages, pages_cap;
    uint32_t crc;                  /* of the stream (without prefixes) */
    uint64_t bytes;
    int spare_only;                /* a freeing group's retry: its pages come from jspare */
    size_t from_res;               /* pages taken from db->jres (lazy mode): pages[1..] */
    int writeback;                 /* start the write-back of each run as it is written, so
                                      that a background checkpoint does not pile up dirty
                                      pages that commits' writes would then be throttled on */
} chain_t;

static int chain_page(chain_t *c, pgno_t *pg)
{
    if (c->type == PT_JOURNAL && res_take(c->db, pg)) {
        c->from_res++;
        if (c->hint)
            c->hint--;
        return SDB_OK;
    }
    if (c->spare_only) {
        if (c->db->njspare == 0)
            return SDB_ENOSPC;
        *pg = c->db->jspare[--c->db->njspare];
        return SDB_OK;
    }
    if (c->pool_left == 0) {
        /* past its hint a journal group needs one page (the next group's),
           a checkpoint that outgrew its estimate some more */
        uint64_t more = c->type == PT_CHECKPOINT ? 16 : 1;
        uint64_t want = c->hint > RUN_PAGES ? RUN_PAGES : (c->hint ? c->hint : more);
        int rc = alloc_pages(c->db, want, &c->pool, &c->pool_left);
        if (rc)
            return rc;
    }
    *pg = c->pool++;
    c->pool_left--;
    if (c->hint)
        c->hint--;
    return SDB_OK;
}

static int chain_flush(chain_t *c)
{
    if (c->run_n == 0)
        return SDB_OK;
    int rc = c->db->be->write(c->db->be, c->run_start * c->db->page_size, c->run,
                              (size_t)c->run_n * c->db->page_size);
    if (!rc && c->writeback && c->db->be->writeback)
        c->db->be->writeback(c->db->be, c->run_start * c->db->page_size,
                             (uint64_t)c->run_n * c->db->page_size);
    if (c->db->cache)
        pcache_invalidate(c->db->cache, c->run_start, c->run_n);
    if (rc == SDB_ENOSPC) {
        pthread_mutex_lock(&c->db->fs_lock);
        freespace_mark_unbacked(&c->db->fs, c->run_start, c->run_n);
        pthread_mutex_unlock(&c->db->fs_lock);
    }
    c->run_n = 0;
    return rc;
}

static void chain_seal(chain_t *c, pgno_t next, int last)
{
    uint8_t *pg = c->run + (size_t)c->run_n * c->db->page_size;
    page_hdr_t h = { .type = c->type, .flags = (uint8_t)((last ? PF_LAST : 0) | c->flags), .data_len = c->fill,
                     .index = c->index, .seqno = c->seqno, .next = next };
    memcpy(h.owner, c->db->file_id, 16);
    page_seal(pg, &h, pg + PAGE_HDR, NULL);
    c->run_n++;
    c->index++;
}

/* Starts a page at pg in the run buffer (flushing when not contiguous). */
static int chain_start(chain_t *c, pgno_t pg)
{
    /* listed first, so that a failed flush below still frees pg */
    int rc = pages_push(&c->pages, &c->npages, &c->pages_cap, pg);
    if (rc)
        return rc;
    if (c->run_n > 0 && (c->run_n == RUN_PAGES || pg != c->run_start + c->run_n)) {
        rc = chain_flush(c);
        if (rc)
            return rc;
    }
    if (c->run_n == 0)
        c->run_start = pg;
    c->cur = pg;
    uint8_t *p = c->run + (size_t)c->run_n * c->db->page_size;
    memset(p, 0, c->db->page_size);
    memcpy(p + PAGE_HDR, c->prefix, c->prefix_len);
    c->fill = c->prefix_len;
    return SDB_OK;
}

static int chain_init(chain_t *c, sdb_t *db, uint8_t type, uint64_t seqno, pgno_t first,
                      uint64_t bytes_hint)
{
    memset(c, 0, sizeof(*c));
    c->db = db;
    c->type = type;
    c->seqno = seqno;
    c->run = malloc((size_t)RUN_PAGES * db->page_size);
    if (!c->run)
        return SDB_ENOMEM;
    c->hint = bytes_hint / db->cap + 2;
    if (type == PT_JOURNAL) {
        util_fast_random(c->prefix, 8);
        c->prefix_len = 8;
        /* exactly the pages after `first` (the next group's page comes
           from reserve_page): a spare page would come back as a one-page
           hole just where the next batch's data pages would run on
           contiguously */
        uint32_t per = db->cap - c->prefix_len;
        c->hint = bytes_hint ? (bytes_hint + per - 1) / per : 1;
        if (first)
            c->hint--;
    }
    if (!first) {
        int rc = chain_page(c, &first);
        if (rc)
            return rc;
    }
    return chain_start(c, first);
}

static int chain_append(chain_t *c, const uint8_t *p, size_t n)
{
    c->crc = (uint32_t)crc32(c->crc, p, (uInt)n);
    c->bytes += n;
    while (n > 0) {
        if (c->fill == c->db->cap) {
            pgno_t next;
            int rc = chain_page(c, &next);
            if (rc)
                return rc;
            chain_seal(c, next, 0);
            rc = chain_start(c, next);
            if (rc)
                return rc;
        }
        uint32_t room = c->db->cap - c->fill;
        uint32_t k = n < room ? (uint32_t)n : room;
        memcpy(c->run + (size_t)c->run_n * c->db->page_size + PAGE_HDR + c->fill, p, k);
        c->fill += k;
        p += k;
        n -= k;
    }
    return SDB_OK;
}

/* Seals the last page with link `next` and writes what is buffered. */
static int chain_finish(chain_t *c, pgno_t next)
{
    chain_seal(c, next, 1);
    return chain_flush(c);
}

/* Frees the chain's buffers and returns unused pool pages. */
static void chain_done(chain_t *c)
{
    if (c->pool_left)
        free_pages(c->db, c->pool, c->pool_left);
    free(c->run);
    free(c->pages);
}

/* One attempt of journal_write_group; spare_only: its pages past the first
 * come from the spare pool. */
static int write_group(sdb_t *db, const uint8_t *recs, size_t len, int freeing, int spare_only)
{
    chain_t c;
    pgno_t next = 0;
    int complete = 0;
    int rc = chain_init(&c, db, PT_JOURNAL, db->jseq, db->jnext, len);
    c.flags = db->unsynced_groups == 0 ? PF_ORDERED : 0;
    c.spare_only = spare_only;
    if (!rc)
        rc = chain_append(&c, recs, len);
    int next_res = 0;
    if (!rc && !(next_res = res_take(db, &next)))
        rc = reserve_page(db, freeing, &next);
    if (!rc)
        rc = chain_finish(&c, next);
    complete = !rc;
    for (size_t i = 0; !rc && i < c.npages; i++)
        rc = pages_push(&db->jpages, &db->njpages, &db->jpages_cap, c.pages[i]);
    if (!rc) {
        db->jnext = next;
        db->jseq++;
        db->unsynced_groups++;
    } else if (!complete && rc != SDB_EIO) {
        /* No room (ENOSPC, ETOOLARGE) or memory before the group's LAST page
           was written: the group is incomplete, so replay can never accept it
           (and a later group at jnext carries another nonce).  Nothing refers
           to its pages: give them back (jnext stays reserved) and fail only
           the batch being committed (commit.c persist(); in lazy mode the
           records of earlier batches stay buffered and are written later). */
        if (next_res)
            res_give_back(db, next);
        else if (next)
            unreserve_page(db, next);
        for (size_t i = c.npages; i-- > 1;) {   /* (reserved ones back in reverse order) */
            if (i <= c.from_res)
                res_give_back(db, c.pages[i]);
            else if (spare_only)
                unreserve_page(db, c.pages[i]);
            else
                free_pages(db, c.pages[i], 1);
        }
    } else {
        atomic_store(&db->fatal, SDB_EIO);   /* the journal's tail is unknown now */
    }
    chain_done(&c);
    return rc;
}

int journal_write_group(sdb_t *db, const uint8_t *recs, size_t len, int freeing)
{
    int rc = write_group(db, recs, len, freeing, 0);
    /* a group of several pages that found no room: a freeing one tries
       again on the pages kept for it */
    if ((rc == SDB_ENOSPC || rc == SDB_ETOOLARGE) && freeing && !atomic_load(&db->fatal))
        rc = write_group(db, recs, len, freeing, 1);
    return rc;
}

/* ---- checkpoints ---- */

/* Appends the VERSION records of d, oldest first, and marks it written. */
static int encode_doc(sdb_t *db, doc_t *d, uint64_t mark, buf_t *b, docver_t ***vs, size_t *vcap)
{
    size_t n = 0;
    int rc = SDB_OK;
    d->cp_mark = mark;
    (void)db;
    for (docver_t *v = d->cur; v; v = v->older) {
        if (n == *vcap) {
            size_t nc = *vcap ? *vcap * 2 : 16;
            docver_t **t = realloc(*vs, nc * sizeof(*t));
            if (!t)
                return SDB_ENOMEM;
            *vs = t;
            *vcap = nc;
        }
        (*vs)[n++] = v;
    }
    while (n > 0 && !rc)
        rc = rec_version(b, &d->id, (*vs)[--n], d->created_ms);
    return rc;
}

/* The checkpoint stream: paths in byte order, each preceded by its
 * document's versions the first time the document appears, then the
 * documents without paths.  Reopening then appends to the index's last leaf
 * and finds each binding's document as the one just read (apply_checkpoint).
 *
 * An encoding can stop after any entry and go on later (cpenc_step), with the
 * state changed in between: a background checkpoint encodes in slices while
 * commits go on.  The stream stays loadable: paths come in byte order, each
 * once (a slice starts after the last path written); a document is written
 * once (its cp_mark), before its first binding; the document walk starts over
 * if the table was rehashed, and the marks skip what is written already. */
typedef struct {
    uint64_t mark;
    int phase;                     /* 0 paths, 1 documents without paths, 2 done */
    char *last;                    /* phase 0: the last path written, when started */
    size_t last_len;
    int started;
    size_t bucket, docs_cap;       /* phase 1: next bucket; the table size it is for */
    docver_t **vs;                 /* encode_doc's scratch */
    size_t vcap;
} cpenc_t;

static int cpenc_init(sdb_t *db, cpenc_t *e)
{
    memset(e, 0, sizeof(*e));
    e->mark = ++db->cp_mark_gen;
    e->last = malloc(SDB_MAX_PATH + 1);
    return e->last ? SDB_OK : SDB_ENOMEM;
}

static void cpenc_done(cpenc_t *e)
{
    free(e->last);
    free(e->vs);
}

/* Appends the next entries of the stream to b; stops after budget_ns (0 = at
 * the end).  e->phase is 2 once everything is written.  0 or SDB_ENOMEM. */
static int cpenc_step(sdb_t *db, cpenc_t *e, buf_t *b, uint64_t budget_ns)
{
    uint64_t t0 = budget_ns ? util_mono_ns_real() : 0;
    unsigned n = 0, max = budget_ns ? db->cp_slice_entries : 0;
    int rc;
    if (e->phase == 0) {
        pathidx_iter_t it;
        pathidx_key_t *k;
        pathidx_seek(db->paths, &it, e->started ? e->last : NULL, e->started ? e->last_len : 0,
                     !e->started);
        paths_prefetch_start(&it);
        while ((k = pathidx_next(&it)) != NULL) {
            doc_t *d = k->val;
            paths_prefetch_step(&it);
            if (d->cp_mark != e->mark && (rc = encode_doc(db, d, e->mark, b, &e->vs, &e->vcap)))
                return rc;
            if ((rc = rec_bind(b, &d->id, k->bytes, k->len)))
                return rc;
            n++;
            if (max ? n >= max : budget_ns && n % 64 == 0 && util_mono_ns_real() - t0 >= budget_ns) {
                memcpy(e->last, k->bytes, k->len);
                e->last_len = k->len;
                e->started = 1;
                return SDB_OK;
            }
        }
        e->phase = 1;
        e->docs_cap = db->docs_cap;
    }
    if (e->phase == 1) {
        if (e->docs_cap != db->docs_cap) {
            e->bucket = 0;
            e->docs_cap = db->docs_cap;
        }
        while (e->bucket < db->docs_cap) {
            for (doc_t *d = db->docs[e->bucket]; d; d = d->hnext)
                if (d->cp_mark != e->mark && (rc = encode_doc(db, d, e->mark, b, &e->vs, &e->vcap)))
                    return rc;
            e->bucket++;
            n++;
            if (max ? n >= max : budget_ns && n % 256 == 0 && util_mono_ns_real() - t0 >= budget_ns)
                return SDB_OK;
        }
        e->phase = 2;
    }
    return SDB_OK;
}

/* The length of a checkpoint stream is known only at its end: the chain's
 * page pool is sized from the last one's (pages it holds meanwhile are in
 * use, so a large guess would grow the file for nothing). */
#define CP_STREAM_HINT(db) ((db)->slot.cp_bytes + (db)->slot.cp_bytes / 8)

/* Encodes the whole state into c, a slice at a time (so that no buffer holds
 * the whole stream).  The foreground caller, the leader, needs no lock and
 * passes gave_up NULL.  In the background (gave_up not NULL) each slice takes
 * the state read lock for about BG_SLICE_NS and commits get in between; the
 * encoding gives up (*gave_up = 1) when the handle closes or fails.  0 or an
 * error. */
static int encode_into(sdb_t *db, chain_t *c, int *gave_up);

static int write_slot(sdb_t *db, const slot_t *s)
{
    uint8_t buf[SLOT_BYTES];
    slot_encode(buf, s);
    return db->be->write(db->be, (s->generation % 2) * db->page_size, buf, SLOT_BYTES);
}

int journal_checkpoint(sdb_t *db)
{
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    slot_t s = db->slot;
    s.generation++;
    pgno_t jhead = 0;
    chain_t c;
    int rc = chain_init(&c, db, PT_CHECKPOINT, s.generation, 0, CP_STREAM_HINT(db));
    if (!rc)
        rc = encode_into(db, &c, 0);
    if (!rc)
        rc = chain_finish(&c, 0);
    if (!rc)
        rc = reserve_page(db, 1, &jhead);     /* a checkpoint frees the journal */
    if (rc) {
        for (size_t i = 0; i < c.npages; i++)
            free_pages(db, c.pages[i], 1);
        if (jhead)
            unreserve_page(db, jhead);
        chain_done(&c);
        if (rc == SDB_EIO)
            atomic_store(&db->fatal, SDB_EIO);
        return rc;
    }
    uint64_t cp_seq = db->jbuf.len ? db->jseq : db->jseq - 1;
    s.cp_head = c.pages[0];
    s.cp_pages = c.npages;
    s.cp_bytes = c.bytes;
    s.cp_crc = c.crc;
    s.journal_head = jhead;
    s.cp_seq = cp_seq;
    s.cp_tolerant_until = 0;
    /* invariant: checkpoint (and the data it names) durable before the slot */
    rc = db_sync(db);
    if (!rc)
        rc = write_slot(db, &s);
    if (!rc)
        rc = db_sync(db);
    if (rc) {
        atomic_store(&db->fatal, SDB_EIO);
        chain_done(&c);
        return SDB_EIO;
    }
    /* the old checkpoint and journal are unreferenced now */
    for (size_t i = 0; i < db->ncppages; i++)
        free_pages(db, db->cppages[i], 1);
    for (size_t i = 0; i < db->njpages; i++)
        free_pages(db, db->jpages[i], 1);
    free_pages(db, db->jnext, 1);   /* (not to the pool: after a fallback or in an old
                                       file it may never have been written) */
    free(db->cppages);
    db->cppages = c.pages;
    db->ncppages = c.npages;
    db->cppages_cap = c.pages_cap;
    c.pages = NULL;
    db->njpages = 0;
    db->jnext = jhead;
    db->jseq = cp_seq + 1;
    db->jbuf.len = 0;
    db->jbuf_adds = db->jbuf_frees = 0;
    res_trim(db);                   /* (the buffered records' pages) */
    db->slot = s;
    chain_done(&c);
    journal_release_pending(db, cp_seq);
    atomic_fetch_add(&db->n_fg_checkpoints, 1);
    return SDB_OK;
}

/* ---- background checkpoints ---- */

#define BG_SLICE_NS 100000ull      /* longest a slice holds the state read lock (about) */

/* Between two background slices: the test hooks' yield and pause. */
static void bg_between_slices(sdb_t *db)
{
    if (db->cp_slice_entries)
        sched_yield();                    /* test slices: let commits in between */
    while (atomic_load(&db->cp_pause) && !atomic_load(&db->bg.stop)) {
        atomic_store(&db->cp_pausing, 1);       /* sdb_test_checkpoint_pause() */
        usleep(100);
    }
    atomic_store(&db->cp_pausing, 0);
}

static int encode_into(sdb_t *db, chain_t *c, int *gave_up)
{
    cpenc_t e;
    buf_t b = { 0 };
    int rc = cpenc_init(db, &e);
    while (!rc && e.phase != 2) {
        if (!gave_up) {
            rc = cpenc_step(db, &e, &b, 4 * BG_SLICE_NS);
        } else if (atomic_load(&db->bg.stop) || atomic_load(&db->fatal)) {
            *gave_up = 1;
            break;
        } else {
            state_read_lock(db);
            rc = cpenc_step(db, &e, &b, BG_SLICE_NS);
            state_read_unlock(db);
        }
        if (!rc && b.len)
            rc = chain_append(c, b.p, b.len);
        b.len = 0;
        if (gave_up)
            bg_between_slices(db);
    }
    cpenc_done(&e);
    free(b.p);
    return rc;
}

static void *bg_main(void *arg)
{
    sdb_t *db = arg;
    chain_t c;
    int stopped = 0;
    int rc = chain_init(&c, db, PT_CHECKPOINT, db->bg.gen, 0, db->bg.hint);
    c.writeback = 1;
    if (!rc)
        rc = encode_into(db, &c, &stopped);
    if (!rc && !stopped)
        rc = chain_finish(&c, 0);
    /* the switch's batch syncs too; syncing here keeps that batch short */
    if (!rc && !stopped && db->be->sync(db->be))
        rc = SDB_EIO;
    if (rc == SDB_EIO)
        atomic_store(&db->fatal, SDB_EIO);  /* as in the foreground: a failing disk */
    if (!rc && !stopped && !atomic_load(&db->bg.stop)) {
        commit_req_t r = { .op = OP_CP_SWITCH };
        db->bg.chain = &c;
        rc = commit_submit(db, &r);       /* the switch takes c.pages, unless it never ran */
        db->bg.chain = NULL;
    }
    if (rc && !stopped)
        atomic_store(&db->bg.failed, 1);  /* the leader waits before trying again */
    for (size_t i = 0; i < c.npages; i++)   /* not the durable state: give them back */
        free_pages(db, c.pages[i], 1);
    chain_done(&c);
    atomic_store(&db->bg.running, 0);
    return NULL;
}

int journal_bg_start(sdb_t *db)
{
    if (db->bg.have_thread) {                 /* finished (running is 0): reap it */
        pthread_join(db->bg.thread, NULL);
        db->bg.have_thread = 0;
    }
    db->bg.gen = db->slot.generation + 1;
    db->bg.s0 = db->jseq - 1;                 /* lazy mode: jbuf's records go into group jseq */
    db->bg.j0 = db->jnext;
    db->bg.n0 = db->njpages;
    db->bg.hint = CP_STREAM_HINT(db);
    db->bg.chain = NULL;
    atomic_store(&db->bg.stop, 0);
    atomic_store(&db->bg.failed, 0);
    atomic_store(&db->bg.running, 1);
    if (pthread_create(&db->bg.thread, NULL, bg_main, db) != 0) {
        atomic_store(&db->bg.running, 0);
        return SDB_ENOMEM;
    }
    db->bg.have_thread = 1;
    return SDB_OK;
}

int journal_bg_running(sdb_t *db)
{
    return atomic_load(&db->bg.running);
}

int journal_bg_switch(sdb_t *db)
{
    chain_t *c = db->bg.chain;
    if (atomic_load(&db->fatal))
        return SDB_EIO;
    if (!c || c->npages == 0 || db->bg.gen != db->slot.generation + 1)
        return SDB_EIO;                       /* cannot happen: one checkpoint at a time */
    slot_t s = db->slot;
    s.generation = db->bg.gen;
    s.cp_head = c->pages[0];
    s.cp_pages = c->npages;
    s.cp_bytes = c->bytes;
    s.cp_crc = c->crc;
    s.journal_head = db->bg.j0;
    s.cp_seq = db->bg.s0;
    /* every group applied before the encoding ended is written now (the batch
       synced, lazy mode's buffer included), so none is later than jseq - 1 */
    s.cp_tolerant_until = db->jseq - 1;
    int rc = write_slot(db, &s);
    if (!rc)
        rc = db_sync(db);
    if (rc) {
        /* the slot may be on disk all the same: keep the pages it names (in
           use until reopen), as journal_checkpoint does */
        atomic_store(&db->fatal, SDB_EIO);
        free(c->pages);
        c->pages = NULL;
        c->npages = 0;
        return SDB_EIO;
    }
    /* the old checkpoint and the groups up to s0 are unreferenced now */
    for (size_t i = 0; i < db->ncppages; i++)
        free_pages(db, db->cppages[i], 1);
    for (size_t i = 0; i < db->bg.n0; i++)
        free_pages(db, db->jpages[i], 1);
    memmove(db->jpages, db->jpages + db->bg.n0, (db->njpages - db->bg.n0) * sizeof(pgno_t));
    db->njpages -= db->bg.n0;
    free(db->cppages);
    db->cppages = c->pages;
    db->ncppages = c->npages;
    db->cppages_cap = c->pages_cap;
    c->pages = NULL;
    c->npages = 0;
    db->slot = s;
    db->bg.retry_jp = 0;
    atomic_fetch_add(&db->n_bg_checkpoints, 1);
    return SDB_OK;
}

void journal_bg_stop(sdb_t *db)
{
    if (!db->bg.have_thread)
        return;
    atomic_store(&db->bg.stop, 1);
    pthread_join(db->bg.thread, NULL);
    db->bg.have_thread = 0;
}

void journal_release_pending(sdb_t *db, uint64_t durable_seq)
{
    pthread_mutex_lock(&db->fs_lock);
    if (durable_seq > db->durable_seq)
        db->durable_seq = durable_seq;
    while (db->pending && db->pending->seq <= db->durable_seq) {
        pfree_t *pf = db->pending;
        db->pending = pf->next;
        for (uint32_t i = 0; i < pf->n; i++) {
            freespace_free(&db->fs, pf->ext[i].start, pf->ext[i].count);
            db->pending_pages -= pf->ext[i].count;
        }
        if (pf->ext != &pf->ext1)
            free(pf->ext);
        free(pf);
    }
    if (!db->pending)
        db->pending_tail = &db->pending;
    pthread_mutex_unlock(&db->fs_lock);
}

/* ---- verification ---- */

static int docver_verify_buf(sdb_t *db, const docver_t *v, uint8_t *pg)
{
    uint64_t pos = 0;
    uint32_t index = 0, crc = 0;
    for (uint32_t e = 0; e < v->nextents; e++)
        for (uint32_t i = 0; i < v->ext[e].count; i++) {
            int rc = db->be->read(db->be, (v->ext[e].start + i) * db->page_size, pg, db->page_size);
            if (rc)
                return rc;
            uint64_t left = v->size - pos;
            uint32_t expect = left < db->cap ? (uint32_t)left : db->cap;
            page_hdr_t h;
            uint32_t dcrc;
            if (page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, &dcrc) || h.type != PT_DATA ||
                h.data_len != expect || h.index != index || memcmp(h.owner, v->blob, 16) ||
                !!(h.flags & PF_LAST) != (pos + expect == v->size))
                return SDB_ECORRUPT;
            crc = crc_add(db, crc, dcrc, expect);
            pos += expect;
            index++;
        }
    return pos == v->size && crc == v->crc ? SDB_OK : SDB_ECORRUPT;
}


int docver_verify(sdb_t *db, const docver_t *v)
{
    uint8_t *pg = malloc(db->page_size);
    int rc = pg ? docver_verify_buf(db, v, pg) : SDB_ENOMEM;
    free(pg);
    return rc;
}


/* ---- opening ---- */

static int read_page(sdb_t *db, pgno_t pg, uint8_t *buf)
{
    return db->be->read(db->be, pg * db->page_size, buf, db->page_size);
}

/* Reads the checkpoint chain of slot s into *out (malloc()ed). */
static int load_checkpoint(sdb_t *db, const slot_t *s, buf_t *out)
{
    uint8_t *pg = malloc(db->page_size);
    if (!pg)
        return SDB_ENOMEM;
    int rc = SDB_OK;
    pgno_t p = s->cp_head;
    uint64_t filepages = db->be->size(db->be) / db->page_size;
    /* The stream's length is known: one allocation, not a doubling buffer
       that copies it over and over (a slot that claims more than its pages
       can hold is caught below, as a length mismatch) */
    if (s->cp_pages < filepages && s->cp_bytes <= s->cp_pages * db->cap &&
        out->cap < out->len + s->cp_bytes) {
        uint8_t *q = realloc(out->p, out->len + s->cp_bytes);
        if (q) {
            out->p = q;
            out->cap = out->len + s->cp_bytes;
        }
    }
    for (uint64_t i = 0; i < s->cp_pages; i++) {
        page_hdr_t h;
        if (p < FIRST_PAGE || p >= filepages || (rc = read_page(db, p, pg)) ||
            page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_CHECKPOINT ||
            h.seqno != s->generation || h.index != i || memcmp(h.owner, s->file_id, 16) ||
            (!!(h.flags & PF_LAST)) != (i + 1 == s->cp_pages)) {
            rc = rc ? rc : SDB_ECORRUPT;
            break;
        }
        if ((rc = buf_put(out, pg + PAGE_HDR, h.data_len)))
            break;
        if ((rc = pages_push(&db->cppages, &db->ncppages, &db->cppages_cap, p)))
            break;
        p = h.next;
    }
    free(pg);
    /* every page was verified with its CRC and stamp; the stream CRC over
       the whole is checked again only by sdb_check (db->tolerate_cut) and
       for a corrected slot, whose cp_crc it proves (slot_correct) */
    if (!rc && (out->len != s->cp_bytes ||
                ((db->tolerate_cut || db->slot_corrected) &&
                 (uint32_t)crc32(0L, out->p, (uInt)out->len) != s->cp_crc)))
        rc = SDB_ECORRUPT;
    return rc;
}

/* Reads one complete journal group starting at page p with sequence seq.
 * Returns 1 with the records in *out and the next group's page in *next,
 * 0 when there is no complete group there, or a negative error. */
int journal_load_group(sdb_t *db, pgno_t p, uint64_t seq, buf_t *out, pgno_t *next,
                       pgno_t **gp, size_t *ngp, size_t *gcap)
{
    uint8_t *pg = malloc(db->page_size);
    if (!pg)
        return SDB_ENOMEM;
    uint8_t nonce[8];
    uint64_t filepages = db->be->size(db->be) / db->page_size;
    int ret = 0;
    out->len = 0;
    *ngp = 0;
    for (uint32_t i = 0;; i++) {
        page_hdr_t h;
        if (p < FIRST_PAGE || p >= filepages)
            break;
        int rc = read_page(db, p, pg);
        if (rc) {
            ret = rc;
            break;
        }
        if (page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_JOURNAL ||
            h.seqno != seq || h.index != i || memcmp(h.owner, db->file_id, 16) || h.data_len < 8)
            break;
        if (i == 0)
            memcpy(nonce, pg + PAGE_HDR, 8);
        else if (memcmp(nonce, pg + PAGE_HDR, 8))
            break;
        if ((rc = buf_put(out, pg + PAGE_HDR + 8, h.data_len - 8)) ||
            (rc = pages_push(gp, ngp, gcap, p))) {
            ret = rc;
            break;
        }
        if (h.flags & PF_LAST) {
            *next = h.next;
            ret = 1;
            break;
        }
        p = h.next;
    }
    free(pg);
    return ret;
}

/* 1 when the journal ends at page p on something other than a clean end:
 * a page that fails its CRC (not all zero), or a group that starts right but
 * does not complete.  Only then can damage have cut the journal. */
static int journal_end_suspect(sdb_t *db, pgno_t p, uint64_t seq)
{
    if (p < FIRST_PAGE || p >= db->be->size(db->be) / db->page_size)
        return 0;
    uint8_t *pg = malloc(db->page_size);
    if (!pg)
        return 1;
    int suspect = 0;
    page_hdr_t h;
    if (read_page(db, p, pg) == 0) {
        int zero = 1;
        for (uint32_t i = 0; i < db->page_size && zero; i++)
            zero = pg[i] == 0;
        if (!zero)
            suspect = page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) != 0 ||
                      (h.type == PT_JOURNAL && h.seqno == seq && !memcmp(h.owner, db->file_id, 16));
    }
    free(pg);
    return suspect;
}

int journal_count_cut(sdb_t *db, uint64_t seq, int only_free, uint64_t *count)
{
    uint64_t npages = db->be->size(db->be) / db->page_size, lost = 0;
    uint8_t *pg = malloc(db->page_size);
    int rc = pg ? SDB_OK : SDB_ENOMEM;
    for (uint64_t p = FIRST_PAGE; !rc && p < npages; p++) {
        page_hdr_t h;
        if (only_free && !freespace_is_free(&db->fs, p))
            continue;
        rc = read_page(db, p, pg);
        if (!rc && page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) == 0 &&
            h.type == PT_JOURNAL && (h.flags & PF_ORDERED) && h.seqno > seq &&
            memcmp(h.owner, db->file_id, 16) == 0)
            lost++;
    }
    free(pg);
    *count = lost;
    return rc;
}

int journal_count_past_slot(sdb_t *db, uint64_t *count)
{
    uint64_t npages = db->be->size(db->be) / db->page_size, n = 0;
    uint8_t *pg = malloc(db->page_size);
    int rc = pg ? SDB_OK : SDB_ENOMEM;
    for (uint64_t p = FIRST_PAGE; !rc && p < npages; p++) {
        page_hdr_t h;
        rc = read_page(db, p, pg);
        if (!rc && page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) == 0 &&
            h.type == PT_JOURNAL && (h.flags & PF_ORDERED) &&
            memcmp(h.owner, db->file_id, 16) == 0 &&
            (h.seqno > db->jseq || (h.seqno == db->jseq && h.index == 0 && p != db->jnext)))
            n++;
    }
    free(pg);
    *count = n;
    return rc;
}

/* Applies a loaded journal group and records its pages as journal pages. */
static int apply_held(sdb_t *db, const buf_t *g, const pgno_t *pages, size_t n, int tolerant)
{
    int rc = apply_replay(db, g->p, g->len, tolerant);
    for (size_t i = 0; !rc && i < n; i++)
        rc = pages_push(&db->jpages, &db->njpages, &db->jpages_cap, pages[i]);
    return rc;
}

/* Loads the checkpoint of slot s and replays the journal chained after it.
 * With bridge (the newer slot, whose checkpoint is damaged: journal_open),
 * the replay goes on at bridge's journal head when s's chain ends right
 * after the group bridge's checkpoint folded in (a foreground checkpoint
 * starts a new chain; a background one continues the same chain, which the
 * replay then simply follows). */
static int try_slot(sdb_t *db, const slot_t *s, const slot_t *bridge, int preloaded)
{
    buf_t b = { 0 };
    int rc;
    if (!preloaded)
        db->paths = pathidx_new();
    if (!db->paths)
        return SDB_ENOMEM;
    db->slot = *s;
    memcpy(db->file_id, s->file_id, 16);
    db->ncppages = 0;
    db->njpages = 0;
    db->unapplied_seq = 0;
    uint64_t tolerant_until = preloaded ? UINT64_MAX : s->cp_tolerant_until;
    if (s->cp_head && !preloaded) {
        rc = load_checkpoint(db, s, &b);
        if (!rc)
            rc = apply_checkpoint(db, b.p, b.len);
        if (rc)
            goto out;
    }
    pgno_t p = s->journal_head;
    uint64_t seq = s->cp_seq + 1;
    /* Each group is applied once the next one has loaded.  The last group is
       held back: it may have been written without its sync completing (a
       commit writes its data and journal pages, then syncs once), so it counts
       only if the data pages it names check out; else it is a torn commit. */
    buf_t held = { 0 };
    pgno_t *gp = NULL, *hgp = NULL, held_p = 0;
    uint64_t held_seq = 0;
    size_t ngp = 0, gcap = 0, nhgp = 0, hcap = 0;
    int have_held = 0;
    for (;;) {
        pgno_t next = 0;
        int got = journal_load_group(db, p, seq, &b, &next, &gp, &ngp, &gcap);
        if (got == 0 && bridge && seq == bridge->cp_seq + 1 && p != bridge->journal_head) {
            p = bridge->journal_head;
            bridge = NULL;
            continue;
        }
        if (got <= 0) {
            rc = got;
            break;
        }
        if (have_held &&
            (rc = apply_held(db, &held, hgp, nhgp, held_seq <= tolerant_until)))
            break;
        buf_t tb = held; held = b; b = tb;
        pgno_t *tp = hgp; hgp = gp; gp = tp;
        size_t tn = nhgp; nhgp = ngp; ngp = tn;
        tn = hcap; hcap = gcap; gcap = tn;
        have_held = 1;
        held_p = p;
        held_seq = seq;
        p = next;
        seq++;
    }
    if (!rc && have_held) {
        rc = records_check_data(db, held.p, held.len);
        if (rc == SDB_OK) {
            rc = apply_held(db, &held, hgp, nhgp, held_seq <= tolerant_until);
        } else if (rc == SDB_ECORRUPT) {
            p = held_p;                 /* the journal ends before the torn commit */
            seq--;
            rc = SDB_OK;
            db->unapplied_seq = held_seq;
            db->unapplied_page = held_p;
        }
    }
    free(gp);
    free(hgp);
    free(held.p);
    db->jnext = p;
    db->jseq = seq;
    db->durable_seq = seq - 1;
    /* sdb_check (tolerate_cut) runs the scan itself, whatever the tail looks like */
    if (!rc && !db->tolerate_cut)
        db->journal_suspect = journal_end_suspect(db, p, seq);
out:
    free(b.p);
    return rc;
}

int journal_repair_slot(sdb_t *db)
{
    slot_t s = db->slot;
    if (db->slot_corrected)
        ;                          /* the corrected slot goes back where it was */
    else if (s.generation == 0)
        s.generation = 1;          /* generation 0 has no older twin: write 1 */
    else
        s.generation--;
    int rc = write_slot(db, &s);
    if (!rc)
        rc = db->be->sync(db->be) ? SDB_EIO : SDB_OK;
    if (!rc)
        db->slot_damaged = 0;
    return rc;
}

/* journal_derive_free: marks the pages of d's versions used. */
static int derive_doc_cb(doc_t *d, void *arg)
{
    sdb_t *db = arg;
    uint64_t old = 0;
    int rc = SDB_OK;
    for (docver_t *v = d->cur; v && !rc; v = v->older) {
        old += v != d->cur;
        for (uint32_t k = 0; k < v->nextents && !rc; k++)
            rc = freespace_mark_used(&db->fs, v->ext[k].start, v->ext[k].count);
    }
    if (old > db->cfg.versions_to_keep)
        db->gc_needed = 1;
    return rc;
}

/* Marks every page referenced by the state, the checkpoint and the journal
 * (the page reserved for the next group included) as used in a fresh
 * free-space map; every other page is free.  0, SDB_ECORRUPT (a page
 * referenced twice) or SDB_ENOMEM. */
static int journal_derive_free(sdb_t *db, uint64_t file_pages)
{
    uint64_t maxp = db->cfg.max_db_size / db->page_size;
    if (freespace_init(&db->fs, file_pages, maxp < FIRST_PAGE + 1 ? FIRST_PAGE + 1 : maxp))
        return SDB_ENOMEM;
    int rc = SDB_OK;
    for (size_t i = 0; i < db->ncppages && !rc; i++)
        rc = freespace_mark_used(&db->fs, db->cppages[i], 1);
    for (size_t i = 0; i < db->njpages && !rc; i++)
        rc = freespace_mark_used(&db->fs, db->jpages[i], 1);
    if (!rc) {
        rc = freespace_mark_used(&db->fs, db->jnext, 1);
        if (rc == SDB_ECORRUPT && db->slot_fallback) {
            /* After a fallback to the older slot, the page reserved for the
               next group (never written: the older checkpoint and journal
               verified) may be one that the older checkpoint or journal
               used before the newer checkpoint freed them.  Reserve
               another; nothing refers to it yet. */
            uint64_t got;
            rc = freespace_alloc(&db->fs, 1, &db->jnext, &got);
        }
    }
    if (!rc)
        rc = state_foreach_doc(db, derive_doc_cb, db);
    return rc;
}

static int create_file(sdb_t *db)
{
    slot_t s = { 0 };
    s.page_size = db->page_size;
    int rc = util_random(s.file_id, 16);
    if (rc)
        return rc;
    s.journal_head = FIRST_PAGE;
    uint8_t *zero = calloc(2, db->page_size);
    if (!zero)
        return SDB_ENOMEM;
    rc = db->be->write(db->be, 0, zero, 2 * (size_t)db->page_size);
    free(zero);
    for (uint64_t g = 0; g < 2 && !rc; g++) {
        s.generation = g;
        rc = write_slot(db, &s);
    }
    if (!rc)
        rc = db->be->sync(db->be) ? SDB_EIO : SDB_OK;
    if (rc)
        return rc;
    memcpy(db->file_id, s.file_id, 16);
    db->slot = s;
    db->jnext = FIRST_PAGE;
    db->jseq = 1;
    db->durable_seq = 0;
    db->paths = pathidx_new();
    if (!db->paths)
        return SDB_ENOMEM;
    return journal_derive_free(db, (db->be->size(db->be) + db->page_size - 1) / db->page_size);
}

/* 1 when the file holds nothing but zeros and pieces of header slots: what a
 * crash while create_file() ran leaves behind (its two zero pages and two
 * slots, not all of them written).  Nothing was acknowledged in such a file,
 * and any page that ever held data or metadata lies past the two header
 * pages and is not zero, so such a file is created anew rather than refused
 * as CORRUPT forever. */
static int file_blank(sdb_t *db, uint64_t size)
{
    if (size > 2 * 65536)          /* past the header pages of any page size */
        return 0;
    uint8_t *b = malloc(size ? size : 1);
    int blank = b && db->be->read(db->be, 0, b, size) == SDB_OK;
    for (uint64_t i = 0; i < size && blank; i++) {
        if (!b[i])
            continue;
        int in_slot = i < SLOT_BYTES;
        for (uint64_t ps = 512; ps <= 65536 && !in_slot; ps *= 2)
            in_slot = i >= ps && i < ps + SLOT_BYTES;
        blank = in_slot;
    }
    free(b);
    return blank;
}

int journal_read_slots(sdb_backend_t *be, slot_t slots[2], int ok[2])
{
    uint8_t raw[SLOT_BYTES];
    int rc = be->read(be, 0, raw, SLOT_BYTES);
    if (rc)
        return rc;
    ok[0] = slot_decode(raw, &slots[0]) == SDB_OK;
    ok[1] = 0;
    /* the second slot sits one page in; find the page size from slot 0 or by trying */
    for (uint32_t ps = 512; ps <= 65536 && !ok[1]; ps *= 2) {
        if (ok[0] && ps != slots[0].page_size)
            continue;
        if ((rc = be->read(be, ps, raw, SLOT_BYTES)))
            return rc;
        ok[1] = slot_decode(raw, &slots[1]) == SDB_OK && slots[1].page_size == ps;
    }
    if (ok[0] && ok[1] && (slots[0].page_size != slots[1].page_size ||
                           memcmp(slots[0].file_id, slots[1].file_id, 16)))
        ok[1] = 0;
    return SDB_OK;
}

/* A header slot that fails its CRC next to a valid one is a torn slot write
 * (the valid one is then the state) or damage.  When exactly one flipped bit
 * makes slot d valid again, and the result is the newer slot of the same
 * file (page size, file id, generation one above the valid slot v and in its
 * place d), stores it in *out with the bit in *bit and returns 1; else 0, or
 * a read error.  The candidate is a proof only together with the checks of
 * journal_open: docs/FORMAT.md, "A damaged header slot". */
static int slot_correct(sdb_t *db, const slot_t *v, int d, slot_t *out, unsigned *bit)
{
    uint8_t raw[SLOT_BYTES];
    int rc = db->be->read(db->be, (uint64_t)d * v->page_size, raw, SLOT_BYTES);
    if (rc)
        return rc;
    int found = 0;
    for (unsigned i = 0; i < SLOT_BYTES * 8; i++) {
        slot_t c;
        raw[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (slot_decode(raw, &c) == SDB_OK) {
            *out = c;
            *bit = i;
            found++;
        }
        raw[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    return found == 1 && out->page_size == v->page_size &&
           memcmp(out->file_id, v->file_id, 16) == 0 && out->generation == v->generation + 1 &&
           out->generation % 2 == (uint64_t)d;
}

/* Loads the state of a corrected newest slot c (slot_correct) with the
 * checks that prove it: its checkpoint's pages carry its generation, their
 * stream has its length and CRC, and its journal replays (try_slot).
 * Returns 1 when it loaded (db holds its state), 0 when it did not (db is
 * empty again), or a negative error. */
static int try_corrected(sdb_t *db, const slot_t *c, int d, unsigned bit)
{
    db->slot_corrected = 1 + d;
    db->slot_corrected_bit = bit;
    int rc = try_slot(db, c, NULL, 0);
    if (rc == SDB_OK)
        return 1;
    state_destroy(db);
    db->slot_corrected = 0;
    return rc == SDB_ECORRUPT ? 0 : rc;
}

int journal_open(sdb_t *db)
{
    uint64_t size = db->be->size(db->be);
    if (size == 0)
        return create_file(db);
    slot_t slots[2];
    int ok[2];
    int rc = journal_read_slots(db->be, slots, ok);
    if (rc)
        return rc;
    if (!ok[0] && !ok[1])          /* sdb_check (tolerate_cut) never writes */
        return !db->tolerate_cut && file_blank(db, size) ? create_file(db) : SDB_ECORRUPT;
    /* The newest valid slot is the state.  The older slot is a fallback only
       for a torn slot write (which fails the slot's own CRC): a valid slot is
       written after its checkpoint was durable, so a checkpoint that fails
       its checks is damage, and the older state may name reused pages. */
    const slot_t *s = ok[0] && ok[1] ? &slots[slots[1].generation > slots[0].generation]
                                     : &slots[ok[0] ? 0 : 1];
    db->page_size = s->page_size;
    db->cap = s->page_size - PAGE_HDR;
    db->crc_op_full = crc32_combine_gen(db->cap);
    db->slot_fallback = 0;
    db->slot_corrected = 0;
    /* One slot fails its CRC.  If one flipped bit makes it the newer slot,
       and the checkpoint and journal it names load, that is the state (the
       valid slot's checkpoint may have been freed and reused since); else
       the valid slot is, as after a torn slot write. */
    slot_t fixed;
    unsigned bit = 0;
    int corrected = 0;
    if (ok[0] != ok[1] && (corrected = slot_correct(db, s, !ok[0] ? 0 : 1, &fixed, &bit)) == 1)
        corrected = try_corrected(db, &fixed, !ok[0] ? 0 : 1, bit);
    if (corrected < 0)
        return corrected;
    if (corrected)
        s = &fixed;
    rc = corrected ? SDB_OK : try_slot(db, s, NULL, 0);
    if (rc == SDB_ECORRUPT && ok[0] && ok[1]) {
        /* The newest slot is valid but its checkpoint (or a group after it)
           is not: damage after it was written.  The older slot's checkpoint
           and journal lead up to the point where the newer checkpoint was
           taken, and the newer slot's journal goes on from there: when that
           replay reaches every group the newer checkpoint folded in (each
           group checked for its sequence, nonce and CRCs, so a page reused
           since breaks the chain rather than feeding it), the state is the
           newest one and nothing is lost.  Short of that, sdb_open refuses
           the file and only sdb_check (tolerate_cut) takes the older state,
           to report and repair. */
        const slot_t *newer = s;
        s = &slots[s == &slots[0]];
        state_destroy(db);
        db->fallback_from = *newer;
        rc = try_slot(db, s, newer, 0);
        if (!rc) {
            db->slot_fallback = db->jseq - 1 >= newer->cp_seq ? 1 : 2;
            if (db->slot_fallback == 2 && !db->tolerate_cut)
                rc = SDB_ECORRUPT;
        }
    }
    if (!rc)
        rc = journal_derive_free(db, (size + db->page_size - 1) / db->page_size);
    /* The journal ends on a damaged or torn group S.  A torn one (a crash
       while the last commit was written) loses nothing acknowledged; a group
       damaged after its sync does, and then a later group was written with
       the ORDERED flag.  The first such group M was written before any page
       freed by groups S.. M-1 was released (that happens after a sync, and M
       is the first group after one), and its first page was taken before
       that too, so it lies in a page free in the state before S: looking
       there is enough (sdb_check looks at every page). */
    uint64_t cut = 0;
    if (!rc && db->journal_suspect && !(rc = journal_count_cut(db, db->jseq, 1, &cut)) && cut)
        rc = SDB_ECORRUPT;           /* acknowledged commits lie beyond a damaged group */
    /* One slot failed its CRC and could not be corrected: if it was the newest
       one, the valid (older) slot's state may load and end before commits
       made after the newest checkpoint, whose first group was written after
       that checkpoint's sync, so ORDERED, in a page the older state need not
       hold free.  A torn slot write leaves no such group (nothing commits
       while a slot is written), so looking at every page once (opening then
       rewrites the slot) tells the two apart: docs/FORMAT.md. */
    if (!rc && !cut && ok[0] != ok[1] && !corrected && !db->tolerate_cut &&
        !(rc = journal_count_past_slot(db, &cut)) && cut)
        rc = SDB_ECORRUPT;
    if (!rc) {
        db->slot_damaged = !(ok[0] && ok[1]);
        return SDB_OK;
    }
    state_destroy(db);
    freespace_destroy(&db->fs);
    return rc;
}

int journal_replay_partial(sdb_t *db, const slot_t *s, const pgno_t *cp, size_t ncp)
{
    db->page_size = s->page_size;
    db->cap = s->page_size - PAGE_HDR;
    db->crc_op_full = crc32_combine_gen(db->cap);
    int rc = try_slot(db, s, NULL, 1);
    for (size_t i = 0; !rc && i < ncp; i++)
        rc = pages_push(&db->cppages, &db->ncppages, &db->cppages_cap, cp[i]);
    db->slot_fallback = 3;          /* (journal_derive_free: jnext may be a checkpoint page) */
    if (!rc)
        rc = journal_derive_free(db, (db->be->size(db->be) + db->page_size - 1) / db->page_size);
    db->slot_fallback = 0;
    return rc;
}
