/*
 * check_main.c -- the Check runner of tests/cli (build/check_cli): the
 * client library suite, the CLI suite and the streamdb-bench suite, each
 * test in a forked process.
 * Usage: check_cli [SUITE [TCASE]] (suites client, cli and bench; test cases such as
 * daemon, offline, commands, failures).  A selection that matches nothing here
 * (make test SUITE=pathidx runs every runner) exits 3 (tests/check_run.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_run.h"

Suite *suite_client(void);
Suite *suite_cli(void);
Suite *suite_bench(void);

int main(int argc, char **argv)
{
    /* Children get a clean environment: tests set these explicitly. */
    unsetenv("STREAMDB_URL");
    unsetenv("STREAMDB_TOKEN");
    static const ck_suite_def_t suites[] = {
        { "client", suite_client },
        { "cli", suite_cli },
        { "bench", suite_bench },
    };
    return ck_run_main("check_cli", suites, sizeof suites / sizeof suites[0], argc, argv);
}
