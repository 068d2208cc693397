/*
 * test_files.c
 *	  Tests of room files (cmocka); uses unit.h, files.c and config.
 *	  Unit tests for files.c: restic JSON (backup summary, snapshots,
 *	  forget), RFC 3339 times, restore point tags, the derived files
 *	  repository, restic's argv and environment, error classification, and
 *	  child process runs (a shell script standing in for restic).
 */
#include "unit.h"

#include "config/config.h"
#include "files/files.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *
tmpdir(void)
{
	const char *d = getenv("PGBK_TEST_TMP");

	return d ? d : "/tmp";
}

static void
test_backup_summary(void **state)
{
	FilesBackupSummary s;
	const char *status = "{\"message_type\":\"status\",\"percent_done\":0,\"total_files\":1}";
	const char *summary =
	    "{\"message_type\":\"summary\",\"files_new\":1,\"files_changed\":2,"
	    "\"files_unmodified\":3,\"dirs_new\":6,\"dirs_changed\":0,\"dirs_unmodified\":7,"
	    "\"data_blobs\":1,\"tree_blobs\":7,\"data_added\":2751,\"total_files_processed\":6,"
	    "\"total_bytes_processed\":12345678901,\"total_duration\":0.232405753,"
	    "\"snapshot_id\":\"dfc97ee2\"}";

	(void) state;
	assert_false(files_parse_backup_line(status, strlen(status), &s));
	assert_false(files_parse_backup_line("", 0, &s));
	assert_false(files_parse_backup_line("Fatal: oops", 11, &s));
	assert_false(files_parse_backup_line("{\"message_type\":\"summary\"}", 26, &s));
	assert_true(files_parse_backup_line(summary, strlen(summary), &s));
	assert_string_equal(s.short_id, "dfc97ee2");
	assert_int_equal(s.files_new, 1);
	assert_int_equal(s.files_changed, 2);
	assert_int_equal(s.files_unmodified, 3);
	assert_int_equal(s.dirs_new, 6);
	assert_int_equal(s.dirs_unmodified, 7);
	assert_int_equal(s.data_added, 2751);
	assert_int_equal(s.total_files_processed, 6);
	assert_true(s.total_bytes_processed == INT64_C(12345678901));
	assert_true(s.total_duration > 0.23 && s.total_duration < 0.24);
	/* a bad id is not a summary */
	{
		const char *bad = "{\"message_type\":\"summary\",\"snapshot_id\":\"xyz\"}";

		assert_false(files_parse_backup_line(bad, strlen(bad), &s));
	}
}

static void
test_snapshots(void **state)
{
	const char *json =
	    "[{\"time\":\"2026-11-27T02:57:29.417240163Z\",\"tree\":\"37\",\"paths\":[\"/srv/app\"],"
	    "\"hostname\":\"h1\",\"username\":\"root\",\"excludes\":[\"/srv/app/var/cache\"],"
	    "\"id\":\"dfc97ee2df28f68ad9379736edce5731c946cf95696eab1cf7b63d206f9a376f\","
	    "\"short_id\":\"dfc97ee2\"},"
	    "{\"time\":\"2026-11-27T04:00:17.5+01:00\",\"paths\":[\"/a\",\"/b\"],\"hostname\":\"h2\","
	    "\"tags\":[\"pgbk\",\"rp:x%2Cy\"],"
	    "\"id\":\"c403569dd4e9363822660d9effb856db1731e014083da2aaf009d09b2634f750\"}]\n";
	FilesSnapshotList *list;
	FilesSnapshot      copy;
	PgbkError          err;

	(void) state;
	assert_int_equal(files_parse_snapshots(json, strlen(json), &list, &err), PGBK_OK);
	assert_int_equal(list->n, 2);
	assert_string_equal(list->items[0].id,
	                    "dfc97ee2df28f68ad9379736edce5731c946cf95696eab1cf7b63d206f9a376f");
	assert_string_equal(list->items[0].short_id, "dfc97ee2");
	assert_string_equal(list->items[0].hostname, "h1");
	assert_int_equal(list->items[0].n_paths, 1);
	assert_string_equal(list->items[0].paths[0], "/srv/app");
	assert_int_equal(list->items[0].n_tags, 0);
	assert_int_equal(list->items[1].n_tags, 2);
	assert_string_equal(list->items[1].tags[1], "rp:x%2Cy");
	assert_string_equal(list->items[1].short_id, "c403569d");
	/* 04:00:17.5+01:00 is 03:00:17.5 UTC, 3 minutes after the first */
	assert_true(list->items[1].time_us - list->items[0].time_us == INT64_C(168082760));
	assert_true(files_snapshot_copy(&list->items[1], &copy));
	files_snapshot_list_free(list);
	assert_string_equal(copy.paths[1], "/b");
	assert_string_equal(copy.tags[0], "pgbk");
	files_snapshot_free(&copy);

	assert_int_equal(files_parse_snapshots("[]", 2, &list, &err), PGBK_OK);
	assert_int_equal(list->n, 0);
	files_snapshot_list_free(list);
	assert_int_equal(files_parse_snapshots("{}", 2, &list, &err), PGBK_ERR_FORMAT);
	assert_int_equal(files_parse_snapshots("[{\"id\":\"abc\"}]", 14, &list, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "entry 1"));
	assert_int_equal(files_parse_snapshots("not json", 8, &list, &err), PGBK_ERR_FORMAT);
}

static void
test_forget(void **state)
{
	const char *out =
	    "[{\"tags\":null,\"host\":\"h1\",\"paths\":[\"/d\"],\"keep\":[{\"id\":"
	    "\"c403569dd4e9363822660d9effb856db1731e014083da2aaf009d09b2634f750\"}],"
	    "\"remove\":[{\"id\":\"4be169e51c64b5d47caeba50a0703a9e71068818dbaa7ecd61178c046243cce2\"},"
	    "{\"id\":\"dfc97ee2df28f68ad9379736edce5731c946cf95696eab1cf7b63d206f9a376f\"}],"
	    "\"reasons\":[]}]\n"
	    "loading indexes...\n[0:00] 100.00%  1 / 1 snapshots\ndone\n";
	char    **ids;
	size_t    n;
	PgbkError err;

	(void) state;
	assert_int_equal(files_parse_forget(out, strlen(out), &ids, &n, &err), PGBK_OK);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "4be169e51c64b5d47caeba50a0703a9e71068818dbaa7ecd61178c046243cce2");
	free(ids[0]);
	free(ids[1]);
	free(ids);
	/* nothing for this host: restic prints nothing */
	assert_int_equal(files_parse_forget("", 0, &ids, &n, &err), PGBK_OK);
	assert_int_equal(n, 0);
	assert_int_equal(files_parse_forget("[{\"remove\":", 11, &ids, &n, &err), PGBK_ERR_FORMAT);
}

static void
test_times(void **state)
{
	int64_t us;
	int64_t us2;

	(void) state;
	assert_true(files_parse_time("1970-01-01T00:00:00Z", &us));
	assert_true(us == 0);
	assert_true(files_parse_time("2000-03-01T00:00:00Z", &us));
	assert_true(us == INT64_C(951868800) * 1000000);
	assert_true(files_parse_time("2026-11-27T02:57:29.417240163Z", &us));
	assert_true(us % 1000000 == 417240);
	assert_true(files_parse_time("2026-11-27T03:57:29.417240163+01:00", &us2));
	assert_true(us == us2);
	assert_true(files_parse_time("2026-11-26T21:57:29.417240-05:00", &us2));
	assert_true(us == us2);
	assert_true(files_parse_time("2024-02-29T12:00:00.5Z", &us));
	assert_true(us % 1000000 == 500000);
	assert_false(files_parse_time("2026-11-27 02:57:29", &us));
	assert_false(files_parse_time("2026-13-27T02:57:29Z", &us));
	assert_false(files_parse_time("2026-11-27T02:57:29Zjunk", &us));
	assert_false(files_parse_time("2026-11-27T02:57Z", &us));
	assert_false(files_parse_time("", &us));
}

static void
test_tags(void **state)
{
	char tag[FILES_TAG_MAX];
	char name[FILES_RP_NAME_MAX + 1];
	char long_name[100];

	(void) state;
	assert_true(files_restore_point_tag("before-upgrade_2.1", tag, sizeof(tag)));
	assert_string_equal(tag, "rp:before-upgrade_2.1");
	assert_true(files_restore_point_tag("a,b c%", tag, sizeof(tag)));
	assert_string_equal(tag, "rp:a%2Cb%20c%25");
	assert_true(files_tag_restore_point(tag, name, sizeof(name)));
	assert_string_equal(name, "a,b c%");
	assert_true(files_restore_point_tag("\xc3\xa9t\xc3\xa9", tag, sizeof(tag)));
	assert_true(files_tag_restore_point(tag, name, sizeof(name)));
	assert_string_equal(name, "\xc3\xa9t\xc3\xa9");
	assert_false(files_restore_point_tag("", tag, sizeof(tag)));
	memset(long_name, 'x', 64);
	long_name[64] = '\0';
	assert_false(files_restore_point_tag(long_name, tag, sizeof(tag)));
	long_name[63] = '\0';
	assert_true(files_restore_point_tag(long_name, tag, sizeof(tag)));
	assert_false(files_tag_restore_point("pgbk", name, sizeof(name)));
	assert_false(files_tag_restore_point("rp:", name, sizeof(name)));
	assert_false(files_tag_restore_point("rp:%zz", name, sizeof(name)));
}

static PgbkConfig *
parse_conf(const char *text, const char *dir)
{
	PgbkConfig *cfg = NULL;
	PgbkError   err;

	if (config_parse_string(text, "test.conf", dir, &cfg, &err) != PGBK_OK)
		fail_msg("config: %s", err.msg);
	return cfg;
}

static void
write_private(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
}

static void
test_repository(void **state)
{
	char          dir[256];
	char          pw[300];
	char          cred[300];
	char          key[300];
	char          text[2048];
	PgbkConfig   *cfg;
	FilesSettings fs;
	FilesRepo    *repo;
	char         *r;
	char        **argv;
	const char   *args[] = {"snapshots", "--json", NULL};
	PgbkError     err;
	int           i;
	bool          has_key = false;
	bool          has_tz = false;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/pgbk-test-files-%d", tmpdir(), (int) getpid());
	mkdir(dir, 0700);
	snprintf(pw, sizeof(pw), "%s/restic.pw", dir);
	snprintf(cred, sizeof(cred), "%s/s3.cred", dir);
	snprintf(key, sizeof(key), "%s/pgbk.key", dir);
	write_private(pw, "secret\n");
	snprintf(text, sizeof(text), "%s/ca.pem", dir);
	write_private(text, "-----BEGIN CERTIFICATE-----\n");
	write_private(cred, "[default]\naws_access_key_id = AKIDTEST\n"
	                    "aws_secret_access_key = SECRETTEST\n");
	write_private(key,
	              "pgbk-key-1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");

	/* local: /path/files */
	snprintf(text, sizeof(text), "repository = '/srv/backup/'\nkey_file = '%s'\n", key);
	cfg = parse_conf(text, dir);
	assert_int_equal(files_default_repository(cfg, &r, &err), PGBK_OK);
	assert_string_equal(r, "/srv/backup/files");
	free(r);
	config_free(cfg);

	/* S3: s3:<endpoint>/<bucket>/<prefix>/files, credentials in the env */
	snprintf(text, sizeof(text),
	         "repository = 's3://pgbk-test/node1/'\ns3_endpoint = 'https://127.0.0.1:7480'\n"
	         "s3_uri_style = path\ns3_region = eu-west-3\ns3_ca_file = '%s/ca.pem'\n"
	         "s3_credentials_file = '%s'\nkey_file = '%s'\n",
	         dir, cred, key);
	cfg = parse_conf(text, dir);
	assert_int_equal(files_default_repository(cfg, &r, &err), PGBK_OK);
	assert_string_equal(r, "s3:https://127.0.0.1:7480/pgbk-test/node1/files");
	free(r);

	memset(&fs, 0, sizeof(fs));
	assert_int_equal(files_repo_open(cfg, &fs, &repo, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "restic_password_file"));
	fs.password_file = pw;
	fs.restic_binary = "/bin/sh";
	assert_int_equal(files_repo_open(cfg, &fs, &repo, &err), PGBK_OK);
	argv = files_argv(repo, args);
	assert_string_equal(argv[0], "/bin/sh");
	assert_string_equal(argv[1], "--repo");
	assert_string_equal(argv[2], "s3:https://127.0.0.1:7480/pgbk-test/node1/files");
	assert_string_equal(argv[3], "--password-file");
	assert_string_equal(argv[4], pw);
	for (i = 0; argv[i]; i++)
	{
		/* no secret on the command line */
		assert_null(strstr(argv[i], "SECRETTEST"));
		assert_null(strstr(argv[i], "AKIDTEST"));
	}
	assert_string_equal(argv[i - 2], "snapshots");
	assert_string_equal(argv[i - 1], "--json");
	{
		bool lookup = false, region = false, ca = false;

		for (i = 0; argv[i]; i++)
		{
			lookup |= strcmp(argv[i], "s3.bucket-lookup=path") == 0;
			region |= strcmp(argv[i], "s3.region=eu-west-3") == 0;
			ca |= strcmp(argv[i], "--cacert") == 0;
		}
		assert_true(lookup && region && ca);
	}
	free(argv);
	for (i = 0; repo->envp[i]; i++)
	{
		has_key |= strcmp(repo->envp[i], "AWS_SECRET_ACCESS_KEY=SECRETTEST") == 0;
		has_tz |= strcmp(repo->envp[i], "TZ=UTC") == 0;
		assert_true(strncmp(repo->envp[i], "RESTIC_PASSWORD", 15) != 0);
	}
	assert_true(has_key && has_tz);
	files_repo_free(repo);

	/* files_repository overrides; user info is refused */
	fs.repository = "rest:https://user:pw@host/";
	assert_int_equal(files_repo_open(cfg, &fs, &repo, &err), PGBK_ERR_CONFIG);
	assert_null(strstr(err.msg, "user:pw"));
	/* a binary that is not there */
	fs.repository = "/x";
	fs.restic_binary = "no-such-restic-binary";
	assert_int_equal(files_repo_open(cfg, &fs, &repo, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "not found in PATH"));
	/* a password file others can read */
	chmod(pw, 0644);
	fs.restic_binary = "/bin/sh";
	assert_int_equal(files_repo_open(cfg, &fs, &repo, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "mode 0644"));
	assert_non_null(strstr(err.hint, "chmod 600"));
	config_free(cfg);

	unlink(pw);
	unlink(cred);
	unlink(key);
	snprintf(text, sizeof(text), "%s/ca.pem", dir);
	unlink(text);
	rmdir(dir);
}

static void
test_classify(void **state)
{
	(void) state;
	assert_int_equal(files_classify_stderr("Fatal: wrong password or no key found\n"),
	                 PGBK_ERR_KEY);
	assert_int_equal(
	    files_classify_stderr("Fatal: unable to open config file: Stat: Get \"http://127.0.0.1:1/b/"
	                          "?location=\": dial tcp 127.0.0.1:1: connect: connection refused\n"
	                          "Is there a repository at the following location?\n"),
	    PGBK_ERR_CONNECT);
	assert_int_equal(files_classify_stderr("Fatal: unable to open config file: stat "
	                                       "/x/config: no such file or directory\nIs there a "
	                                       "repository at the following location?\n/x\n"),
	                 PGBK_NOT_FOUND);
	assert_int_equal(files_classify_stderr("Get \"https://h/\": x509: certificate signed by "
	                                       "unknown authority"),
	                 PGBK_ERR_TLS);
	assert_int_equal(files_classify_stderr("The AWS Access Key Id you provided does not exist "
	                                       "in our records. (InvalidAccessKeyId)"),
	                 PGBK_ERR_AUTH);
	assert_int_equal(files_classify_stderr("something else"), PGBK_ERR);
}

/* Exit codes and signals, through a shell script standing in for restic. */
static void
test_run_script(void **state)
{
	char          dir[256];
	char          pw[300];
	char          script[300];
	FilesSettings fs;
	FilesRepo    *repo;
	PgbkBuf       out;
	PgbkBuf       tail;
	FilesExit     ex;
	PgbkError     err;
	char          how[128];
	FILE         *f;
	const char   *a_ok[] = {"ok", NULL};
	const char   *a_three[] = {"three", NULL};
	const char   *a_kill[] = {"kill", NULL};
	const char   *a_pw[] = {"pw", NULL};

	(void) state;
	snprintf(dir, sizeof(dir), "%s/pgbk-test-run-%d", tmpdir(), (int) getpid());
	mkdir(dir, 0700);
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	snprintf(script, sizeof(script), "%s/fake-restic", dir);
	write_private(pw, "x\n");
	f = fopen(script, "w");
	assert_non_null(f);
	/* the subcommand is the last argument */
	fputs("#!/bin/sh\n"
	      "for a; do last=$a; done\n"
	      "case $last in\n"
	      "ok) echo '{\"message_type\":\"summary\"}'; echo \"tz=$TZ\"; echo done >&2; exit 0;;\n"
	      "three) echo 'Warning: at least one source file could not be read' >&2; exit 3;;\n"
	      "kill) kill -9 $$;;\n"
	      "pw) echo 'Fatal: wrong password or no key found' >&2; exit 1;;\n"
	      "esac\n",
	      f);
	fclose(f);
	chmod(script, 0700);

	memset(&fs, 0, sizeof(fs));
	fs.password_file = pw;
	fs.restic_binary = script;
	fs.repository = "/nonexistent";
	assert_int_equal(files_repo_open(NULL, &fs, &repo, &err), PGBK_OK);

	pgbk_buf_init(&out);
	pgbk_buf_init(&tail);
	assert_int_equal(files_run(repo, a_ok, &out, &tail, &ex, &err), PGBK_OK);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 0);
	assert_non_null(strstr((char *) out.data, "summary"));
	assert_non_null(strstr((char *) out.data, "tz=UTC"));
	assert_non_null(strstr((char *) tail.data, "done"));

	pgbk_buf_reset(&out);
	pgbk_buf_reset(&tail);
	assert_int_equal(files_run(repo, a_three, &out, &tail, &ex, &err), PGBK_OK);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, FILES_EXIT_INCOMPLETE);

	pgbk_buf_reset(&tail);
	assert_int_equal(files_run(repo, a_kill, NULL, &tail, &ex, &err), PGBK_OK);
	assert_true(ex.signaled);
	assert_int_equal(ex.code, 9);
	files_describe_exit(&ex, how, sizeof(how));
	assert_non_null(strstr(how, "signal 9"));

	pgbk_buf_reset(&tail);
	assert_int_equal(files_run(repo, a_pw, NULL, &tail, &ex, &err), PGBK_OK);
	assert_int_equal(ex.code, 1);
	assert_int_equal(files_fail(repo, "list snapshots", &ex, (char *) tail.data, &err),
	                 PGBK_ERR_KEY);
	assert_non_null(strstr(err.msg, "could not list snapshots"));
	assert_non_null(strstr(err.msg, "wrong password"));
	assert_non_null(strstr(err.msg, "restic_password_file"));

	pgbk_buf_free(&out);
	pgbk_buf_free(&tail);
	files_repo_free(repo);
	unlink(script);
	unlink(pw);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backup_summary), cmocka_unit_test(test_snapshots),
	    cmocka_unit_test(test_forget),         cmocka_unit_test(test_times),
	    cmocka_unit_test(test_tags),           cmocka_unit_test(test_repository),
	    cmocka_unit_test(test_classify),       cmocka_unit_test(test_run_script),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
