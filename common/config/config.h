/*
 * config.h
 *	  Room config; uses base only.
 *	  pgbk.conf: the one configuration file that describes the repository.
 *
 * The same file is read by the extension (GUC pgbk.config points at it) and
 * by the CLI (--config), so a restore on a fresh machine needs only this
 * file, the key file and the credentials file.  Syntax is postgresql.conf's:
 * "name = value" lines, '#' comments, values bare or single-quoted with ''
 * for a quote; '=' is required; a later line for a setting wins; include
 * directives are refused (the reader, shared with pgbk-watcher's settings,
 * is confread.h).  Unknown names, bad values and missing files are
 * errors that name the setting (and the file and line), never a value that
 * could be a secret.
 *
 * Settings (defaults in brackets):
 *   repository            '/absolute/path' or 's3://bucket[/prefix]' (required;
 *                         a relative path is refused: "mybucket/x" without
 *                         s3:// must not quietly become a local directory)
 *   s3_endpoint           URL, e.g. 'https://127.0.0.1:7480'
 *                         [https://s3.<region>.amazonaws.com]
 *   s3_region             [us-east-1]
 *   s3_uri_style          path | host                     [host]
 *                         (host needs a host name: set path for an endpoint
 *                         given as an IP address)
 *   s3_ca_file            PEM bundle to verify the endpoint []
 *   s3_verify_tls         on | off                        [on]
 *   s3_connect_host       connect here instead of resolving the endpoint's
 *                         host (like pgBackRest's repo-storage-host) []
 *   s3_credentials_file   AWS-style credentials file, mode 0600 (required
 *                         for s3)
 *   s3_profile            section of the credentials file [default]
 *   s3_part_size          multipart part size, 5MB..5GB     [16MB]
 *   s3_multipart_threshold objects larger than this use multipart,
 *                         5MB..5GB                          [64MB]
 *   s3_timeout            per-request timeout, 1s..1d       [60s]
 *                         (also: a transfer slower than 1kB/s for this
 *                         long fails)
 *   s3_connect_timeout    100ms..1h                         [10s]
 *   s3_max_retries        retries for 5xx/timeouts/connection errors,
 *                         0..20                             [4]
 *   s3_min_rate           slowest average transfer rate a request may have,
 *                         per second, 1kB..1GB              [1MB]: each
 *                         attempt of a request must end within
 *                         s3_connect_timeout + s3_timeout + its size at
 *                         this rate (its deadline)
 *   key_file              key file, mode 0600 (required: every object is
 *                         authenticated with it, also with encryption off)
 *   encryption            on | off (encrypt content too)  [on]
 *   compression           zstd | none                     [zstd]
 *   compression_level     1..19                           [3]
 *   restic_password_file  the files scope's restic password, mode 0600 []
 *   restic_binary         restic to run                   [restic]
 *   files_repository      restic repository of the files scope
 *                         [<repository>/files, same bucket and credentials]
 */
#ifndef PGBK_CONFIG_H
#define PGBK_CONFIG_H

#include "base/pgbk_common.h"

typedef enum PgbkRepoKind
{
	PGBK_REPO_LOCAL = 1,
	PGBK_REPO_S3 = 2
} PgbkRepoKind;

typedef enum PgbkUriStyle
{
	PGBK_URI_HOST = 1, /* https://bucket.host/key */
	PGBK_URI_PATH = 2  /* https://host/bucket/key */
} PgbkUriStyle;

#define PGBK_COMPRESS_NONE 0
#define PGBK_COMPRESS_ZSTD 1

typedef struct PgbkConfig
{
	char *config_path; /* file it was read from, or "<string>" */

	PgbkRepoKind repo_kind;
	char        *repository; /* as written */
	char        *local_path; /* PGBK_REPO_LOCAL: absolute directory */
	char        *s3_bucket;  /* PGBK_REPO_S3 */
	char        *s3_prefix;  /* no leading or trailing '/', may be "" */

	char        *s3_endpoint; /* scheme://host[:port], no trailing '/' */
	char        *s3_region;
	PgbkUriStyle s3_uri_style;
	char        *s3_ca_file; /* NULL: system CAs */
	bool         s3_verify_tls;
	char        *s3_connect_host; /* NULL: resolve endpoint host */
	char        *s3_credentials_file;
	char        *s3_profile;
	uint64_t     s3_part_size;           /* bytes */
	uint64_t     s3_multipart_threshold; /* bytes */
	int          s3_timeout_ms;
	int          s3_connect_timeout_ms;
	int          s3_max_retries;
	uint64_t     s3_min_rate; /* bytes per second a transfer may not fall below on average */

	char *key_file; /* always set (required) */
	bool  encryption;
	int   compression; /* PGBK_COMPRESS_* */
	int   compression_level;

	/* the files scope (pgbk-watcher, pgbk restore --files-to); NULL: unset */
	char *restic_binary;
	char *restic_password_file;
	char *files_repository;
} PgbkConfig;

/*
 * Parse and validate a configuration file.  Relative paths inside the file
 * (key_file, s3_ca_file, s3_credentials_file) are resolved against the
 * directory holding the file.  The secret files are not read here, only
 * checked for existence and mode (0600 or tighter).  Booleans: on/off,
 * true/false, yes/no, 1/0.  Sizes: a number with B, kB, MB, GB, TB (or K,
 * M, G, T, KiB, ...; binary multiples, any case); a bare number is bytes.
 * Durations: ms, s, min, h, d; a bare number is seconds.  The file itself
 * is refused when group or others can write it or it belongs to neither
 * the running user nor root (pgbk_read_trusted_file): it names programs
 * pgbk runs.
 */
PgbkStatus config_load(const char *path, PgbkConfig **out, PgbkError *err);

/*
 * Same from a string (for tests); origin names it in errors (and becomes
 * config_path; "<string>" if NULL).  With base_dir NULL, relative paths are
 * errors.
 */
PgbkStatus config_parse_string(const char *text, const char *origin, const char *base_dir,
                               PgbkConfig **out, PgbkError *err);

void config_free(PgbkConfig *cfg);

/* AWS-style credentials ([profile] aws_access_key_id / aws_secret_access_key
 * / aws_session_token). */
typedef struct PgbkCredentials
{
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* may be NULL */
} PgbkCredentials;

/*
 * Checks mode 0600 first; errors name the file and the missing field, never
 * a secret value.  profile NULL or "" means "default".  '#' and ';' start
 * comment lines; settings other than the three above are ignored.  The
 * file is read into memory that is zeroed afterwards.
 */
PgbkStatus credentials_load(const char *path, const char *profile, PgbkCredentials **out,
                            PgbkError *err);
/* Zeroes the secrets before freeing. */
void credentials_free(PgbkCredentials *cred);

/* Parse "16MB", "512kB", "1GB", "12345" (bytes); false on bad input. */
bool config_parse_size(const char *s, uint64_t *out);
/* Parse "60s", "500ms", "2min", "1h", "10" (seconds); false on bad input. */
bool config_parse_duration_ms(const char *s, int64_t *out);

#endif /* PGBK_CONFIG_H */
