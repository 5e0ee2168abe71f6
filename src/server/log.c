/*
 * log.c -- see log.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"

static int g_level = LOG_INFO;
static int g_fd = 2;
static char *g_path;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const g_names[] = { "error", "warn", "info", "debug" };

int log_parse_level(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, g_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(int level)
{
    g_level = level;
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int log_open(const char *path)
{
    pthread_mutex_lock(&g_lock);
    int rc = 0;
    if (path && *path) {
        int fd = open_path(path);
        if (fd < 0) {
            rc = fd;
        } else {
            if (g_fd > 2)
                close(g_fd);
            g_fd = fd;
            free(g_path);
            g_path = strdup(path);
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int log_reopen(void)
{
    pthread_mutex_lock(&g_lock);
    int rc = 0;
    if (g_path) {
        int fd = open_path(g_path);
        if (fd < 0) {
            rc = fd;
        } else {
            close(g_fd);
            g_fd = fd;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_fd > 2)
        close(g_fd);
    g_fd = 2;
    free(g_path);
    g_path = NULL;
    pthread_mutex_unlock(&g_lock);
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > g_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                  g_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : n + m > (int)sizeof(line) - 2 ? (int)sizeof(line) - 2 : n + m;
    line[n++] = '\n';
    pthread_mutex_lock(&g_lock);
    ssize_t w = write(g_fd, line, (size_t)n);
    (void)w;
    pthread_mutex_unlock(&g_lock);
}
