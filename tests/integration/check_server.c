/*
 * check_server.c -- streamdbd integration tests, part 1: every operation over
 * both transports, SEARCH paging, STATS counters, pipelining, concurrent
 * clients and a large streamed document.  Each test starts its own daemon
 * (tdaemon.h) and speaks the real protocol through tclient.h.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "itest.h"

#define UNSET SDB_PROTO_UNSET

/* Most tests run without fsync per commit: they are about the protocol. */
#define FAST_ENGINE "\"engine\": {\"durability\": \"none\"}"

static void expect_same_doc(const sdb_docinfo_t *a, const sdb_docinfo_t *b, const char *what)
{
    ck_assert_msg(it_id_eq(&a->id, &b->id), "%s: ids differ", what);
    ck_assert_msg(a->version == b->version, "%s: version %llu vs %llu", what,
                  (unsigned long long)a->version, (unsigned long long)b->version);
    ck_assert_msg(a->size == b->size && a->crc32 == b->crc32, "%s: size/crc differ", what);
    ck_assert_msg(a->created_ms == b->created_ms && a->modified_ms == b->modified_ms,
                  "%s: times differ", what);
}

static void expect_get_id(tc_t *c, const sdb_id_t *id, uint64_t version, const uint8_t *exp,
                          size_t n, uint64_t want_version)
{
    uint8_t *d = NULL;
    size_t len = 0;
    sdb_docinfo_t info;
    IT_OK(c, tc_get_id(c, id, version, &d, &len, &info));
    ck_assert_msg(len == n && (n == 0 || memcmp(d, exp, n) == 0), "GET_ID v%llu: content differs",
                  (unsigned long long)version);
    ck_assert_msg(info.version == want_version, "GET_ID v%llu: header version %llu, expected %llu",
                  (unsigned long long)version, (unsigned long long)info.version,
                  (unsigned long long)want_version);
    ck_assert_msg(it_id_eq(&info.id, id), "GET_ID: header id differs");
    free(d);
}

/* ---- HELLO, PING ---- */

START_TEST(test_hello_ping)
{
    int tcp = _i;
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "hello");
    td_start(&d, dir, "\"max_frame_bytes\": 262144, \"chunk_bytes\": 16384, \"max_inflight\": 32, "
                      FAST_ENGINE);
    /* requests may follow HELLO before HELLO_OK arrives (within the minimum
     * limits: PUT_DATA of at most 512 bytes) */
    tc_t *c = it_connect(&d, tcp);
    IT_OK(c, tc_send_hello(c, 1, 1, 1, NULL, "eager"));
    IT_OK(c, tc_send_ping(c, 2, "early", 5));
    IT_OK(c, tc_send_put(c, 3, "/early", "early bird", 10, UNSET));
    IT_OK(c, tc_send_path(c, SDB_OP_LOOKUP, 4, "/early"));
    IT_OK(c, tc_recv(c, 1, SDB_OP_HELLO_OK));
    IT_OK(c, tc_recv(c, 2, SDB_OP_PONG));
    sdb_docinfo_t early, x;
    IT_OK(c, tc_recv_doc(c, 3, SDB_OP_DOC, &early));
    IT_OK(c, tc_recv_doc(c, 4, SDB_OP_DOC, &x));
    ck_assert_msg(it_id_eq(&early.id, &x.id) && x.size == 10, "LOOKUP after an early PUT");
    tc_close(c);

    c = it_connect(&d, tcp);
    sdb_proto_hello_ok_t ok;
    IT_OK(c, tc_hello(c, NULL, &ok));
    ck_assert_uint_eq(ok.version, 1);
    ck_assert_uint_eq(ok.max_frame_bytes, 262144);
    ck_assert_uint_eq(ok.chunk_bytes, 16384);
    ck_assert_uint_eq(ok.max_inflight, 32);
    ck_assert_uint_eq(ok.max_document_bytes, 256ull << 20);
    ck_assert_msg(ok.server.len >= 9 && memcmp(ok.server.ptr, "streamdbd", 9) == 0,
                  "server name '%.*s'", (int)ok.server.len, ok.server.ptr);

    /* a second HELLO is refused, the session goes on */
    IT_OK(c, tc_send_hello(c, 99, 1, 1, NULL, "again"));
    IT_RC(c, tc_recv(c, 99, SDB_OP_HELLO_OK), SDB_STATUS_PROTOCOL);
    IT_CLOSING(c, 0);

    /* PING echoes any payload up to max_frame_bytes */
    IT_OK(c, tc_ping(c, NULL, 0));
    IT_OK(c, tc_ping(c, "hello", 5));
    uint8_t *big = it_bytes(262144, 7);
    IT_OK(c, tc_ping(c, big, 262144));
    free(big);
    /* QUICK is ignored outside GET; an undefined request flag is INVALID */
    IT_OK(c, tc_send_frame(c, SDB_OP_PING, SDB_FLAG_QUICK, 500, "q", 1));
    IT_OK(c, tc_recv(c, 500, SDB_OP_PONG));
    IT_OK(c, tc_send_frame(c, SDB_OP_PING, 0x40, 501, "f", 1));
    IT_RC(c, tc_recv(c, 501, SDB_OP_PONG), SDB_STATUS_INVALID);
    IT_CLOSING(c, 0);
    IT_OK(c, tc_ping(c, "still open", 10));

    /* the Unix socket has the configured default mode 0660 */
    struct stat st;
    ck_assert_int_eq(stat(d.sock, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0660, "socket mode %o", st.st_mode & 0777);

    tc_close(c);
    td_stop(&d);
    ck_assert_msg(stat(d.sock, &st) != 0, "the Unix socket file remains after the stop");
}
END_TEST

/* ---- every operation ---- */

START_TEST(test_operations)
{
    int tcp = _i;
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "ops");
    td_start(&d, dir, "\"max_frame_bytes\": 262144, \"chunk_bytes\": 16384, " FAST_ENGINE);
    tc_t *c = it_session(&d, tcp);
    const size_t na = 100000, nb = 50000, nc = 20000;
    uint8_t *A = it_bytes(na, 1), *B = it_bytes(nb, 2), *C = it_bytes(nc, 3);
    long long now = (long long)time(NULL) * 1000;

    /* PUT (streamed in 7 chunks), LOOKUP, GET */
    sdb_docinfo_t i1, i2, i3, x;
    IT_OK(c, tc_put(c, "/docs/a.txt", A, na, UNSET, &i1));
    ck_assert_uint_eq(i1.version, 1);
    ck_assert_uint_eq(i1.size, na);
    ck_assert_uint_eq(i1.crc32, tc_crc(A, na));
    ck_assert_msg(i1.created_ms == i1.modified_ms, "a new document: created != modified");
    ck_assert_msg(i1.created_ms > now - 60000 && i1.created_ms < now + 60000,
                  "created_ms %lld is not now (%lld)", (long long)i1.created_ms, now);
    IT_OK(c, tc_lookup(c, "/docs/a.txt", &x));
    expect_same_doc(&x, &i1, "LOOKUP after PUT");
    it_expect_get(c, "/docs/a.txt", A, na, &x);
    expect_same_doc(&x, &i1, "GET header");

    /* overwrite: same id, version 2, created kept */
    IT_OK(c, tc_put(c, "/docs/a.txt", B, nb, UNSET, &i2));
    ck_assert_msg(it_id_eq(&i2.id, &i1.id), "an overwrite changed the id");
    ck_assert_uint_eq(i2.version, 2);
    ck_assert_msg(i2.created_ms == i1.created_ms && i2.modified_ms >= i1.modified_ms,
                  "overwrite times wrong");
    it_expect_get(c, "/docs/a.txt", B, nb, NULL);

    /* conditional writes */
    IT_RC(c, tc_put(c, "/docs/a.txt", C, nc, 1, NULL), SDB_STATUS_CONFLICT);
    IT_RC(c, tc_put(c, "/docs/a.txt", C, nc, 0, NULL), SDB_STATUS_CONFLICT);
    IT_OK(c, tc_lookup(c, "/docs/a.txt", &x));
    ck_assert_uint_eq(x.version, 2);
    IT_OK(c, tc_put(c, "/docs/a.txt", C, nc, 2, &i3));
    ck_assert_uint_eq(i3.version, 3);
    sdb_docinfo_t nw;
    IT_OK(c, tc_put(c, "/docs/new", "n", 1, 0, &nw));
    ck_assert_uint_eq(nw.version, 1);
    ck_assert_msg(!it_id_eq(&nw.id, &i1.id), "a new path reused an id");
    IT_RC(c, tc_put(c, "/docs/unbound", "u", 1, 5, NULL), SDB_STATUS_CONFLICT);
    IT_RC(c, tc_lookup(c, "/docs/unbound", NULL), SDB_STATUS_NOT_FOUND);

    /* GET_ID: current and older versions (versions_to_keep 2), QUICK */
    expect_get_id(c, &i1.id, 0, C, nc, 3);
    expect_get_id(c, &i1.id, 3, C, nc, 3);
    expect_get_id(c, &i1.id, 2, B, nb, 2);
    expect_get_id(c, &i1.id, 1, A, na, 1);
    IT_RC(c, tc_get_id(c, &i1.id, 4, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    sdb_id_t nobody;
    memset(&nobody, 0x5a, sizeof nobody);
    IT_RC(c, tc_get_id(c, &nobody, 0, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_get(c, "/nope", NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_OK(c, tc_send_get_id(c, 9000, &i1.id, 0, SDB_FLAG_QUICK));
    IT_OK(c, tc_recv_get(c, 9000, &x, NULL, NULL));
    ck_assert_uint_eq(x.version, 3);

    /* LIST_VERSIONS: newest first */
    tc_list_t l;
    IT_OK(c, tc_list_versions(c, &i1.id, &l));
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.more, 0);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(l.kind[i], SDB_ENTRY_VERSION);
        ck_assert_ptr_null(l.path[i]);
        ck_assert_uint_eq(l.info[i].version, 3 - i);
        ck_assert_msg(it_id_eq(&l.info[i].id, &i1.id), "LIST_VERSIONS: wrong id");
    }
    ck_assert_uint_eq(l.info[0].size, nc);
    ck_assert_uint_eq(l.info[1].crc32, tc_crc(B, nb));
    ck_assert_uint_eq(l.info[2].crc32, tc_crc(A, na));
    tc_list_free(&l);
    IT_RC(c, tc_list_versions(c, &nobody, &l), SDB_STATUS_NOT_FOUND);

    /* BIND, LIST_PATHS */
    IT_OK(c, tc_bind(c, &i1.id, "/alias/x"));
    IT_OK(c, tc_bind(c, &i1.id, "/alias/x"));          /* again: nothing changes */
    it_expect_get(c, "/alias/x", C, nc, &x);
    ck_assert_msg(it_id_eq(&x.id, &i1.id) && x.version == 3, "GET via the alias: wrong doc");
    IT_OK(c, tc_list_paths(c, &i1.id, &l));
    const char *paths1[] = { "/alias/x", "/docs/a.txt" };
    it_expect_list(&l, paths1, 2, "LIST_PATHS");
    for (size_t i = 0; i < l.n; i++)
        ck_assert_msg(it_id_eq(&l.info[i].id, &i1.id) && l.info[i].version == 3,
                      "LIST_PATHS entry %zu: wrong docinfo", i);
    tc_list_free(&l);
    IT_RC(c, tc_bind(c, &nobody, "/alias/y"), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_lookup(c, "/alias/y", NULL), SDB_STATUS_NOT_FOUND);

    /* BIND moves a path; the document it left survives without a path */
    IT_OK(c, tc_bind(c, &i1.id, "/docs/new"));
    IT_OK(c, tc_lookup(c, "/docs/new", &x));
    ck_assert_msg(it_id_eq(&x.id, &i1.id), "BIND did not move the path");
    expect_get_id(c, &nw.id, 0, (const uint8_t *)"n", 1, 1);
    IT_OK(c, tc_list_paths(c, &nw.id, &l));
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(l.more, 0);
    tc_list_free(&l);

    /* UNBIND */
    IT_OK(c, tc_unbind(c, &i1.id, "/alias/x"));
    IT_RC(c, tc_lookup(c, "/alias/x", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_unbind(c, &i1.id, "/alias/x"), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_unbind(c, &nw.id, "/docs/a.txt"), SDB_STATUS_NOT_FOUND);
    IT_OK(c, tc_lookup(c, "/docs/a.txt", NULL));

    /* INFO */
    char *text = NULL;
    IT_OK(c, tc_info(c, &i1.id, &x, &text));
    ck_assert_msg(it_id_eq(&x.id, &i1.id) && x.version == 3 && x.size == nc &&
                      x.crc32 == tc_crc(C, nc), "INFO: wrong docinfo");
    ck_assert_msg(strlen(text) > 0, "INFO: empty text");
    free(text);
    IT_RC(c, tc_info(c, &nobody, NULL, NULL), SDB_STATUS_NOT_FOUND);

    /* DELETE: the document goes when its last path goes */
    IT_OK(c, tc_delete(c, "/docs/new"));
    IT_OK(c, tc_lookup(c, "/docs/a.txt", NULL));
    IT_OK(c, tc_delete(c, "/docs/a.txt"));
    IT_RC(c, tc_lookup(c, "/docs/a.txt", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_get(c, "/docs/a.txt", NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_get_id(c, &i1.id, 0, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_list_versions(c, &i1.id, &l), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_delete(c, "/docs/a.txt"), SDB_STATUS_NOT_FOUND);

    /* DELETE_ID: a pathless document, and one with two paths */
    IT_OK(c, tc_delete_id(c, &nw.id));
    IT_RC(c, tc_get_id(c, &nw.id, 0, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_delete_id(c, &nw.id), SDB_STATUS_NOT_FOUND);
    sdb_docinfo_t two;
    IT_OK(c, tc_put(c, "/d/1", "two", 3, UNSET, &two));
    IT_OK(c, tc_bind(c, &two.id, "/d/2"));
    IT_OK(c, tc_delete_id(c, &two.id));
    IT_RC(c, tc_lookup(c, "/d/1", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_lookup(c, "/d/2", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_list_paths(c, &two.id, &l), SDB_STATUS_NOT_FOUND);

    /* an empty document: no DATA frame */
    IT_OK(c, tc_put(c, "/empty", NULL, 0, UNSET, &x));
    ck_assert_msg(x.size == 0 && x.crc32 == 0, "empty document: size %llu crc %08x",
                  (unsigned long long)x.size, x.crc32);
    IT_OK(c, tc_send_path(c, SDB_OP_GET, 9100, "/empty"));
    IT_OK(c, tc_recv(c, 9100, SDB_OP_GET_HEADER));
    IT_OK(c, tc_recv(c, 9100, SDB_OP_END));

    /* an upload of undeclared size, in uneven chunks */
    IT_OK(c, tc_send_put_begin(c, 9200, "/unsized", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, 9200, A, 1));
    IT_OK(c, tc_send_put_data(c, 9200, A + 1, 0));
    IT_OK(c, tc_send_put_data(c, 9200, A + 1, 16384));
    IT_OK(c, tc_send_put_data(c, 9200, A + 16385, 615));
    IT_OK(c, tc_send_put_end(c, 9200, 17000, tc_crc(A, 17000)));
    IT_OK(c, tc_recv_doc(c, 9200, SDB_OP_DOC, &x));
    ck_assert_uint_eq(x.size, 17000);
    it_expect_get(c, "/unsized", A, 17000, NULL);

    /* UTF-8 paths are stored and listed byte for byte */
    const char *utf = "/\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9" "/\xe6\x96\x87\xe4\xbb\xb6 \xf0\x9f\x93\x84";
    IT_OK(c, tc_put(c, utf, "utf", 3, UNSET, NULL));
    it_expect_get(c, utf, "utf", 3, NULL);
    IT_OK(c, tc_search(c, "/\xc3\xbc", "", 0, 0, &l));
    ck_assert_msg(l.n == 1 && strcmp(l.path[0], utf) == 0, "SEARCH by a UTF-8 prefix");
    tc_list_free(&l);
    IT_OK(c, tc_delete(c, utf));

    /* PUT_ABORT discards the upload */
    IT_OK(c, tc_send_put_begin(c, 9300, "/aborted", 5000, UNSET));
    IT_OK(c, tc_send_put_data(c, 9300, A, 3000));
    IT_OK(c, tc_send_empty(c, SDB_OP_PUT_ABORT, 9300));
    IT_OK(c, tc_recv(c, 9300, SDB_OP_OK));
    IT_RC(c, tc_lookup(c, "/aborted", NULL), SDB_STATUS_NOT_FOUND);

    /* FLUSH, then the engine's figures in STATS */
    IT_OK(c, tc_flush(c));
    cJSON *j = it_stats(c);
    ck_assert_msg(it_num(j, "engine.documents") == 2, "engine.documents %g, expected 2 (/empty, /unsized)",
                  it_num(j, "engine.documents"));
    ck_assert_msg(it_num(j, "engine.paths") == 2, "engine.paths %g", it_num(j, "engine.paths"));
    ck_assert_msg(it_num(j, "requests.FLUSH.count") == 1, "FLUSH not counted");
    cJSON_Delete(j);

    free(A);
    free(B);
    free(C);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- SEARCH ---- */

static void search_all_pages(tc_t *c, const char *prefix, uint32_t limit, uint8_t delim,
                             tc_list_t *all, unsigned *pages)
{
    char after[4200] = "";
    memset(all, 0, sizeof *all);
    *pages = 0;
    for (;;) {
        tc_list_t l;
        IT_OK(c, tc_search(c, prefix, after, limit, delim, &l));
        (*pages)++;
        ck_assert_msg(limit == 0 || l.n <= limit, "page of %zu entries over limit %u", l.n, limit);
        ck_assert_msg(l.more == 0 || l.n > 0, "an empty page says more");
        for (size_t i = 0; i < l.n; i++) {
            if (all->n == all->cap) {
                all->cap = all->cap ? 2 * all->cap : 64;
                all->kind = realloc(all->kind, all->cap);
                all->path = realloc(all->path, all->cap * sizeof *all->path);
                all->info = realloc(all->info, all->cap * sizeof *all->info);
                ck_assert(all->kind && all->path && all->info);
            }
            all->kind[all->n] = l.kind[i];
            all->path[all->n] = strdup(l.path[i]);
            all->info[all->n] = l.info[i];
            all->n++;
        }
        int more = l.more;
        if (l.n)
            snprintf(after, sizeof after, "%s", l.path[l.n - 1]);
        tc_list_free(&l);
        if (!more)
            break;
        ck_assert_msg(*pages < 10000, "paging does not end");
    }
}

START_TEST(test_search)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "search");
    td_start(&d, dir, "\"max_frame_bytes\": 65536, \"chunk_bytes\": 4096, " FAST_ENGINE);
    tc_t *c = it_session(&d, 0);
    static const char *const paths[] = { "/other", "/photos", "/photos/2024/a.jpg",
                                         "/photos/2024/b.jpg", "/photos/2025/c.jpg",
                                         "/photos/x.jpg", "/photos/y.jpg", "/photosX" };
    const size_t np = sizeof paths / sizeof *paths;
    sdb_docinfo_t info[8];
    /* bound in a shuffled order: the listing must sort them */
    static const int order[] = { 5, 0, 7, 2, 6, 1, 4, 3 };
    uint8_t buf[100];
    for (size_t k = 0; k < np; k++) {
        int i = order[k];
        tc_fill(buf, sizeof buf, (uint32_t)i);
        IT_OK(c, tc_put(c, paths[i], buf, 10 + (size_t)i, UNSET, &info[i]));
    }
    tc_list_t l;

    /* everything, in byte order, with each document's docinfo */
    IT_OK(c, tc_search(c, "", "", 0, 0, &l));
    it_expect_list(&l, paths, np, "all paths");
    for (size_t i = 0; i < np; i++)
        ck_assert_msg(it_id_eq(&l.info[i].id, &info[i].id) && l.info[i].size == 10 + i &&
                          l.info[i].version == 1 && l.info[i].crc32 == info[i].crc32,
                      "entry %zu (%s): wrong docinfo", i, paths[i]);
    ck_assert_uint_eq(l.more, 0);
    tc_list_free(&l);

    /* a delimiter rolls deeper paths up */
    const char *w1[] = { "/photos/2024/*", "/photos/2025/*", "/photos/x.jpg", "/photos/y.jpg" };
    IT_OK(c, tc_search(c, "/photos/", "", 0, '/', &l));
    it_expect_list(&l, w1, 4, "prefix /photos/ delimiter /");
    tc_list_free(&l);
    const char *w2[] = { "/photos", "/photos/*", "/photosX" };
    IT_OK(c, tc_search(c, "/photos", "", 0, '/', &l));
    it_expect_list(&l, w2, 3, "prefix /photos delimiter /");
    tc_list_free(&l);
    IT_OK(c, tc_search(c, "/photos", "", 0, 0, &l));
    it_expect_list(&l, paths + 1, 7, "prefix /photos");
    tc_list_free(&l);
    IT_OK(c, tc_search(c, "/nothing/", "", 0, '/', &l));
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(l.more, 0);
    tc_list_free(&l);

    /* start_after, limit, more */
    IT_OK(c, tc_search(c, "/photos/", "/photos/2024/a.jpg", 0, 0, &l));
    it_expect_list(&l, paths + 3, 4, "start_after /photos/2024/a.jpg");
    tc_list_free(&l);
    IT_OK(c, tc_search(c, "/photos/", "", 2, '/', &l));
    it_expect_list(&l, w1, 2, "page 1 (limit 2)");
    ck_assert_uint_eq(l.more, 1);
    tc_list_free(&l);
    /* a PREFIX key as start_after skips what it rolled up */
    IT_OK(c, tc_search(c, "/photos/", "/photos/2024/", 2, '/', &l));
    it_expect_list(&l, w1 + 1, 2, "page after /photos/2024/");
    ck_assert_uint_eq(l.more, 1);
    tc_list_free(&l);
    IT_OK(c, tc_search(c, "/photos/", "/photos/2025/", 2, '/', &l));
    it_expect_list(&l, w1 + 2, 2, "last page (exactly limit entries left)");
    ck_assert_msg(l.more == 0, "more = 1 although no entry follows");
    tc_list_free(&l);
    IT_OK(c, tc_search(c, "/photos/", "/photos/y.jpg", 2, '/', &l));
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(l.more, 0);
    tc_list_free(&l);

    /* paging through every page gives the full listing, once */
    unsigned pages;
    search_all_pages(c, "", 3, 0, &l, &pages);
    it_expect_list(&l, paths, np, "all pages, limit 3");
    ck_assert_uint_eq(pages, 3);
    tc_list_free(&l);
    search_all_pages(c, "/photos/", 1, '/', &l, &pages);
    it_expect_list(&l, w1, 4, "all pages, limit 1, delimiter");
    tc_list_free(&l);

    /* a long listing: 10001 paths (pipelined BINDs), several ENTRIES frames
     * each within chunk_bytes, paged by 1000 */
    enum { MANY = 10001 };
    char p[64];
    for (int i = 0; i < MANY; i++) {
        snprintf(p, sizeof p, "/many/%05d", (i * 7919) % MANY);
        IT_OK(c, tc_send_id_path(c, SDB_OP_BIND, 20000 + (uint32_t)i, &info[0].id, p));
    }
    for (int i = 0; i < MANY; i++)
        IT_OK(c, tc_recv(c, 20000 + (uint32_t)i, SDB_OP_OK));
    IT_OK(c, tc_search(c, "/many/", "", 2500, 0, &l));
    ck_assert_uint_eq(l.n, 2500);
    ck_assert_uint_eq(l.more, 1);
    ck_assert_msg(l.frames > 1, "2500 entries in %u ENTRIES frame", l.frames);
    ck_assert_msg(l.max_payload <= c->chunk, "an ENTRIES payload of %zu bytes > chunk_bytes %u",
                  l.max_payload, c->chunk);
    for (int i = 0; i < 2500; i++) {
        snprintf(p, sizeof p, "/many/%05d", i);
        ck_assert_msg(strcmp(l.path[i], p) == 0, "entry %d is %s", i, l.path[i]);
        ck_assert_msg(it_id_eq(&l.info[i].id, &info[0].id), "entry %d: wrong id", i);
    }
    tc_list_free(&l);
    /* limit 0: the server may cut pages short to bound its work, but paging
     * on `more` yields every entry once */
    search_all_pages(c, "/many/", 0, 0, &l, &pages);
    ck_assert_uint_eq(l.n, MANY);
    for (int i = 0; i < MANY; i++) {
        snprintf(p, sizeof p, "/many/%05d", i);
        ck_assert_msg(strcmp(l.path[i], p) == 0, "limit 0, paged entry %d is %s", i, l.path[i]);
    }
    tc_list_free(&l);
    search_all_pages(c, "/many/", 1000, 0, &l, &pages);
    ck_assert_uint_eq(l.n, MANY);
    ck_assert_uint_eq(pages, 11);
    for (int i = 0; i < MANY; i++) {
        snprintf(p, sizeof p, "/many/%05d", i);
        ck_assert_msg(strcmp(l.path[i], p) == 0, "paged entry %d is %s", i, l.path[i]);
    }
    tc_list_free(&l);
    /* LIST_PATHS of that document: 10002 paths across frames */
    IT_OK(c, tc_list_paths(c, &info[0].id, &l));
    ck_assert_uint_eq(l.n, MANY + 1);
    ck_assert_str_eq(l.path[MANY], "/other");
    tc_list_free(&l);
    /* INFO of a document with 10002 paths: its text is cut to fit the frame */
    sdb_docinfo_t x;
    char *text = NULL;
    IT_OK(c, tc_info(c, &info[0].id, &x, &text));
    ck_assert_msg(it_id_eq(&x.id, &info[0].id), "INFO: wrong document");
    ck_assert_msg(strlen(text) > 0, "INFO: empty text");
    free(text);
    IT_OK(c, tc_ping(c, "after INFO", 10));

    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- STATS: counters are exact on a fresh daemon ---- */

/* The file descriptors the daemon has open (/proc/PID/fd), or -1. */
static int daemon_fds(const td_t *d)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)d->pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* Closes c and waits until the daemon has closed its end: its fd count
 * falls (libuv closes the socket in uv_close(); the close callback, which
 * counts the connection out, runs before the loop reads again).  No STATS
 * or other request is needed, so the counters stay as they were. */
static void close_and_wait_seen(td_t *d, tc_t *c)
{
    int before = daemon_fds(d);
    ck_assert_msg(before > 0, "cannot read /proc/%ld/fd", (long)d->pid);
    tc_close(c);
    long long deadline = td_now_ms() + td_scaled(20000);
    int now;
    while ((now = daemon_fds(d)) >= before) {
        ck_assert_msg(td_now_ms() < deadline, "the daemon did not close a connection in 20 s "
                      "(%d fds, %d before)", now, before);
        td_sleep_ms(2);
    }
}

START_TEST(test_stats_counters)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "stats");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *a = it_session(&d, 1);
    tc_t *b = it_session(&d, 0);
    for (int i = 0; i < 3; i++)
        IT_OK(a, tc_ping(a, "x", 1));
    IT_OK(a, tc_put(a, "/s/1", "one", 3, UNSET, NULL));
    IT_OK(b, tc_put(b, "/s/2", "two!", 4, UNSET, NULL));
    IT_OK(a, tc_send_put_begin(a, 700, "/s/bad", 3, UNSET));
    IT_OK(a, tc_send_put_data(a, 700, "bad", 3));
    IT_OK(a, tc_send_put_end(a, 700, 3, 12345));
    IT_RC(a, tc_recv(a, 700, SDB_OP_DOC), SDB_STATUS_CHECKSUM);
    IT_OK(a, tc_lookup(a, "/s/1", NULL));
    IT_RC(a, tc_lookup(a, "/s/none", NULL), SDB_STATUS_NOT_FOUND);
    it_expect_get(b, "/s/2", "two!", 4, NULL);
    IT_OK(a, tc_send_frame(a, 0x7d, 0, 701, NULL, 0));
    IT_RC(a, tc_recv(a, 701, SDB_OP_OK), SDB_STATUS_BAD_OPCODE);
    uint64_t b_sent = b->sent, b_received = b->received;
    close_and_wait_seen(&d, b);   /* (a sleep of 50 ms, once: not on a busy machine) */

    uint64_t a_sent = a->sent + 12, a_received = a->received;   /* + the STATS request itself */
    cJSON *j = it_stats(a);
    struct {
        const char *key;
        double want;
    } exp[] = {
        { "connections.current", 1 },     { "connections.total", 2 },
        { "connections.rejected", 0 },    { "requests.HELLO.count", 2 },
        { "requests.PING.count", 3 },     { "requests.PING.errors", 0 },
        { "requests.PUT.count", 3 },      { "requests.PUT.errors", 1 },
        { "requests.LOOKUP.count", 2 },   { "requests.LOOKUP.errors", 1 },
        { "requests.GET.count", 1 },      { "requests.GET.errors", 0 },
        { "requests.STATS.count", -1 },   { "requests_total", 12 },
        { "errors_total", 3 },            { "engine.documents", 2 },
        { "engine.paths", 2 },
        /* every byte both clients sent, and every response byte they read */
        { "bytes_in", (double)(a_sent + b_sent) },
        { "bytes_out", (double)(a_received + b_received) },
    };
    for (size_t i = 0; i < sizeof exp / sizeof *exp; i++)
        ck_assert_msg(it_num(j, exp[i].key) == exp[i].want, "STATS %s = %g, expected %g", exp[i].key,
                      it_num(j, exp[i].key), exp[i].want);
    ck_assert_msg(it_num(j, "uptime_ms") >= 0, "no uptime_ms");
    ck_assert_msg(it_num(j, "requests.PUT.p50_us") > 0 &&
                      it_num(j, "requests.PUT.p99_us") >= it_num(j, "requests.PUT.p50_us"),
                  "PUT latency percentiles missing or unordered");
    double total = it_num(j, "engine.total_pages"), free_p = it_num(j, "engine.free_pages");
    ck_assert_msg(total > 0 && free_p >= 0 && free_p < total, "engine pages %g free of %g", free_p, total);
    ck_assert_msg(it_num(j, "engine.file_bytes") > 0, "engine.file_bytes missing");
    ck_assert_msg(it_num(j, "engine.checkpoints") >= 0 && it_num(j, "engine.journal_pages") >= 0 &&
                      it_num(j, "engine.checkpoint_running") >= 0,
                  "engine checkpoint figures missing: %g checkpoints, %g journal pages, running %g",
                  it_num(j, "engine.checkpoints"), it_num(j, "engine.journal_pages"),
                  it_num(j, "engine.checkpoint_running"));
    cJSON_Delete(j);
    /* a second STATS counts the first */
    j = it_stats(a);
    ck_assert_msg(it_num(j, "requests.STATS.count") == 1, "STATS.count %g", it_num(j, "requests.STATS.count"));
    ck_assert_msg(it_num(j, "bytes_in") == (double)(a->sent + b_sent), "bytes_in %g, sent %llu",
                  it_num(j, "bytes_in"), (unsigned long long)(a->sent + b_sent));
    cJSON_Delete(j);
    tc_close(a);
    td_stop(&d);
}
END_TEST

/* ---- pipelining: 1000 requests sent before any response is read ---- */

enum { PIPE_N = 1000 };

typedef struct {
    tc_t *c;
    int failed_at;          /* -1, or the request whose sending failed */
    char err[256];
} pipe_writer_t;

static void pipe_content(int i, uint8_t *buf, size_t *n)
{
    *n = (size_t)(i * 37) % 3000;
    tc_fill(buf, *n, (uint32_t)i);
}

static void *pipe_writer(void *arg)
{
    pipe_writer_t *w = arg;
    tc_t *c = w->c;
    uint8_t buf[3000];
    char path[64], ping[64];
    w->failed_at = -1;
    for (int i = 0; i < PIPE_N; i++) {
        uint32_t rid = 1000 + (uint32_t)i;
        int rc;
        size_t n;
        switch (i % 5) {
        case 0:
            pipe_content(i, buf, &n);
            snprintf(path, sizeof path, "/pipe/%04d", i);
            rc = tc_send_put(c, rid, path, buf, n, UNSET);
            break;
        case 1:
            snprintf(path, sizeof path, "/pipe/%04d", i - 1);
            rc = tc_send_path(c, SDB_OP_GET, rid, path);
            break;
        case 2:
            snprintf(ping, sizeof ping, "ping %d", i);
            rc = tc_send_ping(c, rid, ping, strlen(ping));
            break;
        case 3:
            snprintf(path, sizeof path, "/missing/%d", i);
            rc = tc_send_path(c, SDB_OP_LOOKUP, rid, path);
            break;
        default:
            rc = tc_send_search(c, rid, "/pipe/", "", 0, 0);
            break;
        }
        if (rc) {
            w->failed_at = i;
            it_errf(w->err, sizeof w->err, "%s", c->err);
            break;
        }
    }
    return NULL;
}

START_TEST(test_pipelining)
{
    int tcp = _i;
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "pipe");
    td_start(&d, dir, "\"max_inflight\": 16, \"chunk_bytes\": 4096, " FAST_ENGINE);
    tc_t *c = it_session(&d, tcp);
    pipe_writer_t w = { .c = c };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, pipe_writer, &w), 0);
    uint8_t buf[3000];
    int fail = 0;
    char why[512] = "";
    for (int i = 0; i < PIPE_N && !fail; i++) {
        uint32_t rid = 1000 + (uint32_t)i;
        sdb_docinfo_t info;
        size_t n;
        int rc;
        switch (i % 5) {
        case 0:
            rc = tc_recv_doc(c, rid, SDB_OP_DOC, &info);
            pipe_content(i, buf, &n);
            if (!rc && (info.version != 1 || info.size != n || info.crc32 != tc_crc(buf, n)))
                rc = TC_BAD, snprintf(c->err, sizeof c->err, "wrong DOC");
            break;
        case 1:
            rc = tc_recv_get(c, rid, &info, NULL, NULL);
            pipe_content(i - 1, buf, &n);
            if (!rc && (info.size != n || info.crc32 != tc_crc(buf, n)))
                rc = TC_BAD, snprintf(c->err, sizeof c->err, "GET of the previous PUT: wrong doc");
            break;
        case 2: {
            char ping[64];
            snprintf(ping, sizeof ping, "ping %d", i);
            rc = tc_recv(c, rid, SDB_OP_PONG);
            if (!rc && (c->m.u.raw.len != strlen(ping) || memcmp(c->m.u.raw.ptr, ping, strlen(ping))))
                rc = TC_BAD, snprintf(c->err, sizeof c->err, "PONG payload differs");
            break;
        }
        case 3:
            rc = tc_recv(c, rid, SDB_OP_DOC);
            rc = rc == SDB_STATUS_NOT_FOUND && !(c->flags & SDB_FLAG_CLOSING) ? 0 : rc ? rc : TC_BAD;
            break;
        default: {
            tc_list_t l;
            rc = tc_recv_list(c, rid, &l);
            /* the PUTs before this request are all visible, in order */
            if (!rc && l.n != (size_t)(i / 5 + 1))
                rc = TC_BAD, snprintf(c->err, sizeof c->err, "SEARCH saw %zu documents", l.n);
            tc_list_free(&l);
            break;
        }
        }
        if (rc) {
            fail = 1;
            it_errf(why, sizeof why, "response %d (op %d): %s %s %s", i, i % 5, it_rc_name(rc), c->err,
                     rc > 0 ? c->msg : "");
        }
    }
    pthread_join(th, NULL);
    ck_assert_msg(w.failed_at < 0, "sending request %d failed: %s", w.failed_at, w.err);
    ck_assert_msg(!fail, "%s", why);
    cJSON *j = it_stats(c);
    ck_assert_msg(it_num(j, "requests.PUT.count") == 200 && it_num(j, "requests.GET.count") == 200 &&
                      it_num(j, "requests.PING.count") == 200 &&
                      it_num(j, "requests.LOOKUP.errors") == 200 &&
                      it_num(j, "requests.SEARCH.count") == 200,
                  "STATS counters after the pipeline are wrong");
    cJSON_Delete(j);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- pipelined bursts of mixed requests on several connections ----
 *
 * Each connection sends BURST_N requests before reading any answer: whole
 * small uploads (PUT_BEGIN, PUT_DATA..., PUT_END), GETs of what was just
 * put, PINGs, LOOKUPs, GETs of missing paths, conditional PUTs that
 * conflict, GETs of a document larger than a batch's output (a stream that
 * ends a batch), DELETEs.  The daemon runs consecutive complete requests of
 * a connection as one job (server.h, invariant 1); every answer must come
 * back complete, right, and in request order, across the batches' bounds
 * (max_output_bytes 65536: a batch holds 32 KiB of output at most). */

enum { BURST_CONNS = 4, BURST_N = 600, BURST_BIG = 100000 };

typedef struct {
    td_t *d;
    int k;                  /* connection number */
    tc_t *c;
    const uint8_t *big;     /* /big's content */
    int failed_at;          /* sender: -1, or the request whose sending failed */
    char err[512];
} burst_t;

/* The content of burst request i's document on connection k: 0..5999 bytes
 * (no PUT_DATA, one, or two with chunk_bytes 4096). */
static void burst_content(int k, int i, uint8_t *buf, size_t *n)
{
    *n = (size_t)(i * 97 + k * 13) % 6000;
    tc_fill(buf, *n, (uint32_t)(k * 100000 + i));
}

static void burst_path(int k, int i, char *path, size_t cap)
{
    snprintf(path, cap, "/burst/%d/%04d", k, i - i % 10);   /* one path per group of ten */
}

static void *burst_sender(void *arg)
{
    burst_t *b = arg;
    tc_t *c = b->c;
    uint8_t buf[6000];
    char path[64], extra[64];
    size_t n;
    b->failed_at = -1;
    for (int i = 0; i < BURST_N && b->failed_at < 0; i++) {
        uint32_t rid = 1 + (uint32_t)i;
        int rc;
        burst_path(b->k, i, path, sizeof path);
        switch (i % 10) {
        case 0:
        case 9:
            burst_content(b->k, i, buf, &n);
            rc = tc_send_put(c, rid, path, buf, n, UNSET);
            break;
        case 1:
        case 3:
            rc = tc_send_path(c, i % 10 == 1 ? SDB_OP_GET : SDB_OP_LOOKUP, rid, path);
            break;
        case 2:
            snprintf(extra, sizeof extra, "ping %d.%d", b->k, i);
            rc = tc_send_ping(c, rid, extra, strlen(extra));
            break;
        case 4:
            snprintf(extra, sizeof extra, "/missing/%d/%d", b->k, i);
            rc = tc_send_path(c, SDB_OP_GET, rid, extra);
            break;
        case 5:
            rc = tc_send_put(c, rid, path, "conflict", 8, 7);   /* the document is at version 1 */
            break;
        case 6:
            rc = tc_send_path(c, SDB_OP_DELETE, rid, path);
            break;
        case 7:
            rc = tc_send_path(c, SDB_OP_LOOKUP, rid, path);    /* deleted: NOT_FOUND */
            break;
        default:
            rc = tc_send_path(c, SDB_OP_GET, rid, "/big");
            break;
        }
        if (rc) {
            b->failed_at = i;
            it_errf(b->err, sizeof b->err, "%s", c->err);
        }
    }
    return NULL;
}

typedef struct {
    const uint8_t *exp;
    size_t n, off;
    int bad;
} burst_sink_t;

static void burst_sink_cb(void *arg, const uint8_t *p, size_t n)
{
    burst_sink_t *s = arg;
    if (s->off + n > s->n || memcmp(s->exp + s->off, p, n) != 0)
        s->bad = 1;
    s->off += n;
}

/* One connection: sends its burst on a thread, reads and checks every
 * answer here.  b->err says what went wrong first. */
static void *burst_conn(void *arg)
{
    burst_t *b = arg;
    tc_t *c = b->k % 2 ? tc_connect_tcp(b->d->port, 0) : tc_connect_unix(b->d->sock);
    uint8_t buf[6000];
    char path[64], ping[64];
    size_t n;
    b->c = c;
    if (!c || tc_hello(c, NULL, NULL) != 0) {
        it_errf(b->err, sizeof b->err, "connection %d: no session", b->k);
        tc_close(c);
        return NULL;
    }
    burst_t sb = *b;
    pthread_t th;
    if (pthread_create(&th, NULL, burst_sender, &sb) != 0) {
        it_errf(b->err, sizeof b->err, "pthread_create");
        tc_close(c);
        return NULL;
    }
    int rc = 0;
    for (int i = 0; i < BURST_N && !rc; i++) {
        uint32_t rid = 1 + (uint32_t)i;
        sdb_docinfo_t info;
        burst_sink_t sink = { 0 };
        burst_path(b->k, i, path, sizeof path);
        const char *what = "";
        switch (i % 10) {
        case 0:
        case 9:
            what = "PUT";
            burst_content(b->k, i, buf, &n);
            rc = tc_recv_doc(c, rid, SDB_OP_DOC, &info);
            if (!rc && (info.size != n || info.crc32 != tc_crc(buf, n) || (i % 10 == 0 && info.version != 1)))
                rc = TC_BAD, it_errf(c->err, sizeof c->err, "DOC: version %llu, size %llu",
                                     (unsigned long long)info.version, (unsigned long long)info.size);
            break;
        case 1:
            what = "GET of the PUT before";
            burst_content(b->k, i - 1, buf, &n);
            sink.exp = buf;
            sink.n = n;
            rc = tc_recv_get(c, rid, &info, burst_sink_cb, &sink);
            if (!rc && (sink.bad || sink.off != n))
                rc = TC_BAD, it_errf(c->err, sizeof c->err, "wrong content (%zu bytes)", sink.off);
            break;
        case 2:
            what = "PING";
            snprintf(ping, sizeof ping, "ping %d.%d", b->k, i);
            rc = tc_recv(c, rid, SDB_OP_PONG);
            if (!rc && (c->m.u.raw.len != strlen(ping) || memcmp(c->m.u.raw.ptr, ping, strlen(ping))))
                rc = TC_BAD, it_errf(c->err, sizeof c->err, "PONG payload differs");
            break;
        case 3:
            what = "LOOKUP";
            burst_content(b->k, i - 3, buf, &n);
            rc = tc_recv_doc(c, rid, SDB_OP_DOC, &info);
            if (!rc && info.size != n)
                rc = TC_BAD, it_errf(c->err, sizeof c->err, "size %llu", (unsigned long long)info.size);
            break;
        case 4:
        case 7:
            what = i % 10 == 4 ? "GET of a missing path" : "LOOKUP after DELETE";
            rc = i % 10 == 4 ? tc_recv_get(c, rid, &info, NULL, NULL) : tc_recv_doc(c, rid, SDB_OP_DOC, &info);
            rc = rc == SDB_STATUS_NOT_FOUND && !(c->flags & SDB_FLAG_CLOSING) ? 0 : rc ? rc : TC_BAD;
            break;
        case 5:
            what = "conditional PUT";
            rc = tc_recv_doc(c, rid, SDB_OP_DOC, &info);
            rc = rc == SDB_STATUS_CONFLICT && !(c->flags & SDB_FLAG_CLOSING) ? 0 : rc ? rc : TC_BAD;
            break;
        case 8:
            what = "GET /big";
            sink.exp = b->big;
            sink.n = BURST_BIG;
            rc = tc_recv_get(c, rid, &info, burst_sink_cb, &sink);
            if (!rc && (sink.bad || sink.off != BURST_BIG))
                rc = TC_BAD, it_errf(c->err, sizeof c->err, "wrong content (%zu bytes)", sink.off);
            break;
        case 6:
            what = "DELETE";
            rc = tc_recv(c, rid, SDB_OP_OK);
            break;
        }
        if (rc)
            it_errf(b->err, sizeof b->err, "connection %d, request %d (%s): %s %s %s", b->k, i, what,
                    it_rc_name(rc), c->err, rc > 0 ? c->msg : "");
    }
    if (rc)
        shutdown(c->fd, SHUT_RDWR);   /* unblock the sender */
    pthread_join(th, NULL);
    if (!rc && sb.failed_at >= 0)
        it_errf(b->err, sizeof b->err, "connection %d: sending request %d failed: %s", b->k, sb.failed_at,
                sb.err);
    return NULL;
}

START_TEST(test_pipelined_bursts)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "burst");
    td_start(&d, dir, "\"max_output_bytes\": 65536, \"chunk_bytes\": 4096, \"max_inflight\": 64, "
                      FAST_ENGINE);
    uint8_t *big = malloc(BURST_BIG);
    ck_assert_ptr_nonnull(big);
    tc_fill(big, BURST_BIG, 4242);
    tc_t *c = it_session(&d, 0);
    IT_OK(c, tc_put(c, "/big", big, BURST_BIG, UNSET, NULL));
    pthread_t th[BURST_CONNS];
    burst_t b[BURST_CONNS];
    for (int k = 0; k < BURST_CONNS; k++) {
        b[k] = (burst_t){ .d = &d, .k = k, .big = big };
        ck_assert_int_eq(pthread_create(&th[k], NULL, burst_conn, &b[k]), 0);
    }
    for (int k = 0; k < BURST_CONNS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < BURST_CONNS; k++) {
        ck_assert_msg(b[k].err[0] == '\0', "%s", b[k].err);
        tc_close(b[k].c);
    }
    /* one PUT, GET, ... each in STATS: a batch records every request */
    cJSON *j = it_stats(c);
    double puts = BURST_CONNS * (BURST_N / 10) * 3 + 1, gets = BURST_CONNS * (BURST_N / 10) * 3;
    ck_assert_msg(it_num(j, "requests.PUT.count") == puts && it_num(j, "requests.GET.count") == gets &&
                      it_num(j, "requests.PUT.errors") == BURST_CONNS * (BURST_N / 10) &&
                      it_num(j, "requests.PING.count") == BURST_CONNS * (BURST_N / 10) &&
                      it_num(j, "requests.LOOKUP.count") == BURST_CONNS * (BURST_N / 10) * 2,
                  "STATS after the bursts: PUT %g (errors %g), GET %g, PING %g, LOOKUP %g",
                  it_num(j, "requests.PUT.count"), it_num(j, "requests.PUT.errors"),
                  it_num(j, "requests.GET.count"), it_num(j, "requests.PING.count"),
                  it_num(j, "requests.LOOKUP.count"));
    cJSON_Delete(j);
    tc_close(c);
    free(big);
    td_stop(&d);
}
END_TEST

/* ---- consecutive uploads of a batch commit as one group ----
 *
 * Whole uploads queued one after the other run in one batch, and their
 * commits wait to be made as one group (commit_group in work.c): the
 * answers must still come in request order, each upload succeeding or
 * failing on its own -- a conditional PUT on the version that the upload
 * just before it creates succeeds, one on a wrong version conflicts, one
 * whose PUT_END has a wrong CRC32 fails before its commit (its ERROR comes
 * after the DOCs of the commits waiting before it) -- and a GET behind them
 * sees every commit. */
START_TEST(test_pipelined_uploads_grouped)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "group");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *c = it_session(&d, 0);
    enum { ROUNDS = 40, PER = 6 };
    uint8_t a[1024], b[1024], x[100];
    char path[64], other[64];
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t rid = 1 + (uint32_t)i * PER;
        snprintf(path, sizeof path, "/g/%d", i);
        snprintf(other, sizeof other, "/g/%d/other", i);
        tc_fill(a, sizeof a, (uint32_t)i);
        tc_fill(b, sizeof b, (uint32_t)i + 1000);
        tc_fill(x, sizeof x, 5);
        IT_OK(c, tc_send_put(c, rid, path, a, sizeof a, 0));           /* new: version 1 */
        IT_OK(c, tc_send_put(c, rid + 1, path, b, sizeof b, 1));       /* on version 1: version 2 */
        IT_OK(c, tc_send_put(c, rid + 2, path, x, sizeof x, 7));       /* conflict */
        IT_OK(c, tc_send_put_begin(c, rid + 3, other, sizeof x, UNSET));
        IT_OK(c, tc_send_put_data(c, rid + 3, x, sizeof x));
        IT_OK(c, tc_send_put_end(c, rid + 3, sizeof x, tc_crc(x, sizeof x) ^ 1));   /* wrong CRC32 */
        IT_OK(c, tc_send_put(c, rid + 4, other, x, sizeof x, UNSET));  /* new: version 1 */
        IT_OK(c, tc_send_path(c, SDB_OP_GET, rid + 5, path));
    }
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t rid = 1 + (uint32_t)i * PER;
        sdb_docinfo_t info;
        tc_fill(b, sizeof b, (uint32_t)i + 1000);
        IT_OK(c, tc_recv_doc(c, rid, SDB_OP_DOC, &info));
        ck_assert_uint_eq(info.version, 1);
        IT_OK(c, tc_recv_doc(c, rid + 1, SDB_OP_DOC, &info));
        ck_assert_msg(info.version == 2 && info.crc32 == tc_crc(b, sizeof b),
                      "round %d: the conditional PUT on version 1 made version %llu", i,
                      (unsigned long long)info.version);
        IT_RC(c, tc_recv_doc(c, rid + 2, SDB_OP_DOC, &info), SDB_STATUS_CONFLICT);
        IT_RC(c, tc_recv_doc(c, rid + 3, SDB_OP_DOC, &info), SDB_STATUS_CHECKSUM);
        IT_OK(c, tc_recv_doc(c, rid + 4, SDB_OP_DOC, &info));
        ck_assert_uint_eq(info.version, 1);
        burst_sink_t sink = { .exp = b, .n = sizeof b };
        IT_OK(c, tc_recv_get(c, rid + 5, &info, burst_sink_cb, &sink));
        ck_assert_msg(!sink.bad && sink.off == sizeof b, "round %d: GET behind the uploads: wrong content", i);
    }
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- the answers of one read leave in one write ----
 *
 * 20 PINGs in one send() on a Unix socket arrive in one read; the daemon
 * answers them all in that loop turn and writes the 20 PONGs at its end in
 * one write (server.h, invariant 3), not the first one alone and the rest
 * after it.  STATS "writes" counts the daemon's completed socket writes. */
START_TEST(test_replies_gathered)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "gather");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *c = it_session(&d, 0);
    cJSON *j = it_stats(c);
    double w0 = it_num(j, "writes");   /* HELLO_OK; the STATS answer is counted once written */
    cJSON_Delete(j);
    enum { N = 20 };
    uint8_t burst[N * SDB_PROTO_HEADER_SIZE];
    for (int i = 0; i < N; i++) {
        sdb_proto_header_t h = { .opcode = SDB_OP_PING, .request_id = 100 + (uint32_t)i };
        sdb_proto_header_encode(burst + i * SDB_PROTO_HEADER_SIZE, &h);
    }
    IT_OK(c, tc_send_raw(c, burst, sizeof burst));
    for (int i = 0; i < N; i++)
        IT_OK(c, tc_recv(c, 100 + (uint32_t)i, SDB_OP_PONG));
    j = it_stats(c);
    double w1 = it_num(j, "writes");
    cJSON_Delete(j);
    /* the first STATS answer, then the PONGs */
    ck_assert_msg(w1 - w0 == 2, "%g writes for a STATS answer and 20 PONGs read at once, expected 2",
                  w1 - w0);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- 32 concurrent clients ---- */

enum { CLIENTS = 32, DOCS_PER_CLIENT = 6 };

typedef struct {
    td_t *d;
    int idx;
    pthread_barrier_t *go;
    char err[512];
} client_arg_t;

#define CFAIL(...)                                                                              \
    do {                                                                                        \
        it_errf(a->err, sizeof a->err, __VA_ARGS__);                                            \
        goto done;                                                                              \
    } while (0)

static size_t client_doc_size(int idx, int k)
{
    return ((size_t)idx * 7919 + (size_t)k * 30011) % 150000 + 1;
}

static void *client_main(void *arg)
{
    client_arg_t *a = arg;
    int idx = a->idx;
    tc_t *c = NULL;
    uint8_t *buf = malloc(150001), *got = NULL;
    char path[64];
    pthread_barrier_wait(a->go);
    if (!buf)
        CFAIL("malloc");
    c = idx % 2 ? tc_connect_tcp(a->d->port, 0) : tc_connect_unix(a->d->sock);
    if (!c)
        CFAIL("connect: %s", strerror(errno));
    int rc = tc_hello(c, NULL, NULL);
    if (rc)
        CFAIL("hello: %s %s", it_rc_name(rc), c->err);
    sdb_docinfo_t info[DOCS_PER_CLIENT], x;
    for (int k = 0; k < DOCS_PER_CLIENT; k++) {
        size_t n = client_doc_size(idx, k);
        tc_fill(buf, n, (uint32_t)(idx * 100 + k));
        snprintf(path, sizeof path, "/c%02d/doc%d", idx, k);
        if ((rc = tc_put(c, path, buf, n, UNSET, &info[k])))
            CFAIL("put %s: %s %s %s", path, it_rc_name(rc), c->err, c->msg);
        if (info[k].version != 1 || info[k].size != n)
            CFAIL("put %s: version %llu size %llu", path, (unsigned long long)info[k].version,
                  (unsigned long long)info[k].size);
    }
    for (int k = 0; k < DOCS_PER_CLIENT; k++) {
        size_t n = client_doc_size(idx, k), len;
        tc_fill(buf, n, (uint32_t)(idx * 100 + k));
        snprintf(path, sizeof path, "/c%02d/doc%d", idx, k);
        if ((rc = tc_get(c, path, &got, &len, &x)))
            CFAIL("get %s: %s %s", path, it_rc_name(rc), c->err);
        if (len != n || memcmp(got, buf, n) != 0 || !it_id_eq(&x.id, &info[k].id))
            CFAIL("get %s: content or id differs", path);
        free(got);
        got = NULL;
    }
    /* overwrite doc0; version 1 stays readable by id */
    snprintf(path, sizeof path, "/c%02d/doc0", idx);
    tc_fill(buf, 1000, (uint32_t)(idx + 5000));
    if ((rc = tc_put(c, path, buf, 1000, 1, &x)) || x.version != 2)
        CFAIL("overwrite %s: %s %s", path, it_rc_name(rc), c->err);
    size_t n0 = client_doc_size(idx, 0), len;
    if ((rc = tc_get_id(c, &info[0].id, 1, &got, &len, &x)))
        CFAIL("get_id v1: %s %s", it_rc_name(rc), c->err);
    tc_fill(buf, n0, (uint32_t)(idx * 100));
    if (len != n0 || memcmp(got, buf, n0) != 0)
        CFAIL("get_id v1: content differs");
    free(got);
    got = NULL;
    snprintf(path, sizeof path, "/c%02d/doc1", idx);
    if ((rc = tc_delete(c, path)))
        CFAIL("delete: %s", it_rc_name(rc));
    if ((rc = tc_lookup(c, path, NULL)) != SDB_STATUS_NOT_FOUND)
        CFAIL("lookup after delete: %s", it_rc_name(rc));
    snprintf(path, sizeof path, "/c%02d/", idx);
    tc_list_t l;
    if ((rc = tc_search(c, path, "", 0, 0, &l)))
        CFAIL("search: %s", it_rc_name(rc));
    size_t nl = l.n;
    tc_list_free(&l);
    if (nl != DOCS_PER_CLIENT - 1)
        CFAIL("search %s: %zu entries, expected %d (another client's paths?)", path, nl,
              DOCS_PER_CLIENT - 1);
done:
    free(got);
    free(buf);
    tc_close(c);
    return NULL;
}

START_TEST(test_concurrent_clients)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "conc");
    td_start(&d, dir, "\"chunk_bytes\": 16384, " FAST_ENGINE);
    pthread_t th[CLIENTS];
    client_arg_t args[CLIENTS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (client_arg_t){ .d = &d, .idx = i, .go = &go };
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(args[i].err[0] == '\0', "client %d: %s", i, args[i].err);
    tc_t *c = it_session(&d, 0);
    cJSON *j = it_stats(c);
    ck_assert_msg(it_num(j, "engine.documents") == CLIENTS * (DOCS_PER_CLIENT - 1),
                  "engine.documents %g", it_num(j, "engine.documents"));
    ck_assert_msg(it_num(j, "connections.total") == CLIENTS + 1, "connections.total %g",
                  it_num(j, "connections.total"));
    ck_assert_msg(it_num(j, "errors_total") == CLIENTS, "errors_total %g (the NOT_FOUND lookups)",
                  it_num(j, "errors_total"));
    cJSON_Delete(j);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- a 64 MiB document both ways ---- */

typedef struct {
    const uint8_t *exp;
    size_t off, n;
    int bad;
    size_t bad_at;
    td_t *d;
    long max_anon_kb;
    size_t next_sample;
} verify_t;

static void verify_sink(void *arg, const uint8_t *p, size_t n)
{
    verify_t *v = arg;
    if (!v->bad && (v->off + n > v->n || memcmp(v->exp + v->off, p, n) != 0)) {
        v->bad = 1;
        v->bad_at = v->off;
    }
    v->off += n;
    if (v->off >= v->next_sample) {
        long kb = td_status_kb(v->d, "RssAnon");
        if (kb > v->max_anon_kb)
            v->max_anon_kb = kb;
        v->next_sample += 4u << 20;
    }
}

START_TEST(test_large_document)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "large");
    td_start(&d, dir, "\"engine\": {\"durability\": \"full\"}");
    const size_t n = 64u << 20;
    uint8_t *big = it_bytes(n, 64);
    uint32_t crc = tc_crc(big, n);
    tc_t *c = it_session(&d, 1);
    long base_kb = td_status_kb(&d, "RssAnon");
    sdb_docinfo_t info;
    IT_OK(c, tc_put(c, "/big/64m", big, n, UNSET, &info));
    ck_assert_uint_eq(info.size, n);
    ck_assert_uint_eq(info.crc32, crc);
    long after_put_kb = td_status_kb(&d, "RssAnon");

    verify_t v = { .exp = big, .n = n, .d = &d, .next_sample = 1u << 20 };
    IT_OK(c, tc_send_path(c, SDB_OP_GET, 50, "/big/64m"));
    IT_OK(c, tc_recv_get(c, 50, &info, verify_sink, &v));   /* checks size and CRC */
    ck_assert_msg(!v.bad, "GET: content differs at byte %zu", v.bad_at);
    ck_assert_uint_eq(v.off, n);
    ck_assert_uint_eq(info.crc32, crc);

    /* the same through GET_ID, QUICK, over Unix */
    tc_t *u = it_session(&d, 0);
    verify_t v2 = { .exp = big, .n = n, .d = &d, .next_sample = 1u << 20 };
    IT_OK(u, tc_send_get_id(u, 51, &info.id, 0, SDB_FLAG_QUICK));
    IT_OK(u, tc_recv_get(u, 51, NULL, verify_sink, &v2));
    ck_assert_msg(!v2.bad && v2.off == n, "GET_ID QUICK: content differs");

    /* the daemon's anonymous memory does not follow the document size */
    long peak = v.max_anon_kb > v2.max_anon_kb ? v.max_anon_kb : v2.max_anon_kb;
    if (after_put_kb > peak)
        peak = after_put_kb;
    if (td_asan()) {
        fprintf(stderr, "note: test_large_document: ASan build, RSS bound not checked "
                        "(RssAnon %ld -> %ld kB)\n", base_kb, peak);
    } else {
        ck_assert_msg(base_kb > 0 && peak - base_kb < 24 * 1024,
                      "daemon RssAnon grew from %ld kB to %ld kB for a 64 MiB document", base_kb, peak);
    }
    free(big);
    tc_close(c);
    tc_close(u);
    td_stop(&d);
}
END_TEST

/* ---- a GET stream is a snapshot; abandoned downloads cost nothing ---- */

static double used_pages(tc_t *c)
{
    cJSON *j = it_stats(c);
    double used = it_num(j, "engine.total_pages") - it_num(j, "engine.free_pages");
    cJSON_Delete(j);
    return used;
}

/* Polls until the pages in use fall to at most want; returns the last figure. */
static double wait_used_at_most(tc_t *c, double want)
{
    double used = used_pages(c);
    for (int i = 0; i < 800 && used > want; i++) {
        td_sleep_ms(25);
        used = used_pages(c);
    }
    return used;
}

START_TEST(test_get_snapshot)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "snap");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *w = it_session(&d, 0), *r = it_session(&d, 1);
    IT_OK(w, tc_put(w, "/keep", "k", 1, UNSET, NULL));
    IT_OK(w, tc_flush(w));
    double used0 = used_pages(w);
    const size_t n = 8u << 20;
    uint8_t *a = it_bytes(n, 11), *b = it_bytes(1u << 20, 12);
    sdb_docinfo_t v1, x;
    IT_OK(w, tc_put(w, "/snap", a, n, UNSET, &v1));

    /* r starts reading version 1, then pauses */
    IT_OK(r, tc_send_path(r, SDB_OP_GET, 7, "/snap"));
    IT_OK(r, tc_recv_doc(r, 7, SDB_OP_GET_HEADER, &x));
    expect_same_doc(&x, &v1, "GET header");
    IT_OK(r, tc_recv(r, 7, SDB_OP_DATA));
    size_t got = r->m.u.raw.len;
    ck_assert_msg(memcmp(r->m.u.raw.ptr, a, got) == 0, "first DATA differs");
    uint32_t crc = tc_crc(a, got);

    /* meanwhile the document is overwritten, deleted, and the file flushed */
    IT_OK(w, tc_put(w, "/snap", b, 1u << 20, UNSET, &x));
    ck_assert_uint_eq(x.version, 2);
    IT_OK(w, tc_delete(w, "/snap"));
    IT_OK(w, tc_flush(w));
    IT_RC(w, tc_lookup(w, "/snap", NULL), SDB_STATUS_NOT_FOUND);

    /* r still gets exactly version 1 */
    for (;;) {
        int rc = tc_read(r);
        ck_assert_msg(rc == 1, "stream cut: %s %s", it_rc_name(rc), r->err);
        ck_assert_msg(r->m.request_id == 7, "frame for request %u", r->m.request_id);
        if (r->m.opcode == SDB_OP_END)
            break;
        ck_assert_msg(r->m.opcode == SDB_OP_DATA, "got %s (%s) in the stream",
                      sdb_proto_opcode_name(r->m.opcode), r->msg);
        size_t k = r->m.u.raw.len;
        ck_assert_msg(got + k <= n && memcmp(r->m.u.raw.ptr, a + got, k) == 0,
                      "the stream changed under a concurrent overwrite at byte %zu", got);
        crc = (uint32_t)crc32(crc, r->m.u.raw.ptr, (uInt)k);
        got += k;
    }
    ck_assert_uint_eq(got, n);
    ck_assert_uint_eq(crc, v1.crc32);
    /* with the stream done, the deleted versions' pages come back */
    IT_OK(w, tc_flush(w));
    double used = wait_used_at_most(w, used0 + 16);   /* the document had 2048 pages */
    ck_assert_msg(used <= used0 + 16, "%.0f pages in use after the delete, %.0f before the document",
                  used, used0);
    free(a);
    free(b);
    tc_close(w);
    tc_close(r);
    td_stop(&d);
}
END_TEST

START_TEST(test_abandoned_downloads)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "abandon");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *w = it_session(&d, 0);
    IT_OK(w, tc_put(w, "/keep", "k", 1, UNSET, NULL));
    IT_OK(w, tc_flush(w));
    double used0 = used_pages(w);
    const size_t n = 8u << 20;
    uint8_t *a = it_bytes(n, 13);
    IT_OK(w, tc_put(w, "/dl", a, n, UNSET, NULL));
    long rss0 = td_status_kb(&d, "RssAnon");
    for (int k = 0; k < 30; k++) {
        tc_t *c = it_session(&d, k % 2);
        IT_OK(c, tc_send_path(c, SDB_OP_GET, 1, "/dl"));
        if (k % 3 != 0) {                 /* read a little, then leave */
            IT_OK(c, tc_recv(c, 1, SDB_OP_GET_HEADER));
            for (int i = 0; i < k; i++)
                IT_OK(c, tc_recv(c, 1, SDB_OP_DATA));
        }
        tc_close(c);
    }
    double cur = -1;
    for (int i = 0; i < 800 && cur != 1; i++) {
        cur = it_stat(w, "connections.current");
        if (cur != 1)
            td_sleep_ms(25);
    }
    ck_assert_msg(cur == 1, "%g connections left after the clients went away", cur);
    long rss1 = td_status_kb(&d, "RssAnon");
    if (!td_asan())
        ck_assert_msg(rss1 - rss0 < 16 * 1024, "RssAnon %ld -> %ld kB after 30 abandoned downloads", rss0,
                      rss1);
    /* no reader was left open: the document's pages are freed once deleted */
    IT_OK(w, tc_delete(w, "/dl"));
    IT_OK(w, tc_flush(w));
    double used = wait_used_at_most(w, used0 + 16);   /* the document had 2048 pages */
    ck_assert_msg(used <= used0 + 16, "%.0f pages still in use after the delete (%.0f before): a reader "
                  "leaked?", used, used0);
    free(a);
    tc_close(w);
    td_stop(&d);
}
END_TEST

typedef struct {
    const uint8_t *exp;
    size_t n, off;
    int bad;
} membuf_check_t;

static void range_sink(void *arg, const uint8_t *p, size_t k)
{
    membuf_check_t *m = arg;
    if (m->off + k > m->n || memcmp(p, m->exp + m->off, k) != 0)
        m->bad = 1;
    m->off += k;
}

/* ---- byte ranges: GET_RANGE, GET_ID_RANGE ---- */

/* Reads a range through GET_RANGE and asserts its header and bytes. */
static void expect_range(tc_t *c, const char *path, const uint8_t *doc, uint64_t size,
                         uint64_t offset, uint64_t length)
{
    uint8_t *d = NULL;
    size_t len = 0;
    sdb_proto_range_header_t h;
    IT_OK(c, tc_get_range(c, path, offset, length, &d, &len, &h));
    uint64_t want = length < size - offset ? length : size - offset;
    ck_assert_msg(h.doc.size == size && h.offset == offset && h.length == want,
                  "GET_RANGE %s [%llu, +%llu): header size %llu offset %llu length %llu, expected "
                  "%llu %llu %llu", path, (unsigned long long)offset, (unsigned long long)length,
                  (unsigned long long)h.doc.size, (unsigned long long)h.offset,
                  (unsigned long long)h.length, (unsigned long long)size,
                  (unsigned long long)offset, (unsigned long long)want);
    ck_assert_msg(len == want && (want == 0 || memcmp(d, doc + offset, want) == 0),
                  "GET_RANGE %s [%llu, +%llu): content differs", path,
                  (unsigned long long)offset, (unsigned long long)length);
    free(d);
}

/* Loop index: 0 Unix socket, 1 TCP. */
START_TEST(test_get_range)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "range");
    td_start(&d, dir, FAST_ENGINE);
    tc_t *c = it_session(&d, _i);
    const size_t n = (1u << 20) + 123;          /* 17 DATA frames of 64 KiB for the whole */
    uint8_t *a = it_bytes(n, 21), *b = it_bytes(5000, 22);
    sdb_docinfo_t v1, v2;
    IT_OK(c, tc_put(c, "/r", a, n, UNSET, &v1));
    static const uint64_t cases[][2] = {
        { 0, UNSET }, { 0, (1u << 20) + 123 }, { 0, 1 }, { 1, 1 }, { 4095, 2 },
        { (1u << 20) + 123 - 4096, 4096 },        /* the last 4 KiB */
        { 1000, 300000 },                         /* several DATA frames */
        { 5, UNSET }, { 5, (1u << 20) + 500 },    /* cut at the end */
        { 777, 0 },                               /* empty */
        { (1u << 20) + 123, 10 },                 /* at the end: empty */
        { (1u << 20) + 122, UNSET },              /* the last byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_range(c, "/r", a, n, cases[i][0], cases[i][1]);

    /* past the end: one ERROR INVALID that names the offset and the size */
    IT_RC(c, tc_send_get_range(c, 40, "/r", n + 1, 1, 0), 0);
    IT_RC(c, tc_recv_range(c, 40, NULL, NULL, NULL), SDB_STATUS_INVALID);
    ck_assert_msg(strstr(c->msg, "past the end") && strstr(c->msg, "1048700") &&
                  strstr(c->msg, "1048699"), "message: %s", c->msg);
    IT_RC(c, tc_send_get_range(c, 41, "/r", UINT64_MAX, UINT64_MAX, 0), 0);
    IT_RC(c, tc_recv_range(c, 41, NULL, NULL, NULL), SDB_STATUS_INVALID);
    /* unbound and bad paths, as GET */
    IT_RC(c, tc_send_get_range(c, 42, "/nope", 0, 1, 0), 0);
    IT_RC(c, tc_recv_range(c, 42, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    ck_assert_msg(strstr(c->msg, "/nope") != NULL, "message: %s", c->msg);
    IT_RC(c, tc_send_get_range(c, 43, "", 0, 1, 0), 0);
    IT_RC(c, tc_recv_range(c, 43, NULL, NULL, NULL), SDB_STATUS_INVALID);

    /* GET_ID_RANGE by version, QUICK allowed */
    IT_OK(c, tc_put(c, "/r", b, 5000, UNSET, &v2));
    ck_assert_uint_eq(v2.version, 2);
    sdb_proto_range_header_t h;
    membuf_check_t mb = { .exp = a + 500000, .n = 70000 };
    IT_OK(c, tc_send_get_id_range(c, 44, &v1.id, 1, 500000, 70000, SDB_FLAG_QUICK));
    IT_OK(c, tc_recv_range(c, 44, &h, range_sink, &mb));
    ck_assert_msg(!mb.bad && mb.off == 70000, "GET_ID_RANGE v1: content differs");
    ck_assert_uint_eq(h.doc.version, 1);
    ck_assert_uint_eq(h.doc.size, n);
    ck_assert_uint_eq(h.doc.crc32, v1.crc32);
    membuf_check_t mb2 = { .exp = b + 4000, .n = 1000 };
    IT_OK(c, tc_send_get_id_range(c, 45, &v1.id, 0, 4000, UNSET, 0));
    IT_OK(c, tc_recv_range(c, 45, &h, range_sink, &mb2));
    ck_assert_msg(!mb2.bad && mb2.off == 1000 && h.doc.version == 2, "GET_ID_RANGE current");
    IT_RC(c, tc_send_get_id_range(c, 46, &v1.id, 9, 0, 1, 0), 0);
    IT_RC(c, tc_recv_range(c, 46, NULL, NULL, NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_send_get_id_range(c, 47, &v1.id, 2, 5001, 1, 0), 0);
    IT_RC(c, tc_recv_range(c, 47, NULL, NULL, NULL), SDB_STATUS_INVALID);

    /* pipelined with other requests: answered in order, connection intact */
    IT_OK(c, tc_send_get_range(c, 50, "/r", 10, 20, 0));
    IT_OK(c, tc_send_path(c, SDB_OP_LOOKUP, 51, "/r"));
    IT_OK(c, tc_send_get_range(c, 52, "/r", 4999, 20, 0));
    IT_OK(c, tc_recv_range(c, 50, &h, NULL, NULL));
    ck_assert_uint_eq(h.length, 20);
    IT_OK(c, tc_recv_doc(c, 51, SDB_OP_DOC, NULL));
    IT_OK(c, tc_recv_range(c, 52, &h, NULL, NULL));
    ck_assert_uint_eq(h.length, 1);
    it_expect_get(c, "/r", b, 5000, NULL);
    free(a);
    free(b);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* BATCH over the wire, in raw frames: one item of each kind encoded, sent
 * as one frame, answered by BATCH_RESULT with a docinfo per item; a failing
 * item answered by BATCH_FAILED naming it, nothing applied; a malformed
 * body is ERROR PROTOCOL and a batch whose answer would exceed
 * max_frame_bytes ERROR TOO_LARGE, both leaving the connection usable; a
 * BATCH pipelined between other requests is answered in order. */
static size_t batch_body(uint8_t *buf, size_t cap, const sdb_proto_batch_item_t *it, size_t n)
{
    size_t len = 4, k;
    buf[0] = (uint8_t)n;
    buf[1] = (uint8_t)(n >> 8);
    buf[2] = (uint8_t)(n >> 16);
    buf[3] = (uint8_t)(n >> 24);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(sdb_proto_batch_item_encode(&it[i], buf + len, cap - len, &k), 0);
        len += k;
    }
    return len;
}

static sdb_proto_batch_item_t bitem(uint8_t kind, uint64_t ifv, const sdb_id_t *id, const char *path,
                                    const char *data)
{
    sdb_proto_batch_item_t it = { .kind = kind, .if_version = ifv };
    if (id)
        it.id = *id;
    it.path.ptr = path;
    it.path.len = strlen(path);
    if (data) {
        it.data.ptr = (const uint8_t *)data;
        it.data.len = strlen(data);
    }
    return it;
}

START_TEST(test_batch)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "batch");
    td_start(&d, dir, "\"max_frame_bytes\": 65536, " FAST_ENGINE);
    tc_t *c = it_session(&d, _i);
    sdb_docinfo_t keep;
    IT_OK(c, tc_put(c, "/w/keep", "keep", 4, UNSET, &keep));
    static uint8_t body[70000];
    sdb_proto_batch_item_t it[5] = {
        bitem(SDB_BATCH_ITEM_PUT, 0, NULL, "/w/a", "alpha"),
        bitem(SDB_BATCH_ITEM_PUT, 1, NULL, "/w/keep", "keep2"),
        bitem(SDB_BATCH_ITEM_BIND, 2, &keep.id, "/w/alias", NULL),
        bitem(SDB_BATCH_ITEM_UNBIND, UNSET, &keep.id, "/w/keep", NULL),
        bitem(SDB_BATCH_ITEM_PUT, 9, NULL, "/w/alias", "x"),   /* conflict: keep is at 2 */
    };
    size_t len = batch_body(body, sizeof body, it, 5);
    IT_OK(c, tc_send_frame(c, SDB_OP_BATCH, 0, 10, body, (uint32_t)len));
    IT_OK(c, tc_recv(c, 10, SDB_OP_BATCH_FAILED));
    ck_assert_uint_eq(c->m.u.batch_failed.item, 4);
    ck_assert_uint_eq(c->m.u.batch_failed.status, SDB_STATUS_CONFLICT);
    ck_assert_msg(c->m.u.batch_failed.message.len > 0 &&
                  memmem(c->m.u.batch_failed.message.ptr, c->m.u.batch_failed.message.len,
                         "item 4 (put /w/alias)", 21), "message: %.*s",
                  (int)c->m.u.batch_failed.message.len, c->m.u.batch_failed.message.ptr);
    IT_RC(c, tc_send_path(c, SDB_OP_LOOKUP, 11, "/w/a"), 0);
    IT_RC(c, tc_recv_doc(c, 11, SDB_OP_DOC, NULL), SDB_STATUS_NOT_FOUND);
    it_expect_get(c, "/w/keep", "keep", 4, NULL);

    /* without the failing item, pipelined between a LOOKUP and a GET */
    len = batch_body(body, sizeof body, it, 4);
    IT_OK(c, tc_send_path(c, SDB_OP_LOOKUP, 20, "/w/keep"));
    IT_OK(c, tc_send_frame(c, SDB_OP_BATCH, 0, 21, body, (uint32_t)len));
    IT_OK(c, tc_send_path(c, SDB_OP_LOOKUP, 22, "/w/alias"));
    IT_OK(c, tc_recv_doc(c, 20, SDB_OP_DOC, NULL));
    IT_OK(c, tc_recv(c, 21, SDB_OP_BATCH_RESULT));
    ck_assert_uint_eq(c->m.u.batch_result.count, 4);
    sdb_docinfo_t r0, r1;
    sdb_proto_docinfo_decode(c->m.u.batch_result.data, &r0);
    sdb_proto_docinfo_decode(c->m.u.batch_result.data + SDB_PROTO_DOCINFO_SIZE, &r1);
    ck_assert_uint_eq(r0.version, 1);
    ck_assert_uint_eq(r0.size, 5);
    ck_assert_uint_eq(r1.version, 2);
    ck_assert(memcmp(r1.id.b, keep.id.b, 16) == 0);
    sdb_docinfo_t al;
    IT_OK(c, tc_recv_doc(c, 22, SDB_OP_DOC, &al));
    ck_assert_uint_eq(al.version, 2);
    it_expect_get(c, "/w/a", "alpha", 5, NULL);
    it_expect_get(c, "/w/alias", "keep2", 5, NULL);
    IT_RC(c, tc_send_path(c, SDB_OP_LOOKUP, 23, "/w/keep"), 0);
    IT_RC(c, tc_recv_doc(c, 23, SDB_OP_DOC, NULL), SDB_STATUS_NOT_FOUND);

    /* malformed: an unknown kind */
    len = batch_body(body, sizeof body, it, 2);
    body[4] = 9;
    IT_OK(c, tc_send_frame(c, SDB_OP_BATCH, 0, 30, body, (uint32_t)len));
    IT_RC(c, tc_recv(c, 30, SDB_OP_BATCH_RESULT), SDB_STATUS_PROTOCOL);
    /* more items than one answer frame holds ((65536 - 4) / 52 = 1260) */
    sdb_proto_batch_item_t del = bitem(SDB_BATCH_ITEM_DELETE, UNSET, NULL, "/d", NULL);
    size_t many = 1261, k;
    body[0] = (uint8_t)many;
    body[1] = (uint8_t)(many >> 8);
    body[2] = body[3] = 0;
    len = 4;
    for (size_t i = 0; i < many; i++) {
        ck_assert_int_eq(sdb_proto_batch_item_encode(&del, body + len, sizeof body - len, &k), 0);
        len += k;
    }
    IT_OK(c, tc_send_frame(c, SDB_OP_BATCH, 0, 31, body, (uint32_t)len));
    IT_RC(c, tc_recv(c, 31, SDB_OP_BATCH_RESULT), SDB_STATUS_TOO_LARGE);
    /* an empty batch */
    memset(body, 0, 4);
    IT_OK(c, tc_send_frame(c, SDB_OP_BATCH, 0, 32, body, 4));
    IT_OK(c, tc_recv(c, 32, SDB_OP_BATCH_RESULT));
    ck_assert_uint_eq(c->m.u.batch_result.count, 0);
    IT_OK(c, tc_send_ping(c, 33, "p", 1));
    IT_OK(c, tc_recv(c, 33, SDB_OP_PONG));
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* The daemon reads only the pages of the range: with every data page
 * outside it damaged on disk, the range is still served; a damaged page
 * inside it cuts the stream with ERROR CORRUPT. */
START_TEST(test_get_range_damage)
{
    char dir[256], file[300];
    td_t d;
    it_newdir(dir, sizeof dir, "rangedmg");
    td_start(&d, dir, "\"engine\": {\"page_size\": 4096}");
    snprintf(file, sizeof file, "%s/streamdb.sdb", d.data);
    const size_t cap = 4096 - 48, npages = 64, n = npages * cap;   /* docs/FORMAT.md */
    uint8_t *a = it_bytes(n, 31);
    tc_t *c = it_session(&d, 0);
    IT_OK(c, tc_put(c, "/dmg", a, n, UNSET, NULL));
    tc_close(c);
    td_stop(&d);

    FILE *f = fopen(file, "r+b");
    ck_assert_msg(f != NULL, "open %s", file);
    fseek(f, 0, SEEK_END);
    size_t flen = (size_t)ftell(f);
    uint8_t *img = malloc(flen);
    fseek(f, 0, SEEK_SET);
    ck_assert(fread(img, 1, flen, f) == flen);
    /* the range: page 20 (from byte 100 of it) to page 29 */
    const uint64_t off = 20 * cap + 100, len = 9 * cap + 50;
    for (size_t p = 0; p < npages; p++) {
        const uint8_t *at = memmem(img, flen, a + p * cap, 32);
        ck_assert_msg(at != NULL, "data page %zu not found in %s", p, file);
        if (p < 20 || p > 29)
            img[(size_t)(at - img) + 7] ^= 0xA5;
    }
    fseek(f, 0, SEEK_SET);
    ck_assert(fwrite(img, 1, flen, f) == flen);
    ck_assert(fclose(f) == 0);

    td_restart(&d);
    c = it_session(&d, 1);
    expect_range(c, "/dmg", a, n, off, len);
    expect_range(c, "/dmg", a, n, 20 * cap, 10 * cap);
    /* one byte more reaches page 30: damaged */
    IT_OK(c, tc_send_get_range(c, 60, "/dmg", 20 * cap, 10 * cap + 1, 0));
    IT_RC(c, tc_recv_range(c, 60, NULL, NULL, NULL), SDB_STATUS_CORRUPT);
    /* the whole document too, and the connection goes on */
    IT_OK(c, tc_send_path(c, SDB_OP_GET, 61, "/dmg"));
    IT_RC(c, tc_recv_get(c, 61, NULL, NULL, NULL), SDB_STATUS_CORRUPT);
    expect_range(c, "/dmg", a, n, off, len);
    free(img);
    free(a);
    tc_close(c);
    td_stop(&d);
}
END_TEST

Suite *suite_server(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("operations");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_hello_ping, 0, 2);
    tcase_add_loop_test(tc, test_operations, 0, 2);
    tcase_add_test(tc, test_search);
    tcase_add_test(tc, test_stats_counters);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_pipelining, 0, 2);
    tcase_add_test(tc, test_pipelined_bursts);
    tcase_add_test(tc, test_replies_gathered);
    tcase_add_test(tc, test_pipelined_uploads_grouped);
    tcase_add_test(tc, test_concurrent_clients);
    tcase_add_test(tc, test_large_document);
    tcase_add_test(tc, test_get_snapshot);
    tcase_add_test(tc, test_abandoned_downloads);
    suite_add_tcase(s, tc);

    tc = tcase_create("ranges");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_get_range, 0, 2);
    tcase_add_loop_test(tc, test_batch, 0, 2);
    tcase_add_test(tc, test_get_range_damage);
    suite_add_tcase(s, tc);
    return s;
}
