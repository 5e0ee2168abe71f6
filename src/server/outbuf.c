/*
 * outbuf.c -- encoding responses into an output buffer with the shared
 * codec (streamdb_proto.h).  Pure functions of their arguments: the loop
 * (dispatch.c) and the workers (work.c) both call them, each on its own
 * buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "server/job.h"

int out_reserve(outbuf_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t nc = o->cap ? o->cap : 256;
    while (nc < o->len + n)
        nc *= 2;
    uint8_t *p = realloc(o->p, nc);
    if (!p)
        return SDB_ENOMEM;
    o->p = p;
    o->cap = nc;
    return 0;
}

int out_msg(outbuf_t *o, const sdb_proto_msg_t *m)
{
    size_t size, len;
    int rc = sdb_proto_encoded_size(m, &size);
    if (!rc)
        rc = out_reserve(o, size);
    if (!rc)
        rc = sdb_proto_encode(m, o->p + o->len, size, &len);
    if (!rc)
        o->len += len;
    return rc;
}

void out_error(outbuf_t *o, uint32_t rid, int err, uint8_t flags, const char *msg)
{
    sdb_proto_msg_t m = { .opcode = SDB_OP_ERROR, .flags = flags, .request_id = rid };
    m.u.error.status = (uint16_t)sdb_proto_status_from_error(err);
    if (m.u.error.status == SDB_STATUS_OK)
        m.u.error.status = SDB_STATUS_INTERNAL;
    const char *text = msg ? msg : sdb_proto_strerror(err);
    m.u.error.message.ptr = text;
    m.u.error.message.len = strlen(text) > SDB_PROTO_MAX_MESSAGE ? SDB_PROTO_MAX_MESSAGE : strlen(text);
    out_msg(o, &m);
}

void out_simple(outbuf_t *o, uint8_t opcode, uint32_t rid)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    out_msg(o, &m);
}

void out_doc(outbuf_t *o, uint8_t opcode, uint32_t rid, const sdb_docinfo_t *d)
{
    sdb_proto_msg_t m = { .opcode = opcode, .request_id = rid };
    m.u.doc = *d;
    out_msg(o, &m);
}

void qframe_free(qframe_t *f)
{
    while (f) {
        qframe_t *n = f->next;
        free(f->payload);
        free(f);
        f = n;
    }
}
