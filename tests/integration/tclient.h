/*
 * tclient.h -- the integration tests' protocol client: blocking sockets, the
 * shared frame codec (streamdb_proto.h) and nothing else.  It is deliberately
 * small and literal (not the future client library): a test can send any
 * bytes, any frame or a well-formed request, and read frames one by one with a
 * timeout, so that it can check exactly what the daemon answers.
 *
 * Return convention of the request helpers: 0 on success; a positive wire
 * status (SDB_STATUS_*) when the daemon answered ERROR for the request (the
 * frame's flags and message are kept in c->flags / c->msg); a negative TC_*
 * code when the connection ended, timed out or the answer was not what the
 * protocol allows (c->err says why).
 *
 * Ownership: a tc_t is created by tc_connect_* and freed by tc_close.  The
 * last frame read (c->fr, c->m) points into the client's buffers and is valid
 * until the next read on c.  Sending and reading may happen on two threads at
 * once (one writer, one reader); nothing else is thread-safe.
 */
#ifndef TCLIENT_H
#define TCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "streamdb_proto.h"

enum {
    TC_CLOSED = -1,    /* the peer closed the connection (EOF or reset) */
    TC_TIMEOUT = -2,   /* nothing arrived in time */
    TC_BAD = -3        /* a malformed or unexpected frame, or a local failure */
};

typedef struct {
    int fd;
    sdb_proto_decoder_t dec;
    uint8_t *in;                  /* receive buffer */
    size_t in_len, in_off;
    uint32_t max_frame, chunk;    /* from HELLO_OK (the minimums before) */
    uint32_t rid;                 /* the last request id used */
    int timeout_ms;               /* per read; default 20 s (scaled) */
    uint64_t sent, received;      /* bytes on the wire */
    sdb_proto_frame_t fr;         /* the last frame read */
    sdb_proto_msg_t m;            /* ... decoded */
    uint16_t status;              /* the last ERROR read: status, flags, message */
    uint8_t flags;
    char msg[1100];
    char err[512];                /* why a helper returned a negative code */
} tc_t;

/* ---- Connections ---- */

/* Connects to a Unix socket / to 127.0.0.1:port.  rcvbuf > 0 sets SO_RCVBUF
 * before connecting.  Return NULL on failure (errno set). */
tc_t *tc_connect_unix(const char *path);
tc_t *tc_connect_tcp(int port, int rcvbuf);

/* Closes the socket and frees c.  NULL is ok. */
void tc_close(tc_t *c);

/* Half-closes: no more sending (shutdown SHUT_WR). */
void tc_shutdown_write(tc_t *c);

/* ---- Raw I/O ---- */

/* Sends n bytes.  0, or TC_CLOSED when the peer is gone. */
int tc_send_raw(tc_t *c, const void *p, size_t n);

/* Sends one frame: header (opcode, flags, len, rid) then payload. */
int tc_send_frame(tc_t *c, uint8_t opcode, uint8_t flags, uint32_t rid, const void *payload,
                  size_t len);

/* Encodes msg with the codec and sends it. */
int tc_send_msg(tc_t *c, const sdb_proto_msg_t *msg);

/* Reads the next frame into c->fr / c->m.  Returns 1, or TC_CLOSED,
 * TC_TIMEOUT (c->timeout_ms elapsed), TC_BAD (malformed).  A response that
 * the codec cannot decode is TC_BAD.  An ERROR frame also fills c->status,
 * c->flags and c->msg. */
int tc_read(tc_t *c);

/* Expects the peer to close: TC_CLOSED when it does within timeout_ms,
 * TC_BAD when a frame arrives instead, TC_TIMEOUT otherwise. */
int tc_expect_closed(tc_t *c, int timeout_ms);

/* ---- Request frames (send only; rid chosen by the caller) ---- */

int tc_send_hello(tc_t *c, uint32_t rid, uint16_t min_v, uint16_t max_v, const char *token,
                  const char *client);
int tc_send_ping(tc_t *c, uint32_t rid, const void *p, size_t n);
int tc_send_path(tc_t *c, uint8_t opcode, uint32_t rid, const char *path);
int tc_send_id(tc_t *c, uint8_t opcode, uint32_t rid, const sdb_id_t *id);
int tc_send_get_id(tc_t *c, uint32_t rid, const sdb_id_t *id, uint64_t version, uint8_t flags);
int tc_send_get_range(tc_t *c, uint32_t rid, const char *path, uint64_t offset, uint64_t length,
                      uint8_t flags);
int tc_send_get_id_range(tc_t *c, uint32_t rid, const sdb_id_t *id, uint64_t version,
                         uint64_t offset, uint64_t length, uint8_t flags);
int tc_send_id_path(tc_t *c, uint8_t opcode, uint32_t rid, const sdb_id_t *id, const char *path);
int tc_send_search(tc_t *c, uint32_t rid, const char *prefix, const char *start_after,
                   uint32_t limit, uint8_t delimiter);
int tc_send_empty(tc_t *c, uint8_t opcode, uint32_t rid);

/* An upload in parts: PUT_BEGIN, PUT_DATA (one frame), PUT_END. */
int tc_send_put_begin(tc_t *c, uint32_t rid, const char *path, uint64_t size, uint64_t if_version);
int tc_send_put_data(tc_t *c, uint32_t rid, const void *p, size_t n);
int tc_send_put_end(tc_t *c, uint32_t rid, uint64_t size, uint32_t crc);

/* A whole upload: PUT_BEGIN (declaring len), PUT_DATA frames of c->chunk
 * bytes, PUT_END with the true size and CRC32. */
int tc_send_put(tc_t *c, uint32_t rid, const char *path, const void *data, size_t len,
                uint64_t if_version);

/* ---- Responses ---- */

/* Reads one frame for rid: 0 when it is `opcode`, the status when it is an
 * ERROR for rid (or a connection-level ERROR: request 0 with CLOSING, which
 * ends every pending request), TC_BAD for anything else.  The stream and
 * listing readers below treat ERROR frames the same way. */
int tc_recv(tc_t *c, uint32_t rid, uint8_t opcode);

/* Reads DOC (or GET_HEADER with opcode) for rid into *info (may be NULL). */
int tc_recv_doc(tc_t *c, uint32_t rid, uint8_t opcode, sdb_docinfo_t *info);

/* A GET stream: GET_HEADER, DATA..., END.  Checks every DATA frame (1 ..
 * chunk bytes, request id), the total size and the CRC32 against the header.
 * Data goes to sink(arg, bytes, n) when sink is not NULL.  An ERROR after
 * the header returns its status with c->err saying so. */
typedef void (*tc_sink_fn)(void *arg, const uint8_t *p, size_t n);
int tc_recv_get(tc_t *c, uint32_t rid, sdb_docinfo_t *info, tc_sink_fn sink, void *arg);

/* A GET_RANGE / GET_ID_RANGE stream: RANGE_HEADER (into *h, may be NULL),
 * DATA..., END.  Checks every DATA frame as tc_recv_get does and that they
 * total the header's length; the CRC32 only when the range is the whole
 * content. */
int tc_recv_range(tc_t *c, uint32_t rid, sdb_proto_range_header_t *h, tc_sink_fn sink, void *arg);

/* GET_RANGE into a malloc()ed buffer (*data, freed by the caller). */
int tc_get_range(tc_t *c, const char *path, uint64_t offset, uint64_t length, uint8_t **data,
                 size_t *len, sdb_proto_range_header_t *h);

/* A listing: ENTRIES..., LIST_END, collected.  Checks that LIST_END's count
 * equals the entries received and that no ENTRIES payload exceeds
 * max_frame. */
typedef struct {
    size_t n, cap;
    uint8_t *kind;            /* SDB_ENTRY_* */
    char **path;              /* NUL-terminated copies; NULL for VERSION */
    sdb_docinfo_t *info;      /* zeroed for PREFIX */
    uint8_t more;             /* LIST_END's more */
    unsigned frames;          /* ENTRIES frames received */
    size_t max_payload;       /* the largest ENTRIES payload */
} tc_list_t;
int tc_recv_list(tc_t *c, uint32_t rid, tc_list_t *out);
void tc_list_free(tc_list_t *l);

/* ---- Whole requests (next request id, send, read the answer) ---- */

/* HELLO with versions 1..1 and token (NULL = empty).  On HELLO_OK the
 * client adopts the server's limits; *ok (may be NULL) gets its copy (the
 * server name view is only valid until the next read). */
int tc_hello(tc_t *c, const char *token, sdb_proto_hello_ok_t *ok);
int tc_ping(tc_t *c, const void *p, size_t n);
int tc_put(tc_t *c, const char *path, const void *data, size_t len, uint64_t if_version,
           sdb_docinfo_t *info);
/* GET (path) into a malloc()ed buffer (*data, *len; free() it). */
int tc_get(tc_t *c, const char *path, uint8_t **data, size_t *len, sdb_docinfo_t *info);
int tc_get_id(tc_t *c, const sdb_id_t *id, uint64_t version, uint8_t **data, size_t *len,
              sdb_docinfo_t *info);
int tc_lookup(tc_t *c, const char *path, sdb_docinfo_t *info);
int tc_delete(tc_t *c, const char *path);
int tc_delete_id(tc_t *c, const sdb_id_t *id);
int tc_bind(tc_t *c, const sdb_id_t *id, const char *path);
int tc_unbind(tc_t *c, const sdb_id_t *id, const char *path);
int tc_flush(tc_t *c);
int tc_search(tc_t *c, const char *prefix, const char *start_after, uint32_t limit,
              uint8_t delimiter, tc_list_t *out);
int tc_list_paths(tc_t *c, const sdb_id_t *id, tc_list_t *out);
int tc_list_versions(tc_t *c, const sdb_id_t *id, tc_list_t *out);
/* INFO: *text (may be NULL) gets a malloc()ed NUL-terminated copy. */
int tc_info(tc_t *c, const sdb_id_t *id, sdb_docinfo_t *info, char **text);
/* STATS: *json gets the malloc()ed NUL-terminated JSON text. */
int tc_stats(tc_t *c, char **json);

/* ---- Content ---- */

/* Deterministic pseudo-random bytes (xorshift) from seed. */
void tc_fill(uint8_t *b, size_t n, uint32_t seed);
uint32_t tc_crc(const void *p, size_t n);

#endif
