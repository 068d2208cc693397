/*
 * s3.h
 *	  Room repo; uses base and config.
 *	  A small S3 client on one libcurl easy handle: PUT, GET (whole, ranged,
 *	  streamed), HEAD, ListObjectsV2, DELETE and multipart uploads, signed
 *	  with our own SigV4 (sigv4.h).
 *
 * One client talks to one bucket at one endpoint and keeps one connection
 * alive between requests, so each small PUT/GET/HEAD is one round trip.  A
 * client is not thread-safe and must not be used in a child after fork();
 * parallel uploads use one client each.
 *
 * Failures come back as distinct PgbkStatus codes with a message naming the
 * endpoint, the bucket, the key and the cause, never a secret:
 *   PGBK_NOT_FOUND       the object does not exist (GET/HEAD)
 *   PGBK_ERR_AUTH        403: unknown key id, wrong secret, access denied
 *   PGBK_ERR_NO_BUCKET   404 NoSuchBucket
 *   PGBK_ERR_CONNECT     refused, unreachable, timed out, connection lost
 *   PGBK_ERR_DNS         the endpoint's host name does not resolve
 *   PGBK_ERR_TLS         handshake or certificate failure (see s3_ca_file)
 *   PGBK_ERR_SERVER      5xx/429 after the retries, or a malformed answer
 *   PGBK_ERR_CONFIG      bad s3_endpoint, or the bucket lives at another
 *                        endpoint/region (301/307, AuthorizationHeaderMalformed)
 *   PGBK_ERR_INTERRUPTED pgbk_interrupted() said stop
 *   PGBK_ERR_USAGE       empty or over-long key, non-hex metadata hash
 *   PGBK_ERR             any other refusal (the S3 error code is named)
 * HEAD answers carry no body, so a HEAD in a missing bucket says
 * PGBK_NOT_FOUND and a refused HEAD cannot name the 403's cause.
 * 5xx, 429/SlowDown, timeouts and connection/DNS errors are retried up to
 * s3_max_retries times with exponential backoff and jitter; 4xx are not.
 *
 * Slow servers: each attempt must end by its deadline, s3_connect_timeout +
 * s3_timeout + its size at s3_min_rate (the size is the body sent, the
 * Content-Length announced or the bytes received, whichever is largest),
 * and a transfer slower than 1 kB/s for s3_timeout fails; both are
 * PGBK_ERR_CONNECT (retried), a deadline's message says "exceeded its
 * deadline".
 */
#ifndef PGBK_S3_H
#define PGBK_S3_H

#include "config/config.h"

typedef struct S3Client S3Client;
typedef struct S3Upload S3Upload;

/* Per-object metadata from HEAD (or a listing: meta_hash then ""). */
typedef struct S3ObjectInfo
{
	uint64_t size;
	int64_t  mtime;         /* Last-Modified, Unix seconds */
	char     meta_hash[65]; /* x-amz-meta-pgbk-hash or "" */
	char     etag[72];      /* with the quotes S3 puts around it, or "" */
} S3ObjectInfo;

/* Receives a GET body piece by piece; an error stops the transfer. */
typedef PgbkStatus (*S3Sink)(void *ctx, const void *data, size_t len, PgbkError *err);

/* One listed object; key is the full key, valid during the call. */
typedef PgbkStatus (*S3ListCallback)(void *ctx, const char *key, const S3ObjectInfo *info,
                                     PgbkError *err);

/*
 * Client for cfg's endpoint and bucket (cfg->s3_bucket).  Copies what it
 * needs from cfg and cred (the secret is wiped in s3_client_free).  Does
 * not contact the server.
 */
PgbkStatus s3_client_new(const PgbkConfig *cfg, const PgbkCredentials *cred, S3Client **out,
                         PgbkError *err);
void       s3_client_free(S3Client *c);

/* "https://host:port" and the bucket, for messages. */
const char *s3_client_endpoint(const S3Client *c);
const char *s3_client_bucket(const S3Client *c);

/*
 * The endpoint answers, the credentials are accepted and the bucket exists:
 * a ListObjectsV2 of at most one key under prefix (may be "" or NULL).
 */
PgbkStatus s3_check(S3Client *c, const char *prefix, PgbkError *err);

/*
 * PUT an object from memory, signed with the real SHA-256 of the body.
 * meta_hash (NULL or up to 64 hex digits) is stored as x-amz-meta-pgbk-hash.
 */
PgbkStatus s3_put(S3Client *c, const char *key, const void *data, size_t len, const char *meta_hash,
                  PgbkError *err);

/*
 * PUT with "If-None-Match: *": PGBK_EXISTS (and the stored object untouched)
 * when the key exists.  AWS S3 and RadosGW honour the condition; a server
 * that ignores it would overwrite, so repo_s3.c probes for support first.
 */
PgbkStatus s3_put_if_absent(S3Client *c, const char *key, const void *data, size_t len,
                            const char *meta_hash, PgbkError *err);

/*
 * GET bytes [offset, offset+length) (length UINT64_MAX: to the end; offset
 * 0 and length UINT64_MAX: the whole object) into sink.  A range starting
 * at or past the end delivers nothing and returns PGBK_OK.  A transfer cut
 * short is resumed where it stopped, guarded by the object's ETag, so the
 * sink sees every byte exactly once.
 */
PgbkStatus s3_get(S3Client *c, const char *key, uint64_t offset, uint64_t length, S3Sink sink,
                  void *ctx, PgbkError *err);

/* HEAD: size, Last-Modified, x-amz-meta-pgbk-hash, ETag.  PGBK_NOT_FOUND if absent. */
PgbkStatus s3_head(S3Client *c, const char *key, S3ObjectInfo *info, PgbkError *err);

/*
 * ListObjectsV2 of every key starting with prefix (NULL or "": all) and
 * sorting after start_after (NULL: from the start), all pages, in the
 * server's (byte) order.  A callback error stops the listing and is
 * returned.  A server that would never end the listing is PGBK_ERR_SERVER
 * naming the endpoint and the bucket: a truncated page without a
 * continuation token, a token given before, a page starting at or before
 * the last key of the previous pages, or 1000 empty truncated pages in a
 * row.
 */
PgbkStatus s3_list(S3Client *c, const char *prefix, const char *start_after, S3ListCallback cb,
                   void *ctx, PgbkError *err);

/* DELETE; PGBK_OK also when the key did not exist. */
PgbkStatus s3_delete(S3Client *c, const char *key, PgbkError *err);

/*
 * Delete up to S3_DELETE_BATCH keys with one DeleteObjects request (quiet
 * mode, Content-MD5).  Absent keys count as deleted.  Keys the answer lists
 * as not deleted are deleted again one by one, so a failure gets the same
 * error as s3_delete.  A server that answers 501 gets single DELETEs from
 * then on.
 */
#define S3_DELETE_BATCH 1000
PgbkStatus s3_delete_many(S3Client *c, const char *const *keys, int n, PgbkError *err);

/*
 * Multipart upload: begin, parts numbered 1, 2, ... in call order (every
 * part but the last at least 5 MB on real S3), then complete or abort.
 * complete and abort free the upload whatever happens; when complete fails
 * the upload is aborted on the server (best effort).
 */
PgbkStatus s3_upload_begin(S3Client *c, const char *key, const char *meta_hash, S3Upload **out,
                           PgbkError *err);
PgbkStatus s3_upload_part(S3Upload *u, const void *data, size_t len, PgbkError *err);
PgbkStatus s3_upload_complete(S3Upload *u, PgbkError *err);
void       s3_upload_abort(S3Upload *u);
/* parts uploaded so far */
int s3_upload_nparts(const S3Upload *u);

#endif /* PGBK_S3_H */
