/*
 * bench_codec.c
 *	  Tests of room format: a benchmark run by hand, not by make; uses codec.c, keys.c,
 *	  base, libsodium and zstd.
 *	  Throughput of the object codec on 16 MiB WAL segments: encode and
 *	  decode, zstd levels 1 and 3, with and without encryption, plus the
 *	  cost of the pieces (zstd alone, BLAKE2b alone) to show where the time
 *	  goes.  Not a test: build and run it by hand, e.g.
 *
 *	    gcc -O2 -I common -o /tmp/bench_codec common/test/bench_codec.c \
 *	        common/format/codec.c common/format/keys.c common/base/pgbk_common.c -lsodium -lzstd
 *	    /tmp/bench_codec [WAL-SEGMENT...]
 *
 * Without arguments it uses the first WAL segment it can read under
 * /var/lib/postgresql/15/main/pg_wal, and always a synthetic one: 8 KiB
 * pages of structured records with some random runs (full-page images of
 * incompressible data) and a zero tail (a segment switched by
 * archive_timeout).  MB/s is 10^6 raw bytes per second, best of several
 * runs; output buffers are reused between runs, as a worker would (a fresh
 * 16 MiB buffer adds a few milliseconds of page faults).
 */
#include "format/codec.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define SEG_SIZE (16 * 1024 * 1024)
#define RUNS     7

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static unsigned char *
synth_segment(void)
{
	unsigned char *d = malloc(SEG_SIZE);
	uint32_t       x = 12345;
	size_t         used = SEG_SIZE / 10 * 7; /* the rest stays zero */
	size_t         i;

	memset(d, 0, SEG_SIZE);
	for (i = 0; i < used; i++)
	{
		size_t page = i / 8192;
		size_t off = i % 8192;

		x = x * 1103515245u + 12345u;
		if (off < 24)
			d[i] = (unsigned char) ((page * 8192 + 0x16000000) >> (8 * (off % 8)));
		else if (page % 5 == 2 && off < 4096)
			d[i] = (unsigned char) (x >> 16); /* a full-page image of random data */
		else
		{
			/* records: a header with an increasing xid, then tuple text */
			size_t rec = off / 120;
			size_t roff = off % 120;

			if (roff < 8)
				d[i] = (unsigned char) ((page * 68 + rec + 700) >> (8 * (roff % 4)));
			else
				d[i] = (unsigned char) "asset /var/assets/2024/05/img_000123.jpg mime=image/jpeg "
				                       "size=183922 owner=7 modified=2024-05-17 "[roff - 8];
		}
	}
	return d;
}

static unsigned char *
read_segment(const char *path)
{
	FILE          *f = fopen(path, "rb");
	unsigned char *d;

	if (f == NULL)
		return NULL;
	d = malloc(SEG_SIZE);
	if (fread(d, 1, SEG_SIZE, f) != SEG_SIZE)
	{
		free(d);
		d = NULL;
	}
	fclose(f);
	return d;
}

static char *
find_wal(void)
{
	static const char dir[] = "/var/lib/postgresql/15/main/pg_wal";
	static char       path[600];
	DIR              *dh = opendir(dir);
	struct dirent    *de;

	if (dh == NULL)
		return NULL;
	while ((de = readdir(dh)) != NULL)
	{
		if (strlen(de->d_name) == 24 && strspn(de->d_name, "0123456789ABCDEF") == 24)
		{
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			closedir(dh);
			return path;
		}
	}
	closedir(dh);
	return NULL;
}

static void
bench_one(const char *name, const unsigned char *seg, const CodecParams *p)
{
	PgbkBuf   obj;
	PgbkBuf   back;
	PgbkError err;
	double    best_enc = 1e9;
	double    best_dec = 1e9;
	double    best_sdec = 1e9;
	int       r;

	pgbk_buf_init(&obj);
	pgbk_buf_init(&back);
	for (r = 0; r < RUNS; r++)
	{
		double t0;
		double t1;

		pgbk_buf_reset(&obj);
		t0 = now_sec();
		if (codec_encode(p, seg, SEG_SIZE, "kind=wal\n", &obj, NULL, &err) != PGBK_OK)
		{
			fprintf(stderr, "encode: %s\n", err.msg);
			exit(1);
		}
		t1 = now_sec();
		if (t1 - t0 < best_enc)
			best_enc = t1 - t0;

		pgbk_buf_reset(&back);
		t0 = now_sec();
		if (codec_decode(p->keyring, obj.data, obj.len, CODEC_LIMIT_WAL_MAX, &back, NULL, &err) !=
		    PGBK_OK)
		{
			fprintf(stderr, "decode: %s\n", err.msg);
			exit(1);
		}
		t1 = now_sec();
		if (t1 - t0 < best_dec)
			best_dec = t1 - t0;
		if (back.len != SEG_SIZE || memcmp(back.data, seg, SEG_SIZE) != 0)
		{
			fprintf(stderr, "round trip mismatch\n");
			exit(1);
		}

		/* wal-fetch style: stored bytes arrive in 64 KiB pieces */
		{
			CodecDecoder *dec;
			size_t        off;

			pgbk_buf_reset(&back);
			t0 = now_sec();
			codec_decoder_begin(p->keyring, CODEC_LIMIT_WAL_MAX, &dec, &err);
			for (off = 0; off < obj.len; off += 65536)
				codec_decoder_update(dec, obj.data + off,
				                     obj.len - off < 65536 ? obj.len - off : 65536, &back, &err);
			if (codec_decoder_finish(dec, NULL, NULL, &err) != PGBK_OK)
			{
				fprintf(stderr, "stream decode: %s\n", err.msg);
				exit(1);
			}
			t1 = now_sec();
			if (t1 - t0 < best_sdec)
				best_sdec = t1 - t0;
		}
	}
	printf("  %-24s ratio %6.2f  encode %7.0f MB/s  decode %7.0f MB/s  stream-decode %7.0f MB/s\n",
	       name, (double) SEG_SIZE / (double) obj.len, SEG_SIZE / best_enc / 1e6,
	       SEG_SIZE / best_dec / 1e6, SEG_SIZE / best_sdec / 1e6);
	pgbk_buf_free(&obj);
	pgbk_buf_free(&back);
}

/* The pieces on their own, for comparison. */
static void
bench_parts(const unsigned char *seg)
{
	size_t         cap = ZSTD_compressBound(SEG_SIZE);
	unsigned char *dst = malloc(cap);
	unsigned char *raw = malloc(SEG_SIZE);
	unsigned char  hash[32];
	ZSTD_CCtx     *cctx = ZSTD_createCCtx();
	ZSTD_DCtx     *dctx = ZSTD_createDCtx();
	int            level;
	int            r;

	for (level = 1; level <= 3; level += 2)
	{
		double best_c = 1e9;
		double best_d = 1e9;
		size_t clen = 0;

		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
		for (r = 0; r < RUNS; r++)
		{
			double t0 = now_sec();
			double t1;

			clen = ZSTD_compress2(cctx, dst, cap, seg, SEG_SIZE);
			t1 = now_sec();
			if (t1 - t0 < best_c)
				best_c = t1 - t0;
			ZSTD_decompressDCtx(dctx, raw, SEG_SIZE, dst, clen);
			t0 = now_sec();
			if (t0 - t1 < best_d)
				best_d = t0 - t1;
		}
		printf("  %-24s ratio %6.2f  encode %7.0f MB/s  decode %7.0f MB/s\n",
		       level == 1 ? "(zstd -1 alone, 1 call)" : "(zstd -3 alone, 1 call)",
		       (double) SEG_SIZE / (double) clen, SEG_SIZE / best_c / 1e6, SEG_SIZE / best_d / 1e6);
	}
	{
		double best = 1e9;

		for (r = 0; r < RUNS; r++)
		{
			double t0 = now_sec();
			double t1;

			crypto_generichash(hash, sizeof(hash), seg, SEG_SIZE, NULL, 0);
			t1 = now_sec();
			if (t1 - t0 < best)
				best = t1 - t0;
		}
		printf("  %-24s                %7.0f MB/s\n", "(BLAKE2b-256 alone)", SEG_SIZE / best / 1e6);
	}
	ZSTD_freeCCtx(cctx);
	ZSTD_freeDCtx(dctx);
	free(dst);
	free(raw);
}

static void
bench_segment(const char *label, const unsigned char *seg, const PgbkKeyring *ring)
{
	static const struct
	{
		const char *name;
		int         comp;
		int         level;
		bool        enc;
	} cases[] = {
	    {"zstd-1", PGBK_COMPRESS_ZSTD, 1, false},
	    {"zstd-1 + encryption", PGBK_COMPRESS_ZSTD, 1, true},
	    {"zstd-3", PGBK_COMPRESS_ZSTD, 3, false},
	    {"zstd-3 + encryption", PGBK_COMPRESS_ZSTD, 3, true},
	    {"none", PGBK_COMPRESS_NONE, 0, false},
	    {"none + encryption", PGBK_COMPRESS_NONE, 0, true},
	};
	size_t i;

	printf("%s\n", label);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CodecParams p = {cases[i].comp, cases[i].level, ring, cases[i].enc};

		bench_one(cases[i].name, seg, &p);
	}
	bench_parts(seg);
}

int
main(int argc, char **argv)
{
	PgbkKey        key;
	PgbkKeyring    ring = {1, &key, "<bench>"};
	unsigned char *seg;
	int            i;

	if (pgbk_crypto_init(NULL) != PGBK_OK)
		return 1;
	randombytes_buf(key.key, sizeof(key.key));
	key.id = keyring_key_id(key.key);

	if (argc > 1)
	{
		for (i = 1; i < argc; i++)
		{
			seg = read_segment(argv[i]);
			if (seg == NULL)
			{
				fprintf(stderr, "could not read a 16 MiB segment from \"%s\"\n", argv[i]);
				return 1;
			}
			bench_segment(argv[i], seg, &ring);
			free(seg);
		}
	}
	else
	{
		char *wal = find_wal();

		if (wal != NULL && (seg = read_segment(wal)) != NULL)
		{
			bench_segment(wal, seg, &ring);
			free(seg);
		}
		else
			printf("(no readable WAL segment under /var/lib/postgresql/15/main/pg_wal)\n");
	}
	seg = synth_segment();
	bench_segment("synthetic WAL-like segment (70% records and page images, 30% zero tail)", seg,
	              &ring);
	free(seg);
	codec_release_cache();
	sodium_memzero(&key, sizeof(key));
	return 0;
}
