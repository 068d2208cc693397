/*
 * archive.c
 *	  Program pgbk.so (the extension); uses the backend, slots.h and push.c.
 *	  The archive module (archive_library = 'pgbk').
 *
 * PostgreSQL's archiver calls pgbk_archive_file() for one WAL file at a
 * time, oldest first, and marks it .done when we return true.  We return
 * true only once that exact file is durably in the repository (DESIGN.md
 * invariant 1):
 *
 *	 - fast path: an uploader worker already uploaded it (slot DONE):
 *	   return at once;
 *	 - an uploader is uploading it right now (slot CLAIMED): wait for it;
 *	 - otherwise (no uploader running, or it is behind, or its attempt
 *	   failed): upload it ourselves.
 * The slot table and its rules are in slots.c.
 *
 * Failures return false, so PostgreSQL keeps the file and retries.  ERRORs
 * are caught here (in PG15 an ERROR escaping the callback would restart the
 * archiver) and reported as WARNINGs; bk_status shows the last error.
 */
#include "pgbk.h"
#include "slots.h"

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

static bool
archive_file_internal(const char *file, const char *path)
{
	int       slot = -1;
	PgbkError err;
	bool      ok;

	pgbk_wake_uploaders();
	if (pgbk_shmem_available())
	{
		if (pgbk_slot_claim_or_wait(file, &slot))
			return true;
		if (ShutdownRequestPending && slot < 0)
			return false;
	}

	pgbk_error_clear(&err);
	ok = pgbk_push_wal_file(file, path, false, &err);
	(void) pgbk_slot_finish(slot, ok);
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
	pgbk_callback_time_add(INSTR_TIME_GET_MICROSEC(duration));

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
