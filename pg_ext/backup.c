/*
 * backup.c
 *	  Program pgbk.so; uses the backend (SPI, DSM, background workers), slots.h and
 *	  common/ base, repo and format (codec, layout, manifests).
 *	  Base backups: bk_base_backup(), the backup coordinator worker and the
 *	  copier workers.
 *
 * bk_base_backup() (or the scheduler, see pgbk.base_backup_interval)
 * starts one coordinator, a dynamic background worker connected to the
 * calling database.  The coordinator
 *	 1. runs pg_backup_start() in its own session (a non-exclusive backup);
 *	 2. lists the data directory (and tablespaces) with pg_basebackup's
 *		exclusions, biggest files first, into a dynamic shared memory table;
 *	 3. starts pgbk.backup_parallel copier workers, which take files from the
 *		table one at a time and stream each one through the codec (zstd,
 *		encryption, content hash) into backup/<id>/data/<path>;
 *	 4. runs pg_backup_stop(), then waits until every WAL segment from the
 *		backup's start to its stop is in the repository;
 *	 5. writes the manifest last (its presence marks a complete backup) and
 *		records the backup in pgbk.backup.
 * Progress is in shared memory (bk_backup_progress).  One backup at a time:
 * a second request is refused with the running backup's id.
 *
 * A failed backup leaves data objects without a manifest; they are never
 * used for restores and expiry removes them.
 *
 * Incremental backups (type 'incremental', or 'auto' as the scheduler asks)
 * build on a parent: the newest complete backup on this server's timeline
 * history that ended before this one's start (plan_parent, the planner's
 * rule).  Between 1 and 2 the coordinator
 *	 a. unions the change summaries of every segment from the parent's start
 *		to this start (walchg_union loads each summary the archiver stored;
 *		a segment not archived yet, such as the one holding the start LSN,
 *		is summarized from its pg_wal file, and one in neither place is
 *		rebuilt from the archived segment), so the change range [parent
 *		start, start) is summarized before any file is read, without
 *		waiting for the archiver.
 * Main forks of relation files the parent has too then become block files:
 * only their changed blocks are read (pread per run) and stored; other
 * files (FSM, VM and init forks, non-relation files, files new since the
 * parent, databases created or dropped meanwhile) are copied whole.  If the
 * summaries are incomplete (a gap, an unreadable segment) every main fork
 * is read and pages with pd_lsn >= the parent's start (or not valid pages)
 * are kept ("page-lsn"); if no parent is usable, the backup is a full one.
 * bk_backup_progress and the log say which and why; so does the manifest.
 */
#include "pgbk.h"
#include "slots.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/timeline.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/fd.h"
#include "storage/bufpage.h"
#include "storage/ipc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog/pg_tablespace_d.h"
#include "common/relpath.h"

#include "format/chain.h"
#include "format/layout.h"
#include "format/manifest.h"
#include "plan/plan.h"
#include "base/walname.h"
#include "plan_sql.h"
#include "wal/walchanges.h"

PG_FUNCTION_INFO_V1(bk_base_backup);
PG_FUNCTION_INFO_V1(pgbk_backup_progress);
PG_FUNCTION_INFO_V1(pgbk_backup_kind);

/* Raw bytes read per step; the codec frames 256 KiB at a time. */
#define COPY_CHUNK (1024 * 1024)

typedef enum CopyState
{
	COPY_PENDING = 0,
	COPY_DONE,
	COPY_VANISHED /* removed while the backup ran: fine */
} CopyState;

/* Blocks a block file may grow by while the backup runs (the WAL has the rest). */
#define BLOCK_SLACK 1024

typedef struct CopyFile
{
	uint32        path_off; /* into the string area */
	uint64        size_hint;
	uint64        est; /* bytes it is expected to read (progress) */
	uint8         state;
	bool          blocks;     /* a block file (incremental) */
	uint32        base_blkno; /* block file: number of its first block in the relation */
	uint32        cap;        /* block file: blocks at most (its bitmap's size) */
	uint32        limit;      /* block file: every block >= limit is copied */
	uint32        ranges_off; /* block file: its ranges (summaries) */
	uint32        nranges;
	Size          bitmap_off; /* block file: blocks stored */
	bool          ref;        /* whole file the parent's chain holds as one whole copy ... */
	uint64        ref_size;   /* ... of this size */
	unsigned char ref_hash[CODEC_HASH_BYTES]; /* ... and content hash */
	uint64        size;
	int64         mtime;
	uint32        mode;
	uint64        stored;
	unsigned char hash[CODEC_HASH_BYTES];
} CopyFile;

typedef struct CopyShared
{
	pg_atomic_uint32 next;
	int              nfiles;
	Size             strings_off;
	Size             ranges_off; /* ManifestBlockRange[] */
	Size             bitmaps_off;
	bool             page_lsn; /* block files keep pages by LSN, not by ranges */
	XLogRecPtr       parent_start_lsn;
	slock_t          mutex;
	bool             failed;
	PgbkStatus       code; /* of the first failure */
	char             error[PGBK_ERROR_LEN];
	char             backup_id[MANIFEST_ID_LEN];
	CopyFile         files[FLEXIBLE_ARRAY_MEMBER];
} CopyShared;

/* What a backup was asked to be (bgw_extra of the coordinator). */
typedef enum BackupRequest
{
	REQUEST_FULL = 0,
	REQUEST_INCREMENTAL,
	REQUEST_AUTO
} BackupRequest;

/* An incremental backup's plan, decided after pg_backup_start. */
typedef struct Incremental
{
	bool           on;
	char           parent[MANIFEST_ID_LEN];
	Manifest      *pm;     /* the parent's manifest */
	ManifestChain *pchain; /* the parent's chain (it owns pm, its newest), or NULL */
	XLogRecPtr     parent_start_lsn;
	int            chain_length;
	bool           page_lsn;
	char           reason[PGBK_ERROR_LEN]; /* why page-lsn, or why full */
	WalChanges    *changes;                /* summaries mode */
	uint32         segments;               /* in the change range */
	uint32         local_segments;         /* of them summarized from pg_wal */
} Incremental;

/* What the coordinator found in the data directory. */
typedef struct ScanFile
{
	char  *path;
	uint64 size;
} ScanFile;

typedef struct ScanResult
{
	List  *files;       /* ScanFile * */
	List  *dirs;        /* ManifestDir * (palloc'd) */
	List  *tablespaces; /* ManifestTablespace * */
	uint64 bytes;
} ScanResult;

/* ------------------------------------------------------------------------
 * Starting a backup
 * ------------------------------------------------------------------------ */

static bool
wal_reaches_repository(void)
{
	const char *cmd;

	if (pgbk_archiving_active())
		return true;
	if (!XLogArchivingActive())
		return false;
	cmd = GetConfigOption("archive_command", true, false);
	return cmd != NULL && strstr(cmd, "pgbk wal-push") != NULL;
}

static void
format_backup_id(TimestampTz ts, char *out)
{
	layout_backup_id_format((int64_t) timestamptz_to_time_t(ts), out, MANIFEST_ID_LEN);
}

/* 'full', 'incremental' or 'auto' (bk_base_backup's type argument). */
int
pgbk_backup_request_of(const char *type)
{
	if (type == NULL || strcmp(type, "full") == 0)
		return REQUEST_FULL;
	if (strcmp(type, "incremental") == 0)
		return REQUEST_INCREMENTAL;
	if (strcmp(type, "auto") == 0)
		return REQUEST_AUTO;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
	                errmsg("invalid base backup type \"%s\"", type),
	                errhint("Use 'full', 'incremental' or 'auto'.")));
	return REQUEST_FULL; /* keep the compiler quiet */
}

static void
backup_already_running(const PgbkBackupState *running)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
	                errmsg("a base backup is already running (%s, started at %s)", running->id,
	                       timestamptz_to_str(running->started_at)),
	                errhint("Wait for it to finish; bk_backup_progress shows how far it is.")));
}

uint64
pgbk_start_backup(Oid dboid, int request, char *id_out, BackgroundWorkerHandle **handle_out)
{
	BackgroundWorker        worker;
	BackgroundWorkerHandle *handle;
	PgbkError               err;
	char                    id[MANIFEST_ID_LEN];
	uint64                  seq;
	PgbkBackupState         running;

	if (!pgbk_shmem_available())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("pgbk is not loaded through shared_preload_libraries"),
		                errhint("Add pgbk to shared_preload_libraries and restart.")));
	pgbk_install_hooks();
	pgbk_error_clear(&err);
	if (pgbk_context(&err) == NULL)
		pgbk_report_error(ERROR, &err, "could not open the repository");
	if (!wal_reaches_repository())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("base backups need WAL archived into the same repository"),
		                errdetail("A backup is only restorable with the WAL written while it ran."),
		                errhint("Set archive_mode = on and archive_library = 'pgbk' (or "
		                        "archive_command = 'pgbk wal-push %%p').")));

	/*
	 * One backup at a time: refused now, not after waiting for a new id
	 * below (the running one has this second's id; pgbk_backup_begin checks
	 * again, for two callers at once).
	 */
	if (pgbk_backup_busy(&running))
		backup_already_running(&running);

	/*
	 * ids are start times to the second; never reuse one (after a crash
	 * restart too: pgbk_backup_id_is_new knows the second shared memory was
	 * made in)
	 */
	for (;;)
	{
		format_backup_id(GetCurrentTimestamp(), id);
		if (pgbk_backup_id_is_new(id))
			break;
		pg_usleep(200 * 1000L);
		CHECK_FOR_INTERRUPTS();
	}

	seq = pgbk_backup_begin(id, &running);
	if (seq == 0)
		backup_already_running(&running);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgbk");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgbk_backup_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgbk backup %s", id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgbk backup");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_extra[0] = (char) request;
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		pgbk_backup_abandon();
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
		                errmsg("could not start the base backup worker"),
		                errhint("Raise max_worker_processes: a backup needs 1 + "
		                        "pgbk.backup_parallel background workers.")));
	}
	strlcpy(id_out, id, MANIFEST_ID_LEN);
	if (handle_out)
		*handle_out = handle;
	return seq;
}

Datum
bk_base_backup(PG_FUNCTION_ARGS)
{
	bool  wait = PG_ARGISNULL(0) ? true : PG_GETARG_BOOL(0);
	char *type = PG_NARGS() < 2 || PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char  id[MANIFEST_ID_LEN];
	BackgroundWorkerHandle *handle;
	uint64                  seq;
	bool                    ok = false;
	char                    error[PGBK_ERROR_LEN];

	seq = pgbk_start_backup(MyDatabaseId, pgbk_backup_request_of(type), id, &handle);
	if (!wait)
		PG_RETURN_TEXT_P(cstring_to_text(id));

	(void) WaitForBackgroundWorkerShutdown(handle);
	if (!pgbk_backup_outcome(seq, &ok, error))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("base backup %s ended without reporting an outcome", id),
		                errhint("See the server log.")));
	if (!ok)
		ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
		                errmsg("base backup %s failed: %s", id, error)));
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/* ------------------------------------------------------------------------
 * Progress
 * ------------------------------------------------------------------------ */

static void
set_phase(const char *phase)
{
	pgbk_backup_set_phase(phase);
	pgstat_report_activity(STATE_RUNNING, psprintf("pgbk base backup: %s", phase));
}

#define PROGRESS_COLS 14

Datum
pgbk_backup_progress(PG_FUNCTION_ARGS)
{
	TupleDesc       tupdesc;
	Datum           values[PROGRESS_COLS];
	bool            nulls[PROGRESS_COLS];
	PgbkBackupState s;
	int             i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));
	pgbk_backup_get(&s);
	values[i++] = BoolGetDatum(s.running);
	if (s.running)
	{
		values[i++] = CStringGetTextDatum(s.id);
		values[i++] = CStringGetTextDatum(s.phase);
		values[i++] = TimestampTzGetDatum(s.started_at);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
	}
	values[i++] = Int64GetDatum((int64) s.bytes_total);
	values[i++] = Int64GetDatum((int64) s.bytes_done);
	values[i++] = Int64GetDatum((int64) s.stored_done);
	values[i++] = Int32GetDatum(s.files_total);
	values[i++] = Int32GetDatum(s.files_done);
	values[i++] = Int32GetDatum(s.workers);
	if (s.last_seq > 0)
	{
		values[i++] = CStringGetTextDatum(s.last_id);
		values[i++] = BoolGetDatum(s.last_ok);
		if (s.last_ok)
			nulls[i++] = true;
		else
			values[i++] = CStringGetTextDatum(s.last_error);
		values[i++] = TimestampTzGetDatum(s.last_finished_at);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
	}
	Assert(i == PROGRESS_COLS);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* The running (or last) backup's type, parent and how its blocks were chosen. */
Datum
pgbk_backup_kind(PG_FUNCTION_ARGS)
{
	TupleDesc       tupdesc;
	Datum           values[4];
	bool            nulls[4];
	PgbkBackupState s;
	const char     *v[4];
	int             i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	pgbk_backup_get(&s);
	v[0] = s.type;
	v[1] = s.parent;
	v[2] = s.changes;
	v[3] = s.changes_reason;
	for (i = 0; i < 4; i++)
	{
		nulls[i] = v[i][0] == '\0';
		values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(v[i]);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ------------------------------------------------------------------------
 * Scanning the data directory (pg_basebackup's exclusions)
 * ------------------------------------------------------------------------ */

/* Directories whose contents are not backed up (the directory itself is). */
static const char *const exclude_dir_contents[] = {
    "pg_stat_tmp",  "pg_replslot", "pg_dynshmem", "pg_notify",  "pg_serial",
    "pg_snapshots", "pg_subtrans", XLOGDIR,       "pgbk_spool", NULL};

/* Files never backed up, by name (prefix match where noted). */
static const struct
{
	const char *name;
	bool        prefix;
} exclude_files[] = {{"postgresql.auto.conf.tmp", false},
                     {"current_logfiles.tmp", false},
                     {"pg_internal.init", true},
                     {"backup_label", false},
                     {"tablespace_map", false},
                     {"backup_manifest", false},
                     {"postmaster.pid", false},
                     {"postmaster.opts", false},
                     {"recovery.signal", false},
                     {"standby.signal", false},
                     {NULL, false}};

static bool
excluded_file(const char *name)
{
	int i;

	if (strncmp(name, PG_TEMP_FILE_PREFIX, strlen(PG_TEMP_FILE_PREFIX)) == 0)
		return true;
	for (i = 0; exclude_files[i].name; i++)
	{
		if (exclude_files[i].prefix
		        ? strncmp(name, exclude_files[i].name, strlen(exclude_files[i].name)) == 0
		        : strcmp(name, exclude_files[i].name) == 0)
			return true;
	}
	return false;
}

/* "t<digits>_<digits>..." is a temporary relation's file. */
static bool
temp_relation_file(const char *name)
{
	const char *p = name;

	if (*p++ != 't' || !isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
		p++;
	return *p == '_' && isdigit((unsigned char) p[1]);
}

/* The relation file number a fork/segment file belongs to, or 0. */
static Oid
relation_of_file(const char *name)
{
	const char *p = name;
	Oid         rel = 0;

	if (!isdigit((unsigned char) *p))
		return 0;
	while (isdigit((unsigned char) *p))
		rel = rel * 10 + (Oid) (*p++ - '0');
	if (*p == '\0' || *p == '.' || *p == '_')
		return rel;
	return 0;
}

static bool
is_db_directory(const char *relpath)
{
	/* base/<oid> or pg_tblspc/<oid>/<version dir>/<oid> */
	const char *p;

	if (strncmp(relpath, "base/", 5) == 0)
	{
		p = relpath + 5;
		return *p && strspn(p, "0123456789") == strlen(p);
	}
	if (strncmp(relpath, "pg_tblspc/", 10) == 0)
	{
		const char *last = strrchr(relpath, '/');
		int         slashes = 0;

		for (p = relpath; *p; p++)
			if (*p == '/')
				slashes++;
		return slashes == 3 && strspn(last + 1, "0123456789") == strlen(last + 1);
	}
	return false;
}

static void
scan_dir(ScanResult *sr, const char *relpath, bool contents)
{
	DIR           *dir;
	struct dirent *de;
	const char    *path = relpath[0] ? relpath : ".";
	List          *unlogged = NIL;
	bool           dbdir = is_db_directory(relpath);

	if (!contents)
		return;

	/* unlogged relations: only their _init fork is backed up */
	if (dbdir)
	{
		dir = AllocateDir(path);
		while ((de = ReadDirExtended(dir, path, LOG)) != NULL)
		{
			size_t n = strlen(de->d_name);

			if (n > 5 && strcmp(de->d_name + n - 5, "_init") == 0)
				unlogged = lappend_oid(unlogged, relation_of_file(de->d_name));
		}
		FreeDir(dir);
	}

	dir = AllocateDir(path);
	while ((de = ReadDirExtended(dir, path, LOG)) != NULL)
	{
		char        child[MAXPGPATH];
		struct stat st;
		int         i;
		bool        skip_contents = false;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		CHECK_FOR_INTERRUPTS();
		if (relpath[0])
			snprintf(child, sizeof(child), "%s/%s", relpath, de->d_name);
		else
			strlcpy(child, de->d_name, sizeof(child));

		if (stat(child, &st) != 0)
		{
			if (errno == ENOENT)
				continue; /* vanished */
			ereport(ERROR, (errcode_for_file_access(), errmsg("could not stat \"%s\": %m", child)));
		}

		if (S_ISDIR(st.st_mode))
		{
			ManifestDir *md;

			if (strncmp(de->d_name, PG_TEMP_FILES_DIR, strlen(PG_TEMP_FILES_DIR)) == 0)
				continue;
			for (i = 0; exclude_dir_contents[i]; i++)
				if (strcmp(child, exclude_dir_contents[i]) == 0)
					skip_contents = true;
			/* pg_wal/archive_status must exist in the restored directory */
			if (strcmp(relpath, XLOGDIR) == 0)
				skip_contents = true;

			/* tablespace links: remember where they point */
			if (strcmp(relpath, "pg_tblspc") == 0)
			{
				char                link[MAXPGPATH];
				ssize_t             n = readlink(child, link, sizeof(link) - 1);
				ManifestTablespace *ts = palloc0(sizeof(ManifestTablespace));

				if (n >= 0)
				{
					link[n] = '\0';
					ts->oid = (uint32) strtoul(de->d_name, NULL, 10);
					ts->location = pstrdup(link);
					sr->tablespaces = lappend(sr->tablespaces, ts);
				}
			}
			md = palloc(sizeof(ManifestDir));
			md->path = pstrdup(child);
			md->mode = st.st_mode & 07777;
			sr->dirs = lappend(sr->dirs, md);
			scan_dir(sr, child, !skip_contents);
		}
		else if (S_ISREG(st.st_mode))
		{
			ScanFile *sf;
			Oid       rel;

			if (excluded_file(de->d_name) || temp_relation_file(de->d_name))
				continue;
			if (unlogged != NIL && (rel = relation_of_file(de->d_name)) != 0 &&
			    list_member_oid(unlogged, rel))
			{
				size_t n = strlen(de->d_name);

				if (!(n > 5 && strcmp(de->d_name + n - 5, "_init") == 0))
					continue;
			}
			sf = palloc(sizeof(ScanFile));
			sf->path = pstrdup(child);
			sf->size = (uint64) st.st_size;
			sr->files = lappend(sr->files, sf);
			sr->bytes += (uint64) st.st_size;
		}
	}
	FreeDir(dir);
}

static int
cmp_size_desc(const ListCell *a, const ListCell *b)
{
	const ScanFile *fa = lfirst(a);
	const ScanFile *fb = lfirst(b);

	if (fa->size != fb->size)
		return fa->size > fb->size ? -1 : 1;
	return strcmp(fa->path, fb->path);
}

/* ------------------------------------------------------------------------
 * Copier workers
 * ------------------------------------------------------------------------ */

static void
copy_fail(CopyShared *cs, const PgbkError *err)
{
	SpinLockAcquire(&cs->mutex);
	if (!cs->failed)
	{
		cs->failed = true;
		cs->code = err->code;
		strlcpy(cs->error, err->msg, sizeof(cs->error));
	}
	SpinLockRelease(&cs->mutex);
}

/* A block file's object, opened on its first block (none if it has none). */
typedef struct BlockObject
{
	PgbkContext  *ctx;
	const char   *key;
	const char   *attrs;
	CodecEncoder *enc;
	RepoWriter   *w;
	PgbkBuf      *out;
	uint64        stored;
	uint64        raw;
} BlockObject;

static PgbkStatus
block_object_put(BlockObject *o, const void *data, size_t len, PgbkError *err)
{
	PgbkStatus rc = PGBK_OK;

	if (o->w == NULL)
	{
		RepoPutOptions opts;

		memset(&opts, 0, sizeof(opts));
		opts.no_overwrite = true;
		pgbk_buf_reset(o->out);
		if ((rc = codec_encoder_begin(&o->ctx->params, o->attrs, &o->enc, o->out, err)) != PGBK_OK)
			return rc;
		if ((rc = repo_writer_open(o->ctx->repo, o->key, &opts, &o->w, err)) != PGBK_OK)
			return rc;
	}
	rc = codec_encoder_update(o->enc, data, len, o->out, err);
	o->raw += len;
	if (rc == PGBK_OK && o->out->len > 0)
	{
		rc = repo_writer_write(o->w, o->out->data, o->out->len, err);
		o->stored += o->out->len;
		pgbk_buf_reset(o->out);
	}
	return rc;
}

static PgbkStatus
block_object_finish(BlockObject *o, unsigned char *hash, PgbkError *err)
{
	CodecEncoder *e = o->enc;
	RepoWriter   *w = o->w;
	uint64        raw;
	PgbkStatus    rc;

	if (w == NULL)
	{
		codec_hash("", 0, hash); /* no block: no object */
		return PGBK_OK;
	}
	o->enc = NULL;
	o->w = NULL;
	rc = codec_encoder_finish(e, o->out, hash, &raw, err);
	if (rc == PGBK_OK)
	{
		rc = repo_writer_write(w, o->out->data, o->out->len, err);
		o->stored += o->out->len;
		pgbk_buf_reset(o->out);
	}
	if (rc == PGBK_OK)
		return repo_writer_commit(w, err);
	repo_writer_abort(w);
	return rc;
}

static void
block_object_abort(BlockObject *o)
{
	if (o->enc)
		codec_encoder_free(o->enc);
	if (o->w)
		repo_writer_abort(o->w);
	o->enc = NULL;
	o->w = NULL;
}

/*
 * Is this page (to be) kept by the page-LSN rule: changed at or after the
 * parent's start, or not a valid page (new, torn, short, bad checksum)?
 */
static bool
page_changed(char *page, size_t len, BlockNumber blkno, XLogRecPtr since)
{
	if (len < BLCKSZ || PageIsNew((Page) page))
		return true;
	if (!PageIsVerifiedExtended((Page) page, blkno, 0))
		return true;
	return PageGetLSN((Page) page) >= since;
}

/* pread exactly len bytes or up to EOF; zero-fill what the file lacks. */
static PgbkStatus
pread_full(int fd, const char *path, unsigned char *buf, size_t len, off_t off, PgbkError *err)
{
	size_t done = 0;

	while (done < len)
	{
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t) done);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
		}
		if (n == 0)
		{
			/* truncated while we read: the WAL after the start truncates it again */
			memset(buf + done, 0, len - done);
			break;
		}
		done += (size_t) n;
	}
	return PGBK_OK;
}

/*
 * Copy a block file: only its listed blocks (summaries) or the pages the
 * page-LSN rule keeps, concatenated into one object; the bitmap records
 * which blocks it holds.  The file's size is taken when it is opened; it is
 * capped at cf->cap blocks (the rest was written after the backup's start:
 * the WAL replayed from there brings it back).
 */
static PgbkStatus
copy_blocks(PgbkContext *ctx, CopyShared *cs, CopyFile *cf, const char *path, int fd,
            unsigned char *chunk, PgbkBuf *out, PgbkError *err)
{
	char         key[LAYOUT_KEY_LEN];
	char         attrs[128];
	struct stat  st;
	uint64       size;
	uint32       nblocks, b;
	uint8       *bitmap = (uint8 *) cs + cs->bitmaps_off + cf->bitmap_off;
	BlockObject  o;
	PgbkStatus   rc = PGBK_OK;
	uint64       read_bytes = 0;
	const uint32 per_chunk = COPY_CHUNK / BLCKSZ;

	if (!layout_backup_file_key(cs->backup_id, path, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "path too long: \"%s\"", path);
	if (fstat(fd, &st) != 0)
		return pgbk_error(err, PGBK_ERR_IO, "could not stat \"%s\": %s", path, strerror(errno));
	size = (uint64) st.st_size;
	nblocks = (uint32) Min((size + BLCKSZ - 1) / BLCKSZ, (uint64) cf->cap);
	if ((uint64) nblocks * BLCKSZ < size)
		size = (uint64) nblocks * BLCKSZ;
	snprintf(attrs, sizeof(attrs), "kind=backup_file\nbackup=%s\n", cs->backup_id);
	memset(&o, 0, sizeof(o));
	o.ctx = ctx;
	o.key = key;
	o.attrs = attrs;
	o.out = out;
	memset(bitmap, 0, (cf->cap + 7) / 8);

	if (cs->page_lsn)
	{
		/* read every page, keep the changed ones */
		for (b = 0; rc == PGBK_OK && b < nblocks; b += per_chunk)
		{
			uint32 n = Min(per_chunk, nblocks - b);
			size_t len = (size_t) Min((uint64) n * BLCKSZ, size - (uint64) b * BLCKSZ);
			uint32 i;

			if (pgbk_interrupted())
				rc = pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
			if (rc == PGBK_OK)
				rc = pread_full(fd, path, chunk, len, (off_t) b * BLCKSZ, err);
			read_bytes += len;
			for (i = 0; rc == PGBK_OK && i < n; i++)
			{
				size_t blen = Min((size_t) BLCKSZ, len - (size_t) i * BLCKSZ);

				if (!page_changed((char *) chunk + (size_t) i * BLCKSZ, blen,
				                  cf->base_blkno + b + i, cs->parent_start_lsn))
					continue;
				rc = block_object_put(&o, chunk + (size_t) i * BLCKSZ, blen, err);
				bitmap[(b + i) / 8] |= (uint8) (1 << ((b + i) % 8));
			}
			pgbk_backup_add_progress(len, 0, 0, 0, 0);
		}
	}
	else
	{
		const ManifestBlockRange *r =
		    (const ManifestBlockRange *) ((char *) cs + cs->ranges_off) + cf->ranges_off;
		uint32 k;

		/* pread per run of listed blocks */
		for (k = 0; rc == PGBK_OK && k < cf->nranges; k++)
		{
			uint32 last = Min(r[k].last, nblocks > 0 ? nblocks - 1 : 0);

			if (nblocks == 0)
				break;
			for (b = r[k].first; rc == PGBK_OK && b <= last; b += per_chunk)
			{
				uint32 n = Min(per_chunk, last - b + 1);
				size_t len = (size_t) Min((uint64) n * BLCKSZ, size - (uint64) b * BLCKSZ);
				uint32 i;

				if (pgbk_interrupted())
					rc = pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
				if (rc == PGBK_OK)
					rc = pread_full(fd, path, chunk, len, (off_t) b * BLCKSZ, err);
				if (rc == PGBK_OK)
					rc = block_object_put(&o, chunk, len, err);
				for (i = 0; i < n; i++)
					bitmap[(b + i) / 8] |= (uint8) (1 << ((b + i) % 8));
				read_bytes += len;
				pgbk_backup_add_progress(len, 0, 0, 0, 0);
				if (b + n < b) /* wrapped */
					break;
			}
		}
	}
	if (rc == PGBK_OK)
		rc = block_object_finish(&o, cf->hash, err);
	block_object_abort(&o);
	if (rc != PGBK_OK)
		return pgbk_error_prefix(err, "could not back up \"%s\"", path);
	cf->size = size;
	cf->mtime = (int64) st.st_mtime;
	cf->mode = st.st_mode & 07777;
	cf->stored = o.stored;
	cf->state = COPY_DONE;
	pgbk_backup_add_progress(0, o.stored, 1, (int64) read_bytes - (int64) cf->est, 0);
	return PGBK_OK;
}

/*
 * A whole file whose bytes the parent's chain holds as one whole copy
 * (cf->ref): read it (it is small) and compare size and content hash with
 * the copy's.  The same: it becomes a block file without blocks, nothing is
 * stored, and a restore takes the copy's bytes (the rule in chain.h); the
 * bytes were read during the backup, as a copy's would be.  Else *same is
 * false and the file is copied whole from its start.
 */
static PgbkStatus
same_as_chain(CopyFile *cf, const char *path, int fd, const struct stat *st, unsigned char *chunk,
              bool *same, PgbkError *err)
{
	unsigned char hash[CODEC_HASH_BYTES];
	size_t        len = 0;

	*same = false;
	if ((uint64) st->st_size != cf->ref_size || cf->ref_size >= COPY_CHUNK)
		return PGBK_OK;
	for (;;)
	{
		ssize_t n;

		if (pgbk_interrupted())
			return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
		n = read(fd, chunk + len, COPY_CHUNK - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
		if (n == 0 || (len += (size_t) n) == COPY_CHUNK)
			break; /* the end, or longer than the copy */
	}
	if (len == cf->ref_size)
	{
		codec_hash(chunk, len, hash);
		*same = memcmp(hash, cf->ref_hash, CODEC_HASH_BYTES) == 0;
	}
	if (!*same)
	{
		if (lseek(fd, 0, SEEK_SET) != 0)
			return pgbk_error(err, PGBK_ERR_IO, "could not seek in \"%s\": %s", path,
			                  strerror(errno));
		return PGBK_OK;
	}
	cf->blocks = true; /* listing no block: no object (manifest.h) */
	cf->cap = 0;
	cf->size = len;
	cf->mtime = (int64) st->st_mtime;
	cf->mode = st->st_mode & 07777;
	cf->stored = 0;
	codec_hash("", 0, cf->hash);
	cf->state = COPY_DONE;
	pgbk_backup_add_progress(len, 0, 1, (int64) len - (int64) cf->est, 0);
	return PGBK_OK;
}

/* Stream one data directory file into the repository. */
static PgbkStatus
copy_one(PgbkContext *ctx, CopyShared *cs, CopyFile *cf, unsigned char *chunk, PgbkBuf *out,
         PgbkError *err)
{
	const char    *path = ((char *) cs) + cs->strings_off + cf->path_off;
	char           key[LAYOUT_KEY_LEN];
	char           attrs[128];
	int            fd;
	struct stat    st;
	CodecEncoder  *enc = NULL;
	RepoWriter    *w = NULL;
	RepoPutOptions opts;
	PgbkStatus     rc;
	uint64         stored = 0;
	uint64         raw_size = 0;

	if (!layout_backup_file_key(cs->backup_id, path, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "path too long: \"%s\"", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		if (errno == ENOENT)
		{
			cf->state = COPY_VANISHED;
			pgbk_backup_add_progress(0, 0, 0, -(int64) cf->est, -1);
			return PGBK_OK;
		}
		return pgbk_error(err, PGBK_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
	}
	if (cf->blocks)
	{
		rc = copy_blocks(ctx, cs, cf, path, fd, chunk, out, err);
		close(fd);
		return rc;
	}
	if (fstat(fd, &st) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not stat \"%s\": %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (cf->ref)
	{
		bool same;

		rc = same_as_chain(cf, path, fd, &st, chunk, &same, err);
		if (rc != PGBK_OK || same)
		{
			close(fd);
			return rc == PGBK_OK ? rc : pgbk_error_prefix(err, "could not back up \"%s\"", path);
		}
	}
	snprintf(attrs, sizeof(attrs), "kind=backup_file\nbackup=%s\n", cs->backup_id);
	memset(&opts, 0, sizeof(opts));
	opts.no_overwrite = true;
	pgbk_buf_reset(out);
	rc = codec_encoder_begin(&ctx->params, attrs, &enc, out, err);
	if (rc == PGBK_OK)
		rc = repo_writer_open(ctx->repo, key, &opts, &w, err);
	for (;;)
	{
		ssize_t n;

		if (rc != PGBK_OK)
			break;
		if (out->len > 0)
		{
			rc = repo_writer_write(w, out->data, out->len, err);
			stored += out->len;
			pgbk_buf_reset(out);
			if (rc != PGBK_OK)
				break;
		}
		if (pgbk_interrupted())
		{
			rc = pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
			break;
		}
		n = read(fd, chunk, COPY_CHUNK);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			rc = pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
			break;
		}
		if (n == 0)
		{
			CodecEncoder *e = enc;

			enc = NULL;
			rc = codec_encoder_finish(e, out, cf->hash, &raw_size, err);
			if (rc == PGBK_OK)
			{
				rc = repo_writer_write(w, out->data, out->len, err);
				stored += out->len;
				pgbk_buf_reset(out);
			}
			if (rc == PGBK_OK)
			{
				RepoWriter *ww = w;

				w = NULL;
				rc = repo_writer_commit(ww, err);
			}
			break;
		}
		rc = codec_encoder_update(enc, chunk, (size_t) n, out, err);
		pgbk_backup_add_progress((uint64) n, 0, 0, 0, 0);
	}
	close(fd);
	if (enc)
		codec_encoder_free(enc);
	if (w)
		repo_writer_abort(w);
	if (rc != PGBK_OK)
		return pgbk_error_prefix(err, "could not back up \"%s\"", path);
	cf->size = raw_size;
	cf->mtime = (int64) st.st_mtime;
	cf->mode = st.st_mode & 07777;
	cf->stored = stored;
	cf->state = COPY_DONE;
	pgbk_backup_add_progress(0, stored, 1, (int64) raw_size - (int64) cf->est, 0);
	return PGBK_OK;
}

void
pgbk_copier_main(Datum arg)
{
	dsm_segment   *seg;
	CopyShared    *cs;
	PgbkContext   *ctx;
	PgbkError      err;
	unsigned char *chunk;
	PgbkBuf        out;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgbk_install_hooks();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "pgbk copier");
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("could not attach to the base backup's shared memory segment"),
		                errdetail("The backup coordinator has exited.")));
	cs = dsm_segment_address(seg);

	pgbk_error_clear(&err);
	ctx = pgbk_context(&err);
	if (ctx == NULL)
	{
		copy_fail(cs, &err);
		proc_exit(0);
	}
	chunk = palloc(COPY_CHUNK);
	pgbk_buf_init(&out);
	for (;;)
	{
		uint32 idx;

		CHECK_FOR_INTERRUPTS();
		if (cs->failed)
			break;
		idx = pg_atomic_fetch_add_u32(&cs->next, 1);
		if (idx >= (uint32) cs->nfiles)
			break;
		if (copy_one(ctx, cs, &cs->files[idx], chunk, &out, &err) != PGBK_OK)
		{
			copy_fail(cs, &err);
			break;
		}
	}
	pgbk_buf_free(&out);
	pgbk_context_reset();
	dsm_detach(seg);
	proc_exit(0);
}

/* ------------------------------------------------------------------------
 * The coordinator
 * ------------------------------------------------------------------------ */

static bool backup_started = false;

static void
spi_exec(const char *sql, int expect)
{
	int ret = SPI_execute(sql, false, 0);

	if (ret != expect)
		elog(ERROR, "\"%s\" failed: %s", sql, SPI_result_code_string(ret));
}

static void
begin_tx(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Wait until every WAL segment from start to stop is in the repository.
 * Polls with a backoff from 10 ms doubling to 500 ms, from 10 ms again for
 * each segment: the stop segment usually arrives within milliseconds, and
 * the backup should not sleep long after it does.
 */
static void
wait_for_wal(PgbkContext *ctx, uint32 tli, XLogRecPtr start_lsn, XLogRecPtr stop_lsn)
{
	WalSegNo    seg = walname_lsn_to_segno(start_lsn, wal_segment_size);
	WalSegNo    last = walname_end_lsn_to_segno(stop_lsn, wal_segment_size);
	TimestampTz deadline =
	    TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pgbk_backup_wal_timeout * 1000);
	PgbkError err;
	long      delay_ms = 10;

	while (seg <= last)
	{
		char           name[WALNAME_BUFLEN];
		char           key[LAYOUT_KEY_LEN];
		RepoObjectInfo info;
		PgbkStatus     st;

		walname_format_segment(name, tli, seg, wal_segment_size);
		layout_wal_key(name, key, sizeof(key));
		pgbk_error_clear(&err);
		st = repo_head(ctx->repo, key, &info, &err);
		if (st == PGBK_OK)
		{
			seg++;
			delay_ms = 10;
			continue;
		}
		if (st != PGBK_NOT_FOUND)
			pgbk_report_error(WARNING, &err, "could not check the backup's WAL");
		if (GetCurrentTimestamp() > deadline)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("WAL segment %s, needed by the backup, did not reach the repository "
			                "within pgbk.backup_wal_timeout (%d s)",
			                name, pgbk_backup_wal_timeout),
			         errhint("Check bk_status: archiving may be failing.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, delay_ms,
		                 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		delay_ms = Min(delay_ms * 2, 500);
	}
}

/* ------------------------------------------------------------------------
 * Incremental backups: the parent and the changed blocks
 * ------------------------------------------------------------------------ */

/*
 * Relation file path -> relation fork and segment number: global/<rel>,
 * base/<db>/<rel>, pg_tblspc/<spc>/<version dir>/<db>/<rel>, where <rel> is
 * <relfilenode>[_fsm|_vm|_init][.<segno>].  False for any other file.
 */
static bool
parse_relation_path(const char *path, WalRelFork *rf, uint32 *segno)
{
	const char   *p;
	char         *end;
	unsigned long v;

	memset(rf, 0, sizeof(*rf));
	*segno = 0;
	if (strncmp(path, "global/", 7) == 0)
	{
		rf->spc = GLOBALTABLESPACE_OID;
		rf->db = 0;
		p = path + 7;
	}
	else if (strncmp(path, "base/", 5) == 0)
	{
		rf->spc = DEFAULTTABLESPACE_OID;
		v = strtoul(path + 5, &end, 10);
		if (end == path + 5 || *end != '/')
			return false;
		rf->db = (uint32) v;
		p = end + 1;
	}
	else if (strncmp(path, "pg_tblspc/", 10) == 0)
	{
		size_t vlen = strlen(TABLESPACE_VERSION_DIRECTORY);

		v = strtoul(path + 10, &end, 10);
		if (end == path + 10 || *end != '/' ||
		    strncmp(end + 1, TABLESPACE_VERSION_DIRECTORY, vlen) != 0 || end[1 + vlen] != '/')
			return false;
		rf->spc = (uint32) v;
		p = end + 2 + vlen;
		v = strtoul(p, &end, 10);
		if (end == p || *end != '/')
			return false;
		rf->db = (uint32) v;
		p = end + 1;
	}
	else
		return false;
	if (!isdigit((unsigned char) *p))
		return false;
	v = strtoul(p, &end, 10);
	rf->rel = (uint32) v;
	p = end;
	if (strncmp(p, "_fsm", 4) == 0)
		rf->fork = WALCHG_FORK_FSM, p += 4;
	else if (strncmp(p, "_vm", 3) == 0)
		rf->fork = WALCHG_FORK_VM, p += 3;
	else if (strncmp(p, "_init", 5) == 0)
		rf->fork = WALCHG_FORK_INIT, p += 5;
	else
		rf->fork = WALCHG_FORK_MAIN;
	if (*p == '.')
	{
		p++;
		if (!isdigit((unsigned char) *p))
			return false;
		v = strtoul(p, &end, 10);
		*segno = (uint32) v;
		p = end;
	}
	return *p == '\0' && rf->rel != 0;
}

/* This server's timeline history as a WalHistory (oldest first). */
static void
server_history(TimeLineID tli, WalHistory *out)
{
	List     *entries = readTimeLineHistory(tli); /* newest first */
	int       n = list_length(entries), i = 0;
	ListCell *lc;

	out->n = 0;
	out->entries = calloc((size_t) Max(n, 1), sizeof(WalHistoryEntry));
	if (out->entries == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	foreach (lc, entries)
	{
		TimeLineHistoryEntry *e = lfirst(lc);
		WalHistoryEntry      *w = &out->entries[n - 1 - i];

		w->tli = e->tli;
		w->begin = e->begin;
		w->end = e->end;
		w->reason = strdup("");
		i++;
	}
	out->n = n;
	for (i = 0; i < n; i++)
		if (out->entries[i].reason == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
}

/* Does the parent list this path?  (its chain's index, chain.c) */
static bool
parent_has(const Incremental *inc, const char *path)
{
	return manifest_chain_find(inc->pchain, 0, path) != NULL;
}

/* Start time of the full backup the chain of backup id ends in (catalog); 0 unknown. */
static TimestampTz
chain_full_start(const char *id)
{
	Oid         types[1] = {TEXTOID};
	Datum       vals[1];
	TimestampTz t = 0;
	bool        isnull;

	vals[0] = CStringGetTextDatum(id);
	if (SPI_execute_with_args(
	        "WITH RECURSIVE c(id, parent, type, start_time, depth) AS ("
	        " SELECT id, parent, type, start_time, 0 FROM pgbk.backup WHERE id = $1"
	        " UNION ALL SELECT b.id, b.parent, b.type, b.start_time, c.depth + 1"
	        " FROM pgbk.backup b JOIN c ON b.id = c.parent WHERE c.depth < 100000) "
	        "SELECT start_time FROM c WHERE type = 'full' LIMIT 1",
	        1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.backup");
	if (SPI_processed == 1)
	{
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			t = DatumGetTimestampTz(d);
	}
	return t;
}

static void
incremental_off(Incremental *inc, const char *fmt, const char *arg)
{
	inc->on = false;
	snprintf(inc->reason, sizeof(inc->reason), fmt, arg);
}

/*
 * Decide, after pg_backup_start, whether this backup is incremental and how
 * its blocks are chosen.  An explicit request whose parent is missing or
 * unreadable is refused; 'auto' takes a full backup then.
 */
static void
plan_incremental(PgbkContext *ctx, BackupRequest req, TimeLineID tli, XLogRecPtr start_lsn,
                 Incremental *inc)
{
	WalHistory chain;
	char       why[PGBK_ERROR_LEN];
	PgbkError  err;
	PgbkStatus st;
	bool       found;

	memset(inc, 0, sizeof(*inc));
	if (req == REQUEST_FULL)
		return;
	if (req == REQUEST_AUTO && pgbk_max_backup_chain == 0)
	{
		incremental_off(inc, "%s", "pgbk.max_backup_chain is 0");
		return;
	}
	server_history(tli, &chain);
	begin_tx();
	found = pgbk_plan_parent(&chain, start_lsn, inc->parent, sizeof(inc->parent), why, sizeof(why));
	end_tx();
	if (!found)
	{
		walname_history_free(&chain);
		incremental_off(inc, "no parent: %s", why);
		return;
	}

	pgbk_error_clear(&err);
	st = manifest_load(ctx->repo, ctx->params.keyring, inc->parent, &inc->pm, &err);
	if (st != PGBK_OK || inc->pm->wal_segment_size != (uint32) wal_segment_size ||
	    inc->pm->system_identifier != GetSystemIdentifier())
	{
		const char *what = st == PGBK_NOT_FOUND ? "is missing from the repository (expired?)"
		                   : st != PGBK_OK      ? "is unreadable"
		                                        : "is of another database system";

		walname_history_free(&chain);
		if (req == REQUEST_INCREMENTAL)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("cannot take an incremental backup: its parent backup %s %s",
			                       inc->parent, what),
			                st != PGBK_OK ? errdetail("%s", err.msg) : 0,
			                errhint("Take a full backup: SELECT bk_base_backup(type => 'full').")));
		manifest_free(inc->pm);
		inc->pm = NULL;
		snprintf(why, sizeof(why), "parent backup %s %s", inc->parent, what);
		incremental_off(inc, "%s", why);
		return;
	}
	inc->parent_start_lsn = inc->pm->start_lsn;
	inc->chain_length = inc->pm->chain_length + 1;
	if (req == REQUEST_AUTO)
	{
		TimestampTz full_at;

		if (inc->chain_length > pgbk_max_backup_chain)
		{
			snprintf(why, sizeof(why),
			         "the chain has %d incremental backups, pgbk.max_backup_chain is %d",
			         inc->chain_length - 1, pgbk_max_backup_chain);
			walname_history_free(&chain);
			incremental_off(inc, "%s", why);
			return;
		}
		begin_tx();
		full_at = chain_full_start(inc->parent);
		end_tx();
		if (pgbk_full_backup_interval > 0 &&
		    (full_at == 0 ||
		     GetCurrentTimestamp() - full_at > (int64) pgbk_full_backup_interval * USECS_PER_SEC))
		{
			walname_history_free(&chain);
			incremental_off(inc,
			                full_at == 0 ? "the chain's full backup is not in the catalog%s"
			                             : "the chain's full backup is older than "
			                               "pgbk.full_backup_interval%s",
			                "");
			return;
		}
	}
	/*
	 * The parent's chain down to its full backup: an incremental is usable
	 * only with it, and whole files it already holds unchanged are not
	 * stored again (CopyFile.ref).  The parent's manifest, loaded above, is
	 * its head: not fetched twice.
	 */
	pgbk_error_clear(&err);
	st = manifest_chain_load_from(ctx->repo, ctx->params.keyring, inc->pm, PLAN_CHAIN_MAX,
	                              &inc->pchain, &err);
	if (st != PGBK_OK)
	{
		walname_history_free(&chain);
		if (req == REQUEST_INCREMENTAL)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("cannot take an incremental backup: the chain of its parent "
			                       "backup %s is broken: %s",
			                       inc->parent, err.msg),
			                errhint("Take a full backup: SELECT bk_base_backup(type => 'full').")));
		snprintf(why, sizeof(why), "the chain of parent backup %s is broken: %s", inc->parent,
		         err.msg);
		incremental_off(inc, "%s", why);
		return;
	}
	inc->on = true;

	/*
	 * The change range [parent start, start) summarized: summaries the
	 * archiver stored, and pg_wal's files for the segments it has not
	 * archived yet (the one holding the start LSN is still being written),
	 * so nothing waits for archiving here.
	 */
	set_phase("summarizing changes");
	{
		const char      *reason = NULL;
		WalChgLocal      local;
		WalChgRange      range;
		WalChgUnionStats stats;

		memset(&local, 0, sizeof(local));
		local.read = walchg_read_dir;
		local.arg = (void *) XLOGDIR;
		local.sysid = GetSystemIdentifier();
		memset(&range, 0, sizeof(range));
		range.repo = ctx->repo;
		range.ring = ctx->params.keyring;
		range.params = &ctx->params;
		range.hist = &chain;
		range.from = inc->parent_start_lsn;
		range.to = start_lsn;
		range.seg_size = (uint32) wal_segment_size;
		range.local = &local;
		pgbk_error_clear(&err);
		st = walchg_union(&range, &inc->changes, &stats, &err);
		inc->segments = stats.segments;
		inc->local_segments = stats.local;
		if (st != PGBK_OK)
		{
			inc->page_lsn = true;
			snprintf(inc->reason, sizeof(inc->reason), "change summaries unavailable: %s", err.msg);
		}
		else if (!walchg_complete(inc->changes, &reason))
		{
			inc->page_lsn = true;
			snprintf(inc->reason, sizeof(inc->reason), "change summaries incomplete: %s",
			         reason ? reason : "no reason given");
		}
	}
	if (inc->page_lsn && inc->changes)
	{
		walchg_free(inc->changes);
		inc->changes = NULL;
	}
	walname_history_free(&chain);
}

/*
 * The blocks of one relation segment file to copy, from the summaries, as
 * ranges relative to the file (appended to *ranges); *limit is the file's
 * block from which on everything is copied (MANIFEST_NO_LIMIT: none).
 */
static void
file_ranges(const WalChangeEntry *e, uint32 base, uint32 cap, List **ranges, uint32 *limit)
{
	uint32 i;
	uint32 flimit = MANIFEST_NO_LIMIT;
	int64  first = -1, last = -1;

	if (e->limit != WALCHG_NO_LIMIT && e->limit < base + (uint32) RELSEG_SIZE)
		flimit = e->limit <= base ? 0 : e->limit - base;
	for (i = 0; i < e->nblocks; i++)
	{
		uint32 b = e->blocks[i];

		if (b < base || b - base >= cap || (flimit != MANIFEST_NO_LIMIT && b - base >= flimit))
			continue;
		b -= base;
		if (last >= 0 && b == last + 1)
			last = b;
		else
		{
			if (last >= 0)
			{
				ManifestBlockRange *r = palloc(sizeof(*r));

				r->first = (uint32) first;
				r->last = (uint32) last;
				*ranges = lappend(*ranges, r);
			}
			first = last = b;
		}
	}
	if (last >= 0)
	{
		ManifestBlockRange *r = palloc(sizeof(*r));

		r->first = (uint32) first;
		r->last = (uint32) last;
		*ranges = lappend(*ranges, r);
	}
	if (flimit != MANIFEST_NO_LIMIT && flimit < cap)
	{
		ManifestBlockRange *r = palloc(sizeof(*r));

		r->first = flimit;
		r->last = cap - 1;
		*ranges = lappend(*ranges, r);
	}
	*limit = flimit;
}

static char *
label_field(const char *label, const char *field)
{
	const char *p = strstr(label, field);
	const char *end;

	if (p == NULL)
		return NULL;
	p += strlen(field);
	end = strchr(p, '\n');
	return pnstrdup(p, end ? (Size) (end - p) : strlen(p));
}

static int64
timestamptz_to_unix_us(TimestampTz ts)
{
	return (int64) ts + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

/*
 * The source's configuration files that live outside its data directory
 * (postgresql.conf and conf.d/ included files, pg_hba.conf, pg_ident.conf,
 * as Debian keeps them in /etc/postgresql/...) go into the manifest: a
 * copy of the data directory alone would lose them.  Files inside the data
 * directory are backed up as files already.  One that cannot be read is
 * left out with a warning; it never fails the backup.
 */
static void
add_source_config(Manifest *m)
{
	size_t  dlen = strlen(DataDir);
	uint64  i;
	PgbkBuf buf;

	begin_tx();
	spi_exec("SELECT DISTINCT f FROM (SELECT sourcefile AS f FROM pg_file_settings "
	         "UNION SELECT current_setting('config_file') "
	         "UNION SELECT current_setting('hba_file') "
	         "UNION SELECT current_setting('ident_file')) s "
	         "WHERE f IS NOT NULL ORDER BY 1",
	         SPI_OK_SELECT);
	pgbk_buf_init(&buf);
	for (i = 0; i < SPI_processed; i++)
	{
		char       *path = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		FILE       *f;
		struct stat st;
		size_t      n;

		if (path == NULL || path[0] != '/' ||
		    (strncmp(path, DataDir, dlen) == 0 && path[dlen] == '/'))
			continue;
		if ((f = AllocateFile(path, "rb")) == NULL)
		{
			ereport(WARNING, (errcode_for_file_access(),
			                  errmsg("base backup without configuration file \"%s\": %m", path)));
			continue;
		}
		if (fstat(fileno(f), &st) != 0 || st.st_size > MANIFEST_CONFIG_MAX ||
		    !pgbk_buf_reserve(&buf, (size_t) st.st_size + 1))
		{
			ereport(WARNING, (errmsg("base backup without configuration file \"%s\": larger than "
			                         "%d bytes or unreadable",
			                         path, MANIFEST_CONFIG_MAX)));
			FreeFile(f);
			continue;
		}
		pgbk_buf_reset(&buf);
		n = fread(buf.data, 1, (size_t) st.st_size, f);
		FreeFile(f);
		if (n != (size_t) st.st_size)
		{
			ereport(WARNING,
			        (errmsg("base backup without configuration file \"%s\": short read", path)));
			continue;
		}
		if (!manifest_add_config(m, path, buf.data, n))
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
			                errdetail("Failed on adding configuration file \"%s\" to the "
			                          "backup manifest.",
			                          path)));
	}
	pgbk_buf_free(&buf);
	end_tx();
}

/*
 * Classify the listed files of an incremental: block files (main forks the
 * parent has too, in databases not created or dropped meanwhile) with their
 * ranges (summaries mode), everything else whole.  Sets cf->blocks, cap,
 * base_blkno, limit, est; returns the ranges of each file (List of
 * ManifestBlockRange, NIL for page-lsn or whole) in ranges[i].
 */
static void
classify_files(const Incremental *inc, List *files, List **ranges, CopyFile *cfs)
{
	ListCell *lc;
	int       i = 0;

	foreach (lc, files)
	{
		ScanFile  *sf = lfirst(lc);
		CopyFile  *cf = &cfs[i];
		WalRelFork rf;
		uint32     segno;
		uint64     hint_blocks = (sf->size + BLCKSZ - 1) / BLCKSZ;

		ranges[i] = NIL;
		cf->est = sf->size;
		cf->limit = MANIFEST_NO_LIMIT;
		i++;
		if (!inc->on || !parse_relation_path(sf->path, &rf, &segno) ||
		    rf.fork != WALCHG_FORK_MAIN || !parent_has(inc, sf->path) ||
		    (!inc->page_lsn && walchg_db_whole(inc->changes, rf.spc, rf.db)))
		{
			/* copied whole, unless the chain holds these bytes (copy_one decides) */
			const ManifestFile *src =
			    inc->on && inc->pchain ? manifest_chain_whole_source(inc->pchain, sf->path) : NULL;

			if (src != NULL && src->size < COPY_CHUNK)
			{
				cf->ref = true;
				cf->ref_size = src->size;
				memcpy(cf->ref_hash, src->hash, CODEC_HASH_BYTES);
			}
			continue;
		}
		cf->blocks = true;
		cf->base_blkno = segno * (uint32) RELSEG_SIZE;
		cf->cap = (uint32) Min(hint_blocks + BLOCK_SLACK, (uint64) RELSEG_SIZE);
		if (!inc->page_lsn)
		{
			const WalChangeEntry *e = walchg_lookup(inc->changes, &rf);
			ListCell             *rc;
			uint64                est = 0;

			if (e != NULL)
				file_ranges(e, cf->base_blkno, cf->cap, &ranges[i - 1], &cf->limit);
			foreach (rc, ranges[i - 1])
			{
				ManifestBlockRange *r = lfirst(rc);

				if (r->first < hint_blocks)
					est += (uint64) (Min((uint64) r->last + 1, hint_blocks) - r->first) * BLCKSZ;
			}
			cf->est = Min(est, sf->size);
		}
	}
}

/* The canonical block list of a block file from its bitmap. */
static char *
bitmap_blocks(const uint8 *bitmap, uint32 cap)
{
	uint32 *list = palloc(sizeof(uint32) * Max(cap, 1));
	uint32  n = 0, b;
	char   *str;

	for (b = 0; b < cap; b++)
		if (bitmap[b / 8] & (1 << (b % 8)))
			list[n++] = b;
	str = manifest_blocks_format(list, n);
	pfree(list);
	if (str == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return str;
}

static void
run_backup(const char *id, BackupRequest req)
{
	PgbkContext            *ctx;
	PgbkError               err;
	ScanResult              sr;
	ListCell               *lc;
	CopyShared             *cs;
	dsm_segment            *seg;
	Size                    strings = 0;
	Size                    size;
	int                     nworkers;
	int                     i;
	BackgroundWorkerHandle *handles[32];
	char                   *start_lsn_text;
	XLogRecPtr              start_lsn, stop_lsn;
	uint32                  tli;
	char                   *labelfile = NULL;
	char                   *spcmapfile = NULL;
	TimestampTz             start_ts, stop_ts;
	Manifest               *m;
	Size                    off = 0;
	char                   *label = psprintf("pgbk %s", id);
	bool                    isnull;
	Incremental             inc;
	List                  **ranges;
	Size                    nranges = 0, bitmaps = 0;

	pgbk_error_clear(&err);
	ctx = pgbk_context(&err);
	if (ctx == NULL)
		pgbk_report_error(ERROR, &err, "could not open the repository");

	/* 1. start */
	set_phase("starting");
	start_ts = GetCurrentTimestamp();
	begin_tx();
	{
		Oid   types[1] = {TEXTOID};
		Datum vals[1];

		vals[0] = CStringGetTextDatum(label);
		if (SPI_execute_with_args("SELECT pg_backup_start($1, true)::text", 1, types, vals, NULL,
		                          false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_backup_start() failed");
		start_lsn_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		start_lsn_text = MemoryContextStrdup(TopMemoryContext, start_lsn_text);
	}
	end_tx();
	backup_started = true;
	if (!walname_parse_lsn(start_lsn_text, &start_lsn))
		elog(ERROR, "unexpected start LSN \"%s\"", start_lsn_text);

	/* 1b. incremental: the parent, and the blocks changed since its start */
	plan_incremental(ctx, req, GetWALInsertionTimeLine(), start_lsn, &inc);
	if (inc.on)
	{
		pgbk_backup_set_type("incremental", inc.parent,
		                     inc.page_lsn ? MANIFEST_CHANGES_PAGE_LSN : MANIFEST_CHANGES_SUMMARIES,
		                     inc.page_lsn ? inc.reason : NULL);
		if (inc.page_lsn)
			ereport(WARNING,
			        (errmsg("incremental base backup %s compares page LSNs with its parent %s's "
			                "start: %s",
			                id, inc.parent, inc.reason),
			         errdetail("Every page of every relation is read; only changed pages are "
			                   "stored.")));
		else
			ereport(LOG,
			        (errmsg("base backup %s is incremental on %s (change summaries from %X/%X: %u "
			                "segments, %u of them summarized from pg_wal)",
			                id, inc.parent, LSN_FORMAT_ARGS(inc.parent_start_lsn), inc.segments,
			                inc.local_segments)));
	}
	else
	{
		pgbk_backup_set_type("full", NULL, NULL, req == REQUEST_FULL ? NULL : inc.reason);
		if (req != REQUEST_FULL)
			ereport(req == REQUEST_INCREMENTAL ? WARNING : LOG,
			        (errmsg("base backup %s is a full backup: %s", id, inc.reason)));
	}

	/* 2. list files */
	set_phase("listing files");
	memset(&sr, 0, sizeof(sr));
	scan_dir(&sr, "", true);
	list_sort(sr.files, cmp_size_desc);
	{
		/* classify first: block files need room for ranges and a bitmap */
		CopyFile *tmp = palloc0(sizeof(CopyFile) * Max(list_length(sr.files), 1));
		uint64    est = 0;

		ranges = palloc0(sizeof(List *) * Max(list_length(sr.files), 1));
		classify_files(&inc, sr.files, ranges, tmp);
		i = 0;
		foreach (lc, sr.files)
		{
			strings += strlen(((ScanFile *) lfirst(lc))->path) + 1;
			tmp[i].ranges_off = (uint32) nranges;
			tmp[i].nranges = (uint32) list_length(ranges[i]);
			nranges += tmp[i].nranges;
			if (tmp[i].blocks)
			{
				tmp[i].bitmap_off = bitmaps;
				bitmaps += (tmp[i].cap + 7) / 8;
			}
			est += tmp[i].est;
			i++;
		}
		size = MAXALIGN(offsetof(CopyShared, files) + sizeof(CopyFile) * list_length(sr.files));
		size += MAXALIGN(sizeof(ManifestBlockRange) * nranges) + MAXALIGN(bitmaps) + strings;
		seg = dsm_create(size, 0);
		cs = dsm_segment_address(seg);
		memset(cs, 0, offsetof(CopyShared, files));
		pg_atomic_init_u32(&cs->next, 0);
		SpinLockInit(&cs->mutex);
		cs->nfiles = list_length(sr.files);
		cs->ranges_off = MAXALIGN(offsetof(CopyShared, files) + sizeof(CopyFile) * cs->nfiles);
		cs->bitmaps_off = cs->ranges_off + MAXALIGN(sizeof(ManifestBlockRange) * nranges);
		cs->strings_off = cs->bitmaps_off + MAXALIGN(bitmaps);
		cs->page_lsn = inc.on && inc.page_lsn;
		cs->parent_start_lsn = inc.parent_start_lsn;
		strlcpy(cs->backup_id, id, sizeof(cs->backup_id));
		i = 0;
		foreach (lc, sr.files)
		{
			ScanFile           *sf = lfirst(lc);
			size_t              n = strlen(sf->path) + 1;
			ManifestBlockRange *ra = (ManifestBlockRange *) ((char *) cs + cs->ranges_off);
			ListCell           *rc;
			uint32              k = tmp[i].ranges_off;

			cs->files[i] = tmp[i];
			cs->files[i].path_off = (uint32) off;
			cs->files[i].size_hint = sf->size;
			foreach (rc, ranges[i])
				ra[k++] = *(ManifestBlockRange *) lfirst(rc);
			memcpy(((char *) cs) + cs->strings_off + off, sf->path, n);
			off += n;
			i++;
		}
		pfree(tmp);
		pgbk_backup_set_totals(est, cs->nfiles);
	}

	/* 3. copy in parallel */
	set_phase("copying files");
	nworkers = Min(pgbk_backup_parallel, (int) lengthof(handles));
	for (i = 0; i < nworkers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgbk");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgbk_copier_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pgbk backup copier %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pgbk backup copier");
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handles[i]))
			break;
	}
	nworkers = i;
	pgbk_backup_set_workers(nworkers);
	if (nworkers == 0)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
		                errmsg("could not start any backup copier worker"),
		                errhint("Raise max_worker_processes.")));
	for (i = 0; i < nworkers; i++)
		(void) WaitForBackgroundWorkerShutdown(handles[i]);
	if (cs->failed)
		ereport(ERROR, (errcode(cs->code != PGBK_OK ? pgbk_errcode(cs->code)
		                                            : ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
		                errmsg("%s", cs->error)));
	if (pg_atomic_read_u32(&cs->next) < (uint32) cs->nfiles)
		ereport(ERROR, (errcode(ERRCODE_OPERATOR_INTERVENTION),
		                errmsg("backup copier workers stopped before copying every file"),
		                errdetail("A copier worker was terminated, or the server is shutting "
		                          "down.")));

	/* 4. stop, then wait for the WAL */
	set_phase("stopping");
	begin_tx();
	spi_exec("SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)", SPI_OK_SELECT);
	{
		char *lsn = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char *lf = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		char *sm;

		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		sm = isnull ? NULL : SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		if (!walname_parse_lsn(lsn, &stop_lsn))
			elog(ERROR, "unexpected stop LSN \"%s\"", lsn);
		labelfile = MemoryContextStrdup(TopMemoryContext, lf);
		spcmapfile = (sm && sm[0]) ? MemoryContextStrdup(TopMemoryContext, sm) : NULL;
	}
	end_tx();
	backup_started = false;
	stop_ts = GetCurrentTimestamp();
	{
		char *t = label_field(labelfile, "START TIMELINE: ");

		tli = t ? (uint32) strtoul(t, NULL, 10) : 1;
	}

	set_phase("waiting for WAL");
	/* stop timeline: the backup runs on one timeline (no promotion meanwhile) */
	wait_for_wal(ctx, tli, start_lsn, stop_lsn);

	/* 5. manifest, last */
	set_phase("writing manifest");
	m = manifest_new();
	if (m == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
		                errdetail("Failed on creating the backup manifest.")));
	strlcpy(m->id, id, sizeof(m->id));
	m->label = strdup(label);
	m->system_identifier = GetSystemIdentifier();
	m->pg_version_num = PG_VERSION_NUM;
	m->timeline = tli;
	m->start_lsn = start_lsn;
	m->stop_lsn = stop_lsn;
	walname_format_segment(m->start_wal, tli, walname_lsn_to_segno(start_lsn, wal_segment_size),
	                       wal_segment_size);
	walname_format_segment(m->stop_wal, tli, walname_end_lsn_to_segno(stop_lsn, wal_segment_size),
	                       wal_segment_size);
	m->start_time_us = timestamptz_to_unix_us(start_ts);
	m->stop_time_us = timestamptz_to_unix_us(stop_ts);
	m->wal_segment_size = wal_segment_size;
	m->backup_label = strdup(labelfile);
	m->tablespace_map = spcmapfile ? strdup(spcmapfile) : NULL;
	m->compression = strdup(ctx->params.compression == PGBK_COMPRESS_ZSTD ? "zstd" : "none");
	m->encrypted = ctx->params.encrypt;
	if (inc.on)
	{
		m->incremental = true;
		strlcpy(m->parent, inc.parent, sizeof(m->parent));
		m->parent_start_lsn = inc.parent_start_lsn;
		m->chain_length = inc.chain_length;
		m->changes_mode =
		    strdup(inc.page_lsn ? MANIFEST_CHANGES_PAGE_LSN : MANIFEST_CHANGES_SUMMARIES);
		m->changes_reason = inc.page_lsn ? strdup(inc.reason) : NULL;
	}
	add_source_config(m);
	foreach (lc, sr.tablespaces)
	{
		ManifestTablespace *ts = lfirst(lc);

		manifest_add_tablespace(m, ts->oid, ts->location);
	}
	foreach (lc, sr.dirs)
	{
		ManifestDir *d = lfirst(lc);

		manifest_add_dir(m, d->path, d->mode);
	}
	for (i = 0; i < cs->nfiles; i++)
	{
		CopyFile    *cf = &cs->files[i];
		ManifestFile mf;

		if (cf->state != COPY_DONE)
			continue;
		memset(&mf, 0, sizeof(mf));
		mf.path = ((char *) cs) + cs->strings_off + cf->path_off;
		mf.size = cf->size;
		mf.mtime = cf->mtime;
		mf.mode = cf->mode;
		memcpy(mf.hash, cf->hash, CODEC_HASH_BYTES);
		mf.stored = cf->stored;
		mf.limit = MANIFEST_NO_LIMIT;
		if (cf->blocks)
		{
			mf.has_blocks = true;
			mf.blocks = bitmap_blocks((uint8 *) cs + cs->bitmaps_off + cf->bitmap_off, cf->cap);
			mf.limit = cf->limit;
		}
		if (!manifest_add_file(m, &mf))
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
			                errdetail("Failed on adding \"%s\" to the backup manifest.", mf.path)));
		/* raw bytes stored: a block file's blocks, not its size */
		m->bytes += manifest_file_content_size(&m->files[m->nfiles - 1]);
		m->stored_bytes += cf->stored;
	}
	pgbk_error_clear(&err);
	if (manifest_store(ctx->repo, &ctx->params, m, &err) != PGBK_OK)
	{
		manifest_free(m);
		pgbk_report_error(ERROR, &err, "could not write the backup manifest");
	}
	dsm_detach(seg);

	begin_tx();
	pgbk_catalog_record_backup(m);
	end_tx();
	if (m->incremental)
		ereport(LOG, (errmsg("base backup %s complete: incremental on %s (%s), " UINT64_FORMAT
		                     " bytes of blocks, " UINT64_FORMAT " stored",
		                     id, m->parent, m->changes_mode, (uint64) m->bytes,
		                     (uint64) m->stored_bytes)));
	else
		ereport(LOG, (errmsg("base backup %s complete", id)));
	manifest_free(m);
	if (inc.pchain)
		manifest_chain_free(inc.pchain); /* it holds inc.pm */
	else
		manifest_free(inc.pm);
	if (inc.changes)
		walchg_free(inc.changes);
}

void
pgbk_backup_main(Datum arg)
{
	char          id[MANIFEST_ID_LEN];
	MemoryContext oldcontext;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgbk_install_hooks();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);

	pgbk_backup_attach(id);

	oldcontext = CurrentMemoryContext;
	PG_TRY();
	{
		run_backup(id, (BackupRequest) MyBgworkerEntry->bgw_extra[0]);
		pgbk_backup_finish(true, NULL);
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		pgbk_backup_finish(false, edata->message);
		ereport(LOG, (errmsg("base backup %s failed: %s", id, edata->message)));
		if (IsTransactionState())
			AbortCurrentTransaction();
		if (backup_started)
		{
			/* leave backup mode; the repository keeps no manifest for it */
			PG_TRY();
			{
				begin_tx();
				spi_exec("SELECT pg_backup_stop(false)", SPI_OK_SELECT);
				end_tx();
			}
			PG_CATCH();
			{
				FlushErrorState();
				AbortCurrentTransaction();
			}
			PG_END_TRY();
		}
	}
	PG_END_TRY();
	pgbk_context_reset();
	proc_exit(0);
}
