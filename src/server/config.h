/*
 * config.h -- the daemon's configuration: defaults, conf/streamdbd.json
 * (cJSON), then command-line flags on top.  docs/CONFIG.md describes every
 * key.  A bad value is reported with the key's name.
 */
#ifndef SDB_SERVER_CONFIG_H
#define SDB_SERVER_CONFIG_H

#include <stdint.h>
#include "streamdb.h"

typedef struct {
    char *listen;              /* "host:port", "[v6]:port"; "" = no TCP listener */
    char *unix_socket;         /* path; "" = no Unix listener */
    unsigned unix_socket_mode; /* e.g. 0660 */
    char *data_dir;            /* created if absent */
    char *db_file;             /* relative to data_dir unless absolute */
    int workers;               /* engine worker threads */
    char *log_level;
    char *log_file;            /* "" = stderr */
    char *auth_token;          /* auth_token_len bytes (+ a NUL); none when the length is 0
                                  (then only loopback/Unix listeners are allowed) */
    size_t auth_token_len;     /* set by config_validate */
    char *auth_token_file;
    uint32_t max_connections;
    uint32_t max_frame_bytes;
    uint32_t chunk_bytes;
    uint32_t max_inflight;     /* queued requests per connection before reading stops */
    uint64_t max_output_bytes; /* per-connection output buffer cap */
    uint64_t idle_timeout_ms;
    uint64_t frame_timeout_ms;
    uint64_t handshake_timeout_ms; /* a connection without HELLO after this is dropped */
    uint64_t shutdown_timeout_ms;
    sdb_config_t engine;
} server_config_t;

/* Fills cfg with the defaults (owned strings; config_free releases). */
void config_defaults(server_config_t *cfg);

/* Reads a JSON file over cfg.  Unknown keys and bad values are errors.
 * Returns 0, or -1 with a message naming the key in err[errlen]. */
int config_load(server_config_t *cfg, const char *path, char *err, size_t errlen);

/* Replaces *slot with a copy of value (config strings are owned). */
int config_set_str(char **slot, const char *value);

/* Checks cross-key rules (token for non-loopback TCP, limits), reads
 * auth_token_file (refused when group or others may access it) and sets
 * auth_token_len; a token must be 1..SDB_PROTO_MAX_TOKEN bytes without a
 * control byte.  Returns 0 or -1 with a message in err. */
int config_validate(server_config_t *cfg, char *err, size_t errlen);

/* Full path of the database file (malloc()ed). */
char *config_db_path(const server_config_t *cfg);

void config_free(server_config_t *cfg);

#endif
