/*
 * errmsg.c -- see errmsg.h: the text of streamdbd's ERROR replies.  The
 * messages are built where the error is known (a job or the loop) from the
 * request and the configuration; nothing here touches a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/errmsg.h"
#include "server/log.h"

/* Offset of the first byte that makes s[0..len) invalid UTF-8 (overlong
 * forms, surrogates and code points over U+10FFFF included), or len. */
static size_t utf8_bad_offset(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return i;
        if (len - i - 1 < n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

int errmsg_path(const char *what, const sdb_proto_str_t *path, char *msg, size_t cap)
{
    const uint8_t *p = (const uint8_t *)path->ptr;
    const uint8_t *nul = path->len ? memchr(p, 0, path->len) : NULL;
    size_t bad;
    if (path->len == 0)
        snprintf(msg, cap, "invalid %s: it is empty", what);
    else if (path->len > SDB_MAX_PATH)
        snprintf(msg, cap, "invalid %s: %zu bytes, over the limit of %u", what, path->len,
                 SDB_MAX_PATH);
    else if (nul)
        snprintf(msg, cap, "invalid %s: a NUL byte at offset %zu", what, (size_t)(nul - p));
    else if ((bad = utf8_bad_offset(p, path->len)) < path->len)
        snprintf(msg, cap, "invalid %s: not UTF-8 (byte 0x%02x at offset %zu)", what, p[bad], bad);
    else
        return 0;
    return 1;
}

void errmsg_storage(const server_config_t *cfg, sdb_t *db, int rc, char *msg, size_t cap)
{
    char *file = config_db_path(cfg);
    const char *f = file ? file : cfg->db_file;
    char os[200] = "";
    if ((rc == SDB_EIO || rc == SDB_ENOSPC) && sdb_last_os_error(db, os + 2, sizeof(os) - 2))
        memcpy(os, ": ", 2);
    switch (rc) {
    case SDB_ETOOLARGE:
        snprintf(msg, cap, "the database file %s would grow past max_db_size (%llu bytes)", f,
                 (unsigned long long)cfg->engine.max_db_size);
        break;
    case SDB_ENOSPC:
        snprintf(msg, cap, "no space left on the device of the database file %s%s", f, os);
        break;
    case SDB_EIO:
        snprintf(msg, cap, "I/O error on the database file %s%s (the database stays in its error "
                 "state after one: restart the server once the disk is sound)", f, os);
        break;
    default:
        snprintf(msg, cap, "%s: the database file %s", sdb_strerror(rc), f);
        break;
    }
    free(file);
    /* the operator sees storage failures in the log, not only the client */
    if (rc == SDB_ENOSPC || rc == SDB_ETOOLARGE)
        log_warn("%s", msg);
    else
        log_error("%s", msg);
}

void errmsg_conflict(sdb_t *db, const char *path, uint64_t if_version, char *msg, size_t cap)
{
    sdb_docinfo_t cur;
    int rc = sdb_lookup(db, path, &cur);
    if (rc == SDB_ENOTFOUND)
        snprintf(msg, cap, "version conflict on \"%s\": if_version %llu, but the path is not bound",
                 path, (unsigned long long)if_version);
    else if (rc)
        snprintf(msg, cap, "version conflict on \"%s\": if_version %llu (current version unknown: %s)",
                 path, (unsigned long long)if_version, sdb_strerror(rc));
    else if (if_version == 0)
        snprintf(msg, cap, "version conflict on \"%s\": if_version 0 writes only an unbound path, "
                 "and it is bound (current version %llu)", path, (unsigned long long)cur.version);
    else
        snprintf(msg, cap, "version conflict on \"%s\": if_version %llu, current version %llu", path,
                 (unsigned long long)if_version, (unsigned long long)cur.version);
}

/* The request's path argument, or NULL when it has none. */
static const sdb_proto_str_t *path_of(const sdb_proto_msg_t *m)
{
    switch (m->opcode) {
    case SDB_OP_GET:
    case SDB_OP_LOOKUP:
    case SDB_OP_DELETE: return &m->u.path;
    case SDB_OP_BIND:
    case SDB_OP_UNBIND: return &m->u.id_path.path;
    case SDB_OP_PUT_BEGIN: return &m->u.put_begin.path;
    case SDB_OP_GET_RANGE: return &m->u.path_range.path;
    default: return NULL;
    }
}

/* The request's document id, or NULL when it has none. */
static const sdb_id_t *id_of(const sdb_proto_msg_t *m)
{
    switch (m->opcode) {
    case SDB_OP_DELETE_ID:
    case SDB_OP_LIST_PATHS:
    case SDB_OP_LIST_VERSIONS:
    case SDB_OP_INFO: return &m->u.id;
    case SDB_OP_GET_ID: return &m->u.id_version.id;
    case SDB_OP_GET_ID_RANGE: return &m->u.id_range.id;
    case SDB_OP_BIND:
    case SDB_OP_UNBIND: return &m->u.id_path.id;
    default: return NULL;
    }
}

static void not_found(const sdb_proto_msg_t *m, char *msg, size_t cap)
{
    const sdb_proto_str_t *path = path_of(m);
    const sdb_id_t *id = id_of(m);
    char ids[37] = "";
    int pl = path ? (int)(path->len > 200 ? 200 : path->len) : 0;
    if (id)
        sdb_id_format(id, ids);
    if (m->opcode == SDB_OP_UNBIND)
        snprintf(msg, cap, "\"%.*s\" is not bound to document %s (or there is no such document)", pl,
                 path->ptr, ids);
    else if (m->opcode == SDB_OP_GET_ID || m->opcode == SDB_OP_GET_ID_RANGE)
        snprintf(msg, cap, "no document %s, or it keeps no version %llu", ids,
                 (unsigned long long)(m->opcode == SDB_OP_GET_ID ? m->u.id_version.version
                                                                 : m->u.id_range.version));
    else if (id)
        snprintf(msg, cap, "no document %s", ids);
    else if (path)
        snprintf(msg, cap, "no document is bound to \"%.*s\"", pl, path->ptr);
    else
        snprintf(msg, cap, "%s", sdb_strerror(SDB_ENOTFOUND));
}

void errmsg_request(const server_config_t *cfg, sdb_t *db, const sdb_proto_header_t *hdr,
                    int decoded, const sdb_proto_msg_t *m, int rc, char *msg, size_t cap)
{
    const char *op = sdb_proto_opcode_name(hdr->opcode);
    if (!op)
        op = "request";
    if (!decoded) {
        if (rc == SDB_EINVAL)
            snprintf(msg, cap, "%s: undefined flag bits 0x%02x", op,
                     (unsigned)(hdr->flags & ~SDB_FLAG_REQUEST_MASK));
        else if (rc == SDB_EPROTO)
            snprintf(msg, cap, "%s: malformed payload (%u bytes do not match its layout)", op,
                     (unsigned)hdr->length);
        else if (rc == SDB_EOPCODE)
            snprintf(msg, cap, "opcode 0x%02x: unknown or not a request", (unsigned)hdr->opcode);
        else
            snprintf(msg, cap, "%s: %s", op, sdb_proto_strerror(rc));
        return;
    }
    const sdb_proto_str_t *path = path_of(m);
    switch (rc) {
    case SDB_EINVAL:
        if (path && errmsg_path("path", path, msg, cap))
            return;
        if (m->opcode == SDB_OP_SEARCH && (errmsg_path("SEARCH prefix", &m->u.search.prefix, msg, cap) ||
                                           errmsg_path("SEARCH start_after", &m->u.search.start_after,
                                                       msg, cap)))
            return;
        if (m->opcode == SDB_OP_SEARCH)
            snprintf(msg, cap, "SEARCH: prefix and start_after must be at most %u bytes without a NUL",
                     SDB_MAX_PATH);
        else
            snprintf(msg, cap, "%s: invalid argument", op);
        return;
    case SDB_ENOTFOUND:
        not_found(m, msg, cap);
        return;
    case SDB_ETOOLARGE:
        if (m->opcode == SDB_OP_PUT_BEGIN) {
            snprintf(msg, cap, "PUT_BEGIN: the declared size %llu is over max_document_bytes (%llu): "
                     "the server's engine.max_document_size",
                     (unsigned long long)m->u.put_begin.size,
                     (unsigned long long)cfg->engine.max_document_size);
            return;
        }
        errmsg_storage(cfg, db, rc, msg, cap);
        return;
    case SDB_EIO:
    case SDB_ENOSPC:
    case SDB_EPERM:
    case SDB_ECORRUPT:
        errmsg_storage(cfg, db, rc, msg, cap);
        return;
    default:
        snprintf(msg, cap, "%s: %s", op, sdb_proto_strerror(rc));
        return;
    }
}
