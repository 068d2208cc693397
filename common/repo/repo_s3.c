/*
 * repo_s3.c
 *	  Room repo; uses base, config, the S3 client (s3.h) and libsodium.
 *	  The S3 repository backend: repository keys become object keys under
 *	  s3_prefix in one bucket, stored through the S3 client (s3.h).
 *
 * Objects up to s3_multipart_threshold go up in one PUT; bigger ones (and
 * streaming writers that grow past it) as a multipart upload with parts of
 * s3_part_size, so the whole object appears atomically when
 * CompleteMultipartUpload succeeds and a failed or aborted writer leaves
 * nothing visible behind (DESIGN.md invariant 1).  "No overwrite" is a HEAD
 * before the upload, which is enough for pgbk's one-writer-per-key layout.
 */
#include "repo/repo_intern.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/s3.h"

#define S3_DEFAULT_PART_SIZE ((uint64_t) 16 * 1024 * 1024)
#define S3_DEFAULT_THRESHOLD ((uint64_t) 64 * 1024 * 1024)
#define S3_MIN_PART_SIZE     ((uint64_t) 5 * 1024 * 1024)
#define S3_MAX_PART_SIZE     ((uint64_t) 5 * 1024 * 1024 * 1024)

typedef struct S3Repo
{
	S3Client *client;
	char     *prefix;          /* "" or "some/prefix/" */
	int       conditional_put; /* 0 unknown, 1 If-None-Match honoured, -1 not */
	size_t    prefix_len;
	size_t    part_size;
	size_t    threshold;
} S3Repo;

typedef struct S3Writer
{
	RepoWriter base; /* must be first */
	S3Repo    *r;
	char      *key; /* full object key */
	char      *meta_hash;
	/* bytes not yet uploaded: at most threshold + 1, then less than a part */
	unsigned char *buf;
	size_t         len;
	size_t         cap;
	S3Upload      *upload; /* NULL until the object outgrows one PUT */
	bool           failed;
} S3Writer;

static const RepoOps s3_ops;

/* The object key for a repository key (malloc'd), or NULL with err set. */
static char *
object_key(S3Repo *r, const char *key, PgbkError *err)
{
	size_t n;
	char  *full;

	if (key == NULL || key[0] == '\0' || key[0] == '/')
	{
		pgbk_error(err, PGBK_ERR_USAGE, "invalid repository key \"%s\"", key ? key : "");
		return NULL;
	}
	n = r->prefix_len + strlen(key) + 1;
	full = malloc(n);
	if (full == NULL)
	{
		pgbk_error(err, PGBK_ERR, "out of memory");
		return NULL;
	}
	snprintf(full, n, "%s%s", r->prefix, key);
	return full;
}

static PgbkStatus
s3r_check(Repo *repo, PgbkError *err)
{
	S3Repo *r = repo->impl;

	return s3_check(r->client, r->prefix, err);
}

/* PGBK_OK if the object is absent, PGBK_EXISTS if present, else the error. */
static PgbkStatus
ensure_absent(S3Repo *r, const char *full_key, PgbkError *err)
{
	S3ObjectInfo info;
	PgbkStatus   st;

	st = s3_head(r->client, full_key, &info, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		return PGBK_OK;
	}
	if (st == PGBK_OK)
		return pgbk_error(err, PGBK_EXISTS,
		                  "object \"%s\" already exists in bucket \"%s\" at s3 endpoint %s "
		                  "(%llu bytes): not overwriting it",
		                  full_key, s3_client_bucket(r->client), s3_client_endpoint(r->client),
		                  (unsigned long long) info.size);
	return st;
}

/* Multipart upload of a buffer the caller owns (no copy). */
static PgbkStatus
put_multipart(S3Repo *r, const char *full_key, const unsigned char *data, size_t len,
              const char *meta_hash, PgbkError *err)
{
	S3Upload  *u;
	PgbkStatus st;
	size_t     off = 0;

	st = s3_upload_begin(r->client, full_key, meta_hash, &u, err);
	if (st != PGBK_OK)
		return st;
	while (off < len)
	{
		size_t n = len - off < r->part_size ? len - off : r->part_size;

		st = s3_upload_part(u, data + off, n, err);
		if (st != PGBK_OK)
		{
			s3_upload_abort(u);
			return st;
		}
		off += n;
	}
	return s3_upload_complete(u, err);
}

static bool conditional_put_works(S3Repo *r);

static PgbkStatus
s3r_put(Repo *repo, const char *key, const void *data, size_t len, const RepoPutOptions *opts,
        PgbkError *err)
{
	S3Repo     *r = repo->impl;
	char       *full;
	PgbkStatus  st = PGBK_OK;
	const char *meta_hash = opts ? opts->meta_hash : NULL;

	full = object_key(r, key, err);
	if (full == NULL)
		return err ? err->code : PGBK_ERR;
	/*
	 * Never overwrite: in one request with a conditional PUT where the
	 * server honours it (probed once per repository handle), else a HEAD
	 * before the PUT.
	 */
	if (opts && opts->no_overwrite && len <= r->threshold && conditional_put_works(r))
	{
		st = s3_put_if_absent(r->client, full, data, len, meta_hash, err);
		if (st == PGBK_EXISTS)
			st = pgbk_error(err, PGBK_EXISTS, "object \"%s\" already exists", key);
		free(full);
		return st;
	}
	if (opts && opts->no_overwrite)
		st = ensure_absent(r, full, err);
	if (st == PGBK_OK)
	{
		if (len > r->threshold)
			st = put_multipart(r, full, data, len, meta_hash, err);
		else
			st = s3_put(r->client, full, data, len, meta_hash, err);
	}
	free(full);
	return st;
}

/*
 * Does the server refuse a conditional PUT ("If-None-Match: *") of an
 * existing key?  AWS S3 and RadosGW do; a server that ignores the header
 * would silently overwrite, so ask once: put a probe object twice and expect
 * the second to be refused.  Any failure of the probe means "no": the
 * HEAD-then-PUT path is always correct.
 */
static bool
conditional_put_works(S3Repo *r)
{
	char         *probe;
	unsigned char rnd[8];
	char          hex[17];
	char          name[64];
	PgbkError     perr;
	PgbkStatus    first, second;

	if (r->conditional_put != 0)
		return r->conditional_put > 0;
	r->conditional_put = -1;
	randombytes_buf(rnd, sizeof(rnd));
	pgbk_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(name, sizeof(name), "pgbk.probe/%s", hex);
	pgbk_error_clear(&perr);
	probe = object_key(r, name, &perr);
	if (probe == NULL)
		return false;
	first = s3_put_if_absent(r->client, probe, "probe", 5, NULL, &perr);
	second = first == PGBK_OK ? s3_put_if_absent(r->client, probe, "probe", 5, NULL, &perr) : first;
	if (first == PGBK_OK && second == PGBK_EXISTS)
		r->conditional_put = 1;
	if (first == PGBK_OK)
		(void) s3_delete(r->client, probe, &perr);
	pgbk_log(PGBK_LOG_DEBUG, "conditional PUT %s by %s",
	         r->conditional_put > 0 ? "honoured" : "not honoured", s3_client_endpoint(r->client));
	free(probe);
	return r->conditional_put > 0;
}

static const char *
s3r_overwrite_guard(Repo *repo)
{
	if (conditional_put_works(repo->impl))
		return "refused by the server (conditional PUT, If-None-Match: *)";
	return "refused after a HEAD before each PUT (this server ignores If-None-Match: *; "
	       "enough while one server archives into the repository)";
}

static void
writer_free(S3Writer *w)
{
	free(w->key);
	free(w->meta_hash);
	free(w->buf);
	free(w);
}

static PgbkStatus
s3r_writer_open(Repo *repo, const char *key, const RepoPutOptions *opts, RepoWriter **out,
                PgbkError *err)
{
	S3Repo    *r = repo->impl;
	S3Writer  *w;
	PgbkStatus st = PGBK_OK;

	*out = NULL;
	w = calloc(1, sizeof(S3Writer));
	if (w == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	w->base.repo = repo;
	w->r = r;
	w->key = object_key(r, key, err);
	if (w->key == NULL)
		st = err ? err->code : PGBK_ERR;
	else if (opts && opts->meta_hash && opts->meta_hash[0] &&
	         (w->meta_hash = strdup(opts->meta_hash)) == NULL)
		st = pgbk_error(err, PGBK_ERR, "out of memory");
	/* refuse before the caller streams gigabytes, not after */
	if (st == PGBK_OK && opts && opts->no_overwrite)
		st = ensure_absent(r, w->key, err);
	if (st != PGBK_OK)
	{
		writer_free(w);
		return st;
	}
	*out = &w->base;
	return PGBK_OK;
}

/*
 * Room for n more buffered bytes.  Grows by doubling but never beyond what
 * the writer can hold (threshold + 1 bytes, or one part), so a 64MB
 * threshold costs 64MB, not the 128MB plain doubling would reach.
 */
static bool
writer_reserve(S3Writer *w, size_t n)
{
	size_t need = w->len + n;
	size_t limit = w->r->threshold + 1 > w->r->part_size ? w->r->threshold + 1 : w->r->part_size;
	size_t ncap;
	unsigned char *nb;

	if (need <= w->cap)
		return true;
	ncap = w->cap ? w->cap * 2 : 65536;
	if (ncap > limit)
		ncap = limit;
	if (ncap < need)
		ncap = need;
	nb = realloc(w->buf, ncap);
	if (nb == NULL)
		return false;
	w->buf = nb;
	w->cap = ncap;
	return true;
}

static PgbkStatus
writer_append(S3Writer *w, const unsigned char *p, size_t n, PgbkError *err)
{
	if (!writer_reserve(w, n))
		return pgbk_error(err, PGBK_ERR, "out of memory buffering \"%s\"", w->key);
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return PGBK_OK;
}

static PgbkStatus
s3r_writer_write(RepoWriter *base, const void *data, size_t len, PgbkError *err)
{
	S3Writer            *w = (S3Writer *) base;
	const unsigned char *p = data;
	size_t               part = w->r->part_size;
	PgbkStatus           st = PGBK_OK;

	if (w->failed)
		return pgbk_error(err, PGBK_ERR_USAGE, "write to a failed upload of \"%s\"", w->key);
	while (st == PGBK_OK && len > 0)
	{
		size_t take;

		if (w->upload == NULL)
		{
			/* one PUT until the object is known to be bigger than the threshold */
			take = w->r->threshold + 1 - w->len < len ? w->r->threshold + 1 - w->len : len;
			st = writer_append(w, p, take, err);
			if (st == PGBK_OK && w->len > w->r->threshold)
			{
				size_t off = 0;

				st = s3_upload_begin(w->r->client, w->key, w->meta_hash, &w->upload, err);
				while (st == PGBK_OK && w->len - off >= part)
				{
					st = s3_upload_part(w->upload, w->buf + off, part, err);
					off += part;
				}
				if (st == PGBK_OK)
				{
					memmove(w->buf, w->buf + off, w->len - off);
					w->len -= off;
				}
			}
		}
		else if (w->len > 0 || len < part)
		{
			/* fill the pending part; send it when full */
			take = part - w->len < len ? part - w->len : len;
			st = writer_append(w, p, take, err);
			if (st == PGBK_OK && w->len == part)
			{
				st = s3_upload_part(w->upload, w->buf, part, err);
				w->len = 0;
			}
		}
		else
		{
			/* a whole part straight from the caller's memory */
			take = part;
			st = s3_upload_part(w->upload, p, part, err);
		}
		p += take;
		len -= take;
	}
	if (st != PGBK_OK)
		w->failed = true;
	return st;
}

static PgbkStatus
s3r_writer_commit(RepoWriter *base, PgbkError *err)
{
	S3Writer  *w = (S3Writer *) base;
	PgbkStatus st;

	if (w->failed)
	{
		st = pgbk_error(err, PGBK_ERR_USAGE, "upload of \"%s\" failed earlier", w->key);
		s3_upload_abort(w->upload);
		writer_free(w);
		return st;
	}
	if (w->upload)
	{
		st = PGBK_OK;
		if (w->len > 0)
			st = s3_upload_part(w->upload, w->buf, w->len, err);
		if (st == PGBK_OK)
			st = s3_upload_complete(w->upload, err); /* frees the upload either way */
		else
			s3_upload_abort(w->upload);
	}
	else
		st = s3_put(w->r->client, w->key, w->buf ? w->buf : (const unsigned char *) "", w->len,
		            w->meta_hash, err);
	writer_free(w);
	return st;
}

static void
s3r_writer_abort(RepoWriter *base)
{
	S3Writer *w = (S3Writer *) base;

	s3_upload_abort(w->upload);
	writer_free(w);
}

static PgbkStatus
s3r_get_stream(Repo *repo, const char *key, uint64_t offset, uint64_t range_len, RepoSink sink,
               void *ctx, PgbkError *err)
{
	S3Repo    *r = repo->impl;
	char      *full;
	PgbkStatus st;

	full = object_key(r, key, err);
	if (full == NULL)
		return err ? err->code : PGBK_ERR;
	st = s3_get(r->client, full, offset, range_len, sink, ctx, err);
	free(full);
	return st;
}

static PgbkStatus
s3r_head(Repo *repo, const char *key, RepoObjectInfo *info, PgbkError *err)
{
	S3Repo      *r = repo->impl;
	char        *full;
	S3ObjectInfo oi;
	PgbkStatus   st;

	full = object_key(r, key, err);
	if (full == NULL)
		return err ? err->code : PGBK_ERR;
	st = s3_head(r->client, full, &oi, err);
	free(full);
	if (st != PGBK_OK)
		return st;
	info->key = key;
	info->size = oi.size;
	info->mtime = oi.mtime;
	memcpy(info->meta_hash, oi.meta_hash, sizeof(info->meta_hash));
	return PGBK_OK;
}

typedef struct ListCtx
{
	S3Repo          *r;
	RepoListCallback cb;
	void            *ctx;
} ListCtx;

static PgbkStatus
list_cb(void *vctx, const char *key, const S3ObjectInfo *oi, PgbkError *err)
{
	ListCtx       *lc = vctx;
	RepoObjectInfo info;

	/* we listed under the prefix, so every key starts with it */
	if (strncmp(key, lc->r->prefix, lc->r->prefix_len) != 0)
		return PGBK_OK;
	memset(&info, 0, sizeof(info));
	info.key = key + lc->r->prefix_len;
	info.size = oi->size;
	info.mtime = oi->mtime;
	return lc->cb(lc->ctx, &info, err);
}

static PgbkStatus
s3r_list(Repo *repo, const char *prefix, const char *start_after, RepoListCallback cb, void *ctx,
         PgbkError *err)
{
	S3Repo    *r = repo->impl;
	PgbkBuf    full_prefix;
	PgbkBuf    full_start;
	ListCtx    lc;
	PgbkStatus st;
	bool       ok;

	pgbk_buf_init(&full_prefix);
	pgbk_buf_init(&full_start);
	ok = pgbk_buf_printf(&full_prefix, "%s%s", r->prefix, prefix ? prefix : "") &&
	     (start_after == NULL || pgbk_buf_printf(&full_start, "%s%s", r->prefix, start_after));
	if (!ok)
	{
		pgbk_buf_free(&full_prefix);
		pgbk_buf_free(&full_start);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	lc.r = r;
	lc.cb = cb;
	lc.ctx = ctx;
	st = s3_list(r->client, (char *) full_prefix.data,
	             start_after ? (char *) full_start.data : NULL, list_cb, &lc, err);
	pgbk_buf_free(&full_prefix);
	pgbk_buf_free(&full_start);
	return st;
}

/*
 * Batching lives here: one DeleteObjects request per S3_DELETE_BATCH keys
 * (s3_delete_many sends a plain DELETE for a batch of one, and falls back
 * to one DELETE per key on a server without DeleteObjects).
 */
static PgbkStatus
s3r_delete(Repo *repo, const char *const *keys, int n, PgbkError *err)
{
	S3Repo    *r = repo->impl;
	char     **full;
	int        done, i, m;
	PgbkStatus st = PGBK_OK;

	full = calloc(S3_DELETE_BATCH, sizeof(char *));
	if (full == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (done = 0; done < n && st == PGBK_OK; done += m)
	{
		m = n - done < S3_DELETE_BATCH ? n - done : S3_DELETE_BATCH;
		for (i = 0; i < m; i++)
			if ((full[i] = object_key(r, keys[done + i], err)) == NULL)
				break;
		if (i == m)
			st = s3_delete_many(r->client, (const char *const *) full, m, err);
		else
			st = err ? err->code : PGBK_ERR;
		while (i > 0)
		{
			free(full[--i]);
			full[i] = NULL;
		}
	}
	free(full);
	return st;
}

static void
s3_repo_free(S3Repo *r)
{
	if (r == NULL)
		return;
	s3_client_free(r->client);
	free(r->prefix);
	free(r);
}

static void
s3r_close(Repo *repo)
{
	s3_repo_free(repo->impl);
	repo->impl = NULL;
}

static const RepoOps s3_ops = {
    .check = s3r_check,
    .put = s3r_put,
    .writer_open = s3r_writer_open,
    .writer_write = s3r_writer_write,
    .writer_commit = s3r_writer_commit,
    .writer_abort = s3r_writer_abort,
    .get_stream = s3r_get_stream,
    .head = s3r_head,
    .list = s3r_list,
    .delete = s3r_delete,
    .overwrite_guard = s3r_overwrite_guard,
    .close = s3r_close,
};

PgbkStatus
repo_s3_open(const PgbkConfig *cfg, Repo *repo, PgbkError *err)
{
	S3Repo          *r;
	PgbkCredentials *cred = NULL;
	PgbkStatus       st;
	const char      *prefix = cfg->s3_prefix ? cfg->s3_prefix : "";
	size_t           plen;
	size_t           dlen;

	if (cfg->s3_bucket == NULL || cfg->s3_bucket[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "repository \"%s\" names no s3 bucket",
		                  cfg->repository ? cfg->repository : "");
	if (cfg->s3_credentials_file == NULL || cfg->s3_credentials_file[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "s3_credentials_file is required for an s3 repository");
	if (cfg->s3_part_size != 0 &&
	    (cfg->s3_part_size < S3_MIN_PART_SIZE || cfg->s3_part_size > S3_MAX_PART_SIZE))
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "s3_part_size must be between 5MB and 5GB, not %llu bytes",
		                  (unsigned long long) cfg->s3_part_size);

	r = calloc(1, sizeof(S3Repo));
	if (r == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	r->part_size = cfg->s3_part_size ? (size_t) cfg->s3_part_size : S3_DEFAULT_PART_SIZE;
	r->threshold =
	    cfg->s3_multipart_threshold ? (size_t) cfg->s3_multipart_threshold : S3_DEFAULT_THRESHOLD;
	/* a single PUT cannot carry more than 5GB */
	if (r->threshold > S3_MAX_PART_SIZE)
		r->threshold = S3_MAX_PART_SIZE;

	/* "a/b" -> "a/b/"; stray slashes at either end are ignored */
	while (*prefix == '/')
		prefix++;
	plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	r->prefix = malloc(plen + 2);
	if (r->prefix == NULL)
	{
		s3_repo_free(r);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	memcpy(r->prefix, prefix, plen);
	if (plen > 0)
		r->prefix[plen++] = '/';
	r->prefix[plen] = '\0';
	r->prefix_len = plen;

	st = credentials_load(cfg->s3_credentials_file,
	                      cfg->s3_profile && cfg->s3_profile[0] ? cfg->s3_profile : "default",
	                      &cred, err);
	if (st == PGBK_OK)
		st = s3_client_new(cfg, cred, &r->client, err);
	if (cred)
		credentials_free(cred);
	if (st != PGBK_OK)
	{
		s3_repo_free(r);
		return st;
	}

	dlen = strlen(cfg->s3_bucket) + plen + 8;
	repo->description = malloc(dlen);
	if (repo->description == NULL)
	{
		s3_repo_free(r);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	/* "s3://bucket/prefix" without the trailing '/' of the key prefix */
	snprintf(repo->description, dlen, "s3://%s%s%.*s", cfg->s3_bucket, plen ? "/" : "",
	         plen ? (int) plen - 1 : 0, r->prefix);
	repo->ops = &s3_ops;
	repo->impl = r;
	return PGBK_OK;
}
