/*
 * commands.c -- every `streamdb` command: argument checks (before anything
 * is opened, so a usage error needs no server), the backend calls, and the
 * output in text or --json.  The command table at the end holds each
 * command's help text, options and argument counts.
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

/* ---- Errors and exit codes ---- */

int cli_exit_code(int err)
{
    switch (err) {
    case SDB_OK: return EXIT_OK;
    case SDB_ENOTFOUND: return EXIT_NOTFOUND;
    case SDB_ECONFLICT: return EXIT_CONFLICT;
    case SDB_ECONNECT:
    case SDB_ECONNLOST:
    case SDB_ENORESPONSE:
    case SDB_EAUTH:
    case SDB_EVERSION:
    case SDB_EPROTO:
    case SDB_EBUSY:
    case SDB_ESHUTDOWN:
    case SDB_ETIMEDOUT: return EXIT_CONN;
    default: return EXIT_OTHER;
    }
}

int cli_report(cli_t *cli, int err, const char *fmt, ...)
{
    char what[SDB_MAX_PATH + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "streamdb: %s: %s\n", what, cli->msg[0] ? cli->msg : sdbc_strerror(err));
    return cli_exit_code(err);
}

int cli_usage_error(cli_t *cli, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (cli->cmd) {
        fprintf(stderr, "streamdb %s: %s\nTry 'streamdb help %s'.\n", cli->cmd, text, cli->cmd);
    } else {
        fprintf(stderr, "streamdb: %s\nTry 'streamdb help'.\n", text);
    }
    return EXIT_USAGE;
}

/* ---- Helpers ---- */

/* Parses --id (usage error when malformed). */
static int parse_id_opt(cli_t *cli, const char *text, sdb_id_t *id)
{
    if (sdb_id_parse(text, id) < 0)
        return cli_usage_error(cli, "\"%s\" is not a document id (expected the 8-4-4-4-12 form, "
                               "e.g. 3f2504e0-4f89-41d3-9a0c-0305e82c3301)", text);
    return 0;
}

/* An argument that is an id, or a path naming the document bound to it:
 * fills *id (and *info when it was looked up).  Returns 0 or an exit code
 * (after printing the error). */
static int resolve(cli_t *cli, const char *arg, sdb_id_t *id, const char *what)
{
    if (sdb_id_parse(arg, id) == 0)
        return 0;
    sdb_docinfo_t info;
    int rc = be_lookup(cli, arg, &info);
    if (rc < 0)
        return cli_report(cli, rc, "%s %s", what, arg);
    *id = info.id;
    return 0;
}

static cJSON *docinfo_with_path(const sdb_docinfo_t *info, const char *path)
{
    cJSON *o = cJSON_CreateObject();
    if (o && path)
        cJSON_AddStringToObject(o, "path", path);
    if (o)
        out_docinfo_fields(o, info);
    return o;
}

/* ---- put ---- */

typedef struct {
    cli_t *cli;
    int fd;
    const char *name;
    progress_t progress;
} src_t;

static int src_read_cb(void *arg, void *buf, size_t cap, size_t *n)
{
    src_t *s = arg;
    for (;;) {
        ssize_t r = read(s->fd, buf, cap);
        if (r >= 0) {
            *n = (size_t)r;
            progress_add(&s->progress, (uint64_t)r, SDBC_SIZE_UNKNOWN);
            return 0;
        }
        if (errno != EINTR)
            return be_fail(s->cli, SDB_ELOCAL, "cannot read %s: %s", s->name, strerror(errno));
    }
}

static int cmd_put(cli_t *cli)
{
    const char *path = cli->args[0];
    const char *file = cli->nargs > 1 ? cli->args[1] : "-";
    src_t s = { .cli = cli, .fd = 0, .name = "standard input" };
    if (strcmp(file, "-") != 0) {
        s.name = file;
        if ((s.fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
            fprintf(stderr, "streamdb: put %s: cannot open %s: %s\n", path, file, strerror(errno));
            return EXIT_OTHER;
        }
    }
    uint64_t size = SDBC_SIZE_UNKNOWN;
    struct stat st;
    if (fstat(s.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "streamdb: put %s: %s is a directory\n", path, s.name);
        if (s.fd)
            close(s.fd);
        return EXIT_OTHER;
    }
    if (fstat(s.fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t at = lseek(s.fd, 0, SEEK_CUR);
        size = (uint64_t)st.st_size - (at > 0 && at <= st.st_size ? (uint64_t)at : 0);
    }
    int rc = be_open(cli);
    if (rc) {
        if (s.fd)
            close(s.fd);
        return rc;
    }
    if (s.fd == 0 && isatty(0))
        fprintf(stderr, "streamdb: reading the content of %s from the terminal (end it with "
                        "Ctrl-D)\n", path);
    sdb_docinfo_t info;
    progress_start(&s.progress, cli->progress, path, size);
    rc = be_put(cli, path, src_read_cb, &s, size, cli->if_version, &info);
    progress_end(&s.progress);
    if (s.fd)
        close(s.fd);
    if (rc < 0) {
        if (rc == SDB_ECONFLICT && cli->if_version != SDBC_ANY_VERSION && !cli->c) {
            sdb_docinfo_t cur;      /* local mode: say what the current version is */
            int bound = sdb_lookup(cli->db, path, &cur) == SDB_OK;
            if (cli->if_version == 0)
                be_fail(cli, rc, "the path is already bound, at version %llu (--if-version 0 writes "
                        "only new paths)", bound ? (unsigned long long)cur.version : 0ull);
            else if (!bound)
                be_fail(cli, rc, "the path is not bound (--if-version %llu wants a document at that "
                        "version)", (unsigned long long)cli->if_version);
            else
                be_fail(cli, rc, "the document is at version %llu, not %llu",
                        (unsigned long long)cur.version, (unsigned long long)cli->if_version);
        }
        return cli_report(cli, rc, "put %s", path);
    }
    if (cli->json) {
        out_json(docinfo_with_path(&info, path));
    } else {
        char ids[37];
        sdb_id_format(&info.id, ids);
        printf("id %s version %llu size %llu\n", ids, (unsigned long long)info.version,
               (unsigned long long)info.size);
    }
    return EXIT_OK;
}

/* ---- get, cat ---- */

typedef struct {
    cli_t *cli;
    int fd;
    const char *name;
    int range;                 /* a part: info->size is not the total to expect */
    progress_t progress;
} sink_t;

static int sink_write_cb(void *arg, const sdb_docinfo_t *info, const void *data, size_t len)
{
    sink_t *s = arg;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(s->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return be_fail(s->cli, SDB_ELOCAL, "cannot write %s: %s", s->name,
                           w < 0 ? strerror(errno) : "short write");
        p += w;
        left -= (size_t)w;
    }
    progress_add(&s->progress, len, s->range ? SDBC_SIZE_UNKNOWN : info->size);
    return 0;
}

/* Reads one document (path, or id + version) into s->fd.  Returns 0 or an
 * SDB_E* code with cli->msg set. */
static int fetch(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version, sink_t *s,
                 sdb_docinfo_t *info)
{
    sdb_id_t resolved;
    if (path && version) {
        sdb_docinfo_t cur;
        int rc = be_lookup(cli, path, &cur);
        if (rc < 0)
            return rc;
        resolved = cur.id;
        id = &resolved;
        path = NULL;
    }
    progress_start(&s->progress, cli->progress, path ? path : "download", SDBC_SIZE_UNKNOWN);
    int rc = be_get(cli, path, id, version, sink_write_cb, s, info);
    progress_end(&s->progress);
    return rc;
}

/* As fetch, for get --range: the range in cli (START-END, START- or -N) of
 * one document into s->fd; *out gets the version and the range read. */
static int fetch_range(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version,
                       sink_t *s, sdbc_range_t *out)
{
    sdb_id_t resolved;
    uint64_t offset = cli->range_start, length = cli->range_len;
    if (path && version) {             /* an older version: by the id bound to path */
        sdb_docinfo_t cur;
        int rc = be_lookup(cli, path, &cur);
        if (rc < 0)
            return rc;
        resolved = cur.id;
        id = &resolved;
        path = NULL;
    }
    if (cli->range_suffix) {
        /* find the size (an empty range reads no page) and pin the version,
           so that the range asked next is of the version measured */
        sdbc_range_t first;
        int rc = be_get_range(cli, path, id, version, 0, 0, sink_write_cb, s, &first);
        if (rc < 0)
            return rc;
        resolved = first.doc.id;
        id = &resolved;
        version = first.doc.version;
        path = NULL;
        length = cli->range_len < first.doc.size ? cli->range_len : first.doc.size;
        offset = first.doc.size - length;
    }
    s->range = 1;
    progress_start(&s->progress, cli->progress, path ? path : "download", SDBC_SIZE_UNKNOWN);
    int rc = be_get_range(cli, path, id, version, offset, length, sink_write_cb, s, out);
    progress_end(&s->progress);
    return rc;
}

/* Opens the -o destination: a temporary file beside it (renamed over it on
 * success) when it is or will be a regular file, else the file itself
 * (/dev/null, a FIFO). */
static int open_dest(const char *file, char *tmp, size_t cap)
{
    struct stat st;
    tmp[0] = '\0';
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
        return open(file, O_WRONLY | O_CLOEXEC);
    if ((size_t)snprintf(tmp, cap, "%s.streamdb-XXXXXX", file) >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        tmp[0] = '\0';
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    return fd;
}

static int cmd_get(cli_t *cli)
{
    sdb_id_t id;
    const char *path = NULL;
    if (cli->id_opt) {
        if (cli->nargs > 0)
            return cli_usage_error(cli, "give either PATH or --id ID, not both");
        int rc = parse_id_opt(cli, cli->id_opt, &id);
        if (rc)
            return rc;
    } else if (cli->nargs == 1) {
        path = cli->args[0];
    } else {
        return cli_usage_error(cli, "missing PATH (or --id ID)");
    }
    if (cli->json && !cli->out_file)
        return cli_usage_error(cli, "--json needs -o FILE (the content goes to standard output)");
    int rc = be_open(cli);
    if (rc)
        return rc;
    sink_t s = { .cli = cli, .fd = STDOUT_FILENO, .name = "standard output" };
    char tmp[4200];
    tmp[0] = '\0';
    if (cli->out_file) {
        s.name = cli->out_file;
        if ((s.fd = open_dest(cli->out_file, tmp, sizeof(tmp))) < 0) {
            fprintf(stderr, "streamdb: get: cannot create %s: %s\n", cli->out_file,
                    strerror(errno));
            return EXIT_OTHER;
        }
    }
    char what[SDB_MAX_PATH + 64];
    if (path) {
        snprintf(what, sizeof(what), "%s", path);
    } else {
        sdb_id_format(&id, what);
    }
    sdb_docinfo_t info;
    sdbc_range_t range;
    fflush(stdout);
    if (cli->range) {
        rc = fetch_range(cli, path, path ? NULL : &id, cli->version, &s, &range);
        info = range.doc;
    } else {
        rc = fetch(cli, path, path ? NULL : &id, cli->version, &s, &info);
    }
    if (cli->out_file) {
        if (rc == 0 && close(s.fd) < 0)
            rc = be_fail(cli, SDB_ELOCAL, "cannot write %s: %s", cli->out_file, strerror(errno));
        else if (rc < 0)
            close(s.fd);
        if (rc == 0 && tmp[0] && rename(tmp, cli->out_file) < 0)
            rc = be_fail(cli, SDB_ELOCAL, "cannot rename %s to %s: %s", tmp, cli->out_file,
                         strerror(errno));
        if (rc < 0 && tmp[0])
            unlink(tmp);
    }
    if (rc < 0) {
        if (cli->version)
            return cli_report(cli, rc, "get %s version %llu", what,
                              (unsigned long long)cli->version);
        return cli_report(cli, rc, "get %s", what);
    }
    if (cli->json) {
        cJSON *o = docinfo_with_path(&info, path);
        if (o && cli->range) {
            cJSON *r = cJSON_AddObjectToObject(o, "range");
            if (r) {
                cJSON_AddNumberToObject(r, "offset", (double)range.offset);
                cJSON_AddNumberToObject(r, "length", (double)range.length);
            }
        }
        out_json(o);
    }
    return EXIT_OK;
}

/* The arguments of commands that take PATHs or --id ID (cat, rm): parses the
 * id into *id and opens the backend.  Returns 0 or an exit code. */
static int paths_or_id(cli_t *cli, sdb_id_t *id)
{
    if (cli->id_opt) {
        if (cli->nargs > 0)
            return cli_usage_error(cli, "give either PATHs or --id ID, not both");
        int rc = parse_id_opt(cli, cli->id_opt, id);
        if (rc)
            return rc;
    } else if (cli->nargs == 0) {
        return cli_usage_error(cli, "missing PATH (or --id ID)");
    }
    return be_open(cli);
}

static int cmd_cat(cli_t *cli)
{
    sdb_id_t id;
    int rc = paths_or_id(cli, &id);
    if (rc)
        return rc;
    sink_t s = { .cli = cli, .fd = STDOUT_FILENO, .name = "standard output" };
    int code = EXIT_OK;
    fflush(stdout);
    if (cli->id_opt) {
        if ((rc = fetch(cli, NULL, &id, cli->version, &s, NULL)) < 0)
            return cli_report(cli, rc, "cat %s", cli->id_opt);
        return EXIT_OK;
    }
    for (int i = 0; i < cli->nargs; i++) {
        if ((rc = fetch(cli, cli->args[i], NULL, cli->version, &s, NULL)) < 0) {
            int c = cli_report(cli, rc, "cat %s", cli->args[i]);
            if (code == EXIT_OK)
                code = c;
            if (c == EXIT_CONN || rc == SDB_ELOCAL)
                break;
        }
    }
    return code;
}

/* ---- rm, bind, unbind, flush ---- */

static int cmd_rm(cli_t *cli)
{
    sdb_id_t id;
    int rc = paths_or_id(cli, &id);
    if (rc)
        return rc;
    if (cli->id_opt) {
        if ((rc = be_delete_id(cli, &id)) < 0)
            return cli_report(cli, rc, "rm --id %s", cli->id_opt);
        return EXIT_OK;
    }
    int code = EXIT_OK;
    for (int i = 0; i < cli->nargs; i++) {
        if ((rc = be_delete(cli, cli->args[i])) < 0) {
            int c = cli_report(cli, rc, "rm %s", cli->args[i]);
            if (code == EXIT_OK)
                code = c;
            if (c == EXIT_CONN)
                break;
        }
    }
    return code;
}

static int bind_common(cli_t *cli, int bind)
{
    const char *name = bind ? "bind" : "unbind";
    int rc = be_open(cli);
    if (rc)
        return rc;
    sdb_id_t id;
    if ((rc = resolve(cli, cli->args[0], &id, name)))
        return rc;
    rc = bind ? be_bind(cli, &id, cli->args[1]) : be_unbind(cli, &id, cli->args[1]);
    if (rc < 0) {
        if (rc == SDB_ENOTFOUND && !bind && !cli->c)
            be_fail(cli, rc, "the path is not bound to that document");
        return cli_report(cli, rc, "%s %s %s", name, cli->args[0], cli->args[1]);
    }
    return EXIT_OK;
}

static int cmd_bind(cli_t *cli)
{
    return bind_common(cli, 1);
}

static int cmd_unbind(cli_t *cli)
{
    return bind_common(cli, 0);
}

/* ---- batch ---- */

#define BATCH_INPUT_MAX ((size_t)SDB_BATCH_MAX_BYTES * 2 + (64u << 20))  /* base64 + paths */

/* Reads all of fd (the input of `batch`) into a NUL-terminated buffer. */
static int read_all_fd(int fd, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= BATCH_INPUT_MAX) {
                free(b);
                return SDB_ETOOLARGE;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb)
                break;
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            return SDB_EIO;
        }
        if (r == 0) {
            b[n] = '\0';
            *out = b;
            *len = n;
            return 0;
        }
        n += (size_t)r;
    }
    free(b);
    return SDB_ENOMEM;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

/* Decodes base64 (standard or URL alphabet, padding optional) into a new
 * buffer.  Returns 0, or -1 for a byte outside the alphabet or a bad length. */
static int b64_decode(const char *in, size_t n, uint8_t **out, size_t *len)
{
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o)
        return -1;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = o;
    *len = k;
    return 0;
}

/* Splits off the next whitespace-separated word of *p (NUL-terminating it)
 * and returns it, or NULL at the end of the line. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

typedef struct {
    int line;
    const char *op;
    char *path;                    /* into the input buffer */
} batch_line_t;

static int batch_input_error(cli_t *cli, const char *src, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int batch_input_error(cli_t *cli, const char *src, int line, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    (void)cli;
    fprintf(stderr, "streamdb batch: %s line %d: %s; nothing applied\n", src, line, text);
    return EXIT_USAGE;
}

/* Parses one operation line (see the help text) and adds it to b. */
static int batch_line(cli_t *cli, be_batch_t *b, const char *src, int lineno, char *line,
                      batch_line_t *out)
{
    char *p = line;
    char *op = next_word(&p);
    uint64_t ifv = SDBC_ANY_VERSION;
    char *w = next_word(&p);
    if (w && strncmp(w, "if=", 3) == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(w + 3, &end, 10);
        if (!w[3] || *end || errno || w[3] == '-' || v == UINT64_MAX)
            return batch_input_error(cli, src, lineno, "\"%s\": expected if=VERSION (a number)", w);
        ifv = v;
        w = next_word(&p);
    }
    int code = op[0] == 'p' ? 'p' : op[0] == 'd' ? 'd' : op[0] == 'b' ? 'b' : 'u';
    if (strcmp(op, "put") && strcmp(op, "delete") && strcmp(op, "bind") && strcmp(op, "unbind"))
        return batch_input_error(cli, src, lineno, "unknown operation \"%s\" (put, delete, bind, "
                                 "unbind)", op);
    sdb_id_t id;
    const char *id_arg = NULL;
    if (code == 'b' || code == 'u') {
        id_arg = w;
        w = next_word(&p);
    }
    if (!w)
        return batch_input_error(cli, src, lineno, "%s: missing %s", op,
                                 code == 'p' ? "PATH and content" : code == 'd' ? "PATH" : "ID PATH");
    char *path = w;
    out->line = lineno;
    out->op = code == 'p' ? "put" : code == 'd' ? "delete" : code == 'b' ? "bind" : "unbind";
    out->path = path;
    if (id_arg && sdb_id_parse(id_arg, &id) != 0) {
        sdb_docinfo_t info;
        int rc = be_lookup(cli, id_arg, &info);
        if (rc < 0) {
            fprintf(stderr, "streamdb batch: %s line %d: %s %s: %s; nothing applied\n", src,
                    lineno, op, id_arg, rc == SDB_ENOTFOUND ? "not an id, nor a path bound "
                    "before the batch" : cli->msg);
            return cli_exit_code(rc);
        }
        id = info.id;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rc, owned = 0;             /* data allocated here (@FILE, base64), not in the line */
    if (code == 'p') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '=') {
            data = (uint8_t *)p + 1;       /* the rest of the line, as it is */
            len = strlen(p + 1);
            p += 1 + len;
        } else if (*p == '@') {
            char *file = next_word(&p);
            int fd = open(file + 1, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return batch_input_error(cli, src, lineno, "put %s: cannot open %s: %s", path,
                                         file + 1, strerror(errno));
            char *buf;
            rc = read_all_fd(fd, &buf, &len);
            close(fd);
            if (rc)
                return batch_input_error(cli, src, lineno, "put %s: cannot read %s: %s", path,
                                         file + 1, rc == SDB_ETOOLARGE ? "too large"
                                                                       : sdb_strerror(rc));
            data = (uint8_t *)buf;
            owned = 1;
        } else {
            char *text = next_word(&p);
            if (!text)
                return batch_input_error(cli, src, lineno, "put %s: missing the content "
                                         "(=TEXT, @FILE or base64)", path);
            if (b64_decode(text, strlen(text), &data, &len))
                return batch_input_error(cli, src, lineno, "put %s: the content is not =TEXT, "
                                         "@FILE nor valid base64", path);
            owned = 1;
        }
    }
    if ((w = next_word(&p)) != NULL) {
        if (owned)
            free(data);
        return batch_input_error(cli, src, lineno, "%s %s: unexpected \"%s\"", op, path, w);
    }
    rc = be_batch_add(cli, b, code, id_arg ? &id : NULL, path, data, len, ifv);
    if (owned)
        free(data);
    if (rc < 0) {
        fprintf(stderr, "streamdb batch: %s line %d: %s %s: %s; nothing applied\n", src, lineno,
                op, path, cli->msg);
        return rc == SDB_EINVAL ? EXIT_USAGE : cli_exit_code(rc);
    }
    return 0;
}

static int cmd_batch(cli_t *cli)
{
    const char *src = cli->args[0];
    int fd = strcmp(src, "-") == 0 ? 0 : open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "streamdb batch: cannot open %s: %s\n", src, strerror(errno));
        return EXIT_USAGE;
    }
    char *input = NULL;
    size_t ilen = 0;
    int rc = read_all_fd(fd, &input, &ilen);
    if (fd)
        close(fd);
    if (rc) {
        fprintf(stderr, "streamdb batch: cannot read %s: %s\n", fd ? src : "standard input",
                rc == SDB_ETOOLARGE ? "too large" : sdb_strerror(rc));
        return EXIT_OTHER;
    }
    if (strcmp(src, "-") == 0)
        src = "standard input";
    if (memchr(input, '\0', ilen)) {
        free(input);
        fprintf(stderr, "streamdb batch: %s: a NUL byte in the input (use base64 or @FILE for "
                        "binary content)\n", src);
        return EXIT_USAGE;
    }
    be_batch_t *b = NULL;
    batch_line_t *lines = NULL;
    sdb_docinfo_t *res = NULL;
    size_t n = 0, cap = 0;
    int code = be_open(cli);
    if (!code && (rc = be_batch_new(cli, &b)) < 0)
        code = cli_report(cli, rc, "batch");
    char *p = input;
    for (int lineno = 1; !code && *p; lineno++) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol)
            *eol = '\0';
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r')
            p[l - 1] = '\0';
        char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q && *q != '#') {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                batch_line_t *t = realloc(lines, cap * sizeof(*t));
                if (!t) {
                    code = cli_report(cli, be_fail(cli, SDB_ENOMEM, "out of memory"), "batch");
                    break;
                }
                lines = t;
            }
            code = batch_line(cli, b, src, lineno, q, &lines[n]);
            if (!code)
                n++;
        }
        p = next;
    }
    size_t failed = SDB_BATCH_NO_ITEM;
    if (!code && n && !(res = calloc(n, sizeof(*res))))
        code = cli_report(cli, be_fail(cli, SDB_ENOMEM, "out of memory"), "batch");
    if (!code && (rc = be_batch_commit(cli, b, res, &failed)) < 0) {
        if (failed != SDB_BATCH_NO_ITEM && failed < n)
            code = cli_report(cli, rc, "batch %s line %d (%s %s)", src, lines[failed].line,
                              lines[failed].op, lines[failed].path);
        else
            code = cli_report(cli, rc, "batch %s", src);
        if (!cli->c)
            fprintf(stderr, "streamdb: nothing of the batch was applied\n");
    }
    if (!code) {
        cJSON *arr = cli->json ? cJSON_CreateArray() : NULL;
        for (size_t i = 0; i < n; i++) {
            char ids[37];
            sdb_id_format(&res[i].id, ids);
            if (arr) {
                cJSON *o = docinfo_with_path(&res[i], lines[i].path);
                if (o) {
                    cJSON_AddNumberToObject(o, "line", lines[i].line);
                    cJSON_AddStringToObject(o, "op", lines[i].op);
                    cJSON_AddItemToArray(arr, o);
                }
            } else {
                printf("line %d: %s %s: id %s version %llu\n", lines[i].line, lines[i].op,
                       lines[i].path, ids, (unsigned long long)res[i].version);
            }
        }
        if (arr)
            out_json(arr);
        else
            printf("%zu operations applied\n", n);
    }
    be_batch_free(b);
    free(lines);
    free(res);
    free(input);
    return code;
}

static int cmd_flush(cli_t *cli)
{
    int rc = be_open(cli);
    if (rc)
        return rc;
    if ((rc = be_flush(cli)) < 0)
        return cli_report(cli, rc, "flush");
    return EXIT_OK;
}

/* ---- ls ---- */

typedef struct {
    cli_t *cli;
    uint64_t n;
} ls_t;

static int ls_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    ls_t *l = arg;
    cli_t *cli = l->cli;
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "path", path);
            cJSON_AddStringToObject(o, "type", info ? "document" : "prefix");
            if (info)
                out_docinfo_fields(o, info);
            char *text = cJSON_PrintUnformatted(o);
            if (text)
                printf("%s%s", l->n ? ",\n  " : "[\n  ", text);
            free(text);
            cJSON_Delete(o);
        }
    } else if (cli->long_format) {
        if (info) {
            char ids[37], t[32];
            sdb_id_format(&info->id, ids);
            out_time(info->modified_ms, t);
            printf("%s %6llu %12llu %s %s\n", ids, (unsigned long long)info->version,
                   (unsigned long long)info->size, t, path);
        } else {
            printf("%-36s %6s %12s %-20s %s\n", "-", "-", "-", "-", path);
        }
    } else {
        printf("%s\n", path);
    }
    l->n++;
    return ferror(stdout) ? 1 : 0;
}

static int cmd_ls(cli_t *cli)
{
    const char *prefix = cli->nargs ? cli->args[0] : "";
    int rc = be_open(cli);
    if (rc)
        return rc;
    sdbc_search_opts_t o = { .limit = cli->limit, .delimiter = cli->delimiter,
                             .page_size = cli->page_size };
    ls_t l = { cli, 0 };
    rc = be_search(cli, prefix, &o, ls_cb, &l);
    if (cli->json)
        printf("%s\n", l.n ? "\n]" : "[]");
    if (rc < 0)
        return cli_report(cli, rc, "ls %s", prefix);
    return EXIT_OK;
}

/* ---- paths, versions, info ---- */

typedef struct {
    cJSON *arr;     /* --json: collects entries; else NULL (print lines) */
    int versions;   /* entries are versions */
    uint64_t n;
} collect_t;

static int collect_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    collect_t *c = arg;
    c->n++;
    if (c->arr) {
        cJSON *item = c->versions ? out_docinfo_json(info) : cJSON_CreateString(path);
        if (item)
            cJSON_AddItemToArray(c->arr, item);
        return 0;
    }
    if (c->versions) {
        char t[32];
        out_time(info->modified_ms, t);
        printf("%6llu %12llu %08x %s\n", (unsigned long long)info->version,
               (unsigned long long)info->size, (unsigned)info->crc32, t);
    } else {
        printf("%s\n", path);
    }
    return 0;
}

static int list_cmd(cli_t *cli, int versions)
{
    const char *name = versions ? "versions" : "paths";
    int rc = be_open(cli);
    if (rc)
        return rc;
    sdb_id_t id;
    if ((rc = resolve(cli, cli->args[0], &id, name)))
        return rc;
    collect_t c = { cli->json ? cJSON_CreateArray() : NULL, versions, 0 };
    rc = versions ? be_list_versions(cli, &id, collect_cb, &c)
                  : be_list_paths(cli, &id, collect_cb, &c);
    if (rc < 0) {
        cJSON_Delete(c.arr);
        if (rc == SDB_ENOTFOUND && !cli->msg[0])
            be_fail(cli, rc, "no such document");
        return cli_report(cli, rc, "%s %s", name, cli->args[0]);
    }
    if (c.arr)
        out_json(c.arr);
    return EXIT_OK;
}

static int cmd_paths(cli_t *cli)
{
    return list_cmd(cli, 0);
}

static int cmd_versions(cli_t *cli)
{
    return list_cmd(cli, 1);
}

static int cmd_info(cli_t *cli)
{
    int rc = be_open(cli);
    if (rc)
        return rc;
    sdb_id_t id;
    const char *arg = cli->args[0];
    if ((rc = resolve(cli, arg, &id, "info")))
        return rc;
    sdb_docinfo_t info;
    collect_t paths = { cJSON_CreateArray(), 0, 0 }, versions = { cJSON_CreateArray(), 1, 0 };
    if (!paths.arr || !versions.arr) {
        rc = be_fail(cli, SDB_ENOMEM, "out of memory");
    } else if ((rc = be_info(cli, &id, &info)) == 0 &&
               (rc = be_list_paths(cli, &id, collect_cb, &paths)) == 0) {
        rc = be_list_versions(cli, &id, collect_cb, &versions);
    }
    if (rc < 0) {
        cJSON_Delete(paths.arr);
        cJSON_Delete(versions.arr);
        return cli_report(cli, rc, "info %s", arg);
    }
    if (cli->json) {
        cJSON *o = out_docinfo_json(&info);
        cJSON *vs = cJSON_CreateArray();
        cJSON *v;
        cJSON_ArrayForEach(v, versions.arr)
            cJSON_AddItemToArray(vs, cJSON_CreateNumber(cJSON_GetObjectItem(v, "version")->valuedouble));
        cJSON_Delete(versions.arr);
        cJSON_AddItemToObject(o, "paths", paths.arr);
        cJSON_AddItemToObject(o, "versions", vs);
        out_json(o);
        return EXIT_OK;
    }
    char ids[37], t1[32], t2[32], sz[32];
    sdb_id_format(&info.id, ids);
    out_time(info.created_ms, t1);
    out_time(info.modified_ms, t2);
    out_size(info.size, sz);
    printf("id:       %s\n", ids);
    printf("version:  %llu\n", (unsigned long long)info.version);
    printf("size:     %llu (%s)\n", (unsigned long long)info.size, sz);
    printf("crc32:    %08x\n", (unsigned)info.crc32);
    printf("created:  %s\n", t1);
    printf("modified: %s\n", t2);
    cJSON *p;
    int i = 0;
    if (!cJSON_GetArraySize(paths.arr))
        printf("paths:    (none)\n");
    cJSON_ArrayForEach(p, paths.arr)
        printf("%s%s\n", i++ ? "          " : "paths:    ", p->valuestring);
    printf("versions:");
    cJSON_ArrayForEach(p, versions.arr)
        printf(" %.0f", cJSON_GetObjectItem(p, "version")->valuedouble);
    printf("\n");
    cJSON_Delete(paths.arr);
    cJSON_Delete(versions.arr);
    return EXIT_OK;
}

/* ---- stats, ping ---- */

static void print_flat(const cJSON *j, const char *prefix)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        char key[256];
        snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "",
                 e->string ? e->string : "?");
        if (cJSON_IsObject(e))
            print_flat(e, key);
        else if (cJSON_IsString(e))
            printf("%s: %s\n", key, e->valuestring);
        else if (cJSON_IsNumber(e) && e->valuedouble == (double)(long long)e->valuedouble)
            printf("%s: %lld\n", key, (long long)e->valuedouble);
        else if (cJSON_IsNumber(e))
            printf("%s: %g\n", key, e->valuedouble);
        else if (cJSON_IsBool(e))
            printf("%s: %s\n", key, cJSON_IsTrue(e) ? "true" : "false");
        else {
            char *t = cJSON_PrintUnformatted(e);
            printf("%s: %s\n", key, t ? t : "?");
            free(t);
        }
    }
}

static int cmd_stats(cli_t *cli)
{
    int rc = be_open(cli);
    if (rc)
        return rc;
    cJSON *j = NULL;
    if ((rc = be_stats(cli, &j)) < 0)
        return cli_report(cli, rc, "stats");
    if (cli->json) {
        out_json(j);
    } else {
        print_flat(j, "");
        cJSON_Delete(j);
    }
    return EXIT_OK;
}

static int cmd_ping(cli_t *cli)
{
    int rc = be_open(cli);
    if (rc)
        return rc;
    uint64_t rtt = 0;
    if ((rc = be_ping(cli, &rtt)) < 0)
        return cli_report(cli, rc, "ping");
    if (cli->db) {
        if (cli->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "database", cli->db_file);
            cJSON_AddStringToObject(o, "engine", "StreamDb " SDB_VERSION_STRING);
            out_json(o);
        } else {
            printf("ok: local database %s (StreamDb %s)\n", cli->db_file, SDB_VERSION_STRING);
        }
        return EXIT_OK;
    }
    sdbc_server_info_t si;
    sdbc_server_info(cli->c, &si);
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "server", si.server_name);
        cJSON_AddStringToObject(o, "address", si.address);
        cJSON_AddNumberToObject(o, "protocol", si.protocol_version);
        cJSON_AddNumberToObject(o, "rtt_ms", (double)rtt / 1000.0);
        cJSON_AddNumberToObject(o, "max_document_bytes", (double)si.max_document_bytes);
        out_json(o);
    } else {
        printf("PONG from %s at %s (protocol %u): %.3f ms\n", si.server_name, si.address,
               (unsigned)si.protocol_version, (double)rtt / 1000.0);
    }
    return EXIT_OK;
}

/* ---- check, repair ---- */

static int check_common(cli_t *cli, int repair)
{
    const char *name = repair ? "repair" : "check";
    if (!cli->db_file)
        return cli_usage_error(cli, "%s works on a database file: streamdb --db FILE %s "
                               "(stop streamdbd first)", name, name);
    char *report = NULL;
    int rc = sdb_check(cli->db_file, repair, &report);
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "database", cli->db_file);
        cJSON_AddBoolToObject(o, "clean", rc == SDB_OK);
        cJSON_AddStringToObject(o, "result", rc ? sdb_strerror(rc) : "clean");
        cJSON_AddStringToObject(o, "report", report ? report : "");
        out_json(o);
    } else if (report && rc != SDB_ELOCKED) {
        fputs(report, stdout);
    }
    free(report);
    if (rc == SDB_ECORRUPT && !repair)
        be_fail(cli, rc, "damage found (see the report); 'streamdb --db %s repair' keeps the "
                "newest state it can prove and lists what it loses", cli->db_file);
    else if (rc == SDB_ELOCKED)
        be_fail(cli, rc, "the database is in use by another process (stop streamdbd first)");
    else if (rc < 0 && rc != SDB_ECORRUPT) {
        /* no server here: the protocol's texts would speak of one; say what
           failed, and why the file does not open when it does not */
        char why[4200] = "";
        be_open_error(cli->db_file, why, sizeof(why));
        be_fail(cli, rc, "%s%s", sdb_strerror(rc), why);
    }
    if (rc < 0)
        return cli_report(cli, rc, "%s %s", name, cli->db_file);
    return EXIT_OK;
}

static int cmd_check(cli_t *cli)
{
    return check_common(cli, 0);
}

static int cmd_repair(cli_t *cli)
{
    return check_common(cli, 1);
}

/* ---- The command table ---- */

const command_t cli_commands[] = {
    { "put", cmd_put, "PATH [FILE|-] [--if-version N]",
      "write a document (from FILE, or standard input)",
      "Writes the content of FILE (or standard input, when FILE is - or absent) under PATH:\n"
      "a new version of the document bound to PATH, or a new document.  Prints the id,\n"
      "version and size of the new version.\n"
      "\n"
      "  --if-version N   write only if the document is at version N (0: only if PATH is\n"
      "                   not bound yet); otherwise fail with exit code 3\n"
      "  --json           print the new version as JSON\n"
      "  --progress, --no-progress   force the progress bar on or off (default: shown on a\n"
      "                   terminal for transfers over 4 MiB)\n",
      OPT_IF_VERSION | OPT_JSON | OPT_PROGRESS, 1, 2, 1 },
    { "get", cmd_get, "PATH [-o FILE] [--version N] [--range START-END] | --id ID [...]",
      "read a document or a byte range of it (to standard output, or FILE)",
      "Writes the current version of the document bound to PATH (or of document ID) to\n"
      "standard output, or to FILE.  FILE is replaced only once the whole content has\n"
      "arrived and passed its CRC32 check.\n"
      "\n"
      "  -o, --output FILE  write to FILE instead of standard output\n"
      "  --version N        read version N (one of those `streamdb versions` lists)\n"
      "  --id ID            read document ID instead of a path\n"
      "  --range START-END  read only bytes START to END, counted from 0, END included (as\n"
      "                     in HTTP Range: 0-99 is the first 100 bytes); START- reads from\n"
      "                     START to the end, -N the last N bytes.  An END past the end of\n"
      "                     the document stops at its end; a START past it is an error.\n"
      "                     Only the pages holding the range are read, each checked against\n"
      "                     its page CRC (the document's CRC32 covers the whole content)\n"
      "  --quick            let the server skip the CRC checks of stored pages\n"
      "  --json             with -o: print the version read as JSON (with --range, also\n"
      "                     \"range\": {\"offset\", \"length\"}, the bytes written)\n"
      "  --progress, --no-progress   force the progress bar on or off\n",
      OPT_OUT | OPT_VERSION | OPT_ID | OPT_QUICK | OPT_JSON | OPT_PROGRESS | OPT_RANGE, 0, 1, 1 },
    { "cat", cmd_cat, "PATH... | --id ID [--version N]",
      "write documents to standard output",
      "Writes the current version of each document bound to PATH, one after the other, to\n"
      "standard output.\n"
      "\n"
      "  --version N   read version N\n"
      "  --id ID       read document ID instead of paths\n"
      "  --quick       let the server skip the CRC checks of stored pages\n",
      OPT_VERSION | OPT_ID | OPT_QUICK | OPT_PROGRESS, 0, -1, 1 },
    { "rm", cmd_rm, "PATH... | --id ID",
      "unbind paths, or delete a document",
      "Unbinds each PATH; a document left without paths is deleted with all its versions.\n"
      "With --id, deletes document ID with all its versions and paths.\n"
      "\n"
      "  --id ID   delete a document by id\n",
      OPT_ID, 0, -1, 1 },
    { "ls", cmd_ls, "[PREFIX] [-l] [-d[C]] [--limit N]",
      "list paths",
      "Lists the bound paths that start with PREFIX (all paths when absent), in byte order,\n"
      "paging through the whole listing.\n"
      "\n"
      "  -l, --long           show id, version, size and modification time (UTC)\n"
      "  -d, --delimiter[=C]  roll paths up at the first C after PREFIX (default '/'), like\n"
      "                       directories: ls -d /photos/ shows /photos/2024/ once\n"
      "  --limit N            list at most N entries\n"
      "  --page-size N        entries fetched per request (default 1000)\n"
      "  --json               print a JSON array\n",
      OPT_LONG | OPT_DELIM | OPT_LIMIT | OPT_JSON | OPT_PAGE, 0, 1, 1 },
    { "bind", cmd_bind, "ID PATH",
      "bind a path to a document",
      "Binds PATH to document ID (ID may also be a path bound to the document).  If PATH\n"
      "was bound to another document, it moves; that document keeps its other paths.\n",
      0, 2, 2, 1 },
    { "unbind", cmd_unbind, "ID PATH",
      "unbind a path from a document",
      "Unbinds PATH from document ID; the document survives even without paths (reachable\n"
      "by id).\n",
      0, 2, 2, 1 },
    { "batch", cmd_batch, "FILE|-",
      "apply many operations atomically (all or none)",
      "Reads operations from FILE (or standard input for -), one per line, and applies them\n"
      "as one atomic batch: all of them or, if one fails, none.  Each sees the effect of\n"
      "the earlier ones.  Lines:\n"
      "\n"
      "  put [if=N] PATH =TEXT       the rest of the line after '=' is the content\n"
      "  put [if=N] PATH @FILE       the content of FILE\n"
      "  put [if=N] PATH BASE64      the content, base64 (standard or URL alphabet)\n"
      "  delete [if=N] PATH          unbind PATH (its document goes with its last path)\n"
      "  bind [if=N] ID PATH         bind PATH to document ID\n"
      "  unbind [if=N] ID PATH       unbind PATH from document ID\n"
      "\n"
      "Words are separated by spaces or tabs, so a PATH cannot contain them.  ID is an id\n"
      "(8-4-4-4-12) or a path bound to the document before the batch.  if=N: the document\n"
      "concerned must be at version N at that point of the batch (0: for put and delete,\n"
      "that PATH is unbound); otherwise the batch fails with exit code 3.  Blank lines and\n"
      "lines starting with # are skipped.  A bad line is a usage error naming it; a\n"
      "failing operation names its line; either way nothing is applied.  Limits: 100,000\n"
      "operations, 64 MiB of content, and against a server one frame (max_frame_bytes,\n"
      "1 MiB by default; at most about 20,000 operations): put large documents with put.\n"
      "Prints one line per operation (id and version of the document concerned).\n"
      "\n"
      "  --json   print a JSON array, one object per operation\n",
      OPT_JSON, 1, 1, 1 },
    { "paths", cmd_paths, "ID",
      "list the paths of a document",
      "Lists the paths bound to document ID (or to the document bound to a path), in byte\n"
      "order.\n"
      "\n"
      "  --json   print a JSON array\n",
      OPT_JSON, 1, 1, 1 },
    { "versions", cmd_versions, "PATH|ID",
      "list the readable versions of a document",
      "Lists the readable versions of a document, newest first: version, size, CRC32 and\n"
      "modification time (UTC).  An argument in the 8-4-4-4-12 id form is an id.\n"
      "\n"
      "  --json   print a JSON array\n",
      OPT_JSON, 1, 1, 1 },
    { "info", cmd_info, "PATH|ID",
      "show a document's metadata",
      "Shows a document's id, current version, size, CRC32, times, paths and readable\n"
      "versions.  An argument in the 8-4-4-4-12 id form is an id.\n"
      "\n"
      "  --json   print a JSON object\n",
      OPT_JSON, 1, 1, 1 },
    { "stats", cmd_stats, "",
      "show server and engine statistics",
      "Shows the server's statistics (connections, requests, latencies, engine figures),\n"
      "or the engine's figures in local mode.\n"
      "\n"
      "  --json   print the JSON object\n",
      OPT_JSON, 0, 0, 1 },
    { "ping", cmd_ping, "",
      "check that the server answers",
      "Connects, sends PING and prints the server's name, address, protocol version and the\n"
      "round trip time.\n"
      "\n"
      "  --json   print a JSON object\n",
      OPT_JSON, 0, 0, 1 },
    { "flush", cmd_flush, "",
      "make all writes durable, collect old versions",
      "Makes every acknowledged write durable and drops versions beyond the retention.\n",
      0, 0, 0, 1 },
    { "check", cmd_check, "",
      "verify a database file (local mode)",
      "Verifies every CRC and structural invariant of the database file given with --db\n"
      "(the file must not be in use: stop streamdbd first) and prints a report.  Exit\n"
      "code 0 for a clean file, 5 when damage was found.\n"
      "\n"
      "  --json   print the result and report as JSON\n",
      OPT_JSON, 0, 0, 0 },
    { "repair", cmd_repair, "",
      "recover a damaged database file (local mode)",
      "Checks the database file given with --db and, when it is damaged, rewrites it in\n"
      "place with the newest state it can prove (the older header slot and its journal,\n"
      "or the newest checkpoint read around its damage), keeping paths and ids; damaged\n"
      "documents are dropped, and every loss is listed on a 'lost:' line.  Only when no\n"
      "checkpoint can be read does it salvage data pages under lost+found/.\n"
      "\n"
      "  --json   print the result and report as JSON\n",
      OPT_JSON, 0, 0, 0 },
    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const command_t *cli_find_command(const char *name)
{
    for (const command_t *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}
