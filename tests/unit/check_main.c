/*
 * check_main.c -- the central Check runner: every suite listed in suites.def,
 * each test in a forked process (CK_FORK), as libuv runs one process per test.
 * Usage: check_all [SUITE [TCASE]] (or CK_RUN_SUITE / CK_RUN_CASE); a
 * selection that matches nothing fails (tests/check_run.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "../check_run.h"

#define SUITE(name) Suite *suite_##name(void);
#include "suites.def"
#undef SUITE

int main(int argc, char **argv)
{
    static const ck_suite_def_t suites[] = {
#define SUITE(name) { #name, suite_##name },
#include "suites.def"
#undef SUITE
    };
    return ck_run_main("check_all", suites, sizeof suites / sizeof suites[0], argc, argv);
}
