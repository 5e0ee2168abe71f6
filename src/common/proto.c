/*
 * proto.c -- the StreamDb wire protocol codec (see include/streamdb_proto.h
 * and proto/PROTOCOL.md), shared by streamdbd and the client library.
 *
 * Pure functions over byte buffers: the opcode/status tables expanded from
 * proto/opcodes.def, the 12-byte frame header, an incremental frame decoder
 * that accepts input split at any byte, and a payload encoder/decoder for
 * every message layout.
 *
 * Notes on the design of the decoder:
 *   1. A header's length is checked against the limit as soon as the 12
 *      header bytes are in, before any payload byte is buffered or any
 *      memory allocated.  A decoder never holds more than one payload.
 *   2. Framing errors are sticky: after one, the byte stream has no known
 *      frame boundary, so every later call returns the same error.
 *   3. A frame that lies wholly inside one call's input is yielded in place
 *      (no copy); otherwise its payload is gathered in the decoder's buffer.
 *   4. Payload readers are bounded: every read goes through r_take(), which
 *      refuses to pass the end of the payload, and a decode succeeds only
 *      when the layout consumed the payload exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "streamdb_proto.h"

/* ---- Tables ------------------------------------------------------------- */

#define DIR_REQ 1
#define DIR_RESP 0

struct op_info {
    const char *name;
    const char *desc;
    uint8_t known;
    uint8_t is_request;
    uint8_t body;
};

/* Indexed by opcode.  A value listed twice in opcodes.def is a compile error
 * (-Woverride-init, part of -Wextra). */
static const struct op_info op_table[256] = {
#define SDB_OPCODE(name, value, dir, body, description) \
    [value] = { #name, description, 1, DIR_##dir, SDB_BODY_##body },
#include "opcodes.def"
};

/* Requests use 0x01..0x7F and responses 0x80..0xFF: checked per entry. */
#define SDB_OPCODE(name, value, dir, body, description) \
    _Static_assert((value) > 0 && (value) <= 0xFF && ((value) < 0x80) == DIR_##dir, \
                   "opcode " #name ": value out of its direction's range");
#include "opcodes.def"

#define SDB_STATUS(name, value, error, description) \
    _Static_assert((value) >= 0 && (value) <= 0xFFFF && (error) <= 0, \
                   "status " #name ": bad value or error code");
#include "opcodes.def"

const char *sdb_proto_opcode_name(unsigned opcode)
{
    return opcode < 256 && op_table[opcode].known ? op_table[opcode].name : NULL;
}

const char *sdb_proto_opcode_desc(unsigned opcode)
{
    return opcode < 256 && op_table[opcode].known ? op_table[opcode].desc : NULL;
}

int sdb_proto_opcode_body(unsigned opcode)
{
    return opcode < 256 && op_table[opcode].known ? op_table[opcode].body : SDB_EOPCODE;
}

int sdb_proto_opcode_is_request(unsigned opcode)
{
    return opcode < 256 && op_table[opcode].known ? op_table[opcode].is_request : SDB_EOPCODE;
}

const char *sdb_proto_status_name(unsigned status)
{
    switch (status) {
#define SDB_STATUS(name, value, error, description) case value: return #name;
#include "opcodes.def"
    default: return NULL;
    }
}

const char *sdb_proto_status_desc(unsigned status)
{
    switch (status) {
#define SDB_STATUS(name, value, error, description) case value: return description;
#include "opcodes.def"
    default: return NULL;
    }
}

/* The two switches below make the mapping one to one at compile time: a
 * status value or an error code listed twice is a duplicate case label. */
int sdb_proto_status_to_error(unsigned status)
{
    switch (status) {
#define SDB_STATUS(name, value, error, description) case value: return error;
#include "opcodes.def"
    default: return SDB_EINTERNAL;
    }
}

/* Returns 1 and the status when err is listed in opcodes.def, else 0. */
static int error_status(int err, unsigned *status)
{
    switch (err) {
#define SDB_STATUS(name, value, error, description) case error: *status = value; return 1;
#include "opcodes.def"
    default: return 0;
    }
}

unsigned sdb_proto_status_from_error(int err)
{
    unsigned st;
    if (err > 0)
        return SDB_STATUS_OK;
    return error_status(err, &st) ? st : SDB_STATUS_INTERNAL;
}

const char *sdb_proto_strerror(int err)
{
    unsigned st;
    return error_status(err, &st) ? sdb_proto_status_desc(st) : "unknown error";
}

int sdb_proto_negotiate(unsigned min_version, unsigned max_version, uint16_t *out)
{
    unsigned lo, hi;
    if (!out)
        return SDB_EINVAL;
    lo = min_version > SDB_PROTO_VERSION_MIN ? min_version : SDB_PROTO_VERSION_MIN;
    hi = max_version < SDB_PROTO_VERSION ? max_version : SDB_PROTO_VERSION;
    if (min_version > max_version || lo > hi)
        return SDB_EVERSION;
    *out = (uint16_t)hi;
    return SDB_OK;
}

/* ---- Little-endian primitives ------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* Two's complement without implementation-defined conversions. */
static uint64_t i64_to_u64(int64_t v)
{
    return (uint64_t)v;
}

static int64_t u64_to_i64(uint64_t v)
{
    return v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

/* ---- Header ------------------------------------------------------------- */

void sdb_proto_header_encode(uint8_t out[SDB_PROTO_HEADER_SIZE], const sdb_proto_header_t *h)
{
    out[0] = SDB_PROTO_MAGIC;
    out[1] = h->opcode;
    out[2] = h->flags;
    out[3] = 0;
    put32(out + 4, h->length);
    put32(out + 8, h->request_id);
}

int sdb_proto_header_decode(const uint8_t in[SDB_PROTO_HEADER_SIZE], uint32_t max_payload,
                            sdb_proto_header_t *h)
{
    if (!in || !h)
        return SDB_EINVAL;
    h->opcode = in[1];
    h->flags = in[2];
    h->length = get32(in + 4);
    h->request_id = get32(in + 8);
    if (in[0] != SDB_PROTO_MAGIC || in[3] != 0)
        return SDB_EPROTO;
    if (max_payload > SDB_PROTO_MAX_FRAME)
        max_payload = SDB_PROTO_MAX_FRAME;
    if (h->length > max_payload)
        return SDB_ETOOLARGE;
    return SDB_OK;
}

/* ---- Incremental decoder ------------------------------------------------ */

void sdb_proto_decoder_init(sdb_proto_decoder_t *d, uint32_t max_payload)
{
    memset(d, 0, sizeof(*d));
    sdb_proto_decoder_set_limit(d, max_payload);
}

void sdb_proto_decoder_set_limit(sdb_proto_decoder_t *d, uint32_t max_payload)
{
    d->max_payload = max_payload > SDB_PROTO_MAX_FRAME ? SDB_PROTO_MAX_FRAME : max_payload;
}

void sdb_proto_decoder_free(sdb_proto_decoder_t *d)
{
    if (!d)
        return;
    free(d->buf);
    d->buf = NULL;
    d->cap = d->have = 0;
}

int sdb_proto_decoder_in_frame(const sdb_proto_decoder_t *d)
{
    return d->err == 0 && d->hdr_have > 0;
}

/* Makes room for the current frame's payload (invariant 1: its length has
 * already passed the limit check). */
static int decoder_reserve(sdb_proto_decoder_t *d, size_t need)
{
    if (d->cap >= need)
        return SDB_OK;
    free(d->buf);
    d->cap = 0;
    d->buf = malloc(need);
    if (!d->buf)
        return SDB_ENOMEM;
    d->cap = need;
    return SDB_OK;
}

int sdb_proto_decoder_feed(sdb_proto_decoder_t *d, const void *data, size_t len,
                           size_t *used, sdb_proto_frame_t *out)
{
    const uint8_t *in = data;
    size_t n = 0, take;
    int rc;

    if (!d || !used || !out || (!data && len))
        return SDB_EINVAL;
    *used = 0;
    if (d->err)
        return d->err;
    if (d->hdr_have == 0 && d->cap > SDB_PROTO_DECODER_KEEP) {
        /* Between frames: the last payload is no longer in use. */
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
    }

    if (d->hdr_have < SDB_PROTO_HEADER_SIZE) {
        take = SDB_PROTO_HEADER_SIZE - d->hdr_have;
        if (take > len)
            take = len;
        if (take)
            memcpy(d->hdr + d->hdr_have, in, take);
        d->hdr_have += take;
        n = take;
        if (d->hdr_have < SDB_PROTO_HEADER_SIZE) {
            *used = n;
            return 0;
        }
        rc = sdb_proto_header_decode(d->hdr, d->max_payload, &d->cur);
        if (rc < 0) {
            d->err = rc;
            out->hdr = d->cur;
            out->payload = NULL;
            *used = n;
            return rc;
        }
        d->have = 0;
        if (len - n >= d->cur.length) {
            /* Invariant 3: the whole payload is in this input; no copy. */
            out->hdr = d->cur;
            out->payload = d->cur.length ? in + n : d->hdr;
            n += d->cur.length;
            d->hdr_have = 0;
            *used = n;
            return 1;
        }
        rc = decoder_reserve(d, d->cur.length);
        if (rc < 0) {
            d->err = rc;
            *used = n;
            return rc;
        }
    }

    take = d->cur.length - d->have;
    if (take > len - n)
        take = len - n;
    if (take)
        memcpy(d->buf + d->have, in + n, take);
    d->have += take;
    n += take;
    *used = n;
    if (d->have < d->cur.length)
        return 0;
    out->hdr = d->cur;
    out->payload = d->buf;
    d->hdr_have = 0;
    d->have = 0;
    return 1;
}

/* ---- Bounded payload reader --------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t left;
    int bad;
} reader_t;

/* Returns the next n bytes, or NULL (and marks the reader bad) when fewer
 * remain.  Invariant 4: the only way the decoders touch payload bytes. */
static const uint8_t *r_take(reader_t *r, size_t n)
{
    const uint8_t *q;
    if (r->bad || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    q = r->p;
    r->p += n;
    r->left -= n;
    return q;
}

static uint8_t r_u8(reader_t *r)
{
    const uint8_t *q = r_take(r, 1);
    return q ? q[0] : 0;
}

static uint16_t r_u16(reader_t *r)
{
    const uint8_t *q = r_take(r, 2);
    return q ? get16(q) : 0;
}

static uint32_t r_u32(reader_t *r)
{
    const uint8_t *q = r_take(r, 4);
    return q ? get32(q) : 0;
}

static uint64_t r_u64(reader_t *r)
{
    const uint8_t *q = r_take(r, 8);
    return q ? get64(q) : 0;
}

static sdb_proto_str_t r_str(reader_t *r, size_t n)
{
    sdb_proto_str_t s = { NULL, 0 };
    const uint8_t *q = r_take(r, n);
    if (q) {
        s.ptr = (const char *)q;
        s.len = n;
    }
    return s;
}

static sdb_proto_str_t r_str16(reader_t *r)
{
    uint16_t n = r_u16(r);
    return r_str(r, n);
}

static sdb_proto_str_t r_str32(reader_t *r)
{
    uint32_t n = r_u32(r);
    return r_str(r, n);
}

static void r_id(reader_t *r, sdb_id_t *id)
{
    const uint8_t *q = r_take(r, SDB_PROTO_ID_SIZE);
    if (q)
        memcpy(id->b, q, SDB_PROTO_ID_SIZE);
    else
        memset(id->b, 0, SDB_PROTO_ID_SIZE);
}

static void r_docinfo(reader_t *r, sdb_docinfo_t *d)
{
    const uint8_t *q = r_take(r, SDB_PROTO_DOCINFO_SIZE);
    if (q)
        sdb_proto_docinfo_decode(q, d);
    else
        memset(d, 0, sizeof(*d));
}

static int r_hello_magic(reader_t *r)
{
    const uint8_t *q = r_take(r, 4);
    return q && memcmp(q, SDB_PROTO_HELLO_MAGIC, 4) == 0;
}

/* ---- Bounded payload writer --------------------------------------------- */

/* Writes while there is room and always counts, so that one pass computes
 * the size (buf NULL, cap 0) and another writes. */
typedef struct {
    uint8_t *p;
    size_t cap, len;
    int err;
} writer_t;

static void w_bytes(writer_t *w, const void *src, size_t n)
{
    if (n && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void w_u8(writer_t *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_u16(writer_t *w, uint16_t v)
{
    uint8_t b[2];
    put16(b, v);
    w_bytes(w, b, 2);
}

static void w_u32(writer_t *w, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    w_bytes(w, b, 4);
}

static void w_u64(writer_t *w, uint64_t v)
{
    uint8_t b[8];
    put64(b, v);
    w_bytes(w, b, 8);
}

static void w_str(writer_t *w, const void *ptr, size_t len, size_t max)
{
    if (len > max || (!ptr && len)) {
        w->err = SDB_EINVAL;
        return;
    }
    if (max == 0xFFFF)
        w_u16(w, (uint16_t)len);
    else
        w_u32(w, (uint32_t)len);
    w_bytes(w, ptr, len);
}

static void w_str16(writer_t *w, const sdb_proto_str_t *s)
{
    w_str(w, s->ptr, s->len, 0xFFFF);
}

static void w_docinfo(writer_t *w, const sdb_docinfo_t *d)
{
    uint8_t b[SDB_PROTO_DOCINFO_SIZE];
    sdb_proto_docinfo_encode(b, d);
    w_bytes(w, b, sizeof(b));
}

/* ---- Docinfo and entries ------------------------------------------------ */

void sdb_proto_docinfo_encode(uint8_t out[SDB_PROTO_DOCINFO_SIZE], const sdb_docinfo_t *d)
{
    memcpy(out, d->id.b, SDB_PROTO_ID_SIZE);
    put64(out + 16, d->version);
    put64(out + 24, d->size);
    put32(out + 32, d->crc32);
    put64(out + 36, i64_to_u64(d->created_ms));
    put64(out + 44, i64_to_u64(d->modified_ms));
}

void sdb_proto_docinfo_decode(const uint8_t in[SDB_PROTO_DOCINFO_SIZE], sdb_docinfo_t *d)
{
    memset(d, 0, sizeof(*d));
    memcpy(d->id.b, in, SDB_PROTO_ID_SIZE);
    d->version = get64(in + 16);
    d->size = get64(in + 24);
    d->crc32 = get32(in + 32);
    d->created_ms = u64_to_i64(get64(in + 36));
    d->modified_ms = u64_to_i64(get64(in + 44));
}

size_t sdb_proto_entry_size(const sdb_proto_entry_t *e)
{
    switch (e->kind) {
    case SDB_ENTRY_DOC: return 1 + 2 + e->path.len + SDB_PROTO_DOCINFO_SIZE;
    case SDB_ENTRY_PREFIX: return 1 + 2 + e->path.len;
    case SDB_ENTRY_VERSION: return 1 + SDB_PROTO_DOCINFO_SIZE;
    default: return 0;
    }
}

static int read_entry(reader_t *r, sdb_proto_entry_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = r_u8(r);
    switch (out->kind) {
    case SDB_ENTRY_DOC:
        out->path = r_str16(r);
        r_docinfo(r, &out->info);
        break;
    case SDB_ENTRY_PREFIX:
        out->path = r_str16(r);
        break;
    case SDB_ENTRY_VERSION:
        r_docinfo(r, &out->info);
        break;
    default:
        r->bad = 1;
        break;
    }
    return r->bad ? SDB_EPROTO : SDB_OK;
}

void sdb_proto_entries_iter(const sdb_proto_entries_t *e, sdb_proto_entries_iter_t *it)
{
    it->p = e->data;
    it->left = e->data ? e->len : 0;
    it->remaining = e->count;
}

int sdb_proto_entries_next(sdb_proto_entries_iter_t *it, sdb_proto_entry_t *out)
{
    reader_t r = { it->p, it->left, 0 };
    if (it->remaining == 0)
        return 0;
    if (read_entry(&r, out) < 0) {
        it->remaining = 0;
        return SDB_EPROTO;
    }
    it->p = r.p;
    it->left = r.left;
    it->remaining--;
    return 1;
}

int sdb_proto_entries_begin(sdb_proto_entries_builder_t *b, void *buf, size_t cap)
{
    if (!b || !buf || cap < SDB_PROTO_HEADER_SIZE + 2)
        return SDB_EINVAL;
    b->buf = buf;
    b->cap = cap;
    b->len = SDB_PROTO_HEADER_SIZE + 2;
    b->count = 0;
    return SDB_OK;
}

int sdb_proto_entries_add(sdb_proto_entries_builder_t *b, const sdb_proto_entry_t *e)
{
    writer_t w;
    size_t size;
    if (!b || !e || e->kind > SDB_ENTRY_VERSION)
        return SDB_EINVAL;
    if (e->kind != SDB_ENTRY_VERSION && (e->path.len > 0xFFFF || (!e->path.ptr && e->path.len)))
        return SDB_EINVAL;
    size = sdb_proto_entry_size(e);
    if (b->count == 0xFFFF || size > b->cap - b->len ||
        b->len - SDB_PROTO_HEADER_SIZE + size > SDB_PROTO_MAX_FRAME)
        return SDB_ETOOLARGE;
    w.p = b->buf + b->len;
    w.cap = size;
    w.len = 0;
    w.err = 0;
    w_u8(&w, e->kind);
    if (e->kind != SDB_ENTRY_VERSION)
        w_str16(&w, &e->path);
    if (e->kind != SDB_ENTRY_PREFIX)
        w_docinfo(&w, &e->info);
    b->len += size;
    b->count++;
    return SDB_OK;
}

size_t sdb_proto_entries_finish(sdb_proto_entries_builder_t *b, uint32_t request_id)
{
    sdb_proto_header_t h = { SDB_OP_ENTRIES, 0, (uint32_t)(b->len - SDB_PROTO_HEADER_SIZE),
                             request_id };
    sdb_proto_header_encode(b->buf, &h);
    put16(b->buf + SDB_PROTO_HEADER_SIZE, b->count);
    return b->len;
}

/* ---- Batch items -------------------------------------------------------- */

size_t sdb_proto_batch_item_size(const sdb_proto_batch_item_t *it)
{
    size_t n = 1 + 8 + 2 + it->path.len;
    switch (it->kind) {
    case SDB_BATCH_ITEM_PUT: return n + 4 + it->data.len;
    case SDB_BATCH_ITEM_DELETE: return n;
    case SDB_BATCH_ITEM_BIND: case SDB_BATCH_ITEM_UNBIND: return n + SDB_PROTO_ID_SIZE;
    default: return 0;
    }
}

int sdb_proto_batch_item_encode(const sdb_proto_batch_item_t *it, void *out, size_t cap,
                                size_t *len)
{
    size_t n;
    writer_t w;
    if (!it || !len || (!out && cap))
        return SDB_EINVAL;
    n = sdb_proto_batch_item_size(it);
    if (n == 0 || it->path.len > 0xFFFF || (!it->path.ptr && it->path.len) ||
        (it->kind == SDB_BATCH_ITEM_PUT && (it->data.len > 0xFFFFFFFFu ||
                                            (!it->data.ptr && it->data.len))))
        return SDB_EINVAL;
    if (n > cap)
        return SDB_ETOOLARGE;
    w.p = out;
    w.cap = cap;
    w.len = 0;
    w.err = 0;
    w_u8(&w, it->kind);
    w_u64(&w, it->if_version);
    if (it->kind == SDB_BATCH_ITEM_BIND || it->kind == SDB_BATCH_ITEM_UNBIND)
        w_bytes(&w, it->id.b, SDB_PROTO_ID_SIZE);
    w_str16(&w, &it->path);
    if (it->kind == SDB_BATCH_ITEM_PUT)
        w_str(&w, it->data.ptr, it->data.len, 0xFFFFFFFFu);
    *len = w.len;
    return w.err;
}

static int read_batch_item(reader_t *r, sdb_proto_batch_item_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = r_u8(r);
    out->if_version = r_u64(r);
    switch (out->kind) {
    case SDB_BATCH_ITEM_BIND:
    case SDB_BATCH_ITEM_UNBIND:
        r_id(r, &out->id);
        /* fall through */
    case SDB_BATCH_ITEM_DELETE:
        out->path = r_str16(r);
        break;
    case SDB_BATCH_ITEM_PUT: {
        out->path = r_str16(r);
        sdb_proto_str_t d = r_str32(r);
        out->data.ptr = (const uint8_t *)d.ptr;
        out->data.len = d.len;
        break;
    }
    default:
        r->bad = 1;
        break;
    }
    return r->bad ? SDB_EPROTO : SDB_OK;
}

void sdb_proto_batch_iter(const sdb_proto_batch_t *b, sdb_proto_batch_iter_t *it)
{
    it->p = b->data;
    it->left = b->data ? b->len : 0;
    it->remaining = b->count;
}

int sdb_proto_batch_next(sdb_proto_batch_iter_t *it, sdb_proto_batch_item_t *out)
{
    reader_t r;
    if (it->remaining == 0)
        return 0;
    r.p = it->p;
    r.left = it->left;
    r.bad = 0;
    if (read_batch_item(&r, out) < 0) {
        it->remaining = 0;
        return SDB_EPROTO;
    }
    it->p = r.p;
    it->left = r.left;
    it->remaining--;
    return 1;
}

/* ---- Messages ----------------------------------------------------------- */

int sdb_proto_decode(const sdb_proto_frame_t *f, sdb_proto_msg_t *out)
{
    reader_t r;
    int body, trailing_ok = 0;

    if (!f || !out || (!f->payload && f->hdr.length))
        return SDB_EINVAL;
    memset(out, 0, sizeof(*out));
    out->opcode = f->hdr.opcode;
    out->flags = f->hdr.flags;
    out->request_id = f->hdr.request_id;
    body = sdb_proto_opcode_body(f->hdr.opcode);
    if (body < 0)
        return SDB_EOPCODE;
    if (op_table[f->hdr.opcode].is_request && (f->hdr.flags & ~SDB_FLAG_REQUEST_MASK))
        return SDB_EINVAL;

    r.p = f->payload;
    r.left = f->hdr.length;
    r.bad = 0;
    switch (body) {
    case SDB_BODY_EMPTY:
        break;
    case SDB_BODY_RAW:
        out->u.raw.ptr = r_take(&r, r.left);
        out->u.raw.len = f->hdr.length;
        break;
    case SDB_BODY_HELLO:
        if (!r_hello_magic(&r))
            return SDB_EPROTO;
        out->u.hello.min_version = r_u16(&r);
        out->u.hello.max_version = r_u16(&r);
        out->u.hello.token = r_str16(&r);
        out->u.hello.client = r_str16(&r);
        trailing_ok = 1;
        break;
    case SDB_BODY_HELLO_OK:
        if (!r_hello_magic(&r))
            return SDB_EPROTO;
        out->u.hello_ok.version = r_u16(&r);
        out->u.hello_ok.max_frame_bytes = r_u32(&r);
        out->u.hello_ok.chunk_bytes = r_u32(&r);
        out->u.hello_ok.max_document_bytes = r_u64(&r);
        out->u.hello_ok.max_inflight = r_u32(&r);
        out->u.hello_ok.server = r_str16(&r);
        trailing_ok = 1;
        break;
    case SDB_BODY_PUT_BEGIN:
        out->u.put_begin.size = r_u64(&r);
        out->u.put_begin.if_version = r_u64(&r);
        out->u.put_begin.path = r_str16(&r);
        break;
    case SDB_BODY_PUT_END:
        out->u.put_end.size = r_u64(&r);
        out->u.put_end.crc32 = r_u32(&r);
        break;
    case SDB_BODY_PATH:
        out->u.path = r_str16(&r);
        break;
    case SDB_BODY_ID:
        r_id(&r, &out->u.id);
        break;
    case SDB_BODY_ID_VERSION:
        r_id(&r, &out->u.id_version.id);
        out->u.id_version.version = r_u64(&r);
        break;
    case SDB_BODY_ID_PATH:
        r_id(&r, &out->u.id_path.id);
        out->u.id_path.path = r_str16(&r);
        break;
    case SDB_BODY_SEARCH:
        out->u.search.limit = r_u32(&r);
        out->u.search.delimiter = r_u8(&r);
        out->u.search.prefix = r_str16(&r);
        out->u.search.start_after = r_str16(&r);
        break;
    case SDB_BODY_ERROR:
        out->u.error.status = r_u16(&r);
        out->u.error.message = r_str16(&r);
        if (!r.bad && out->u.error.status == SDB_STATUS_OK)
            return SDB_EPROTO;
        break;
    case SDB_BODY_DOCINFO:
        r_docinfo(&r, &out->u.doc);
        break;
    case SDB_BODY_ENTRIES: {
        sdb_proto_entry_t e;
        unsigned i;
        out->u.entries.count = r_u16(&r);
        out->u.entries.data = r.p;
        out->u.entries.len = r.left;
        for (i = 0; i < out->u.entries.count && !r.bad; i++)
            read_entry(&r, &e);
        break;
    }
    case SDB_BODY_LIST_END:
        out->u.list_end.count = r_u32(&r);
        out->u.list_end.more = r_u8(&r);
        if (out->u.list_end.more > 1)
            return SDB_EPROTO;
        break;
    case SDB_BODY_INFO:
        r_docinfo(&r, &out->u.info.doc);
        out->u.info.text = r_str32(&r);
        break;
    case SDB_BODY_PATH_RANGE:
        out->u.path_range.offset = r_u64(&r);
        out->u.path_range.length = r_u64(&r);
        out->u.path_range.path = r_str16(&r);
        break;
    case SDB_BODY_ID_RANGE:
        r_id(&r, &out->u.id_range.id);
        out->u.id_range.version = r_u64(&r);
        out->u.id_range.offset = r_u64(&r);
        out->u.id_range.length = r_u64(&r);
        break;
    case SDB_BODY_RANGE_HEADER: {
        const sdb_proto_range_header_t *h = &out->u.range_header;
        r_docinfo(&r, &out->u.range_header.doc);
        out->u.range_header.offset = r_u64(&r);
        out->u.range_header.length = r_u64(&r);
        if (!r.bad && (h->offset > h->doc.size || h->length > h->doc.size - h->offset))
            return SDB_EPROTO;
        break;
    }
    case SDB_BODY_BATCH: {
        sdb_proto_batch_item_t it;
        uint32_t i;
        out->u.batch.count = r_u32(&r);
        out->u.batch.data = r.p;
        out->u.batch.len = r.left;
        for (i = 0; i < out->u.batch.count && !r.bad; i++)
            read_batch_item(&r, &it);
        break;
    }
    case SDB_BODY_BATCH_RESULT:
        out->u.batch_result.count = r_u32(&r);
        out->u.batch_result.data = r.p;
        if (!r.bad && r.left / SDB_PROTO_DOCINFO_SIZE < out->u.batch_result.count)
            return SDB_EPROTO;
        if (!r.bad)
            r_take(&r, (size_t)out->u.batch_result.count * SDB_PROTO_DOCINFO_SIZE);
        break;
    case SDB_BODY_BATCH_FAILED:
        out->u.batch_failed.item = r_u32(&r);
        out->u.batch_failed.status = r_u16(&r);
        out->u.batch_failed.message = r_str16(&r);
        if (!r.bad && out->u.batch_failed.status == SDB_STATUS_OK)
            return SDB_EPROTO;
        break;
    default:
        return SDB_EOPCODE;
    }
    if (r.bad || (r.left != 0 && !trailing_ok))
        return SDB_EPROTO;
    return SDB_OK;
}

/* Writes msg's payload through w (sizing only when w->cap is 0). */
static int encode_payload(const sdb_proto_msg_t *m, writer_t *w)
{
    int body = sdb_proto_opcode_body(m->opcode);

    switch (body) {
    case SDB_BODY_EMPTY:
        break;
    case SDB_BODY_RAW:
        if (!m->u.raw.ptr && m->u.raw.len)
            return SDB_EINVAL;
        w_bytes(w, m->u.raw.ptr, m->u.raw.len);
        break;
    case SDB_BODY_HELLO:
        w_bytes(w, SDB_PROTO_HELLO_MAGIC, 4);
        w_u16(w, m->u.hello.min_version);
        w_u16(w, m->u.hello.max_version);
        w_str16(w, &m->u.hello.token);
        w_str16(w, &m->u.hello.client);
        break;
    case SDB_BODY_HELLO_OK:
        w_bytes(w, SDB_PROTO_HELLO_MAGIC, 4);
        w_u16(w, m->u.hello_ok.version);
        w_u32(w, m->u.hello_ok.max_frame_bytes);
        w_u32(w, m->u.hello_ok.chunk_bytes);
        w_u64(w, m->u.hello_ok.max_document_bytes);
        w_u32(w, m->u.hello_ok.max_inflight);
        w_str16(w, &m->u.hello_ok.server);
        break;
    case SDB_BODY_PUT_BEGIN:
        w_u64(w, m->u.put_begin.size);
        w_u64(w, m->u.put_begin.if_version);
        w_str16(w, &m->u.put_begin.path);
        break;
    case SDB_BODY_PUT_END:
        w_u64(w, m->u.put_end.size);
        w_u32(w, m->u.put_end.crc32);
        break;
    case SDB_BODY_PATH:
        w_str16(w, &m->u.path);
        break;
    case SDB_BODY_ID:
        w_bytes(w, m->u.id.b, SDB_PROTO_ID_SIZE);
        break;
    case SDB_BODY_ID_VERSION:
        w_bytes(w, m->u.id_version.id.b, SDB_PROTO_ID_SIZE);
        w_u64(w, m->u.id_version.version);
        break;
    case SDB_BODY_ID_PATH:
        w_bytes(w, m->u.id_path.id.b, SDB_PROTO_ID_SIZE);
        w_str16(w, &m->u.id_path.path);
        break;
    case SDB_BODY_SEARCH:
        w_u32(w, m->u.search.limit);
        w_u8(w, m->u.search.delimiter);
        w_str16(w, &m->u.search.prefix);
        w_str16(w, &m->u.search.start_after);
        break;
    case SDB_BODY_ERROR:
        if (m->u.error.status == SDB_STATUS_OK)
            return SDB_EINVAL;
        w_u16(w, m->u.error.status);
        w_str16(w, &m->u.error.message);
        break;
    case SDB_BODY_DOCINFO:
        w_docinfo(w, &m->u.doc);
        break;
    case SDB_BODY_ENTRIES:
        if (!m->u.entries.data && m->u.entries.len)
            return SDB_EINVAL;
        w_u16(w, m->u.entries.count);
        w_bytes(w, m->u.entries.data, m->u.entries.len);
        break;
    case SDB_BODY_LIST_END:
        if (m->u.list_end.more > 1)
            return SDB_EINVAL;
        w_u32(w, m->u.list_end.count);
        w_u8(w, m->u.list_end.more);
        break;
    case SDB_BODY_INFO:
        w_docinfo(w, &m->u.info.doc);
        w_str(w, m->u.info.text.ptr, m->u.info.text.len, 0xFFFFFFFFu);
        break;
    case SDB_BODY_PATH_RANGE:
        w_u64(w, m->u.path_range.offset);
        w_u64(w, m->u.path_range.length);
        w_str16(w, &m->u.path_range.path);
        break;
    case SDB_BODY_ID_RANGE:
        w_bytes(w, m->u.id_range.id.b, SDB_PROTO_ID_SIZE);
        w_u64(w, m->u.id_range.version);
        w_u64(w, m->u.id_range.offset);
        w_u64(w, m->u.id_range.length);
        break;
    case SDB_BODY_RANGE_HEADER: {
        const sdb_proto_range_header_t *h = &m->u.range_header;
        if (h->offset > h->doc.size || h->length > h->doc.size - h->offset)
            return SDB_EINVAL;
        w_docinfo(w, &h->doc);
        w_u64(w, h->offset);
        w_u64(w, h->length);
        break;
    }
    case SDB_BODY_BATCH:
        if (!m->u.batch.data && m->u.batch.len)
            return SDB_EINVAL;
        w_u32(w, m->u.batch.count);
        w_bytes(w, m->u.batch.data, m->u.batch.len);
        break;
    case SDB_BODY_BATCH_RESULT:
        if (!m->u.batch_result.data && m->u.batch_result.count)
            return SDB_EINVAL;
        w_u32(w, m->u.batch_result.count);
        w_bytes(w, m->u.batch_result.data,
                (size_t)m->u.batch_result.count * SDB_PROTO_DOCINFO_SIZE);
        break;
    case SDB_BODY_BATCH_FAILED:
        if (m->u.batch_failed.status == SDB_STATUS_OK)
            return SDB_EINVAL;
        w_u32(w, m->u.batch_failed.item);
        w_u16(w, m->u.batch_failed.status);
        w_str16(w, &m->u.batch_failed.message);
        break;
    default:
        return SDB_EOPCODE;
    }
    return w->err;
}

int sdb_proto_encoded_size(const sdb_proto_msg_t *msg, size_t *size)
{
    writer_t w = { NULL, 0, 0, 0 };
    int rc;
    if (!msg || !size)
        return SDB_EINVAL;
    rc = encode_payload(msg, &w);
    if (rc < 0)
        return rc;
    if (w.len > SDB_PROTO_MAX_FRAME)
        return SDB_ETOOLARGE;
    *size = SDB_PROTO_HEADER_SIZE + w.len;
    return SDB_OK;
}

int sdb_proto_encode(const sdb_proto_msg_t *msg, void *buf, size_t cap, size_t *len)
{
    sdb_proto_header_t h;
    writer_t w;
    size_t size;
    int rc;

    if (!msg || !buf || !len)
        return SDB_EINVAL;
    rc = sdb_proto_encoded_size(msg, &size);
    if (rc < 0)
        return rc;
    if (size > cap)
        return SDB_ETOOLARGE;
    w.p = (uint8_t *)buf + SDB_PROTO_HEADER_SIZE;
    w.cap = size - SDB_PROTO_HEADER_SIZE;
    w.len = 0;
    w.err = 0;
    rc = encode_payload(msg, &w);
    if (rc < 0)
        return rc;
    h.opcode = msg->opcode;
    h.flags = msg->flags;
    h.length = (uint32_t)w.len;
    h.request_id = msg->request_id;
    sdb_proto_header_encode(buf, &h);
    *len = size;
    return SDB_OK;
}

int sdb_proto_str_copy(const sdb_proto_str_t *s, char *out, size_t cap)
{
    if (!s || !out || cap == 0 || (!s->ptr && s->len))
        return SDB_EINVAL;
    if (s->len >= cap || (s->len && memchr(s->ptr, 0, s->len))) {
        out[0] = '\0';
        return SDB_EINVAL;
    }
    if (s->len)
        memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return SDB_OK;
}
