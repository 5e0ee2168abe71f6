/*
 * fuzz_page.c -- libFuzzer target for the page layer's decoders
 * (src/engine/page.c): the header slot (slot_decode, pages 0 and 1) and the
 * page header (page_open, every other page).
 *
 * The input's first SLOT_BYTES bytes are a slot; a slot that decodes is
 * encoded again and must decode to the same fields.  The whole input is also
 * a page (48-byte header, then data) opened with and without verification,
 * at its own length and at the capacities of the page sizes the format
 * allows; a page that opens must keep data_len within the capacity.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/page.h"
#include "streamdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= SLOT_BYTES) {
        slot_t s, s2;
        uint8_t buf[SLOT_BYTES];
        if (slot_decode(data, &s) == SDB_OK) {
            slot_encode(buf, &s);
            int rc = slot_decode(buf, &s2);
            assert(rc == SDB_OK);
            assert(s2.page_size == s.page_size && s2.generation == s.generation &&
                   memcmp(s2.file_id, s.file_id, 16) == 0 && s2.cp_head == s.cp_head &&
                   s2.cp_pages == s.cp_pages && s2.cp_bytes == s.cp_bytes &&
                   s2.cp_crc == s.cp_crc && s2.journal_head == s.journal_head &&
                   s2.cp_seq == s.cp_seq);
        }
    }
    if (size >= PAGE_HDR) {
        /* a page is read whole into a buffer of the page size: copy it so
           that the sanitizer sees reads past the input as overflows */
        uint32_t caps[] = { (uint32_t)(size - PAGE_HDR), 512 - PAGE_HDR, 4096 - PAGE_HDR };
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
            uint32_t cap = caps[i];
            size_t n = PAGE_HDR + (size_t)cap;
            uint8_t *pg = calloc(1, n);
            if (!pg)
                return 0;
            memcpy(pg, data, size < n ? size : n);
            page_hdr_t h;
            uint32_t crc = 0;
            for (int verify = 0; verify < 2; verify++)
                if (page_open(pg, pg + PAGE_HDR, cap, verify, &h, &crc) == SDB_OK)
                    assert(h.data_len <= cap);
            free(pg);
        }
    }
    return 0;
}
