/*
 * test_walchanges.c
 *	  Tests of room wal (cmocka); uses unit.h, walchanges.c, walpush.c, repo,
 *	  config and format.
 *	  Unit tests for walchanges.c: the binary form (round trip, determinism,
 *	  every truncation and garbling refused or harmless), merge semantics,
 *	  summarizing synthetic segments (block references with SAME_REL, smgr
 *	  create and truncate, drops at commit and abort, database and
 *	  tablespace records, a record cut by the segment end), and the union
 *	  over a range of segments stored in a local repository (rebuilt when
 *	  missing, incomplete when a segment is missing, a tampered summary
 *	  refused), also with a local source (pg_wal) for the segments not in
 *	  the repository.
 *
 * The WAL writer is a trimmed copy of test_walscan.c's.
 */
#include "unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "format/codec.h"
#include "format/keys.h"
#include "format/layout.h"
#include "repo/repo.h"
#include "wal/walchanges.h"
#include "wal/walpush.h"

#define MB     (1024U * 1024U)
#define SEG    (1 * MB)
#define BLCKSZ 8192U

#define MAGIC_PG15     0xD110
#define XLP_CONTRECORD 0x0001
#define XLP_LONG       0x0002
#define RM_XLOG        0
#define RM_XACT        1
#define RM_SMGR        2
#define RM_DBASE       4
#define RM_TBLSPC      5
#define RM_HEAP        10
#define XLOG_NOOP      0x20
#define XLOG_SWITCH    0x40

typedef struct Wal
{
	unsigned char *d;
	size_t         size;
	uint32_t       segsz;
	uint32_t       blcksz;
	uint32_t       tli;
	WalLsn         base;
	WalLsn         pos;
	WalLsn         prev;
	uint32_t       xid;
} Wal;

static void
wal_init(Wal *w, int nsegs, WalSegNo first_segno)
{
	memset(w, 0, sizeof(*w));
	w->segsz = SEG;
	w->blcksz = BLCKSZ;
	w->size = (size_t) nsegs * SEG;
	w->d = calloc(1, w->size);
	assert_non_null(w->d);
	w->tli = 1;
	w->base = walname_segno_to_lsn(first_segno, SEG);
	w->pos = w->base;
	w->prev = w->base - 0x1000;
	w->xid = 1000;
}

static void
put16(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void
put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void
put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static bool
wal_in(const Wal *w, WalLsn lsn)
{
	return lsn >= w->base && lsn < w->base + w->size;
}

static uint32_t
page_hdr_size(const Wal *w, WalLsn page)
{
	return (page % w->segsz == 0) ? 40 : 24;
}

static void
wal_page_header(Wal *w, WalLsn page, uint16_t info, uint32_t rem_len)
{
	unsigned char *p;

	if (!wal_in(w, page))
		return;
	p = w->d + (page - w->base);
	if (page % w->segsz == 0)
		info |= XLP_LONG;
	put16(p, MAGIC_PG15);
	put16(p + 2, info);
	put32(p + 4, w->tli);
	put64(p + 8, page);
	put32(p + 16, rem_len);
	if (info & XLP_LONG)
	{
		put64(p + 24, UINT64_C(7301234567890123456));
		put32(p + 32, w->segsz);
		put32(p + 36, w->blcksz);
	}
}

static WalLsn
wal_insert(Wal *w, uint8_t rmid, uint8_t info, const PgbkBuf *body)
{
	uint32_t       tot = 24 + (uint32_t) (body ? body->len : 0);
	unsigned char *rec = calloc(1, tot);
	uint32_t       written = 0;
	WalLsn         start;

	assert_non_null(rec);
	put32(rec, tot);
	put32(rec + 4, w->xid++);
	put64(rec + 8, w->prev);
	rec[16] = info;
	rec[17] = rmid;
	if (body && body->len)
		memcpy(rec + 24, body->data, body->len);
	if (w->pos % w->blcksz == 0)
	{
		wal_page_header(w, w->pos, 0, 0);
		w->pos += page_hdr_size(w, w->pos);
	}
	start = w->pos;
	while (written < tot)
	{
		uint32_t n;

		if (w->pos % w->blcksz == 0)
		{
			wal_page_header(w, w->pos, XLP_CONTRECORD, tot - written);
			w->pos += page_hdr_size(w, w->pos);
		}
		n = w->blcksz - (uint32_t) (w->pos % w->blcksz);
		if (n > tot - written)
			n = tot - written;
		if (wal_in(w, w->pos))
			memcpy(w->d + (w->pos - w->base), rec + written, n);
		w->pos += n;
		written += n;
	}
	free(rec);
	w->prev = start;
	w->pos = (w->pos + 7) & ~(WalLsn) 7;
	return start;
}

/* A record under construction: block headers, then block data, then main data. */
typedef struct Rec
{
	PgbkBuf hdrs;
	PgbkBuf data;
	PgbkBuf main;
	int     next_id;
} Rec;

static void
rec_init(Rec *r)
{
	pgbk_buf_init(&r->hdrs);
	pgbk_buf_init(&r->data);
	pgbk_buf_init(&r->main);
	r->next_id = 0;
}

/* A block reference; rel NULL: BKPBLOCK_SAME_REL.  data_len bytes of block data. */
static void
rec_block(Rec *r, const uint32_t *rel, uint8_t fork, uint32_t blkno, uint16_t data_len, bool image)
{
	unsigned char h[32];
	size_t        n = 0;
	unsigned char fill[8192];

	h[n++] = (unsigned char) r->next_id++;
	h[n++] = (unsigned char) (fork | (data_len ? 0x20 : 0) | (image ? 0x10 : 0) | (rel ? 0 : 0x80));
	put16(h + n, data_len);
	n += 2;
	memset(fill, 0xAB, sizeof(fill));
	if (image)
	{
		/* bimg_len 100, hole_offset 0, bimg_info 0 */
		put16(h + n, 100);
		put16(h + n + 2, 0);
		h[n + 4] = 0;
		n += 5;
		assert_true(pgbk_buf_append(&r->data, fill, 100));
	}
	if (rel)
	{
		put32(h + n, rel[0]);
		put32(h + n + 4, rel[1]);
		put32(h + n + 8, rel[2]);
		n += 12;
	}
	put32(h + n, blkno);
	n += 4;
	assert_true(pgbk_buf_append(&r->hdrs, h, n));
	assert_true(pgbk_buf_append(&r->data, fill, data_len));
}

static void
rec_main(Rec *r, const void *m, uint32_t len)
{
	assert_true(pgbk_buf_append(&r->main, m, len));
}

static WalLsn
rec_insert(Wal *w, Rec *r, uint8_t rmid, uint8_t info)
{
	PgbkBuf       body;
	unsigned char h[5];
	WalLsn        lsn;

	pgbk_buf_init(&body);
	assert_true(pgbk_buf_append(&body, r->hdrs.data, r->hdrs.len));
	if (r->main.len > 0)
	{
		if (r->main.len < 256)
		{
			h[0] = 255;
			h[1] = (unsigned char) r->main.len;
			assert_true(pgbk_buf_append(&body, h, 2));
		}
		else
		{
			h[0] = 254;
			put32(h + 1, (uint32_t) r->main.len);
			assert_true(pgbk_buf_append(&body, h, 5));
		}
	}
	assert_true(pgbk_buf_append(&body, r->data.data, r->data.len));
	assert_true(pgbk_buf_append(&body, r->main.data, r->main.len));
	lsn = wal_insert(w, rmid, info, &body);
	pgbk_buf_free(&body);
	pgbk_buf_free(&r->hdrs);
	pgbk_buf_free(&r->data);
	pgbk_buf_free(&r->main);
	return lsn;
}

/* A filler record (XLOG_NOOP) with n bytes of main data. */
static WalLsn
wal_noop(Wal *w, uint32_t n)
{
	Rec            r;
	unsigned char *m = calloc(1, n + 1);
	WalLsn         lsn;

	rec_init(&r);
	rec_main(&r, m, n);
	free(m);
	lsn = rec_insert(w, &r, RM_XLOG, XLOG_NOOP);
	return lsn;
}

static void
wal_switch(Wal *w)
{
	WalLsn lsn = wal_insert(w, RM_XLOG, XLOG_SWITCH, NULL);
	WalLsn page = (w->pos + w->blcksz - 1) / w->blcksz * w->blcksz;
	WalLsn seg_end = (lsn / w->segsz + 1) * w->segsz;

	for (; page < seg_end; page += w->blcksz)
		wal_page_header(w, page, 0, 0);
	w->pos = seg_end;
}

static const WalRelFork *
rf(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork)
{
	static WalRelFork r[4];
	static int        i;

	i = (i + 1) % 4;
	r[i].spc = spc;
	r[i].db = db;
	r[i].rel = rel;
	r[i].fork = fork;
	return &r[i];
}

/* Blocks of an entry as "limit:b1,b2,..." ("-" if no entry). */
static const char *
show(const WalChanges *c, uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork)
{
	static char           buf[4096];
	const WalChangeEntry *e = walchg_lookup(c, rf(spc, db, rel, fork));
	size_t                n = 0;
	uint32_t              i;

	if (e == NULL)
		return "-";
	if (e->limit == WALCHG_NO_LIMIT)
		n += snprintf(buf + n, sizeof(buf) - n, "none:");
	else
		n += snprintf(buf + n, sizeof(buf) - n, "%u:", e->limit);
	for (i = 0; i < e->nblocks && n < sizeof(buf) - 16; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "%s%u", i ? "," : "", e->blocks[i]);
	return buf;
}

/* ------------------------------------------------------------------------
 * The table and its binary form
 * ------------------------------------------------------------------------
 */
static WalChanges *
random_changes(unsigned seed)
{
	WalChanges *c = walchg_new();
	int         i, n;

	srand(seed);
	n = rand() % 40;
	for (i = 0; i < n; i++)
	{
		const WalRelFork *r =
		    rf(1663 + rand() % 2, 5 + rand() % 3, 16384 + rand() % 20, (uint8_t) (rand() % 4));
		int k, nb = rand() % 50;

		for (k = 0; k < nb; k++)
			assert_true(
			    walchg_add_block(c, r, (uint32_t) (rand() % 3 == 0 ? rand() : rand() % 200)));
		if (rand() % 4 == 0)
			assert_true(walchg_set_limit(c, r, (uint32_t) (rand() % 100)));
	}
	if (rand() % 3 == 0)
		assert_true(walchg_add_whole_db(c, 1663, 99));
	if (rand() % 5 == 0)
		assert_true(walchg_add_whole_db(c, 16500, 0));
	walchg_set_range(c, 1 + rand() % 3, (WalLsn) rand() << 8,
	                 ((WalLsn) rand() << 8) + ((WalLsn) 1 << 40));
	if (rand() % 3 == 0)
		walchg_mark_incomplete(c, "record at 0/1234 in segment X: test");
	return c;
}

static void
test_roundtrip(void **state)
{
	unsigned seed;

	(void) state;
	for (seed = 1; seed <= 300; seed++)
	{
		WalChanges *c = random_changes(seed), *back = NULL;
		PgbkBuf     a, b;
		PgbkError   err;

		pgbk_buf_init(&a);
		pgbk_buf_init(&b);
		assert_int_equal(walchg_encode(c, &a, &err), PGBK_OK);
		if (walchg_decode(a.data, a.len, &back, &err) != PGBK_OK)
			fail_msg("seed %u: %s", seed, err.msg);
		assert_true(walchg_equal(c, back));
		assert_int_equal(walchg_encode(back, &b, &err), PGBK_OK);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len); /* deterministic */
		walchg_free(back);
		walchg_free(c);
		pgbk_buf_free(&a);
		pgbk_buf_free(&b);
	}
}

static void
test_decode_bad(void **state)
{
	WalChanges *c = random_changes(7), *back;
	PgbkBuf     a;
	PgbkError   err;
	size_t      i;
	int         bit;
	unsigned    accepted = 0;

	(void) state;
	/* make sure the sample has some of everything */
	assert_true(walchg_add_block(c, rf(1663, 5, 1, 0), 3));
	assert_true(walchg_add_whole_db(c, 1663, 7));
	walchg_mark_incomplete(c, "because");
	pgbk_buf_init(&a);
	assert_int_equal(walchg_encode(c, &a, &err), PGBK_OK);

	/* every proper prefix is refused */
	for (i = 0; i < a.len; i++)
	{
		back = NULL;
		assert_int_equal(walchg_decode(a.data, i, &back, &err), PGBK_ERR_FORMAT);
		assert_null(back);
	}
	/* a trailing byte is refused */
	assert_true(pgbk_buf_append(&a, "\0", 1));
	assert_int_equal(walchg_decode(a.data, a.len, &back, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "malformed change summary"));
	a.len--;

	/* every flipped bit: refused, or a well-formed other summary (never a crash) */
	for (i = 0; i < a.len; i++)
		for (bit = 0; bit < 8; bit++)
		{
			PgbkBuf again;

			a.data[i] ^= (unsigned char) (1 << bit);
			back = NULL;
			if (walchg_decode(a.data, a.len, &back, &err) == PGBK_OK)
			{
				/* canonical: what decodes encodes to the same bytes */
				pgbk_buf_init(&again);
				assert_int_equal(walchg_encode(back, &again, &err), PGBK_OK);
				assert_int_equal(again.len, a.len);
				assert_memory_equal(again.data, a.data, a.len);
				pgbk_buf_free(&again);
				walchg_free(back);
				accepted++;
			}
			else
				assert_null(back);
			a.data[i] ^= (unsigned char) (1 << bit);
		}
	/* the magic and version are checked */
	a.data[0] = 'X';
	assert_int_equal(walchg_decode(a.data, a.len, &back, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "magic"));
	a.data[0] = 'P';
	a.data[4] = 9;
	assert_int_equal(walchg_decode(a.data, a.len, &back, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "version 9"));
	print_message("flipped bits that still decode (canonically): %u of %zu\n", accepted, a.len * 8);
	pgbk_buf_free(&a);
	walchg_free(c);
}

static void
test_merge(void **state)
{
	WalChanges *a = walchg_new(), *b = walchg_new();
	const char *why;

	(void) state;
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 10));
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 2));
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 50));
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 10));
	assert_true(walchg_add_block(a, rf(1663, 5, 200, 0), 7));
	assert_true(walchg_set_limit(a, rf(1663, 5, 300, 0), 40));
	assert_string_equal(show(a, 1663, 5, 100, 0), "none:2,10,50");
	/* a limit cuts the blocks at and above it, and only the min is kept */
	assert_true(walchg_set_limit(a, rf(1663, 5, 100, 0), 20));
	assert_true(walchg_set_limit(a, rf(1663, 5, 100, 0), 30));
	assert_string_equal(show(a, 1663, 5, 100, 0), "20:2,10");
	/* blocks at or above the limit are not added */
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 25));
	assert_true(walchg_add_block(a, rf(1663, 5, 100, 0), 5));
	assert_string_equal(show(a, 1663, 5, 100, 0), "20:2,5,10");
	walchg_set_range(a, 1, 0x1000000, 0x2000000);

	assert_true(walchg_add_block(b, rf(1663, 5, 100, 0), 15));
	assert_true(walchg_add_block(b, rf(1663, 5, 100, 0), 3));
	assert_true(walchg_set_limit(b, rf(1663, 5, 100, 0), 12));
	assert_true(walchg_add_block(b, rf(1663, 5, 300, 0), 10));
	assert_true(walchg_add_block(b, rf(1663, 5, 300, 0), 45));
	assert_true(walchg_add_block(b, rf(1663, 5, 100, 2), 0));
	assert_true(walchg_add_whole_db(b, 1663, 77));
	walchg_set_range(b, 2, 0x2000000, 0x3000000);
	walchg_mark_incomplete(b, "second");

	assert_true(walchg_merge(a, b));
	assert_string_equal(show(a, 1663, 5, 100, 0), "12:2,3,5,10");
	assert_string_equal(show(a, 1663, 5, 200, 0), "none:7");
	assert_string_equal(show(a, 1663, 5, 300, 0), "40:10");
	assert_string_equal(show(a, 1663, 5, 100, 2), "none:0");
	assert_string_equal(show(a, 1663, 5, 100, 1), "-");
	assert_true(walchg_db_whole(a, 1663, 77));
	assert_false(walchg_db_whole(a, 1663, 5));
	assert_false(walchg_complete(a, &why));
	assert_string_equal(why, "second");
	walchg_mark_incomplete(a, "third"); /* first reason kept */
	assert_false(walchg_complete(a, &why));
	assert_string_equal(why, "second");
	{
		uint32_t tli;
		WalLsn   s, e;

		walchg_range(a, &tli, &s, &e);
		assert_int_equal(tli, 2);
		assert_int_equal(s, 0x1000000);
		assert_int_equal(e, 0x3000000);
	}
	/* a whole tablespace covers its databases */
	assert_true(walchg_add_whole_db(a, 16400, 0));
	assert_true(walchg_db_whole(a, 16400, 5));
	assert_false(walchg_db_whole(a, 16401, 5));
	/* iteration is in key order */
	assert_int_equal(walchg_count(a), 4);
	assert_int_equal(walchg_entry(a, 0)->rf.rel, 100);
	assert_int_equal(walchg_entry(a, 0)->rf.fork, 0);
	assert_int_equal(walchg_entry(a, 1)->rf.fork, 2);
	assert_int_equal(walchg_entry(a, 3)->rf.rel, 300);
	/* merging is idempotent */
	{
		WalChanges *copy = walchg_new();

		assert_true(walchg_merge(copy, a));
		assert_true(walchg_equal(copy, a));
		assert_true(walchg_merge(copy, a));
		assert_true(walchg_equal(copy, a));
		walchg_free(copy);
	}
	walchg_free(a);
	walchg_free(b);
}

/* Many entries and blocks: hash growth and compaction keep answers right. */
static void
test_many(void **state)
{
	WalChanges *c = walchg_new();
	uint32_t    r, b;

	(void) state;
	for (b = 0; b < 3000; b++)
		for (r = 0; r < 300; r++)
			assert_true(walchg_add_block(c, rf(1663, 5, 20000 - r, 0), (b * 7919 + r) % 1000));
	assert_int_equal(walchg_count(c), 300);
	for (r = 0; r < 300; r++)
	{
		const WalChangeEntry *e = walchg_lookup(c, rf(1663, 5, 20000 - r, 0));

		assert_non_null(e);
		assert_int_equal(e->nblocks, 1000);
		assert_int_equal(e->blocks[0], 0);
		assert_int_equal(e->blocks[999], 999);
	}
	assert_int_equal(walchg_block_count(c), 300000);
	walchg_free(c);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/*
 * Blocks in random order over every byte of a block number (the radix sort
 * skips bytes all values share: here none, then only the low two), with
 * repeats and a limit, against qsort and a by-hand deduplication.
 */
static void
test_sort_random(void **state)
{
	static const uint32_t masks[] = {UINT32_MAX - 1, 0xFFFF, 0xFF, 0x3F};
	uint64_t              x = 88172645463325252ULL;
	size_t                m;

	(void) state;
	for (m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
	{
		uint32_t              n = m == 3 ? 50 : 200000, i, k = 0, limit = masks[m] / 3 * 2;
		uint32_t             *ref = malloc(n * sizeof(uint32_t));
		WalChanges           *c = walchg_new();
		const WalChangeEntry *e;

		assert_non_null(ref);
		for (i = 0; i < n; i++)
		{
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* every fourth a repeat of an earlier one */
			ref[i] = (i % 4 == 3 && i > 10) ? ref[(uint32_t) (x % i)] : (uint32_t) x & masks[m];
			assert_true(walchg_add_block(c, rf(1663, 5, 30000, 0), ref[i]));
		}
		assert_true(walchg_set_limit(c, rf(1663, 5, 30000, 0), limit));
		qsort(ref, n, sizeof(uint32_t), cmp_u32);
		for (i = 0; i < n && ref[i] < limit; i++)
			if (k == 0 || ref[k - 1] != ref[i])
				ref[k++] = ref[i];
		e = walchg_lookup(c, rf(1663, 5, 30000, 0));
		assert_non_null(e);
		assert_int_equal(e->nblocks, k);
		assert_memory_equal(e->blocks, ref, (size_t) k * sizeof(uint32_t));
		free(ref);
		walchg_free(c);
	}
}

/* ------------------------------------------------------------------------
 * Summarizing segments
 * ------------------------------------------------------------------------
 */
static const uint32_t REL_A[3] = {1663, 5, 16384};
static const uint32_t REL_B[3] = {1663, 5, 16390};

static WalChanges *
summarize(Wal *w, int i, const char *name)
{
	WalChanges *c = NULL;
	PgbkError   err;

	if (walchg_scan_segment(w->d + (size_t) i * w->segsz, w->segsz, name, &c, &err) != PGBK_OK)
		fail_msg("walchg_scan_segment: %s", err.msg);
	return c;
}

static void
test_scan_records(void **state)
{
	Wal           w;
	Rec           r;
	unsigned char m[64];
	WalChanges   *c;
	const char   *why;
	uint32_t      tli;
	WalLsn        s, e;

	(void) state;
	wal_init(&w, 1, 3);
	/* heap insert: two blocks of one relation (the second with SAME_REL), one FPI */
	rec_init(&r);
	rec_block(&r, REL_A, 0, 7, 40, false);
	rec_block(&r, NULL, 0, 3, 0, true);
	rec_block(&r, REL_B, 2, 0, 0, false);
	rec_main(&r, "\1\2\3", 3);
	rec_insert(&w, &r, RM_HEAP, 0x00);
	/* a long record over several pages: its block header is on the first page */
	rec_init(&r);
	rec_block(&r, REL_A, 0, 9, 8000, false);
	rec_main(&r, m, 40);
	rec_insert(&w, &r, RM_HEAP, 0x00);
	/* smgr create of 16400 main and fsm (fsm ignored) */
	rec_init(&r);
	put32(m, 1663), put32(m + 4, 5), put32(m + 8, 16400), put32(m + 12, 0);
	rec_main(&r, m, 16);
	rec_insert(&w, &r, RM_SMGR, 0x10 | 0x01);
	put32(m + 12, 1);
	rec_init(&r);
	rec_main(&r, m, 16);
	rec_insert(&w, &r, RM_SMGR, 0x10 | 0x01);
	/* smgr truncate of REL_A to 5 blocks, heap and vm */
	rec_init(&r);
	put32(m, 5), put32(m + 4, 1663), put32(m + 8, 5), put32(m + 12, 16384), put32(m + 16, 3);
	rec_main(&r, m, 20);
	rec_insert(&w, &r, RM_SMGR, 0x20 | 0x01);
	/* commit (with xinfo: dbinfo, 2 subxacts, 1 dropped relation 16390) */
	rec_init(&r);
	memset(m, 0, sizeof(m));
	put32(m + 8, 1 | 2 | 4);
	put32(m + 12, 5), put32(m + 16, 1663);
	put32(m + 20, 2), put32(m + 24, 501), put32(m + 28, 502);
	put32(m + 32, 1), put32(m + 36, 1663), put32(m + 40, 5), put32(m + 44, 16390);
	rec_main(&r, m, 48);
	rec_insert(&w, &r, RM_XACT, 0x00 | 0x80);
	/* abort prepared without xinfo: nothing dropped */
	rec_init(&r);
	rec_main(&r, m, 8);
	rec_insert(&w, &r, RM_XACT, 0x40);
	/* create database 70000 (file copy) in 1663, create 70001 (wal log) in 16500 */
	rec_init(&r);
	put32(m, 70000), put32(m + 4, 1663), put32(m + 8, 1), put32(m + 12, 1663);
	rec_main(&r, m, 16);
	rec_insert(&w, &r, RM_DBASE, 0x00 | 0x01);
	rec_init(&r);
	put32(m, 70001), put32(m + 4, 16500);
	rec_main(&r, m, 8);
	rec_insert(&w, &r, RM_DBASE, 0x10);
	/* drop database 70002 in two tablespaces */
	rec_init(&r);
	put32(m, 70002), put32(m + 4, 2), put32(m + 8, 1663), put32(m + 12, 16600);
	rec_main(&r, m, 16);
	rec_insert(&w, &r, RM_DBASE, 0x20 | 0x01);
	/* drop tablespace 16700 */
	rec_init(&r);
	put32(m, 16700);
	rec_main(&r, m, 4);
	rec_insert(&w, &r, RM_TBLSPC, 0x10);
	wal_switch(&w);

	c = summarize(&w, 0, "000000010000000000000003");
	assert_true(walchg_complete(c, &why));
	assert_string_equal(show(c, 1663, 5, 16384, 0), "5:3");
	assert_string_equal(show(c, 1663, 5, 16384, 2), "0:");
	assert_string_equal(show(c, 1663, 5, 16390, 2), "0:");
	assert_string_equal(show(c, 1663, 5, 16390, 0), "0:");
	assert_string_equal(show(c, 1663, 5, 16390, 3), "0:");
	assert_string_equal(show(c, 1663, 5, 16390, 1), "-");
	assert_string_equal(show(c, 1663, 5, 16400, 0), "0:");
	assert_string_equal(show(c, 1663, 5, 16400, 1), "-");
	assert_true(walchg_db_whole(c, 1663, 70000));
	assert_true(walchg_db_whole(c, 16500, 70001));
	assert_true(walchg_db_whole(c, 1663, 70002));
	assert_true(walchg_db_whole(c, 16600, 70002));
	assert_true(walchg_db_whole(c, 16700, 12345));
	assert_false(walchg_db_whole(c, 1663, 5));
	walchg_range(c, &tli, &s, &e);
	assert_int_equal(tli, 1);
	assert_int_equal(s, 3 * SEG);
	assert_int_equal(e, 4 * SEG);
	walchg_free(c);
	free(w.d);
}

/* A record cut by the segment end: blocks read if their headers are here. */
/* Fill to 2 pages before the segment end, then a commit of 3 pages dropping 16777. */
static void
wal_cut_commit(Wal *w)
{
	Rec            r;
	unsigned char *big = calloc(1, 3 * BLCKSZ);

	while (w->pos < w->base + SEG - 2 * BLCKSZ)
		wal_noop(w, 2000);
	rec_init(&r);
	put32(big + 8, 4);
	put32(big + 12, 1);
	put32(big + 16, 1663), put32(big + 20, 5), put32(big + 24, 16777);
	rec_main(&r, big, 3 * BLCKSZ);
	free(big);
	rec_insert(w, &r, RM_XACT, 0x80);
	wal_switch(w);
}

static void
test_scan_cut(void **state)
{
	Wal           w;
	Rec           r;
	unsigned char m[64];
	WalChanges   *c;
	const char   *why;

	(void) state;
	/* 1: the block headers are in the segment, the record (no main data needed) is not */
	wal_init(&w, 1, 1);
	while (w.pos < w.base + SEG - 3 * BLCKSZ)
		wal_noop(&w, 2000);
	rec_init(&r);
	rec_block(&r, REL_A, 0, 11, 8000, false);
	rec_block(&r, REL_A, 0, 12, 8000, false);
	rec_block(&r, REL_A, 0, 13, 8000, false);
	rec_block(&r, REL_A, 0, 14, 8000, false);
	rec_insert(&w, &r, RM_HEAP, 0x00);
	c = summarize(&w, 0, "000000010000000000000001");
	if (!walchg_complete(c, &why))
		fail_msg("incomplete: %s", why);
	assert_string_equal(show(c, 1663, 5, 16384, 0), "none:11,12,13,14");
	walchg_free(c);
	free(w.d);

	/*
	 * 2: a commit dropping relation 16777 whose main data is in the next
	 * segment: incomplete, naming it; resolved with the next segment beside.
	 */
	wal_init(&w, 2, 1);
	wal_cut_commit(&w);
	{
		char      want[64];
		PgbkError err;

		c = summarize(&w, 0, "000000010000000000000001");
		assert_false(walchg_complete(c, &why));
		snprintf(want, sizeof(want), "record at 0/%X in segment 000000010000000000000001",
		         (unsigned) walchg_cont_lsn(c));
		assert_true(walchg_cont_lsn(c) > SEG);
		assert_non_null(strstr(why, want));
		assert_non_null(strstr(why, "main data"));
		assert_string_equal(show(c, 1663, 5, 16777, 0), "-");
		walchg_free(c);
		assert_int_equal(walchg_scan_segment_next(w.d, SEG, w.d + SEG, SEG,
		                                          "000000010000000000000001", &c, &err),
		                 PGBK_OK);
		if (!walchg_complete(c, &why))
			fail_msg("with the next segment: %s", why);
		assert_string_equal(show(c, 1663, 5, 16777, 0), "0:");
		assert_int_equal(walchg_cont_lsn(c), WAL_INVALID_LSN);
		walchg_free(c);
		/* a next segment that does not continue the record resolves nothing */
		memset(w.d + SEG, 0, BLCKSZ);
		assert_int_equal(walchg_scan_segment_next(w.d, SEG, w.d + SEG, SEG,
		                                          "000000010000000000000001", &c, &err),
		                 PGBK_OK);
		assert_false(walchg_complete(c, NULL));
		walchg_free(c);
	}
	free(w.d);

	/* 2b: a record whose header is cut by the segment end (16 bytes here) */
	wal_init(&w, 2, 1);
	while (w.base + SEG - w.pos > BLCKSZ - 24)
		wal_noop(&w, 100);
	wal_noop(&w, (uint32_t) (w.base + SEG - w.pos - 16 - 29));
	assert_int_equal(w.pos, w.base + SEG - 16);
	rec_init(&r);
	rec_block(&r, REL_B, 0, 42, 10, false);
	rec_insert(&w, &r, RM_HEAP, 0x00);
	wal_switch(&w);
	c = summarize(&w, 0, "000000010000000000000001");
	assert_false(walchg_complete(c, &why));
	assert_non_null(strstr(why, "within its header"));
	assert_int_equal(walchg_cont_lsn(c), w.base + SEG - 16);
	walchg_free(c);
	{
		PgbkError err;

		assert_int_equal(walchg_scan_segment_next(w.d, SEG, w.d + SEG, SEG,
		                                          "000000010000000000000001", &c, &err),
		                 PGBK_OK);
		assert_true(walchg_complete(c, NULL));
		assert_string_equal(show(c, 1663, 5, 16390, 0), "none:42");
		walchg_free(c);
		/* and the next segment's own summary does not count it */
		c = summarize(&w, 1, "000000010000000000000002");
		assert_string_equal(show(c, 1663, 5, 16390, 0), "-");
		walchg_free(c);
	}
	free(w.d);

	/* 3: an unknown record flagged XLR_SPECIAL_REL_UPDATE */
	wal_init(&w, 1, 1);
	rec_init(&r);
	rec_main(&r, m, 8);
	rec_insert(&w, &r, RM_HEAP, 0x30 | 0x01);
	wal_switch(&w);
	c = summarize(&w, 0, "000000010000000000000001");
	assert_false(walchg_complete(c, &why));
	assert_non_null(strstr(why, "cannot attribute"));
	walchg_free(c);
	free(w.d);
}

/* ------------------------------------------------------------------------
 * Repository: store, load, tamper, rebuild, union over a range
 * ------------------------------------------------------------------------
 */
typedef struct Fixture
{
	char         dir[256];
	PgbkKeyring *ring;
	PgbkConfig  *cfg;
	Repo        *repo;
	CodecParams  params;
} Fixture;

static int
setup(void **state)
{
	Fixture    *f = calloc(1, sizeof(Fixture));
	const char *tmp = getenv("PGBK_TEST_TMP") ? getenv("PGBK_TEST_TMP") : "/tmp";
	char        key[300], text[1024];
	PgbkError   err;

	snprintf(f->dir, sizeof(f->dir), "%s/pgbk-test-walchanges-XXXXXX", tmp);
	assert_non_null(mkdtemp(f->dir));
	snprintf(key, sizeof(key), "%s/pgbk.key", f->dir);
	if (keyring_generate_file(key, &err) != PGBK_OK || keyring_load(key, &f->ring, &err) != PGBK_OK)
		fail_msg("key: %s", err.msg);
	snprintf(text, sizeof(text), "%s/repo", f->dir);
	assert_int_equal(mkdir(text, 0700), 0);
	snprintf(text, sizeof(text), "repository = '%s/repo'\nkey_file = '%s'\n", f->dir, key);
	if (config_parse_string(text, "test.conf", f->dir, &f->cfg, &err) != PGBK_OK)
		fail_msg("config: %s", err.msg);
	if (repo_open(f->cfg, &f->repo, &err) != PGBK_OK)
		fail_msg("repo: %s", err.msg);
	f->params.compression = PGBK_COMPRESS_ZSTD;
	f->params.level = 3;
	f->params.keyring = f->ring;
	f->params.encrypt = false; /* authenticated only: bytes can be tampered with in place */
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	Fixture *f = *state;
	char     cmd[400];

	repo_close(f->repo);
	config_free(f->cfg);
	keyring_free(f->ring);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Archive segment i of w as the WAL object name (as walpush would, without a summary). */
static void
put_wal(Fixture *f, Wal *w, int i, const char *name)
{
	PgbkBuf   out;
	PgbkError err;
	char      key[LAYOUT_KEY_LEN], attrs[200];

	assert_true(layout_wal_key(name, key, sizeof(key)));
	snprintf(attrs, sizeof(attrs), "kind=wal\nname=%s\n", name);
	pgbk_buf_init(&out);
	if (codec_encode(&f->params, w->d + (size_t) i * w->segsz, w->segsz, attrs, &out, NULL, &err) !=
	        PGBK_OK ||
	    repo_put(f->repo, key, out.data, out.len, NULL, &err) != PGBK_OK)
		fail_msg("put %s: %s", key, err.msg);
	pgbk_buf_free(&out);
}

/* A segment touching block blk of relation rel. */
static void
wal_touch(Wal *w, uint32_t rel, uint32_t blk)
{
	Rec      r;
	uint32_t rn[3] = {1663, 5, rel};

	rec_init(&r);
	rec_block(&r, rn, 0, blk, 10, false);
	rec_insert(w, &r, RM_HEAP, 0x00);
}

static char *
local_path(Fixture *f, const char *key)
{
	static char p[1500];

	snprintf(p, sizeof(p), "%s/repo/%s", f->dir, key);
	return p;
}

static void
test_store_load(void **state)
{
	Fixture    *f = *state;
	WalChanges *c = random_changes(11), *back = NULL;
	PgbkError   err;
	char        key[LAYOUT_KEY_LEN];
	const char *seg = "000000010000000A000000FE";
	FILE       *fp;
	long        size;
	int         ch;

	assert_int_equal(walchg_load(f->repo, f->ring, seg, &back, &err), PGBK_NOT_FOUND);
	assert_int_equal(walchg_store(f->repo, &f->params, seg, c, &err), PGBK_OK);
	assert_true(layout_changes_key(seg, key, sizeof(key)));
	assert_string_equal(key, "changes/000000010000000A/000000010000000A000000FE");
	/* identical again: fine; different: refused, the stored one kept */
	assert_int_equal(walchg_store(f->repo, &f->params, seg, c, &err), PGBK_OK);
	{
		WalChanges *other = random_changes(12);

		assert_int_equal(walchg_store(f->repo, &f->params, seg, other, &err), PGBK_EXISTS);
		assert_non_null(strstr(err.msg, "refusing to overwrite change summary"));
		walchg_free(other);
	}
	assert_int_equal(walchg_load(f->repo, f->ring, seg, &back, &err), PGBK_OK);
	assert_true(walchg_equal(c, back));
	walchg_free(back);

	/* copied under another segment's name: refused, naming both */
	{
		char key2[LAYOUT_KEY_LEN], cmd[4000], src[1500];

		assert_true(layout_changes_key("000000010000000A000000FD", key2, sizeof(key2)));
		snprintf(src, sizeof(src), "%s", local_path(f, key));
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, local_path(f, key2));
		assert_int_equal(system(cmd), 0);
		assert_int_equal(walchg_load(f->repo, f->ring, "000000010000000A000000FD", &back, &err),
		                 PGBK_ERR_INTEGRITY);
		assert_non_null(strstr(err.msg, "changes/000000010000000A/000000010000000A000000FD"));
		assert_non_null(strstr(err.msg, "copied or renamed"));
	}

	/* one byte changed: refused with an error naming the object */
	fp = fopen(local_path(f, key), "r+b");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, size - 20, SEEK_SET);
	ch = fgetc(fp);
	fseek(fp, size - 20, SEEK_SET);
	fputc(ch ^ 0x01, fp);
	fclose(fp);
	back = NULL;
	assert_int_equal(walchg_load(f->repo, f->ring, seg, &back, &err), PGBK_ERR_INTEGRITY);
	assert_null(back);
	assert_non_null(
	    strstr(err.msg, "change summary \"changes/000000010000000A/000000010000000A000000FE\""));
	print_message("tampered: %s\n", err.msg);
	walchg_free(c);
}

static void
test_union_range(void **state)
{
	Fixture    *f = *state;
	Wal         w;
	WalChanges *u = NULL, *one = NULL;
	WalHistory  hist;
	PgbkError   err;
	const char *why;
	bool        rebuilt;
	int         i;
	char        name[WALNAME_BUFLEN];
	uint32_t    tli;
	WalLsn      s, e;

	/* segments 0x10..0x13 of timeline 1: segment i touches block 100 + i of 16384, and 16385:i */
	wal_init(&w, 4, 0x10);
	for (i = 0; i < 4; i++)
	{
		wal_touch(&w, 16384, 100 + (uint32_t) i);
		wal_touch(&w, 16385, (uint32_t) i);
		wal_switch(&w);
	}
	for (i = 0; i < 4; i++)
		put_wal(f, &w, i, walname_format_segment(name, 1, 0x10 + (WalSegNo) i, SEG));

	/* load_or_rebuild: not stored yet, so rebuilt (and stored); then loaded */
	assert_int_equal(walchg_load_or_rebuild(f->repo, f->ring, &f->params,
	                                        "000000010000000000000011", &rebuilt, &one, &err),
	                 PGBK_OK);
	assert_true(rebuilt);
	assert_string_equal(show(one, 1663, 5, 16384, 0), "none:101");
	walchg_free(one);
	assert_int_equal(walchg_load_or_rebuild(f->repo, f->ring, &f->params,
	                                        "000000010000000000000011", &rebuilt, &one, &err),
	                 PGBK_OK);
	assert_false(rebuilt);
	walchg_free(one);

	hist.n = 1;
	hist.entries = calloc(1, sizeof(WalHistoryEntry));
	hist.entries[0].tli = 1;
	/* [middle of 0x11, middle of 0x13): segments 0x11, 0x12, 0x13 */
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x11 * SEG + 100,
	                                    0x13 * SEG + 100, SEG, &u, &err),
	                 PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("incomplete: %s", why);
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:101,102,103");
	assert_string_equal(show(u, 1663, 5, 16385, 0), "none:1,2,3");
	walchg_range(u, &tli, &s, &e);
	assert_int_equal(tli, 1);
	assert_int_equal(s, 0x11 * SEG + 100);
	assert_int_equal(e, 0x13 * SEG + 100);
	walchg_free(u);

	/* an end at a segment boundary does not need the next segment */
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x10 * SEG, 0x12 * SEG,
	                                    SEG, &u, &err),
	                 PGBK_OK);
	assert_true(walchg_complete(u, NULL));
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:100,101");
	walchg_free(u);

	/* a missing segment: incomplete, naming it, not an error */
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x12 * SEG, 0x15 * SEG,
	                                    SEG, &u, &err),
	                 PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "000000010000000000000014"));
	print_message("missing: %s\n", why);
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:102,103");
	walchg_free(u);

	/* a timeline switch at 0x12 + 100: from segment 0x12 on, timeline 2's files are read */
	{
		Wal w2;

		wal_init(&w2, 2, 0x12);
		w2.tli = 2;
		wal_touch(&w2, 16384, 900);
		wal_switch(&w2);
		wal_touch(&w2, 16384, 901);
		wal_switch(&w2);
		put_wal(f, &w2, 0, "000000020000000000000012");
		put_wal(f, &w2, 1, "000000020000000000000013");
		free(w2.d);
	}
	hist.n = 2;
	hist.entries = realloc(hist.entries, 2 * sizeof(WalHistoryEntry));
	hist.entries[0].end = 0x12 * SEG + 100;
	hist.entries[1].tli = 2;
	hist.entries[1].begin = 0x12 * SEG + 100;
	hist.entries[1].end = WAL_INVALID_LSN;
	hist.entries[1].reason = NULL;
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x10 * SEG,
	                                    0x13 * SEG + 10, SEG, &u, &err),
	                 PGBK_OK);
	assert_true(walchg_complete(u, NULL));
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:100,101,900,901");
	walchg_range(u, &tli, NULL, NULL);
	assert_int_equal(tli, 2);
	walchg_free(u);

	/* a tampered stored summary makes the union incomplete, naming it */
	{
		char  key[LAYOUT_KEY_LEN];
		FILE *fp;

		assert_true(layout_changes_key("000000010000000000000011", key, sizeof(key)));
		fp = fopen(local_path(f, key), "r+b");
		assert_non_null(fp);
		fseek(fp, 60, SEEK_SET);
		fputc(0x55, fp);
		fclose(fp);
	}
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x10 * SEG, 0x12 * SEG,
	                                    SEG, &u, &err),
	                 PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "changes/0000000100000000/000000010000000000000011"));
	/* as untrusted, not as absent (its segment is there) */
	assert_non_null(
	    strstr(why, "change summary of segment 000000010000000000000011 unusable, not trusted: "));
	assert_null(strstr(why, "no change summary"));
	walchg_free(u);
	free(hist.entries);
	free(w.d);
}

/* The union resolves a summary left incomplete by a record continuing into the next segment. */
static void
test_union_cut(void **state)
{
	Fixture    *f = *state;
	Wal         w;
	WalChanges *u = NULL;
	WalHistory  hist;
	PgbkError   err;
	const char *why;

	wal_init(&w, 2, 0x20);
	wal_cut_commit(&w);
	put_wal(f, &w, 0, "000000010000000000000020");
	hist.n = 1;
	hist.entries = calloc(1, sizeof(WalHistoryEntry));
	hist.entries[0].tli = 1;
	/* the next segment is not archived (yet): incomplete */
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x20 * SEG, 0x21 * SEG,
	                                    SEG, &u, &err),
	                 PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "main data"));
	walchg_free(u);
	/* once it is, the same range is complete and has the drop */
	put_wal(f, &w, 1, "000000010000000000000021");
	assert_int_equal(walchg_union_range(f->repo, f->ring, &f->params, &hist, 0x20 * SEG, 0x21 * SEG,
	                                    SEG, &u, &err),
	                 PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("incomplete: %s", why);
	assert_string_equal(show(u, 1663, 5, 16777, 0), "0:");
	walchg_free(u);
	free(hist.entries);
	free(w.d);
}

/* Write segment i of w into the local directory dir under name. */
static void
put_local(const char *dir, const Wal *w, int i, const char *name)
{
	char  path[600];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(w->d + (size_t) i * w->segsz, 1, w->segsz, fp), w->segsz);
	fclose(fp);
}

static void
unlink_local(const char *dir, const char *name)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/*
 * The union with a local source (pg_wal): segments without a summary in the
 * repository are summarized from local files, the one being written too;
 * a recycled file or one of another cluster is never used; a record
 * continuing into a local next segment is resolved; a record cut at the
 * end of written WAL, past the range, is harmless.
 */
static void
test_union_local(void **state)
{
	Fixture         *f = *state;
	Wal              w;
	WalChanges      *u = NULL, *one = NULL;
	WalHistory       hist;
	PgbkError        err;
	const char      *why;
	char             dir[400], name[WALNAME_BUFLEN];
	WalChgLocal      local;
	WalChgRange      r;
	WalChgUnionStats stats;
	WalLsn           to, cut;
	int              i;

	snprintf(dir, sizeof(dir), "%s/pg_wal", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	hist.n = 1;
	hist.entries = calloc(1, sizeof(WalHistoryEntry));
	hist.entries[0].tli = 1;

	/*
	 * Segments 0x40..0x43: segment i touches block 200 + i of 16384; 0x40
	 * and 0x41 are archived with summaries, 0x42 is only in pg_wal, 0x43 is
	 * being written: two records, then one whose second page is not written
	 * yet (zeros), then nothing.
	 */
	wal_init(&w, 4, 0x40);
	for (i = 0; i < 3; i++)
	{
		wal_touch(&w, 16384, 200 + (uint32_t) i);
		wal_switch(&w);
	}
	wal_touch(&w, 16384, 203);
	wal_touch(&w, 16385, 5);
	/* `to`, a record start; the record there (a checkpoint's) is written whole */
	to = w.pos;
	wal_touch(&w, 16385, 6);
	{
		Rec      rc;
		uint32_t rn[3] = {1663, 5, 16386};
		WalLsn   page;

		rec_init(&rc);
		rec_block(&rc, rn, 0, 77, 8000, false);
		rec_block(&rc, NULL, 0, 78, 8000, false);
		cut = rec_insert(&w, &rc, RM_HEAP, 0x00);
		page = (cut / BLCKSZ + 1) * BLCKSZ;
		memset(w.d + (page - w.base), 0, w.base + w.size - page);
	}
	for (i = 0; i < 2; i++)
	{
		put_wal(f, &w, i, walname_format_segment(name, 1, 0x40 + (WalSegNo) i, SEG));
		assert_int_equal(
		    walchg_load_or_rebuild(f->repo, f->ring, &f->params, name, NULL, &one, &err), PGBK_OK);
		walchg_free(one);
	}
	put_local(dir, &w, 2, "000000010000000000000042");
	put_local(dir, &w, 3, "000000010000000000000043");

	memset(&local, 0, sizeof(local));
	local.read = walchg_read_dir;
	local.arg = dir;
	local.sysid = UINT64_C(7301234567890123456);
	memset(&r, 0, sizeof(r));
	r.repo = f->repo;
	r.ring = f->ring;
	r.params = &f->params;
	r.hist = &hist;
	r.from = 0x40 * SEG + 100;
	r.to = to;
	r.seg_size = SEG;
	r.local = &local;

	/* without the local source: incomplete, naming the first unarchived segment */
	assert_int_equal(
	    walchg_union_range(f->repo, f->ring, &f->params, &hist, r.from, r.to, SEG, &u, &err),
	    PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "000000010000000000000042"));
	walchg_free(u);

	/* with it: complete, every segment's blocks, the cut record past `to` left out */
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("incomplete: %s", why);
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:200,201,202,203");
	assert_string_equal(show(u, 1663, 5, 16385, 0), "none:5,6"); /* 6: past `to`, harmless */
	assert_string_equal(show(u, 1663, 5, 16386, 0), "-");
	assert_int_equal(stats.segments, 4);
	assert_int_equal(stats.local, 2);
	walchg_free(u);
	/* ... and nothing summarized locally was stored */
	assert_int_equal(walchg_load(f->repo, f->ring, "000000010000000000000042", &one, &err),
	                 PGBK_NOT_FOUND);

	/* a range ending past the end of written WAL: incomplete, naming the segment */
	r.to = cut + 100;
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "000000010000000000000043"));
	walchg_free(u);
	r.to = to;

	/* a recycled file (segment 0x41's bytes renamed to 0x42): not used */
	put_local(dir, &w, 1, "000000010000000000000042");
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "no change summary for segment 000000010000000000000042"));
	assert_int_equal(stats.local, 1);
	walchg_free(u);
	/* ... the archived segment is used then */
	put_wal(f, &w, 2, "000000010000000000000042");
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_true(walchg_complete(u, NULL));
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:200,201,202,203");
	assert_int_equal(stats.local, 1);
	walchg_free(u);

	/* a file of another cluster: not used; a missing one neither */
	local.sysid = 42;
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "000000010000000000000043"));
	assert_int_equal(stats.local, 0);
	walchg_free(u);
	local.sysid = UINT64_C(7301234567890123456);
	unlink_local(dir, "000000010000000000000043");
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "000000010000000000000043"));
	walchg_free(u);
	free(w.d);

	/*
	 * A record continuing from archived segment 0x50 into 0x51, which is
	 * only in pg_wal: resolved with it.  Were 0x51 nowhere, a range ending
	 * at or before the record needs nothing of it; one past it does.
	 */
	wal_init(&w, 2, 0x50);
	wal_cut_commit(&w);
	put_wal(f, &w, 0, "000000010000000000000050");
	one = summarize(&w, 0, "000000010000000000000050");
	cut = walchg_cont_lsn(one);
	assert_true(cut != WAL_INVALID_LSN);
	walchg_free(one);
	r.from = 0x50 * SEG;
	r.to = 0x51 * SEG + 100;
	put_local(dir, &w, 1, "000000010000000000000051");
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("incomplete: %s", why);
	assert_string_equal(show(u, 1663, 5, 16777, 0), "0:");
	assert_int_equal(stats.local, 1);
	walchg_free(u);
	unlink_local(dir, "000000010000000000000051");
	r.to = cut;
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("a range ending at the cut record: %s", why);
	walchg_free(u);
	r.to = cut + 1;
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	assert_false(walchg_complete(u, &why));
	assert_non_null(strstr(why, "main data"));
	walchg_free(u);
	free(w.d);

	/*
	 * The segment being written is read up to `to` and a margin: a record
	 * at `to` longer than the margin makes the whole file read.
	 */
	wal_init(&w, 1, 0x60);
	wal_touch(&w, 16384, 600);
	to = w.pos;
	wal_noop(&w, 400 * 1024);
	wal_touch(&w, 16384, 601);
	put_local(dir, &w, 0, "000000010000000000000060");
	r.from = 0x60 * SEG;
	r.to = to;
	assert_int_equal(walchg_union(&r, &u, &stats, &err), PGBK_OK);
	if (!walchg_complete(u, &why))
		fail_msg("a long record at `to`: %s", why);
	assert_string_equal(show(u, 1663, 5, 16384, 0), "none:600,601");
	assert_int_equal(stats.local, 1);
	walchg_free(u);
	free(w.d);
	free(hist.entries);
}

/* walpush stores the summary beside the segment, on a retry too, and a different stored one only warns. */
/* Write len bytes to a new file at path. */
static void
write_bytes(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
test_walpush(void **state)
{
	Fixture      *f = *state;
	Wal           w;
	WalPusher     p;
	WalPushResult res;
	PgbkError     err;
	WalChanges   *want = NULL, *got = NULL;
	char          path[400];
	const char   *name = "000000010000000000000031";
	FILE         *fp;

	wal_init(&w, 1, 0x31);
	wal_touch(&w, 16384, 7);
	wal_touch(&w, 16384, 3);
	wal_switch(&w);
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	write_bytes(path, w.d, SEG);

	walpush_init(&p, f->repo, &f->params);
	if (walpush_file(&p, path, name, &res, &err) != PGBK_OK)
		fail_msg("walpush_file: %s", err.msg);
	assert_true(res.has_changes);
	assert_true(res.changes_complete);
	assert_int_equal(walchg_load(f->repo, f->ring, name, &got, &err), PGBK_OK);
	assert_int_equal(walchg_scan_segment(w.d, SEG, name, &want, &err), PGBK_OK);
	assert_true(walchg_equal(got, want));
	assert_string_equal(show(got, 1663, 5, 16384, 0), "none:3,7");
	walchg_free(got);

	/* a retry after a crash between the two puts: the summary is stored then */
	{
		char key[LAYOUT_KEY_LEN];

		assert_true(layout_changes_key(name, key, sizeof(key)));
		assert_int_equal(unlink(local_path(f, key)), 0);
		assert_int_equal(walpush_file(&p, path, name, &res, &err), PGBK_OK);
		assert_true(res.already_present);
		assert_true(res.has_changes);
		assert_int_equal(walchg_load(f->repo, f->ring, name, &got, &err), PGBK_OK);
		assert_true(walchg_equal(got, want));
		walchg_free(got);

		/* another summary stored under the name: kept, and archiving goes on */
		assert_int_equal(unlink(local_path(f, key)), 0);
		got = random_changes(5);
		assert_int_equal(walchg_store(f->repo, &f->params, name, got, &err), PGBK_OK);
		assert_int_equal(walpush_file(&p, path, name, &res, &err), PGBK_OK);
		assert_true(res.already_present);
		assert_false(res.has_changes);
		walchg_free(got);
	}
	/* a history file gets no summary */
	snprintf(path, sizeof(path), "%s/00000002.history", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("1\t0/31000000\tno recovery target specified\n", fp);
	fclose(fp);
	assert_int_equal(walpush_file(&p, path, "00000002.history", &res, &err), PGBK_OK);
	assert_false(res.has_changes);

	/*
	 * Two pushers of one repository context (an uploader's, one preparing
	 * ahead): walpush_prepare and walpush_store apart, and the second trusts
	 * the first's descriptor check (walpush_share_check).  With the
	 * descriptor now unreadable, it still stores; a pusher of its own reads
	 * the descriptor and refuses.
	 */
	{
		WalPusher   q, r;
		Wal         w2;
		const char *name2 = "000000010000000000000032";
		char        path2[400];
		const char *dpath = local_path(f, LAYOUT_DESCRIPTOR);
		char       *saved;
		long        dlen;

		wal_init(&w2, 1, 0x32);
		wal_touch(&w2, 16384, 9);
		wal_switch(&w2);
		snprintf(path2, sizeof(path2), "%s/%s", f->dir, name2);
		write_bytes(path2, w2.d, SEG);
		fp = fopen(dpath, "rb");
		assert_non_null(fp);
		fseek(fp, 0, SEEK_END);
		dlen = ftell(fp);
		rewind(fp);
		saved = malloc((size_t) dlen);
		assert_int_equal(fread(saved, 1, (size_t) dlen, fp), (size_t) dlen);
		fclose(fp);
		write_bytes(dpath, "not a descriptor", 16);

		walpush_init(&r, f->repo, &f->params);
		assert_int_not_equal(walpush_file(&r, path2, name2, &res, &err), PGBK_OK);
		walpush_free(&r);

		walpush_init(&q, f->repo, &f->params);
		walpush_share_check(&q, &p);
		assert_int_equal(walpush_prepare(&q, path2, name2, &res, &err), PGBK_OK);
		assert_true(q.enc.len > 0);
		assert_true(res.has_summary);
		if (walpush_store(&q, name2, &res, &err) != PGBK_OK)
			fail_msg("walpush_store: %s", err.msg);
		assert_false(res.already_present);
		assert_true(res.has_changes);
		walpush_free(&q);

		write_bytes(dpath, saved, (size_t) dlen);
		free(saved);
		free(w2.d);
	}
	walpush_free(&p);
	walchg_free(want);
	free(w.d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_decode_bad),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_sort_random),
	    cmocka_unit_test(test_scan_records),
	    cmocka_unit_test(test_scan_cut),
	    cmocka_unit_test_setup_teardown(test_store_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_union_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_union_cut, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_union_local, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_walpush, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
