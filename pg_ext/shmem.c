/*
 * shmem.c
 *	  pgbk's shared memory: the upload slot table that lets the archive
 *	  callback find a segment already uploaded by a worker, the archiving
 *	  status shown by bk_status, and the latches used to wake workers.
 *
 * The slot table has a fixed size (PGBK_MAX_SLOTS), so memory does not grow
 * with the number of pending WAL files: uploaders claim at most
 * pgbk.lookahead files at a time and slots are freed as soon as the archiver
 * has been told (or the file is no longer .ready).
 */
#include "pgbk.h"

#include <sys/stat.h>

#include "miscadmin.h"
#include "postmaster/pgarch.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "format/layout.h"

PgbkShared *pgbk_shared = NULL;

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
	bool recovered;
	int  i;

	if (!pgbk_shared)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	pgbk_shared->last_success_at = GetCurrentTimestamp();
	strlcpy(pgbk_shared->last_success_file, file, MAXFNAMELEN);
	recovered = pgbk_shared->failing_since != 0;
	pgbk_shared->failing_since = 0;
	if (recovered)
		for (i = 0; i < PGBK_MAX_SLOTS; i++)
			if (pgbk_shared->slots[i].state == SLOT_FAILED)
				pgbk_shared->slots[i].retry_at = 0;
	if (already_present)
		pgbk_shared->files_already_present++;
	else
	{
		pgbk_shared->files_uploaded++;
		pgbk_shared->raw_bytes_uploaded += raw_bytes;
		pgbk_shared->stored_bytes_uploaded += stored_bytes;
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
	TimestampTz now = GetCurrentTimestamp();

	if (!pgbk_shared)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (pgbk_shared->failing_since == 0)
		pgbk_shared->failing_since = now;
	pgbk_shared->last_failure_at = now;
	strlcpy(pgbk_shared->last_failure_file, file, MAXFNAMELEN);
	strlcpy(pgbk_shared->last_error, message, PGBK_ERROR_LEN);
	if (duplicate)
		pgbk_shared->duplicates_refused++;
	LWLockRelease(pgbk_shared->lock);
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

int
pgbk_slot_failed(int idx)
{
	UploadSlot *s = &pgbk_shared->slots[idx];

	s->state = SLOT_FAILED;
	s->failures++;
	s->failed_at = GetCurrentTimestamp();
	s->retry_at = pgbk_retry_time(s->failures);
	s->owner_pid = 0;
	return s->failures;
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

TimestampTz
pgbk_retry_time(int failures)
{
	int backoff_ms = 500;

	while (failures-- > 1 && backoff_ms < 30000)
		backoff_ms *= 2;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Min(backoff_ms, 30000));
}

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

bool
pgbk_ready_file_exists(const char *name)
{
	char        path[MAXPGPATH];
	struct stat st;

	snprintf(path, sizeof(path), XLOGDIR "/archive_status/%s.ready", name);
	return stat(path, &st) == 0;
}

/*
 * Free DONE slots whose file is no longer .ready (the archiver went past
 * them without asking us, e.g. archive_library was changed), so the table
 * cannot fill up with stale entries.
 */
void
pgbk_release_stale_slots(void)
{
	int  i;
	char names[PGBK_MAX_SLOTS][MAXFNAMELEN];
	int  n = 0;

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
