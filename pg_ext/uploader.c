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
#include <pthread.h>
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

/* The outcome of claimed file name's upload: finish its slot, say how it went. */
static void
upload_done(int idx, const char *name, bool ok, PgbkError *err, TimestampTz start, bool ahead)
{
	int failures = pgbk_slot_finish(idx, ok);

	if (ahead)
		elog(DEBUG1, "\"%s\" was prepared in a helper thread while the previous file was stored",
		     name);
	if (ok)
		elog(DEBUG1, "\"%s\" uploaded in %.1f ms", name, (GetCurrentTimestamp() - start) / 1000.0);
	else if (err->code != PGBK_ERR_INTERRUPTED)
	{
		/* the message names the file already when it comes from the upload */
		pgbk_report_error(failures <= 1 || failures % LOG_EVERY_FAILURES == 0 ? LOG : DEBUG1, err,
		                  strstr(err->msg, name) ? NULL
		                                         : psprintf("could not upload \"%s\"", name));
	}
}

/* Upload one claimed file. */
static void
upload_one(int idx, const char *name)
{
	char        path[MAXPGPATH];
	PgbkError   err;
	bool        ok;
	TimestampTz start;

	/* The archiver may have finished it between our scan and the claim. */
	if (!pgbk_ready_file_exists(name))
	{
		pgbk_slot_release(idx);
		return;
	}
	snprintf(path, sizeof(path), XLOGDIR "/%s", name);
	pgbk_error_clear(&err);
	start = GetCurrentTimestamp();
	ok = pgbk_push_wal_file(name, path, false, &err);
	upload_done(idx, name, ok, &err, start, false);
}

/*
 * A backlog: while one file is stored (the repository's round trips), the
 * next is prepared (read, scanned, compressed, encrypted) in a helper
 * thread, so that the CPU keeps working while the repository answers.  In
 * the archive drain of scripts/bench_archive.sh the uploaders otherwise
 * waited on RadosGW about half of each segment's time; with a remote S3
 * the wait is longer still.  Nothing else changes: files are stored one at
 * a time in this process, each object before its change summary, and a
 * file counts as uploaded only once stored.  The helper runs no backend
 * code (pgbk_push_prepare) and has every asynchronous signal blocked, so
 * the handlers run in this thread; this process waits for it before it does
 * anything but store and claim.  The helper lives as long as the process,
 * so its zstd context (kept per thread, codec.c) is set up once.
 */
static PgbkPushJob backlog_jobs[2];

static struct
{
	bool            started;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	PgbkPushJob    *job; /* posted, being prepared; NULL when done */
} helper = {false, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL};

static void *
helper_main(void *arg)
{
	for (;;)
	{
		PgbkPushJob *job;

		pthread_mutex_lock(&helper.mu);
		while (helper.job == NULL)
			pthread_cond_wait(&helper.cv, &helper.mu);
		job = helper.job;
		pthread_mutex_unlock(&helper.mu);

		pgbk_push_prepare(job);

		pthread_mutex_lock(&helper.mu);
		helper.job = NULL;
		pthread_cond_broadcast(&helper.cv);
		pthread_mutex_unlock(&helper.mu);
	}
	return NULL;
}

/* Have the helper prepare job; false if there is no helper (prepare it here). */
static bool
helper_post(PgbkPushJob *job)
{
	if (!helper.started)
	{
		sigset_t  all, old;
		pthread_t thread;
		int       rc;

		sigfillset(&all);
		/* faults are the faulting thread's (walpush.c catches a mapped file's SIGBUS) */
		sigdelset(&all, SIGBUS);
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGFPE);
		sigdelset(&all, SIGILL);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&thread, NULL, helper_main, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
		{
			ereport(DEBUG1,
			        (errmsg("could not start the uploader's helper thread: %s", strerror(rc))));
			return false;
		}
		pthread_detach(thread);
		helper.started = true;
	}
	pthread_mutex_lock(&helper.mu);
	helper.job = job;
	pthread_cond_broadcast(&helper.cv);
	pthread_mutex_unlock(&helper.mu);
	return true;
}

static void
helper_wait(void)
{
	pthread_mutex_lock(&helper.mu);
	while (helper.job != NULL)
		pthread_cond_wait(&helper.cv, &helper.mu);
	pthread_mutex_unlock(&helper.mu);
}

static void
job_init(PgbkPushJob *job, WalPusher *pusher, const char *name)
{
	job->pusher = pusher;
	strlcpy(job->file, name, sizeof(job->file));
	snprintf(job->path, sizeof(job->path), XLOGDIR "/%s", name);
	job->backlog = true;
}

static void
upload_backlog(int idx, const char *name, Candidates *cand)
{
	PgbkError   err;
	WalPusher  *pushers[2];
	int         cur = 0;
	TimestampTz start;
	bool        ahead = false; /* the current file was prepared in the helper */

	pgbk_error_clear(&err);
	if (!pgbk_ready_file_exists(name))
	{
		pgbk_slot_release(idx);
		return;
	}
	if (pgbk_context(&err) == NULL)
	{
		/* no repository context: upload_one reports it as every upload does */
		upload_one(idx, name);
		return;
	}
	pushers[0] = pgbk_context_pusher();
	pushers[1] = pgbk_context_pusher_ahead();
	job_init(&backlog_jobs[0], pushers[0], name);
	start = GetCurrentTimestamp();
	pgbk_push_prepare(&backlog_jobs[0]);
	for (;;)
	{
		PgbkPushJob *job = &backlog_jobs[cur], *next = &backlog_jobs[1 - cur];
		int          next_idx = -1;
		char         next_name[MAXFNAMELEN];
		bool         threaded = false;
		bool         ok;
		TimestampTz  next_start = 0;

		/* claim the next file while this one is stored, if the backlog lasts */
		if (!InterruptPending && !ConfigReloadPending && pgbk_archiving_active())
		{
			pgbk_slots_release_stale();
			scan_ready_files(cand);
			if (cand->n > 2)
				next_idx = pgbk_slot_claim_next(cand->names, cand->n, next_name);
			if (next_idx >= 0 && !pgbk_ready_file_exists(next_name))
			{
				pgbk_slot_release(next_idx);
				next_idx = -1;
			}
		}
		if (next_idx >= 0)
		{
			job_init(next, pushers[1 - cur], next_name);
			next_start = GetCurrentTimestamp();
			threaded = helper_post(next);
		}
		ok = pgbk_push_store(job, &err);
		upload_done(idx, job->file, ok, &err, start, ahead);
		if (next_idx < 0)
			return;
		if (threaded)
			helper_wait();
		else
			pgbk_push_prepare(next);
		/* not while the helper prepares: an error here would leave it working on */
		CHECK_FOR_INTERRUPTS();
		cur = 1 - cur;
		idx = next_idx;
		start = next_start;
		ahead = threaded;
	}
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
				/* behind by more than a couple of segments: map them, prepare ahead */
				if (cand->n > 2)
					upload_backlog(slot, name, cand);
				else
					upload_one(slot, name);
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
