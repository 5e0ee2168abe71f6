/*
 * errmsg.h -- the text of streamdbd's ERROR replies.  The status says what
 * kind of failure it was; the message says what exactly was wrong: which
 * argument and why, which limit and its value, the current version on a
 * conflict, the database file on a storage error.  Every function writes a
 * NUL-terminated message of at most cap bytes into msg (cut if longer).
 */
#ifndef SDB_SERVER_ERRMSG_H
#define SDB_SERVER_ERRMSG_H

#include <stddef.h>
#include <stdint.h>

#include "server/config.h"
#include "streamdb.h"
#include "streamdb_proto.h"

/* Says why a path argument (what: "path", "SEARCH prefix", ...) is not
 * valid: empty, over SDB_MAX_PATH bytes, a NUL byte, not UTF-8.  Returns 1
 * with the reason in msg, or 0 when the path is valid (msg untouched). */
int errmsg_path(const char *what, const sdb_proto_str_t *path, char *msg, size_t cap);

/* The message for a request (header hdr) that failed with rc: decoded is 0
 * when sdb_proto_decode() itself failed (m is then not used), else m is the
 * decoded request.  cfg gives the limits and the database file, db the
 * system error of a storage failure. */
void errmsg_request(const server_config_t *cfg, sdb_t *db, const sdb_proto_header_t *hdr,
                    int decoded, const sdb_proto_msg_t *m, int rc, char *msg, size_t cap);

/* The message for an upload to path with if_version whose commit found
 * another version: looks the path up in db for its current version. */
void errmsg_conflict(sdb_t *db, const char *path, uint64_t if_version, char *msg, size_t cap);

/* The message for a storage error (SDB_EIO, SDB_ENOSPC, SDB_EPERM,
 * SDB_ECORRUPT, SDB_ETOOLARGE from max_db_size, ...): the error's text, the
 * database file it concerns and, for I/O and a full disk, the failed system
 * call and the system's error (sdb_last_os_error()).  It is also logged
 * (warn for a full disk or max_db_size, error otherwise). */
void errmsg_storage(const server_config_t *cfg, sdb_t *db, int rc, char *msg, size_t cap);

#endif
