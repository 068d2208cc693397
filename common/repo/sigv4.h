/*
 * sigv4.h
 *	  Room repo; uses base only.
 *	  AWS Signature Version 4 for S3 requests (the "Authorization: AWS4-HMAC-
 *	  SHA256 ..." header).
 *
 * pgbk signs its own requests instead of using libcurl's CURLOPT_AWS_SIGV4,
 * which in libcurl 7.88 does not canonicalise query strings the way S3
 * requires (see shared/notes/s3-test-server.md).  Each step is exposed so
 * the unit test can check it against the published examples
 * (t/vectors/sigv4-s3.json): URI encoding, the canonical query, the
 * canonical request and its hash, the string to sign and the signature.
 *
 * S3 specifics: the path is encoded once (not twice as for other services)
 * and is not normalised ("a//b" and "a/./b" are signed as they are).
 */
#ifndef PGBK_SIGV4_H
#define PGBK_SIGV4_H

#include <time.h>

#include "base/pgbk_common.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* hex SHA-256 of the empty string */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct SigV4Header
{
	const char *name;  /* any case; lower-cased when signed */
	const char *value; /* trimmed, inner runs of spaces folded, when signed */
} SigV4Header;

typedef struct SigV4Request
{
	const char        *method;  /* "GET", "PUT", ... */
	const char        *path;    /* absolute path NOT yet encoded, e.g. "/bucket/a b" */
	const char        *query;   /* query string without '?', raw or encoded; NULL or "" if none */
	const SigV4Header *headers; /* every header to sign: at least host and x-amz-date */
	int                nheaders;
	const char        *payload_hash; /* hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
} SigV4Request;

typedef struct SigV4Key
{
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;  /* "us-east-1" */
	const char *service; /* "s3" */
} SigV4Key;

/* Everything signing produces; the intermediate steps are kept for tests. */
typedef struct SigV4Signature
{
	PgbkBuf canonical_request;
	char    canonical_request_sha256[65];
	PgbkBuf signed_headers; /* "host;range;x-amz-date" */
	PgbkBuf string_to_sign;
	char    signature[65];
	PgbkBuf authorization; /* value of the Authorization header */
} SigV4Signature;

/*
 * Append the RFC 3986 encoding of s[0..len) to out: A-Z a-z 0-9 - . _ ~ are
 * kept, '/' is kept when keep_slash, every other byte becomes %XX (upper
 * case hex).  Returns false on allocation failure.
 */
bool sigv4_uri_encode(PgbkBuf *out, const char *s, size_t len, bool keep_slash);

/*
 * Append the canonical form of a query string: split on '&', each part into
 * name and value at the first '=' (a missing value is ""), both decoded
 * (valid %XX only) and re-encoded with sigv4_uri_encode, then sorted by
 * name and by value and joined as "name=value&...".  Idempotent, so the
 * result can be sent as the request's query string and signed as is.
 * Returns false on allocation failure.
 */
bool sigv4_canonical_query(PgbkBuf *out, const char *query);

/* "20130524T000000Z" for t (UTC); out holds 17 bytes. */
void sigv4_amz_date(time_t t, char out[17]);

/* Hex SHA-256 of data; out holds 65 bytes. */
void sigv4_payload_hash(const void *data, size_t len, char out[65]);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service), "aws4_request") */
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char out[32]);

/*
 * Sign req at amz_date ("YYYYMMDDTHHMMSSZ", which must also be the value of
 * the request's x-amz-date header).  sig must be initialised with
 * sigv4_signature_init and released with sigv4_signature_free (also after a
 * failure).  Errors: PGBK_ERR_USAGE for a malformed request, PGBK_ERR on
 * allocation failure.
 */
void       sigv4_signature_init(SigV4Signature *sig);
PgbkStatus sigv4_sign(const SigV4Request *req, const SigV4Key *key, const char *amz_date,
                      SigV4Signature *sig, PgbkError *err);
void       sigv4_signature_free(SigV4Signature *sig);

#endif /* PGBK_SIGV4_H */
