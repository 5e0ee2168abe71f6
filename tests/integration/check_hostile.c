/*
 * check_hostile.c -- streamdbd integration tests, part 4: hostile clients.
 * Every byte a connection makes the daemon hold counts against its caps
 * (src/server/server.h, invariant 2), so clients that pipeline without
 * reading, leave listings unread, stall uploads or never say HELLO cannot
 * grow the daemon beyond max_connections x the per-connection cap, nor lock
 * out a client that behaves; a failed accept does not stop the listener.
 *
 * The per-connection cap (docs/CONFIG.md, max_output_bytes): about
 * 2 x max_output_bytes (output, queued requests) + max_frame_bytes (a frame
 * being decoded) + one read (at most 256 KiB).
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

#define UNSET SDB_PROTO_UNSET
#define OUT_CAP (1u << 20)
#define FRAME_MAX 65536u
#define CONN_CAP_KB ((2 * OUT_CAP + FRAME_MAX + (256u << 10)) / 1024)
/* small caps; deadlines far away, so that every hostile client stays */
#define HOSTILE_CONF "\"max_output_bytes\": 1048576, \"max_frame_bytes\": 65536, " \
                     "\"chunk_bytes\": 16384, \"max_inflight\": 16, "             \
                     "\"frame_timeout_ms\": 120000, \"idle_timeout_ms\": 120000, "  \
                     "\"handshake_timeout_ms\": 120000, \"engine\": {\"durability\": \"none\"}"

static void start(td_t *d, const char *name, const char *extra)
{
    char dir[256];
    it_newdir(dir, sizeof dir, name);
    td_start(d, dir, extra);
}

/* ---- hostile clients ---- */

/* Sends each client of cs[0..n) up to max bytes of empty PINGs (request ids
 * 1, 2, ...) without reading anything, until every one is done or none of
 * them could send for 1 s (the daemon stopped reading them: the fill is
 * over; no assertion depends on this wait).  sent[i] gets the bytes sent. */
static void fill_frames(tc_t **cs, int n, const uint8_t *buf, size_t max, size_t *sent);

static void fill_pings(tc_t **cs, int n, size_t max, size_t *sent)
{
    uint8_t *buf = malloc(max);
    ck_assert_ptr_nonnull(buf);
    for (size_t off = 0; off + SDB_PROTO_HEADER_SIZE <= max; off += SDB_PROTO_HEADER_SIZE) {
        sdb_proto_header_t h = { .opcode = SDB_OP_PING,
                                 .request_id = (uint32_t)(off / SDB_PROTO_HEADER_SIZE) + 1 };
        sdb_proto_header_encode(buf + off, &h);
    }
    fill_frames(cs, n, buf, max, sent);
    free(buf);
}

/* Sends buf[0..max) (whole frames) to each client of cs[0..n) as
 * fill_pings does, without reading anything. */
static void fill_frames(tc_t **cs, int n, const uint8_t *buf, size_t max, size_t *sent)
{
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    ck_assert_ptr_nonnull(pf);
    for (int i = 0; i < n; i++)
        sent[i] = 0;
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            while (sent[i] < max) {
                ssize_t w = send(cs[i]->fd, buf + sent[i], max - sent[i], MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                sent[i] += (size_t)w;
            }
            if (pf[i].revents & (POLLERR | POLLHUP))
                ck_abort_msg("client %d: the daemon closed the connection after %zu bytes of PINGs", i, sent[i]);
            pf[i].fd = sent[i] < max ? cs[i]->fd : -1;
            pf[i].events = POLLOUT;
            open += sent[i] < max;
        }
        if (!open || poll(pf, (nfds_t)n, 1000) <= 0)
            break;
    }
    free(pf);
}

/* Stores `count` documents whose paths are /s/NNNNN/ then padding to
 * `path_len` bytes (pipelined in batches). */
static void put_long_paths(tc_t *c, int count, size_t path_len)
{
    char *path = malloc(path_len + 1);
    ck_assert_ptr_nonnull(path);
    for (int base = 0; base < count; base += 100) {
        int end = base + 100 < count ? base + 100 : count;
        for (int i = base; i < end; i++) {
            snprintf(path, path_len + 1, "/s/%05d/", i);
            size_t l = strlen(path);
            memset(path + l, 'p', path_len - l);
            path[path_len] = '\0';
            IT_OK(c, tc_send_put(c, 1000 + (uint32_t)i, path, "x", 1, UNSET));
        }
        for (int i = base; i < end; i++)
            IT_OK(c, tc_recv(c, 1000 + (uint32_t)i, SDB_OP_DOC));
    }
    free(path);
}

/* The highest of `field` over a few samples (the daemon may still be
 * working through what it read). */
static long peak_kb(td_t *d, const char *field)
{
    long peak = -1;
    for (int i = 0; i < 5; i++) {
        long kb = td_status_kb(d, field);
        if (kb > peak)
            peak = kb;
        td_sleep_ms(50);
    }
    return peak;
}

/* ---- pipelined PINGs, never read (issue 9: 10 clients, 1.16 GB) ---- */

START_TEST(test_pipelined_pings_bounded)
{
    td_t d;
    start(&d, "pings", HOSTILE_CONF);
    enum { K = 12 };
    const size_t max = 16u << 20;    /* well past the kernel's socket buffers */
    long base = td_status_kb(&d, "RssAnon");
    tc_t *cs[K];
    size_t sent[K];
    for (int i = 0; i < K; i++) {
        cs[i] = tc_connect_tcp(d.port, 16384);
        ck_assert_ptr_nonnull(cs[i]);
        IT_OK(cs[i], tc_hello(cs[i], NULL, NULL));
    }
    fill_pings(cs, K, max, sent);
    long peak = peak_kb(&d, "RssAnon");
    size_t total = 0;
    for (int i = 0; i < K; i++)
        total += sent[i];
    fprintf(stderr, "note: %d clients pipelining PINGs unread (%zu sent): RssAnon %ld -> %ld kB (bound %ld kB)\n",
            K, total, base, peak, (long)K * CONN_CAP_KB + 16 * 1024);
    if (!td_asan())
        ck_assert_msg(peak - base < (long)K * CONN_CAP_KB + 16 * 1024,
                      "RssAnon %ld -> %ld kB with %d clients pipelining PINGs unread (cap %u kB each)",
                      base, peak, K, CONN_CAP_KB);
    /* nothing was lost: once a client reads, every PING it sent whole is
     * answered, in order (coalesced writes keep the order) */
    for (int i = 0; i < K; i++) {
        uint32_t want = (uint32_t)(sent[i] / SDB_PROTO_HEADER_SIZE);
        for (uint32_t r = 1; r <= want; r++) {
            int rc = tc_read(cs[i]);
            ck_assert_msg(rc == 1 && cs[i]->m.opcode == SDB_OP_PONG && cs[i]->m.request_id == r,
                          "client %d: PONG %u of %u: %s (opcode 0x%02x, request %u)", i, r, want,
                          it_rc_name(rc), rc == 1 ? cs[i]->m.opcode : 0, rc == 1 ? cs[i]->m.request_id : 0);
        }
        tc_close(cs[i]);
    }
    it_still_serving(&d, "clients pipelining PINGs");
    td_stop(&d);
}
END_TEST

/* ---- pipelined GETs run in batches, never read ----
 *
 * Each client pipelines GETs of a 40 KiB document and PINGs, and reads
 * nothing.  They are complete requests queued behind each other, so the
 * daemon runs them in batches (one job, server.h invariant 1), each stopped
 * at half the output cap: the memory per connection stays within its
 * bound, and once the client reads, every answer is there, whole and in
 * order. */

enum { UNREAD_DOC = 40 * 1024 };

typedef struct {
    const uint8_t *exp;
    size_t off;
    int bad;
} unread_sink_t;

static void unread_sink_cb(void *arg, const uint8_t *p, size_t n)
{
    unread_sink_t *u = arg;
    if (u->off + n > UNREAD_DOC || memcmp(u->exp + u->off, p, n) != 0)
        u->bad = 1;
    u->off += n;
}

START_TEST(test_unread_batches_bounded)
{
    td_t d;
    /* HOSTILE_CONF with a deep queue: a batch may take many requests */
    start(&d, "batches", "\"max_output_bytes\": 1048576, \"max_frame_bytes\": 65536, "
                         "\"chunk_bytes\": 16384, \"max_inflight\": 1024, "
                         "\"frame_timeout_ms\": 120000, \"idle_timeout_ms\": 120000, "
                         "\"engine\": {\"durability\": \"none\"}");
    uint8_t *doc = malloc(UNREAD_DOC);
    ck_assert_ptr_nonnull(doc);
    tc_fill(doc, UNREAD_DOC, 77);
    tc_t *w = it_session(&d, 0);
    IT_OK(w, tc_put(w, "/g", doc, UNREAD_DOC, UNSET, NULL));
    long base = peak_kb(&d, "RssAnon");

    /* GET /g and PING, alternating, request ids 1, 2, ... */
    const size_t max = 8192;
    uint8_t *buf = malloc(max);
    ck_assert_ptr_nonnull(buf);
    size_t len = 0, nframes = 0, ends[1024];
    for (;;) {
        sdb_proto_msg_t m = { .opcode = nframes % 2 ? SDB_OP_PING : SDB_OP_GET,
                              .request_id = (uint32_t)nframes + 1 };
        if (m.opcode == SDB_OP_GET) {
            m.u.path.ptr = "/g";
            m.u.path.len = 2;
        }
        size_t n;
        if (sdb_proto_encode(&m, buf + len, max - len, &n) != 0 || nframes == 1024)
            break;
        len += n;
        ends[nframes++] = len;
    }
    enum { K = 8 };
    tc_t *cs[K];
    size_t sent[K];
    for (int i = 0; i < K; i++) {
        cs[i] = tc_connect_tcp(d.port, 16384);
        ck_assert_ptr_nonnull(cs[i]);
        IT_OK(cs[i], tc_hello(cs[i], NULL, NULL));
    }
    fill_frames(cs, K, buf, len, sent);
    IT_OK(w, tc_ping(w, "after", 5));     /* the others were served meanwhile */
    long peak = peak_kb(&d, "RssAnon");
    fprintf(stderr, "note: %d clients with unread batches of GETs: RssAnon %ld -> %ld kB (bound %ld kB)\n",
            K, base, peak, (long)K * CONN_CAP_KB + 16 * 1024);
    if (!td_asan())
        ck_assert_msg(peak - base < (long)K * CONN_CAP_KB + 16 * 1024,
                      "RssAnon %ld -> %ld kB with %d clients not reading batches of GETs", base, peak, K);
    for (int i = 0; i < K; i++) {
        size_t whole = 0;
        while (whole < nframes && ends[whole] <= sent[i])
            whole++;
        ck_assert_msg(whole > 100, "client %d sent only %zu requests", i, whole);
        for (size_t r = 1; r <= whole; r++) {
            if (r % 2) {
                unread_sink_t u = { .exp = doc };
                sdb_docinfo_t info;
                IT_OK(cs[i], tc_recv_get(cs[i], (uint32_t)r, &info, unread_sink_cb, &u));
                ck_assert_msg(!u.bad && u.off == UNREAD_DOC, "client %d, GET %zu: wrong content", i, r);
            } else {
                IT_OK(cs[i], tc_recv(cs[i], (uint32_t)r, SDB_OP_PONG));
            }
        }
        tc_close(cs[i]);
    }
    free(buf);
    free(doc);
    tc_close(w);
    td_stop(&d);
}
END_TEST

/* ---- SEARCH pages and long listings, never read ---- */

START_TEST(test_unread_listings_bounded)
{
    td_t d;
    start(&d, "search", HOSTILE_CONF);
    tc_t *w = it_session(&d, 0);
    const int ndocs = 2000;
    const size_t plen = 4000;        /* a full page: about 8 MB of entries */
    put_long_paths(w, ndocs, plen);
    long base = peak_kb(&d, "RssAnon");
    enum { K = 12 };
    tc_t *cs[K];
    for (int i = 0; i < K; i++) {
        cs[i] = tc_connect_tcp(d.port, 16384);
        ck_assert_ptr_nonnull(cs[i]);
        IT_OK(cs[i], tc_hello(cs[i], NULL, NULL));
        for (uint32_t r = 1; r <= 4; r++)
            IT_OK(cs[i], tc_send_search(cs[i], r, "/s/", "", 0, 0));
    }
    IT_OK(w, tc_ping(w, "after", 5));     /* the others were served meanwhile */
    long peak = peak_kb(&d, "RssAnon");
    fprintf(stderr, "note: %d clients with unread SEARCH pages: RssAnon %ld -> %ld kB (bound %ld kB)\n", K,
            base, peak, (long)K * CONN_CAP_KB + 16 * 1024);
    if (!td_asan())
        ck_assert_msg(peak - base < (long)K * CONN_CAP_KB + 16 * 1024,
                      "RssAnon %ld -> %ld kB with %d clients not reading SEARCH pages", base, peak, K);
    for (int i = 0; i < K; i++)
        tc_close(cs[i]);

    /* the listing is still whole: paging (pages end early, more = 1)
     * returns every path once, in order */
    char *last = calloc(1, plen + 1);
    ck_assert_ptr_nonnull(last);
    int seen = 0, pages = 0;
    for (;;) {
        tc_list_t l = { 0 };
        IT_OK(w, tc_search(w, "/s/", last, 0, 0, &l));
        pages++;
        ck_assert_msg(l.n > 0 || !l.more, "an empty page with more = 1");
        for (size_t k = 0; k < l.n; k++) {
            char want[16];
            snprintf(want, sizeof want, "/s/%05d/", seen);
            ck_assert_msg(strncmp(l.path[k], want, strlen(want)) == 0, "entry %d is %.20s", seen, l.path[k]);
            seen++;
        }
        if (l.n)
            snprintf(last, plen + 1, "%s", l.path[l.n - 1]);
        int more = l.more;
        tc_list_free(&l);
        if (!more)
            break;
        ck_assert_msg(pages < 1000, "SEARCH pages never end");
    }
    ck_assert_msg(seen == ndocs && pages > 1, "paging returned %d of %d paths in %d pages", seen, ndocs, pages);

    /* LIST_PATHS of a document with many long paths goes out in pieces,
     * every path once and in order */
    sdb_docinfo_t doc;
    IT_OK(w, tc_put(w, "/many", "m", 1, UNSET, &doc));
    char *path = malloc(plen + 1);
    ck_assert_ptr_nonnull(path);
    const int nbind = 600;
    for (int i = 0; i < nbind; i++) {
        snprintf(path, plen + 1, "/b/%05d/", i);
        size_t l = strlen(path);
        memset(path + l, 'q', plen - l);
        path[plen] = '\0';
        IT_OK(w, tc_send_id_path(w, SDB_OP_BIND, 5000 + (uint32_t)i, &doc.id, path));
    }
    for (int i = 0; i < nbind; i++)
        IT_OK(w, tc_recv(w, 5000 + (uint32_t)i, SDB_OP_OK));
    tc_list_t l = { 0 };
    IT_OK(w, tc_list_paths(w, &doc.id, &l));
    ck_assert_msg(l.n == (size_t)nbind + 1, "LIST_PATHS: %zu paths, expected %d", l.n, nbind + 1);
    for (int i = 0; i < nbind; i++) {
        char want[16];
        snprintf(want, sizeof want, "/b/%05d/", i);
        ck_assert_msg(strncmp(l.path[i], want, strlen(want)) == 0, "LIST_PATHS entry %d is %.20s", i, l.path[i]);
    }
    ck_assert_str_eq(l.path[nbind], "/many");
    tc_list_free(&l);
    free(path);
    free(last);
    tc_close(w);
    td_stop(&d);
}
END_TEST

/* ---- an upload that stops sending ---- */

START_TEST(test_stalled_upload_times_out)
{
    td_t d;
    start(&d, "stall", "\"idle_timeout_ms\": 300, \"frame_timeout_ms\": 60000, "
                       "\"engine\": {\"durability\": \"none\"}");
    tc_t *u = it_session(&d, 0);
    uint8_t data[4096];
    tc_fill(data, sizeof data, 1);
    long long t0 = td_now_ms();
    IT_OK(u, tc_send_put_begin(u, 7, "/stalled", 1u << 20, UNSET));
    IT_OK(u, tc_send_put_data(u, 7, data, sizeof data));
    /* and then nothing: the idle deadline applies to an open upload too */
    u->timeout_ms = td_scaled(5000);
    int rc = tc_read(u);
    long long ms = td_now_ms() - t0;
    ck_assert_msg(rc == 1 && u->m.opcode == SDB_OP_ERROR && u->status == SDB_STATUS_TIMEOUT &&
                      u->m.request_id == 0 && (u->flags & SDB_FLAG_CLOSING),
                  "a stalled upload: %s %s after %lld ms", it_rc_name(rc),
                  rc == 1 ? sdb_proto_opcode_name(u->m.opcode) : u->err, ms);
    ck_assert_msg(ms >= 280, "the stalled upload was dropped after %lld ms (idle timeout 300)", ms);
    ck_assert_int_eq(tc_expect_closed(u, td_scaled(3000)), TC_CLOSED);
    tc_close(u);
    /* the slot is free and the writer aborted: nothing stored; the same
     * path can be written at once */
    tc_t *w = it_session(&d, 1);
    IT_RC(w, tc_lookup(w, "/stalled", NULL), SDB_STATUS_NOT_FOUND);
    IT_OK(w, tc_put(w, "/stalled", "ok", 2, 0, NULL));
    double cur = it_stat(w, "connections.current");
    ck_assert_msg(cur == 1, "%g connections after the stalled upload was dropped", cur);
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "in an upload, dropped") != NULL, "the drop is not logged");
    free(log);
    tc_close(w);
    td_stop(&d);
}
END_TEST

/* ---- connections that never say HELLO ---- */

START_TEST(test_handshake_deadline)
{
    td_t d;
    start(&d, "handshake", "\"handshake_timeout_ms\": 300, \"idle_timeout_ms\": 60000, "
                           "\"engine\": {\"durability\": \"none\"}");
    long long t0 = td_now_ms();
    tc_t *b = it_connect(&d, 0);
    b->timeout_ms = td_scaled(5000);
    int rc = tc_read(b);
    long long ms = td_now_ms() - t0;
    ck_assert_msg(rc == 1 && b->m.opcode == SDB_OP_ERROR && b->status == SDB_STATUS_TIMEOUT &&
                      (b->flags & SDB_FLAG_CLOSING),
                  "a connection without HELLO: %s after %lld ms", it_rc_name(rc), ms);
    ck_assert_msg(ms >= 280 && ms <= td_scaled(3000), "dropped after %lld ms (handshake timeout 300)", ms);
    tc_close(b);
    /* a session that did say HELLO stays (idle timeout 60 s) */
    tc_t *a = it_session(&d, 1);
    td_sleep_ms(600);
    IT_OK(a, tc_ping(a, "still", 5));
    tc_close(a);
    td_stop(&d);
}
END_TEST

/* Bare connections fill max_connections: a client that says HELLO still
 * gets in, at the expense of the oldest bare one; and bare connections may
 * hold at most half of the slots. */
START_TEST(test_bare_connections_evicted)
{
    td_t d;
    start(&d, "evict", "\"max_connections\": 4, \"engine\": {\"durability\": \"none\"}");
    tc_t *a = it_session(&d, 0);
    tc_t *bare[3];
    /* all on TCP: the kernel's backlog hands them over in connect order,
     * so "oldest" is well defined */
    for (int i = 0; i < 3; i++)
        bare[i] = it_connect(&d, 1);
    /* the third bare connection is over half of max_connections (2): the
     * oldest bare one is evicted */
    int rc = tc_read(bare[0]);
    ck_assert_msg(rc == 1 && bare[0]->m.opcode == SDB_OP_ERROR && bare[0]->status == SDB_STATUS_BUSY &&
                      (bare[0]->flags & SDB_FLAG_CLOSING),
                  "the oldest bare connection: %s", it_rc_name(rc));
    ck_assert_int_eq(tc_expect_closed(bare[0], td_scaled(3000)), TC_CLOSED);
    /* a, bare[1], bare[2] and one more authenticated (on TCP too: once it
     * is answered, every bare one was accepted before it): full */
    tc_t *b = it_session(&d, 1);
    /* a fifth client that says HELLO evicts bare[1] rather than being refused */
    tc_t *c = it_session(&d, 0);
    IT_OK(c, tc_ping(c, "in", 2));
    rc = tc_read(bare[1]);
    ck_assert_msg(rc == 1 && bare[1]->status == SDB_STATUS_BUSY, "bare[1]: %s", it_rc_name(rc));
    tc_t *e = it_session(&d, 1);            /* and the next one evicts bare[2] */
    rc = tc_read(bare[2]);
    ck_assert_msg(rc == 1 && bare[2]->status == SDB_STATUS_BUSY, "bare[2]: %s", it_rc_name(rc));
    /* four authenticated sessions: the next connection is refused BUSY */
    tc_t *f = it_connect(&d, 0);
    rc = tc_read(f);
    ck_assert_msg(rc == 1 && f->status == SDB_STATUS_BUSY && (f->flags & SDB_FLAG_CLOSING),
                  "a connection over max_connections with no bare one to evict: %s", it_rc_name(rc));
    IT_OK(a, tc_ping(a, "a", 1));
    IT_OK(b, tc_ping(b, "b", 1));
    IT_OK(e, tc_ping(e, "e", 1));
    tc_t *all[] = { a, b, c, e, f, bare[0], bare[1], bare[2] };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tc_close(all[i]);
    td_stop(&d);
}
END_TEST

/* ---- every kind at once (issue 9's goal) ---- */

START_TEST(test_hostile_mix)
{
    td_t d;
    enum { MAXC = 32, Q = MAXC / 4 };
    start(&d, "mix", "\"max_connections\": 32, " HOSTILE_CONF);
    tc_t *w = it_session(&d, 0);
    put_long_paths(w, 1000, 2000);       /* a full SEARCH page: about 2 MB */
    tc_close(w);
    tc_t *pings[Q], *search[Q], *upload[Q], *bare[Q];
    size_t sent[Q];
    uint8_t data[16384];
    tc_fill(data, sizeof data, 2);
    for (int i = 0; i < Q; i++) {
        pings[i] = tc_connect_tcp(d.port, 16384);
        search[i] = tc_connect_tcp(d.port, 16384);
        ck_assert(pings[i] && search[i]);
        IT_OK(pings[i], tc_hello(pings[i], NULL, NULL));
        IT_OK(search[i], tc_hello(search[i], NULL, NULL));
        for (uint32_t r = 1; r <= 4; r++)
            IT_OK(search[i], tc_send_search(search[i], r, "/s/", "", 0, 0));
        upload[i] = it_session(&d, i % 2);
        char path[32];
        snprintf(path, sizeof path, "/up/%d", i);
        IT_OK(upload[i], tc_send_put_begin(upload[i], 3, path, 1u << 20, UNSET));
        IT_OK(upload[i], tc_send_put_data(upload[i], 3, data, sizeof data));
        bare[i] = it_connect(&d, i % 2);
    }
    fill_pings(pings, Q, 16u << 20, sent);
    long rss = peak_kb(&d, "VmRSS"), hwm = td_status_kb(&d, "VmHWM");
    long bound = (long)MAXC * CONN_CAP_KB + 64 * 1024;
    fprintf(stderr, "note: %d hostile clients (%d each: unread PINGs, unread SEARCH, stalled upload, no HELLO): "
            "VmRSS %ld kB, VmHWM %ld kB (bound %ld kB)\n", MAXC, Q, rss, hwm, bound);
    /* a well-behaved client: connects (a slot is found by evicting a bare
     * connection), says HELLO and is answered */
    long long t0 = td_now_ms();
    tc_t *good = it_connect(&d, 1);
    good->timeout_ms = td_scaled(10000);
    IT_OK(good, tc_hello(good, NULL, NULL));
    IT_OK(good, tc_ping(good, "good", 4));
    long long served_ms = td_now_ms() - t0;
    long long t1 = td_now_ms();
    IT_OK(good, tc_ping(good, "again", 5));
    long long ping_ms = td_now_ms() - t1;
    fprintf(stderr, "note: with them, a new client served in %lld ms (connect, HELLO, PING), then a PING "
            "in %lld ms\n", served_ms, ping_ms);
    if (!td_asan())
        ck_assert_msg(hwm < bound, "VmHWM %ld kB with %d hostile clients, over %d x %u kB + 64 MiB", hwm, MAXC,
                      MAXC, CONN_CAP_KB);
    tc_close(good);
    for (int i = 0; i < Q; i++) {
        tc_close(pings[i]);
        tc_close(search[i]);
        tc_close(upload[i]);
        tc_close(bare[i]);
    }
    it_still_serving(&d, "hostile clients of every kind");
    td_stop(&d);
}
END_TEST

/* ---- a failed accept ---- */

START_TEST(test_accept_failure_recovers)
{
    td_t d;
    /* the daemon's test hook: its first 3 connection setups fail as an
     * allocation failure would */
    setenv("STREAMDBD_TEST_FAIL_ACCEPTS", "3", 1);
    start(&d, "accept", "\"engine\": {\"durability\": \"none\"}");
    unsetenv("STREAMDBD_TEST_FAIL_ACCEPTS");
    for (int i = 0; i < 3; i++) {
        tc_t *c = it_connect(&d, i % 2);
        c->timeout_ms = td_scaled(10000);
        IT_OK(c, tc_hello(c, NULL, NULL));
        IT_OK(c, tc_ping(c, "ok", 2));
        tc_close(c);
    }
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "accept: out of memory") != NULL, "the injected failure did not fire");
    free(log);
    it_still_serving(&d, "failed accepts");
    td_stop(&d);
}
END_TEST

/* Out of file descriptors (EMFILE, the realistic failed accept): the
 * connections over the limit are lost, but once some close the listener
 * accepts again.  The daemon runs under `prlimit --nofile`. */
START_TEST(test_accept_emfile_recovers)
{
    if (access("/usr/bin/prlimit", X_OK) != 0) {
        /* a test that cannot run must not pass */
        ck_abort_msg("SKIPPED: /usr/bin/prlimit is not installed");
    }
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "emfile");
    td_init(&d, dir);
    td_write_config(&d, "\"engine\": {\"durability\": \"none\"}");
    const char *wrap[] = { "/usr/bin/prlimit", "--nofile=40", NULL };
    ck_assert_msg(td_spawn(&d, wrap, td_scaled(10000)) == 0, "streamdbd did not start under prlimit");
    enum { N = 60 };
    tc_t *cs[N];
    int served = 0;
    for (int i = 0; i < N; i++) {
        cs[i] = it_connect(&d, 1);
        cs[i]->timeout_ms = td_scaled(500);
        served += tc_hello(cs[i], NULL, NULL) == 0;
    }
    ck_assert_msg(served > 0 && served < N, "%d of %d connections served under --nofile=40", served, N);
    for (int i = 0; i < N; i++)
        tc_close(cs[i]);
    /* the listener still accepts */
    tc_t *c = NULL;
    int rc = -1;
    for (int tries = 0; tries < 50 && rc != 0; tries++) {
        tc_close(c);
        c = it_connect(&d, 1);
        c->timeout_ms = td_scaled(2000);
        rc = tc_hello(c, NULL, NULL);
        if (rc)
            td_sleep_ms(50);
    }
    ck_assert_msg(rc == 0, "no connection served after running out of descriptors: %s", it_rc_name(rc));
    IT_OK(c, tc_ping(c, "fd", 2));
    tc_close(c);
    td_stop(&d);
}
END_TEST

Suite *suite_hostile(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("memory");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pipelined_pings_bounded);
    tcase_add_test(tc, test_unread_listings_bounded);
    tcase_add_test(tc, test_unread_batches_bounded);
    tcase_add_test(tc, test_hostile_mix);
    suite_add_tcase(s, tc);

    tc = tcase_create("slots");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stalled_upload_times_out);
    tcase_add_test(tc, test_handshake_deadline);
    tcase_add_test(tc, test_bare_connections_evicted);
    tcase_add_test(tc, test_accept_failure_recovers);
    tcase_add_test(tc, test_accept_emfile_recovers);
    suite_add_tcase(s, tc);
    return s;
}
