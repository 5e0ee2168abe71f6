/*
 * check_main.c -- the Check runner of tests/cli (build/check_cli): the
 * client library suite and the CLI suite, each test in a forked process.
 * Usage: check_cli [SUITE [TCASE]] (suites client and cli; test cases such as
 * daemon, offline, commands, failures).  A SUITE that is not one of these (make
 * test SUITE=pathidx runs both runners) runs nothing and succeeds.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_client(void);
Suite *suite_cli(void);

int main(int argc, char **argv)
{
    const char *only_suite = argc > 1 ? argv[1] : NULL;
    const char *only_test = argc > 2 ? argv[2] : NULL;
    if (only_suite && strcmp(only_suite, "client") != 0 && strcmp(only_suite, "cli") != 0)
        return EXIT_SUCCESS;
    /* Children get a clean environment: tests set these explicitly. */
    unsetenv("STREAMDB_URL");
    unsetenv("STREAMDB_TOKEN");
    SRunner *sr = srunner_create(suite_client());
    srunner_add_suite(sr, suite_cli());
    srunner_run(sr, only_suite, only_test, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
