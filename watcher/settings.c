/*
 * settings.c
 *	  Program pgbk-watcher; uses common/config (confread.c, config.c's duration parser)
 *	  and base.
 *	  Parse and validate pgbk-watcher's configuration file (see settings.h).
 *
 * The file is read by common/config/confread.c, the reader pgbk.conf uses
 * too: same syntax, same file checks (trusted, size, NUL byte, no include),
 * same shape of errors (unknown names and bad values name the setting, the
 * file and the line, never the value of an unknown setting).  This file
 * holds only the table of names and the validation.  Durations use
 * config.c's parser ("10s", "500ms", "2min", "1h", "180d").
 */
#include "settings.h"

#include "config/confread.h"
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum WSetting
{
	WS_PGBK_CONFIG,
	WS_ROOTS,
	WS_EXCLUDES,
	WS_HOST,
	WS_CONNINFO,
	WS_SPOOL_DIR,
	WS_SETTLE_DELAY,
	WS_MAX_WAIT,
	WS_SAFETY_INTERVAL,
	WS_RETRY_DELAY,
	WS_RETRY_DELAY_MAX,
	WS_STOP_TIMEOUT,
	WS_FORGET_INTERVAL,
	WS_FILES_DEPTH,
	WS_RESTIC_BINARY,
	WS_RESTIC_PASSWORD_FILE,
	WS_FILES_REPOSITORY,
	WS_CACHE_DIR,
	WS_LOG_LEVEL,
	WS_DEBUG_MAX_WATCHES,
	WS_COUNT
} WSetting;

static const char *const ws_names[WS_COUNT] = {
    "pgbk_config",      "roots",       "excludes",        "host",
    "conninfo",         "spool_dir",   "settle_delay",    "max_wait",
    "safety_interval",  "retry_delay", "retry_delay_max", "stop_timeout",
    "forget_interval",  "files_depth", "restic_binary",   "restic_password_file",
    "files_repository", "cache_dir",   "log_level",       "debug_max_watches",
};

#define PIMCORE_EXCLUDES "var/cache, var/tmp, var/log, var/sessions, public/var/tmp"

static const ConfSpec ws_spec = {ws_names, WS_COUNT};

typedef struct WParse
{
	ConfFile   cf; /* the values as read, with their origin */
	PgbkError *err;
} WParse;

static PgbkStatus
oom(WParse *ps)
{
	return pgbk_error(ps->err, PGBK_ERR, "out of memory");
}

/* "invalid value for setting "x" in file "f" line n: <why>" (confread.c) */
#define bad(ps, id, ...) conf_bad_value(&(ps)->cf, (int) (id), (ps)->err, __VA_ARGS__)

/* The value of a setting, or NULL when it is not set. */
static const char *
value(WParse *ps, WSetting id)
{
	return conf_value(&ps->cf, (int) id);
}

/* Absolute path for a path value; trailing slashes removed. */
static PgbkStatus
to_path(WParse *ps, WSetting id, const char *v, char **out)
{
	return conf_resolve_path(&ps->cf, (int) id, v, out, ps->err);
}

/* Split a comma-separated list; items trimmed, empty items dropped. */
static PgbkStatus
split_list(WParse *ps, const char *v, char ***items, int *n_items)
{
	const char *p = v;
	int         cap = 8;

	*n_items = 0;
	*items = calloc((size_t) cap, sizeof(char *));
	if (*items == NULL)
		return oom(ps);
	while (*p)
	{
		const char *e = strchr(p, ',');
		const char *s = p;
		const char *t;

		if (e == NULL)
			e = p + strlen(p);
		t = e;
		while (s < t && isspace((unsigned char) *s))
			s++;
		while (t > s && isspace((unsigned char) t[-1]))
			t--;
		if (t > s)
		{
			if (*n_items + 1 >= cap)
			{
				char **ni = realloc(*items, (size_t) cap * 2 * sizeof(char *));

				if (ni == NULL)
					return oom(ps);
				*items = ni;
				cap *= 2;
			}
			if (((*items)[*n_items] = strndup(s, (size_t) (t - s))) == NULL)
				return oom(ps);
			(*n_items)++;
			(*items)[*n_items] = NULL;
		}
		p = *e ? e + 1 : e;
	}
	return PGBK_OK;
}

static void
free_list(char **items, int n)
{
	int i;

	for (i = 0; items && i < n; i++)
		free(items[i]);
	free(items);
}

static PgbkStatus
duration(WParse *ps, WSetting id, const char *def, int64_t min_ms, bool zero_ok, int64_t *out)
{
	const char *v = value(ps, id) ? value(ps, id) : def;

	if (!config_parse_duration_ms(v, out))
		return bad(ps, id, "\"%s\" is not a duration (e.g. 500ms, 10s, 2min, 1h, 7d)", v);
	if (*out == 0 && zero_ok)
		return PGBK_OK;
	if (*out < min_ms)
		return bad(ps, id, "must be at least %lld ms%s", (long long) min_ms,
		           zero_ok ? " (or 0 to turn it off)" : "");
	return PGBK_OK;
}

/* a inside b (or equal)? both absolute, normalized */
static bool
path_within(const char *a, const char *b)
{
	size_t n = strlen(b);

	if (strcmp(b, "/") == 0)
		return true;
	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

static PgbkStatus
check_roots(WParse *ps, WatcherSettings *s)
{
	int i;
	int j;

	if (value(ps, WS_ROOTS) == NULL)
		return conf_missing(&ps->cf, WS_ROOTS, NULL, "list the directories to back up", ps->err);
	if (split_list(ps, value(ps, WS_ROOTS), &s->roots, &s->n_roots) != PGBK_OK)
		return PGBK_ERR;
	if (s->n_roots == 0)
		return bad(ps, WS_ROOTS, "no directory given");
	for (i = 0; i < s->n_roots; i++)
	{
		char *abs;

		if (s->roots[i][0] != '/')
			return bad(ps, WS_ROOTS, "\"%s\" is not an absolute path", s->roots[i]);
		if (to_path(ps, WS_ROOTS, s->roots[i], &abs) != PGBK_OK)
			return PGBK_ERR;
		free(s->roots[i]);
		s->roots[i] = abs;
		if (strstr(abs, "/../") || strstr(abs, "/./") ||
		    (strlen(abs) >= 3 && strcmp(abs + strlen(abs) - 3, "/..") == 0))
			return bad(ps, WS_ROOTS, "\"%s\" contains \".\" or \"..\"", abs);
	}
	for (i = 0; i < s->n_roots; i++)
	{
		for (j = 0; j < s->n_roots; j++)
		{
			if (i != j && path_within(s->roots[i], s->roots[j]))
				return bad(ps, WS_ROOTS, "\"%s\" is inside \"%s\"; list each tree once",
				           s->roots[i], s->roots[j]);
		}
	}
	return PGBK_OK;
}

static PgbkStatus
check_excludes(WParse *ps, WatcherSettings *s)
{
	int i;

	if (split_list(ps, value(ps, WS_EXCLUDES) ? value(ps, WS_EXCLUDES) : PIMCORE_EXCLUDES,
	               &s->excludes, &s->n_excludes) != PGBK_OK)
		return PGBK_ERR;
	for (i = 0; i < s->n_excludes; i++)
	{
		char  *e = s->excludes[i];
		size_t n = strlen(e);

		if (e[0] == '/')
			return bad(ps, WS_EXCLUDES, "\"%s\" is absolute; excludes are relative to each root",
			           e);
		while (n > 0 && e[n - 1] == '/')
			e[--n] = '\0';
		if (n == 0 || strcmp(e, "..") == 0 || strncmp(e, "../", 3) == 0 || strstr(e, "/../") ||
		    (n >= 3 && strcmp(e + n - 3, "/..") == 0))
			return bad(ps, WS_EXCLUDES, "\"%s\" must name something inside the roots", e);
		/* the watcher and restic must agree on what is excluded */
		if (strstr(e, "**") != NULL)
			return bad(ps, WS_EXCLUDES,
			           "\"%s\": \"**\" is not supported; patterns match one path component per "
			           "level, list each directory",
			           e);
	}
	return PGBK_OK;
}

static PgbkStatus
validate(WParse *ps, WatcherSettings *s)
{
	PgbkStatus  rc;
	char        hostbuf[256];
	int         i;
	const char *lvl;

	if ((rc = check_roots(ps, s)) != PGBK_OK || (rc = check_excludes(ps, s)) != PGBK_OK)
		return rc;

	if (value(ps, WS_PGBK_CONFIG) && value(ps, WS_PGBK_CONFIG)[0] != '\0' &&
	    to_path(ps, WS_PGBK_CONFIG, value(ps, WS_PGBK_CONFIG), &s->pgbk_config) != PGBK_OK)
		return PGBK_ERR_CONFIG;
	if (to_path(ps, WS_SPOOL_DIR,
	            value(ps, WS_SPOOL_DIR) ? value(ps, WS_SPOOL_DIR) : "/var/lib/pgbk-watcher/spool",
	            &s->spool_dir) != PGBK_OK)
		return PGBK_ERR_CONFIG;
	if (value(ps, WS_RESTIC_PASSWORD_FILE) &&
	    to_path(ps, WS_RESTIC_PASSWORD_FILE, value(ps, WS_RESTIC_PASSWORD_FILE),
	            &s->restic_password_file) != PGBK_OK)
		return PGBK_ERR_CONFIG;
	if (value(ps, WS_CACHE_DIR) && value(ps, WS_CACHE_DIR)[0] != '\0' &&
	    to_path(ps, WS_CACHE_DIR, value(ps, WS_CACHE_DIR), &s->cache_dir) != PGBK_OK)
		return PGBK_ERR_CONFIG;
	/* a local files_repository may be relative; URLs stay as written */
	if (value(ps, WS_FILES_REPOSITORY) && value(ps, WS_FILES_REPOSITORY)[0] != '\0')
	{
		const char *v = value(ps, WS_FILES_REPOSITORY);

		if (v[0] == '/' || strchr(v, ':') == NULL)
		{
			if (to_path(ps, WS_FILES_REPOSITORY, v, &s->files_repository) != PGBK_OK)
				return PGBK_ERR_CONFIG;
		}
		else if ((s->files_repository = strdup(v)) == NULL)
			return oom(ps);
	}
	if (value(ps, WS_RESTIC_BINARY) &&
	    (s->restic_binary = strdup(value(ps, WS_RESTIC_BINARY))) == NULL)
		return oom(ps);

	/* nothing the watcher writes may sit in what it watches: a loop */
	for (i = 0; i < s->n_roots; i++)
	{
		if (path_within(s->spool_dir, s->roots[i]))
			return bad(ps, WS_SPOOL_DIR, "\"%s\" is inside root \"%s\"; put it elsewhere",
			           s->spool_dir, s->roots[i]);
		if (s->cache_dir && path_within(s->cache_dir, s->roots[i]))
			return bad(ps, WS_CACHE_DIR, "\"%s\" is inside root \"%s\"; put it elsewhere",
			           s->cache_dir, s->roots[i]);
	}

	if (value(ps, WS_HOST) && value(ps, WS_HOST)[0] != '\0')
	{
		const char *h = value(ps, WS_HOST);

		for (i = 0; h[i]; i++)
		{
			if (isspace((unsigned char) h[i]) || h[i] == ',')
				return bad(ps, WS_HOST, "\"%s\" contains a space or a comma", h);
		}
		s->host = strdup(h);
	}
	else
	{
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0)
			return pgbk_error(ps->err, PGBK_ERR_CONFIG,
			                  "could not get the host name (%s); set \"host\" in file \"%s\"",
			                  strerror(errno), ps->cf.origin);
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		s->host = strdup(hostbuf);
	}
	s->conninfo = strdup(value(ps, WS_CONNINFO) ? value(ps, WS_CONNINFO) : "");
	if (s->host == NULL || s->conninfo == NULL)
		return oom(ps);

	if ((rc = duration(ps, WS_SETTLE_DELAY, "10s", 100, false, &s->settle_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_MAX_WAIT, "60s", 100, false, &s->max_wait_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_SAFETY_INTERVAL, "1h", 1000, true, &s->safety_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_RETRY_DELAY, "10s", 100, false, &s->retry_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_RETRY_DELAY_MAX, "5min", 100, false, &s->retry_max_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_STOP_TIMEOUT, "60s", 0, true, &s->stop_timeout_ms)) != PGBK_OK ||
	    (rc = duration(ps, WS_FORGET_INTERVAL, "1d", 1000, true, &s->forget_interval_ms)) !=
	        PGBK_OK ||
	    (rc = duration(ps, WS_FILES_DEPTH, "180d", 3600 * 1000, false, &s->files_depth_ms)) !=
	        PGBK_OK)
		return rc;
	if (s->settle_ms > s->max_wait_ms)
		return bad(ps, WS_MAX_WAIT, "max_wait (%lld ms) is shorter than settle_delay (%lld ms)",
		           (long long) s->max_wait_ms, (long long) s->settle_ms);
	if (s->retry_ms > s->retry_max_ms)
		s->retry_max_ms = s->retry_ms;

	lvl = value(ps, WS_LOG_LEVEL) ? value(ps, WS_LOG_LEVEL) : "info";
	if (strcasecmp(lvl, "debug") == 0)
		s->debug = true;
	else if (strcasecmp(lvl, "info") != 0)
		return bad(ps, WS_LOG_LEVEL, "\"%s\" is not info or debug", lvl);
	if (value(ps, WS_DEBUG_MAX_WATCHES))
	{
		char *end;
		long  v = strtol(value(ps, WS_DEBUG_MAX_WATCHES), &end, 10);

		if (*end != '\0' || v < 0 || v > INT_MAX)
			return bad(ps, WS_DEBUG_MAX_WATCHES, "not a non-negative integer");
		s->debug_max_watches = (int) v;
	}
	return PGBK_OK;
}

/* Validate what the reader read into a new WatcherSettings. */
static PgbkStatus
settings_from_file(ConfFile *cf, WatcherSettings **out, PgbkError *err)
{
	WParse           ps;
	WatcherSettings *s;
	PgbkStatus       rc = PGBK_OK;

	*out = NULL;
	ps.cf = *cf;
	ps.err = err;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->config_path = strdup(cf->origin)) == NULL)
		rc = oom(&ps);
	if (rc == PGBK_OK)
		rc = validate(&ps, s);
	if (rc != PGBK_OK)
	{
		settings_free(s);
		return rc == PGBK_ERR && err && err->code != PGBK_OK ? err->code : rc;
	}
	*out = s;
	return PGBK_OK;
}

PgbkStatus
settings_parse_string(const char *text, const char *origin, const char *base_dir,
                      WatcherSettings **out, PgbkError *err)
{
	ConfFile   cf;
	PgbkStatus rc;

	*out = NULL;
	rc = conf_read_text(&ws_spec, text, strlen(text), origin, base_dir, &cf, err);
	if (rc == PGBK_OK)
	{
		rc = settings_from_file(&cf, out, err);
		conf_file_free(&cf);
	}
	return rc;
}

PgbkStatus
settings_load(const char *path, WatcherSettings **out, PgbkError *err)
{
	ConfFile   cf;
	PgbkStatus rc;

	*out = NULL;
	/* it names pgbk.conf, which names programs we run: refused if others could write it */
	rc = conf_read_file(&ws_spec, path, &cf, err);
	if (rc == PGBK_OK)
	{
		rc = settings_from_file(&cf, out, err);
		conf_file_free(&cf);
	}
	return rc;
}

void
settings_free(WatcherSettings *s)
{
	if (s == NULL)
		return;
	free(s->config_path);
	free(s->pgbk_config);
	free_list(s->roots, s->n_roots);
	free_list(s->excludes, s->n_excludes);
	free(s->host);
	free(s->conninfo);
	free(s->spool_dir);
	free(s->restic_binary);
	free(s->restic_password_file);
	free(s->files_repository);
	free(s->cache_dir);
	free(s);
}

static bool
lists_equal(char **a, int na, char **b, int nb)
{
	int i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
	{
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

bool
settings_watch_changed(const WatcherSettings *a, const WatcherSettings *b)
{
	return !lists_equal(a->roots, a->n_roots, b->roots, b->n_roots) ||
	       !lists_equal(a->excludes, a->n_excludes, b->excludes, b->n_excludes) ||
	       a->debug_max_watches != b->debug_max_watches;
}

void
settings_restic_duration(int64_t ms, char *buf, size_t len)
{
	int64_t hours = ms / 3600000;

	if (hours < 1)
		hours = 1;
	snprintf(buf, len, "%lldd%lldh", (long long) (hours / 24), (long long) (hours % 24));
}
