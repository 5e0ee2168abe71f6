/*
 * fuzz_open.c -- libFuzzer target: opening a database file with arbitrary
 * content (random, or a valid database mutated: see fuzz/corpus/fuzz_open)
 * through the memory backend.
 *
 * sdb_open_backend must either refuse the file with an error or open it;
 * an open database is then read everywhere the API reaches (every path by a
 * search, each document's content, versions and paths, the stats), written
 * to once, and closed.  A crash, hang, leak or sanitizer report is a finding;
 * SDB_ECORRUPT and the other errors are the expected outcome of damage.
 * The file is capped at 256 KiB, and the engine's limits are made small, so
 * that one execution stays short.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "streamdb.h"

static sdb_t *cur_db;

static int visit(void *arg, const char *path, const sdb_docinfo_t *info)
{
    int *budget = arg;
    if ((*budget)-- <= 0)
        return 1;                              /* stop the listing */
    void *d = NULL;
    size_t n = 0;
    if (path && sdb_get(cur_db, path, &d, &n, NULL) == SDB_OK)
        free(d);
    if (sdb_get_id(cur_db, &info->id, info->version, &d, &n, NULL) == SDB_OK)
        free(d);
    char *text = NULL;
    if (sdb_info(cur_db, &info->id, &text) == SDB_OK)
        free(text);
    return 0;
}

static int count(void *arg, const char *path, const sdb_docinfo_t *info)
{
    (void)path;
    (void)info;
    return (*(int *)arg)-- <= 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    sdb_backend_t *be = backend_mem_from(data, size);
    if (!be)
        return 0;
    sdb_config_t cfg;
    sdb_config_default(&cfg);
    cfg.page_size = 512;
    cfg.page_cache_pages = 16;
    cfg.max_document_size = 1 << 20;
    cfg.max_db_size = 64ull << 20;
    sdb_t *db = NULL;
    if (sdb_open_backend(be, &cfg, &db) != SDB_OK)   /* takes be, also on failure */
        return 0;
    cur_db = db;
    int budget = 64;
    sdb_search_opts_t opts;
    memset(&opts, 0, sizeof opts);
    (void)sdb_search(db, "", &opts, visit, &budget);
    sdb_docinfo_t info;
    if (sdb_lookup(db, "/a", &info) == SDB_OK) {
        int n = 64;
        (void)sdb_list_versions(db, &info.id, count, &n);
        n = 64;
        (void)sdb_list_paths(db, &info.id, count, &n);
    }
    sdb_stats_t st;
    (void)sdb_stats(db, &st);
    (void)sdb_put(db, "/fuzz", "x", 1, NULL);
    (void)sdb_close(db);
    return 0;
}
