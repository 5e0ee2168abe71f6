/*
 * util.c -- small shared pieces of the engine: error texts, UUID v4 ids,
 * path validation (UTF-8), clocks and the configuration defaults.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/util.h"

const char *sdb_strerror(int err)
{
    switch (err) {
    case SDB_OK: return "success";
    case SDB_ENOTFOUND: return "not found";
    case SDB_EINVAL: return "invalid argument";
    case SDB_ETOOLARGE: return "too large";
    case SDB_ECORRUPT: return "data corrupted (checksum or structure check failed)";
    case SDB_EIO: return "I/O error";
    case SDB_ENOSPC: return "no space left on device";
    case SDB_ELOCKED: return "database is locked by another process";
    case SDB_ECONFLICT: return "version conflict";
    case SDB_ENOMEM: return "out of memory";
    case SDB_EPERM: return "permission denied";
    default: return "unknown error";
    }
}

void sdb_config_default(sdb_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->page_size = 4096;
    cfg->page_cache_pages = 1024;
    cfg->versions_to_keep = 2;
    cfg->max_document_size = 256ull << 20;
    cfg->max_db_size = 8000000000000ull;
    cfg->use_mmap = 1;
    cfg->quick_mode = 0;
    cfg->durable = 1;
}

int util_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SDB_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return SDB_OK;
}

/* xoshiro256** per thread, seeded from the kernel: ids, blob stamps and
 * nonces need uniqueness, not secrecy, and a getrandom() call per put costs
 * more than the rest of a small put's CPU time. */
static _Thread_local uint64_t g_rng[4];
static _Thread_local int g_rng_seeded;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

int util_fast_random(void *buf, size_t len)
{
    if (!g_rng_seeded) {
        int rc = util_random(g_rng, sizeof(g_rng));
        if (rc)
            return rc;
        g_rng[0] |= 1;
        g_rng_seeded = 1;
    }
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t r = rotl(g_rng[1] * 5, 7) * 9, t = g_rng[1] << 17;
        g_rng[2] ^= g_rng[0];
        g_rng[3] ^= g_rng[1];
        g_rng[1] ^= g_rng[2];
        g_rng[0] ^= g_rng[3];
        g_rng[2] ^= t;
        g_rng[3] = rotl(g_rng[3], 45);
        size_t k = len < 8 ? len : 8;
        memcpy(p, &r, k);
        p += k;
        len -= k;
    }
    return SDB_OK;
}

int util_new_id(sdb_id_t *id)
{
    int rc = util_fast_random(id->b, sizeof(id->b));
    if (rc)
        return rc;
    id->b[6] = (uint8_t)((id->b[6] & 0x0f) | 0x40);   /* version 4 */
    id->b[8] = (uint8_t)((id->b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    return SDB_OK;
}

void sdb_id_format(const sdb_id_t *id, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    if (!out)
        return;
    if (!id) {
        out[0] = 0;
        return;
    }
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id->b[i] >> 4];
        out[o++] = hex[id->b[i] & 15];
    }
    out[o] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sdb_id_parse(const char *text, sdb_id_t *out)
{
    sdb_id_t id;
    int bi = 0;
    if (!text || !out)
        return SDB_EINVAL;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return SDB_EINVAL;
            continue;
        }
        int hi = hexval(text[i]);
        if (hi < 0)
            return SDB_EINVAL;
        int lo = hexval(text[++i]);
        if (lo < 0)
            return SDB_EINVAL;
        id.b[bi++] = (uint8_t)(hi << 4 | lo);
    }
    if (text[36] != 0)
        return SDB_EINVAL;
    *out = id;
    return SDB_OK;
}

int util_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return 0;
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (cc & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

int util_check_path(const char *path, size_t *len)
{
    if (!path)
        return SDB_EINVAL;
    size_t n = strnlen(path, SDB_MAX_PATH + 1);
    if (n == 0 || n > SDB_MAX_PATH)
        return SDB_EINVAL;
    if (!util_utf8_valid((const uint8_t *)path, n))
        return SDB_EINVAL;
    if (len)
        *len = n;
    return SDB_OK;
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t util_mono_ns_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The engine clock that tests may stop (sdb_test_clock_freeze): while
 * frozen it reads g_clock_at; otherwise the real clock plus g_clock_off,
 * the time added while it was frozen, so that it never goes back. */
static _Atomic int g_clock_frozen;
static _Atomic uint64_t g_clock_at, g_clock_off;

uint64_t util_mono_ns(void)
{
    if (atomic_load_explicit(&g_clock_frozen, memory_order_relaxed))
        return atomic_load(&g_clock_at);
    return util_mono_ns_real() + atomic_load_explicit(&g_clock_off, memory_order_relaxed);
}

void sdb_test_clock_freeze(int on)
{
    if (on && !atomic_load(&g_clock_frozen)) {
        atomic_store(&g_clock_at, util_mono_ns());
        atomic_store(&g_clock_frozen, 1);
    } else if (!on && atomic_load(&g_clock_frozen)) {
        atomic_store(&g_clock_off, atomic_load(&g_clock_at) - util_mono_ns_real());
        atomic_store(&g_clock_frozen, 0);
    }
}

void sdb_test_clock_advance(uint64_t ns)
{
    if (atomic_load(&g_clock_frozen))
        atomic_fetch_add(&g_clock_at, ns);
    else
        atomic_fetch_add(&g_clock_off, ns);
}

int util_errno_to_sdb(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT: return SDB_ENOSPC;
    case ENOMEM: return SDB_ENOMEM;
    case EWOULDBLOCK: return SDB_ELOCKED;
    case EINVAL:
    case ENAMETOOLONG: return SDB_EINVAL;
    case EFBIG: return SDB_ETOOLARGE;
    case EACCES:
    case EPERM: return SDB_EPERM;
    default: return SDB_EIO;
    }
}
