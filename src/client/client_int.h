/*
 * client_int.h -- private declarations of the client library (src/client).
 *
 * addr.c parses addresses and opens sockets; conn.c owns the connection: the
 * thread-local error message, frame I/O with timeouts over the shared codec
 * (streamdb_proto.h), the handshake and fatal-error handling; ops.c builds
 * every operation on top of conn.c.
 *
 * Connection invariants:
 *  1. The socket is non-blocking; every wait is a poll() bounded by the
 *     handle's timeout, so no call blocks longer than timeout_ms without
 *     progress.
 *  2. Requests are strictly sequential: an operation reads its whole answer
 *     (every frame up to END / LIST_END / the single response) before it
 *     returns, so the next frame read always belongs to the next request.
 *  3. Once broken (lost connection, timeout, malformed or unexpected frame,
 *     an ERROR flagged CLOSING) the handle never sends or reads again.
 */
#ifndef SDB_CLIENT_INT_H
#define SDB_CLIENT_INT_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>

#include "streamdb_client.h"
#include "streamdb_proto.h"

/* ---- Addresses (addr.c) ---- */

enum { CLIENT_ADDR_TCP = 1, CLIENT_ADDR_UNIX = 2 };

typedef struct {
    int kind;            /* CLIENT_ADDR_TCP or CLIENT_ADDR_UNIX */
    char host[256];      /* TCP: host name or address, without brackets */
    uint16_t port;       /* TCP */
    char path[108];      /* Unix: socket path (fits sockaddr_un.sun_path) */
} client_addr_t;

/* Parses addr (any form listed at sdbc_connect) into *out.  Errors:
 * SDB_EINVAL with a message naming the problem (empty, bad port, unclosed
 * bracket, unknown URL scheme, path too long). */
int client_parse_address(const char *addr, client_addr_t *out);

/* Writes the normalized text of a ("unix:PATH", "HOST:PORT", "[V6]:PORT"). */
void client_format_address(const client_addr_t *a, char *out, size_t cap);

/* Opens a non-blocking, connected stream socket to a within timeout_ms (< 0:
 * none) and stores it in *fd.  Errors: SDB_ECONNECT with the system's reason
 * ("Connection refused", "No such file or directory", "timed out", name
 * resolution failure). */
int client_open_socket(const client_addr_t *a, int timeout_ms, int *fd);

/* ---- The connection (conn.c) ---- */

struct sdbc {
    int fd;
    int broken;                   /* invariant 3 */
    int quick;
    int timeout_ms;               /* < 0: none */
    uint32_t next_rid;
    sdb_proto_decoder_t dec;
    uint8_t *rbuf;                /* received bytes not yet fed to dec: rbuf[rpos..rlen) */
    size_t rpos, rlen, rcap;
    uint8_t *wbuf;                /* encoding buffer: frames and PUT_DATA payloads */
    size_t wcap;
    uint16_t version;
    uint32_t max_frame, chunk, max_inflight;
    uint64_t max_doc;
    char server_name[SDB_PROTO_MAX_NAME + 1];
    char address[300];
};

/* Sets the thread's error message (printf format) and returns err. */
int client_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears the thread's error message (the start of every public call). */
void client_clear_error(void);

/* Returns the thread's error message buffer (for callers that extend it). */
const char *client_error_text(void);

/* Marks c broken (invariant 3) and returns err. */
int client_break(sdbc_t *c, int err);

/* Checks that c is usable: SDB_EINVAL for NULL, SDB_ECONNLOST when broken. */
int client_check(sdbc_t *c);

/* Returns a fresh request id. */
uint32_t client_next_rid(sdbc_t *c);

/* Encodes msg and sends it whole.  Errors: SDB_EINVAL (a field does not
 * encode, e.g. a string over 65535 bytes; not fatal), SDB_ENOMEM, and the
 * fatal SDB_ECONNLOST / SDB_ENORESPONSE. */
int client_send_msg(sdbc_t *c, const sdb_proto_msg_t *msg);

/* Sends len raw bytes (frames already encoded).  Fatal errors only. */
int client_send_raw(sdbc_t *c, const void *buf, size_t len);

/* Reads the next frame and decodes it into *m (views valid until the next
 * read).  Checks that its request id is rid (0 is accepted for an ERROR, the
 * server's connection-level errors).  An ERROR is turned into its error code,
 * with the server's message as the thread's message (fatal when flagged
 * CLOSING) and returned; any other opcode is returned as 0 with *m filled.
 * Errors: the mapped status of an ERROR; fatal SDB_ECONNLOST,
 * SDB_ENORESPONSE, SDB_EPROTO (malformed frame or wrong request id). */
int client_recv_msg(sdbc_t *c, uint32_t rid, sdb_proto_msg_t *m);

/* Non-blocking check for an answer that arrived early (the server failing an
 * upload before PUT_END): returns 0 when no complete frame is available,
 * else the result of client_recv_msg for that frame (an error code, or 0
 * with *m filled, which the caller treats as a protocol error).  *got is set
 * to 1 when a frame was consumed. */
int client_poll_msg(sdbc_t *c, uint32_t rid, sdb_proto_msg_t *m, int *got);

/* Fails with SDB_EPROTO (fatal): m is not what the request expects. */
int client_unexpected(sdbc_t *c, const sdb_proto_msg_t *m, const char *request);

/* Makes sure c->wbuf holds at least cap bytes.  Errors: SDB_ENOMEM. */
int client_reserve_wbuf(sdbc_t *c, size_t cap);

#endif /* SDB_CLIENT_INT_H */
