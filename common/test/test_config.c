/*
 * test_config.c
 *	  Tests of room config (cmocka); uses unit.h, config, confread and context.
 *	  Unit tests for pgbk.conf parsing (config.c over the shared reader,
 *	  confread.c) and AWS-style credentials files: every setting and its default, each validation error naming the
 *	  setting, the file and the line, relative paths, quoting, and that no
 *	  error message ever contains a secret.
 */
#include "unit.h"

#include "config/config.h"
#include "config/confread.h"
#include "context/context.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[512];

/* Values that must never show up in a message. */
static const char *const secrets[] = {
    "AKIAEXAMPLEKEYID77",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY",
    "FQoGZXIvYXdzSESSIONTOKEN",
    "hunter2",
};

static const char *
path_of(const char *name)
{
	static char path[4][600];
	static int  next = 0;
	char       *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
assert_no_secrets(const char *msg)
{
	size_t i;

	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
	{
		if (strstr(msg, secrets[i]) != NULL)
			fail_msg("message \"%s\" contains a secret", msg);
	}
}

/* Parse text; a key_file line is added at the end unless it has one (always required). */
static PgbkConfig *
parse_ok(const char *text)
{
	PgbkConfig *cfg = NULL;
	PgbkError   err;
	PgbkBuf     full;

	pgbk_buf_init(&full);
	pgbk_buf_append_str(&full, text);
	if (strstr(text, "key_file") == NULL)
		pgbk_buf_append_str(&full, "key_file = pgbk.key\n");
	if (config_parse_string((const char *) full.data, "test.conf", tmpdir, &cfg, &err) != PGBK_OK)
		fail_msg("config_parse_string: %s", err.msg);
	pgbk_buf_free(&full);
	return cfg;
}

/*
 * Parsing must fail with PGBK_ERR_CONFIG, and the message must contain each
 * of the given pieces (NULL-terminated) and no secret.
 */
static void
expect_fail(const char *text, ...)
{
	PgbkConfig *cfg = (PgbkConfig *) 0x1;
	PgbkError   err;
	PgbkStatus  rc;
	va_list     ap;
	const char *want;

	rc = config_parse_string(text, "test.conf", tmpdir, &cfg, &err);
	if (rc != PGBK_ERR_CONFIG)
		fail_msg("expected a configuration error for:\n%s\ngot %s: %s", text, pgbk_status_name(rc),
		         rc ? err.msg : "");
	assert_null(cfg);
	va_start(ap, text);
	while ((want = va_arg(ap, const char *)) != NULL)
	{
		if (strstr(err.msg, want) == NULL)
			fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	}
	va_end(ap);
	assert_no_secrets(err.msg);
}

static int
setup(void **state)
{
	const char *base = getenv("PGBK_TEST_TMP");
	char        text[200];

	snprintf(tmpdir, sizeof(tmpdir), "%s/pgbk_config_XXXXXX", base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(text, sizeof(text), "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
	         secrets[0], secrets[1]);
	write_file(path_of("creds"), text, 0600);
	write_file(path_of("pgbk.key"),
	           "pgbk-key-1:"
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0600);
	write_file(path_of("ca.pem"), "-----BEGIN CERTIFICATE-----\n", 0644);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */

static void
test_defaults(void **state)
{
	PgbkConfig *cfg = parse_ok("repository = /var/backups/pgbk/\nencryption = off\n");

	assert_string_equal(cfg->config_path, "test.conf");
	assert_int_equal(cfg->repo_kind, PGBK_REPO_LOCAL);
	assert_string_equal(cfg->repository, "/var/backups/pgbk/");
	assert_string_equal(cfg->local_path, "/var/backups/pgbk");
	assert_null(cfg->s3_bucket);
	assert_string_equal(cfg->s3_endpoint, "https://s3.us-east-1.amazonaws.com");
	assert_string_equal(cfg->s3_region, "us-east-1");
	assert_int_equal(cfg->s3_uri_style, PGBK_URI_HOST);
	assert_null(cfg->s3_ca_file);
	assert_true(cfg->s3_verify_tls);
	assert_null(cfg->s3_connect_host);
	assert_null(cfg->s3_credentials_file);
	assert_string_equal(cfg->s3_profile, "default");
	assert_int_equal(cfg->s3_part_size, 16 * 1024 * 1024);
	assert_int_equal(cfg->s3_multipart_threshold, 64 * 1024 * 1024);
	assert_int_equal(cfg->s3_timeout_ms, 60000);
	assert_int_equal(cfg->s3_connect_timeout_ms, 10000);
	assert_int_equal(cfg->s3_max_retries, 4);
	assert_true(cfg->s3_min_rate == 1024 * 1024);
	assert_non_null(strstr(cfg->key_file, "/pgbk.key"));
	assert_false(cfg->encryption);
	assert_int_equal(cfg->compression, PGBK_COMPRESS_ZSTD);
	assert_int_equal(cfg->compression_level, 3);
	config_free(cfg);
	config_free(NULL);

	/* the region picks the default endpoint */
	cfg = parse_ok("repository = /r\nencryption = off\ns3_region = eu-central-1\n");
	assert_string_equal(cfg->s3_endpoint, "https://s3.eu-central-1.amazonaws.com");
	config_free(cfg);
}

static void
test_every_setting(void **state)
{
	char        text[2048];
	PgbkConfig *cfg;

	snprintf(text, sizeof(text),
	         "# all of them\n"
	         "repository = 's3://pgbk-backups/prod/db1/'\n"
	         "s3_endpoint = 'https://rgw.example.net:7480/'\n"
	         "s3_region = 'default'\n"
	         "s3_uri_style = path\n"
	         "s3_ca_file = '%s'\n"
	         "s3_verify_tls = off\n"
	         "s3_connect_host = 10.0.0.5\n"
	         "s3_credentials_file = creds\n"
	         "s3_profile = 'backup-writer'\n"
	         "s3_part_size = 32MB\n"
	         "s3_multipart_threshold = '1 GB'\n"
	         "s3_timeout = 2min\n"
	         "s3_connect_timeout = 1500ms\n"
	         "s3_max_retries = 0\n"
	         "s3_min_rate = 64kB\n"
	         "key_file = pgbk.key\n"
	         "encryption = yes\n"
	         "compression = none\n"
	         "compression_level = 19\n",
	         path_of("ca.pem"));
	cfg = parse_ok(text);
	assert_int_equal(cfg->repo_kind, PGBK_REPO_S3);
	assert_string_equal(cfg->repository, "s3://pgbk-backups/prod/db1/");
	assert_null(cfg->local_path);
	assert_string_equal(cfg->s3_bucket, "pgbk-backups");
	assert_string_equal(cfg->s3_prefix, "prod/db1");
	assert_string_equal(cfg->s3_endpoint, "https://rgw.example.net:7480");
	assert_string_equal(cfg->s3_region, "default");
	assert_int_equal(cfg->s3_uri_style, PGBK_URI_PATH);
	assert_string_equal(cfg->s3_ca_file, path_of("ca.pem"));
	assert_false(cfg->s3_verify_tls);
	assert_string_equal(cfg->s3_connect_host, "10.0.0.5");
	assert_string_equal(cfg->s3_credentials_file, path_of("creds"));
	assert_string_equal(cfg->s3_profile, "backup-writer");
	assert_int_equal(cfg->s3_part_size, 32 * 1024 * 1024);
	assert_int_equal(cfg->s3_multipart_threshold, 1024 * 1024 * 1024);
	assert_int_equal(cfg->s3_timeout_ms, 120000);
	assert_int_equal(cfg->s3_connect_timeout_ms, 1500);
	assert_int_equal(cfg->s3_max_retries, 0);
	assert_true(cfg->s3_min_rate == 64 * 1024);
	assert_string_equal(cfg->key_file, path_of("pgbk.key"));
	assert_true(cfg->encryption);
	assert_int_equal(cfg->compression, PGBK_COMPRESS_NONE);
	assert_int_equal(cfg->compression_level, 19);
	config_free(cfg);

	/* bucket without prefix; IPv6 endpoint; upper-case scheme */
	cfg = parse_ok("repository = s3://my.bucket-1\ns3_endpoint = HTTP://[::1]:9000\n"
	               "s3_uri_style = PATH\ns3_credentials_file = creds\nencryption = OFF\n");
	assert_string_equal(cfg->s3_bucket, "my.bucket-1");
	assert_string_equal(cfg->s3_prefix, "");
	assert_string_equal(cfg->s3_endpoint, "http://[::1]:9000");
	config_free(cfg);
}

static void
test_booleans(void **state)
{
	static const char *const yes[] = {"on", "true", "yes", "1", "ON", "True"};
	static const char *const no[] = {"off", "false", "no", "0", "Off", "NO"};
	char                     text[200];
	size_t                   i;
	PgbkConfig              *cfg;

	for (i = 0; i < 6; i++)
	{
		snprintf(text, sizeof(text), "repository=/r\nencryption=off\ns3_verify_tls=%s\n", yes[i]);
		cfg = parse_ok(text);
		assert_true(cfg->s3_verify_tls);
		config_free(cfg);
		snprintf(text, sizeof(text), "repository=/r\nencryption=off\ns3_verify_tls=%s\n", no[i]);
		cfg = parse_ok(text);
		assert_false(cfg->s3_verify_tls);
		config_free(cfg);
	}
	expect_fail("repository=/r\nencryption=off\ns3_verify_tls = maybe\n", "\"s3_verify_tls\"",
	            "test.conf", "line 3", "maybe", NULL);
	expect_fail("repository=/r\nencryption = nope\n", "\"encryption\"", "line 2", NULL);
}

static void
test_quoting_and_syntax(void **state)
{
	PgbkConfig *cfg;
	char        text[300];

	/* '' is a quote, '#' and spaces inside quotes are data */
	write_file(path_of("it's a #key"),
	           "pgbk-key-1:"
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0600);
	cfg = parse_ok("repository='/r' # comment\n"
	               "key_file = 'it''s a #key'   # trailing comment\n"
	               "\t  compression_level=7#no space before the comment\n"
	               "\n   # indented comment\n"
	               "s3_region =eu-west-1\r\n");
	assert_string_equal(cfg->key_file, path_of("it's a #key"));
	assert_int_equal(cfg->compression_level, 7);
	assert_string_equal(cfg->s3_region, "eu-west-1");
	config_free(cfg);

	/* a later line wins; errors then name that line */
	cfg = parse_ok("repository=/one\nencryption=off\nrepository=/two\nCompression_Level = 5\n");
	assert_string_equal(cfg->local_path, "/two");
	assert_int_equal(cfg->compression_level, 5);
	config_free(cfg);
	expect_fail("repository=/r\nencryption=off\ncompression_level=2\ncompression_level=99\n",
	            "\"compression_level\"", "line 4", "99", NULL);

	/* an empty optional file setting means "not set" */
	cfg = parse_ok("repository=/r\nencryption=off\ns3_ca_file=''\n");
	assert_null(cfg->s3_ca_file);
	config_free(cfg);
	/* but key_file is never optional */
	expect_fail("repository=/r\nencryption=off\nkey_file = ''\n", "\"key_file\"", "required", NULL);

	expect_fail("repository /r\n", "syntax error", "test.conf", "line 1", "\"=\"", NULL);
	expect_fail("encryption=off\nrepository = '/r\n", "line 2", "unterminated", NULL);
	expect_fail("repository = /my backups\n", "line 1", "unexpected text", NULL);
	expect_fail("repository = /r\ns3_region =\n", "line 2", "missing value", "s3_region", NULL);
	expect_fail("repository = /r\ns3_region = ''\nencryption=off\n", "\"s3_region\"", "line 2",
	            "empty", NULL);
	expect_fail("= value\n", "line 1", "setting name", NULL);
	expect_fail("include 'other.conf'\n", "include", "not supported", "line 1", NULL);
	expect_fail("repository=/r\ninclude_dir = 'conf.d'\n", "include_dir", "line 2", NULL);
	expect_fail("repository=/r\ninclude_if_exists = 'x'\n", "include_if_exists", NULL);

	/* unknown settings: named with file and line, the value never shown */
	snprintf(text, sizeof(text), "repository=/r\n\naws_secret_access_key = '%s'\n", secrets[1]);
	expect_fail(text, "unrecognized setting \"aws_secret_access_key\"", "test.conf", "line 3",
	            NULL);
	expect_fail("repository=/r\npassword = hunter2\n", "\"password\"", "line 2", NULL);
}

static void
test_repository(void **state)
{
	PgbkConfig *cfg;

	expect_fail("encryption=off\n", "\"repository\"", "required", "test.conf", NULL);
	expect_fail("repository=''\nencryption=off\n", "\"repository\"", "required", NULL);
	expect_fail("encryption=off\nrepository = backups\n", "\"repository\"", "line 2", "absolute",
	            NULL);
	expect_fail("repository = mybucket/prefix\nencryption=off\n", "\"repository\"", "absolute",
	            NULL);
	expect_fail("repository = gs://bucket\nencryption=off\n", "\"repository\"", "scheme", NULL);
	expect_fail("repository = s3://Upper\nencryption=off\n", "\"repository\"", "bucket", NULL);
	expect_fail("repository = s3://ab\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://bucket..x\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://192.168.1.1\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://-bucket\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://bucket_x\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://\nencryption=off\n", "bucket", NULL);
	expect_fail("repository = s3://bucket/a//b\nencryption=off\n", "empty path segment", NULL);
	expect_fail("repository = s3://bucket/a/../b\nencryption=off\n", "\"..\"", NULL);

	/* S3 needs credentials */
	expect_fail("repository = s3://bucket\nencryption=off\n", "\"s3_credentials_file\"", "required",
	            "S3", NULL);

	cfg = parse_ok("repository = s3://bucket//deep/prefix//\ns3_credentials_file=creds\n"
	               "encryption=off\n");
	assert_string_equal(cfg->s3_prefix, "deep/prefix");
	config_free(cfg);
	cfg = parse_ok("repository = /\nencryption=off\n");
	assert_string_equal(cfg->local_path, "/");
	config_free(cfg);
}

static void
test_endpoint_and_style(void **state)
{
	static const char *const s3 = "repository=s3://bucket\ns3_credentials_file=creds\n"
	                              "encryption=off\n";
	char                     text[512];
	PgbkConfig              *cfg;

#define S3CONF(extra) (snprintf(text, sizeof(text), "%s%s", s3, extra), text)
	expect_fail(S3CONF("s3_endpoint = ftp://host\n"), "\"s3_endpoint\"", "line 4", NULL);
	expect_fail(S3CONF("s3_endpoint = https://host/bucket\n"), "\"s3_endpoint\"", "path", NULL);
	expect_fail(S3CONF("s3_endpoint = 'https://host?x=1'\n"), "\"s3_endpoint\"", NULL);
	expect_fail(S3CONF("s3_endpoint = https://\n"), "\"s3_endpoint\"", NULL);
	expect_fail(S3CONF("s3_endpoint = https://host:0\n"), "\"s3_endpoint\"", "port", NULL);
	expect_fail(S3CONF("s3_endpoint = https://host:99999\n"), "\"s3_endpoint\"", "port", NULL);
	expect_fail(S3CONF("s3_endpoint = https://host:\n"), "\"s3_endpoint\"", "port", NULL);
	expect_fail(S3CONF("s3_endpoint = https://ho_st\n"), "\"s3_endpoint\"", "host", NULL);
	expect_fail(S3CONF("s3_endpoint = https://[::1\n"), "\"s3_endpoint\"", "IPv6", NULL);
	/* user information is refused and not repeated */
	expect_fail(S3CONF("s3_endpoint = 'https://admin:hunter2@host'\n"), "\"s3_endpoint\"",
	            "user information", NULL);

	expect_fail(S3CONF("s3_uri_style = virtual\n"), "\"s3_uri_style\"", "line 4", "path, host",
	            NULL);
	/* host-style cannot work with an IP address */
	expect_fail(S3CONF("s3_endpoint = http://127.0.0.1:7480\n"), "\"s3_uri_style\"", "path",
	            "127.0.0.1", NULL);
	expect_fail(S3CONF("s3_endpoint = http://127.0.0.1:7480\ns3_uri_style = host\n"),
	            "\"s3_uri_style\"", "line 5", NULL);
	expect_fail(S3CONF("s3_endpoint = http://[::1]:7480\n"), "\"s3_uri_style\"", NULL);
	cfg = parse_ok(S3CONF("s3_endpoint = http://127.0.0.1:7480\ns3_uri_style = path\n"));
	assert_string_equal(cfg->s3_endpoint, "http://127.0.0.1:7480");
	config_free(cfg);
	cfg = parse_ok(S3CONF("s3_endpoint = https://s3.example.com\n"));
	assert_int_equal(cfg->s3_uri_style, PGBK_URI_HOST);
	config_free(cfg);

	expect_fail(S3CONF("s3_region = 'us east'\n"), "\"s3_region\"", NULL);
	expect_fail(S3CONF("s3_connect_host = https://x\n"), "\"s3_connect_host\"", NULL);
	expect_fail(S3CONF("s3_connect_host = 'host:80'\n"), "\"s3_connect_host\"", NULL);
	expect_fail(S3CONF("s3_profile = '[x]'\n"), "\"s3_profile\"", NULL);
	expect_fail(S3CONF("s3_ca_file = nonexistent.pem\n"), "\"s3_ca_file\"", "line 4",
	            "nonexistent.pem", NULL);
	expect_fail(S3CONF("s3_ca_file = '.'\n"), "\"s3_ca_file\"", "not a regular file", NULL);
#undef S3CONF
}

static void
test_numbers(void **state)
{
	static const char *const base = "repository=/r\nencryption=off\n";
	char                     text[300];

#define CONF(extra) (snprintf(text, sizeof(text), "%s%s", base, extra), text)
	expect_fail(CONF("s3_part_size = 1MB\n"), "\"s3_part_size\"", "line 3", "5MB..5GB", NULL);
	expect_fail(CONF("s3_part_size = 6GB\n"), "\"s3_part_size\"", NULL);
	expect_fail(CONF("s3_part_size = '16 parsecs'\n"), "\"s3_part_size\"", "not a size", NULL);
	expect_fail(CONF("s3_part_size = -16MB\n"), "\"s3_part_size\"", NULL);
	expect_fail(CONF("s3_multipart_threshold = 1kB\n"), "\"s3_multipart_threshold\"", NULL);
	expect_fail(CONF("s3_timeout = 0\n"), "\"s3_timeout\"", "1s..1d", NULL);
	expect_fail(CONF("s3_timeout = soon\n"), "\"s3_timeout\"", "not a duration", NULL);
	expect_fail(CONF("s3_timeout = 5fortnights\n"), "\"s3_timeout\"", NULL);
	expect_fail(CONF("s3_connect_timeout = 50ms\n"), "\"s3_connect_timeout\"", NULL);
	expect_fail(CONF("s3_max_retries = 21\n"), "\"s3_max_retries\"", "0..20", NULL);
	expect_fail(CONF("s3_max_retries = -1\n"), "\"s3_max_retries\"", NULL);
	expect_fail(CONF("s3_max_retries = 3.5\n"), "\"s3_max_retries\"", NULL);
	expect_fail(CONF("s3_min_rate = 100\n"), "\"s3_min_rate\"", "1kB..1GB", NULL);
	expect_fail(CONF("s3_min_rate = 2GB\n"), "\"s3_min_rate\"", "1kB..1GB", NULL);
	expect_fail(CONF("s3_min_rate = fast\n"), "\"s3_min_rate\"", "not a size", NULL);
	expect_fail(CONF("compression = lz4\n"), "\"compression\"", "zstd, none", NULL);
	expect_fail(CONF("compression_level = 0\n"), "\"compression_level\"", "1..19", NULL);
	expect_fail(CONF("compression_level = 20\n"), "\"compression_level\"", NULL);
	expect_fail(CONF("compression_level = high\n"), "\"compression_level\"", NULL);
	expect_fail(CONF("compression_level = 99999999999999999999999\n"), "\"compression_level\"",
	            NULL);
#undef CONF
}

static void
test_parse_units(void **state)
{
	uint64_t sz;
	int64_t  ms;

	assert_true(config_parse_size("12345", &sz));
	assert_int_equal(sz, 12345);
	assert_true(config_parse_size("16MB", &sz));
	assert_int_equal(sz, 16 << 20);
	assert_true(config_parse_size("512kB", &sz));
	assert_int_equal(sz, 512 << 10);
	assert_true(config_parse_size("1GB", &sz));
	assert_int_equal(sz, 1 << 30);
	assert_true(config_parse_size("2 TiB", &sz));
	assert_int_equal(sz, (uint64_t) 2 << 40);
	assert_true(config_parse_size("7b", &sz));
	assert_int_equal(sz, 7);
	assert_false(config_parse_size("", &sz));
	assert_false(config_parse_size("MB", &sz));
	assert_false(config_parse_size("1.5GB", &sz));
	assert_false(config_parse_size("16 M B", &sz));
	assert_false(config_parse_size("99999999999TB", &sz));
	assert_false(config_parse_size("99999999999999999999", &sz));
	assert_false(config_parse_size(NULL, &sz));

	assert_true(config_parse_duration_ms("60s", &ms));
	assert_int_equal(ms, 60000);
	assert_true(config_parse_duration_ms("500ms", &ms));
	assert_int_equal(ms, 500);
	assert_true(config_parse_duration_ms("2min", &ms));
	assert_int_equal(ms, 120000);
	assert_true(config_parse_duration_ms("1h", &ms));
	assert_int_equal(ms, 3600000);
	assert_true(config_parse_duration_ms("1d", &ms));
	assert_int_equal(ms, 86400000);
	assert_true(config_parse_duration_ms("10", &ms));
	assert_int_equal(ms, 10000);
	assert_false(config_parse_duration_ms("10m", &ms)); /* ambiguous: minutes or months? */
	assert_false(config_parse_duration_ms("-1s", &ms));
	assert_false(config_parse_duration_ms("9999999999999999d", &ms));
	assert_false(config_parse_duration_ms("s", &ms));
}

static void
test_secret_files(void **state)
{
	PgbkConfig *cfg;

	/* key file required, with encryption on (the default) or off: it authenticates */
	expect_fail("repository=/r\n", "\"key_file\"", "required", "authenticated", NULL);
	expect_fail("repository=/r\nencryption=off\n", "\"key_file\"", "required",
	            "also with encryption = off", NULL);
	expect_fail("repository=/r\nkey_file=''\n", "\"key_file\"", "required", NULL);

	write_file(path_of("loose.key"), "pgbk-key-1:x\n", 0644);
	expect_fail("repository=/r\n\nkey_file=loose.key\n", "\"key_file\"", "line 3", "0644",
	            "loose.key", NULL);
	expect_fail("repository=/r\nkey_file=missing.key\n", "\"key_file\"", "does not exist", NULL);
	/* checked even with encryption off */
	expect_fail("repository=/r\nencryption=off\nkey_file=loose.key\n", "\"key_file\"", "0644",
	            NULL);

	write_file(path_of("loose.creds"), "[default]\naws_access_key_id=x\n", 0640);
	expect_fail("repository=s3://bucket\nencryption=off\ns3_credentials_file=loose.creds\n",
	            "\"s3_credentials_file\"", "line 3", "0640", NULL);

	/* the files are not read here: content errors come later */
	write_file(path_of("junk.key"), "not a key\n", 0600);
	cfg = parse_ok("repository=/r\nkey_file=junk.key\n");
	assert_string_equal(cfg->key_file, path_of("junk.key"));
	config_free(cfg);

	/* relative paths need a file to be relative to */
	{
		PgbkConfig *c = NULL;
		PgbkError   err;

		assert_int_equal(
		    config_parse_string("repository=/r\nkey_file=pgbk.key\n", NULL, NULL, &c, &err),
		    PGBK_ERR_CONFIG);
		assert_non_null(strstr(err.msg, "relative"));
		assert_non_null(strstr(err.msg, "<string>"));
	}
}

static void
test_load_file(void **state)
{
	PgbkConfig *cfg;
	PgbkError   err;
	char        sub[600];
	char        conf[700];
	char        old_cwd[600];
	char        text[300];

	/* relative paths are resolved against the file's directory */
	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(conf, sizeof(conf), "%s/pgbk.conf", sub);
	write_file(conf, "repository = '/srv/pgbk'\nkey_file = ../pgbk.key\ns3_ca_file = ../ca.pem\n",
	           0644);
	if (config_load(conf, &cfg, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	assert_string_equal(cfg->config_path, conf);
	snprintf(text, sizeof(text), "%s/../pgbk.key", sub);
	assert_string_equal(cfg->key_file, text);
	config_free(cfg);

	/* a relative configuration path is made absolute */
	assert_non_null(getcwd(old_cwd, sizeof(old_cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(config_load("etc/pgbk.conf", &cfg, &err), PGBK_OK);
	assert_int_equal(chdir(old_cwd), 0);
	assert_string_equal(cfg->config_path, conf);
	assert_string_equal(cfg->key_file, text);
	config_free(cfg);

	/* errors name the file */
	write_file(conf, "repository = '/srv/pgbk'\nencryption = off\nbogus = 1\n", 0644);
	assert_int_equal(config_load(conf, &cfg, &err), PGBK_ERR_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err.msg, conf));
	assert_non_null(strstr(err.msg, "line 3"));
	assert_non_null(strstr(err.msg, "\"bogus\""));

	snprintf(text, sizeof(text), "%s/none.conf", tmpdir);
	assert_int_equal(config_load(text, &cfg, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "does not exist"));
	assert_non_null(strstr(err.msg, text));

	/* a binary file */
	{
		FILE *f = fopen(conf, "w");

		fwrite("repository=/r\0\n", 1, 16, f);
		fclose(f);
	}
	assert_int_equal(config_load(conf, &cfg, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "NUL"));
}

/* configuration files others could write are refused, as ssh does */
static void
test_trusted_file(void **state)
{
	PgbkConfig *cfg;
	PgbkError   err;
	char        conf[700];
	char        link[700];
	char        want[800];
	const char *text = "repository = '/srv/pgbk'\nencryption = off\nkey_file = "
	                   "pgbk.key\nrestic_binary = '/tmp/x'\n";
	struct stat st;
	static const struct
	{
		mode_t      mode;
		const char *who;
	} loose[] = {
	    {0666, "writable by group and others (mode 0666)"},
	    {0646, "writable by others (mode 0646)"},
	    {0620, "writable by its group (mode 0620)"},
	    {0664, "writable by its group (mode 0664)"},
	};
	size_t i;

	(void) state;
	snprintf(conf, sizeof(conf), "%s/trusted.conf", tmpdir);
	snprintf(want, sizeof(want), "run chmod go-w %s", conf);
	for (i = 0; i < sizeof(loose) / sizeof(loose[0]); i++)
	{
		write_file(conf, text, loose[i].mode);
		cfg = NULL;
		assert_int_equal(config_load(conf, &cfg, &err), PGBK_ERR_CONFIG);
		assert_null(cfg);
		if (strstr(err.msg, loose[i].who) == NULL || strstr(err.msg, want) == NULL ||
		    strstr(err.msg, conf) == NULL)
			fail_msg("mode %04o: %s", (unsigned) loose[i].mode, err.msg);
	}

	/* 0600, 0640 and 0644 by the user running us are fine */
	write_file(conf, text, 0600);
	if (config_load(conf, &cfg, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	config_free(cfg);
	write_file(conf, text, 0644);
	if (config_load(conf, &cfg, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	config_free(cfg);

	/* the file a symbolic link points to is what counts */
	snprintf(link, sizeof(link), "%s/link.conf", tmpdir);
	unlink(link);
	assert_int_equal(symlink(conf, link), 0);
	if (config_load(link, &cfg, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	config_free(cfg);
	assert_int_equal(chmod(conf, 0666), 0);
	assert_int_equal(config_load(link, &cfg, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "writable by group and others"));
	unlink(link);

	/* a directory is not a configuration file */
	assert_int_equal(config_load(tmpdir, &cfg, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "not a regular file"));

	/* owners: the running user and root are trusted, anyone else is not */
	write_file(conf, text, 0600);
	assert_int_equal(stat(conf, &st), 0);
	assert_int_equal(pgbk_check_trusted_stat(&st, st.st_uid, conf, "configuration file", &err),
	                 PGBK_OK);
	st.st_uid = 0;
	assert_int_equal(pgbk_check_trusted_stat(&st, 4242, conf, "configuration file", &err), PGBK_OK);
	st.st_uid = 4243;
	assert_int_equal(pgbk_check_trusted_stat(&st, 4242, conf, "configuration file", &err),
	                 PGBK_ERR_CONFIG);
	snprintf(want, sizeof(want), "run chown 4242 %s (or chown root)", conf);
	if (strstr(err.msg, "is owned by uid 4243, not by uid 4242 (who runs pgbk) or root") == NULL ||
	    strstr(err.msg, want) == NULL)
		fail_msg("%s", err.msg);
	/* ownership is checked on the mode too: a group-writable root file is refused */
	st.st_uid = 0;
	st.st_mode = S_IFREG | 0660;
	assert_int_equal(pgbk_check_trusted_stat(&st, 4242, conf, "configuration file", &err),
	                 PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "writable by its group"));
}

/*
 * The reader under pgbk.conf (common/config/confread.c) is the one every
 * configuration file uses: another table of names gets the same errors, word
 * for word (test_watcher.c checks the watcher's settings the same way), and
 * each setting keeps the line that set it.
 */
static void
test_one_reader(void **state)
{
	static const char *const names[] = {"repository", "roots"};
	static const ConfSpec    other = {names, 2};
	static const char *const bad[] = {
	    "include 'other.conf'\n",
	    "repository = /r\ninclude_dir = 'conf.d'\n",
	    "repository = '/r\n",
	    "repository /r\n",
	    "repository = /my backups\n",
	    "repository =\n",
	    "= /r\n",
	    "repositry = /r\n",
	    "aws_secret_access_key = hunter2\n",
	};
	ConfFile    cf;
	PgbkConfig *cfg;
	PgbkError   e1;
	PgbkError   e2;
	char        conf[700];
	char       *big;
	size_t      i;

	(void) state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		cfg = NULL;
		assert_int_equal(config_parse_string(bad[i], "x.conf", tmpdir, &cfg, &e1), PGBK_ERR_CONFIG);
		assert_int_equal(conf_read_text(&other, bad[i], strlen(bad[i]), "x.conf", tmpdir, &cf, &e2),
		                 PGBK_ERR_CONFIG);
		if (strcmp(e1.msg, e2.msg) != 0)
			fail_msg("for %s: pgbk.conf says \"%s\", another table \"%s\"", bad[i], e1.msg, e2.msg);
		assert_no_secrets(e1.msg);
	}

	/* hints: the closest known name, never the value */
	expect_fail("repository = /r\ns3_regoin = hunter2\n", "unrecognized setting \"s3_regoin\"",
	            "line 2", "did you mean \"s3_region\"?", NULL);
	expect_fail("repository = /r\nkey-file = x\n", "did you mean \"key_file\"?", NULL);
	expect_fail("repository = /r\nsecret = x\n", "unrecognized setting \"secret\"", NULL);

	/* files: NUL byte, too large, include, missing */
	snprintf(conf, sizeof(conf), "%s/reader.conf", tmpdir);
	{
		FILE *f = fopen(conf, "w");

		fwrite("repository=/r\0\n", 1, 16, f);
		fclose(f);
	}
	assert_int_equal(config_load(conf, &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(conf_read_file(&other, conf, &cf, &e2), PGBK_ERR_CONFIG);
	assert_string_equal(e1.msg, e2.msg);
	assert_non_null(strstr(e1.msg, "contains a NUL byte"));

	big = malloc(1024 * 1024 + 2);
	assert_non_null(big);
	memset(big, '#', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	write_file(conf, big, 0600);
	free(big);
	assert_int_equal(config_load(conf, &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(conf_read_file(&other, conf, &cf, &e2), PGBK_ERR_CONFIG);
	assert_string_equal(e1.msg, e2.msg);
	assert_non_null(strstr(e1.msg, "is too large"));

	write_file(conf, "repository = /r\ninclude_if_exists = 'x'\n", 0600);
	assert_int_equal(config_load(conf, &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(conf_read_file(&other, conf, &cf, &e2), PGBK_ERR_CONFIG);
	assert_string_equal(e1.msg, e2.msg);
	assert_non_null(strstr(e1.msg, "line 2"));

	unlink(conf);
	assert_int_equal(config_load(conf, &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(conf_read_file(&other, conf, &cf, &e2), PGBK_ERR_CONFIG);
	assert_string_equal(e1.msg, e2.msg);

	/* origin: the file's absolute path and the line that set each value (a later one wins) */
	write_file(conf, "# c\nroots = a\n\nrepository = '/x'\nroots = 'b c'\n", 0600);
	assert_int_equal(conf_read_file(&other, conf, &cf, &e2), PGBK_OK);
	assert_string_equal(cf.origin, conf);
	assert_string_equal(cf.base_dir, tmpdir);
	assert_string_equal(conf_value(&cf, 0), "/x");
	assert_int_equal(cf.values[0].line, 4);
	assert_string_equal(conf_value(&cf, 1), "b c");
	assert_int_equal(cf.values[1].line, 5);
	conf_file_free(&cf);
}

/* The repository context (common/context): what each program opens. */
static void
test_repo_context(void **state)
{
	PgbkRepoContextOptions opts = {0};
	PgbkRepoContext        ctx;
	PgbkError              err;
	char                   conf[700];
	char                   text[900];
	struct stat            st;

	(void) state;
	snprintf(conf, sizeof(conf), "%s/ctx.conf", tmpdir);
	snprintf(text, sizeof(text),
	         "repository = '%s/repo'\nkey_file = pgbk.key\nencryption = off\n"
	         "compression_level = 5\n",
	         tmpdir);
	write_file(conf, text, 0600);
	snprintf(text, sizeof(text), "%s/repo", tmpdir);
	if (stat(text, &st) != 0)
		assert_int_equal(mkdir(text, 0700), 0);

	/* the whole context: configuration, keys, repository, codec parameters */
	opts.config_path = conf;
	opts.need_keys = true;
	opts.need_repo = true;
	if (pgbk_repo_context_open(&opts, &ctx, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	assert_string_equal(ctx.config_path, conf);
	assert_non_null(ctx.cfg);
	assert_non_null(ctx.ring);
	assert_non_null(ctx.repo);
	assert_ptr_equal(ctx.params.keyring, ctx.ring);
	assert_int_equal(ctx.params.compression, PGBK_COMPRESS_ZSTD);
	assert_int_equal(ctx.params.level, 5);
	assert_false(ctx.params.encrypt);
	assert_false(pgbk_repo_context_changed(&ctx));

	/* a replaced key file is a change the backend rebuilds for */
	write_file(path_of("pgbk.key"),
	           "pgbk-key-1:"
	           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0600);
	{
		/* the same bytes, maybe the same inode: the time says it changed */
		struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};

		assert_int_equal(utimensat(AT_FDCWD, path_of("pgbk.key"), ts, 0), 0);
	}
	assert_true(pgbk_repo_context_changed(&ctx));
	pgbk_repo_context_close(&ctx);
	assert_null(ctx.cfg);
	pgbk_repo_context_close(&ctx); /* harmless twice */

	/* only what is asked for (the watcher: no keys, the repository later) */
	opts.need_keys = false;
	opts.need_repo = false;
	assert_int_equal(pgbk_repo_context_open(&opts, &ctx, &err), PGBK_OK);
	assert_null(ctx.ring);
	assert_null(ctx.repo);
	assert_null(ctx.params.keyring);
	assert_int_equal(pgbk_repo_context_open_repo(&ctx, &err), PGBK_OK);
	assert_non_null(ctx.repo);
	pgbk_repo_context_close(&ctx);

	/* failures leave an empty context and say what failed */
	opts.config_path = path_of("none.conf");
	assert_int_equal(pgbk_repo_context_open(&opts, &ctx, &err), PGBK_ERR_CONFIG);
	assert_null(ctx.cfg);
	assert_null(ctx.config_path);
	assert_non_null(strstr(err.msg, "does not exist"));
	opts.config_path = NULL;
	assert_int_equal(pgbk_repo_context_open(&opts, &ctx, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "no configuration file given"));
	snprintf(text, sizeof(text), "repository = '%s/repo'\nkey_file = nokey\n", tmpdir);
	write_file(conf, text, 0600);
	opts.config_path = conf;
	opts.need_keys = true;
	assert_int_equal(pgbk_repo_context_open(&opts, &ctx, &err), PGBK_ERR_CONFIG);
	assert_null(ctx.cfg);
	assert_non_null(strstr(err.msg, "key_file"));
}

/* ------------------------------------------------------------------ */

static void
expect_cred_fail(const char *path, const char *profile, const char *want1, const char *want2)
{
	PgbkCredentials *cred = (PgbkCredentials *) 0x1;
	PgbkError        err;
	PgbkStatus       rc = credentials_load(path, profile, &cred, &err);

	if (rc != PGBK_ERR_CONFIG)
		fail_msg("expected a configuration error, got %s: %s", pgbk_status_name(rc),
		         rc ? err.msg : "");
	assert_null(cred);
	assert_non_null(strstr(err.msg, path));
	if (want1 && strstr(err.msg, want1) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want1);
	if (want2 && strstr(err.msg, want2) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want2);
	assert_no_secrets(err.msg);
}

static void
test_credentials(void **state)
{
	char             text[1024];
	char            *path = strdup(path_of("aws.creds"));
	PgbkCredentials *cred;
	PgbkError        err;

	snprintf(text, sizeof(text),
	         "# AWS credentials\n"
	         "; another comment style\n"
	         "[default]\n"
	         "aws_access_key_id = %s\n"
	         "aws_secret_access_key=%s\n"
	         "region = us-east-1\n"
	         "\n"
	         "[ backup ]\n"
	         "  AWS_ACCESS_KEY_ID   =   backup-id  \n"
	         "aws_secret_access_key = %s\n"
	         "aws_session_token = %s\n"
	         "[empty-token]\n"
	         "aws_access_key_id = a\n"
	         "aws_secret_access_key = b\n"
	         "aws_session_token =\n",
	         secrets[0], secrets[1], secrets[1], secrets[2]);
	write_file(path, text, 0600);

	assert_int_equal(credentials_load(path, NULL, &cred, &err), PGBK_OK);
	assert_string_equal(cred->access_key_id, secrets[0]);
	assert_string_equal(cred->secret_access_key, secrets[1]);
	assert_null(cred->session_token);
	credentials_free(cred);

	assert_int_equal(credentials_load(path, "backup", &cred, &err), PGBK_OK);
	assert_string_equal(cred->access_key_id, "backup-id");
	assert_string_equal(cred->secret_access_key, secrets[1]);
	assert_string_equal(cred->session_token, secrets[2]);
	credentials_free(cred);
	credentials_free(NULL);

	assert_int_equal(credentials_load(path, "empty-token", &cred, &err), PGBK_OK);
	assert_null(cred->session_token);
	credentials_free(cred);

	/* errors: name the file, profile and field; never a value */
	expect_cred_fail(path, "nope", "no profile \"nope\"", NULL);

	snprintf(text, sizeof(text), "[default]\naws_access_key_id = %s\n", secrets[0]);
	write_file(path, text, 0600);
	expect_cred_fail(path, "default", "aws_secret_access_key", "\"default\"");

	snprintf(text, sizeof(text), "[default]\naws_secret_access_key = %s\n", secrets[1]);
	write_file(path, text, 0600);
	expect_cred_fail(path, NULL, "aws_access_key_id", NULL);

	/* a stray secret on its own line: reported by line, not repeated */
	snprintf(text, sizeof(text), "[default]\naws_access_key_id = %s\n%s\n", secrets[0], secrets[1]);
	write_file(path, text, 0600);
	expect_cred_fail(path, NULL, "line 3", NULL);

	snprintf(text, sizeof(text), "aws_access_key_id = %s\n[default]\n", secrets[0]);
	write_file(path, text, 0600);
	expect_cred_fail(path, NULL, "line 1", "outside");

	snprintf(text, sizeof(text), "[default\naws_access_key_id = %s\n", secrets[0]);
	write_file(path, text, 0600);
	expect_cred_fail(path, NULL, "line 1", "]");

	/* mode first: a readable file is refused before it is read */
	snprintf(text, sizeof(text), "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
	         secrets[0], secrets[1]);
	write_file(path, text, 0644);
	expect_cred_fail(path, NULL, "0644", "credentials file");

	expect_cred_fail(path_of("missing.creds"), NULL, "does not exist", NULL);
	assert_int_equal(credentials_load(NULL, NULL, &cred, &err), PGBK_ERR_CONFIG);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_every_setting),
	    cmocka_unit_test(test_booleans),     cmocka_unit_test(test_quoting_and_syntax),
	    cmocka_unit_test(test_repository),   cmocka_unit_test(test_endpoint_and_style),
	    cmocka_unit_test(test_numbers),      cmocka_unit_test(test_parse_units),
	    cmocka_unit_test(test_secret_files), cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_credentials),  cmocka_unit_test(test_trusted_file),
	    cmocka_unit_test(test_one_reader),   cmocka_unit_test(test_repo_context),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
