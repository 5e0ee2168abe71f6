/*
 * check_run.h -- what the three Check runners (tests/unit/check_main.c,
 * tests/integration/check_integration_main.c, tests/cli/check_main.c) share:
 * choosing the suites and test cases to run, failing when that choice matches
 * nothing, and counting the checks that were skipped.
 *
 * Selection.  A runner is called as `RUNNER [SUITE [TCASE]]`; an empty SUITE
 * means every suite (so that `make test TEST=x` can pass "" x), and without
 * arguments CK_RUN_SUITE / CK_RUN_CASE are honoured as Check does.  TCASE is
 * the name given to tcase_create(), not a test function's name.  `make test
 * SUITE=x` hands SUITE to every runner, and most runners do not have suite x:
 * a runner that has nothing matching exits with CK_RUN_NOTHING (3) and says
 * what it has; scripts/run-tests.sh fails when no runner ran a check.
 *
 * Skips.  A test that cannot run here (no IPv6, no valgrind, ...) calls
 * CK_SKIP("why") instead of returning early as if it had passed.  The reason
 * is appended to the file named by $SDB_SKIP_FILE (the runner creates one
 * when it is unset), which survives the forked test process; the runner lists
 * the skipped checks and their count after Check's summary, and fails when
 * $SDB_NO_SKIP is 1 (CI, where every tool is installed).
 *
 * Header-only (static functions): each runner and each test file that skips
 * includes it.
 */
#ifndef SDB_CHECK_RUN_H
#define SDB_CHECK_RUN_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_RUN_NOTHING 3   /* exit status: no suite / test case of this runner matched */

/* Records that the calling test was skipped, with a printf-style reason, and
 * returns from it.  Usable only in a START_TEST body (it returns void). */
#define CK_SKIP(...)                          \
    do {                                      \
        ck_skip_note(__func__, __VA_ARGS__);  \
        return;                               \
    } while (0)

__attribute__((format(printf, 2, 3), unused))
static void ck_skip_note(const char *fn, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t n = strlen(fn);
    if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)   /* START_TEST(x) defines x_fn */
        n -= 3;
    char line[700];
    int len = snprintf(line, sizeof line, "%.*s: %s\n", (int)n, fn, why);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof line)
        len = (int)sizeof line - 1;
    fprintf(stderr, "SKIPPED %s", line);
    const char *file = getenv("SDB_SKIP_FILE");
    int fd = file ? open(file, O_WRONLY | O_APPEND | O_CREAT, 0600) : -1;
    /* without the file the skip would go unseen: fail instead */
    ck_assert_msg(fd >= 0, "cannot record a skip (SDB_SKIP_FILE %s): %s", file ? file : "unset",
                  line);
    ssize_t w = write(fd, line, (size_t)len);
    close(fd);
    ck_assert_msg(w == len, "cannot record a skip in %s: %s", file, line);
}

/* One suite of a runner: its name (as given to suite_create) and maker. */
typedef struct {
    const char *name;
    Suite *(*make)(void);
} ck_suite_def_t;

/* Runs the suites defs[0..n) of the runner prog as selected by argv (see
 * above) and returns its exit status: EXIT_SUCCESS when at least one check
 * ran and none failed (nor was skipped under SDB_NO_SKIP=1), CK_RUN_NOTHING
 * when the selection matches nothing here, EXIT_FAILURE otherwise. */
__attribute__((unused))
static int ck_run_main(const char *prog, const ck_suite_def_t *defs, size_t n, int argc, char **argv)
{
    const char *only_suite = argc > 1 ? argv[1] : getenv("CK_RUN_SUITE");
    const char *only_test = argc > 2 ? argv[2] : getenv("CK_RUN_CASE");
    if (only_suite && !*only_suite)
        only_suite = NULL;
    if (only_test && !*only_test)
        only_test = NULL;

    SRunner *sr = NULL;
    int matched = 0;
    for (size_t i = 0; i < n; i++) {
        Suite *s = defs[i].make();
        if ((!only_suite || strcmp(only_suite, defs[i].name) == 0) &&
            (!only_test || suite_tcase(s, only_test)))
            matched = 1;
        if (!sr)
            sr = srunner_create(s);
        else
            srunner_add_suite(sr, s);
    }
    if (!matched) {
        fprintf(stderr, "%s: nothing to run for suite '%s' test case '%s': this runner has the "
                        "suites", prog, only_suite ? only_suite : "(any)",
                only_test ? only_test : "(any)");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s %s", i ? "," : "", defs[i].name);
        fprintf(stderr, " (a test case is a tcase_create() name, not a test function)\n");
        srunner_free(sr);
        return CK_RUN_NOTHING;
    }

    /* The skip file: the caller's (shared by several runners), or our own. */
    char own[64] = "";
    const char *skips = getenv("SDB_SKIP_FILE");
    if (!skips) {
        snprintf(own, sizeof own, "%s/sdb-skips.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        int fd = mkstemp(own);
        if (fd < 0) {
            perror("mkstemp");
            srunner_free(sr);
            return EXIT_FAILURE;
        }
        close(fd);
        setenv("SDB_SKIP_FILE", own, 1);
        skips = own;
    }
    struct stat st;
    off_t before = stat(skips, &st) == 0 ? st.st_size : 0;

    srunner_run(sr, only_suite, only_test, CK_NORMAL);
    int ran = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    int skipped = 0;
    FILE *f = fopen(skips, "r");
    if (f && fseeko(f, before, SEEK_SET) == 0) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            skipped++;
            printf("  SKIPPED %s", line);
        }
    }
    if (f)
        fclose(f);
    if (own[0]) {
        unlink(own);
        unsetenv("SDB_SKIP_FILE");
    }
    const char *strict = getenv("SDB_NO_SKIP");
    int no_skip = strict && strcmp(strict, "1") == 0;
    printf("%s: %d checks run, %d failed, %d skipped%s\n", prog, ran, failed, skipped,
           skipped && no_skip ? " (SDB_NO_SKIP=1: a skip is a failure)" : "");
    if (ran == 0) {
        fprintf(stderr, "%s: no check ran\n", prog);
        return EXIT_FAILURE;
    }
    return failed == 0 && !(skipped && no_skip) ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* SDB_CHECK_RUN_H */
