/*
 * pgbk.c
 *	  Program pgbk.so, its entry point; uses the backend (GUC, background workers) and
 *	  slots.h.
 *	  Module entry: settings (pgbk.*), shared memory hooks and the background
 *	  workers that pgbk starts when it is in shared_preload_libraries.
 *
 * The library plays three roles:
 *	 - archive module (archive_library = 'pgbk', archive.c);
 *	 - uploader workers that push WAL ahead of the archiver (uploader.c);
 *	 - a scheduler worker that keeps the catalog in step with the repository
 *	   and runs scheduled jobs (scheduler.c);
 *	 plus the SQL API (the bk_* functions).
 */
#include "pgbk.h"
#include "slots.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char *pgbk_config_path = NULL;
int   pgbk_upload_workers = 2;
int   pgbk_lookahead = 16;
int   pgbk_uploader_nice = 10;
char *pgbk_database = NULL;
int   pgbk_catalog_sync_interval = 60;
int   pgbk_backup_parallel = 2;
int   pgbk_base_backup_interval = 0;
int   pgbk_backup_wal_timeout = 600;
int   pgbk_expire_interval = 1440;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void _PG_init(void);

static void
pgbk_shmem_request_hook(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	pgbk_shmem_request();
}

static void
pgbk_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	pgbk_shmem_startup();
}

static void
register_workers(void)
{
	BackgroundWorker worker;
	int              i;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgbk");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgbk_uploader_main");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgbk uploader");
	for (i = 0; i < pgbk_upload_workers; i++)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN, "pgbk uploader %d", i);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgbk");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgbk_scheduler_main");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgbk scheduler");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgbk scheduler");
	worker.bgw_main_arg = (Datum) 0;
	RegisterBackgroundWorker(&worker);
}

void
_PG_init(void)
{
	DefineCustomStringVariable(
	    "pgbk.config", "Path of the pgbk.conf file describing the repository.",
	    "The same file is used by the pgbk command-line tool. Empty "
	    "disables pgbk's archiving and jobs.",
	    &pgbk_config_path, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.upload_workers",
	                        "Number of background workers that upload WAL ahead of the archiver.",
	                        "0 makes the archive module upload each file by itself.",
	                        &pgbk_upload_workers, 2, 0, PGBK_MAX_UPLOADERS, PGC_POSTMASTER, 0, NULL,
	                        NULL, NULL);

	DefineCustomIntVariable("pgbk.uploader_nice",
	                        "How much lower than queries the uploaders' CPU priority is (nice).",
	                        "Compression competes with queries for CPU; with a positive value "
	                        "queries come first.",
	                        &pgbk_uploader_nice, 10, 0, 19, PGC_POSTMASTER, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.lookahead",
	                        "How many ready WAL files the uploaders work on ahead "
	                        "of the archiver.",
	                        NULL, &pgbk_lookahead, 16, 1, PGBK_MAX_SLOTS / 2, PGC_SIGHUP, 0, NULL,
	                        NULL, NULL);

	DefineCustomStringVariable("pgbk.database",
	                           "Database whose pgbk catalog the scheduler worker maintains.", NULL,
	                           &pgbk_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.catalog_sync_interval",
	                        "Seconds between full listings of the repository into the catalog.",
	                        NULL, &pgbk_catalog_sync_interval, 300, 10, 86400, PGC_SIGHUP,
	                        GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.backup_parallel",
	                        "Processes that read, compress, encrypt and upload base backup files.",
	                        NULL, &pgbk_backup_parallel, 2, 1, 32, PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable(
	    "pgbk.base_backup_interval",
	    "Take a base backup when the newest one is older than this; 0 disables.",
	    "The scheduler worker checks once a minute.", &pgbk_base_backup_interval, 0, 0,
	    INT_MAX / 60, PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.backup_wal_timeout",
	                        "How long a base backup waits for the WAL up to its stop point to "
	                        "reach the repository before it fails.",
	                        NULL, &pgbk_backup_wal_timeout, 600, 10, 86400, PGC_SIGHUP, GUC_UNIT_S,
	                        NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.expire_interval",
	                        "How often the scheduler applies retention by depth (bk_expire); 0 "
	                        "disables.",
	                        NULL, &pgbk_expire_interval, 1440, 0, INT_MAX / 60, PGC_SIGHUP,
	                        GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.debug_expire_fail_after",
	                        "Testing only: make bk_expire fail after this many deletions.", NULL,
	                        &pgbk_debug_expire_fail_after, 0, 0, INT_MAX, PGC_SUSET,
	                        GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);

	DefineCustomIntVariable("pgbk.debug_expire_progress_every",
	                        "Testing only: bk_expire reports progress every this many deletions.",
	                        NULL, &pgbk_debug_expire_progress_every, 1000, 1, INT_MAX, PGC_SUSET,
	                        GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);

	MarkGUCPrefixReserved("pgbk");

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgbk_shmem_request_hook;
#else
	pgbk_shmem_request_hook();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgbk_shmem_startup_hook;

	register_workers();
}
