/*
 * bench_server.c -- network benchmark of streamdbd, the StreamDb daemon.
 *
 * The program starts the daemon itself (fork + exec of build/streamdbd) on a
 * temporary data directory, a Unix socket and a free 127.0.0.1 TCP port, with
 * durability "full", and talks the real wire protocol (proto/PROTOCOL.md) to
 * it with a small blocking client built on the shared codec
 * (streamdb_proto.h).  As in bench_engine.c, no figure is printed alone: each
 * one stands next to a baseline measured in the same run on the same machine,
 * the targets of issue 3 are checked against their ratio, and every
 * measurement is repeated with the best repetition kept.  docs/BENCHMARKS.md
 * ("streamdbd (network)") explains each figure.
 *
 * Sections (select with --only):
 *   bulk  a 256 MiB PUT (64 KiB PUT_DATA frames, CRC32 at PUT_END) and GET
 *         over TCP loopback, against a plain TCP copy of the same bytes
 *         between two threads of this process (and, for reference, against
 *         the engine alone: sdb_writer/sdb_reader in this process); the
 *         daemon's peak RSS (VmHWM, and RssAnon/RssFile sampled every 5 ms)
 *   get   1 KiB GETs (and 1 KiB PINGs) on 50 connections and on 1, each
 *         connection one request at a time (no pipelining), against a
 *         one-thread epoll server in this process that answers with the same
 *         frames; ops/s and p50/p99 latency
 *   put   1 KiB durable PUTs on 1 connection and on 50 (group commit)
 *
 * Usage: bench_server [--quick] [--only LIST] [--dir DIR] [--streamdbd FILE]
 *                     [--workers N] [--no-mmap] [--bulk-mib N] [--conns N]
 *                     [--secs S]
 * Environment: SDB_STREAMDBD=FILE, SDB_BENCH_QUICK=1, SDB_BENCH_DIR=DIR
 * (command-line options win).
 * Exit status: 0 when every request got the right answer, whether or not the
 * targets were met (the table is a report); 1 on a protocol error, on wrong
 * data (every GET's bytes and CRC32 are checked), when the daemon does not
 * start or does not exit 0 on SIGTERM, or when the benchmark cannot be set up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "streamdb.h"
#include "streamdb_proto.h"

#define MB 1e6                      /* throughput is in MB/s = 10^6 bytes per second */
#define KIB 1024u
#define MIB (1024u * 1024u)
#define TMPFS_MAGIC_NUMBER 0x01021994
#define SMALL 1024u                 /* bytes of a small document */
#define RBUF_SIZE 8192u             /* client read buffer; larger reads go straight to their target */
#define PUT_BATCH 16                /* PUT_DATA frames per writev() */
#define COPY_CHUNK (1u << 20)       /* write()/recv() size of the baseline copy */
#define MAX_CONNS 512
#define SAMPLE_MS 5                 /* RSS sampling period during the bulk section */
#define HDR SDB_PROTO_HEADER_SIZE

/* ---- Options ------------------------------------------------------------ */

typedef struct {
    int quick;
    const char *only;          /* comma-separated sections, NULL = all */
    const char *dir_base;      /* where the temporary directory is made */
    const char *daemon;        /* the streamdbd binary */
    int workers;               /* daemon worker threads, 0 = its default */
    int no_mmap;               /* engine.use_mmap = false */
    size_t bulk_size;          /* bytes of the big document */
    int bulk_reps;
    unsigned conns;            /* concurrent connections of the get and put sections */
    unsigned ndocs;            /* small documents read by the get section */
    double secs;               /* duration of one small-request run */
    int rounds;                /* rounds of small-request runs */
} bench_opts_t;

static bench_opts_t opt;

#include "bench_report.h"

/* ---- Errors, cleanup, the temporary directory and the daemon's pid ------ */

static char tmp_dir[1024];       /* data dir, config, log (and the socket when short) */
static char sock_dir[1024];      /* a separate /tmp directory when tmp_dir is too long */
static char sock_path[1100], cfg_path[1100], log_path[1100], data_dir[1100];
static char daemon_bin[PATH_MAX];
static volatile pid_t daemon_pid = -1;
static int daemon_port;
static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;

static int rm_entry_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmp_dirs(void)
{
    if (tmp_dir[0])
        nftw(tmp_dir, rm_entry_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (sock_dir[0])
        nftw(sock_dir, rm_entry_cb, 16, FTW_DEPTH | FTW_PHYS);
    tmp_dir[0] = sock_dir[0] = '\0';
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_secs(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits up to secs for the daemon to exit; returns its wait status or -1. */
static int wait_daemon(double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    int status;
    for (;;) {
        pid_t p = waitpid(daemon_pid, &status, WNOHANG);
        if (p == daemon_pid)
            return status;
        if (p < 0 && errno != EINTR)
            return -1;
        if (now_ns() > end)
            return -1;
        sleep_secs(0.005);
    }
}

/* atexit: on an early exit, stop the daemon and remove the temporary files. */
static void cleanup(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        if (wait_daemon(15) == -1) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, NULL, 0);
        }
        daemon_pid = -1;
    }
    remove_tmp_dirs();
}

/* Prints the end of the daemon's log (stderr) to our stderr. */
static void show_log_tail(void)
{
    FILE *f = log_path[0] ? fopen(log_path, "r") : NULL;
    if (!f)
        return;
    char buf[3001];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    fseek(f, size > 3000 ? size - 3000 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (n)
        fprintf(stderr, "---- end of the daemon's log (%s)\n%s---- end of log\n", log_path, buf);
}

/* Reports a protocol error, wrong data or a setup failure, prints the table
 * so far and exits with status 1 (any thread may call it). */
static void die(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&die_lock);
    va_start(ap, fmt);
    fprintf(stderr, "bench_server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    int status;
    if (daemon_pid > 0 && waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "bench_server: the daemon (pid %d) was killed by signal %d (%s)\n",
                    (int)daemon_pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            fprintf(stderr, "bench_server: the daemon (pid %d) exited with status %d\n",
                    (int)daemon_pid, WEXITSTATUS(status));
        daemon_pid = -1;
    }
    show_log_tail();
    print_table();
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* A thread that turns SIGINT/SIGTERM into a clean exit (daemon stopped,
 * temporary directory removed); the signals are blocked everywhere else. */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    if (sigwait(set, &sig) == 0) {
        /* hold die()'s lock: the requests that fail once the daemon stops must
         * not start a second exit() while this one cleans up */
        pthread_mutex_lock(&die_lock);
        fprintf(stderr, "bench_server: %s, stopping\n", strsignal(sig));
        exit(128 + sig);
    }
    return NULL;
}

/* Flushes the file system of the temporary directory (untimed) so that one
 * run's writeback is not charged to the next timed run. */
static void settle(void)
{
    int fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

/* ---- Small helpers ------------------------------------------------------ */

static uint64_t rng_step(uint64_t *s)   /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static void fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x = rng_step(&s);
        memcpy(buf + i, &x, 8);
    }
    for (; i < len; i++)
        buf[i] = (uint8_t)rng_step(&s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int section_on(const char *name) { return bench_section_on(opt.only, name); }

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

/* Memory figures of a process from /proc/PID/status, in bytes. */
typedef struct {
    uint64_t hwm, rss, anon, file, shmem;
    unsigned threads;
} procmem_t;

static int read_procmem(pid_t pid, procmem_t *m)
{
    char name[64], line[256];
    unsigned long v;
    memset(m, 0, sizeof *m);
    snprintf(name, sizeof name, "/proc/%d/status", (int)pid);
    FILE *f = fopen(name, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %lu kB", &v) == 1)
            m->hwm = (uint64_t)v * 1024u;
        else if (sscanf(line, "VmRSS: %lu kB", &v) == 1)
            m->rss = (uint64_t)v * 1024u;
        else if (sscanf(line, "RssAnon: %lu kB", &v) == 1)
            m->anon = (uint64_t)v * 1024u;
        else if (sscanf(line, "RssFile: %lu kB", &v) == 1)
            m->file = (uint64_t)v * 1024u;
        else if (sscanf(line, "RssShmem: %lu kB", &v) == 1)
            m->shmem = (uint64_t)v * 1024u;
        else if (sscanf(line, "Threads: %lu", &v) == 1)
            m->threads = (unsigned)v;
    }
    fclose(f);
    return 0;
}

static procmem_t daemon_mem(void)
{
    procmem_t m;
    if (read_procmem(daemon_pid, &m) != 0)
        die("cannot read /proc/%d/status (has the daemon died?)", (int)daemon_pid);
    return m;
}

/* ---- Sockets ------------------------------------------------------------ */

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* A listening socket on 127.0.0.1 and a free port chosen by the kernel. */
static int tcp_listen_any(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("cannot listen on 127.0.0.1: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Writes every byte of iov[0..cnt) (the array is modified). */
static void writev_all(int fd, struct iovec *iov, int cnt, const char *what)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("%s: write: %s", what, strerror(errno));
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
}

/* ---- The client: blocking sockets over the shared codec ----------------- */

typedef struct {
    int fd;
    const char *name;             /* for messages */
    uint8_t rbuf[RBUF_SIZE];      /* bytes received past the last read */
    size_t rpos, rlen;
    uint8_t *pbuf;                /* one decoded payload (max_frame bytes) */
    uint32_t max_frame, chunk;    /* from HELLO_OK */
    uint32_t rid;                 /* last request id */
} client_t;

static struct {                   /* the limits of the first HELLO_OK */
    uint32_t max_frame, chunk, max_inflight;
    uint64_t max_doc;
    char name[64];
} srv;

static void cl_init(client_t *c, int fd, const char *name)
{
    memset(c, 0, offsetof(client_t, rbuf));
    c->fd = fd;
    c->name = name;
    c->rpos = c->rlen = 0;
    c->max_frame = 1u << 20;          /* the baseline server's frames; HELLO_OK sets the daemon's */
    c->chunk = 1u << 20;
    c->pbuf = xmalloc(c->max_frame);
    c->rid = 0;
}

static void cl_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->pbuf);
    c->pbuf = NULL;
}

static void cl_send(client_t *c, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };
    writev_all(c->fd, &iov, 1, c->name);
}

/* Reads exactly n bytes into dst: first what the buffer holds, then straight
 * from the socket into dst, with whatever follows landing in the buffer. */
static void cl_read(client_t *c, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t have = c->rlen - c->rpos, k = have < n ? have : n;
    memcpy(d, c->rbuf + c->rpos, k);
    c->rpos += k;
    d += k;
    n -= k;
    while (n > 0) {
        struct iovec iov[2] = { { d, n }, { c->rbuf, RBUF_SIZE } };
        ssize_t r = readv(c->fd, iov, 2);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("%s: read: %s", c->name, strerror(errno));
        if (r == 0)
            die("%s: the server closed the connection", c->name);
        if ((size_t)r <= n) {
            d += r;
            n -= (size_t)r;
        } else {
            c->rpos = 0;
            c->rlen = (size_t)r - n;
            n = 0;
        }
    }
}

static void cl_header(client_t *c, sdb_proto_header_t *h)
{
    uint8_t raw[HDR];
    cl_read(c, raw, HDR);
    int rc = sdb_proto_header_decode(raw, c->max_frame, h);
    if (rc)
        die("%s: bad frame header from the server: %s", c->name, sdb_proto_strerror(rc));
}

/* Reads the payload of the frame whose header is h and decodes it into *m. */
static void cl_body(client_t *c, const sdb_proto_header_t *h, sdb_proto_frame_t *f,
                    sdb_proto_msg_t *m)
{
    cl_read(c, c->pbuf, h->length);
    f->hdr = *h;
    f->payload = c->pbuf;
    int rc = sdb_proto_decode(f, m);
    if (rc)
        die("%s: malformed %s frame from the server: %s", c->name,
            sdb_proto_opcode_name(h->opcode) ? sdb_proto_opcode_name(h->opcode) : "unknown",
            sdb_proto_strerror(rc));
}

static void cl_frame(client_t *c, sdb_proto_frame_t *f, sdb_proto_msg_t *m)
{
    sdb_proto_header_t h;
    cl_header(c, &h);
    cl_body(c, &h, f, m);
}

/* Checks that m answers request rid with opcode op; an ERROR is fatal. */
static void cl_expect(client_t *c, const sdb_proto_msg_t *m, uint8_t op, uint32_t rid,
                      const char *what)
{
    if (m->opcode == SDB_OP_ERROR) {
        const char *st = sdb_proto_status_name(m->u.error.status);
        die("%s: %s: server answered ERROR %s (%u)%s: %.*s", c->name, what, st ? st : "?",
            m->u.error.status, m->flags & SDB_FLAG_CLOSING ? " CLOSING" : "",
            (int)m->u.error.message.len, m->u.error.message.ptr ? m->u.error.message.ptr : "");
    }
    if (m->opcode != op)
        die("%s: %s: expected %s, got %s (0x%02x)", c->name, what, sdb_proto_opcode_name(op),
            sdb_proto_opcode_name(m->opcode) ? sdb_proto_opcode_name(m->opcode) : "?",
            m->opcode);
    if (m->request_id != rid)
        die("%s: %s: response carries request id %u, expected %u", c->name, what,
            m->request_id, rid);
}

static size_t encode(const sdb_proto_msg_t *m, void *buf, size_t cap)
{
    size_t len;
    int rc = sdb_proto_encode(m, buf, cap, &len);
    if (rc)
        die("encoding %s: %s", sdb_proto_opcode_name(m->opcode), sdb_proto_strerror(rc));
    return len;
}

static void cl_hello(client_t *c)
{
    static const char name[] = "bench_server/" SDB_VERSION_STRING;
    uint8_t buf[256];
    sdb_proto_msg_t m = { .opcode = SDB_OP_HELLO, .request_id = ++c->rid };
    m.u.hello.min_version = SDB_PROTO_VERSION_MIN;
    m.u.hello.max_version = SDB_PROTO_VERSION;
    m.u.hello.client.ptr = name;
    m.u.hello.client.len = sizeof name - 1;
    c->max_frame = SDB_PROTO_MIN_FRAME;           /* until HELLO_OK */
    cl_send(c, buf, encode(&m, buf, sizeof buf));
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;
    cl_frame(c, &f, &r);
    cl_expect(c, &r, SDB_OP_HELLO_OK, m.request_id, "HELLO");
    const sdb_proto_hello_ok_t *ok = &r.u.hello_ok;
    if (ok->version != SDB_PROTO_VERSION || ok->max_frame_bytes < SDB_PROTO_MIN_FRAME ||
        ok->max_frame_bytes > SDB_PROTO_MAX_FRAME || ok->chunk_bytes < SDB_PROTO_MIN_CHUNK ||
        ok->chunk_bytes > ok->max_frame_bytes)
        die("%s: HELLO_OK out of range: version %u, max_frame_bytes %u, chunk_bytes %u", c->name,
            ok->version, ok->max_frame_bytes, ok->chunk_bytes);
    if (!srv.max_frame) {
        srv.max_frame = ok->max_frame_bytes;
        srv.chunk = ok->chunk_bytes;
        srv.max_doc = ok->max_document_bytes;
        srv.max_inflight = ok->max_inflight;
        snprintf(srv.name, sizeof srv.name, "%.*s", (int)ok->server.len,
                 ok->server.ptr ? ok->server.ptr : "");
    }
    uint32_t mf = ok->max_frame_bytes, chunk = ok->chunk_bytes;
    c->pbuf = xrealloc(c->pbuf, mf);              /* ok's views die here */
    c->max_frame = mf;
    c->chunk = chunk;
}

/* Streams data[0..size) to path: PUT_BEGIN (with the size), PUT_DATA frames
 * of chunk_bytes, PUT_END with the CRC32, PUT_BATCH frames per writev();
 * then reads the DOC and checks its size and CRC. */
static void cl_put(client_t *c, const char *path, const uint8_t *data, size_t size,
                   uint32_t crc, sdb_docinfo_t *info)
{
    uint32_t rid = ++c->rid;
    uint8_t begin[HDR + 18 + 4096], end[HDR + 12], hdrs[PUT_BATCH][HDR];
    struct iovec iov[2 * PUT_BATCH + 2];
    sdb_proto_msg_t m = { .opcode = SDB_OP_PUT_BEGIN, .request_id = rid };
    m.u.put_begin.size = size;
    m.u.put_begin.if_version = SDB_PROTO_UNSET;
    m.u.put_begin.path.ptr = path;
    m.u.put_begin.path.len = strlen(path);
    size_t blen = encode(&m, begin, sizeof begin);
    m = (sdb_proto_msg_t){ .opcode = SDB_OP_PUT_END, .request_id = rid };
    m.u.put_end.size = size;
    m.u.put_end.crc32 = crc;
    size_t elen = encode(&m, end, sizeof end);
    size_t off = 0;
    int n = 0;
    iov[n++] = (struct iovec){ begin, blen };
    for (;;) {
        for (int k = 0; k < PUT_BATCH && off < size; k++) {
            size_t len = size - off < c->chunk ? size - off : c->chunk;
            sdb_proto_header_t h = { .opcode = SDB_OP_PUT_DATA, .length = (uint32_t)len,
                                     .request_id = rid };
            sdb_proto_header_encode(hdrs[k], &h);
            iov[n++] = (struct iovec){ hdrs[k], HDR };
            iov[n++] = (struct iovec){ (void *)(data + off), len };
            off += len;
        }
        if (off == size)
            iov[n++] = (struct iovec){ end, elen };
        writev_all(c->fd, iov, n, c->name);
        if (off == size)
            break;
        n = 0;
    }
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;
    cl_frame(c, &f, &r);
    cl_expect(c, &r, SDB_OP_DOC, rid, "PUT");
    if (r.u.doc.size != size || r.u.doc.crc32 != crc)
        die("%s: PUT %s: DOC says %llu bytes, CRC %08x; sent %zu bytes, CRC %08x", c->name, path,
            (unsigned long long)r.u.doc.size, (unsigned)r.u.doc.crc32, size, (unsigned)crc);
    if (info)
        *info = r.u.doc;
}

/* GET path (flags: 0 or SDB_FLAG_QUICK): reads GET_HEADER into *info, the
 * DATA frames into dst[0..cap) at consecutive offsets, then END.  Returns the
 * content size, after checking that the DATA bytes total the header's size.
 * The caller checks the bytes. */
static size_t cl_get(client_t *c, const char *path, uint8_t flags, uint8_t *dst, size_t cap,
                     sdb_docinfo_t *info)
{
    uint8_t buf[HDR + 2 + 4096];
    sdb_proto_msg_t m = { .opcode = SDB_OP_GET, .flags = flags, .request_id = ++c->rid };
    uint32_t rid = m.request_id;
    m.u.path.ptr = path;
    m.u.path.len = strlen(path);
    cl_send(c, buf, encode(&m, buf, sizeof buf));
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;
    cl_frame(c, &f, &r);
    cl_expect(c, &r, SDB_OP_GET_HEADER, rid, "GET");
    *info = r.u.doc;
    if (info->size > cap)
        die("%s: GET %s: GET_HEADER announces %llu bytes, expected at most %zu", c->name, path,
            (unsigned long long)info->size, cap);
    size_t off = 0;
    for (;;) {
        sdb_proto_header_t h;
        cl_header(c, &h);
        if (h.opcode == SDB_OP_DATA && h.request_id == rid) {
            if (h.length == 0 || h.length > c->chunk || off + h.length > info->size)
                die("%s: GET %s: DATA frame of %u bytes at offset %zu (size %llu, chunk_bytes "
                    "%u)", c->name, path, h.length, off, (unsigned long long)info->size,
                    c->chunk);
            cl_read(c, dst + off, h.length);
            off += h.length;
            continue;
        }
        cl_body(c, &h, &f, &r);
        cl_expect(c, &r, SDB_OP_END, rid, "GET stream");
        break;
    }
    if (off != info->size)
        die("%s: GET %s: END after %zu bytes of %llu", c->name, path, off,
            (unsigned long long)info->size);
    return off;
}

/* A request with a PATH payload (or none) that is answered by one frame. */
static void cl_simple(client_t *c, uint8_t op, const char *path, uint8_t answer,
                      sdb_proto_frame_t *f, sdb_proto_msg_t *r)
{
    uint8_t buf[HDR + 2 + 4096];
    sdb_proto_msg_t m = { .opcode = op, .request_id = ++c->rid };
    if (path) {
        m.u.path.ptr = path;
        m.u.path.len = strlen(path);
    }
    cl_send(c, buf, encode(&m, buf, sizeof buf));
    cl_frame(c, f, r);
    cl_expect(c, r, answer, m.request_id, sdb_proto_opcode_name(op));
}

/* ---- The small documents ------------------------------------------------ */

static uint8_t (*small_docs)[SMALL];
static uint32_t *small_crc;

static void small_path(char *out, size_t cap, unsigned i)
{
    snprintf(out, cap, "/bench/small/%05u", i);
}

static void make_small_docs(void)
{
    small_docs = xmalloc((size_t)opt.ndocs * sizeof *small_docs);
    small_crc = xmalloc(opt.ndocs * sizeof *small_crc);
    for (unsigned i = 0; i < opt.ndocs; i++) {
        fill_random(small_docs[i], SMALL, 1000 + i);
        small_crc[i] = (uint32_t)crc32(0L, small_docs[i], SMALL);
    }
}

/* ---- The baseline server: one epoll thread, no engine ------------------- */

/* It answers GET /bench/small/NNNNN with the frames the daemon sends
 * (GET_HEADER, one DATA of 1 KiB, END) and PING with PONG, so that its
 * clients run exactly the code of the daemon's clients. */

#define BS_IN_CAP (64 * KIB)

typedef struct {
    int fd;
    uint8_t in[BS_IN_CAP];
    size_t inlen;
    uint8_t *out;
    size_t outlen, outpos, outcap;
    int want_out;
} bconn_t;

static struct {
    int lfd, epfd, evfd, port;
    pthread_t tid;
    int running;
    bconn_t *conns[2 * MAX_CONNS + 8];
    unsigned nconns;
} bs;

static char bs_listen_tag, bs_stop_tag;

static void bs_out(bconn_t *b, const void *p, size_t n)
{
    if (b->outlen + n > b->outcap) {
        size_t cap = b->outcap ? b->outcap : 4096;
        while (cap < b->outlen + n)
            cap *= 2;
        b->out = xrealloc(b->out, cap);
        b->outcap = cap;
    }
    memcpy(b->out + b->outlen, p, n);
    b->outlen += n;
}

static void bs_reply(bconn_t *b, const sdb_proto_header_t *h, const uint8_t *payload)
{
    uint8_t buf[HDR + SDB_PROTO_DOCINFO_SIZE];
    sdb_proto_frame_t f = { .hdr = *h, .payload = payload };
    sdb_proto_msg_t m, r;
    int rc = sdb_proto_decode(&f, &m);
    if (rc)
        die("baseline server: malformed request: %s", sdb_proto_strerror(rc));
    if (m.opcode == SDB_OP_GET) {
        char path[64];
        unsigned idx;
        snprintf(path, sizeof path, "%.*s", (int)m.u.path.len, m.u.path.ptr);
        if (sscanf(path, "/bench/small/%u", &idx) != 1 || idx >= opt.ndocs)
            die("baseline server: unexpected GET %s", path);
        r = (sdb_proto_msg_t){ .opcode = SDB_OP_GET_HEADER, .request_id = h->request_id };
        r.u.doc.version = 1;
        r.u.doc.size = SMALL;
        r.u.doc.crc32 = small_crc[idx];
        bs_out(b, buf, encode(&r, buf, sizeof buf));
        sdb_proto_header_t dh = { .opcode = SDB_OP_DATA, .length = SMALL,
                                  .request_id = h->request_id };
        sdb_proto_header_encode(buf, &dh);
        bs_out(b, buf, HDR);
        bs_out(b, small_docs[idx], SMALL);
        r = (sdb_proto_msg_t){ .opcode = SDB_OP_END, .request_id = h->request_id };
        bs_out(b, buf, encode(&r, buf, sizeof buf));
    } else if (m.opcode == SDB_OP_PING) {
        sdb_proto_header_t ph = { .opcode = SDB_OP_PONG, .length = h->length,
                                  .request_id = h->request_id };
        sdb_proto_header_encode(buf, &ph);
        bs_out(b, buf, HDR);
        bs_out(b, payload, h->length);
    } else {
        die("baseline server: unexpected %s", sdb_proto_opcode_name(h->opcode));
    }
}

static void bs_close(bconn_t *b)
{
    epoll_ctl(bs.epfd, EPOLL_CTL_DEL, b->fd, NULL);
    close(b->fd);
    b->fd = -1;
}

static void bs_flush(bconn_t *b)
{
    while (b->outpos < b->outlen) {
        ssize_t n = send(b->fd, b->out + b->outpos, b->outlen - b->outpos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            bs_close(b);
            return;
        }
        b->outpos += (size_t)n;
    }
    int want = b->outpos < b->outlen;
    if (!want)
        b->outpos = b->outlen = 0;
    if (want != b->want_out) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = b };
        epoll_ctl(bs.epfd, EPOLL_CTL_MOD, b->fd, &ev);
        b->want_out = want;
    }
}

static void bs_readable(bconn_t *b)
{
    ssize_t n = recv(b->fd, b->in + b->inlen, BS_IN_CAP - b->inlen, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        bs_close(b);
        return;
    }
    b->inlen += (size_t)n;
    size_t pos = 0;
    while (b->inlen - pos >= HDR) {
        sdb_proto_header_t h;
        if (sdb_proto_header_decode(b->in + pos, BS_IN_CAP - HDR, &h) != 0)
            die("baseline server: bad frame header");
        if (b->inlen - pos < HDR + h.length)
            break;
        bs_reply(b, &h, b->in + pos + HDR);
        pos += HDR + h.length;
    }
    memmove(b->in, b->in + pos, b->inlen - pos);
    b->inlen -= pos;
    bs_flush(b);
}

static void *bs_main(void *arg)
{
    struct epoll_event ev[64];
    (void)arg;
    for (;;) {
        int n = epoll_wait(bs.epfd, ev, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("baseline server: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &bs_stop_tag)
                return NULL;
            if (p == &bs_listen_tag) {
                int fd;
                while ((fd = accept4(bs.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (bs.nconns == sizeof bs.conns / sizeof *bs.conns)
                        die("baseline server: too many connections");
                    bconn_t *b = calloc(1, sizeof *b);
                    if (!b)
                        die("out of memory");
                    b->fd = fd;
                    set_nodelay(fd);
                    bs.conns[bs.nconns++] = b;
                    struct epoll_event e = { .events = EPOLLIN, .data.ptr = b };
                    epoll_ctl(bs.epfd, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            bconn_t *b = p;
            if (b->fd >= 0 && (ev[i].events & EPOLLOUT))
                bs_flush(b);
            if (b->fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                bs_readable(b);
        }
    }
}

static void bs_start(void)
{
    bs.lfd = tcp_listen_any(&bs.port);
    fcntl(bs.lfd, F_SETFL, fcntl(bs.lfd, F_GETFL) | O_NONBLOCK);
    bs.epfd = epoll_create1(EPOLL_CLOEXEC);
    bs.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (bs.epfd < 0 || bs.evfd < 0)
        die("baseline server: epoll/eventfd: %s", strerror(errno));
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = &bs_listen_tag };
    epoll_ctl(bs.epfd, EPOLL_CTL_ADD, bs.lfd, &e);
    e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &bs_stop_tag };
    epoll_ctl(bs.epfd, EPOLL_CTL_ADD, bs.evfd, &e);
    if (pthread_create(&bs.tid, NULL, bs_main, NULL) != 0)
        die("pthread_create failed");
    bs.running = 1;
}

static void bs_stop(void)
{
    if (!bs.running)
        return;
    uint64_t one = 1;
    if (write(bs.evfd, &one, sizeof one) != (ssize_t)sizeof one)
        die("baseline server: eventfd write: %s", strerror(errno));
    pthread_join(bs.tid, NULL);
    for (unsigned i = 0; i < bs.nconns; i++) {
        if (bs.conns[i]->fd >= 0)
            close(bs.conns[i]->fd);
        free(bs.conns[i]->out);
        free(bs.conns[i]);
    }
    close(bs.lfd);
    close(bs.epfd);
    close(bs.evfd);
    bs.running = 0;
}

/* ---- The daemon --------------------------------------------------------- */

static void find_daemon(void)
{
    const char *env = getenv("SDB_STREAMDBD");
    char exe[PATH_MAX], cand[PATH_MAX + 32];
    if (opt.daemon && *opt.daemon) {
        snprintf(daemon_bin, sizeof daemon_bin, "%s", opt.daemon);
    } else if (env && *env) {
        snprintf(daemon_bin, sizeof daemon_bin, "%s", env);
    } else {
        daemon_bin[0] = '\0';
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = '\0';
            /* build/bench/bench_server -> build/streamdbd */
            const char *rel[] = { "/../streamdbd", "/streamdbd" };
            for (size_t i = 0; i < 2 && !daemon_bin[0]; i++) {
                snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
                if (access(cand, X_OK) == 0 && realpath(cand, daemon_bin) == NULL)
                    daemon_bin[0] = '\0';
            }
        }
        if (!daemon_bin[0])
            snprintf(daemon_bin, sizeof daemon_bin, "build/streamdbd");
    }
    if (access(daemon_bin, X_OK) != 0)
        die("cannot run the daemon %s: %s (build it with make, or give its path with "
            "--streamdbd or SDB_STREAMDBD)", daemon_bin, strerror(errno));
}

static void make_tmp_dir(void)
{
    const char *base = opt.dir_base;
    struct stat st;
    if (!base)
        base = stat("build", &st) == 0 && S_ISDIR(st.st_mode) ? "build" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/sdb-netbench.XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        int e = errno;
        tmp_dir[0] = '\0';
        die("cannot create a temporary directory under %s: %s", base, strerror(e));
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/streamdbd.json", tmp_dir);
    snprintf(log_path, sizeof log_path, "%s/streamdbd.log", tmp_dir);
    snprintf(data_dir, sizeof data_dir, "%s/data", tmp_dir);
    snprintf(sock_path, sizeof sock_path, "%s/streamdbd.sock", tmp_dir);
    if (strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(sock_dir, sizeof sock_dir, "/tmp/sdb-netsock.XXXXXX");
        if (!mkdtemp(sock_dir)) {
            sock_dir[0] = '\0';
            die("cannot create a socket directory in /tmp: %s", strerror(errno));
        }
        snprintf(sock_path, sizeof sock_path, "%s/streamdbd.sock", sock_dir);
    }
    struct statfs fs;
    if (statfs(tmp_dir, &fs) == 0 && (unsigned long)fs.f_type == TMPFS_MAGIC_NUMBER)
        fprintf(stderr, "bench_server: WARNING: %s is on tmpfs: durable writes do not reach "
                "a disk; use --dir on a real file system\n", tmp_dir);
}

/* Writes s as a JSON string (the temporary paths hold no control bytes). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_config(int port)
{
    FILE *f = fopen(cfg_path, "w");
    if (!f)
        die("cannot write %s: %s", cfg_path, strerror(errno));
    fprintf(f, "{\n  \"listen\": \"127.0.0.1:%d\",\n  \"unix_socket\": ", port);
    json_str(f, sock_path);
    fprintf(f, ",\n  \"data_dir\": ");
    json_str(f, data_dir);
    fprintf(f, ",\n  \"log_level\": \"info\",\n");
    if (opt.workers)
        fprintf(f, "  \"workers\": %d,\n", opt.workers);
    fprintf(f, "  \"engine\": { \"durability\": \"full\", \"use_mmap\": %s }\n}\n",
            opt.no_mmap ? "false" : "true");
    if (fclose(f) != 0)
        die("cannot write %s", cfg_path);
}

/* Starts the daemon and waits until both listeners accept; retries with
 * another port when the chosen one was taken meanwhile. */
static void start_daemon(void)
{
    for (int attempt = 1;; attempt++) {
        int lfd = tcp_listen_any(&daemon_port);   /* a free port, released for the daemon */
        close(lfd);
        write_config(daemon_port);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            sigset_t none;
            sigemptyset(&none);
            pthread_sigmask(SIG_SETMASK, &none, NULL);
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            execl(daemon_bin, daemon_bin, "-c", cfg_path, (char *)NULL);
            fprintf(stderr, "exec %s: %s\n", daemon_bin, strerror(errno));
            _exit(127);
        }
        daemon_pid = pid;
        uint64_t deadline = now_ns() + 20000000000ull;
        for (;;) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                daemon_pid = -1;
                FILE *lf = fopen(log_path, "r");
                char line[512];
                int in_use = 0;
                while (lf && fgets(line, sizeof line, lf))
                    in_use |= strstr(line, "address already in use") != NULL;
                if (lf)
                    fclose(lf);
                if (in_use && attempt < 5) {
                    progress("port %d was taken, retrying", daemon_port);
                    break;
                }
                die("the daemon exited during startup (%s %d)",
                    WIFEXITED(status) ? "status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            }
            int u = unix_connect(sock_path), t = u >= 0 ? tcp_connect(daemon_port) : -1;
            if (u >= 0)
                close(u);
            if (t >= 0) {
                close(t);
                return;
            }
            if (now_ns() > deadline)
                die("the daemon did not accept connections within 20 s");
            sleep_secs(0.01);
        }
    }
}

/* SIGTERM, then waits for exit status 0.  Returns the time it took (s). */
static double stop_daemon(void)
{
    uint64_t t0 = now_ns();
    if (kill(daemon_pid, SIGTERM) != 0)
        die("kill(%d, SIGTERM): %s", (int)daemon_pid, strerror(errno));
    int status = wait_daemon(60);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (status == -1)
        die("the daemon did not exit within 60 s of SIGTERM");
    daemon_pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the daemon did not exit cleanly on SIGTERM (%s %d)",
            WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return secs;
}

static client_t *daemon_pool;    /* opt.conns TCP connections to the daemon */
static client_t *base_pool;      /* opt.conns TCP connections to the baseline server */
static client_t admin;           /* a Unix-socket connection to the daemon */

static void open_tcp(client_t *c, int port, const char *name, int hello)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        die("%s: connect to 127.0.0.1:%d: %s", name, port, strerror(errno));
    cl_init(c, fd, name);
    if (hello)
        cl_hello(c);
}

/* ---- Memory sampler ----------------------------------------------------- */

static struct {
    pthread_t tid;
    atomic_int stop;
    procmem_t peak;       /* per field maximum over the samples */
    unsigned samples;
} sampler;

static void *sampler_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&sampler.stop)) {
        procmem_t m;
        if (read_procmem(daemon_pid, &m) == 0) {
            sampler.peak.rss = m.rss > sampler.peak.rss ? m.rss : sampler.peak.rss;
            sampler.peak.anon = m.anon > sampler.peak.anon ? m.anon : sampler.peak.anon;
            sampler.peak.file = m.file > sampler.peak.file ? m.file : sampler.peak.file;
            sampler.peak.hwm = m.hwm;
            sampler.samples++;
        }
        sleep_secs(SAMPLE_MS / 1000.0);
    }
    return NULL;
}

/* ---- 1: a 256 MiB PUT and GET over TCP vs a plain TCP copy -------------- */

typedef struct {
    int lfd;
    uint8_t *dst;
    size_t size;
    uint64_t t_end;
} sink_t;

static void *sink_main(void *arg)
{
    sink_t *s = arg;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        die("baseline copy: accept: %s", strerror(errno));
    set_nodelay(fd);
    size_t got = 0;
    while (got < s->size) {
        size_t want = s->size - got < COPY_CHUNK ? s->size - got : COPY_CHUNK;
        ssize_t n = recv(fd, s->dst + got, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("baseline copy: recv: %s", n ? strerror(errno) : "connection closed");
        got += (size_t)n;
    }
    s->t_end = now_ns();
    close(fd);
    return NULL;
}

/* Copies src to dst over a loopback TCP connection between this thread and a
 * receiver thread (write()/recv() of 1 MiB).  Seconds, from the first write
 * to the last byte received. */
static double copy_baseline(const uint8_t *src, uint8_t *dst, size_t size)
{
    sink_t s = { .dst = dst, .size = size };
    int port;
    pthread_t tid;
    s.lfd = tcp_listen_any(&port);
    if (pthread_create(&tid, NULL, sink_main, &s) != 0)
        die("pthread_create failed");
    int fd = tcp_connect(port);
    if (fd < 0)
        die("baseline copy: connect: %s", strerror(errno));
    uint64_t t0 = now_ns();
    for (size_t off = 0; off < size;) {
        size_t len = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
        struct iovec iov = { (void *)(src + off), len };
        writev_all(fd, &iov, 1, "baseline copy");
        off += len;
    }
    pthread_join(tid, NULL);
    close(fd);
    close(s.lfd);
    if (memcmp(src, dst, size) != 0)
        die("baseline copy: the bytes received differ from the bytes sent");
    return (double)(s.t_end - t0) / 1e9;
}

static void check_big(const uint8_t *dst, const uint8_t *src, size_t size, uint32_t crc,
                      const sdb_docinfo_t *info, const char *what)
{
    uint32_t got = (uint32_t)crc32_z(0L, dst, size);
    if (info->size != size || info->crc32 != crc)
        die("%s: GET_HEADER says %llu bytes, CRC %08x; stored %zu bytes, CRC %08x", what,
            (unsigned long long)info->size, (unsigned)info->crc32, size, (unsigned)crc);
    if (got != crc || memcmp(dst, src, size) != 0)
        die("%s: wrong bytes received (CRC32 %08x, expected %08x)", what, (unsigned)got,
            (unsigned)crc);
}

/* The engine alone, in this process, on its own database in the same
 * directory: the same bytes through sdb_writer (chunk_bytes pieces, durable)
 * and back through a CRC-checked sdb_reader (chunk_bytes reads), then deleted
 * and flushed as the daemon's copy is.  Seconds in *w and *r. */
static void engine_ref(sdb_t *db, const uint8_t *src, uint8_t *dst, size_t size, uint32_t crc,
                       double *w, double *r)
{
    const char *path = "/bench/bulk/engine";
    sdb_writer_t *wr;
    sdb_reader_t *rd;
    sdb_docinfo_t info;
    size_t chunk = srv.chunk, off, n;
    int rc;

    uint64_t t0 = now_ns();
    if ((rc = sdb_writer_open(db, path, SDB_PROTO_UNSET, &wr)) != SDB_OK)
        die("engine reference: sdb_writer_open: %s", sdb_strerror(rc));
    for (off = 0; off < size; off += n) {
        n = size - off < chunk ? size - off : chunk;
        if ((rc = sdb_writer_write(wr, src + off, n)) != SDB_OK)
            die("engine reference: sdb_writer_write: %s", sdb_strerror(rc));
    }
    if ((rc = sdb_writer_commit(wr, &info)) != SDB_OK)
        die("engine reference: sdb_writer_commit: %s", sdb_strerror(rc));
    *w = (double)(now_ns() - t0) / 1e9;
    if (info.size != size || info.crc32 != crc)
        die("engine reference: commit reports %llu bytes, CRC %08x", (unsigned long long)info.size,
            (unsigned)info.crc32);
    settle();

    memset(dst, 0, size);
    t0 = now_ns();
    if ((rc = sdb_reader_open(db, path, &rd, &info)) != SDB_OK)
        die("engine reference: sdb_reader_open: %s", sdb_strerror(rc));
    for (off = 0;; off += n) {
        size_t want = size - off < chunk ? size - off : chunk;
        if ((rc = sdb_reader_read(rd, dst + off, want ? want : 1, &n)) != SDB_OK)
            die("engine reference: sdb_reader_read: %s", sdb_strerror(rc));
        if (n == 0)
            break;
        if (off + n > size)
            die("engine reference: the reader returned more than %zu bytes", size);
    }
    sdb_reader_close(rd);
    *r = (double)(now_ns() - t0) / 1e9;
    check_big(dst, src, size, crc, &info, "engine reference read");
    if ((rc = sdb_delete(db, path)) != SDB_OK || (rc = sdb_flush(db)) != SDB_OK)
        die("engine reference: delete/flush: %s", sdb_strerror(rc));
    settle();
}

static void bench_bulk(void)
{
    const char *path = "/bench/bulk/big";
    size_t size = opt.bulk_size;
    double bytes = (double)size;
    double best_base = INFINITY, best_put = INFINITY, best_get = INFINITY, best_q = INFINITY;
    double best_ew = INFINITY, best_er = INFINITY;
    client_t *c = &daemon_pool[0];
    sdb_docinfo_t info;
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;

    if (size > srv.max_doc)
        die("the bulk document (%zu bytes) is over the daemon's max_document_bytes (%llu)", size,
            (unsigned long long)srv.max_doc);
    uint8_t *src = xmalloc(size), *dst = xmalloc(size);
    fill_random(src, size, 42);
    memset(dst, 0, size);                          /* fault the pages in before timing */
    uint32_t crc = (uint32_t)crc32_z(0L, src, size);
    procmem_t m0 = daemon_mem(), m_put = m0;
    char ref_file[1100];
    sdb_config_t ecfg;
    sdb_t *edb;
    snprintf(ref_file, sizeof ref_file, "%s/engine-reference.sdb", tmp_dir);
    sdb_config_default(&ecfg);
    ecfg.durable = 1;
    ecfg.use_mmap = !opt.no_mmap;
    int rc = sdb_open(ref_file, &ecfg, &edb);
    if (rc != SDB_OK)
        die("engine reference: sdb_open %s: %s", ref_file, sdb_strerror(rc));

    atomic_store(&sampler.stop, 0);
    sampler.peak = m0;
    if (pthread_create(&sampler.tid, NULL, sampler_main, NULL) != 0)
        die("pthread_create failed");
    for (int rep = 0; rep < opt.bulk_reps; rep++) {
        double b = copy_baseline(src, dst, size);

        uint64_t t0 = now_ns();
        cl_put(c, path, src, size, crc, &info);
        double p = (double)(now_ns() - t0) / 1e9;
        if (rep == 0)
            m_put = daemon_mem();
        settle();

        memset(dst, 0, size);
        t0 = now_ns();
        cl_get(c, path, 0, dst, size, &info);
        double g = (double)(now_ns() - t0) / 1e9;
        check_big(dst, src, size, crc, &info, "GET (bulk)");

        memset(dst, 0, size);
        t0 = now_ns();
        cl_get(c, path, SDB_FLAG_QUICK, dst, size, &info);
        double q = (double)(now_ns() - t0) / 1e9;
        check_big(dst, src, size, crc, &info, "GET QUICK (bulk)");

        /* untimed: free the document's pages for the next repetition */
        cl_simple(&admin, SDB_OP_DELETE, path, SDB_OP_OK, &f, &r);
        cl_simple(&admin, SDB_OP_FLUSH, NULL, SDB_OP_OK, &f, &r);
        settle();

        double ew, er;
        engine_ref(edb, src, dst, size, crc, &ew, &er);
        progress("bulk rep %d: TCP copy %.0f MB/s, PUT %.0f MB/s, GET %.0f MB/s, GET QUICK "
                 "%.0f MB/s; engine alone: write %.0f MB/s, read %.0f MB/s", rep + 1,
                 bytes / b / MB, bytes / p / MB, bytes / g / MB, bytes / q / MB,
                 bytes / ew / MB, bytes / er / MB);
        best_ew = min_d(best_ew, ew);
        best_er = min_d(best_er, er);
        best_base = min_d(best_base, b);
        best_put = min_d(best_put, p);
        best_get = min_d(best_get, g);
        best_q = min_d(best_q, q);
    }
    atomic_store(&sampler.stop, 1);
    pthread_join(sampler.tid, NULL);
    procmem_t m1 = daemon_mem();
    if ((rc = sdb_close(edb)) != SDB_OK)
        die("engine reference: sdb_close: %s", sdb_strerror(rc));
    unlink(ref_file);
    free(src);
    free(dst);

    char metric[128], base[40];
    size_t mib = size / MIB;
    snprintf(base, sizeof base, "TCP copy, 2 threads");
    snprintf(metric, sizeof metric, "%zu MiB PUT over TCP, %u KiB PUT_DATA, durable", mib,
             srv.chunk / KIB);
    row_t *row = add_row(metric, "MB/s", bytes / best_put / MB, bytes / best_base / MB,
                         RATIO_RATE, base);
    row->ratio_min = 0.3;
    snprintf(metric, sizeof metric, "%zu MiB GET over TCP, CRC checked", mib);
    row = add_row(metric, "MB/s", bytes / best_get / MB, bytes / best_base / MB, RATIO_RATE, base);
    row->ratio_min = 0.3;
    snprintf(metric, sizeof metric, "%zu MiB GET over TCP, QUICK flag", mib);
    add_row(metric, "MB/s", bytes / best_q / MB, bytes / best_base / MB, RATIO_RATE, base);
    snprintf(base, sizeof base, "sdb_writer in-process");
    add_row("  PUT vs the engine alone (no network)", "MB/s", bytes / best_put / MB,
            bytes / best_ew / MB, RATIO_RATE, base);
    snprintf(base, sizeof base, "sdb_reader in-process");
    add_row("  GET vs the engine alone (no network)", "MB/s", bytes / best_get / MB,
            bytes / best_er / MB, RATIO_RATE, base);

    snprintf(base, sizeof base, "VmHWM at start");
    snprintf(metric, sizeof metric, "daemon VmHWM after the first %zu MiB PUT", mib);
    add_row(metric, "MiB", (double)m_put.hwm / MIB, (double)m0.hwm / MIB, RATIO_SIZE, base);
    snprintf(metric, sizeof metric, "daemon VmHWM after %zu MiB PUT+GET (x%d)", mib,
             opt.bulk_reps);
    row = add_row(metric, "MiB", (double)m1.hwm / MIB, (double)m0.hwm / MIB, RATIO_SIZE, base);
    row->value_max = 64;
    snprintf(base, sizeof base, "RssAnon at start");
    add_row("  of which: peak RssAnon (heap, sampled)", "MiB", (double)sampler.peak.anon / MIB,
            (double)m0.anon / MIB, RATIO_SIZE, base);
    snprintf(base, sizeof base, "RssFile at start");
    add_row("  of which: peak RssFile (mapped file, sampled)", "MiB",
            (double)sampler.peak.file / MIB, (double)m0.file / MIB, RATIO_SIZE, base);
    progress("daemon memory: start VmHWM %.1f MiB (anon %.1f, file %.1f); after PUT+GET "
             "VmHWM %.1f MiB, VmRSS %.1f (anon %.1f, file %.1f); %u samples, peak RSS %.1f",
             (double)m0.hwm / MIB, (double)m0.anon / MIB, (double)m0.file / MIB,
             (double)m1.hwm / MIB, (double)m1.rss / MIB, (double)m1.anon / MIB,
             (double)m1.file / MIB, sampler.samples, (double)sampler.peak.rss / MIB);
}

/* ---- 2 and 3: small requests on many connections ------------------------ */

enum { W_GET, W_PING, W_PUT, W_LOAD };

typedef struct {
    pthread_t tid;
    client_t *cl;
    int op;
    unsigned idx, nworkers, run;
    pthread_barrier_t *start;
    uint64_t rng;
    uint64_t ops;
    uint64_t *lat;                /* ns per request */
    size_t nlat, caplat;
    uint8_t buf[SMALL];
} worker_t;

static atomic_int run_stop;

static void do_get(worker_t *w)
{
    char path[64];
    sdb_docinfo_t info;
    unsigned i = (unsigned)(rng_step(&w->rng) % opt.ndocs);
    small_path(path, sizeof path, i);
    size_t n = cl_get(w->cl, path, 0, w->buf, sizeof w->buf, &info);
    if (n != SMALL || info.crc32 != small_crc[i] || memcmp(w->buf, small_docs[i], SMALL) != 0)
        die("%s: GET %s: wrong data (%zu bytes, header CRC %08x, expected %08x)", w->cl->name,
            path, n, (unsigned)info.crc32, (unsigned)small_crc[i]);
}

static void do_ping(worker_t *w)
{
    client_t *c = w->cl;
    unsigned i = (unsigned)(rng_step(&w->rng) % opt.ndocs);
    uint8_t hdr[HDR];
    sdb_proto_header_t h = { .opcode = SDB_OP_PING, .length = SMALL, .request_id = ++c->rid };
    sdb_proto_header_encode(hdr, &h);
    struct iovec iov[2] = { { hdr, HDR }, { small_docs[i], SMALL } };
    writev_all(c->fd, iov, 2, c->name);
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;
    cl_frame(c, &f, &r);
    cl_expect(c, &r, SDB_OP_PONG, h.request_id, "PING");
    if (r.u.raw.len != SMALL || memcmp(r.u.raw.ptr, small_docs[i], SMALL) != 0)
        die("%s: PONG does not carry PING's payload", c->name);
}

static void do_put(worker_t *w)
{
    char path[96];
    unsigned i = (unsigned)((w->idx + w->ops) % opt.ndocs);
    snprintf(path, sizeof path, "/bench/put/run%u/c%03u/%010llu", w->run, w->idx,
             (unsigned long long)w->ops);
    cl_put(w->cl, path, small_docs[i], SMALL, small_crc[i], NULL);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    if (w->op == W_LOAD) {           /* untimed setup: every nworkers-th small document */
        char path[64];
        for (unsigned i = w->idx; i < opt.ndocs; i += w->nworkers) {
            small_path(path, sizeof path, i);
            cl_put(w->cl, path, small_docs[i], SMALL, small_crc[i], NULL);
        }
        return NULL;
    }
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(&run_stop, memory_order_relaxed)) {
        uint64_t t0 = now_ns();
        switch (w->op) {
        case W_GET: do_get(w); break;
        case W_PING: do_ping(w); break;
        default: do_put(w); break;
        }
        uint64_t t = now_ns() - t0;
        if (w->nlat == w->caplat) {
            w->caplat = w->caplat ? w->caplat * 2 : 4096;
            w->lat = xrealloc(w->lat, w->caplat * sizeof *w->lat);
        }
        w->lat[w->nlat++] = t;
        w->ops++;
    }
    return NULL;
}

typedef struct {
    double ops_s;
    double p50_us, p99_us;
    uint64_t ops;
} run_result_t;

/* Runs op on n connections of pool, one request at a time per connection,
 * for opt.secs.  Returns completed requests per second and the latency
 * percentiles of every request. */
static run_result_t run_conns(client_t *pool, unsigned n, int op)
{
    static unsigned run_id;
    worker_t *w = calloc(n, sizeof *w);
    pthread_barrier_t start;
    run_result_t res = { 0, NAN, NAN, 0 };
    if (!w)
        die("out of memory");
    atomic_store(&run_stop, 0);
    pthread_barrier_init(&start, NULL, n + 1);
    run_id++;
    for (unsigned i = 0; i < n; i++) {
        w[i].cl = &pool[i];
        w[i].op = op;
        w[i].idx = i;
        w[i].nworkers = n;
        w[i].run = run_id;
        w[i].start = &start;
        w[i].rng = 0x9e3779b97f4a7c15ull * (run_id * 1000u + i + 1);
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    if (op == W_LOAD) {
        for (unsigned i = 0; i < n; i++)
            pthread_join(w[i].tid, NULL);
        pthread_barrier_destroy(&start);
        free(w);
        return res;
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    sleep_secs(opt.secs);
    atomic_store(&run_stop, 1);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(w[i].tid, NULL);
        total += w[i].nlat;
        res.ops += w[i].ops;
    }
    uint64_t t1 = now_ns();
    pthread_barrier_destroy(&start);
    uint64_t *all = xmalloc(total * sizeof *all);
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat, w[i].nlat * sizeof *all);
        k += w[i].nlat;
        free(w[i].lat);
    }
    free(w);
    qsort(all, total, sizeof *all, cmp_u64);
    if (total) {
        res.p50_us = (double)all[(size_t)ceil(0.50 * (double)total) - 1] / 1e3;
        res.p99_us = (double)all[(size_t)ceil(0.99 * (double)total) - 1] / 1e3;
    }
    free(all);
    res.ops_s = (double)res.ops / ((double)(t1 - t0) / 1e9);
    return res;
}

/* Keeps the best figures of several rounds: highest rate, lowest p50 and
 * lowest p99 (each on its own). */
static void keep_best(run_result_t *best, const run_result_t *r)
{
    best->ops_s = max_d(best->ops_s, r->ops_s);
    best->p50_us = isnan(best->p50_us) ? r->p50_us : min_d(best->p50_us, r->p50_us);
    best->p99_us = isnan(best->p99_us) ? r->p99_us : min_d(best->p99_us, r->p99_us);
}

static void bench_get(void)
{
    run_result_t none = { 0, NAN, NAN, 0 };
    run_result_t bn = none, dn = none, pn = none, bpn = none, b1 = none, d1 = none, p1 = none;
    run_result_t bp1 = none;
    unsigned n = opt.conns;
    char metric[128], base[40];

    for (int round = 0; round < opt.rounds; round++) {
        run_result_t r1 = run_conns(base_pool, n, W_GET);
        run_result_t r2 = run_conns(daemon_pool, n, W_GET);
        run_result_t r3 = run_conns(base_pool, n, W_PING);
        run_result_t r4 = run_conns(daemon_pool, n, W_PING);
        run_result_t r5 = run_conns(base_pool, 1, W_GET);
        run_result_t r6 = run_conns(daemon_pool, 1, W_GET);
        run_result_t r7 = run_conns(daemon_pool, 1, W_PING);
        run_result_t r8 = run_conns(base_pool, 1, W_PING);
        progress("get round %d: %u conns: baseline %.0f/s (p50 %.0f us, p99 %.0f), GET %.0f/s "
                 "(p50 %.0f us, p99 %.0f); PING %.0f/s vs %.0f/s; 1 conn: baseline %.0f/s "
                 "(p50 %.1f us), GET %.0f/s (p50 %.1f us); PING p50 %.1f us vs %.1f us", round + 1,
                 n, r1.ops_s, r1.p50_us, r1.p99_us, r2.ops_s, r2.p50_us, r2.p99_us, r4.ops_s,
                 r3.ops_s, r5.ops_s, r5.p50_us, r6.ops_s, r6.p50_us, r7.p50_us, r8.p50_us);
        keep_best(&bn, &r1);
        keep_best(&dn, &r2);
        keep_best(&bpn, &r3);
        keep_best(&pn, &r4);
        keep_best(&b1, &r5);
        keep_best(&d1, &r6);
        keep_best(&p1, &r7);
        keep_best(&bp1, &r8);
    }
    snprintf(base, sizeof base, "epoll server, %u c.", n);
    snprintf(metric, sizeof metric, "1 KiB GET, %u conns x 1 in flight", n);
    add_row(metric, "ops/s", dn.ops_s, bn.ops_s, RATIO_RATE, base);
    snprintf(metric, sizeof metric, "1 KiB GET, %u conns: p50 latency", n);
    add_row(metric, "us", dn.p50_us, bn.p50_us, RATIO_TIME, base);
    snprintf(metric, sizeof metric, "1 KiB GET, %u conns: p99 latency", n);
    add_row(metric, "us", dn.p99_us, bn.p99_us, RATIO_TIME, base);
    snprintf(metric, sizeof metric, "1 KiB PING (no engine), %u conns x 1 in flight", n);
    add_row(metric, "ops/s", pn.ops_s, bpn.ops_s, RATIO_RATE, base);
    add_row("1 KiB GET, 1 conn", "ops/s", d1.ops_s, b1.ops_s, RATIO_RATE, "epoll server, 1 c.");
    add_row("1 KiB GET, 1 conn: p50 latency", "us", d1.p50_us, b1.p50_us, RATIO_TIME,
            "epoll server, 1 c.");
    add_row("1 KiB PING (no engine), 1 conn: p50 latency", "us", p1.p50_us, bp1.p50_us, RATIO_TIME,
            "epoll server, 1 c.");
}

/* One thread appending 1 KiB + fdatasync() to a fresh file for opt.secs. */
static run_result_t fsync_baseline(void)
{
    char file[1100];
    run_result_t res = { 0, NAN, NAN, 0 };
    snprintf(file, sizeof file, "%s/fsync-baseline.dat", tmp_dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", file, strerror(errno));
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(opt.secs * 1e9), t1;
    do {
        struct iovec iov = { small_docs[res.ops % opt.ndocs], SMALL };
        writev_all(fd, &iov, 1, file);
        if (fdatasync(fd) != 0)
            die("fdatasync %s: %s", file, strerror(errno));
        res.ops++;
        t1 = now_ns();
    } while (t1 < end);
    close(fd);
    unlink(file);
    res.ops_s = (double)res.ops / ((double)(t1 - t0) / 1e9);
    return res;
}

static void bench_put(void)
{
    run_result_t none = { 0, NAN, NAN, 0 };
    run_result_t fb = none, p1 = none, pn = none;
    unsigned n = opt.conns;
    char metric[128], base[40];

    for (int round = 0; round < opt.rounds; round++) {
        run_result_t r0 = fsync_baseline();
        settle();
        run_result_t r1 = run_conns(daemon_pool, 1, W_PUT);
        settle();
        run_result_t r2 = run_conns(daemon_pool, n, W_PUT);
        settle();
        progress("put round %d: write+fdatasync %.0f/s; 1 conn %.0f/s (p50 %.0f us); %u conns "
                 "%.0f/s (p50 %.0f us, p99 %.0f), x%.2f", round + 1, r0.ops_s, r1.ops_s,
                 r1.p50_us, n, r2.ops_s, r2.p50_us, r2.p99_us, r2.ops_s / r1.ops_s);
        keep_best(&fb, &r0);
        keep_best(&p1, &r1);
        keep_best(&pn, &r2);
    }
    add_row("1 KiB durable PUT, 1 conn", "ops/s", p1.ops_s, fb.ops_s, RATIO_RATE,
            "1 KiB write+fdatasync");
    add_row("1 KiB durable PUT, 1 conn: p50 latency", "us", p1.p50_us, NAN, RATIO_NONE, NULL);
    snprintf(base, sizeof base, "1 conn (same run)");
    snprintf(metric, sizeof metric, "1 KiB durable PUT, %u conns x 1 in flight", n);
    add_row(metric, "ops/s", pn.ops_s, p1.ops_s, RATIO_RATE, base);
    snprintf(metric, sizeof metric, "1 KiB durable PUT, %u conns: p50 latency", n);
    add_row(metric, "us", pn.p50_us, NAN, RATIO_NONE, NULL);
    snprintf(metric, sizeof metric, "1 KiB durable PUT, %u conns: p99 latency", n);
    add_row(metric, "us", pn.p99_us, NAN, RATIO_NONE, NULL);
}

/* ---- Main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_server [--quick] [--only bulk,get,put] [--dir DIR] [--streamdbd FILE]\n"
            "                    [--workers N] [--no-mmap] [--bulk-mib N] [--conns N] [--secs S]\n"
            "  --quick          small sizes, a smoke run of a few seconds (or SDB_BENCH_QUICK=1)\n"
            "  --only LIST      sections to run: bulk, get, put (default all)\n"
            "  --dir DIR        where the temporary directory is made (default build/ if it\n"
            "                   exists, else /tmp; also SDB_BENCH_DIR); not tmpfs\n"
            "  --streamdbd FILE the daemon (default: SDB_STREAMDBD, else streamdbd in the\n"
            "                   build directory above this program, else build/streamdbd)\n"
            "  --workers N      the daemon's worker threads (default: its own, one per CPU)\n"
            "  --no-mmap        run the daemon with engine.use_mmap = false\n"
            "  --bulk-mib N     size of the big document (default 256; --quick 16)\n"
            "  --conns N        connections of the get and put sections (default 50)\n"
            "  --secs S         duration of each small-request run (default 1.5; --quick 0.3)\n");
    exit(2);
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_server: %s: expected %ld..%ld, got '%s'\n", what, lo, hi, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *env;
    long bulk_mib = 0;
    double secs = 0;
    if ((env = getenv("SDB_BENCH_QUICK")) && *env && strcmp(env, "0") != 0)
        opt.quick = 1;
    opt.dir_base = getenv("SDB_BENCH_DIR");
    opt.conns = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            opt.quick = 1;
        else if (strcmp(a, "--no-mmap") == 0)
            opt.no_mmap = 1;
        else if (!v)
            usage();
        else if (strcmp(a, "--only") == 0)
            opt.only = v, i++;
        else if (strcmp(a, "--dir") == 0)
            opt.dir_base = v, i++;
        else if (strcmp(a, "--streamdbd") == 0)
            opt.daemon = v, i++;
        else if (strcmp(a, "--workers") == 0)
            opt.workers = (int)parse_long(v, 1, 128, "--workers"), i++;
        else if (strcmp(a, "--bulk-mib") == 0)
            bulk_mib = parse_long(v, 1, 4096, "--bulk-mib"), i++;
        else if (strcmp(a, "--conns") == 0)
            opt.conns = (unsigned)parse_long(v, 1, MAX_CONNS, "--conns"), i++;
        else if (strcmp(a, "--secs") == 0) {
            secs = atof(v), i++;
            if (!(secs > 0 && secs <= 600))
                usage();
        } else
            usage();
    }
    opt.bulk_size = (size_t)(bulk_mib ? bulk_mib : opt.quick ? 16 : 256) * MIB;
    opt.bulk_reps = opt.quick ? 1 : 3;
    opt.ndocs = opt.quick ? 200 : 1000;
    opt.secs = secs > 0 ? secs : opt.quick ? 0.3 : 1.5;
    opt.rounds = opt.quick ? 1 : 3;

    /* SIGINT/SIGTERM go to one thread, which exits through cleanup() */
    static sigset_t sigs;
    pthread_t sig_tid;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&sig_tid, NULL, signal_thread, &sigs) != 0)
        die("pthread_create failed");
    pthread_detach(sig_tid);

    atexit(cleanup);
    find_daemon();
    make_tmp_dir();
    make_small_docs();
    int need_small = section_on("get") || section_on("put");
    if (section_on("get"))
        bs_start();
    start_daemon();
    fprintf(stderr, "bench_server: daemon %s pid %d, tcp 127.0.0.1:%d, unix %s, log %s\n",
            daemon_bin, (int)daemon_pid, daemon_port, sock_path, log_path);

    int fd = unix_connect(sock_path);
    if (fd < 0)
        die("connect to %s: %s", sock_path, strerror(errno));
    cl_init(&admin, fd, "daemon (unix)");
    cl_hello(&admin);
    unsigned npool = need_small ? opt.conns : 1;
    daemon_pool = calloc(npool, sizeof *daemon_pool);
    if (!daemon_pool)
        die("out of memory");
    for (unsigned i = 0; i < npool; i++)
        open_tcp(&daemon_pool[i], daemon_port, "daemon (tcp)", 1);
    if (section_on("get")) {
        base_pool = calloc(opt.conns, sizeof *base_pool);
        if (!base_pool)
            die("out of memory");
        for (unsigned i = 0; i < opt.conns; i++)
            open_tcp(&base_pool[i], bs.port, "baseline server", 0);
    }

    struct utsname un;
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    uname(&un);
    procmem_t m0 = daemon_mem();
    int workers = opt.workers;
    FILE *lf = fopen(log_path, "r");
    char line[512];
    while (!workers && lf && fgets(line, sizeof line, lf)) {
        const char *p = strstr(line, " ready (");
        if (p && sscanf(p, " ready (%d workers)", &workers) != 1)
            workers = 0;
    }
    if (lf)
        fclose(lf);
    printf("StreamDb %s streamdbd network benchmark%s: %s, %s %s, %ld CPUs, dir %s\n",
           SDB_VERSION_STRING, opt.quick ? " (--quick)" : "", date, un.nodename, un.release,
           sysconf(_SC_NPROCESSORS_ONLN), tmp_dir);
    printf("Daemon: %s (\"%s\"), %d workers, durability full, use_mmap %s; max_frame_bytes %u, "
           "chunk_bytes %u, max_inflight %u\n", daemon_bin, srv.name, workers,
           opt.no_mmap ? "false" : "true", srv.max_frame, srv.chunk, srv.max_inflight);
    printf("Best of %d reps (bulk), %d rounds of %.1f s (small requests, each connection one "
           "request at a time); load average %.2f\n", opt.bulk_reps, opt.rounds, opt.secs,
           load_avg());
    fflush(stdout);

    if (section_on("bulk")) {
        fprintf(stderr, "== bulk\n");
        bench_bulk();
    }
    if (need_small) {
        fprintf(stderr, "== loading %u documents of 1 KiB\n", opt.ndocs);
        run_conns(daemon_pool, opt.conns < opt.ndocs ? opt.conns : opt.ndocs, W_LOAD);
        settle();
    }
    if (section_on("get")) {
        fprintf(stderr, "== get\n");
        bench_get();
    }
    if (section_on("put")) {
        fprintf(stderr, "== put\n");
        bench_put();
    }

    /* the daemon's own view (server-side latency, power-of-two buckets) */
    sdb_proto_frame_t f;
    sdb_proto_msg_t r;
    cl_simple(&admin, SDB_OP_STATS, NULL, SDB_OP_STATS_RESULT, &f, &r);
    fprintf(stderr, "  .. daemon STATS: %.*s\n", (int)r.u.raw.len, (const char *)r.u.raw.ptr);

    procmem_t m_end = daemon_mem();
    add_row("daemon VmHWM at the end", "MiB", (double)m_end.hwm / MIB, (double)m0.hwm / MIB,
            RATIO_SIZE, "VmHWM at start");
    cl_close(&admin);
    for (unsigned i = 0; i < npool; i++)
        cl_close(&daemon_pool[i]);
    free(daemon_pool);
    if (base_pool) {
        for (unsigned i = 0; i < opt.conns; i++)
            cl_close(&base_pool[i]);
        free(base_pool);
    }
    bs_stop();
    double stop_s = stop_daemon();
    add_row("daemon stop: SIGTERM to exit status 0", "ms", stop_s * 1e3, NAN, RATIO_NONE, NULL);
    free(small_docs);
    free(small_crc);

    print_table();
    printf("load average at the end: %.2f (%ld CPUs)\n", load_avg(),
           sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
