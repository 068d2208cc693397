/*
 * walpush.h
 *	  Room wal; uses repo, format (codec, layout) and walscan.h.
 *	  Push one file of the WAL area (segment, .partial, .backup, .history)
 *	  into the repository, with the rules every archiving path shares: the
 *	  archive module, the uploader workers and `pgbk wal-push`.
 *
 *	  - The object is the codec envelope (compressed, encrypted) of the whole
 *		file, with attributes naming the file, its mtime on the server and,
 *		for segments, the walscan summary (what restore planning needs).
 *	  - Never overwrite (DESIGN.md invariant 2): if the key exists, identical
 *		content is success (a retry after a crash between upload and .done);
 *		different content is PGBK_EXISTS and the stored object is untouched.
 *	  - One repository holds one database system: the repository descriptor
 *		records the system identifier of the first WAL pushed into it, and
 *		WAL from another system is refused (PGBK_EXISTS).
 *	  - PGBK_OK only once the repository durably holds the object.
 *	  - Segments and .partial files also get their change summary
 *		(walchanges.h), from the same scan, stored after the segment (also
 *		when the segment was already there: a retry after a crash between
 *		the two puts).  A repository failure storing it fails the push, so
 *		that it is retried; a summary already stored with other content is
 *		kept with a warning (derived data must never stop archiving).
 */
#ifndef PGBK_WALPUSH_H
#define PGBK_WALPUSH_H

#include "format/codec.h"
#include "format/layout.h"
#include "repo/repo.h"
#include "wal/walchanges.h"
#include "wal/walscan.h"

/* Reusable state: buffers survive between files to avoid re-allocating
 * 16 MiB per segment. */
typedef struct WalPusher
{
	Repo       *repo;
	CodecParams params;
	PgbkBuf     raw;  /* small files are read into it */
	const void *data; /* the file's bytes: raw.data or a read-only mapping */
	size_t      len;
	bool        map_segments; /* map large files instead of reading them (a backlog) */
	void       *map;          /* the mapping of a large file while it is pushed */
	size_t      map_len;
	PgbkBuf     enc;
	PgbkBuf     attrs;
	uint64_t    checked_sysid; /* descriptor verified for this system id */
	uint64_t   *checked;       /* &checked_sysid, or another pusher's (walpush_share_check) */
	WalChanges *changes;       /* the change summary of the file being pushed */
} WalPusher;

typedef struct WalPushResult
{
	char          key[LAYOUT_KEY_LEN];
	bool          already_present; /* identical object was already there */
	uint64_t      raw_size;
	uint64_t      stored_size;
	unsigned char hash[CODEC_HASH_BYTES];
	int64_t       source_mtime;    /* the file's mtime, Unix seconds */
	int64_t       source_mtime_us; /* the same, microseconds */
	bool          has_summary;
	WalSummary    summary;
	bool          has_changes;      /* a change summary was stored (or was there) */
	bool          changes_complete; /* ... and it is complete */
} WalPushResult;

void walpush_init(WalPusher *p, Repo *repo, const CodecParams *params);
/* p trusts the descriptor check of with (two pushers of one repository context). */
void walpush_share_check(WalPusher *p, WalPusher *with);
void walpush_free(WalPusher *p);

/*
 * Push the file at path, archived under the bare file name fname.
 */
PgbkStatus walpush_file(WalPusher *p, const char *path, const char *fname, WalPushResult *res,
                        PgbkError *err);

/*
 * walpush_file in two steps, so that a caller can prepare the next file
 * while the previous one is stored (the uploaders, pg_ext/uploader.c):
 *
 * walpush_prepare reads (or maps) the file, scans it and encodes it into
 * p->enc (and its change summary into p->changes).  It touches neither the
 * repository nor anything but p, res and err (its one log line is a test
 * hook's; pg_ext's log hook is safe off the main thread): it may run in a
 * thread of its own, one at a time per WalPusher.  A SIGBUS from a mapped
 * file that shrinks is caught in the thread that prepares.
 *
 * walpush_store then checks the repository descriptor (once per system),
 * puts the object, and its change summary after it, as walpush_file says.
 */
PgbkStatus walpush_prepare(WalPusher *p, const char *path, const char *fname, WalPushResult *res,
                           PgbkError *err);
PgbkStatus walpush_store(WalPusher *p, const char *fname, WalPushResult *res, PgbkError *err);

/*
 * Does the stored object under key hold exactly this content (plain content
 * hash and raw size)?  Reads only the object's header, except for
 * trailer-only objects, which are read whole.
 */
PgbkStatus walpush_object_matches(Repo *repo, const PgbkKeyring *ring, const char *key,
                                  const unsigned char hash[CODEC_HASH_BYTES], uint64_t raw_size,
                                  bool *same, uint64_t *stored_size, PgbkError *err);

/*
 * Check (and on first use create) the repository descriptor for sysid.
 * PGBK_EXISTS if the repository belongs to another database system.
 */
PgbkStatus repo_descriptor_check(Repo *repo, const CodecParams *params, uint64_t sysid,
                                 PgbkError *err);

#endif /* PGBK_WALPUSH_H */
