/*
 * check_bench.c -- `streamdb-bench` run as a subprocess: every operation
 * against the real streamdbd (Unix socket and TCP, pipeline > 1, small
 * counts) must exit 0 with sane --json output; against a fake server that
 * answers one GET with a corrupted byte, a wrong CRC, a wrong request id, or
 * two responses out of order, it must exit 1 naming what was wrong; bad
 * options exit 2 and an unreachable server exits 1, each with a message.
 * --redis (RESP2) runs every operation against a real redis-server that the
 * test starts on a Unix socket in its temporary directory (skipped, which
 * NO_SKIP=1 turns into a failure, when redis-server is not installed), and
 * against a fake RESP server that answers one GET with a wrong byte, a nil or
 * an error reply.  --pipeline-style is checked by a fake server that watches
 * when each request arrives relative to the replies it has sent.
 * Nothing here depends on timing: the fake servers react to what they read,
 * and only exit statuses, messages and the order of events are asserted.
 */
#include <cjson/cJSON.h>

#include "cli_test.h"

/* ---- Running the tool ---- */

/* Runs build/streamdb-bench with args (NULL-terminated), stdout and stderr
 * captured in r (ct_run_t, as the CLI tests). */
static int bench_keep_token;   /* 1: the tool sees the test's $STREAMDB_TOKEN */

static void bench_run(ct_run_t *r, const char *const *args)
{
    static unsigned seq;
    char outf[300], errf[300];
    snprintf(outf, sizeof(outf), "%s/bench.%ld.%u.out", ct_dir, (long)getpid(), seq);
    snprintf(errf, sizeof(errf), "%s/bench.%ld.%u.err", ct_dir, (long)getpid(), seq++);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (!bench_keep_token)
            unsetenv("STREAMDB_TOKEN");
        alarm(120);   /* a safety net only: a hung tool fails the test */
        const char *argv[64];
        int n = 0;
        argv[n++] = ct_bin("streamdb-bench");
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
    r->out = ct_read_file(outf, &r->outlen);
    r->err = ct_read_file(errf, NULL);
    if (!r->out)
        r->out = strdup("");
    if (!r->err)
        r->err = strdup("");
    unlink(outf);
    unlink(errf);
}

/* Checks the --json output: one object per line, for the operations in ops
 * (comma-separated) in order, each with `requests` requests, no error, a
 * positive rate and ordered percentiles. */
static void expect_json(const ct_run_t *r, const char *ops, double requests)
{
    char want[128];
    snprintf(want, sizeof(want), "%s", ops);
    char *save = NULL, *op = strtok_r(want, ",", &save);
    const char *line = r->out;
    int lines = 0;
    while (*line) {
        const char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "--json output does not end with a newline:\n%s", r->out);
        ck_assert_msg(op != NULL, "more JSON lines than operations:\n%s", r->out);
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
        ck_assert_msg(j != NULL, "not JSON: %.*s", (int)(nl - line), line);
        const cJSON *name = cJSON_GetObjectItem(j, "op");
        ck_assert_msg(cJSON_IsString(name) && strcmp(name->valuestring, op) == 0,
                      "line %d is not for %s: %.*s", lines + 1, op, (int)(nl - line), line);
        double p50 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "p50_ms"));
        double p90 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "p90_ms"));
        double p99 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "p99_ms"));
        double p999 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "p999_ms"));
        double max = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "max_ms"));
        ck_assert_msg(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "requests")) == requests &&
                          cJSON_GetNumberValue(cJSON_GetObjectItem(j, "errors")) == 0 &&
                          cJSON_GetNumberValue(cJSON_GetObjectItem(j, "rate")) > 0 && p50 > 0 &&
                          p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
                      "implausible figures for %s: %.*s", op, (int)(nl - line), line);
        cJSON_Delete(j);
        lines++;
        line = nl + 1;
        op = strtok_r(NULL, ",", &save);
    }
    ck_assert_msg(op == NULL, "no JSON line for %s:\n%s", op ? op : "", r->out);
}

/* ---- Against streamdbd ---- */

START_TEST(test_bench_every_op_unix)
{
    ct_daemon_t d;
    ct_daemon_start(&d, "d", NULL, NULL);
    ct_run_t r;
    const char *args[] = { "-s", d.sock, "-t", "ping,put,get,mixed,search", "-n", "300", "-r",
                           "40", "-c", "3", "-P", "8", "--size", "3000", "--json", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    expect_json(&r, "ping,put,get,mixed,search", 300);
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

/* TCP, two threads, chunked values (--size over the server's chunk_bytes of
 * 4096 here: several PUT_DATA and DATA frames per value), the text output. */
START_TEST(test_bench_tcp_threads)
{
    ct_daemon_t d;
    ct_daemon_start(&d, "d", "{\"chunk_bytes\": 4096}", NULL);
    char port[16];
    snprintf(port, sizeof(port), "%d", d.port);
    ct_run_t r;
    const char *args[] = { "-h", "127.0.0.1", "-p", port, "-t", "get,search", "-n", "200", "-r",
                           "25", "-c", "4", "-T", "2", "-P", "4", "--size", "10000", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ck_assert_msg(strstr(r.out, "====== GET ======") && strstr(r.out, "====== SEARCH ======") &&
                      strstr(r.out, "200 requests completed") && strstr(r.out, "errors: 0"),
                  "unexpected report:\n%s", r.out);
    CT_ERR_HAS(&r, "populated");
    ct_run_free(&r);
    /* The key space is there now: --no-populate reads it as it is. */
    const char *again[] = { "-h", "127.0.0.1", "-p", port, "-t", "get", "-n", "50", "-r", "25",
                            "-c", "2", "-P", "3", "--size", "10000", "--no-populate", "-q", NULL };
    bench_run(&r, again);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ck_assert_msg(strncmp(r.out, "GET: ", 5) == 0 && strstr(r.out, "requests per second"),
                  "-q output: %s", r.out);
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

/* -d: each operation runs until its deadline, then drains what is in flight.
 * Only the outcome is asserted (requests issued at the start always finish). */
START_TEST(test_bench_duration)
{
    ct_daemon_t d;
    ct_daemon_start(&d, "d", NULL, NULL);
    ct_run_t r;
    const char *args[] = { "-s", d.sock, "-t", "ping,get", "-d", "0.2", "-r", "20", "-c", "2",
                           "-P", "2", "--size", "64", "--json", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    cJSON *j = cJSON_Parse(r.out);   /* the first line: ping */
    ck_assert_msg(j == NULL || cJSON_GetNumberValue(cJSON_GetObjectItem(j, "requests")) > 0,
                  "no request completed: %s", r.out);
    cJSON_Delete(j);
    ck_assert_msg(strstr(r.out, "\"op\":\"ping\"") && strstr(r.out, "\"op\":\"get\"") &&
                      strstr(r.out, "\"errors\":0,") && !strstr(r.out, "\"requests\":0,"),
                  "unexpected --json output:\n%s", r.out);
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

/* -a sends the token in HELLO; a wrong one is refused with the server's words. */
START_TEST(test_bench_token)
{
    const char *tf = ct_path("token");
    ct_write_file(tf, "s3cret\n", 7);
    ct_daemon_t d;
    ct_daemon_start(&d, "d", NULL, tf);
    ct_run_t r;
    const char *good[] = { "-s", d.sock, "-a", "s3cret", "-t", "ping,put", "-n", "20", "-r", "5",
                           "-c", "2", "-P", "2", "-q", NULL };
    bench_run(&r, good);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ct_run_free(&r);
    const char *bad[] = { "-s", d.sock, "-a", "wrong", "-t", "ping", "-n", "5", "-c", "1", NULL };
    bench_run(&r, bad);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "the server refused the session: AUTH");
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

/* GET on a key space that was never written: every NOT_FOUND is an error. */
START_TEST(test_bench_missing_keys)
{
    ct_daemon_t d;
    ct_daemon_start(&d, "d", NULL, NULL);
    ct_run_t r;
    const char *args[] = { "-s", d.sock, "-t", "get", "-n", "20", "-r", "10", "-c", "2",
                           "--no-populate", "-q", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "ERROR NOT_FOUND");
    CT_ERR_HAS(&r, "20 error(s)");
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

START_TEST(test_bench_unreachable)
{
    ct_run_t r;
    const char *args[] = { "-s", ct_path("nobody.sock"), "-t", "ping", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "cannot connect to unix:");
    CT_ERR_HAS(&r, "No such file or directory");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_bad_options)
{
    static const struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        { { "-t", "ping,bogus", NULL }, "unknown operation \"bogus\"" },
        { { "--size", "8", NULL }, "--size: expected a number from 16" },
        { { "-c", "0", NULL }, "-c: expected a number from 1" },
        { { "-P", "x", NULL }, "-P: expected a number" },
        { { "-n", "10", "-d", "1", NULL }, "give -n or -d, not both" },
        { { "-d", "-1", NULL }, "-d: expected seconds" },
        { { "-s", "/x", "-p", "1", NULL }, "give -s or -h/-p, not both" },
        { { "-c", "2", "-T", "3", NULL }, "more threads than connections" },
        { { "--wat", NULL }, "unknown option --wat" },
        { { "-c", NULL }, "option -c needs a value" },
        { { "--redis", "-t", "get,search", NULL }, "-t search: not available with --redis" },
        { { "--protocol", "memcache", NULL }, "--protocol: expected streamdb or resp" },
        { { "--pipeline-style", "burst", NULL }, "--pipeline-style: expected window or batch" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_run_t r;
        bench_run(&r, cases[i].args);
        ck_assert_msg(r.status == 2, "case %zu: exit %d; stderr: %s", i, r.status, r.err);
        CT_ERR_HAS(&r, cases[i].msg);
        ct_run_free(&r);
    }
}
END_TEST

/* ---- Against a fake server that gets one response wrong ---- */

enum { BAD_BYTE, BAD_CRC, BAD_ID, BAD_ORDER };

typedef struct {
    int mode, listen_fd;
    char sock[200];
    pthread_t thread;
} bad_server_t;

#define BAD_KEYS 8

static void bad_send_get(int fd, uint32_t rid, const uint8_t *v, size_t len, int mode)
{
    static uint8_t copy[65536];
    memcpy(copy, v, len);
    if (mode == BAD_BYTE)
        copy[len / 2] ^= 0x20;   /* the CRC below matches: only the bytes can tell */
    sdb_proto_msg_t g = { .opcode = SDB_OP_GET_HEADER, .request_id = rid };
    g.u.doc.version = 1;
    g.u.doc.size = len;
    g.u.doc.crc32 = (uint32_t)crc32(0L, copy, (uInt)len) ^ (mode == BAD_CRC ? 1u : 0u);
    ct_fake_send(fd, &g);
    sdb_proto_msg_t dm = { .opcode = SDB_OP_DATA, .request_id = rid };
    dm.u.raw.ptr = copy;
    dm.u.raw.len = len;
    ct_fake_send(fd, &dm);
    sdb_proto_msg_t end = { .opcode = SDB_OP_END, .request_id = rid };
    ct_fake_send(fd, &end);
}

/* Reads the next frame (1), or returns 0 / a negative code at the end.
 * Unlike ct_fake_read_frame, the payload stays where the decoder put it
 * until the next call (buf[*off..*have) is the input not yet fed). */
static int bad_read_frame(int fd, sdb_proto_decoder_t *dec, uint8_t *buf, size_t *off,
                          size_t *have, sdb_proto_frame_t *f)
{
    for (;;) {
        if (*off < *have) {
            size_t used = 0;
            int rc = sdb_proto_decoder_feed(dec, buf + *off, *have - *off, &used, f);
            *off += used;
            if (rc != 0)
                return rc;
            continue;
        }
        ssize_t n = recv(fd, buf, 65536, 0);
        if (n <= 0)
            return 0;
        *off = 0;
        *have = (size_t)n;
    }
}

/* One connection: HELLO_OK, PUTs stored and answered DOC, GETs answered
 * from what was stored; the first GET (BAD_BYTE, BAD_CRC, BAD_ID) or the
 * first two (BAD_ORDER: answered second first) go wrong. */
static void *bad_main(void *arg)
{
    bad_server_t *bs = arg;
    int fd = accept(bs->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    sdb_proto_decoder_t dec;
    sdb_proto_decoder_init(&dec, 1u << 20);
    uint8_t *buf = malloc(65536);
    size_t have = 0, off = 0;
    sdb_proto_frame_t f;
    sdb_proto_msg_t m;
    char paths[BAD_KEYS][64];
    uint8_t vals[BAD_KEYS][1024];
    size_t lens[BAD_KEYS];
    int nkeys = 0, cur = -1, gets = 0;
    uint32_t held_rid = 0;
    int held_key = -1;
    while (bad_read_frame(fd, &dec, buf, &off, &have, &f) == 1 && sdb_proto_decode(&f, &m) == 0) {
        uint32_t rid = m.request_id;
        if (m.opcode == SDB_OP_HELLO) {
            sdb_proto_msg_t h = { .opcode = SDB_OP_HELLO_OK, .request_id = rid };
            h.u.hello_ok.version = 1;
            h.u.hello_ok.max_frame_bytes = 1u << 20;
            h.u.hello_ok.chunk_bytes = 65536;
            h.u.hello_ok.max_document_bytes = 1ull << 20;
            h.u.hello_ok.max_inflight = 64;
            h.u.hello_ok.server.ptr = "badserver/1";
            h.u.hello_ok.server.len = 11;
            ct_fake_send(fd, &h);
        } else if (m.opcode == SDB_OP_PUT_BEGIN) {
            size_t len = m.u.put_begin.path.len < 63 ? m.u.put_begin.path.len : 63;
            for (cur = 0; cur < nkeys; cur++)
                if (strlen(paths[cur]) == len && memcmp(paths[cur], m.u.put_begin.path.ptr, len) == 0)
                    break;
            if (cur == nkeys && nkeys < BAD_KEYS)
                nkeys++;
            if (cur == BAD_KEYS)
                break;
            memcpy(paths[cur], m.u.put_begin.path.ptr, len);
            paths[cur][len] = '\0';
            lens[cur] = 0;
        } else if (m.opcode == SDB_OP_PUT_DATA && cur >= 0) {
            if (lens[cur] + m.u.raw.len > sizeof(vals[cur]))
                break;
            memcpy(vals[cur] + lens[cur], m.u.raw.ptr, m.u.raw.len);
            lens[cur] += m.u.raw.len;
        } else if (m.opcode == SDB_OP_PUT_END && cur >= 0) {
            sdb_proto_msg_t d = { .opcode = SDB_OP_DOC, .request_id = rid };
            d.u.doc.version = 1;
            d.u.doc.size = lens[cur];
            d.u.doc.crc32 = (uint32_t)crc32(0L, vals[cur], (uInt)lens[cur]);
            ct_fake_send(fd, &d);
            cur = -1;
        } else if (m.opcode == SDB_OP_GET) {
            int k;
            for (k = 0; k < nkeys; k++)
                if (strlen(paths[k]) == m.u.path.len &&
                    memcmp(paths[k], m.u.path.ptr, m.u.path.len) == 0)
                    break;
            if (k == nkeys)
                break;
            gets++;
            if (bs->mode == BAD_ORDER && gets == 1) {
                held_rid = rid;   /* answered after the next one */
                held_key = k;
                continue;
            }
            int mode = gets == 1 ? bs->mode : -1;
            bad_send_get(fd, mode == BAD_ID ? rid + 1000 : rid, vals[k], lens[k], mode);
            if (held_key >= 0) {
                bad_send_get(fd, held_rid, vals[held_key], lens[held_key], -1);
                held_key = -1;
            }
        } else {
            break;
        }
    }
    free(buf);
    sdb_proto_decoder_free(&dec);
    close(fd);
    return NULL;
}

static void bad_start(bad_server_t *bs, int mode)
{
    memset(bs, 0, sizeof(*bs));
    bs->mode = mode;
    snprintf(bs->sock, sizeof(bs->sock), "%s/bad.%ld.sock", ct_dir, (long)getpid());
    bs->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    ck_assert(strlen(bs->sock) < sizeof(a.sun_path));
    memcpy(a.sun_path, bs->sock, strlen(bs->sock) + 1);
    ck_assert(bs->listen_fd >= 0);
    ck_assert(bind(bs->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(bs->listen_fd, 4) == 0);
    ck_assert(pthread_create(&bs->thread, NULL, bad_main, bs) == 0);
}

static void bad_stop(bad_server_t *bs)
{
    shutdown(bs->listen_fd, SHUT_RDWR);
    pthread_join(bs->thread, NULL);
    close(bs->listen_fd);
    unlink(bs->sock);
}

/* Runs `streamdb-bench -t get` (one connection, pipeline 4, 4 keys of 200
 * bytes) against a fake server in mode, and returns the run. */
static void bad_run(ct_run_t *r, int mode)
{
    bad_server_t bs;
    bad_start(&bs, mode);
    const char *args[] = { "-s", bs.sock, "-t", "get", "-n", "12", "-r", "4", "-c", "1", "-P",
                           "4", "--size", "200", "-q", NULL };
    bench_run(r, args);
    bad_stop(&bs);
}

START_TEST(test_bench_fake_server_sane)
{
    /* The fake server itself is right when it means to be: mode -1 never fires. */
    ct_run_t r;
    bad_run(&r, -1);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_wrong_byte)
{
    ct_run_t r;
    bad_run(&r, BAD_BYTE);
    ck_assert_msg(r.status == 1, "exit %d; stdout %s; stderr:\n%s", r.status, r.out, r.err);
    CT_ERR_HAS(&r, "byte 100 of 200 differs from the value written");
    CT_ERR_HAS(&r, "1 error(s)");
    ck_assert_msg(strstr(r.out, "(ERRORS)") != NULL, "the report hides the error: %s", r.out);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_wrong_crc)
{
    ct_run_t r;
    bad_run(&r, BAD_CRC);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "CRC32 of the 200 bytes received is");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_wrong_request_id)
{
    ct_run_t r;
    bad_run(&r, BAD_ID);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "wrong request id");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_out_of_order)
{
    ct_run_t r;
    bad_run(&r, BAD_ORDER);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "responses out of order");
    ct_run_free(&r);
}
END_TEST

/* ---- --redis against a real redis-server ---- */

typedef struct {
    pid_t pid;
    char sock[200];
} redis_t;

/* 1 when redis-server is in $PATH. */
static int redis_installed(void)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof(dir), "%.*s/redis-server", (int)n, path);
        if (n > 0 && access(dir, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Starts redis-server without persistence, listening only on a Unix socket in
 * ct_dir/<name> (no TCP port: --port 0); password may be NULL.  Aborts when it
 * does not come up. */
static void redis_start(redis_t *r, const char *name, const char *password)
{
    char dir[160], log[300];
    snprintf(dir, sizeof(dir), "%s/%s", ct_dir, name);
    mkdir(dir, 0700);
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", dir);
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[] = { "redis-server", "--port", "0", "--unixsocket", r->sock,
                               "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                               "--dir", dir, "--logfile", log, "--daemonize", "no",
                               password ? "--requirepass" : NULL, password, NULL };
        int in = open("/dev/null", O_RDWR);
        if (in >= 0) {
            dup2(in, 0);
            dup2(in, 1);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 3000; i++) {   /* a safety net only: the loop ends when it answers */
        if (ct_can_connect(r->sock))
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "redis-server exited during startup (status %d); see %s\n", st, log);
            abort();
        }
        ct_sleep_ms(10);
    }
    fprintf(stderr, "redis-server did not come up on %s\n", r->sock);
    kill(pid, SIGKILL);
    abort();
}

static void redis_stop(redis_t *r)
{
    int st;
    kill(r->pid, SIGTERM);
    waitpid(r->pid, &st, 0);
}

#define NEED_REDIS()                                                                              \
    do {                                                                                          \
        if (!redis_installed())                                                                   \
            CK_SKIP("redis-server is not installed (scripts/install-deps.sh redis-server)");      \
    } while (0)

/* Every operation --redis has, pipeline > 1, values over a TCP segment. */
START_TEST(test_bench_redis_every_op)
{
    NEED_REDIS();
    redis_t rs;
    redis_start(&rs, "redis", NULL);
    ct_run_t r;
    const char *args[] = { "--redis", "-s", rs.sock, "-n", "300", "-r", "40", "-c", "3", "-P",
                           "8", "--size", "3000", "--json", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    expect_json(&r, "ping,put,get,mixed", 300);   /* the default list without search */
    ck_assert_msg(strstr(r.out, "\"protocol\":\"resp\",\"pipeline_style\":\"window\""),
                  "--json does not say RESP, window: %s", r.out);
    ct_run_free(&r);
    redis_stop(&rs);
}
END_TEST

/* Batch style, two threads, a request count that is not a multiple of P;
 * then the key space as it is (--no-populate), read with the text report. */
START_TEST(test_bench_redis_batch_threads)
{
    NEED_REDIS();
    redis_t rs;
    redis_start(&rs, "redis", NULL);
    ct_run_t r;
    const char *args[] = { "--protocol", "resp", "-s", rs.sock, "-t", "get,mixed", "-n", "203",
                           "-r", "25", "-c", "4", "-T", "2", "-P", "5", "--pipeline-style",
                           "batch", "--size", "100", "--json", NULL };
    bench_run(&r, args);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    expect_json(&r, "get,mixed", 203);
    ck_assert_msg(strstr(r.out, "\"pipeline_style\":\"batch\""), "not batch: %s", r.out);
    ct_run_free(&r);
    const char *again[] = { "--redis", "-s", rs.sock, "-t", "get", "-n", "40", "-r", "25", "-c",
                            "2", "-P", "3", "--size", "100", "--no-populate", NULL };
    bench_run(&r, again);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ck_assert_msg(strstr(r.out, "40 requests completed") && strstr(r.out, "errors: 0") &&
                      strstr(r.out, "RESP (Redis)"), "unexpected report:\n%s", r.out);
    ct_run_free(&r);
    /* Another --size than the values stored: the first bulk's length is wrong. */
    const char *other[] = { "--redis", "-s", rs.sock, "-t", "get", "-n", "10", "-r", "25", "-c",
                            "1", "--size", "101", "--no-populate", "-q", NULL };
    bench_run(&r, other);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "a bulk reply of 100 bytes, the key space holds values of 101");
    ct_run_free(&r);
    redis_stop(&rs);
}
END_TEST

/* -a is the AUTH password; a wrong or missing one exits 1 with Redis's words;
 * keys never written are nil replies, each an error. */
START_TEST(test_bench_redis_auth_and_nil)
{
    NEED_REDIS();
    redis_t rs;
    redis_start(&rs, "redis", "s3cret");
    ct_run_t r;
    const char *good[] = { "--redis", "-s", rs.sock, "-a", "s3cret", "-t", "ping,put", "-n", "20",
                           "-r", "5", "-c", "2", "-P", "2", "-q", NULL };
    bench_run(&r, good);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ct_run_free(&r);
    const char *bad[] = { "--redis", "-s", rs.sock, "-a", "wrong", "-t", "ping", "-n", "5", "-c",
                          "1", NULL };
    bench_run(&r, bad);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "the server refused AUTH: WRONGPASS");
    ct_run_free(&r);
    /* $STREAMDB_TOKEN is streamdbd's token: --redis never sends it. */
    setenv("STREAMDB_TOKEN", "s3cret", 1);
    bench_keep_token = 1;
    const char *none[] = { "--redis", "-s", rs.sock, "-t", "ping", "-n", "5", "-c", "1", NULL };
    bench_run(&r, none);
    bench_keep_token = 0;
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "the server refused PING: NOAUTH");
    ct_run_free(&r);
    const char *nil[] = { "--redis", "-s", rs.sock, "-a", "s3cret", "-t", "get", "-n", "12",
                          "-r", "7", "--no-populate", "-c", "2", "-P", "3", "-q", NULL };
    bench_run(&r, nil);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "nil reply: the key does not exist");
    CT_ERR_HAS(&r, "12 error(s)");
    ct_run_free(&r);
    redis_stop(&rs);
}
END_TEST

/* ---- --redis against a fake RESP server ---- */

enum { RBAD_BYTE, RBAD_NIL, RBAD_ERR, RPIPE };

typedef struct {
    int mode, listen_fd;
    char sock[200];
    pthread_t thread;
    int pipeline, requests, timeout_ms;   /* RPIPE */
    int early;                            /* RPIPE: requests read before a batch was answered */
    int pings;                            /* RPIPE: requests read */
} resp_server_t;

typedef struct {
    int fd;
    size_t off, have;
    uint8_t buf[65536];
} rin_t;

/* Makes input available: 1, or 0 at the end of the stream. */
static int rin_fill(rin_t *in)
{
    if (in->off < in->have)
        return 1;
    ssize_t n = recv(in->fd, in->buf, sizeof(in->buf), 0);
    if (n <= 0)
        return 0;
    in->off = 0;
    in->have = (size_t)n;
    return 1;
}

/* Reads n bytes into out (NULL: skips them); 1, or 0 at the end. */
static int rin_bytes(rin_t *in, uint8_t *out, size_t n)
{
    while (n > 0) {
        if (!rin_fill(in))
            return 0;
        size_t take = in->have - in->off < n ? in->have - in->off : n;
        if (out) {
            memcpy(out, in->buf + in->off, take);
            out += take;
        }
        in->off += take;
        n -= take;
    }
    return 1;
}

/* Reads a line "<c><number>\r\n" with c the expected type; returns the
 * number, or -1 at the end or on anything else. */
static long rin_header(rin_t *in, char c)
{
    char line[32];
    size_t len = 0;
    for (;;) {
        uint8_t ch;
        if (!rin_bytes(in, &ch, 1) || len + 1 >= sizeof(line))
            return -1;
        line[len++] = (char)ch;
        if (ch == '\n')
            break;
    }
    line[len] = '\0';
    if (line[0] != c || len < 4 || line[len - 2] != '\r')
        return -1;
    return strtol(line + 1, NULL, 10);
}

/* One command: up to 3 arguments, each NUL-terminated in arg[i] (cap 4096). */
typedef struct {
    int argc;
    size_t len[3];
    char arg[3][4096];
} rcmd_t;

static int rin_command(rin_t *in, rcmd_t *c)
{
    long argc = rin_header(in, '*');
    if (argc < 1 || argc > 3)
        return 0;
    c->argc = (int)argc;
    for (int i = 0; i < argc; i++) {
        long len = rin_header(in, '$');
        uint8_t crlf[2];
        if (len < 0 || len >= 4096 || !rin_bytes(in, (uint8_t *)c->arg[i], (size_t)len) ||
            !rin_bytes(in, crlf, 2))
            return 0;
        c->arg[i][len] = '\0';
        c->len[i] = (size_t)len;
    }
    return 1;
}

static void rsend(int fd, const void *p, size_t n)
{
    ck_assert(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* RPIPE: PINGs only.  The server keeps P requests unanswered when it can:
 * with P read and unanswered it answers only the oldest and reads on.  A
 * window client then sends the next request at once; a batch client waits
 * for the whole batch, and the server answers the rest when nothing has come
 * for timeout_ms (so only a batch client ever waits for that; the outcome
 * does not depend on it).  A request read while the replies of an earlier
 * batch were not all sent is counted in early (never, for a batch client). */
static void rpipe_serve(resp_server_t *rs, rin_t *in, rcmd_t *cmd)
{
    int read_n = 0, sent = 0, P = rs->pipeline, N = rs->requests;
    while (sent < N) {
        int outstanding = read_n - sent;
        if (outstanding < P && read_n < N) {
            if (outstanding > 0 && in->off == in->have) {
                struct pollfd pf = { .fd = in->fd, .events = POLLIN };
                if (poll(&pf, 1, rs->timeout_ms) == 0) {
                    for (; sent < read_n; sent++)
                        rsend(in->fd, "+PONG\r\n", 7);
                    continue;
                }
            }
            if (!rin_command(in, cmd) || strcasecmp(cmd->arg[0], "PING") != 0)
                return;
            read_n++;
            rs->pings = read_n;
            if (sent < (read_n - 1) / P * P)
                rs->early++;
            continue;
        }
        int upto = read_n == N ? read_n : sent + 1;
        for (; sent < upto; sent++)
            rsend(in->fd, "+PONG\r\n", 7);
    }
}

/* One connection: PING, SET (stored) and GET (from what was stored) answered
 * as Redis would, except the first GET in modes RBAD_*: a flipped byte, nil,
 * or an error reply. */
static void *resp_main(void *arg)
{
    resp_server_t *rs = arg;
    int fd = accept(rs->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    rin_t *in = calloc(1, sizeof(*in));
    rcmd_t *cmd = malloc(sizeof(*cmd));
    static char keys[BAD_KEYS][64], vals[BAD_KEYS][1024];
    static size_t lens[BAD_KEYS];
    int nkeys = 0, gets = 0;
    in->fd = fd;
    /* The handshake: PING. */
    if (rin_command(in, cmd) && strcasecmp(cmd->arg[0], "PING") == 0) {
        rsend(fd, "+PONG\r\n", 7);
        if (rs->mode == RPIPE)
            rpipe_serve(rs, in, cmd);
        else
            while (rin_command(in, cmd)) {
                const char *name = cmd->arg[0];
                int k = 0;
                if (cmd->argc >= 2)
                    for (k = 0; k < nkeys && strcmp(keys[k], cmd->arg[1]) != 0; k++)
                        ;
                if (strcasecmp(name, "PING") == 0) {
                    rsend(fd, "+PONG\r\n", 7);
                } else if (strcasecmp(name, "SET") == 0 && cmd->argc == 3 &&
                           cmd->len[2] <= sizeof(vals[0]) && cmd->len[1] < sizeof(keys[0])) {
                    if (k == nkeys && nkeys == BAD_KEYS)
                        break;
                    if (k == nkeys)
                        nkeys++;
                    strcpy(keys[k], cmd->arg[1]);
                    memcpy(vals[k], cmd->arg[2], cmd->len[2]);
                    lens[k] = cmd->len[2];
                    rsend(fd, "+OK\r\n", 5);
                } else if (strcasecmp(name, "GET") == 0 && cmd->argc == 2 && k < nkeys) {
                    gets++;
                    if (gets == 1 && rs->mode == RBAD_NIL) {
                        rsend(fd, "$-1\r\n", 5);
                        continue;
                    }
                    if (gets == 1 && rs->mode == RBAD_ERR) {
                        rsend(fd, "-ERR injected failure\r\n", 23);
                        continue;
                    }
                    char head[32], v[1024];
                    int n = snprintf(head, sizeof(head), "$%zu\r\n", lens[k]);
                    memcpy(v, vals[k], lens[k]);
                    if (gets == 1 && rs->mode == RBAD_BYTE)
                        v[lens[k] / 2] ^= 0x20;
                    rsend(fd, head, (size_t)n);
                    rsend(fd, v, lens[k]);
                    rsend(fd, "\r\n", 2);
                } else {
                    break;
                }
            }
    }
    free(in);
    free(cmd);
    close(fd);
    return NULL;
}

static void resp_start(resp_server_t *rs, int mode)
{
    rs->mode = mode;
    snprintf(rs->sock, sizeof(rs->sock), "%s/resp.%ld.sock", ct_dir, (long)getpid());
    unlink(rs->sock);
    rs->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    ck_assert(strlen(rs->sock) < sizeof(a.sun_path));
    memcpy(a.sun_path, rs->sock, strlen(rs->sock) + 1);
    ck_assert(rs->listen_fd >= 0);
    ck_assert(bind(rs->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(rs->listen_fd, 4) == 0);
    ck_assert(pthread_create(&rs->thread, NULL, resp_main, rs) == 0);
}

static void resp_stop(resp_server_t *rs)
{
    shutdown(rs->listen_fd, SHUT_RDWR);
    pthread_join(rs->thread, NULL);
    close(rs->listen_fd);
    unlink(rs->sock);
}

/* `streamdb-bench --redis -t get` (one connection, pipeline 4, 4 keys of 200
 * bytes) against the fake RESP server in mode. */
static void resp_bad_run(ct_run_t *r, int mode)
{
    resp_server_t rs;
    memset(&rs, 0, sizeof(rs));
    resp_start(&rs, mode);
    const char *args[] = { "--redis", "-s", rs.sock, "-t", "get", "-n", "12", "-r", "4", "-c",
                           "1", "-P", "4", "--size", "200", "-q", NULL };
    bench_run(r, args);
    resp_stop(&rs);
}

START_TEST(test_bench_resp_fake_sane)
{
    ct_run_t r;
    resp_bad_run(&r, -1);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_resp_wrong_byte)
{
    ct_run_t r;
    resp_bad_run(&r, RBAD_BYTE);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "byte 100 of 200 differs from the value written");
    CT_ERR_HAS(&r, "1 error(s)");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_resp_nil)
{
    ct_run_t r;
    resp_bad_run(&r, RBAD_NIL);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "nil reply: the key does not exist");
    CT_ERR_HAS(&r, "1 error(s)");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bench_resp_error_reply)
{
    ct_run_t r;
    resp_bad_run(&r, RBAD_ERR);
    ck_assert_msg(r.status == 1, "exit %d; stderr:\n%s", r.status, r.err);
    CT_ERR_HAS(&r, "error reply \"ERR injected failure\"");
    CT_ERR_HAS(&r, "1 error(s)");
    ct_run_free(&r);
}
END_TEST

/* Runs 8 PINGs with -P 4 in style against the RPIPE server; returns how many
 * requests came before the previous batch was fully answered. */
static int pipe_run(const char *style, int timeout_ms)
{
    resp_server_t rs;
    memset(&rs, 0, sizeof(rs));
    rs.pipeline = 4;
    rs.requests = 8;
    rs.timeout_ms = timeout_ms;
    resp_start(&rs, RPIPE);
    ct_run_t r;
    const char *args[] = { "--redis", "-s", rs.sock, "-t", "ping", "-n", "8", "-c", "1", "-P",
                           "4", "--pipeline-style", style, "-q", NULL };
    bench_run(&r, args);
    resp_stop(&rs);
    ck_assert_msg(r.status == 0, "exit %d; stderr:\n%s", r.status, r.err);
    ck_assert_int_eq(rs.pings, 8);
    ct_run_free(&r);
    return rs.early;
}

START_TEST(test_bench_pipeline_batch)
{
    /* Every request of the second batch comes after all four replies. */
    ck_assert_int_eq(pipe_run("batch", 200), 0);
}
END_TEST

START_TEST(test_bench_pipeline_window)
{
    /* The default refills after each reply: requests 5, 6 and 7 come after
     * 1, 2 and 3 replies, before the first four are all answered (the
     * server's timeout is a safety net here, never reached). */
    ck_assert_int_eq(pipe_run("window", 60000), 3);
}
END_TEST

Suite *suite_bench(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("daemon");
    tcase_add_unchecked_fixture(tc, ct_dir_setup, ct_dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bench_every_op_unix);
    tcase_add_test(tc, test_bench_tcp_threads);
    tcase_add_test(tc, test_bench_missing_keys);
    tcase_add_test(tc, test_bench_duration);
    tcase_add_test(tc, test_bench_token);
    suite_add_tcase(s, tc);

    tc = tcase_create("checks");
    tcase_add_unchecked_fixture(tc, ct_dir_setup, ct_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bench_unreachable);
    tcase_add_test(tc, test_bench_bad_options);
    tcase_add_test(tc, test_bench_fake_server_sane);
    tcase_add_test(tc, test_bench_wrong_byte);
    tcase_add_test(tc, test_bench_wrong_crc);
    tcase_add_test(tc, test_bench_wrong_request_id);
    tcase_add_test(tc, test_bench_out_of_order);
    tcase_add_test(tc, test_bench_resp_fake_sane);
    tcase_add_test(tc, test_bench_resp_wrong_byte);
    tcase_add_test(tc, test_bench_resp_nil);
    tcase_add_test(tc, test_bench_resp_error_reply);
    tcase_add_test(tc, test_bench_pipeline_batch);
    tcase_add_test(tc, test_bench_pipeline_window);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, ct_dir_setup, ct_dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bench_redis_every_op);
    tcase_add_test(tc, test_bench_redis_batch_threads);
    tcase_add_test(tc, test_bench_redis_auth_and_nil);
    suite_add_tcase(s, tc);
    return s;
}
