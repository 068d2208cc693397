/*
 * scheduler.c
 *	  Program pgbk.so; uses the backend (SPI, background workers), slots.h and the
 *	  extension's catalog sync, base backup and expiry functions.
 *	  The scheduler background worker: connected to pgbk.database, it keeps
 *	  the catalog in step with the repository (woken by the uploaders after
 *	  each upload, and periodically for `pgbk wal-push` uploads), records
 *	  queued events in pgbk.event, and runs scheduled jobs.
 *
 * It does nothing while the extension is not installed in its database,
 * and it never writes to the repository itself: a restored cluster whose
 * pgbk.config is empty stays silent (DESIGN.md invariant 3).
 */
#include "pgbk.h"
#include "slots.h"

#include <sys/stat.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogarchive.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Minimum time between two incremental catalog syncs. */
#define SYNC_MIN_INTERVAL_MS 1000

static bool
extension_installed(void)
{
	return OidIsValid(get_extension_oid("pgbk", true));
}

static void
insert_events(void)
{
	PgbkPendingEvent events[PGBK_MAX_EVENTS];
	int              n = pgbk_take_events(events, PGBK_MAX_EVENTS);
	int              i;

	for (i = 0; i < n; i++)
	{
		Oid   types[4] = {TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
		Datum values[4];

		values[0] = TimestampTzGetDatum(events[i].at);
		values[1] = CStringGetTextDatum(events[i].kind);
		values[2] = CStringGetTextDatum(events[i].object);
		values[3] = CStringGetTextDatum(events[i].message);
		if (SPI_execute_with_args("INSERT INTO pgbk.event (at, kind, object, message) "
		                          "VALUES ($1, $2, $3, $4)",
		                          4, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record event");
	}
}

/*
 * Start a base backup when pgbk.base_backup_interval says one is due: the
 * newest backup in the catalog started longer ago than the interval.  It is
 * an incremental one when a parent is usable, unless the chain's full
 * backup is older than pgbk.full_backup_interval or the chain has
 * pgbk.max_backup_chain incrementals already (backup.c decides, so that
 * bk_base_backup(type => 'auto') does the same).
 */
static void
maybe_scheduled_backup(void)
{
	bool  isnull;
	Datum due;
	char  id[32];
	char *sql;

	if (pgbk_base_backup_interval <= 0 || !pgbk_shmem_available() || pgbk_backup_running(NULL) ||
	    !pgbk_archiving_active())
		return;
	sql = psprintf("SELECT coalesce(max(start_time) < now() - interval '%d minutes', true) "
	               "FROM pgbk.backup",
	               pgbk_base_backup_interval);
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.backup");
	due = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull || !DatumGetBool(due))
		return;
	/* 'auto': incremental unless full_backup_interval or max_backup_chain say full */
	(void) pgbk_start_backup(MyDatabaseId, pgbk_backup_request_of("auto"), id, NULL);
	ereport(LOG, (errmsg("scheduled base backup %s started", id)));
}

/* Retention by depth, when pgbk.expire_interval says it is due. */
static void
scheduled_expire(void)
{
	char *schema;

	if (SPI_execute("SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension "
	                "WHERE extname = 'pgbk'",
	                true, 1) != SPI_OK_SELECT ||
	    SPI_processed != 1)
		elog(ERROR, "extension \"pgbk\" not found");
	schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (SPI_execute(psprintf("SELECT count(*) FROM %s.bk_expire(false)", schema), false, 0) !=
	    SPI_OK_SELECT)
		elog(ERROR, "scheduled expiry failed");
	ereport(LOG, (errmsg("scheduled expiry done")));
}

/*
 * What one scheduler round does, named at the call (pgBackRest's "variadic
 * functions"): scheduler_round(.sync = true) leaves every other field
 * false.  `header` only keeps the initialiser valid when no field is given.
 */
typedef struct SchedulerRoundParam
{
	bool header;
	bool sync;         /* catalog the repository's new objects */
	bool backups;      /* ... and backups the catalog lacks (periodic) */
	bool backup_check; /* start a base backup if one is due */
	bool expire;       /* retention by depth (bk_expire) */
} SchedulerRoundParam;

#define scheduler_round(...)                                                                       \
	scheduler_round_run((SchedulerRoundParam){.header = false, __VA_ARGS__})

/*
 * One round of catalog work in its own transaction.  Errors are caught and
 * logged so that a repository outage does not kill the worker.  Queued
 * events are recorded in every round.
 */
static void
scheduler_round_run(SchedulerRoundParam round)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pgbk catalog sync");

	PG_TRY();
	{
		if (extension_installed())
		{
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			insert_events();
			if (round.sync && pgbk_config_path[0] != '\0')
				(void) pgbk_catalog_sync(false, round.backups);
			if (round.backup_check)
				maybe_scheduled_backup();
			if (round.expire && pgbk_config_path[0] != '\0')
				scheduled_expire();
			SPI_finish();
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Timeline history files no archiver was told about.  PostgreSQL marks a new
 * timeline's history file .ready only if archiving is on when it promotes;
 * a server promoted with archiving off (a copy restored by pgbk restore,
 * say) that archives later keeps the file in pg_wal but never sends it, and
 * a restore from its repository could then not follow the timeline switch.
 * Mark those of the current timeline and its ancestors .ready that have
 * neither .ready nor .done: the archiver then sends them the usual way (a
 * history file restored from an archive is .done already).
 */
static void
notify_unarchived_history(void)
{
	TimeLineID tli;

	if (RecoveryInProgress() || !pgbk_archiving_active())
		return;
	for (tli = GetWALInsertionTimeLine(); tli > 1; tli--)
	{
		char        name[MAXFNAMELEN];
		char        path[MAXPGPATH];
		struct stat st;

		TLHistoryFileName(name, tli);
		snprintf(path, sizeof(path), XLOGDIR "/%s", name);
		if (stat(path, &st) != 0 || XLogArchiveIsReadyOrDone(name))
			continue;
		ereport(LOG, (errmsg("archiving timeline history file \"%s\", which was written "
		                     "while archiving was off",
		                     name)));
		XLogArchiveNotify(name);
	}
}

/*
 * Finished WAL segments of the current timeline that no archiver was told
 * about.  A backend that completes a segment flushes it and only then
 * creates its .ready file; killed in between (kill -9, out-of-memory killer)
 * the server restarts after crash recovery, goes on writing the next
 * segments, and that one segment has neither .ready nor .done.  PostgreSQL
 * would mark it .ready only when a checkpoint comes to recycle it, which can
 * be hours later: meanwhile every later segment is archived and the
 * repository has a hole that no restore can cross.  Mark such segments
 * .ready as the checkpointer would, but now: only below the segment being
 * written (a recycled segment waiting for reuse has a future name), and only
 * once per start of the scheduler (which a crash restart starts anew), as
 * soon as archiving is active, not while backends are finishing segments.
 * Returns whether it looked (false: in recovery, or archiving not active).
 */
static bool
notify_unarchived_segments(void)
{
	TimeLineID     tli;
	XLogSegNo      current;
	DIR           *dir;
	struct dirent *de;

	if (RecoveryInProgress() || !pgbk_archiving_active())
		return false;
	tli = GetWALInsertionTimeLine();
	XLByteToSeg(GetXLogInsertRecPtr(), current, wal_segment_size);
	dir = AllocateDir(XLOGDIR);
	while ((de = ReadDir(dir, XLOGDIR)) != NULL)
	{
		TimeLineID seg_tli;
		XLogSegNo  segno;

		if (!IsXLogFileName(de->d_name))
			continue;
		XLogFromFileName(de->d_name, &seg_tli, &segno, wal_segment_size);
		if (seg_tli != tli || segno >= current || XLogArchiveIsReadyOrDone(de->d_name))
			continue;
		ereport(LOG, (errmsg("archiving WAL segment \"%s\", which was finished but never "
		                     "marked ready for the archiver (a process killed after "
		                     "writing it?)",
		                     de->d_name)));
		XLogArchiveNotify(de->d_name);
	}
	FreeDir(dir);
	return true;
}

static void
scheduler_detach(int code, Datum arg)
{
	pgbk_scheduler_detach();
	pgbk_context_reset();
}

void
pgbk_scheduler_main(Datum arg)
{
	TimestampTz last_sync = 0;
	TimestampTz last_full = 0;
	bool        dirty = true;
	TimestampTz last_backup_check = 0;
	TimestampTz last_expire = 0;
	bool        history_check = true;
	bool        segments_checked = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgbk_install_hooks();

	BackgroundWorkerInitializeConnection(pgbk_database, NULL, 0);

	if (pgbk_shmem_available())
	{
		pgbk_scheduler_attach();
		before_shmem_exit(scheduler_detach, (Datum) 0);
	}

	for (;;)
	{
		TimestampTz now;
		int         rc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			history_check = true; /* archiving may have just been turned on */
		}
		if (history_check)
		{
			history_check = false;
			notify_unarchived_history();
		}
		if (!segments_checked)
			segments_checked = notify_unarchived_segments();

		/*
		 * Sync when woken by an upload or an event (at most once a second, so
		 * a burst of uploads costs one listing), and periodically for uploads
		 * made outside this server (pgbk wal-push).
		 */
		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_full, now, pgbk_catalog_sync_interval * 1000))
		{
			last_full = now;
			last_sync = now;
			dirty = false;
			scheduler_round(.sync = true, .backups = true);
		}
		else if (dirty && TimestampDifferenceExceeds(last_sync, now, SYNC_MIN_INTERVAL_MS))
		{
			dirty = false;
			last_sync = now;
			scheduler_round(.sync = true);
		}

		if (pgbk_base_backup_interval > 0 &&
		    TimestampDifferenceExceeds(last_backup_check, now, 60 * 1000))
		{
			last_backup_check = now;
			scheduler_round(.backup_check = true);
		}

		/* the first expiry waits one interval after start-up */
		if (last_expire == 0)
			last_expire = now;
		if (pgbk_expire_interval > 0 && pgbk_archiving_active() &&
		    TimestampDifferenceExceeds(
		        last_expire, now, (int) Min((int64) pgbk_expire_interval * 60000, PG_INT32_MAX)))
		{
			last_expire = now;
			scheduler_round(.expire = true);
		}

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
		               SYNC_MIN_INTERVAL_MS, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			dirty = true;
		ResetLatch(MyLatch);
	}
}
