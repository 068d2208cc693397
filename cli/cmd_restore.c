/*
 * cmd_restore.c
 *	  Program pgbk; uses cli.h, common/ plan, format (layout, manifests), files
 *	  (restic) and base, and pthreads.
 *	  pgbk restore: a base backup from the repository into a new data
 *	  directory, with the recovery settings that bring it to the target.
 *
 * Order of work, so that bad input changes nothing (DESIGN.md invariant 6):
 *	 1. check the options, the target directory (absent or empty) and the
 *		tablespace directories, find pg_ctl for --start;
 *	 2. plan from the repository alone (common/plan/plan.c): refuse an unreachable
 *		target with the planner's reason, exit 8;
 *	 3. only then create directories and download the files in parallel
 *		(one repository connection per thread), each decoded, checked against
 *		the manifest's size and content hash, written and fsync'd;
 *	 4. write backup_label, tablespace_map, the recovery settings and
 *		recovery.signal, and global/pg_control last of all, so that an
 *		interrupted restore never leaves a directory PostgreSQL would start;
 *	 5. fsync the directories, report, and with --start run pg_ctl and wait
 *		until recovery has finished and the server is promoted.
 * A failure in 3-4 removes what this run created.
 */
#define _GNU_SOURCE /* nftw's FTW_ flags, qsort_r */

#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/pgbk_time.h"
#include "format/chain.h"
#include "format/layout.h"
#include "format/manifest.h"
#include "files/files.h"
#include "plan/plan.h"

#define MAX_PARALLEL      64
#define MAX_TABLESPACES   256
#define PROGRESS_EVERY_MS 250

typedef struct TablespaceDest
{
	uint32_t oid;
	char    *dir;      /* absolute */
	bool     mapped;   /* given by --tablespace-map */
	bool     created;  /* this run created it */
	char    *made_top; /* the topmost of its parents this run created, or NULL */
} TablespaceDest;

typedef struct RestoreOpts
{
	const char *config;
	const char *to;
	PlanTarget  target;
	int         ntargets;
	int         parallel;
	bool        start;
	int         port;
	const char *log;
	const char *archive_config;
	const char *files_to;       /* --files-to: also restore the files scope */
	const char *files_snapshot; /* --files-snapshot: that restic snapshot */
	bool        dry_run;
	bool        recovery_buffers_off; /* --recovery-buffers off */
	uint64_t    recovery_buffers;     /* --recovery-buffers SIZE; 0 auto */
	int         nmaps;
	uint32_t    map_oid[MAX_TABLESPACES];
	const char *map_dir[MAX_TABLESPACES];
} RestoreOpts;

/* Everything one restore run holds. */
typedef struct Restore
{
	RestoreOpts   *o;
	CliContext     ctx;
	char           datadir[PATH_MAX];
	char           config_abs[PATH_MAX];
	char           archive_config_abs[PATH_MAX];
	char           pgbk_abs[PATH_MAX];
	char           pg_ctl[PATH_MAX];
	bool           created_datadir;
	bool           wrote_anything;
	Manifest      *m;     /* the newest manifest of the chain (chain->m[0]) */
	ManifestChain *chain; /* the backup and its parents down to a full */
	PlanResult     plan;
	int            nts;
	TablespaceDest ts[MAX_TABLESPACES];

	/* the download */
	pthread_mutex_t lock;
	pthread_cond_t  cond;
	int            *order; /* file indexes, biggest first */
	int             norder;
	int             next;
	int             running;
	bool            failed;
	PgbkError       first_err;
	uint64_t        bytes_total;
	uint64_t        bytes_done;
	uint64_t        stored_done;
	int             files_done;
	int64_t         started_us;
	char            files_id[128]; /* --files-to: the restic snapshot */

	/* shared_buffers for the replay ("" = the copy's own), and the copy's own */
	char     recovery_buffers[32];
	uint64_t own_buffers;

	/* configuration files the backup lacked, written by pgbk ("" if none) */
	char wrote_config[64];
	int  source_config; /* source config files written under pgbk_source_config/ */
} Restore;

static void
restore_usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgbk restore --config FILE --to DIR TARGET [OPTIONS]\n"
	        "       pgbk restore --config FILE --to DIR TARGET --files-to DIR2 [OPTIONS]\n"
	        "       pgbk restore --config FILE --files-to DIR2 TARGET      (files only)\n"
	        "       pgbk restore --config FILE --files-to DIR2 --files-snapshot ID\n"
	        "\n"
	        "Restore a base backup into DIR (absent or empty) with recovery settings that\n"
	        "bring it to TARGET when it starts.  Plans from the repository alone and\n"
	        "refuses an unreachable target before writing anything.  Without --to, only\n"
	        "the files scope (pgbk-watcher's restic snapshots) is restored, into DIR2.\n"
	        "\n"
	        "TARGET (exactly one):\n"
	        "  --target-time T        a moment: 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' (or a 'T'\n"
	        "                         between date and time), e.g. '2026-11-25 14:07',\n"
	        "                         '2026-11-25T14:07:30.25Z', '2026-11-25 14:07+01:00';\n"
	        "                         a zone is Z, +HH, +HHMM or +HH:MM (or -); local time\n"
	        "                         without one\n"
	        "  --target-lsn LSN       a WAL location (0/3000060)\n"
	        "  --target-name NAME     a restore point (pg_create_restore_point)\n"
	        "  --target latest        all archived WAL\n"
	        "  --target immediate     the end of the backup (the earliest consistent state)\n"
	        "\n"
	        "Options:\n"
	        "  --target-exclusive     stop just before the target (recovery_target_inclusive\n"
	        "                         = off; time and LSN targets)\n"
	        "  --target-timeline TLI  latest (default), current, or a number\n"
	        "  --backup ID            use this backup instead of choosing one\n"
	        "  --parallel N           download threads (default 4)\n"
	        "  --tablespace-map OID=DIR\n"
	        "                         restore tablespace OID into DIR (default:\n"
	        "                         DIR.tblspc/OID beside the data directory)\n"
	        "  --port P               port = P in the restored cluster\n"
	        "  --archive-config FILE  let the copy archive (archive_mode = on, archive_library\n"
	        "                         = 'pgbk') into the repository FILE describes: the\n"
	        "                         source's own (the copy's new timeline keeps its WAL\n"
	        "                         apart) or another one\n"
	        "  --start                start it (pg_ctl), wait until recovery has finished\n"
	        "                         and it is promoted, leave it running; PostgreSQL\n"
	        "                         does not run as root: run pgbk restore as the user\n"
	        "                         that is to own DIR (runuser -u postgres -- pgbk ...)\n"
	        "  --log FILE             server log for --start (default DIR/log/pgbk-start.log)\n"
	        "  --recovery-buffers SIZE|auto|off\n"
	        "                         shared_buffers for the replay only (pg_ctl -o; the\n"
	        "                         copy's configuration is not changed).  auto (the\n"
	        "                         default): the backup's size plus the WAL to replay,\n"
	        "                         at most 1/4 of the memory available; never below\n"
	        "                         the copy's own setting\n"
	        "  --dry-run              plan only: print what would be done\n"
	        "  --files-to DIR2        also restore the files scope (pgbk-watcher's restic\n"
	        "                         snapshots) as they were at TARGET into DIR2 (absent\n"
	        "                         or empty): the snapshot tagged with the restore\n"
	        "                         point for --target-name, else the newest taken at or\n"
	        "                         before the target time; without --to, files only\n"
	        "  --files-snapshot ID    restore this restic snapshot (full id or prefix)\n"
	        "\n"
	        "The restored cluster fetches WAL with restore_command = 'pgbk wal-fetch ...',\n"
	        "promotes at the target, and does not archive (archive_mode = off,\n"
	        "pgbk.config = '').  Exit 8 if DIR is not empty, the target is not\n"
	        "recoverable or --start is run as root; 5 if the file snapshot to restore is not\n"
	        "in the restic repository; 6 if a backup file fails verification.\n");
}

/* ------------------------------------------------------------------------
 * Small file helpers
 * ------------------------------------------------------------------------
 */

/* Write (or with append, add to) a small file and fsync it. */
/* Write len bytes to path (open flags: O_TRUNC, O_APPEND or O_EXCL), fsync'd. */
static PgbkStatus
write_bytes(const char *path, const void *data, size_t len, int flags, mode_t mode, PgbkError *err)
{
	int        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode);
	PgbkStatus st;

	if (fd < 0)
		return pgbk_error(err, PGBK_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
	st = pgbk_write_all(fd, data, len, path, err);
	if (st == PGBK_OK && fsync(fd) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", path, strerror(errno));
	if (close(fd) != 0 && st == PGBK_OK)
		st = pgbk_error(err, PGBK_ERR_IO, "could not close \"%s\": %s", path, strerror(errno));
	return st;
}

static PgbkStatus
write_small_file(const char *path, const char *text, bool append, mode_t mode, PgbkError *err)
{
	return write_bytes(path, text, strlen(text), append ? O_APPEND : O_TRUNC, mode, err);
}

/* Is path absent (*exists false) or an empty directory? */
static PgbkStatus
check_empty_dir(const char *path, bool *exists, bool *empty, PgbkError *err)
{
	struct stat    st;
	DIR           *d;
	struct dirent *de;

	*exists = false;
	*empty = true;
	if (lstat(path, &st) != 0)
	{
		if (errno == ENOENT)
			return PGBK_OK;
		return pgbk_error(err, PGBK_ERR_IO, "could not stat \"%s\": %s", path, strerror(errno));
	}
	*exists = true;
	if (!S_ISDIR(st.st_mode))
	{
		*empty = false;
		return PGBK_OK;
	}
	d = opendir(path);
	if (d == NULL)
		return pgbk_error(err, PGBK_ERR_IO, "could not open directory \"%s\": %s", path,
		                  strerror(errno));
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
		{
			*empty = false;
			break;
		}
	}
	closedir(d);
	return PGBK_OK;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Remove a tree (not following symlinks); keep_top leaves path itself. */
static void
remove_tree(const char *path, bool keep_top)
{
	DIR           *d;
	struct dirent *de;
	char           child[PATH_MAX];

	if (!keep_top)
	{
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return;
	}
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		nftw(child, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/*
 * The topmost ancestor of path that does not exist, which make_parents
 * would create (strdup'd), or NULL when every ancestor exists.
 */
static char *
missing_top(const char *path)
{
	char        buf[PATH_MAX];
	char       *slash, *top = NULL;
	struct stat st;

	snprintf(buf, sizeof(buf), "%s", path);
	while ((slash = strrchr(buf, '/')) != NULL && slash != buf)
	{
		*slash = '\0';
		if (stat(buf, &st) == 0)
			break;
		free(top);
		top = strdup(buf);
	}
	return top;
}

/* Remove path's parents up to top while they are empty directories. */
static void
remove_empty_parents(const char *path, const char *top)
{
	char  buf[PATH_MAX];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", path);
	while ((slash = strrchr(buf, '/')) != NULL && slash != buf)
	{
		*slash = '\0';
		if (rmdir(buf) != 0 || strcmp(buf, top) == 0)
			break;
	}
}

/* mkdir -p for the parents of path (mode 0700), not path itself. */
static PgbkStatus
make_parents(const char *path, PgbkError *err)
{
	char  buf[PATH_MAX];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++)
	{
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", buf,
			                  strerror(errno));
		*p = '/';
	}
	return PGBK_OK;
}

/* An absolute version of a path that may not exist yet (its parent must). */
static bool
absolute_path(const char *in, char *out, size_t outlen)
{
	char        parent[PATH_MAX], resolved[PATH_MAX];
	const char *slash;
	const char *base;
	size_t      n = strlen(in);

	while (n > 1 && in[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(parent))
		return false;
	memcpy(parent, in, n);
	parent[n] = '\0';
	if (realpath(parent, resolved) != NULL)
	{
		snprintf(out, outlen, "%s", resolved);
		return true;
	}
	slash = strrchr(parent, '/');
	if (slash == NULL)
	{
		base = parent;
		if (getcwd(resolved, sizeof(resolved)) == NULL)
			return false;
	}
	else
	{
		char dir[PATH_MAX];

		base = slash + 1;
		if (slash == parent)
			snprintf(dir, sizeof(dir), "/");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int) (slash - parent), parent);
		if (realpath(dir, resolved) == NULL)
			return false;
	}
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || base[0] == '\0')
		return false;
	return snprintf(out, outlen, "%s%s%s", resolved, strcmp(resolved, "/") == 0 ? "" : "/", base) <
	       (int) outlen;
}

/* A manifest path must stay inside the data directory. */
static bool
safe_relpath(const char *p)
{
	const char *c;

	if (p[0] == '\0' || p[0] == '/')
		return false;
	for (c = p; *c;)
	{
		size_t n = strcspn(c, "/");

		if ((n == 2 && strncmp(c, "..", 2) == 0) || (n == 1 && c[0] == '.') || n == 0)
			return false;
		c += n;
		if (*c == '/')
			c++;
	}
	return true;
}

/*
 * Where a data directory path goes: under a tablespace's directory for
 * pg_tblspc/<oid>/..., else under the data directory.  *is_ts_root for
 * "pg_tblspc/<oid>" itself (a symlink).
 */
static void
dest_path(const Restore *r, const char *rel, char *out, size_t outlen, bool *is_ts_root)
{
	int i;

	*is_ts_root = false;
	if (strncmp(rel, "pg_tblspc/", 10) == 0)
	{
		char    *end;
		uint32_t oid = (uint32_t) strtoul(rel + 10, &end, 10);

		if (end != rel + 10 && (*end == '/' || *end == '\0'))
		{
			for (i = 0; i < r->nts; i++)
			{
				if (r->ts[i].oid != oid)
					continue;
				if (*end == '\0')
				{
					*is_ts_root = true;
					snprintf(out, outlen, "%s/%s", r->datadir, rel);
				}
				else
					snprintf(out, outlen, "%s%s", r->ts[i].dir, end);
				return;
			}
		}
	}
	snprintf(out, outlen, "%s/%s", r->datadir, rel);
}

/* Files of a backup that a restore never writes from it. */
static bool
skipped_file(const char *rel)
{
	static const char *const names[] = {
	    "postmaster.pid", "postmaster.opts", "recovery.signal",   "standby.signal",
	    "backup_label",   "tablespace_map",  "global/pg_control", NULL};
	int i;

	for (i = 0; names[i]; i++)
		if (strcmp(rel, names[i]) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------
 * Downloading one file
 * ------------------------------------------------------------------------
 */

typedef struct FileSink
{
	Restore      *r;
	CodecDecoder *dec;
	PgbkBuf       out;
	int           fd;
	const char   *path;
	uint64_t      written;
	uint64_t      stored;
} FileSink;

/* Decoded content into the file (the decoder hands it over in pieces too). */
static PgbkStatus
file_write(void *arg, const void *data, size_t len, PgbkError *err)
{
	FileSink  *fs = arg;
	PgbkStatus st;

	if ((st = pgbk_write_all(fs->fd, data, len, fs->path, err)) != PGBK_OK)
		return st;
	fs->written += len;
	pthread_mutex_lock(&fs->r->lock);
	fs->r->bytes_done += len;
	pthread_mutex_unlock(&fs->r->lock);
	return PGBK_OK;
}

static PgbkStatus
file_sink(void *arg, const void *data, size_t len, PgbkError *err)
{
	FileSink  *fs = arg;
	PgbkStatus st;

	pgbk_buf_reset(&fs->out);
	if ((st = codec_decoder_update(fs->dec, data, len, &fs->out, err)) != PGBK_OK)
		return st;
	if ((st = file_write(fs, fs->out.data, fs->out.len, err)) != PGBK_OK)
		return st;
	fs->stored += len;
	pthread_mutex_lock(&fs->r->lock);
	fs->r->stored_done += len;
	pthread_mutex_unlock(&fs->r->lock);
	return PGBK_OK;
}

/*
 * Fetch backup file f into its place: decode (authenticates every frame),
 * then compare size and content hash with the manifest.  Errors name the
 * file.
 */
static PgbkStatus
restore_file(Restore *r, Repo *repo, const ManifestFile *f, PgbkError *err)
{
	char          key[LAYOUT_KEY_LEN], path[PATH_MAX];
	unsigned char hash[CODEC_HASH_BYTES];
	FileSink      fs;
	PgbkStatus    st;
	bool          ts_root;
	mode_t        mode = (f->mode & 0777) | 0600;

	if (!layout_backup_file_key(r->m->id, f->path, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_FORMAT, "backup file \"%s\": path too long", f->path);
	dest_path(r, f->path, path, sizeof(path), &ts_root);
	memset(&fs, 0, sizeof(fs));
	fs.r = r;
	fs.path = path;
	pgbk_buf_init(&fs.out);
	if ((st = make_parents(path, err)) != PGBK_OK)
		return st;
	fs.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fs.fd < 0)
		return pgbk_error(err, PGBK_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
	if (getenv("PGBK_DEBUG_RESTORE_OPENS"))
		fprintf(stderr, "pgbk: debug: open for write \"%s\" (whole copy)\n", path);
	/* the manifest is authenticated: no more content than it records */
	if ((st = codec_decoder_begin(r->ctx.ring, f->size, &fs.dec, err)) == PGBK_OK)
	{
		codec_decoder_set_sink(fs.dec, file_write, &fs);
		st = repo_get_stream(repo, key, file_sink, &fs, err);
		if (st == PGBK_OK)
			st = codec_decoder_finish(fs.dec, NULL, hash, err);
		else
			codec_decoder_free(fs.dec);
	}
	if (st == PGBK_OK && (fs.written != f->size || memcmp(hash, f->hash, CODEC_HASH_BYTES) != 0))
		st = pgbk_error(err, PGBK_ERR_INTEGRITY,
		                "its content does not match the manifest (%" PRIu64
		                " bytes, expected %" PRIu64 " with another hash)",
		                fs.written, f->size);
	if (st == PGBK_OK && fsync(fs.fd) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", path, strerror(errno));
	if (close(fs.fd) != 0 && st == PGBK_OK)
		st = pgbk_error(err, PGBK_ERR_IO, "could not close \"%s\": %s", path, strerror(errno));
	pgbk_buf_free(&fs.out);
	if (st == PGBK_NOT_FOUND)
		st = pgbk_error(err, PGBK_ERR_INTEGRITY, "its object \"%s\" is missing from the repository",
		                key);
	if (st != PGBK_OK)
	{
		unlink(path);
		return pgbk_error_prefix(err, "backup file \"%s\" of backup %s", f->path, r->m->id);
	}
	return PGBK_OK;
}

/* ------------------------------------------------------------------------
 * Rebuilding one file from a chain (full + incrementals)
 * ------------------------------------------------------------------------
 */

/* One backup's object streamed into the pieces of the file it serves. */
typedef struct PieceSink
{
	Restore          *r;
	CodecDecoder     *dec;
	PgbkBuf           out;
	int               fd;
	const char       *path;
	const ChainPiece *pieces; /* the file's pieces, all layers */
	size_t            npieces;
	int               layer;
	size_t            next; /* first piece of this layer not wholly written */
	uint64_t          pos;  /* content bytes seen */
	uint64_t          written;
} PieceSink;

static PgbkStatus
pwrite_all(int fd, const unsigned char *data, size_t len, uint64_t off, const char *path,
           PgbkError *err)
{
	while (len > 0)
	{
		ssize_t n = pwrite(fd, data, len, (off_t) off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pgbk_error(err, PGBK_ERR_IO, "could not write \"%s\": %s", path,
			                  n < 0 ? strerror(errno) : "no space written");
		data += n;
		len -= (size_t) n;
		off += (uint64_t) n;
	}
	return PGBK_OK;
}

/*
 * Decoded content [pos, pos + len) of this layer's object: the parts the
 * pieces take go to their place in the file; the rest (blocks a newer
 * backup replaced) is read for its hash only.  A layer's pieces ascend in
 * content offset as they do in file offset, so one cursor does.
 */
static PgbkStatus
piece_write(void *arg, const void *data, size_t len, PgbkError *err)
{
	PieceSink *ps = arg;
	uint64_t   lo = ps->pos, hi = ps->pos + len;
	size_t     i;
	PgbkStatus st;

	for (i = ps->next; i < ps->npieces; i++)
	{
		const ChainPiece *p = &ps->pieces[i];
		uint64_t          a, b;

		if (p->layer != ps->layer)
		{
			if (i == ps->next)
				ps->next = i + 1;
			continue;
		}
		if (p->src_offset >= hi)
			break;
		a = p->src_offset > lo ? p->src_offset : lo;
		b = p->src_offset + p->length < hi ? p->src_offset + p->length : hi;
		if (a < b)
		{
			if ((st = pwrite_all(ps->fd, (const unsigned char *) data + (a - lo), (size_t) (b - a),
			                     p->offset + (a - p->src_offset), ps->path, err)) != PGBK_OK)
				return st;
			ps->written += b - a;
			pthread_mutex_lock(&ps->r->lock);
			ps->r->bytes_done += b - a;
			pthread_mutex_unlock(&ps->r->lock);
		}
		if (p->src_offset + p->length <= hi && i == ps->next)
			ps->next = i + 1;
	}
	ps->pos = hi;
	return PGBK_OK;
}

static PgbkStatus
piece_sink(void *arg, const void *data, size_t len, PgbkError *err)
{
	PieceSink *ps = arg;
	PgbkStatus st;

	pgbk_buf_reset(&ps->out);
	if ((st = codec_decoder_update(ps->dec, data, len, &ps->out, err)) != PGBK_OK)
		return st;
	if ((st = piece_write(ps, ps->out.data, ps->out.len, err)) != PGBK_OK)
		return st;
	pthread_mutex_lock(&ps->r->lock);
	ps->r->stored_done += len;
	pthread_mutex_unlock(&ps->r->lock);
	return PGBK_OK;
}

/* Stream layer l's object of the file into its pieces; verify it whole. */
static PgbkStatus
restore_layer(Restore *r, Repo *repo, PieceSink *ps, const ManifestFile *lf, const char *id,
              PgbkError *err)
{
	char          key[LAYOUT_KEY_LEN];
	unsigned char hash[CODEC_HASH_BYTES];
	uint64_t      content = manifest_file_content_size(lf);
	PgbkStatus    st;

	if (!layout_backup_file_key(id, lf->path, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_FORMAT, "backup file \"%s\": path too long", lf->path);
	ps->pos = 0;
	ps->next = 0;
	if ((st = codec_decoder_begin(r->ctx.ring, content, &ps->dec, err)) != PGBK_OK)
		return st;
	codec_decoder_set_sink(ps->dec, piece_write, ps);
	st = repo_get_stream(repo, key, piece_sink, ps, err);
	if (st == PGBK_OK)
		st = codec_decoder_finish(ps->dec, NULL, hash, err);
	else
		codec_decoder_free(ps->dec);
	ps->dec = NULL;
	/* codec authentication above; the manifest's hash of the stored content here */
	if (st == PGBK_OK && (ps->pos != content || memcmp(hash, lf->hash, CODEC_HASH_BYTES) != 0))
		st = pgbk_error(err, PGBK_ERR_INTEGRITY,
		                "its content does not match the manifest (%" PRIu64
		                " bytes, expected %" PRIu64 " with another hash)",
		                ps->pos, content);
	if (st == PGBK_NOT_FOUND)
		st = pgbk_error(err, PGBK_ERR_INTEGRITY, "its object \"%s\" is missing from the repository",
		                key);
	return st;
}

/*
 * A file of an incremental: its pieces from the chain (chain.c), then each
 * backup's object streamed once into the one output file with pwrite; zero
 * runs stay holes (ftruncate gives the final size).  The file is opened
 * once and every byte written at most once: no temporary full copy.
 */
static PgbkStatus
restore_file_chain(Restore *r, Repo *repo, int fidx, PgbkError *err)
{
	const ManifestFile *f = &r->m->files[fidx];
	char                path[PATH_MAX];
	ChainFile           cf;
	PieceSink           ps;
	PgbkStatus          st;
	bool                ts_root;
	mode_t              mode = (f->mode & 0777) | 0600;
	int                 l;
	const char         *failed_id = r->m->id;

	if ((st = manifest_chain_file(r->chain, fidx, &cf, err)) != PGBK_OK)
		return st;
	dest_path(r, f->path, path, sizeof(path), &ts_root);
	memset(&ps, 0, sizeof(ps));
	ps.r = r;
	ps.path = path;
	ps.pieces = cf.pieces;
	ps.npieces = cf.npieces;
	pgbk_buf_init(&ps.out);
	if ((st = make_parents(path, err)) != PGBK_OK)
	{
		chain_file_free(&cf);
		return st;
	}
	ps.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (ps.fd < 0)
	{
		chain_file_free(&cf);
		return pgbk_error(err, PGBK_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
	}
	if (getenv("PGBK_DEBUG_RESTORE_OPENS"))
		fprintf(stderr, "pgbk: debug: open for write \"%s\" (%zu pieces)\n", path, cf.npieces);
	for (l = 0; l < r->chain->n && st == PGBK_OK; l++)
	{
		const ManifestFile *lf;
		size_t              i;

		for (i = 0; i < cf.npieces && cf.pieces[i].layer != l; i++)
			;
		if (i == cf.npieces)
			continue; /* nothing of this backup survives in the file */
		lf = l == 0 ? f : manifest_chain_find(r->chain, l, f->path);
		failed_id = r->chain->m[l]->id;
		ps.layer = l;
		if (lf == NULL)
			st = pgbk_error(err, PGBK_ERR, "the chain lost the file"); /* cannot happen */
		else
			st = restore_layer(r, repo, &ps, lf, failed_id, err);
	}
	if (st == PGBK_OK && ftruncate(ps.fd, (off_t) cf.size) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not set the size of \"%s\": %s", path,
		                strerror(errno));
	if (st == PGBK_OK)
	{
		/* the zero runs count as done too */
		pthread_mutex_lock(&r->lock);
		r->bytes_done += cf.size - ps.written;
		pthread_mutex_unlock(&r->lock);
	}
	if (st == PGBK_OK && fsync(ps.fd) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", path, strerror(errno));
	if (close(ps.fd) != 0 && st == PGBK_OK)
		st = pgbk_error(err, PGBK_ERR_IO, "could not close \"%s\": %s", path, strerror(errno));
	pgbk_buf_free(&ps.out);
	chain_file_free(&cf);
	if (st != PGBK_OK)
	{
		unlink(path);
		return pgbk_error_prefix(err, "backup file \"%s\" of backup %s", f->path, failed_id);
	}
	return PGBK_OK;
}

static void *
download_worker(void *arg)
{
	Restore   *r = arg;
	Repo      *repo = NULL;
	PgbkError  err;
	PgbkStatus st;

	pgbk_error_clear(&err);
	st = repo_open(r->ctx.cfg, &repo, &err);
	for (;;)
	{
		int idx = -1;

		pthread_mutex_lock(&r->lock);
		if (st != PGBK_OK && !r->failed)
		{
			r->failed = true;
			r->first_err = err;
		}
		if (!r->failed && r->next < r->norder && !pgbk_interrupted())
			idx = r->order[r->next++];
		pthread_mutex_unlock(&r->lock);
		if (idx < 0)
			break;
		if (r->chain->n > 1 && r->m->files[idx].has_blocks)
			st = restore_file_chain(r, repo, idx, &err);
		else
			st = restore_file(r, repo, &r->m->files[idx], &err);
		if (st == PGBK_OK)
		{
			pthread_mutex_lock(&r->lock);
			r->files_done++;
			pthread_mutex_unlock(&r->lock);
		}
	}
	repo_close(repo);
	codec_release_cache();
	pthread_mutex_lock(&r->lock);
	r->running--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int
cmp_size_desc(const void *a, const void *b, void *arg)
{
	const Manifest *m = arg;
	uint64_t        sa = m->files[*(const int *) a].size, sb = m->files[*(const int *) b].size;

	return sa < sb ? 1 : sa > sb ? -1 : 0;
}

static void
format_duration(double secs, char *buf, size_t len)
{
	long s = (long) (secs + 0.5);

	if (s >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
	else
		snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
}

/* One progress line on the terminal (\r, no newline). */
static void
show_progress(Restore *r, bool final)
{
	char     done[32], total[32], rate[32], eta[32];
	double   secs = (double) (pgbk_now_us() - r->started_us) / 1e6;
	uint64_t bd, bt;
	int      fd;
	double   bps;

	pthread_mutex_lock(&r->lock);
	bd = r->bytes_done;
	bt = r->bytes_total;
	fd = r->files_done;
	pthread_mutex_unlock(&r->lock);
	bps = secs > 0.2 ? (double) bd / secs : 0;
	plan_format_bytes(bd, done, sizeof(done));
	plan_format_bytes(bt, total, sizeof(total));
	plan_format_bytes((uint64_t) bps, rate, sizeof(rate));
	if (bps > 0 && bt > bd)
		format_duration((double) (bt - bd) / bps, eta, sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "-");
	fprintf(stderr, "\r  %s of %s (%.0f%%), %d of %d files, %s/s, ETA %s   %s", done, total,
	        bt ? 100.0 * (double) bd / (double) bt : 100.0, fd, r->norder, rate, eta,
	        final ? "\n" : "");
	fflush(stderr);
}

/* Download every file but global/pg_control, in parallel. */
static PgbkStatus
download_all(Restore *r, PgbkError *err)
{
	pthread_t threads[MAX_PARALLEL];
	int       nthreads = r->o->parallel;
	int       i, started = 0;
	bool      tty = isatty(STDERR_FILENO) && !cli_quiet;
	int64_t   last_shown = 0;

	r->order = malloc(sizeof(int) * (size_t) (r->m->nfiles + 1));
	if (r->order == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (i = 0; i < r->m->nfiles; i++)
	{
		if (skipped_file(r->m->files[i].path))
			continue;
		r->order[r->norder++] = i;
		r->bytes_total += r->m->files[i].size;
	}
	qsort_r(r->order, (size_t) r->norder, sizeof(int), cmp_size_desc, r->m);
	if (nthreads > r->norder)
		nthreads = r->norder > 0 ? r->norder : 1;
	r->started_us = pgbk_now_us();
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < nthreads; i++)
	{
		if (pthread_create(&threads[i], NULL, download_worker, r) != 0)
			break;
		started++;
		r->running++;
	}
	if (started == 0)
	{
		pthread_mutex_unlock(&r->lock);
		return pgbk_error(err, PGBK_ERR, "could not start download threads");
	}
	while (r->running > 0)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PROGRESS_EVERY_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		if (tty && pgbk_now_us() - last_shown >= PROGRESS_EVERY_MS * 1000)
		{
			pthread_mutex_unlock(&r->lock);
			show_progress(r, false);
			last_shown = pgbk_now_us();
			pthread_mutex_lock(&r->lock);
		}
	}
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (tty)
		show_progress(r, true);
	if (r->failed)
	{
		*err = r->first_err;
		return err->code;
	}
	if (pgbk_interrupted())
		return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
	return PGBK_OK;
}

/* ------------------------------------------------------------------------
 * Recovery settings
 * ------------------------------------------------------------------------
 */

/* A path for a shell command line: bare if harmless, else single-quoted. */
static void
shell_quote(PgbkBuf *b, const char *s)
{
	const char *p;
	bool        plain = s[0] != '\0';

	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("/._-+,:@=", *p)))
			plain = false;
	if (plain)
	{
		pgbk_buf_append_str(b, s);
		return;
	}
	pgbk_buf_append_str(b, "'");
	for (p = s; *p; p++)
	{
		if (*p == '\'')
			pgbk_buf_append_str(b, "'\\''");
		else
			pgbk_buf_append(b, p, 1);
	}
	pgbk_buf_append_str(b, "'");
}

/* restore_command expands %f, %p, %r and %%: escape our own '%'. */
static void
percent_escape(PgbkBuf *out, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '%')
			pgbk_buf_append_str(out, "%%");
		else
			pgbk_buf_append(out, s, 1);
	}
}

/* name = 'value' in postgresql.conf syntax. */
static void
conf_line(PgbkBuf *b, const char *name, const char *value)
{
	const char *p;

	pgbk_buf_printf(b, "%s = '", name);
	for (p = value; *p; p++)
	{
		if (*p == '\'')
			pgbk_buf_append_str(b, "''");
		else if (*p == '\\')
			pgbk_buf_append_str(b, "\\\\");
		else if (*p == '\n')
			pgbk_buf_append_str(b, "\\n");
		else if (*p == '\r')
			pgbk_buf_append_str(b, "\\r");
		else if ((unsigned char) *p < 0x20)
			pgbk_buf_printf(b, "\\%03o", (unsigned char) *p);
		else
			pgbk_buf_append(b, p, 1);
	}
	pgbk_buf_append_str(b, "'\n");
}

/* The pgbk command line for restore_command / recovery_end_command. */
static void
pgbk_command(const Restore *r, PgbkBuf *out, const char *tail)
{
	PgbkBuf q;

	pgbk_buf_init(&q);
	shell_quote(&q, r->pgbk_abs);
	pgbk_buf_append_str(&q, " wal-fetch --config ");
	shell_quote(&q, r->config_abs);
	pgbk_buf_append(&q, "", 1);
	percent_escape(out, (const char *) q.data);
	pgbk_buf_append_str(out, tail);
	pgbk_buf_free(&q);
}

static PgbkStatus
recovery_settings(const Restore *r, PgbkBuf *b, PgbkError *err)
{
	const PlanResult *p = &r->plan;
	PgbkBuf           cmd;
	char              now[PLAN_TIME_LEN];

	pgbk_buf_init(&cmd);
	plan_format_time(pgbk_now_us(), now, sizeof(now));
	pgbk_buf_printf(b, "\n# Recovery settings written by pgbk restore at %s (backup %s).\n", now,
	                r->m->id);
	if (r->o->archive_config)
		pgbk_buf_printf(b, "# This copy archives into the repository of %s.\n",
		                r->archive_config_abs);
	else
		pgbk_buf_append_str(b, "# archive_mode and pgbk.config are off: this copy does not "
		                       "archive unless you turn them on.\n");
	pgbk_command(r, &cmd, " %f %p");
	pgbk_buf_append(&cmd, "", 1);
	conf_line(b, "restore_command", (const char *) cmd.data);
	pgbk_buf_reset(&cmd);
	pgbk_command(r, &cmd, " --spool-cleanup");
	pgbk_buf_append(&cmd, "", 1);
	conf_line(b, "recovery_end_command", (const char *) cmd.data);
	pgbk_buf_free(&cmd);
	if (p->recovery_target_name[0])
		conf_line(b, p->recovery_target_name, p->recovery_target_value);
	if (p->recovery_target_name[0] && !p->recovery_target_inclusive)
		conf_line(b, "recovery_target_inclusive", "off");
	/*
	 * 'latest' unless the operator chose a timeline: PostgreSQL then follows
	 * the newest timeline whose history it finds, from the backup's, as the
	 * plan did (plan_newest_timeline() probes the same way), and the setting
	 * says what the operator asked for rather than what was found when the
	 * plan was made.
	 */
	if (r->o->target.tli_mode == PLAN_TLI_NUMBER)
		conf_line(b, "recovery_target_timeline", p->recovery_target_timeline);
	else
		conf_line(b, "recovery_target_timeline",
		          r->o->target.tli_mode == PLAN_TLI_CURRENT ? "current" : "latest");
	conf_line(b, "recovery_target_action", "promote");
	if (r->o->archive_config)
	{
		conf_line(b, "archive_mode", "on");
		conf_line(b, "archive_library", "pgbk");
		conf_line(b, "pgbk.config", r->archive_config_abs);
	}
	else
	{
		conf_line(b, "archive_mode", "off");
		conf_line(b, "pgbk.config", "");
	}
	if (r->o->port > 0)
		pgbk_buf_printf(b, "port = %d\n", r->o->port);
	if (b->data == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

/* tablespace_map with the new locations ('\n', '\r' and '\\' escaped). */
static void
tablespace_map_text(const Restore *r, PgbkBuf *b)
{
	int i;

	for (i = 0; i < r->nts; i++)
	{
		const char *p;

		pgbk_buf_printf(b, "%u ", r->ts[i].oid);
		for (p = r->ts[i].dir; *p; p++)
		{
			if (*p == '\n' || *p == '\r' || *p == '\\')
				pgbk_buf_append_str(b, "\\");
			pgbk_buf_append(b, p, 1);
		}
		pgbk_buf_append_str(b, "\n");
	}
}

/* ------------------------------------------------------------------------
 * Printing the plan
 * ------------------------------------------------------------------------
 */

static void
describe_target(const PlanTarget *t, char *buf, size_t len)
{
	char tb[PLAN_TIME_LEN], lb[WALNAME_LSN_BUFLEN];

	switch (t->kind)
	{
		case PLAN_TARGET_TIME:
			snprintf(buf, len, "time %s%s", plan_format_time(t->time_us, tb, sizeof(tb)),
			         t->exclusive ? " (exclusive)" : "");
			break;
		case PLAN_TARGET_LSN:
			snprintf(buf, len, "LSN %s%s", walname_format_lsn(lb, t->lsn),
			         t->exclusive ? " (exclusive)" : "");
			break;
		case PLAN_TARGET_NAME:
			snprintf(buf, len, "restore point \"%s\"", t->name);
			break;
		case PLAN_TARGET_IMMEDIATE:
			snprintf(buf, len, "immediate (the end of the backup)");
			break;
		default:
			snprintf(buf, len, "latest (all archived WAL)");
			break;
	}
}

static void
print_plan(const PlanView *v, const PlanTarget *t, const PlanResult *p)
{
	char a[64], b[64], c[PLAN_TIME_LEN], d[PLAN_REASON_LEN];

	describe_target(t, d, sizeof(d));
	printf("Plan (from %s):\n", v->description);
	printf("  target:      %s\n", d);
	if (p->have_backup)
		printf("  backup:      %s, ended %s (timeline %u, %s, %s stored)\n", p->backup.id,
		       plan_format_time(p->backup.stop_time_us, c, sizeof(c)), p->backup.timeline,
		       plan_format_bytes(p->backup.bytes, a, sizeof(a)),
		       plan_format_bytes(p->backup.stored_bytes, b, sizeof(b)));
	if (p->have_backup && p->backup.incremental)
	{
		char *chain = malloc(PLAN_CHAIN_MAX * (MANIFEST_ID_LEN + 8));

		if (chain)
			printf("  chain:       %s (incremental: %d backups restored together)\n",
			       plan_format_chain(p, chain, PLAN_CHAIN_MAX * (MANIFEST_ID_LEN + 8)),
			       p->chain_len);
		free(chain);
	}
	if (p->timeline)
		printf("  timeline:    %u\n", p->timeline);
	if (p->recoverable && p->have_wal)
		printf("  WAL:         %s .. %s (%" PRIu64 " segment%s, %s stored)\n", p->first_wal,
		       p->last_wal, p->nsegments, p->nsegments == 1 ? "" : "s",
		       plan_format_bytes(p->wal_bytes, a, sizeof(a)));
	if (p->recoverable && p->stop_time_us)
		printf("  stops at:    %s%s\n", plan_format_time(p->stop_time_us, c, sizeof(c)),
		       t->kind == PLAN_TARGET_TIME ? " (the first transaction end after the target)" : "");
	if (p->recoverable)
		printf("  recoverable: yes\n");
	else
		printf("  recoverable: no: %s\n", p->reason);
	if (p->note[0])
		printf("  note:        %s\n", p->note);
}

/* ------------------------------------------------------------------------
 * pg_ctl
 * ------------------------------------------------------------------------
 */

/*
 * Run argv, capture the first line of stdout (with_stderr: everything it
 * writes to stdout and stderr, as far as out holds); returns the exit status
 * or -1.
 */
static int
run_capture(char *const argv[], char *out, size_t outlen, bool with_stderr)
{
	int     pipefd[2];
	pid_t   pid;
	int     status;
	ssize_t n;
	size_t  got = 0;

	out[0] = '\0';
	/* close-on-exec: the server pg_ctl starts must not hold our pipe open */
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
	{
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0)
	{
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(pipefd[1], STDOUT_FILENO);
		if (with_stderr)
			dup2(pipefd[1], STDERR_FILENO);
		if (devnull >= 0)
		{
			dup2(devnull, STDIN_FILENO);
			if (!with_stderr)
				dup2(devnull, STDERR_FILENO);
		}
		close(pipefd[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (got + 1 < outlen && (n = read(pipefd[0], out + got, outlen - got - 1)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t) n;
	}
	out[got] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!with_stderr)
		out[strcspn(out, "\n")] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool
find_in_path(const char *prog, char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	const char *p;

	if (path == NULL)
		return false;
	for (p = path; *p;)
	{
		size_t n = strcspn(p, ":");

		if (n > 0 && (size_t) snprintf(out, outlen, "%.*s/%s", (int) n, p, prog) < outlen &&
		    access(out, X_OK) == 0)
			return true;
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}

/* Major version from "pg_ctl (PostgreSQL) 15.5 (Debian ...)"; 0 if unknown. */
static int
pg_ctl_major(const char *pg_ctl)
{
	char  line[256];
	char *argv[3];
	char *p;

	argv[0] = (char *) pg_ctl;
	argv[1] = "--version";
	argv[2] = NULL;
	if (run_capture(argv, line, sizeof(line), false) != 0)
		return 0;
	p = strstr(line, ") ");
	return p ? atoi(p + 2) : 0;
}

/*
 * pg_ctl of the backup's major version: from PATH, else pg_config --bindir.
 */
static bool
find_pg_ctl(int major, char *out, size_t outlen, char *why, size_t whylen)
{
	char path_ctl[PATH_MAX], cfg[PATH_MAX], bindir[PATH_MAX];
	int  v1 = 0, v2 = 0;

	if (find_in_path("pg_ctl", path_ctl, sizeof(path_ctl)))
	{
		v1 = pg_ctl_major(path_ctl);
		if (v1 == major)
		{
			snprintf(out, outlen, "%s", path_ctl);
			return true;
		}
	}
	if (find_in_path("pg_config", cfg, sizeof(cfg)))
	{
		char *argv[3] = {cfg, "--bindir", NULL};

		if (run_capture(argv, bindir, sizeof(bindir), false) == 0 && bindir[0] &&
		    (size_t) snprintf(out, outlen, "%s/pg_ctl", bindir) < outlen && access(out, X_OK) == 0)
		{
			v2 = pg_ctl_major(out);
			if (v2 == major)
				return true;
		}
	}
	if (v1 || v2)
		snprintf(why, whylen,
		         "no pg_ctl of PostgreSQL %d found (the backup is from PostgreSQL %d; found "
		         "version %d): put the right bin directory first in PATH",
		         major, major, v1 ? v1 : v2);
	else
		snprintf(why, whylen,
		         "pg_ctl not found in PATH nor in pg_config --bindir: put PostgreSQL %d's bin "
		         "directory in PATH",
		         major);
	return false;
}

/* Line n (1-based) of postmaster.pid, trimmed; false if not there. */
static bool
pidfile_line(const char *datadir, int n, char *out, size_t outlen)
{
	char  path[PATH_MAX], buf[1024];
	FILE *f;
	int   i;
	bool  ok = false;

	snprintf(path, sizeof(path), "%s/postmaster.pid", datadir);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	for (i = 1; fgets(buf, sizeof(buf), f) != NULL; i++)
	{
		if (i == n)
		{
			size_t len = strlen(buf);

			while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
				buf[--len] = '\0';
			snprintf(out, outlen, "%s", buf);
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok;
}

/* MemAvailable from /proc/meminfo in bytes; 0 if unknown. */
static uint64_t
memory_available(void)
{
	FILE              *f = fopen("/proc/meminfo", "r");
	char               line[128];
	unsigned long long kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t) kb * 1024;
}

/* "postgres -D DIR -C name" of the restored copy, in bytes for a size; false if unknown. */
static bool
copy_setting_bytes(Restore *r, const char *postgres, const char *name, uint64_t unit, uint64_t *out)
{
	char *argv[6];
	char  val[64];
	char *end;

	argv[0] = (char *) postgres;
	argv[1] = "-D";
	argv[2] = r->datadir;
	argv[3] = "-C";
	argv[4] = (char *) name;
	argv[5] = NULL;
	if (run_capture(argv, val, sizeof(val), false) != 0 || val[0] == '\0')
		return false;
	/* PostgreSQL 15 prints a count of the setting's unit ("32768"); allow "256MB" too */
	*out = strtoull(val, &end, 10);
	if (*end == '\0' && end != val)
	{
		*out *= unit;
		return true;
	}
	return config_parse_size(val, out);
}

/*
 * shared_buffers for the replay.  Replay is a single process, and once the
 * pages it touches do not fit in shared_buffers every new page costs it the
 * write of a dirty victim and a read.  Measured on 124 segments of pgbench
 * over a 450 MB database: 256MB gave a replay of 31 s with 14 s of system
 * time; 1GB gave 22 s with 1.3 s.  So the replay gets room for what the
 * backup holds plus what the WAL can add to it, within a quarter of the
 * memory available now, and never less than the copy's own setting.  It is
 * passed on the command line (pg_ctl -o), not written into the copy's
 * configuration: a stop and start brings back the copy's own setting
 * (pg_ctl restart keeps it: postmaster.opts holds the options).
 * Leaves r->recovery_buffers "" when there is nothing to raise or the
 * copy's setting cannot be read (postgres -C refuses to run as root, too).
 */
static void
choose_recovery_buffers(Restore *r)
{
	char     postgres[PATH_MAX], why[512];
	char    *slash;
	uint64_t block, own, want;

	r->recovery_buffers[0] = '\0';
	if (r->o->recovery_buffers_off)
		return;
	if (r->pg_ctl[0] == '\0' &&
	    !find_pg_ctl(r->m->pg_version_num / 10000, r->pg_ctl, sizeof(r->pg_ctl), why, sizeof(why)))
	{
		r->pg_ctl[0] = '\0';
		return;
	}
	snprintf(postgres, sizeof(postgres), "%s", r->pg_ctl);
	if ((slash = strrchr(postgres, '/')) == NULL ||
	    (size_t) (slash + 1 - postgres) + sizeof("postgres") > sizeof(postgres))
		return;
	strcpy(slash + 1, "postgres");
	if (access(postgres, X_OK) != 0 || !copy_setting_bytes(r, postgres, "block_size", 1, &block) ||
	    !copy_setting_bytes(r, postgres, "shared_buffers", block, &own))
		return;
	if (r->o->recovery_buffers > 0)
		want = r->o->recovery_buffers;
	else
	{
		uint64_t avail = memory_available();

		want = r->m->bytes + r->plan.nsegments * (uint64_t) r->m->wal_segment_size;
		if (want > avail / 4)
			want = avail / 4;
	}
	want = (want + (1 << 20) - 1) >> 20; /* MB */
	if (want << 20 <= own)
		return;
	snprintf(r->recovery_buffers, sizeof(r->recovery_buffers), "%" PRIu64 "MB", want);
	r->own_buffers = own;
}

/*
 * The cluster state in global/pg_control (ControlFileData.state, after the
 * system identifier and two version numbers), as pg_ctl promote -w reads
 * it; -1 if unreadable.  DB_IN_PRODUCTION is set once recovery, the
 * end-of-recovery checkpoint and recovery_end_command are done.
 */
#define PG_CONTROL_STATE_OFFSET 16
#define DB_IN_PRODUCTION        6

static int
control_state(const char *datadir)
{
	char    path[PATH_MAX];
	int     fd;
	int32_t state;

	snprintf(path, sizeof(path), "%s/global/pg_control", datadir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, &state, sizeof(state), PG_CONTROL_STATE_OFFSET) != (ssize_t) sizeof(state))
		state = -1;
	close(fd);
	return state;
}

/* The last lines of the server log that say what went wrong. */
static void
print_log_tail(const char *log)
{
	FILE *f = fopen(log, "r");
	char  lines[12][512];
	int   n = 0, i;
	char  buf[512];

	if (f == NULL)
		return;
	while (fgets(buf, sizeof(buf), f) != NULL)
	{
		snprintf(lines[n % 12], sizeof(lines[0]), "%s", buf);
		n++;
	}
	fclose(f);
	fprintf(stderr, "pgbk: the last lines of %s:\n", log);
	for (i = n > 12 ? n - 12 : 0; i < n; i++)
		fprintf(stderr, "  %s", lines[i % 12]);
}

/* The copy's own shared_buffers as PostgreSQL writes it: "1024 kB", "256MB". */
static const char *
own_setting(const Restore *r, char *buf, size_t len)
{
	if (r->own_buffers % (1 << 20) == 0)
		snprintf(buf, len, "%" PRIu64 "MB", r->own_buffers >> 20);
	else
		snprintf(buf, len, "%" PRIu64 " kB", r->own_buffers >> 10);
	return buf;
}

/* What the server wrote to log since byte offset from (at most the last len - 1 bytes). */
static void
log_since(const char *log, off_t from, char *buf, size_t len)
{
	int         fd = open(log, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t     n = 0;

	buf[0] = '\0';
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > from)
	{
		if (st.st_size - from > (off_t) len - 1)
			from = st.st_size - (off_t) (len - 1);
		n = pread(fd, buf, len - 1, from);
	}
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

/*
 * The server did not start with the raised shared_buffers, and its log says
 * why (not enough memory for shared memory): start it with its own setting
 * instead.  True if the caller should start it again.
 */
static bool
retry_without_buffers(Restore *r, const char *log, off_t log_start)
{
	char tail[8192], own[32];

	if (!r->recovery_buffers[0])
		return false;
	log_since(log, log_start, tail, sizeof(tail));
	if (strstr(tail, "shared memory") == NULL && strstr(tail, "shared_buffers") == NULL)
		return false;
	fprintf(stderr,
	        "pgbk: the restored cluster could not start with shared_buffers = %s (see %s); "
	        "starting it with its own setting (%s)\n",
	        r->recovery_buffers, log, own_setting(r, own, sizeof(own)));
	r->recovery_buffers[0] = '\0';
	return true;
}

/* After a failed start with raised shared_buffers: how to start without. */
static void
buffers_hint(const Restore *r)
{
	if (r->recovery_buffers[0])
		fprintf(stderr,
		        "pgbk: it was started with shared_buffers = %s for the replay; "
		        "--recovery-buffers off (or a smaller size) starts it with its own setting\n",
		        r->recovery_buffers);
}

/*
 * Start the restored cluster and wait until it has promoted (recovery.signal
 * gone, postmaster status "ready") or stopped.
 */
static int
start_and_wait(Restore *r, const char *log)
{
	char       *argv[11];
	char        out[4096], status[64], pidline[32], opt[64], own[32];
	int         rc;
	int64_t     deadline_pid;
	int64_t     started, last_said;
	pid_t       pid;
	bool        tty = isatty(STDERR_FILENO) && !cli_quiet;
	char        sig[PATH_MAX], why[128];
	off_t       log_start;
	struct stat lst;

again:
	log_start = stat(log, &lst) == 0 ? lst.st_size : 0;
	deadline_pid = pgbk_now_us() + INT64_C(60000000);
	started = pgbk_now_us();
	last_said = 0;
	pid = 0;
	argv[0] = r->pg_ctl;
	argv[1] = "-D";
	argv[2] = r->datadir;
	argv[3] = "-l";
	argv[4] = (char *) log;
	argv[5] = "-W";
	if (r->recovery_buffers[0])
	{
		snprintf(opt, sizeof(opt), "-c shared_buffers=%s", r->recovery_buffers);
		argv[6] = "-o";
		argv[7] = opt;
		argv[8] = "start";
		argv[9] = NULL;
		printf("Starting: %s -D %s -l %s -o '%s' start\n", r->pg_ctl, r->datadir, log, opt);
		printf("  (shared_buffers %s instead of its own %s for the replay; its configuration "
		       "is unchanged)\n",
		       r->recovery_buffers, own_setting(r, own, sizeof(own)));
	}
	else
	{
		argv[6] = "start";
		argv[7] = NULL;
		printf("Starting: %s -D %s -l %s start\n", r->pg_ctl, r->datadir, log);
	}
	fflush(stdout);
	rc = run_capture(argv, out, sizeof(out), true);
	if (rc != 0)
	{
		char *line, *save = NULL;

		/* pg_ctl's own reason, whatever it is ("cannot be run as root", ...) */
		if (rc < 0)
			cli_error("could not start the restored cluster: pg_ctl did not run or was "
			          "killed%s",
			          out[0] ? "; it said:" : "");
		else
			cli_error("could not start the restored cluster: pg_ctl exited with status %d%s", rc,
			          out[0] ? "; it said:" : " and said nothing");
		for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "  %s\n", line);
		if (stat(log, &lst) == 0 && lst.st_size > log_start)
			print_log_tail(log);
		return EXIT_FAIL;
	}
	snprintf(sig, sizeof(sig), "%s/recovery.signal", r->datadir);
	for (;;)
	{
		if (pid == 0 && pidfile_line(r->datadir, 1, pidline, sizeof(pidline)))
			pid = (pid_t) atol(pidline);
		if (pid == 0)
		{
			char tail[8192];

			/*
			 * A server that fails at once may remove postmaster.pid before we
			 * see it, or never write it: "postgres: could not access the
			 * server configuration file" comes before any log line.
			 */
			log_since(log, log_start, tail, sizeof(tail));
			if (strstr(tail, "FATAL:") != NULL || strstr(tail, "PANIC:") != NULL ||
			    strncmp(tail, "postgres: ", 10) == 0 || strstr(tail, "\npostgres: ") != NULL)
			{
				snprintf(why, sizeof(why), "the restored cluster did not start");
				goto failed;
			}
		}
		if (pid == 0 && pgbk_now_us() > deadline_pid)
		{
			snprintf(why, sizeof(why),
			         "the restored cluster did not start (no postmaster.pid after 60 s)");
			goto failed;
		}
		if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
		{
			if (tty)
				fputc('\n', stderr);
			snprintf(why, sizeof(why), "the restored cluster stopped during recovery");
			goto failed;
		}
		/* "ready" also means hot standby: pg_control says when it is promoted */
		if (pid > 0 && access(sig, F_OK) != 0 && control_state(r->datadir) == DB_IN_PRODUCTION &&
		    pidfile_line(r->datadir, 8, status, sizeof(status)) && strcmp(status, "ready") == 0)
			break;
		if (pgbk_interrupted())
		{
			if (tty)
				fputc('\n', stderr);
			cli_error("stopped waiting; the restored cluster is still running (pg_ctl -D %s "
			          "stop)",
			          r->datadir);
			return EXIT_FAIL;
		}
		if (tty && pgbk_now_us() - last_said > 1000000)
		{
			fprintf(stderr, "\r  recovering (%.0f s)   ", (double) (pgbk_now_us() - started) / 1e6);
			fflush(stderr);
			last_said = pgbk_now_us();
		}
		pgbk_sleep_ms(100);
	}
	if (tty)
		fputc('\n', stderr);
	pidfile_line(r->datadir, 4, out, sizeof(out));
	printf("The restored cluster has finished recovery and was promoted after %.1f s; it is "
	       "running (pid %d, port %s).\n",
	       (double) (pgbk_now_us() - started) / 1e6, (int) pid, out);
	if (r->recovery_buffers[0])
		printf("It runs with shared_buffers = %s until it is stopped; started again (pg_ctl stop, "
		       "then start) it has its own setting (%s).\n",
		       r->recovery_buffers, own_setting(r, own, sizeof(own)));
	printf("Stop it with: %s -D %s stop\n", r->pg_ctl, r->datadir);
	return EXIT_OK;

failed:
	if (retry_without_buffers(r, log, log_start))
		goto again;
	cli_error("%s", why);
	print_log_tail(log);
	buffers_hint(r);
	return EXIT_FAIL;
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------
 */

static int
parse_options(int argc, char **argv, RestoreOpts *o)
{
	enum
	{
		OPT_TO = 256,
		OPT_TTIME,
		OPT_TLSN,
		OPT_TNAME,
		OPT_TARGET,
		OPT_TEXCL,
		OPT_TTLI,
		OPT_BACKUP,
		OPT_PARALLEL,
		OPT_TSMAP,
		OPT_START,
		OPT_PORT,
		OPT_LOG,
		OPT_ARCHIVE,
		OPT_DRY,
		OPT_RECOVERY_BUFFERS,
		OPT_FILES_TO,
		OPT_FILES_SNAP
	};
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"to", required_argument, NULL, OPT_TO},
	    {"target-time", required_argument, NULL, OPT_TTIME},
	    {"target-lsn", required_argument, NULL, OPT_TLSN},
	    {"target-name", required_argument, NULL, OPT_TNAME},
	    {"target", required_argument, NULL, OPT_TARGET},
	    {"target-exclusive", no_argument, NULL, OPT_TEXCL},
	    {"target-timeline", required_argument, NULL, OPT_TTLI},
	    {"backup", required_argument, NULL, OPT_BACKUP},
	    {"parallel", required_argument, NULL, OPT_PARALLEL},
	    {"tablespace-map", required_argument, NULL, OPT_TSMAP},
	    {"start", no_argument, NULL, OPT_START},
	    {"port", required_argument, NULL, OPT_PORT},
	    {"log", required_argument, NULL, OPT_LOG},
	    {"archive-config", required_argument, NULL, OPT_ARCHIVE},
	    {"dry-run", no_argument, NULL, OPT_DRY},
	    {"recovery-buffers", required_argument, NULL, OPT_RECOVERY_BUFFERS},
	    {"files-to", required_argument, NULL, OPT_FILES_TO},
	    {"files-snapshot", required_argument, NULL, OPT_FILES_SNAP},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int       c;
	char     *end;
	PgbkError err;
	long      n;

	memset(o, 0, sizeof(*o));
	o->parallel = 4;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				o->config = optarg;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				restore_usage(stdout);
				return -1;
			case OPT_TO:
				o->to = optarg;
				break;
			case OPT_TTIME:
				o->ntargets++;
				o->target.kind = PLAN_TARGET_TIME;
				if (pgbk_time_parse(optarg, PGBK_TIME_INPUT, &o->target.time_us, &err) != PGBK_OK)
				{
					cli_error("restore: invalid --target-time \"%s\"", optarg);
					cli_error_detail(&err);
					return EXIT_USAGE;
				}
				break;
			case OPT_TLSN:
				o->ntargets++;
				o->target.kind = PLAN_TARGET_LSN;
				if (!walname_parse_lsn(optarg, &o->target.lsn))
				{
					cli_error("restore: invalid --target-lsn \"%s\" (expected X/X, e.g. 0/3000060)",
					          optarg);
					return EXIT_USAGE;
				}
				break;
			case OPT_TNAME:
				o->ntargets++;
				o->target.kind = PLAN_TARGET_NAME;
				if (optarg[0] == '\0' || strlen(optarg) >= sizeof(o->target.name))
				{
					cli_error("restore: --target-name must have 1 to %d bytes",
					          (int) sizeof(o->target.name) - 1);
					return EXIT_USAGE;
				}
				strcpy(o->target.name, optarg);
				break;
			case OPT_TARGET:
				o->ntargets++;
				if (strcmp(optarg, "latest") == 0)
					o->target.kind = PLAN_TARGET_LATEST;
				else if (strcmp(optarg, "immediate") == 0)
					o->target.kind = PLAN_TARGET_IMMEDIATE;
				else
				{
					cli_error("restore: --target must be latest or immediate, not \"%s\"", optarg);
					return EXIT_USAGE;
				}
				break;
			case OPT_TEXCL:
				o->target.exclusive = true;
				break;
			case OPT_TTLI:
				if (strcmp(optarg, "latest") == 0)
					o->target.tli_mode = PLAN_TLI_LATEST;
				else if (strcmp(optarg, "current") == 0)
					o->target.tli_mode = PLAN_TLI_CURRENT;
				else
				{
					n = strtol(optarg, &end, 10);
					if (*end != '\0' || end == optarg || n < 1 || n > (long) UINT32_MAX)
					{
						cli_error("restore: --target-timeline must be latest, current or a "
						          "timeline number, not \"%s\"",
						          optarg);
						return EXIT_USAGE;
					}
					o->target.tli_mode = PLAN_TLI_NUMBER;
					o->target.tli = (uint32_t) n;
				}
				break;
			case OPT_BACKUP:
				if (strlen(optarg) >= sizeof(o->target.backup_id) || strchr(optarg, '/'))
				{
					cli_error("restore: invalid backup id \"%s\"", optarg);
					return EXIT_USAGE;
				}
				strcpy(o->target.backup_id, optarg);
				break;
			case OPT_PARALLEL:
				n = strtol(optarg, &end, 10);
				if (*end != '\0' || n < 1 || n > MAX_PARALLEL)
				{
					cli_error("restore: --parallel must be 1 to %d", MAX_PARALLEL);
					return EXIT_USAGE;
				}
				o->parallel = (int) n;
				break;
			case OPT_TSMAP:
			{
				char *eq = strchr(optarg, '=');

				n = strtol(optarg, &end, 10);
				if (eq == NULL || end != eq || n <= 0 || n > (long) UINT32_MAX || eq[1] != '/' ||
				    o->nmaps == MAX_TABLESPACES)
				{
					cli_error("restore: --tablespace-map must be OID=/absolute/dir, not \"%s\"",
					          optarg);
					return EXIT_USAGE;
				}
				o->map_oid[o->nmaps] = (uint32_t) n;
				o->map_dir[o->nmaps] = eq + 1;
				o->nmaps++;
			}
			break;
			case OPT_START:
				o->start = true;
				break;
			case OPT_PORT:
				n = strtol(optarg, &end, 10);
				if (*end != '\0' || n < 1 || n > 65535)
				{
					cli_error("restore: invalid --port \"%s\"", optarg);
					return EXIT_USAGE;
				}
				o->port = (int) n;
				break;
			case OPT_LOG:
				o->log = optarg;
				break;
			case OPT_ARCHIVE:
				o->archive_config = optarg;
				break;
			case OPT_DRY:
				o->dry_run = true;
				break;
			case OPT_RECOVERY_BUFFERS:
				o->recovery_buffers_off = strcmp(optarg, "off") == 0;
				o->recovery_buffers = 0;
				if (!o->recovery_buffers_off && strcmp(optarg, "auto") != 0 &&
				    (!config_parse_size(optarg, &o->recovery_buffers) ||
				     o->recovery_buffers < 128 * 1024))
				{
					cli_error("restore: --recovery-buffers must be a size of at least 128kB (such "
					          "as 2GB), auto or off, not \"%s\"",
					          optarg);
					return EXIT_USAGE;
				}
				break;
			case OPT_FILES_TO:
				o->files_to = optarg;
				break;
			case OPT_FILES_SNAP:
				o->files_snapshot = optarg;
				break;
			default:
				restore_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind != argc)
	{
		cli_error("restore: unexpected argument \"%s\"", argv[optind]);
		return EXIT_USAGE;
	}
	if (o->to == NULL && o->files_to == NULL)
	{
		cli_error("restore: --to DIR is required (an absent or empty directory)");
		return EXIT_USAGE;
	}
	if (o->files_snapshot && o->files_to == NULL)
	{
		cli_error("restore: --files-snapshot goes with --files-to DIR");
		return EXIT_USAGE;
	}
	if (o->to == NULL && (o->files_snapshot != NULL || o->ntargets == 1))
		return EXIT_OK; /* files only */
	if (o->ntargets != 1)
	{
		cli_error("restore: give exactly one of --target-time, --target-lsn, --target-name and "
		          "--target latest|immediate");
		return EXIT_USAGE;
	}
	if (o->target.exclusive && o->target.kind != PLAN_TARGET_TIME &&
	    o->target.kind != PLAN_TARGET_LSN)
	{
		cli_error("restore: --target-exclusive applies to --target-time and --target-lsn only");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Tablespace destinations: mapped, or DIR.tblspc/<oid>; all absent or empty. */
static int
plan_tablespaces(Restore *r)
{
	int       i, j;
	PgbkError err;

	for (j = 0; j < r->o->nmaps; j++)
	{
		for (i = 0; i < r->m->ntablespaces; i++)
			if (r->m->tablespaces[i].oid == r->o->map_oid[j])
				break;
		if (i == r->m->ntablespaces)
		{
			cli_error("restore: backup %s has no tablespace with OID %u (--tablespace-map)",
			          r->m->id, r->o->map_oid[j]);
			return EXIT_USAGE;
		}
	}
	if (r->m->ntablespaces > MAX_TABLESPACES)
	{
		cli_error("restore: backup %s has more than %d tablespaces", r->m->id, MAX_TABLESPACES);
		return EXIT_FAIL;
	}
	for (i = 0; i < r->m->ntablespaces; i++)
	{
		TablespaceDest *t = &r->ts[r->nts];
		char            dir[PATH_MAX];
		bool            exists, empty;

		t->oid = r->m->tablespaces[i].oid;
		snprintf(dir, sizeof(dir), "%s.tblspc/%u", r->datadir, t->oid);
		for (j = 0; j < r->o->nmaps; j++)
			if (r->o->map_oid[j] == t->oid)
			{
				snprintf(dir, sizeof(dir), "%s", r->o->map_dir[j]);
				t->mapped = true;
			}
		t->dir = strdup(dir);
		if (t->dir == NULL)
			return EXIT_FAIL;
		r->nts++;
		pgbk_error_clear(&err);
		if (check_empty_dir(t->dir, &exists, &empty, &err) != PGBK_OK)
			return cli_fail(&err, "restore");
		if (!empty)
		{
			cli_error("restore: refusing to restore tablespace %u into \"%s\": it is not an empty "
			          "directory",
			          t->oid, t->dir);
			return EXIT_REFUSED;
		}
		if (strncmp(t->dir, r->datadir, strlen(r->datadir)) == 0 &&
		    t->dir[strlen(r->datadir)] == '/')
		{
			cli_error("restore: tablespace %u cannot go inside the data directory (\"%s\")", t->oid,
			          t->dir);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

/* Create the data directory tree and the tablespace links. */
static PgbkStatus
create_tree(Restore *r, PgbkError *err)
{
	int i;

	for (i = 0; i < r->nts; i++)
	{
		TablespaceDest *t = &r->ts[i];
		bool            exists, empty;
		PgbkStatus      st;

		if ((st = check_empty_dir(t->dir, &exists, &empty, err)) != PGBK_OK)
			return st;
		if (!exists)
		{
			t->made_top = missing_top(t->dir);
			if ((st = make_parents(t->dir, err)) != PGBK_OK)
				return st;
			if (mkdir(t->dir, 0700) != 0)
				return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", t->dir,
				                  strerror(errno));
			t->created = true;
		}
	}
	for (i = 0; i < r->m->ndirs; i++)
	{
		const ManifestDir *d = &r->m->dirs[i];
		char               path[PATH_MAX];
		bool               ts_root;

		if (!safe_relpath(d->path))
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "manifest of backup %s names a directory outside the data "
			                  "directory: \"%s\"",
			                  r->m->id, d->path);
		dest_path(r, d->path, path, sizeof(path), &ts_root);
		if (ts_root)
			continue; /* a link, made below */
		if (make_parents(path, err) != PGBK_OK)
			return err->code;
		if (mkdir(path, (d->mode & 0777) | 0700) != 0 && errno != EEXIST)
			return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", path,
			                  strerror(errno));
	}
	for (i = 0; i < r->m->nfiles; i++)
		if (!safe_relpath(r->m->files[i].path))
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "manifest of backup %s names a file outside the data directory: "
			                  "\"%s\"",
			                  r->m->id, r->m->files[i].path);
	for (i = 0; i < r->nts; i++)
	{
		char link[PATH_MAX];

		snprintf(link, sizeof(link), "%s/pg_tblspc", r->datadir);
		if (mkdir(link, 0700) != 0 && errno != EEXIST)
			return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", link,
			                  strerror(errno));
		snprintf(link, sizeof(link), "%s/pg_tblspc/%u", r->datadir, r->ts[i].oid);
		if (symlink(r->ts[i].dir, link) != 0)
			return pgbk_error(err, PGBK_ERR_IO, "could not create symbolic link \"%s\": %s", link,
			                  strerror(errno));
	}
	/* directories PostgreSQL needs even if the backup did not list them */
	{
		static const char *const need[] = {"pg_wal", "pg_wal/archive_status", "global", NULL};
		char                     path[PATH_MAX];

		for (i = 0; need[i]; i++)
		{
			snprintf(path, sizeof(path), "%s/%s", r->datadir, need[i]);
			if (mkdir(path, 0700) != 0 && errno != EEXIST)
				return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", path,
				                  strerror(errno));
		}
	}
	return PGBK_OK;
}

static int
fsync_dir_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) ftw;
	if (flag == FTW_D || flag == FTW_DP)
	{
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || fsync(fd) != 0)
		{
			if (fd >= 0)
				close(fd);
			return 1;
		}
		close(fd);
	}
	return 0;
}

/*
 * Settings this restore decides; earlier lines for them in the backup's
 * postgresql.auto.conf go (a backup of a copy restored by pgbk still has
 * that restore's recovery_target_name, say: two recovery targets are an
 * error).
 */
static bool
our_setting(const Restore *r, const char *line)
{
	static const char *const names[] = {"restore_command",
	                                    "recovery_end_command",
	                                    "recovery_target",
	                                    "recovery_target_time",
	                                    "recovery_target_lsn",
	                                    "recovery_target_name",
	                                    "recovery_target_xid",
	                                    "recovery_target_inclusive",
	                                    "recovery_target_timeline",
	                                    "recovery_target_action",
	                                    "archive_mode",
	                                    "archive_library",
	                                    "archive_command",
	                                    "pgbk.config",
	                                    NULL};
	const char              *p = line;
	size_t                   n;
	int                      i;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "# Recovery settings written by pgbk restore", 43) == 0 ||
	    strncmp(p, "# archive_mode and pgbk.config are off", 38) == 0 ||
	    strncmp(p, "# This copy archives into", 25) == 0)
		return true;
	n = strcspn(p, " \t=");
	for (i = 0; names[i]; i++)
		if (strlen(names[i]) == n && strncasecmp(p, names[i], n) == 0)
			return true;
	return r->o->port > 0 && n == 4 && strncasecmp(p, "port", 4) == 0;
}

/*
 * postgresql.auto.conf: the backup's, without the settings above, then
 * ours; written to a temporary file and renamed into place.
 */
static PgbkStatus
write_auto_conf(const Restore *r, PgbkError *err)
{
	char       path[PATH_MAX], tmp[PATH_MAX];
	PgbkBuf    old, b;
	PgbkStatus st;

	snprintf(path, sizeof(path), "%s/postgresql.auto.conf", r->datadir);
	snprintf(tmp, sizeof(tmp), "%s.pgbk-tmp", path);
	pgbk_buf_init(&old);
	pgbk_buf_init(&b);
	st = pgbk_read_file(path, &old, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_buf_append_str(&b, "# Do not edit this file manually!\n"
		                        "# It will be overwritten by the ALTER SYSTEM command.\n");
		pgbk_error_clear(err);
		st = PGBK_OK;
	}
	else if (st == PGBK_OK)
	{
		char *line = (char *) old.data;

		pgbk_buf_append(&old, "", 1);
		while (line && *line)
		{
			char  *nl = strchr(line, '\n');
			size_t len = nl ? (size_t) (nl - line) + 1 : strlen(line);

			if (!our_setting(r, line))
				pgbk_buf_append(&b, line, len);
			line = nl ? nl + 1 : NULL;
		}

		/* no blank lines piling up at the end */
		while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
			b.len--;
		if (b.len > 0)
			pgbk_buf_append_str(&b, "\n");
	}
	if (st == PGBK_OK)
		st = recovery_settings(r, &b, err);
	if (st == PGBK_OK)
	{
		pgbk_buf_append(&b, "", 1);
		st = write_small_file(tmp, (const char *) b.data, false, 0600, err);
	}
	if (st == PGBK_OK && rename(tmp, path) != 0)
		st = pgbk_error(err, PGBK_ERR_IO, "could not rename \"%s\" to \"%s\": %s", tmp, path,
		                strerror(errno));
	pgbk_buf_free(&old);
	pgbk_buf_free(&b);
	return st;
}

/*
 * A source that keeps its configuration outside the data directory (Debian's
 * packages: /etc/postgresql/15/main) leaves postgresql.conf, pg_hba.conf and
 * pg_ident.conf out of its backups, and PostgreSQL does not start without
 * them.  Write minimal ones where the backup had none: PostgreSQL's defaults,
 * hot_standby off (hot standby needs max_connections and four other settings
 * at least as high as the source's, which a default may not be; the replay
 * does not need it), local connections only (Debian's default rules), and
 * pgbk preloaded when the copy archives.  postgresql.auto.conf, which does
 * live in the data directory, still applies on top.
 */
static PgbkStatus
write_missing_config(Restore *r, PgbkError *err)
{
	static const char *names[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"};
	char               path[PATH_MAX];
	PgbkBuf            b;
	PgbkStatus         st = PGBK_OK;
	size_t             i;

	r->wrote_config[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]) && st == PGBK_OK; i++)
	{
		snprintf(path, sizeof(path), "%s/%s", r->datadir, names[i]);
		if (access(path, F_OK) == 0)
			continue;
		pgbk_buf_init(&b);
		pgbk_buf_printf(&b,
		                "# %s written by pgbk restore: backup %s holds none (its source keeps\n"
		                "# its configuration outside the data directory).  Copy the source's\n"
		                "# settings here as needed.\n",
		                names[i], r->m->id);
		if (i == 0)
		{
			pgbk_buf_append_str(&b,
			                    "\n# PostgreSQL's defaults apply, and postgresql.auto.conf.  Hot "
			                    "standby needs\n# max_connections and others at least as high "
			                    "as the source's; the\n# replay does not need it.\n"
			                    "hot_standby = off\n");
			if (r->o->archive_config)
				pgbk_buf_append_str(&b, "shared_preload_libraries = 'pgbk'\n");
		}
		else if (i == 1)
			pgbk_buf_append_str(&b, "\n# local connections only\n"
			                        "local   all   all                 peer\n"
			                        "host    all   all   127.0.0.1/32  scram-sha-256\n"
			                        "host    all   all   ::1/128       scram-sha-256\n");
		pgbk_buf_append(&b, "", 1);
		st = b.data ? write_small_file(path, (const char *) b.data, false, 0600, err)
		            : pgbk_error(err, PGBK_ERR, "out of memory");
		pgbk_buf_free(&b);
		if (st == PGBK_OK)
			snprintf(r->wrote_config + strlen(r->wrote_config),
			         sizeof(r->wrote_config) - strlen(r->wrote_config), "%s%s",
			         r->wrote_config[0] ? ", " : "", names[i]);
	}
	return st;
}

#define SOURCE_CONFIG_DIR "pgbk_source_config"

/*
 * The source's configuration files that lived outside its data directory
 * (the manifest keeps them, see manifest.h) go to DIR/pgbk_source_config/
 * under their source path, for the operator to take settings from.  The
 * copy never reads them: their paths (data_directory, hba_file, include_dir)
 * point at the source.
 */
static PgbkStatus
write_source_config(Restore *r, PgbkError *err)
{
	char       path[PATH_MAX];
	PgbkStatus st = PGBK_OK;
	int        i;

	for (i = 0; i < r->m->nconfig && st == PGBK_OK; i++)
	{
		const ManifestConfigFile *c = &r->m->config[i];

		if (c->path[0] != '/' || strstr(c->path, "/../") != NULL ||
		    strstr(c->path, "/./") != NULL || strstr(c->path, "//") != NULL)
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "manifest of backup %s: unexpected configuration file path \"%s\"",
			                  r->m->id, c->path);
		if ((size_t) snprintf(path, sizeof(path), "%s/" SOURCE_CONFIG_DIR "%s", r->datadir,
		                      c->path) >= sizeof(path))
			return pgbk_error(err, PGBK_ERR_USAGE, "path too long: \"%s\"", c->path);
		/* parents, then the file (never over an existing one) */
		st = make_parents(path, err);
		if (st == PGBK_OK)
			st = write_bytes(path, c->data, c->len, O_EXCL, 0600, err);
		if (st == PGBK_OK)
			r->source_config++;
	}
	return st;
}

/* The files after the download: labels, settings, signal, pg_control. */
static PgbkStatus
finish_files(Restore *r, PgbkError *err)
{
	char       path[PATH_MAX];
	PgbkBuf    b;
	PgbkStatus st;
	int        i;
	Repo      *repo = r->ctx.repo;

	if (r->m->backup_label == NULL)
		return pgbk_error(err, PGBK_ERR_FORMAT, "manifest of backup %s has no backup_label",
		                  r->m->id);
	snprintf(path, sizeof(path), "%s/backup_label", r->datadir);
	if ((st = write_small_file(path, r->m->backup_label, false, 0600, err)) != PGBK_OK)
		return st;
	if (r->nts > 0)
	{
		pgbk_buf_init(&b);
		tablespace_map_text(r, &b);
		pgbk_buf_append(&b, "", 1);
		snprintf(path, sizeof(path), "%s/tablespace_map", r->datadir);
		st = b.data ? write_small_file(path, (const char *) b.data, false, 0600, err)
		            : pgbk_error(err, PGBK_ERR, "out of memory");
		pgbk_buf_free(&b);
		if (st != PGBK_OK)
			return st;
	}
	if ((st = write_auto_conf(r, err)) != PGBK_OK)
		return st;
	if ((st = write_missing_config(r, err)) != PGBK_OK)
		return st;
	if ((st = write_source_config(r, err)) != PGBK_OK)
		return st;
	snprintf(path, sizeof(path), "%s/recovery.signal", r->datadir);
	if ((st = write_small_file(path, "", false, 0600, err)) != PGBK_OK)
		return st;

	/* directories durable before pg_control makes the tree startable */
	if (nftw(r->datadir, fsync_dir_cb, 16, FTW_PHYS) != 0)
		return pgbk_error(err, PGBK_ERR_IO, "could not fsync the directories of \"%s\"",
		                  r->datadir);
	for (i = 0; i < r->nts; i++)
		if (nftw(r->ts[i].dir, fsync_dir_cb, 16, FTW_PHYS) != 0)
			return pgbk_error(err, PGBK_ERR_IO, "could not fsync the directories of \"%s\"",
			                  r->ts[i].dir);

	for (i = 0; i < r->m->nfiles; i++)
		if (strcmp(r->m->files[i].path, "global/pg_control") == 0)
			break;
	if (i == r->m->nfiles)
		return pgbk_error(err, PGBK_ERR_FORMAT, "backup %s has no global/pg_control", r->m->id);
	if ((st = restore_file(r, repo, &r->m->files[i], err)) != PGBK_OK)
		return st;
	r->files_done++;
	snprintf(path, sizeof(path), "%s/global", r->datadir);
	if ((st = pgbk_fsync_path(path, true, err)) != PGBK_OK)
		return st;
	return PGBK_OK;
}

/* Undo what a failed run wrote. */
static void
cleanup_failed(Restore *r)
{
	int i;

	if (!r->wrote_anything)
		return;
	remove_tree(r->datadir, !r->created_datadir);
	for (i = 0; i < r->nts; i++)
		if (r->ts[i].created)
			remove_tree(r->ts[i].dir, false);
		else
			remove_tree(r->ts[i].dir, true);
	/* the parents made for them (DIR.tblspc), once every one is gone */
	for (i = 0; i < r->nts; i++)
		if (r->ts[i].made_top)
			remove_empty_parents(r->ts[i].dir, r->ts[i].made_top);
	cli_error("restore: removed the partial restore from \"%s\"", r->datadir);
}

static void
print_result(Restore *r, const char *log)
{
	char      a[32], b[32], c[32];
	double    secs = (double) (pgbk_now_us() - r->started_us) / 1e6;
	PgbkBuf   s;
	PgbkError err;
	int       i;

	printf(
	    "Restored %d files (%s, %s stored) of backup %s into %s in %.1f s (%s/s).\n", r->files_done,
	    plan_format_bytes(r->bytes_done, a, sizeof(a)),
	    plan_format_bytes(r->stored_done, b, sizeof(b)), r->m->id, r->datadir, secs,
	    plan_format_bytes(secs > 0 ? (uint64_t) ((double) r->bytes_done / secs) : 0, c, sizeof(c)));
	for (i = 0; i < r->nts; i++)
		printf("Tablespace %u restored into %s (link pg_tblspc/%u).\n", r->ts[i].oid, r->ts[i].dir,
		       r->ts[i].oid);
	pgbk_buf_init(&s);
	pgbk_error_clear(&err);
	if (recovery_settings(r, &s, &err) == PGBK_OK)
	{
		pgbk_buf_append(&s, "", 1);
		printf("Recovery settings written to %s/postgresql.auto.conf:%s", r->datadir,
		       (const char *) s.data);
	}
	pgbk_buf_free(&s);
	if (r->wrote_config[0])
		printf("Backup %s holds no %s: its source keeps them outside the data directory (as "
		       "Debian's packages do).\nWrote minimal ones into %s (PostgreSQL's defaults, "
		       "hot_standby = off, local connections only); copy the source's settings there as "
		       "needed.\n",
		       r->m->id, r->wrote_config, r->datadir);
	if (r->source_config > 0)
	{
		printf("The source's configuration files from outside its data directory are in "
		       "%s/" SOURCE_CONFIG_DIR "/ (for reference; the copy does not read them):\n",
		       r->datadir);
		for (i = 0; i < r->m->nconfig; i++)
			printf("  %s\n", r->m->config[i].path);
	}
	if (!r->o->start)
	{
		if (r->recovery_buffers[0])
		{
			printf("\nStart it with:\n  pg_ctl -D %s -l %s -o '-c shared_buffers=%s' start\n",
			       r->datadir, log, r->recovery_buffers);
			printf("(shared_buffers %s instead of its own %s makes the replay faster; it lasts "
			       "until the server is stopped, and the copy's configuration is unchanged)\n",
			       r->recovery_buffers, own_setting(r, a, sizeof(a)));
		}
		else
			printf("\nStart it with:\n  pg_ctl -D %s -l %s start\n", r->datadir, log);
		printf("It fetches WAL from the repository up to the target, then promotes (a new "
		       "timeline) and accepts writes.\n");
	}
	fflush(stdout);
}

/*
 * --files-snapshot ID: the snapshot must be in the restic repository (the
 * id usually comes from a plan, i.e. from the catalog, which the watcher's
 * login can write to).  id_out gets its full id.  Exit 5 (not found) if it
 * is not there, before anything is written.
 */
static int
check_files_snapshot(const PgbkConfig *cfg, const char *id, char *id_out, size_t idlen)
{
	FilesSettings      fs;
	FilesRepo         *frepo = NULL;
	FilesSnapshotList *list = NULL;
	PgbkError          err;
	PgbkStatus         st;
	size_t             i, len = strlen(id);
	const char        *found = NULL;
	int                matches = 0, rc;

	if (len == 0 || len > FILES_ID_LEN || strspn(id, "0123456789abcdef") != len)
	{
		cli_error("restore: invalid --files-snapshot \"%s\" (a restic snapshot id: 1 to %d "
		          "lower-case hex digits)",
		          id, FILES_ID_LEN);
		return EXIT_USAGE;
	}
	pgbk_error_clear(&err);
	files_settings_from_config(cfg, &fs);
	if ((st = files_repo_open(cfg, &fs, &frepo, &err)) != PGBK_OK ||
	    (st = files_list_snapshots(frepo, NULL, NULL, &list, &err)) != PGBK_OK)
	{
		files_repo_free(frepo);
		return cli_fail(&err, "restore: files");
	}
	for (i = 0; i < list->n; i++)
	{
		if (strncmp(list->items[i].id, id, len) == 0)
		{
			found = list->items[i].id;
			matches++;
		}
	}
	if (matches == 1)
	{
		snprintf(id_out, idlen, "%s", found);
		rc = EXIT_OK;
	}
	else if (matches == 0)
	{
		cli_error("restore: file snapshot %s does not exist in restic repository \"%s\": "
		          "restic never took it or has forgotten it (if a plan named it, the catalog "
		          "lists a snapshot the repository does not have: see pgbk verify --catalog); "
		          "nothing was restored",
		          id, frepo->repository);
		rc = EXIT_NOT_FOUND;
	}
	else
	{
		cli_error("restore: --files-snapshot %s matches %d snapshots: give more of its id", id,
		          matches);
		rc = EXIT_USAGE;
	}
	files_snapshot_list_free(list);
	files_repo_free(frepo);
	return rc;
}

/*
 * The files scope: which restic snapshot matches the target.  A restore
 * point name picks the snapshot tagged with it; a time (or 'latest': now)
 * the newest snapshot taken at or before it.  An LSN or 'immediate' target
 * says nothing about files: give --files-snapshot.
 */
static int
find_files_snapshot(const RestoreOpts *o, const PgbkConfig *cfg, int64_t immediate_us, char *id_out,
                    size_t idlen)
{
	FilesSnapshot snap;
	PgbkError     err;
	PgbkStatus    st;

	pgbk_error_clear(&err);
	memset(&snap, 0, sizeof(snap));
	if (o->files_snapshot)
		return check_files_snapshot(cfg, o->files_snapshot, id_out, idlen);
	switch (o->target.kind)
	{
		case PLAN_TARGET_NAME:
			st = files_find(cfg, NULL, 0, o->target.name, &snap, &err);
			break;
		case PLAN_TARGET_TIME:
			st = files_find(cfg, NULL, o->target.time_us, NULL, &snap, &err);
			break;
		case PLAN_TARGET_LATEST:
			st = files_find(cfg, NULL, INT64_MAX, NULL, &snap, &err); /* the newest */
			break;
		case PLAN_TARGET_IMMEDIATE:
			if (immediate_us == 0)
				goto need_id;
			st = files_find(cfg, NULL, immediate_us, NULL, &snap, &err);
			break;
		default:
			goto need_id;
	}
	if (st == PGBK_NOT_FOUND)
	{
		cli_error("restore: no file snapshot matches the target: %s", err.msg);
		cli_error_detail(&err);
		return EXIT_REFUSED;
	}
	if (st != PGBK_OK)
		return cli_fail(&err, "restore: files");
	if (o->target.kind == PLAN_TARGET_TIME && !snap.exact && !cli_quiet)
	{
		char buf[PGBK_TIME_LEN];

		printf("Files as of %s+00 (snapshot %.8s), %.3f s before the target: no file "
		       "snapshot holds them exactly as they were at the target (files were changing "
		       "continuously)\n",
		       pgbk_time_format(snap.as_of_us, PGBK_TIME_PLAIN, buf, sizeof(buf)), snap.id,
		       (double) (o->target.time_us - snap.as_of_us) / 1e6);
	}
	snprintf(id_out, idlen, "%s", snap.id);
	files_snapshot_free(&snap);
	return EXIT_OK;

need_id:
	cli_error("restore: an LSN target does not say which file snapshot to restore: give "
	          "--files-snapshot ID (see pgbk.file_snapshot or bk_restore_point)");
	return EXIT_USAGE;
}

/* Restore the chosen file snapshot into dir (absent or empty). */
static int
restore_files(const PgbkConfig *cfg, const char *id, const char *dir)
{
	PgbkError  err;
	PgbkStatus st;

	pgbk_error_clear(&err);
	if (!cli_quiet)
	{
		printf("Restoring file snapshot %.8s into %s\n", id, dir);
		fflush(stdout);
	}
	st = files_restore(cfg, id, dir, &err);
	if (st == PGBK_EXISTS)
	{
		cli_error("restore: refusing to restore files into \"%s\": %s", dir, err.msg);
		cli_error_detail(&err);
		return EXIT_REFUSED;
	}
	if (st != PGBK_OK)
		return cli_fail(&err, "restore: files");
	if (!cli_quiet)
		printf("Restored file snapshot %.8s into %s\n", id, dir);
	return EXIT_OK;
}

/*
 * Is this run root, as pg_ctl sees it (the effective uid)?
 * PGBK_TEST_PRETEND_UID stands in for the uid in this check only, so that
 * the tests, which cannot run as root, see the refusal; it cannot make a
 * root run start a server (pg_ctl checks for itself).
 */
static bool
running_as_root(void)
{
	const char *pretend = getenv("PGBK_TEST_PRETEND_UID");

	if (pretend != NULL && pretend[0] != '\0')
		return strtoul(pretend, NULL, 10) == 0;
	return geteuid() == 0;
}

/* Files only: pgbk restore --files-to DIR2 (TARGET | --files-snapshot ID). */
static int
restore_files_only(const RestoreOpts *o)
{
	CliContext ctx;
	char       id[128];
	int        rc;

	if ((rc = cli_open(&ctx, o->config)) != EXIT_OK)
		return rc;
	rc = find_files_snapshot(o, ctx.cfg, 0, id, sizeof(id));
	if (rc == EXIT_OK)
		rc = restore_files(ctx.cfg, id, o->files_to);
	cli_close(&ctx);
	return rc;
}

int
cmd_restore(int argc, char **argv)
{
	RestoreOpts o;
	Restore    *r;
	PlanView   *view = NULL;
	PgbkError   err;
	PgbkStatus  st;
	int         rc, i;
	bool        exists, empty;
	char        log[PATH_MAX];
	ssize_t     n;

	if ((rc = parse_options(argc, argv, &o)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if (o.start && o.to != NULL && running_as_root())
	{
		/*
		 * pg_ctl refuses root, and only after the whole download, which would
		 * leave root-owned files the server could not use anyway.
		 */
		cli_error("restore: refusing --start as root: PostgreSQL does not run as root, and the "
		          "restored files must belong to the user that runs it; run pgbk restore as "
		          "the data directory's owner, e.g. runuser -u postgres -- pgbk restore ... "
		          "(nothing was written)");
		return EXIT_REFUSED;
	}
	if (o.to == NULL)
		return restore_files_only(&o);
	r = calloc(1, sizeof(Restore));
	if (r == NULL)
		return EXIT_FAIL;
	r->o = &o;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	pgbk_error_clear(&err);

	/* 1. paths and the target directory */
	if (!absolute_path(o.to, r->datadir, sizeof(r->datadir)))
	{
		cli_error("restore: invalid target directory \"%s\" (its parent must exist)", o.to);
		rc = EXIT_USAGE;
		goto done;
	}
	if ((st = check_empty_dir(r->datadir, &exists, &empty, &err)) != PGBK_OK)
	{
		rc = cli_fail(&err, "restore");
		goto done;
	}
	if (!empty)
	{
		cli_error("restore: refusing to restore into \"%s\": it is not an empty directory",
		          r->datadir);
		rc = EXIT_REFUSED;
		goto done;
	}
	r->created_datadir = !exists;
	if ((rc = cli_open(&r->ctx, o.config)) != EXIT_OK)
		goto done;
	if (realpath(r->ctx.config_path, r->config_abs) == NULL)
	{
		cli_error("restore: could not resolve \"%s\": %s", r->ctx.config_path, strerror(errno));
		rc = EXIT_CONFIG;
		goto done;
	}
	if (o.archive_config)
	{
		PgbkConfig *acfg = NULL;

		if (realpath(o.archive_config, r->archive_config_abs) == NULL)
		{
			cli_error("restore: could not resolve --archive-config \"%s\": %s", o.archive_config,
			          strerror(errno));
			rc = EXIT_CONFIG;
			goto done;
		}
		if (config_load(r->archive_config_abs, &acfg, &err) != PGBK_OK)
		{
			rc = cli_fail(&err, "restore: --archive-config");
			goto done;
		}
		if (strcmp(acfg->repository, r->ctx.cfg->repository) == 0)
			cli_info("restore: the copy will archive into the repository it is restored from; "
			         "its new timeline keeps it apart from the source's WAL");
		config_free(acfg);
	}

	/* restore_command runs this very binary */
	n = readlink("/proc/self/exe", r->pgbk_abs, sizeof(r->pgbk_abs) - 1);
	if (n > 0)
		r->pgbk_abs[n] = '\0';
	else if (!find_in_path("pgbk", r->pgbk_abs, sizeof(r->pgbk_abs)))
		snprintf(r->pgbk_abs, sizeof(r->pgbk_abs), "pgbk");

	/* 2. the plan */
	if ((st = plan_view_open(r->ctx.repo, r->ctx.ring, &view, &err)) != PGBK_OK ||
	    (st = plan_make(view, &o.target, &r->plan, &err)) != PGBK_OK)
	{
		rc = cli_fail(&err, "restore");
		goto done;
	}
	if (!cli_quiet || !r->plan.recoverable)
		print_plan(view, &o.target, &r->plan);
	if (!r->plan.recoverable)
	{
		cli_error("restore: not recoverable: %s", r->plan.reason);
		rc = EXIT_REFUSED;
		goto done;
	}
	/* the backup and every parent it builds on, before anything is written */
	if ((st = manifest_chain_load(r->ctx.repo, r->ctx.ring, r->plan.backup.id, PLAN_CHAIN_MAX,
	                              &r->chain, &err)) != PGBK_OK)
	{
		rc = cli_fail(&err, "restore");
		goto done;
	}
	r->m = r->chain->m[0];
	if (r->m->start_lsn != r->plan.backup.start_lsn || r->m->stop_lsn != r->plan.backup.stop_lsn ||
	    r->m->timeline != r->plan.backup.timeline)
	{
		cli_error("restore: the manifest of backup %s does not match the summary in its header",
		          r->m->id);
		rc = EXIT_INTEGRITY;
		goto done;
	}
	if ((rc = plan_tablespaces(r)) != EXIT_OK)
		goto done;
	if (o.files_to)
	{
		/* the files scope is checked before anything is written too */
		if ((st = check_empty_dir(o.files_to, &exists, &empty, &err)) != PGBK_OK)
		{
			rc = cli_fail(&err, "restore");
			goto done;
		}
		if (!empty)
		{
			cli_error("restore: refusing to restore files into \"%s\": it is not an empty "
			          "directory",
			          o.files_to);
			rc = EXIT_REFUSED;
			goto done;
		}
		if ((rc = find_files_snapshot(&o, r->ctx.cfg, r->m->stop_time_us, r->files_id,
		                              sizeof(r->files_id))) != EXIT_OK)
			goto done;
	}
	if (o.start)
	{
		char why[512];

		if (!find_pg_ctl(r->m->pg_version_num / 10000, r->pg_ctl, sizeof(r->pg_ctl), why,
		                 sizeof(why)))
		{
			cli_error("restore: cannot --start: %s", why);
			rc = EXIT_FAIL;
			goto done;
		}
	}
	if (o.log)
	{
		if (!absolute_path(o.log, log, sizeof(log)))
		{
			cli_error("restore: invalid --log \"%s\" (its directory must exist)", o.log);
			rc = EXIT_USAGE;
			goto done;
		}
	}
	else
		snprintf(log, sizeof(log), "%s/log/pgbk-start.log", r->datadir);
	if (o.dry_run)
	{
		printf("Dry run: would restore %d files (%s) of backup %s into %s", r->m->nfiles,
		       plan_format_bytes(r->m->bytes, log, sizeof(log)), r->m->id, r->datadir);
		if (r->chain->n > 1)
			printf(" (incremental: rebuilt from %d backups, down to the full backup %s)",
			       r->chain->n, r->chain->m[r->chain->n - 1]->id);
		for (i = 0; i < r->nts; i++)
			printf(", tablespace %u into %s", r->ts[i].oid, r->ts[i].dir);
		printf(".\n");
		rc = EXIT_OK;
		goto done;
	}

	/* 3. write */
	if (!cli_quiet)
	{
		char a[32];

		printf("Restoring %d files (%s) into %s with %d threads\n", r->m->nfiles,
		       plan_format_bytes(r->m->bytes, a, sizeof(a)), r->datadir, o.parallel);
		fflush(stdout);
	}
	r->wrote_anything = true;
	if (r->created_datadir && mkdir(r->datadir, 0700) != 0)
	{
		r->wrote_anything = false;
		st = pgbk_error(&err, PGBK_ERR_IO, "could not create directory \"%s\": %s", r->datadir,
		                strerror(errno));
	}
	else if (!r->created_datadir && chmod(r->datadir, 0700) != 0)
		st = pgbk_error(&err, PGBK_ERR_IO, "could not set the mode of \"%s\": %s", r->datadir,
		                strerror(errno));
	else
		st = create_tree(r, &err);
	if (st == PGBK_OK)
		st = download_all(r, &err);
	if (st == PGBK_OK)
		st = finish_files(r, &err);
	if (st == PGBK_OK)
	{
		char parent[PATH_MAX];

		snprintf(parent, sizeof(parent), "%s", r->datadir);
		*strrchr(parent, '/') = '\0';
		st = pgbk_fsync_path(parent[0] ? parent : "/", true, &err);
	}
	if (st != PGBK_OK)
	{
		rc = cli_fail(&err, "restore");
		cleanup_failed(r);
		goto done;
	}
	choose_recovery_buffers(r);
	print_result(r, log);
	if (o.files_to && (rc = restore_files(r->ctx.cfg, r->files_id, o.files_to)) != EXIT_OK)
		goto done;

	/* 5. start */
	if (o.start)
	{
		if (!o.log)
		{
			char dir[PATH_MAX];

			snprintf(dir, sizeof(dir), "%s/log", r->datadir);
			if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			{
				cli_error("restore: could not create directory \"%s\": %s", dir, strerror(errno));
				rc = EXIT_FAIL;
				goto done;
			}
		}
		rc = start_and_wait(r, log);
	}

done:
	plan_view_free(view);
	if (r->ctx.cfg)
		cli_close(&r->ctx);
	manifest_chain_free(r->chain);
	for (i = 0; i < r->nts; i++)
	{
		free(r->ts[i].dir);
		free(r->ts[i].made_top);
	}
	free(r->order);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
	return rc;
}
