/*
 * check_client.c -- the client library (include/streamdb_client.h): address
 * parsing, error codes and texts, every operation against the real streamdbd,
 * streaming without holding documents in memory, early upload errors, and the
 * failures a client must report clearly (refused, wrong token, another
 * protocol or version, a silent server, a server closing mid-transfer, bad
 * CRC) through scripted fake servers.
 */
#include <sys/resource.h>

#include "cli_test.h"
#include "client/client_int.h"

#define CK_RC(expr, want)                                                                    \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        ck_assert_msg(rc_ == (want), "%s returned %d (%s: %s), expected %d (%s)", #expr, rc_, \
                      sdbc_strerror(rc_), sdbc_last_error_message(), (int)(want),            \
                      sdbc_strerror(want));                                                  \
    } while (0)
#define CK_OK(expr) CK_RC(expr, SDB_OK)
#define MSG_HAS(text)                                                                        \
    ck_assert_msg(strstr(sdbc_last_error_message(), (text)) != NULL,                         \
                  "message \"%s\" lacks \"%s\"", sdbc_last_error_message(), (text))

static ct_daemon_t g_daemon;

static void daemon_setup(void)
{
    ct_dir_setup();
    ct_daemon_start(&g_daemon, "d", NULL, NULL);
}

static void daemon_teardown(void)
{
    int st = ct_daemon_stop(&g_daemon);
    if (st != 0)
        fprintf(stderr, "warning: streamdbd exited with status %d\n", st);
    ct_dir_teardown();
}

static void limits_setup(void)
{
    ct_dir_setup();
    ct_daemon_start(&g_daemon, "d", "{ \"engine\": { \"max_document_size\": 1048576 } }\n", NULL);
}

static void auth_setup(void)
{
    ct_dir_setup();
    ct_write_file(ct_path("token"), "s3cret\n", 7);
    ct_daemon_start(&g_daemon, "d", NULL, ct_path("token"));
}

static sdbc_t *connect_daemon(void)
{
    sdbc_t *c = NULL;
    CK_OK(sdbc_connect(g_daemon.unix_addr, NULL, &c));
    ck_assert_ptr_nonnull(c);
    return c;
}

/* ---- Addresses ---- */

START_TEST(test_parse_address)
{
    static const struct {
        const char *in;
        int kind;
        const char *host_or_path;
        int port;
        const char *norm;
    } good[] = {
        { "127.0.0.1:7878", CLIENT_ADDR_TCP, "127.0.0.1", 7878, "127.0.0.1:7878" },
        { "localhost", CLIENT_ADDR_TCP, "localhost", 7878, "localhost:7878" },
        { "db.example.com:1", CLIENT_ADDR_TCP, "db.example.com", 1, "db.example.com:1" },
        { "[::1]:9000", CLIENT_ADDR_TCP, "::1", 9000, "[::1]:9000" },
        { "[fe80::1]", CLIENT_ADDR_TCP, "fe80::1", 7878, "[fe80::1]:7878" },
        { "streamdb://10.0.0.2:65535", CLIENT_ADDR_TCP, "10.0.0.2", 65535, "10.0.0.2:65535" },
        { "streamdb://host", CLIENT_ADDR_TCP, "host", 7878, "host:7878" },
        { "streamdb://[::1]:7/", CLIENT_ADDR_TCP, "::1", 7, "[::1]:7" },
        { "unix:///run/streamdb/streamdbd.sock", CLIENT_ADDR_UNIX, "/run/streamdb/streamdbd.sock",
          0, "unix:/run/streamdb/streamdbd.sock" },
        { "unix:rel.sock", CLIENT_ADDR_UNIX, "rel.sock", 0, "unix:rel.sock" },
        { "./data/streamdbd.sock", CLIENT_ADDR_UNIX, "./data/streamdbd.sock", 0,
          "unix:./data/streamdbd.sock" },
        { "/tmp/x.sock", CLIENT_ADDR_UNIX, "/tmp/x.sock", 0, "unix:/tmp/x.sock" },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        client_addr_t a;
        char norm[320];
        CK_OK(client_parse_address(good[i].in, &a));
        ck_assert_int_eq(a.kind, good[i].kind);
        if (a.kind == CLIENT_ADDR_TCP) {
            ck_assert_str_eq(a.host, good[i].host_or_path);
            ck_assert_int_eq(a.port, good[i].port);
        } else {
            ck_assert_str_eq(a.path, good[i].host_or_path);
        }
        client_format_address(&a, norm, sizeof(norm));
        ck_assert_str_eq(norm, good[i].norm);
    }
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        { "", "empty server address" },
        { "host:", "empty port" },
        { "host:0", "not in 1..65535" },
        { "host:65536", "not in 1..65535" },
        { "host:12ab", "is not a number" },
        { "::1", "brackets" },
        { "[::1", "missing ']'" },
        { "[::1]x", "expected ':PORT'" },
        { ":7878", "missing host" },
        { "http://host:80", "unknown URL scheme \"http\"" },
        { "streamdb://host:1/path", "has no path" },
        { "unix://", "empty socket path" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        client_addr_t a;
        CK_RC(client_parse_address(bad[i].in, &a), SDB_EINVAL);
        MSG_HAS(bad[i].why);
    }
    client_addr_t a;
    CK_RC(client_parse_address(NULL, &a), SDB_EINVAL);
    char longp[200] = "unix:/";
    memset(longp + 6, 'x', 120);
    CK_RC(client_parse_address(longp, &a), SDB_EINVAL);
    MSG_HAS("limited to 107 bytes");
}
END_TEST

/* A bare name is a socket when such a socket exists, else a host. */
START_TEST(test_bare_socket_name)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_SILENT);
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_int_eq(chdir(ct_dir), 0);
    const char *base = strrchr(fk.sock, '/') + 1;
    client_addr_t a;
    CK_OK(client_parse_address(base, &a));
    ck_assert_int_eq(a.kind, CLIENT_ADDR_UNIX);
    ck_assert_str_eq(a.path, base);
    CK_OK(client_parse_address("nosuch.sock", &a));
    ck_assert_int_eq(a.kind, CLIENT_ADDR_TCP);
    ck_assert_int_eq(chdir(cwd), 0);
    /* Let the fake server's accept return. */
    sdbc_options_t o;
    sdbc_options_default(&o);
    o.connect_timeout_ms = 50;
    sdbc_t *c = NULL;
    CK_RC(sdbc_connect(fk.sock, &o, &c), SDB_ENORESPONSE);
    ct_fake_stop(&fk);
}
END_TEST

/* ---- Errors ---- */

START_TEST(test_strerror)
{
    static const int codes[] = {
        SDB_ENOTFOUND, SDB_EINVAL, SDB_ETOOLARGE, SDB_ECORRUPT, SDB_EIO, SDB_ENOSPC, SDB_ELOCKED,
        SDB_ECONFLICT, SDB_ENOMEM, SDB_EPROTO, SDB_EOPCODE, SDB_EAUTH, SDB_EVERSION,
        SDB_ECHECKSUM, SDB_EBUSY, SDB_ESHUTDOWN, SDB_ETIMEDOUT, SDB_EINTERNAL, SDB_ECONNECT,
        SDB_ECONNLOST, SDB_ENORESPONSE, SDB_ELOCAL,
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        const char *t = sdbc_strerror(codes[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(strcmp(t, "unknown error") != 0, "code %d has no text", codes[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(t, sdbc_strerror(codes[j])) != 0, "codes %d and %d share \"%s\"",
                          codes[i], codes[j], t);
    }
    ck_assert_str_eq(sdbc_strerror(-12345), "unknown error");
    /* The client's codes sit in their own range, apart from the engine's and the protocol's. */
    ck_assert_int_eq(SDB_ECONNECT, -120);
    ck_assert_int_eq(SDB_ELOCAL, -123);
    /* Wire statuses map onto the same codes the engine uses. */
    ck_assert_int_eq(sdb_proto_status_to_error(SDB_STATUS_NOT_FOUND), SDB_ENOTFOUND);
    ck_assert_int_eq(sdb_proto_status_to_error(SDB_STATUS_CONFLICT), SDB_ECONFLICT);
    ck_assert_int_eq(sdb_proto_status_to_error(SDB_STATUS_AUTH), SDB_EAUTH);
    ck_assert_int_eq(sdb_proto_status_to_error(999), SDB_EINTERNAL);
}
END_TEST

START_TEST(test_connect_errors)
{
    sdbc_t *c = (sdbc_t *)1;
    CK_RC(sdbc_connect("127.0.0.1:7878", NULL, NULL), SDB_EINVAL);
    CK_RC(sdbc_connect(NULL, NULL, &c), SDB_EINVAL);
    ck_assert_ptr_null(c);
    CK_RC(sdbc_connect("nope://x", NULL, &c), SDB_EINVAL);
    MSG_HAS("unknown URL scheme");
    /* Nothing listens on a port we just released. */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ct_free_port());
    CK_RC(sdbc_connect(addr, NULL, &c), SDB_ECONNECT);
    MSG_HAS("cannot connect to 127.0.0.1:");
    MSG_HAS("Connection refused (is streamdbd running?)");
    CK_RC(sdbc_connect(ct_path("missing.sock"), NULL, &c), SDB_ECONNECT);
    MSG_HAS("No such file or directory");
    sdbc_options_t o;
    sdbc_options_default(&o);
    char big[1100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    o.token = big;
    CK_RC(sdbc_connect(addr, &o, &c), SDB_EINVAL);
    MSG_HAS("longer than 1024");
    CK_RC(sdbc_connect("host.invalid:1", NULL, &c), SDB_ECONNECT);
    MSG_HAS("cannot resolve \"host.invalid\"");
}
END_TEST

/* ---- Fake servers ---- */

START_TEST(test_close_mid_get)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_CLOSE_MID_GET);
    sdbc_t *c = NULL;
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    sdbc_server_info_t si;
    sdbc_server_info(c, &si);
    ck_assert_str_eq(si.server_name, "fakeserver/1");
    void *data = (void *)1;
    size_t len = 7;
    CK_RC(sdbc_get(c, "/x", &data, &len, NULL), SDB_ECONNLOST);
    ck_assert_ptr_null(data);
    MSG_HAS("closed the connection while receiving /x (after 65536 of 1048576 bytes)");
    ck_assert_int_eq(sdbc_is_broken(c), 1);
    CK_RC(sdbc_ping(c, NULL), SDB_ECONNLOST);
    MSG_HAS("closed after an earlier error");
    sdbc_close(c);
    ct_fake_stop(&fk);
}
END_TEST

START_TEST(test_bad_crc)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_BAD_CRC);
    sdbc_t *c = NULL;
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    int fd = open(ct_path("badcrc.out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    CK_RC(sdbc_get_fd(c, "/x", fd, NULL), SDB_ECORRUPT);
    MSG_HAS("fails its CRC32 check");
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    close(fd);
    sdbc_close(c);
    ct_fake_stop(&fk);
}
END_TEST

START_TEST(test_version_mismatch)
{
    ct_fake_t fk;
    sdbc_t *c = NULL;
    ct_fake_start(&fk, FAKE_VERSION_ERROR);
    CK_RC(sdbc_connect(fk.sock, NULL, &c), SDB_EVERSION);
    MSG_HAS("speaks no protocol version in common with this client (which speaks 1..1)");
    MSG_HAS("this server speaks protocol versions 2..3");
    ct_fake_stop(&fk);
    ct_fake_start(&fk, FAKE_WRONG_VERSION);
    CK_RC(sdbc_connect(fk.sock, NULL, &c), SDB_EVERSION);
    MSG_HAS("chose protocol version 7");
    ct_fake_stop(&fk);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_other_protocol)
{
    ct_fake_t fk;
    sdbc_t *c = NULL;
    ct_fake_start(&fk, FAKE_GARBAGE);
    CK_RC(sdbc_connect(fk.sock, NULL, &c), SDB_EPROTO);
    MSG_HAS("does not speak the StreamDb protocol (it answered \"HTTP/1.1 400 Bad\")");
    ct_fake_stop(&fk);
}
END_TEST

START_TEST(test_timeouts)
{
    ct_fake_t fk;
    sdbc_t *c = NULL;
    sdbc_options_t o;
    sdbc_options_default(&o);
    o.connect_timeout_ms = 200;
    ct_fake_start(&fk, FAKE_SILENT);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CK_RC(sdbc_connect(fk.sock, &o, &c), SDB_ENORESPONSE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    MSG_HAS("no answer from unix:");
    MSG_HAS("within 200 ms during the handshake");
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(secs >= 0.19 && secs < 5.0, "timed out after %.3f s", secs);
    ct_fake_stop(&fk);
}
END_TEST

START_TEST(test_close_after_hello)
{
    ct_fake_t fk;
    sdbc_t *c = NULL;
    ct_fake_start(&fk, FAKE_CLOSE_AFTER_HELLO);
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    CK_RC(sdbc_lookup(c, "/a", NULL), SDB_ECONNLOST);
    MSG_HAS("closed the connection");
    ck_assert_int_eq(sdbc_is_broken(c), 1);
    sdbc_close(c);
    ct_fake_stop(&fk);
}
END_TEST

/* ---- Against the real daemon ---- */

START_TEST(test_put_get_buffer)
{
    sdbc_t *c = connect_daemon();
    sdbc_server_info_t si;
    sdbc_server_info(c, &si);
    ck_assert_int_eq(si.protocol_version, 1);
    ck_assert_uint_eq(si.chunk_bytes, 65536);
    ck_assert_str_eq(si.address, g_daemon.unix_addr);
    ck_assert_ptr_nonnull(strstr(si.server_name, "streamdbd"));
    sdb_docinfo_t put, got, look;
    CK_OK(sdbc_put(c, "/docs/a.txt", "hello world", 11, SDBC_ANY_VERSION, &put));
    ck_assert_uint_eq(put.version, 1);
    ck_assert_uint_eq(put.size, 11);
    ck_assert_uint_eq(put.crc32, 0x0d4a1185);
    void *data = NULL;
    size_t len = 0;
    CK_OK(sdbc_get(c, "/docs/a.txt", &data, &len, &got));
    ck_assert_uint_eq(len, 11);
    ck_assert(memcmp(data, "hello world", 11) == 0);
    ck_assert(memcmp(&got.id, &put.id, sizeof(put.id)) == 0);
    free(data);
    CK_OK(sdbc_lookup(c, "/docs/a.txt", &look));
    ck_assert_uint_eq(look.version, 1);
    /* A zero-length document. */
    CK_OK(sdbc_put(c, "/empty", NULL, 0, SDBC_ANY_VERSION, &put));
    CK_OK(sdbc_get(c, "/empty", &data, &len, &got));
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, 0);
    ck_assert_uint_eq(got.crc32, 0);
    free(data);
    /* Errors that leave the connection usable. */
    CK_RC(sdbc_get(c, "/nope", &data, &len, NULL), SDB_ENOTFOUND);
    ck_assert_str_eq(sdbc_last_error_message(), "no document is bound to \"/nope\"");
    CK_RC(sdbc_lookup(c, "", NULL), SDB_EINVAL);
    CK_RC(sdbc_lookup(c, NULL, NULL), SDB_EINVAL);
    char *longp = malloc(SDB_MAX_PATH + 2);
    memset(longp, 'a', SDB_MAX_PATH + 1);
    longp[SDB_MAX_PATH + 1] = '\0';
    CK_RC(sdbc_put(c, longp, "x", 1, SDBC_ANY_VERSION, NULL), SDB_EINVAL);
    free(longp);
    CK_RC(sdbc_put(c, "/bad\xff", "x", 1, SDBC_ANY_VERSION, NULL), SDB_EINVAL);
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_OK(sdbc_ping(c, NULL));
    ck_assert_str_eq(sdbc_last_error_message(), "");
    sdbc_close(c);
}
END_TEST

START_TEST(test_put_fd_get_fd)
{
    sdbc_t *c = connect_daemon();
    size_t n = 1000000;
    uint8_t *buf = malloc(n);
    ct_fill(buf, n, 11);
    ct_write_file(ct_path("in.bin"), buf, n);
    sdb_docinfo_t info;
    int fd = open(ct_path("in.bin"), O_RDONLY);
    CK_OK(sdbc_put_fd(c, "/fd/known", fd, n, SDBC_ANY_VERSION, &info));
    ck_assert_uint_eq(info.size, n);
    ck_assert_uint_eq(info.crc32, (uint32_t)crc32(0L, buf, (uInt)n));
    lseek(fd, 0, SEEK_SET);
    CK_OK(sdbc_put_fd(c, "/fd/unknown", fd, SDBC_SIZE_UNKNOWN, SDBC_ANY_VERSION, &info));
    ck_assert_uint_eq(info.size, n);
    /* The file is shorter than announced: nothing is stored. */
    lseek(fd, 0, SEEK_SET);
    CK_RC(sdbc_put_fd(c, "/fd/short", fd, n + 10, SDBC_ANY_VERSION, NULL), SDB_ELOCAL);
    MSG_HAS("ended after 1000000 of 1000010 bytes");
    CK_RC(sdbc_lookup(c, "/fd/short", NULL), SDB_ENOTFOUND);
    /* Reading stops at the size given. */
    lseek(fd, 0, SEEK_SET);
    CK_OK(sdbc_put_fd(c, "/fd/part", fd, 1000, SDBC_ANY_VERSION, &info));
    ck_assert_uint_eq(info.size, 1000);
    close(fd);
    CK_RC(sdbc_put_fd(c, "/fd/bad", -1, 1, SDBC_ANY_VERSION, NULL), SDB_EINVAL);
    int out = open(ct_path("out.bin"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CK_OK(sdbc_get_fd(c, "/fd/unknown", out, &info));
    close(out);
    size_t len;
    char *back = ct_read_file(ct_path("out.bin"), &len);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(back, buf, n) == 0);
    free(back);
    /* A write error on the destination: SDB_ELOCAL, the connection survives. */
    int ro = open(ct_path("out.bin"), O_RDONLY);
    CK_RC(sdbc_get_fd(c, "/fd/known", ro, NULL), SDB_ELOCAL);
    MSG_HAS("cannot write the content");
    close(ro);
    CK_OK(sdbc_ping(c, NULL));
    free(buf);
    sdbc_close(c);
}
END_TEST

typedef struct {
    uint64_t left, given, fail_after;
    uint32_t seed;
} gen_t;

static int gen_cb(void *arg, void *buf, size_t cap, size_t *n)
{
    gen_t *g = arg;
    if (g->fail_after && g->given >= g->fail_after)
        return SDB_EIO;
    size_t k = g->left < cap ? (size_t)g->left : cap;
    memset(buf, (int)(g->given & 0xff), k);
    g->left -= k;
    g->given += k;
    *n = k;
    return 0;
}

START_TEST(test_put_cb_abort)
{
    sdbc_t *c = connect_daemon();
    gen_t g = { 1 << 20, 0, 200000, 0 };
    CK_RC(sdbc_put_cb(c, "/cb/abort", gen_cb, &g, SDBC_SIZE_UNKNOWN, SDBC_ANY_VERSION, NULL),
          SDB_EIO);
    MSG_HAS("the read callback stopped the upload");
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_RC(sdbc_lookup(c, "/cb/abort", NULL), SDB_ENOTFOUND);
    gen_t ok = { 300000, 0, 0, 0 };
    sdb_docinfo_t info;
    CK_OK(sdbc_put_cb(c, "/cb/ok", gen_cb, &ok, 300000, SDBC_ANY_VERSION, &info));
    ck_assert_uint_eq(info.size, 300000);
    CK_RC(sdbc_put_cb(c, "/cb/null", NULL, NULL, 1, SDBC_ANY_VERSION, NULL), SDB_EINVAL);
    sdbc_close(c);
}
END_TEST

typedef struct {
    uint64_t got;
    uint32_t crc;
    int calls, stop_at;
    uint64_t total;
} sinkc_t;

static int sink_cb(void *arg, const sdb_docinfo_t *info, const void *data, size_t len)
{
    sinkc_t *s = arg;
    s->calls++;
    s->total = info->size;
    if (s->stop_at && s->calls >= s->stop_at)
        return SDB_ENOSPC;
    s->crc = (uint32_t)crc32(s->crc, data, (uInt)len);
    s->got += len;
    return 0;
}

START_TEST(test_get_cb)
{
    sdbc_t *c = connect_daemon();
    size_t n = 700000;
    uint8_t *buf = malloc(n);
    ct_fill(buf, n, 5);
    CK_OK(sdbc_put(c, "/cb/doc", buf, n, SDBC_ANY_VERSION, NULL));
    sinkc_t s = { 0 };
    sdb_docinfo_t info;
    CK_OK(sdbc_get_cb(c, "/cb/doc", sink_cb, &s, &info));
    ck_assert_uint_eq(s.got, n);
    ck_assert_uint_eq(s.total, n);
    ck_assert_uint_eq(s.crc, (uint32_t)crc32(0L, buf, (uInt)n));
    ck_assert_int_ge(s.calls, 10);   /* chunks of at most 64 KiB */
    /* The sink stops: its code comes back, the rest is drained. */
    sinkc_t stop = { .stop_at = 2 };
    CK_RC(sdbc_get_cb(c, "/cb/doc", sink_cb, &stop, NULL), SDB_ENOSPC);
    MSG_HAS("the write callback stopped the download");
    ck_assert_int_eq(stop.calls, 2);
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    void *data;
    size_t len;
    CK_OK(sdbc_get_id(c, &info.id, 0, &data, &len, NULL));
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(data, buf, n) == 0);
    free(data);
    sdbc_set_quick(c, 1);
    sinkc_t q = { 0 };
    CK_OK(sdbc_get_id_cb(c, &info.id, 0, sink_cb, &q, NULL));
    ck_assert_uint_eq(q.got, n);
    free(buf);
    sdbc_close(c);
}
END_TEST

static int count_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    (void)info;
    (*(int *)arg)++;
    return 0;
}

static int versions_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    ck_assert_ptr_null(path);
    char *s = arg;
    sprintf(s + strlen(s), "%llu:%llu ", (unsigned long long)info->version,
            (unsigned long long)info->size);
    return 0;
}

static int paths_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    ck_assert_ptr_nonnull(info);
    char *s = arg;
    sprintf(s + strlen(s), "%s ", path);
    return 0;
}

START_TEST(test_versions_and_conflicts)
{
    sdbc_t *c = connect_daemon();
    sdb_docinfo_t v1, v2, v3;
    CK_OK(sdbc_put(c, "/v/doc", "one", 3, 0, &v1));
    CK_RC(sdbc_put(c, "/v/doc", "xxx", 3, 0, NULL), SDB_ECONFLICT);
    CK_OK(sdbc_put(c, "/v/doc", "two!", 4, 1, &v2));
    CK_RC(sdbc_put(c, "/v/doc", "nope", 4, 1, NULL), SDB_ECONFLICT);
    CK_RC(sdbc_put(c, "/v/unbound", "nope", 4, 3, NULL), SDB_ECONFLICT);
    CK_OK(sdbc_put(c, "/v/doc", "three", 5, SDBC_ANY_VERSION, &v3));
    ck_assert_uint_eq(v3.version, 3);
    ck_assert(memcmp(&v1.id, &v3.id, 16) == 0);
    void *data;
    size_t len;
    CK_OK(sdbc_get_id(c, &v1.id, 1, &data, &len, NULL));
    ck_assert(len == 3 && memcmp(data, "one", 3) == 0);
    free(data);
    CK_OK(sdbc_get_id(c, &v1.id, 2, &data, &len, NULL));
    ck_assert(len == 4 && memcmp(data, "two!", 4) == 0);
    free(data);
    CK_RC(sdbc_get_id(c, &v1.id, 99, &data, &len, NULL), SDB_ENOTFOUND);
    char vs[256] = "";
    CK_OK(sdbc_list_versions(c, &v1.id, versions_cb, vs));
    ck_assert_str_eq(vs, "3:5 2:4 1:3 ");
    sdb_docinfo_t info;
    char *text = NULL;
    CK_OK(sdbc_info(c, &v1.id, &info, &text));
    ck_assert_uint_eq(info.version, 3);
    char ids[37];
    sdb_id_format(&v1.id, ids);
    ck_assert_ptr_nonnull(strstr(text, ids));
    free(text);
    sdb_id_t none;
    memset(&none, 0, sizeof(none));
    CK_RC(sdbc_info(c, &none, NULL, NULL), SDB_ENOTFOUND);
    CK_RC(sdbc_list_versions(c, &none, versions_cb, vs), SDB_ENOTFOUND);
    sdbc_close(c);
}
END_TEST

START_TEST(test_bind_paths_delete)
{
    sdbc_t *c = connect_daemon();
    sdb_docinfo_t d;
    CK_OK(sdbc_put(c, "/b/one", "1", 1, SDBC_ANY_VERSION, &d));
    CK_OK(sdbc_bind(c, &d.id, "/b/two"));
    CK_OK(sdbc_bind(c, &d.id, "/a/zero"));
    char ps[256] = "";
    CK_OK(sdbc_list_paths(c, &d.id, paths_cb, ps));
    ck_assert_str_eq(ps, "/a/zero /b/one /b/two ");
    CK_OK(sdbc_unbind(c, &d.id, "/b/one"));
    CK_RC(sdbc_unbind(c, &d.id, "/b/one"), SDB_ENOTFOUND);
    CK_OK(sdbc_delete(c, "/b/two"));
    CK_RC(sdbc_delete(c, "/b/two"), SDB_ENOTFOUND);
    ps[0] = '\0';
    CK_OK(sdbc_list_paths(c, &d.id, paths_cb, ps));
    ck_assert_str_eq(ps, "/a/zero ");
    CK_OK(sdbc_delete_id(c, &d.id));
    CK_RC(sdbc_delete_id(c, &d.id), SDB_ENOTFOUND);
    CK_RC(sdbc_bind(c, &d.id, "/b/x"), SDB_ENOTFOUND);
    CK_RC(sdbc_delete_id(c, NULL), SDB_EINVAL);
    int n = 0;
    CK_RC(sdbc_list_paths(c, &d.id, count_cb, &n), SDB_ENOTFOUND);
    sdbc_close(c);
}
END_TEST

typedef struct {
    char text[4096];
    int n, stop_at;
} ls_t;

static int ls_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    ls_t *l = arg;
    snprintf(l->text + strlen(l->text), sizeof(l->text) - strlen(l->text), "%s%s ", path,
             info ? "" : "(P)");
    l->n++;
    return l->stop_at && l->n >= l->stop_at;
}

START_TEST(test_search_paging)
{
    sdbc_t *c = connect_daemon();
    char path[64], want[4096] = "";
    for (int i = 0; i < 25; i++) {
        snprintf(path, sizeof(path), "/s/%02d", i);
        CK_OK(sdbc_put(c, path, path, strlen(path), SDBC_ANY_VERSION, NULL));
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s ", path);
    }
    CK_OK(sdbc_put(c, "/s/dir/x", "x", 1, SDBC_ANY_VERSION, NULL));
    CK_OK(sdbc_put(c, "/s/dir/y", "y", 1, SDBC_ANY_VERSION, NULL));
    CK_OK(sdbc_put(c, "/t", "t", 1, SDBC_ANY_VERSION, NULL));
    /* Pages of 4: every entry once, in order. */
    sdbc_search_opts_t o = { .page_size = 4 };
    ls_t l = { "", 0, 0 };
    CK_OK(sdbc_search(c, "/s/", &o, ls_cb, &l));
    ck_assert_int_eq(l.n, 27);
    ck_assert(strncmp(l.text, want, strlen(want)) == 0);
    ck_assert_str_eq(l.text + strlen(want), "/s/dir/x /s/dir/y ");
    /* A delimiter rolls /s/dir/ up; a limit cuts the listing (truncated). */
    sdbc_search_opts_t od = { .delimiter = '/', .limit = 26, .page_size = 5 };
    sdbc_search_iter_t *it = NULL;
    CK_OK(sdbc_search_open(c, "/s/", &od, &it));
    sdbc_entry_t e;
    int n = 0, rc;
    while ((rc = sdbc_search_next(it, &e)) == 1) {
        if (n == 25) {
            ck_assert_int_eq(e.kind, SDB_ENTRY_PREFIX);
            ck_assert_str_eq(e.path, "/s/dir/");
        } else {
            ck_assert_int_eq(e.kind, SDB_ENTRY_DOC);
        }
        n++;
    }
    CK_OK(rc);
    ck_assert_int_eq(n, 26);
    ck_assert_int_eq(sdbc_search_truncated(it), 0);
    sdbc_search_close(it);
    sdbc_search_opts_t ol = { .limit = 10, .page_size = 3 };
    CK_OK(sdbc_search_open(c, "", &ol, &it));
    n = 0;
    while ((rc = sdbc_search_next(it, &e)) == 1)
        n++;
    CK_OK(rc);
    ck_assert_int_eq(n, 10);
    ck_assert_int_eq(sdbc_search_truncated(it), 1);
    /* Other requests may run between two pages. */
    CK_OK(sdbc_ping(c, NULL));
    sdbc_search_close(it);
    /* start_after, and a callback that stops early. */
    sdbc_search_opts_t oa = { .start_after = "/s/22" };
    ls_t la = { "", 0, 0 };
    CK_OK(sdbc_search(c, "/s/", &oa, ls_cb, &la));
    ck_assert_str_eq(la.text, "/s/23 /s/24 /s/dir/x /s/dir/y ");
    ls_t ls = { "", 0, 3 };
    CK_OK(sdbc_search(c, "/s/", NULL, ls_cb, &ls));
    ck_assert_str_eq(ls.text, "/s/00 /s/01 /s/02 ");
    int all = 0;
    CK_OK(sdbc_search(c, NULL, NULL, count_cb, &all));
    ck_assert_int_ge(all, 28);
    ls_t none = { "", 0, 0 };
    CK_OK(sdbc_search(c, "/zzz", NULL, ls_cb, &none));
    ck_assert_int_eq(none.n, 0);
    sdbc_close(c);
}
END_TEST

START_TEST(test_stats_flush_ping)
{
    sdbc_t *c = connect_daemon();
    uint64_t rtt = 0;
    CK_OK(sdbc_ping(c, &rtt));
    ck_assert_uint_gt(rtt, 0);
    CK_OK(sdbc_flush(c));
    char *json = NULL;
    CK_OK(sdbc_stats(c, &json));
    ck_assert_ptr_nonnull(strstr(json, "\"engine\""));
    ck_assert_ptr_nonnull(strstr(json, "\"documents\""));
    free(json);
    CK_RC(sdbc_stats(c, NULL), SDB_EINVAL);
    sdbc_close(c);
    sdbc_close(NULL);
}
END_TEST

/* 64 MiB up and down through callbacks: the content never sits in memory. */
START_TEST(test_streaming_memory)
{
    sdbc_t *c = connect_daemon();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t n = 64ull << 20;
    gen_t g = { n, 0, 0, 0 };
    sdb_docinfo_t info;
    CK_OK(sdbc_put_cb(c, "/big", gen_cb, &g, SDBC_SIZE_UNKNOWN, SDBC_ANY_VERSION, &info));
    ck_assert_uint_eq(info.size, n);
    sinkc_t s = { 0 };
    CK_OK(sdbc_get_cb(c, "/big", sink_cb, &s, NULL));
    ck_assert_uint_eq(s.got, n);
    ck_assert_uint_eq(s.crc, info.crc32);
    getrusage(RUSAGE_SELF, &ru1);
#if !defined(__SANITIZE_ADDRESS__)
    long grown_kib = ru1.ru_maxrss - ru0.ru_maxrss;
    ck_assert_msg(grown_kib < 16 * 1024, "max RSS grew by %ld KiB for a 64 MiB round trip",
                  grown_kib);
#endif
    sdbc_close(c);
}
END_TEST

/* The server fails an upload early (TOO_LARGE): the client stops sending,
 * aborts, and the connection goes on. */
START_TEST(test_too_large_early)
{
    sdbc_t *c = connect_daemon();
    sdbc_server_info_t si;
    sdbc_server_info(c, &si);
    ck_assert_uint_eq(si.max_document_bytes, 1048576);
    gen_t g = { 64ull << 20, 0, 0, 0 };
    CK_RC(sdbc_put_cb(c, "/tl/declared", gen_cb, &g, 64ull << 20, SDBC_ANY_VERSION, NULL),
          SDB_ETOOLARGE);
    ck_assert_msg(g.given < (32ull << 20), "sent %llu bytes after an early TOO_LARGE",
                  (unsigned long long)g.given);
    CK_OK(sdbc_ping(c, NULL));
    gen_t u = { 64ull << 20, 0, 0, 0 };
    CK_RC(sdbc_put_cb(c, "/tl/unknown", gen_cb, &u, SDBC_SIZE_UNKNOWN, SDBC_ANY_VERSION, NULL),
          SDB_ETOOLARGE);
    ck_assert_msg(u.given < (32ull << 20), "sent %llu bytes after an early TOO_LARGE",
                  (unsigned long long)u.given);
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_OK(sdbc_put(c, "/tl/small", "ok", 2, SDBC_ANY_VERSION, NULL));
    CK_RC(sdbc_lookup(c, "/tl/unknown", NULL), SDB_ENOTFOUND);
    sdbc_close(c);
}
END_TEST

START_TEST(test_auth)
{
    sdbc_t *c = NULL;
    CK_RC(sdbc_connect(g_daemon.unix_addr, NULL, &c), SDB_EAUTH);
    MSG_HAS("the server requires an auth token and none was given");
    sdbc_options_t o;
    sdbc_options_default(&o);
    o.token = "wrong";
    CK_RC(sdbc_connect(g_daemon.unix_addr, &o, &c), SDB_EAUTH);
    MSG_HAS("authentication failed at unix:");
    MSG_HAS("the server rejected the token");
    ck_assert_ptr_null(c);
    o.token = "s3cret";
    CK_OK(sdbc_connect(g_daemon.tcp, &o, &c));
    CK_OK(sdbc_ping(c, NULL));
    sdbc_close(c);
}
END_TEST

/* ---- Byte ranges ---- */

typedef struct {
    const uint8_t *exp;
    size_t got;
    int bad, calls;
    uint64_t size_seen;
} range_sink_t;

static int range_cb(void *arg, const sdb_docinfo_t *info, const void *p, size_t len)
{
    range_sink_t *s = arg;
    if (memcmp(p, s->exp + s->got, len) != 0)
        s->bad = 1;
    s->got += len;
    s->calls++;
    s->size_seen = info->size;
    return 0;
}

START_TEST(test_get_range)
{
    sdbc_t *c = connect_daemon();
    size_t n = 700000;
    uint8_t *buf = malloc(n), *v2 = malloc(1000);
    ct_fill(buf, n, 11);
    ct_fill(v2, 1000, 12);
    sdb_docinfo_t info;
    CK_OK(sdbc_put(c, "/range/doc", buf, n, SDBC_ANY_VERSION, &info));
    static const uint64_t cases[][2] = {
        { 0, UINT64_MAX }, { 0, 700000 }, { 0, 1 }, { 699999, 1 }, { 700000 - 4096, 4096 },
        { 12345, 200000 }, { 100, UINT64_MAX }, { 100, 900000 }, { 5, 0 }, { 700000, 9 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t off = cases[i][0], len = cases[i][1];
        uint64_t want = len < n - off ? len : n - off;
        void *data = NULL;
        size_t got = 77;
        sdbc_range_t rg;
        CK_OK(sdbc_get_range(c, "/range/doc", off, len, &data, &got, &rg));
        ck_assert_ptr_nonnull(data);
        ck_assert_msg(got == want && memcmp(data, buf + off, want) == 0,
                      "range [%llu, +%llu): %zu bytes or content differs",
                      (unsigned long long)off, (unsigned long long)len, got);
        ck_assert_uint_eq(rg.offset, off);
        ck_assert_uint_eq(rg.length, want);
        ck_assert_uint_eq(rg.doc.size, n);
        ck_assert_uint_eq(rg.doc.crc32, info.crc32);
        ck_assert_uint_eq(rg.doc.version, 1);
        free(data);
    }
    /* past the end: SDB_EINVAL naming both, nothing returned, connection usable */
    void *data = (void *)1;
    size_t got = 5;
    CK_RC(sdbc_get_range(c, "/range/doc", n + 1, 1, &data, &got, NULL), SDB_EINVAL);
    MSG_HAS("offset 700001 is past the end of the document (700000 bytes)");
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(got, 0);
    CK_RC(sdbc_get_range(c, "/range/nope", 0, 1, &data, &got, NULL), SDB_ENOTFOUND);
    CK_RC(sdbc_get_range(c, NULL, 0, 1, &data, &got, NULL), SDB_EINVAL);
    CK_RC(sdbc_get_range(c, "/range/doc", 0, 1, NULL, &got, NULL), SDB_EINVAL);
    CK_RC(sdbc_get_id_range(c, NULL, 0, 0, 1, &data, &got, NULL), SDB_EINVAL);
    CK_RC(sdbc_get_range_cb(c, "/range/doc", 0, 1, NULL, NULL, NULL), SDB_EINVAL);
    ck_assert_int_eq(sdbc_is_broken(c), 0);

    /* by id and version, and through a callback (info is the whole version) */
    CK_OK(sdbc_put(c, "/range/doc", v2, 1000, SDBC_ANY_VERSION, NULL));
    sdbc_range_t rg;
    CK_OK(sdbc_get_id_range(c, &info.id, 1, 600000, 50000, &data, &got, &rg));
    ck_assert(got == 50000 && memcmp(data, buf + 600000, got) == 0);
    ck_assert_uint_eq(rg.doc.version, 1);
    free(data);
    CK_OK(sdbc_get_id_range(c, &info.id, 0, 990, 100, &data, &got, &rg));
    ck_assert(got == 10 && memcmp(data, v2 + 990, 10) == 0 && rg.doc.version == 2);
    free(data);
    CK_RC(sdbc_get_id_range(c, &info.id, 7, 0, 1, &data, &got, NULL), SDB_ENOTFOUND);
    range_sink_t s = { .exp = buf + 1000 };
    sdbc_set_quick(c, 1);
    CK_OK(sdbc_get_id_range_cb(c, &info.id, 1, 1000, 300000, range_cb, &s, &rg));
    ck_assert(!s.bad && s.got == 300000 && s.calls >= 4 && s.size_seen == n);
    range_sink_t s2 = { .exp = v2 + 1 };
    CK_OK(sdbc_get_range_cb(c, "/range/doc", 1, UINT64_MAX, range_cb, &s2, &rg));
    ck_assert(!s2.bad && s2.got == 999 && rg.length == 999 && rg.doc.size == 1000);
    free(buf);
    free(v2);
    sdbc_close(c);
}
END_TEST

/* A server that predates byte ranges answers BAD_OPCODE: the client says so
 * and the connection stays usable; a server that answers another range than
 * asked is a protocol error. */
START_TEST(test_range_old_server)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_NO_RANGES);
    sdbc_t *c = NULL;
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    void *data = (void *)1;
    size_t len = 3;
    CK_RC(sdbc_get_range(c, "/x", 10, 20, &data, &len, NULL), SDB_EOPCODE);
    MSG_HAS("does not support byte ranges (GET_RANGE): the server predates them");
    ck_assert_ptr_null(data);
    sdb_id_t id;
    memset(&id, 7, sizeof(id));
    CK_RC(sdbc_get_id_range(c, &id, 0, 10, 20, &data, &len, NULL), SDB_EOPCODE);
    MSG_HAS("(GET_ID_RANGE)");
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_OK(sdbc_ping(c, NULL));
    sdbc_close(c);
    ct_fake_stop(&fk);

    ct_fake_start(&fk, FAKE_BAD_RANGE);
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    CK_RC(sdbc_get_range(c, "/x", 10, 20, &data, &len, NULL), SDB_EPROTO);
    MSG_HAS("answered a range of 20 bytes from byte 10 with 10 bytes from byte 0");
    ck_assert_int_eq(sdbc_is_broken(c), 1);
    sdbc_close(c);
    ct_fake_stop(&fk);
}
END_TEST

/* BATCH through the client library against the daemon: applied whole with
 * a result per item; a failing item named (index and message) with nothing
 * applied; items seeing earlier ones; an empty batch; a batch whose answer
 * would not fit in one frame refused before sending; the connection usable
 * after each. */
START_TEST(test_batch)
{
    sdbc_t *c = connect_daemon();
    sdb_docinfo_t keep;
    CK_OK(sdbc_put(c, "/batch/keep", "keep", 4, SDBC_ANY_VERSION, &keep));
    sdbc_batch_t *b = NULL;
    CK_OK(sdbc_batch_new(&b));
    enum { N = 40 };
    char path[N][32];
    uint8_t data[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(path[i], sizeof path[i], "/batch/n/%02d", i);
        ct_fill(data[i], sizeof data[i], (uint32_t)i);
        CK_OK(sdbc_batch_put(b, path[i], data[i], 16 + (size_t)i, 0));
    }
    CK_OK(sdbc_batch_put(b, "/batch/keep", "v2", 2, 1));
    CK_OK(sdbc_batch_bind(b, &keep.id, "/batch/alias", 2));
    CK_OK(sdbc_batch_delete(b, "/batch/n/00", 1));
    CK_OK(sdbc_batch_put(b, "/batch/keep", "v3", 2, 9));          /* conflict: keep is at 2 */
    ck_assert_uint_eq(sdbc_batch_count(b), N + 4);
    size_t failed = 0;
    CK_RC(sdbc_batch_commit(c, b, NULL, &failed), SDB_ECONFLICT);
    ck_assert_uint_eq(failed, N + 3);
    MSG_HAS("item 43 (put /batch/keep)");
    MSG_HAS("nothing applied");
    for (int i = 0; i < N; i++)
        CK_RC(sdbc_lookup(c, path[i], NULL), SDB_ENOTFOUND);
    CK_RC(sdbc_lookup(c, "/batch/alias", NULL), SDB_ENOTFOUND);
    sdb_docinfo_t info;
    CK_OK(sdbc_lookup(c, "/batch/keep", &info));
    ck_assert_uint_eq(info.version, 1);

    /* the same without the failing item */
    sdbc_batch_clear(b);
    for (int i = 0; i < N; i++)
        CK_OK(sdbc_batch_put(b, path[i], data[i], 16 + (size_t)i, 0));
    CK_OK(sdbc_batch_put(b, "/batch/keep", "v2", 2, 1));
    CK_OK(sdbc_batch_bind(b, &keep.id, "/batch/alias", 2));
    CK_OK(sdbc_batch_delete(b, "/batch/n/00", 1));
    CK_OK(sdbc_batch_put(b, "/batch/n/00", "again", 5, 0));       /* a new document */
    sdb_docinfo_t res[N + 4];
    CK_OK(sdbc_batch_commit(c, b, res, &failed));
    ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);
    for (int i = 1; i < N; i++) {
        void *d = NULL;
        size_t len = 0;
        CK_OK(sdbc_get(c, path[i], &d, &len, &info));
        ck_assert(len == 16 + (size_t)i && memcmp(d, data[i], len) == 0);
        ck_assert(memcmp(info.id.b, res[i].id.b, 16) == 0);
        ck_assert_uint_eq(res[i].version, 1);
        ck_assert_uint_eq(res[i].size, 16 + (size_t)i);
        free(d);
    }
    CK_OK(sdbc_lookup(c, "/batch/alias", &info));
    ck_assert(memcmp(info.id.b, keep.id.b, 16) == 0);
    ck_assert_uint_eq(info.version, 2);
    ck_assert_uint_eq(res[N].version, 2);
    ck_assert(memcmp(res[N + 2].id.b, res[0].id.b, 16) == 0);     /* the deleted one */
    CK_OK(sdbc_lookup(c, "/batch/n/00", &info));
    ck_assert(memcmp(info.id.b, res[0].id.b, 16) != 0);
    ck_assert(memcmp(info.id.b, res[N + 3].id.b, 16) == 0);

    /* other failures name their item */
    sdb_id_t ghost;
    memset(&ghost, 0x5A, sizeof ghost);
    sdbc_batch_clear(b);
    CK_OK(sdbc_batch_put(b, "/batch/x", "x", 1, SDBC_ANY_VERSION));
    CK_OK(sdbc_batch_bind(b, &ghost, "/batch/y", SDBC_ANY_VERSION));
    CK_RC(sdbc_batch_commit(c, b, NULL, &failed), SDB_ENOTFOUND);
    ck_assert_uint_eq(failed, 1);
    MSG_HAS("item 1 (bind /batch/y)");
    sdbc_batch_clear(b);
    CK_OK(sdbc_batch_delete(b, "/batch/none", SDBC_ANY_VERSION));
    CK_RC(sdbc_batch_commit(c, b, NULL, &failed), SDB_ENOTFOUND);
    ck_assert_uint_eq(failed, 0);
    CK_RC(sdbc_lookup(c, "/batch/x", NULL), SDB_ENOTFOUND);

    /* an empty batch */
    sdbc_batch_clear(b);
    CK_OK(sdbc_batch_commit(c, b, NULL, &failed));

    /* more items than one answer frame holds: refused before sending */
    sdbc_server_info_t si;
    sdbc_server_info(c, &si);
    size_t max_items = (si.max_frame_bytes - 4) / SDB_PROTO_DOCINFO_SIZE;
    for (size_t i = 0; i <= max_items; i++)
        CK_OK(sdbc_batch_delete(b, "/d", SDBC_ANY_VERSION));
    CK_RC(sdbc_batch_commit(c, b, NULL, &failed), SDB_ETOOLARGE);
    MSG_HAS("split it");
    ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);
    /* bad arguments */
    CK_RC(sdbc_batch_put(b, "", "x", 1, SDBC_ANY_VERSION), SDB_EINVAL);
    CK_RC(sdbc_batch_bind(b, NULL, "/p", SDBC_ANY_VERSION), SDB_EINVAL);
    CK_RC(sdbc_batch_put(NULL, "/p", "x", 1, SDBC_ANY_VERSION), SDB_EINVAL);
    CK_RC(sdbc_batch_commit(c, NULL, NULL, NULL), SDB_EINVAL);
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_OK(sdbc_ping(c, NULL));
    sdbc_batch_free(b);
    sdbc_close(c);
}
END_TEST

/* A server that predates BATCH: SDB_EOPCODE saying so, the connection
 * stays usable. */
START_TEST(test_batch_old_server)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_NO_RANGES);
    sdbc_t *c = NULL;
    CK_OK(sdbc_connect(fk.sock, NULL, &c));
    sdbc_batch_t *b = NULL;
    CK_OK(sdbc_batch_new(&b));
    CK_OK(sdbc_batch_put(b, "/x", "x", 1, SDBC_ANY_VERSION));
    size_t failed = 0;
    CK_RC(sdbc_batch_commit(c, b, NULL, &failed), SDB_EOPCODE);
    MSG_HAS("does not support atomic batches (BATCH)");
    ck_assert_uint_eq(failed, SDB_BATCH_NO_ITEM);
    ck_assert_int_eq(sdbc_is_broken(c), 0);
    CK_OK(sdbc_ping(c, NULL));
    sdbc_batch_free(b);
    sdbc_close(c);
    ct_fake_stop(&fk);
}
END_TEST

Suite *suite_client(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("offline");
    tcase_add_unchecked_fixture(tc, ct_dir_setup, ct_dir_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_parse_address);
    tcase_add_test(tc, test_bare_socket_name);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_connect_errors);
    tcase_add_test(tc, test_close_mid_get);
    tcase_add_test(tc, test_bad_crc);
    tcase_add_test(tc, test_version_mismatch);
    tcase_add_test(tc, test_other_protocol);
    tcase_add_test(tc, test_timeouts);
    tcase_add_test(tc, test_close_after_hello);
    tcase_add_test(tc, test_range_old_server);
    tcase_add_test(tc, test_batch_old_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("daemon");
    tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_get_buffer);
    tcase_add_test(tc, test_put_fd_get_fd);
    tcase_add_test(tc, test_put_cb_abort);
    tcase_add_test(tc, test_get_cb);
    tcase_add_test(tc, test_versions_and_conflicts);
    tcase_add_test(tc, test_bind_paths_delete);
    tcase_add_test(tc, test_search_paging);
    tcase_add_test(tc, test_stats_flush_ping);
    tcase_add_test(tc, test_streaming_memory);
    tcase_add_test(tc, test_get_range);
    tcase_add_test(tc, test_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_unchecked_fixture(tc, limits_setup, daemon_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_too_large_early);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_add_unchecked_fixture(tc, auth_setup, daemon_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_auth);
    suite_add_tcase(s, tc);
    return s;
}
