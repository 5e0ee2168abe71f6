/*
 * check_robust.c -- streamdbd integration tests, part 2: bad input (each gets
 * its error, the connection closes only when the byte stream or session can
 * no longer go on, and the daemon keeps serving others), authentication,
 * connection limits, idle and slow clients, a client that does not read, and
 * uploads cut off mid-stream.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define UNSET SDB_PROTO_UNSET
#define BASE_CONF "\"max_frame_bytes\": 65536, \"chunk_bytes\": 16384, " \
                  "\"engine\": {\"durability\": \"none\"}"

/* Reads the next frame and asserts it is a fatal ERROR (status, rid,
 * CLOSING), then that the daemon closes the connection. */
static void expect_fatal(tc_t *c, uint32_t rid, uint16_t status, const char *what)
{
    int rc = tc_read(c);
    ck_assert_msg(rc == 1, "%s: no ERROR frame (%s: %s)", what, it_rc_name(rc), c->err);
    ck_assert_msg(c->m.opcode == SDB_OP_ERROR, "%s: got %s, expected ERROR", what,
                  sdb_proto_opcode_name(c->m.opcode));
    ck_assert_msg(c->status == status, "%s: status %u (%s), expected %u (%s); message: %s", what,
                  c->status, it_rc_name(c->status), status, it_rc_name(status), c->msg);
    ck_assert_msg(c->m.request_id == rid, "%s: ERROR for request %u, expected %u", what,
                  c->m.request_id, rid);
    ck_assert_msg(c->flags & SDB_FLAG_CLOSING, "%s: ERROR without the CLOSING flag", what);
    int end = tc_expect_closed(c, td_scaled(3000));
    ck_assert_msg(end == TC_CLOSED, "%s: after a CLOSING error, the connection does not end: %s (%s)",
                  what, it_rc_name(end), c->err);
}

/* Asserts that the last ERROR's message holds each of the given texts (what
 * was wrong: the limit and its value, the argument and why). */
#define MSG_HAS(c, ...)                                                                          \
    do {                                                                                         \
        const char *want_[] = { __VA_ARGS__ };                                                   \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof *want_; i_++)                             \
            ck_assert_msg(strstr((c)->msg, want_[i_]) != NULL, "the ERROR message lacks \"%s\": %s", \
                          want_[i_], (c)->msg);                                                  \
    } while (0)

/* Reads the next frame and asserts a non-fatal ERROR for rid. */
static void expect_error(tc_t *c, uint32_t rid, uint16_t status, const char *what)
{
    int rc = tc_recv(c, rid, SDB_OP_OK);
    ck_assert_msg(rc == status, "%s: %d (%s), expected %u (%s); %s %s", what, rc, it_rc_name(rc),
                  status, it_rc_name(status), rc < 0 ? c->err : "", rc > 0 ? c->msg : "");
    ck_assert_msg(!(c->flags & SDB_FLAG_CLOSING), "%s: a request error closes the connection", what);
}

static void start(td_t *d, const char *name, const char *extra)
{
    char dir[256];
    it_newdir(dir, sizeof dir, name);
    td_start(d, dir, extra);
}

static void header(uint8_t out[12], uint8_t opcode, uint8_t flags, uint32_t len, uint32_t rid)
{
    sdb_proto_header_t h = { .opcode = opcode, .flags = flags, .length = len, .request_id = rid };
    sdb_proto_header_encode(out, &h);
}

/* ---- unreadable bytes ---- */

START_TEST(test_garbage)
{
    int after_hello = _i;
    td_t d;
    start(&d, "garbage", BASE_CONF);
    const char *what[] = { "HTTP request", "nonzero reserved byte", "bad magic" };
    for (int k = 0; k < 3; k++) {
        tc_t *c = it_connect(&d, k % 2);
        if (after_hello)
            IT_OK(c, tc_hello(c, NULL, NULL));
        if (k == 0) {
            const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
            IT_OK(c, tc_send_raw(c, http, strlen(http)));
        } else {
            uint8_t h[12];
            header(h, SDB_OP_PING, 0, 0, 33);
            if (k == 1)
                h[3] = 1;
            else
                h[0] = 0xDA;
            IT_OK(c, tc_send_raw(c, h, sizeof h));
        }
        expect_fatal(c, 0, SDB_STATUS_PROTOCOL, what[k]);
        tc_close(c);
        it_still_serving(&d, what[k]);
    }
    td_stop(&d);
}
END_TEST

START_TEST(test_huge_length)
{
    int after_hello = _i;
    td_t d;
    start(&d, "huge", BASE_CONF);
    long before = td_status_kb(&d, "RssAnon");
    for (int k = 0; k < 2; k++) {
        tc_t *c = it_connect(&d, k);
        if (after_hello)
            IT_OK(c, tc_hello(c, NULL, NULL));
        uint8_t h[12];
        header(h, after_hello ? SDB_OP_PING : SDB_OP_HELLO, 0, 0xFFFFFFFFu, 77);
        IT_OK(c, tc_send_raw(c, h, sizeof h));
        expect_fatal(c, 77, SDB_STATUS_TOO_LARGE, "length 0xFFFFFFFF");
        tc_close(c);
        it_still_serving(&d, "a length of 0xFFFFFFFF");
    }
    long after = td_status_kb(&d, "RssAnon");
    if (!td_asan())
        ck_assert_msg(after - before < 16 * 1024, "RssAnon %ld -> %ld kB after a 4 GiB header", before,
                      after);
    td_stop(&d);
}
END_TEST

START_TEST(test_frame_limits)
{
    td_t d;
    start(&d, "limits", BASE_CONF);
    /* after HELLO: max_frame_bytes (65536) passes, one more byte is fatal,
     * decided on the header alone */
    tc_t *c = it_session(&d, 1);
    uint8_t *big = it_bytes(65537, 3);
    IT_OK(c, tc_ping(c, big, 65536));
    uint8_t h[12];
    header(h, SDB_OP_PING, 0, 65537, 55);
    IT_OK(c, tc_send_raw(c, h, sizeof h));
    expect_fatal(c, 55, SDB_STATUS_TOO_LARGE, "PING of max_frame_bytes + 1");
    MSG_HAS(c, "65537", "65536", "max_frame_bytes");
    tc_close(c);
    it_still_serving(&d, "a frame over max_frame_bytes");

    /* before HELLO_OK the limit is 16384: a padded HELLO of exactly 16384
     * bytes is fine, 16385 is not */
    for (uint32_t len = 16384; len <= 16385; len++) {
        memset(big, 0, len);
        static const uint8_t hello[14] = { 'S', 'T', 'D', 'B', 1, 0, 1, 0, 0, 0, 2, 0, 'i', 't' };
        memcpy(big, hello, sizeof hello);
        c = it_connect(&d, 0);
        IT_OK(c, tc_send_frame(c, SDB_OP_HELLO, 0, 9, big, len));
        if (len == 16384) {
            IT_OK(c, tc_recv(c, 9, SDB_OP_HELLO_OK));
            IT_OK(c, tc_ping(c, "ok", 2));
        } else {
            expect_fatal(c, 9, SDB_STATUS_TOO_LARGE, "HELLO over 16384 bytes");
            MSG_HAS(c, "16385", "16384", "before HELLO_OK");
        }
        tc_close(c);
    }
    free(big);
    it_still_serving(&d, "a HELLO over 16384 bytes");
    td_stop(&d);
}
END_TEST

/* ---- request errors keep the connection ---- */

START_TEST(test_unknown_opcode)
{
    td_t d;
    start(&d, "opcode", BASE_CONF);
    tc_t *c = it_session(&d, 0);
    uint8_t junk[100];
    memset(junk, 0xee, sizeof junk);
    IT_OK(c, tc_send_frame(c, 0x7e, 0, 5, junk, sizeof junk));
    expect_error(c, 5, SDB_STATUS_BAD_OPCODE, "opcode 0x7e");
    IT_OK(c, tc_send_frame(c, 0x03, 0, 6, NULL, 0));
    expect_error(c, 6, SDB_STATUS_BAD_OPCODE, "opcode 0x03");
    /* a response opcode sent as a request */
    IT_OK(c, tc_send_frame(c, SDB_OP_DOC, 0, 7, junk, SDB_PROTO_DOCINFO_SIZE));
    expect_error(c, 7, SDB_STATUS_BAD_OPCODE, "opcode DOC as a request");
    IT_OK(c, tc_ping(c, "alive", 5));
    /* pipelined around an unknown opcode: answered in order */
    IT_OK(c, tc_send_ping(c, 10, "a", 1));
    IT_OK(c, tc_send_frame(c, 0x7f, 0, 11, junk, 10));
    IT_OK(c, tc_send_ping(c, 12, "b", 1));
    IT_OK(c, tc_recv(c, 10, SDB_OP_PONG));
    expect_error(c, 11, SDB_STATUS_BAD_OPCODE, "pipelined opcode 0x7f");
    IT_OK(c, tc_recv(c, 12, SDB_OP_PONG));
    tc_close(c);
    it_still_serving(&d, "unknown opcodes");
    td_stop(&d);
}
END_TEST

START_TEST(test_malformed_payload)
{
    td_t d;
    start(&d, "payload", BASE_CONF);
    tc_t *c = it_session(&d, 1);
    IT_OK(c, tc_put(c, "/x", "x", 1, UNSET, NULL));
    uint8_t p[64] = { 2, 0, '/', 'x', 0xAA };
    IT_OK(c, tc_send_frame(c, SDB_OP_LOOKUP, 0, 20, p, 5));          /* a byte left over */
    expect_error(c, 20, SDB_STATUS_PROTOCOL, "LOOKUP with a trailing byte");
    IT_OK(c, tc_send_frame(c, SDB_OP_LOOKUP, 0, 21, p, 3));          /* path cut short */
    expect_error(c, 21, SDB_STATUS_PROTOCOL, "LOOKUP with a short path");
    IT_OK(c, tc_send_frame(c, SDB_OP_GET_ID, 0, 22, p, 10));
    expect_error(c, 22, SDB_STATUS_PROTOCOL, "GET_ID of 10 bytes");
    IT_OK(c, tc_send_frame(c, SDB_OP_SEARCH, 0, 23, p, 6));
    expect_error(c, 23, SDB_STATUS_PROTOCOL, "truncated SEARCH");
    IT_OK(c, tc_send_frame(c, SDB_OP_STATS, 0, 24, p, 1));
    expect_error(c, 24, SDB_STATUS_PROTOCOL, "STATS with a payload");
    IT_OK(c, tc_send_frame(c, SDB_OP_LOOKUP, 0, 25, p, 4));           /* the good one */
    IT_OK(c, tc_recv(c, 25, SDB_OP_DOC));
    tc_close(c);
    it_still_serving(&d, "malformed payloads");
    td_stop(&d);
}
END_TEST

/* ---- the upload frames follow the rules of every request (PROTOCOL.md
 * sections 3, 6.2 and 8) ---- */

START_TEST(test_upload_frame_rules)
{
    td_t d;
    start(&d, "upframes", BASE_CONF);
    tc_t *c = it_session(&d, 0);
    uint32_t rid = 100;

    /* PUT_ABORT with a payload: ERROR PROTOCOL instead of OK, the upload is
       aborted all the same (the next request is served, nothing stored) */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/abort/payload", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "data", 4));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_ABORT, 0, rid, "x", 1));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_PROTOCOL, "PUT_ABORT with a payload");
    ck_assert_msg(strstr(c->msg, "PUT_ABORT") != NULL, "the message does not name PUT_ABORT: %s", c->msg);
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));

    /* PUT_ABORT with an undefined flag bit: INVALID, aborted */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/abort/flag", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "data", 4));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_ABORT, 0x40, rid, NULL, 0));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_INVALID, "PUT_ABORT with flag 0x40");
    ck_assert_msg(strstr(c->msg, "0x40") != NULL, "the message does not name the flag: %s", c->msg);
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));

    /* PUT_DATA with an undefined flag bit: the upload fails at once with
       INVALID; PUT_END then ends it without a second answer */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/data/flag", 8, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "good", 4));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_DATA, 0x20, rid, "bad!", 4));
    IT_OK(c, tc_send_put_end(c, rid, 8, tc_crc("goodbad!", 8)));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_INVALID, "PUT_DATA with flag 0x20");
    ck_assert_msg(strstr(c->msg, "0x20") != NULL, "the message does not name the flag: %s", c->msg);
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));
    /* ... also when it is not the first PUT_DATA of a batch */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/data/flag2", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "a", 1));
    IT_OK(c, tc_send_put_data(c, rid, "b", 1));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_DATA, 0x02, rid, "c", 1));
    IT_OK(c, tc_send_put_data(c, rid, "d", 1));
    IT_OK(c, tc_send_put_end(c, rid, 4, tc_crc("abcd", 4)));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_INVALID, "a later PUT_DATA with flag 0x02");
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));
    /* QUICK is a defined request flag, ignored outside GET */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/data/quick", UNSET, UNSET));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_DATA, SDB_FLAG_QUICK, rid, "q", 1));
    IT_OK(c, tc_send_put_end(c, rid, 1, tc_crc("q", 1)));
    IT_OK(c, tc_recv_doc(c, rid, SDB_OP_DOC, NULL));

    /* a malformed PUT_END gets its ERROR and ends the upload, storing nothing */
    uint8_t end[12] = { 4, 0, 0, 0, 0, 0, 0, 0 };   /* size 4, then the CRC32 */
    uint32_t crc = tc_crc("data", 4);
    for (int i = 0; i < 4; i++)
        end[8 + i] = (uint8_t)(crc >> (8 * i));      /* little-endian, like the wire */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/end/flag", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "data", 4));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_END, 0x40, rid, end, sizeof end));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_INVALID, "PUT_END with flag 0x40");
    ck_assert_msg(strstr(c->msg, "PUT_END") && strstr(c->msg, "0x40"), "message: %s", c->msg);
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));
    IT_OK(c, tc_send_put_begin(c, ++rid, "/end/short", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "data", 4));
    IT_OK(c, tc_send_frame(c, SDB_OP_PUT_END, 0, rid, end, 11));
    IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
    expect_error(c, rid, SDB_STATUS_PROTOCOL, "PUT_END of 11 bytes");
    ck_assert_msg(strstr(c->msg, "PUT_END") && strstr(c->msg, "malformed"), "message: %s", c->msg);
    IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));

    const char *gone[] = { "/abort/payload", "/abort/flag", "/data/flag", "/data/flag2", "/end/flag",
                           "/end/short" };
    for (size_t k = 0; k < 6; k++)
        IT_RC(c, tc_lookup(c, gone[k], NULL), SDB_STATUS_NOT_FOUND);

    /* an unknown opcode during an upload breaks its framing: fatal PROTOCOL
       with the frame's request id (not BAD_OPCODE), the upload aborted */
    IT_OK(c, tc_send_put_begin(c, ++rid, "/unknown/op", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, rid, "data", 4));
    IT_OK(c, tc_send_frame(c, 0x7e, 0, rid, "junk", 4));
    expect_fatal(c, rid, SDB_STATUS_PROTOCOL, "an unknown opcode during an upload");
    tc_close(c);
    c = it_session(&d, 1);
    IT_RC(c, tc_lookup(c, "/unknown/op", NULL), SDB_STATUS_NOT_FOUND);
    tc_close(c);
    it_still_serving(&d, "upload frames against the rules");
    td_stop(&d);
}
END_TEST

/* ENTRIES payloads, their 2-byte count included, stay within chunk_bytes
 * when the entries allow: with chunk_bytes 512 and DOC entries of 64 bytes
 * (a 9-byte path), 7 fit (450 bytes); 8 would make 514. */
START_TEST(test_entries_within_chunk)
{
    td_t d;
    start(&d, "entries", "\"chunk_bytes\": 512, \"engine\": {\"durability\": \"none\"}");
    tc_t *c = it_session(&d, 0);
    ck_assert_uint_eq(c->chunk, 512);
    sdb_docinfo_t doc;
    IT_OK(c, tc_put(c, "/p/000000", "x", 1, UNSET, &doc));
    char p[16];
    for (int i = 1; i < 40; i++) {
        snprintf(p, sizeof p, "/p/%06d", i);
        IT_OK(c, tc_bind(c, &doc.id, p));
    }
    tc_list_t l = { 0 };
    IT_OK(c, tc_search(c, "/p/", "", 0, 0, &l));
    ck_assert_uint_eq(l.n, 40);
    ck_assert_msg(l.max_payload <= 512, "SEARCH: an ENTRIES payload of %zu bytes > chunk_bytes 512",
                  l.max_payload);
    ck_assert_msg(l.frames >= 6, "SEARCH: 40 entries in %u ENTRIES frames", l.frames);
    tc_list_free(&l);
    memset(&l, 0, sizeof l);
    IT_OK(c, tc_list_paths(c, &doc.id, &l));
    ck_assert_uint_eq(l.n, 40);
    ck_assert_msg(l.max_payload <= 512, "LIST_PATHS: an ENTRIES payload of %zu bytes > chunk_bytes 512",
                  l.max_payload);
    tc_list_free(&l);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* A conditional write that finds another version says which one is current. */
START_TEST(test_conflict_message)
{
    td_t d;
    start(&d, "conflict", BASE_CONF);
    tc_t *c = it_session(&d, 0);
    sdb_docinfo_t x;
    IT_OK(c, tc_put(c, "/c/doc", "one", 3, UNSET, &x));
    IT_OK(c, tc_put(c, "/c/doc", "two", 3, 1, &x));
    IT_OK(c, tc_put(c, "/c/doc", "three", 5, 2, &x));
    ck_assert_uint_eq(x.version, 3);
    IT_RC(c, tc_put(c, "/c/doc", "stale", 5, 1, NULL), SDB_STATUS_CONFLICT);
    MSG_HAS(c, "/c/doc", "if_version 1", "current version 3");
    IT_RC(c, tc_put(c, "/c/doc", "new?", 4, 0, NULL), SDB_STATUS_CONFLICT);
    MSG_HAS(c, "/c/doc", "if_version 0", "current version 3");
    IT_RC(c, tc_put(c, "/c/none", "x", 1, 4, NULL), SDB_STATUS_CONFLICT);
    MSG_HAS(c, "/c/none", "if_version 4", "not bound");
    it_expect_get(c, "/c/doc", "three", 5, NULL);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* A database at max_db_size: the upload fails with TOO_LARGE naming the
 * limit, its value and the file, and the daemon logs it. */
START_TEST(test_db_size_message)
{
    td_t d;
    start(&d, "dbsize", "\"max_frame_bytes\": 65536, \"chunk_bytes\": 16384, "
                        "\"engine\": {\"durability\": \"none\", \"max_db_size\": 1048576}");
    tc_t *c = it_session(&d, 0);
    enum { BIG = 2 << 20 };
    uint8_t *data = it_bytes(BIG, 11);
    IT_OK(c, tc_send_put(c, 40, "/big", data, BIG, UNSET));
    IT_OK(c, tc_send_ping(c, 41, "p", 1));
    expect_error(c, 40, SDB_STATUS_TOO_LARGE, "a document past max_db_size");
    MSG_HAS(c, "max_db_size (1048576 bytes)", d.data);
    IT_OK(c, tc_recv(c, 41, SDB_OP_PONG));
    IT_RC(c, tc_lookup(c, "/big", NULL), SDB_STATUS_NOT_FOUND);
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "max_db_size (1048576 bytes)") != NULL, "the log does not say it: %s", log);
    free(log);
    free(data);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* A write that the system refuses (here: past the file size limit, EFBIG,
 * with SIGXFSZ ignored) is an I/O error whose message names the database
 * file, the failed call and the system's error. */
START_TEST(test_io_error_message)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "ioerr");
    td_init(&d, dir);
    td_write_config(&d, BASE_CONF);
    /* an ignored signal stays ignored across exec; ulimit -f counts blocks of
       512 (dash) or 1024 (bash) bytes: 1 or 2 MiB */
    const char *wrap[] = { "/bin/sh", "-c", "trap '' XFSZ; ulimit -f 2048 && exec \"$0\" \"$@\"", NULL };
    ck_assert_msg(td_spawn(&d, wrap, td_scaled(15000)) == 0, "the daemon did not start under ulimit -f");
    tc_t *c = it_session(&d, 0);
    enum { BIG = 4 << 20 };
    uint8_t *data = it_bytes(BIG, 12);
    IT_OK(c, tc_send_put(c, 50, "/big", data, BIG, UNSET));
    IT_OK(c, tc_send_ping(c, 51, "p", 1));
    expect_error(c, 50, SDB_STATUS_IO, "a write past the file size limit");
    MSG_HAS(c, "I/O error on the database file", d.data, "pwrite at offset", strerror(EFBIG));
    IT_OK(c, tc_recv(c, 51, SDB_OP_PONG));
    free(data);
    tc_close(c);
    /* the database is in its error state: the exit status is not the point */
    ck_assert_msg(td_signal_wait(&d, SIGTERM, td_scaled(15000)) != -1, "the daemon did not stop");
}
END_TEST

START_TEST(test_bad_path)
{
    td_t d;
    start(&d, "path", BASE_CONF);
    tc_t *c = it_session(&d, 0);
    sdb_docinfo_t doc;
    IT_OK(c, tc_put(c, "/good", "g", 1, UNSET, &doc));
    char *long_path = malloc(4098);
    memset(long_path, 'a', 4097);
    long_path[0] = '/';
    long_path[4097] = '\0';
    const char *bad[] = { "", long_path, "/bad\xff\xfe", "/overlong\xc0\xaf" };
    const char *names[] = { "an empty path", "a path of 4097 bytes", "invalid UTF-8",
                            "an overlong UTF-8 form" };
    const char *why[] = { "invalid path: it is empty", "invalid path: 4097 bytes, over the limit of 4096",
                          "invalid path: not UTF-8 (byte 0xff at offset 4)",
                          "invalid path: not UTF-8 (byte 0xc0 at offset 9)" };
    uint32_t rid = 100;
    for (size_t k = 0; k < 4; k++) {
        const uint8_t ops[] = { SDB_OP_LOOKUP, SDB_OP_GET, SDB_OP_DELETE };
        for (size_t o = 0; o < 3; o++) {
            IT_OK(c, tc_send_path(c, ops[o], ++rid, bad[k]));
            char what[128];
            snprintf(what, sizeof what, "%s with %s", sdb_proto_opcode_name(ops[o]), names[k]);
            expect_error(c, rid, SDB_STATUS_INVALID, what);
            MSG_HAS(c, why[k]);
        }
        IT_OK(c, tc_send_id_path(c, SDB_OP_BIND, ++rid, &doc.id, bad[k]));
        expect_error(c, rid, SDB_STATUS_INVALID, names[k]);
        MSG_HAS(c, why[k]);
        /* a refused PUT_BEGIN answers at once; the rest of the upload is
         * discarded without a second answer */
        IT_OK(c, tc_send_put(c, ++rid, bad[k], "data", 4, UNSET));
        IT_OK(c, tc_send_ping(c, rid + 1, "after", 5));
        expect_error(c, rid, SDB_STATUS_INVALID, names[k]);
        MSG_HAS(c, why[k]);
        IT_OK(c, tc_recv(c, ++rid, SDB_OP_PONG));
    }
    /* a NUL byte inside a path (built by hand: C strings cannot hold it) */
    uint8_t p[16] = { 5, 0, '/', 'a', 0, 'b', 'c' };
    IT_OK(c, tc_send_frame(c, SDB_OP_LOOKUP, 0, ++rid, p, 7));
    expect_error(c, rid, SDB_STATUS_INVALID, "a path with a NUL byte");
    MSG_HAS(c, "invalid path: a NUL byte at offset 2");
    uint8_t s[32] = { 0, 0, 0, 0, 0, 3, 0, '/', 0, 'x', 0, 0 };
    IT_OK(c, tc_send_frame(c, SDB_OP_SEARCH, 0, ++rid, s, 12));
    expect_error(c, rid, SDB_STATUS_INVALID, "a SEARCH prefix with a NUL byte");
    MSG_HAS(c, "invalid SEARCH prefix: a NUL byte at offset 1");
    /* the longest path, 4096 bytes, is fine */
    long_path[4096] = '\0';
    sdb_docinfo_t x;
    IT_OK(c, tc_put(c, long_path, "long", 4, UNSET, &x));
    IT_OK(c, tc_lookup(c, long_path, &x));
    ck_assert_uint_eq(x.size, 4);
    free(long_path);
    /* nothing of the refused requests was stored */
    cJSON *j = it_stats(c);
    ck_assert_msg(it_num(j, "engine.paths") == 2, "engine.paths %g, expected 2", it_num(j, "engine.paths"));
    cJSON_Delete(j);
    tc_close(c);
    it_still_serving(&d, "bad paths");
    td_stop(&d);
}
END_TEST

/* ---- uploads that fail ---- */

START_TEST(test_put_checksum)
{
    td_t d;
    start(&d, "crc", BASE_CONF);
    tc_t *c = it_session(&d, 1);
    uint8_t *data = it_bytes(50000, 9);
    sdb_docinfo_t v1, x;
    IT_OK(c, tc_put(c, "/keep", data, 20000, UNSET, &v1));

    struct {
        const char *path;
        uint64_t declared;   /* PUT_BEGIN size */
        size_t sent;         /* PUT_DATA bytes */
        uint64_t end_size;   /* PUT_END size */
        uint32_t end_crc;
        int early;           /* ERROR before PUT_END */
        const char *what;
    } cases[] = {
        { "/crc/new", 50000, 50000, 50000, 0x12345678u, 0, "wrong CRC, new path" },
        { "/keep", 50000, 50000, 50000, ~0u, 0, "wrong CRC over an existing document" },
        { "/crc/size", 50000, 50000, 50001, 0, 0, "PUT_END size one too many" },
        { "/crc/short", 50000, 40000, 40000, 0, 0, "less data than PUT_BEGIN's size" },
        { "/crc/unsized", UNSET, 50000, 49999, 0, 0, "PUT_END size one short, no declared size" },
        { "/crc/over", 30000, 50000, 50000, 0, 1, "more data than PUT_BEGIN's size" },
    };
    uint32_t rid = 100;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        rid++;
        uint32_t end_crc = cases[k].end_crc ? cases[k].end_crc : tc_crc(data, cases[k].sent);
        IT_OK(c, tc_send_put_begin(c, rid, cases[k].path, cases[k].declared, UNSET));
        for (size_t off = 0; off < cases[k].sent; off += 16384)
            IT_OK(c, tc_send_put_data(c, rid, data + off,
                                      cases[k].sent - off < 16384 ? cases[k].sent - off : 16384));
        IT_OK(c, tc_send_put_end(c, rid, cases[k].end_size, end_crc));
        IT_OK(c, tc_send_ping(c, rid + 1000, "next", 4));
        expect_error(c, rid, SDB_STATUS_CHECKSUM, cases[k].what);
        if (cases[k].early)
            MSG_HAS(c, "more data than PUT_BEGIN's size (30000 bytes)");
        else
            MSG_HAS(c, "PUT_END says", "nothing stored");
        IT_OK(c, tc_recv(c, rid + 1000, SDB_OP_PONG));   /* no second answer for the upload */
    }
    /* nothing stored; the old version of /keep intact */
    const char *gone[] = { "/crc/new", "/crc/size", "/crc/short", "/crc/unsized", "/crc/over" };
    for (size_t k = 0; k < 5; k++)
        IT_RC(c, tc_lookup(c, gone[k], NULL), SDB_STATUS_NOT_FOUND);
    it_expect_get(c, "/keep", data, 20000, &x);
    ck_assert_msg(x.version == 1 && it_id_eq(&x.id, &v1.id), "a failed overwrite changed /keep");
    cJSON *j = it_stats(c);
    ck_assert_msg(it_num(j, "engine.documents") == 1, "engine.documents %g", it_num(j, "engine.documents"));
    ck_assert_msg(it_num(j, "requests.PUT.errors") == 6, "PUT errors %g", it_num(j, "requests.PUT.errors"));
    cJSON_Delete(j);
    free(data);
    tc_close(c);
    it_still_serving(&d, "uploads with a wrong CRC");
    td_stop(&d);
}
END_TEST

START_TEST(test_put_limits)
{
    td_t d;
    start(&d, "putlim", "\"max_frame_bytes\": 65536, \"chunk_bytes\": 16384, "
                        "\"engine\": {\"durability\": \"none\", \"max_document_size\": 100000}");
    tc_t *c = it_session(&d, 0);
    uint8_t *data = it_bytes(120000, 4);
    /* a PUT_DATA over chunk_bytes fails the upload at once; PUT_ABORT then
     * gets no answer */
    IT_OK(c, tc_send_put_begin(c, 30, "/lim/chunk", UNSET, UNSET));
    IT_OK(c, tc_send_put_data(c, 30, data, 16385));
    IT_OK(c, tc_send_put_data(c, 30, data, 100));
    IT_OK(c, tc_send_empty(c, SDB_OP_PUT_ABORT, 30));
    IT_OK(c, tc_send_ping(c, 31, "p", 1));
    expect_error(c, 30, SDB_STATUS_TOO_LARGE, "PUT_DATA over chunk_bytes");
    MSG_HAS(c, "16385", "chunk_bytes (16384)");
    IT_OK(c, tc_recv(c, 31, SDB_OP_PONG));
    /* a declared size over max_document_bytes: refused at PUT_BEGIN */
    IT_OK(c, tc_send_put_begin(c, 32, "/lim/declared", 100001, UNSET));
    expect_error(c, 32, SDB_STATUS_TOO_LARGE, "declared size over max_document_bytes");
    MSG_HAS(c, "100001", "max_document_bytes (100000)");
    IT_OK(c, tc_send_put_data(c, 32, data, 1000));
    IT_OK(c, tc_send_put_end(c, 32, 1000, tc_crc(data, 1000)));
    IT_OK(c, tc_ping(c, "q", 1));
    /* undeclared content growing past it */
    IT_OK(c, tc_send_put(c, 33, "/lim/grown", data, 120000, UNSET));
    IT_OK(c, tc_send_ping(c, 34, "r", 1));
    expect_error(c, 33, SDB_STATUS_TOO_LARGE, "content over max_document_bytes");
    MSG_HAS(c, "120000", "max_document_bytes (100000");
    IT_OK(c, tc_recv(c, 34, SDB_OP_PONG));
    /* undeclared content growing past it, one PUT_DATA at a time */
    IT_OK(c, tc_send_put_begin(c, 35, "/lim/undeclared", UNSET, UNSET));
    for (size_t off = 0; off < 120000; off += 15000)
        IT_OK(c, tc_send_put_data(c, 35, data + off, 15000));
    IT_OK(c, tc_send_put_end(c, 35, 120000, tc_crc(data, 120000)));
    IT_OK(c, tc_send_ping(c, 36, "s", 1));
    expect_error(c, 35, SDB_STATUS_TOO_LARGE, "undeclared content over max_document_bytes");
    MSG_HAS(c, "passed max_document_bytes (100000 bytes)");
    IT_OK(c, tc_recv(c, 36, SDB_OP_PONG));
    /* exactly max_document_bytes is fine */
    sdb_docinfo_t x;
    IT_OK(c, tc_put(c, "/lim/max", data, 100000, UNSET, &x));
    ck_assert_uint_eq(x.size, 100000);
    IT_RC(c, tc_lookup(c, "/lim/chunk", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_lookup(c, "/lim/declared", NULL), SDB_STATUS_NOT_FOUND);
    IT_RC(c, tc_lookup(c, "/lim/grown", NULL), SDB_STATUS_NOT_FOUND);
    free(data);
    tc_close(c);
    it_still_serving(&d, "uploads over the limits");
    td_stop(&d);
}
END_TEST

START_TEST(test_upload_framing)
{
    td_t d;
    start(&d, "framing", BASE_CONF);
    struct {
        int kind;
        const char *what;
    } cases[] = {
        { 0, "PING during an upload" },
        { 1, "PUT_DATA with another request id" },
        { 2, "PUT_END outside an upload" },
        { 3, "PUT_DATA outside an upload" },
    };
    for (size_t k = 0; k < 4; k++) {
        tc_t *c = it_session(&d, (int)k % 2);
        uint32_t bad_rid = 60;
        if (cases[k].kind <= 1) {
            IT_OK(c, tc_send_put_begin(c, 50, "/framing", 100, UNSET));
            IT_OK(c, tc_send_put_data(c, 50, "0123456789", 10));
        }
        switch (cases[k].kind) {
        case 0: IT_OK(c, tc_send_ping(c, bad_rid, "x", 1)); break;
        case 1: IT_OK(c, tc_send_put_data(c, bad_rid, "x", 1)); break;
        case 2: IT_OK(c, tc_send_put_end(c, bad_rid, 0, 0)); break;
        default: IT_OK(c, tc_send_put_data(c, bad_rid, "x", 1)); break;
        }
        expect_fatal(c, bad_rid, SDB_STATUS_PROTOCOL, cases[k].what);
        tc_close(c);
        it_still_serving(&d, cases[k].what);
    }
    tc_t *c = it_session(&d, 0);
    IT_RC(c, tc_lookup(c, "/framing", NULL), SDB_STATUS_NOT_FOUND);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- the session: HELLO, versions, tokens ---- */

START_TEST(test_hello_errors)
{
    td_t d;
    start(&d, "hello", BASE_CONF);
    /* no token configured: a first frame other than HELLO is PROTOCOL */
    tc_t *c = it_connect(&d, 0);
    IT_OK(c, tc_send_ping(c, 3, "x", 1));
    expect_fatal(c, 3, SDB_STATUS_PROTOCOL, "PING before HELLO");
    tc_close(c);
    /* version ranges */
    struct {
        uint16_t lo, hi;
        int ok;
    } v[] = { { 2, 5, 0 }, { 3, 2, 0 }, { 0, 1, 1 }, { 1, 9, 1 }, { 0, 0, 0 } };
    for (size_t k = 0; k < sizeof v / sizeof *v; k++) {
        c = it_connect(&d, 1);
        IT_OK(c, tc_send_hello(c, 4, v[k].lo, v[k].hi, NULL, "versions"));
        char what[64];
        snprintf(what, sizeof what, "HELLO versions %u..%u", v[k].lo, v[k].hi);
        if (v[k].ok) {
            IT_OK(c, tc_recv(c, 4, SDB_OP_HELLO_OK));
            ck_assert_msg(c->m.u.hello_ok.version == 1, "%s: version %u", what, c->m.u.hello_ok.version);
        } else {
            expect_fatal(c, 4, SDB_STATUS_UNSUPPORTED_VERSION, what);
            ck_assert_msg(strstr(c->msg, "1") != NULL, "%s: message '%s' does not say which versions",
                          what, c->msg);
        }
        tc_close(c);
    }
    /* malformed HELLOs */
    static const uint8_t bad[3][12] = {
        { 'X', 'X', 'X', 'X', 1, 0, 1, 0, 0, 0, 0, 0 },       /* bad magic */
        { 'S', 'T', 'D', 'B', 1 },                             /* truncated */
        { 'S', 'T', 'D', 'B', 1, 0, 1, 0, 9, 0, 'a', 'b' },   /* token longer than the frame */
    };
    const size_t badlen[] = { 12, 5, 12 };
    for (size_t k = 0; k < 3; k++) {
        c = it_connect(&d, 0);
        IT_OK(c, tc_send_frame(c, SDB_OP_HELLO, 0, 8, bad[k], badlen[k]));
        expect_fatal(c, 8, SDB_STATUS_PROTOCOL, "malformed HELLO");
        tc_close(c);
    }
    /* a HELLO with an undefined flag bit: INVALID (section 3), and fatal as
       every failed HELLO */
    c = it_connect(&d, 1);
    {
        uint8_t h[64];
        size_t n;
        sdb_proto_msg_t m = { .opcode = SDB_OP_HELLO, .request_id = 8 };
        m.u.hello = (sdb_proto_hello_t){ 1, 1, { "", 0 }, { "x", 1 } };
        ck_assert_int_eq(sdb_proto_encode(&m, h, sizeof h, &n), 0);
        h[2] = 0x40;                               /* the header's flags byte */
        IT_OK(c, tc_send_raw(c, h, n));
    }
    expect_fatal(c, 8, SDB_STATUS_INVALID, "HELLO with flag 0x40");
    MSG_HAS(c, "HELLO", "0x40");
    tc_close(c);
    it_still_serving(&d, "bad HELLOs");
    td_stop(&d);
}
END_TEST

static void expect_served_with_token(td_t *d, const char *token, const char *after)
{
    tc_t *c = it_connect(d, 0);
    int rc = tc_hello(c, token, NULL);
    if (rc == 0)
        rc = tc_ping(c, "t", 1);
    ck_assert_msg(rc == 0, "after %s, a client with the right token is not served: %s %s", after,
                  it_rc_name(rc), c->err);
    tc_close(c);
}

START_TEST(test_auth_token)
{
    td_t d;
    start(&d, "auth", "\"auth_token\": \"s3cret-token\", " BASE_CONF);
    /* a request before HELLO */
    tc_t *c = it_connect(&d, 1);
    IT_OK(c, tc_send_path(c, SDB_OP_LOOKUP, 12, "/x"));
    expect_fatal(c, 12, SDB_STATUS_AUTH, "LOOKUP before HELLO");
    tc_close(c);
    expect_served_with_token(&d, "s3cret-token", "a request before HELLO");
    /* pipelined behind a bad HELLO: discarded, never executed */
    c = it_connect(&d, 0);
    {   /* HELLO and a whole PUT in one write, so that they arrive together */
        uint8_t buf[256];
        size_t len = 0, n;
        sdb_proto_msg_t m[3] = { { .opcode = SDB_OP_HELLO, .request_id = 1 },
                                 { .opcode = SDB_OP_PUT_BEGIN, .request_id = 2 },
                                 { .opcode = SDB_OP_PUT_END, .request_id = 2 } };
        m[0].u.hello = (sdb_proto_hello_t){ 1, 1, { "wrong", 5 }, { "x", 1 } };
        m[1].u.put_begin = (sdb_proto_put_begin_t){ 0, UNSET, { "/sneaky", 7 } };
        m[2].u.put_end = (sdb_proto_put_end_t){ 0, 0 };
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(sdb_proto_encode(&m[i], buf + len, sizeof buf - len, &n), 0);
            len += n;
        }
        IT_OK(c, tc_send_raw(c, buf, len));
    }
    expect_fatal(c, 1, SDB_STATUS_AUTH, "a wrong token");
    tc_close(c);
    /* wrong, empty, a prefix, longer */
    const char *wrong[] = { "", "s3cret-toke", "s3cret-token!", "S3CRET-TOKEN" };
    for (size_t k = 0; k < 4; k++) {
        c = it_connect(&d, (int)k % 2);
        IT_OK(c, tc_send_hello(c, 5, 1, 1, wrong[k], "x"));
        expect_fatal(c, 5, SDB_STATUS_AUTH, wrong[k][0] ? "a wrong token" : "an empty token");
        tc_close(c);
        expect_served_with_token(&d, "s3cret-token", "a wrong token");
    }
    c = it_connect(&d, 0);
    IT_OK(c, tc_hello(c, "s3cret-token", NULL));
    IT_RC(c, tc_lookup(c, "/sneaky", NULL), SDB_STATUS_NOT_FOUND);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* Writes n bytes to path with exactly mode (whatever the umask). */
static void write_token_file(const char *path, const void *bytes, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

START_TEST(test_auth_token_file)
{
    char dir[256], tok[300], extra[600];
    it_newdir(dir, sizeof dir, "tokfile");
    snprintf(tok, sizeof tok, "%s/token", dir);
    write_token_file(tok, "from-a-file\n", 12, 0600);
    snprintf(extra, sizeof extra, "\"auth_token_file\": \"%s\", " BASE_CONF, tok);
    td_t d;
    td_init(&d, dir);
    td_write_config(&d, extra);
    td_restart(&d);
    tc_t *c = it_connect(&d, 0);
    IT_OK(c, tc_send_hello(c, 1, 1, 1, "from-a-file\n", "x"));   /* the newline is not part of it */
    expect_fatal(c, 1, SDB_STATUS_AUTH, "the token with its newline");
    tc_close(c);
    expect_served_with_token(&d, "from-a-file", "a token file");
    td_stop(&d);
}
END_TEST

/* A token the daemon cannot use stops it at start (exit 2) with a message
 * that names the key, the file and what is wrong; it never runs without
 * authentication because a token read as empty. */
START_TEST(test_auth_token_refused)
{
    static char longtok[SDB_PROTO_MAX_TOKEN + 2];
    memset(longtok, 'k', sizeof longtok - 1);
    struct {
        const char *bytes;   /* the token file's content, or the auth_token JSON text */
        size_t n;            /* bytes of a file; 0 for a JSON case */
        mode_t mode;
        const char *want[2]; /* in stderr */
    } cases[] = {
        { "good-token\n", 11, 0644, { "chmod 600", "group or others" } },
        { "good-token\n", 11, 0640, { "chmod 600", "0640" } },
        { "good-token\n", 11, 0602, { "chmod 600", "0602" } },
        { "\0abc", 4, 0600, { "control byte 0x00", "offset 0" } },
        { "abc\0def", 7, 0600, { "control byte 0x00", "offset 3" } },
        { "abc\ndef\n", 8, 0600, { "control byte 0x0a", "offset 3" } },
        { "", 0, 0600, { "empty", "auth_token_file" } },
        { "\n", 1, 0600, { "empty", "auth_token_file" } },
        { "\r\n", 2, 0600, { "empty", "auth_token_file" } },
        { "tok\n\n", 5, 0600, { "control byte 0x0a", "offset 3" } },
        { longtok, sizeof longtok - 1, 0600, { "limit of 1024", "auth_token_file" } },
        { "\"auth_token\": \"\\u0000abc\"", 0, 0, { "NUL", "line" } },
        { "\"auth_token\": \"abc\\u0000def\"", 0, 0, { "NUL", "line" } },
        { "\"auth_token\": \"a\\tb\"", 0, 0, { "\"auth_token\"", "control byte 0x09" } },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char dir[256], tok[300], extra[700];
        it_newdir(dir, sizeof dir, "badtok");
        snprintf(tok, sizeof tok, "%s/token", dir);
        if (cases[k].n || !strchr(cases[k].bytes, ':')) {
            write_token_file(tok, cases[k].bytes, cases[k].n, cases[k].mode);
            snprintf(extra, sizeof extra, "\"auth_token_file\": \"%s\", " BASE_CONF, tok);
        } else {
            snprintf(extra, sizeof extra, "%s, " BASE_CONF, cases[k].bytes);
        }
        td_t d;
        td_init(&d, dir);
        td_write_config(&d, extra);
        char *err = NULL;
        const char *argv[] = { td_binary(), "-c", d.conf, NULL };
        int st = td_run(argv, NULL, &err, td_scaled(10000));
        ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2,
                      "case %zu: the daemon did not refuse the token (status 0x%x); stderr: %s", k,
                      (unsigned)st, err);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(strstr(err, cases[k].want[i]) != NULL, "case %zu: stderr does not say '%s': %s",
                          k, cases[k].want[i], err);
        if (cases[k].n || !strchr(cases[k].bytes, ':'))
            ck_assert_msg(strstr(err, tok) != NULL, "case %zu: stderr does not name %s: %s", k, tok, err);
        free(err);
    }
}
END_TEST

/* The token is bytes, compared with their length: a prefix, the token with
 * a stripped line end, or the token plus a byte are all refused. */
START_TEST(test_auth_token_bytes)
{
    char dir[256], tok[300], extra[600];
    it_newdir(dir, sizeof dir, "tokbytes");
    snprintf(tok, sizeof tok, "%s/token", dir);
    write_token_file(tok, "abc def\r\n", 9, 0400);
    snprintf(extra, sizeof extra, "\"auth_token_file\": \"%s\", " BASE_CONF, tok);
    td_t d;
    td_init(&d, dir);
    td_write_config(&d, extra);
    td_restart(&d);
    const char *wrong[] = { "abc", "abc ", "abc de", "abc def\r", "abc def\r\n", "abc defg", "" };
    for (size_t k = 0; k < sizeof wrong / sizeof *wrong; k++) {
        tc_t *c = it_connect(&d, (int)k % 2);
        IT_OK(c, tc_send_hello(c, 2, 1, 1, wrong[k], "x"));
        expect_fatal(c, 2, SDB_STATUS_AUTH, "a token that is not the configured one");
        tc_close(c);
    }
    expect_served_with_token(&d, "abc def", "wrong tokens");
    td_stop(&d);
}
END_TEST

/* Clients that leave while the daemon works for them (a commit, a stream,
 * queued requests): nothing leaks or crashes (ASan and the exit status of
 * the stop check it), and the next clients are served. */
START_TEST(test_close_with_work_in_flight)
{
    td_t d;
    start(&d, "inflight", BASE_CONF);
    const size_t n = 1u << 20;
    uint8_t *data = it_bytes(n, 21);
    tc_t *w = it_session(&d, 0);
    IT_OK(w, tc_put(w, "/base", data, n, UNSET, NULL));
    for (int k = 0; k < 12; k++) {
        tc_t *c = it_session(&d, k % 2);
        char path[32];
        snprintf(path, sizeof path, "/inflight/%d", k);
        IT_OK(c, tc_send_put(c, 1, path, data, n, UNSET));
        for (uint32_t i = 0; i < 8; i++)
            IT_OK(c, tc_send_path(c, SDB_OP_GET, 2 + i, "/base"));
        IT_OK(c, tc_send_search(c, 20, "/", "", 0, 0));
        if (k >= 6)
            td_sleep_ms(5 * (k - 5));   /* leave at different moments */
        tc_close(c);
    }
    double cur = -1;
    for (int i = 0; i < 800 && cur != 1; i++) {
        cur = it_stat(w, "connections.current");
        if (cur != 1)
            td_sleep_ms(25);
    }
    ck_assert_msg(cur == 1, "%g connections remain", cur);
    /* each upload either committed whole or left nothing */
    for (int k = 0; k < 12; k++) {
        char path[32];
        snprintf(path, sizeof path, "/inflight/%d", k);
        sdb_docinfo_t x;
        int rc = tc_lookup(w, path, &x);
        ck_assert_msg(rc == SDB_STATUS_NOT_FOUND || (rc == 0 && x.size == n && x.crc32 == tc_crc(data, n)),
                      "%s: %s", path, it_rc_name(rc));
    }
    free(data);
    tc_close(w);
    it_still_serving(&d, "clients that left with work in flight");
    td_stop(&d);
}
END_TEST

START_TEST(test_max_connections)
{
    td_t d;
    start(&d, "maxconn", "\"max_connections\": 2, " BASE_CONF);
    tc_t *a = it_session(&d, 0), *b = it_session(&d, 1);
    tc_t *c = it_connect(&d, 0);
    expect_fatal(c, 0, SDB_STATUS_BUSY, "a third connection over max_connections 2");
    MSG_HAS(c, "max_connections 2");
    tc_close(c);
    IT_OK(a, tc_ping(a, "a", 1));
    cJSON *j = it_stats(b);
    ck_assert_msg(it_num(j, "connections.rejected") == 1 && it_num(j, "connections.current") == 2,
                  "connections rejected %g current %g", it_num(j, "connections.rejected"),
                  it_num(j, "connections.current"));
    cJSON_Delete(j);
    tc_close(a);
    /* a slot frees when a client leaves */
    tc_t *e = NULL;
    for (int tries = 0; tries < 1000; tries++) {
        e = it_connect(&d, 1);
        if (tc_hello(e, NULL, NULL) == 0)
            break;
        tc_close(e);
        e = NULL;
        td_sleep_ms(20);
    }
    ck_assert_msg(e != NULL, "no connection accepted after one of two left");
    IT_OK(e, tc_ping(e, "e", 1));
    tc_close(e);
    tc_close(b);
    td_stop(&d);
}
END_TEST

/* ---- deadlines ---- */

/* Waits for the fatal TIMEOUT on c and returns the ms it took from t0. */
static long long wait_timeout_drop(tc_t *c, long long t0, const char *what)
{
    c->timeout_ms = td_scaled(5000);
    int rc = tc_read(c);
    long long ms = td_now_ms() - t0;
    ck_assert_msg(rc == 1 && c->m.opcode == SDB_OP_ERROR && c->status == SDB_STATUS_TIMEOUT,
                  "%s: expected ERROR TIMEOUT, got %s (%s) after %lld ms", what,
                  rc == 1 ? sdb_proto_opcode_name(c->m.opcode) : it_rc_name(rc), c->err, ms);
    ck_assert_msg(c->m.request_id == 0 && (c->flags & SDB_FLAG_CLOSING),
                  "%s: TIMEOUT must be request 0 and CLOSING", what);
    int end = tc_expect_closed(c, td_scaled(2000));
    ck_assert_msg(end == TC_CLOSED, "%s: not closed: %s (%s)", what, it_rc_name(end), c->err);
    return ms;
}

/* Idle sessions and silent connections are dropped after idle_timeout_ms
 * (the sweep runs every 100 ms: the upper bounds are far above that, so a
 * busy machine cannot break them), and a client that sends a request more
 * often than that is never dropped.  The timeout is 1 s so that the
 * keepalive PINGs, 100 ms apart, keep a margin of 900 ms against a test or
 * daemon process that the scheduler holds back (with 300 ms it was 200 ms,
 * and the timer runs before a delayed read in the daemon's loop). */
START_TEST(test_idle_timeout)
{
    td_t d;
    start(&d, "idle", "\"idle_timeout_ms\": 1000, \"frame_timeout_ms\": 5000, " BASE_CONF);
    long long t0 = td_now_ms();
    tc_t *a = it_session(&d, 0);
    tc_t *b = it_connect(&d, 1);          /* never says anything */
    long long ms = wait_timeout_drop(a, t0, "an idle session");
    ck_assert_msg(ms >= 980 && ms <= td_scaled(4000), "idle session dropped after %lld ms (timeout 1000)", ms);
    ms = wait_timeout_drop(b, t0, "a silent connection");
    ck_assert_msg(ms >= 980 && ms <= td_scaled(4000), "silent connection dropped after %lld ms", ms);
    tc_close(a);
    tc_close(b);
    /* an active client is not dropped: a PING every 100 ms for 2.5 s */
    tc_t *c = it_session(&d, 0);
    for (int i = 0; i < 25; i++) {
        td_sleep_ms(100);
        IT_OK(c, tc_ping(c, "keepalive", 9));
    }
    t0 = td_now_ms();
    ms = wait_timeout_drop(c, t0, "a client that stopped");
    ck_assert_msg(ms >= 950 && ms <= td_scaled(4000), "dropped %lld ms after its last request", ms);
    tc_close(c);
    it_still_serving(&d, "idle drops");
    td_stop(&d);
}
END_TEST

START_TEST(test_slow_sender)
{
    td_t d;
    start(&d, "slow", "\"idle_timeout_ms\": 10000, \"frame_timeout_ms\": 300, " BASE_CONF);
    uint8_t h[12], pl[1000];
    memset(pl, 'z', sizeof pl);
    /* half a header, then silence */
    tc_t *c = it_session(&d, 0);
    header(h, SDB_OP_PING, 0, 1000, 70);
    long long t0 = td_now_ms();
    IT_OK(c, tc_send_raw(c, h, 6));
    long long ms = wait_timeout_drop(c, t0, "half a header");
    ck_assert_msg(ms >= 280 && ms <= td_scaled(3000), "half a header: dropped after %lld ms", ms);
    tc_close(c);
    /* a header and half the payload */
    c = it_session(&d, 1);
    t0 = td_now_ms();
    IT_OK(c, tc_send_raw(c, h, 12));
    IT_OK(c, tc_send_raw(c, pl, 500));
    ms = wait_timeout_drop(c, t0, "half a payload");
    ck_assert_msg(ms >= 280 && ms <= td_scaled(3000), "half a payload: dropped after %lld ms", ms);
    tc_close(c);
    /* a trickle: one byte every 50 ms keeps arriving, the frame still has
     * a deadline */
    c = it_session(&d, 0);
    t0 = td_now_ms();
    int dropped = 0;
    for (size_t i = 0; i < 12 + sizeof pl && !dropped; i++) {
        if (tc_send_raw(c, i < 12 ? h + i : pl + i - 12, 1) != 0)
            break;
        struct pollfd pf = { .fd = c->fd, .events = POLLIN };
        dropped = poll(&pf, 1, 50) > 0;
    }
    ms = wait_timeout_drop(c, t0, "a trickling sender");
    ck_assert_msg(ms <= td_scaled(3000), "trickling sender dropped only after %lld ms", ms);
    tc_close(c);
    /* pauses between whole frames are not slowness: an upload of 10 frames
     * 100 ms apart (1 s in all, over the 300 ms frame deadline) succeeds */
    c = it_session(&d, 1);
    IT_OK(c, tc_send_put_begin(c, 80, "/slow", 10 * sizeof pl, UNSET));
    uint8_t all[10 * sizeof pl];
    for (int i = 0; i < 10; i++) {
        tc_fill(pl, sizeof pl, (uint32_t)i);
        memcpy(all + i * sizeof pl, pl, sizeof pl);
        td_sleep_ms(100);
        IT_OK(c, tc_send_put_data(c, 80, pl, sizeof pl));
    }
    IT_OK(c, tc_send_put_end(c, 80, sizeof all, tc_crc(all, sizeof all)));
    IT_OK(c, tc_recv(c, 80, SDB_OP_DOC));
    it_expect_get(c, "/slow", all, sizeof all, NULL);
    tc_close(c);
    it_still_serving(&d, "slow senders");
    td_stop(&d);
}
END_TEST

/* ---- the deadlines run only while the daemon reads ---- */

enum { BP_N = 2000 };

typedef struct {
    tc_t *c;
    uint8_t *buf;
    size_t len;
} bp_t;

static void *bp_writer(void *arg)
{
    bp_t *b = arg;
    tc_send_raw(b->c, b->buf, b->len);   /* one write: the bytes arrive in large reads */
    return NULL;
}

/* Appends the three frames of a small PUT to b->buf. */
static void bp_add_put(bp_t *b, size_t cap, uint32_t rid, const char *path, const char *data)
{
    sdb_proto_msg_t m[3] = { { .opcode = SDB_OP_PUT_BEGIN, .request_id = rid },
                             { .opcode = SDB_OP_PUT_DATA, .request_id = rid },
                             { .opcode = SDB_OP_PUT_END, .request_id = rid } };
    size_t n = strlen(data);
    m[0].u.put_begin = (sdb_proto_put_begin_t){ n, UNSET, { path, strlen(path) } };
    m[1].u.raw = (sdb_proto_bytes_t){ (const uint8_t *)data, n };
    m[2].u.put_end = (sdb_proto_put_end_t){ n, tc_crc(data, n) };
    for (int i = 0; i < 3; i++) {
        size_t used;
        ck_assert_int_eq(sdb_proto_encode(&m[i], b->buf + b->len, cap - b->len, &used), 0);
        b->len += used;
    }
}

/* A client that pipelines many small durable PUTs at once: the daemon stops
 * reading while its queue is full (max_inflight), possibly with half a frame
 * already read.  That pause is the daemon's, not a slow client's: neither
 * the frame deadline nor the idle deadline may drop the client for it. */
START_TEST(test_backpressure_is_not_slowness)
{
    td_t d;
    start(&d, "backpressure", "\"frame_timeout_ms\": 50, \"idle_timeout_ms\": 100, "
                              "\"max_inflight\": 8, \"engine\": {\"durability\": \"full\"}");
    size_t cap = (size_t)BP_N * 128;
    bp_t b = { .buf = malloc(cap) };
    ck_assert_ptr_nonnull(b.buf);
    char path[32];
    for (uint32_t i = 0; i < BP_N; i++) {
        snprintf(path, sizeof path, "/bp/%05u", i);
        bp_add_put(&b, cap, 100 + i, path, "0123456789");
    }
    /* the frames are ready before the session starts its idle clock */
    tc_t *c = b.c = it_session(&d, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, bp_writer, &b), 0);
    int rc = 0;
    uint32_t i;
    for (i = 0; i < BP_N && rc == 0; i++)
        rc = tc_recv(c, 100 + i, SDB_OP_DOC);
    pthread_join(th, NULL);
    ck_assert_msg(rc == 0, "a promptly pipelining client was dropped at response %u of %d: %s (%s%s)",
                  i - 1, BP_N, it_rc_name(rc), rc > 0 ? c->msg : "", rc < 0 ? c->err : "");
    free(b.buf);
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* ---- a client that never reads its GET output ---- */

START_TEST(test_nonreading_client)
{
    td_t d;
    start(&d, "nonread", "\"max_output_bytes\": 1048576, \"frame_timeout_ms\": 1500, "
                         "\"idle_timeout_ms\": 20000, \"engine\": {\"durability\": \"none\"}");
    const size_t n = 8u << 20;
    uint8_t *data = it_bytes(n, 8);
    tc_t *w = it_session(&d, 0);
    IT_OK(w, tc_put(w, "/big", data, n, UNSET, NULL));
    long base = td_status_kb(&d, "RssAnon");
    double out0 = it_stat(w, "bytes_out");

    /* 40 GETs of 8 MiB (320 MiB) on a small receive window, never read */
    tc_t *r = tc_connect_tcp(d.port, 16384);
    ck_assert_ptr_nonnull(r);
    IT_OK(r, tc_hello(r, NULL, NULL));
    long long t0 = td_now_ms();
    for (uint32_t i = 0; i < 40; i++)
        IT_OK(r, tc_send_path(r, SDB_OP_GET, 100 + i, "/big"));
    td_sleep_ms(600);
    long stalled = td_status_kb(&d, "RssAnon");

    /* others are served meanwhile */
    it_expect_get(w, "/big", data, n, NULL);
    long served = td_status_kb(&d, "RssAnon");
    double out1 = it_stat(w, "bytes_out");
    double stalled_out = out1 - out0 - (double)n;   /* minus w's own GET */
    ck_assert_msg(stalled_out < 24.0 * 1048576, "the daemon wrote %.0f bytes to a client that reads "
                  "nothing (40 GETs of 8 MiB)", stalled_out);
    if (td_asan()) {
        fprintf(stderr, "note: test_nonreading_client: ASan build, RSS bound not checked "
                        "(RssAnon %ld -> %ld -> %ld kB)\n", base, stalled, served);
    } else {
        long peak = stalled > served ? stalled : served;
        ck_assert_msg(peak - base < 16 * 1024, "RssAnon %ld -> %ld kB with a non-reading client",
                      base, peak);
    }

    /* ... and then dropped, once nothing was written for frame_timeout_ms */
    long long dropped_at = 0;
    for (int i = 0; i < 800 && !dropped_at; i++) {
        if (it_stat(w, "connections.current") == 1)
            dropped_at = td_now_ms();
        else
            td_sleep_ms(25);
    }
    ck_assert_msg(dropped_at > 0, "the non-reading client was never dropped");
    ck_assert_msg(dropped_at - t0 >= 1400, "dropped after %lld ms, before frame_timeout_ms 1500",
                  dropped_at - t0);
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "not reading its responses") != NULL, "the drop is not logged");
    free(log);
    /* what the client can still read ends with the close, well short of 320 MiB */
    r->timeout_ms = td_scaled(5000);
    int rc;
    while ((rc = tc_read(r)) == 1)
        ;
    ck_assert_msg(rc == TC_CLOSED, "non-reading client: %s (%s)", it_rc_name(rc), r->err);
    ck_assert_msg(r->received < 40ull << 20, "received %llu bytes", (unsigned long long)r->received);
    tc_close(r);
    free(data);
    IT_OK(w, tc_ping(w, "w", 1));
    tc_close(w);
    td_stop(&d);
}
END_TEST

/* ---- uploads cut off mid-stream ---- */

START_TEST(test_cut_upload)
{
    td_t d;
    start(&d, "cut", "\"engine\": {\"durability\": \"none\"}");
    tc_t *w = it_session(&d, 0);
    IT_OK(w, tc_put(w, "/keep", "keep", 4, UNSET, NULL));
    IT_OK(w, tc_flush(w));
    cJSON *j = it_stats(w);
    double total0 = it_num(j, "engine.total_pages"), used0 = total0 - it_num(j, "engine.free_pages");
    cJSON_Delete(j);
    char db[300];
    snprintf(db, sizeof db, "%s/streamdb.sdb", d.data);
    struct stat st;
    ck_assert_int_eq(stat(db, &st), 0);
    off_t size0 = st.st_size;

    const size_t part = 4u << 20;
    uint8_t *data = it_bytes(part, 5);
    for (int k = 0; k < 5; k++) {
        char path[32];
        snprintf(path, sizeof path, "/cut/%d", k);
        tc_t *u = it_session(&d, k % 2);
        IT_OK(u, tc_send_put_begin(u, 7, path, k == 4 ? UNSET : 16u << 20, UNSET));
        for (size_t off = 0; off < part; off += u->chunk)
            IT_OK(u, tc_send_put_data(u, 7, data + off, u->chunk));
        if (k == 3) {   /* and half a frame */
            uint8_t h[12];
            header(h, SDB_OP_PUT_DATA, 0, u->chunk, 7);
            IT_OK(u, tc_send_raw(u, h, 12));
            IT_OK(u, tc_send_raw(u, data, 1000));
        }
        /* cut only once the daemon has written the data to pages */
        for (int i = 0; i < 2000; i++) {
            j = it_stats(w);
            double in_use = it_num(j, "engine.total_pages") - it_num(j, "engine.free_pages");
            cJSON_Delete(j);
            if (in_use - used0 >= (double)part / 4096)
                break;
            td_sleep_ms(10);
        }
        tc_close(u);
        IT_RC(w, tc_lookup(w, path, NULL), SDB_STATUS_NOT_FOUND);
        /* the upload's pages come back */
        double used = -1, total = -1;
        for (int i = 0; i < 800; i++) {
            j = it_stats(w);
            total = it_num(j, "engine.total_pages");
            used = total - it_num(j, "engine.free_pages");
            int cur = (int)it_num(j, "connections.current");
            cJSON_Delete(j);
            if (used <= used0 && cur == 1)
                break;
            td_sleep_ms(25);
        }
        ck_assert_msg(used <= used0, "cut upload %d: %.0f pages in use, %.0f before", k, used, used0);
        /* the file grows for one upload (its pages and the pool a writer
         * reserves ahead), not for each: the next ones reuse the pages */
        ck_assert_msg(total <= total0 + 2.5 * (double)part / 4096,
                      "cut upload %d: %.0f pages in the file, %.0f before", k, total, total0);
    }
    IT_OK(w, tc_flush(w));
    ck_assert_int_eq(stat(db, &st), 0);
    ck_assert_msg(st.st_size <= size0 + (off_t)(5 * part / 2), "the database file grew from %lld to "
                  "%lld bytes over 5 cut uploads of 4 MiB", (long long)size0, (long long)st.st_size);
    ck_assert_msg(it_stat(w, "engine.documents") == 1, "a cut upload left a document");
    it_expect_get(w, "/keep", "keep", 4, NULL);
    free(data);
    tc_close(w);
    td_stop(&d);
}
END_TEST

Suite *suite_robust(void)
{
    Suite *s = suite_create("robust");
    TCase *tc = tcase_create("bad_input");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_garbage, 0, 2);
    tcase_add_loop_test(tc, test_huge_length, 0, 2);
    tcase_add_test(tc, test_frame_limits);
    tcase_add_test(tc, test_unknown_opcode);
    tcase_add_test(tc, test_malformed_payload);
    tcase_add_test(tc, test_upload_frame_rules);
    tcase_add_test(tc, test_entries_within_chunk);
    tcase_add_test(tc, test_conflict_message);
    tcase_add_test(tc, test_db_size_message);
    tcase_add_test(tc, test_io_error_message);
    tcase_add_test(tc, test_bad_path);
    tcase_add_test(tc, test_put_checksum);
    tcase_add_test(tc, test_put_limits);
    tcase_add_test(tc, test_upload_framing);
    tcase_add_test(tc, test_hello_errors);
    tcase_add_test(tc, test_auth_token);
    tcase_add_test(tc, test_auth_token_file);
    tcase_add_test(tc, test_auth_token_refused);
    tcase_add_test(tc, test_auth_token_bytes);
    tcase_add_test(tc, test_max_connections);
    tcase_add_test(tc, test_close_with_work_in_flight);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadlines");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_slow_sender);
    tcase_add_test(tc, test_backpressure_is_not_slowness);
    tcase_add_test(tc, test_nonreading_client);
    tcase_add_test(tc, test_cut_upload);
    suite_add_tcase(s, tc);
    return s;
}
