/*
 * verify.c
 *	  bk_verify(sample): is what the catalog promises really in the
 *	  repository?  Every catalogued object (or a random sample of them) is
 *	  read whole, decrypted and checked against its checksums; WAL objects
 *	  must carry the name they are catalogued under; every backup's files
 *	  must match the sizes and hashes of its manifest; and every backup must
 *	  have unbroken WAL on its timeline from its start to the newest
 *	  archived segment; the repository descriptor (pgbk.repo) must be there
 *	  and name this database system.  Problems come back as rows naming the
 *	  object.
 */
#include "pgbk.h"

#include <math.h>

#include <cjson/cJSON.h>

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

PG_FUNCTION_INFO_V1(bk_verify);

typedef struct VerifyState
{
	ReturnSetInfo *rsinfo;
	PgbkContext   *ctx;
	double         sample;
	int64          checked;
	int64          problems;
	List          *missing_wal; /* catalogued segments absent from the repository */
} VerifyState;

static void
problem(VerifyState *vs, const char *kind, const char *object, const char *what)
{
	Datum values[3];
	bool  nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(kind);
	if (object != NULL)
		values[1] = CStringGetTextDatum(object);
	else
		nulls[1] = true;
	values[2] = CStringGetTextDatum(what);
	tuplestore_putvalues(vs->rsinfo->setResult, vs->rsinfo->setDesc, values, nulls);
	vs->problems++;
}

static bool
sampled(VerifyState *vs)
{
	return vs->sample >= 1.0 || pg_prng_double(&pg_global_prng_state) < vs->sample;
}

/* Streams an object through the decoder, keeping its content only when asked (the descriptor). */
typedef struct DiscardSink
{
	CodecDecoder *dec;
	PgbkBuf       out;
	PgbkBuf      *keep; /* NULL: discard the content */
} DiscardSink;

static PgbkStatus
discard_output(void *arg, const void *data, size_t len, PgbkError *err)
{
	(void) arg;
	(void) data;
	(void) len;
	(void) err;
	return PGBK_OK;
}

static PgbkStatus
discard_sink(void *arg, const void *data, size_t len, PgbkError *err)
{
	DiscardSink *ds = arg;

	PgbkStatus st;

	pgbk_buf_reset(&ds->out);
	st = codec_decoder_update(ds->dec, data, len, &ds->out, err);
	if (st == PGBK_OK && ds->keep != NULL && ds->out.len > 0)
		pgbk_buf_append(ds->keep, ds->out.data, ds->out.len);
	return st;
}

/*
 * Read and decode one object, in bounded memory (the content is checked,
 * not kept; at most max_raw bytes of it are decoded).  Returns true when it
 * decoded; otherwise reports the problem.  hdr receives the header with the
 * verified size and content hash.
 */
static bool
read_object(VerifyState *vs, const char *kind, const char *object, const char *key,
            uint64_t max_raw, CodecHeader *hdr, PgbkBuf *keep)
{
	DiscardSink ds;
	PgbkError   err;
	PgbkStatus  st;

	CHECK_FOR_INTERRUPTS();
	vs->checked++;
	pgbk_buf_init(&ds.out);
	ds.keep = keep;
	pgbk_error_clear(&err);
	st = codec_decoder_begin(vs->ctx->params.keyring, max_raw, &ds.dec, &err);
	if (st == PGBK_OK)
	{
		if (keep == NULL)
			codec_decoder_set_sink(ds.dec, discard_output, NULL);
		st = repo_get_stream(vs->ctx->repo, key, discard_sink, &ds, &err);
		if (st == PGBK_OK)
			st = codec_decoder_finish(ds.dec, hdr, NULL, &err);
		else
			codec_decoder_free(ds.dec);
	}
	pgbk_buf_free(&ds.out);
	if (st == PGBK_NOT_FOUND)
	{
		problem(vs, kind, object, psprintf("missing: \"%s\" is not in the repository", key));
		if (strcmp(kind, "wal") == 0)
			vs->missing_wal = lappend(vs->missing_wal, pstrdup(object));
		return false;
	}
	if (st != PGBK_OK)
	{
		if (st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY)
			problem(vs, kind, object, psprintf("unreadable: %s", err.msg));
		else
			pgbk_report_error(ERROR, &err, psprintf("could not read \"%s\"", key));
		return false;
	}
	return true;
}

/*
 * The repository descriptor: there (once anything is archived), readable
 * with the key, a descriptor, and naming this database system.
 */
static void
verify_descriptor(VerifyState *vs)
{
	PgbkBuf     raw;
	CodecHeader hdr;
	char        kind[64];
	cJSON      *doc;
	const char *sysid;
	char        want[32];

	/* nothing archived yet: the first archived file writes it */
	if (SPI_execute("SELECT 1 FROM pgbk.wal UNION ALL SELECT 1 FROM pgbk.backup LIMIT 1", true,
	                1) != SPI_OK_SELECT)
		elog(ERROR, "pgbk: could not read pgbk.wal");
	if (SPI_processed == 0)
		return;
	pgbk_buf_init(&raw);
	if (!read_object(vs, "repository", LAYOUT_DESCRIPTOR, LAYOUT_DESCRIPTOR, CODEC_LIMIT_SMALL,
	                 &hdr, &raw))
		return;
	if (!codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) || strcmp(kind, "descriptor") != 0)
	{
		problem(vs, "repository", LAYOUT_DESCRIPTOR,
		        psprintf("the object is not a repository descriptor (it says kind=%s)",
		                 codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) ? kind : "?"));
		pgbk_buf_free(&raw);
		return;
	}
	snprintf(want, sizeof(want), UINT64_FORMAT, GetSystemIdentifier());
	doc = cJSON_ParseWithLength((const char *) raw.data, raw.len);
	sysid = doc ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "system_identifier"))
	            : NULL;
	if (sysid == NULL)
		problem(vs, "repository", LAYOUT_DESCRIPTOR,
		        "malformed: it must hold a format and a database system identifier");
	else if (strcmp(sysid, want) != 0)
		problem(vs, "repository", LAYOUT_DESCRIPTOR,
		        psprintf("it names database system %s, but this server is database system %s",
		                 sysid, want));
	cJSON_Delete(doc);
	pgbk_buf_free(&raw);
}

static void
verify_wal(VerifyState *vs)
{
	int    ret;
	uint64 i, n;
	char **names;

	ret = SPI_execute("SELECT name FROM pgbk.wal ORDER BY name", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "pgbk: could not read pgbk.wal");
	n = SPI_processed;
	names = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		names[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	for (i = 0; i < n; i++)
	{
		char        key[LAYOUT_KEY_LEN];
		CodecHeader hdr;
		PgbkError   err;

		if (!sampled(vs))
			continue;
		layout_wal_key(names[i], key, sizeof(key));
		pgbk_error_clear(&err);
		if (read_object(vs, "wal", names[i], key,
		                codec_wal_limit(names[i], (uint32_t) wal_segment_size), &hdr, NULL) &&
		    codec_check_name(&hdr, names[i], &err) != PGBK_OK)
			problem(vs, "wal", names[i], pstrdup(err.msg));
	}
}

static void
verify_backups(VerifyState *vs)
{
	int    ret;
	uint64 i, n;
	char **ids;

	ret = SPI_execute("SELECT id FROM pgbk.backup ORDER BY id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "pgbk: could not read pgbk.backup");
	n = SPI_processed;
	ids = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		ids[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	for (i = 0; i < n; i++)
	{
		Manifest  *m;
		PgbkError  err;
		PgbkStatus st;
		int        f;

		pgbk_error_clear(&err);
		vs->checked++;
		st = manifest_load(vs->ctx->repo, vs->ctx->params.keyring, ids[i], &m, &err);
		if (st == PGBK_NOT_FOUND)
		{
			problem(vs, "backup", ids[i], "missing: its manifest is not in the repository");
			continue;
		}
		if (st != PGBK_OK)
		{
			problem(vs, "backup", ids[i], psprintf("unreadable manifest: %s", err.msg));
			continue;
		}
		for (f = 0; f < m->nfiles; f++)
		{
			ManifestFile *mf = &m->files[f];
			char          key[LAYOUT_KEY_LEN];
			char          object[LAYOUT_KEY_LEN];
			CodecHeader   hdr;

			if (!sampled(vs))
				continue;
			snprintf(object, sizeof(object), "%s:%s", ids[i], mf->path);
			layout_backup_file_key(ids[i], mf->path, key, sizeof(key));
			/* the manifest is authenticated: no more content than it records */
			if (read_object(vs, "backup file", object, key, mf->size, &hdr, NULL) &&
			    (hdr.raw_size != mf->size ||
			     memcmp(hdr.content_hash, mf->hash, CODEC_HASH_BYTES) != 0))
				problem(vs, "backup file", object,
				        "content does not match the manifest (size or checksum)");
		}
		manifest_free(m);
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
		elog(ERROR, "pgbk: could not check WAL continuity");
	for (i = 0; i < SPI_processed; i++)
	{
		char *id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char *seg = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		problem(
		    vs, "wal gap", seg,
		    psprintf("WAL segment %s is missing: backup %s cannot be restored past it", seg, id));
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
				problem(vs, "wal gap", name,
				        psprintf("WAL segment %s is missing: backup %s cannot be restored past it",
				                 name, ids));
		}
	}
}

Datum
bk_verify(PG_FUNCTION_ARGS)
{
	double      sample = PG_ARGISNULL(0) ? 1.0 : PG_GETARG_FLOAT4(0);
	VerifyState vs;
	PgbkError   err;

	if (sample <= 0 || sample > 1 || isnan(sample))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("sample must be in (0, 1], not %g", sample)));
	InitMaterializedSRF(fcinfo, 0);
	memset(&vs, 0, sizeof(vs));
	vs.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	vs.sample = sample;
	pgbk_install_hooks();
	pgbk_error_clear(&err);
	vs.ctx = pgbk_context(&err);
	if (vs.ctx == NULL)
		pgbk_report_error(ERROR, &err, "could not open the repository");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the catalog first catches up, so WAL archived a moment ago is no gap */
	(void) pgbk_catalog_sync(false, true);
	verify_descriptor(&vs);
	verify_wal(&vs);
	verify_backups(&vs);
	verify_continuity(&vs);
	SPI_finish();
	ereport(NOTICE, (errmsg("pgbk: verified %lld objects, %lld problems", (long long) vs.checked,
	                        (long long) vs.problems)));
	PG_RETURN_VOID();
}
