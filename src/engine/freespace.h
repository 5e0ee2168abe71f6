/*
 * freespace.h -- the free-space manager (private): a bitmap with one bit per
 * page of the file (1 = free).  It is derived at open from what the
 * checkpoint and journal reference, so a crash can neither leak a page nor
 * hand out one that is still referenced.  No locking: the engine holds its
 * free-space lock around every call.
 */
#ifndef SDB_FREESPACE_H
#define SDB_FREESPACE_H

#include <stdint.h>
#include "engine/page.h"

typedef struct {
    uint64_t *bits;
    uint64_t *unbacked;   /* 1: a write there failed for lack of space (ENOSPC) */
    uint64_t *quar;       /* 1: unbacked and given back: held out of the free set */
    uint64_t words;       /* allocated words (of each bitmap) */
    uint64_t npages;      /* pages in the file (the logical end) */
    uint64_t nfree;
    uint64_t nquar;       /* pages in quarantine (quar) */
    uint64_t hint;        /* no free page below this */
    uint64_t max_pages;   /* growth limit from max_db_size */
    /* A failed search remembered: no free run of norun_min or more pages
     * starts at or after norun_from.  Allocating keeps it true; freeing
     * pages (or finding more at open) forgets it (norun_min = UINT64_MAX).
     * Without it, each allocation that wants a run in a fragmented file
     * scanned the whole bitmap before it took a single page. */
    uint64_t norun_from, norun_min;
    uint64_t scan_steps;  /* bits and words examined by searches (tests bound the work) */
} freespace_t;

/* Sets up fs for a file of npages pages, all of them free except the two
 * header slots.  0 or SDB_ENOMEM. */
int freespace_init(freespace_t *fs, uint64_t npages, uint64_t max_pages);
void freespace_destroy(freespace_t *fs);

/* Marks [start, start+count) as used (growing the file if needed).
 * Returns 0, or SDB_ECORRUPT when a page is already used (referenced twice)
 * or lies below FIRST_PAGE, or SDB_ENOMEM. */
int freespace_mark_used(freespace_t *fs, pgno_t start, uint64_t count);

/* Allocates up to want (>= 1) contiguous pages: a free run of at least
 * min(want, 32) pages, else the first free run (a search for a long run
 * that fails is remembered until pages are freed, so a fragmented file does
 * not cost a scan of the whole bitmap per allocation), else (the quarantine released)
 * a page of the quarantine, else new pages at the end of the file (no more
 * than max_pages allows).  Stores the run in *start and *got (1..want).
 * Returns 0, or SDB_ETOOLARGE when the file is at max_pages with no free
 * page, or SDB_ENOMEM. */
int freespace_alloc(freespace_t *fs, uint64_t want, pgno_t *start, uint64_t *got);

/* Returns [start, start+count) to the free set; a page marked unbacked goes
 * to the quarantine instead: on a full file system it has no block (a hole,
 * or past the end of the file), so handing it out again would fail the same
 * way while written pages are free.  The quarantine is released when no
 * other page is free (freespace_alloc). */
void freespace_free(freespace_t *fs, pgno_t start, uint64_t count);

/* Marks [start, start+count) unbacked: a write there failed with ENOSPC.
 * Pages past the end are ignored. */
void freespace_mark_unbacked(freespace_t *fs, pgno_t start, uint64_t count);

/* 1 when the page is free. */
int freespace_is_free(const freespace_t *fs, pgno_t pg);

#endif
