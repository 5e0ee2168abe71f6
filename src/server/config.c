/*
 * config.c -- see config.h.  Every key of conf/streamdbd.json is listed in
 * one table with its type and bounds, so defaults, parsing and errors share
 * one description.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/config.h"
#include "streamdb_proto.h"

enum { T_STR, T_U32, T_U64, T_INT, T_MODE, T_BOOL, T_DURABILITY };

typedef struct {
    const char *key;
    int type;
    size_t off;
    uint64_t min, max;
} keydef_t;

#define OFF(f) offsetof(server_config_t, f)
static const keydef_t g_keys[] = {
    { "listen", T_STR, OFF(listen), 0, 0 },
    { "unix_socket", T_STR, OFF(unix_socket), 0, 0 },
    { "unix_socket_mode", T_MODE, OFF(unix_socket_mode), 0, 0777 },
    { "data_dir", T_STR, OFF(data_dir), 0, 0 },
    { "db_file", T_STR, OFF(db_file), 0, 0 },
    { "workers", T_INT, OFF(workers), 0, 128 },   /* 0: one per online CPU (server_run) */
    { "log_level", T_STR, OFF(log_level), 0, 0 },
    { "log_file", T_STR, OFF(log_file), 0, 0 },
    { "auth_token", T_STR, OFF(auth_token), 0, 0 },
    { "auth_token_file", T_STR, OFF(auth_token_file), 0, 0 },
    { "max_connections", T_U32, OFF(max_connections), 1, 1000000 },
    { "max_frame_bytes", T_U32, OFF(max_frame_bytes), 16384, 1u << 30 },
    { "chunk_bytes", T_U32, OFF(chunk_bytes), 512, 1u << 24 },
    { "max_inflight", T_U32, OFF(max_inflight), 1, 1u << 20 },
    { "max_output_bytes", T_U64, OFF(max_output_bytes), 65536, 1ull << 40 },
    { "idle_timeout_ms", T_U64, OFF(idle_timeout_ms), 0, 1ull << 40 },
    { "frame_timeout_ms", T_U64, OFF(frame_timeout_ms), 0, 1ull << 40 },
    { "handshake_timeout_ms", T_U64, OFF(handshake_timeout_ms), 0, 1ull << 40 },
    { "shutdown_timeout_ms", T_U64, OFF(shutdown_timeout_ms), 0, 1ull << 40 },
};

static const keydef_t g_engine_keys[] = {
    { "page_size", T_U32, offsetof(sdb_config_t, page_size), 512, 65536 },
    { "page_cache_pages", T_U32, offsetof(sdb_config_t, page_cache_pages), 0, 1u << 30 },
    { "versions_to_keep", T_U32, offsetof(sdb_config_t, versions_to_keep), 0, 1000000 },
    { "max_document_size", T_U64, offsetof(sdb_config_t, max_document_size), 1, 1ull << 50 },
    { "max_db_size", T_U64, offsetof(sdb_config_t, max_db_size), 1u << 20, 1ull << 60 },
    { "use_mmap", T_BOOL, offsetof(sdb_config_t, use_mmap), 0, 1 },
    { "durability", T_DURABILITY, offsetof(sdb_config_t, durable), 0, 1 },
};

int config_set_str(char **slot, const char *value)
{
    char *c = strdup(value ? value : "");
    if (!c)
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

void config_defaults(server_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    config_set_str(&cfg->listen, "127.0.0.1:7878");
    config_set_str(&cfg->unix_socket, "./data/streamdbd.sock");
    cfg->unix_socket_mode = 0660;
    config_set_str(&cfg->data_dir, "./data");
    config_set_str(&cfg->db_file, "streamdb.sdb");
    cfg->workers = 0;                 /* one per online CPU, at least 2 */
    config_set_str(&cfg->log_level, "info");
    config_set_str(&cfg->log_file, "");
    config_set_str(&cfg->auth_token, "");
    config_set_str(&cfg->auth_token_file, "");
    cfg->max_connections = 1024;
    cfg->max_frame_bytes = 1u << 20;
    cfg->chunk_bytes = 65536;
    cfg->max_inflight = 64;
    cfg->max_output_bytes = 4u << 20;
    cfg->idle_timeout_ms = 300000;
    cfg->frame_timeout_ms = 30000;
    cfg->handshake_timeout_ms = 5000;
    cfg->shutdown_timeout_ms = 10000;
    sdb_config_default(&cfg->engine);
}

static int set_key(void *base, const keydef_t *k, const cJSON *v, const char *prefix, char *err,
                   size_t errlen)
{
    char *p = (char *)base + k->off;
    switch (k->type) {
    case T_STR:
        if (!cJSON_IsString(v)) {
            snprintf(err, errlen, "config key \"%s%s\": expected a string", prefix, k->key);
            return -1;
        }
        return config_set_str((char **)p, v->valuestring);
    case T_MODE: {
        char *end = NULL;
        unsigned long m;
        if (cJSON_IsString(v)) {
            errno = 0;
            m = strtoul(v->valuestring, &end, 8);
            if (errno || !*v->valuestring || *end)
                m = ~0ul;
        } else {
            m = ~0ul;
        }
        if (m > k->max) {
            snprintf(err, errlen, "config key \"%s%s\": expected an octal mode string such as \"0660\"",
                     prefix, k->key);
            return -1;
        }
        *(unsigned *)p = (unsigned)m;
        return 0;
    }
    case T_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(err, errlen, "config key \"%s%s\": expected true or false", prefix, k->key);
            return -1;
        }
        *(int *)p = cJSON_IsTrue(v);
        return 0;
    case T_DURABILITY:
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "full") && strcmp(v->valuestring, "none"))) {
            snprintf(err, errlen, "config key \"%s%s\": expected \"full\" or \"none\"", prefix, k->key);
            return -1;
        }
        *(int *)p = strcmp(v->valuestring, "full") == 0;
        return 0;
    default: {
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (d < (double)k->min || d > (double)k->max || d != (double)(uint64_t)d) {
            snprintf(err, errlen, "config key \"%s%s\": expected an integer from %llu to %llu",
                     prefix, k->key, (unsigned long long)k->min, (unsigned long long)k->max);
            return -1;
        }
        if (k->type == T_U32)
            *(uint32_t *)p = (uint32_t)d;
        else if (k->type == T_U64)
            *(uint64_t *)p = (uint64_t)d;
        else
            *(int *)p = (int)d;
        return 0;
    }
    }
}

static int load_object(void *base, const keydef_t *keys, size_t nkeys, const cJSON *obj,
                       const char *prefix, server_config_t *cfg, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!prefix[0] && strcmp(it->string, "engine") == 0) {
            if (!cJSON_IsObject(it)) {
                snprintf(err, errlen, "config key \"engine\": expected an object");
                return -1;
            }
            if (load_object(&cfg->engine, g_engine_keys, sizeof(g_engine_keys) / sizeof(*g_engine_keys),
                            it, "engine.", cfg, err, errlen))
                return -1;
            continue;
        }
        size_t i;
        for (i = 0; i < nkeys; i++)
            if (strcmp(it->string, keys[i].key) == 0)
                break;
        if (i == nkeys) {
            snprintf(err, errlen, "config key \"%s%s\": unknown key", prefix, it->string);
            return -1;
        }
        if (set_key(base, &keys[i], it, prefix, err, errlen))
            return -1;
    }
    return 0;
}

/* cJSON keeps strings NUL-terminated: a "\u0000" (or a NUL byte) would cut
 * a value short without a word (an auth token "\u0000x" would read as no
 * token).  Returns the line of the first one, or 0 when there is none. */
static size_t json_nul_line(const char *text, size_t len)
{
    size_t line = 1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            line++;
        else if (text[i] == 0)
            return line;
        else if (text[i] == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
                return line;
            i++;                /* the escaped character */
        }
    }
    return 0;
}

int config_load(server_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "out of memory reading %s", path);
                return -1;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
        if (len > (16u << 20)) {
            free(text);
            fclose(f);
            snprintf(err, errlen, "config file %s is larger than 16 MiB", path);
            return -1;
        }
    }
    fclose(f);
    text[len] = 0;
    size_t nul_line = json_nul_line(text, len);
    if (nul_line) {
        snprintf(err, errlen, "config file %s, line %zu: a NUL character (a NUL byte or \\u0000) "
                 "is not allowed in any value", path, nul_line);
        free(text);
        return -1;
    }
    const char *where = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &where, 1);
    if (!root) {
        size_t line = 1;
        for (const char *p = text; where && p < where; p++)
            line += *p == '\n';
        snprintf(err, errlen, "config file %s: invalid JSON near line %zu", path, line);
        free(text);
        return -1;
    }
    free(text);
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "config file %s: expected a JSON object", path);
        rc = -1;
    } else {
        rc = load_object(cfg, g_keys, sizeof(g_keys) / sizeof(*g_keys), root, "", cfg, err, errlen);
    }
    cJSON_Delete(root);
    return rc;
}

static int is_loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "localhost:", 10) == 0 ||
           strncmp(listen, "[::1]:", 6) == 0;
}

/* Checks a token's bytes: 1..SDB_PROTO_MAX_TOKEN of them, none a control
 * byte.  0, or -1 with a message naming what (the key and file) in err. */
static int check_token(const char *what, const char *tok, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "%s: the token is empty", what);
        return -1;
    }
    if (len > SDB_PROTO_MAX_TOKEN) {
        snprintf(err, errlen, "%s: the token is %zu bytes, more than the limit of %u", what, len,
                 SDB_PROTO_MAX_TOKEN);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)tok[i];
        if (ch < 0x20 || ch == 0x7f) {
            snprintf(err, errlen, "%s: the token contains the control byte 0x%02x at offset %zu "
                     "(only one trailing newline is stripped)", what, ch, i);
            return -1;
        }
    }
    return 0;
}

/* Reads auth_token_file into cfg->auth_token/_len: a regular file that only
 * its owner may access (as ssh wants of a private key), one trailing "\n"
 * or "\r\n" stripped.  0, or -1 with a message in err. */
static int read_token_file(server_config_t *cfg, char *err, size_t errlen)
{
    const char *file = cfg->auth_token_file;
    char what[300], buf[SDB_PROTO_MAX_TOKEN + 3];
    snprintf(what, sizeof(what), "config key \"auth_token_file\": %s", file);
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);   /* a FIFO must not block */
    if (fd < 0) {
        snprintf(err, errlen, "config key \"auth_token_file\": cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", what);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s: the file is accessible by group or others (mode %04o); keep the "
                 "token private: chmod 600 %s", what, (unsigned)(st.st_mode & 07777), file);
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "config key \"auth_token_file\": cannot read %s: %s", file,
                     strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0 || (n += (size_t)r) == sizeof(buf))
            break;
    }
    close(fd);
    if (n == sizeof(buf)) {
        snprintf(err, errlen, "%s: the token is more than the limit of %u bytes", what,
                 SDB_PROTO_MAX_TOKEN);
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
    if (check_token(what, buf, n, err, errlen))
        return -1;
    char *tok = malloc(n + 1);
    if (!tok) {
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    memcpy(tok, buf, n);
    tok[n] = 0;
    free(cfg->auth_token);
    cfg->auth_token = tok;
    cfg->auth_token_len = n;
    return 0;
}

int config_validate(server_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->auth_token_file[0]) {
        if (read_token_file(cfg, err, errlen))
            return -1;
    } else {
        /* "" is no token; config_load refused a \u0000 inside the string */
        cfg->auth_token_len = strlen(cfg->auth_token);
        if (cfg->auth_token_len &&
            check_token("config key \"auth_token\"", cfg->auth_token, cfg->auth_token_len, err, errlen))
            return -1;
    }
    if (cfg->listen[0] && !is_loopback(cfg->listen) && !cfg->auth_token_len) {
        snprintf(err, errlen, "config key \"listen\": %s is not a loopback address; set auth_token "
                              "or auth_token_file to listen on it", cfg->listen);
        return -1;
    }
    if (!cfg->listen[0] && !cfg->unix_socket[0]) {
        snprintf(err, errlen, "config keys \"listen\" and \"unix_socket\": both are empty, nothing to serve");
        return -1;
    }
    if (cfg->chunk_bytes > cfg->max_frame_bytes) {
        snprintf(err, errlen, "config key \"chunk_bytes\": larger than max_frame_bytes");
        return -1;
    }
    sdb_config_t *e = &cfg->engine;
    if (e->page_size & (e->page_size - 1)) {
        snprintf(err, errlen, "config key \"engine.page_size\": must be a power of two");
        return -1;
    }
    if (!cfg->data_dir[0] || !cfg->db_file[0]) {
        snprintf(err, errlen, "config key \"%s\": must not be empty", cfg->data_dir[0] ? "db_file" : "data_dir");
        return -1;
    }
    return 0;
}

char *config_db_path(const server_config_t *cfg)
{
    char *p = NULL;
    if (cfg->db_file[0] == '/')
        return strdup(cfg->db_file);
    if (asprintf(&p, "%s/%s", cfg->data_dir, cfg->db_file) < 0)
        return NULL;
    return p;
}

void config_free(server_config_t *cfg)
{
    char **strs[] = { &cfg->listen, &cfg->unix_socket, &cfg->data_dir, &cfg->db_file, &cfg->log_level,
                      &cfg->log_file, &cfg->auth_token, &cfg->auth_token_file };
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}
