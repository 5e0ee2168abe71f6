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
        if (db->be->read(db->be, p * db->page_size, pg, db->page_size) ||
            page_open(pg, pg + PAGE_HDR, db->cap, 1, &h, NULL) || h.type != PT_DATA || h.index != 0)
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
    fprintf(rep, "salvage: %" PRIu64 " documents recovered\n", found);
    free(pg);
    free(b.p);
    return rc;
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

    int damage = 0;
    uint64_t size = be->size(be);
    if (size == 0) {
        fprintf(rep, "%s is empty\n", file);
        damage = 1;
    }
    /* the header slots, each on its own */
    slot_t slots[2] = { { 0 }, { 0 } };
    int ok[2] = { 0, 0 };
    if (journal_read_slots(be, slots, ok))
        ok[0] = ok[1] = 0;
    const slot_t s0 = slots[0], s1 = slots[1];
    const int ok0 = ok[0], ok1 = ok[1];
    fprintf(rep, "header slot 0: %s\nheader slot 1: %s\n", ok0 ? "valid" : "invalid", ok1 ? "valid" : "invalid");
    /* one invalid slot next to a valid one is what a crash during a checkpoint
       leaves (a torn slot write): recovery uses the other and opening rewrites it */
    if (!ok0 && !ok1)
        damage = 1;
    else if (!ok0 || !ok1)
        fprintf(rep, "note: one header slot is invalid (a torn write from a crash, or damage); "
                     "the other is used and opening the database rewrites it\n");

    db->tolerate_cut = 1;          /* load what precedes a cut; it is reported below */
    int loaded = size ? journal_open(db) : SDB_ECORRUPT;
    if (loaded) {
        fprintf(rep, "metadata: cannot be loaded (%s)\n", sdb_strerror(loaded));
        damage = 1;
        if (loaded != SDB_ECORRUPT) {
            rc = loaded;
            goto done;
        }
    } else {
        fprintf(rep, "metadata: generation %" PRIu64 ", %zu checkpoint pages, %zu journal pages, "
                     "%zu documents, %zu paths\n", db->slot.generation, db->ncppages, db->njpages,
                db->ndocs, pathidx_count(db->paths));
        uint8_t *pg = malloc(db->page_size);
        buf_t drop = { 0 };
        uint64_t versions = 0, bad = 0;
        for (size_t i = 0; pg && i < db->docs_cap; i++)
            for (doc_t *d = db->docs[i]; d; d = d->hnext) {
                int cur_bad = 0;
                for (docver_t *v = d->cur; v; v = v->older) {
                    versions++;
                    if (docver_verify(db, v) == SDB_OK)
                        continue;
                    char ids[37];
                    sdb_id_format(&d->id, ids);
                    fprintf(rep, "document %s version %" PRIu64 ": DAMAGED\n", ids, v->version);
                    bad++;
                    if (v != d->cur)
                        rec_drop_version(&drop, &d->id, v->version);
                    else
                        cur_bad = 1;
                }
                /* a document whose current version is lost is dropped whole: an
                   older version must not silently become the current one */
                if (cur_bad)
                    rec_delete_doc(&drop, &d->id);
            }
        /* The journal ends at the first group that does not check out.  After
           a crash that is the torn last group, whose sequence is the next one
           expected; a valid journal page of this file with a later sequence
           means the chain was cut by damage and later commits are lost. */
        uint64_t lost = journal_count_cut(db, db->jseq, 0);
        if (lost) {
            fprintf(rep, "journal: cut short by a damaged group; %" PRIu64 " later journal pages "
                         "cannot be replayed\n", lost);
            damage = 1;
        }
        free(pg);
        fprintf(rep, "verified %" PRIu64 " versions, %" PRIu64 " damaged\n", versions, bad);
        if (bad)
            damage = 1;
        if (repair && bad) {
            /* drop records for deleted docs may follow drop_version for the same doc;
               apply them in order */
            rc = apply_records(db, drop.p, drop.len, 0);
            if (rc) {
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
        /* a fresh checkpoint written twice moves both slots onto repaired metadata */
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
    fprintf(rep, "result: %s\n", rc ? sdb_strerror(rc) : "clean");
    db_free(db);                    /* closes be */
out:
    fclose(rep);
    if (report)
        *report = text;
    else
        free(text);
    return rc;
}
