/*
 * main.c -- streamdbd's entry point: defaults, then the JSON config file,
 * then command-line flags, then server_run().  Exit codes: 0 clean stop,
 * 1 runtime failure, 2 bad configuration or usage.
 */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "server/log.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: streamdbd [options]\n"
            "  -c, --config FILE      JSON config (without it: built-in defaults, as in conf/streamdbd.json)\n"
            "  -l, --listen HOST:PORT TCP address (\"\" disables; [::1]:7878 for IPv6)\n"
            "  -u, --unix PATH        Unix socket path (\"\" disables)\n"
            "  -d, --data DIR         data directory (database file streamdb.sdb inside)\n"
            "  -w, --workers N        engine worker threads\n"
            "  -L, --log-level LEVEL  error, warn, info or debug\n"
            "      --token-file FILE  read the auth token from FILE\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             this help\n"
            "Every config key is described in docs/CONFIG.md.\n");
}

int main(int argc, char **argv)
{
    /* The worker threads would each keep their own malloc arena of freed
       buffers; two arenas keep the heap near what is in use. */
    mallopt(M_ARENA_MAX, 2);
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "listen", required_argument, 0, 'l' },
        { "unix", required_argument, 0, 'u' },   { "data", required_argument, 0, 'd' },
        { "workers", required_argument, 0, 'w' }, { "log-level", required_argument, 0, 'L' },
        { "token-file", required_argument, 0, 'T' }, { "version", no_argument, 0, 'V' },
        { "help", no_argument, 0, 'h' },          { 0, 0, 0, 0 },
    };
    const char *config = NULL, *listen = NULL, *unix_path = NULL, *data = NULL, *level = NULL,
               *token_file = NULL;
    int workers = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:l:u:d:w:L:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'u': unix_path = optarg; break;
        case 'd': data = optarg; break;
        case 'L': level = optarg; break;
        case 'T': token_file = optarg; break;
        case 'w': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 128) {
                fprintf(stderr, "streamdbd: --workers: expected 1..128, got \"%s\"\n", optarg);
                return 2;
            }
            workers = (int)n;
            break;
        }
        case 'V': printf("streamdbd %s\n", SDB_VERSION_STRING); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "streamdbd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    server_config_t cfg;
    char err[512];
    config_defaults(&cfg);
    if (config && config_load(&cfg, config, err, sizeof(err))) {
        fprintf(stderr, "streamdbd: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (listen) config_set_str(&cfg.listen, listen);
    if (unix_path) config_set_str(&cfg.unix_socket, unix_path);
    if (data) config_set_str(&cfg.data_dir, data);
    if (level) config_set_str(&cfg.log_level, level);
    if (token_file) config_set_str(&cfg.auth_token_file, token_file);
    if (workers) cfg.workers = workers;
    int lvl = log_parse_level(cfg.log_level);
    if (lvl < 0) {
        fprintf(stderr, "streamdbd: config key \"log_level\": expected error, warn, info or debug, got \"%s\"\n",
                cfg.log_level);
        config_free(&cfg);
        return 2;
    }
    if (config_validate(&cfg, err, sizeof(err))) {
        fprintf(stderr, "streamdbd: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    log_set_level(lvl);
    int lrc;
    if (cfg.log_file[0] && (lrc = log_open(cfg.log_file)) < 0) {
        fprintf(stderr, "streamdbd: config key \"log_file\": cannot open %s: %s\n", cfg.log_file,
                strerror(-lrc));
        config_free(&cfg);
        return 2;
    }
    int rc = server_run(&cfg);
    log_close();
    config_free(&cfg);
    return rc;
}
