/*
 * s3.c
 *	  Room repo; uses base (errors, time), config, sigv4.c, libcurl, libxml2 and
 *	  OpenSSL (MD5).
 *	  S3 client on one libcurl easy handle (see s3.h).
 *
 * Every request goes through s3_execute(): build the URL (path or
 * virtual-host style), sign with sigv4.c, perform, classify the outcome,
 * and retry with exponential backoff and jitter when the failure is
 * transient (5xx, 429/SlowDown, timeouts, connection and DNS errors).  The
 * easy handle is reset (not recreated) between requests so its connection
 * stays alive: a small PUT, GET or HEAD is one round trip.  Bodies are sent
 * from the caller's memory through a read callback and received through a
 * write callback straight into the caller's sink; nothing is copied on the
 * way except error and XML answers, which are small.
 *
 * Secrets: the secret key is only used to derive the signing key (sigv4.c)
 * and is wiped when the client is freed; the Authorization header and the
 * session token live in a curl header list that is freed after each
 * attempt.  No message or log line includes them (curl's verbose mode is
 * never enabled; its error buffer never holds headers).
 */
#include "repo/s3.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <sodium.h>

#include "base/pgbk_time.h"
#include "repo/sigv4.h"

/* captured answers: error documents are cut here, XML results fail above */
#define S3_ERROR_BODY_MAX  65536
#define S3_RESULT_BODY_MAX (64 * 1024 * 1024)
/* backoff: base * 2^attempt with jitter, capped */
#define S3_BACKOFF_BASE_MS 200
#define S3_BACKOFF_CAP_MS  20000
#define S3_MAX_PARTS       10000
#define S3_MAX_KEY_LEN     1024
/* a transfer slower than this for s3_timeout fails (curl's low-speed limit) */
#define S3_LOW_SPEED_BPS 1024
/* a listing whose pages stay empty this many times in a row is not progressing */
#define S3_LIST_MAX_EMPTY_PAGES 1000

struct S3Client
{
	CURL              *curl;
	struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO, or NULL */
	char              *endpoint;   /* as configured, for messages */
	char              *scheme;     /* "http" or "https" */
	char              *host;       /* endpoint host ("[::1]" for IPv6) */
	char              *port;       /* ":7480", or "" for the scheme's default */
	char              *bucket;
	char              *region;
	PgbkUriStyle       uri_style;
	char              *ca_file;
	bool               verify_tls;
	char              *connect_host;
	long               connect_timeout_ms;
	long               low_speed_time_s;
	long               timeout_ms;
	uint64_t           min_rate; /* bytes per second, for the deadline */
	int                max_retries;
	char              *access_key_id;
	char              *secret_access_key;
	char              *session_token;
	bool               no_multi_delete; /* the server answered DeleteObjects with 501 */
	char               errbuf[CURL_ERROR_SIZE];
};

struct S3Upload
{
	S3Client *c;
	char     *key;
	char     *upload_id;
	char     *meta_hash; /* for the empty-object fallback of complete */
	char    **etags;
	int       nparts;
	int       cap;
	uint64_t  total;
};

/* One logical request (retried as a unit). */
typedef struct S3Request
{
	char                 op[96]; /* verb phrase for messages: "put", "upload part 3 of" */
	const char          *method; /* GET PUT POST HEAD DELETE */
	const char          *key;    /* NULL: the bucket itself */
	const char          *query;  /* canonical query string, or NULL */
	const unsigned char *body;   /* PUT/POST body, may be NULL */
	size_t               body_len;
	uint64_t             range_start; /* with range_len != 0 */
	uint64_t             range_len;   /* 0: no Range; UINT64_MAX: to the end */
	const char          *meta_hash;   /* x-amz-meta-pgbk-hash, or NULL */
	const char          *content_md5; /* Content-MD5 (base64), or NULL */
	S3Sink               sink;        /* 2xx body goes here; NULL: resp->body */
	void                *sink_ctx;
	bool                 check_body;    /* a 2xx may still carry <Error> */
	bool                 absent_is_ok;  /* 404 NoSuchKey/NoSuchUpload is success */
	bool                 if_none_match; /* PUT only if absent: 412 -> PGBK_EXISTS */
} S3Request;

typedef struct S3Response
{
	long     status;
	PgbkBuf  body;
	bool     has_length;
	uint64_t content_length;
	int64_t  last_modified;
	char     etag[72];
	char     meta_hash[65];
	char     request_id[80];
	char     code[64];     /* S3 error Code from the body */
	char     message[256]; /* S3 error Message from the body */
	int      attempts;     /* attempts made by s3_execute */
} S3Response;

/* State shared with the curl callbacks during one attempt. */
typedef struct Transfer
{
	const struct S3Client *c;
	const S3Request       *req;
	S3Response            *resp;
	size_t                 read_pos;
	bool                   range_sent;
	uint64_t               delivered;   /* body bytes handed to the sink */
	PgbkStatus             sink_status; /* sink failure (err filled by the sink) */
	PgbkError             *err;
	bool                   too_large;
	bool                   range_ignored;
	bool                   interrupted;
	/* the attempt's deadline (see attempt_deadline_ms) */
	int64_t  start_us;
	uint64_t deadline_bytes; /* the size the deadline was last computed for */
	int64_t  deadline_ms;
	bool     deadline_hit;
	uint64_t bytes_moved; /* at the deadline, for the message */
} Transfer;

static bool curl_ready = false;

/* ---------------------------------------------------------------------
 * small helpers
 */

static void
copy_str(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* "put \"key\" in bucket \"b\"" or "list bucket \"b\"", for messages */
static void
describe_target(const S3Client *c, const S3Request *req, char *out, size_t outlen)
{
	if (req->key)
		snprintf(out, outlen, "%s \"%s\" in bucket \"%s\"", req->op, req->key, c->bucket);
	else
		snprintf(out, outlen, "%s bucket \"%s\"", req->op, c->bucket);
}

static bool
is_ip_literal(const char *host)
{
	const char *p;

	if (host[0] == '[')
		return true;
	for (p = host; *p; p++)
		if (!isdigit((unsigned char) *p) && *p != '.')
			return false;
	return true;
}

static void
wipe_free(char *s)
{
	if (s)
	{
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* ---------------------------------------------------------------------
 * client
 */

/* Split "scheme://host[:port][/]" into the client's fields. */
static PgbkStatus
parse_endpoint(S3Client *c, const char *endpoint, PgbkError *err)
{
	const char *p = strstr(endpoint, "://");
	const char *hostp;
	const char *end;
	const char *colon;
	size_t      hlen;

	if (p == NULL)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "invalid s3_endpoint \"%s\": expected http://host[:port] or "
		                  "https://host[:port]",
		                  endpoint);
	c->scheme = strndup(endpoint, (size_t) (p - endpoint));
	if (c->scheme == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if (strcmp(c->scheme, "http") != 0 && strcmp(c->scheme, "https") != 0)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "invalid s3_endpoint \"%s\": scheme must be http or https", endpoint);
	hostp = p + 3;
	end = hostp + strcspn(hostp, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "invalid s3_endpoint \"%s\": a path, query or fragment is not supported",
		                  endpoint);
	if (hostp[0] == '[')
	{
		const char *rb = memchr(hostp, ']', (size_t) (end - hostp));

		if (rb == NULL)
			return pgbk_error(err, PGBK_ERR_CONFIG, "invalid s3_endpoint \"%s\": unclosed '['",
			                  endpoint);
		colon = (rb + 1 < end && rb[1] == ':') ? rb + 1 : NULL;
		hlen = (size_t) (rb + 1 - hostp);
	}
	else
	{
		colon = memchr(hostp, ':', (size_t) (end - hostp));
		hlen = colon ? (size_t) (colon - hostp) : (size_t) (end - hostp);
	}
	if (hlen == 0)
		return pgbk_error(err, PGBK_ERR_CONFIG, "invalid s3_endpoint \"%s\": no host name",
		                  endpoint);
	c->host = strndup(hostp, hlen);
	if (colon)
	{
		const char *q;
		long        port;

		for (q = colon + 1; q < end; q++)
			if (!isdigit((unsigned char) *q))
				break;
		port = (colon + 1 < end && q == end) ? strtol(colon + 1, NULL, 10) : -1;
		if (port <= 0 || port > 65535)
			return pgbk_error(err, PGBK_ERR_CONFIG, "invalid s3_endpoint \"%s\": bad port",
			                  endpoint);
		/* the scheme's default port is left out, as clients send Host */
		if ((strcmp(c->scheme, "https") == 0 && port == 443) ||
		    (strcmp(c->scheme, "http") == 0 && port == 80))
			c->port = strdup("");
		else
			c->port = strndup(colon, (size_t) (end - colon));
	}
	else
		c->port = strdup("");
	if (c->host == NULL || c->port == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

/* CURLOPT_CONNECT_TO entry "::host:port" for s3_connect_host "host[:port]". */
static PgbkStatus
set_connect_to(S3Client *c, const char *connect_host, PgbkError *err)
{
	PgbkBuf     b;
	const char *rb;
	bool        has_port;
	bool        ok;

	if (connect_host[0] == '[')
	{
		rb = strchr(connect_host, ']');
		if (rb == NULL)
			return pgbk_error(err, PGBK_ERR_CONFIG, "invalid s3_connect_host \"%s\"", connect_host);
		has_port = rb[1] == ':';
	}
	else
	{
		const char *colon = strchr(connect_host, ':');

		has_port = colon != NULL && strchr(colon + 1, ':') == NULL;
	}
	pgbk_buf_init(&b);
	if (connect_host[0] != '[' && strchr(connect_host, ':') && !has_port)
		ok = pgbk_buf_printf(&b, "::[%s]:", connect_host); /* bare IPv6 address */
	else
		ok = pgbk_buf_printf(&b, "::%s%s", connect_host, has_port ? "" : ":");
	if (ok)
		c->connect_to = curl_slist_append(NULL, (char *) b.data);
	pgbk_buf_free(&b);
	if (!ok || c->connect_to == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

PgbkStatus
s3_client_new(const PgbkConfig *cfg, const PgbkCredentials *cred, S3Client **out, PgbkError *err)
{
	S3Client  *c;
	PgbkStatus st;

	*out = NULL;
	if (cfg->s3_bucket == NULL || cfg->s3_bucket[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "no s3 bucket given in repository");
	if (cfg->s3_endpoint == NULL || cfg->s3_endpoint[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "s3_endpoint is empty");
	if (cred == NULL || cred->access_key_id == NULL || cred->secret_access_key == NULL)
		return pgbk_error(err, PGBK_ERR_CONFIG, "no s3 credentials");
	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return pgbk_error(err, PGBK_ERR, "could not initialize libcurl");
		xmlInitParser();
		if (sodium_init() < 0)
			return pgbk_error(err, PGBK_ERR, "could not initialize libsodium");
		curl_ready = true;
	}
	c = calloc(1, sizeof(S3Client));
	if (c == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	st = parse_endpoint(c, cfg->s3_endpoint, err);
	if (st == PGBK_OK && cfg->s3_connect_host && cfg->s3_connect_host[0])
		st = set_connect_to(c, cfg->s3_connect_host, err);
	if (st == PGBK_OK && cfg->s3_uri_style != PGBK_URI_PATH && is_ip_literal(c->host) &&
	    c->connect_to == NULL)
		st = pgbk_error(err, PGBK_ERR_CONFIG,
		                "s3_uri_style = host needs a host name in s3_endpoint, not the address "
		                "\"%s\": set s3_uri_style = path",
		                c->host);
	if (st == PGBK_OK)
	{
		c->endpoint = strdup(cfg->s3_endpoint);
		c->bucket = strdup(cfg->s3_bucket);
		c->region = strdup(cfg->s3_region && cfg->s3_region[0] ? cfg->s3_region : "us-east-1");
		c->uri_style = cfg->s3_uri_style == PGBK_URI_PATH ? PGBK_URI_PATH : PGBK_URI_HOST;
		c->ca_file = pgbk_strdup(cfg->s3_ca_file && cfg->s3_ca_file[0] ? cfg->s3_ca_file : NULL);
		c->verify_tls = cfg->s3_verify_tls;
		c->connect_host = pgbk_strdup(cfg->s3_connect_host);
		c->connect_timeout_ms = cfg->s3_connect_timeout_ms > 0 ? cfg->s3_connect_timeout_ms : 10000;
		c->low_speed_time_s = cfg->s3_timeout_ms > 0 ? (cfg->s3_timeout_ms + 999) / 1000 : 60;
		c->timeout_ms = cfg->s3_timeout_ms > 0 ? cfg->s3_timeout_ms : 60000;
		c->min_rate = cfg->s3_min_rate > 0 ? cfg->s3_min_rate : 1024 * 1024;
		c->max_retries = cfg->s3_max_retries >= 0 ? cfg->s3_max_retries : 0;
		c->access_key_id = strdup(cred->access_key_id);
		c->secret_access_key = strdup(cred->secret_access_key);
		c->session_token =
		    pgbk_strdup(cred->session_token && cred->session_token[0] ? cred->session_token : NULL);
		c->curl = curl_easy_init();
		if (c->endpoint == NULL || c->bucket == NULL || c->region == NULL ||
		    (cfg->s3_ca_file && cfg->s3_ca_file[0] && c->ca_file == NULL) ||
		    (cfg->s3_connect_host && c->connect_host == NULL) || c->access_key_id == NULL ||
		    c->secret_access_key == NULL ||
		    (cred->session_token && cred->session_token[0] && c->session_token == NULL))
			st = pgbk_error(err, PGBK_ERR, "out of memory");
		else if (c->curl == NULL)
			st = pgbk_error(err, PGBK_ERR, "could not create a libcurl handle");
	}
	if (st != PGBK_OK)
	{
		s3_client_free(c);
		return st;
	}
	*out = c;
	return PGBK_OK;
}

void
s3_client_free(S3Client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->connect_to);
	free(c->endpoint);
	free(c->scheme);
	free(c->host);
	free(c->port);
	free(c->bucket);
	free(c->region);
	free(c->ca_file);
	free(c->connect_host);
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	free(c);
}

const char *
s3_client_endpoint(const S3Client *c)
{
	return c->endpoint;
}

const char *
s3_client_bucket(const S3Client *c)
{
	return c->bucket;
}

/* ---------------------------------------------------------------------
 * curl callbacks
 */

static size_t
header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	Transfer   *t = ud;
	S3Response *r = t->resp;
	size_t      len = size * nitems;
	size_t      nlen;
	const char *v;
	size_t      vlen;
	const char *colon;

	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0)
	{
		/* a new response (after a 100 Continue, say): forget the last one */
		const char *sp = memchr(buf, ' ', len);

		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->has_length = false;
		r->etag[0] = r->meta_hash[0] = r->request_id[0] = '\0';
		r->last_modified = 0;
		return len;
	}
	colon = memchr(buf, ':', len);
	if (colon == NULL)
		return len;
	nlen = (size_t) (colon - buf);
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;

#define HEADER_IS(name) (nlen == strlen(name) && strncasecmp(buf, name, nlen) == 0)
	if (HEADER_IS("content-length"))
	{
		char tmp[32];

		copy_str(tmp, sizeof(tmp), v, vlen);
		r->content_length = strtoull(tmp, NULL, 10);
		r->has_length = true;
	}
	else if (HEADER_IS("etag"))
		copy_str(r->etag, sizeof(r->etag), v, vlen);
	else if (HEADER_IS("x-amz-meta-pgbk-hash"))
		copy_str(r->meta_hash, sizeof(r->meta_hash), v, vlen);
	else if (HEADER_IS("x-amz-request-id"))
		copy_str(r->request_id, sizeof(r->request_id), v, vlen);
	else if (HEADER_IS("last-modified"))
	{
		char   tmp[64];
		time_t tt;

		copy_str(tmp, sizeof(tmp), v, vlen);
		tt = curl_getdate(tmp, NULL);
		r->last_modified = tt > 0 ? (int64_t) tt : 0;
	}
#undef HEADER_IS
	return len;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	Transfer   *t = ud;
	S3Response *r = t->resp;
	size_t      len = size * nmemb;
	bool        ok2xx = r->status >= 200 && r->status < 300;

	if (ok2xx && t->req->sink)
	{
		PgbkStatus st;

		/* a server that ignores Range would hand us the wrong bytes */
		if (t->range_sent && r->status != 206)
		{
			t->range_ignored = true;
			return 0;
		}
		st = t->req->sink(t->req->sink_ctx, data, len, t->err);
		if (st != PGBK_OK)
		{
			t->sink_status = st;
			return 0;
		}
		t->delivered += len;
		return len;
	}
	if (ok2xx)
	{
		if (r->body.len + len > S3_RESULT_BODY_MAX)
		{
			t->too_large = true;
			return 0;
		}
	}
	else if (r->body.len + len > S3_ERROR_BODY_MAX)
		return len; /* keep the head of an error document, drain the rest */
	if (!pgbk_buf_append(&r->body, data, len))
	{
		t->too_large = true;
		return 0;
	}
	return len;
}

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	Transfer *t = ud;
	size_t    room = size * nitems;
	size_t    left = t->req->body_len - t->read_pos;
	size_t    n = left < room ? left : room;

	if (n > 0)
		memcpy(buf, t->req->body + t->read_pos, n);
	t->read_pos += n;
	return n;
}

/* curl rewinds the body when it resends on a reused connection that died */
static int
seek_cb(void *ud, curl_off_t offset, int origin)
{
	Transfer *t = ud;

	if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > t->req->body_len)
		return CURL_SEEKFUNC_FAIL;
	t->read_pos = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/*
 * How long one attempt may take, in ms: s3_connect_timeout + s3_timeout +
 * bytes at s3_min_rate.  bytes is the largest size known so far: the body
 * sent, the Content-Length announced, or what arrived (an answer of unknown
 * length that keeps up with s3_min_rate keeps extending its own deadline).
 */
static int64_t
attempt_deadline_ms(const S3Client *c, uint64_t bytes)
{
	uint64_t extra = bytes / c->min_rate * 1000 + (bytes % c->min_rate) * 1000 / c->min_rate;

	return (int64_t) c->connect_timeout_ms + c->timeout_ms + (int64_t) extra;
}

static int
progress_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	Transfer *t = ud;
	uint64_t  bytes = t->deadline_bytes;
	int64_t   elapsed_ms;

	if (pgbk_interrupted())
	{
		t->interrupted = true;
		return 1;
	}
	if (dltotal > 0 && (uint64_t) dltotal > bytes)
		bytes = (uint64_t) dltotal;
	if (dlnow > 0 && (uint64_t) dlnow > bytes)
		bytes = (uint64_t) dlnow;
	if (ultotal > 0 && (uint64_t) ultotal > bytes)
		bytes = (uint64_t) ultotal;
	if (bytes != t->deadline_bytes)
	{
		t->deadline_bytes = bytes;
		t->deadline_ms = attempt_deadline_ms(t->c, bytes);
	}
	elapsed_ms = (pgbk_now_us() - t->start_us) / 1000;
	if (elapsed_ms > t->deadline_ms)
	{
		t->deadline_hit = true;
		t->bytes_moved = (uint64_t) (dlnow > 0 ? dlnow : 0) + (uint64_t) (ulnow > 0 ? ulnow : 0);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * XML
 */

static bool
node_is(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static xmlNodePtr
child_named(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n;

	for (n = parent ? parent->children : NULL; n; n = n->next)
		if (node_is(n, name))
			return n;
	return NULL;
}

/* Text of the named child (XML entities decoded) into out; "" if absent. */
static void
child_text(xmlNodePtr parent, const char *name, char *out, size_t outlen)
{
	xmlNodePtr n = child_named(parent, name);
	xmlChar   *t = n ? xmlNodeGetContent(n) : NULL;

	if (t)
		copy_str(out, outlen, (const char *) t, strlen((const char *) t));
	else
		out[0] = '\0';
	xmlFree(t);
}

static xmlDocPtr
parse_xml(const PgbkBuf *body)
{
	if (body->len == 0 || body->len > INT_MAX)
		return NULL;
	return xmlReadMemory((const char *) body->data, (int) body->len, "s3.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* Fill resp->code/message from an <Error> document; true if it was one. */
static bool
parse_error_doc(S3Response *resp)
{
	xmlDocPtr  doc = parse_xml(&resp->body);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	bool       found = false;

	if (root && node_is(root, "Error"))
	{
		char rid[80];

		child_text(root, "Code", resp->code, sizeof(resp->code));
		child_text(root, "Message", resp->message, sizeof(resp->message));
		child_text(root, "RequestId", rid, sizeof(rid));
		if (resp->request_id[0] == '\0' && rid[0])
			copy_str(resp->request_id, sizeof(resp->request_id), rid, strlen(rid));
		found = true;
	}
	if (doc)
		xmlFreeDoc(doc);
	return found;
}

/* "2024-01-02T03:04:05.000Z" -> Unix seconds (0 if malformed) */
static int64_t
parse_iso8601(const char *s)
{
	int64_t us;

	if (pgbk_time_parse(s, PGBK_TIME_RFC3339, &us, NULL) != PGBK_OK)
		return 0;
	return us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
}

/* ---------------------------------------------------------------------
 * one attempt
 */

static void
response_reset(S3Response *r)
{
	r->status = 0;
	pgbk_buf_reset(&r->body);
	r->has_length = false;
	r->content_length = 0;
	r->last_modified = 0;
	r->etag[0] = r->meta_hash[0] = r->request_id[0] = r->code[0] = r->message[0] = '\0';
}

/* Add "Name: value" to the curl list and, when sign, to the signed set. */
static bool
add_header(struct curl_slist **list, SigV4Header *signed_hdrs, int *nsigned, const char *name,
           const char *value, bool sign)
{
	PgbkBuf            line;
	struct curl_slist *nl;

	pgbk_buf_init(&line);
	if (!pgbk_buf_printf(&line, "%s: %s", name, value))
	{
		pgbk_buf_free(&line);
		return false;
	}
	nl = curl_slist_append(*list, (char *) line.data);
	/* curl copied it; the line may hold a secret (Authorization) */
	sodium_memzero(line.data, line.len);
	pgbk_buf_free(&line);
	if (nl == NULL)
		return false;
	*list = nl;
	if (sign)
	{
		signed_hdrs[*nsigned].name = name;
		signed_hdrs[*nsigned].value = value;
		(*nsigned)++;
	}
	return true;
}

/* Append a fixed header line; on failure the list is left as it was. */
static bool
add_raw_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *nl = curl_slist_append(*list, line);

	if (nl == NULL)
		return false;
	*list = nl;
	return true;
}

/*
 * Perform one attempt of req.  Returns non-OK only for failures to set the
 * request up (then no retry makes sense); the transfer outcome is in *rc and
 * t->resp.
 */
static PgbkStatus
perform_attempt(S3Client *c, const S3Request *req, const char *payload_hash, uint64_t range_start,
                uint64_t range_len, const char *if_match, Transfer *t, CURLcode *rc, PgbkError *err)
{
	PgbkBuf            path;
	PgbkBuf            url;
	PgbkBuf            host;
	char               range[64];
	char               amz_date[17];
	SigV4Header        sh[10];
	int                nsigned = 0;
	struct curl_slist *hdrs = NULL;
	SigV4Request       sreq;
	SigV4Key           skey;
	SigV4Signature     sig;
	PgbkStatus         st = PGBK_OK;
	bool               ok;
	CURL              *h = c->curl;

	pgbk_buf_init(&path);
	pgbk_buf_init(&url);
	pgbk_buf_init(&host);
	sigv4_signature_init(&sig);

	/* unencoded path (signed) and URL (the same path encoded once) */
	if (c->uri_style == PGBK_URI_PATH)
		ok = pgbk_buf_printf(&path, "/%s%s%s", c->bucket, req->key ? "/" : "",
		                     req->key ? req->key : "") &&
		     pgbk_buf_printf(&host, "%s%s", c->host, c->port);
	else
		ok = pgbk_buf_printf(&path, "/%s", req->key ? req->key : "") &&
		     pgbk_buf_printf(&host, "%s.%s%s", c->bucket, c->host, c->port);
	ok = ok && pgbk_buf_printf(&url, "%s://%s", c->scheme, (char *) host.data) &&
	     sigv4_uri_encode(&url, (char *) path.data, path.len, true) &&
	     (req->query == NULL || req->query[0] == '\0' || pgbk_buf_printf(&url, "?%s", req->query));
	if (!ok)
	{
		st = pgbk_error(err, PGBK_ERR, "out of memory");
		goto done;
	}

	sigv4_amz_date(time(NULL), amz_date);
	range[0] = '\0';
	if (range_len != 0)
	{
		if (range_len == UINT64_MAX || range_start + range_len - 1 < range_start)
			snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long) range_start);
		else
			snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long) range_start,
			         (unsigned long long) (range_start + range_len - 1));
	}
	ok = add_header(&hdrs, sh, &nsigned, "Host", (char *) host.data, true) &&
	     add_header(&hdrs, sh, &nsigned, "x-amz-date", amz_date, true) &&
	     add_header(&hdrs, sh, &nsigned, "x-amz-content-sha256", payload_hash, true) &&
	     (range[0] == '\0' || add_header(&hdrs, sh, &nsigned, "Range", range, true)) &&
	     (if_match == NULL || add_header(&hdrs, sh, &nsigned, "If-Match", if_match, true)) &&
	     (!req->if_none_match || add_header(&hdrs, sh, &nsigned, "If-None-Match", "*", true)) &&
	     (req->meta_hash == NULL ||
	      add_header(&hdrs, sh, &nsigned, "x-amz-meta-pgbk-hash", req->meta_hash, true)) &&
	     (req->content_md5 == NULL ||
	      add_header(&hdrs, sh, &nsigned, "Content-MD5", req->content_md5, true)) &&
	     (c->session_token == NULL ||
	      add_header(&hdrs, sh, &nsigned, "x-amz-security-token", c->session_token, true));
	if (!ok)
	{
		st = pgbk_error(err, PGBK_ERR, "out of memory");
		goto done;
	}

	sreq.method = req->method;
	sreq.path = (char *) path.data;
	sreq.query = req->query;
	sreq.headers = sh;
	sreq.nheaders = nsigned;
	sreq.payload_hash = payload_hash;
	skey.access_key_id = c->access_key_id;
	skey.secret_access_key = c->secret_access_key;
	skey.region = c->region;
	skey.service = "s3";
	st = sigv4_sign(&sreq, &skey, amz_date, &sig, err);
	if (st != PGBK_OK)
		goto done;
	/* no 100-continue round trip, no Accept; POST bodies are XML */
	ok = add_header(&hdrs, sh, &nsigned, "Authorization", (char *) sig.authorization.data, false);
	ok = ok && add_raw_header(&hdrs, "Expect:") && add_raw_header(&hdrs, "Accept:");
	if (ok && strcmp(req->method, "POST") == 0)
		ok = add_raw_header(&hdrs, "Content-Type: application/xml");
	if (!ok)
	{
		st = pgbk_error(err, PGBK_ERR, "out of memory");
		goto done;
	}

	/* reset keeps the live connection, the DNS cache and TLS sessions */
	curl_easy_reset(h);
	c->errbuf[0] = '\0';
	t->range_sent = range[0] != '\0';
	curl_easy_setopt(h, CURLOPT_URL, (char *) url.data);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long) S3_LOW_SPEED_BPS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pgbk/" PGBK_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (c->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);
	if (!c->verify_tls)
	{
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	else if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (strcmp(req->method, "PUT") == 0)
	{
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "POST") == 0)
	{
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0)
	{
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, t);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
	}

	t->c = c;
	t->start_us = pgbk_now_us();
	t->deadline_bytes = req->body_len;
	if (range_len != 0 && range_len != UINT64_MAX && range_len > t->deadline_bytes)
		t->deadline_bytes = range_len;
	t->deadline_ms = attempt_deadline_ms(c, t->deadline_bytes);
	*rc = curl_easy_perform(h);
	if (t->resp->status == 0)
	{
		long code = 0;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		t->resp->status = code;
	}
	/* the header list holds the Authorization header: drop it from the handle */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);

done:
	if (hdrs)
	{
		struct curl_slist *l;

		for (l = hdrs; l; l = l->next)
			sodium_memzero(l->data, strlen(l->data));
		curl_slist_free_all(hdrs);
	}
	sigv4_signature_free(&sig);
	pgbk_buf_free(&path);
	pgbk_buf_free(&url);
	pgbk_buf_free(&host);
	return st;
}

/* ---------------------------------------------------------------------
 * outcome classification and the retry loop
 */

typedef struct Outcome
{
	PgbkStatus status;
	bool       retry;
	bool       deadline;   /* the attempt ran past its deadline */
	char       cause[512]; /* what went wrong, without the target */
} Outcome;

static const char *
auth_explanation(const char *code)
{
	if (strcmp(code, "InvalidAccessKeyId") == 0)
		return "the access key id is not known to the endpoint";
	if (strcmp(code, "SignatureDoesNotMatch") == 0)
		return "the signature does not match: wrong secret access key";
	if (strcmp(code, "AccessDenied") == 0)
		return "the credentials are not allowed to do this";
	if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0 ||
	    strcmp(code, "TokenRefreshRequired") == 0)
		return "the session token is expired or invalid";
	if (strcmp(code, "RequestTimeTooSkewed") == 0)
		return "the clock of this machine differs too much from the server's";
	return NULL;
}

static void
classify_curl(S3Client *c, CURLcode rc, Outcome *o)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	long        os_errno = 0;

	o->retry = false;
	/*
	 * A connection reset or refused during the TLS handshake is a network
	 * failure (a server going down, say), not a certificate problem.
	 */
	if (rc == CURLE_SSL_CONNECT_ERROR &&
	    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
	    (os_errno == ECONNRESET || os_errno == ECONNREFUSED || os_errno == ECONNABORTED ||
	     os_errno == EPIPE || os_errno == ETIMEDOUT || os_errno == ENETUNREACH ||
	     os_errno == EHOSTUNREACH))
		rc = CURLE_RECV_ERROR;
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			o->status = PGBK_ERR_DNS;
			o->retry = true;
			break;
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
			o->status = PGBK_ERR_CONNECT;
			o->retry = true;
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_USE_SSL_FAILED:
			o->status = PGBK_ERR_TLS;
			break;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
			o->status = PGBK_ERR_CONFIG;
			break;
		case CURLE_WEIRD_SERVER_REPLY:
			o->status = PGBK_ERR_SERVER;
			o->retry = true;
			break;
		default:
			o->status = PGBK_ERR;
			break;
	}
	if (o->status == PGBK_ERR_TLS)
	{
		if (!c->verify_tls)
			snprintf(o->cause, sizeof(o->cause), "%s", detail);
		else if (c->ca_file)
			snprintf(o->cause, sizeof(o->cause),
			         "%s: check that s3_ca_file \"%s\" holds the CA that signed the server "
			         "certificate",
			         detail, c->ca_file);
		else
			snprintf(o->cause, sizeof(o->cause),
			         "%s: the system CAs do not trust the server certificate; set s3_ca_file "
			         "to the CA that signed it",
			         detail);
	}
	else
		snprintf(o->cause, sizeof(o->cause), "%s", detail);
}

/* Decide what an HTTP answer other than a plain success means. */
static void
classify_http(S3Client *c, const S3Request *req, S3Response *resp, Outcome *o)
{
	long        s = resp->status;
	const char *code;
	const char *expl;
	char        msg[300];

	if (resp->code[0] == '\0')
		parse_error_doc(resp);
	code = resp->code;
	msg[0] = '\0';
	if (resp->message[0])
		snprintf(msg, sizeof(msg), ": %s", resp->message);
	o->retry = false;

	if (s == 403 ||
	    (s == 400 && (strcmp(code, "InvalidAccessKeyId") == 0 ||
	                  strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0)))
	{
		o->status = PGBK_ERR_AUTH;
		expl = auth_explanation(code);
		if (strcmp(code, "RequestTimeTooSkewed") == 0)
			snprintf(o->cause, sizeof(o->cause), "%s (%s): check the system clock", code, expl);
		else
			snprintf(o->cause, sizeof(o->cause), "%s%s%s%s: check s3_credentials_file",
			         code[0] ? code : "HTTP 403 (the answer names no cause)", expl ? " (" : "",
			         expl ? expl : "", expl ? ")" : "");
	}
	else if (s == 404 && (strcmp(code, "NoSuchBucket") == 0 || (req->key == NULL && !code[0])))
	{
		o->status = PGBK_ERR_NO_BUCKET;
		o->cause[0] = '\0';
	}
	else if (s == 404 && req->key != NULL && (code[0] == '\0' || strcmp(code, "NoSuchKey") == 0))
	{
		o->status = PGBK_NOT_FOUND;
		o->cause[0] = '\0';
	}
	else if (s == 301 || s == 307 || strcmp(code, "AuthorizationHeaderMalformed") == 0)
	{
		o->status = PGBK_ERR_CONFIG;
		snprintf(o->cause, sizeof(o->cause),
		         "HTTP %ld%s%s%s: the bucket is served by another endpoint or region; check "
		         "s3_endpoint and s3_region",
		         s, code[0] ? " (" : "", code, code[0] ? ")" : "");
	}
	else if (s >= 500 || s == 429 || strcmp(code, "SlowDown") == 0 ||
	         strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0 ||
	         strcmp(code, "XAmzContentSHA256Mismatch") == 0 || s == 0)
	{
		o->status = PGBK_ERR_SERVER;
		o->retry = s != 501;
		snprintf(o->cause, sizeof(o->cause), "HTTP %ld%s%s%s%s%s%s", s, code[0] ? " " : "", code,
		         msg, resp->request_id[0] ? " (request id " : "", resp->request_id,
		         resp->request_id[0] ? ")" : "");
	}
	else if (s == 412 && req->if_none_match)
	{
		o->status = PGBK_EXISTS;
		snprintf(o->cause, sizeof(o->cause), "the object already exists");
	}
	else if (s == 412)
	{
		o->status = PGBK_ERR_SERVER;
		snprintf(o->cause, sizeof(o->cause),
		         "HTTP 412 (PreconditionFailed): the object changed while it was being read");
	}
	else
	{
		o->status = PGBK_ERR;
		snprintf(o->cause, sizeof(o->cause), "HTTP %ld%s%s%s", s, code[0] ? " " : "", code, msg);
	}
}

/* The final message for a failed request. */
static PgbkStatus
report(S3Client *c, const S3Request *req, const Outcome *o, int attempts, PgbkError *err)
{
	char target[1400];
	char tries[48];
	char via[300];

	describe_target(c, req, target, sizeof(target));
	tries[0] = '\0';
	if (attempts > 1)
		snprintf(tries, sizeof(tries), " (gave up after %d attempts)", attempts);
	via[0] = '\0';
	if (c->connect_host)
		snprintf(via, sizeof(via), " (connecting to %s)", c->connect_host);

	if (o->deadline)
		return pgbk_error(err, o->status,
		                  "s3 endpoint %s%s: request to %s exceeded its deadline: %s%s",
		                  c->endpoint, via, target, o->cause, tries);
	switch (o->status)
	{
		case PGBK_NOT_FOUND:
			return pgbk_error(err, o->status,
			                  "object \"%s\" does not exist in bucket \"%s\" at s3 endpoint %s",
			                  req->key ? req->key : "", c->bucket, c->endpoint);
		case PGBK_ERR_NO_BUCKET:
			return pgbk_error(err, o->status,
			                  "bucket \"%s\" does not exist at s3 endpoint %s: create it or "
			                  "correct the bucket in the repository setting",
			                  c->bucket, c->endpoint);
		case PGBK_ERR_AUTH:
			return pgbk_error(err, o->status, "access denied by s3 endpoint %s to %s: %s",
			                  c->endpoint, target, o->cause);
		case PGBK_ERR_CONNECT:
			return pgbk_error(err, o->status, "could not connect to s3 endpoint %s%s to %s: %s%s",
			                  c->endpoint, via, target, o->cause, tries);
		case PGBK_ERR_DNS:
			return pgbk_error(err, o->status,
			                  "could not resolve the host of s3 endpoint %s%s to %s: %s%s",
			                  c->endpoint, via, target, o->cause, tries);
		case PGBK_ERR_TLS:
			return pgbk_error(err, o->status, "tls failure talking to s3 endpoint %s%s to %s: %s",
			                  c->endpoint, via, target, o->cause);
		case PGBK_ERR_SERVER:
			return pgbk_error(err, o->status, "s3 endpoint %s failed to %s: %s%s", c->endpoint,
			                  target, o->cause, tries);
		case PGBK_ERR_CONFIG:
			return pgbk_error(err, o->status, "s3 endpoint %s could not %s: %s", c->endpoint,
			                  target, o->cause);
		default:
			return pgbk_error(err, o->status, "s3 endpoint %s refused to %s: %s", c->endpoint,
			                  target, o->cause);
	}
}

/* Wait before retry number attempt+1; false if interrupted meanwhile. */
static bool
backoff(int attempt)
{
	uint64_t delay = S3_BACKOFF_BASE_MS;
	int      waited = 0;
	int      total;
	int      i;

	for (i = 0; i < attempt && delay < S3_BACKOFF_CAP_MS; i++)
		delay *= 2;
	if (delay > S3_BACKOFF_CAP_MS)
		delay = S3_BACKOFF_CAP_MS;
	/* "equal jitter": half fixed, half random, so parallel clients spread out */
	total = (int) (delay / 2 + randombytes_uniform((uint32_t) (delay / 2 + 1)));
	while (waited < total)
	{
		int slice = total - waited < 100 ? total - waited : 100;

		if (pgbk_interrupted())
			return false;
		pgbk_sleep_ms(slice);
		waited += slice;
	}
	return !pgbk_interrupted();
}

/*
 * Run req with retries.  On success resp holds the last answer's headers
 * and (without a sink) its body.  A GET cut short is resumed after the
 * bytes already delivered, with If-Match on the first answer's ETag.
 */
static PgbkStatus
s3_execute(S3Client *c, const S3Request *req, S3Response *resp, PgbkError *err)
{
	char     payload_hash[65];
	char     first_etag[72] = "";
	uint64_t delivered = 0;
	uint64_t expected = UINT64_MAX; /* body bytes the first 2xx answer announced */
	int      attempt;

	/*
	 * Over TLS the body is not part of the signature: TLS already protects
	 * it in transit and the codec authenticates it end to end, while
	 * hashing it cost as much as compressing it (libsodium's SHA-256).  S3
	 * accepts "UNSIGNED-PAYLOAD" for exactly this case.  Plain HTTP (tests)
	 * signs the real hash.
	 */
	if (req->body && req->body_len > 0 && strcmp(c->scheme, "https") == 0)
		strcpy(payload_hash, "UNSIGNED-PAYLOAD");
	else if (req->body && req->body_len > 0)
		sigv4_payload_hash(req->body, req->body_len, payload_hash);
	else
		strcpy(payload_hash, SIGV4_EMPTY_SHA256);

	for (attempt = 0;; attempt++)
	{
		Transfer   t;
		CURLcode   rc = CURLE_OK;
		PgbkStatus st;
		Outcome    o;
		uint64_t   rstart = req->range_start;
		uint64_t   rlen = req->range_len;

		if (pgbk_interrupted())
			return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted before s3 request to %s",
			                  c->endpoint);
		if (delivered > 0)
		{
			rstart = (req->range_len != 0 ? req->range_start : 0) + delivered;
			rlen = (req->range_len == 0 || req->range_len == UINT64_MAX)
			           ? UINT64_MAX
			           : req->range_len - delivered;
		}
		memset(&t, 0, sizeof(t));
		t.req = req;
		t.resp = resp;
		t.err = err;
		t.sink_status = PGBK_OK;
		response_reset(resp);
		resp->attempts = attempt + 1;
		st = perform_attempt(c, req, payload_hash, rstart, rlen,
		                     delivered > 0 && first_etag[0] ? first_etag : NULL, &t, &rc, err);
		if (st != PGBK_OK)
			return st;
		delivered += t.delivered;
		if (first_etag[0] == '\0' && resp->etag[0])
			memcpy(first_etag, resp->etag, sizeof(first_etag));
		if (expected == UINT64_MAX && req->sink && resp->has_length && resp->status >= 200 &&
		    resp->status < 300)
			expected = resp->content_length;

		if (t.sink_status != PGBK_OK)
			return t.sink_status;
		o.deadline = false;
		if (t.deadline_hit && rc == CURLE_ABORTED_BY_CALLBACK)
		{
			/* a server trickling its answer (or ours) is retried like a timeout */
			o.status = PGBK_ERR_CONNECT;
			o.retry = true;
			o.deadline = true;
			snprintf(o.cause, sizeof(o.cause),
			         "not done after %.1f s (s3_connect_timeout %.1f s + s3_timeout %.1f s + "
			         "%llu bytes at s3_min_rate %llu bytes/s); %llu bytes moved",
			         t.deadline_ms / 1000.0, c->connect_timeout_ms / 1000.0, c->timeout_ms / 1000.0,
			         (unsigned long long) t.deadline_bytes, (unsigned long long) c->min_rate,
			         (unsigned long long) t.bytes_moved);
		}
		else if (t.interrupted || rc == CURLE_ABORTED_BY_CALLBACK)
		{
			char target[1400];

			describe_target(c, req, target, sizeof(target));
			return pgbk_error(err, PGBK_ERR_INTERRUPTED,
			                  "interrupted while trying to %s at s3 endpoint %s", target,
			                  c->endpoint);
		}
		/* the connection failed after the last byte: nothing to resume */
		if (rc != CURLE_OK && req->sink && delivered > 0 && delivered >= expected)
			return PGBK_OK;
		if (t.range_ignored)
		{
			o.status = PGBK_ERR_SERVER;
			o.retry = false;
			snprintf(o.cause, sizeof(o.cause), "HTTP %ld: the server ignored the Range header",
			         resp->status);
			return report(c, req, &o, attempt + 1, err);
		}
		if (t.too_large)
		{
			o.status = PGBK_ERR_SERVER;
			o.retry = false;
			snprintf(o.cause, sizeof(o.cause), "answer larger than %d bytes", S3_RESULT_BODY_MAX);
			return report(c, req, &o, attempt + 1, err);
		}

		if (o.deadline)
			; /* described above */
		else if (rc != CURLE_OK)
			classify_curl(c, rc, &o);
		else if (resp->status >= 200 && resp->status < 300)
		{
			/* CompleteMultipartUpload can answer 200 and fail in the body */
			if (!req->check_body || !parse_error_doc(resp))
				return PGBK_OK;
			resp->status =
			    (strcmp(resp->code, "InternalError") == 0 || strcmp(resp->code, "SlowDown") == 0)
			        ? 500
			        : 400;
			classify_http(c, req, resp, &o);
		}
		else if (req->range_len != 0 && resp->status == 416)
			return PGBK_OK; /* the range starts at or past the end: no bytes */
		else
		{
			classify_http(c, req, resp, &o);
			if (req->absent_is_ok && resp->status == 404 &&
			    (strcmp(resp->code, "NoSuchKey") == 0 || strcmp(resp->code, "NoSuchUpload") == 0 ||
			     resp->code[0] == '\0'))
				return PGBK_OK;
		}

		if (!o.retry || attempt >= c->max_retries)
			return report(c, req, &o, attempt + 1, err);
		{
			char target[1400];

			describe_target(c, req, target, sizeof(target));
			pgbk_log(PGBK_LOG_WARNING,
			         "s3 endpoint %s: could not %s: %s; retrying (attempt %d of %d)", c->endpoint,
			         target, o.cause, attempt + 2, c->max_retries + 1);
		}
		if (!backoff(attempt))
			return pgbk_error(err, PGBK_ERR_INTERRUPTED,
			                  "interrupted while waiting to retry a request to s3 endpoint %s",
			                  c->endpoint);
	}
}

static void
request_init(S3Request *req, const char *method, const char *key)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->key = key;
}

static void
response_init(S3Response *resp)
{
	memset(resp, 0, sizeof(*resp));
	pgbk_buf_init(&resp->body);
}

static PgbkStatus
check_key(const char *key, PgbkError *err)
{
	if (key == NULL || key[0] == '\0')
		return pgbk_error(err, PGBK_ERR_USAGE, "empty s3 object key");
	if (strlen(key) > S3_MAX_KEY_LEN)
		return pgbk_error(err, PGBK_ERR_USAGE, "s3 object key longer than %d bytes: \"%.64s...\"",
		                  S3_MAX_KEY_LEN, key);
	return PGBK_OK;
}

static PgbkStatus
check_meta_hash(const char *meta_hash, PgbkError *err)
{
	size_t i;

	if (meta_hash == NULL)
		return PGBK_OK;
	if (strlen(meta_hash) > 64)
		return pgbk_error(err, PGBK_ERR_USAGE, "metadata hash longer than 64 characters");
	for (i = 0; meta_hash[i]; i++)
		if (!isxdigit((unsigned char) meta_hash[i]))
			return pgbk_error(err, PGBK_ERR_USAGE, "metadata hash is not hexadecimal");
	return PGBK_OK;
}

/* ---------------------------------------------------------------------
 * operations
 */

static PgbkStatus
put_object(S3Client *c, const char *key, const void *data, size_t len, const char *meta_hash,
           bool if_none_match, PgbkError *err)
{
	S3Request  req;
	S3Response resp;
	PgbkStatus st;

	if ((st = check_key(key, err)) != PGBK_OK || (st = check_meta_hash(meta_hash, err)) != PGBK_OK)
		return st;
	request_init(&req, "PUT", key);
	snprintf(req.op, sizeof(req.op), "put");
	req.body = data;
	req.body_len = len;
	req.meta_hash = meta_hash && meta_hash[0] ? meta_hash : NULL;
	req.if_none_match = if_none_match;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	pgbk_buf_free(&resp.body);
	return st;
}

PgbkStatus
s3_put(S3Client *c, const char *key, const void *data, size_t len, const char *meta_hash,
       PgbkError *err)
{
	return put_object(c, key, data, len, meta_hash, false, err);
}

PgbkStatus
s3_put_if_absent(S3Client *c, const char *key, const void *data, size_t len, const char *meta_hash,
                 PgbkError *err)
{
	return put_object(c, key, data, len, meta_hash, true, err);
}

PgbkStatus
s3_get(S3Client *c, const char *key, uint64_t offset, uint64_t length, S3Sink sink, void *ctx,
       PgbkError *err)
{
	S3Request  req;
	S3Response resp;
	PgbkStatus st;

	if ((st = check_key(key, err)) != PGBK_OK)
		return st;
	if (length == 0)
		return PGBK_OK;
	request_init(&req, "GET", key);
	snprintf(req.op, sizeof(req.op), "get");
	if (offset != 0 || length != UINT64_MAX)
	{
		req.range_start = offset;
		req.range_len = length;
	}
	req.sink = sink;
	req.sink_ctx = ctx;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	pgbk_buf_free(&resp.body);
	return st;
}

PgbkStatus
s3_head(S3Client *c, const char *key, S3ObjectInfo *info, PgbkError *err)
{
	S3Request  req;
	S3Response resp;
	PgbkStatus st;

	memset(info, 0, sizeof(*info));
	if ((st = check_key(key, err)) != PGBK_OK)
		return st;
	request_init(&req, "HEAD", key);
	snprintf(req.op, sizeof(req.op), "head");
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	if (st == PGBK_OK)
	{
		info->size = resp.has_length ? resp.content_length : 0;
		info->mtime = resp.last_modified;
		memcpy(info->meta_hash, resp.meta_hash, sizeof(info->meta_hash));
		memcpy(info->etag, resp.etag, sizeof(info->etag));
	}
	pgbk_buf_free(&resp.body);
	return st;
}

PgbkStatus
s3_delete(S3Client *c, const char *key, PgbkError *err)
{
	S3Request  req;
	S3Response resp;
	PgbkStatus st;

	if ((st = check_key(key, err)) != PGBK_OK)
		return st;
	request_init(&req, "DELETE", key);
	snprintf(req.op, sizeof(req.op), "delete");
	req.absent_is_ok = true;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	pgbk_buf_free(&resp.body);
	return st;
}

/* XML text: the five characters XML reserves, escaped. */
static bool
append_xml_text(PgbkBuf *out, const char *s)
{
	bool ok = true;

	for (; ok && *s; s++)
	{
		switch (*s)
		{
			case '&':
				ok = pgbk_buf_append_str(out, "&amp;");
				break;
			case '<':
				ok = pgbk_buf_append_str(out, "&lt;");
				break;
			case '>':
				ok = pgbk_buf_append_str(out, "&gt;");
				break;
			case '"':
				ok = pgbk_buf_append_str(out, "&quot;");
				break;
			case '\'':
				ok = pgbk_buf_append_str(out, "&apos;");
				break;
			default:
				ok = pgbk_buf_append(out, s, 1);
		}
	}
	return ok;
}

/*
 * Collect the <Key> of every <Error> in a DeleteObjects answer into
 * failed[] (indexes into keys), so they can be retried one by one.
 */
static int
delete_result_errors(const PgbkBuf *body, const char *const *keys, int n, int *failed)
{
	xmlDocPtr  doc = parse_xml(body);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr e;
	int        nfailed = 0;
	char       key[S3_MAX_KEY_LEN + 1];
	int        i;

	if (root == NULL || !node_is(root, "DeleteResult"))
	{
		/* not the answer we asked for: treat every key as not deleted */
		for (i = 0; i < n; i++)
			failed[nfailed++] = i;
		xmlFreeDoc(doc);
		return nfailed;
	}
	for (e = root->children; e; e = e->next)
	{
		if (!node_is(e, "Error"))
			continue;
		child_text(e, "Key", key, sizeof(key));
		for (i = 0; i < n; i++)
			if (strcmp(keys[i], key) == 0)
			{
				failed[nfailed++] = i;
				break;
			}
	}
	xmlFreeDoc(doc);
	return nfailed;
}

PgbkStatus
s3_delete_many(S3Client *c, const char *const *keys, int n, PgbkError *err)
{
	S3Request     req;
	S3Response    resp;
	PgbkBuf       body;
	PgbkStatus    st = PGBK_OK;
	unsigned char md5[MD5_DIGEST_LENGTH];
	char md5_b64[sodium_base64_ENCODED_LEN(MD5_DIGEST_LENGTH, sodium_base64_VARIANT_ORIGINAL)];
	int *failed;
	int  nfailed, i;
	bool ok;

	if (n <= 0)
		return PGBK_OK;
	if (n > S3_DELETE_BATCH)
		return pgbk_error(err, PGBK_ERR_USAGE, "at most %d keys per DeleteObjects request",
		                  S3_DELETE_BATCH);
	for (i = 0; i < n; i++)
		if ((st = check_key(keys[i], err)) != PGBK_OK)
			return st;
	if (n == 1 || c->no_multi_delete)
	{
		for (i = 0; i < n && st == PGBK_OK; i++)
			st = s3_delete(c, keys[i], err);
		return st;
	}

	/* Quiet: the answer lists only the keys that could not be deleted */
	pgbk_buf_init(&body);
	ok = pgbk_buf_append_str(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	                                "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	                                "<Quiet>true</Quiet>");
	for (i = 0; ok && i < n; i++)
		ok = pgbk_buf_append_str(&body, "<Object><Key>") && append_xml_text(&body, keys[i]) &&
		     pgbk_buf_append_str(&body, "</Key></Object>");
	ok = ok && pgbk_buf_append_str(&body, "</Delete>");
	if (!ok)
	{
		pgbk_buf_free(&body);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	/* S3 requires Content-MD5 on DeleteObjects */
	if (EVP_Digest(body.data, body.len, md5, NULL, EVP_md5(), NULL) != 1)
	{
		pgbk_buf_free(&body);
		return pgbk_error(err, PGBK_ERR, "could not compute the MD5 of a DeleteObjects request");
	}
	sodium_bin2base64(md5_b64, sizeof(md5_b64), md5, sizeof(md5), sodium_base64_VARIANT_ORIGINAL);

	request_init(&req, "POST", NULL);
	snprintf(req.op, sizeof(req.op), "delete %d objects from", n);
	req.query = "delete=";
	req.body = body.data;
	req.body_len = body.len;
	req.content_md5 = md5_b64;
	req.check_body = true;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	if (st != PGBK_OK && (resp.status == 501 || strcmp(resp.code, "NotImplemented") == 0))
	{
		/* a server without DeleteObjects: one request per key from now on */
		pgbk_log(PGBK_LOG_INFO,
		         "s3 endpoint %s does not implement DeleteObjects; deleting one "
		         "object per request",
		         c->endpoint);
		c->no_multi_delete = true;
		pgbk_buf_free(&resp.body);
		pgbk_buf_free(&body);
		pgbk_error_clear(err);
		return s3_delete_many(c, keys, n, err);
	}
	if (st == PGBK_OK)
	{
		/*
		 * Keys the server could not delete (AccessDenied, InternalError...)
		 * are deleted again one by one: each then gets the usual retries and
		 * the usual error, naming its key.
		 */
		failed = malloc(sizeof(int) * (size_t) n);
		if (failed == NULL)
			st = pgbk_error(err, PGBK_ERR, "out of memory");
		else
		{
			nfailed = delete_result_errors(&resp.body, keys, n, failed);
			for (i = 0; i < nfailed && st == PGBK_OK; i++)
				st = s3_delete(c, keys[failed[i]], err);
			free(failed);
		}
	}
	pgbk_buf_free(&resp.body);
	pgbk_buf_free(&body);
	return st;
}

/* Build a canonical query from name/value pairs (values encoded here). */
static bool
build_query(PgbkBuf *out, const char *const *pairs, int npairs)
{
	PgbkBuf raw;
	bool    ok = true;
	int     i;

	pgbk_buf_init(&raw);
	for (i = 0; ok && i < npairs; i++)
	{
		const char *name = pairs[2 * i];
		const char *value = pairs[2 * i + 1];

		if (value == NULL)
			continue;
		ok = (raw.len == 0 || pgbk_buf_append_str(&raw, "&")) &&
		     sigv4_uri_encode(&raw, name, strlen(name), false) && pgbk_buf_append_str(&raw, "=") &&
		     sigv4_uri_encode(&raw, value, strlen(value), false);
	}
	ok = ok && pgbk_buf_append(&raw, "", 0) && sigv4_canonical_query(out, (char *) raw.data);
	pgbk_buf_free(&raw);
	return ok;
}

/* What a listing has seen so far, to notice a server that never ends it. */
typedef struct ListProgress
{
	int    pages;       /* pages done */
	int    empty_pages; /* truncated pages without keys, in a row */
	int    nkeys_page;  /* keys on the page being read */
	char  *last_key;    /* the last key of the pages so far, or NULL */
	char **tokens;      /* continuation tokens seen: open addressing */
	size_t ntokens;
	size_t cap; /* a power of two, or 0 */
} ListProgress;

static uint64_t
token_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

/*
 * Remember token; false with *seen when it was seen before, false without
 * it when out of memory.
 */
static bool
token_remember(ListProgress *lp, const char *token, bool *seen)
{
	size_t i;

	*seen = false;
	if (lp->ntokens + 1 > lp->cap / 2)
	{
		size_t newcap = lp->cap ? lp->cap * 2 : 64;
		char **nt = calloc(newcap, sizeof(char *));

		if (nt == NULL)
			return false;
		for (i = 0; i < lp->cap; i++)
		{
			size_t j;

			if (lp->tokens[i] == NULL)
				continue;
			for (j = token_hash(lp->tokens[i]) & (newcap - 1); nt[j];)
				j = (j + 1) & (newcap - 1);
			nt[j] = lp->tokens[i];
		}
		free(lp->tokens);
		lp->tokens = nt;
		lp->cap = newcap;
	}
	for (i = token_hash(token) & (lp->cap - 1); lp->tokens[i]; i = (i + 1) & (lp->cap - 1))
	{
		if (strcmp(lp->tokens[i], token) == 0)
		{
			*seen = true;
			return false;
		}
	}
	if ((lp->tokens[i] = strdup(token)) == NULL)
		return false;
	lp->ntokens++;
	return true;
}

static void
list_progress_free(ListProgress *lp)
{
	size_t i;

	for (i = 0; i < lp->cap; i++)
		free(lp->tokens[i]);
	free(lp->tokens);
	free(lp->last_key);
}

/* Another <Contents> follows n (or n itself is one). */
static bool
list_has_more_keys(xmlNodePtr n)
{
	for (; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST "Contents") == 0)
			return true;
	return false;
}

/* Parse one ListObjectsV2 page; calls cb for each key. */
static PgbkStatus
list_page(S3Client *c, const S3Request *req, S3Response *resp, S3ListCallback cb, void *ctx,
          char **next_token, bool *truncated, ListProgress *lp, PgbkError *err)
{
	xmlDocPtr  doc = parse_xml(&resp->body);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr n;
	PgbkStatus st = PGBK_OK;
	char       tmp[64];

	*next_token = NULL;
	*truncated = false;
	if (root == NULL || !node_is(root, "ListBucketResult"))
	{
		char target[1400];

		if (doc)
			xmlFreeDoc(doc);
		describe_target(c, req, target, sizeof(target));
		return pgbk_error(err, PGBK_ERR_SERVER,
		                  "s3 endpoint %s failed to %s: the answer is not a ListBucketResult",
		                  c->endpoint, target);
	}
	child_text(root, "IsTruncated", tmp, sizeof(tmp));
	*truncated = strcmp(tmp, "true") == 0;
	if (*truncated)
	{
		xmlNodePtr tok = child_named(root, "NextContinuationToken");
		xmlChar   *t = tok ? xmlNodeGetContent(tok) : NULL;

		if (t && t[0])
			*next_token = strdup((const char *) t);
		xmlFree(t);
	}
	for (n = root->children; n && st == PGBK_OK; n = n->next)
	{
		xmlNodePtr   kn;
		xmlChar     *key;
		S3ObjectInfo info;

		if (!node_is(n, "Contents"))
			continue;
		kn = child_named(n, "Key");
		key = kn ? xmlNodeGetContent(kn) : NULL;
		if (key == NULL)
			continue;
		/*
		 * Keys come in byte order across pages: a key at or before the last
		 * one of an earlier page means the server is serving pages again.
		 */
		if (lp->last_key != NULL && lp->nkeys_page == 0 &&
		    strcmp((const char *) key, lp->last_key) <= 0)
		{
			st =
			    pgbk_error(err, PGBK_ERR_SERVER,
			               "s3 endpoint %s: listing of bucket \"%s\" went back to key \"%.200s\" "
			               "after \"%.200s\" on page %d; the server repeats its pages",
			               c->endpoint, c->bucket, (const char *) key, lp->last_key, lp->pages + 1);
			xmlFree(key);
			break;
		}
		lp->nkeys_page++;
		if (n->next == NULL || !list_has_more_keys(n->next))
		{
			free(lp->last_key);
			if ((lp->last_key = strdup((const char *) key)) == NULL)
			{
				xmlFree(key);
				st = pgbk_error(err, PGBK_ERR, "out of memory");
				break;
			}
		}
		memset(&info, 0, sizeof(info));
		child_text(n, "Size", tmp, sizeof(tmp));
		info.size = strtoull(tmp, NULL, 10);
		child_text(n, "LastModified", tmp, sizeof(tmp));
		info.mtime = parse_iso8601(tmp);
		child_text(n, "ETag", info.etag, sizeof(info.etag));
		st = cb(ctx, (const char *) key, &info, err);
		xmlFree(key);
	}
	xmlFreeDoc(doc);
	return st;
}

PgbkStatus
s3_list(S3Client *c, const char *prefix, const char *start_after, S3ListCallback cb, void *ctx,
        PgbkError *err)
{
	S3Request    req;
	S3Response   resp;
	PgbkBuf      query;
	char        *token = NULL;
	PgbkStatus   st = PGBK_OK;
	bool         truncated = true;
	ListProgress lp;

	memset(&lp, 0, sizeof(lp));
	response_init(&resp);
	pgbk_buf_init(&query);
	while (st == PGBK_OK && truncated)
	{
		const char *pairs[] = {
		    "list-type",
		    "2",
		    "prefix",
		    prefix && prefix[0] ? prefix : NULL,
		    "start-after",
		    token == NULL && start_after && start_after[0] ? start_after : NULL,
		    "continuation-token",
		    token,
		};
		char *next = NULL;
		bool  seen;

		pgbk_buf_reset(&query);
		if (!build_query(&query, pairs, 4))
		{
			st = pgbk_error(err, PGBK_ERR, "out of memory");
			break;
		}
		request_init(&req, "GET", NULL);
		snprintf(req.op, sizeof(req.op), "list keys under \"%.60s\" in", prefix ? prefix : "");
		req.query = (char *) query.data;
		st = s3_execute(c, &req, &resp, err);
		if (st != PGBK_OK)
			break;
		lp.nkeys_page = 0;
		st = list_page(c, &req, &resp, cb, ctx, &next, &truncated, &lp, err);
		free(token);
		token = next;
		lp.pages++;
		if (st != PGBK_OK || !truncated)
			break;
		/* a server that never ends the listing must not keep us here */
		if (token == NULL)
			st = pgbk_error(err, PGBK_ERR_SERVER,
			                "s3 endpoint %s: listing of bucket \"%s\" is truncated after page %d "
			                "but has no continuation token",
			                c->endpoint, c->bucket, lp.pages);
		else if (!token_remember(&lp, token, &seen))
		{
			if (seen)
				st = pgbk_error(err, PGBK_ERR_SERVER,
				                "s3 endpoint %s: listing of bucket \"%s\" repeats a continuation "
				                "token on page %d (the server would list for ever)",
				                c->endpoint, c->bucket, lp.pages);
			else
				st = pgbk_error(err, PGBK_ERR, "out of memory");
		}
		else if (lp.nkeys_page == 0 && ++lp.empty_pages >= S3_LIST_MAX_EMPTY_PAGES)
			st = pgbk_error(err, PGBK_ERR_SERVER,
			                "s3 endpoint %s: listing of bucket \"%s\" returned %d truncated pages "
			                "without keys in a row (the server would list for ever)",
			                c->endpoint, c->bucket, lp.empty_pages);
		else if (lp.nkeys_page > 0)
			lp.empty_pages = 0;
	}
	list_progress_free(&lp);
	free(token);
	pgbk_buf_free(&query);
	pgbk_buf_free(&resp.body);
	return st;
}

PgbkStatus
s3_check(S3Client *c, const char *prefix, PgbkError *err)
{
	S3Request   req;
	S3Response  resp;
	PgbkBuf     query;
	PgbkStatus  st;
	const char *pairs[] = {"list-type", "2",      "max-keys",
	                       "1",         "prefix", prefix && prefix[0] ? prefix : NULL};

	pgbk_buf_init(&query);
	if (!build_query(&query, pairs, 3))
	{
		pgbk_buf_free(&query);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	request_init(&req, "GET", NULL);
	snprintf(req.op, sizeof(req.op), "list");
	req.query = (char *) query.data;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	pgbk_buf_free(&query);
	pgbk_buf_free(&resp.body);
	return st;
}

/* ---------------------------------------------------------------------
 * multipart
 */

static void
upload_free(S3Upload *u)
{
	int i;

	if (u == NULL)
		return;
	for (i = 0; i < u->nparts; i++)
		free(u->etags[i]);
	free(u->etags);
	free(u->key);
	free(u->upload_id);
	free(u->meta_hash);
	free(u);
}

static void
abort_on_server(S3Client *c, const char *key, const char *upload_id)
{
	S3Request   req;
	S3Response  resp;
	PgbkBuf     query;
	PgbkError   err;
	const char *pairs[] = {"uploadId", upload_id};

	pgbk_buf_init(&query);
	if (!build_query(&query, pairs, 1))
	{
		pgbk_buf_free(&query);
		return;
	}
	request_init(&req, "DELETE", key);
	snprintf(req.op, sizeof(req.op), "abort the multipart upload of");
	req.query = (char *) query.data;
	req.absent_is_ok = true;
	response_init(&resp);
	if (s3_execute(c, &req, &resp, &err) != PGBK_OK)
		pgbk_log(PGBK_LOG_WARNING, "%s", err.msg);
	pgbk_buf_free(&query);
	pgbk_buf_free(&resp.body);
}

PgbkStatus
s3_upload_begin(S3Client *c, const char *key, const char *meta_hash, S3Upload **out, PgbkError *err)
{
	S3Request  req;
	S3Response resp;
	S3Upload  *u;
	PgbkStatus st;
	xmlDocPtr  doc;
	xmlNodePtr root;
	char       upload_id[1024];

	*out = NULL;
	if ((st = check_key(key, err)) != PGBK_OK || (st = check_meta_hash(meta_hash, err)) != PGBK_OK)
		return st;
	request_init(&req, "POST", key);
	snprintf(req.op, sizeof(req.op), "start a multipart upload of");
	req.query = "uploads=";
	req.meta_hash = meta_hash && meta_hash[0] ? meta_hash : NULL;
	req.check_body = true;
	response_init(&resp);
	st = s3_execute(c, &req, &resp, err);
	if (st != PGBK_OK)
	{
		pgbk_buf_free(&resp.body);
		return st;
	}
	doc = parse_xml(&resp.body);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	upload_id[0] = '\0';
	if (root && node_is(root, "InitiateMultipartUploadResult"))
		child_text(root, "UploadId", upload_id, sizeof(upload_id));
	if (doc)
		xmlFreeDoc(doc);
	pgbk_buf_free(&resp.body);
	if (upload_id[0] == '\0')
		return pgbk_error(err, PGBK_ERR_SERVER,
		                  "s3 endpoint %s failed to start a multipart upload of \"%s\" in bucket "
		                  "\"%s\": no UploadId in the answer",
		                  c->endpoint, key, c->bucket);
	u = calloc(1, sizeof(S3Upload));
	if (u == NULL || (u->key = strdup(key)) == NULL || (u->upload_id = strdup(upload_id)) == NULL ||
	    (meta_hash && meta_hash[0] && (u->meta_hash = strdup(meta_hash)) == NULL))
	{
		upload_free(u);
		/* do not leave the upload behind on the server */
		abort_on_server(c, key, upload_id);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	u->c = c;
	*out = u;
	return PGBK_OK;
}

int
s3_upload_nparts(const S3Upload *u)
{
	return u->nparts;
}

PgbkStatus
s3_upload_part(S3Upload *u, const void *data, size_t len, PgbkError *err)
{
	S3Request   req;
	S3Response  resp;
	PgbkBuf     query;
	PgbkStatus  st;
	char        partno[16];
	const char *pairs[4];

	if (u->nparts >= S3_MAX_PARTS)
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "object \"%s\" needs more than %d parts: raise s3_part_size", u->key,
		                  S3_MAX_PARTS);
	if (u->nparts == u->cap)
	{
		int    ncap = u->cap ? u->cap * 2 : 16;
		char **ne = realloc(u->etags, (size_t) ncap * sizeof(char *));

		if (ne == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		u->etags = ne;
		u->cap = ncap;
	}
	snprintf(partno, sizeof(partno), "%d", u->nparts + 1);
	pairs[0] = "partNumber";
	pairs[1] = partno;
	pairs[2] = "uploadId";
	pairs[3] = u->upload_id;
	pgbk_buf_init(&query);
	if (!build_query(&query, pairs, 2))
	{
		pgbk_buf_free(&query);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	request_init(&req, "PUT", u->key);
	snprintf(req.op, sizeof(req.op), "upload part %d of", u->nparts + 1);
	req.query = (char *) query.data;
	req.body = data;
	req.body_len = len;
	response_init(&resp);
	st = s3_execute(u->c, &req, &resp, err);
	if (st == PGBK_OK && resp.etag[0] == '\0')
		st = pgbk_error(err, PGBK_ERR_SERVER,
		                "s3 endpoint %s failed to upload part %d of \"%s\": no ETag in the answer",
		                u->c->endpoint, u->nparts + 1, u->key);
	if (st == PGBK_OK)
	{
		u->etags[u->nparts] = strdup(resp.etag);
		if (u->etags[u->nparts] == NULL)
			st = pgbk_error(err, PGBK_ERR, "out of memory");
		else
		{
			u->nparts++;
			u->total += len;
		}
	}
	pgbk_buf_free(&query);
	pgbk_buf_free(&resp.body);
	return st;
}

void
s3_upload_abort(S3Upload *u)
{
	if (u == NULL)
		return;
	abort_on_server(u->c, u->key, u->upload_id);
	upload_free(u);
}

PgbkStatus
s3_upload_complete(S3Upload *u, PgbkError *err)
{
	S3Request   req;
	S3Response  resp;
	PgbkBuf     query;
	PgbkBuf     body;
	PgbkStatus  st = PGBK_OK;
	const char *pairs[2];
	int         i;
	bool        ok;

	if (u->nparts == 0)
	{
		/* S3 refuses an upload without parts; an empty object is a plain PUT */
		abort_on_server(u->c, u->key, u->upload_id);
		st = s3_put(u->c, u->key, "", 0, u->meta_hash, err);
		upload_free(u);
		return st;
	}
	pairs[0] = "uploadId";
	pairs[1] = u->upload_id;
	pgbk_buf_init(&query);
	pgbk_buf_init(&body);
	ok = build_query(&query, pairs, 1) && pgbk_buf_append_str(&body, "<CompleteMultipartUpload>");
	for (i = 0; ok && i < u->nparts; i++)
		ok = pgbk_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
		                     i + 1, u->etags[i]);
	ok = ok && pgbk_buf_append_str(&body, "</CompleteMultipartUpload>");
	if (!ok)
		st = pgbk_error(err, PGBK_ERR, "out of memory");
	if (st == PGBK_OK)
	{
		request_init(&req, "POST", u->key);
		snprintf(req.op, sizeof(req.op), "complete the multipart upload of");
		req.query = (char *) query.data;
		req.body = body.data;
		req.body_len = body.len;
		req.check_body = true;
		response_init(&resp);
		st = s3_execute(u->c, &req, &resp, err);
		if (st != PGBK_OK && resp.attempts > 1 && strcmp(resp.code, "NoSuchUpload") == 0)
		{
			/*
			 * An earlier attempt completed the upload and only its answer was
			 * lost: the object is then there, made of our number of parts
			 * ("-N" ETag) and of our size.
			 */
			S3ObjectInfo info;
			PgbkError    herr;
			char         suffix[16];
			size_t       elen;

			snprintf(suffix, sizeof(suffix), "-%d\"", u->nparts);
			if (s3_head(u->c, u->key, &info, &herr) == PGBK_OK && info.size == u->total &&
			    (elen = strlen(info.etag)) > strlen(suffix) &&
			    strcmp(info.etag + elen - strlen(suffix), suffix) == 0)
			{
				pgbk_error_clear(err);
				st = PGBK_OK;
			}
		}
		pgbk_buf_free(&resp.body);
	}
	if (st != PGBK_OK)
		abort_on_server(u->c, u->key, u->upload_id);
	pgbk_buf_free(&query);
	pgbk_buf_free(&body);
	upload_free(u);
	return st;
}
