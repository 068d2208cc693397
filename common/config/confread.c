/*
 * confread.c
 *	  Room config; uses base (errors, trusted-file reading) only.
 *	  The configuration-file reader shared by pgbk.conf and the watcher's
 *	  settings (see confread.h): file reading, lexer, include policy, origin
 *	  of each setting and the shape of every error message.
 */
#include "config/confread.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONF_NAME_MAX 64

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static PgbkStatus
oom(PgbkError *err)
{
	return pgbk_error(err, PGBK_ERR, "out of memory");
}

/* ----------------------------------------------------------------------
 * Hints
 * ---------------------------------------------------------------------- */

/* Edit distance of a and b, case-insensitive; stops counting above limit. */
static int
edit_distance(const char *a, const char *b, int limit)
{
	int    row[CONF_NAME_MAX + 1];
	size_t la = strlen(a);
	size_t lb = strlen(b);
	size_t i;
	size_t j;

	if (la > CONF_NAME_MAX || lb > CONF_NAME_MAX)
		return limit + 1;
	if ((la > lb ? la - lb : lb - la) > (size_t) limit)
		return limit + 1;
	for (j = 0; j <= lb; j++)
		row[j] = (int) j;
	for (i = 1; i <= la; i++)
	{
		int diag = row[0];

		row[0] = (int) i;
		for (j = 1; j <= lb; j++)
		{
			int up = row[j];
			int cost =
			    tolower((unsigned char) a[i - 1]) == tolower((unsigned char) b[j - 1]) ? 0 : 1;
			int best = diag + cost;

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/*
 * The known name closest to an unknown one ('-' and '.' for '_', a typo or
 * two), or NULL when none is close enough to be a useful guess.
 */
static const char *
closest_name(const ConfSpec *spec, const char *name)
{
	char        norm[CONF_NAME_MAX];
	const char *best = NULL;
	int         best_d;
	int         limit;
	size_t      n = strlen(name);
	size_t      i;
	int         id;

	if (n >= sizeof(norm))
		return NULL;
	for (i = 0; i <= n; i++)
		norm[i] = (name[i] == '-' || name[i] == '.') ? '_' : name[i];
	limit = n <= 4 ? 1 : 2;
	best_d = limit + 1;
	for (id = 0; id < spec->n_names; id++)
	{
		int d = edit_distance(norm, spec->names[id], limit);

		if (d < best_d)
		{
			best_d = d;
			best = spec->names[id];
		}
	}
	return best;
}

/* ----------------------------------------------------------------------
 * Lexer
 * ---------------------------------------------------------------------- */

static int
find_name(const ConfSpec *spec, const char *name)
{
	int i;

	for (i = 0; i < spec->n_names; i++)
	{
		if (strcasecmp(name, spec->names[i]) == 0)
			return i;
	}
	return -1;
}

/*
 * Read one line (line[0..len)) into the value slots.  Values are bare words
 * or single-quoted strings with '' for a quote; '#' outside quotes starts a
 * comment.
 */
static PgbkStatus
read_line(ConfFile *cf, const char *line, size_t len, int lineno, PgbkError *err)
{
	const char *p = line;
	const char *end = line + len;
	const char *origin = cf->origin;
	char        name[CONF_NAME_MAX];
	size_t      nlen = 0;
	PgbkBuf     value;
	int         id;

	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p == '#')
		return PGBK_OK;

	if (!(isalpha((unsigned char) *p) || *p == '_'))
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "syntax error in file \"%s\" line %d: expected a setting name", origin,
		                  lineno);
	while (p < end && (isalnum((unsigned char) *p) || *p == '_' || *p == '.' || *p == '-'))
	{
		if (nlen + 1 >= sizeof(name))
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "syntax error in file \"%s\" line %d: setting name is too long",
			                  origin, lineno);
		name[nlen++] = *p++;
	}
	name[nlen] = '\0';

	/* the include policy: one file holds every setting */
	if (strcasecmp(name, "include") == 0 || strcasecmp(name, "include_if_exists") == 0 ||
	    strcasecmp(name, "include_dir") == 0)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "\"%s\" directives are not supported (file \"%s\" line %d): put every "
		                  "setting in this file",
		                  name, origin, lineno);

	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p != '=')
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "syntax error in file \"%s\" line %d: expected \"=\" after \"%s\"",
		                  origin, lineno, name);
	p++;
	while (p < end && is_blank(*p))
		p++;

	/* never the value: it could be a secret in the wrong file */
	id = find_name(cf->spec, name);
	if (id < 0)
	{
		const char *guess = closest_name(cf->spec, name);

		if (guess != NULL)
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "unrecognized setting \"%s\" in file \"%s\" line %d; did you mean "
			                  "\"%s\"?",
			                  name, origin, lineno, guess);
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "unrecognized setting \"%s\" in file \"%s\" line %d", name, origin,
		                  lineno);
	}

	pgbk_buf_init(&value);
	if (!pgbk_buf_append(&value, "", 0))
		return oom(err);
	if (p < end && *p == '\'')
	{
		for (p++;; p++)
		{
			if (p == end)
			{
				pgbk_buf_free(&value);
				return pgbk_error(err, PGBK_ERR_CONFIG,
				                  "syntax error in file \"%s\" line %d: unterminated quoted value "
				                  "for \"%s\"",
				                  origin, lineno, name);
			}
			if (*p == '\'')
			{
				if (p + 1 < end && p[1] == '\'')
					p++; /* '' is a quote */
				else
				{
					p++;
					break;
				}
			}
			if (!pgbk_buf_append(&value, p, 1))
			{
				pgbk_buf_free(&value);
				return oom(err);
			}
		}
	}
	else
	{
		const char *v = p;

		while (p < end && !is_blank(*p) && *p != '#')
			p++;
		if (p == v)
		{
			pgbk_buf_free(&value);
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "syntax error in file \"%s\" line %d: missing value for \"%s\"",
			                  origin, lineno, name);
		}
		if (!pgbk_buf_append(&value, v, (size_t) (p - v)))
		{
			pgbk_buf_free(&value);
			return oom(err);
		}
	}

	while (p < end && is_blank(*p))
		p++;
	if (p < end && *p != '#')
	{
		pgbk_buf_free(&value);
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "syntax error in file \"%s\" line %d: unexpected text after the value of "
		                  "\"%s\" (quote values that contain spaces or '#')",
		                  origin, lineno, name);
	}

	/* a later line wins */
	free(cf->values[id].value);
	cf->values[id].value = (char *) value.data;
	cf->values[id].line = lineno;
	return PGBK_OK;
}

static PgbkStatus
read_text(ConfFile *cf, const char *text, size_t len, PgbkError *err)
{
	const char *p = text;
	const char *end = text + len;
	int         lineno = 0;
	PgbkStatus  rc;

	if (memchr(text, '\0', len) != NULL)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "file \"%s\" contains a NUL byte; it is not a text file", cf->origin);
	while (p < end)
	{
		const char *eol = memchr(p, '\n', (size_t) (end - p));

		if (eol == NULL)
			eol = end;
		lineno++;
		if ((rc = read_line(cf, p, (size_t) (eol - p), lineno, err)) != PGBK_OK)
			return rc;
		p = eol + 1;
	}
	return PGBK_OK;
}

/* ----------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------- */

static PgbkStatus
conf_init(ConfFile *cf, const ConfSpec *spec, const char *origin, const char *base_dir,
          PgbkError *err)
{
	memset(cf, 0, sizeof(*cf));
	cf->spec = spec;
	cf->values = calloc((size_t) (spec->n_names > 0 ? spec->n_names : 1), sizeof(ConfValue));
	cf->origin = strdup(origin);
	cf->base_dir = base_dir ? strdup(base_dir) : NULL;
	if (cf->values == NULL || cf->origin == NULL || (base_dir != NULL && cf->base_dir == NULL))
	{
		conf_file_free(cf);
		return oom(err);
	}
	return PGBK_OK;
}

PgbkStatus
conf_read_text(const ConfSpec *spec, const char *text, size_t len, const char *origin,
               const char *base_dir, ConfFile *out, PgbkError *err)
{
	PgbkStatus rc;

	if ((rc = conf_init(out, spec, origin ? origin : "<string>", base_dir, err)) != PGBK_OK)
		return rc;
	if ((rc = read_text(out, text ? text : "", text ? len : 0, err)) != PGBK_OK)
		conf_file_free(out);
	return rc;
}

/* The absolute form of path (against the current directory); malloc'd. */
static PgbkStatus
absolute_path(const char *path, char **out, PgbkError *err)
{
	char   cwd[PATH_MAX];
	size_t n;

	*out = NULL;
	if (path[0] == '/')
		*out = strdup(path);
	else
	{
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return pgbk_error(err, PGBK_ERR_IO, "could not get the current directory: %s",
			                  strerror(errno));
		n = strlen(cwd) + 1 + strlen(path) + 1;
		if ((*out = malloc(n)) != NULL)
			snprintf(*out, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
	}
	return *out ? PGBK_OK : oom(err);
}

PgbkStatus
conf_read_file(const ConfSpec *spec, const char *path, ConfFile *out, PgbkError *err)
{
	PgbkBuf    text;
	PgbkStatus rc;
	char      *abs;
	char      *dir;
	char      *slash;

	memset(out, 0, sizeof(*out));
	if (path == NULL || path[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "no configuration file given");

	/* the absolute path names the file in messages and anchors relative paths */
	if ((rc = absolute_path(path, &abs, err)) != PGBK_OK)
		return rc;
	if ((dir = strdup(abs)) == NULL)
	{
		free(abs);
		return oom(err);
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	/* it names programs we run: refused if others could have written it */
	pgbk_buf_init(&text);
	rc = pgbk_read_trusted_file(abs, "configuration file", CONF_FILE_MAX, &text, err);
	if (rc == PGBK_NOT_FOUND)
		rc = pgbk_error(err, PGBK_ERR_CONFIG,
		                "could not read configuration file \"%s\": it does not exist", abs);
	else if (rc == PGBK_ERR_IO)
	{
		/* unreadable is a configuration error, as a missing file is */
		if (err != NULL)
			err->code = PGBK_ERR_CONFIG;
		rc = PGBK_ERR_CONFIG;
	}
	else if (rc == PGBK_OK)
		rc = conf_read_text(spec, text.data ? (const char *) text.data : "", text.len, abs, dir,
		                    out, err);
	pgbk_buf_free(&text);
	free(abs);
	free(dir);
	return rc;
}

void
conf_file_free(ConfFile *cf)
{
	int i;

	if (cf == NULL)
		return;
	for (i = 0; cf->values != NULL && i < cf->spec->n_names; i++)
		free(cf->values[i].value);
	free(cf->values);
	free(cf->origin);
	free(cf->base_dir);
	memset(cf, 0, sizeof(*cf));
}

const char *
conf_value(const ConfFile *cf, int id)
{
	return cf->values[id].value;
}

void
conf_unset(ConfFile *cf, int id)
{
	free(cf->values[id].value);
	cf->values[id].value = NULL;
}

/* ----------------------------------------------------------------------
 * Errors and paths
 * ---------------------------------------------------------------------- */

PgbkStatus
conf_bad_value(const ConfFile *cf, int id, PgbkError *err, const char *fmt, ...)
{
	char    why[PGBK_ERRMSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (cf->values[id].line > 0)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "invalid value for setting \"%s\" in file \"%s\" line %d: %s",
		                  cf->spec->names[id], cf->origin, cf->values[id].line, why);
	return pgbk_error(err, PGBK_ERR_CONFIG, "invalid setting \"%s\" in file \"%s\": %s",
	                  cf->spec->names[id], cf->origin, why);
}

PgbkStatus
conf_missing(const ConfFile *cf, int id, const char *condition, const char *hint, PgbkError *err)
{
	return pgbk_error(err, PGBK_ERR_CONFIG,
	                  "setting \"%s\" is required%s but is not set in file "
	                  "\"%s\"%s%s",
	                  cf->spec->names[id], condition ? condition : "", cf->origin, hint ? ": " : "",
	                  hint ? hint : "");
}

PgbkStatus
conf_resolve_path(const ConfFile *cf, int id, const char *v, char **out, PgbkError *err)
{
	size_t n;
	char  *p;

	*out = NULL;
	if (v[0] == '\0')
		return conf_bad_value(cf, id, err, "empty path");
	if (v[0] == '/')
		p = strdup(v);
	else if (cf->base_dir == NULL)
		return conf_bad_value(cf, id, err,
		                      "\"%s\" is a relative path, which needs the configuration to come "
		                      "from a file",
		                      v);
	else
	{
		size_t blen = strlen(cf->base_dir);

		n = blen + 1 + strlen(v) + 1;
		if ((p = malloc(n)) != NULL)
			snprintf(p, n, "%s%s%s", cf->base_dir,
			         blen > 0 && cf->base_dir[blen - 1] == '/' ? "" : "/", v);
	}
	if (p == NULL)
		return oom(err);
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	*out = p;
	return PGBK_OK;
}
