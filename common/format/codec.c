/*
 * codec.c
 *	  Room format; uses base (WAL names), config (compression settings), keys.c,
 *	  libsodium, zstd and xxHash.
 *	  The repository object format (see codec.h for the byte layout): encode
 *	  and decode, one-shot and streaming.
 *
 * Encoding writes every frame in place in the caller's output buffer, which
 * is sized up front with ZSTD_compressBound: the one-shot encoder has zstd
 * compress the whole content in a single pass straight into the buffer,
 * then opens small gaps in the compressed bytes for each frame's length
 * word, tag and MAC (moving only compressed bytes) and seals the frames in
 * place; the secretstream encrypts in place too (push() with out == m - 1
 * is an in-place XOR).  The streaming encoder compresses each
 * CODEC_FRAME_RAW piece of content with ZSTD_e_flush straight into its
 * frame, keeping one zstd frame (and window) across the object; it stages
 * raw input only when the caller hands it over in pieces smaller than that.
 *
 * Decoding checks each frame before anything of it is used: secretstream
 * pull() verifies the MAC before it decrypts, the plain check is compared
 * before the message reaches the decompressor.  So a frame that fails
 * authentication never produces output.  Complete frames are processed
 * straight from the caller's input; only a frame split across two update
 * calls is copied (into a buffer bounded by CODEC_MAX_FRAME_LEN).
 *
 * zstd contexts are expensive to set up (several MiB, touched on first use)
 * and WAL archiving encodes one 16 MiB object after another, so each thread
 * keeps one compression and one decompression context for reuse
 * (pthread-specific data, freed when the thread exits).  An encoder or
 * decoder takes the context out of the cache and gives it back when freed,
 * so two live encoders in one thread simply get different contexts.
 */
#include "format/codec.h"
#include "base/walname.h"

#include <pthread.h>
#include <sodium.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t, to embed it */
#include <xxhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define MAGIC                "PGBK"
#define MAGIC_LEN            4
#define FIXED_LEN            38 /* header bytes before the attributes */
#define ATTRLEN_OFF          36 /* where the attribute length is */
#define CHECK_BYTES          16 /* header check and plain frame check */
#define SS_HEADER_BYTES      crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define FRAME_OVERHEAD       17 /* tag byte + MAC or check */
#define LEN_BYTES            4
#define TRAILER_BYTES        (8 + CODEC_HASH_BYTES)
#define TAG_MESSAGE          crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_FINAL            crypto_secretstream_xchacha20poly1305_TAG_FINAL
#define FLAG_ENCRYPTED       0x01
#define FLAG_TRAILER_ONLY    0x02
#define FLAG_AUTHENTICATED   0x04
#define SUBKEY_BYTES         32
#define KDF_CONTEXT          "pgbk-obj"
#define KDF_ID_STREAM        1
#define KDF_ID_HASH          2
#define KDF_ID_MAC           3
#define ZSTD_LEVEL_MIN       1
#define ZSTD_LEVEL_MAX       19
#define ZSTD_WINDOWLOG_LIMIT 24

/*
 * Frame sizes: the streaming encoder puts what zstd makes of
 * CODEC_FRAME_RAW raw bytes in each frame (a multiple of zstd's 128 KiB
 * block size, so frame ends cost no compression); the one-shot encoder
 * compresses everything in one pass and cuts the result into frames of
 * CODEC_FRAME_STORED bytes.  Uncompressed content uses CODEC_FRAME_RAW.
 */
#define CODEC_FRAME_RAW    (256 * 1024)
#define CODEC_FRAME_STORED (256 * 1024)

#if crypto_secretstream_xchacha20poly1305_ABYTES != FRAME_OVERHEAD
#error "secretstream overhead is not tag byte + 16-byte MAC"
#endif

/* ----------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

static void
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char) v;
	p[1] = (unsigned char) (v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v = 0;
	int      i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Memory for structs holding an XXH3_state_t, which wants 64-byte alignment. */
static void *
alloc_aligned(size_t size)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, size) != 0)
		return NULL;
	memset(p, 0, size);
	return p;
}

static PgbkStatus
out_of_memory(PgbkError *err)
{
	return pgbk_error(err, PGBK_ERR, "out of memory");
}

void
codec_hash(const void *data, size_t len, unsigned char out[CODEC_HASH_BYTES])
{
	XXH128_hash_t h = XXH3_128bits(data, len);

	XXH128_canonicalFromHash((XXH128_canonical_t *) out, h);
}

/*
 * The subkeys of a key file key (codec.h): the secretstream key (encrypted
 * objects) or the frame MAC key (plain objects), and the key of the header's
 * content hash.
 */
static void
derive_subkeys(const PgbkKey *key, bool encrypted, unsigned char frame_key[SUBKEY_BYTES],
               unsigned char hash_key[SUBKEY_BYTES])
{
	crypto_kdf_derive_from_key(frame_key, SUBKEY_BYTES, encrypted ? KDF_ID_STREAM : KDF_ID_MAC,
	                           KDF_CONTEXT, key->key);
	crypto_kdf_derive_from_key(hash_key, SUBKEY_BYTES, KDF_ID_HASH, KDF_CONTEXT, key->key);
}

/* The value an encrypted object's header holds in place of the content hash. */
static void
keyed_header_hash(const unsigned char hash_key[SUBKEY_BYTES],
                  const unsigned char hash[CODEC_HASH_BYTES], unsigned char out[CODEC_HASH_BYTES])
{
	crypto_generichash(out, CODEC_HASH_BYTES, hash, CODEC_HASH_BYTES, hash_key, SUBKEY_BYTES);
}

/*
 * Plain frame MAC: BLAKE2b-128 keyed with the object's MAC subkey over the
 * previous frame's MAC (the header check for the first frame) and the frame.
 */
static void
frame_mac(const unsigned char mac_key[SUBKEY_BYTES], const unsigned char prev[CHECK_BYTES],
          const unsigned char *data, size_t len, unsigned char out[CHECK_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, mac_key, SUBKEY_BYTES, CHECK_BYTES);
	crypto_generichash_update(&st, prev, CHECK_BYTES);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, CHECK_BYTES);
}

/*
 * Attributes are "name=value\n" lines of printable ASCII, each with a
 * non-empty name.
 */
static bool
attrs_valid(const char *attrs, size_t len)
{
	size_t i;
	size_t line_start = 0;
	bool   seen_eq = false;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) attrs[i];

		if (c == '\n')
		{
			if (!seen_eq)
				return false;
			line_start = i + 1;
			seen_eq = false;
		}
		else if (c < 0x20 || c > 0x7e)
			return false;
		else if (c == '=' && !seen_eq)
		{
			if (i == line_start)
				return false;
			seen_eq = true;
		}
	}
	return line_start == len; /* last line terminated */
}

PgbkStatus
codec_check_name(const CodecHeader *hdr, const char *want, PgbkError *err)
{
	char have[256];

	if (!codec_attr_get(hdr->attrs, "name", have, sizeof(have)))
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object stored as \"%s\" has no name attribute: it is not the object "
		                  "asked for (it was copied or renamed in the repository)",
		                  want);
	if (strcmp(have, want) != 0)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object stored as \"%s\" holds \"%s\" (its authenticated name "
		                  "attribute): it was copied or renamed in the repository",
		                  want, have);
	return PGBK_OK;
}

uint64_t
codec_wal_limit(const char *name, uint32_t segsz)
{
	switch (walname_classify(name, NULL))
	{
		case WAL_FILE_SEGMENT:
		case WAL_FILE_PARTIAL:
			return walname_segsz_is_valid(segsz) ? segsz : CODEC_LIMIT_WAL_MAX;
		default:
			return CODEC_LIMIT_SMALL;
	}
}

bool
codec_attr_get(const char *attrs, const char *name, char *buf, size_t buflen)
{
	size_t      nlen = strlen(name);
	const char *p = attrs;

	if (attrs == NULL || nlen == 0)
		return false;
	while (*p)
	{
		const char *eol = strchr(p, '\n');

		if (eol == NULL)
			eol = p + strlen(p);
		if ((size_t) (eol - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
		{
			size_t vlen = (size_t) (eol - (p + nlen + 1));

			if (vlen + 1 > buflen)
				return false;
			memcpy(buf, p + nlen + 1, vlen);
			buf[vlen] = '\0';
			return true;
		}
		p = *eol ? eol + 1 : eol;
	}
	return false;
}

/* ----------------------------------------------------------------------
 * Per-thread zstd context cache
 * ---------------------------------------------------------------------- */

typedef struct CodecCache
{
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
} CodecCache;

static pthread_key_t cache_key;
static bool          cache_usable = false;

static void
cache_destroy(void *p)
{
	CodecCache *cache = p;

	ZSTD_freeCCtx(cache->cctx);
	ZSTD_freeDCtx(cache->dctx);
	free(cache);
}

/*
 * Runs when the program starts or the library is loaded, before any thread
 * of ours can exist, so the key needs no further synchronization.
 */
static void cache_init(void) __attribute__((constructor));

static void
cache_init(void)
{
	cache_usable = (pthread_key_create(&cache_key, cache_destroy) == 0);
}

/* The calling thread's cache; NULL if there is none and create is false. */
static CodecCache *
cache_get(bool create)
{
	CodecCache *cache;

	if (!cache_usable)
		return NULL;
	cache = pthread_getspecific(cache_key);
	if (cache == NULL && create)
	{
		cache = calloc(1, sizeof(*cache));
		if (cache != NULL && pthread_setspecific(cache_key, cache) != 0)
		{
			free(cache);
			cache = NULL;
		}
	}
	return cache;
}

static ZSTD_CCtx *
cctx_acquire(void)
{
	CodecCache *cache = cache_get(false);
	ZSTD_CCtx  *cctx;

	if (cache != NULL && cache->cctx != NULL)
	{
		cctx = cache->cctx;
		cache->cctx = NULL;
		return cctx;
	}
	return ZSTD_createCCtx();
}

static void
cctx_release(ZSTD_CCtx *cctx)
{
	CodecCache *cache;

	if (cctx == NULL)
		return;
	/* forget the session and the parameters, keep the memory */
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	cache = cache_get(true);
	if (cache != NULL && cache->cctx == NULL)
		cache->cctx = cctx;
	else
		ZSTD_freeCCtx(cctx);
}

static ZSTD_DCtx *
dctx_acquire(void)
{
	CodecCache *cache = cache_get(false);
	ZSTD_DCtx  *dctx;

	if (cache != NULL && cache->dctx != NULL)
	{
		dctx = cache->dctx;
		cache->dctx = NULL;
		return dctx;
	}
	return ZSTD_createDCtx();
}

static void
dctx_release(ZSTD_DCtx *dctx)
{
	CodecCache *cache;

	if (dctx == NULL)
		return;
	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	cache = cache_get(true);
	if (cache != NULL && cache->dctx == NULL)
		cache->dctx = dctx;
	else
		ZSTD_freeDCtx(dctx);
}

void
codec_release_cache(void)
{
	CodecCache *cache = cache_get(false);

	if (cache != NULL)
	{
		pthread_setspecific(cache_key, NULL);
		cache_destroy(cache);
	}
}

/* ----------------------------------------------------------------------
 * Header
 * ---------------------------------------------------------------------- */

static PgbkStatus
header_short(size_t len, size_t need, size_t *needed, PgbkError *err)
{
	if (needed != NULL)
		*needed = need;
	if (len == 0)
		return pgbk_error(err, PGBK_ERR_INTEGRITY, "object is truncated: it is empty");
	return pgbk_error(err, PGBK_ERR_INTEGRITY,
	                  "object is truncated: it ends inside its header (%zu bytes of at least %zu)",
	                  len, need);
}

PgbkStatus
codec_read_header(const void *data, size_t len, CodecHeader *hdr, size_t *needed, PgbkError *err)
{
	const unsigned char *p = data;
	unsigned char        check[CHECK_BYTES];
	size_t               alen;
	size_t               need;
	int                  flags;
	size_t               i;

	if (needed != NULL)
		*needed = 0;
	(void) pgbk_crypto_init(NULL);

	if (len > 0 && memcmp(p, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN) != 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "not a pgbk object (bad magic number)");
	if (len < MAGIC_LEN + 1)
		return header_short(len, MAGIC_LEN + 1, needed, err);
	/* the layout after the version byte belongs to the version */
	if (p[4] != CODEC_FORMAT_VERSION)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "unsupported pgbk object format version %d (this build reads version %d)",
		                  p[4], CODEC_FORMAT_VERSION);
	if (len < FIXED_LEN)
		return header_short(len, FIXED_LEN, needed, err);
	alen = get16(p + ATTRLEN_OFF);
	if (alen > CODEC_MAX_ATTRS)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object header is corrupt: attribute length %zu exceeds %d", alen,
		                  CODEC_MAX_ATTRS);
	need = FIXED_LEN + alen + CHECK_BYTES;
	if (len < need)
		return header_short(len, need, needed, err);
	crypto_generichash(check, CHECK_BYTES, p, FIXED_LEN + alen, NULL, 0);
	if (memcmp(check, p + FIXED_LEN + alen, CHECK_BYTES) != 0)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object header is corrupt (header check mismatch): the object was "
		                  "modified or damaged");

	/* From here on the header is intact; oddities are unsupported formats. */
	flags = p[6];
	if (p[5] != PGBK_COMPRESS_NONE && p[5] != PGBK_COMPRESS_ZSTD)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "unsupported compression method %d in object header", p[5]);
	if ((flags & ~(FLAG_ENCRYPTED | FLAG_TRAILER_ONLY | FLAG_AUTHENTICATED)) != 0 || p[7] != 0 ||
	    (flags & (FLAG_ENCRYPTED | FLAG_AUTHENTICATED)) == (FLAG_ENCRYPTED | FLAG_AUTHENTICATED))
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "unsupported flags 0x%02x or reserved byte 0x%02x in object header",
		                  flags, p[7]);
	if (!(flags & (FLAG_ENCRYPTED | FLAG_AUTHENTICATED)))
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object is not authenticated with a key: it was written without a key "
		                  "file (by pgbk before 1.1, when encryption = off) or forged by someone "
		                  "who can write to the repository; pgbk reads only objects authenticated "
		                  "with the repository's key");
	if (flags & FLAG_TRAILER_ONLY)
	{
		bool zero = get64(p + 12) == 0;

		for (i = 0; i < CODEC_HASH_BYTES; i++)
			zero = zero && p[20 + i] == 0;
		if (!zero)
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "object header holds a size or hash but says it has none");
	}
	for (i = 0; i < alen; i++)
	{
		if (p[FIXED_LEN + i] == '\0')
			return pgbk_error(err, PGBK_ERR_FORMAT, "object header attributes contain a NUL byte");
	}
	if (flags & FLAG_ENCRYPTED)
	{
		need += SS_HEADER_BYTES;
		if (len < need)
			return header_short(len, need, needed, err);
	}

	hdr->version = p[4];
	hdr->compression = p[5];
	hdr->encrypted = (flags & FLAG_ENCRYPTED) != 0;
	hdr->authenticated = (flags & FLAG_AUTHENTICATED) != 0;
	hdr->trailer_only = (flags & FLAG_TRAILER_ONLY) != 0;
	hdr->key_id = get32(p + 8);
	hdr->raw_size = get64(p + 12);
	memcpy(hdr->content_hash, p + 20, CODEC_HASH_BYTES);
	memcpy(hdr->attrs, p + FIXED_LEN, alen);
	hdr->attrs[alen] = '\0';
	hdr->header_len = need;
	return PGBK_OK;
}

PgbkStatus
codec_header_matches(const PgbkKeyring *ring, const CodecHeader *hdr,
                     const unsigned char hash[CODEC_HASH_BYTES], uint64_t raw_size, bool *same,
                     PgbkError *err)
{
	const PgbkKey *key;
	unsigned char  stream_key[SUBKEY_BYTES];
	unsigned char  hash_key[SUBKEY_BYTES];
	unsigned char  expect[CODEC_HASH_BYTES];

	*same = false;
	if (hdr->trailer_only)
		return pgbk_error(err, PGBK_NOT_FOUND,
		                  "object header holds no content hash (it was written as a stream)");
	if (!hdr->encrypted && !hdr->authenticated)
		return pgbk_error(err, PGBK_ERR_INTEGRITY, "object is not authenticated with a key");
	if (ring == NULL)
		return pgbk_error(err, PGBK_ERR_KEY,
		                  "object is %s with key id %08x but no key file is configured (set "
		                  "key_file)",
		                  hdr->encrypted ? "encrypted" : "authenticated", (unsigned) hdr->key_id);
	key = keyring_find(ring, hdr->key_id);
	if (key == NULL)
		return pgbk_error(err, PGBK_ERR_KEY,
		                  "object is %s with key id %08x, which is not in key file \"%s\"; "
		                  "use the key file that wrote it, or add that key back below the "
		                  "current one",
		                  hdr->encrypted ? "encrypted" : "authenticated", (unsigned) hdr->key_id,
		                  ring->path);
	(void) pgbk_crypto_init(NULL);
	derive_subkeys(key, hdr->encrypted, stream_key, hash_key);
	keyed_header_hash(hash_key, hash, expect);
	*same = hdr->raw_size == raw_size &&
	        sodium_memcmp(expect, hdr->content_hash, CODEC_HASH_BYTES) == 0;
	sodium_memzero(stream_key, sizeof(stream_key));
	sodium_memzero(hash_key, sizeof(hash_key));
	return PGBK_OK;
}

/* ----------------------------------------------------------------------
 * Encoder
 * ---------------------------------------------------------------------- */

struct CodecEncoder
{
	XXH3_state_t hash; /* of the raw content; first: wants 64-byte alignment */
	crypto_secretstream_xchacha20poly1305_state ss;
	unsigned char                               hash_key[SUBKEY_BYTES];
	unsigned char  mac_key[SUBKEY_BYTES]; /* plain: the frame MAC key */
	unsigned char  chain[CHECK_BYTES];    /* plain: MAC of the last frame */
	unsigned char  header[FIXED_LEN + CODEC_MAX_ATTRS + CHECK_BYTES];
	size_t         header_len; /* without the secretstream header: the AD */
	int            compression;
	int            level;
	bool           encrypted;
	bool           first_message;
	bool           failed;
	uint32_t       key_id;
	ZSTD_CCtx     *cctx;
	uint64_t       raw_size;
	unsigned char *stage; /* streaming: raw bytes not yet in a frame */
	size_t         stage_len;
	const char    *attrs;
	size_t         attrs_len;
};

void
codec_encoder_free(CodecEncoder *enc)
{
	if (enc == NULL)
		return;
	cctx_release(enc->cctx);
	free(enc->stage);
	sodium_memzero(enc, sizeof(*enc)); /* secretstream state, hash key */
	free(enc);
}

/* Validate the parameters and set up an encoder (no output yet). */
static PgbkStatus
encoder_new(const CodecParams *params, const char *attrs, CodecEncoder **out, PgbkError *err)
{
	CodecEncoder *enc;
	size_t        alen = attrs ? strlen(attrs) : 0;
	PgbkStatus    rc;

	*out = NULL;
	if ((rc = pgbk_crypto_init(err)) != PGBK_OK)
		return rc;
	if (params == NULL ||
	    (params->compression != PGBK_COMPRESS_NONE && params->compression != PGBK_COMPRESS_ZSTD))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid compression method");
	if (params->compression == PGBK_COMPRESS_ZSTD &&
	    (params->level < ZSTD_LEVEL_MIN || params->level > ZSTD_LEVEL_MAX))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid zstd compression level %d (must be %d..%d)",
		                  params->level, ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX);
	if (params->keyring == NULL)
		return pgbk_error(err, PGBK_ERR_KEY,
		                  "no key file: every repository object is authenticated with the key, "
		                  "also with encryption off (set key_file)");
	if (params->keyring->nkeys < 1)
		return pgbk_error(err, PGBK_ERR_KEY, "key file \"%s\" holds no key",
		                  params->keyring->path ? params->keyring->path : "");
	if (alen > CODEC_MAX_ATTRS)
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "object attributes are too long (%zu bytes, at most %d)", alen,
		                  CODEC_MAX_ATTRS);
	if (!attrs_valid(attrs ? attrs : "", alen))
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "object attributes must be \"name=value\" lines of printable ASCII, "
		                  "each ending with a newline");

	enc = alloc_aligned(sizeof(*enc));
	if (enc == NULL)
		return out_of_memory(err);
	enc->compression = params->compression;
	enc->level = params->level;
	enc->encrypted = params->encrypt;
	enc->first_message = true;
	enc->attrs = attrs ? attrs : "";
	enc->attrs_len = alen;
	XXH3_128bits_reset(&enc->hash);

	if (enc->compression == PGBK_COMPRESS_ZSTD)
	{
		size_t zr;

		enc->cctx = cctx_acquire();
		if (enc->cctx == NULL)
		{
			codec_encoder_free(enc);
			return out_of_memory(err);
		}
		if (params->profile == CODEC_PROFILE_WAL && enc->level <= 3)
		{
			/* see CODEC_PROFILE_WAL in codec.h */
			zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_compressionLevel, 1);
			if (!ZSTD_isError(zr))
				zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_strategy, ZSTD_fast);
			if (!ZSTD_isError(zr))
				zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_minMatch, 5);
			if (!ZSTD_isError(zr))
				zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_hashLog, 13);
			if (!ZSTD_isError(zr))
				zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_windowLog, 21);
		}
		else
		{
			zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_compressionLevel, enc->level);
			if (!ZSTD_isError(zr) && params->profile == CODEC_PROFILE_WAL && enc->level == 4)
			{
				zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_hashLog, 14);
				if (!ZSTD_isError(zr))
					zr = ZSTD_CCtx_setParameter(enc->cctx, ZSTD_c_chainLog, 13);
			}
		}
		if (ZSTD_isError(zr))
		{
			codec_encoder_free(enc);
			return pgbk_error(err, PGBK_ERR, "could not set up zstd: %s", ZSTD_getErrorName(zr));
		}
	}
	*out = enc;
	return PGBK_OK;
}

/*
 * Write the header (and the secretstream header) to out and start the
 * stream.  hash is the plain content hash (unused when trailer_only); for
 * encrypted objects the header gets its keyed form.
 */
static PgbkStatus
encoder_start(CodecEncoder *enc, const PgbkKeyring *ring, bool trailer_only, uint64_t raw_size,
              const unsigned char hash[CODEC_HASH_BYTES], PgbkBuf *out, PgbkError *err)
{
	unsigned char *h = enc->header;
	unsigned char  stream_key[SUBKEY_BYTES];
	unsigned char  ss_header[SS_HEADER_BYTES];
	int            flags = enc->encrypted ? FLAG_ENCRYPTED : FLAG_AUTHENTICATED;

	enc->key_id = ring->keys[0].id;
	derive_subkeys(&ring->keys[0], enc->encrypted, stream_key, enc->hash_key);
	if (!enc->encrypted)
		memcpy(enc->mac_key, stream_key, SUBKEY_BYTES);
	if (trailer_only)
		flags |= FLAG_TRAILER_ONLY;

	memcpy(h, MAGIC, MAGIC_LEN);
	h[4] = CODEC_FORMAT_VERSION;
	h[5] = (unsigned char) enc->compression;
	h[6] = (unsigned char) flags;
	h[7] = 0;
	put32(h + 8, enc->key_id);
	put64(h + 12, trailer_only ? 0 : raw_size);
	if (trailer_only)
		memset(h + 20, 0, CODEC_HASH_BYTES);
	else
		keyed_header_hash(enc->hash_key, hash, h + 20);
	put16(h + ATTRLEN_OFF, (uint16_t) enc->attrs_len);
	memcpy(h + FIXED_LEN, enc->attrs, enc->attrs_len);
	crypto_generichash(h + FIXED_LEN + enc->attrs_len, CHECK_BYTES, h, FIXED_LEN + enc->attrs_len,
	                   NULL, 0);
	enc->header_len = FIXED_LEN + enc->attrs_len + CHECK_BYTES;
	/* the plain check chain starts from the header check */
	memcpy(enc->chain, h + FIXED_LEN + enc->attrs_len, CHECK_BYTES);

	if (!pgbk_buf_append(out, h, enc->header_len))
	{
		sodium_memzero(stream_key, sizeof(stream_key));
		return out_of_memory(err);
	}
	if (enc->encrypted)
		crypto_secretstream_xchacha20poly1305_init_push(&enc->ss, ss_header, stream_key);
	sodium_memzero(stream_key, sizeof(stream_key));
	if (enc->encrypted && !pgbk_buf_append(out, ss_header, SS_HEADER_BYTES))
		return out_of_memory(err);
	return PGBK_OK;
}

/*
 * Seal the frame whose message (plen bytes) sits at out->data + start + 5:
 * encrypt it in place or add the check, then write the length word.  The
 * caller reserved plen + FRAME_OVERHEAD + 4 bytes from start.
 */
static void
encoder_seal(CodecEncoder *enc, PgbkBuf *out, size_t start, size_t plen, unsigned char tag)
{
	unsigned char *frame = out->data + start;
	unsigned char *msg = frame + LEN_BYTES + 1;

	if (enc->encrypted)
	{
		/* c = out + 1 == msg: an in-place XOR; the MAC lands behind it */
		crypto_secretstream_xchacha20poly1305_push(&enc->ss, frame + LEN_BYTES, NULL, msg, plen,
		                                           enc->first_message ? enc->header : NULL,
		                                           enc->first_message ? enc->header_len : 0, tag);
	}
	else
	{
		frame[LEN_BYTES] = tag;
		frame_mac(enc->mac_key, enc->chain, frame + LEN_BYTES, 1 + plen, msg + plen);
		memcpy(enc->chain, msg + plen, CHECK_BYTES);
	}
	enc->first_message = false;
	put32(frame, (uint32_t) (plen + FRAME_OVERHEAD));
	out->len = start + LEN_BYTES + plen + FRAME_OVERHEAD;
	out->data[out->len] = '\0';
}

/* A frame holding len bytes of data as they are (no compression, or the trailer). */
static PgbkStatus
encoder_put_message(CodecEncoder *enc, const void *data, size_t len, unsigned char tag,
                    PgbkBuf *out, PgbkError *err)
{
	size_t start = out->len;

	if (!pgbk_buf_reserve(out, LEN_BYTES + FRAME_OVERHEAD + len))
		return out_of_memory(err);
	if (len > 0)
		memcpy(out->data + start + LEN_BYTES + 1, data, len);
	encoder_seal(enc, out, start, len, tag);
	return PGBK_OK;
}

/*
 * A data frame for len (<= CODEC_FRAME_RAW) raw bytes.  With zstd, mode is
 * ZSTD_e_flush, or ZSTD_e_end for the last piece of content.
 */
static PgbkStatus
encoder_put_data(CodecEncoder *enc, const void *raw, size_t len, ZSTD_EndDirective mode,
                 PgbkBuf *out, PgbkError *err)
{
	size_t         start = out->len;
	size_t         room;
	ZSTD_inBuffer  in = {raw, len, 0};
	ZSTD_outBuffer zo;
	size_t         zr;

	if (pgbk_interrupted())
		return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
	if (enc->compression == PGBK_COMPRESS_NONE)
		return encoder_put_message(enc, raw, len, TAG_MESSAGE, out, err);

	/*
	 * Room for everything zstd can make of len bytes, plus the end of the
	 * zstd frame; rarely zstd wants more (then we grow and go on).
	 */
	room = ZSTD_compressBound(len) + 64;
	zo.pos = 0;
	for (;;)
	{
		if (!pgbk_buf_reserve(out, LEN_BYTES + 1 + zo.pos + room + CHECK_BYTES))
		{
			out->len = start;
			return out_of_memory(err);
		}
		zo.dst = out->data + start + LEN_BYTES + 1;
		zo.size = zo.pos + room;
		zr = ZSTD_compressStream2(enc->cctx, &zo, &in, mode);
		if (ZSTD_isError(zr))
		{
			out->len = start;
			return pgbk_error(err, PGBK_ERR, "zstd compression failed: %s", ZSTD_getErrorName(zr));
		}
		if (zr == 0 && in.pos == in.size)
			break;
		room = zr > 4096 ? zr : 4096;
	}
	if (zo.pos + FRAME_OVERHEAD > CODEC_MAX_FRAME_LEN)
	{
		/* cannot happen with CODEC_FRAME_RAW far below the limit */
		out->len = start;
		return pgbk_error(err, PGBK_ERR, "compressed frame too large (%zu bytes)", zo.pos);
	}
	encoder_seal(enc, out, start, zo.pos, TAG_MESSAGE);
	return PGBK_OK;
}

/* The FINAL frame with the trailer. */
static PgbkStatus
encoder_put_trailer(CodecEncoder *enc, const unsigned char hash[CODEC_HASH_BYTES], PgbkBuf *out,
                    PgbkError *err)
{
	unsigned char trailer[TRAILER_BYTES];

	put64(trailer, enc->raw_size);
	memcpy(trailer + 8, hash, CODEC_HASH_BYTES);
	return encoder_put_message(enc, trailer, TRAILER_BYTES, TAG_FINAL, out, err);
}

/*
 * One-shot zstd: compress all of raw in a single pass straight into out
 * (zstd's fastest path: no input staging, no output flushing), then cut the
 * result into frames.  Opening the gaps for the length words, tags and MACs
 * moves only compressed bytes, back to front, within the reserved space;
 * then each frame is sealed in place, front to back as the stream demands.
 */
static PgbkStatus
encoder_put_all_compressed(CodecEncoder *enc, const void *raw, size_t len, PgbkBuf *out,
                           PgbkError *err)
{
	const size_t gap = LEN_BYTES + FRAME_OVERHEAD;
	size_t       bound = ZSTD_compressBound(len);
	size_t       maxframes = bound / CODEC_FRAME_STORED + 1;
	size_t       start = out->len;
	size_t       payload0 = start + LEN_BYTES + 1;
	size_t       clen;
	size_t       nframes;
	size_t       i;

	if (!pgbk_buf_reserve(out, bound + maxframes * gap))
		return out_of_memory(err);
	clen = ZSTD_compress2(enc->cctx, out->data + payload0, bound, raw, len);
	if (ZSTD_isError(clen))
		return pgbk_error(err, PGBK_ERR, "zstd compression failed: %s", ZSTD_getErrorName(clen));
	nframes = (clen + CODEC_FRAME_STORED - 1) / CODEC_FRAME_STORED; /* clen > 0 */

	for (i = nframes - 1; i > 0; i--)
		memmove(out->data + payload0 + i * (CODEC_FRAME_STORED + gap),
		        out->data + payload0 + i * CODEC_FRAME_STORED,
		        i == nframes - 1 ? clen - i * CODEC_FRAME_STORED : CODEC_FRAME_STORED);
	for (i = 0; i < nframes; i++)
	{
		if (pgbk_interrupted())
			return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
		encoder_seal(enc, out, start + i * (CODEC_FRAME_STORED + gap),
		             i == nframes - 1 ? clen - i * CODEC_FRAME_STORED : CODEC_FRAME_STORED,
		             TAG_MESSAGE);
	}
	return PGBK_OK;
}

PgbkStatus
codec_encode(const CodecParams *params, const void *raw, size_t len, const char *attrs,
             PgbkBuf *out, unsigned char hash_out[CODEC_HASH_BYTES], PgbkError *err)
{
	CodecEncoder        *enc;
	PgbkStatus           rc;
	unsigned char        hash[CODEC_HASH_BYTES];
	const unsigned char *p = raw;
	size_t               start = out->len;
	size_t               nframes = len / CODEC_FRAME_RAW + 2;
	size_t               body;
	size_t               off = 0;

	if ((rc = encoder_new(params, attrs, &enc, err)) != PGBK_OK)
		return rc;

	/*
	 * The header carries the hash and is authenticated with the first frame,
	 * so the hash comes first: one pass over the content to hash it, one to
	 * compress it.
	 */
	codec_hash(raw, len, hash);
	enc->raw_size = len;

	/* Reserve everything up front so that zstd writes straight into out. */
	body = enc->compression == PGBK_COMPRESS_ZSTD ? ZSTD_compressBound(len) : len;
	nframes += body / CODEC_FRAME_STORED;
	if (!pgbk_buf_reserve(out, FIXED_LEN + enc->attrs_len + CHECK_BYTES + SS_HEADER_BYTES + body +
	                               nframes * (LEN_BYTES + FRAME_OVERHEAD) + TRAILER_BYTES))
	{
		codec_encoder_free(enc);
		return out_of_memory(err);
	}
	rc = encoder_start(enc, params->keyring, false, len, hash, out, err);
	if (rc == PGBK_OK && enc->compression == PGBK_COMPRESS_ZSTD)
		rc = encoder_put_all_compressed(enc, raw, len, out, err);
	while (rc == PGBK_OK && enc->compression == PGBK_COMPRESS_NONE)
	{
		size_t chunk = len - off < CODEC_FRAME_RAW ? len - off : CODEC_FRAME_RAW;
		bool   last = off + chunk == len;

		/* empty content needs no data frame */
		if (chunk > 0)
			rc = encoder_put_message(enc, p + off, chunk, TAG_MESSAGE, out, err);
		off += chunk;
		if (last)
			break;
	}
	if (rc == PGBK_OK)
		rc = encoder_put_trailer(enc, hash, out, err);

	codec_encoder_free(enc);
	if (rc != PGBK_OK)
	{
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return rc;
	}
	if (hash_out)
		memcpy(hash_out, hash, CODEC_HASH_BYTES);
	return PGBK_OK;
}

PgbkStatus
codec_encoder_begin(const CodecParams *params, const char *attrs, CodecEncoder **enc_out,
                    PgbkBuf *out, PgbkError *err)
{
	CodecEncoder *enc;
	PgbkStatus    rc;
	size_t        start = out->len;

	*enc_out = NULL;
	if ((rc = encoder_new(params, attrs, &enc, err)) != PGBK_OK)
		return rc;
	enc->stage = malloc(CODEC_FRAME_RAW);
	if (enc->stage == NULL)
	{
		codec_encoder_free(enc);
		return out_of_memory(err);
	}
	rc = encoder_start(enc, params->keyring, true, 0, NULL, out, err);
	if (rc != PGBK_OK)
	{
		out->len = start;
		codec_encoder_free(enc);
		return rc;
	}
	*enc_out = enc;
	return PGBK_OK;
}

PgbkStatus
codec_encoder_update(CodecEncoder *enc, const void *data, size_t len, PgbkBuf *out, PgbkError *err)
{
	const unsigned char *p = data;
	PgbkStatus           rc = PGBK_OK;

	if (enc->failed)
		return pgbk_error(err, PGBK_ERR_USAGE, "encoder used after a failure");
	XXH3_128bits_update(&enc->hash, p, len);
	enc->raw_size += len;

	while (len > 0 && rc == PGBK_OK)
	{
		if (enc->stage_len == 0 && len >= CODEC_FRAME_RAW)
		{
			/* a whole frame's worth in the caller's buffer: no staging */
			rc = encoder_put_data(enc, p, CODEC_FRAME_RAW, ZSTD_e_flush, out, err);
			p += CODEC_FRAME_RAW;
			len -= CODEC_FRAME_RAW;
		}
		else
		{
			size_t take = CODEC_FRAME_RAW - enc->stage_len;

			if (take > len)
				take = len;
			memcpy(enc->stage + enc->stage_len, p, take);
			enc->stage_len += take;
			p += take;
			len -= take;
			if (enc->stage_len == CODEC_FRAME_RAW)
			{
				rc = encoder_put_data(enc, enc->stage, enc->stage_len, ZSTD_e_flush, out, err);
				enc->stage_len = 0;
			}
		}
	}
	if (rc != PGBK_OK)
		enc->failed = true;
	return rc;
}

PgbkStatus
codec_encoder_finish(CodecEncoder *enc, PgbkBuf *out, unsigned char hash_out[CODEC_HASH_BYTES],
                     uint64_t *raw_size_out, PgbkError *err)
{
	PgbkStatus    rc = PGBK_OK;
	unsigned char hash[CODEC_HASH_BYTES];

	if (enc->failed)
	{
		codec_encoder_free(enc);
		return pgbk_error(err, PGBK_ERR_USAGE, "encoder used after a failure");
	}
	/* the rest of the content; zstd also ends its frame here */
	if (enc->stage_len > 0 || enc->compression == PGBK_COMPRESS_ZSTD)
		rc = encoder_put_data(enc, enc->stage, enc->stage_len, ZSTD_e_end, out, err);
	XXH128_canonicalFromHash((XXH128_canonical_t *) hash, XXH3_128bits_digest(&enc->hash));
	if (rc == PGBK_OK)
		rc = encoder_put_trailer(enc, hash, out, err);
	if (rc == PGBK_OK)
	{
		if (hash_out)
			memcpy(hash_out, hash, CODEC_HASH_BYTES);
		if (raw_size_out)
			*raw_size_out = enc->raw_size;
	}
	codec_encoder_free(enc);
	return rc;
}

/* ----------------------------------------------------------------------
 * Decoder
 * ---------------------------------------------------------------------- */

typedef enum DecState
{
	DEC_HEADER,
	DEC_FRAMES,
	DEC_DONE,
	DEC_FAILED
} DecState;

struct CodecDecoder
{
	XXH3_state_t hash; /* of the output; first: wants 64-byte alignment */
	crypto_secretstream_xchacha20poly1305_state ss;
	unsigned char                               hash_key[SUBKEY_BYTES];
	unsigned char                               mac_key[SUBKEY_BYTES];
	unsigned char                               chain[CHECK_BYTES];
	unsigned char      header[FIXED_LEN + CODEC_MAX_ATTRS + CHECK_BYTES]; /* the AD */
	uint64_t           max_raw; /* refuse content longer than this */
	CodecSink          sink;    /* NULL: all output stays in out */
	void              *sink_arg;
	size_t             ad_len;
	const PgbkKeyring *ring;
	CodecHeader        hdr;
	DecState           state;
	bool               first_message;
	bool               zstd_done; /* the zstd frame has ended */
	ZSTD_DCtx         *dctx;
	PgbkBuf            pending;   /* a unit (header or frame) split across updates */
	bool               collect;   /* one-shot zstd: gather, decompress at FINAL */
	PgbkBuf            collected; /* the verified compressed stream */
	unsigned char     *scratch;   /* decrypted message (encrypted + zstd) */
	uint64_t           offset;    /* stored bytes consumed: offset of the next unit */
	uint64_t           raw_size;
	unsigned char      trailer[TRAILER_BYTES];
	PgbkError          failure; /* sticky error */
};

void
codec_decoder_free(CodecDecoder *dec)
{
	if (dec == NULL)
		return;
	dctx_release(dec->dctx);
	pgbk_buf_free(&dec->pending);
	pgbk_buf_free(&dec->collected);
	if (dec->scratch != NULL)
	{
		sodium_memzero(dec->scratch, CODEC_MAX_FRAME_LEN);
		free(dec->scratch);
	}
	sodium_memzero(dec, sizeof(*dec));
	free(dec);
}

PgbkStatus
codec_decoder_begin(const PgbkKeyring *ring, uint64_t max_raw, CodecDecoder **dec_out,
                    PgbkError *err)
{
	CodecDecoder *dec;
	PgbkStatus    rc;

	*dec_out = NULL;
	if ((rc = pgbk_crypto_init(err)) != PGBK_OK)
		return rc;
	dec = alloc_aligned(sizeof(*dec));
	if (dec == NULL)
		return out_of_memory(err);
	dec->ring = ring;
	dec->max_raw = max_raw;
	dec->state = DEC_HEADER;
	dec->first_message = true;
	pgbk_buf_init(&dec->pending);
	pgbk_buf_init(&dec->collected);
	XXH3_128bits_reset(&dec->hash);
	*dec_out = dec;
	return PGBK_OK;
}

void
codec_decoder_set_sink(CodecDecoder *dec, CodecSink sink, void *arg)
{
	dec->sink = sink;
	dec->sink_arg = arg;
}

/* The header is complete at p (hdr already parsed): set up for the frames. */
static PgbkStatus
decoder_start(CodecDecoder *dec, const unsigned char *p, PgbkError *err)
{
	CodecHeader   *hdr = &dec->hdr;
	const PgbkKey *key;
	unsigned char  stream_key[SUBKEY_BYTES];

	dec->ad_len = hdr->header_len - (hdr->encrypted ? SS_HEADER_BYTES : 0);
	memcpy(dec->header, p, dec->ad_len);
	memcpy(dec->chain, p + dec->ad_len - CHECK_BYTES, CHECK_BYTES);

	/* codec_read_header refused objects that are neither */
	if (!hdr->encrypted && !hdr->authenticated)
		return pgbk_error(err, PGBK_ERR_INTEGRITY, "object is not authenticated with a key");
	if (!hdr->trailer_only && hdr->raw_size > dec->max_raw)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object declares %llu bytes of content, more than the %llu bytes "
		                  "allowed for an object of its kind: refusing to decode it",
		                  (unsigned long long) hdr->raw_size, (unsigned long long) dec->max_raw);
	if (dec->ring == NULL)
		return pgbk_error(err, PGBK_ERR_KEY,
		                  "object is %s with key id %08x but no key file is configured (set "
		                  "key_file)",
		                  hdr->encrypted ? "encrypted" : "authenticated", (unsigned) hdr->key_id);
	key = keyring_find(dec->ring, hdr->key_id);
	if (key == NULL)
		return pgbk_error(err, PGBK_ERR_KEY,
		                  "object is %s with key id %08x, which is not in key file \"%s\"; use "
		                  "the key file that wrote it, or add that key back below the current "
		                  "one",
		                  hdr->encrypted ? "encrypted" : "authenticated", (unsigned) hdr->key_id,
		                  dec->ring->path);
	derive_subkeys(key, hdr->encrypted, stream_key, dec->hash_key);
	if (hdr->encrypted)
		crypto_secretstream_xchacha20poly1305_init_pull(&dec->ss, p + dec->ad_len, stream_key);
	else
		memcpy(dec->mac_key, stream_key, SUBKEY_BYTES);
	sodium_memzero(stream_key, sizeof(stream_key));

	if (hdr->compression == PGBK_COMPRESS_ZSTD)
	{
		size_t zr;

		dec->dctx = dctx_acquire();
		if (dec->dctx == NULL)
			return out_of_memory(err);
		/* a bounded window: garbage cannot make us allocate much */
		zr = ZSTD_DCtx_setParameter(dec->dctx, ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_LIMIT);
		if (ZSTD_isError(zr))
			return pgbk_error(err, PGBK_ERR, "could not set up zstd: %s", ZSTD_getErrorName(zr));
		if (hdr->encrypted)
		{
			dec->scratch = malloc(CODEC_MAX_FRAME_LEN);
			if (dec->scratch == NULL)
				return out_of_memory(err);
		}
	}
	return PGBK_OK;
}

/* Account for n bytes of output just written at out->data + out->len. */
static PgbkStatus
decoder_emit(CodecDecoder *dec, PgbkBuf *out, size_t n, uint64_t frame_off, PgbkError *err)
{
	if (n == 0)
		return PGBK_OK;
	dec->raw_size += n;
	if (dec->raw_size > dec->max_raw)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object content is longer than the %llu bytes allowed for an object of "
		                  "its kind (frame at byte offset %llu): refusing to decode it further",
		                  (unsigned long long) dec->max_raw, (unsigned long long) frame_off);
	if (!dec->hdr.trailer_only && dec->raw_size > dec->hdr.raw_size)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object content is longer than the %llu bytes its header records "
		                  "(frame at byte offset %llu)",
		                  (unsigned long long) dec->hdr.raw_size, (unsigned long long) frame_off);
	XXH3_128bits_update(&dec->hash, out->data + out->len, n);
	out->len += n;
	out->data[out->len] = '\0';
	if (dec->sink != NULL && out->len >= CODEC_FRAME_RAW)
	{
		/* hand the output on in pieces: memory stays bounded */
		PgbkStatus rc = dec->sink(dec->sink_arg, out->data, out->len, err);

		out->len = 0;
		out->data[0] = '\0';
		return rc;
	}
	return PGBK_OK;
}

/*
 * Output room to ask for before a decompression step: a frame's worth, but
 * no more than the header says is left, so that an output buffer sized from
 * the header is not doubled near its end.  At least one byte, so that
 * content longer than the header says is noticed.
 */
static size_t
decoder_room(const CodecDecoder *dec)
{
	uint64_t left;
	uint64_t limit = dec->hdr.trailer_only || dec->hdr.raw_size > dec->max_raw ? dec->max_raw
	                                                                           : dec->hdr.raw_size;

	/* never more room than the limit leaves (plus the byte that detects excess) */
	left = limit > dec->raw_size ? limit - dec->raw_size : 0;
	if (left > CODEC_FRAME_RAW)
		return CODEC_FRAME_RAW;
	return left > 0 ? (size_t) left : 1;
}

/* Decompress one verified data message into out. */
static PgbkStatus
decoder_inflate(CodecDecoder *dec, const unsigned char *msg, size_t mlen, PgbkBuf *out,
                uint64_t frame_off, PgbkError *err)
{
	ZSTD_inBuffer in = {msg, mlen, 0};
	bool          full = false;
	PgbkStatus    rc;

	while (in.pos < in.size || full)
	{
		ZSTD_outBuffer zo;
		size_t         zr;

		if (dec->zstd_done)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: data after the end of the compressed stream "
			                  "(frame at byte offset %llu)",
			                  (unsigned long long) frame_off);
		if (!pgbk_buf_reserve(out, decoder_room(dec)))
			return out_of_memory(err);
		zo.dst = out->data + out->len;
		zo.size = out->cap - out->len - 1;
		zo.pos = 0;
		zr = ZSTD_decompressStream(dec->dctx, &zo, &in);
		if (ZSTD_isError(zr))
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: the compressed data in the frame at byte offset "
			                  "%llu does not decompress (%s)",
			                  (unsigned long long) frame_off, ZSTD_getErrorName(zr));
		if ((rc = decoder_emit(dec, out, zo.pos, frame_off, err)) != PGBK_OK)
			return rc;
		if (zr == 0)
			dec->zstd_done = true;
		/* a full output window may hide more output */
		full = zo.pos == zo.size && zr != 0;
	}
	return PGBK_OK;
}

/*
 * One-shot decode of zstd content whose size the header records: once every
 * frame is verified, decompress the gathered stream in a single pass
 * straight into out (no window buffer, no flushing).
 */
static PgbkStatus
decoder_inflate_all(CodecDecoder *dec, PgbkBuf *out, PgbkError *err)
{
	size_t fsize = ZSTD_findFrameCompressedSize(dec->collected.data, dec->collected.len);
	size_t n;

	if (ZSTD_isError(fsize) || fsize != dec->collected.len)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object is corrupt: its compressed content is not exactly one zstd "
		                  "frame");
	if (!pgbk_buf_reserve(out, (size_t) dec->hdr.raw_size))
		return out_of_memory(err);
	n = ZSTD_decompressDCtx(dec->dctx, out->data + out->len, (size_t) dec->hdr.raw_size,
	                        dec->collected.data, dec->collected.len);
	if (ZSTD_isError(n))
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object is corrupt: its compressed content does not decompress to the "
		                  "%llu bytes its header records (%s)",
		                  (unsigned long long) dec->hdr.raw_size, ZSTD_getErrorName(n));
	dec->zstd_done = true;
	return decoder_emit(dec, out, n, dec->offset, err);
}

/* One complete frame: body (L bytes, without the length word) at frame_off. */
static PgbkStatus
decoder_frame(CodecDecoder *dec, const unsigned char *body, size_t blen, PgbkBuf *out,
              uint64_t frame_off, PgbkError *err)
{
	size_t               mlen = blen - FRAME_OVERHEAD;
	const unsigned char *msg;
	unsigned char        tag;
	bool                 in_out = false; /* message was decrypted into out's free space */

	if (pgbk_interrupted())
		return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");

	if (dec->hdr.encrypted)
	{
		unsigned char *dst;

		/*
		 * Uncompressed content is decrypted straight into out (a trailer
		 * lands there too, past out->len, and is copied away).  pull()
		 * checks the MAC before it writes anything.
		 */
		if (dec->hdr.compression == PGBK_COMPRESS_NONE)
		{
			if (!pgbk_buf_reserve(out, mlen))
				return out_of_memory(err);
			dst = out->data + out->len;
			in_out = true;
		}
		else if (dec->collect)
		{
			if (!pgbk_buf_reserve(&dec->collected, mlen))
				return out_of_memory(err);
			dst = dec->collected.data + dec->collected.len;
		}
		else
			dst = dec->scratch;
		if (crypto_secretstream_xchacha20poly1305_pull(&dec->ss, dst, NULL, &tag, body, blen,
		                                               dec->first_message ? dec->header : NULL,
		                                               dec->first_message ? dec->ad_len : 0) != 0)
			return pgbk_error(
			    err, PGBK_ERR_INTEGRITY,
			    "object was modified or damaged: the frame at byte offset %llu failed "
			    "authentication%s",
			    (unsigned long long) frame_off,
			    dec->first_message ? " (the header or this frame was changed)" : "");
		msg = dst;
	}
	else
	{
		unsigned char check[CHECK_BYTES];

		frame_mac(dec->mac_key, dec->chain, body, 1 + mlen, check);
		if (sodium_memcmp(check, body + 1 + mlen, CHECK_BYTES) != 0)
			return pgbk_error(
			    err, PGBK_ERR_INTEGRITY,
			    "object was modified or damaged: the frame at byte offset %llu failed "
			    "authentication%s",
			    (unsigned long long) frame_off,
			    dec->first_message ? " (the header or this frame was changed)" : "");
		memcpy(dec->chain, check, CHECK_BYTES);
		tag = body[0];
		msg = body + 1;
	}
	dec->first_message = false;

	if (tag == TAG_FINAL)
	{
		if (mlen != TRAILER_BYTES)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: final frame at byte offset %llu has %zu bytes "
			                  "instead of %d",
			                  (unsigned long long) frame_off, mlen, TRAILER_BYTES);
		if (dec->collect)
		{
			PgbkStatus rc = decoder_inflate_all(dec, out, err);

			if (rc != PGBK_OK)
				return rc;
		}
		if (dec->hdr.compression == PGBK_COMPRESS_ZSTD && !dec->zstd_done)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: the compressed stream is incomplete at its final "
			                  "frame (byte offset %llu)",
			                  (unsigned long long) frame_off);
		memcpy(dec->trailer, msg, TRAILER_BYTES);
		dec->state = DEC_DONE;
		return PGBK_OK;
	}
	if (tag != TAG_MESSAGE)
		return pgbk_error(err, PGBK_ERR_FORMAT, "unsupported frame tag %d at byte offset %llu", tag,
		                  (unsigned long long) frame_off);

	if (dec->collect)
	{
		/* encrypted messages were decrypted in place at the end already */
		if (dec->hdr.encrypted)
			dec->collected.len += mlen;
		else if (!pgbk_buf_append(&dec->collected, msg, mlen))
			return out_of_memory(err);
		return PGBK_OK;
	}
	if (dec->hdr.compression == PGBK_COMPRESS_ZSTD)
		return decoder_inflate(dec, msg, mlen, out, frame_off, err);
	if (!in_out)
	{
		if (!pgbk_buf_reserve(out, mlen))
			return out_of_memory(err);
		if (mlen > 0)
			memcpy(out->data + out->len, msg, mlen);
	}
	return decoder_emit(dec, out, mlen, frame_off, err);
}

/*
 * How many bytes the next unit needs, judging from the avail bytes of it at
 * p.  May grow as more bytes arrive (the header's attribute length).
 */
static PgbkStatus
decoder_unit_size(CodecDecoder *dec, const unsigned char *p, size_t avail, size_t *need,
                  PgbkError *err)
{
	if (dec->state == DEC_HEADER)
	{
		PgbkError  tmp;
		size_t     needed = 0;
		PgbkStatus rc = codec_read_header(p, avail, &dec->hdr, &needed, &tmp);

		if (rc == PGBK_OK)
			*need = dec->hdr.header_len;
		else if (needed > avail)
			*need = needed;
		else
		{
			if (err)
				*err = tmp;
			return rc;
		}
		return PGBK_OK;
	}
	if (avail < LEN_BYTES)
		*need = LEN_BYTES;
	else
	{
		uint32_t len = get32(p);

		if (len < FRAME_OVERHEAD || len > CODEC_MAX_FRAME_LEN)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: invalid frame length %u at byte offset %llu", len,
			                  (unsigned long long) dec->offset);
		*need = LEN_BYTES + len;
	}
	return PGBK_OK;
}

/* Process one complete unit of need bytes at p. */
static PgbkStatus
decoder_unit(CodecDecoder *dec, const unsigned char *p, size_t need, PgbkBuf *out, PgbkError *err)
{
	PgbkStatus rc;

	if (dec->state == DEC_HEADER)
	{
		rc = decoder_start(dec, p, err);
		dec->state = DEC_FRAMES;
	}
	else
		rc = decoder_frame(dec, p + LEN_BYTES, need - LEN_BYTES, out, dec->offset, err);
	dec->offset += need;
	return rc;
}

static PgbkStatus
decoder_feed(CodecDecoder *dec, const unsigned char *p, size_t n, PgbkBuf *out, PgbkError *err)
{
	PgbkStatus rc;
	size_t     need;

	for (;;)
	{
		if (dec->pending.len > 0)
		{
			/* finish the unit that an earlier call started */
			rc = decoder_unit_size(dec, dec->pending.data, dec->pending.len, &need, err);
			if (rc != PGBK_OK)
				return rc;
			if (dec->pending.len < need)
			{
				size_t take = need - dec->pending.len;

				if (n == 0)
					return PGBK_OK;
				if (take > n)
					take = n;
				if (!pgbk_buf_append(&dec->pending, p, take))
					return out_of_memory(err);
				p += take;
				n -= take;
				continue; /* the size may grow now that we see more */
			}
			rc = decoder_unit(dec, dec->pending.data, need, out, err);
			pgbk_buf_reset(&dec->pending);
			if (rc != PGBK_OK)
				return rc;
			continue;
		}
		if (n == 0)
			return PGBK_OK;
		if (dec->state == DEC_DONE)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: %zu unexpected bytes after its final frame (at "
			                  "byte offset %llu)",
			                  n, (unsigned long long) dec->offset);
		rc = decoder_unit_size(dec, p, n, &need, err);
		if (rc != PGBK_OK)
			return rc;
		if (n < need)
		{
			/* keep the start of a unit for the next call */
			if (!pgbk_buf_append(&dec->pending, p, n))
				return out_of_memory(err);
			return PGBK_OK;
		}
		rc = decoder_unit(dec, p, need, out, err);
		if (rc != PGBK_OK)
			return rc;
		p += need;
		n -= need;
	}
}

PgbkStatus
codec_decoder_update(CodecDecoder *dec, const void *data, size_t len, PgbkBuf *out, PgbkError *err)
{
	PgbkStatus rc;

	if (dec->state == DEC_FAILED)
	{
		if (err)
			*err = dec->failure;
		return dec->failure.code;
	}
	rc = decoder_feed(dec, data, len, out, &dec->failure);
	if (rc != PGBK_OK)
	{
		dec->failure.code = rc;
		dec->state = DEC_FAILED;
		if (err)
			*err = dec->failure;
	}
	return rc;
}

/* Verify the end of a fully fed object; fill hdr_out and hash_out. */
static PgbkStatus
decoder_verify(CodecDecoder *dec, CodecHeader *hdr_out, unsigned char hash_out[CODEC_HASH_BYTES],
               PgbkError *err)
{
	unsigned char hash[CODEC_HASH_BYTES];
	unsigned char keyed[CODEC_HASH_BYTES];
	uint64_t      trailer_size = get64(dec->trailer);

	if (dec->state == DEC_FAILED)
	{
		if (err)
			*err = dec->failure;
		return dec->failure.code;
	}
	if (dec->state == DEC_HEADER)
	{
		CodecHeader tmp;

		if (dec->pending.len == 0)
			return header_short(0, MAGIC_LEN + 1, NULL, err);
		/* says how much of the header is missing */
		return codec_read_header(dec->pending.data, dec->pending.len, &tmp, NULL, err);
	}
	if (dec->state != DEC_DONE)
		return pgbk_error(
		    err, PGBK_ERR_INTEGRITY,
		    "object is truncated: it ends at byte offset %llu without its final frame",
		    (unsigned long long) (dec->offset + dec->pending.len));

	XXH128_canonicalFromHash((XXH128_canonical_t *) hash, XXH3_128bits_digest(&dec->hash));
	if (trailer_size != dec->raw_size)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object is corrupt: its content has %llu bytes but its trailer records "
		                  "%llu",
		                  (unsigned long long) dec->raw_size, (unsigned long long) trailer_size);
	if (memcmp(hash, dec->trailer + 8, CODEC_HASH_BYTES) != 0)
		return pgbk_error(err, PGBK_ERR_INTEGRITY,
		                  "object is corrupt: content hash mismatch (trailer)");
	if (!dec->hdr.trailer_only)
	{
		if (dec->hdr.raw_size != dec->raw_size)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: its content has %llu bytes but its header "
			                  "records %llu",
			                  (unsigned long long) dec->raw_size,
			                  (unsigned long long) dec->hdr.raw_size);
		keyed_header_hash(dec->hash_key, hash, keyed);
		if (memcmp(keyed, dec->hdr.content_hash, CODEC_HASH_BYTES) != 0)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "object is corrupt: content hash mismatch (header)");
	}
	if (hdr_out)
	{
		*hdr_out = dec->hdr;
		hdr_out->raw_size = dec->raw_size;
		memcpy(hdr_out->content_hash, hash, CODEC_HASH_BYTES);
	}
	if (hash_out)
		memcpy(hash_out, hash, CODEC_HASH_BYTES);
	return PGBK_OK;
}

PgbkStatus
codec_decoder_finish(CodecDecoder *dec, CodecHeader *hdr_out,
                     unsigned char hash_out[CODEC_HASH_BYTES], PgbkError *err)
{
	PgbkStatus rc = decoder_verify(dec, hdr_out, hash_out, err);

	codec_decoder_free(dec);
	return rc;
}

PgbkStatus
codec_decode(const PgbkKeyring *ring, const void *data, size_t len, uint64_t max_raw, PgbkBuf *out,
             CodecHeader *hdr_out, PgbkError *err)
{
	CodecDecoder *dec;
	PgbkStatus    rc;
	size_t        start = out->len;
	CodecHeader  *hdr;

	if ((rc = codec_decoder_begin(ring, max_raw, &dec, err)) != PGBK_OK)
		return rc;

	/*
	 * Size the output once when the header records the size.  The header is
	 * not authenticated yet, so trust it only as far as a generous
	 * compression ratio goes; the buffer still grows if needed.  Within that
	 * bound, zstd content is decompressed in one pass once every frame is
	 * verified (see decoder_inflate_all).
	 */
	hdr = &dec->hdr;
	if (codec_read_header(data, len, hdr, NULL, NULL) == PGBK_OK && !hdr->trailer_only)
	{
		uint64_t want = hdr->raw_size;
		uint64_t cap = (uint64_t) len * 256 + (1 << 20);

		if (want > max_raw)
			want = 0; /* refused once the header is parsed again */
		if (want <= cap && hdr->compression == PGBK_COMPRESS_ZSTD)
			dec->collect = true;
		if (want > cap)
			want = cap;
		(void) pgbk_buf_reserve(out, (size_t) want);
	}

	rc = codec_decoder_update(dec, data, len, out, err);
	if (rc == PGBK_OK)
		rc = codec_decoder_finish(dec, hdr_out, NULL, err);
	else
		codec_decoder_free(dec);
	if (rc != PGBK_OK)
	{
		/* hand over nothing of a bad object */
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return rc;
}
