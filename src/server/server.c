/*
 * server.c -- streamdbd's event loop: listeners (TCP, IPv4/IPv6, and a Unix
 * socket), connections (read, decode, queue, write), deadlines, signals,
 * systemd readiness and the orderly shutdown.  See server.h for the
 * connection invariants.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "server/server.h"

#define READ_BUF (256 * 1024)
#define SWEEP_MS 100
#define PUMP_BATCH 64                 /* requests answered per pump (invariant 8) */

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void remove_own_socket(const char *path);

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t server_now_ms(server_t *s)
{
    return uv_now(s->loop);
}

/* ---- systemd readiness (the sd_notify datagram, no libsystemd) ---- */

static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;            /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    (void)n;
    close(fd);
}

/* ---- connections ---- */

static void on_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    server_t *s = c->srv;
    if (c->dirty) {
        conn_t **p = &s->dirty;
        while (*p != c)
            p = &(*p)->dirty_next;
        *p = c->dirty_next;
    }
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    sdb_proto_decoder_free(&c->dec);
    free(c->pend.p);
    free(c->in_held);
    free(c);
}

static void drop_queue(conn_t *c)
{
    while (c->qhead) {
        qframe_t *f = c->qhead;
        c->qhead = f->next;
        free(f->payload);
        free(f);
    }
    c->qtail = &c->qhead;
    c->qcount = 0;
    free(c->in_held);
    c->in_held = NULL;
    c->in_len = c->in_off = 0;
    c->qbytes = 0;
}

/* Aborts c's upload (it leaves no trace: its pages are reclaimed) and closes
 * its download or listing.  Only while no job holds them.  The engine calls
 * run on the thread pool (invariant 6). */
static void drop_streams(conn_t *c)
{
    sdb_writer_t *w = NULL;
    sdb_reader_t *r = NULL;
    if (c->up) {
        w = c->up->w;
        free(c->up);
        c->up = NULL;
    }
    if (c->down) {
        r = c->down->r;
        free(c->down);
        c->down = NULL;
    }
    if (c->list) {
        free(c->list->after);
        free(c->list);
        c->list = NULL;
    }
    if (w || r)
        ops_release(c->srv, w, r);
}

/* Ends the connection: no job may be in flight (invariant 5). */
static void conn_finish_close(conn_t *c)
{
    if (c->handle_closed)
        return;
    c->handle_closed = 1;
    drop_queue(c);
    drop_streams(c);
    log_debug("conn %llu (%s): closed", (unsigned long long)c->id, c->peer);
    uv_close(&c->h.handle, on_close);
}

static void conn_close(conn_t *c)
{
    if (!c->closing) {
        c->closing = 1;
        if (c->reading)
            uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
    if (!c->busy)
        conn_finish_close(c);
}

typedef struct {
    uv_write_t req;
    conn_t *c;
    uint8_t *buf;
    size_t len;
    uint64_t cost;                /* what it counts in c->out_bytes */
} wreq_t;

static void conn_flush(conn_t *c);
static void conn_mark_dirty(conn_t *c);

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    c->out_bytes -= w->cost;
    c->out_inflight = 0;
    c->srv->bytes_out += status == 0 ? w->len : 0;
    c->srv->writes += status == 0;
    c->last_write_ms = server_now_ms(c->srv);
    free(w->buf);
    free(w);
    if (c->handle_closed)
        return;
    if (status < 0) {
        log_debug("conn %llu: write failed: %s", (unsigned long long)c->id, uv_strerror(status));
        conn_close(c);
        return;
    }
    if (c->close_after_flush && c->out_bytes == 0) {
        conn_close(c);
        return;
    }
    conn_pump(c);
    conn_mark_dirty(c);   /* what waited, and what the pump added: in this turn's write */
}

/* Writes the pending output of every connection that has some and no
 * write in flight (invariant 3): the loop's prepare and check callbacks. */
static void flush_dirty(server_t *s)
{
    ops_commit_stage(s);
    while (s->dirty) {
        conn_t *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        conn_flush(c);
    }
    uv_prepare_stop(&s->flush_prep);
    uv_check_stop(&s->flush_check);
}

static void on_flush_prep(uv_prepare_t *h)
{
    flush_dirty(h->data);
}

static void on_flush_check(uv_check_t *h)
{
    flush_dirty(h->data);
}

void server_wake_flush(server_t *s)
{
    uv_prepare_start(&s->flush_prep, on_flush_prep);
    uv_check_start(&s->flush_check, on_flush_check);
}

/* Puts c on the list of connections whose pending output is written at the
 * end of this loop turn. */
static void conn_mark_dirty(conn_t *c)
{
    server_t *s = c->srv;
    if (c->dirty || c->pend.len == 0 || c->handle_closed)
        return;
    c->dirty = 1;
    c->dirty_next = s->dirty;
    if (!s->dirty)
        server_wake_flush(s);
    s->dirty = c;
}

/* Writes the pending output when no write is in flight (invariant 3). */
static void conn_flush(conn_t *c)
{
    if (c->out_inflight || c->pend.len == 0 || c->handle_closed)
        return;
    wreq_t *w = malloc(sizeof(*w));
    if (!w) {
        conn_close(c);
        return;
    }
    w->c = c;
    w->buf = c->pend.p;
    w->len = c->pend.len;
    /* the pending buffer's capacity was counted; add the request's */
    w->cost = c->pend.cap + sizeof(*w);
    c->out_bytes += sizeof(*w);
    c->pend.p = NULL;
    c->pend.len = c->pend.cap = 0;
    c->out_inflight = w->cost;
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)w->len);
    int rc = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
    if (rc < 0) {
        c->out_bytes -= w->cost;
        c->out_inflight = 0;
        free(w->buf);
        free(w);
        conn_close(c);
    }
}

void conn_send(conn_t *c, outbuf_t *o)
{
    /* after an ERROR flagged CLOSING (close_after_flush) nothing more is
       sent: a job that was running then answers into the void */
    if (o->len == 0 || c->handle_closed || c->closing || c->close_after_flush) {
        free(o->p);
        o->p = NULL;
        o->len = o->cap = 0;
        return;
    }
    if (c->out_bytes == 0)
        c->last_write_ms = server_now_ms(c->srv);   /* the output deadline starts */
    if (c->pend.len == 0) {
        /* take the buffer over: no copy */
        c->out_bytes -= c->pend.cap;
        free(c->pend.p);
        c->pend = *o;
        c->out_bytes += c->pend.cap;
    } else {
        /* coalesce with what already waits (small replies, mostly) */
        size_t need = c->pend.len + o->len;
        if (need > c->pend.cap) {
            size_t nc = c->pend.cap * 2 > need ? c->pend.cap * 2 : need;
            uint8_t *p = realloc(c->pend.p, nc);
            if (!p) {
                free(o->p);
                o->p = NULL;
                o->len = o->cap = 0;
                conn_close(c);
                return;
            }
            c->out_bytes += nc - c->pend.cap;
            c->pend.p = p;
            c->pend.cap = nc;
        }
        memcpy(c->pend.p + c->pend.len, o->p, o->len);
        c->pend.len += o->len;
        free(o->p);
    }
    o->p = NULL;
    o->len = o->cap = 0;
    conn_mark_dirty(c);
}

void conn_reply(conn_t *c, const sdb_proto_msg_t *m)
{
    if (c->handle_closed || c->closing || c->close_after_flush)
        return;
    if (c->out_bytes == 0)
        c->last_write_ms = server_now_ms(c->srv);   /* the output deadline starts */
    size_t cap0 = c->pend.cap;
    int rc = out_msg(&c->pend, m);
    c->out_bytes += c->pend.cap - cap0;
    if (rc) {
        conn_close(c);
        return;
    }
    conn_mark_dirty(c);
}

void conn_fatal(conn_t *c, uint32_t rid, int err, const char *msg)
{
    outbuf_t o = { 0 };
    log_debug("conn %llu (%s): closing: %s%s%s", (unsigned long long)c->id, c->peer,
              sdb_proto_strerror(err), msg ? ": " : "", msg ? msg : "");
    out_error(&o, rid, err, SDB_FLAG_CLOSING, msg);
    drop_queue(c);
    if (c->reading)
        uv_read_stop(&c->h.stream);
    c->reading = 0;
    conn_send(c, &o);
    c->close_after_flush = 1;
    if (c->out_bytes == 0)
        conn_close(c);
}

/* One read buffer for every connection: the loop thread decodes (and copies
 * out) everything a read returns before the next read, so connections need
 * no buffer of their own, and it can be large enough that a whole 64 KiB
 * data frame arrives in one read and is queued without an extra copy. */
static char g_rbuf[READ_BUF];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn_t *c = h->data;
    const server_config_t *cfg = c->srv->cfg;
    (void)hint;
    /* a read that the queue cannot take is held (invariant 2): keep reads
     * within half the cap, but large enough for a whole data frame */
    size_t n = cfg->max_output_bytes / 2;
    if (n < (size_t)cfg->chunk_bytes + SDB_PROTO_HEADER_SIZE)
        n = (size_t)cfg->chunk_bytes + SDB_PROTO_HEADER_SIZE;
    if (n > READ_BUF)
        n = READ_BUF;
    *buf = uv_buf_init(g_rbuf, (unsigned)n);
}

/* The queue is full: decode no more frames for now (invariant 2). */
static int queue_full(const conn_t *c)
{
    const server_config_t *cfg = c->srv->cfg;
    return c->qcount >= cfg->max_inflight || c->qbytes + c->job_bytes > cfg->max_output_bytes;
}

static void update_reading(conn_t *c)
{
    server_t *s = c->srv;
    if (c->closing || c->close_after_flush || s->stopping || c->eof)
        return;
    uint64_t outcap = s->cfg->max_output_bytes;
    uint64_t in = c->qbytes + c->job_bytes + (c->in_len - c->in_off);
    int full = c->in_held || queue_full(c) || c->out_bytes > outcap || in > outcap;
    int low = !c->in_held && c->qcount <= s->cfg->max_inflight / 2 && c->out_bytes <= outcap / 2 &&
              in <= outcap / 2;
    if (c->reading && full) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    } else if (!c->reading && low) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0) {
            c->reading = 1;
            /* the deadlines count only while we read: a pause for
             * backpressure is ours, not the client's */
            c->frame_start_ms = c->last_active_ms = server_now_ms(s);
        }
    }
}

/* Decodes frames from p[0..n) into c's queue while it has room (invariant
 * 2).  Returns the bytes used; the caller keeps the rest for later.  A
 * malformed frame ends the connection (conn_fatal). */
static size_t conn_decode(conn_t *c, const uint8_t *p, size_t n)
{
    uint64_t now = server_now_ms(c->srv);
    size_t off = 0;
    while (off < n && !c->close_after_flush && !c->closing && !queue_full(c)) {
        int was_in = sdb_proto_decoder_in_frame(&c->dec);
        size_t used = 0;
        sdb_proto_frame_t fr;
        int rc = sdb_proto_decoder_feed(&c->dec, p + off, n - off, &used, &fr);
        if (!was_in && used > 0)
            c->frame_start_ms = now;
        off += used;
        if (rc < 0) {
            char msg[160];
            if (rc == SDB_ETOOLARGE)
                snprintf(msg, sizeof(msg), "frame length %u is over the limit of %u bytes (%s)",
                         (unsigned)fr.hdr.length, (unsigned)c->dec.max_payload,
                         c->hello ? "max_frame_bytes" : "before HELLO_OK");
            else
                snprintf(msg, sizeof(msg), "malformed frame header (the magic byte must be 0x%02x "
                         "and the reserved byte 0)", SDB_PROTO_MAGIC);
            conn_fatal(c, rc == SDB_ETOOLARGE ? fr.hdr.request_id : 0, rc, msg);
            return n;
        }
        if (rc == 0)
            break;
        qframe_t *q = malloc(sizeof(*q));
        uint8_t *copy = malloc(fr.hdr.length ? fr.hdr.length : 1);
        if (!q || !copy) {
            free(q);
            free(copy);
            conn_fatal(c, fr.hdr.request_id, SDB_ENOMEM, "out of memory");
            return n;
        }
        memcpy(copy, fr.payload, fr.hdr.length);
        q->hdr = fr.hdr;
        q->payload = copy;
        q->next = NULL;
        fr.payload = copy;             /* the message points into the frame's own copy */
        q->decode_rc = sdb_proto_decode(&fr, &q->m);
        *c->qtail = q;
        c->qtail = &q->next;
        c->qcount++;
        c->qbytes += fr.hdr.length + QFRAME_COST;
    }
    return off;
}

/* Shutting down (SIGTERM): past the deadline, or with nothing left to
 * finish, c gets ERROR SHUTTING_DOWN and closes; a stream in progress goes
 * on until the deadline. */
static void conn_pump_stopping(conn_t *c)
{
    server_t *s = c->srv;
    if (c->closing || c->close_after_flush || c->busy)
        return;
    int late = server_now_ms(s) > s->stop_deadline_ms;
    if ((c->down || c->list) && !late)
        return;
    drop_queue(c);
    drop_streams(c);   /* an upload is aborted; a stream past the deadline cut short */
    conn_fatal(c, 0, SDB_ESHUTDOWN, "the server is shutting down");
}

static void on_resume(uv_idle_t *h)
{
    server_t *s = h->data;
    int more = 0;
    for (conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->yielded) {
            c->yielded = 0;
            if (!c->closing && !c->handle_closed)
                conn_pump(c);
            more |= c->yielded;
        }
    }
    if (!more)
        uv_idle_stop(h);
}

void conn_pump(conn_t *c)
{
    server_t *s = c->srv;
    uint64_t outcap = s->cfg->max_output_bytes;
    int batch = 0;
    while (!c->busy && !c->closing && !c->close_after_flush) {
        if (++batch > PUMP_BATCH) {
            c->yielded = 1;            /* invariant 8: the rest after the others */
            uv_idle_start(&s->resume, on_resume);
            break;
        }
        if (c->in_held && !queue_full(c) && !s->stopping) {
            size_t used = conn_decode(c, c->in_held + c->in_off, c->in_len - c->in_off);
            c->in_off += used;
            if (c->in_off >= c->in_len) {
                free(c->in_held);
                c->in_held = NULL;
                c->in_len = c->in_off = 0;
            }
            if (c->closing || c->close_after_flush)
                break;
        }
        if (c->down || c->list) {                  /* invariant 3 */
            if (c->out_bytes <= outcap / 2 && !(s->stopping && server_now_ms(s) > s->stop_deadline_ms))
                ops_continue(c);
            break;
        }
        if (s->stopping || !c->qhead || c->out_bytes > outcap)
            break;
        qframe_t *f = c->qhead;
        c->qhead = f->next;
        if (!c->qhead)
            c->qtail = &c->qhead;
        c->qcount--;
        c->qbytes -= f->hdr.length + QFRAME_COST;
        f->next = NULL;                        /* ops_dispatch owns f alone, not the queue */
        ops_dispatch(c, f);
    }
    if (s->stopping)
        conn_pump_stopping(c);
    else
        update_reading(c);   /* also while yielded: reading stops once full */
    /* the peer sent its last byte and everything it sent is answered: close
       (an upload still waiting for frames is aborted) */
    if (c->eof && !s->stopping && !c->closing && !c->close_after_flush && !c->busy && !c->yielded &&
        !c->qhead && !c->in_held && !c->down && !c->list && c->out_bytes == 0)
        conn_close(c);
}

void conn_job_done(conn_t *c)
{
    c->busy = 0;
    if (c->closing) {
        conn_finish_close(c);
        return;
    }
    conn_pump(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    server_t *s = c->srv;
    if (nread == UV_EOF && !c->closing) {
        /* the peer sends no more (it may have half-closed and still read):
           answer what it sent, then close (conn_pump); an upload left open
           is aborted then */
        c->eof = 1;
        if (c->reading)
            uv_read_stop(&c->h.stream);
        c->reading = 0;
        conn_pump(c);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("conn %llu: read: %s", (unsigned long long)c->id, uv_strerror((int)nread));
        conn_close(c);       /* a vanished client: its upload is aborted, its stream dropped */
        return;
    }
    if (nread == 0)
        return;
    s->bytes_in += (uint64_t)nread;
    c->last_active_ms = server_now_ms(s);
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    /* input already held goes first: decode nothing ahead of it */
    size_t used = c->in_held ? 0 : conn_decode(c, p, n);
    if (used < n && !c->closing && !c->close_after_flush) {
        /* the queue filled: keep the rest undecoded, counted, until it drains */
        size_t keep = c->in_len - c->in_off;
        uint8_t *h = malloc(keep + n - used);
        if (!h) {
            conn_fatal(c, 0, SDB_ENOMEM, "out of memory");
            return;
        }
        if (keep)
            memcpy(h, c->in_held + c->in_off, keep);
        memcpy(h + keep, p + used, n - used);
        free(c->in_held);
        c->in_held = h;
        c->in_len = keep + n - used;
        c->in_off = 0;
    }
    conn_pump(c);
}

/* Whether o, a connection not read yet, has a whole HELLO frame waiting in
 * its socket: it is about to authenticate, only the loop has not read it yet
 * (a burst of accepts runs before any read). */
static int hello_waiting(conn_t *o)
{
    static uint8_t peek[SDB_PROTO_HEADER_SIZE + SDB_PROTO_MIN_FRAME];
    uv_os_fd_t fd;
    if (o->in_held || sdb_proto_decoder_in_frame(&o->dec) || uv_fileno(&o->h.handle, &fd) < 0)
        return 0;
    ssize_t n = recv(fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
    if (n < (ssize_t)SDB_PROTO_HEADER_SIZE || peek[0] != SDB_PROTO_MAGIC || peek[1] != SDB_OP_HELLO)
        return 0;
    uint32_t len = (uint32_t)peek[4] | (uint32_t)peek[5] << 8 | (uint32_t)peek[6] << 16 |
                   (uint32_t)peek[7] << 24;
    return len <= SDB_PROTO_MIN_FRAME && (size_t)n >= SDB_PROTO_HEADER_SIZE + len;
}

/* Invariant 7: makes room for c, a new connection, at the expense of the
 * oldest connection that has not completed HELLO (and has no whole HELLO
 * waiting in its socket).  Returns 0 when c may stay, SDB_EBUSY when it
 * must be refused. */
static int make_room(server_t *s, conn_t *c)
{
    uint64_t live = 0, unauth = 0;
    conn_t *last = NULL;
    for (conn_t *o = s->conns; o; o = o->next) {
        last = o;
        if (o->closing || o->close_after_flush)
            continue;
        live++;
        if (!o->hello)
            unauth++;
    }
    uint64_t max_unauth = s->cfg->max_connections / 2 ? s->cfg->max_connections / 2 : 1;
    if (live <= s->cfg->max_connections && unauth <= max_unauth)
        return 0;
    conn_t *oldest = NULL;                /* the list is newest first */
    for (conn_t *o = last; o && !oldest; o = o->prev)
        if (o != c && !o->hello && !o->closing && !o->close_after_flush && !hello_waiting(o))
            oldest = o;
    if (!oldest)
        return SDB_EBUSY;
    s->rejected_conns++;
    log_warn("conn %llu (%s): evicted: no HELLO yet and %s", (unsigned long long)oldest->id, oldest->peer,
             live > s->cfg->max_connections ? "max_connections reached"
                                            : "half of max_connections await HELLO");
    conn_fatal(oldest, 0, SDB_EBUSY, "too many connections without HELLO; evicted");
    return 0;
}

static void on_connection(uv_stream_t *server, int status);

static void on_accept_retry(uv_timer_t *t)
{
    server_t *s = t->data;
    int tcp = s->retry_tcp, pipe = s->retry_pipe;
    s->retry_tcp = s->retry_pipe = 0;
    if (tcp && s->have_tcp)
        on_connection((uv_stream_t *)&s->tcp, 0);
    if (pipe && s->have_pipe)
        on_connection((uv_stream_t *)&s->pipe, 0);
}

/* A connection could not be set up (no memory): libuv keeps the accepted
 * socket and stops watching the listener until it is taken, so try again
 * shortly rather than never accepting again. */
static void accept_later(server_t *s, uv_stream_t *server)
{
    if (server == (uv_stream_t *)&s->tcp)
        s->retry_tcp = 1;
    else
        s->retry_pipe = 1;
    if (!uv_is_active((uv_handle_t *)&s->accept_retry))
        uv_timer_start(&s->accept_retry, on_accept_retry, 50, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    server_t *s = server->data;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    conn_t *c = NULL;
    if (s->test_fail_accepts > 0)
        s->test_fail_accepts--;
    else
        c = calloc(1, sizeof(*c));
    if (!c) {
        log_warn("accept: out of memory; trying again");
        accept_later(s, server);
        return;
    }
    int rc = server == (uv_stream_t *)&s->tcp ? uv_tcp_init(s->loop, &c->h.tcp)
                                               : uv_pipe_init(s->loop, &c->h.pipe, 0);
    if (rc < 0) {
        free(c);
        log_warn("accept: %s; trying again", uv_strerror(rc));
        accept_later(s, server);
        return;
    }
    c->h.handle.data = c;
    c->srv = s;
    c->id = ++s->next_id;
    c->qtail = &c->qhead;
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    sdb_proto_decoder_init(&c->dec, SDB_PROTO_MIN_FRAME);
    c->accept_ms = c->last_active_ms = c->last_write_ms = server_now_ms(s);
    if (uv_accept(server, &c->h.stream) < 0) {
        c->closing = 1;
        conn_finish_close(c);
        return;
    }
    if (server == (uv_stream_t *)&s->tcp) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        uv_tcp_nodelay(&c->h.tcp, 1);
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
            char host[48] = "?";
            int port = 0;
            if (ss.ss_family == AF_INET) {
                uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            }
            snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
        }
    } else {
        snprintf(c->peer, sizeof(c->peer), "unix");
    }
    s->total_conns++;
    if (s->stopping || make_room(s, c)) {
        s->rejected_conns++;
        log_warn("conn %llu (%s): refused: %s", (unsigned long long)c->id, c->peer,
                 s->stopping ? "shutting down" : "max_connections reached");
        char msg[96];
        snprintf(msg, sizeof(msg), "too many connections (max_connections %u)",
                 (unsigned)s->cfg->max_connections);
        conn_fatal(c, 0, s->stopping ? SDB_ESHUTDOWN : SDB_EBUSY,
                   s->stopping ? "the server is shutting down" : msg);
        return;
    }
    log_debug("conn %llu (%s): open", (unsigned long long)c->id, c->peer);
    update_reading(c);
}

/* ---- deadlines ---- */

static void on_sweep(uv_timer_t *t)
{
    server_t *s = t->data;
    ops_commit_stage(s);          /* one that could not start for want of memory */
    uint64_t now = server_now_ms(s);
    const server_config_t *cfg = s->cfg;
    for (conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->closing || c->handle_closed)
            continue;
        if (c->close_after_flush) {
            /* an ERROR that the peer never reads: give it a frame timeout, then cut */
            if (cfg->frame_timeout_ms && now - c->last_write_ms > cfg->frame_timeout_ms)
                conn_close(c);
            continue;
        }
        if (cfg->frame_timeout_ms && c->reading && sdb_proto_decoder_in_frame(&c->dec) &&
            now - c->frame_start_ms > cfg->frame_timeout_ms) {
            log_info("conn %llu (%s): frame not completed within %llu ms, dropped",
                     (unsigned long long)c->id, c->peer, (unsigned long long)cfg->frame_timeout_ms);
            conn_fatal(c, 0, SDB_ETIMEDOUT, "frame not completed in time");
            continue;
        }
        if (cfg->frame_timeout_ms && c->out_bytes > 0 && now - c->last_write_ms > cfg->frame_timeout_ms) {
            log_info("conn %llu (%s): not reading its responses, dropped", (unsigned long long)c->id, c->peer);
            conn_close(c);
            continue;
        }
        if (cfg->handshake_timeout_ms && !c->hello && now - c->accept_ms > cfg->handshake_timeout_ms) {
            log_info("conn %llu (%s): no HELLO within %llu ms, dropped", (unsigned long long)c->id, c->peer,
                     (unsigned long long)cfg->handshake_timeout_ms);
            conn_fatal(c, 0, SDB_ETIMEDOUT, "no HELLO within handshake_timeout_ms");
            continue;
        }
        /* an open upload waiting for its next frame is idle too: the
         * client, not the server, owes the next step */
        int idle = !c->busy && !c->qhead && !c->in_held && !c->down && !c->list && c->out_bytes == 0;
        if (cfg->idle_timeout_ms && idle && now - c->last_active_ms > cfg->idle_timeout_ms) {
            log_info("conn %llu (%s): idle for %llu ms%s, dropped", (unsigned long long)c->id, c->peer,
                     (unsigned long long)cfg->idle_timeout_ms, c->up ? " in an upload" : "");
            conn_fatal(c, 0, SDB_ETIMEDOUT, "idle timeout");
        }
    }
    if (s->stopping) {
        if (!s->conns || now > s->stop_deadline_ms) {
            for (conn_t *c = s->conns, *n; c; c = n) {
                n = c->next;
                if (!c->busy)
                    conn_close(c);
            }
            if (!s->conns && s->jobs == 0)
                uv_stop(s->loop);
        }
    }
}

/* ---- signals and shutdown ---- */

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

static void begin_stop(server_t *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->stop_deadline_ms = server_now_ms(s) + s->cfg->shutdown_timeout_ms;
    log_info("%s: stopping (finishing in-flight requests)", why);
    sd_notify_msg("STOPPING=1");
    if (s->have_tcp)
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    if (s->have_pipe) {
        uv_close((uv_handle_t *)&s->pipe, on_listener_closed);
        remove_own_socket(s->cfg->unix_socket);
    }
    s->have_tcp = s->have_pipe = 0;
    uv_timer_stop(&s->accept_retry);
    for (conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->reading)
            uv_read_stop(&c->h.stream);
        c->reading = 0;
        drop_queue(c);             /* queued but unstarted requests are abandoned */
        conn_pump(c);              /* running requests and streams go on (drain) */
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    server_t *s = h->data;
    if (signum == SIGHUP) {
        int rc = log_reopen();
        log_info("SIGHUP: log reopened%s%s", rc ? ": " : "", rc ? strerror(-rc) : "");
        return;
    }
    begin_stop(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- listeners ---- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(spec) >= sizeof(host))
        return -1;
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || colon[1] == 0)
        return -1;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) ? -1 : 0;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) ? -1 : 0;
}

/* ---- the Unix socket file ----
 *
 * 1. The daemon removes a file only when it is a socket: before binding, a
 *    socket that nobody accepts on (connect() fails with ECONNREFUSED) is
 *    stale and removed; at exit, the socket the daemon bound itself, and only
 *    while the path still names that inode (same st_dev/st_ino as after bind).
 * 2. Anything else at the path (a regular file, a symbolic link, a directory,
 *    a live socket) stops the start-up with a message; nothing is removed.
 * 3. No check follows a symbolic link (lstat), and the socket's mode is set by
 *    the umask around bind(), never by a chmod() of the path.
 */
static struct {
    int bound;          /* this process bound the socket at the path */
    dev_t dev;
    ino_t ino;
} g_sock;

static const char *file_type_name(mode_t m)
{
    return S_ISREG(m)    ? "regular file"
           : S_ISLNK(m)  ? "symbolic link"
           : S_ISDIR(m)  ? "directory"
           : S_ISFIFO(m) ? "named pipe"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
           : S_ISSOCK(m) ? "socket"
                         : "file of unknown type";
}

/* Makes path free for bind(): absent already, or a stale socket that is
 * removed.  Returns 0, or 1 (the exit code) with the reason logged. */
static int clear_socket_path(const char *path)
{
    struct stat st, again;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        log_error("unix socket %s: cannot inspect the path: %s", path, strerror(errno));
        return 1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("unix socket %s: the path exists and is a %s, not a socket; streamdbd removes "
                  "nothing but a stale socket (choose another unix_socket path)",
                  path, file_type_name(st.st_mode));
        return 1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("unix socket %s: socket(): %s", path, strerror(errno));
        return 1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);     /* the caller checked the length */
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
        log_error("another streamdbd is listening on %s (a process accepts connections on this "
                  "unix socket); not starting", path);
        return 1;
    }
    if (err != ECONNREFUSED) {
        log_error("unix socket %s: cannot tell whether a server listens on it (connect: %s); "
                  "not removing it", path, strerror(err));
        return 1;
    }
    if (lstat(path, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino)
        return 0;               /* gone or replaced meanwhile: bind() decides */
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("unix socket %s: cannot remove the stale socket: %s", path, strerror(errno));
        return 1;
    }
    log_info("removed the stale unix socket %s (nobody accepted on it)", path);
    return 0;
}

/* Binds a new Unix stream socket at path with the given mode (set by the
 * umask around bind(), so no chmod() follows a link) and records its inode
 * for remove_own_socket().  libuv's uv_pipe_bind() is not used: its close
 * would unlink whatever then sits at the path.  Returns the fd or -errno. */
static int bind_unix_socket(const char *path, unsigned mode)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);     /* the caller checked the length */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old_mask = umask(~(mode_t)mode & 0777);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int err = errno;
    umask(old_mask);
    if (rc < 0) {
        close(fd);
        return -err;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        g_sock.bound = 1;
        g_sock.dev = st.st_dev;
        g_sock.ino = st.st_ino;
    }
    return fd;
}

/* Removes the socket this process bound at path, if path still names it. */
static void remove_own_socket(const char *path)
{
    struct stat st;
    if (!g_sock.bound)
        return;
    g_sock.bound = 0;
    if (lstat(path, &st) < 0)
        return;
    if (!S_ISSOCK(st.st_mode) || st.st_dev != g_sock.dev || st.st_ino != g_sock.ino) {
        log_warn("unix socket %s is no longer the one this daemon bound; leaving it", path);
        return;
    }
    unlink(path);
}

static int start_listeners(server_t *s)
{
    server_config_t *cfg = s->cfg;
    int rc;
    if (cfg->listen[0]) {
        struct sockaddr_storage ss;
        if (parse_listen(cfg->listen, &ss)) {
            log_error("config key \"listen\": cannot parse \"%s\" (expected host:port or [v6]:port)", cfg->listen);
            return 2;
        }
        uv_tcp_init(s->loop, &s->tcp);
        s->tcp.data = s;
        s->have_tcp = 1;
        if ((rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
            (rc = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection)) < 0) {
            log_error("cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
            return 1;
        }
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        char host[64] = "?";
        int port = 0;
        if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len) == 0) {
            if (bound.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&bound, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
            } else {
                uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
            }
        }
        log_info("listening on tcp %s:%d", host, port);
    }
    if (cfg->unix_socket[0]) {
        if (strlen(cfg->unix_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            log_error("config key \"unix_socket\": path longer than %zu bytes",
                      sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return 2;
        }
        if (clear_socket_path(cfg->unix_socket))
            return 1;
        int fd = bind_unix_socket(cfg->unix_socket, cfg->unix_socket_mode);
        if (fd < 0) {
            log_error("cannot listen on unix socket %s: %s", cfg->unix_socket, strerror(-fd));
            return 1;
        }
        uv_pipe_init(s->loop, &s->pipe, 0);
        s->pipe.data = s;
        s->have_pipe = 1;
        if ((rc = uv_pipe_open(&s->pipe, fd)) < 0 ||
            (rc = uv_listen((uv_stream_t *)&s->pipe, 511, on_connection)) < 0) {
            log_error("cannot listen on unix socket %s: %s", cfg->unix_socket, uv_strerror(rc));
            return 1;
        }
        log_info("listening on unix %s (mode %04o)", cfg->unix_socket, cfg->unix_socket_mode);
    }
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int server_run(server_config_t *cfg)
{
    static server_t srv;             /* one per process; the signal handlers find it */
    server_t *s = &srv;
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->stage_tail = &s->stage;
    /* test hook (tests/integration): fail the first N connection setups as
     * an allocation failure would */
    const char *fail = getenv("STREAMDBD_TEST_FAIL_ACCEPTS");
    s->test_fail_accepts = fail ? atoi(fail) : 0;
    if (cfg->workers == 0) {
        /* one worker per core: a request rarely waits on the disk (reads
         * are served from the page cache, a batch runs many requests), so
         * more threads than cores only add switches and lock waits */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n < 2 ? 2 : n > 128 ? 128 : (int)n;
    }
    char wbuf[16];
    snprintf(wbuf, sizeof(wbuf), "%d", cfg->workers);
    setenv("UV_THREADPOOL_SIZE", wbuf, 1);    /* before the first job */
    signal(SIGPIPE, SIG_IGN);

    if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {   /* the owner only */
        log_error("cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
        return 1;
    }
    char *path = config_db_path(cfg);
    if (!path)
        return 1;
    int rc = sdb_open(path, &cfg->engine, &s->db);
    if (rc) {
        /* the engine's code says what kind of failure; the system's error
           for the file itself, when opening it fails, says what exactly */
        char why[160] = "";
        if (rc != SDB_ELOCKED && rc != SDB_ECORRUPT && rc != SDB_ENOMEM) {
            int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            int made = 0;
            if (fd < 0 && errno == ENOENT) {
                /* missing: what failed was creating it, so ask that (and
                   remove only a file this very call created) */
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
                made = fd >= 0;
            }
            if (fd < 0)
                snprintf(why, sizeof(why), " (open: %s)", strerror(errno));
            else
                close(fd);
            if (made)
                unlink(path);
        }
        log_error("cannot open database %s: %s%s", path, sdb_strerror(rc), why);
        free(path);
        return 1;
    }
    sdb_stats_t st;
    sdb_stats(s->db, &st);
    log_info("database %s open: %llu documents, %llu paths, %llu bytes", path,
             (unsigned long long)st.documents, (unsigned long long)st.paths,
             (unsigned long long)st.file_bytes);
    free(path);

    s->loop = uv_default_loop();
    s->start_ms = uv_now(s->loop);
    int exit_code = start_listeners(s);
    if (exit_code == 0) {
        uv_timer_init(s->loop, &s->sweep);
        s->sweep.data = s;
        uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
        uv_idle_init(s->loop, &s->resume);
        s->resume.data = s;
        uv_prepare_init(s->loop, &s->flush_prep);
        s->flush_prep.data = s;
        uv_check_init(s->loop, &s->flush_check);
        s->flush_check.data = s;
        uv_timer_init(s->loop, &s->accept_retry);
        s->accept_retry.data = s;
        uv_signal_init(s->loop, &s->sigterm);
        uv_signal_init(s->loop, &s->sigint);
        uv_signal_init(s->loop, &s->sighup);
        s->sigterm.data = s->sigint.data = s->sighup.data = s;
        uv_signal_start(&s->sigterm, on_signal, SIGTERM);
        uv_signal_start(&s->sigint, on_signal, SIGINT);
        uv_signal_start(&s->sighup, on_signal, SIGHUP);
        sd_notify_msg("READY=1");
        log_info("streamdbd %s ready (%d workers)", SDB_VERSION_STRING, cfg->workers);
        uv_run(s->loop, UV_RUN_DEFAULT);
    } else if (s->have_pipe) {
        remove_own_socket(cfg->unix_socket);
    }
    /* close every remaining handle and let their callbacks run */
    uv_walk(s->loop, close_walk, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    rc = sdb_close(s->db);
    if (rc) {
        log_error("closing the database: %s", sdb_strerror(rc));
        if (!exit_code)
            exit_code = 1;
    } else if (!exit_code) {
        log_info("stopped cleanly");
    }
    return exit_code;
}
