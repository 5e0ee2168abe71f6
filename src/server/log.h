/*
 * log.h -- the daemon's log: one line per event on stderr (or a file that
 * SIGHUP reopens), with an ISO-8601 UTC timestamp and a level, in the form
 * journald and grep both read well:  2026-11-26T02:20:38.123Z info listening on ...
 * Thread-safe (one write(2) per line).
 */
#ifndef SDB_SERVER_LOG_H
#define SDB_SERVER_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Parses "error", "warn", "info" or "debug"; returns the level or -1. */
int log_parse_level(const char *name);
/* Sets the level; messages above it are dropped. */
void log_set_level(int level);
/* Sends the log to path (NULL or "": stderr).  Returns 0 or -errno. */
int log_open(const char *path);
/* Reopens the log file (after rotation; SIGHUP).  Returns 0 or -errno. */
int log_reopen(void);
/* Closes the log file, if any. */
void log_close(void);
/* Logs a printf-style message at level. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
