/*
 * itest_repo.c
 *	  Tests of room repo: a helper for the TAP tests; uses repo.h, format (codec, keys)
 *	  and config.
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
 *	  itest_repo PGBK_CONF forge-unkeyed KEY [CONTENT_FILE]
 *	        rewrite KEY as someone without the key would: its attributes (read
 *	        with the key) and its content (or CONTENT_FILE's) in a plain object
 *	        with only unkeyed checks, as pgbk before 1.1 wrote with
 *	        encryption off
 *	  itest_repo PGBK_CONF seal KEY CONTENT_FILE ATTRS
 *	        write KEY as a valid object (the configuration's key, encryption
 *	        and zstd) holding CONTENT_FILE's bytes, with ATTRS ("a=b,c=d"):
 *	        an authentic object whose content says something else
 *	  itest_repo PGBK_CONF bomb KEY MIB ATTRS
 *	        write KEY as a valid object (the configuration's key, encryption
 *	        and zstd) of MIB MiB of zero bytes, streamed (no size in its
 *	        header), with ATTRS ("a=b,c=d")
 *
 *	Keys are relative to the repository root (layout.h).  Exit 0 on
 *	success, 1 with a message otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "format/codec.h"
#include "config/config.h"
#include "format/keys.h"
#include "repo/repo.h"

static void
put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

/* One plain frame with the unkeyed check chain of the format before 1.1. */
static void
unkeyed_frame(PgbkBuf *out, unsigned char chain[16], unsigned char tag, const void *msg,
              size_t mlen)
{
	unsigned char len[4];
	size_t        start;

	put_le(len, 1 + mlen + 16, 4);
	pgbk_buf_append(out, len, 4);
	start = out->len;
	pgbk_buf_append(out, &tag, 1);
	pgbk_buf_append(out, msg, mlen);
	crypto_generichash(chain, 16, out->data + start, 1 + mlen, chain, 16);
	pgbk_buf_append(out, chain, 16);
}

static void
forge_unkeyed(const unsigned char *raw, size_t len, const char *attrs, PgbkBuf *out)
{
	unsigned char h[38 + CODEC_MAX_ATTRS + 16];
	unsigned char chain[16], trailer[24];
	size_t        alen = strlen(attrs), off;

	memset(h, 0, sizeof(h));
	memcpy(h, "PGBK", 4);
	h[4] = CODEC_FORMAT_VERSION;
	h[5] = PGBK_COMPRESS_NONE;
	put_le(h + 12, len, 8);
	codec_hash(raw, len, h + 20);
	put_le(h + 36, alen, 2);
	memcpy(h + 38, attrs, alen);
	crypto_generichash(h + 38 + alen, 16, h, 38 + alen, NULL, 0);
	memcpy(chain, h + 38 + alen, 16);
	pgbk_buf_append(out, h, 38 + alen + 16);
	for (off = 0; off < len; off += 256 * 1024)
		unkeyed_frame(out, chain, 0, raw + off, len - off < 256 * 1024 ? len - off : 256 * 1024);
	put_le(trailer, len, 8);
	codec_hash(raw, len, trailer + 8);
	unkeyed_frame(out, chain, 3, trailer, 24);
}

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
	PgbkKeyring   *ring = NULL;
	CodecParams    params;

	if (argc < 4)
	{
		fprintf(stderr, "usage: itest_repo PGBK_CONF list|delete|flip|truncate|copy|cat ARGS\n");
		return 2;
	}
	pgbk_error_clear(&err);
	if (pgbk_crypto_init(&err) != PGBK_OK || config_load(argv[1], &cfg, &err) != PGBK_OK ||
	    repo_open(cfg, &repo, &err) != PGBK_OK)
		return fail(&err);
	if (keyring_load(cfg->key_file, &ring, &err) != PGBK_OK)
		return fail(&err);
	memset(&params, 0, sizeof(params));
	params.compression = PGBK_COMPRESS_ZSTD;
	params.level = 3;
	params.keyring = ring;
	params.encrypt = cfg->encryption;
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
		if (repo_delete(repo, (const char *const *) &argv[3], 1, &err) != PGBK_OK)
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
	else if (strcmp(op, "cat") == 0 && argc == 4)
	{
		/* the decoded (verified) content of one object, e.g. a manifest's JSON */
		PgbkBuf raw;

		pgbk_buf_init(&raw);
		if (repo_get(repo, argv[3], &buf, &err) != PGBK_OK ||
		    codec_decode(ring, buf.data, buf.len, CODEC_LIMIT_WAL_MAX, &raw, NULL, &err) != PGBK_OK)
			return fail(&err);
		fwrite(raw.data, 1, raw.len, stdout);
		pgbk_buf_free(&raw);
	}
	else if (strcmp(op, "copy") == 0 && argc == 5)
	{
		if (repo_get(repo, argv[3], &buf, &err) != PGBK_OK ||
		    repo_put(repo, argv[4], buf.data, buf.len, &opts, &err) != PGBK_OK)
			return fail(&err);
	}
	else if (strcmp(op, "forge-unkeyed") == 0 && (argc == 4 || argc == 5))
	{
		PgbkBuf     raw, forged;
		CodecHeader hdr;

		pgbk_buf_init(&raw);
		pgbk_buf_init(&forged);
		if (repo_get(repo, argv[3], &buf, &err) != PGBK_OK ||
		    codec_decode(ring, buf.data, buf.len, CODEC_LIMIT_WAL_MAX, &raw, &hdr, &err) != PGBK_OK)
			return fail(&err);
		if (argc == 5)
		{
			pgbk_buf_reset(&raw);
			if (pgbk_read_file(argv[4], &raw, &err) != PGBK_OK)
				return fail(&err);
		}
		forge_unkeyed(raw.data, raw.len, hdr.attrs, &forged);
		if (repo_put(repo, argv[3], forged.data, forged.len, &opts, &err) != PGBK_OK)
			return fail(&err);
		pgbk_buf_free(&raw);
		pgbk_buf_free(&forged);
	}
	else if (strcmp(op, "seal") == 0 && argc == 6)
	{
		PgbkBuf content;
		char    attrs[CODEC_MAX_ATTRS];
		char   *c;

		snprintf(attrs, sizeof(attrs), "%s\n", argv[5]);
		for (c = attrs; *c; c++)
			if (*c == ',')
				*c = '\n';
		pgbk_buf_init(&content);
		if (pgbk_read_file(argv[4], &content, &err) != PGBK_OK ||
		    codec_encode(&params, content.data, content.len, attrs, &buf, NULL, &err) != PGBK_OK ||
		    repo_put(repo, argv[3], buf.data, buf.len, &opts, &err) != PGBK_OK)
			return fail(&err);
		pgbk_buf_free(&content);
	}
	else if (strcmp(op, "bomb") == 0 && argc == 6)
	{
		static unsigned char zeros[1 << 20];
		unsigned long        mib = strtoul(argv[4], NULL, 10), i;
		char                 attrs[CODEC_MAX_ATTRS];
		CodecEncoder        *enc;
		char                *c;

		snprintf(attrs, sizeof(attrs), "%s\n", argv[5]);
		for (c = attrs; *c; c++)
			if (*c == ',')
				*c = '\n';
		if (codec_encoder_begin(&params, attrs, &enc, &buf, &err) != PGBK_OK)
			return fail(&err);
		for (i = 0; i < mib; i++)
			if (codec_encoder_update(enc, zeros, sizeof(zeros), &buf, &err) != PGBK_OK)
				return fail(&err);
		if (codec_encoder_finish(enc, &buf, NULL, NULL, &err) != PGBK_OK ||
		    repo_put(repo, argv[3], buf.data, buf.len, &opts, &err) != PGBK_OK)
			return fail(&err);
		printf("%zu\n", buf.len);
	}
	else
	{
		fprintf(stderr, "itest_repo: unknown operation \"%s\"\n", op);
		return 2;
	}
	pgbk_buf_free(&buf);
	repo_close(repo);
	keyring_free(ring);
	config_free(cfg);
	return 0;
}
