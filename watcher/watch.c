/*
 * watch.c
 *	  Program pgbk-watcher; uses common/base, log.h and the kernel's inotify API.
 *	  Recursive inotify watching with the kernel API and a watch table of
 *	  our own (see watch.h).
 *
 * Why not libinotifytools (which the user's card names)?  Checked against
 * libinotifytools 3.22 as shipped in Debian 12:
 *  - it never exposes its inotify descriptor (no getter among its exported
 *	  symbols); events come only from inotifytools_next_event(timeout),
 *	  which blocks in its own select().  The watcher must wait in one poll()
 *	  on inotify, the signalfd, restic's pipes and the libpq socket at once;
 *	  with the library that means a busy loop or a thread.
 *  - its state is process-global, and it exports generic symbols (rbfind,
 *	  create_watch, cleanup_tree...) that could clash with ours.
 *  - recursive watching keeps a full path string per watch and on a
 *	  directory rename the caller must rewrite them with
 *	  inotifytools_replace_filename(); new directories, overflow and ENOSPC
 *	  are the caller's job anyway.
 * So the kernel API it is, with a table that stores each directory's name
 * and parent (paths are rebuilt on demand, so a rename is one update and a
 * table of 10,000 directories takes well under a megabyte).
 *
 * Correctness rules, from inotify(7):
 *  - A new directory gets its watch first and is then read: anything
 *	  created before the watch existed is found by the read, anything after
 *	  produces events.  Subdirectories are handled the same way, breadth
 *	  first, so `mkdir -p a/b/c && touch a/b/c/f` is covered.
 *  - A directory renamed within, into or out of the trees: its watches (and
 *	  those below it) are dropped on IN_MOVED_FROM and it is watched afresh
 *	  on IN_MOVED_TO, so moves across an exclude boundary are right too.
 *  - IN_Q_OVERFLOW: events were lost, including directory creations, so
 *	  the table is resynchronised with a full rescan, and everything counts
 *	  as changed.
 *  - ENOSPC from inotify_add_watch (fs.inotify.max_user_watches reached):
 *	  a warning naming /proc/sys/fs/inotify/max_user_watches, everything
 *	  counts as changed, and the table is "degraded": the caller then takes
 *	  snapshots at max_wait intervals and rescans before each one, which
 *	  picks the directories up once the limit is raised.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "watch.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM |              \
	 IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

#define EVENT_BUF_SIZE (64 * 1024)

/*
 * The kernel gives an inotify instance the queue limit this file holds when
 * the instance is created; a later change applies to new instances only.
 * (A variable so that the unit test can stand in for the sysctl.)
 */
static const char *queued_events_path = "/proc/sys/fs/inotify/max_queued_events";
#define READS_PER_CALL 64
#define HASH_EMPTY     0
#define HASH_TOMBSTONE (-1)

typedef struct WatchDir
{
	int      wd;     /* -1: free slot */
	int      parent; /* index of the parent, -1 for a root; next free slot when free */
	int      root;   /* which root */
	uint32_t seen;   /* rescan generation that last found it */
	char    *name;   /* base name; a root's full path */
} WatchDir;

struct WatchTable
{
	int    fd;
	char **roots;
	int    n_roots;
	int   *root_idx; /* per root: its entry, or -1 while it has no watch */
	char **excludes;
	int    n_excludes;
	int    max_watches;

	WatchDir *dirs;
	int       n_slots;
	int       cap;
	int       free_head;
	size_t    live;

	int   *hash; /* entry index + 1, HASH_EMPTY or HASH_TOMBSTONE */
	size_t hash_cap;
	size_t hash_used; /* live + tombstones */

	int *queue; /* breadth-first scan */
	int  queue_cap;

	uint32_t gen;
	bool     degraded;
	bool     warned_enospc;
	char    *buf;
	long     queue_limit; /* this instance's max_queued_events; -1 unknown */
};

/* ----------------------------------------------------------------------
 * wd -> entry hash (open addressing, linear probing)
 * ---------------------------------------------------------------------- */

static size_t
hash_slot(const WatchTable *w, int wd)
{
	return ((uint32_t) wd * 2654435761u) & (w->hash_cap - 1);
}

static int
hash_find(const WatchTable *w, int wd)
{
	size_t i = hash_slot(w, wd);

	for (;;)
	{
		int v = w->hash[i];

		if (v == HASH_EMPTY)
			return -1;
		if (v > 0 && w->dirs[v - 1].wd == wd)
			return v - 1;
		i = (i + 1) & (w->hash_cap - 1);
	}
}

static bool hash_put(WatchTable *w, int idx);

static bool
hash_rehash(WatchTable *w)
{
	int   *old = w->hash;
	size_t old_cap = w->hash_cap;
	size_t i;

	/* sized for the live entries only: tombstones are dropped here */
	w->hash_cap = 1024;
	while ((w->live + 1) * 4 > w->hash_cap)
		w->hash_cap *= 2;
	w->hash = calloc(w->hash_cap, sizeof(int));
	if (w->hash == NULL)
	{
		w->hash = old;
		w->hash_cap = old_cap;
		return false;
	}
	w->hash_used = 0;
	for (i = 0; i < old_cap; i++)
	{
		if (old[i] > 0)
			hash_put(w, old[i] - 1);
	}
	free(old);
	return true;
}

static bool
hash_put(WatchTable *w, int idx)
{
	size_t i;

	if ((w->hash_used + 1) * 2 > w->hash_cap && !hash_rehash(w))
		return false;
	i = hash_slot(w, w->dirs[idx].wd);
	while (w->hash[i] > 0)
		i = (i + 1) & (w->hash_cap - 1);
	if (w->hash[i] == HASH_EMPTY)
		w->hash_used++;
	w->hash[i] = idx + 1;
	return true;
}

static void
hash_del(WatchTable *w, int idx)
{
	size_t i = hash_slot(w, w->dirs[idx].wd);

	for (;;)
	{
		int v = w->hash[i];

		if (v == HASH_EMPTY)
			return;
		if (v == idx + 1)
		{
			w->hash[i] = HASH_TOMBSTONE;
			return;
		}
		i = (i + 1) & (w->hash_cap - 1);
	}
}

/* ----------------------------------------------------------------------
 * Entries and paths
 * ---------------------------------------------------------------------- */

static void
dir_free(WatchTable *w, int idx)
{
	WatchDir *d = &w->dirs[idx];
	int       r;

	if (d->wd < 0)
		return;
	for (r = 0; r < w->n_roots; r++)
	{
		if (w->root_idx[r] == idx)
			w->root_idx[r] = -1;
	}
	hash_del(w, idx);
	free(d->name);
	d->name = NULL;
	d->wd = -1;
	d->parent = w->free_head;
	w->free_head = idx;
	w->live--;
}

/*
 * The entry for wd: the existing one moved to (parent, name) if the kernel
 * says we watch this directory already, else a new one.  -1 on OOM.
 */
static int
dir_ensure(WatchTable *w, int wd, int parent, int root, const char *name)
{
	int   idx = hash_find(w, wd);
	char *copy;

	if (idx >= 0)
	{
		WatchDir *d = &w->dirs[idx];

		if (strcmp(d->name, name) != 0)
		{
			if ((copy = strdup(name)) == NULL)
				return -1;
			free(d->name);
			d->name = copy;
		}
		d->parent = parent;
		d->root = root;
		d->seen = w->gen;
		return idx;
	}
	if ((copy = strdup(name)) == NULL)
		return -1;
	if (w->free_head >= 0)
	{
		idx = w->free_head;
		w->free_head = w->dirs[idx].parent;
	}
	else
	{
		if (w->n_slots == w->cap)
		{
			int       ncap = w->cap ? w->cap * 2 : 256;
			WatchDir *nd = realloc(w->dirs, (size_t) ncap * sizeof(WatchDir));

			if (nd == NULL)
			{
				free(copy);
				return -1;
			}
			w->dirs = nd;
			w->cap = ncap;
		}
		idx = w->n_slots++;
	}
	w->dirs[idx] =
	    (WatchDir){.wd = wd, .parent = parent, .root = root, .seen = w->gen, .name = copy};
	w->live++;
	if (!hash_put(w, idx))
	{
		/* keep the table consistent: forget the entry, drop the watch */
		inotify_rm_watch(w->fd, wd);
		free(copy);
		w->dirs[idx].wd = -1;
		w->dirs[idx].name = NULL;
		w->dirs[idx].parent = w->free_head;
		w->free_head = idx;
		w->live--;
		return -1;
	}
	return idx;
}

/*
 * Path of entry idx (rel: relative to its root, "" for the root itself),
 * plus "/child" if child is not NULL.  False if too long.
 */
static bool
dir_path(const WatchTable *w, int idx, const char *child, bool rel, char *buf, size_t len)
{
	int    chain[PATH_MAX / 2];
	int    n = 0;
	size_t k = 0;
	int    i;

	for (i = idx; i >= 0; i = w->dirs[i].parent)
	{
		if (n == (int) (sizeof(chain) / sizeof(chain[0])))
			return false;
		chain[n++] = i;
	}
	buf[0] = '\0';
	for (i = n - 1; i >= -1; i--)
	{
		const char *part = i >= 0 ? w->dirs[chain[i]].name : child;
		size_t      pl;

		if (part == NULL)
			break;
		if (rel && i == n - 1)
			continue; /* the root itself */
		pl = strlen(part);
		if (k + pl + 2 > len)
			return false;
		if (k > 0 || (!rel && i != n - 1))
			buf[k++] = '/';
		memcpy(buf + k, part, pl);
		k += pl;
		buf[k] = '\0';
	}
	/* a root of "/" plus a child gives "//child": normalise */
	if (!rel && buf[0] == '/' && buf[1] == '/')
		memmove(buf, buf + 1, strlen(buf));
	return true;
}

bool
watch_excluded(char *const *excludes, int n_excludes, const char *rel)
{
	char   prefix[PATH_MAX];
	size_t n = strlen(rel);
	size_t i;
	int    e;

	if (n == 0 || n >= sizeof(prefix))
		return false;
	memcpy(prefix, rel, n + 1);
	/* rel itself, then each leading directory */
	for (i = n;; i--)
	{
		if (i == n || prefix[i] == '/')
		{
			prefix[i] = '\0';
			for (e = 0; e < n_excludes; e++)
			{
				if (fnmatch(excludes[e], prefix, FNM_PATHNAME) == 0)
					return true;
			}
		}
		if (i == 0)
			break;
	}
	return false;
}

/* ----------------------------------------------------------------------
 * Adding and removing watches
 * ---------------------------------------------------------------------- */

static void
warn_enospc(WatchTable *w, const char *path)
{
	w->degraded = true;
	if (w->warned_enospc)
		return;
	w->warned_enospc = true;
	log_warning("could not watch \"%s\": the limit of inotify watches is reached (%zu watched); "
	            "treating everything as changed and taking snapshots every max_wait until "
	            "it is raised: increase /proc/sys/fs/inotify/max_user_watches (sysctl "
	            "fs.inotify.max_user_watches)",
	            path, w->live);
}

/* inotify_add_watch, honouring the test limit; -1 with errno on failure */
static int
add_watch(WatchTable *w, const char *path)
{
	if (w->max_watches > 0 && w->live >= (size_t) w->max_watches)
	{
		/* an existing watch is fine, a new one would exceed the limit */
		int wd = inotify_add_watch(w->fd, path, WATCH_MASK | IN_MASK_ADD);

		if (wd >= 0 && hash_find(w, wd) < 0)
		{
			inotify_rm_watch(w->fd, wd);
			errno = ENOSPC;
			return -1;
		}
		return wd;
	}
	return inotify_add_watch(w->fd, path, WATCH_MASK);
}

/* Watch path as (parent, name); -1 if it cannot be watched (logged). */
static int
watch_one(WatchTable *w, const char *path, int parent, int root, const char *name)
{
	int wd = add_watch(w, path);
	int idx;
	int e = errno;

	if (wd < 0)
	{
		if (e == ENOSPC)
			warn_enospc(w, path);
		else if (errno == EACCES || errno == EPERM)
			log_warning("could not watch \"%s\": %s; restic cannot read it either, so "
			            "snapshots will be incomplete until its permissions are fixed",
			            path, strerror(errno));
		else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
			log_warning("could not watch \"%s\": %s", path, strerror(errno));
		errno = e; /* for the caller's message */
		return -1;
	}
	idx = dir_ensure(w, wd, parent, root, name);
	if (idx < 0)
		log_warning("out of memory watching \"%s\"", path);
	return idx;
}

static bool
queue_push(WatchTable *w, int *n, int idx)
{
	if (*n == w->queue_cap)
	{
		int  ncap = w->queue_cap ? w->queue_cap * 2 : 256;
		int *nq = realloc(w->queue, (size_t) ncap * sizeof(int));

		if (nq == NULL)
			return false;
		w->queue = nq;
		w->queue_cap = ncap;
	}
	w->queue[(*n)++] = idx;
	return true;
}

/*
 * Watch every directory below entry start (already watched), breadth
 * first: each directory is watched before it is read.
 */
static void
scan_below(WatchTable *w, int start)
{
	char path[PATH_MAX];
	char child[PATH_MAX];
	char rel[PATH_MAX];
	int  head = 0;
	int  n = 0;

	if (!queue_push(w, &n, start))
		return;
	while (head < n)
	{
		int            idx = w->queue[head++];
		DIR           *d;
		struct dirent *de;

		if (w->dirs[idx].wd < 0 || !dir_path(w, idx, NULL, false, path, sizeof(path)))
			continue;
		d = opendir(path);
		if (d == NULL)
		{
			if (errno == EACCES)
				log_warning("could not read directory \"%s\": %s", path, strerror(errno));
			continue;
		}
		while ((de = readdir(d)) != NULL)
		{
			int  j;
			bool is_dir;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ? path : "",
			             de->d_name) >= (int) sizeof(child))
				continue;
			if (de->d_type == DT_UNKNOWN)
			{
				struct stat st;

				is_dir = lstat(child, &st) == 0 && S_ISDIR(st.st_mode);
			}
			else
				is_dir = de->d_type == DT_DIR;
			if (!is_dir || !dir_path(w, idx, de->d_name, true, rel, sizeof(rel)) ||
			    watch_excluded(w->excludes, w->n_excludes, rel))
				continue;
			j = watch_one(w, child, idx, w->dirs[idx].root, de->d_name);
			if (j >= 0 && !queue_push(w, &n, j))
				log_warning("out of memory scanning \"%s\"", child);
		}
		closedir(d);
	}
}

/* Is entry idx at or below entry top? */
static bool
dir_below(const WatchTable *w, int idx, int top)
{
	int i;

	for (i = idx; i >= 0; i = w->dirs[i].parent)
	{
		if (i == top)
			return true;
	}
	return false;
}

/* Drop the watches of entry top and everything below it. */
static void
remove_subtree(WatchTable *w, int top)
{
	int i;
	int n = 0;

	for (i = 0; i < w->n_slots; i++)
	{
		if (w->dirs[i].wd >= 0 && dir_below(w, i, top) && !queue_push(w, &n, i))
			break;
	}
	/* collected first: freeing changes the parent links dir_below walks */
	for (i = 0; i < n; i++)
	{
		inotify_rm_watch(w->fd, w->dirs[w->queue[i]].wd);
		dir_free(w, w->queue[i]);
	}
}

/* The child entry of parent called name, or -1. */
static int
find_child(const WatchTable *w, int parent, const char *name)
{
	int i;

	for (i = 0; i < w->n_slots; i++)
	{
		if (w->dirs[i].wd >= 0 && w->dirs[i].parent == parent && strcmp(w->dirs[i].name, name) == 0)
			return i;
	}
	return -1;
}

/* (Re)watch root r and everything below it. */
static int
watch_root(WatchTable *w, int r)
{
	int idx = watch_one(w, w->roots[r], -1, r, w->roots[r]);

	w->root_idx[r] = idx;
	if (idx >= 0)
		scan_below(w, idx);
	return idx;
}

int
watch_rescan(WatchTable *w)
{
	size_t before = w->live;
	int    flags = 0;
	int    r;
	int    i;

	w->gen++;
	w->degraded = false;
	for (r = 0; r < w->n_roots; r++)
	{
		bool had = w->root_idx[r] >= 0;

		if (watch_root(w, r) < 0)
		{
			w->degraded = true;
			if (had || errno != ENOENT)
				log_warning("root \"%s\" cannot be watched: %s", w->roots[r], strerror(errno));
		}
		else if (!had)
		{
			log_info("root \"%s\" is back", w->roots[r]);
			flags |= WATCH_CHANGED;
		}
	}
	/* whatever the walk did not reach is gone or excluded now */
	for (i = 0; i < w->n_slots; i++)
	{
		if (w->dirs[i].wd >= 0 && w->dirs[i].seen != w->gen)
		{
			inotify_rm_watch(w->fd, w->dirs[i].wd);
			dir_free(w, i);
		}
	}
	if (w->live > before)
		flags |= WATCH_CHANGED;
	if (!w->degraded && w->warned_enospc)
	{
		/* one warning per episode; this one is over */
		w->warned_enospc = false;
		log_info("every directory is watched again (%zu watches)", w->live);
	}
	return flags;
}

/* ----------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------- */

static int
handle_event(WatchTable *w, const struct inotify_event *ev, bool *overflow)
{
	char path[PATH_MAX];
	char rel[PATH_MAX];
	int  idx;
	int  child;

	if (ev->mask & IN_Q_OVERFLOW)
	{
		*overflow = true;
		return WATCH_CHANGED;
	}
	idx = hash_find(w, ev->wd);
	if (idx < 0)
		return 0; /* a watch we dropped already */
	if (ev->mask & IN_IGNORED)
	{
		/* the directory is gone (its parent reported that) */
		if (w->dirs[idx].parent < 0)
		{
			log_warning("root \"%s\" was deleted or unmounted; waiting for it to come back",
			            w->dirs[idx].name);
			w->degraded = true;
			dir_free(w, idx);
			return WATCH_CHANGED;
		}
		dir_free(w, idx);
		return 0;
	}
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
	{
		if (w->dirs[idx].parent >= 0)
			return 0;
		if (ev->mask & IN_MOVE_SELF)
		{
			/* the watches follow the moved tree, which is not the root any more */
			log_warning("root \"%s\" was moved away; waiting for it to come back",
			            w->dirs[idx].name);
			w->degraded = true;
			remove_subtree(w, idx);
		}
		return WATCH_CHANGED;
	}
	if (ev->len == 0 || ev->name[0] == '\0')
		return WATCH_CHANGED; /* the watched directory itself (mode, times) */
	if (!dir_path(w, idx, ev->name, true, rel, sizeof(rel)))
		return WATCH_CHANGED;
	if (watch_excluded(w->excludes, w->n_excludes, rel))
		return 0;
	if (ev->mask & IN_ISDIR)
	{
		if (ev->mask & IN_MOVED_FROM)
		{
			if ((child = find_child(w, idx, ev->name)) >= 0)
				remove_subtree(w, child);
		}
		else if (ev->mask & (IN_CREATE | IN_MOVED_TO))
		{
			if (dir_path(w, idx, ev->name, false, path, sizeof(path)) &&
			    (child = watch_one(w, path, idx, w->dirs[idx].root, ev->name)) >= 0)
				scan_below(w, child);
		}
	}
	return WATCH_CHANGED;
}

int
watch_process(WatchTable *w)
{
	int  flags = 0;
	bool overflow = false;
	int  reads;

	for (reads = 0; reads < READS_PER_CALL; reads++)
	{
		ssize_t n = read(w->fd, w->buf, EVENT_BUF_SIZE);
		char   *p;

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_error("could not read inotify events: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		for (p = w->buf; p < w->buf + n;)
		{
			const struct inotify_event *ev = (const struct inotify_event *) p;

			flags |= handle_event(w, ev, &overflow);
			p += sizeof(struct inotify_event) + ev->len;
		}
	}
	if (overflow)
	{
		if (w->queue_limit > 0)
			log_warning("the inotify event queue overflowed (more than %ld events were "
			            "pending, the limit of this watcher's queue: "
			            "/proc/sys/fs/inotify/max_queued_events when it started; a new value "
			            "applies after a restart): treating everything as changed and "
			            "rescanning the trees",
			            w->queue_limit);
		else
			log_warning("the inotify event queue overflowed "
			            "(/proc/sys/fs/inotify/max_queued_events): treating everything as "
			            "changed and rescanning the trees");
		watch_rescan(w);
		flags |= WATCH_CHANGED | WATCH_OVERFLOW;
	}
	if (reads == READS_PER_CALL)
		flags |= WATCH_MORE;
	return flags;
}

/* ----------------------------------------------------------------------
 * Setup
 * ---------------------------------------------------------------------- */

static char **
copy_list(char *const *src, int n)
{
	char **dst = calloc((size_t) n + 1, sizeof(char *));
	int    i;

	if (dst == NULL)
		return NULL;
	for (i = 0; i < n; i++)
	{
		if ((dst[i] = strdup(src[i])) == NULL)
		{
			while (i > 0)
				free(dst[--i]);
			free(dst);
			return NULL;
		}
	}
	return dst;
}

PgbkStatus
watch_open(char *const *roots, int n_roots, char *const *excludes, int n_excludes, int max_watches,
           WatchTable **out, PgbkError *err)
{
	WatchTable *w;
	int         r;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	w->fd = -1;
	w->free_head = -1;
	w->max_watches = max_watches;
	w->n_roots = n_roots;
	w->n_excludes = n_excludes;
	w->roots = copy_list(roots, n_roots);
	w->excludes = copy_list(excludes, n_excludes);
	w->root_idx = calloc((size_t) n_roots + 1, sizeof(int));
	w->buf = malloc(EVENT_BUF_SIZE);
	if (w->roots == NULL || w->excludes == NULL || w->root_idx == NULL || w->buf == NULL ||
	    !hash_rehash(w))
	{
		watch_close(w);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	w->queue_limit = -1;
	{
		FILE *f = fopen(queued_events_path, "r");

		if (f)
		{
			if (fscanf(f, "%ld", &w->queue_limit) != 1)
				w->queue_limit = -1;
			fclose(f);
		}
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0)
	{
		int e = errno;

		watch_close(w);
		if (e == EMFILE)
			return pgbk_error(err, PGBK_ERR,
			                  "could not create an inotify instance: the per-user limit is "
			                  "reached; raise /proc/sys/fs/inotify/max_user_instances");
		return pgbk_error(err, PGBK_ERR, "could not create an inotify instance: %s", strerror(e));
	}
	for (r = 0; r < n_roots; r++)
	{
		struct stat st;

		w->root_idx[r] = -1;
		if (lstat(roots[r], &st) == 0 && S_ISLNK(st.st_mode))
		{
			watch_close(w);
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "root \"%s\" is a symbolic link (restic would back up the link, "
			                  "not the tree); give the directory it points to",
			                  roots[r]);
		}
		if (stat(roots[r], &st) != 0)
		{
			int e = errno;

			watch_close(w);
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "could not use root \"%s\": %s; create it or fix \"roots\"", roots[r],
			                  strerror(e));
		}
		if (!S_ISDIR(st.st_mode))
		{
			watch_close(w);
			return pgbk_error(err, PGBK_ERR_CONFIG, "root \"%s\" is not a directory; fix \"roots\"",
			                  roots[r]);
		}
	}
	w->gen = 1;
	for (r = 0; r < n_roots; r++)
	{
		if (watch_root(w, r) < 0)
		{
			int e = errno;

			watch_close(w);
			return pgbk_error(err, e == ENOSPC ? PGBK_ERR : PGBK_ERR_CONFIG,
			                  "could not watch root \"%s\": %s%s", roots[r], strerror(e),
			                  e == ENOSPC ? "; increase /proc/sys/fs/inotify/max_user_watches"
			                              : "");
		}
	}
	*out = w;
	return PGBK_OK;
}

void
watch_close(WatchTable *w)
{
	int i;

	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	for (i = 0; i < w->n_slots; i++)
		free(w->dirs[i].name);
	for (i = 0; w->roots && i < w->n_roots; i++)
		free(w->roots[i]);
	for (i = 0; w->excludes && i < w->n_excludes; i++)
		free(w->excludes[i]);
	free(w->roots);
	free(w->excludes);
	free(w->root_idx);
	free(w->dirs);
	free(w->hash);
	free(w->queue);
	free(w->buf);
	free(w);
}

int
watch_fd(const WatchTable *w)
{
	return w->fd;
}

bool
watch_degraded(const WatchTable *w)
{
	return w->degraded;
}

size_t
watch_count(const WatchTable *w)
{
	return w->live;
}
