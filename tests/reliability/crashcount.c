/*
 * crashcount.c -- counts the crash points that the unit suites sweep
 * (docs/RELIABILITY.md, "Crash points swept").
 *
 * Linked into a copy of the unit test runner with
 *     -Wl,--wrap=backend_fault_new -Wl,--wrap=backend_fault_image
 * it sees every fault backend a test creates.  For each one whose plan has
 * a crash point (crash_at_write or crash_at_sync), it appends a "planned"
 * line to the file named by $SDB_CRASHCOUNT_FILE; when the test takes the
 * power-cut image or closes the backend after the crash fired, it appends a
 * "fired" line.  So "fired" counts the crashes that really happened (a plan
 * past the end of its workload never fires), each followed by the test's
 * own recovery check.  Every test process the runner forks (CK_FORK)
 * appends a "test" line as it starts, so that crash_points.sh can match the
 * processes, in order, with Check's verbose result lines and name the test
 * of each count.  Lines carry the process id and are written with O_APPEND
 * in one write(2), so the processes do not mix them.  Nothing changes in the
 * tests' behaviour.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"

sdb_backend_t *__real_backend_fault_new(const fault_plan_t *plan, const void *initial, size_t len);
int __real_backend_fault_image(sdb_backend_t *be, uint8_t **data, size_t *len);
sdb_backend_t *__wrap_backend_fault_new(const fault_plan_t *plan, const void *initial, size_t len);
int __wrap_backend_fault_image(sdb_backend_t *be, uint8_t **data, size_t *len);

typedef struct tracked {
    sdb_backend_t *be;
    void (*close)(sdb_backend_t *be);
    int fired;
    struct tracked *next;
} tracked_t;

static tracked_t *g_tracked;

static void note(const char *what)
{
    const char *file = getenv("SDB_CRASHCOUNT_FILE");
    if (!file)
        return;
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", what, (long)getpid());
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n) { /* a count, not a test: ignore */ }
        close(fd);
    }
}

static pid_t g_runner;

/* In a process forked by the runner itself (a test): one "test" line. */
static void on_fork_child(void)
{
    if (getppid() == g_runner)
        note("test");
}

__attribute__((constructor)) static void crashcount_init(void)
{
    g_runner = getpid();
    pthread_atfork(NULL, NULL, on_fork_child);
}

static tracked_t *find(sdb_backend_t *be)
{
    for (tracked_t *t = g_tracked; t; t = t->next)
        if (t->be == be)
            return t;
    return NULL;
}

static void check_fired(tracked_t *t)
{
    int crashed = 0;
    uint64_t w, s;
    if (t->fired)
        return;
    backend_fault_counts(t->be, &w, &s, &crashed);
    if (crashed) {
        t->fired = 1;
        note("fired");
    }
}

static void counted_close(sdb_backend_t *be)
{
    tracked_t **pp = &g_tracked;
    while (*pp && (*pp)->be != be)
        pp = &(*pp)->next;
    tracked_t *t = *pp;
    if (!t)
        abort();                   /* only installed on tracked backends */
    check_fired(t);
    *pp = t->next;
    void (*real_close)(sdb_backend_t *) = t->close;
    free(t);
    real_close(be);
}

sdb_backend_t *__wrap_backend_fault_new(const fault_plan_t *plan, const void *initial, size_t len)
{
    sdb_backend_t *be = __real_backend_fault_new(plan, initial, len);
    if (be && plan && (plan->crash_at_write || plan->crash_at_sync)) {
        tracked_t *t = calloc(1, sizeof *t);
        if (t) {
            t->be = be;
            t->close = be->close;
            t->next = g_tracked;
            g_tracked = t;
            be->close = counted_close;
            note("planned");
        }
    }
    return be;
}

int __wrap_backend_fault_image(sdb_backend_t *be, uint8_t **data, size_t *len)
{
    tracked_t *t = find(be);
    if (t)
        check_fired(t);
    return __real_backend_fault_image(be, data, len);
}
