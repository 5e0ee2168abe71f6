/*
 * freespace.c -- bitmap free-space manager; see freespace.h.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/freespace.h"
#include "engine/util.h"

static int grow(freespace_t *fs, uint64_t npages)
{
    uint64_t need = (npages + 63) / 64;
    if (need > fs->words) {
        uint64_t nw = fs->words ? fs->words : 64;
        while (nw < need)
            nw *= 2;
        uint64_t **maps[3] = { &fs->bits, &fs->unbacked, &fs->quar };
        for (int m = 0; m < 3; m++) {
            uint64_t *b = realloc(*maps[m], nw * sizeof(uint64_t));
            if (!b)
                return SDB_ENOMEM;     /* the maps grown so far only have spare words */
            memset(b + fs->words, 0, (nw - fs->words) * sizeof(uint64_t));
            *maps[m] = b;
        }
        fs->words = nw;
    }
    return SDB_OK;
}

static inline int bit(const freespace_t *fs, uint64_t i) { return (fs->bits[i >> 6] >> (i & 63)) & 1; }
static inline int bitm(const uint64_t *m, uint64_t i) { return (m[i >> 6] >> (i & 63)) & 1; }
static inline void setb(freespace_t *fs, uint64_t i) { fs->bits[i >> 6] |= 1ull << (i & 63); }
static inline void clrb(freespace_t *fs, uint64_t i) { fs->bits[i >> 6] &= ~(1ull << (i & 63)); }

/* Free pages were added: a remembered failed search may succeed now. */
static inline void forget_norun(freespace_t *fs) { fs->norun_min = UINT64_MAX; }

int freespace_init(freespace_t *fs, uint64_t npages, uint64_t max_pages)
{
    memset(fs, 0, sizeof(*fs));
    if (npages < FIRST_PAGE)
        npages = FIRST_PAGE;
    if (grow(fs, npages))
        return SDB_ENOMEM;
    fs->npages = npages;
    fs->max_pages = max_pages;
    for (uint64_t i = FIRST_PAGE; i < npages; i++)
        setb(fs, i);
    fs->nfree = npages - FIRST_PAGE;
    fs->hint = FIRST_PAGE;
    forget_norun(fs);
    return SDB_OK;
}

void freespace_destroy(freespace_t *fs)
{
    free(fs->bits);
    free(fs->unbacked);
    free(fs->quar);
    memset(fs, 0, sizeof(*fs));
}

int freespace_mark_used(freespace_t *fs, pgno_t start, uint64_t count)
{
    if (start < FIRST_PAGE || start + count < start)
        return SDB_ECORRUPT;
    if (start + count > fs->npages) {
        if (grow(fs, start + count))
            return SDB_ENOMEM;
        for (uint64_t i = fs->npages; i < start + count; i++)
            setb(fs, i);
        fs->nfree += start + count - fs->npages;
        fs->npages = start + count;
        forget_norun(fs);
    }
    for (uint64_t i = start; i < start + count; i++) {
        if (!bit(fs, i))
            return SDB_ECORRUPT;
        clrb(fs, i);
        fs->nfree--;
    }
    return SDB_OK;
}

/* Finds the first free run at or after `from` of at least `min` pages
 * (capped at want); returns its start or UINT64_MAX. */
static uint64_t find_run(freespace_t *fs, uint64_t from, uint64_t min, uint64_t want,
                         uint64_t *len)
{
    uint64_t i = from;
    while (i < fs->npages) {
        fs->scan_steps++;
        uint64_t w = fs->bits[i >> 6] >> (i & 63);
        if (w == 0) {                      /* skip the rest of an all-used word */
            i = (i | 63) + 1;
            continue;
        }
        i += (uint64_t)__builtin_ctzll(w);
        if (i >= fs->npages)
            break;
        uint64_t s = i;
        while (i < fs->npages && i - s < want && bit(fs, i))
            i++;
        fs->scan_steps += i - s;
        if (i - s >= min) {
            *len = i - s;
            return s;
        }
    }
    return UINT64_MAX;
}

/* Returns the quarantine to the free set (the pages may have blocks now:
 * room was made on the file system, or they are tried once more). */
static void release_quarantine(freespace_t *fs)
{
    for (uint64_t w = 0; fs->nquar && w < (fs->npages + 63) / 64; w++) {
        uint64_t q = fs->quar[w];
        if (!q)
            continue;
        fs->bits[w] |= q;
        fs->unbacked[w] &= ~q;
        fs->quar[w] = 0;
        uint64_t n = (uint64_t)__builtin_popcountll(q);
        fs->nfree += n;
        fs->nquar -= n;
        forget_norun(fs);
        if (w * 64 < fs->hint)
            fs->hint = w * 64 < FIRST_PAGE ? FIRST_PAGE : w * 64;
    }
}

int freespace_alloc(freespace_t *fs, uint64_t want, pgno_t *start, uint64_t *got)
{
    if (want == 0)
        want = 1;
    if (fs->nfree == 0 && fs->nquar > 0)
        release_quarantine(fs);
    if (fs->nfree > 0) {
        uint64_t len = 0, min = want < 32 ? want : 32;
        uint64_t s = UINT64_MAX;
        int first = min == 1;              /* s is the first free page at or after the hint */
        if (min == 1 || !(min >= fs->norun_min && fs->hint >= fs->norun_from)) {
            s = find_run(fs, fs->hint, min, want, &len);
            if (s == UINT64_MAX && min > 1 && min < fs->norun_min) {
                fs->norun_min = min;       /* remembered until pages are freed */
                fs->norun_from = fs->hint;
            }
        }
        if (s == UINT64_MAX && min > 1) {
            s = find_run(fs, fs->hint, 1, want, &len);
            first = 1;
        }
        if (s != UINT64_MAX) {
            for (uint64_t i = s; i < s + len; i++)
                clrb(fs, i);
            fs->nfree -= len;
            if (first || s == fs->hint)
                fs->hint = s + len;        /* nothing free was skipped */
            *start = s;
            *got = len;
            return SDB_OK;
        }
        fs->hint = fs->npages;             /* nothing free below the end */
        if (fs->nquar > 0) {               /* (only runs too short were free) */
            release_quarantine(fs);
            return freespace_alloc(fs, 1, start, got);
        }
    }
    /* near the limit, hand out what remains (callers take 1..want pages) */
    if (fs->npages >= fs->max_pages)
        return SDB_ETOOLARGE;
    if (want > fs->max_pages - fs->npages)
        want = fs->max_pages - fs->npages;
    if (grow(fs, fs->npages + want))
        return SDB_ENOMEM;
    *start = fs->npages;
    *got = want;
    fs->npages += want;
    return SDB_OK;
}

void freespace_free(freespace_t *fs, pgno_t start, uint64_t count)
{
    for (uint64_t i = start; i < start + count; i++) {
        if (i < FIRST_PAGE || i >= fs->npages || bit(fs, i) || bitm(fs->quar, i))
            continue;                      /* never double-count */
        if (bitm(fs->unbacked, i)) {
            fs->quar[i >> 6] |= 1ull << (i & 63);
            fs->nquar++;
            continue;
        }
        setb(fs, i);
        fs->nfree++;
        forget_norun(fs);
    }
    if (start < fs->hint)
        fs->hint = start < FIRST_PAGE ? FIRST_PAGE : start;
}

int freespace_is_free(const freespace_t *fs, pgno_t pg)
{
    return pg < fs->npages && bit(fs, pg);
}

void freespace_mark_unbacked(freespace_t *fs, pgno_t start, uint64_t count)
{
    for (uint64_t i = start; i < start + count && i < fs->npages; i++)
        fs->unbacked[i >> 6] |= 1ull << (i & 63);
}
