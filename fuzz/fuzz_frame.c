/*
 * fuzz_frame.c -- libFuzzer target for the wire codec (src/common/proto.c).
 *
 * The input is a byte stream as a peer could send it.  Its first byte picks
 * how the stream is cut into reads (1..255 bytes, or whole), so that the
 * incremental decoder meets frames split at every position.  Every frame the
 * decoder yields goes through sdb_proto_decode; a message that decodes is
 * encoded again (sdb_proto_encoded_size + sdb_proto_encode) and must decode
 * to the same frame bytes: the codec is its own inverse on valid input.
 * ENTRIES payloads are walked to the end; paths go through
 * sdb_proto_str_copy.  Crashes, sanitizer reports and failed asserts are the
 * findings; errors returned for bad input are the expected outcome.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "streamdb_proto.h"

static void check_message(const sdb_proto_frame_t *f)
{
    sdb_proto_msg_t m;
    if (sdb_proto_decode(f, &m) != SDB_OK)
        return;
    if (m.opcode == SDB_OP_ENTRIES) {
        sdb_proto_entries_iter_t it;
        sdb_proto_entry_t e;
        int rc;
        unsigned n = 0;
        sdb_proto_entries_iter(&m.u.entries, &it);
        while ((rc = sdb_proto_entries_next(&it, &e)) == 1) {
            char path[256];
            (void)sdb_proto_str_copy(&e.path, path, sizeof path);
            n++;
        }
        assert(rc == 0 && n == m.u.entries.count);   /* decode checked every entry */
    }
    if (sdb_proto_opcode_body(m.opcode) == SDB_BODY_PATH) {
        char path[4097];
        (void)sdb_proto_str_copy(&m.u.path, path, sizeof path);
    }
    /* HELLO and HELLO_OK may carry ignored trailing bytes: no exact round trip */
    if (m.opcode == SDB_OP_HELLO || m.opcode == SDB_OP_HELLO_OK)
        return;
    size_t size = 0, len = 0;
    if (sdb_proto_encoded_size(&m, &size) != SDB_OK)
        return;
    assert(size == SDB_PROTO_HEADER_SIZE + f->hdr.length);
    uint8_t *buf = malloc(size);
    if (!buf)
        return;
    int rc = sdb_proto_encode(&m, buf, size, &len);
    assert(rc == SDB_OK && len == size);
    assert(memcmp(buf + SDB_PROTO_HEADER_SIZE, f->payload, f->hdr.length) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] ? data[0] : size;   /* read size: 1..255, 0 = everything */
    data++;
    size--;
    sdb_proto_decoder_t d;
    sdb_proto_decoder_init(&d, SDB_PROTO_MIN_FRAME);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        const uint8_t *p = data + off;
        off += n;
        while (n > 0) {
            size_t used = 0;
            sdb_proto_frame_t f;
            int rc = sdb_proto_decoder_feed(&d, p, n, &used, &f);
            assert(used <= n);
            if (rc < 0)
                goto done;             /* sticky: the connection would be closed */
            p += used;
            n -= used;
            if (rc == 1)
                check_message(&f);
            else
                assert(n == 0);
        }
    }
done:
    sdb_proto_decoder_free(&d);
    return 0;
}
