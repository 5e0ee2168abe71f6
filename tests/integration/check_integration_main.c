/*
 * check_integration_main.c -- the integration runner: suites that start the
 * real streamdbd (tdaemon.h) and speak the protocol to it (tclient.h).  Each
 * test runs in a forked process (CK_FORK).  The daemon binary is
 * $SDB_STREAMDBD, else `streamdbd` beside this binary.
 * Usage: check_integration [SUITE [TEST]] (or CK_RUN_SUITE / CK_RUN_CASE).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tdaemon.h"

Suite *suite_server(void);
Suite *suite_robust(void);
Suite *suite_process(void);
Suite *suite_hostile(void);

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);   /* a daemon that closes on us is a test outcome */
    if (access(td_binary(), X_OK) != 0) {
        fprintf(stderr, "check_integration: cannot run %s (build it, or set SDB_STREAMDBD)\n",
                td_binary());
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(suite_server());
    srunner_add_suite(sr, suite_robust());
    srunner_add_suite(sr, suite_process());
    srunner_add_suite(sr, suite_hostile());
    const char *only_suite = argc > 1 ? argv[1] : NULL;
    const char *only_test = argc > 2 ? argv[2] : NULL;
    srunner_run(sr, only_suite, only_test, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
