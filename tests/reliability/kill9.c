/*
 * kill9.c -- kill -9 cycles against a real streamdbd, with a ledger of
 * acknowledged writes (docs/RELIABILITY.md, "kill -9 cycles").
 *
 * The harness starts streamdbd on a scratch directory, runs several client
 * threads that PUT and DELETE paths with distinct payloads through the
 * client library, and records in its own memory (the ledger) every write the
 * daemon acknowledged.  At a random moment it kills the daemon with SIGKILL,
 * restarts it on the same directory, and reads every path back:
 *
 *   1. Each client owns its own paths, so at most one write per path is in
 *      flight at the kill.  A path must hold its last acknowledged state
 *      (these exact bytes, or absent after an acknowledged DELETE), or the
 *      state of the write that was in flight at the kill (either outcome is
 *      allowed; the one found becomes the ledger's state).
 *   2. Anything else is a LOSS: printed with the path and what was expected,
 *      and the run exits 1.  Payloads are derived from a per-write seed that
 *      is also written into the first bytes, so a wrong payload is named.
 *   3. The ledger carries over: cycle n verifies the writes of every earlier
 *      cycle, not only its own.
 *
 * It must be able to fail.  --selftest runs two cycles and then, behind the
 * ledger's back, overwrites one acknowledged path, deletes another and
 * creates one the ledger says is absent; the run passes only if the verifier
 * reports exactly those three.  With --durability none (the daemon's lazy
 * mode, which buffers journal records for up to a second) kills lose recent
 * acknowledged writes, and the harness reports them.
 *
 * Usage: kill9 [--cycles N] [--clients N] [--keys N] [--min-ms N] [--max-ms N]
 *              [--seed N] [--durability full|none] [--selftest] [--keep]
 *              [--daemon PATH] [--dir DIR]
 * Exit: 0 no loss (or, with --selftest, every planted fault found),
 *       1 loss or a failed self-test, 2 usage or set-up failure.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "streamdb.h"
#include "rel_util.h"
#include "streamdb_client.h"

#define MAX_CLIENTS 64

/* One state of a path: absent, or the payload of write `seed`, len bytes. */
typedef struct {
    int present;
    uint64_t seed;
    size_t len;
} state_t;

/* The ledger's entry for one path.  Only its client thread writes it while
 * the clients run; the main thread reads it after joining them. */
typedef struct {
    state_t acked;       /* the last state the daemon acknowledged */
    state_t inflight;    /* the write sent but not answered (valid if busy) */
    int busy;
} entry_t;

static struct {
    int cycles, clients, keys, min_ms, max_ms, durable, selftest, keep;
    unsigned seed;
    const char *daemon;
    char dir[512], sock[600], cfg[600], log[600], addr[620];
} opt = { 25, 4, 16, 150, 1500, 1, 0, 0, 0, "build/streamdbd", "", "", "", "", "" };

static entry_t *ledger;               /* clients * keys entries */
static atomic_uint_fast64_t next_seed = 1;
static atomic_int stop_clients;
static atomic_uint_fast64_t acked_puts, acked_deletes;


/* The payload of write `seed`: its seed and length in the first 16 bytes
 * (when it is that long), then bytes from a generator seeded by it. */
static void fill(uint8_t *p, uint64_t seed, size_t len)
{
    rel_fill(p, seed, len);
    if (len >= 16) {
        memcpy(p, &seed, 8);
        uint64_t l = len;
        memcpy(p + 8, &l, 8);
    }
}

/* Sizes: empty, small, a few pages, and now and then 100-400 KiB (several
 * DATA chunks). */
static size_t pick_len(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    r /= 100;
    if (k < 5)
        return 0;
    if (k < 60)
        return 1 + r % 400;
    if (k < 95)
        return 400 + r % 20000;
    return 100000 + r % 300000;
}

static void key_path(int client, int key, char *out, size_t cap)
{
    snprintf(out, cap, "/kill9/c%02d/k%03d", client, key);
}

static int conn_error(int rc)
{
    return rc == SDB_ECONNLOST || rc == SDB_ENORESPONSE || rc == SDB_ECONNECT ||
           rc == SDB_ESHUTDOWN || rc == SDB_EPROTO;
}

typedef struct {
    int id;
    uint64_t rng;
    int failed;          /* an answer that no kill explains */
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    sdbc_t *conn = NULL;
    sdbc_options_t o;
    sdbc_options_default(&o);
    o.timeout_ms = 20000;
    int rc = sdbc_connect(opt.addr, &o, &conn);
    if (rc) {
        if (!atomic_load(&stop_clients)) {
            fprintf(stderr, "kill9: client %d: connect: %s\n", c->id, sdbc_last_error_message());
            c->failed = 1;
        }
        return NULL;
    }
    uint8_t *buf = malloc(400000);
    if (!buf)
        die("out of memory");
    char path[64];
    while (!atomic_load(&stop_clients)) {
        c->rng = mix(c->rng);
        int key = (int)(c->rng % (uint64_t)opt.keys);
        entry_t *e = &ledger[c->id * opt.keys + key];
        key_path(c->id, key, path, sizeof path);
        state_t next = { 0, 0, 0 };
        if (c->rng % 4 != 0) {      /* 3 puts for each delete */
            next.present = 1;
            next.seed = atomic_fetch_add(&next_seed, 1);
            next.len = pick_len(mix(c->rng ^ next.seed));
            fill(buf, next.seed, next.len);
        }
        e->inflight = next;
        e->busy = 1;
        if (next.present)
            rc = sdbc_put(conn, path, buf, next.len, SDBC_ANY_VERSION, NULL);
        else {
            rc = sdbc_delete(conn, path);
            if (rc == SDB_ENOTFOUND && !e->acked.present)
                rc = 0;              /* deleting an absent path: still absent */
        }
        if (rc == 0) {
            e->acked = next;
            e->busy = 0;
            atomic_fetch_add(next.present ? &acked_puts : &acked_deletes, 1);
            continue;
        }
        if (!conn_error(rc)) {
            fprintf(stderr, "kill9: client %d: %s %s: %s (%s)\n", c->id,
                    next.present ? "PUT" : "DELETE", path, sdbc_strerror(rc),
                    sdbc_last_error_message());
            c->failed = 1;
        }
        break;                       /* the daemon is gone: e stays in flight */
    }
    free(buf);
    sdbc_close(conn);
    return NULL;
}

static pid_t start_daemon(void)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl(opt.daemon, opt.daemon, "--config", opt.cfg, (char *)NULL);
        fprintf(stderr, "kill9: exec %s: %s\n", opt.daemon, strerror(errno));
        _exit(127);
    }
    /* ready when a connection gets HELLO_OK (deadline 30 s: recovery of a
       large journal on a busy machine) */
    sdbc_options_t o;
    sdbc_options_default(&o);
    for (int i = 0; i < 3000; i++) {
        sdbc_t *c = NULL;
        if (sdbc_connect(opt.addr, &o, &c) == 0) {
            sdbc_close(c);
            return pid;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            die("streamdbd exited during start-up (status %d); see %s", st, opt.log);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    die("streamdbd did not accept a session within 30 s; see %s", opt.log);
    return -1;
}

static int same(const state_t *s, int rc, const uint8_t *data, size_t len, uint8_t *tmp)
{
    if (!s->present)
        return rc == SDB_ENOTFOUND;
    if (rc != 0 || len != s->len)
        return 0;
    fill(tmp, s->seed, s->len);
    return memcmp(tmp, data, len) == 0;
}

static void describe(char *out, size_t cap, const state_t *s)
{
    if (!s->present)
        snprintf(out, cap, "absent");
    else
        snprintf(out, cap, "write #%llu (%zu bytes)", (unsigned long long)s->seed, s->len);
}

/* Reads every path back and compares it with the ledger (rule 1).  Returns
 * the number of losses; adds to *resolved_new / *resolved_old how the writes
 * in flight at the kill came out. */
static int verify(int *resolved_new, int *resolved_old)
{
    sdbc_t *c = NULL;
    sdbc_options_t o;
    sdbc_options_default(&o);
    if (sdbc_connect(opt.addr, &o, &c))
        die("verify: connect: %s", sdbc_last_error_message());
    uint8_t *tmp = malloc(400000);
    if (!tmp)
        die("out of memory");
    int losses = 0;
    char path[64];
    for (int cl = 0; cl < opt.clients; cl++)
        for (int k = 0; k < opt.keys; k++) {
            entry_t *e = &ledger[cl * opt.keys + k];
            key_path(cl, k, path, sizeof path);
            void *data = NULL;
            size_t len = 0;
            int rc = sdbc_get(c, path, &data, &len, NULL);
            if (rc && rc != SDB_ENOTFOUND)
                die("verify: GET %s: %s (%s)", path, sdbc_strerror(rc), sdbc_last_error_message());
            if (same(&e->acked, rc, data, len, tmp)) {
                if (e->busy)
                    (*resolved_old)++;
            } else if (e->busy && same(&e->inflight, rc, data, len, tmp)) {
                e->acked = e->inflight;
                (*resolved_new)++;
            } else {
                char want[64], alt[64], got[96];
                describe(want, sizeof want, &e->acked);
                if (e->busy)
                    describe(alt, sizeof alt, &e->inflight);
                if (rc == SDB_ENOTFOUND)
                    snprintf(got, sizeof got, "absent");
                else {
                    uint64_t s = 0;
                    if (len >= 8)
                        memcpy(&s, data, 8);
                    snprintf(got, sizeof got, "%zu bytes (starting like write #%llu)", len,
                             (unsigned long long)s);
                }
                printf("LOSS %s: acknowledged %s%s%s, found %s\n", path, want,
                       e->busy ? ", or in flight " : "", e->busy ? alt : "", got);
                losses++;
                /* adopt what is there so that one loss is reported once */
                e->acked.present = rc == 0;
                e->acked.len = len;
                e->acked.seed = 0;
                if (rc == 0 && len >= 8)
                    memcpy(&e->acked.seed, data, 8);
                if (rc == 0 && !same(&e->acked, rc, data, len, tmp))
                    e->acked.seed = UINT64_MAX;   /* unknown bytes: never matches */
            }
            e->busy = 0;
            free(data);
        }
    free(tmp);
    sdbc_close(c);
    return losses;
}

/* --selftest: three changes the ledger does not know about.  Returns how
 * many were planted (a path of each kind is needed). */
static int tamper(void)
{
    sdbc_t *c = NULL;
    sdbc_options_t o;
    sdbc_options_default(&o);
    if (sdbc_connect(opt.addr, &o, &c))
        die("selftest: connect: %s", sdbc_last_error_message());
    int over = -1, del = -1, add = -1;
    for (int i = 0; i < opt.clients * opt.keys; i++) {
        if (ledger[i].acked.present && ledger[i].acked.len >= 16 && over < 0)
            over = i;
        else if (ledger[i].acked.present && del < 0)
            del = i;
        else if (!ledger[i].acked.present && add < 0)
            add = i;
    }
    int planted = 0;
    char path[64];
    uint8_t b[100];
    if (over >= 0) {
        key_path(over / opt.keys, over % opt.keys, path, sizeof path);
        fill(b, 999999999, sizeof b);
        if (sdbc_put(c, path, b, sizeof b, SDBC_ANY_VERSION, NULL) == 0)
            planted++, printf("selftest: overwrote %s behind the ledger\n", path);
    }
    if (del >= 0) {
        key_path(del / opt.keys, del % opt.keys, path, sizeof path);
        if (sdbc_delete(c, path) == 0)
            planted++, printf("selftest: deleted %s behind the ledger\n", path);
    }
    if (add >= 0) {
        key_path(add / opt.keys, add % opt.keys, path, sizeof path);
        fill(b, 999999998, sizeof b);
        if (sdbc_put(c, path, b, sizeof b, SDBC_ANY_VERSION, NULL) == 0)
            planted++, printf("selftest: created %s behind the ledger\n", path);
    }
    sdbc_close(c);
    return planted;
}

static void write_config(void)
{
    FILE *f = fopen(opt.cfg, "w");
    if (!f)
        die("%s: %s", opt.cfg, strerror(errno));
    fprintf(f,
            "{\n  \"listen\": \"\",\n  \"unix_socket\": \"%s\",\n  \"data_dir\": \"%s\",\n"
            "  \"workers\": 8,\n  \"log_level\": \"warn\",\n  \"log_file\": \"%s\",\n"
            "  \"engine\": { \"page_size\": 4096, \"durability\": \"%s\" }\n}\n",
            opt.sock, opt.dir, opt.log, opt.durable ? "full" : "none");
    if (fclose(f))
        die("%s: %s", opt.cfg, strerror(errno));
}

static long arg_long(const char *name, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || errno || n < lo || n > hi)
        die("%s: expected an integer from %ld to %ld", name, lo, hi);
    return n;
}

int main(int argc, char **argv)
{
    rel_prog = "kill9";
    const char *dir = NULL;
    opt.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cycles")) opt.cycles = (int)arg_long(a, v, 1, 100000), i++;
        else if (!strcmp(a, "--clients")) opt.clients = (int)arg_long(a, v, 1, MAX_CLIENTS), i++;
        else if (!strcmp(a, "--keys")) opt.keys = (int)arg_long(a, v, 1, 999), i++;
        else if (!strcmp(a, "--min-ms")) opt.min_ms = (int)arg_long(a, v, 0, 600000), i++;
        else if (!strcmp(a, "--max-ms")) opt.max_ms = (int)arg_long(a, v, 0, 600000), i++;
        else if (!strcmp(a, "--seed")) opt.seed = (unsigned)arg_long(a, v, 0, 0x7fffffff), i++;
        else if (!strcmp(a, "--daemon") && v) opt.daemon = v, i++;
        else if (!strcmp(a, "--dir") && v) dir = v, i++;
        else if (!strcmp(a, "--durability") && v && (!strcmp(v, "full") || !strcmp(v, "none")))
            opt.durable = !strcmp(v, "full"), i++;
        else if (!strcmp(a, "--selftest")) opt.selftest = 1;
        else if (!strcmp(a, "--keep")) opt.keep = 1;
        else {
            fprintf(stderr, "usage: kill9 [--cycles N] [--clients N] [--keys N] [--min-ms N] "
                            "[--max-ms N] [--seed N] [--durability full|none] [--selftest] "
                            "[--keep] [--daemon PATH] [--dir DIR]\n");
            return 2;
        }
    }
    if (opt.max_ms < opt.min_ms)
        die("--max-ms is below --min-ms");
    if (opt.selftest)
        opt.cycles = 2;
    if (access(opt.daemon, X_OK))
        die("%s: %s (build it with make, or pass --daemon)", opt.daemon, strerror(errno));
    if (dir) {
        if (mkdir(dir, 0700) && errno != EEXIST)
            die("%s: %s", dir, strerror(errno));
        snprintf(opt.dir, sizeof opt.dir, "%s", dir);
    } else {
        snprintf(opt.dir, sizeof opt.dir, "/tmp/sdb-kill9-XXXXXX");
        if (!mkdtemp(opt.dir))
            die("mkdtemp: %s", strerror(errno));
    }
    snprintf(opt.sock, sizeof opt.sock, "%s/d.sock", opt.dir);
    snprintf(opt.cfg, sizeof opt.cfg, "%s/streamdbd.json", opt.dir);
    snprintf(opt.log, sizeof opt.log, "%s/streamdbd.log", opt.dir);
    snprintf(opt.addr, sizeof opt.addr, "unix://%s", opt.sock);
    write_config();
    signal(SIGPIPE, SIG_IGN);
    srand(opt.seed);
    ledger = calloc((size_t)opt.clients * opt.keys, sizeof *ledger);
    if (!ledger)
        die("out of memory");
    printf("kill9: %d cycles, %d clients x %d paths, durability %s, seed %u, dir %s\n",
           opt.cycles, opt.clients, opt.keys, opt.durable ? "full" : "none", opt.seed, opt.dir);

    int total_losses = 0, res_new = 0, res_old = 0, failed = 0;
    pid_t pid = start_daemon();
    for (int cy = 1; cy <= opt.cycles; cy++) {
        uint64_t puts0 = atomic_load(&acked_puts), dels0 = atomic_load(&acked_deletes);
        pthread_t th[MAX_CLIENTS];
        client_t cl[MAX_CLIENTS];
        atomic_store(&stop_clients, 0);
        for (int i = 0; i < opt.clients; i++) {
            cl[i] = (client_t){ i, mix(((uint64_t)opt.seed << 20) ^ (uint64_t)(cy * 64 + i)), 0 };
            if (pthread_create(&th[i], NULL, client_main, &cl[i]))
                die("pthread_create failed");
        }
        int ms = opt.min_ms + (opt.max_ms > opt.min_ms ? rand() % (opt.max_ms - opt.min_ms + 1) : 0);
        usleep((useconds_t)ms * 1000);
        atomic_store(&stop_clients, 1);   /* set first: errors after the kill are expected */
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        for (int i = 0; i < opt.clients; i++) {
            pthread_join(th[i], NULL);
            failed |= cl[i].failed;
        }
        int inflight = 0;
        for (int i = 0; i < opt.clients * opt.keys; i++)
            inflight += ledger[i].busy;
        pid = start_daemon();
        if (opt.selftest && cy == opt.cycles) {
            int planted = tamper();
            int n = 0, o = 0;
            int found = verify(&n, &o);
            printf("selftest: planted %d, verifier reported %d\n", planted, found);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            if (!opt.keep) {
                char cmd[700];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", opt.dir);
                if (system(cmd)) { /* best effort */ }
            }
            int ok = planted == 3 && found == 3;
            printf("kill9 selftest: %s\n", ok ? "PASS (every planted change reported)" : "FAIL");
            return ok ? 0 : 1;
        }
        int n = 0, o = 0;
        int losses = verify(&n, &o);
        total_losses += losses;
        res_new += n;
        res_old += o;
        printf("cycle %2d: killed after %4d ms; acknowledged %llu puts, %llu deletes; "
               "%d in flight (%d found done, %d not); %d lost\n",
               cy, ms, (unsigned long long)(atomic_load(&acked_puts) - puts0),
               (unsigned long long)(atomic_load(&acked_deletes) - dels0), inflight, n, o, losses);
        fflush(stdout);
    }
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    printf("kill9: %d cycles, %llu acknowledged puts and %llu deletes checked, "
           "%d writes in flight at a kill (%d found done, %d not), %d LOST%s\n",
           opt.cycles, (unsigned long long)atomic_load(&acked_puts),
           (unsigned long long)atomic_load(&acked_deletes), res_new + res_old, res_new, res_old,
           total_losses, failed ? "; a client saw an unexpected error (above)" : "");
    if (!opt.keep && !total_losses && !failed) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", opt.dir);
        if (system(cmd)) { /* best effort */ }
    } else
        printf("kill9: scratch directory kept: %s\n", opt.dir);
    return total_losses || failed ? 1 : 0;
}
