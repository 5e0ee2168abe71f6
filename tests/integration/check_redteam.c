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

Suite *suite_redteam(void)
{
    Suite *s = suite_create("redteam");
    TCase *tc = tcase_create("slots");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_waiting_hello_not_evicted);
    suite_add_tcase(s, tc);
    return s;
}
