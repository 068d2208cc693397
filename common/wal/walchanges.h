/*
 * walchanges.h
 *	  Room wal; uses base (WAL names), repo, format (codec) and walscan.h.
 *	  Change summaries: which relation blocks the WAL of one segment (or of an
 *	  LSN range) changes, so that an incremental base backup copies only
 *	  those blocks, and a restore can rebuild files from a chain.
 *
 * What changes a block (PostgreSQL 15 record formats; the choice of records
 * follows PostgreSQL 17's walsummarizer.c and blkreftable.c):
 *	 - every block reference of every record (DecodeXLogRecord's block
 *	   headers: RelFileNode, fork, block number, BKPBLOCK_SAME_REL);
 *	 - XLOG_SMGR_CREATE: the fork is new, limit 0 (FSM forks ignored, as in
 *	   PostgreSQL 17: they are not fully WAL-logged, and an incremental
 *	   copies them whole);
 *	 - XLOG_SMGR_TRUNCATE: limit the main fork at the new length, and the
 *	   visibility map at the map page holding that heap block (the page is
 *	   cut in place, not WAL-logged unless hint bits are);
 *	 - relations dropped at commit or abort (xl_xact_relfilenodes of COMMIT,
 *	   COMMIT_PREPARED, ABORT, ABORT_PREPARED): limit 0 for every fork.  A
 *	   PREPARE record drops nothing: its drops happen at COMMIT/ABORT
 *	   PREPARED, which list them again;
 *	 - XLOG_DBASE_CREATE_FILE_COPY and _WAL_LOG, XLOG_DBASE_DROP: the
 *	   database directory is whole (as PostgreSQL 17 marks it);
 *	   XLOG_TBLSPC_DROP: the tablespace is whole;
 *	 - any other record flagged XLR_SPECIAL_REL_UPDATE ("changes relation
 *	   files in ways not covered by block references") makes the summary
 *	   incomplete, naming it.
 *
 * Attribution: a record belongs to the segment it begins in (walscan.h).
 * The last record of a segment may continue into the next: when the bytes
 * this summary needs from it (block headers, and main data for the records
 * above) are not in this segment, the summary is incomplete, with a reason
 * naming the record's LSN.  An incremental backup then falls back.
 *
 * A summary is derived data, stored as a codec object under
 * changes/TTTTTTTTLLLLLLLL/<segment name> (layout.h), never overwritten,
 * and rebuilt from the archived segment when missing.
 */
#ifndef PGBK_WALCHANGES_H
#define PGBK_WALCHANGES_H

#include "base/walname.h"
#include "format/codec.h"
#include "repo/repo.h"
#include "wal/walscan.h"

#define WALCHG_NO_LIMIT   UINT32_MAX
#define WALCHG_REASON_LEN 256

/* forks: 0 main, 1 fsm, 2 vm, 3 init */
#define WALCHG_FORK_MAIN 0
#define WALCHG_FORK_FSM  1
#define WALCHG_FORK_VM   2
#define WALCHG_FORK_INIT 3

/* WalRelFork: walscan.h */

typedef struct WalChangeEntry
{
	WalRelFork rf;

	/*
	 * Every block >= limit counts as changed (relation created, truncated,
	 * dropped, or changed in a way not attributable to blocks);
	 * WALCHG_NO_LIMIT if none.
	 */
	uint32_t  limit;
	uint32_t  nblocks; /* referenced blocks < limit, sorted ascending, unique */
	uint32_t *blocks;
} WalChangeEntry;

typedef struct WalChanges WalChanges; /* opaque */

WalChanges *walchg_new(void);
void        walchg_free(WalChanges *c);

/* Building.  Each returns false only when out of memory. */
bool walchg_add_block(WalChanges *c, const WalRelFork *rf, uint32_t blkno);
bool walchg_set_limit(WalChanges *c, const WalRelFork *rf, uint32_t limit); /* keeps the min */
bool walchg_add_whole_db(WalChanges *c, uint32_t spc, uint32_t db); /* db 0: whole tablespace */

/*
 * Union into dst: limit = min of both, blocks >= the limit dropped, whole
 * databases and tablespaces added; incomplete if either is (dst's reason
 * first); the range becomes the smallest covering both (on src's timeline
 * when they differ, the later one).
 */
bool walchg_merge(WalChanges *dst, const WalChanges *src);

/*
 * Queries an incremental backup makes for one relation fork: NULL when it is
 * not changed at all.  (1 GB = 131072 blocks per segment file; the caller
 * converts.)  The pointer stays valid until c is changed or freed.
 */
const WalChangeEntry *walchg_lookup(const WalChanges *c, const WalRelFork *rf);
bool walchg_db_whole(const WalChanges *c, uint32_t spc, uint32_t db); /* also true if spc whole */

/* Entries in (spc, db, rel, fork) order, for iteration. */
size_t                walchg_count(const WalChanges *c);
const WalChangeEntry *walchg_entry(const WalChanges *c, size_t i);

/* Whole databases ((spc, 0): tablespaces), in order. */
size_t walchg_whole_count(const WalChanges *c);
void   walchg_whole(const WalChanges *c, size_t i, uint32_t *spc, uint32_t *db);

/* Total referenced blocks over all entries (for reports). */
uint64_t walchg_block_count(const WalChanges *c);

/* Covered range and completeness */
void walchg_set_range(WalChanges *c, uint32_t tli, WalLsn start, WalLsn end);
void walchg_range(const WalChanges *c, uint32_t *tli, WalLsn *start, WalLsn *end);
void walchg_mark_incomplete(WalChanges *c, const char *reason); /* first reason kept */
bool walchg_complete(const WalChanges *c, const char **reason);

/*
 * Incomplete only because its last record continues into the next segment
 * (walchg_scan_segment_next with that segment resolves it): that record's
 * LSN; WAL_INVALID_LSN otherwise.
 */
WalLsn walchg_cont_lsn(const WalChanges *c);

/* Do a and b hold the same changes, range and completeness? */
bool walchg_equal(const WalChanges *a, const WalChanges *b);

/*
 * Deterministic binary form (magic, version, varint deltas); decode checks
 * every bound (PGBK_ERR_FORMAT naming what is wrong) and hands over nothing
 * on failure.
 */
PgbkStatus walchg_encode(const WalChanges *c, PgbkBuf *out, PgbkError *err);
PgbkStatus walchg_decode(const void *data, size_t len, WalChanges **out, PgbkError *err);

/*
 * Summarize one segment image (the records beginning in it); never fails on
 * odd WAL: what it cannot attribute marks relations/databases whole, or the
 * summary incomplete with a reason.  Errors only for an image walscan does
 * not accept at all (PGBK_ERR_USAGE, PGBK_ERR_FORMAT) or out of memory.
 * segname may be NULL (it only names the segment in reasons).
 */
PgbkStatus walchg_scan_segment(const void *seg, size_t len, const char *segname, WalChanges **out,
                               PgbkError *err);

/*
 * The same with the image of the following segment beside it (next, may be
 * NULL): the record continuing into it is then summarized whole, if it
 * ends there.  Used to resolve a summary left incomplete by such a record.
 */
PgbkStatus walchg_scan_segment_next(const void *seg, size_t len, const void *next, size_t next_len,
                                    const char *segname, WalChanges **out, PgbkError *err);

/*
 * The same in the pass walscan makes anyway (walpush): a scan collector.
 * walchg_collector_begin, then walscan_segment_hooked(..., walchg_collect,
 * collector, ...), then walchg_collector_end, which hands over the result
 * (NULL on out of memory) and frees the collector.
 */
typedef struct WalChgCollector WalChgCollector;
WalChgCollector               *walchg_collector_begin(const char *segname);
void                           walchg_collect(void *collector, const WalScanRecord *rec);
WalChanges *walchg_collector_end(WalChgCollector *col, const WalSummary *scanned, bool scan_ok);

/*
 * Repository: store (never overwrite; identical = ok, different =
 * PGBK_EXISTS), load (PGBK_NOT_FOUND if absent; verifies the object: a
 * tampered or renamed one is PGBK_ERR_INTEGRITY naming it), and
 * load-or-rebuild (fetch the archived WAL object, summarize, store, return).
 * segname: a segment or .partial file name.
 */
PgbkStatus walchg_store(Repo *repo, const CodecParams *params, const char *segname,
                        const WalChanges *c, PgbkError *err);
PgbkStatus walchg_load(Repo *repo, const PgbkKeyring *ring, const char *segname, WalChanges **out,
                       PgbkError *err);
PgbkStatus walchg_load_or_rebuild(Repo *repo, const PgbkKeyring *ring, const CodecParams *params,
                                  const char *segname, bool *rebuilt, WalChanges **out,
                                  PgbkError *err);

/*
 * What walchg_load requires of a summary object once the codec has
 * authenticated and decoded it (hdr, content raw of len bytes): it carries
 * the name of segname's summary (not another segment's, copied) and its
 * content decodes.  *out (NULL: only checked) receives the summary.  The
 * one rule for walchg_load and the verifier (common/verify).
 */
PgbkStatus walchg_check_object(const CodecHeader *hdr, const void *raw, size_t len,
                               const char *segname, WalChanges **out, PgbkError *err);

/* Summarize the archived WAL object of segname (no store). */
PgbkStatus walchg_rebuild(Repo *repo, const PgbkKeyring *ring, const char *segname,
                          WalChanges **out, PgbkError *err);

/*
 * For a summary left incomplete only by its last record continuing into the
 * next segment (walchg_cont_lsn): summarize the archived segment again with
 * the next segment of its timeline beside it.  *out is that summary if it
 * is complete, else NULL (the next segment is not archived, unreadable, or
 * does not resolve it); errors only for repository failures.  Never stored:
 * the stored summary is what the segment alone says.
 */
PgbkStatus walchg_resolve(Repo *repo, const PgbkKeyring *ring, const char *segname,
                          WalChanges **out, PgbkError *err);

/*
 * A local source of segment images, the server's pg_wal: read(arg,
 * segname, seg_size, want, out, err) puts a seg_size image of the file
 * named segname into out, of which at least the first want bytes (<=
 * seg_size) are the file's and the rest may be zeros (which a scan reads
 * as the end of WAL), and returns PGBK_OK, or PGBK_NOT_FOUND if there is
 * no such file (any other status: the file is not used either).  The union never trusts
 * what it reads: walscan_identify must find the segment it asked for
 * (xlp_pageaddr) of this cluster (sysid, unless 0), since a checkpoint may
 * have recycled the file (renamed it ahead, old contents inside) once it
 * was archived, and the scan ends the valid WAL at the first page that is
 * not the segment's own.
 */
typedef PgbkStatus (*WalChgReadLocal)(void *arg, const char *segname, uint32_t seg_size,
                                      uint32_t want, PgbkBuf *out, PgbkError *err);

typedef struct WalChgLocal
{
	WalChgReadLocal read;
	void           *arg;
	uint64_t        sysid; /* the cluster's system identifier; 0: not checked */
} WalChgLocal;

/* A WalChgReadLocal reading <dir>/<segname>, dir being arg (a char *): want bytes, then zeros. */
PgbkStatus walchg_read_dir(void *dir, const char *segname, uint32_t seg_size, uint32_t want,
                           PgbkBuf *out, PgbkError *err);

/* What walchg_union summarizes. */
typedef struct WalChgRange
{
	Repo              *repo;
	const PgbkKeyring *ring;
	const CodecParams *params; /* for storing rebuilt summaries; NULL: not stored */
	const WalHistory  *hist;
	WalLsn             from, to;
	uint32_t           seg_size;
	const WalChgLocal *local; /* NULL: the repository only */
} WalChgRange;

typedef struct WalChgUnionStats
{
	uint32_t segments; /* in the range */
	uint32_t local;    /* of them summarized from local files */
} WalChgUnionStats;

/*
 * The union of the summaries of every segment whose WAL lies in [from, to)
 * on the timeline history hist (as recovery reads it: for each segment, the
 * newest timeline of hist that began at or before it).  Each segment's
 * summary is loaded from the repository; if it is not there and a local
 * source is given, the local file is summarized (never stored: the
 * archiver stores the segment's own when it archives it); otherwise, or if
 * the local file is missing, recycled or ends early, it is rebuilt from the
 * archived segment.  A record continuing into the next segment is
 * summarized with that segment (local or archived) beside it.  A segment
 * whose summary cannot be had that way, or whose valid WAL ends before the
 * range does, makes the result incomplete (the reason names the segment);
 * that is not an error.  Errors: bad arguments, repository failures other
 * than a missing object, out of memory.  stats may be NULL.
 */
PgbkStatus walchg_union(const WalChgRange *r, WalChanges **out, WalChgUnionStats *stats,
                        PgbkError *err);

/* walchg_union over the repository only. */
PgbkStatus walchg_union_range(Repo *repo, const PgbkKeyring *ring, const CodecParams *params,
                              const WalHistory *hist, WalLsn from, WalLsn to, uint32_t seg_size,
                              WalChanges **out, PgbkError *err);

#endif /* PGBK_WALCHANGES_H */
