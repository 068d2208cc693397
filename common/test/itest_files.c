/*
 * itest_files.c
 *	  Tests of room files: a driver for the TAP tests; uses files.c and config.
 *	  Integration test driver of files.c against real restic repositories:
 *	  the TAP tests (t/04x_watcher_*.pl) restore the watcher's snapshots with
 *	  it exactly the way `pgbk restore --files-to` does.
 *
 *	  itest_files find    OPTIONS (--id ID | --time T | --restore-point NAME)
 *	  itest_files restore OPTIONS (--id ID | --time T | --restore-point NAME) DIR
 *
 *	  OPTIONS: --config pgbk.conf, --password-file F, --repository R,
 *	  --restic BIN, --cache-dir D, --host H
 *
 * find prints "<full id> <time>"; restore prints the id it restored.  A
 * failure prints "error status=<name>: <message>" on stderr and exits 1.
 * T is RFC 3339 ("2026-11-27T03:09:54Z").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "files/files.h"

static int
fail(const PgbkError *err)
{
	fprintf(stderr, "error status=%s: %s\n", pgbk_status_name(err->code), err->msg);
	return 1;
}

static void
log_line(int level, const char *msg)
{
	fprintf(stderr, "log %d: %s\n", level, msg);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"password-file", required_argument, NULL, 'p'},
	    {"repository", required_argument, NULL, 'r'},
	    {"restic", required_argument, NULL, 'b'},
	    {"cache-dir", required_argument, NULL, 'd'},
	    {"host", required_argument, NULL, 'H'},
	    {"id", required_argument, NULL, 'i'},
	    {"time", required_argument, NULL, 't'},
	    {"restore-point", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	const char   *conf = NULL;
	const char   *id = NULL;
	const char   *time_s = NULL;
	const char   *rp = NULL;
	const char   *host = NULL;
	const char   *cmd;
	PgbkConfig   *cfg = NULL;
	FilesSettings fs;
	FilesRepo    *repo = NULL;
	FilesSnapshot snap;
	PgbkError     err;
	int64_t       target = INT64_MAX;
	int           c;
	int           rc = 0;

	pgbk_hooks.log = log_line;
	pgbk_error_clear(&err);
	memset(&fs, 0, sizeof(fs));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				conf = optarg;
				break;
			case 'p':
				fs.password_file = optarg;
				break;
			case 'r':
				fs.repository = optarg;
				break;
			case 'b':
				fs.restic_binary = optarg;
				break;
			case 'd':
				fs.cache_dir = optarg;
				break;
			case 'H':
				host = optarg;
				break;
			case 'i':
				id = optarg;
				break;
			case 't':
				time_s = optarg;
				break;
			case 'n':
				rp = optarg;
				break;
			default:
				return 2;
		}
	}
	if (optind >= argc)
	{
		fprintf(stderr, "usage: itest_files find|restore OPTIONS [DIR]\n");
		return 2;
	}
	cmd = argv[optind];
	if (time_s && !files_parse_time(time_s, &target))
	{
		fprintf(stderr, "bad time \"%s\"\n", time_s);
		return 2;
	}
	if (conf && config_load(conf, &cfg, &err) != PGBK_OK)
		return fail(&err);
	if (files_repo_open(cfg, &fs, &repo, &err) != PGBK_OK)
	{
		config_free(cfg);
		return fail(&err);
	}
	memset(&snap, 0, sizeof(snap));
	if (id == NULL)
	{
		if (files_find_snapshot(repo, host, target, rp, &snap, &err) != PGBK_OK)
		{
			rc = fail(&err);
			goto done;
		}
		id = snap.id;
	}
	if (strcmp(cmd, "find") == 0)
		printf("%s %s\n", id, snap.time ? snap.time : "");
	else if (strcmp(cmd, "restore") == 0 && optind + 1 < argc)
	{
		if (files_restore_repo(repo, id, argv[optind + 1], &err) != PGBK_OK)
			rc = fail(&err);
		else
			printf("%s\n", id);
	}
	else
	{
		fprintf(stderr, "usage: itest_files find|restore OPTIONS [DIR]\n");
		rc = 2;
	}
done:
	files_snapshot_free(&snap);
	files_repo_free(repo);
	config_free(cfg);
	return rc;
}
