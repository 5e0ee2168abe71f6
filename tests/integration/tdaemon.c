/*
 * tdaemon.c -- see tdaemon.h: the streamdbd processes of the integration
 * tests, their scratch directories and a few process helpers.
 */
#include "tdaemon.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---- */

long long td_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void td_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int td_scaled(int ms)
{
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    int k = m ? atoi(m) : 1;
    return ms * (k > 1 ? k : 1);
}

/* ---- scratch directories ---- */

static char it_root[128];

void it_dir_setup(void)
{
    snprintf(it_root, sizeof it_root, "/tmp/sdbit.XXXXXX");
    if (mkdtemp(it_root) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void it_dir_teardown(void)
{
    if (it_root[0] != '\0')
        nftw(it_root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    it_root[0] = '\0';
}

void it_newdir(char *out, size_t cap, const char *name)
{
    static unsigned seq;
    ck_assert_msg(it_root[0] != '\0', "no scratch directory (missing fixture)");
    snprintf(out, cap, "%s/%s.%ld.%u", it_root, name, (long)getpid(), seq++);
    ck_assert_msg(mkdir(out, 0700) == 0, "mkdir %s: %s", out, strerror(errno));
}

/* ---- the binary ---- */

const char *td_binary(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("SDB_STREAMDBD");
    if (env && *env)
        return env;
    if (path[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
        if (n <= 0) {
            snprintf(path, sizeof path, "build/streamdbd");
        } else {
            path[n] = '\0';
            char *slash = strrchr(path, '/');
            snprintf(slash ? slash + 1 : path, 32, "streamdbd");
        }
    }
    return path;
}

int td_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#else
    return 0;
#endif
}

/* ---- registry of running daemons, for cleanup at exit ---- */

#define MAX_RUNNING 16
static struct {
    pid_t pid;
    char log[256];
} g_running[MAX_RUNNING];
static int g_atexit_done;

static char *read_file_from(const char *path, long off)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (f && off > 0)
        fseek(f, off, SEEK_SET);
    for (;;) {
        if (len + 4097 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *t = realloc(text, cap);
            if (!t)
                abort();
            text = t;
        }
        size_t n = f ? fread(text + len, 1, 4096, f) : 0;
        len += n;
        if (n == 0)
            break;
    }
    if (f)
        fclose(f);
    text[len] = '\0';
    return text;
}

static void print_tail(const char *log, pid_t pid)
{
    char *t = read_file_from(log, 0);
    size_t n = strlen(t);
    fprintf(stderr, "---- streamdbd pid %ld, log %s (tail) ----\n%s\n----\n", (long)pid, log,
            n > 3000 ? t + n - 3000 : t);
    free(t);
}

static void kill_leftovers(void)
{
    for (int i = 0; i < MAX_RUNNING; i++) {
        if (g_running[i].pid > 0) {
            kill(g_running[i].pid, SIGKILL);
            waitpid(g_running[i].pid, NULL, 0);
            print_tail(g_running[i].log, g_running[i].pid);
            g_running[i].pid = 0;
        }
    }
}

static void registry_add(const td_t *d)
{
    if (!g_atexit_done) {
        atexit(kill_leftovers);
        g_atexit_done = 1;
    }
    for (int i = 0; i < MAX_RUNNING; i++) {
        if (g_running[i].pid == 0) {
            g_running[i].pid = d->pid;
            snprintf(g_running[i].log, sizeof g_running[i].log, "%s", d->log);
            return;
        }
    }
}

static void registry_del(pid_t pid)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (g_running[i].pid == pid)
            g_running[i].pid = 0;
}

/* ---- one daemon ---- */

void td_init(td_t *d, const char *dir)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    mkdir(dir, 0700);
    snprintf(d->sock, sizeof d->sock, "%s/s.sock", dir);
    snprintf(d->conf, sizeof d->conf, "%s/conf.json", dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", dir);
    snprintf(d->data, sizeof d->data, "%s/data", dir);
}

void td_write_config(td_t *d, const char *extra)
{
    FILE *f = fopen(d->conf, "w");
    ck_assert_msg(f != NULL, "create %s: %s", d->conf, strerror(errno));
    fprintf(f,
            "{\n  \"listen\": \"127.0.0.1:0\",\n  \"unix_socket\": \"%s\",\n"
            "  \"data_dir\": \"%s\",\n  \"workers\": 4,\n  \"log_level\": \"info\"%s%s\n}\n",
            d->sock, d->data, extra && *extra ? ",\n  " : "", extra ? extra : "");
    ck_assert_msg(fclose(f) == 0, "write %s", d->conf);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static int spawn_once(td_t *d, const char *const *wrapper, int timeout_ms);

int td_spawn(td_t *d, const char *const *wrapper, int timeout_ms)
{
    /* exit code 126/127 means the exec failed: the binary may be being
     * relinked by a concurrent `make`; try again a few times */
    int rc = -1;
    for (int tries = 0; tries < 4; tries++) {
        rc = spawn_once(d, wrapper, timeout_ms);
        if (rc == 0 || !WIFEXITED(d->status) || WEXITSTATUS(d->status) < 126)
            break;
        td_sleep_ms(500);
    }
    return rc;
}

static int spawn_once(td_t *d, const char *const *wrapper, int timeout_ms)
{
    const char *argv[32];
    int n = 0;
    for (int i = 0; wrapper && wrapper[i] && n < 24; i++)
        argv[n++] = wrapper[i];
    argv[n++] = td_binary();
    argv[n++] = "-c";
    argv[n++] = d->conf;
    argv[n] = NULL;
    const char *watch = d->watch[0] ? d->watch : d->log;
    long log_off = file_size(watch);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int out = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in < 0 || out < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close(in);
        close(out);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    d->status = 0;
    d->port = 0;
    registry_add(d);
    long long deadline = td_now_ms() + timeout_ms;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            registry_del(pid);
            d->pid = 0;
            d->status = st;
            return -1;
        }
        char *t = read_file_from(watch, log_off);
        const char *tcp = strstr(t, "listening on tcp ");
        if (tcp) {
            const char *eol = strchr(tcp, '\n');
            const char *colon = NULL;
            for (const char *p = tcp; *p && p != eol; p++)
                if (*p == ':')
                    colon = p;
            if (colon)
                d->port = atoi(colon + 1);
        }
        int ready = strstr(t, " ready (") != NULL;
        free(t);
        if (ready)
            return 0;
        if (td_now_ms() > deadline) {
            td_signal_wait(d, SIGKILL, 5000);
            return -1;
        }
        td_sleep_ms(5);
    }
}

static char *log_tail(const td_t *d)
{
    char *t = td_log_text(d);
    size_t n = strlen(t);
    if (n > 2000)
        memmove(t, t + n - 2000, 2001);
    return t;
}

void td_start(td_t *d, const char *dir, const char *extra)
{
    td_init(d, dir);
    td_write_config(d, extra);
    td_restart(d);
}

void td_restart(td_t *d)
{
    if (td_spawn(d, NULL, td_scaled(10000)) != 0) {
        char *t = log_tail(d);
        ck_abort_msg("streamdbd did not start (wait status 0x%x); log:\n%s", (unsigned)d->status, t);
    }
    ck_assert_msg(d->port > 0, "no TCP port found in the daemon's log");
}

int td_wait(td_t *d, int timeout_ms)
{
    if (d->pid <= 0)
        return d->status;
    long long deadline = td_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid || (r < 0 && errno == ECHILD)) {
            registry_del(d->pid);
            d->pid = 0;
            d->status = r < 0 ? -1 : st;
            return d->status;
        }
        if (td_now_ms() > deadline) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            registry_del(d->pid);
            d->pid = 0;
            d->status = st;
            return -1;
        }
        td_sleep_ms(5);
    }
}

int td_signal_wait(td_t *d, int sig, int timeout_ms)
{
    if (d->pid <= 0)
        return d->status;
    kill(d->pid, sig);
    return td_wait(d, timeout_ms);
}

void td_stop(td_t *d)
{
    ck_assert_msg(d->pid > 0, "td_stop: the daemon is not running");
    int st = td_signal_wait(d, SIGTERM, td_scaled(15000));
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *t = log_tail(d);
        ck_abort_msg("streamdbd did not exit cleanly on SIGTERM (%s %d); log:\n%s",
                     st == -1 ? "timeout" : WIFEXITED(st) ? "exit code" : "signal",
                     st == -1 ? 0 : WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), t);
    }
}

int td_alive(td_t *d)
{
    if (d->pid <= 0)
        return 0;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        registry_del(d->pid);
        d->pid = 0;
        d->status = st;
        return 0;
    }
    return 1;
}

long td_status_kb(const td_t *d, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)d->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t fl = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtol(line + fl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

char *td_log_text(const td_t *d)
{
    return read_file_from(d->log, 0);
}

/* ---- running a command to completion ---- */

static void append(char **buf, size_t *len, const char *p, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        abort();
    memcpy(b + *len, p, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

int td_run(const char *const *argv, char **out, char **err, int timeout_ms)
{
    int po[2], pe[2];
    if (pipe(po) < 0 || pipe(pe) < 0)
        return -1;
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int in = open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *bo = NULL, *be = NULL;
    size_t lo = 0, le = 0;
    append(&bo, &lo, "", 0);
    append(&be, &le, "", 0);
    struct pollfd pf[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };
    int open_fds = 2, timed_out = 0;
    long long deadline = td_now_ms() + timeout_ms;
    while (open_fds > 0) {
        long long left = deadline - td_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int r = poll(pf, 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(pf[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                append(&bo, &lo, buf, (size_t)n);
            } else {
                append(&be, &le, buf, (size_t)n);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    int st = 0;
    if (timed_out) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        st = -1;
    } else {
        for (;;) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid)
                break;
            if (td_now_ms() > deadline) {
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                st = -1;
                break;
            }
            td_sleep_ms(5);
        }
    }
    if (out)
        *out = bo;
    else
        free(bo);
    if (err)
        *err = be;
    else
        free(be);
    return st;
}
