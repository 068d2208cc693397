/*
 * test_codec.c
 *	  Tests of room format (cmocka); uses unit.h, codec.c, keys.c and libsodium.
 *	  Unit tests for the repository object format (codec.c): round trips in
 *	  every mode and size, streaming in odd pieces, key rotation, and the
 *	  promise of DESIGN.md invariant 4: every changed, truncated or extended
 *	  object is refused with the right class of error, and nothing of it is
 *	  handed over.
 */
#define _GNU_SOURCE /* memmem */
#include "unit.h"

#include "format/codec.h"

#include <pthread.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB 1024
#define MIB (1024 * 1024)

static char tmpdir[512];

/* A key ring for tests of plain objects (authenticated with it too). */
static PgbkKeyring *g_ring;

/* Tests that are not about limits decode with the largest. */
#define TEST_LIMIT                     CODEC_LIMIT_WAL_MAX
#define codec_decode(r, d, l, o, h, e) codec_decode((r), (d), (l), TEST_LIMIT, (o), (h), (e))
#define codec_decoder_begin(r, d, e)   codec_decoder_begin((r), TEST_LIMIT, (d), (e))

/* Keys used below: distinct, fixed, so that failures are reproducible. */
static const char *const key_a_hex =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char *const key_b_hex =
    "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";

/* ------------------------------------------------------------------ */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* A keyring from a key file holding the given keys (first encrypts). */
static PgbkKeyring *
make_ring(const char *name, const char *k1, const char *k2)
{
	char         path[600];
	char         text[400];
	PgbkKeyring *ring = NULL;
	PgbkError    err;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	snprintf(text, sizeof(text), "# test keys\npgbk-key-1:%s\n%s%s%s", k1, k2 ? "pgbk-key-1:" : "",
	         k2 ? k2 : "", k2 ? "\n" : "");
	write_file(path, text, 0600);
	if (keyring_load(path, &ring, &err) != PGBK_OK)
		fail_msg("keyring_load: %s", err.msg);
	return ring;
}

/*
 * WAL-like content: 8 KiB pages with a header and an increasing LSN, records
 * of structured tuples with small variations, some random runs (full-page
 * images of incompressible data) and a zero tail.
 */
static unsigned char *
make_data(size_t len, uint32_t seed)
{
	unsigned char *d = malloc(len ? len : 1);
	uint32_t       x = seed * 2654435761u + 1;
	size_t         i;

	assert_non_null(d);
	for (i = 0; i < len; i++)
	{
		size_t page = i / 8192;
		size_t off = i % 8192;

		x = x * 1103515245u + 12345u;
		if (i >= len - len / 8)
			d[i] = 0; /* zero tail */
		else if (off < 24)
			d[i] = (unsigned char) ((page * 8192) >> (8 * (off % 8)));
		else if (page % 7 == 3 && off < 3000)
			d[i] = (unsigned char) (x >> 16); /* random run */
		else
			d[i] = (unsigned char) ("INSERT tuple id=000000 name='pimcore asset' "[off % 43] +
			                        ((off / 43) % 5 == 0 ? (x >> 24) % 3 : 0));
	}
	return d;
}

static PgbkBuf
encode_ok(const CodecParams *params, const void *raw, size_t len, const char *attrs)
{
	PgbkBuf       out;
	PgbkError     err;
	unsigned char hash[CODEC_HASH_BYTES];
	unsigned char expect[CODEC_HASH_BYTES];

	pgbk_buf_init(&out);
	if (codec_encode(params, raw, len, attrs, &out, hash, &err) != PGBK_OK)
		fail_msg("codec_encode: %s", err.msg);
	codec_hash(raw, len, expect);
	assert_memory_equal(hash, expect, CODEC_HASH_BYTES);
	return out;
}

/* Decode in chunks of the given sizes (cycled); returns the status. */
static PgbkStatus
decode_stream(const PgbkKeyring *ring, const unsigned char *data, size_t len, const size_t *chunks,
              int nchunks, PgbkBuf *out, CodecHeader *hdr, PgbkError *err)
{
	CodecDecoder *dec;
	PgbkStatus    rc;
	size_t        off = 0;
	int           c = 0;

	rc = codec_decoder_begin(ring, &dec, err);
	assert_int_equal(rc, PGBK_OK);
	while (off < len)
	{
		size_t n = chunks[c++ % nchunks];

		if (n > len - off)
			n = len - off;
		rc = codec_decoder_update(dec, data + off, n, out, err);
		if (rc != PGBK_OK)
		{
			codec_decoder_free(dec);
			return rc;
		}
		off += n;
	}
	return codec_decoder_finish(dec, hdr, NULL, err);
}

/* Decoding must fail with status want; one-shot leaves out untouched. */
static void
expect_decode_fail(const PgbkKeyring *ring, const unsigned char *data, size_t len, PgbkStatus want,
                   const char *substr)
{
	PgbkBuf    out;
	PgbkError  err;
	PgbkStatus rc;

	pgbk_buf_init(&out);
	pgbk_buf_append_str(&out, "keep");
	rc = codec_decode(ring, data, len, &out, NULL, &err);
	if (rc != want)
		fail_msg("expected %s, got %s: %s", pgbk_status_name(want), pgbk_status_name(rc),
		         rc ? err.msg : "");
	assert_int_equal(err.code, want);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "keep", 4);
	if (substr != NULL && strstr(err.msg, substr) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, substr);
	pgbk_buf_free(&out);
}

/* Offsets of the frames of an object (after the header); returns count. */
static int
frame_offsets(const unsigned char *data, size_t len, size_t *offs, int max)
{
	CodecHeader hdr;
	PgbkError   err;
	size_t      off;
	int         n = 0;

	assert_int_equal(codec_read_header(data, len, &hdr, NULL, &err), PGBK_OK);
	off = hdr.header_len;
	while (off + 4 <= len && n < max)
	{
		uint32_t l =
		    data[off] | data[off + 1] << 8 | data[off + 2] << 16 | (uint32_t) data[off + 3] << 24;

		offs[n++] = off;
		off += 4 + l;
	}
	assert_int_equal(off, len);
	return n;
}

/* ------------------------------------------------------------------ */

static int
setup(void **state)
{
	const char *base = getenv("PGBK_TEST_TMP");

	snprintf(tmpdir, sizeof(tmpdir), "%s/pgbk_codec_XXXXXX", base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (pgbk_crypto_init(NULL) != PGBK_OK)
		return -1;
	g_ring = make_ring("global.key", key_a_hex, NULL);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	codec_release_cache();
	keyring_free(g_ring);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_round_trips(void **state)
{
	static const size_t sizes[] = {
	    0, 1, 1000, 256 * KIB - 1, 256 * KIB, 256 * KIB + 1, 3 * MIB + 17, 20 * MIB};
	PgbkKeyring   *ring = make_ring("rt.key", key_a_hex, NULL);
	unsigned char *raw = make_data(20 * MIB, 1);
	int            comp;
	int            enc;
	size_t         i;

	for (comp = 0; comp < 2; comp++)
		for (enc = 0; enc < 2; enc++)
			for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			{
				CodecParams   p = {comp ? PGBK_COMPRESS_ZSTD : PGBK_COMPRESS_NONE, 3, ring, enc};
				PgbkBuf       obj = encode_ok(&p, raw, sizes[i], "kind=test\n");
				PgbkBuf       back;
				CodecHeader   hdr;
				PgbkError     err;
				unsigned char hash[CODEC_HASH_BYTES];
				static const size_t chunks[] = {1, 7, 4099, 300001, 65536};

				pgbk_buf_init(&back);
				if (codec_decode(ring, obj.data, obj.len, &back, &hdr, &err) != PGBK_OK)
					fail_msg("decode comp=%d enc=%d size=%zu: %s", comp, enc, sizes[i], err.msg);
				assert_int_equal(back.len, sizes[i]);
				assert_true(sizes[i] == 0 || memcmp(back.data, raw, sizes[i]) == 0);
				codec_hash(raw, sizes[i], hash);
				assert_memory_equal(hdr.content_hash, hash, CODEC_HASH_BYTES);
				assert_int_equal(hdr.raw_size, sizes[i]);
				assert_int_equal(hdr.encrypted, enc);
				assert_int_equal(hdr.compression, comp);
				assert_false(hdr.trailer_only);
				assert_string_equal(hdr.attrs, "kind=test\n");
				if (enc)
					assert_int_equal(hdr.key_id, ring->keys[0].id);

				/* the same object through the streaming decoder */
				pgbk_buf_reset(&back);
				if (decode_stream(ring, obj.data, obj.len, chunks, sizes[i] < 100000 ? 1 : 5, &back,
				                  NULL, &err) != PGBK_OK)
					fail_msg("stream decode: %s", err.msg);
				assert_int_equal(back.len, sizes[i]);
				assert_true(sizes[i] == 0 || memcmp(back.data, raw, sizes[i]) == 0);

				/* compression does something on this data */
				if (comp && sizes[i] >= 256 * KIB)
					assert_true(obj.len < sizes[i] / 2);
				pgbk_buf_free(&back);
				pgbk_buf_free(&obj);
			}
	free(raw);
	keyring_free(ring);
}

static void
test_streaming_encoder(void **state)
{
	static const size_t chunks[] = {1, 7, 4099, 300001, 65536, 262144, 3};
	static const size_t sizes[] = {0, 1, 5000, 256 * KIB, 2 * MIB + 3};
	PgbkKeyring        *ring = make_ring("se.key", key_a_hex, NULL);
	unsigned char      *raw = make_data(2 * MIB + 3, 2);
	int                 comp;
	int                 enc;
	size_t              i;

	for (comp = 0; comp < 2; comp++)
		for (enc = 0; enc < 2; enc++)
			for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			{
				CodecParams   p = {comp ? PGBK_COMPRESS_ZSTD : PGBK_COMPRESS_NONE, 1, ring, enc};
				CodecEncoder *e;
				PgbkBuf       obj;
				PgbkBuf       back;
				PgbkError     err;
				CodecHeader   hdr;
				unsigned char hash[CODEC_HASH_BYTES];
				unsigned char expect[CODEC_HASH_BYTES];
				uint64_t      rawsize;
				size_t        off = 0;
				int           c = (int) i;

				pgbk_buf_init(&obj);
				pgbk_buf_init(&back);
				assert_int_equal(codec_encoder_begin(&p, "a=1\n", &e, &obj, &err), PGBK_OK);
				while (off < sizes[i])
				{
					size_t n = chunks[c++ % 7];

					if (n > sizes[i] - off)
						n = sizes[i] - off;
					/* callers hand over output as they go: use a fresh buffer sometimes */
					if (codec_encoder_update(e, raw + off, n, &obj, &err) != PGBK_OK)
						fail_msg("update: %s", err.msg);
					off += n;
				}
				if (codec_encoder_finish(e, &obj, hash, &rawsize, &err) != PGBK_OK)
					fail_msg("finish: %s", err.msg);
				codec_hash(raw, sizes[i], expect);
				assert_memory_equal(hash, expect, CODEC_HASH_BYTES);
				assert_int_equal(rawsize, sizes[i]);

				if (codec_decode(ring, obj.data, obj.len, &back, &hdr, &err) != PGBK_OK)
					fail_msg("decode: %s", err.msg);
				assert_int_equal(back.len, sizes[i]);
				assert_true(sizes[i] == 0 || memcmp(back.data, raw, sizes[i]) == 0);
				assert_true(hdr.trailer_only);
				assert_int_equal(hdr.raw_size, sizes[i]);
				assert_memory_equal(hdr.content_hash, expect, CODEC_HASH_BYTES);
				pgbk_buf_free(&obj);
				pgbk_buf_free(&back);
			}
	free(raw);
	keyring_free(ring);
}

/* The encoder's output may be consumed (reset) between calls. */
static void
test_streaming_encoder_drained(void **state)
{
	PgbkKeyring   *ring = make_ring("dr.key", key_a_hex, NULL);
	CodecParams    p = {PGBK_COMPRESS_ZSTD, 3, ring, true};
	unsigned char *raw = make_data(MIB + 5, 3);
	CodecEncoder  *e;
	PgbkBuf        piece;
	PgbkBuf        all;
	PgbkBuf        back;
	PgbkError      err;
	size_t         off;

	pgbk_buf_init(&piece);
	pgbk_buf_init(&all);
	pgbk_buf_init(&back);
	assert_int_equal(codec_encoder_begin(&p, NULL, &e, &piece, &err), PGBK_OK);
	for (off = 0; off < MIB + 5; off += 10000)
	{
		size_t n = MIB + 5 - off < 10000 ? MIB + 5 - off : 10000;

		pgbk_buf_append(&all, piece.data, piece.len);
		pgbk_buf_reset(&piece);
		assert_int_equal(codec_encoder_update(e, raw + off, n, &piece, &err), PGBK_OK);
	}
	assert_int_equal(codec_encoder_finish(e, &piece, NULL, NULL, &err), PGBK_OK);
	pgbk_buf_append(&all, piece.data, piece.len);
	assert_int_equal(codec_decode(ring, all.data, all.len, &back, NULL, &err), PGBK_OK);
	assert_int_equal(back.len, MIB + 5);
	assert_memory_equal(back.data, raw, MIB + 5);
	pgbk_buf_free(&piece);
	pgbk_buf_free(&all);
	pgbk_buf_free(&back);
	free(raw);
	keyring_free(ring);
}

static void
test_key_rotation(void **state)
{
	PgbkKeyring   *ring_a = make_ring("a.key", key_a_hex, NULL);
	PgbkKeyring   *ring_ba = make_ring("ba.key", key_b_hex, key_a_hex);
	unsigned char *raw = make_data(300000, 4);
	CodecParams    pa = {PGBK_COMPRESS_ZSTD, 3, ring_a, true};
	CodecParams    pba = {PGBK_COMPRESS_ZSTD, 3, ring_ba, true};
	PgbkBuf        old = encode_ok(&pa, raw, 300000, NULL);
	PgbkBuf new = encode_ok(&pba, raw, 300000, NULL);
	PgbkBuf     back;
	PgbkError   err;
	CodecHeader hdr;

	/* new objects are encrypted with the first key */
	assert_int_equal(codec_read_header(new.data, new.len, &hdr, NULL, &err), PGBK_OK);
	assert_int_equal(hdr.key_id, ring_ba->keys[0].id);
	assert_int_not_equal(ring_ba->keys[0].id, ring_a->keys[0].id);

	/* old objects stay readable with the rotated ring */
	pgbk_buf_init(&back);
	assert_int_equal(codec_decode(ring_ba, old.data, old.len, &back, &hdr, &err), PGBK_OK);
	assert_int_equal(hdr.key_id, ring_a->keys[0].id);
	assert_memory_equal(back.data, raw, 300000);
	pgbk_buf_free(&back);

	pgbk_buf_free(&old);
	pgbk_buf_free(&new);
	free(raw);
	keyring_free(ring_a);
	keyring_free(ring_ba);
}

static void
test_wrong_key(void **state)
{
	PgbkKeyring   *ring_a = make_ring("wa.key", key_a_hex, NULL);
	PgbkKeyring   *ring_b = make_ring("wb.key", key_b_hex, NULL);
	unsigned char *raw = make_data(1000, 5);
	CodecParams    pa = {PGBK_COMPRESS_ZSTD, 3, ring_a, true};
	PgbkBuf        obj = encode_ok(&pa, raw, 1000, NULL);
	PgbkBuf        back;
	PgbkError      err;
	char           idhex[16];

	snprintf(idhex, sizeof(idhex), "%08x", (unsigned) ring_a->keys[0].id);
	expect_decode_fail(ring_b, obj.data, obj.len, PGBK_ERR_KEY, idhex);
	expect_decode_fail(ring_b, obj.data, obj.len, PGBK_ERR_KEY, ring_b->path);
	expect_decode_fail(NULL, obj.data, obj.len, PGBK_ERR_KEY, "no key file");

	/* no key material in the message */
	pgbk_buf_init(&back);
	assert_int_equal(codec_decode(ring_b, obj.data, obj.len, &back, NULL, &err), PGBK_ERR_KEY);
	assert_null(strstr(err.msg, key_a_hex));
	assert_null(strstr(err.msg, key_b_hex));
	assert_null(strstr(err.msg, "00112233"));
	pgbk_buf_free(&back);

	pgbk_buf_free(&obj);
	free(raw);
	keyring_free(ring_a);
	keyring_free(ring_b);
}

static void
put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

/* A plain frame of the unkeyed format: check = BLAKE2b-128 keyed with the previous check. */
static void
append_unkeyed_frame(PgbkBuf *out, unsigned char chain[16], unsigned char tag, const void *msg,
                     size_t mlen)
{
	unsigned char len[4];
	size_t        start;

	put_le(len, 1 + mlen + 16, 4);
	assert_true(pgbk_buf_append(out, len, 4));
	start = out->len;
	assert_true(pgbk_buf_append(out, &tag, 1));
	assert_true(pgbk_buf_append(out, msg, mlen));
	crypto_generichash(chain, 16, out->data + start, 1 + mlen, chain, 16);
	assert_true(pgbk_buf_append(out, chain, 16));
}

/*
 * What anyone who can write to a repository could make of pgbk's plain
 * objects before 1.1: flags 0, no key id, the plain content hash in the
 * header, and unkeyed checks they recompute (uncompressed content).
 */
static PgbkBuf
forge_unkeyed(const void *raw, size_t len, const char *attrs)
{
	PgbkBuf       out;
	unsigned char h[38 + CODEC_MAX_ATTRS + 16];
	unsigned char chain[16];
	unsigned char trailer[24];
	size_t        alen = strlen(attrs);

	memset(h, 0, sizeof(h));
	memcpy(h, "PGBK", 4);
	h[4] = CODEC_FORMAT_VERSION;
	h[5] = PGBK_COMPRESS_NONE;
	put_le(h + 12, len, 8);
	codec_hash(raw, len, h + 20);
	put_le(h + 36, alen, 2);
	memcpy(h + 38, attrs, alen);
	crypto_generichash(h + 38 + alen, 16, h, 38 + alen, NULL, 0);
	memcpy(chain, h + 38 + alen, 16);
	pgbk_buf_init(&out);
	assert_true(pgbk_buf_append(&out, h, 38 + alen + 16));
	append_unkeyed_frame(&out, chain, 0, raw, len);
	put_le(trailer, len, 8);
	codec_hash(raw, len, trailer + 8);
	append_unkeyed_frame(&out, chain, 3, trailer, 24);
	return out;
}

/*
 * encryption = off no longer means "unauthenticated": an object with only
 * unkeyed checks (as pgbk before 1.1 wrote, or as a forger recomputes them)
 * is refused by every reader, with or without the key.
 */
static void
test_unkeyed_refused(void **state)
{
	static const char   content[] = "ssl_passphrase_command = 'touch /tmp/pwned'\n";
	static const size_t chunks[] = {3, 50};
	PgbkBuf             obj = forge_unkeyed(content, sizeof(content) - 1, "kind=file\n");
	PgbkBuf             back;
	CodecHeader         hdr;
	PgbkError           err;
	unsigned char       hash[CODEC_HASH_BYTES];
	bool                same = true;

	/* the forgery is well formed: only the missing key gives it away */
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, "not authenticated");
	expect_decode_fail(NULL, obj.data, obj.len, PGBK_ERR_INTEGRITY, "not authenticated");
	pgbk_buf_init(&back);
	assert_int_equal(decode_stream(g_ring, obj.data, obj.len, chunks, 2, &back, &hdr, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_int_equal(back.len, 0);
	assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "not authenticated"));
	/* nor can its header claim to hold some content */
	codec_hash(content, sizeof(content) - 1, hash);
	memset(&hdr, 0, sizeof(hdr));
	assert_int_equal(codec_header_matches(g_ring, &hdr, hash, sizeof(content) - 1, &same, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_false(same);
	pgbk_buf_free(&back);
	pgbk_buf_free(&obj);
}

/*
 * A plain object that is authenticated: changing its content and
 * recomputing what can be recomputed without the key (the header check, an
 * unkeyed frame check) fails, and so does an object made with another key
 * that claims ours.
 */
static void
test_plain_forgery_refused(void **state)
{
	static const char content[] = "shared_buffers = 128MB\n";
	PgbkKeyring      *other = make_ring("forger.key", key_b_hex, NULL);
	CodecParams       p = {PGBK_COMPRESS_NONE, 3, g_ring, false};
	CodecParams       po = {PGBK_COMPRESS_NONE, 3, other, false};
	PgbkBuf           obj = encode_ok(&p, content, sizeof(content) - 1, "kind=file\n");
	PgbkBuf           back;
	CodecHeader       hdr;
	PgbkError         err;
	size_t            h, mlen = sizeof(content) - 1;
	unsigned char     chain[16];

	assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
	assert_true(hdr.authenticated);
	assert_false(hdr.encrypted);
	assert_int_equal(hdr.key_id, g_ring->keys[0].id);
	pgbk_buf_init(&back);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, &back, NULL, &err), PGBK_OK);
	assert_int_equal(back.len, mlen);
	/* without the key file it cannot be read (nor checked) */
	expect_decode_fail(NULL, obj.data, obj.len, PGBK_ERR_KEY, "key_file");

	/* change the content, recompute the first frame's check the unkeyed way */
	h = hdr.header_len;
	obj.data[h + 4 + 1] ^= 0x20;
	memcpy(chain, obj.data + h - 16, 16);
	crypto_generichash(obj.data + h + 4 + 1 + mlen, 16, obj.data + h + 4, 1 + mlen, chain, 16);
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, "failed authentication");
	pgbk_buf_free(&obj);

	/* another key, made to claim our key's id (header check recomputed) */
	obj = encode_ok(&po, content, mlen, "kind=file\n");
	assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
	put_le(obj.data + 8, g_ring->keys[0].id, 4);
	crypto_generichash(obj.data + 38 + 10, 16, obj.data, 38 + 10, NULL, 0);
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, "failed authentication");
	pgbk_buf_free(&obj);
	pgbk_buf_free(&back);
	keyring_free(other);
}

/* Output handed to a sink: counted, not kept. */
typedef struct CountOut
{
	uint64_t n;
	size_t   calls;
} CountOut;

static PgbkStatus
count_out(void *arg, const void *data, size_t len, PgbkError *err)
{
	CountOut *c = arg;

	(void) data;
	(void) err;
	c->n += len;
	c->calls++;
	return PGBK_OK;
}

/* A streamed (trailer-only) object of len zero bytes: tiny, inflating hugely. */
static PgbkBuf
zero_bomb(const CodecParams *p, uint64_t len, const char *attrs)
{
	static unsigned char zeros[1 << 20];
	CodecEncoder        *enc;
	PgbkBuf              out;
	PgbkError            err;
	uint64_t             done;

	pgbk_buf_init(&out);
	assert_int_equal(codec_encoder_begin(p, attrs, &enc, &out, &err), PGBK_OK);
	for (done = 0; done < len; done += sizeof(zeros))
		assert_int_equal(codec_encoder_update(enc, zeros, sizeof(zeros), &out, &err), PGBK_OK);
	assert_int_equal(codec_encoder_finish(enc, &out, NULL, NULL, &err), PGBK_OK);
	return out;
}

/*
 * Decompression bombs: content beyond the caller's limit is refused, at
 * once when the header declares it, else as soon as the output passes it;
 * memory stays near the limit (one-shot) or near a frame (with a sink).
 */
static void
test_decode_limits(void **state)
{
	CodecParams   p = {PGBK_COMPRESS_ZSTD, 3, g_ring, false};
	CodecParams   pe = {PGBK_COMPRESS_ZSTD, 3, g_ring, true};
	PgbkBuf       bomb = zero_bomb(&p, (uint64_t) 256 << 20, "kind=manifest\n");
	PgbkBuf       ebomb = zero_bomb(&pe, (uint64_t) 64 << 20, "kind=manifest\n");
	PgbkBuf       out, obj;
	PgbkError     err;
	CodecDecoder *dec;
	CodecHeader   hdr;
	CountOut      c = {0, 0};
	unsigned char big[4096];

	/* 256 MiB of content in well under 1 MiB */
	assert_true(bomb.len < 1 << 20);

	/* one-shot: refused once past the limit, out never grew far beyond it */
	pgbk_buf_init(&out);
#undef codec_decode
	assert_int_equal(codec_decode(g_ring, bomb.data, bomb.len, 1 << 20, &out, NULL, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "allowed for an object of its kind"));
	assert_int_equal(out.len, 0);
	assert_true(out.cap <= (2 << 20));
	assert_int_equal(codec_decode(g_ring, ebomb.data, ebomb.len, 1 << 20, &out, NULL, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_true(out.cap <= (2 << 20));
	pgbk_buf_free(&out);

	/* streaming with a sink: all of it decodes, in pieces, out stays small */
	pgbk_buf_init(&out);
#undef codec_decoder_begin
	assert_int_equal(codec_decoder_begin(g_ring, (uint64_t) 1 << 30, &dec, &err), PGBK_OK);
	codec_decoder_set_sink(dec, count_out, &c);
	assert_int_equal(codec_decoder_update(dec, bomb.data, bomb.len, &out, &err), PGBK_OK);
	c.n += out.len;
	assert_true(out.cap <= (1 << 20));
	assert_int_equal(codec_decoder_finish(dec, &hdr, NULL, &err), PGBK_OK);
	assert_int_equal(c.n, (uint64_t) 256 << 20);
	assert_true(c.calls >= 256);
	pgbk_buf_free(&out);

	/* streaming with a limit: refused past it */
	pgbk_buf_init(&out);
	c.n = 0;
	assert_int_equal(codec_decoder_begin(g_ring, 16 << 20, &dec, &err), PGBK_OK);
	codec_decoder_set_sink(dec, count_out, &c);
	assert_int_equal(codec_decoder_update(dec, bomb.data, bomb.len, &out, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_true(c.n <= 16 << 20);
	codec_decoder_free(dec);
	pgbk_buf_free(&out);

	/* a header that declares a huge size is refused before any frame */
	memset(big, 0, sizeof(big));
	obj = encode_ok(&p, big, sizeof(big), "kind=wal\n");
	put_le(obj.data + 12, (uint64_t) 1 << 40, 8);
	crypto_generichash(obj.data + 38 + 9, 16, obj.data, 38 + 9, NULL, 0);
	pgbk_buf_init(&out);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, 16 << 20, &out, NULL, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "declares 1099511627776 bytes"));
	assert_true(out.cap < (1 << 20));
	pgbk_buf_free(&out);
	pgbk_buf_free(&obj);

	/* exactly at the limit is fine */
	obj = encode_ok(&p, big, sizeof(big), "kind=wal\n");
	pgbk_buf_init(&out);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, sizeof(big), &out, NULL, &err),
	                 PGBK_OK);
	assert_int_equal(out.len, sizeof(big));
	pgbk_buf_free(&out);
	pgbk_buf_free(&obj);
#define codec_decode(r, d, l, o, h, e) codec_decode((r), (d), (l), TEST_LIMIT, (o), (h), (e))
#define codec_decoder_begin(r, d, e)   codec_decoder_begin((r), TEST_LIMIT, (d), (e))

	/* the limits by WAL file name */
	assert_int_equal(codec_wal_limit("000000010000000000000001", 16 << 20), 16 << 20);
	assert_int_equal(codec_wal_limit("000000010000000000000001", 0), CODEC_LIMIT_WAL_MAX);
	assert_int_equal(codec_wal_limit("000000010000000000000001.partial", 1 << 24), 1 << 24);
	assert_int_equal(codec_wal_limit("00000002.history", 16 << 20), CODEC_LIMIT_SMALL);
	assert_int_equal(codec_wal_limit("000000010000000000000001.00000028.backup", 16 << 20),
	                 CODEC_LIMIT_SMALL);
	pgbk_buf_free(&bomb);
	pgbk_buf_free(&ebomb);
}

/* A WAL object copied under another name is not the one asked for. */
static void
test_check_name(void **state)
{
	CodecParams p = {PGBK_COMPRESS_ZSTD, 3, g_ring, true};
	PgbkBuf     obj = encode_ok(&p, "x", 1, "kind=wal\nname=000000010000000000000002\n");
	PgbkBuf     out;
	CodecHeader hdr;
	PgbkError   err;

	pgbk_buf_init(&out);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, &out, &hdr, &err), PGBK_OK);
	assert_int_equal(codec_check_name(&hdr, "000000010000000000000002", &err), PGBK_OK);
	assert_int_equal(codec_check_name(&hdr, "000000010000000000000003", &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "\"000000010000000000000003\""));
	assert_non_null(strstr(err.msg, "\"000000010000000000000002\""));
	assert_int_equal(codec_check_name(&hdr, "00000002", &err), PGBK_ERR_INTEGRITY);
	pgbk_buf_free(&obj);
	pgbk_buf_free(&out);

	obj = encode_ok(&p, "x", 1, "kind=wal\n");
	pgbk_buf_init(&out);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, &out, &hdr, &err), PGBK_OK);
	assert_int_equal(codec_check_name(&hdr, "000000010000000000000002", &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "no name attribute"));
	pgbk_buf_free(&obj);
	pgbk_buf_free(&out);
}

/*
 * Every single-byte change anywhere in the object is refused: the magic
 * and version bytes as a format error, everything else as an integrity
 * error.
 */
static void
flip_every_byte(const PgbkKeyring *ring, bool encrypt, int comp, size_t rawlen)
{
	static const unsigned char masks[] = {0x01, 0x10, 0x80, 0xff};
	unsigned char             *raw = make_data(rawlen, 7);
	CodecParams                p = {comp, 3, ring, encrypt};
	PgbkBuf        obj = encode_ok(&p, raw, rawlen, "segment=000000010000000000000001\n");
	unsigned char *copy = malloc(obj.len);
	size_t         pos;
	size_t         m;

	for (pos = 0; pos < obj.len; pos++)
		for (m = 0; m < sizeof(masks); m++)
		{
			memcpy(copy, obj.data, obj.len);
			copy[pos] ^= masks[m];
			expect_decode_fail(ring, copy, obj.len, pos < 5 ? PGBK_ERR_FORMAT : PGBK_ERR_INTEGRITY,
			                   NULL);
		}
	free(copy);
	pgbk_buf_free(&obj);
	free(raw);
}

static void
test_flip_encrypted(void **state)
{
	PgbkKeyring *ring = make_ring("fl.key", key_a_hex, NULL);

	flip_every_byte(ring, true, PGBK_COMPRESS_ZSTD, 3000);
	flip_every_byte(ring, true, PGBK_COMPRESS_NONE, 300);
	keyring_free(ring);
}

static void
test_flip_plain(void **state)
{
	flip_every_byte(g_ring, false, PGBK_COMPRESS_ZSTD, 3000);
	flip_every_byte(g_ring, false, PGBK_COMPRESS_NONE, 300);
}

/* Changed bytes in a multi-frame object name the failing frame's offset. */
static void
test_flip_reports_frame_offset(void **state)
{
	PgbkKeyring   *ring = make_ring("fo.key", key_a_hex, NULL);
	unsigned char *raw = make_data(MIB, 8);
	int            enc;

	for (enc = 0; enc < 2; enc++)
	{
		CodecParams p = {PGBK_COMPRESS_NONE, 3, ring, enc};
		PgbkBuf     obj = encode_ok(&p, raw, MIB, NULL);
		size_t      offs[16];
		int         n = frame_offsets(obj.data, obj.len, offs, 16);
		char        where[64];

		assert_int_equal(n, 5); /* 4 data frames and the final one */
		obj.data[offs[2] + 100] ^= 0x20;
		snprintf(where, sizeof(where), "byte offset %zu", offs[2]);
		expect_decode_fail(ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, where);
		pgbk_buf_free(&obj);
	}
	free(raw);
	keyring_free(ring);
}

/* Swapped or dropped frames are refused (the check chain / secretstream). */
static void
test_frames_reordered_or_dropped(void **state)
{
	PgbkKeyring   *ring = make_ring("ro.key", key_a_hex, NULL);
	unsigned char *raw = make_data(MIB, 9);
	int            enc;

	for (enc = 0; enc < 2; enc++)
	{
		CodecParams    p = {PGBK_COMPRESS_NONE, 3, ring, enc};
		PgbkBuf        obj = encode_ok(&p, raw, MIB, NULL);
		size_t         offs[16];
		size_t         flen;
		unsigned char *copy = malloc(obj.len);

		frame_offsets(obj.data, obj.len, offs, 16);
		flen = offs[2] - offs[1];
		assert_int_equal(flen, offs[3] - offs[2]);

		/* swap frames 1 and 2 (same length) */
		memcpy(copy, obj.data, obj.len);
		memcpy(copy + offs[1], obj.data + offs[2], flen);
		memcpy(copy + offs[2], obj.data + offs[1], flen);
		expect_decode_fail(ring, copy, obj.len, PGBK_ERR_INTEGRITY, NULL);

		/* drop frame 1 */
		memcpy(copy, obj.data, offs[1]);
		memcpy(copy + offs[1], obj.data + offs[2], obj.len - offs[2]);
		expect_decode_fail(ring, copy, obj.len - flen, PGBK_ERR_INTEGRITY, NULL);

		/* duplicate frame 1 in place of frame 2 */
		memcpy(copy, obj.data, obj.len);
		memcpy(copy + offs[2], obj.data + offs[1], flen);
		expect_decode_fail(ring, copy, obj.len, PGBK_ERR_INTEGRITY, NULL);

		free(copy);
		pgbk_buf_free(&obj);
	}
	free(raw);
	keyring_free(ring);
}

static void
truncate_at(const PgbkKeyring *ring, const unsigned char *data, size_t cut)
{
	static const size_t chunks[] = {1, 13, 70000};
	PgbkBuf             out;
	PgbkError           err;
	PgbkStatus          rc;

	expect_decode_fail(ring, data, cut, PGBK_ERR_INTEGRITY, "truncated");
	pgbk_buf_init(&out);
	rc = decode_stream(ring, data, cut, chunks, 3, &out, NULL, &err);
	if (rc != PGBK_ERR_INTEGRITY || strstr(err.msg, "truncated") == NULL)
		fail_msg("stream cut at %zu: %s: %s", cut, pgbk_status_name(rc), err.msg);
	pgbk_buf_free(&out);
}

static void
test_truncation_small(void **state)
{
	PgbkKeyring   *ring = make_ring("ts.key", key_a_hex, NULL);
	unsigned char *raw = make_data(2000, 10);
	int            enc;
	int            comp;

	for (enc = 0; enc < 2; enc++)
		for (comp = 0; comp < 2; comp++)
		{
			CodecParams p = {comp, 3, ring, enc};
			PgbkBuf     obj = encode_ok(&p, raw, 2000, "x=y\n");
			size_t      cut;

			for (cut = 0; cut < obj.len; cut++)
				truncate_at(ring, obj.data, cut);
			pgbk_buf_free(&obj);
		}
	free(raw);
	keyring_free(ring);
}

/* A streamed object of raw (many frames: one per 256 KiB of content). */
static PgbkBuf
encode_streamed(const CodecParams *p, const unsigned char *raw, size_t len)
{
	CodecEncoder *e;
	PgbkBuf       obj;
	PgbkError     err;

	pgbk_buf_init(&obj);
	assert_int_equal(codec_encoder_begin(p, NULL, &e, &obj, &err), PGBK_OK);
	assert_int_equal(codec_encoder_update(e, raw, len, &obj, &err), PGBK_OK);
	assert_int_equal(codec_encoder_finish(e, &obj, NULL, NULL, &err), PGBK_OK);
	return obj;
}

static void
test_truncation_big(void **state)
{
	PgbkKeyring   *ring = make_ring("tb.key", key_a_hex, NULL);
	unsigned char *raw = make_data(3 * MIB, 11);
	unsigned char  noise[MIB];
	int            enc;
	int            kind;

	/* enough incompressible data for several frames of compressed output */
	randombytes_buf(noise, sizeof(noise));
	memcpy(raw + MIB, noise, sizeof(noise));

	for (enc = 0; enc < 2; enc++)
		for (kind = 0; kind < 3; kind++)
		{
			CodecParams p = {kind == 1 ? PGBK_COMPRESS_NONE : PGBK_COMPRESS_ZSTD, 3, ring, enc};
			PgbkBuf     obj =
                kind == 2 ? encode_streamed(&p, raw, 3 * MIB) : encode_ok(&p, raw, 3 * MIB, NULL);
			size_t offs[64];
			int    n = frame_offsets(obj.data, obj.len, offs, 64);
			int    i;
			size_t cut;

			assert_true(n >= 4);
			/* at, just before and just after every frame boundary */
			for (i = 0; i < n; i++)
			{
				truncate_at(ring, obj.data, offs[i]);
				truncate_at(ring, obj.data, offs[i] - 1);
				truncate_at(ring, obj.data, offs[i] + 1);
				truncate_at(ring, obj.data, offs[i] + 4);
			}
			/* and a spread of other lengths */
			for (cut = 0; cut < obj.len; cut += obj.len / 19 + 1)
				truncate_at(ring, obj.data, cut);
			truncate_at(ring, obj.data, obj.len - 1);
			pgbk_buf_free(&obj);
		}
	free(raw);
	keyring_free(ring);
}

static void
test_trailing_garbage(void **state)
{
	PgbkKeyring   *ring = make_ring("tg.key", key_a_hex, NULL);
	unsigned char *raw = make_data(5000, 12);
	int            enc;

	for (enc = 0; enc < 2; enc++)
	{
		CodecParams         p = {PGBK_COMPRESS_ZSTD, 3, ring, enc};
		PgbkBuf             obj = encode_ok(&p, raw, 5000, NULL);
		PgbkBuf             twice;
		PgbkBuf             out;
		PgbkError           err;
		size_t              len = obj.len;
		static const size_t one[] = {1};

		pgbk_buf_init(&twice);
		pgbk_buf_append(&twice, obj.data, obj.len);
		pgbk_buf_append(&twice, obj.data, obj.len);
		pgbk_buf_append(&obj, "\0", 1);
		expect_decode_fail(ring, obj.data, len + 1, PGBK_ERR_INTEGRITY, "after");
		expect_decode_fail(ring, twice.data, twice.len, PGBK_ERR_INTEGRITY, "after");

		/* also when the extra byte comes in its own update call */
		pgbk_buf_init(&out);
		assert_int_equal(decode_stream(ring, obj.data, len + 1, one, 1, &out, NULL, &err),
		                 PGBK_ERR_INTEGRITY);
		pgbk_buf_free(&out);
		pgbk_buf_free(&obj);
		pgbk_buf_free(&twice);
	}
	free(raw);
	keyring_free(ring);
}

static void
test_version_and_magic(void **state)
{
	unsigned char *raw = make_data(100, 13);
	CodecParams    p = {PGBK_COMPRESS_ZSTD, 3, g_ring, false};
	PgbkBuf        obj = encode_ok(&p, raw, 100, "k=v\n");
	CodecHeader    hdr;
	PgbkError      err;
	size_t         alen;

	/* a well-formed version 2 header: the check is right, the version is not ours */
	assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
	alen = strlen(hdr.attrs);
	obj.data[4] = 2;
	crypto_generichash(obj.data + 38 + alen, 16, obj.data, 38 + alen, NULL, 0);
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_FORMAT, "version 2");
	assert_int_equal(codec_read_header(obj.data, 5, &hdr, NULL, &err), PGBK_ERR_FORMAT);

	/* bad magic, whatever follows */
	expect_decode_fail(g_ring, (const unsigned char *) "PGBX", 4, PGBK_ERR_FORMAT,
	                   "not a pgbk object");
	expect_decode_fail(g_ring, (const unsigned char *) "hello, world", 12, PGBK_ERR_FORMAT,
	                   "not a pgbk object");
	expect_decode_fail(g_ring, (const unsigned char *) "P", 1, PGBK_ERR_INTEGRITY, "truncated");

	/* an unknown compression method with a valid header check */
	obj.data[4] = 1;
	obj.data[5] = 7;
	crypto_generichash(obj.data + 38 + alen, 16, obj.data, 38 + alen, NULL, 0);
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_FORMAT, "compression");

	pgbk_buf_free(&obj);
	free(raw);
}

/*
 * Someone who edits the header and recomputes its (unkeyed) check still
 * fails: the header is the additional data of the first secretstream
 * message, and the plain MAC chain starts from the header check.
 */
static void
test_header_rewritten_with_valid_check(void **state)
{
	PgbkKeyring   *ring = make_ring("hw.key", key_a_hex, NULL);
	unsigned char *raw = make_data(5000, 17);
	int            enc;

	for (enc = 0; enc < 2; enc++)
	{
		CodecParams p = {PGBK_COMPRESS_ZSTD, 3, ring, enc};
		PgbkBuf     obj = encode_ok(&p, raw, 5000, "kind=wal\n");
		CodecHeader hdr;
		PgbkError   err;

		assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
		obj.data[38 + 5] = 'x'; /* kind=xal */
		crypto_generichash(obj.data + 38 + 9, 16, obj.data, 38 + 9, NULL, 0);
		assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
		assert_string_equal(hdr.attrs, "kind=xal\n");
		expect_decode_fail(ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, "failed authentication");
		pgbk_buf_free(&obj);
	}
	free(raw);
	keyring_free(ring);
}

static void
test_read_header_needed(void **state)
{
	unsigned char *raw = make_data(100, 14);
	PgbkKeyring   *ring = make_ring("rh.key", key_a_hex, NULL);
	CodecParams    p = {PGBK_COMPRESS_ZSTD, 3, ring, true};
	PgbkBuf        obj = encode_ok(&p, raw, 100, "name=value\n");
	CodecHeader    hdr;
	PgbkError      err;
	size_t         needed;
	size_t         have = 0;

	/* growing reads converge on the header length */
	while (codec_read_header(obj.data, have, &hdr, &needed, &err) != PGBK_OK)
	{
		assert_int_equal(err.code, PGBK_ERR_INTEGRITY);
		assert_true(needed > have);
		have = needed;
	}
	assert_int_equal(have, 38 + 11 + 16 + 24);
	assert_int_equal(hdr.header_len, have);
	assert_true(hdr.encrypted);
	assert_false(hdr.trailer_only);
	assert_int_equal(hdr.raw_size, 100);
	pgbk_buf_free(&obj);
	free(raw);
	keyring_free(ring);
}

static void
test_frame_length_limit(void **state)
{
	unsigned char *raw = make_data(1000, 15);
	CodecParams    p = {PGBK_COMPRESS_NONE, 3, g_ring, false};
	PgbkBuf        obj = encode_ok(&p, raw, 1000, NULL);
	CodecHeader    hdr;
	PgbkError      err;
	CodecDecoder  *dec;
	PgbkBuf        out;
	size_t         h;

	assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
	h = hdr.header_len;
	memset(obj.data + h, 0xff, 4); /* a 4 GiB frame */
	expect_decode_fail(g_ring, obj.data, obj.len, PGBK_ERR_INTEGRITY, "frame length");

	/* the streaming decoder refuses it at once instead of waiting for it */
	pgbk_buf_init(&out);
	assert_int_equal(codec_decoder_begin(g_ring, &dec, &err), PGBK_OK);
	assert_int_equal(codec_decoder_update(dec, obj.data, h + 4, &out, &err), PGBK_ERR_INTEGRITY);
	/* and keeps failing */
	assert_int_equal(codec_decoder_update(dec, obj.data + h + 4, 1, &out, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_int_equal(codec_decoder_finish(dec, NULL, NULL, &err), PGBK_ERR_INTEGRITY);
	pgbk_buf_free(&out);
	pgbk_buf_free(&obj);
	free(raw);
}

static void
test_attrs(void **state)
{
	const char *attrs = "kind=wal\nname=000000010000000000000001\ntli=1\nempty=\n";
	CodecParams p = {PGBK_COMPRESS_ZSTD, 3, g_ring, false};
	PgbkBuf     obj = encode_ok(&p, "x", 1, attrs);
	PgbkBuf     out;
	CodecHeader hdr;
	PgbkError   err;
	char        buf[64];
	char        big[CODEC_MAX_ATTRS + 2];

	pgbk_buf_init(&out);
	assert_int_equal(codec_decode(g_ring, obj.data, obj.len, &out, &hdr, &err), PGBK_OK);
	assert_string_equal(hdr.attrs, attrs);
	assert_true(codec_attr_get(hdr.attrs, "kind", buf, sizeof(buf)));
	assert_string_equal(buf, "wal");
	assert_true(codec_attr_get(hdr.attrs, "name", buf, sizeof(buf)));
	assert_string_equal(buf, "000000010000000000000001");
	assert_true(codec_attr_get(hdr.attrs, "tli", buf, sizeof(buf)));
	assert_string_equal(buf, "1");
	assert_true(codec_attr_get(hdr.attrs, "empty", buf, sizeof(buf)));
	assert_string_equal(buf, "");
	assert_false(codec_attr_get(hdr.attrs, "kin", buf, sizeof(buf)));
	assert_false(codec_attr_get(hdr.attrs, "ind", buf, sizeof(buf)));
	assert_false(codec_attr_get(hdr.attrs, "missing", buf, sizeof(buf)));
	assert_false(codec_attr_get(hdr.attrs, "name", buf, 10)); /* does not fit */
	assert_false(codec_attr_get("", "kind", buf, sizeof(buf)));
	assert_true(codec_attr_get("a=1", "a", buf, sizeof(buf))); /* last line without newline */
	assert_string_equal(buf, "1");
	pgbk_buf_free(&out);
	pgbk_buf_free(&obj);

	/* malformed attributes are the caller's mistake */
	pgbk_buf_init(&obj);
	assert_int_equal(codec_encode(&p, "x", 1, "noequals\n", &obj, NULL, &err), PGBK_ERR_USAGE);
	assert_int_equal(codec_encode(&p, "x", 1, "a=1", &obj, NULL, &err), PGBK_ERR_USAGE);
	assert_int_equal(codec_encode(&p, "x", 1, "=1\n", &obj, NULL, &err), PGBK_ERR_USAGE);
	assert_int_equal(codec_encode(&p, "x", 1, "a=\t\n", &obj, NULL, &err), PGBK_ERR_USAGE);
	memset(big, 'a', sizeof(big) - 1);
	big[1] = '=';
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(codec_encode(&p, "x", 1, big, &obj, NULL, &err), PGBK_ERR_USAGE);
	assert_int_equal(obj.len, 0);
	pgbk_buf_free(&obj);
}

static void
test_bad_params(void **state)
{
	CodecParams   p = {PGBK_COMPRESS_ZSTD, 20, g_ring, false};
	PgbkBuf       obj;
	PgbkError     err;
	CodecEncoder *e;

	pgbk_buf_init(&obj);
	assert_int_equal(codec_encode(&p, "x", 1, NULL, &obj, NULL, &err), PGBK_ERR_USAGE);
	p.level = 0;
	assert_int_equal(codec_encoder_begin(&p, NULL, &e, &obj, &err), PGBK_ERR_USAGE);
	p.compression = 5;
	p.level = 3;
	assert_int_equal(codec_encode(&p, "x", 1, NULL, &obj, NULL, &err), PGBK_ERR_USAGE);
	assert_int_equal(obj.len, 0);
	pgbk_buf_free(&obj);
}

/*
 * The header of an encrypted object does not reveal the plain content hash;
 * codec_header_matches compares with the key.
 */
static void
test_header_matches(void **state)
{
	PgbkKeyring   *ring = make_ring("hm.key", key_a_hex, NULL);
	PgbkKeyring   *other = make_ring("hm2.key", key_b_hex, NULL);
	unsigned char *raw = make_data(70000, 16);
	unsigned char  hash[CODEC_HASH_BYTES];
	unsigned char  wrong[CODEC_HASH_BYTES];
	int            enc;

	codec_hash(raw, 70000, hash);
	memcpy(wrong, hash, sizeof(wrong));
	wrong[0] ^= 1;
	for (enc = 0; enc < 2; enc++)
	{
		CodecParams   p = {PGBK_COMPRESS_ZSTD, 3, ring, enc};
		PgbkBuf       obj = encode_ok(&p, raw, 70000, NULL);
		PgbkBuf       sobj;
		CodecEncoder *e;
		CodecHeader   hdr;
		PgbkError     err;
		bool          same;

		assert_int_equal(codec_read_header(obj.data, obj.len, &hdr, NULL, &err), PGBK_OK);
		/* keyed, encrypted or not */
		assert_memory_not_equal(hdr.content_hash, hash, CODEC_HASH_BYTES);
		assert_int_equal(codec_header_matches(ring, &hdr, hash, 70000, &same, &err), PGBK_OK);
		assert_true(same);
		assert_int_equal(codec_header_matches(ring, &hdr, wrong, 70000, &same, &err), PGBK_OK);
		assert_false(same);
		assert_int_equal(codec_header_matches(ring, &hdr, hash, 69999, &same, &err), PGBK_OK);
		assert_false(same);
		assert_int_equal(codec_header_matches(other, &hdr, hash, 70000, &same, &err), PGBK_ERR_KEY);
		assert_int_equal(codec_header_matches(NULL, &hdr, hash, 70000, &same, &err), PGBK_ERR_KEY);

		/* streamed objects keep the hash in the trailer only */
		pgbk_buf_init(&sobj);
		assert_int_equal(codec_encoder_begin(&p, NULL, &e, &sobj, &err), PGBK_OK);
		assert_int_equal(codec_encoder_update(e, raw, 70000, &sobj, &err), PGBK_OK);
		assert_int_equal(codec_encoder_finish(e, &sobj, NULL, NULL, &err), PGBK_OK);
		assert_int_equal(codec_read_header(sobj.data, sobj.len, &hdr, NULL, &err), PGBK_OK);
		assert_int_equal(codec_header_matches(ring, &hdr, hash, 70000, &same, &err),
		                 PGBK_NOT_FOUND);
		pgbk_buf_free(&sobj);
		pgbk_buf_free(&obj);
	}
	free(raw);
	keyring_free(ring);
	keyring_free(other);
}

/* Encrypting the same content twice gives different bytes (fresh nonce). */
static void
test_fresh_nonce(void **state)
{
	PgbkKeyring *ring = make_ring("fn.key", key_a_hex, NULL);
	CodecParams  p = {PGBK_COMPRESS_NONE, 3, ring, true};
	PgbkBuf      a = encode_ok(&p, "same content", 12, NULL);
	PgbkBuf      b = encode_ok(&p, "same content", 12, NULL);

	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data, b.data, a.len);
	/* and the content does not appear in the clear */
	assert_null(memmem(a.data, a.len, "same content", 12));
	pgbk_buf_free(&a);
	pgbk_buf_free(&b);
	keyring_free(ring);
}

typedef struct ThreadJob
{
	const PgbkKeyring *ring;
	uint32_t           seed;
	int                failures;
} ThreadJob;

static void *
thread_main(void *arg)
{
	ThreadJob *job = arg;
	int        i;

	for (i = 0; i < 4; i++)
	{
		size_t         len = 100000 + 77777 * (size_t) i;
		unsigned char *raw = make_data(len, job->seed + (uint32_t) i);
		CodecParams    p = {PGBK_COMPRESS_ZSTD, 1 + i, job->ring, i % 2};
		PgbkBuf        obj;
		PgbkBuf        back;
		PgbkError      err;

		pgbk_buf_init(&obj);
		pgbk_buf_init(&back);
		if (codec_encode(&p, raw, len, NULL, &obj, NULL, &err) != PGBK_OK ||
		    codec_decode(p.keyring, obj.data, obj.len, &back, NULL, &err) != PGBK_OK ||
		    back.len != len || memcmp(back.data, raw, len) != 0)
			job->failures++;
		pgbk_buf_free(&obj);
		pgbk_buf_free(&back);
		free(raw);
	}
	/* no codec_release_cache(): the thread-exit destructor frees the cache */
	return NULL;
}

/* Threads (the CLI restores in parallel) each get their own zstd contexts. */
static void
test_threads(void **state)
{
	PgbkKeyring *ring = make_ring("th.key", key_a_hex, NULL);
	pthread_t    th[4];
	ThreadJob    jobs[4];
	int          i;

	for (i = 0; i < 4; i++)
	{
		jobs[i].ring = ring;
		jobs[i].seed = 100 + (uint32_t) i;
		jobs[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++)
	{
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].failures, 0);
	}
	keyring_free(ring);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trips),
	    cmocka_unit_test(test_streaming_encoder),
	    cmocka_unit_test(test_streaming_encoder_drained),
	    cmocka_unit_test(test_key_rotation),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_unkeyed_refused),
	    cmocka_unit_test(test_plain_forgery_refused),
	    cmocka_unit_test(test_decode_limits),
	    cmocka_unit_test(test_check_name),
	    cmocka_unit_test(test_flip_encrypted),
	    cmocka_unit_test(test_flip_plain),
	    cmocka_unit_test(test_flip_reports_frame_offset),
	    cmocka_unit_test(test_frames_reordered_or_dropped),
	    cmocka_unit_test(test_truncation_small),
	    cmocka_unit_test(test_truncation_big),
	    cmocka_unit_test(test_trailing_garbage),
	    cmocka_unit_test(test_version_and_magic),
	    cmocka_unit_test(test_header_rewritten_with_valid_check),
	    cmocka_unit_test(test_read_header_needed),
	    cmocka_unit_test(test_frame_length_limit),
	    cmocka_unit_test(test_attrs),
	    cmocka_unit_test(test_bad_params),
	    cmocka_unit_test(test_header_matches),
	    cmocka_unit_test(test_fresh_nonce),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
