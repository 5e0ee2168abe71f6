/*
 * bench_peers.c -- StreamDb beside SQLite 3 and LMDB on the workloads of
 * issue 10 (many small documents), in the same run, in the same directory.
 *
 * The machine is shared and noisy, so StreamDb is never measured alone: each
 * workload runs on all three engines, the engines take turns within every
 * repetition (their order rotates from one repetition to the next; in latency
 * rounds they take turns every LAT_BLOCK operations), and the table keeps each
 * engine's best repetition.  The goals are ratios to the peer
 * the issue names.  Every figure the table shows was measured in this run; one
 * that could not be is printed as "n/a" with the reason.  docs/BENCHMARKS.md
 * ("StreamDb beside SQLite and LMDB") describes each row and each engine's
 * settings.
 *
 * The three engines sit behind one table of operations (engine_ops_t), so that
 * every workload is one loop over the same calls: open, begin / put / commit,
 * flush, lookup of the size, get with a byte check, the first 100 paths from a
 * prefix, count.  StreamDb's begin / put / commit build and commit one atomic
 * batch (sdb_batch_*), durable, as each peer commits a transaction.
 *
 * Sections (select with --only):
 *   small  N paths (default 1,000,000 real paths) with 16-byte documents: file
 *          size, bulk load (and a smaller load with one durable commit per
 *          insert), 100-path prefix listing, exact lookup, open and close +
 *          open, StreamDb's resident memory per path
 *   get4k  reads of 10,000 documents of 4 KiB, every byte checked
 *   size1k file size of 100,000 documents of 1 KiB against the raw bytes
 *
 * Usage: bench_peers [--quick] [--paths N] [--only LIST] [--reps N]
 *                    [--sqlite-table rowid|without-rowid] [--dir DIR] [--data FILE]
 * Environment: SDB_BENCH_QUICK=1, SDB_BENCH_PATHS=N, SDB_BENCH_DIR=DIR,
 *              SDB_BENCH_DATA=FILE (command-line options win).
 * Exit status: 0 when every call of every engine succeeded and returned the
 * right data, whether or not the goals were met (the table is a report); 1 on
 * an engine error, on wrong data (a wrong size, a wrong byte, a missing or
 * unexpected path in a listing, a wrong count), or when the benchmark cannot be
 * set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <lmdb.h>
#include <sqlite3.h>

#include "streamdb.h"

#define MIB (1024.0 * 1024.0)
#define TMPFS_MAGIC_NUMBER 0x01021994
#define DEFAULT_DATA "tests/data/debian-paths.txt.gz"
#define BATCH 10000u                  /* inserts per commit of the bulk load */
#define LAT_BLOCK 1000u               /* lookups per turn (listings: a tenth) */
#define LMDB_MAP_SIZE (64ull << 30)   /* address space only: the file grows as used */

/* ---- Options ------------------------------------------------------------ */

typedef struct {
    int quick;
    const char *only;          /* comma-separated sections, NULL = all */
    const char *dir_base;
    const char *data_file;
    uint64_t npaths;           /* section small */
    int reps;                  /* interleaved repetitions of each timed run */
    uint64_t durable_count;    /* inserts of the one-commit-per-insert load */
    uint64_t lookups;          /* per latency round */
    uint64_t searches;         /* prefixes per latency round */
    int lat_rounds;
    int open_reps;
    uint64_t get_docs;         /* section get4k */
    size_t get_size;
    uint64_t kib_docs;         /* section size1k */
    size_t kib_size;
} bench_opts_t;

static bench_opts_t opt;

/* This program prints the peer table only: the baseline table's functions
 * in the shared header stay unused here. */
#define BENCH_PEER_TABLE
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_report.h"
#pragma GCC diagnostic pop

/* ---- Errors and the temporary directory --------------------------------- */

static char tmp_dir[1024];

static int rm_entry_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmp_dir(void)
{
    if (tmp_dir[0])
        nftw(tmp_dir, rm_entry_cb, 16, FTW_DEPTH | FTW_PHYS);
    tmp_dir[0] = '\0';
}

/* Reports a failure or wrong data (with the table so far) and exits with 1. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_peers: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    peer_print_table();
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static void tmp_file(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

/* Flushes the file system of the temporary directory (untimed), so that the
 * write-back of one run is not charged to the next. */
static void settle(void)
{
    int fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

static int section_on(const char *name) { return bench_section_on(opt.only, name); }

/* ---- Small helpers ------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)   /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_below(uint64_t n)
{
    return n ? rng_next() % n : 0;
}

static uint64_t mix64(uint64_t x)   /* splitmix64's finaliser */
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The content of document `seed`: len bytes, a pure function of (seed, len),
 * so that any read can be checked without keeping what was written. */
static void doc_fill(uint64_t seed, uint8_t *buf, size_t len)
{
    uint64_t x = mix64(seed * 0x100000001b3ull + len);
    for (size_t i = 0; i < len; i += 8) {
        x = mix64(x);
        memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Percentiles of n latencies in ns (sorted in place), in microseconds. */
static void percentiles(uint64_t *lat, size_t n, double *p50, double *p99)
{
    qsort(lat, n, sizeof *lat, cmp_u64);
    *p50 = (double)lat[n / 2] / 1e3;
    *p99 = (double)lat[(n * 99) / 100] / 1e3;
}

static void file_sizes(const char *file, double *st_size, double *on_disk)
{
    struct stat st;
    if (stat(file, &st) != 0)
        die("stat %s: %s", file, strerror(errno));
    *st_size = (double)st.st_size;
    *on_disk = (double)st.st_blocks * 512.0;
}

/* Resident memory: anonymous (RssAnon of /proc/self/status) and total
 * (statm, which also counts mapped file pages), in bytes. */
static void read_rss(uint64_t *anon, uint64_t *total)
{
    unsigned long size = 0, resident = 0, kb;
    char line[256];
    *anon = *total = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            *total = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
                *anon = (uint64_t)kb * 1024u;
        fclose(f);
    }
}

static double load_avg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* ---- The engines -------------------------------------------------------- */

/* What a listing or a check sees of one entry; the visit either compares the
 * entries with the expected paths (expect != NULL) or only folds them into a
 * sum that the compiler cannot drop. */
typedef struct {
    char **expect;             /* expected paths in order, or NULL */
    size_t nexpect;
    size_t count;
    uint64_t sum;
    uint64_t want_size;        /* every entry's document size */
    int bad;
} visit_t;

static void visit(visit_t *v, const char *path, size_t plen, uint64_t size, const char *engine)
{
    if (v->expect && !v->bad) {
        const char *e = v->count < v->nexpect ? v->expect[v->count] : NULL;
        if (!e || strlen(e) != plen || memcmp(e, path, plen) != 0) {
            fprintf(stderr, "bench_peers: %s: listing entry %zu is '%.*s', expected '%s'\n",
                    engine, v->count, (int)plen, path, e ? e : "(end)");
            v->bad = 1;
        }
    }
    if (size != v->want_size && !v->bad) {
        fprintf(stderr, "bench_peers: %s: '%.*s' has size %llu, expected %llu\n", engine,
                (int)plen, path, (unsigned long long)size, (unsigned long long)v->want_size);
        v->bad = 1;
    }
    v->count++;
    v->sum += (unsigned char)path[plen - 1] + size;
}

typedef struct {
    const char *name;
    /* Opens file (creating it when create); durable_each: StreamDb only, one
       sync per put (cfg.durable = 1) instead of lazy syncs. */
    void *(*open)(const char *file, int create, int durable_each);
    void (*close)(void *h);
    void (*begin)(void *h);                /* starts a batch of puts */
    void (*put)(void *h, const char *path, const void *data, size_t len);
    void (*commit)(void *h);               /* commits the batch, durably */
    void (*flush)(void *h);                /* makes everything durable */
    uint64_t (*lookup)(void *h, const char *path);   /* size of the document at path */
    void (*get_check)(void *h, const char *path, const uint8_t *expect, size_t len);
    /* Visits the first `limit` paths >= prefix (and < upper) in order. */
    void (*first_n)(void *h, const char *prefix, const char *upper, size_t limit, visit_t *v);
    uint64_t (*count)(void *h);
} engine_ops_t;

/* -- SQLite: one table (path TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID, its
 * defaults otherwise: rollback journal (journal_mode=DELETE),
 * synchronous=FULL, 4 KiB pages, 2,000 KiB page cache.  Each lookup, get and
 * listing is one statement in autocommit mode (its own read transaction). */

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *ins, *len, *get, *range, *cnt;
} sqlite_h;

/* The layout of the table a section creates: WITHOUT ROWID (one B-tree keyed
 * by path, as LMDB's) for small rows, a rowid table (rows in a B-tree keyed by
 * rowid, plus the index on path) for rows of a KiB and more, where SQLite's
 * own guidance (sqlite.org/withoutrowid.html, "when to use") advises against
 * WITHOUT ROWID.  -1 until a section or --sqlite-table sets it. */
static int sqlite_without_rowid = -1;
static int sqlite_forced = -1;   /* --sqlite-table: the same layout for every section */

static void sqlite_layout(int without_rowid)
{
    sqlite_without_rowid = sqlite_forced >= 0 ? sqlite_forced : without_rowid;
}

static const char *sqlite_layout_name(void)
{
    return sqlite_without_rowid ? "WITHOUT ROWID" : "rowid table";
}

static void sqlite_die(sqlite_h *s, const char *what)
{
    die("SQLite: %s: %s", what, s->db ? sqlite3_errmsg(s->db) : "(no handle)");
}

static void sqlite_exec(sqlite_h *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
        die("SQLite: %s: %s", sql, err ? err : "?");
}

static sqlite3_stmt *sqlite_prep(sqlite_h *s, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        sqlite_die(s, sql);
    return st;
}

static void *sqlite_open_cb(const char *file, int create, int durable_each)
{
    (void)durable_each;
    sqlite_h *s = xmalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(file, &s->db, flags, NULL) != SQLITE_OK)
        sqlite_die(s, "open");
    if (create)
        sqlite_exec(s, sqlite_without_rowid
                           ? "CREATE TABLE IF NOT EXISTS docs (path TEXT PRIMARY KEY, data BLOB) "
                             "WITHOUT ROWID"
                           : "CREATE TABLE IF NOT EXISTS docs (path TEXT PRIMARY KEY, data BLOB)");
    s->ins = sqlite_prep(s, "INSERT INTO docs (path, data) VALUES (?1, ?2)");
    s->len = sqlite_prep(s, "SELECT length(data) FROM docs WHERE path = ?1");
    s->get = sqlite_prep(s, "SELECT data FROM docs WHERE path = ?1");
    s->range = sqlite_prep(s, "SELECT path, length(data) FROM docs WHERE path >= ?1 AND "
                              "path < ?2 ORDER BY path LIMIT ?3");
    s->cnt = sqlite_prep(s, "SELECT count(*) FROM docs");
    return s;
}

static void sqlite_close_cb(void *h)
{
    sqlite_h *s = h;
    sqlite3_stmt *all[] = { s->ins, s->len, s->get, s->range, s->cnt };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    if (sqlite3_close(s->db) != SQLITE_OK)
        sqlite_die(s, "close");
    free(s);
}

static void sqlite_begin_cb(void *h) { sqlite_exec(h, "BEGIN"); }
static void sqlite_commit_cb(void *h) { sqlite_exec(h, "COMMIT"); }
static void sqlite_flush_cb(void *h) { (void)h; }   /* every COMMIT was durable */

static void sqlite_put_cb(void *h, const char *path, const void *data, size_t len)
{
    sqlite_h *s = h;
    sqlite3_bind_text(s->ins, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s->ins, 2, data, (int)len, SQLITE_STATIC);
    if (sqlite3_step(s->ins) != SQLITE_DONE)
        sqlite_die(s, "INSERT");
    sqlite3_reset(s->ins);
}

static uint64_t sqlite_lookup_cb(void *h, const char *path)
{
    sqlite_h *s = h;
    sqlite3_bind_text(s->len, 1, path, -1, SQLITE_STATIC);
    if (sqlite3_step(s->len) != SQLITE_ROW)
        die("SQLite: SELECT length(data) of '%s': %s", path, sqlite3_errmsg(s->db));
    uint64_t n = (uint64_t)sqlite3_column_int64(s->len, 0);
    sqlite3_reset(s->len);
    return n;
}

static void sqlite_get_cb(void *h, const char *path, const uint8_t *expect, size_t len)
{
    sqlite_h *s = h;
    sqlite3_bind_text(s->get, 1, path, -1, SQLITE_STATIC);
    if (sqlite3_step(s->get) != SQLITE_ROW)
        die("SQLite: SELECT data of '%s': %s", path, sqlite3_errmsg(s->db));
    const void *p = sqlite3_column_blob(s->get, 0);
    size_t n = (size_t)sqlite3_column_bytes(s->get, 0);
    if (n != len || (len && (!p || memcmp(p, expect, len) != 0)))
        die("SQLite: wrong content for '%s' (%zu bytes, expected %zu)", path, n, len);
    sqlite3_reset(s->get);
}

static void sqlite_first_n_cb(void *h, const char *prefix, const char *upper, size_t limit,
                              visit_t *v)
{
    sqlite_h *s = h;
    int rc;
    sqlite3_bind_text(s->range, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->range, 2, upper, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->range, 3, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(s->range)) == SQLITE_ROW)
        visit(v, (const char *)sqlite3_column_text(s->range, 0),
              (size_t)sqlite3_column_bytes(s->range, 0),
              (uint64_t)sqlite3_column_int64(s->range, 1), "SQLite");
    if (rc != SQLITE_DONE)
        sqlite_die(s, "SELECT range");
    sqlite3_reset(s->range);
}

static uint64_t sqlite_count_cb(void *h)
{
    sqlite_h *s = h;
    if (sqlite3_step(s->cnt) != SQLITE_ROW)
        sqlite_die(s, "SELECT count(*)");
    uint64_t n = (uint64_t)sqlite3_column_int64(s->cnt, 0);
    sqlite3_reset(s->cnt);
    return n;
}

/* SQLite's journal mode and synchronous level on a new file in the temporary
 * directory, as the benchmark's files get them (for the header). */
static void sqlite_settings(char *out, size_t cap)
{
    char file[1100], jm[32] = "?";
    int sync = -1, page = -1;
    tmp_file(file, sizeof file, "settings.sqlite");
    sqlite_h *s = sqlite_open_cb(file, 1, 0);
    sqlite3_stmt *st = sqlite_prep(s, "PRAGMA journal_mode");
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(jm, sizeof jm, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = sqlite_prep(s, "PRAGMA synchronous");
    if (sqlite3_step(st) == SQLITE_ROW)
        sync = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = sqlite_prep(s, "PRAGMA page_size");
    if (sqlite3_step(st) == SQLITE_ROW)
        page = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite_close_cb(s);
    remove(file);
    snprintf(out, cap, "journal_mode=%s, synchronous=%d%s, page_size=%d", jm, sync,
             sync == 2 ? " (FULL)" : sync == 1 ? " (NORMAL)" : "", page);
}

static const engine_ops_t sqlite_ops = {
    "SQLite", sqlite_open_cb, sqlite_close_cb, sqlite_begin_cb, sqlite_put_cb, sqlite_commit_cb,
    sqlite_flush_cb, sqlite_lookup_cb, sqlite_get_cb, sqlite_first_n_cb, sqlite_count_cb,
};

/* -- LMDB: one environment in one file (MDB_NOSUBDIR; its lock file beside
 * it is not counted), the main database keyed by path, default flags: every
 * commit is synced (no MDB_NOSYNC, MDB_NOMETASYNC or MDB_WRITEMAP).  Each
 * lookup, get and listing is its own read transaction (mdb_txn_renew ...
 * mdb_txn_reset, LMDB's way to reuse one). */

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *wtxn;
    MDB_txn *rtxn;             /* reset between reads; NULL until the first */
    MDB_cursor *cur;
} lmdb_h;

#define LMDB_CHECK(call, what) do { int rc_ = (call); \
        if (rc_ != MDB_SUCCESS) die("LMDB: %s: %s", (what), mdb_strerror(rc_)); } while (0)

static void *lmdb_open_cb(const char *file, int create, int durable_each)
{
    (void)durable_each;
    lmdb_h *l = xmalloc(sizeof *l);
    MDB_txn *txn;
    memset(l, 0, sizeof *l);
    LMDB_CHECK(mdb_env_create(&l->env), "mdb_env_create");
    LMDB_CHECK(mdb_env_set_mapsize(l->env, LMDB_MAP_SIZE), "mdb_env_set_mapsize");
    LMDB_CHECK(mdb_env_open(l->env, file, MDB_NOSUBDIR, 0644), "mdb_env_open");
    LMDB_CHECK(mdb_txn_begin(l->env, NULL, create ? 0 : MDB_RDONLY, &txn), "mdb_txn_begin");
    LMDB_CHECK(mdb_dbi_open(txn, NULL, 0, &l->dbi), "mdb_dbi_open");
    LMDB_CHECK(mdb_txn_commit(txn), "mdb_txn_commit (open)");
    return l;
}

static void lmdb_close_cb(void *h)
{
    lmdb_h *l = h;
    if (l->cur)
        mdb_cursor_close(l->cur);
    if (l->rtxn)
        mdb_txn_abort(l->rtxn);
    mdb_env_close(l->env);
    free(l);
}

static void lmdb_begin_cb(void *h)
{
    lmdb_h *l = h;
    LMDB_CHECK(mdb_txn_begin(l->env, NULL, 0, &l->wtxn), "mdb_txn_begin");
}

static void lmdb_commit_cb(void *h)
{
    lmdb_h *l = h;
    int rc = mdb_txn_commit(l->wtxn);
    l->wtxn = NULL;
    LMDB_CHECK(rc, "mdb_txn_commit");
}

static void lmdb_flush_cb(void *h) { (void)h; }   /* every commit was synced */

static void lmdb_put_cb(void *h, const char *path, const void *data, size_t len)
{
    lmdb_h *l = h;
    MDB_val k = { strlen(path), (void *)path }, d = { len, (void *)data };
    LMDB_CHECK(mdb_put(l->wtxn, l->dbi, &k, &d, MDB_NOOVERWRITE), "mdb_put");
}

static void lmdb_read_begin(lmdb_h *l)
{
    if (!l->rtxn)
        LMDB_CHECK(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->rtxn), "mdb_txn_begin (read)");
    else
        LMDB_CHECK(mdb_txn_renew(l->rtxn), "mdb_txn_renew");
}

static uint64_t lmdb_lookup_cb(void *h, const char *path)
{
    lmdb_h *l = h;
    MDB_val k = { strlen(path), (void *)path }, d;
    lmdb_read_begin(l);
    int rc = mdb_get(l->rtxn, l->dbi, &k, &d);
    mdb_txn_reset(l->rtxn);
    if (rc != MDB_SUCCESS)
        die("LMDB: mdb_get '%s': %s", path, mdb_strerror(rc));
    return d.mv_size;
}

static void lmdb_get_cb(void *h, const char *path, const uint8_t *expect, size_t len)
{
    lmdb_h *l = h;
    MDB_val k = { strlen(path), (void *)path }, d;
    lmdb_read_begin(l);
    int rc = mdb_get(l->rtxn, l->dbi, &k, &d);
    int ok = rc == MDB_SUCCESS && d.mv_size == len && memcmp(d.mv_data, expect, len) == 0;
    mdb_txn_reset(l->rtxn);
    if (rc != MDB_SUCCESS)
        die("LMDB: mdb_get '%s': %s", path, mdb_strerror(rc));
    if (!ok)
        die("LMDB: wrong content for '%s' (%zu bytes, expected %zu)", path, d.mv_size, len);
}

static void lmdb_first_n_cb(void *h, const char *prefix, const char *upper, size_t limit,
                            visit_t *v)
{
    lmdb_h *l = h;
    size_t ul = strlen(upper);
    MDB_val k = { strlen(prefix), (void *)prefix }, d;
    lmdb_read_begin(l);
    if (!l->cur)
        LMDB_CHECK(mdb_cursor_open(l->rtxn, l->dbi, &l->cur), "mdb_cursor_open");
    else
        LMDB_CHECK(mdb_cursor_renew(l->rtxn, l->cur), "mdb_cursor_renew");
    int rc = mdb_cursor_get(l->cur, &k, &d, MDB_SET_RANGE);
    for (size_t n = 0; rc == MDB_SUCCESS && n < limit; n++) {
        /* stop at the range bound, as SQLite's "path < upper" does */
        size_t m = k.mv_size < ul ? k.mv_size : ul;
        int c = memcmp(k.mv_data, upper, m);
        if (c > 0 || (c == 0 && k.mv_size >= ul))
            break;
        visit(v, k.mv_data, k.mv_size, d.mv_size, "LMDB");
        rc = mdb_cursor_get(l->cur, &k, &d, MDB_NEXT);
    }
    mdb_txn_reset(l->rtxn);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        die("LMDB: mdb_cursor_get: %s", mdb_strerror(rc));
}

static uint64_t lmdb_count_cb(void *h)
{
    lmdb_h *l = h;
    MDB_stat st;
    lmdb_read_begin(l);
    int rc = mdb_stat(l->rtxn, l->dbi, &st);
    mdb_txn_reset(l->rtxn);
    LMDB_CHECK(rc, "mdb_stat");
    return st.ms_entries;
}

static const engine_ops_t lmdb_ops = {
    "LMDB", lmdb_open_cb, lmdb_close_cb, lmdb_begin_cb, lmdb_put_cb, lmdb_commit_cb,
    lmdb_flush_cb, lmdb_lookup_cb, lmdb_get_cb, lmdb_first_n_cb, lmdb_count_cb,
};

/* -- StreamDb: the default config (CRC-checked reads through the mapping,
 * durable): each load's transaction is one sdb_batch_commit. */

#define SDB_CHECK(call, what) do { int rc_ = (call); \
        if (rc_ != SDB_OK) die("StreamDb: %s: %s (%d)", (what), sdb_strerror(rc_), rc_); } while (0)

/* The batch API: a "batch" of the bulk loads is one sdb_batch_commit of its
 * puts (atomic, one journal group), and the database is opened durable, so
 * that each batch is synced as each peer's transaction commit is.  The
 * benchmark is single-threaded: one batch is open at a time. */
static const int streamdb_has_batch = 1;
static sdb_batch_t *streamdb_batch;     /* the open batch, NULL outside one */

static void *streamdb_open_cb(const char *file, int create, int durable_each)
{
    sdb_config_t cfg;
    sdb_t *db;
    (void)create;   /* sdb_open creates an absent file */
    (void)durable_each;
    sdb_config_default(&cfg);
    cfg.durable = 1;   /* every commit (a batch, or one put) synced, as the peers' */
    SDB_CHECK(sdb_open(file, &cfg, &db), "sdb_open");
    return db;
}

static void streamdb_close_cb(void *h) { SDB_CHECK(sdb_close(h), "sdb_close"); }
static void streamdb_flush_cb(void *h) { SDB_CHECK(sdb_flush(h), "sdb_flush"); }

static void streamdb_begin_cb(void *h)
{
    (void)h;
    if (!streamdb_batch)
        SDB_CHECK(sdb_batch_new(&streamdb_batch), "sdb_batch_new");
    sdb_batch_clear(streamdb_batch);
}

static void streamdb_commit_cb(void *h)
{
    size_t failed = SDB_BATCH_NO_ITEM;
    int rc = sdb_batch_commit(h, streamdb_batch, NULL, &failed);
    if (rc != SDB_OK)
        die("StreamDb: sdb_batch_commit of %zu puts: %s (%d), item %zu",
            sdb_batch_count(streamdb_batch), sdb_strerror(rc), rc, failed);
    sdb_batch_clear(streamdb_batch);
}

static void streamdb_put_cb(void *h, const char *path, const void *data, size_t len)
{
    (void)h;
    int rc = sdb_batch_put(streamdb_batch, path, data, len, UINT64_MAX);
    if (rc != SDB_OK)
        die("StreamDb: sdb_batch_put '%s': %s (%d)", path, sdb_strerror(rc), rc);
}

static uint64_t streamdb_lookup_cb(void *h, const char *path)
{
    sdb_docinfo_t info;
    int rc = sdb_lookup(h, path, &info);
    if (rc != SDB_OK)
        die("StreamDb: sdb_lookup '%s': %s (%d)", path, sdb_strerror(rc), rc);
    return info.size;
}

static void streamdb_get_cb(void *h, const char *path, const uint8_t *expect, size_t len)
{
    void *data;
    size_t n;
    int rc = sdb_get(h, path, &data, &n, NULL);
    if (rc != SDB_OK)
        die("StreamDb: sdb_get '%s': %s (%d)", path, sdb_strerror(rc), rc);
    int ok = n == len && memcmp(data, expect, len) == 0;
    free(data);
    if (!ok)
        die("StreamDb: wrong content for '%s' (%zu bytes, expected %zu)", path, n, len);
}

static int streamdb_entry_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    if (!info)
        die("StreamDb: sdb_search without a delimiter returned a rolled-up prefix '%s'", path);
    visit(arg, path, strlen(path), info->size, "StreamDb");
    return 0;
}

static void streamdb_first_n_cb(void *h, const char *prefix, const char *upper, size_t limit,
                                visit_t *v)
{
    /* sdb_search takes the prefix itself; upper is where the others stop */
    sdb_search_opts_t so = { NULL, limit, 0 };
    (void)upper;
    SDB_CHECK(sdb_search(h, prefix, &so, streamdb_entry_cb, v), "sdb_search");
}

static uint64_t streamdb_count_cb(void *h)
{
    sdb_stats_t st;
    SDB_CHECK(sdb_stats(h, &st), "sdb_stats");
    return st.paths;
}

static const engine_ops_t streamdb_ops = {
    "StreamDb", streamdb_open_cb, streamdb_close_cb, streamdb_begin_cb, streamdb_put_cb,
    streamdb_commit_cb, streamdb_flush_cb, streamdb_lookup_cb, streamdb_get_cb,
    streamdb_first_n_cb, streamdb_count_cb,
};

static const engine_ops_t *const engines[PEER_COUNT] = { &sqlite_ops, &lmdb_ops, &streamdb_ops };
static const char *const engine_ext[PEER_COUNT] = { "sqlite", "lmdb", "sdb" };

/* The database file of engine e for workload `what`. */
static void db_file(char *out, size_t cap, int e, const char *what)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", what, engine_ext[e]);
    tmp_file(out, cap, name);
}

static void remove_db(const char *file)
{
    char lock[1200];
    unlink(file);
    snprintf(lock, sizeof lock, "%.1100s-lock", file);      /* LMDB with MDB_NOSUBDIR */
    unlink(lock);
    snprintf(lock, sizeof lock, "%.1100s-journal", file);   /* SQLite's rollback journal */
    unlink(lock);
}

/* The engine that runs k-th in repetition rep: the order rotates, so that no
 * engine always runs first (cold) or last. */
static int turn(int rep, int k) { return (rep + k) % PEER_COUNT; }

/* ---- The path set ------------------------------------------------------- */

/* The same set as bench_engine's paths section: the lines of the data file,
 * repeated under /host0, /host1, ... until there are opt.npaths; a host that
 * takes fewer than the whole list takes an evenly spread sample of it. */
static char **paths;           /* in generation order */
static char **sorted;          /* the same pointers in byte order */
static char *path_arena;
static double mean_path;       /* bytes */
static size_t nbase;

static void make_paths(void)
{
    gzFile gz = gzopen(opt.data_file, "rb");
    if (!gz)
        die("cannot open the path list %s (run from the repository root, or set "
            "SDB_BENCH_DATA / --data)", opt.data_file);
    size_t cap = 1 << 17;
    char line[SDB_MAX_PATH + 2];
    char **base = xmalloc(cap * sizeof *base);
    while (gzgets(gz, line, sizeof line)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0)
            continue;
        if (nbase == cap) {
            cap *= 2;
            char **nb = realloc(base, cap * sizeof *base);
            if (!nb)
                die("out of memory");
            base = nb;
        }
        base[nbase] = xmalloc(n + 1);
        memcpy(base[nbase++], line, n + 1);
    }
    gzclose(gz);
    if (nbase == 0)
        die("the path list %s is empty", opt.data_file);

    uint64_t n = opt.npaths;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = i / nbase, j = i % nbase;
        uint64_t c = n - h * nbase < nbase ? n - h * nbase : nbase;
        total += strlen(base[j * nbase / c]) + 16;
    }
    path_arena = xmalloc(total);
    paths = xmalloc(n * sizeof *paths);
    sorted = xmalloc(n * sizeof *sorted);
    size_t off = 0;
    double bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = i / nbase, j = i % nbase;
        uint64_t c = n - h * nbase < nbase ? n - h * nbase : nbase;
        const char *b = base[j * nbase / c];
        int len = snprintf(path_arena + off, total - off, "/host%u%s%s", (unsigned)h,
                           b[0] == '/' ? "" : "/", b);
        paths[i] = sorted[i] = path_arena + off;
        off += (size_t)len + 1;
        bytes += len;
    }
    for (size_t i = 0; i < nbase; i++)
        free(base[i]);
    free(base);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            die("duplicate path in the generated set: %s", sorted[i]);
    mean_path = bytes / (double)n;
}

static size_t lower_bound(const char *key)
{
    size_t lo = 0, hi = opt.npaths;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(sorted[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Random directory prefixes (a path cut after one of its '/') with at least
 * 100 paths below them; *first gets each one's first index in sorted[]. */
static uint64_t pick_prefixes(uint64_t want, char ***out, size_t **first)
{
    uint64_t n = opt.npaths, got = 0, tries = 0;
    *out = xmalloc(want * sizeof **out);
    *first = xmalloc(want * sizeof **first);
    while (got < want && tries < want * 1000) {
        const char *p = paths[rng_below(n)];
        size_t slashes[64], k = 0;
        tries++;
        for (size_t i = 1; p[i] && k < 64; i++)
            if (p[i] == '/')
                slashes[k++] = i;
        if (k == 0)
            continue;
        size_t plen = slashes[rng_below(k)] + 1;
        char *pre = xmalloc(plen + 1);
        memcpy(pre, p, plen);
        pre[plen] = '\0';
        size_t lb = lower_bound(pre);
        if (lb + 100 > n || strncmp(sorted[lb + 99], pre, plen) != 0) {
            free(pre);
            continue;
        }
        (*out)[got] = pre;
        (*first)[got++] = lb;
    }
    if (got == 0)
        die("no directory with 100 paths in the data set");
    return got;
}

/* The smallest string above every string that starts with prefix (the
 * prefix with its last byte raised; prefixes here end in '/'). */
static char *upper_bound_of(const char *prefix)
{
    size_t n = strlen(prefix);
    char *u = xmalloc(n + 1);
    memcpy(u, prefix, n + 1);
    while (n > 0 && (unsigned char)u[n - 1] == 0xff)
        u[--n] = '\0';
    if (n == 0)
        die("prefix '%s' has no upper bound", prefix);
    u[n - 1]++;
    return u;
}

/* ---- Loading ------------------------------------------------------------ */

/* Content of the 16-byte document of path paths[i]. */
static void doc16(uint64_t i, uint8_t out[16])
{
    uint64_t a = i, b = mix64(i);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

typedef struct {
    const uint32_t *order;     /* indexes into paths[] */
    uint64_t n;
    size_t doc_size;           /* 16: doc16(); otherwise doc_fill(index, size) */
    uint64_t batch;            /* puts per commit */
} load_t;

/* Creates file afresh with engine e and loads ld into it: begin, `batch`
 * puts, commit, ..., then flush; returns the seconds that took.  *close_s
 * gets the time of the close that follows. */
static double load_engine(int e, const char *file, const load_t *ld, int durable_each,
                          double *close_s)
{
    const engine_ops_t *en = engines[e];
    uint8_t *buf = xmalloc(ld->doc_size);

    remove_db(file);
    settle();
    void *h = en->open(file, 1, durable_each);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < ld->n; i++) {
        uint32_t k = ld->order[i];
        if (i % ld->batch == 0)
            en->begin(h);
        if (ld->doc_size == 16)
            doc16(k, buf);
        else
            doc_fill(k, buf, ld->doc_size);
        en->put(h, paths[k], buf, ld->doc_size);
        if ((i + 1) % ld->batch == 0 || i + 1 == ld->n)
            en->commit(h);
    }
    en->flush(h);
    uint64_t t1 = now_ns();
    en->close(h);
    *close_s = (double)(now_ns() - t1) / 1e9;
    free(buf);
    return (double)(t1 - t0) / 1e9;
}

/* Checks that engine handle h holds exactly n paths, and the full content of
 * `samples` random ones among order[0..n). */
static void check_content(int e, void *h, const uint32_t *order, uint64_t n, size_t doc_size,
                          uint64_t samples)
{
    uint64_t got = engines[e]->count(h);
    uint8_t *buf = xmalloc(doc_size);
    if (got != n)
        die("%s holds %llu paths, expected %llu", engines[e]->name, (unsigned long long)got,
            (unsigned long long)n);
    for (uint64_t s = 0; s < samples; s++) {
        uint32_t k = order[rng_below(n)];
        if (doc_size == 16)
            doc16(k, buf);
        else
            doc_fill(k, buf, doc_size);
        engines[e]->get_check(h, paths[k], buf, doc_size);
    }
    free(buf);
}

static uint32_t *shuffled(uint64_t n)
{
    uint32_t *order = xmalloc(n * sizeof *order);
    for (uint64_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = rng_below(i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

/* ---- StreamDb's memory per path, in a fresh process --------------------- */

/* The child's side (--rss-probe FILE N): opens FILE, prints the growth of
 * RssAnon and of the whole RSS that sdb_open caused, checks the path count. */
static int rss_probe(const char *file, const char *count)
{
    uint64_t a0, t0, a1, t1;
    sdb_config_t cfg;
    sdb_t *db;
    sdb_stats_t st;
    sdb_config_default(&cfg);
    read_rss(&a0, &t0);
    int rc = sdb_open(file, &cfg, &db);
    if (rc != SDB_OK) {
        fprintf(stderr, "rss probe: sdb_open %s: %s\n", file, sdb_strerror(rc));
        return 1;
    }
    read_rss(&a1, &t1);
    rc = sdb_stats(db, &st);
    if (rc != SDB_OK || st.paths != strtoull(count, NULL, 10)) {
        fprintf(stderr, "rss probe: %s holds %llu paths, expected %s\n", file,
                (unsigned long long)st.paths, count);
        return 1;
    }
    printf("%llu %llu\n", (unsigned long long)(a1 - a0), (unsigned long long)(t1 - t0));
    return sdb_close(db) == SDB_OK ? 0 : 1;
}

/* Runs this program as --rss-probe on file in a new process (so that no heap
 * freed by the earlier work here is reused by sdb_open and hidden); stores
 * the RssAnon and total RSS growth in bytes.  Exits through die() when the
 * probe cannot run or fails. */
static void rss_of_open(const char *file, double *anon, double *total)
{
    int fd[2];
    char count[32], out[128];
    snprintf(count, sizeof count, "%llu", (unsigned long long)opt.npaths);
    if (pipe(fd) != 0)
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "bench_peers", "--rss-probe", file, count, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof out - 1 &&
           (r = read(fd[0], out + n, sizeof out - 1 - (size_t)n)) > 0)
        n += r;
    close(fd[0]);
    out[n > 0 ? n : 0] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unsigned long long a = 0, t = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || sscanf(out, "%llu %llu", &a, &t) != 2)
        die("the memory probe (this program with --rss-probe) failed");
    *anon = (double)a;
    *total = (double)t;
}

/* ---- Section small: N paths with 16-byte documents ---------------------- */

static void bench_small(void)
{
    uint64_t n = opt.npaths;
    char file[PEER_COUNT][1100], dfile[1100], tag[32];
    double best_load[PEER_COUNT], close_load[PEER_COUNT], best_dur[PEER_COUNT];
    double size[PEER_COUNT], disk[PEER_COUNT];

    make_paths();
    sqlite_layout(1);
    if (n % 1000000 == 0)
        snprintf(tag, sizeof tag, "%lluM", (unsigned long long)(n / 1000000));
    else if (n % 1000 == 0)
        snprintf(tag, sizeof tag, "%lluk", (unsigned long long)(n / 1000));
    else
        snprintf(tag, sizeof tag, "%llu", (unsigned long long)n);
    progress("small: %llu paths (%zu real paths in %s, repeated under /hostN), mean length "
             "%.1f bytes, 16-byte documents", (unsigned long long)n, nbase, opt.data_file,
             mean_path);

    /* 1. Bulk load, in random order (as files arrive), interleaved. */
    uint32_t *order = shuffled(n);
    load_t ld = { order, n, 16, BATCH };
    for (int e = 0; e < PEER_COUNT; e++) {
        db_file(file[e], sizeof file[e], e, "small");
        best_load[e] = INFINITY;
    }
    for (int r = 0; r < opt.reps; r++)
        for (int k = 0; k < PEER_COUNT; k++) {
            int e = turn(r, k);
            double c, s = load_engine(e, file[e], &ld, 0, &c);
            progress("load rep %d: %-8s %.2f s (%.0f/s), then close %.0f ms", r + 1,
                     engines[e]->name, s, (double)n / s, c * 1e3);
            if (s < best_load[e]) {
                best_load[e] = s;
                close_load[e] = c;
            }
        }
    for (int e = 0; e < PEER_COUNT; e++)
        file_sizes(file[e], &size[e], &disk[e]);
    progress("file sizes (st_size / on disk): SQLite %.1f / %.1f MiB, LMDB %.1f / %.1f MiB, "
             "StreamDb %.1f / %.1f MiB", size[0] / MIB, disk[0] / MIB, size[1] / MIB,
             disk[1] / MIB, size[2] / MIB, disk[2] / MIB);

    /* 2. One durable commit per insert, on a smaller count. */
    load_t dl = { order, opt.durable_count < n ? opt.durable_count : n, 16, 1 };
    for (int e = 0; e < PEER_COUNT; e++)
        best_dur[e] = INFINITY;
    for (int r = 0; r < opt.reps; r++)
        for (int k = 0; k < PEER_COUNT; k++) {
            int e = turn(r, k);
            double c;
            db_file(dfile, sizeof dfile, e, "durable");
            double s = load_engine(e, dfile, &dl, 1, &c);
            remove_db(dfile);
            progress("durable load rep %d: %-8s %.0f/s", r + 1, engines[e]->name,
                     (double)dl.n / s);
            best_dur[e] = min_d(best_dur[e], s);
        }
    settle();

    /* 3. Open each file, check its count and a sample of contents. */
    void *h[PEER_COUNT];
    for (int e = 0; e < PEER_COUNT; e++) {
        h[e] = engines[e]->open(file[e], 0, 0);
        check_content(e, h[e], order, n, 16, opt.quick ? 1000 : 10000);
    }

    /* 4. Exact lookups of random existing paths, metadata only.  Within a
       round the engines take turns every LAT_BLOCK operations, so that a
       burst of load from the neighbours hits all three alike. */
    uint64_t nl = opt.lookups, nmax = nl > opt.searches ? nl : opt.searches;
    const char **keys = xmalloc(nl * sizeof *keys);
    uint64_t *lat[PEER_COUNT];
    double l50[PEER_COUNT], l99[PEER_COUNT], s50[PEER_COUNT], s99[PEER_COUNT], p50, p99;
    for (uint64_t i = 0; i < nl; i++)
        keys[i] = paths[rng_below(n)];
    for (int e = 0; e < PEER_COUNT; e++) {
        l50[e] = l99[e] = s50[e] = s99[e] = INFINITY;
        lat[e] = xmalloc(nmax * sizeof *lat[e]);
    }
    for (int r = 0; r < opt.lat_rounds; r++) {
        for (uint64_t b = 0; b < nl; b += LAT_BLOCK)
            for (int k = 0; k < PEER_COUNT; k++) {
                int e = turn(r + (int)(b / LAT_BLOCK), k);
                const engine_ops_t *en = engines[e];
                for (uint64_t i = b; i < nl && i < b + LAT_BLOCK; i++) {
                    uint64_t a = now_ns();
                    uint64_t sz = en->lookup(h[e], keys[i]);
                    lat[e][i] = now_ns() - a;
                    if (sz != 16)
                        die("%s: lookup of '%s' says %llu bytes, expected 16", en->name,
                            keys[i], (unsigned long long)sz);
                }
            }
        for (int e = 0; e < PEER_COUNT; e++) {
            percentiles(lat[e], nl, &p50, &p99);
            progress("lookup round %d: %-8s p50 %.2f us p99 %.2f us", r + 1, engines[e]->name,
                     p50, p99);
            l50[e] = min_d(l50[e], p50);
            l99[e] = min_d(l99[e], p99);
        }
    }
    free(keys);

    /* 5. The first 100 paths below random directory prefixes: every result
       checked once, then timed. */
    char **prefixes, **uppers;
    size_t *first;
    uint64_t ns = pick_prefixes(opt.searches, &prefixes, &first);
    uppers = xmalloc(ns * sizeof *uppers);
    for (uint64_t i = 0; i < ns; i++)
        uppers[i] = upper_bound_of(prefixes[i]);
    for (int e = 0; e < PEER_COUNT; e++)
        for (uint64_t i = 0; i < ns; i++) {
            visit_t v = { &sorted[first[i]], 100, 0, 0, 16, 0 };
            engines[e]->first_n(h[e], prefixes[i], uppers[i], 100, &v);
            if (v.bad || v.count != 100)
                die("%s: listing of '%s' returned %zu paths%s", engines[e]->name, prefixes[i],
                    v.count, v.bad ? ", not the expected ones" : " instead of 100");
        }
    for (int r = 0; r < opt.lat_rounds; r++) {
        uint64_t sum[PEER_COUNT] = { 0 };
        for (uint64_t b = 0; b < ns; b += LAT_BLOCK / 10)
            for (int k = 0; k < PEER_COUNT; k++) {
                int e = turn(r + (int)(b / (LAT_BLOCK / 10)), k);
                for (uint64_t i = b; i < ns && i < b + LAT_BLOCK / 10; i++) {
                    visit_t v = { NULL, 0, 0, 0, 16, 0 };
                    uint64_t a = now_ns();
                    engines[e]->first_n(h[e], prefixes[i], uppers[i], 100, &v);
                    lat[e][i] = now_ns() - a;
                    if (v.bad || v.count != 100)
                        die("%s: listing of '%s' returned %zu paths", engines[e]->name,
                            prefixes[i], v.count);
                    sum[e] += v.sum;
                }
            }
        for (int e = 0; e < PEER_COUNT; e++) {
            percentiles(lat[e], ns, &p50, &p99);
            progress("listing round %d: %-8s p50 %.2f us p99 %.2f us (%llu prefixes, sum %llx)",
                     r + 1, engines[e]->name, p50, p99, (unsigned long long)ns,
                     (unsigned long long)sum[e]);
            s50[e] = min_d(s50[e], p50);
            s99[e] = min_d(s99[e], p99);
        }
    }
    for (uint64_t i = 0; i < ns; i++) {
        free(prefixes[i]);
        free(uppers[i]);
    }
    free(prefixes);
    free(uppers);
    free(first);
    for (int e = 0; e < PEER_COUNT; e++)
        free(lat[e]);

    /* 6. Open, and close + open, each followed by one lookup. */
    double op[PEER_COUNT], cop[PEER_COUNT];
    for (int e = 0; e < PEER_COUNT; e++) {
        engines[e]->close(h[e]);
        op[e] = cop[e] = INFINITY;
    }
    for (int r = 0; r < opt.open_reps; r++)
        for (int k = 0; k < PEER_COUNT; k++) {
            int e = turn(r, k);
            const engine_ops_t *en = engines[e];
            const char *key = paths[rng_below(n)];
            uint64_t a = now_ns();
            void *hh = en->open(file[e], 0, 0);
            if (en->lookup(hh, key) != 16)
                die("%s: wrong size after open", en->name);
            uint64_t b = now_ns();
            en->close(hh);
            hh = en->open(file[e], 0, 0);
            if (en->lookup(hh, key) != 16)
                die("%s: wrong size after reopen", en->name);
            uint64_t c = now_ns();
            en->close(hh);
            progress("open rep %d: %-8s open %.2f ms, close + open %.2f ms", r + 1, en->name,
                     (double)(b - a) / 1e6, (double)(c - b) / 1e6);
            op[e] = min_d(op[e], (double)(b - a) / 1e9);
            cop[e] = min_d(cop[e], (double)(c - b) / 1e9);
        }

    /* 7. StreamDb's resident memory after opening the file. */
    double anon, total;
    rss_of_open(file[PEER_STREAMDB], &anon, &total);
    progress("memory: sdb_open of the %s-path file grows RssAnon by %.1f MiB, RSS by %.1f MiB",
             tag, anon / MIB, total / MIB);

    for (int e = 0; e < PEER_COUNT; e++)
        remove_db(file[e]);
    settle();
    free(order);

    /* The rows, in the order of issue 10's table. */
    char row[96];
    peer_row_t *pr;
    snprintf(row, sizeof row, "%s paths x 16 B: file size (st_size)", tag);
    pr = peer_add_row(row, "MiB", size[0] / MIB, size[1] / MIB, size[2] / MIB, PEER_SQLITE);
    pr->goal_kind = GOAL_RATIO_MAX, pr->goal = 1.5;
    peer_set_note(pr, "SQLite %s; inserted in random order", sqlite_layout_name());
    snprintf(row, sizeof row, "%s paths x 16 B: file size on disk (st_blocks*512)", tag);
    pr = peer_add_row(row, "MiB", disk[0] / MIB, disk[1] / MIB, disk[2] / MIB, PEER_SQLITE);
    pr->goal_kind = GOAL_RATIO_MAX, pr->goal = 1.5;
    snprintf(row, sizeof row, "%s paths: 100-path prefix listing, median", tag);
    pr = peer_add_row(row, "us", s50[0], s50[1], s50[2], PEER_LMDB);
    pr->goal_kind = GOAL_RATIO_MAX, pr->goal = 1.5;
    snprintf(row, sizeof row, "%s paths: 100-path prefix listing, p99", tag);
    pr = peer_add_row(row, "us", s99[0], s99[1], s99[2], PEER_LMDB);
    pr->goal_kind = GOAL_RATIO_MAX, pr->goal = 1.5;
    snprintf(row, sizeof row, "%s paths: exact lookup, p50", tag);
    peer_add_row(row, "us", l50[0], l50[1], l50[2], PEER_LMDB);
    snprintf(row, sizeof row, "%s paths: exact lookup, p99", tag);
    pr = peer_add_row(row, "us", l99[0], l99[1], l99[2], PEER_LMDB);
    pr->goal_kind = GOAL_RATIO_MAX, pr->goal = 1.0;

    double batch_rate = NAN;   /* StreamDb with its batch API, when it has one */
    if (streamdb_has_batch)
        batch_rate = (double)n / best_load[PEER_STREAMDB];
    snprintf(row, sizeof row, "%s paths: bulk load, 10,000 per commit", tag);
    pr = peer_add_row(row, "/s", (double)n / best_load[0], (double)n / best_load[1], batch_rate,
                      PEER_LMDB);
    pr->goal_kind = GOAL_RATIO_MIN, pr->goal = 1.0;
    if (!streamdb_has_batch) {
        snprintf(pr->no_verdict, sizeof pr->no_verdict, "n/a");
        peer_set_note(pr, "StreamDb: no batch API");
        snprintf(row, sizeof row, "%s paths: bulk load, StreamDb sdb_put durable=0", tag);
        pr = peer_add_row(row, "/s", (double)n / best_load[0], (double)n / best_load[1],
                          (double)n / best_load[2], PEER_LMDB);
        peer_set_note(pr, "no batch API: one lazy commit per put, sdb_flush at the end; "
                          "peers as above");
    }
    snprintf(row, sizeof row, "%llu inserts, one durable commit each",
             (unsigned long long)dl.n);
    pr = peer_add_row(row, "/s", (double)dl.n / best_dur[0], (double)dl.n / best_dur[1],
                      (double)dl.n / best_dur[2], PEER_LMDB);
    peer_set_note(pr, "StreamDb durable=1; SQLite autocommit; LMDB a txn per put");
    snprintf(row, sizeof row, "%s paths: close right after the bulk load", tag);
    pr = peer_add_row(row, "ms", close_load[0] * 1e3, close_load[1] * 1e3,
                      close_load[2] * 1e3, PEER_LMDB);
    snprintf(row, sizeof row, "%s paths: open + first lookup", tag);
    pr = peer_add_row(row, "ms", op[0] * 1e3, op[1] * 1e3, op[2] * 1e3, PEER_LMDB);
    pr->goal_kind = GOAL_VALUE_MAX, pr->goal = 300;
    snprintf(row, sizeof row, "%s paths: close + open + first lookup", tag);
    pr = peer_add_row(row, "ms", cop[0] * 1e3, cop[1] * 1e3, cop[2] * 1e3, PEER_LMDB);
    pr->goal_kind = GOAL_VALUE_MAX, pr->goal = 600;
    snprintf(row, sizeof row, "%s paths: resident memory per path after open", tag);
    pr = peer_add_row(row, "B", NAN, NAN, anon / (double)n, -1);
    pr->goal_kind = GOAL_VALUE_MAX, pr->goal = 100, pr->goal_incl = 1;
    peer_set_note(pr, "RssAnon; RSS incl. mapped pages %.0f B; mean path %.1f B; peers n/a: "
                      "no per-path memory (page cache, mmap)", total / (double)n, mean_path);
}

/* ---- Section get4k: reads of 4 KiB documents ---------------------------- */

static void bench_get4k(void)
{
    uint64_t nd = opt.get_docs;
    size_t sz = opt.get_size;
    char file[PEER_COUNT][1100];
    double best[PEER_COUNT];

    if (!paths)
        make_paths();
    sqlite_layout(0);
    if (nd > opt.npaths)
        nd = opt.npaths;
    /* documents at paths spread over the whole set, in random order */
    uint32_t *order = xmalloc(nd * sizeof *order);
    for (uint64_t i = 0; i < nd; i++)
        order[i] = (uint32_t)(i * (opt.npaths / nd));
    for (uint64_t i = nd - 1; i > 0; i--) {
        uint64_t j = rng_below(i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint8_t *content = xmalloc(nd * sz);   /* content of order[i] at i * sz */
    for (uint64_t i = 0; i < nd; i++)
        doc_fill(order[i], content + i * sz, sz);

    load_t ld = { order, nd, sz, BATCH };
    void *h[PEER_COUNT];
    for (int e = 0; e < PEER_COUNT; e++) {
        double c;
        db_file(file[e], sizeof file[e], e, "get4k");
        load_engine(e, file[e], &ld, 0, &c);
        h[e] = engines[e]->open(file[e], 0, 0);
        check_content(e, h[e], order, nd, sz, 0);
        for (uint64_t i = 0; i < nd; i++)   /* untimed pass: every byte, and a warm cache */
            engines[e]->get_check(h[e], paths[order[i]], content + i * sz, sz);
        best[e] = INFINITY;
    }
    /* a pass takes a fraction of a second: more repetitions than the loads */
    int reps = opt.reps * 3 > 6 ? opt.reps * 3 : 6;
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < PEER_COUNT; k++) {
            int e = turn(r, k);
            uint64_t a = now_ns();
            for (uint64_t i = 0; i < nd; i++)
                engines[e]->get_check(h[e], paths[order[i]], content + i * sz, sz);
            double s = (double)(now_ns() - a) / 1e9;
            progress("get4k rep %d: %-8s %.0f/s", r + 1, engines[e]->name, (double)nd / s);
            best[e] = min_d(best[e], s);
        }
    for (int e = 0; e < PEER_COUNT; e++) {
        engines[e]->close(h[e]);
        remove_db(file[e]);
    }
    settle();
    free(order);
    free(content);

    char row[96];
    snprintf(row, sizeof row, "%zu B get rate (%llu docs, every byte checked)", sz,
             (unsigned long long)nd);
    peer_row_t *pr = peer_add_row(row, "/s", (double)nd / best[0], (double)nd / best[1],
                                  (double)nd / best[2], PEER_LMDB);
    pr->goal_kind = GOAL_RATIO_MIN, pr->goal = 0.8;
    peer_set_note(pr, "StreamDb sdb_get (CRC-checked); SQLite SELECT data, %s; LMDB mdb_get",
                  sqlite_layout_name());
}

/* ---- Section size1k: file size of 1 KiB documents ----------------------- */

static void bench_size1k(void)
{
    uint64_t nd = opt.kib_docs;
    size_t sz = opt.kib_size;
    char file[PEER_COUNT][1100];
    double ratio[PEER_COUNT], disk_ratio[PEER_COUNT], raw = 0;

    if (!paths)
        make_paths();
    sqlite_layout(0);
    if (nd > opt.npaths)
        nd = opt.npaths;
    uint32_t *order = shuffled(nd);   /* the first nd paths of the set, in random order */
    for (uint64_t i = 0; i < nd; i++)
        raw += (double)sz + (double)strlen(paths[i]);
    load_t ld = { order, nd, sz, BATCH };
    for (int e = 0; e < PEER_COUNT; e++) {
        double c, s, d;
        db_file(file[e], sizeof file[e], e, "size1k");
        load_engine(e, file[e], &ld, 0, &c);
        file_sizes(file[e], &s, &d);
        void *h = engines[e]->open(file[e], 0, 0);
        check_content(e, h, order, nd, sz, 1000);
        engines[e]->close(h);
        remove_db(file[e]);
        ratio[e] = s / raw;
        disk_ratio[e] = d / raw;
        progress("size1k: %-8s %.1f MiB (on disk %.1f MiB), raw %.1f MiB: %.3fx",
                 engines[e]->name, s / MIB, d / MIB, raw / MIB, ratio[e]);
    }
    settle();
    free(order);

    char row[96];
    snprintf(row, sizeof row, "%llu x %zu B: file size (st_size) / raw bytes",
             (unsigned long long)nd, sz);
    peer_row_t *pr = peer_add_row(row, "x", ratio[0], ratio[1], ratio[2], -1);
    pr->goal_kind = GOAL_VALUE_MAX, pr->goal = 1.3, pr->goal_incl = 1;
    peer_set_note(pr, "raw = %llu x %zu B + path bytes = %.1f MiB; SQLite %s",
                  (unsigned long long)nd, sz, raw / MIB, sqlite_layout_name());
    snprintf(row, sizeof row, "%llu x %zu B: file size on disk / raw bytes",
             (unsigned long long)nd, sz);
    pr = peer_add_row(row, "x", disk_ratio[0], disk_ratio[1], disk_ratio[2], -1);
    pr->goal_kind = GOAL_VALUE_MAX, pr->goal = 1.3, pr->goal_incl = 1;
}

/* ---- Main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_peers [--quick] [--paths N] [--only small,get4k,size1k] [--reps N]\n"
            "                   [--sqlite-table rowid|without-rowid] [--dir DIR] [--data FILE]\n"
            "  --quick      100,000 paths and fewer repetitions (about a minute)\n"
            "  --paths N    path count of the small section (default 1000000; also\n"
            "               SDB_BENCH_PATHS)\n"
            "  --reps N     interleaved repetitions of each timed run (default 3, quick 2)\n"
            "  --sqlite-table rowid|without-rowid\n"
            "               SQLite's table layout in every section (default: WITHOUT ROWID\n"
            "               for the 16-byte rows, a rowid table for 1 KiB and 4 KiB rows)\n"
            "  --dir DIR    where the temporary directory is made (default build/ if it\n"
            "               exists, else /tmp; also SDB_BENCH_DIR)\n"
            "  --data FILE  gzipped path list (default " DEFAULT_DATA ";\n"
            "               also SDB_BENCH_DATA)\n");
    exit(1);
}

static uint64_t parse_count(const char *s, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K')
        v *= 1000, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1000000, end++;
    if (errno || end == s || *end || v == 0 || v > max)
        die("bad count '%s' (1..%llu)", s, (unsigned long long)max);
    return v;
}

static void set_defaults(void)
{
    opt.get_docs = 10000;
    opt.get_size = 4096;
    opt.kib_docs = 100000;
    opt.kib_size = 1024;
    if (opt.quick) {
        if (!opt.reps)
            opt.reps = 2;
        opt.durable_count = 1000;
        opt.lookups = 20000;
        opt.searches = 2000;
        opt.lat_rounds = 2;
        opt.open_reps = 2;
        if (!opt.npaths)
            opt.npaths = 100000;
    } else {
        if (!opt.reps)
            opt.reps = 3;
        opt.durable_count = 5000;
        opt.lookups = 200000;
        opt.searches = 20000;
        opt.lat_rounds = 3;
        opt.open_reps = 3;
        if (!opt.npaths)
            opt.npaths = 1000000;
    }
    if (opt.npaths < opt.kib_docs)
        opt.kib_docs = opt.npaths;
}

static void make_tmp_dir(void)
{
    const char *base = opt.dir_base;
    struct stat st;
    if (!base)
        base = stat("build", &st) == 0 && S_ISDIR(st.st_mode) ? "build" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/sdb-peers.XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        int e = errno;
        tmp_dir[0] = '\0';
        die("cannot create a temporary directory under %s: %s", base, strerror(e));
    }
    atexit(remove_tmp_dir);
    struct statfs fs;
    if (statfs(tmp_dir, &fs) == 0 && (unsigned long)fs.f_type == TMPFS_MAGIC_NUMBER)
        fprintf(stderr, "bench_peers: WARNING: %s is on tmpfs: durable writes do not reach "
                "a disk; use --dir on a real file system\n", tmp_dir);
}

int main(int argc, char **argv)
{
    const char *env;
    if (argc == 4 && strcmp(argv[1], "--rss-probe") == 0)
        return rss_probe(argv[2], argv[3]);
    if ((env = getenv("SDB_BENCH_QUICK")) && *env && strcmp(env, "0") != 0)
        opt.quick = 1;
    if ((env = getenv("SDB_BENCH_PATHS")) && *env)
        opt.npaths = parse_count(env, 50000000);
    opt.dir_base = getenv("SDB_BENCH_DIR");
    opt.data_file = getenv("SDB_BENCH_DATA");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            opt.quick = 1;
        else if (strcmp(argv[i], "--paths") == 0 && i + 1 < argc)
            opt.npaths = parse_count(argv[++i], 50000000);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            opt.reps = (int)parse_count(argv[++i], 100);
        else if (strcmp(argv[i], "--sqlite-table") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "rowid") == 0)
                sqlite_forced = 0;
            else if (strcmp(argv[i], "without-rowid") == 0)
                sqlite_forced = 1;
            else
                usage();
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            opt.only = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            opt.dir_base = argv[++i];
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            opt.data_file = argv[++i];
        else
            usage();
    }
    if (!opt.data_file || !*opt.data_file)
        opt.data_file = DEFAULT_DATA;
    set_defaults();
    make_tmp_dir();

    struct utsname un;
    time_t now = time(NULL);
    char date[32];
    int maj, min, pat;
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    uname(&un);
    mdb_version(&maj, &min, &pat);
    printf("StreamDb %s beside SQLite %s and LMDB %d.%d.%d%s: %s, %s %s, %ld CPUs, dir %s\n",
           SDB_VERSION_STRING, sqlite3_libversion(), maj, min, pat,
           opt.quick ? " (--quick)" : "", date, un.nodename, un.release,
           sysconf(_SC_NPROCESSORS_ONLN), tmp_dir);
    printf("Best of %d interleaved repetitions (loads), %d rounds (latencies); load average "
           "%.2f\n", opt.reps, opt.lat_rounds, load_avg());
    char sqlite_set[128];
    sqlite_layout(1);
    sqlite_settings(sqlite_set, sizeof sqlite_set);
    printf("SQLite: table (path TEXT PRIMARY KEY, data BLOB), %s for 16-byte rows, %s for "
           "1 KiB and 4 KiB rows;\n        %s (its defaults).\n"
           "LMDB: one file (MDB_NOSUBDIR), main DB keyed by path, every commit synced (its "
           "defaults).\nStreamDb: default config (durable); the loads commit one "
           "sdb_batch_commit per peer transaction.\n", sqlite_forced == 0 ? "rowid table" : "WITHOUT ROWID",
           sqlite_forced == 1 ? "WITHOUT ROWID" : "rowid table", sqlite_set);
    fflush(stdout);

    if (section_on("small")) {
        fprintf(stderr, "== small\n");
        bench_small();
    }
    if (section_on("get4k")) {
        fprintf(stderr, "== get4k\n");
        bench_get4k();
    }
    if (section_on("size1k")) {
        fprintf(stderr, "== size1k\n");
        bench_size1k();
    }
    peer_print_table();
    printf("load average at the end: %.2f (%ld CPUs)\n", load_avg(),
           sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
