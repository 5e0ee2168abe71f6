/*
 * job.h -- the hand-off between the loop thread and the thread pool (private
 * to src/server).  dispatch.c, on the loop, builds a job_t from queued
 * frames and the connection's stream state and queues it; work.c runs it on
 * a worker (job_work_cb), touching only the job; dispatch.c's after-work
 * callback, on the loop again, gives the results back to the connection.
 * Nothing else crosses the boundary (server.h, invariant 6).
 */
#ifndef SDB_SERVER_JOB_H
#define SDB_SERVER_JOB_H

#include "server/server.h"

/* Requests one JOB_BATCH runs at most (invariant 1); a whole upload counts
 * as one. */
#define BATCH_MAX 64

/* What a staged upload's writer may hold beyond its content until its
 * commit: the page being filled, at most the largest page size. */
#define STAGE_PAGE_COST (65536u + 1024u)

/* The uploads at the end of a batch whose commits wait for the server's
 * commit stage (dispatch.c): one commit job makes the commits of every
 * connection's waiting uploads as one group (commit_group) and answers
 * them.  Allocated by the worker that ran the batch; freed on the loop when
 * the commit job is back. */
typedef struct {
    unsigned n;
    uint64_t cost;                    /* memory their writers hold until the commits (each
                                         its content and a page, STAGE_PAGE_COST), counted in
                                         the connection's job_bytes (invariant 2) */
    upload_t *u[BATCH_MAX];           /* ready to commit, in request order */
    int rc[BATCH_MAX];                /* their commits' results */
    size_t tail_from[BATCH_MAX];      /* tail[tail_from[i] .. tail_from[i+1]): answers after u[i] */
    outbuf_t tail;                    /* ERRORs of uploads that failed before their commit */
} staged_t;

enum {
    JOB_COMMIT,
    JOB_BATCH, JOB_PUT_BEGIN, JOB_PUT_DATA, JOB_PUT_END, JOB_PUT_ABORT, JOB_GET_MORE, JOB_LIST_MORE,
    JOB_STATS, JOB_RELEASE
};

typedef struct job {
    uv_work_t work;
    conn_t *c;
    server_t *s;
    int kind;
    qframe_t *f;                      /* request frame(s), owned; a chain for PUT_DATA and
                                         JOB_BATCH */
    qframe_t *cur;                    /* the frame being run */
    qframe_t *rest;                   /* JOB_BATCH: the frames it did not run, cut from f and
                                         given back to the queue's head */
    upload_t *up;                     /* handed over for the job's duration */
    download_t *down;
    listing_t *list;
    sdb_writer_t *release_w;          /* JOB_RELEASE: what to close */
    sdb_reader_t *release_r;
    sdb_stats_t st;                   /* JOB_STATS: the engine's figures */
    int have_st;
    outbuf_t out;
    size_t base;                      /* where the current request's answer starts in out */
    uint8_t opcode;
    uint32_t rid;
    uint64_t t0;
    int err;                          /* result for STATS */
    int done;                         /* the request has answered (record STATS) */
    staged_t *staged;                 /* JOB_BATCH: uploads left to the commit stage */
    struct job *stage_next;           /* JOB_COMMIT's list of batch jobs, and the stage's */
    unsigned nrec;                    /* JOB_BATCH: requests answered, for STATS */
    struct {
        uint8_t opcode;
        int err;
    } rec[BATCH_MAX];
} job_t;

/* Runs job w->data on a worker thread (uv_queue_work's work callback): the
 * engine calls of its kind, with results and responses left in the job. */
void job_work_cb(uv_work_t *w);

/* ---- outbuf.c: encoding helpers, callable on either thread ---- */

/* Makes room for n more bytes in o.  0 or SDB_ENOMEM. */
int out_reserve(outbuf_t *o, size_t n);
/* Appends a frame with an empty payload (OK, END, PONG without data). */
void out_simple(outbuf_t *o, uint8_t opcode, uint32_t rid);
/* Appends a frame whose payload is one document's information (DOC,
 * GET_HEADER). */
void out_doc(outbuf_t *o, uint8_t opcode, uint32_t rid, const sdb_docinfo_t *d);
/* Frees a chain of queued frames and their payloads (NULL: nothing). */
void qframe_free(qframe_t *f);

#endif
