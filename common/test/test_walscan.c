/*
 * test_walscan.c
 *	  Tests of room wal (cmocka); uses unit.h and walscan.c.
 *	  Unit tests for walscan.c on synthetic WAL.
 *
 * A small WAL writer builds segment images in memory the way PostgreSQL's
 * insertion code lays them out (CopyXLogRecordToWAL): MAXALIGNed records, a
 * long page header at each segment start, a short one on every other page,
 * XLP_FIRST_IS_CONTRECORD and xlp_rem_len on pages that continue a record,
 * XLOG_SWITCH padding.  Every summary a test gets is also pushed through
 * walscan_summary_to_attrs/from_attrs and must come back identical.
 */
#include "unit.h"

#include <time.h>

#include "wal/walscan.h"

#define MB     (1024U * 1024U)
#define SEG    (1 * MB)
#define BLCKSZ 8192U

/* On-disk constants the tests build with (see walscan.c for the sources). */
#define MAGIC_PG14        0xD10D
#define MAGIC_PG15        0xD110
#define XLP_CONTRECORD    0x0001
#define XLP_LONG          0x0002
#define XLP_BKP_REMOVABLE 0x0004
#define XLP_OVERWRITE     0x0008
#define RM_XLOG           0
#define RM_XACT           1
#define RM_HEAP           10
#define XLOG_NOOP         0x20
#define XLOG_SWITCH       0x40
#define XLOG_RESTORE_PT   0x70
#define XLOG_OVERWRITE    0xD0
#define XACT_COMMIT       0x00
#define XACT_PREPARE      0x10
#define XACT_ABORT        0x20
#define XACT_COMMIT_PREP  0x30
#define XACT_ABORT_PREP   0x40
#define XACT_ASSIGNMENT   0x50
#define XACT_HAS_INFO     0x80

#define T0 INT64_C(1700000000000000) /* 2023-11-14, Unix microseconds */

/* ------------------------------------------------------------------------
 * The WAL writer
 * ------------------------------------------------------------------------
 */
typedef struct Wal
{
	unsigned char *d;
	size_t         size; /* nsegs * segsz */
	uint32_t       segsz;
	uint32_t       blcksz;
	uint16_t       magic;
	uint32_t       tli;
	uint16_t       next_info; /* extra xlp_info bits for the next page header */
	WalLsn         base;      /* LSN of d[0] */
	WalLsn         pos;       /* insert position */
	WalLsn         prev;      /* start of the last record */
	WalLsn         last_end;  /* end of the last record (not aligned) */
	uint32_t       xid;
} Wal;

static void
wal_init_sized(Wal *w, int nsegs, uint32_t segsz, WalSegNo first_segno)
{
	memset(w, 0, sizeof(*w));
	w->segsz = segsz;
	w->blcksz = BLCKSZ;
	w->size = (size_t) nsegs * segsz;
	w->d = calloc(1, w->size);
	assert_non_null(w->d);
	w->magic = MAGIC_PG15;
	w->tli = 1;
	w->base = walname_segno_to_lsn(first_segno, segsz);
	w->pos = w->base;
	w->prev = w->base - 0x1000; /* a record in the previous segment */
	w->xid = 1000;
}

static void
wal_init(Wal *w, int nsegs, WalSegNo first_segno)
{
	wal_init_sized(w, nsegs, SEG, first_segno);
}

static void
wal_free(Wal *w)
{
	free(w->d);
	w->d = NULL;
}

static unsigned char *
wal_at(Wal *w, WalLsn lsn)
{
	return w->d + (lsn - w->base);
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

/* Write the header of the page at lsn (if it is in the buffer). */
static void
wal_page_header(Wal *w, WalLsn page, uint16_t info, uint32_t rem_len)
{
	unsigned char *p;

	if (!wal_in(w, page))
		return;
	p = wal_at(w, page);
	info |= w->next_info;
	w->next_info = 0;
	if (page % w->segsz == 0)
		info |= XLP_LONG;
	put16(p, w->magic);
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

/*
 * Insert a record; body is everything after the 24-byte header.  Bytes
 * beyond the buffer are dropped (a record continuing past the last segment
 * built).  If first_page_only, write only the part on the first page and
 * leave the insert position at the next page, as a crash would (the record
 * is then "aborted" and not the new prev).
 */
static WalLsn
wal_insert_ex(Wal *w, uint8_t rmid, uint8_t info, const PgbkBuf *body, bool first_page_only)
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
			if (first_page_only)
				break;
			wal_page_header(w, w->pos, XLP_CONTRECORD, tot - written);
			w->pos += page_hdr_size(w, w->pos);
		}
		n = w->blcksz - (uint32_t) (w->pos % w->blcksz);
		if (n > tot - written)
			n = tot - written;
		if (wal_in(w, w->pos))
			memcpy(wal_at(w, w->pos), rec + written, n);
		w->pos += n;
		written += n;
	}
	free(rec);
	if (!first_page_only)
	{
		w->last_end = w->pos;
		w->prev = start;
	}
	w->pos = (w->pos + 7) & ~(WalLsn) 7;
	return start;
}

static WalLsn
wal_insert(Wal *w, uint8_t rmid, uint8_t info, const PgbkBuf *body)
{
	return wal_insert_ex(w, rmid, info, body, false);
}

/* Main data header (XLR_BLOCK_ID_DATA_SHORT/LONG) and the main data. */
static void
body_main(PgbkBuf *b, const void *data, uint32_t len, bool force_long)
{
	unsigned char h[5];

	if (len < 256 && !force_long)
	{
		h[0] = 255;
		h[1] = (unsigned char) len;
		assert_true(pgbk_buf_append(b, h, 2));
	}
	else
	{
		h[0] = 254;
		put32(h + 1, len);
		assert_true(pgbk_buf_append(b, h, 5));
	}
	assert_true(pgbk_buf_append(b, data, len));
}

/* A filler record (XLOG_NOOP) of exactly tot_len bytes (a multiple of 8, >= 24). */
static WalLsn
wal_noop(Wal *w, uint32_t tot_len)
{
	PgbkBuf        b;
	unsigned char *data;
	uint32_t       n;
	WalLsn         lsn;

	assert_true(tot_len >= 24 && tot_len % 8 == 0);
	pgbk_buf_init(&b);
	if (tot_len > 24)
	{
		n = tot_len - 24 - 2 < 256 ? tot_len - 24 - 2 : tot_len - 24 - 5;
		data = malloc(n + 1);
		memset(data, 0x5A, n + 1);
		body_main(&b, data, n, false);
		free(data);
	}
	lsn = wal_insert(w, RM_XLOG, XLOG_NOOP, &b);
	pgbk_buf_free(&b);
	return lsn;
}

/* Insert fillers until the next record starts exactly at target. */
static void
wal_pad_to(Wal *w, WalLsn target)
{
	for (;;)
	{
		WalLsn eff = w->pos % w->blcksz == 0 ? w->pos + page_hdr_size(w, w->pos) : w->pos;
		WalLsn page_end = (eff / w->blcksz + 1) * w->blcksz;

		assert_true(eff <= target);
		if (eff == target)
			return;
		if (target < page_end)
		{
			assert_true(target - eff >= 24);
			wal_noop(w, (uint32_t) (target - eff));
			assert_int_equal(w->pos, target);
			return;
		}
		if (page_end - eff >= 24)
			wal_noop(w, (uint32_t) (page_end - eff));
		else
			wal_noop(w, 32); /* header split across the page boundary */
	}
}

/* A commit/abort record: op is the xl_info opcode; extra bytes make it big. */
static WalLsn
wal_xact(Wal *w, uint8_t op, int64_t unix_us, uint32_t extra)
{
	PgbkBuf        b;
	unsigned char *data = calloc(1, 8 + extra);
	WalLsn         lsn;

	pgbk_buf_init(&b);
	put64(data, (uint64_t) walscan_unix_us_to_pg_time(unix_us));
	memset(data + 8, 0xEE, extra);
	body_main(&b, data, 8 + extra, false);
	lsn = wal_insert(w, RM_XACT, op, &b);
	free(data);
	pgbk_buf_free(&b);
	return lsn;
}

static WalLsn
wal_rp(Wal *w, const char *name, int64_t unix_us)
{
	PgbkBuf       b;
	unsigned char data[72];
	WalLsn        lsn;

	memset(data, 0, sizeof(data));
	put64(data, (uint64_t) walscan_unix_us_to_pg_time(unix_us));
	memcpy(data + 8, name, strlen(name) < 64 ? strlen(name) : 64);
	pgbk_buf_init(&b);
	body_main(&b, data, sizeof(data), false);
	lsn = wal_insert(w, RM_XLOG, XLOG_RESTORE_PT, &b);
	pgbk_buf_free(&b);
	return lsn;
}

/* XLOG_SWITCH, then page headers to the end of the segment. */
static WalLsn
wal_switch(Wal *w)
{
	WalLsn lsn = wal_insert(w, RM_XLOG, XLOG_SWITCH, NULL);
	WalLsn page = (w->pos + w->blcksz - 1) / w->blcksz * w->blcksz;
	WalLsn seg_end = (lsn / w->segsz + 1) * w->segsz;

	for (; page < seg_end; page += w->blcksz)
		wal_page_header(w, page, 0, 0);
	w->pos = seg_end;
	return lsn;
}

static const unsigned char *
wal_seg(Wal *w, int i)
{
	return w->d + (size_t) i * w->segsz;
}

/* attrs round trip: every summary must come back identical */
static void
check_roundtrip(const WalSummary *s)
{
	PgbkBuf    b;
	WalSummary back;
	PgbkError  err;

	pgbk_buf_init(&b);
	assert_int_equal(walscan_summary_to_attrs(s, 4096, &b, &err), PGBK_OK);
	assert_true(b.len <= 4096);
	assert_int_equal(walscan_summary_from_attrs((const char *) b.data, &back, &err), PGBK_OK);
	if (memcmp(s, &back, sizeof(back)) != 0)
		fail_msg("attrs round trip differs:\n%s", (const char *) b.data);
	pgbk_buf_free(&b);
}

static void
scan(Wal *w, int i, WalSummary *s)
{
	PgbkError err;

	pgbk_error_clear(&err);
	if (walscan_segment(wal_seg(w, i), w->segsz, w->segsz, s, &err) != PGBK_OK)
		fail_msg("walscan_segment: %s", err.msg);
	check_roundtrip(s);
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------
 */

static void
test_basic(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     first, c1, a1, rp, c2, a2, last;

	(void) state;
	wal_init(&w, 1, 0x25);
	first = wal_noop(&w, 64);
	c1 = wal_xact(&w, XACT_COMMIT, T0 + 5, 0);
	a1 = wal_xact(&w, XACT_ABORT, T0 + 2, 0);
	rp = wal_rp(&w, "before upgrade", T0 + 3);
	wal_xact(&w, XACT_PREPARE, T0 + 100, 0);    /* not a transaction end */
	wal_xact(&w, XACT_ASSIGNMENT, T0 + 100, 0); /* neither */
	c2 = wal_xact(&w, XACT_COMMIT_PREP, T0 + 10, 0);
	wal_xact(&w, XACT_COMMIT | XACT_HAS_INFO, T0 + 9, 40);
	a2 = wal_xact(&w, XACT_ABORT_PREP, T0 + 7, 0);
	last = wal_noop(&w, 40);

	scan(&w, 0, &s);
	assert_int_equal(s.page_magic, MAGIC_PG15);
	assert_int_equal(s.pg_major, 15);
	assert_int_equal(s.tli, 1);
	assert_int_equal(s.last_tli, 1);
	assert_int_equal(s.sysid, UINT64_C(7301234567890123456));
	assert_int_equal(s.seg_size, SEG);
	assert_int_equal(s.page_size, BLCKSZ);
	assert_int_equal(s.segno, 0x25);
	assert_int_equal(s.cont_in_len, 0);
	assert_int_equal(s.nrecords, 10);
	assert_int_equal(s.first_lsn, first);
	assert_int_equal(s.first_lsn, w.base + 40);
	assert_int_equal(s.last_lsn, last);
	assert_int_equal(s.ncommits, 3);
	assert_int_equal(s.naborts, 2);
	assert_int_equal(s.xact_first_time, T0 + 5);
	assert_int_equal(s.xact_last_time, T0 + 7);
	assert_int_equal(s.xact_min_time, T0 + 2);
	assert_int_equal(s.xact_max_time, T0 + 10);
	assert_int_equal(s.xact_last_lsn, a2);
	assert_int_equal(s.nrestore_points, 1);
	assert_int_equal(s.rp_dropped, 0);
	assert_int_equal(s.restore_points[0].lsn, rp);
	assert_int_equal(s.restore_points[0].time_us, T0 + 3);
	assert_string_equal(s.restore_points[0].name, "before upgrade");
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_int_equal(s.end_lsn, w.last_end);
	assert_true(s.tail_zero);
	assert_int_equal(s.cont, WALSCAN_CONT_NONE);
	assert_int_equal(s.switch_lsn, 0);
	assert_non_null(strstr(s.end_reason, "invalid record length"));
	(void) c1;
	(void) a1;
	(void) c2;

	/* recovery_target_time semantics: stop before the first xact_time > T */
	assert_int_equal(walscan_time_target_stop(&s, T0 + 9, true), WALSCAN_STOP_HERE);
	assert_int_equal(walscan_time_target_stop(&s, T0 + 10, true), WALSCAN_STOP_NO);
	assert_int_equal(walscan_time_target_stop(&s, T0 + 10, false), WALSCAN_STOP_HERE);
	assert_int_equal(walscan_time_target_stop(&s, T0 + 11, false), WALSCAN_STOP_NO);
	wal_free(&w);
}

/* Records spanning pages, and record headers split across a page boundary. */
static void
test_page_spanning(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     big, split8, split16, after;

	(void) state;
	wal_init(&w, 1, 7);
	wal_noop(&w, 48);
	big = wal_xact(&w, XACT_COMMIT, T0 + 1, 30000); /* four pages */
	wal_pad_to(&w, w.base + 5 * BLCKSZ - 8);
	split8 = wal_xact(&w, XACT_ABORT, T0 + 2, 100);
	assert_int_equal(split8 % BLCKSZ, BLCKSZ - 8);
	wal_pad_to(&w, w.base + 7 * BLCKSZ - 16);
	split16 = wal_rp(&w, "split", T0 + 3);
	assert_int_equal(split16 % BLCKSZ, BLCKSZ - 16);
	/* a record ending exactly at a page end: the next starts after a header */
	wal_pad_to(&w, w.base + 9 * BLCKSZ - 64);
	wal_noop(&w, 64);
	after = wal_xact(&w, XACT_COMMIT, T0 + 4, 0);
	assert_int_equal(after, w.base + 9 * BLCKSZ + 24);

	scan(&w, 0, &s);
	assert_int_equal(s.ncommits, 2);
	assert_int_equal(s.naborts, 1);
	assert_int_equal(s.xact_first_time, T0 + 1);
	assert_int_equal(s.xact_last_time, T0 + 4);
	assert_int_equal(s.xact_last_lsn, after);
	assert_int_equal(s.nrestore_points, 1);
	assert_int_equal(s.restore_points[0].lsn, split16);
	assert_string_equal(s.restore_points[0].name, "split");
	assert_int_equal(s.restore_points[0].time_us, T0 + 3);
	assert_int_equal(s.last_lsn, after);
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_int_equal(s.end_lsn, w.last_end);
	assert_true(s.tail_zero);
	(void) big;
	wal_free(&w);
}

/* A commit record that starts in one segment and ends in the next. */
static void
test_segment_spanning(void **state)
{
	Wal        w;
	WalSummary s0, s1;
	WalLsn     seg1 = 0, c_span, c_next, before;

	(void) state;
	wal_init(&w, 2, 0x30);
	seg1 = w.base + SEG;
	wal_xact(&w, XACT_COMMIT, T0 + 1, 0);
	wal_pad_to(&w, seg1 - 3000);
	before = wal_xact(&w, XACT_ABORT, T0 + 2, 0);
	c_span = wal_xact(&w, XACT_COMMIT, T0 + 50, 20000);
	c_next = wal_xact(&w, XACT_COMMIT, T0 + 60, 0);

	scan(&w, 0, &s0);
	assert_int_equal(s0.ncommits, 1);
	assert_int_equal(s0.naborts, 1);
	assert_int_equal(s0.last_lsn, before);
	assert_int_equal(s0.xact_max_time, T0 + 2);
	assert_int_equal(s0.end_kind, WALSCAN_END_SEGMENT);
	assert_int_equal(s0.end_lsn, seg1);
	assert_int_equal(s0.cont, WALSCAN_CONT_COMMIT);
	assert_int_equal(s0.cont_lsn, c_span);
	assert_true(s0.cont_time_valid);
	assert_int_equal(s0.cont_time, T0 + 50);
	assert_int_equal(walscan_time_target_stop(&s0, T0 + 1, true), WALSCAN_STOP_HERE);
	assert_int_equal(walscan_time_target_stop(&s0, T0 + 2, true), WALSCAN_STOP_NEXT);
	assert_int_equal(walscan_time_target_stop(&s0, T0 + 50, true), WALSCAN_STOP_NO);
	assert_int_equal(walscan_time_target_stop(&s0, T0 + 50, false), WALSCAN_STOP_NEXT);

	scan(&w, 1, &s1);
	assert_int_equal(s1.segno, 0x31);
	/* 24 + 5 + 8 + 20000 record bytes, minus those before the segment end */
	assert_int_equal(s1.cont_in_len,
	                 20037 - ((uint32_t) (seg1 - c_span) -
	                          24 * (uint32_t) ((seg1 - 1) / BLCKSZ - c_span / BLCKSZ)));
	assert_int_equal(s1.first_lsn, c_next);
	assert_int_equal(s1.nrecords, 1);
	assert_int_equal(s1.ncommits, 1);
	assert_int_equal(s1.xact_first_time, T0 + 60);
	assert_int_equal(s1.end_kind, WALSCAN_END_INSIDE);
	assert_true(s1.tail_zero);
	wal_free(&w);
}

/* The continuation at a segment's start fills page 0 exactly. */
static void
test_continuation_fills_page(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     seg1, start, next;
	uint32_t   tot;

	(void) state;
	wal_init(&w, 2, 0x40);
	seg1 = w.base + SEG;
	wal_pad_to(&w, seg1 - 1000);
	/* record bytes: 1000 here, then all of page 0 of the next segment */
	tot = 1000 + (BLCKSZ - 40);
	start = wal_noop(&w, tot);
	assert_int_equal(w.last_end, seg1 + BLCKSZ);
	next = wal_xact(&w, XACT_COMMIT, T0, 0);
	assert_int_equal(next, seg1 + BLCKSZ + 24);

	scan(&w, 0, &s);
	assert_int_equal(s.cont, WALSCAN_CONT_OTHER);
	assert_int_equal(s.cont_lsn, start);
	assert_false(s.cont_time_valid);
	scan(&w, 1, &s);
	assert_int_equal(s.cont_in_len, BLCKSZ - 40);
	assert_int_equal(s.first_lsn, next);
	assert_int_equal(s.ncommits, 1);
	wal_free(&w);
}

/* Record headers cut by the segment end: the kind is unknown. */
static void
test_header_cut_at_segment_end(void **state)
{
	int cut;

	(void) state;
	for (cut = 8; cut <= 16; cut += 8)
	{
		Wal        w;
		WalSummary s0, s1;
		WalLsn     seg1, c, next;

		wal_init(&w, 2, 0x50);
		seg1 = w.base + SEG;
		wal_pad_to(&w, seg1 - (WalLsn) cut);
		c = wal_xact(&w, XACT_COMMIT, T0 + 5, 0);
		next = wal_xact(&w, XACT_ABORT, T0 + 6, 0);

		scan(&w, 0, &s0);
		assert_int_equal(s0.end_kind, WALSCAN_END_SEGMENT);
		assert_int_equal(s0.cont, WALSCAN_CONT_UNKNOWN);
		assert_int_equal(s0.cont_lsn, c);
		assert_false(s0.cont_time_valid);
		assert_int_equal(walscan_time_target_stop(&s0, T0 + 100, true), WALSCAN_STOP_MAYBE_NEXT);

		scan(&w, 1, &s1);
		assert_int_equal(s1.cont_in_len, 34 - cut);
		assert_int_equal(s1.first_lsn, next);
		assert_int_equal(s1.ncommits, 0);
		assert_int_equal(s1.naborts, 1);
		wal_free(&w);
	}
}

/*
 * A commit whose main data lies in the next segment (big block data before
 * it): the kind is known, the time is not.
 */
static void
test_cont_commit_time_unknown(void **state)
{
	Wal            w;
	WalSummary     s;
	PgbkBuf        b;
	unsigned char  blk[4 + 5 + 12 + 4];
	unsigned char *image = calloc(1, 6000);
	unsigned char  main[8];
	WalLsn         c;

	(void) state;
	wal_init(&w, 2, 0x60);
	wal_pad_to(&w, w.base + SEG - 2000);
	pgbk_buf_init(&b);
	blk[0] = 0;             /* block id 0 */
	blk[1] = 0x10;          /* BKPBLOCK_HAS_IMAGE, main fork */
	put16(blk + 2, 0);      /* data_length */
	put16(blk + 4, 6000);   /* image length */
	put16(blk + 6, 0);      /* hole offset */
	blk[8] = 0;             /* bimg_info */
	memset(blk + 9, 1, 12); /* RelFileNode */
	put32(blk + 21, 42);    /* block number */
	assert_true(pgbk_buf_append(&b, blk, sizeof(blk)));
	put64(main, (uint64_t) walscan_unix_us_to_pg_time(T0));
	/* header: block header, then the main data header, then image, then main data */
	assert_true(pgbk_buf_append(&b, "\xff\x08", 2));
	assert_true(pgbk_buf_append(&b, image, 6000));
	assert_true(pgbk_buf_append(&b, main, 8));
	c = wal_insert(&w, RM_XACT, XACT_COMMIT, &b);

	scan(&w, 0, &s);
	assert_int_equal(s.cont, WALSCAN_CONT_COMMIT);
	assert_int_equal(s.cont_lsn, c);
	assert_false(s.cont_time_valid);
	assert_int_equal(walscan_time_target_stop(&s, T0 - 1, true), WALSCAN_STOP_MAYBE_NEXT);

	/* the same record fully inside a segment: its time is found */
	scan(&w, 1, &s);
	assert_int_equal(s.ncommits, 0);
	wal_free(&w);

	wal_init(&w, 1, 0x60);
	c = wal_insert(&w, RM_XACT, XACT_COMMIT, &b);
	scan(&w, 0, &s);
	assert_int_equal(s.ncommits, 1);
	assert_int_equal(s.xact_first_time, T0);
	assert_int_equal(s.xact_last_lsn, c);
	wal_free(&w);
	pgbk_buf_free(&b);
	free(image);
}

/* One record covering a whole segment. */
static void
test_record_covers_segment(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     big, next;

	(void) state;
	wal_init(&w, 3, 0x70);
	wal_pad_to(&w, w.base + SEG - 4096);
	big = wal_xact(&w, XACT_COMMIT, T0, SEG + 100000);
	next = wal_xact(&w, XACT_ABORT, T0 + 1, 0);

	scan(&w, 0, &s);
	assert_int_equal(s.cont, WALSCAN_CONT_COMMIT);
	assert_int_equal(s.cont_lsn, big);
	assert_true(s.cont_time_valid);

	scan(&w, 1, &s);
	assert_int_equal(s.nrecords, 0);
	assert_int_equal(s.first_lsn, WAL_INVALID_LSN);
	assert_int_equal(s.end_kind, WALSCAN_END_SEGMENT);
	assert_int_equal(s.cont, WALSCAN_CONT_UNKNOWN);
	assert_int_equal(s.cont_lsn, WAL_INVALID_LSN);
	assert_true(s.cont_in_len > SEG);
	/* the record began earlier: its segment's summary speaks for it */
	assert_int_equal(walscan_time_target_stop(&s, T0 - 1, true), WALSCAN_STOP_NO);

	scan(&w, 2, &s);
	assert_int_equal(s.first_lsn, next);
	assert_int_equal(s.naborts, 1);
	wal_free(&w);
}

static void
test_switch(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     sw, next;

	(void) state;
	wal_init(&w, 2, 0x80);
	wal_xact(&w, XACT_COMMIT, T0, 0);
	wal_pad_to(&w, w.base + 3 * BLCKSZ + 200);
	sw = wal_switch(&w);
	/* stale bytes after the switch must not be reported */
	memset(wal_at(&w, w.base + 10 * BLCKSZ + 24), 0x11, 2000);
	next = wal_xact(&w, XACT_ABORT, T0 + 1, 0);
	assert_int_equal(next, w.base + SEG + 40);

	scan(&w, 0, &s);
	assert_int_equal(s.end_kind, WALSCAN_END_SWITCH);
	assert_int_equal(s.switch_lsn, sw);
	assert_int_equal(s.last_lsn, sw);
	assert_int_equal(s.end_lsn, w.base + SEG);
	assert_int_equal(s.ncommits, 1);
	assert_int_equal(s.naborts, 0);
	assert_int_equal(s.cont, WALSCAN_CONT_NONE);

	scan(&w, 1, &s);
	assert_int_equal(s.first_lsn, next);
	assert_int_equal(s.naborts, 1);
	wal_free(&w);
}

/* A recycled segment: after the end of WAL come the old segment's bytes. */
static void
test_recycled_stale_tail(void **state)
{
	int variant;

	(void) state;
	for (variant = 0; variant < 3; variant++)
	{
		Wal        old, w;
		WalSummary s;
		WalLsn     end_off;
		int        i;

		/* the old segment: the same records, then many more, all full */
		wal_init(&old, 1, 0x10);
		wal_init(&w, 1, 0x90);
		for (i = 0; i < 3; i++)
		{
			wal_xact(&old, XACT_COMMIT, T0 + i, 0);
			wal_xact(&w, XACT_COMMIT, T0 + i, 0);
		}
		if (variant == 1)
		{
			/* the current WAL ends exactly at a page boundary */
			wal_pad_to(&old, old.base + 2 * BLCKSZ - 40);
			wal_noop(&old, 40);
			wal_pad_to(&w, w.base + 2 * BLCKSZ - 40);
			wal_noop(&w, 40);
		}
		while (old.pos < old.base + SEG - 2 * BLCKSZ)
			wal_xact(&old, XACT_COMMIT, T0 + 1000, 0);
		end_off = w.pos - w.base;
		if (variant == 2)
		{
			/* a torn page: zeros in the current page, stale data on the next ones */
			end_off = (end_off / BLCKSZ + 1) * BLCKSZ;
		}
		memcpy(w.d + end_off, old.d + end_off, SEG - end_off);

		scan(&w, 0, &s);
		assert_int_equal(s.ncommits, 3);
		assert_int_equal(s.xact_max_time, T0 + 2);
		assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
		assert_int_equal(s.end_lsn, w.last_end);
		assert_false(s.tail_zero);
		if (variant == 0)
			assert_non_null(strstr(s.end_reason, "incorrect prev-link"));
		else if (variant == 1)
			assert_non_null(strstr(s.end_reason, "unexpected pageaddr"));
		else
			assert_non_null(strstr(s.end_reason, "invalid record length"));
		wal_free(&old);
		wal_free(&w);
	}
}

/*
 * WAL ending at a page boundary: an initialised next page (header only) is
 * still an unused tail; a next page claiming a continuation is not.
 */
static void
test_end_at_page_boundary(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     last;

	(void) state;
	wal_init(&w, 1, 0x140);
	wal_pad_to(&w, w.base + 3 * BLCKSZ - 48);
	last = wal_xact(&w, XACT_COMMIT, T0, 14);
	assert_int_equal(w.last_end, w.base + 3 * BLCKSZ);
	wal_page_header(&w, w.base + 3 * BLCKSZ, XLP_BKP_REMOVABLE, 0);

	scan(&w, 0, &s);
	assert_int_equal(s.last_lsn, last);
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_int_equal(s.end_lsn, w.base + 3 * BLCKSZ);
	assert_true(s.tail_zero);
	assert_non_null(strstr(s.end_reason, "invalid record length"));

	wal_page_header(&w, w.base + 3 * BLCKSZ, XLP_CONTRECORD, 100);
	scan(&w, 0, &s);
	assert_int_equal(s.last_lsn, last);
	assert_false(s.tail_zero);
	assert_non_null(strstr(s.end_reason, "contrecord is requested"));
	wal_free(&w);
}

/* Garbage that happens to look like a record length; a bad resource manager. */
static void
test_garbage_after_end(void **state)
{
	Wal        w;
	WalSummary s;
	uint32_t   x = 2463534242U;
	size_t     i;
	WalLsn     end;

	(void) state;
	wal_init(&w, 1, 0xA0);
	wal_xact(&w, XACT_COMMIT, T0, 0);
	end = w.pos;
	for (i = end - w.base; i < w.size; i++)
	{
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		w.d[i] = (unsigned char) x;
	}
	/* a plausible length, then rmid 99 */
	put32(wal_at(&w, end), 40);
	put64(wal_at(&w, end + 8), w.prev);
	wal_at(&w, end)[17] = 99;
	scan(&w, 0, &s);
	assert_int_equal(s.nrecords, 1);
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_non_null(strstr(s.end_reason, "resource manager ID 99"));
	assert_false(s.tail_zero);

	/* an implausible length */
	put32(wal_at(&w, end), 0x7FFFFFFF);
	scan(&w, 0, &s);
	assert_non_null(strstr(s.end_reason, "too long"));
	wal_free(&w);
}

/* A page in the middle of a record that is not its continuation. */
static void
test_broken_continuation(void **state)
{
	Wal        w;
	WalSummary s;
	WalLsn     good, big;

	(void) state;
	wal_init(&w, 1, 0xB0);
	good = wal_xact(&w, XACT_COMMIT, T0, 0);
	big = wal_xact(&w, XACT_COMMIT, T0 + 1, 20000);
	(void) big;

	/* wrong xlp_rem_len on the second page */
	put32(wal_at(&w, w.base + BLCKSZ) + 16, 5);
	scan(&w, 0, &s);
	assert_int_equal(s.ncommits, 1);
	assert_int_equal(s.last_lsn, good);
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_non_null(strstr(s.end_reason, "invalid contrecord length"));

	/* no continuation flag */
	put16(wal_at(&w, w.base + BLCKSZ) + 2, 0);
	scan(&w, 0, &s);
	assert_non_null(strstr(s.end_reason, "no contrecord flag"));

	/* bad magic */
	put16(wal_at(&w, w.base + BLCKSZ), 0x1234);
	scan(&w, 0, &s);
	assert_non_null(strstr(s.end_reason, "invalid magic number 1234"));
	assert_int_equal(s.end_lsn, good + 34);
	wal_free(&w);
}

/* XLP_FIRST_IS_OVERWRITE_CONTRECORD: an aborted record is skipped. */
static void
test_overwrite_contrecord(void **state)
{
	Wal            w;
	WalSummary     s;
	PgbkBuf        b;
	PgbkBuf        bbig;
	unsigned char *big = calloc(1, 20000);
	unsigned char  ov[16];
	WalLsn         before, aborted, ovrec, after;

	(void) state;
	wal_init(&w, 2, 0xC0);
	before = wal_xact(&w, XACT_COMMIT, T0, 0);
	pgbk_buf_init(&b);
	pgbk_buf_init(&bbig);
	put64(big, (uint64_t) walscan_unix_us_to_pg_time(T0 + 1));
	body_main(&bbig, big, 20000, false);
	aborted = wal_insert_ex(&w, RM_XACT, XACT_COMMIT, &bbig, true);
	assert_int_equal(w.pos % BLCKSZ, 0);
	w.next_info = XLP_OVERWRITE;
	put64(ov, aborted);
	put64(ov + 8, 0);
	body_main(&b, ov, 16, false);
	ovrec = wal_insert(&w, RM_XLOG, XLOG_OVERWRITE, &b);
	after = wal_xact(&w, XACT_ABORT, T0 + 2, 0);

	scan(&w, 0, &s);
	assert_int_equal(s.noverwritten, 1);
	assert_int_equal(s.nrecords, 3);
	assert_int_equal(s.ncommits, 1);
	assert_int_equal(s.naborts, 1);
	assert_int_equal(s.first_lsn, before);
	assert_int_equal(s.last_lsn, after);
	assert_int_equal(ovrec, w.base + BLCKSZ + 24);

	/* the same at a segment boundary */
	wal_pad_to(&w, w.base + SEG - 400);
	before = wal_xact(&w, XACT_COMMIT, T0 + 3, 0);
	wal_insert_ex(&w, RM_XACT, XACT_COMMIT, &bbig, true);
	assert_int_equal(w.pos, w.base + SEG);
	w.next_info = XLP_OVERWRITE;
	ovrec = wal_insert(&w, RM_XLOG, XLOG_OVERWRITE, &b);
	after = wal_xact(&w, XACT_COMMIT, T0 + 4, 0);
	scan(&w, 1, &s);
	assert_int_equal(s.noverwritten, 1);
	assert_int_equal(s.cont_in_len, 0);
	assert_int_equal(s.first_lsn, ovrec);
	assert_int_equal(s.last_lsn, after);
	assert_int_equal(s.ncommits, 1);
	(void) before;
	pgbk_buf_free(&b);
	pgbk_buf_free(&bbig);
	free(big);
	wal_free(&w);
}

/* Block reference headers before the main data, PostgreSQL 14 and 15 formats. */
static void
build_block_body(PgbkBuf *b, bool pg14_compressed_hole, int64_t t)
{
	unsigned char h[64];
	size_t        n = 0;
	unsigned char main[8 + 20];

	pgbk_buf_init(b);
	/* origin and top-level xid */
	h[n++] = 253;
	put16(h + n, 7);
	n += 2;
	h[n++] = 252;
	put32(h + n, 12345);
	n += 4;
	/* block 0: image (with hole; compressed in 14's flag layout) and data */
	h[n++] = 0;
	h[n++] = 0x10 | 0x20;
	put16(h + n, 10);
	n += 2;
	put16(h + n, 100); /* image length */
	n += 2;
	put16(h + n, 50); /* hole offset */
	n += 2;
	h[n++] = 0x01 | 0x02; /* HAS_HOLE | (14: IS_COMPRESSED, 15: APPLY) */
	if (pg14_compressed_hole)
	{
		put16(h + n, 8000); /* hole length */
		n += 2;
	}
	memset(h + n, 3, 12); /* RelFileNode */
	n += 12;
	put32(h + n, 1);
	n += 4;
	/* block 2: same relation, data only */
	h[n++] = 2;
	h[n++] = 0x80 | 0x20;
	put16(h + n, 5);
	n += 2;
	put32(h + n, 2);
	n += 4;
	assert_true(pgbk_buf_append(b, h, n));
	put64(main, (uint64_t) walscan_unix_us_to_pg_time(t));
	memset(main + 8, 0, 20);
	n = b->len;
	{
		unsigned char d[2] = {255, sizeof(main)};

		assert_true(pgbk_buf_append(b, d, 2));
	}
	/* block data: image (100) + data (10) + data (5) */
	{
		unsigned char data[115];

		memset(data, 0xAB, sizeof(data));
		assert_true(pgbk_buf_append(b, data, sizeof(data)));
	}
	assert_true(pgbk_buf_append(b, main, sizeof(main)));
}

static void
test_block_headers(void **state)
{
	int pg;

	(void) state;
	for (pg = 14; pg <= 15; pg++)
	{
		Wal        w;
		WalSummary s;
		PgbkBuf    b;

		wal_init(&w, 1, 0xD0);
		w.magic = pg == 14 ? MAGIC_PG14 : MAGIC_PG15;
		build_block_body(&b, pg == 14, T0 + pg);
		wal_insert(&w, RM_XACT, XACT_ABORT, &b);
		pgbk_buf_free(&b);
		/* the other version's layout does not add up */
		build_block_body(&b, pg != 14, T0);
		wal_insert(&w, RM_XACT, XACT_COMMIT, &b);
		pgbk_buf_free(&b);

		scan(&w, 0, &s);
		assert_int_equal(s.pg_major, pg);
		assert_int_equal(s.naborts, 1);
		assert_int_equal(s.xact_first_time, T0 + pg);
		assert_int_equal(s.ncommits, 0);
		assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
		assert_non_null(strstr(s.end_reason, "invalid block references"));
		wal_free(&w);
	}
}

/* Malformed block headers: out-of-order ids, SAME_REL first, data flag mismatch. */
static void
test_malformed_blocks(void **state)
{
	static const unsigned char bodies[][32] = {
	    /* block 1 (new relation), then block 0 */
	    {1, 0x20, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 7, 0, 0, 0, 0, 0x20, 1, 0},
	    /* SAME_REL without a previous relation */
	    {0, 0xA0, 1, 0, 9, 9, 9, 9, 255, 0},
	    /* HAS_DATA with length 0 */
	    {0, 0x20, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
	    /* an invalid block id */
	    {99, 0, 0, 0, 0, 0, 0, 0},
	    /* main data shorter than a timestamp */
	    {255, 4, 1, 2, 3, 4},
	    /* main data length beyond the record */
	    {255, 200, 1, 2, 3, 4, 5, 6, 7, 8},
	};
	static const size_t lens[] = {24, 10, 16, 8, 6, 10};
	size_t              i;

	(void) state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
	{
		Wal        w;
		WalSummary s;
		PgbkBuf    b;
		WalLsn     good;

		wal_init(&w, 1, 0xE0);
		good = wal_xact(&w, XACT_COMMIT, T0, 0);
		pgbk_buf_init(&b);
		assert_true(pgbk_buf_append(&b, bodies[i], lens[i]));
		wal_insert(&w, RM_XACT, XACT_COMMIT, &b);
		pgbk_buf_free(&b);
		wal_xact(&w, XACT_COMMIT, T0 + 1, 0);
		scan(&w, 0, &s);
		assert_int_equal(s.ncommits, 1);
		assert_int_equal(s.last_lsn, good);
		assert_non_null(strstr(s.end_reason, "invalid block references"));
		wal_free(&w);
	}
}

static void
test_timelines(void **state)
{
	Wal        w;
	WalSummary s;

	(void) state;
	/* the first segment of timeline 2 starts with timeline 1's pages */
	wal_init(&w, 1, 0xF0);
	wal_xact(&w, XACT_COMMIT, T0, 0);
	wal_pad_to(&w, w.base + 2 * BLCKSZ + 24);
	w.tli = 2;
	wal_xact(&w, XACT_COMMIT, T0 + 1, 0);
	wal_xact(&w, XACT_COMMIT, T0 + 2, 5000);
	wal_pad_to(&w, w.base + 4 * BLCKSZ + 24);
	w.tli = 1; /* going back is invalid: the next page header says 1 */
	wal_xact(&w, XACT_COMMIT, T0 + 3, 10000);
	scan(&w, 0, &s);
	assert_int_equal(s.tli, 1);
	assert_int_equal(s.last_tli, 2);
	assert_int_equal(s.ncommits, 3);
	assert_non_null(strstr(s.end_reason, "out-of-sequence timeline ID 1"));
	wal_free(&w);
}

static void
test_restore_points(void **state)
{
	Wal        w;
	WalSummary s;
	char       name[64];
	int        i;
	PgbkBuf    b;
	PgbkError  err;
	WalSummary back;

	(void) state;
	/* a 64-byte name without a terminator is cut to 63 */
	memset(name, 'n', sizeof(name));
	{
		PgbkBuf       rb;
		unsigned char data[72];

		put64(data, (uint64_t) walscan_unix_us_to_pg_time(T0));
		memcpy(data + 8, name, 64);
		pgbk_buf_init(&rb);
		body_main(&rb, data, 72, true);
		wal_init(&w, 1, 0x100);
		wal_insert(&w, RM_XLOG, XLOG_RESTORE_PT, &rb);
		pgbk_buf_free(&rb);
		scan(&w, 0, &s);
		assert_int_equal(s.nrestore_points, 1);
		assert_int_equal(strlen(s.restore_points[0].name), 63);
		wal_free(&w);
	}

	wal_init(&w, 1, 0x100);
	for (i = 0; i < WALSCAN_MAX_RESTORE_POINTS + 3; i++)
	{
		snprintf(name, sizeof(name), "rp %d, 100%% = \"x\"\t\xff", i);
		wal_rp(&w, name, T0 + i);
	}
	scan(&w, 0, &s);
	assert_int_equal(s.nrestore_points, WALSCAN_MAX_RESTORE_POINTS);
	assert_int_equal(s.rp_dropped, 3);
	assert_string_equal(s.restore_points[2].name, "rp 2, 100% = \"x\"\t\xff");
	assert_int_equal(s.restore_points[7].time_us, T0 + 7);

	/* the attribute text is ASCII lines, names escaped */
	pgbk_buf_init(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, 4096, &b, &err), PGBK_OK);
	for (i = 0; i < (int) b.len; i++)
		assert_true(b.data[i] == '\n' || (b.data[i] >= 0x20 && b.data[i] < 0x7F));
	assert_non_null(strstr((char *) b.data, "rp%202%2C%20100%25%20=%20\"x\"%09%FF\n"));

	/* a small budget leaves restore points out and counts them */
	pgbk_buf_reset(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, 800, &b, &err), PGBK_OK);
	assert_true(b.len <= 800);
	assert_int_equal(walscan_summary_from_attrs((char *) b.data, &back, &err), PGBK_OK);
	assert_true(back.nrestore_points < WALSCAN_MAX_RESTORE_POINTS);
	assert_int_equal(back.nrestore_points + back.rp_dropped, WALSCAN_MAX_RESTORE_POINTS + 3);
	assert_string_equal(back.restore_points[0].name, s.restore_points[0].name);

	/* too small for the fixed part */
	pgbk_buf_reset(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, 100, &b, &err), PGBK_ERR_USAGE);
	assert_int_equal(b.len, 0);
	pgbk_buf_free(&b);
	wal_free(&w);
}

static void
test_bad_images(void **state)
{
	Wal        w;
	WalSummary s;
	PgbkError  err;
	uint16_t   magics[] = {0xD106, 0xD10D, 0xD110, 0xD113, 0xD116};
	int        majors[] = {13, 14, 15, 16, 17};
	size_t     i;

	(void) state;
	wal_init(&w, 1, 0x110);
	wal_xact(&w, XACT_COMMIT, T0, 0);

	for (i = 0; i < 5; i++)
	{
		put16(w.d, magics[i]);
		assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_OK);
		assert_int_equal(s.pg_major, majors[i]);
		/* the other pages keep their magic: a mixed segment ends at page 1 */
	}
	put16(w.d, MAGIC_PG15);

	put16(w.d, 0xD101); /* PostgreSQL 12 */
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "unsupported WAL page magic 0xD101"));
	put16(w.d, 0xD118);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "0xD118"));
	put16(w.d, MAGIC_PG15);

	assert_int_equal(walscan_segment(w.d, SEG - 1, SEG, &s, &err), PGBK_ERR_USAGE);
	assert_non_null(strstr(err.msg, "expected 1048576"));
	assert_int_equal(walscan_segment(w.d, SEG, 3 * MB, &s, &err), PGBK_ERR_USAGE);

	/* header's segment size differs from the caller's */
	put32(w.d + 32, 2 * MB);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "segment size"));
	put32(w.d + 32, SEG);

	put32(w.d + 36, 3000);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "page size 3000"));
	put32(w.d + 36, BLCKSZ);

	put16(w.d + 2, 0); /* no long header flag */
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "info bits"));
	put16(w.d + 2, XLP_LONG);

	put64(w.d + 8, w.base + 8192);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "not at a segment boundary"));
	put64(w.d + 8, w.base);

	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_OK);
	memset(w.d, 0, SEG);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "zero"));
	wal_free(&w);
}

/* Summaries with extreme values survive the attributes, and stay small. */
static void
test_attrs(void **state)
{
	WalSummary s;
	WalSummary back;
	PgbkBuf    b;
	PgbkError  err;
	int        i;

	(void) state;
	memset(&s, 0, sizeof(s));
	s.page_magic = 0xD116;
	s.pg_major = 17;
	s.tli = UINT32_MAX;
	s.last_tli = UINT32_MAX;
	s.sysid = UINT64_MAX;
	s.seg_size = WAL_SEGSZ_MAX;
	s.page_size = 65536;
	s.segno = UINT64_MAX;
	s.cont_in_len = UINT32_MAX;
	s.nrecords = UINT64_MAX;
	s.first_lsn = UINT64_MAX;
	s.last_lsn = UINT64_MAX;
	s.ncommits = UINT64_MAX / 2;
	s.naborts = UINT64_MAX / 2;
	s.xact_first_time = INT64_MIN;
	s.xact_last_time = INT64_MAX;
	s.xact_min_time = INT64_MIN;
	s.xact_max_time = INT64_MAX;
	s.xact_last_lsn = UINT64_MAX;
	s.rp_dropped = UINT32_MAX - 100;
	s.noverwritten = UINT32_MAX;
	s.end_kind = WALSCAN_END_INSIDE;
	s.end_lsn = UINT64_MAX;
	s.switch_lsn = UINT64_MAX;
	s.tail_zero = true;
	s.cont = WALSCAN_CONT_UNKNOWN;
	s.cont_lsn = UINT64_MAX;
	s.cont_time_valid = true;
	s.cont_time = INT64_MIN;
	memset(s.end_reason, '\xfe', sizeof(s.end_reason) - 1);

	pgbk_buf_init(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, 4096, &b, &err), PGBK_OK);
	print_message("worst-case fixed attributes: %zu bytes\n", b.len);
	assert_true(b.len < 1200);
	assert_int_equal(walscan_summary_from_attrs((char *) b.data, &back, &err), PGBK_OK);
	assert_memory_equal(&s, &back, sizeof(s));

	/* worst-case restore points still fit the default budget with them dropped */
	s.nrestore_points = WALSCAN_MAX_RESTORE_POINTS;
	for (i = 0; i < WALSCAN_MAX_RESTORE_POINTS; i++)
	{
		s.restore_points[i].lsn = UINT64_MAX;
		s.restore_points[i].time_us = INT64_MIN;
		memset(s.restore_points[i].name, '\x01', WALSCAN_RP_NAME_LEN - 1);
	}
	pgbk_buf_reset(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, WALSCAN_ATTRS_MAX, &b, &err), PGBK_OK);
	assert_true(b.len <= WALSCAN_ATTRS_MAX);
	pgbk_buf_reset(&b);
	assert_int_equal(walscan_summary_to_attrs(&s, 4096, &b, &err), PGBK_OK);
	print_message("worst-case attributes with %d restore points: %zu bytes\n",
	              WALSCAN_MAX_RESTORE_POINTS, b.len);
	assert_int_equal(walscan_summary_from_attrs((char *) b.data, &back, &err), PGBK_OK);
	assert_memory_equal(&s, &back, sizeof(s));
	pgbk_buf_free(&b);
}

static void
test_attrs_parse_errors(void **state)
{
	WalSummary  s;
	PgbkError   err;
	PgbkBuf     b;
	Wal         w;
	const char *bad[] = {
	    "wal.v=2\n",
	    "wal.v=1\nwal.tli=abc\n",
	    "wal.v=1\nwal.tli=4294967296\n",
	    "wal.v=1\nwal.first=0/\n",
	    "wal.v=1\nwal.end=sideways\n",
	    "wal.v=1\nwal.magic=D11\n",
	    "wal.v=1\nwal.rp.1=0/1,2,x\n",
	    "wal.v=1\nwal.rp.8=0/1,2,x\n",
	    "wal.v=1\nwal.rp.9=0/1,2,x\n",
	    "wal.v=1\nwal.tail_zero=2\n",
	    "wal.v=1\nwal.rp.0=0/1,2,x\nwal.rp.0=0/1,2,x\n",
	    "wal.v=1\nwal.rp.0=0/1,x\n",
	    "wal.v=1\nwal.rp.0=0/1,2,a%G1\n",
	    "wal.v=1\nwal.rp.0=0/1,2,a%00\n",
	    "wal.v=1\nwal.rp.0=0/1,2,a%2\n",
	    "wal.v=1\nwal.tli\n",
	    "wal.v=1\nwal.magic=1234\nwal.tli=1\nwal.segsz=16777216\nwal.blcksz=8192\n",
	    "wal.v=1\nwal.magic=D110\nwal.tli=0\nwal.segsz=16777216\nwal.blcksz=8192\n",
	};
	size_t i;
	char  *text;

	(void) state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		if (walscan_summary_from_attrs(bad[i], &s, &err) != PGBK_ERR_FORMAT)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(walscan_summary_from_attrs("", &s, &err), PGBK_NOT_FOUND);
	assert_int_equal(walscan_summary_from_attrs("kind=wal\nwal.tli=1\n", &s, &err), PGBK_NOT_FOUND);

	/* other attributes around it and unknown wal.* keys are ignored */
	wal_init(&w, 1, 0x120);
	wal_xact(&w, XACT_COMMIT, T0, 0);
	assert_int_equal(walscan_segment(w.d, SEG, SEG, &s, &err), PGBK_OK);
	pgbk_buf_init(&b);
	assert_true(pgbk_buf_append_str(&b, "kind=wal\nname=000000010000000000000120\n"));
	assert_int_equal(walscan_summary_to_attrs(&s, 4096, &b, &err), PGBK_OK);
	assert_true(pgbk_buf_append_str(&b, "wal.future=1\nzz=top"));
	text = (char *) b.data;
	{
		WalSummary back;

		assert_int_equal(walscan_summary_from_attrs(text, &back, &err), PGBK_OK);
		assert_memory_equal(&s, &back, sizeof(s));
	}
	pgbk_buf_free(&b);
	wal_free(&w);
	assert_string_equal(walscan_end_name(WALSCAN_END_SWITCH), "switch");
	assert_string_equal(walscan_cont_name(WALSCAN_CONT_RESTORE_POINT), "restore_point");
}

static void
test_time_conversion(void **state)
{
	(void) state;
	assert_int_equal(walscan_pg_time_to_unix_us(0), INT64_C(946684800000000));
	assert_int_equal(walscan_unix_us_to_pg_time(INT64_C(946684800000000)), 0);
	assert_int_equal(walscan_pg_time_to_unix_us(INT64_MAX), INT64_MAX);
	assert_int_equal(walscan_unix_us_to_pg_time(INT64_MIN), INT64_MIN);
}

/*
 * Random damage to a segment with every kind of record layout: the scan
 * must stay inside the image, and what it reports must be self-consistent.
 */
static void
test_fuzz(void **state)
{
	Wal            w;
	unsigned char *orig;
	uint32_t       x = 88172645U;
	int            iter;

	(void) state;
	wal_init(&w, 2, 0x150);
	wal_xact(&w, XACT_COMMIT, T0, 0);
	wal_rp(&w, "fuzz", T0);
	wal_xact(&w, XACT_ABORT, T0, 20000);
	wal_pad_to(&w, w.base + 4 * BLCKSZ - 8);
	wal_xact(&w, XACT_COMMIT, T0, 300);
	wal_pad_to(&w, w.base + SEG - 3000);
	wal_xact(&w, XACT_COMMIT, T0 + 1, 9000);
	wal_xact(&w, XACT_COMMIT, T0 + 2, 0);
	orig = malloc(w.size);
	memcpy(orig, w.d, w.size);

	for (iter = 0; iter < 3000; iter++)
	{
		int        seg = iter % 2;
		int        n = 1 + iter % 4;
		int        k;
		WalSummary s;
		PgbkError  err;
		WalLsn     start = w.base + (WalLsn) seg * SEG;

		memcpy(w.d, orig, w.size);
		for (k = 0; k < n; k++)
		{
			size_t off;

			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			/* mostly where the records and page headers are */
			off = (size_t) seg * SEG + (x >> 8) % (6 * BLCKSZ);
			w.d[off] = (unsigned char) (x & 0xFF);
		}
		if (walscan_segment(wal_seg(&w, seg), SEG, SEG, &s, &err) != PGBK_OK)
		{
			assert_int_equal(err.code, PGBK_ERR_FORMAT);
			continue;
		}
		check_roundtrip(&s);
		/* a damaged first page address moves the whole segment */
		start = walname_segno_to_lsn(s.segno, SEG);
		assert_true(s.end_lsn > start && s.end_lsn <= start + SEG);
		assert_true(s.nrecords == 0 ||
		            (s.first_lsn > start && s.first_lsn <= s.last_lsn && s.last_lsn < s.end_lsn));
		assert_true(s.ncommits + s.naborts <= s.nrecords);
		assert_true(s.nrestore_points <= WALSCAN_MAX_RESTORE_POINTS);
		assert_true(s.end_kind != WALSCAN_END_INSIDE || s.end_reason[0] != '\0');
	}
	free(orig);
	wal_free(&w);
}

/* A full 16 MiB segment of small records: how long does a scan take? */
static void
test_speed(void **state)
{
	Wal             w;
	WalSummary      s;
	PgbkError       err;
	struct timespec t1, t2;
	double          best = 1e9;
	int             i;
	uint32_t        sizes[] = {56, 72, 104, 48, 200, 64, 80};

	(void) state;
	wal_init_sized(&w, 1, 16 * MB, 0x130);
	for (i = 0; w.pos < w.base + 16 * MB - 4 * BLCKSZ; i++)
	{
		if (i % 50 == 0)
			wal_xact(&w, i % 150 == 0 ? XACT_ABORT : XACT_COMMIT, T0 + i, 0);
		else
			wal_noop(&w, sizes[i % 7]);
	}
	for (i = 0; i < 5; i++)
	{
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_int_equal(walscan_segment(w.d, w.size, 16 * MB, &s, &err), PGBK_OK);
		clock_gettime(CLOCK_MONOTONIC, &t2);
		if ((t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6 < best)
			best = (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6;
	}
	assert_int_equal(s.end_kind, WALSCAN_END_INSIDE);
	assert_true(s.nrecords > 150000);
	print_message("scan of a 16 MiB segment with %llu records: %.2f ms\n",
	              (unsigned long long) s.nrecords, best);
	check_roundtrip(&s);
	wal_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_page_spanning),
	    cmocka_unit_test(test_segment_spanning),
	    cmocka_unit_test(test_continuation_fills_page),
	    cmocka_unit_test(test_header_cut_at_segment_end),
	    cmocka_unit_test(test_cont_commit_time_unknown),
	    cmocka_unit_test(test_record_covers_segment),
	    cmocka_unit_test(test_switch),
	    cmocka_unit_test(test_recycled_stale_tail),
	    cmocka_unit_test(test_end_at_page_boundary),
	    cmocka_unit_test(test_garbage_after_end),
	    cmocka_unit_test(test_broken_continuation),
	    cmocka_unit_test(test_overwrite_contrecord),
	    cmocka_unit_test(test_block_headers),
	    cmocka_unit_test(test_malformed_blocks),
	    cmocka_unit_test(test_timelines),
	    cmocka_unit_test(test_restore_points),
	    cmocka_unit_test(test_bad_images),
	    cmocka_unit_test(test_attrs),
	    cmocka_unit_test(test_attrs_parse_errors),
	    cmocka_unit_test(test_time_conversion),
	    cmocka_unit_test(test_fuzz),
	    cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
