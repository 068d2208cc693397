/*
 * verify.c
 *	  Program pgbk.so; uses the backend (SPI, pg_prng) and common/ verify, repo and
 *	  format (layout, manifests).
 *	  bk_verify(sample): is what the catalog promises really in the
 *	  repository?  Every catalogued object (or a random sample of them) is
 *	  read and judged by the object verifier (common/verify, shared with
 *	  pgbk verify): streamed through the decoder, never more than a frame of
 *	  it in memory; WAL objects must carry the name they are catalogued
 *	  under; every backup's files must match the sizes and hashes of its
 *	  manifest; the repository descriptor (pgbk.repo) must be there and name
 *	  this database system.  What is the catalog's own is checked here:
 *	  every backup must have unbroken WAL on its timeline from its start to
 *	  the newest archived segment.  Problems come back as rows naming the
 *	  object.
 *
 *	  Memory: the manifest being verified is malloc'd by common code; it is
 *	  owned by a reset callback of this call's memory context, so an ERROR
 *	  midway (a repository failure, a cancel) frees it with the context.
 */
#include "pgbk.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "format/layout.h"
#include "format/manifest.h"
#include "verify/verify.h"

PG_FUNCTION_INFO_V1(bk_verify);

typedef struct VerifyState
{
	ReturnSetInfo *rsinfo;
	PgbkContext   *ctx;
	VerifyParams   params;
	int64          checked;
	int64          problems;
	List          *missing_wal; /* catalogued segments absent from the repository */

	/*
	 * The manifest being verified (malloc'd by verify/): freed when done, or
	 * by the reset callback of the memory context this state lives in when an
	 * ERROR (a repository failure, a cancel) leaves bk_verify midway.
	 */
	Manifest             *manifest;
	MemoryContextCallback free_manifest;
} VerifyState;

static void
free_manifest_cb(void *arg)
{
	VerifyState *vs = arg;

	if (vs->manifest != NULL)
	{
		/* only an ERROR leaves one behind (t/053 looks for this line) */
		ereport(DEBUG1, (errmsg_internal("bk_verify stopped in backup %s: its manifest is freed "
		                                 "with the call's memory",
		                                 vs->manifest->id)));
		manifest_free(vs->manifest);
		vs->manifest = NULL;
	}
}

/* verify/'s report callback: one row (kind, object, problem). */
static void
problem(void *arg, const char *kind, const char *object, const char *what)
{
	VerifyState *vs = arg;
	Datum        values[3];
	bool         nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(kind);
	if (object != NULL)
		values[1] = CStringGetTextDatum(object);
	else
		nulls[1] = true;
	values[2] = CStringGetTextDatum(what);
	tuplestore_putvalues(vs->rsinfo->setResult, vs->rsinfo->setDesc, values, nulls);
	vs->problems++;
}

static double
random_fraction(void)
{
	return pg_prng_double(&pg_global_prng_state);
}

/* A failure that is no object's problem: a cancel as a cancel, the rest as an ERROR. */
static void
raise_unreadable(const PgbkError *err, const char *what)
{
	CHECK_FOR_INTERRUPTS();
	pgbk_report_error(ERROR, err, psprintf("could not read %s", what));
}

/* Read one object (streamed by verify/; never more than a frame of it in memory). */
static VerifyOutcome
check_object(VerifyState *vs, const VerifyObject *o)
{
	VerifyOutcome outcome;
	PgbkError     err;

	CHECK_FOR_INTERRUPTS();
	vs->checked++;
	pgbk_error_clear(&err);
	if (verify_object(&vs->params, vs->ctx->repo, o, &outcome, &err) != PGBK_OK)
		raise_unreadable(&err, psprintf("\"%s\"", o->key));
	return outcome;
}

/* verify_backup_files' callback: each file of a backup, read at once. */
static PgbkStatus
check_backup_file(void *arg, const VerifyObject *o, PgbkError *err)
{
	(void) err;
	(void) check_object(arg, o);
	return PGBK_OK;
}

/*
 * The repository descriptor: there (once anything is archived), readable
 * with the key, a descriptor, and naming this database system.
 */
static void
verify_repository(VerifyState *vs, VerifyDescriptor *d)
{
	PgbkError err;

	memset(d, 0, sizeof(*d));
	/* nothing archived yet: the first archived file writes it */
	if (SPI_execute("SELECT 1 FROM pgbk.wal UNION ALL SELECT 1 FROM pgbk.backup LIMIT 1", true,
	                1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.wal");
	if (SPI_processed == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	vs->checked++;
	pgbk_error_clear(&err);
	if (verify_descriptor(&vs->params, vs->ctx->repo, GetSystemIdentifier(), d, &err) != PGBK_OK)
		raise_unreadable(&err, "\"" LAYOUT_DESCRIPTOR "\"");
	if (!d->present)
		verify_descriptor_missing(&vs->params);
}

static void
verify_wal(VerifyState *vs)
{
	int    ret;
	uint64 i, n;
	char **names;

	ret = SPI_execute("SELECT name FROM pgbk.wal ORDER BY name", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.wal");
	n = SPI_processed;
	names = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		names[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	for (i = 0; i < n; i++)
	{
		char         key[LAYOUT_KEY_LEN];
		VerifyObject o;

		if (!verify_sampled(&vs->params))
			continue;
		layout_wal_key(names[i], key, sizeof(key));
		verify_wal_object(&o, names[i], key, (uint32_t) wal_segment_size);
		if (check_object(vs, &o) == VERIFY_MISSING)
			vs->missing_wal = lappend(vs->missing_wal, names[i]);
	}
}

static void
verify_backups(VerifyState *vs, const VerifyDescriptor *d)
{
	int    ret;
	uint64 i, n;
	char **ids;

	ret = SPI_execute("SELECT id FROM pgbk.backup ORDER BY id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.backup");
	n = SPI_processed;
	ids = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		ids[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	for (i = 0; i < n; i++)
	{
		PgbkError err;

		CHECK_FOR_INTERRUPTS();
		pgbk_error_clear(&err);
		vs->checked++;
		/* vs->manifest is set before any report: the reset callback owns it from there */
		if (verify_manifest(&vs->params, vs->ctx->repo, ids[i], d, &vs->manifest, &err) != PGBK_OK)
			raise_unreadable(&err, psprintf("the manifest of backup %s", ids[i]));
		if (vs->manifest == NULL)
			continue;
		(void) verify_backup_files(&vs->params, vs->manifest, check_backup_file, vs, &err);
		manifest_free(vs->manifest);
		vs->manifest = NULL;
	}
}

/* Every backup needs unbroken WAL from its start to the newest segment. */
static void
verify_continuity(VerifyState *vs)
{
	int       ret;
	uint64    i;
	ListCell *lc;

	ret = SPI_execute(
	    "SELECT b.id, pgbk.segment_name(c.tli, pgbk.first_missing(c.tli, "
	    "  greatest(c.first_segno, pgbk.lsn_segno(b.start_lsn)), "
	    "  least(c.last_segno, (SELECT max(w.segno) FROM pgbk.wal w "
	    "                       WHERE w.timeline = c.tli AND w.kind = 'segment')))) "
	    "FROM pgbk.backup b "
	    "CROSS JOIN LATERAL pgbk.timeline_chain(coalesce((SELECT max(timeline) FROM pgbk.wal "
	    "                                                 WHERE kind = 'segment'), "
	    "                                        b.timeline)) c "
	    "WHERE pgbk.first_missing(c.tli, greatest(c.first_segno, pgbk.lsn_segno(b.start_lsn)), "
	    "  least(c.last_segno, (SELECT max(w.segno) FROM pgbk.wal w "
	    "                       WHERE w.timeline = c.tli AND w.kind = 'segment'))) IS NOT NULL "
	    "ORDER BY b.id",
	    true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not check WAL continuity");
	for (i = 0; i < SPI_processed; i++)
	{
		char *id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char *seg = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		verify_report_wal_gap(&vs->params, seg, NULL, id);
	}

	/* segments the catalog has but the repository lost are gaps too */
	foreach (lc, vs->missing_wal)
	{
		const char *name = lfirst(lc);
		Datum       args[1];

		args[0] = CStringGetTextDatum(name);
		ret = SPI_execute_with_args(
		    "SELECT string_agg(b.id, ', ' ORDER BY b.id) FROM pgbk.wal w JOIN pgbk.backup b "
		    "ON b.timeline <= w.timeline AND b.start_lsn < w.end_lsn "
		    "WHERE w.name = $1 AND w.kind = 'segment'",
		    1, (Oid[]){TEXTOID}, args, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
		{
			char *ids = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			if (ids != NULL)
				verify_report_wal_gap(&vs->params, name, NULL, ids);
		}
	}
}

Datum
bk_verify(PG_FUNCTION_ARGS)
{
	double           sample = PG_ARGISNULL(0) ? 1.0 : PG_GETARG_FLOAT4(0);
	VerifyState     *vs;
	VerifyDescriptor d;
	PgbkError        err;

	if (sample <= 0 || sample > 1 || isnan(sample))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("sample must be in (0, 1], not %g", sample)));
	InitMaterializedSRF(fcinfo, 0);
	/* in the call's memory context: its reset frees a manifest an ERROR left behind */
	vs = palloc0(sizeof(VerifyState));
	vs->free_manifest.func = free_manifest_cb;
	vs->free_manifest.arg = vs;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &vs->free_manifest);
	vs->rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pgbk_install_hooks();
	pgbk_error_clear(&err);
	vs->ctx = pgbk_context(&err);
	if (vs->ctx == NULL)
		pgbk_report_error(ERROR, &err, "could not open the repository");
	vs->params.ring = vs->ctx->ring;
	vs->params.sample = sample;
	vs->params.random = random_fraction;
	vs->params.report = problem;
	vs->params.report_arg = vs;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the catalog first catches up, so WAL archived a moment ago is no gap */
	(void) pgbk_catalog_sync(false, true);
	verify_repository(vs, &d);
	verify_wal(vs);
	verify_backups(vs, &d);
	verify_continuity(vs);
	SPI_finish();
	ereport(NOTICE, (errmsg("verified %lld objects, %lld problems", (long long) vs->checked,
	                        (long long) vs->problems)));
	PG_RETURN_VOID();
}
