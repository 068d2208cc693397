/*
 * backend.c
 *	  Glue between the plain-C modules (common/) and a PostgreSQL backend
 *	  process: interrupt and sleep hooks, the per-process repository context
 *	  loaded from pgbk.config, and ereport() of PgbkError values.
 *
 * The context (configuration, repository handle with its open connection,
 * key ring) is expensive to build and is kept for the life of the process.
 * It is rebuilt when pgbk.config names another file or when that file, the
 * key file or the credentials file changes on disk (checked with stat(),
 * which is cheap next to an upload).
 */
#include "pgbk.h"

#include <sys/stat.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

static PgbkContext *context = NULL;
static char        *context_path = NULL;

/* identity of the files the context was built from */
typedef struct FileStamp
{
	bool   exists;
	dev_t  dev;
	ino_t  ino;
	off_t  size;
	time_t mtime;
	long   mtime_ns;
} FileStamp;

static FileStamp stamp_config, stamp_key, stamp_cred;

static void
file_stamp(const char *path, FileStamp *fs)
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
stamp_changed(const char *path, const FileStamp *old)
{
	FileStamp now;

	file_stamp(path, &now);
	return memcmp(&now, old, sizeof(now)) != 0;
}

static bool
backend_interrupted(void)
{
	return ProcDiePending || ShutdownRequestPending || QueryCancelPending;
}

static void
backend_sleep_ms(int ms)
{
	if (ms <= 0)
		return;
	if (MyLatch == NULL)
	{
		pg_usleep((long) ms * 1000L);
		return;
	}
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
	                 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

static void
backend_log(int level, const char *msg)
{
	int elevel = level >= PGBK_LOG_WARNING ? WARNING : (level == PGBK_LOG_INFO ? LOG : DEBUG1);

	ereport(elevel, (errmsg_internal("pgbk: %s", msg)));
}

void
pgbk_install_hooks(void)
{
	pgbk_hooks.interrupted = backend_interrupted;
	pgbk_hooks.sleep_ms = backend_sleep_ms;
	pgbk_hooks.log = backend_log;
}

static void
context_free(PgbkContext *ctx)
{
	if (ctx == NULL)
		return;
	walpush_free(&ctx->pusher);
	repo_close(ctx->repo);
	keyring_free(ctx->ring);
	config_free(ctx->cfg);
	free(ctx);
}

void
pgbk_context_reset(void)
{
	context_free(context);
	context = NULL;
	free(context_path);
	context_path = NULL;
}

uint64 pgbk_context_generation = 0;

PgbkContext *
pgbk_context(PgbkError *err)
{
	PgbkContext *ctx;
	PgbkStatus   st;

	if (pgbk_config_path == NULL || pgbk_config_path[0] == '\0')
	{
		pgbk_context_reset();
		pgbk_error(err, PGBK_ERR_CONFIG, "pgbk.config is not set");
		return NULL;
	}

	if (context != NULL)
	{
		if (strcmp(context_path, pgbk_config_path) == 0 &&
		    !stamp_changed(pgbk_config_path, &stamp_config) &&
		    !stamp_changed(context->cfg->key_file, &stamp_key) &&
		    !stamp_changed(context->cfg->s3_credentials_file, &stamp_cred))
			return context;
		pgbk_context_reset();
	}

	if ((st = pgbk_crypto_init(err)) != PGBK_OK)
		return NULL;
	ctx = calloc(1, sizeof(PgbkContext));
	if (ctx == NULL)
	{
		pgbk_error(err, PGBK_ERR, "out of memory");
		return NULL;
	}
	file_stamp(pgbk_config_path, &stamp_config);
	if ((st = config_load(pgbk_config_path, &ctx->cfg, err)) != PGBK_OK)
		goto fail;
	file_stamp(ctx->cfg->key_file, &stamp_key);
	file_stamp(ctx->cfg->s3_credentials_file, &stamp_cred);
	if ((st = keyring_load(ctx->cfg->key_file, &ctx->ring, err)) != PGBK_OK)
		goto fail;
	if ((st = repo_open(ctx->cfg, &ctx->repo, err)) != PGBK_OK)
		goto fail;
	ctx->params.compression = ctx->cfg->compression;
	ctx->params.level = ctx->cfg->compression_level;
	ctx->params.keyring = ctx->ring;
	ctx->params.encrypt = ctx->cfg->encryption;
	walpush_init(&ctx->pusher, ctx->repo, &ctx->params);
	context = ctx;
	pgbk_context_generation++;
	context_path = strdup(pgbk_config_path);
	if (context_path == NULL)
	{
		pgbk_context_reset();
		pgbk_error(err, PGBK_ERR, "out of memory");
		return NULL;
	}
	return context;

fail:
	context_free(ctx);
	return NULL;
}

int
pgbk_errcode(PgbkStatus code)
{
	switch (code)
	{
		case PGBK_OK:
			return ERRCODE_SUCCESSFUL_COMPLETION;
		case PGBK_NOT_FOUND:
			return ERRCODE_UNDEFINED_OBJECT;
		case PGBK_EXISTS:
			return ERRCODE_DUPLICATE_OBJECT;
		case PGBK_ERR_CONFIG:
			return ERRCODE_CONFIG_FILE_ERROR;
		case PGBK_ERR_AUTH:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case PGBK_ERR_NO_BUCKET:
			return ERRCODE_UNDEFINED_OBJECT;
		case PGBK_ERR_CONNECT:
		case PGBK_ERR_DNS:
		case PGBK_ERR_TLS:
			return ERRCODE_CONNECTION_FAILURE;
		case PGBK_ERR_SERVER:
			return ERRCODE_SYSTEM_ERROR;
		case PGBK_ERR_IO:
			return ERRCODE_IO_ERROR;
		case PGBK_ERR_INTEGRITY:
			return ERRCODE_DATA_CORRUPTED;
		case PGBK_ERR_KEY:
			return ERRCODE_INVALID_PASSWORD;
		case PGBK_ERR_FORMAT:
			return ERRCODE_DATA_CORRUPTED;
		case PGBK_ERR_INTERRUPTED:
			return ERRCODE_QUERY_CANCELED;
		case PGBK_ERR_USAGE:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case PGBK_ERR:
			break;
	}
	return ERRCODE_INTERNAL_ERROR;
}

void
pgbk_report_error(int elevel, const PgbkError *err, const char *context_msg)
{
	if (context_msg)
		ereport(elevel, (errcode(pgbk_errcode(err->code)), errmsg("%s: %s", context_msg, err->msg),
		                 err->detail[0] ? errdetail("%s", err->detail) : 0,
		                 err->hint[0] ? errhint("%s", err->hint) : 0));
	else
		ereport(elevel, (errcode(pgbk_errcode(err->code)), errmsg("%s", err->msg),
		                 err->detail[0] ? errdetail("%s", err->detail) : 0,
		                 err->hint[0] ? errhint("%s", err->hint) : 0));
}
