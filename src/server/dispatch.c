/*
 * dispatch.c -- what runs on the loop thread for each request: the HELLO
 * handshake, PING and other answers that need no engine call, the upload's
 * frame checks, and the building, queueing and completion (after-work
 * callback) of the jobs that work.c runs on the thread pool (job.h).  Code
 * here never calls into the engine (server.h, invariant 6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/errmsg.h"
#include "server/job.h"
#include "server/log.h"

static void send_now(conn_t *c, uint32_t rid, int err, const char *msg)
{
    outbuf_t o = { 0 };
    out_error(&o, rid, err, 0, msg);
    conn_send(c, &o);
}

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

/* Gives the frames f (a chain) back to the head of c's queue, in order,
 * counted there again (invariant 2). */
static void requeue(conn_t *c, qframe_t *f)
{
    qframe_t *last = f;
    for (;;) {
        c->qcount++;
        c->qbytes += last->hdr.length + QFRAME_COST;
        if (!last->next)
            break;
        last = last->next;
    }
    last->next = c->qhead;
    if (!c->qhead)
        c->qtail = &last->next;
    c->qhead = f;
}

static void after_cb(uv_work_t *w, int status);

/* The commit job is back: each batch's uploads are answered (after what
 * the batch answered before them), and its connection goes on. */
static void commit_done(job_t *j)
{
    server_t *s = j->s;
    for (job_t *b = j->stage_next, *next; b; b = next) {
        next = b->stage_next;
        conn_t *c = b->c;
        for (unsigned i = 0; i < b->staged->n; i++)
            stats_record(s, SDB_OP_PUT_BEGIN, b->staged->rc[i], b->t0);
        c->job_bytes = 0;         /* the writers are gone (invariant 2) */
        conn_send(c, &b->out);
        free(b->out.p);
        free(b->staged->tail.p);
        free(b->staged);
        free(b);
        conn_job_done(c);
    }
    free(j);
    s->committing = 0;
    if (s->stage)
        server_wake_flush(s);     /* those that came meanwhile: at the end of this turn */
}

void ops_commit_stage(server_t *s)
{
    if (!s->stage || s->committing)
        return;
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return;                   /* the sweep timer tries again */
    j->kind = JOB_COMMIT;
    j->s = s;
    j->work.data = j;
    j->stage_next = s->stage;
    if (uv_queue_work(s->loop, &j->work, job_work_cb, after_cb) < 0) {
        free(j);
        return;
    }
    s->stage = NULL;
    s->stage_tail = &s->stage;
    s->committing = 1;
    s->jobs++;
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
    if (j->kind == JOB_COMMIT) {
        commit_done(j);
        return;
    }
    if (j->kind == JOB_STATS)
        stats_result(j);
    c->up = j->up;
    c->down = j->down;
    c->list = j->list;
    c->job_bytes = 0;
    if (j->kind == JOB_BATCH) {
        for (unsigned i = 0; i < j->nrec; i++)
            stats_record(j->s, j->rec[i].opcode, j->rec[i].err, j->t0);
        if (j->rest)
            requeue(c, j->rest);
    } else if (j->done) {
        stats_record(j->s, j->opcode, j->err, j->t0);
    }
    conn_send(c, &j->out);
    free(j->out.p);
    qframe_free(j->f);
    if (j->kind == JOB_BATCH && j->staged) {
        /* its last uploads wait for the commit stage, the connection busy
           (invariant 1): the stage runs at the end of this loop turn */
        j->out = (outbuf_t){ 0 };
        j->f = NULL;
        j->stage_next = NULL;
        c->job_bytes = j->staged->cost;   /* held until the commit (invariant 2) */
        *j->s->stage_tail = j;
        j->s->stage_tail = &j->stage_next;
        server_wake_flush(j->s);
        return;
    }
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
    if (uv_queue_work(c->srv->loop, &j->work, job_work_cb, after_cb) < 0) {
        c->up = j->up;
        c->down = j->down;
        c->list = j->list;
        c->busy = 0;
        c->job_bytes = 0;
        if (c->up && !c->up->w)
            c->up->failed = 1;         /* a PUT_BEGIN that never opened: end it silently */
        if (j->kind == JOB_BATCH) {
            /* every request of the batch is answered (an upload once) */
            for (qframe_t *f = j->f; f; f = f->next)
                if (f->hdr.opcode != SDB_OP_PUT_DATA && f->hdr.opcode != SDB_OP_PUT_END)
                    send_now(c, f->hdr.request_id, SDB_EINTERNAL, "cannot queue the request");
        } else {
            send_now(c, j->rid, SDB_EINTERNAL, "cannot queue the request");
        }
        qframe_free(j->f);
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
        if (uv_queue_work(s->loop, &j->work, job_work_cb, after_cb) == 0) {
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
    const sdb_proto_msg_t m = f->m;
    int rc = f->decode_rc;
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
    conn_reply(c, &r);
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
        j->cur = f;
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
        qframe_free(f);
        return 0;
    }
    start_job(c, j);
    return 1;
}

/* Whether the frames from begin on (a chain) hold a whole upload that a
 * batch may run: a PUT_BEGIN that the loop would accept, PUT_DATA frames of
 * the same request that pass dispatch's checks, at most a batch of bytes in
 * all, and its PUT_END.  Returns the PUT_END frame, or NULL. */
static qframe_t *whole_upload(const server_t *s, qframe_t *begin)
{
    const server_config_t *cfg = s->cfg;
    const sdb_proto_put_begin_t *b = &begin->m.u.put_begin;
    if (begin->decode_rc || begin->hdr.opcode != SDB_OP_PUT_BEGIN || b->path.len == 0 ||
        b->path.len > SDB_MAX_PATH ||
        (b->size != SDB_PROTO_UNSET && b->size > cfg->engine.max_document_size))
        return NULL;
    uint64_t bytes = 0, most = ops_batch_bytes(s);
    for (qframe_t *n = begin->next; n; n = n->next) {
        if (n->hdr.request_id != begin->hdr.request_id)
            return NULL;
        if (n->hdr.opcode == SDB_OP_PUT_END)
            return n;
        if (n->hdr.opcode != SDB_OP_PUT_DATA || n->decode_rc || n->hdr.length > cfg->chunk_bytes)
            return NULL;
        bytes += n->hdr.length;
        if (bytes > most)
            return NULL;
    }
    return NULL;
}

/* Whether a queued frame may join a batch behind other requests: a request
 * that answers at once (no stream that goes on, no page that a batch's
 * output would cut short).  A whole upload is judged by whole_upload(). */
static int batch_follower(const qframe_t *f)
{
    if (f->decode_rc)
        return 0;
    switch (f->hdr.opcode) {
    case SDB_OP_PING:
    case SDB_OP_GET:
    case SDB_OP_GET_ID:
    case SDB_OP_GET_RANGE:
    case SDB_OP_GET_ID_RANGE:
    case SDB_OP_LOOKUP:
    case SDB_OP_DELETE:
    case SDB_OP_DELETE_ID:
    case SDB_OP_BIND:
    case SDB_OP_UNBIND:
    case SDB_OP_INFO:
    case SDB_OP_FLUSH:
        return 1;
    default:
        return 0;
    }
}

/* Unlinks c's first queued frame (it stays linked to what follows). */
static qframe_t *queue_pop(conn_t *c)
{
    qframe_t *f = c->qhead;
    c->qhead = f->next;
    if (!c->qhead)
        c->qtail = &c->qhead;
    c->qcount--;
    c->qbytes -= f->hdr.length + QFRAME_COST;
    return f;
}

/* Runs request f (a whole upload when it is a PUT_BEGIN) and the requests
 * queued behind it that may follow, up to BATCH_MAX, as one job (JOB_BATCH,
 * invariant 1).  Returns 1 (a job started) or 0 (answered with an error). */
static int batch_job(conn_t *c, qframe_t *f)
{
    server_t *s = c->srv;
    qframe_t *last = f;
    unsigned n = 1;
    if (f->hdr.opcode == SDB_OP_PUT_BEGIN) {
        while (last->hdr.opcode != SDB_OP_PUT_END)     /* whole_upload() found it */
            last = last->next = queue_pop(c);
    }
    while (c->qhead && n < BATCH_MAX) {
        qframe_t *end = c->qhead;
        if (end->hdr.opcode == SDB_OP_PUT_BEGIN) {
            if (!(end = whole_upload(s, c->qhead)))
                break;
        } else if (!batch_follower(end)) {
            break;
        }
        qframe_t *g;
        do {
            g = queue_pop(c);
            last->next = g;
            last = g;
        } while (g != end);
        n++;
    }
    last->next = NULL;
    job_t *j = job_new(JOB_BATCH, f, f->hdr.opcode, f->hdr.request_id, now_us());
    if (!j) {
        for (qframe_t *g = f; g; g = g->next)
            if (g->hdr.opcode != SDB_OP_PUT_DATA && g->hdr.opcode != SDB_OP_PUT_END)
                send_now(c, g->hdr.request_id, SDB_ENOMEM, NULL);
        qframe_free(f);
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
    if (!c->hello) {
        do_hello(c, f);
        qframe_free(f);
        return 0;
    }
    if (c->up) {                            /* invariant 4 */
        upload_t *u = c->up;
        if ((op != SDB_OP_PUT_DATA && op != SDB_OP_PUT_END && op != SDB_OP_PUT_ABORT) || rid != u->rid) {
            conn_fatal(c, rid, SDB_EPROTO, "frame out of place during an upload");
            qframe_free(f);
            return 0;
        }
        if (op != SDB_OP_PUT_END) {
            /* PUT_DATA and PUT_ABORT are checked as every request is (flags,
               layout); PUT_END's decoding is judged by its job */
            int rc = f->decode_rc;
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
                    qframe_free(f);
                    return 0;
                }
            }
        }
        if (op == SDB_OP_PUT_DATA) {
            if (u->failed) {
                qframe_free(f);
                return 0;
            }
            if (f->hdr.length > s->cfg->chunk_bytes) {
                char msg[96];
                snprintf(msg, sizeof(msg), "PUT_DATA of %u bytes is over chunk_bytes (%u)",
                         (unsigned)f->hdr.length, (unsigned)s->cfg->chunk_bytes);
                fail_upload(c, SDB_ETOOLARGE, msg);
                stats_record(s, SDB_OP_PUT_BEGIN, SDB_ETOOLARGE, u->t0);
                qframe_free(f);
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
            qframe_free(f);
            return 0;
        }
        return upload_job(c, JOB_PUT_END, SDB_OP_PUT_BEGIN, c->up->t0, f);
    }
    if (op == SDB_OP_PUT_DATA || op == SDB_OP_PUT_END || op == SDB_OP_PUT_ABORT) {
        conn_fatal(c, rid, SDB_EPROTO, "upload frame outside an upload");
        qframe_free(f);
        return 0;
    }
    const sdb_proto_msg_t m = f->m;
    int rc = f->decode_rc;
    int decoded = rc == 0;
    if (!rc && sdb_proto_opcode_is_request(op) != 1)
        rc = SDB_EOPCODE;
    if (op == SDB_OP_PUT_BEGIN && !rc) {
        f->next = c->qhead;            /* look at its frames still queued */
        qframe_t *end = whole_upload(s, f);
        f->next = NULL;
        if (end)
            return batch_job(c, f);    /* a small upload whose frames are all here */
    }
    if (rc || op == SDB_OP_HELLO || op == SDB_OP_PING || op == SDB_OP_STATS || op == SDB_OP_PUT_BEGIN) {
        uint64_t t0 = now_us();
        outbuf_t o = { 0 };
        if (op == SDB_OP_PUT_BEGIN) {
            /* a malformed or refused PUT_BEGIN still opens an upload (failed) */
            upload_t *u = calloc(1, sizeof(*u));
            if (!u) {
                conn_fatal(c, rid, SDB_ENOMEM, NULL);
                qframe_free(f);
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
            /* straight into the pending output: no allocation per PING */
            sdb_proto_msg_t r = { .opcode = SDB_OP_PONG, .request_id = rid };
            r.u.raw = m.u.raw;
            conn_reply(c, &r);
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
        qframe_free(f);
        return 0;
    }
    return batch_job(c, f);
}

