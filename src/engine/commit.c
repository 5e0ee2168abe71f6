/*
 * commit.c -- group commit: the queue, the leader, batch planning.
 *
 * A batch is the longest prefix of the queue whose requests touch disjoint
 * paths and documents, so each request can be planned against the state as
 * it stands before the batch (the state changes only when the batch is
 * applied).  A conflicting request simply waits for the next batch, which
 * keeps queue order.
 */
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "engine/commit.h"
#include "engine/journal.h"
#include "engine/util.h"

#define MAX_BATCH 512
#define LAZY_SYNC_NS 1000000000ull
#define GATHER_NS 150000ull
#define MERGE_BYTES (1u << 20)  /* most bytes one merged data write carries (copied) */

typedef struct {
    const char *p;
    size_t len;
    const doc_t *d;
} touch_t;

typedef struct {
    touch_t *t;
    size_t n, cap;
} touchset_t;

static int touches(const touchset_t *ts, const char *p, size_t len, const doc_t *d)
{
    for (size_t i = 0; i < ts->n; i++) {
        const touch_t *t = &ts->t[i];
        if (d && t->d == d)
            return 1;
        if (p && t->p && t->len == len && memcmp(t->p, p, len) == 0)
            return 1;
    }
    return 0;
}

static int touch_add(touchset_t *ts, const char *p, size_t len, const doc_t *d)
{
    if (ts->n == ts->cap) {
        size_t nc = ts->cap ? ts->cap * 2 : 32;
        touch_t *t = realloc(ts->t, nc * sizeof(*t));
        if (!t)
            return SDB_ENOMEM;
        ts->t = t;
        ts->cap = nc;
    }
    ts->t[ts->n++] = (touch_t){ p, len, d };
    return SDB_OK;
}

static doc_t *path_doc(sdb_t *db, const char *p, size_t len)
{
    pathidx_key_t *k = pathidx_get(db->paths, p, len);
    return k ? k->val : NULL;
}

/* Records the drops of versions of d beyond versions_to_keep, counting
 * `extra` newer versions about to be added. */
static int plan_gc(sdb_t *db, doc_t *d, int extra, buf_t *b)
{
    uint64_t kept = 0, keep = db->cfg.versions_to_keep;
    if (!d->cur)
        return SDB_OK;
    docver_t *v = extra ? d->cur : d->cur->older;
    for (; v; v = v->older) {
        if (kept < keep) {
            kept++;
            continue;
        }
        int rc = rec_drop_version(b, &d->id, v->version);
        if (rc)
            return rc;
    }
    return SDB_OK;
}

static int run_cmp(const void *a, const void *b)
{
    pgno_t x = (*(commit_req_t *const *)a)->run_start, y = (*(commit_req_t *const *)b)->run_start;
    return x < y ? -1 : x > y;
}

/* Writes the data runs that requests hand to the leader (see commit_req_t),
 * in page order, merging runs that follow each other on disk into one
 * write: a batch of small puts usually allocated its pages in one stretch,
 * and one large write is much cheaper than many small ones, both now and at
 * the sync.  Looks at most at MAX_BATCH requests from r.  A request whose
 * write fails gets the error in rc (plan() then refuses it); EIO is sticky,
 * as for any write. */
static void write_runs(sdb_t *db, commit_req_t *r)
{
    commit_req_t *runs[MAX_BATCH];
    size_t nruns = 0, ps = db->page_size;
    for (size_t seen = 0; r && seen < MAX_BATCH; r = r->next, seen++)
        if (r->run_n && !r->rc)
            runs[nruns++] = r;
    qsort(runs, nruns, sizeof(runs[0]), run_cmp);
    for (size_t i = 0; i < nruns;) {
        uint64_t n = runs[i]->run_n;
        size_t cnt = 1;
        while (i + cnt < nruns && runs[i + cnt]->run_start == runs[i]->run_start + n &&
               (n + runs[i + cnt]->run_n) * ps <= MERGE_BYTES)
            n += runs[i + cnt++]->run_n;
        uint8_t *merged = cnt > 1 ? malloc(n * ps) : NULL;
        int rc = SDB_OK;
        if (merged) {
            size_t off = 0;
            for (size_t k = i; k < i + cnt; k++) {
                memcpy(merged + off, runs[k]->run, (size_t)runs[k]->run_n * ps);
                off += (size_t)runs[k]->run_n * ps;
            }
            rc = db->be->write(db->be, runs[i]->run_start * ps, merged, n * ps);
            free(merged);
        }
        for (size_t k = i; k < i + cnt; k++) {
            commit_req_t *m = runs[k];
            int mrc = merged ? rc
                             : db->be->write(db->be, m->run_start * ps, m->run, (size_t)m->run_n * ps);
            db_data_written(db, m->run_start, m->run_n, mrc);
            m->run_n = 0;
            m->rc = mrc;
        }
        i += cnt;
    }
}

static int plan_multi(sdb_t *db, commit_req_t *r, buf_t *b);

/* Plans one request into records appended to b.  Returns 1 when the request
 * conflicts with the batch so far (nothing appended), else 0 with req->rc
 * set (records appended only when req->rc is 0). */
static int plan(sdb_t *db, commit_req_t *r, touchset_t *ts, buf_t *b)
{
    doc_t *d = NULL, *e = NULL;
    size_t mark = b->len;
    int rc = SDB_OK;
    if (r->rc)
        return 0;                  /* its data could not be written (write_runs) */
    switch (r->op) {
    case OP_PUT: {
        d = path_doc(db, r->path, r->plen);
        if (touches(ts, r->path, r->plen, d))
            return 1;
        if (touch_add(ts, r->path, r->plen, d)) {
            rc = SDB_ENOMEM;       /* untracked, it could share a batch with a conflict */
            break;
        }
        if (r->if_version != UINT64_MAX &&
            (d ? d->cur->version != r->if_version : r->if_version != 0)) {
            rc = SDB_ECONFLICT;
            break;
        }
        docver_t *v = r->ver;
        v->modified_ms = util_now_ms();
        r->info.size = v->size;
        r->info.crc32 = v->crc;
        r->info.modified_ms = v->modified_ms;
        if (d) {
            v->version = d->cur->version + 1;
            r->info.id = d->id;
            r->info.created_ms = d->created_ms;
            rc = rec_version(b, &d->id, v, d->created_ms);
            if (!rc)
                rc = plan_gc(db, d, 1, b);
        } else {
            sdb_id_t id;
            do {
                rc = util_new_id(&id);
            } while (!rc && doc_find(db, &id));
            v->version = 1;
            r->info.id = id;
            r->info.created_ms = v->modified_ms;
            if (!rc)
                rc = rec_version(b, &id, v, v->modified_ms);
            if (!rc)
                rc = rec_bind(b, &id, r->path, r->plen);
        }
        r->info.version = v->version;
        break;
    }
    case OP_DELETE:
        d = path_doc(db, r->path, r->plen);
        if (touches(ts, r->path, r->plen, d))
            return 1;
        if (touch_add(ts, r->path, r->plen, d)) {
            rc = SDB_ENOMEM;
            break;
        }
        if (!d) {
            rc = SDB_ENOTFOUND;
            break;
        }
        rc = rec_unbind(b, r->path, r->plen);
        if (!rc && d->npaths == 1)
            rc = rec_delete_doc(b, &d->id);
        break;
    case OP_DELETE_ID:
        d = doc_find(db, &r->id);
        if (touches(ts, NULL, 0, d))
            return 1;
        if (touch_add(ts, NULL, 0, d)) {
            rc = SDB_ENOMEM;
            break;
        }
        rc = d ? rec_delete_doc(b, &d->id) : SDB_ENOTFOUND;
        break;
    case OP_BIND:
        d = doc_find(db, &r->id);
        e = path_doc(db, r->path, r->plen);
        if (touches(ts, r->path, r->plen, d) || touches(ts, NULL, 0, e))
            return 1;
        if (touch_add(ts, r->path, r->plen, d) || touch_add(ts, NULL, 0, e)) {
            rc = SDB_ENOMEM;
            break;
        }
        if (!d)
            rc = SDB_ENOTFOUND;
        else if (e != d)
            rc = rec_bind(b, &d->id, r->path, r->plen);
        break;
    case OP_UNBIND:
        d = doc_find(db, &r->id);
        e = path_doc(db, r->path, r->plen);
        if (touches(ts, r->path, r->plen, d) || touches(ts, NULL, 0, e))
            return 1;
        if (touch_add(ts, r->path, r->plen, d)) {
            rc = SDB_ENOMEM;
            break;
        }
        if (!d || e != d)
            rc = SDB_ENOTFOUND;
        else
            rc = rec_unbind(b, r->path, r->plen);
        break;
    case OP_MULTI:
        if (ts->n)
            return 1;              /* planned alone: nothing else in its group */
        if (touch_add(ts, NULL, 0, NULL)) {
            rc = SDB_ENOMEM;
            break;
        }
        rc = plan_multi(db, r, b);
        break;
    case OP_FLUSH:
    case OP_CHECKPOINT:
    case OP_CP_SWITCH:
        if (ts->n)
            return 1;              /* a barrier: alone in its batch */
        if (touch_add(ts, NULL, 0, NULL)) {
            rc = SDB_ENOMEM;
            break;
        }
        /* commits apply retention as they go: only a file opened with a
           smaller versions_to_keep than it was written with has excess */
        for (size_t i = 0; db->gc_needed && i < db->docs_cap && !rc; i++)
            for (doc_t *x = db->docs[i]; x && !rc; x = x->hnext)
                rc = plan_gc(db, x, 0, b);
        break;                     /* gc_needed is cleared once the drops are applied */
    }
    r->rc = rc;
    if (rc)
        b->len = mark;
    return 0;
}

/* ---- atomic batches (OP_MULTI) ----
 *
 * The items of a batch are planned one after another against a scratch view
 * of the state, so that each sees what the earlier ones did (a put then a
 * bind of the new document, a delete then a put of the same path), while the
 * state itself changes only when the whole group is applied (invariant 3).
 * The view holds, for every document the batch has looked at, what the
 * batch has made of it (vdoc_t), and for every path it has looked at, the
 * document the batch has bound it to (or none); anything it has not looked
 * at is read from the state.  An OP_MULTI request is planned alone in its
 * group (lead), so nothing else in the group can change what it read.
 */
typedef struct {
    doc_t *real;                   /* the state's document, or NULL for one made here */
    sdb_docinfo_t info;            /* id, current version as the batch leaves it so far */
    int exists;                    /* 0 once deleted by the batch */
    uint32_t npaths;
    uint64_t nnew;                 /* versions the batch has added */
    uint64_t ndropped;             /* versions the batch has dropped (the oldest first) */
} vdoc_t;

typedef struct {
    uint64_t h;                    /* 0: empty slot */
    const char *p;                 /* path key (NULL for an id key) */
    size_t len;
    sdb_id_t id;
    int32_t val;                   /* vdoc index, or -1: unbound (paths only) */
} vent_t;

typedef struct {
    vent_t *e;
    size_t cap, n;                 /* cap: a power of two, kept at most half full */
} vmap_t;

typedef struct {
    sdb_t *db;
    vdoc_t *docs;
    size_t ndocs, cap;             /* cap: enough for every item (no realloc) */
    vmap_t paths, ids;
} view_t;

static uint64_t vhash(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h | 1;
}

/* The entry of a key, or the empty slot where it would go. */
static vent_t *vmap_path(vmap_t *m, uint64_t h, const char *p, size_t len)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        vent_t *e = &m->e[i];
        if (e->h == 0 || (e->h == h && e->len == len && memcmp(e->p, p, len) == 0))
            return e;
    }
}

static vent_t *vmap_id(vmap_t *m, uint64_t h, const sdb_id_t *id)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        vent_t *e = &m->e[i];
        if (e->h == 0 || (e->h == h && memcmp(&e->id, id, sizeof(*id)) == 0))
            return e;
    }
}

static int vmap_init(vmap_t *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n + 2)
        m->cap *= 2;
    m->n = 0;
    m->e = calloc(m->cap, sizeof(*m->e));
    return m->e ? SDB_OK : SDB_ENOMEM;
}

/* The view's slot for path (filled in with the state's binding on first use). */
static vent_t *view_path(view_t *v, const char *p, size_t len);

static int32_t view_new_doc(view_t *v, doc_t *real, const sdb_id_t *id)
{
    vdoc_t *x = &v->docs[v->ndocs];
    memset(x, 0, sizeof(*x));
    x->real = real;
    x->info.id = *id;
    x->exists = 1;
    if (real) {
        x->info.version = real->cur->version;
        x->info.size = real->cur->size;
        x->info.crc32 = real->cur->crc;
        x->info.modified_ms = real->cur->modified_ms;
        x->info.created_ms = real->created_ms;
        x->npaths = real->npaths;
    }
    vent_t *e = vmap_id(&v->ids, vhash(id, sizeof(*id), 0), id);
    e->h = vhash(id, sizeof(*id), 0);
    e->id = *id;
    e->val = (int32_t)v->ndocs;
    v->ids.n++;
    return (int32_t)v->ndocs++;
}

/* The view's document with this id, or -1 when there is none (any more). */
static int32_t view_doc(view_t *v, const sdb_id_t *id)
{
    uint64_t h = vhash(id, sizeof(*id), 0);
    vent_t *e = vmap_id(&v->ids, h, id);
    if (e->h)
        return v->docs[e->val].exists ? e->val : -1;
    doc_t *d = doc_find(v->db, id);
    return d ? view_new_doc(v, d, id) : -1;
}

static vent_t *view_path(view_t *v, const char *p, size_t len)
{
    uint64_t h = vhash(p, len, 1);
    vent_t *e = vmap_path(&v->paths, h, p, len);
    if (!e->h) {
        e->h = h;
        e->p = p;
        e->len = len;
        e->val = -1;
        v->paths.n++;
        doc_t *d = path_doc(v->db, p, len);
        if (d) {
            int32_t x = view_doc(v, &d->id);
            e->val = x;            /* -1 if the batch deleted it already */
        }
    }
    if (e->val >= 0 && !v->docs[e->val].exists)
        e->val = -1;               /* its document was deleted with all its paths */
    return e;
}

/* Drops the versions of x beyond versions_to_keep once it has a new current
 * version: the batch's versions (newest first) come before the state's. */
static int view_gc(view_t *v, vdoc_t *x, buf_t *b)
{
    uint64_t keep = v->db->cfg.versions_to_keep, nreal = 0;
    for (docver_t *o = x->real ? x->real->cur : NULL; o; o = o->older)
        nreal++;
    uint64_t total = x->nnew + nreal;
    uint64_t drop = total > keep + 1 ? total - 1 - keep : 0;
    /* positions from the oldest: the state's versions, oldest first, then
       the batch's; drop positions [ndropped, drop) counted from the oldest */
    for (uint64_t k = x->ndropped; k < drop; k++) {
        uint64_t version;
        if (k < nreal) {
            docver_t *o = x->real->cur;
            for (uint64_t skip = nreal - 1 - k; skip; skip--)
                o = o->older;
            version = o->version;
        } else {
            version = x->info.version - x->nnew + 1 + (k - nreal);
        }
        int rc = rec_drop_version(b, &x->info.id, version);
        if (rc)
            return rc;
    }
    if (drop > x->ndropped)
        x->ndropped = drop;
    return SDB_OK;
}

static int version_ok(const vdoc_t *x, uint64_t if_version)
{
    return if_version == UINT64_MAX || (x ? x->info.version : 0) == if_version;
}

static int plan_item(view_t *v, commit_req_t *it, int64_t now, buf_t *b)
{
    sdb_t *db = v->db;
    vent_t *pe = it->path ? view_path(v, it->path, it->plen) : NULL;
    vdoc_t *x = pe && pe->val >= 0 ? &v->docs[pe->val] : NULL;
    int rc;
    switch (it->op) {
    case OP_PUT: {
        if (!version_ok(x, it->if_version))
            return SDB_ECONFLICT;
        docver_t *nv = it->ver;
        nv->modified_ms = now;
        if (!x) {
            sdb_id_t id;
            do {
                rc = util_new_id(&id);
            } while (!rc && (doc_find(db, &id) ||
                             vmap_id(&v->ids, vhash(&id, sizeof(id), 0), &id)->h));
            if (rc)
                return rc;
            pe->val = view_new_doc(v, NULL, &id);
            x = &v->docs[pe->val];
            x->info.created_ms = now;
            x->npaths = 1;
            x->info.version = 0;
        }
        nv->version = x->info.version + 1;
        rc = rec_version(b, &x->info.id, nv, x->info.created_ms);
        if (!rc && nv->version == 1)
            rc = rec_bind(b, &x->info.id, it->path, it->plen);
        if (rc)
            return rc;
        x->info.version = nv->version;
        x->info.size = nv->size;
        x->info.crc32 = nv->crc;
        x->info.modified_ms = now;
        x->nnew++;
        it->info = x->info;
        return view_gc(v, x, b);
    }
    case OP_DELETE:
        if (!version_ok(x, it->if_version))
            return SDB_ECONFLICT;
        if (!x)
            return SDB_ENOTFOUND;
        it->info = x->info;
        if ((rc = rec_unbind(b, it->path, it->plen)))
            return rc;
        pe->val = -1;
        if (--x->npaths == 0) {
            x->exists = 0;
            return rec_delete_doc(b, &x->info.id);
        }
        return SDB_OK;
    case OP_BIND:
    case OP_UNBIND: {
        int32_t di = view_doc(v, &it->id);
        vdoc_t *d = di >= 0 ? &v->docs[di] : NULL;
        if (!d)
            return SDB_ENOTFOUND;
        if (!version_ok(d, it->if_version))
            return SDB_ECONFLICT;
        it->info = d->info;
        if (it->op == OP_BIND) {
            if (x == d)
                return SDB_OK;     /* bound there already */
            if ((rc = rec_bind(b, &d->info.id, it->path, it->plen)))
                return rc;
            if (x)
                x->npaths--;       /* it keeps existing, even with no path */
            d->npaths++;
            pe->val = di;
            return SDB_OK;
        }
        if (x != d)
            return SDB_ENOTFOUND;
        if ((rc = rec_unbind(b, it->path, it->plen)))
            return rc;
        d->npaths--;
        pe->val = -1;
        return SDB_OK;
    }
    }
    return SDB_EINVAL;
}

/* Plans the items of an OP_MULTI request into b, in order, against the
 * view; on the first failure sets r->failed to its index and returns its
 * error (the caller drops what was appended). */
static int plan_multi(sdb_t *db, commit_req_t *r, buf_t *b)
{
    view_t v = { .db = db };
    int rc = SDB_OK;
    r->failed = SIZE_MAX;
    for (size_t i = 0; i < r->nitems; i++)
        if (r->items[i].rc)
            return r->items[i].rc;       /* its data could not be written */
    v.cap = 2 * r->nitems + 1;
    v.docs = malloc(v.cap * sizeof(*v.docs));
    if (!v.docs || vmap_init(&v.paths, r->nitems) || vmap_init(&v.ids, 2 * r->nitems)) {
        rc = SDB_ENOMEM;
        goto done;
    }
    int64_t now = util_now_ms();
    for (size_t i = 0; i < r->nitems && !rc; i++) {
        rc = plan_item(&v, &r->items[i], now, b);
        if (rc)
            r->failed = i;
    }
    if (rc == SDB_ENOMEM || rc == SDB_EIO)
        r->failed = SIZE_MAX;      /* not the item's fault */
done:
    free(v.docs);
    free(v.paths.e);
    free(v.ids.e);
    return rc;
}

/* Lazy mode (cfg.durable 0) syncs when the last sync is a second old, at
 * sdb_flush / close / checkpoints, and earlier only
 *  - when LAZY_MAX_BYTES of records wait in db->jbuf (the memory bound:
 *    about 70,000 small puts), or
 *  - when the pages freed by commits since the last sync (they wait for it
 *    before they can be reused, invariant 5) exceed 16 + 1/16 of the file
 *    while fewer pages than that are free: an overwrite workload would grow
 *    the file otherwise.
 * Between syncs nothing is written to the journal: the buffered records go
 * out as one group (of as many pages as they take) right before the sync,
 * which then covers that group and its data pages as in durable mode.
 *
 * The timed and memory-bound syncs run in a thread of their own (db->ls):
 * the leader writes the group, hands the sync over and goes on committing,
 * buffering the next records; it writes no other group until that sync has
 * ended (so the group stays the journal's last until it is durable), and
 * takes its result at a later commit: the time, and the pages the group
 * freed.  Run by the leader, a sync of a second's writes stopped every
 * commit for its duration (100-200 ms on a loaded disk), a dip in the put
 * rate on a cycle of a second plus that.  Flushes, checkpoints, close and
 * the freed-pages rule (which needs the pages now) wait for a sync that
 * runs and then sync in the leader.
 *
 * A batch is acknowledged only once the pages its records take in that
 * group are reserved (journal_reserve: written with zeros, so that the
 * group's write at the sync cannot find the disk full); a batch for which
 * they cannot be had is refused before it is applied.  A freeing batch in
 * that case has the group written and synced at once (the pages kept for
 * freeing groups), so that deletes empty a full disk with puts buffered. */
#define LAZY_MAX_BYTES (8u << 20)

static void *lazy_sync_main(void *arg)
{
    sdb_t *db = arg;
    pthread_mutex_lock(&db->ls.lock);
    for (;;) {
        while (!db->ls.want && !db->ls.stop)
            pthread_cond_wait(&db->ls.cv, &db->ls.lock);
        if (!db->ls.want)
            break;
        db->ls.want = 0;
        pthread_mutex_unlock(&db->ls.lock);
        int rc = atomic_load(&db->fatal) ? SDB_EIO : SDB_OK;
        if (!rc && db->be->sync(db->be))
            rc = SDB_EIO;
        if (rc)
            atomic_store(&db->fatal, SDB_EIO);
        pthread_mutex_lock(&db->ls.lock);
        db->ls.rc = rc;
        db->ls.busy = 0;
        db->ls.done = 1;
        pthread_cond_broadcast(&db->ls.cv);
    }
    pthread_mutex_unlock(&db->ls.lock);
    return NULL;
}

/* Hands the sync of everything written so far to the sync thread (started
 * on first use).  0, or -1 when no thread could start (the caller syncs). */
static int lazy_sync_start(sdb_t *db)
{
    if (!db->ls.have_thread) {
        if (pthread_create(&db->ls.thread, NULL, lazy_sync_main, db) != 0)
            return -1;
        db->ls.have_thread = 1;
    }
    db->last_sync_ns = util_mono_ns();   /* the next one a second after this one began */
    pthread_mutex_lock(&db->ls.lock);
    db->ls.want = 1;
    db->ls.busy = 1;
    db->ls.seq = db->jseq - 1;
    pthread_cond_signal(&db->ls.cv);
    pthread_mutex_unlock(&db->ls.lock);
    return 0;
}

/* Takes the result of a sync of the sync thread that has ended, waiting
 * for one that runs when wait is set: the pages freed by the groups it
 * covers become reusable.  Returns 1 when one still runs
 * (wait 0), else 0 or SDB_EIO (it failed: the sticky error is set). */
static int lazy_sync_collect(sdb_t *db, int wait)
{
    if (!db->ls.have_thread)
        return 0;
    pthread_mutex_lock(&db->ls.lock);
    while (wait && db->ls.busy)
        pthread_cond_wait(&db->ls.cv, &db->ls.lock);
    int busy = db->ls.busy, done = db->ls.done, rc = db->ls.rc;
    uint64_t seq = db->ls.seq;
    db->ls.done = 0;
    pthread_mutex_unlock(&db->ls.lock);
    if (busy)
        return 1;
    if (!done)
        return 0;
    if (rc)
        return rc;
    db->unsynced_groups = 0;
    journal_release_pending(db, seq);
    return 0;
}

void commit_lazy_stop(sdb_t *db)
{
    if (!db->ls.have_thread)
        return;
    pthread_mutex_lock(&db->ls.lock);
    db->ls.stop = 1;
    pthread_cond_signal(&db->ls.cv);
    pthread_mutex_unlock(&db->ls.lock);
    pthread_join(db->ls.thread, NULL);
    db->ls.have_thread = 0;
}

/* 0: no sync due; 1: the second is over or the memory bound reached; 2:
 * freed pages crowd the file (see above). */
static int lazy_sync_due(sdb_t *db)
{
    if (db->jbuf.len >= LAZY_MAX_BYTES || util_mono_ns() - db->last_sync_ns >= LAZY_SYNC_NS)
        return 1;
    pthread_mutex_lock(&db->fs_lock);
    int crowded = db->pending_pages > 16 + db->fs.npages / 16 && db->fs.nfree < db->pending_pages;
    pthread_mutex_unlock(&db->fs_lock);
    return crowded ? 2 : 0;
}

/* Makes the batch's records durable (durable mode) or buffers them (lazy
 * mode, see above).  *tag receives the journal sequence they belong to. */
static int persist(sdb_t *db, const buf_t *b, int force_sync, int freeing, uint64_t *tag)
{
    int rc = SDB_OK;
    *tag = db->jseq;
    if (db->cfg.durable) {
        if (b->len == 0 && !force_sync)
            return SDB_OK;
        /* one sync covers the data pages and the journal group: replay checks
           the data of the last group before it counts (journal.c) */
        if (b->len && (rc = journal_write_group(db, b->p, b->len, freeing)))
            return rc;
        if ((rc = db_sync(db)))
            return rc;
        journal_release_pending(db, db->jseq - 1);
        return SDB_OK;
    }
    /* a sync of the sync thread: take its result (wait for it when this
       batch must sync, or when the buffer is at its bound) */
    int busy = lazy_sync_collect(db, force_sync || db->jbuf.len >= LAZY_MAX_BYTES);
    if (busy < 0)
        return busy;
    int due = force_sync ? 2 : lazy_sync_due(db);
    if (due == 1 && busy)
        due = 0;                   /* the next one once the running one has ended */
    if (due == 2 && busy) {
        if ((rc = lazy_sync_collect(db, 1)) != SDB_OK)
            return rc;
        busy = 0;
    }
    size_t mark = db->jbuf.len;    /* the records of earlier batches (applied already) */
    if (buf_put(&db->jbuf, b->p, b->len))
        return SDB_ENOMEM;
    int adds_before = db->jbuf_adds, frees_before = db->jbuf_frees;
    if (b->len && !freeing)
        db->jbuf_adds = 1;
    if (b->len && freeing)
        db->jbuf_frees = 1;
    /* the group must be writable at the sync without new space: reserve
       its pages now (journal.c, "lazy mode").  A batch that finds no room
       is refused before it is applied, as in durable mode; one that only
       frees space (deletes, unbinds) has its group written now instead, on
       the pages kept for such groups, and synced, which frees its pages */
    if (b->len && (rc = journal_reserve(db, db->jbuf.len)) != SDB_OK) {
        if (freeing && (rc == SDB_ENOSPC || rc == SDB_ETOOLARGE))
            rc = busy ? lazy_sync_collect(db, 1) : SDB_OK;
        if (rc) {
            db->jbuf.len = mark;
            db->jbuf_adds = adds_before;
            db->jbuf_frees = frees_before;
            return rc;
        }
        due = 2;
    }
    if (!due)
        return SDB_OK;
    if (db->jbuf.len) {
        /* the group goes out right before the sync that covers it and its
           data: no other group is written until that sync is done, so it is
           the last one, whose data replay checks (as in durable mode) */
        rc = journal_write_group(db, db->jbuf.p, db->jbuf.len, freeing);
        if (rc) {
            /* this batch fails and is not applied: take its records back.
               After a failure that is not fatal (no room for the group) the
               earlier batches' records stay buffered for the next attempt. */
            db->jbuf.len = mark;
            db->jbuf_adds = adds_before;
            db->jbuf_frees = frees_before;
            return rc;
        }
        db->jbuf.len = 0;
        db->jbuf_adds = db->jbuf_frees = 0;
        if (db->jbuf.cap > (1u << 20)) {   /* a burst's buffer is not kept for good */
            free(db->jbuf.p);
            db->jbuf = (buf_t){ 0 };
        }
    }
    if (due == 1 && lazy_sync_start(db) == 0)
        return SDB_OK;
    if ((rc = db_sync(db)))
        return rc;
    journal_release_pending(db, db->jseq - 1);
    return SDB_OK;
}

static void lead(sdb_t *db)
{
    commit_req_t *batch[MAX_BATCH];
    size_t n = 0;
    touchset_t ts = { 0 };
    buf_t b = { 0 };
    int force_sync = 0, checkpoint = 0, cp_switch = 0;

    /* take the whole queue, plan it without the lock (submitters keep
       queueing meanwhile), then put back what this batch does not take */
    pthread_mutex_lock(&db->q_lock);
    if (db->cfg.durable && db->last_batch > 1) {
        /* the members of the last batch are likely preparing their next
           request: give them a moment to join this sync */
        uint64_t deadline = util_mono_ns_real() + GATHER_NS;
        for (;;) {
            size_t queued = 0;
            for (commit_req_t *q = db->q_head; q && queued < db->last_batch; q = q->next)
                queued++;
            uint64_t now = util_mono_ns_real();
            if (queued >= db->last_batch || now >= deadline)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(deadline - now);
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            db->leader_waiting = 1;
            pthread_cond_timedwait(&db->gather_cv, &db->q_lock, &ts);
            db->leader_waiting = 0;
        }
    }
    commit_req_t *r = db->q_head;
    db->q_head = NULL;
    db->q_tail = &db->q_head;
    pthread_mutex_unlock(&db->q_lock);
    if (!atomic_load(&db->fatal))
        write_runs(db, r);
    while (r && n < MAX_BATCH) {
        if (plan(db, r, &ts, &b))
            break;
        if (r->op == OP_FLUSH || r->op == OP_CHECKPOINT || r->op == OP_CP_SWITCH) {
            force_sync = 1;
            checkpoint = r->op == OP_CHECKPOINT;
            cp_switch = r->op == OP_CP_SWITCH && r->rc == SDB_OK;
        }
        batch[n++] = r;
        r = r->next;
        if (force_sync || batch[n - 1]->op == OP_MULTI)
            break;
    }
    if (r) {
        commit_req_t *last = r;
        while (last->next)
            last = last->next;
        pthread_mutex_lock(&db->q_lock);
        last->next = db->q_head;
        if (!db->q_head)
            db->q_tail = &last->next;
        db->q_head = r;
        pthread_mutex_unlock(&db->q_lock);
    }

    /* a batch that only frees space (no put, no bind) may use the journal's
       last reserved pages: a full database can always be emptied */
    int adds = 0, frees = 0;
    for (size_t i = 0; i < n; i++) {
        commit_req_t *m = batch[i];
        size_t nops = m->op == OP_MULTI ? m->nitems : 1;
        for (size_t k = 0; k < nops && m->rc == SDB_OK; k++) {
            int op = m->op == OP_MULTI ? m->items[k].op : m->op;
            if (op == OP_PUT || op == OP_BIND)
                adds = 1;
            if (op == OP_DELETE || op == OP_DELETE_ID || op == OP_UNBIND)
                frees = 1;
        }
    }
    /* (lazy mode: a group holds the records of earlier batches too; it is
       a freeing one when they include a delete, whose group carries the
       acknowledged puts buffered with it; a flush of puts alone is not) */
    int freeing = !adds && (frees || db->jbuf_frees || !db->jbuf_adds);
    int rc = atomic_load(&db->fatal);
    uint64_t tag = 0;
    if (!rc && b.len == 0 && !force_sync)
        goto finish;               /* only refused requests or no-ops */
    if (!rc)
        rc = persist(db, &b, force_sync, freeing, &tag);
    if (!rc && b.len) {
        state_write_lock(db);
        rc = apply_records(db, b.p, b.len, tag);
        state_write_unlock(db);
        if (rc) {                  /* memory and disk now disagree: stop writing */
            atomic_store(&db->fatal, SDB_EIO);
            rc = SDB_EIO;          /* not ENOMEM: the group is durable, part of it applied */
        }
    }
    if (!rc && force_sync && batch[n - 1]->rc == SDB_OK)
        db->gc_needed = 0;         /* the barrier's drops (if any) are applied */
    if (!rc && cp_switch) {
        rc = journal_bg_switch(db);
    } else if (!rc) {
        /* the journal has grown past twice the checkpoint: write a new one in
           the background (commits go on meanwhile); close asks for one here */
        uint64_t jp = db->njpages, cp = db->ncppages;
        if (!journal_bg_running(db) && atomic_exchange(&db->bg.failed, 0))
            db->bg.retry_jp = jp + 64 + cp;   /* (no space, say): not at every commit */
        if (checkpoint)
            rc = journal_checkpoint(db);
        else if (((jp > 64 + 2 * cp && jp >= db->bg.retry_jp) || atomic_exchange(&db->cp_soon, 0)) &&
                 !journal_bg_running(db) && (db->fg_checkpoints || journal_bg_start(db)))
            (void)journal_checkpoint(db);
    }
finish:
    atomic_store(&db->stat_jpages, db->njpages);
    pthread_mutex_lock(&db->q_lock);
    db->last_batch = n;
    for (size_t i = 0; i < n; i++) {
        if (rc && batch[i]->rc == SDB_OK)
            batch[i]->rc = rc;
        batch[i]->done = 1;
        pthread_cond_signal(batch[i]->cv);    /* wake exactly the members' submitters */
    }
    pthread_mutex_unlock(&db->q_lock);
    free(ts.t);
    free(b.p);
}

void commit_submit_many(sdb_t *db, commit_req_t *const *reqs, size_t n)
{
    pthread_cond_t cv;
    for (size_t i = 0; i < n; i++) {
        reqs[i]->done = 0;
        reqs[i]->rc = SDB_OK;
        reqs[i]->next = NULL;
        reqs[i]->cv = &cv;
    }
    if (atomic_load(&db->fatal)) {
        for (size_t i = 0; i < n; i++)
            reqs[i]->rc = SDB_EIO;
        return;
    }
    if (n == 0)
        return;
    pthread_cond_init(&cv, NULL);
    pthread_mutex_lock(&db->q_lock);
    for (size_t i = 0; i < n; i++) {
        *db->q_tail = reqs[i];
        db->q_tail = &reqs[i]->next;
    }
    if (db->leader_waiting)
        pthread_cond_signal(&db->gather_cv);
    /* members complete in queue order, batch by batch: wait for the last */
    size_t first = 0;
    for (;;) {
        while (first < n && reqs[first]->done)
            first++;
        if (first == n)
            break;
        if (!db->leader) {
            db->leader = 1;
            pthread_mutex_unlock(&db->q_lock);
            lead(db);
            pthread_mutex_lock(&db->q_lock);
            db->leader = 0;
            if (db->q_head)                       /* hand the lead to the next in line */
                pthread_cond_signal(db->q_head->cv);
            continue;
        }
        pthread_cond_wait(&cv, &db->q_lock);
    }
    pthread_mutex_unlock(&db->q_lock);
    pthread_cond_destroy(&cv);
}

int commit_submit(sdb_t *db, commit_req_t *req)
{
    commit_submit_many(db, &req, 1);
    return req->rc;
}
