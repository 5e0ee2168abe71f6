/*
 * server.h -- streamdbd's core types (private to src/server).
 *
 * Threads: one libuv loop thread owns every socket, timer and connection;
 * engine calls run as jobs on libuv's thread pool (uv_queue_work) and report
 * back on the loop in their after-work callback.  A job receives what it
 * needs (frames, the upload or download it continues) and hands results
 * back; it never touches a connection.
 *
 * Connection state machine (numbered invariants):
 *  1. A connection runs at most one job at a time, and takes the next queued
 *     frame only after the previous request has answered: responses leave in
 *     request order, and a stream's frames are contiguous.
 *  2. Frames are queued as they are decoded; reading stops while the queue
 *     holds max_inflight frames or more than max_output_bytes of payload, or
 *     the unsent output exceeds max_output_bytes, and resumes when all three
 *     fall to half.  So a connection holds at most about 2 x max_output_bytes
 *     plus one read buffer and one frame being decoded.  The frame and idle
 *     deadlines run only while the connection is read: a pause for
 *     backpressure is the server's, not a slow client's.
 *  3. A GET stream produces its next batch of DATA frames only while the
 *     unsent output is under half of max_output_bytes (a client that does not
 *     read stops the disk reads).
 *  4. An upload (PUT_BEGIN .. PUT_END/PUT_ABORT) owns the connection; any
 *     other frame meanwhile is a fatal protocol error.  Closing aborts it.
 *  5. A connection is freed only after its job (if any) has come back and
 *     its handle is closed.
 */
#ifndef SDB_SERVER_H
#define SDB_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "server/config.h"
#include "streamdb.h"
#include "streamdb_proto.h"

typedef struct qframe {
    sdb_proto_header_t hdr;
    uint8_t *payload;
    struct qframe *next;
} qframe_t;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} outbuf_t;

typedef struct {
    sdb_writer_t *w;
    uint32_t rid;
    uint64_t declared;            /* PUT_BEGIN size or SDB_PROTO_UNSET */
    uint64_t got;
    int failed;                   /* an ERROR was already sent: end silently */
    uint64_t t0;                  /* PUT_BEGIN time (us), for STATS */
    uint64_t if_version;          /* PUT_BEGIN's, for the message of a conflict */
    char path[SDB_MAX_PATH + 1];  /* PUT_BEGIN's path ("" when it was refused) */
} upload_t;

typedef struct {
    sdb_reader_t *r;
    uint32_t rid;
    uint64_t left;
    uint8_t opcode;
    uint64_t t0;
} download_t;

typedef struct server server_t;

typedef struct conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    server_t *srv;
    uint64_t id;
    sdb_proto_decoder_t dec;
    int hello;                    /* HELLO accepted */
    int reading, closing, close_after_flush, handle_closed;
    int busy;                     /* a job is in flight */
    qframe_t *qhead, **qtail;
    uint32_t qcount;
    uint64_t qbytes;
    uint64_t out_bytes;           /* written to libuv, not yet completed */
    upload_t *up;
    download_t *down;
    uint64_t last_active_ms, frame_start_ms, last_write_ms;
    char peer[64];
    struct conn *prev, *next;
} conn_t;

/* Per-opcode statistics, updated on the loop thread only. */
#define LAT_BUCKETS 40
typedef struct {
    uint64_t requests, errors;
    uint64_t lat[LAT_BUCKETS];    /* bucket i: latency < 2^i microseconds */
} opstat_t;

struct server {
    uv_loop_t *loop;
    server_config_t *cfg;
    sdb_t *db;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    int have_tcp, have_pipe;
    uv_timer_t sweep;
    uv_signal_t sigterm, sigint, sighup;
    conn_t *conns;
    uint64_t nconns, total_conns, rejected_conns, next_id;
    uint64_t bytes_in, bytes_out;
    uint64_t start_ms;
    int stopping;
    uint64_t stop_deadline_ms;
    opstat_t ops[256];
};

/* Runs the daemon until SIGTERM/SIGINT.  Returns the process exit code. */
int server_run(server_config_t *cfg);

/* Milliseconds of the loop's clock. */
uint64_t server_now_ms(server_t *s);

/* ---- ops.c: requests executed on the thread pool ---- */

/* Handles one queued frame of c (it takes ownership of f): on the loop when
 * no engine call is needed, else as a job.  Returns 1 when a job was
 * started (the connection is busy), 0 when handled inline. */
int ops_dispatch(conn_t *c, qframe_t *f);

/* Starts the next DATA batch of c's download as a job. */
void ops_continue_get(conn_t *c);

/* Appends one encoded message to o.  0 or a negative error. */
int out_msg(outbuf_t *o, const sdb_proto_msg_t *m);
/* Appends an ERROR frame for err (an SDB_E* / protocol code). */
void out_error(outbuf_t *o, uint32_t rid, int err, uint8_t flags, const char *msg);

/* ---- server.c services for ops.c ---- */

/* Queues o's bytes for sending on c (takes the buffer). */
void conn_send(conn_t *c, outbuf_t *o);
/* Sends an ERROR frame flagged CLOSING, then closes once it is written. */
void conn_fatal(conn_t *c, uint32_t rid, int err, const char *msg);
/* Takes the next frames after a job: pumps the queue. */
void conn_pump(conn_t *c);
/* Called by ops.c after a job completes on c. */
void conn_job_done(conn_t *c);
/* Records a completed request for STATS. */
void stats_record(server_t *s, uint8_t opcode, int err, uint64_t t0_us);
/* Builds the STATS JSON (malloc()ed). */
char *stats_json(server_t *s);
uint64_t now_us(void);

#endif
