/*
 * cmd_wal.c
 *	  Program pgbk; uses cli.h, common/ wal (walpush, walchanges), plan, format
 *	  and base, and pthreads.
 *	  pgbk wal-push (archive_command) and pgbk wal-fetch (restore_command);
 *	  pgbk wal-changes (a segment's change summary: print, rebuild).
 *
 * wal-push follows the same rules as the archive module (common/wal/walpush.c):
 * exit 0 only once the repository durably holds the file; an identical
 * object already there is success; different content under the same name
 * is refused (exit 8) and left untouched.
 *
 * wal-fetch writes DEST only when the whole object decoded and verified:
 * it streams into a temporary file next to DEST and renames it into place
 * at the end, so a tampered or truncated object never leaves a DEST file.
 * A file that is not in the repository exits 5 (PostgreSQL asks for such
 * files on purpose, e.g. the next timeline's history file).
 *
 * Prefetch.  Recovery asks for one segment at a time and waits for each, so
 * a plain fetch per call is bound by the repository's latency.  When asked
 * for segment S, wal-fetch takes S from the spool if a prefetcher put it
 * there (a rename), else fetches it directly; then it records S as the
 * newest segment wanted and makes sure one prefetcher runs.  The
 * prefetcher (double-forked, its own session, so no zombie and no tie to
 * PostgreSQL's process group) keeps the next N segments downloaded, in * parallel, into the spool: each into "<name>.part", verified, then
 * renamed to "<name>", so a file under its own name is always complete.
 * (Not fsync'd: the spool records the kernel's boot id, and files from an
 * earlier boot are never handed over.)  The spool holds at most N segments plus those in flight:
 * files outside the window (older segments, other timelines) are removed.
 * After a timeline switch the window follows the newest timeline whose
 * history file recovery fetched (a copy is kept in the spool).  The
 * prefetcher exits when nobody asked for anything for a while, when the
 * spool goes away, or on SIGTERM (wal-fetch --spool-cleanup, which pgbk
 * restore sets as recovery_end_command, stops it and removes the spool).
 *
 * Spool files: prefetch.lock (flock'd by the prefetcher, holds its pid), * want ("<segment name> <segment size>"), prefetch.log (its errors),
 * boot_id, <segment>, <segment>.part, <timeline>.history.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/pgbk_time.h"
#include "format/layout.h"
#include "format/manifest.h"
#include "plan/plan.h"
#include "wal/walpush.h"

static const struct option common_opts[] = {{"config", required_argument, NULL, 'c'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};

static void
wal_push_usage(FILE *out)
{
	fprintf(out, "Usage: pgbk wal-push [--config FILE] PATH\n"
	             "\n"
	             "Archive one file of pg_wal (a segment, .partial, .backup or .history file)\n"
	             "into the repository.  For archive_command:\n"
	             "  archive_command = 'pgbk wal-push --config /etc/pgbk/pgbk.conf %%p'\n"
	             "Exit 0 once the repository durably holds the file (also when it already held\n"
	             "identical content); exit 8 if it holds different content under that name.\n");
}

int
cmd_wal_push(int argc, char **argv)
{
	const char   *config = NULL;
	const char   *path;
	char         *pathcopy;
	const char   *fname;
	CliContext    ctx;
	WalPusher     pusher;
	WalPushResult res;
	PgbkError     err;
	int           c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", common_opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config = optarg;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				wal_push_usage(stdout);
				return EXIT_OK;
			default:
				wal_push_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
	{
		wal_push_usage(stderr);
		return EXIT_USAGE;
	}
	path = argv[optind];
	pathcopy = strdup(path);
	if (pathcopy == NULL)
		return EXIT_FAIL;
	fname = basename(pathcopy);

	if ((rc = cli_open(&ctx, config)) != EXIT_OK)
	{
		free(pathcopy);
		return rc;
	}
	pgbk_error_clear(&err);
	walpush_init(&pusher, ctx.repo, &ctx.params);
	if (walpush_file(&pusher, path, fname, &res, &err) != PGBK_OK)
		rc = cli_fail(&err, "wal-push");
	else if (res.already_present)
		cli_info("wal-push: \"%s\" was already in %s with identical content", fname,
		         repo_describe(ctx.repo));
	walpush_free(&pusher);
	cli_close(&ctx);
	free(pathcopy);
	return rc;
}

static void
wal_changes_usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgbk wal-changes [--config FILE] [--rebuild | --resolve] [--json] SEGMENT\n"
	        "\n"
	        "Print the change summary of an archived WAL segment (or .partial file):\n"
	        "which relation blocks the records beginning in it change.  A summary that\n"
	        "is missing is rebuilt from the archived segment and stored.\n"
	        "--rebuild summarizes the archived segment again and compares the result\n"
	        "with the stored summary (stored if there is none; never overwritten):\n"
	        "exit 0 if they agree, 6 if the stored one is unreadable or differs.\n"
	        "--resolve: if the summary is incomplete only because its last record\n"
	        "continues into the next segment, summarize the segment again with the next\n"
	        "one beside it (as a backup's union does) and print that (not stored).\n"
	        "--json prints one JSON object.\n");
}

static char *
lsn_str(char *buf, WalLsn lsn)
{
	return walname_format_lsn(buf, lsn);
}

static void
print_changes_text(const char *segname, const WalChanges *c, const char *source)
{
	uint32_t    tli;
	WalLsn      start, end;
	const char *why;
	char        l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];
	size_t      i;

	walchg_range(c, &tli, &start, &end);
	printf("segment %s (%s)\n", segname, source);
	printf("range: timeline %u, %s to %s\n", tli, lsn_str(l1, start), lsn_str(l2, end));
	if (walchg_complete(c, &why))
		printf("complete: yes\n");
	else
		printf("complete: no: %s\n", why);
	for (i = 0; i < walchg_whole_count(c); i++)
	{
		uint32_t spc, db;

		walchg_whole(c, i, &spc, &db);
		if (db == 0)
			printf("whole tablespace %u\n", spc);
		else
			printf("whole database %u/%u\n", spc, db);
	}
	for (i = 0; i < walchg_count(c); i++)
	{
		const WalChangeEntry *e = walchg_entry(c, i);
		static const char    *forks[] = {"main", "fsm", "vm", "init"};
		uint32_t              j;

		printf("%u/%u/%u %s", e->rf.spc, e->rf.db, e->rf.rel, forks[e->rf.fork]);
		if (e->limit != WALCHG_NO_LIMIT)
			printf(" limit %u", e->limit);
		printf(" blocks %u:", e->nblocks);
		/* runs as a-b */
		for (j = 0; j < e->nblocks;)
		{
			uint32_t k = j;

			while (k + 1 < e->nblocks && e->blocks[k + 1] == e->blocks[k] + 1)
				k++;
			if (k == j)
				printf(" %u", e->blocks[j]);
			else
				printf(" %u-%u", e->blocks[j], e->blocks[k]);
			j = k + 1;
		}
		printf("\n");
	}
}

static bool
print_changes_json(const char *segname, const WalChanges *c, const char *source)
{
	cJSON   *root = cJSON_CreateObject(), *whole = cJSON_CreateArray(), *rels = cJSON_CreateArray();
	uint32_t tli;
	WalLsn   start, end;
	const char *why;
	char        l1[WALNAME_LSN_BUFLEN];
	size_t      i;
	char       *text;

	if (root == NULL || whole == NULL || rels == NULL)
		return false;
	walchg_range(c, &tli, &start, &end);
	cJSON_AddStringToObject(root, "segment", segname);
	cJSON_AddStringToObject(root, "source", source);
	cJSON_AddNumberToObject(root, "timeline", tli);
	cJSON_AddStringToObject(root, "start_lsn", lsn_str(l1, start));
	cJSON_AddStringToObject(root, "end_lsn", lsn_str(l1, end));
	cJSON_AddBoolToObject(root, "complete", walchg_complete(c, &why));
	if (why)
		cJSON_AddStringToObject(root, "reason", why);
	else
		cJSON_AddNullToObject(root, "reason");
	for (i = 0; i < walchg_whole_count(c); i++)
	{
		uint32_t spc, db;
		cJSON   *o = cJSON_CreateObject();

		walchg_whole(c, i, &spc, &db);
		cJSON_AddNumberToObject(o, "spc", spc);
		cJSON_AddNumberToObject(o, "db", db);
		cJSON_AddItemToArray(whole, o);
	}
	cJSON_AddItemToObject(root, "whole", whole);
	for (i = 0; i < walchg_count(c); i++)
	{
		const WalChangeEntry *e = walchg_entry(c, i);
		cJSON                *o = cJSON_CreateObject(), *b = cJSON_CreateArray();
		uint32_t              j;

		cJSON_AddNumberToObject(o, "spc", e->rf.spc);
		cJSON_AddNumberToObject(o, "db", e->rf.db);
		cJSON_AddNumberToObject(o, "rel", e->rf.rel);
		cJSON_AddNumberToObject(o, "fork", e->rf.fork);
		if (e->limit == WALCHG_NO_LIMIT)
			cJSON_AddNullToObject(o, "limit");
		else
			cJSON_AddNumberToObject(o, "limit", e->limit);
		for (j = 0; j < e->nblocks; j++)
			cJSON_AddItemToArray(b, cJSON_CreateNumber(e->blocks[j]));
		cJSON_AddItemToObject(o, "blocks", b);
		cJSON_AddItemToArray(rels, o);
	}
	cJSON_AddItemToObject(root, "relations", rels);
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text == NULL)
		return false;
	printf("%s\n", text);
	cJSON_free(text);
	return true;
}

int
cmd_wal_changes(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"rebuild", no_argument, NULL, 'r'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"resolve", no_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	const char                *config = NULL;
	const char                *segname;
	bool                       rebuild = false, json = false, rebuilt = false, resolve = false;
	CliContext                 ctx;
	WalChanges                *c = NULL;
	PgbkError                  err;
	PgbkStatus                 st;
	WalFileKind                kind;
	const char                *source;
	int                        ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1)
	{
		switch (ch)
		{
			case 'c':
				config = optarg;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'r':
				rebuild = true;
				break;
			case 'j':
				json = true;
				break;
			case 's':
				resolve = true;
				break;
			case 'h':
				wal_changes_usage(stdout);
				return EXIT_OK;
			default:
				wal_changes_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || (rebuild && resolve))
	{
		wal_changes_usage(stderr);
		return EXIT_USAGE;
	}
	segname = argv[optind];
	kind = walname_classify(segname, NULL);
	if (kind != WAL_FILE_SEGMENT && kind != WAL_FILE_PARTIAL)
	{
		cli_error("\"%s\" is not a WAL segment or .partial file name", segname);
		return EXIT_USAGE;
	}
	if ((rc = cli_open(&ctx, config)) != EXIT_OK)
		return rc;
	pgbk_error_clear(&err);
	if (!rebuild)
	{
		st = walchg_load_or_rebuild(ctx.repo, ctx.ring, &ctx.params, segname, &rebuilt, &c, &err);
		source = rebuilt ? "rebuilt from the archived segment and stored" : "stored";
		if (st == PGBK_OK && resolve && walchg_cont_lsn(c) != WAL_INVALID_LSN)
		{
			WalChanges *whole = NULL;

			st = walchg_resolve(ctx.repo, ctx.ring, segname, &whole, &err);
			if (whole != NULL)
			{
				walchg_free(c);
				c = whole;
				source = "resolved with the next segment";
			}
		}
	}
	else
	{
		WalChanges *stored = NULL;
		PgbkError   lerr;

		source = "rebuilt from the archived segment";
		st = walchg_rebuild(ctx.repo, ctx.ring, segname, &c, &err);
		if (st == PGBK_OK)
		{
			pgbk_error_clear(&lerr);
			st = walchg_load(ctx.repo, ctx.ring, segname, &stored, &lerr);
			if (st == PGBK_NOT_FOUND)
			{
				st = walchg_store(ctx.repo, &ctx.params, segname, c, &err);
				source = "rebuilt from the archived segment and stored (there was none)";
			}
			else if (st == PGBK_OK && walchg_equal(stored, c))
				source = "rebuilt from the archived segment; identical to the stored summary";
			else if (st == PGBK_OK)
				st = pgbk_error(&err, PGBK_ERR_INTEGRITY,
				                "the stored change summary of \"%s\" differs from the one "
				                "rebuilt from the archived segment",
				                segname);
			else
				err = lerr;
			/* the rebuilt summary is printed even when the stored one is bad */
			if (st != PGBK_OK && c != NULL)
			{
				if (json)
					print_changes_json(segname, c, "rebuilt from the archived segment");
				else
					print_changes_text(segname, c, "rebuilt from the archived segment");
			}
			walchg_free(stored);
		}
	}
	if (st != PGBK_OK)
		rc = cli_fail(&err, "wal-changes");
	else if (json ? !print_changes_json(segname, c, source)
	              : (print_changes_text(segname, c, source), false))
		rc = EXIT_FAIL;
	walchg_free(c);
	cli_close(&ctx);
	return rc;
}

#define DEFAULT_PREFETCH  8
#define MAX_PREFETCH      64
#define MAX_FETCH_THREADS 16
#define SPOOL_DEFAULT     "pgbk_spool"
/* The prefetcher exits after this long without a new request. */
#define PREFETCH_IDLE_US INT64_C(30000000)
/* wal-fetch stops waiting for a prefetch that made no progress this long. */
#define SPOOL_STALL_US   INT64_C(10000000)
#define PREFETCH_POLL_MS 20
#define PREFETCH_NICE    10

static void
wal_fetch_usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgbk wal-fetch [--config FILE] [--prefetch N] [--spool DIR] NAME DEST\n"
	        "       pgbk wal-fetch [--spool DIR] --spool-cleanup\n"
	        "\n"
	        "Restore one archived WAL-area file into DEST.  For restore_command:\n"
	        "  restore_command = 'pgbk wal-fetch --config /etc/pgbk/pgbk.conf %%f %%p'\n"
	        "DEST is written only after the whole object decrypted and verified.\n"
	        "Exit 5 (and no DEST) when NAME is not in the repository.\n"
	        "\n"
	        "For a segment, a background prefetcher downloads the next N segments (default\n"
	        "%d, 0 disables) in parallel into the spool DIR (default ./%s, i.e. in the\n"
	        "data directory), so recovery does not wait on the repository for each one.\n"
	        "The spool holds at most N segments plus those being downloaded.  Without\n"
	        "--spool, prefetching happens only in a data directory being recovered.\n"
	        "--spool-cleanup stops the prefetcher and removes the spool (for\n"
	        "recovery_end_command).\n",
	        DEFAULT_PREFETCH, SPOOL_DEFAULT);
}

typedef struct FetchSink
{
	CodecDecoder *dec;
	PgbkBuf       out;
	int           fd;
	const char   *tmp_path;
} FetchSink;

/* Decoded content into the temporary file (the decoder hands it over in pieces too). */
static PgbkStatus
fetch_write(void *arg, const void *data, size_t len, PgbkError *err)
{
	FetchSink *fs = arg;

	return pgbk_write_all(fs->fd, data, len, fs->tmp_path, err);
}

static PgbkStatus
fetch_sink(void *arg, const void *data, size_t len, PgbkError *err)
{
	FetchSink *fs = arg;
	PgbkStatus st;

	pgbk_buf_reset(&fs->out);
	st = codec_decoder_update(fs->dec, data, len, &fs->out, err);
	if (st != PGBK_OK)
		return st;
	return fetch_write(fs, fs->out.data, fs->out.len, err);
}

/*
 * Fetch key into dest through tmp: stream, decode, verify, check that the
 * object is the one asked for (its authenticated name), (fsync,) rename.
 * Content beyond the limit for its kind (segsz: the segment size, 0 if not
 * known) is refused.  On any failure neither tmp nor dest is left behind.
 */
static PgbkStatus
fetch_via(Repo *repo, const PgbkKeyring *ring, const char *key, uint32_t segsz, const char *tmp,
          const char *dest, bool durable, PgbkError *err)
{
	FetchSink   fs;
	PgbkStatus  st;
	CodecHeader hdr;
	const char *name = layout_wal_name(key);

	memset(&fs, 0, sizeof(fs));
	fs.tmp_path = tmp;
	pgbk_buf_init(&fs.out);
	if ((st = codec_decoder_begin(ring, codec_wal_limit(name, segsz), &fs.dec, err)) != PGBK_OK)
		return st;
	codec_decoder_set_sink(fs.dec, fetch_write, &fs);
	fs.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fs.fd < 0)
	{
		st = pgbk_error(err, PGBK_ERR_IO, "could not create \"%s\": %s", tmp, strerror(errno));
		codec_decoder_free(fs.dec);
		return st;
	}
	st = repo_get_stream(repo, key, fetch_sink, &fs, err);
	if (st == PGBK_OK)
		st = codec_decoder_finish(fs.dec, &hdr, NULL, err);
	else
		codec_decoder_free(fs.dec);
	if (st == PGBK_OK)
		st = codec_check_name(&hdr, name, err);
	if (st == PGBK_OK && durable && fsync(fs.fd) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", tmp, strerror(errno));
	if (close(fs.fd) != 0 && st == PGBK_OK)
		st = pgbk_error(err, PGBK_ERR_IO, "could not close \"%s\": %s", tmp, strerror(errno));
	if (st == PGBK_OK && rename(tmp, dest) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not rename \"%s\" to \"%s\": %s", tmp, dest,
		                strerror(errno));
	if (st != PGBK_OK)
		unlink(tmp);
	pgbk_buf_free(&fs.out);
	return st;
}

PgbkStatus
cli_fetch_object(Repo *repo, const PgbkKeyring *ring, const char *key, uint32_t segsz,
                 const char *dest, PgbkError *err)
{
	size_t     n = strlen(dest) + 32;
	char      *tmp = malloc(n);
	PgbkStatus st;

	if (tmp == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	snprintf(tmp, n, "%s.pgbk-tmp.%d", dest, (int) getpid());
	st = fetch_via(repo, ring, key, segsz, tmp, dest, true, err);
	free(tmp);
	return st;
}

/* ------------------------------------------------------------------------
 * The spool
 * ------------------------------------------------------------------------
 */

typedef struct Spool
{
	char        dir[PATH_MAX];
	int         prefetch;
	const char *config;           /* as given (NULL: default), for the prefetcher */
	char        origin[PATH_MAX]; /* which configuration (repository) filled it */
} Spool;

static void
spool_file(const Spool *sp, const char *name, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", sp->dir, name);
}

static bool
file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Is a prefetcher running on this spool (holding its lock)? */
static bool
prefetcher_running(const Spool *sp)
{
	char path[PATH_MAX];
	int  fd;
	bool running;

	spool_file(sp, "prefetch.lock", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	running = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* also drops our lock, if we got it */
	return running;
}

/* Record the newest segment recovery asked for (atomically). */
static void
write_want(const Spool *sp, const char *name, uint32_t segsz)
{
	char path[PATH_MAX], tmp[PATH_MAX], line[64];
	int  fd, n;

	spool_file(sp, "want", path);
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int) getpid());
	n = snprintf(line, sizeof(line), "%s %u\n", name, segsz);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t) n) != n || close(fd) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

static bool
read_want(const Spool *sp, char *name, uint32_t *segsz)
{
	char  path[PATH_MAX], line[64];
	FILE *f;
	bool  ok;

	spool_file(sp, "want", path);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	ok = fgets(line, sizeof(line), f) != NULL && sscanf(line, "%24s %u", name, segsz) == 2 &&
	     walname_classify(name, NULL) == WAL_FILE_SEGMENT && walname_segsz_is_valid(*segsz);
	fclose(f);
	return ok;
}

/* Copy a file (rename across file systems); dest appears complete or not at all. */
static bool
copy_file(const char *src, const char *dest)
{
	char          tmp[PATH_MAX];
	unsigned char buf[65536];
	int           in, out;
	ssize_t       n;
	bool          ok = true;

	snprintf(tmp, sizeof(tmp), "%s.pgbk-tmp.%d", dest, (int) getpid());
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return false;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
	{
		close(in);
		return false;
	}
	while (ok && (n = read(in, buf, sizeof(buf))) != 0)
	{
		PgbkError err;

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ok = false;
			break;
		}
		ok = pgbk_write_all(out, buf, (size_t) n, tmp, &err) == PGBK_OK;
	}
	close(in);
	if (close(out) != 0)
		ok = false;
	if (ok && rename(tmp, dest) != 0)
		ok = false;
	if (!ok)
		unlink(tmp);
	return ok;
}

/*
 * Spool files are not fsync'd (nothing needs them after a crash, and the
 * writes compete with recovery's own I/O); instead the spool records the
 * kernel's boot id, and files from before a reboot, which may have lost
 * their content, are never handed over.  Without a boot id, fsync.
 */
static bool
current_boot_id(char *out, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	bool  ok;

	if (f == NULL)
		return false;
	ok = fgets(out, (int) len, f) != NULL && strlen(out) > 8;
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return ok;
}

/* Does the spool belong to this boot? */
static bool
spool_boot_ok(const Spool *sp)
{
	char  path[PATH_MAX], cur[64], have[64];
	FILE *f;
	bool  ok;

	if (!current_boot_id(cur, sizeof(cur)))
		return true; /* files were fsync'd */
	spool_file(sp, "boot_id", path);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	ok = fgets(have, sizeof(have), f) != NULL;
	fclose(f);
	have[strcspn(have, "\n")] = '\0';
	return ok && strcmp(have, cur) == 0;
}

/*
 * Was the spool filled from this configuration (this repository)?  A spool
 * shared by two repositories (two wal-fetch callers in one directory) must
 * never hand one repository's segment to the other.
 */
static bool
spool_origin_ok(const Spool *sp)
{
	char  path[PATH_MAX], have[PATH_MAX];
	FILE *f;
	bool  ok;

	spool_file(sp, "origin", path);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	ok = fgets(have, sizeof(have), f) != NULL;
	fclose(f);
	have[strcspn(have, "\n")] = '\0';
	return ok && strcmp(have, sp->origin) == 0;
}

static bool
spool_write_origin(const Spool *sp)
{
	char  path[PATH_MAX], tmp[PATH_MAX + 16];
	FILE *f;
	bool  ok;

	spool_file(sp, "origin", path);
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int) getpid());
	f = fopen(tmp, "w");
	if (f == NULL)
		return false;
	ok = fprintf(f, "%s\n", sp->origin) > 0;
	ok = fclose(f) == 0 && ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	return ok;
}

/* Record this boot's id in the spool; false if the files must be fsync'd. */
static bool
spool_write_boot_id(const Spool *sp)
{
	char path[PATH_MAX], tmp[PATH_MAX], cur[64];
	int  fd;
	bool ok;

	if (!current_boot_id(cur, sizeof(cur)))
		return false;
	if (spool_boot_ok(sp))
		return true;
	spool_file(sp, "boot_id", path);
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int) getpid());
	strcat(cur, "\n");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	ok = write(fd, cur, strlen(cur)) == (ssize_t) strlen(cur) && fsync(fd) == 0;
	ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	return ok;
}

/*
 * Take segment name from the spool into dest.  A file under its own name in
 * the spool is complete (the prefetcher renames only verified files); its
 * size must still be a valid segment size.
 */
static bool
take_from_spool(const Spool *sp, const char *name, const char *dest, uint32_t *segsz)
{
	char        path[PATH_MAX];
	struct stat st;
	spool_file(sp, name, path);
	if (stat(path, &st) != 0)
		return false;
	if (!S_ISREG(st.st_mode) || st.st_size > UINT32_MAX ||
	    !walname_segsz_is_valid((uint32_t) st.st_size) || !spool_boot_ok(sp) ||
	    !spool_origin_ok(sp))
	{
		unlink(path);
		return false;
	}
	*segsz = (uint32_t) st.st_size;
	if (rename(path, dest) == 0)
		return true;
	if (errno == EXDEV && copy_file(path, dest))
	{
		unlink(path);
		return true;
	}
	return false;
}

/*
 * Segment name is being prefetched: wait until it is in the spool, the
 * prefetch gives up, or it makes no progress for SPOOL_STALL_US.
 */
static bool
wait_for_spool(const Spool *sp, const char *name)
{
	char    path[PATH_MAX], part[PATH_MAX];
	int64_t last_progress = pgbk_now_us();
	off_t   last_size = -1;

	spool_file(sp, name, path);
	snprintf(part, sizeof(part), "%s.part", path);
	for (;;)
	{
		struct stat st;

		if (file_exists(path))
			return true;
		if (stat(part, &st) != 0)
			return file_exists(path);
		if (st.st_size != last_size)
		{
			last_size = st.st_size;
			last_progress = pgbk_now_us();
		}
		if (pgbk_now_us() - last_progress > SPOOL_STALL_US || !prefetcher_running(sp) ||
		    pgbk_interrupted())
			return file_exists(path);
		pgbk_sleep_ms(5);
	}
}

/* ------------------------------------------------------------------------
 * The prefetcher (a detached process)
 * ------------------------------------------------------------------------
 */

typedef enum SlotState
{
	SLOT_TODO = 0,
	SLOT_RUNNING,
	SLOT_DONE,
	SLOT_MISSING, /* not in the repository (yet) */
	SLOT_FAILED   /* wal-fetch will fetch it itself and report why */
} SlotState;

typedef struct Slot
{
	char      name[WALNAME_BUFLEN];
	uint32_t  tli;
	SlotState state;
} Slot;

typedef struct Prefetcher
{
	const Spool    *sp;
	CliContext      ctx;
	pthread_mutex_t lock;
	pthread_cond_t  work;
	bool            stop;
	int             nslots;
	Slot            slots[MAX_PREFETCH];
	bool            boot_id_ok; /* spool/boot_id written: no fsync needed */
	uint32_t        segsz;      /* of the window's segments */
	/* segments being downloaded, also those no longer in the window */
	int  nrunning;
	char running[MAX_FETCH_THREADS][WALNAME_BUFLEN];
} Prefetcher;

static void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on the prefetcher's stderr (the spool's prefetch.log). */
static void
plog(const char *fmt, ...)
{
	va_list ap;
	char    now[40];

	pgbk_time_format(pgbk_now_us(), PGBK_TIME_ISO, now, sizeof(now));
	fprintf(stderr, "%s pgbk prefetch[%d]: ", now, (int) getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* The next slot to download: TODO, and not after a missing one of its timeline. */
static Slot *
next_slot(Prefetcher *p)
{
	int i, j;

	for (i = 0; i < p->nslots; i++)
	{
		bool blocked = false;

		if (p->slots[i].state != SLOT_TODO)
			continue;
		for (j = 0; j < i; j++)
			if (p->slots[j].tli == p->slots[i].tli && p->slots[j].state == SLOT_MISSING)
				blocked = true;
		if (!blocked)
			return &p->slots[i];
	}
	return NULL;
}

static bool
is_running(const Prefetcher *p, const char *name)
{
	int i;

	for (i = 0; i < p->nrunning; i++)
		if (strcmp(p->running[i], name) == 0)
			return true;
	return false;
}

static void *
prefetch_worker(void *arg)
{
	Prefetcher *p = arg;
	Repo       *repo = NULL;
	PgbkError   err;

	pgbk_error_clear(&err);
	if (repo_open(p->ctx.cfg, &repo, &err) != PGBK_OK)
	{
		plog("could not open the repository: %s", err.msg);
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->stop)
	{
		Slot      *s = next_slot(p);
		char       name[WALNAME_BUFLEN], key[LAYOUT_KEY_LEN], tmp[PATH_MAX], dest[PATH_MAX];
		PgbkStatus st;
		int        i;
		uint32_t   segsz = p->segsz;

		if (s == NULL || p->nrunning >= MAX_FETCH_THREADS)
		{
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		s->state = SLOT_RUNNING;
		snprintf(name, sizeof(name), "%s", s->name);
		snprintf(p->running[p->nrunning++], WALNAME_BUFLEN, "%s", name);
		pthread_mutex_unlock(&p->lock);

		layout_wal_key(name, key, sizeof(key));
		spool_file(p->sp, name, dest);
		snprintf(tmp, sizeof(tmp), "%s.part", dest);
		st = fetch_via(repo, p->ctx.ring, key, segsz, tmp, dest, !p->boot_id_ok, &err);
		if (st != PGBK_OK && st != PGBK_NOT_FOUND && st != PGBK_ERR_INTERRUPTED)
			plog("could not prefetch %s: %s", name, err.msg);

		pthread_mutex_lock(&p->lock);
		for (i = 0; i < p->nrunning; i++)
			if (strcmp(p->running[i], name) == 0)
			{
				p->running[i][0] = '\0';
				memmove(p->running[i], p->running[p->nrunning - 1], WALNAME_BUFLEN);
				p->nrunning--;
				break;
			}
		for (i = 0; i < p->nslots; i++)
			if (strcmp(p->slots[i].name, name) == 0)
				p->slots[i].state = st == PGBK_OK          ? SLOT_DONE
				                    : st == PGBK_NOT_FOUND ? SLOT_MISSING
				                                           : SLOT_FAILED;
		pthread_cond_broadcast(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	repo_close(repo);
	codec_release_cache();
	return NULL;
}

/*
 * The timeline chain recovery follows, from the history files it fetched
 * (copies in the spool): the newest one whose history has timeline tli
 * still open at lsn.  NULL chain: stay on tli.
 */
static bool
spool_chain(const Spool *sp, uint32_t tli, WalLsn lsn, WalHistory *chain)
{
	DIR           *d = opendir(sp->dir);
	struct dirent *de;
	uint32_t       best = 0;

	chain->n = 0;
	chain->entries = NULL;
	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL)
	{
		WalFileName            f;
		char                   path[PATH_MAX];
		PgbkBuf                text;
		WalHistory             h;
		PgbkError              err;
		const WalHistoryEntry *e;

		if (walname_classify(de->d_name, &f) != WAL_FILE_HISTORY || f.tli <= tli || f.tli <= best)
			continue;
		spool_file(sp, de->d_name, path);
		pgbk_buf_init(&text);
		if (pgbk_read_file(path, &text, &err) == PGBK_OK &&
		    walname_parse_history((const char *) text.data, text.len, f.tli, &h, &err) == PGBK_OK)
		{
			e = walname_history_find(&h, tli);
			if (e != NULL && (e->end == WAL_INVALID_LSN || lsn < e->end))
			{
				walname_history_free(chain);
				*chain = h;
				best = f.tli;
			}
			else
				walname_history_free(&h);
		}
		pgbk_buf_free(&text);
	}
	closedir(d);
	return best != 0;
}

/* The window after segment want: rebuild the slots, clean the spool. */
static void
rebuild_window(Prefetcher *p, const char *want, uint32_t segsz)
{
	uint32_t       tli;
	WalSegNo       segno;
	WalHistory     chain;
	bool           have_chain;
	PgbkError      err;
	Slot           old[MAX_PREFETCH];
	int            nold = p->nslots, i, j;
	DIR           *d;
	struct dirent *de;

	if (walname_parse_segment(want, segsz, &tli, &segno, &err) != PGBK_OK)
		return;
	p->segsz = segsz;
	have_chain = spool_chain(p->sp, tli, walname_segno_to_lsn(segno, segsz), &chain);
	memcpy(old, p->slots, sizeof(Slot) * (size_t) nold);
	p->nslots = 0;
	for (i = 1; i <= p->sp->prefetch && i <= MAX_PREFETCH; i++)
	{
		Slot *s = &p->slots[p->nslots++];
		char  path[PATH_MAX];

		s->tli = have_chain ? plan_chain_tli_of_seg(&chain, segno + (WalSegNo) i, segsz, tli) : tli;
		walname_format_segment(s->name, s->tli, segno + (WalSegNo) i, segsz);
		spool_file(p->sp, s->name, path);
		s->state = is_running(p, s->name) ? SLOT_RUNNING
		           : file_exists(path)    ? SLOT_DONE
		                                  : SLOT_TODO;
		for (j = 0; j < nold; j++)
			if (strcmp(old[j].name, s->name) == 0 && old[j].state == SLOT_FAILED)
				s->state = SLOT_FAILED; /* do not hammer a bad object */
	}
	walname_history_free(&chain);

	/* stale files: segments outside the window, parts nobody writes */
	d = opendir(p->sp->dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
	{
		char   name[WALNAME_BUFLEN], path[PATH_MAX];
		size_t n = strlen(de->d_name);
		bool   part =
		    n == WALNAME_SEGMENT_LEN + 5 && strcmp(de->d_name + WALNAME_SEGMENT_LEN, ".part") == 0;
		bool keep = false;

		if (n != WALNAME_SEGMENT_LEN && !part)
			continue;
		snprintf(name, sizeof(name), "%.*s", WALNAME_SEGMENT_LEN, de->d_name);
		if (walname_classify(name, NULL) != WAL_FILE_SEGMENT)
			continue;
		if (is_running(p, name))
			keep = true;
		for (i = 0; i < p->nslots && !keep && !part; i++)
			if (strcmp(p->slots[i].name, name) == 0)
				keep = true;
		if (!keep)
		{
			spool_file(p->sp, de->d_name, path);
			unlink(path);
		}
	}
	closedir(d);
}

static void
redirect_fds(const Spool *sp)
{
	char path[PATH_MAX];
	int  fd, maxfd;

	fd = open("/dev/null", O_RDWR);
	if (fd >= 0)
	{
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	spool_file(sp, "prefetch.log", path);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0)
	{
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	/* nothing of PostgreSQL's (log pipe, sockets) stays open in here */
	maxfd = (int) sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (fd = STDERR_FILENO + 1; fd < maxfd; fd++)
		close(fd);
}

static int
prefetcher_main(const Spool *sp)
{
	Prefetcher    *p;
	pthread_t      threads[MAX_FETCH_THREADS];
	int            nthreads = sp->prefetch < MAX_FETCH_THREADS ? sp->prefetch : MAX_FETCH_THREADS;
	int            started = 0, i, lockfd;
	char           path[PATH_MAX], want[WALNAME_BUFLEN] = "", now_want[WALNAME_BUFLEN];
	uint32_t       segsz = 0, now_segsz;
	int64_t        last_change = pgbk_now_us();
	char           pidline[32];
	DIR           *d;
	struct dirent *de;

	redirect_fds(sp);
	spool_file(sp, "prefetch.lock", path);
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0)
		return 0; /* another prefetcher runs */
	snprintf(pidline, sizeof(pidline), "%d\n", (int) getpid());
	if (ftruncate(lockfd, 0) != 0 || write(lockfd, pidline, strlen(pidline)) < 0)
		plog("could not write %s", path);

	p = calloc(1, sizeof(Prefetcher));
	if (p == NULL)
		return 1;
	p->sp = sp;
	cli_quiet = true;
	if (cli_open(&p->ctx, sp->config) != EXIT_OK)
	{
		plog("could not open the configuration; not prefetching");
		free(p);
		return 1;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL); /*
	 * Files of an earlier boot may have lost their content: remove them
	 * before vouching for the spool with this boot's id.
	 */
	if (!spool_boot_ok(sp) || !spool_origin_ok(sp))
	{
		d = opendir(sp->dir);
		while (d && (de = readdir(d)) != NULL)
		{
			if (walname_classify(de->d_name, NULL) == WAL_FILE_SEGMENT)
			{
				spool_file(sp, de->d_name, path);
				unlink(path);
			}
		}
		if (d)
			closedir(d);
	}
	p->boot_id_ok = spool_write_boot_id(sp);
	if (!spool_write_origin(sp))
	{
		plog("could not record the spool's origin; not prefetching");
		free(p);
		return 1;
	}

	/* parts left by a prefetcher that died: we hold the lock now */
	d = opendir(sp->dir);
	while (d && (de = readdir(d)) != NULL)
	{
		size_t n = strlen(de->d_name);

		if (n > 5 && strcmp(de->d_name + n - 5, ".part") == 0)
		{
			spool_file(sp, de->d_name, path);
			unlink(path);
		}
	}
	if (d)
		closedir(d);

	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, prefetch_worker, p) == 0)
			started++;

	for (;;)
	{
		struct stat st;
		bool        idle;

		if (pgbk_interrupted() || stat(sp->dir, &st) != 0)
			break;
		if (read_want(sp, now_want, &now_segsz) &&
		    (strcmp(now_want, want) != 0 || now_segsz != segsz))
		{
			snprintf(want, sizeof(want), "%s", now_want);
			segsz = now_segsz;
			last_change = pgbk_now_us();
			pthread_mutex_lock(&p->lock);
			rebuild_window(p, want, segsz);
			pthread_cond_broadcast(&p->work);
			pthread_mutex_unlock(&p->lock);
		}
		pthread_mutex_lock(&p->lock);
		idle = p->nrunning == 0;
		pthread_mutex_unlock(&p->lock);
		if (idle && pgbk_now_us() - last_change > PREFETCH_IDLE_US)
			break;
		pgbk_sleep_ms(PREFETCH_POLL_MS);
	}

	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	cli_close(&p->ctx);
	free(p);
	close(lockfd);
	return 0;
}

/*
 * Start a prefetcher unless one runs.  Double fork: the child starts a new
 * session and exits at once (reaped here), the grandchild is the
 * prefetcher, re-parented to init, never a zombie of ours or PostgreSQL's.
 */
static void
ensure_prefetcher(const Spool *sp)
{
	pid_t pid;

	if (prefetcher_running(sp))
		return;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0)
	{
		if (setsid() < 0 || (pid = fork()) < 0)
			_exit(0);
		if (pid > 0)
			_exit(0);
		signal(SIGHUP, SIG_IGN);
		/*
		 * Below recovery's priority: replay is the critical path and often
		 * CPU-bound; decoding ahead of it should use the spare cycles.
		 */
		(void) setpriority(PRIO_PROCESS, 0, PREFETCH_NICE);
		_exit(prefetcher_main(sp));
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Stop the prefetcher and remove the spool. */
static int
spool_cleanup(const Spool *sp)
{
	char           path[PATH_MAX], line[32];
	DIR           *d;
	struct dirent *de;
	int            fd;
	int64_t        deadline;

	if (!file_exists(sp->dir))
		return EXIT_OK;
	spool_file(sp, "prefetch.lock", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0)
	{
		ssize_t n = pread(fd, line, sizeof(line) - 1, 0);
		pid_t   pid = n > 0 ? (pid_t) atol((line[n] = '\0', line)) : 0;

		if (pid > 1)
			kill(pid, SIGTERM);
		deadline = pgbk_now_us() + INT64_C(10000000);
		while (flock(fd, LOCK_EX | LOCK_NB) != 0 && pgbk_now_us() < deadline)
			pgbk_sleep_ms(20);
		if (flock(fd, LOCK_EX | LOCK_NB) != 0 && pid > 1)
			kill(pid, SIGKILL);
	}
	if (fd >= 0)
		close(fd);
	d = opendir(sp->dir);
	while (d && (de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		spool_file(sp, de->d_name, path);
		unlink(path);
	}
	if (d)
		closedir(d);
	if (rmdir(sp->dir) != 0 && errno != ENOENT)
	{
		cli_error("wal-fetch: could not remove the spool \"%s\": %s", sp->dir, strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int
cmd_wal_fetch(int argc, char **argv)
{
	enum
	{
		OPT_PREFETCH = 256,
		OPT_SPOOL,
		OPT_CLEANUP
	};
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"prefetch", required_argument, NULL, OPT_PREFETCH},
	                                     {"spool", required_argument, NULL, OPT_SPOOL},
	                                     {"spool-cleanup", no_argument, NULL, OPT_CLEANUP},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char                *spool_dir = NULL;
	const char                *name, *dest;
	char                       key[LAYOUT_KEY_LEN], want_name[WALNAME_BUFLEN];
	CliContext                 ctx;
	PgbkError                  err;
	PgbkStatus                 st;
	Spool                      sp;
	WalFileKind                kind;
	bool                       cleanup = false, use_spool;
	uint32_t                   segsz = 0;
	int                        c, rc;
	char                      *end;
	long                       n;

	memset(&sp, 0, sizeof(sp));
	sp.prefetch = DEFAULT_PREFETCH;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				sp.config = optarg;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				wal_fetch_usage(stdout);
				return EXIT_OK;
			case OPT_PREFETCH:
				n = strtol(optarg, &end, 10);
				if (*end != '\0' || end == optarg || n < 0 || n > MAX_PREFETCH)
				{
					cli_error("wal-fetch: --prefetch must be 0 to %d", MAX_PREFETCH);
					return EXIT_USAGE;
				}
				sp.prefetch = (int) n;
				break;
			case OPT_SPOOL:
				spool_dir = optarg;
				break;
			case OPT_CLEANUP:
				cleanup = true;
				break;
			default:
				wal_fetch_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (spool_dir && spool_dir[0] == '/')
		snprintf(sp.dir, sizeof(sp.dir), "%s", spool_dir);
	else
	{
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL)
			sp.prefetch = 0;
		else
			snprintf(sp.dir, sizeof(sp.dir), "%s/%s", cwd, spool_dir ? spool_dir : SPOOL_DEFAULT);
		/*
		 * Without --spool, prefetch only where PostgreSQL recovers: its
		 * restore_command runs in the data directory, which then holds
		 * recovery.signal or standby.signal.  Anywhere else (a shell, a
		 * script fetching from several repositories) there is no spool.
		 */
		if (spool_dir == NULL && access("recovery.signal", F_OK) != 0 &&
		    access("standby.signal", F_OK) != 0)
			sp.prefetch = 0;
	}
	{
		const char *cfgpath = sp.config ? sp.config : getenv("PGBK_CONFIG");
		char        real[PATH_MAX];

		if (cfgpath == NULL)
			cfgpath = DEFAULT_CONFIG;
		if (realpath(cfgpath, real) != NULL)
			snprintf(sp.origin, sizeof(sp.origin), "%s", real);
		else
			snprintf(sp.origin, sizeof(sp.origin), "%s", cfgpath);
	}
	if (cleanup)
	{
		if (argc != optind)
		{
			wal_fetch_usage(stderr);
			return EXIT_USAGE;
		}
		return spool_cleanup(&sp);
	}
	if (argc - optind != 2)
	{
		wal_fetch_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	dest = argv[optind + 1];
	kind = walname_classify(name, NULL);
	if (!layout_wal_key(name, key, sizeof(key)))
	{
		cli_error("wal-fetch: \"%s\" is not the name of a WAL segment, .partial, .backup or "
		          ".history file",
		          name);
		return EXIT_USAGE;
	}
	use_spool = sp.prefetch > 0 && (kind == WAL_FILE_SEGMENT || kind == WAL_FILE_HISTORY);
	if (use_spool && mkdir(sp.dir, 0700) != 0 && errno != EEXIST)
		use_spool = false;

	/* the fast path: the prefetcher already has it */
	if (use_spool && kind == WAL_FILE_SEGMENT)
	{
		char part[PATH_MAX];

		spool_file(&sp, name, part);
		strcat(part, ".part");
		if (take_from_spool(&sp, name, dest, &segsz) ||
		    (file_exists(part) && prefetcher_running(&sp) && wait_for_spool(&sp, name) &&
		     take_from_spool(&sp, name, dest, &segsz)))
		{
			write_want(&sp, name, segsz);
			ensure_prefetcher(&sp);
			return EXIT_OK;
		}
	}

	if ((rc = cli_open(&ctx, sp.config)) != EXIT_OK)
		return rc;
	pgbk_error_clear(&err);
	/* the segment size recovery uses, once a segment went through the spool */
	if (!use_spool || !read_want(&sp, want_name, &segsz))
		segsz = 0;
	st = cli_fetch_object(ctx.repo, ctx.ring, key, segsz, dest, &err);
	cli_close(&ctx);
	if (st == PGBK_NOT_FOUND)
	{
		cli_info("wal-fetch: \"%s\" is not in the repository", name);
		return EXIT_NOT_FOUND;
	}
	if (st != PGBK_OK)
	{
		char what[128];

		snprintf(what, sizeof(what), "wal-fetch of \"%s\"", name);
		return cli_fail(&err, what);
	}
	if (use_spool && kind == WAL_FILE_HISTORY)
	{
		/* the prefetcher follows the timelines recovery reads */
		char copy[PATH_MAX];

		spool_file(&sp, name, copy);
		copy_file(dest, copy);
	}
	else if (use_spool)
	{
		struct stat stt;

		if (stat(dest, &stt) == 0 && walname_segsz_is_valid((uint32_t) stt.st_size))
		{
			write_want(&sp, name, (uint32_t) stt.st_size);
			ensure_prefetcher(&sp);
		}
	}
	return EXIT_OK;
}
