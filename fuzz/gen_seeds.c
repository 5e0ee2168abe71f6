/*
 * gen_seeds.c -- writes the seed corpus of the fuzz targets into
 * fuzz/corpus/<target>/ (run by `make fuzz-seeds`; the output is committed,
 * a few KB in all).  Seeds are valid inputs, so that the fuzzer starts from
 * the shapes the decoders accept and mutates them:
 *   fuzz_frame: single frames of several opcodes, and one stream of them all;
 *   fuzz_page:  a header slot, a sealed data page and a journal page;
 *   fuzz_open:  an empty database and a small one (3 documents, a second
 *               version, an alias), page size 512.
 * Usage: gen_seeds DIR (normally fuzz/corpus).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/page.h"
#include "streamdb.h"
#include "streamdb_proto.h"

static const char *dir;

static void put_file(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static size_t enc(const sdb_proto_msg_t *m, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (sdb_proto_encode(m, out, cap, &len) != SDB_OK) {
        fprintf(stderr, "gen_seeds: cannot encode opcode 0x%02x\n", m->opcode);
        exit(1);
    }
    return len;
}

static sdb_proto_str_t S(const char *s)
{
    return (sdb_proto_str_t){ s, strlen(s) };
}

static void frames(void)
{
    static uint8_t stream[8192], one[2048];
    size_t slen = 1;
    stream[0] = 7;                      /* fed 7 bytes at a time */
    sdb_proto_msg_t m[16];
    int n = 0;
    memset(m, 0, sizeof m);
    m[n].opcode = SDB_OP_HELLO;
    m[n].u.hello = (sdb_proto_hello_t){ 1, 1, S("token"), S("fuzz") };
    n++;
    m[n].opcode = SDB_OP_PING;
    m[n].u.raw = (sdb_proto_bytes_t){ (const uint8_t *)"ping", 4 };
    n++;
    m[n].opcode = SDB_OP_PUT_BEGIN;
    m[n].request_id = 2;
    m[n].u.put_begin = (sdb_proto_put_begin_t){ 5, SDB_PROTO_UNSET, S("/a/b") };
    n++;
    m[n].opcode = SDB_OP_PUT_DATA;
    m[n].request_id = 2;
    m[n].u.raw = (sdb_proto_bytes_t){ (const uint8_t *)"hello", 5 };
    n++;
    m[n].opcode = SDB_OP_PUT_END;
    m[n].request_id = 2;
    m[n].u.put_end = (sdb_proto_put_end_t){ 5, 0x3610a686u };
    n++;
    m[n].opcode = SDB_OP_GET;
    m[n].flags = SDB_FLAG_QUICK;
    m[n].u.path = S("/a/b");
    n++;
    m[n].opcode = SDB_OP_SEARCH;
    m[n].u.search = (sdb_proto_search_t){ 10, '/', S("/a"), S("") };
    n++;
    m[n].opcode = SDB_OP_ERROR;
    m[n].u.error = (sdb_proto_error_t){ SDB_STATUS_NOT_FOUND, S("no such path: /x") };
    n++;
    m[n].opcode = SDB_OP_LIST_END;
    m[n].u.list_end = (sdb_proto_list_end_t){ 2, 1 };
    n++;
    m[n].opcode = SDB_OP_DOC;
    m[n].u.doc.version = 3;
    m[n].u.doc.size = 5;
    n++;
    for (int i = 0; i < n; i++) {
        size_t len = enc(&m[i], one + 1, sizeof one - 1);
        one[0] = 0;                     /* fed whole */
        char name[32];
        snprintf(name, sizeof name, "op-%02x", m[i].opcode);
        put_file("fuzz_frame", name, one, len + 1);
        memcpy(stream + slen, one + 1, len);
        slen += len;
    }
    /* an ENTRIES frame with a DOC and a PREFIX entry */
    sdb_proto_entries_builder_t b;
    uint8_t eb[512];
    sdb_proto_entries_begin(&b, eb, sizeof eb);
    sdb_proto_entry_t e = { .kind = SDB_ENTRY_DOC, .path = S("/a/b") };
    e.info.version = 1;
    sdb_proto_entries_add(&b, &e);
    e = (sdb_proto_entry_t){ .kind = SDB_ENTRY_PREFIX, .path = S("/a/c/") };
    sdb_proto_entries_add(&b, &e);
    size_t elen = sdb_proto_entries_finish(&b, 9);
    one[0] = 3;
    memcpy(one + 1, eb, elen);
    put_file("fuzz_frame", "entries", one, elen + 1);
    memcpy(stream + slen, eb, elen);
    slen += elen;
    put_file("fuzz_frame", "stream", stream, slen);
}

static void pages(void)
{
    slot_t s;
    memset(&s, 0, sizeof s);
    s.page_size = 512;
    s.generation = 7;
    memset(s.file_id, 0xab, 16);
    s.cp_head = 4;
    s.cp_pages = 1;
    s.cp_bytes = 40;
    s.journal_head = 5;
    s.cp_seq = 12;
    uint8_t slot[SLOT_BYTES];
    slot_encode(slot, &s);
    put_file("fuzz_page", "slot", slot, sizeof slot);
    uint8_t pg[512];
    const char *text = "document bytes";
    for (int type = PT_DATA; type <= PT_JOURNAL; type++) {
        memset(pg, 0, sizeof pg);
        page_hdr_t h = { .type = (uint8_t)type, .flags = PF_LAST, .index = 0, .seqno = 3 };
        h.data_len = (uint32_t)strlen(text);
        memcpy(pg + PAGE_HDR, text, h.data_len);
        page_seal(pg, &h, pg + PAGE_HDR, NULL);
        put_file("fuzz_page", type == PT_DATA ? "data-page" : "journal-page", pg,
                 PAGE_HDR + h.data_len);
    }
}

static void databases(void)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    for (int full = 0; full < 2; full++) {
        sdb_backend_t *mb = backend_mem_new();
        sdb_t *db = NULL;
        if (!mb || sdb_open_backend(mb, &cfg, &db) != SDB_OK)
            exit(1);
        if (full) {
            sdb_docinfo_t a;
            if (sdb_put(db, "/a", "first", 5, &a) || sdb_put(db, "/a", "second", 6, NULL) ||
                sdb_put(db, "/b/c", "bytes of c", 10, NULL) || sdb_put(db, "/d", "", 0, NULL) ||
                sdb_bind(db, &a.id, "/alias") || sdb_delete(db, "/d"))
                exit(1);
        }
        /* the image as the file holds it while open: checkpoint and journal */
        if (sdb_flush(db) != SDB_OK)
            exit(1);
        uint8_t *img;
        size_t len;
        if (backend_mem_dump(mb, &img, &len) != SDB_OK)
            exit(1);
        put_file("fuzz_open", full ? "small-db" : "empty-db", img, len);
        free(img);
        sdb_close(db);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    frames();
    pages();
    databases();
    return 0;
}
