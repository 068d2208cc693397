/*
 * status.c
 *	  Program pgbk.so; uses the backend (set-returning functions, fd.c) and slots.h.
 *	  pgbk.archive_state(): the archiving state kept in shared memory plus
 *	  the pending .ready files, the raw material of the bk_status view.
 *
 * Counting .ready files here (instead of pg_ls_archive_statusdir() in SQL)
 * keeps bk_status readable by pgbk_reader without granting pg_monitor.
 */
#include "pgbk.h"
#include "slots.h"

#include <dirent.h>
#include <sys/stat.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pgbk_archive_state);

#define NCOLS 19

Datum
pgbk_archive_state(PG_FUNCTION_ARGS)
{
	TupleDesc         tupdesc;
	Datum             values[NCOLS];
	bool              nulls[NCOLS];
	PgbkArchiveStatus snap;
	bool              preloaded;
	int64             pending = 0;
	char              oldest[MAXFNAMELEN] = "";
	TimestampTz       oldest_mtime = 0;
	DIR              *dir;
	struct dirent    *de;
	const char       *statusdir = XLOGDIR "/archive_status";
	int               i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	preloaded = pgbk_status_get(&snap);

	dir = AllocateDir(statusdir);
	while ((de = ReadDir(dir, statusdir)) != NULL)
	{
		size_t len = strlen(de->d_name);

		if (len > 6 && len - 6 < MAXFNAMELEN && strcmp(de->d_name + len - 6, ".ready") == 0)
		{
			char name[MAXFNAMELEN];

			memcpy(name, de->d_name, len - 6);
			name[len - 6] = '\0';
			pending++;
			if (oldest[0] == '\0' || strcmp(name, oldest) < 0)
				strlcpy(oldest, name, sizeof(oldest));
		}
	}
	FreeDir(dir);
	if (oldest[0] != '\0')
	{
		char        path[MAXPGPATH];
		struct stat st;

		snprintf(path, sizeof(path), XLOGDIR "/%s", oldest);
		/* to the microsecond: bk_status compares it with the last failure */
		if (stat(path, &st) == 0)
			oldest_mtime = time_t_to_timestamptz(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1000;
	}

	memset(nulls, 0, sizeof(nulls));
	values[i++] = BoolGetDatum(preloaded);
	values[i++] = BoolGetDatum(pgbk_archiving_active());
#define TS_OR_NULL(ts)                                                                             \
	do                                                                                             \
	{                                                                                              \
		if ((ts) == 0)                                                                             \
			nulls[i++] = true;                                                                     \
		else                                                                                       \
			values[i++] = TimestampTzGetDatum(ts);                                                 \
	} while (0)
#define TEXT_OR_NULL(s)                                                                            \
	do                                                                                             \
	{                                                                                              \
		if ((s)[0] == '\0')                                                                        \
			nulls[i++] = true;                                                                     \
		else                                                                                       \
			values[i++] = CStringGetTextDatum(s);                                                  \
	} while (0)
	TS_OR_NULL(snap.last_success_at);
	TEXT_OR_NULL(snap.last_success_file);
	TS_OR_NULL(snap.failing_since);
	TS_OR_NULL(snap.last_failure_at);
	TEXT_OR_NULL(snap.last_failure_file);
	if (snap.failing_since == 0)
		nulls[i++] = true;
	else
		values[i++] = CStringGetTextDatum(snap.last_error);
	values[i++] = Int64GetDatum(pending);
	TEXT_OR_NULL(oldest);
	if (oldest_mtime == 0)
		nulls[i++] = true;
	else
		values[i++] = TimestampTzGetDatum(oldest_mtime);
	values[i++] = Int64GetDatum((int64) snap.files_uploaded);
	values[i++] = Int64GetDatum((int64) snap.files_already_present);
	values[i++] = Int64GetDatum((int64) snap.duplicates_refused);
	values[i++] = Int64GetDatum((int64) snap.raw_bytes_uploaded);
	values[i++] = Int64GetDatum((int64) snap.stored_bytes_uploaded);
	values[i++] = Int64GetDatum((int64) snap.callback_fast);
	values[i++] = Int64GetDatum((int64) snap.callback_waited);
	values[i++] = Int64GetDatum((int64) snap.callback_self);
	Assert(i == NCOLS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(pgbk_callback_times);

/*
 * The durations of the most recent archive callbacks (microseconds), newest
 * last: the raw data behind the callback latency figures of the benchmark.
 */
Datum
pgbk_callback_times(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint32        *times;
	uint64         count;
	uint64         i, n;

	InitMaterializedSRF(fcinfo, 0);
	if (!pgbk_shmem_available())
		PG_RETURN_VOID();
	times = palloc(sizeof(uint32) * PGBK_CALLBACK_RING);
	count = pgbk_callback_times_get(times);
	n = Min(count, PGBK_CALLBACK_RING);
	for (i = count - n; i < count; i++)
	{
		Datum values[2];
		bool  nulls[2] = {false, false};

		values[0] = Int64GetDatum((int64) i);
		values[1] = Int64GetDatum((int64) times[i % PGBK_CALLBACK_RING]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
