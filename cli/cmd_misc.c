/*
 * cmd_misc.c
 *	  Program pgbk; uses cli.h, common/ repo and format (keys, codec, layout) and
 *	  libsodium.
 *	  pgbk keygen (a new key file, never over an existing one) and pgbk check
 *	  (the repository is reachable and accepts a write, a refused overwrite,
 *	  a read and a delete).
 */
#include "cli.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "format/layout.h"

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
	fprintf(out, "Usage: pgbk check [--config FILE] [--read-only]\n"
	             "\n"
	             "Read the configuration, the key file and the credentials, and check that the\n"
	             "repository is reachable and accepts us: write a small test object with the\n"
	             "configured compression and encryption, check that a second write of the same\n"
	             "name is refused (pgbk never overwrites), read it back and decrypt it, delete\n"
	             "it.  Prints a summary.\n"
	             "\n"
	             "  --read-only   only list and read (credentials meant for restores)\n");
}

/*
 * The write round trip of `pgbk check`: everything archiving and expiry will
 * ask of the repository, on one object that is removed again.  Returns an
 * exit code; prints one line per step.
 */
static int
check_write(CliContext *ctx)
{
	static const char content[] = "pgbk check: this object is removed at once\n";
	RepoPutOptions    opts = {.no_overwrite = true};
	unsigned char     rnd[8], hash[CODEC_HASH_BYTES];
	char              hex[17], key[64];
	const char       *test_key = key;
	PgbkBuf           enc, back;
	CodecHeader       hdr;
	PgbkError         err;
	PgbkStatus        st;
	int               rc = EXIT_OK;

	randombytes_buf(rnd, sizeof(rnd));
	pgbk_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), LAYOUT_CHECK_PREFIX "%s", hex);
	pgbk_buf_init(&enc);
	pgbk_buf_init(&back);
	pgbk_error_clear(&err);
	if (codec_encode(&ctx->params, content, sizeof(content) - 1, "kind=check\n", &enc, hash,
	                 &err) != PGBK_OK)
	{
		rc = cli_fail(&err, "check");
		goto done;
	}
	if (repo_put(ctx->repo, key, enc.data, enc.len, &opts, &err) != PGBK_OK)
	{
		rc = cli_fail(&err, "check: the repository does not accept writes (archiving and base "
		                    "backups will fail)");
		goto done;
	}
	st = repo_put(ctx->repo, key, enc.data, enc.len, &opts, &err);
	if (st == PGBK_OK)
	{
		cli_error("check: the repository accepted a second write of \"%s\": pgbk cannot refuse "
		          "to overwrite here",
		          key);
		rc = EXIT_FAIL;
	}
	else if (st != PGBK_EXISTS)
		rc = cli_fail(&err, "check: a second write of the test object failed");
	if (rc == EXIT_OK)
	{
		pgbk_error_clear(&err);
		if (repo_get(ctx->repo, key, &back, &err) != PGBK_OK)
			rc = cli_fail(&err, "check: the test object cannot be read back");
		else
		{
			PgbkBuf raw;

			pgbk_buf_init(&raw);
			if (codec_decode(ctx->ring, back.data, back.len, CODEC_LIMIT_SMALL, &raw, &hdr, &err) !=
			    PGBK_OK)
				rc = cli_fail(&err, "check: the test object cannot be decoded");
			else if (raw.len != sizeof(content) - 1 || memcmp(raw.data, content, raw.len) != 0)
			{
				cli_error("check: the test object read back differs from what was written");
				rc = EXIT_INTEGRITY;
			}
			pgbk_buf_free(&raw);
		}
	}
	if (rc == EXIT_OK)
	{
		printf("write:       ok (wrote, read back and decoded a test object)\n");
		printf("overwrite:   %s\n", repo_overwrite_guard(ctx->repo));
	}
	pgbk_error_clear(&err);
	if (repo_delete(ctx->repo, &test_key, 1, &err) != PGBK_OK)
	{
		int drc = cli_fail(&err, "check: the repository refuses deletes, so bk_expire cannot "
		                         "remove what is past its depth (fine only if the bucket's own "
		                         "lifecycle rules do that); the test object is left behind");

		if (rc == EXIT_OK)
			rc = drc;
	}
	else if (rc == EXIT_OK)
		printf("delete:      ok\n");
done:
	pgbk_buf_free(&enc);
	pgbk_buf_free(&back);
	return rc;
}

int
cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"read-only", no_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	const char                *config = NULL;
	bool                       read_only = false;
	CliContext                 ctx;
	PgbkError                  err;
	int                        c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1)
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
			case 'r':
				read_only = true;
				break;
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
		if (read_only)
			printf("write:       not checked (--read-only)\n");
		else
			rc = check_write(&ctx);
	}
	cli_close(&ctx);
	return rc;
}
