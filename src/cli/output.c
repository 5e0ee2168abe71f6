/*
 * output.c -- the CLI's formatting: UTC times, human sizes, docinfo as JSON
 * (cJSON) and the progress bar drawn on stderr during large transfers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define PROGRESS_MIN_BYTES (4ull << 20)
#define PROGRESS_INTERVAL_US 100000u

void out_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)ms);
}

void out_size(uint64_t bytes, char out[32])
{
    static const char *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    if (bytes < 1024) {
        snprintf(out, 32, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, 32, "%.1f %s", v, units[u]);
}

void out_docinfo_fields(cJSON *o, const sdb_docinfo_t *info)
{
    char ids[37], crc[9], created[32], modified[32];
    sdb_id_format(&info->id, ids);
    snprintf(crc, sizeof(crc), "%08x", (unsigned)info->crc32);
    out_time(info->created_ms, created);
    out_time(info->modified_ms, modified);
    cJSON_AddStringToObject(o, "id", ids);
    cJSON_AddNumberToObject(o, "version", (double)info->version);
    cJSON_AddNumberToObject(o, "size", (double)info->size);
    cJSON_AddStringToObject(o, "crc32", crc);
    cJSON_AddStringToObject(o, "created", created);
    cJSON_AddStringToObject(o, "modified", modified);
    cJSON_AddNumberToObject(o, "created_ms", (double)info->created_ms);
    cJSON_AddNumberToObject(o, "modified_ms", (double)info->modified_ms);
}

cJSON *out_docinfo_json(const sdb_docinfo_t *info)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        out_docinfo_fields(o, info);
    return o;
}

/* Prints j indented by two spaces per level (cJSON_Print uses tabs). */
static void print_json(const cJSON *j, int depth, FILE *f)
{
    int array = cJSON_IsArray(j);
    if (!array && !cJSON_IsObject(j)) {
        char *t = cJSON_PrintUnformatted(j);
        fputs(t ? t : "null", f);
        free(t);
        return;
    }
    if (!j->child) {
        fputs(array ? "[]" : "{}", f);
        return;
    }
    fputc(array ? '[' : '{', f);
    for (const cJSON *e = j->child; e; e = e->next) {
        fprintf(f, "\n%*s", 2 * (depth + 1), "");
        if (!array) {
            cJSON *key = cJSON_CreateString(e->string ? e->string : "");
            char *t = key ? cJSON_PrintUnformatted(key) : NULL;
            fprintf(f, "%s: ", t ? t : "\"\"");
            free(t);
            cJSON_Delete(key);
        }
        print_json(e, depth + 1, f);
        if (e->next)
            fputc(',', f);
    }
    fprintf(f, "\n%*s%c", 2 * depth, "", array ? ']' : '}');
}

void out_json(cJSON *j)
{
    if (j) {
        print_json(j, 0, stdout);
        fputc('\n', stdout);
    }
    cJSON_Delete(j);
}

/* ---- Progress bar ---- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 80;
}

static void draw(progress_t *p, uint64_t now)
{
    char done[32], total[32], rate[32], line[512], eta[32] = "";
    double secs = (double)(now - p->t0_us) / 1e6;
    double bps = secs > 0.001 ? (double)p->done / secs : 0.0;
    out_size(p->done, done);
    out_size((uint64_t)bps, rate);
    int width = term_width();
    int n;
    if (p->total != SDBC_SIZE_UNKNOWN) {
        out_size(p->total, total);
        double frac = p->total ? (double)p->done / (double)p->total : 1.0;
        if (frac > 1.0)
            frac = 1.0;
        if (p->done >= p->total) {
            snprintf(eta, sizeof(eta), "%.1fs", secs);
        } else if (bps > 0) {
            unsigned long s = (unsigned long)((double)(p->total - p->done) / bps + 0.5);
            snprintf(eta, sizeof(eta), "ETA %lu:%02lu", s / 60, s % 60);
        } else {
            snprintf(eta, sizeof(eta), "ETA --:--");
        }
        char tail[160];
        snprintf(tail, sizeof(tail), " %s / %s %3d%% %s/s %s", done, total, (int)(frac * 100.0),
                 rate, eta);
        int label = (int)strlen(p->label);
        if (label > 24)
            label = 24;
        int bar = width - 1 - label - 3 - (int)strlen(tail);
        if (bar > 50)
            bar = 50;
        char bars[64] = "";
        if (bar >= 10) {
            int fill = (int)(frac * bar);
            for (int i = 0; i < bar; i++)
                bars[i] = i < fill ? '=' : i == fill ? '>' : ' ';
            bars[bar] = '\0';
            n = snprintf(line, sizeof(line), "\r%.*s [%s]%s", label, p->label, bars, tail);
        } else {
            n = snprintf(line, sizeof(line), "\r%.*s%s", label, p->label, tail);
        }
    } else {
        n = snprintf(line, sizeof(line), "\r%.24s %s %s/s %.1fs", p->label, done, rate, secs);
    }
    if (n > 0) {
        fputs(line, stderr);
        fputs("\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 1;
    p->last_us = now;
}

void progress_start(progress_t *p, int mode, const char *label, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->enabled = mode > 0 || (mode < 0 && isatty(STDERR_FILENO));
    p->label = label;
    p->total = total;
    p->t0_us = now_us();
}

void progress_add(progress_t *p, uint64_t n, uint64_t total)
{
    p->done += n;
    if (p->total == SDBC_SIZE_UNKNOWN)
        p->total = total;
    if (!p->enabled)
        return;
    uint64_t size = p->total != SDBC_SIZE_UNKNOWN ? p->total : p->done;
    if (size < PROGRESS_MIN_BYTES)
        return;
    uint64_t now = now_us();
    if (!p->drawn || now - p->last_us >= PROGRESS_INTERVAL_US)
        draw(p, now);
}

void progress_end(progress_t *p)
{
    if (!p->enabled)
        return;
    uint64_t size = p->total != SDBC_SIZE_UNKNOWN ? p->total : p->done;
    if (!p->drawn && size < PROGRESS_MIN_BYTES)
        return;
    draw(p, now_us());
    fputc('\n', stderr);
    fflush(stderr);
}
