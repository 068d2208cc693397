/*
 * catalog.c
 *	  Program pgbk.so; uses the backend (SPI), slots.h and common/ base, repo, format
 *	  (layout, manifests) and wal (walscan).
 *	  Keep the WAL catalog (pgbk.wal, pgbk.restore_point) in step with the
 *	  repository, which is the source of truth (DESIGN.md invariant 3).
 *
 * The catalog is only ever filled from what the repository holds: a listing
 * of wal/ plus each new object's header (its attributes carry the file name,
 * its mtime on the server and the walscan summary).  So the same code
 * catches up after uploads by the archive module, the uploaders or `pgbk
 * wal-push`, and rebuilds the catalog from nothing (bk_catalog_sync()).
 *
 *	 - incremental: list from a little before the newest catalogued segment
 *	   (parallel uploads finish out of order) and add what is missing;
 *	 - full: list everything, add what is missing and drop rows whose object
 *	   is gone.
 */
#include "pgbk.h"
#include "slots.h"

#include <inttypes.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "format/layout.h"
#include "format/manifest.h"
#include "base/walname.h"
#include "wal/walscan.h"

PG_FUNCTION_INFO_V1(bk_catalog_sync);

/* How far before the newest catalogued segment an incremental sync looks. */
#define SYNC_WINDOW_SEGMENTS 256
#define SYNC_BATCH           500

typedef struct ListedObject
{
	char    *key;
	uint64_t size;
	int64_t  mtime;
} ListedObject;

typedef struct SyncState
{
	PgbkContext  *ctx;
	bool          full;
	ListedObject *batch;
	int           nbatch;
	int64         added;
	PgbkError    *err;
	int64         unreadable; /* met again, reported before */
	char          first_unreadable[LAYOUT_KEY_LEN];
	List         *unreadable_met; /* keys met unreadable in this sync (full) */
} SyncState;

/*
 * Objects whose content cannot be read (a damaged header, a key id the key
 * file lacks) get no catalog row, so every sync meets them again, and the
 * scheduler syncs after every upload.  Each is reported once per process:
 * later syncs skip it without reading it, until it changes (size, mtime)
 * or a new context is loaded (pgbk.conf or the key file changed).  A sync
 * a user asked for (bk_catalog_sync()) then says in one line how many there
 * are; `pgbk verify` names them all.
 */
typedef struct UnreadableObject
{
	char     key[LAYOUT_KEY_LEN]; /* hash key: the object key */
	uint64_t size;
	int64_t  mtime;
} UnreadableObject;

static HTAB  *unreadable_objects = NULL;
static uint64 unreadable_generation = 0;

static UnreadableObject *
unreadable_find(const char *key, HASHACTION action)
{
	bool found;

	if (unreadable_objects != NULL && unreadable_generation != pgbk_context_generation)
	{
		hash_destroy(unreadable_objects);
		unreadable_objects = NULL;
	}
	if (unreadable_objects == NULL)
	{
		HASHCTL ctl;

		if (action != HASH_ENTER)
			return NULL;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = LAYOUT_KEY_LEN;
		ctl.entrysize = sizeof(UnreadableObject);
		ctl.hcxt = TopMemoryContext;
		unreadable_objects = hash_create("pgbk unreadable objects", 16, &ctl,
		                                 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		unreadable_generation = pgbk_context_generation;
	}
	return hash_search(unreadable_objects, key, action, &found);
}

/*
 * Whether key was reported unreadable before with this size and mtime;
 * counts it for the summary if so.
 */
static bool
unreadable_known(SyncState *ss, const char *key, uint64_t size, int64_t mtime)
{
	UnreadableObject *u = unreadable_find(key, HASH_FIND);

	if (u == NULL || u->size != size || u->mtime != mtime)
		return false;
	if (ss->unreadable++ == 0)
		strlcpy(ss->first_unreadable, key, sizeof(ss->first_unreadable));
	if (ss->full)
		ss->unreadable_met = lappend(ss->unreadable_met, pstrdup(key));
	return true;
}

/* Record key in pgbk.unreadable (for bk_status), or refresh its row. */
static void
unreadable_record(SyncState *ss, const char *key, const PgbkError *err)
{
	Datum args[2];

	if (ss->full)
		ss->unreadable_met = lappend(ss->unreadable_met, pstrdup(key));
	args[0] = CStringGetTextDatum(key);
	args[1] = CStringGetTextDatum(err->msg);
	if (SPI_execute_with_args("INSERT INTO pgbk.unreadable AS u (key, reason) VALUES ($1, $2) "
	                          "ON CONFLICT (key) DO UPDATE SET reason = $2, last_seen = now()",
	                          2, (Oid[]){TEXTOID, TEXTOID}, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record an unreadable object");
}

/*
 * End of a sync: rows of pgbk.unreadable whose object now has its catalog
 * row (it reads again), and after a full sync those whose object was not
 * met (it is gone), are removed.  Costs one cheap query when the table is
 * empty, as it nearly always is.
 */
static void
unreadable_tidy(SyncState *ss)
{
	Datum args[1];

	if (SPI_execute("SELECT 1 FROM pgbk.unreadable LIMIT 1", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.unreadable");
	if (SPI_processed == 0)
		return;
	if (SPI_execute("DELETE FROM pgbk.unreadable u WHERE "
	                "EXISTS (SELECT 1 FROM pgbk.wal w "
	                "        WHERE w.name = regexp_replace(u.key, '^.*/', '') "
	                "          AND u.key LIKE '" LAYOUT_WAL_PREFIX "%') OR "
	                "EXISTS (SELECT 1 FROM pgbk.backup b "
	                "        WHERE u.key = '" LAYOUT_MANIFEST_PREFIX "' || b.id)",
	                false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not tidy pgbk.unreadable");
	if (!ss->full)
		return;
	args[0] = PointerGetDatum(strlist_to_textarray(ss->unreadable_met));
	if (SPI_execute_with_args("DELETE FROM pgbk.unreadable WHERE key <> ALL ($1)", 1,
	                          (Oid[]){TEXTARRAYOID}, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not tidy pgbk.unreadable");
}

/*
 * Remember key as unreadable (the caller reports it), when err says its
 * content is at fault.  A failure to fetch it (S3 down, a timeout) is not
 * remembered: the next sync tries again, or the catalog would keep a hole.
 */
static bool
unreadable_add(const char *key, uint64_t size, int64_t mtime, const PgbkError *err)
{
	UnreadableObject *u;

	if (err->code != PGBK_ERR_INTEGRITY && err->code != PGBK_ERR_KEY &&
	    err->code != PGBK_ERR_FORMAT)
		return false;
	if (strlen(key) >= LAYOUT_KEY_LEN)
		return false;
	u = unreadable_find(key, HASH_ENTER);
	u->size = size;
	u->mtime = mtime;
	return true;
}

static Datum
lsn_datum_text(WalLsn lsn)
{
	char buf[WALNAME_LSN_BUFLEN];

	return CStringGetTextDatum(walname_format_lsn(buf, lsn));
}

static TimestampTz
unix_us_to_timestamptz(int64_t us)
{
	return (TimestampTz) (us - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY));
}

/*
 * A timeline history file: record where its timeline branched off (the
 * history's last entry before the timeline itself).
 */
static void
catalog_add_timeline(SyncState *ss, const ListedObject *obj, uint32_t tli, Datum unused,
                     Datum created_at)
{
	PgbkBuf     stored, raw;
	WalHistory  hist;
	PgbkError   err;
	CodecHeader hdr;

	pgbk_buf_init(&stored);
	pgbk_buf_init(&raw);
	pgbk_error_clear(&err);
	if (repo_get(ss->ctx->repo, obj->key, &stored, &err) == PGBK_OK &&
	    codec_decode(ss->ctx->params.keyring, stored.data, stored.len, CODEC_LIMIT_SMALL, &raw,
	                 &hdr, &err) == PGBK_OK &&
	    codec_check_name(&hdr, layout_wal_name(obj->key), &err) == PGBK_OK &&
	    walname_parse_history((const char *) raw.data, raw.len, tli, &hist, &err) == PGBK_OK)
	{
		if (hist.n >= 2)
		{
			const WalHistoryEntry *parent = &hist.entries[hist.n - 2];
			Oid                    types[4] = {INT4OID, INT4OID, TEXTOID, TIMESTAMPTZOID};
			Datum                  values[4];

			values[0] = Int32GetDatum((int32) tli);
			values[1] = Int32GetDatum((int32) parent->tli);
			values[2] = lsn_datum_text(parent->end);
			values[3] = created_at;
			if (SPI_execute_with_args("INSERT INTO pgbk.timeline (tli, parent_tli, switch_lsn, "
			                          "created_at) VALUES ($1, $2, $3::pg_lsn, $4) "
			                          "ON CONFLICT (tli) DO NOTHING",
			                          4, types, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not record timeline %u", tli);
		}
		walname_history_free(&hist);
	}
	else
		ereport(WARNING, (errcode(pgbk_errcode(err.code)),
		                  errmsg("could not read timeline history \"%s\": %s", obj->key, err.msg)));
	pgbk_buf_free(&stored);
	pgbk_buf_free(&raw);
}

/* Read an object's header and insert its catalog rows. */
static PgbkStatus
catalog_add_object(SyncState *ss, const ListedObject *obj)
{
	PgbkBuf     head;
	CodecHeader hdr;
	size_t      needed = 0;
	PgbkStatus  st;
	const char *name = layout_wal_name(obj->key);
	WalFileName fn;
	WalFileKind kind;
	WalSummary  sum;
	bool        have_sum = false;
	char        mtime_buf[32];
	Datum       values[18];
	char        nulls[18];
	Oid         types[18] = {TEXTOID,        INT4OID,        TEXTOID,        INT8OID, TEXTOID,
	                         TEXTOID,        INT8OID,        INT8OID,        TEXTOID, TIMESTAMPTZOID,
	                         TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, TEXTOID,
	                         BOOLOID,        TEXTOID,        TEXTOID};
	char        hexhash[2 * CODEC_HASH_BYTES + 1];
	uint32_t    segsz;
	int         ret;
	uint32_t    i;

	if (name == NULL)
		return PGBK_OK; /* not ours: ignore */
	if (unreadable_known(ss, obj->key, obj->size, obj->mtime))
		return PGBK_OK;
	kind = walname_classify(name, &fn);

	pgbk_buf_init(&head);
	if (pgbk_header_cache_get(obj->key, &head))
		st = PGBK_OK; /* uploaded by this server a moment ago */
	else
		st = repo_get_range(ss->ctx->repo, obj->key, 0, CODEC_MAX_HEADER, &head, ss->err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_buf_free(&head);
		return PGBK_OK; /* deleted meanwhile */
	}
	if (st == PGBK_OK)
		st = codec_read_header(head.data, head.len, &hdr, &needed, ss->err);
	pgbk_buf_free(&head);
	if (st != PGBK_OK)
	{
		/* an unreadable object is reported (once), not fatal to the sync */
		ereport(WARNING, (errcode(pgbk_errcode(ss->err->code)),
		                  errmsg("skipping repository object \"%s\": %s", obj->key, ss->err->msg)));
		if (unreadable_add(obj->key, obj->size, obj->mtime, ss->err))
			unreadable_record(ss, obj->key, ss->err);
		pgbk_error_clear(ss->err);
		return PGBK_OK;
	}
	if (unreadable_objects != NULL)
		(void) unreadable_find(obj->key, HASH_REMOVE); /* readable again */
	if (walscan_summary_from_attrs(hdr.attrs, &sum, ss->err) == PGBK_OK)
		have_sum = true;
	pgbk_error_clear(ss->err);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum((int32) fn.tli);
	values[2] = CStringGetTextDatum(kind == WAL_FILE_SEGMENT   ? "segment"
	                                : kind == WAL_FILE_PARTIAL ? "partial"
	                                : kind == WAL_FILE_BACKUP  ? "backup"
	                                                           : "history");
	segsz = have_sum ? sum.seg_size : (uint32_t) (hdr.raw_size ? hdr.raw_size : WAL_SEGSZ_DEFAULT);
	if (kind == WAL_FILE_BACKUP || !walname_segsz_is_valid(segsz))
		segsz = WAL_SEGSZ_DEFAULT;
	if (kind != WAL_FILE_HISTORY)
	{
		WalSegNo  segno;
		PgbkError e2;

		if (walname_file_segno(&fn, segsz, &segno, &e2) == PGBK_OK)
		{
			values[3] = Int64GetDatum((int64) segno);
			values[4] = lsn_datum_text(walname_segno_to_lsn(segno, segsz));
			values[5] = lsn_datum_text(walname_segno_to_lsn(segno + 1, segsz));
		}
		else
			nulls[3] = nulls[4] = nulls[5] = 'n';
	}
	else
		nulls[3] = nulls[4] = nulls[5] = 'n';
	values[6] = Int64GetDatum((int64) obj->size);
	if (hdr.trailer_only)
		nulls[7] = nulls[8] = 'n';
	else
	{
		values[7] = Int64GetDatum((int64) hdr.raw_size);
		pgbk_hex_encode(hdr.content_hash, CODEC_HASH_BYTES, hexhash);
		values[8] = CStringGetTextDatum(hexhash);
	}
	values[9] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) obj->mtime));
	/*
	 * When the file was last written on the server: to the microsecond
	 * (source_mtime_us), as the quiet-database rule needs it (a moment 0.3 s
	 * before a WAL switch is covered by it); objects from before that
	 * attribute carry whole seconds, truncated: earlier, so stricter, never looser.
	 */
	if (codec_attr_get(hdr.attrs, "source_mtime_us", mtime_buf, sizeof(mtime_buf)))
		values[10] = TimestampTzGetDatum(unix_us_to_timestamptz(strtoll(mtime_buf, NULL, 10)));
	else if (codec_attr_get(hdr.attrs, "source_mtime", mtime_buf, sizeof(mtime_buf)))
		values[10] =
		    TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) strtoll(mtime_buf, NULL, 10)));
	else
		nulls[10] = 'n';
	if (have_sum && sum.ncommits + sum.naborts > 0)
	{
		values[11] = TimestampTzGetDatum(unix_us_to_timestamptz(sum.xact_min_time));
		values[12] = TimestampTzGetDatum(unix_us_to_timestamptz(sum.xact_max_time));
	}
	else
		nulls[11] = nulls[12] = 'n';
	if (have_sum)
	{
		char sysid[32];

		values[13] = Int32GetDatum((int32) (sum.ncommits + sum.naborts));
		if (sum.last_lsn != WAL_INVALID_LSN)
			values[14] = lsn_datum_text(sum.last_lsn);
		else
			nulls[14] = 'n';
		values[15] =
		    BoolGetDatum(sum.end_kind == WALSCAN_END_SEGMENT &&
		                 (sum.cont == WALSCAN_CONT_COMMIT || sum.cont == WALSCAN_CONT_ABORT ||
		                  sum.cont == WALSCAN_CONT_UNKNOWN));
		snprintf(sysid, sizeof(sysid), "%" PRIu64, sum.sysid);
		values[16] = CStringGetTextDatum(sysid);
	}
	else
		nulls[13] = nulls[14] = nulls[15] = nulls[16] = 'n';
	/* the whole summary, for the restore planner (plan_sql.c) */
	nulls[17] = 'n';
	if (have_sum)
	{
		PgbkBuf   text;
		PgbkError e3;

		pgbk_buf_init(&text);
		if (walscan_summary_to_attrs(&sum, 65536, &text, &e3) == PGBK_OK &&
		    pgbk_buf_append(&text, "", 1))
		{
			values[17] = CStringGetTextDatum((const char *) text.data);
			nulls[17] = ' ';
		}
		pgbk_buf_free(&text);
	}

	ret = SPI_execute_with_args(
	    "INSERT INTO pgbk.wal (name, timeline, kind, segno, start_lsn, end_lsn, stored_bytes, "
	    "raw_bytes, content_hash, archived_at, written_at, first_stop_at, last_stop_at, "
	    "stop_records, last_record_lsn, tail_may_stop, system_identifier, summary) "
	    "VALUES ($1, $2, $3, $4, $5::pg_lsn, $6::pg_lsn, $7, $8, $9, $10, $11, $12, $13, $14, "
	    "$15::pg_lsn, $16, $17, $18) ON CONFLICT (name) DO NOTHING",
	    18, types, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "catalog insert failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ss->added++;

	if (kind == WAL_FILE_HISTORY)
		catalog_add_timeline(ss, obj, fn.tli, values[10],
		                     nulls[10] == 'n' ? values[9] : values[10]);

	for (i = 0; have_sum && i < sum.nrestore_points; i++)
	{
		Oid   rtypes[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INT4OID, TEXTOID};
		Datum rvalues[5];

		rvalues[0] = CStringGetTextDatum(sum.restore_points[i].name);
		rvalues[1] = lsn_datum_text(sum.restore_points[i].lsn);
		rvalues[2] = TimestampTzGetDatum(unix_us_to_timestamptz(sum.restore_points[i].time_us));
		rvalues[3] = Int32GetDatum((int32) fn.tli);
		rvalues[4] = CStringGetTextDatum(name);
		ret = SPI_execute_with_args(
		    "INSERT INTO pgbk.restore_point (name, lsn, at, timeline, wal_name) "
		    "VALUES ($1, $2::pg_lsn, $3, $4, $5) ON CONFLICT DO NOTHING",
		    5, rtypes, rvalues, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "restore point insert failed: %s", SPI_result_code_string(ret));
	}
	return PGBK_OK;
}

void
pgbk_catalog_record_backup(const Manifest *m)
{
	Oid   types[13] = {TEXTOID,        TEXTOID,        INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	                   TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT4OID, TEXTOID};
	Datum values[13];
	char  buf[WALNAME_LSN_BUFLEN];
	char  sysid[32];
	int   ret;

	snprintf(sysid, sizeof(sysid), UINT64_FORMAT, m->system_identifier);
	values[0] = CStringGetTextDatum(m->id);
	values[1] = CStringGetTextDatum(m->label ? m->label : "");
	values[2] = Int32GetDatum((int32) m->timeline);
	values[3] = CStringGetTextDatum(walname_format_lsn(buf, m->start_lsn));
	values[4] = CStringGetTextDatum(walname_format_lsn(buf, m->stop_lsn));
	values[5] = CStringGetTextDatum(m->start_wal);
	values[6] = CStringGetTextDatum(m->stop_wal);
	values[7] = TimestampTzGetDatum(unix_us_to_timestamptz(m->start_time_us));
	values[8] = TimestampTzGetDatum(unix_us_to_timestamptz(m->stop_time_us));
	values[9] = Int64GetDatum((int64) m->bytes);
	values[10] = Int64GetDatum((int64) m->stored_bytes);
	values[11] = Int32GetDatum(m->nfiles);
	values[12] = CStringGetTextDatum(sysid);
	ret = SPI_execute_with_args(
	    "INSERT INTO pgbk.backup (id, label, timeline, start_lsn, stop_lsn, start_wal, stop_wal, "
	    "start_time, stop_time, bytes, stored_bytes, files, system_identifier) "
	    "VALUES ($1, $2, $3, $4::pg_lsn, $5::pg_lsn, $6, $7, $8, $9, $10, $11, $12, $13) "
	    "ON CONFLICT (id) DO NOTHING",
	    13, types, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record the backup: %s", SPI_result_code_string(ret));
}

/* Add the objects of the batch that the catalog does not have yet. */
static PgbkStatus
flush_batch(SyncState *ss)
{
	Datum     *elems;
	ArrayType *arr;
	Oid        argtypes[1] = {TEXTARRAYOID};
	Datum      args[1];
	int        ret;
	int        i;
	bool      *present;
	PgbkStatus st = PGBK_OK;

	if (ss->nbatch == 0)
		return PGBK_OK;
	elems = palloc(sizeof(Datum) * ss->nbatch);
	for (i = 0; i < ss->nbatch; i++)
	{
		const char *name = layout_wal_name(ss->batch[i].key);

		elems[i] = CStringGetTextDatum(name ? name : "");
	}
	arr = construct_array(elems, ss->nbatch, TEXTOID, -1, false, TYPALIGN_INT);
	args[0] = PointerGetDatum(arr);

	if (ss->full)
	{
		ret = SPI_execute_with_args("INSERT INTO pg_temp.pgbk_seen SELECT unnest($1) "
		                            "ON CONFLICT DO NOTHING",
		                            1, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "catalog sync failed: %s", SPI_result_code_string(ret));
	}

	ret = SPI_execute_with_args("SELECT n FROM unnest($1) AS n WHERE EXISTS "
	                            "(SELECT 1 FROM pgbk.wal w WHERE w.name = n)",
	                            1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "catalog lookup failed: %s", SPI_result_code_string(ret));
	present = palloc0(sizeof(bool) * ss->nbatch);
	{
		uint64 r;

		for (r = 0; r < SPI_processed; r++)
		{
			char *n = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

			for (i = 0; i < ss->nbatch; i++)
			{
				const char *name = layout_wal_name(ss->batch[i].key);

				if (name && strcmp(name, n) == 0)
					present[i] = true;
			}
		}
	}
	for (i = 0; i < ss->nbatch && st == PGBK_OK; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!present[i])
			st = catalog_add_object(ss, &ss->batch[i]);
	}
	for (i = 0; i < ss->nbatch; i++)
		pfree(ss->batch[i].key);
	ss->nbatch = 0;
	return st;
}

static PgbkStatus
sync_list_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	SyncState *ss = arg;

	if (layout_wal_name(info->key) == NULL)
		return PGBK_OK;
	ss->batch[ss->nbatch].key = pstrdup(info->key);
	ss->batch[ss->nbatch].size = info->size;
	ss->batch[ss->nbatch].mtime = info->mtime;
	ss->nbatch++;
	if (ss->nbatch == SYNC_BATCH)
		return flush_batch(ss);
	return PGBK_OK;
}

/*
 * An incremental sync lists, per timeline the catalog knows, a window
 * before its newest catalogued segment (parallel uploads finish out of
 * order, and `pgbk wal-push` may add stragglers); then everything past the
 * newest timeline (a promotion creates a new one) and the history files.
 * Each listing is a handful of keys, so this runs after every upload.
 */
typedef struct ListWindow
{
	char prefix[LAYOUT_KEY_LEN];
	char start_after[LAYOUT_KEY_LEN];
} ListWindow;

static List *
incremental_windows(void)
{
	int         ret;
	uint64      r;
	List       *windows = NIL;
	uint32_t    max_tli = 0;
	ListWindow *w;

	ret = SPI_execute("SELECT timeline, max(segno) FROM pgbk.wal WHERE kind = 'segment' "
	                  "GROUP BY timeline ORDER BY timeline",
	                  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "catalog lookup failed: %s", SPI_result_code_string(ret));
	for (r = 0; r < SPI_processed; r++)
	{
		bool  isnull;
		int32 tli =
		    DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		int64 segno =
		    DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		char name[WALNAME_BUFLEN];

		w = palloc0(sizeof(ListWindow));
		segno = segno > SYNC_WINDOW_SEGMENTS ? segno - SYNC_WINDOW_SEGMENTS : 0;
		walname_format_segment(name, (uint32_t) tli, (WalSegNo) segno, (uint32_t) wal_segment_size);
		snprintf(w->prefix, sizeof(w->prefix), LAYOUT_WAL_PREFIX "%08X", (uint32_t) tli);
		if (!layout_wal_key(name, w->start_after, sizeof(w->start_after)))
			w->start_after[0] = '\0';
		windows = lappend(windows, w);
		max_tli = Max(max_tli, (uint32_t) tli);
	}
	/* everything after the newest timeline's keys: new timelines, history */
	w = palloc0(sizeof(ListWindow));
	strlcpy(w->prefix, LAYOUT_WAL_PREFIX, sizeof(w->prefix));
	if (max_tli > 0)
		snprintf(w->start_after, sizeof(w->start_after), LAYOUT_WAL_PREFIX "%08XG", max_tli);
	windows = lappend(windows, w);
	return windows;
}

typedef struct BackupSyncState
{
	List *ids;
} BackupSyncState;

static PgbkStatus
backup_list_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	BackupSyncState *bs = arg;
	char             id[MANIFEST_ID_LEN];

	if (layout_backup_id_of_manifest(info->key, id, sizeof(id)))
		bs->ids = lappend(bs->ids, pstrdup(id));
	return PGBK_OK;
}

/*
 * Backups: every manifest/<id> the catalog lacks is loaded and recorded;
 * with full, rows whose manifest is gone are dropped.
 */
static int64
sync_backups(SyncState *ss, PgbkContext *ctx, bool full)
{
	BackupSyncState bs;
	PgbkError       err;
	ListCell       *lc;
	int64           added = 0;
	char            mkey[LAYOUT_KEY_LEN];

	bs.ids = NIL;
	pgbk_error_clear(&err);
	if (repo_list(ctx->repo, LAYOUT_MANIFEST_PREFIX, NULL, backup_list_cb, &bs, &err) != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not list backups in the repository");
	if (full)
	{
		Datum *elems = palloc(sizeof(Datum) * (list_length(bs.ids) + 1));
		int    n = 0;
		Oid    argtypes[1] = {TEXTARRAYOID};
		Datum  args[1];

		foreach (lc, bs.ids)
			elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
		args[0] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
		if (SPI_execute_with_args("DELETE FROM pgbk.backup WHERE id <> ALL ($1)", 1, argtypes, args,
		                          NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not remove stale backup rows");
	}
	foreach (lc, bs.ids)
	{
		const char *id = lfirst(lc);
		Oid         argtypes[1] = {TEXTOID};
		Datum       args[1];
		Manifest   *m;
		PgbkStatus  st;

		args[0] = CStringGetTextDatum(id);
		if (SPI_execute_with_args("SELECT 1 FROM pgbk.backup WHERE id = $1", 1, argtypes, args,
		                          NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "backup lookup failed");
		if (SPI_processed > 0)
			continue;
		snprintf(mkey, sizeof(mkey), LAYOUT_MANIFEST_PREFIX "%s", id);
		if (unreadable_known(ss, mkey, 0, 0))
			continue;
		pgbk_error_clear(&err);
		st = manifest_load(ctx->repo, ctx->params.keyring, id, &m, &err);
		if (st != PGBK_OK)
		{
			ereport(WARNING, (errcode(pgbk_errcode(err.code)),
			                  errmsg("skipping backup %s: %s", id, err.msg)));
			if (unreadable_add(mkey, 0, 0, &err))
				unreadable_record(ss, mkey, &err);
			continue;
		}
		pgbk_catalog_record_backup(m);
		manifest_free(m);
		added++;
	}
	return added;
}

/*
 * Sync the catalog from the repository.  Must run inside a transaction with
 * SPI connected.  Returns the number of rows added; errors are ereport'ed.
 * backups: also look for backups the catalog lacks (full implies it).
 */
int64
pgbk_catalog_sync(bool full, bool backups)
{
	PgbkError    err;
	PgbkContext *ctx;
	SyncState    ss;
	PgbkStatus   st;

	pgbk_install_hooks();
	pgbk_error_clear(&err);
	ctx = pgbk_context(&err);
	if (ctx == NULL)
		pgbk_report_error(ERROR, &err, "could not open the repository");

	memset(&ss, 0, sizeof(ss));
	ss.ctx = ctx;
	ss.full = full;
	ss.err = &err;
	ss.batch = palloc(sizeof(ListedObject) * SYNC_BATCH);

	if (full)
	{
		if (SPI_execute("CREATE TEMP TABLE IF NOT EXISTS pgbk_seen (name text PRIMARY KEY) "
		                "ON COMMIT DROP",
		                false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not create temporary table");
		SPI_execute("TRUNCATE pg_temp.pgbk_seen", false, 0);
	}
	if (full)
		st = repo_list(ctx->repo, LAYOUT_WAL_PREFIX, NULL, sync_list_cb, &ss, &err);
	else
	{
		ListCell *lc;

		st = PGBK_OK;
		foreach (lc, incremental_windows())
		{
			ListWindow *w = lfirst(lc);

			st = repo_list(ctx->repo, w->prefix, w->start_after[0] ? w->start_after : NULL,
			               sync_list_cb, &ss, &err);
			if (st != PGBK_OK)
				break;
		}
	}
	if (st == PGBK_OK)
		st = flush_batch(&ss);
	if (st != PGBK_OK)
		pgbk_report_error(ERROR, &err, "could not sync the catalog from the repository");

	if (full || backups)
		ss.added += sync_backups(&ss, ctx, full);

	if (full)
	{
		if (SPI_execute("DELETE FROM pgbk.restore_point r WHERE NOT EXISTS "
		                "(SELECT 1 FROM pg_temp.pgbk_seen s WHERE s.name = r.wal_name)",
		                false, 0) != SPI_OK_DELETE ||
		    SPI_execute("DELETE FROM pgbk.timeline t WHERE NOT EXISTS "
		                "(SELECT 1 FROM pg_temp.pgbk_seen s WHERE s.name = "
		                "lpad(upper(to_hex(t.tli)), 8, '0') || '.history')",
		                false, 0) != SPI_OK_DELETE ||
		    SPI_execute("DELETE FROM pgbk.wal w WHERE NOT EXISTS "
		                "(SELECT 1 FROM pg_temp.pgbk_seen s WHERE s.name = w.name)",
		                false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not remove stale catalog rows");
	}
	unreadable_tidy(&ss);
	if (ss.unreadable > 0 && !IsBackgroundWorker)
		ereport(WARNING,
		        (errmsg("%" PRId64 " repository objects could not be read and are not in the "
		                "catalog, first \"%s\"",
		                ss.unreadable, ss.first_unreadable),
		         errhint("Each was reported when first met; pgbk verify checks them all.")));
	return ss.added;
}

Datum
bk_catalog_sync(PG_FUNCTION_ARGS)
{
	bool  full = PG_ARGISNULL(0) ? true : PG_GETARG_BOOL(0);
	int64 added;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	added = pgbk_catalog_sync(full, true);
	SPI_finish();
	PG_RETURN_INT64(added);
}
