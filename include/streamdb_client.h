/*
 * streamdb_client.h -- the StreamDb client library: a blocking C API over the
 * wire protocol (proto/PROTOCOL.md) for programs that talk to streamdbd.
 *
 * One sdbc_t is one connection (TCP or Unix socket) with one session: it is
 * opened by sdbc_connect() (connect, HELLO, HELLO_OK) and every operation
 * sends one request and reads its whole response before returning.  Documents
 * are streamed in frames of the server's chunk size in both directions, so
 * memory use does not grow with document size: a 256 MiB document can be put
 * from, or got into, a file descriptor or a callback without ever being held
 * in memory (only sdbc_put() and sdbc_get() work on whole buffers).
 *
 * Conventions (every function):
 *   - Returns SDB_OK (0) or a negative error code, never crashes or exits on
 *     server input.  The codes are those of streamdb.h (SDB_ENOTFOUND,
 *     SDB_ECONFLICT, ...: the server's answer, mapped one to one from the
 *     wire status), those of streamdb_proto.h (SDB_EAUTH, SDB_EVERSION,
 *     SDB_EPROTO, SDB_ESHUTDOWN, ...), and the client's own connection codes
 *     below (SDB_ECONNECT, SDB_ECONNLOST, SDB_ENORESPONSE, SDB_ELOCAL).
 *     sdbc_strerror() names any of them; sdbc_last_error_message() describes
 *     the last failure in words (the server's own message when the server
 *     answered with an error).
 *   - Fatal errors: after SDB_ECONNLOST, SDB_ENORESPONSE, SDB_EPROTO, or an
 *     error the server flagged CLOSING (SDB_EAUTH, SDB_ETIMEDOUT,
 *     SDB_ESHUTDOWN, SDB_EBUSY, ...), the connection is finished: every later
 *     operation on the handle returns SDB_ECONNLOST; close it and connect
 *     again.  sdbc_is_broken() tells.  Any other error (not found, conflict,
 *     invalid argument, a failing callback, ...) leaves the connection usable.
 *     A write whose answer was lost to a fatal error has an unknown outcome
 *     (check with sdbc_lookup() before retrying).
 *   - Threads: a handle is used by one thread at a time (no internal lock);
 *     different handles are independent.  The library installs no signal
 *     handler; it sends with MSG_NOSIGNAL, so a closed socket never raises
 *     SIGPIPE (writing to a caller's closed pipe in sdbc_get_fd() still may).
 *   - Paths are NUL-terminated UTF-8 strings (the server checks them: empty,
 *     over SDB_MAX_PATH bytes or bad UTF-8 gives SDB_EINVAL).  Ids are
 *     sdb_id_t (sdb_id_parse / sdb_id_format in streamdb.h).
 *   - Memory returned to the caller (sdbc_get buffers, sdbc_info text,
 *     sdbc_stats JSON) is malloc()ed and owned by the caller, who frees it.
 *     Pointers handed to callbacks are valid only during the callback.
 */
#ifndef STREAMDB_CLIENT_H
#define STREAMDB_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "streamdb.h"
#include "streamdb_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

SDB_VISIBILITY_PUSH   /* exported: see streamdb.h */

typedef struct sdbc sdbc_t;                          /* one connection */
typedef struct sdbc_search_iter sdbc_search_iter_t;  /* a paged SEARCH */

/* Error codes of the client, in the same space as streamdb.h's (-1..-99) and
 * streamdb_proto.h's (-100..-119).  -120..-139 are reserved for these. */
enum {
    SDB_ECONNECT = -120,    /* could not connect: refused, no such socket, unknown host,
                               connect timeout; nothing was sent */
    SDB_ECONNLOST = -121,   /* the connection broke (closed by the server, reset) or was
                               already finished by an earlier fatal error */
    SDB_ENORESPONSE = -122, /* the server did not answer or accept data within timeout_ms */
    SDB_ELOCAL = -123       /* a local source or destination failed: reading the file or
                               callback of a put, writing the file or callback of a get */
};

/* Pass as if_version for an unconditional write, or as size when the size of
 * an upload is not known in advance. */
#define SDBC_ANY_VERSION  UINT64_MAX
#define SDBC_SIZE_UNKNOWN UINT64_MAX

#define SDBC_DEFAULT_PORT 7878
#define SDBC_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define SDBC_DEFAULT_TIMEOUT_MS 60000

typedef struct {
    const char *token;       /* auth token (NUL-terminated, at most 1024 bytes), or NULL for none;
                                copied by sdbc_connect */
    const char *client_name; /* informational name sent in HELLO; NULL: "libstreamdb/VERSION" */
    int connect_timeout_ms;  /* connect plus handshake; 0: the default (10 s); < 0: no limit */
    int timeout_ms;          /* the longest one operation waits without progress: for the
                                server to accept the next bytes or to send the next ones (a long
                                transfer that keeps moving never times out); 0: the default
                                (60 s); < 0: no limit */
} sdbc_options_t;

/* Fills *opts with the defaults: no token, default name and timeouts. */
void sdbc_options_default(sdbc_options_t *opts);

/* ---- Connecting --------------------------------------------------------- */

/* Connects to the server at addr and opens a session (HELLO: protocol version
 * negotiation and authentication).  addr is one of:
 *     host:port  127.0.0.1:7878  localhost  (no port: 7878)
 *     [v6]:port  [::1]:7878
 *     streamdb://host:port  streamdb://[::1]:7878  (an optional trailing "/")
 *     unix:///absolute/path.sock   unix:relative/path.sock
 *     a Unix socket path: any text containing '/' (./data/streamdbd.sock), or
 *     a name without ':' that exists as a socket file
 * opts may be NULL (defaults).  On success *out owns a new handle, released
 * by sdbc_close().  On failure *out is NULL.
 * Errors: SDB_EINVAL (NULL, unparsable address, port out of range, socket
 * path too long, token over 1024 bytes), SDB_ECONNECT (refused, no such
 * socket, unknown host, connect timeout), SDB_EAUTH (the server rejected the
 * token or wants one), SDB_EVERSION (no protocol version in common),
 * SDB_EPROTO (the peer does not speak the StreamDb protocol), SDB_EBUSY (too
 * many connections), SDB_ESHUTDOWN, SDB_ECONNLOST (closed during the
 * handshake), SDB_ENORESPONSE (no HELLO_OK in time), SDB_ENOMEM. */
int sdbc_connect(const char *addr, const sdbc_options_t *opts, sdbc_t **out);

/* Closes the connection and frees c (NULL ok).  An upload cannot be open at
 * this point (operations are synchronous). */
void sdbc_close(sdbc_t *c);

/* Returns 1 once a fatal error has finished the connection (every later
 * operation returns SDB_ECONNLOST), else 0. */
int sdbc_is_broken(const sdbc_t *c);

/* What the server announced in HELLO_OK. */
typedef struct {
    const char *server_name;      /* e.g. "streamdbd/0.1.0"; valid until sdbc_close */
    const char *address;          /* the address connected to, normalized: "unix:PATH",
                                     "HOST:PORT" or "[V6]:PORT"; valid until sdbc_close */
    uint16_t protocol_version;    /* the negotiated version */
    uint32_t max_frame_bytes;
    uint32_t chunk_bytes;         /* size of the data frames of uploads and downloads */
    uint64_t max_document_bytes;  /* larger uploads fail with SDB_ETOOLARGE */
    uint32_t max_inflight;
} sdbc_server_info_t;

/* Fills *out with the session's parameters.  Cannot fail for a valid c. */
void sdbc_server_info(const sdbc_t *c, sdbc_server_info_t *out);

/* Enables (nonzero) or disables quick reads on this handle: later GETs carry
 * the QUICK flag, letting the server skip the CRC checks of stored pages.
 * The client's own check of the received bytes (size and CRC32 against the
 * GET header) is made either way. */
void sdbc_set_quick(sdbc_t *c, int enabled);

/* ---- Errors ------------------------------------------------------------- */

/* Returns a static text for any error code of streamdb.h, streamdb_proto.h
 * or this header ("unknown error" otherwise); never NULL. */
const char *sdbc_strerror(int err);

/* Returns a description of the last failure of an sdbc_ function in the
 * calling thread: the server's message for an error the server reported
 * ("no such path"), or what failed locally ("cannot connect to
 * 127.0.0.1:7878: Connection refused").  Never NULL; "" after a call that
 * succeeded.  Thread-local; valid until the next sdbc_ call in this thread. */
const char *sdbc_last_error_message(void);

/* ---- Simple requests ---------------------------------------------------- */

/* Sends PING and waits for PONG; stores the round trip time in microseconds
 * in *rtt_us (may be NULL).  Errors: connection errors, SDB_EPROTO (the
 * echo differs). */
int sdbc_ping(sdbc_t *c, uint64_t *rtt_us);

/* Fills *out (may be NULL) with the current version bound to path.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, connection errors. */
int sdbc_lookup(sdbc_t *c, const char *path, sdb_docinfo_t *out);

/* Unbinds path; the server deletes its document when no path is left.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_EIO (server side), connection errors. */
int sdbc_delete(sdbc_t *c, const char *path);

/* Deletes document id with all its versions and paths.
 * Errors: SDB_ENOTFOUND, SDB_EINVAL (id NULL), SDB_EIO, connection errors. */
int sdbc_delete_id(sdbc_t *c, const sdb_id_t *id);

/* Binds path to document id (moving it from another document if bound).
 * Errors: SDB_EINVAL, SDB_ENOTFOUND (no such document), connection errors. */
int sdbc_bind(sdbc_t *c, const sdb_id_t *id, const char *path);

/* Unbinds path from document id (the document survives without paths).
 * Errors: SDB_EINVAL, SDB_ENOTFOUND (path not bound to id), connection errors. */
int sdbc_unbind(sdbc_t *c, const sdb_id_t *id, const char *path);

/* Makes every acknowledged write durable and collects old versions on the
 * server.  Errors: SDB_EIO, SDB_ENOSPC, connection errors. */
int sdbc_flush(sdbc_t *c);

/* ---- Atomic batches (BATCH, PROTOCOL.md 6.9) ---------------------------- */

/* A list of operations sent as one BATCH request and applied by the server
 * all or none (see sdb_batch_commit in streamdb.h for the semantics: items
 * in order, each seeing the earlier ones, each with an optional if_version,
 * SDBC_ANY_VERSION for none).  Contents are copied in.  A batch is the
 * caller's, not tied to a connection, reusable; one thread at a time. */
typedef struct sdbc_batch sdbc_batch_t;

/* Creates an empty batch in *out (free it with sdbc_batch_free).
 * Errors: SDB_EINVAL (out NULL), SDB_ENOMEM. */
int sdbc_batch_new(sdbc_batch_t **out);

/* Releases b (NULL ok). */
void sdbc_batch_free(sdbc_batch_t *b);

/* Empties b for reuse (NULL ok). */
void sdbc_batch_clear(sdbc_batch_t *b);

/* Items in b (0 for NULL). */
size_t sdbc_batch_count(const sdbc_batch_t *b);

/* Append one item.  Errors: SDB_EINVAL (b NULL, path NULL, empty or over
 * SDB_MAX_PATH bytes, data NULL with len > 0, id NULL), SDB_ETOOLARGE
 * (SDB_BATCH_MAX_OPS items or SDB_BATCH_MAX_BYTES of content would be
 * exceeded), SDB_ENOMEM; b is unchanged on error. */
int sdbc_batch_put(sdbc_batch_t *b, const char *path, const void *data, size_t len,
                   uint64_t if_version);
int sdbc_batch_delete(sdbc_batch_t *b, const char *path, uint64_t if_version);
int sdbc_batch_bind(sdbc_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version);
int sdbc_batch_unbind(sdbc_batch_t *b, const sdb_id_t *id, const char *path, uint64_t if_version);

/* Sends b as one BATCH request and waits for its answer.  On SDB_OK every
 * item was applied and results (may be NULL; sdbc_batch_count(b) entries)
 * receives one docinfo per item, as sdb_batch_commit describes.  *failed
 * (may be NULL) receives the index of the item that made the batch fail,
 * or SDB_BATCH_NO_ITEM; sdbc_last_error_message() has the server's text
 * naming it.  Nothing is applied on any error.
 * Errors: SDB_ECONFLICT, SDB_ENOTFOUND, SDB_EINVAL, SDB_ETOOLARGE (an item,
 * named by *failed; or, with no item, a request over the server's
 * max_frame_bytes or with more items than one answer frame holds, (max_frame_bytes - 4) / 52: nothing
 * sent), SDB_EIO, SDB_ENOSPC, SDB_ENOMEM, SDB_EOPCODE (a server that
 * predates batches; the connection stays usable), connection errors.
 * An empty batch is sent too (the server answers an empty result). */
int sdbc_batch_commit(sdbc_t *c, const sdbc_batch_t *b, sdb_docinfo_t *results, size_t *failed);

/* Stores the server's statistics, a NUL-terminated UTF-8 JSON object (keys
 * documented with the server), in *json: malloc()ed, owned by the caller.
 * Errors: SDB_EINVAL (json NULL), SDB_ENOMEM, connection errors. */
int sdbc_stats(sdbc_t *c, char **json);

/* Fills *out (may be NULL) with the current version of document id and, when
 * text is not NULL, stores the server's human-readable description in *text
 * (NUL-terminated, malloc()ed, owned by the caller; its format is not
 * specified: use sdbc_list_paths / sdbc_list_versions to get data).
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ENOMEM, connection errors. */
int sdbc_info(sdbc_t *c, const sdb_id_t *id, sdb_docinfo_t *out, char **text);

/* ---- Writing ------------------------------------------------------------ */

/* Source of a streamed upload: copy up to cap bytes of the content into buf,
 * store the count in *n (0 = end of content) and return 0, or return a
 * negative error code to abort the upload (which then stores nothing).
 * Called repeatedly until it reports the end. */
typedef int (*sdbc_read_cb)(void *arg, void *buf, size_t cap, size_t *n);

/* Writes len bytes from data (NULL allowed when len is 0) to path: a new
 * version of the document bound to path, or a new document.  if_version:
 * SDBC_ANY_VERSION (unconditional), 0 (only if path is unbound) or n (only if
 * the document's current version is n).  On success *out (may be NULL) holds
 * the new version, which the server acknowledged once durable.
 * Errors: SDB_EINVAL, SDB_ECONFLICT (if_version did not match), SDB_ETOOLARGE
 * (over max_document_bytes), SDB_ENOSPC, SDB_EIO, SDB_ECHECKSUM (the server
 * received other bytes than sent), connection errors.  The upload is
 * abandoned (PUT_ABORT) as soon as the server reports an early error. */
int sdbc_put(sdbc_t *c, const char *path, const void *data, size_t len, uint64_t if_version,
             sdb_docinfo_t *out);

/* As sdbc_put, with the content read from fd (blocking reads from its
 * current offset).  size: the exact number of bytes to send (reading stops
 * there), or SDBC_SIZE_UNKNOWN to read until end of file.  fd is not closed.
 * Additional errors: SDB_ELOCAL (read() failed, or the file ended before size
 * bytes; the upload is aborted and nothing is stored). */
int sdbc_put_fd(sdbc_t *c, const char *path, int fd, uint64_t size, uint64_t if_version,
                sdb_docinfo_t *out);

/* As sdbc_put_fd, with the content produced by cb(arg, ...).  size: the
 * exact number of bytes to take from cb (it is not asked for more; SDB_ELOCAL
 * when it reports the end earlier), or SDBC_SIZE_UNKNOWN to call it until it
 * reports the end.  A negative return of cb aborts the upload (nothing is
 * stored, the connection stays usable) and is returned as is. */
int sdbc_put_cb(sdbc_t *c, const char *path, sdbc_read_cb cb, void *arg, uint64_t size,
                uint64_t if_version, sdb_docinfo_t *out);

/* ---- Reading ------------------------------------------------------------ */

/* Sink of a streamed download: receives the next len (>= 1) bytes of the
 * content, in order, with info describing the version being sent (its size
 * is the total to expect).  Return 0 to go on or a negative error code to
 * stop: the rest of the stream is then read and discarded (the connection
 * stays usable) and the get returns that code.  Not called for an empty
 * document.  The bytes are delivered before the whole content's CRC32 is
 * checked: when a get fails (SDB_ECORRUPT, a lost connection), discard
 * what the sink received. */
typedef int (*sdbc_write_cb)(void *arg, const sdb_docinfo_t *info, const void *data, size_t len);

/* Reads the current version bound to path into a new malloc()ed buffer
 * (*data, owned by the caller; non-NULL even for an empty document) of *len
 * bytes, and fills *out (may be NULL).  The client checks that it received
 * exactly the announced size with the announced CRC32.
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ECORRUPT (the server found damage,
 * or the bytes received do not match their CRC32), SDB_EIO, SDB_ENOMEM (the
 * document does not fit in memory), connection errors.  On error *data is
 * NULL. */
int sdbc_get(sdbc_t *c, const char *path, void **data, size_t *len, sdb_docinfo_t *out);

/* As sdbc_get, for document id at version (0 = the current one).
 * SDB_ENOTFOUND when the document or that version does not exist (any more). */
int sdbc_get_id(sdbc_t *c, const sdb_id_t *id, uint64_t version, void **data, size_t *len,
                sdb_docinfo_t *out);

/* As sdbc_get, writing the content to fd (blocking writes, retried on short
 * writes; fd is not closed).  On error some bytes may have been written.
 * Additional errors: SDB_ELOCAL (write() failed; errno's text is in the
 * message). */
int sdbc_get_fd(sdbc_t *c, const char *path, int fd, sdb_docinfo_t *out);
int sdbc_get_id_fd(sdbc_t *c, const sdb_id_t *id, uint64_t version, int fd, sdb_docinfo_t *out);

/* As sdbc_get, handing the content to cb(arg, ...) chunk by chunk.  A
 * negative return of cb is returned as is (after the stream is drained). */
int sdbc_get_cb(sdbc_t *c, const char *path, sdbc_write_cb cb, void *arg, sdb_docinfo_t *out);
int sdbc_get_id_cb(sdbc_t *c, const sdb_id_t *id, uint64_t version, sdbc_write_cb cb, void *arg,
                   sdb_docinfo_t *out);

/* ---- Byte ranges ---------------------------------------------------------- */

/* What a range read returned. */
typedef struct {
    sdb_docinfo_t doc;   /* the version read; doc.size and doc.crc32 are those of the whole
                            content */
    uint64_t offset;     /* first byte returned (the offset asked for) */
    uint64_t length;     /* bytes returned: min(length asked, doc.size - offset) */
} sdbc_range_t;

/* Reads at most length bytes from byte offset of the current version bound
 * to path (GET_RANGE) into a new malloc()ed buffer (*data, owned by the
 * caller; non-NULL even for an empty range) of *len bytes, and fills *out
 * (may be NULL).  The server reads only the stored pages that hold the range
 * and checks each of them against its page CRC.  length is cut at the end of
 * the content (UINT64_MAX: to the end); offset == doc.size, or length 0,
 * gives an empty range.  The client checks that it received exactly the
 * announced length; the content's CRC32 (doc.crc32) covers the whole content,
 * so it is checked only when the range is the whole content.
 * Errors: SDB_EINVAL (path NULL or bad; offset past the end of the content:
 * the message gives the offset and the size), SDB_ENOTFOUND, SDB_ECORRUPT (a
 * page in the range failed its check on the server, or fewer bytes arrived
 * than announced), SDB_EIO, SDB_ENOMEM, SDB_EOPCODE (the server predates byte
 * ranges: the message says so; the connection stays usable), connection
 * errors.  On error *data is NULL and *len 0. */
int sdbc_get_range(sdbc_t *c, const char *path, uint64_t offset, uint64_t length, void **data,
                   size_t *len, sdbc_range_t *out);

/* As sdbc_get_range, for document id at version (0 = the current one)
 * (GET_ID_RANGE).  SDB_ENOTFOUND when the document or that version does not
 * exist (any more). */
int sdbc_get_id_range(sdbc_t *c, const sdb_id_t *id, uint64_t version, uint64_t offset,
                      uint64_t length, void **data, size_t *len, sdbc_range_t *out);

/* As sdbc_get_range / sdbc_get_id_range, handing the range's bytes to
 * cb(arg, ...) chunk by chunk, in order (info->size is the whole content's
 * size, not the range's; not called for an empty range).  A negative return
 * of cb is returned as is (after the stream is drained). */
int sdbc_get_range_cb(sdbc_t *c, const char *path, uint64_t offset, uint64_t length,
                      sdbc_write_cb cb, void *arg, sdbc_range_t *out);
int sdbc_get_id_range_cb(sdbc_t *c, const sdb_id_t *id, uint64_t version, uint64_t offset,
                         uint64_t length, sdbc_write_cb cb, void *arg, sdbc_range_t *out);

/* ---- Listings ----------------------------------------------------------- */

typedef struct {
    const char *start_after;  /* NULL or "": from the beginning; else only keys > this */
    uint64_t limit;           /* most entries in all; 0: no limit.  A rolled-up prefix counts
                                 as one entry */
    char delimiter;           /* 0: none; else roll up paths at the first delimiter after
                                 the prefix (S3-style common prefixes) */
    uint32_t page_size;       /* entries fetched per request; 0: 1000 */
} sdbc_search_opts_t;

/* One listing entry.  kind is SDB_ENTRY_DOC (a bound path with its
 * document's current version), SDB_ENTRY_PREFIX (a common prefix, ending
 * with the delimiter; info is zeroed) or SDB_ENTRY_VERSION (path is NULL). */
typedef struct {
    int kind;                 /* enum sdb_proto_entry_kind */
    const char *path;         /* NUL-terminated */
    sdb_docinfo_t info;
} sdbc_entry_t;

/* Calls cb(arg, path, info) for every bound path that starts with prefix
 * ("" or NULL = all), in byte order, paging through the whole listing with
 * as many SEARCH requests as needed.  info is NULL for a common prefix.  A
 * nonzero return of cb stops the listing (SDB_OK is returned).  opts may be
 * NULL.  Errors: SDB_EINVAL, SDB_ENOMEM, connection errors. */
int sdbc_search(sdbc_t *c, const char *prefix, const sdbc_search_opts_t *opts, sdb_entry_cb cb,
                void *arg);

/* Starts a paged listing (as sdbc_search) read with sdbc_search_next(); the
 * iterator (*out) is owned by the caller until sdbc_search_close().  Nothing
 * is sent until the first sdbc_search_next().  The iterator holds a copy of
 * prefix and opts->start_after.  Other operations may run on c between two
 * calls of sdbc_search_next (each page is read completely first).
 * Errors: SDB_EINVAL, SDB_ENOMEM. */
int sdbc_search_open(sdbc_t *c, const char *prefix, const sdbc_search_opts_t *opts,
                     sdbc_search_iter_t **out);

/* Stores the next entry in *out and returns 1, returns 0 at the end, or a
 * negative error (connection errors, SDB_ENOMEM, SDB_EPROTO for a server that
 * pages wrongly).  out->path is valid until the next call on it.  Fetches
 * the next page from the server when the current one is used up. */
int sdbc_search_next(sdbc_search_iter_t *it, sdbc_entry_t *out);

/* Returns 1 when the listing stopped at opts->limit while the server had
 * more entries, else 0 (valid once sdbc_search_next returned 0). */
int sdbc_search_truncated(const sdbc_search_iter_t *it);

/* Frees the iterator (NULL ok). */
void sdbc_search_close(sdbc_search_iter_t *it);

/* Calls cb(arg, path, info) for every path of document id, in byte order,
 * with the document's current version.  A nonzero return of cb stops the
 * calls (the rest of the answer is read and discarded; SDB_OK is returned).
 * Errors: SDB_EINVAL, SDB_ENOTFOUND, SDB_ENOMEM, connection errors. */
int sdbc_list_paths(sdbc_t *c, const sdb_id_t *id, sdb_entry_cb cb, void *arg);

/* Calls cb(arg, NULL, info) for every readable version of id, newest
 * (current) first; otherwise as sdbc_list_paths. */
int sdbc_list_versions(sdbc_t *c, const sdb_id_t *id, sdb_entry_cb cb, void *arg);

SDB_VISIBILITY_POP

#ifdef __cplusplus
}
#endif
#endif /* STREAMDB_CLIENT_H */
