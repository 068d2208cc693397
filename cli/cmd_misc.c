/*
 * cmd_misc.c
 *	  pgbk keygen and pgbk check.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const struct option common_opts[] = {{"config", required_argument, NULL, 'c'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};

static void
keygen_usage(FILE *out)
{
	fprintf(out, "Usage: pgbk keygen FILE\n"
	             "\n"
	             "Write a new key file (one random 256-bit key, mode 0600).  Refuses to\n"
	             "overwrite an existing file.  To rotate keys, put a new key line on top of\n"
	             "the old key file: the first key encrypts, every key listed decrypts.\n");
}

int
cmd_keygen(int argc, char **argv)
{
	PgbkError err;
	int       c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", common_opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				keygen_usage(stdout);
				return EXIT_OK;
			default:
				keygen_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
	{
		keygen_usage(stderr);
		return EXIT_USAGE;
	}
	pgbk_error_clear(&err);
	if (pgbk_crypto_init(&err) != PGBK_OK)
		return cli_fail(&err, NULL);
	if (keyring_generate_file(argv[optind], &err) != PGBK_OK)
		return cli_fail(&err, "keygen");
	cli_info("wrote new key file \"%s\" (mode 0600); keep a copy somewhere safe: without it the "
	         "backups cannot be read",
	         argv[optind]);
	return EXIT_OK;
}

static void
check_usage(FILE *out)
{
	fprintf(out, "Usage: pgbk check [--config FILE]\n"
	             "\n"
	             "Read the configuration, the key file and the credentials, and check that the\n"
	             "repository is reachable and accepts us.  Prints a summary.\n");
}

int
cmd_check(int argc, char **argv)
{
	const char *config = NULL;
	CliContext  ctx;
	PgbkError   err;
	int         c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", common_opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config = optarg;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				check_usage(stdout);
				return EXIT_OK;
			default:
				check_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (argc != optind)
	{
		check_usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = cli_open(&ctx, config)) != EXIT_OK)
		return rc;
	pgbk_error_clear(&err);
	if (repo_check(ctx.repo, &err) != PGBK_OK)
		rc = cli_fail(&err, "check");
	else
	{
		printf("repository:  %s (reachable)\n", repo_describe(ctx.repo));
		printf("encryption:  %s", ctx.cfg->encryption ? "on" : "off");
		if (ctx.ring)
			printf(" (%d key%s, writing with key id %08x)", ctx.ring->nkeys,
			       ctx.ring->nkeys == 1 ? "" : "s", ctx.ring->keys[0].id);
		printf("\ncompression: %s", ctx.cfg->compression == PGBK_COMPRESS_ZSTD ? "zstd" : "none");
		if (ctx.cfg->compression == PGBK_COMPRESS_ZSTD)
			printf(" level %d", ctx.cfg->compression_level);
		printf("\n");
	}
	cli_close(&ctx);
	return rc;
}
