/*
 * backend.c
 *	  Program pgbk.so; uses the backend (latches, interrupts, ereport) and common/context.
 *	  Glue between the plain-C modules (common/) and a PostgreSQL backend
 *	  process: interrupt and sleep hooks, the per-process repository context
 *	  loaded from pgbk.config, and ereport() of PgbkError values.
 *
 * The context (configuration, repository handle with its open connection,
 * key ring, codec parameters) is opened by common/context, as the CLI and
 * the watcher open theirs; what is the backend's own is its lifetime: it is
 * expensive to build and is kept for the life of the process, and rebuilt
 * when pgbk.config names another file or when that file, the key file or
 * the credentials file changes on disk (pgbk_repo_context_changed).
 */
#include "pgbk.h"

#include <pthread.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

/* malloc'd, kept for the life of the process (or until a file changes) */
static PgbkContext *context = NULL;
/* their buffers are reused across WAL files; [1] prepares ahead (uploader.c) */
static WalPusher context_pushers[2];

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

static pthread_t main_thread;

static void
backend_log(int level, const char *msg)
{
	int elevel = level >= PGBK_LOG_WARNING ? WARNING : (level == PGBK_LOG_INFO ? LOG : DEBUG1);

	/*
	 * ereport is for the process's own thread only.  An uploader's helper
	 * thread (uploader.c) writes to stderr, which the server log collects.
	 */
	if (!pthread_equal(pthread_self(), main_thread))
	{
		if (level >= PGBK_LOG_INFO)
			fprintf(stderr, "%s:  pgbk: %s\n", level >= PGBK_LOG_WARNING ? "WARNING" : "LOG", msg);
		return;
	}
	ereport(elevel, (errmsg_internal("pgbk: %s", msg)));
}

void
pgbk_install_hooks(void)
{
	main_thread = pthread_self();
	pgbk_hooks.interrupted = backend_interrupted;
	pgbk_hooks.sleep_ms = backend_sleep_ms;
	pgbk_hooks.log = backend_log;
}

void
pgbk_context_reset(void)
{
	if (context == NULL)
		return;
	walpush_free(&context_pushers[0]);
	walpush_free(&context_pushers[1]);
	pgbk_repo_context_close(context);
	free(context);
	context = NULL;
}

uint64 pgbk_context_generation = 0;

PgbkContext *
pgbk_context(PgbkError *err)
{
	PgbkRepoContextOptions opts = {0};
	PgbkContext           *ctx;

	if (pgbk_config_path == NULL || pgbk_config_path[0] == '\0')
	{
		pgbk_context_reset();
		pgbk_error(err, PGBK_ERR_CONFIG, "pgbk.config is not set");
		pgbk_error_hint(err, "Set pgbk.config in postgresql.conf to the path of pgbk.conf.");
		return NULL;
	}

	if (context != NULL)
	{
		if (strcmp(context->config_path, pgbk_config_path) == 0 &&
		    !pgbk_repo_context_changed(context))
			return context;
		pgbk_context_reset();
	}

	/* every object is authenticated with the key: always loaded */
	opts.config_path = pgbk_config_path;
	opts.need_keys = true;
	opts.need_repo = true;
	ctx = malloc(sizeof(PgbkContext));
	if (ctx == NULL)
	{
		pgbk_error(err, PGBK_ERR, "out of memory");
		return NULL;
	}
	if (pgbk_repo_context_open(&opts, ctx, err) != PGBK_OK)
	{
		free(ctx);
		return NULL;
	}
	walpush_init(&context_pushers[0], ctx->repo, &ctx->params);
	walpush_init(&context_pushers[1], ctx->repo, &ctx->params);
	/* one repository: its descriptor is read once for both */
	walpush_share_check(&context_pushers[1], &context_pushers[0]);
	context = ctx;
	pgbk_context_generation++;
	return context;
}

WalPusher *
pgbk_context_pusher(void)
{
	return context != NULL ? &context_pushers[0] : NULL;
}

WalPusher *
pgbk_context_pusher_ahead(void)
{
	return context != NULL ? &context_pushers[1] : NULL;
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
