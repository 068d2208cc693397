/*
 * log.c
 *	  Program pgbk-watcher; uses common/base (errors) and libc.
 *	  pgbk-watcher's log lines on stderr (see log.h).
 */
#include "log.h"

#include "base/pgbk_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static bool log_debug_on = false;
static bool log_journal = false;

void
log_init(bool debug)
{
	log_debug_on = debug;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
	pgbk_hooks.log = log_pgbk_hook;
}

void
log_set_debug(bool debug)
{
	log_debug_on = debug;
}

static const char *const level_names[] = {"DEBUG", "LOG", "WARNING", "ERROR", "FATAL"};
static const int         level_prio[] = {7, 6, 4, 3, 2};

/* One line "<name>: <text>" at the priority of level. */
static void
emit(LogLevel level, const char *name, char *line)
{
	char stamp[64] = "";
	int  n;

	/* one message, one line: the journal and log scrapers split at '\n' */
	for (n = 0; line[n] != '\0'; n++)
	{
		if (line[n] == '\n' || line[n] == '\r')
			line[n] = ' ';
	}
	if (log_journal)
		fprintf(stderr, "<%d>pgbk-watcher: %s: %s\n", level_prio[level], name, line);
	else
	{
		struct timeval tv;
		struct tm      tm;

		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = (int) strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(stamp + n, sizeof(stamp) - (size_t) n, ".%03d", (int) (tv.tv_usec / 1000));
		fprintf(stderr, "%s pgbk-watcher[%d]: %s: %s\n", stamp, (int) getpid(), name, line);
	}
	fflush(stderr);
}

void
log_msg(LogLevel level, const char *fmt, ...)
{
	char    line[4096];
	va_list ap;

	if (level == LOG_LEVEL_DEBUG && !log_debug_on)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(level, level_names[level], line);
}

void
log_error_detail(LogLevel level, const struct PgbkError *err)
{
	char line[PGBK_ERRMSG_LEN];

	if (level == LOG_LEVEL_DEBUG && !log_debug_on)
		return;
	if (err->detail[0])
	{
		snprintf(line, sizeof(line), "%s", err->detail);
		emit(level, "DETAIL", line);
	}
	if (err->hint[0])
	{
		snprintf(line, sizeof(line), "%s", err->hint);
		emit(level, "HINT", line);
	}
}

void
log_pgbk_hook(int level, const char *msg)
{
	log_msg(level == PGBK_LOG_WARNING ? LOG_LEVEL_WARNING
	        : level == PGBK_LOG_INFO  ? LOG_LEVEL_INFO
	                                  : LOG_LEVEL_DEBUG,
	        "%s", msg);
}
