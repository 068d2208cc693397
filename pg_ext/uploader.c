/*
 * uploader.c
 *	  Program pgbk.so; uses the backend (background workers, latches), slots.h and
 *	  push.c.
 *	  Uploader background workers: push WAL ahead of the archiver.
 *
 * PostgreSQL's archiver hands files to the archive module one at a time, so
 * a slow upload (S3 round trips, compression) directly limits how fast WAL
 * leaves the server.  Like pgBackRest's asynchronous archive-push, the
 * uploaders look ahead: each scans pg_wal/archive_status for .ready files,
 * claims one of the oldest pgbk.lookahead files in the shared slot table
 * (slots.c), uploads it and marks the slot DONE.  When the archiver then asks for that
 * file, the callback finds DONE and returns immediately.
 *
 * Several uploaders work in parallel (pgbk.upload_workers), each in its own
 * process, so compression and encryption use several cores.  Memory stays
 * bounded: a scan keeps only the pgbk.lookahead oldest names, whatever the
 * number of pending files.
 *
 * The uploaders never mark anything .done themselves: only the archiver's
 * callback does that (by returning true), so a crash at any point loses
 * nothing; at worst a file is uploaded twice, which the duplicate rule
 * treats as success because the content is identical.
 */
#include "pgbk.h"
#include "slots.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define ARCHIVE_STATUS_DIR XLOGDIR "/archive_status"
#define READY_SUFFIX       ".ready"

static int uploader_index = -1;

/*
 * Archiving through pgbk is active when WAL archiving is on, the archive
 * library is pgbk and a configuration is set.  On a standby only
 * archive_mode = always archives.
 */
bool
pgbk_archiving_active(void)
{
	const char *lib;

	if (!XLogArchivingActive())
		return false;
	if (RecoveryInProgress() && XLogArchiveMode != ARCHIVE_MODE_ALWAYS)
		return false;
	lib = GetConfigOption("archive_library", true, false);
	if (lib == NULL || strcmp(lib, "pgbk") != 0)
		return false;
	return pgbk_config_path != NULL && pgbk_config_path[0] != '\0';
}

/*
 * Archive order, as PostgreSQL's archiver uses it: timeline history files
 * first (a new timeline must be archived before its segments are needed),
 * then by name, which is WAL order within a timeline.
 */
static bool
is_history(const char *name)
{
	size_t n = strlen(name);

	return n > 8 && strcmp(name + n - 8, ".history") == 0;
}

static int
archive_order(const char *a, const char *b)
{
	bool ha = is_history(a), hb = is_history(b);

	if (ha != hb)
		return ha ? -1 : 1;
	return strcmp(a, b);
}

typedef struct Candidates
{
	int  n;
	int  max;
	char names[PGBK_MAX_SLOTS][MAXFNAMELEN];
} Candidates;

/* Keep the `max` first names in archive order (insertion into a sorted
 * array: max is small). */
static void
candidates_add(Candidates *c, const char *name)
{
	int pos;

	if (c->n == c->max && archive_order(name, c->names[c->n - 1]) >= 0)
		return;
	pos = c->n < c->max ? c->n : c->max - 1;
	while (pos > 0 && archive_order(name, c->names[pos - 1]) < 0)
	{
		memcpy(c->names[pos], c->names[pos - 1], MAXFNAMELEN);
		pos--;
	}
	strlcpy(c->names[pos], name, MAXFNAMELEN);
	if (c->n < c->max)
		c->n++;
}

static void
scan_ready_files(Candidates *c)
{
	DIR           *dir;
	struct dirent *de;
	size_t         suffix_len = strlen(READY_SUFFIX);

	c->n = 0;
	c->max = Min(pgbk_lookahead, PGBK_MAX_SLOTS);
	dir = AllocateDir(ARCHIVE_STATUS_DIR);
	while ((de = ReadDirExtended(dir, ARCHIVE_STATUS_DIR, LOG)) != NULL)
	{
		size_t len = strlen(de->d_name);
		char   name[MAXFNAMELEN];

		if (len <= suffix_len || len - suffix_len >= MAXFNAMELEN ||
		    strcmp(de->d_name + len - suffix_len, READY_SUFFIX) != 0)
			continue;
		memcpy(name, de->d_name, len - suffix_len);
		name[len - suffix_len] = '\0';
		candidates_add(c, name);
	}
	FreeDir(dir);
}

/*
 * Log a failed upload the first time and then about once a minute while
 * the same file keeps failing (the oldest is probed every PGBK_PROBE_MS):
 * bk_status shows the latest error at any time.
 */
#define LOG_EVERY_FAILURES (60000 / PGBK_PROBE_MS)

/* Upload one claimed file.  Returns true if it went well. */
static bool
upload_one(int idx, const char *name, bool backlog)
{
	char        path[MAXPGPATH];
	PgbkError   err;
	bool        ok;
	int         failures;
	TimestampTz start;

	/* The archiver may have finished it between our scan and the claim. */
	if (!pgbk_ready_file_exists(name))
	{
		pgbk_slot_release(idx);
		return true;
	}
	snprintf(path, sizeof(path), XLOGDIR "/%s", name);
	pgbk_error_clear(&err);
	start = GetCurrentTimestamp();
	ok = pgbk_push_wal_file(name, path, backlog, &err);
	failures = pgbk_slot_finish(idx, ok);
	if (ok)
		elog(DEBUG1, "\"%s\" uploaded in %.1f ms", name, (GetCurrentTimestamp() - start) / 1000.0);
	if (!ok)
	{
		if (err.code == PGBK_ERR_INTERRUPTED)
			return false;
		/* the message names the file already when it comes from the upload */
		pgbk_report_error(failures <= 1 || failures % LOG_EVERY_FAILURES == 0 ? LOG : DEBUG1, &err,
		                  strstr(err.msg, name) ? NULL : psprintf("could not upload \"%s\"", name));
	}
	return ok;
}

static void
uploader_detach(int code, Datum arg)
{
	pgbk_uploader_detach(uploader_index);
	/* give back claims we hold, so the archiver does not wait for us */
	pgbk_slots_release_mine();
	pgbk_context_reset();
}

void
pgbk_uploader_main(Datum arg)
{
	MemoryContext loop_context;
	Candidates   *cand;
	int           idle_rounds = 0;

	uploader_index = DatumGetInt32(arg);
	/* queries first: uploads use what CPU they leave (the archiver waits) */
	if (pgbk_uploader_nice > 0)
	{
		errno = 0;
		if (setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + pgbk_uploader_nice) != 0)
			ereport(LOG, (errmsg("could not lower the uploader's CPU priority: %m")));
	}
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgbk_install_hooks();

	if (!pgbk_shmem_available())
		proc_exit(0);
	pgbk_uploader_attach(uploader_index);
	before_shmem_exit(uploader_detach, (Datum) 0);

	loop_context =
	    AllocSetContextCreate(TopMemoryContext, "pgbk uploader loop", ALLOCSET_DEFAULT_SIZES);
	cand = MemoryContextAllocZero(TopMemoryContext, sizeof(Candidates));

	for (;;)
	{
		int  slot;
		char name[MAXFNAMELEN];
		long timeout_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_context);
		MemoryContextSwitchTo(loop_context);

		if (pgbk_archiving_active())
		{
			pgbk_slots_release_stale();
			scan_ready_files(cand);
			slot = pgbk_slot_claim_next(cand->names, cand->n, name);
			if (slot >= 0)
			{
				idle_rounds = 0;
				/* behind by more than a couple of segments: map them */
				upload_one(slot, name, cand->n > 2);
				continue;
			}
			idle_rounds++;
			/* poll quickly while WAL is flowing, slowly when idle */
			timeout_ms = idle_rounds < 50 ? 100 : 1000;
		}
		else
			timeout_ms = 5000;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
