/*
 * pgbk.h
 *	  Declarations shared by the extension's source files: settings, the
 *	  shared-memory state used by the archive module, the uploader workers and
 *	  the scheduler, and the per-process repository context.
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
extern int   pgbk_backup_wal_timeout;
extern int   pgbk_expire_interval;
extern int   pgbk_debug_expire_fail_after;
extern int   pgbk_debug_expire_progress_every;

/* ---- shared memory (shmem.c) ---- */

#define BACKUP_IDLE    0
#define BACKUP_RUNNING 1

#define PGBK_MAX_SLOTS     256
#define PGBK_MAX_UPLOADERS 16
#define PGBK_ERROR_LEN     512

typedef enum UploadSlotState
{
	SLOT_FREE = 0,
	SLOT_CLAIMED, /* an uploader or the archiver is uploading it */
	SLOT_DONE,    /* durably in the repository */
	SLOT_FAILED   /* last attempt failed; retry after retry_at */
} UploadSlotState;

typedef struct UploadSlot
{
	char            name[MAXFNAMELEN];
	UploadSlotState state;
	int             owner_pid; /* who holds the claim */
	int             failures;  /* consecutive failures */
	TimestampTz     retry_at;  /* FAILED: uploaders wait until then */
	TimestampTz     failed_at; /* FAILED: when the last attempt failed */
} UploadSlot;

/*
 * While a file fails, the uploaders back off (pgbk_retry_time, up to 30 s),
 * but the oldest pending file is tried again every PGBK_PROBE_MS whatever its
 * backoff: that attempt notices the repository's return without new WAL, and
 * its success wakes everyone (pgbk_status_success).
 */
#define PGBK_PROBE_MS 2000

#define PGBK_MAX_EVENTS    16
#define PGBK_CALLBACK_RING 4096

typedef struct PgbkPendingEvent
{
	TimestampTz at;
	char        kind[32];
	char        object[MAXFNAMELEN];
	char        message[PGBK_ERROR_LEN];
} PgbkPendingEvent;

typedef struct PgbkShared
{
	LWLock           *lock;    /* protects everything below */
	ConditionVariable slot_cv; /* broadcast when a slot leaves CLAIMED */

	UploadSlot slots[PGBK_MAX_SLOTS];

	/* archiving status, for bk_status */
	TimestampTz last_success_at;
	char        last_success_file[MAXFNAMELEN];
	TimestampTz failing_since; /* 0 when the last attempt succeeded */
	TimestampTz last_failure_at;
	char        last_failure_file[MAXFNAMELEN];
	char        last_error[PGBK_ERROR_LEN];
	uint64      files_uploaded;
	uint64      raw_bytes_uploaded;
	uint64      stored_bytes_uploaded;
	uint64      files_already_present;
	uint64      duplicates_refused;
	uint64      callback_fast;   /* callback found the upload done */
	uint64      callback_waited; /* callback waited for an uploader */
	uint64      callback_self;   /* callback uploaded by itself */

	/* events for pgbk.event, drained by the scheduler (oldest dropped
	 * when full) */
	int              nevents;
	int              events_dropped;
	PgbkPendingEvent events[PGBK_MAX_EVENTS];

	/* base backups (backup.c): at most one at a time */
	int         backup_state; /* BACKUP_IDLE / BACKUP_RUNNING */
	uint64      backup_seq;   /* increments with each backup started */
	int         backup_pid;   /* coordinator */
	char        backup_id[32];
	char        backup_phase[32];
	TimestampTz backup_started_at;
	uint64      backup_bytes_total;
	uint64      backup_bytes_done;
	uint64      backup_stored_done;
	int         backup_files_total;
	int         backup_files_done;
	int         backup_workers;
	/* outcome of the last finished backup */
	uint64      backup_last_seq;
	bool        backup_last_ok;
	char        backup_last_id[32];
	char        backup_last_error[PGBK_ERROR_LEN];
	TimestampTz backup_last_finished_at;

	/* durations of the last archive callbacks, microseconds (ring) */
	uint32 callback_us[PGBK_CALLBACK_RING];
	uint64 callback_count;

	/* latches to wake: uploaders (new work) and the scheduler (new objects) */
	Latch *uploader_latch[PGBK_MAX_UPLOADERS];
	Latch *scheduler_latch;
} PgbkShared;

extern PgbkShared *pgbk_shared;

/*
 * Headers of the objects this server uploaded most recently, so the
 * scheduler can catalogue them without reading them back from the
 * repository (one request less per WAL segment on S3).
 */
#define PGBK_HEADER_CACHE 64

extern void pgbk_header_cache_put(const char *key, const void *header, size_t len);
/* Copies the cached header of key into out (appended); false if absent. */
extern bool pgbk_header_cache_get(const char *key, PgbkBuf *out);

extern void pgbk_shmem_request(void);
extern void pgbk_shmem_startup(void);
extern bool pgbk_shmem_available(void);

/* Record the outcome of one upload attempt in the status fields. */
extern void pgbk_status_success(const char *file, uint64 raw_bytes, uint64 stored_bytes,
                                bool already_present);
extern void pgbk_status_failure(const char *file, const char *message, bool duplicate);
extern void pgbk_wake_uploaders(void);
/* Wake PostgreSQL's archiver process (it sleeps up to 60 s after failures). */
extern void pgbk_wake_archiver(void);
/* Mark slot idx (lock held) FAILED after one more failed attempt; returns
 * the number of consecutive failures. */
extern int pgbk_slot_failed(int idx);
/* Is pg_wal/archive_status/<name>.ready still there? */
extern bool pgbk_ready_file_exists(const char *name);
/* Free DONE/FAILED slots whose file is no longer waiting to be archived. */
extern void pgbk_release_stale_slots(void);
/* Queue an event for the scheduler to insert into pgbk.event. */
extern void pgbk_queue_event(const char *kind, const char *object, const char *message);
/* Take queued events (returns how many were copied into out). */
extern int pgbk_take_events(struct PgbkPendingEvent *out, int max);
/* When a file that failed `failures` times in a row may be tried again. */
extern TimestampTz pgbk_retry_time(int failures);
extern void        pgbk_wake_scheduler(void);

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
extern uint64 pgbk_start_backup(Oid dboid, char *id_out, BackgroundWorkerHandle **handle_out);
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

#endif /* PGBK_EXT_H */
