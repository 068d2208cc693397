/*
 * codec.h
 *	  The repository object format: a self-describing, authenticated
 *	  envelope around (optionally) zstd-compressed, (optionally) encrypted
 *	  content.  DESIGN.md invariant 4.
 *
 * Format version 1 (all integers little endian):
 *
 *	 0	 4	magic "PGBK"
 *	 4	 1	format version (1)
 *	 5	 1	compression (0 none, 1 zstd)
 *	 6	 1	flags: bit 0 encrypted, bit 1 size and hash are in the trailer only
 *	 7	 1	reserved (0)
 *	 8	 4	key id (0 when not encrypted)
 *	12	 8	raw size (0 when trailer-only)
 *	20	16	content hash (zero when trailer-only): XXH3-128 of the raw content
 *			(canonical byte order); when encrypted, BLAKE2b-128 keyed with the
 *			object's hash subkey over that hash (see below)
 *	36	 2	attribute length A (at most CODEC_MAX_ATTRS)
 *	38	 A	attributes: "name=value\n" lines (ASCII, no secrets)
 *	38+A 16	header check: BLAKE2b-128 of bytes [0, 38+A)
 *	[24 bytes libsodium secretstream header, when encrypted]
 *	frames: u32 length L (17 <= L <= CODEC_MAX_FRAME_LEN), then L bytes:
 *	   encrypted:	a secretstream (XChaCha20-Poly1305) message (encrypted tag
 *					byte, ciphertext, 16-byte MAC); the first message's
 *					additional data is the whole header above (bytes [0,
 *					54+A)), so a changed header fails authentication too
 *	   plain:		one tag byte, the message, then a 16-byte check:
 *					BLAKE2b-128 keyed with the previous frame's check (the
 *					header check for the first frame) over tag || message
 *	   data messages carry compressed bytes (tag MESSAGE, 0); the last message
 *	   (tag FINAL, 3) carries the 24-byte trailer: raw size (8) + XXH3-128
 *	   of the raw content (16), never keyed and never compressed.  Nothing may
 *	   follow it.  With zstd the data messages together hold exactly one zstd
 *	   frame (window at most 2^24 bytes), cut anywhere: this encoder cuts
 *	   one-shot objects every 256 KiB of compressed bytes and streamed ones
 *	   after every 256 KiB of content; readers assume neither.
 *
 * Keys: the key file's key is never used directly.  Two subkeys come from it
 * with crypto_kdf (BLAKE2b), context "pgbk-obj": id 1 keys the secretstream,
 * id 2 keys the header's content hash.  Keying that hash keeps someone who
 * can read the bucket from confirming a guess about an object's content
 * (e.g. a small config file holding a password) by hashing the guess; the
 * trailer, which is encrypted, holds the plain hash.
 *
 * Why plain frames carry a chained check: the content hash alone cannot see
 * every change to the stored bytes (zstd ignores some header bits, and a
 * larger window descriptor decodes to the same content), and it is only
 * verified at the very end.  The chain rejects any changed, dropped,
 * duplicated or reordered frame before its bytes reach the decompressor,
 * and says where, as authentication does for encrypted objects.  It is not
 * a MAC: without encryption anyone can write a valid object.
 *
 * Reading verifies: magic, version, header check, key id known, every
 * frame's authentication or check, the FINAL frame present (truncation),
 * no trailing bytes, raw size and content hash.  Each failure has its own
 * status and message (PGBK_ERR_FORMAT, PGBK_ERR_INTEGRITY, PGBK_ERR_KEY).
 * With a keyring, unencrypted objects are refused (PGBK_ERR_INTEGRITY)
 * unless ring->allow_unencrypted is set (see keys.h).
 *
 * Messages never include the object's name (the codec does not know it):
 * callers add it with pgbk_error_prefix().
 *
 * Performance: zstd contexts are cached per thread and reused across
 * objects; codec_release_cache() frees the calling thread's cache.
 */
#ifndef PGBK_CODEC_H
#define PGBK_CODEC_H

#include "config.h" /* PGBK_COMPRESS_* */
#include "keys.h"

#define CODEC_FORMAT_VERSION 1
#define CODEC_HASH_BYTES     16
#define CODEC_MAX_ATTRS      4096
/* Enough bytes to parse any header (fixed part + max attrs + check + ss). */
#define CODEC_MAX_HEADER (38 + CODEC_MAX_ATTRS + 16 + 24)
/* Readers refuse longer frames, so garbage cannot make them allocate much. */
#define CODEC_MAX_FRAME_LEN (1024 * 1024 + 64)

/*
 * What is being compressed, when it changes which zstd parameters serve
 * best.  CODEC_PROFILE_WAL, levels 1 to 3 (3 is the default): zstd's fast
 * strategy with minMatch 5 (level 1 has 7), hashLog 13 and windowLog 21.
 * Measured single-threaded on the 140 pgbench segments of
 * scripts/bench_archive.sh (2.35 GB): 0.983x the bytes of plain level 3 at
 * 1.36x its speed (11 ms per segment), where plain level 1 stores 1.15x and
 * the former setting (level 3, hashLog 14, chainLog 13) 1.015x at 1.22x.
 * WAL is full of short repeats (record headers, tuple headers, page
 * offsets) that a 5-byte minimum match finds, and its matches are local,
 * so a small table that stays in cache loses little.  Level 4 keeps zstd's
 * level with the smaller tables (hashLog 14, chainLog 13); higher levels
 * are zstd's own.  The format does not change: any zstd decoder reads it.
 */
#define CODEC_PROFILE_DEFAULT 0
#define CODEC_PROFILE_WAL     1

typedef struct CodecParams
{
	int                compression; /* PGBK_COMPRESS_NONE or PGBK_COMPRESS_ZSTD */
	int                level;       /* zstd level */
	const PgbkKeyring *keyring;     /* NULL: not encrypted */
	int                profile;     /* CODEC_PROFILE_* */
} CodecParams;

typedef struct CodecHeader
{
	int           version;
	int           compression;
	bool          encrypted;
	bool          trailer_only; /* raw_size/content_hash not in header */
	uint32_t      key_id;
	uint64_t      raw_size;
	unsigned char content_hash[CODEC_HASH_BYTES];
	char          attrs[CODEC_MAX_ATTRS + 1]; /* NUL-terminated */
	size_t        header_len;                 /* bytes before the first frame */
} CodecHeader;

/*
 * About CodecHeader.raw_size and content_hash: codec_read_header returns
 * what the header holds (for an encrypted object the keyed hash: compare it
 * with codec_header_matches).  After a successful decode, hdr_out holds the
 * verified raw size and the plain content hash (codec_hash of the content),
 * whatever the header holds.
 */

/*
 * Content hash of raw bytes: XXH3-128.  A checksum, not a cryptographic
 * hash: authenticity comes from the encryption (every frame is
 * authenticated), and hashing at memory speed keeps WAL archiving bound by
 * compression alone (BLAKE2b cost as much as zstd level 3 per segment).
 */
void codec_hash(const void *data, size_t len, unsigned char out[CODEC_HASH_BYTES]);

/*
 * One-shot encode: header carries raw size and hash.  Output is appended to
 * out.  hash_out (may be NULL) receives the content hash.  attrs (may be
 * NULL) are "name=value\n" lines of printable ASCII, at most
 * CODEC_MAX_ATTRS bytes; bad attributes, a compression method other than
 * the two or a zstd level outside 1..19 are PGBK_ERR_USAGE.  On failure out
 * is left as it was.
 */
PgbkStatus codec_encode(const CodecParams *params, const void *raw, size_t len, const char *attrs,
                        PgbkBuf *out, unsigned char hash_out[CODEC_HASH_BYTES], PgbkError *err);

/*
 * One-shot decode with full verification; raw content appended to out.  On
 * failure out is left as it was (nothing of a bad object is handed over).
 */
PgbkStatus codec_decode(const PgbkKeyring *ring, const void *data, size_t len, PgbkBuf *out,
                        CodecHeader *hdr_out, PgbkError *err);

/*
 * Parse just the header from the first bytes of an object.  If len is too
 * short, returns PGBK_ERR_INTEGRITY and sets *needed (if not NULL) to the
 * number of bytes required (more may be asked for once those are there).
 */
PgbkStatus codec_read_header(const void *data, size_t len, CodecHeader *hdr, size_t *needed,
                             PgbkError *err);

/*
 * Does an object hold this content?  Compares the size and content hash in
 * a header (from codec_read_header) with raw_size and hash (codec_hash of
 * the candidate content) without decoding the object: for "same segment
 * pushed again?" checks that only fetch the first CODEC_MAX_HEADER bytes.
 * Encrypted objects need the key that wrote them (PGBK_ERR_KEY without it).
 * PGBK_NOT_FOUND if the header holds no hash (trailer-only objects): decode
 * those instead.  On PGBK_OK, *same says whether they match.
 */
PgbkStatus codec_header_matches(const PgbkKeyring *ring, const CodecHeader *hdr,
                                const unsigned char hash[CODEC_HASH_BYTES], uint64_t raw_size,
                                bool *same, PgbkError *err);

/* Streaming encoder (size and hash go to the trailer only). */
typedef struct CodecEncoder CodecEncoder;

PgbkStatus codec_encoder_begin(const CodecParams *params, const char *attrs, CodecEncoder **enc_out,
                               PgbkBuf *out, PgbkError *err);
PgbkStatus codec_encoder_update(CodecEncoder *enc, const void *data, size_t len, PgbkBuf *out,
                                PgbkError *err);
/* Frees enc whether or not it succeeds. */
PgbkStatus codec_encoder_finish(CodecEncoder *enc, PgbkBuf *out,
                                unsigned char hash_out[CODEC_HASH_BYTES], uint64_t *raw_size_out,
                                PgbkError *err);
void       codec_encoder_free(CodecEncoder *enc);

/*
 * Streaming decoder: feed stored bytes, get raw bytes appended to out.  Only
 * authenticated (encrypted) or checked (plain) frames produce output, but the
 * object as a whole is verified only by codec_decoder_finish: until it
 * returns PGBK_OK, treat the output as untrusted (write it to a temporary
 * file, rename on success).  After an error every further call fails.
 */
typedef struct CodecDecoder CodecDecoder;

PgbkStatus codec_decoder_begin(const PgbkKeyring *ring, CodecDecoder **dec_out, PgbkError *err);
PgbkStatus codec_decoder_update(CodecDecoder *dec, const void *data, size_t len, PgbkBuf *out,
                                PgbkError *err);
/* Verifies FINAL seen, size and hash.  Frees dec whether or not it succeeds. */
PgbkStatus codec_decoder_finish(CodecDecoder *dec, CodecHeader *hdr_out,
                                unsigned char hash_out[CODEC_HASH_BYTES], PgbkError *err);
void       codec_decoder_free(CodecDecoder *dec);

/*
 * Attribute lookup: copies the value of name into buf; false if absent or if
 * the value (plus its NUL) does not fit in buflen.  The first line for a name
 * wins.
 */
bool codec_attr_get(const char *attrs, const char *name, char *buf, size_t buflen);

/* Free the calling thread's cached zstd contexts (they are reused otherwise). */
void codec_release_cache(void);

#endif /* PGBK_CODEC_H */
