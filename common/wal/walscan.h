/*
 * walscan.h
 *	  Room wal; uses base (WAL names) only.
 *	  A cheap scan of one WAL segment image: what a restore planner needs to
 *	  know about it, without replaying or decoding block data.
 *
 * Why: PostgreSQL's recovery_target_time can only stop at a transaction
 * commit or abort record (recoveryStopsBefore() in
 * src/backend/access/transam/xlogrecovery.c considers RM_XACT_ID records
 * with info XLOG_XACT_COMMIT, COMMIT_PREPARED, ABORT or ABORT_PREPARED and
 * nothing else; restore points only end a recovery_target_name, in
 * recoveryStopsAfter()).  With recovery_target_inclusive = on (the default)
 * it stops before the first such record, in WAL order, whose xact_time is
 * > the target, with inclusive = off at the first one >= the target.  If the
 * archive runs out before such a record is read, PostgreSQL 14+ fails with
 * FATAL "recovery ended before configured recovery target was reached".  So
 * a time T is recoverable only if the archived WAL, read without a gap from
 * the backup's start, contains a *complete* commit/abort record whose time
 * passes T.  Each archived segment carries this summary so the planner can
 * tell, per segment, which times it can stop at and which named restore
 * points it holds.
 *
 * Attribution: a record belongs to the segment it begins in.  Counts, times
 * and restore points cover the records that begin *and end* in the segment.
 * The last record may begin here and continue into the next segment: it is
 * described by the cont_* fields (its kind, and its time if the bytes that
 * hold it are in this segment), and using it needs the next segment too.
 * The data at the start of a segment that finishes a record from an earlier
 * segment is only measured (cont_in_len).
 *
 * The scan follows xlogreader.c's rules (PostgreSQL 15): page header checks
 * (magic, info bits, xlp_pageaddr, timeline not going backwards), the
 * continuation protocol (XLP_FIRST_IS_CONTRECORD with xlp_rem_len matching,
 * XLP_FIRST_IS_OVERWRITE_CONTRECORD abandoning a broken record), record
 * header checks (xl_tot_len, resource manager ID, xl_prev chaining) and, for
 * the records it reads (commit/abort, restore point), the block reference
 * headers as DecodeXLogRecord parses them.  It does not check CRCs.  The
 * first record that fails a check ends the valid WAL, as it ends recovery,
 * so the stale bytes of a recycled segment are never reported as records.
 *
 * Page formats: the XLOG_PAGE_MAGIC values of PostgreSQL 13 to 17; the WAL
 * must come from a machine with this byte order (WAL files are not
 * portable).  Page size comes from the long header (any --with-wal-blocksize).
 */
#ifndef PGBK_WALSCAN_H
#define PGBK_WALSCAN_H

#include "base/walname.h"

/* Restore points kept per segment; more are only counted (rp_dropped). */
#define WALSCAN_MAX_RESTORE_POINTS 8
/* MAXFNAMELEN (xlog_internal.h): rp_name's size, with its NUL */
#define WALSCAN_RP_NAME_LEN 64
#define WALSCAN_REASON_LEN  128

/* Default byte budget of walscan_summary_to_attrs's output. */
#define WALSCAN_ATTRS_MAX 2048

typedef struct WalRestorePoint
{
	WalLsn  lsn;                       /* start of the XLOG_RESTORE_POINT record */
	int64_t time_us;                   /* rp_time, Unix microseconds */
	char    name[WALSCAN_RP_NAME_LEN]; /* NUL-terminated; any other bytes */
} WalRestorePoint;

typedef enum WalScanEnd
{
	/* valid WAL reaches the end of the segment (a record may continue) */
	WALSCAN_END_SEGMENT = 0,
	/* an XLOG_SWITCH record: the rest of the segment is padding */
	WALSCAN_END_SWITCH,
	/* valid WAL ends inside the segment (end_reason says why) */
	WALSCAN_END_INSIDE
} WalScanEnd;

/* The record that continues into the next segment, if any. */
typedef enum WalScanCont
{
	WALSCAN_CONT_NONE = 0,      /* no record continues into the next segment */
	WALSCAN_CONT_OTHER,         /* one does; not a commit, abort or restore point */
	WALSCAN_CONT_COMMIT,        /* XLOG_XACT_COMMIT or COMMIT_PREPARED */
	WALSCAN_CONT_ABORT,         /* XLOG_XACT_ABORT or ABORT_PREPARED */
	WALSCAN_CONT_RESTORE_POINT, /* XLOG_RESTORE_POINT */
	WALSCAN_CONT_UNKNOWN        /* its header is cut, or it began in an earlier segment:
	                             * it might be a commit or abort */
} WalScanCont;

typedef struct WalSummary
{
	/* From the first page's long header */
	uint16_t page_magic; /* XLOG_PAGE_MAGIC */
	int      pg_major;   /* 13..17, from page_magic */
	uint32_t tli;        /* xlp_tli of the first page */
	uint64_t sysid;      /* xlp_sysid: the cluster's system identifier */
	uint32_t seg_size;   /* xlp_seg_size */
	uint32_t page_size;  /* xlp_xlog_blcksz */
	WalSegNo segno;      /* xlp_pageaddr / seg_size: compare with the file name */

	/*
	 * xlp_tli of the last page with valid WAL.  It differs from tli in the
	 * first segment of a timeline, which starts with its parent's pages.
	 */
	uint32_t last_tli;

	/*
	 * Bytes at the start finishing a record begun in an earlier segment
	 * (page 0's xlp_rem_len; 0 if none).  More than the segment holds: the
	 * record covers this whole segment.
	 */
	uint32_t cont_in_len;

	/* Complete records that begin in this segment */
	uint64_t nrecords;
	WalLsn   first_lsn; /* start of the first; WAL_INVALID_LSN if none */
	WalLsn   last_lsn;  /* start of the last; WAL_INVALID_LSN if none */

	/* Transaction ends among them (what recovery_target_time stops at) */
	uint64_t ncommits; /* COMMIT and COMMIT_PREPARED */
	uint64_t naborts;  /* ABORT and ABORT_PREPARED */

	/*
	 * Their xact_time, Unix microseconds; valid only when ncommits + naborts
	 * > 0.  xact_time is taken before the record is inserted, so WAL order is
	 * only roughly time order: min and max bound the segment, first and last
	 * are in WAL order.
	 */
	int64_t xact_first_time;
	int64_t xact_last_time;
	int64_t xact_min_time;
	int64_t xact_max_time;
	WalLsn  xact_last_lsn; /* start of the last commit/abort record */

	/* XLOG_RESTORE_POINT records, in WAL order */
	uint32_t        nrestore_points; /* stored in restore_points[] */
	uint32_t        rp_dropped;      /* found (or left out of attributes) but not stored */
	WalRestorePoint restore_points[WALSCAN_MAX_RESTORE_POINTS];

	/* Abandoned records skipped (XLP_FIRST_IS_OVERWRITE_CONTRECORD pages) */
	uint32_t noverwritten;

	/* How the segment ends */
	WalScanEnd end_kind;

	/*
	 * END_INSIDE: the end of the last valid record (or of the data before
	 * the first one); otherwise the segment's end.
	 */
	WalLsn end_lsn;
	WalLsn switch_lsn; /* END_SWITCH: start of the XLOG_SWITCH record */

	/*
	 * END_INSIDE: nothing but zeros (and empty page headers of this
	 * segment) follows end_lsn, as in a segment still being written; false
	 * means stale bytes (a recycled segment, a torn write).
	 */
	bool tail_zero;

	/*
	 * END_SEGMENT: the record continuing into the next segment, its start
	 * (WAL_INVALID_LSN if it began before this segment), and, when it is a
	 * commit, abort or restore point whose timestamp lies in this segment,
	 * that time (Unix microseconds).
	 */
	WalScanCont cont;
	WalLsn      cont_lsn;
	bool        cont_time_valid;
	int64_t     cont_time;

	char end_reason[WALSCAN_REASON_LEN]; /* END_INSIDE: why ("" otherwise) */
} WalSummary;

/*
 * Scan one complete segment image (len == wal_segsz, as found in pg_wal or
 * archived; a ".partial" file is a complete image too).  Fills *out and
 * returns PGBK_OK whenever the first page is a valid long page header of a
 * supported version, even if no valid record follows.  Errors:
 * PGBK_ERR_USAGE (bad wal_segsz, len mismatch), PGBK_ERR_FORMAT (first page
 * not a WAL long page header, unsupported magic, segment or page size not
 * matching).
 */
PgbkStatus walscan_segment(const void *data, size_t len, uint32_t wal_segsz, WalSummary *out,
                           PgbkError *err);

/*
 * Which segment an image says it is, from its first page's long header
 * alone (the checks walscan_segment makes before reading records):
 * xlp_pageaddr / wal_segsz and xlp_sysid.  A file in pg_wal may be a
 * recycled one, renamed ahead of use and still holding an old segment: its
 * name proves nothing, this does.  Errors as walscan_segment's.
 */
PgbkStatus walscan_identify(const void *data, size_t len, uint32_t wal_segsz, WalSegNo *segno,
                            uint64_t *sysid, PgbkError *err);

/*
 * A record the scan accepted, as handed to a WalScanRecordHook: so that
 * one pass over a segment serves both this summary and others (the change
 * summary of walchanges.h).  The hook sees every record that begins in the
 * segment and passes the checks above, in WAL order: complete ones, and
 * the last one if it continues into the next segment (complete false; its
 * rmid and info are known only if have_header).  Records that finish one
 * from an earlier segment, or were abandoned (overwritten contrecords), are
 * not handed over.  Read the record's bytes with walscan_record_bytes.
 */
typedef struct WalScanRecord
{
	WalLsn   lsn;         /* start of the record */
	uint32_t tot_len;     /* xl_tot_len */
	bool     complete;    /* every byte of it is in this segment */
	bool     have_header; /* its 24-byte header is in this segment */
	uint8_t  rmid;        /* xl_rmid (have_header) */
	uint8_t  info;        /* xl_info (have_header) */
	int      pg_major;    /* of the segment's page magic */
	/* the record's first head_len bytes lie contiguous at head (its first page) */
	const unsigned char *head;
	uint32_t             head_len;
	/* private to walscan.c */
	const void *scan_;
	uint32_t    pos_;
	uint32_t    on_page_;
	bool        here_only_; /* never read the next segment's image */
} WalScanRecord;

typedef void (*WalScanRecordHook)(void *arg, const WalScanRecord *rec);

/* A relation fork a block reference names (fork: 0 main, 1 fsm, 2 vm, 3 init). */
typedef struct WalRelFork
{
	uint32_t spc, db, rel;
	uint8_t  fork;
} WalRelFork;

/* xlogrecord.h's XLR_MAX_BLOCK_ID + 1 */
#define WALSCAN_MAX_BLOCK_REFS 33

/* A record's block references and where its main data lies. */
typedef struct WalScanBlocks
{
	int        n;
	WalRelFork rf[WALSCAN_MAX_BLOCK_REFS];
	uint32_t   blk[WALSCAN_MAX_BLOCK_REFS];
	uint32_t   main_off; /* main data: [main_off, main_off + main_len) of the record */
	uint32_t   main_len;
} WalScanBlocks;

/*
 * Decode a record's block reference headers the way DecodeXLogRecord does
 * (without block data or images): the one decoder of record headers, used
 * by the segment summary (commit times) and by change summaries (which
 * blocks).  1: decoded; 0: malformed; -1: some header bytes lie in the next
 * segment, which was not given.  Only valid during the hook call.
 */
int walscan_record_blocks(const WalScanRecord *rec, WalScanBlocks *out);

/*
 * Copy n bytes of the record from byte off (of its reassembled form: header
 * at 0, as xl_tot_len counts).  1: copied; 0: [off, off + n) is not inside
 * the record; -1: some of the bytes lie in the next segment and it was not
 * given (or is not the continuation of this record).  Only valid during
 * the hook call.
 */
int walscan_record_bytes(const WalScanRecord *rec, uint32_t off, uint32_t n, void *out);

/*
 * walscan_segment, calling hook(arg, record) for each record (see above).
 * next (may be NULL) is the image of the following segment: then the bytes
 * of the last record that lie in it can be read too (its pages must
 * continue this record: magic, address, XLP_FIRST_IS_CONTRECORD and
 * xlp_rem_len are checked).  The summary itself never looks at next.
 */
PgbkStatus walscan_segment_hooked(const void *data, size_t len, uint32_t wal_segsz,
                                  const void *next, size_t next_len, WalSummary *out,
                                  WalScanRecordHook hook, void *arg, PgbkError *err);

/* Unix microseconds <-> PostgreSQL TimestampTz (microseconds since 2000-01-01 UTC). */
int64_t walscan_pg_time_to_unix_us(int64_t pg_time);
int64_t walscan_unix_us_to_pg_time(int64_t unix_us);

/*
 * Could recovery_target_time = target_us stop in this segment?  Mirrors
 * recoveryStopsBefore(): it stops before the first commit/abort record (in
 * WAL order) whose time is > target, >= when recovery_target_inclusive is
 * off.  A planner walks the segments from the backup's start in order; the
 * first that is not WALSCAN_STOP_NO ends the WAL that recovery needs (with
 * NEXT or MAYBE_NEXT, up to the segment where the continuing record ends:
 * the next one, or further while the next ones are all continuation, i.e.
 * have nrecords == 0 and cont == WALSCAN_CONT_UNKNOWN).  MAYBE_NEXT is not
 * proof that the target is reachable: only a later HERE or NEXT is.
 */
typedef enum WalScanStop
{
	WALSCAN_STOP_NO = 0,    /* no record here ends a recovery to target */
	WALSCAN_STOP_HERE,      /* a complete record in this segment does */
	WALSCAN_STOP_NEXT,      /* only the record continuing into the next segment does */
	WALSCAN_STOP_MAYBE_NEXT /* the continuing record might (kind or time unknown) */
} WalScanStop;

WalScanStop walscan_time_target_stop(const WalSummary *s, int64_t target_us, bool inclusive);

/*
 * Serialise to "name=value\n" lines, appended to out (ASCII, names start
 * with "wal."; restore point names and end_reason are percent-encoded).  If
 * the text would exceed max_len bytes, restore points are left out from the
 * last one backwards (and counted in wal.rp_dropped) until it fits;
 * PGBK_ERR_USAGE if even the rest does not fit.  That rest is 400 to 700
 * bytes for real segments, 1136 at worst; each restore point adds at most
 * 237 (typically 50 to 120).
 */
PgbkStatus walscan_summary_to_attrs(const WalSummary *s, size_t max_len, PgbkBuf *out,
                                    PgbkError *err);

/*
 * Parse what walscan_summary_to_attrs wrote.  attrs may hold other lines
 * too (ignored).  PGBK_NOT_FOUND if there is no summary (no wal.v line),
 * PGBK_ERR_FORMAT for an unknown version or a malformed value.
 */
PgbkStatus walscan_summary_from_attrs(const char *attrs, WalSummary *out, PgbkError *err);

/* "segment", "switch", "inside"; "none", "other", "commit", ... */
const char *walscan_end_name(WalScanEnd e);
const char *walscan_cont_name(WalScanCont c);

#endif /* PGBK_WALSCAN_H */
