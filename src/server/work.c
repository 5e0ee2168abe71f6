/*
 * work.c -- what runs on the thread pool: every engine call of a request
 * (reads, writes, deletes, listings, the writer's open, commit and abort, a
 * reader's close, STATS's engine figures), as the job that dispatch.c built
 * (job.h).  Code here runs on a worker thread: it touches the job and the
 * engine, never a connection or the server's counters (server.h, invariant
 * 6).  GET streams and long listings are produced in batches of at most half
 * the output cap (invariant 3).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/errmsg.h"
#include "server/job.h"

#define GET_BATCH (1u << 20)          /* DATA bytes produced per job, at most */
#define LIST_PAGE_MAX 10000           /* entries per SEARCH page at most */

size_t ops_batch_bytes(const server_t *s)
{
    /* half the output cap (invariant 3), but at least one whole frame */
    size_t n = s->cfg->max_output_bytes / 2;
    if (n > GET_BATCH)
        n = GET_BATCH;
    if (n < (size_t)s->cfg->chunk_bytes + SDB_PROTO_HEADER_SIZE)
        n = (size_t)s->cfg->chunk_bytes + SDB_PROTO_HEADER_SIZE;
    return n;
}

/* Copies a wire path into a NUL-terminated buffer for the engine. */
static int path_arg(const sdb_proto_str_t *s, char *buf)
{
    if (s->len == 0 || s->len > SDB_MAX_PATH)
        return SDB_EINVAL;
    return sdb_proto_str_copy(s, buf, SDB_MAX_PATH + 1);
}

/* Produces GET_HEADER (first call) and DATA frames of a download, then END. */
static void get_batch(job_t *j)
{
    download_t *d = j->down;
    uint32_t chunk = j->s->cfg->chunk_bytes;
    /* in a batch, behind other answers, the whole job's output counts */
    size_t produced = j->nrec ? j->out.len : 0, batch = ops_batch_bytes(j->s);
    while (d->left > 0 && produced < batch) {
        if (produced > 0 && produced + (d->left < chunk ? d->left : chunk) > batch)
            break;
        size_t want = d->left < chunk ? (size_t)d->left : chunk;
        if (out_reserve(&j->out, SDB_PROTO_HEADER_SIZE + want)) {
            j->err = SDB_ENOMEM;
            break;
        }
        uint8_t *hdr = j->out.p + j->out.len;
        size_t got = 0, n;
        int rc = 0;
        while (got < want && !(rc = sdb_reader_read(d->r, hdr + SDB_PROTO_HEADER_SIZE + got, want - got, &n)) && n)
            got += n;
        if (!rc && got < want)
            rc = SDB_ECORRUPT;         /* shorter than its size: never send a partial stream as whole */
        if (rc) {
            j->err = rc;
            break;
        }
        sdb_proto_header_t h = { .opcode = SDB_OP_DATA, .length = (uint32_t)got, .request_id = d->rid };
        sdb_proto_header_encode(hdr, &h);
        j->out.len += SDB_PROTO_HEADER_SIZE + got;
        d->left -= got;
        produced += got;
    }
    if (j->err) {
        char msg[512] = "stored data failed its check; the stream is cut";
        if (j->err != SDB_ECORRUPT && j->err != SDB_ENOMEM) {
            errmsg_storage(j->s->cfg, j->s->db, j->err, msg, sizeof(msg));
            size_t n = strlen(msg);
            snprintf(msg + n, sizeof(msg) - n, "; the stream is cut");
        }
        out_error(&j->out, d->rid, j->err, 0, j->err == SDB_ENOMEM ? NULL : msg);
    } else if (d->left == 0) {
        size_t n;
        uint8_t extra;
        /* the reader checks the content CRC when it reaches the end */
        int rc = sdb_reader_read(d->r, &extra, 1, &n);
        if (rc) {
            j->err = rc;
            out_error(&j->out, d->rid, rc, 0, "stored data failed its check");
        } else {
            out_simple(&j->out, SDB_OP_END, d->rid);
        }
    }
    if (j->err || d->left == 0) {
        sdb_reader_close(d->r);
        free(d);
        j->down = NULL;
        j->done = 1;
    }
}

typedef struct {
    outbuf_t *out;
    uint8_t *buf;
    size_t cap;
    uint32_t chunk;
    sdb_proto_entries_builder_t b;
    uint32_t rid;
    uint32_t count, limit;
    size_t budget;                    /* ENTRIES bytes for this job; over it: pause */
    listing_t *piece;                 /* LIST_PATHS / LIST_VERSIONS: skip what was sent */
    int more;
    int paused;                       /* the budget was reached: entries remain */
    int kind;
    int err;
} lister_t;

static void lister_flush(lister_t *l)
{
    if (l->b.count == 0)
        return;
    size_t n = sdb_proto_entries_finish(&l->b, l->rid);
    if (out_reserve(l->out, n) == 0) {
        memcpy(l->out->p + l->out->len, l->buf, n);
        l->out->len += n;
    } else {
        l->err = SDB_ENOMEM;
    }
    sdb_proto_entries_begin(&l->b, l->buf, l->cap);
}

/* Runs under the engine's lock: copies, but allocates only when an entry
 * does not fit the output reserved before the listing started. */
static int lister_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    lister_t *l = arg;
    listing_t *p = l->piece;
    if (p && p->started && (l->kind == SDB_ENTRY_VERSION ? info->version >= p->after_version
                                                           : strcmp(path, p->after) <= 0))
        return 0;                     /* sent by an earlier piece */
    if (l->limit && l->count >= l->limit) {
        l->more = 1;
        return 1;
    }
    sdb_proto_entry_t e = { .kind = (uint8_t)(l->kind == SDB_ENTRY_VERSION ? SDB_ENTRY_VERSION
                                              : info ? SDB_ENTRY_DOC : SDB_ENTRY_PREFIX) };
    if (path) {
        e.path.ptr = path;
        e.path.len = strlen(path);
    }
    if (info)
        e.info = *info;
    size_t sz = sdb_proto_entry_size(&e);
    if (l->count > 0 && l->out->len + l->b.len + sz > l->budget) {
        l->paused = 1;                /* invariant 3: the rest in a later job or page */
        return 1;
    }
    if (l->b.count > 0 && l->b.len + sz > l->chunk + SDB_PROTO_HEADER_SIZE)   /* payload <= chunk */
        lister_flush(l);
    if (sdb_proto_entries_add(&l->b, &e) != 0) {
        lister_flush(l);
        if (sdb_proto_entries_add(&l->b, &e) != 0) {
            l->err = SDB_ETOOLARGE;
            return 1;
        }
    }
    l->count++;
    if (p) {
        p->started = 1;
        if (l->kind == SDB_ENTRY_VERSION)
            p->after_version = info->version;
        else
            memcpy(p->after, path, e.path.len + 1);
    }
    return l->err != 0;
}

/* Sets l up for job j: the entries buffer, and the output reserved ahead so
 * that the callback, under the engine's lock, does not allocate. */
static int lister_init(lister_t *l, job_t *j)
{
    server_t *s = j->s;
    l->out = &j->out;
    l->rid = j->rid;
    l->chunk = s->cfg->chunk_bytes;
    l->budget = ops_batch_bytes(s);
    l->cap = SDB_PROTO_HEADER_SIZE + 2 + (s->cfg->chunk_bytes > 8192 ? s->cfg->chunk_bytes : 8192) + 8192;
    l->buf = malloc(l->cap);
    if (!l->buf || out_reserve(&j->out, l->budget + l->cap + 64))
        return SDB_ENOMEM;
    sdb_proto_entries_begin(&l->b, l->buf, l->cap);
    return 0;
}

/* Ends a listing job: flushes the entries, then LIST_END unless paused. */
static int lister_end(lister_t *l, job_t *j, int rc, uint32_t total)
{
    if (!rc)
        rc = l->err;
    if (!rc)
        lister_flush(l);
    if (!rc)
        rc = l->err;
    if (!rc && !(l->paused && l->piece)) {
        sdb_proto_msg_t e = { .opcode = SDB_OP_LIST_END, .request_id = j->rid };
        e.u.list_end.count = total;
        e.u.list_end.more = (uint8_t)(l->more || l->paused);
        rc = out_msg(&j->out, &e);
    }
    free(l->buf);
    return rc;
}

/* One piece of a LIST_PATHS / LIST_VERSIONS listing (j->list): at most a
 * batch of entries after those already sent.  The listing ends (j->list
 * freed, j->done) with LIST_END or an ERROR. */
static void list_piece(job_t *j)
{
    listing_t *p = j->list;
    lister_t l = { .piece = p, .kind = p->opcode == SDB_OP_LIST_VERSIONS ? SDB_ENTRY_VERSION : 0 };
    int rc = lister_init(&l, j);
    if (!rc)
        rc = p->opcode == SDB_OP_LIST_PATHS ? sdb_list_paths(j->s->db, &p->id, lister_cb, &l)
                                            : sdb_list_versions(j->s->db, &p->id, lister_cb, &l);
    p->count += l.count;
    rc = lister_end(&l, j, rc, p->count);
    if (rc) {
        if (p->count == l.count)
            j->out.len = j->base;    /* nothing sent yet: the error replaces the entries */
        char msg[512] = "";
        if (rc == SDB_ENOTFOUND) {
            char ids[37];
            sdb_id_format(&p->id, ids);
            snprintf(msg, sizeof(msg), "no document %s", ids);
        } else if (rc != SDB_ENOMEM) {
            errmsg_storage(j->s->cfg, j->s->db, rc, msg, sizeof(msg));
        }
        out_error(&j->out, j->rid, rc, 0, msg[0] ? msg : NULL);
    }
    if (rc || !l.paused) {
        free(p->after);
        free(p);
        j->list = NULL;
        j->done = 1;
        j->err = rc;
    }
}

/* SEARCH: one page, ended early (more = 1) once it holds a batch of
 * entries, as PROTOCOL.md allows, so that a page stays consistent and
 * bounded: returns 0 (the output holds the page) or an error.  LIST_PATHS
 * and LIST_VERSIONS start a listing in pieces: returns 1 (answered). */
static int run_listing(job_t *j, const sdb_proto_msg_t *m)
{
    server_t *s = j->s;
    if (m->opcode != SDB_OP_SEARCH) {
        listing_t *p = calloc(1, sizeof(*p));
        char *after = p ? malloc(SDB_MAX_PATH + 1) : NULL;
        if (!after) {
            free(p);
            return SDB_ENOMEM;
        }
        p->after = after;
        p->opcode = m->opcode;
        p->rid = j->rid;
        p->t0 = j->t0;
        p->id = m->u.id;
        j->list = p;
        j->done = 0;
        list_piece(j);
        return 1;                     /* list_piece answered */
    }
    lister_t l = { 0 };
    int rc = lister_init(&l, j);
    char *prefix = malloc(SDB_MAX_PATH + 1), *after = malloc(SDB_MAX_PATH + 1);
    const sdb_proto_search_t *q = &m->u.search;
    if (!rc)
        rc = !prefix || !after ? SDB_ENOMEM
             : q->prefix.len > SDB_MAX_PATH || q->start_after.len > SDB_MAX_PATH ? SDB_EINVAL
             : sdb_proto_str_copy(&q->prefix, prefix, SDB_MAX_PATH + 1) ? SDB_EINVAL
             : sdb_proto_str_copy(&q->start_after, after, SDB_MAX_PATH + 1) ? SDB_EINVAL : 0;
    if (!rc) {
        sdb_search_opts_t o = { .start_after = q->start_after.len ? after : NULL,
                                .limit = 0, .delimiter = (char)q->delimiter };
        l.limit = q->limit == 0 || q->limit > LIST_PAGE_MAX ? LIST_PAGE_MAX : q->limit;
        rc = sdb_search(s->db, prefix, &o, lister_cb, &l);
    }
    free(prefix);
    free(after);
    rc = lister_end(&l, j, rc, l.count);
    if (rc)
        j->out.len = j->base;           /* an error replaces partial entries */
    return rc;
}

static int first_version_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    *(sdb_docinfo_t *)arg = *info;
    return 1;
}

/* GET_RANGE / GET_ID_RANGE: opens the reader on the range and starts the
 * stream (RANGE_HEADER, then DATA as for GET).  Returns 1 when it answered
 * (the stream, or the ERROR for an offset past the end), else an error. */
static int start_range(job_t *j, const sdb_proto_msg_t *m, char *path)
{
    server_t *s = j->s;
    sdb_reader_t *r = NULL;
    sdb_docinfo_t info;
    uint64_t offset, length, avail = 0;
    int rc;
    if (m->opcode == SDB_OP_GET_RANGE) {
        offset = m->u.path_range.offset;
        length = m->u.path_range.length;
        rc = path_arg(&m->u.path_range.path, path) ? SDB_EINVAL
             : sdb_reader_open(s->db, path, &r, &info);
    } else {
        offset = m->u.id_range.offset;
        length = m->u.id_range.length;
        rc = sdb_reader_open_id(s->db, &m->u.id_range.id, m->u.id_range.version, &r, &info);
    }
    if (rc)
        return rc;
    sdb_reader_set_quick(r, m->flags & SDB_FLAG_QUICK);
    download_t *d = NULL;
    if (offset > info.size) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%s: offset %llu is past the end of the document (%llu bytes)",
                 sdb_proto_opcode_name(m->opcode), (unsigned long long)offset,
                 (unsigned long long)info.size);
        out_error(&j->out, j->rid, SDB_EINVAL, 0, msg);
        j->err = SDB_EINVAL;
        sdb_reader_close(r);
        return 1;
    }
    if ((rc = sdb_reader_range(r, offset, length, &avail)) || !(d = calloc(1, sizeof(*d)))) {
        sdb_reader_close(r);
        return rc ? rc : SDB_ENOMEM;
    }
    d->r = r;
    d->rid = j->rid;
    d->left = avail;
    d->opcode = m->opcode;
    d->t0 = j->t0;
    sdb_proto_msg_t h = { .opcode = SDB_OP_RANGE_HEADER, .request_id = j->rid };
    h.u.range_header.doc = info;
    h.u.range_header.offset = offset;
    h.u.range_header.length = avail;
    out_msg(&j->out, &h);
    j->down = d;
    j->done = 0;
    get_batch(j);
    return 1;
}

/* BATCH (PROTOCOL.md 6.9): builds an engine batch from the items (paths
 * copied into path[], contents copied by the engine) and commits it as one
 * unit.  Answers BATCH_RESULT, or BATCH_FAILED naming the item that failed
 * (*failed_rc then holds its error) and returns 0; returns a negative error
 * for the caller's ERROR frame when the request cannot be a batch (over
 * the limits, no memory).  The result takes 52 bytes per item and must fit
 * in one frame: a batch of more items than that allows is TOO_LARGE. */
static int run_atomic_batch(job_t *j, const sdb_proto_msg_t *m, char *path, int *failed_rc)
{
    server_t *s = j->s;
    const sdb_proto_batch_t *pb = &m->u.batch;
    size_t max_items = (s->cfg->max_frame_bytes - 4) / SDB_PROTO_DOCINFO_SIZE;
    static const char *const kind_name[] = { "?", "put", "delete", "bind", "unbind" };
    if (pb->count > max_items || pb->count > SDB_BATCH_MAX_OPS)
        return SDB_ETOOLARGE;
    sdb_batch_t *b = NULL;
    sdb_docinfo_t *res = NULL;
    uint8_t *docs = NULL;
    int rc = sdb_batch_new(&b);
    size_t failed = SDB_BATCH_NO_ITEM;
    if (!rc && pb->count && (!(res = calloc(pb->count, sizeof(*res))) ||
                             !(docs = malloc((size_t)pb->count * SDB_PROTO_DOCINFO_SIZE))))
        rc = SDB_ENOMEM;
    sdb_proto_batch_iter_t it;
    sdb_proto_batch_item_t item;
    sdb_proto_batch_iter(pb, &it);
    const char *what = "?";
    for (uint32_t i = 0; !rc && sdb_proto_batch_next(&it, &item) == 1; i++) {
        const char *kind = kind_name[item.kind <= 4 ? item.kind : 0];
        uint64_t ifv = item.if_version;  /* SDB_PROTO_UNSET is the engine's UINT64_MAX */
        if (path_arg(&item.path, path)) {
            snprintf(path, SDB_MAX_PATH + 1, "(a bad path of %zu bytes)", item.path.len);
            rc = SDB_EINVAL;
        } else if (item.kind == SDB_BATCH_ITEM_PUT) {
            rc = sdb_batch_put(b, path, item.data.ptr, item.data.len, ifv);
        } else if (item.kind == SDB_BATCH_ITEM_DELETE) {
            rc = sdb_batch_delete(b, path, ifv);
        } else if (item.kind == SDB_BATCH_ITEM_BIND) {
            rc = sdb_batch_bind(b, &item.id, path, ifv);
        } else {
            rc = sdb_batch_unbind(b, &item.id, path, ifv);
        }
        if (rc == SDB_ETOOLARGE) {
            sdb_batch_free(b);
            free(res);
            free(docs);
            return rc;             /* over the batch limits: ERROR TOO_LARGE */
        }
        if (rc == SDB_EINVAL) {
            failed = i;
            what = kind;
        }
    }
    if (!rc) {
        rc = sdb_batch_commit(s->db, b, res, &failed);
        if (rc && failed != SDB_BATCH_NO_ITEM) {
            /* name the failing item: walk to it again */
            sdb_proto_batch_iter(pb, &it);
            for (size_t i = 0; sdb_proto_batch_next(&it, &item) == 1; i++)
                if (i == failed) {
                    what = kind_name[item.kind <= 4 ? item.kind : 0];
                    path_arg(&item.path, path);
                    break;
                }
        }
    }
    if (!rc) {
        sdb_proto_msg_t r = { .opcode = SDB_OP_BATCH_RESULT, .request_id = j->rid };
        for (uint32_t i = 0; i < pb->count; i++)
            sdb_proto_docinfo_encode(docs + (size_t)i * SDB_PROTO_DOCINFO_SIZE, &res[i]);
        r.u.batch_result.count = pb->count;
        r.u.batch_result.data = docs;
        rc = out_msg(&j->out, &r);
    } else if (rc != SDB_ENOMEM || failed != SDB_BATCH_NO_ITEM) {
        char msg[SDB_PROTO_MAX_MESSAGE];
        if (failed == SDB_BATCH_NO_ITEM)
            snprintf(msg, sizeof(msg), "batch of %u items not applied: %s", (unsigned)pb->count,
                     sdb_strerror(rc));
        else
            snprintf(msg, sizeof(msg), "item %zu (%s %.300s): %s; nothing applied", failed, what,
                     path, sdb_strerror(rc));
        sdb_proto_msg_t r = { .opcode = SDB_OP_BATCH_FAILED, .request_id = j->rid };
        r.u.batch_failed.item = failed == SDB_BATCH_NO_ITEM ? SDB_PROTO_NO_ITEM : (uint32_t)failed;
        r.u.batch_failed.status = (uint16_t)sdb_proto_status_from_error(rc);
        r.u.batch_failed.message.ptr = msg;
        r.u.batch_failed.message.len = strlen(msg);
        *failed_rc = rc;
        rc = out_msg(&j->out, &r);
    }
    sdb_batch_free(b);
    free(res);
    free(docs);
    return rc;
}

static void run_request(job_t *j)
{
    server_t *s = j->s;
    const sdb_proto_msg_t m = j->cur->m;
    char *path = malloc(SDB_MAX_PATH + 1);
    int rc = path ? j->cur->decode_rc : SDB_ENOMEM;
    int decoded = rc == 0;
    sdb_docinfo_t info;
    j->done = 1;
    if (rc)
        goto out;
    switch (m.opcode) {
    case SDB_OP_GET:
    case SDB_OP_GET_ID: {
        sdb_reader_t *r = NULL;
        if (m.opcode == SDB_OP_GET)
            rc = path_arg(&m.u.path, path) ? SDB_EINVAL : sdb_reader_open(s->db, path, &r, &info);
        else
            rc = sdb_reader_open_id(s->db, &m.u.id_version.id, m.u.id_version.version, &r, &info);
        if (rc)
            break;
        sdb_reader_set_quick(r, m.flags & SDB_FLAG_QUICK);
        download_t *d = calloc(1, sizeof(*d));
        if (!d) {
            sdb_reader_close(r);
            rc = SDB_ENOMEM;
            break;
        }
        d->r = r;
        d->rid = j->rid;
        d->left = info.size;
        d->opcode = m.opcode;
        d->t0 = j->t0;
        out_doc(&j->out, SDB_OP_GET_HEADER, j->rid, &info);
        j->down = d;
        j->done = 0;
        free(path);
        get_batch(j);
        return;
    }
    case SDB_OP_GET_RANGE:
    case SDB_OP_GET_ID_RANGE:
        if ((rc = start_range(j, &m, path)) == 1) {
            free(path);
            return;
        }
        break;
    case SDB_OP_LOOKUP:
        rc = path_arg(&m.u.path, path) ? SDB_EINVAL : sdb_lookup(s->db, path, &info);
        if (!rc)
            out_doc(&j->out, SDB_OP_DOC, j->rid, &info);
        break;
    case SDB_OP_DELETE:
        rc = path_arg(&m.u.path, path) ? SDB_EINVAL : sdb_delete(s->db, path);
        break;
    case SDB_OP_DELETE_ID:
        rc = sdb_delete_id(s->db, &m.u.id);
        break;
    case SDB_OP_BIND:
    case SDB_OP_UNBIND:
        rc = path_arg(&m.u.id_path.path, path) ? SDB_EINVAL
             : m.opcode == SDB_OP_BIND ? sdb_bind(s->db, &m.u.id_path.id, path)
                                       : sdb_unbind(s->db, &m.u.id_path.id, path);
        break;
    case SDB_OP_FLUSH:
        rc = sdb_flush(s->db);
        break;
    case SDB_OP_BATCH: {
        int failed_rc = 0;
        rc = run_atomic_batch(j, &m, path, &failed_rc);
        if (!rc && failed_rc) {    /* answered by BATCH_FAILED */
            free(path);
            j->err = failed_rc;
            return;
        }
        break;
    }
    case SDB_OP_SEARCH:
    case SDB_OP_LIST_PATHS:
    case SDB_OP_LIST_VERSIONS:
        rc = run_listing(j, &m);
        if (rc == 1) {
            free(path);
            return;
        }
        break;
    case SDB_OP_INFO: {
        char *text = NULL;
        rc = sdb_list_versions(s->db, &m.u.id, first_version_cb, &info);
        if (!rc)
            rc = sdb_info(s->db, &m.u.id, &text);
        if (!rc) {
            sdb_proto_msg_t r = { .opcode = SDB_OP_INFO_RESULT, .request_id = j->rid };
            r.u.info.doc = info;
            r.u.info.text.ptr = text;
            r.u.info.text.len = strlen(text);
            /* cut the text to fit max_frame_bytes, at a UTF-8 character boundary */
            size_t room = s->cfg->max_frame_bytes - SDB_PROTO_DOCINFO_SIZE - 4;
            if (r.u.info.text.len > room) {
                r.u.info.text.len = room;
                while (r.u.info.text.len > 0 && ((unsigned char)text[r.u.info.text.len] & 0xC0) == 0x80)
                    r.u.info.text.len--;
            }
            rc = out_msg(&j->out, &r);
        }
        free(text);
        break;
    }
    default:
        rc = SDB_EOPCODE;
        break;
    }
    if (!rc && j->out.len == j->base)
        out_simple(&j->out, SDB_OP_OK, j->rid);
out:
    free(path);
    j->err = rc;
    if (rc) {
        char msg[512];
        errmsg_request(s->cfg, s->db, &j->cur->hdr, decoded, &m, rc, msg, sizeof(msg));
        out_error(&j->out, j->rid, rc, 0, msg);
    }
}

/* Writes a batch of PUT_DATA frames to the upload's writer. */
static void run_put_data(job_t *j)
{
    upload_t *u = j->up;
    uint64_t maxdoc = j->s->cfg->engine.max_document_size;
    for (qframe_t *f = j->cur; f && f->hdr.opcode == SDB_OP_PUT_DATA && !u->failed; f = f->next) {
        uint32_t n = f->hdr.length;
        int rc = 0;
        if (u->got + n > maxdoc)
            rc = SDB_ETOOLARGE;
        else if (u->declared != SDB_PROTO_UNSET && u->got + n > u->declared)
            rc = SDB_ECHECKSUM;
        else
            rc = sdb_writer_write(u->w, f->payload, n);
        if (rc) {
            char msg[512];
            if (rc == SDB_ETOOLARGE && u->got + n > maxdoc)
                snprintf(msg, sizeof(msg), "the content passed max_document_bytes (%llu bytes): "
                         "the server's engine.max_document_size",
                         (unsigned long long)maxdoc);
            else if (rc == SDB_ECHECKSUM)
                snprintf(msg, sizeof(msg), "more data than PUT_BEGIN's size (%llu bytes): %llu so far",
                         (unsigned long long)u->declared, (unsigned long long)(u->got + n));
            else
                errmsg_storage(j->s->cfg, j->s->db, rc, msg, sizeof(msg));
            out_error(&j->out, u->rid, rc, 0, msg);
            sdb_writer_abort(u->w);
            u->w = NULL;
            u->failed = 1;
            j->err = rc;
            j->done = 1;
            break;
        }
        u->got += n;
    }
}

/* Commits the n writers w[0..n) as one group: rcs[i] and out[i] get what
 * sdb_writer_commit would give for w[i]; every writer is released.  Every
 * commit of an upload goes through here, so that the commits of a batch's
 * uploads (and of the commit stage's, from every connection) are one group:
 * sdb_writer_commit_many, one sync for the lot in durable mode, each commit
 * succeeding or failing on its own, in order. */
static void commit_group(sdb_t *db, sdb_writer_t **w, size_t n, sdb_docinfo_t *out, int *rcs)
{
    (void)db;
    if (sdb_writer_commit_many(w, n, out, rcs) == SDB_OK)
        return;
    /* refused as a whole (it cannot be, for writers of one handle, each
       once): nothing was committed or released, so commit them one by one */
    for (size_t i = 0; i < n; i++)
        rcs[i] = sdb_writer_commit(w[i], &out[i]);
}

/* PUT_END's checks (j->cur) of the upload j->up: its size and CRC32 against
 * what was received and declared.  Returns 0 when the writer may commit;
 * else the writer is aborted, the upload freed and answered with an ERROR
 * in j->out, and the error is returned (also in j->err). */
static int put_end_check(job_t *j)
{
    upload_t *u = j->up;
    const sdb_proto_msg_t m = j->cur->m;
    int rc = j->cur->decode_rc;
    int decoded = rc == 0;
    uint32_t crc = 0;
    if (!rc)
        rc = sdb_writer_checksum(u->w, NULL, &crc);   /* the engine's CRC: no second pass */
    char msg[512];
    if (rc) {
        if (decoded)
            snprintf(msg, sizeof(msg), "PUT_END: %s", sdb_proto_strerror(rc));
        else
            errmsg_request(j->s->cfg, j->s->db, &j->cur->hdr, 0, NULL, rc, msg, sizeof(msg));
    } else if (m.u.put_end.size != u->got || m.u.put_end.crc32 != crc ||
               (u->declared != SDB_PROTO_UNSET && u->declared != u->got)) {
        rc = SDB_ECHECKSUM;
        int n = snprintf(msg, sizeof(msg), "received %llu bytes, CRC32 %08x; PUT_END says %llu bytes, "
                         "CRC32 %08x", (unsigned long long)u->got, (unsigned)crc,
                         (unsigned long long)m.u.put_end.size, (unsigned)m.u.put_end.crc32);
        if (u->declared != SDB_PROTO_UNSET && n > 0 && (size_t)n < sizeof(msg))
            snprintf(msg + n, sizeof(msg) - (size_t)n, "; PUT_BEGIN declared %llu bytes",
                     (unsigned long long)u->declared);
        strncat(msg, "; nothing stored", sizeof(msg) - strlen(msg) - 1);
    }
    if (rc) {
        sdb_writer_abort(u->w);
        out_error(&j->out, u->rid, rc, 0, msg);
        j->err = rc;
        free(u);
        j->up = NULL;
    }
    return rc;
}

/* Answers upload u after its commit (rc, info) and frees it. */
static void put_end_answer(job_t *j, upload_t *u, int rc, const sdb_docinfo_t *info)
{
    char msg[512];
    if (!rc) {
        out_doc(&j->out, SDB_OP_DOC, u->rid, info);
    } else {
        if (rc == SDB_ECONFLICT)
            errmsg_conflict(j->s->db, u->path, u->if_version, msg, sizeof(msg));
        else
            errmsg_storage(j->s->cfg, j->s->db, rc, msg, sizeof(msg));
        out_error(&j->out, u->rid, rc, 0, msg);
    }
    free(u);
}

static void run_put_end(job_t *j)
{
    upload_t *u = j->up;
    j->done = 1;
    if (put_end_check(j))
        return;
    sdb_docinfo_t info;
    int rc;
    commit_group(j->s->db, &u->w, 1, &info, &rc);
    u->w = NULL;
    j->err = rc;
    j->up = NULL;
    put_end_answer(j, u, rc, &info);
}

/* PUT_BEGIN: opens the upload's writer (the upload is already the
 * connection's, invariant 4; on failure it is marked failed). */
static void run_put_begin(job_t *j)
{
    upload_t *u = j->up;
    const sdb_proto_msg_t m = j->cur->m;
    char *path = malloc(SDB_MAX_PATH + 1);
    int rc = !path ? SDB_ENOMEM : j->cur->decode_rc;
    int decoded = path && rc == 0;
    if (!rc && path_arg(&m.u.put_begin.path, path))
        rc = SDB_EINVAL;
    if (!rc)
        rc = sdb_writer_open(j->s->db, path, m.u.put_begin.if_version, &u->w);
    if (!rc) {
        memcpy(u->path, path, strlen(path) + 1);
        u->if_version = m.u.put_begin.if_version;
    }
    free(path);
    if (rc) {
        char msg[512];
        errmsg_request(j->s->cfg, j->s->db, &j->cur->hdr, decoded, decoded ? &m : NULL, rc, msg, sizeof(msg));
        u->failed = 1;
        u->w = NULL;
        out_error(&j->out, u->rid, rc, 0, msg);
        j->err = rc;
        j->done = 1;
    }
}

/* PUT_ABORT of an upload that has not failed: OK, nothing stored. */
static void run_put_abort(job_t *j)
{
    upload_t *u = j->up;
    sdb_writer_abort(u->w);
    out_simple(&j->out, SDB_OP_OK, u->rid);
    j->t0 = u->t0;
    j->done = 1;
    free(u);
    j->up = NULL;
}

/* A whole upload of a batch, frames begin (PUT_BEGIN), PUT_DATA..., end
 * (PUT_END), all queued and checked by the loop as dispatch.c checks an
 * upload's frames one by one: opens the writer, writes, checks.  Returns
 * the upload ready to commit (its writer written, PUT_END's checks passed;
 * the caller commits it and answers), or NULL when it was answered with an
 * ERROR (j->err says which).  j->done is set. */
static upload_t *run_upload(job_t *j, qframe_t *begin, qframe_t *end)
{
    upload_t *u = calloc(1, sizeof(*u));
    j->done = 1;
    if (!u) {
        j->err = SDB_ENOMEM;
        out_error(&j->out, begin->hdr.request_id, SDB_ENOMEM, 0, NULL);
        return NULL;
    }
    u->rid = begin->hdr.request_id;
    u->t0 = j->t0;
    u->declared = begin->m.u.put_begin.size;
    j->up = u;
    j->cur = begin;
    run_put_begin(j);
    if (!u->failed && begin->next != end) {
        j->cur = begin->next;
        run_put_data(j);
    }
    if (!u->failed) {
        j->cur = end;
        if (put_end_check(j))         /* answered, u freed */
            return NULL;
        j->up = NULL;
        return u;
    }
    free(u);                          /* failed: its writer is gone, its ERROR sent */
    j->up = NULL;
    return NULL;
}

/* Hands upload u (ready to commit) to the commit stage: appended to
 * j->staged, allocated on the first.  0, or SDB_ENOMEM (u untouched). */
static int stage_upload(job_t *j, upload_t *u)
{
    staged_t *st = j->staged;
    if (!st) {
        st = calloc(1, sizeof(*st));
        if (!st)
            return SDB_ENOMEM;
        j->staged = st;
    }
    assert(st->n < BATCH_MAX);        /* a batch holds at most BATCH_MAX requests */
    st->u[st->n] = u;
    st->tail_from[st->n] = st->tail.len;
    st->n++;
    st->cost += u->got + STAGE_PAGE_COST;
    return 0;
}

/* JOB_BATCH: the requests of the chain j->f in order, each answer appended
 * to j->out (invariant 1).  It stops before a request once the output holds
 * a batch's worth (ops_batch_bytes), and after a request that leaves a
 * stream going (a GET larger than what fits, a listing in pieces): the
 * frames not run go to j->rest, back to the connection's queue.  Uploads
 * that reach their commit are not committed here: they go to j->staged,
 * for the server's commit stage to commit with those of other connections
 * as one group; the batch then runs only further uploads (a request that
 * might read what they write waits for their commits), and the ERRORs of
 * uploads that fail before their commit wait behind them (staged tail). */
static void run_batch(job_t *j)
{
    size_t budget = ops_batch_bytes(j->s);
    qframe_t *f = j->f, *last = NULL;
    while (f && !(j->nrec > 0 && j->out.len >= budget)) {
        staged_t *st = j->staged;
        if (st && f->hdr.opcode != SDB_OP_PUT_BEGIN)
            break;                        /* after the commits (invariant 1) */
        if (st && st->cost >= budget)
            break;                        /* the staged writers hold a batch's worth (invariant 2) */
        qframe_t *end = f;
        j->cur = f;
        j->base = j->out.len;
        j->rid = f->hdr.request_id;
        j->opcode = f->hdr.opcode;
        j->err = 0;
        j->done = 1;
        if (f->hdr.opcode == SDB_OP_PUT_BEGIN) {
            while (end->hdr.opcode != SDB_OP_PUT_END)   /* the loop queued it whole */
                end = end->next;
            /* behind staged uploads, its ERROR (if any) waits with them */
            outbuf_t main = j->out;
            if (st)
                j->out = st->tail;
            upload_t *u = run_upload(j, f, end);
            if (st) {
                st->tail = j->out;
                j->out = main;
            }
            if (u) {
                if (stage_upload(j, u) == 0) {
                    j->done = 0;          /* recorded by the commit stage */
                } else {
                    /* no memory for the stage: commit it here, alone */
                    sdb_docinfo_t info;
                    commit_group(j->s->db, &u->w, 1, &info, &j->err);
                    u->w = NULL;
                    put_end_answer(j, u, j->err, &info);
                }
            }
        } else if (f->hdr.opcode == SDB_OP_PING) {
            sdb_proto_msg_t r = { .opcode = SDB_OP_PONG, .request_id = j->rid };
            r.u.raw = f->m.u.raw;
            j->err = out_msg(&j->out, &r);
            if (j->err)
                out_error(&j->out, j->rid, j->err, 0, NULL);
        } else {
            run_request(j);
        }
        if (j->done && j->nrec < BATCH_MAX) {
            j->rec[j->nrec].opcode = j->opcode;
            j->rec[j->nrec].err = j->err;
            j->nrec++;
        }
        last = end;
        f = end->next;
        if (j->down || j->list)
            break;
    }
    if (f) {
        last->next = NULL;
        j->rest = f;
    }
}

/* JOB_COMMIT: commits the staged uploads of every batch job on the list
 * j->stage_next as one group (commit_group) and answers each job's. */
static void run_commit(job_t *j)
{
    size_t n = 0, k = 0;
    for (job_t *b = j->stage_next; b; b = b->stage_next)
        n += b->staged->n;
    sdb_writer_t **w = malloc(n * sizeof(*w));
    sdb_docinfo_t *info = malloc(n * sizeof(*info));
    int *rcs = malloc(n * sizeof(*rcs));
    if (w && info && rcs) {
        for (job_t *b = j->stage_next; b; b = b->stage_next)
            for (unsigned i = 0; i < b->staged->n; i++)
                w[k++] = b->staged->u[i]->w;
        commit_group(j->s->db, w, n, info, rcs);
    }
    k = 0;
    for (job_t *b = j->stage_next; b; b = b->stage_next) {
        staged_t *st = b->staged;
        b->out.len = 0;
        for (unsigned i = 0; i < st->n; i++, k++) {
            sdb_docinfo_t one;
            upload_t *u = st->u[i];
            if (w && info && rcs) {
                st->rc[i] = rcs[k];
                one = info[k];
            } else {
                commit_group(j->s->db, &u->w, 1, &one, &st->rc[i]);   /* no memory: one by one */
            }
            u->w = NULL;
            put_end_answer(b, u, st->rc[i], &one);
            st->u[i] = NULL;
            size_t from = st->tail_from[i], to = i + 1 < st->n ? st->tail_from[i + 1] : st->tail.len;
            if (to > from && out_reserve(&b->out, to - from) == 0) {
                memcpy(b->out.p + b->out.len, st->tail.p + from, to - from);
                b->out.len += to - from;
            }
        }
    }
    free(w);
    free(info);
    free(rcs);
}

void job_work_cb(uv_work_t *w)
{
    job_t *j = w->data;
    switch (j->kind) {
    case JOB_BATCH: run_batch(j); break;
    case JOB_COMMIT: run_commit(j); break;
    case JOB_PUT_BEGIN: run_put_begin(j); break;
    case JOB_PUT_DATA: run_put_data(j); break;
    case JOB_PUT_END: run_put_end(j); break;
    case JOB_PUT_ABORT: run_put_abort(j); break;
    case JOB_GET_MORE: get_batch(j); break;
    case JOB_LIST_MORE: list_piece(j); break;
    case JOB_STATS: j->have_st = sdb_stats(j->s->db, &j->st) == 0; break;
    case JOB_RELEASE:
        if (j->release_w)
            sdb_writer_abort(j->release_w);
        if (j->release_r)
            sdb_reader_close(j->release_r);
        break;
    }
}

