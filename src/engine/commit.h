/*
 * commit.h -- group commit (private): every change goes through
 * commit_submit(), which queues it; one waiting thread becomes the leader,
 * plans a conflict-free batch of queued requests into journal records,
 * makes them durable with one sync that covers the batch's data pages and
 * its journal group (lazy mode: buffers them), applies them to the
 * in-memory state and wakes every member.
 */
#ifndef SDB_COMMIT_H
#define SDB_COMMIT_H

#include "engine/db_int.h"

enum { OP_PUT, OP_DELETE, OP_DELETE_ID, OP_BIND, OP_UNBIND, OP_FLUSH, OP_CHECKPOINT,
       OP_CP_SWITCH,                   /* OP_CP_SWITCH: journal_bg_switch() (journal.h) */
       OP_MULTI };                     /* an atomic batch (sdb_batch_commit): see items */

struct commit_req {
    int op;
    const char *path;
    size_t plen;
    sdb_id_t id;
    uint64_t if_version;           /* OP_PUT: UINT64_MAX = unconditional; an OP_MULTI item of
                                      any op: the version its document must have (0: none) */
    docver_t *ver;                 /* OP_PUT: the new version (extents, size, crc, blob);
                                      ownership passes to the state on success */
    const uint8_t *run;            /* OP_PUT: the last data pages, still to be written by the */
    pgno_t run_start;              /* leader (so a batch's pages go out in few large writes); */
    uint32_t run_n;                /* run_n is 0 once written.  The caller owns the buffer. */
    int rc;
    sdb_docinfo_t info;            /* OP_PUT result */
    int done;
    pthread_cond_t *cv;            /* its submitter's: signalled when it is done, or when it
                                      is its turn to lead (one per commit_submit_many call) */
    commit_req_t *items;           /* OP_MULTI: its operations (OP_PUT, OP_DELETE, OP_BIND,
                                      OP_UNBIND; their data runs already written), planned in
                                      order as one unit: all are applied or none.  Each item's
                                      info receives the document it concerned. */
    size_t nitems;
    size_t failed;                 /* OP_MULTI: the item that made rc, or SIZE_MAX */
    commit_req_t *next;
};

/* Queues req and blocks until it is committed (durable when cfg.durable)
 * or refused.  Returns req->rc: 0, SDB_ENOTFOUND, SDB_ECONFLICT, SDB_EIO
 * (sticky error), SDB_ENOSPC, SDB_ETOOLARGE or SDB_ENOMEM. */
int commit_submit(sdb_t *db, commit_req_t *req);

/* Queues the n requests of reqs together, in that order (the leader takes
 * them in one batch unless they conflict, see commit.c), and blocks until
 * every one is committed or refused; each reqs[i]->rc holds its result as
 * commit_submit returns it.  With the sticky error set, each gets SDB_EIO
 * and nothing is queued. */
void commit_submit_many(sdb_t *db, commit_req_t *const *reqs, size_t n);

/* Stops lazy mode's sync thread, waiting for a sync it runs (db_free; no
 * commit may run). */
void commit_lazy_stop(sdb_t *db);

#endif
