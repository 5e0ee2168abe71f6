/*
 * check_proto.c -- tests of the wire protocol codec (src/common/proto.c).
 *
 * Round trips of every message type, byte-exact layouts written out by hand
 * from proto/PROTOCOL.md, the incremental decoder fed at every split point,
 * limits enforced before allocation, malformed payloads, the status <-> error
 * mapping, and the generated parts of PROTOCOL.md (opcode and status tables,
 * worked hex examples), which must appear there verbatim.
 *
 * To regenerate those parts after a protocol change, run
 *   SDB_PROTO_DOCS_OUT=/tmp/generated.md build/check_all proto
 * and paste from /tmp/generated.md.  PROTOCOL.md is looked up at
 * proto/PROTOCOL.md (run from the repository root) or at $SDB_PROTOCOL_MD.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "streamdb_proto.h"

#define HDR SDB_PROTO_HEADER_SIZE
#define DIR_REQ 1
#define DIR_RESP 0

static const struct {
    unsigned value;
    const char *name;
    int is_request;
    int body;
    const char *body_name;
    const char *desc;
} ops[] = {
#define SDB_OPCODE(name, value, dir, body, description) \
    { value, #name, DIR_##dir, SDB_BODY_##body, #body, description },
#include "opcodes.def"
};
#define N_OPS (sizeof(ops) / sizeof(ops[0]))

static const struct {
    unsigned value;
    const char *name;
    int error;
    const char *error_name;
    const char *desc;
} statuses[] = {
#define SDB_STATUS(name, value, error, description) { value, #name, error, #error, description },
#include "opcodes.def"
};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

/* ---- Sample messages ---------------------------------------------------- */

static const char raw_bytes[] = "raw\0\xff payload";
static const char info_text[] = "id: 00010203-0405-0607-0809-0a0b0c0d0e0f\npaths: /a /b\n";
static uint8_t entries_buf[1024];

static sdb_proto_str_t S(const char *s)
{
    sdb_proto_str_t r = { s, strlen(s) };
    return r;
}

static sdb_id_t sample_id(void)
{
    sdb_id_t id;
    for (int i = 0; i < 16; i++)
        id.b[i] = (uint8_t)(i * 17 + 1);
    return id;
}

static sdb_docinfo_t sample_doc(unsigned seed)
{
    sdb_docinfo_t d;
    memset(&d, 0, sizeof(d));
    d.id = sample_id();
    d.id.b[15] = (uint8_t)seed;
    d.version = 0x0102030405060708ull + seed;
    d.size = 0xA1A2A3A4A5A6A7A8ull;
    d.crc32 = 0xCAFEBABEu ^ seed;
    d.created_ms = -1234567890123ll;      /* negative: checks sign handling */
    d.modified_ms = 1767225600000ll + seed;
    return d;
}

/* Three entries, one of each kind, built into entries_buf. */
static sdb_proto_entries_t sample_entries(void)
{
    sdb_proto_entries_builder_t b;
    sdb_proto_entry_t e;
    sdb_proto_entries_t out;

    ck_assert_int_eq(sdb_proto_entries_begin(&b, entries_buf, sizeof(entries_buf)), 0);
    memset(&e, 0, sizeof(e));
    e.kind = SDB_ENTRY_PREFIX;
    e.path = S("/photos/2024/");
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    e.kind = SDB_ENTRY_DOC;
    e.path = S("/photos/a.jpg");
    e.info = sample_doc(1);
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    e.kind = SDB_ENTRY_VERSION;
    e.path = S("");
    e.info = sample_doc(2);
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    sdb_proto_entries_finish(&b, 0);
    out.count = 3;
    out.data = entries_buf + HDR + 2;
    out.len = b.len - HDR - 2;
    return out;
}

/* Four items, one of each kind, encoded into batch_buf. */
static uint8_t batch_buf[512], batch_docs[2 * SDB_PROTO_DOCINFO_SIZE];

static sdb_proto_batch_t sample_batch(void)
{
    sdb_proto_batch_item_t it[4];
    sdb_proto_batch_t out = { 4, batch_buf, 0 };
    memset(it, 0, sizeof(it));
    it[0].kind = SDB_BATCH_ITEM_PUT;
    it[0].if_version = SDB_PROTO_UNSET;
    it[0].path = S("/b/\xc3\xa9");
    it[0].data.ptr = (const uint8_t *)raw_bytes;
    it[0].data.len = sizeof(raw_bytes) - 1;
    it[1].kind = SDB_BATCH_ITEM_DELETE;
    it[1].if_version = 0x0102030405060708ull;
    it[1].path = S("/b/old");
    it[2].kind = SDB_BATCH_ITEM_BIND;
    it[2].if_version = 3;
    it[2].id = sample_id();
    it[2].path = S("/b/alias");
    it[3].kind = SDB_BATCH_ITEM_UNBIND;
    it[3].if_version = 0;
    it[3].id = sample_id();
    it[3].path = S("/b/x");
    for (int i = 0; i < 4; i++) {
        size_t n;
        ck_assert_int_eq(sdb_proto_batch_item_encode(&it[i], batch_buf + out.len,
                                                     sizeof(batch_buf) - out.len, &n), 0);
        ck_assert_uint_eq(n, sdb_proto_batch_item_size(&it[i]));
        out.len += n;
    }
    return out;
}

/* A message of opcode op with every field set to something non-trivial. */
static void sample_msg(unsigned op, uint32_t request_id, sdb_proto_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->opcode = (uint8_t)op;
    m->request_id = request_id;
    switch (sdb_proto_opcode_body(op)) {
    case SDB_BODY_EMPTY:
        break;
    case SDB_BODY_RAW:
        m->u.raw.ptr = (const uint8_t *)raw_bytes;
        m->u.raw.len = sizeof(raw_bytes) - 1;
        break;
    case SDB_BODY_HELLO:
        m->u.hello.min_version = 1;
        m->u.hello.max_version = 3;
        m->u.hello.token = S("s3cr\xc3\xa9t");
        m->u.hello.client = S("check_proto");
        break;
    case SDB_BODY_HELLO_OK:
        m->u.hello_ok.version = 1;
        m->u.hello_ok.max_frame_bytes = 1u << 20;
        m->u.hello_ok.chunk_bytes = 65536;
        m->u.hello_ok.max_document_bytes = 256ull << 20;
        m->u.hello_ok.max_inflight = 128;
        m->u.hello_ok.server = S("streamdbd/0.1.0");
        break;
    case SDB_BODY_PUT_BEGIN:
        m->u.put_begin.size = 1234567890123ull;
        m->u.put_begin.if_version = 7;
        m->u.put_begin.path = S("/a/b/\xc3\xbc.txt");
        break;
    case SDB_BODY_PUT_END:
        m->u.put_end.size = 0x0102030405060708ull;
        m->u.put_end.crc32 = 0xDEADBEEFu;
        break;
    case SDB_BODY_PATH:
        m->u.path = S("/x/y");
        break;
    case SDB_BODY_ID:
        m->u.id = sample_id();
        break;
    case SDB_BODY_ID_VERSION:
        m->u.id_version.id = sample_id();
        m->u.id_version.version = 0x1122334455667788ull;
        break;
    case SDB_BODY_ID_PATH:
        m->u.id_path.id = sample_id();
        m->u.id_path.path = S("/bound");
        break;
    case SDB_BODY_SEARCH:
        m->u.search.limit = 100;
        m->u.search.delimiter = '/';
        m->u.search.prefix = S("/photos/");
        m->u.search.start_after = S("/photos/2024/");
        break;
    case SDB_BODY_ERROR:
        m->u.error.status = SDB_STATUS_NOT_FOUND;
        m->u.error.message = S("no such path");
        break;
    case SDB_BODY_DOCINFO:
        m->u.doc = sample_doc(3);
        break;
    case SDB_BODY_ENTRIES:
        m->u.entries = sample_entries();
        break;
    case SDB_BODY_LIST_END:
        m->u.list_end.count = 3;
        m->u.list_end.more = 1;
        break;
    case SDB_BODY_INFO:
        m->u.info.doc = sample_doc(4);
        m->u.info.text = S(info_text);
        break;
    case SDB_BODY_PATH_RANGE:
        m->u.path_range.offset = 0x1011121314151617ull;
        m->u.path_range.length = 0x2021222324252627ull;
        m->u.path_range.path = S("/r/\xc3\xa9");
        break;
    case SDB_BODY_ID_RANGE:
        m->u.id_range.id = sample_id();
        m->u.id_range.version = 0x3031323334353637ull;
        m->u.id_range.offset = 0x4041424344454647ull;
        m->u.id_range.length = 0x5051525354555657ull;
        break;
    case SDB_BODY_RANGE_HEADER:
        m->u.range_header.doc = sample_doc(5);
        m->u.range_header.offset = 0x0102030405060708ull;
        m->u.range_header.length = m->u.range_header.doc.size - m->u.range_header.offset;
        break;
    case SDB_BODY_BATCH:
        m->u.batch = sample_batch();
        break;
    case SDB_BODY_BATCH_RESULT: {
        sdb_docinfo_t d0 = sample_doc(6), d1 = sample_doc(7);
        sdb_proto_docinfo_encode(batch_docs, &d0);
        sdb_proto_docinfo_encode(batch_docs + SDB_PROTO_DOCINFO_SIZE, &d1);
        m->u.batch_result.count = 2;
        m->u.batch_result.data = batch_docs;
        break;
    }
    case SDB_BODY_BATCH_FAILED:
        m->u.batch_failed.item = 0x01020304u;
        m->u.batch_failed.status = SDB_STATUS_CONFLICT;
        m->u.batch_failed.message = S("item 16909060: version 3, not 2");
        break;
    default:
        ck_abort_msg("opcode 0x%02x has no sample", op);
    }
}

static void str_eq(sdb_proto_str_t a, sdb_proto_str_t b)
{
    ck_assert_uint_eq(a.len, b.len);
    if (a.len)
        ck_assert(memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void doc_eq(const sdb_docinfo_t *a, const sdb_docinfo_t *b)
{
    ck_assert(memcmp(a->id.b, b->id.b, 16) == 0);
    ck_assert_uint_eq(a->version, b->version);
    ck_assert_uint_eq(a->size, b->size);
    ck_assert_uint_eq(a->crc32, b->crc32);
    ck_assert_int_eq(a->created_ms, b->created_ms);
    ck_assert_int_eq(a->modified_ms, b->modified_ms);
}

/* Field-by-field equality of two messages of the same opcode. */
static void msg_eq(const sdb_proto_msg_t *a, const sdb_proto_msg_t *b)
{
    ck_assert_uint_eq(a->opcode, b->opcode);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_uint_eq(a->request_id, b->request_id);
    switch (sdb_proto_opcode_body(a->opcode)) {
    case SDB_BODY_EMPTY:
        break;
    case SDB_BODY_RAW:
        ck_assert_uint_eq(a->u.raw.len, b->u.raw.len);
        ck_assert(memcmp(a->u.raw.ptr, b->u.raw.ptr, a->u.raw.len) == 0);
        break;
    case SDB_BODY_HELLO:
        ck_assert_uint_eq(a->u.hello.min_version, b->u.hello.min_version);
        ck_assert_uint_eq(a->u.hello.max_version, b->u.hello.max_version);
        str_eq(a->u.hello.token, b->u.hello.token);
        str_eq(a->u.hello.client, b->u.hello.client);
        break;
    case SDB_BODY_HELLO_OK:
        ck_assert_uint_eq(a->u.hello_ok.version, b->u.hello_ok.version);
        ck_assert_uint_eq(a->u.hello_ok.max_frame_bytes, b->u.hello_ok.max_frame_bytes);
        ck_assert_uint_eq(a->u.hello_ok.chunk_bytes, b->u.hello_ok.chunk_bytes);
        ck_assert_uint_eq(a->u.hello_ok.max_document_bytes, b->u.hello_ok.max_document_bytes);
        ck_assert_uint_eq(a->u.hello_ok.max_inflight, b->u.hello_ok.max_inflight);
        str_eq(a->u.hello_ok.server, b->u.hello_ok.server);
        break;
    case SDB_BODY_PUT_BEGIN:
        ck_assert_uint_eq(a->u.put_begin.size, b->u.put_begin.size);
        ck_assert_uint_eq(a->u.put_begin.if_version, b->u.put_begin.if_version);
        str_eq(a->u.put_begin.path, b->u.put_begin.path);
        break;
    case SDB_BODY_PUT_END:
        ck_assert_uint_eq(a->u.put_end.size, b->u.put_end.size);
        ck_assert_uint_eq(a->u.put_end.crc32, b->u.put_end.crc32);
        break;
    case SDB_BODY_PATH:
        str_eq(a->u.path, b->u.path);
        break;
    case SDB_BODY_ID:
        ck_assert(memcmp(a->u.id.b, b->u.id.b, 16) == 0);
        break;
    case SDB_BODY_ID_VERSION:
        ck_assert(memcmp(a->u.id_version.id.b, b->u.id_version.id.b, 16) == 0);
        ck_assert_uint_eq(a->u.id_version.version, b->u.id_version.version);
        break;
    case SDB_BODY_ID_PATH:
        ck_assert(memcmp(a->u.id_path.id.b, b->u.id_path.id.b, 16) == 0);
        str_eq(a->u.id_path.path, b->u.id_path.path);
        break;
    case SDB_BODY_SEARCH:
        ck_assert_uint_eq(a->u.search.limit, b->u.search.limit);
        ck_assert_uint_eq(a->u.search.delimiter, b->u.search.delimiter);
        str_eq(a->u.search.prefix, b->u.search.prefix);
        str_eq(a->u.search.start_after, b->u.search.start_after);
        break;
    case SDB_BODY_ERROR:
        ck_assert_uint_eq(a->u.error.status, b->u.error.status);
        str_eq(a->u.error.message, b->u.error.message);
        break;
    case SDB_BODY_DOCINFO:
        doc_eq(&a->u.doc, &b->u.doc);
        break;
    case SDB_BODY_ENTRIES: {
        sdb_proto_entries_iter_t ia, ib;
        sdb_proto_entry_t ea, eb;
        int ra, rb, n = 0;
        ck_assert_uint_eq(a->u.entries.count, b->u.entries.count);
        sdb_proto_entries_iter(&a->u.entries, &ia);
        sdb_proto_entries_iter(&b->u.entries, &ib);
        while ((ra = sdb_proto_entries_next(&ia, &ea)) == 1) {
            rb = sdb_proto_entries_next(&ib, &eb);
            ck_assert_int_eq(rb, 1);
            ck_assert_uint_eq(ea.kind, eb.kind);
            str_eq(ea.path, eb.path);
            if (ea.kind != SDB_ENTRY_PREFIX)
                doc_eq(&ea.info, &eb.info);
            n++;
        }
        ck_assert_int_eq(ra, 0);
        ck_assert_int_eq(sdb_proto_entries_next(&ib, &eb), 0);
        ck_assert_int_eq(n, a->u.entries.count);
        break;
    }
    case SDB_BODY_LIST_END:
        ck_assert_uint_eq(a->u.list_end.count, b->u.list_end.count);
        ck_assert_uint_eq(a->u.list_end.more, b->u.list_end.more);
        break;
    case SDB_BODY_INFO:
        doc_eq(&a->u.info.doc, &b->u.info.doc);
        str_eq(a->u.info.text, b->u.info.text);
        break;
    case SDB_BODY_PATH_RANGE:
        ck_assert_uint_eq(a->u.path_range.offset, b->u.path_range.offset);
        ck_assert_uint_eq(a->u.path_range.length, b->u.path_range.length);
        str_eq(a->u.path_range.path, b->u.path_range.path);
        break;
    case SDB_BODY_ID_RANGE:
        ck_assert(memcmp(a->u.id_range.id.b, b->u.id_range.id.b, 16) == 0);
        ck_assert_uint_eq(a->u.id_range.version, b->u.id_range.version);
        ck_assert_uint_eq(a->u.id_range.offset, b->u.id_range.offset);
        ck_assert_uint_eq(a->u.id_range.length, b->u.id_range.length);
        break;
    case SDB_BODY_RANGE_HEADER:
        doc_eq(&a->u.range_header.doc, &b->u.range_header.doc);
        ck_assert_uint_eq(a->u.range_header.offset, b->u.range_header.offset);
        ck_assert_uint_eq(a->u.range_header.length, b->u.range_header.length);
        break;
    case SDB_BODY_BATCH: {
        sdb_proto_batch_iter_t ia, ib;
        sdb_proto_batch_item_t ea, eb;
        int ra;
        uint32_t n = 0;
        ck_assert_uint_eq(a->u.batch.count, b->u.batch.count);
        sdb_proto_batch_iter(&a->u.batch, &ia);
        sdb_proto_batch_iter(&b->u.batch, &ib);
        while ((ra = sdb_proto_batch_next(&ia, &ea)) == 1) {
            ck_assert_int_eq(sdb_proto_batch_next(&ib, &eb), 1);
            ck_assert_uint_eq(ea.kind, eb.kind);
            ck_assert_uint_eq(ea.if_version, eb.if_version);
            ck_assert(memcmp(ea.id.b, eb.id.b, 16) == 0);
            str_eq(ea.path, eb.path);
            ck_assert_uint_eq(ea.data.len, eb.data.len);
            if (ea.data.len)
                ck_assert(memcmp(ea.data.ptr, eb.data.ptr, ea.data.len) == 0);
            n++;
        }
        ck_assert_int_eq(ra, 0);
        ck_assert_int_eq(sdb_proto_batch_next(&ib, &eb), 0);
        ck_assert_uint_eq(n, a->u.batch.count);
        break;
    }
    case SDB_BODY_BATCH_RESULT:
        ck_assert_uint_eq(a->u.batch_result.count, b->u.batch_result.count);
        for (uint32_t i = 0; i < a->u.batch_result.count; i++) {
            sdb_docinfo_t da, db;
            sdb_proto_docinfo_decode(a->u.batch_result.data + i * SDB_PROTO_DOCINFO_SIZE, &da);
            sdb_proto_docinfo_decode(b->u.batch_result.data + i * SDB_PROTO_DOCINFO_SIZE, &db);
            doc_eq(&da, &db);
        }
        break;
    case SDB_BODY_BATCH_FAILED:
        ck_assert_uint_eq(a->u.batch_failed.item, b->u.batch_failed.item);
        ck_assert_uint_eq(a->u.batch_failed.status, b->u.batch_failed.status);
        str_eq(a->u.batch_failed.message, b->u.batch_failed.message);
        break;
    default:
        ck_abort_msg("unexpected body");
    }
}

static size_t encode(const sdb_proto_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t len = 0, size = 0;
    ck_assert_int_eq(sdb_proto_encoded_size(m, &size), 0);
    ck_assert_int_eq(sdb_proto_encode(m, buf, cap, &len), 0);
    ck_assert_uint_eq(len, size);
    return len;
}

/* Decodes one whole frame held in buf[0..len) with a fresh decoder. */
static int decode_one(const uint8_t *buf, size_t len, sdb_proto_msg_t *out)
{
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t used = 0;
    int rc;

    sdb_proto_decoder_init(&d, SDB_PROTO_DEFAULT_FRAME);
    rc = sdb_proto_decoder_feed(&d, buf, len, &used, &f);
    ck_assert_int_eq(rc, 1);
    ck_assert_uint_eq(used, len);
    rc = sdb_proto_decode(&f, out);
    sdb_proto_decoder_free(&d);
    return rc;
}

/* A frame from a header and a payload given separately. */
static size_t make_frame(uint8_t *out, unsigned op, uint8_t flags, uint32_t rid,
                         const void *payload, uint32_t len)
{
    sdb_proto_header_t h = { (uint8_t)op, flags, len, rid };
    sdb_proto_header_encode(out, &h);
    if (len)
        memcpy(out + HDR, payload, len);
    return HDR + len;
}

/* ---- Tables and status mapping ------------------------------------------ */

START_TEST(test_opcode_table)
{
    int seen[256] = { 0 };
    for (size_t i = 0; i < N_OPS; i++) {
        unsigned v = ops[i].value;
        ck_assert_uint_lt(v, 256);
        ck_assert_int_eq(seen[v], 0);
        seen[v] = 1;
        ck_assert_str_eq(sdb_proto_opcode_name(v), ops[i].name);
        ck_assert_str_eq(sdb_proto_opcode_desc(v), ops[i].desc);
        ck_assert_int_eq(sdb_proto_opcode_body(v), ops[i].body);
        ck_assert_int_eq(sdb_proto_opcode_is_request(v), ops[i].is_request);
        ck_assert_int_eq(v < 0x80, ops[i].is_request);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(ops[i].name, ops[j].name);
    }
    for (unsigned v = 0; v < 256; v++) {
        if (seen[v])
            continue;
        ck_assert_ptr_null(sdb_proto_opcode_name(v));
        ck_assert_ptr_null(sdb_proto_opcode_desc(v));
        ck_assert_int_eq(sdb_proto_opcode_body(v), SDB_EOPCODE);
        ck_assert_int_eq(sdb_proto_opcode_is_request(v), SDB_EOPCODE);
    }
    ck_assert_ptr_null(sdb_proto_opcode_name(256));
    ck_assert_ptr_null(sdb_proto_opcode_name(0x1FF));
    /* The brief's required operations exist. */
    ck_assert_int_eq(SDB_OP_HELLO, 0x01);
    ck_assert_str_eq(sdb_proto_opcode_name(SDB_OP_LIST_VERSIONS), "LIST_VERSIONS");
    ck_assert_str_eq(sdb_proto_opcode_name(SDB_OP_GET_HEADER), "GET_HEADER");
}
END_TEST

START_TEST(test_status_bijection)
{
    for (size_t i = 0; i < N_STATUSES; i++) {
        unsigned s = statuses[i].value;
        int e = sdb_proto_status_to_error(s);
        ck_assert_int_eq(e, statuses[i].error);
        ck_assert_uint_eq(sdb_proto_status_from_error(e), s);
        ck_assert_str_eq(sdb_proto_status_name(s), statuses[i].name);
        ck_assert_str_eq(sdb_proto_status_desc(s), statuses[i].desc);
        ck_assert_str_eq(sdb_proto_strerror(e), statuses[i].desc);
        for (size_t j = 0; j < i; j++) {
            ck_assert_uint_ne(statuses[j].value, s);
            ck_assert_int_ne(statuses[j].error, e);
            ck_assert_str_ne(statuses[j].name, statuses[i].name);
        }
    }
    /* Every engine error code has its own status, numbered -code. */
    for (int e = SDB_EPERM; e <= SDB_OK; e++) {
        unsigned s = sdb_proto_status_from_error(e);
        ck_assert_uint_eq(s, (unsigned)-e);
        ck_assert_int_eq(sdb_proto_status_to_error(s), e);
    }
    /* Every protocol error code too. */
    for (int e = SDB_EINTERNAL; e <= SDB_EPROTO; e++)
        ck_assert_int_eq(sdb_proto_status_to_error(sdb_proto_status_from_error(e)), e);
    ck_assert_uint_eq(sdb_proto_status_from_error(SDB_EPROTO), SDB_STATUS_PROTOCOL);
    ck_assert_uint_eq(sdb_proto_status_from_error(SDB_ECHECKSUM), SDB_STATUS_CHECKSUM);
    /* Outside the table: not a bijection, by design. */
    ck_assert_uint_eq(sdb_proto_status_from_error(-55), SDB_STATUS_INTERNAL);
    ck_assert_uint_eq(sdb_proto_status_from_error(-1000), SDB_STATUS_INTERNAL);
    ck_assert_uint_eq(sdb_proto_status_from_error(5), SDB_STATUS_OK);
    ck_assert_int_eq(sdb_proto_status_to_error(999), SDB_EINTERNAL);
    ck_assert_int_eq(sdb_proto_status_to_error(11), SDB_EINTERNAL);
    ck_assert_ptr_null(sdb_proto_status_name(999));
    ck_assert_ptr_null(sdb_proto_status_desc(11));
    ck_assert_str_eq(sdb_proto_strerror(-55), "unknown error");
    ck_assert_str_eq(sdb_proto_strerror(SDB_OK), "success");
}
END_TEST

START_TEST(test_negotiate)
{
    uint16_t v = 0;
    ck_assert_int_eq(sdb_proto_negotiate(1, 1, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(sdb_proto_negotiate(1, 9, &v), 0);
    ck_assert_uint_eq(v, SDB_PROTO_VERSION);
    ck_assert_int_eq(sdb_proto_negotiate(0, 1, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(sdb_proto_negotiate(2, 9, &v), SDB_EVERSION);
    ck_assert_int_eq(sdb_proto_negotiate(0, 0, &v), SDB_EVERSION);
    ck_assert_int_eq(sdb_proto_negotiate(1, 0, &v), SDB_EVERSION);
    ck_assert_int_eq(sdb_proto_negotiate(1, 1, NULL), SDB_EINVAL);
}
END_TEST

/* ---- Round trips and exact layouts ------------------------------------- */

START_TEST(test_roundtrip_every_message)
{
    uint8_t buf[4096], buf2[4096];
    size_t n_req = 0, n_resp = 0;

    for (size_t i = 0; i < N_OPS; i++) {
        sdb_proto_msg_t m, back;
        size_t len, len2;
        sample_msg(ops[i].value, 0x10000 + (uint32_t)i, &m);
        if (ops[i].value == SDB_OP_GET || ops[i].value == SDB_OP_GET_RANGE)
            m.flags = SDB_FLAG_QUICK;
        if (ops[i].value == SDB_OP_ERROR)
            m.flags = SDB_FLAG_CLOSING;
        len = encode(&m, buf, sizeof(buf));
        ck_assert_uint_eq(buf[0], SDB_PROTO_MAGIC);
        ck_assert_uint_eq(buf[1], ops[i].value);
        ck_assert_uint_eq(len, HDR + (buf[4] | buf[5] << 8 | buf[6] << 16 | (uint32_t)buf[7] << 24));
        ck_assert_msg(decode_one(buf, len, &back) == 0, "decode %s", ops[i].name);
        msg_eq(&m, &back);
        len2 = encode(&back, buf2, sizeof(buf2));
        ck_assert_uint_eq(len2, len);
        ck_assert(memcmp(buf, buf2, len) == 0);
        if (ops[i].is_request)
            n_req++;
        else
            n_resp++;
    }
    ck_assert_uint_eq(n_req, 22);
    ck_assert_uint_eq(n_resp, 15);
}
END_TEST

/* Empty strings, zero ids and extreme integers also survive. */
START_TEST(test_roundtrip_edge_values)
{
    uint8_t buf[256];
    sdb_proto_msg_t m, back;
    size_t len;

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_SEARCH;
    m.request_id = UINT32_MAX;
    m.u.search.limit = UINT32_MAX;
    m.u.search.delimiter = 0xFF;
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, HDR + 4 + 1 + 2 + 2);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    msg_eq(&m, &back);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_PUT_BEGIN;
    m.u.put_begin.size = SDB_PROTO_UNSET;
    m.u.put_begin.if_version = SDB_PROTO_UNSET;
    m.u.put_begin.path = S("p");
    len = encode(&m, buf, sizeof(buf));
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    msg_eq(&m, &back);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_DOC;
    m.u.doc.created_ms = INT64_MIN;
    m.u.doc.modified_ms = INT64_MAX;
    m.u.doc.version = UINT64_MAX;
    len = encode(&m, buf, sizeof(buf));
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    msg_eq(&m, &back);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_DATA;          /* empty DATA, NULL pointer */
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, HDR);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.u.raw.len, 0);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_ENTRIES;       /* no entries */
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, HDR + 2);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.u.entries.count, 0);
}
END_TEST

/* Layouts written out by hand from PROTOCOL.md section 5, independent of the
 * encoder, so that a bug shared by encoder and decoder is still caught. */
START_TEST(test_exact_layouts)
{
    uint8_t buf[256];
    sdb_proto_msg_t m, back;
    size_t len;

    static const uint8_t put_begin[] = {
        0xdb, 0x10, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12,
        0x0b, 0, 0, 0, 0, 0, 0, 0,                         /* size 11 */
        0x02, 0, 0, 0, 0, 0, 0, 0,                         /* if_version 2 */
        0x03, 0x00, '/', 'a', 'b'                          /* path */
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_PUT_BEGIN;
    m.request_id = 0x12345678;
    m.u.put_begin.size = 11;
    m.u.put_begin.if_version = 2;
    m.u.put_begin.path = S("/ab");
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(put_begin));
    ck_assert(memcmp(buf, put_begin, len) == 0);

    static const uint8_t get_id[] = {
        0xdb, 0x21, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
        1, 18, 35, 52, 69, 86, 103, 120, 137, 154, 171, 188, 205, 222, 239, 0,
        0x05, 0, 0, 0, 0, 0, 0, 0
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET_ID;
    m.flags = SDB_FLAG_QUICK;
    m.request_id = 7;
    m.u.id_version.id = sample_id();
    m.u.id_version.version = 5;
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(get_id));
    ck_assert(memcmp(buf, get_id, len) == 0);

    /* GET_RANGE: u64 offset, u64 length, str16 path. */
    static const uint8_t get_range[] = {
        0xdb, 0x23, 0x01, 0x00, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
        0x00, 0x10, 0, 0, 0, 0, 0, 0,                      /* offset 4096 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,    /* length: to the end */
        0x02, 0x00, '/', 'r'                               /* path */
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET_RANGE;
    m.flags = SDB_FLAG_QUICK;
    m.request_id = 8;
    m.u.path_range.offset = 4096;
    m.u.path_range.length = SDB_PROTO_UNSET;
    m.u.path_range.path = S("/r");
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(get_range));
    ck_assert(memcmp(buf, get_range, len) == 0);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    msg_eq(&m, &back);

    /* GET_ID_RANGE: id, u64 version, u64 offset, u64 length. */
    static const uint8_t get_id_range[] = {
        0xdb, 0x24, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
        1, 18, 35, 52, 69, 86, 103, 120, 137, 154, 171, 188, 205, 222, 239, 0,
        0x00, 0, 0, 0, 0, 0, 0, 0,                         /* version 0: current */
        0x05, 0, 0, 0, 0, 0, 0, 0,                         /* offset 5 */
        0x03, 0x01, 0, 0, 0, 0, 0, 0                       /* length 259 */
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET_ID_RANGE;
    m.request_id = 9;
    m.u.id_range.id = sample_id();
    m.u.id_range.offset = 5;
    m.u.id_range.length = 259;
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(get_id_range));
    ck_assert(memcmp(buf, get_id_range, len) == 0);

    /* RANGE_HEADER: docinfo (52 bytes), then u64 offset, u64 length. */
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_RANGE_HEADER;
    m.request_id = 8;
    m.u.range_header.doc.size = 10000;
    m.u.range_header.offset = 4096;
    m.u.range_header.length = 10000 - 4096;
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, HDR + SDB_PROTO_DOCINFO_SIZE + 16);
    ck_assert_uint_eq(buf[1], 0x90);
    ck_assert_uint_eq(buf[HDR + 24], 0x10);            /* docinfo size 10000 = 0x2710 */
    ck_assert_uint_eq(buf[HDR + 25], 0x27);
    ck_assert_uint_eq(buf[HDR + 52], 0x00);            /* offset 4096 */
    ck_assert_uint_eq(buf[HDR + 53], 0x10);
    ck_assert_uint_eq(buf[HDR + 60], 0x10);            /* length 5904 = 0x1710 */
    ck_assert_uint_eq(buf[HDR + 61], 0x17);
    for (int i = 62; i < 68; i++)
        ck_assert_uint_eq(buf[HDR + i], 0);

    static const uint8_t error[] = {
        0xdb, 0x81, 0x80, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x22, 0x00, 0x02, 0x00, 'n', 'o'
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_ERROR;
    m.flags = SDB_FLAG_CLOSING;
    m.u.error.status = SDB_STATUS_AUTH;
    m.u.error.message = S("no");
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(error));
    ck_assert(memcmp(buf, error, len) == 0);

    static const uint8_t search[] = {
        0xdb, 0x40, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x0a, 0, 0, 0, '/', 0x02, 0x00, '/', 'd', 0x01, 0x00, 'x'
    };
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_SEARCH;
    m.request_id = 2;
    m.u.search.limit = 10;
    m.u.search.delimiter = '/';
    m.u.search.prefix = S("/d");
    m.u.search.start_after = S("x");
    len = encode(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, sizeof(search));
    ck_assert(memcmp(buf, search, len) == 0);

    /* A docinfo: id, version, size, crc32, created_ms, modified_ms. */
    sdb_docinfo_t di;
    uint8_t rec[SDB_PROTO_DOCINFO_SIZE];
    memset(&di, 0, sizeof(di));
    di.id.b[0] = 0xAA;
    di.id.b[15] = 0xBB;
    di.version = 0x0201;
    di.size = 0x030405;
    di.crc32 = 0x0d4a1185;
    di.created_ms = -2;
    di.modified_ms = 0x0102030405060708ll;
    sdb_proto_docinfo_encode(rec, &di);
    ck_assert_uint_eq(rec[0], 0xAA);
    ck_assert_uint_eq(rec[15], 0xBB);
    ck_assert_uint_eq(rec[16], 0x01);
    ck_assert_uint_eq(rec[17], 0x02);
    ck_assert_uint_eq(rec[24], 0x05);
    ck_assert_uint_eq(rec[26], 0x03);
    ck_assert_uint_eq(rec[32], 0x85);
    ck_assert_uint_eq(rec[35], 0x0d);
    ck_assert_uint_eq(rec[36], 0xFE);
    for (int i = 37; i < 44; i++)
        ck_assert_uint_eq(rec[i], 0xFF);
    ck_assert_uint_eq(rec[44], 0x08);
    ck_assert_uint_eq(rec[51], 0x01);

    /* ENTRIES with one PREFIX and one VERSION entry, by hand. */
    uint8_t entries[HDR + 2 + 1 + 2 + 2 + 1 + SDB_PROTO_DOCINFO_SIZE];
    uint8_t *p = entries + HDR;
    *p++ = 2; *p++ = 0;                                   /* count 2 */
    *p++ = SDB_ENTRY_PREFIX; *p++ = 2; *p++ = 0; *p++ = 'a'; *p++ = '/';
    *p++ = SDB_ENTRY_VERSION;
    memcpy(p, rec, sizeof(rec));
    make_frame(entries, SDB_OP_ENTRIES, 0, 9, entries + HDR, sizeof(entries) - HDR);
    ck_assert_int_eq(decode_one(entries, sizeof(entries), &back), 0);
    ck_assert_uint_eq(back.u.entries.count, 2);
    sdb_proto_entries_iter_t it;
    sdb_proto_entry_t e;
    sdb_proto_entries_iter(&back.u.entries, &it);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 1);
    ck_assert_uint_eq(e.kind, SDB_ENTRY_PREFIX);
    ck_assert_uint_eq(e.path.len, 2);
    ck_assert(memcmp(e.path.ptr, "a/", 2) == 0);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 1);
    ck_assert_uint_eq(e.kind, SDB_ENTRY_VERSION);
    ck_assert_int_eq(e.info.created_ms, -2);
    ck_assert_uint_eq(e.info.crc32, 0x0d4a1185);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 0);
}
END_TEST

/* ---- The incremental decoder --------------------------------------------- */

/* The reference split: every frame of stream decoded from one feed. */
typedef struct {
    sdb_proto_header_t hdr;
    size_t off;          /* payload offset in the stream */
} ref_frame_t;

static ref_frame_t refs[64];
static size_t n_refs;

/* Builds a stream of one frame per opcode (the first max_ops of the table,
 * among them empty payloads), then a frame with an unknown opcode, into buf
 * and records where each payload lies. */
static size_t build_stream(uint8_t *buf, size_t cap, size_t max_ops)
{
    size_t len = 0;
    n_refs = 0;
    for (size_t i = 0; i < N_OPS && i < max_ops; i++) {
        sdb_proto_msg_t m;
        sample_msg(ops[i].value, 100 + (uint32_t)i, &m);
        size_t n = encode(&m, buf + len, cap - len);
        refs[n_refs].hdr.opcode = (uint8_t)ops[i].value;
        refs[n_refs].hdr.flags = 0;
        refs[n_refs].hdr.length = (uint32_t)(n - HDR);
        refs[n_refs].hdr.request_id = 100 + (uint32_t)i;
        refs[n_refs].off = len + HDR;
        n_refs++;
        len += n;
    }
    /* An unknown opcode is still a well-formed frame. */
    static const char junk[] = "future payload";
    len += make_frame(buf + len, 0x7E, 0x40, 999, junk, sizeof(junk) - 1);
    refs[n_refs].hdr = (sdb_proto_header_t){ 0x7E, 0x40, sizeof(junk) - 1, 999 };
    refs[n_refs].off = len - (sizeof(junk) - 1);
    n_refs++;
    ck_assert_uint_le(len, cap);
    return len;
}

/* Feeds stream[0..len) cut at the given offsets (ascending) and checks that
 * exactly the reference frames come out, in order, intact.  Plain compares
 * in the loop (a passing ck_assert costs I/O), one assertion per call. */
static void feed_cut(const uint8_t *stream, size_t len, const size_t *cuts, size_t ncuts)
{
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t k = 0, start = 0;
    const char *bad = NULL;

    sdb_proto_decoder_init(&d, 4096);
    for (size_t c = 0; c <= ncuts && !bad; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        /* Copy each piece so that ASan catches any read outside it. */
        size_t plen = end - start, pos = 0;
        uint8_t *piece = malloc(plen ? plen : 1);
        if (!piece) {
            bad = "malloc";
            break;
        }
        memcpy(piece, stream + start, plen);
        for (;;) {
            size_t used = 0;
            int rc = sdb_proto_decoder_feed(&d, piece + pos, plen - pos, &used, &f);
            pos += used;
            if (rc < 0) {
                bad = "decoder error";
            } else if (rc == 0) {
                if (pos != plen)
                    bad = "input left over";
            } else if (k >= n_refs) {
                bad = "extra frame";
            } else if (f.hdr.opcode != refs[k].hdr.opcode || f.hdr.flags != refs[k].hdr.flags ||
                       f.hdr.length != refs[k].hdr.length ||
                       f.hdr.request_id != refs[k].hdr.request_id || !f.payload ||
                       memcmp(f.payload, stream + refs[k].off, f.hdr.length) != 0) {
                bad = "frame differs";
            } else {
                k++;
                if (pos < plen)
                    continue;
            }
            break;
        }
        free(piece);
        start = end;
    }
    if (!bad && k != n_refs)
        bad = "frames missing";
    if (!bad && sdb_proto_decoder_in_frame(&d))
        bad = "partial frame left";
    sdb_proto_decoder_free(&d);
    ck_assert_msg(bad == NULL, "%s (frame %zu, %zu cuts, first at %zu)", bad ? bad : "", k, ncuts,
                  ncuts ? cuts[0] : (size_t)0);
}

START_TEST(test_split_every_boundary)
{
    static uint8_t stream[8192];
    size_t len = build_stream(stream, sizeof(stream), N_OPS);

    feed_cut(stream, len, NULL, 0);
    for (size_t i = 0; i <= len; i++)
        feed_cut(stream, len, &i, 1);
}
END_TEST

/* Two cuts at every pair of points of a short stream (HELLO, PING with a
 * payload, PUT_BEGIN, PUT_DATA, PUT_END, PUT_ABORT with none, an unknown
 * opcode), and the full stream one byte at a time. */
START_TEST(test_split_pairs_and_bytes)
{
    static uint8_t stream[8192];
    static size_t cuts[8192];
    size_t len = build_stream(stream, sizeof(stream), 6);

    ck_assert_uint_eq(n_refs, 7);
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            size_t c[2] = { i, j };
            feed_cut(stream, len, c, 2);
        }
    len = build_stream(stream, sizeof(stream), N_OPS);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    feed_cut(stream, len, cuts, len - 1);
}
END_TEST

/* Frames larger than the decoder's retained buffer, in random pieces. */
START_TEST(test_split_large_frames)
{
    const size_t big = 3 * SDB_PROTO_DECODER_KEEP + 7;
    size_t len = 0;
    uint8_t *stream = malloc(3 * (big + HDR) + 64);
    uint8_t *payload = malloc(big);
    unsigned seed = 12345;

    ck_assert_ptr_nonnull(stream);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < big; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    n_refs = 0;
    for (int f = 0; f < 3; f++) {
        uint32_t plen = f == 1 ? 5 : (uint32_t)big;   /* big, small, big */
        len += make_frame(stream + len, SDB_OP_PUT_DATA, 0, (uint32_t)f, payload, plen);
        refs[n_refs].hdr = (sdb_proto_header_t){ SDB_OP_PUT_DATA, 0, plen, (uint32_t)f };
        refs[n_refs].off = len - plen;
        n_refs++;
    }
    for (int round = 0; round < 50; round++) {
        size_t cuts[64], n = 0, at = 0;
        while (n < 63) {
            seed = seed * 1103515245u + 12345u;
            at += 1 + (seed >> 8) % (big / 8);
            if (at >= len)
                break;
            cuts[n++] = at;
        }
        sdb_proto_decoder_t d;
        sdb_proto_frame_t fr;
        size_t k = 0, start = 0;
        sdb_proto_decoder_init(&d, (uint32_t)big);
        for (size_t c = 0; c <= n; c++) {
            size_t end = c < n ? cuts[c] : len, pos = start;
            while (pos < end) {
                size_t used;
                int rc = sdb_proto_decoder_feed(&d, stream + pos, end - pos, &used, &fr);
                ck_assert_int_ge(rc, 0);
                pos += used;
                if (rc == 1) {
                    ck_assert_uint_eq(fr.hdr.length, refs[k].hdr.length);
                    ck_assert_uint_eq(fr.hdr.request_id, refs[k].hdr.request_id);
                    ck_assert(memcmp(fr.payload, payload, fr.hdr.length) == 0);
                    k++;
                    if (k == 2)   /* a small frame after a big one: big buffer released */
                        ck_assert_uint_le(d.cap, SDB_PROTO_DECODER_KEEP);
                }
            }
            start = end;
        }
        ck_assert_uint_eq(k, 3);
        sdb_proto_decoder_free(&d);
    }
    free(stream);
    free(payload);
}
END_TEST

START_TEST(test_zero_copy)
{
    uint8_t buf[64];
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t used, len = make_frame(buf, SDB_OP_DATA, 0, 1, "abcdef", 6);

    len += make_frame(buf + len, SDB_OP_END, 0, 1, NULL, 0);
    sdb_proto_decoder_init(&d, 1024);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, len, &used, &f), 1);
    ck_assert_uint_eq(used, HDR + 6);
    ck_assert_ptr_eq(f.payload, buf + HDR);     /* no copy */
    ck_assert_ptr_null(d.buf);                  /* nothing allocated */
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf + used, len - used, &used, &f), 1);
    ck_assert_uint_eq(f.hdr.opcode, SDB_OP_END);
    ck_assert_uint_eq(f.hdr.length, 0);
    ck_assert_ptr_nonnull(f.payload);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, 0, &used, &f), 0);
    ck_assert_uint_eq(used, 0);
    ck_assert_ptr_null(d.buf);
    sdb_proto_decoder_free(&d);
}
END_TEST

/* A length of 0xFFFFFFFF, or one over the limit, is refused as soon as the
 * header is complete: nothing allocated, no payload byte consumed, sticky. */
START_TEST(test_length_limits)
{
    uint8_t buf[HDR + 16];
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t used;
    const uint32_t lens[] = { 0xFFFFFFFFu, 16385u, SDB_PROTO_MAX_FRAME + 1u, 0x80000000u };

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        sdb_proto_header_t h = { SDB_OP_PUT_DATA, 0, lens[i], 4242 };
        sdb_proto_header_encode(buf, &h);
        memset(buf + HDR, 'x', 16);
        sdb_proto_decoder_init(&d, 16384);
        /* Byte by byte: nothing happens until byte 12. */
        for (size_t b = 0; b + 1 < HDR; b++) {
            ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf + b, 1, &used, &f), 0);
            ck_assert_uint_eq(used, 1);
        }
        ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf + HDR - 1, 17, &used, &f), SDB_ETOOLARGE);
        ck_assert_uint_eq(used, 1);                 /* the header's last byte only */
        ck_assert_uint_eq(f.hdr.request_id, 4242);  /* for the ERROR reply */
        ck_assert_uint_eq(f.hdr.length, lens[i]);
        ck_assert_ptr_null(d.buf);
        ck_assert_uint_eq(d.cap, 0);
        ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf + HDR, 16, &used, &f), SDB_ETOOLARGE);
        ck_assert_uint_eq(used, 0);
        ck_assert_int_eq(sdb_proto_decoder_in_frame(&d), 0);
        sdb_proto_decoder_free(&d);
    }

    /* Even a limit configured above the hard ceiling is clamped. */
    sdb_proto_header_t h = { SDB_OP_PUT_DATA, 0, SDB_PROTO_MAX_FRAME + 1u, 1 };
    sdb_proto_header_encode(buf, &h);
    sdb_proto_decoder_init(&d, 0xFFFFFFFFu);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, HDR, &used, &f), SDB_ETOOLARGE);
    ck_assert_ptr_null(d.buf);
    sdb_proto_decoder_free(&d);
    sdb_proto_header_t hx;
    ck_assert_int_eq(sdb_proto_header_decode(buf, 0xFFFFFFFFu, &hx), SDB_ETOOLARGE);

    /* Exactly at the limit is accepted; the limit can be raised later. */
    static uint8_t frame[HDR + 16384];
    make_frame(frame, SDB_OP_PUT_DATA, 0, 3, NULL, 0);
    h = (sdb_proto_header_t){ SDB_OP_PUT_DATA, 0, 16384, 3 };
    sdb_proto_header_encode(frame, &h);
    sdb_proto_decoder_init(&d, 16383);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, frame, sizeof(frame), &used, &f), SDB_ETOOLARGE);
    sdb_proto_decoder_free(&d);
    sdb_proto_decoder_init(&d, 100);
    sdb_proto_decoder_set_limit(&d, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, frame, 100, &used, &f), 0);
    ck_assert_int_eq(sdb_proto_decoder_in_frame(&d), 1);
    ck_assert_uint_eq(d.cap, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, frame + 100, sizeof(frame) - 100, &used, &f), 1);
    ck_assert_uint_eq(f.hdr.length, 16384);
    sdb_proto_decoder_free(&d);
}
END_TEST

START_TEST(test_bad_header_bytes)
{
    uint8_t buf[HDR];
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t used;

    /* Garbage (an HTTP request line) fails on its first header. */
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    sdb_proto_decoder_init(&d, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, http, strlen(http), &used, &f), SDB_EPROTO);
    ck_assert_uint_eq(used, HDR);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, http, strlen(http), &used, &f), SDB_EPROTO);
    ck_assert_uint_eq(used, 0);
    sdb_proto_decoder_free(&d);

    make_frame(buf, SDB_OP_PING, 0, 1, NULL, 0);
    buf[3] = 1;                          /* reserved byte */
    sdb_proto_decoder_init(&d, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, HDR, &used, &f), SDB_EPROTO);
    sdb_proto_decoder_free(&d);

    make_frame(buf, SDB_OP_PING, 0, 1, NULL, 0);
    buf[0] = 0xDA;                       /* magic */
    sdb_proto_decoder_init(&d, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, HDR, &used, &f), SDB_EPROTO);
    sdb_proto_decoder_free(&d);

    /* NULL arguments are refused without touching the state. */
    sdb_proto_decoder_init(&d, 16384);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, NULL, 5, &used, &f), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, 1, NULL, &f), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_decoder_feed(NULL, buf, 1, &used, &f), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_decoder_feed(&d, NULL, 0, &used, &f), 0);
    sdb_proto_decoder_free(&d);
    sdb_proto_decoder_free(NULL);
}
END_TEST

/* A stream that stops mid-frame yields nothing partial. */
START_TEST(test_truncated_stream)
{
    uint8_t buf[256];
    sdb_proto_msg_t m;
    sdb_proto_decoder_t d;
    sdb_proto_frame_t f;
    size_t used, len;

    sample_msg(SDB_OP_PUT_BEGIN, 1, &m);
    len = encode(&m, buf, sizeof(buf));
    for (size_t cut = 1; cut < len; cut++) {
        sdb_proto_decoder_init(&d, 16384);
        ck_assert_int_eq(sdb_proto_decoder_feed(&d, buf, cut, &used, &f), 0);
        ck_assert_uint_eq(used, cut);
        ck_assert_int_eq(sdb_proto_decoder_in_frame(&d), 1);
        sdb_proto_decoder_free(&d);
    }
}
END_TEST

/* Every prefix of every payload is refused, and so is one extra byte, except
 * where the layout allows it (RAW is any length; HELLO/HELLO_OK extensible). */
START_TEST(test_truncated_and_trailing_payloads)
{
    uint8_t buf[4096], frame[4096 + 1];
    sdb_proto_msg_t m, back;
    sdb_proto_frame_t f;

    for (size_t i = 0; i < N_OPS; i++) {
        sample_msg(ops[i].value, 1, &m);
        size_t len = encode(&m, buf, sizeof(buf)), plen = len - HDR;
        int body = ops[i].body;
        for (size_t cut = 0; cut < plen; cut++) {
            /* The payload copied into its own allocation: ASan flags any overread. */
            uint8_t *p = malloc(cut ? cut : 1);
            ck_assert_ptr_nonnull(p);
            memcpy(p, buf + HDR, cut);
            f.hdr = (sdb_proto_header_t){ (uint8_t)ops[i].value, 0, (uint32_t)cut, 1 };
            f.payload = p;
            int rc = sdb_proto_decode(&f, &back);
            if (body == SDB_BODY_RAW)
                ck_assert_int_eq(rc, 0);
            else
                ck_assert_msg(rc == SDB_EPROTO, "%s cut at %zu: %d", ops[i].name, cut, rc);
            free(p);
        }
        memcpy(frame, buf, len);
        frame[len] = 0x5A;
        f.hdr = (sdb_proto_header_t){ (uint8_t)ops[i].value, 0, (uint32_t)plen + 1, 1 };
        f.payload = frame + HDR;
        int rc = sdb_proto_decode(&f, &back);
        if (body == SDB_BODY_RAW || body == SDB_BODY_HELLO || body == SDB_BODY_HELLO_OK) {
            ck_assert_int_eq(rc, 0);
            if (body != SDB_BODY_RAW)
                msg_eq(&m, &back);
        } else {
            ck_assert_msg(rc == SDB_EPROTO, "%s with a trailing byte: %d", ops[i].name, rc);
        }
    }
}
END_TEST

/* Field values that the layout forbids. */
START_TEST(test_malformed_fields)
{
    uint8_t buf[512];
    sdb_proto_msg_t m, back;
    size_t len;

    /* A string length pointing past the payload. */
    static const uint8_t get_long[] = { 0x05, 0x00, '/', 'a' };
    len = make_frame(buf, SDB_OP_GET, 0, 1, get_long, sizeof(get_long));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    static const uint8_t get_huge[] = { 0xFF, 0xFF, '/', 'a' };
    len = make_frame(buf, SDB_OP_GET, 0, 1, get_huge, sizeof(get_huge));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);

    /* HELLO without its magic. */
    sample_msg(SDB_OP_HELLO, 1, &m);
    len = encode(&m, buf, sizeof(buf));
    buf[HDR] = 'X';
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    sample_msg(SDB_OP_HELLO_OK, 1, &m);
    len = encode(&m, buf, sizeof(buf));
    buf[HDR + 3] = 'X';
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);

    /* ERROR with status OK; LIST_END with more = 2. */
    static const uint8_t err_ok[] = { 0, 0, 0, 0 };
    len = make_frame(buf, SDB_OP_ERROR, 0, 1, err_ok, sizeof(err_ok));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    static const uint8_t end_more[] = { 1, 0, 0, 0, 2 };
    len = make_frame(buf, SDB_OP_LIST_END, 0, 1, end_more, sizeof(end_more));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);

    /* RANGE_HEADER whose range passes the document's end: offset past the
     * size, or offset + length over it (also where the sum would wrap). */
    static const struct { uint64_t size, offset, length; int ok; } rh[] = {
        { 100, 0, 100, 1 }, { 100, 100, 0, 1 }, { 0, 0, 0, 1 }, { 100, 40, 60, 1 },
        { 100, 101, 0, 0 }, { 100, 40, 61, 0 }, { 100, 1, UINT64_MAX, 0 },
        { UINT64_MAX, UINT64_MAX, 1, 0 }, { 100, UINT64_MAX, 2, 0 },
    };
    for (size_t i = 0; i < sizeof(rh) / sizeof(rh[0]); i++) {
        uint8_t pl[SDB_PROTO_DOCINFO_SIZE + 16];
        sdb_docinfo_t di = sample_doc(1);
        di.size = rh[i].size;
        sdb_proto_docinfo_encode(pl, &di);
        for (int b = 0; b < 8; b++) {
            pl[SDB_PROTO_DOCINFO_SIZE + b] = (uint8_t)(rh[i].offset >> (8 * b));
            pl[SDB_PROTO_DOCINFO_SIZE + 8 + b] = (uint8_t)(rh[i].length >> (8 * b));
        }
        len = make_frame(buf, SDB_OP_RANGE_HEADER, 0, 1, pl, sizeof(pl));
        int rc = decode_one(buf, len, &back);
        ck_assert_msg(rc == (rh[i].ok ? 0 : SDB_EPROTO), "RANGE_HEADER size %llu offset %llu "
                      "length %llu: %d", (unsigned long long)rh[i].size,
                      (unsigned long long)rh[i].offset, (unsigned long long)rh[i].length, rc);
        if (rh[i].ok) {
            ck_assert_uint_eq(back.u.range_header.offset, rh[i].offset);
            ck_assert_uint_eq(back.u.range_header.length, rh[i].length);
            ck_assert_uint_eq(back.u.range_header.doc.size, rh[i].size);
        }
    }

    /* ENTRIES: unknown kind; count larger than the entries present;
     * count smaller (leftover bytes). */
    static const uint8_t bad_kind[] = { 1, 0, 7, 1, 0, 'a' };
    len = make_frame(buf, SDB_OP_ENTRIES, 0, 1, bad_kind, sizeof(bad_kind));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    static const uint8_t short_count[] = { 2, 0, 1, 1, 0, 'a' };
    len = make_frame(buf, SDB_OP_ENTRIES, 0, 1, short_count, sizeof(short_count));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    static const uint8_t long_count[] = { 1, 0, 1, 1, 0, 'a', 1, 1, 0, 'b' };
    len = make_frame(buf, SDB_OP_ENTRIES, 0, 1, long_count, sizeof(long_count));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);

    /* The iterator itself stays bounded on bytes nobody validated. */
    sdb_proto_entries_t raw = { 3, short_count + 2, sizeof(short_count) - 2 };
    sdb_proto_entries_iter_t it;
    sdb_proto_entry_t e;
    sdb_proto_entries_iter(&raw, &it);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 1);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), SDB_EPROTO);
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 0);
}
END_TEST

START_TEST(test_unknown_opcode_and_flags)
{
    uint8_t buf[128];
    sdb_proto_msg_t back;
    size_t len;
    const unsigned unknown[] = { 0x00, 0x03, 0x14, 0x7F, 0x8C, 0xFF };

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        len = make_frame(buf, unknown[i], 0, 77, "zz", 2);
        ck_assert_int_eq(decode_one(buf, len, &back), SDB_EOPCODE);
        ck_assert_uint_eq(back.request_id, 77);   /* for the ERROR reply */
        ck_assert_uint_eq(back.opcode, unknown[i]);
    }

    /* Request flags: QUICK allowed, anything else INVALID. */
    static const uint8_t path[] = { 1, 0, '/' };
    len = make_frame(buf, SDB_OP_GET, SDB_FLAG_QUICK, 5, path, sizeof(path));
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.flags, SDB_FLAG_QUICK);
    len = make_frame(buf, SDB_OP_GET, 0x02, 5, path, sizeof(path));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EINVAL);
    static const uint8_t range[] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, '/' };
    len = make_frame(buf, SDB_OP_GET_RANGE, SDB_FLAG_QUICK, 5, range, sizeof(range));
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.flags, SDB_FLAG_QUICK);
    ck_assert_uint_eq(back.u.path_range.length, 1);
    len = make_frame(buf, SDB_OP_GET_RANGE, 0x04, 5, range, sizeof(range));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EINVAL);
    len = make_frame(buf, SDB_OP_LOOKUP, SDB_FLAG_CLOSING, 5, path, sizeof(path));
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EINVAL);
    /* The upload frames too (streamdbd decodes them with this rule): an
       undefined flag is INVALID, a payload on PUT_ABORT is malformed. */
    len = make_frame(buf, SDB_OP_PUT_DATA, 0x40, 5, "data", 4);
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EINVAL);
    len = make_frame(buf, SDB_OP_PUT_DATA, SDB_FLAG_QUICK, 5, "data", 4);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    len = make_frame(buf, SDB_OP_PUT_ABORT, 0x20, 5, NULL, 0);
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EINVAL);
    len = make_frame(buf, SDB_OP_PUT_ABORT, 0, 5, "x", 1);
    ck_assert_int_eq(decode_one(buf, len, &back), SDB_EPROTO);
    len = make_frame(buf, SDB_OP_PUT_ABORT, 0, 5, NULL, 0);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    /* Response flags: unknown bits ignored (forward compatible). */
    len = make_frame(buf, SDB_OP_OK, 0x7F, 5, NULL, 0);
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.flags, 0x7F);
}
END_TEST

/* ---- Encoder errors, builder, helpers ------------------------------------ */

START_TEST(test_encode_errors)
{
    static char longpath[70000];
    uint8_t buf[128 + 8];
    sdb_proto_msg_t m;
    size_t len, size;

    sample_msg(SDB_OP_PUT_BEGIN, 1, &m);
    ck_assert_int_eq(sdb_proto_encoded_size(&m, &size), 0);
    memset(buf, 0xEE, sizeof(buf));
    ck_assert_int_eq(sdb_proto_encode(&m, buf, size - 1, &len), SDB_ETOOLARGE);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0xEE);          /* nothing written */
    ck_assert_int_eq(sdb_proto_encode(&m, buf, size, &len), 0);
    ck_assert_uint_eq(buf[size], 0xEE);           /* nothing past the frame */

    memset(longpath, 'a', sizeof(longpath));
    m.u.put_begin.path.ptr = longpath;
    m.u.put_begin.path.len = 65536;
    ck_assert_int_eq(sdb_proto_encoded_size(&m, &size), SDB_EINVAL);
    m.u.put_begin.path.len = 65535;
    ck_assert_int_eq(sdb_proto_encoded_size(&m, &size), 0);
    m.u.put_begin.path.ptr = NULL;
    ck_assert_int_eq(sdb_proto_encoded_size(&m, &size), SDB_EINVAL);

    sample_msg(SDB_OP_ERROR, 1, &m);
    m.u.error.status = SDB_STATUS_OK;
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EINVAL);
    sample_msg(SDB_OP_LIST_END, 1, &m);
    m.u.list_end.more = 2;
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EINVAL);
    sample_msg(SDB_OP_RANGE_HEADER, 1, &m);
    m.u.range_header.length++;                    /* one byte past the end */
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EINVAL);
    m.u.range_header.offset = m.u.range_header.doc.size + 1;
    m.u.range_header.length = 0;
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EINVAL);
    sample_msg(SDB_OP_DATA, 1, &m);
    m.u.raw.ptr = NULL;
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EINVAL);
    m.u.raw.ptr = (const uint8_t *)longpath;
    m.u.raw.len = (size_t)SDB_PROTO_MAX_FRAME + 1;   /* sized, never read */
    ck_assert_int_eq(sdb_proto_encoded_size(&m, &size), SDB_ETOOLARGE);

    memset(&m, 0, sizeof(m));
    m.opcode = 0x7E;
    ck_assert_int_eq(sdb_proto_encode(&m, buf, sizeof(buf), &len), SDB_EOPCODE);
    ck_assert_int_eq(sdb_proto_encode(NULL, buf, sizeof(buf), &len), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_encode(&m, NULL, sizeof(buf), &len), SDB_EINVAL);
}
END_TEST

/* BATCH items: the exact bytes of each kind, the encoder's refusals, and
 * malformed BATCH / BATCH_RESULT / BATCH_FAILED payloads refused. */
START_TEST(test_batch_items)
{
    uint8_t buf[256], frame[512];
    sdb_proto_batch_item_t it;
    size_t n;

    memset(&it, 0, sizeof(it));
    it.kind = SDB_BATCH_ITEM_PUT;
    it.if_version = 2;
    it.path = S("/p");
    it.data.ptr = (const uint8_t *)"xyz";
    it.data.len = 3;
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, sizeof(buf), &n), 0);
    static const uint8_t put[] = { 1, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, '/', 'p',
                                   3, 0, 0, 0, 'x', 'y', 'z' };
    ck_assert_uint_eq(n, sizeof(put));
    ck_assert(memcmp(buf, put, n) == 0);
    it.kind = SDB_BATCH_ITEM_UNBIND;
    it.id = sample_id();
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 1 + 8 + 16 + 2 + 2);
    ck_assert_uint_eq(buf[0], 4);
    ck_assert(memcmp(buf + 9, it.id.b, 16) == 0);
    ck_assert_uint_eq(buf[25], 2);
    /* refusals */
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, n - 1, &n), SDB_ETOOLARGE);
    it.kind = 0;
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, sizeof(buf), &n), SDB_EINVAL);
    it.kind = 5;
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, sizeof(buf), &n), SDB_EINVAL);
    it.kind = SDB_BATCH_ITEM_PUT;
    it.data.ptr = NULL;
    ck_assert_int_eq(sdb_proto_batch_item_encode(&it, buf, sizeof(buf), &n), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_batch_item_encode(NULL, buf, sizeof(buf), &n), SDB_EINVAL);

    /* malformed payloads */
    sdb_proto_msg_t m, back;
    sdb_proto_frame_t f;
    sample_msg(SDB_OP_BATCH, 1, &m);
    size_t len = encode(&m, frame, sizeof(frame));
    f.hdr = (sdb_proto_header_t){ SDB_OP_BATCH, 0, (uint32_t)(len - HDR), 1 };
    f.payload = frame + HDR;
    ck_assert_int_eq(sdb_proto_decode(&f, &back), 0);
    frame[HDR] = 5;                                      /* count 5, 4 items */
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    frame[HDR] = 3;                                      /* count 3: one item left over */
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    frame[HDR] = 4;
    frame[HDR + 4] = 9;                                  /* unknown kind */
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    frame[HDR + 4] = SDB_BATCH_ITEM_PUT;
    frame[HDR + 4 + 9 + 2 + 5 + 3] = 0xFF;               /* put length past the end */
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    /* an empty batch is well-formed */
    uint8_t zero[4] = { 0 };
    f.hdr.length = 4;
    f.payload = zero;
    ck_assert_int_eq(sdb_proto_decode(&f, &back), 0);
    ck_assert_uint_eq(back.u.batch.count, 0);

    sample_msg(SDB_OP_BATCH_RESULT, 1, &m);
    len = encode(&m, frame, sizeof(frame));
    f.hdr = (sdb_proto_header_t){ SDB_OP_BATCH_RESULT, 0, (uint32_t)(len - HDR), 1 };
    f.payload = frame + HDR;
    frame[HDR] = 3;                                      /* 3 announced, 2 sent */
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    frame[HDR] = 0xFF;                                   /* huge count: no overflow */
    frame[HDR + 3] = 0xFF;
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    frame[HDR] = 1;                                      /* one docinfo left over */
    frame[HDR + 3] = 0;
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);

    sample_msg(SDB_OP_BATCH_FAILED, 1, &m);
    len = encode(&m, frame, sizeof(frame));
    f.hdr = (sdb_proto_header_t){ SDB_OP_BATCH_FAILED, 0, (uint32_t)(len - HDR), 1 };
    f.payload = frame + HDR;
    frame[HDR + 4] = 0;                                  /* status OK */
    frame[HDR + 5] = 0;
    ck_assert_int_eq(sdb_proto_decode(&f, &back), SDB_EPROTO);
    m.u.batch_failed.status = SDB_STATUS_OK;
    ck_assert_int_eq(sdb_proto_encode(&m, frame, sizeof(frame), &len), SDB_EINVAL);
}
END_TEST

START_TEST(test_entries_builder)
{
    uint8_t buf[600];
    sdb_proto_entries_builder_t b;
    sdb_proto_entry_t e;
    sdb_proto_msg_t back;
    char name[32];
    int added = 0;

    ck_assert_int_eq(sdb_proto_entries_begin(&b, buf, 13), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_entries_begin(&b, buf, sizeof(buf)), 0);
    memset(&e, 0, sizeof(e));
    e.kind = 9;
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), SDB_EINVAL);
    for (;;) {
        snprintf(name, sizeof(name), "/dir/file-%04d", added);
        e.kind = (uint8_t)(added % 3);
        e.path = S(name);
        e.info = sample_doc((unsigned)added);
        size_t before = b.len;
        int rc = sdb_proto_entries_add(&b, &e);
        if (rc == SDB_ETOOLARGE) {
            ck_assert_uint_eq(b.len, before);
            ck_assert_uint_gt(before + sdb_proto_entry_size(&e), sizeof(buf));
            break;
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(b.len, before + sdb_proto_entry_size(&e));
        added++;
    }
    ck_assert_int_gt(added, 5);
    size_t len = sdb_proto_entries_finish(&b, 31);
    ck_assert_uint_le(len, sizeof(buf));
    ck_assert_int_eq(decode_one(buf, len, &back), 0);
    ck_assert_uint_eq(back.opcode, SDB_OP_ENTRIES);
    ck_assert_uint_eq(back.request_id, 31);
    ck_assert_uint_eq(back.u.entries.count, added);
    sdb_proto_entries_iter_t it;
    sdb_proto_entries_iter(&back.u.entries, &it);
    for (int i = 0; i < added; i++) {
        ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 1);
        ck_assert_uint_eq(e.kind, i % 3);
        snprintf(name, sizeof(name), "/dir/file-%04d", i);
        if (e.kind != SDB_ENTRY_VERSION) {
            ck_assert_uint_eq(e.path.len, strlen(name));
            ck_assert(memcmp(e.path.ptr, name, e.path.len) == 0);
        } else {
            ck_assert_uint_eq(e.path.len, 0);
        }
        if (e.kind != SDB_ENTRY_PREFIX) {
            sdb_docinfo_t want = sample_doc((unsigned)i);
            doc_eq(&e.info, &want);
        }
    }
    ck_assert_int_eq(sdb_proto_entries_next(&it, &e), 0);

    /* The count field caps a frame at 65535 entries. */
    static uint8_t big[HDR + 2 + 65536 * 4];
    ck_assert_int_eq(sdb_proto_entries_begin(&b, big, sizeof(big)), 0);
    e.kind = SDB_ENTRY_PREFIX;
    e.path = S("x");
    for (int i = 0; i < 65535; i++)
        ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), SDB_ETOOLARGE);
    len = sdb_proto_entries_finish(&b, 1);
    ck_assert_int_eq(decode_one(big, len, &back), 0);
    ck_assert_uint_eq(back.u.entries.count, 65535);
}
END_TEST

START_TEST(test_str_copy)
{
    char out[8];
    sdb_proto_str_t s = { "abc", 3 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "abc");
    s = (sdb_proto_str_t){ "a\0c", 3 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), SDB_EINVAL);
    ck_assert_str_eq(out, "");
    s = (sdb_proto_str_t){ "abcdefgh", 8 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), SDB_EINVAL);
    s = (sdb_proto_str_t){ "abcdefg", 7 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "abcdefg");
    s = (sdb_proto_str_t){ NULL, 0 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    s = (sdb_proto_str_t){ NULL, 2 };
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, sizeof(out)), SDB_EINVAL);
    ck_assert_int_eq(sdb_proto_str_copy(&s, out, 0), SDB_EINVAL);
}
END_TEST

/* ---- PROTOCOL.md: generated tables and worked examples ------------------- */

typedef struct {
    char buf[32768];
    size_t len;
} text_t;

static void tprintf(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt(t->len + (size_t)n, sizeof(t->buf));
    t->len += (size_t)n;
}

static void gen_opcode_table(text_t *t)
{
    tprintf(t, "| Opcode | Name | Direction | Payload | Meaning |\n");
    tprintf(t, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_OPS; i++)
        tprintf(t, "| `0x%02X` | `%s` | %s | %s | %s |\n", ops[i].value, ops[i].name,
                ops[i].is_request ? "C→S" : "S→C", ops[i].body_name, ops[i].desc);
}

static void gen_status_table(text_t *t)
{
    tprintf(t, "| Status | Name | C error code | Meaning |\n");
    tprintf(t, "|---|---|---|---|\n");
    for (size_t i = 0; i < N_STATUSES; i++)
        tprintf(t, "| %u | `%s` | `%s` | %s |\n", statuses[i].value, statuses[i].name,
                statuses[i].error_name, statuses[i].desc);
}

/* A payload field of an annotated dump: width bytes, then a label. */
struct field {
    size_t width;
    const char *label;
};

/* Dumps m's encoded frame: one line for the header, then one per field
 * (16 bytes per line), each with its label.  The fields must cover the
 * payload exactly. */
static void dump_frame(text_t *t, const char *dir, const sdb_proto_msg_t *m,
                       const struct field *fields)
{
    uint8_t buf[512];
    size_t len = encode(m, buf, sizeof(buf)), off = HDR;

    tprintf(t, "%s %s\n", dir, sdb_proto_opcode_name(m->opcode));
    for (size_t i = 0; i < HDR; i++)
        tprintf(t, "%s%02x", i ? " " : "  ", buf[i]);
    tprintf(t, "%*s  header: opcode 0x%02x, flags 0x%02x, length %zu, request_id %u\n",
            (int)(3 * (16 - HDR)), "", m->opcode, m->flags, len - HDR, m->request_id);
    for (; fields && fields->label; fields++) {
        size_t w = fields->width, done = 0;
        ck_assert_uint_le(off + w, len);
        do {
            size_t n = w - done > 16 ? 16 : w - done;
            for (size_t i = 0; i < n; i++)
                tprintf(t, "%s%02x", i ? " " : "  ", buf[off + done + i]);
            if (done == 0)
                tprintf(t, "%*s  %s", (int)(3 * (16 - n) + (n == 0 ? 1 : 0)), "", fields->label);
            tprintf(t, "\n");
            done += n;
        } while (done < w);
        off += w;
    }
    ck_assert_uint_eq(off, len);
}

static const char ex_content[] = "hello world";
static const char ex_path[] = "/docs/a.txt";

static sdb_docinfo_t example_doc(void)
{
    sdb_docinfo_t d;
    /* 3f2504e0-4f89-41d3-9a0c-0305e82c3301 */
    static const uint8_t id[16] = { 0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x41, 0xd3,
                                    0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01 };
    memset(&d, 0, sizeof(d));
    memcpy(d.id.b, id, 16);
    d.version = 1;
    d.size = 11;
    d.crc32 = (uint32_t)crc32(0L, (const Bytef *)ex_content, 11);
    d.created_ms = 1767225600000ll;     /* 2026-01-01T00:00:00Z */
    d.modified_ms = 1767225600000ll;
    return d;
}

static const struct field docinfo_fields[] = {
    { 16, "id 3f2504e0-4f89-41d3-9a0c-0305e82c3301" },
    { 8, "version 1" },
    { 8, "size 11" },
    { 4, "crc32 0x0d4a1185" },
    { 8, "created_ms 1767225600000 (2026-01-01T00:00:00Z)" },
    { 8, "modified_ms 1767225600000" },
    { 0, NULL }
};

static void gen_example_hello(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_HELLO;
    m.request_id = 1;
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    m.u.hello.token = S("secret");
    m.u.hello.client = S("example");
    static const struct field hello[] = {
        { 4, "magic \"STDB\"" }, { 2, "min_version 1" }, { 2, "max_version 1" },
        { 2, "token length 6" }, { 6, "token \"secret\"" },
        { 2, "client length 7" }, { 7, "client \"example\"" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, hello);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_HELLO_OK;
    m.request_id = 1;
    m.u.hello_ok.version = 1;
    m.u.hello_ok.max_frame_bytes = 1048576;
    m.u.hello_ok.chunk_bytes = 65536;
    m.u.hello_ok.max_document_bytes = 268435456;
    m.u.hello_ok.max_inflight = 64;
    m.u.hello_ok.server = S("streamdbd/0.1.0");
    static const struct field hello_ok[] = {
        { 4, "magic \"STDB\"" }, { 2, "version 1" }, { 4, "max_frame_bytes 1048576" },
        { 4, "chunk_bytes 65536" }, { 8, "max_document_bytes 268435456" },
        { 4, "max_inflight 64" }, { 2, "server length 15" },
        { 15, "server \"streamdbd/0.1.0\"" }, { 0, NULL }
    };
    dump_frame(t, "S→C", &m, hello_ok);
}

static void gen_example_put(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_PUT_BEGIN;
    m.request_id = 2;
    m.u.put_begin.size = 11;
    m.u.put_begin.if_version = SDB_PROTO_UNSET;
    m.u.put_begin.path = S(ex_path);
    static const struct field begin[] = {
        { 8, "size 11" }, { 8, "if_version unset (0xffffffffffffffff)" },
        { 2, "path length 11" }, { 11, "path \"/docs/a.txt\"" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, begin);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_PUT_DATA;
    m.request_id = 2;
    m.u.raw.ptr = (const uint8_t *)ex_content;
    m.u.raw.len = 6;
    static const struct field data1[] = { { 6, "content bytes 0..5 \"hello \"" }, { 0, NULL } };
    dump_frame(t, "C→S", &m, data1);
    m.u.raw.ptr = (const uint8_t *)ex_content + 6;
    m.u.raw.len = 5;
    static const struct field data2[] = { { 5, "content bytes 6..10 \"world\"" }, { 0, NULL } };
    dump_frame(t, "C→S", &m, data2);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_PUT_END;
    m.request_id = 2;
    m.u.put_end.size = 11;
    m.u.put_end.crc32 = (uint32_t)crc32(0L, (const Bytef *)ex_content, 11);
    ck_assert_uint_eq(m.u.put_end.crc32, 0x0d4a1185);
    static const struct field end[] = {
        { 8, "size 11" }, { 4, "crc32 0x0d4a1185 = crc32(\"hello world\")" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, end);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_DOC;
    m.request_id = 2;
    m.u.doc = example_doc();
    dump_frame(t, "S→C", &m, docinfo_fields);
}

static void gen_example_get(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET;
    m.request_id = 3;
    m.u.path = S(ex_path);
    static const struct field get[] = {
        { 2, "path length 11" }, { 11, "path \"/docs/a.txt\"" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, get);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET_HEADER;
    m.request_id = 3;
    m.u.doc = example_doc();
    dump_frame(t, "S→C", &m, docinfo_fields);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_DATA;
    m.request_id = 3;
    m.u.raw.ptr = (const uint8_t *)ex_content;
    m.u.raw.len = 11;
    static const struct field data[] = { { 11, "content \"hello world\"" }, { 0, NULL } };
    dump_frame(t, "S→C", &m, data);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_END;
    m.request_id = 3;
    dump_frame(t, "S→C", &m, NULL);
}

static void gen_example_error(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_LOOKUP;
    m.request_id = 4;
    m.u.path = S("/nope");
    static const struct field lookup[] = {
        { 2, "path length 5" }, { 5, "path \"/nope\"" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, lookup);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_ERROR;
    m.request_id = 4;
    m.u.error.status = SDB_STATUS_NOT_FOUND;
    m.u.error.message = S("no such path");
    static const struct field error[] = {
        { 2, "status 1 (NOT_FOUND)" }, { 2, "message length 12" },
        { 12, "message \"no such path\"" }, { 0, NULL }
    };
    dump_frame(t, "S→C", &m, error);
}

static void gen_example_search(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_SEARCH;
    m.request_id = 5;
    m.u.search.limit = 10;
    m.u.search.delimiter = '/';
    m.u.search.prefix = S("/docs/");
    static const struct field search[] = {
        { 4, "limit 10" }, { 1, "delimiter '/'" }, { 2, "prefix length 6" },
        { 6, "prefix \"/docs/\"" }, { 2, "start_after length 0 (from the start)" },
        { 0, NULL }
    };
    dump_frame(t, "C→S", &m, search);

    uint8_t buf[512];
    sdb_proto_entries_builder_t b;
    sdb_proto_entry_t e;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(sdb_proto_entries_begin(&b, buf, sizeof(buf)), 0);
    e.kind = SDB_ENTRY_DOC;
    e.path = S(ex_path);
    e.info = example_doc();
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    e.kind = SDB_ENTRY_PREFIX;
    e.path = S("/docs/old/");
    ck_assert_int_eq(sdb_proto_entries_add(&b, &e), 0);
    sdb_proto_entries_finish(&b, 5);
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_ENTRIES;
    m.request_id = 5;
    m.u.entries.count = 2;
    m.u.entries.data = buf + HDR + 2;
    m.u.entries.len = b.len - HDR - 2;
    static const struct field entries[] = {
        { 2, "count 2" },
        { 1, "entry 1: kind 0 (DOC)" }, { 2, "path length 11" }, { 11, "path \"/docs/a.txt\"" },
        { 16, "id 3f2504e0-4f89-41d3-9a0c-0305e82c3301" }, { 8, "version 1" },
        { 8, "size 11" }, { 4, "crc32 0x0d4a1185" }, { 8, "created_ms 1767225600000" },
        { 8, "modified_ms 1767225600000" },
        { 1, "entry 2: kind 1 (PREFIX)" }, { 2, "path length 10" },
        { 10, "path \"/docs/old/\"" }, { 0, NULL }
    };
    dump_frame(t, "S→C", &m, entries);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_LIST_END;
    m.request_id = 5;
    m.u.list_end.count = 2;
    m.u.list_end.more = 0;
    static const struct field list_end[] = {
        { 4, "count 2" }, { 1, "more 0 (the listing is complete)" }, { 0, NULL }
    };
    dump_frame(t, "S→C", &m, list_end);
}

static void gen_example_get_range(text_t *t)
{
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_GET_RANGE;
    m.request_id = 6;
    m.u.path_range.offset = 6;
    m.u.path_range.length = 100;
    m.u.path_range.path = S(ex_path);
    static const struct field get[] = {
        { 8, "offset 6" }, { 8, "length 100 (more than there is: cut at the end)" },
        { 2, "path length 11" }, { 11, "path \"/docs/a.txt\"" }, { 0, NULL }
    };
    dump_frame(t, "C→S", &m, get);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_RANGE_HEADER;
    m.request_id = 6;
    m.u.range_header.doc = example_doc();
    m.u.range_header.offset = 6;
    m.u.range_header.length = 5;
    static const struct field header[] = {
        { 16, "id 3f2504e0-4f89-41d3-9a0c-0305e82c3301" }, { 8, "version 1" },
        { 8, "size 11 (the whole document)" }, { 4, "crc32 0x0d4a1185 (the whole document)" },
        { 8, "created_ms 1767225600000 (2026-01-01T00:00:00Z)" },
        { 8, "modified_ms 1767225600000" },
        { 8, "offset 6 (first byte sent)" }, { 8, "length 5 (bytes sent: 6..10)" }, { 0, NULL }
    };
    dump_frame(t, "S→C", &m, header);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_DATA;
    m.request_id = 6;
    m.u.raw.ptr = (const uint8_t *)ex_content + 6;
    m.u.raw.len = 5;
    static const struct field data[] = { { 5, "content bytes 6..10 \"world\"" }, { 0, NULL } };
    dump_frame(t, "S→C", &m, data);

    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_END;
    m.request_id = 6;
    dump_frame(t, "S→C", &m, NULL);
}

static void (*const generators[])(text_t *) = {
    gen_opcode_table, gen_status_table, gen_example_hello, gen_example_put,
    gen_example_get, gen_example_error, gen_example_search, gen_example_get_range
};

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    text = malloc((size_t)n + 1);
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
        free(text);
        text = NULL;
    }
    if (text)
        text[n] = '\0';
    fclose(f);
    return text;
}

START_TEST(test_protocol_md_matches_codec)
{
    const char *path = getenv("SDB_PROTOCOL_MD");
    const char *dump = getenv("SDB_PROTO_DOCS_OUT");
    static text_t t;
    char *md;
    FILE *out = NULL;
    int missing = 0;

    if (!path)
        path = "proto/PROTOCOL.md";
    md = read_file(path);
    if (dump)
        out = fopen(dump, "w");
    for (size_t g = 0; g < sizeof(generators) / sizeof(generators[0]); g++) {
        t.len = 0;
        t.buf[0] = '\0';
        generators[g](&t);
        if (out)
            fprintf(out, "%s\n", t.buf);
        if (md && !strstr(md, t.buf)) {
            fprintf(stderr, "PROTOCOL.md lacks this generated block (verbatim):\n%s\n", t.buf);
            missing++;
        }
    }
    if (out)
        fclose(out);
    ck_assert_msg(md != NULL, "cannot read %s (run from the repository root)", path);
    free(md);
    ck_assert_msg(missing == 0, "%d generated block(s) missing from %s", missing, path);
}
END_TEST

Suite *suite_proto(void)
{
    Suite *s = suite_create("proto");
    TCase *tables = tcase_create("tables");
    TCase *messages = tcase_create("messages");
    TCase *decoder = tcase_create("decoder");
    TCase *docs = tcase_create("docs");

    tcase_add_test(tables, test_opcode_table);
    tcase_add_test(tables, test_status_bijection);
    tcase_add_test(tables, test_negotiate);

    tcase_add_test(messages, test_roundtrip_every_message);
    tcase_add_test(messages, test_roundtrip_edge_values);
    tcase_add_test(messages, test_exact_layouts);
    tcase_add_test(messages, test_truncated_and_trailing_payloads);
    tcase_add_test(messages, test_malformed_fields);
    tcase_add_test(messages, test_unknown_opcode_and_flags);
    tcase_add_test(messages, test_encode_errors);
    tcase_add_test(messages, test_entries_builder);
    tcase_add_test(messages, test_batch_items);
    tcase_add_test(messages, test_str_copy);

    tcase_set_timeout(decoder, 120);     /* slow under valgrind */
    tcase_add_test(decoder, test_split_every_boundary);
    tcase_add_test(decoder, test_split_pairs_and_bytes);
    tcase_add_test(decoder, test_split_large_frames);
    tcase_add_test(decoder, test_zero_copy);
    tcase_add_test(decoder, test_length_limits);
    tcase_add_test(decoder, test_bad_header_bytes);
    tcase_add_test(decoder, test_truncated_stream);

    tcase_add_test(docs, test_protocol_md_matches_codec);

    suite_add_tcase(s, tables);
    suite_add_tcase(s, messages);
    suite_add_tcase(s, decoder);
    suite_add_tcase(s, docs);
    return s;
}
