/*
 * bench_report.h -- the results table shared by the benchmark programs:
 * each row is a figure, the baseline measured in the same run, their ratio
 * and the target, printed as one table with PASS/FAIL/info.  Header-only
 * (each benchmark is one program).
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

#endif
