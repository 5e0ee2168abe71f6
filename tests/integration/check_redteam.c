/*
 * check_redteam.c -- streamdbd integration tests, part 5: failures found by
 * attacking the issue 9 hardening as a hostile client would, one test each.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

static void start(td_t *d, const char *name, const char *extra)
{
    char dir[256];
    it_newdir(dir, sizeof dir, name);
    td_start(d, dir, extra);
}

/* A client that connects and sends its HELLO at once must not be evicted as
 * "bare" because new connections were accepted before its HELLO was read: a
 * flood of connections that never say HELLO evicted nearly every client that
 * did (24 of 30 with 4 threads reconnecting, max_connections 16).  The daemon
 * is stopped (SIGSTOP) while the clients connect, so that it accepts all three
 * in one go, in connect order, before it reads anything: deterministic. */
START_TEST(test_waiting_hello_not_evicted)
{
    td_t d;
    start(&d, "hello-wait", "\"max_connections\": 4, \"auth_token\": \"tok\", "
                            "\"engine\": {\"durability\": \"none\"}");
    ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
    tc_t *good = it_connect(&d, 1);
    int rc = tc_send_hello(good, 1, 1, 1, "tok", "good");
    tc_t *bare1 = it_connect(&d, 1);
    tc_t *bare2 = it_connect(&d, 1);     /* the third bare one: over half of 4 */
    ck_assert_int_eq(kill(d.pid, SIGCONT), 0);
    ck_assert_int_eq(rc, 0);
    rc = tc_read(good);
    ck_assert_msg(rc == 1 && good->m.opcode == SDB_OP_HELLO_OK,
                  "a client whose HELLO waited in its socket was not served: %s (opcode 0x%02x, "
                  "status %u: %s)", rc == 1 ? "a frame" : it_rc_name(rc), (unsigned)good->m.opcode,
                  (unsigned)good->status, good->msg);
    IT_OK(good, tc_ping(good, "in", 2));
    /* the oldest connection that had not said HELLO went instead */
    rc = tc_read(bare1);
    ck_assert_msg(rc == 1 && bare1->status == SDB_STATUS_BUSY, "bare1: %s", it_rc_name(rc));
    tc_close(bare1);
    tc_close(bare2);
    tc_close(good);
    td_stop(&d);
}
END_TEST

/* LIST_PATHS and LIST_VERSIONS of an unknown document: the ERROR names the
 * id, as every other request naming an id does (they said only "no such
 * path, document or version"). */
START_TEST(test_listing_not_found_names_id)
{
    td_t d;
    start(&d, "list-nf", "\"engine\": {\"durability\": \"none\"}");
    tc_t *c = it_session(&d, 0);
    sdb_id_t id;
    memset(&id, 0x5a, sizeof id);
    char ids[37];
    sdb_id_format(&id, ids);
    tc_list_t l;
    IT_RC(c, tc_list_versions(c, &id, &l), SDB_STATUS_NOT_FOUND);
    ck_assert_msg(strstr(c->msg, ids) != NULL, "LIST_VERSIONS: \"%s\" does not name %s", c->msg, ids);
    tc_list_free(&l);
    IT_RC(c, tc_list_paths(c, &id, &l), SDB_STATUS_NOT_FOUND);
    ck_assert_msg(strstr(c->msg, ids) != NULL, "LIST_PATHS: \"%s\" does not name %s", c->msg, ids);
    tc_list_free(&l);
    IT_OK(c, tc_ping(c, "on", 2));
    tc_close(c);
    td_stop(&d);
}
END_TEST

/* A client that sends its requests and then half-closes (shutdown SHUT_WR,
 * as `... | nc` does) still gets every answer: the daemon closed at the
 * end of file at once, so a GET (which runs as a job) and everything after
 * it went unanswered. */
static void count_sink(void *arg, const uint8_t *p, size_t n)
{
    (void)p;
    *(size_t *)arg += n;
}

START_TEST(test_half_close_still_answered)
{
    td_t d;
    start(&d, "half-close", "\"engine\": {\"durability\": \"none\"}");
    tc_t *c = it_session(&d, 0);
    enum { SIZE = 1 << 20 };
    uint8_t *data = malloc(SIZE);
    ck_assert(data != NULL);
    tc_fill(data, SIZE, 7);
    sdb_docinfo_t info;
    IT_OK(c, tc_put(c, "/hc", data, SIZE, SDB_PROTO_UNSET, &info));
    IT_OK(c, tc_send_path(c, SDB_OP_GET, 10, "/hc"));
    IT_OK(c, tc_send_empty(c, SDB_OP_FLUSH, 11));
    IT_OK(c, tc_send_ping(c, 12, "last", 4));
    tc_shutdown_write(c);
    size_t got = 0;
    IT_OK(c, tc_recv_get(c, 10, &info, count_sink, &got));
    ck_assert_uint_eq(got, SIZE);
    IT_OK(c, tc_recv(c, 11, SDB_OP_OK));
    IT_OK(c, tc_recv(c, 12, SDB_OP_PONG));
    ck_assert_int_eq(tc_expect_closed(c, td_scaled(5000)), TC_CLOSED);
    /* an upload cut by the end of file is aborted, nothing stored */
    tc_t *u = it_session(&d, 0);
    IT_OK(u, tc_send_put_begin(u, 3, "/cut", 100, SDB_PROTO_UNSET));
    IT_OK(u, tc_send_put_data(u, 3, data, 10));
    tc_shutdown_write(u);
    ck_assert_int_eq(tc_expect_closed(u, td_scaled(5000)), TC_CLOSED);
    tc_t *e = it_session(&d, 0);
    IT_RC(e, tc_lookup(e, "/cut", &info), SDB_STATUS_NOT_FOUND);
    free(data);
    tc_close(c);
    tc_close(u);
    tc_close(e);
    td_stop(&d);
}
END_TEST

Suite *suite_redteam(void)
{
    Suite *s = suite_create("redteam");
    TCase *tc = tcase_create("slots");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_waiting_hello_not_evicted);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_listing_not_found_names_id);
    tcase_add_test(tc, test_half_close_still_answered);
    suite_add_tcase(s, tc);
    return s;
}
