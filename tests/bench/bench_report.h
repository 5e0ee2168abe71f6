/*
 * bench_report.h -- the results tables shared by the benchmark programs.
 * The baseline table: each row is a figure, the baseline measured in the
 * same run, their ratio and the target, printed with PASS/FAIL/info.  The
 * peer table (bench_peers): each row is one workload measured on SQLite,
 * LMDB and StreamDb in the same run, StreamDb's ratio to the peer its goal
 * names, the goal and met / NOT MET.  Header-only (each benchmark is one
 * program).
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


typedef enum {
    RATIO_NONE,   /* no baseline */
    RATIO_RATE,   /* ratio = value / baseline (higher is better) */
    RATIO_TIME,   /* ratio = baseline / value (higher is better) */
    RATIO_SIZE    /* ratio = value / baseline (an overhead or growth factor) */
} ratio_kind_t;

typedef struct {
    char metric[80];
    char unit[8];
    double value, baseline, ratio;              /* NAN when absent */
    double ratio_min, value_min, value_max;     /* NAN when not a target */
    char base_name[40];                         /* what the baseline is */
} row_t;

#define MAX_ROWS 64
static row_t rows[MAX_ROWS];
static int nrows;

/* Appends a row; returns it so that the caller can set targets. */
static row_t *add_row(const char *metric, const char *unit, double value,
                      double baseline, ratio_kind_t kind, const char *base_name)
{
    if (nrows == MAX_ROWS)
        return &rows[MAX_ROWS - 1];
    row_t *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    snprintf(r->base_name, sizeof r->base_name, "%s", base_name ? base_name : "");
    r->value = value;
    r->baseline = kind == RATIO_NONE ? NAN : baseline;
    switch (kind) {
    case RATIO_RATE: case RATIO_SIZE:
        r->ratio = baseline > 0 ? value / baseline : NAN;
        break;
    case RATIO_TIME:
        r->ratio = value > 0 ? baseline / value : NAN;
        break;
    default:
        r->ratio = NAN;
    }
    r->ratio_min = r->value_min = r->value_max = NAN;
    return r;
}

/* Formats a number with about four significant digits. */
static const char *fmt_num(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (fabs(v) >= 1000)
        snprintf(buf, cap, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, cap, "%.1f", v);
    else if (fabs(v) >= 1)
        snprintf(buf, cap, "%.2f", v);
    else
        snprintf(buf, cap, "%.3f", v);
    return buf;
}

static int row_verdict(const row_t *r)   /* 1 pass, 0 fail, -1 no target */
{
    int any = 0, ok = 1;
    if (!isnan(r->ratio_min)) {
        any = 1;
        ok &= !isnan(r->ratio) && r->ratio >= r->ratio_min;
    }
    if (!isnan(r->value_min)) {
        any = 1;
        ok &= r->value >= r->value_min;
    }
    if (!isnan(r->value_max)) {
        any = 1;
        ok &= r->value < r->value_max;
    }
    return any ? ok : -1;
}

static void print_table(void)
{
    char v[32], b[32], q[32], t[64];
    int pass = 0, fail = 0;

    printf("\n%-50s %12s %-6s %12s  %-18s %7s  %-23s %s\n", "metric", "value", "unit",
           "baseline", "(baseline is)", "ratio", "target", "result");
    for (int i = 0; i < 142; i++)
        putchar('-');
    putchar('\n');
    for (int i = 0; i < nrows; i++) {
        const row_t *r = &rows[i];
        size_t n = 0;
        t[0] = '\0';
        if (!isnan(r->ratio_min))
            n += (size_t)snprintf(t + n, sizeof t - n, "ratio>=%.2g", r->ratio_min);
        if (!isnan(r->value_min) && n < sizeof t)
            n += (size_t)snprintf(t + n, sizeof t - n, "%s>=%g %s", n ? ", " : "", r->value_min,
                                  r->unit);
        if (!isnan(r->value_max) && n < sizeof t)
            n += (size_t)snprintf(t + n, sizeof t - n, "%s<%g %s", n ? ", " : "", r->value_max,
                                  r->unit);
        if (n == 0)
            snprintf(t, sizeof t, "-");
        int verdict = row_verdict(r);
        pass += verdict == 1;
        fail += verdict == 0;
        printf("%-50s %12s %-6s %12s  %-18s %7s  %-23s %s\n", r->metric,
               fmt_num(v, sizeof v, r->value), r->unit, fmt_num(b, sizeof b, r->baseline),
               r->base_name[0] ? r->base_name : "-", fmt_num(q, sizeof q, r->ratio), t,
               verdict == 1 ? "PASS" : verdict == 0 ? "FAIL" : "info");
    }
    printf("\nratio: rate/baseline rate, or baseline time/time (1.0 = as fast as the baseline;"
           " higher is better);\n       for size rows (B/path, MiB): value/baseline (an overhead factor)."
           "  Targets: %d passed, %d missed.\n", pass, fail);
    fflush(stdout);
}

static double min_d(double a, double b) { return a < b ? a : b; }
static double max_d(double a, double b) { return a > b ? a : b; }

/* 1 when section `name` is in the comma-separated list `only` (NULL = all). */
static int bench_section_on(const char *only, const char *name)
{
    if (!only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* Prints one progress line (a repetition's figures) on stderr. */
static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  .. ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ---- The peer table: SQLite, LMDB and StreamDb side by side -------------- */
#ifdef BENCH_PEER_TABLE   /* defined by the programs that print it (bench_peers.c) */

enum { PEER_SQLITE, PEER_LMDB, PEER_STREAMDB, PEER_COUNT };
static const char *const peer_names[PEER_COUNT] = { "SQLite", "LMDB", "StreamDb" };

typedef enum {
    GOAL_NONE,        /* reported only */
    GOAL_RATIO_MAX,   /* StreamDb / peer <= goal (times, sizes) */
    GOAL_RATIO_MIN,   /* StreamDb / peer >= goal (rates) */
    GOAL_VALUE_MAX,   /* StreamDb's value < goal (or <= when goal_incl) */
} goal_kind_t;

typedef struct {
    char row[72];
    char unit[8];             /* "MiB", "us", "/s", "ms", "B", "x" */
    double v[PEER_COUNT];     /* NAN: not measured, and note says why */
    int peer;                 /* PEER_SQLITE or PEER_LMDB: the ratio's denominator; -1 none */
    goal_kind_t goal_kind;
    double goal;
    int goal_incl;            /* GOAL_VALUE_MAX: <= instead of < */
    char no_verdict[48];      /* when set, the result column says this instead */
    char note[120];
} peer_row_t;

static peer_row_t peer_rows[MAX_ROWS];
static int npeer_rows;

/* Appends a row of three figures (NAN for one that was not measured); its
 * ratio is StreamDb / v[peer] (peer -1: no ratio).  Returns it so that the
 * caller can set the goal and a note. */
static peer_row_t *peer_add_row(const char *row, const char *unit, double sqlite, double lmdb,
                                double streamdb, int peer)
{
    if (npeer_rows == MAX_ROWS)
        return &peer_rows[MAX_ROWS - 1];
    peer_row_t *r = &peer_rows[npeer_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->row, sizeof r->row, "%s", row);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    r->v[PEER_SQLITE] = sqlite;
    r->v[PEER_LMDB] = lmdb;
    r->v[PEER_STREAMDB] = streamdb;
    r->peer = peer;
    r->goal_kind = GOAL_NONE;
    r->goal = NAN;
    return r;
}

static void peer_set_note(peer_row_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
}

static double peer_ratio(const peer_row_t *r)
{
    if (r->peer < 0 || isnan(r->v[PEER_STREAMDB]) || isnan(r->v[r->peer]) || r->v[r->peer] <= 0)
        return NAN;
    return r->v[PEER_STREAMDB] / r->v[r->peer];
}

/* 1 met, 0 not met, -1 no goal or not measurable. */
static int peer_verdict(const peer_row_t *r)
{
    double q = peer_ratio(r), s = r->v[PEER_STREAMDB];
    if (r->no_verdict[0])
        return -1;
    switch (r->goal_kind) {
    case GOAL_RATIO_MAX: return isnan(q) ? -1 : q <= r->goal;
    case GOAL_RATIO_MIN: return isnan(q) ? -1 : q >= r->goal;
    case GOAL_VALUE_MAX: return isnan(s) ? -1 : r->goal_incl ? s <= r->goal : s < r->goal;
    default: return -1;
    }
}

/* One figure with its unit, e.g. "78.5 MiB", "166.2k/s", "4.61 us". */
static const char *peer_fmt(char *buf, size_t cap, double v, const char *unit)
{
    char n[32];
    if (isnan(v))
        snprintf(buf, cap, "n/a");
    else if (strcmp(unit, "/s") == 0 && v >= 1e4)
        snprintf(buf, cap, "%.1fk/s", v / 1e3);
    else if (strcmp(unit, "x") == 0)
        snprintf(buf, cap, "%.3fx", v);
    else
        snprintf(buf, cap, "%s %s", fmt_num(n, sizeof n, v), unit);
    return buf;
}

/* Prints the peer table; returns the number of goals not met. */
static int peer_print_table(void)
{
    char c[PEER_COUNT][64], q[40], g[40];
    int met = 0, missed = 0;

    printf("\n%-58s %11s %11s %11s  %-14s %-16s %-8s %s\n", "row", "SQLite", "LMDB", "StreamDb",
           "StreamDb/peer", "goal", "result", "note");
    for (int i = 0; i < 150; i++)
        putchar('-');
    putchar('\n');
    for (int i = 0; i < npeer_rows; i++) {
        const peer_row_t *r = &peer_rows[i];
        for (int k = 0; k < PEER_COUNT; k++)
            peer_fmt(c[k], sizeof c[k], r->v[k], r->unit);
        double ratio = peer_ratio(r);
        if (isnan(ratio))
            snprintf(q, sizeof q, "-");
        else
            snprintf(q, sizeof q, "%.2fx %s", ratio, peer_names[r->peer]);
        switch (r->goal_kind) {
        case GOAL_RATIO_MAX:
            snprintf(g, sizeof g, "<= %.2gx %s", r->goal, peer_names[r->peer]);
            break;
        case GOAL_RATIO_MIN:
            snprintf(g, sizeof g, ">= %.2gx %s", r->goal, peer_names[r->peer]);
            break;
        case GOAL_VALUE_MAX:
            snprintf(g, sizeof g, "%s %g %s", r->goal_incl ? "<=" : "<", r->goal, r->unit);
            break;
        default:
            snprintf(g, sizeof g, "-");
        }
        int verdict = peer_verdict(r);
        met += verdict == 1;
        missed += verdict == 0;
        printf("%-58s %11s %11s %11s  %-14s %-16s %-8s %s\n", r->row, c[0], c[1], c[2], q, g,
               verdict == 1 ? "met" : verdict == 0 ? "NOT MET"
               : r->no_verdict[0] ? r->no_verdict : r->goal_kind == GOAL_NONE ? "info" : "n/a",
               r->note);
    }
    printf("\nStreamDb/peer: StreamDb's figure / the peer's (for times and sizes lower is better,"
           " for rates higher).\nGoals (issue 10): %d met, %d not met.\n", met, missed);
    fflush(stdout);
    return missed;
}
#endif /* BENCH_PEER_TABLE */

#endif
