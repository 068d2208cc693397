/*
 * test_watcher.c
 *	  Tests of program pgbk-watcher (cmocka); compiles watcher/ sources in, uses unit.h.
 *	  Unit tests for pgbk-watcher's pure parts: the debounce state machine,
 *	  the configuration parser (and that it reads files as pgbk.conf's does), exclude matching, the spool journal, the
 *	  inotify watch table against a real directory tree (new trees, renames,
 *	  excluded directories, deletions, queue overflow, the watch limit), and
 *	  the event loop's timers (timers.c).
 *
 * The watcher's modules are compiled into this program directly (their
 * static helpers stay reachable and no extra Makefile rule is needed);
 * main.c and record.c (libpq) are not part of it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "unit.h"

#include "../../watcher/debounce.c"
#include "../../watcher/log.c"
#include "../../watcher/settings.c"
#include "../../watcher/spool.c"
#include "../../watcher/timers.c"
#include "../../watcher/watch.c"

#include <ftw.h>

static char test_dir[PATH_MAX];

static const char *
tmpbase(void)
{
	const char *d = getenv("PGBK_TEST_TMP");

	return d ? d : "/tmp";
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path);
}

static int
setup_dir(void **state)
{
	(void) state;
	snprintf(test_dir, sizeof(test_dir), "%s/pgbk-test-watcher-XXXXXX", tmpbase());
	if (mkdtemp(test_dir) == NULL)
		return -1;
	return 0;
}

static int
teardown_dir(void **state)
{
	(void) state;
	nftw(test_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void
mkpath(const char *rel)
{
	char p[PATH_MAX];
	char cmd[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/%s", test_dir, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
	assert_int_equal(system(cmd), 0);
}

static void
touch(const char *rel)
{
	char  p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", test_dir, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
}

static void
ren(const char *from, const char *to)
{
	char a[PATH_MAX];
	char b[PATH_MAX];

	snprintf(a, sizeof(a), "%s/%s", test_dir, from);
	snprintf(b, sizeof(b), "%s/%s", test_dir, to);
	assert_int_equal(rename(a, b), 0);
}

/* ----------------------------------------------------------------------
 * debounce
 * ---------------------------------------------------------------------- */

static void
test_debounce_settle_and_max_wait(void **state)
{
	Debounce d;
	Trigger  why;
	int64_t  t;

	(void) state;
	debounce_init(&d, 10000, 60000, 3600000, 10000, 300000, 0);
	/* the start snapshot first */
	assert_int_equal(debounce_next(&d, &why), 0);
	assert_int_equal(why, TRIGGER_STARTUP);
	debounce_started(&d, why, 0);
	assert_int_equal(debounce_next(&d, &why), DEBOUNCE_NEVER);
	debounce_finished(&d, true, 1000);
	/* nothing changed: the safety snapshot an hour after the last start */
	assert_int_equal(debounce_next(&d, &why), 3600000);
	assert_int_equal(why, TRIGGER_SAFETY);

	/* one change: due settle_delay later */
	debounce_change(&d, 5000);
	assert_int_equal(debounce_next(&d, &why), 15000);
	assert_int_equal(why, TRIGGER_CHANGE);
	/* more changes push it back ... */
	debounce_change(&d, 12000);
	assert_int_equal(debounce_next(&d, &why), 22000);
	/* ... but never past max_wait after the first change */
	for (t = 12000; t < 100000; t += 1000)
		debounce_change(&d, t);
	assert_int_equal(debounce_next(&d, &why), 65000);
	debounce_started(&d, why, 65000);
	/* changes during the run open a new period */
	debounce_change(&d, 66000);
	debounce_finished(&d, true, 67000);
	assert_int_equal(debounce_next(&d, &why), 76000);
	assert_int_equal(why, TRIGGER_CHANGE);
}

static void
test_debounce_request_and_failures(void **state)
{
	Debounce d;
	Trigger  why;

	(void) state;
	debounce_init(&d, 1000, 5000, 0, 10000, 40000, 0);
	debounce_started(&d, TRIGGER_STARTUP, 0);
	debounce_finished(&d, true, 500);
	assert_int_equal(debounce_next(&d, &why), DEBOUNCE_NEVER); /* no safety */
	debounce_request(&d);
	assert_int_equal(debounce_next(&d, &why), 0);
	assert_int_equal(why, TRIGGER_REQUEST);

	/* a failed run is retried after 10 s, 20 s, 40 s, 40 s */
	debounce_started(&d, why, 1000);
	debounce_finished(&d, false, 2000);
	assert_int_equal(debounce_next(&d, &why), 12000);
	assert_int_equal(why, TRIGGER_REQUEST);
	debounce_started(&d, why, 12000);
	debounce_finished(&d, false, 13000);
	assert_int_equal(debounce_next(&d, &why), 33000);
	debounce_started(&d, why, 33000);
	debounce_finished(&d, false, 34000);
	assert_int_equal(debounce_next(&d, &why), 74000);
	debounce_started(&d, why, 74000);
	debounce_finished(&d, false, 75000);
	assert_int_equal(debounce_next(&d, &why), 115000);
	/* success resets the backoff */
	debounce_started(&d, why, 115000);
	debounce_finished(&d, true, 116000);
	assert_int_equal(d.failures, 0);
	debounce_change(&d, 117000);
	assert_int_equal(debounce_next(&d, &why), 118000);

	/* a failed change snapshot stays due (with the backoff) */
	debounce_started(&d, why, 118000);
	debounce_finished(&d, false, 119000);
	assert_true(d.dirty);
	assert_int_equal(debounce_next(&d, &why), 129000);
	assert_int_equal(why, TRIGGER_CHANGE);

	/* a failed start snapshot is retried too */
	debounce_init(&d, 1000, 5000, 0, 10000, 40000, 0);
	debounce_started(&d, TRIGGER_STARTUP, 0);
	debounce_finished(&d, false, 100);
	assert_int_equal(debounce_next(&d, &why), 10100);
	assert_int_equal(why, TRIGGER_STARTUP);
}

static void
test_debounce_degraded(void **state)
{
	Debounce d;
	Trigger  why;

	(void) state;
	debounce_init(&d, 1000, 5000, 3600000, 1000, 1000, 0);
	debounce_started(&d, TRIGGER_STARTUP, 0);
	debounce_finished(&d, true, 10);
	debounce_set_degraded(&d, true);
	/* unwatched directories: a snapshot every max_wait */
	assert_int_equal(debounce_next(&d, &why), 5000);
	assert_int_equal(why, TRIGGER_SAFETY);
	debounce_set_degraded(&d, false);
	assert_int_equal(debounce_next(&d, &why), 3600000);
}

/* ----------------------------------------------------------------------
 * settings
 * ---------------------------------------------------------------------- */

static void
test_settings(void **state)
{
	WatcherSettings *s;
	PgbkError        err;

	(void) state;
	assert_int_equal(settings_parse_string("roots = '/srv/app/, /srv/uploads'\n"
	                                       "spool_dir = spool   # relative\n"
	                                       "settle_delay = 2s\nhost = web-1\n",
	                                       "w.conf", "/etc/pgbk", &s, &err),
	                 PGBK_OK);
	assert_int_equal(s->n_roots, 2);
	assert_string_equal(s->roots[0], "/srv/app");
	assert_string_equal(s->roots[1], "/srv/uploads");
	assert_int_equal(s->n_excludes, 5); /* the Pimcore defaults */
	assert_string_equal(s->excludes[0], "var/cache");
	assert_string_equal(s->excludes[4], "public/var/tmp");
	assert_string_equal(s->spool_dir, "/etc/pgbk/spool");
	assert_int_equal(s->settle_ms, 2000);
	assert_int_equal(s->max_wait_ms, 60000);
	assert_int_equal(s->safety_ms, 3600000);
	assert_true(s->files_depth_ms == INT64_C(180) * 86400000);
	assert_string_equal(s->host, "web-1");
	assert_string_equal(s->conninfo, "");
	settings_free(s);

	assert_int_equal(settings_parse_string("roots = /a\nexcludes = ''\nsafety_interval = 0\n",
	                                       "w.conf", "/etc", &s, &err),
	                 PGBK_OK);
	assert_int_equal(s->n_excludes, 0);
	assert_int_equal(s->safety_ms, 0);
	settings_free(s);

	/* errors name the setting, the file and the line */
	assert_int_equal(
	    settings_parse_string("roots = /a\nsettle_delay = soon\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "\"settle_delay\""));
	assert_non_null(strstr(err.msg, "line 2"));
	assert_int_equal(
	    settings_parse_string("roots = /a\npassword = hunter2\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "\"password\""));
	assert_null(strstr(err.msg, "hunter2"));
	assert_int_equal(settings_parse_string("spool_dir = /x\n", "w.conf", "/etc", &s, &err),
	                 PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "\"roots\" is required"));
	assert_int_equal(settings_parse_string("roots = 'a/b'\n", "w.conf", "/etc", &s, &err),
	                 PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "not an absolute path"));
	assert_int_equal(
	    settings_parse_string("roots = '/srv, /srv/app'\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "inside"));
	assert_int_equal(
	    settings_parse_string("roots = /srv\nspool_dir = /srv/spool\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "spool_dir"));
	assert_int_equal(
	    settings_parse_string("roots = /srv\nsettle_delay = 2min\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "shorter than settle_delay"));
	assert_int_equal(
	    settings_parse_string("roots = /srv\nexcludes = '../etc'\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_int_equal(
	    settings_parse_string("roots = /srv\nexcludes = '**/cache'\n", "w.conf", "/etc", &s, &err),
	    PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "is not supported"));
	assert_int_equal(settings_parse_string("roots = '/srv\n", "w.conf", "/etc", &s, &err),
	                 PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "unterminated"));
}

/*
 * pgbk.conf and the watcher's settings are read by one reader
 * (common/config/confread.c): the same bad input gives the same error,
 * word for word, under both.
 */
static void
same_error_text(const char *what, const char *text)
{
	PgbkConfig      *cfg = NULL;
	WatcherSettings *set = NULL;
	PgbkError        e1;
	PgbkError        e2;

	assert_int_equal(config_parse_string(text, "x.conf", "/etc", &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(settings_parse_string(text, "x.conf", "/etc", &set, &e2), PGBK_ERR_CONFIG);
	assert_null(cfg);
	assert_null(set);
	if (strcmp(e1.msg, e2.msg) != 0)
		fail_msg("%s: pgbk.conf says \"%s\", the watcher \"%s\"", what, e1.msg, e2.msg);
}

static void
same_error_file(const char *what, const char *path, const char *want)
{
	PgbkConfig      *cfg = NULL;
	WatcherSettings *set = NULL;
	PgbkError        e1;
	PgbkError        e2;

	assert_int_equal(config_load(path, &cfg, &e1), PGBK_ERR_CONFIG);
	assert_int_equal(settings_load(path, &set, &e2), PGBK_ERR_CONFIG);
	assert_null(cfg);
	assert_null(set);
	if (strcmp(e1.msg, e2.msg) != 0)
		fail_msg("%s: pgbk.conf says \"%s\", the watcher \"%s\"", what, e1.msg, e2.msg);
	if (strstr(e1.msg, want) == NULL || strstr(e1.msg, path) == NULL)
		fail_msg("%s: \"%s\" lacks \"%s\" or the file", what, e1.msg, want);
}

static void
write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_one_reader(void **state)
{
	char   path[PATH_MAX];
	char   old_cwd[PATH_MAX];
	char  *big;
	size_t big_len = 1024 * 1024 + 1;

	(void) state;
	/* syntax: from text */
	same_error_text("include", "include 'other.conf'\n");
	same_error_text("include_dir", "restic_binary = x\ninclude_dir = 'conf.d'\n");
	same_error_text("include_if_exists", "include_if_exists = 'x'\n");
	same_error_text("unterminated quote", "restic_binary = '/usr/bin/restic\n");
	same_error_text("missing =", "restic_binary /usr/bin/restic\n");
	same_error_text("missing value", "restic_binary =\n");
	same_error_text("text after the value", "restic_binary = /usr/bin/my restic\n");
	same_error_text("no name", "= x\n");
	same_error_text("unknown name, with a hint", "restic_binari = x\n");
	same_error_text("unknown name, no hint", "password = hunter2\n");

	/* the hint names the closest setting, never the value */
	{
		WatcherSettings *set = NULL;
		PgbkError        err;

		assert_int_equal(settings_parse_string("roots = /a\nsetle_delay = hunter2\n", "w.conf",
		                                       "/etc", &set, &err),
		                 PGBK_ERR_CONFIG);
		assert_non_null(strstr(err.msg, "unrecognized setting \"setle_delay\""));
		assert_non_null(strstr(err.msg, "did you mean \"settle_delay\"?"));
		assert_null(strstr(err.msg, "hunter2"));
	}

	/* files */
	snprintf(path, sizeof(path), "%s/x.conf", test_dir);
	write_bytes(path, "restic_binary = x\0\n", 19, 0600);
	same_error_file("NUL byte", path, "contains a NUL byte");

	big = malloc(big_len);
	assert_non_null(big);
	memset(big, '#', big_len);
	write_bytes(path, big, big_len, 0600);
	free(big);
	same_error_file("too large", path, "is too large");

	write_bytes(path, "include 'y.conf'\n", 17, 0600);
	same_error_file("include in a file", path, "\"include\" directives are not supported");

	write_bytes(path, "restic_binary = x\n", 18, 0666);
	same_error_file("untrusted", path, "writable by group and others");

	unlink(path);
	same_error_file("missing", path, "it does not exist");

	/* a relative path is named by its absolute form under both */
	assert_non_null(getcwd(old_cwd, sizeof(old_cwd)));
	assert_int_equal(chdir(test_dir), 0);
	write_bytes(path, "include 'y.conf'\n", 17, 0600);
	{
		PgbkConfig      *cfg = NULL;
		WatcherSettings *set = NULL;
		PgbkError        e1;
		PgbkError        e2;

		assert_int_equal(config_load("x.conf", &cfg, &e1), PGBK_ERR_CONFIG);
		assert_int_equal(settings_load("x.conf", &set, &e2), PGBK_ERR_CONFIG);
		assert_string_equal(e1.msg, e2.msg);
		assert_non_null(strstr(e1.msg, path));
	}
	assert_int_equal(chdir(old_cwd), 0);
}

static void
test_restic_duration(void **state)
{
	char buf[32];

	(void) state;
	settings_restic_duration(INT64_C(180) * 86400000, buf, sizeof(buf));
	assert_string_equal(buf, "180d0h");
	settings_restic_duration(INT64_C(36) * 3600000, buf, sizeof(buf));
	assert_string_equal(buf, "1d12h");
	settings_restic_duration(1000, buf, sizeof(buf));
	assert_string_equal(buf, "0d1h");
}

/* ----------------------------------------------------------------------
 * excludes
 * ---------------------------------------------------------------------- */

static void
test_excluded(void **state)
{
	char *ex[] = {"var/cache", "var/tmp", "public/var/tmp", "*.swp", "tmp-*"};
	int   n = 5;

	(void) state;
	assert_true(watch_excluded(ex, n, "var/cache"));
	assert_true(watch_excluded(ex, n, "var/cache/pimcore/x.php"));
	assert_true(watch_excluded(ex, n, "public/var/tmp/thumb.jpg"));
	assert_false(watch_excluded(ex, n, "var"));
	assert_false(watch_excluded(ex, n, "var/cachex"));
	assert_false(watch_excluded(ex, n, "public/var/assets/a.jpg"));
	assert_false(watch_excluded(ex, n, "x/var/cache")); /* anchored at the root */
	assert_true(watch_excluded(ex, n, "a.swp"));
	assert_false(watch_excluded(ex, n, "dir/a.swp")); /* '*' stays in one component */
	assert_true(watch_excluded(ex, n, "tmp-1/file"));
	assert_false(watch_excluded(ex, n, ""));
}

/* ----------------------------------------------------------------------
 * spool
 * ---------------------------------------------------------------------- */

static void
fill_record(SpoolRecord *r, const char *id_char, char **paths, char **tags, char **rps)
{
	memset(r, 0, sizeof(*r));
	r->kind = SPOOL_SNAPSHOT;
	memset(r->id, id_char[0], FILES_ID_LEN);
	r->id[FILES_ID_LEN] = '\0';
	r->time = "2026-11-27T03:09:54Z";
	r->host = "web-1";
	r->paths = paths;
	r->n_paths = 2;
	r->tags = tags;
	r->n_tags = 2;
	r->restore_points = rps;
	r->n_restore_points = 1;
	r->complete = false;
	r->trigger = "request";
	r->sum.files_new = 1;
	r->sum.files_changed = 2;
	r->sum.files_unmodified = 3;
	r->sum.data_added = INT64_C(5000000000);
	r->sum.total_duration = 1.25;
}

static void
test_spool_codec(void **state)
{
	char       *paths[] = {"/srv/app", "/srv/\"quoted\" \\dir"};
	char       *tags[] = {"pgbk", "rp:x%2Cy"};
	char       *rps[] = {"x,y"};
	char       *ids[] = {"ab", "cd"};
	SpoolRecord in;
	SpoolRecord out;
	PgbkError   err;
	char       *json;

	(void) state;
	fill_record(&in, "a", paths, tags, rps);
	json = spool_encode(&in);
	assert_non_null(json);
	assert_null(strchr(json, '\n'));
	assert_int_equal(spool_decode(json, strlen(json), &out, &err), PGBK_OK);
	assert_int_equal(out.kind, SPOOL_SNAPSHOT);
	assert_string_equal(out.id, in.id);
	assert_string_equal(out.sum.short_id, "aaaaaaaa");
	assert_string_equal(out.time, in.time);
	assert_string_equal(out.paths[1], paths[1]);
	assert_string_equal(out.tags[1], "rp:x%2Cy");
	assert_string_equal(out.restore_points[0], "x,y");
	assert_false(out.complete);
	assert_string_equal(out.trigger, "request");
	assert_true(out.sum.data_added == INT64_C(5000000000));
	assert_true(out.sum.total_duration == 1.25);
	assert_true(out.exact_from_us == 0 && out.exact_until_us == 0 && out.n_request_ids == 0);
	spool_record_free(&out);
	free(json);

	/* the exact span and the requests served */
	{
		int64_t reqs[] = {7, INT64_C(9000000000)};

		in.exact_from_us = INT64_C(1764900000123456);
		in.scan_end_us = INT64_C(1764900002000001);
		in.request_ids = reqs;
		in.n_request_ids = 2;
		json = spool_encode(&in);
		assert_int_equal(spool_decode(json, strlen(json), &out, &err), PGBK_OK);
		assert_true(out.exact_from_us == INT64_C(1764900000123456));
		assert_true(out.exact_until_us == 0);
		assert_true(out.scan_end_us == INT64_C(1764900002000001));
		assert_int_equal(out.n_request_ids, 2);
		assert_true(out.request_ids[1] == INT64_C(9000000000));
		spool_record_free(&out);
		free(json);
	}

	memset(&in, 0, sizeof(in));
	in.kind = SPOOL_UNTIL;
	memset(in.id, 'b', FILES_ID_LEN);
	in.exact_until_us = INT64_C(1764900003000000);
	json = spool_encode(&in);
	assert_int_equal(spool_decode(json, strlen(json), &out, &err), PGBK_OK);
	assert_int_equal(out.kind, SPOOL_UNTIL);
	assert_string_equal(out.id, in.id);
	assert_true(out.exact_until_us == INT64_C(1764900003000000));
	spool_record_free(&out);
	free(json);

	memset(&in, 0, sizeof(in));
	in.kind = SPOOL_CLOSE;
	in.host = "web-1";
	json = spool_encode(&in);
	assert_int_equal(spool_decode(json, strlen(json), &out, &err), PGBK_OK);
	assert_int_equal(out.kind, SPOOL_CLOSE);
	assert_string_equal(out.host, "web-1");
	spool_record_free(&out);
	free(json);
	assert_int_equal(spool_decode("{\"v\":1,\"kind\":\"until\",\"id\":\"xyz\"}", 33, &out, &err),
	                 PGBK_ERR_FORMAT);

	memset(&in, 0, sizeof(in));
	in.kind = SPOOL_FORGOTTEN;
	in.ids = ids;
	in.n_ids = 2;
	json = spool_encode(&in);
	assert_int_equal(spool_decode(json, strlen(json), &out, &err), PGBK_OK);
	assert_int_equal(out.kind, SPOOL_FORGOTTEN);
	assert_int_equal(out.n_ids, 2);
	assert_string_equal(out.ids[1], "cd");
	spool_record_free(&out);
	free(json);

	/* damaged records are refused */
	assert_int_equal(spool_decode("{\"v\":1,\"kind\":\"snapshot\",\"id\":\"xyz\"}", 36, &out, &err),
	                 PGBK_ERR_FORMAT);
	assert_int_equal(spool_decode("{\"v\":2,\"kind\":\"forgotten\",\"ids\":[]}", 35, &out, &err),
	                 PGBK_ERR_FORMAT);
	assert_int_equal(spool_decode("{\"v\":1,\"kind\":\"snap", 19, &out, &err), PGBK_ERR_FORMAT);
}

static void
test_spool_files(void **state)
{
	char       *paths[] = {"/srv/app", "/srv/up"};
	char       *tags[] = {"pgbk", "rp:x"};
	char       *rps[] = {"x"};
	char        dir[PATH_MAX];
	char        p[PATH_MAX + 64];
	Spool      *sp;
	SpoolRecord r;
	SpoolRecord out;
	PgbkError   err;
	uint64_t    first;
	FILE       *f;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/spool/sub", test_dir);
	assert_int_equal(spool_open(dir, &sp, &err), PGBK_OK);
	assert_int_equal(spool_pending(sp), 0);
	fill_record(&r, "a", paths, tags, rps);
	assert_int_equal(spool_append(sp, &r, &err), PGBK_OK);
	fill_record(&r, "b", paths, tags, rps);
	assert_int_equal(spool_append(sp, &r, &err), PGBK_OK);
	fill_record(&r, "c", paths, tags, rps);
	assert_int_equal(spool_append(sp, &r, &err), PGBK_OK);
	assert_int_equal(spool_pending(sp), 3);
	first = spool_first(sp);
	assert_int_equal(spool_read(sp, first, &out, &err), PGBK_OK);
	assert_int_equal(out.id[0], 'a');
	spool_record_free(&out);
	spool_remove(sp, first);
	spool_close(sp);

	/* a restart finds the rest, in order; a half-written record is dropped */
	snprintf(p, sizeof(p), "%s/00000000000000000099.tmp", dir);
	f = fopen(p, "w");
	fputs("{\"v\":1", f);
	fclose(f);
	assert_int_equal(spool_open(dir, &sp, &err), PGBK_OK);
	assert_int_equal(spool_pending(sp), 2);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(spool_read(sp, spool_first(sp), &out, &err), PGBK_OK);
	assert_int_equal(out.id[0], 'b');
	spool_record_free(&out);

	/* a damaged record is set aside, not blocking the queue */
	snprintf(p, sizeof(p), "%s/%020llu.rec", dir, (unsigned long long) spool_first(sp));
	f = fopen(p, "w");
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(spool_read(sp, spool_first(sp), &out, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "set aside"));
	assert_int_equal(spool_pending(sp), 1);
	assert_int_equal(spool_read(sp, spool_first(sp), &out, &err), PGBK_OK);
	assert_int_equal(out.id[0], 'c');
	spool_record_free(&out);
	/* new records continue the sequence */
	fill_record(&r, "d", paths, tags, rps);
	assert_int_equal(spool_append(sp, &r, &err), PGBK_OK);
	assert_true(sp->pending[1] > sp->pending[0]);
	spool_close(sp);
}

/* ----------------------------------------------------------------------
 * watch table, against a real tree
 * ---------------------------------------------------------------------- */

static WatchTable *
open_watch(int max_watches)
{
	char        root[PATH_MAX];
	char       *roots[1];
	char       *ex[] = {"var/cache", "var/tmp"};
	WatchTable *w;
	PgbkError   err;

	snprintf(root, sizeof(root), "%s/root", test_dir);
	roots[0] = root;
	if (watch_open(roots, 1, ex, 2, max_watches, &w, &err) != PGBK_OK)
		fail_msg("watch_open: %s", err.msg);
	return w;
}

/* Is the directory rel (under root) in the table? */
static bool
watched(WatchTable *w, const char *rel)
{
	char p[PATH_MAX];
	char q[PATH_MAX];
	int  i;

	snprintf(p, sizeof(p), "%s/root%s%s", test_dir, rel[0] ? "/" : "", rel);
	for (i = 0; i < w->n_slots; i++)
	{
		if (w->dirs[i].wd >= 0 && dir_path(w, i, NULL, false, q, sizeof(q)) && strcmp(p, q) == 0)
			return true;
	}
	return false;
}

static void
test_watch_tree(void **state)
{
	WatchTable *w;

	(void) state;
	mkpath("root/a/b");
	mkpath("root/var/cache/deep");
	mkpath("root/var/log");
	w = open_watch(0);
	assert_true(watched(w, ""));
	assert_true(watched(w, "a/b"));
	assert_true(watched(w, "var/log"));
	assert_false(watched(w, "var/cache"));
	assert_int_equal(watch_count(w), 5); /* root, a, a/b, var, var/log */
	assert_int_equal(watch_process(w), 0);

	/* changes in excluded directories are not changes */
	touch("root/var/cache/deep/f");
	mkpath("root/var/tmp/x");
	assert_int_equal(watch_process(w) & WATCH_CHANGED, 0);
	assert_false(watched(w, "var/tmp/x"));

	/* a file */
	touch("root/a/f");
	assert_true(watch_process(w) & WATCH_CHANGED);

	/* mkdir -p with files, all before we read the events */
	mkpath("root/n1/n2/n3/n4");
	touch("root/n1/n2/n3/n4/f");
	assert_true(watch_process(w) & WATCH_CHANGED);
	assert_true(watched(w, "n1/n2/n3/n4"));
	/* ... and a change deep inside is seen */
	touch("root/n1/n2/n3/n4/g");
	assert_true(watch_process(w) & WATCH_CHANGED);

	/* rename a directory: the subtree is watched under its new name */
	ren("root/n1", "root/m1");
	assert_true(watch_process(w) & WATCH_CHANGED);
	assert_true(watched(w, "m1/n2/n3/n4"));
	assert_false(watched(w, "n1"));
	touch("root/m1/n2/n3/n4/h");
	assert_true(watch_process(w) & WATCH_CHANGED);

	/* moved into an excluded place: no longer watched, and a change there
	 * is no change */
	ren("root/m1", "root/var/cache/m1");
	assert_true(watch_process(w) & WATCH_CHANGED);
	assert_false(watched(w, "var/cache/m1"));
	assert_int_equal(watch_count(w), 5); /* root, a, a/b, var, var/log */

	/* moved out of the tree and back in */
	{
		char out[PATH_MAX];
		char in[PATH_MAX];

		mkpath("outside/o1/o2");
		snprintf(out, sizeof(out), "%s/outside/o1", test_dir);
		snprintf(in, sizeof(in), "%s/root/a/o1", test_dir);
		assert_int_equal(rename(out, in), 0);
		assert_true(watch_process(w) & WATCH_CHANGED);
		assert_true(watched(w, "a/o1/o2"));
		assert_int_equal(rename(in, out), 0);
		assert_true(watch_process(w) & WATCH_CHANGED);
		assert_false(watched(w, "a/o1"));
		touch("outside/o1/o2/f"); /* no longer ours */
		assert_int_equal(watch_process(w) & WATCH_CHANGED, 0);
	}

	/* deletion */
	{
		char d[PATH_MAX];

		snprintf(d, sizeof(d), "%s/root/a/b", test_dir);
		assert_int_equal(rmdir(d), 0);
	}
	assert_true(watch_process(w) & WATCH_CHANGED);
	watch_process(w); /* IN_IGNORED */
	assert_false(watched(w, "a/b"));
	watch_close(w);
}

/* A small file's content (malloc'd, NUL-terminated). */
static char *
slurp(const char *path)
{
	FILE  *f = fopen(path, "r");
	char  *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_watch_overflow(void **state)
{
	WatchTable *w;
	char        rel[64];
	long        maxq = 16384;
	FILE       *f;
	int         i;
	int         n;

	char  sysctl[PATH_MAX], logpath[PATH_MAX], want[128];
	char *logged;
	int   saved, fd, flags;

	(void) state;
	mkpath("root/burst");
	f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	if (f)
	{
		if (fscanf(f, "%ld", &maxq) != 1)
			maxq = 16384;
		fclose(f);
	}
	/*
	 * The queue gets the sysctl's value when the watch opens; someone then
	 * changes the sysctl (a stand-in file here: the tests cannot write
	 * /proc/sys).  The warning must name this queue's limit, not the new
	 * value.
	 */
	snprintf(sysctl, sizeof(sysctl), "%s/max_queued_events", test_dir);
	f = fopen(sysctl, "w");
	assert_non_null(f);
	fprintf(f, "%ld\n", maxq);
	fclose(f);
	queued_events_path = sysctl;
	w = open_watch(0);
	queued_events_path = "/proc/sys/fs/inotify/max_queued_events";
	f = fopen(sysctl, "w");
	assert_non_null(f);
	fprintf(f, "%ld\n", maxq * 4 + 7);
	fclose(f);
	/* two events per file (create, close-write) and nobody reading */
	n = (int) (maxq / 2 + 500);
	if (n > 200000)
		skip();
	for (i = 0; i < n; i++)
	{
		snprintf(rel, sizeof(rel), "root/burst/f%d", i);
		touch(rel);
	}
	/* a directory created while events are being lost */
	mkpath("root/burst/late/later");
	snprintf(logpath, sizeof(logpath), "%s/overflow.log", test_dir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	flags = watch_process(w);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(flags & (WATCH_CHANGED | WATCH_OVERFLOW), WATCH_CHANGED | WATCH_OVERFLOW);
	logged = slurp(logpath);
	snprintf(want, sizeof(want), "more than %ld events were pending, the limit of this watcher's",
	         maxq);
	if (strstr(logged, want) == NULL)
		fail_msg("the overflow warning does not name the queue's limit %ld: %s", maxq, logged);
	free(logged);
	/* the rescan found it */
	assert_true(watched(w, "burst/late/later"));
	touch("root/burst/late/later/f");
	assert_true(watch_process(w) & WATCH_CHANGED);
	watch_close(w);
}

static void
test_watch_limit(void **state)
{
	WatchTable *w;

	(void) state;
	mkpath("root/d1");
	mkpath("root/d2");
	w = open_watch(3); /* root, d1, d2: full */
	assert_false(watch_degraded(w));
	mkpath("root/d3");
	assert_true(watch_process(w) & WATCH_CHANGED);
	assert_true(watch_degraded(w));
	assert_false(watched(w, "d3"));
	/* the limit is raised: a rescan picks the directory up */
	w->max_watches = 0;
	assert_true(watch_rescan(w) & WATCH_CHANGED);
	assert_false(watch_degraded(w));
	assert_true(watched(w, "d3"));
	watch_close(w);
}

static void
test_watch_root_missing(void **state)
{
	char        root[PATH_MAX];
	char       *roots[1];
	WatchTable *w;
	PgbkError   err;

	(void) state;
	snprintf(root, sizeof(root), "%s/nope", test_dir);
	roots[0] = root;
	assert_int_equal(watch_open(roots, 1, NULL, 0, 0, &w, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, root));
	/* a symbolic link as a root: restic would back up the link */
	mkpath("real");
	{
		char real[PATH_MAX];

		snprintf(real, sizeof(real), "%s/real", test_dir);
		assert_int_equal(symlink(real, root), 0);
	}
	assert_int_equal(watch_open(roots, 1, NULL, 0, 0, &w, &err), PGBK_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "symbolic link"));
}

/* ----------------------------------------------------------------------
 * timers.c: the event loop's timers
 * ---------------------------------------------------------------------- */

typedef struct FireLog
{
	Timers *t;
	char    order[32]; /* one letter per callback run, in order */
	int     n;
	TimerId other; /* what the callback cancels, sets or adds */
	int64_t again; /* what the callback returns */
} FireLog;

static void
fire_note(FireLog *fl, char c)
{
	fl->order[fl->n++] = c;
	fl->order[fl->n] = '\0';
}

static int64_t
cb_a(int64_t now, void *arg)
{
	(void) now;
	fire_note(arg, 'a');
	return TIMER_DONE;
}

static int64_t
cb_b(int64_t now, void *arg)
{
	(void) now;
	fire_note(arg, 'b');
	return TIMER_DONE;
}

static int64_t
cb_periodic(int64_t now, void *arg)
{
	FireLog *fl = arg;

	(void) now;
	fire_note(fl, 'p');
	return fl->again;
}

/* cancels fl->other, then adds a timer already due (for the next pass) */
static int64_t
cb_cancel_and_add(int64_t now, void *arg)
{
	FireLog *fl = arg;

	fire_note(fl, 'c');
	timers_cancel(fl->t, fl->other);
	fl->other = timers_add(fl->t, now - 5, cb_a, fl);
	return TIMER_DONE;
}

/* moves itself: the move stands, whatever it returns */
static int64_t
cb_move_self(int64_t now, void *arg)
{
	FireLog *fl = arg;

	fire_note(fl, 'm');
	timers_set(fl->t, &fl->other, now + 100, cb_move_self, fl);
	return 7;
}

static void
test_timers_deadlines(void **state)
{
	Timers  t;
	TimerId a, b, c, none = 0;
	int64_t t0 = timers_now();
	int64_t t1;

	(void) state;
	timers_init(&t);
	assert_true(t0 > 0);
	assert_int_equal(timers_next(&t), TIMERS_NEVER);
	assert_int_equal(timers_timeout(&t, 1000), -1);
	assert_int_equal(timers_fire(&t, 1000), 0);

	a = timers_add(&t, 5000, NULL, NULL);
	b = timers_add(&t, 3000, NULL, NULL);
	c = timers_add(&t, 4000, NULL, NULL);
	assert_true(a != 0 && b != 0 && c != 0 && a != b && b != c && a != c);
	assert_int_equal(timers_add(&t, TIMERS_NEVER, NULL, NULL), 0);
	assert_int_equal(timers_next(&t), 3000);
	assert_int_equal(timers_when(&t, c), 4000);
	assert_int_equal(timers_timeout(&t, 1000), 2000);
	assert_int_equal(timers_timeout(&t, 3000), 0);
	assert_int_equal(timers_timeout(&t, 9000), 0);

	/* cancel: the next deadline moves on; a second cancel finds nothing */
	assert_true(timers_cancel(&t, b));
	assert_false(timers_cancel(&t, b));
	assert_false(timers_cancel(&t, 0));
	assert_int_equal(timers_when(&t, b), TIMERS_NEVER);
	assert_int_equal(timers_next(&t), 4000);

	/* set: moves a pending timer in place, adds a missing one, NEVER cancels */
	assert_true(timers_set(&t, &c, 6000, NULL, NULL));
	assert_int_equal(timers_when(&t, c), 6000);
	assert_int_equal(timers_next(&t), 5000);
	assert_true(timers_set(&t, &none, 2500, NULL, NULL));
	assert_true(none != 0 && none != a && none != c);
	assert_int_equal(timers_next(&t), 2500);
	assert_true(timers_set(&t, &none, TIMERS_NEVER, NULL, NULL));
	assert_int_equal(none, 0);
	assert_int_equal(timers_next(&t), 5000);
	assert_true(timers_set(&t, &none, TIMERS_NEVER, NULL, NULL)); /* nothing to cancel */

	/* wake-only timers fire once and are gone */
	assert_int_equal(timers_fire(&t, 4999), 0);
	assert_int_equal(timers_fire(&t, 5000), 1);
	assert_int_equal(timers_when(&t, a), TIMERS_NEVER);
	assert_int_equal(timers_fire(&t, 5000), 0);
	assert_int_equal(timers_fire(&t, 7000), 1);
	assert_int_equal(timers_timeout(&t, 7000), -1);

	/* a far deadline: poll's int timeout is clamped, never negative */
	timers_add(&t, (int64_t) INT_MAX * 4, NULL, NULL);
	assert_int_equal(timers_timeout(&t, 0), INT_MAX);

	/* the clock is monotonic, in milliseconds */
	t1 = timers_now();
	assert_true(t1 >= t0 && t1 - t0 < 60000);
}

static void
test_timers_fire(void **state)
{
	Timers  t;
	FireLog fl = {0};
	TimerId p, c, m;

	(void) state;
	timers_init(&t);
	fl.t = &t;

	/* earliest deadline first, then the order of adding */
	timers_add(&t, 30, cb_b, &fl);
	timers_add(&t, 10, cb_a, &fl);
	timers_add(&t, 30, cb_a, &fl);
	timers_add(&t, 20, cb_b, &fl);
	timers_add(&t, 40, cb_a, &fl);
	assert_int_equal(timers_fire(&t, 30), 4);
	assert_string_equal(fl.order, "abba");
	assert_int_equal(timers_next(&t), 40);
	assert_int_equal(timers_fire(&t, 100), 1);
	assert_string_equal(fl.order, "abbaa");

	/* periodic: re-armed at now + the delay, once per pass even with 0 */
	fl.n = 0;
	fl.again = 50;
	p = timers_add(&t, 100, cb_periodic, &fl);
	assert_int_equal(timers_fire(&t, 120), 1);
	assert_int_equal(timers_when(&t, p), 170);
	fl.again = 0;
	assert_int_equal(timers_fire(&t, 170), 1);
	assert_int_equal(timers_when(&t, p), 170);
	assert_int_equal(timers_timeout(&t, 170), 0);
	fl.again = TIMER_DONE;
	assert_int_equal(timers_fire(&t, 171), 1);
	assert_int_equal(timers_when(&t, p), TIMERS_NEVER);
	assert_string_equal(fl.order, "ppp");

	/*
	 * A callback cancels a timer due in the same pass (it does not fire) and
	 * adds one already due (it waits for the next pass).
	 */
	fl.n = 0;
	fl.order[0] = '\0';
	c = timers_add(&t, 200, cb_cancel_and_add, &fl);
	fl.other = timers_add(&t, 210, cb_b, &fl);
	assert_true(c != 0);
	assert_int_equal(timers_fire(&t, 300), 1);
	assert_string_equal(fl.order, "c");
	assert_int_equal(timers_when(&t, fl.other), 295);
	assert_int_equal(timers_fire(&t, 300), 1);
	assert_string_equal(fl.order, "ca");
	assert_int_equal(timers_next(&t), TIMERS_NEVER);

	/* a callback that moves its own timer: the move wins over its return value */
	fl.n = 0;
	fl.other = 0;
	assert_true(timers_set(&t, &fl.other, 400, cb_move_self, &fl));
	m = fl.other;
	assert_int_equal(timers_fire(&t, 400), 1);
	assert_int_equal(fl.other, m);
	assert_int_equal(timers_when(&t, m), 500);
	assert_string_equal(fl.order, "m");
	assert_true(timers_cancel(&t, m));
}

static void
test_timers_full(void **state)
{
	Timers  t;
	TimerId id = 0;
	TimerId first = 0;
	int     i;

	(void) state;
	timers_init(&t);
	for (i = 0; i < TIMERS_MAX; i++)
	{
		TimerId x = timers_add(&t, 1000 + i, NULL, NULL);

		assert_true(x != 0);
		if (i == 0)
			first = x;
	}
	assert_int_equal(timers_add(&t, 5, NULL, NULL), 0);
	assert_false(timers_set(&t, &id, 5, NULL, NULL));
	assert_int_equal(id, 0);
	/* room again after a cancel; ids are not reused */
	assert_true(timers_cancel(&t, first));
	assert_true(timers_set(&t, &id, 5, NULL, NULL));
	assert_true(id > first);
	assert_int_equal(timers_next(&t), 5);
	assert_int_equal(timers_fire(&t, 2000), TIMERS_MAX);
	assert_int_equal(timers_next(&t), TIMERS_NEVER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debounce_settle_and_max_wait),
	    cmocka_unit_test(test_debounce_request_and_failures),
	    cmocka_unit_test(test_debounce_degraded),
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test_setup_teardown(test_one_reader, setup_dir, teardown_dir),
	    cmocka_unit_test(test_restic_duration),
	    cmocka_unit_test(test_excluded),
	    cmocka_unit_test(test_spool_codec),
	    cmocka_unit_test_setup_teardown(test_spool_files, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_watch_tree, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_watch_overflow, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_watch_limit, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_watch_root_missing, setup_dir, teardown_dir),
	    cmocka_unit_test(test_timers_deadlines),
	    cmocka_unit_test(test_timers_fire),
	    cmocka_unit_test(test_timers_full),
	};

	log_init(false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
