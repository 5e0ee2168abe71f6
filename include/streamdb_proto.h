/*
 * streamdb_proto.h -- the StreamDb wire protocol: constants and the frame
 * codec shared by the server (streamdbd) and the client library.
 *
 * The wire format is specified byte by byte in proto/PROTOCOL.md; the opcode
 * and status tables live in proto/opcodes.def (compile with -Iproto).  This
 * codec is pure: no sockets, no libuv, no threads, no global state.  It turns
 * bytes into frames (an incremental decoder that accepts input split at any
 * byte), frames into typed messages and back, and maps wire status codes to
 * and from the C error codes (SDB_E*).
 *
 * Frame = 12-byte header + payload, all integers little-endian:
 *
 *     off size field
 *       0    1 magic       0xDB
 *       1    1 opcode      SDB_OP_* (requests < 0x80 <= responses)
 *       2    1 flags       SDB_FLAG_*
 *       3    1 reserved    0
 *       4    4 length      payload bytes that follow (u32, header excluded)
 *       8    4 request_id  chosen by the client, echoed in every response frame
 *
 * Conventions:
 *   - Functions return 0 (or a count, where said) or a negative error code:
 *     the engine's SDB_E* codes from streamdb.h or the protocol's own codes
 *     below.  Input bytes are never trusted: every length is checked against
 *     what remains of the payload and against the configured limit before
 *     anything is allocated or read; nothing asserts on input.
 *   - Decoded messages are views: their strings and byte ranges point into
 *     the frame's payload, are not NUL-terminated, and are valid exactly as
 *     long as that payload (see sdb_proto_decoder_feed).  Use
 *     sdb_proto_str_copy() to get a checked C string.
 *   - Encoders never allocate: the caller passes the buffer.
 */
#ifndef STREAMDB_PROTO_H
#define STREAMDB_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "streamdb.h"

#ifdef __cplusplus
extern "C" {
#endif

SDB_VISIBILITY_PUSH   /* exported: see streamdb.h */

/* ---- Constants ---------------------------------------------------------- */

#define SDB_PROTO_VERSION        1u      /* the newest protocol version spoken */
#define SDB_PROTO_VERSION_MIN    1u      /* the oldest protocol version spoken */
#define SDB_PROTO_MAGIC          0xDBu   /* header byte 0 */
#define SDB_PROTO_HEADER_SIZE    12u     /* bytes of every frame header */
#define SDB_PROTO_HELLO_MAGIC    "STDB"  /* first 4 payload bytes of HELLO and HELLO_OK */

/* Payload limits (bytes, header excluded). */
#define SDB_PROTO_MIN_FRAME      16384u        /* smallest max_frame_bytes a server may announce,
                                                  and the limit before HELLO_OK is received */
#define SDB_PROTO_MAX_FRAME      (1u << 30)    /* hard ceiling: no decoder accepts more */
#define SDB_PROTO_DEFAULT_FRAME  (1u << 20)    /* default max_frame_bytes (1 MiB) */
#define SDB_PROTO_MIN_CHUNK      512u          /* smallest chunk_bytes a server may announce */
#define SDB_PROTO_DEFAULT_CHUNK  65536u        /* default chunk_bytes */
#define SDB_PROTO_MAX_TOKEN      1024u         /* auth token bytes */
#define SDB_PROTO_MAX_NAME       255u          /* client/server name bytes */
#define SDB_PROTO_MAX_MESSAGE    1024u         /* ERROR message bytes */
#define SDB_PROTO_DOCINFO_SIZE   52u           /* bytes of a docinfo record */
#define SDB_PROTO_ID_SIZE        16u           /* bytes of a document id */
#define SDB_PROTO_UNSET          UINT64_MAX    /* PUT_BEGIN size / if_version: not given */

/* Header flags.  Bits not defined for a direction must be 0 when sent. */
#define SDB_FLAG_QUICK    0x01u   /* request (GET, GET_ID and their _RANGE forms): the server
                                     may skip CRC checks */
#define SDB_FLAG_CLOSING  0x80u   /* response: the server closes the connection after it */
#define SDB_FLAG_REQUEST_MASK   SDB_FLAG_QUICK
#define SDB_FLAG_RESPONSE_MASK  SDB_FLAG_CLOSING

/* Error codes of the protocol layer, in the same space as streamdb.h's
 * SDB_E* codes (which use -1..-99).  -100..-119 are reserved for these. */
enum {
    SDB_EPROTO = -100,     /* malformed frame or payload, or frame not allowed now */
    SDB_EOPCODE = -101,    /* unknown or unsupported opcode */
    SDB_EAUTH = -102,      /* HELLO missing or auth token rejected */
    SDB_EVERSION = -103,   /* no protocol version in common */
    SDB_ECHECKSUM = -104,  /* uploaded content does not match its size or CRC32 */
    SDB_EBUSY = -105,      /* server at a limit; retry later */
    SDB_ESHUTDOWN = -106,  /* server shutting down */
    SDB_ETIMEDOUT = -107,  /* idle or slow client dropped */
    SDB_EINTERNAL = -108   /* unexpected server error (or an unknown status received) */
};

/* Opcodes: SDB_OP_HELLO, ... (values from proto/opcodes.def). */
enum sdb_proto_opcode {
#define SDB_OPCODE(name, value, dir, body, description) SDB_OP_##name = value,
#include "opcodes.def"
};

/* Status codes carried by ERROR frames: SDB_STATUS_OK, ... */
enum sdb_proto_status {
#define SDB_STATUS(name, value, error, description) SDB_STATUS_##name = value,
#include "opcodes.def"
};

/* Payload layouts (the `body` column of opcodes.def). */
enum sdb_proto_body {
    SDB_BODY_EMPTY,       /* no payload */
    SDB_BODY_RAW,         /* opaque bytes: PING, PONG, PUT_DATA, DATA, STATS_RESULT */
    SDB_BODY_HELLO,
    SDB_BODY_HELLO_OK,
    SDB_BODY_PUT_BEGIN,
    SDB_BODY_PUT_END,
    SDB_BODY_PATH,        /* one str16 path: GET, LOOKUP, DELETE */
    SDB_BODY_ID,          /* one id: DELETE_ID, LIST_PATHS, LIST_VERSIONS, INFO */
    SDB_BODY_ID_VERSION,  /* GET_ID */
    SDB_BODY_ID_PATH,     /* BIND, UNBIND */
    SDB_BODY_SEARCH,
    SDB_BODY_ERROR,
    SDB_BODY_DOCINFO,     /* DOC, GET_HEADER */
    SDB_BODY_ENTRIES,
    SDB_BODY_LIST_END,
    SDB_BODY_INFO,
    SDB_BODY_PATH_RANGE,  /* GET_RANGE */
    SDB_BODY_ID_RANGE,    /* GET_ID_RANGE */
    SDB_BODY_RANGE_HEADER, /* RANGE_HEADER */
    SDB_BODY_BATCH,       /* BATCH */
    SDB_BODY_BATCH_RESULT, /* BATCH_RESULT */
    SDB_BODY_BATCH_FAILED /* BATCH_FAILED */
};

/* Kinds of BATCH items (PROTOCOL.md section 6.4). */
enum sdb_proto_batch_kind {
    SDB_BATCH_ITEM_PUT = 1,     /* path, content inline */
    SDB_BATCH_ITEM_DELETE = 2,  /* path */
    SDB_BATCH_ITEM_BIND = 3,    /* id, path */
    SDB_BATCH_ITEM_UNBIND = 4   /* id, path */
};

#define SDB_PROTO_NO_ITEM 0xFFFFFFFFu   /* BATCH_FAILED: no one item failed */

/* Kinds of listing entries (ENTRIES frames). */
enum sdb_proto_entry_kind {
    SDB_ENTRY_DOC = 0,      /* a bound path and its document's current version */
    SDB_ENTRY_PREFIX = 1,   /* a common prefix rolled up by the SEARCH delimiter */
    SDB_ENTRY_VERSION = 2   /* one version of a document (LIST_VERSIONS), no path */
};

/* ---- Views and messages ------------------------------------------------- */

/* A string inside a payload: len bytes at ptr, not NUL-terminated, possibly
 * containing any byte.  ptr may be NULL when len is 0. */
typedef struct {
    const char *ptr;
    size_t len;
} sdb_proto_str_t;

/* Opaque bytes inside a payload. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} sdb_proto_bytes_t;

typedef struct {
    uint16_t min_version, max_version;   /* versions the client speaks */
    sdb_proto_str_t token;               /* auth token; empty when none */
    sdb_proto_str_t client;              /* informational client name */
} sdb_proto_hello_t;

typedef struct {
    uint16_t version;              /* the version chosen for this connection */
    uint32_t max_frame_bytes;      /* largest payload either side may send */
    uint32_t chunk_bytes;          /* largest PUT_DATA / DATA payload */
    uint64_t max_document_bytes;   /* largest document the server stores */
    uint32_t max_inflight;         /* requests the server queues before it stops reading */
    sdb_proto_str_t server;        /* informational server name and version */
} sdb_proto_hello_ok_t;

typedef struct {
    uint64_t size;          /* total content bytes, or SDB_PROTO_UNSET */
    uint64_t if_version;    /* 0: only if path unbound; SDB_PROTO_UNSET: unconditional */
    sdb_proto_str_t path;
} sdb_proto_put_begin_t;

typedef struct {
    uint64_t size;          /* total content bytes sent in PUT_DATA frames */
    uint32_t crc32;         /* zlib crc32() of the whole content */
} sdb_proto_put_end_t;

typedef struct {
    sdb_id_t id;
    uint64_t version;       /* 0: the current version */
} sdb_proto_id_version_t;

typedef struct {
    sdb_id_t id;
    sdb_proto_str_t path;
} sdb_proto_id_path_t;

/* Byte ranges (GET_RANGE, GET_ID_RANGE): at most `length` bytes from byte
 * `offset` of the content (PROTOCOL.md section 6.3). */
typedef struct {
    uint64_t offset;        /* first byte; past the document's size: ERROR INVALID */
    uint64_t length;        /* bytes wanted, cut at the end (SDB_PROTO_UNSET: to the end) */
    sdb_proto_str_t path;
} sdb_proto_path_range_t;

typedef struct {
    sdb_id_t id;
    uint64_t version;       /* 0: the current version */
    uint64_t offset, length; /* as in sdb_proto_path_range_t */
} sdb_proto_id_range_t;

/* RANGE_HEADER: the version sent (doc.size is the whole content's size) and
 * the range actually sent: `length` bytes from `offset`, with
 * offset + length <= doc.size (a decoder rejects anything else). */
typedef struct {
    sdb_docinfo_t doc;
    uint64_t offset, length;
} sdb_proto_range_header_t;

/* One BATCH item.  id is meaningful for BIND and UNBIND, data for PUT.
 * When decoded, path and data point into the BATCH payload. */
typedef struct {
    uint8_t kind;                 /* enum sdb_proto_batch_kind */
    uint64_t if_version;          /* the version the item's document must have (0: none);
                                     SDB_PROTO_UNSET: unconditional */
    sdb_id_t id;
    sdb_proto_str_t path;
    sdb_proto_bytes_t data;
} sdb_proto_batch_item_t;

/* A BATCH payload: count items encoded back to back in data[0..len).  Walk
 * it with sdb_proto_batch_iter(); encode items with sdb_proto_batch_item_encode. */
typedef struct {
    uint32_t count;
    const uint8_t *data;
    size_t len;
} sdb_proto_batch_t;

/* BATCH_RESULT: count docinfo records (SDB_PROTO_DOCINFO_SIZE bytes each,
 * read with sdb_proto_docinfo_decode), one per item, in item order. */
typedef struct {
    uint32_t count;
    const uint8_t *data;
} sdb_proto_batch_result_t;

/* BATCH_FAILED: the item that made the batch fail (SDB_PROTO_NO_ITEM when
 * none did, e.g. an I/O error), its status (never OK) and a message. */
typedef struct {
    uint32_t item;
    uint16_t status;
    sdb_proto_str_t message;
} sdb_proto_batch_failed_t;

typedef struct {
    uint32_t limit;               /* 0: no limit */
    uint8_t delimiter;            /* 0: none */
    sdb_proto_str_t prefix;       /* may be empty (all paths) */
    sdb_proto_str_t start_after;  /* empty: from the beginning */
} sdb_proto_search_t;

typedef struct {
    uint16_t status;              /* SDB_STATUS_*, never OK */
    sdb_proto_str_t message;      /* UTF-8 text for humans, may be empty */
} sdb_proto_error_t;

/* An ENTRIES payload: count entries, encoded back to back in data[0..len).
 * Walk it with sdb_proto_entries_iter(); build one with the builder below. */
typedef struct {
    uint16_t count;
    const uint8_t *data;
    size_t len;
} sdb_proto_entries_t;

typedef struct {
    uint32_t count;               /* entries sent in this listing's ENTRIES frames */
    uint8_t more;                 /* 1: the limit cut the listing short */
} sdb_proto_list_end_t;

typedef struct {
    sdb_docinfo_t doc;            /* current version */
    sdb_proto_str_t text;         /* human-readable description (UTF-8) */
} sdb_proto_info_t;

/* One decoded message.  Which union member is meaningful follows from the
 * opcode's body (sdb_proto_opcode_body): EMPTY none, RAW raw, HELLO hello,
 * HELLO_OK hello_ok, PUT_BEGIN put_begin, PUT_END put_end, PATH path, ID id,
 * ID_VERSION id_version, ID_PATH id_path, SEARCH search, ERROR error,
 * DOCINFO doc, ENTRIES entries, LIST_END list_end, INFO info, PATH_RANGE
 * path_range, ID_RANGE id_range, RANGE_HEADER range_header, BATCH batch,
 * BATCH_RESULT batch_result, BATCH_FAILED batch_failed. */
typedef struct {
    uint8_t opcode;
    uint8_t flags;
    uint32_t request_id;
    union {
        sdb_proto_bytes_t raw;
        sdb_proto_hello_t hello;
        sdb_proto_hello_ok_t hello_ok;
        sdb_proto_put_begin_t put_begin;
        sdb_proto_put_end_t put_end;
        sdb_proto_str_t path;
        sdb_id_t id;
        sdb_proto_id_version_t id_version;
        sdb_proto_id_path_t id_path;
        sdb_proto_search_t search;
        sdb_proto_error_t error;
        sdb_docinfo_t doc;
        sdb_proto_entries_t entries;
        sdb_proto_list_end_t list_end;
        sdb_proto_info_t info;
        sdb_proto_path_range_t path_range;
        sdb_proto_id_range_t id_range;
        sdb_proto_range_header_t range_header;
        sdb_proto_batch_t batch;
        sdb_proto_batch_result_t batch_result;
        sdb_proto_batch_failed_t batch_failed;
    } u;
} sdb_proto_msg_t;

/* ---- Tables ------------------------------------------------------------- */

/* Returns the opcode's name ("PUT_BEGIN"), or NULL for an unknown opcode. */
const char *sdb_proto_opcode_name(unsigned opcode);

/* Returns the opcode's one-line description, or NULL for an unknown opcode. */
const char *sdb_proto_opcode_desc(unsigned opcode);

/* Returns the opcode's payload layout (enum sdb_proto_body), or SDB_EOPCODE
 * for an unknown opcode. */
int sdb_proto_opcode_body(unsigned opcode);

/* Returns 1 for a known request opcode, 0 for a known response opcode, and
 * SDB_EOPCODE for an unknown one. */
int sdb_proto_opcode_is_request(unsigned opcode);

/* Returns the status's name ("NOT_FOUND"), or NULL for an unknown status. */
const char *sdb_proto_status_name(unsigned status);

/* Returns the status's one-line description, or NULL for an unknown status. */
const char *sdb_proto_status_desc(unsigned status);

/* Maps a wire status to its C error code: SDB_STATUS_OK -> 0 (SDB_OK),
 * SDB_STATUS_NOT_FOUND -> SDB_ENOTFOUND, ..., one to one as listed in
 * opcodes.def.  An unknown status (from a newer peer) gives SDB_EINTERNAL. */
int sdb_proto_status_to_error(unsigned status);

/* Maps a C error code (0, an engine SDB_E* code or a protocol code above) to
 * its wire status, the inverse of sdb_proto_status_to_error().  Any other
 * negative value gives SDB_STATUS_INTERNAL; a positive value gives
 * SDB_STATUS_OK (it is not an error). */
unsigned sdb_proto_status_from_error(int err);

/* Returns a static text for any error code this header or streamdb.h
 * defines (the status description), "unknown error" otherwise; never NULL.
 * Unlike sdb_strerror() it needs no engine at link time. */
const char *sdb_proto_strerror(int err);

/* Picks the protocol version for a client that speaks min..max: the highest
 * version both sides speak, stored in *out.  Errors: SDB_EVERSION (no common
 * version, or min > max), SDB_EINVAL (out NULL). */
int sdb_proto_negotiate(unsigned min_version, unsigned max_version, uint16_t *out);

/* ---- Frame header ------------------------------------------------------- */

typedef struct {
    uint8_t opcode;
    uint8_t flags;
    uint32_t length;          /* payload bytes */
    uint32_t request_id;
} sdb_proto_header_t;

/* Writes the 12-byte header for (opcode, flags, length, request_id) to out.
 * Use it to send a payload that is already in place (DATA frames read
 * straight into buf + 12).  No checks: the caller keeps length within the
 * peer's limit. */
void sdb_proto_header_encode(uint8_t out[SDB_PROTO_HEADER_SIZE], const sdb_proto_header_t *h);

/* Parses 12 header bytes into *h and checks them: magic, reserved byte,
 * length <= max_payload (and <= SDB_PROTO_MAX_FRAME).  The opcode and flags
 * are not checked here (an unknown opcode is answered, not fatal).  *h is
 * filled even on error, so that an ERROR reply can echo the request id.
 * Errors: SDB_EPROTO (bad magic or reserved byte), SDB_ETOOLARGE (length
 * over the limit), SDB_EINVAL (NULL). */
int sdb_proto_header_decode(const uint8_t in[SDB_PROTO_HEADER_SIZE], uint32_t max_payload,
                            sdb_proto_header_t *h);

/* ---- Incremental frame decoder ------------------------------------------ */

/* A complete frame as yielded by the decoder.  payload is never NULL (for an
 * empty payload it points at a valid, zero-length location). */
typedef struct {
    sdb_proto_header_t hdr;
    const uint8_t *payload;
} sdb_proto_frame_t;

/* Decoder state, meant to be embedded (e.g. in a connection).  The fields
 * are private: use the functions below. */
typedef struct {
    uint32_t max_payload;
    int err;                          /* sticky error, 0 while healthy */
    size_t hdr_have;                  /* header bytes received, 0..12 */
    uint8_t hdr[SDB_PROTO_HEADER_SIZE];
    sdb_proto_header_t cur;           /* the current frame's header, once complete */
    uint8_t *buf;                     /* payload buffer (malloc) */
    size_t cap, have;
} sdb_proto_decoder_t;

/* A payload buffer above this size is released at the next call to
 * sdb_proto_decoder_feed() that starts a new frame, so that a connection does
 * not keep a large frame's memory; buffers up to it are reused. */
#define SDB_PROTO_DECODER_KEEP 65536u

/* Initializes d to accept payloads of at most max_payload bytes (clamped to
 * SDB_PROTO_MAX_FRAME).  Allocates nothing; cannot fail. */
void sdb_proto_decoder_init(sdb_proto_decoder_t *d, uint32_t max_payload);

/* Changes the limit for frames whose header has not yet been parsed (a client
 * raises it to the server's max_frame_bytes after HELLO_OK). */
void sdb_proto_decoder_set_limit(sdb_proto_decoder_t *d, uint32_t max_payload);

/* Releases the decoder's buffer; d may be initialized again.  NULL is ok. */
void sdb_proto_decoder_free(sdb_proto_decoder_t *d);

/* Returns 1 when part of a frame has been received but not yet yielded
 * (the server's per-frame deadline runs), 0 otherwise. */
int sdb_proto_decoder_in_frame(const sdb_proto_decoder_t *d);

/* Feeds up to len bytes of input.  Consumes bytes until one frame is
 * complete or the input is exhausted, and stores the count consumed in
 * *used (call again with data + *used for the rest).
 * Returns 1 when a frame was completed and stored in *out, 0 when all input
 * was consumed without completing a frame (*out untouched), or a negative
 * error.  The header's length is checked against the limit before any
 * allocation; the decoder holds at most one frame's payload.
 * Ownership: out->payload points either into data (when the whole frame was
 * inside this call's input and nothing was buffered: no copy) or into the
 * decoder's buffer.  Either way it is valid until the next call on d (and,
 * in the first case, while the caller's data is).
 * Errors (sticky: every later call returns the same error and consumes
 * nothing; the stream cannot be resynchronised, so close the connection):
 * SDB_EPROTO (bad magic or reserved byte), SDB_ETOOLARGE (length over the
 * limit; out->hdr holds the rejected header), SDB_ENOMEM, SDB_EINVAL (NULL
 * arguments; not sticky). */
int sdb_proto_decoder_feed(sdb_proto_decoder_t *d, const void *data, size_t len,
                           size_t *used, sdb_proto_frame_t *out);

/* ---- Messages ----------------------------------------------------------- */

/* Decodes frame f into *out (views into f->payload, valid as long as it).
 * Checks, in order: the opcode is known (else SDB_EOPCODE); a request sets no
 * flag outside SDB_FLAG_REQUEST_MASK (else SDB_EINVAL; unknown response flag
 * bits are ignored); the payload matches the opcode's layout exactly, with
 * no byte missing and none left over (else SDB_EPROTO; HELLO and HELLO_OK
 * alone may carry extra trailing bytes, which are ignored, and must start
 * with SDB_PROTO_HELLO_MAGIC).  For an ENTRIES frame every entry is checked.
 * For ERROR, status 0 is SDB_EPROTO; LIST_END's more must be 0 or 1; a
 * RANGE_HEADER's offset + length must not pass its doc.size (SDB_EPROTO).
 * For BATCH every item is checked (a known kind, every field present);
 * BATCH_RESULT must hold exactly count docinfos; BATCH_FAILED's status 0 is
 * SDB_EPROTO.
 * Path contents are not checked here (see sdb_proto_str_copy).
 * Errors: SDB_EOPCODE, SDB_EINVAL, SDB_EPROTO. */
int sdb_proto_decode(const sdb_proto_frame_t *f, sdb_proto_msg_t *out);

/* Computes the size (header + payload) of msg's frame in *size.
 * Errors as sdb_proto_encode except SDB_ETOOLARGE for cap. */
int sdb_proto_encoded_size(const sdb_proto_msg_t *msg, size_t *size);

/* Encodes msg as one frame (header + payload) into buf[0..cap) and stores its
 * size in *len.  Writes nothing past cap.  The caller keeps the payload within
 * the peer's max_frame_bytes; this function only enforces the hard ceiling.
 * Errors: SDB_EOPCODE (unknown opcode), SDB_EINVAL (NULL arguments; a string
 * longer than its length field allows; a NULL pointer with a nonzero length;
 * ERROR with status 0; LIST_END more > 1; a RANGE_HEADER past its doc.size),
 * SDB_ETOOLARGE (the frame does not
 * fit in cap, or its payload exceeds SDB_PROTO_MAX_FRAME). */
int sdb_proto_encode(const sdb_proto_msg_t *msg, void *buf, size_t cap, size_t *len);

/* Copies s into out[0..cap) as a NUL-terminated C string, for handing a path
 * to the engine.  Errors: SDB_EINVAL when s contains a NUL byte (which would
 * silently shorten the path) or does not fit (len >= cap).  Emptiness,
 * length <= SDB_MAX_PATH and UTF-8 validity are left to the engine. */
int sdb_proto_str_copy(const sdb_proto_str_t *s, char *out, size_t cap);

/* Writes a docinfo record (52 bytes) to out / reads one from in. */
void sdb_proto_docinfo_encode(uint8_t out[SDB_PROTO_DOCINFO_SIZE], const sdb_docinfo_t *d);
void sdb_proto_docinfo_decode(const uint8_t in[SDB_PROTO_DOCINFO_SIZE], sdb_docinfo_t *d);

/* ---- Listing entries ---------------------------------------------------- */

/* One listing entry.  path is meaningful for DOC and PREFIX, info for DOC and
 * VERSION.  When decoded, path points into the ENTRIES payload. */
typedef struct {
    uint8_t kind;               /* enum sdb_proto_entry_kind */
    sdb_proto_str_t path;
    sdb_docinfo_t info;
} sdb_proto_entry_t;

/* Iterator over an ENTRIES payload. */
typedef struct {
    const uint8_t *p;
    size_t left;
    unsigned remaining;
} sdb_proto_entries_iter_t;

/* Starts iterating e (from sdb_proto_decode or built by hand). */
void sdb_proto_entries_iter(const sdb_proto_entries_t *e, sdb_proto_entries_iter_t *it);

/* Stores the next entry in *out.  Returns 1 for an entry, 0 at the end, or
 * SDB_EPROTO when the bytes are malformed (never for a payload that
 * sdb_proto_decode accepted).  Reads never go past the payload. */
int sdb_proto_entries_next(sdb_proto_entries_iter_t *it, sdb_proto_entry_t *out);

/* Builds one ENTRIES frame in a caller's buffer.  Usage: begin, add entries
 * until add returns SDB_ETOOLARGE (the entry did not fit and nothing was
 * written: send this frame and start another), then finish. */
typedef struct {
    uint8_t *buf;
    size_t cap, len;
    uint16_t count;
} sdb_proto_entries_builder_t;

/* Starts a frame in buf[0..cap), reserving room for the header and count.
 * Errors: SDB_EINVAL (NULL, or cap < 14). */
int sdb_proto_entries_begin(sdb_proto_entries_builder_t *b, void *buf, size_t cap);

/* Appends one entry.  Errors: SDB_ETOOLARGE (does not fit in cap, or the
 * frame already holds 65535 entries; nothing written), SDB_EINVAL (unknown
 * kind, path over 65535 bytes, NULL path pointer with a nonzero length). */
int sdb_proto_entries_add(sdb_proto_entries_builder_t *b, const sdb_proto_entry_t *e);

/* Writes the header (SDB_OP_ENTRIES, flags 0, request_id) and the count and
 * returns the frame's total size in bytes (ready to send from buf). */
size_t sdb_proto_entries_finish(sdb_proto_entries_builder_t *b, uint32_t request_id);

/* Encoded size of one entry (for sizing buffers). */
size_t sdb_proto_entry_size(const sdb_proto_entry_t *e);

/* ---- Batch items -------------------------------------------------------- */

/* Encoded size of one BATCH item (0 for an unknown kind). */
size_t sdb_proto_batch_item_size(const sdb_proto_batch_item_t *it);

/* Appends one item's encoding to out[0..cap) and stores its size in *len.
 * Errors: SDB_EINVAL (NULL, unknown kind, path over 65535 bytes, content
 * over 2^32 - 1 bytes, a NULL pointer with a nonzero length), SDB_ETOOLARGE
 * (does not fit in cap; nothing written). */
int sdb_proto_batch_item_encode(const sdb_proto_batch_item_t *it, void *out, size_t cap,
                                size_t *len);

/* Iterator over a BATCH payload. */
typedef struct {
    const uint8_t *p;
    size_t left;
    uint32_t remaining;
} sdb_proto_batch_iter_t;

/* Starts iterating b (from sdb_proto_decode or built by hand). */
void sdb_proto_batch_iter(const sdb_proto_batch_t *b, sdb_proto_batch_iter_t *it);

/* Stores the next item in *out.  Returns 1 for an item, 0 at the end, or
 * SDB_EPROTO when the bytes are malformed (never for a payload that
 * sdb_proto_decode accepted).  Reads never go past the payload. */
int sdb_proto_batch_next(sdb_proto_batch_iter_t *it, sdb_proto_batch_item_t *out);

SDB_VISIBILITY_POP

#ifdef __cplusplus
}
#endif
#endif /* STREAMDB_PROTO_H */
