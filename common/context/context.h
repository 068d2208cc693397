/*
 * context.h
 *	  Room context; uses config, repo and format (codec, keys).
 *	  The repository context: pgbk.conf, the key ring, the repository and the
 *	  codec parameters, assembled one way for the extension (pg_ext/backend.c),
 *	  the CLI (cli/main.c) and the watcher (watcher/main.c).
 *
 * This room sits above config, format and repo and below the three
 * programs.  Each caller keeps only what is its own: the backend keeps the
 * context for the life of its process and rebuilds it when a file changes,
 * the CLI picks the configuration file from --config or the environment,
 * the watcher opens the repository only when its files repository lives in
 * it and carries on without it.
 */
#ifndef PGBK_CONTEXT_H
#define PGBK_CONTEXT_H

#include "config/config.h"
#include "format/codec.h"
#include "format/keys.h"
#include "repo/repo.h"

#include <sys/types.h>
#include <time.h>

/* What to open (a parameter struct: name the fields you set, the rest are zero). */
typedef struct PgbkRepoContextOptions
{
	const char *config_path; /* pgbk.conf (required) */
	bool        need_keys;   /* load the key ring; params.keyring is NULL without it */
	bool        need_repo;   /* open the repository (no request is made yet) */
} PgbkRepoContextOptions;

/* Identity of a file a context was built from (all zero: it did not exist). */
typedef struct PgbkFileStamp
{
	bool   exists;
	dev_t  dev;
	ino_t  ino;
	off_t  size;
	time_t mtime;
	long   mtime_ns;
} PgbkFileStamp;

typedef struct PgbkRepoContext
{
	char        *config_path; /* as given in the options (a copy) */
	PgbkConfig  *cfg;
	PgbkKeyring *ring;   /* NULL unless need_keys */
	Repo        *repo;   /* NULL unless need_repo (or pgbk_repo_context_open_repo) */
	CodecParams  params; /* compression, level and encryption of cfg; keyring = ring */

	/* each taken before the file is read: a change while reading is seen */
	PgbkFileStamp stamp_config;
	PgbkFileStamp stamp_key;
	PgbkFileStamp stamp_cred;
} PgbkRepoContext;

/*
 * Initialize the crypto library, read and check the configuration, then
 * load the key ring and open the repository if asked.  On failure *ctx is
 * left empty (closing it is harmless) and err says what failed, with the
 * status of its class (PGBK_ERR_CONFIG for the configuration, the key file
 * or the credentials file).
 */
PgbkStatus pgbk_repo_context_open(const PgbkRepoContextOptions *opts, PgbkRepoContext *ctx,
                                  PgbkError *err);

/* Open the repository of a context opened without need_repo (no-op if open). */
PgbkStatus pgbk_repo_context_open_repo(PgbkRepoContext *ctx, PgbkError *err);

/*
 * True if pgbk.conf, the key file or the credentials file was replaced or
 * changed since the context was opened (stat() only: cheap next to an
 * upload).  A long-lived process opens a new context then.
 */
bool pgbk_repo_context_changed(const PgbkRepoContext *ctx);

/* Free everything the context holds and empty it; ctx may be empty. */
void pgbk_repo_context_close(PgbkRepoContext *ctx);

#endif /* PGBK_CONTEXT_H */
