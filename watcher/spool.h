/*
 * spool.h
 *	  Program pgbk-watcher; uses common/files and base.
 *	  The watcher's journal of records for the catalog.
 *
 * Every record (a snapshot taken, snapshots forgotten) is written here
 * first, durably, and removed only once the catalog has it, so nothing is
 * lost while the database is unreachable or across a restart, and records
 * reach the catalog in the order they were written.  Delivery is
 * at-least-once; the SQL functions are idempotent.
 *
 * Layout: one file per record in spool_dir, named by a 20-digit sequence
 * number ("00000000000000000042.rec"), holding one JSON object.  A record
 * is written to a ".tmp" file, fsync'd, renamed into place and the
 * directory fsync'd, so a crash leaves either the whole record or none
 * (stray .tmp files are removed at start).  A record that cannot be decoded
 * is renamed to ".bad" and skipped with an error in the log, rather than
 * blocking the queue forever.
 */
#ifndef WATCHER_SPOOL_H
#define WATCHER_SPOOL_H

#include "files/files.h"
#include "base/pgbk_common.h"

#define SPOOL_FORMAT_VERSION 1

typedef enum SpoolKind
{
	SPOOL_SNAPSHOT = 1,  /* bk_record_file_snapshot */
	SPOOL_FORGOTTEN = 2, /* bk_record_file_snapshots_forgotten */
	SPOOL_UNTIL = 3,     /* bk_record_file_snapshot_until: id, exact_until_us */
	SPOOL_CLOSE = 4      /* bk_close_file_snapshot_spans: host */
} SpoolKind;

typedef struct SpoolRecord
{
	SpoolKind kind;

	/* SPOOL_SNAPSHOT */
	char               id[FILES_ID_LEN + 1];
	char              *time; /* restic's snapshot time, RFC 3339 */
	char              *host;
	char             **paths;
	int                n_paths;
	char             **tags;
	int                n_tags;
	char             **restore_points;
	int                n_restore_points;
	bool               complete;
	char              *trigger;
	FilesBackupSummary sum;
	/* the exact span (Unix microseconds, 0: unknown / none yet), see main.c */
	int64_t  exact_from_us;
	int64_t  exact_until_us; /* also SPOOL_UNTIL */
	int64_t  scan_end_us;
	int64_t *request_ids; /* the requests it serves (bk_file_snapshot_requests) */
	int      n_request_ids;

	/* SPOOL_FORGOTTEN */
	char **ids;
	int    n_ids;
} SpoolRecord;

typedef struct Spool Spool;

/* Open (creating it, mode 0700) and scan the spool directory. */
PgbkStatus spool_open(const char *dir, Spool **out, PgbkError *err);
void       spool_close(Spool *spool);

/* Append a record durably. */
PgbkStatus spool_append(Spool *spool, const SpoolRecord *rec, PgbkError *err);

/* Records waiting, and the oldest one's sequence number. */
size_t   spool_pending(const Spool *spool);
uint64_t spool_first(const Spool *spool);

/*
 * Read record seq.  PGBK_ERR_FORMAT if it is unreadable: it has then been
 * set aside as ".bad" and dropped from the queue.
 */
PgbkStatus spool_read(Spool *spool, uint64_t seq, SpoolRecord *rec, PgbkError *err);

/* The catalog has record seq: forget it. */
void spool_remove(Spool *spool, uint64_t seq);

/* JSON encoding of a record (malloc'd, one line, no newline). */
char      *spool_encode(const SpoolRecord *rec);
PgbkStatus spool_decode(const char *json, size_t len, SpoolRecord *rec, PgbkError *err);
void       spool_record_free(SpoolRecord *rec);

#endif /* WATCHER_SPOOL_H */
