/*
 * bench_engine.c -- throughput and latency benchmark of libstreamdb.
 *
 * The machine that runs this is shared and noisy, so no figure is printed
 * alone: each one stands next to a baseline measured in the same run, on the
 * same machine and in the same directory (plain write+fdatasync, zlib crc32,
 * memcpy, a sorted array searched with bsearch, ...), and their ratio is what
 * the targets of issue 2 are checked against.  Every measurement is repeated
 * and the best repetition is kept (the one least disturbed by neighbours);
 * docs/BENCHMARKS.md explains each figure.
 *
 * Sections (select with --only):
 *   write  sequential durable write of large documents (sdb_put, writer)
 *   read   read of the same documents, CRC verified and in quick mode
 *   puts   4 KiB durable puts, 1 thread vs 8 threads (group commit)
 *   paths  1,000,000 real paths: lookup, prefix search, listing, reopen, memory
 *   batch  bulk load of 16-byte documents in atomic batches of 10,000
 *          (sdb_batch_commit) vs single sdb_put, durable and lazy
 *
 * Usage: bench_engine [--quick] [--paths N] [--only LIST] [--dir DIR] [--data FILE]
 * Environment: SDB_BENCH_QUICK=1, SDB_BENCH_PATHS=N, SDB_BENCH_DIR=DIR,
 *              SDB_BENCH_DATA=FILE (command-line options win).
 * Exit status: 0 when every engine call succeeded, whether or not the targets
 * were met (the table is a report); 1 on an engine error, on wrong data
 * returned by the engine, or when the benchmark cannot be set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "streamdb.h"
#include "engine/backend.h"    /* checkpoint hooks: sdb_test_checkpoint_soon() and friends */

#define MB 1e6                      /* throughput is in MB/s = 10^6 bytes per second */
#define KIB 1024u
#define MIB (1024u * 1024u)
#define TMPFS_MAGIC_NUMBER 0x01021994
#define DEFAULT_DATA "tests/data/debian-paths.txt.gz"

/* ---- Options ------------------------------------------------------------ */

typedef struct {
    int quick;
    const char *only;          /* comma-separated sections, NULL = all */
    const char *dir_base;      /* where the temporary directory is made */
    const char *data_file;     /* gzipped path list */
    unsigned doc_count;        /* large documents written and read */
    size_t doc_size;
    size_t write_chunk;        /* streamed writer chunk */
    size_t read_buf;           /* streamed reader buffer */
    int write_reps;            /* repetitions of each write measurement */
    int read_passes;           /* passes over all documents per read measurement */
    double put_secs;           /* duration of one 4 KiB put run */
    int put_rounds;
    unsigned put_threads;
    uint64_t npaths;
    uint64_t lookups;          /* per latency round */
    uint64_t searches;         /* per latency round */
    int lat_rounds;
    int reopen_rounds;
    int list_reps;
    uint64_t batch_docs;       /* documents of the batch load */
} bench_opts_t;

static bench_opts_t opt;

#include "bench_report.h"

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

/* Reports an engine error (with the table so far) and exits with status 1. */
static void die_api(const char *what, int rc)
{
    fprintf(stderr, "bench_engine: %s failed: %s (%d)\n", what, sdb_strerror(rc), rc);
    print_table();
    exit(1);
}

/* Reports a setup failure or wrong data and exits with status 1. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_engine: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    print_table();
    exit(1);
}

#define API(call, what) do { int rc_ = (call); if (rc_ != SDB_OK) die_api((what), rc_); } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* Builds tmp_dir/name into out. */
static void tmp_file(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

/* Removes a database file (a database is one file: docs/FORMAT.md). */
static void remove_db(const char *file)
{
    unlink(file);
}

/* Flushes the file system of the temporary directory (untimed) so that the
 * journal commit of a previous run, with the discards of the files it
 * deleted, is not charged to the next timed run. */
static void settle(void)
{
    int fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

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

static void fill_random(uint8_t *buf, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x = rng_next();
        memcpy(buf + i, &x, 8);
    }
    for (; i < len; i++)
        buf[i] = (uint8_t)rng_next();
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

static int section_on(const char *name) { return bench_section_on(opt.only, name); }

static void write_all(int fd, const void *buf, size_t len, const char *what)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s: write: %s", what, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Resident memory: total (statm, includes mapped file pages) and anonymous
 * (RssAnon from /proc/self/status), in bytes. */
static void read_rss(uint64_t *total, uint64_t *anon)
{
    unsigned long size = 0, resident = 0;
    *total = *anon = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            *total = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
                *anon = (uint64_t)kb * 1024u;
        fclose(f);
    }
}

static uint64_t file_size(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The 1-minute load average (how busy the shared machine was), or -1. */
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

static void sleep_secs(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- 1 and 2: large documents ------------------------------------------ */

static uint8_t **docs;          /* opt.doc_count buffers of opt.doc_size random bytes */
static uint32_t *doc_crc;
static char read_db[1100];      /* the database the read section uses */

static void doc_path(char *out, size_t cap, unsigned i)
{
    snprintf(out, cap, "/bench/seq/doc%02u", i);
}

static void make_docs(void)
{
    if (docs)
        return;
    docs = xmalloc(opt.doc_count * sizeof *docs);
    doc_crc = xmalloc(opt.doc_count * sizeof *doc_crc);
    for (unsigned i = 0; i < opt.doc_count; i++) {
        docs[i] = xmalloc(opt.doc_size);
        fill_random(docs[i], opt.doc_size);
        doc_crc[i] = (uint32_t)crc32(0L, docs[i], (uInt)opt.doc_size);
    }
}

static void free_docs(void)
{
    for (unsigned i = 0; docs && i < opt.doc_count; i++)
        free(docs[i]);
    free(docs);
    free(doc_crc);
    docs = NULL;
    doc_crc = NULL;
}

/* Plain write()+fdatasync() of every document (one sync per document, as the
 * engine acknowledges each document durably) to a fresh file.  Seconds. */
static double write_baseline(const char *file)
{
    unlink(file);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", file, strerror(errno));
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++) {
        write_all(fd, docs[i], opt.doc_size, file);
        if (fdatasync(fd) != 0)
            die("fdatasync %s: %s", file, strerror(errno));
    }
    uint64_t t1 = now_ns();
    close(fd);
    unlink(file);
    settle();
    return (double)(t1 - t0) / 1e9;
}

static void check_info(const sdb_docinfo_t *info, unsigned i, const char *what)
{
    if (info->size != opt.doc_size || info->crc32 != doc_crc[i])
        die("%s: doc %u: engine reports size %llu crc %08x, wrote %zu bytes crc %08x", what, i,
            (unsigned long long)info->size, (unsigned)info->crc32, opt.doc_size,
            (unsigned)doc_crc[i]);
}

/* Writes every document to a fresh durable database with sdb_put (streamed
 * = 0) or with a writer in opt.write_chunk pieces (streamed = 1).  The timed
 * part is the writes only (not open or close).  Keeps the file when keep. */
static double write_engine(const char *file, int streamed, int keep)
{
    sdb_config_t cfg;
    sdb_t *db;
    sdb_docinfo_t info;
    char path[64];

    remove_db(file);
    sdb_config_default(&cfg);
    cfg.durable = 1;
    API(sdb_open(file, &cfg, &db), "sdb_open (write)");
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++) {
        doc_path(path, sizeof path, i);
        if (!streamed) {
            API(sdb_put(db, path, docs[i], opt.doc_size, &info), "sdb_put (16 MiB)");
        } else {
            sdb_writer_t *w;
            API(sdb_writer_open(db, path, UINT64_MAX, &w), "sdb_writer_open");
            for (size_t off = 0; off < opt.doc_size; off += opt.write_chunk) {
                size_t n = opt.doc_size - off < opt.write_chunk ? opt.doc_size - off
                                                                : opt.write_chunk;
                int rc = sdb_writer_write(w, docs[i] + off, n);
                if (rc != SDB_OK) {
                    sdb_writer_abort(w);
                    die_api("sdb_writer_write", rc);
                }
            }
            API(sdb_writer_commit(w, &info), "sdb_writer_commit");
        }
        check_info(&info, i, streamed ? "writer" : "sdb_put");
    }
    uint64_t t1 = now_ns();
    API(sdb_close(db), "sdb_close (write)");
    if (!keep)
        remove_db(file);
    settle();
    return (double)(t1 - t0) / 1e9;
}

static void bench_write(void)
{
    char base_file[1100], put_file[1100], wr_file[1100];
    double best_base = INFINITY, best_put = INFINITY, best_wr = INFINITY;
    double bytes = (double)opt.doc_count * (double)opt.doc_size;

    make_docs();
    tmp_file(base_file, sizeof base_file, "baseline.dat");
    tmp_file(put_file, sizeof put_file, "seq-put.sdb");
    tmp_file(wr_file, sizeof wr_file, "seq-writer.sdb");
    for (int r = 0; r < opt.write_reps; r++) {
        int last = r == opt.write_reps - 1;
        double b = write_baseline(base_file);
        double p = write_engine(put_file, 0, last);
        double w = write_engine(wr_file, 1, 0);
        progress("write rep %d: baseline %.1f MB/s, sdb_put %.1f MB/s, writer %.1f MB/s", r + 1,
                 bytes / b / MB, bytes / p / MB, bytes / w / MB);
        best_base = min_d(best_base, b);
        best_put = min_d(best_put, p);
        best_wr = min_d(best_wr, w);
    }
    snprintf(read_db, sizeof read_db, "%s", put_file);

    char metric[128];
    snprintf(metric, sizeof metric, "seq write %ux%zu MiB durable, sdb_put", opt.doc_count,
             opt.doc_size / MIB);
    row_t *r = add_row(metric, "MB/s", bytes / best_put / MB, bytes / best_base / MB, RATIO_RATE,
                       "write+fdatasync");
    r->ratio_min = 0.7;
    r->value_min = 5;
    snprintf(metric, sizeof metric, "seq write %ux%zu MiB durable, writer %zu KiB", opt.doc_count,
             opt.doc_size / MIB, opt.write_chunk / KIB);
    r = add_row(metric, "MB/s", bytes / best_wr / MB, bytes / best_base / MB, RATIO_RATE,
                "write+fdatasync");
    r->ratio_min = 0.7;
    r->value_min = 5;
}

/* Reads every document with sdb_get; verifies the bytes when verify. Seconds. */
static double read_get_pass(sdb_t *db, int verify)
{
    char path[64];
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++) {
        void *data;
        size_t len;
        sdb_docinfo_t info;
        doc_path(path, sizeof path, i);
        API(sdb_get(db, path, &data, &len, &info), "sdb_get (16 MiB)");
        if (verify && (len != opt.doc_size || memcmp(data, docs[i], len) != 0))
            die("sdb_get returned wrong bytes for %s", path);
        free(data);
    }
    return (double)(now_ns() - t0) / 1e9;
}

/* Reads every document with a streamed reader into buf (opt.read_buf bytes). */
static double read_reader_pass(sdb_t *db, uint8_t *buf, int verify)
{
    char path[64];
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++) {
        sdb_reader_t *rd;
        size_t total = 0, n;
        doc_path(path, sizeof path, i);
        API(sdb_reader_open(db, path, &rd, NULL), "sdb_reader_open");
        for (;;) {
            int rc = sdb_reader_read(rd, buf, opt.read_buf, &n);
            if (rc != SDB_OK) {
                sdb_reader_close(rd);
                die_api("sdb_reader_read", rc);
            }
            if (n == 0)
                break;
            if (verify && (total + n > opt.doc_size || memcmp(buf, docs[i] + total, n) != 0)) {
                sdb_reader_close(rd);
                die("sdb_reader_read returned wrong bytes for %s at offset %zu", path, total);
            }
            total += n;
        }
        sdb_reader_close(rd);
        if (total != opt.doc_size)
            die("sdb_reader_read returned %zu bytes of %s, expected %zu", total, path,
                opt.doc_size);
    }
    return (double)(now_ns() - t0) / 1e9;
}

static volatile uint32_t sink32;
static volatile uint8_t sink8;

static double crc_pass(void)
{
    uint32_t c = 0;
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++)
        c ^= (uint32_t)crc32(0L, docs[i], (uInt)opt.doc_size);
    double s = (double)(now_ns() - t0) / 1e9;
    sink32 = c;
    return s;
}

static double memcpy_pass(uint8_t *dst)
{
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < opt.doc_count; i++) {
        memcpy(dst, docs[i], opt.doc_size);
        sink8 = dst[opt.doc_size - 1];
    }
    return (double)(now_ns() - t0) / 1e9;
}

static void bench_read(void)
{
    sdb_t *db;
    double bytes = (double)opt.doc_count * (double)opt.doc_size;
    double b_crc = INFINITY, b_cpy = INFINITY, get = INFINITY, rdr = INFINITY;
    double qget = INFINITY, qrdr = INFINITY;

    make_docs();
    if (!read_db[0]) {   /* the write section did not run: write the documents now */
        tmp_file(read_db, sizeof read_db, "seq-put.sdb");
        write_engine(read_db, 0, 1);
    }
    uint8_t *buf = xmalloc(opt.read_buf);
    uint8_t *dst = xmalloc(opt.doc_size);
    memset(dst, 1, opt.doc_size);   /* fault the pages in before timing */
    memset(buf, 1, opt.read_buf);

    API(sdb_open(read_db, NULL, &db), "sdb_open (read)");
    /* Untimed pass: verify every byte (checked and quick mode), warm the cache. */
    read_get_pass(db, 1);
    read_reader_pass(db, buf, 1);
    sdb_set_quick_mode(db, 1);
    read_get_pass(db, 1);
    read_reader_pass(db, buf, 1);
    sdb_set_quick_mode(db, 0);

    for (int p = 0; p < opt.read_passes; p++) {
        b_crc = min_d(b_crc, crc_pass());
        get = min_d(get, read_get_pass(db, 0));
        rdr = min_d(rdr, read_reader_pass(db, buf, 0));
        b_cpy = min_d(b_cpy, memcpy_pass(dst));
        sdb_set_quick_mode(db, 1);
        qget = min_d(qget, read_get_pass(db, 0));
        qrdr = min_d(qrdr, read_reader_pass(db, buf, 0));
        sdb_set_quick_mode(db, 0);
    }
    progress("read: crc32 %.0f MB/s, get %.0f, reader %.0f; memcpy %.0f, quick get %.0f, "
             "quick reader %.0f", bytes / b_crc / MB, bytes / get / MB, bytes / rdr / MB,
             bytes / b_cpy / MB, bytes / qget / MB, bytes / qrdr / MB);
    API(sdb_close(db), "sdb_close (read)");
    free(buf);
    free(dst);

    char metric[128];
    size_t dm = opt.doc_size / MIB;
    snprintf(metric, sizeof metric, "read %zu MiB docs, CRC checked, sdb_get", dm);
    row_t *r = add_row(metric, "MB/s", bytes / get / MB, bytes / b_crc / MB, RATIO_RATE,
                       "zlib crc32 in RAM");
    r->ratio_min = 0.7;
    r->value_min = 10;
    snprintf(metric, sizeof metric, "read %zu MiB docs, CRC checked, reader %zu KiB", dm,
             opt.read_buf / KIB);
    r = add_row(metric, "MB/s", bytes / rdr / MB, bytes / b_crc / MB, RATIO_RATE,
                "zlib crc32 in RAM");
    r->ratio_min = 0.7;
    r->value_min = 10;
    snprintf(metric, sizeof metric, "read %zu MiB docs, quick mode, sdb_get", dm);
    r = add_row(metric, "MB/s", bytes / qget / MB, bytes / b_cpy / MB, RATIO_RATE, "memcpy");
    r->ratio_min = 0.5;
    r->value_min = 100;
    snprintf(metric, sizeof metric, "read %zu MiB docs, quick mode, reader %zu KiB", dm,
             opt.read_buf / KIB);
    r = add_row(metric, "MB/s", bytes / qrdr / MB, bytes / b_cpy / MB, RATIO_RATE, "memcpy");
    r->ratio_min = 0.5;
    r->value_min = 100;
}

/* ---- 3: small durable puts, 1 thread vs N threads ----------------------- */

typedef struct {
    sdb_t *db;
    unsigned id;
    const uint8_t *data;
    pthread_barrier_t *start;
    uint64_t ops;
    int rc;
} put_worker_t;

static atomic_int put_stop;

static void *put_worker(void *arg)
{
    put_worker_t *w = arg;
    char path[64];
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(&put_stop, memory_order_relaxed)) {
        snprintf(path, sizeof path, "/bench/put/t%u/%010llu", w->id, (unsigned long long)w->ops);
        int rc = sdb_put(w->db, path, w->data, 4096, NULL);
        if (rc != SDB_OK) {
            w->rc = rc;
            break;
        }
        w->ops++;
    }
    return NULL;
}

/* Runs nthreads threads doing 4 KiB durable puts to their own paths in a
 * fresh database for opt.put_secs.  Returns acknowledged puts per second. */
static double put_run(const char *file, unsigned nthreads, const uint8_t *data)
{
    sdb_config_t cfg;
    sdb_t *db;
    pthread_t tid[64];
    put_worker_t w[64];
    pthread_barrier_t start;

    remove_db(file);
    sdb_config_default(&cfg);
    cfg.durable = 1;
    API(sdb_open(file, &cfg, &db), "sdb_open (puts)");
    atomic_store(&put_stop, 0);
    pthread_barrier_init(&start, NULL, nthreads + 1);
    for (unsigned i = 0; i < nthreads; i++) {
        w[i] = (put_worker_t){ db, i, data, &start, 0, 0 };
        if (pthread_create(&tid[i], NULL, put_worker, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    sleep_secs(opt.put_secs);
    atomic_store(&put_stop, 1);
    uint64_t ops = 0;
    int rc = SDB_OK;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        ops += w[i].ops;
        if (w[i].rc != SDB_OK)
            rc = w[i].rc;
    }
    uint64_t t1 = now_ns();
    pthread_barrier_destroy(&start);
    if (rc != SDB_OK)
        die_api("sdb_put (4 KiB)", rc);
    API(sdb_close(db), "sdb_close (puts)");
    remove_db(file);
    settle();
    return (double)ops / ((double)(t1 - t0) / 1e9);
}

/* One thread appending `pages` 4 KiB pages with one write, then fdatasync,
 * to a fresh file for opt.put_secs.  Returns syncs per second. */
static double put_baseline(const char *file, const uint8_t *data, unsigned pages)
{
    unlink(file);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", file, strerror(errno));
    uint64_t ops = 0, t0 = now_ns(), end = t0 + (uint64_t)(opt.put_secs * 1e9), t1;
    do {
        write_all(fd, data, (size_t)pages * 4096, file);
        if (fdatasync(fd) != 0)
            die("fdatasync %s: %s", file, strerror(errno));
        ops++;
        t1 = now_ns();
    } while (t1 < end);
    close(fd);
    unlink(file);
    settle();
    return (double)ops / ((double)(t1 - t0) / 1e9);
}

static void bench_puts(void)
{
    unsigned nt = opt.put_threads;
    /* What the disk alone allows for a group of nt puts: a 4096-byte
       document takes two 4 KiB pages (4096 bytes and a 48-byte page header
       do not fit in one), and the group adds one journal page.  One write
       of those pages and one fdatasync per nt puts is the ceiling any group
       commit can reach here; it is measured in the same run. */
    unsigned group_pages = 2 * nt + 1;
    uint8_t *data = xmalloc((size_t)group_pages * 4096);
    char file[1100], base_file[1100];
    double best_base = 0, best1 = 0, bestn = 0, best_ceil = 0;

    fill_random(data, (size_t)group_pages * 4096);
    tmp_file(file, sizeof file, "puts.sdb");
    tmp_file(base_file, sizeof base_file, "puts-baseline.dat");
    for (int r = 0; r < opt.put_rounds; r++) {
        double b = put_baseline(base_file, data, 1);
        double ceil = put_baseline(base_file, data, group_pages) * nt;
        double one = put_run(file, 1, data);
        double many = put_run(file, nt, data);
        progress("puts round %d: write+fdatasync %.0f/s, disk ceiling for %u puts per sync %.0f/s, "
                 "1 thread %.0f/s, %u threads %.0f/s", r + 1, b, nt, ceil, one, nt, many);
        best_base = max_d(best_base, b);
        best_ceil = max_d(best_ceil, ceil);
        best1 = max_d(best1, one);
        bestn = max_d(bestn, many);
    }
    free(data);
    add_row("4 KiB durable put, 1 thread", "ops/s", best1, best_base, RATIO_RATE,
            "4K write+fdatasync");
    char metric[128];
    snprintf(metric, sizeof metric, "disk ceiling: %u x 4 KiB puts per fdatasync", nt);
    add_row(metric, "ops/s", best_ceil, best1, RATIO_RATE, "1 thread");
    snprintf(metric, sizeof metric, "4 KiB durable put, %u threads (group commit)", nt);
    row_t *r = add_row(metric, "ops/s", bestn, best1, RATIO_RATE, "1 thread");
    r->ratio_min = 4;
    snprintf(metric, sizeof metric, "4 KiB durable put, %u threads, vs the disk ceiling", nt);
    add_row(metric, "ops/s", bestn, best_ceil, RATIO_RATE, "disk ceiling");
}

/* ---- Atomic batches: bulk load ---------------------------------------- */

#define BATCH_SIZE 10000

static void batch_doc(uint64_t i, char *path, size_t cap, uint8_t d[16])
{
    snprintf(path, cap, "/load/%03llu/%07llu", (unsigned long long)(i % 997),
             (unsigned long long)i);
    for (int k = 0; k < 16; k++)
        d[k] = (uint8_t)(i >> (k % 8 * 8)) ^ (uint8_t)k;
}

/* Loads opt.batch_docs 16-byte documents in batches of BATCH_SIZE into a
 * new database (durable as cfg says); returns documents per second. */
static double batch_load(const char *file, int durable)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.durable = durable;
    remove_db(file);
    sdb_t *db;
    int rc = sdb_open(file, &cfg, &db);
    if (rc)
        die_api("sdb_open", rc);
    sdb_batch_t *b;
    if ((rc = sdb_batch_new(&b)))
        die_api("sdb_batch_new", rc);
    char path[64];
    uint8_t d[16];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < opt.batch_docs;) {
        sdb_batch_clear(b);
        for (unsigned k = 0; k < BATCH_SIZE && i < opt.batch_docs; k++, i++) {
            batch_doc(i, path, sizeof path, d);
            if ((rc = sdb_batch_put(b, path, d, sizeof d, UINT64_MAX)))
                die_api("sdb_batch_put", rc);
        }
        size_t failed;
        if ((rc = sdb_batch_commit(db, b, NULL, &failed)))
            die_api("sdb_batch_commit", rc);
    }
    if ((rc = sdb_flush(db)))
        die_api("sdb_flush", rc);
    double secs = (double)(now_ns() - t0) / 1e9;
    sdb_batch_free(b);
    /* every document is there, with its bytes (a sample) */
    sdb_stats_t st;
    if ((rc = sdb_stats(db, &st)))
        die_api("sdb_stats", rc);
    if (st.paths != opt.batch_docs)
        die("batch load: %llu paths after loading %llu documents",
            (unsigned long long)st.paths, (unsigned long long)opt.batch_docs);
    for (uint64_t i = 0; i < opt.batch_docs; i += opt.batch_docs / 97 + 1) {
        void *got;
        size_t len;
        batch_doc(i, path, sizeof path, d);
        if ((rc = sdb_get(db, path, &got, &len, NULL)))
            die_api("sdb_get", rc);
        if (len != sizeof d || memcmp(got, d, sizeof d) != 0)
            die("batch load: %s has the wrong bytes", path);
        free(got);
    }
    if ((rc = sdb_close(db)))
        die_api("sdb_close", rc);
    remove_db(file);
    settle();
    return (double)opt.batch_docs / secs;
}

/* Single sdb_put of the same documents, one commit each, for put_secs (or
 * all of them); returns documents per second. */
static double single_load(const char *file, int durable)
{
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.durable = durable;
    remove_db(file);
    sdb_t *db;
    int rc = sdb_open(file, &cfg, &db);
    if (rc)
        die_api("sdb_open", rc);
    char path[64];
    uint8_t d[16];
    uint64_t n = 0, t0 = now_ns(), end = t0 + (uint64_t)(opt.put_secs * 2e9), t1;
    do {
        batch_doc(n, path, sizeof path, d);
        if ((rc = sdb_put(db, path, d, sizeof d, NULL)))
            die_api("sdb_put", rc);
        n++;
        t1 = now_ns();
    } while (t1 < end && n < opt.batch_docs);
    if ((rc = sdb_flush(db)))
        die_api("sdb_flush", rc);
    t1 = now_ns();
    if ((rc = sdb_close(db)))
        die_api("sdb_close", rc);
    remove_db(file);
    settle();
    return (double)n / ((double)(t1 - t0) / 1e9);
}

/* The peers (LMDB and SQLite, 10,000 inserts per transaction) are
 * measured beside StreamDb's batches by tests/bench/bench_peers.c. */
static void bench_batch(void)
{
    char file[1100];
    tmp_file(file, sizeof file, "batch.sdb");
    double batch_d = batch_load(file, 1);
    double single_lazy = single_load(file, 0);
    double single_d = single_load(file, 1);
    double batch_l = batch_load(file, 0);
    progress("batch: %llu docs in batches of %d: durable %.0f/s, lazy %.0f/s; single puts: "
             "lazy %.0f/s, durable %.0f/s", (unsigned long long)opt.batch_docs, BATCH_SIZE,
             batch_d, batch_l, single_lazy, single_d);
    char metric[128];
    snprintf(metric, sizeof metric, "bulk load %lluk x 16 B, batches of 10k, durable",
             (unsigned long long)(opt.batch_docs / 1000));
    add_row(metric, "docs/s", batch_d, single_lazy, RATIO_RATE, "single sdb_put, lazy");
    snprintf(metric, sizeof metric, "bulk load %lluk x 16 B, batches of 10k, durable",
             (unsigned long long)(opt.batch_docs / 1000));
    add_row(metric, "docs/s", batch_d, single_d, RATIO_RATE, "single sdb_put, durable");
    snprintf(metric, sizeof metric, "bulk load %lluk x 16 B, batches of 10k, lazy",
             (unsigned long long)(opt.batch_docs / 1000));
    add_row(metric, "docs/s", batch_l, single_lazy, RATIO_RATE, "single sdb_put, lazy");
}

/* ---- 4: a million paths ------------------------------------------------- */

static char **base_paths;      /* the lines of the data file */
static size_t nbase;
static char *path_arena;
static char **paths;           /* opt.npaths paths, in generation order */
static char **sorted;          /* the same pointers in byte order */

static void load_base_paths(void)
{
    gzFile gz = gzopen(opt.data_file, "rb");
    if (!gz)
        die("cannot open the path list %s (run from the repository root, or set "
            "SDB_BENCH_DATA / --data)", opt.data_file);
    size_t cap = 1 << 17;
    char line[SDB_MAX_PATH + 2];
    base_paths = xmalloc(cap * sizeof *base_paths);
    while (gzgets(gz, line, sizeof line)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0)
            continue;
        if (nbase == cap) {
            cap *= 2;
            base_paths = realloc(base_paths, cap * sizeof *base_paths);
            if (!base_paths)
                die("out of memory");
        }
        base_paths[nbase] = xmalloc(n + 1);
        memcpy(base_paths[nbase++], line, n + 1);
    }
    gzclose(gz);
    if (nbase == 0)
        die("the path list %s is empty", opt.data_file);
}

/* Builds opt.npaths distinct paths: the list repeated under /host0, /host1,
 * ...; a host that gets fewer paths than the list holds takes an evenly spread
 * sample of it, so that every directory stays represented. */
static unsigned make_paths(double *key_bytes)
{
    uint64_t n = opt.npaths;
    unsigned hosts = (unsigned)((n + nbase - 1) / nbase);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = i / nbase, j = i % nbase;
        uint64_t c = n - h * nbase < nbase ? n - h * nbase : nbase;
        total += strlen(base_paths[j * nbase / c]) + 16;
    }
    path_arena = xmalloc(total);
    paths = xmalloc(n * sizeof *paths);
    sorted = xmalloc(n * sizeof *sorted);
    size_t off = 0;
    double kb = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = i / nbase, j = i % nbase;
        uint64_t c = n - h * nbase < nbase ? n - h * nbase : nbase;
        const char *b = base_paths[j * nbase / c];
        int len = snprintf(path_arena + off, total - off, "/host%u%s%s", (unsigned)h,
                           b[0] == '/' ? "" : "/", b);
        paths[i] = sorted[i] = path_arena + off;
        off += (size_t)len + 1;
        kb += len;
    }
    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            die("duplicate path in the generated set: %s", sorted[i]);
    *key_bytes = kb / (double)n;
    return hosts;
}

/* First index in sorted[] whose path is >= key. */
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

static int starts_with(const char *s, const char *prefix, size_t plen)
{
    return strncmp(s, prefix, plen) == 0;
}

/* Percentiles of n latencies (sorted in place), in microseconds. */
static void percentiles(uint64_t *lat, size_t n, double *p50, double *p99)
{
    qsort(lat, n, sizeof *lat, cmp_u64);
    *p50 = (double)lat[n / 2] / 1e3;
    *p99 = (double)lat[(n * 99) / 100] / 1e3;
}

typedef struct {
    size_t count;
    uint64_t sum;
    /* verification: the expected results, or NULL */
    char **expect;
    size_t nexpect;
    const char *where;
    int bad;
} collect_t;

static int collect_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    collect_t *c = arg;
    if (c->expect) {
        if (c->count >= c->nexpect || strcmp(path, c->expect[c->count]) != 0) {
            if (!c->bad)
                fprintf(stderr, "bench_engine: %s: result %zu is '%s', expected '%s'\n",
                        c->where, c->count, path,
                        c->count < c->nexpect ? c->expect[c->count] : "(end)");
            c->bad = 1;
        }
        /* a rolled-up prefix (ending in '/') comes with info == NULL */
        size_t n = strlen(path);
        if ((info == NULL) != (n > 0 && path[n - 1] == '/')) {
            if (!c->bad)
                fprintf(stderr, "bench_engine: %s: '%s' has info %s\n", c->where, path,
                        info ? "set (expected a rolled-up prefix)" : "NULL");
            c->bad = 1;
        }
    }
    c->count++;
    c->sum += (unsigned char)path[0] + (info ? info->size + info->version : 0);
    return 0;
}

/* The baseline listing: a scan of sorted[] from lower_bound(prefix) that
 * rolls paths up at the first delimiter after the prefix, as an ordered index
 * with sorted leaves does.  Stores the results in out (when not NULL) and
 * returns their count. */
static size_t list_baseline(const char *prefix, char delim, char **out, size_t cap,
                            char *scratch)
{
    size_t plen = strlen(prefix), count = 0, rl = 0, i = lower_bound(prefix);
    static sdb_docinfo_t dummy;
    collect_t c = { 0, 0, NULL, 0, NULL, 0 };
    for (; i < opt.npaths && starts_with(sorted[i], prefix, plen); i++) {
        if (rl && strncmp(sorted[i], scratch, rl) == 0)
            continue;   /* inside the range rolled up last */
        const char *d = strchr(sorted[i] + plen, delim);
        const char *emit = sorted[i];
        rl = 0;
        if (d) {
            rl = (size_t)(d - sorted[i]) + 1;
            memcpy(scratch, sorted[i], rl);
            scratch[rl] = '\0';
            emit = scratch;
        }
        collect_cb(&c, emit, d ? NULL : &dummy);
        if (out && count < cap)
            out[count] = strdup(emit);
        count++;
    }
    sink32 = (uint32_t)c.sum;
    return count;
}

static char paths_tag[32];      /* "1M", "200k", ...: prefixes the metric names */

/* Adds a row of the paths section, its metric named "<tag> paths: <what>". */
static row_t *add_paths_row(const char *what, const char *unit, double value, double baseline,
                            ratio_kind_t kind, const char *base_name)
{
    char metric[128];
    snprintf(metric, sizeof metric, "%s paths: %s", paths_tag, what);
    return add_row(metric, unit, value, baseline, kind, base_name);
}

/* Puts an empty document at every path, in random order, then flushes.
 * Adds the fill rate and the memory rows. */
static void paths_fill(sdb_t *db, const char *file, double key_bytes)
{
    uint64_t n = opt.npaths, rss0, anon0, rss1, anon1;
    sdb_stats_t st;

    /* Insertion order: shuffled, as files arrive in practice. */
    uint32_t *order = xmalloc(n * sizeof *order);
    for (uint64_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = rng_below(i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    read_rss(&rss0, &anon0);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        API(sdb_put(db, paths[order[i]], NULL, 0, NULL), "sdb_put (empty document)");
        if ((i + 1) % 250000 == 0)
            progress("filled %llu paths", (unsigned long long)(i + 1));
    }
    API(sdb_flush(db), "sdb_flush");
    double fill_s = (double)(now_ns() - t0) / 1e9;
    read_rss(&rss1, &anon1);
    free(order);
    API(sdb_stats(db, &st), "sdb_stats");
    if (st.paths != n)
        die("sdb_stats reports %llu paths after %llu puts", (unsigned long long)st.paths,
            (unsigned long long)n);
    progress("fill: %.2f s (%.0f puts/s), RSS +%.1f MB (anon +%.1f MB), file %.1f MB", fill_s,
             (double)n / fill_s, (double)(rss1 - rss0) / MB, (double)(anon1 - anon0) / MB,
             (double)file_size(file) / MB);

    add_paths_row("fill, empty docs, durable=0", "ops/s", (double)n / fill_s, 0, RATIO_NONE,
                  NULL);
    add_paths_row("memory/path (RssAnon delta)", "B/path",
                  (double)(anon1 > anon0 ? anon1 - anon0 : 0) / (double)n, key_bytes,
                  RATIO_SIZE, "mean path length");
    add_paths_row("memory/path (statm RSS delta)", "B/path",
                  (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)n, key_bytes, RATIO_SIZE,
                  "mean path length");
}

/* Times opt.lookups random exact lookups per round, each one on its own,
 * against a binary search of sorted[] with the same keys. */
static void paths_lookups(sdb_t *db)
{
    uint64_t n = opt.npaths, nl = opt.lookups;
    const char **keys = xmalloc(nl * sizeof *keys);
    uint64_t *lat = xmalloc(nl * sizeof *lat);
    double l50 = INFINITY, l99 = INFINITY, b50 = INFINITY, b99 = INFINITY, p50, p99;
    sdb_docinfo_t info;

    for (uint64_t i = 0; i < nl; i++)
        keys[i] = paths[rng_below(n)];
    for (int r = 0; r < opt.lat_rounds; r++) {
        for (uint64_t i = 0; i < nl; i++) {
            uint64_t a = now_ns();
            int rc = sdb_lookup(db, keys[i], &info);
            lat[i] = now_ns() - a;
            if (rc != SDB_OK)
                die_api("sdb_lookup", rc);
        }
        percentiles(lat, nl, &p50, &p99);
        l50 = min_d(l50, p50);
        l99 = min_d(l99, p99);
        for (uint64_t i = 0; i < nl; i++) {
            uint64_t a = now_ns();
            size_t k = lower_bound(keys[i]);
            lat[i] = now_ns() - a;
            if (k >= n || strcmp(sorted[k], keys[i]) != 0)
                die("baseline lookup failed");
        }
        percentiles(lat, nl, &p50, &p99);
        b50 = min_d(b50, p50);
        b99 = min_d(b99, p99);
    }
    progress("lookup: p50 %.2f us p99 %.2f us (bsearch p50 %.2f p99 %.2f)", l50, l99, b50, b99);
    free(keys);
    free(lat);
    add_paths_row("exact lookup p50", "us", l50, b50, RATIO_TIME, "bsearch sorted[]");
    add_paths_row("exact lookup p99", "us", l99, b99, RATIO_TIME, "bsearch sorted[]")
        ->value_max = 5;
}

/* Picks up to opt.searches random directory prefixes (a path cut after one of
 * its '/') that have at least 100 paths below them; stores them in *out and
 * their first index in sorted[] in *first.  Returns their count. */
static uint64_t pick_prefixes(char ***out, size_t **first)
{
    uint64_t n = opt.npaths, want = opt.searches, got = 0, tries = 0;
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
        if (lb + 100 > n || !starts_with(sorted[lb + 99], pre, plen)) {
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

/* Times 100-result prefix searches (after checking every result once)
 * against the same walk over sorted[]. */
static void paths_searches(sdb_t *db)
{
    char **prefixes;
    size_t *first;
    uint64_t ns = pick_prefixes(&prefixes, &first);
    uint64_t *lat = xmalloc(ns * sizeof *lat);
    sdb_search_opts_t so = { NULL, 100, 0 };
    static sdb_docinfo_t dummy;
    double s50 = INFINITY, s99 = INFINITY, b50 = INFINITY, b99 = INFINITY, p50, p99;

    for (uint64_t i = 0; i < ns; i++) {   /* exactly the expected paths, in order */
        collect_t c = { 0, 0, &sorted[first[i]], 100, "sdb_search (limit 100)", 0 };
        API(sdb_search(db, prefixes[i], &so, collect_cb, &c), "sdb_search");
        if (c.bad || c.count != 100)
            die("sdb_search('%s', limit 100) returned %zu results%s", prefixes[i], c.count,
                c.bad ? ", not the expected ones" : "");
    }
    for (int r = 0; r < opt.lat_rounds; r++) {
        for (uint64_t i = 0; i < ns; i++) {
            collect_t c = { 0, 0, NULL, 0, NULL, 0 };
            uint64_t a = now_ns();
            int rc = sdb_search(db, prefixes[i], &so, collect_cb, &c);
            lat[i] = now_ns() - a;
            if (rc != SDB_OK)
                die_api("sdb_search", rc);
            sink32 = (uint32_t)c.sum;
        }
        percentiles(lat, ns, &p50, &p99);
        s50 = min_d(s50, p50);
        s99 = min_d(s99, p99);
        for (uint64_t i = 0; i < ns; i++) {
            collect_t c = { 0, 0, NULL, 0, NULL, 0 };
            uint64_t a = now_ns();
            size_t plen = strlen(prefixes[i]), k = lower_bound(prefixes[i]);
            for (size_t m = 0; m < 100 && k + m < opt.npaths &&
                               starts_with(sorted[k + m], prefixes[i], plen); m++)
                collect_cb(&c, sorted[k + m], &dummy);
            lat[i] = now_ns() - a;
            sink32 = (uint32_t)c.sum;
        }
        percentiles(lat, ns, &p50, &p99);
        b50 = min_d(b50, p50);
        b99 = min_d(b99, p99);
    }
    progress("search(100): p50 %.2f us p99 %.2f us (sorted array p50 %.2f p99 %.2f), %llu "
             "prefixes", s50, s99, b50, b99, (unsigned long long)ns);
    for (uint64_t i = 0; i < ns; i++)
        free(prefixes[i]);
    free(prefixes);
    free(first);
    free(lat);
    add_paths_row("prefix search, 100 results, p50", "us", s50, b50, RATIO_TIME,
                  "sorted[] scan");
    add_paths_row("prefix search, 100 results, p99", "us", s99, b99, RATIO_TIME,
                  "sorted[] scan")->value_max = 50;
}

/* Checks, then times, the delimiter listing of /hostN/usr/share/doc/. */
static void paths_listing(sdb_t *db, unsigned hosts)
{
    char prefix[64], what[128], scratch[SDB_MAX_PATH + 2];
    size_t cap = 1u << 16;
    char **expect = xmalloc(cap * sizeof *expect);
    sdb_search_opts_t lo = { NULL, 0, '/' };
    double lt = INFINITY, lb = INFINITY;

    snprintf(prefix, sizeof prefix, "/host%u/usr/share/doc/", hosts > 3 ? 3 : hosts - 1);
    size_t nexp = list_baseline(prefix, '/', expect, cap, scratch);
    if (nexp > cap)
        die("listing too large for the check (%zu)", nexp);
    collect_t lc = { 0, 0, expect, nexp, "sdb_search (delimiter '/')", 0 };
    API(sdb_search(db, prefix, &lo, collect_cb, &lc), "sdb_search (delimiter)");
    if (lc.bad || lc.count != nexp)
        die("delimiter listing of %s returned %zu entries%s, expected %zu", prefix, lc.count,
            lc.bad ? " (not the expected ones)" : "", nexp);
    for (int r = 0; r < opt.list_reps; r++) {
        collect_t c = { 0, 0, NULL, 0, NULL, 0 };
        uint64_t a = now_ns();
        API(sdb_search(db, prefix, &lo, collect_cb, &c), "sdb_search (delimiter)");
        lt = min_d(lt, (double)(now_ns() - a) / 1e3);
        a = now_ns();
        list_baseline(prefix, '/', NULL, 0, scratch);
        lb = min_d(lb, (double)(now_ns() - a) / 1e3);
    }
    for (size_t i = 0; i < nexp; i++)
        free(expect[i]);
    free(expect);
    progress("listing %s: %zu entries, %.1f us (sorted array %.1f us)", prefix, nexp, lt, lb);
    snprintf(what, sizeof what, "list %s '/' (%zu)", prefix, nexp);
    add_paths_row(what, "us", lt, lb, RATIO_TIME, "sorted[] scan");
}

/* Times sdb_close + sdb_open of the filled file, opt.reopen_rounds times (the
 * first close is the one after the fill), against one read() of the whole
 * file; *db is the reopened handle afterwards. */
static void paths_reopen(sdb_t **db, const char *file, const sdb_config_t *cfg)
{
    double first_close = 0, best_reopen = INFINITY, best_open = INFINITY, best_read = INFINITY;
    uint8_t *rbuf = xmalloc(MIB);
    sdb_stats_t st;

    for (int r = 0; r < opt.reopen_rounds; r++) {
        uint64_t a = now_ns();
        API(sdb_close(*db), "sdb_close (paths)");
        *db = NULL;
        uint64_t b = now_ns();
        API(sdb_open(file, cfg, db), "sdb_open (reopen)");
        uint64_t c = now_ns();
        if (r == 0)
            first_close = (double)(b - a) / 1e6;
        best_reopen = min_d(best_reopen, (double)(c - a) / 1e6);
        best_open = min_d(best_open, (double)(c - b) / 1e6);
        API(sdb_stats(*db, &st), "sdb_stats");
        if (st.paths != opt.npaths)
            die("after reopen sdb_stats reports %llu paths, expected %llu",
                (unsigned long long)st.paths, (unsigned long long)opt.npaths);
        API(sdb_lookup(*db, paths[rng_below(opt.npaths)], NULL), "sdb_lookup (after reopen)");

        a = now_ns();   /* the baseline: read the whole file once, page cache warm */
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open %s: %s", file, strerror(errno));
        while (read(fd, rbuf, MIB) > 0)
            sink8 = rbuf[0];
        close(fd);
        best_read = min_d(best_read, (double)(now_ns() - a) / 1e6);
    }
    free(rbuf);
    progress("reopen: best close+open %.1f ms (open %.1f ms), first close %.1f ms; "
             "read() of the file %.1f ms", best_reopen, best_open, first_close, best_read);
    add_paths_row("reopen = sdb_close + sdb_open", "ms", best_reopen, best_read, RATIO_TIME,
                  "read() whole file")->value_max = 1000;
    add_paths_row("of which sdb_open", "ms", best_open, best_read, RATIO_TIME,
                  "read() whole file");
    add_paths_row("first sdb_close after fill", "ms", first_close, 0, RATIO_NONE, NULL);
}

/* Overwrites random paths with small documents (durable=0, so that a put
 * costs microseconds and any stall shows) while a checkpoint of the whole
 * state is written: in the background, as the engine does, and then in the
 * foreground, as it did before (the put that triggers it waits for all of
 * it; reopened with sdb_test_foreground_checkpoints).  *db is reopened. */
static void paths_checkpoint(sdb_t **db, const char *file, const sdb_config_t *cfg)
{
    static const char doc[64] = "a small document";
    size_t cap = 1 << 22, n = 0;
    uint64_t *lat = xmalloc(cap * sizeof *lat), longest = 0;

    sdb_test_checkpoint_soon(*db);
    uint64_t t0 = now_ns(), limit = t0 + 60ull * 1000000000ull;
    do {
        uint64_t a = now_ns();
        API(sdb_put(*db, paths[rng_below(opt.npaths)], doc, sizeof doc, NULL), "sdb_put (checkpoint)");
        uint64_t d = now_ns() - a;
        longest = d > longest ? d : longest;
        if (n < cap)
            lat[n++] = d;
    } while (sdb_test_checkpoint_running(*db) && now_ns() < limit);
    double bg_ms = (double)(now_ns() - t0) / 1e6;
    uint64_t fg_n = 0, bg_n = 0;
    sdb_test_checkpoint_counts(*db, &fg_n, &bg_n);
    if (bg_n != 1)
        die("expected one background checkpoint, counted %llu", (unsigned long long)bg_n);
    double p50, p99, q50, q99;
    percentiles(lat, n, &p50, &p99);
    /* the same number of puts with no checkpoint running: the baseline */
    for (size_t i = 0; i < n; i++) {
        uint64_t a = now_ns();
        API(sdb_put(*db, paths[rng_below(opt.npaths)], doc, sizeof doc, NULL), "sdb_put (checkpoint)");
        lat[i] = now_ns() - a;
    }
    if (sdb_test_checkpoint_running(*db))
        die("a second background checkpoint started during the baseline puts");
    percentiles(lat, n, &q50, &q99);
    free(lat);

    API(sdb_close(*db), "sdb_close (checkpoint)");
    sdb_test_foreground_checkpoints(1);
    API(sdb_open(file, cfg, db), "sdb_open (checkpoint)");
    sdb_test_foreground_checkpoints(0);
    sdb_test_checkpoint_soon(*db);
    uint64_t a = now_ns();
    API(sdb_put(*db, paths[1], doc, sizeof doc, NULL), "sdb_put (checkpoint)");
    double fg_ms = (double)(now_ns() - a) / 1e6;
    sdb_test_checkpoint_counts(*db, &fg_n, NULL);
    if (fg_n != 1)
        die("expected one foreground checkpoint, counted %llu", (unsigned long long)fg_n);

    progress("checkpoint: in the background %.0f ms, %zu puts meanwhile, longest %.2f ms "
             "(p50 %.1f us, p99 %.1f us; without a checkpoint p50 %.1f us, p99 %.1f us); "
             "in the foreground the put waited %.0f ms",
             bg_ms, n, (double)longest / 1e6, p50, p99, q50, q99, fg_ms);
    add_paths_row("checkpoint in the background: its duration", "ms", bg_ms, 0, RATIO_NONE, NULL);
    add_paths_row("checkpoint in the background: longest put", "ms", (double)longest / 1e6, fg_ms,
                  RATIO_TIME, "put in fg checkpoint");
    add_paths_row("checkpoint in the background: put p99", "us", p99, q99, RATIO_TIME,
                  "p99, no checkpoint");
}

static void bench_paths(void)
{
    sdb_config_t cfg;
    sdb_t *db;
    char file[1100];
    double key_bytes;
    uint64_t n = opt.npaths;

    load_base_paths();
    unsigned hosts = make_paths(&key_bytes);
    progress("paths: %llu paths (%zu in %s, %u host prefixes), mean length %.1f bytes",
             (unsigned long long)n, nbase, opt.data_file, hosts, key_bytes);
    if (n % 1000000 == 0)
        snprintf(paths_tag, sizeof paths_tag, "%lluM", (unsigned long long)(n / 1000000));
    else if (n % 1000 == 0)
        snprintf(paths_tag, sizeof paths_tag, "%lluk", (unsigned long long)(n / 1000));
    else
        snprintf(paths_tag, sizeof paths_tag, "%llu", (unsigned long long)n);

    tmp_file(file, sizeof file, "paths.sdb");
    remove_db(file);
    sdb_config_default(&cfg);
    cfg.durable = 0;
    API(sdb_open(file, &cfg, &db), "sdb_open (paths)");
    paths_fill(db, file, key_bytes);
    paths_lookups(db);
    paths_searches(db);
    paths_listing(db, hosts);
    paths_reopen(&db, file, &cfg);
    paths_checkpoint(&db, file, &cfg);
    API(sdb_close(db), "sdb_close (paths)");
    uint64_t fbytes = file_size(file);
    remove_db(file);
    add_paths_row("file size", "MB", (double)fbytes / MB, key_bytes * (double)n / MB,
                  RATIO_SIZE, "sum of path bytes");
    add_paths_row("file bytes/path", "B/path", (double)fbytes / (double)n, key_bytes,
                  RATIO_SIZE, "mean path length");

    for (size_t i = 0; i < nbase; i++)
        free(base_paths[i]);
    free(base_paths);
    free(path_arena);
    free(paths);
    free(sorted);
}

/* ---- Main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_engine [--quick] [--paths N] [--only write,read,puts,paths,batch]\n"
            "                    [--dir DIR] [--data FILE]\n"
            "  --quick      small sizes, a smoke run of a few seconds\n"
            "  --paths N    path count of the paths section (default 1000000;\n"
            "               also SDB_BENCH_PATHS)\n"
            "  --dir DIR    where the temporary database directory is made (default\n"
            "               build/ if it exists, else /tmp; also SDB_BENCH_DIR)\n"
            "  --data FILE  gzipped path list (default " DEFAULT_DATA ";\n"
            "               also SDB_BENCH_DATA)\n");
    exit(1);
}

static uint64_t parse_count(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || v == 0 || v > 50000000ull)
        die("bad path count '%s' (1..50000000)", s);
    if (*end == 'k' || *end == 'K')
        v *= 1000, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1000000, end++;
    if (*end)
        die("bad path count '%s'", s);
    return v;
}

static void set_defaults(void)
{
    opt.doc_size = 16 * MIB;
    opt.write_chunk = 64 * KIB;
    opt.read_buf = MIB;
    opt.put_threads = 8;
    if (opt.quick) {
        opt.doc_count = 2;
        opt.write_reps = 1;
        opt.read_passes = 2;
        opt.put_secs = 0.3;
        opt.put_rounds = 1;
        opt.lookups = 20000;
        opt.searches = 2000;
        opt.lat_rounds = 1;
        opt.reopen_rounds = 2;
        opt.list_reps = 3;
        opt.batch_docs = 100000;
        if (!opt.npaths)
            opt.npaths = 20000;
    } else {
        opt.doc_count = 8;
        opt.write_reps = 5;
        opt.read_passes = 5;
        opt.put_secs = 1.5;
        opt.put_rounds = 5;
        opt.lookups = 200000;
        opt.searches = 20000;
        opt.lat_rounds = 3;
        opt.reopen_rounds = 3;
        opt.list_reps = 10;
        opt.batch_docs = 1000000;
        if (!opt.npaths)
            opt.npaths = 1000000;
    }
}

static void make_tmp_dir(void)
{
    const char *base = opt.dir_base;
    struct stat st;
    if (!base)
        base = stat("build", &st) == 0 && S_ISDIR(st.st_mode) ? "build" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/sdb-bench.XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        int e = errno;
        tmp_dir[0] = '\0';
        die("cannot create a temporary directory under %s: %s", base, strerror(e));
    }
    atexit(remove_tmp_dir);
    struct statfs fs;
    if (statfs(tmp_dir, &fs) == 0 && (unsigned long)fs.f_type == TMPFS_MAGIC_NUMBER)
        fprintf(stderr, "bench_engine: WARNING: %s is on tmpfs: durable writes do not reach "
                "a disk; use --dir on a real file system\n", tmp_dir);
}

int main(int argc, char **argv)
{
    const char *env;
    if ((env = getenv("SDB_BENCH_QUICK")) && *env && strcmp(env, "0") != 0)
        opt.quick = 1;
    if ((env = getenv("SDB_BENCH_PATHS")) && *env)
        opt.npaths = parse_count(env);
    opt.dir_base = getenv("SDB_BENCH_DIR");
    opt.data_file = getenv("SDB_BENCH_DATA");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            opt.quick = 1;
        else if (strcmp(argv[i], "--paths") == 0 && i + 1 < argc)
            opt.npaths = parse_count(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
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
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    uname(&un);
    uint64_t a = now_ns(), t_over;
    for (int i = 0; i < 1000; i++)
        sink32 = (uint32_t)now_ns();
    t_over = (now_ns() - a) / 1000;
    printf("StreamDb %s engine benchmark%s: %s, %s %s, %ld CPUs, dir %s\n", SDB_VERSION_STRING,
           opt.quick ? " (--quick)" : "", date, un.nodename, un.release,
           sysconf(_SC_NPROCESSORS_ONLN), tmp_dir);
    printf("Best of %d reps (write), %d passes (read), %d rounds (puts, %.1f s each), "
           "%d rounds (latency percentiles); timer overhead %llu ns; load average %.2f\n",
           opt.write_reps, opt.read_passes, opt.put_rounds, opt.put_secs, opt.lat_rounds,
           (unsigned long long)t_over, load_avg());
    fflush(stdout);

    if (section_on("write")) {
        fprintf(stderr, "== write\n");
        bench_write();
    }
    if (section_on("read")) {
        fprintf(stderr, "== read\n");
        bench_read();
    }
    if (read_db[0])
        remove_db(read_db);
    free_docs();
    if (section_on("puts")) {
        fprintf(stderr, "== puts\n");
        bench_puts();
    }
    if (section_on("paths")) {
        fprintf(stderr, "== paths\n");
        bench_paths();
    }
    if (section_on("batch")) {
        fprintf(stderr, "== batch\n");
        bench_batch();
    }
    print_table();
    printf("load average at the end: %.2f (%ld CPUs)\n", load_avg(), sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
