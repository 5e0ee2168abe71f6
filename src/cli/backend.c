/*
 * backend.c -- the CLI's two backends behind one set of be_ functions: the
 * client library (a streamdbd server, the default) and the engine itself
 * (local mode, `streamdb --db FILE`).  Commands never know which one runs;
 * errors come back as the same SDB_E* codes with the reason in cli->msg.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define DEFAULT_SOCKET "./data/streamdbd.sock"
#define DEFAULT_TCP "127.0.0.1:7878"
#define LOCAL_BUF (256u * 1024u)

int be_fail(cli_t *cli, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli->msg, sizeof(cli->msg), fmt, ap);
    va_end(ap);
    return err;
}

/* Records the reason for rc (0 passes through). */
static int done(cli_t *cli, int rc)
{
    if (rc >= 0)
        return rc;
    if (cli->msg[0])
        return rc;  /* a callback already said why */
    if (cli->c) {
        const char *m = sdbc_last_error_message();
        return be_fail(cli, rc, "%s", m[0] ? m : sdbc_strerror(rc));
    }
    if (rc == SDB_EIO || rc == SDB_ENOSPC || rc == SDB_ENOMEM || rc == SDB_EPERM) {
        /* the protocol's text for these speaks of a server: there is none,
           name the database file and the system's error instead */
        char os[256] = "";
        if (cli->db)
            sdb_last_os_error(cli->db, os, sizeof(os));
        return be_fail(cli, rc, "%s (database %s%s%s)", sdb_strerror(rc), cli->db_file,
                       os[0] ? ": " : "", os);
    }
    return be_fail(cli, rc, "%s", sdbc_strerror(rc));
}

/* Why opening path failed, as the system says it ("" when it opens now):
 * an absent file that could not be created names its directory's error. */
void be_open_error(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        return;
    }
    int e = errno;
    if (e == ENOENT) {
        char dir[4096];
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t)(slash - path) : 0;
        if (n >= sizeof(dir))
            n = sizeof(dir) - 1;
        memcpy(dir, slash ? path : ".", slash ? n : 1);
        dir[slash ? (n ? n : 1) : 1] = '\0';
        if (access(dir, W_OK) < 0 && errno != ENOENT) {
            snprintf(out, cap, " (cannot create it in %s: %s)", dir, strerror(errno));
            return;
        }
    }
    snprintf(out, cap, " (open: %s)", strerror(e));
}

static int start(cli_t *cli)
{
    cli->msg[0] = '\0';
    return 0;
}

/* Reads the token file as streamdbd reads its auth_token_file: one trailing
 * "\n" or "\r\n" removed; the rest must be 1..1024 bytes without a control
 * byte. */
static int read_token(const char *file, char *out, size_t cap)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "streamdb: cannot read the token file %s: %s\n", file, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    int big = n == cap - 1 && fgetc(f) != EOF;
    fclose(f);
    if (n > 0 && out[n - 1] == '\n')
        n -= n > 1 && out[n - 2] == '\r' ? 2 : 1;
    out[n] = '\0';
    if (big || n == 0) {
        fprintf(stderr, "streamdb: the token file %s must hold 1..1024 bytes of text\n", file);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch < 0x20 || ch == 0x7f) {
            fprintf(stderr, "streamdb: the token file %s holds the control byte 0x%02x at offset %zu "
                    "(only one trailing newline is stripped)\n", file, ch, i);
            return -1;
        }
    }
    return 0;
}

int be_open(cli_t *cli)
{
    if (cli->db_file) {
        int rc = sdb_open(cli->db_file, NULL, &cli->db);
        if (rc == SDB_ELOCKED) {
            fprintf(stderr, "streamdb: cannot open %s: the database is in use by another "
                            "process (a running streamdbd? talk to it without --db)\n",
                    cli->db_file);
            return EXIT_OTHER;
        }
        if (rc < 0) {
            char why[4200] = "";
            if (rc != SDB_ECORRUPT && rc != SDB_ENOMEM)
                be_open_error(cli->db_file, why, sizeof(why));
            fprintf(stderr, "streamdb: cannot open %s: %s%s\n", cli->db_file, sdb_strerror(rc), why);
            return EXIT_OTHER;
        }
        if (cli->quick)
            sdb_set_quick_mode(cli->db, 1);
        return 0;
    }
    const char *addr = cli->addr;
    if (!addr || !*addr)
        addr = getenv("STREAMDB_URL");
    if (!addr || !*addr) {
        struct stat st;
        addr = stat(DEFAULT_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode) ? DEFAULT_SOCKET
                                                                       : DEFAULT_TCP;
    }
    char token[1100] = "";
    if (cli->token_file) {
        if (read_token(cli->token_file, token, sizeof(token)) < 0)
            return EXIT_USAGE;
    } else if (getenv("STREAMDB_TOKEN")) {
        snprintf(token, sizeof(token), "%s", getenv("STREAMDB_TOKEN"));
    }
    sdbc_options_t o;
    sdbc_options_default(&o);
    o.token = token;
    char name[64];
    snprintf(name, sizeof(name), "streamdb-cli/%s", SDB_VERSION_STRING);
    o.client_name = name;
    if (cli->timeout_ms) {
        o.timeout_ms = cli->timeout_ms;
        if (cli->timeout_ms < o.connect_timeout_ms)
            o.connect_timeout_ms = cli->timeout_ms;
    }
    int rc = sdbc_connect(addr, &o, &cli->c);
    if (rc < 0) {
        fprintf(stderr, "streamdb: %s%s\n", sdbc_last_error_message(),
                rc == SDB_EAUTH && !token[0] ? " (set STREAMDB_TOKEN or use --token-file)" : "");
        return rc == SDB_EINVAL ? EXIT_USAGE : rc == SDB_ENOMEM ? EXIT_OTHER : EXIT_CONN;
    }
    if (cli->quick)
        sdbc_set_quick(cli->c, 1);
    return 0;
}

int be_close(cli_t *cli)
{
    int rc = 0;
    if (cli->c)
        sdbc_close(cli->c);
    if (cli->db)
        rc = sdb_close(cli->db);
    cli->c = NULL;
    cli->db = NULL;
    return rc;
}

int be_ping(cli_t *cli, uint64_t *rtt_us)
{
    start(cli);
    if (cli->c)
        return done(cli, sdbc_ping(cli->c, rtt_us));
    *rtt_us = 0;
    return 0;
}

int be_put(cli_t *cli, const char *path, sdbc_read_cb cb, void *arg, uint64_t size,
           uint64_t if_version, sdb_docinfo_t *out)
{
    start(cli);
    if (cli->c)
        return done(cli, sdbc_put_cb(cli->c, path, cb, arg, size, if_version, out));
    sdb_writer_t *w = NULL;
    int rc = sdb_writer_open(cli->db, path, if_version, &w);
    if (rc < 0)
        return done(cli, rc);
    char *buf = malloc(LOCAL_BUF);
    if (!buf) {
        sdb_writer_abort(w);
        return done(cli, SDB_ENOMEM);
    }
    uint64_t total = 0;
    for (;;) {
        size_t want = LOCAL_BUF, n = 0;
        if (size != SDBC_SIZE_UNKNOWN && size - total < want)
            want = (size_t)(size - total);
        if (want == 0)
            break;
        if ((rc = cb(arg, buf, want, &n)) < 0 || n == 0)
            break;
        if ((rc = sdb_writer_write(w, buf, n)) < 0)
            break;
        total += n;
    }
    free(buf);
    if (rc == 0 && size != SDBC_SIZE_UNKNOWN && total != size)
        rc = be_fail(cli, SDB_ELOCAL, "the content ended after %llu of %llu bytes",
                     (unsigned long long)total, (unsigned long long)size);
    if (rc < 0) {
        sdb_writer_abort(w);
        return done(cli, rc);
    }
    return done(cli, sdb_writer_commit(w, out));
}

int be_get(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version,
           sdbc_write_cb cb, void *arg, sdb_docinfo_t *out)
{
    start(cli);
    if (cli->c) {
        if (path)
            return done(cli, sdbc_get_cb(cli->c, path, cb, arg, out));
        return done(cli, sdbc_get_id_cb(cli->c, id, version, cb, arg, out));
    }
    sdb_reader_t *r = NULL;
    sdb_docinfo_t info;
    int rc = path ? sdb_reader_open(cli->db, path, &r, &info)
                  : sdb_reader_open_id(cli->db, id, version, &r, &info);
    if (rc < 0)
        return done(cli, rc);
    char *buf = malloc(LOCAL_BUF);
    if (!buf) {
        sdb_reader_close(r);
        return done(cli, SDB_ENOMEM);
    }
    for (;;) {
        size_t n = 0;
        if ((rc = sdb_reader_read(r, buf, LOCAL_BUF, &n)) < 0 || n == 0)
            break;
        if ((rc = cb(arg, &info, buf, n)) < 0)
            break;
    }
    free(buf);
    sdb_reader_close(r);
    if (rc == 0 && out)
        *out = info;
    return done(cli, rc);
}

int be_get_range(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version,
                 uint64_t offset, uint64_t length, sdbc_write_cb cb, void *arg, sdbc_range_t *out)
{
    start(cli);
    if (cli->c) {
        if (path)
            return done(cli, sdbc_get_range_cb(cli->c, path, offset, length, cb, arg, out));
        return done(cli, sdbc_get_id_range_cb(cli->c, id, version, offset, length, cb, arg, out));
    }
    sdb_reader_t *r = NULL;
    sdb_docinfo_t info;
    uint64_t avail = 0;
    int rc = path ? sdb_reader_open(cli->db, path, &r, &info)
                  : sdb_reader_open_id(cli->db, id, version, &r, &info);
    if (rc < 0)
        return done(cli, rc);
    if (offset > info.size) {
        sdb_reader_close(r);
        return be_fail(cli, SDB_EINVAL, "offset %llu is past the end of the document (%llu bytes)",
                       (unsigned long long)offset, (unsigned long long)info.size);
    }
    char *buf = NULL;
    if (!(rc = sdb_reader_range(r, offset, length, &avail)) && !(buf = malloc(LOCAL_BUF)))
        rc = SDB_ENOMEM;
    while (!rc) {
        size_t n = 0;
        if ((rc = sdb_reader_read(r, buf, LOCAL_BUF, &n)) < 0 || n == 0)
            break;
        rc = cb(arg, &info, buf, n);
    }
    free(buf);
    sdb_reader_close(r);
    if (rc == 0 && out) {
        out->doc = info;
        out->offset = offset;
        out->length = avail;
    }
    return done(cli, rc);
}

int be_lookup(cli_t *cli, const char *path, sdb_docinfo_t *out)
{
    start(cli);
    return done(cli, cli->c ? sdbc_lookup(cli->c, path, out) : sdb_lookup(cli->db, path, out));
}

int be_delete(cli_t *cli, const char *path)
{
    start(cli);
    return done(cli, cli->c ? sdbc_delete(cli->c, path) : sdb_delete(cli->db, path));
}

int be_delete_id(cli_t *cli, const sdb_id_t *id)
{
    start(cli);
    return done(cli, cli->c ? sdbc_delete_id(cli->c, id) : sdb_delete_id(cli->db, id));
}

int be_bind(cli_t *cli, const sdb_id_t *id, const char *path)
{
    start(cli);
    return done(cli, cli->c ? sdbc_bind(cli->c, id, path) : sdb_bind(cli->db, id, path));
}

int be_unbind(cli_t *cli, const sdb_id_t *id, const char *path)
{
    start(cli);
    return done(cli, cli->c ? sdbc_unbind(cli->c, id, path) : sdb_unbind(cli->db, id, path));
}

int be_search(cli_t *cli, const char *prefix, const sdbc_search_opts_t *opts, sdb_entry_cb cb,
              void *arg)
{
    start(cli);
    if (cli->c)
        return done(cli, sdbc_search(cli->c, prefix, opts, cb, arg));
    if (opts->limit > SIZE_MAX)
        return be_fail(cli, SDB_EINVAL, "limit too large");
    sdb_search_opts_t so = { opts->start_after, (size_t)opts->limit, opts->delimiter };
    return done(cli, sdb_search(cli->db, prefix, &so, cb, arg));
}

int be_list_paths(cli_t *cli, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    start(cli);
    return done(cli, cli->c ? sdbc_list_paths(cli->c, id, cb, arg)
                            : sdb_list_paths(cli->db, id, cb, arg));
}

int be_list_versions(cli_t *cli, const sdb_id_t *id, sdb_entry_cb cb, void *arg)
{
    start(cli);
    return done(cli, cli->c ? sdbc_list_versions(cli->c, id, cb, arg)
                            : sdb_list_versions(cli->db, id, cb, arg));
}

static int first_version_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    *(sdb_docinfo_t *)arg = *info;
    return 1;
}

int be_info(cli_t *cli, const sdb_id_t *id, sdb_docinfo_t *out)
{
    start(cli);
    if (cli->c)
        return done(cli, sdbc_info(cli->c, id, out, NULL));
    /* The engine's sdb_info gives text only; the current version is the
     * first one listed. */
    return done(cli, sdb_list_versions(cli->db, id, first_version_cb, out));
}

int be_stats(cli_t *cli, cJSON **out)
{
    start(cli);
    *out = NULL;
    if (cli->c) {
        char *json = NULL;
        int rc = sdbc_stats(cli->c, &json);
        if (rc < 0)
            return done(cli, rc);
        *out = cJSON_Parse(json);
        free(json);
        if (!*out)
            return be_fail(cli, SDB_EPROTO, "the server's statistics are not valid JSON");
        return 0;
    }
    sdb_stats_t st;
    int rc = sdb_stats(cli->db, &st);
    if (rc < 0)
        return done(cli, rc);
    cJSON *root = cJSON_CreateObject();
    if (root)
        cJSON_AddStringToObject(root, "database", cli->db_file);
    cJSON *e = root ? cJSON_AddObjectToObject(root, "engine") : NULL;
    if (!e) {
        cJSON_Delete(root);
        return done(cli, SDB_ENOMEM);
    }
    cJSON_AddNumberToObject(e, "total_pages", (double)st.total_pages);
    cJSON_AddNumberToObject(e, "free_pages", (double)st.free_pages);
    cJSON_AddNumberToObject(e, "documents", (double)st.documents);
    cJSON_AddNumberToObject(e, "paths", (double)st.paths);
    cJSON_AddNumberToObject(e, "file_bytes", (double)st.file_bytes);
    cJSON_AddNumberToObject(e, "cache_hits", (double)st.cache_hits);
    cJSON_AddNumberToObject(e, "cache_misses", (double)st.cache_misses);
    cJSON_AddNumberToObject(e, "checkpoints", (double)st.checkpoints);
    cJSON_AddNumberToObject(e, "journal_pages", (double)st.journal_pages);
    cJSON_AddNumberToObject(e, "checkpoint_running", (double)st.checkpoint_running);
    *out = root;
    return 0;
}

int be_flush(cli_t *cli)
{
    start(cli);
    return done(cli, cli->c ? sdbc_flush(cli->c) : sdb_flush(cli->db));
}

/* ---- atomic batches ---- */

struct be_batch {
    sdbc_batch_t *r;               /* remote */
    sdb_batch_t *l;                /* local */
};

int be_batch_new(cli_t *cli, be_batch_t **out)
{
    start(cli);
    be_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return be_fail(cli, SDB_ENOMEM, "out of memory");
    int rc = cli->c ? sdbc_batch_new(&b->r) : sdb_batch_new(&b->l);
    if (rc < 0) {
        free(b);
        return done(cli, rc);
    }
    *out = b;
    return 0;
}

int be_batch_add(cli_t *cli, be_batch_t *b, int op, const sdb_id_t *id, const char *path,
                 const void *data, size_t len, uint64_t if_version)
{
    start(cli);
    int rc;
    if (b->r)
        rc = op == 'p' ? sdbc_batch_put(b->r, path, data, len, if_version)
           : op == 'd' ? sdbc_batch_delete(b->r, path, if_version)
           : op == 'b' ? sdbc_batch_bind(b->r, id, path, if_version)
                       : sdbc_batch_unbind(b->r, id, path, if_version);
    else
        rc = op == 'p' ? sdb_batch_put(b->l, path, data, len, if_version)
           : op == 'd' ? sdb_batch_delete(b->l, path, if_version)
           : op == 'b' ? sdb_batch_bind(b->l, id, path, if_version)
                       : sdb_batch_unbind(b->l, id, path, if_version);
    if (rc == SDB_ETOOLARGE && !b->r)
        return be_fail(cli, rc, "a batch holds at most %d operations and %u bytes of content",
                       SDB_BATCH_MAX_OPS, (unsigned)SDB_BATCH_MAX_BYTES);
    return done(cli, rc);
}

int be_batch_commit(cli_t *cli, be_batch_t *b, sdb_docinfo_t *results, size_t *failed)
{
    start(cli);
    return done(cli, b->r ? sdbc_batch_commit(cli->c, b->r, results, failed)
                          : sdb_batch_commit(cli->db, b->l, results, failed));
}

void be_batch_free(be_batch_t *b)
{
    if (b) {
        sdbc_batch_free(b->r);
        sdb_batch_free(b->l);
        free(b);
    }
}
