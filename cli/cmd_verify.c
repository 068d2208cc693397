/*
 * cmd_verify.c
 *	  Program pgbk; uses cli.h, common/ verify, plan, format, files and base, pthreads
 *	  and libpq (--catalog only).
 *	  pgbk verify: is the repository whole, from the repository alone (the
 *	  twin of the extension's bk_verify(), which starts from the catalog)?
 *	  Objects are judged by the object verifier both share (common/verify,
 *	  which streams each one through the decoder); this file lists the
 *	  repository, reads the objects with --parallel threads and does what
 *	  only the repository view has:
 *
 *	  - the repository descriptor pgbk.repo decodes, is one, and names the
 *	    database system every backup's manifest names (missing: a problem
 *	    once the repository holds anything);
 *	  - every object under wal/ (segments, .partial, .backup, .history) is
 *	    read, decrypted, and checked against its content hash; a WAL
 *	    object must carry the name it is stored under;
 *	  - every change summary under changes/ is read, authenticated and
 *	    decoded; a segment or .partial under wal/ without one is a warning
 *	    (printed, but not a problem: backups rebuild it or fall back);
 *	  - every manifest decodes, and every file it lists exists, decodes and
 *	    matches the manifest's size and hash;
 *	  - every backup has unbroken WAL on its timeline chain from its start to
 *	    the newest archived segment of that chain (plan view);
 *	  - --catalog: the catalog's file snapshots against restic.
 *
 *	  --sample F reads a random fraction F of the objects (manifests and the
 *	  continuity check are always done: they cost listings, not downloads).
 *	  Problems go to stdout, one line each, naming the object; the exit code
 *	  is 6 (integrity) when there is any.  Warnings go to stdout too, one line
 *	  each beginning "warning: ", and leave the exit code alone.
 */
#include "cli.h"

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
#include "verify/verify.h"
#include "base/walname.h"

#define VERIFY_MAX_PARALLEL 32
#define VERIFY_PROGRESS_MS  250

/* An object queued for the threads: a copy of what verify/ built. */
typedef struct VerifyItem
{
	VerifyObject o;
	char        *object; /* o's strings, owned */
	char        *key;
	char        *segname; /* a change summary's segment, or NULL */
} VerifyItem;

typedef struct Verify
{
	CliContext   ctx;
	VerifyParams params;
	const char  *catalog; /* --catalog: libpq conninfo of the catalog's database */
	int          parallel;
	double       rebuild_sample; /* --rebuild-sample: summaries compared with a rebuilt one */

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
	uint64_t        warnings;
	bool            fatal; /* the repository could not be read at all */
	PgbkError       fatal_err;

	bool             any_object; /* the repository holds WAL or backups */
	VerifyDescriptor descriptor;

	/* segment and .partial names under wal/, and those with a summary (key order) */
	char **segs;
	int    nsegs, segcap;
	char **sums;
	int    nsums, sumcap;
} Verify;

static void
verify_usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgbk verify [--config FILE] [--sample F] [--parallel N] [--catalog CONNINFO]\n"
	        "                   [--rebuild-sample F] [--quiet]\n"
	        "\n"
	        "Read the repository and check that it is whole, without the database: the\n"
	        "repository descriptor (pgbk.repo) decrypts and names the database system of\n"
	        "every backup; every WAL, history, .partial and .backup object decrypts and\n"
	        "matches its checksum and its name; every change summary decrypts and\n"
	        "decodes; every base backup's manifest decodes and each of its files exists\n"
	        "and matches the manifest's size and checksum; and every backup has unbroken\n"
	        "WAL on its timeline from its start to the newest archived segment.  Each\n"
	        "problem is printed on stdout as one line naming the object.  A WAL segment\n"
	        "without a change summary is a warning (a line beginning \"warning: \"), not a\n"
	        "problem: backups rebuild it from the segment, and `pgbk wal-changes SEGMENT\n"
	        "--rebuild` stores it.\n"
	        "\n"
	        "  --sample F     read only a random fraction F (0 < F <= 1) of the objects\n"
	        "                 (default 1); manifests and WAL continuity are always checked\n"
	        "  --parallel N   objects read at once (default 4, at most %d)\n"
	        "  --rebuild-sample F\n"
	        "                 also compare a random fraction F (0 <= F <= 1, default 0) of\n"
	        "                 the change summaries read with the one rebuilt from their\n"
	        "                 archived segment (each reads its segment once more)\n"
	        "  --catalog CONNINFO\n"
	        "                 also check the catalog's file snapshots (pgbk.file_snapshot,\n"
	        "                 readable by pgbk_reader) against the restic repository: each\n"
	        "                 one must be there, and none marked forgotten may be (libpq\n"
	        "                 conninfo, e.g. 'dbname=postgres', the database of\n"
	        "                 pgbk.database)\n"
	        "\n"
	        "Exit codes: 0 no problem (warnings aside), 6 problems found, 4 repository\n"
	        "unreachable, 3 configuration error, 1 the catalog or the restic repository\n"
	        "could not be read.\n",
	        VERIFY_MAX_PARALLEL);
}

/* Problems (from verify/ and from the checks here): one line on stdout each. */
static void
report_problem(void *arg, const char *kind, const char *object, const char *problem)
{
	Verify *vr = arg;

	pthread_mutex_lock(&vr->lock);
	printf("%s %s: %s\n", kind, object, problem);
	fflush(stdout);
	vr->problems++;
	pthread_mutex_unlock(&vr->lock);
}

/* Warnings: one line on stdout each, not counted as problems. */
static void
report_warning(void *arg, const char *kind, const char *object, const char *warning)
{
	Verify *vr = arg;

	pthread_mutex_lock(&vr->lock);
	printf("warning: %s %s: %s\n", kind, object, warning);
	fflush(stdout);
	vr->warnings++;
	pthread_mutex_unlock(&vr->lock);
}

static void report(Verify *vr, const char *kind, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
report(Verify *vr, const char *kind, const char *object, const char *fmt, ...)
{
	char    msg[4 * PGBK_ERRMSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report_problem(vr, kind, object, msg);
}

static void
count_progress(void *arg, uint64_t stored_bytes)
{
	Verify *vr = arg;

	pthread_mutex_lock(&vr->lock);
	vr->stored_done += stored_bytes;
	pthread_mutex_unlock(&vr->lock);
}

/* Queue a copy of o for the threads. */
static PgbkStatus
add_item(void *arg, const VerifyObject *o, PgbkError *err)
{
	Verify     *vr = arg;
	VerifyItem *it;

	if (vr->nitems == vr->cap)
	{
		int         cap = vr->cap ? vr->cap * 2 : 256;
		VerifyItem *n = realloc(vr->items, sizeof(VerifyItem) * (size_t) cap);

		if (n == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		vr->items = n;
		vr->cap = cap;
	}
	it = &vr->items[vr->nitems];
	it->o = *o;
	it->object = strdup(o->object);
	it->key = strdup(o->key);
	it->segname = o->changes_of ? strdup(o->changes_of) : NULL;
	if (it->object == NULL || it->key == NULL || (o->changes_of != NULL && it->segname == NULL))
	{
		free(it->object);
		free(it->key);
		free(it->segname);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	it->o.object = it->object;
	it->o.key = it->key;
	it->o.changes_of = it->segname;
	if (o->wal_name != NULL)
		it->o.wal_name = it->object;
	vr->nitems++;
	return PGBK_OK;
}

/* Append a copy of name to a list of names. */
static PgbkStatus
add_name(char ***names, int *n, int *cap, const char *name, PgbkError *err)
{
	if (*n == *cap)
	{
		int    ncap = *cap ? *cap * 2 : 256;
		char **nn = realloc(*names, sizeof(char *) * (size_t) ncap);

		if (nn == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		*names = nn;
		*cap = ncap;
	}
	if (((*names)[*n] = strdup(name)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	(*n)++;
	return PGBK_OK;
}

static void
free_names(char **names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Listing wal/: every object is a candidate. */
static PgbkStatus
list_wal_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	Verify      *vr = arg;
	const char  *name = layout_wal_name(info->key);
	VerifyObject o;
	WalFileKind  kind;
	PgbkStatus   st;

	if (name == NULL)
		return PGBK_OK; /* not ours (a temporary file of a local upload) */
	vr->any_object = true;
	kind = walname_classify(name, NULL);
	if ((kind == WAL_FILE_SEGMENT || kind == WAL_FILE_PARTIAL) &&
	    (st = add_name(&vr->segs, &vr->nsegs, &vr->segcap, name, err)) != PGBK_OK)
		return st;
	vr->stored_total += info->size;
	if (!verify_sampled(&vr->params))
		return PGBK_OK;
	verify_wal_object(&o, name, info->key, 0);
	o.stored = info->size;
	return add_item(vr, &o, err);
}

/* Listing changes/: every summary is a candidate. */
static PgbkStatus
list_changes_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	Verify      *vr = arg;
	const char  *name = layout_changes_name(info->key);
	VerifyObject o;
	PgbkStatus   st;

	if (name == NULL)
		return PGBK_OK; /* not ours */
	if ((st = add_name(&vr->sums, &vr->nsums, &vr->sumcap, name, err)) != PGBK_OK)
		return st;
	vr->stored_total += info->size;
	if (!verify_sampled(&vr->params))
		return PGBK_OK;
	verify_changes_object(&o, name, info->key);
	o.stored = info->size;
	o.rebuild_check =
	    vr->rebuild_sample > 0 && (vr->rebuild_sample >= 1 || drand48() < vr->rebuild_sample);
	return add_item(vr, &o, err);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Summaries: every one listed is read; every segment or .partial listed
 * under wal/ without one is a warning.  (A segment archived while we list
 * may have its summary, stored just after it, missed by the listing of
 * changes/: a warning that a second run does not repeat.)
 */
static PgbkStatus
check_summaries(Verify *vr, PgbkError *err)
{
	PgbkStatus st;
	int        i;

	if ((st = repo_list(vr->ctx.repo, LAYOUT_CHANGES_PREFIX, NULL, list_changes_cb, vr, err)) !=
	    PGBK_OK)
		return st;
	if (vr->nsums > 1)
		qsort(vr->sums, (size_t) vr->nsums, sizeof(char *), name_cmp);
	for (i = 0; i < vr->nsegs; i++)
		if (vr->nsums == 0 ||
		    bsearch(&vr->segs[i], vr->sums, (size_t) vr->nsums, sizeof(char *), name_cmp) == NULL)
			verify_report_changes_missing(&vr->params, vr->segs[i]);
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

/* Manifests are read here (small); their files become items. */
static PgbkStatus
collect_backups(Verify *vr, PgbkError *err)
{
	ManifestList      ml = {NULL, 0, 0};
	PgbkStatus        st;
	int               i;
	VerifyChainEntry *chains = NULL;
	char            **parents = NULL;

	st = repo_list(vr->ctx.repo, LAYOUT_MANIFEST_PREFIX, NULL, list_manifest_cb, &ml, err);
	if (st == PGBK_OK && ml.n > 0)
	{
		chains = calloc((size_t) ml.n, sizeof(VerifyChainEntry));
		parents = calloc((size_t) ml.n, sizeof(char *));
		if (chains == NULL || parents == NULL)
			st = pgbk_error(err, PGBK_ERR, "out of memory");
	}
	for (i = 0; st == PGBK_OK && i < ml.n; i++)
	{
		Manifest *m = NULL;

		vr->any_object = true;
		chains[i].id = ml.ids[i];
		st = verify_manifest(&vr->params, vr->ctx.repo, ml.ids[i], &vr->descriptor, &m, err);
		if (st != PGBK_OK || m == NULL)
			continue;
		chains[i].sound = true;
		if (m->incremental && (parents[i] = strdup(m->parent)) == NULL)
			st = pgbk_error(err, PGBK_ERR, "out of memory");
		chains[i].parent = parents[i];
		vr->stored_total += m->stored_bytes;
		if (st == PGBK_OK)
			st = verify_backup_files(&vr->params, m, add_item, vr, err);
		manifest_free(m);
	}
	/* listings come in key order: the ids are sorted */
	if (st == PGBK_OK && chains != NULL)
		verify_chains(&vr->params, chains, ml.n);
	for (i = 0; i < ml.n; i++)
	{
		free(ml.ids[i]);
		if (parents)
			free(parents[i]);
	}
	free(parents);
	free(chains);
	free(ml.ids);
	return st;
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
		{
			VerifyOutcome outcome;

			st = verify_object(&vr->params, repo, &vr->items[idx].o, &outcome, &err);
		}
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
 * WAL continuity over the repository's own listings, by the rule
 * bk_verify() applies to the catalog (verify_wal_continuity): recovery from
 * each backup reads every segment from the backup's start along its
 * timeline chain up to the newest archived segment of that chain.
 */
static PgbkStatus
check_continuity(Verify *vr, PgbkError *err)
{
	PlanView     *v = NULL;
	VerifyWalGaps gaps;
	PgbkStatus    st;
	int           i;

	if ((st = plan_view_open(vr->ctx.repo, vr->ctx.ring, &v, err)) != PGBK_OK ||
	    (st = plan_view_list_all_wal(v, err)) != PGBK_OK)
	{
		plan_view_free(v);
		if (st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY)
		{
			report(vr, VERIFY_KIND_WAL, "history", "the timeline history cannot be read: %s",
			       err->msg);
			pgbk_error_clear(err);
			return PGBK_OK;
		}
		return st;
	}
	/* the rule is verify/'s, shared with bk_verify() */
	st = verify_wal_continuity(v, &gaps, err);
	for (i = 0; st == PGBK_OK && i < gaps.n; i++)
		verify_report_wal_gap(&vr->params, gaps.gaps[i].first, gaps.gaps[i].last,
		                      gaps.gaps[i].backup);
	verify_wal_gaps_free(&gaps);
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
	                                     {"rebuild-sample", required_argument, NULL, 'R'},
	                                     {NULL, 0, NULL, 0}};
	const char                *config = NULL;
	Verify                     vr;
	PgbkError                  err;
	PgbkStatus                 st;
	int                        c, rc, i;
	char                      *end;
	char                       bytes[32];

	memset(&vr, 0, sizeof(vr));
	vr.params.sample = 1.0;
	vr.params.random = drand48;
	vr.params.report = report_problem;
	vr.params.report_arg = &vr;
	vr.params.warn = report_warning;
	vr.params.warn_arg = &vr;
	vr.params.progress = count_progress;
	vr.params.progress_arg = &vr;
	vr.parallel = 4;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:p:qhC:R:", opts, NULL)) != -1)
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
				vr.params.sample = strtod(optarg, &end);
				if (end == optarg || *end != '\0' ||
				    !(vr.params.sample > 0 && vr.params.sample <= 1))
				{
					cli_error("verify: --sample must be a number in (0, 1], not \"%s\"", optarg);
					return EXIT_USAGE;
				}
				break;
			case 'R':
				vr.rebuild_sample = strtod(optarg, &end);
				if (end == optarg || *end != '\0' ||
				    !(vr.rebuild_sample >= 0 && vr.rebuild_sample <= 1))
				{
					cli_error("verify: --rebuild-sample must be a number in [0, 1], not \"%s\"",
					          optarg);
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
	vr.params.ring = vr.ctx.ring;
	st = verify_descriptor(&vr.params, vr.ctx.repo, 0, &vr.descriptor, &err);
	if (st == PGBK_OK)
		st = repo_list(vr.ctx.repo, LAYOUT_WAL_PREFIX, NULL, list_wal_cb, &vr, &err);
	if (st == PGBK_OK)
		st = check_summaries(&vr, &err);
	if (st == PGBK_OK)
		st = collect_backups(&vr, &err);
	if (st == PGBK_OK && !vr.descriptor.present && vr.any_object)
		verify_descriptor_missing(&vr.params);
	if (st == PGBK_OK)
		st = check_continuity(&vr, &err);
	if (st == PGBK_OK && vr.catalog != NULL)
		st = check_file_snapshots(&vr, &err);
	if (st == PGBK_OK)
	{
		plan_format_bytes(vr.stored_total, bytes, sizeof(bytes));
		cli_info("verify: reading %d objects (%s stored in all, sample %g)", vr.nitems, bytes,
		         vr.params.sample);
		st = read_all(&vr, &err);
	}
	if (st != PGBK_OK)
		rc = cli_fail(&err, "verify");
	else
	{
		plan_format_bytes(vr.stored_done, bytes, sizeof(bytes));
		cli_info("verify: %d objects read (%s), %" PRIu64 " problem%s, %" PRIu64 " warning%s",
		         vr.done, bytes, vr.problems, vr.problems == 1 ? "" : "s", vr.warnings,
		         vr.warnings == 1 ? "" : "s");
		rc = vr.problems > 0 ? EXIT_INTEGRITY : EXIT_OK;
	}
	for (i = 0; i < vr.nitems; i++)
	{
		free(vr.items[i].object);
		free(vr.items[i].key);
		free(vr.items[i].segname);
	}
	free(vr.items);
	free_names(vr.segs, vr.nsegs);
	free_names(vr.sums, vr.nsums);
	cli_close(&vr.ctx);
	return rc;
}
