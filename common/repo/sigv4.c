/*
 * sigv4.c
 *	  Room repo; uses base (time) and libsodium (SHA-256, HMAC).
 *	  AWS Signature Version 4 for S3 (see sigv4.h).
 *
 * The steps follow the AWS reference ("Signature Calculations for the
 * Authorization Header"): canonical request -> its SHA-256 -> string to
 * sign -> HMAC with a key derived from the secret, the date, the region and
 * the service.  SHA-256 and HMAC-SHA256 come from libsodium.  The derived
 * key and HMAC states are wiped after use; nothing here logs.
 */
#include "repo/sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/pgbk_time.h"

/* one header prepared for signing */
typedef struct CanonHeader
{
	char *name;  /* lower case */
	char *value; /* trimmed, spaces folded */
	int   order; /* position in the request, to keep repeated names stable */
} CanonHeader;

/* one query parameter, both parts already encoded */
typedef struct QueryParam
{
	char *name;
	char *value;
} QueryParam;

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

bool
sigv4_uri_encode(PgbkBuf *out, const char *s, size_t len, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t            i;

	/* worst case every byte becomes three */
	if (len > (SIZE_MAX - 1) / 3 || !pgbk_buf_reserve(out, len * 3))
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (is_unreserved(c) || (keep_slash && c == '/'))
			out->data[out->len++] = c;
		else
		{
			out->data[out->len++] = '%';
			out->data[out->len++] = hex[c >> 4];
			out->data[out->len++] = hex[c & 0xf];
		}
	}
	out->data[out->len] = '\0';
	return true;
}

/*
 * Decode valid %XX sequences of s[0..len) and re-encode the result
 * canonically into a new string (NULL on allocation failure).
 */
static char *
query_part_canonical(const char *s, size_t len)
{
	char   *raw;
	size_t  n = 0;
	size_t  i;
	PgbkBuf enc;

	raw = malloc(len + 1);
	if (raw == NULL)
		return NULL;
	for (i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len && pgbk_hex_digit(s[i + 1]) >= 0 &&
		    pgbk_hex_digit(s[i + 2]) >= 0)
		{
			raw[n++] = (char) (pgbk_hex_digit(s[i + 1]) << 4 | pgbk_hex_digit(s[i + 2]));
			i += 2;
		}
		else
			raw[n++] = s[i];
	}
	pgbk_buf_init(&enc);
	if (!sigv4_uri_encode(&enc, raw, n, false) || !pgbk_buf_append(&enc, "", 0))
	{
		free(raw);
		pgbk_buf_free(&enc);
		return NULL;
	}
	free(raw);
	return (char *) enc.data;
}

static int
query_param_cmp(const void *a, const void *b)
{
	const QueryParam *pa = a;
	const QueryParam *pb = b;
	int               c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

bool
sigv4_canonical_query(PgbkBuf *out, const char *query)
{
	QueryParam *params = NULL;
	int         nparams = 0;
	int         maxparams = 1;
	const char *p;
	bool        ok = true;
	int         i;

	if (query == NULL || query[0] == '\0')
		return pgbk_buf_append(out, "", 0);
	for (p = query; *p; p++)
		if (*p == '&')
			maxparams++;
	params = calloc((size_t) maxparams, sizeof(QueryParam));
	if (params == NULL)
		return false;

	p = query;
	while (ok && *p)
	{
		const char *amp = strchr(p, '&');
		size_t      plen = amp ? (size_t) (amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t      nlen = eq ? (size_t) (eq - p) : plen;

		if (plen > 0)
		{
			params[nparams].name = query_part_canonical(p, nlen);
			params[nparams].value =
			    eq ? query_part_canonical(eq + 1, plen - nlen - 1) : query_part_canonical("", 0);
			if (params[nparams].name == NULL || params[nparams].value == NULL)
				ok = false;
			nparams++;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	if (ok)
	{
		qsort(params, (size_t) nparams, sizeof(QueryParam), query_param_cmp);
		for (i = 0; ok && i < nparams; i++)
			ok = pgbk_buf_printf(out, "%s%s=%s", i > 0 ? "&" : "", params[i].name, params[i].value);
		/* an all-empty query ("&&") still leaves a valid empty string */
		ok = ok && pgbk_buf_append(out, "", 0);
	}
	for (i = 0; i < nparams; i++)
	{
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
	return ok;
}

void
sigv4_amz_date(time_t t, char out[17])
{
	pgbk_time_format((int64_t) t * 1000000, PGBK_TIME_ID, out, 17);
}

void
sigv4_payload_hash(const void *data, size_t len, char out[65])
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(digest, data, len);
	pgbk_hex_encode(digest, sizeof(digest), out);
}

static void
hmac(const unsigned char *key, size_t keylen, const char *msg, size_t msglen,
     unsigned char out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) msg, msglen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void
sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                  unsigned char out[32])
{
	size_t         slen = strlen(secret);
	unsigned char *k0;
	unsigned char  k1[32];
	unsigned char  k2[32];
	unsigned char  k3[32];

	k0 = malloc(slen + 4);
	if (k0 == NULL)
	{
		/* cannot sign; an all-zero key yields a signature the server rejects */
		memset(out, 0, 32);
		return;
	}
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen);
	hmac(k0, slen + 4, date8, strlen(date8), k1);
	hmac(k1, sizeof(k1), region, strlen(region), k2);
	hmac(k2, sizeof(k2), service, strlen(service), k3);
	hmac(k3, sizeof(k3), "aws4_request", strlen("aws4_request"), out);
	sodium_memzero(k0, slen + 4);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	sodium_memzero(k3, sizeof(k3));
	free(k0);
}

static int
canon_header_cmp(const void *a, const void *b)
{
	const CanonHeader *ha = a;
	const CanonHeader *hb = b;
	int                c = strcmp(ha->name, hb->name);

	return c != 0 ? c : ha->order - hb->order;
}

/* Lower-cased copy of a header name; NULL if empty or not a token. */
static char *
canon_header_name(const char *name)
{
	size_t n = strlen(name);
	size_t i;
	char  *out;

	if (n == 0)
		return NULL;
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) name[i];

		if (c <= ' ' || c >= 127 || c == ':')
			return NULL;
	}
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = (char) tolower((unsigned char) name[i]);
	out[n] = '\0';
	return out;
}

/* Trimmed copy with inner runs of blanks folded to one space (AWS "Trimall"). */
static char *
canon_header_value(const char *value)
{
	size_t n = strlen(value);
	char  *out = malloc(n + 1);
	size_t o = 0;
	bool   blank = false;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++)
	{
		char c = value[i];

		if (c == ' ' || c == '\t')
		{
			blank = o > 0;
			continue;
		}
		if (blank)
			out[o++] = ' ';
		blank = false;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

void
sigv4_signature_init(SigV4Signature *sig)
{
	memset(sig, 0, sizeof(*sig));
	pgbk_buf_init(&sig->canonical_request);
	pgbk_buf_init(&sig->signed_headers);
	pgbk_buf_init(&sig->string_to_sign);
	pgbk_buf_init(&sig->authorization);
}

void
sigv4_signature_free(SigV4Signature *sig)
{
	pgbk_buf_free(&sig->canonical_request);
	pgbk_buf_free(&sig->signed_headers);
	pgbk_buf_free(&sig->string_to_sign);
	pgbk_buf_free(&sig->authorization);
}

/* Append the canonical headers block and fill sig->signed_headers. */
static PgbkStatus
add_canonical_headers(const SigV4Request *req, SigV4Signature *sig, PgbkError *err)
{
	CanonHeader *hs;
	PgbkStatus   st = PGBK_OK;
	PgbkBuf     *cr = &sig->canonical_request;
	int          i;

	if (req->nheaders <= 0)
		return pgbk_error(err, PGBK_ERR_USAGE, "request to sign has no headers");
	hs = calloc((size_t) req->nheaders, sizeof(CanonHeader));
	if (hs == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (i = 0; i < req->nheaders && st == PGBK_OK; i++)
	{
		const char *v = req->headers[i].value ? req->headers[i].value : "";

		if (strpbrk(v, "\r\n") != NULL)
			st = pgbk_error(err, PGBK_ERR_USAGE, "header \"%s\" has a line break in its value",
			                req->headers[i].name);
		else
		{
			hs[i].name = canon_header_name(req->headers[i].name);
			hs[i].value = canon_header_value(v);
			hs[i].order = i;
			if (hs[i].name == NULL)
				st = pgbk_error(err, PGBK_ERR_USAGE, "invalid header name \"%s\"",
				                req->headers[i].name);
			else if (hs[i].value == NULL)
				st = pgbk_error(err, PGBK_ERR, "out of memory");
		}
	}
	if (st == PGBK_OK)
	{
		bool ok = true;

		qsort(hs, (size_t) req->nheaders, sizeof(CanonHeader), canon_header_cmp);
		/* repeated names become one line with the values comma-separated */
		for (i = 0; ok && i < req->nheaders; i++)
		{
			bool first = (i == 0 || strcmp(hs[i].name, hs[i - 1].name) != 0);
			bool last = (i == req->nheaders - 1 || strcmp(hs[i].name, hs[i + 1].name) != 0);

			if (first)
			{
				ok = pgbk_buf_printf(cr, "%s:", hs[i].name) &&
				     pgbk_buf_printf(&sig->signed_headers, "%s%s",
				                     sig->signed_headers.len > 0 ? ";" : "", hs[i].name);
			}
			else
				ok = pgbk_buf_append_str(cr, ",");
			ok = ok && pgbk_buf_append_str(cr, hs[i].value);
			if (ok && last)
				ok = pgbk_buf_append_str(cr, "\n");
		}
		if (!ok)
			st = pgbk_error(err, PGBK_ERR, "out of memory");
	}
	for (i = 0; i < req->nheaders; i++)
	{
		free(hs[i].name);
		free(hs[i].value);
	}
	free(hs);
	return st;
}

PgbkStatus
sigv4_sign(const SigV4Request *req, const SigV4Key *key, const char *amz_date, SigV4Signature *sig,
           PgbkError *err)
{
	PgbkBuf      *cr = &sig->canonical_request;
	unsigned char digest[crypto_hash_sha256_BYTES];
	unsigned char kSigning[32];
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char          date8[9];
	const char   *path;
	PgbkStatus    st;
	bool          ok;

	if (req->method == NULL || req->method[0] == '\0' || req->payload_hash == NULL ||
	    req->payload_hash[0] == '\0')
		return pgbk_error(err, PGBK_ERR_USAGE, "request to sign lacks a method or payload hash");
	if (amz_date == NULL || strlen(amz_date) != 16 || amz_date[8] != 'T' || amz_date[15] != 'Z')
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid x-amz-date \"%s\"",
		                  amz_date ? amz_date : "");
	memcpy(date8, amz_date, 8);
	date8[8] = '\0';

	/* method, path, query */
	path = (req->path && req->path[0]) ? req->path : "/";
	ok = pgbk_buf_printf(cr, "%s\n", req->method) &&
	     (path[0] == '/' || pgbk_buf_append_str(cr, "/")) &&
	     sigv4_uri_encode(cr, path, strlen(path), true) && pgbk_buf_append_str(cr, "\n") &&
	     sigv4_canonical_query(cr, req->query) && pgbk_buf_append_str(cr, "\n");
	if (!ok)
		return pgbk_error(err, PGBK_ERR, "out of memory");

	st = add_canonical_headers(req, sig, err);
	if (st != PGBK_OK)
		return st;
	if (!pgbk_buf_printf(cr, "\n%s\n%s", (const char *) sig->signed_headers.data,
	                     req->payload_hash))
		return pgbk_error(err, PGBK_ERR, "out of memory");

	crypto_hash_sha256(digest, cr->data, cr->len);
	pgbk_hex_encode(digest, sizeof(digest), sig->canonical_request_sha256);

	if (!pgbk_buf_printf(&sig->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
	                     amz_date, date8, key->region, key->service, sig->canonical_request_sha256))
		return pgbk_error(err, PGBK_ERR, "out of memory");

	sigv4_signing_key(key->secret_access_key, date8, key->region, key->service, kSigning);
	hmac(kSigning, sizeof(kSigning), (const char *) sig->string_to_sign.data,
	     sig->string_to_sign.len, mac);
	sodium_memzero(kSigning, sizeof(kSigning));
	pgbk_hex_encode(mac, sizeof(mac), sig->signature);

	if (!pgbk_buf_printf(&sig->authorization,
	                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	                     "SignedHeaders=%s, Signature=%s",
	                     key->access_key_id, date8, key->region, key->service,
	                     (const char *) sig->signed_headers.data, sig->signature))
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}
