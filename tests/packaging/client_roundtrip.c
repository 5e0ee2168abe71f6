/*
 * client_roundtrip.c -- a client program built only from what `make install`
 * installs (<streamdb_client.h> and the libraries named by the installed
 * pkg-config files).  tests/packaging/test_install.sh builds it once the
 * client library is part of the install, and runs it against the installed
 * streamdbd.
 *
 * Usage: client_roundtrip ADDRESS (any address sdbc_connect accepts).  Pings,
 * puts a document, reads it back and prints "client ok".  Exit status 0 on
 * success, 1 on any failure.
 */
#include <streamdb_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: client_roundtrip ADDRESS\n");
        return 1;
    }
    sdbc_t *c;
    int rc = sdbc_connect(argv[1], NULL, &c);
    if (rc != SDB_OK) {
        fprintf(stderr, "client_roundtrip: connect: %s\n", sdbc_last_error_message());
        return 1;
    }
    static const char text[] = "installed client";
    void *data = NULL;
    size_t len = 0;
    sdb_docinfo_t info;
    if ((rc = sdbc_ping(c, NULL)) == SDB_OK &&
        (rc = sdbc_put(c, "/pkg/client.txt", text, sizeof(text) - 1, SDBC_ANY_VERSION, NULL)) == SDB_OK)
        rc = sdbc_get(c, "/pkg/client.txt", &data, &len, &info);
    if (rc != SDB_OK) {
        fprintf(stderr, "client_roundtrip: %s: %s\n", sdbc_strerror(rc), sdbc_last_error_message());
        sdbc_close(c);
        return 1;
    }
    int ok = len == sizeof(text) - 1 && memcmp(data, text, len) == 0;
    free(data);
    sdbc_close(c);
    if (!ok) {
        fprintf(stderr, "client_roundtrip: read back different bytes\n");
        return 1;
    }
    printf("client ok\n");
    return 0;
}
