/*
 * archive.c
 *	  The archive module (archive_library = 'pgbk').
 *
 * PostgreSQL's archiver calls pgbk_archive_file() for one WAL file at a
 * time, oldest first, and marks it .done when we return true.  We return
 * true only once that exact file is durably in the repository (DESIGN.md
 * invariant 1):
 *
 *	 - fast path: an uploader worker already uploaded it (slot DONE): free
 *	   the slot and return at once;
 *	 - an uploader is uploading it right now (slot CLAIMED): wait for it;
 *	 - otherwise (no uploader running, or it is behind, or its attempt
 *	   failed): upload it ourselves.
 *
 * Failures return false, so PostgreSQL keeps the file and retries.  ERRORs
 * are caught here (in PG15 an ERROR escaping the callback would restart the
 * archiver) and reported as WARNINGs; bk_status shows the last error.
 */
#include "pgbk.h"

#include <errno.h>
#include <signal.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "postmaster/interrupt.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM >= 160000
#include "archive/archive_module.h"
#else
#include "postmaster/pgarch.h"
#endif

static MemoryContext archive_context = NULL;

/* How long to wait for an uploader holding a claim before checking it. */
#define CLAIM_CHECK_MS 1000
/* How long an unclaimed file is left to the uploaders before we upload it. */
#define HANDOFF_MS 2000

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

/*
 * Decide what to do about file: returns true if it is already done (the
 * slot is released); otherwise returns false with a claim held by us in
 * *slot_out (or -1 when the table is full: upload without a slot).
 */
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

static bool
claim_or_wait(const char *file, int *slot_out)
{
	bool        waited = false;
	bool        cleaned = false;
	TimestampTz handoff_until = 0;

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
				/*
				 * Keep the slot DONE until the archiver has renamed the
				 * .ready file (uploaders free it then): freeing it now would
				 * let an uploader that scanned just before take the file up
				 * again.
				 */
				pgbk_shared->callback_fast++;
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
						pgbk_shared->callback_waited++;
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
						*slot_out = -1;
						return false;
					}
					continue;
				}
			}
			/* FAILED, or claimed by a dead process, or by us: take it over */
			slot->state = SLOT_CLAIMED;
			slot->owner_pid = MyProcPid;
			pgbk_shared->callback_self++;
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
					pgbk_shared->callback_waited++;
				waited = true;
				LWLockRelease(pgbk_shared->lock);
				pgbk_wake_uploaders();
				(void) ConditionVariableTimedSleep(&pgbk_shared->slot_cv, 20, PG_WAIT_EXTENSION);
				if (ShutdownRequestPending)
				{
					ConditionVariableCancelSleep();
					*slot_out = -1;
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
			pgbk_release_stale_slots();
			cleaned = true;
			continue;
		}
		if (idx >= 0)
		{
			slot = &pgbk_shared->slots[idx];
			strlcpy(slot->name, file, MAXFNAMELEN);
			slot->state = SLOT_CLAIMED;
			slot->owner_pid = MyProcPid;
			slot->failures = 0;
			slot->retry_at = 0;
		}
		pgbk_shared->callback_self++;
		LWLockRelease(pgbk_shared->lock);
		ConditionVariableCancelSleep();
		*slot_out = idx;
		return false;
	}
}

static void
release_slot(int idx, bool success)
{
	if (idx < 0)
		return;
	LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
	if (pgbk_shared->slots[idx].owner_pid == MyProcPid)
	{
		if (success)
			pgbk_shared->slots[idx].state = SLOT_DONE; /* freed once .done */
		else
			(void) pgbk_slot_failed(idx);
		pgbk_shared->slots[idx].owner_pid = 0;
	}
	LWLockRelease(pgbk_shared->lock);
	ConditionVariableBroadcast(&pgbk_shared->slot_cv);
}

static bool
archive_file_internal(const char *file, const char *path)
{
	int       slot = -1;
	PgbkError err;
	bool      ok;

	pgbk_wake_uploaders();
	if (pgbk_shared != NULL)
	{
		if (claim_or_wait(file, &slot))
			return true;
		if (ShutdownRequestPending && slot < 0)
			return false;
	}

	pgbk_error_clear(&err);
	ok = pgbk_push_wal_file(file, path, false, &err);
	if (pgbk_shared != NULL)
		release_slot(slot, ok);
	/* the message names the file already when it comes from the upload */
	if (!ok)
		pgbk_report_error(WARNING, &err,
		                  strstr(err.msg, file) ? NULL
		                                        : psprintf("could not archive \"%s\"", file));
	return ok;
}

static bool
pgbk_archive_configured(void)
{
	/* PostgreSQL itself logs that archiving is not configured */
	return pgbk_config_path != NULL && pgbk_config_path[0] != '\0';
}

/*
 * Archive one file.  Never lets an ERROR escape: the archiver would restart
 * and we would lose nothing, but the retry cadence and the log would suffer.
 */
static bool
pgbk_archive_file(const char *file, const char *path)
{
	sigjmp_buf    local_sigjmp_buf;
	MemoryContext oldcontext;
	bool          result;
	instr_time    start, duration;

	if (archive_context == NULL)
	{
		archive_context =
		    AllocSetContextCreate(TopMemoryContext, "pgbk archive", ALLOCSET_DEFAULT_SIZES);
		pgbk_install_hooks();
	}
	oldcontext = MemoryContextSwitchTo(archive_context);

	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		EmitErrorReport();
		FlushErrorState();
		MemoryContextSwitchTo(oldcontext);
		MemoryContextReset(archive_context);
		PG_exception_stack = NULL;
		RESUME_INTERRUPTS();
		return false;
	}
	PG_exception_stack = &local_sigjmp_buf;

	INSTR_TIME_SET_CURRENT(start);
	result = archive_file_internal(file, path);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	if (pgbk_shared != NULL)
	{
		uint64 us = INSTR_TIME_GET_MICROSEC(duration);

		LWLockAcquire(pgbk_shared->lock, LW_EXCLUSIVE);
		pgbk_shared->callback_us[pgbk_shared->callback_count % PGBK_CALLBACK_RING] =
		    (uint32) Min(us, PG_UINT32_MAX);
		pgbk_shared->callback_count++;
		LWLockRelease(pgbk_shared->lock);
	}

	PG_exception_stack = NULL;
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(archive_context);
	return result;
}

static void
pgbk_archive_shutdown(void)
{
	pgbk_context_reset();
}

#if PG_VERSION_NUM >= 160000
static bool
pgbk_archive_configured16(ArchiveModuleState *state)
{
	return pgbk_archive_configured();
}

static bool
pgbk_archive_file16(ArchiveModuleState *state, const char *file, const char *path)
{
	return pgbk_archive_file(file, path);
}

static void
pgbk_archive_shutdown16(ArchiveModuleState *state)
{
	pgbk_archive_shutdown();
}

static const ArchiveModuleCallbacks pgbk_archive_callbacks = {
    .startup_cb = NULL,
    .check_configured_cb = pgbk_archive_configured16,
    .archive_file_cb = pgbk_archive_file16,
    .shutdown_cb = pgbk_archive_shutdown16,
};

PGDLLEXPORT const ArchiveModuleCallbacks *_PG_archive_module_init(void);

const ArchiveModuleCallbacks *
_PG_archive_module_init(void)
{
	return &pgbk_archive_callbacks;
}
#else
PGDLLEXPORT void _PG_archive_module_init(ArchiveModuleCallbacks *cb);

void
_PG_archive_module_init(ArchiveModuleCallbacks *cb)
{
	AssertVariableIsOfType(&_PG_archive_module_init, ArchiveModuleInit);
	cb->check_configured_cb = pgbk_archive_configured;
	cb->archive_file_cb = pgbk_archive_file;
	cb->shutdown_cb = pgbk_archive_shutdown;
}
#endif
