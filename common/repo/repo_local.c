/*
 * repo_local.c
 *	  Room repo; uses base, config and the file system (POSIX calls) only.
 *	  The local-directory repository backend (the embedded default).
 *
 * A key "a/b/c" is the file <root>/a/b/c.  Writes go to a hidden temporary
 * file in the target directory, are fsync'd, and are then linked into place
 * with link(2) when the caller asked for no-overwrite (link fails with
 * EEXIST instead of replacing, which makes the "never overwrite" rule atomic)
 * or renamed otherwise; then the directory is fsync'd.  Only after that does
 * a put return PGBK_OK (DESIGN.md invariant 1).  Newly created directories
 * are fsync'd into their parents too.
 *
 * Temporary files start with '.', and listing skips every name starting with
 * '.', so a crash between write and link leaves only invisible debris that
 * a later put of the same key ignores.
 */
#include "repo/repo_intern.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct LocalRepo
{
	char *root;
} LocalRepo;

typedef struct LocalWriter
{
	RepoWriter base; /* must be first */
	char      *final_path;
	char      *tmp_path;
	int        fd;
	bool       no_overwrite;
	char      *key;
} LocalWriter;

static const RepoOps local_ops;

static unsigned long tmp_counter = 0;

/* Keys must be relative, without "." or ".." components or empty parts. */
static PgbkStatus
check_key(const char *key, PgbkError *err)
{
	const char *p = key;

	if (key[0] == '\0' || key[0] == '/')
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid repository key \"%s\"", key);
	while (*p)
	{
		const char *slash = strchr(p, '/');
		size_t      n = slash ? (size_t) (slash - p) : strlen(p);

		if (n == 0 || p[0] == '.')
			return pgbk_error(err, PGBK_ERR_USAGE, "invalid repository key \"%s\"", key);
		p += n;
		if (*p == '/')
			p++;
	}
	return PGBK_OK;
}

static char *
join_path(const char *root, const char *key)
{
	size_t n = strlen(root) + strlen(key) + 2;
	char  *path = malloc(n);

	if (path)
		snprintf(path, n, "%s/%s", root, key);
	return path;
}

/*
 * Create the directories leading to path (not path itself) below root, and
 * fsync each new directory's parent so the new entry is durable.
 */
static PgbkStatus
make_parents(const char *root, const char *path, PgbkError *err)
{
	char  *tmp = strdup(path);
	size_t rootlen = strlen(root);
	char  *p;

	if (tmp == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (p = tmp + rootlen + 1; (p = strchr(p, '/')) != NULL; p++)
	{
		*p = '\0';
		if (mkdir(tmp, 0700) == 0)
		{
			PgbkStatus st = pgbk_fsync_parent(tmp, err);

			if (st != PGBK_OK)
			{
				free(tmp);
				return st;
			}
		}
		else if (errno != EEXIST)
		{
			pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", tmp,
			           strerror(errno));
			free(tmp);
			return PGBK_ERR_IO;
		}
		*p = '/';
	}
	free(tmp);
	return PGBK_OK;
}

static char *
temp_path_for(const char *final_path)
{
	const char *slash = strrchr(final_path, '/');
	size_t      dirlen = slash ? (size_t) (slash - final_path) : 0;
	const char *base = slash ? slash + 1 : final_path;
	size_t      n = strlen(final_path) + 64;
	char       *t = malloc(n);

	if (t)
		snprintf(t, n, "%.*s/.%s.tmp.%d.%lu", (int) dirlen, final_path, base, (int) getpid(),
		         ++tmp_counter);
	return t;
}

/*
 * Move a fully written and fsync'd temporary file into place, then fsync the
 * directory.  With no_overwrite, link(2) refuses an existing target.
 */
static PgbkStatus
publish(const char *tmp_path, const char *final_path, const char *key, bool no_overwrite,
        PgbkError *err)
{
	if (no_overwrite)
	{
		if (link(tmp_path, final_path) != 0)
		{
			int save = errno;

			unlink(tmp_path);
			if (save == EEXIST)
				return pgbk_error(err, PGBK_EXISTS, "object \"%s\" already exists", key);
			return pgbk_error(err, PGBK_ERR_IO, "could not link \"%s\" to \"%s\": %s", tmp_path,
			                  final_path, strerror(save));
		}
		unlink(tmp_path);
	}
	else if (rename(tmp_path, final_path) != 0)
	{
		int save = errno;

		unlink(tmp_path);
		return pgbk_error(err, PGBK_ERR_IO, "could not rename \"%s\" to \"%s\": %s", tmp_path,
		                  final_path, strerror(save));
	}
	return pgbk_fsync_parent(final_path, err);
}

static PgbkStatus
local_writer_open(Repo *repo, const char *key, const RepoPutOptions *opts, RepoWriter **out,
                  PgbkError *err)
{
	LocalRepo   *lr = repo->impl;
	LocalWriter *w;
	PgbkStatus   st;

	*out = NULL;
	if ((st = check_key(key, err)) != PGBK_OK)
		return st;
	w = calloc(1, sizeof(LocalWriter));
	if (w == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	w->base.repo = repo;
	w->fd = -1;
	w->no_overwrite = opts ? opts->no_overwrite : false;
	w->key = strdup(key);
	w->final_path = join_path(lr->root, key);
	w->tmp_path = w->final_path ? temp_path_for(w->final_path) : NULL;
	if (w->key == NULL || w->final_path == NULL || w->tmp_path == NULL)
	{
		st = pgbk_error(err, PGBK_ERR, "out of memory");
		goto fail;
	}
	if ((st = make_parents(lr->root, w->final_path, err)) != PGBK_OK)
		goto fail;
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
	{
		st = pgbk_error(err, PGBK_ERR_IO, "could not create \"%s\": %s", w->tmp_path,
		                strerror(errno));
		goto fail;
	}
	*out = &w->base;
	return PGBK_OK;

fail:
	free(w->key);
	free(w->final_path);
	free(w->tmp_path);
	free(w);
	return st;
}

static PgbkStatus
local_writer_write(RepoWriter *base, const void *data, size_t len, PgbkError *err)
{
	LocalWriter *w = (LocalWriter *) base;

	return pgbk_write_all(w->fd, data, len, w->tmp_path, err);
}

static void
local_writer_free(LocalWriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->key);
	free(w->final_path);
	free(w->tmp_path);
	free(w);
}

static void
local_writer_abort(RepoWriter *base)
{
	LocalWriter *w = (LocalWriter *) base;

	if (w->tmp_path)
		unlink(w->tmp_path);
	local_writer_free(w);
}

static PgbkStatus
local_writer_commit(RepoWriter *base, PgbkError *err)
{
	LocalWriter *w = (LocalWriter *) base;
	PgbkStatus   st;

	if (fsync(w->fd) != 0)
	{
		st = pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", w->tmp_path,
		                strerror(errno));
		local_writer_abort(base);
		return st;
	}
	if (close(w->fd) != 0)
	{
		w->fd = -1;
		st = pgbk_error(err, PGBK_ERR_IO, "could not close \"%s\": %s", w->tmp_path,
		                strerror(errno));
		local_writer_abort(base);
		return st;
	}
	w->fd = -1;
	st = publish(w->tmp_path, w->final_path, w->key, w->no_overwrite, err);
	local_writer_free(w);
	return st;
}

static PgbkStatus
local_put(Repo *repo, const char *key, const void *data, size_t len, const RepoPutOptions *opts,
          PgbkError *err)
{
	RepoWriter *w;
	PgbkStatus  st;

	if ((st = local_writer_open(repo, key, opts, &w, err)) != PGBK_OK)
		return st;
	if ((st = local_writer_write(w, data, len, err)) != PGBK_OK)
	{
		local_writer_abort(w);
		return st;
	}
	return local_writer_commit(w, err);
}

static PgbkStatus
local_get_stream(Repo *repo, const char *key, uint64_t offset, uint64_t range_len, RepoSink sink,
                 void *ctx, PgbkError *err)
{
	LocalRepo    *lr = repo->impl;
	char         *path;
	int           fd;
	unsigned char chunk[1 << 16];
	uint64_t      remaining = range_len;
	PgbkStatus    st = PGBK_OK;

	if ((st = check_key(key, err)) != PGBK_OK)
		return st;
	path = join_path(lr->root, key);
	if (path == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		if (errno == ENOENT)
			st = pgbk_error(err, PGBK_NOT_FOUND, "object \"%s\" does not exist in %s", key,
			                repo->description);
		else
			st = pgbk_error(err, PGBK_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
		free(path);
		return st;
	}
	while (remaining > 0)
	{
		size_t  want = remaining < sizeof(chunk) ? (size_t) remaining : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, (off_t) offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			st = pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		offset += (uint64_t) n;
		remaining -= (uint64_t) n;
		if ((st = sink(ctx, chunk, (size_t) n, err)) != PGBK_OK)
			break;
		if (pgbk_interrupted())
		{
			st = pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted while reading \"%s\"", key);
			break;
		}
	}
	close(fd);
	free(path);
	return st;
}

static PgbkStatus
local_head(Repo *repo, const char *key, RepoObjectInfo *info, PgbkError *err)
{
	LocalRepo  *lr = repo->impl;
	char       *path;
	struct stat st;
	PgbkStatus  rc;

	if ((rc = check_key(key, err)) != PGBK_OK)
		return rc;
	path = join_path(lr->root, key);
	if (path == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if (stat(path, &st) != 0)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			rc = pgbk_error(err, PGBK_NOT_FOUND, "object \"%s\" does not exist in %s", key,
			                repo->description);
		else
			rc = pgbk_error(err, PGBK_ERR_IO, "could not stat \"%s\": %s", path, strerror(errno));
		free(path);
		return rc;
	}
	free(path);
	if (!S_ISREG(st.st_mode))
		return pgbk_error(err, PGBK_NOT_FOUND, "object \"%s\" does not exist in %s", key,
		                  repo->description);
	info->key = key;
	info->size = (uint64_t) st.st_size;
	info->mtime = (int64_t) st.st_mtime;
	info->meta_hash[0] = '\0';
	return PGBK_OK;
}

/* A directory entry during listing: name with "/" appended for directories,
 * so sorting entries gives byte order of the full keys. */
typedef struct ListEntry
{
	char    *sortname;
	bool     is_dir;
	uint64_t size;
	int64_t  mtime;
} ListEntry;

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const ListEntry *) a)->sortname, ((const ListEntry *) b)->sortname);
}

typedef struct ListState
{
	Repo            *repo;
	const char      *prefix;
	const char      *start_after;
	RepoListCallback cb;
	void            *ctx;
} ListState;

/*
 * List directory dirpath whose key prefix is keyprefix ("" or ending in '/').
 * Recurses in sorted order so keys come out in byte order.
 */
static PgbkStatus
list_dir(ListState *ls, const char *dirpath, const char *keyprefix, PgbkError *err)
{
	DIR           *dir;
	struct dirent *de;
	ListEntry     *ents = NULL;
	size_t         n = 0, cap = 0, i;
	PgbkStatus     st = PGBK_OK;
	size_t         plen = strlen(ls->prefix);
	size_t         klen = strlen(keyprefix);

	dir = opendir(dirpath);
	if (dir == NULL)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			return PGBK_OK;
		return pgbk_error(err, PGBK_ERR_IO, "could not open directory \"%s\": %s", dirpath,
		                  strerror(errno));
	}
	while ((de = readdir(dir)) != NULL)
	{
		struct stat sb;
		char       *full;
		char       *key;
		bool        is_dir;
		size_t      cmplen;

		if (de->d_name[0] == '.')
			continue;
		/* prune: the key so far must be compatible with the prefix */
		key = malloc(klen + strlen(de->d_name) + 2);
		if (key == NULL)
		{
			st = pgbk_error(err, PGBK_ERR, "out of memory");
			break;
		}
		sprintf(key, "%s%s", keyprefix, de->d_name);
		full = join_path(dirpath, de->d_name);
		if (full == NULL || stat(full, &sb) != 0)
		{
			free(full);
			free(key);
			continue; /* vanished concurrently */
		}
		free(full);
		is_dir = S_ISDIR(sb.st_mode);
		if (is_dir)
			strcat(key, "/");
		else if (!S_ISREG(sb.st_mode))
		{
			free(key);
			continue;
		}
		cmplen = strlen(key) < plen ? strlen(key) : plen;
		if (strncmp(key, ls->prefix, cmplen) != 0)
		{
			free(key);
			continue;
		}
		if (n == cap)
		{
			size_t     ncap = cap ? cap * 2 : 64;
			ListEntry *ne = realloc(ents, ncap * sizeof(ListEntry));

			if (ne == NULL)
			{
				free(key);
				st = pgbk_error(err, PGBK_ERR, "out of memory");
				break;
			}
			ents = ne;
			cap = ncap;
		}
		ents[n].sortname = key;
		ents[n].is_dir = is_dir;
		ents[n].size = (uint64_t) sb.st_size;
		ents[n].mtime = (int64_t) sb.st_mtime;
		n++;
	}
	closedir(dir);
	if (st == PGBK_OK)
		qsort(ents, n, sizeof(ListEntry), cmp_entry);
	for (i = 0; i < n && st == PGBK_OK; i++)
	{
		if (ents[i].is_dir)
		{
			char *sub;

			/* skip whole subtrees that sort entirely before start_after */
			if (ls->start_after &&
			    strncmp(ents[i].sortname, ls->start_after, strlen(ents[i].sortname)) < 0)
				continue;
			sub = join_path(dirpath, ents[i].sortname + klen);
			if (sub == NULL)
			{
				st = pgbk_error(err, PGBK_ERR, "out of memory");
				break;
			}
			sub[strlen(sub) - 1] = '\0'; /* drop trailing '/' */
			st = list_dir(ls, sub, ents[i].sortname, err);
			free(sub);
		}
		else
		{
			RepoObjectInfo info;

			if (strncmp(ents[i].sortname, ls->prefix, plen) != 0)
				continue;
			if (ls->start_after && strcmp(ents[i].sortname, ls->start_after) <= 0)
				continue;
			memset(&info, 0, sizeof(info));
			info.key = ents[i].sortname;
			info.size = ents[i].size;
			info.mtime = ents[i].mtime;
			st = ls->cb(ls->ctx, &info, err);
		}
		if (st == PGBK_OK && pgbk_interrupted())
			st = pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted while listing");
	}
	for (i = 0; i < n; i++)
		free(ents[i].sortname);
	free(ents);
	return st;
}

static PgbkStatus
local_list(Repo *repo, const char *prefix, const char *start_after, RepoListCallback cb, void *ctx,
           PgbkError *err)
{
	LocalRepo  *lr = repo->impl;
	ListState   ls;
	const char *slash = strrchr(prefix, '/');
	char       *dirpath;
	char       *keyprefix;
	PgbkStatus  st;

	ls.repo = repo;
	ls.prefix = prefix;
	ls.start_after = start_after;
	ls.cb = cb;
	ls.ctx = ctx;

	/* Start at the deepest directory the prefix names. */
	if (slash)
	{
		size_t dlen = (size_t) (slash - prefix);

		keyprefix = strndup(prefix, dlen + 1);
		dirpath = malloc(strlen(lr->root) + dlen + 2);
		if (dirpath)
			sprintf(dirpath, "%s/%.*s", lr->root, (int) dlen, prefix);
	}
	else
	{
		keyprefix = strdup("");
		dirpath = strdup(lr->root);
	}
	if (keyprefix == NULL || dirpath == NULL)
	{
		free(keyprefix);
		free(dirpath);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	st = list_dir(&ls, dirpath, keyprefix, err);
	free(keyprefix);
	free(dirpath);
	return st;
}

/* Do two paths name entries of the same directory? */
static bool
same_parent(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');

	return sa && sb && sa - a == sb - b && strncmp(a, b, (size_t) (sa - a)) == 0;
}

/*
 * Unlink each, then sync each directory once: keys come sorted from the
 * callers, so the objects of one directory are next to each other.
 */
static PgbkStatus
local_delete(Repo *repo, const char *const *keys, int n, PgbkError *err)
{
	LocalRepo *lr = repo->impl;
	char      *pending = NULL; /* a path whose directory still needs a sync */
	PgbkStatus st = PGBK_OK;
	int        i;

	for (i = 0; i < n && st == PGBK_OK; i++)
	{
		char *path;

		if ((st = check_key(keys[i], err)) != PGBK_OK)
			break;
		if ((path = join_path(lr->root, keys[i])) == NULL)
		{
			st = pgbk_error(err, PGBK_ERR, "out of memory");
			break;
		}
		if (unlink(path) != 0)
		{
			if (errno != ENOENT && errno != ENOTDIR)
				st = pgbk_error(err, PGBK_ERR_IO, "could not remove \"%s\": %s", path,
				                strerror(errno));
			free(path);
			continue;
		}
		if (pending != NULL && !same_parent(pending, path))
			st = pgbk_fsync_parent(pending, err);
		free(pending);
		pending = path;
	}
	if (pending != NULL)
	{
		PgbkError later;

		/* after a failure, still make the removals so far durable */
		if (st == PGBK_OK)
			st = pgbk_fsync_parent(pending, err);
		else
			(void) pgbk_fsync_parent(pending, &later);
		free(pending);
	}
	return st;
}

static const char *
local_overwrite_guard(Repo *repo)
{
	(void) repo;
	return "refused atomically (link(2) of a synced temporary file)";
}

static PgbkStatus
local_check(Repo *repo, PgbkError *err)
{
	LocalRepo  *lr = repo->impl;
	struct stat st;

	if (stat(lr->root, &st) != 0)
	{
		if (errno == ENOENT)
			return pgbk_error(err, PGBK_ERR_IO,
			                  "repository directory \"%s\" does not exist (create it, or run "
			                  "\"pgbk init\")",
			                  lr->root);
		return pgbk_error(err, PGBK_ERR_IO, "could not stat repository directory \"%s\": %s",
		                  lr->root, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return pgbk_error(err, PGBK_ERR_IO, "repository \"%s\" is not a directory", lr->root);
	if (access(lr->root, W_OK | X_OK) != 0)
		return pgbk_error(err, PGBK_ERR_IO, "repository directory \"%s\" is not writable: %s",
		                  lr->root, strerror(errno));
	return PGBK_OK;
}

static void
local_close(Repo *repo)
{
	LocalRepo *lr = repo->impl;

	if (lr)
	{
		free(lr->root);
		free(lr);
	}
	repo->impl = NULL;
}

static const RepoOps local_ops = {
    .check = local_check,
    .put = local_put,
    .writer_open = local_writer_open,
    .writer_write = local_writer_write,
    .writer_commit = local_writer_commit,
    .writer_abort = local_writer_abort,
    .get_stream = local_get_stream,
    .head = local_head,
    .list = local_list,
    .delete = local_delete,
    .overwrite_guard = local_overwrite_guard,
    .close = local_close,
};

PgbkStatus
repo_local_open(const PgbkConfig *cfg, Repo *repo, PgbkError *err)
{
	LocalRepo *lr;
	size_t     n;

	if (cfg->local_path == NULL || cfg->local_path[0] != '/')
		return pgbk_error(err, PGBK_ERR_CONFIG, "repository path must be absolute");
	lr = calloc(1, sizeof(LocalRepo));
	if (lr == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	lr->root = strdup(cfg->local_path);
	if (lr->root == NULL)
	{
		free(lr);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	/* strip trailing slashes (but keep "/") */
	n = strlen(lr->root);
	while (n > 1 && lr->root[n - 1] == '/')
		lr->root[--n] = '\0';
	repo->ops = &local_ops;
	repo->impl = lr;
	repo->description = strdup(lr->root);
	if (repo->description == NULL)
	{
		local_close(repo);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	return PGBK_OK;
}
