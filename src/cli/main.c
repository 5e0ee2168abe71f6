/*
 * main.c -- entry point of `streamdb`, the command-line client: global
 * options (up to the command name), then the command's own options, which
 * GNU-style may come before or after its arguments (`streamdb info /a
 * --json`; `--` ends the options); help texts; exit codes (cli.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum {
    O_TOKEN_FILE = 256, O_DB, O_TIMEOUT, O_JSON, O_IF_VERSION, O_VERSION, O_ID, O_LIMIT,
    O_PROGRESS, O_NO_PROGRESS, O_QUICK, O_PAGE, O_RANGE
};

#define GLOBAL 0u  /* accepted by every command, and before the command */

typedef struct {
    const char *name;
    int has_arg;
    int val;          /* short option letter, or O_* */
    unsigned mask;    /* OPT_* bits of the commands that accept it; GLOBAL: all */
} optdef_t;

static const optdef_t g_opts[] = {
    { "host", required_argument, 'H', GLOBAL },
    { "socket", required_argument, 's', GLOBAL },
    { "url", required_argument, 'u', GLOBAL },
    { "token-file", required_argument, O_TOKEN_FILE, GLOBAL },
    { "db", required_argument, O_DB, GLOBAL },
    { "timeout", required_argument, O_TIMEOUT, GLOBAL },
    { "help", no_argument, 'h', GLOBAL },
    { "json", no_argument, O_JSON, OPT_JSON },
    { "progress", no_argument, O_PROGRESS, OPT_PROGRESS },
    { "no-progress", no_argument, O_NO_PROGRESS, OPT_PROGRESS },
    { "if-version", required_argument, O_IF_VERSION, OPT_IF_VERSION },
    { "output", required_argument, 'o', OPT_OUT },
    { "version", required_argument, O_VERSION, OPT_VERSION },
    { "id", required_argument, O_ID, OPT_ID },
    { "quick", no_argument, O_QUICK, OPT_QUICK },
    { "long", no_argument, 'l', OPT_LONG },
    { "delimiter", optional_argument, 'd', OPT_DELIM },
    { "limit", required_argument, O_LIMIT, OPT_LIMIT },
    { "page-size", required_argument, O_PAGE, OPT_PAGE },
    { "range", required_argument, O_RANGE, OPT_RANGE },
};
#define NOPTS (sizeof(g_opts) / sizeof(g_opts[0]))

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: streamdb [-H HOST:PORT | -s SOCKET | -u URL] [--token-file FILE] COMMAND [ARGS]\n"
            "       streamdb --db FILE COMMAND [ARGS]     (local mode, no server)\n"
            "\n"
            "Commands:\n");
    for (const command_t *c = cli_commands; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fprintf(f,
            "  %-9s %s\n"
            "\n"
            "Global options (before or after the command):\n"
            "  -H, --host HOST:PORT   server address, e.g. 127.0.0.1:7878 or [::1]:7878\n"
            "  -s, --socket PATH      server Unix socket\n"
            "  -u, --url URL          streamdb://HOST:PORT or unix:///PATH\n"
            "      --token-file FILE  read the auth token from FILE\n"
            "      --db FILE          local mode: open the database FILE with the engine\n"
            "      --timeout SECONDS  give up when the server makes no progress this long\n"
            "  -h, --help             help (also: streamdb help COMMAND)\n"
            "  -V, --version          print the version\n"
            "\n"
            "Environment: STREAMDB_URL (the address when no -H/-s/-u), STREAMDB_TOKEN (the token\n"
            "when no --token-file).  Default address: ./data/streamdbd.sock if it exists, else\n"
            "127.0.0.1:7878.\n"
            "Exit codes: 0 ok, 1 not found, 2 usage, 3 conflict, 4 connection or authentication,\n"
            "5 other error.  See streamdb(1).\n",
            "help", "show help for a command");
}

static void print_command_help(const command_t *c)
{
    printf("usage: streamdb [GLOBAL OPTIONS] %s%s%s\n\n%s", c->name, c->usage[0] ? " " : "",
           c->usage, c->help);
    printf("\nGlobal options: -H HOST:PORT, -s SOCKET, -u URL, --token-file FILE, --db FILE,\n"
           "--timeout SECONDS (see streamdb --help).\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Parses get's --range: START-END (END inclusive, as in HTTP Range), START-
 * (to the end) or -N (the last N bytes).  Returns 0, or an exit code. */
static int parse_range(cli_t *cli, const char *arg)
{
    const char *dash = strchr(arg, '-');
    char start[32];
    uint64_t a = 0, b = 0;
    if (!dash || (size_t)(dash - arg) >= sizeof(start))
        return cli_usage_error(cli, "--range: expected START-END, START- or -N (byte offsets "
                               "from 0, END inclusive), got \"%s\"", arg);
    memcpy(start, arg, (size_t)(dash - arg));
    start[dash - arg] = '\0';
    if (!start[0]) {                                   /* -N: the last N bytes */
        if (parse_u64(dash + 1, &b) < 0)
            return cli_usage_error(cli, "--range: \"%s\": expected -N, N a byte count", arg);
        cli->range_suffix = 1;
        cli->range_start = 0;
        cli->range_len = b;
    } else {
        if (parse_u64(start, &a) < 0)
            return cli_usage_error(cli, "--range: \"%s\": START \"%s\" is not a byte offset",
                                   arg, start);
        if (!dash[1]) {
            b = UINT64_MAX;                            /* START-: to the end */
        } else if (parse_u64(dash + 1, &b) < 0) {
            return cli_usage_error(cli, "--range: \"%s\": END \"%s\" is not a byte offset",
                                   arg, dash + 1);
        } else if (b < a) {
            return cli_usage_error(cli, "--range: \"%s\": END %llu is before START %llu (END is "
                                   "inclusive: START-START is one byte)", arg,
                                   (unsigned long long)b, (unsigned long long)a);
        }
        cli->range_suffix = 0;
        cli->range_start = a;
        cli->range_len = b == UINT64_MAX ? UINT64_MAX : b - a + 1;
    }
    cli->range = 1;
    return 0;
}

/* Applies one parsed option.  Returns 0, or an exit code. */
static int apply(cli_t *cli, int ch, const char *arg)
{
    uint64_t v;
    switch (ch) {
    case 'H':
    case 'u':
        cli->addr = arg;
        return 0;
    case 's': {
        /* "unix:" makes any path a socket path, even one without a '/'. */
        static char buf[4200];
        snprintf(buf, sizeof(buf), "unix:%s", arg);
        cli->addr = buf;
        return 0;
    }
    case O_TOKEN_FILE: cli->token_file = arg; return 0;
    case O_DB: cli->db_file = arg; return 0;
    case O_TIMEOUT: {
        char *end;
        double s = strtod(arg, &end);
        if (*end || !(s > 0) || s > 86400)
            return cli_usage_error(cli, "--timeout: expected seconds in (0, 86400], got \"%s\"", arg);
        cli->timeout_ms = (int)(s * 1000.0) > 0 ? (int)(s * 1000.0) : 1;
        return 0;
    }
    case O_JSON: cli->json = 1; return 0;
    case O_PROGRESS: cli->progress = 1; return 0;
    case O_NO_PROGRESS: cli->progress = 0; return 0;
    case O_IF_VERSION:
        if (parse_u64(arg, &v) < 0 || v == SDBC_ANY_VERSION)
            return cli_usage_error(cli, "--if-version: expected a version number, got \"%s\"", arg);
        cli->if_version = v;
        return 0;
    case 'o': cli->out_file = arg; return 0;
    case O_VERSION:
        if (parse_u64(arg, &v) < 0 || v == 0)
            return cli_usage_error(cli, "--version: expected a version number >= 1, got \"%s\"", arg);
        cli->version = v;
        return 0;
    case O_ID: cli->id_opt = arg; return 0;
    case O_QUICK: cli->quick = 1; return 0;
    case O_RANGE: return parse_range(cli, arg);
    case 'l': cli->long_format = 1; return 0;
    case 'd':
        if (arg && strlen(arg) != 1)
            return cli_usage_error(cli, "--delimiter: expected one character, got \"%s\"", arg);
        cli->delimiter = arg ? arg[0] : '/';
        return 0;
    case O_LIMIT:
        if (parse_u64(arg, &v) < 0)
            return cli_usage_error(cli, "--limit: expected a number, got \"%s\"", arg);
        cli->limit = v;
        return 0;
    case O_PAGE:
        if (parse_u64(arg, &v) < 0 || v == 0 || v > 65535)
            return cli_usage_error(cli, "--page-size: expected 1..65535, got \"%s\"", arg);
        cli->page_size = (uint32_t)v;
        return 0;
    }
    return cli_usage_error(cli, "internal error: option %d", ch);
}

/* Parses argv with the options whose mask matches (GLOBAL always), GNU
 * style (permuting) unless stop_at_arg.  Sets *help for -h/--help, *version
 * for -V/--version (only when allow_V).  Returns 0 or an exit code. */
static int parse(cli_t *cli, int argc, char **argv, unsigned mask, int stop_at_arg, int allow_V,
                 int *help, int *version)
{
    struct option lo[NOPTS + 2];
    char shorts[64];
    size_t n = 0, k = 0;
    shorts[k++] = stop_at_arg ? '+' : ':';
    if (stop_at_arg)
        shorts[k++] = ':';
    for (size_t i = 0; i < NOPTS; i++) {
        const optdef_t *o = &g_opts[i];
        if (o->mask != GLOBAL && !(o->mask & mask))
            continue;
        if (allow_V && o->val == O_VERSION)
            continue;
        lo[n].name = o->name;
        lo[n].has_arg = o->has_arg;
        lo[n].flag = NULL;
        lo[n].val = o->val;
        n++;
        if (o->val < 256) {
            shorts[k++] = (char)o->val;
            if (o->has_arg == required_argument)
                shorts[k++] = ':';
            else if (o->has_arg == optional_argument) {
                shorts[k++] = ':';
                shorts[k++] = ':';
            }
        }
    }
    if (allow_V) {
        lo[n] = (struct option){ "version", no_argument, NULL, 'V' };
        n++;
        shorts[k++] = 'V';
    }
    lo[n] = (struct option){ NULL, 0, NULL, 0 };
    shorts[k] = '\0';
    opterr = 0;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        const char *bad = argv[optind - 1];
        if (ch == '?') {
            if (optopt && optopt < 256)
                return cli_usage_error(cli, "unknown option -%c", optopt);
            return cli_usage_error(cli, "unknown option %s", bad);
        }
        if (ch == ':') {
            if (optopt && optopt < 256)
                return cli_usage_error(cli, "option -%c needs a value", optopt);
            return cli_usage_error(cli, "option %s needs a value", bad);
        }
        if (ch == 'h') {
            *help = 1;
            continue;
        }
        if (ch == 'V') {
            *version = 1;
            continue;
        }
        int rc = apply(cli, ch, optarg);
        if (rc)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli_t cli;
    memset(&cli, 0, sizeof(cli));
    cli.progress = -1;
    cli.if_version = SDBC_ANY_VERSION;
    int help = 0, version = 0;
    /* Global options, up to the command name. */
    int rc = parse(&cli, argc, argv, OPT_JSON | OPT_PROGRESS, 1, 1, &help, &version);
    if (rc)
        return rc;
    if (version) {
        printf("streamdb %s\n", SDB_VERSION_STRING);
        return EXIT_OK;
    }
    int first = optind;
    if (first >= argc) {
        if (help) {
            print_usage(stdout);
            return EXIT_OK;
        }
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[first];
    if (help && strcmp(name, "help") != 0) {
        const command_t *c = cli_find_command(name);
        if (c) {
            print_command_help(c);
            return EXIT_OK;
        }
    }
    if (strcmp(name, "help") == 0) {
        if (first + 1 >= argc) {
            print_usage(stdout);
            return EXIT_OK;
        }
        const command_t *c = cli_find_command(argv[first + 1]);
        if (!c) {
            fprintf(stderr, "streamdb help: unknown command \"%s\"\nTry 'streamdb help'.\n",
                    argv[first + 1]);
            return EXIT_USAGE;
        }
        print_command_help(c);
        return EXIT_OK;
    }
    const command_t *cmd = cli_find_command(name);
    if (!cmd) {
        fprintf(stderr, "streamdb: unknown command \"%s\"\nTry 'streamdb help'.\n", name);
        return EXIT_USAGE;
    }
    cli.cmd = cmd->name;
    /* The command's options, anywhere among its arguments. */
    int sub_argc = argc - first;
    char **sub_argv = argv + first;
    if ((rc = parse(&cli, sub_argc, sub_argv, cmd->opts, 0, 0, &help, &version)))
        return rc;
    if (help) {
        print_command_help(cmd);
        return EXIT_OK;
    }
    cli.args = sub_argv + optind;
    cli.nargs = sub_argc - optind;
    if (cli.nargs < cmd->min_args)
        return cli_usage_error(&cli, "missing argument (usage: streamdb %s %s)", cmd->name,
                               cmd->usage);
    if (cmd->max_args >= 0 && cli.nargs > cmd->max_args)
        return cli_usage_error(&cli, "unexpected argument \"%s\" (usage: streamdb %s %s)",
                               cli.args[cmd->max_args], cmd->name, cmd->usage);
    if (cli.db_file && cli.addr)
        return cli_usage_error(&cli, "--db (local mode) and -H/-s/-u (a server) exclude each other");
    if (cli.json && !(cmd->opts & OPT_JSON))
        cli.json = 0;
    int code = cmd->fn(&cli);
    if ((rc = be_close(&cli)) < 0 && code == EXIT_OK) {
        fprintf(stderr, "streamdb: closing %s: %s\n", cli.db_file, sdb_strerror(rc));
        code = EXIT_OTHER;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (code == EXIT_OK) {
            fprintf(stderr, "streamdb: cannot write standard output: %s\n", strerror(errno));
            code = EXIT_OTHER;
        }
    }
    return code;
}
