/*
 * expire.c
 *	  Program pgbk.so; uses the backend (SPI), slots.h, plan_sql.h (the planner's
 *	  anchor) and common/ repo and format (layout, manifests).
 *	  bk_expire(): retention by depth.
 *
 * Rules (issue 5, DESIGN.md):
 *	 - keep every base backup needed to reach any moment inside the database
 *	   scope's depth window [as_of - depth, as_of]: the backup a restore to
 *	   the window's start begins from (the "anchor", chosen by the restore
 *	   planner: the newest that ended before it on its timeline's history)
 *	   and every one that ended after it; never the newest backup;
 *	 - delete WAL only before the start of the oldest kept backup: a segment
 *	   whose end is at or before that LSN can serve no kept backup (whatever
 *	   its timeline); timeline history files are always kept;
 *	 - a segment's change summary (changes/..., issue 12) goes with it, just
 *	   before it (expire_wal); a summary whose segment is no longer in the
 *	   repository (an older pgbk did not expire them, or its segment was
 *	   removed by hand) is deleted too (expire_orphan_summaries);
 *	 - external backup registrations older than their scope's depth go,
 *	   except each scope's newest; the files scope is expired by pgbk-watcher
 *	   (restic forget --keep-within depth).
 * as_of must be a moment that has come (finite, at most 5 minutes ahead for
 * clock skew): an infinite one deleted backups and WAL inside the depth.
 * With dry_run (the default) it only says what it would do.  Otherwise the
 * repository objects go first, then the catalog rows (a backup's manifest
 * before its data, so a half-deleted backup is never taken for a complete
 * one): an expiry interrupted anywhere leaves catalog rows whose objects
 * are partly gone, and running it again finishes the job (deleting an
 * absent object succeeds).
 */
#include "pgbk.h"
#include "slots.h"

#include <time.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "plan_sql.h"

#include "format/layout.h"
#include "format/manifest.h"

PG_FUNCTION_INFO_V1(bk_expire);

/* Test hook: fail after this many repository deletions (0: never). */
int pgbk_debug_expire_fail_after = 0;
/* Progress is reported every this many deletions (a setting for tests). */
int pgbk_debug_expire_progress_every = 1000;

typedef struct ExpireState
{
	ReturnSetInfo *rsinfo;
	bool           dry_run;
	PgbkContext   *ctx;
	int            deletions;
	TimestampTz    started;
	char         **pending; /* keys queued for one repo_delete */
	int            npending;
} ExpireState;

/*
 * Keys per repo_delete: the unit of the progress report and of the test
 * hook (the S3 backend batches them itself, one DeleteObjects per 1000).
 */
#define EXPIRE_BATCH 1000

static void
emit(ExpireState *es, const char *kind, const char *object, const char *action, const char *reason)
{
	Datum values[4];
	bool  nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(object);
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(reason);
	tuplestore_putvalues(es->rsinfo->setResult, es->rsinfo->setDesc, values, nulls);
}

/*
 * Delete the queued keys: one request per 1000 on S3.  Counts, the test
 * hook and the progress report work per deleted object as before.
 */
static void
flush_deletes(ExpireState *es)
{
	PgbkError err;
	int       n = es->npending;
	bool      stop = false;
	int       i;

	if (n == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	if (pgbk_debug_expire_fail_after > 0 && es->deletions + n >= pgbk_debug_expire_fail_after)
	{
		n = Max(pgbk_debug_expire_fail_after - es->deletions, 0);
		stop = true;
	}
	pgbk_error_clear(&err);
	if (n > 0 && repo_delete(es->ctx->repo, (const char *const *) es->pending, n, &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err,
		                  n == 1 ? psprintf("could not delete \"%s\"", es->pending[0])
		                         : psprintf("could not delete %d objects (from \"%s\" to \"%s\")",
		                                    n, es->pending[0], es->pending[n - 1]));
	es->deletions += n;
	for (i = 0; i < es->npending; i++)
		pfree(es->pending[i]);
	es->npending = 0;
	if (stop)
		ereport(ERROR, (errcode(ERRCODE_OPERATOR_INTERVENTION),
		                errmsg("expiry stopped by pgbk.debug_expire_fail_after after %d deletions",
		                       es->deletions)));

	/*
	 * Progress: an expiry can delete thousands of objects.  A session gets
	 * a NOTICE; the scheduler's run shows in pg_stat_activity.  Batches end
	 * on multiples of the interval (queue_delete), so the counts are exact.
	 */
	if (pgbk_debug_expire_progress_every > 0 &&
	    es->deletions % pgbk_debug_expire_progress_every == 0)
	{
		long secs;
		int  usecs;

		TimestampDifference(es->started, GetCurrentTimestamp(), &secs, &usecs);
		if (IsBackgroundWorker)
			pgstat_report_activity(
			    STATE_RUNNING,
			    psprintf("pgbk expire: %d objects deleted in %ld s", es->deletions, secs));
		else
			ereport(NOTICE,
			        (errmsg("expiry has deleted %d objects so far (%ld s)", es->deletions, secs)));
	}
}

/* Queue a key for deletion; full batches go at once. */
static void
queue_delete(ExpireState *es, const char *key)
{
	int batch = EXPIRE_BATCH;

	if (pgbk_debug_expire_progress_every > 0)
		batch = Min(batch, pgbk_debug_expire_progress_every -
		                       es->deletions % pgbk_debug_expire_progress_every);
	if (es->pending == NULL)
		es->pending = palloc(sizeof(char *) * EXPIRE_BATCH);
	es->pending[es->npending++] = pstrdup(key);
	if (es->npending >= batch)
		flush_deletes(es);
}

/* One object, gone before the caller goes on (a manifest before data). */
static void
delete_object(ExpireState *es, const char *key)
{
	queue_delete(es, key);
	flush_deletes(es);
}

typedef struct KeyList
{
	List *keys;
} KeyList;

static PgbkStatus
collect_key(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	KeyList *kl = arg;

	kl->keys = lappend(kl->keys, pstrdup(info->key));
	return PGBK_OK;
}

static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Delete WAL objects (names[i] under keys[i]) with their change summaries.
 * Every summary goes before any of the segments: an expiry stopped in
 * between leaves segments without a summary, which is harmless (a backup
 * needing one rebuilds it from the segment, and these are before every
 * kept backup anyway) and which the next run deletes from their catalog
 * rows (kept until the objects are gone).  The other order would leave
 * summaries whose segment is gone: garbage no catalog row points at any
 * more once the catalog is rebuilt from the repository, found only by
 * listing (expire_orphan_summaries).  Deleting an absent summary (a segment
 * archived before summaries, a .backup file) succeeds.
 */
static void
expire_wal(ExpireState *es, char **names, char **keys, uint64 n)
{
	uint64 i;

	for (i = 0; i < n; i++)
	{
		char key[LAYOUT_KEY_LEN];

		if (layout_changes_key(names[i], key, sizeof(key)))
			queue_delete(es, key);
	}
	flush_deletes(es);
	for (i = 0; i < n; i++)
		queue_delete(es, keys[i]);
	flush_deletes(es);
}

typedef struct NameList
{
	List *names;
	bool  changes; /* listing changes/ (else wal/) */
} NameList;

static PgbkStatus
collect_name(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	NameList   *nl = arg;
	const char *name = nl->changes ? layout_changes_name(info->key) : layout_wal_name(info->key);

	if (name != NULL)
		nl->names = lappend(nl->names, pstrdup(name));
	return PGBK_OK;
}

/*
 * Change summaries whose segment is not in the repository: garbage (derived
 * from a segment that is gone, so no backup can need it).  changes/ is
 * listed before wal/, and a summary is stored only after its segment
 * (walpush, or rebuilt from the archived segment), so a summary stored
 * while we list has its segment in the second listing: never taken for
 * garbage.
 */
static void
expire_orphan_summaries(ExpireState *es)
{
	NameList  sums, wal;
	PgbkError err;
	ListCell *lc;
	char    **segs;
	int       nsegs = 0;

	memset(&sums, 0, sizeof(sums));
	memset(&wal, 0, sizeof(wal));
	sums.changes = true;
	pgbk_error_clear(&err);
	if (repo_list(es->ctx->repo, LAYOUT_CHANGES_PREFIX, NULL, collect_name, &sums, &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not list the change summaries");
	if (sums.names == NIL)
		return;
	CHECK_FOR_INTERRUPTS();
	pgbk_error_clear(&err);
	if (repo_list(es->ctx->repo, LAYOUT_WAL_PREFIX, NULL, collect_name, &wal, &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not list the WAL");
	segs = palloc(sizeof(char *) * (list_length(wal.names) + 1));
	foreach (lc, wal.names)
		segs[nsegs++] = lfirst(lc);
	qsort(segs, nsegs, sizeof(char *), cmp_cstring);
	foreach (lc, sums.names)
	{
		char *name = lfirst(lc);
		char  key[LAYOUT_KEY_LEN];

		if (nsegs > 0 && bsearch(&name, segs, nsegs, sizeof(char *), cmp_cstring) != NULL)
			continue;
		emit(es, "change summary", name, es->dry_run ? "would delete" : "delete",
		     "its WAL segment is no longer in the repository (expired by an older pgbk, which "
		     "left summaries behind, or removed by hand): no backup can use it");
		if (!es->dry_run && layout_changes_key(name, key, sizeof(key)))
			queue_delete(es, key);
	}
	flush_deletes(es);
}

/* Delete the data objects of backup id (backup/<id>/...). */
static void
delete_backup_data(ExpireState *es, const char *id)
{
	char      prefix[LAYOUT_KEY_LEN];
	KeyList   kl;
	ListCell *lc;
	PgbkError err;

	snprintf(prefix, sizeof(prefix), LAYOUT_BACKUP_PREFIX "%s/", id);
	kl.keys = NIL;
	pgbk_error_clear(&err);
	if (repo_list(es->ctx->repo, prefix, NULL, collect_key, &kl, &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err, psprintf("could not list backup %s", id));
	foreach (lc, kl.keys)
		queue_delete(es, (const char *) lfirst(lc));
	flush_deletes(es);
}

/* Delete a backup: manifest first, then its data objects, then the row. */
static void
expire_backup(ExpireState *es, const char *id)
{
	char  key[LAYOUT_KEY_LEN];
	Oid   types[1] = {TEXTOID};
	Datum vals[1];

	layout_backup_manifest_key(id, key, sizeof(key));
	delete_object(es, key);
	delete_backup_data(es, id);
	vals[0] = CStringGetTextDatum(id);
	if (SPI_execute_with_args("DELETE FROM pgbk.backup WHERE id = $1", 1, types, vals, NULL, false,
	                          0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete backup row %s", id);
}

/*
 * Incomplete backups: data under backup/<id>/ without a manifest, left by a
 * backup that failed or was interrupted (a crash, an S3 outage, WAL that
 * never came).  Nothing can restore from them.  Only ids older than the
 * backup running when expiry began (or, with none running, than now) are
 * candidates: backup ids are start times, so a backup that starts or ends
 * while we look is never one.  The data is listed before the manifests, so
 * a backup that completes in between is seen complete.
 */
typedef struct IdList
{
	List *ids;
	char  last[LAYOUT_KEY_LEN];
	bool  found;
} IdList;

/* Listing callback: note the id of the first key, then stop the listing. */
static PgbkStatus
first_backup_id(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	IdList     *il = arg;
	const char *p = info->key + strlen(LAYOUT_BACKUP_PREFIX);
	size_t      n = strcspn(p, "/");

	if (n >= sizeof(il->last))
		n = sizeof(il->last) - 1;
	memcpy(il->last, p, n);
	il->last[n] = '\0';
	il->found = true;
	return pgbk_error(err, PGBK_ERR_INTERRUPTED, "enough");
}

static PgbkStatus
collect_manifest_id(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	IdList *il = arg;

	il->ids = lappend(il->ids, pstrdup(info->key + strlen(LAYOUT_MANIFEST_PREFIX)));
	return PGBK_OK;
}

static void
expire_incomplete_backups(ExpireState *es, TimestampTz now)
{
	IdList    data, manifests;
	char      cutoff[MANIFEST_ID_LEN];
	char      running[PGBK_BACKUP_ID_LEN];
	char      after[LAYOUT_KEY_LEN + 8];
	PgbkError err;
	ListCell *lc, *mc;

	/* the cutoff: now, or the running backup's start if earlier */
	layout_backup_id_format((int64_t) timestamptz_to_time_t(now), cutoff, sizeof(cutoff));
	if (pgbk_backup_running(running) && running[0] != '\0' && strcmp(running, cutoff) < 0)
		strlcpy(cutoff, running, sizeof(cutoff));

	/* one listing call per backup id: start after "backup/<id>0" ('0' > '/') */
	memset(&data, 0, sizeof(data));
	after[0] = '\0';
	for (;;)
	{
		PgbkStatus st;

		CHECK_FOR_INTERRUPTS();
		data.found = false;
		pgbk_error_clear(&err);
		st = repo_list(es->ctx->repo, LAYOUT_BACKUP_PREFIX, after[0] ? after : NULL,
		               first_backup_id, &data, &err);
		if (st != PGBK_OK && !(st == PGBK_ERR_INTERRUPTED && data.found))
			pgbk_report_error(ERROR, &err, "could not list the backups' data");
		if (!data.found)
			break;
		data.ids = lappend(data.ids, pstrdup(data.last));
		snprintf(after, sizeof(after), LAYOUT_BACKUP_PREFIX "%s0", data.last);
	}
	memset(&manifests, 0, sizeof(manifests));
	pgbk_error_clear(&err);
	if (repo_list(es->ctx->repo, LAYOUT_MANIFEST_PREFIX, NULL, collect_manifest_id, &manifests,
	              &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not list the backups' manifests");

	foreach (lc, data.ids)
	{
		const char *id = lfirst(lc);
		bool        complete = false;

		foreach (mc, manifests.ids)
			if (strcmp((const char *) lfirst(mc), id) == 0)
				complete = true;
		if (complete || strcmp(id, cutoff) >= 0)
			continue;
		emit(es, "backup", id, es->dry_run ? "would delete" : "delete",
		     "incomplete: its files have no manifest (a backup that failed or was interrupted); "
		     "nothing can be restored from it");
		if (!es->dry_run)
			delete_backup_data(es, id);
	}
}

/* How far in the future as_of may be: clock skew between hosts, no more. */
#define EXPIRE_AS_OF_SKEW_US INT64CONST(300000000)

/*
 * The moment the depth windows are applied from must be one that has come:
 * an infinite or future as_of would put backups and WAL that moments inside
 * the depth still need before the window.  Refused before anything is read
 * or deleted.
 */
static void
check_as_of(FunctionCallInfo fcinfo, TimestampTz *as_of)
{
	TimestampTz now = GetCurrentTimestamp();

	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("as_of must not be NULL"),
		                errhint("Leave it out to expire as of now().")));
	*as_of = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(*as_of))
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("as_of must be a point in time, not %s", timestamptz_to_str(*as_of)),
		         errdetail("The depth window is counted back from as_of, and from an infinite "
		                   "moment it has no start; nothing was deleted.")));
	if (*as_of > now + EXPIRE_AS_OF_SKEW_US)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("as_of %s is in the future", timestamptz_to_str(*as_of)),
		         errdetail("Expiry applies the depth windows from a moment that has come (at "
		                   "most 5 minutes after now, %s, for clock skew); nothing was deleted.",
		                   timestamptz_to_str(now))));
}

Datum
bk_expire(PG_FUNCTION_ARGS)
{
	bool        dry_run = PG_ARGISNULL(0) ? true : PG_GETARG_BOOL(0);
	TimestampTz as_of;
	ExpireState es;
	PgbkError   err;
	int         ret;
	uint64      i, nbackups;
	char       *window_start;
	char       *depth;
	int         anchor = -1;
	TimestampTz window_start_ts;
	bool        have_anchor;
	char        anchor_id[64];
	char      **ids;
	char      **stops;
	bool       *keep;
	char      **needed_by;
	char       *oldest_start = NULL;
	char       *oldest_id = NULL;
	Oid         types[2] = {TIMESTAMPTZOID, TEXTOID};
	Datum       vals[2];

	check_as_of(fcinfo, &as_of);
	InitMaterializedSRF(fcinfo, 0);
	memset(&es, 0, sizeof(es));
	es.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	es.dry_run = dry_run;
	es.started = GetCurrentTimestamp();
	pgbk_install_hooks();
	/* a dry run reads the catalog, and the repository if it can */
	pgbk_error_clear(&err);
	es.ctx = pgbk_context(&err);
	if (es.ctx == NULL)
		pgbk_report_error(dry_run ? WARNING : ERROR, &err, "could not open the repository");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the database scope's window */
	vals[0] = TimestampTzGetDatum(as_of);
	ret = SPI_execute_with_args("SELECT ($1 - depth)::text, depth::text, $1 - depth "
	                            "FROM pgbk.scope WHERE name = 'database'",
	                            1, types, vals, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("the database scope is missing from pgbk.scope"),
		                errdetail("Expiry keeps what the depth of the database scope needs, and "
		                          "that row was deleted."),
		                errhint("Insert the row 'database' again (mechanism 'wal') with the "
		                        "depth to keep; nothing was deleted.")));
	window_start = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	depth = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	{
		bool isnull;

		window_start_ts = DatumGetTimestampTz(
		    SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	}

	/*
	 * The anchor: the backup a restore to the window's start begins from,
	 * chosen by the planner `pgbk restore` runs (plan_sql.c).
	 */
	have_anchor = pgbk_plan_backup_for_time(window_start_ts, anchor_id, sizeof(anchor_id));

	/* backups, oldest first */
	ret = SPI_execute("SELECT id, stop_time::text, start_lsn::text FROM pgbk.backup "
	                  "ORDER BY stop_time",
	                  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.backup");
	nbackups = SPI_processed;
	ids = palloc(sizeof(char *) * (nbackups + 1));
	stops = palloc(sizeof(char *) * (nbackups + 1));
	for (i = 0; i < nbackups; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc td = SPI_tuptable->tupdesc;

		ids[i] = pstrdup(SPI_getvalue(tup, td, 1));
		stops[i] = pstrdup(SPI_getvalue(tup, td, 2));
		if (have_anchor && strcmp(ids[i], anchor_id) == 0)
			anchor = (int) i;
	}
	if (nbackups > 0)
	{
		int first_kept = anchor < 0 ? 0 : anchor;

		vals[0] = CStringGetTextDatum(ids[first_kept]);
		ret = SPI_execute_with_args("SELECT start_lsn::text FROM pgbk.backup WHERE id = $1", 1,
		                            (Oid[]){TEXTOID}, vals, NULL, true, 1);
		oldest_start = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		oldest_id = ids[first_kept];
	}

	/*
	 * Chains: a backup a kept incremental builds on is kept too, so expiring
	 * never orphans an incremental (the rule is plan.c's).
	 */
	keep = palloc0(sizeof(bool) * (nbackups + 1));
	needed_by = palloc0(sizeof(char *) * (nbackups + 1));
	for (i = 0; i < nbackups; i++)
		keep[i] = !(anchor >= 0 && (int) i < anchor);
	if (nbackups > 0)
		pgbk_plan_expiry_keep_chains(ids, (int) nbackups, keep, needed_by);

	for (i = 0; i < nbackups; i++)
	{
		if (keep[i] && needed_by[i] != NULL)
			emit(&es, "backup", ids[i], "keep",
			     psprintf("kept backup %s is an incremental whose chain needs it (a restore "
			              "from that backup reads it)",
			              needed_by[i]));
		else if (!keep[i])
		{
			emit(&es, "backup", ids[i], dry_run ? "would delete" : "delete",
			     psprintf("ended at %s, before backup %s, which is enough to restore to any "
			              "moment since the depth window began (%s, depth %s)",
			              stops[i], ids[anchor], window_start, depth));
			if (!dry_run)
				expire_backup(&es, ids[i]);
		}
		else
			emit(&es, "backup", ids[i], "keep",
			     (int) i == anchor
			         ? psprintf("the newest backup that ended before the depth window began "
			                    "(%s): needed to restore to its start",
			                    window_start)
			     : (i == nbackups - 1) ? pstrdup("the newest backup")
			                           : pstrdup("ended inside the depth window"));
	}

	/* WAL before the start of the oldest kept backup */
	if (oldest_start != NULL)
	{
		uint64 nwal;
		char **names;
		char **keys;

		vals[0] = CStringGetTextDatum(oldest_start);
		ret = SPI_execute_with_args("SELECT name FROM pgbk.wal WHERE kind <> 'history' "
		                            "AND end_lsn <= $1::pg_lsn ORDER BY name",
		                            1, (Oid[]){TEXTOID}, vals, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read pgbk.wal");
		nwal = SPI_processed;
		names = palloc(sizeof(char *) * (nwal + 1));
		keys = palloc(sizeof(char *) * (nwal + 1));
		for (i = 0; i < nwal; i++)
		{
			char key[LAYOUT_KEY_LEN];

			names[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
			layout_wal_key(names[i], key, sizeof(key));
			keys[i] = pstrdup(key);
		}
		for (i = 0; i < nwal; i++)
			emit(&es, "wal", names[i], dry_run ? "would delete" : "delete",
			     psprintf("before the start (%s) of the oldest kept backup %s", oldest_start,
			              oldest_id));
		if (!dry_run)
			expire_wal(&es, names, keys, nwal);
		if (!dry_run && nwal > 0)
		{
			ret = SPI_execute_with_args(
			    "WITH gone AS (DELETE FROM pgbk.wal WHERE kind <> 'history' "
			    "AND end_lsn <= $1::pg_lsn RETURNING name) "
			    "DELETE FROM pgbk.restore_point r USING gone WHERE r.wal_name = gone.name",
			    1, (Oid[]){TEXTOID}, vals, NULL, false, 0);
			if (ret != SPI_OK_DELETE)
				elog(ERROR, "could not delete WAL rows");
		}
	}

	/* external registrations past their scope's depth, but each scope's newest */
	vals[0] = TimestampTzGetDatum(as_of);
	ret = SPI_execute_with_args(
	    "SELECT e.id::text, e.scope || ': ' || e.location, e.taken_at::text, s.depth::text "
	    "FROM pgbk.external_backup e JOIN pgbk.scope s ON s.name = e.scope "
	    "WHERE e.taken_at < $1 - s.depth AND e.id <> (SELECT x.id FROM pgbk.external_backup x "
	    "WHERE x.scope = e.scope ORDER BY x.taken_at DESC LIMIT 1) ORDER BY e.taken_at",
	    1, (Oid[]){TIMESTAMPTZOID}, vals, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.external_backup");
	{
		uint64 n = SPI_processed;
		char **rows = palloc(sizeof(char *) * (n + 1));

		for (i = 0; i < n; i++)
		{
			HeapTuple tup = SPI_tuptable->vals[i];
			TupleDesc td = SPI_tuptable->tupdesc;

			rows[i] = pstrdup(SPI_getvalue(tup, td, 1));
			emit(&es, "external", SPI_getvalue(tup, td, 2), dry_run ? "would delete" : "delete",
			     psprintf("taken at %s, older than the scope's depth (%s)",
			              SPI_getvalue(tup, td, 3), SPI_getvalue(tup, td, 4)));
		}
		for (i = 0; !dry_run && i < n; i++)
		{
			vals[0] = Int64GetDatum(strtoll(rows[i], NULL, 10));
			if (SPI_execute_with_args("DELETE FROM pgbk.external_backup WHERE id = $1", 1,
			                          (Oid[]){INT8OID}, vals, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not delete an external backup row");
		}
	}

	/* data of backups that never completed; summaries whose segment is gone */
	if (es.ctx != NULL)
	{
		expire_incomplete_backups(&es, GetCurrentTimestamp());
		expire_orphan_summaries(&es);
	}
	else
	{
		emit(&es, "backup", "incomplete backups", "unknown",
		     psprintf("the repository could not be opened to look for them: %s", err.msg));
		emit(&es, "change summary", "summaries of segments no longer archived", "unknown",
		     psprintf("the repository could not be opened to look for them: %s", err.msg));
	}

	emit(&es, "files", "restic repository", "delegated",
	     "pgbk-watcher runs restic forget --keep-within with the files scope's depth");
	SPI_finish();
	PG_RETURN_VOID();
}
