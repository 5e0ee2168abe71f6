/*
 * util.h -- shared helpers of the engine (private).
 */
#ifndef SDB_UTIL_H
#define SDB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "streamdb.h"

/* Fills buf with len random bytes from the kernel.  0 or SDB_EIO. */
int util_random(void *buf, size_t len);
/* Fills buf from a per-thread PRNG seeded from the kernel (ids, stamps,
 * nonces: unique, not secret).  0 or SDB_EIO. */
int util_fast_random(void *buf, size_t len);
/* Stores a new random UUID v4 in *id.  0 or SDB_EIO. */
int util_new_id(sdb_id_t *id);
/* 1 when s[0..len) is valid UTF-8 without NUL, overlongs or surrogates. */
int util_utf8_valid(const uint8_t *s, size_t len);
/* Validates a caller's path (non-NULL, 1..SDB_MAX_PATH bytes, UTF-8) and
 * stores its length in *len.  0 or SDB_EINVAL. */
int util_check_path(const char *path, size_t *len);
/* Wall clock in Unix milliseconds. */
int64_t util_now_ms(void);
/* The engine's monotonic clock in nanoseconds: what the lazy-mode sync
 * timer reads (commit.c).  Tests may stop and advance it
 * (sdb_test_clock_freeze, backend.h). */
uint64_t util_mono_ns(void);
/* The real monotonic clock in nanoseconds, which tests cannot stop: for
 * waits and time budgets (the leader's gathering, checkpoint slices). */
uint64_t util_mono_ns_real(void);
/* Maps an errno value to an SDB_E* code. */
int util_errno_to_sdb(int e);

/* Little-endian encoding helpers. */
static inline void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
static inline int id_eq(const sdb_id_t *a, const sdb_id_t *b) { return memcmp(a->b, b->b, 16) == 0; }

#endif
