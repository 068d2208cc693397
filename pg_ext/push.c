/*
 * push.c
 *	  Program pgbk.so; uses the backend, slots.h and common/wal (walpush).
 *	  pgbk_push_wal_file(): one WAL-area file into the repository, for the
 *	  archive module and the uploader workers.  Wraps common/wal/walpush.c with
 *	  this process's repository context and records the outcome for
 *	  bk_status (and, for refused duplicates, a catalog event).
 */
#include "pgbk.h"
#include "slots.h"

#include "utils/timestamp.h"

/* backlog: the caller is behind, so large files are mapped (walpush.c). */
bool
pgbk_push_wal_file(const char *file, const char *path, bool backlog, PgbkError *err)
{
	WalPusher    *pusher;
	WalPushResult res;
	PgbkStatus    st;

	if (pgbk_context(err) == NULL)
	{
		pgbk_status_failure(file, err->msg, false);
		return false;
	}
	pusher = pgbk_context_pusher();
	pusher->map_segments = backlog;
	st = walpush_file(pusher, path, file, &res, err);
	if (st != PGBK_OK)
	{
		pgbk_status_failure(file, err->msg, st == PGBK_EXISTS);
		if (st == PGBK_EXISTS)
			pgbk_queue_event("duplicate_refused", file, err->msg);
		return false;
	}
	if (!res.already_present)
	{
		CodecHeader hdr;
		size_t      needed = 0;
		PgbkError   herr;

		/* the scheduler catalogues it from here instead of reading it back */
		if (codec_read_header(pusher->enc.data, pusher->enc.len, &hdr, &needed, &herr) == PGBK_OK)
			pgbk_header_cache_put(res.key, pusher->enc.data, hdr.header_len);
	}
	pgbk_status_success(file, res.raw_size, res.stored_size, res.already_present);
	pgbk_wake_scheduler(); /* the catalog picks the new object up */
	if (res.already_present)
		ereport(LOG, (errmsg("\"%s\" was already in the repository with identical content", file)));
	return true;
}
