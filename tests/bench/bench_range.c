/*
 * bench_range.c -- byte ranges (sdb_reader_range): what reading a few KiB of
 * a large document costs next to reading all of it, in the same run.
 *
 * One document of 64 MiB (8 MiB with --quick) is written to a file database
 * (default config, durable = 0: the writes are not what is measured), and
 * the same bytes to a plain file in the same directory.  Then, each figure
 * the best of several repetitions (the machine is shared and noisy):
 *   - the whole document through a reader, CRC checked (the baseline);
 *   - 4 KiB at the end of it: reader open, sdb_reader_range, read, close;
 *   - 4 KiB at random offsets, the same way;
 *   - pread() of the same 4 KiB from the plain file (the floor: no CRC, no
 *     engine), as a peer.
 * Every byte returned is compared with what was written.  Everything is
 * warm (page cache): the figures compare the work each read does, pages
 * touched and CRC checked, not the disk.
 *
 * Usage: bench_range [--quick] [--dir DIR]   (or SDB_BENCH_QUICK=1, SDB_BENCH_DIR)
 * Exit status: 0 when every engine call succeeded and every byte matched,
 * whether or not the targets were met (the table is a report); 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamdb.h"

#include "bench_report.h"

#define RANGE_LEN 4096u
#define OPS 2000           /* ranges per timed run */

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_range: %s: %s\n", what, rc ? sdb_strerror(rc) : strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Reads [off, off + len) of /big through a new reader into buf and checks it. */
static void read_range(sdb_t *db, const uint8_t *doc, uint64_t off, size_t len, uint8_t *buf)
{
    sdb_reader_t *r;
    uint64_t avail;
    size_t got = 0, n;
    int rc = sdb_reader_open(db, "/big", &r, NULL);
    if (rc || (rc = sdb_reader_range(r, off, len, &avail)))
        die("range open", rc);
    while (got < len && !(rc = sdb_reader_read(r, buf + got, len - got, &n)) && n)
        got += n;
    sdb_reader_close(r);
    if (rc)
        die("range read", rc);
    if (got != len || avail != len || memcmp(buf, doc + off, len) != 0) {
        fprintf(stderr, "bench_range: WRONG BYTES in the range at %llu\n", (unsigned long long)off);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    (void)max_d;                 /* bench_report.h helpers this program does not need */
    (void)bench_section_on;
    int quick = getenv("SDB_BENCH_QUICK") && atoi(getenv("SDB_BENCH_QUICK"));
    const char *base = getenv("SDB_BENCH_DIR");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = argv[++i];
        else {
            fprintf(stderr, "usage: bench_range [--quick] [--dir DIR]\n");
            return 1;
        }
    }
    if (!base)
        base = access("build", W_OK) == 0 ? "build" : "/tmp";
    char dir[512], file[600], plain[600];
    snprintf(dir, sizeof dir, "%s/sdb-bench-range.XXXXXX", base);
    if (!mkdtemp(dir))
        die("mkdtemp", 0);
    snprintf(file, sizeof file, "%s/range.sdb", dir);
    snprintf(plain, sizeof plain, "%s/plain.bin", dir);

    size_t size = quick ? (8u << 20) : (64u << 20);
    int reps = quick ? 3 : 7;
    uint8_t *doc = malloc(size), *buf = malloc(size);
    if (!doc || !buf)
        die("malloc", SDB_ENOMEM);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = rnd(&x);
        memcpy(doc + i, &v, 8);
    }
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.durable = 0;
    sdb_t *db;
    int rc = sdb_open(file, &cfg, &db);
    if (rc || (rc = sdb_put(db, "/big", doc, size, NULL)) || (rc = sdb_flush(db)))
        die("put", rc);
    int fd = open(plain, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, doc, size) != (ssize_t)size)
        die(plain, 0);
    uint32_t cap = cfg.page_size - 48;
    fprintf(stderr, "bench_range: %zu MiB document, %u-byte pages (%u data bytes each): %zu pages\n",
            size >> 20, cfg.page_size, cap, (size + cap - 1) / cap);

    double whole = 1e9, tail = 1e9, random = 1e9, pr = 1e9;
    uint64_t end_off = size - RANGE_LEN;
    for (int k = 0; k < reps; k++) {
        double t0 = now_s();
        read_range(db, doc, 0, size, buf);                 /* whole: content CRC checked too */
        double t = now_s() - t0;
        whole = min_d(whole, t);

        t0 = now_s();
        for (int i = 0; i < OPS; i++)
            read_range(db, doc, end_off, RANGE_LEN, buf);
        t = (now_s() - t0) / OPS;
        tail = min_d(tail, t);

        uint64_t y = 12345 + (uint64_t)k;
        t0 = now_s();
        for (int i = 0; i < OPS; i++)
            read_range(db, doc, rnd(&y) % (size - RANGE_LEN + 1), RANGE_LEN, buf);
        t = (now_s() - t0) / OPS;
        random = min_d(random, t);

        t0 = now_s();
        for (int i = 0; i < OPS; i++)
            if (pread(fd, buf, RANGE_LEN, (off_t)end_off) != (ssize_t)RANGE_LEN)
                die("pread", 0);
        t = (now_s() - t0) / OPS;
        pr = min_d(pr, t);
        if (memcmp(buf, doc + end_off, RANGE_LEN) != 0)
            die("pread: wrong bytes", 0);
        progress("rep %d: whole %.2f ms, 4 KiB at the end %.2f us, random %.2f us, pread %.2f us",
                 k + 1, whole * 1e3, tail * 1e6, random * 1e6, pr * 1e6);
    }

    char name[80];
    snprintf(name, sizeof name, "read all %zu MiB, reader, CRC checked", size >> 20);
    add_row(name, "ms", whole * 1e3, NAN, RATIO_NONE, NULL);
    snprintf(name, sizeof name, "4 KiB at the end of %zu MiB, sdb_reader_range", size >> 20);
    row_t *r = add_row(name, "us", tail * 1e6, whole * 1e6, RATIO_TIME, "read it all (us)");
    r->ratio_min = quick ? 100 : 1000;
    snprintf(name, sizeof name, "4 KiB at random offsets of %zu MiB, range", size >> 20);
    r = add_row(name, "us", random * 1e6, whole * 1e6, RATIO_TIME, "read it all (us)");
    r->ratio_min = quick ? 100 : 1000;
    add_row("4 KiB at the end, range (peer: plain pread)", "us", tail * 1e6, pr * 1e6, RATIO_TIME,
            "pread, no CRC (us)");
    print_table();

    close(fd);
    if ((rc = sdb_close(db)))
        die("close", rc);
    unlink(file);
    unlink(plain);
    rmdir(dir);
    free(doc);
    free(buf);
    return 0;
}
