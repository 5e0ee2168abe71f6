/*
 * page.h -- the page layer: fixed-size pages with a 48-byte header carrying
 * a CRC32 (zlib), type, flags, data length and links; and the two header
 * slots at pages 0 and 1.  docs/FORMAT.md describes every byte.
 */
#ifndef SDB_PAGE_H
#define SDB_PAGE_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t pgno_t;           /* page number; 0 means "no page" in links */

#define PAGE_HDR 48
#define FILE_MAGIC "\x55\xAA\xFE\xED\xFA\xCE\xDA\x7A"
#define FORMAT_VERSION 2           /* written; 1 is read too (slot bytes 88..95 were 0) */
#define FIRST_PAGE 2               /* pages 0 and 1 are the header slots */

enum { PT_DATA = 1, PT_JOURNAL = 2, PT_CHECKPOINT = 3 };
#define PF_LAST 0x01               /* last page of its document version / group / checkpoint */
#define PF_ORDERED 0x02            /* journal: every earlier group was synced before this page
                                      was written (so its loss can only be damage) */

typedef struct {
    uint8_t type, flags;
    uint32_t data_len;
    uint32_t index;                /* page's position within its object */
    uint64_t seqno;                /* journal: commit sequence; checkpoint: generation */
    pgno_t next;                   /* next page of a chain; 0 for data pages */
    uint8_t owner[16];             /* data: blob id; journal/checkpoint: file id */
} page_hdr_t;

/* Encodes h into hdr[0..PAGE_HDR) with the CRC over data[0..h->data_len)
 * then header bytes 4..48.  Stores crc32(0, data, data_len) in *data_crc
 * (may be NULL). */
void page_seal(uint8_t *hdr, const page_hdr_t *h, const uint8_t *data, uint32_t *data_crc);

/* Decodes and verifies a page whose header is at hdr and data at data
 * (normally hdr + PAGE_HDR; data may be a copy).  capacity is the page's
 * data capacity.  With verify 0 only the header fields are decoded and
 * bounds-checked.  Stores crc32 of the data in *data_crc when verified
 * (may be NULL).  Returns 0 or SDB_ECORRUPT. */
int page_open(const uint8_t *hdr, const uint8_t *data, uint32_t capacity, int verify,
              page_hdr_t *h, uint32_t *data_crc);

/* The decoded header slot (pages 0 and 1). */
typedef struct {
    uint32_t page_size;
    uint64_t generation;           /* higher is newer */
    uint8_t file_id[16];
    pgno_t cp_head;                /* first checkpoint page; 0 = empty database */
    uint64_t cp_pages;
    uint64_t cp_bytes;             /* length of the checkpoint record stream */
    uint32_t cp_crc;               /* crc32 of that stream */
    pgno_t journal_head;           /* page of the first journal group after the checkpoint */
    uint64_t cp_seq;               /* last commit sequence folded into the checkpoint */
    uint64_t cp_tolerant_until;    /* groups up to this sequence overlapped the checkpoint's
                                      encoding (background checkpoint): replay them
                                      tolerantly; 0 = none */
} slot_t;

#define SLOT_BYTES 100

/* Encodes s into buf[0..SLOT_BYTES) with magic and CRC. */
void slot_encode(uint8_t *buf, const slot_t *s);
/* Decodes buf; returns 0, or SDB_ECORRUPT on bad magic, version or CRC. */
int slot_decode(const uint8_t *buf, slot_t *s);

#endif
