/*
 * journal.h -- commit journal, checkpoints and recovery (private).
 */
#ifndef SDB_JOURNAL_H
#define SDB_JOURNAL_H

#include "engine/db_int.h"

/* Record encoders: append one record to b.  0 or SDB_ENOMEM. */
int rec_version(buf_t *b, const sdb_id_t *id, const docver_t *v, int64_t created_ms);
int rec_bind(buf_t *b, const sdb_id_t *id, const char *path, size_t len);
int rec_unbind(buf_t *b, const char *path, size_t len);
int rec_delete_doc(buf_t *b, const sdb_id_t *id);
int rec_drop_version(buf_t *b, const sdb_id_t *id, uint64_t version);

/* Writes recs as the next journal group at db->jnext (leader only) and
 * advances jseq/jnext.  freeing: the records only free space (deletes,
 * unbinds), so the group may take the journal's last reserved pages.  Does
 * not sync.  0 or an I/O / space error (SDB_ENOSPC, SDB_ETOOLARGE: nothing
 * of the group counts, the handle goes on). */
int journal_write_group(sdb_t *db, const uint8_t *recs, size_t len, int freeing);

/* Lazy mode (leader only): makes sure that a group of len bytes of records,
 * the buffered ones, can be written later without new space, by holding
 * pages written with zeros for it (db->jres; journal.c, "lazy mode"), which
 * journal_write_group takes first.  Never takes the spare pages kept for
 * groups that free space.  0, or SDB_ENOSPC / SDB_ETOOLARGE (no room: the
 * reservation stays as it was and covers the shorter buffer), SDB_ENOMEM
 * or SDB_EIO. */
int journal_reserve(sdb_t *db, size_t len);

/* Writes a checkpoint of the whole state and switches the header slot
 * (leader only, or at close).  Syncs as needed.  0 or an error. */
int journal_checkpoint(sdb_t *db);

/* Starts a checkpoint in a background thread (leader only, none running):
 * it encodes the state in slices under the state read lock while commits go
 * on, writes and syncs the checkpoint pages, then submits an OP_CP_SWITCH
 * request whose batch calls journal_bg_switch().  The new slot's journal
 * starts with the first group after the start, and the groups up to the
 * switch are replayed tolerantly (apply_replay): the checkpoint may hold
 * them in part.  0, or SDB_ENOMEM when no thread could start (the caller
 * then checkpoints in the foreground). */
int journal_bg_start(sdb_t *db);

/* 1 while a background checkpoint runs. */
int journal_bg_running(sdb_t *db);

/* Makes the background checkpoint the durable state: writes the slot and
 * syncs, then frees the old checkpoint and the journal pages it covers.
 * Leader only, in a batch of its own that has synced.  0 or SDB_EIO. */
int journal_bg_switch(sdb_t *db);

/* Stops a background checkpoint and waits for its thread (close, outside
 * the leader; nothing may commit meanwhile but the checkpoint itself). */
void journal_bg_stop(sdb_t *db);

/* Creates a new file's header slots, or loads the state of an existing file
 * (checkpoint + journal replay) and derives the free space.  Open only. */
int journal_open(sdb_t *db);

/* sdb_check's repair when no checkpoint loads: the state already holds
 * what could be read of slot s's damaged checkpoint (check.c); replays the
 * journal after it, every group tolerantly (the state lacks what the
 * damaged pages held), and derives the free space with the checkpoint's
 * pages that verified, cp[0..ncp), in use (a repair that fails before its
 * new slot is written must find them as they were).  0 or an error. */
int journal_replay_partial(sdb_t *db, const slot_t *s, const pgno_t *cp, size_t ncp);

/* Reads and checks the two header slots of be: ok[i] says whether slot i
 * is valid (magic, version, CRC; slot 1 at the page size slot 0 names, or
 * found by trying each; both naming the same page size and file).
 * Returns 0 or the read error. */
int journal_read_slots(sdb_backend_t *be, slot_t slots[2], int ok[2]);

/* Counts into *count the valid journal pages of this file written in order
 * (PF_ORDERED) with a sequence above seq: pages that replay could not reach
 * because a group before them is damaged.  With only_free, looks only at the
 * pages that db->fs holds free (enough to find the first such group, see
 * journal_open); else at every page.  0, SDB_ENOMEM or a read error (then
 * the count is not to be trusted). */
int journal_count_cut(sdb_t *db, uint64_t seq, int only_free, uint64_t *count);

/* After an open from the only valid slot (the other failed its CRC and
 * could not be corrected): counts into *count the valid journal pages of
 * this file, written in order (PF_ORDERED), that lie past the replayed
 * state: a later sequence, or the next one (db->jseq) starting a group
 * elsewhere than at db->jnext.  Nothing commits while a slot is written, so
 * after a torn slot write there is none; one means that the invalid slot was
 * the newest and commits made after its checkpoint are missing.  Looks at
 * every page.  0, SDB_ENOMEM or a read error. */
int journal_count_past_slot(sdb_t *db, uint64_t *count);

/* Reads one complete journal group starting at page p with sequence seq:
 * returns 1 with its records in *out (reset first), the next group's page in
 * *next and its pages in (*gp)[0..*ngp) (a growable array of *gcap), 0 when
 * no complete group of that sequence starts there, or a negative error. */
int journal_load_group(sdb_t *db, pgno_t p, uint64_t seq, buf_t *out, pgno_t *next,
                       pgno_t **gp, size_t *ngp, size_t *gcap);

/* Rewrites a header slot found damaged at open with a copy of the valid
 * one (one generation older), then syncs.  0 or SDB_EIO. */
int journal_repair_slot(sdb_t *db);


/* Releases pending frees whose journal sequence is now durable (fs locked
 * inside). */
void journal_release_pending(sdb_t *db, uint64_t durable_seq);

/* Syncs the backend; a failure sets the sticky error.  0 or SDB_EIO. */
int db_sync(sdb_t *db);

void state_destroy(sdb_t *db);

#endif
