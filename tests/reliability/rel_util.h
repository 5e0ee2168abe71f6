/*
 * rel_util.h -- what the reliability harnesses (kill9.c, corrupt.c) share:
 * fatal errors of the harness itself, and the bit mixer their payloads and
 * draws come from.  Each harness sets rel_prog to its name first.
 */
#ifndef SDB_REL_UTIL_H
#define SDB_REL_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const char *rel_prog = "reliability";

/* A failure of the harness (not a finding): prints it and exits with 2. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", rel_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* splitmix64's finaliser: a well-spread 64-bit value from x. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* len bytes from a generator seeded by seed: the same bytes for the same
 * seed, so a payload is checked without being kept. */
static void rel_fill(uint8_t *p, uint64_t seed, size_t len)
{
    uint64_t s = mix(seed);
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            s = mix(s);
        p[i] = (uint8_t)(s >> (8 * (i & 7)));
    }
}

#endif
