/*
 * ops.c -- every operation of the client library, each one request and its
 * whole answer over conn.c: simple requests, the streamed PUT (from a
 * buffer, an fd or a callback, in chunk_bytes frames, with the early-error
 * check of PROTOCOL.md 6.2), the streamed GET (to a buffer, an fd or a
 * callback, with the client's size and CRC32 check), and listings (SEARCH
 * paged by an iterator, LIST_PATHS, LIST_VERSIONS).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "client/client_int.h"

#define DEFAULT_PAGE 1000u

static int check_path(const char *path)
{
    if (!path)
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    if (!*path)
        return client_fail(SDB_EINVAL, "empty path");
    if (strlen(path) > SDB_MAX_PATH)
        return client_fail(SDB_EINVAL, "path longer than %d bytes", SDB_MAX_PATH);
    return SDB_OK;
}

static sdb_proto_str_t str_of(const char *s)
{
    sdb_proto_str_t v = { s, s ? strlen(s) : 0 };
    return v;
}

/* Sends msg as a new request and reads its single-frame answer, which must
 * have opcode `expect`.  *m (views) is valid until the next read on c. */
static int request(sdbc_t *c, sdb_proto_msg_t *msg, uint8_t expect, sdb_proto_msg_t *m)
{
    int rc = client_check(c);
    if (rc < 0)
        return rc;
    msg->request_id = client_next_rid(c);
    if ((rc = client_send_msg(c, msg)) < 0)
        return rc;
    if ((rc = client_recv_msg(c, msg->request_id, m)) < 0)
        return rc;
    if (m->opcode != expect)
        return client_unexpected(c, m, sdb_proto_opcode_name(msg->opcode));
    return SDB_OK;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int sdbc_ping(sdbc_t *c, uint64_t *rtt_us)
{
    client_clear_error();
    uint64_t t0 = mono_us();
    uint8_t payload[8];
    for (int i = 0; i < 8; i++)
        payload[i] = (uint8_t)(t0 >> (8 * i));
    sdb_proto_msg_t msg = { .opcode = SDB_OP_PING }, m;
    msg.u.raw.ptr = payload;
    msg.u.raw.len = sizeof(payload);
    int rc = request(c, &msg, SDB_OP_PONG, &m);
    if (rc < 0)
        return rc;
    if (m.u.raw.len != sizeof(payload) || memcmp(m.u.raw.ptr, payload, sizeof(payload)) != 0)
        return client_break(c, client_fail(SDB_EPROTO, "%s answered PING with other bytes",
                                           c->address));
    if (rtt_us)
        *rtt_us = mono_us() - t0;
    return SDB_OK;
}

int sdbc_lookup(sdbc_t *c, const char *path, sdb_docinfo_t *out)
{
    client_clear_error();
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    sdb_proto_msg_t msg = { .opcode = SDB_OP_LOOKUP }, m;
    msg.u.path = str_of(path);
    if ((rc = request(c, &msg, SDB_OP_DOC, &m)) < 0)
        return rc;
    if (out)
        *out = m.u.doc;
    return SDB_OK;
}

/* A request answered by OK. */
static int ok_request(sdbc_t *c, sdb_proto_msg_t *msg)
{
    sdb_proto_msg_t m;
    return request(c, msg, SDB_OP_OK, &m);
}

int sdbc_delete(sdbc_t *c, const char *path)
{
    client_clear_error();
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    sdb_proto_msg_t msg = { .opcode = SDB_OP_DELETE };
    msg.u.path = str_of(path);
    return ok_request(c, &msg);
}

int sdbc_delete_id(sdbc_t *c, const sdb_id_t *id)
{
    client_clear_error();
    if (!id)
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    sdb_proto_msg_t msg = { .opcode = SDB_OP_DELETE_ID };
    msg.u.id = *id;
    return ok_request(c, &msg);
}

static int bind_op(sdbc_t *c, uint8_t op, const sdb_id_t *id, const char *path)
{
    client_clear_error();
    if (!id)
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    sdb_proto_msg_t msg = { .opcode = op };
    msg.u.id_path.id = *id;
    msg.u.id_path.path = str_of(path);
    return ok_request(c, &msg);
}

int sdbc_bind(sdbc_t *c, const sdb_id_t *id, const char *path)
{
    return bind_op(c, SDB_OP_BIND, id, path);
}

int sdbc_unbind(sdbc_t *c, const sdb_id_t *id, const char *path)
{
    return bind_op(c, SDB_OP_UNBIND, id, path);
}

int sdbc_flush(sdbc_t *c)
{
    client_clear_error();
    sdb_proto_msg_t msg = { .opcode = SDB_OP_FLUSH };
    return ok_request(c, &msg);
}

/* malloc()ed NUL-terminated copy of len bytes. */
static char *dup_bytes(const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

int sdbc_stats(sdbc_t *c, char **json)
{
    client_clear_error();
    if (!json)
        return client_fail(SDB_EINVAL, "no output pointer (NULL)");
    *json = NULL;
    sdb_proto_msg_t msg = { .opcode = SDB_OP_STATS }, m;
    int rc = request(c, &msg, SDB_OP_STATS_RESULT, &m);
    if (rc < 0)
        return rc;
    if (!(*json = dup_bytes(m.u.raw.ptr, m.u.raw.len)))
        return client_fail(SDB_ENOMEM, "out of memory");
    return SDB_OK;
}

int sdbc_info(sdbc_t *c, const sdb_id_t *id, sdb_docinfo_t *out, char **text)
{
    client_clear_error();
    if (text)
        *text = NULL;
    if (!id)
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    sdb_proto_msg_t msg = { .opcode = SDB_OP_INFO }, m;
    msg.u.id = *id;
    int rc = request(c, &msg, SDB_OP_INFO_RESULT, &m);
    if (rc < 0)
        return rc;
    if (out)
        *out = m.u.info.doc;
    if (text && !(*text = dup_bytes(m.u.info.text.ptr, m.u.info.text.len)))
        return client_fail(SDB_ENOMEM, "out of memory");
    return SDB_OK;
}

/* ---- PUT ---- */

typedef struct {
    const uint8_t *buf;       /* buffer source */
    size_t left;
    int fd;                   /* fd source, or -1 */
    sdbc_read_cb cb;          /* callback source */
    void *arg;
} put_src_t;

static int src_read(put_src_t *s, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (s->cb) {
        size_t got = 0;
        int rc = s->cb(s->arg, buf, cap, &got);
        if (rc < 0) {
            if (!client_error_text()[0])
                client_fail(rc, "the read callback stopped the upload: %s", sdbc_strerror(rc));
            return rc;
        }
        if (got > cap)
            return client_fail(SDB_EINVAL, "the read callback returned %zu bytes for a buffer of "
                               "%zu", got, cap);
        *n = got;
        return SDB_OK;
    }
    if (s->fd >= 0) {
        for (;;) {
            ssize_t r = read(s->fd, buf, cap);
            if (r >= 0) {
                *n = (size_t)r;
                return SDB_OK;
            }
            if (errno != EINTR)
                return client_fail(SDB_ELOCAL, "cannot read the content: %s", strerror(errno));
        }
    }
    size_t k = s->left < cap ? s->left : cap;
    if (k)
        memcpy(buf, s->buf, k);
    s->buf += k;
    s->left -= k;
    *n = k;
    return SDB_OK;
}

/* Ends an upload with PUT_ABORT and returns err.  answered: the server has
 * already failed the upload with an ERROR, and ends it silently at
 * PUT_ABORT; otherwise its single answer (OK, or an ERROR it sent meanwhile)
 * is read. */
static int abort_upload(sdbc_t *c, uint32_t rid, int err, int answered)
{
    if (c->broken)
        return err;
    char saved[2048];
    snprintf(saved, sizeof(saved), "%s", client_error_text());
    uint8_t hdr[SDB_PROTO_HEADER_SIZE];
    sdb_proto_header_t h = { .opcode = SDB_OP_PUT_ABORT, .request_id = rid };
    sdb_proto_header_encode(hdr, &h);
    if (client_send_raw(c, hdr, sizeof(hdr)) == 0 && !answered) {
        sdb_proto_msg_t m;
        int rc = client_recv_msg(c, rid, &m);
        if (rc == 0 && m.opcode != SDB_OP_OK)
            client_unexpected(c, &m, "PUT_ABORT");
    }
    client_fail(err, "%s", saved);
    return err;
}

static int put_stream(sdbc_t *c, const char *path, put_src_t *src, uint64_t size,
                      uint64_t if_version, sdb_docinfo_t *out)
{
    int rc = check_path(path);
    if (rc < 0 || (rc = client_check(c)) < 0)
        return rc;
    if ((rc = client_reserve_wbuf(c, SDB_PROTO_HEADER_SIZE + c->chunk)) < 0)
        return rc;
    uint32_t rid = client_next_rid(c);
    sdb_proto_msg_t msg = { .opcode = SDB_OP_PUT_BEGIN, .request_id = rid }, m;
    msg.u.put_begin.size = size;
    msg.u.put_begin.if_version = if_version;
    msg.u.put_begin.path = str_of(path);
    if ((rc = client_send_msg(c, &msg)) < 0)
        return rc;
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    int eof = 0;
    while (!eof && (size == SDBC_SIZE_UNKNOWN || total < size)) {
        int got = 0;
        rc = client_poll_msg(c, rid, &m, &got);
        if (rc == 0 && got)
            return client_unexpected(c, &m, "PUT_DATA");
        if (rc < 0)
            return got ? abort_upload(c, rid, rc, 1) : rc;
        size_t want = c->chunk, n = 0;
        if (size != SDBC_SIZE_UNKNOWN && size - total < want)
            want = (size_t)(size - total);
        uint8_t *data = c->wbuf + SDB_PROTO_HEADER_SIZE;
        while (n < want) {
            size_t k = 0;
            if ((rc = src_read(src, data + n, want - n, &k)) < 0)
                return abort_upload(c, rid, rc, 0);
            if (k == 0) {
                eof = 1;
                break;
            }
            n += k;
        }
        if (n == 0)
            break;
        sdb_proto_header_t h = { .opcode = SDB_OP_PUT_DATA, .length = (uint32_t)n,
                                 .request_id = rid };
        sdb_proto_header_encode(c->wbuf, &h);
        crc = crc32(crc, data, (uInt)n);
        total += n;
        if ((rc = client_send_raw(c, c->wbuf, SDB_PROTO_HEADER_SIZE + n)) < 0)
            return rc;
    }
    if (size != SDBC_SIZE_UNKNOWN && total != size)
        return abort_upload(c, rid, client_fail(SDB_ELOCAL, "the content ended after %llu of "
                                                "%llu bytes", (unsigned long long)total,
                                                (unsigned long long)size), 0);
    msg.opcode = SDB_OP_PUT_END;
    msg.u.put_end.size = total;
    msg.u.put_end.crc32 = (uint32_t)crc;
    if ((rc = client_send_msg(c, &msg)) < 0)
        return rc;
    if ((rc = client_recv_msg(c, rid, &m)) < 0)
        return rc;
    if (m.opcode != SDB_OP_DOC)
        return client_unexpected(c, &m, "PUT_END");
    if (out)
        *out = m.u.doc;
    return SDB_OK;
}

int sdbc_put(sdbc_t *c, const char *path, const void *data, size_t len, uint64_t if_version,
             sdb_docinfo_t *out)
{
    client_clear_error();
    if (!data && len)
        return client_fail(SDB_EINVAL, "no data (NULL) for %zu bytes", len);
    put_src_t s = { .buf = data, .left = len, .fd = -1 };
    return put_stream(c, path, &s, len, if_version, out);
}

int sdbc_put_fd(sdbc_t *c, const char *path, int fd, uint64_t size, uint64_t if_version,
                sdb_docinfo_t *out)
{
    client_clear_error();
    if (fd < 0)
        return client_fail(SDB_EINVAL, "bad file descriptor %d", fd);
    put_src_t s = { .fd = fd };
    return put_stream(c, path, &s, size, if_version, out);
}

int sdbc_put_cb(sdbc_t *c, const char *path, sdbc_read_cb cb, void *arg, uint64_t size,
                uint64_t if_version, sdb_docinfo_t *out)
{
    client_clear_error();
    if (!cb)
        return client_fail(SDB_EINVAL, "no read callback (NULL)");
    put_src_t s = { .fd = -1, .cb = cb, .arg = arg };
    return put_stream(c, path, &s, size, if_version, out);
}

/* ---- GET ---- */

typedef struct {
    /* called once the header is in, with the bytes to expect; may be NULL */
    int (*header)(void *self, const sdb_docinfo_t *info, uint64_t expect);
    int (*data)(void *self, const sdb_docinfo_t *info, const void *p, size_t len);
} sink_t;

/* Sends a GET, GET_ID, GET_RANGE or GET_ID_RANGE request and reads its
 * stream into sink.  A range's header goes to *range (may be NULL). */
static int get_stream(sdbc_t *c, sdb_proto_msg_t *msg, const char *what, const sink_t *sink,
                      void *self, sdb_docinfo_t *out, sdbc_range_t *range)
{
    sdb_proto_msg_t m;
    int is_range = msg->opcode == SDB_OP_GET_RANGE || msg->opcode == SDB_OP_GET_ID_RANGE;
    msg->flags = c && c->quick ? SDB_FLAG_QUICK : 0;
    int rc = request(c, msg, is_range ? SDB_OP_RANGE_HEADER : SDB_OP_GET_HEADER, &m);
    if (rc == SDB_EOPCODE && is_range)
        return client_fail(rc, "%s does not support byte ranges (%s): the server predates them; "
                           "read the whole document instead", c->address,
                           sdb_proto_opcode_name(msg->opcode));
    if (rc < 0)
        return rc;
    uint32_t rid = msg->request_id;
    sdb_docinfo_t info = is_range ? m.u.range_header.doc : m.u.doc;
    uint64_t offset = is_range ? m.u.range_header.offset : 0;
    uint64_t expect = is_range ? m.u.range_header.length : info.size;
    if (is_range) {
        int by_path = msg->opcode == SDB_OP_GET_RANGE;
        uint64_t asked = by_path ? msg->u.path_range.offset : msg->u.id_range.offset;
        uint64_t asked_len = by_path ? msg->u.path_range.length : msg->u.id_range.length;
        if (offset != asked || expect > asked_len)
            return client_break(c, client_fail(SDB_EPROTO, "%s answered a range of %llu bytes "
                                               "from byte %llu with %llu bytes from byte %llu",
                                               c->address, (unsigned long long)asked_len,
                                               (unsigned long long)asked,
                                               (unsigned long long)expect,
                                               (unsigned long long)offset));
    }
    int sink_err = sink->header ? sink->header(self, &info, expect) : 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t got = 0;
    for (;;) {
        if ((rc = client_recv_msg(c, rid, &m)) < 0) {
            if (c->broken) {
                char said[1200];
                snprintf(said, sizeof(said), "%s", client_error_text());
                return client_fail(rc, "%s while receiving %s (after %llu of %llu bytes)", said,
                                   what, (unsigned long long)got, (unsigned long long)expect);
            }
            return rc;
        }
        if (m.opcode == SDB_OP_END)
            break;
        if (m.opcode != SDB_OP_DATA)
            return client_unexpected(c, &m, sdb_proto_opcode_name(msg->opcode));
        if (m.u.raw.len > expect - got)
            return client_break(c, client_fail(SDB_EPROTO, "%s sent more than the %llu bytes "
                                               "announced for %s", c->address,
                                               (unsigned long long)expect, what));
        crc = crc32(crc, m.u.raw.ptr, (uInt)m.u.raw.len);
        got += m.u.raw.len;
        if (!sink_err && m.u.raw.len)
            sink_err = sink->data(self, &info, m.u.raw.ptr, m.u.raw.len);
    }
    if (sink_err < 0)
        return sink_err;
    if (got != expect)
        return client_fail(SDB_ECORRUPT, "received %llu bytes of %s, but its header announced "
                           "%llu", (unsigned long long)got, what, (unsigned long long)expect);
    /* the CRC32 covers the whole content: a part cannot be checked against it */
    if (offset == 0 && expect == info.size && (uint32_t)crc != info.crc32)
        return client_fail(SDB_ECORRUPT, "the content received for %s fails its CRC32 check "
                           "(computed %08x, announced %08x)", what, (unsigned)crc,
                           (unsigned)info.crc32);
    if (out)
        *out = info;
    if (range) {
        range->doc = info;
        range->offset = offset;
        range->length = expect;
    }
    return SDB_OK;
}

/* Prepares a GET (path != NULL) or GET_ID request and a text naming it. */
static int get_msg(const char *path, const sdb_id_t *id, uint64_t version, sdb_proto_msg_t *msg,
                   char *what, size_t cap)
{
    memset(msg, 0, sizeof(*msg));
    if (path) {
        int rc = check_path(path);
        if (rc < 0)
            return rc;
        msg->opcode = SDB_OP_GET;
        msg->u.path = str_of(path);
        snprintf(what, cap, "%s", path);
        return SDB_OK;
    }
    if (!id)
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    msg->opcode = SDB_OP_GET_ID;
    msg->u.id_version.id = *id;
    msg->u.id_version.version = version;
    char ids[37];
    sdb_id_format(id, ids);
    if (version)
        snprintf(what, cap, "%s version %llu", ids, (unsigned long long)version);
    else
        snprintf(what, cap, "%s", ids);
    return SDB_OK;
}

/* Prepares a GET_RANGE (path != NULL) or GET_ID_RANGE request. */
static int range_msg(const char *path, const sdb_id_t *id, uint64_t version, uint64_t offset,
                     uint64_t length, sdb_proto_msg_t *msg, char *what, size_t cap)
{
    int rc = get_msg(path, id, version, msg, what, cap);
    if (rc < 0)
        return rc;
    if (path) {
        msg->opcode = SDB_OP_GET_RANGE;
        msg->u.path_range.offset = offset;
        msg->u.path_range.length = length;
        msg->u.path_range.path = str_of(path);
    } else {
        msg->opcode = SDB_OP_GET_ID_RANGE;
        msg->u.id_range.id = *id;
        msg->u.id_range.version = version;
        msg->u.id_range.offset = offset;
        msg->u.id_range.length = length;
    }
    size_t n = strlen(what);
    snprintf(what + n, cap - n, " (bytes from %llu)", (unsigned long long)offset);
    return SDB_OK;
}

typedef struct {
    uint8_t *buf;
    size_t len;
} buf_sink_t;

static int buf_header(void *self, const sdb_docinfo_t *info, uint64_t expect)
{
    buf_sink_t *b = self;
    (void)info;
    if (expect > (uint64_t)SIZE_MAX - 1 || !(b->buf = malloc((size_t)expect + 1)))
        return client_fail(SDB_ENOMEM, "out of memory for %llu bytes",
                           (unsigned long long)expect);
    return SDB_OK;
}

static int buf_data(void *self, const sdb_docinfo_t *info, const void *p, size_t len)
{
    buf_sink_t *b = self;
    (void)info;
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    return SDB_OK;
}

static int get_buf(sdbc_t *c, const char *path, const sdb_id_t *id, uint64_t version,
                   void **data, size_t *len, sdb_docinfo_t *out)
{
    client_clear_error();
    if (!data || !len)
        return client_fail(SDB_EINVAL, "no output pointer (NULL)");
    *data = NULL;
    *len = 0;
    sdb_proto_msg_t msg;
    char what[SDB_MAX_PATH + 64];
    int rc = get_msg(path, id, version, &msg, what, sizeof(what));
    if (rc < 0)
        return rc;
    static const sink_t sink = { buf_header, buf_data };
    buf_sink_t b = { NULL, 0 };
    if ((rc = get_stream(c, &msg, what, &sink, &b, out, NULL)) < 0) {
        free(b.buf);
        return rc;
    }
    *data = b.buf;
    *len = b.len;
    return SDB_OK;
}

int sdbc_get(sdbc_t *c, const char *path, void **data, size_t *len, sdb_docinfo_t *out)
{
    if (!path) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    }
    return get_buf(c, path, NULL, 0, data, len, out);
}

int sdbc_get_id(sdbc_t *c, const sdb_id_t *id, uint64_t version, void **data, size_t *len,
                sdb_docinfo_t *out)
{
    if (!id) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    }
    return get_buf(c, NULL, id, version, data, len, out);
}

static int fd_data(void *self, const sdb_docinfo_t *info, const void *p, size_t len)
{
    int fd = *(int *)self;
    const uint8_t *b = p;
    (void)info;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return client_fail(SDB_ELOCAL, "cannot write the content: %s",
                               w < 0 ? strerror(errno) : "short write");
        b += w;
        len -= (size_t)w;
    }
    return SDB_OK;
}

static int get_fd(sdbc_t *c, const char *path, const sdb_id_t *id, uint64_t version, int fd,
                  sdb_docinfo_t *out)
{
    client_clear_error();
    if (fd < 0)
        return client_fail(SDB_EINVAL, "bad file descriptor %d", fd);
    sdb_proto_msg_t msg;
    char what[SDB_MAX_PATH + 64];
    int rc = get_msg(path, id, version, &msg, what, sizeof(what));
    if (rc < 0)
        return rc;
    static const sink_t sink = { NULL, fd_data };
    return get_stream(c, &msg, what, &sink, &fd, out, NULL);
}

int sdbc_get_fd(sdbc_t *c, const char *path, int fd, sdb_docinfo_t *out)
{
    if (!path) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    }
    return get_fd(c, path, NULL, 0, fd, out);
}

int sdbc_get_id_fd(sdbc_t *c, const sdb_id_t *id, uint64_t version, int fd, sdb_docinfo_t *out)
{
    if (!id) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    }
    return get_fd(c, NULL, id, version, fd, out);
}

typedef struct {
    sdbc_write_cb cb;
    void *arg;
} cb_sink_t;

static int cb_data(void *self, const sdb_docinfo_t *info, const void *p, size_t len)
{
    cb_sink_t *s = self;
    client_clear_error();
    int rc = s->cb(s->arg, info, p, len);
    if (rc < 0 && !client_error_text()[0])
        client_fail(rc, "the write callback stopped the download: %s", sdbc_strerror(rc));
    return rc < 0 ? rc : SDB_OK;
}

static int get_cb(sdbc_t *c, const char *path, const sdb_id_t *id, uint64_t version,
                  sdbc_write_cb cb, void *arg, sdb_docinfo_t *out)
{
    client_clear_error();
    if (!cb)
        return client_fail(SDB_EINVAL, "no write callback (NULL)");
    sdb_proto_msg_t msg;
    char what[SDB_MAX_PATH + 64];
    int rc = get_msg(path, id, version, &msg, what, sizeof(what));
    if (rc < 0)
        return rc;
    static const sink_t sink = { NULL, cb_data };
    cb_sink_t s = { cb, arg };
    return get_stream(c, &msg, what, &sink, &s, out, NULL);
}

int sdbc_get_cb(sdbc_t *c, const char *path, sdbc_write_cb cb, void *arg, sdb_docinfo_t *out)
{
    if (!path) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    }
    return get_cb(c, path, NULL, 0, cb, arg, out);
}

int sdbc_get_id_cb(sdbc_t *c, const sdb_id_t *id, uint64_t version, sdbc_write_cb cb, void *arg,
                   sdb_docinfo_t *out)
{
    if (!id) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    }
    return get_cb(c, NULL, id, version, cb, arg, out);
}

/* ---- Byte ranges ---- */

static int range_buf(sdbc_t *c, const char *path, const sdb_id_t *id, uint64_t version,
                     uint64_t offset, uint64_t length, void **data, size_t *len, sdbc_range_t *out)
{
    client_clear_error();
    if (!data || !len)
        return client_fail(SDB_EINVAL, "no output pointer (NULL)");
    *data = NULL;
    *len = 0;
    sdb_proto_msg_t msg;
    char what[SDB_MAX_PATH + 96];
    int rc = range_msg(path, id, version, offset, length, &msg, what, sizeof(what));
    if (rc < 0)
        return rc;
    static const sink_t sink = { buf_header, buf_data };
    buf_sink_t b = { NULL, 0 };
    if ((rc = get_stream(c, &msg, what, &sink, &b, NULL, out)) < 0) {
        free(b.buf);
        return rc;
    }
    *data = b.buf;
    *len = b.len;
    return SDB_OK;
}

int sdbc_get_range(sdbc_t *c, const char *path, uint64_t offset, uint64_t length, void **data,
                   size_t *len, sdbc_range_t *out)
{
    if (!path) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    }
    return range_buf(c, path, NULL, 0, offset, length, data, len, out);
}

int sdbc_get_id_range(sdbc_t *c, const sdb_id_t *id, uint64_t version, uint64_t offset,
                      uint64_t length, void **data, size_t *len, sdbc_range_t *out)
{
    if (!id) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    }
    return range_buf(c, NULL, id, version, offset, length, data, len, out);
}

static int range_cb(sdbc_t *c, const char *path, const sdb_id_t *id, uint64_t version,
                    uint64_t offset, uint64_t length, sdbc_write_cb cb, void *arg,
                    sdbc_range_t *out)
{
    client_clear_error();
    if (!cb)
        return client_fail(SDB_EINVAL, "no write callback (NULL)");
    sdb_proto_msg_t msg;
    char what[SDB_MAX_PATH + 96];
    int rc = range_msg(path, id, version, offset, length, &msg, what, sizeof(what));
    if (rc < 0)
        return rc;
    static const sink_t sink = { NULL, cb_data };
    cb_sink_t s = { cb, arg };
    return get_stream(c, &msg, what, &sink, &s, NULL, out);
}

int sdbc_get_range_cb(sdbc_t *c, const char *path, uint64_t offset, uint64_t length,
                      sdbc_write_cb cb, void *arg, sdbc_range_t *out)
{
    if (!path) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no path given (NULL)");
    }
    return range_cb(c, path, NULL, 0, offset, length, cb, arg, out);
}

int sdbc_get_id_range_cb(sdbc_t *c, const sdb_id_t *id, uint64_t version, uint64_t offset,
                         uint64_t length, sdbc_write_cb cb, void *arg, sdbc_range_t *out)
{
    if (!id) {
        client_clear_error();
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    }
    return range_cb(c, NULL, id, version, offset, length, cb, arg, out);
}

/* ---- Listings ---- */

/* Receives one listing (ENTRIES..., LIST_END) and calls each(self, entry)
 * for every entry of an allowed kind (bit 1 << kind in kinds) until it
 * returns nonzero (a negative return is remembered and returned after the
 * listing is drained).  Stores LIST_END's more flag in *more (may be NULL). */
static int list_stream(sdbc_t *c, uint32_t rid, const char *request, unsigned kinds,
                       int (*each)(void *self, const sdbc_entry_t *e), void *self, int *more)
{
    sdb_proto_msg_t m;
    uint64_t seen = 0;
    int stop = 0;
    char *path = NULL;
    int rc;
    for (;;) {
        if ((rc = client_recv_msg(c, rid, &m)) < 0)
            goto out;
        if (m.opcode == SDB_OP_LIST_END)
            break;
        if (m.opcode != SDB_OP_ENTRIES) {
            rc = client_unexpected(c, &m, request);
            goto out;
        }
        sdb_proto_entries_iter_t it;
        sdb_proto_entry_t e;
        sdb_proto_entries_iter(&m.u.entries, &it);
        while ((rc = sdb_proto_entries_next(&it, &e)) == 1) {
            seen++;
            if (!(kinds & (1u << e.kind))) {
                rc = client_break(c, client_fail(SDB_EPROTO, "%s answered %s with a listing entry "
                                                 "of kind %u", c->address, request,
                                                 (unsigned)e.kind));
                goto out;
            }
            if (stop)
                continue;
            sdbc_entry_t ce = { .kind = e.kind, .path = NULL, .info = e.info };
            if (e.kind != SDB_ENTRY_VERSION) {
                if (!path && !(path = malloc(65536))) {
                    rc = client_fail(SDB_ENOMEM, "out of memory");
                    stop = rc;
                    continue;
                }
                if (sdb_proto_str_copy(&e.path, path, 65536) < 0) {
                    rc = client_break(c, client_fail(SDB_EPROTO, "%s sent a path containing a "
                                                     "NUL byte", c->address));
                    goto out;
                }
                ce.path = path;
            }
            if (e.kind == SDB_ENTRY_PREFIX)
                memset(&ce.info, 0, sizeof(ce.info));
            stop = each(self, &ce);
        }
        if (rc < 0) {
            rc = client_break(c, client_fail(SDB_EPROTO, "malformed ENTRIES frame from %s",
                                             c->address));
            goto out;
        }
    }
    if (m.u.list_end.count != seen) {
        rc = client_break(c, client_fail(SDB_EPROTO, "%s ended a listing of %llu entries with "
                                         "count %u", c->address, (unsigned long long)seen,
                                         (unsigned)m.u.list_end.count));
        goto out;
    }
    if (more)
        *more = m.u.list_end.more;
    rc = stop < 0 ? stop : SDB_OK;
out:
    free(path);
    return rc;
}

typedef struct {
    sdb_entry_cb cb;
    void *arg;
} user_cb_t;

static int user_each(void *self, const sdbc_entry_t *e)
{
    user_cb_t *u = self;
    int r = u->cb(u->arg, e->path, e->kind == SDB_ENTRY_PREFIX ? NULL : &e->info);
    return r != 0 ? 1 : 0;
}

static int list_id(sdbc_t *c, uint8_t op, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    client_clear_error();
    if (!id || !cb)
        return client_fail(SDB_EINVAL, "%s", !id ? "no id given (NULL)" : "no callback (NULL)");
    int rc = client_check(c);
    if (rc < 0)
        return rc;
    sdb_proto_msg_t msg = { .opcode = op, .request_id = client_next_rid(c) };
    msg.u.id = *id;
    if ((rc = client_send_msg(c, &msg)) < 0)
        return rc;
    user_cb_t u = { cb, arg };
    unsigned kinds = op == SDB_OP_LIST_PATHS ? 1u << SDB_ENTRY_DOC : 1u << SDB_ENTRY_VERSION;
    return list_stream(c, msg.request_id, sdb_proto_opcode_name(op), kinds, user_each, &u, NULL);
}

int sdbc_list_paths(sdbc_t *c, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    return list_id(c, SDB_OP_LIST_PATHS, id, cb, arg);
}

int sdbc_list_versions(sdbc_t *c, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    return list_id(c, SDB_OP_LIST_VERSIONS, id, cb, arg);
}

/* ---- SEARCH iterator ---- */

typedef struct {
    int kind;
    char *path;
    sdb_docinfo_t info;
} page_entry_t;

struct sdbc_search_iter {
    sdbc_t *c;
    char *prefix;
    char *start_after;        /* the last key received ("" at first) */
    char delimiter;
    uint64_t limit, returned;
    uint32_t page_size;
    int done;                 /* the server said more = 0, or the limit was reached */
    int server_more;          /* the last page's more flag */
    page_entry_t *page;
    size_t n, cap, idx;
};

static void page_clear(sdbc_search_iter_t *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->page[i].path);
    it->n = it->idx = 0;
}

static int page_add(void *self, const sdbc_entry_t *e)
{
    sdbc_search_iter_t *it = self;
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 64;
        page_entry_t *p = realloc(it->page, cap * sizeof(*p));
        if (!p)
            return client_fail(SDB_ENOMEM, "out of memory");
        it->page = p;
        it->cap = cap;
    }
    page_entry_t *pe = &it->page[it->n];
    if (!(pe->path = strdup(e->path)))
        return client_fail(SDB_ENOMEM, "out of memory");
    pe->kind = e->kind;
    pe->info = e->info;
    it->n++;
    return 0;
}

int sdbc_search_open(sdbc_t *c, const char *prefix, const sdbc_search_opts_t *opts,
                     sdbc_search_iter_t **out)
{
    client_clear_error();
    if (!c || !out)
        return client_fail(SDB_EINVAL, "%s", !c ? "no connection handle (NULL)"
                                                : "no output pointer (NULL)");
    *out = NULL;
    if (!prefix)
        prefix = "";
    const char *after = opts && opts->start_after ? opts->start_after : "";
    if (strlen(prefix) > SDB_MAX_PATH || strlen(after) > SDB_MAX_PATH)
        return client_fail(SDB_EINVAL, "%s longer than %d bytes",
                           strlen(prefix) > SDB_MAX_PATH ? "prefix" : "start_after", SDB_MAX_PATH);
    sdbc_search_iter_t *it = calloc(1, sizeof(*it));
    if (!it || !(it->prefix = strdup(prefix)) || !(it->start_after = strdup(after))) {
        sdbc_search_close(it);
        return client_fail(SDB_ENOMEM, "out of memory");
    }
    it->c = c;
    it->delimiter = opts ? opts->delimiter : 0;
    it->limit = opts ? opts->limit : 0;
    it->page_size = opts && opts->page_size ? opts->page_size : DEFAULT_PAGE;
    *out = it;
    return SDB_OK;
}

static int fetch_page(sdbc_search_iter_t *it)
{
    sdbc_t *c = it->c;
    int rc = client_check(c);
    if (rc < 0)
        return rc;
    page_clear(it);
    uint64_t want = it->page_size;
    if (it->limit && it->limit - it->returned < want)
        want = it->limit - it->returned;
    sdb_proto_msg_t msg = { .opcode = SDB_OP_SEARCH, .request_id = client_next_rid(c) };
    msg.u.search.limit = (uint32_t)want;
    msg.u.search.delimiter = (uint8_t)it->delimiter;
    msg.u.search.prefix = str_of(it->prefix);
    msg.u.search.start_after = str_of(it->start_after);
    if ((rc = client_send_msg(c, &msg)) < 0)
        return rc;
    int more = 0;
    rc = list_stream(c, msg.request_id, "SEARCH", 1u << SDB_ENTRY_DOC | 1u << SDB_ENTRY_PREFIX,
                     page_add, it, &more);
    if (rc < 0)
        return rc;
    if (it->n == 0 && more)
        return client_fail(SDB_EPROTO, "%s returned an empty SEARCH page with more entries to "
                           "come", c->address);
    it->server_more = more;
    if (!more)
        it->done = 1;
    if (it->n > 0) {
        char *last = strdup(it->page[it->n - 1].path);
        if (!last)
            return client_fail(SDB_ENOMEM, "out of memory");
        free(it->start_after);
        it->start_after = last;
    }
    return SDB_OK;
}

int sdbc_search_next(sdbc_search_iter_t *it, sdbc_entry_t *out)
{
    client_clear_error();
    if (!it || !out)
        return client_fail(SDB_EINVAL, "no iterator or output (NULL)");
    while (it->idx >= it->n) {
        if (it->done)
            return 0;
        if (it->limit && it->returned >= it->limit) {
            it->done = 1;
            return 0;
        }
        int rc = fetch_page(it);
        if (rc < 0)
            return rc;
    }
    page_entry_t *pe = &it->page[it->idx++];
    it->returned++;
    out->kind = pe->kind;
    out->path = pe->path;
    out->info = pe->info;
    return 1;
}

int sdbc_search_truncated(const sdbc_search_iter_t *it)
{
    return it && it->limit && it->returned >= it->limit && it->server_more;
}

void sdbc_search_close(sdbc_search_iter_t *it)
{
    if (!it)
        return;
    page_clear(it);
    free(it->page);
    free(it->prefix);
    free(it->start_after);
    free(it);
}

int sdbc_search(sdbc_t *c, const char *prefix, const sdbc_search_opts_t *opts, sdb_entry_cb cb,
                void *arg)
{
    client_clear_error();
    if (!cb)
        return client_fail(SDB_EINVAL, "no callback (NULL)");
    sdbc_search_iter_t *it = NULL;
    int rc = sdbc_search_open(c, prefix, opts, &it);
    if (rc < 0)
        return rc;
    sdbc_entry_t e;
    while ((rc = sdbc_search_next(it, &e)) == 1) {
        if (cb(arg, e.path, e.kind == SDB_ENTRY_PREFIX ? NULL : &e.info) != 0) {
            rc = 0;
            break;
        }
    }
    sdbc_search_close(it);
    return rc;
}

/* ---- atomic batches ---- */

struct sdbc_batch {
    uint8_t *items;                /* the BATCH items, encoded */
    size_t len, cap;
    uint32_t count;
    uint64_t content;
};

int sdbc_batch_new(sdbc_batch_t **out)
{
    client_clear_error();
    if (!out)
        return client_fail(SDB_EINVAL, "no batch pointer given (NULL)");
    *out = calloc(1, sizeof(**out));
    return *out ? SDB_OK : client_fail(SDB_ENOMEM, "out of memory");
}

void sdbc_batch_free(sdbc_batch_t *b)
{
    if (b) {
        free(b->items);
        free(b);
    }
}

void sdbc_batch_clear(sdbc_batch_t *b)
{
    if (b) {
        b->len = 0;
        b->count = 0;
        b->content = 0;
    }
}

size_t sdbc_batch_count(const sdbc_batch_t *b)
{
    return b ? b->count : 0;
}

static int batch_add(sdbc_batch_t *b, uint8_t kind, const sdb_id_t *id, const char *path,
                     const void *data, size_t len, uint64_t if_version)
{
    client_clear_error();
    if (!b)
        return client_fail(SDB_EINVAL, "no batch given (NULL)");
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    if ((kind == SDB_BATCH_ITEM_BIND || kind == SDB_BATCH_ITEM_UNBIND) && !id)
        return client_fail(SDB_EINVAL, "no id given (NULL)");
    if (!data && len)
        return client_fail(SDB_EINVAL, "no content given (NULL) for %zu bytes", len);
    if (b->count >= SDB_BATCH_MAX_OPS)
        return client_fail(SDB_ETOOLARGE, "a batch holds at most %d items", SDB_BATCH_MAX_OPS);
    if (len > SDB_BATCH_MAX_BYTES - b->content)
        return client_fail(SDB_ETOOLARGE, "a batch holds at most %u bytes of content",
                           (unsigned)SDB_BATCH_MAX_BYTES);
    sdb_proto_batch_item_t it = { .kind = kind, .if_version = if_version, .path = str_of(path) };
    if (id)
        it.id = *id;
    it.data.ptr = data;
    it.data.len = len;
    size_t need = sdb_proto_batch_item_size(&it), n;
    if (b->cap - b->len < need) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->len < need)
            nc *= 2;
        uint8_t *p = realloc(b->items, nc);
        if (!p)
            return client_fail(SDB_ENOMEM, "out of memory");
        b->items = p;
        b->cap = nc;
    }
    rc = sdb_proto_batch_item_encode(&it, b->items + b->len, b->cap - b->len, &n);
    if (rc < 0)
        return client_fail(rc, "cannot encode the batch item: %s", sdbc_strerror(rc));
    b->len += n;
    b->count++;
    b->content += len;
    return SDB_OK;
}

int sdbc_batch_put(sdbc_batch_t *b, const char *path, const void *data, size_t len,
                   uint64_t if_version)
{
    return batch_add(b, SDB_BATCH_ITEM_PUT, NULL, path, data, len, if_version);
}

int sdbc_batch_delete(sdbc_batch_t *b, const char *path, uint64_t if_version)
{
    return batch_add(b, SDB_BATCH_ITEM_DELETE, NULL, path, NULL, 0, if_version);
}

int sdbc_batch_bind(sdbc_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version)
{
    return batch_add(b, SDB_BATCH_ITEM_BIND, id, path, NULL, 0, if_version);
}

int sdbc_batch_unbind(sdbc_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version)
{
    return batch_add(b, SDB_BATCH_ITEM_UNBIND, id, path, NULL, 0, if_version);
}

int sdbc_batch_commit(sdbc_t *c, const sdbc_batch_t *b, sdb_docinfo_t *results, size_t *failed)
{
    client_clear_error();
    if (failed)
        *failed = SDB_BATCH_NO_ITEM;
    if (!c || !b)
        return client_fail(SDB_EINVAL, "no %s given (NULL)", c ? "batch" : "connection");
    int rc = client_check(c);
    if (rc < 0)
        return rc;
    if (b->count > (c->max_frame - 4) / SDB_PROTO_DOCINFO_SIZE)
        return client_fail(SDB_ETOOLARGE, "a batch of %u items: the answer would exceed the "
                           "server's frame limit of %u bytes (at most %u items); split it",
                           (unsigned)b->count, (unsigned)c->max_frame,
                           (unsigned)((c->max_frame - 4) / SDB_PROTO_DOCINFO_SIZE));
    if (b->len + 4 > c->max_frame)
        return client_fail(SDB_ETOOLARGE, "a batch of %zu bytes exceeds the server's frame limit "
                           "of %u bytes; split it, or put large documents with sdbc_put",
                           b->len + 4, (unsigned)c->max_frame);
    sdb_proto_msg_t msg = { .opcode = SDB_OP_BATCH }, m;
    msg.u.batch.count = b->count;
    msg.u.batch.data = b->items;
    msg.u.batch.len = b->len;
    msg.request_id = client_next_rid(c);
    if ((rc = client_send_msg(c, &msg)) < 0)
        return rc;
    rc = client_recv_msg(c, msg.request_id, &m);
    if (rc == SDB_EOPCODE)
        return client_fail(rc, "%s does not support atomic batches (BATCH): the server predates "
                           "them", c->address);
    if (rc < 0)
        return rc;
    if (m.opcode == SDB_OP_BATCH_FAILED) {
        int err = sdb_proto_status_to_error(m.u.batch_failed.status);
        if (failed && m.u.batch_failed.item != SDB_PROTO_NO_ITEM)
            *failed = m.u.batch_failed.item;
        if (m.u.batch_failed.item != SDB_PROTO_NO_ITEM && m.u.batch_failed.item >= b->count)
            return client_break(c, client_fail(SDB_EPROTO, "%s named item %u of a batch of %u",
                                               c->address, (unsigned)m.u.batch_failed.item,
                                               (unsigned)b->count));
        const sdb_proto_str_t *t = &m.u.batch_failed.message;
        return client_fail(err, "%.*s", (int)t->len, t->len ? t->ptr : "");
    }
    if (m.opcode != SDB_OP_BATCH_RESULT)
        return client_unexpected(c, &m, "BATCH");
    if (m.u.batch_result.count != b->count)
        return client_break(c, client_fail(SDB_EPROTO, "%s answered a batch of %u items with %u "
                                           "results", c->address, (unsigned)b->count,
                                           (unsigned)m.u.batch_result.count));
    for (uint32_t i = 0; results && i < b->count; i++)
        sdb_proto_docinfo_decode(m.u.batch_result.data + (size_t)i * SDB_PROTO_DOCINFO_SIZE,
                                 &results[i]);
    return SDB_OK;
}
