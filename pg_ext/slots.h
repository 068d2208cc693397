/*
 * slots.h
 *	  Program pgbk.so; uses backend headers and common/base.
 *	  pgbk's shared memory, behind the functions of its one owner (slots.c):
 *	  the upload slot state machine, the archiving status, queued events,
 *	  the state of the running base backup, the latches that wake the
 *	  workers, and the header cache.  The shared struct itself is private to
 *	  slots.c: other files never touch its fields.
 */
#ifndef PGBK_SLOTS_H
#define PGBK_SLOTS_H

#include "postgres.h"

#include "access/xlog_internal.h"
#include "datatype/timestamp.h"

#include "base/pgbk_common.h"

#define PGBK_MAX_SLOTS     256
#define PGBK_MAX_UPLOADERS 16
#define PGBK_ERROR_LEN     512
#define PGBK_BACKUP_ID_LEN 32 /* MANIFEST_ID_LEN */

extern void pgbk_shmem_request(void);
extern void pgbk_shmem_startup(void);
/* False when pgbk is not in shared_preload_libraries: no slots, no status. */
extern bool pgbk_shmem_available(void);

/* ---- upload slots: one per WAL file being uploaded (see slots.c) ---- */

/*
 * While a file fails, the uploaders back off (up to 30 s), but the oldest
 * pending file is tried again every PGBK_PROBE_MS whatever its backoff: that
 * attempt notices the repository's return without new WAL, and its success
 * wakes everyone (pgbk_status_success).
 */
#define PGBK_PROBE_MS 2000

/*
 * The archive callback's claim on file.  Returns true if an uploader has
 * uploaded it already (nothing to do).  Otherwise returns false with a claim
 * held by this process in *slot_out, or -1 there when the table is full
 * (upload without a slot) or a shutdown was requested while waiting.  Waits
 * while an uploader holds the file, and leaves a file nobody holds to the
 * uploaders for a moment when they run.
 */
extern bool pgbk_slot_claim_or_wait(const char *file, int *slot_out);
/*
 * An uploader's claim: the first of names[0..n-1] (archive order) that
 * nobody works on and whose retry is due.  Returns the slot and copies its
 * name into name_out, or -1 if there is nothing to do right now.
 */
extern int pgbk_slot_claim_next(char names[][MAXFNAMELEN], int n, char *name_out);
/* The holder's upload ended: DONE or FAILED.  Returns the file's
 * consecutive failures (0 after a success).  slot < 0 does nothing. */
extern int pgbk_slot_finish(int slot, bool ok);
/* The holder gives its claim back without an outcome (the file went). */
extern void pgbk_slot_release(int slot);
/* Give back every claim of this process (it exits). */
extern void pgbk_slots_release_mine(void);
/* Free DONE/FAILED slots whose file is no longer waiting to be archived. */
extern void pgbk_slots_release_stale(void);
/* Is pg_wal/archive_status/<name>.ready still there? */
extern bool pgbk_ready_file_exists(const char *name);

/* ---- latches: who to wake ---- */
extern void pgbk_uploader_attach(int index);
extern void pgbk_uploader_detach(int index);
extern void pgbk_scheduler_attach(void);
extern void pgbk_scheduler_detach(void);
extern void pgbk_wake_uploaders(void);
/* Wake PostgreSQL's archiver process (it sleeps up to 60 s after failures). */
extern void pgbk_wake_archiver(void);
extern void pgbk_wake_scheduler(void);

/* ---- archiving status, for bk_status ---- */

#define PGBK_CALLBACK_RING 4096

typedef struct PgbkArchiveStatus
{
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
} PgbkArchiveStatus;

/* Record the outcome of one upload attempt in the status fields. */
extern void pgbk_status_success(const char *file, uint64 raw_bytes, uint64 stored_bytes,
                                bool already_present);
extern void pgbk_status_failure(const char *file, const char *message, bool duplicate);
/* A copy of the status; false (and zeroes) without shared memory. */
extern bool pgbk_status_get(PgbkArchiveStatus *out);
/* The duration of one archive callback, microseconds. */
extern void pgbk_callback_time_add(uint64 us);
/* Copies the ring of the last PGBK_CALLBACK_RING durations into times
 * (entry i % PGBK_CALLBACK_RING is callback i) and returns how many
 * callbacks were recorded in all. */
extern uint64 pgbk_callback_times_get(uint32 *times);

/* ---- events for pgbk.event, drained by the scheduler ---- */

#define PGBK_MAX_EVENTS 16

typedef struct PgbkPendingEvent
{
	TimestampTz at;
	char        kind[32];
	char        object[MAXFNAMELEN];
	char        message[PGBK_ERROR_LEN];
} PgbkPendingEvent;

/* Queue an event (the oldest is dropped when the queue is full). */
extern void pgbk_queue_event(const char *kind, const char *object, const char *message);
/* Take queued events (returns how many were copied into out). */
extern int pgbk_take_events(PgbkPendingEvent *out, int max);

/* ---- base backups: at most one at a time (backup.c runs them) ---- */

typedef struct PgbkBackupState
{
	bool        running;
	uint64      seq; /* increments with each backup started */
	int         pid; /* coordinator, 0 until it attached */
	char        id[PGBK_BACKUP_ID_LEN];
	char        phase[32];
	TimestampTz started_at;
	uint64      bytes_total;
	uint64      bytes_done;
	uint64      stored_done;
	int         files_total;
	int         files_done;
	int         workers;
	/* what kind of backup it is (kept after it ends, like the counters) */
	char type[16];                       /* "full", "incremental"; "" not decided */
	char parent[PGBK_BACKUP_ID_LEN];     /* incremental: the backup it builds on */
	char changes[16];                    /* incremental: "summaries", "page-lsn" */
	char changes_reason[PGBK_ERROR_LEN]; /* why it fell back (page-lsn or full) */
	/* outcome of the last finished backup (last_seq 0: none yet) */
	uint64      last_seq;
	bool        last_ok;
	char        last_id[PGBK_BACKUP_ID_LEN];
	char        last_error[PGBK_ERROR_LEN];
	TimestampTz last_finished_at;
} PgbkBackupState;

/* A copy of the backup state (zeroes without shared memory). */
extern void pgbk_backup_get(PgbkBackupState *out);
/* Is a backup running?  Copies its id into id_out (may be NULL). */
extern bool pgbk_backup_running(char *id_out);
/* Is a backup running (its state copied into running_out)? */
extern bool pgbk_backup_busy(PgbkBackupState *running_out);
/* Is id later than every backup id handed out so far? */
extern bool pgbk_backup_id_is_new(const char *id);
/*
 * Mark backup id running, progress zeroed.  Returns its sequence number, or
 * 0 if another backup is running (its state copied into running_out): one
 * whose coordinator is alive, or that started less than a minute ago and
 * has no coordinator yet.
 */
extern uint64 pgbk_backup_begin(const char *id, PgbkBackupState *running_out);
/* The coordinator could not be started: back to idle. */
extern void pgbk_backup_abandon(void);
/* The coordinator starts: record its pid, copy the id into id_out. */
extern void pgbk_backup_attach(char *id_out);
extern void pgbk_backup_set_phase(const char *phase);
extern void pgbk_backup_set_totals(uint64 bytes, int files);
extern void pgbk_backup_set_workers(int workers);
/* The backup's type, parent, how its blocks were chosen and why (NULLs: ""). */
extern void pgbk_backup_set_type(const char *type, const char *parent, const char *changes,
                                 const char *reason);
extern void pgbk_backup_add_progress(uint64 raw, uint64 stored, int files, int64 total_delta,
                                     int files_delta);
/* The backup ended: record its outcome (error: NULL when ok), back to idle. */
extern void pgbk_backup_finish(bool ok, const char *error);
/* The outcome of backup seq if it is the last finished one (error: at
 * least PGBK_ERROR_LEN bytes). */
extern bool pgbk_backup_outcome(uint64 seq, bool *ok, char *error);

/* ---- headers of the objects this server uploaded most recently ---- */

/*
 * So the scheduler can catalogue them without reading them back from the
 * repository (one request less per WAL segment on S3).
 */
#define PGBK_HEADER_CACHE 64

extern void pgbk_header_cache_put(const char *key, const void *header, size_t len);
/* Copies the cached header of key into out (appended); false if absent. */
extern bool pgbk_header_cache_get(const char *key, PgbkBuf *out);

#endif /* PGBK_SLOTS_H */
