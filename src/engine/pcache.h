/*
 * pcache.h -- an LRU cache of whole pages for reads that cannot go through a
 * memory mapping (use_mmap 0, or a backend without map).  Committed pages
 * are immutable until freed and reused, and every write path invalidates the
 * pages it writes, so a cached page is never stale.  Thread-safe.
 */
#ifndef SDB_PCACHE_H
#define SDB_PCACHE_H

#include <stdint.h>
#include "engine/page.h"

typedef struct pcache pcache_t;

/* Returns a cache of up to `pages` pages of page_size bytes, or NULL when
 * pages is 0 or over 2^30, or memory is short. */
pcache_t *pcache_new(uint32_t pages, uint32_t page_size);
void pcache_free(pcache_t *c);
/* Copies page pg into out and returns 1 on a hit; 0 on a miss. */
int pcache_get(pcache_t *c, pgno_t pg, uint8_t *out);
/* Stores a copy of page pg (evicting the least recently used page). */
void pcache_put(pcache_t *c, pgno_t pg, const uint8_t *data);
/* Drops pages [start, start+n) from the cache. */
void pcache_invalidate(pcache_t *c, pgno_t start, uint64_t n);

#endif
