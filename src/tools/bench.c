/*
 * bench.c -- streamdb-bench: a load generator for streamdbd in the style of
 * redis-benchmark.  It opens C connections (TCP or a Unix socket), keeps up to
 * P requests in flight on each, and reports per operation the rate and the
 * latency percentiles, in text or as one JSON object per operation.
 *
 * It speaks the wire protocol (proto/PROTOCOL.md) through the shared codec
 * (streamdb_proto.h) only: no client library, no engine.  Each of T threads
 * runs one epoll loop over its share of the connections.  A request's latency
 * runs from the moment its frames are handed to the socket to the moment the
 * last frame of its response is decoded.
 *
 * Design notes (the invariants the checks rely on):
 *  1. Every response is checked, never just counted: its request id against
 *     the oldest request in flight on its connection (the server answers in
 *     request order), its opcode against the request, its sizes, and for a
 *     GET every byte.  A failed check counts one error and prints a message
 *     naming what was wrong; any error makes the exit status 1.
 *  2. Values are self-describing, so that any GET can be verified whoever
 *     wrote the value: bytes 0..3 "SDBV", 4..7 the key number, 8..15 a seed
 *     chosen by the writer, then a xorshift stream derived from key and seed.
 *     Hence --size is at least 16.
 *  3. A response that cannot be matched (wrong id, out of order, unexpected
 *     opcode, malformed frame) leaves the stream unusable: the connection is
 *     closed and every request still in flight on it counts as an error.
 *  4. get, mixed and search need their keys to exist: before the first of
 *     them, every key of the key space is written once (the populate phase,
 *     like redis-benchmark's SET before GET), unless --no-populate.
 *  5. --redis speaks RESP2 to a Redis server through the same loop,
 *     connections, pipelining, keys, values and latency clock, so that one
 *     generator measures both servers: ping is PING (+PONG), put is SET key
 *     value (+OK), get is GET key (a bulk string of exactly --size bytes,
 *     checked byte by byte as in note 2; nil is an error), mixed and populate
 *     as above; search has no RESP form here and is refused.  RESP carries no
 *     request id: replies match requests by order alone, and a reply that does
 *     not fit the oldest request in flight closes the connection (note 3).
 *  6. --pipeline-style: "window" (default) refills a connection up to P
 *     requests in flight after every reply; "batch" sends P and waits for all P
 *     replies before sending the next P, as redis-benchmark -P does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "streamdb_proto.h"

#define PROG "streamdb-bench"
#define STAMP_SIZE 16u
#define MAX_ERROR_LINES 10
#define READ_BUF (256u * 1024u)

/* ---- Options -------------------------------------------------------------- */

enum op { OP_PING, OP_PUT, OP_GET, OP_MIXED, OP_SEARCH, OP_POPULATE, OP_COUNT };
static const char *const op_names[OP_COUNT] = { "ping", "put", "get", "mixed", "search",
                                                "populate" };
static const char *const op_titles[OP_COUNT] = { "PING", "PUT", "GET", "MIXED (90% GET, 10% PUT)",
                                                 "SEARCH", "POPULATE" };

/* What goes on the wire for one request. */
enum req { RQ_PING, RQ_PUT, RQ_GET, RQ_SEARCH };

static struct {
    const char *host, *port, *socket, *token, *prefix;
    int conns, pipeline, threads, json, quiet, populate;   /* populate: -1 no, 0 auto, 1 always */
    uint64_t requests;
    double duration;
    size_t size;
    uint32_t keys;
    int ops[OP_COUNT];
    int nops;
    int resp;                   /* --redis: RESP2 to a Redis server (design note 5) */
    int batch;                  /* --pipeline-style batch (design note 6) */
} opt = { "127.0.0.1", "7878", NULL, NULL, "/bench/", 50, 1, 1, 0, 0, 0, 100000, 0,
          1024, 100000, { 0 }, 0, 0, 0 };

static char addr_text[600];     /* for messages: "127.0.0.1:7878" or "unix:PATH" */
static char key_base[512];      /* opt.prefix + "<keys>/" */
static int key_width;           /* digits of keys - 1 */
static uint32_t srv_chunk, srv_frame;

#define RESP_LINE_MAX 512       /* longest RESP reply line kept (error text included) */
#define RESP_PING "*1\r\n$4\r\nPING\r\n"
enum { RS_LINE, RS_BULK, RS_CRLF };   /* where a connection's RESP reply parser is */

/* ---- Small helpers ---------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Noreturn void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t key_path(uint32_t key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%0*" PRIu32, key_base, key_width, key);
    return n < 0 ? 0 : (size_t)n;
}

/* Fills v[0..size) with the value of (key, seed): design note 2. */
static void value_fill(uint8_t *v, size_t size, uint32_t key, uint64_t seed)
{
    memcpy(v, "SDBV", 4);
    for (int i = 0; i < 4; i++)
        v[4 + i] = (uint8_t)(key >> (8 * i));
    for (int i = 0; i < 8; i++)
        v[8 + i] = (uint8_t)(seed >> (8 * i));
    uint64_t s = ((uint64_t)key + 1) * 0x9E3779B97F4A7C15ull ^ seed * 0xD1B54A32D192ED03ull;
    if (s == 0)
        s = 1;
    size_t i = STAMP_SIZE;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= size; i += 8) {   /* the same bytes as below, 8 at a time */
        uint64_t r = xorshift64(&s);
        memcpy(v + i, &r, 8);
    }
#endif
    while (i < size) {
        uint64_t r = xorshift64(&s);
        for (int b = 0; b < 8 && i < size; b++, i++)
            v[i] = (uint8_t)(r >> (8 * b));
    }
}

/* ---- Latency histogram: log-linear buckets of nanoseconds, 32 per power of
 * two above 64 ns (a bucket is at most 1/32 = 3 % wide). -------------------- */

#define H_BUCKETS (64 * 32 + 64)

typedef struct {
    uint64_t n[H_BUCKETS];
    uint64_t count, max;
} hist_t;

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 5;
    unsigned i = shift * 32 + (unsigned)(v >> shift);
    return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

static uint64_t hist_value(unsigned i)
{
    if (i < 64)
        return i;
    unsigned shift = i / 32 - 1;
    uint64_t lo = (uint64_t)(i % 32 + 32) << shift;
    return lo + ((uint64_t)1 << shift) / 2;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(hist_t *into, const hist_t *h)
{
    for (unsigned i = 0; i < H_BUCKETS; i++)
        into->n[i] += h->n[i];
    into->count += h->count;
    if (h->max > into->max)
        into->max = h->max;
}

/* The p-quantile (0 < p <= 1) in milliseconds; the max for p = 1. */
static double hist_ms(const hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 1)
        return (double)h->max / 1e6;
    uint64_t want = (uint64_t)(p * (double)h->count + 0.999999), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return (double)(v > h->max ? h->max : v) / 1e6;
        }
    }
    return (double)h->max / 1e6;
}

/* ---- Connections ------------------------------------------------------------ */

typedef struct {
    uint32_t rid;
    uint8_t kind;           /* enum req */
    uint8_t got_header;     /* GET: GET_HEADER seen */
    uint32_t key;
    uint64_t seed;          /* PUT: the seed written */
    uint32_t crc;           /* PUT: CRC sent; GET: the header's CRC */
    uint64_t size;          /* GET: the header's size */
    uint64_t recvd;         /* GET: DATA bytes received; SEARCH: entries received */
    uint64_t t0;            /* when the request went to the socket */
} pending_t;

struct worker;

typedef struct {
    int fd, id, open;
    struct worker *w;
    sdb_proto_decoder_t dec;
    uint32_t next_rid;
    pending_t *q;           /* ring of opt.pipeline requests in flight */
    unsigned qhead, qlen;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int want_out;           /* EPOLLOUT registered */
    uint8_t *val;           /* GET: the value received */
    char last[600];         /* SEARCH: the last path listed */
    size_t last_len;
    int rs;                 /* --redis: RS_LINE, RS_BULK (value bytes), RS_CRLF (after them) */
    size_t line_len;        /* --redis: bytes in line (RS_LINE), CRLF bytes seen (RS_CRLF) */
    char line[RESP_LINE_MAX];
} conn_t;

typedef struct worker {
    int idx, epfd, nconns, open_conns;
    conn_t *conns;
    pthread_t thread;
    hist_t hist;
    uint64_t done, errors;
    uint64_t seed_next;
    uint64_t rng;
    uint64_t last_ns;       /* when the last response of the phase arrived */
    uint8_t *scratch;       /* a value being written or checked */
    uint8_t *rbuf;
} worker_t;

/* The phase being run (shared by the workers). */
static struct {
    enum op op;
    uint64_t limit;           /* requests to issue (or keys, populate) */
    uint64_t deadline;        /* duration mode: stop issuing at this time */
    atomic_uint_fast64_t issued;
    uint64_t start;
} phase;

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned err_lines;
static atomic_uint_fast64_t total_errors;

/* Counts one error of connection c and prints what was wrong (the first
 * MAX_ERROR_LINES of the run; the count is in the summary). */
static void bench_error(conn_t *c, const char *fmt, ...)
{
    c->w->errors++;
    atomic_fetch_add(&total_errors, 1);
    pthread_mutex_lock(&err_lock);
    if (err_lines < MAX_ERROR_LINES) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, PROG ": %s: connection %d: ", op_names[phase.op], c->id);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    } else if (err_lines == MAX_ERROR_LINES) {
        fprintf(stderr, PROG ": more errors follow; only their count is shown\n");
    }
    err_lines++;
    pthread_mutex_unlock(&err_lock);
}

static void conn_close(conn_t *c, const char *why)
{
    if (!c->open)
        return;
    if (c->qlen > 0) {
        bench_error(c, "closing the connection (%s): %u request(s) in flight counted as errors",
                    why, c->qlen);
        c->w->errors += c->qlen - 1;
        atomic_fetch_add(&total_errors, c->qlen - 1);
    }
    epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->open = 0;
    c->qlen = 0;
    c->w->open_conns--;
}

static void out_reserve(conn_t *c, size_t more)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        die(1, "out of memory");
    c->out = p;
    c->out_cap = cap;
}

static void out_msg(conn_t *c, const sdb_proto_msg_t *m)
{
    size_t need = 0, len = 0;
    if (sdb_proto_encoded_size(m, &need) != 0)
        die(1, "internal error: cannot encode %s", sdb_proto_opcode_name(m->opcode));
    out_reserve(c, need);
    if (sdb_proto_encode(m, c->out + c->out_len, c->out_cap - c->out_len, &len) != 0)
        die(1, "internal error: cannot encode %s", sdb_proto_opcode_name(m->opcode));
    c->out_len += len;
}

static void out_raw(conn_t *c, uint8_t opcode, uint32_t rid, const void *data, size_t len)
{
    out_reserve(c, SDB_PROTO_HEADER_SIZE + len);
    sdb_proto_header_t h = { .opcode = opcode, .flags = 0, .length = (uint32_t)len,
                             .request_id = rid };
    sdb_proto_header_encode(c->out + c->out_len, &h);
    if (len)
        memcpy(c->out + c->out_len + SDB_PROTO_HEADER_SIZE, data, len);
    c->out_len += SDB_PROTO_HEADER_SIZE + len;
}

static void out_bytes(conn_t *c, const void *data, size_t len)
{
    out_reserve(c, len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Encodes request p as a RESP2 command (design note 5). */
static void resp_issue(conn_t *c, pending_t *p, const char *path, size_t plen)
{
    char head[700];
    int n;
    switch (p->kind) {
    case RQ_PING:
        out_bytes(c, RESP_PING, sizeof(RESP_PING) - 1);
        break;
    case RQ_GET:
        n = snprintf(head, sizeof(head), "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", plen, path);
        out_bytes(c, head, (size_t)n);
        break;
    case RQ_PUT:
        p->seed = c->w->seed_next++;
        n = snprintf(head, sizeof(head), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", plen,
                     path, opt.size);
        out_reserve(c, (size_t)n + opt.size + 2);
        memcpy(c->out + c->out_len, head, (size_t)n);
        value_fill(c->out + c->out_len + n, opt.size, p->key, p->seed);
        memcpy(c->out + c->out_len + n + opt.size, "\r\n", 2);
        c->out_len += (size_t)n + opt.size + 2;
        break;
    default:   /* SEARCH: refused by parse_args */
        die(1, "internal error: no RESP form for this request");
    }
}

static void conn_set_out(conn_t *c, int want)
{
    if (c->want_out == want || !c->open)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

static void conn_flush(conn_t *c)
{
    while (c->open && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_out(c, 1);
            return;
        }
        char why[200];
        snprintf(why, sizeof(why), "send: %s", strerror(errno));
        conn_close(c, why);
        return;
    }
    c->out_off = c->out_len = 0;
    conn_set_out(c, 0);
}

/* Takes the next request of the phase, or returns 0 when none is left. */
static int phase_take(worker_t *w, uint64_t *n)
{
    if (phase.deadline) {
        if (now_ns() >= phase.deadline)
            return 0;
        *n = atomic_fetch_add(&phase.issued, 1);
        return 1;
    }
    (void)w;
    *n = atomic_fetch_add(&phase.issued, 1);
    return *n < phase.limit;
}

static void conn_issue(conn_t *c, uint64_t n)
{
    worker_t *w = c->w;
    pending_t *p = &c->q[(c->qhead + c->qlen) % (unsigned)opt.pipeline];
    memset(p, 0, sizeof(*p));
    p->rid = c->next_rid++;
    if (c->next_rid == 0)
        c->next_rid = 2;
    switch (phase.op) {
    case OP_PING: p->kind = RQ_PING; break;
    case OP_PUT: p->kind = RQ_PUT; break;
    case OP_GET: p->kind = RQ_GET; break;
    case OP_SEARCH: p->kind = RQ_SEARCH; break;
    case OP_POPULATE: p->kind = RQ_PUT; break;
    default: p->kind = xorshift64(&w->rng) % 10 == 0 ? RQ_PUT : RQ_GET; break;
    }
    p->key = phase.op == OP_POPULATE ? (uint32_t)n : (uint32_t)(xorshift64(&w->rng) % opt.keys);
    char path[600];
    size_t plen = key_path(p->key, path, sizeof(path));
    if (opt.resp) {
        resp_issue(c, p, path, plen);
        c->qlen++;
        return;
    }
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.request_id = p->rid;
    switch (p->kind) {
    case RQ_PING:
        out_raw(c, SDB_OP_PING, p->rid, NULL, 0);
        break;
    case RQ_GET:
        m.opcode = SDB_OP_GET;
        m.u.path.ptr = path;
        m.u.path.len = plen;
        out_msg(c, &m);
        break;
    case RQ_SEARCH:
        m.opcode = SDB_OP_SEARCH;
        m.u.search.prefix.ptr = path;
        m.u.search.prefix.len = plen - 1;   /* the key without its last digit */
        out_msg(c, &m);
        break;
    case RQ_PUT:
        p->seed = w->seed_next++;
        value_fill(w->scratch, opt.size, p->key, p->seed);
        p->crc = (uint32_t)crc32(0L, w->scratch, (uInt)opt.size);
        m.opcode = SDB_OP_PUT_BEGIN;
        m.u.put_begin.size = opt.size;
        m.u.put_begin.if_version = SDB_PROTO_UNSET;
        m.u.put_begin.path.ptr = path;
        m.u.put_begin.path.len = plen;
        out_msg(c, &m);
        for (size_t off = 0; off < opt.size; off += srv_chunk) {
            size_t len = opt.size - off < srv_chunk ? opt.size - off : srv_chunk;
            out_raw(c, SDB_OP_PUT_DATA, p->rid, w->scratch + off, len);
        }
        memset(&m, 0, sizeof(m));
        m.opcode = SDB_OP_PUT_END;
        m.request_id = p->rid;
        m.u.put_end.size = opt.size;
        m.u.put_end.crc32 = p->crc;
        out_msg(c, &m);
        break;
    }
    c->qlen++;
}

/* Issues requests until P are in flight or the phase has none left, then
 * hands them to the socket.  In batch style (design note 6) only a
 * connection with nothing in flight gets new requests. */
static void conn_fill(conn_t *c)
{
    if (!c->open || (opt.batch && c->qlen > 0))
        return;
    unsigned before = c->qlen;
    uint64_t n;
    while (c->qlen < (unsigned)opt.pipeline && phase_take(c->w, &n))
        conn_issue(c, n);
    if (c->qlen == before)
        return;
    uint64_t t = now_ns();
    for (unsigned i = before; i < c->qlen; i++)
        c->q[(c->qhead + i) % (unsigned)opt.pipeline].t0 = t;
    conn_flush(c);
}

static void req_done(conn_t *c, pending_t *p, int ok)
{
    uint64_t t = now_ns();
    if (ok) {
        hist_add(&c->w->hist, t - p->t0);
        c->w->done++;
    }
    c->w->last_ns = t;
    c->last_len = 0;   /* responses are contiguous: the next SEARCH starts afresh */
    c->qhead = (c->qhead + 1) % (unsigned)opt.pipeline;
    c->qlen--;
}

static const char *req_name(const pending_t *p)
{
    static const char *const n[] = { "PING", "PUT", "GET", "SEARCH" };
    return n[p->kind];
}

/* Checks a finished GET value of opt.size bytes in c->val: design note 2.
 * path is the key's path for the messages, or NULL to have it formatted only
 * when one is needed.  Returns 1 when right. */
static int check_value(conn_t *c, pending_t *p, const char *path)
{
    char buf[600];
    if (!path) {
        key_path(p->key, buf, sizeof(buf));
        path = buf;
    }
    const uint8_t *v = c->val;
    uint32_t key = (uint32_t)v[4] | (uint32_t)v[5] << 8 | (uint32_t)v[6] << 16 |
                   (uint32_t)v[7] << 24;
    if (memcmp(v, "SDBV", 4) != 0 || key != p->key) {
        bench_error(c, "GET %s: the value's first bytes are not the stamp written for key %" PRIu32
                    " (magic %02x%02x%02x%02x, key %" PRIu32 ")", path, p->key, v[0], v[1], v[2],
                    v[3], key);
        return 0;
    }
    uint64_t seed = 0;
    for (int i = 0; i < 8; i++)
        seed |= (uint64_t)v[8 + i] << (8 * i);
    value_fill(c->w->scratch, opt.size, p->key, seed);
    if (memcmp(c->w->scratch, v, opt.size) != 0) {
        size_t i = 0;
        while (c->w->scratch[i] == v[i])
            i++;
        bench_error(c, "GET %s: byte %zu of %zu differs from the value written (got 0x%02x, "
                    "expected 0x%02x)", path, i, opt.size, v[i], c->w->scratch[i]);
        return 0;
    }
    return 1;
}

/* Handles one response frame; returns 0, or -1 when the connection must be
 * closed (design note 3; the reason is already reported). */
static int conn_frame(conn_t *c, const sdb_proto_frame_t *f)
{
    sdb_proto_msg_t m;
    int rc = sdb_proto_decode(f, &m);
    if (rc != 0) {
        bench_error(c, "malformed %s frame (request id %" PRIu32 "): %s",
                    sdb_proto_opcode_name(f->hdr.opcode) ? sdb_proto_opcode_name(f->hdr.opcode)
                                                         : "unknown",
                    f->hdr.request_id, sdb_proto_strerror(rc));
        return -1;
    }
    if (m.opcode == SDB_OP_ERROR && m.request_id == 0) {
        bench_error(c, "the server closed the session: ERROR %s: %.*s",
                    sdb_proto_status_name(m.u.error.status) ? sdb_proto_status_name(m.u.error.status)
                                                            : "?",
                    (int)m.u.error.message.len, m.u.error.message.ptr);
        return -1;
    }
    if (c->qlen == 0) {
        bench_error(c, "%s frame with request id %" PRIu32 " while no request is in flight",
                    sdb_proto_opcode_name(m.opcode), m.request_id);
        return -1;
    }
    pending_t *p = &c->q[c->qhead];
    if (m.request_id != p->rid) {
        for (unsigned i = 1; i < c->qlen; i++)
            if (c->q[(c->qhead + i) % (unsigned)opt.pipeline].rid == m.request_id) {
                bench_error(c, "responses out of order: %s for request id %" PRIu32
                            " arrived before the response to request id %" PRIu32,
                            sdb_proto_opcode_name(m.opcode), m.request_id, p->rid);
                return -1;
            }
        bench_error(c, "wrong request id: %s frame with request id %" PRIu32
                    ", expected %" PRIu32 " (%s)", sdb_proto_opcode_name(m.opcode),
                    m.request_id, p->rid, req_name(p));
        return -1;
    }
    char path[600];
    key_path(p->key, path, sizeof(path));
    if (m.opcode == SDB_OP_ERROR) {
        bench_error(c, "%s %s: ERROR %s: %.*s", req_name(p), p->kind == RQ_PING ? "" : path,
                    sdb_proto_status_name(m.u.error.status) ? sdb_proto_status_name(m.u.error.status)
                                                            : "(unknown status)",
                    (int)m.u.error.message.len, m.u.error.message.ptr);
        req_done(c, p, 0);
        return (m.flags & SDB_FLAG_CLOSING) ? -1 : 0;
    }
    switch (p->kind) {
    case RQ_PING:
        if (m.opcode != SDB_OP_PONG)
            break;
        if (m.u.raw.len != 0) {
            bench_error(c, "PING: PONG carries %zu bytes, the PING none", m.u.raw.len);
            req_done(c, p, 0);
            return 0;
        }
        req_done(c, p, 1);
        return 0;
    case RQ_PUT:
        if (m.opcode != SDB_OP_DOC)
            break;
        if (m.u.doc.size != opt.size || m.u.doc.crc32 != p->crc || m.u.doc.version == 0) {
            bench_error(c, "PUT %s: DOC says size %" PRIu64 ", CRC32 %08x, version %" PRIu64
                        "; sent %zu bytes with CRC32 %08x", path, m.u.doc.size, m.u.doc.crc32,
                        m.u.doc.version, opt.size, p->crc);
            req_done(c, p, 0);
            return 0;
        }
        req_done(c, p, 1);
        return 0;
    case RQ_GET:
        if (!p->got_header) {
            if (m.opcode != SDB_OP_GET_HEADER)
                break;
            if (m.u.doc.size != opt.size) {
                bench_error(c, "GET %s: GET_HEADER says %" PRIu64 " bytes, the key space holds "
                            "values of %zu (--size)", path, m.u.doc.size, opt.size);
                return -1;
            }
            p->got_header = 1;
            p->size = m.u.doc.size;
            p->crc = m.u.doc.crc32;
            return 0;
        }
        if (m.opcode == SDB_OP_DATA) {
            if (m.u.raw.len == 0 || p->recvd + m.u.raw.len > p->size) {
                bench_error(c, "GET %s: DATA of %zu bytes after %" PRIu64 " of %" PRIu64, path,
                            m.u.raw.len, p->recvd, p->size);
                return -1;
            }
            memcpy(c->val + p->recvd, m.u.raw.ptr, m.u.raw.len);
            p->recvd += m.u.raw.len;
            return 0;
        }
        if (m.opcode != SDB_OP_END)
            break;
        if (p->recvd != p->size) {
            bench_error(c, "GET %s: END after %" PRIu64 " of %" PRIu64 " bytes", path, p->recvd,
                        p->size);
            req_done(c, p, 0);
            return 0;
        }
        uint32_t crc = (uint32_t)crc32(0L, c->val, (uInt)p->recvd);
        if (crc != p->crc) {
            bench_error(c, "GET %s: CRC32 of the %" PRIu64 " bytes received is %08x, the server's "
                        "GET_HEADER says %08x", path, p->recvd, crc, p->crc);
            req_done(c, p, 0);
            return 0;
        }
        req_done(c, p, check_value(c, p, path));
        return 0;
    case RQ_SEARCH: {
        size_t plen = strlen(path) - 1;
        if (m.opcode == SDB_OP_ENTRIES) {
            sdb_proto_entries_iter_t it;
            sdb_proto_entry_t e;
            sdb_proto_entries_iter(&m.u.entries, &it);
            while ((rc = sdb_proto_entries_next(&it, &e)) == 1) {
                size_t n = e.path.len < c->last_len ? e.path.len : c->last_len;
                int cmp = memcmp(e.path.ptr, c->last, n);
                if (e.kind != SDB_ENTRY_DOC || e.path.len != plen + 1 ||
                    memcmp(e.path.ptr, path, plen) != 0 || e.info.size != opt.size ||
                    (c->last_len && (cmp < 0 || (cmp == 0 && e.path.len <= c->last_len)))) {
                    bench_error(c, "SEARCH %.*s: unexpected entry %.*s (kind %u, size %" PRIu64
                                ")", (int)plen, path, (int)e.path.len, e.path.ptr, e.kind,
                                e.info.size);
                    return -1;
                }
                memcpy(c->last, e.path.ptr, e.path.len);
                c->last_len = e.path.len;
                p->recvd++;
            }
            if (rc < 0) {
                bench_error(c, "SEARCH: malformed ENTRIES");
                return -1;
            }
            return 0;
        }
        if (m.opcode != SDB_OP_LIST_END)
            break;
        uint64_t base = p->key / 10 * 10;
        uint64_t want = (base + 10 < opt.keys ? base + 10 : opt.keys) - base;
        if (m.u.list_end.count != p->recvd || m.u.list_end.more || p->recvd != want) {
            bench_error(c, "SEARCH %.*s: %" PRIu64 " entries received, LIST_END says %" PRIu32
                        " (more %u); the key space has %" PRIu64, (int)plen, path, p->recvd,
                        m.u.list_end.count, m.u.list_end.more, want);
            req_done(c, p, 0);
            return 0;
        }
        req_done(c, p, 1);
        return 0;
    }
    }
    bench_error(c, "%s %s: unexpected %s frame", req_name(p), p->kind == RQ_PING ? "" : path,
                sdb_proto_opcode_name(m.opcode));
    return -1;
}

/* Handles one RESP reply line l[0..len) (CRLF removed) for the oldest request
 * in flight; returns 0, or -1 when the connection must be closed (design
 * notes 3 and 5; the reason is already reported). */
static int resp_line(conn_t *c, const char *l, size_t len)
{
    int shown = len > 200 ? 200 : (int)len;
    if (c->qlen == 0) {
        bench_error(c, "reply \"%.*s\" while no request is in flight", shown, l);
        return -1;
    }
    pending_t *p = &c->q[c->qhead];
    /* The fast cases first: the path is formatted only for a message. */
    if (p->kind == RQ_PING && len == 5 && memcmp(l, "+PONG", 5) == 0) {
        req_done(c, p, 1);
        return 0;
    }
    if (p->kind == RQ_PUT && len == 3 && memcmp(l, "+OK", 3) == 0) {
        req_done(c, p, 1);
        return 0;
    }
    uint64_t size = 0;
    size_t i = 0;
    if (p->kind == RQ_GET && len > 1 && l[0] == '$') {
        for (i = 1; i < len && i < 20 && l[i] >= '0' && l[i] <= '9'; i++)
            size = size * 10 + (uint64_t)(l[i] - '0');
        if (i == len && size == opt.size) {   /* the value's bytes follow */
            p->size = size;
            p->recvd = 0;
            c->rs = RS_BULK;
            return 0;
        }
    }
    char path[600];
    key_path(p->key, path, sizeof(path));
    const char *name = p->kind == RQ_PUT ? "SET" : req_name(p);
    const char *where = p->kind == RQ_PING ? "" : path;
    if (len > 0 && l[0] == '-') {
        bench_error(c, "%s %s: error reply \"%.*s\"", name, where, shown - 1, l + 1);
        req_done(c, p, 0);
        return 0;
    }
    if (p->kind == RQ_GET && len == 3 && memcmp(l, "$-1", 3) == 0) {
        bench_error(c, "GET %s: nil reply: the key does not exist", path);
        req_done(c, p, 0);
        return 0;
    }
    if (p->kind == RQ_GET && len > 1 && i == len) {
        bench_error(c, "GET %s: a bulk reply of %" PRIu64 " bytes, the key space holds values "
                    "of %zu (--size)", path, size, opt.size);
        return -1;
    }
    bench_error(c, "%s %s: unexpected reply \"%.*s\"", name, where, shown, l);
    return -1;
}

/* Feeds n bytes of RESP replies to connection c's parser; returns 0, or -1
 * when the connection must be closed (the reason is already reported). */
static int resp_feed(conn_t *c, const uint8_t *b, size_t n)
{
    size_t off = 0;
    while (off < n) {
        pending_t *p = &c->q[c->qhead];
        if (c->rs == RS_BULK) {
            size_t take = p->size - p->recvd < n - off ? (size_t)(p->size - p->recvd) : n - off;
            memcpy(c->val + p->recvd, b + off, take);
            p->recvd += take;
            off += take;
            if (p->recvd == p->size) {
                c->rs = RS_CRLF;
                c->line_len = 0;
            }
            continue;
        }
        if (c->rs == RS_CRLF) {
            if (b[off] != (c->line_len == 0 ? '\r' : '\n')) {
                char path[600];
                key_path(p->key, path, sizeof(path));
                bench_error(c, "GET %s: the bulk reply has more than the %" PRIu64 " bytes it "
                            "announced (no CRLF after them)", path, p->size);
                return -1;
            }
            off++;
            if (++c->line_len == 2) {
                c->rs = RS_LINE;
                c->line_len = 0;
                req_done(c, p, check_value(c, p, NULL));
            }
            continue;
        }
        const uint8_t *nl = memchr(b + off, '\n', n - off);
        size_t take = nl ? (size_t)(nl - (b + off)) + 1 : n - off;
        if (c->line_len + take > RESP_LINE_MAX) {
            bench_error(c, "a reply line over %d bytes: \"%.60s...\"", RESP_LINE_MAX, c->line);
            return -1;
        }
        memcpy(c->line + c->line_len, b + off, take);
        c->line_len += take;
        off += take;
        if (!nl)
            continue;
        size_t len = c->line_len;
        c->line_len = 0;
        if (len < 2 || c->line[len - 2] != '\r') {
            bench_error(c, "a reply line that does not end with CRLF: \"%.*s\"",
                        (int)(len > 60 ? 60 : len - 1), c->line);
            return -1;
        }
        if (resp_line(c, c->line, len - 2) < 0)
            return -1;
    }
    return 0;
}

static void conn_read(conn_t *c)
{
    worker_t *w = c->w;
    for (;;) {
        ssize_t n = recv(c->fd, w->rbuf, READ_BUF, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            char why[200];
            snprintf(why, sizeof(why), "the server closed it%s%s", n < 0 ? ": " : "",
                     n < 0 ? strerror(errno) : "");
            if (c->qlen == 0)
                bench_error(c, "%s", why);
            conn_close(c, why);
            return;
        }
        if (opt.resp) {
            if (resp_feed(c, w->rbuf, (size_t)n) < 0) {
                conn_close(c, "the reply stream cannot be trusted");
                return;
            }
            if ((size_t)n < READ_BUF)
                return;
            continue;
        }
        size_t off = 0;
        while (off < (size_t)n && c->open) {
            size_t used = 0;
            sdb_proto_frame_t f;
            int rc = sdb_proto_decoder_feed(&c->dec, w->rbuf + off, (size_t)n - off, &used, &f);
            off += used;
            if (rc < 0) {
                bench_error(c, "unreadable frame from the server: %s", sdb_proto_strerror(rc));
                conn_close(c, "unreadable frame");
                return;
            }
            if (rc == 1 && conn_frame(c, &f) < 0) {
                conn_close(c, "the response stream cannot be trusted");
                return;
            }
        }
        if ((size_t)n < READ_BUF)
            return;
    }
}

static int worker_busy(worker_t *w)
{
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].open && w->conns[i].qlen > 0)
            return 1;
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct epoll_event ev[64];
    for (int i = 0; i < w->nconns; i++)
        conn_fill(&w->conns[i]);
    while (w->open_conns > 0 && worker_busy(w)) {
        int n = epoll_wait(w->epfd, ev, 64, 100);
        if (n < 0 && errno != EINTR)
            die(1, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn_t *c = ev[i].data.ptr;
            if (c->open && (ev[i].events & EPOLLOUT))
                conn_flush(c);
            if (c->open && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_read(c);
            conn_fill(c);
        }
        if (n <= 0)   /* duration mode: the deadline may free connections to refill */
            for (int i = 0; i < w->nconns; i++)
                conn_fill(&w->conns[i]);
    }
    return NULL;
}

/* ---- Setup ------------------------------------------------------------------ */

/* Reads one RESP reply line from blocking socket fd into line (CRLF
 * removed, NUL-terminated); exits when none comes. */
static void resp_read_line(int fd, const char *what, char *line, size_t cap)
{
    size_t len = 0;
    for (;;) {
        char ch;
        ssize_t n = recv(fd, &ch, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(1, "%s: no answer to %s (%s): is this a Redis server?", addr_text, what,
                n == 0 ? "connection closed" : strerror(errno));
        if (ch == '\n')
            break;
        if (len + 1 >= cap)
            die(1, "%s: the answer to %s is not a RESP line: is this a Redis server?", addr_text,
                what);
        line[len++] = ch;
    }
    if (len == 0 || line[len - 1] != '\r')
        die(1, "%s: the answer to %s is not a RESP line: is this a Redis server?", addr_text, what);
    line[len - 1] = '\0';
}

/* The RESP counterpart of HELLO (design note 5): AUTH with the token when one
 * is given, then PING, which must answer +PONG; exits on failure. */
static void resp_hello(int fd)
{
    char buf[SDB_PROTO_MAX_TOKEN + 64], line[RESP_LINE_MAX];
    if (opt.token) {
        int n = snprintf(buf, sizeof(buf), "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n",
                         strlen(opt.token), opt.token);
        if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
            die(1, "%s: cannot send AUTH: %s", addr_text, strerror(errno));
        resp_read_line(fd, "AUTH", line, sizeof(line));
        if (strcmp(line, "+OK") != 0)
            die(1, "%s: the server refused AUTH: %s", addr_text, line[0] == '-' ? line + 1 : line);
    }
    if (send(fd, RESP_PING, sizeof(RESP_PING) - 1, MSG_NOSIGNAL) != sizeof(RESP_PING) - 1)
        die(1, "%s: cannot send PING: %s", addr_text, strerror(errno));
    resp_read_line(fd, "PING", line, sizeof(line));
    if (line[0] == '-')
        die(1, "%s: the server refused PING: %s", addr_text, line + 1);
    if (strcmp(line, "+PONG") != 0)
        die(1, "%s: unexpected answer to PING (\"%s\"): is this a Redis server?", addr_text, line);
}

/* Connects one socket and completes HELLO (blocking; with --redis, AUTH and
 * PING); exits on failure. */
static int connect_one(void)
{
    int fd = -1, err = 0;
    if (opt.socket) {
        struct sockaddr_un a;
        memset(&a, 0, sizeof(a));
        a.sun_family = AF_UNIX;
        if (strlen(opt.socket) >= sizeof(a.sun_path))
            die(2, "socket path too long (%zu bytes, at most %zu): %s", strlen(opt.socket),
                sizeof(a.sun_path) - 1, opt.socket);
        memcpy(a.sun_path, opt.socket, strlen(opt.socket) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            err = errno;
    } else {
        struct addrinfo hints, *res = NULL, *ai;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(opt.host, opt.port, &hints, &res);
        if (g != 0)
            die(1, "cannot resolve %s: %s", opt.host, gai_strerror(g));
        err = ECONNREFUSED;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                err = 0;
                break;
            }
            err = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
    if (err)
        die(1, "cannot connect to %s: %s (is %s running there?)", addr_text, strerror(err),
            opt.resp ? "redis-server" : "streamdbd");
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (opt.resp) {
        resp_hello(fd);
        tv.tv_sec = 0;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        return fd;
    }

    uint8_t buf[SDB_PROTO_MIN_FRAME + 64];
    sdb_proto_msg_t m;
    memset(&m, 0, sizeof(m));
    m.opcode = SDB_OP_HELLO;
    m.request_id = 1;
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    if (opt.token) {
        m.u.hello.token.ptr = opt.token;
        m.u.hello.token.len = strlen(opt.token);
    }
    m.u.hello.client.ptr = PROG "/" SDB_VERSION_STRING;
    m.u.hello.client.len = strlen(m.u.hello.client.ptr);
    size_t len = 0;
    if (sdb_proto_encode(&m, buf, sizeof(buf), &len) != 0 ||
        send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
        die(1, "%s: cannot send HELLO: %s", addr_text, strerror(errno));
    sdb_proto_decoder_t dec;
    sdb_proto_decoder_init(&dec, SDB_PROTO_MIN_FRAME);
    sdb_proto_frame_t f;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            die(1, "%s: no answer to HELLO (%s): is this a StreamDb server?", addr_text,
                n == 0 ? "connection closed" : strerror(errno));
        size_t used = 0;
        int rc = sdb_proto_decoder_feed(&dec, buf, (size_t)n, &used, &f);
        if (rc < 0 || (rc == 1 && sdb_proto_decode(&f, &m) != 0))
            die(1, "%s: the answer to HELLO is not a StreamDb frame: is this a StreamDb server?",
                addr_text);
        if (rc == 1)
            break;
    }
    if (m.opcode == SDB_OP_ERROR)
        die(1, "%s: the server refused the session: %s: %.*s", addr_text,
            sdb_proto_status_name(m.u.error.status) ? sdb_proto_status_name(m.u.error.status) : "?",
            (int)m.u.error.message.len, m.u.error.message.ptr);
    if (m.opcode != SDB_OP_HELLO_OK || m.u.hello_ok.version != 1)
        die(1, "%s: unexpected answer to HELLO (%s, version %u)", addr_text,
            sdb_proto_opcode_name(m.opcode) ? sdb_proto_opcode_name(m.opcode) : "?",
            m.opcode == SDB_OP_HELLO_OK ? m.u.hello_ok.version : 0);
    srv_chunk = m.u.hello_ok.chunk_bytes;
    srv_frame = m.u.hello_ok.max_frame_bytes;
    if (opt.size > m.u.hello_ok.max_document_bytes)
        die(2, "--size %zu is over the server's max_document_bytes (%" PRIu64 ")", opt.size,
            m.u.hello_ok.max_document_bytes);
    sdb_proto_decoder_free(&dec);
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static worker_t *workers;

static void setup(void)
{
    workers = calloc((size_t)opt.threads, sizeof(*workers));
    if (!workers)
        die(1, "out of memory");
    for (int t = 0; t < opt.threads; t++) {
        worker_t *w = &workers[t];
        w->idx = t;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->nconns = opt.conns / opt.threads + (t < opt.conns % opt.threads);
        w->conns = calloc((size_t)w->nconns, sizeof(conn_t));
        w->scratch = malloc(opt.size);
        w->rbuf = malloc(READ_BUF);
        w->rng = 0x853c49e6748fea9bull ^ ((uint64_t)t + 1) * 0x9E3779B97F4A7C15ull ^ now_ns();
        w->seed_next = ((uint64_t)t << 48) ^ (now_ns() << 8);
        if (w->epfd < 0 || !w->conns || !w->scratch || !w->rbuf)
            die(1, "cannot set up thread %d: %s", t, strerror(errno));
    }
    for (int i = 0; i < opt.conns; i++) {
        worker_t *w = &workers[i % opt.threads];
        conn_t *c = &w->conns[i / opt.threads];
        c->w = w;
        c->id = i + 1;
        c->fd = connect_one();
        c->open = 1;
        c->next_rid = 2;
        if (!opt.resp)
            sdb_proto_decoder_init(&c->dec, srv_frame);
        c->q = calloc((size_t)opt.pipeline, sizeof(pending_t));
        c->val = malloc(opt.size);
        if (!c->q || !c->val)
            die(1, "out of memory");
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die(1, "epoll_ctl: %s", strerror(errno));
        w->open_conns++;
    }
}

/* ---- Phases and reports ----------------------------------------------------- */

static int phase_run(enum op op, hist_t *h, uint64_t *done, uint64_t *errors, double *secs)
{
    phase.op = op;
    phase.limit = op == OP_POPULATE ? opt.keys : opt.requests;
    atomic_store(&phase.issued, 0);
    phase.start = now_ns();
    phase.deadline = op != OP_POPULATE && opt.duration > 0
                         ? phase.start + (uint64_t)(opt.duration * 1e9) : 0;
    for (int t = 0; t < opt.threads; t++) {
        worker_t *w = &workers[t];
        memset(&w->hist, 0, sizeof(w->hist));
        w->done = w->errors = 0;
        w->last_ns = phase.start;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            die(1, "cannot start a thread");
    }
    uint64_t end = phase.start;
    int open = 0;
    memset(h, 0, sizeof(*h));
    *done = *errors = 0;
    for (int t = 0; t < opt.threads; t++) {
        worker_t *w = &workers[t];
        pthread_join(w->thread, NULL);
        hist_merge(h, &w->hist);
        *done += w->done;
        *errors += w->errors;
        if (w->last_ns > end)
            end = w->last_ns;
        open += w->open_conns;
    }
    *secs = (double)(end - phase.start) / 1e9;
    return open;
}

static void report(enum op op, const hist_t *h, uint64_t done, uint64_t errors, double secs)
{
    double rate = secs > 0 ? (double)done / secs : 0;
    if (opt.json) {
        printf("{\"op\":\"%s\",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"seconds\":%.6f,"
               "\"rate\":%.2f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
               "\"max_ms\":%.3f,\"connections\":%d,\"pipeline\":%d,\"size\":%zu,\"keys\":%" PRIu32
               ",\"threads\":%d,\"protocol\":\"%s\",\"pipeline_style\":\"%s\"}\n",
               op_names[op], done, errors, secs, rate, hist_ms(h, 0.5), hist_ms(h, 0.9),
               hist_ms(h, 0.99), hist_ms(h, 0.999), hist_ms(h, 1), opt.conns, opt.pipeline,
               opt.size, opt.keys, opt.threads, opt.resp ? "resp" : "streamdb",
               opt.batch ? "batch" : "window");
    } else if (opt.quiet) {
        printf("%s: %.2f requests per second, p50=%.3f msec, p99=%.3f msec%s\n", op_titles[op],
               rate, hist_ms(h, 0.5), hist_ms(h, 0.99), errors ? " (ERRORS)" : "");
    } else {
        printf("====== %s ======\n", op_titles[op]);
        printf("  %" PRIu64 " requests completed in %.2f seconds\n", done, secs);
        printf("  %d parallel clients, %zu bytes payload, pipeline %d (%s), %" PRIu32 " keys, %d "
               "thread(s)%s\n", opt.conns, opt.size, opt.pipeline, opt.batch ? "batch" : "window",
               opt.keys, opt.threads, opt.resp ? ", RESP (Redis)" : "");
        printf("  latency (msec): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               hist_ms(h, 0.5), hist_ms(h, 0.9), hist_ms(h, 0.99), hist_ms(h, 0.999),
               hist_ms(h, 1));
        printf("  errors: %" PRIu64 "\n", errors);
        printf("  %.2f requests per second\n\n", rate);
    }
    fflush(stdout);
}

/* ---- Options ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROG " [OPTIONS]\n"
        "Load generator for streamdbd (like redis-benchmark); checks every response.\n\n"
        "  -h, --host HOST       server host (default 127.0.0.1)\n"
        "  -p, --port PORT       server TCP port (default 7878; 6379 with --redis)\n"
        "  -s, --socket PATH     Unix socket instead of TCP\n"
        "  -a, --token TOKEN     auth token sent in HELLO (default: $STREAMDB_TOKEN); with\n"
        "                        --redis the AUTH password (no default)\n"
        "      --redis           speak RESP2 to a Redis server instead (same as --protocol\n"
        "                        resp): put is SET, get is GET; search is not available\n"
        "      --protocol NAME   streamdb (default) or resp\n"
        "  -c N                  connections (default 50)\n"
        "  -n N                  requests per operation (default 100000)\n"
        "  -d, --duration SECS   run each operation for SECS seconds instead of -n\n"
        "      --size BYTES      value size, at least 16 (default 1024)\n"
        "  -P N                  pipeline: requests in flight per connection (default 1)\n"
        "      --pipeline-style S  window (default): refill up to P after every reply;\n"
        "                        batch: send P, wait for all P replies (redis-benchmark)\n"
        "  -r N                  key space: random keys out of N (default 100000)\n"
        "  -t LIST               operations, comma-separated, run in this order (default\n"
        "                        ping,put,get,mixed,search): ping, put, get, mixed (90%% get,\n"
        "                        10%% put), search (prefix listing of 10 keys); with --redis\n"
        "                        the default is ping,put,get,mixed\n"
        "  -T N                  threads, each with its own event loop (default 1)\n"
        "      --prefix P        keys are P<N>/<number> (default /bench/)\n"
        "      --populate        write every key once before the first operation\n"
        "      --no-populate     never write the key space first (it must exist already)\n"
        "      --json            one JSON object per operation, one per line\n"
        "  -q, --quiet           one line per operation\n"
        "      --help            this text\n"
        "  -V, --version         print the version\n\n"
        "Before the first get, mixed or search, every key is written once (populate).\n"
        "Exit status: 0 when every response was right, 1 after any error (wrong byte,\n"
        "wrong id or order, ERROR answer, lost connection, server unreachable), 2 for\n"
        "bad options.\n");
}

static uint64_t parse_num(const char *what, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        die(2, "%s: expected a number from %" PRIu64 " to %" PRIu64 ", got \"%s\"", what, min,
            max, s ? s : "");
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        die(2, "%s: expected a number from %" PRIu64 " to %" PRIu64 ", got \"%s\"", what, min,
            max, s);
    return v;
}

static void parse_ops(const char *list)
{
    char buf[256];
    if (strlen(list) >= sizeof(buf))
        die(2, "-t: list too long");
    strcpy(buf, list);
    opt.nops = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k;
        for (k = 0; k < OP_POPULATE; k++)
            if (strcasecmp(t, op_names[k]) == 0)
                break;
        if (k == OP_POPULATE)
            die(2, "-t: unknown operation \"%s\" (ping, put, get, mixed, search)", t);
        if (opt.nops == OP_COUNT)
            die(2, "-t: too many operations");
        opt.ops[opt.nops++] = k;
    }
    if (opt.nops == 0)
        die(2, "-t: no operation given");
}

static void parse_args(int argc, char **argv)
{
    enum { O_SIZE = 1000, O_JSON, O_POP, O_NOPOP, O_PREFIX, O_HELP, O_REDIS, O_PROTO, O_STYLE };
    static const struct option lo[] = {
        { "host", required_argument, NULL, 'h' },  { "port", required_argument, NULL, 'p' },
        { "socket", required_argument, NULL, 's' }, { "token", required_argument, NULL, 'a' },
        { "duration", required_argument, NULL, 'd' }, { "size", required_argument, NULL, O_SIZE },
        { "json", no_argument, NULL, O_JSON },      { "quiet", no_argument, NULL, 'q' },
        { "populate", no_argument, NULL, O_POP },   { "no-populate", no_argument, NULL, O_NOPOP },
        { "prefix", required_argument, NULL, O_PREFIX }, { "help", no_argument, NULL, O_HELP },
        { "version", no_argument, NULL, 'V' },      { "redis", no_argument, NULL, O_REDIS },
        { "protocol", required_argument, NULL, O_PROTO },
        { "pipeline-style", required_argument, NULL, O_STYLE }, { NULL, 0, NULL, 0 }
    };
    int have_n = 0, have_port = 0, have_host = 0, have_pop = 0, have_t = 0, have_a = 0, ch;
    opt.token = getenv("STREAMDB_TOKEN");
    parse_ops("ping,put,get,mixed,search");
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h:p:s:a:c:n:d:P:r:t:T:qV", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; have_host = 1; break;
        case 'p': parse_num("-p", optarg, 1, 65535); opt.port = optarg; have_port = 1; break;
        case 's': opt.socket = optarg; break;
        case 'a': opt.token = optarg; have_a = 1; break;
        case 'c': opt.conns = (int)parse_num("-c", optarg, 1, 10000); break;
        case 'n': opt.requests = parse_num("-n", optarg, 1, UINT64_MAX / 2); have_n = 1; break;
        case 'd': {
            char *end;
            opt.duration = strtod(optarg, &end);
            if (*end || !(opt.duration > 0) || opt.duration > 86400)
                die(2, "-d: expected seconds, more than 0 and at most 86400, got \"%s\"", optarg);
            break;
        }
        case 'P': opt.pipeline = (int)parse_num("-P", optarg, 1, 4096); break;
        case 'r': opt.keys = (uint32_t)parse_num("-r", optarg, 1, 1000000000); break;
        case 't': parse_ops(optarg); have_t = 1; break;
        case 'T': opt.threads = (int)parse_num("-T", optarg, 1, 256); break;
        case 'q': opt.quiet = 1; break;
        case 'V': printf(PROG " %s\n", SDB_VERSION_STRING); exit(0);
        case O_SIZE: opt.size = (size_t)parse_num("--size", optarg, STAMP_SIZE, 1u << 30); break;
        case O_JSON: opt.json = 1; break;
        case O_POP: opt.populate = 1; have_pop |= 1; break;
        case O_NOPOP: opt.populate = -1; have_pop |= 2; break;
        case O_PREFIX: opt.prefix = optarg; break;
        case O_HELP: usage(stdout); exit(0);
        case O_REDIS: opt.resp = 1; break;
        case O_PROTO:
            if (strcmp(optarg, "resp") == 0)
                opt.resp = 1;
            else if (strcmp(optarg, "streamdb") == 0)
                opt.resp = 0;
            else
                die(2, "--protocol: expected streamdb or resp, got \"%s\"", optarg);
            break;
        case O_STYLE:
            if (strcmp(optarg, "batch") == 0)
                opt.batch = 1;
            else if (strcmp(optarg, "window") == 0)
                opt.batch = 0;
            else
                die(2, "--pipeline-style: expected window or batch, got \"%s\"", optarg);
            break;
        case ':': die(2, "option %s needs a value (see --help)", argv[optind - 1]);
        default:
            if (optopt && optopt < 256)
                die(2, "unknown option -%c (see --help)", optopt);
            die(2, "unknown option %s (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die(2, "unexpected argument \"%s\" (see --help)", argv[optind]);
    if (have_n && opt.duration > 0)
        die(2, "give -n or -d, not both");
    if (opt.socket && (have_port || have_host))
        die(2, "give -s or -h/-p, not both");
    if (opt.token && strlen(opt.token) > SDB_PROTO_MAX_TOKEN)
        die(2, "-a: token over %u bytes", SDB_PROTO_MAX_TOKEN);
    if (opt.resp) {
        if (!have_a)   /* $STREAMDB_TOKEN is streamdbd's, not a Redis password */
            opt.token = NULL;
        if (!have_t)
            parse_ops("ping,put,get,mixed");
        for (int i = 0; i < opt.nops; i++)
            if (opt.ops[i] == OP_SEARCH)
                die(2, "-t search: not available with --redis (RESP has no ordered prefix "
                    "listing to check; use ping, put, get, mixed)");
        if (!have_port)
            opt.port = "6379";
    }
    if (opt.threads > opt.conns)
        die(2, "-T %d: more threads than connections (-c %d)", opt.threads, opt.conns);
    if (have_pop == 3)
        die(2, "give --populate or --no-populate, not both");
    if (opt.socket)
        snprintf(addr_text, sizeof(addr_text), "unix:%s", opt.socket);
    else if (strchr(opt.host, ':'))
        snprintf(addr_text, sizeof(addr_text), "[%s]:%s", opt.host, opt.port);
    else
        snprintf(addr_text, sizeof(addr_text), "%s:%s", opt.host, opt.port);
    int n = snprintf(key_base, sizeof(key_base), "%s%" PRIu32 "/", opt.prefix, opt.keys);
    if (n < 0 || (size_t)n >= sizeof(key_base) - 16)
        die(2, "--prefix: too long");
    key_width = 1;
    for (uint32_t k = opt.keys - 1; k >= 10; k /= 10)
        key_width++;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setup();
    int populated = opt.populate == -1;
    int status = 0;
    for (int i = 0; i <= opt.nops; i++) {
        enum op op;
        if (i == 0) {
            if (opt.populate != 1)
                continue;
            op = OP_POPULATE;
        } else {
            op = opt.ops[i - 1];
        }
        if (op == OP_GET || op == OP_MIXED || op == OP_SEARCH) {
            if (!populated) {
                i--;   /* populate first, then this operation */
                op = OP_POPULATE;
            }
        }
        hist_t h;
        uint64_t done, errors;
        double secs;
        if (op == OP_POPULATE && !opt.quiet && !opt.json)
            fprintf(stderr, PROG ": populating %" PRIu32 " keys under %s (%zu bytes each)\n",
                    opt.keys, key_base, opt.size);
        int open = phase_run(op, &h, &done, &errors, &secs);
        if (op == OP_POPULATE) {
            populated = 1;
            if (!opt.quiet && !opt.json)
                fprintf(stderr, PROG ": populated in %.2f s (%.0f puts/s)\n", secs,
                        secs > 0 ? (double)done / secs : 0);
            if (errors) {
                fprintf(stderr, PROG ": %" PRIu64 " error(s) while populating the key space\n",
                        errors);
                return 1;
            }
        } else {
            report(op, &h, done, errors, secs);
        }
        if (errors)
            status = 1;
        if (open == 0) {
            fprintf(stderr, PROG ": every connection is closed; stopping\n");
            return 1;
        }
    }
    uint64_t total = atomic_load(&total_errors);
    if (total) {
        fprintf(stderr, PROG ": %" PRIu64 " error(s): the figures above are not valid\n", total);
        status = 1;
    }
    return status;
}
