/*
 * page.c -- encoding and verification of page headers and header slots.
 *
 * The page CRC is crc32 over the data bytes first, then header bytes 4..48,
 * so the data's own CRC falls out of the same pass: a writer combines those
 * per-page CRCs (crc32_combine) into the document's content CRC without a
 * second pass over the bytes.
 */
#include <string.h>
#include <zlib.h>

#include "engine/page.h"
#include "engine/util.h"

void page_seal(uint8_t *hdr, const page_hdr_t *h, const uint8_t *data, uint32_t *data_crc)
{
    hdr[4] = h->type;
    hdr[5] = h->flags;
    put_u16(hdr + 6, 0);
    put_u32(hdr + 8, h->data_len);
    put_u32(hdr + 12, h->index);
    put_u64(hdr + 16, h->seqno);
    put_u64(hdr + 24, h->next);
    memcpy(hdr + 32, h->owner, 16);
    uLong dc = crc32(0L, data, h->data_len);
    if (data_crc)
        *data_crc = (uint32_t)dc;
    put_u32(hdr, (uint32_t)crc32(dc, hdr + 4, PAGE_HDR - 4));
}

int page_open(const uint8_t *hdr, const uint8_t *data, uint32_t capacity, int verify,
              page_hdr_t *h, uint32_t *data_crc)
{
    h->type = hdr[4];
    h->flags = hdr[5];
    h->data_len = get_u32(hdr + 8);
    h->index = get_u32(hdr + 12);
    h->seqno = get_u64(hdr + 16);
    h->next = get_u64(hdr + 24);
    memcpy(h->owner, hdr + 32, 16);
    if (h->data_len > capacity || h->type < PT_DATA || h->type > PT_CHECKPOINT)
        return SDB_ECORRUPT;
    if (verify) {
        uLong dc = crc32(0L, data, h->data_len);
        if ((uint32_t)crc32(dc, hdr + 4, PAGE_HDR - 4) != get_u32(hdr))
            return SDB_ECORRUPT;
        if (data_crc)
            *data_crc = (uint32_t)dc;
    }
    return SDB_OK;
}

void slot_encode(uint8_t *buf, const slot_t *s)
{
    memset(buf, 0, SLOT_BYTES);
    memcpy(buf, FILE_MAGIC, 8);
    put_u32(buf + 8, FORMAT_VERSION);
    put_u32(buf + 12, s->page_size);
    put_u64(buf + 16, s->generation);
    memcpy(buf + 24, s->file_id, 16);
    put_u64(buf + 40, s->cp_head);
    put_u64(buf + 48, s->cp_pages);
    put_u64(buf + 56, s->cp_bytes);
    put_u32(buf + 64, s->cp_crc);
    put_u32(buf + 68, 0);
    put_u64(buf + 72, s->journal_head);
    put_u64(buf + 80, s->cp_seq);
    put_u64(buf + 88, s->cp_tolerant_until);
    put_u32(buf + 96, (uint32_t)crc32(0L, buf, 96));
}

int slot_decode(const uint8_t *buf, slot_t *s)
{
    uint32_t version = get_u32(buf + 8);
    if (memcmp(buf, FILE_MAGIC, 8) != 0 || version < 1 || version > FORMAT_VERSION ||
        get_u32(buf + 96) != (uint32_t)crc32(0L, buf, 96))
        return SDB_ECORRUPT;
    s->page_size = get_u32(buf + 12);
    s->generation = get_u64(buf + 16);
    memcpy(s->file_id, buf + 24, 16);
    s->cp_head = get_u64(buf + 40);
    s->cp_pages = get_u64(buf + 48);
    s->cp_bytes = get_u64(buf + 56);
    s->cp_crc = get_u32(buf + 64);
    s->journal_head = get_u64(buf + 72);
    s->cp_seq = get_u64(buf + 80);
    s->cp_tolerant_until = version >= 2 ? get_u64(buf + 88) : 0;
    if (s->page_size < 512 || s->page_size > 65536 || (s->page_size & (s->page_size - 1)))
        return SDB_ECORRUPT;
    return SDB_OK;
}
