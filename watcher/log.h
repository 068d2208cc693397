/*
 * log.h
 *	  Program pgbk-watcher; uses libc only.
 *	  pgbk-watcher's log: one line per message on stderr.
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the syslog
 * priority ("<4>") and carries no timestamp, since the journal adds one;
 * otherwise it starts with a local timestamp.  Messages never hold
 * secrets.
 */
#ifndef WATCHER_LOG_H
#define WATCHER_LOG_H

#include <stdbool.h>

typedef enum LogLevel
{
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_FATAL
} LogLevel;

void log_init(bool debug);
void log_set_debug(bool debug);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The detail and hint of err (if any) as lines "DETAIL: ..." and
 * "HINT: ...", at level's priority: call it after the line that logged
 * err's message, as PostgreSQL's log does.
 */
struct PgbkError;
void log_error_detail(LogLevel level, const struct PgbkError *err);

#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_fatal(...)   log_msg(LOG_LEVEL_FATAL, __VA_ARGS__)

/* Hook for common/'s pgbk_log(). */
void log_pgbk_hook(int level, const char *msg);

#endif /* WATCHER_LOG_H */
