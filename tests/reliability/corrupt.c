/*
 * corrupt.c -- corruption trials against the engine (docs/RELIABILITY.md,
 * "Corruption trials").
 *
 * The harness builds a database whose every byte it knows (a ledger of
 * paths, ids, versions and payload seeds), then runs trials.  Each trial
 * copies the database image, flips one random bit of one random page of the
 * copy, and then:
 *
 *   1. runs sdb_check() on the copy (read-only) and notes whether it
 *      reports damage;
 *   2. opens the copy with sdb_open() and reads everything back: the list of
 *      bound paths (sdb_search), the current content of every path (sdb_get)
 *      and every retained version by id (sdb_get_id), comparing each with the
 *      ledger.
 *
 * A trial is then classified (by step 2; step 1 is counted beside it):
 *   detected   the open or a read failed with an error (SDB_ECORRUPT, ...);
 *   harmless   everything read back exactly right (the bit was in unused
 *              space, a free page, a stale slot ...);
 *   SILENT     a read returned SDB_OK with other bytes than written (WRONG
 *              BYTES), or a path, version or metadata differed from the
 *              ledger without an error (WRONG STATE).  Both must be 0;
 *   rolled back  the known exception, counted apart: in a crash image, the
 *              last acknowledged write reads back as its previous version
 *              (exact bytes) and all else is right.  Replay holds back the
 *              journal's last group and drops it when its data does not
 *              verify, since a crash can tear a commit that was never
 *              acknowledged; damage to an acknowledged one looks the same.
 *
 * Two images are tried: "closed" (the file after sdb_close, which leaves a
 * fresh checkpoint and no journal) and "journal" (a copy taken while the
 * handle is open, after a reopen and 45 acknowledged durable commits, as a
 * crash would leave it: the state is the checkpoint plus a journal).
 *
 * Half the trials (--meta-share) aim at a metadata page (a header slot, or
 * a page whose header says journal or checkpoint, live or stale), since
 * these are a small part of the file but hold its structure; the others pick
 * any page.  A page is named by the type byte it had before the flip.
 *
 * Targeted runs: --slots N trials per image (0 = none) flip a bit in the 100
 * bytes a header slot uses (a random slot, newest or older).
 * --last-write N trials (0 = none) flip a bit in the
 * data bytes of the last acknowledged write of the journal image: the one
 * case where reopening cannot tell damage from a torn commit (replay holds
 * back the last journal group when its data does not verify).
 *
 * Usage: corrupt [--trials N] [--seed N] [--image closed|journal|both]
 *                [--docs N] [--meta-share PCT] [--slots N] [--last-write N]
 *                [--dir DIR] [--keep]
 * --trials is per image.  CORRUPT_VERBOSE=1 prints each targeted trial.  Exit: 0 no silent failure, 1 a silent failure (or
 * the untouched image did not read back right), 2 usage or set-up failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "streamdb.h"
#include "rel_util.h"

#define PAGE 4096
#define KEEP 2                        /* versions_to_keep */
#define MAXV 8                        /* versions remembered per path */

typedef struct {
    char path[48];
    int present;
    sdb_id_t id;
    int nv;                           /* versions written (ver[nv-1] current) */
    uint64_t seed[MAXV];              /* payload seed of version nv-MAXV+i ... */
    size_t len[MAXV];
    uint64_t version;                 /* current version number */
} doc_t;

static doc_t *docs;
static int ndocs = 300;
static int meta_share = 50;           /* % of trials aimed at metadata pages */
static char dir[512];
static int kept;                      /* damaged files saved for a closer look */
static int rollback_told;             /* the first rolled-back trial was printed */
static int rollbacks;                 /* trials in the known ROLLBACK class */
static uint8_t *scratch;              /* payload buffer */
#define MAXLEN 40000


static uint64_t rng;
static uint64_t next_rand(void) { return rng = mix(rng); }


/* Version v (1-based) of d, if the ledger remembers it: its slot, else -1. */
static int slot_of(const doc_t *d, uint64_t v)
{
    uint64_t first = d->version - (uint64_t)d->nv + 1;
    if (v < first || v > d->version)
        return -1;
    int back = (int)(d->version - v);
    int i = (d->nv > MAXV ? MAXV : d->nv) - 1 - back;
    return i < 0 ? -1 : i;
}

static const doc_t *last_put;
static size_t force_len;              /* nonzero: the next put's length */

static void put_doc(sdb_t *db, doc_t *d)
{
    last_put = d;
    uint64_t seed = next_rand();
    size_t len = force_len ? force_len : (size_t)(next_rand() % 10 == 0 ? 0 : next_rand() % MAXLEN);
    rel_fill(scratch, seed, len);
    sdb_docinfo_t info;
    int rc = sdb_put(db, d->path, scratch, len, &info);
    if (rc)
        die("put %s: %s", d->path, sdb_strerror(rc));
    if (!d->present) {
        d->present = 1;
        d->nv = 0;
    }
    d->id = info.id;
    d->version = info.version;
    if (d->nv == MAXV) {
        memmove(d->seed, d->seed + 1, sizeof d->seed[0] * (MAXV - 1));
        memmove(d->len, d->len + 1, sizeof d->len[0] * (MAXV - 1));
        d->nv--;
    }
    d->seed[d->nv] = seed;
    d->len[d->nv] = len;
    d->nv++;
}

/* Builds the database and writes the two images. */
static void build(const char *file, const char *img_closed, const char *img_journal)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = PAGE;
    cfg.versions_to_keep = KEEP;
    sdb_t *db;
    int rc = sdb_open(file, &cfg, &db);
    if (rc)
        die("open %s: %s", file, sdb_strerror(rc));
    docs = calloc((size_t)ndocs, sizeof *docs);
    if (!docs)
        die("out of memory");
    for (int i = 0; i < ndocs; i++) {
        snprintf(docs[i].path, sizeof docs[i].path, "/trial/%c/doc-%04d", 'a' + i % 7, i);
        put_doc(db, &docs[i]);
    }
    for (int i = 0; i < ndocs; i++)       /* overwrites: retained old versions */
        put_doc(db, &docs[next_rand() % (uint64_t)ndocs]);
    for (int i = 0; i < ndocs / 10; i++) { /* deletes: free pages in the middle */
        doc_t *d = &docs[next_rand() % (uint64_t)ndocs];
        if (d->present) {
            if ((rc = sdb_delete(db, d->path)))
                die("delete: %s", sdb_strerror(rc));
            d->present = 0;
        }
    }
    /* Reopen (the close leaves a checkpoint), then a short journal: 40 puts,
       5 deletes and the last write are about 46 journal pages, under the
       64 + 2 x checkpoint that starts a background checkpoint, so the crash
       image's state is always that checkpoint plus these groups, the last
       write in the last one. */
    if ((rc = sdb_close(db)) || (rc = sdb_open(file, &cfg, &db)))
        die("close and reopen %s: %s", file, sdb_strerror(rc));
    for (int i = 0; i < 40; i++)
        put_doc(db, &docs[next_rand() % (uint64_t)ndocs]);
    for (int i = 0; i < 5; i++) {
        doc_t *d = &docs[1 + next_rand() % (uint64_t)(ndocs - 1)];
        if (d->present) {
            if ((rc = sdb_delete(db, d->path)))
                die("delete: %s", sdb_strerror(rc));
            d->present = 0;
        }
    }
    force_len = 3 * (PAGE - 48) + 100;   /* the last write: an overwrite of 4 pages */
    put_doc(db, &docs[0]);
    force_len = 0;
    sdb_stats_t st;
    sdb_stats(db, &st);
    printf("built: last acknowledged write: %s version %llu; the crash image replays %llu "
           "journal pages\n", last_put->path, (unsigned long long)last_put->version,
           (unsigned long long)st.journal_pages);
    /* the crash image: every write above is acknowledged, hence durable */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file, img_journal);
    if (system(cmd))
        die("%s failed", cmd);
    if ((rc = sdb_close(db)))
        die("close: %s", sdb_strerror(rc));
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file, img_closed);
    if (system(cmd))
        die("%s failed", cmd);
}

static uint8_t *slurp(const char *file, size_t *len)
{
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        die("%s: %s", file, strerror(errno));
    uint8_t *p = malloc((size_t)st.st_size + 1);
    if (!p || pread(fd, p, (size_t)st.st_size, 0) != st.st_size)
        die("%s: read failed", file);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

static void spill(const char *file, const uint8_t *p, size_t len)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, len) != (ssize_t)len || close(fd))
        die("%s: write failed", file);
}

/* ROLLBACK: the one known silent case (docs/RELIABILITY.md): the last
 * acknowledged write of a crash image reads back as its previous version,
 * with that version's exact bytes, and everything else is right.  Replay
 * cannot tell damage in the last commit's data from a commit torn by the
 * crash, and drops it.  Counted apart; any other silent answer fails. */
enum { DETECTED, HARMLESS, WRONG_BYTES, WRONG_STATE, ROLLBACK, NCLASS };

typedef struct {
    int found_path;
    int mismatch;
} listing_t;

static int list_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    listing_t *l = arg;
    (void)info;
    for (int i = 0; i < ndocs; i++)
        if (docs[i].present && !strcmp(docs[i].path, path)) {
            l->found_path++;
            return 0;
        }
    l->mismatch++;                    /* a path the ledger does not have */
    return 0;
}

/* Opens file and reads everything; returns the class and a note. */
static int read_all(const char *file, char *note, size_t cap)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    sdb_t *db;
    int rc = sdb_open(file, &cfg, &db);
    if (rc) {
        snprintf(note, cap, "open: %s", sdb_strerror(rc));
        return DETECTED;
    }
    int cls = HARMLESS, rolled_back = 0;
    listing_t l = { 0, 0 };
    rc = sdb_search(db, "", NULL, list_cb, &l);
    int expect = 0;
    for (int i = 0; i < ndocs; i++)
        expect += docs[i].present;
    if (rc) {
        snprintf(note, cap, "search: %s", sdb_strerror(rc));
        cls = DETECTED;
    } else if (l.mismatch || l.found_path != expect) {
        snprintf(note, cap, "listing: %d of %d paths, %d unknown", l.found_path, expect,
                 l.mismatch);
        cls = WRONG_STATE;
    }
    for (int i = 0; i < ndocs && cls == HARMLESS; i++) {
        doc_t *d = &docs[i];
        void *data = NULL;
        size_t len = 0;
        sdb_docinfo_t info;
        rc = sdb_get(db, d->path, &data, &len, &info);
        if (!d->present) {
            if (rc != SDB_ENOTFOUND) {
                snprintf(note, cap, "%s: deleted, get says %s", d->path, sdb_strerror(rc));
                cls = rc ? DETECTED : WRONG_STATE;
            }
            free(data);
            continue;
        }
        if (rc == SDB_ENOTFOUND) {
            snprintf(note, cap, "%s: not found", d->path);
            cls = WRONG_STATE;
        } else if (rc) {
            snprintf(note, cap, "get %s: %s", d->path, sdb_strerror(rc));
            cls = DETECTED;
        } else {
            int s = slot_of(d, d->version);
            rel_fill(scratch, d->seed[s], d->len[s]);
            if (info.version != d->version || memcmp(&info.id, &d->id, sizeof d->id)) {
                int o = slot_of(d, info.version);
                int older = o >= 0 && len == d->len[o] &&
                            (rel_fill(scratch, d->seed[o], d->len[o]), !memcmp(scratch, data, len));
                snprintf(note, cap, "%s: version %llu returned, %llu acknowledged%s", d->path,
                         (unsigned long long)info.version, (unsigned long long)d->version,
                         older ? " (the older version's exact bytes: the newer write is lost)"
                               : "");
                if (d == last_put && older && info.version + 1 == d->version &&
                    !memcmp(&info.id, &d->id, sizeof d->id))
                    rolled_back = 1;       /* the known case: go on checking the rest */
                else
                    cls = WRONG_STATE;
            } else if (len != d->len[s] || memcmp(scratch, data, len)) {
                snprintf(note, cap, "%s: wrong bytes", d->path);
                cls = WRONG_BYTES;
            }
        }
        free(data);
        /* the retained previous versions, by id */
        for (uint64_t v = d->version > KEEP ? d->version - KEEP : 1;
             v < d->version && cls == HARMLESS; v++) {
            int s = slot_of(d, v);
            if (s < 0)
                continue;
            data = NULL;
            rc = sdb_get_id(db, &d->id, v, &data, &len, NULL);
            if (rc == SDB_ENOTFOUND) {
                snprintf(note, cap, "%s v%llu: not found", d->path, (unsigned long long)v);
                cls = WRONG_STATE;
            } else if (rc) {
                snprintf(note, cap, "get %s v%llu: %s", d->path, (unsigned long long)v,
                         sdb_strerror(rc));
                cls = DETECTED;
            } else {
                rel_fill(scratch, d->seed[s], d->len[s]);
                if (len != d->len[s] || memcmp(scratch, data, len)) {
                    snprintf(note, cap, "%s v%llu: wrong bytes", d->path, (unsigned long long)v);
                    cls = WRONG_BYTES;
                }
            }
            free(data);
        }
    }
    sdb_close(db);
    return cls == HARMLESS && rolled_back ? ROLLBACK : cls;
}

static const char *page_kind(const uint8_t *img, size_t pageno)
{
    if (pageno < 2)
        return "slot";
    switch (img[pageno * PAGE + 4]) {
    case 1: return "data";
    case 2: return "journal";
    case 3: return "checkpoint";
    default: return "free";
    }
}

#define NKIND 5
static const char *kinds[NKIND] = { "slot", "data", "journal", "checkpoint", "free" };

static int kind_index(const char *k)
{
    for (int i = 0; i < NKIND; i++)
        if (!strcmp(kinds[i], k))
            return i;
    return NKIND - 1;
}

/* Runs the trials on one image; returns the number of silent failures. */
/* The pages of the image that hold the last acknowledged write's data
 * (found by content: page i carries bytes [i*cap, (i+1)*cap) of it); their
 * numbers go to out, the count is returned. */
static size_t last_write_pages(const uint8_t *img, size_t npages, size_t *out)
{
    const doc_t *d = last_put;
    int s = slot_of(d, d->version);
    size_t cap = PAGE - 48, len = d->len[s], n = 0;
    rel_fill(scratch, d->seed[s], len);
    for (size_t off = 0; off < len; off += cap) {
        size_t k = len - off < cap ? len - off : cap;
        for (size_t p = 2; p < npages; p++)
            if (img[p * PAGE + 4] == 1 && !memcmp(img + p * PAGE + 48, scratch + off, k)) {
                out[n++] = p;
                break;
            }
    }
    return n;
}

enum { AIM_ANY, AIM_LAST_WRITE, AIM_SLOTS };

/* Runs the trials on one image.  aim: AIM_ANY picks pages as described at
 * the top; AIM_LAST_WRITE flips a data byte of the last acknowledged write;
 * AIM_SLOTS a bit of the 100 used bytes of a header slot.  Returns the
 * number of silent failures. */
static int trials(const char *name, const char *image, int n, int aim)
{
    int last_write = aim == AIM_LAST_WRITE;
    size_t len;
    uint8_t *base = slurp(image, &len);
    uint8_t *img = malloc(len);
    if (!img)
        die("out of memory");
    size_t npages = len / PAGE;
    size_t *meta = malloc(npages * sizeof *meta), nmeta = 0;
    if (!meta)
        die("out of memory");
    for (size_t p = 0; p < npages; p++)
        if (strcmp(page_kind(base, p), "data") && strcmp(page_kind(base, p), "free"))
            meta[nmeta++] = p;
    size_t *lastw = malloc(npages * sizeof *lastw), nlast = 0;
    if (!lastw)
        die("out of memory");
    if (last_write) {
        nlast = last_write_pages(base, npages, lastw);
        if (nlast == 0) {
            printf("%s: the last write has no data page (empty?): no targeted trial\n", name);
            return 0;
        }
    }
    char trial[700], note[256];
    snprintf(trial, sizeof trial, "%s/trial.sdb", dir);

    spill(trial, base, len);           /* the untouched image reads back right */
    if (read_all(trial, note, sizeof note) != HARMLESS) {
        printf("%s: the untouched image does not read back: %s\n", name, note);
        return 1;
    }
    int count[NCLASS] = { 0 }, by_kind[NKIND][NCLASS] = { { 0 } }, check_flag[NCLASS] = { 0 };
    for (int t = 0; t < n; t++) {
        memcpy(img, base, len);
        /* meta_share % of the trials aim at the few metadata pages (slots,
           journal, checkpoint); the others at any page (mostly data) */
        size_t pg = nmeta && next_rand() % 100 < (uint64_t)meta_share
                        ? meta[next_rand() % nmeta]
                        : (size_t)(next_rand() % npages);
        size_t bit = (size_t)(next_rand() % (PAGE * 8));
        if (aim == AIM_SLOTS) {           /* slot 0 or 1, bytes 0..99 */
            pg = (size_t)(next_rand() % 2);
            bit = (size_t)(next_rand() % (100 * 8));
        }
        if (last_write) {                 /* a data byte of one of its pages */
            pg = lastw[next_rand() % nlast];
            uint32_t dlen = (uint32_t)base[pg * PAGE + 8] | (uint32_t)base[pg * PAGE + 9] << 8;
            bit = 48 * 8 + (size_t)(next_rand() % ((uint64_t)(dlen ? dlen : 1) * 8));
        }
        const char *kind = page_kind(base, pg);
        img[pg * PAGE + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        spill(trial, img, len);
        char *report = NULL;
        int crc = sdb_check(trial, 0, &report);
        free(report);
        note[0] = 0;
        int cls = read_all(trial, note, sizeof note);
        count[cls]++;
        if (aim != AIM_ANY && getenv("CORRUPT_VERBOSE"))
            printf("  %s trial %d: page %zu bit %zu: %s\n", name, t, pg, bit, note[0] ? note : "ok");
        by_kind[kind_index(kind)][cls]++;
        if (crc == SDB_ECORRUPT)
            check_flag[cls]++;
        if (cls == ROLLBACK && !rollback_told++)
            printf("%s trial %d: the last acknowledged write rolled back after flipping bit %zu "
                   "of page %zu (%s): %s; sdb_check: %s (the known case, counted apart)\n", name,
                   t, bit, pg, kind, note, crc == SDB_ECORRUPT ? "damage reported" : "clean");
        if (cls == WRONG_BYTES || cls == WRONG_STATE) {
            printf("%s trial %d: SILENT %s after flipping bit %zu of page %zu (%s): %s; "
                   "sdb_check: %s\n", name, t, cls == WRONG_BYTES ? "WRONG BYTES" : "WRONG STATE",
                   bit, pg, kind, note, crc == SDB_ECORRUPT ? "damage reported" : "clean");
            char keep_as[800];             /* the damaged file, for a closer look */
            snprintf(keep_as, sizeof keep_as, "%s/silent-%s-%d.sdb", dir, name, t);
            spill(keep_as, img, len);
            kept++;
        }
    }
    printf("%s image (%zu pages of %d bytes): %d trials: %d detected, %d harmless, "
           "%d SILENT WRONG BYTES, %d silent wrong state, %d last write rolled back\n",
           name, npages, PAGE, n, count[DETECTED], count[HARMLESS], count[WRONG_BYTES],
           count[WRONG_STATE], count[ROLLBACK]);
    printf("  sdb_check reported damage in %d of the detected, %d of the harmless, %d of the "
           "silent and %d of the rolled-back trials\n", check_flag[DETECTED],
           check_flag[HARMLESS], check_flag[WRONG_BYTES] + check_flag[WRONG_STATE],
           check_flag[ROLLBACK]);
    for (int k = 0; k < NKIND; k++) {
        int tot = 0;
        for (int c = 0; c < NCLASS; c++)
            tot += by_kind[k][c];
        if (tot)
            printf("  bit in a %-10s page: %4d trials, %4d detected, %4d harmless, %d silent, "
                   "%d rolled back\n", kinds[k], tot, by_kind[k][DETECTED], by_kind[k][HARMLESS],
                   by_kind[k][WRONG_BYTES] + by_kind[k][WRONG_STATE], by_kind[k][ROLLBACK]);
    }
    fflush(stdout);
    free(meta);
    free(lastw);
    free(base);
    free(img);
    unlink(trial);
    rollbacks += count[ROLLBACK];
    return count[WRONG_BYTES] + count[WRONG_STATE];
}

int main(int argc, char **argv)
{
    rel_prog = "corrupt";
    int n = 200, keep = 0, last_n = 20, slot_n = 20;
    const char *image = "both", *d = NULL;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--trials") && v) n = atoi(v), i++;
        else if (!strcmp(a, "--seed") && v) seed = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--docs") && v) ndocs = atoi(v), i++;
        else if (!strcmp(a, "--meta-share") && v) meta_share = atoi(v), i++;
        else if (!strcmp(a, "--last-write") && v) last_n = atoi(v), i++;
        else if (!strcmp(a, "--slots") && v) slot_n = atoi(v), i++;
        else if (!strcmp(a, "--image") && v) image = v, i++;
        else if (!strcmp(a, "--dir") && v) d = v, i++;
        else if (!strcmp(a, "--keep")) keep = 1;
        else {
            fprintf(stderr, "usage: corrupt [--trials N] [--seed N] [--image closed|journal|both] "
                            "[--docs N] [--meta-share PCT] [--slots N] [--last-write N] [--dir DIR] "
                            "[--keep]\n");
            return 2;
        }
    }
    if (n < 1 || last_n < 0 || slot_n < 0 || ndocs < 2 || ndocs > 100000 || meta_share < 0 || meta_share > 100 ||
        (strcmp(image, "both") && strcmp(image, "closed") && strcmp(image, "journal")))
        die("bad --trials, --docs, --meta-share or --image");
    rng = mix(seed);
    if (d) {
        if (mkdir(d, 0700) && errno != EEXIST)
            die("%s: %s", d, strerror(errno));
        snprintf(dir, sizeof dir, "%s", d);
    } else {
        snprintf(dir, sizeof dir, "/tmp/sdb-corrupt-XXXXXX");
        if (!mkdtemp(dir))
            die("mkdtemp: %s", strerror(errno));
    }
    scratch = malloc(MAXLEN);
    if (!scratch)
        die("out of memory");
    char file[600], closed[600], journal[600];
    snprintf(file, sizeof file, "%s/build.sdb", dir);
    snprintf(closed, sizeof closed, "%s/closed.sdb", dir);
    snprintf(journal, sizeof journal, "%s/journal.sdb", dir);
    printf("corrupt: %d trials per image, %d paths, seed %u, dir %s\n", n, ndocs, seed, dir);
    build(file, closed, journal);
    int silent = 0;
    if (strcmp(image, "journal"))
        silent += trials("closed", closed, n, AIM_ANY);
    if (strcmp(image, "closed"))
        silent += trials("journal", journal, n, AIM_ANY);
    if (slot_n && strcmp(image, "journal"))
        silent += trials("slot-closed", closed, slot_n, AIM_SLOTS);
    if (slot_n && strcmp(image, "closed"))
        silent += trials("slot-journal", journal, slot_n, AIM_SLOTS);
    if (last_n)
        silent += trials("last-write", journal, last_n, AIM_LAST_WRITE);
    printf("corrupt: %d SILENT (must be 0); %d rolled back the last acknowledged write "
           "(known limit, docs/RELIABILITY.md)\n", silent, rollbacks);
    if (kept)
        printf("corrupt: the damaged files are kept in %s\n", dir);
    if (!keep && !silent) {
        unlink(file);
        unlink(closed);
        unlink(journal);
        rmdir(dir);
    }
    return silent ? 1 : 0;
}
