/*
 * engine_client.c -- a program built only from what `make install` installs:
 * <streamdb.h>, <streamdb_proto.h> (and the opcodes.def it includes) and the
 * library found through the installed streamdb.pc.  tests/packaging/
 * test_install.sh compiles it against a DESTDIR tree and runs it.
 *
 * Usage: engine_client DBFILE.  Creates DBFILE, puts two versions of one
 * document, reads both back, checks the file with sdb_check, and prints
 * "engine ok" on success.  Exit status 0 on success, 1 on any failure.
 */
#include <streamdb.h>
#include <streamdb_proto.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "engine_client: %s: %s\n", what, sdb_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: engine_client DBFILE\n");
        return 1;
    }
    /* The protocol header and its opcode table link from the same library. */
    const char *ping = sdb_proto_opcode_name(SDB_OP_PING);
    if (ping == NULL || strcmp(ping, "PING") != 0) {
        fprintf(stderr, "engine_client: opcode table: got %s\n", ping ? ping : "NULL");
        return 1;
    }

    sdb_t *db;
    int rc = sdb_open(argv[1], NULL, &db);
    if (rc != SDB_OK)
        return fail("sdb_open", rc);
    sdb_docinfo_t info;
    if ((rc = sdb_put(db, "/pkg/hello.txt", "hello", 5, NULL)) != SDB_OK ||
        (rc = sdb_put(db, "/pkg/hello.txt", "hello, world", 12, &info)) != SDB_OK) {
        sdb_close(db);
        return fail("sdb_put", rc);
    }
    void *data;
    size_t len;
    sdb_docinfo_t got;
    rc = sdb_get(db, "/pkg/hello.txt", &data, &len, &got);
    if (rc != SDB_OK) {
        sdb_close(db);
        return fail("sdb_get", rc);
    }
    int ok = len == 12 && memcmp(data, "hello, world", 12) == 0 && got.version == 2 &&
             info.version == 2;
    free(data);
    if ((rc = sdb_close(db)) != SDB_OK)
        return fail("sdb_close", rc);
    if (!ok) {
        fprintf(stderr, "engine_client: read back the wrong document or version\n");
        return 1;
    }
    char *report = NULL;
    rc = sdb_check(argv[1], 0, &report);
    free(report);
    if (rc != SDB_OK)
        return fail("sdb_check", rc);
    printf("engine ok: %s v%" PRIu64 " (%s %s)\n", "/pkg/hello.txt", got.version, "libstreamdb",
           SDB_VERSION_STRING);
    return 0;
}
