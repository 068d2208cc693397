/*
 * walscan.c
 *	  Room wal; uses base (WAL names) only.
 *	  Scan one WAL segment image for what restore planning needs: commit and
 *	  abort times, restore points, and where valid WAL ends (see walscan.h).
 *
 * It runs on the archiving hot path, so it touches record headers only: it
 * jumps from record to record by xl_tot_len, checks each page header it
 * crosses, and reads the block reference headers and main data only of the
 * few record types it reports (commit, abort, restore point).  That is a
 * few milliseconds for a 16 MiB segment.
 *
 * The layouts below mirror PostgreSQL 15's headers (cited at each block);
 * backend headers are not included because this file is compiled into
 * frontend programs too.  Multi-byte fields are read in host byte order,
 * as PostgreSQL writes them.
 */
#include "wal/walscan.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* access/xlog_internal.h of PostgreSQL 13 to 17: XLOG_PAGE_MAGIC */
static const struct
{
	uint16_t magic;
	int      major;
} page_magics[] = {{0xD106, 13}, {0xD10D, 14}, {0xD110, 15}, {0xD113, 16}, {0xD116, 17}};

/* XLogPageHeaderData and XLogLongPageHeaderData (access/xlog_internal.h) */
#define PH_MAGIC          0  /* uint16 xlp_magic */
#define PH_INFO           2  /* uint16 xlp_info */
#define PH_TLI            4  /* uint32 xlp_tli */
#define PH_PAGEADDR       8  /* uint64 xlp_pageaddr */
#define PH_REM_LEN        16 /* uint32 xlp_rem_len */
#define SIZE_OF_SHORT_PHD 24 /* SizeOfXLogShortPHD: MAXALIGN(20) */
#define PH_SYSID          24 /* uint64 xlp_sysid */
#define PH_SEG_SIZE       32 /* uint32 xlp_seg_size */
#define PH_XLOG_BLCKSZ    36 /* uint32 xlp_xlog_blcksz */
#define SIZE_OF_LONG_PHD  40 /* SizeOfXLogLongPHD */

#define XLP_FIRST_IS_CONTRECORD           0x0001
#define XLP_LONG_HEADER                   0x0002
#define XLP_FIRST_IS_OVERWRITE_CONTRECORD 0x0008
#define XLP_ALL_FLAGS                     0x000F

/* XLogRecord (access/xlogrecord.h) */
#define XL_TOT_LEN          0  /* uint32 xl_tot_len */
#define XL_PREV             8  /* uint64 xl_prev */
#define XL_INFO             16 /* uint8 xl_info */
#define XL_RMID             17 /* uint8 xl_rmid */
#define SIZE_OF_XLOG_RECORD 24 /* SizeOfXLogRecord */
#define XLR_INFO_MASK       0x0F
/* xlogreader cannot allocate a bigger record (MaxAllocSize, utils/memutils.h) */
#define MAX_RECORD_LEN 0x3fffffffU

/* Block reference headers (access/xlogrecord.h) */
#define XLR_MAX_BLOCK_ID          32
#define XLR_BLOCK_ID_DATA_SHORT   255
#define XLR_BLOCK_ID_DATA_LONG    254
#define XLR_BLOCK_ID_ORIGIN       253 /* then RepOriginId (uint16) */
#define XLR_BLOCK_ID_TOPLEVEL_XID 252 /* then TransactionId (uint32) */
#define BKPBLOCK_FORK_MASK        0x0F
#define BKPBLOCK_HAS_IMAGE        0x10
#define BKPBLOCK_HAS_DATA         0x20
#define BKPBLOCK_SAME_REL         0x80
#define BKPIMAGE_HAS_HOLE         0x01
#define BKPIMAGE_IS_COMPRESSED_14 0x02 /* PostgreSQL 13 and 14 */
#define BKPIMAGE_COMPRESSED_15    0x1C /* PGLZ | LZ4 | ZSTD, PostgreSQL 15+ */
#define SIZE_OF_RELFILENODE       12   /* RelFileNode / RelFileLocator: 3 Oids */
#define MAX_FORKNUM               3    /* common/relpath.h: INIT_FORKNUM */

/* access/rmgrlist.h, access/rmgr.h: the same 22 built-in IDs in 13..17 */
#define RM_XLOG_ID        0
#define RM_XACT_ID        1
#define RM_MAX_BUILTIN_ID 21
#define RM_MIN_CUSTOM_ID  128 /* PostgreSQL 15+ */

/* catalog/pg_control.h */
#define XLOG_SWITCH        0x40
#define XLOG_RESTORE_POINT 0x70

/* access/xact.h */
#define XLOG_XACT_OPMASK          0x70
#define XLOG_XACT_COMMIT          0x00
#define XLOG_XACT_ABORT           0x20
#define XLOG_XACT_COMMIT_PREPARED 0x30
#define XLOG_XACT_ABORT_PREPARED  0x40

/* datatype/timestamp.h: (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY */
#define PG_EPOCH_UNIX_US (INT64_C(946684800) * 1000000)

#define MAXALIGN8(x) (((x) + 7U) & ~7U)

/* What the scan cares about in a record. */
typedef enum RecKind
{
	REC_OTHER,
	REC_COMMIT,
	REC_ABORT,
	REC_RESTORE_POINT,
	REC_SWITCH
} RecKind;

typedef struct Scan
{
	const unsigned char *d;
	uint32_t             segsz;
	uint32_t             blcksz;
	WalLsn               seg_start;
	uint16_t             magic;
	int                  pg_major;
	uint32_t             next_page; /* first page offset not checked yet */
	uint32_t             page_tli;  /* xlp_tli of the last checked page */
	WalSummary          *s;
	WalScanRecordHook    hook; /* may be NULL */
	void                *hook_arg;
	const unsigned char *next; /* the following segment's image, or NULL */
	size_t               next_len;
} Scan;

/* Where a record lies: it starts at pos with on_page bytes on its first page. */
typedef struct RecLoc
{
	uint32_t pos;
	uint32_t on_page;
	uint32_t tot_len;
} RecLoc;

static uint16_t
rd16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t
rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t
rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	/* overlapping memcmp: every byte equals its successor and the first is 0 */
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int64_t
walscan_pg_time_to_unix_us(int64_t pg_time)
{
	if (pg_time > INT64_MAX - PG_EPOCH_UNIX_US)
		return INT64_MAX;
	return pg_time + PG_EPOCH_UNIX_US;
}

int64_t
walscan_unix_us_to_pg_time(int64_t unix_us)
{
	if (unix_us < INT64_MIN + PG_EPOCH_UNIX_US)
		return INT64_MIN;
	return unix_us - PG_EPOCH_UNIX_US;
}

#define LSN_ARGS(lsn) (uint32_t)((lsn) >> 32), (uint32_t) (lsn)

/*
 * Check the header of the page at offset off, as XLogReaderValidatePageHeader
 * does for a page read in sequence.  Pages are checked once, in order.
 */
static bool
page_check(Scan *sc, uint32_t off, char *why, size_t whylen)
{
	const unsigned char *p = sc->d + off;
	uint16_t             info = rd16(p + PH_INFO);
	uint32_t             tli = rd32(p + PH_TLI);
	WalLsn               lsn = sc->seg_start + off;

	if (off < sc->next_page)
		return true;
	if (rd16(p + PH_MAGIC) != sc->magic)
	{
		snprintf(why, whylen, "invalid magic number %04X at %X/%X", rd16(p + PH_MAGIC),
		         LSN_ARGS(lsn));
		return false;
	}
	if ((info & ~XLP_ALL_FLAGS) != 0 || (info & XLP_LONG_HEADER) != 0)
	{
		snprintf(why, whylen, "invalid info bits %04X at %X/%X", info, LSN_ARGS(lsn));
		return false;
	}
	if (rd64(p + PH_PAGEADDR) != lsn)
	{
		snprintf(why, whylen, "unexpected pageaddr %X/%X at %X/%X", LSN_ARGS(rd64(p + PH_PAGEADDR)),
		         LSN_ARGS(lsn));
		return false;
	}
	if (tli < sc->page_tli)
	{
		snprintf(why, whylen, "out-of-sequence timeline ID %u (after %u) at %X/%X", tli,
		         sc->page_tli, LSN_ARGS(lsn));
		return false;
	}
	sc->page_tli = tli;
	sc->next_page = off + sc->blcksz;
	return true;
}

/*
 * Check the first avail bytes (8, 16 or 24) of a record header at lsn, as
 * ValidXLogRecordHeader does.  prev is the previous record's start, or
 * WAL_INVALID_LSN for the first record of the segment, whose predecessor
 * began in an earlier segment.  (xl_tot_len is checked by the caller.)
 */
static bool
header_ok(const Scan *sc, const unsigned char *h, uint32_t avail, WalLsn lsn, WalLsn prev,
          char *why, size_t whylen)
{
	if (avail >= SIZE_OF_XLOG_RECORD)
	{
		uint8_t rmid = h[XL_RMID];

		if (rmid > RM_MAX_BUILTIN_ID && (sc->pg_major < 15 || rmid < RM_MIN_CUSTOM_ID))
		{
			snprintf(why, whylen, "invalid resource manager ID %u at %X/%X", rmid, LSN_ARGS(lsn));
			return false;
		}
	}
	if (avail >= XL_PREV + 8)
	{
		WalLsn xl_prev = rd64(h + XL_PREV);

		if (prev != WAL_INVALID_LSN ? xl_prev != prev : xl_prev >= sc->seg_start)
		{
			snprintf(why, whylen, "record with incorrect prev-link %X/%X at %X/%X",
			         LSN_ARGS(xl_prev), LSN_ARGS(lsn));
			return false;
		}
	}
	return true;
}

/*
 * Physical offset of byte `logical` of a record.  Continuation pages of a
 * record that starts in this segment are never page 0, so they all have a
 * short header.  May be >= segsz for a record continuing past the segment.
 */
static uint64_t
rec_phys(const Scan *sc, const RecLoc *r, uint32_t logical)
{
	uint32_t per = sc->blcksz - SIZE_OF_SHORT_PHD;
	uint32_t l;

	if (logical < r->on_page)
		return (uint64_t) r->pos + logical;
	l = logical - r->on_page;
	return (uint64_t) r->pos + r->on_page + (uint64_t) (l / per) * sc->blcksz + SIZE_OF_SHORT_PHD +
	       l % per;
}

/* Copy n bytes of a record; false if some are beyond this segment. */
static bool
rec_bytes(const Scan *sc, const RecLoc *r, uint32_t logical, uint32_t n, unsigned char *out)
{
	uint32_t i;

	for (i = 0; i < n; i++)
	{
		uint64_t phys = rec_phys(sc, r, logical + i);

		if (phys >= sc->segsz)
			return false;
		out[i] = sc->d[phys];
	}
	return true;
}

/* Results of reading inside a record. */
#define READ_OK          1
#define READ_MALFORMED   0
#define READ_UNAVAILABLE (-1) /* the bytes are in the next segment */

/* The record at r as a hook sees it; here_only: never read the next segment. */
static void
record_view(const Scan *sc, const RecLoc *r, bool here_only, WalScanRecord *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->tot_len = r->tot_len;
	rec->pg_major = sc->pg_major;
	rec->head = sc->d + r->pos;
	rec->head_len = r->tot_len < r->on_page ? r->tot_len : r->on_page;
	if (rec->head_len > sc->segsz - r->pos)
		rec->head_len = sc->segsz - r->pos;
	rec->scan_ = sc;
	rec->pos_ = r->pos;
	rec->on_page_ = r->on_page;
	rec->here_only_ = here_only;
}

/* take()'s other case: bytes beyond the record's first page. */
static int
take_slow(const WalScanRecord *rec, uint32_t *off, uint32_t *remaining, uint32_t n,
          unsigned char *buf, const unsigned char **b)
{
	int rc;

	if (*remaining < n)
		return READ_MALFORMED;
	if ((rc = walscan_record_bytes(rec, *off, n, buf)) != READ_OK)
		return rc;
	*b = buf;
	*off += n;
	*remaining -= n;
	return READ_OK;
}

/*
 * Consume n header bytes of the record at *off (bounded by *remaining); *b
 * points to them: into the record's first page, where they nearly always
 * are, or else into buf, where they are copied.  Called a few times per
 * block reference, so inline and without a copy in the common case.
 */
static inline int
take(const WalScanRecord *rec, uint32_t *off, uint32_t *remaining, uint32_t n, unsigned char *buf,
     const unsigned char **b)
{
	if (*remaining >= n && *off + n <= rec->head_len)
	{
		*b = rec->head + *off;
		*off += n;
		*remaining -= n;
		return READ_OK;
	}
	return take_slow(rec, off, remaining, n, buf, b);
}

int
walscan_record_blocks(const WalScanRecord *rec, WalScanBlocks *br)
{
	uint32_t             off = SIZE_OF_XLOG_RECORD;
	uint32_t             remaining = rec->tot_len - SIZE_OF_XLOG_RECORD;
	uint64_t             datatotal = 0;
	uint32_t             mlen = 0;
	int                  max_block_id = -1;
	bool                 have_rel = false;
	WalRelFork           rel = {0, 0, 0, 0};
	unsigned char        buf[SIZE_OF_RELFILENODE];
	const unsigned char *b;
	int                  rc;

	br->n = 0;
	if (rec->tot_len < SIZE_OF_XLOG_RECORD)
		return READ_MALFORMED;
	while (remaining > datatotal)
	{
		uint8_t id;

		if ((rc = take(rec, &off, &remaining, 1, buf, &b)) != READ_OK)
			return rc;
		id = b[0];
		if (id == XLR_BLOCK_ID_DATA_SHORT)
		{
			if ((rc = take(rec, &off, &remaining, 1, buf, &b)) != READ_OK)
				return rc;
			mlen = b[0];
			datatotal += mlen;
			break; /* by convention, the main data fragment is always last */
		}
		else if (id == XLR_BLOCK_ID_DATA_LONG)
		{
			if ((rc = take(rec, &off, &remaining, 4, buf, &b)) != READ_OK)
				return rc;
			mlen = rd32(b);
			datatotal += mlen;
			break;
		}
		else if (id == XLR_BLOCK_ID_ORIGIN)
		{
			if ((rc = take(rec, &off, &remaining, 2, buf, &b)) != READ_OK)
				return rc;
		}
		else if (id == XLR_BLOCK_ID_TOPLEVEL_XID)
		{
			if ((rc = take(rec, &off, &remaining, 4, buf, &b)) != READ_OK)
				return rc;
		}
		else if (id <= XLR_MAX_BLOCK_ID)
		{
			uint8_t  fork_flags;
			uint16_t data_len;

			if ((int) id <= max_block_id)
				return READ_MALFORMED;
			max_block_id = id;
			if ((rc = take(rec, &off, &remaining, 3, buf, &b)) != READ_OK)
				return rc;
			fork_flags = b[0];
			data_len = rd16(b + 1);
			if (((fork_flags & BKPBLOCK_HAS_DATA) != 0) != (data_len != 0))
				return READ_MALFORMED;
			if ((fork_flags & BKPBLOCK_FORK_MASK) > MAX_FORKNUM)
				return READ_MALFORMED;
			datatotal += data_len;
			if (fork_flags & BKPBLOCK_HAS_IMAGE)
			{
				uint8_t bimg_info;
				bool    compressed;

				/* bimg_len, hole_offset, bimg_info */
				if ((rc = take(rec, &off, &remaining, 5, buf, &b)) != READ_OK)
					return rc;
				bimg_info = b[4];
				datatotal += rd16(b);
				compressed = (bimg_info & (rec->pg_major >= 15 ? BKPIMAGE_COMPRESSED_15
				                                               : BKPIMAGE_IS_COMPRESSED_14)) != 0;
				/* hole_length */
				if (compressed && (bimg_info & BKPIMAGE_HAS_HOLE) &&
				    (rc = take(rec, &off, &remaining, 2, buf, &b)) != READ_OK)
					return rc;
			}
			if (!(fork_flags & BKPBLOCK_SAME_REL))
			{
				if ((rc = take(rec, &off, &remaining, SIZE_OF_RELFILENODE, buf, &b)) != READ_OK)
					return rc;
				rel.spc = rd32(b);
				rel.db = rd32(b + 4);
				rel.rel = rd32(b + 8);
				have_rel = true;
			}
			else if (!have_rel)
				return READ_MALFORMED;
			/* BlockNumber */
			if ((rc = take(rec, &off, &remaining, 4, buf, &b)) != READ_OK)
				return rc;
			br->rf[br->n] = rel;
			br->rf[br->n].fork = fork_flags & BKPBLOCK_FORK_MASK;
			br->blk[br->n] = rd32(b);
			br->n++;
		}
		else
			return READ_MALFORMED;
	}
	if (remaining != datatotal)
		return READ_MALFORMED;
	br->main_off = rec->tot_len - mlen;
	br->main_len = mlen;
	return READ_OK;
}

/*
 * The timestamp at the start of a commit/abort (xl_xact_commit.xact_time,
 * xl_xact_abort.xact_time) or restore point (xl_restore_point.rp_time)
 * record's main data, and for a restore point its name if name != NULL.
 */
static int
record_time(const Scan *sc, const RecLoc *r, int64_t *pg_time, char *name)
{
	WalScanRecord rec;
	WalScanBlocks br;
	uint32_t      moff;
	uint32_t      mlen;
	unsigned char b[8];
	int           rc;

	/* the summary never looks at the next segment */
	record_view(sc, r, true, &rec);
	if ((rc = walscan_record_blocks(&rec, &br)) != READ_OK)
		return rc;
	moff = br.main_off;
	mlen = br.main_len;
	if (mlen < sizeof(b))
		return READ_MALFORMED;
	if (!rec_bytes(sc, r, moff, sizeof(b), b))
		return READ_UNAVAILABLE;
	*pg_time = (int64_t) rd64(b);
	if (name)
	{
		uint32_t n = mlen - 8;

		if (n > WALSCAN_RP_NAME_LEN - 1)
			n = WALSCAN_RP_NAME_LEN - 1;
		memset(name, 0, WALSCAN_RP_NAME_LEN);
		if (!rec_bytes(sc, r, moff + 8, n, (unsigned char *) name))
			return READ_UNAVAILABLE;
		/* bytes after the terminator are not part of the name */
		n = (uint32_t) strlen(name);
		memset(name + n, 0, WALSCAN_RP_NAME_LEN - n);
	}
	return READ_OK;
}

static RecKind
rec_kind(uint8_t rmid, uint8_t info)
{
	if (rmid == RM_XACT_ID)
	{
		switch (info & XLOG_XACT_OPMASK)
		{
			case XLOG_XACT_COMMIT:
			case XLOG_XACT_COMMIT_PREPARED:
				return REC_COMMIT;
			case XLOG_XACT_ABORT:
			case XLOG_XACT_ABORT_PREPARED:
				return REC_ABORT;
			default:
				return REC_OTHER;
		}
	}
	if (rmid == RM_XLOG_ID)
	{
		if ((info & ~XLR_INFO_MASK) == XLOG_RESTORE_POINT)
			return REC_RESTORE_POINT;
		if ((info & ~XLR_INFO_MASK) == XLOG_SWITCH)
			return REC_SWITCH;
	}
	return REC_OTHER;
}

/*
 * Valid WAL ends inside the segment; valid_end is the offset just past the
 * last valid byte.
 */
static void
end_inside(Scan *sc, uint32_t valid_end, const char *why)
{
	WalSummary *s = sc->s;
	uint32_t    off = valid_end;
	bool        clean = true;

	s->end_kind = WALSCAN_END_INSIDE;
	s->end_lsn = sc->seg_start + valid_end;
	snprintf(s->end_reason, sizeof(s->end_reason), "%s", why);
	s->cont = WALSCAN_CONT_NONE;
	s->cont_lsn = WAL_INVALID_LSN;
	s->cont_time_valid = false;
	s->cont_time = 0;

	/*
	 * Unused means zeros, except that a page header of this segment written
	 * ahead of any record on its page is fine too.
	 */
	while (clean && off < sc->segsz)
	{
		uint32_t page_end = (off / sc->blcksz + 1) * sc->blcksz;

		if (off % sc->blcksz == 0)
		{
			const unsigned char *p = sc->d + off;

			if (!all_zero(p, SIZE_OF_SHORT_PHD) &&
			    (rd16(p + PH_MAGIC) != sc->magic ||
			     (rd16(p + PH_INFO) & (XLP_FIRST_IS_CONTRECORD | XLP_LONG_HEADER)) != 0 ||
			     rd64(p + PH_PAGEADDR) != sc->seg_start + off || rd32(p + PH_REM_LEN) != 0))
				clean = false;
			off += SIZE_OF_SHORT_PHD;
		}
		if (clean && !all_zero(sc->d + off, page_end - off))
			clean = false;
		off = page_end;
	}
	s->tail_zero = clean;
}

static void
add_xact(WalSummary *s, RecKind kind, WalLsn lsn, int64_t t)
{
	if (s->ncommits + s->naborts == 0)
	{
		s->xact_first_time = t;
		s->xact_min_time = t;
		s->xact_max_time = t;
	}
	if (t < s->xact_min_time)
		s->xact_min_time = t;
	if (t > s->xact_max_time)
		s->xact_max_time = t;
	s->xact_last_time = t;
	s->xact_last_lsn = lsn;
	if (kind == REC_COMMIT)
		s->ncommits++;
	else
		s->naborts++;
}

/*
 * Account for a complete record.  Returns false if it is malformed (its
 * block headers do not add up), which ends the valid WAL before it.
 */
static bool
record_complete(Scan *sc, const RecLoc *r, WalLsn lsn, RecKind kind)
{
	WalSummary *s = sc->s;
	int64_t     pg_time = 0;
	char        name[WALSCAN_RP_NAME_LEN];

	if (kind == REC_COMMIT || kind == REC_ABORT || kind == REC_RESTORE_POINT)
	{
		/* the whole record is in the segment: READ_UNAVAILABLE cannot happen */
		if (record_time(sc, r, &pg_time, kind == REC_RESTORE_POINT ? name : NULL) != READ_OK)
			return false;
	}

	s->nrecords++;
	if (s->first_lsn == WAL_INVALID_LSN)
		s->first_lsn = lsn;
	s->last_lsn = lsn;

	if (kind == REC_COMMIT || kind == REC_ABORT)
		add_xact(s, kind, lsn, walscan_pg_time_to_unix_us(pg_time));
	else if (kind == REC_RESTORE_POINT)
	{
		if (s->nrestore_points < WALSCAN_MAX_RESTORE_POINTS)
		{
			WalRestorePoint *rp = &s->restore_points[s->nrestore_points++];

			rp->lsn = lsn;
			rp->time_us = walscan_pg_time_to_unix_us(pg_time);
			memcpy(rp->name, name, sizeof(rp->name));
		}
		else
			s->rp_dropped++;
	}
	return true;
}

/*
 * The record at r continues into the next segment.  hdr is its full header,
 * or NULL if the header itself is cut by the segment end.  Returns false if
 * what is here is malformed.
 */
static bool
record_continues(Scan *sc, const RecLoc *r, WalLsn lsn, const unsigned char *hdr)
{
	WalSummary *s = sc->s;
	RecKind     kind = hdr ? rec_kind(hdr[XL_RMID], hdr[XL_INFO]) : REC_OTHER;
	int64_t     pg_time;
	int         rc = READ_UNAVAILABLE;

	if (kind == REC_COMMIT || kind == REC_ABORT || kind == REC_RESTORE_POINT)
	{
		rc = record_time(sc, r, &pg_time, NULL);
		if (rc == READ_MALFORMED)
			return false;
	}
	s->end_kind = WALSCAN_END_SEGMENT;
	s->end_lsn = sc->seg_start + sc->segsz;
	s->cont_lsn = lsn;
	if (hdr == NULL)
		s->cont = WALSCAN_CONT_UNKNOWN;
	else if (kind == REC_COMMIT)
		s->cont = WALSCAN_CONT_COMMIT;
	else if (kind == REC_ABORT)
		s->cont = WALSCAN_CONT_ABORT;
	else if (kind == REC_RESTORE_POINT)
		s->cont = WALSCAN_CONT_RESTORE_POINT;
	else
		s->cont = WALSCAN_CONT_OTHER;
	if (rc == READ_OK)
	{
		s->cont_time_valid = true;
		s->cont_time = walscan_pg_time_to_unix_us(pg_time);
	}
	return true;
}

/* Hand an accepted record to the hook, if any. */
static void
call_hook(const Scan *sc, const RecLoc *r, WalLsn lsn, const unsigned char *hdr, bool complete)
{
	WalScanRecord rec;

	if (sc->hook == NULL)
		return;
	record_view(sc, r, false, &rec);
	rec.lsn = lsn;
	rec.complete = complete;
	rec.have_header = hdr != NULL;
	if (hdr)
	{
		rec.rmid = hdr[XL_RMID];
		rec.info = hdr[XL_INFO];
	}
	sc->hook(sc->hook_arg, &rec);
}

/*
 * Where byte l (counted from the start of the part in the next segment) of
 * a record continuing into the next segment lies in that image, and how
 * many bytes of the record follow it on its page; false if the page is not
 * there or does not continue the record.  rem is the length of the record
 * still to come at the start of the next segment (page 0's xlp_rem_len).
 */
static bool
next_phys(const Scan *sc, uint32_t l, uint32_t rem, uint64_t *phys, uint32_t *chunk)
{
	uint32_t             per = sc->blcksz - SIZE_OF_SHORT_PHD;
	uint32_t             first = sc->blcksz - SIZE_OF_LONG_PHD;
	uint64_t             page;
	const unsigned char *p;

	if (l < first)
	{
		page = 0;
		*phys = SIZE_OF_LONG_PHD + l;
		*chunk = first - l;
	}
	else
	{
		page = 1 + (l - first) / per;
		*phys = page * sc->blcksz + SIZE_OF_SHORT_PHD + (l - first) % per;
		*chunk = per - (l - first) % per;
	}
	if (sc->next == NULL || page * sc->blcksz + sc->blcksz > sc->next_len)
		return false;
	p = sc->next + page * sc->blcksz;
	/* the page continues this record */
	return rd16(p + PH_MAGIC) == sc->magic &&
	       rd64(p + PH_PAGEADDR) == sc->seg_start + sc->segsz + page * sc->blcksz &&
	       (rd16(p + PH_INFO) & XLP_FIRST_IS_CONTRECORD) != 0 &&
	       (uint64_t) rd32(p + PH_REM_LEN) + (page == 0 ? 0 : first + (page - 1) * per) == rem;
}

int
walscan_record_bytes(const WalScanRecord *rec, uint32_t off, uint32_t n, void *out)
{
	const Scan    *sc = rec->scan_;
	unsigned char *o = out;
	uint32_t       per = sc->blcksz - SIZE_OF_SHORT_PHD;
	uint32_t       first_end = rec->pos_ - rec->pos_ % sc->blcksz + sc->blcksz;
	uint32_t       here; /* bytes of the record in this segment */

	if (off > rec->tot_len || n > rec->tot_len - off)
		return READ_MALFORMED;
	here = first_end >= sc->segsz ? rec->on_page_
	                              : rec->on_page_ + (sc->segsz - first_end) / sc->blcksz * per;
	if (here > rec->tot_len)
		here = rec->tot_len;
	/* copy page by page */
	while (n > 0)
	{
		uint64_t             phys;
		uint32_t             chunk;
		const unsigned char *from;

		if (off >= here)
		{
			if (rec->here_only_ || !next_phys(sc, off - here, rec->tot_len - here, &phys, &chunk))
				return READ_UNAVAILABLE;
			from = sc->next;
		}
		else if (off < rec->on_page_)
		{
			phys = (uint64_t) rec->pos_ + off;
			chunk = rec->on_page_ - off;
			from = sc->d;
		}
		else
		{
			uint32_t l = off - rec->on_page_;

			phys = (uint64_t) rec->pos_ + rec->on_page_ + (uint64_t) (l / per) * sc->blcksz +
			       SIZE_OF_SHORT_PHD + l % per;
			chunk = per - l % per;
			from = sc->d;
		}
		if (chunk > n)
			chunk = n;
		memcpy(o, from + phys, chunk);
		o += chunk;
		off += chunk;
		n -= chunk;
	}
	return READ_OK;
}

/*
 * Walk the records from offset pos (a record start or a page start) to the
 * end of valid WAL.  valid_end is the offset just past the valid data
 * before pos; prev the start of the previous record if it is in this
 * segment.
 */
static void
scan_records(Scan *sc, uint32_t pos, uint32_t valid_end, WalLsn prev)
{
	WalSummary    *s = sc->s;
	const uint32_t blcksz = sc->blcksz;
	char           why[WALSCAN_REASON_LEN];

	for (;;)
	{
		RecLoc        r;
		WalLsn        lsn;
		uint32_t      in_page;
		unsigned char hdr[SIZE_OF_XLOG_RECORD];
		bool          have_hdr = false;
		bool          complete = false;
		bool          restart = false;
		uint32_t      rec_end = 0;
		RecKind       kind;

		if (pos >= sc->segsz)
		{
			s->end_kind = WALSCAN_END_SEGMENT;
			s->end_lsn = sc->seg_start + sc->segsz;
			return;
		}
		in_page = pos & (blcksz - 1);
		if (in_page == 0)
		{
			if (!page_check(sc, pos, why, sizeof(why)))
			{
				end_inside(sc, valid_end, why);
				return;
			}
			if (rd16(sc->d + pos + PH_INFO) & XLP_FIRST_IS_CONTRECORD)
			{
				snprintf(why, sizeof(why), "contrecord is requested by %X/%X",
				         LSN_ARGS(sc->seg_start + pos + SIZE_OF_SHORT_PHD));
				end_inside(sc, valid_end, why);
				return;
			}
			pos += SIZE_OF_SHORT_PHD;
			in_page = SIZE_OF_SHORT_PHD;
		}

		/* xl_tot_len is always on the record's first page (MAXALIGN) */
		lsn = sc->seg_start + pos;
		r.pos = pos;
		r.on_page = blcksz - in_page;
		r.tot_len = rd32(sc->d + pos + XL_TOT_LEN);
		if (r.tot_len < SIZE_OF_XLOG_RECORD)
		{
			snprintf(why, sizeof(why),
			         "invalid record length at %X/%X: expected at least %u, got %u", LSN_ARGS(lsn),
			         SIZE_OF_XLOG_RECORD, r.tot_len);
			end_inside(sc, valid_end, why);
			return;
		}
		if (r.tot_len > MAX_RECORD_LEN)
		{
			snprintf(why, sizeof(why), "record length %u at %X/%X too long", r.tot_len,
			         LSN_ARGS(lsn));
			end_inside(sc, valid_end, why);
			return;
		}
		if (r.on_page >= SIZE_OF_XLOG_RECORD)
		{
			memcpy(hdr, sc->d + pos, SIZE_OF_XLOG_RECORD);
			have_hdr = true;
			if (!header_ok(sc, hdr, SIZE_OF_XLOG_RECORD, lsn, prev, why, sizeof(why)))
			{
				end_inside(sc, valid_end, why);
				return;
			}
		}

		if (r.tot_len <= r.on_page)
		{
			complete = true;
			rec_end = pos + r.tot_len;
		}
		else
		{
			/* follow the record over the following pages (xlogreader's reassembly) */
			uint32_t got = r.on_page;
			uint32_t page = pos - in_page + blcksz;

			while (page < sc->segsz)
			{
				const unsigned char *ph;
				uint32_t             rem;
				uint32_t             chunk;

				if (!page_check(sc, page, why, sizeof(why)))
				{
					end_inside(sc, valid_end, why);
					return;
				}
				ph = sc->d + page;
				if (rd16(ph + PH_INFO) & XLP_FIRST_IS_OVERWRITE_CONTRECORD)
				{
					/* the record was abandoned; new WAL starts on this page */
					s->noverwritten++;
					pos = page;
					restart = true;
					break;
				}
				if (!(rd16(ph + PH_INFO) & XLP_FIRST_IS_CONTRECORD))
				{
					snprintf(why, sizeof(why), "there is no contrecord flag at %X/%X",
					         LSN_ARGS(sc->seg_start + page));
					end_inside(sc, valid_end, why);
					return;
				}
				rem = rd32(ph + PH_REM_LEN);
				if (rem == 0 || rem != r.tot_len - got)
				{
					snprintf(why, sizeof(why),
					         "invalid contrecord length %u (expected %u) at %X/%X", rem,
					         r.tot_len - got, LSN_ARGS(sc->seg_start + page));
					end_inside(sc, valid_end, why);
					return;
				}
				if (!have_hdr)
				{
					/* the header was split across the page boundary */
					memcpy(hdr, sc->d + pos, r.on_page);
					memcpy(hdr + r.on_page, ph + SIZE_OF_SHORT_PHD,
					       SIZE_OF_XLOG_RECORD - r.on_page);
					have_hdr = true;
					if (!header_ok(sc, hdr, SIZE_OF_XLOG_RECORD, lsn, prev, why, sizeof(why)))
					{
						end_inside(sc, valid_end, why);
						return;
					}
				}
				chunk = blcksz - SIZE_OF_SHORT_PHD;
				if (rem <= chunk)
				{
					complete = true;
					rec_end = page + SIZE_OF_SHORT_PHD + rem;
					break;
				}
				got += chunk;
				page += blcksz;
			}
		}
		if (restart)
			continue;

		if (!complete)
		{
			/* continues into the next segment; check what header we have */
			if (!have_hdr && !header_ok(sc, sc->d + pos, r.on_page, lsn, prev, why, sizeof(why)))
			{
				end_inside(sc, valid_end, why);
				return;
			}
			if (!record_continues(sc, &r, lsn, have_hdr ? hdr : NULL))
			{
				snprintf(why, sizeof(why), "invalid block references in record at %X/%X",
				         LSN_ARGS(lsn));
				end_inside(sc, valid_end, why);
			}
			else
			{
				s->last_tli = sc->page_tli;
				call_hook(sc, &r, lsn, have_hdr ? hdr : NULL, false);
			}
			return;
		}

		kind = rec_kind(hdr[XL_RMID], hdr[XL_INFO]);
		if (!record_complete(sc, &r, lsn, kind))
		{
			snprintf(why, sizeof(why), "invalid block references in record at %X/%X",
			         LSN_ARGS(lsn));
			end_inside(sc, valid_end, why);
			return;
		}
		call_hook(sc, &r, lsn, hdr, true);
		valid_end = rec_end;
		prev = lsn;
		s->last_tli = sc->page_tli;
		if (kind == REC_SWITCH)
		{
			/* xlogreader: "pretend it extends to end of segment" */
			s->end_kind = WALSCAN_END_SWITCH;
			s->switch_lsn = lsn;
			s->end_lsn = sc->seg_start + sc->segsz;
			return;
		}
		pos = MAXALIGN8(rec_end);
	}
}

/*
 * Skip the tail of a record begun in an earlier segment (page 0 has
 * XLP_FIRST_IS_CONTRECORD), as XLogFindNextRecord does, checking each
 * continuation page.  Returns false if the scan is over (the continuation
 * runs through the whole segment, or a page is invalid).
 */
static bool
skip_continuation(Scan *sc, uint32_t *pos, uint32_t *valid_end)
{
	WalSummary *s = sc->s;
	uint32_t    rem = rd32(sc->d + PH_REM_LEN);
	uint32_t    page = 0;
	uint32_t    hdrsz = SIZE_OF_LONG_PHD;
	char        why[WALSCAN_REASON_LEN];

	s->cont_in_len = rem;
	if (rem == 0)
	{
		snprintf(why, sizeof(why), "invalid contrecord length 0 at %X/%X", LSN_ARGS(sc->seg_start));
		end_inside(sc, SIZE_OF_LONG_PHD, why);
		return false;
	}
	for (;;)
	{
		uint32_t avail = sc->blcksz - hdrsz;
		uint16_t info;

		if (rem <= avail)
		{
			*valid_end = page + hdrsz + rem;
			*pos = page + hdrsz + MAXALIGN8(rem);
			return true;
		}
		rem -= avail;
		page += sc->blcksz;
		if (page >= sc->segsz)
		{
			/* one record covers the whole segment and goes on */
			s->end_kind = WALSCAN_END_SEGMENT;
			s->end_lsn = sc->seg_start + sc->segsz;
			s->cont = WALSCAN_CONT_UNKNOWN;
			s->cont_lsn = WAL_INVALID_LSN;
			s->last_tli = sc->page_tli;
			return false;
		}
		if (!page_check(sc, page, why, sizeof(why)))
		{
			end_inside(sc, page, why);
			return false;
		}
		info = rd16(sc->d + page + PH_INFO);
		if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)
		{
			s->noverwritten++;
			*valid_end = page;
			*pos = page;
			return true;
		}
		if (!(info & XLP_FIRST_IS_CONTRECORD) || rd32(sc->d + page + PH_REM_LEN) != rem)
		{
			snprintf(why, sizeof(why),
			         "invalid continuation of the record from the previous segment at %X/%X",
			         LSN_ARGS(sc->seg_start + page));
			end_inside(sc, page, why);
			return false;
		}
		hdrsz = SIZE_OF_SHORT_PHD;
	}
}

PgbkStatus
walscan_segment(const void *data, size_t len, uint32_t wal_segsz, WalSummary *out, PgbkError *err)
{
	return walscan_segment_hooked(data, len, wal_segsz, NULL, 0, out, NULL, NULL, err);
}

/*
 * The checks of a segment image's first page (its long header) that every
 * scan makes before reading records; *major is the page magic's version.
 */
static PgbkStatus
check_first_page(const unsigned char *d, size_t len, uint32_t wal_segsz, int *major_out,
                 PgbkError *err)
{
	uint16_t magic;
	uint16_t info;
	uint32_t blcksz;
	WalLsn   pageaddr;
	int      major = 0;
	size_t   i;

	if (!walname_segsz_is_valid(wal_segsz))
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "invalid WAL segment size %u: must be a power of two from 1 MB to 1 GB",
		                  wal_segsz);
	if (len != wal_segsz)
		return pgbk_error(err, PGBK_ERR_USAGE, "WAL segment image is %zu bytes, expected %u", len,
		                  wal_segsz);

	magic = rd16(d + PH_MAGIC);
	for (i = 0; i < sizeof(page_magics) / sizeof(page_magics[0]); i++)
	{
		if (page_magics[i].magic == magic)
			major = page_magics[i].major;
	}
	if (major == 0)
	{
		if (all_zero(d, SIZE_OF_LONG_PHD))
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "segment does not begin with a WAL page header (its first bytes are "
			                  "zero)");
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "unsupported WAL page magic 0x%04X: PostgreSQL 13 to 17 use 0xD106, "
		                  "0xD10D, 0xD110, 0xD113 and 0xD116",
		                  magic);
	}
	info = rd16(d + PH_INFO);
	if (!(info & XLP_LONG_HEADER) || (info & ~XLP_ALL_FLAGS) != 0)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "invalid info bits %04X in the first page header of the segment", info);
	if (rd32(d + PH_SEG_SIZE) != wal_segsz)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "WAL segment size in the page header (%u) does not match the expected %u",
		                  rd32(d + PH_SEG_SIZE), wal_segsz);
	blcksz = rd32(d + PH_XLOG_BLCKSZ);
	if (blcksz < 1024 || blcksz > 65536 || (blcksz & (blcksz - 1)) != 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "invalid WAL page size %u in the page header",
		                  blcksz);
	pageaddr = rd64(d + PH_PAGEADDR);
	if (pageaddr % wal_segsz != 0)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "first page address %X/%X is not at a segment boundary",
		                  LSN_ARGS(pageaddr));
	if (rd32(d + PH_TLI) == 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "invalid timeline ID 0 in the first page header");

	*major_out = major;
	return PGBK_OK;
}

PgbkStatus
walscan_identify(const void *data, size_t len, uint32_t wal_segsz, WalSegNo *segno, uint64_t *sysid,
                 PgbkError *err)
{
	const unsigned char *d = data;
	int                  major;
	PgbkStatus           st;

	if ((st = check_first_page(d, len, wal_segsz, &major, err)) != PGBK_OK)
		return st;
	*segno = rd64(d + PH_PAGEADDR) / wal_segsz;
	*sysid = rd64(d + PH_SYSID);
	return PGBK_OK;
}

PgbkStatus
walscan_segment_hooked(const void *data, size_t len, uint32_t wal_segsz, const void *next,
                       size_t next_len, WalSummary *out, WalScanRecordHook hook, void *arg,
                       PgbkError *err)
{
	const unsigned char *d = data;
	Scan                 sc;
	uint16_t             magic;
	uint16_t             info;
	uint32_t             blcksz;
	WalLsn               pageaddr;
	int                  major = 0;
	PgbkStatus           st;
	uint32_t             pos = SIZE_OF_LONG_PHD;
	uint32_t             valid_end = SIZE_OF_LONG_PHD;

	memset(out, 0, sizeof(*out));
	if ((st = check_first_page(d, len, wal_segsz, &major, err)) != PGBK_OK)
		return st;
	magic = rd16(d + PH_MAGIC);
	info = rd16(d + PH_INFO);
	blcksz = rd32(d + PH_XLOG_BLCKSZ);
	pageaddr = rd64(d + PH_PAGEADDR);

	out->page_magic = magic;
	out->pg_major = major;
	out->tli = rd32(d + PH_TLI);
	out->last_tli = out->tli;
	out->sysid = rd64(d + PH_SYSID);
	out->seg_size = wal_segsz;
	out->page_size = blcksz;
	out->segno = pageaddr / wal_segsz;

	sc.d = d;
	sc.segsz = wal_segsz;
	sc.blcksz = blcksz;
	sc.seg_start = pageaddr;
	sc.magic = magic;
	sc.pg_major = major;
	sc.next_page = blcksz;
	sc.page_tli = out->tli;
	sc.s = out;
	sc.hook = hook;
	sc.hook_arg = arg;
	sc.next = next;
	sc.next_len = next ? next_len : 0;

	if (info & XLP_FIRST_IS_CONTRECORD)
	{
		if (!skip_continuation(&sc, &pos, &valid_end))
			return PGBK_OK;
	}
	else if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)
		out->noverwritten++;

	scan_records(&sc, pos, valid_end, WAL_INVALID_LSN);
	return PGBK_OK;
}

WalScanStop
walscan_time_target_stop(const WalSummary *s, int64_t target_us, bool inclusive)
{
	if (s->ncommits + s->naborts > 0 &&
	    (inclusive ? s->xact_max_time > target_us : s->xact_max_time >= target_us))
		return WALSCAN_STOP_HERE;
	if (s->end_kind != WALSCAN_END_SEGMENT || s->cont_lsn == WAL_INVALID_LSN)
		return WALSCAN_STOP_NO;
	switch (s->cont)
	{
		case WALSCAN_CONT_COMMIT:
		case WALSCAN_CONT_ABORT:
			if (!s->cont_time_valid)
				return WALSCAN_STOP_MAYBE_NEXT;
			if (inclusive ? s->cont_time > target_us : s->cont_time >= target_us)
				return WALSCAN_STOP_NEXT;
			return WALSCAN_STOP_NO;
		case WALSCAN_CONT_UNKNOWN:
			return WALSCAN_STOP_MAYBE_NEXT;
		default:
			return WALSCAN_STOP_NO;
	}
}

/* ------------------------------------------------------------------------
 * Attributes: "wal.<name>=<value>\n" lines.
 * ------------------------------------------------------------------------
 */

#define ATTRS_VERSION 1

static const char *const end_names[] = {"segment", "switch", "inside"};
static const char *const cont_names[] = {"none",  "other",         "commit",
                                         "abort", "restore_point", "unknown"};

const char *
walscan_end_name(WalScanEnd e)
{
	return (unsigned) e < sizeof(end_names) / sizeof(end_names[0]) ? end_names[e] : "?";
}

const char *
walscan_cont_name(WalScanCont c)
{
	return (unsigned) c < sizeof(cont_names) / sizeof(cont_names[0]) ? cont_names[c] : "?";
}

/*
 * Percent-encode bytes that could break a "name=value" line: controls,
 * non-ASCII, '%' itself, and for list items (restore points) also ',' and
 * space.
 */
static bool
append_escaped(PgbkBuf *b, const char *s, bool list_item)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;
		char          e[3];

		if (c < 0x20 || c >= 0x7F || c == '%' || (list_item && (c == ',' || c == ' ')))
		{
			e[0] = '%';
			e[1] = hex[c >> 4];
			e[2] = hex[c & 15];
			if (!pgbk_buf_append(b, e, 3))
				return false;
		}
		else if (!pgbk_buf_append(b, s, 1))
			return false;
	}
	return true;
}

/* The lines that do not list restore points. */
static bool
fixed_attrs(const WalSummary *s, uint32_t rp_dropped, PgbkBuf *b)
{
	char l1[WALNAME_LSN_BUFLEN];
	char l2[WALNAME_LSN_BUFLEN];
	char l3[WALNAME_LSN_BUFLEN];
	bool ok;

	ok = pgbk_buf_printf(
	    b,
	    "wal.v=%d\nwal.magic=%04X\nwal.tli=%u\nwal.last_tli=%u\nwal.sysid=%llu\n"
	    "wal.segsz=%u\nwal.blcksz=%u\nwal.segno=%llu\nwal.cont_in=%u\n"
	    "wal.records=%llu\nwal.first=%s\nwal.last=%s\nwal.end=%s\nwal.end_lsn=%s\n",
	    ATTRS_VERSION, s->page_magic, s->tli, s->last_tli, (unsigned long long) s->sysid,
	    s->seg_size, s->page_size, (unsigned long long) s->segno, s->cont_in_len,
	    (unsigned long long) s->nrecords, walname_format_lsn(l1, s->first_lsn),
	    walname_format_lsn(l2, s->last_lsn), walscan_end_name(s->end_kind),
	    walname_format_lsn(l3, s->end_lsn));
	ok = ok && pgbk_buf_printf(b, "wal.commits=%llu\nwal.aborts=%llu\n",
	                           (unsigned long long) s->ncommits, (unsigned long long) s->naborts);
	if (s->ncommits + s->naborts > 0)
		ok = ok && pgbk_buf_printf(b,
		                           "wal.xact_first=%lld\nwal.xact_last=%lld\nwal.xact_min=%lld\n"
		                           "wal.xact_max=%lld\nwal.xact_last_lsn=%s\n",
		                           (long long) s->xact_first_time, (long long) s->xact_last_time,
		                           (long long) s->xact_min_time, (long long) s->xact_max_time,
		                           walname_format_lsn(l1, s->xact_last_lsn));
	if (rp_dropped > 0)
		ok = ok && pgbk_buf_printf(b, "wal.rp_dropped=%u\n", rp_dropped);
	if (s->noverwritten > 0)
		ok = ok && pgbk_buf_printf(b, "wal.overwritten=%u\n", s->noverwritten);
	if (s->switch_lsn != WAL_INVALID_LSN)
		ok = ok && pgbk_buf_printf(b, "wal.switch=%s\n", walname_format_lsn(l1, s->switch_lsn));
	if (s->end_kind == WALSCAN_END_INSIDE)
		ok = ok && pgbk_buf_printf(b, "wal.tail_zero=%d\n", s->tail_zero ? 1 : 0);
	ok = ok && pgbk_buf_printf(b, "wal.cont=%s\n", walscan_cont_name(s->cont));
	if (s->cont_lsn != WAL_INVALID_LSN)
		ok = ok && pgbk_buf_printf(b, "wal.cont_lsn=%s\n", walname_format_lsn(l1, s->cont_lsn));
	if (s->cont_time_valid)
		ok = ok && pgbk_buf_printf(b, "wal.cont_time=%lld\n", (long long) s->cont_time);
	if (s->end_reason[0] != '\0')
	{
		ok = ok && pgbk_buf_append_str(b, "wal.end_reason=");
		ok = ok && append_escaped(b, s->end_reason, false);
		ok = ok && pgbk_buf_append_str(b, "\n");
	}
	return ok;
}

PgbkStatus
walscan_summary_to_attrs(const WalSummary *s, size_t max_len, PgbkBuf *out, PgbkError *err)
{
	PgbkBuf  fixed;
	PgbkBuf  rps;
	size_t   rp_end[WALSCAN_MAX_RESTORE_POINTS + 1];
	uint32_t n = s->nrestore_points;
	uint32_t keep;
	uint32_t i;
	bool     ok = true;

	if (n > WALSCAN_MAX_RESTORE_POINTS)
		return pgbk_error(err, PGBK_ERR_USAGE, "summary lists %u restore points, at most %d", n,
		                  WALSCAN_MAX_RESTORE_POINTS);
	pgbk_buf_init(&fixed);
	pgbk_buf_init(&rps);

	/* each restore point line, remembering where it ends */
	rp_end[0] = 0;
	for (i = 0; ok && i < n; i++)
	{
		const WalRestorePoint *rp = &s->restore_points[i];
		char                   l[WALNAME_LSN_BUFLEN];

		ok = pgbk_buf_printf(&rps, "wal.rp.%u=%s,%lld,", i, walname_format_lsn(l, rp->lsn),
		                     (long long) rp->time_us) &&
		     append_escaped(&rps, rp->name, true) && pgbk_buf_append_str(&rps, "\n");
		rp_end[i + 1] = rps.len;
	}

	/* keep as many restore points as fit */
	for (keep = n;; keep--)
	{
		pgbk_buf_reset(&fixed);
		ok = ok && fixed_attrs(s, s->rp_dropped + (n - keep), &fixed);
		if (!ok || fixed.len + rp_end[keep] <= max_len || keep == 0)
			break;
	}
	if (!ok)
	{
		pgbk_buf_free(&fixed);
		pgbk_buf_free(&rps);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	if (fixed.len + rp_end[keep] > max_len)
	{
		size_t need = fixed.len;

		pgbk_buf_free(&fixed);
		pgbk_buf_free(&rps);
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "WAL summary needs %zu bytes of attributes, only %zu allowed", need,
		                  max_len);
	}
	ok =
	    pgbk_buf_append(out, fixed.data, fixed.len) && pgbk_buf_append(out, rps.data, rp_end[keep]);
	pgbk_buf_free(&fixed);
	pgbk_buf_free(&rps);
	if (!ok)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

/* Decode a percent-encoded value into out (outlen bytes, NUL included). */
static bool
unescape(const char *v, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *v; v++)
	{
		char c = *v;

		if (c == '%')
		{
			int h = pgbk_hex_digit(v[1]);
			int l = h < 0 ? -1 : pgbk_hex_digit(v[2]);

			/* %00 would cut the string short: never written */
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return false;
			c = (char) (h * 16 + l);
			v += 2;
		}
		if (n + 1 >= outlen)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

static bool
parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (*v == '\0')
		return false;
	for (; *v; v++)
	{
		uint64_t digit = (uint64_t) (*v - '0');

		if (*v < '0' || *v > '9' || digit > max || x > (max - digit) / 10)
			return false;
		x = x * 10 + digit;
	}
	*out = x;
	return true;
}

static bool
parse_i64(const char *v, int64_t *out)
{
	uint64_t x;

	if (*v == '-')
	{
		if (!parse_u64(v + 1, (uint64_t) INT64_MAX + 1, &x))
			return false;
		*out = x == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) x;
		return true;
	}
	if (!parse_u64(v, INT64_MAX, &x))
		return false;
	*out = (int64_t) x;
	return true;
}

static bool
parse_enum(const char *v, const char *const *names, int n, int *out)
{
	int i;

	for (i = 0; i < n; i++)
	{
		if (strcmp(v, names[i]) == 0)
		{
			*out = i;
			return true;
		}
	}
	return false;
}

/* "lsn,time,escaped-name" */
static bool
parse_rp(const char *v, WalRestorePoint *rp)
{
	const char *c1 = strchr(v, ',');
	const char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	char        part[32];

	if (c2 == NULL || (size_t) (c1 - v) >= sizeof(part) || (size_t) (c2 - c1 - 1) >= sizeof(part))
		return false;
	memcpy(part, v, (size_t) (c1 - v));
	part[c1 - v] = '\0';
	if (!walname_parse_lsn(part, &rp->lsn))
		return false;
	memcpy(part, c1 + 1, (size_t) (c2 - c1 - 1));
	part[c2 - c1 - 1] = '\0';
	if (!parse_i64(part, &rp->time_us))
		return false;
	return unescape(c2 + 1, rp->name, sizeof(rp->name));
}

typedef enum AttrType
{
	AT_U32,
	AT_U64,
	AT_I64,
	AT_LSN
} AttrType;

/* The plain numeric fields, by key. */
static const struct
{
	const char *key;
	AttrType    type;
	size_t      offset;
} plain_attrs[] = {
    {"tli", AT_U32, offsetof(WalSummary, tli)},
    {"last_tli", AT_U32, offsetof(WalSummary, last_tli)},
    {"sysid", AT_U64, offsetof(WalSummary, sysid)},
    {"segsz", AT_U32, offsetof(WalSummary, seg_size)},
    {"blcksz", AT_U32, offsetof(WalSummary, page_size)},
    {"segno", AT_U64, offsetof(WalSummary, segno)},
    {"cont_in", AT_U32, offsetof(WalSummary, cont_in_len)},
    {"records", AT_U64, offsetof(WalSummary, nrecords)},
    {"first", AT_LSN, offsetof(WalSummary, first_lsn)},
    {"last", AT_LSN, offsetof(WalSummary, last_lsn)},
    {"end_lsn", AT_LSN, offsetof(WalSummary, end_lsn)},
    {"commits", AT_U64, offsetof(WalSummary, ncommits)},
    {"aborts", AT_U64, offsetof(WalSummary, naborts)},
    {"xact_first", AT_I64, offsetof(WalSummary, xact_first_time)},
    {"xact_last", AT_I64, offsetof(WalSummary, xact_last_time)},
    {"xact_min", AT_I64, offsetof(WalSummary, xact_min_time)},
    {"xact_max", AT_I64, offsetof(WalSummary, xact_max_time)},
    {"xact_last_lsn", AT_LSN, offsetof(WalSummary, xact_last_lsn)},
    {"rp_dropped", AT_U32, offsetof(WalSummary, rp_dropped)},
    {"overwritten", AT_U32, offsetof(WalSummary, noverwritten)},
    {"switch", AT_LSN, offsetof(WalSummary, switch_lsn)},
    {"cont_lsn", AT_LSN, offsetof(WalSummary, cont_lsn)},
};

/* Apply one "wal.<key>=<value>" line; false if the value is malformed. */
static bool
apply_attr(WalSummary *s, const char *key, const char *v, uint32_t *rp_seen, uint64_t *version)
{
	char    *base = (char *) s;
	uint64_t u;
	int      e;
	size_t   i;

	for (i = 0; i < sizeof(plain_attrs) / sizeof(plain_attrs[0]); i++)
	{
		void *field = base + plain_attrs[i].offset;

		if (strcmp(key, plain_attrs[i].key) != 0)
			continue;
		switch (plain_attrs[i].type)
		{
			case AT_U32:
				if (!parse_u64(v, UINT32_MAX, &u))
					return false;
				*(uint32_t *) field = (uint32_t) u;
				return true;
			case AT_U64:
				return parse_u64(v, UINT64_MAX, (uint64_t *) field);
			case AT_I64:
				return parse_i64(v, (int64_t *) field);
			case AT_LSN:
				return walname_parse_lsn(v, (WalLsn *) field);
		}
	}
	if (strcmp(key, "v") == 0)
		return parse_u64(v, 1000000, version);
	if (strcmp(key, "magic") == 0)
	{
		int d[4];

		for (i = 0; i < 4; i++)
		{
			if ((d[i] = pgbk_hex_digit(v[i])) < 0)
				return false;
		}
		if (v[4] != '\0')
			return false;
		s->page_magic = (uint16_t) ((d[0] << 12) | (d[1] << 8) | (d[2] << 4) | d[3]);
		return true;
	}
	if (strcmp(key, "end") == 0)
	{
		if (!parse_enum(v, end_names, 3, &e))
			return false;
		s->end_kind = (WalScanEnd) e;
		return true;
	}
	if (strcmp(key, "cont") == 0)
	{
		if (!parse_enum(v, cont_names, 6, &e))
			return false;
		s->cont = (WalScanCont) e;
		return true;
	}
	if (strcmp(key, "tail_zero") == 0)
	{
		if (!parse_u64(v, 1, &u))
			return false;
		s->tail_zero = (u == 1);
		return true;
	}
	if (strcmp(key, "cont_time") == 0)
	{
		s->cont_time_valid = true;
		return parse_i64(v, &s->cont_time);
	}
	if (strcmp(key, "end_reason") == 0)
		return unescape(v, s->end_reason, sizeof(s->end_reason));
	if (strncmp(key, "rp.", 3) == 0)
	{
		if (!parse_u64(key + 3, WALSCAN_MAX_RESTORE_POINTS - 1, &u) || (*rp_seen & (1U << u)) ||
		    (key[3] == '0' && key[4] != '\0'))
			return false;
		*rp_seen |= 1U << u;
		return parse_rp(v, &s->restore_points[u]);
	}
	/* a key added by a later revision of version 1: ignore */
	return true;
}

PgbkStatus
walscan_summary_from_attrs(const char *attrs, WalSummary *out, PgbkError *err)
{
	const char *p = attrs;
	uint32_t    rp_seen = 0;
	uint64_t    version = 0;
	size_t      k;

	memset(out, 0, sizeof(*out));
	while (*p)
	{
		const char *nl = strchr(p, '\n');
		size_t      len = nl ? (size_t) (nl - p) : strlen(p);

		if (len > 4 && strncmp(p, "wal.", 4) == 0)
		{
			char  line[512];
			char *eq;

			if (len >= sizeof(line))
				return pgbk_error(err, PGBK_ERR_FORMAT, "WAL summary attribute line too long");
			memcpy(line, p, len);
			line[len] = '\0';
			eq = strchr(line, '=');
			if (eq == NULL)
				return pgbk_error(err, PGBK_ERR_FORMAT,
				                  "WAL summary attribute \"%.40s\" has no value", line);
			*eq = '\0';
			if (!apply_attr(out, line + 4, eq + 1, &rp_seen, &version))
				return pgbk_error(err, PGBK_ERR_FORMAT, "invalid value \"%.80s\" for %s", eq + 1,
				                  line);
		}
		p += len + (nl ? 1 : 0);
	}
	if (version == 0)
	{
		memset(out, 0, sizeof(*out));
		return pgbk_error(err, PGBK_NOT_FOUND, "no WAL summary in the attributes");
	}
	if (version != ATTRS_VERSION)
		return pgbk_error(err, PGBK_ERR_FORMAT, "unsupported WAL summary version %llu",
		                  (unsigned long long) version);

	/* restore points must be numbered 0..n-1 */
	while (out->nrestore_points < WALSCAN_MAX_RESTORE_POINTS &&
	       (rp_seen & (1U << out->nrestore_points)))
		out->nrestore_points++;
	if (rp_seen != (1U << out->nrestore_points) - 1)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "WAL summary restore points are not numbered from 0 without gaps");

	for (k = 0; k < sizeof(page_magics) / sizeof(page_magics[0]); k++)
	{
		if (page_magics[k].magic == out->page_magic)
			out->pg_major = page_magics[k].major;
	}
	if (out->pg_major == 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "WAL summary has no or an unknown page magic");
	if (out->tli == 0 || !walname_segsz_is_valid(out->seg_size) || out->page_size == 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "WAL summary lacks its timeline or sizes");
	return PGBK_OK;
}
