/*
 * addr.c -- server addresses for the client library: parsing the forms that
 * sdbc_connect() accepts (host:port, [v6]:port, streamdb:// and unix:// URLs,
 * socket paths) and opening a connected, non-blocking socket within a
 * timeout.  This is the only client file that resolves names or connects.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/client_int.h"

static int parse_port(const char *s, const char *whole, uint16_t *out)
{
    if (!*s)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": empty port", whole);
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 65535)
            return client_fail(SDB_EINVAL, "bad server address \"%s\": port \"%s\" is not a number "
                               "in 1..65535", whole, s);
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < 1 || v > 65535)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": port %lu is not in 1..65535",
                           whole, v);
    *out = (uint16_t)v;
    return SDB_OK;
}

/* host, host:port, [v6] or [v6]:port (s may end early at `end`). */
static int parse_hostport(const char *s, size_t len, const char *whole, client_addr_t *out)
{
    char buf[300];
    if (len == 0)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": missing host", whole);
    if (len >= sizeof(buf))
        return client_fail(SDB_EINVAL, "bad server address \"%s\": host name too long", whole);
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close)
            return client_fail(SDB_EINVAL, "bad server address \"%s\": missing ']' after the "
                               "IPv6 address", whole);
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return client_fail(SDB_EINVAL, "bad server address \"%s\": expected ':PORT' after ']'",
                               whole);
    } else {
        char *colon = strchr(buf, ':');
        if (colon && strchr(colon + 1, ':'))
            return client_fail(SDB_EINVAL, "bad server address \"%s\": write an IPv6 address in "
                               "brackets, e.g. [::1]:7878", whole);
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (!*host)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": missing host", whole);
    if (strlen(host) >= sizeof(out->host))
        return client_fail(SDB_EINVAL, "bad server address \"%s\": host name too long", whole);
    out->kind = CLIENT_ADDR_TCP;
    strcpy(out->host, host);
    out->port = SDBC_DEFAULT_PORT;
    return port ? parse_port(port, whole, &out->port) : SDB_OK;
}

static int set_unix(const char *path, const char *whole, client_addr_t *out)
{
    if (!*path)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": empty socket path", whole);
    if (strlen(path) >= sizeof(out->path))
        return client_fail(SDB_EINVAL, "bad server address \"%s\": a Unix socket path is limited "
                           "to %zu bytes", whole, sizeof(out->path) - 1);
    out->kind = CLIENT_ADDR_UNIX;
    strcpy(out->path, path);
    return SDB_OK;
}

int client_parse_address(const char *addr, client_addr_t *out)
{
    if (!out)
        return client_fail(SDB_EINVAL, "no address output");
    memset(out, 0, sizeof(*out));
    if (!addr || !*addr)
        return client_fail(SDB_EINVAL, "empty server address");
    if (strncmp(addr, "streamdb://", 11) == 0) {
        const char *hp = addr + 11;
        size_t len = strcspn(hp, "/");
        if (hp[len] == '/' && hp[len + 1] != '\0')
            return client_fail(SDB_EINVAL, "bad server address \"%s\": a streamdb:// URL has no "
                               "path (streamdb://HOST:PORT)", addr);
        return parse_hostport(hp, len, addr, out);
    }
    if (strncmp(addr, "unix://", 7) == 0)
        return set_unix(addr + 7, addr, out);
    if (strncmp(addr, "unix:", 5) == 0)
        return set_unix(addr + 5, addr, out);
    const char *scheme = strstr(addr, "://");
    if (scheme)
        return client_fail(SDB_EINVAL, "bad server address \"%s\": unknown URL scheme \"%.*s\" "
                           "(use streamdb://HOST:PORT or unix:///PATH)", addr,
                           (int)(scheme - addr), addr);
    if (strchr(addr, '/'))
        return set_unix(addr, addr, out);
    struct stat st;
    if (!strchr(addr, ':') && stat(addr, &st) == 0 && S_ISSOCK(st.st_mode))
        return set_unix(addr, addr, out);
    return parse_hostport(addr, strlen(addr), addr, out);
}

void client_format_address(const client_addr_t *a, char *out, size_t cap)
{
    if (a->kind == CLIENT_ADDR_UNIX)
        snprintf(out, cap, "unix:%s", a->path);
    else if (strchr(a->host, ':'))
        snprintf(out, cap, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(out, cap, "%s:%u", a->host, (unsigned)a->port);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

/* Connects the non-blocking socket fd to sa; returns 0 or an errno value
 * (ETIMEDOUT when the deadline passes). */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline)
{
    for (;;) {
        if (connect(fd, sa, salen) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
            /* A full listen backlog: the server is alive but busy.  Retry. */
            if (remaining(deadline) == 0)
                return ETIMEDOUT;
            struct timespec ts = { 0, 10 * 1000000 };
            nanosleep(&ts, NULL);
            continue;
        }
        if (errno != EINPROGRESS)
            return errno;
        break;
    }
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int n = poll(&p, 1, remaining(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return errno;
        return err;
    }
}

static const char *hint(int err)
{
    return err == ECONNREFUSED || err == ENOENT ? " (is streamdbd running?)" : "";
}

int client_open_socket(const client_addr_t *a, int timeout_ms, int *fd)
{
    char text[320];
    client_format_address(a, text, sizeof(text));
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    *fd = -1;
    if (a->kind == CLIENT_ADDR_UNIX) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0)
            return client_fail(SDB_ECONNECT, "cannot create a socket: %s", strerror(errno));
        int err = connect_wait(s, (struct sockaddr *)&sun, sizeof(sun), deadline);
        if (err) {
            close(s);
            return client_fail(SDB_ECONNECT, "cannot connect to %s: %s%s", text,
                               err == ETIMEDOUT ? "connect timed out" : strerror(err), hint(err));
        }
        *fd = s;
        return SDB_OK;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)a->port);
    int gai = getaddrinfo(a->host, port, &hints, &res);
    if (gai != 0)
        return client_fail(SDB_ECONNECT, "cannot connect to %s: cannot resolve \"%s\": %s", text,
                           a->host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    int err = ENOENT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol);
        if (s < 0) {
            err = errno;
            continue;
        }
        err = connect_wait(s, ai->ai_addr, ai->ai_addrlen, deadline);
        if (err == 0) {
            int one = 1;
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            *fd = s;
            break;
        }
        close(s);
        if (err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (*fd < 0)
        return client_fail(SDB_ECONNECT, "cannot connect to %s: %s%s", text,
                           err == ETIMEDOUT ? "connect timed out" : strerror(err), hint(err));
    return SDB_OK;
}
