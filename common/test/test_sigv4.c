/*
 * test_sigv4.c
 *	  Tests of room repo (cmocka): SigV4; uses unit.h, sigv4.c and cJSON (vectors).
 *	  Unit tests of the SigV4 signer (common/repo/sigv4.c): the four published S3
 *	  examples in t/vectors/sigv4-s3.json reproduced exactly, and the edge
 *	  cases of URI encoding, query and header canonicalisation.
 */
#include "unit.h"

#include <errno.h>

#include <cjson/cJSON.h>

#include "repo/sigv4.h"

/* the vector file, loaded once by the group setup */
static cJSON *vectors = NULL;

static int
load_vectors(void **state)
{
	char    path[4096];
	FILE   *f;
	PgbkBuf text;
	char    chunk[4096];
	size_t  n;

	(void) state;
	snprintf(path, sizeof(path), "%s/sigv4-s3.json", unit_vectors_dir());
	if ((f = fopen(path, "r")) == NULL)
	{
		fprintf(stderr, "could not open \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	pgbk_buf_init(&text);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!pgbk_buf_append(&text, chunk, n))
			break;
	fclose(f);
	vectors = cJSON_ParseWithLength((const char *) text.data, text.len);
	pgbk_buf_free(&text);
	if (vectors == NULL)
	{
		fprintf(stderr, "could not parse \"%s\" near \"%.20s\"\n", path, cJSON_GetErrorPtr());
		return -1;
	}
	return 0;
}

static int
free_vectors(void **state)
{
	(void) state;
	cJSON_Delete(vectors);
	vectors = NULL;
	return 0;
}

static const char *
jstr(const cJSON *obj, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static const cJSON *
find_case(const char *name)
{
	const cJSON *cases = cJSON_GetObjectItemCaseSensitive(vectors, "cases");
	const cJSON *c;

	cJSON_ArrayForEach(c, cases)
	{
		const char *n = jstr(c, "name");

		if (n && strcmp(n, name) == 0)
			return c;
	}
	return NULL;
}

/* Sign one vector case and compare every value the vector gives. */
static void
test_vector(void **state)
{
	const char    *name = *state;
	const cJSON   *c = find_case(name);
	const cJSON   *hobj;
	SigV4Header    headers[16];
	int            nheaders = 0;
	const cJSON   *hval;
	SigV4Request   req;
	SigV4Key       key;
	SigV4Signature sig;
	PgbkError      err;
	char           payload_hash[65];
	const char    *payload;
	const char    *path;
	const char    *expect;
	PgbkBuf        enc;
	char           expect_auth[512];

	assert_non_null(c);
	hobj = cJSON_GetObjectItemCaseSensitive(c, "headers");
	cJSON_ArrayForEach(hval, hobj)
	{
		assert_true(nheaders < 16);
		headers[nheaders].name = hval->string;
		headers[nheaders].value = cJSON_GetStringValue(hval);
		nheaders++;
	}

	/* the payload hash we compute must be the one the vector sends */
	payload = jstr(c, "payload");
	assert_non_null(payload);
	sigv4_payload_hash(payload, strlen(payload), payload_hash);
	assert_string_equal(payload_hash, jstr(hobj, "x-amz-content-sha256"));

	/* the signer takes the path unencoded and must encode it as the vector did */
	path = jstr(c, "uri_unencoded") ? jstr(c, "uri_unencoded") : jstr(c, "uri");
	pgbk_buf_init(&enc);
	assert_true(sigv4_uri_encode(&enc, path, strlen(path), true));
	assert_string_equal((char *) enc.data, jstr(c, "uri"));
	pgbk_buf_free(&enc);

	req.method = jstr(c, "method");
	req.path = path;
	req.query = jstr(c, "query");
	req.headers = headers;
	req.nheaders = nheaders;
	req.payload_hash = payload_hash;
	key.access_key_id = jstr(vectors, "access_key_id");
	key.secret_access_key = jstr(vectors, "secret_access_key");
	key.region = jstr(vectors, "region");
	key.service = jstr(vectors, "service");

	sigv4_signature_init(&sig);
	assert_int_equal(sigv4_sign(&req, &key, jstr(vectors, "amz_date"), &sig, &err), PGBK_OK);

	expect = jstr(c, "canonical_request_sha256");
	if (expect)
		assert_string_equal(sig.canonical_request_sha256, expect);
	assert_string_equal((char *) sig.signed_headers.data, jstr(c, "signed_headers"));
	assert_string_equal(sig.signature, jstr(c, "signature"));

	snprintf(expect_auth, sizeof(expect_auth),
	         "AWS4-HMAC-SHA256 Credential=%s/20130524/us-east-1/s3/aws4_request, "
	         "SignedHeaders=%s, Signature=%s",
	         key.access_key_id, jstr(c, "signed_headers"), jstr(c, "signature"));
	assert_string_equal((char *) sig.authorization.data, expect_auth);
	/* the secret never ends up in anything the signer produces */
	assert_null(strstr((char *) sig.authorization.data, key.secret_access_key));
	assert_null(strstr((char *) sig.canonical_request.data, key.secret_access_key));
	assert_null(strstr((char *) sig.string_to_sign.data, key.secret_access_key));
	sigv4_signature_free(&sig);
}

/* The canonical request of the GET example, spelled out in the AWS docs. */
static void
test_canonical_request_text(void **state)
{
	SigV4Header headers[] = {
	    {"Host", "examplebucket.s3.amazonaws.com"},
	    {"Range", "bytes=0-9"},
	    {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
	    {"x-amz-date", "20130524T000000Z"},
	};
	SigV4Request req = {"GET", "/test.txt", NULL, headers, 4, SIGV4_EMPTY_SHA256};
	SigV4Key key = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
	                "s3"};
	SigV4Signature sig;
	PgbkError      err;

	(void) state;
	sigv4_signature_init(&sig);
	assert_int_equal(sigv4_sign(&req, &key, "20130524T000000Z", &sig, &err), PGBK_OK);
	assert_string_equal((char *) sig.canonical_request.data,
	                    "GET\n"
	                    "/test.txt\n"
	                    "\n"
	                    "host:examplebucket.s3.amazonaws.com\n"
	                    "range:bytes=0-9\n"
	                    "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
	                    "x-amz-date:20130524T000000Z\n"
	                    "\n"
	                    "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_string_equal((char *) sig.string_to_sign.data,
	                    "AWS4-HMAC-SHA256\n"
	                    "20130524T000000Z\n"
	                    "20130524/us-east-1/s3/aws4_request\n"
	                    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	sigv4_signature_free(&sig);
}

static void
check_encode(const char *in, bool keep_slash, const char *expect)
{
	PgbkBuf b;

	pgbk_buf_init(&b);
	assert_true(sigv4_uri_encode(&b, in, strlen(in), keep_slash));
	assert_true(pgbk_buf_append(&b, "", 0));
	assert_string_equal((char *) b.data, expect);
	pgbk_buf_free(&b);
}

static void
test_uri_encode(void **state)
{
	(void) state;
	check_encode("", true, "");
	check_encode("AZaz09-._~", false, "AZaz09-._~");
	check_encode("/a b/c", true, "/a%20b/c");
	check_encode("/a b/c", false, "%2Fa%20b%2Fc");
	check_encode("test$file.text", true, "test%24file.text");
	check_encode("+*%=&?#:@!'()", true, "%2B%2A%25%3D%26%3F%23%3A%40%21%27%28%29");
	check_encode("\xc3\xa9t\xc3\xa9", true, "%C3%A9t%C3%A9"); /* UTF-8 bytes, upper case hex */
	check_encode("\x01\x7f\xff", true, "%01%7F%FF");
	/* S3 paths are not normalised */
	check_encode("/a//b/./c/../d", true, "/a//b/./c/../d");
}

static void
check_query(const char *in, const char *expect)
{
	PgbkBuf b;
	PgbkBuf again;

	pgbk_buf_init(&b);
	pgbk_buf_init(&again);
	assert_true(sigv4_canonical_query(&b, in));
	assert_string_equal((char *) b.data, expect);
	/* idempotent: the canonical form can be sent and signed as is */
	assert_true(sigv4_canonical_query(&again, (char *) b.data));
	assert_string_equal((char *) again.data, expect);
	pgbk_buf_free(&b);
	pgbk_buf_free(&again);
}

static void
test_canonical_query(void **state)
{
	(void) state;
	check_query(NULL, "");
	check_query("", "");
	check_query("lifecycle", "lifecycle=");
	check_query("lifecycle=", "lifecycle=");
	check_query("uploads", "uploads=");
	check_query("prefix=J&max-keys=2", "max-keys=2&prefix=J");
	check_query("a=2&a=1&a=10", "a=1&a=10&a=2");
	check_query("b=&a", "a=&b=");
	check_query("B=1&a=1&_=1", "B=1&_=1&a=1"); /* byte order: upper case first */
	check_query("list-type=2&prefix=wal/0000 1", "list-type=2&prefix=wal%2F0000%201");
	check_query("prefix=wal%2f00", "prefix=wal%2F00"); /* lower-case escapes normalised */
	check_query("x=%7E%41", "x=~A");                   /* over-escaped unreserved decoded */
	check_query("x=%zz&y=%4", "x=%25zz&y=%254");       /* invalid escapes are literal '%' */
	check_query("x=a+b", "x=a%2Bb");                   /* '+' is a plus, not a space */
	check_query("x=a=b", "x=a%3Db");                   /* split at the first '=' only */
	check_query("&&a=1&", "a=1");                      /* empty parts dropped */
	check_query("continuation-token=1%2FabC%3D%3D&list-type=2",
	            "continuation-token=1%2FabC%3D%3D&list-type=2");
	check_query("partNumber=2&uploadId=2~abc.def_X", "partNumber=2&uploadId=2~abc.def_X");
	check_query("k=\xc3\xa9", "k=%C3%A9");
}

static void
test_canonical_headers(void **state)
{
	SigV4Header headers[] = {
	    {"X-Amz-Date", "20240101T000000Z"},
	    {"X-Amz-Meta-Note", "  a   b\t c  "},
	    {"HOST", "bucket.s3.localhost:7480"},
	    {"x-amz-meta-note", "second"},
	    {"x-amz-content-sha256", SIGV4_UNSIGNED_PAYLOAD},
	};
	SigV4Request   req = {"PUT", "key with space", "", headers, 5, SIGV4_UNSIGNED_PAYLOAD};
	SigV4Key       key = {"AK", "SECRET", "us-east-1", "s3"};
	SigV4Signature sig;
	PgbkError      err;

	(void) state;
	sigv4_signature_init(&sig);
	assert_int_equal(sigv4_sign(&req, &key, "20240101T000000Z", &sig, &err), PGBK_OK);
	assert_string_equal((char *) sig.canonical_request.data,
	                    "PUT\n"
	                    "/key%20with%20space\n"
	                    "\n"
	                    "host:bucket.s3.localhost:7480\n"
	                    "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
	                    "x-amz-date:20240101T000000Z\n"
	                    "x-amz-meta-note:a b c,second\n"
	                    "\n"
	                    "host;x-amz-content-sha256;x-amz-date;x-amz-meta-note\n"
	                    "UNSIGNED-PAYLOAD");
	sigv4_signature_free(&sig);
}

static void
test_bad_requests(void **state)
{
	SigV4Header    bad_value[] = {{"host", "h"}, {"x-amz-meta-a", "x\r\nInjected: 1"}};
	SigV4Header    bad_name[] = {{"host", "h"}, {"bad name", "x"}};
	SigV4Header    good[] = {{"host", "h"}, {"x-amz-date", "20240101T000000Z"}};
	SigV4Request   req = {"GET", "/", NULL, bad_value, 2, SIGV4_EMPTY_SHA256};
	SigV4Key       key = {"AK", "SECRET", "us-east-1", "s3"};
	SigV4Signature sig;
	PgbkError      err;

	(void) state;
	sigv4_signature_init(&sig);
	assert_int_equal(sigv4_sign(&req, &key, "20240101T000000Z", &sig, &err), PGBK_ERR_USAGE);
	assert_non_null(strstr(err.msg, "line break"));
	sigv4_signature_free(&sig);

	sigv4_signature_init(&sig);
	req.headers = bad_name;
	assert_int_equal(sigv4_sign(&req, &key, "20240101T000000Z", &sig, &err), PGBK_ERR_USAGE);
	sigv4_signature_free(&sig);

	sigv4_signature_init(&sig);
	req.headers = good;
	assert_int_equal(sigv4_sign(&req, &key, "2024-01-01", &sig, &err), PGBK_ERR_USAGE);
	sigv4_signature_free(&sig);

	sigv4_signature_init(&sig);
	req.nheaders = 0;
	assert_int_equal(sigv4_sign(&req, &key, "20240101T000000Z", &sig, &err), PGBK_ERR_USAGE);
	sigv4_signature_free(&sig);
}

static void
test_signing_key_and_date(void **state)
{
	unsigned char k[32];
	char          hex[65];
	char          date[17];

	(void) state;
	/* the key-derivation example of the AWS SigV4 documentation */
	sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
	                  k);
	pgbk_hex_encode(k, sizeof(k), hex);
	assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");

	sigv4_amz_date((time_t) 1369353600, date);
	assert_string_equal(date, "20130524T000000Z");
	sigv4_amz_date((time_t) 0, date);
	assert_string_equal(date, "19700101T000000Z");

	sigv4_payload_hash("", 0, hex);
	assert_string_equal(hex, SIGV4_EMPTY_SHA256);
}

/* every case in the file is one of the VECTOR_TEST entries of main() */
static void
test_vector_count(void **state)
{
	(void) state;
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(vectors, "cases")), 4);
}

/* one named test per vector case; the case name is the initial state */
#define VECTOR_TEST(name)                                                                          \
	{                                                                                              \
		"vector " name, test_vector, NULL, NULL, (void *) name                                     \
	}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    VECTOR_TEST("get-object-range"),
	    VECTOR_TEST("put-object"),
	    VECTOR_TEST("get-bucket-lifecycle"),
	    VECTOR_TEST("list-objects"),
	    cmocka_unit_test(test_vector_count),
	    cmocka_unit_test(test_canonical_request_text),
	    cmocka_unit_test(test_uri_encode),
	    cmocka_unit_test(test_canonical_query),
	    cmocka_unit_test(test_canonical_headers),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_signing_key_and_date),
	};

	return cmocka_run_group_tests_name("sigv4", tests, load_vectors, free_vectors);
}
