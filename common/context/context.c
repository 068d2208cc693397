/*
 * context.c
 *	  Room context; uses config, repo and format (codec, keys).
 *	  Opening and closing the repository context (see context.h): the one
 *	  place where pgbk.conf, the key ring, the repository handle and the codec
 *	  parameters are put together.
 */
#include "context/context.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void
file_stamp(const char *path, PgbkFileStamp *fs)
{
	struct stat st;

	memset(fs, 0, sizeof(*fs));
	if (path == NULL || stat(path, &st) != 0)
		return;
	fs->exists = true;
	fs->dev = st.st_dev;
	fs->ino = st.st_ino;
	fs->size = st.st_size;
	fs->mtime = st.st_mtim.tv_sec;
	fs->mtime_ns = st.st_mtim.tv_nsec;
}

static bool
stamp_changed(const char *path, const PgbkFileStamp *old)
{
	PgbkFileStamp now;

	file_stamp(path, &now);
	return now.exists != old->exists || now.dev != old->dev || now.ino != old->ino ||
	       now.size != old->size || now.mtime != old->mtime || now.mtime_ns != old->mtime_ns;
}

PgbkStatus
pgbk_repo_context_open(const PgbkRepoContextOptions *opts, PgbkRepoContext *ctx, PgbkError *err)
{
	PgbkStatus st;

	memset(ctx, 0, sizeof(*ctx));
	if ((st = pgbk_crypto_init(err)) != PGBK_OK)
		return st;
	if (opts->config_path == NULL || opts->config_path[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "no configuration file given");
	if ((ctx->config_path = strdup(opts->config_path)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	file_stamp(ctx->config_path, &ctx->stamp_config);
	if ((st = config_load(ctx->config_path, &ctx->cfg, err)) != PGBK_OK)
		goto fail;
	file_stamp(ctx->cfg->key_file, &ctx->stamp_key);
	file_stamp(ctx->cfg->s3_credentials_file, &ctx->stamp_cred);
	if (opts->need_keys && (st = keyring_load(ctx->cfg->key_file, &ctx->ring, err)) != PGBK_OK)
		goto fail;
	if (opts->need_repo && (st = pgbk_repo_context_open_repo(ctx, err)) != PGBK_OK)
		goto fail;
	ctx->params.compression = ctx->cfg->compression;
	ctx->params.level = ctx->cfg->compression_level;
	ctx->params.keyring = ctx->ring;
	ctx->params.encrypt = ctx->cfg->encryption;
	return PGBK_OK;

fail:
	pgbk_repo_context_close(ctx);
	return st;
}

PgbkStatus
pgbk_repo_context_open_repo(PgbkRepoContext *ctx, PgbkError *err)
{
	if (ctx->repo != NULL)
		return PGBK_OK;
	if (ctx->cfg == NULL)
		return pgbk_error(err, PGBK_ERR, "the repository context has no configuration");
	return repo_open(ctx->cfg, &ctx->repo, err);
}

bool
pgbk_repo_context_changed(const PgbkRepoContext *ctx)
{
	if (ctx->cfg == NULL)
		return true;
	return stamp_changed(ctx->config_path, &ctx->stamp_config) ||
	       stamp_changed(ctx->cfg->key_file, &ctx->stamp_key) ||
	       stamp_changed(ctx->cfg->s3_credentials_file, &ctx->stamp_cred);
}

void
pgbk_repo_context_close(PgbkRepoContext *ctx)
{
	if (ctx == NULL)
		return;
	repo_close(ctx->repo);
	keyring_free(ctx->ring);
	config_free(ctx->cfg);
	free(ctx->config_path);
	memset(ctx, 0, sizeof(*ctx));
}
