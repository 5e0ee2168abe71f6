/*
 * tdaemon.h -- starting and stopping the real streamdbd for the integration
 * tests (Redis's `start_server` idea): each daemon gets its own directory with
 * a JSON config written by the test, a Unix socket, a TCP port on 127.0.0.1
 * chosen by the kernel (the config says port 0; the daemon logs the port it
 * bound), a data directory and a log file that collects its stderr.
 *
 * Ownership and lifetime: a td_t is owned by the test; td_start registers it
 * so that, should the test process exit before td_stop (a failed assertion
 * exits a forked Check test), an atexit handler kills the daemon and prints
 * the tail of its log.  The daemon also gets SIGKILL when the test process
 * dies (PR_SET_PDEATHSIG), so no daemon outlives its test.
 *
 * The binary is $SDB_STREAMDBD, else `streamdbd` beside the test binary
 * (both live in $(BUILD)).
 */
#ifndef TDAEMON_H
#define TDAEMON_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;             /* 0 when not running */
    int port;              /* the TCP port bound (from the log), 0 without TCP */
    int status;            /* wait status once reaped */
    char dir[192];         /* the daemon's own directory */
    char sock[256];        /* <dir>/s.sock */
    char conf[256];        /* <dir>/conf.json */
    char log[256];         /* <dir>/daemon.log (stdout and stderr) */
    char data[256];        /* <dir>/data */
    char watch[256];       /* the log read for readiness: d->log unless the
                              config sets log_file (then set this to it) */
} td_t;

/* ---- Per-TCase scratch directory (unchecked fixture: runs in the runner
 * process, so the teardown removes everything even when a test fails). ---- */

void it_dir_setup(void);
void it_dir_teardown(void);

/* Makes a new, empty directory under the TCase's scratch directory and
 * writes its path to out.  Unique per process and call. */
void it_newdir(char *out, size_t cap, const char *name);

/* The streamdbd binary to run (never NULL). */
const char *td_binary(void);

/* 1 when the test binary (and so, in `make sanitize`, the daemon built with
 * the same flags) is instrumented with AddressSanitizer. */
int td_asan(void);

/* Sets up d's paths under dir (created if absent) without starting it. */
void td_init(td_t *d, const char *dir);

/* Writes d's config: the Unix socket, TCP on 127.0.0.1:0, the data dir, 4
 * workers, log level info, then `extra` (JSON members without braces, may
 * be NULL or "") appended: a key repeated there overrides the default
 * because the daemon applies members in order. */
void td_write_config(td_t *d, const char *extra);

/* Starts the daemon on d's config (wrapper: NULL, or an argv prefix such as
 * {"valgrind", ..., NULL}) and waits up to timeout_ms until its log says it
 * is ready.  Returns 0 when ready; -1 when it exited (d->status holds the
 * wait status) or did not become ready (it is then killed). */
int td_spawn(td_t *d, const char *const *wrapper, int timeout_ms);

/* Writes the config and starts the daemon; asserts (Check) that it is ready. */
void td_start(td_t *d, const char *dir, const char *extra);

/* Restarts a stopped daemon on the same directory and config (same data),
 * asserting that it is ready.  The TCP port may change. */
void td_restart(td_t *d);

/* Sends sig and waits up to timeout_ms for the exit.  Returns the wait
 * status, or -1 on timeout (the daemon is then killed with SIGKILL). */
int td_signal_wait(td_t *d, int sig, int timeout_ms);

/* Waits up to timeout_ms for the daemon to exit on its own; as above. */
int td_wait(td_t *d, int timeout_ms);

/* SIGTERM, then asserts a clean exit (status 0) within 15 s (times the
 * CK_TIMEOUT_MULTIPLIER). */
void td_stop(td_t *d);

/* 1 while the daemon process exists and has not been reaped. */
int td_alive(td_t *d);

/* A field of /proc/PID/status in kB ("VmRSS", "RssAnon", "VmHWM"), or -1. */
long td_status_kb(const td_t *d, const char *field);

/* The daemon's log so far (malloc()ed, NUL-terminated; "" when absent). */
char *td_log_text(const td_t *d);

/* Runs argv (argv[0] a path) with stdout and stderr captured into malloc()ed
 * strings *out and *err (either may be NULL to discard), and returns its
 * wait status, or -1 if it did not exit within timeout_ms (it is killed). */
int td_run(const char *const *argv, char **out, char **err, int timeout_ms);

/* Milliseconds of CLOCK_MONOTONIC. */
long long td_now_ms(void);

/* Sleeps ms milliseconds. */
void td_sleep_ms(int ms);

/* Multiplies a timeout by CK_TIMEOUT_MULTIPLIER (sanitizer builds set 5). */
int td_scaled(int ms);

#endif
