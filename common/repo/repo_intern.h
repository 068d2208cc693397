/*
 * repo_intern.h
 *	  Room repo, private to it; uses repo.h (base, config).
 *	  The backend (driver) interface of the repository room: what repo.c
 *	  dispatches to and what repo_local.c and repo_s3.c implement.
 *
 * Included only by the room's own .c files; callers use repo.h, where Repo and
 * RepoWriter are opaque.  scripts/check-includes.sh enforces this.
 *
 * A backend implements every operation.  Keys reach it unchecked:
 * validating them is its job, since what is valid depends on the store.
 */
#ifndef PGBK_REPO_INTERN_H
#define PGBK_REPO_INTERN_H

#include "repo/repo.h"

typedef struct RepoOps
{
	PgbkStatus (*check)(Repo *repo, PgbkError *err);
	PgbkStatus (*put)(Repo *repo, const char *key, const void *data, size_t len,
	                  const RepoPutOptions *opts, PgbkError *err);
	PgbkStatus (*writer_open)(Repo *repo, const char *key, const RepoPutOptions *opts,
	                          RepoWriter **out, PgbkError *err);
	PgbkStatus (*writer_write)(RepoWriter *w, const void *data, size_t len, PgbkError *err);
	PgbkStatus (*writer_commit)(RepoWriter *w, PgbkError *err);
	void (*writer_abort)(RepoWriter *w);
	/* range_len == UINT64_MAX: whole object */
	PgbkStatus (*get_stream)(Repo *repo, const char *key, uint64_t offset, uint64_t range_len,
	                         RepoSink sink, void *ctx, PgbkError *err);
	PgbkStatus (*head)(Repo *repo, const char *key, RepoObjectInfo *info, PgbkError *err);
	PgbkStatus (*list)(Repo *repo, const char *prefix, const char *start_after, RepoListCallback cb,
	                   void *ctx, PgbkError *err);
	/* n >= 1 (the front drops n == 0); batching or looping is the backend's */
	PgbkStatus (*delete)(Repo *repo, const char *const *keys, int n, PgbkError *err);
	const char *(*overwrite_guard)(Repo *repo);
	void (*close)(Repo *repo);
} RepoOps;

struct Repo
{
	const RepoOps *ops;
	char          *description;
	void          *impl; /* backend state */
};

/*
 * Every backend's writer struct embeds this as its FIRST member, so the
 * front can find the backend's ops from a RepoWriter pointer.
 */
struct RepoWriter
{
	Repo *repo;
};

/* Backend constructors; fill repo->ops, repo->impl, repo->description. */
PgbkStatus repo_local_open(const PgbkConfig *cfg, Repo *repo, PgbkError *err);
PgbkStatus repo_s3_open(const PgbkConfig *cfg, Repo *repo, PgbkError *err);

#endif /* PGBK_REPO_INTERN_H */
