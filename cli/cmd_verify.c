/*
 * cmd_verify.c
 *	  pgbk verify: is the repository whole, from the repository alone (the
 *	  twin of the extension's bk_verify(), which starts from the catalog)?
 *
 *	  - the repository descriptor pgbk.repo decodes, is one, and names the
 *	    database system every backup's manifest names (missing: a problem
 *	    once the repository holds anything);
 *	  - every object under wal/ (segments, .partial, .backup, .history) is
 *	    read whole, decrypted, and checked against its content hash; a WAL
 *	    object must carry the name it is stored under;
 *	  - every manifest decodes, and every file it lists exists, decodes and
 *	    matches the manifest's size and hash;
 *	  - every backup has unbroken WAL on its timeline chain from its start to
 *	    the newest archived segment of that chain.
 *
 *	  --sample F reads a random fraction F of the objects (manifests and the
 *	  continuity check are always done: they cost listings, not downloads).
 *	  Problems go to stdout, one line each, naming the object; the exit code
 *	  is 6 (integrity) when there is any.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "files/files.h"
#include "format/layout.h"
#include "format/manifest.h"
#include "plan/plan.h"
#include "wal/walname.h"

#define VERIFY_MAX_PARALLEL 32
#define VERIFY_PROGRESS_MS  250

typedef struct VerifyItem
{
	char         *kind;   /* "wal", "backup file" */
	char         *object; /* what the problem line names */
	char         *key;
	const char   *wal_name;   /* wal: the name the object must carry */
	bool          check_hash; /* backup file: size and hash from the manifest */
	uint64_t      size;
	unsigned char hash[CODEC_HASH_BYTES];
	uint64_t      stored;
} VerifyItem;

typedef struct Verify
{
	CliContext  ctx;
	const char *catalog; /* --catalog: libpq conninfo of the catalog's database */
	double      sample;
	int         parallel;
	bool        json;

	VerifyItem *items;
	int         nitems;
	int         cap;

	pthread_mutex_t lock;
	pthread_cond_t  cond;
	int             next;
	int             running;
	int             done;
	uint64_t        stored_done;
	uint64_t        stored_total;
	uint64_t        problems;
	bool            fatal; /* the repository could not be read at all */
	PgbkError       fatal_err;

	bool     any_object; /* the repository holds WAL or backups */
	bool     have_sysid; /* the descriptor was read: its system identifier */
	uint64_t sysid;
} Verify;

static void
verify_usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgbk verify [--config FILE] [--sample F] [--parallel N] [--catalog CONNINFO]\n"
	        "                   [--quiet]\n"
	        "\n"
	        "Read the repository and check that it is whole, without the database: the\n"
	        "repository descriptor (pgbk.repo) decrypts and names the database system of\n"
	        "every backup; every WAL, history, .partial and .backup object decrypts and\n"
	        "matches its checksum and its name; every base backup's manifest decodes and\n"
	        "each of its files exists and matches the manifest's size and checksum; and\n"
	        "every backup has unbroken WAL on its timeline from its start to the newest\n"
	        "archived segment.  Each problem is printed on stdout as one line naming the\n"
	        "object.\n"
	        "\n"
	        "  --sample F     read only a random fraction F (0 < F <= 1) of the objects\n"
	        "                 (default 1); manifests and WAL continuity are always checked\n"
	        "  --parallel N   objects read at once (default 4, at most %d)\n"
	        "  --catalog CONNINFO\n"
	        "                 also check the catalog's file snapshots (pgbk.file_snapshot,\n"
	        "                 readable by pgbk_reader) against the restic repository: each\n"
	        "                 one must be there, and none marked forgotten may be (libpq\n"
	        "                 conninfo, e.g. 'dbname=postgres', the database of\n"
	        "                 pgbk.database)\n"
	        "\n"
	        "Exit codes: 0 no problem, 6 problems found, 4 repository unreachable,\n"
	        "3 configuration error, 1 the catalog or the restic repository could not be\n"
	        "read.\n",
	        VERIFY_MAX_PARALLEL);
}

static void report(Verify *vr, const char *kind, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
report(Verify *vr, const char *kind, const char *object, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vr->lock);
	printf("%s %s: ", kind, object);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	vr->problems++;
	pthread_mutex_unlock(&vr->lock);
}

static VerifyItem *
add_item(Verify *vr, const char *kind, const char *object, const char *key)
{
	VerifyItem *it;

	if (vr->nitems == vr->cap)
	{
		int         cap = vr->cap ? vr->cap * 2 : 256;
		VerifyItem *n = realloc(vr->items, sizeof(VerifyItem) * (size_t) cap);

		if (n == NULL)
			return NULL;
		vr->items = n;
		vr->cap = cap;
	}
	it = &vr->items[vr->nitems];
	memset(it, 0, sizeof(*it));
	it->kind = strdup(kind);
	it->object = strdup(object);
	it->key = strdup(key);
	if (it->kind == NULL || it->object == NULL || it->key == NULL)
		return NULL;
	vr->nitems++;
	return it;
}

static bool
sampled(const Verify *vr)
{
	return vr->sample >= 1.0 || drand48() < vr->sample;
}

/* Listing wal/: every object is a candidate. */
static PgbkStatus
list_wal_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	Verify     *vr = arg;
	const char *name = layout_wal_name(info->key);
	VerifyItem *it;

	if (name == NULL)
		return PGBK_OK; /* not ours (a temporary file of a local upload) */
	vr->any_object = true;
	vr->stored_total += info->size;
	if (!sampled(vr))
		return PGBK_OK;
	if ((it = add_item(vr, "wal", name, info->key)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	it->wal_name = it->object;
	it->stored = info->size;
	return PGBK_OK;
}

typedef struct ManifestList
{
	char **ids;
	int    n;
	int    cap;
} ManifestList;

static PgbkStatus
list_manifest_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ManifestList *ml = arg;
	char          id[MANIFEST_ID_LEN];

	if (!layout_backup_id_of_manifest(info->key, id, sizeof(id)))
		return PGBK_OK;
	if (ml->n == ml->cap)
	{
		int    cap = ml->cap ? ml->cap * 2 : 16;
		char **n = realloc(ml->ids, sizeof(char *) * (size_t) cap);

		if (n == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		ml->ids = n;
		ml->cap = cap;
	}
	if ((ml->ids[ml->n] = strdup(id)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	ml->n++;
	return PGBK_OK;
}

/*
 * The repository descriptor (pgbk.repo): it must be there once anything is
 * archived, decode (authenticated with the key, like every object), be a
 * descriptor (kind=descriptor, not another object copied over it) and name
 * a format and a database system; the backups are checked against that
 * system in collect_backups().  Read before the listings; a missing one is
 * reported after them (an empty repository has none yet).
 */
static PgbkStatus
check_descriptor(Verify *vr, bool *missing, PgbkError *err)
{
	PgbkBuf      stored, raw;
	CodecHeader  hdr;
	PgbkStatus   st;
	cJSON       *doc = NULL;
	const char  *sysid;
	const cJSON *format;
	char         kind[64];
	char        *end;

	*missing = false;
	pgbk_buf_init(&stored);
	pgbk_buf_init(&raw);
	st = repo_get(vr->ctx.repo, LAYOUT_DESCRIPTOR, &stored, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		*missing = true;
		st = PGBK_OK;
		goto out;
	}
	if (st != PGBK_OK)
		goto out;
	st = codec_decode(vr->ctx.ring, stored.data, stored.len, CODEC_LIMIT_SMALL, &raw, &hdr, err);
	if (st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY)
	{
		report(vr, "repository", LAYOUT_DESCRIPTOR, "unreadable: %s", err->msg);
		pgbk_error_clear(err);
		st = PGBK_OK;
		goto out;
	}
	if (st != PGBK_OK)
		goto out;
	if (!codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) || strcmp(kind, "descriptor") != 0)
	{
		report(vr, "repository", LAYOUT_DESCRIPTOR,
		       "the object is not a repository descriptor (it says kind=%s)",
		       codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) ? kind : "?");
		goto out;
	}
	doc = cJSON_ParseWithLength((const char *) raw.data, raw.len);
	format = doc ? cJSON_GetObjectItemCaseSensitive(doc, "format") : NULL;
	sysid = doc ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "system_identifier"))
	            : NULL;
	if (!cJSON_IsNumber(format) || sysid == NULL || sysid[0] < '1' || sysid[0] > '9')
	{
		report(vr, "repository", LAYOUT_DESCRIPTOR,
		       "malformed: it must hold a format and a database system identifier");
		goto out;
	}
	if (format->valuedouble != 1)
	{
		report(vr, "repository", LAYOUT_DESCRIPTOR,
		       "format %g is not one this pgbk reads (format 1)", format->valuedouble);
		goto out;
	}
	errno = 0;
	vr->sysid = strtoull(sysid, &end, 10);
	if (errno != 0 || *end != '\0')
	{
		report(vr, "repository", LAYOUT_DESCRIPTOR,
		       "malformed: \"%s\" is not a database system identifier", sysid);
		goto out;
	}
	vr->have_sysid = true;
out:
	cJSON_Delete(doc);
	pgbk_buf_free(&stored);
	pgbk_buf_free(&raw);
	return st;
}

/* Manifests are read here (small); their files become items. */
static PgbkStatus
collect_backups(Verify *vr, PgbkError *err)
{
	ManifestList ml = {NULL, 0, 0};
	PgbkStatus   st;
	int          i, f;

	st = repo_list(vr->ctx.repo, LAYOUT_MANIFEST_PREFIX, NULL, list_manifest_cb, &ml, err);
	for (i = 0; st == PGBK_OK && i < ml.n; i++)
	{
		Manifest *m = NULL;
		PgbkError merr;

		pgbk_error_clear(&merr);
		st = manifest_load(vr->ctx.repo, vr->ctx.ring, ml.ids[i], &m, &merr);
		if (st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY ||
		    st == PGBK_NOT_FOUND)
		{
			report(vr, "backup", ml.ids[i], "unreadable manifest: %s", merr.msg);
			st = PGBK_OK;
			continue;
		}
		if (st != PGBK_OK)
		{
			*err = merr;
			break;
		}
		vr->any_object = true;
		if (vr->have_sysid && m->system_identifier != vr->sysid)
			report(vr, "backup", ml.ids[i],
			       "it is of database system %" PRIu64
			       ", but the repository descriptor %s says %" PRIu64,
			       m->system_identifier, LAYOUT_DESCRIPTOR, vr->sysid);
		for (f = 0; f < m->nfiles; f++)
		{
			const ManifestFile *mf = &m->files[f];
			char                key[LAYOUT_KEY_LEN], object[LAYOUT_KEY_LEN];
			VerifyItem         *it;

			vr->stored_total += mf->stored;
			if (!sampled(vr))
				continue;
			if (!layout_backup_file_key(m->id, mf->path, key, sizeof(key)))
			{
				report(vr, "backup file", mf->path, "path too long for a repository key");
				continue;
			}
			snprintf(object, sizeof(object), "%s:%s", m->id, mf->path);
			if ((it = add_item(vr, "backup file", object, key)) == NULL)
			{
				st = pgbk_error(err, PGBK_ERR, "out of memory");
				break;
			}
			it->check_hash = true;
			it->size = mf->size;
			it->stored = mf->stored;
			memcpy(it->hash, mf->hash, CODEC_HASH_BYTES);
		}
		manifest_free(m);
	}
	for (i = 0; i < ml.n; i++)
		free(ml.ids[i]);
	free(ml.ids);
	return st;
}

typedef struct CountSink
{
	Verify       *vr;
	CodecDecoder *dec;
	PgbkBuf       out;
	uint64_t      raw;
} CountSink;

/* Output the decoder hands over in pieces: counted, not kept. */
static PgbkStatus
count_output(void *arg, const void *data, size_t len, PgbkError *err)
{
	CountSink *cs = arg;

	(void) data;
	(void) err;
	cs->raw += len;
	return PGBK_OK;
}

static PgbkStatus
count_sink(void *arg, const void *data, size_t len, PgbkError *err)
{
	CountSink *cs = arg;
	PgbkStatus st;

	pgbk_buf_reset(&cs->out);
	if ((st = codec_decoder_update(cs->dec, data, len, &cs->out, err)) != PGBK_OK)
		return st;
	cs->raw += cs->out.len;
	pthread_mutex_lock(&cs->vr->lock);
	cs->vr->stored_done += len;
	pthread_mutex_unlock(&cs->vr->lock);
	return PGBK_OK;
}

/*
 * Read one object through the decoder (which authenticates every frame and
 * checks the header's content hash).  Returns false with err set for a
 * repository failure that is not a problem of this object.
 */
static bool
check_item(Verify *vr, Repo *repo, const VerifyItem *it, PgbkError *err)
{
	CountSink     cs;
	CodecHeader   hdr;
	unsigned char hash[CODEC_HASH_BYTES];
	PgbkStatus    st;
	memset(&cs, 0, sizeof(cs));
	cs.vr = vr;
	pgbk_buf_init(&cs.out);
	memset(&hdr, 0, sizeof(hdr));
	if ((st = codec_decoder_begin(vr->ctx.ring,
	                              it->check_hash ? it->size : codec_wal_limit(it->wal_name, 0),
	                              &cs.dec, err)) != PGBK_OK)
		return false;
	codec_decoder_set_sink(cs.dec, count_output, &cs);
	st = repo_get_stream(repo, it->key, count_sink, &cs, err);
	if (st == PGBK_OK)
		st = codec_decoder_finish(cs.dec, &hdr, hash, err);
	else
		codec_decoder_free(cs.dec);
	pgbk_buf_free(&cs.out);
	switch (st)
	{
		case PGBK_OK:
			break;
		case PGBK_NOT_FOUND:
			report(vr, it->kind, it->object, "missing: \"%s\" is not in the repository", it->key);
			return true;
		case PGBK_ERR_INTEGRITY:
		case PGBK_ERR_FORMAT:
		case PGBK_ERR_KEY:
			report(vr, it->kind, it->object, "unreadable: %s", err->msg);
			pgbk_error_clear(err);
			return true;
		default:
			return false;
	}
	if (it->wal_name != NULL && codec_check_name(&hdr, it->wal_name, err) != PGBK_OK)
	{
		report(vr, it->kind, it->object, "%s", err->msg);
		pgbk_error_clear(err);
	}
	if (it->check_hash && (cs.raw != it->size || memcmp(hash, it->hash, CODEC_HASH_BYTES) != 0))
		report(vr, it->kind, it->object,
		       "content does not match the manifest (%" PRIu64 " bytes, expected %" PRIu64
		       " with another checksum)",
		       cs.raw, it->size);
	return true;
}

static void *
verify_worker(void *arg)
{
	Verify    *vr = arg;
	Repo      *repo = NULL;
	PgbkError  err;
	PgbkStatus st;

	pgbk_error_clear(&err);
	st = repo_open(vr->ctx.cfg, &repo, &err);
	for (;;)
	{
		int idx = -1;

		pthread_mutex_lock(&vr->lock);
		if (st != PGBK_OK && !vr->fatal)
		{
			vr->fatal = true;
			vr->fatal_err = err;
		}
		if (!vr->fatal && vr->next < vr->nitems && !pgbk_interrupted())
			idx = vr->next++;
		pthread_mutex_unlock(&vr->lock);
		if (idx < 0)
			break;
		if (!check_item(vr, repo, &vr->items[idx], &err))
			st = err.code ? err.code : PGBK_ERR;
		pthread_mutex_lock(&vr->lock);
		vr->done++;
		pthread_mutex_unlock(&vr->lock);
	}
	repo_close(repo);
	codec_release_cache();
	pthread_mutex_lock(&vr->lock);
	vr->running--;
	pthread_cond_broadcast(&vr->cond);
	pthread_mutex_unlock(&vr->lock);
	return NULL;
}

static void
show_progress(Verify *vr, bool final)
{
	char done[32];

	plan_format_bytes(vr->stored_done, done, sizeof(done));
	fprintf(stderr, "\r  %d of %d objects, %s read   %s", vr->done, vr->nitems, done,
	        final ? "\n" : "");
	fflush(stderr);
}

static PgbkStatus
read_all(Verify *vr, PgbkError *err)
{
	pthread_t threads[VERIFY_MAX_PARALLEL];
	int       i, started = 0, n = vr->parallel;
	bool      tty = isatty(STDERR_FILENO) && !cli_quiet;

	if (n > vr->nitems)
		n = vr->nitems > 0 ? vr->nitems : 1;
	pthread_mutex_lock(&vr->lock);
	for (i = 0; i < n; i++)
	{
		if (pthread_create(&threads[i], NULL, verify_worker, vr) != 0)
			break;
		started++;
		vr->running++;
	}
	if (started == 0)
	{
		pthread_mutex_unlock(&vr->lock);
		return pgbk_error(err, PGBK_ERR, "could not start threads");
	}
	while (vr->running > 0)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += VERIFY_PROGRESS_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&vr->cond, &vr->lock, &ts);
		if (tty)
		{
			pthread_mutex_unlock(&vr->lock);
			show_progress(vr, false);
			pthread_mutex_lock(&vr->lock);
		}
	}
	pthread_mutex_unlock(&vr->lock);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (tty)
		show_progress(vr, true);
	if (vr->fatal)
	{
		*err = vr->fatal_err;
		return err->code ? err->code : PGBK_ERR;
	}
	if (pgbk_interrupted())
		return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
	return PGBK_OK;
}

/*
 * WAL continuity: recovery from each backup reads every segment from the
 * backup's start along its timeline chain (the newest timeline whose
 * history files follow the backup's one), up to the newest archived segment
 * of that chain.  A missing segment cuts everything after it off.
 */
static PgbkStatus
check_continuity(Verify *vr, PgbkError *err)
{
	PlanView  *v = NULL;
	PgbkStatus st;
	int        i;

	if ((st = plan_view_open(vr->ctx.repo, vr->ctx.ring, &v, err)) != PGBK_OK ||
	    (st = plan_view_list_all_wal(v, err)) != PGBK_OK)
	{
		plan_view_free(v);
		if (st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY)
		{
			report(vr, "wal", "history", "the timeline history cannot be read: %s", err->msg);
			pgbk_error_clear(err);
			return PGBK_OK;
		}
		return st;
	}
	for (i = 0; i < v->nbackups; i++)
	{
		PlanBackup *b = &v->backups[i];
		WalHistory  chain;
		uint32_t    newest, segsz;
		WalSegNo    seg, first, last = 0;
		bool        have_last = false;
		int         k, j;

		if ((st = plan_view_load_backup(v, b, err)) != PGBK_OK)
			break;
		if (b->broken)
			continue; /* reported with the manifests */
		segsz = b->wal_segment_size;
		newest = plan_newest_timeline(v, b->timeline);
		memset(&chain, 0, sizeof(chain));
		if ((st = plan_chain(v, newest, &chain, err)) != PGBK_OK)
			break;
		/* the newest segment of any timeline on the chain */
		for (k = 0; k < v->nblocks; k++)
		{
			const PlanWalBlock *blk = &v->blocks[k];
			bool                on_chain = false;

			for (j = 0; j < chain.n; j++)
				if (chain.entries[j].tli == blk->tli && blk->tli >= b->timeline)
					on_chain = true;
			if (on_chain && blk->n > 0 && (!have_last || blk->segs[blk->n - 1].segno > last))
			{
				last = blk->segs[blk->n - 1].segno;
				have_last = true;
			}
		}
		first = walname_lsn_to_segno(b->start_lsn, segsz);
		if (!have_last || last < walname_lsn_to_segno(b->stop_lsn, segsz))
			last = walname_lsn_to_segno(b->stop_lsn, segsz);
		for (seg = first; seg <= last; seg++)
		{
			uint32_t     tli = plan_chain_tli_of_seg(&chain, seg, segsz, b->timeline);
			PlanSegment *s;
			char         name[WALNAME_BUFLEN], lastname[WALNAME_BUFLEN];
			WalSegNo     run_end;

			if ((st = plan_view_segment(v, tli, seg, &s, err)) != PGBK_OK)
				break;
			if (s != NULL)
				continue;
			/* a run of missing segments: one line */
			run_end = seg;
			while (run_end < last)
			{
				uint32_t     t2 = plan_chain_tli_of_seg(&chain, run_end + 1, segsz, b->timeline);
				PlanSegment *s2;

				if ((st = plan_view_segment(v, t2, run_end + 1, &s2, err)) != PGBK_OK || s2 != NULL)
					break;
				run_end++;
			}
			if (st != PGBK_OK)
				break;
			walname_format_segment(name, tli, seg, segsz);
			walname_format_segment(lastname,
			                       plan_chain_tli_of_seg(&chain, run_end, segsz, b->timeline),
			                       run_end, segsz);
			if (run_end == seg)
				report(vr, "wal gap", name,
				       "WAL segment %s is missing: backup %s cannot be restored past it", name,
				       b->id);
			else
				report(vr, "wal gap", name,
				       "WAL segments %s to %s are missing: backup %s cannot be restored past %s",
				       name, lastname, b->id, name);
			seg = run_end;
		}
		walname_history_free(&chain);
		if (st != PGBK_OK)
			break;
	}
	plan_view_free(v);
	return st;
}

/*
 * --catalog: every file snapshot the catalog lists must be in the restic
 * repository (a plan or a restore would name it), and every one it marks
 * forgotten must really be gone (else a real snapshot is hidden from the
 * plans).  The catalog's writers include the watcher's login
 * (pgbk_recorder), so this is where a recorded snapshot that restic never
 * took shows up.  Done here rather than in bk_verify(): the restic password
 * and binary belong to the files side, not to the database server, and a
 * backend should not run restic.
 */
static PgbkStatus
check_file_snapshots(Verify *vr, PgbkError *err)
{
	PGconn            *conn;
	PGresult          *res = NULL;
	FilesSettings      fs;
	FilesRepo         *frepo = NULL;
	FilesSnapshotList *list = NULL;
	PgbkStatus         st = PGBK_OK;
	int                i, n;
	size_t             k;

	conn = PQconnectdb(vr->catalog);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		st = pgbk_error(err, PGBK_ERR, "could not connect to the catalog (--catalog): %s",
		                PQerrorMessage(conn));
		goto out;
	}
	res = PQexec(conn, "SELECT snapshot_id, forgotten_at IS NOT NULL, "
	                   "to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
	                   "array_to_string(restore_points, ', ') "
	                   "FROM pgbk.file_snapshot ORDER BY taken_at, snapshot_id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		st = pgbk_error(err, PGBK_ERR, "could not read pgbk.file_snapshot (--catalog): %s",
		                PQerrorMessage(conn));
		goto out;
	}
	n = PQntuples(res);
	if (n == 0)
		goto out;
	cli_info("verify: checking %d file snapshot%s of the catalog against the restic repository", n,
	         n == 1 ? "" : "s");
	files_settings_from_config(vr->ctx.cfg, &fs);
	if ((st = files_repo_open(vr->ctx.cfg, &fs, &frepo, err)) != PGBK_OK ||
	    (st = files_list_snapshots(frepo, NULL, NULL, &list, err)) != PGBK_OK)
	{
		pgbk_error_prefix(err, "could not list the file snapshots");
		goto out;
	}
	for (i = 0; i < n; i++)
	{
		const char *id = PQgetvalue(res, i, 0);
		bool        forgotten = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		const char *rps = PQgetvalue(res, i, 3);
		bool        present = false;

		for (k = 0; k < list->n && !present; k++)
			present = strcmp(list->items[k].id, id) == 0;
		if (!forgotten && !present)
			report(vr, "file snapshot", id,
			       "missing: the catalog records it (taken at %s%s%s) but restic repository "
			       "\"%s\" does not hold it",
			       PQgetvalue(res, i, 2), rps[0] ? ", for restore point " : "", rps,
			       frepo->repository);
		else if (forgotten && present)
			report(vr, "file snapshot", id,
			       "the catalog marks it forgotten, but restic repository \"%s\" still holds it",
			       frepo->repository);
	}
out:
	files_snapshot_list_free(list);
	files_repo_free(frepo);
	PQclear(res);
	PQfinish(conn);
	return st;
}

int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"sample", required_argument, NULL, 's'},
	                                     {"parallel", required_argument, NULL, 'p'},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"catalog", required_argument, NULL, 'C'},
	                                     {NULL, 0, NULL, 0}};
	const char                *config = NULL;
	Verify                     vr;
	PgbkError                  err;
	PgbkStatus                 st;
	int                        c, rc, i;
	char                      *end;
	char                       bytes[32];
	bool                       no_descriptor = false;

	memset(&vr, 0, sizeof(vr));
	vr.sample = 1.0;
	vr.parallel = 4;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:p:qhC:", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config = optarg;
				break;
			case 'C':
				vr.catalog = optarg;
				break;
			case 's':
				vr.sample = strtod(optarg, &end);
				if (end == optarg || *end != '\0' || !(vr.sample > 0 && vr.sample <= 1))
				{
					cli_error("verify: --sample must be a number in (0, 1], not \"%s\"", optarg);
					return EXIT_USAGE;
				}
				break;
			case 'p':
				vr.parallel = (int) strtol(optarg, &end, 10);
				if (end == optarg || *end != '\0' || vr.parallel < 1 ||
				    vr.parallel > VERIFY_MAX_PARALLEL)
				{
					cli_error("verify: --parallel must be an integer from 1 to %d, not \"%s\"",
					          VERIFY_MAX_PARALLEL, optarg);
					return EXIT_USAGE;
				}
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				verify_usage(stdout);
				return EXIT_OK;
			default:
				verify_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind != argc)
	{
		verify_usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = cli_open(&vr.ctx, config)) != EXIT_OK)
		return rc;
	pthread_mutex_init(&vr.lock, NULL);
	pthread_cond_init(&vr.cond, NULL);
	srand48((long) time(NULL) ^ (long) getpid());
	pgbk_error_clear(&err);

	cli_info("verify: listing %s", repo_describe(vr.ctx.repo));
	st = check_descriptor(&vr, &no_descriptor, &err);
	if (st == PGBK_OK)
		st = repo_list(vr.ctx.repo, LAYOUT_WAL_PREFIX, NULL, list_wal_cb, &vr, &err);
	if (st == PGBK_OK)
		st = collect_backups(&vr, &err);
	if (st == PGBK_OK && no_descriptor && vr.any_object)
		report(&vr, "repository", LAYOUT_DESCRIPTOR,
		       "missing: the repository holds WAL or backups but no descriptor \"%s\" (which "
		       "names the database system it belongs to)",
		       LAYOUT_DESCRIPTOR);
	if (st == PGBK_OK)
		st = check_continuity(&vr, &err);
	if (st == PGBK_OK && vr.catalog != NULL)
		st = check_file_snapshots(&vr, &err);
	if (st == PGBK_OK)
	{
		plan_format_bytes(vr.stored_total, bytes, sizeof(bytes));
		cli_info("verify: reading %d objects (%s stored in all, sample %g)", vr.nitems, bytes,
		         vr.sample);
		st = read_all(&vr, &err);
	}
	if (st != PGBK_OK)
		rc = cli_fail(&err, "verify");
	else
	{
		plan_format_bytes(vr.stored_done, bytes, sizeof(bytes));
		cli_info("verify: %d objects read (%s), %" PRIu64 " problem%s", vr.done, bytes, vr.problems,
		         vr.problems == 1 ? "" : "s");
		rc = vr.problems > 0 ? EXIT_INTEGRITY : EXIT_OK;
	}
	for (i = 0; i < vr.nitems; i++)
	{
		free(vr.items[i].kind);
		free(vr.items[i].object);
		free(vr.items[i].key);
	}
	free(vr.items);
	cli_close(&vr.ctx);
	return rc;
}
