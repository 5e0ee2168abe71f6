/*
 * check_integration_main.c -- the integration runner: suites that start the
 * real streamdbd (tdaemon.h) and speak the protocol to it (tclient.h).  Each
 * test runs in a forked process (CK_FORK).  The daemon binary is
 * $SDB_STREAMDBD, else `streamdbd` beside this binary.
 * Usage: check_integration [SUITE [TCASE]] (or CK_RUN_SUITE / CK_RUN_CASE); a
 * selection that matches nothing here exits 3 (tests/check_run.h).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../check_run.h"
#include "tdaemon.h"

Suite *suite_server(void);
Suite *suite_robust(void);
Suite *suite_process(void);
Suite *suite_hostile(void);
Suite *suite_redteam(void);

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);   /* a daemon that closes on us is a test outcome */
    if (access(td_binary(), X_OK) != 0) {
        fprintf(stderr, "check_integration: cannot run %s (build it, or set SDB_STREAMDBD)\n",
                td_binary());
        return EXIT_FAILURE;
    }
    static const ck_suite_def_t suites[] = {
        { "server", suite_server },
        { "robust", suite_robust },
        { "process", suite_process },
        { "hostile", suite_hostile },
        { "redteam", suite_redteam },
    };
    return ck_run_main("check_integration", suites, sizeof suites / sizeof suites[0], argc, argv);
}
