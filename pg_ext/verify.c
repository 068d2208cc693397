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
 *	  this database system; every catalogued segment's change summary must
 *	  decode (a missing one is a WARNING, not a row: backups rebuild it from
 *	  the segment, see common/verify/verify.h).  Every backup must have
 *	  unbroken WAL on its timeline chain from its start to the newest
 *	  archived segment: the rule pgbk verify applies
 *	  (verify_wal_continuity), here over the planner's view of the catalog,
 *	  less the segments found missing.
 *	  Problems come back as rows naming the object.
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
#include "plan/plan.h"
#include "plan_sql.h"
#include "verify/verify.h"

PG_FUNCTION_INFO_V1(bk_verify);

typedef struct VerifyState
{
	ReturnSetInfo *rsinfo;
	PgbkContext   *ctx;
	VerifyParams   params;
	int64          checked;
	int64          problems;
	int64          warnings;
	List          *missing_wal; /* catalogued segments absent from the repository */
	char         **gone;        /* missing_wal sorted, for the continuity check */
	int            ngone;

	/*
	 * The manifest being verified (malloc'd by verify/): freed when done, or
	 * by the reset callback of the memory context this state lives in when an
	 * ERROR (a repository failure, a cancel) leaves bk_verify midway.
	 */
	Manifest             *manifest;
	MemoryContextCallback free_manifest;

	/* the continuity check's view and gaps (malloc'd), freed the same way */
	PlanView     *view;
	VerifyWalGaps gaps;
} VerifyState;

static void
free_manifest_cb(void *arg)
{
	VerifyState *vs = arg;

	plan_view_free(vs->view);
	vs->view = NULL;
	verify_wal_gaps_free(&vs->gaps);

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

/* Warnings raised one by one; past this many only counted (an old repository has many). */
#define VERIFY_WARNINGS_SHOWN 20

/* verify/'s warn callback: a WARNING, no row. */
static void
warning(void *arg, const char *kind, const char *object, const char *what)
{
	VerifyState *vs = arg;

	if (++vs->warnings <= VERIFY_WARNINGS_SHOWN)
		ereport(WARNING, (errmsg("%s %s: %s", kind, object, what)));
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
		WalFileKind  kind;

		if (!verify_sampled(&vs->params))
			continue;
		layout_wal_key(names[i], key, sizeof(key));
		verify_wal_object(&o, names[i], key, (uint32_t) wal_segment_size);
		if (check_object(vs, &o) == VERIFY_MISSING)
		{
			/* its summary does not matter then: the gap is the problem */
			vs->missing_wal = lappend(vs->missing_wal, names[i]);
			continue;
		}
		kind = walname_classify(names[i], NULL);
		if ((kind == WAL_FILE_SEGMENT || kind == WAL_FILE_PARTIAL) &&
		    layout_changes_key(names[i], key, sizeof(key)))
		{
			verify_changes_object(&o, names[i], key);
			(void) check_object(vs, &o);
		}
	}
}

static void
verify_backups(VerifyState *vs, const VerifyDescriptor *d)
{
	int               ret;
	uint64            i, n;
	char            **ids;
	VerifyChainEntry *chains;

	ret = SPI_execute("SELECT id FROM pgbk.backup ORDER BY id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pgbk.backup");
	n = SPI_processed;
	ids = palloc(sizeof(char *) * (n + 1));
	chains = palloc0(sizeof(VerifyChainEntry) * (n + 1));
	for (i = 0; i < n; i++)
	{
		ids[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		chains[i].id = ids[i];
	}
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
		chains[i].sound = true;
		if (vs->manifest->incremental)
			chains[i].parent = pstrdup(vs->manifest->parent);
		(void) verify_backup_files(&vs->params, vs->manifest, check_backup_file, vs, &err);
		manifest_free(vs->manifest);
		vs->manifest = NULL;
	}
	/* every incremental's chain: its parents there and readable (ORDER BY id) */
	verify_chains(&vs->params, chains, (int) n);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* pgbk_plan_catalog_view's filter: a segment verify_wal found missing. */
static bool
segment_gone(const char *name, void *arg)
{
	VerifyState *vs = arg;

	return vs->ngone > 0 && bsearch(&name, vs->gone, vs->ngone, sizeof(char *), name_cmp) != NULL;
}

/*
 * Every backup needs unbroken WAL from its start to the newest segment of
 * its timeline chain: the rule of `pgbk verify` (verify_wal_continuity),
 * over the planner's view of the catalog (pg_ext/plan_sql.c) without the
 * segments the repository turned out to have lost.
 */
static void
verify_continuity(VerifyState *vs)
{
	PgbkError  err;
	PgbkStatus st = PGBK_OK;
	ListCell  *lc;
	int        i;

	vs->gone = palloc(sizeof(char *) * (list_length(vs->missing_wal) + 1));
	foreach (lc, vs->missing_wal)
		vs->gone[vs->ngone++] = lfirst(lc);
	qsort(vs->gone, vs->ngone, sizeof(char *), name_cmp);

	/* both malloc'd: freed by the reset callback if an ERROR leaves them */
	vs->view = pgbk_plan_catalog_view(segment_gone, vs);
	pgbk_error_clear(&err);
	st = verify_wal_continuity(vs->view, &vs->gaps, &err);
	if (st != PGBK_OK)
	{
		CHECK_FOR_INTERRUPTS();
		pgbk_report_error(ERROR, &err, "could not check WAL continuity");
	}
	for (i = 0; i < vs->gaps.n; i++)
		verify_report_wal_gap(&vs->params, vs->gaps.gaps[i].first, vs->gaps.gaps[i].last,
		                      vs->gaps.gaps[i].backup);
	verify_wal_gaps_free(&vs->gaps);
	plan_view_free(vs->view);
	vs->view = NULL;
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
	vs->params.warn = warning;
	vs->params.warn_arg = vs;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the catalog first catches up, so WAL archived a moment ago is no gap */
	(void) pgbk_catalog_sync(false, true);
	verify_repository(vs, &d);
	verify_wal(vs);
	verify_backups(vs, &d);
	verify_continuity(vs);
	SPI_finish();
	if (vs->warnings > VERIFY_WARNINGS_SHOWN)
		ereport(WARNING, (errmsg("%lld more warnings like the ones above",
		                         (long long) (vs->warnings - VERIFY_WARNINGS_SHOWN))));
	if (vs->warnings > 0)
		ereport(NOTICE, (errmsg("verified %lld objects, %lld problems, %lld warnings",
		                        (long long) vs->checked, (long long) vs->problems,
		                        (long long) vs->warnings)));
	else
		ereport(NOTICE, (errmsg("verified %lld objects, %lld problems", (long long) vs->checked,
		                        (long long) vs->problems)));
	PG_RETURN_VOID();
}
