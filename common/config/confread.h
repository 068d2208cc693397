/*
 * confread.h
 *	  Room config; uses base only.
 *	  The one reader of configuration files in postgresql.conf syntax: pgbk.conf
 *	  (config.c) and pgbk-watcher's settings (watcher/settings.c).
 *
 * It owns everything the two files have in common, so that they cannot
 * drift apart: reading the file (pgbk_read_trusted_file: refused when others
 * could have written it, at most CONF_FILE_MAX bytes, no NUL byte), naming it
 * by its absolute path, the directory relative paths are resolved against,
 * the lexer ("name = value" lines, '#' comments, values bare or single-quoted
 * with '' for a quote, '=' required, a later line for a setting wins), the
 * include policy (include, include_if_exists and include_dir are refused:
 * every setting is in the one file), and the wording of errors: each names
 * the setting, the file and the line that gave it its value ("origin"),
 * never the value of an unknown setting (it could be a secret pasted into
 * the wrong file), with a hint where one helps ("did you mean ...").
 *
 * The caller brings only its table of names (ConfSpec) and validates the
 * values it gets back, using the error helpers below so that every message
 * has the same shape.
 */
#ifndef PGBK_CONFREAD_H
#define PGBK_CONFREAD_H

#include "base/pgbk_common.h"

#define CONF_FILE_MAX (1024 * 1024)

/* What a file may hold: the known names, a setting's id is its index. */
typedef struct ConfSpec
{
	const char *const *names;
	int                n_names;
} ConfSpec;

/* One setting as read. */
typedef struct ConfValue
{
	char *value; /* NULL: not set */
	int   line;  /* line that set it (a later line wins); 0: not set */
} ConfValue;

typedef struct ConfFile
{
	const ConfSpec *spec;
	char           *origin;   /* the file's absolute path, or the string's name */
	char           *base_dir; /* relative paths are resolved here; NULL: refused */
	ConfValue      *values;   /* spec->n_names slots */
} ConfFile;

/*
 * Read the file at path (relative: against the current directory) into
 * *out.  Errors: PGBK_ERR_CONFIG for a missing, untrusted, unreadable, too
 * large or malformed file; PGBK_ERR_IO when the current directory cannot be
 * found; PGBK_ERR on out of memory.  *out is zeroed on failure.
 */
PgbkStatus conf_read_file(const ConfSpec *spec, const char *path, ConfFile *out, PgbkError *err);

/* The same from text[0..len) (tests); origin names it in messages. */
PgbkStatus conf_read_text(const ConfSpec *spec, const char *text, size_t len, const char *origin,
                          const char *base_dir, ConfFile *out, PgbkError *err);

void conf_file_free(ConfFile *cf);

/* The value of setting id, or NULL when it is not set. */
const char *conf_value(const ConfFile *cf, int id);

/* Forget a setting's value (as if it were not set). */
void conf_unset(ConfFile *cf, int id);

/*
 * "invalid value for setting "x" in file "f" line n: <why>"; for a setting
 * the file does not set (a default) "invalid setting "x" in file "f": <why>".
 * Returns PGBK_ERR_CONFIG.
 */
PgbkStatus conf_bad_value(const ConfFile *cf, int id, PgbkError *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * "setting "x" is required<condition> but is not set in file "f"[: <hint>]";
 * condition (e.g. " for an S3 repository") and hint may be NULL.  Returns
 * PGBK_ERR_CONFIG.
 */
PgbkStatus conf_missing(const ConfFile *cf, int id, const char *condition, const char *hint,
                        PgbkError *err);

/*
 * Absolute path for value v of setting id: relative ones against the
 * file's directory (refused for a string without one), trailing slashes
 * removed.  An empty value is refused.
 */
PgbkStatus conf_resolve_path(const ConfFile *cf, int id, const char *v, char **out, PgbkError *err);

#endif /* PGBK_CONFREAD_H */
