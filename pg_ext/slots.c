/*
 * slots.c
 *	  Program pgbk.so; uses the backend (shared memory, LWLock, latches) and
 *	  common/format (layout, manifests).
 *	  pgbk's shared memory and its one owner.  The struct is private to this
 *	  file; the archive callback, the uploaders, the scheduler, base backups
 *	  and the status functions go through the functions of slots.h.
 *
 * It holds the upload slot table (below), the archiving status shown by
 * bk_status with the durations of the last archive callbacks, the events
 * queued for pgbk.event, the state and progress of the one base backup that
 * may run, the latches that wake the uploaders and the scheduler, and the
 * headers of the objects uploaded last.  One LWLock protects it all.
 *
 * Upload slots.  The uploader workers push WAL ahead of PostgreSQL's
 * archiver; a slot per file lets the archive callback find a file already
 * uploaded (DESIGN.md invariant 1: the callback returns true only once that
 * exact file is in the repository).  A slot moves like this:
 *
 *	FREE ----claim----> CLAIMED ----finish(ok)----> DONE ---stale---> FREE
 *	                     ^    |                                         ^
 *	  claim (retry due,  |    | finish(failed)                          |
 *	  or the archiver)   |    v                                         |
 *	                     FAILED -------------------stale----------------+
 *
 *	CLAIMED --release--> FREE: the holder gives its claim back without an
 *	outcome (the file went meanwhile, or the holder exits).
 *
 * Only the holder of a claim (owner_pid) moves a CLAIMED slot on, except
 * that the archiver takes over the claim of a process that died.  A slot
 * stays DONE until the archiver has renamed the .ready file (stale then
 * frees it): freeing it earlier would let an uploader that scanned just
 * before take the file up again.  Every move out of CLAIMED broadcasts
 * slot_cv, on which the archiver waits for an uploader.
 *
 * The table has a fixed size (PGBK_MAX_SLOTS), so memory does not grow with
 * the number of pending WAL files: uploaders claim at most pgbk.lookahead
 * files at a time, and slots are freed as soon as the archiver has been told
 * (or the file is no longer .ready).
 */
#include "pgbk.h"
#include "slots.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "postmaster/pgarch.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "format/layout.h"
#include "format/manifest.h"

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

typedef struct PgbkShared
{
	LWLock           *lock;    /* protects everything below */
	ConditionVariable slot_cv; /* broadcast when a slot leaves CLAIMED */

	UploadSlot slots[PGBK_MAX_SLOTS];

	PgbkArchiveStatus status;

	/* events for pgbk.event, drained by the scheduler (oldest dropped
	 * when full) */
	int              nevents;
	int              events_dropped;
	PgbkPendingEvent events[PGBK_MAX_EVENTS];

	/* base backups (backup.c): at most one at a time */
	PgbkBackupState backup;

	/* durations of the last archive callbacks, microseconds (ring) */
	uint32 callback_us[PGBK_CALLBACK_RING];
	uint64 callback_count;

	/* latches to wake: uploaders (new work) and the scheduler (new objects) */
	Latch *uploader_latch[PGBK_MAX_UPLOADERS];
	Latch *scheduler_latch;

	/*
	 * Backup ids are start times to the second and last_id forgets them when
	 * shared memory is made anew (a crash restart): a backup killed in that
	 * second left its objects under its id.  New ids are after this one, the
	 * second shared memory was made in.
	 */
	char id_floor[PGBK_BACKUP_ID_LEN];
} PgbkShared;

static PgbkShared *pgbk_shared = NULL;

typedef struct CachedHeader
{
	char   key[LAYOUT_KEY_LEN / 4];
	uint32 len;
	uint8  data[CODEC_MAX_HEADER];
} CachedHeader;

typedef struct HeaderCache
{
	uint32       next;
	CachedHeader entries[PGBK_HEADER_CACHE];
} HeaderCache;

static HeaderCache *header_cache = NULL;

StaticAssertDecl(PGBK_BACKUP_ID_LEN == MANIFEST_ID_LEN, "backup ids fit the shared state");

/* How long to wait for an uploader holding a claim before checking it. */
#define CLAIM_CHECK_MS 1000
/* How long an unclaimed file is left to the uploaders before the archive
 * callback uploads it. */
#define HANDOFF_MS 2000

void
pgbk_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PgbkShared)) + MAXALIGN(sizeof(HeaderCache)));
	RequestNamedLWLockTranche("pgbk", 1);
}

void
pgbk_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pgbk_shared = ShmemInitStruct("pgbk", sizeof(PgbkShared), &found);
	if (!found)
	{
		memset(pgbk_shared, 0, sizeof(PgbkShared));
		pgbk_shared->lock = &(GetNamedLWLockTranche("pgbk"))->lock;
		layout_backup_id_format((int64_t) time(NULL), pgbk_shared->id_floor,
		                        sizeof(pgbk_shared->id_floor));
		ConditionVariableInit(&pgbk_shared->slot_cv);
	}
	header_cache = ShmemInitStruct("pgbk header cache", sizeof(HeaderCache), &found);
	if (!found)
		memset(header_cache, 0, sizeof(HeaderCache));
	LWLockRelease(AddinShmemInitLock);
}

bool
pgbk_shmem_available(void)
{
	return pgbk_shared != NULL;
}

/* ------------------------------------------------------------------------
 * Upload slots
 * ------------------------------------------------------------------------ */

/* When a file that failed `failures` times in a row may be tried again. */
static TimestampTz
retry_time(int failures)
{
	int backoff_ms = 500;

	while (failures-- > 1 && backoff_ms < 30000)
		backoff_ms *= 2;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Min(backoff_ms, 30000));
}

/* CLAIMED -> FAILED (lock held); returns the consecutive failures. */
static int
slot_failed(UploadSlot *s)
{
	s->state = SLOT_FAILED;
	s->failures++;
	s->failed_at = GetCurrentTimestamp();
	s->retry_at = retry_time(s->failures);
	s->owner_pid = 0;
	return s->failures;
}

/* FREE -> CLAIMED by this process (lock held). */
static void
slot_claim_free(UploadSlot *s, const char *file)
{
	strlcpy(s->name, file, MAXFNAMELEN);
	s->state = SLOT_CLAIMED;
	s->owner_pid = MyProcPid;
	s->failures = 0;
	s->retry_at = 0;
}

/* Any state -> FREE (lock held). */
static void
slot_free(UploadSlot *s)
{
	s->state = SLOT_FREE;
	s->name[0] = '\0';
	s->owner_pid = 0;
}

static int
find_slot(const char *file)
{
	int i;

	for (i = 0; i < PGBK_MAX_SLOTS; i++)
		if (pgbk_shared->slots[i].state != SLOT_FREE &&
		    strcmp(pgbk_shared->slots[i].name, file) == 0)
			return i;
	return -1;
}

static int
free_slot_index(void)
{
	int i;

	for (i = 0; i < PGBK_MAX_SLOTS; i++)
		if (pgbk_shared->slots[i].state == SLOT_FREE)
			return i;
	return -1;
}

/* Are uploader workers running (they register their latch)? */
static bool
uploaders_alive(void)
{
	int i;

	for (i = 0; i < PGBK_MAX_UPLOADERS; i++)
		if (pgbk_shared->uploader_latch[i] != NULL)
			return true;
	return false;
}

bool
pgbk_slot_claim_or_wait(const char *file, int *slot_out)
{
	bool        waited = false;
	bool        cleaned = false;
	TimestampTz handoff_until = 0;

	*slot_out = -1;
	if (pgbk_shared == NULL)
		return false;
	ConditionVariablePrepareToSleep(&pgbk_shared->slot_cv);
	for (;;)
	{
		int         idx;
		UploadSlot *slot;
		int         owner = 0;

		LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
		idx = find_slot(file);
		if (idx >= 0)
		{
			slot = &pgbk_shared->slots[idx];
			if (slot->state == SLOT_DONE)
			{
				/* stays DONE until the .ready file is gone (see above) */
				pgbk_shared->status.callback_fast++;
				LWLockRelease(pgbk_shared->lock);
				ConditionVariableCancelSleep();
				return true;
			}
			if (slot->state == SLOT_CLAIMED && slot->owner_pid != MyProcPid)
			{
				owner = slot->owner_pid;
				/* an uploader has it: wait below, unless it died */
				if (kill(owner, 0) == 0 || errno != ESRCH)
				{
					if (!waited)
						pgbk_shared->status.callback_waited++;
					waited = true;
					LWLockRelease(pgbk_shared->lock);
					if (ConditionVariableTimedSleep(&pgbk_shared->slot_cv, CLAIM_CHECK_MS,
					                                PG_WAIT_EXTENSION))
					{
						/* timed out: loop and re-check */
					}
					if (ShutdownRequestPending)
					{
						ConditionVariableCancelSleep();
						return false;
					}
					continue;
				}
			}
			/* FAILED, or claimed by a dead process, or by us: take it over */
			slot->state = SLOT_CLAIMED;
			slot->owner_pid = MyProcPid;
			pgbk_shared->status.callback_self++;
			LWLockRelease(pgbk_shared->lock);
			ConditionVariableCancelSleep();
			*slot_out = idx;
			return false;
		}
		/*
		 * Nobody has the file yet.  With uploaders running, leave it to them
		 * (they run at a lower CPU priority than queries, pgbk.uploader_nice)
		 * and wait; upload it here only if none takes it within
		 * HANDOFF_MS.
		 */
		if (uploaders_alive())
		{
			TimestampTz now = GetCurrentTimestamp();

			if (handoff_until == 0)
				handoff_until = TimestampTzPlusMilliseconds(now, HANDOFF_MS);
			if (now < handoff_until)
			{
				if (!waited)
					pgbk_shared->status.callback_waited++;
				waited = true;
				LWLockRelease(pgbk_shared->lock);
				pgbk_wake_uploaders();
				(void) ConditionVariableTimedSleep(&pgbk_shared->slot_cv, 20, PG_WAIT_EXTENSION);
				if (ShutdownRequestPending)
				{
					ConditionVariableCancelSleep();
					return false;
				}
				continue;
			}
		}
		idx = free_slot_index();
		if (idx < 0 && !cleaned)
		{
			/* table full (no uploader cleaning up?): clean and look again */
			LWLockRelease(pgbk_shared->lock);
			pgbk_slots_release_stale();
			cleaned = true;
			continue;
		}
		if (idx >= 0)
			slot_claim_free(&pgbk_shared->slots[idx], file);
		pgbk_shared->status.callback_self++;
		LWLockRelease(pgbk_shared->lock);
		ConditionVariableCancelSleep();
		*slot_out = idx;
		return false;
	}
}

int
pgbk_slot_claim_next(char names[][MAXFNAMELEN], int n, char *name_out)
{
	TimestampTz now = GetCurrentTimestamp();
	int         i, j;
	int         result = -1;

	if (pgbk_shared == NULL)
		return -1;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < n && result < 0; i++)
	{
		int found = -1;
		int free_idx = -1;

		for (j = 0; j < PGBK_MAX_SLOTS; j++)
		{
			UploadSlot *s = &pgbk_shared->slots[j];

			if (s->state == SLOT_FREE)
			{
				if (free_idx < 0)
					free_idx = j;
			}
			else if (strcmp(s->name, names[i]) == 0)
			{
				found = j;
				break;
			}
		}
		if (found >= 0)
		{
			UploadSlot *s = &pgbk_shared->slots[found];

			/* the oldest pending file is probed whatever its backoff */
			if (s->state == SLOT_FAILED &&
			    (s->retry_at <= now ||
			     (i == 0 && TimestampTzPlusMilliseconds(s->failed_at, PGBK_PROBE_MS) <= now)))
			{
				s->state = SLOT_CLAIMED;
				s->owner_pid = MyProcPid;
				result = found;
			}
			continue;
		}
		if (free_idx < 0)
			break; /* table full: let the archiver catch up */
		slot_claim_free(&pgbk_shared->slots[free_idx], names[i]);
		result = free_idx;
	}
	if (result >= 0)
		strlcpy(name_out, pgbk_shared->slots[result].name, MAXFNAMELEN);
	LWLockRelease(pgbk_shared->lock);
	return result;
}

int
pgbk_slot_finish(int idx, bool ok)
{
	UploadSlot *s;
	int         failures = 0;

	if (idx < 0 || pgbk_shared == NULL)
		return 0;
	s = &pgbk_shared->slots[idx];
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (s->owner_pid == MyProcPid && s->state == SLOT_CLAIMED)
	{
		if (ok)
		{
			s->state = SLOT_DONE; /* freed once the file is .done */
			s->failures = 0;
			s->owner_pid = 0;
		}
		else
			failures = slot_failed(s);
	}
	LWLockRelease(pgbk_shared->lock);
	ConditionVariableBroadcast(&pgbk_shared->slot_cv);
	return failures;
}

void
pgbk_slot_release(int idx)
{
	if (idx < 0 || pgbk_shared == NULL)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (pgbk_shared->slots[idx].owner_pid == MyProcPid &&
	    pgbk_shared->slots[idx].state == SLOT_CLAIMED)
		slot_free(&pgbk_shared->slots[idx]);
	LWLockRelease(pgbk_shared->lock);
	ConditionVariableBroadcast(&pgbk_shared->slot_cv);
}

void
pgbk_slots_release_mine(void)
{
	int i;

	if (pgbk_shared == NULL)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < PGBK_MAX_SLOTS; i++)
	{
		UploadSlot *s = &pgbk_shared->slots[i];

		if (s->state == SLOT_CLAIMED && s->owner_pid == MyProcPid)
			slot_free(s);
	}
	LWLockRelease(pgbk_shared->lock);
	ConditionVariableBroadcast(&pgbk_shared->slot_cv);
}

bool
pgbk_ready_file_exists(const char *name)
{
	char        path[MAXPGPATH];
	struct stat st;

	snprintf(path, sizeof(path), XLOGDIR "/archive_status/%s.ready", name);
	return stat(path, &st) == 0;
}

/*
 * Free DONE and FAILED slots whose file is no longer .ready (the archiver
 * went past them, or without asking us, e.g. archive_library was changed),
 * so the table cannot fill up with stale entries.
 */
void
pgbk_slots_release_stale(void)
{
	int  i;
	char names[PGBK_MAX_SLOTS][MAXFNAMELEN];
	int  n = 0;

	if (pgbk_shared == NULL)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	for (i = 0; i < PGBK_MAX_SLOTS; i++)
		if (pgbk_shared->slots[i].state == SLOT_DONE || pgbk_shared->slots[i].state == SLOT_FAILED)
			strlcpy(names[n++], pgbk_shared->slots[i].name, MAXFNAMELEN);
	LWLockRelease(pgbk_shared->lock);

	for (i = 0; i < n; i++)
	{
		int j;

		if (pgbk_ready_file_exists(names[i]))
			continue;
		LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
		for (j = 0; j < PGBK_MAX_SLOTS; j++)
		{
			UploadSlot *s = &pgbk_shared->slots[j];

			if ((s->state == SLOT_DONE || s->state == SLOT_FAILED) &&
			    strcmp(s->name, names[i]) == 0)
			{
				s->state = SLOT_FREE;
				s->name[0] = '\0';
			}
		}
		LWLockRelease(pgbk_shared->lock);
	}
}

/* ------------------------------------------------------------------------
 * Latches
 * ------------------------------------------------------------------------ */

void
pgbk_uploader_attach(int index)
{
	if (pgbk_shared != NULL && index >= 0 && index < PGBK_MAX_UPLOADERS)
		pgbk_shared->uploader_latch[index] = MyLatch;
}

void
pgbk_uploader_detach(int index)
{
	if (pgbk_shared != NULL && index >= 0 && index < PGBK_MAX_UPLOADERS)
		pgbk_shared->uploader_latch[index] = NULL;
}

void
pgbk_scheduler_attach(void)
{
	if (pgbk_shared != NULL)
		pgbk_shared->scheduler_latch = MyLatch;
}

void
pgbk_scheduler_detach(void)
{
	if (pgbk_shared != NULL)
		pgbk_shared->scheduler_latch = NULL;
}

void
pgbk_wake_uploaders(void)
{
	int i;

	if (!pgbk_shared)
		return;
	for (i = 0; i < PGBK_MAX_UPLOADERS; i++)
	{
		Latch *latch = pgbk_shared->uploader_latch[i];

		if (latch)
			SetLatch(latch);
	}
}

void
pgbk_wake_archiver(void)
{
	PgArchWakeup();
}

void
pgbk_wake_scheduler(void)
{
	Latch *latch;

	if (!pgbk_shared)
		return;
	latch = pgbk_shared->scheduler_latch;
	if (latch)
		SetLatch(latch);
}

/* ------------------------------------------------------------------------
 * Archiving status
 * ------------------------------------------------------------------------ */

/*
 * A success after failures means the repository is back.  PostgreSQL's
 * archiver, after three failed attempts on a file, sleeps until a new
 * segment completes or 60 s pass, and the uploaders back off too: clear
 * the backoff of every failed file and wake them all, so a backlog drains
 * at once rather than a minute later.
 */
void
pgbk_status_success(const char *file, uint64 raw_bytes, uint64 stored_bytes, bool already_present)
{
	PgbkArchiveStatus *st;
	bool               recovered;
	int                i;

	if (!pgbk_shared)
		return;
	st = &pgbk_shared->status;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	st->last_success_at = GetCurrentTimestamp();
	strlcpy(st->last_success_file, file, MAXFNAMELEN);
	recovered = st->failing_since != 0;
	st->failing_since = 0;
	if (recovered)
		for (i = 0; i < PGBK_MAX_SLOTS; i++)
			if (pgbk_shared->slots[i].state == SLOT_FAILED)
				pgbk_shared->slots[i].retry_at = 0;
	if (already_present)
		st->files_already_present++;
	else
	{
		st->files_uploaded++;
		st->raw_bytes_uploaded += raw_bytes;
		st->stored_bytes_uploaded += stored_bytes;
	}
	LWLockRelease(pgbk_shared->lock);
	if (recovered)
	{
		pgbk_wake_uploaders();
		pgbk_wake_archiver();
	}
}

void
pgbk_status_failure(const char *file, const char *message, bool duplicate)
{
	TimestampTz        now = GetCurrentTimestamp();
	PgbkArchiveStatus *st;

	if (!pgbk_shared)
		return;
	st = &pgbk_shared->status;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (st->failing_since == 0)
		st->failing_since = now;
	st->last_failure_at = now;
	strlcpy(st->last_failure_file, file, MAXFNAMELEN);
	strlcpy(st->last_error, message, PGBK_ERROR_LEN);
	if (duplicate)
		st->duplicates_refused++;
	LWLockRelease(pgbk_shared->lock);
}

bool
pgbk_status_get(PgbkArchiveStatus *out)
{
	memset(out, 0, sizeof(*out));
	if (!pgbk_shared)
		return false;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	memcpy(out, &pgbk_shared->status, sizeof(*out));
	LWLockRelease(pgbk_shared->lock);
	return true;
}

void
pgbk_callback_time_add(uint64 us)
{
	if (!pgbk_shared)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->callback_us[pgbk_shared->callback_count % PGBK_CALLBACK_RING] =
	    (uint32) Min(us, PG_UINT32_MAX);
	pgbk_shared->callback_count++;
	LWLockRelease(pgbk_shared->lock);
}

uint64
pgbk_callback_times_get(uint32 *times)
{
	uint64 count;

	if (!pgbk_shared)
		return 0;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	memcpy(times, pgbk_shared->callback_us, sizeof(uint32) * PGBK_CALLBACK_RING);
	count = pgbk_shared->callback_count;
	LWLockRelease(pgbk_shared->lock);
	return count;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

void
pgbk_queue_event(const char *kind, const char *object, const char *message)
{
	PgbkPendingEvent *ev;

	if (!pgbk_shared)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (pgbk_shared->nevents == PGBK_MAX_EVENTS)
	{
		memmove(&pgbk_shared->events[0], &pgbk_shared->events[1],
		        sizeof(PgbkPendingEvent) * (PGBK_MAX_EVENTS - 1));
		pgbk_shared->nevents--;
		pgbk_shared->events_dropped++;
	}
	ev = &pgbk_shared->events[pgbk_shared->nevents++];
	ev->at = GetCurrentTimestamp();
	strlcpy(ev->kind, kind, sizeof(ev->kind));
	strlcpy(ev->object, object ? object : "", sizeof(ev->object));
	strlcpy(ev->message, message, sizeof(ev->message));
	LWLockRelease(pgbk_shared->lock);
	pgbk_wake_scheduler();
}

int
pgbk_take_events(PgbkPendingEvent *out, int max)
{
	int n;

	if (!pgbk_shared)
		return 0;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	n = Min(max, pgbk_shared->nevents);
	memcpy(out, pgbk_shared->events, sizeof(PgbkPendingEvent) * n);
	memmove(&pgbk_shared->events[0], &pgbk_shared->events[n],
	        sizeof(PgbkPendingEvent) * (pgbk_shared->nevents - n));
	pgbk_shared->nevents -= n;
	LWLockRelease(pgbk_shared->lock);
	return n;
}

/* ------------------------------------------------------------------------
 * Base backup state
 * ------------------------------------------------------------------------ */

void
pgbk_backup_get(PgbkBackupState *out)
{
	memset(out, 0, sizeof(*out));
	if (!pgbk_shared)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	memcpy(out, &pgbk_shared->backup, sizeof(*out));
	LWLockRelease(pgbk_shared->lock);
}

bool
pgbk_backup_running(char *id_out)
{
	bool running;

	if (!pgbk_shared)
		return false;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	running = pgbk_shared->backup.running;
	if (id_out)
		strlcpy(id_out, running ? pgbk_shared->backup.id : "", PGBK_BACKUP_ID_LEN);
	LWLockRelease(pgbk_shared->lock);
	return running;
}

bool
pgbk_backup_id_is_new(const char *id)
{
	bool is_new;

	Assert(pgbk_shared != NULL);
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	is_new = strcmp(id, pgbk_shared->backup.last_id) > 0 &&
	         strcmp(id, pgbk_shared->backup.id) > 0 && strcmp(id, pgbk_shared->id_floor) > 0;
	LWLockRelease(pgbk_shared->lock);
	return is_new;
}

/*
 * Is a backup running (caller holds the lock)?  One whose worker is gone
 * (killed) or never started within a minute is not.
 */
static bool
backup_alive(const PgbkBackupState *b)
{
	if (!b->running)
		return false;
	return b->pid == 0 ? !TimestampDifferenceExceeds(b->started_at, GetCurrentTimestamp(), 60000)
	                   : (kill(b->pid, 0) == 0 || errno != ESRCH);
}

bool
pgbk_backup_busy(PgbkBackupState *running_out)
{
	bool busy;

	Assert(pgbk_shared != NULL);
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	busy = backup_alive(&pgbk_shared->backup);
	if (busy)
		memcpy(running_out, &pgbk_shared->backup, sizeof(*running_out));
	LWLockRelease(pgbk_shared->lock);
	return busy;
}

uint64
pgbk_backup_begin(const char *id, PgbkBackupState *running_out)
{
	PgbkBackupState *b;
	uint64           seq;

	Assert(pgbk_shared != NULL);
	b = &pgbk_shared->backup;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (backup_alive(b))
	{
		memcpy(running_out, b, sizeof(*running_out));
		LWLockRelease(pgbk_shared->lock);
		return 0;
	}
	seq = ++b->seq;
	b->running = true;
	b->pid = 0;
	strlcpy(b->id, id, sizeof(b->id));
	strlcpy(b->phase, "starting", sizeof(b->phase));
	b->started_at = GetCurrentTimestamp();
	b->bytes_total = 0;
	b->bytes_done = 0;
	b->stored_done = 0;
	b->files_total = 0;
	b->files_done = 0;
	b->workers = 0;
	b->type[0] = '\0';
	b->parent[0] = '\0';
	b->changes[0] = '\0';
	b->changes_reason[0] = '\0';
	LWLockRelease(pgbk_shared->lock);
	return seq;
}

void
pgbk_backup_abandon(void)
{
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->backup.running = false;
	pgbk_shared->backup.id[0] = '\0';
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_attach(char *id_out)
{
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->backup.pid = MyProcPid;
	strlcpy(id_out, pgbk_shared->backup.id, PGBK_BACKUP_ID_LEN);
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_set_phase(const char *phase)
{
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	strlcpy(pgbk_shared->backup.phase, phase, sizeof(pgbk_shared->backup.phase));
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_set_totals(uint64 bytes, int files)
{
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->backup.bytes_total = bytes;
	pgbk_shared->backup.files_total = files;
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_set_workers(int workers)
{
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->backup.workers = workers;
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_set_type(const char *type, const char *parent, const char *changes, const char *reason)
{
	PgbkBackupState *b = &pgbk_shared->backup;

	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	strlcpy(b->type, type ? type : "", sizeof(b->type));
	strlcpy(b->parent, parent ? parent : "", sizeof(b->parent));
	strlcpy(b->changes, changes ? changes : "", sizeof(b->changes));
	strlcpy(b->changes_reason, reason ? reason : "", sizeof(b->changes_reason));
	LWLockRelease(pgbk_shared->lock);
}

/*
 * A file that grew, shrank or vanished since the listing corrects the totals
 * by (read - listed), so a finished backup shows done = total.
 */
void
pgbk_backup_add_progress(uint64 raw, uint64 stored, int files, int64 total_delta, int files_delta)
{
	PgbkBackupState *b = &pgbk_shared->backup;

	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	b->bytes_done += raw;
	b->stored_done += stored;
	b->files_done += files;
	b->bytes_total = (uint64) Max((int64) b->bytes_total + total_delta, 0);
	b->files_total += files_delta;
	LWLockRelease(pgbk_shared->lock);
}

void
pgbk_backup_finish(bool ok, const char *error)
{
	PgbkBackupState *b = &pgbk_shared->backup;

	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	b->last_seq = b->seq;
	b->last_ok = ok;
	strlcpy(b->last_id, b->id, sizeof(b->last_id));
	strlcpy(b->last_error, error ? error : "", sizeof(b->last_error));
	b->last_finished_at = GetCurrentTimestamp();
	b->running = false;
	b->pid = 0;
	b->id[0] = '\0';
	strlcpy(b->phase, ok ? "done" : "failed", sizeof(b->phase));
	LWLockRelease(pgbk_shared->lock);
}

bool
pgbk_backup_outcome(uint64 seq, bool *ok, char *error)
{
	bool found = false;

	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	if (pgbk_shared->backup.last_seq == seq)
	{
		found = true;
		*ok = pgbk_shared->backup.last_ok;
		strlcpy(error, pgbk_shared->backup.last_error, PGBK_ERROR_LEN);
	}
	LWLockRelease(pgbk_shared->lock);
	return found;
}

/* ------------------------------------------------------------------------
 * Header cache
 * ------------------------------------------------------------------------ */

void
pgbk_header_cache_put(const char *key, const void *header, size_t len)
{
	CachedHeader *e;
	int           i;

	if (header_cache == NULL || strlen(key) >= sizeof(e->key) || len > CODEC_MAX_HEADER)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	e = NULL;
	for (i = 0; i < PGBK_HEADER_CACHE && e == NULL; i++)
		if (strcmp(header_cache->entries[i].key, key) == 0)
			e = &header_cache->entries[i]; /* the same key again: replace */
	if (e == NULL)
		e = &header_cache->entries[header_cache->next++ % PGBK_HEADER_CACHE];
	strlcpy(e->key, key, sizeof(e->key));
	e->len = (uint32) len;
	memcpy(e->data, header, len);
	LWLockRelease(pgbk_shared->lock);
}

bool
pgbk_header_cache_get(const char *key, PgbkBuf *out)
{
	int  i;
	bool found = false;

	if (header_cache == NULL)
		return false;
	LWLockAcquire(pgbk_shared->lock, LW_SHARED);
	for (i = 0; i < PGBK_HEADER_CACHE && !found; i++)
	{
		CachedHeader *e = &header_cache->entries[i];

		if (e->len > 0 && strcmp(e->key, key) == 0)
			found = pgbk_buf_append(out, e->data, e->len);
	}
	LWLockRelease(pgbk_shared->lock);
	return found;
}
