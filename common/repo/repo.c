/*
 * repo.c
 *	  Room repo; uses base and config (which backend the configuration names).
 *	  Repository front: opens the backend named by the configuration and
 *	  dispatches every operation through its RepoOps table (repo_intern.h).
 *
 * Helpers that every backend would otherwise repeat (whole-object get into a
 * buffer, ranged get) are built here on the backend's streaming get.
 */
#include "repo/repo_intern.h"

#include <stdlib.h>
#include <string.h>

PgbkStatus
repo_open(const PgbkConfig *cfg, Repo **out, PgbkError *err)
{
	Repo      *repo;
	PgbkStatus st;

	*out = NULL;
	repo = calloc(1, sizeof(Repo));
	if (repo == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	switch (cfg->repo_kind)
	{
		case PGBK_REPO_LOCAL:
			st = repo_local_open(cfg, repo, err);
			break;
		case PGBK_REPO_S3:
			st = repo_s3_open(cfg, repo, err);
			break;
		default:
			st = pgbk_error(err, PGBK_ERR_CONFIG, "unknown repository kind %d",
			                (int) cfg->repo_kind);
			break;
	}
	if (st != PGBK_OK)
	{
		free(repo->description);
		free(repo);
		return st;
	}
	*out = repo;
	return PGBK_OK;
}

void
repo_close(Repo *repo)
{
	if (repo == NULL)
		return;
	if (repo->ops && repo->ops->close)
		repo->ops->close(repo);
	free(repo->description);
	free(repo);
}

const char *
repo_describe(const Repo *repo)
{
	return repo->description ? repo->description : "(repository)";
}

const char *
repo_overwrite_guard(Repo *repo)
{
	return repo->ops->overwrite_guard(repo);
}

PgbkStatus
repo_check(Repo *repo, PgbkError *err)
{
	return repo->ops->check(repo, err);
}

PgbkStatus
repo_put(Repo *repo, const char *key, const void *data, size_t len, const RepoPutOptions *opts,
         PgbkError *err)
{
	return repo->ops->put(repo, key, data, len, opts, err);
}

PgbkStatus
repo_writer_open(Repo *repo, const char *key, const RepoPutOptions *opts, RepoWriter **out,
                 PgbkError *err)
{
	return repo->ops->writer_open(repo, key, opts, out, err);
}

PgbkStatus
repo_writer_write(RepoWriter *w, const void *data, size_t len, PgbkError *err)
{
	return w->repo->ops->writer_write(w, data, len, err);
}

PgbkStatus
repo_writer_commit(RepoWriter *w, PgbkError *err)
{
	return w->repo->ops->writer_commit(w, err);
}

void
repo_writer_abort(RepoWriter *w)
{
	if (w)
		w->repo->ops->writer_abort(w);
}

static PgbkStatus
buf_sink(void *ctx, const void *data, size_t len, PgbkError *err)
{
	if (!pgbk_buf_append((PgbkBuf *) ctx, data, len))
		return pgbk_error(err, PGBK_ERR, "out of memory reading object");
	return PGBK_OK;
}

PgbkStatus
repo_get(Repo *repo, const char *key, PgbkBuf *out, PgbkError *err)
{
	return repo->ops->get_stream(repo, key, 0, UINT64_MAX, buf_sink, out, err);
}

PgbkStatus
repo_get_range(Repo *repo, const char *key, uint64_t offset, uint64_t length, PgbkBuf *out,
               PgbkError *err)
{
	if (length == 0)
		return PGBK_OK;
	return repo->ops->get_stream(repo, key, offset, length, buf_sink, out, err);
}

PgbkStatus
repo_get_stream(Repo *repo, const char *key, RepoSink sink, void *ctx, PgbkError *err)
{
	return repo->ops->get_stream(repo, key, 0, UINT64_MAX, sink, ctx, err);
}

PgbkStatus
repo_head(Repo *repo, const char *key, RepoObjectInfo *info, PgbkError *err)
{
	memset(info, 0, sizeof(*info));
	return repo->ops->head(repo, key, info, err);
}

PgbkStatus
repo_list(Repo *repo, const char *prefix, const char *start_after, RepoListCallback cb, void *ctx,
          PgbkError *err)
{
	return repo->ops->list(repo, prefix ? prefix : "", start_after, cb, ctx, err);
}

PgbkStatus
repo_delete(Repo *repo, const char *const *keys, int n, PgbkError *err)
{
	if (n <= 0)
		return PGBK_OK;
	return repo->ops->delete (repo, keys, n, err);
}
