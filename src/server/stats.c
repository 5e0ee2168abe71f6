/*
 * stats.c -- the daemon's counters and the STATS JSON (cJSON): uptime,
 * connections, bytes, requests/errors/latency percentiles per opcode and
 * the engine's figures.  Counters live on the loop thread only.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

void stats_record(server_t *s, uint8_t opcode, int err, uint64_t t0_us)
{
    opstat_t *o = &s->ops[opcode];
    uint64_t us = t0_us ? now_us() - t0_us : 0;
    int b = 0;
    while (b < LAT_BUCKETS - 1 && (1ull << b) <= us)
        b++;
    o->requests++;
    o->errors += err != 0;
    o->lat[b]++;
}

/* Upper bound (us) of the bucket holding the q-quantile. */
static uint64_t percentile(const opstat_t *o, double q)
{
    uint64_t n = 0, want;
    for (int i = 0; i < LAT_BUCKETS; i++)
        n += o->lat[i];
    if (!n)
        return 0;
    want = (uint64_t)(q * (double)n + 0.5);
    if (want == 0)
        want = 1;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        if (o->lat[i] >= want)
            return 1ull << i;
        want -= o->lat[i];
    }
    return 1ull << (LAT_BUCKETS - 1);
}

char *stats_json(server_t *s, const sdb_stats_t *engine)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "server", "streamdbd " SDB_VERSION_STRING);
    cJSON_AddNumberToObject(root, "uptime_ms", (double)(server_now_ms(s) - s->start_ms));
    cJSON *c = cJSON_AddObjectToObject(root, "connections");
    cJSON_AddNumberToObject(c, "current", (double)s->nconns);
    cJSON_AddNumberToObject(c, "total", (double)s->total_conns);
    cJSON_AddNumberToObject(c, "rejected", (double)s->rejected_conns);
    cJSON_AddNumberToObject(root, "bytes_in", (double)s->bytes_in);
    cJSON_AddNumberToObject(root, "bytes_out", (double)s->bytes_out);
    cJSON_AddNumberToObject(root, "writes", (double)s->writes);
    cJSON *ops = cJSON_AddObjectToObject(root, "requests");
    uint64_t total = 0, errors = 0;
    for (int i = 0; i < 256; i++) {
        const opstat_t *o = &s->ops[i];
        if (!o->requests)
            continue;
        total += o->requests;
        errors += o->errors;
        const char *name = i == SDB_OP_PUT_BEGIN ? "PUT" : sdb_proto_opcode_name((unsigned)i);
        cJSON *e = cJSON_AddObjectToObject(ops, name ? name : "UNKNOWN");
        cJSON_AddNumberToObject(e, "count", (double)o->requests);
        cJSON_AddNumberToObject(e, "errors", (double)o->errors);
        cJSON_AddNumberToObject(e, "p50_us", (double)percentile(o, 0.50));
        cJSON_AddNumberToObject(e, "p90_us", (double)percentile(o, 0.90));
        cJSON_AddNumberToObject(e, "p99_us", (double)percentile(o, 0.99));
    }
    cJSON_AddNumberToObject(root, "requests_total", (double)total);
    cJSON_AddNumberToObject(root, "errors_total", (double)errors);
    if (engine) {
        const sdb_stats_t st = *engine;
        cJSON *e = cJSON_AddObjectToObject(root, "engine");
        cJSON_AddNumberToObject(e, "total_pages", (double)st.total_pages);
        cJSON_AddNumberToObject(e, "free_pages", (double)st.free_pages);
        cJSON_AddNumberToObject(e, "documents", (double)st.documents);
        cJSON_AddNumberToObject(e, "paths", (double)st.paths);
        cJSON_AddNumberToObject(e, "file_bytes", (double)st.file_bytes);
        cJSON_AddNumberToObject(e, "cache_hits", (double)st.cache_hits);
        cJSON_AddNumberToObject(e, "cache_misses", (double)st.cache_misses);
        cJSON_AddNumberToObject(e, "checkpoints", (double)st.checkpoints);
        cJSON_AddNumberToObject(e, "journal_pages", (double)st.journal_pages);
        cJSON_AddNumberToObject(e, "checkpoint_running", (double)st.checkpoint_running);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}
