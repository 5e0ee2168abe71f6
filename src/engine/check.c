/*
 * check.c -- sdb_check: verify a database file completely, and repair it.
 *
 * Verification opens the file the way sdb_open does (slot, checkpoint,
 * journal, free-space derivation, which refuses a page referenced twice),
 * then reads every page of every retained version, checking its CRC, its
 * stamp (blob id, index, length, last flag) and the content CRC.  Repair
 * keeps every version that verifies, drops the others, and writes a fresh
 * checkpoint and both header slots.  When no slot or checkpoint can be
 * loaded at all, repair salvages complete documents from their data pages
 * alone (bound under "lost+found/<id>").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/commit.h"
#include "engine/journal.h"
#include "engine/util.h"

/* Salvage: scan every page for complete runs of data pages of one blob and
 * rebuild them as documents (used when the metadata cannot be loaded). */
static int salvage(sdb_t *db, FILE *rep)
{
    uint64_t npages = db->be->size(db->be) / db->page_size;
    uint8_t *pg = malloc(db->page_size);
    buf_t b = { 0 };
    int rc = pg ? SDB_OK : SDB_ENOMEM;
    uint64_t found = 0;
    for (uint64_t p = FIRST_PAGE; p < npages && !rc; p++) {
        page_hdr_t h;
        if ((rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)))
            break;                  /* an unread page is not an empty one */
        if (page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_DATA || h.index != 0)
            continue;
        /* follow consecutive pages of the same blob */
        docver_t v = { 0 };
        extent_t ext = { p, 0 };
        uint8_t blob[16];
        memcpy(blob, h.owner, 16);
        uint64_t size = 0;
        uint32_t crc = 0;
        int complete = 0;
        for (uint64_t q = p; q < npages; q++) {
            uint32_t dcrc;
            if (db->be->read(db->be, q * db->page_size, pg, db->page_size) ||
                page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, &dcrc) || h.type != PT_DATA ||
                memcmp(h.owner, blob, 16) || h.index != q - p ||
                (!(h.flags & PF_LAST) && h.data_len != db->cap))
                break;
            ext.count++;
            size += h.data_len;
            crc = crc_add(db, crc, dcrc, h.data_len);
            if (h.flags & PF_LAST) {
                complete = 1;
                break;
            }
        }
        if (!complete)
            continue;
        sdb_id_t id;
        char ids[37], path[64];
        util_new_id(&id);
        sdb_id_format(&id, ids);
        snprintf(path, sizeof(path), "lost+found/%s", ids);
        v.version = 1;
        v.size = size;
        v.crc = crc;
        v.modified_ms = util_now_ms();
        memcpy(v.blob, blob, 16);
        v.nextents = 1;
        v.ext = &ext;
        b.len = 0;
        rc = rec_version(&b, &id, &v, v.modified_ms);
        if (!rc)
            rc = rec_bind(&b, &id, path, strlen(path));
        if (!rc)
            rc = apply_records(db, b.p, b.len, 0);
        if (!rc) {
            fprintf(rep, "salvaged %" PRIu64 " bytes from page %" PRIu64 " as %s\n", size, p, path);
            found++;
        }
        p += ext.count - 1;
    }
    if (!rc)
        fprintf(rep, "salvage: %" PRIu64 " documents recovered\n", found);
    free(pg);
    free(b.p);
    return rc;
}

/* ---- a damaged checkpoint, read around its damage ---- */

#define REC_NEED ((size_t)-1)      /* cp_record_len: the record runs past the bytes given */

/* Length of the checkpoint record (VERSION or BIND) at p[0..n), REC_NEED
 * when it runs past n, 0 when it is not a well-formed one: the extents
 * must lie in the file and hold exactly the version's size, a path must be
 * valid UTF-8 starting with '/'. */
static size_t cp_record_len(const sdb_t *db, const uint8_t *p, size_t n, uint64_t filepages)
{
    if (p[0] == REC_VERSION) {
        const size_t fixed = 1 + 16 + 8 + 8 + 4 + 8 + 8 + 16 + 4;
        if (n < fixed)
            return REC_NEED;
        uint64_t version = get_u64(p + 17), size = get_u64(p + 25), pages = 0;
        uint32_t ne = get_u32(p + 69);
        if (version == 0 || ne > (size + db->cap - 1) / db->cap)
            return 0;
        if (n - fixed < (size_t)ne * 12)
            return REC_NEED;
        for (uint32_t i = 0; i < ne; i++) {
            uint64_t start = get_u64(p + fixed + 12 * (size_t)i);
            uint32_t cnt = get_u32(p + fixed + 12 * (size_t)i + 8);
            if (start < FIRST_PAGE || cnt == 0 || start + cnt > filepages)
                return 0;
            pages += cnt;
        }
        return pages == (size + db->cap - 1) / db->cap ? fixed + 12 * (size_t)ne : 0;
    }
    if (p[0] == REC_BIND) {
        if (n < 19)
            return REC_NEED;
        uint16_t len = get_u16(p + 17);
        if (len == 0)
            return 0;
        if (n - 19 < len)
            return REC_NEED;
        return p[19] == '/' && util_utf8_valid(p + 19, len) ? 19 + (size_t)len : 0;
    }
    return 0;
}

/* Walks the records of p[from..end): returns where the walk stopped, in
 * *nrec how many it passed, in *need 1 when it stopped at a record that
 * runs past end (else at a malformed one, or at end; -1: out of memory).
 * Paths must come in increasing byte order, after *last (updated). */
static size_t cp_walk(const sdb_t *db, const uint8_t *p, size_t from, size_t end,
                      uint64_t filepages, buf_t *last, size_t *nrec, int *need)
{
    size_t off = from;
    *nrec = 0;
    *need = 0;
    while (off < end) {
        size_t k = cp_record_len(db, p + off, end - off, filepages);
        if (k == REC_NEED) {
            *need = 1;
            break;
        }
        if (k == 0)
            break;
        if (p[off] == REC_BIND) {
            size_t len = k - 19;
            const uint8_t *path = p + off + 19;
            int c = last->len ? memcmp(path, last->p, len < last->len ? len : last->len) : 1;
            if (c < 0 || (c == 0 && len <= last->len))
                break;              /* out of order: not a record boundary after all */
            last->len = 0;
            if (buf_put(last, path, len)) {
                *need = -1;         /* out of memory: the caller fails */
                break;
            }
        }
        off += k;
        ++*nrec;
    }
    return off;
}

/* Applies the records of p[from..to) one by one.  A BIND whose document is
 * not there (its VERSION records were in a damaged page) is reported and
 * skipped.  *open_doc gets the id of a trailing run of VERSION records (a
 * document whose list of versions may go on in the next, damaged, page).
 * 0 or an error. */
static int cp_apply(sdb_t *db, const uint8_t *p, size_t from, size_t to, uint64_t filepages,
                    FILE *rep, sdb_id_t *open_doc, int *have_open)
{
    *have_open = 0;
    for (size_t off = from; off < to;) {
        size_t k = cp_record_len(db, p + off, to - off, filepages);
        if (k == 0 || k == REC_NEED)
            return SDB_ECORRUPT;
        sdb_id_t id;
        memcpy(id.b, p + off + 1, 16);
        if (p[off] == REC_BIND && !doc_find(db, &id)) {
            char ids[37];
            sdb_id_format(&id, ids);
            fprintf(rep, "lost: path \"%.*s\" of document %s (the document's versions were in "
                         "a damaged checkpoint page)\n", (int)(k - 19), (const char *)p + off + 19,
                    ids);
        } else {
            int rc = apply_records(db, p + off, k, 0);
            if (rc)
                return rc;
        }
        *have_open = p[off] == REC_VERSION;
        *open_doc = id;
        off += k;
    }
    return SDB_OK;
}

/* Loads into the (empty) state what can be read of slot s's checkpoint when
 * some of its pages fail their checks: the records of the pages that verify
 * (found by following the chain, or by their stamp where a damaged page
 * hides the link), resuming after each damaged stretch at the first offset
 * from which the records parse, in path order, up to the next damage or the
 * end.  Reports on "lost:" lines what the damaged pages held as far as it
 * can be named: the paths between the last one before the damage and the
 * first after it, the paths whose document's versions were there, and a
 * document whose list of versions the damage cut.  0, SDB_ECORRUPT (too
 * little is readable) or another error. */
static int cp_partial(sdb_t *db, const slot_t *s, FILE *rep, pgno_t **used, size_t *nused)
{
    uint64_t filepages = db->be->size(db->be) / db->page_size;
    uint64_t np = s->cp_pages;
    if (!s->cp_head || np == 0 || np > filepages || s->cp_bytes > np * db->cap)
        return SDB_ECORRUPT;
    uint8_t *stream = malloc(s->cp_bytes ? s->cp_bytes : 1);
    uint8_t *have = calloc(np, 1);
    pgno_t *at = calloc(np, sizeof(pgno_t));
    uint8_t *amb = calloc(np, 1);
    uint8_t *pg = malloc(db->page_size);
    buf_t last = { 0 };
    *nused = 0;
    *used = malloc(np * sizeof(pgno_t));
    int rc = stream && have && at && amb && pg && *used ? SDB_OK : SDB_ENOMEM;
    /* every page of this checkpoint that verifies, by index */
    for (uint64_t p = FIRST_PAGE; !rc && p < filepages; p++) {
        page_hdr_t h;
        if ((rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)))
            break;
        if (page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_CHECKPOINT ||
            h.seqno != s->generation || memcmp(h.owner, s->file_id, 16) || h.index >= np)
            continue;
        if (at[h.index] && at[h.index] != p)
            amb[h.index] = 1;       /* an earlier attempt at the same generation */
        at[h.index] = p;
    }
    /* follow the chain; where it breaks, an index found once goes on */
    pgno_t p = s->cp_head;
    for (uint64_t i = 0; !rc && i < np; i++) {
        page_hdr_t h;
        int ok = p >= FIRST_PAGE && p < filepages &&
                 !(rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)) &&
                 !page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) && h.type == PT_CHECKPOINT &&
                 h.seqno == s->generation && !memcmp(h.owner, s->file_id, 16) && h.index == i;
        if (rc)
            break;
        if (!ok && at[i] && !amb[i]) {
            p = at[i];
            ok = !(rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)) &&
                 !page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL);
        }
        uint64_t off = i * db->cap;
        uint64_t want = s->cp_bytes - off < db->cap ? s->cp_bytes - off : db->cap;
        if (ok && off < s->cp_bytes && h.data_len == want &&
            !!(h.flags & PF_LAST) == (i + 1 == np)) {
            memcpy(stream + off, pg + PAGE_HDR, want);
            have[i] = 1;
            (*used)[(*nused)++] = p;
            p = h.next;
        } else {
            fprintf(rep, "checkpoint: page %" PRIu64 " of %" PRIu64 " of generation %" PRIu64
                         " is damaged\n", i + 1, np, s->generation);
            p = 0;
        }
    }
    /* the stretches of pages that verified, each walked and applied */
    sdb_id_t open_doc;
    int have_open = 0, any = 0;
    for (uint64_t i = 0; !rc && i < np;) {
        if (!have[i]) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < np && have[j])
            j++;
        size_t from = (size_t)(i * db->cap);
        size_t end = j == np ? (size_t)s->cp_bytes : (size_t)(j * db->cap);
        size_t start = from, stop = from, nrec = 0;
        int need = 0;
        char *before = NULL;
        if (last.len && !(before = strndup((const char *)last.p, last.len))) {
            rc = SDB_ENOMEM;
            break;
        }
        if (i == 0) {
            stop = cp_walk(db, stream, 0, end, filepages, &last, &nrec, &need);
            if (need < 0)
                rc = SDB_ENOMEM;
        } else {
            /* after damage: the first offset from which the records walk to
               the end, or to the next damage */
            buf_t save = { 0 };
            for (start = from; start < end; start++) {
                save.len = 0;
                if (last.len && buf_put(&save, last.p, last.len)) {
                    rc = SDB_ENOMEM;
                    break;
                }
                stop = cp_walk(db, stream, start, end, filepages, &save, &nrec, &need);
                if (need < 0) {
                    rc = SDB_ENOMEM;
                    break;
                }
                if (nrec >= 2 && (stop == end || (need && j < np)))
                    break;
            }
            if (!rc && start < end) {
                last.len = 0;
                rc = buf_put(&last, save.p, save.len);
            }
            free(save.p);
            if (!rc && start >= end)
                nrec = 0;
        }
        if (!rc && i > 0) {
            fprintf(rep, "lost: whatever the damaged checkpoint pages before page %" PRIu64
                         " held: the paths after \"%s\"", i + 1, before ? before : "");
            /* ... and before the first one read after them */
            size_t off = start, k;
            while (nrec && off < stop && (k = cp_record_len(db, stream + off, stop - off,
                                                             filepages)) && k != REC_NEED) {
                if (stream[off] == REC_BIND) {
                    fprintf(rep, " and before \"%.*s\"", (int)(k - 19), stream + off + 19);
                    break;
                }
                off += k;
            }
            fprintf(rep, ", and documents without a path\n");
        }
        free(before);
        if (!rc && have_open && i > 0) {
            /* the document whose versions ran into the damage: its current
               version may be lost, and an older one must not take its place */
            char ids[37];
            sdb_id_format(&open_doc, ids);
            buf_t del = { 0 };
            doc_t *d = doc_find(db, &open_doc);
            if (d) {
                fprintf(rep, "lost: document %s (its versions run into a damaged checkpoint "
                             "page) and its paths:", ids);
                for (uint32_t k = 0; k < d->npaths; k++)
                    fprintf(rep, "%s\"%.*s\"", k ? ", " : " ", (int)d->paths[k]->len,
                            d->paths[k]->bytes);
                fputc('\n', rep);
                rc = rec_delete_doc(&del, &open_doc);
                if (!rc)
                    rc = apply_records(db, del.p, del.len, 0);
            }
            free(del.p);
            have_open = 0;
        }
        if (!rc && nrec) {
            rc = cp_apply(db, stream, start, stop, filepages, rep, &open_doc, &have_open);
            any = 1;
        }
        i = j;
    }
    if (!rc && have_open && !have[np - 1]) {
        char ids[37];
        sdb_id_format(&open_doc, ids);
        buf_t del = { 0 };
        fprintf(rep, "lost: document %s (its versions run into a damaged checkpoint page)\n", ids);
        rc = rec_delete_doc(&del, &open_doc);
        if (!rc)
            rc = apply_records(db, del.p, del.len, 0);
        free(del.p);
    }
    if (!rc && !have[np - 1])
        fprintf(rep, "lost: whatever the damaged last checkpoint pages held\n");
    if (!rc && !any)
        rc = SDB_ECORRUPT;
    free(last.p);
    free(pg);
    free(amb);
    free(at);
    free(have);
    free(stream);
    return rc;
}

/* ---- what a repair loses ---- */

typedef struct {
    uint64_t seq;
    pgno_t page;
    int first;                     /* index 0: a group may start here */
} jpage_t;

static int jpage_cmp(const void *a, const void *b)
{
    const jpage_t *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->page < y->page ? -1 : x->page > y->page;
}

/* Lists, one "lost:" line each, the changes of the journal groups after
 * `after` (the last group the recovered state holds) that are still on disk
 * (a valid journal page of this file names them), and each group that
 * cannot be read.  The groups up to `upto` (the last one a damaged newer
 * checkpoint folded in) are lost even when no page of theirs is left.
 * Counts the groups in *ngroups.  0 or an error (nothing is "clean" then). */
static int report_lost_groups(sdb_t *db, uint64_t after, uint64_t upto, FILE *rep,
                              uint64_t *ngroups)
{
    uint64_t npages = db->be->size(db->be) / db->page_size;
    uint8_t *pg = malloc(db->page_size);
    jpage_t *js = NULL;
    size_t nj = 0, jcap = 0;
    buf_t recs = { 0 };
    pgno_t *gp = NULL;
    size_t ngp = 0, gcap = 0;
    int rc = pg ? SDB_OK : SDB_ENOMEM;
    *ngroups = 0;
    for (uint64_t p = FIRST_PAGE; !rc && p < npages; p++) {
        page_hdr_t h;
        if ((rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)))
            break;
        if (page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_JOURNAL ||
            h.seqno <= after || memcmp(h.owner, db->file_id, 16))
            continue;
        if (nj == jcap) {
            size_t nc = jcap ? 2 * jcap : 64;
            jpage_t *t = realloc(js, nc * sizeof(*t));
            if (!t) {
                rc = SDB_ENOMEM;
                break;
            }
            js = t;
            jcap = nc;
        }
        js[nj++] = (jpage_t){ h.seqno, p, h.index == 0 };
        if (h.seqno > upto)
            upto = h.seqno;
    }
    if (!rc && nj)
        qsort(js, nj, sizeof(*js), jpage_cmp);
    size_t i = 0;
    for (uint64_t seq = after + 1; !rc && seq <= upto; seq++) {
        int done = 0;
        for (; i < nj && js[i].seq == seq; i++) {
            if (done || !js[i].first)
                continue;
            pgno_t next;
            int got = journal_load_group(db, js[i].page, seq, &recs, &next, &gp, &ngp, &gcap);
            if (got < 0) {
                rc = got;
                break;
            }
            if (got == 1) {
                char prefix[64];
                snprintf(prefix, sizeof prefix, "lost: journal group %" PRIu64 ": ", seq);
                rc = records_describe(recs.p, recs.len, prefix, rep);
                if (rc == SDB_ECORRUPT) {
                    fprintf(rep, "%sthe rest of its records cannot be decoded\n", prefix);
                    rc = SDB_OK;
                }
                done = 1;
            }
        }
        if (!rc && !done)
            fprintf(rep, "lost: journal group %" PRIu64 ": not on disk in a readable form "
                         "(damaged, overwritten, or only in the damaged checkpoint)\n", seq);
        ++*ngroups;
    }
    free(gp);
    free(recs.p);
    free(js);
    free(pg);
    return rc ? rc : ferror(rep) ? SDB_ENOMEM : SDB_OK;
}

/* Stores in *max the highest sequence of a valid journal page of this file
 * (0: none).  0 or an error. */
static int journal_max_seq(sdb_t *db, uint64_t *max)
{
    uint64_t npages = db->be->size(db->be) / db->page_size;
    uint8_t *pg = malloc(db->page_size);
    int rc = pg ? SDB_OK : SDB_ENOMEM;
    *max = 0;
    for (uint64_t p = FIRST_PAGE; !rc && p < npages; p++) {
        page_hdr_t h;
        if (!(rc = db->be->read(db->be, p * db->page_size, pg, db->page_size)) &&
            page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) == 0 && h.type == PT_JOURNAL &&
            memcmp(h.owner, db->file_id, 16) == 0 && h.seqno > *max)
            *max = h.seqno;
    }
    free(pg);
    return rc;
}

/* The journal's last complete group was not applied because the data of a
 * version it writes does not verify (try_slot).  A crash before its commit's
 * sync leaves that (never acknowledged: nothing is lost), and so does damage
 * to the data of an acknowledged last commit; nothing on disk tells them
 * apart (docs/FORMAT.md, "A last group that was not applied"), so this is a
 * note, naming each record, and not damage.  0 or an error. */
static int report_unapplied(sdb_t *db, FILE *rep)
{
    buf_t recs = { 0 };
    pgno_t *gp = NULL, next;
    size_t ngp = 0, gcap = 0;
    int got = journal_load_group(db, db->unapplied_page, db->unapplied_seq, &recs, &next, &gp,
                                 &ngp, &gcap);
    int rc = got < 0 ? got : SDB_OK;
    if (got == 1) {
        char prefix[64];
        fprintf(rep, "note: the last journal group (%" PRIu64 ") is complete but was not "
                     "applied: the data of a version it writes does not verify.  A crash "
                     "before its commit's sync leaves this (the commit was not acknowledged), "
                     "and so does damage to the data of an acknowledged last commit; the "
                     "file cannot tell which.  Its records:\n", db->unapplied_seq);
        snprintf(prefix, sizeof prefix, "not applied: journal group %" PRIu64 ": ",
                 db->unapplied_seq);
        rc = records_describe(recs.p, recs.len, prefix, rep);
        if (rc == SDB_ECORRUPT) {
            fprintf(rep, "%sthe rest of its records cannot be decoded\n", prefix);
            rc = SDB_OK;
        }
    } else if (got == 0) {
        rc = SDB_EIO;              /* it loaded at open: the file changed under the check */
    }
    free(gp);
    free(recs.p);
    return rc ? rc : ferror(rep) ? SDB_ENOMEM : SDB_OK;
}

/* Writes the paths of d to rep as ` "a", "b"`. */
static void report_paths(const doc_t *d, FILE *rep)
{
    for (uint32_t i = 0; i < d->npaths; i++)
        fprintf(rep, "%s\"%.*s\"", i ? ", " : " ", (int)d->paths[i]->len, d->paths[i]->bytes);
    if (!d->npaths)
        fputs(" (none)", rep);
}

int sdb_check(const char *file, int repair, char **report)
{
    if (!file || !*file)
        return SDB_EINVAL;
    char *text = NULL;
    size_t tl = 0;
    FILE *rep = open_memstream(&text, &tl);
    if (!rep)
        return SDB_ENOMEM;
    sdb_backend_t *be;
    int rc = backend_file_open_existing(file, &be);   /* never creates it */
    if (rc) {
        fprintf(rep, "cannot open %s: %s\n", file, sdb_strerror(rc));
        goto out;
    }
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.use_mmap = 0;
    sdb_t *db = db_new(be, &cfg);
    if (!db) {
        be->close(be);
        rc = SDB_ENOMEM;
        goto out;
    }

    int damage = 0, unapplied = 0;
    uint64_t size = be->size(be);
    if (size == 0) {
        fprintf(rep, "%s is empty\n", file);
        damage = 1;
    }
    /* the header slots, each on its own */
    slot_t slots[2] = { { 0 }, { 0 } };
    int ok[2] = { 0, 0 };
    if ((rc = journal_read_slots(be, slots, ok))) {
        fprintf(rep, "header slots: cannot be read (%s)\n", sdb_strerror(rc));
        goto done;
    }
    const slot_t s0 = slots[0], s1 = slots[1];
    const int ok0 = ok[0], ok1 = ok[1];
    fprintf(rep, "header slot 0: %s\nheader slot 1: %s\n", ok0 ? "valid" : "invalid", ok1 ? "valid" : "invalid");
    /* one invalid slot next to a valid one is what a crash during a checkpoint
       leaves (a torn slot write): recovery uses the other and opening rewrites it */
    if (!ok0 && !ok1)
        damage = 1;

    db->tolerate_cut = 1;          /* load what precedes a cut; it is reported below */
    int loaded = size ? journal_open(db) : SDB_ECORRUPT;
    int short_fallback = 0;
    if (loaded == SDB_OK && db->slot_fallback == 2) {
        /* The older slot's journal ends before the newest checkpoint: that
           state lacks every commit since the break.  The newest checkpoint
           read around its damage usually lacks far less (a page's worth);
           the older state stays the answer when it cannot be read. */
        short_fallback = 1;
        state_destroy(db);
        freespace_destroy(&db->fs);
        db->slot_fallback = 0;
        loaded = SDB_ECORRUPT;
    }
    if (loaded == SDB_ECORRUPT && (ok0 || ok1)) {
        /* No checkpoint loads whole (nor the older slot's with its journal):
           take what the newest one's intact pages hold, then its journal */
        const slot_t *s = ok0 && ok1 ? (s1.generation > s0.generation ? &s1 : &s0)
                                     : ok0 ? &s0 : &s1;
        db->page_size = s->page_size;
        db->cap = s->page_size - PAGE_HDR;
        db->crc_op_full = crc32_combine_gen(db->cap);
        memcpy(db->file_id, s->file_id, 16);
        db->paths = pathidx_new();
        pgno_t *cpp = NULL;
        size_t ncpp = 0;
        char *ptext = NULL;
        size_t plen = 0;
        FILE *prep = open_memstream(&ptext, &plen);
        int prc = db->paths && prep ? cp_partial(db, s, prep, &cpp, &ncpp) : SDB_ENOMEM;
        if (!prc)
            prc = journal_replay_partial(db, s, cpp, ncpp);
        free(cpp);
        if (prep && (fclose(prep) || !ptext) && !prc)
            prc = SDB_ENOMEM;
        if (prc == SDB_OK) {
            fprintf(rep, "checkpoint: generation %" PRIu64 " (the newest header slot) is damaged "
                         "and no older state leads up to it: reading around the damage\n",
                    s->generation);
            fputs(ptext, rep);
            loaded = 0;
            damage = 1;
        } else {
            state_destroy(db);
            freespace_destroy(&db->fs);
            if (prc != SDB_ECORRUPT) {
                fprintf(rep, "checkpoint: reading around the damage failed: %s\n", sdb_strerror(prc));
                rc = prc;
                free(ptext);
                goto done;
            }
            if (short_fallback)
                loaded = journal_open(db);   /* the older state, as far as it goes */
        }
        free(ptext);
    }
    if (!loaded && db->slot_corrected) {
        /* a flipped bit, proved by the pages the corrected slot names: damage
           that opening (which rewrites the slot) and repair both undo */
        damage = 1;
        fprintf(rep, "header slot %d: one flipped bit (byte %u, bit %u) corrected: it is the "
                     "newest slot (generation %" PRIu64 "); the checkpoint it names (%zu pages, "
                     "its length and CRC as the slot records) and its journal verify\n",
                db->slot_corrected - 1, db->slot_corrected_bit / 8, db->slot_corrected_bit % 8,
                db->slot.generation, db->ncppages);
    } else if (ok0 != ok1) {
        fprintf(rep, "note: one header slot is invalid (a torn write from a crash, or damage); "
                     "the other is used and opening the database rewrites it\n");
    }
    if (loaded) {
        fprintf(rep, "metadata: cannot be loaded (%s)\n", sdb_strerror(loaded));
        damage = 1;
        if (loaded != SDB_ECORRUPT) {
            rc = loaded;
            goto done;
        }
    } else {
        uint64_t lost_from = 0, lost_upto = 0;   /* journal groups to list as lost */
        if (db->slot_fallback) {
            damage = 1;
            fprintf(rep, "checkpoint: the newest header slot (generation %" PRIu64 ") names a "
                         "damaged checkpoint\n", db->fallback_from.generation);
            fprintf(rep, "recovered from the older header slot (generation %" PRIu64 "): its "
                         "checkpoint and journal up to group %" PRIu64 "%s\n", db->slot.generation,
                    db->jseq - 1, db->slot_fallback == 1 ? ", which lead on to the newest "
                    "journal: no commit is lost" : "");
            if (db->slot_fallback == 2) {
                lost_from = db->jseq;
                lost_upto = db->fallback_from.cp_seq;
            }
        }
        fprintf(rep, "metadata: generation %" PRIu64 ", %zu checkpoint pages, %zu journal pages, "
                     "%zu documents, %zu paths\n", db->slot.generation, db->ncppages, db->njpages,
                db->ndocs, pathidx_count(db->paths));
        buf_t drop = { 0 };
        uint64_t versions = 0, bad = 0;
        for (size_t i = 0; !rc && i < db->docs_cap; i++)
            for (doc_t *d = db->docs[i]; !rc && d; d = d->hnext) {
                int cur_bad = 0;
                for (docver_t *v = d->cur; !rc && v; v = v->older) {
                    versions++;
                    int vr = docver_verify(db, v);
                    if (vr == SDB_OK)
                        continue;
                    if (vr != SDB_ECORRUPT) {    /* not damage: fail, never drop it */
                        rc = vr;
                        break;
                    }
                    char ids[37];
                    sdb_id_format(&d->id, ids);
                    fprintf(rep, "document %s version %" PRIu64 ": DAMAGED\n", ids, v->version);
                    bad++;
                    if (v != d->cur) {
                        rc = rec_drop_version(&drop, &d->id, v->version);
                        fprintf(rep, "lost: document %s version %" PRIu64 " (an older version; "
                                     "the current one is kept)\n", ids, v->version);
                    } else {
                        cur_bad = 1;
                    }
                }
                /* a document whose current version is lost is dropped whole: an
                   older version must not silently become the current one */
                if (!rc && cur_bad) {
                    char ids[37];
                    sdb_id_format(&d->id, ids);
                    rc = rec_delete_doc(&drop, &d->id);
                    fprintf(rep, "lost: document %s (current version %" PRIu64 " damaged) and "
                                 "its paths:", ids, d->cur->version);
                    report_paths(d, rep);
                    fputc('\n', rep);
                }
            }
        if (rc) {
            fprintf(rep, "verification failed: %s\n", sdb_strerror(rc));
            free(drop.p);
            goto done;
        }
        /* The journal ends at the first group that does not check out.  After
           a crash that is the torn last group, whose sequence is the next one
           expected; a valid journal page of this file with a later sequence
           means the chain was cut by damage and later commits are lost. */
        uint64_t cut = 0;
        if ((rc = journal_count_cut(db, db->jseq, 0, &cut))) {
            fprintf(rep, "journal: cannot be scanned (%s)\n", sdb_strerror(rc));
            free(drop.p);
            goto done;
        }
        /* an invalid newest slot that could not be corrected: commits after its
           checkpoint lie past the older slot's state (journal_open) */
        uint64_t past = 0;
        if (!cut && ok0 != ok1 && !db->slot_corrected &&
            (rc = journal_count_past_slot(db, &past))) {
            fprintf(rep, "journal: cannot be scanned (%s)\n", sdb_strerror(rc));
            free(drop.p);
            goto done;
        }
        if (past) {
            fprintf(rep, "header slot %d: invalid and not correctable, and journal groups were "
                         "committed after the state the other slot names: it was the newest "
                         "slot, and its state is lost from its checkpoint on\n", ok0 ? 1 : 0);
            cut = past;
        }
        if (cut) {
            fprintf(rep, "journal: cut short by a damaged group; %" PRIu64 " later journal pages "
                         "cannot be replayed\n", cut);
            damage = 1;
            lost_from = db->jseq;
        }
        unapplied = !lost_from && db->unapplied_seq && db->unapplied_seq == db->jseq;
        if (unapplied && (rc = report_unapplied(db, rep))) {
            fprintf(rep, "journal: the last group cannot be listed (%s)\n", sdb_strerror(rc));
            free(drop.p);
            goto done;
        }
        if (lost_from) {
            uint64_t ngroups = 0;
            rc = report_lost_groups(db, lost_from - 1, lost_upto, rep, &ngroups);
            if (rc) {
                fprintf(rep, "journal: the lost groups cannot be listed (%s)\n", sdb_strerror(rc));
                free(drop.p);
                goto done;
            }
            fprintf(rep, "journal: %" PRIu64 " groups after group %" PRIu64 " cannot be "
                         "replayed\n", ngroups, lost_from - 1);
        }
        fprintf(rep, "verified %" PRIu64 " versions, %" PRIu64 " damaged\n", versions, bad);
        if (bad)
            damage = 1;
        if (repair && bad) {
            /* drop records for deleted docs may follow drop_version for the same doc;
               apply them in order */
            rc = apply_records(db, drop.p, drop.len, 0);
            if (rc) {
                fprintf(rep, "repair: dropping the damaged versions failed: %s\n", sdb_strerror(rc));
                free(drop.p);
                goto done;
            }
        }
        free(drop.p);
    }
    if (repair && damage) {
        if (loaded) {
            /* start from an empty state on a fresh identity, then salvage data pages */
            state_destroy(db);
            freespace_destroy(&db->fs);
            db->paths = pathidx_new();
            db->page_size = ok0 ? s0.page_size : ok1 ? s1.page_size : 4096;
            db->cap = db->page_size - PAGE_HDR;
            db->crc_op_full = crc32_combine_gen(db->cap);
            memset(&db->slot, 0, sizeof(db->slot));
            db->slot.page_size = db->page_size;
            util_random(db->slot.file_id, 16);
            memcpy(db->file_id, db->slot.file_id, 16);
            db->slot.generation = (ok0 ? s0.generation : 0) > (ok1 ? s1.generation : 0)
                                      ? s0.generation + 1 : (ok1 ? s1.generation + 1 : 1);
            db->ncppages = db->njpages = 0;
            db->jnext = 0;
            rc = db->paths ? salvage(db, rep) : SDB_ENOMEM;
            if (!rc) {
                /* every page not used by a salvaged document is free */
                uint64_t np = (size + db->page_size - 1) / db->page_size;
                rc = freespace_init(&db->fs, np, UINT64_MAX / db->page_size);
                for (size_t i = 0; !rc && i < db->docs_cap; i++)
                    for (doc_t *d = db->docs[i]; d && !rc; d = d->hnext)
                        for (docver_t *v = d->cur; v && !rc; v = v->older)
                            for (uint32_t k = 0; k < v->nextents && !rc; k++)
                                rc = freespace_mark_used(&db->fs, v->ext[k].start, v->ext[k].count);
                pgno_t jn = 0;   /* stays 0 only when rc says the repair failed */
                uint64_t got;
                if (!rc)
                    rc = freespace_alloc(&db->fs, 1, &jn, &got);
                db->jnext = jn;
                db->jseq = 1;
            }
            if (rc)
                goto done;
        }
        /* The journal goes on past every group left on disk: the lost groups
           (after a cut, or past what the older slot reached) must not look
           like a cut of the repaired journal, nor complete it. */
        uint64_t maxseq = 0;
        rc = journal_max_seq(db, &maxseq);
        if (!rc && maxseq >= db->jseq)
            db->jseq = maxseq + 1;
        /* a fresh checkpoint written twice moves both slots onto repaired metadata */
        if (!rc)
            rc = journal_checkpoint(db);
        if (!rc)
            rc = journal_checkpoint(db);
        fprintf(rep, "repair: %s\n", rc ? sdb_strerror(rc) : "done, the file is consistent now");
        if (!rc)
            damage = 0;
        goto done;
    }
    rc = damage ? SDB_ECORRUPT : SDB_OK;
done:
    if (ferror(rep) && !rc)
        rc = SDB_ENOMEM;            /* the report is incomplete: never "clean" */
    fprintf(rep, "result: %s%s\n", rc ? sdb_strerror(rc) : "clean",
            !rc && unapplied ? ", except that the last journal group was not applied (see the "
                               "note above)" : "");
    db_free(db);                    /* closes be */
out:
    if ((fclose(rep) || !text) && !rc)
        rc = SDB_ENOMEM;
    if (report)
        *report = text;
    else
        free(text);
    return rc;
}
