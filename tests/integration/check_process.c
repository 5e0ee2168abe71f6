/*
 * check_process.c -- streamdbd integration tests, part 3: the process as an
 * operator sees it: --version/--help, bad configuration (exit code 2 and a
 * message naming the key), a second daemon on the same data, signals (SIGTERM
 * drains and exits 0, every acknowledged write survives a restart, SIGHUP
 * reopens the log) and a run under valgrind.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define UNSET SDB_PROTO_UNSET
#define FAST_ENGINE "\"engine\": {\"durability\": \"none\"}"

static int exit_code(int st)
{
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- command line ---- */

START_TEST(test_version_help)
{
    char *out, *err;
    const char *v[] = { td_binary(), "--version", NULL };
    int st = td_run(v, &out, &err, td_scaled(5000));
    ck_assert_msg(exit_code(st) == 0, "--version: exit %d; stderr: %s", exit_code(st), err);
    ck_assert_str_eq(out, "streamdbd " SDB_VERSION_STRING "\n");
    free(out);
    free(err);
    const char *v2[] = { td_binary(), "-V", NULL };
    st = td_run(v2, &out, NULL, td_scaled(5000));
    ck_assert_msg(exit_code(st) == 0 && strstr(out, SDB_VERSION_STRING), "-V: exit %d, '%s'",
                  exit_code(st), out);
    free(out);
    const char *opts[] = { "--config", "--listen", "--unix", "--data", "--workers", "--log-level",
                           "--version", "--help" };
    for (int k = 0; k < 2; k++) {
        const char *h[] = { td_binary(), k ? "-h" : "--help", NULL };
        st = td_run(h, &out, &err, td_scaled(5000));
        ck_assert_msg(exit_code(st) == 0, "%s: exit %d", h[1], exit_code(st));
        ck_assert_msg(strstr(out, "usage: streamdbd") != NULL, "%s: no usage line in '%s'", h[1], out);
        for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
            ck_assert_msg(strstr(out, opts[i]) != NULL, "%s does not mention %s", h[1], opts[i]);
        ck_assert_str_eq(err, "");
        free(out);
        free(err);
    }
    /* usage errors exit 2 */
    const char *bad[][4] = { { "--bogus", NULL }, { "--workers", "0", NULL }, { "--workers", "x", NULL },
                             { "stray-argument", NULL } };
    const char *mention[] = { "usage", "--workers", "--workers", "stray-argument" };
    for (size_t k = 0; k < 4; k++) {
        const char *a[6] = { td_binary() };
        for (int i = 0; bad[k][i]; i++)
            a[i + 1] = bad[k][i];
        st = td_run(a, &out, &err, td_scaled(5000));
        ck_assert_msg(exit_code(st) == 2, "%s: exit %d, expected 2", bad[k][0], exit_code(st));
        ck_assert_msg(strstr(err, mention[k]) != NULL, "%s: stderr '%s' does not mention %s", bad[k][0],
                      err, mention[k]);
        free(out);
        free(err);
    }
}
END_TEST

/* ---- bad configuration: exit 2, a message naming the key ---- */

START_TEST(test_bad_config)
{
    struct {
        const char *extra;   /* appended members, or a whole file when raw */
        int raw;
        const char *key;     /* must appear in stderr */
    } cases[] = {
        { "\"bogus_key\": 1", 0, "\"bogus_key\"" },
        { "\"workers\": \"many\"", 0, "\"workers\"" },
        { "\"workers\": -1", 0, "\"workers\"" },
        { "\"workers\": 129", 0, "\"workers\"" },
        { "\"max_frame_bytes\": 100", 0, "\"max_frame_bytes\"" },
        { "\"max_connections\": true", 0, "\"max_connections\"" },
        { "\"idle_timeout_ms\": -5", 0, "\"idle_timeout_ms\"" },
        { "\"frame_timeout_ms\": 1.5", 0, "\"frame_timeout_ms\"" },
        { "\"auth_token\": 42", 0, "\"auth_token\"" },
        { "\"unix_socket_mode\": 660", 0, "\"unix_socket_mode\"" },
        { "\"log_level\": \"loud\"", 0, "\"log_level\"" },
        { "\"listen\": \"0.0.0.0:0\"", 0, "\"listen\"" },
        { "\"listen\": \"nonsense\"", 0, "\"listen\"" },
        { "\"max_frame_bytes\": 65536, \"chunk_bytes\": 131072", 0, "\"chunk_bytes\"" },
        { "\"engine\": 5", 0, "\"engine\"" },
        { "\"engine\": {\"page_sizee\": 4096}", 0, "\"engine.page_sizee\"" },
        { "\"engine\": {\"use_mmap\": 1}", 0, "\"engine.use_mmap\"" },
        { "\"engine\": {\"durability\": \"sometimes\"}", 0, "\"engine.durability\"" },
        { "\"engine\": {\"page_size\": 3000}", 0, "\"engine.page_size\"" },
        { "{ \"listen\": ", 1, "JSON" },
        { "[1, 2]", 1, "object" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char dir[256];
        td_t d;
        it_newdir(dir, sizeof dir, "badconf");
        td_init(&d, dir);
        if (cases[k].raw) {
            FILE *f = fopen(d.conf, "w");
            ck_assert_ptr_nonnull(f);
            fputs(cases[k].extra, f);
            fclose(f);
        } else {
            td_write_config(&d, cases[k].extra);
        }
        char *err;
        const char *argv[] = { td_binary(), "-c", d.conf, NULL };
        int st = td_run(argv, NULL, &err, td_scaled(5000));
        ck_assert_msg(exit_code(st) == 2, "config with %s: exit %d, expected 2; stderr: %s", cases[k].extra,
                      exit_code(st), err);
        ck_assert_msg(strstr(err, cases[k].key) != NULL, "config with %s: stderr does not name %s: %s",
                      cases[k].extra, cases[k].key, err);
        struct stat sb;
        ck_assert_msg(stat(d.data, &sb) != 0, "config with %s: the data directory was created",
                      cases[k].extra);
        free(err);
    }
    /* a missing config file */
    char *err;
    const char *argv[] = { td_binary(), "-c", "/nonexistent/streamdbd.json", NULL };
    int st = td_run(argv, NULL, &err, td_scaled(5000));
    ck_assert_msg(exit_code(st) == 2 && strstr(err, "/nonexistent/streamdbd.json"),
                  "missing config: exit %d, stderr %s", exit_code(st), err);
    free(err);
}
END_TEST

/* ---- a second daemon on the same data, socket or port ---- */

/* "workers": 0 (the default) runs one worker per online CPU, at least 2. */
START_TEST(test_workers_default)
{
    char dir[256], want[64];
    td_t d;
    it_newdir(dir, sizeof dir, "workers");
    td_start(&d, dir, "\"workers\": 0");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(want, sizeof want, "ready (%ld workers)", n < 2 ? 2 : n > 128 ? 128 : n);
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, want) != NULL, "the log does not say \"%s\":\n%s", want, log);
    free(log);
    td_stop(&d);
}
END_TEST

START_TEST(test_second_daemon)
{
    char dir[256], dir2[256], extra[1024];
    td_t a, b;
    it_newdir(dir, sizeof dir, "first");
    td_start(&a, dir, FAST_ENGINE);
    tc_t *c = it_session(&a, 0);
    IT_OK(c, tc_put(c, "/mine", "mine", 4, UNSET, NULL));

    struct {
        const char *fmt;
        const char *expect;   /* in the second daemon's log */
    } cases[] = {
        { "\"data_dir\": \"%s\"", "locked" },
        { "\"unix_socket\": \"%s\"", "another streamdbd is listening on" },
        { "\"listen\": \"127.0.0.1:%d\"", "cannot listen" },
    };
    for (int k = 0; k < 3; k++) {
        it_newdir(dir2, sizeof dir2, "second");
        td_init(&b, dir2);
        if (k == 2)
            snprintf(extra, sizeof extra, cases[k].fmt, a.port);
        else
            snprintf(extra, sizeof extra, cases[k].fmt, k == 0 ? a.data : a.sock);
        td_write_config(&b, extra);
        int rc = td_spawn(&b, NULL, td_scaled(10000));
        char *log = td_log_text(&b);
        ck_assert_msg(rc == -1 && exit_code(b.status) != 0 && exit_code(b.status) != -1,
                      "a second daemon with %s started or crashed (status 0x%x); log: %s", extra,
                      (unsigned)b.status, log);
        ck_assert_msg(strstr(log, cases[k].expect) != NULL, "second daemon with %s: the log does not "
                      "say '%s': %s", extra, cases[k].expect, log);
        free(log);
        /* the first one is untouched, on both listeners */
        IT_OK(c, tc_lookup(c, "/mine", NULL));
        tc_t *t = it_session(&a, 1);
        tc_t *u = it_session(&a, 0);
        IT_OK(t, tc_ping(t, "t", 1));
        IT_OK(u, tc_ping(u, "u", 1));
        tc_close(t);
        tc_close(u);
    }
    tc_close(c);
    td_stop(&a);
}
END_TEST

/* ---- the Unix socket path: only a stale socket is ever removed ---- */

/* Starts a daemon on dir whose unix_socket is path and expects it to refuse:
 * a non-zero exit, and a log that names path and says want. */
static void expect_socket_refused(const char *dir, const char *path, const char *want)
{
    char extra[600];
    td_t d;
    td_init(&d, dir);
    snprintf(extra, sizeof extra, "\"unix_socket\": \"%s\", " FAST_ENGINE, path);
    td_write_config(&d, extra);
    int rc = td_spawn(&d, NULL, td_scaled(10000));
    char *log = td_log_text(&d);
    ck_assert_msg(rc == -1 && exit_code(d.status) == 1, "unix_socket %s (%s): the daemon started or "
                  "crashed (status 0x%x); log: %s", path, want, (unsigned)d.status, log);
    ck_assert_msg(strstr(log, path) != NULL && strstr(log, want) != NULL,
                  "unix_socket %s: the log does not name the path and say '%s': %s", path, want, log);
    free(log);
}

static void expect_file(const char *path, const char *content)
{
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s is gone: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_msg(strcmp(buf, content) == 0, "%s holds '%s', expected '%s'", path, buf, content);
}

/* A socket bound at path; listening when listening, else closed at once
 * (a stale socket file).  Returns the fd, or -1 when closed. */
static int make_socket(const char *path, int listening)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    ck_assert(strlen(path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s", path, strerror(errno));
    if (!listening) {
        close(fd);
        return -1;
    }
    ck_assert_int_eq(listen(fd, 8), 0);
    return fd;
}

START_TEST(test_unix_socket_path)
{
    char dir[256], path[300], target[300];
    struct stat sb, sb2;

    /* a regular file survives with its content */
    it_newdir(dir, sizeof dir, "sockfile");
    snprintf(path, sizeof path, "%s/precious", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious data", f);
    fclose(f);
    expect_socket_refused(dir, path, "regular file");
    expect_file(path, "precious data");

    /* a symbolic link survives, and so does its target */
    it_newdir(dir, sizeof dir, "socklink");
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(path, sizeof path, "%s/link", dir);
    f = fopen(target, "w");
    ck_assert_ptr_nonnull(f);
    fputs("target data", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, path), 0);
    expect_socket_refused(dir, path, "symbolic link");
    ck_assert_msg(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode), "the symbolic link %s is gone", path);
    expect_file(target, "target data");

    /* a link to a stale socket is not followed: the link and the socket stay */
    it_newdir(dir, sizeof dir, "socklink2");
    snprintf(target, sizeof target, "%s/stale.sock", dir);
    snprintf(path, sizeof path, "%s/link", dir);
    make_socket(target, 0);
    ck_assert_int_eq(symlink(target, path), 0);
    expect_socket_refused(dir, path, "symbolic link");
    ck_assert_msg(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode), "the symbolic link %s is gone", path);
    ck_assert_msg(lstat(target, &sb) == 0 && S_ISSOCK(sb.st_mode), "the socket %s is gone", target);

    /* a directory stays */
    it_newdir(dir, sizeof dir, "sockdir");
    snprintf(path, sizeof path, "%s/adir", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    expect_socket_refused(dir, path, "directory");
    ck_assert_msg(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory %s is gone", path);

    /* another process's live socket is not stolen: it stays and still accepts */
    it_newdir(dir, sizeof dir, "socklive");
    snprintf(path, sizeof path, "%s/live.sock", dir);
    int lfd = make_socket(path, 1);
    ck_assert_int_eq(lstat(path, &sb), 0);
    expect_socket_refused(dir, path, "another streamdbd is listening on");
    ck_assert_msg(lstat(path, &sb2) == 0 && sb2.st_ino == sb.st_ino, "the live socket %s was replaced",
                  path);
    tc_t *c = tc_connect_unix(path);
    ck_assert_msg(c != NULL, "the live socket no longer accepts: %s", strerror(errno));
    int afd = accept(lfd, NULL, NULL);
    ck_assert_msg(afd >= 0, "accept on the live socket: %s", strerror(errno));
    close(afd);
    tc_close(c);
    close(lfd);

    /* a stale socket is replaced by the daemon's, which it removes at exit */
    it_newdir(dir, sizeof dir, "sockstale");
    td_t d;
    td_init(&d, dir);
    make_socket(d.sock, 0);
    td_write_config(&d, FAST_ENGINE);
    ck_assert_msg(td_spawn(&d, NULL, td_scaled(10000)) == 0, "the daemon did not replace a stale socket");
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "removed the stale unix socket") != NULL,
                  "the log does not say the stale socket was removed: %s", log);
    free(log);
    tc_t *s = it_session(&d, 0);
    IT_OK(s, tc_ping(s, "x", 1));
    tc_close(s);
    td_stop(&d);
    ck_assert_msg(lstat(d.sock, &sb) != 0 && errno == ENOENT, "the daemon left its socket %s", d.sock);

    /* a file put in the socket's place while the daemon runs is left at exit */
    it_newdir(dir, sizeof dir, "sockswap");
    td_start(&d, dir, FAST_ENGINE);
    ck_assert_int_eq(unlink(d.sock), 0);
    f = fopen(d.sock, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not yours", f);
    fclose(f);
    td_stop(&d);
    expect_file(d.sock, "not yours");
}
END_TEST

/* ---- file modes: the data directory 0700, the database 0600, the socket
 * exactly unix_socket_mode, whatever the umask ---- */

static unsigned mode_of(const char *path)
{
    struct stat sb;
    ck_assert_msg(lstat(path, &sb) == 0, "lstat %s: %s", path, strerror(errno));
    return (unsigned)(sb.st_mode & 07777);
}

START_TEST(test_file_modes)
{
    char dir[256], db[300], extra[300];
    td_t d;
    mode_t old = umask(022);          /* the usual umask: 0644 and 0755 pass through it */
    it_newdir(dir, sizeof dir, "modes");
    td_start(&d, dir, FAST_ENGINE);
    snprintf(db, sizeof db, "%s/streamdb.sdb", d.data);
    ck_assert_msg(mode_of(d.data) == 0700, "data directory mode %04o, expected 0700", mode_of(d.data));
    ck_assert_msg(mode_of(db) == 0600, "database mode %04o, expected 0600", mode_of(db));
    ck_assert_msg(mode_of(d.sock) == 0660, "socket mode %04o, expected 0660", mode_of(d.sock));
    td_stop(&d);

    /* the socket's mode does not depend on the umask, either way */
    const char *modes[] = { "0600", "0666" };
    const mode_t masks[] = { 0, 077 };
    for (int k = 0; k < 2; k++) {
        umask(masks[k]);
        it_newdir(dir, sizeof dir, "sockmode");
        snprintf(extra, sizeof extra, "\"unix_socket_mode\": \"%s\", " FAST_ENGINE, modes[k]);
        td_start(&d, dir, extra);
        unsigned want = (unsigned)strtoul(modes[k], NULL, 8);
        ck_assert_msg(mode_of(d.sock) == want, "umask %03o: socket mode %04o, expected %04o",
                      (unsigned)masks[k], mode_of(d.sock), want);
        td_stop(&d);
    }
    umask(old);
}
END_TEST

/* ---- permission denied is said so, naming the file ---- */

/* Runs argv with stderr captured into *err (malloc()ed) as uid/gid 65534
 * when this process is root (root bypasses file modes), else as it is.
 * Returns the exit code, 97 when the privileges could not be dropped. */
static int run_unprivileged(const char *const *argv, char **err)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            dprintf(p[1], "cannot drop to uid 65534: %s", strerror(errno));
            _exit(97);
        }
        char *e = NULL;
        int st = td_run(argv, NULL, &e, td_scaled(10000));
        if (e && write(p[1], e, strlen(e)) < 0)
            _exit(96);
        _exit(st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : 98);
    }
    close(p[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ssize_t n;
    while ((n = read(p[0], buf + len, cap - len - 1)) > 0)
        if ((len += (size_t)n) == cap - 1)
            ck_assert_ptr_nonnull(buf = realloc(buf, cap *= 2));
    buf[len] = '\0';
    close(p[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    *err = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A daemon directory for a run as another uid (run_unprivileged): the
 * directories on the way are searchable, the data directory has mode
 * data_mode, and the config (no unix socket) is readable.  db receives the
 * database's path. */
static void unprivileged_dir(td_t *d, char *dir, size_t cap, const char *name, mode_t data_mode,
                             char *db, size_t dbcap)
{
    it_newdir(dir, cap, name);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    ck_assert_int_eq(chmod(dir, 0711), 0);
    *slash = '/';
    ck_assert_int_eq(chmod(dir, 0755), 0);
    td_init(d, dir);
    ck_assert_int_eq(mkdir(d->data, 0700), 0);
    ck_assert_int_eq(chmod(d->data, data_mode), 0);
    snprintf(db, dbcap, "%s/streamdb.sdb", d->data);
    td_write_config(d, "\"unix_socket\": \"\", " FAST_ENGINE);
    ck_assert_int_eq(chmod(d->conf, 0644), 0);
}

/* A database the daemon may not create (its directory is not writable for
 * it): the message gives the system's reason for the create, not the
 * ENOENT of a later look at the missing file, and nothing is left behind. */
START_TEST(test_cannot_create_database)
{
    char dir[256], db[300];
    td_t d;
    unprivileged_dir(&d, dir, sizeof dir, "nocreate", 0555, db, sizeof db);  /* nobody writes */
    char *err;
    const char *argv[] = { td_binary(), "-c", d.conf, NULL };
    int code = run_unprivileged(argv, &err);
    ck_assert_msg(code == 1, "streamdbd unable to create its database: exit %d; stderr: %s", code, err);
    ck_assert_msg(strstr(err, db) != NULL && strstr(err, strerror(EACCES)) != NULL,
                  "streamdbd does not give the reason the create failed (%s) naming %s: %s",
                  strerror(EACCES), db, err);
    ck_assert_msg(strstr(err, strerror(ENOENT)) == NULL, "streamdbd blames a missing file: %s", err);
    free(err);
    struct stat sb;
    ck_assert_msg(stat(db, &sb) < 0 && errno == ENOENT, "a database file was left at %s", db);
}
END_TEST

START_TEST(test_permission_denied)
{
    char dir[256], db[300], cli[PATH_MAX];
    td_t d;
    /* an unprivileged uid must reach the directory (not the database) */
    unprivileged_dir(&d, dir, sizeof dir, "perm", 0755, db, sizeof db);
    int fd = open(db, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fchmod(fd, 0), 0);        /* nobody but root may open it */
    close(fd);

    /* the daemon */
    char *err;
    const char *argv[] = { td_binary(), "-c", d.conf, NULL };
    int code = run_unprivileged(argv, &err);
    ck_assert_msg(code == 1, "streamdbd on a database it may not open: exit %d, expected 1; stderr: %s",
                  code, err);
    ck_assert_msg(strstr(err, db) != NULL && strstr(err, "permission denied") != NULL,
                  "streamdbd does not say 'permission denied' naming %s: %s", db, err);
    ck_assert_msg(strstr(err, strerror(EACCES)) != NULL, "streamdbd does not give the system's "
                  "error (%s): %s", strerror(EACCES), err);
    free(err);

    /* the CLI in local mode */
    snprintf(cli, sizeof cli, "%s", td_binary());
    char *base = strrchr(cli, '/');
    snprintf(base ? base + 1 : cli, sizeof cli - (size_t)(base ? base + 1 - cli : 0), "streamdb");
    const char *cargv[] = { cli, "--db", db, "ls", NULL };
    code = run_unprivileged(cargv, &err);
    ck_assert_msg(code != 0 && code != 97, "streamdb --db on a database it may not open: exit %d; "
                  "stderr: %s", code, err);
    ck_assert_msg(strstr(err, db) != NULL && strstr(err, "permission denied") != NULL,
                  "streamdb --db does not say 'permission denied' naming %s: %s", db, err);
    free(err);
    struct stat sb;
    ck_assert_msg(stat(db, &sb) == 0 && sb.st_size == 0 && (sb.st_mode & 07777) == 0,
                  "the database file was changed");
}
END_TEST

/* ---- SIGTERM ---- */

/* Waits until the daemon's log shows that it began to stop. */
static void wait_stopping(td_t *d, const char *sig)
{
    char want[64];
    snprintf(want, sizeof want, "%s: stopping", sig);
    long long deadline = td_now_ms() + td_scaled(10000);
    for (;;) {
        char *log = td_log_text(d);
        int seen = strstr(log, want) != NULL;
        free(log);
        if (seen)
            return;
        ck_assert_msg(td_now_ms() < deadline, "the daemon never logged \"%s\"", want);
        td_sleep_ms(5);
    }
}

/* SIGTERM drains: idle clients get SHUTTING_DOWN at once; a GET stream
 * that is mid-way (its client has paused reading, so the daemon cannot
 * have produced it all) is finished whole, then SHUTTING_DOWN; exit 0. */
START_TEST(test_sigterm_idle)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "term");
    td_start(&d, dir, "\"max_output_bytes\": 1048576, " FAST_ENGINE);
    tc_t *a = it_session(&d, 0), *b = it_session(&d, 1);
    tc_t *g = tc_connect_tcp(d.port, 16384);
    ck_assert_ptr_nonnull(g);
    IT_OK(g, tc_hello(g, NULL, NULL));
    IT_OK(a, tc_put(a, "/t", "t", 1, UNSET, NULL));
    const size_t n = 32u << 20;
    uint8_t *big = it_bytes(n, 3);
    IT_OK(a, tc_put(a, "/big", big, n, UNSET, NULL));
    double out0 = it_stat(a, "bytes_out");
    IT_OK(g, tc_send_path(g, SDB_OP_GET, 9, "/big"));
    IT_OK(g, tc_recv(g, 9, SDB_OP_GET_HEADER));
    /* g reads nothing more until the daemon has begun to stop: the
     * daemon holds at most ~1 MiB of its output and the kernel a few MiB,
     * far from 32 MiB, so the stream is mid-way at SIGTERM */
    double sent = it_stat(a, "bytes_out") - out0;
    ck_assert_msg(sent < (double)n / 2, "%.0f bytes of the stream were sent before SIGTERM", sent);
    long long t0 = td_now_ms();
    kill(d.pid, SIGTERM);
    wait_stopping(&d, "SIGTERM");
    for (int k = 0; k < 2; k++) {
        tc_t *c = k ? b : a;
        int rc = tc_read(c);
        ck_assert_msg(rc == 1 && c->m.opcode == SDB_OP_ERROR && c->status == SDB_STATUS_SHUTTING_DOWN &&
                          c->m.request_id == 0 && (c->flags & SDB_FLAG_CLOSING),
                      "idle client at SIGTERM: expected ERROR SHUTTING_DOWN, got %s %s", it_rc_name(rc),
                      rc == 1 ? it_rc_name(c->status) : c->err);
        ck_assert_int_eq(tc_expect_closed(c, td_scaled(3000)), TC_CLOSED);
    }
    /* the whole stream arrives (tc_recv_get checks size and CRC), then the
     * connection ends with SHUTTING_DOWN */
    sdb_docinfo_t info;
    size_t got = 0;
    int rc = 0;
    while ((rc = tc_read(g)) == 1 && g->m.opcode == SDB_OP_DATA && g->m.request_id == 9) {
        ck_assert_msg(memcmp(g->m.u.raw.ptr, big + got, g->m.u.raw.len) == 0, "DATA differs at %zu", got);
        got += g->m.u.raw.len;
    }
    (void)info;
    ck_assert_msg(rc == 1 && g->m.opcode == SDB_OP_END && got == n,
                  "a GET stream at SIGTERM: %zu of %zu bytes, then %s %s (%s)", got, n, it_rc_name(rc),
                  rc == 1 ? sdb_proto_opcode_name(g->m.opcode) : "", rc == 1 ? g->msg : g->err);
    rc = tc_read(g);
    ck_assert_msg(rc == 1 && g->m.opcode == SDB_OP_ERROR && g->status == SDB_STATUS_SHUTTING_DOWN &&
                      g->m.request_id == 0 && (g->flags & SDB_FLAG_CLOSING),
                  "after the drained stream: %s", it_rc_name(rc));
    ck_assert_int_eq(tc_expect_closed(g, td_scaled(3000)), TC_CLOSED);
    tc_close(g);
    free(big);
    int st = td_wait(&d, td_scaled(10000));
    ck_assert_msg(exit_code(st) == 0, "exit status 0x%x after SIGTERM", (unsigned)st);
    ck_assert_msg(td_now_ms() - t0 < td_scaled(8000), "the stop took %lld ms", td_now_ms() - t0);
    struct stat sb;
    ck_assert_msg(stat(d.sock, &sb) != 0, "the Unix socket file remains");
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "stopped cleanly") != NULL, "no clean stop in the log: %s", log);
    free(log);
    tc_close(a);
    tc_close(b);
    /* SIGINT too */
    td_restart(&d);
    a = it_session(&d, 0);
    IT_OK(a, tc_lookup(a, "/t", NULL));
    tc_close(a);
    st = td_signal_wait(&d, SIGINT, td_scaled(10000));
    ck_assert_msg(exit_code(st) == 0, "exit status 0x%x after SIGINT", (unsigned)st);
}
END_TEST

/* SIGTERM with a stream whose client never reads: shutdown_timeout_ms
 * later the stream is cut and the daemon exits 0. */
START_TEST(test_sigterm_deadline)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "termdl");
    td_start(&d, dir, "\"max_output_bytes\": 1048576, \"shutdown_timeout_ms\": 500, " FAST_ENGINE);
    tc_t *a = it_session(&d, 0);
    tc_t *g = tc_connect_tcp(d.port, 16384);
    ck_assert_ptr_nonnull(g);
    IT_OK(g, tc_hello(g, NULL, NULL));
    const size_t n = 32u << 20;
    uint8_t *big = it_bytes(n, 4);
    IT_OK(a, tc_put(a, "/big", big, n, UNSET, NULL));
    free(big);
    tc_close(a);
    IT_OK(g, tc_send_path(g, SDB_OP_GET, 9, "/big"));
    IT_OK(g, tc_recv(g, 9, SDB_OP_GET_HEADER));
    long long t0 = td_now_ms();
    int st = td_signal_wait(&d, SIGTERM, td_scaled(15000));
    long long ms = td_now_ms() - t0;
    ck_assert_msg(exit_code(st) == 0, "exit status 0x%x after SIGTERM", (unsigned)st);
    ck_assert_msg(ms >= 450, "the daemon stopped after %lld ms, before shutdown_timeout_ms 500", ms);
    /* what g can still read ends short of the whole document */
    size_t got = 0;
    int rc;
    while ((rc = tc_read(g)) == 1 && g->m.opcode == SDB_OP_DATA)
        got += g->m.u.raw.len;
    ck_assert_msg(got < n && !(rc == 1 && g->m.opcode == SDB_OP_END), "the stream completed (%zu bytes)", got);
    tc_close(g);
}
END_TEST

enum { MAX_ACKS = 100000 };

typedef struct {
    td_t *d;
    atomic_int stop;
    atomic_int acked;                /* writes answered with DOC */
    sdb_docinfo_t *info;             /* [MAX_ACKS] */
    int last_rc;
    char err[256];
} acker_t;

static size_t ack_size(int i)
{
    return 100 + (size_t)(i * 131) % 5000;
}

static void *acker_main(void *arg)
{
    acker_t *a = arg;
    tc_t *c = tc_connect_unix(a->d->sock);
    uint8_t buf[5200];
    char path[32];
    if (!c || tc_hello(c, NULL, NULL) != 0) {
        snprintf(a->err, sizeof a->err, "cannot connect");
        tc_close(c);
        return NULL;
    }
    for (int i = 0; i < MAX_ACKS && !atomic_load(&a->stop); i++) {
        size_t n = ack_size(i);
        tc_fill(buf, n, (uint32_t)i);
        snprintf(path, sizeof path, "/ack/%05d", i);
        int rc = tc_put(c, path, buf, n, UNSET, &a->info[i]);
        if (rc) {
            a->last_rc = rc;
            it_errf(a->err, sizeof a->err, "%s: %s", it_rc_name(rc), rc > 0 ? c->msg : c->err);
            break;
        }
        atomic_store(&a->acked, i + 1);
    }
    tc_close(c);
    return NULL;
}

typedef struct {
    td_t *d;
    atomic_long sent;                /* upload bytes sent */
    atomic_int go_on;                /* set after SIGTERM: keep sending */
    int got_frame, status, flags, rid, opcode;
    int rc;
    char err[256];
} uploader_t;

static void *uploader_main(void *arg)
{
    uploader_t *u = arg;
    tc_t *c = tc_connect_tcp(u->d->port, 0);
    if (!c || tc_hello(c, NULL, NULL) != 0) {
        snprintf(u->err, sizeof u->err, "cannot connect");
        tc_close(c);
        return NULL;
    }
    size_t chunk = c->chunk, total = 64u << 20;
    uint8_t *buf = malloc(chunk);
    tc_fill(buf, chunk, 77);
    int rc = tc_send_put_begin(c, 5, "/big", total, UNSET);
    for (size_t off = 0; !rc && off < total; off += chunk) {
        if (off == (16u << 20))
            while (!atomic_load(&u->go_on))
                td_sleep_ms(5);
        rc = tc_send_put_data(c, 5, buf, chunk);
        atomic_store(&u->sent, (long)(off + chunk));
    }
    if (!rc)
        rc = tc_send_put_end(c, 5, total, 0);   /* never reached in practice */
    u->rc = tc_read(c);
    if (u->rc == 1) {
        u->got_frame = 1;
        u->opcode = c->m.opcode;
        u->status = c->status;
        u->flags = c->flags;
        u->rid = (int)c->m.request_id;
    } else {
        it_errf(u->err, sizeof u->err, "%s", c->err);
    }
    free(buf);
    tc_close(c);
    return NULL;
}

START_TEST(test_sigterm_during_upload)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "termup");
    td_start(&d, dir, "\"shutdown_timeout_ms\": 5000, \"engine\": {\"durability\": \"full\"}");
    acker_t a = { .d = &d, .info = calloc(MAX_ACKS, sizeof(sdb_docinfo_t)) };
    uploader_t u = { .d = &d };
    ck_assert_ptr_nonnull(a.info);
    pthread_t ta, tu;
    ck_assert_int_eq(pthread_create(&ta, NULL, acker_main, &a), 0);
    ck_assert_int_eq(pthread_create(&tu, NULL, uploader_main, &u), 0);
    long long deadline = td_now_ms() + td_scaled(20000);
    while ((atomic_load(&u.sent) < (16l << 20) || atomic_load(&a.acked) < 20) && td_now_ms() < deadline &&
           !u.err[0] && !a.err[0])
        td_sleep_ms(10);
    ck_assert_msg(atomic_load(&u.sent) >= (16l << 20) && atomic_load(&a.acked) >= 20,
                  "the load did not start: %ld bytes uploaded, %d writes (%s %s)", atomic_load(&u.sent),
                  atomic_load(&a.acked), u.err, a.err);
    ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
    atomic_store(&u.go_on, 1);
    int st = td_wait(&d, td_scaled(15000));
    atomic_store(&a.stop, 1);
    pthread_join(ta, NULL);
    pthread_join(tu, NULL);
    if (exit_code(st) != 0) {
        char *log = td_log_text(&d);
        ck_abort_msg("SIGTERM during an upload: exit status 0x%x; log: %s", (unsigned)st, log);
    }
    /* the upload was refused (or the connection simply ended), never stored */
    if (u.got_frame)
        ck_assert_msg(u.opcode == SDB_OP_ERROR && u.status == SDB_STATUS_SHUTTING_DOWN && u.rid == 0 &&
                          (u.flags & SDB_FLAG_CLOSING),
                      "the cut upload got opcode 0x%02x status %d rid %d", u.opcode, u.status, u.rid);
    else
        ck_assert_msg(u.rc == TC_CLOSED, "the cut upload: %s (%s)", it_rc_name(u.rc), u.err);
    int acked = atomic_load(&a.acked);
    ck_assert_msg(a.last_rc == TC_CLOSED || a.last_rc == SDB_STATUS_SHUTTING_DOWN || a.last_rc == 0,
                  "the writer's last request: %s", a.err);

    /* restart on the same data: every acknowledged write is there */
    td_restart(&d);
    tc_t *c = it_session(&d, 0);
    uint8_t buf[5200];
    char path[32];
    for (int i = 0; i < acked; i++) {
        size_t n = ack_size(i);
        tc_fill(buf, n, (uint32_t)i);
        snprintf(path, sizeof path, "/ack/%05d", i);
        sdb_docinfo_t x;
        it_expect_get(c, path, buf, n, &x);
        ck_assert_msg(it_id_eq(&x.id, &a.info[i].id) && x.version == 1, "%s: another document", path);
    }
    IT_RC(c, tc_lookup(c, "/big", NULL), SDB_STATUS_NOT_FOUND);
    double docs = it_stat(c, "engine.documents");
    ck_assert_msg(docs == acked || docs == acked + 1, "%g documents after %d acknowledged writes (and at "
                  "most one unanswered)", docs, acked);
    tc_close(c);
    free(a.info);
    td_stop(&d);
}
END_TEST

/* SIGKILL under load: the restart finds a stale socket file (removed) and a
 * database that recovers every acknowledged (durable) write. */
START_TEST(test_sigkill_recovery)
{
    char dir[256];
    td_t d;
    it_newdir(dir, sizeof dir, "kill");
    td_start(&d, dir, "\"engine\": {\"durability\": \"full\"}");
    acker_t a = { .d = &d, .info = calloc(MAX_ACKS, sizeof(sdb_docinfo_t)) };
    ck_assert_ptr_nonnull(a.info);
    pthread_t ta;
    ck_assert_int_eq(pthread_create(&ta, NULL, acker_main, &a), 0);
    long long deadline = td_now_ms() + td_scaled(20000);
    while (atomic_load(&a.acked) < 30 && td_now_ms() < deadline && !a.err[0])
        td_sleep_ms(5);
    int st = td_signal_wait(&d, SIGKILL, td_scaled(5000));
    ck_assert_msg(st != -1 && WIFSIGNALED(st), "SIGKILL: status 0x%x", (unsigned)st);
    pthread_join(ta, NULL);
    int acked = atomic_load(&a.acked);
    ck_assert_msg(acked >= 30, "only %d writes before the kill (%s)", acked, a.err);
    struct stat sb;
    ck_assert_msg(stat(d.sock, &sb) == 0, "no stale socket file: the restart check is moot");
    td_restart(&d);
    tc_t *c = it_session(&d, 1);
    uint8_t buf[5200];
    char path[32];
    for (int i = 0; i < acked; i++) {
        size_t n = ack_size(i);
        tc_fill(buf, n, (uint32_t)i);
        snprintf(path, sizeof path, "/ack/%05d", i);
        sdb_docinfo_t x;
        it_expect_get(c, path, buf, n, &x);
        ck_assert_msg(it_id_eq(&x.id, &a.info[i].id), "%s: another document after recovery", path);
    }
    tc_close(c);
    free(a.info);
    td_stop(&d);
}
END_TEST

/* ---- SIGHUP reopens the log ---- */

START_TEST(test_sighup_reopens_log)
{
    char dir[256], extra[512], logf[300], rotated[310];
    td_t d;
    it_newdir(dir, sizeof dir, "hup");
    snprintf(logf, sizeof logf, "%s/file.log", dir);
    snprintf(rotated, sizeof rotated, "%s.1", logf);
    snprintf(extra, sizeof extra, "\"log_file\": \"%s\", " FAST_ENGINE, logf);
    td_init(&d, dir);
    it_errf(d.watch, sizeof d.watch, "%s", logf);
    td_write_config(&d, extra);
    td_restart(&d);
    ck_assert_int_eq(rename(logf, rotated), 0);
    kill(d.pid, SIGHUP);
    struct stat sb;
    for (int i = 0; i < 2000 && stat(logf, &sb) != 0; i++)
        td_sleep_ms(10);
    tc_t *c = it_session(&d, 0);   /* the daemon keeps serving */
    IT_OK(c, tc_ping(c, "hup", 3));
    tc_close(c);
    ck_assert_msg(stat(logf, &sb) == 0, "SIGHUP did not reopen %s", logf);
    td_stop(&d);
    FILE *f = fopen(logf, "r");
    char line[512];
    int hup = 0, stop = 0;
    while (f && fgets(line, sizeof line, f)) {
        hup |= strstr(line, "SIGHUP") != NULL;
        stop |= strstr(line, "stopped cleanly") != NULL;
    }
    if (f)
        fclose(f);
    ck_assert_msg(hup && stop, "the new log lacks the SIGHUP (%d) or stop (%d) lines", hup, stop);
}
END_TEST

/* ---- valgrind ---- */

static int find_valgrind(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/valgrind", p);
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* ---- IPv6 and systemd readiness ---- */

/* The daemon listens on [::1] and the CLI reaches it there. */
START_TEST(test_ipv6_listener)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) {
        CK_SKIP("no IPv6 on this machine (socket(AF_INET6): %s)", strerror(errno));
    }
    close(fd);
    char dir[256], addr[64], cli[PATH_MAX];
    td_t d;
    it_newdir(dir, sizeof dir, "v6");
    td_start(&d, dir, "\"listen\": \"[::1]:0\", " FAST_ENGINE);
    ck_assert_int_gt(d.port, 0);
    char *log = td_log_text(&d);
    ck_assert_msg(strstr(log, "listening on tcp ::1:") != NULL, "log: %s", log);
    free(log);
    snprintf(addr, sizeof addr, "[::1]:%d", d.port);
    snprintf(cli, sizeof cli, "%s", td_binary());
    char *slash = strrchr(cli, '/');
    ck_assert_ptr_nonnull(slash);
    snprintf(slash + 1, sizeof cli - (size_t)(slash + 1 - cli), "streamdb");
    const char *argv[] = { cli, "-H", addr, "ping", NULL };
    char *out = NULL, *err = NULL;
    int st = td_run(argv, &out, &err, td_scaled(10000));
    ck_assert_msg(exit_code(st) == 0 && strstr(out, "PONG") != NULL, "streamdb -H %s ping: %d %s %s",
                  addr, exit_code(st), out, err);
    free(out);
    free(err);
    td_stop(&d);
}
END_TEST

/* With NOTIFY_SOCKET set (systemd Type=notify), the daemon sends READY=1
 * once it listens and STOPPING=1 when SIGTERM starts its shutdown. */
START_TEST(test_sd_notify)
{
    char dir[256], path[300];
    td_t d;
    it_newdir(dir, sizeof dir, "notify");
    snprintf(path, sizeof path, "%s/notify.sock", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", path, 1);
    td_start(&d, dir, FAST_ENGINE);
    unsetenv("NOTIFY_SOCKET");
    char msg[128];
    ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
    ck_assert_int_gt(n, 0);
    msg[n] = 0;
    ck_assert_str_eq(msg, "READY=1");
    kill(d.pid, SIGTERM);
    n = recv(fd, msg, sizeof msg - 1, 0);
    ck_assert_int_gt(n, 0);
    msg[n] = 0;
    ck_assert_str_eq(msg, "STOPPING=1");
    int st = td_wait(&d, td_scaled(15000));
    ck_assert_int_eq(exit_code(st), 0);
    close(fd);
}
END_TEST

START_TEST(test_valgrind)
{
    char vg[PATH_MAX];
    if (td_asan()) {
        CK_SKIP("the daemon is built with ASan here (valgrind cannot run it)");
    }
    if (!find_valgrind(vg, sizeof vg)) {
        CK_SKIP("valgrind is not installed (scripts/install-deps.sh valgrind)");
    }
    char dir[256], vglog[300], logopt[320];
    td_t d;
    it_newdir(dir, sizeof dir, "valgrind");
    td_init(&d, dir);
    td_write_config(&d, "\"workers\": 2, \"chunk_bytes\": 16384, " FAST_ENGINE);
    snprintf(vglog, sizeof vglog, "%s/valgrind.log", dir);
    snprintf(logopt, sizeof logopt, "--log-file=%s", vglog);
    const char *wrapper[] = { vg, "--leak-check=full", "--error-exitcode=99", "--track-fds=no",
                              logopt, NULL };
    int rc = td_spawn(&d, wrapper, td_scaled(60000));
    ck_assert_msg(rc == 0, "streamdbd under valgrind did not start (status 0x%x)", (unsigned)d.status);
    tc_t *c = it_connect(&d, 0);
    c->timeout_ms = td_scaled(60000);
    IT_OK(c, tc_hello(c, NULL, NULL));
    uint8_t *data = it_bytes(100000, 1);
    sdb_docinfo_t x;
    IT_OK(c, tc_put(c, "/vg/a", data, 100000, UNSET, &x));
    it_expect_get(c, "/vg/a", data, 100000, NULL);
    IT_OK(c, tc_bind(c, &x.id, "/vg/b"));
    tc_list_t l;
    IT_OK(c, tc_search(c, "/vg/", "", 0, '/', &l));
    ck_assert_uint_eq(l.n, 2);
    tc_list_free(&l);
    IT_RC(c, tc_lookup(c, "/vg/none", NULL), SDB_STATUS_NOT_FOUND);
    char *json;
    IT_OK(c, tc_stats(c, &json));
    free(json);
    /* an error path: a cut upload and a bad frame on a second connection */
    tc_t *e = it_connect(&d, 1);
    e->timeout_ms = td_scaled(60000);
    IT_OK(e, tc_hello(e, NULL, NULL));
    IT_OK(e, tc_send_put_begin(e, 3, "/vg/cut", 50000, UNSET));
    IT_OK(e, tc_send_put_data(e, 3, data, 16384));
    IT_OK(e, tc_send_raw(e, "garbage!garbage!", 16));
    int rr = tc_read(e);
    ck_assert_msg(rr == 1 && e->status == SDB_STATUS_PROTOCOL, "garbage under valgrind: %s", it_rc_name(rr));
    tc_close(e);
    IT_RC(c, tc_lookup(c, "/vg/cut", NULL), SDB_STATUS_NOT_FOUND);
    /* batches and the commit stage: pipelined whole uploads and GETs on
       two connections, one of them closed before it reads its answers */
    tc_t *b = it_connect(&d, 1);
    b->timeout_ms = td_scaled(60000);
    IT_OK(b, tc_hello(b, NULL, NULL));
    char bp[32];
    for (uint32_t k = 0; k < 20; k++) {
        snprintf(bp, sizeof bp, "/vg/p%u", (unsigned)(k % 5));
        IT_OK(c, tc_send_put(c, 100 + 2 * k, bp, data, 300 + k, UNSET));
        IT_OK(c, tc_send_path(c, SDB_OP_GET, 101 + 2 * k, bp));
        IT_OK(b, tc_send_put(b, 100 + k, bp, data + 7, 200, UNSET));
    }
    tc_close(b);
    for (uint32_t k = 0; k < 20; k++) {
        IT_OK(c, tc_recv_doc(c, 100 + 2 * k, SDB_OP_DOC, NULL));
        IT_OK(c, tc_recv_get(c, 101 + 2 * k, NULL, NULL, NULL));
    }
    free(data);
    tc_close(c);   /* one client still connected at SIGTERM would also be fine */
    int st = td_signal_wait(&d, SIGTERM, td_scaled(60000));
    if (exit_code(st) != 0) {
        td_t v = d;
        it_errf(v.log, sizeof v.log, "%s", vglog);
        char *t = td_log_text(&v);
        ck_abort_msg("streamdbd under valgrind: exit status 0x%x (99: valgrind found errors or "
                     "leaks); valgrind log:\n%.6000s", (unsigned)st, t);
    }
}
END_TEST

Suite *suite_process(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_version_help);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_workers_default);
    tcase_add_test(tc, test_second_daemon);
    tcase_add_test(tc, test_unix_socket_path);
    tcase_add_test(tc, test_file_modes);
    tcase_add_test(tc, test_permission_denied);
    tcase_add_test(tc, test_cannot_create_database);
    tcase_add_test(tc, test_sigterm_idle);
    tcase_add_test(tc, test_sigterm_deadline);
    tcase_add_test(tc, test_sigterm_during_upload);
    tcase_add_test(tc, test_sigkill_recovery);
    tcase_add_test(tc, test_sighup_reopens_log);
    tcase_add_test(tc, test_ipv6_listener);
    tcase_add_test(tc, test_sd_notify);
    suite_add_tcase(s, tc);

    tc = tcase_create("valgrind");
    tcase_add_unchecked_fixture(tc, it_dir_setup, it_dir_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_valgrind);
    suite_add_tcase(s, tc);
    return s;
}
