/*
 * cli_test.h -- helpers shared by the client library and CLI suites: a
 * temporary directory per test case, the real streamdbd started on a
 * temporary Unix socket and a free TCP port (fork/exec, SIGTERM at the end),
 * running `streamdb` as a subprocess with its exit status, stdout and stderr
 * captured, and a fake server that plays a scripted (mis)behaviour.
 * Header-only (static functions), like tests/unit/check_util.h.
 *
 * The binaries are found next to the runner (build/check_cli ->
 * build/streamdb, build/streamdbd), so `make sanitize` tests its own build.
 */
#ifndef CLI_TEST_H
#define CLI_TEST_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../check_run.h"   /* CK_SKIP */
#include "streamdb.h"
#include "streamdb_client.h"
#include "streamdb_proto.h"

/* ---- Paths ---- */

static char ct_bin_dir[PATH_MAX];   /* the directory holding the runner */

static inline const char *ct_bin(const char *name)
{
    static char buf[4][PATH_MAX + 64];
    static int k;
    if (!ct_bin_dir[0]) {
        ssize_t n = readlink("/proc/self/exe", ct_bin_dir, sizeof(ct_bin_dir) - 1);
        if (n <= 0) {
            strcpy(ct_bin_dir, "build");
        } else {
            ct_bin_dir[n] = '\0';
            char *slash = strrchr(ct_bin_dir, '/');
            if (slash)
                *slash = '\0';
        }
    }
    char *b = buf[k++ % 4];
    snprintf(b, PATH_MAX + 64, "%s/%s", ct_bin_dir, name);
    return b;
}

/* ---- Temporary directory (one per test case; unchecked fixture) ---- */

static char ct_dir[128];

static inline int ct_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void ct_dir_setup(void)
{
    snprintf(ct_dir, sizeof(ct_dir), "/tmp/sdbcli.XXXXXX");
    if (!mkdtemp(ct_dir)) {
        perror("mkdtemp");
        abort();
    }
}

static inline void ct_dir_teardown(void)
{
    if (ct_dir[0])
        nftw(ct_dir, ct_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    ct_dir[0] = '\0';
}

/* A path under the test case's directory (not created). */
static inline const char *ct_path(const char *name)
{
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", ct_dir, name);
    return b;
}

static inline void ct_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert(fwrite(data, 1, len, f) == len);
    ck_assert(fclose(f) == 0);
}

/* malloc()ed content of path (NUL-terminated), length in *len. */
static inline char *ct_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (len)
            *len = 0;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    ck_assert(b != NULL);
    for (;;) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        cap *= 2;
        b = realloc(b, cap + 1);
        ck_assert(b != NULL);
    }
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* Deterministic content (xorshift), as tests/unit/check_util.h. */
static inline void ct_fill(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    if (x == 0)
        x = 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x >> 24);
    }
}

/* ---- The daemon ---- */

typedef struct {
    pid_t pid;
    int port;
    char sock[200];
    char data[200];
    char tcp[64];          /* "127.0.0.1:PORT" */
    char unix_addr[220];   /* "unix:SOCK" */
} ct_daemon_t;

static inline int ct_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("free port");
        abort();
    }
    close(s);
    return ntohs(a.sin_port);
}

static inline int ct_can_connect(const char *sock)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(sock) >= sizeof(a.sun_path)) {
        close(s);
        return 0;
    }
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

static inline void ct_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Starts streamdbd with its data, socket and log under ct_dir/<name>; conf
 * (may be NULL) is the text of a JSON config file; token_file may be NULL.
 * Aborts (the runner reports it) when the daemon does not come up. */
static inline void ct_daemon_start(ct_daemon_t *d, const char *name, const char *conf,
                                   const char *token_file)
{
    memset(d, 0, sizeof(*d));
    char dir[160], conf_path[300] = "", log[300];
    snprintf(dir, sizeof(dir), "%s/%s", ct_dir, name);
    mkdir(dir, 0700);
    snprintf(d->sock, sizeof(d->sock), "%s/s.sock", dir);
    snprintf(d->data, sizeof(d->data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/daemon.log", dir);
    d->port = ct_free_port();
    snprintf(d->tcp, sizeof(d->tcp), "127.0.0.1:%d", d->port);
    snprintf(d->unix_addr, sizeof(d->unix_addr), "unix:%s", d->sock);
    if (conf) {
        snprintf(conf_path, sizeof(conf_path), "%s/conf.json", dir);
        FILE *f = fopen(conf_path, "w");
        if (!f || fputs(conf, f) < 0 || fclose(f) != 0)
            abort();
    }
    if (token_file && chmod(token_file, 0600) != 0)   /* streamdbd refuses a token others may read */
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *argv[16];
        int n = 0;
        argv[n++] = ct_bin("streamdbd");
        if (conf_path[0]) {
            argv[n++] = "-c";
            argv[n++] = conf_path;
        }
        argv[n++] = "-d";
        argv[n++] = d->data;
        argv[n++] = "-u";
        argv[n++] = d->sock;
        argv[n++] = "-l";
        argv[n++] = d->tcp;
        argv[n++] = "-L";
        argv[n++] = "warn";
        if (token_file) {
            argv[n++] = "--token-file";
            argv[n++] = token_file;
        }
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    for (int i = 0; i < 1000; i++) {
        if (ct_can_connect(d->sock))
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "streamdbd exited during startup (status %d); see %s\n", st, log);
            abort();
        }
        ct_sleep_ms(10);
    }
    fprintf(stderr, "streamdbd did not come up on %s\n", d->sock);
    kill(pid, SIGKILL);
    abort();
}

/* Stops the daemon with SIGTERM and returns its exit status (-1 if killed). */
static inline int ct_daemon_stop(ct_daemon_t *d)
{
    if (d->pid <= 0)
        return 0;
    kill(d->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        ct_sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return -1;
}

/* ---- Running the CLI ---- */

/* When set, the CLI runs in this directory (for the default address). */
static const char *ct_run_cwd;

typedef struct {
    int status;      /* exit code, or 128 + signal */
    char *out;       /* stdout (NUL-terminated), unless redirected */
    size_t outlen;
    char *err;       /* stderr (NUL-terminated) */
} ct_run_t;

static inline void ct_run_free(ct_run_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/* Runs build/streamdb with args (NULL-terminated array): stdin from in_path
 * (NULL: /dev/null), stdout to out_path (NULL: captured into r->out),
 * stderr captured.  env: NULL-terminated "NAME=VALUE" strings added to the
 * child's environment (may be NULL). */
static inline void ct_run_argv(ct_run_t *r, const char *in_path, const char *out_path,
                               char *const env[], const char *const *args)
{
    static unsigned seq;
    char outf[300], errf[300];
    snprintf(outf, sizeof(outf), "%s/run.%ld.%u.out", ct_dir, (long)getpid(), seq);
    snprintf(errf, sizeof(errf), "%s/run.%ld.%u.err", ct_dir, (long)getpid(), seq++);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (int i = 0; env && env[i]; i++)
            putenv(env[i]);
        if (ct_run_cwd && chdir(ct_run_cwd) < 0)
            _exit(125);
        alarm(120);
        const char *argv[64];
        int n = 0;
        argv[n++] = ct_bin("streamdb");
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    memset(r, 0, sizeof(*r));
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (!out_path) {
        r->out = ct_read_file(outf, &r->outlen);
        unlink(outf);
    }
    r->err = ct_read_file(errf, NULL);
    unlink(errf);
    if (!r->out)
        r->out = strdup("");
    if (!r->err)
        r->err = strdup("");
}

/* ct_run(&r, in, out, env, "arg", ..., NULL) */
static inline void ct_run(ct_run_t *r, const char *in_path, const char *out_path, char *const env[],
                          ...)
{
    const char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, env);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 63)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    ct_run_argv(r, in_path, out_path, env, args);
}

/* Asserts the exit status and the exact stdout of a run (and shows stderr). */
#define CT_EXPECT(r, want_status, want_out)                                                   \
    do {                                                                                      \
        ck_assert_msg((r)->status == (want_status), "exit %d, expected %d; stderr: %s",       \
                      (r)->status, (want_status), (r)->err);                                  \
        ck_assert_msg(strcmp((r)->out, (want_out)) == 0,                                      \
                      "stdout differs:\n--- got ---\n%s--- expected ---\n%s--- stderr ---\n%s", \
                      (r)->out, (want_out), (r)->err);                                        \
    } while (0)

#define CT_ERR_HAS(r, text)                                                                   \
    ck_assert_msg(strstr((r)->err, (text)) != NULL, "stderr lacks \"%s\":\n%s", (text),        \
                  (r)->err)

/* ---- A fake server ---- */

enum {
    FAKE_CLOSE_MID_GET,     /* HELLO_OK; GET_HEADER (1 MiB), one 64 KiB DATA, then close */
    FAKE_BAD_CRC,           /* HELLO_OK; GET answered with content whose CRC differs */
    FAKE_VERSION_ERROR,     /* ERROR UNSUPPORTED_VERSION (CLOSING) to HELLO */
    FAKE_WRONG_VERSION,     /* HELLO_OK choosing protocol version 7 */
    FAKE_GARBAGE,           /* answers HELLO with "HTTP/1.1 400 Bad Request" */
    FAKE_SILENT,            /* accepts and never answers */
    FAKE_CLOSE_AFTER_HELLO, /* HELLO_OK, then closes when the first request arrives */
    FAKE_NO_RANGES,         /* HELLO_OK; answers GET_RANGE / GET_ID_RANGE as a server that
                               predates them (ERROR BAD_OPCODE), PING with PONG, until closed */
    FAKE_BAD_RANGE          /* HELLO_OK; answers a range from another offset than asked */
};

typedef struct {
    int mode;
    int listen_fd;
    char sock[200];
    pthread_t thread;
    int accepted;
} ct_fake_t;

static inline int ct_fake_read_frame(int fd, sdb_proto_decoder_t *dec, uint8_t *buf, size_t *have,
                                     sdb_proto_frame_t *f)
{
    for (;;) {
        if (*have > 0) {
            size_t used = 0;
            int rc = sdb_proto_decoder_feed(dec, buf, *have, &used, f);
            memmove(buf, buf + used, *have - used);
            *have -= used;
            if (rc != 0)
                return rc;
            continue;
        }
        ssize_t n = recv(fd, buf, 65536, 0);
        if (n <= 0)
            return -1;
        *have = (size_t)n;
    }
}

static inline void ct_fake_send(int fd, const sdb_proto_msg_t *m)
{
    static uint8_t out[200000];
    size_t len = 0;
    if (sdb_proto_encode(m, out, sizeof(out), &len) == 0)
        (void)!send(fd, out, len, MSG_NOSIGNAL);
}

static inline void *ct_fake_main(void *arg)
{
    ct_fake_t *fk = arg;
    int fd = accept(fk->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    fk->accepted = 1;
    sdb_proto_decoder_t dec;
    sdb_proto_decoder_init(&dec, 1u << 20);
    uint8_t *buf = malloc(65536);
    size_t have = 0;
    sdb_proto_frame_t f;
    if (fk->mode == FAKE_SILENT) {
        while (recv(fd, buf, 65536, 0) > 0) {
        }
        goto out;
    }
    if (ct_fake_read_frame(fd, &dec, buf, &have, &f) != 1)
        goto out;
    uint32_t rid = f.hdr.request_id;
    if (fk->mode == FAKE_GARBAGE) {
        const char *t = "HTTP/1.1 400 Bad Request\r\n\r\n";
        (void)!send(fd, t, strlen(t), MSG_NOSIGNAL);
        goto out;
    }
    if (fk->mode == FAKE_VERSION_ERROR) {
        sdb_proto_msg_t e = { .opcode = SDB_OP_ERROR, .flags = SDB_FLAG_CLOSING, .request_id = rid };
        e.u.error.status = SDB_STATUS_UNSUPPORTED_VERSION;
        e.u.error.message.ptr = "this server speaks protocol versions 2..3";
        e.u.error.message.len = strlen(e.u.error.message.ptr);
        ct_fake_send(fd, &e);
        goto out;
    }
    sdb_proto_msg_t h = { .opcode = SDB_OP_HELLO_OK, .request_id = rid };
    h.u.hello_ok.version = fk->mode == FAKE_WRONG_VERSION ? 7 : 1;
    h.u.hello_ok.max_frame_bytes = 1u << 20;
    h.u.hello_ok.chunk_bytes = 65536;
    h.u.hello_ok.max_document_bytes = 1ull << 28;
    h.u.hello_ok.max_inflight = 64;
    h.u.hello_ok.server.ptr = "fakeserver/1";
    h.u.hello_ok.server.len = 12;
    ct_fake_send(fd, &h);
    if (ct_fake_read_frame(fd, &dec, buf, &have, &f) != 1)
        goto out;
    rid = f.hdr.request_id;
    if (fk->mode == FAKE_CLOSE_AFTER_HELLO)
        goto out;
    if (fk->mode == FAKE_NO_RANGES || fk->mode == FAKE_BAD_RANGE) {
        do {
            sdb_proto_msg_t a = { .request_id = f.hdr.request_id };
            if (f.hdr.opcode == SDB_OP_PING) {
                a.opcode = SDB_OP_PONG;
                a.u.raw.ptr = f.payload;
                a.u.raw.len = f.hdr.length;
            } else if (fk->mode == FAKE_NO_RANGES) {
                /* what streamdbd 0.1.0 says to an opcode it does not know */
                static char text[64];
                snprintf(text, sizeof(text), "opcode 0x%02x: unknown or not a request",
                         (unsigned)f.hdr.opcode);
                a.opcode = SDB_OP_ERROR;
                a.u.error.status = SDB_STATUS_BAD_OPCODE;
                a.u.error.message.ptr = text;
                a.u.error.message.len = strlen(text);
            } else {
                a.opcode = SDB_OP_RANGE_HEADER;      /* 10 bytes from 0, whatever was asked */
                a.u.range_header.doc.size = 100;
                a.u.range_header.offset = 0;
                a.u.range_header.length = 10;
            }
            ct_fake_send(fd, &a);
        } while (ct_fake_read_frame(fd, &dec, buf, &have, &f) == 1);
        goto out;
    }
    if (f.hdr.opcode != SDB_OP_GET && f.hdr.opcode != SDB_OP_GET_ID)
        goto out;
    static uint8_t chunk[65536];
    ct_fill(chunk, sizeof(chunk), 7);
    sdb_proto_msg_t g = { .opcode = SDB_OP_GET_HEADER, .request_id = rid };
    ct_fill(g.u.doc.id.b, 16, 3);
    g.u.doc.version = 1;
    if (fk->mode == FAKE_CLOSE_MID_GET) {
        g.u.doc.size = 1u << 20;
        g.u.doc.crc32 = 0x12345678;
        ct_fake_send(fd, &g);
        sdb_proto_msg_t dm = { .opcode = SDB_OP_DATA, .request_id = rid };
        dm.u.raw.ptr = chunk;
        dm.u.raw.len = sizeof(chunk);
        ct_fake_send(fd, &dm);
        goto out;
    }
    /* FAKE_BAD_CRC: 64 KiB announced with a wrong CRC. */
    g.u.doc.size = sizeof(chunk);
    g.u.doc.crc32 = (uint32_t)crc32(0L, chunk, sizeof(chunk)) ^ 1u;
    ct_fake_send(fd, &g);
    sdb_proto_msg_t dm = { .opcode = SDB_OP_DATA, .request_id = rid };
    dm.u.raw.ptr = chunk;
    dm.u.raw.len = sizeof(chunk);
    ct_fake_send(fd, &dm);
    sdb_proto_msg_t end = { .opcode = SDB_OP_END, .request_id = rid };
    ct_fake_send(fd, &end);
    /* Wait for the client to hang up. */
    while (ct_fake_read_frame(fd, &dec, buf, &have, &f) == 1) {
    }
out:
    free(buf);
    sdb_proto_decoder_free(&dec);
    close(fd);
    return NULL;
}

/* Starts a fake server on a Unix socket under ct_dir, serving one
 * connection in a thread. */
static inline void ct_fake_start(ct_fake_t *fk, int mode)
{
    static unsigned seq;
    memset(fk, 0, sizeof(*fk));
    fk->mode = mode;
    snprintf(fk->sock, sizeof(fk->sock), "%s/fake.%ld.%u.sock", ct_dir, (long)getpid(), seq++);
    fk->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    ck_assert(strlen(fk->sock) < sizeof(a.sun_path));
    memcpy(a.sun_path, fk->sock, strlen(fk->sock) + 1);
    ck_assert(fk->listen_fd >= 0);
    ck_assert(bind(fk->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(fk->listen_fd, 4) == 0);
    ck_assert(pthread_create(&fk->thread, NULL, ct_fake_main, fk) == 0);
}

static inline void ct_fake_stop(ct_fake_t *fk)
{
    shutdown(fk->listen_fd, SHUT_RDWR);
    pthread_join(fk->thread, NULL);
    close(fk->listen_fd);
    unlink(fk->sock);
}

#endif /* CLI_TEST_H */
