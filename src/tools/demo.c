/*
 * demo.c -- `make demo`: a short tour of the public engine API (streamdb.h).
 * It opens (or creates) a database file, writes a few documents, binds one
 * of them to a second path, overwrites it through that path, streams a
 * larger document in and out, reads everything
 * back and compares it with what was written, lists paths by prefix and by
 * "directory" (delimiter), and prints the statistics.
 *
 * Usage: streamdb-demo [FILE]      (default data/demo.sdb)
 * Running it again on the same file adds new versions of the same documents.
 * Exit status 0, or 1 after printing the sdb_strerror() text of the first
 * failure (or a description of the first mismatch).
 */
#include "streamdb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FILE "data/demo.sdb"
#define BLOB_PATH "/blobs/pattern.bin"
#define BLOB_SIZE (256u * 1024u)
#define CHUNK 10000u   /* deliberately not a multiple of the page size */

static const struct {
    const char *path;
    const char *text;
} demo_docs[] = {
    {"/docs/readme.txt", "StreamDb readme: versioned binary documents under string paths.\n"},
    {"/photos/2024/beach.jpg", "(pretend JPEG bytes: a beach)"},
    {"/photos/2024/forest.jpg", "(pretend JPEG bytes: a forest)"},
    {"/photos/2025/city.jpg", "(pretend JPEG bytes: a city)"},
    {"/photos/index.txt", "beach.jpg forest.jpg city.jpg\n"},
};
#define N_DOCS (sizeof demo_docs / sizeof demo_docs[0])

#define README_ALIAS "/latest/readme.txt"
static const char readme_v2[] = "StreamDb readme, second version (written through " README_ALIAS ")\n"
                                "StreamDb stores versioned binary documents under string paths.\n";

/* Evaluates an sdb_* call; on error reports it and jumps to the fail label. */
#define TRY(what, call)                                                         \
    do {                                                                        \
        int rc_ = (call);                                                       \
        if (rc_ != SDB_OK) {                                                    \
            fprintf(stderr, "demo: %s failed: %s (%d)\n", (what),               \
                    sdb_strerror(rc_), rc_);                                    \
            goto fail;                                                          \
        }                                                                       \
    } while (0)

static void step(const char *title)
{
    static int n;
    printf("\n== %d. %s\n", ++n, title);
}

static void print_info(const char *label, const sdb_docinfo_t *info)
{
    char id[37];
    sdb_id_format(&info->id, id);
    printf("   %-26s id %s  v%" PRIu64 "  %" PRIu64 " bytes  crc32 %08" PRIx32 "\n",
           label, id, info->version, info->size, info->crc32);
}

/* Listing callback: prints one entry; arg counts the entries. */
static int print_entry_cb(void *arg, const char *path, const sdb_docinfo_t *info)
{
    size_t *count = arg;
    ++*count;
    if (info == NULL)
        printf("   %-26s (common prefix)\n", path);
    else
        printf("   %-26s v%" PRIu64 "  %" PRIu64 " bytes\n", path, info->version, info->size);
    return 0;
}

/* The byte at offset i of the streamed document. */
static unsigned char blob_byte(size_t i)
{
    return (unsigned char)((i * 31u + (i >> 12)) & 0xff);
}

/* Reads path with sdb_get and compares it with want/want_len.
 * Returns 0 when equal, 1 after printing the error or the mismatch. */
static int get_and_compare(sdb_t *db, const char *path, const void *want, size_t want_len,
                           sdb_docinfo_t *info)
{
    void *data = NULL;
    size_t len = 0;
    int rc = sdb_get(db, path, &data, &len, info);
    if (rc != SDB_OK) {
        fprintf(stderr, "demo: sdb_get(%s) failed: %s (%d)\n", path, sdb_strerror(rc), rc);
        return 1;
    }
    int same = len == want_len && memcmp(data, want, len) == 0;
    if (same) {
        const char *nl = memchr(data, '\n', len);   /* show the first line only */
        int shown = (int)(nl ? (size_t)(nl - (const char *)data) : len);
        printf("   %-26s v%" PRIu64 "  \"%.*s\"\n", path, info->version, shown,
               (const char *)data);
    } else
        fprintf(stderr, "demo: %s read back %zu bytes that differ from the %zu written\n",
                path, len, want_len);
    free(data);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *file = argc > 1 ? argv[1] : DEFAULT_FILE;
    sdb_t *db = NULL;
    sdb_writer_t *w = NULL;
    sdb_reader_t *r = NULL;
    unsigned char *buf = NULL;
    sdb_docinfo_t info, readme, alias;
    sdb_config_t cfg;
    sdb_search_opts_t opts = {.start_after = NULL, .limit = 0, .delimiter = '/'};
    sdb_stats_t st;
    size_t count, total = 0, n = 0;

    printf("StreamDb %s demo\n", SDB_VERSION_STRING);

    step("open the database file (created if absent)");
    sdb_config_default(&cfg);
    TRY("sdb_open", sdb_open(file, &cfg, &db));
    printf("   %s: page size %" PRIu32 ", durable %d, %" PRIu32 " previous versions kept\n",
           file, cfg.page_size, cfg.durable, cfg.versions_to_keep);

    step("write documents with sdb_put");
    for (size_t i = 0; i < N_DOCS; i++) {
        TRY("sdb_put", sdb_put(db, demo_docs[i].path, demo_docs[i].text,
                               strlen(demo_docs[i].text), &info));
        print_info(demo_docs[i].path, &info);
    }

    step("bind the readme document to a second path");
    TRY("sdb_lookup", sdb_lookup(db, demo_docs[0].path, &readme));
    TRY("sdb_bind", sdb_bind(db, &readme.id, README_ALIAS));
    printf("   paths of the readme document:\n");
    count = 0;
    TRY("sdb_list_paths", sdb_list_paths(db, &readme.id, print_entry_cb, &count));

    step("overwrite it through the second path: one document, a new version");
    TRY("sdb_put", sdb_put(db, README_ALIAS, readme_v2, strlen(readme_v2), &alias));
    print_info(README_ALIAS, &alias);
    if (memcmp(&alias.id, &readme.id, sizeof readme.id) != 0 ||
        alias.version != readme.version + 1) {
        fprintf(stderr, "demo: writing %s did not make version %" PRIu64 " of the readme\n",
                README_ALIAS, readme.version + 1);
        goto fail;
    }

    step("read everything back with sdb_get and compare");
    for (size_t i = 1; i < N_DOCS; i++)
        if (get_and_compare(db, demo_docs[i].path, demo_docs[i].text,
                            strlen(demo_docs[i].text), &info))
            goto fail;
    if (get_and_compare(db, demo_docs[0].path, readme_v2, strlen(readme_v2), &info) ||
        get_and_compare(db, README_ALIAS, readme_v2, strlen(readme_v2), &info))
        goto fail;

    step("read the previous readme version by id and number");
    {
        void *data = NULL;
        size_t len = 0;
        TRY("sdb_get_id", sdb_get_id(db, &readme.id, readme.version, &data, &len, &info));
        print_info("previous version", &info);
        free(data);
    }

    step("stream a 256 KiB document in and out (sdb_writer / sdb_reader)");
    if ((buf = malloc(CHUNK)) == NULL) {
        fprintf(stderr, "demo: out of memory\n");
        goto fail;
    }
    TRY("sdb_writer_open", sdb_writer_open(db, BLOB_PATH, UINT64_MAX, &w));
    for (size_t off = 0; off < BLOB_SIZE; off += CHUNK) {
        size_t len = BLOB_SIZE - off < CHUNK ? BLOB_SIZE - off : CHUNK;
        for (size_t i = 0; i < len; i++)
            buf[i] = blob_byte(off + i);
        TRY("sdb_writer_write", sdb_writer_write(w, buf, len));
    }
    {
        sdb_writer_t *committing = w;
        w = NULL;   /* sdb_writer_commit frees it, even on error */
        TRY("sdb_writer_commit", sdb_writer_commit(committing, &info));
    }
    print_info(BLOB_PATH, &info);
    TRY("sdb_reader_open", sdb_reader_open(db, BLOB_PATH, &r, &info));
    do {
        TRY("sdb_reader_read", sdb_reader_read(r, buf, CHUNK, &n));
        for (size_t i = 0; i < n; i++)
            if (buf[i] != blob_byte(total + i)) {
                fprintf(stderr, "demo: %s: wrong byte at offset %zu\n", BLOB_PATH, total + i);
                goto fail;
            }
        total += n;
    } while (n > 0);
    sdb_reader_close(r);
    r = NULL;
    if (total != BLOB_SIZE) {
        fprintf(stderr, "demo: %s read back %zu bytes, wrote %u\n", BLOB_PATH, total, BLOB_SIZE);
        goto fail;
    }
    printf("   read back %zu bytes in chunks of %u, all equal, content CRC checked\n", total,
           CHUNK);

    step("prefix search: every path under /photos/");
    count = 0;
    TRY("sdb_search", sdb_search(db, "/photos/", NULL, print_entry_cb, &count));
    printf("   %zu paths\n", count);

    step("delimiter listing of /photos/ (like ls)");
    count = 0;
    TRY("sdb_search", sdb_search(db, "/photos/", &opts, print_entry_cb, &count));
    printf("   %zu entries\n", count);

    step("statistics");
    TRY("sdb_flush", sdb_flush(db));
    TRY("sdb_stats", sdb_stats(db, &st));
    printf("   documents %" PRIu64 ", paths %" PRIu64 ", pages %" PRIu64 " (%" PRIu64
           " free), file %" PRIu64 " bytes\n",
           st.documents, st.paths, st.total_pages, st.free_pages, st.file_bytes);

    step("close");
    free(buf);
    buf = NULL;
    {
        sdb_t *closing = db;
        db = NULL;   /* invalid after sdb_close, even on error */
        TRY("sdb_close", sdb_close(closing));
    }
    printf("   done; run it again to add new versions to %s\n", file);
    return EXIT_SUCCESS;

fail:
    sdb_reader_close(r);
    sdb_writer_abort(w);
    free(buf);
    sdb_close(db);
    return EXIT_FAILURE;
}
