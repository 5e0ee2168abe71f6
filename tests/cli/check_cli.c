/*
 * check_cli.c -- the `streamdb` command-line client, run as a subprocess
 * against the real streamdbd (and in local mode, --db FILE), with exact
 * stdout and exit codes checked: every command, GNU-style options, help,
 * usage errors, a 64 MiB document piped through `put -` and `get`, the
 * progress bar under a pseudo-terminal and not in a pipe, and the failures a
 * user must understand: a stopped server, a wrong token, a server closing
 * mid-transfer, bad CRC, another protocol version, a silent server.
 */
#include <cjson/cJSON.h>
#include <pty.h>

#include "cli_test.h"

static ct_daemon_t g_d;

static void daemon_setup(void)
{
    ct_dir_setup();
    ct_daemon_start(&g_d, "d", NULL, NULL);
}

static void daemon_teardown(void)
{
    int st = ct_daemon_stop(&g_d);
    if (st != 0)
        fprintf(stderr, "warning: streamdbd exited with status %d\n", st);
    ct_dir_teardown();
}

/* Runs `streamdb -s SOCK ARGS...` against the test case's daemon. */
#define CLI(r, ...) ct_run((r), NULL, NULL, NULL, "-s", g_d.sock, __VA_ARGS__, (char *)NULL)
/* The same with stdin from a file. */
#define CLI_IN(r, in, ...) ct_run((r), (in), NULL, NULL, "-s", g_d.sock, __VA_ARGS__, (char *)NULL)
/* Without an address (local mode, usage errors, own addresses). */
#define RUN(r, ...) ct_run((r), NULL, NULL, NULL, __VA_ARGS__, (char *)NULL)

/* Formats like the CLI: UTC, second precision. */
static void fmt_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Parses "id ID version N size M\n" (put's output). */
static void parse_put(const ct_run_t *r, char id[37], unsigned long long *version,
                      unsigned long long *size)
{
    char want[128];
    ck_assert_msg(sscanf(r->out, "id %36s version %llu size %llu", id, version, size) == 3,
                  "unexpected put output: %s", r->out);
    snprintf(want, sizeof(want), "id %s version %llu size %llu\n", id, *version, *size);
    ck_assert_str_eq(r->out, want);
    sdb_id_t tmp;
    ck_assert_int_eq(sdb_id_parse(id, &tmp), 0);
}

/* put PATH from a file holding text; returns the id. */
static void put_text(const char *path, const char *text, char id[37])
{
    static unsigned seq;
    char name[64];
    snprintf(name, sizeof(name), "text.%ld.%u", (long)getpid(), seq++);
    ct_write_file(ct_path(name), text, strlen(text));
    ct_run_t r;
    CLI(&r, "put", path, ct_path(name));
    ck_assert_msg(r.status == 0, "put %s: %s", path, r.err);
    unsigned long long v, s;
    parse_put(&r, id, &v, &s);
    ck_assert_uint_eq(s, strlen(text));
    ct_run_free(&r);
}

static sdb_docinfo_t lookup(const char *path)
{
    sdbc_t *c = NULL;
    sdb_docinfo_t info;
    ck_assert_int_eq(sdbc_connect(g_d.unix_addr, NULL, &c), 0);
    ck_assert_int_eq(sdbc_lookup(c, path, &info), 0);
    sdbc_close(c);
    return info;
}

static cJSON *parse_json(const ct_run_t *r)
{
    cJSON *j = cJSON_Parse(r->out);
    ck_assert_msg(j != NULL, "not JSON: %s", r->out);
    return j;
}

/* ---- Commands against the daemon ---- */

START_TEST(test_ping_and_addresses)
{
    ct_run_t r;
    char want[512];
    CLI(&r, "ping");
    ck_assert_int_eq(r.status, 0);
    snprintf(want, sizeof(want), "PONG from streamdbd 0.1.0 at unix:%s (protocol 1): ", g_d.sock);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "got: %s", r.out);
    ck_assert(strcmp(r.out + strlen(r.out) - 4, " ms\n") == 0);
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    CLI(&r, "ping", "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "server")->valuestring, "streamdbd 0.1.0");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "address")->valuestring, g_d.unix_addr);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "protocol")->valueint, 1);
    cJSON_Delete(j);
    ct_run_free(&r);
    /* Every address form reaches the same server. */
    char url[256], unix_url[256], env[300];
    snprintf(url, sizeof(url), "streamdb://%s", g_d.tcp);
    snprintf(unix_url, sizeof(unix_url), "unix://%s", g_d.sock);
    const char *forms[][2] = { { "-H", g_d.tcp }, { "-u", url }, { "-u", unix_url },
                               { "--url", g_d.unix_addr }, { "--socket", g_d.sock } };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        RUN(&r, forms[i][0], forms[i][1], "ping");
        ck_assert_msg(r.status == 0, "%s %s: %s", forms[i][0], forms[i][1], r.err);
        ck_assert(strncmp(r.out, "PONG from streamdbd", 19) == 0);
        ct_run_free(&r);
    }
    snprintf(env, sizeof(env), "STREAMDB_URL=streamdb://%s", g_d.tcp);
    char *envv[] = { env, NULL };
    ct_run(&r, NULL, NULL, envv, "ping", (char *)NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    snprintf(want, sizeof(want), "PONG from streamdbd 0.1.0 at %s (protocol 1): ", g_d.tcp);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "got: %s", r.out);
    ct_run_free(&r);
    /* -s beats STREAMDB_URL. */
    ct_run(&r, NULL, NULL, envv, "-s", g_d.sock, "ping", (char *)NULL);
    snprintf(want, sizeof(want), "PONG from streamdbd 0.1.0 at unix:%s", g_d.sock);
    ck_assert(strncmp(r.out, want, strlen(want)) == 0);
    ct_run_free(&r);
}
END_TEST

/* With no address, ./data/streamdbd.sock is used when it exists. */
START_TEST(test_default_address)
{
    char dir[256], data[300], link[320];
    snprintf(dir, sizeof(dir), "%s/cwd", ct_dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(link, sizeof(link), "%s/streamdbd.sock", data);
    mkdir(dir, 0755);
    mkdir(data, 0755);
    ck_assert_int_eq(symlink(g_d.sock, link), 0);
    ct_run_cwd = dir;
    ct_run_t r;
    RUN(&r, "ping");
    ct_run_cwd = NULL;
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_msg(strncmp(r.out, "PONG from streamdbd 0.1.0 at unix:./data/streamdbd.sock", 55) == 0,
                  "got: %s", r.out);
    ct_run_free(&r);
    /* Elsewhere the default is 127.0.0.1:7878 (a daemon may or may not run there). */
    ct_run_cwd = ct_dir;
    RUN(&r, "ping");
    ct_run_cwd = NULL;
    if (r.status != 0) {
        ck_assert_int_eq(r.status, 4);
        CT_ERR_HAS(&r, "127.0.0.1:7878");
    }
    ct_run_free(&r);
}
END_TEST

START_TEST(test_put_get_cat)
{
    ct_run_t r;
    char id[37], id2[37];
    unsigned long long v, s;
    ct_write_file(ct_path("hello.txt"), "hello world\n", 12);
    CLI(&r, "put", "/t/a.txt", ct_path("hello.txt"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    parse_put(&r, id, &v, &s);
    ck_assert_uint_eq(v, 1);
    ck_assert_uint_eq(s, 12);
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    /* From standard input, with "-" and with no FILE. */
    ct_write_file(ct_path("b.txt"), "bee\n", 4);
    CLI_IN(&r, ct_path("b.txt"), "put", "/t/b.txt", "-");
    ck_assert_int_eq(r.status, 0);
    parse_put(&r, id2, &v, &s);
    ck_assert_uint_eq(s, 4);
    ct_run_free(&r);
    CLI_IN(&r, ct_path("b.txt"), "put", "/t/c.txt");
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    /* An empty document. */
    CLI(&r, "put", "/t/empty", "/dev/null");
    ck_assert_int_eq(r.status, 0);
    parse_put(&r, id2, &v, &s);
    ck_assert_uint_eq(s, 0);
    ct_run_free(&r);
    CLI(&r, "get", "/t/empty");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    /* Overwrite: same id, version 2. */
    CLI(&r, "put", "/t/a.txt", ct_path("hello.txt"));
    parse_put(&r, id2, &v, &s);
    ck_assert_str_eq(id2, id);
    ck_assert_uint_eq(v, 2);
    ct_run_free(&r);
    CLI(&r, "get", "/t/a.txt");
    CT_EXPECT(&r, 0, "hello world\n");
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    CLI(&r, "cat", "/t/a.txt", "/t/b.txt", "/t/c.txt");
    CT_EXPECT(&r, 0, "hello world\nbee\nbee\n");
    ct_run_free(&r);
    /* -o FILE, and --json with it. */
    CLI(&r, "get", "/t/a.txt", "-o", ct_path("out.txt"));
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    char *back = ct_read_file(ct_path("out.txt"), NULL);
    ck_assert_str_eq(back, "hello world\n");
    free(back);
    CLI(&r, "get", "--output", ct_path("out2.txt"), "/t/b.txt", "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/t/b.txt");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "size")->valueint, 4);
    char crc[9];
    snprintf(crc, sizeof(crc), "%08x", (unsigned)crc32(0L, (const Bytef *)"bee\n", 4));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "crc32")->valuestring, crc);
    cJSON_Delete(j);
    ct_run_free(&r);
    /* Not found: exit 1, the reason on stderr, no output file left behind. */
    CLI(&r, "get", "/t/nope", "-o", ct_path("none.txt"));
    CT_EXPECT(&r, 1, "");
    ck_assert_str_eq(r.err, "streamdb: get /t/nope: no document is bound to \"/t/nope\"\n");
    ct_run_free(&r);
    ck_assert_int_ne(access(ct_path("none.txt"), F_OK), 0);
    CLI(&r, "cat", "/t/a.txt", "/t/nope", "/t/b.txt");
    CT_EXPECT(&r, 1, "hello world\nbee\n");
    ck_assert_str_eq(r.err, "streamdb: cat /t/nope: no document is bound to \"/t/nope\"\n");
    ct_run_free(&r);
    /* A local file that cannot be read. */
    CLI(&r, "put", "/t/x", ct_path("missing.txt"));
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "streamdb: put /t/x: cannot open ");
    CT_ERR_HAS(&r, "missing.txt: No such file or directory");
    ct_run_free(&r);
    CLI(&r, "put", "/t/x", ct_dir);
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "is a directory");
    ct_run_free(&r);
    /* A path starting with '-' after "--". */
    CLI(&r, "put", "--", "-dash", ct_path("b.txt"));
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    CLI(&r, "get", "--", "-dash");
    CT_EXPECT(&r, 0, "bee\n");
    ct_run_free(&r);
    /* The server refuses a bad path. */
    CLI(&r, "get", "");
    CT_EXPECT(&r, 5, "");
    ck_assert_str_eq(r.err, "streamdb: get : empty path\n");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_if_version)
{
    ct_run_t r;
    char id[37];
    unsigned long long v, s;
    ct_write_file(ct_path("iv.txt"), "iv\n", 3);
    CLI(&r, "put", "--if-version", "0", "/t/iv", ct_path("iv.txt"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    parse_put(&r, id, &v, &s);
    ck_assert_uint_eq(v, 1);
    ct_run_free(&r);
    CLI(&r, "put", "/t/iv", ct_path("iv.txt"), "--if-version", "0");
    CT_EXPECT(&r, 3, "");
    ck_assert_str_eq(r.err, "streamdb: put /t/iv: version conflict on \"/t/iv\": if_version 0 "
                            "writes only an unbound path, and it is bound (current version 1)\n");
    ct_run_free(&r);
    CLI(&r, "put", "/t/iv", ct_path("iv.txt"), "--if-version=1");
    ck_assert_int_eq(r.status, 0);
    parse_put(&r, id, &v, &s);
    ck_assert_uint_eq(v, 2);
    ct_run_free(&r);
    CLI(&r, "put", "/t/iv", ct_path("iv.txt"), "--if-version", "1");
    CT_EXPECT(&r, 3, "");
    ct_run_free(&r);
    CLI(&r, "put", "/t/iv-new", ct_path("iv.txt"), "--if-version", "4");
    CT_EXPECT(&r, 3, "");
    ct_run_free(&r);
    CLI(&r, "put", "/t/iv", ct_path("iv.txt"), "--if-version", "x");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb put: --if-version: expected a version number, got \"x\"\n"
                            "Try 'streamdb help put'.\n");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_versions_info)
{
    ct_run_t r;
    char id[37], want[2048];
    put_text("/t/v", "v1\n", id);
    put_text("/t/v", "v22\n", id);
    put_text("/t/v", "v333\n", id);
    /* versions: newest first; the same rows for the path and the id. */
    sdbc_t *c = NULL;
    ck_assert_int_eq(sdbc_connect(g_d.unix_addr, NULL, &c), 0);
    sdb_docinfo_t vi[3];
    sdb_id_t sid;
    sdb_id_parse(id, &sid);
    for (int i = 0; i < 3; i++) {
        void *d;
        size_t n;
        ck_assert_int_eq(sdbc_get_id(c, &sid, (uint64_t)(3 - i), &d, &n, &vi[i]), 0);
        free(d);
    }
    sdbc_close(c);
    want[0] = '\0';
    for (int i = 0; i < 3; i++) {
        char t[32];
        fmt_time(vi[i].modified_ms, t);
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%6d %12d %08x %s\n", 3 - i,
                 5 - i, (unsigned)vi[i].crc32, t);
    }
    CLI(&r, "versions", "/t/v");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    CLI(&r, "versions", id);
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    CLI(&r, "versions", id, "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(j), 3);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "version")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "size")->valueint, 3);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "id")->valuestring, id);
    cJSON_Delete(j);
    ct_run_free(&r);
    /* Old versions by path or id. */
    CLI(&r, "get", "/t/v", "--version", "1");
    CT_EXPECT(&r, 0, "v1\n");
    ct_run_free(&r);
    CLI(&r, "get", "--id", id, "--version", "2");
    CT_EXPECT(&r, 0, "v22\n");
    ct_run_free(&r);
    CLI(&r, "get", "--id", id);
    CT_EXPECT(&r, 0, "v333\n");
    ct_run_free(&r);
    CLI(&r, "cat", "--version", "2", "/t/v");
    CT_EXPECT(&r, 0, "v22\n");
    ct_run_free(&r);
    CLI(&r, "get", "/t/v", "--version", "9");
    CT_EXPECT(&r, 1, "");
    CT_ERR_HAS(&r, "streamdb: get /t/v version 9: no document ");
    CT_ERR_HAS(&r, ", or it keeps no version 9\n");
    ct_run_free(&r);
    /* info */
    char t1[32], t3[32];
    fmt_time(vi[2].created_ms, t1);
    fmt_time(vi[0].modified_ms, t3);
    snprintf(want, sizeof(want),
             "id:       %s\nversion:  3\nsize:     5 (5 B)\ncrc32:    %08x\ncreated:  %s\n"
             "modified: %s\npaths:    /t/v\nversions: 3 2 1\n",
             id, (unsigned)vi[0].crc32, t1, t3);
    CLI(&r, "info", "/t/v");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    CLI(&r, "info", id);
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    /* GNU style: options after the arguments, or before the command. */
    ct_run_t r2;
    CLI(&r, "info", "/t/v", "--json");
    RUN(&r2, "--json", "-s", g_d.sock, "info", "/t/v");
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, r2.out);
    j = parse_json(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, id);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "version")->valueint, 3);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "modified")->valuestring, t3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "versions")), 3);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "paths"), 0)->valuestring, "/t/v");
    cJSON_Delete(j);
    ct_run_free(&r);
    ct_run_free(&r2);
    CLI(&r, "info", "00000000-0000-4000-8000-000000000000");
    CT_EXPECT(&r, 1, "");
    ck_assert_str_eq(r.err, "streamdb: info 00000000-0000-4000-8000-000000000000: no document "
                            "00000000-0000-4000-8000-000000000000\n");
    ct_run_free(&r);
    CLI(&r, "info", "/t/none");
    CT_EXPECT(&r, 1, "");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bind_unbind_paths)
{
    ct_run_t r;
    char id[37], want[256];
    put_text("/p/main", "doc\n", id);
    CLI(&r, "bind", id, "/p/alias");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "bind", "/p/main", "/a/first");   /* the document named by a path */
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "paths", id);
    CT_EXPECT(&r, 0, "/a/first\n/p/alias\n/p/main\n");
    ct_run_free(&r);
    CLI(&r, "paths", "/p/alias", "--json");
    CT_EXPECT(&r, 0, "[\n  \"/a/first\",\n  \"/p/alias\",\n  \"/p/main\"\n]\n");
    ct_run_free(&r);
    CLI(&r, "get", "/p/alias");
    CT_EXPECT(&r, 0, "doc\n");
    ct_run_free(&r);
    CLI(&r, "unbind", id, "/p/alias");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "unbind", id, "/p/alias");
    CT_EXPECT(&r, 1, "");
    snprintf(want, sizeof(want), "streamdb: unbind %s /p/alias: \"/p/alias\" is not bound to "
             "document %s (or there is no such document)\n", id, id);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    CLI(&r, "unbind", id, "/p/main");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "unbind", id, "/a/first");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    /* The document survives without paths. */
    CLI(&r, "paths", id);
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "get", "--id", id);
    CT_EXPECT(&r, 0, "doc\n");
    ct_run_free(&r);
    CLI(&r, "bind", "00000000-0000-4000-8000-000000000000", "/p/x");
    CT_EXPECT(&r, 1, "");
    ct_run_free(&r);
    CLI(&r, "bind", "/p/nonexistent", "/p/x");
    CT_EXPECT(&r, 1, "");
    ck_assert_str_eq(r.err, "streamdb: bind /p/nonexistent: no document is bound to \"/p/nonexistent\"\n");
    ct_run_free(&r);
    CLI(&r, "bind", id);
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_rm)
{
    ct_run_t r;
    char id[37];
    put_text("/r/1", "1", id);
    put_text("/r/2", "2", id);
    put_text("/r/3", "3", id);
    CLI(&r, "rm", "/r/1", "/r/2");
    CT_EXPECT(&r, 0, "");
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    CLI(&r, "rm", "/r/1");
    CT_EXPECT(&r, 1, "");
    ck_assert_str_eq(r.err, "streamdb: rm /r/1: no document is bound to \"/r/1\"\n");
    ct_run_free(&r);
    CLI(&r, "rm", "--id", id);
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "rm", "--id", id);
    CT_EXPECT(&r, 1, "");
    ct_run_free(&r);
    CLI(&r, "ls", "/r/");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "rm");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    CLI(&r, "rm", "--id", "nope");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "\"nope\" is not a document id");
    ct_run_free(&r);
    CLI(&r, "rm", "--id", id, "/r/3");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_ls)
{
    ct_run_t r;
    char id[37];
    const char *paths[] = { "/l/a", "/l/b", "/l/d/1", "/l/d/2", "/l/e/x", "/l:colon" };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        put_text(paths[i], paths[i], id);
    CLI(&r, "ls", "/l/");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/1\n/l/d/2\n/l/e/x\n");
    ct_run_free(&r);
    CLI(&r, "ls", "/l/", "-d");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/\n/l/e/\n");
    ct_run_free(&r);
    CLI(&r, "ls", "-d", "/l/");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/\n/l/e/\n");
    ct_run_free(&r);
    CLI(&r, "ls", "/l", "--delimiter=:");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/1\n/l/d/2\n/l/e/x\n/l:\n");
    ct_run_free(&r);
    CLI(&r, "ls", "/l/", "--limit", "2");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n");
    ct_run_free(&r);
    /* Paging through everything, two entries per request. */
    CLI(&r, "ls", "/l", "--page-size", "2");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/1\n/l/d/2\n/l/e/x\n/l:colon\n");
    ct_run_free(&r);
    CLI(&r, "ls", "/l/", "-d", "--page-size", "1", "--limit", "3");
    CT_EXPECT(&r, 0, "/l/a\n/l/b\n/l/d/\n");
    ct_run_free(&r);
    /* -l: id, version, size, modification time, path. */
    char want[2048] = "";
    const char *lp[] = { "/l/a", "/l/b" };
    for (int i = 0; i < 2; i++) {
        sdb_docinfo_t info = lookup(lp[i]);
        char ids[37], t[32];
        sdb_id_format(&info.id, ids);
        fmt_time(info.modified_ms, t);
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s %6d %12d %s %s\n", ids, 1,
                 4, t, lp[i]);
    }
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "%-36s %6s %12s %-20s %s\n", "-",
             "-", "-", "-", "/l/d/");
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "%-36s %6s %12s %-20s %s\n", "-",
             "-", "-", "-", "/l/e/");
    CLI(&r, "ls", "-l", "-d", "/l/");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    CLI(&r, "ls", "/l/", "-ld");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    /* --json */
    CLI(&r, "ls", "/l/", "-d", "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(j), 4);
    cJSON *e0 = cJSON_GetArrayItem(j, 0), *e2 = cJSON_GetArrayItem(j, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(e0, "path")->valuestring, "/l/a");
    ck_assert_str_eq(cJSON_GetObjectItem(e0, "type")->valuestring, "document");
    ck_assert_int_eq(cJSON_GetObjectItem(e0, "size")->valueint, 4);
    ck_assert_str_eq(cJSON_GetObjectItem(e2, "path")->valuestring, "/l/d/");
    ck_assert_str_eq(cJSON_GetObjectItem(e2, "type")->valuestring, "prefix");
    ck_assert_ptr_null(cJSON_GetObjectItem(e2, "id"));
    cJSON_Delete(j);
    ct_run_free(&r);
    CLI(&r, "ls", "/nothing/");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "ls", "/nothing/", "--json");
    CT_EXPECT(&r, 0, "[]\n");
    ct_run_free(&r);
    CLI(&r, "ls", "--limit", "many");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    CLI(&r, "ls", "--delimiter=ab");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    CLI(&r, "ls", "/a", "/b");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "unexpected argument \"/b\"");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_stats_flush)
{
    ct_run_t r;
    CLI(&r, "stats");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\nengine.documents: "));
    ck_assert_ptr_nonnull(strstr(r.out, "server: streamdbd 0.1.0\n"));
    ct_run_free(&r);
    CLI(&r, "stats", "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "engine")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "engine"), "paths")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "engine"), "checkpoints")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "engine"), "journal_pages")));
    cJSON_Delete(j);
    ct_run_free(&r);
    CLI(&r, "flush");
    CT_EXPECT(&r, 0, "");
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    CLI(&r, "flush", "extra");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_help)
{
    static const char *cmds[] = { "put", "get", "cat", "rm", "ls", "bind", "unbind", "paths",
                                  "versions", "info", "stats", "ping", "flush", "check", "repair" };
    ct_run_t a, b, c;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "usage: streamdb [GLOBAL OPTIONS] %s", cmds[i]);
        /* No server is needed: a dead address proves nothing connects. */
        RUN(&a, "-s", "/nonexistent.sock", "help", cmds[i]);
        RUN(&b, "-s", "/nonexistent.sock", cmds[i], "--help");
        RUN(&c, cmds[i], "-h", "extra", "args");
        ck_assert_int_eq(a.status, 0);
        ck_assert_int_eq(b.status, 0);
        ck_assert_int_eq(c.status, 0);
        ck_assert_msg(strncmp(a.out, want, strlen(want)) == 0, "help %s: %s", cmds[i], a.out);
        ck_assert_str_eq(a.out, b.out);
        ck_assert_str_eq(a.out, c.out);
        ct_run_free(&a);
        ct_run_free(&b);
        ct_run_free(&c);
    }
    RUN(&a, "--help");
    RUN(&b, "help");
    ck_assert_int_eq(a.status, 0);
    ck_assert_str_eq(a.out, b.out);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n  %-9s ", cmds[i]);
        ck_assert_msg(strstr(a.out, line) != NULL, "--help lacks %s", cmds[i]);
    }
    ct_run_free(&a);
    ct_run_free(&b);
    RUN(&a, "-V");
    CT_EXPECT(&a, 0, "streamdb 0.1.0\n");
    ct_run_free(&a);
    RUN(&a, "--version");
    CT_EXPECT(&a, 0, "streamdb 0.1.0\n");
    ct_run_free(&a);
}
END_TEST

START_TEST(test_usage_errors)
{
    ct_run_t r;
    /* A dead address: usage errors are found before connecting (exit 2, not 4). */
    RUN(&r, "-s", "/nonexistent.sock");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "usage: streamdb ");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "frob");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb: unknown command \"frob\"\nTry 'streamdb help'.\n");
    ct_run_free(&r);
    RUN(&r, "help", "frob");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "ls", "--frob");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb ls: unknown option --frob\nTry 'streamdb help ls'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "ls", "-z");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb ls: unknown option -z\nTry 'streamdb help ls'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "info", "--if-version", "3", "/a");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb info: unknown option --if-version\n"
                            "Try 'streamdb help info'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "put");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb put: missing argument (usage: streamdb put PATH [FILE|-] "
                            "[--if-version N])\nTry 'streamdb help put'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "get", "-o");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb get: option -o needs a value\nTry 'streamdb help get'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "get", "/a", "--version");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb get: option --version needs a value\n"
                            "Try 'streamdb help get'.\n");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "get", "/a", "--json");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "--json needs -o FILE");
    ct_run_free(&r);
    RUN(&r, "-s", "/nonexistent.sock", "get", "/a", "--id", "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    RUN(&r, "--db", "x.sdb", "-s", "/nonexistent.sock", "ls");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "exclude each other");
    ct_run_free(&r);
    RUN(&r, "-H", "host:port", "ping");
    CT_EXPECT(&r, 2, "");
    ck_assert_str_eq(r.err, "streamdb: bad server address \"host:port\": port \"port\" is not a "
                            "number in 1..65535\n");
    ct_run_free(&r);
    RUN(&r, "--timeout", "-1", "ping");
    CT_EXPECT(&r, 2, "");
    ct_run_free(&r);
    RUN(&r, "--token-file", ct_path("no-token-file"), "-s", g_d.sock, "ping");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "cannot read the token file");
    ct_run_free(&r);
}
END_TEST

/* ---- 64 MiB through pipes ---- */

#define BIG (64u << 20)

/* Writes BIG deterministic bytes to fd (in a child process). */
static void write_big(int fd)
{
    static uint8_t buf[1 << 20];
    for (unsigned i = 0; i < BIG / sizeof(buf); i++) {
        ct_fill(buf, sizeof(buf), i + 1);
        size_t off = 0;
        while (off < sizeof(buf)) {
            ssize_t w = write(fd, buf + off, sizeof(buf) - off);
            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
    }
}

static uint32_t big_crc(void)
{
    static uint8_t buf[1 << 20];
    uLong crc = crc32(0L, Z_NULL, 0);
    for (unsigned i = 0; i < BIG / sizeof(buf); i++) {
        ct_fill(buf, sizeof(buf), i + 1);
        crc = crc32(crc, buf, sizeof(buf));
    }
    return (uint32_t)crc;
}

START_TEST(test_big_pipe)
{
    /* generator | streamdb put /big - */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t gen = fork();
    if (gen == 0) {
        close(p[0]);
        write_big(p[1]);
        _exit(0);
    }
    pid_t put = fork();
    if (put == 0) {
        close(p[1]);
        dup2(p[0], 0);
        int out = open(ct_path("put.out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(ct_path("put.err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        execl(ct_bin("streamdb"), "streamdb", "-s", g_d.sock, "put", "/big", "-", (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    close(p[1]);
    int st;
    ck_assert_int_eq(waitpid(gen, &st, 0), gen);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(waitpid(put, &st, 0), put);
    char *err = ct_read_file(ct_path("put.err"), NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "put failed: %s", err);
    ck_assert_str_eq(err, "");   /* no progress bar: stderr is not a terminal */
    free(err);
    char *out = ct_read_file(ct_path("put.out"), NULL);
    ck_assert_msg(strstr(out, " version 1 size 67108864\n") != NULL, "put said: %s", out);
    free(out);
    /* streamdb get /big | checksum */
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t get = fork();
    if (get == 0) {
        close(p[0]);
        dup2(p[1], 1);
        int e = open(ct_path("get.err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(e, 2);
        execl(ct_bin("streamdb"), "streamdb", "-s", g_d.sock, "get", "/big", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    static uint8_t buf[1 << 16];
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(p[0], buf, sizeof(buf))) > 0) {
        crc = crc32(crc, buf, (uInt)n);
        total += (uint64_t)n;
    }
    close(p[0]);
    ck_assert_int_eq(waitpid(get, &st, 0), get);
    err = ct_read_file(ct_path("get.err"), NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "get failed: %s", err);
    ck_assert_str_eq(err, "");
    free(err);
    ck_assert_uint_eq(total, BIG);
    ck_assert_uint_eq((uint32_t)crc, big_crc());
}
END_TEST

/* ---- The progress bar ---- */

/* Runs streamdb with args under a pseudo-terminal (stdout and stderr both on
 * it) and returns everything it printed there (malloc()ed). */
static char *run_pty(int *status, const char *const *args)
{
    int master;
    fflush(NULL);
    struct winsize ws = { .ws_row = 24, .ws_col = 100 };
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = "streamdb";
        for (int i = 0; args[i]; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        alarm(120);
        execv(ct_bin("streamdb"), (char *const *)argv);
        _exit(127);
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            out = realloc(out, cap + 1);
        }
        ssize_t k = read(master, out + len, cap - len);
        if (k > 0) {
            len += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        break;   /* EIO once the child has closed the terminal */
    }
    out[len] = '\0';
    close(master);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

START_TEST(test_progress_bar)
{
    size_t n = 8u << 20;
    uint8_t *buf = malloc(n);
    ct_fill(buf, n, 77);
    ct_write_file(ct_path("8m.bin"), buf, n);
    free(buf);
    int st;
    /* On a terminal: a bar with bytes, percentage, rate and time. */
    const char *put_args[] = { "-s", g_d.sock, "put", "/prog/big", ct_path("8m.bin"), NULL };
    char *tty = run_pty(&st, put_args);
    ck_assert_msg(st == 0, "put under a pty: %s", tty);
    ck_assert_msg(strstr(tty, "\r/prog/big [") != NULL, "no bar: %s", tty);
    ck_assert_msg(strstr(tty, "8.0 MiB / 8.0 MiB 100% ") != NULL, "no final state: %s", tty);
    /* the final state shows a rate in KiB/s, MiB/s or GiB/s (a fast disk reaches GiB/s) */
    const char *fin = strstr(tty, "8.0 MiB / 8.0 MiB 100% ");
    ck_assert_msg(fin && strstr(fin, "iB/s") != NULL, "no rate: %s", tty);
    ck_assert_msg(strstr(tty, "id ") != NULL, "no result line: %s", tty);
    free(tty);
    const char *get_args[] = { "-s", g_d.sock, "get", "/prog/big", "-o", ct_path("8m.out"), NULL };
    tty = run_pty(&st, get_args);
    ck_assert_msg(st == 0, "get under a pty: %s", tty);
    ck_assert_msg(strstr(tty, "8.0 MiB / 8.0 MiB 100% ") != NULL, "no bar on get: %s", tty);
    free(tty);
    /* --no-progress, or a small transfer: no bar even on a terminal. */
    const char *quiet_args[] = { "-s", g_d.sock, "get", "/prog/big", "-o", ct_path("8m.out"),
                                 "--no-progress", NULL };
    tty = run_pty(&st, quiet_args);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(strstr(tty, "MiB/s") == NULL, "bar despite --no-progress: %s", tty);
    free(tty);
    ct_write_file(ct_path("small"), "small", 5);
    const char *small_args[] = { "-s", g_d.sock, "put", "/prog/small", ct_path("small"), NULL };
    tty = run_pty(&st, small_args);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(strstr(tty, "/s") == NULL && strchr(tty, '\r') == strrchr(tty, '\r'),
                  "bar for a small file: %s", tty);
    free(tty);
    /* In a pipe: nothing on stderr. */
    ct_run_t r;
    CLI(&r, "put", "/prog/big2", ct_path("8m.bin"));
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    CLI(&r, "get", "/prog/big2", "-o", ct_path("8m.out2"));
    CT_EXPECT(&r, 0, "");
    ck_assert_str_eq(r.err, "");
    ct_run_free(&r);
    /* --progress forces it into a pipe. */
    CLI(&r, "get", "/prog/big2", "-o", ct_path("8m.out2"), "--progress");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.err, "100%"));
    ct_run_free(&r);
}
END_TEST

/* ---- Failures ---- */

START_TEST(test_stopped_server)
{
    ct_daemon_t d;
    ct_daemon_start(&d, "stopped", NULL, NULL);
    ct_run_t r;
    RUN(&r, "-s", d.sock, "ping");
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
    char want[512];
    RUN(&r, "-s", d.sock, "ping");
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: cannot connect to unix:%s: No such file or directory "
             "(is streamdbd running?)\n", d.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    RUN(&r, "-H", d.tcp, "get", "/x");
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: cannot connect to %s: Connection refused "
             "(is streamdbd running?)\n", d.tcp);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_wrong_token)
{
    /* the CLI reads a token file as streamdbd does: one line end stripped, no
       more (the trailing blank is part of the token) */
    ct_write_file(ct_path("token"), "right-token \r\n", 14);
    ct_write_file(ct_path("bad-token"), "wrong-token\n", 12);
    ct_daemon_t d;
    ct_daemon_start(&d, "auth", NULL, ct_path("token"));
    ct_run_t r;
    char want[512];
    RUN(&r, "-s", d.sock, "ping");
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: authentication failed at unix:%s: the server requires "
             "an auth token and none was given (set STREAMDB_TOKEN or use --token-file)\n", d.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    RUN(&r, "-s", d.sock, "--token-file", ct_path("bad-token"), "ls");
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: authentication failed at unix:%s: the server rejected "
             "the token (", d.sock);
    ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0, "got: %s", r.err);
    ct_run_free(&r);
    char *bad_env[] = { "STREAMDB_TOKEN=nope", NULL };
    ct_run(&r, NULL, NULL, bad_env, "-H", d.tcp, "ping", (char *)NULL);
    CT_EXPECT(&r, 4, "");
    CT_ERR_HAS(&r, "the server rejected the token");
    ct_run_free(&r);
    RUN(&r, "-s", d.sock, "ls", "--token-file", ct_path("token"));
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    char *env[] = { "STREAMDB_TOKEN=right-token ", NULL };
    ct_run(&r, NULL, NULL, env, "-H", d.tcp, "ping", (char *)NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

START_TEST(test_server_closes_mid_transfer)
{
    ct_fake_t fk;
    ct_fake_start(&fk, FAKE_CLOSE_MID_GET);
    ct_run_t r;
    char want[512];
    RUN(&r, "-s", fk.sock, "get", "/x", "-o", ct_path("partial.out"));
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: get /x: unix:%s closed the connection while receiving "
             "/x (after 65536 of 1048576 bytes)\n", fk.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    ck_assert_msg(access(ct_path("partial.out"), F_OK) != 0, "a partial file was left");
    /* To standard output: the bytes received so far went out, exit 4. */
    ct_fake_start(&fk, FAKE_CLOSE_MID_GET);
    RUN(&r, "-s", fk.sock, "cat", "/x");
    ct_fake_stop(&fk);
    ck_assert_int_eq(r.status, 4);
    ck_assert_uint_eq(r.outlen, 65536);
    CT_ERR_HAS(&r, "closed the connection while receiving /x (after 65536 of 1048576 bytes)");
    ct_run_free(&r);
}
END_TEST

START_TEST(test_bad_server_answers)
{
    ct_fake_t fk;
    ct_run_t r;
    char want[512];
    ct_fake_start(&fk, FAKE_BAD_CRC);
    RUN(&r, "-s", fk.sock, "get", "/x", "-o", ct_path("bad.out"));
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "streamdb: get /x: the content received for /x fails its CRC32 check");
    ck_assert(access(ct_path("bad.out"), F_OK) != 0);
    ct_run_free(&r);
    ct_fake_start(&fk, FAKE_VERSION_ERROR);
    RUN(&r, "-s", fk.sock, "ping");
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: unix:%s speaks no protocol version in common with this "
             "client (which speaks 1..1): this server speaks protocol versions 2..3\n", fk.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    ct_fake_start(&fk, FAKE_GARBAGE);
    RUN(&r, "-s", fk.sock, "ls");
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: unix:%s does not speak the StreamDb protocol (it "
             "answered \"HTTP/1.1 400 Bad\")\n", fk.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    ct_fake_start(&fk, FAKE_SILENT);
    RUN(&r, "-s", fk.sock, "--timeout", "0.3", "ping");
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 4, "");
    snprintf(want, sizeof(want), "streamdb: no answer from unix:%s within 300 ms during the "
             "handshake\n", fk.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
}
END_TEST

/* ---- Local mode ---- */

START_TEST(test_local_mode)
{
    const char *db = ct_path("local.sdb");
    ct_run_t r;
    char id[37], want[1024];
    unsigned long long v, s;
    ct_write_file(ct_path("l.txt"), "local\n", 6);
    RUN(&r, "--db", db, "put", "/loc/a", ct_path("l.txt"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    parse_put(&r, id, &v, &s);
    ck_assert_uint_eq(v, 1);
    ct_run_free(&r);
    ct_run(&r, ct_path("l.txt"), NULL, NULL, "put", "/loc/a", "-", "--db", db, (char *)NULL);
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    RUN(&r, "--db", db, "put", "/loc/a", ct_path("l.txt"), "--if-version", "1");
    CT_EXPECT(&r, 3, "");
    ck_assert_str_eq(r.err, "streamdb: put /loc/a: the document is at version 2, not 1\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "get", "/loc/a");
    CT_EXPECT(&r, 0, "local\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "get", "/loc/a", "--version", "1");
    CT_EXPECT(&r, 0, "local\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "cat", "--id", id);
    CT_EXPECT(&r, 0, "local\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "get", "/loc/none");
    CT_EXPECT(&r, 1, "");
    ck_assert_str_eq(r.err, "streamdb: get /loc/none: no such path, document or version\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "bind", id, "/loc/b");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    RUN(&r, "--db", db, "paths", "/loc/b");
    CT_EXPECT(&r, 0, "/loc/a\n/loc/b\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls", "/loc/", "-d");
    CT_EXPECT(&r, 0, "/loc/a\n/loc/b\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls", "--limit", "1");
    CT_EXPECT(&r, 0, "/loc/a\n");
    ct_run_free(&r);
    RUN(&r, "--db", db, "info", "/loc/a", "--json");
    ck_assert_int_eq(r.status, 0);
    cJSON *j = parse_json(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, id);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "version")->valueint, 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "paths")), 2);
    char t[32];
    fmt_time((int64_t)cJSON_GetObjectItem(j, "modified_ms")->valuedouble, t);
    snprintf(want, sizeof(want), "%s %6d %12d %s /loc/a\n%s %6d %12d %s /loc/b\n", id, 2, 6, t,
             id, 2, 6, t);
    cJSON_Delete(j);
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls", "-l");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    RUN(&r, "--db", db, "versions", id);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "     2            6 "));
    ck_assert_ptr_nonnull(strstr(r.out, "\n     1            6 "));
    ct_run_free(&r);
    RUN(&r, "--db", db, "unbind", id, "/loc/b");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    RUN(&r, "--db", db, "unbind", id, "/loc/b");
    CT_EXPECT(&r, 1, "");
    snprintf(want, sizeof(want), "streamdb: unbind %s /loc/b: the path is not bound to that "
             "document\n", id);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    RUN(&r, "--db", db, "rm", "/loc/a");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls", "--json");
    CT_EXPECT(&r, 0, "[]\n");
    ct_run_free(&r);
    /* The document, left without paths, was deleted. */
    RUN(&r, "--db", db, "rm", "--id", id);
    CT_EXPECT(&r, 1, "");
    ct_run_free(&r);
    RUN(&r, "--db", db, "stats", "--json");
    ck_assert_int_eq(r.status, 0);
    j = parse_json(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "database")->valuestring, db);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "engine"), "documents")->valueint, 0);
    cJSON_Delete(j);
    ct_run_free(&r);
}
END_TEST

static uint64_t rd_le64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

/* The case through the CLI: each local command closes the database
 * with a checkpoint, so the header slots name the last two; one flipped bit
 * in the newest checkpoint (docs/FORMAT.md: page type at byte 4, seqno =
 * the slot's generation at byte 16) and 'repair' brings every path back
 * from the older slot and its journal, under its own name: nothing goes to
 * lost+found. */
START_TEST(test_local_repair_checkpoint)
{
    const char *db = ct_path("repair-cp.sdb");
    ct_run_t r;
    char path[32], want[4096] = "";
    ct_write_file(ct_path("small.txt"), "some text\n", 10);
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "/r/%d", i);
        RUN(&r, "--db", db, "put", path, ct_path("small.txt"));
        ck_assert_msg(r.status == 0, "%s", r.err);
        ct_run_free(&r);
        strcat(want, path);
        strcat(want, "\n");
    }
    size_t flen;
    char *file = ct_read_file(db, &flen);
    const size_t ps = 4096;
    uint64_t g0 = rd_le64(file + 16), g1 = rd_le64(file + ps + 16), g = g0 > g1 ? g0 : g1;
    int hit = 0;
    for (size_t pg = 2; pg < flen / ps && !hit; pg++)
        if (file[pg * ps + 4] == 3 && rd_le64(file + pg * ps + 16) == g) {
            file[pg * ps + 48 + 20] ^= 0x10;
            hit = 1;
        }
    ck_assert_msg(hit, "no checkpoint page of generation %llu", (unsigned long long)g);
    ct_write_file(db, file, flen);
    free(file);
    RUN(&r, "--db", db, "check");
    ck_assert_msg(r.status == 5, "check: %d\n%s%s", r.status, r.out, r.err);
    ck_assert_msg(strstr(r.out, "names a damaged checkpoint"), "%s", r.out);
    ct_run_free(&r);
    RUN(&r, "--db", db, "repair");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ck_assert_msg(strstr(r.out, "no commit is lost") && !strstr(r.out, "lost:") &&
                  !strstr(r.out, "lost+found"), "%s", r.out);
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls");
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    RUN(&r, "--db", db, "check");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_local_admin)
{
    const char *db = ct_path("admin.sdb");
    ct_run_t r;
    char id[37];
    unsigned long long v, s;
    size_t n = 64 * 1024;
    uint8_t *buf = malloc(n);
    ct_fill(buf, n, 9);
    ct_write_file(ct_path("doc.bin"), buf, n);
    RUN(&r, "--db", db, "put", "/c/doc", ct_path("doc.bin"));
    ck_assert_int_eq(r.status, 0);
    parse_put(&r, id, &v, &s);
    ct_run_free(&r);
    RUN(&r, "--db", db, "put", "/c/other", "/dev/null");
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    RUN(&r, "--db", db, "ping");
    char want[512];
    snprintf(want, sizeof(want), "ok: local database %s (StreamDb 0.1.0)\n", db);
    CT_EXPECT(&r, 0, want);
    ct_run_free(&r);
    RUN(&r, "--db", db, "stats");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "engine.documents: 2\nengine.paths: 2\n"));
    ct_run_free(&r);
    RUN(&r, "--db", db, "flush");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    RUN(&r, "--db", db, "check");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ck_assert_msg(strstr(r.out, "result: clean\n") != NULL, "%s", r.out);
    ct_run_free(&r);
    RUN(&r, "check");
    CT_EXPECT(&r, 2, "");
    CT_ERR_HAS(&r, "check works on a database file: streamdb --db FILE check");
    ct_run_free(&r);
    /* Damage one byte of the document's content. */
    size_t flen;
    char *file = ct_read_file(db, &flen);
    char *hit = memmem(file, flen, buf + 1000, 64);
    ck_assert_msg(hit != NULL, "content not found in the file");
    long off = (long)(hit - file) + 10;
    free(file);
    FILE *f = fopen(db, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    RUN(&r, "--db", db, "check");
    ck_assert_int_eq(r.status, 5);
    ck_assert_ptr_nonnull(strstr(r.out, "DAMAGED"));
    snprintf(want, sizeof(want), "streamdb: check %s: damage found (see the report); 'streamdb "
             "--db %s repair' keeps the newest state it can prove and lists what it loses\n",
             db, db);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    RUN(&r, "--db", db, "check", "--json");
    ck_assert_int_eq(r.status, 5);
    cJSON *j = parse_json(&r);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "clean")));
    cJSON_Delete(j);
    ct_run_free(&r);
    RUN(&r, "--db", db, "get", "/c/doc", "-o", ct_path("doc.out"));
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "streamdb: get /c/doc: ");
    ck_assert(access(ct_path("doc.out"), F_OK) != 0);
    ct_run_free(&r);
    RUN(&r, "--db", db, "repair");
    ck_assert_msg(r.status == 0, "%s%s", r.out, r.err);
    ct_run_free(&r);
    RUN(&r, "--db", db, "check");
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    RUN(&r, "--db", db, "ls");
    CT_EXPECT(&r, 0, "/c/other\n");
    ct_run_free(&r);
    free(buf);
    /* A database held by a running daemon. */
    ct_daemon_t d;
    ct_daemon_start(&d, "locked", NULL, NULL);
    char dbfile[300];
    snprintf(dbfile, sizeof(dbfile), "%s/streamdb.sdb", d.data);
    RUN(&r, "--db", dbfile, "ls");
    CT_EXPECT(&r, 5, "");
    snprintf(want, sizeof(want), "streamdb: cannot open %s: the database is in use by another "
             "process (a running streamdbd? talk to it without --db)\n", dbfile);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
    RUN(&r, "--db", dbfile, "check");
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "in use by another process");
    ct_run_free(&r);
    ck_assert_int_eq(ct_daemon_stop(&d), 0);
}
END_TEST

/* Local mode has no server: an error opening or writing the database names
 * the file and the system's error, not "I/O error on the server" or a bare
 * "invalid argument" (found by the red team: a read-only file system said
 * "I/O error", check said "bad argument: path, id, field value or flag"). */
START_TEST(test_local_open_errors)
{
    char db[300];
    snprintf(db, sizeof db, "%s", ct_path("nodir/x.sdb"));
    ct_run_t r;
    RUN(&r, "--db", db, "ls");
    CT_EXPECT(&r, 5, "");
    CT_ERR_HAS(&r, "nodir/x.sdb");
    CT_ERR_HAS(&r, "(open: No such file or directory)");
    ct_run_free(&r);
    RUN(&r, "--db", db, "check");
    ck_assert_int_eq(r.status, 5);
    CT_ERR_HAS(&r, "streamdb: check ");
    CT_ERR_HAS(&r, "(open: No such file or directory)");
    ck_assert_msg(strstr(r.err, "server") == NULL && strstr(r.err, "field value") == NULL,
                  "local mode speaks of a server or of fields: %s", r.err);
    ct_run_free(&r);
    RUN(&r, "--db", ct_dir, "repair");
    ck_assert_int_eq(r.status, 5);
    CT_ERR_HAS(&r, "(open: Is a directory)");
    ct_run_free(&r);
}
END_TEST

/* ---- get --range ---- */

/* Runs one get --range against the daemon (or, with db, in local mode) and
 * checks the exit status and the exact output. */
static void expect_range_run(const char *db, const char *path, const char *range, int status,
                             const char *want_out, const char *want_err)
{
    ct_run_t r;
    if (db)
        RUN(&r, "--db", db, "get", path, "--range", range);
    else
        CLI(&r, "get", path, "--range", range);
    ck_assert_msg(r.status == status && strcmp(r.out, want_out) == 0,
                  "get %s --range %s%s%s: exit %d, output \"%.80s\" (%zu bytes); expected exit %d, "
                  "\"%.80s\" (%zu bytes); stderr: %s", path, range, db ? " --db " : "",
                  db ? db : "", r.status, r.out, strlen(r.out), status, want_out,
                  strlen(want_out), r.err);
    if (want_err)
        ck_assert_msg(strcmp(r.err, want_err) == 0, "get --range %s: stderr \"%s\", expected \"%s\"",
                      range, r.err, want_err);
    ct_run_free(&r);
}

/* The text of the range tests: 20000 numbered lines, 200000 bytes. */
static char *range_text(size_t *n)
{
    char *t = malloc(200001);
    for (int i = 0; i < 20000; i++)
        snprintf(t + 10 * i, 11, "line %04u\n", (unsigned)i % 10000u);
    *n = 200000;
    return t;
}

/* Checks get --range against text (n bytes) bound to path; db as above. */
static void check_ranges(const char *db, const char *path, const char *text, size_t n)
{
    char want[64], err[256];
    static const struct { uint64_t start, end; } se[] = {
        { 0, 9 }, { 5, 5 }, { 123, 4567 }, { 199990, 199999 }, { 199990, 250000 }, { 0, 199999 },
    };
    for (size_t i = 0; i < sizeof(se) / sizeof(se[0]); i++) {
        char range[64];
        snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)se[i].start,
                 (unsigned long long)se[i].end);
        uint64_t end = se[i].end < n - 1 ? se[i].end : n - 1;
        char *w = strndup(text + se[i].start, (size_t)(end - se[i].start + 1));
        expect_range_run(db, path, range, 0, w, "");
        free(w);
    }
    expect_range_run(db, path, "199000-", 0, text + 199000, "");      /* to the end */
    expect_range_run(db, path, "-15", 0, text + n - 15, "");          /* the last 15 bytes */
    expect_range_run(db, path, "-999999", 0, text, "");               /* more than there is */
    expect_range_run(db, path, "-0", 0, "", "");
    snprintf(want, sizeof(want), "%zu-", n);
    expect_range_run(db, path, want, 0, "", "");                      /* at the end: empty */
    snprintf(want, sizeof(want), "%zu-%zu", n + 1, n + 5);
    snprintf(err, sizeof(err), "streamdb: get %s: %soffset %zu is past the end of the document "
             "(%zu bytes)\n", path, db ? "" : "GET_RANGE: ", n + 1, n);
    expect_range_run(db, path, want, 5, "", err);
    expect_range_run(db, path, "9-3", 2, "", "streamdb get: --range: \"9-3\": END 3 is before "
                     "START 9 (END is inclusive: START-START is one byte)\nTry 'streamdb help get'.\n");
    expect_range_run(db, path, "ten-20", 2, "", "streamdb get: --range: \"ten-20\": START \"ten\" is "
                     "not a byte offset\nTry 'streamdb help get'.\n");
    expect_range_run(db, path, "7", 2, "", "streamdb get: --range: expected START-END, START- or -N "
                     "(byte offsets from 0, END inclusive), got \"7\"\nTry 'streamdb help get'.\n");
    expect_range_run(db, path, "3-x", 2, "", "streamdb get: --range: \"3-x\": END \"x\" is not a "
                     "byte offset\nTry 'streamdb help get'.\n");
}

/* `streamdb batch`, against the daemon (db NULL) or a local file: runs
 * input as the batch of a CLI invocation (adding --json when json). */
static void run_batch(ct_run_t *r, const char *db, const char *input, int json)
{
    static unsigned seq;
    char name[32];
    snprintf(name, sizeof name, "batch%u.txt", seq++);
    const char *file = ct_path(name);
    ct_write_file(file, input, strlen(input));
    const char *j = json ? "--json" : "batch";
    if (db)
        ct_run(r, NULL, NULL, NULL, "--db", db, "batch", file, json ? j : (char *)NULL,
               (char *)NULL);
    else
        ct_run(r, NULL, NULL, NULL, "-s", g_d.sock, "batch", file, json ? j : (char *)NULL,
               (char *)NULL);
}

static void get_expect(const char *db, const char *path, int status, const char *out)
{
    ct_run_t r;
    if (db)
        RUN(&r, "--db", db, "get", path);
    else
        CLI(&r, "get", path);
    CT_EXPECT(&r, status, out);
    ct_run_free(&r);
}

static void batch_scenario(const char *db)
{
    ct_run_t r;
    ct_write_file(ct_path("bfile.bin"), "from a file", 11);
    if (db)
        RUN(&r, "--db", db, "put", "/bt/keep", ct_path("bfile.bin"));
    else
        CLI(&r, "put", "/bt/keep", ct_path("bfile.bin"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    ct_run_free(&r);
    char input[1024];
    snprintf(input, sizeof input,
             "# a comment, then a blank line\n"
             "\n"
             "put /bt/a =hello world\n"
             "put /bt/b aGVsbG8=\n"
             "put if=0 /bt/c @%s\r\n"
             "put if=1 /bt/a =second\n"
             "  bind if=1 /bt/keep /bt/alias\n"
             "delete if=1 /bt/b\n"
             "unbind /bt/keep /bt/keep\n",
             ct_path("bfile.bin"));
    run_batch(&r, db, input, 0);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_msg(strstr(r.out, "line 3: put /bt/a: id ") && strstr(r.out, "line 6: put /bt/a: id ") &&
                  strstr(r.out, "version 2\n") && strstr(r.out, "7 operations applied\n"),
                  "%s", r.out);
    ct_run_free(&r);
    get_expect(db, "/bt/a", 0, "second");
    get_expect(db, "/bt/b", 1, "");
    get_expect(db, "/bt/c", 0, "from a file");
    get_expect(db, "/bt/alias", 0, "from a file");
    get_expect(db, "/bt/keep", 1, "");

    /* a failing operation names its line; nothing is applied */
    run_batch(&r, db, "put /bt/new =1\nput /bt/new2 =2\nput if=5 /bt/a =3\n", 0);
    ck_assert_int_eq(r.status, 3);
    CT_ERR_HAS(&r, "line 3 (put /bt/a)");
    ct_run_free(&r);
    get_expect(db, "/bt/new", 1, "");
    get_expect(db, "/bt/a", 0, "second");
    run_batch(&r, db, "put /bt/new =1\ndelete /bt/none\n", 0);
    ck_assert_int_eq(r.status, 1);
    CT_ERR_HAS(&r, "line 2 (delete /bt/none)");
    ct_run_free(&r);
    get_expect(db, "/bt/new", 1, "");

    /* bad lines are usage errors naming the line, nothing applied */
    static const struct { const char *in, *why; } bad[] = {
        { "put /bt/new =1\npur /bt/x =1\n", "line 2: unknown operation \"pur\"" },
        { "put /bt/new !!!\n", "line 1: put /bt/new: the content is not =TEXT, @FILE nor valid base64" },
        { "delete /bt/a extra\n", "line 1: delete /bt/a: unexpected \"extra\"" },
        { "put if=x /bt/a =1\n", "line 1: \"if=x\": expected if=VERSION" },
        { "bind /bt/x\n", "line 1: bind: missing ID PATH" },
        { "put /bt/new =1\nput /bt/y @/nonexistent/file\n", "line 2: put /bt/y: cannot open /nonexistent/file" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_batch(&r, db, bad[i].in, 0);
        ck_assert_msg(r.status == 2, "case %zu: exit %d: %s", i, r.status, r.err);
        CT_ERR_HAS(&r, bad[i].why);
        CT_ERR_HAS(&r, "nothing applied");
        ct_run_free(&r);
    }
    run_batch(&r, db, "bind /bt/nobody /bt/x\n", 0);
    ck_assert_int_eq(r.status, 1);
    CT_ERR_HAS(&r, "line 1: bind /bt/nobody: not an id, nor a path bound before the batch");
    ct_run_free(&r);
    get_expect(db, "/bt/new", 1, "");

    /* --json: one object per operation */
    run_batch(&r, db, "put /bt/j =json\ndelete /bt/j\n", 1);
    ck_assert_msg(r.status == 0, "%s", r.err);
    cJSON *j = parse_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    cJSON *o = cJSON_GetArrayItem(j, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "op")->valuestring, "delete");
    ck_assert_int_eq(cJSON_GetObjectItem(o, "line")->valueint, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "path")->valuestring, "/bt/j");
    cJSON_Delete(j);
    ct_run_free(&r);
    /* an empty input applies nothing and succeeds */
    run_batch(&r, db, "# nothing\n", 0);
    CT_EXPECT(&r, 0, "0 operations applied\n");
    ct_run_free(&r);
}

/* streamdb batch FILE|- against the daemon and in local mode: every line
 * form, conditions, errors naming the line, all or none, --json, stdin. */
START_TEST(test_batch)
{
    batch_scenario(NULL);
    batch_scenario(ct_path("batch.sdb"));
    ct_run_t r;
    ct_write_file(ct_path("stdin.txt"), "put /bt/stdin =from stdin\n", 26);
    CLI_IN(&r, ct_path("stdin.txt"), "batch", "-");
    ck_assert_msg(r.status == 0, "%s", r.err);
    ct_run_free(&r);
    get_expect(NULL, "/bt/stdin", 0, "from stdin");
    RUN(&r, "help", "batch");
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strstr(r.out, "put [if=N] PATH =TEXT") && strstr(r.out, "all of them"), "%s",
                  r.out);
    ct_run_free(&r);
}
END_TEST

START_TEST(test_get_range)
{
    size_t n;
    char *text = range_text(&n);
    ct_write_file(ct_path("range.txt"), text, n);
    ct_run_t r;
    char id[37];
    unsigned long long v, s;
    CLI(&r, "put", "/r/text", ct_path("range.txt"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    parse_put(&r, id, &v, &s);
    ct_run_free(&r);
    check_ranges(NULL, "/r/text", text, n);
    /* -o and --json: the file holds the range, the JSON says which */
    CLI(&r, "get", "/r/text", "--range", "10-29", "-o", ct_path("part.txt"), "--json");
    ck_assert_msg(r.status == 0, "%s", r.err);
    cJSON *j = parse_json(&r);
    cJSON *rg = cJSON_GetObjectItem(j, "range");
    ck_assert_ptr_nonnull(rg);
    ck_assert_int_eq(cJSON_GetObjectItem(rg, "offset")->valueint, 10);
    ck_assert_int_eq(cJSON_GetObjectItem(rg, "length")->valueint, 20);
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "size")->valuedouble, (int)n);
    cJSON_Delete(j);
    ct_run_free(&r);
    char *part = ct_read_file(ct_path("part.txt"), NULL);
    ck_assert_str_eq(part, "line 0001\nline 0002\n");
    free(part);
    /* an older version, by path and by id */
    CLI(&r, "put", "/r/text", "/dev/null");
    ck_assert_int_eq(r.status, 0);
    ct_run_free(&r);
    CLI(&r, "get", "/r/text", "--version", "1", "--range", "-10");
    CT_EXPECT(&r, 0, "line 9999\n");
    ct_run_free(&r);
    CLI(&r, "get", "--id", id, "--version", "1", "--range", "20-29");
    CT_EXPECT(&r, 0, "line 0002\n");
    ct_run_free(&r);
    CLI(&r, "get", "--id", id, "--range", "0-");
    CT_EXPECT(&r, 0, "");
    ct_run_free(&r);
    CLI(&r, "get", "/r/nope", "--range", "0-1");
    CT_EXPECT(&r, 1, "");
    ct_run_free(&r);
    /* the option belongs to get only; help documents it */
    CLI(&r, "cat", "/r/text", "--range", "0-1");
    ck_assert_int_eq(r.status, 2);
    ct_run_free(&r);
    RUN(&r, "help", "get");
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strstr(r.out, "--range START-END") && strstr(r.out, "END included"), "%s", r.out);
    ct_run_free(&r);
    /* local mode: the same answers */
    const char *db = ct_path("range.sdb");
    RUN(&r, "--db", db, "put", "/r/text", ct_path("range.txt"));
    ck_assert_msg(r.status == 0, "%s", r.err);
    ct_run_free(&r);
    check_ranges(db, "/r/text", text, n);
    free(text);
}
END_TEST

/* A server without byte ranges: the message says so. */
START_TEST(test_range_old_server)
{
    ct_fake_t fk;
    ct_run_t r;
    char want[512];
    ct_fake_start(&fk, FAKE_NO_RANGES);
    RUN(&r, "-s", fk.sock, "get", "/x", "--range", "0-9");
    ct_fake_stop(&fk);
    CT_EXPECT(&r, 5, "");
    snprintf(want, sizeof(want), "streamdb: get /x: unix:%s does not support byte ranges "
             "(GET_RANGE): the server predates them; read the whole document instead\n", fk.sock);
    ck_assert_str_eq(r.err, want);
    ct_run_free(&r);
}
END_TEST

Suite *suite_cli(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("commands");
    tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ping_and_addresses);
    tcase_add_test(tc, test_default_address);
    tcase_add_test(tc, test_put_get_cat);
    tcase_add_test(tc, test_if_version);
    tcase_add_test(tc, test_versions_info);
    tcase_add_test(tc, test_bind_unbind_paths);
    tcase_add_test(tc, test_rm);
    tcase_add_test(tc, test_ls);
    tcase_add_test(tc, test_stats_flush);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_big_pipe);
    tcase_add_test(tc, test_progress_bar);
    tcase_add_test(tc, test_get_range);
    tcase_add_test(tc, test_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_unchecked_fixture(tc, ct_dir_setup, ct_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stopped_server);
    tcase_add_test(tc, test_wrong_token);
    tcase_add_test(tc, test_server_closes_mid_transfer);
    tcase_add_test(tc, test_bad_server_answers);
    tcase_add_test(tc, test_range_old_server);
    tcase_add_test(tc, test_local_mode);
    tcase_add_test(tc, test_local_admin);
    tcase_add_test(tc, test_local_repair_checkpoint);
    tcase_add_test(tc, test_local_open_errors);
    suite_add_tcase(s, tc);
    return s;
}
