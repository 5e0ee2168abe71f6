/*
 * itest.h -- assertions and small helpers shared by the integration suites
 * (header-only, static inline, like tests/unit/check_util.h).
 */
#ifndef ITEST_H
#define ITEST_H

#include <check.h>
#include <errno.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_run.h"   /* CK_SKIP */
#include "tclient.h"
#include "tdaemon.h"

/* snprintf without the compiler's truncation analysis: test messages may be
 * cut, that is fine. */
__attribute__((format(printf, 3, 4))) static inline void it_errf(char *dst, size_t cap,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

/* Names a helper's result: "ok", a status name or a TC_* code. */
static inline const char *it_rc_name(int rc)
{
    if (rc == 0)
        return "ok";
    if (rc == TC_CLOSED)
        return "connection closed";
    if (rc == TC_TIMEOUT)
        return "timeout";
    if (rc == TC_BAD)
        return "bad answer";
    const char *n = rc > 0 ? sdb_proto_status_name((unsigned)rc) : NULL;
    return n ? n : "unknown status";
}

/* Asserts that a tclient helper returned want (0 or an SDB_STATUS_*). */
#define IT_RC(c, expr, want)                                                                    \
    do {                                                                                        \
        int rc_ = (expr);                                                                       \
        ck_assert_msg(rc_ == (int)(want), "%s: %d (%s), expected %d (%s); %s%s%s", #expr, rc_,  \
                      it_rc_name(rc_), (int)(want), it_rc_name((int)(want)),                    \
                      rc_ < 0 ? (c)->err : "", rc_ > 0 ? "server says: " : "",                  \
                      rc_ > 0 ? (c)->msg : "");                                                 \
    } while (0)
#define IT_OK(c, expr) IT_RC(c, expr, 0)

/* Asserts that the last ERROR read on c carried the CLOSING flag or not. */
#define IT_CLOSING(c, want)                                                                     \
    ck_assert_msg(!!((c)->flags & SDB_FLAG_CLOSING) == !!(want),                                \
                  "ERROR flags 0x%02x: CLOSING expected %s", (c)->flags, (want) ? "set" : "clear")

static inline tc_t *it_connect(td_t *d, int tcp)
{
    tc_t *c = tcp ? tc_connect_tcp(d->port, 0) : tc_connect_unix(d->sock);
    ck_assert_msg(c != NULL, "connect to the daemon (%s): %s", tcp ? "tcp" : "unix",
                  strerror(errno));
    return c;
}

/* Connects and completes HELLO (no token). */
static inline tc_t *it_session(td_t *d, int tcp)
{
    tc_t *c = it_connect(d, tcp);
    IT_OK(c, tc_hello(c, NULL, NULL));
    return c;
}

/* Asserts that a fresh connection still gets served (HELLO and a PING). */
static inline void it_still_serving(td_t *d, const char *after)
{
    ck_assert_msg(td_alive(d), "the daemon died after %s", after);
    tc_t *c = it_connect(d, 1);
    int rc = tc_hello(c, NULL, NULL);
    if (rc == 0)
        rc = tc_ping(c, after, strlen(after));
    ck_assert_msg(rc == 0, "after %s, a new client is not served: %s %s", after, it_rc_name(rc),
                  c->err);
    tc_close(c);
}

/* STATS, parsed.  cJSON_Delete() the result. */
static inline cJSON *it_stats(tc_t *c)
{
    char *text = NULL;
    IT_OK(c, tc_stats(c, &text));
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL && cJSON_IsObject(j), "STATS is not a JSON object: %.200s", text);
    free(text);
    return j;
}

/* The number at a dotted path ("engine.free_pages"), or -1 when absent. */
static inline double it_num(const cJSON *j, const char *path)
{
    char key[128];
    const char *p = path;
    while (j && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return -1;
        memcpy(key, p, n);
        key[n] = '\0';
        j = cJSON_GetObjectItemCaseSensitive(j, key);
        p = dot ? dot + 1 : p + n;
    }
    return j && cJSON_IsNumber(j) ? j->valuedouble : -1;
}

/* A fresh STATS figure. */
static inline double it_stat(tc_t *c, const char *path)
{
    cJSON *j = it_stats(c);
    double v = it_num(j, path);
    cJSON_Delete(j);
    return v;
}

static inline uint8_t *it_bytes(size_t n, uint32_t seed)
{
    uint8_t *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    tc_fill(b, n, seed);
    return b;
}

static inline int it_id_eq(const sdb_id_t *a, const sdb_id_t *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}

/* Asserts that path reads back (GET) as exactly exp[0..n). */
static inline void it_expect_get(tc_t *c, const char *path, const void *exp, size_t n,
                                 sdb_docinfo_t *info_out)
{
    uint8_t *d = NULL;
    size_t len = 0;
    sdb_docinfo_t info;
    IT_OK(c, tc_get(c, path, &d, &len, &info));
    ck_assert_msg(len == n, "GET %s: %zu bytes, expected %zu", path, len, n);
    ck_assert_msg(n == 0 || memcmp(d, exp, n) == 0, "GET %s: content differs", path);
    ck_assert_msg(info.size == n && info.crc32 == tc_crc(exp, n), "GET %s: header size/crc wrong", path);
    free(d);
    if (info_out)
        *info_out = info;
}

/* Asserts that l's keys are exactly want[0..n) in order; a want entry ending
 * in "*" must be a PREFIX entry (the "*" not part of the key), the others DOC
 * entries. */
static inline void it_expect_list(const tc_list_t *l, const char *const *want, size_t n,
                                  const char *what)
{
    char got[2048];
    size_t off = 0;
    got[0] = '\0';
    for (size_t i = 0; i < l->n && off < sizeof got - 300; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "[%.200s%s]",
                                l->path[i] ? l->path[i] : "(null)",
                                l->kind[i] == SDB_ENTRY_PREFIX ? "*" : "");
    ck_assert_msg(l->n == n, "%s: %zu entries, expected %zu; got %s", what, l->n, n, got);
    for (size_t i = 0; i < n; i++) {
        size_t wl = strlen(want[i]);
        int prefix = wl > 0 && want[i][wl - 1] == '*';
        if (prefix)
            wl--;
        ck_assert_msg(l->path[i] && strlen(l->path[i]) == wl && memcmp(l->path[i], want[i], wl) == 0,
                      "%s: entry %zu is '%s', expected '%.*s'; got %s", what, i,
                      l->path[i] ? l->path[i] : "(null)", (int)wl, want[i], got);
        ck_assert_msg(l->kind[i] == (prefix ? SDB_ENTRY_PREFIX : SDB_ENTRY_DOC),
                      "%s: entry %zu '%s' has kind %u; got %s", what, i, l->path[i], l->kind[i], got);
    }
}

#endif
