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
	PgbkPushJob job;

	if (pgbk_context(err) == NULL)
	{
		pgbk_status_failure(file, err->msg, false);
		return false;
	}
	memset(&job, 0, sizeof(job));
	job.pusher = pgbk_context_pusher();
	strlcpy(job.file, file, sizeof(job.file));
	strlcpy(job.path, path, sizeof(job.path));
	job.backlog = backlog;
	pgbk_push_prepare(&job);
	return pgbk_push_store(&job, err);
}

/* No backend code here: an uploader runs it in a helper thread (uploader.c). */
void
pgbk_push_prepare(PgbkPushJob *job)
{
	pgbk_error_clear(&job->err);
	job->pusher->map_segments = job->backlog;
	job->st = walpush_prepare(job->pusher, job->path, job->file, &job->res, &job->err);
}

bool
pgbk_push_store(PgbkPushJob *job, PgbkError *err)
{
	WalPusher     *pusher = job->pusher;
	const char    *file = job->file;
	WalPushResult *res = &job->res;
	PgbkStatus     st = job->st;

	if (st == PGBK_OK)
		st = walpush_store(pusher, file, res, err);
	else
		*err = job->err;
	if (st != PGBK_OK)
	{
		pgbk_status_failure(file, err->msg, st == PGBK_EXISTS);
		if (st == PGBK_EXISTS)
			pgbk_queue_event("duplicate_refused", file, err->msg);
		return false;
	}
	if (!res->already_present)
	{
		CodecHeader hdr;
		size_t      needed = 0;
		PgbkError   herr;

		/* the scheduler catalogues it from here instead of reading it back */
		if (codec_read_header(pusher->enc.data, pusher->enc.len, &hdr, &needed, &herr) == PGBK_OK)
			pgbk_header_cache_put(res->key, pusher->enc.data, hdr.header_len);
	}
	pgbk_status_success(file, res->raw_size, res->stored_size, res->already_present);
	pgbk_wake_scheduler(); /* the catalog picks the new object up */
	if (res->already_present)
		ereport(LOG, (errmsg("\"%s\" was already in the repository with identical content", file)));
	return true;
}
