/*
 * pgbk.h
 *	  Program pgbk.so; uses backend headers and common/ config, context, repo, format
 *	  and wal (walpush).
 *	  Declarations shared by the extension's source files: settings and the
 *	  per-process repository context.  Shared memory is behind slots.h.
 */
#ifndef PGBK_EXT_H
#define PGBK_EXT_H

#include "postgres.h"

#include "access/xlog_internal.h"
#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "postmaster/bgworker.h"

#include "config/config.h"
#include "context/context.h"
#include "format/codec.h"
#include "format/keys.h"
#include "repo/repo.h"
#include "wal/walpush.h"

/* ---- settings (pgbk.c) ---- */
extern char *pgbk_config_path;
extern int   pgbk_upload_workers;
extern int   pgbk_lookahead;
extern int   pgbk_uploader_nice;
extern char *pgbk_database;
extern int   pgbk_catalog_sync_interval;
extern int   pgbk_backup_parallel;
extern int   pgbk_base_backup_interval;
extern int   pgbk_full_backup_interval; /* seconds */
extern int   pgbk_max_backup_chain;
extern int   pgbk_backup_wal_timeout;
extern int   pgbk_expire_interval;
extern int   pgbk_debug_expire_fail_after;
extern int   pgbk_debug_expire_progress_every;

/* ---- repository context for this process (backend.c) ---- */

/*
 * common/context's repository context, opened with the key ring (it
 * authenticates every object) and the repository.
 */
typedef PgbkRepoContext PgbkContext;

/*
 * The repository context of this process, loaded from pgbk.config and
 * reloaded when the setting or the file changes.  Returns NULL and fills err
 * when the configuration is missing or invalid.
 */
extern PgbkContext *pgbk_context(PgbkError *err);
extern void         pgbk_context_reset(void);
/* The WAL pusher of the current context (buffers reused across WAL files). */
extern WalPusher *pgbk_context_pusher(void);
/* A second one, for the file an uploader prepares while it stores another. */
extern WalPusher *pgbk_context_pusher_ahead(void);
/* Counts the contexts this process has loaded: a new one may read more. */
extern uint64 pgbk_context_generation;

/* Install interrupt/sleep/log hooks for common/ code in this process. */
extern void pgbk_install_hooks(void);

/* ereport(elevel) a PgbkError with a SQLSTATE chosen from its class. */
extern void pgbk_report_error(int elevel, const PgbkError *err, const char *context);
extern int  pgbk_errcode(PgbkStatus code);

/* ---- archiving (archive.c, uploader.c) ---- */
extern PGDLLEXPORT void pgbk_uploader_main(Datum arg);
extern PGDLLEXPORT void pgbk_scheduler_main(Datum arg);
extern PGDLLEXPORT void pgbk_backup_main(Datum arg);
extern PGDLLEXPORT void pgbk_copier_main(Datum arg);

/* backup.c: start a base backup in the background for database dboid.
 * Fills id_out (32 bytes) and returns the sequence number of the backup;
 * ereports ERROR if one is already running or archiving is off.  With
 * handle_out the caller can wait for the coordinator to exit. */
/* request: pgbk_backup_request_of("full" | "incremental" | "auto") */
extern int    pgbk_backup_request_of(const char *type);
extern uint64 pgbk_start_backup(Oid dboid, int request, char *id_out,
                                BackgroundWorkerHandle **handle_out);
extern bool   pgbk_archiving_active(void);

/* catalog.c: sync the catalog from the repository (in a transaction, SPI
 * connected); returns rows added. */
extern int64 pgbk_catalog_sync(bool full, bool backups);

struct Manifest;
/* catalog.c: insert a backup's row (SPI connected). */
extern void pgbk_catalog_record_backup(const struct Manifest *m);

/*
 * Push one file from pg_wal into the repository (upload + duplicate rule).
 * Returns true on success; on failure fills err.
 */
extern bool pgbk_push_wal_file(const char *file, const char *path, bool backlog, PgbkError *err);

/*
 * The same in two steps (push.c): pgbk_push_prepare(walpush_prepare) runs
 * no backend code and may run in a helper thread; pgbk_push_store, in the
 * process's own thread, stores what was prepared (prep_st is the prepare's
 * outcome, err its error) and records the outcome as pgbk_push_wal_file.
 */
typedef struct PgbkPushJob
{
	WalPusher    *pusher;
	char          file[MAXFNAMELEN];
	char          path[MAXPGPATH];
	bool          backlog;
	WalPushResult res;
	PgbkStatus    st;
	PgbkError     err;
} PgbkPushJob;
extern void pgbk_push_prepare(PgbkPushJob *job);
extern bool pgbk_push_store(PgbkPushJob *job, PgbkError *err);

#endif /* PGBK_EXT_H */
