/*
 * tclient.c -- see tclient.h: a literal, blocking protocol client for the
 * integration tests, built on the shared codec.
 */
#include "tclient.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <zlib.h>

#define IN_BUF 65536

/* ---- content ---- */

void tc_fill(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    if (x == 0)
        x = 1;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(b + i, &x, 4);
    }
    for (; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x >> 24);
    }
}

uint32_t tc_crc(const void *p, size_t n)
{
    uint32_t crc = 0;
    const uint8_t *b = p;
    while (n > 0) {   /* zlib takes uInt lengths */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

/* ---- connections ---- */

static tc_t *tc_new(int fd)
{
    tc_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->in = malloc(IN_BUF);
    if (!c->in) {
        free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->max_frame = SDB_PROTO_MIN_FRAME;
    c->chunk = SDB_PROTO_MIN_CHUNK;
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    int k = m ? atoi(m) : 1;
    c->timeout_ms = 20000 * (k > 1 ? k : 1);
    sdb_proto_decoder_init(&c->dec, SDB_PROTO_MIN_FRAME);
    return c;
}

tc_t *tc_connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    return tc_new(fd);
}

tc_t *tc_connect_tcp(int port, int rcvbuf)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    return tc_new(fd);
}

void tc_close(tc_t *c)
{
    if (!c)
        return;
    close(c->fd);
    sdb_proto_decoder_free(&c->dec);
    free(c->in);
    free(c);
}

void tc_shutdown_write(tc_t *c)
{
    shutdown(c->fd, SHUT_WR);
}

/* ---- raw I/O ---- */

static int send_iov(tc_t *c, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(c->err, sizeof c->err, "send: %s", strerror(errno));
            return TC_CLOSED;
        }
        c->sent += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int tc_send_raw(tc_t *c, const void *p, size_t n)
{
    struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
    return send_iov(c, &iov, 1);
}

int tc_send_frame(tc_t *c, uint8_t opcode, uint8_t flags, uint32_t rid, const void *payload,
                  size_t len)
{
    uint8_t hdr[SDB_PROTO_HEADER_SIZE];
    sdb_proto_header_t h = { .opcode = opcode, .flags = flags, .length = (uint32_t)len,
                             .request_id = rid };
    sdb_proto_header_encode(hdr, &h);
    struct iovec iov[2] = { { .iov_base = hdr, .iov_len = sizeof hdr },
                            { .iov_base = (void *)payload, .iov_len = len } };
    return send_iov(c, iov, len ? 2 : 1);
}

int tc_send_msg(tc_t *c, const sdb_proto_msg_t *msg)
{
    size_t size, len;
    int rc = sdb_proto_encoded_size(msg, &size);
    if (rc) {
        snprintf(c->err, sizeof c->err, "encode opcode 0x%02x: %d", msg->opcode, rc);
        return TC_BAD;
    }
    uint8_t *buf = malloc(size);
    if (!buf)
        return TC_BAD;
    rc = sdb_proto_encode(msg, buf, size, &len);
    if (rc) {
        free(buf);
        snprintf(c->err, sizeof c->err, "encode opcode 0x%02x: %d", msg->opcode, rc);
        return TC_BAD;
    }
    rc = tc_send_raw(c, buf, len);
    free(buf);
    return rc;
}

int tc_read(tc_t *c)
{
    for (;;) {
        if (c->in_off < c->in_len) {
            size_t used = 0;
            int rc = sdb_proto_decoder_feed(&c->dec, c->in + c->in_off, c->in_len - c->in_off, &used,
                                            &c->fr);
            c->in_off += used;
            if (rc < 0) {
                snprintf(c->err, sizeof c->err, "malformed frame from the server: %s",
                         sdb_proto_strerror(rc));
                return TC_BAD;
            }
            if (rc == 0)
                continue;
            rc = sdb_proto_decode(&c->fr, &c->m);
            if (rc) {
                snprintf(c->err, sizeof c->err, "undecodable frame (opcode 0x%02x, %u bytes): %s",
                         c->fr.hdr.opcode, c->fr.hdr.length, sdb_proto_strerror(rc));
                return TC_BAD;
            }
            if (sdb_proto_opcode_is_request(c->m.opcode) != 0) {
                snprintf(c->err, sizeof c->err, "the server sent request opcode 0x%02x",
                         c->m.opcode);
                return TC_BAD;
            }
            if (c->m.opcode == SDB_OP_ERROR) {
                c->status = c->m.u.error.status;
                c->flags = c->m.flags;
                size_t n = c->m.u.error.message.len;
                if (n >= sizeof c->msg)
                    n = sizeof c->msg - 1;
                memcpy(c->msg, c->m.u.error.message.ptr ? c->m.u.error.message.ptr : "", n);
                c->msg[n] = '\0';
            }
            return 1;
        }
        struct pollfd pf = { .fd = c->fd, .events = POLLIN };
        int r = poll(&pf, 1, c->timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            snprintf(c->err, sizeof c->err, "no frame within %d ms", c->timeout_ms);
            return TC_TIMEOUT;
        }
        ssize_t n = recv(c->fd, c->in, IN_BUF, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
            snprintf(c->err, sizeof c->err, "connection closed by the server%s%s",
                     n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
            return TC_CLOSED;
        }
        if (n < 0) {
            snprintf(c->err, sizeof c->err, "recv: %s", strerror(errno));
            return TC_BAD;
        }
        c->received += (uint64_t)n;
        c->in_len = (size_t)n;
        c->in_off = 0;
    }
}

int tc_expect_closed(tc_t *c, int timeout_ms)
{
    int saved = c->timeout_ms;
    c->timeout_ms = timeout_ms;
    int rc = tc_read(c);
    c->timeout_ms = saved;
    if (rc == 1) {
        snprintf(c->err, sizeof c->err, "a %s frame for request %u where the end was expected",
                 sdb_proto_opcode_name(c->m.opcode), c->m.request_id);
        return TC_BAD;
    }
    return rc;
}

/* ---- request frames ---- */

static sdb_proto_str_t str_of(const char *s)
{
    sdb_proto_str_t v = { .ptr = s, .len = s ? strlen(s) : 0 };
    return v;
}

int tc_send_hello(tc_t *c, uint32_t rid, uint16_t min_v, uint16_t max_v, const char *token,
                  const char *client)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_HELLO, .request_id = rid };
    m.u.hello.min_version = min_v;
    m.u.hello.max_version = max_v;
    m.u.hello.token = str_of(token);
    m.u.hello.client = str_of(client);
    return tc_send_msg(c, &m);
}

int tc_send_ping(tc_t *c, uint32_t rid, const void *p, size_t n)
{
    return tc_send_frame(c, SDB_OP_PING, 0, rid, p, n);
}

int tc_send_path(tc_t *c, uint8_t opcode, uint32_t rid, const char *path)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    m.u.path = str_of(path);
    return tc_send_msg(c, &m);
}

int tc_send_id(tc_t *c, uint8_t opcode, uint32_t rid, const sdb_id_t *id)
{
    return tc_send_frame(c, opcode, 0, rid, id->b, SDB_PROTO_ID_SIZE);
}

int tc_send_get_id(tc_t *c, uint32_t rid, const sdb_id_t *id, uint64_t version, uint8_t flags)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_GET_ID, .flags = flags, .request_id = rid };
    m.u.id_version.id = *id;
    m.u.id_version.version = version;
    return tc_send_msg(c, &m);
}

int tc_send_get_range(tc_t *c, uint32_t rid, const char *path, uint64_t offset, uint64_t length,
                      uint8_t flags)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_GET_RANGE, .flags = flags, .request_id = rid };
    m.u.path_range.offset = offset;
    m.u.path_range.length = length;
    m.u.path_range.path = str_of(path);
    return tc_send_msg(c, &m);
}

int tc_send_get_id_range(tc_t *c, uint32_t rid, const sdb_id_t *id, uint64_t version,
                         uint64_t offset, uint64_t length, uint8_t flags)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_GET_ID_RANGE, .flags = flags, .request_id = rid };
    m.u.id_range.id = *id;
    m.u.id_range.version = version;
    m.u.id_range.offset = offset;
    m.u.id_range.length = length;
    return tc_send_msg(c, &m);
}

int tc_send_id_path(tc_t *c, uint8_t opcode, uint32_t rid, const sdb_id_t *id, const char *path)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    m.u.id_path.id = *id;
    m.u.id_path.path = str_of(path);
    return tc_send_msg(c, &m);
}

int tc_send_search(tc_t *c, uint32_t rid, const char *prefix, const char *start_after,
                   uint32_t limit, uint8_t delimiter)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_SEARCH, .request_id = rid };
    m.u.search.limit = limit;
    m.u.search.delimiter = delimiter;
    m.u.search.prefix = str_of(prefix);
    m.u.search.start_after = str_of(start_after);
    return tc_send_msg(c, &m);
}

int tc_send_empty(tc_t *c, uint8_t opcode, uint32_t rid)
{
    return tc_send_frame(c, opcode, 0, rid, NULL, 0);
}

int tc_send_put_begin(tc_t *c, uint32_t rid, const char *path, uint64_t size, uint64_t if_version)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_PUT_BEGIN, .request_id = rid };
    m.u.put_begin.size = size;
    m.u.put_begin.if_version = if_version;
    m.u.put_begin.path = str_of(path);
    return tc_send_msg(c, &m);
}

int tc_send_put_data(tc_t *c, uint32_t rid, const void *p, size_t n)
{
    return tc_send_frame(c, SDB_OP_PUT_DATA, 0, rid, p, n);
}

int tc_send_put_end(tc_t *c, uint32_t rid, uint64_t size, uint32_t crc)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_PUT_END, .request_id = rid };
    m.u.put_end.size = size;
    m.u.put_end.crc32 = crc;
    return tc_send_msg(c, &m);
}

int tc_send_put(tc_t *c, uint32_t rid, const char *path, const void *data, size_t len,
                uint64_t if_version)
{
    int rc = tc_send_put_begin(c, rid, path, len, if_version);
    const uint8_t *p = data;
    for (size_t off = 0; !rc && off < len; off += c->chunk)
        rc = tc_send_put_data(c, rid, p + off, len - off < c->chunk ? len - off : c->chunk);
    if (!rc)
        rc = tc_send_put_end(c, rid, len, tc_crc(data, len));
    return rc;
}

/* ---- responses ---- */

static int unexpected(tc_t *c, uint32_t rid, const char *want)
{
    snprintf(c->err, sizeof c->err, "expected %s for request %u, got %s (0x%02x) for request %u%s%.200s",
             want, rid, sdb_proto_opcode_name(c->m.opcode) ? sdb_proto_opcode_name(c->m.opcode) : "?",
             c->m.opcode, c->m.request_id, c->m.opcode == SDB_OP_ERROR ? ": " : "",
             c->m.opcode == SDB_OP_ERROR ? c->msg : "");
    return TC_BAD;
}

/* An ERROR that answers rid: its own, or a connection-level one (request 0,
 * CLOSING: timeout, shutdown...) that ends every pending request. */
static int error_for(const tc_t *c, uint32_t rid)
{
    return c->m.opcode == SDB_OP_ERROR &&
           (c->m.request_id == rid || (c->m.request_id == 0 && (c->m.flags & SDB_FLAG_CLOSING)));
}

int tc_recv(tc_t *c, uint32_t rid, uint8_t opcode)
{
    int rc = tc_read(c);
    if (rc != 1)
        return rc;
    if (error_for(c, rid))
        return c->status;
    if (c->m.request_id != rid || c->m.opcode != opcode)
        return unexpected(c, rid, sdb_proto_opcode_name(opcode));
    if (c->m.flags != 0) {
        snprintf(c->err, sizeof c->err, "response flags 0x%02x on a non-ERROR frame", c->m.flags);
        return TC_BAD;
    }
    return 0;
}

int tc_recv_doc(tc_t *c, uint32_t rid, uint8_t opcode, sdb_docinfo_t *info)
{
    int rc = tc_recv(c, rid, opcode);
    if (rc == 0 && info)
        *info = c->m.u.doc;
    return rc;
}

int tc_recv_get(tc_t *c, uint32_t rid, sdb_docinfo_t *info, tc_sink_fn sink, void *arg)
{
    sdb_docinfo_t h;
    int rc = tc_recv_doc(c, rid, SDB_OP_GET_HEADER, &h);
    if (rc)
        return rc;
    if (info)
        *info = h;
    uint64_t total = 0;
    uint32_t crc = 0;
    for (;;) {
        rc = tc_read(c);
        if (rc != 1)
            return rc;
        if (error_for(c, rid)) {
            snprintf(c->err, sizeof c->err, "ERROR %u after the header, %llu bytes in: %.200s", c->status,
                     (unsigned long long)total, c->msg);
            return c->status;
        }
        if (c->m.request_id != rid)
            return unexpected(c, rid, "DATA/END");
        if (c->m.opcode == SDB_OP_END)
            break;
        if (c->m.opcode != SDB_OP_DATA)
            return unexpected(c, rid, "DATA/END");
        size_t n = c->m.u.raw.len;
        if (n == 0 || n > c->chunk) {
            snprintf(c->err, sizeof c->err, "DATA frame of %zu bytes (chunk_bytes %u)", n, c->chunk);
            return TC_BAD;
        }
        crc = (uint32_t)crc32(crc, c->m.u.raw.ptr, (uInt)n);
        total += n;
        if (total > h.size) {
            snprintf(c->err, sizeof c->err, "more DATA than the header's size %llu",
                     (unsigned long long)h.size);
            return TC_BAD;
        }
        if (sink)
            sink(arg, c->m.u.raw.ptr, n);
    }
    if (total != h.size || crc != h.crc32) {
        snprintf(c->err, sizeof c->err, "GET stream: %llu bytes crc %08x, header says %llu bytes crc %08x",
                 (unsigned long long)total, crc, (unsigned long long)h.size, h.crc32);
        return TC_BAD;
    }
    return 0;
}

int tc_recv_range(tc_t *c, uint32_t rid, sdb_proto_range_header_t *hp, tc_sink_fn sink, void *arg)
{
    int rc = tc_recv(c, rid, SDB_OP_RANGE_HEADER);
    if (rc)
        return rc;
    sdb_proto_range_header_t h = c->m.u.range_header;
    if (hp)
        *hp = h;
    uint64_t total = 0;
    uint32_t crc = 0;
    for (;;) {
        rc = tc_read(c);
        if (rc != 1)
            return rc;
        if (error_for(c, rid)) {
            snprintf(c->err, sizeof c->err, "ERROR %u after the header, %llu bytes in: %.200s", c->status,
                     (unsigned long long)total, c->msg);
            return c->status;
        }
        if (c->m.request_id != rid)
            return unexpected(c, rid, "DATA/END");
        if (c->m.opcode == SDB_OP_END)
            break;
        if (c->m.opcode != SDB_OP_DATA)
            return unexpected(c, rid, "DATA/END");
        size_t n = c->m.u.raw.len;
        if (n == 0 || n > c->chunk) {
            snprintf(c->err, sizeof c->err, "DATA frame of %zu bytes (chunk_bytes %u)", n, c->chunk);
            return TC_BAD;
        }
        crc = (uint32_t)crc32(crc, c->m.u.raw.ptr, (uInt)n);
        total += n;
        if (total > h.length) {
            snprintf(c->err, sizeof c->err, "more DATA than the range's length %llu",
                     (unsigned long long)h.length);
            return TC_BAD;
        }
        if (sink)
            sink(arg, c->m.u.raw.ptr, n);
    }
    if (total != h.length || (h.offset == 0 && h.length == h.doc.size && crc != h.doc.crc32)) {
        snprintf(c->err, sizeof c->err, "range stream: %llu bytes crc %08x, header says %llu of %llu "
                 "bytes, crc %08x", (unsigned long long)total, crc, (unsigned long long)h.length,
                 (unsigned long long)h.doc.size, h.doc.crc32);
        return TC_BAD;
    }
    return 0;
}

void tc_list_free(tc_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->path[i]);
    free(l->path);
    free(l->kind);
    free(l->info);
    memset(l, 0, sizeof *l);
}

static void list_add(tc_list_t *l, const sdb_proto_entry_t *e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->kind = realloc(l->kind, l->cap * sizeof *l->kind);
        l->path = realloc(l->path, l->cap * sizeof *l->path);
        l->info = realloc(l->info, l->cap * sizeof *l->info);
        if (!l->kind || !l->path || !l->info)
            abort();
    }
    l->kind[l->n] = e->kind;
    l->path[l->n] = NULL;
    if (e->kind != SDB_ENTRY_VERSION) {
        l->path[l->n] = malloc(e->path.len + 1);
        if (!l->path[l->n])
            abort();
        memcpy(l->path[l->n], e->path.ptr, e->path.len);
        l->path[l->n][e->path.len] = '\0';
    }
    if (e->kind == SDB_ENTRY_PREFIX)
        memset(&l->info[l->n], 0, sizeof l->info[l->n]);
    else
        l->info[l->n] = e->info;
    l->n++;
}

int tc_recv_list(tc_t *c, uint32_t rid, tc_list_t *out)
{
    memset(out, 0, sizeof *out);
    for (;;) {
        int rc = tc_read(c);
        if (rc != 1)
            return rc;
        if (error_for(c, rid)) {
            if (out->n) {
                snprintf(c->err, sizeof c->err, "ERROR %u after %zu entries", c->status, out->n);
                return TC_BAD;   /* an error replaces the whole listing */
            }
            return c->status;
        }
        if (c->m.request_id != rid)
            return unexpected(c, rid, "ENTRIES/LIST_END");
        if (c->m.opcode == SDB_OP_LIST_END) {
            out->more = c->m.u.list_end.more;
            if (c->m.u.list_end.count != out->n) {
                snprintf(c->err, sizeof c->err, "LIST_END count %u, %zu entries received",
                         c->m.u.list_end.count, out->n);
                return TC_BAD;
            }
            return 0;
        }
        if (c->m.opcode != SDB_OP_ENTRIES)
            return unexpected(c, rid, "ENTRIES/LIST_END");
        out->frames++;
        if (c->fr.hdr.length > out->max_payload)
            out->max_payload = c->fr.hdr.length;
        sdb_proto_entries_iter_t it;
        sdb_proto_entry_t e;
        sdb_proto_entries_iter(&c->m.u.entries, &it);
        unsigned got = 0;
        while ((rc = sdb_proto_entries_next(&it, &e)) == 1) {
            list_add(out, &e);
            got++;
        }
        if (rc < 0 || got != c->m.u.entries.count || got == 0) {
            snprintf(c->err, sizeof c->err, "ENTRIES frame with %u entries, count says %u", got,
                     c->m.u.entries.count);
            return TC_BAD;
        }
    }
}

/* ---- whole requests ---- */

int tc_hello(tc_t *c, const char *token, sdb_proto_hello_ok_t *ok)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_hello(c, rid, 1, 1, token, "tclient/1");
    if (rc)
        return rc;
    rc = tc_recv(c, rid, SDB_OP_HELLO_OK);
    if (rc)
        return rc;
    c->max_frame = c->m.u.hello_ok.max_frame_bytes;
    c->chunk = c->m.u.hello_ok.chunk_bytes;
    sdb_proto_decoder_set_limit(&c->dec, c->max_frame);
    if (ok)
        *ok = c->m.u.hello_ok;
    return 0;
}

int tc_ping(tc_t *c, const void *p, size_t n)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_ping(c, rid, p, n);
    if (!rc)
        rc = tc_recv(c, rid, SDB_OP_PONG);
    if (!rc && (c->m.u.raw.len != n || (n && memcmp(c->m.u.raw.ptr, p, n) != 0))) {
        snprintf(c->err, sizeof c->err, "PONG of %zu bytes differs from PING's %zu", c->m.u.raw.len, n);
        return TC_BAD;
    }
    return rc;
}

int tc_put(tc_t *c, const char *path, const void *data, size_t len, uint64_t if_version,
           sdb_docinfo_t *info)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_put(c, rid, path, data, len, if_version);
    if (!rc)
        rc = tc_recv_doc(c, rid, SDB_OP_DOC, info);
    return rc;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} membuf_t;

static void mem_sink(void *arg, const uint8_t *p, size_t n)
{
    membuf_t *m = arg;
    if (m->len + n > m->cap) {
        m->cap = m->cap ? m->cap : 4096;
        while (m->len + n > m->cap)
            m->cap *= 2;
        m->p = realloc(m->p, m->cap);
        if (!m->p)
            abort();
    }
    memcpy(m->p + m->len, p, n);
    m->len += n;
}

static int get_into(tc_t *c, uint32_t rid, uint8_t **data, size_t *len, sdb_docinfo_t *info)
{
    membuf_t m = { 0 };
    int rc = tc_recv_get(c, rid, info, mem_sink, &m);
    if (rc || !data) {
        free(m.p);
        if (data)
            *data = NULL;
        if (len)
            *len = 0;
        return rc;
    }
    if (!m.p)
        m.p = malloc(1);
    *data = m.p;
    if (len)
        *len = m.len;
    return 0;
}

int tc_get_range(tc_t *c, const char *path, uint64_t offset, uint64_t length, uint8_t **data,
                 size_t *len, sdb_proto_range_header_t *h)
{
    uint32_t rid = ++c->rid;
    membuf_t m = { 0 };
    *data = NULL;
    *len = 0;
    int rc = tc_send_get_range(c, rid, path, offset, length, 0);
    if (!rc)
        rc = tc_recv_range(c, rid, h, mem_sink, &m);
    if (rc) {
        free(m.p);
        return rc;
    }
    *data = m.p ? m.p : malloc(1);
    *len = m.len;
    return 0;
}

int tc_get(tc_t *c, const char *path, uint8_t **data, size_t *len, sdb_docinfo_t *info)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_path(c, SDB_OP_GET, rid, path);
    return rc ? rc : get_into(c, rid, data, len, info);
}

int tc_get_id(tc_t *c, const sdb_id_t *id, uint64_t version, uint8_t **data, size_t *len,
              sdb_docinfo_t *info)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_get_id(c, rid, id, version, 0);
    return rc ? rc : get_into(c, rid, data, len, info);
}

int tc_lookup(tc_t *c, const char *path, sdb_docinfo_t *info)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_path(c, SDB_OP_LOOKUP, rid, path);
    return rc ? rc : tc_recv_doc(c, rid, SDB_OP_DOC, info);
}

int tc_delete(tc_t *c, const char *path)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_path(c, SDB_OP_DELETE, rid, path);
    return rc ? rc : tc_recv(c, rid, SDB_OP_OK);
}

int tc_delete_id(tc_t *c, const sdb_id_t *id)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_id(c, SDB_OP_DELETE_ID, rid, id);
    return rc ? rc : tc_recv(c, rid, SDB_OP_OK);
}

int tc_bind(tc_t *c, const sdb_id_t *id, const char *path)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_id_path(c, SDB_OP_BIND, rid, id, path);
    return rc ? rc : tc_recv(c, rid, SDB_OP_OK);
}

int tc_unbind(tc_t *c, const sdb_id_t *id, const char *path)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_id_path(c, SDB_OP_UNBIND, rid, id, path);
    return rc ? rc : tc_recv(c, rid, SDB_OP_OK);
}

int tc_flush(tc_t *c)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_empty(c, SDB_OP_FLUSH, rid);
    return rc ? rc : tc_recv(c, rid, SDB_OP_OK);
}

int tc_search(tc_t *c, const char *prefix, const char *start_after, uint32_t limit,
              uint8_t delimiter, tc_list_t *out)
{
    uint32_t rid = ++c->rid;
    memset(out, 0, sizeof *out);
    int rc = tc_send_search(c, rid, prefix, start_after, limit, delimiter);
    return rc ? rc : tc_recv_list(c, rid, out);
}

int tc_list_paths(tc_t *c, const sdb_id_t *id, tc_list_t *out)
{
    uint32_t rid = ++c->rid;
    memset(out, 0, sizeof *out);
    int rc = tc_send_id(c, SDB_OP_LIST_PATHS, rid, id);
    return rc ? rc : tc_recv_list(c, rid, out);
}

int tc_list_versions(tc_t *c, const sdb_id_t *id, tc_list_t *out)
{
    uint32_t rid = ++c->rid;
    memset(out, 0, sizeof *out);
    int rc = tc_send_id(c, SDB_OP_LIST_VERSIONS, rid, id);
    return rc ? rc : tc_recv_list(c, rid, out);
}

int tc_info(tc_t *c, const sdb_id_t *id, sdb_docinfo_t *info, char **text)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_id(c, SDB_OP_INFO, rid, id);
    if (!rc)
        rc = tc_recv(c, rid, SDB_OP_INFO_RESULT);
    if (rc)
        return rc;
    if (info)
        *info = c->m.u.info.doc;
    if (text) {
        size_t n = c->m.u.info.text.len;
        *text = malloc(n + 1);
        if (!*text)
            abort();
        if (n)
            memcpy(*text, c->m.u.info.text.ptr, n);
        (*text)[n] = '\0';
    }
    return 0;
}

int tc_stats(tc_t *c, char **json)
{
    uint32_t rid = ++c->rid;
    int rc = tc_send_empty(c, SDB_OP_STATS, rid);
    if (!rc)
        rc = tc_recv(c, rid, SDB_OP_STATS_RESULT);
    if (rc)
        return rc;
    size_t n = c->m.u.raw.len;
    *json = malloc(n + 1);
    if (!*json)
        abort();
    memcpy(*json, c->m.u.raw.ptr, n);
    (*json)[n] = '\0';
    return 0;
}
