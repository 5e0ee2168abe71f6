/*
 * pcache.c -- LRU page cache: a chained hash table over a fixed pool of
 * entries, with a doubly linked recency list.  See pcache.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pcache.h"

typedef struct entry {
    pgno_t pg;
    struct entry *hnext, *prev, *next;   /* hash chain; LRU list (head = newest) */
    uint8_t *data;
} entry_t;

struct pcache {
    pthread_mutex_t lock;
    uint32_t cap, used, page_size, nbuckets;
    entry_t **buckets;
    entry_t *entries;
    entry_t *head, *tail;
};

pcache_t *pcache_new(uint32_t pages, uint32_t page_size)
{
    /* over 2^30 pages (512 GiB of cache at the smallest page size) is a
       configuration error, treated as out of memory; it also keeps
       pages * 2 below in 32 bits (it used to wrap, and nbuckets with it: an
       endless loop) */
    if (pages == 0 || pages > (1u << 30))
        return NULL;
    pcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cap = pages;
    c->page_size = page_size;
    c->nbuckets = 1;
    while (c->nbuckets < pages * 2)
        c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    c->entries = calloc(pages, sizeof(*c->entries));
    if (!c->buckets || !c->entries) {
        free(c->buckets);
        free(c->entries);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void pcache_free(pcache_t *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->used; i++)
        free(c->entries[i].data);
    free(c->entries);
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static uint32_t bucket(const pcache_t *c, pgno_t pg)
{
    return (uint32_t)((pg * 0x9E3779B97F4A7C15ull) >> 32) & (c->nbuckets - 1);
}

static entry_t *find(pcache_t *c, pgno_t pg)
{
    for (entry_t *e = c->buckets[bucket(c, pg)]; e; e = e->hnext)
        if (e->pg == pg && e->data)
            return e;
    return NULL;
}

static void lru_unlink(pcache_t *c, entry_t *e)
{
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(pcache_t *c, entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
}

static void hash_remove(pcache_t *c, entry_t *e)
{
    entry_t **pp = &c->buckets[bucket(c, e->pg)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
}

int pcache_get(pcache_t *c, pgno_t pg, uint8_t *out)
{
    pthread_mutex_lock(&c->lock);
    entry_t *e = find(c, pg);
    if (e) {
        memcpy(out, e->data, c->page_size);
        lru_unlink(c, e);
        lru_push(c, e);
    }
    pthread_mutex_unlock(&c->lock);
    return e != NULL;
}

void pcache_put(pcache_t *c, pgno_t pg, const uint8_t *data)
{
    pthread_mutex_lock(&c->lock);
    entry_t *e = find(c, pg);
    if (!e) {
        if (c->used < c->cap) {
            e = &c->entries[c->used];
            e->data = malloc(c->page_size);
            if (!e->data) {
                pthread_mutex_unlock(&c->lock);
                return;
            }
            c->used++;
        } else {
            e = c->tail;
            lru_unlink(c, e);
            hash_remove(c, e);
        }
        e->pg = pg;
        uint32_t b = bucket(c, pg);
        e->hnext = c->buckets[b];
        c->buckets[b] = e;
    } else {
        lru_unlink(c, e);
    }
    memcpy(e->data, data, c->page_size);
    lru_push(c, e);
    pthread_mutex_unlock(&c->lock);
}

void pcache_invalidate(pcache_t *c, pgno_t start, uint64_t n)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    for (uint64_t i = 0; i < n; i++) {
        entry_t *e = find(c, start + i);
        if (e) {
            /* move to the tail with an impossible page number: reused first */
            hash_remove(c, e);
            lru_unlink(c, e);
            e->pg = UINT64_MAX;
            e->hnext = NULL;
            e->next = NULL;
            e->prev = c->tail;
            if (c->tail) c->tail->next = e; else c->head = e;
            c->tail = e;
        }
    }
    pthread_mutex_unlock(&c->lock);
}
