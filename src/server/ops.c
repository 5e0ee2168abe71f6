/*
 * ops.c -- request handling: the HELLO handshake and PING on the loop; every
 * engine call (requests, writer open/abort, reader close, STATS's engine
 * figures) as a job on the thread pool (server.h, invariant 6); the streamed
 * PUT, GET and long listings, produced in batches of at most half the output
 * cap.  Every response is encoded with the shared codec (streamdb_proto.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/errmsg.h"
#include "server/log.h"
#include "server/server.h"

#define GET_BATCH (1u << 20)          /* DATA bytes produced per job, at most */
#define LIST_PAGE_MAX 10000           /* entries per SEARCH page at most */

enum {
    JOB_REQ, JOB_PUT_BEGIN, JOB_PUT_DATA, JOB_PUT_END, JOB_PUT_ABORT, JOB_GET_MORE, JOB_LIST_MORE,
    JOB_STATS, JOB_RELEASE
};

typedef struct job {
    uv_work_t work;
    conn_t *c;
    server_t *s;
    int kind;
    qframe_t *f;                      /* request frame(s), owned; a chain for PUT_DATA */
    upload_t *up;                     /* handed over for the job's duration */
    download_t *down;
    listing_t *list;
    sdb_writer_t *release_w;          /* JOB_RELEASE: what to close */
    sdb_reader_t *release_r;
    sdb_stats_t st;                   /* JOB_STATS: the engine's figures */
    int have_st;
    outbuf_t out;
    uint8_t opcode;
    uint32_t rid;
    uint64_t t0;
    int err;                          /* result for STATS */
    int done;                         /* the request has answered (record STATS) */
} job_t;

/* ---- output helpers ---- */

static int out_reserve(outbuf_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t nc = o->cap ? o->cap : 256;
    while (nc < o->len + n)
        nc *= 2;
    uint8_t *p = realloc(o->p, nc);
    if (!p)
        return SDB_ENOMEM;
    o->p = p;
    o->cap = nc;
    return 0;
}

int out_msg(outbuf_t *o, const sdb_proto_msg_t *m)
{
    size_t size, len;
    int rc = sdb_proto_encoded_size(m, &size);
    if (!rc)
        rc = out_reserve(o, size);
    if (!rc)
        rc = sdb_proto_encode(m, o->p + o->len, size, &len);
    if (!rc)
        o->len += len;
    return rc;
}

void out_error(outbuf_t *o, uint32_t rid, int err, uint8_t flags, const char *msg)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_ERROR, .flags = flags, .request_id = rid };
    m.u.error.status = (uint16_t)sdb_proto_status_from_error(err);
    if (m.u.error.status == SDB_STATUS_OK)
        m.u.error.status = SDB_STATUS_INTERNAL;
    const char *text = msg ? msg : sdb_proto_strerror(err);
    m.u.error.message.ptr = text;
    m.u.error.message.len = strlen(text) > SDB_PROTO_MAX_MESSAGE ? SDB_PROTO_MAX_MESSAGE : strlen(text);
    out_msg(o, &m);
}

static void out_simple(outbuf_t *o, uint8_t opcode, uint32_t rid)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    out_msg(o, &m);
}

static void out_doc(outbuf_t *o, uint8_t opcode, uint32_t rid, const sdb_docinfo_t *d)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    m.u.doc = *d;
    out_msg(o, &m);
}

static void send_now(conn_t *c, uint32_t rid, int err, const char *msg)
{
    outbuf_t o = { 0 };
    out_error(&o, rid, err, 0, msg);
    conn_send(c, &o);
}

static void free_frames(qframe_t *f)
{
    while (f) {
        qframe_t *n = f->next;
        free(f->payload);
        free(f);
        f = n;
    }
}

/* ---- jobs ---- */

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
    size_t produced = 0, batch = ops_batch_bytes(j->s);
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
            j->out.len = 0;          /* nothing sent yet: the error replaces the entries */
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
        j->out.len = 0;                 /* an error replaces partial entries */
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

static void run_request(job_t *j)
{
    server_t *s = j->s;
    sdb_proto_frame_t fr = { .hdr = j->f->hdr, .payload = j->f->payload };
    sdb_proto_msg_t m;
    char *path = malloc(SDB_MAX_PATH + 1);
    int rc = path ? sdb_proto_decode(&fr, &m) : SDB_ENOMEM;
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
    if (!rc && j->out.len == 0)
        out_simple(&j->out, SDB_OP_OK, j->rid);
out:
    free(path);
    j->err = rc;
    if (rc) {
        char msg[512];
        errmsg_request(s->cfg, s->db, &j->f->hdr, decoded, &m, rc, msg, sizeof(msg));
        out_error(&j->out, j->rid, rc, 0, msg);
    }
}

/* Writes a batch of PUT_DATA frames to the upload's writer. */
static void run_put_data(job_t *j)
{
    upload_t *u = j->up;
    uint64_t maxdoc = j->s->cfg->engine.max_document_size;
    for (qframe_t *f = j->f; f && !u->failed; f = f->next) {
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
                snprintf(msg, sizeof(msg), "the content passed max_document_bytes (%llu bytes)",
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

static void run_put_end(job_t *j)
{
    upload_t *u = j->up;
    sdb_proto_frame_t fr = { .hdr = j->f->hdr, .payload = j->f->payload };
    sdb_proto_msg_t m;
    int rc = sdb_proto_decode(&fr, &m);
    int decoded = rc == 0;
    uint32_t crc = 0;
    j->done = 1;
    if (!rc)
        rc = sdb_writer_checksum(u->w, NULL, &crc);   /* the engine's CRC: no second pass */
    char msg[512];
    if (rc) {
        if (decoded)
            snprintf(msg, sizeof(msg), "PUT_END: %s", sdb_proto_strerror(rc));
        else
            errmsg_request(j->s->cfg, j->s->db, &j->f->hdr, 0, NULL, rc, msg, sizeof(msg));
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
    } else {
        sdb_docinfo_t info;
        rc = sdb_writer_commit(u->w, &info);
        if (!rc)
            out_doc(&j->out, SDB_OP_DOC, u->rid, &info);
        else if (rc == SDB_ECONFLICT)
            errmsg_conflict(j->s->db, u->path, u->if_version, msg, sizeof(msg));
        else
            errmsg_storage(j->s->cfg, j->s->db, rc, msg, sizeof(msg));
    }
    u->w = NULL;
    if (rc)
        out_error(&j->out, u->rid, rc, 0, msg);
    j->err = rc;
    free(u);
    j->up = NULL;
}

/* PUT_BEGIN: opens the upload's writer (the upload is already the
 * connection's, invariant 4; on failure it is marked failed). */
static void run_put_begin(job_t *j)
{
    upload_t *u = j->up;
    sdb_proto_frame_t fr = { .hdr = j->f->hdr, .payload = j->f->payload };
    sdb_proto_msg_t m;
    char *path = malloc(SDB_MAX_PATH + 1);
    int rc = !path ? SDB_ENOMEM : sdb_proto_decode(&fr, &m);
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
        errmsg_request(j->s->cfg, j->s->db, &j->f->hdr, decoded, decoded ? &m : NULL, rc, msg, sizeof(msg));
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

static void work_cb(uv_work_t *w)
{
    job_t *j = w->data;
    switch (j->kind) {
    case JOB_REQ: run_request(j); break;
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

/* STATS on the loop, once the engine's figures have come back. */
static void stats_result(job_t *j)
{
    char *json = stats_json(j->s, j->have_st ? &j->st : NULL);
    if (json) {
        sdb_proto_msg_t r = { .opcode = SDB_OP_STATS_RESULT, .request_id = j->rid };
        r.u.raw.ptr = (const uint8_t *)json;
        r.u.raw.len = strlen(json);
        j->err = out_msg(&j->out, &r);
        free(json);
    } else {
        j->err = SDB_ENOMEM;
    }
    if (j->err) {
        j->out.len = 0;
        out_error(&j->out, j->rid, j->err, 0, NULL);
    }
}

static void after_cb(uv_work_t *w, int status)
{
    job_t *j = w->data;
    conn_t *c = j->c;
    (void)status;
    j->s->jobs--;
    if (j->kind == JOB_RELEASE) {
        free(j);
        return;
    }
    if (j->kind == JOB_STATS)
        stats_result(j);
    c->up = j->up;
    c->down = j->down;
    c->list = j->list;
    c->job_bytes = 0;
    if (j->done)
        stats_record(j->s, j->opcode, j->err, j->t0);
    conn_send(c, &j->out);
    free(j->out.p);
    free_frames(j->f);
    free(j);
    conn_job_done(c);
}

static void start_job(conn_t *c, job_t *j)
{
    j->c = c;
    j->s = c->srv;
    j->work.data = j;
    j->up = c->up;
    j->down = c->down;
    j->list = c->list;
    c->up = NULL;
    c->down = NULL;
    c->list = NULL;
    c->busy = 1;
    for (qframe_t *f = j->f; f; f = f->next)   /* still counted (invariant 2) */
        c->job_bytes += f->hdr.length + QFRAME_COST;
    if (uv_queue_work(c->srv->loop, &j->work, work_cb, after_cb) < 0) {
        c->up = j->up;
        c->down = j->down;
        c->list = j->list;
        c->busy = 0;
        c->job_bytes = 0;
        if (c->up && !c->up->w)
            c->up->failed = 1;         /* a PUT_BEGIN that never opened: end it silently */
        send_now(c, j->rid, SDB_EINTERNAL, "cannot queue the request");
        free_frames(j->f);
        free(j);
        return;
    }
    c->srv->jobs++;
}

void ops_release(server_t *s, sdb_writer_t *w, sdb_reader_t *r)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j) {
        j->s = s;
        j->kind = JOB_RELEASE;
        j->work.data = j;
        j->release_w = w;
        j->release_r = r;
        if (uv_queue_work(s->loop, &j->work, work_cb, after_cb) == 0) {
            s->jobs++;
            return;
        }
        free(j);
    }
    /* cannot hand it to a worker: do it here rather than leak it */
    if (w)
        sdb_writer_abort(w);
    if (r)
        sdb_reader_close(r);
}

void ops_continue(conn_t *c)
{
    job_t *j = calloc(1, sizeof(*j));
    uint32_t rid = c->down ? c->down->rid : c->list->rid;
    if (!j) {
        conn_fatal(c, rid, SDB_ENOMEM, NULL);
        return;
    }
    j->kind = c->down ? JOB_GET_MORE : JOB_LIST_MORE;
    j->opcode = c->down ? c->down->opcode : c->list->opcode;
    j->rid = rid;
    j->t0 = c->down ? c->down->t0 : c->list->t0;
    start_job(c, j);
}

/* ---- dispatch on the loop ---- */

/* 1 when the client's token (got, gl bytes) equals the configured one (want,
 * wl bytes).  Lengths and bytes are compared without an early exit: the time
 * taken depends on wl only. */
static int token_eq(const char *want, size_t wl, const char *got, size_t gl)
{
    unsigned char d = wl != gl;
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
    return d == 0;
}

static void do_hello(conn_t *c, qframe_t *f)
{
    server_t *s = c->srv;
    const server_config_t *cfg = s->cfg;
    uint32_t rid = f->hdr.request_id;
    if (f->hdr.opcode != SDB_OP_HELLO) {
        conn_fatal(c, rid, cfg->auth_token_len ? SDB_EAUTH : SDB_EPROTO,
                   "the first frame must be HELLO");
        return;
    }
    sdb_proto_frame_t fr = { .hdr = f->hdr, .payload = f->payload };
    sdb_proto_msg_t m;
    int rc = sdb_proto_decode(&fr, &m);
    if (rc == SDB_EINVAL) {
        char msg[64];
        snprintf(msg, sizeof(msg), "HELLO: undefined flag bits 0x%02x",
                 (unsigned)(f->hdr.flags & ~SDB_FLAG_REQUEST_MASK));
        conn_fatal(c, rid, SDB_EINVAL, msg);
        return;
    }
    if (rc) {
        conn_fatal(c, rid, SDB_EPROTO, "malformed HELLO (bad magic, or a field cut short)");
        return;
    }
    uint16_t version;
    if (sdb_proto_negotiate(m.u.hello.min_version, m.u.hello.max_version, &version)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "this server speaks protocol versions %u..%u",
                 SDB_PROTO_VERSION_MIN, SDB_PROTO_VERSION);
        conn_fatal(c, rid, SDB_EVERSION, msg);
        return;
    }
    if (cfg->auth_token_len &&
        !token_eq(cfg->auth_token, cfg->auth_token_len, m.u.hello.token.ptr, m.u.hello.token.len)) {
        log_warn("conn %llu (%s): authentication failed", (unsigned long long)c->id, c->peer);
        conn_fatal(c, rid, SDB_EAUTH, "authentication failed");
        return;
    }
    c->hello = 1;
    sdb_proto_decoder_set_limit(&c->dec, cfg->max_frame_bytes);
    sdb_proto_msg_t r = { .opcode = SDB_OP_HELLO_OK, .request_id = rid };
    r.u.hello_ok.version = version;
    r.u.hello_ok.max_frame_bytes = cfg->max_frame_bytes;
    r.u.hello_ok.chunk_bytes = cfg->chunk_bytes;
    r.u.hello_ok.max_document_bytes = cfg->engine.max_document_size;
    r.u.hello_ok.max_inflight = cfg->max_inflight;
    r.u.hello_ok.server.ptr = "streamdbd " SDB_VERSION_STRING;
    r.u.hello_ok.server.len = strlen(r.u.hello_ok.server.ptr);
    outbuf_t o = { 0 };
    out_msg(&o, &r);
    conn_send(c, &o);
    stats_record(s, SDB_OP_HELLO, 0, now_us());
}

/* Fails the open upload with err: ERROR now, the rest is discarded. */
static void fail_upload(conn_t *c, int err, const char *msg)
{
    upload_t *u = c->up;
    send_now(c, u->rid, err, msg);
    ops_release(c->srv, u->w, NULL);
    u->w = NULL;
    u->failed = 1;
}

/* A new job of the given kind for request rid, owning frame(s) f; NULL when
 * out of memory (f stays the caller's). */
static job_t *job_new(int kind, qframe_t *f, uint8_t opcode, uint32_t rid, uint64_t t0)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j) {
        j->kind = kind;
        j->f = f;
        j->opcode = opcode;
        j->rid = rid;
        j->t0 = t0;
    }
    return j;
}

/* Continues c's upload with frame(s) f as a job of the given kind, recorded
 * in STATS under opcode from t0.  On allocation failure the upload fails. */
static int upload_job(conn_t *c, int kind, uint8_t opcode, uint64_t t0, qframe_t *f)
{
    job_t *j = job_new(kind, f, opcode, f->hdr.request_id, t0);
    if (!j) {
        fail_upload(c, SDB_ENOMEM, NULL);
        free_frames(f);
        return 0;
    }
    start_job(c, j);
    return 1;
}

int ops_dispatch(conn_t *c, qframe_t *f)
{
    server_t *s = c->srv;
    uint8_t op = f->hdr.opcode;
    uint32_t rid = f->hdr.request_id;
    int started = 0;
    if (!c->hello) {
        do_hello(c, f);
        free_frames(f);
        return 0;
    }
    if (c->up) {                            /* invariant 4 */
        upload_t *u = c->up;
        if ((op != SDB_OP_PUT_DATA && op != SDB_OP_PUT_END && op != SDB_OP_PUT_ABORT) || rid != u->rid) {
            conn_fatal(c, rid, SDB_EPROTO, "frame out of place during an upload");
            free_frames(f);
            return 0;
        }
        if (op != SDB_OP_PUT_END) {
            /* PUT_DATA and PUT_ABORT are checked as every request is (flags,
               layout); PUT_END is decoded by its job */
            sdb_proto_frame_t fr = { .hdr = f->hdr, .payload = f->payload };
            sdb_proto_msg_t m;
            int rc = sdb_proto_decode(&fr, &m);
            if (rc) {
                char msg[128];
                if (rc == SDB_EINVAL)
                    snprintf(msg, sizeof(msg), "%s: undefined flag bits 0x%02x; the upload is %s",
                             sdb_proto_opcode_name(op), f->hdr.flags & ~SDB_FLAG_REQUEST_MASK,
                             op == SDB_OP_PUT_DATA ? "failed" : "aborted");
                else
                    snprintf(msg, sizeof(msg), "%s: a payload of %u bytes, its layout is empty; "
                             "the upload is aborted", sdb_proto_opcode_name(op), f->hdr.length);
                if (!u->failed) {
                    fail_upload(c, rc, msg);
                    stats_record(s, SDB_OP_PUT_BEGIN, rc, u->t0);
                }
                if (op == SDB_OP_PUT_DATA) {   /* the upload stays open, failed (6.2) */
                    free_frames(f);
                    return 0;
                }
            }
        }
        if (op == SDB_OP_PUT_DATA) {
            if (u->failed) {
                free_frames(f);
                return 0;
            }
            if (f->hdr.length > s->cfg->chunk_bytes) {
                char msg[96];
                snprintf(msg, sizeof(msg), "PUT_DATA of %u bytes is over chunk_bytes (%u)",
                         (unsigned)f->hdr.length, (unsigned)s->cfg->chunk_bytes);
                fail_upload(c, SDB_ETOOLARGE, msg);
                stats_record(s, SDB_OP_PUT_BEGIN, SDB_ETOOLARGE, u->t0);
                free_frames(f);
                return 0;
            }
            /* take the following PUT_DATA frames of this upload in the same
             * job: up to half the cap, so that reading goes on meanwhile
             * (the job's frames still count, invariant 2) */
            qframe_t *last = f;
            uint64_t bytes = f->hdr.length;
            uint64_t most = s->cfg->max_output_bytes / 2 < (4u << 20) ? s->cfg->max_output_bytes / 2 : (4u << 20);
            while (c->qhead && c->qhead->hdr.opcode == SDB_OP_PUT_DATA && c->qhead->hdr.request_id == rid &&
                   !(c->qhead->hdr.flags & ~SDB_FLAG_REQUEST_MASK) &&
                   c->qhead->hdr.length <= s->cfg->chunk_bytes && bytes < most) {
                qframe_t *n = c->qhead;
                c->qhead = n->next;
                if (!c->qhead)
                    c->qtail = &c->qhead;
                c->qcount--;
                c->qbytes -= n->hdr.length + QFRAME_COST;
                bytes += n->hdr.length;
                last->next = n;
                n->next = NULL;
                last = n;
            }
            return upload_job(c, JOB_PUT_DATA, SDB_OP_PUT_BEGIN, c->up->t0, f);   /* one PUT in STATS */
        }
        if (op == SDB_OP_PUT_ABORT && !u->failed) {
            /* the writer is aborted on a worker (invariant 6) */
            return upload_job(c, JOB_PUT_ABORT, SDB_OP_PUT_ABORT, 0, f);
        }
        if (u->failed) {               /* its writer is gone already: end silently */
            if (u->w)
                ops_release(s, u->w, NULL);
            free(u);
            c->up = NULL;
            free_frames(f);
            return 0;
        }
        return upload_job(c, JOB_PUT_END, SDB_OP_PUT_BEGIN, c->up->t0, f);
    }
    if (op == SDB_OP_PUT_DATA || op == SDB_OP_PUT_END || op == SDB_OP_PUT_ABORT) {
        conn_fatal(c, rid, SDB_EPROTO, "upload frame outside an upload");
        free_frames(f);
        return 0;
    }
    sdb_proto_frame_t fr = { .hdr = f->hdr, .payload = f->payload };
    sdb_proto_msg_t m;
    int rc = sdb_proto_decode(&fr, &m);
    int decoded = rc == 0;
    if (!rc && sdb_proto_opcode_is_request(op) != 1)
        rc = SDB_EOPCODE;
    if (rc || op == SDB_OP_HELLO || op == SDB_OP_PING || op == SDB_OP_STATS || op == SDB_OP_PUT_BEGIN) {
        uint64_t t0 = now_us();
        outbuf_t o = { 0 };
        if (op == SDB_OP_PUT_BEGIN) {
            /* a malformed or refused PUT_BEGIN still opens an upload (failed) */
            upload_t *u = calloc(1, sizeof(*u));
            if (!u) {
                conn_fatal(c, rid, SDB_ENOMEM, NULL);
                free_frames(f);
                return 0;
            }
            u->rid = rid;
            u->t0 = t0;
            u->declared = rc ? SDB_PROTO_UNSET : m.u.put_begin.size;
            c->up = u;
            if (!rc && (m.u.put_begin.path.len == 0 || m.u.put_begin.path.len > SDB_MAX_PATH))
                rc = SDB_EINVAL;
            if (!rc && u->declared != SDB_PROTO_UNSET && u->declared > s->cfg->engine.max_document_size)
                rc = SDB_ETOOLARGE;
            if (!rc) {
                /* the writer opens on a worker (invariant 6) */
                job_t *j = job_new(JOB_PUT_BEGIN, f, op, rid, t0);
                if (j) {
                    start_job(c, j);
                    return 1;
                }
                rc = SDB_ENOMEM;
            }
            char msg[512];
            errmsg_request(s->cfg, s->db, &f->hdr, decoded, decoded ? &m : NULL, rc, msg, sizeof(msg));
            u->failed = 1;
            out_error(&o, rid, rc, 0, msg);
            stats_record(s, op, rc, t0);
        } else if (rc) {
            char msg[256];
            errmsg_request(s->cfg, s->db, &f->hdr, 0, NULL, rc, msg, sizeof(msg));
            out_error(&o, rid, rc, 0, msg);
            stats_record(s, op, rc, t0);
        } else if (op == SDB_OP_HELLO) {
            out_error(&o, rid, SDB_EPROTO, 0, "the session is already open");
            stats_record(s, op, SDB_EPROTO, t0);
        } else if (op == SDB_OP_PING) {
            sdb_proto_msg_t r = { .opcode = SDB_OP_PONG, .request_id = rid };
            r.u.raw = m.u.raw;
            out_msg(&o, &r);
            stats_record(s, op, 0, t0);
        } else {
            /* STATS: the engine's figures are read on a worker (invariant 6) */
            job_t *j = job_new(JOB_STATS, f, op, rid, t0);
            if (j) {
                j->done = 1;
                start_job(c, j);
                return 1;
            }
            out_error(&o, rid, SDB_ENOMEM, 0, NULL);
            stats_record(s, op, SDB_ENOMEM, t0);
        }
        conn_send(c, &o);
        free_frames(f);
        return 0;
    }
    job_t *j = job_new(JOB_REQ, f, op, rid, now_us());
    if (!j) {
        send_now(c, rid, SDB_ENOMEM, NULL);
        free_frames(f);
        return 0;
    }
    start_job(c, j);
    started = 1;
    return started;
}
