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
 *     request order, and a stream's frames are contiguous.  One job may run
 *     several requests (a batch, JOB_BATCH): the request taken and the
 *     complete requests queued right behind it that answer at once (PING,
 *     GET, GET_ID, GET_RANGE, GET_ID_RANGE, LOOKUP, DELETE, DELETE_ID, BIND,
 *     UNBIND, INFO, FLUSH, and whole small uploads whose PUT_BEGIN .. PUT_END are all queued), at
 *     most BATCH_MAX, run in order on one worker, each answer appended to
 *     the job's output.  The worker starts no further request once the
 *     output holds ops_batch_bytes(), nor after one that leaves a stream
 *     going (a GET or a range larger than the room left, a listing in pieces); the
 *     frames it did not run go back to the head of the queue.  Uploads of a
 *     batch that reach their commit are not committed by it: the batch runs
 *     only further uploads after them (while their writers hold less than
 *     ops_batch_bytes(), each its content and a page), and they go to the commit stage,
 *     which at the end of the loop turn (when no commit job is out) starts
 *     ONE job that commits the waiting uploads of every connection as one
 *     group (commit_group) and answers them; their connections stay busy
 *     until it is back, so what they send next sees the commits.
 *  2. Every byte a connection makes the daemon hold is counted against one of
 *     its two caps, both max_output_bytes: request bytes (qbytes: each
 *     queued frame's payload plus its bookkeeping; job_bytes: the same for
 *     the frames its job holds, e.g. a batch of PUT_DATA or of requests,
 *     until the job is back (frames it did not run then count in qbytes
 *     again), then what the writers of its uploads waiting in the commit
 *     stage hold, until the commit job is back; and the undecoded input held back when the queue filled in the middle of a read) and output
 *     (out_bytes: the capacity of the buffer being written, of the buffer
 *     collecting the next write, and the write request itself).  Frames are
 *     decoded only while the queue is under max_inflight frames and under
 *     the cap; the rest of a read waits undecoded.  Reading stops while
 *     either side is over its cap (or the queue is full) and resumes when
 *     all fall to half.  Requests are taken from the queue only while the
 *     output is under the cap.  So a connection holds at most about
 *     2 x max_output_bytes plus one frame being decoded (max_frame_bytes)
 *     plus one response; when a frame is larger than max_output_bytes, the
 *     queue and the output may each go over by one frame (docs/CONFIG.md).  The frame and idle deadlines run only while the
 *     connection is read: a pause for backpressure is the server's, not a
 *     slow client's.
 *  3. Output is coalesced: at most one write is in flight per connection;
 *     responses are appended to one pending buffer, which is written once
 *     per loop turn (a prepare handle before the loop polls, a check handle
 *     after the poll's callbacks), so that the answers a read or a job's
 *     return produced leave in one write, and those produced while a write
 *     is in flight leave in the next.  A GET stream or a
 *     long listing produces its next batch (at most half of
 *     max_output_bytes) only while the output is under half of
 *     max_output_bytes (a client that does not read stops the disk reads).
 *  4. An upload (PUT_BEGIN .. PUT_END/PUT_ABORT) owns the connection; any
 *     other frame meanwhile is a fatal protocol error.  Closing aborts it.
 *  5. A connection is freed only after its job (if any) has come back and
 *     its handle is closed.  At the end of the peer's stream (a half-close)
 *     reading stops; the connection closes once everything read is answered
 *     and written (eof), aborting an upload still open.
 *  6. The loop thread never calls into the engine (it would wait on the
 *     engine's locks): opening, aborting and closing writers and readers,
 *     and STATS's engine figures, run on the thread pool.  An upload or
 *     download dropped with its connection is closed by a detached job
 *     (ops_release); only when that job cannot be allocated or queued does
 *     the loop abort the writer or close the reader itself, rather than
 *     leak it.
 *  7. A connection that has not completed HELLO is dropped after
 *     handshake_timeout_ms.  Such connections may hold at most half of
 *     max_connections; a new connection beyond that, or beyond
 *     max_connections while any exists, evicts the oldest of them (ERROR
 *     BUSY), so that clients that do authenticate always find room; one
 *     whose whole HELLO already waits in its socket (not read yet: a burst
 *     of accepts runs first) is spared.
 *  8. Fairness: one pump of a connection answers at most PUMP_BATCH requests
 *     inline, then yields to the loop and goes on in an idle callback, so
 *     that a client pipelining thousands of PINGs delays others by one
 *     batch, not by all of its backlog.  A job holds one worker for at most
 *     BATCH_MAX requests or one batch of output, and the connection's next
 *     job queues behind the other connections' jobs.  The commit stage's
 *     job is the exception by design: it commits the staged uploads of every
 *     connection (up to BATCH_MAX each) as one group, one such job at a time.
 *  9. Shutdown (SIGTERM/SIGINT) drains: listeners close, reading stops and
 *     queued requests that have not started are dropped; running jobs, GET
 *     streams and listings go on until shutdown_timeout_ms, then are cut;
 *     uploads are aborted.  Each connection gets ERROR SHUTTING_DOWN once
 *     nothing of it runs.
 */
#ifndef SDB_SERVER_H
#define SDB_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "server/config.h"
#include "streamdb.h"
#include "streamdb_proto.h"

/* A request frame, decoded once as it is queued (the message's strings
 * point into payload). */
typedef struct qframe {
    sdb_proto_header_t hdr;
    uint8_t *payload;
    struct qframe *next;
    int decode_rc;                /* sdb_proto_decode()'s result for it */
    sdb_proto_msg_t m;            /* valid when decode_rc is 0 */
} qframe_t;

/* What a queued frame costs beyond its payload: the qframe_t and the two
 * allocations' headers (invariant 2). */
#define QFRAME_COST (sizeof(qframe_t) + 32)

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

/* A LIST_PATHS / LIST_VERSIONS listing produced in pieces (invariant 3):
 * each piece restarts the engine listing after the last entry sent. */
typedef struct {
    uint8_t opcode;
    uint32_t rid;
    uint64_t t0;
    sdb_id_t id;
    int started;                  /* an entry was sent: skip up to `after` */
    char *after;                  /* LIST_PATHS: the last path sent (SDB_MAX_PATH + 1) */
    uint64_t after_version;       /* LIST_VERSIONS: the last version sent */
    uint32_t count;               /* entries sent so far */
} listing_t;

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
    int eof;                      /* the peer half-closed: answer what was read, then close */
    int yielded;                  /* its pump stopped to let others run (invariant 8) */
    int dirty;                    /* output waits for this loop turn's flush (invariant 3) */
    struct conn *dirty_next;
    qframe_t *qhead, **qtail;
    uint32_t qcount;
    uint64_t qbytes;              /* queued request bytes and their bookkeeping */
    uint64_t job_bytes;           /* ... and those of the frames its job holds */
    uint8_t *in_held;             /* undecoded input held back (invariant 2) */
    size_t in_len, in_off;
    uint64_t out_bytes;           /* output memory: in flight, pending, write request */
    uint64_t out_inflight;        /* ... of which the write in flight */
    outbuf_t pend;                /* responses waiting for the write in flight */
    upload_t *up;
    download_t *down;
    listing_t *list;
    uint64_t accept_ms;
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
    uv_idle_t resume;             /* pumps connections that yielded */
    uv_prepare_t flush_prep;      /* write what this loop turn produced (invariant 3): */
    uv_check_t flush_check;       /* before the loop polls, and after the poll's callbacks */
    conn_t *dirty;                /* connections with output to write, newest first */
    struct job *stage, **stage_tail;   /* batches whose uploads wait for the commit stage */
    int committing;               /* the commit stage's job is out */
    uv_timer_t accept_retry;      /* a listener whose accept failed, tried again */
    int retry_tcp, retry_pipe;
    uint64_t jobs;                /* thread-pool jobs not yet back (detached ones too) */
    int test_fail_accepts;        /* test hook: fail this many connection allocations */
    conn_t *conns;
    uint64_t nconns, total_conns, rejected_conns, next_id;
    uint64_t bytes_in, bytes_out;
    uint64_t writes;              /* socket writes completed (STATS) */
    uint64_t start_ms;
    int stopping;
    uint64_t stop_deadline_ms;
    opstat_t ops[256];
};

/* Runs the daemon until SIGTERM/SIGINT.  Returns the process exit code. */
int server_run(server_config_t *cfg);

/* Milliseconds of the loop's clock. */
uint64_t server_now_ms(server_t *s);

/* ---- dispatch.c (loop thread) and work.c (thread pool): requests ---- */

/* Handles one queued frame of c (it takes ownership of f): on the loop when
 * no engine call is needed, else as a job.  Returns 1 when a job was
 * started (the connection is busy), 0 when handled inline. */
int ops_dispatch(conn_t *c, qframe_t *f);

/* Starts the next batch of c's download (c->down) or listing (c->list) as
 * a job. */
void ops_continue(conn_t *c);

/* Closes a writer (aborting it) and a reader (either may be NULL) on the
 * thread pool, detached from any connection (invariant 6). */
void ops_release(server_t *s, sdb_writer_t *w, sdb_reader_t *r);

/* The commit stage: when batches left uploads waiting for their commits
 * and no commit job is out, starts one job that commits them all as one
 * group (the connections wait, busy, until it is back).  Called once per
 * loop turn (the flush handles) and by the sweep timer. */
void ops_commit_stage(server_t *s);

/* Bytes of output a streaming job produces per batch. */
size_t ops_batch_bytes(const server_t *s);

/* Appends one encoded message to o.  0 or a negative error. */
int out_msg(outbuf_t *o, const sdb_proto_msg_t *m);
/* Appends an ERROR frame for err (an SDB_E* / protocol code). */
void out_error(outbuf_t *o, uint32_t rid, int err, uint8_t flags, const char *msg);

/* ---- server.c services for dispatch.c ---- */

/* Queues o's bytes for sending on c (takes the buffer); they are written
 * at the end of the loop turn. */
void conn_send(conn_t *c, outbuf_t *o);
/* Encodes m straight into c's pending output (no buffer of its own), sent
 * as conn_send sends.  A connection out of memory is closed. */
void conn_reply(conn_t *c, const sdb_proto_msg_t *m);
/* Sends an ERROR frame flagged CLOSING, then closes once it is written. */
void conn_fatal(conn_t *c, uint32_t rid, int err, const char *msg);
/* Takes the next frames after a job: pumps the queue. */
void conn_pump(conn_t *c);
/* Has the loop's flush handles run at the end of this loop turn (the
 * dirty connections' output, the commit stage). */
void server_wake_flush(server_t *s);
/* Called by dispatch.c after a job completes on c. */
void conn_job_done(conn_t *c);
/* Records a completed request for STATS. */
void stats_record(server_t *s, uint8_t opcode, int err, uint64_t t0_us);
/* Builds the STATS JSON (malloc()ed) from the server's counters and the
 * engine's figures st (NULL: none), on the loop thread. */
char *stats_json(server_t *s, const sdb_stats_t *st);
uint64_t now_us(void);

#endif
