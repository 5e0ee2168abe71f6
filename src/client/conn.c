/*
 * conn.c -- the client's connection: error reporting (codes, texts and the
 * thread-local message), frame I/O over a non-blocking socket with poll()
 * timeouts, decoding with the shared codec (streamdb_proto.h), the HELLO
 * handshake of sdbc_connect(), and the fatal-error rule of client_int.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_int.h"

#define RBUF_SIZE (256u * 1024u)

/* ---- Errors ---- */

static _Thread_local char tl_msg[2048];

int client_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof(tl_msg), fmt, ap);
    va_end(ap);
    return err;
}

void client_clear_error(void)
{
    tl_msg[0] = '\0';
}

const char *client_error_text(void)
{
    return tl_msg;
}

const char *sdbc_last_error_message(void)
{
    return tl_msg;
}

const char *sdbc_strerror(int err)
{
    switch (err) {
    case SDB_ECONNECT: return "cannot connect to the server";
    case SDB_ECONNLOST: return "connection to the server lost";
    case SDB_ENORESPONSE: return "the server did not respond in time";
    case SDB_ELOCAL: return "local read or write failed";
    default: return sdb_proto_strerror(err);
    }
}

void sdbc_options_default(sdbc_options_t *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof(*opts));
    opts->connect_timeout_ms = SDBC_DEFAULT_CONNECT_TIMEOUT_MS;
    opts->timeout_ms = SDBC_DEFAULT_TIMEOUT_MS;
}

int client_break(sdbc_t *c, int err)
{
    c->broken = 1;
    return err;
}

int client_check(sdbc_t *c)
{
    if (!c)
        return client_fail(SDB_EINVAL, "no connection handle (NULL)");
    if (c->broken)
        return client_fail(SDB_ECONNLOST, "the connection to %s was closed after an earlier "
                           "error; connect again", c->address);
    return SDB_OK;
}

uint32_t client_next_rid(sdbc_t *c)
{
    if (++c->next_rid == 0)
        c->next_rid = 1;
    return c->next_rid;
}

int client_reserve_wbuf(sdbc_t *c, size_t cap)
{
    if (c->wcap >= cap)
        return SDB_OK;
    uint8_t *p = realloc(c->wbuf, cap);
    if (!p)
        return client_fail(SDB_ENOMEM, "out of memory (%zu bytes for a frame)", cap);
    c->wbuf = p;
    c->wcap = cap;
    return SDB_OK;
}

/* ---- Socket I/O ---- */

/* Waits until the socket is ready for events (invariant 1). */
static int wait_io(sdbc_t *c, short events)
{
    for (;;) {
        struct pollfd p = { .fd = c->fd, .events = events };
        int n = poll(&p, 1, c->timeout_ms);
        if (n > 0)
            return SDB_OK;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return client_break(c, client_fail(SDB_ECONNLOST, "poll on the connection to %s "
                                               "failed: %s", c->address, strerror(errno)));
        if (events & POLLIN)
            return client_break(c, client_fail(SDB_ENORESPONSE, "no answer from %s within %d ms",
                                               c->address, c->timeout_ms));
        return client_break(c, client_fail(SDB_ENORESPONSE, "%s did not accept data within %d ms",
                                           c->address, c->timeout_ms));
    }
}

/* The decoder failed: the byte stream cannot be parsed any more. */
static int bad_stream(sdbc_t *c, int rc, const sdb_proto_frame_t *f)
{
    if (rc == SDB_ETOOLARGE)
        return client_break(c, client_fail(SDB_EPROTO, "%s sent a frame of %u bytes, over the "
                                           "limit of %u", c->address, (unsigned)f->hdr.length,
                                           (unsigned)c->dec.max_payload));
    if (rc == SDB_ENOMEM)
        return client_break(c, client_fail(SDB_ENOMEM, "out of memory receiving a frame"));
    if (c->version == 0) {
        /* Still in the handshake: this is most likely another kind of server.
         * Show the first bytes it sent (the connection's first read starts
         * at rbuf[0]). */
        char shown[64];
        size_t k = 0;
        for (size_t i = 0; i < c->rlen && i < 16 && k + 5 < sizeof(shown); i++) {
            uint8_t b = c->rbuf[i];
            if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\')
                shown[k++] = (char)b;
            else
                k += (size_t)snprintf(shown + k, sizeof(shown) - k, "\\x%02x", b);
        }
        shown[k] = '\0';
        return client_break(c, client_fail(SDB_EPROTO, "%s does not speak the StreamDb protocol "
                                           "(it answered \"%s\")", c->address, shown));
    }
    return client_break(c, client_fail(SDB_EPROTO, "malformed frame from %s (bad magic or "
                                       "reserved byte)", c->address));
}

/* Reads until one frame is complete (returns 1, *f valid until the next
 * call), or, when block is 0, until no more input is available (returns 0). */
static int pump(sdbc_t *c, int block, sdb_proto_frame_t *f)
{
    for (;;) {
        if (c->rpos < c->rlen) {
            size_t used = 0;
            int rc = sdb_proto_decoder_feed(&c->dec, c->rbuf + c->rpos, c->rlen - c->rpos, &used, f);
            c->rpos += used;
            if (rc < 0)
                return bad_stream(c, rc, f);
            if (rc == 1)
                return 1;
            continue;
        }
        c->rpos = c->rlen = 0;
        ssize_t n = recv(c->fd, c->rbuf, c->rcap, 0);
        if (n > 0) {
            c->rlen = (size_t)n;
            continue;
        }
        if (n == 0)
            return client_break(c, client_fail(SDB_ECONNLOST, "%s closed the connection",
                                               c->address));
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!block)
                return 0;
            int rc = wait_io(c, POLLIN);
            if (rc)
                return rc;
            continue;
        }
        return client_break(c, client_fail(SDB_ECONNLOST, "connection to %s lost: %s", c->address,
                                           strerror(errno)));
    }
}

/* Turns a frame into a message or an error (see client_recv_msg). */
static int process(sdbc_t *c, uint32_t rid, const sdb_proto_frame_t *f, sdb_proto_msg_t *m)
{
    int rc = sdb_proto_decode(f, m);
    if (rc < 0 || sdb_proto_opcode_is_request(m->opcode) != 0) {
        const char *name = sdb_proto_opcode_name(f->hdr.opcode);
        if (name)
            return client_break(c, client_fail(SDB_EPROTO, "malformed %s frame from %s", name,
                                               c->address));
        return client_break(c, client_fail(SDB_EPROTO, "unknown frame (opcode 0x%02x) from %s",
                                           (unsigned)f->hdr.opcode, c->address));
    }
    if (m->opcode == SDB_OP_ERROR) {
        int err = sdb_proto_status_to_error(m->u.error.status);
        const sdb_proto_str_t *msg = &m->u.error.message;
        if (msg->len)
            client_fail(err, "%.*s", (int)msg->len, msg->ptr);
        else
            client_fail(err, "%s", sdbc_strerror(err));
        if (m->flags & SDB_FLAG_CLOSING)
            client_break(c, err);
        else if (m->request_id != rid && m->request_id != 0)
            return client_break(c, client_fail(SDB_EPROTO, "%s answered request %u while request "
                                               "%u was expected", c->address,
                                               (unsigned)m->request_id, (unsigned)rid));
        return err;
    }
    if (m->request_id != rid)
        return client_break(c, client_fail(SDB_EPROTO, "%s answered request %u while request %u "
                                           "was expected", c->address, (unsigned)m->request_id,
                                           (unsigned)rid));
    return SDB_OK;
}

int client_recv_msg(sdbc_t *c, uint32_t rid, sdb_proto_msg_t *m)
{
    sdb_proto_frame_t f;
    int rc = pump(c, 1, &f);
    if (rc < 0)
        return rc;
    return process(c, rid, &f, m);
}

int client_poll_msg(sdbc_t *c, uint32_t rid, sdb_proto_msg_t *m, int *got)
{
    sdb_proto_frame_t f;
    *got = 0;
    int rc = pump(c, 0, &f);
    if (rc <= 0)
        return rc;
    *got = 1;
    return process(c, rid, &f, m);
}

int client_unexpected(sdbc_t *c, const sdb_proto_msg_t *m, const char *request)
{
    const char *name = sdb_proto_opcode_name(m->opcode);
    return client_break(c, client_fail(SDB_EPROTO, "%s answered %s with an unexpected %s frame",
                                       c->address, request, name ? name : "unknown"));
}

/* A send failed because the peer closed: it may have said why first (an
 * ERROR flagged CLOSING, such as SHUTTING_DOWN or TIMEOUT).  Returns that
 * error, or SDB_ECONNLOST with the system's reason. */
static int send_failed(sdbc_t *c, int err)
{
    sdb_proto_frame_t f;
    while (pump(c, 0, &f) == 1) {
        sdb_proto_msg_t m;
        if (sdb_proto_decode(&f, &m) == 0 && m.opcode == SDB_OP_ERROR) {
            int rc = process(c, m.request_id, &f, &m);
            return client_break(c, rc);
        }
    }
    return client_break(c, client_fail(SDB_ECONNLOST, "connection to %s lost while sending: %s",
                                       c->address, strerror(err)));
}

int client_send_raw(sdbc_t *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_io(c, POLLOUT);
            if (rc)
                return rc;
            continue;
        }
        return send_failed(c, n < 0 ? errno : EPIPE);
    }
    return SDB_OK;
}

int client_send_msg(sdbc_t *c, const sdb_proto_msg_t *msg)
{
    size_t size = 0, len = 0;
    int rc = sdb_proto_encoded_size(msg, &size);
    if (rc == 0 && size - SDB_PROTO_HEADER_SIZE > c->max_frame)
        rc = SDB_ETOOLARGE;
    if (rc < 0)
        return client_fail(rc == SDB_ETOOLARGE ? SDB_ETOOLARGE : SDB_EINVAL,
                           "cannot encode the %s request: %s", sdb_proto_opcode_name(msg->opcode),
                           rc == SDB_ETOOLARGE ? "larger than the server's frame limit"
                                               : "a field is too long or invalid");
    if ((rc = client_reserve_wbuf(c, size)) < 0)
        return rc;
    if ((rc = sdb_proto_encode(msg, c->wbuf, c->wcap, &len)) < 0)
        return client_fail(SDB_EINVAL, "cannot encode the %s request: %s",
                           sdb_proto_opcode_name(msg->opcode), sdbc_strerror(rc));
    return client_send_raw(c, c->wbuf, len);
}

/* ---- Session ---- */

/* Sends HELLO and reads HELLO_OK, within the connect timeout. */
static int handshake(sdbc_t *c, const char *token, const char *name)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_HELLO;
    m.request_id = client_next_rid(c);
    m.u.hello.min_version = SDB_PROTO_VERSION_MIN;
    m.u.hello.max_version = SDB_PROTO_VERSION;
    m.u.hello.token.ptr = token;
    m.u.hello.token.len = strlen(token);
    m.u.hello.client.ptr = name;
    m.u.hello.client.len = strlen(name) > SDB_PROTO_MAX_NAME ? SDB_PROTO_MAX_NAME : strlen(name);
    int rc = client_send_msg(c, &m);
    if (rc < 0)
        return rc;
    rc = client_recv_msg(c, m.request_id, &m);
    if (rc < 0) {
        char said[1200];
        snprintf(said, sizeof(said), "%.*s", (int)sizeof(said) - 1, client_error_text());
        switch (rc) {
        case SDB_EAUTH:
            if (!token[0])
                return client_fail(rc, "authentication failed at %s: the server requires an "
                                   "auth token and none was given", c->address);
            return client_fail(rc, "authentication failed at %s: the server rejected the token "
                               "(%s)", c->address, said);
        case SDB_EVERSION:
            return client_fail(rc, "%s speaks no protocol version in common with this client "
                               "(which speaks %u..%u): %s", c->address,
                               (unsigned)SDB_PROTO_VERSION_MIN, (unsigned)SDB_PROTO_VERSION, said);
        case SDB_EPROTO:
            return rc;
        case SDB_ECONNLOST:
        case SDB_ENORESPONSE:
            return client_fail(rc, "%s during the handshake", said);
        default:
            return client_fail(rc, "%s refused the session: %s", c->address, said);
        }
    }
    if (m.opcode != SDB_OP_HELLO_OK)
        return client_unexpected(c, &m, "HELLO");
    const sdb_proto_hello_ok_t *h = &m.u.hello_ok;
    if (h->version < SDB_PROTO_VERSION_MIN || h->version > SDB_PROTO_VERSION)
        return client_break(c, client_fail(SDB_EVERSION, "%s chose protocol version %u; this "
                                           "client speaks %u..%u", c->address, (unsigned)h->version,
                                           (unsigned)SDB_PROTO_VERSION_MIN,
                                           (unsigned)SDB_PROTO_VERSION));
    if (h->max_frame_bytes < SDB_PROTO_MIN_FRAME || h->max_frame_bytes > SDB_PROTO_MAX_FRAME ||
        h->chunk_bytes < SDB_PROTO_MIN_CHUNK || h->chunk_bytes > h->max_frame_bytes)
        return client_break(c, client_fail(SDB_EPROTO, "%s announced impossible limits "
                                           "(max_frame_bytes %u, chunk_bytes %u)", c->address,
                                           (unsigned)h->max_frame_bytes,
                                           (unsigned)h->chunk_bytes));
    c->version = h->version;
    c->max_frame = h->max_frame_bytes;
    c->chunk = h->chunk_bytes;
    c->max_doc = h->max_document_bytes;
    c->max_inflight = h->max_inflight;
    size_t n = h->server.len > SDB_PROTO_MAX_NAME ? SDB_PROTO_MAX_NAME : h->server.len;
    for (size_t i = 0; i < n; i++) {
        char ch = h->server.ptr[i];
        c->server_name[i] = ch >= 0x20 && ch != 0x7f ? ch : '?';
    }
    c->server_name[n] = '\0';
    sdb_proto_decoder_set_limit(&c->dec, c->max_frame);
    return client_reserve_wbuf(c, SDB_PROTO_HEADER_SIZE + c->chunk);
}

int sdbc_connect(const char *addr, const sdbc_options_t *opts, sdbc_t **out)
{
    client_clear_error();
    if (!out)
        return client_fail(SDB_EINVAL, "no output handle (NULL)");
    *out = NULL;
    sdbc_options_t o;
    sdbc_options_default(&o);
    if (opts)
        o = *opts;
    if (o.connect_timeout_ms == 0)
        o.connect_timeout_ms = SDBC_DEFAULT_CONNECT_TIMEOUT_MS;
    if (o.timeout_ms == 0)
        o.timeout_ms = SDBC_DEFAULT_TIMEOUT_MS;
    const char *token = o.token ? o.token : "";
    if (strlen(token) > SDB_PROTO_MAX_TOKEN)
        return client_fail(SDB_EINVAL, "the auth token is longer than %u bytes",
                           (unsigned)SDB_PROTO_MAX_TOKEN);
    client_addr_t a;
    int rc = client_parse_address(addr, &a);
    if (rc < 0)
        return rc;
    sdbc_t *c = calloc(1, sizeof(*c));
    if (!c)
        return client_fail(SDB_ENOMEM, "out of memory");
    c->fd = -1;
    client_format_address(&a, c->address, sizeof(c->address));
    sdb_proto_decoder_init(&c->dec, SDB_PROTO_MIN_FRAME);
    c->max_frame = SDB_PROTO_MIN_FRAME;
    c->rcap = RBUF_SIZE;
    c->rbuf = malloc(c->rcap);
    if (!c->rbuf || client_reserve_wbuf(c, SDB_PROTO_HEADER_SIZE + SDB_PROTO_MIN_FRAME) < 0) {
        rc = client_fail(SDB_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = client_open_socket(&a, o.connect_timeout_ms, &c->fd)) < 0)
        goto fail;
    c->timeout_ms = o.connect_timeout_ms;
    char name[64];
    snprintf(name, sizeof(name), "libstreamdb/%s", SDB_VERSION_STRING);
    if ((rc = handshake(c, token, o.client_name ? o.client_name : name)) < 0)
        goto fail;
    c->timeout_ms = o.timeout_ms;
    *out = c;
    return SDB_OK;
fail:
    sdbc_close(c);
    return rc;
}

void sdbc_close(sdbc_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    sdb_proto_decoder_free(&c->dec);
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}

int sdbc_is_broken(const sdbc_t *c)
{
    return c ? c->broken : 1;
}

void sdbc_server_info(const sdbc_t *c, sdbc_server_info_t *out)
{
    if (!c || !out)
        return;
    out->server_name = c->server_name;
    out->address = c->address;
    out->protocol_version = c->version;
    out->max_frame_bytes = c->max_frame;
    out->chunk_bytes = c->chunk;
    out->max_document_bytes = c->max_doc;
    out->max_inflight = c->max_inflight;
}

void sdbc_set_quick(sdbc_t *c, int enabled)
{
    if (c)
        c->quick = enabled != 0;
}
