/*
 * proto_ping.c -- the smallest StreamDb client, built only from the installed
 * <streamdb_proto.h> codec: it opens a session (HELLO) and sends one PING.
 * The packaging tests use it to check an installed or containerised
 * streamdbd without depending on the `streamdb` CLI.
 *
 * Usage: proto_ping ADDRESS, where ADDRESS is HOST:PORT or a Unix socket
 * path (anything containing a '/').  The token, if any, is taken from
 * $STREAMDB_TOKEN.  Prints "PONG from SERVER" and exits 0 when the server
 * answered; prints what failed and exits 1 otherwise (5 s timeout).
 */
#include <streamdb_proto.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int dial(const char *addr)
{
    int fd = -1;
    if (strchr(addr, '/')) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        if (strlen(addr) >= sizeof(sa.sun_path))
            return -1;
        strcpy(sa.sun_path, addr);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            perror("proto_ping: connect");
            close(fd);
            return -1;
        }
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host))
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        char *h = host;
        if (h[0] == '[' && h[strlen(h) - 1] == ']') {       /* [::1]:7878 */
            h[strlen(h) - 1] = 0;
            h++;
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
        int rc = getaddrinfo(h, colon + 1, &hints, &res);
        if (rc) {
            fprintf(stderr, "proto_ping: %s: %s\n", addr, gai_strerror(rc));
            return -1;
        }
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
            perror("proto_ping: connect");
    }
    if (fd >= 0) {
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

static int send_msg(int fd, const sdb_proto_msg_t *m)
{
    uint8_t buf[4096];
    size_t len;
    int rc = sdb_proto_encode(m, buf, sizeof(buf), &len);
    if (rc) {
        fprintf(stderr, "proto_ping: encode: %s\n", sdb_proto_strerror(rc));
        return -1;
    }
    return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: proto_ping HOST:PORT|SOCKET_PATH\n");
        return 1;
    }
    int fd = dial(argv[1]);
    if (fd < 0)
        return 1;
    const char *token = getenv("STREAMDB_TOKEN");
    static const char cookie[] = "streamdb-packaging";
    sdb_proto_msg_t hello = { .opcode = SDB_OP_HELLO, .request_id = 1 };
    hello.u.hello.min_version = SDB_PROTO_VERSION_MIN;
    hello.u.hello.max_version = SDB_PROTO_VERSION;
    hello.u.hello.token = (sdb_proto_str_t){ token ? token : "", token ? strlen(token) : 0 };
    hello.u.hello.client = (sdb_proto_str_t){ "proto_ping", 10 };
    sdb_proto_msg_t ping = { .opcode = SDB_OP_PING, .request_id = 2 };
    ping.u.raw = (sdb_proto_bytes_t){ (const uint8_t *)cookie, sizeof(cookie) - 1 };
    if (send_msg(fd, &hello) || send_msg(fd, &ping)) {
        perror("proto_ping: write");
        return 1;
    }

    sdb_proto_decoder_t dec;
    sdb_proto_decoder_init(&dec, SDB_PROTO_MIN_FRAME);
    char server[SDB_PROTO_MAX_NAME + 1] = "?";
    uint8_t in[4096];
    int status = 1;
    for (;;) {
        ssize_t n = read(fd, in, sizeof(in));
        if (n <= 0) {
            fprintf(stderr, "proto_ping: %s\n", n == 0 ? "connection closed by the server"
                                                       : "no answer within 5 s");
            break;
        }
        size_t off = 0, used;
        sdb_proto_frame_t f;
        sdb_proto_msg_t m;
        int rc = 0;
        while (off < (size_t)n && (rc = sdb_proto_decoder_feed(&dec, in + off, (size_t)n - off,
                                                               &used, &f)) >= 0) {
            off += used;
            if (rc == 0)
                continue;
            if ((rc = sdb_proto_decode(&f, &m)) < 0)
                break;
            if (m.opcode == SDB_OP_HELLO_OK) {
                size_t l = m.u.hello_ok.server.len;
                memcpy(server, m.u.hello_ok.server.ptr, l);
                server[l] = 0;
            } else if (m.opcode == SDB_OP_PONG) {
                int same = m.u.raw.len == sizeof(cookie) - 1 &&
                           memcmp(m.u.raw.ptr, cookie, m.u.raw.len) == 0;
                if (same)
                    printf("PONG from %s\n", server);
                else
                    fprintf(stderr, "proto_ping: PONG with the wrong payload\n");
                status = same ? 0 : 1;
                goto done;
            } else if (m.opcode == SDB_OP_ERROR) {
                const char *name = sdb_proto_status_name(m.u.error.status);
                fprintf(stderr, "proto_ping: server error %s: %.*s\n", name ? name : "?",
                        (int)m.u.error.message.len, m.u.error.message.ptr);
                goto done;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "proto_ping: bad frame: %s\n", sdb_proto_strerror(rc));
            break;
        }
    }
done:
    sdb_proto_decoder_free(&dec);
    close(fd);
    return status;
}
