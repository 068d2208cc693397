/*
 * itest_repo.c
 *	  Test helper: direct access to repository objects through the Repo
 *	  interface, for TAP tests that must damage a repository (local or S3)
 *	  the way a faulty disk or a careless operator would.
 *
 *	  itest_repo PGBK_CONF list PREFIX          print "key size" lines
 *	  itest_repo PGBK_CONF delete KEY
 *	  itest_repo PGBK_CONF flip KEY OFFSET      flip one bit of byte OFFSET
 *	                                            (modulo the object's size)
 *	  itest_repo PGBK_CONF truncate KEY BYTES   cut BYTES off the end
 *	  itest_repo PGBK_CONF copy FROM TO         overwrite TO with FROM's bytes
 *
 *	Keys are relative to the repository root (layout.h).  Exit 0 on
 *	success, 1 with a message otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keys.h"
#include "repo.h"

static PgbkStatus
print_key(void *ctx, const RepoObjectInfo *info, PgbkError *err)
{
	(void) ctx;
	(void) err;
	printf("%s %llu\n", info->key, (unsigned long long) info->size);
	return PGBK_OK;
}

static int
fail(const PgbkError *err)
{
	fprintf(stderr, "itest_repo: %s\n", err->msg);
	return 1;
}

int
main(int argc, char **argv)
{
	PgbkConfig    *cfg;
	Repo          *repo;
	PgbkError      err;
	PgbkBuf        buf;
	RepoPutOptions opts;
	const char    *op;

	if (argc < 4)
	{
		fprintf(stderr, "usage: itest_repo PGBK_CONF list|delete|flip|truncate|copy ARGS\n");
		return 2;
	}
	pgbk_error_clear(&err);
	if (pgbk_crypto_init(&err) != PGBK_OK || config_load(argv[1], &cfg, &err) != PGBK_OK ||
	    repo_open(cfg, &repo, &err) != PGBK_OK)
		return fail(&err);
	op = argv[2];
	memset(&opts, 0, sizeof(opts));
	pgbk_buf_init(&buf);
	if (strcmp(op, "list") == 0)
	{
		if (repo_list(repo, argv[3], NULL, print_key, NULL, &err) != PGBK_OK)
			return fail(&err);
	}
	else if (strcmp(op, "delete") == 0)
	{
		if (repo_delete(repo, argv[3], &err) != PGBK_OK)
			return fail(&err);
	}
	else if ((strcmp(op, "flip") == 0 || strcmp(op, "truncate") == 0) && argc == 5)
	{
		unsigned long n = strtoul(argv[4], NULL, 10);

		if (repo_get(repo, argv[3], &buf, &err) != PGBK_OK)
			return fail(&err);
		if (buf.len == 0)
		{
			fprintf(stderr, "itest_repo: \"%s\" is empty\n", argv[3]);
			return 1;
		}
		if (strcmp(op, "flip") == 0)
			buf.data[n % buf.len] ^= 0x01;
		else
			buf.len = n < buf.len ? buf.len - n : 0;
		if (repo_put(repo, argv[3], buf.data, buf.len, &opts, &err) != PGBK_OK)
			return fail(&err);
	}
	else if (strcmp(op, "copy") == 0 && argc == 5)
	{
		if (repo_get(repo, argv[3], &buf, &err) != PGBK_OK ||
		    repo_put(repo, argv[4], buf.data, buf.len, &opts, &err) != PGBK_OK)
			return fail(&err);
	}
	else
	{
		fprintf(stderr, "itest_repo: unknown operation \"%s\"\n", op);
		return 2;
	}
	pgbk_buf_free(&buf);
	repo_close(repo);
	config_free(cfg);
	return 0;
}
