/*
 * repo.h
 *	  Room repo; uses base and config.
 *	  One interface over the repository backends: a local directory (the
 *	  embedded default) and an S3 bucket/prefix.
 *
 * Keys are relative to the repository root, '/'-separated, without a leading
 * '/'.  Objects are opaque bytes here; codec.h gives them meaning.
 *
 * Durability contract (DESIGN.md invariant 1): a put or a writer commit
 * returns PGBK_OK only once the repository has durably accepted the whole
 * object: S3 answered 2xx to the PUT or CompleteMultipartUpload; the local
 * backend fsync'd the file, linked it into place and fsync'd the directory.
 */
#ifndef PGBK_REPO_H
#define PGBK_REPO_H

#include "config/config.h"

/* Opaque to callers; the backends see inside through repo_intern.h. */
typedef struct Repo       Repo;
typedef struct RepoWriter RepoWriter;

typedef struct RepoObjectInfo
{
	const char *key;           /* relative key; valid during the callback */
	uint64_t    size;          /* stored bytes */
	int64_t     mtime;         /* last modified, Unix seconds */
	char        meta_hash[65]; /* "" or hex content hash kept as metadata */
} RepoObjectInfo;

typedef struct RepoPutOptions
{
	/*
	 * Fail with PGBK_EXISTS when the key already exists.  Atomic on the local
	 * backend (link(2)) and on S3 servers that honour a conditional PUT
	 * (If-None-Match: *, probed once); elsewhere a HEAD before the PUT, which
	 * is enough for the one-writer-per-key layout pgbk uses.
	 */
	bool no_overwrite;
	/* optional hex content hash stored as object metadata (S3) */
	const char *meta_hash;
} RepoPutOptions;

/*
 * Open the repository described by cfg.  For S3 this loads the credentials
 * file; it does not contact the server (repo_check does).
 */
PgbkStatus repo_open(const PgbkConfig *cfg, Repo **out, PgbkError *err);
void       repo_close(Repo *repo);

/* "s3://bucket/prefix" or "/path", for messages.  Never holds secrets. */
const char *repo_describe(const Repo *repo);

/*
 * Contact the repository: the endpoint answers, the credentials are
 * accepted, the bucket (or directory) exists.  Distinct status codes for
 * each failure (PGBK_ERR_AUTH, PGBK_ERR_NO_BUCKET, PGBK_ERR_CONNECT,
 * PGBK_ERR_DNS, PGBK_ERR_TLS, PGBK_ERR_IO).
 */
PgbkStatus repo_check(Repo *repo, PgbkError *err);

PgbkStatus repo_put(Repo *repo, const char *key, const void *data, size_t len,
                    const RepoPutOptions *opts, PgbkError *err);

/*
 * Streaming upload for objects whose size is not known up front (base
 * backup files).  S3 switches to multipart above s3_multipart_threshold.
 * commit and abort free the writer; abort removes partial state (temp file,
 * multipart upload).
 */
PgbkStatus repo_writer_open(Repo *repo, const char *key, const RepoPutOptions *opts,
                            RepoWriter **out, PgbkError *err);
PgbkStatus repo_writer_write(RepoWriter *w, const void *data, size_t len, PgbkError *err);
PgbkStatus repo_writer_commit(RepoWriter *w, PgbkError *err);
void       repo_writer_abort(RepoWriter *w);

/* Whole object into out (appended).  PGBK_NOT_FOUND if absent. */
PgbkStatus repo_get(Repo *repo, const char *key, PgbkBuf *out, PgbkError *err);

/* Bytes [offset, offset+length) (fewer if the object is shorter). */
PgbkStatus repo_get_range(Repo *repo, const char *key, uint64_t offset, uint64_t length,
                          PgbkBuf *out, PgbkError *err);

/* Whole object, delivered in pieces to sink; a sink error stops the read. */
typedef PgbkStatus (*RepoSink)(void *ctx, const void *data, size_t len, PgbkError *err);
PgbkStatus repo_get_stream(Repo *repo, const char *key, RepoSink sink, void *ctx, PgbkError *err);

/* Size, mtime and metadata hash.  PGBK_NOT_FOUND if absent. */
PgbkStatus repo_head(Repo *repo, const char *key, RepoObjectInfo *info, PgbkError *err);

/*
 * Every object whose key starts with prefix (a plain string prefix) and
 * sorts after start_after (NULL: from the start), in byte order of keys.
 * A callback error stops the listing and is returned.
 */
typedef PgbkStatus (*RepoListCallback)(void *ctx, const RepoObjectInfo *info, PgbkError *err);
PgbkStatus repo_list(Repo *repo, const char *prefix, const char *start_after, RepoListCallback cb,
                     void *ctx, PgbkError *err);

/*
 * Remove n objects (n == 0: nothing; absent objects count as removed).
 * Callers hand over any number: the S3 backend sends one DELETE for a single key and one
 * DeleteObjects request per 1000 keys otherwise, the local backend unlinks
 * each and syncs each directory once instead of once per file.  The order in
 * which they go is not defined: a caller that needs one object gone before
 * another (a manifest before its backup's data) makes two calls.
 */
PgbkStatus repo_delete(Repo *repo, const char *const *keys, int n, PgbkError *err);

/*
 * How this repository refuses to overwrite (RepoPutOptions.no_overwrite),
 * for `pgbk check`: a static sentence.  On S3 it may probe the server once
 * (see repo_s3.c), so call it after a put has worked.
 */
const char *repo_overwrite_guard(Repo *repo);

#endif /* PGBK_REPO_H */
