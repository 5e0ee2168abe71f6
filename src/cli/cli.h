/*
 * cli.h -- private declarations of the `streamdb` command-line client.
 *
 * main.c parses the command line (global options, then the command and its
 * options, GNU style) and maps errors to exit codes; commands.c implements
 * each command against the backend; backend.c hides whether a command talks
 * to streamdbd through the client library (streamdb_client.h) or, with
 * --db FILE, to a database file through the engine (streamdb.h); output.c
 * formats times, sizes, JSON and the progress bar.
 *
 * Exit codes: 0 ok, 1 not found, 2 usage, 3 conflict, 4 connection or
 * authentication, 5 anything else.
 */
#ifndef SDB_CLI_H
#define SDB_CLI_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "streamdb.h"
#include "streamdb_client.h"

enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_CONFLICT = 3, EXIT_CONN = 4,
       EXIT_OTHER = 5 };

/* Everything a command needs: the parsed options and the open backend. */
typedef struct {
    /* Global options. */
    const char *addr;          /* -H / -s / -u (NULL: STREAMDB_URL, then the default) */
    const char *token_file;    /* --token-file */
    const char *db_file;       /* --db: local mode */
    int timeout_ms;            /* --timeout (0: the library's defaults) */
    int json;                  /* --json */
    int progress;              /* --progress 1, --no-progress 0, default -1 (auto) */
    /* Command options. */
    const char *out_file;      /* get -o */
    const char *id_opt;        /* --id */
    uint64_t version;          /* --version (0: current) */
    uint64_t if_version;       /* put --if-version (SDBC_ANY_VERSION: none) */
    uint64_t limit;            /* ls --limit (0: all) */
    uint32_t page_size;        /* ls --page-size (0: default) */
    int long_format;           /* ls -l */
    char delimiter;            /* ls -d (0: none) */
    int quick;                 /* get --quick */
    int range;                 /* get --range given */
    uint64_t range_start;      /* get --range START-END: first byte */
    uint64_t range_len;        /* bytes (UINT64_MAX: to the end); with range_suffix, the last
                                  range_len bytes */
    int range_suffix;          /* get --range -N */
    /* Command and arguments. */
    const char *cmd;
    char **args;
    int nargs;
    /* The backend: exactly one of c (remote) and db (local) once opened. */
    sdbc_t *c;
    sdb_t *db;
    char msg[2048];            /* why the last backend call failed */
} cli_t;

/* ---- backend.c ---- */

/* Opens the backend: --db FILE (the engine), else the server at the address
 * from the options, STREAMDB_URL or the default, with the token from
 * --token-file or STREAMDB_TOKEN.  On failure prints the reason and returns
 * the exit code (EXIT_USAGE, EXIT_CONN, EXIT_OTHER); 0 on success. */
int be_open(cli_t *cli);

/* Closes the backend.  Returns 0, or a negative code when closing the
 * database failed (its final sync). */
int be_close(cli_t *cli);

/* Each be_ function returns 0 or a negative SDB_E* code and then leaves the
 * reason in cli->msg.  Callbacks have the client library's signatures. */
int be_ping(cli_t *cli, uint64_t *rtt_us);
int be_put(cli_t *cli, const char *path, sdbc_read_cb cb, void *arg, uint64_t size,
           uint64_t if_version, sdb_docinfo_t *out);
int be_get(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version,
           sdbc_write_cb cb, void *arg, sdb_docinfo_t *out);
/* Reads at most length bytes from byte offset of a document (path, or id +
 * version) into cb; *out gets the version and the range actually read.
 * offset past the end: SDB_EINVAL, with the offset and the size in cli->msg. */
int be_get_range(cli_t *cli, const char *path, const sdb_id_t *id, uint64_t version,
                 uint64_t offset, uint64_t length, sdbc_write_cb cb, void *arg, sdbc_range_t *out);
int be_lookup(cli_t *cli, const char *path, sdb_docinfo_t *out);
int be_delete(cli_t *cli, const char *path);
int be_delete_id(cli_t *cli, const sdb_id_t *id);
int be_bind(cli_t *cli, const sdb_id_t *id, const char *path);
int be_unbind(cli_t *cli, const sdb_id_t *id, const char *path);
int be_search(cli_t *cli, const char *prefix, const sdbc_search_opts_t *opts, sdb_entry_cb cb,
              void *arg);
int be_list_paths(cli_t *cli, const sdb_id_t *id, sdb_entry_cb cb, void *arg);
int be_list_versions(cli_t *cli, const sdb_id_t *id, sdb_entry_cb cb, void *arg);
int be_info(cli_t *cli, const sdb_id_t *id, sdb_docinfo_t *out);
int be_stats(cli_t *cli, cJSON **out);
int be_flush(cli_t *cli);

/* An atomic batch for the open backend (sdbc_batch_t or sdb_batch_t).
 * be_batch_add's op is 'p' (put: path, data, len), 'd' (delete: path), 'b'
 * (bind: id, path) or 'u' (unbind: id, path).  be_batch_commit commits it
 * as one unit; *failed receives the failing item or SDB_BATCH_NO_ITEM. */
typedef struct be_batch be_batch_t;
int be_batch_new(cli_t *cli, be_batch_t **out);
int be_batch_add(cli_t *cli, be_batch_t *b, int op, const sdb_id_t *id, const char *path,
                 const void *data, size_t len, uint64_t if_version);
int be_batch_commit(cli_t *cli, be_batch_t *b, sdb_docinfo_t *results, size_t *failed);
void be_batch_free(be_batch_t *b);

/* Sets cli->msg (printf format) and returns err. */
/* Why opening the database file path failed, as the system says it, e.g.
 * " (open: Read-only file system)"; "" when it opens now. */
void be_open_error(const char *path, char *out, size_t cap);
int be_fail(cli_t *cli, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- commands.c ---- */

typedef int (*cmd_fn)(cli_t *cli);

typedef struct {
    const char *name;
    cmd_fn fn;
    const char *usage;         /* arguments, after "streamdb NAME" */
    const char *summary;       /* one line for `streamdb help` */
    const char *help;          /* the rest of `streamdb help NAME` */
    unsigned opts;             /* OPT_* bits the command accepts */
    int min_args, max_args;    /* max -1: any number */
    int needs_backend;         /* 0: check/repair (they open the file themselves) */
} command_t;

/* Command options (bits of command_t.opts). */
enum {
    OPT_JSON = 1u << 0, OPT_IF_VERSION = 1u << 1, OPT_OUT = 1u << 2, OPT_VERSION = 1u << 3,
    OPT_ID = 1u << 4, OPT_LONG = 1u << 5, OPT_DELIM = 1u << 6, OPT_LIMIT = 1u << 7,
    OPT_PROGRESS = 1u << 8, OPT_QUICK = 1u << 9, OPT_PAGE = 1u << 10, OPT_RANGE = 1u << 11
};

extern const command_t cli_commands[];

/* Returns the command named name, or NULL. */
const command_t *cli_find_command(const char *name);

/* Prints "streamdb: WHAT: REASON" for err (REASON from cli->msg) to stderr
 * and returns the exit code for err. */
int cli_report(cli_t *cli, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints a usage error for the current command and returns EXIT_USAGE. */
int cli_usage_error(cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps an SDB_E* code to an exit code. */
int cli_exit_code(int err);

/* ---- output.c ---- */

/* Formats Unix ms as "2026-01-01T00:00:00Z" (UTC) into out[32]. */
void out_time(int64_t ms, char out[32]);

/* Formats bytes for humans ("64.0 MiB", "512 B") into out[32]. */
void out_size(uint64_t bytes, char out[32]);

/* Adds the fields describing info to the JSON object o. */
void out_docinfo_fields(cJSON *o, const sdb_docinfo_t *info);

/* A new JSON object describing info (id, version, size, crc32, times). */
cJSON *out_docinfo_json(const sdb_docinfo_t *info);

/* Prints j (indented by two spaces) and a newline to stdout, then deletes it
 * (NULL ok: prints nothing). */
void out_json(cJSON *j);

/* Progress of one transfer, drawn on stderr (see progress_start). */
typedef struct {
    int enabled;               /* stderr is a terminal (or --progress) */
    int drawn;                 /* the bar is on screen */
    const char *label;
    uint64_t total;            /* SDBC_SIZE_UNKNOWN when unknown */
    uint64_t done;
    uint64_t t0_us, last_us;
} progress_t;

/* Starts tracking a transfer of total bytes (SDBC_SIZE_UNKNOWN allowed).
 * The bar is drawn only when enabled (mode 1, or mode -1 and stderr is a
 * terminal) and the transfer is over 4 MiB; it is redrawn at most 10 times a
 * second. */
void progress_start(progress_t *p, int mode, const char *label, uint64_t total);

/* Records n more bytes (and learns the total when it was unknown and
 * total is not SDBC_SIZE_UNKNOWN). */
void progress_add(progress_t *p, uint64_t n, uint64_t total);

/* Draws the final state and ends the line (when the bar was shown). */
void progress_end(progress_t *p);

#endif /* SDB_CLI_H */
