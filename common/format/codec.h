/*
 * codec.h
 *	  Room format; uses config and keys.h.
 *	  The repository object format: a self-describing, authenticated
 *	  envelope around (optionally) zstd-compressed, (optionally) encrypted
 *	  content.  DESIGN.md invariant 4.
 *
 * Format version 1 (all integers little endian):
 *
 *	 0	 4	magic "PGBK"
 *	 4	 1	format version (1)
 *	 5	 1	compression (0 none, 1 zstd)
 *	 6	 1	flags: bit 0 encrypted, bit 1 size and hash are in the trailer only,
 *			bit 2 authenticated (plain frames carry MACs); exactly one of bits
 *			0 and 2 is set
 *	 7	 1	reserved (0)
 *	 8	 4	key id (of the key that encrypted or authenticated the object)
 *	12	 8	raw size (0 when trailer-only)
 *	20	16	content hash (zero when trailer-only): BLAKE2b-128 keyed with the
 *			object's hash subkey over the XXH3-128 of the raw content
 *			(canonical byte order; see below)
 *	36	 2	attribute length A (at most CODEC_MAX_ATTRS)
 *	38	 A	attributes: "name=value\n" lines (ASCII, no secrets)
 *	38+A 16	header check: BLAKE2b-128 of bytes [0, 38+A)
 *	[24 bytes libsodium secretstream header, when encrypted]
 *	frames: u32 length L (17 <= L <= CODEC_MAX_FRAME_LEN), then L bytes:
 *	   encrypted:	a secretstream (XChaCha20-Poly1305) message (encrypted tag
 *					byte, ciphertext, 16-byte MAC); the first message's
 *					additional data is the whole header above (bytes [0,
 *					54+A)), so a changed header fails authentication too
 *	   plain:		one tag byte, the message, then a 16-byte MAC:
 *					BLAKE2b-128 keyed with the object's MAC subkey over the
 *					previous frame's MAC (the header check for the first
 *					frame) || tag || message
 *	   data messages carry compressed bytes (tag MESSAGE, 0); the last message
 *	   (tag FINAL, 3) carries the 24-byte trailer: raw size (8) + XXH3-128
 *	   of the raw content (16), never keyed and never compressed.  Nothing may
 *	   follow it.  With zstd the data messages together hold exactly one zstd
 *	   frame (window at most 2^24 bytes), cut anywhere: this encoder cuts
 *	   one-shot objects every 256 KiB of compressed bytes and streamed ones
 *	   after every 256 KiB of content; readers assume neither.
 *
 * Keys: the key file's key is never used directly.  Subkeys come from it
 * with crypto_kdf (BLAKE2b), context "pgbk-obj": id 1 keys the secretstream,
 * id 2 keys the header's content hash, id 3 keys the MACs of plain frames.
 * Keying that hash keeps someone who can read the bucket from confirming a
 * guess about an object's content (e.g. a small config file holding a
 * password) by hashing the guess, and from writing a header that claims
 * some content; the trailer, which is authenticated, holds the plain hash.
 *
 * Every object is authenticated with the key, encrypted or not (so a key
 * file is always required, see config.h): without encryption (encryption =
 * off) each frame carries a MAC chained to the previous one and to the
 * header.  The chain rejects any changed, dropped, duplicated or reordered
 * frame before its bytes reach the decompressor, and says where, as the
 * secretstream does for encrypted objects; without the key nobody can write
 * an object that reads.  Objects of pgbk before 1.1 written with encryption
 * off carry only unkeyed checks (bit 2 clear): anyone could recompute those,
 * so they are refused (PGBK_ERR_INTEGRITY) and must be written again (no
 * migration: archive into a new repository and take a new base backup).
 *
 * Reading verifies: magic, version, header check, authenticated, key id
 * known, every frame's authentication, the FINAL frame present
 * (truncation), no trailing bytes, raw size and content hash, and that the
 * content is not longer than the limit the caller gives for the object's
 * kind (CODEC_LIMIT_*: a decompression bomb is refused once it passes the
 * limit, or at once when its header declares more).  Each failure has its
 * own status and message (PGBK_ERR_FORMAT, PGBK_ERR_INTEGRITY,
 * PGBK_ERR_KEY).  codec_read_header alone checks only the header's
 * (unkeyed) check: its attributes are authenticated once the object
 * decodes.
 *
 * Messages never include the object's name (the codec does not know it):
 * callers add it with pgbk_error_prefix().
 *
 * Performance: zstd contexts are cached per thread and reused across
 * objects; codec_release_cache() frees the calling thread's cache.
 */
#ifndef PGBK_CODEC_H
#define PGBK_CODEC_H

#include "config/config.h" /* PGBK_COMPRESS_* */
#include "format/keys.h"

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

/*
 * Limits on decoded content, per kind of object (codec_decode,
 * codec_decoder_begin): a WAL segment at its segment size (or the largest
 * PostgreSQL allows when it is not known), history and .backup files, the
 * repository descriptor and other small objects at 1 MiB, a manifest at
 * 256 MiB (about a million files); a backup data file at the size its
 * manifest records.
 */
#define CODEC_LIMIT_SMALL    ((uint64_t) 1 << 20)
#define CODEC_LIMIT_MANIFEST ((uint64_t) 256 << 20)
#define CODEC_LIMIT_WAL_MAX  ((uint64_t) 1 << 30)
/*
 * A change summary (walchanges.h): at most about 5/8 of its segment's size
 * (one varint of at most 5 bytes per block reference of at least 8 bytes),
 * so 256 MiB covers 1 GiB segments; 16 MiB segments give at most ~10 MiB.
 */
#define CODEC_LIMIT_CHANGES ((uint64_t) 256 << 20)

typedef struct CodecParams
{
	int                compression; /* PGBK_COMPRESS_NONE or PGBK_COMPRESS_ZSTD */
	int                level;       /* zstd level */
	const PgbkKeyring *keyring;     /* required: authenticates (and encrypts) */
	bool               encrypt;     /* encrypt the content too (encryption = on) */
	int                profile;     /* CODEC_PROFILE_* */
} CodecParams;

typedef struct CodecHeader
{
	int           version;
	int           compression;
	bool          encrypted;
	bool          authenticated; /* plain, with frame MACs */
	bool          trailer_only;  /* raw_size/content_hash not in header */
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
 * hash: authenticity comes from the key (every frame is authenticated, and
 * the header holds the hash keyed), and hashing at memory speed keeps WAL archiving bound by
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
 * Content longer than max_raw bytes (CODEC_LIMIT_*) is refused
 * (PGBK_ERR_INTEGRITY) without decoding more than that.
 */
PgbkStatus codec_decode(const PgbkKeyring *ring, const void *data, size_t len, uint64_t max_raw,
                        PgbkBuf *out, CodecHeader *hdr_out, PgbkError *err);

/*
 * Is the object (hdr from a successful decode, so its attributes are
 * authenticated) the one stored under the name want?  WAL objects name
 * themselves ("name=" attribute); an object copied under another name is
 * PGBK_ERR_INTEGRITY with a message naming both.  The one check every
 * reader of WAL and history objects uses.
 */
PgbkStatus codec_check_name(const CodecHeader *hdr, const char *want, PgbkError *err);

/*
 * The decode limit for a WAL-area object by its file name: a segment or
 * .partial at segsz (CODEC_LIMIT_WAL_MAX when segsz is 0 or invalid),
 * history and .backup files at CODEC_LIMIT_SMALL.
 */
uint64_t codec_wal_limit(const char *name, uint32_t segsz);

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
 * Streaming decoder: feed stored bytes, get raw bytes appended to out (at
 * most a frame's worth, 256 KiB, per frame fed: hand it on and reset out
 * to decode in bounded memory), at most max_raw bytes in all.  Only
 * authenticated (encrypted) or checked (plain) frames produce output, but the
 * object as a whole is verified only by codec_decoder_finish: until it
 * returns PGBK_OK, treat the output as untrusted (write it to a temporary
 * file, rename on success).  After an error every further call fails.
 */
typedef struct CodecDecoder CodecDecoder;

PgbkStatus codec_decoder_begin(const PgbkKeyring *ring, uint64_t max_raw, CodecDecoder **dec_out,
                               PgbkError *err);
PgbkStatus codec_decoder_update(CodecDecoder *dec, const void *data, size_t len, PgbkBuf *out,
                                PgbkError *err);
/*
 * Output sink: once set, whenever out holds 256 KiB or more of output the
 * decoder hands it to sink and empties out (so even a frame that inflates
 * to a lot never sits in memory whole); what is left in out after an update
 * is the caller's, as without a sink.  A sink's error fails the update.
 */
typedef PgbkStatus (*CodecSink)(void *arg, const void *data, size_t len, PgbkError *err);
void codec_decoder_set_sink(CodecDecoder *dec, CodecSink sink, void *arg);
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
