/*
 * itest_s3.c
 *	  Tests of room repo: the driver of t/010; uses repo.h, s3.h and config.
 *	  Integration test driver of the S3 repository backend (repo_s3.c, s3.c,
 *	  sigv4.c) against a real S3 server; t/010_s3_client.pl runs it against
 *	  RadosGW and against small fake servers.  It goes through the public
 *	  interface (repo.h), as every caller does.
 *
 *	  itest_s3 PGBK_CONF SCENARIO [ARG]
 *
 * Functional scenarios print TAP-like "ok - ..." / "not ok - ..." lines,
 * which the Perl test turns into its own assertions, and exit 1 if any
 * failed.  Probing scenarios print "<op> status=<name> msg=<message>" lines
 * that the Perl test matches.  Every diagnostic log line of the library is
 * printed as "log: ..." so the test can check those for secrets too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config/config.h"
#include "repo/repo.h"
#include "repo/s3.h"

static int     failures = 0;
static int64_t interrupt_at_us = 0;

static void check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
check(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		failures++;
}

static void
log_hook(int level, const char *msg)
{
	printf("log: %d %s\n", level, msg);
	fflush(stdout);
}

static bool
interrupt_hook(void)
{
	return interrupt_at_us > 0 && pgbk_now_us() >= interrupt_at_us;
}

/* deterministic pseudo-random bytes (xorshift64*) */
static void
fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + 1;
	size_t   i;

	for (i = 0; i < len; i++)
	{
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (unsigned char) ((x * 2685821657736338717ULL) >> 56);
	}
}

static PgbkStatus
buf_sink(void *ctx, const void *data, size_t len, PgbkError *err)
{
	if (!pgbk_buf_append((PgbkBuf *) ctx, data, len))
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

typedef struct HashSink
{
	crypto_hash_sha256_state st;
	uint64_t                 len;
	int                      calls;
} HashSink;

static PgbkStatus
hash_sink(void *ctx, const void *data, size_t len, PgbkError *err)
{
	HashSink *h = ctx;

	(void) err;
	crypto_hash_sha256_update(&h->st, data, len);
	h->len += len;
	h->calls++;
	return PGBK_OK;
}

static PgbkStatus
get_all(Repo *repo, const char *key, PgbkBuf *out, PgbkError *err)
{
	pgbk_buf_reset(out);
	return repo_get(repo, key, out, err);
}

static PgbkStatus
delete_one(Repo *repo, const char *key, PgbkError *err)
{
	return repo_delete(repo, &key, 1, err);
}

static PgbkStatus
get_range(Repo *repo, const char *key, uint64_t off, uint64_t len, PgbkBuf *out, PgbkError *err)
{
	pgbk_buf_reset(out);
	return repo_get_range(repo, key, off, len, out, err);
}

typedef struct Collect
{
	char **keys;
	int    n;
	int    cap;
	bool   order_ok;
} Collect;

static PgbkStatus
collect_cb(void *ctx, const RepoObjectInfo *info, PgbkError *err)
{
	Collect *c = ctx;

	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 64;
		c->keys = realloc(c->keys, (size_t) c->cap * sizeof(char *));
		if (c->keys == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	if (c->n > 0 && strcmp(c->keys[c->n - 1], info->key) >= 0)
		c->order_ok = false;
	c->keys[c->n++] = strdup(info->key);
	return PGBK_OK;
}

static void
collect_reset(Collect *c)
{
	int i;

	for (i = 0; i < c->n; i++)
		free(c->keys[i]);
	free(c->keys);
	memset(c, 0, sizeof(*c));
	c->order_ok = true;
}

static bool
collect_has(const Collect *c, const char *key)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->keys[i], key) == 0)
			return true;
	return false;
}

/* a unique run tag, so repeated runs against one server do not collide */
static char run_tag[32];

static void
key_for(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", run_tag, name);
}

/* put/get/head/range/no_overwrite/delete/odd keys */
static void
scenario_basic(Repo *repo)
{
	PgbkError          err;
	PgbkBuf            b;
	RepoObjectInfo     info;
	RepoPutOptions     opts = {false, NULL};
	Collect            col;
	char               key[512];
	char               key2[512];
	const char        *hello = "hello, s3 world";
	const char        *hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	static const char *odd[] = {
	    "odd/space and+plus",
	    "odd/amp&lt<gt>quote\"apos'",
	    "odd/dollar$percent%25eq=semi;comma,",
	    "odd/utf8-\xc3\xa9t\xc3\xa9-\xe4\xb8\xad",
	    "odd/tilde~star*paren()!at@colon:",
	    "odd/dots/./and/../segments//double",
	};
	PgbkStatus st;
	int        i;
	int64_t    now = time(NULL);

	pgbk_buf_init(&b);
	memset(&col, 0, sizeof(col));
	col.order_ok = true;

	st = repo_check(repo, &err);
	check(st == PGBK_OK, "check: %s", st ? err.msg : "ok");

	key_for(key, sizeof(key), "hello.txt");
	opts.meta_hash = hash;
	st = repo_put(repo, key, hello, strlen(hello), &opts, &err);
	check(st == PGBK_OK, "put small object: %s", st ? err.msg : "ok");
	st = get_all(repo, key, &b, &err);
	check(st == PGBK_OK && b.len == strlen(hello) && memcmp(b.data, hello, b.len) == 0,
	      "get returns the bytes put: %s", st ? err.msg : "ok");
	memset(&info, 0, sizeof(info));
	st = repo_head(repo, key, &info, &err);
	check(st == PGBK_OK && info.size == strlen(hello), "head size %llu: %s",
	      (unsigned long long) info.size, st ? err.msg : "ok");
	check(strcmp(info.meta_hash, hash) == 0, "head returns the metadata hash \"%s\"",
	      info.meta_hash);
	check(info.mtime > now - 300 && info.mtime < now + 300, "head mtime %lld is about now",
	      (long long) info.mtime);

	st = get_range(repo, key, 7, 2, &b, &err);
	check(st == PGBK_OK && b.len == 2 && memcmp(b.data, "s3", 2) == 0, "range get [7,9): %s",
	      st ? err.msg : "ok");
	st = get_range(repo, key, 10, 1000, &b, &err);
	check(st == PGBK_OK && b.len == strlen(hello) - 10 && memcmp(b.data, "world", 5) == 0,
	      "range get past the end is cut at the end: %s", st ? err.msg : "ok");
	st = get_range(repo, key, 7, UINT64_MAX, &b, &err);
	check(st == PGBK_OK && b.len == strlen(hello) - 7, "range get to the end: %s",
	      st ? err.msg : "ok");
	st = get_range(repo, key, 100, 10, &b, &err);
	check(st == PGBK_OK && b.len == 0, "range get starting past the end gives nothing: %s",
	      st ? err.msg : "ok");

	/* no_overwrite */
	opts.no_overwrite = true;
	opts.meta_hash = NULL;
	st = repo_put(repo, key, "other", 5, &opts, &err);
	check(st == PGBK_EXISTS, "no_overwrite put of an existing key is refused (%s): %s",
	      pgbk_status_name(st), err.msg);
	st = get_all(repo, key, &b, &err);
	check(st == PGBK_OK && b.len == strlen(hello) && memcmp(b.data, hello, b.len) == 0,
	      "the refused put left the original in place");
	key_for(key2, sizeof(key2), "fresh.txt");
	st = repo_put(repo, key2, "new", 3, &opts, &err);
	check(st == PGBK_OK, "no_overwrite put of a new key: %s", st ? err.msg : "ok");
	{
		RepoWriter *w;

		st = repo_writer_open(repo, key2, &opts, &w, &err);
		check(st == PGBK_EXISTS, "no_overwrite writer on an existing key is refused (%s)",
		      pgbk_status_name(st));
	}

	/* missing objects */
	key_for(key2, sizeof(key2), "missing");
	st = get_all(repo, key2, &b, &err);
	check(st == PGBK_NOT_FOUND, "get of a missing key: %s (%s)", pgbk_status_name(st), err.msg);
	st = repo_head(repo, key2, &info, &err);
	check(st == PGBK_NOT_FOUND, "head of a missing key: %s", pgbk_status_name(st));

	/* empty object */
	key_for(key2, sizeof(key2), "empty");
	opts.no_overwrite = false;
	st = repo_put(repo, key2, "", 0, &opts, &err);
	check(st == PGBK_OK, "put empty object: %s", st ? err.msg : "ok");
	st = get_all(repo, key2, &b, &err);
	check(st == PGBK_OK && b.len == 0, "get empty object: %s", st ? err.msg : "ok");
	st = repo_head(repo, key2, &info, &err);
	check(st == PGBK_OK && info.size == 0, "head empty object");

	/* delete */
	st = delete_one(repo, key2, &err);
	check(st == PGBK_OK, "delete: %s", st ? err.msg : "ok");
	st = repo_head(repo, key2, &info, &err);
	check(st == PGBK_NOT_FOUND, "deleted object is gone (%s)", pgbk_status_name(st));
	st = delete_one(repo, key2, &err);
	check(st == PGBK_OK, "delete of an absent key is ok: %s", st ? err.msg : "ok");

	/* keys that need encoding in the path, the query and the XML listing */
	for (i = 0; i < (int) (sizeof(odd) / sizeof(odd[0])); i++)
	{
		key_for(key2, sizeof(key2), odd[i]);
		st = repo_put(repo, key2, odd[i], strlen(odd[i]), &opts, &err);
		check(st == PGBK_OK, "put odd key \"%s\": %s", odd[i], st ? err.msg : "ok");
		st = get_all(repo, key2, &b, &err);
		check(st == PGBK_OK && b.len == strlen(odd[i]) && memcmp(b.data, odd[i], b.len) == 0,
		      "get odd key \"%s\": %s", odd[i], st ? err.msg : "ok");
	}
	key_for(key2, sizeof(key2), "odd/");
	st = repo_list(repo, key2, NULL, collect_cb, &col, &err);
	check(st == PGBK_OK && col.n == (int) (sizeof(odd) / sizeof(odd[0])) && col.order_ok,
	      "list of odd keys: %d keys, %s", col.n, st ? err.msg : "in order");
	for (i = 0; i < (int) (sizeof(odd) / sizeof(odd[0])); i++)
	{
		key_for(key2, sizeof(key2), odd[i]);
		check(collect_has(&col, key2), "listing has \"%s\" decoded", odd[i]);
	}
	collect_reset(&col);

	pgbk_buf_free(&b);
}

/* more than 1000 keys: ListObjectsV2 pagination, start_after, prefixes */
static PgbkStatus count_cb(void *ctx, const RepoObjectInfo *info, PgbkError *err);

static void
scenario_list(Repo *repo, int nkeys)
{
	PgbkError      err;
	Collect        col;
	char           key[256];
	char           prefix[256];
	PgbkStatus     st = PGBK_OK;
	RepoPutOptions opts = {false, NULL};
	int            i;
	int64_t        t0 = pgbk_now_us();

	memset(&col, 0, sizeof(col));
	col.order_ok = true;
	for (i = 0; i < nkeys && st == PGBK_OK; i++)
	{
		snprintf(key, sizeof(key), "%s/many/%05d", run_tag, i);
		st = repo_put(repo, key, key, strlen(key), &opts, &err);
	}
	check(st == PGBK_OK, "put %d small objects in %.1f s: %s", i, (pgbk_now_us() - t0) / 1e6,
	      st ? err.msg : "ok");
	/* a neighbour that must not show up under "many/" */
	snprintf(key, sizeof(key), "%s/manyx", run_tag);
	st = repo_put(repo, key, "x", 1, &opts, &err);

	snprintf(prefix, sizeof(prefix), "%s/many/", run_tag);
	st = repo_list(repo, prefix, NULL, collect_cb, &col, &err);
	check(st == PGBK_OK && col.n == nkeys, "list finds all %d keys (got %d): %s", nkeys, col.n,
	      st ? err.msg : "ok");
	check(col.order_ok, "listed in byte order");
	snprintf(key, sizeof(key), "%s/many/%05d", run_tag, nkeys - 1);
	check(col.n > 0 && strcmp(col.keys[col.n - 1], key) == 0, "last key is %s",
	      col.n > 0 ? col.keys[col.n - 1] : "(none)");
	collect_reset(&col);

	snprintf(key, sizeof(key), "%s/many/%05d", run_tag, 949);
	st = repo_list(repo, prefix, key, collect_cb, &col, &err);
	check(st == PGBK_OK && col.n == nkeys - 950, "start_after lists the %d keys after it (got %d)",
	      nkeys - 950, col.n);
	snprintf(key, sizeof(key), "%s/many/%05d", run_tag, 950);
	check(col.n > 0 && strcmp(col.keys[0], key) == 0, "first key after start_after is %s",
	      col.n > 0 ? col.keys[0] : "(none)");
	collect_reset(&col);

	snprintf(prefix, sizeof(prefix), "%s/many/0100", run_tag);
	st = repo_list(repo, prefix, NULL, collect_cb, &col, &err);
	check(st == PGBK_OK && col.n == 10, "prefix \"many/0100\" lists 10 keys (got %d)", col.n);
	collect_reset(&col);

	snprintf(prefix, sizeof(prefix), "%s/nothing-here/", run_tag);
	st = repo_list(repo, prefix, NULL, collect_cb, &col, &err);
	check(st == PGBK_OK && col.n == 0, "empty prefix lists nothing");
	collect_reset(&col);

	/* all of them (and one that never existed) in DeleteObjects batches */
	{
		char **keys = calloc((size_t) nkeys + 1, sizeof(char *));
		int    nexist = 0;

		for (i = 0; i < nkeys; i++)
		{
			keys[i] = malloc(256);
			snprintf(keys[i], 256, "%s/many/%05d", run_tag, i);
		}
		keys[nkeys] = malloc(256);
		snprintf(keys[nkeys], 256, "%s/many/never-was", run_tag);
		t0 = pgbk_now_us();
		st = repo_delete(repo, (const char *const *) keys, nkeys + 1, &err);
		check(st == PGBK_OK, "delete_many of %d keys (one absent) in %.2f s: %s", nkeys + 1,
		      (pgbk_now_us() - t0) / 1e6, st ? err.msg : "ok");
		snprintf(prefix, sizeof(prefix), "%s/many/", run_tag);
		st = repo_list(repo, prefix, NULL, collect_cb, &col, &err);
		check(st == PGBK_OK && col.n == 0, "after delete_many nothing is left under many/ (%d)",
		      col.n);
		collect_reset(&col);
		snprintf(prefix, sizeof(prefix), "%s/manyx", run_tag);
		st = repo_list(repo, prefix, NULL, count_cb, &nexist, &err);
		check(st == PGBK_OK && nexist == 1, "the neighbour not named is still there");
		for (i = 0; i <= nkeys; i++)
			free(keys[i]);
		free(keys);
	}
}

static void
digest_hex(const unsigned char *data, size_t len, char out[65])
{
	unsigned char d[32];

	crypto_hash_sha256(d, data, len);
	pgbk_hex_encode(d, 32, out);
}

/* multipart through the streaming writer and through put, abort */
static void
scenario_multipart(Repo *repo, size_t total)
{
	PgbkError      err;
	unsigned char *data;
	char           want[65];
	char           got[65];
	unsigned char  d[32];
	char           key[256];
	RepoWriter    *w;
	RepoObjectInfo info;
	RepoPutOptions opts = {true, NULL};
	HashSink       hs;
	PgbkStatus     st;
	size_t         off;
	size_t         chunk = 1024 * 1024 + 37; /* not a divisor of the part size */
	int64_t        t0;
	PgbkBuf        b;

	data = malloc(total);
	fill_pattern(data, total, 42);
	digest_hex(data, total, want);
	pgbk_buf_init(&b);

	key_for(key, sizeof(key), "big/writer.bin");
	t0 = pgbk_now_us();
	opts.meta_hash = want;
	st = repo_writer_open(repo, key, &opts, &w, &err);
	check(st == PGBK_OK, "writer open: %s", st ? err.msg : "ok");
	for (off = 0; st == PGBK_OK && off < total; off += chunk)
		st = repo_writer_write(w, data + off, total - off < chunk ? total - off : chunk, &err);
	check(st == PGBK_OK, "writer writes %zu bytes: %s", total, st ? err.msg : "ok");
	if (st == PGBK_OK)
		st = repo_writer_commit(w, &err);
	else
		repo_writer_abort(w);
	check(st == PGBK_OK, "writer commit (multipart) in %.1f s: %s", (pgbk_now_us() - t0) / 1e6,
	      st ? err.msg : "ok");

	st = repo_head(repo, key, &info, &err);
	check(st == PGBK_OK && info.size == total, "head size %llu", (unsigned long long) info.size);
	check(strcmp(info.meta_hash, want) == 0, "multipart object keeps the metadata hash");

	crypto_hash_sha256_init(&hs.st);
	hs.len = 0;
	hs.calls = 0;
	t0 = pgbk_now_us();
	st = repo_get_stream(repo, key, hash_sink, &hs, &err);
	crypto_hash_sha256_final(&hs.st, d);
	pgbk_hex_encode(d, 32, got);
	check(st == PGBK_OK && hs.len == total && strcmp(got, want) == 0,
	      "streamed read-back is identical (%llu bytes in %d pieces, %.1f s): %s",
	      (unsigned long long) hs.len, hs.calls, (pgbk_now_us() - t0) / 1e6, st ? err.msg : "ok");

	st = get_range(repo, key, 6 * 1024 * 1024 - 10, 20, &b, &err);
	check(st == PGBK_OK && b.len == 20 && memcmp(b.data, data + 6 * 1024 * 1024 - 10, 20) == 0,
	      "range across a part boundary");

	/* one big write: whole parts go straight from the caller's memory */
	key_for(key, sizeof(key), "big/one-write.bin");
	st = repo_writer_open(repo, key, &opts, &w, &err);
	if (st == PGBK_OK)
		st = repo_writer_write(w, data, total, &err);
	if (st == PGBK_OK)
		st = repo_writer_commit(w, &err);
	check(st == PGBK_OK, "writer with one %zu-byte write: %s", total, st ? err.msg : "ok");
	st = get_all(repo, key, &b, &err);
	check(st == PGBK_OK && b.len == total && memcmp(b.data, data, total) == 0,
	      "read-back of the one-write object is identical");

	/* put of a buffer above the threshold goes multipart from memory */
	key_for(key, sizeof(key), "big/put.bin");
	opts.meta_hash = NULL;
	st = repo_put(repo, key, data, total / 3, &opts, &err);
	check(st == PGBK_OK, "put of %zu bytes: %s", total / 3, st ? err.msg : "ok");
	st = get_all(repo, key, &b, &err);
	check(st == PGBK_OK && b.len == total / 3 && memcmp(b.data, data, b.len) == 0,
	      "read-back of the multipart put is identical");

	/* abort: nothing visible afterwards */
	key_for(key, sizeof(key), "big/aborted.bin");
	st = repo_writer_open(repo, key, &opts, &w, &err);
	for (off = 0; st == PGBK_OK && off < total / 2; off += chunk)
		st = repo_writer_write(w, data + off, chunk, &err);
	check(st == PGBK_OK, "writer before abort: %s", st ? err.msg : "ok");
	repo_writer_abort(w);
	st = repo_head(repo, key, &info, &err);
	check(st == PGBK_NOT_FOUND, "aborted upload left no object (%s)", pgbk_status_name(st));

	/* small writer: one PUT */
	key_for(key, sizeof(key), "big/small-writer.bin");
	st = repo_writer_open(repo, key, &opts, &w, &err);
	if (st == PGBK_OK)
		st = repo_writer_write(w, data, 1000, &err);
	if (st == PGBK_OK)
		st = repo_writer_commit(w, &err);
	check(st == PGBK_OK, "small writer commit: %s", st ? err.msg : "ok");
	st = get_all(repo, key, &b, &err);
	check(st == PGBK_OK && b.len == 1000 && memcmp(b.data, data, 1000) == 0,
	      "small writer read-back");

	pgbk_buf_free(&b);
	free(data);
}

static void
print_result(const char *op, PgbkStatus st, const PgbkError *err)
{
	printf("%s status=%s msg=%s\n", op, pgbk_status_name(st), st == PGBK_OK ? "" : err->msg);
	fflush(stdout);
}

static PgbkStatus
count_cb(void *ctx, const RepoObjectInfo *info, PgbkError *err)
{
	(void) info;
	(void) err;
	(*(int *) ctx)++;
	return PGBK_OK;
}

/* every operation once; the Perl side checks the statuses and messages */
static void
scenario_ops(Repo *repo)
{
	PgbkError      err;
	PgbkBuf        b;
	RepoObjectInfo info;
	RepoPutOptions opts = {false, NULL};
	char           key[256];
	int            n = 0;
	int64_t        t0 = pgbk_now_us();

	pgbk_buf_init(&b);
	key_for(key, sizeof(key), "ops/object");
	print_result("check", repo_check(repo, &err), &err);
	print_result("put", repo_put(repo, key, "data", 4, &opts, &err), &err);
	print_result("get", get_all(repo, key, &b, &err), &err);
	print_result("head", repo_head(repo, key, &info, &err), &err);
	print_result("list", repo_list(repo, "", NULL, count_cb, &n, &err), &err);
	print_result("delete", delete_one(repo, key, &err), &err);
	printf("elapsed_ms=%lld\n", (long long) ((pgbk_now_us() - t0) / 1000));
	pgbk_buf_free(&b);
}

/* one listing of everything (fake servers that misbehave while listing) */
static void
scenario_list_all(Repo *repo)
{
	PgbkError err;
	int       n = 0;
	int64_t   t0 = pgbk_now_us();

	print_result("list", repo_list(repo, "", NULL, count_cb, &n, &err), &err);
	printf("listed=%d\n", n);
	printf("elapsed_ms=%lld\n", (long long) ((pgbk_now_us() - t0) / 1000));
}

/* n sequential PUT+GET+HEAD of small objects (fake-server tests) */
static void
scenario_seq(Repo *repo, int n)
{
	PgbkError      err;
	PgbkBuf        b;
	RepoObjectInfo info;
	RepoPutOptions opts = {false, NULL};
	char           key[64];
	int            i;

	pgbk_buf_init(&b);
	for (i = 0; i < n; i++)
	{
		snprintf(key, sizeof(key), "seq/%d", i);
		print_result("put", repo_put(repo, key, "payload", 7, &opts, &err), &err);
		print_result("get", get_all(repo, key, &b, &err), &err);
		printf("got=%.*s\n", (int) b.len, b.data ? (char *) b.data : "");
		print_result("head", repo_head(repo, key, &info, &err), &err);
	}
	pgbk_buf_free(&b);
}

/* whole-object GET whose transfer the fake server cuts short */
static void
scenario_get_hash(Repo *repo, const char *key)
{
	PgbkError     err;
	HashSink      hs;
	unsigned char d[32];
	char          hex[65];
	PgbkStatus    st;

	crypto_hash_sha256_init(&hs.st);
	hs.len = 0;
	hs.calls = 0;
	st = repo_get_stream(repo, key, hash_sink, &hs, &err);
	crypto_hash_sha256_final(&hs.st, d);
	pgbk_hex_encode(d, 32, hex);
	print_result("get", st, &err);
	printf("len=%llu sha256=%s\n", (unsigned long long) hs.len, hex);
}

/* one object by name, for tests that span two runs (outages) */
static void
scenario_put_key(Repo *repo, const char *key, const char *value)
{
	PgbkError      err;
	RepoPutOptions opts = {false, NULL};

	print_result("put", repo_put(repo, key, value, strlen(value), &opts, &err), &err);
}

static void
scenario_delete_keys(Repo *repo, int n, char **keys)
{
	PgbkError  err;
	PgbkStatus st;

	pgbk_error_clear(&err);
	st = repo_delete(repo, (const char *const *) keys, n, &err);
	print_result("delete", st, &err);
}

static void
scenario_get_key(Repo *repo, const char *key)
{
	PgbkError  err;
	PgbkBuf    b;
	PgbkStatus st;

	pgbk_buf_init(&b);
	st = get_all(repo, key, &b, &err);
	print_result("get", st, &err);
	printf("value=%.*s\n", (int) b.len, b.data ? (char *) b.data : "");
	pgbk_buf_free(&b);
}

/*
 * The S3 client API directly: a multipart upload really is one (its ETag
 * ends in "-<parts>"), HEAD of a bucket-less key, s3_check.
 */
static void
scenario_client(const PgbkConfig *cfg)
{
	PgbkCredentials *cred = NULL;
	S3Client        *c = NULL;
	S3Upload        *u = NULL;
	S3ObjectInfo     info;
	PgbkError        err;
	PgbkStatus       st;
	unsigned char   *part;
	size_t           psize = 5 * 1024 * 1024;
	char             key[256];
	size_t           elen;

	st = credentials_load(cfg->s3_credentials_file, cfg->s3_profile ? cfg->s3_profile : "default",
	                      &cred, &err);
	if (st == PGBK_OK)
		st = s3_client_new(cfg, cred, &c, &err);
	if (cred)
		credentials_free(cred);
	check(st == PGBK_OK, "client: %s", st ? err.msg : "ok");
	if (st != PGBK_OK)
		return;
	check(strcmp(s3_client_bucket(c), cfg->s3_bucket) == 0, "client bucket");
	st = s3_check(c, NULL, &err);
	check(st == PGBK_OK, "s3_check: %s", st ? err.msg : "ok");

	part = malloc(psize);
	fill_pattern(part, psize, 7);
	snprintf(key, sizeof(key), "%s/client/multi.bin", run_tag);
	st = s3_upload_begin(c, key, NULL, &u, &err);
	check(st == PGBK_OK, "upload begin: %s", st ? err.msg : "ok");
	if (st == PGBK_OK)
	{
		st = s3_upload_part(u, part, psize, &err);
		if (st == PGBK_OK)
			st = s3_upload_part(u, part, 1000, &err);
		check(st == PGBK_OK && s3_upload_nparts(u) == 2, "two parts: %s", st ? err.msg : "ok");
		st = st == PGBK_OK ? s3_upload_complete(u, &err) : (s3_upload_abort(u), st);
		check(st == PGBK_OK, "upload complete: %s", st ? err.msg : "ok");
	}
	st = s3_head(c, key, &info, &err);
	elen = strlen(info.etag);
	check(st == PGBK_OK && info.size == psize + 1000 && elen > 3 &&
	          strcmp(info.etag + elen - 3, "-2\"") == 0,
	      "multipart object: size %llu etag %s", (unsigned long long) info.size, info.etag);

	/* complete without parts stores an empty object */
	snprintf(key, sizeof(key), "%s/client/no-parts", run_tag);
	st = s3_upload_begin(c, key, NULL, &u, &err);
	if (st == PGBK_OK)
		st = s3_upload_complete(u, &err);
	check(st == PGBK_OK, "complete without parts: %s", st ? err.msg : "ok");
	st = s3_head(c, key, &info, &err);
	check(st == PGBK_OK && info.size == 0, "upload without parts gives an empty object");

	st = s3_put(c, key, "x", 1, "not-hex", &err);
	check(st == PGBK_ERR_USAGE, "a non-hex metadata hash is refused before sending");
	st = s3_get(c, "", 0, UINT64_MAX, buf_sink, NULL, &err);
	check(st == PGBK_ERR_USAGE, "an empty key is refused");

	free(part);
	s3_client_free(c);
}

int
main(int argc, char **argv)
{
	PgbkConfig *cfg = NULL;
	Repo       *repo = NULL;
	PgbkError   err;
	PgbkStatus  st;
	const char *scenario;

	if (argc < 3)
	{
		fprintf(stderr, "usage: itest_s3 PGBK_CONF SCENARIO [ARG]\n");
		return 2;
	}
	scenario = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	pgbk_hooks.log = log_hook;
	pgbk_hooks.interrupted = interrupt_hook;
	if (getenv("ITEST_INTERRUPT_AFTER_MS"))
		interrupt_at_us = pgbk_now_us() + 1000 * atoll(getenv("ITEST_INTERRUPT_AFTER_MS"));
	snprintf(run_tag, sizeof(run_tag), "run-%lld-%d", (long long) time(NULL), (int) getpid());
	if (getenv("ITEST_TAG"))
		snprintf(run_tag, sizeof(run_tag), "%s", getenv("ITEST_TAG"));

	st = config_load(argv[1], &cfg, &err);
	if (st != PGBK_OK)
	{
		print_result("config", st, &err);
		return 1;
	}
	if (cfg->repo_kind != PGBK_REPO_S3)
	{
		fprintf(stderr, "itest_s3: %s does not configure an S3 repository\n", argv[1]);
		config_free(cfg);
		return 2;
	}
	st = repo_open(cfg, &repo, &err);
	if (st != PGBK_OK)
	{
		print_result("open", st, &err);
		config_free(cfg);
		return 1;
	}
	printf("repository %s\n", repo_describe(repo));

	if (strcmp(scenario, "basic") == 0)
		scenario_basic(repo);
	else if (strcmp(scenario, "list") == 0)
		scenario_list(repo, argc > 3 ? atoi(argv[3]) : 1100);
	else if (strcmp(scenario, "multipart") == 0)
		scenario_multipart(repo, (size_t) (argc > 3 ? atoll(argv[3]) : 40 * 1024 * 1024));
	else if (strcmp(scenario, "ops") == 0)
		scenario_ops(repo);
	else if (strcmp(scenario, "list-all") == 0)
		scenario_list_all(repo);
	else if (strcmp(scenario, "seq") == 0)
		scenario_seq(repo, argc > 3 ? atoi(argv[3]) : 1);
	else if (strcmp(scenario, "put-key") == 0 && argc > 4)
		scenario_put_key(repo, argv[3], argv[4]);
	else if (strcmp(scenario, "delete-keys") == 0 && argc > 3)
		scenario_delete_keys(repo, argc - 3, argv + 3);
	else if (strcmp(scenario, "get-key") == 0 && argc > 3)
		scenario_get_key(repo, argv[3]);
	else if (strcmp(scenario, "client") == 0)
		scenario_client(cfg);
	else if (strcmp(scenario, "get-hash") == 0)
		scenario_get_hash(repo, argc > 3 ? argv[3] : "object");
	else
	{
		fprintf(stderr, "itest_s3: unknown scenario \"%s\"\n", scenario);
		failures++;
	}

	repo_close(repo);
	config_free(cfg);
	printf("done failures=%d\n", failures);
	return failures > 0 ? 1 : 0;
}
