/*
 * config.c
 *	  Room config; uses base (errors, secret files) and libsodium.
 *	  pgbk.conf parsing and validation, and AWS-style credentials files (see
 *	  config.h for the settings).
 *
 * Parsing runs in two passes.  The first is confread.c's, the reader shared
 * with pgbk-watcher's settings: it reads "name = value" lines into one slot
 * per known setting, remembering the line (a later line for the same setting
 * wins, as in postgresql.conf).  The second, here, validates each setting in
 * turn and fills PgbkConfig, so that every error can name the setting,
 * the file and the line that gave it its value.  Settings that depend on
 * each other (S3 needs credentials, encryption needs a key file, host-style
 * URLs need a host name) are checked last.
 *
 * The configuration file holds no secrets, but the files it points to do:
 * those are only checked (existence, mode 0600 or tighter) here.  Unknown
 * settings are reported by name only, never with their value, in case
 * someone pasted a secret into the wrong file.  Credentials are read by
 * credentials_load() into memory that is zeroed when freed; its errors name
 * the file, the profile and the field, never a value.
 */
#include "config/config.h"

#include "config/confread.h"
#include "base/secret.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S3_PART_MIN   ((uint64_t) 5 * 1024 * 1024)
#define S3_PART_MAX   ((uint64_t) 5 * 1024 * 1024 * 1024)
#define S3_PREFIX_MAX 512

/* One slot per setting, in the order they are validated. */
typedef enum SettingId
{
	SET_REPOSITORY,
	SET_S3_REGION,
	SET_S3_ENDPOINT,
	SET_S3_URI_STYLE,
	SET_S3_CA_FILE,
	SET_S3_VERIFY_TLS,
	SET_S3_CONNECT_HOST,
	SET_S3_CREDENTIALS_FILE,
	SET_S3_PROFILE,
	SET_S3_PART_SIZE,
	SET_S3_MULTIPART_THRESHOLD,
	SET_S3_TIMEOUT,
	SET_S3_CONNECT_TIMEOUT,
	SET_S3_MAX_RETRIES,
	SET_S3_MIN_RATE,
	SET_ENCRYPTION,
	SET_KEY_FILE,
	SET_COMPRESSION,
	SET_COMPRESSION_LEVEL,
	SET_RESTIC_BINARY,
	SET_RESTIC_PASSWORD_FILE,
	SET_FILES_REPOSITORY,
	NUM_SETTINGS
} SettingId;

static const char *const setting_names[NUM_SETTINGS] = {
    "repository",
    "s3_region",
    "s3_endpoint",
    "s3_uri_style",
    "s3_ca_file",
    "s3_verify_tls",
    "s3_connect_host",
    "s3_credentials_file",
    "s3_profile",
    "s3_part_size",
    "s3_multipart_threshold",
    "s3_timeout",
    "s3_connect_timeout",
    "s3_max_retries",
    "s3_min_rate",
    "encryption",
    "key_file",
    "compression",
    "compression_level",
    "restic_binary",
    "restic_password_file",
    "files_repository",
};

static const ConfSpec config_spec = {setting_names, NUM_SETTINGS};

/* Everything the validation pass needs to word its errors. */
typedef struct ParseState
{
	ConfFile   cf; /* the values as read, with their origin */
	PgbkError *err;
} ParseState;

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* ----------------------------------------------------------------------
 * Units
 * ---------------------------------------------------------------------- */

/* Leading decimal digits of s into *v; NULL on overflow or if there are none. */
static const char *
parse_digits(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (!isdigit((unsigned char) *s))
		return NULL;
	while (isdigit((unsigned char) *s))
	{
		unsigned d = (unsigned) (*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			return NULL;
		n = n * 10 + d;
		s++;
	}
	*v = n;
	return s;
}

/* Unit word at s (surrounded by optional blanks) into *unit, lower-cased. */
static bool
parse_unit(const char *s, char *unit, size_t unitlen)
{
	size_t n = 0;

	while (is_blank(*s))
		s++;
	while (isalpha((unsigned char) *s))
	{
		if (n + 1 >= unitlen)
			return false;
		unit[n++] = (char) tolower((unsigned char) *s);
		s++;
	}
	unit[n] = '\0';
	while (is_blank(*s))
		s++;
	return *s == '\0';
}

bool
config_parse_size(const char *s, uint64_t *out)
{
	static const struct
	{
		const char *name;
		uint64_t    mult;
	} units[] = {
	    {"", 1},
	    {"b", 1},
	    {"k", 1024},
	    {"kb", 1024},
	    {"kib", 1024},
	    {"m", 1024 * 1024},
	    {"mb", 1024 * 1024},
	    {"mib", 1024 * 1024},
	    {"g", (uint64_t) 1024 * 1024 * 1024},
	    {"gb", (uint64_t) 1024 * 1024 * 1024},
	    {"gib", (uint64_t) 1024 * 1024 * 1024},
	    {"t", (uint64_t) 1024 * 1024 * 1024 * 1024},
	    {"tb", (uint64_t) 1024 * 1024 * 1024 * 1024},
	    {"tib", (uint64_t) 1024 * 1024 * 1024 * 1024},
	};
	uint64_t    v;
	char        unit[8];
	const char *rest;
	size_t      i;

	if (s == NULL)
		return false;
	while (is_blank(*s))
		s++;
	rest = parse_digits(s, &v);
	if (rest == NULL || !parse_unit(rest, unit, sizeof(unit)))
		return false;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		if (strcmp(unit, units[i].name) == 0)
		{
			if (v > UINT64_MAX / units[i].mult)
				return false;
			*out = v * units[i].mult;
			return true;
		}
	}
	return false;
}

bool
config_parse_duration_ms(const char *s, int64_t *out)
{
	static const struct
	{
		const char *name;
		int64_t     ms;
	} units[] = {
	    {"", 1000},     {"ms", 1},      {"s", 1000},     {"sec", 1000},
	    {"min", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	uint64_t    v;
	char        unit[8];
	const char *rest;
	size_t      i;

	if (s == NULL)
		return false;
	while (is_blank(*s))
		s++;
	rest = parse_digits(s, &v);
	if (rest == NULL || !parse_unit(rest, unit, sizeof(unit)))
		return false;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		if (strcmp(unit, units[i].name) == 0)
		{
			if (v > (uint64_t) INT64_MAX / (uint64_t) units[i].ms)
				return false;
			*out = (int64_t) v * units[i].ms;
			return true;
		}
	}
	return false;
}

static bool
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	size_t                   i;

	for (i = 0; i < 4; i++)
	{
		if (strcasecmp(s, yes[i]) == 0)
		{
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0)
		{
			*out = false;
			return true;
		}
	}
	return false;
}

/* ----------------------------------------------------------------------
 * Second pass: validation
 * ---------------------------------------------------------------------- */

/* "invalid value for setting "x" in file "f" line n: <why>" (confread.c) */
#define bad_value(ps, id, ...) conf_bad_value(&(ps)->cf, (int) (id), (ps)->err, __VA_ARGS__)

static PgbkStatus
missing(ParseState *ps, SettingId id, const char *why)
{
	return conf_missing(&ps->cf, (int) id, why, NULL, ps->err);
}

static PgbkStatus
oom(ParseState *ps)
{
	return pgbk_error(ps->err, PGBK_ERR, "out of memory");
}

/* The value of a setting, or NULL when it is not set. */
static const char *
raw_value(ParseState *ps, SettingId id)
{
	return conf_value(&ps->cf, (int) id);
}

/* Absolute path for a value, relative ones against the file's directory. */
static PgbkStatus
resolve_path(ParseState *ps, SettingId id, char **out)
{
	return conf_resolve_path(&ps->cf, (int) id, raw_value(ps, id), out, ps->err);
}

/* S3 bucket naming rules (general purpose buckets). */
static bool
valid_bucket(const char *b, size_t n)
{
	size_t i;
	bool   all_ip = true;
	int    dots = 0;

	if (n < 3 || n > 63)
		return false;
	for (i = 0; i < n; i++)
	{
		char c = b[i];

		if (!(islower((unsigned char) c) || isdigit((unsigned char) c) || c == '.' || c == '-'))
			return false;
		if (c == '.')
		{
			dots++;
			if (i > 0 && (b[i - 1] == '.' || b[i - 1] == '-'))
				return false;
		}
		if (c == '-' && i > 0 && b[i - 1] == '.')
			return false;
		if (!(isdigit((unsigned char) c) || c == '.'))
			all_ip = false;
	}
	if (!isalnum((unsigned char) b[0]) || !isalnum((unsigned char) b[n - 1]))
		return false;
	if (all_ip && dots == 3)
		return false; /* looks like an IP address */
	if (strncmp(b, "xn--", 4) == 0 || strncmp(b, "sthree-", 7) == 0)
		return false;
	if (n >= 8 && strncmp(b + n - 8, "-s3alias", 8) == 0)
		return false;
	if (n >= 7 && strncmp(b + n - 7, "--ol-s3", 7) == 0)
		return false;
	return true;
}

static PgbkStatus
check_repository(ParseState *ps, PgbkConfig *cfg)
{
	const char *v = raw_value(ps, SET_REPOSITORY);

	if (v == NULL || v[0] == '\0')
		return missing(ps, SET_REPOSITORY, "");
	if ((cfg->repository = strdup(v)) == NULL)
		return oom(ps);

	if (strncmp(v, "s3://", 5) == 0)
	{
		const char *b = v + 5;
		const char *slash = strchr(b, '/');
		size_t      blen = slash ? (size_t) (slash - b) : strlen(b);
		const char *prefix = slash ? slash : "";
		size_t      plen;
		size_t      i;

		if (!valid_bucket(b, blen))
			return bad_value(ps, SET_REPOSITORY,
			                 "\"%.*s\" is not a valid S3 bucket name (3 to 63 lowercase letters, "
			                 "digits, '.' and '-', starting and ending with a letter or digit)",
			                 (int) (blen > 80 ? 80 : blen), b);
		while (*prefix == '/')
			prefix++;
		plen = strlen(prefix);
		while (plen > 0 && prefix[plen - 1] == '/')
			plen--;
		if (plen > S3_PREFIX_MAX)
			return bad_value(ps, SET_REPOSITORY, "the prefix is longer than %d bytes",
			                 S3_PREFIX_MAX);
		for (i = 0; i < plen; i++)
		{
			unsigned char c = (unsigned char) prefix[i];

			if (c < 0x20 || c == 0x7f || c == '\\')
				return bad_value(ps, SET_REPOSITORY,
				                 "the prefix contains a control character or a backslash");
			if (c == '/' && prefix[i + 1] == '/')
				return bad_value(ps, SET_REPOSITORY,
				                 "the prefix contains an empty path segment "
				                 "(\"//\")");
		}
		/* "." and ".." segments mean different things to different tools */
		for (i = 0; i < plen;)
		{
			size_t j = i;

			while (j < plen && prefix[j] != '/')
				j++;
			if ((j - i == 1 && prefix[i] == '.') ||
			    (j - i == 2 && prefix[i] == '.' && prefix[i + 1] == '.'))
				return bad_value(ps, SET_REPOSITORY,
				                 "the prefix contains a \".\" or \"..\" segment");
			i = j + 1;
		}
		cfg->repo_kind = PGBK_REPO_S3;
		cfg->s3_bucket = strndup(b, blen);
		cfg->s3_prefix = strndup(prefix, plen);
		if (cfg->s3_bucket == NULL || cfg->s3_prefix == NULL)
			return oom(ps);
		return PGBK_OK;
	}
	if (strstr(v, "://") != NULL)
		return bad_value(
		    ps, SET_REPOSITORY,
		    "unsupported URL scheme; use an absolute directory or s3://bucket[/prefix]");
	if (v[0] != '/')
		return bad_value(ps, SET_REPOSITORY,
		                 "\"%s\" is neither an absolute directory nor s3://bucket[/prefix]", v);

	cfg->repo_kind = PGBK_REPO_LOCAL;
	if ((cfg->local_path = strdup(v)) == NULL)
		return oom(ps);
	{
		size_t n = strlen(cfg->local_path);

		while (n > 1 && cfg->local_path[n - 1] == '/')
			cfg->local_path[--n] = '\0';
	}
	return PGBK_OK;
}

/* A DNS name or an IPv4 address: letters, digits, '-', '.'. */
static bool
valid_hostname(const char *h, size_t n)
{
	size_t i;

	if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
		return false;
	for (i = 0; i < n; i++)
	{
		if (!(isalnum((unsigned char) h[i]) || h[i] == '-' || h[i] == '.'))
			return false;
	}
	return true;
}

static bool
is_ipv4(const char *h, size_t n)
{
	size_t i;
	int    dots = 0;

	for (i = 0; i < n; i++)
	{
		if (h[i] == '.')
			dots++;
		else if (!isdigit((unsigned char) h[i]))
			return false;
	}
	return dots == 3;
}

/* [IPv6]: hex digits, ':' and '.' between the brackets. */
static bool
valid_ipv6_literal(const char *h, size_t n)
{
	size_t i;

	if (n < 4 || h[0] != '[' || h[n - 1] != ']')
		return false;
	for (i = 1; i < n - 1; i++)
	{
		if (!(isxdigit((unsigned char) h[i]) || h[i] == ':' || h[i] == '.'))
			return false;
	}
	return true;
}

static PgbkStatus
check_endpoint(ParseState *ps, PgbkConfig *cfg, bool *host_is_ip)
{
	const char *v = raw_value(ps, SET_S3_ENDPOINT);
	const char *rest;
	const char *auth_end;
	const char *host;
	size_t      hlen;
	const char *colon = NULL;
	char       *url;

	*host_is_ip = false;
	if (v == NULL)
	{
		/* AWS, in the configured region */
		size_t n = strlen(cfg->s3_region) + 32;

		if ((cfg->s3_endpoint = malloc(n)) == NULL)
			return oom(ps);
		snprintf(cfg->s3_endpoint, n, "https://s3.%s.amazonaws.com", cfg->s3_region);
		return PGBK_OK;
	}
	/* never echo a value that may hold user:password@ */
	if (strchr(v, '@') != NULL)
		return bad_value(ps, SET_S3_ENDPOINT,
		                 "the URL must not contain user information (credentials belong in "
		                 "s3_credentials_file)");
	if (strncasecmp(v, "https://", 8) == 0)
		rest = v + 8;
	else if (strncasecmp(v, "http://", 7) == 0)
		rest = v + 7;
	else
		return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" is not an http:// or https:// URL", v);

	auth_end = rest + strcspn(rest, "/?#");
	if (*auth_end != '\0' && strcmp(auth_end, "/") != 0)
		return bad_value(ps, SET_S3_ENDPOINT,
		                 "\"%s\" has a path or query; give only scheme://host[:port] (the bucket "
		                 "and prefix go in repository)",
		                 v);
	host = rest;
	if (*host == '[')
	{
		const char *rb = memchr(host, ']', (size_t) (auth_end - host));

		if (rb == NULL)
			return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" has an unterminated IPv6 address", v);
		hlen = (size_t) (rb - host) + 1;
		if (!valid_ipv6_literal(host, hlen))
			return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" has an invalid IPv6 address", v);
		if (host + hlen < auth_end)
		{
			if (host[hlen] != ':')
				return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" is not a valid URL", v);
			colon = host + hlen;
		}
		*host_is_ip = true;
	}
	else
	{
		colon = memchr(host, ':', (size_t) (auth_end - host));
		hlen = colon ? (size_t) (colon - host) : (size_t) (auth_end - host);
		if (!valid_hostname(host, hlen))
			return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" does not have a valid host name", v);
		*host_is_ip = is_ipv4(host, hlen);
	}
	if (colon != NULL)
	{
		const char *pp = colon + 1;
		long        port = 0;

		if (pp == auth_end)
			return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" has an empty port", v);
		for (; pp < auth_end; pp++)
		{
			if (!isdigit((unsigned char) *pp) || port > 65535)
				return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" has an invalid port", v);
			port = port * 10 + (*pp - '0');
		}
		if (port < 1 || port > 65535)
			return bad_value(ps, SET_S3_ENDPOINT, "\"%s\" has a port outside 1..65535", v);
	}

	/* scheme in lower case, no trailing '/' */
	url = strndup(v, (size_t) (auth_end - v));
	if (url == NULL)
		return oom(ps);
	for (rest = url; *rest != ':'; rest++)
		url[rest - url] = (char) tolower((unsigned char) *rest);
	cfg->s3_endpoint = url;
	return PGBK_OK;
}

/* Existence and mode of a secret file; errors name the setting. */
static PgbkStatus
check_secret_file(ParseState *ps, SettingId id, const char *path, const char *what)
{
	PgbkStatus rc = pgbk_check_private_file(path, what, ps->err);

	if (rc != PGBK_OK)
		return pgbk_error_prefix(ps->err, "invalid value for setting \"%s\" in file \"%s\" line %d",
		                         setting_names[id], ps->cf.origin, ps->cf.values[id].line);
	return PGBK_OK;
}

static PgbkStatus
check_size(ParseState *ps, SettingId id, uint64_t def, uint64_t min, uint64_t max,
           const char *range, uint64_t *out)
{
	const char *v = raw_value(ps, id);

	*out = def;
	if (v == NULL)
		return PGBK_OK;
	if (!config_parse_size(v, out))
		return bad_value(ps, id, "\"%s\" is not a size (examples: 16MB, 512kB, 1GB)", v);
	if (*out < min || *out > max)
		return bad_value(ps, id, "%s is outside the allowed range %s", v, range);
	return PGBK_OK;
}

static PgbkStatus
check_duration(ParseState *ps, SettingId id, int64_t def, int64_t min, int64_t max,
               const char *range, int *out)
{
	const char *v = raw_value(ps, id);
	int64_t     ms = def;

	if (v != NULL)
	{
		if (!config_parse_duration_ms(v, &ms))
			return bad_value(ps, id, "\"%s\" is not a duration (examples: 500ms, 60s, 2min, 1h)",
			                 v);
		if (ms < min || ms > max)
			return bad_value(ps, id, "%s is outside the allowed range %s", v, range);
	}
	*out = (int) ms;
	return PGBK_OK;
}

static PgbkStatus
check_int(ParseState *ps, SettingId id, int def, int min, int max, int *out)
{
	const char *v = raw_value(ps, id);
	uint64_t    n;
	const char *rest;

	*out = def;
	if (v == NULL)
		return PGBK_OK;
	rest = parse_digits(v, &n);
	if (rest == NULL || *rest != '\0')
		return bad_value(ps, id, "\"%s\" is not a whole number", v);
	if (n < (uint64_t) min || n > (uint64_t) max)
		return bad_value(ps, id, "%s is outside the allowed range %d..%d", v, min, max);
	*out = (int) n;
	return PGBK_OK;
}

static PgbkStatus
check_bool(ParseState *ps, SettingId id, bool def, bool *out)
{
	const char *v = raw_value(ps, id);

	*out = def;
	if (v != NULL && !parse_bool(v, out))
		return bad_value(ps, id, "\"%s\" is not a boolean (use on or off)", v);
	return PGBK_OK;
}

/* A plain word: letters, digits, '-', '_' (region names). */
static bool
valid_word(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
	{
		if (!(isalnum((unsigned char) *s) || *s == '-' || *s == '_'))
			return false;
	}
	return true;
}

static PgbkStatus
validate(ParseState *ps, PgbkConfig *cfg)
{
	PgbkStatus  rc;
	const char *v;
	bool        host_is_ip = false;
	size_t      i;

	/* Empty values: unset for the optional files, an error elsewhere. */
	for (i = 0; i < NUM_SETTINGS; i++)
	{
		if (raw_value(ps, (SettingId) i) != NULL && raw_value(ps, (SettingId) i)[0] == '\0')
		{
			if (i == SET_S3_CA_FILE || i == SET_S3_CONNECT_HOST || i == SET_KEY_FILE ||
			    i == SET_S3_CREDENTIALS_FILE || i == SET_REPOSITORY || i == SET_RESTIC_BINARY ||
			    i == SET_RESTIC_PASSWORD_FILE || i == SET_FILES_REPOSITORY)
				conf_unset(&ps->cf, (int) i);
			else
				return bad_value(ps, (SettingId) i, "the value is empty");
		}
	}

	if ((rc = check_repository(ps, cfg)) != PGBK_OK)
		return rc;

	/* S3 settings: validated whether or not the repository is on S3. */
	v = raw_value(ps, SET_S3_REGION);
	if (v != NULL && (!valid_word(v) || strlen(v) > 64))
		return bad_value(ps, SET_S3_REGION, "\"%s\" is not a region name (such as us-east-1)", v);
	if ((cfg->s3_region = strdup(v ? v : "us-east-1")) == NULL)
		return oom(ps);
	if ((rc = check_endpoint(ps, cfg, &host_is_ip)) != PGBK_OK)
		return rc;

	v = raw_value(ps, SET_S3_URI_STYLE);
	cfg->s3_uri_style = PGBK_URI_HOST;
	if (v != NULL)
	{
		if (strcasecmp(v, "path") == 0)
			cfg->s3_uri_style = PGBK_URI_PATH;
		else if (strcasecmp(v, "host") != 0)
			return bad_value(ps, SET_S3_URI_STYLE, "\"%s\" is not one of path, host", v);
	}

	if (raw_value(ps, SET_S3_CA_FILE) != NULL)
	{
		struct stat st;

		if ((rc = resolve_path(ps, SET_S3_CA_FILE, &cfg->s3_ca_file)) != PGBK_OK)
			return rc;
		if (stat(cfg->s3_ca_file, &st) != 0)
			return bad_value(ps, SET_S3_CA_FILE, "could not access \"%s\": %s", cfg->s3_ca_file,
			                 strerror(errno));
		if (!S_ISREG(st.st_mode))
			return bad_value(ps, SET_S3_CA_FILE, "\"%s\" is not a regular file", cfg->s3_ca_file);
		if (access(cfg->s3_ca_file, R_OK) != 0)
			return bad_value(ps, SET_S3_CA_FILE, "\"%s\" is not readable: %s", cfg->s3_ca_file,
			                 strerror(errno));
	}
	if ((rc = check_bool(ps, SET_S3_VERIFY_TLS, true, &cfg->s3_verify_tls)) != PGBK_OK)
		return rc;

	v = raw_value(ps, SET_S3_CONNECT_HOST);
	if (v != NULL)
	{
		size_t len = strlen(v);

		if (!valid_hostname(v, len) && !valid_ipv6_literal(v, len))
			return bad_value(ps, SET_S3_CONNECT_HOST,
			                 "\"%s\" is not a host name or IP address (no scheme or port)", v);
		if ((cfg->s3_connect_host = strdup(v)) == NULL)
			return oom(ps);
	}

	if (raw_value(ps, SET_S3_CREDENTIALS_FILE) != NULL)
	{
		if ((rc = resolve_path(ps, SET_S3_CREDENTIALS_FILE, &cfg->s3_credentials_file)) != PGBK_OK)
			return rc;
		if ((rc = check_secret_file(ps, SET_S3_CREDENTIALS_FILE, cfg->s3_credentials_file,
		                            "credentials file")) != PGBK_OK)
			return rc;
	}

	v = raw_value(ps, SET_S3_PROFILE);
	if (v != NULL && strpbrk(v, "[]") != NULL)
		return bad_value(ps, SET_S3_PROFILE, "\"%s\" is not a profile name (no brackets)", v);
	if ((cfg->s3_profile = strdup(v ? v : "default")) == NULL)
		return oom(ps);

	if ((rc = check_size(ps, SET_S3_PART_SIZE, 16 * 1024 * 1024, S3_PART_MIN, S3_PART_MAX,
	                     "5MB..5GB", &cfg->s3_part_size)) != PGBK_OK)
		return rc;
	if ((rc = check_size(ps, SET_S3_MULTIPART_THRESHOLD, 64 * 1024 * 1024, S3_PART_MIN, S3_PART_MAX,
	                     "5MB..5GB", &cfg->s3_multipart_threshold)) != PGBK_OK)
		return rc;
	if ((rc = check_duration(ps, SET_S3_TIMEOUT, 60000, 1000, 86400000, "1s..1d",
	                         &cfg->s3_timeout_ms)) != PGBK_OK)
		return rc;
	if ((rc = check_duration(ps, SET_S3_CONNECT_TIMEOUT, 10000, 100, 3600000, "100ms..1h",
	                         &cfg->s3_connect_timeout_ms)) != PGBK_OK)
		return rc;
	if ((rc = check_int(ps, SET_S3_MAX_RETRIES, 4, 0, 20, &cfg->s3_max_retries)) != PGBK_OK)
		return rc;
	if ((rc = check_size(ps, SET_S3_MIN_RATE, 1024 * 1024, 1024, (uint64_t) 1024 * 1024 * 1024,
	                     "1kB..1GB (bytes per second)", &cfg->s3_min_rate)) != PGBK_OK)
		return rc;

	if ((rc = check_bool(ps, SET_ENCRYPTION, true, &cfg->encryption)) != PGBK_OK)
		return rc;
	if (raw_value(ps, SET_KEY_FILE) != NULL)
	{
		if ((rc = resolve_path(ps, SET_KEY_FILE, &cfg->key_file)) != PGBK_OK)
			return rc;
		if ((rc = check_secret_file(ps, SET_KEY_FILE, cfg->key_file, "key file")) != PGBK_OK)
			return rc;
	}

	v = raw_value(ps, SET_COMPRESSION);
	cfg->compression = PGBK_COMPRESS_ZSTD;
	if (v != NULL)
	{
		if (strcasecmp(v, "none") == 0)
			cfg->compression = PGBK_COMPRESS_NONE;
		else if (strcasecmp(v, "zstd") != 0)
			return bad_value(ps, SET_COMPRESSION, "\"%s\" is not one of zstd, none", v);
	}
	if ((rc = check_int(ps, SET_COMPRESSION_LEVEL, 3, 1, 19, &cfg->compression_level)) != PGBK_OK)
		return rc;

	/* The files scope (pgbk-watcher, pgbk restore --files-to). */
	if (raw_value(ps, SET_RESTIC_BINARY) != NULL &&
	    (cfg->restic_binary = strdup(raw_value(ps, SET_RESTIC_BINARY))) == NULL)
		return pgbk_error(ps->err, PGBK_ERR, "out of memory");
	if (raw_value(ps, SET_FILES_REPOSITORY) != NULL &&
	    (cfg->files_repository = strdup(raw_value(ps, SET_FILES_REPOSITORY))) == NULL)
		return pgbk_error(ps->err, PGBK_ERR, "out of memory");
	if (raw_value(ps, SET_RESTIC_PASSWORD_FILE) != NULL)
	{
		if ((rc = resolve_path(ps, SET_RESTIC_PASSWORD_FILE, &cfg->restic_password_file)) !=
		    PGBK_OK)
			return rc;
		if ((rc = check_secret_file(ps, SET_RESTIC_PASSWORD_FILE, cfg->restic_password_file,
		                            "restic password file")) != PGBK_OK)
			return rc;
	}

	/* Settings that depend on each other. */
	if (cfg->repo_kind == PGBK_REPO_S3)
	{
		if (cfg->s3_credentials_file == NULL)
			return missing(ps, SET_S3_CREDENTIALS_FILE, " for an S3 repository");
		if (cfg->s3_uri_style == PGBK_URI_HOST && host_is_ip)
		{
			if (raw_value(ps, SET_S3_URI_STYLE) != NULL)
				return bad_value(
				    ps, SET_S3_URI_STYLE,
				    "host-style URLs need a host name, but s3_endpoint \"%s\" is an IP "
				    "address; use s3_uri_style = path",
				    cfg->s3_endpoint);
			return pgbk_error(ps->err, PGBK_ERR_CONFIG,
			                  "setting \"s3_uri_style\" must be set to path in file \"%s\": the "
			                  "default, host, needs a host name but s3_endpoint \"%s\" is an IP "
			                  "address",
			                  ps->cf.origin, cfg->s3_endpoint);
		}
	}
	/*
	 * Always: every object is authenticated with the key, also when its
	 * content is not encrypted, so that nobody who can merely write to the
	 * repository can make pgbk restore what they wrote.
	 */
	if (cfg->key_file == NULL)
		return conf_missing(&ps->cf, SET_KEY_FILE, NULL,
		                    "every repository object is authenticated with its key, also with "
		                    "encryption = off (create one with \"pgbk keygen\")",
		                    ps->err);
	return PGBK_OK;
}

/* ----------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------- */

/* Validate what the reader read into a new PgbkConfig. */
static PgbkStatus
config_from_file(ConfFile *cf, PgbkConfig **out, PgbkError *err)
{
	ParseState  ps;
	PgbkConfig *cfg;
	PgbkStatus  rc;

	*out = NULL;
	ps.cf = *cf;
	ps.err = err;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL || (cfg->config_path = strdup(cf->origin)) == NULL)
	{
		free(cfg);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	rc = validate(&ps, cfg);
	*cf = ps.cf; /* validation unsets empty values */
	if (rc != PGBK_OK)
	{
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return PGBK_OK;
}

PgbkStatus
config_parse_string(const char *text, const char *origin, const char *base_dir, PgbkConfig **out,
                    PgbkError *err)
{
	ConfFile   cf;
	PgbkStatus rc;

	*out = NULL;
	rc = conf_read_text(&config_spec, text, strlen(text), origin, base_dir, &cf, err);
	if (rc == PGBK_OK)
	{
		rc = config_from_file(&cf, out, err);
		conf_file_free(&cf);
	}
	return rc;
}

PgbkStatus
config_load(const char *path, PgbkConfig **out, PgbkError *err)
{
	ConfFile   cf;
	PgbkStatus rc;

	*out = NULL;
	rc = conf_read_file(&config_spec, path, &cf, err);
	if (rc == PGBK_OK)
	{
		rc = config_from_file(&cf, out, err);
		conf_file_free(&cf);
	}
	return rc;
}

void
config_free(PgbkConfig *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->config_path);
	free(cfg->repository);
	free(cfg->local_path);
	free(cfg->s3_bucket);
	free(cfg->s3_prefix);
	free(cfg->s3_endpoint);
	free(cfg->s3_region);
	free(cfg->s3_ca_file);
	free(cfg->s3_connect_host);
	free(cfg->s3_credentials_file);
	free(cfg->s3_profile);
	free(cfg->key_file);
	free(cfg->restic_binary);
	free(cfg->restic_password_file);
	free(cfg->files_repository);
	free(cfg);
}

/* ----------------------------------------------------------------------
 * Credentials
 * ---------------------------------------------------------------------- */

static void
free_secret_string(char *s)
{
	if (s != NULL)
	{
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void
credentials_free(PgbkCredentials *cred)
{
	if (cred == NULL)
		return;
	free_secret_string(cred->access_key_id);
	free_secret_string(cred->secret_access_key);
	free_secret_string(cred->session_token);
	free(cred);
}

/* Replace *slot by a copy of [v, v+n); false on out of memory. */
static bool
set_secret(char **slot, const char *v, size_t n)
{
	char *copy = malloc(n + 1);

	if (copy == NULL)
		return false;
	memcpy(copy, v, n);
	copy[n] = '\0';
	free_secret_string(*slot);
	*slot = copy;
	return true;
}

PgbkStatus
credentials_load(const char *path, const char *profile, PgbkCredentials **out, PgbkError *err)
{
	PgbkCredentials *cred;
	PgbkStatus       rc;
	char            *text;
	size_t           len;
	char            *p;
	char            *end;
	int              lineno = 0;
	bool             in_profile = false;
	bool             seen_section = false;
	bool             found = false;

	*out = NULL;
	if (profile == NULL || profile[0] == '\0')
		profile = "default";
	if (path == NULL || path[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "no credentials file is configured");
	rc = pgbk_secret_read_file(path, "credentials file", &text, &len, err);
	if (rc != PGBK_OK)
		return rc;

	cred = calloc(1, sizeof(*cred));
	if (cred == NULL)
	{
		pgbk_secret_free(text);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}

	p = text;
	end = text + len;
	while (p < end && rc == PGBK_OK)
	{
		char  *line = p;
		char  *eol = memchr(p, '\n', (size_t) (end - p));
		size_t n;

		if (eol == NULL)
			eol = end;
		p = eol + 1;
		lineno++;
		n = (size_t) (eol - line);
		while (n > 0 && (is_blank(*line)))
		{
			line++;
			n--;
		}
		while (n > 0 && is_blank(line[n - 1]))
			n--;
		if (n == 0 || line[0] == '#' || line[0] == ';')
			continue;
		if (memchr(line, '\0', n) != NULL)
		{
			rc = pgbk_error(err, PGBK_ERR_CONFIG,
			                "credentials file \"%s\" line %d: contains a NUL byte", path, lineno);
			break;
		}

		if (line[0] == '[')
		{
			char  *name = line + 1;
			size_t nlen;

			if (line[n - 1] != ']')
			{
				rc = pgbk_error(
				    err, PGBK_ERR_CONFIG,
				    "credentials file \"%s\" line %d: a section header must end with \"]\"", path,
				    lineno);
				break;
			}
			nlen = n - 2;
			while (nlen > 0 && is_blank(*name))
			{
				name++;
				nlen--;
			}
			while (nlen > 0 && is_blank(name[nlen - 1]))
				nlen--;
			seen_section = true;
			in_profile = strlen(profile) == nlen && strncmp(name, profile, nlen) == 0;
			if (in_profile)
				found = true;
			continue;
		}
		else
		{
			char  *eq = memchr(line, '=', n);
			char  *key = line;
			size_t klen;
			char  *val;
			size_t vlen;

			if (eq == NULL)
			{
				/* not echoed: it could be a secret on a line of its own */
				rc = pgbk_error(err, PGBK_ERR_CONFIG,
				                "credentials file \"%s\" line %d: expected \"[profile]\" or "
				                "\"name = value\"",
				                path, lineno);
				break;
			}
			if (!seen_section)
			{
				rc = pgbk_error(err, PGBK_ERR_CONFIG,
				                "credentials file \"%s\" line %d: setting outside of a [profile] "
				                "section",
				                path, lineno);
				break;
			}
			if (!in_profile)
				continue; /* another profile's */

			klen = (size_t) (eq - key);
			while (klen > 0 && is_blank(key[klen - 1]))
				klen--;
			val = eq + 1;
			vlen = (size_t) (line + n - val);
			while (vlen > 0 && is_blank(*val))
			{
				val++;
				vlen--;
			}

#define KEY_IS(k) (klen == strlen(k) && strncasecmp(key, k, klen) == 0)
			if (KEY_IS("aws_access_key_id"))
			{
				if (!set_secret(&cred->access_key_id, val, vlen))
					rc = pgbk_error(err, PGBK_ERR, "out of memory");
			}
			else if (KEY_IS("aws_secret_access_key"))
			{
				if (!set_secret(&cred->secret_access_key, val, vlen))
					rc = pgbk_error(err, PGBK_ERR, "out of memory");
			}
			else if (KEY_IS("aws_session_token"))
			{
				if (!set_secret(&cred->session_token, val, vlen))
					rc = pgbk_error(err, PGBK_ERR, "out of memory");
			}
#undef KEY_IS
			/* other settings (region, ...) are not ours */
		}
	}
	pgbk_secret_free(text);

	if (rc == PGBK_OK && !found)
		rc = pgbk_error(err, PGBK_ERR_CONFIG, "credentials file \"%s\" has no profile \"%s\"", path,
		                profile);
	if (rc == PGBK_OK && (cred->access_key_id == NULL || cred->access_key_id[0] == '\0'))
		rc = pgbk_error(err, PGBK_ERR_CONFIG,
		                "credentials file \"%s\": profile \"%s\" has no aws_access_key_id", path,
		                profile);
	if (rc == PGBK_OK && (cred->secret_access_key == NULL || cred->secret_access_key[0] == '\0'))
		rc = pgbk_error(err, PGBK_ERR_CONFIG,
		                "credentials file \"%s\": profile \"%s\" has no aws_secret_access_key",
		                path, profile);
	if (rc == PGBK_OK && cred->session_token != NULL && cred->session_token[0] == '\0')
	{
		free_secret_string(cred->session_token);
		cred->session_token = NULL;
	}
	if (rc != PGBK_OK)
	{
		credentials_free(cred);
		return rc;
	}
	*out = cred;
	return PGBK_OK;
}
