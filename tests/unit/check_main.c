/*
 * check_main.c -- the central Check runner: every suite listed in suites.def,
 * each test in a forked process (CK_FORK), as libuv runs one process per test.
 * Usage: check_all [SUITE [TEST]] (or CK_RUN_SUITE / CK_RUN_CASE).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#define SUITE(name) Suite *suite_##name(void);
#include "suites.def"
#undef SUITE

int main(int argc, char **argv)
{
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, suite_##name());
#include "suites.def"
#undef SUITE
    const char *only_suite = argc > 1 ? argv[1] : NULL;
    const char *only_test = argc > 2 ? argv[2] : NULL;
    srunner_run(sr, only_suite, only_test, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
