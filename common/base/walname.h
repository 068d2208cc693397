/*
 * walname.h
 *	  Room base; uses pgbk_common only.
 *	  WAL file names, segment numbers, LSNs and timeline history files.
 *
 * Pure functions over PostgreSQL's naming conventions, usable in the
 * backend and in frontend programs (no backend headers).  The layouts mirror
 * src/include/access/xlog_internal.h (XLogFileName, IsXLogFileName,
 * IsPartialXLogFileName, IsBackupHistoryFileName, IsTLHistoryFileName,
 * XLByteToSeg, XLogSegmentsPerXLogId) and
 * src/backend/access/transam/timeline.c (readTimeLineHistory,
 * tliOfPointInHistory) of PostgreSQL 15.
 */
#ifndef PGBK_WALNAME_H
#define PGBK_WALNAME_H

#include "base/pgbk_common.h"

/* XLogRecPtr and XLogSegNo (access/xlogdefs.h) */
typedef uint64_t WalLsn;
typedef uint64_t WalSegNo;

#define WAL_INVALID_LSN ((WalLsn) 0)

/* wal_segment_size bounds (WalSegMinSize/WalSegMaxSize in xlog_internal.h) */
#define WAL_SEGSZ_MIN     (1024U * 1024U)
#define WAL_SEGSZ_MAX     (1024U * 1024U * 1024U)
#define WAL_SEGSZ_DEFAULT (16U * 1024U * 1024U)

/* XLOG_FNAME_LEN: "TTTTTTTTLLLLLLLLSSSSSSSS" */
#define WALNAME_SEGMENT_LEN 24
/* MAXFNAMELEN: enough for any name this file formats, with the NUL */
#define WALNAME_BUFLEN 64
/* "XXXXXXXX/XXXXXXXX" and a NUL */
#define WALNAME_LSN_BUFLEN 18

typedef enum WalFileKind
{
	WAL_FILE_OTHER = 0, /* not a WAL-related name */
	WAL_FILE_SEGMENT,   /* 000000010000000A000000FF */
	WAL_FILE_PARTIAL,   /* 000000010000000A000000FF.partial */
	WAL_FILE_HISTORY,   /* 00000002.history */
	WAL_FILE_BACKUP     /* 000000010000000A000000FF.00000028.backup */
} WalFileKind;

/* What a file name says.  Fields a kind does not have are zero. */
typedef struct WalFileName
{
	WalFileKind kind;
	uint32_t    tli;
	uint32_t    log;    /* high part of the segment position ("log id") */
	uint32_t    seg;    /* segment within that log id */
	uint32_t    offset; /* BACKUP: offset of the backup start in the segment */
} WalFileName;

/* Power of two between 1 MiB and 1 GiB (IsValidWalSegSize). */
bool walname_segsz_is_valid(uint32_t segsz);

/* Segment holding the byte at lsn (XLByteToSeg). */
WalSegNo walname_lsn_to_segno(WalLsn lsn, uint32_t segsz);

/*
 * Segment holding the byte just before lsn (XLByteToPrevSeg): the segment
 * an end-of-record pointer belongs to.  lsn must not be 0.
 */
WalSegNo walname_end_lsn_to_segno(WalLsn lsn, uint32_t segsz);

/* First LSN of a segment (XLogSegNoOffsetToRecPtr with offset 0). */
WalLsn walname_segno_to_lsn(WalSegNo segno, uint32_t segsz);

/* Offset of lsn within its segment (XLogSegmentOffset). */
uint32_t walname_lsn_offset(WalLsn lsn, uint32_t segsz);

/*
 * Formatting.  buf must hold WALNAME_BUFLEN bytes; each returns buf.  Upper
 * case hex, as PostgreSQL writes it.
 */
char *walname_format_segment(char *buf, uint32_t tli, WalSegNo segno, uint32_t segsz);
char *walname_format_partial(char *buf, uint32_t tli, WalSegNo segno, uint32_t segsz);
char *walname_format_history(char *buf, uint32_t tli);
/* Backup history file of a backup that started at start_lsn. */
char *walname_format_backup(char *buf, uint32_t tli, WalLsn start_lsn, uint32_t segsz);

/*
 * Classify a bare file name (no directory).  Upper-case hex only, like
 * PostgreSQL's Is*FileName macros; timeline 0 does not exist and makes a
 * name WAL_FILE_OTHER.  out may be NULL.
 */
WalFileKind walname_classify(const char *name, WalFileName *out);

/*
 * Segment number of a classified SEGMENT, PARTIAL or BACKUP name for this
 * segment size; PGBK_ERR_FORMAT if the "seg" part is out of range for it
 * (e.g. 00000100 with 16 MiB segments) or the kind has no segment.
 */
PgbkStatus walname_file_segno(const WalFileName *f, uint32_t segsz, WalSegNo *segno,
                              PgbkError *err);

/* A plain segment name to timeline and segment number. */
PgbkStatus walname_parse_segment(const char *name, uint32_t segsz, uint32_t *tli, WalSegNo *segno,
                                 PgbkError *err);

/*
 * LSNs as PostgreSQL 15 prints them ("%X/%X", pg_lsn's output).  Parsing
 * accepts 1 to 8 hex digits on each side of the slash, either case, and
 * nothing else (pg_lsn_in).  format returns buf (WALNAME_LSN_BUFLEN bytes).
 */
bool  walname_parse_lsn(const char *s, WalLsn *out);
char *walname_format_lsn(char *buf, WalLsn lsn);

/*
 * A timeline history file ("TTTTTTTT.history").  Each line
 * "parent_tli<TAB>switchpoint<TAB>reason" says that parent_tli ended at
 * switchpoint; blank lines and lines starting with '#' are ignored.
 * entries[] runs from the oldest timeline to the file's own, whose entry is
 * open-ended (end == WAL_INVALID_LSN).  entries[i].begin is the previous
 * entry's end (WAL_INVALID_LSN for the first).  As in PostgreSQL,
 * switchpoints need not increase: a timeline that branched off its parent
 * before the parent's own start has an empty range.
 */
typedef struct WalHistoryEntry
{
	uint32_t tli;
	WalLsn   begin;  /* inclusive; WAL_INVALID_LSN: from the beginning */
	WalLsn   end;    /* exclusive; WAL_INVALID_LSN: still open */
	char    *reason; /* the line's third field ("" if none); owned */
} WalHistoryEntry;

typedef struct WalHistory
{
	int              n;
	WalHistoryEntry *entries;
} WalHistory;

/*
 * Parse the contents of the history file of timeline tli.  Errors (all
 * PGBK_ERR_FORMAT, naming the line) follow readTimeLineHistory: a line
 * without a numeric timeline ID, without a switchpoint, timeline IDs not
 * increasing, or not below tli.  On success free with walname_history_free.
 */
PgbkStatus walname_parse_history(const char *text, size_t len, uint32_t tli, WalHistory *out,
                                 PgbkError *err);
void       walname_history_free(WalHistory *h);

/* Timeline that lsn belongs to per this history (tliOfPointInHistory); 0 if none. */
uint32_t walname_history_tli_at(const WalHistory *h, WalLsn lsn);

/* Entry of one timeline of the history, NULL if it is not in it. */
const WalHistoryEntry *walname_history_find(const WalHistory *h, uint32_t tli);

#endif /* PGBK_WALNAME_H */
