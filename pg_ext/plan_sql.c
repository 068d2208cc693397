/*
 * plan_sql.c
 *	  Program pgbk.so; uses the backend (SPI) and common/ plan, wal (walscan) and base.
 *	  The restore planner over the catalog: pgbk.plan_database(),
 *	  bk_restore_window() and expiry's anchor run common/plan/plan.c, the
 *	  code `pgbk restore` runs over the repository (DESIGN.md invariant 5).
 *
 * Only the view differs.  The CLI's view reads the repository; this one
 * reads the catalog, which bk_catalog_sync() fills from the same objects:
 *
 *	 - backups: pgbk.backup rows (the manifest header's metadata);
 *	 - history files: pgbk.timeline rows (tli, parent, switchpoint), each
 *	   timeline's history rebuilt by following the parents;
 *	 - WAL segments: pgbk.wal rows of kind 'segment', one (timeline, log id)
 *	   block at a time; archived_at is the listing's mtime (whole seconds,
 *	   as the CLI sees it); a segment's walscan summary is its `summary`
 *	   column (the object header's attribute text, parsed as the CLI parses
 *	   it), read only for the segments the walk asks about.  Rows catalogued
 *	   before that column existed (an upgrade from 1.0) have only the summary
 *	   columns, mapped onto a summary that never says more than they do.
 *
 * Laziness, so that a plan costs a few index probes whatever the catalog's
 * size: the backups that can matter are loaded first (for a time target the
 * newest few that ended before it, found through the primary key); only if
 * the planner walks down to the oldest of them is the plan made again over
 * every backup.  Queries are prepared once per backend.
 *
 * plan.c allocates with malloc: every view is freed in PG_FINALLY.
 */
#include "pgbk.h"

#include <inttypes.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "plan/plan.h"
#include "plan_sql.h"
#include "base/walname.h"
#include "format/layout.h"
#include "wal/walscan.h"

PG_FUNCTION_INFO_V1(pgbk_plan_database);
PG_FUNCTION_INFO_V1(bk_restore_window);

/* Backups loaded before the whole table is (see the file's comment). */
#define PLAN_SQL_FIRST_BACKUPS 32

/* ------------------------------------------------------------------------
 * Prepared queries
 * ------------------------------------------------------------------------
 */

typedef enum PlanQuery
{
	Q_BACKUPS_TIME = 0, /* $1 stop_time bound, $2 id bound, $3 limit */
	Q_BACKUPS_LSN,      /* $1 stop_lsn bound, $2 limit */
	Q_BACKUPS_NEWEST,   /* $1 limit */
	Q_BACKUPS_ALL,
	Q_BACKUP_OLDEST,
	Q_BACKUPS_BY_ID, /* $1 text[] of ids */
	Q_TIMELINES,
	Q_BLOCK,   /* $1 timeline, $2 first segno, $3 last segno */
	Q_AFTER,   /* $1 timeline, $2 segno */
	Q_SUMMARY, /* $1 timeline, $2 segno */
	Q_RPS,     /* $1 wal name */
	Q_COUNT
} PlanQuery;

#define BACKUP_COLS                                                                                \
	"SELECT id, timeline, start_lsn, stop_lsn, start_time, stop_time, bytes, stored_bytes, "       \
	"system_identifier, parent FROM pgbk.backup "

static const struct
{
	const char *sql;
	int         nargs;
	Oid         types[3];
} query_defs[Q_COUNT] = {
    [Q_BACKUPS_TIME] = {BACKUP_COLS "WHERE stop_time < $1 AND id <= $2 ORDER BY id DESC LIMIT $3",
                        3,
                        {TIMESTAMPTZOID, TEXTOID, INT4OID}},
    [Q_BACKUPS_LSN] = {BACKUP_COLS "WHERE stop_lsn <= $1 ORDER BY id DESC LIMIT $2",
                       2,
                       {PG_LSNOID, INT4OID}},
    [Q_BACKUPS_NEWEST] = {BACKUP_COLS "ORDER BY id DESC LIMIT $1", 1, {INT4OID}},
    [Q_BACKUPS_ALL] = {BACKUP_COLS "ORDER BY id", 0, {0}},
    [Q_BACKUP_OLDEST] = {BACKUP_COLS "ORDER BY id LIMIT 1", 0, {0}},
    [Q_BACKUPS_BY_ID] = {BACKUP_COLS "WHERE id = ANY($1) ORDER BY id", 1, {TEXTARRAYOID}},
    [Q_TIMELINES] = {"SELECT tli, parent_tli, switch_lsn FROM pgbk.timeline ORDER BY tli", 0, {0}},
    [Q_BLOCK] = {"SELECT segno, stored_bytes, archived_at FROM pgbk.wal WHERE timeline = $1 "
                 "AND segno BETWEEN $2 AND $3 AND kind = 'segment' ORDER BY segno",
                 3,
                 {INT4OID, INT8OID, INT8OID}},
    [Q_AFTER] = {"SELECT segno FROM pgbk.wal WHERE timeline = $1 AND segno > $2 "
                 "AND kind = 'segment' ORDER BY segno LIMIT 1",
                 2,
                 {INT4OID, INT8OID}},
    [Q_SUMMARY] = {"SELECT name, written_at, summary, stop_records, first_stop_at, last_stop_at, "
                   "last_record_lsn, tail_may_stop, start_lsn FROM pgbk.wal "
                   "WHERE timeline = $1 AND segno = $2 AND kind = 'segment'",
                   2,
                   {INT4OID, INT8OID}},
    [Q_RPS] = {"SELECT name, lsn, at FROM pgbk.restore_point WHERE wal_name = $1 "
               "ORDER BY lsn LIMIT " CppAsString2(WALSCAN_MAX_RESTORE_POINTS),
               1,
               {TEXTOID}},
};

static SPIPlanPtr query_plans[Q_COUNT];

/* Run query q (SPI connected, read-only: the caller's snapshot). */
static void
run_query(PlanQuery q, Datum *args)
{
	int ret;

	if (query_plans[q] == NULL)
	{
		SPIPlanPtr p =
		    SPI_prepare(query_defs[q].sql, query_defs[q].nargs, (Oid *) query_defs[q].types);

		if (p == NULL)
			elog(ERROR, "could not prepare a planner query: %s",
			     SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "could not keep a planner query");
		query_plans[q] = p;
	}
	ret = SPI_execute_plan(query_plans[q], args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "planner query failed: %s", SPI_result_code_string(ret));
}

static int64_t
ts_to_unix_us(TimestampTz t)
{
	return (int64_t) t + (int64_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

static TimestampTz
unix_us_to_ts(int64_t us)
{
	return (TimestampTz) (us - (int64_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

static Datum
col(int row, int c, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, c, isnull);
}

/* ------------------------------------------------------------------------
 * The view
 * ------------------------------------------------------------------------
 */

typedef struct CatView
{
	int         nrows; /* backup rows, ascending by id like the view's */
	PlanBackup *rows;
	bool        complete;       /* every backup of the catalog is in the view */
	bool        oldest_touched; /* the planner asked for backups[0] */
} CatView;

static PgbkStatus
cv_load_backup(PlanView *v, PlanBackup *b, PgbkError *err)
{
	CatView *cv = v->impl;
	int      lo = 0, hi = cv->nrows - 1;

	(void) err;
	if (v->nbackups > 0 && b == &v->backups[0])
		cv->oldest_touched = true;
	while (lo <= hi)
	{
		int mid = (lo + hi) / 2;
		int c = strcmp(cv->rows[mid].id, b->id);

		if (c == 0)
		{
			*b = cv->rows[mid];
			b->loaded = true;
			return PGBK_OK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	b->broken = true;
	b->broken_reason = strdup("its catalog row is gone");
	return PGBK_OK;
}

static PgbkStatus
cv_list_block(PlanView *v, PlanWalBlock *blk, PgbkError *err)
{
	uint64_t per = UINT64_C(0x100000000) / v->segsz;
	uint32_t tli = blk->tli;
	Datum    args[3];
	uint64   i;

	args[0] = Int32GetDatum((int32) tli);
	args[1] = Int64GetDatum((int64) (blk->logid * per));
	args[2] = Int64GetDatum((int64) ((blk->logid + 1) * per - 1));
	run_query(Q_BLOCK, args);
	/* blk may move as segments are added: it is not used below */
	for (i = 0; i < SPI_processed; i++)
	{
		bool    n1, n2, n3;
		int64   segno = DatumGetInt64(col(i, 1, &n1));
		int64   stored = DatumGetInt64(col(i, 2, &n2));
		int64_t mtime = ts_to_unix_us(DatumGetTimestampTz(col(i, 3, &n3)));

		if (n1 || segno < 0)
			continue;
		if (plan_view_add_segment(v, tli, (WalSegNo) segno, n2 ? 0 : (uint64_t) stored,
		                          n3 ? 0 : mtime) == NULL)
		{
			SPI_freetuptable(SPI_tuptable);
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
	}
	SPI_freetuptable(SPI_tuptable);
	return PGBK_OK;
}

static PgbkStatus
cv_find_after(PlanView *v, uint32_t tli, WalSegNo segno, bool *found, WalSegNo *next,
              PgbkError *err)
{
	Datum args[2];

	(void) v;
	(void) err;
	args[0] = Int32GetDatum((int32) tli);
	args[1] = Int64GetDatum((int64) segno);
	run_query(Q_AFTER, args);
	*found = SPI_processed > 0;
	if (*found)
	{
		bool isnull;

		*next = (WalSegNo) DatumGetInt64(col(0, 1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return PGBK_OK;
}

/*
 * A summary from the columns a 1.0 catalog kept (no `summary` text): never
 * more than they say.  A tail that may be a commit is an unknown record
 * continuing into the next segment; otherwise the segment is taken to end
 * without one.
 */
static void
summary_from_columns(PlanView *v, PlanSegment *s, WalSummary *sum, const char *name, int64 records,
                     bool have_first, int64_t first_us, bool have_last, int64_t last_us,
                     bool have_last_lsn, WalLsn last_lsn, bool tail, WalLsn seg_start)
{
	Datum  args[1];
	uint64 i;

	memset(sum, 0, sizeof(*sum));
	sum->tli = s->tli;
	sum->last_tli = s->tli;
	sum->seg_size = v->segsz;
	sum->segno = s->segno;
	sum->nrecords = have_last_lsn ? 1 : 0;
	sum->first_lsn = sum->last_lsn = have_last_lsn ? last_lsn : WAL_INVALID_LSN;
	sum->ncommits = records > 0 ? (uint64_t) records : 0;
	if (sum->ncommits > 0)
	{
		sum->xact_first_time = sum->xact_min_time = have_first ? first_us : last_us;
		sum->xact_last_time = sum->xact_max_time = have_last ? last_us : first_us;
	}
	if (tail)
	{
		sum->end_kind = WALSCAN_END_SEGMENT;
		sum->cont = WALSCAN_CONT_UNKNOWN;
		sum->cont_lsn = (have_last_lsn ? last_lsn : seg_start) + 1;
	}
	else
		sum->end_kind = WALSCAN_END_SWITCH;
	sum->end_lsn = seg_start + v->segsz;

	args[0] = CStringGetTextDatum(name);
	run_query(Q_RPS, args);
	for (i = 0; i < SPI_processed && i < WALSCAN_MAX_RESTORE_POINTS; i++)
	{
		bool             n1, n2, n3;
		WalRestorePoint *rp = &sum->restore_points[sum->nrestore_points];
		Datum            nm = col(i, 1, &n1);
		XLogRecPtr       lsn = DatumGetLSN(col(i, 2, &n2));
		TimestampTz      at = DatumGetTimestampTz(col(i, 3, &n3));

		if (n1 || n2 || n3)
			continue;
		text_to_cstring_buffer(DatumGetTextPP(nm), rp->name, sizeof(rp->name));
		rp->lsn = lsn;
		rp->time_us = ts_to_unix_us(at);
		sum->nrestore_points++;
	}
	SPI_freetuptable(SPI_tuptable);
}

static PgbkStatus
cv_read_summary(PlanView *v, PlanSegment *s, PgbkError *err)
{
	Datum          args[2];
	bool           isnull;
	int64_t        mt = 0;
	WalSummary     sum;
	PgbkError      oerr;
	SPITupleTable *tt;
	Datum          d;

	args[0] = Int32GetDatum((int32) s->tli);
	args[1] = Int64GetDatum((int64) s->segno);
	run_query(Q_SUMMARY, args);
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		plan_segment_set_summary(s, NULL, 0);
		return PGBK_OK;
	}
	tt = SPI_tuptable;
	d = col(0, 2, &isnull);
	if (!isnull)
		mt = ts_to_unix_us(DatumGetTimestampTz(d));
	d = col(0, 3, &isnull);
	if (!isnull)
	{
		char *attrs = TextDatumGetCString(d);

		pgbk_error_clear(&oerr);
		if (walscan_summary_from_attrs(attrs, &sum, &oerr) == PGBK_OK && sum.seg_size == v->segsz &&
		    sum.segno == s->segno)
		{
			pfree(attrs);
			SPI_freetuptable(tt);
			return plan_segment_set_summary(s, &sum, mt)
			           ? PGBK_OK
			           : pgbk_error(err, PGBK_ERR, "out of memory");
		}
		pfree(attrs);
		SPI_freetuptable(tt);
		plan_segment_set_summary(s, NULL, mt);
		return PGBK_OK;
	}
	d = col(0, 4, &isnull);
	if (isnull)
	{
		/* the object carried no summary */
		SPI_freetuptable(tt);
		plan_segment_set_summary(s, NULL, mt);
		return PGBK_OK;
	}
	{
		int64   records = DatumGetInt32(d);
		bool    n_first, n_last, n_lsn, n_tail, n_start;
		Datum   first = col(0, 5, &n_first);
		Datum   last = col(0, 6, &n_last);
		Datum   lsn = col(0, 7, &n_lsn);
		Datum   tail = col(0, 8, &n_tail);
		Datum   start = col(0, 9, &n_start);
		char   *name = TextDatumGetCString(col(0, 1, &isnull));
		int64_t first_us = n_first ? 0 : ts_to_unix_us(DatumGetTimestampTz(first));
		int64_t last_us = n_last ? 0 : ts_to_unix_us(DatumGetTimestampTz(last));
		WalLsn  last_lsn = n_lsn ? WAL_INVALID_LSN : DatumGetLSN(lsn);
		bool    tail_may = n_tail ? true : DatumGetBool(tail);
		WalLsn  seg_start = n_start ? walname_segno_to_lsn(s->segno, v->segsz) : DatumGetLSN(start);

		SPI_freetuptable(tt);
		if (n_first && n_last)
			records = 0;
		summary_from_columns(v, s, &sum, name, records, !n_first, first_us, !n_last, last_us,
		                     !n_lsn, last_lsn, tail_may, seg_start);
		pfree(name);
	}
	return plan_segment_set_summary(s, &sum, mt) ? PGBK_OK
	                                             : pgbk_error(err, PGBK_ERR, "out of memory");
}

static void
cv_close(PlanView *v)
{
	CatView *cv = v->impl;

	if (cv != NULL)
	{
		free(cv->rows);
		free(cv);
	}
	v->impl = NULL;
}

static const PlanViewOps cat_view_ops = {
    .load_backup = cv_load_backup,
    .list_block = cv_list_block,
    .read_summary = cv_read_summary,
    .find_after = cv_find_after,
    .close = cv_close,
};

/* Sort the rows ascending by id (the queries give either order). */
static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const PlanBackup *) a)->id, ((const PlanBackup *) b)->id);
}

/* Add the backup rows of the last query to the view. */
static void
add_backup_rows(PlanView *v, CatView *cv)
{
	uint64 n = SPI_processed, i;

	{
		PlanBackup *nr = realloc(cv->rows, (cv->nrows + n + 1) * sizeof(PlanBackup));

		if (nr == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		cv->rows = nr;
		memset(&cv->rows[cv->nrows], 0, (n + 1) * sizeof(PlanBackup));
	}
	for (i = 0; i < n; i++)
	{
		bool        isnull;
		PlanBackup *r = &cv->rows[cv->nrows];
		char       *id = TextDatumGetCString(col(i, 1, &isnull));
		Datum       d;

		if (strlen(id) >= MANIFEST_ID_LEN)
			continue; /* not a backup id the repository can hold */
		strcpy(r->id, id);
		r->timeline = (uint32_t) DatumGetInt32(col(i, 2, &isnull));
		r->start_lsn = DatumGetLSN(col(i, 3, &isnull));
		r->stop_lsn = DatumGetLSN(col(i, 4, &isnull));
		r->start_time_us = ts_to_unix_us(DatumGetTimestampTz(col(i, 5, &isnull)));
		r->stop_time_us = ts_to_unix_us(DatumGetTimestampTz(col(i, 6, &isnull)));
		r->bytes = (uint64_t) DatumGetInt64(col(i, 7, &isnull));
		r->stored_bytes = (uint64_t) DatumGetInt64(col(i, 8, &isnull));
		d = col(i, 9, &isnull);
		if (!isnull)
		{
			char *sysid = TextDatumGetCString(d);

			r->system_identifier = strtoull(sysid, NULL, 10);
			pfree(sysid);
		}
		d = col(i, 10, &isnull);
		if (!isnull)
		{
			char *parent = TextDatumGetCString(d);

			r->incremental = true;
			strlcpy(r->parent, parent, sizeof(r->parent));
			pfree(parent);
		}
		/* the catalog is this cluster's: its segment size */
		r->wal_segment_size = (uint32_t) wal_segment_size;
		r->loaded = true;
		pfree(id);
		cv->nrows++;
		if (plan_view_add_backup(v, r->id) == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	SPI_freetuptable(SPI_tuptable);
	if (cv->nrows > 1)
		qsort(cv->rows, cv->nrows, sizeof(PlanBackup), row_cmp);
}

/*
 * A partial view (the newest backups that can serve a target) holds the
 * parents of its incrementals too, so the planner sees whole chains: the
 * missing parents are fetched by id until none is (those the catalog lacks
 * stay missing, and the planner says so).
 */
static void
add_parent_rows(PlanView *v, CatView *cv)
{
	int round;

	for (round = 0; round < PLAN_CHAIN_MAX; round++)
	{
		ArrayBuildState *astate = NULL;
		int              i, nmissing = 0;
		Datum            args[1];

		for (i = 0; i < cv->nrows; i++)
		{
			const PlanBackup *r = &cv->rows[i];

			if (!r->incremental || plan_view_find_backup(v, r->parent) != NULL)
				continue;
			astate = accumArrayResult(astate, CStringGetTextDatum(r->parent), false, TEXTOID,
			                          CurrentMemoryContext);
			nmissing++;
		}
		if (nmissing == 0)
			return;
		args[0] = makeArrayResult(astate, CurrentMemoryContext);
		run_query(Q_BACKUPS_BY_ID, args);
		if (SPI_processed == 0)
		{
			SPI_freetuptable(SPI_tuptable);
			return; /* missing from the catalog: the planner says which */
		}
		add_backup_rows(v, cv);
	}
}

/* Rebuild each timeline's history from the pgbk.timeline rows. */
static void
add_histories(PlanView *v)
{
	uint64         n, i;
	uint32_t      *tlis, *parents;
	WalLsn        *switches;
	StringInfoData text;

	run_query(Q_TIMELINES, NULL);
	n = SPI_processed;
	tlis = palloc(sizeof(uint32_t) * (n + 1));
	parents = palloc(sizeof(uint32_t) * (n + 1));
	switches = palloc(sizeof(WalLsn) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool isnull;

		tlis[i] = (uint32_t) DatumGetInt32(col(i, 1, &isnull));
		parents[i] = (uint32_t) DatumGetInt32(col(i, 2, &isnull));
		switches[i] = DatumGetLSN(col(i, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	initStringInfo(&text);
	for (i = 0; i < n; i++)
	{
		/* ancestors newest first, then written oldest first */
		uint32_t  anc[1024];
		WalLsn    sw[1024];
		int       depth = 0, k;
		uint32_t  cur = tlis[i];
		PgbkError err;

		for (;;)
		{
			uint64 j;

			for (j = 0; j < n && tlis[j] != cur; j++)
				;
			if (j == n || depth >= 1024)
				break;
			anc[depth] = parents[j];
			sw[depth] = switches[j];
			depth++;
			cur = parents[j];
		}
		resetStringInfo(&text);
		for (k = depth - 1; k >= 0; k--)
		{
			char l[WALNAME_LSN_BUFLEN];

			appendStringInfo(&text, "%u\t%s\tno recovery target specified\n", anc[k],
			                 walname_format_lsn(l, sw[k]));
		}
		pgbk_error_clear(&err);
		if (plan_view_add_history(v, tlis[i], text.data, text.len, &err) != PGBK_OK)
			pgbk_report_error(
			    WARNING, &err,
			    psprintf("timeline %u has an inconsistent history in pgbk.timeline", tlis[i]));
	}
	pfree(text.data);
	pfree(tlis);
	pfree(parents);
	pfree(switches);
}

typedef enum BackupSet
{
	SET_ALL = 0,
	SET_FOR_TARGET, /* the newest that can serve the target */
	SET_OLDEST      /* only the oldest (nothing can serve the target) */
} BackupSet;

/* A view on the catalog (SPI connected); free with plan_view_free. */
static PlanView *
cat_view_open(BackupSet set, const PlanTarget *t)
{
	PlanView *v = plan_view_new();
	CatView  *cv = calloc(1, sizeof(CatView));
	Datum     args[3];

	if (v == NULL || cv == NULL || (v->description = strdup("the catalog")) == NULL)
	{
		free(cv);
		plan_view_free(v);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	v->impl = cv;
	v->ops = &cat_view_ops;
	v->segsz = (uint32_t) wal_segment_size;
	PG_TRY();
	{
		if (set == SET_FOR_TARGET && t->kind == PLAN_TARGET_TIME)
		{
			/* ids are start times (seconds): one that ended before T has id <= T's */
			char    idbound[32];
			int64_t secs = t->time_us >= 0 ? t->time_us / 1000000 : (t->time_us - 999999) / 1000000;

			layout_backup_id_format(secs, idbound, sizeof(idbound));
			args[0] = TimestampTzGetDatum(unix_us_to_ts(t->time_us));
			args[1] = CStringGetTextDatum(idbound);
			args[2] = Int32GetDatum(PLAN_SQL_FIRST_BACKUPS);
			run_query(Q_BACKUPS_TIME, args);
		}
		else if (set == SET_FOR_TARGET && t->kind == PLAN_TARGET_LSN)
		{
			args[0] = LSNGetDatum(t->lsn);
			args[1] = Int32GetDatum(PLAN_SQL_FIRST_BACKUPS);
			run_query(Q_BACKUPS_LSN, args);
		}
		else if (set == SET_FOR_TARGET)
		{
			args[0] = Int32GetDatum(PLAN_SQL_FIRST_BACKUPS);
			run_query(Q_BACKUPS_NEWEST, args);
		}
		else if (set == SET_OLDEST)
			run_query(Q_BACKUP_OLDEST, NULL);
		else
			run_query(Q_BACKUPS_ALL, NULL);
		/* complete: every row, or the newest ones and fewer than asked for */
		cv->complete = set == SET_ALL ||
		               (set == SET_FOR_TARGET && t->kind != PLAN_TARGET_TIME &&
		                t->kind != PLAN_TARGET_LSN && SPI_processed < PLAN_SQL_FIRST_BACKUPS);
		add_backup_rows(v, cv);
		if (!cv->complete)
			add_parent_rows(v, cv);
		add_histories(v);
	}
	PG_CATCH();
	{
		plan_view_free(v);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return v;
}

/*
 * Every backup, history and archived segment of the catalog in one view,
 * but for the segments gone(name, arg) says are gone from the repository
 * (bk_verify: the catalog promises them, the repository lost them).  The
 * segments are read through a cursor, a batch at a time; every block is
 * then listed, so the planner never asks the catalog again.
 */
PlanView *
pgbk_plan_catalog_view(bool (*gone)(const char *name, void *arg), void *arg)
{
	PlanView *v = cat_view_open(SET_ALL, NULL);

	PG_TRY();
	{
		SPIPlanPtr plan;
		Portal     portal;
		int        k;

		plan = SPI_prepare("SELECT timeline, segno, stored_bytes, archived_at, name FROM pgbk.wal "
		                   "WHERE kind = 'segment' ORDER BY timeline, segno",
		                   0, NULL);
		if (plan == NULL)
			elog(ERROR, "could not prepare the WAL listing: %s",
			     SPI_result_code_string(SPI_result));
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		for (;;)
		{
			uint64 i;

			CHECK_FOR_INTERRUPTS();
			SPI_cursor_fetch(portal, true, 10000);
			if (SPI_processed == 0)
				break;
			for (i = 0; i < SPI_processed; i++)
			{
				bool    n1, n2, n3, n4, n5;
				int32   tli = DatumGetInt32(col(i, 1, &n1));
				int64   segno = DatumGetInt64(col(i, 2, &n2));
				int64   stored = DatumGetInt64(col(i, 3, &n3));
				Datum   at = col(i, 4, &n4);
				Datum   name = col(i, 5, &n5);
				int64_t mtime = n4 ? 0 : ts_to_unix_us(DatumGetTimestampTz(at));

				if (n1 || n2 || tli <= 0 || segno < 0)
					continue;
				if (gone != NULL && !n5)
				{
					char buf[WALNAME_BUFLEN + 8];

					text_to_cstring_buffer(DatumGetTextPP(name), buf, sizeof(buf));
					if (gone(buf, arg))
						continue;
				}
				if (plan_view_add_segment(v, (uint32_t) tli, (WalSegNo) segno,
				                          n3 ? 0 : (uint64_t) stored, mtime) == NULL)
					ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		SPI_freeplan(plan);
		for (k = 0; k < v->nblocks; k++)
			v->blocks[k].listed = true;
		v->all_listed = true;
	}
	PG_CATCH();
	{
		plan_view_free(v);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return v;
}

/*
 * plan_make over the catalog: over the backups that can serve t first, and
 * over every backup if the planner went down to the oldest of those.
 */
static void
plan_catalog(const PlanTarget *t, PlanResult *res)
{
	BackupSet  set = SET_FOR_TARGET;
	PgbkError  err;
	PgbkStatus st = PGBK_OK;

	for (;;)
	{
		PlanView *v = cat_view_open(set, t);
		CatView  *cv = v->impl;
		BackupSet next = SET_FOR_TARGET;

		pgbk_error_clear(&err);
		PG_TRY();
		{
			if (set == SET_FOR_TARGET && cv->nrows == 0 && !cv->complete)
				next = SET_OLDEST; /* none can serve it: the oldest says why */
			else
			{
				st = plan_make(v, t, res, &err);
				if (set == SET_FOR_TARGET && !cv->complete && cv->oldest_touched)
					next = SET_ALL;
			}
		}
		PG_FINALLY();
		{
			plan_view_free(v);
		}
		PG_END_TRY();
		if (st != PGBK_OK)
			pgbk_report_error(ERROR, &err, "could not make the restore plan");
		if (next == SET_FOR_TARGET)
			return;
		set = next;
	}
}

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------
 */

static void
format_command(StringInfo buf, const PlanTarget *t)
{
	/* as pgbk.config_path() says it */
	const char *cfg = pgbk_config_path != NULL && pgbk_config_path[0] != '\0'
	                      ? pgbk_config_path
	                      : "/etc/pgbk/pgbk.conf";

	appendStringInfo(buf, "pgbk restore --config %s --to /path/to/new/datadir ", cfg);
	switch (t->kind)
	{
		case PLAN_TARGET_TIME:
		{
			time_t secs =
			    (time_t) (t->time_us >= 0 ? t->time_us / 1000000 : (t->time_us - 999999) / 1000000);
			int64_t   frac = t->time_us - (int64_t) secs * 1000000;
			struct tm tm;
			char      b[64];

			gmtime_r(&secs, &tm);
			strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm);
			appendStringInfo(buf, "--target-time '%s.%06" PRId64 "+00'", b, frac);
			break;
		}
		case PLAN_TARGET_LSN:
		{
			char l[WALNAME_LSN_BUFLEN];

			appendStringInfo(buf, "--target-lsn %s", walname_format_lsn(l, t->lsn));
			break;
		}
		default:
			appendStringInfo(buf, "--target-name %s", quote_literal_cstr(t->name));
			break;
	}
}

/*
 * pgbk.plan_database(kind, target_time, target_lsn, target_name): the plan
 * `pgbk restore --dry-run` makes for that target, from the catalog.
 */
Datum
pgbk_plan_database(PG_FUNCTION_ARGS)
{
	TupleDesc  tupdesc;
	PlanTarget t;
	PlanResult res;
	char      *kind;
	Datum      values[13];
	bool       nulls[13];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
		        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the target kind is NULL")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	memset(&t, 0, sizeof(t));
	t.tli_mode = PLAN_TLI_LATEST;
	if (strcmp(kind, "time") == 0 && !PG_ARGISNULL(1) &&
	    !TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(1)))
	{
		t.kind = PLAN_TARGET_TIME;
		t.time_us = ts_to_unix_us(PG_GETARG_TIMESTAMPTZ(1));
	}
	else if (strcmp(kind, "lsn") == 0 && !PG_ARGISNULL(2))
	{
		t.kind = PLAN_TARGET_LSN;
		t.lsn = PG_GETARG_LSN(2);
	}
	else if (strcmp(kind, "name") == 0 && !PG_ARGISNULL(3))
	{
		char *name = text_to_cstring(PG_GETARG_TEXT_PP(3));

		t.kind = PLAN_TARGET_NAME;
		if (name[0] == '\0')
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			                errmsg("the restore point name is empty")));
		if (strlen(name) >= sizeof(t.name))
		{
			/* no restore point can have it: recovery_target_name is MAXFNAMELEN */
			memset(values, 0, sizeof(values));
			memset(nulls, true, sizeof(nulls));
			values[0] = BoolGetDatum(false);
			nulls[0] = false;
			values[1] = CStringGetTextDatum(
			    psprintf("restore point \"%s\" not found in the repository", name));
			nulls[1] = false;
			values[7] = values[8] = Int64GetDatum(0);
			nulls[7] = nulls[8] = false;
			PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
		}
		strlcpy(t.name, name, sizeof(t.name));
	}
	else
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("no %s target given", kind),
		         errhint("kind is 'time', 'lsn' or 'name', with a finite time, an LSN "
		                 "or a name.")));

	pgbk_install_hooks();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan_catalog(&t, &res);
	SPI_finish();

	memset(nulls, false, sizeof(nulls));
	values[0] = BoolGetDatum(res.recoverable);
	if (res.recoverable || res.reason[0] == '\0')
		nulls[1] = true;
	else
		values[1] = CStringGetTextDatum(res.reason);
	if (res.have_backup)
	{
		values[2] = CStringGetTextDatum(res.backup.id);
		values[3] = TimestampTzGetDatum(unix_us_to_ts(res.backup.stop_time_us));
		values[4] = Int32GetDatum((int32) res.timeline);
		values[9] = Int64GetDatum((int64) res.backup.stored_bytes);
	}
	else
		nulls[2] = nulls[3] = nulls[4] = nulls[9] = true;
	if (res.have_wal && res.recoverable)
	{
		values[5] = CStringGetTextDatum(res.first_wal);
		values[6] = CStringGetTextDatum(res.last_wal);
		values[7] = Int64GetDatum((int64) res.nsegments);
		values[8] = Int64GetDatum((int64) res.wal_bytes);
	}
	else
	{
		nulls[5] = nulls[6] = true;
		values[7] = values[8] = Int64GetDatum(0);
	}
	if (res.recoverable)
	{
		StringInfoData cmd;

		initStringInfo(&cmd);
		format_command(&cmd, &t);
		values[10] = CStringGetTextDatum(cmd.data);
	}
	else
		nulls[10] = true;
	if (res.note[0] != '\0')
		values[11] = CStringGetTextDatum(res.note);
	else
		nulls[11] = true;
	if (res.have_backup && res.chain_len > 0)
	{
		Datum *ids = palloc(sizeof(Datum) * res.chain_len);
		int    k;

		for (k = 0; k < res.chain_len; k++)
			ids[k] = CStringGetTextDatum(res.chain[k]);
		values[12] =
		    PointerGetDatum(construct_array(ids, res.chain_len, TEXTOID, -1, false, TYPALIGN_INT));
	}
	else
		nulls[12] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* The segment after (delta 1) or before (delta -1) a segment's name. */
static void
neighbour_name(const char *name, int delta, char *out)
{
	WalFileName f;
	WalSegNo    segno;
	PgbkError   err;

	strlcpy(out, name, WALNAME_BUFLEN);
	if (walname_classify(name, &f) != WAL_FILE_SEGMENT ||
	    walname_file_segno(&f, (uint32_t) wal_segment_size, &segno, &err) != PGBK_OK)
		return;
	if (delta < 0 && segno == 0)
		return;
	walname_format_segment(out, f.tli, delta < 0 ? segno - 1 : segno + 1,
	                       (uint32_t) wal_segment_size);
}

/*
 * bk_restore_window(): the stretches of time `pgbk info` shows as
 * recoverable (plan_window on the newest timeline), one row each; gaps in
 * the archived WAL separate them.
 */
Datum
bk_restore_window(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PlanWindow    *w = palloc0(sizeof(PlanWindow));
	PlanView      *v;
	PgbkError      err;
	PgbkStatus     st = PGBK_OK;
	int            k;

	InitMaterializedSRF(fcinfo, 0);
	pgbk_install_hooks();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	v = cat_view_open(SET_ALL, NULL);
	pgbk_error_clear(&err);
	PG_TRY();
	{
		st = plan_window(v, 0, w, &err);
		if (st == PGBK_OK && w->any)
		{
			CatView *cv = v->impl;
			int64_t  from = w->earliest_us;
			char     first[WALNAME_BUFLEN] = "";
			int      i;

			/* the earliest backup's first segment */
			for (i = 0; i < cv->nrows; i++)
				if (strcmp(cv->rows[i].id, w->earliest_backup) == 0)
					walname_format_segment(
					    first, cv->rows[i].timeline,
					    walname_lsn_to_segno(cv->rows[i].start_lsn, (uint32_t) wal_segment_size),
					    (uint32_t) wal_segment_size);
			for (k = 0; k <= w->ngaps && st == PGBK_OK; k++)
			{
				Datum              values[8];
				bool               nulls[8] = {false};
				int64_t            to;
				char               last[WALNAME_BUFLEN];
				PlanStretchBackups sb;

				if (k < w->ngaps)
				{
					to = w->gaps[k].from_us;
					neighbour_name(w->gaps[k].first_missing, -1, last);
				}
				else
				{
					to = w->latest_us;
					strlcpy(last, w->last_wal, sizeof(last));
				}
				if ((st = plan_stretch_backups(v, from, to, &sb, &err)) != PGBK_OK)
					break;
				values[0] = Int32GetDatum((int32) w->timeline);
				values[1] = TimestampTzGetDatum(unix_us_to_ts(from));
				values[2] = TimestampTzGetDatum(unix_us_to_ts(to));
				values[3] = CStringGetTextDatum(first);
				values[4] = CStringGetTextDatum(last);
				values[5] = Int32GetDatum(sb.backups);
				values[6] = Int32GetDatum(sb.incrementals);
				values[7] = Int32GetDatum(sb.longest_chain);
				nulls[3] = first[0] == '\0';
				nulls[4] = last[0] == '\0';
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
				if (k == w->ngaps || w->gaps[k].to_us == 0)
					break;
				from = w->gaps[k].to_us;
				neighbour_name(w->gaps[k].last_missing, 1, first);
			}
		}
	}
	PG_FINALLY();
	{
		plan_view_free(v);
	}
	PG_END_TRY();
	if (st != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not compute the recoverable window");
	SPI_finish();
	PG_RETURN_NULL();
}

bool
pgbk_plan_backup_for_time(TimestampTz at, char *id, size_t idlen)
{
	PlanTarget t;
	PlanResult res;

	memset(&t, 0, sizeof(t));
	t.kind = PLAN_TARGET_TIME;
	t.time_us = ts_to_unix_us(at);
	t.tli_mode = PLAN_TLI_LATEST;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan_catalog(&t, &res);
	SPI_finish();
	if (!res.have_backup)
		return false;
	strlcpy(id, res.backup.id, idlen);
	return true;
}

bool
pgbk_plan_parent(const WalHistory *chain, XLogRecPtr lsn, char *id, size_t idlen, char *reason,
                 size_t reasonlen)
{
	PlanView   *v;
	PlanBackup *p = NULL;
	PgbkError   err;
	PgbkStatus  st = PGBK_OK;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	v = cat_view_open(SET_ALL, NULL);
	pgbk_error_clear(&err);
	PG_TRY();
	{
		st = plan_parent(v, chain, lsn, GetSystemIdentifier(), &p, &err);
		if (st == PGBK_OK)
			strlcpy(id, p->id, idlen);
	}
	PG_FINALLY();
	{
		plan_view_free(v);
	}
	PG_END_TRY();
	SPI_finish();
	if (st == PGBK_NOT_FOUND)
	{
		strlcpy(reason, err.msg, reasonlen);
		return false;
	}
	if (st != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not choose the parent of an incremental backup");
	return true;
}

void
pgbk_plan_expiry_keep_chains(char **ids, int n, bool *keep, char **needed_by)
{
	PlanView  *v;
	PgbkError  err;
	PgbkStatus st = PGBK_OK;
	bool      *vkeep;
	char(*vneed)[MANIFEST_ID_LEN];
	int           i;
	MemoryContext caller = CurrentMemoryContext; /* SPI_finish frees its own */

	for (i = 0; i < n; i++)
		needed_by[i] = NULL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	v = cat_view_open(SET_ALL, NULL);
	vkeep = palloc0(sizeof(bool) * (v->nbackups + 1));
	vneed = palloc0(sizeof(*vneed) * (v->nbackups + 1));
	for (i = 0; i < n; i++)
	{
		PlanBackup *b = plan_view_find_backup(v, ids[i]);

		if (b != NULL)
			vkeep[b - v->backups] = keep[i];
	}
	pgbk_error_clear(&err);
	PG_TRY();
	{
		st = plan_expiry_keep_chains(v, vkeep, vneed, &err);
		for (i = 0; st == PGBK_OK && i < n; i++)
		{
			PlanBackup *b = plan_view_find_backup(v, ids[i]);
			int         k;

			if (b == NULL)
				continue;
			k = (int) (b - v->backups);
			if (!keep[i] && vkeep[k])
			{
				keep[i] = true;
				needed_by[i] = MemoryContextStrdup(caller, vneed[k]);
			}
		}
	}
	PG_FINALLY();
	{
		plan_view_free(v);
	}
	PG_END_TRY();
	if (st != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not follow the backup chains");
	SPI_finish();
}
