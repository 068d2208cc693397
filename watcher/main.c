/*
 * main.c
 *	  Program pgbk-watcher, its entry point and event loop; uses every watcher module
 *	  and common/ base, config, repo, format, context and files.
 *	  pgbk-watcher: minute-granularity snapshots of application files with
 *	  restic, recorded in pgbk's catalog.
 *
 * One single-threaded event loop waits in poll() on: a signalfd (SIGTERM,
 * SIGINT, SIGHUP, SIGCHLD; the handlers' only job is done by the kernel),
 * the inotify descriptor, the running restic's stdout and stderr, and the
 * catalog connection's socket.  Its timeout comes from the loop's timers
 * (timers.c, after redis's ae.c): every deadline is a timer registered by
 * the code that decides it, not a minimum computed in the loop.  The next
 * forget and a lookup's retry are timers whose callbacks make the work due;
 * the scheduler arms a timer for the debounce's next snapshot when that is
 * what it waits for; a running restic has a reap tick; a stop signal arms
 * the stop, kill and exit deadlines; the catalog connection arms its own
 * (record.c).  Nothing sleeps; an idle watcher uses no CPU.
 *
 * What runs when (one restic at a time):
 *   start      restic unlock (stale locks of this host's killed runs), then
 *              a snapshot (what changed while we were down is unknown)
 *   changes    a snapshot after settle_delay of quiet, at most max_wait
 *              after the first change (debounce.c)
 *   request    a row in pgbk.file_snapshot_request (bk_create_restore_point),
 *              read at connection and whenever NOTIFY pgbk_snapshot wakes us
 *              (the payload is ignored): a snapshot tagged rp:name as soon
 *              as restic is free, bound to the request in the catalog
 *   safety     a snapshot every safety_interval regardless
 *   forget     restic unlock + restic forget --keep-within files_depth
 *              --prune every forget_interval
 * After each snapshot its full id comes from a listing of the restic
 * repository's snapshots/ in pgbk's repository (the default layout), or
 * else from `restic snapshots --json <short id>`; the record goes to the
 * spool (fsync'd) and from there to the catalog (record.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "base/pgbk_time.h"
#include "config/config.h"
#include "context/context.h"
#include "debounce.h"
#include "format/keys.h"
#include "format/layout.h"
#include "repo/repo.h"
#include "files/files.h"
#include "log.h"
#include "record.h"
#include "restic.h"
#include "settings.h"
#include "spool.h"
#include "timers.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * pgbk-watcher's exit codes (in --help and README.md).  They are the
 * watcher's own, not the pgbk CLI's (cli/cli.h): 0 to 3 mean the same
 * there, 4 to 6 do not (for pgbk, 4 is an unreachable repository, 5 not
 * found, 6 an integrity error).  Tests assert the numbers (t/04*.pl).
 */
#define WATCHER_EXIT_OK         0 /* stopped cleanly; --once, --init done */
#define WATCHER_EXIT_FAIL       1 /* failure not covered below */
#define WATCHER_EXIT_USAGE      2 /* bad option */
#define WATCHER_EXIT_CONFIG     3 /* configuration error */
#define WATCHER_EXIT_RESTIC     4 /* restic failed (--once, --init) */
#define WATCHER_EXIT_INCOMPLETE 5 /* --once: snapshot incomplete, recorded so */
#define WATCHER_EXIT_SPOOLED    6 /* --once: snapshot taken, its record spooled */

#define KILL_GRACE_MS    10000 /* SIGTERM to SIGKILL for restic */
#define JOB_TICK_MS      1000  /* reap a running restic at least this often */
#define DELIVER_GRACE_MS 5000  /* on stop, time to deliver what is spooled */
#define FORGET_STAMP     "forget.stamp"
#define MAX_REQUESTS     64
#define SERVED_RING      256
#define WAKE_SLACK_US    50000 /* how long after a change the watcher is surely woken */
#define SPAN_TAG_MAX     80
#define MAX_SPAN_TAGS    4

typedef struct Watcher
{
	WatcherSettings *set;
	PgbkConfig      *pgbk;
	FilesRepo       *repo;
	Repo            *prepo; /* pgbk's repository, when the files repository is in it */
	WatchTable      *watch;
	Spool           *spool;
	Recorder        *rec;
	Timers           timers; /* the event loop's; record.c arms its own among them */
	Debounce         deb;
	Job              job;
	bool             once;
	bool             verbose; /* -v: debug messages whatever log_level says */
	int              sigfd;

	/* restore points asked for, waiting for / in the running snapshot */
	char   *requests[MAX_REQUESTS];
	int64_t request_ids[MAX_REQUESTS];
	int     n_requests;
	char   *running_requests[MAX_REQUESTS];
	int64_t running_request_ids[MAX_REQUESTS];
	int     n_running_requests;
	int64_t served[SERVED_RING]; /* request ids a spooled snapshot serves */
	int     n_served;
	Trigger running_trigger;
	char    running_time[40]; /* the snapshot's time (restic --time), RFC 3339 */

	/* a snapshot taken whose full id is still to be looked up */
	bool               lookup_pending;
	FilesBackupSummary lookup_sum;
	bool               lookup_complete;
	Trigger            lookup_trigger;
	char               lookup_time[40];
	char              *lookup_requests[MAX_REQUESTS];
	int64_t            lookup_request_ids[MAX_REQUESTS];
	int                n_lookup_requests;
	char               lookup_tags[MAX_SPAN_TAGS][SPAN_TAG_MAX];
	int                n_lookup_tags;
	int64_t            lookup_from_us;
	int64_t            lookup_end_us;
	int64_t            lookup_first_us;

	/*
	 * The exact span of each snapshot (issue 10, item 11; see
	 * pgbk.file_snapshot).  Change events are stamped conservatively: a
	 * change read now happened after ino_checked_us (just before the last
	 * read that emptied the inotify queue) and before now.  All Unix
	 * microseconds, 0: none / unknown.
	 */
	int64_t ino_checked_us;
	int64_t last_event_us;  /* latest possible time of the last change seen */
	int64_t watch_start_us; /* since when every directory is watched (0: not all are) */
	int64_t run_start_us;   /* the running snapshot's time */
	int64_t run_from_us;    /* its exact_from */
	int64_t run_first_us;   /* earliest possible time of the first change since it began */
	char    run_tags[MAX_SPAN_TAGS][SPAN_TAG_MAX];
	int     n_run_tags;
	/* the newest snapshot whose span is still open (no change since its scan began) */
	bool    open_span;
	char    open_id[FILES_ID_LEN + 1]; /* "" until spooled */
	int64_t open_until_us;
	/* the previous snapshot, described in the next one's tags (for pgbk restore) */
	char    prev_short[FILES_SHORT_ID_LEN + 1];
	int64_t prev_end_us;
	int64_t prev_first_us; /* first change since it began */
	int     lookup_failures;
	bool    lookup_due; /* set by t_lookup */
	TimerId t_lookup;   /* the lookup's next attempt */

	/* unsaved changes, for bk_scope_health (record_changes) */
	int64_t changes_since_us;      /* first change not covered by a snapshot, 0: none */
	int64_t changes_during_run_us; /* first change after the running snapshot began */

	bool    need_unlock;
	bool    forget_after_unlock;
	bool    forget_now;
	bool    forget_due; /* set by t_forget */
	TimerId t_forget;   /* the next forget */

	TimerId t_snapshot; /* the debounce's next snapshot, while the scheduler waits for it */
	TimerId t_job_tick; /* reap the running restic even if SIGCHLD was coalesced */

	int     stop_signals;
	int64_t stop_deadline;
	int64_t exit_deadline;
	TimerId t_stop; /* stop_deadline: SIGTERM to restic */
	TimerId t_kill; /* stop_deadline + KILL_GRACE_MS: SIGKILL */
	TimerId t_exit; /* exit_deadline */
	bool    reload_requested;

	bool once_started;
	bool once_done;
	int  once_exit;
} Watcher;

/*
 * A change under the roots: remember since when files have changed without
 * a snapshot (the running snapshot, if any, may not contain it), and tell
 * the catalog for bk_scope_health.
 */
static void
note_change(Watcher *w)
{
	int64_t now_us = pgbk_now_us();

	if (w->deb.running && w->changes_during_run_us == 0)
		w->changes_during_run_us = now_us;
	if (w->changes_since_us == 0)
	{
		w->changes_since_us = now_us;
		record_changes(w->rec, now_us);
	}
}

static void
spool_until(Watcher *w, const char *id, int64_t until_us)
{
	SpoolRecord rec;
	PgbkError   err;

	memset(&rec, 0, sizeof(rec));
	rec.kind = SPOOL_UNTIL;
	snprintf(rec.id, sizeof(rec.id), "%s", id);
	rec.exact_until_us = until_us;
	pgbk_error_clear(&err);
	if (spool_append(w->spool, &rec, &err) != PGBK_OK)
		log_error("%s", err.msg);
	else
		record_kick(w->rec);
}

/*
 * A change happened between earliest_us and latest_us: it ends the open
 * span, makes the running snapshot inexact, and is the previous snapshot's
 * first change if it had none yet.
 */
static void
span_event(Watcher *w, int64_t earliest_us, int64_t latest_us)
{
	if (w->deb.running && (w->run_first_us == 0 || earliest_us < w->run_first_us))
		w->run_first_us = earliest_us;
	if (w->lookup_pending && w->lookup_first_us == 0)
		w->lookup_first_us = earliest_us;
	if (w->prev_short[0] && w->prev_first_us == 0)
		w->prev_first_us = earliest_us;
	if (w->open_span && w->open_until_us == 0)
	{
		w->open_until_us = earliest_us;
		if (w->open_id[0])
		{
			spool_until(w, w->open_id, earliest_us);
			w->open_span = false;
		}
	}
	if (latest_us > w->last_event_us)
		w->last_event_us = latest_us;
}

/* Read the inotify queue; a change restarts the debounce and is stamped. */
static void
process_inotify(Watcher *w)
{
	int64_t before_us = pgbk_now_us();
	int     flags;

	if (w->watch == NULL)
		return;
	flags = watch_process(w->watch);
	if (flags & WATCH_CHANGED)
	{
		debounce_change(&w->deb, timers_now());
		note_change(w);
		span_event(w, w->ino_checked_us, pgbk_now_us());
	}

	if (!(flags & WATCH_MORE))
		w->ino_checked_us = before_us;
	if (watch_degraded(w->watch))
		w->watch_start_us = 0;
	debounce_set_degraded(&w->deb, watch_degraded(w->watch));
}

static void
usage(void)
{
	printf("pgbk-watcher takes restic snapshots of application files when they change and\n"
	       "records them in pgbk's catalog (the files scope of pgbk).\n"
	       "\n"
	       "Usage:\n"
	       "  pgbk-watcher [OPTION]...\n"
	       "\n"
	       "Options:\n"
	       "  -c, --config=FILE  configuration file (default $PGBK_WATCHER_CONFIG, else\n"
	       "                     " WATCHER_DEFAULT_CONFIG ")\n"
	       "      --once         take one snapshot now, record it, and exit\n"
	       "      --init         create the restic repository unless it exists, and exit\n"
	       "  -v, --verbose      log debug messages\n"
	       "  -V, --version      print the version and exit\n"
	       "  -h, --help         show this help and exit\n"
	       "\n"
	       "Signals: SIGTERM or SIGINT stop it (a running snapshot may finish within\n"
	       "stop_timeout; a second signal stops restic at once); SIGHUP reloads the\n"
	       "configuration.  Logs go to stderr.\n"
	       "\n"
	       "Exit codes:\n"
	       "  0  success: stopped cleanly; --once: snapshot taken and recorded in the\n"
	       "     catalog; --init: the repository exists\n"
	       "  1  failure not covered below (out of memory, inotify unavailable)\n"
	       "  2  usage error\n"
	       "  3  configuration error (watcher configuration, pgbk.conf, password file,\n"
	       "     restic binary, roots, spool directory)\n"
	       "  4  restic failed (--once, --init): repository unreachable, wrong password,\n"
	       "     snapshot not written\n"
	       "  5  --once: the snapshot is incomplete (restic could not read some files);\n"
	       "     it is recorded as incomplete\n"
	       "  6  --once: snapshot taken, but the catalog is unreachable: its record\n"
	       "     waits in the spool and is delivered by the next run\n"
	       "\n"
	       "These are the watcher's own codes: 4 to 6 do not mean what they mean for pgbk.\n");
}

/* ----------------------------------------------------------------------
 * Configuration
 * ---------------------------------------------------------------------- */

/*
 * pgbk.conf (if any, through common/context like every program, without
 * keys: the watcher reads no pgbk object) and the files repository for a
 * settings object.  *cfg_out and *prepo_out are the context's, the caller's
 * to free.
 */
static PgbkStatus
open_repo(const WatcherSettings *set, PgbkConfig **cfg_out, FilesRepo **repo_out, Repo **prepo_out,
          PgbkError *err)
{
	PgbkRepoContextOptions opts = {0};
	PgbkRepoContext        pctx;
	FilesSettings          fs;
	PgbkStatus             rc;

	*cfg_out = NULL;
	*repo_out = NULL;
	*prepo_out = NULL;
	memset(&pctx, 0, sizeof(pctx));
	opts.config_path = set->pgbk_config;
	if (set->pgbk_config && (rc = pgbk_repo_context_open(&opts, &pctx, err)) != PGBK_OK)
		return rc;
	files_settings_from_config(pctx.cfg, &fs);
	/* the watcher's own settings win (and stand in until pgbk.conf has them) */
	if (set->restic_binary)
		fs.restic_binary = set->restic_binary;
	if (set->restic_password_file)
		fs.password_file = set->restic_password_file;
	if (set->files_repository)
		fs.repository = set->files_repository;
	if (set->cache_dir)
		fs.cache_dir = set->cache_dir;
	if (fs.repository == NULL && pctx.cfg == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR_CONFIG,
		                "neither pgbk_config nor files_repository is set in \"%s\": the watcher "
		                "needs to know where the files repository is",
		                set->config_path);
		return rc;
	}
	if ((rc = files_repo_open(pctx.cfg, &fs, repo_out, err)) != PGBK_OK)
	{
		pgbk_repo_context_close(&pctx);
		return rc;
	}
	/*
	 * With the files repository under pgbk's own (the default), a new
	 * snapshot's full id is one listing of files/snapshots/ away; otherwise
	 * `restic snapshots` finds it (a second restic run, ~0.5 s of key
	 * derivation).
	 */
	if (pctx.cfg != NULL && fs.repository == NULL &&
	    pgbk_repo_context_open_repo(&pctx, err) != PGBK_OK)
	{
		log_warning("%s; new snapshots are looked up with restic instead", err->msg);
		log_error_detail(LOG_LEVEL_WARNING, err);
	}
	*cfg_out = pctx.cfg;
	*prepo_out = pctx.repo;
	pctx.cfg = NULL;
	pctx.repo = NULL;
	pgbk_repo_context_close(&pctx);
	return PGBK_OK;
}

/* t_forget's callback: a forget is due (schedule() starts it when restic is free). */
static int64_t
forget_due(int64_t now, void *arg)
{
	Watcher *w = arg;

	(void) now;
	w->forget_due = true;
	return TIMER_DONE;
}

static void
forget_at(Watcher *w, int64_t when)
{
	w->forget_due = false;
	if (!timers_set(&w->timers, &w->t_forget, when, forget_due, w))
		log_error("no room for the forget timer");
}

/* t_lookup's callback: the pending lookup may be tried again. */
static int64_t
lookup_due(int64_t now, void *arg)
{
	Watcher *w = arg;

	(void) now;
	w->lookup_due = true;
	return TIMER_DONE;
}

static void
lookup_at(Watcher *w, int64_t when)
{
	w->lookup_due = false;
	if (!timers_set(&w->timers, &w->t_lookup, when, lookup_due, w))
		log_error("no room for the lookup timer");
}

/* A timer that only wakes the loop. */
static void
wake_at(Watcher *w, TimerId *id, int64_t when)
{
	if (!timers_set(&w->timers, id, when, NULL, NULL))
		log_error("no room for a timer");
}

static void
read_forget_stamp(Watcher *w, int64_t now)
{
	char        path[PATH_MAX];
	struct stat st;
	int64_t     when = now; /* never forgotten before: after the first snapshot */

	snprintf(path, sizeof(path), "%s/%s", w->set->spool_dir, FORGET_STAMP);
	if (stat(path, &st) == 0)
	{
		int64_t since_ms = (int64_t) (time(NULL) - st.st_mtime) * 1000;

		if (since_ms < w->set->forget_interval_ms)
			when = now + (w->set->forget_interval_ms - since_ms);
	}
	forget_at(w, when);
}

static void
write_forget_stamp(Watcher *w)
{
	char path[PATH_MAX];
	int  fd;

	snprintf(path, sizeof(path), "%s/%s", w->set->spool_dir, FORGET_STAMP);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
	{
		futimens(fd, NULL);
		close(fd);
	}
}

static void
reload(Watcher *w, int64_t now)
{
	WatcherSettings *set;
	PgbkConfig      *cfg;
	FilesRepo       *repo;
	WatchTable      *watch = NULL;
	Repo            *prepo;
	PgbkError        err;

	w->reload_requested = false;
	pgbk_error_clear(&err);
	log_info("received SIGHUP: reloading \"%s\"", w->set->config_path);
	if (settings_load(w->set->config_path, &set, &err) != PGBK_OK)
	{
		log_error("could not reload the configuration: %s; keeping the current one", err.msg);
		log_error_detail(LOG_LEVEL_ERROR, &err);
		return;
	}
	if (open_repo(set, &cfg, &repo, &prepo, &err) != PGBK_OK)
	{
		log_error("could not reload the configuration: %s; keeping the current one", err.msg);
		log_error_detail(LOG_LEVEL_ERROR, &err);
		settings_free(set);
		return;
	}
	if (strcmp(set->spool_dir, w->set->spool_dir) != 0)
		log_warning("spool_dir cannot change on reload; restart the watcher to use \"%s\"",
		            set->spool_dir);
	if (w->watch && settings_watch_changed(w->set, set))
	{
		if (watch_open(set->roots, set->n_roots, set->excludes, set->n_excludes,
		               set->debug_max_watches, &watch, &err) != PGBK_OK)
		{
			log_error("could not reload the configuration: %s; keeping the current one", err.msg);
			log_error_detail(LOG_LEVEL_ERROR, &err);
			repo_close(prepo);
			files_repo_free(repo);
			config_free(cfg);
			settings_free(set);
			return;
		}
		watch_close(w->watch);
		w->watch = watch;
		log_info("watching %zu directories under %d root(s)", watch_count(watch), set->n_roots);
		debounce_change(&w->deb, now);
		span_event(w, w->ino_checked_us, pgbk_now_us());
		w->ino_checked_us = pgbk_now_us();
		w->watch_start_us = watch_degraded(watch) ? 0 : w->ino_checked_us;
	}
	if (strcmp(set->host, w->set->host) != 0)
		log_warning("host changed from \"%s\" to \"%s\": the next snapshot has no parent and "
		            "reads every file",
		            w->set->host, set->host);
	debounce_configure(&w->deb, set->settle_ms, set->max_wait_ms, set->safety_ms, set->retry_ms,
	                   set->retry_max_ms);
	record_configure(w->rec, set->conninfo, set->host);
	log_set_debug(set->debug || w->verbose);
	/* spool_dir stays: the open spool keeps using the old directory */
	{
		char *keep = strdup(w->set->spool_dir);

		if (keep != NULL)
		{
			free(set->spool_dir);
			set->spool_dir = keep;
		}
	}
	files_repo_free(w->repo);
	repo_close(w->prepo);
	config_free(w->pgbk);
	settings_free(w->set);
	w->set = set;
	w->pgbk = cfg;
	w->repo = repo;
	w->prepo = prepo;
	log_info("configuration reloaded");
}

/* ----------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

static bool
request_known(const Watcher *w, int64_t id)
{
	int i;

	for (i = 0; i < w->n_requests; i++)
		if (w->request_ids[i] == id)
			return true;
	for (i = 0; i < w->n_running_requests; i++)
		if (w->running_request_ids[i] == id)
			return true;
	for (i = 0; w->lookup_pending && i < w->n_lookup_requests; i++)
		if (w->lookup_request_ids[i] == id)
			return true;
	for (i = 0; i < w->n_served && i < SERVED_RING; i++)
		if (w->served[i] == id)
			return true;
	return false;
}

/* An unserved request in the catalog (record.c reads them). */
static void
on_request(int64_t id, const char *name, void *arg)
{
	Watcher *w = arg;
	char     tag[FILES_TAG_MAX];

	if (request_known(w, id))
		return;
	if (!files_restore_point_tag(name, tag, sizeof(tag)))
	{
		log_warning("ignoring snapshot request %lld with an invalid name (1 to %d bytes needed)",
		            (long long) id, FILES_RP_NAME_MAX);
		return;
	}
	if (w->n_requests == MAX_REQUESTS)
	{
		log_warning("too many snapshot requests waiting; request %lld (\"%s\") waits for the "
		            "next reading",
		            (long long) id, name);
		return;
	}
	if ((w->requests[w->n_requests] = strdup(name)) == NULL)
		return;
	w->request_ids[w->n_requests] = id;
	w->n_requests++;
	log_info("snapshot requested for restore point \"%s\"", name);
	debounce_request(&w->deb);
}

static void
free_names(char **names, int *n)
{
	while (*n > 0)
		free(names[--(*n)]);
}

/* Put the running snapshot's requests back in front of the waiting ones. */
static void
requeue_requests(Watcher *w)
{
	int i;

	for (i = 0; i < w->n_running_requests; i++)
	{
		if (w->n_requests < MAX_REQUESTS)
		{
			memmove(&w->requests[1], &w->requests[0], (size_t) w->n_requests * sizeof(char *));
			memmove(&w->request_ids[1], &w->request_ids[0],
			        (size_t) w->n_requests * sizeof(int64_t));
			w->requests[0] = w->running_requests[i];
			w->request_ids[0] = w->running_request_ids[i];
			w->n_requests++;
		}
		else
			free(w->running_requests[i]);
	}
	w->n_running_requests = 0;
	if (w->n_requests > 0)
		debounce_request(&w->deb);
}

/* ----------------------------------------------------------------------
 * Starting restic
 * ---------------------------------------------------------------------- */

/* restic patterns treat * ? [ \ specially: escape them in a root path */
static char *
pattern_escape(const char *root, const char *rel)
{
	PgbkBuf     b;
	const char *p;

	pgbk_buf_init(&b);
	for (p = root; *p; p++)
	{
		if (strchr("*?[\\", *p))
			pgbk_buf_append(&b, "\\", 1);
		pgbk_buf_append(&b, p, 1);
	}
	if (strcmp(root, "/") != 0)
		pgbk_buf_append(&b, "/", 1);
	pgbk_buf_append_str(&b, rel);
	return (char *) b.data;
}

/* t_job_tick's callback: wake the loop every JOB_TICK_MS while restic runs. */
static int64_t
job_tick(int64_t now, void *arg)
{
	Watcher *w = arg;

	(void) now;
	return job_active(&w->job) ? JOB_TICK_MS : TIMER_DONE;
}

static void
start_job(Watcher *w, JobKind kind, const char *const *args, int64_t now)
{
	PgbkError err;

	pgbk_error_clear(&err);
	if (job_start(&w->job, kind, w->repo, args, now, &err) != PGBK_OK)
	{
		log_error("could not start restic %s: %s", job_name(kind), err.msg);
		log_error_detail(LOG_LEVEL_ERROR, &err);
		job_reset(&w->job);
		if (kind == JOB_BACKUP)
		{
			debounce_finished(&w->deb, false, now);
			requeue_requests(w);
			if (w->once)
			{
				w->once_done = true;
				w->once_exit = WATCHER_EXIT_RESTIC;
			}
		}
		else if (kind == JOB_UNLOCK)
			w->need_unlock = false;
		else if (kind == JOB_LOOKUP)
			lookup_at(w, now + debounce_backoff(&w->deb));
		else if (kind == JOB_FORGET)
			forget_at(w, now + w->set->retry_max_ms);
		return;
	}
	if (!timers_set(&w->timers, &w->t_job_tick, now + JOB_TICK_MS, job_tick, w))
		log_error("no room for the restic timer");
}

static void
fmt_rfc3339(int64_t us, char *buf, size_t len)
{
	pgbk_time_format(us, PGBK_TIME_ISO, buf, len);
}

/*
 * The span tags a snapshot carries, so that `pgbk restore` can apply the
 * catalog's rule with the repository alone (common/files/files.c): its own
 * exact_from (pgbk-from), and for the previous snapshot of this watcher
 * (pgbk-prev, its short id) when its scan ended (pgbk-prev-end) and the
 * first change after its scan began (pgbk-prev-until; absent: none before
 * this snapshot began).  Tags are fixed when restic starts, so what comes
 * later is told by the next snapshot.
 */
static void
build_span_tags(Watcher *w)
{
	char t[40];

	w->n_run_tags = 0;
	if (w->run_from_us != 0)
	{
		fmt_rfc3339(w->run_from_us, t, sizeof(t));
		snprintf(w->run_tags[w->n_run_tags++], SPAN_TAG_MAX, "%s%s", FILES_TAG_FROM, t);
	}
	if (w->prev_short[0])
	{
		snprintf(w->run_tags[w->n_run_tags++], SPAN_TAG_MAX, "%s%s", FILES_TAG_PREV, w->prev_short);
		fmt_rfc3339(w->prev_end_us, t, sizeof(t));
		snprintf(w->run_tags[w->n_run_tags++], SPAN_TAG_MAX, "%s%s", FILES_TAG_PREV_END, t);
		if (w->prev_first_us != 0)
		{
			fmt_rfc3339(w->prev_first_us, t, sizeof(t));
			snprintf(w->run_tags[w->n_run_tags++], SPAN_TAG_MAX, "%s%s", FILES_TAG_PREV_UNTIL, t);
		}
	}
}

static void
start_backup(Watcher *w, Trigger why, int64_t now)
{
	const char **args;
	char       **owned;
	char         tags[MAX_REQUESTS][FILES_TAG_MAX];
	char         restic_time[40];
	int          n_owned = 0;
	int          n = 0;
	int          i;
	int          j;
	size_t       max = 10 + 2 * (size_t) MAX_SPAN_TAGS + 2 * (size_t) MAX_REQUESTS +
	             2 * (size_t) w->set->n_roots * (size_t) (w->set->n_excludes + 1);

	args = calloc(max, sizeof(char *));
	owned = calloc(max, sizeof(char *));
	if (args == NULL || owned == NULL)
	{
		free(args);
		free(owned);
		log_error("out of memory starting a snapshot");
		return;
	}
	/* this snapshot covers the requests made so far */
	for (i = 0; i < w->n_requests; i++)
	{
		w->running_requests[i] = w->requests[i];
		w->running_request_ids[i] = w->request_ids[i];
	}
	w->n_running_requests = w->n_requests;
	w->n_requests = 0;
	w->running_trigger = why;

	/*
	 * The snapshot's time is ours: the moment restic starts, in UTC to the
	 * microsecond (restic runs with TZ=UTC and its --time parser takes a
	 * fractional second), so the record needs nothing more from restic than
	 * the snapshot id.
	 */
	/* changes read before the scan began are before it */
	process_inotify(w);
	if (w->watch && watch_degraded(w->watch) && watch_rescan(w->watch) >= 0 &&
	    !watch_degraded(w->watch))
	{
		/* every directory is watched again: what changed before is unknown */
		w->watch_start_us = pgbk_now_us();
		debounce_set_degraded(&w->deb, false);
	}
	{
		w->run_start_us = pgbk_now_us();
		/*
		 * The exact span begins at the last change before the scan (or when
		 * every directory began to be watched); unknown while some are not
		 * and for --once, which does not watch.
		 */
		w->run_from_us = 0;
		if (w->watch && !watch_degraded(w->watch) && w->watch_start_us != 0)
			w->run_from_us =
			    w->last_event_us > w->watch_start_us ? w->last_event_us : w->watch_start_us;
		w->run_first_us = 0;
		build_span_tags(w);
		pgbk_time_format(w->run_start_us, PGBK_TIME_PLAIN, restic_time, sizeof(restic_time));
		pgbk_time_format(w->run_start_us, PGBK_TIME_ISO, w->running_time, sizeof(w->running_time));
	}
	args[n++] = "backup";
	args[n++] = "--json";
	args[n++] = "--time";
	args[n++] = restic_time;
	args[n++] = "--host";
	args[n++] = w->set->host;
	args[n++] = "--tag";
	args[n++] = FILES_TAG_PGBK;
	for (i = 0; i < w->n_run_tags; i++)
	{
		args[n++] = "--tag";
		args[n++] = w->run_tags[i];
	}
	for (i = 0; i < w->n_running_requests; i++)
	{
		files_restore_point_tag(w->running_requests[i], tags[i], sizeof(tags[i]));
		args[n++] = "--tag";
		args[n++] = tags[i];
	}
	for (i = 0; i < w->set->n_roots; i++)
	{
		for (j = 0; j < w->set->n_excludes; j++)
		{
			char *p = pattern_escape(w->set->roots[i], w->set->excludes[j]);

			if (p == NULL)
				continue;
			owned[n_owned++] = p;
			args[n++] = "--exclude";
			args[n++] = p;
		}
	}
	for (i = 0; i < w->set->n_roots; i++)
		args[n++] = w->set->roots[i];
	args[n] = NULL;

	debounce_started(&w->deb, why, now);
	w->changes_during_run_us = 0;
	if (w->n_running_requests > 0)
		log_info("taking a snapshot (trigger %s, for restore point \"%s\"%s)", trigger_name(why),
		         w->running_requests[0], w->n_running_requests > 1 ? " and others" : "");
	else
		log_info("taking a snapshot (trigger %s)", trigger_name(why));
	start_job(w, JOB_BACKUP, args, now);
	for (i = 0; i < n_owned; i++)
		free(owned[i]);
	free(owned);
	free(args);
}

static void
start_lookup(Watcher *w, int64_t now)
{
	const char *args[] = {"snapshots", "--json", "--no-lock", w->lookup_sum.short_id, NULL};

	start_job(w, JOB_LOOKUP, args, now);
}

static void
start_forget(Watcher *w, int64_t now)
{
	char        keep[64];
	const char *args[] = {"forget",        "--json", "--host",  w->set->host,
	                      "--keep-within", keep,     "--prune", NULL};
	int64_t     depth = w->set->files_depth_ms;
	bool        from_catalog = record_files_depth(w->rec, &depth);

	settings_restic_duration(depth, keep, sizeof(keep));
	log_info("forgetting snapshots of host \"%s\" older than %s (the files depth, from %s) and "
	         "pruning",
	         w->set->host, keep, from_catalog ? "the catalog" : "files_depth");
	record_refresh_depth(w->rec); /* for the next time */
	start_job(w, JOB_FORGET, args, now);
}

/*
 * Start the next restic run, if one is due and none is running.  Returns
 * when the debounce's next snapshot is due if that is what the scheduler
 * now waits for, else TIMERS_NEVER.
 */
static int64_t
start_due(Watcher *w, int64_t now)
{
	Trigger why;
	int64_t next;
	bool    stopping = w->stop_signals > 0;

	if (job_active(&w->job))
		return TIMERS_NEVER;
	if (w->lookup_pending)
	{
		/* its record comes before anything else */
		if (w->lookup_due && (!stopping || now < w->stop_deadline))
		{
			w->lookup_due = false;
			start_lookup(w, now);
		}
		return TIMERS_NEVER;
	}
	if (stopping || w->once_done)
		return TIMERS_NEVER;
	if (w->once)
	{
		if (!w->once_started)
		{
			w->once_started = true;
			start_backup(w, TRIGGER_ONCE, now);
		}
		return TIMERS_NEVER;
	}
	if (w->need_unlock)
	{
		const char *args[] = {"unlock", NULL};

		start_job(w, JOB_UNLOCK, args, now);
		return TIMERS_NEVER;
	}
	next = debounce_next(&w->deb, &why);
	if (next <= now)
	{
		start_backup(w, why, now);
		return TIMERS_NEVER;
	}
	if (w->forget_now)
	{
		w->forget_now = false;
		start_forget(w, now);
		return TIMERS_NEVER;
	}
	if (w->set->forget_interval_ms > 0 && w->forget_due)
	{
		const char *args[] = {"unlock", NULL};

		/* a stale lock of a killed run would make prune fail */
		w->forget_after_unlock = true;
		forget_at(w, now + w->set->forget_interval_ms);
		start_job(w, JOB_UNLOCK, args, now);
		return TIMERS_NEVER;
	}
	return next;
}

/*
 * The scheduler step of the loop: start what is due, and keep the snapshot
 * timer on the debounce's deadline while that is what it waits for (the
 * debounce is pure and its deadline moves with every change, so it is
 * re-read here, right before the loop waits, rather than tracked).
 */
static void
schedule(Watcher *w, int64_t now)
{
	wake_at(w, &w->t_snapshot, start_due(w, now));
}

/* ----------------------------------------------------------------------
 * restic finished
 * ---------------------------------------------------------------------- */

static void
human_bytes(int64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	double                   v = (double) n;
	int                      u = 0;

	while (v >= 1024 && u < 4)
	{
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

/* Once a snapshot's full id is known: its record goes to the spool. */
static PgbkStatus
spool_snapshot(Watcher *w, const char *id, const char *time, const char *host, char **paths,
               int n_paths, char **tags, int n_tags, PgbkError *err)
{
	SpoolRecord rec;
	PgbkStatus  rc;

	memset(&rec, 0, sizeof(rec));
	rec.kind = SPOOL_SNAPSHOT;
	snprintf(rec.id, sizeof(rec.id), "%s", id);
	rec.time = (char *) time;
	rec.host = (char *) host;
	rec.paths = paths;
	rec.n_paths = n_paths;
	rec.tags = tags;
	rec.n_tags = n_tags;
	rec.restore_points = w->lookup_requests;
	rec.n_restore_points = w->n_lookup_requests;
	rec.complete = w->lookup_complete;
	rec.trigger = (char *) trigger_name(w->lookup_trigger);
	rec.sum = w->lookup_sum;
	rec.exact_from_us = w->lookup_from_us;
	rec.scan_end_us = w->lookup_end_us;
	rec.request_ids = w->lookup_request_ids;
	rec.n_request_ids = w->n_lookup_requests;
	if (w->lookup_from_us != 0)
	{
		/* a change since the scan began ends the span (during the scan: empty) */
		rec.exact_until_us = w->lookup_first_us;
		if (rec.exact_until_us == 0 && w->stop_signals > 0)
			rec.exact_until_us = pgbk_now_us(); /* nobody watches after this */
	}
	rc = spool_append(w->spool, &rec, err);
	if (rc != PGBK_OK)
		return rc;
	{
		int i;

		for (i = 0; i < w->n_lookup_requests; i++)
			w->served[w->n_served++ % SERVED_RING] = w->lookup_request_ids[i];
	}
	if (w->lookup_from_us != 0 && rec.exact_until_us == 0)
	{
		/*
		 * The newest snapshot, exact until the next change.  One taken
		 * before it with no change since (a request, a safety snapshot)
		 * holds the same files: its span ends where no change was seen
		 * yet, and this one's goes on.
		 */
		if (w->open_span && w->open_id[0] && w->open_until_us == 0)
			spool_until(w, w->open_id, w->ino_checked_us);
		w->open_span = true;
		w->open_until_us = 0;
		snprintf(w->open_id, sizeof(w->open_id), "%s", id);
	}
	snprintf(w->prev_short, sizeof(w->prev_short), "%.8s", id);
	w->prev_end_us = w->lookup_end_us;
	w->prev_first_us = w->lookup_first_us;
	record_kick(w->rec);
	log_info("snapshot %s (taken at %s, trigger %s%s) is queued for the catalog", id, time,
	         rec.trigger, w->lookup_complete ? "" : ", incomplete");
	w->lookup_pending = false;
	free_names(w->lookup_requests, &w->n_lookup_requests);
	if (w->once)
	{
		w->once_done = true;
		w->once_exit = w->lookup_complete ? WATCHER_EXIT_OK : WATCHER_EXIT_INCOMPLETE;
	}
	return PGBK_OK;
}

typedef struct FindId
{
	const char *short_id;
	char        id[FILES_ID_LEN + 1];
	int         n;
} FindId;

static PgbkStatus
find_id_cb(void *ctx, const RepoObjectInfo *info, PgbkError *err)
{
	FindId     *f = ctx;
	const char *name = strrchr(info->key, '/');

	(void) err;
	name = name ? name + 1 : info->key;
	if (strlen(name) == FILES_ID_LEN && strspn(name, "0123456789abcdef") == FILES_ID_LEN &&
	    strncmp(name, f->short_id, FILES_SHORT_ID_LEN) == 0)
	{
		memcpy(f->id, name, FILES_ID_LEN + 1);
		f->n++;
	}
	return PGBK_OK;
}

/*
 * The full id of the snapshot just taken, from a listing of the restic
 * repository's snapshots/ directory in pgbk's repository.  False if that is
 * not possible or not conclusive (then restic snapshots is asked).
 */
static bool
direct_lookup(Watcher *w)
{
	char       prefix[128];
	FindId     f;
	PgbkError  err;
	char      *tags[MAX_REQUESTS + MAX_SPAN_TAGS + 1];
	char       tagbuf[MAX_REQUESTS][FILES_TAG_MAX];
	int        n_tags = 0;
	int        i;
	PgbkStatus rc;

	if (w->prepo == NULL)
		return false;
	memset(&f, 0, sizeof(f));
	f.short_id = w->lookup_sum.short_id;
	pgbk_error_clear(&err);
	snprintf(prefix, sizeof(prefix), "%ssnapshots/%s", LAYOUT_FILES_PREFIX, w->lookup_sum.short_id);
	if ((rc = repo_list(w->prepo, prefix, NULL, find_id_cb, &f, &err)) != PGBK_OK)
	{
		log_debug("could not list %s: %s", prefix, err.msg);
		return false;
	}
	if (f.n != 1)
		return false;
	tags[n_tags++] = FILES_TAG_PGBK;
	for (i = 0; i < w->n_lookup_tags; i++)
		tags[n_tags++] = w->lookup_tags[i];
	for (i = 0; i < w->n_lookup_requests; i++)
	{
		files_restore_point_tag(w->lookup_requests[i], tagbuf[i], sizeof(tagbuf[i]));
		tags[n_tags++] = tagbuf[i];
	}
	if (spool_snapshot(w, f.id, w->lookup_time, w->set->host, w->set->roots, w->set->n_roots, tags,
	                   n_tags, &err) != PGBK_OK)
	{
		log_error("%s", err.msg);
		log_error_detail(LOG_LEVEL_ERROR, &err);
		return false;
	}
	return true;
}

static void
backup_finished(Watcher *w, const FilesExit *ex, int64_t now)
{
	const Job *job = &w->job;
	bool       wrote = !ex->signaled &&
	             (ex->code == FILES_EXIT_OK || ex->code == FILES_EXIT_INCOMPLETE) &&
	             job->have_summary;
	PgbkError err;
	char      added[32];
	int       i;

	if (wrote)
	{
		/*
		 * restic has exited: its scan ended by now.  Changes still queued
		 * may have happened during it.
		 */
		w->lookup_end_us = pgbk_now_us();
		process_inotify(w);
		if (w->watch == NULL || watch_degraded(w->watch))
			w->run_from_us = 0;
		w->lookup_from_us = w->run_from_us;
		w->lookup_first_us = w->run_first_us;
		memcpy(w->lookup_tags, w->run_tags, sizeof(w->lookup_tags));
		w->n_lookup_tags = w->n_run_tags;
		debounce_finished(&w->deb, true, now);
		/* the snapshot covers every change made before it began */
		w->changes_since_us = w->changes_during_run_us;
		record_changes(w->rec, w->changes_since_us);
		w->lookup_pending = true;
		w->lookup_sum = job->summary;
		w->lookup_complete = ex->code == FILES_EXIT_OK;
		w->lookup_trigger = w->running_trigger;
		memcpy(w->lookup_time, w->running_time, sizeof(w->lookup_time));
		w->lookup_failures = 0;
		lookup_at(w, now);
		for (i = 0; i < w->n_running_requests; i++)
		{
			w->lookup_requests[i] = w->running_requests[i];
			w->lookup_request_ids[i] = w->running_request_ids[i];
		}
		w->n_lookup_requests = w->n_running_requests;
		w->n_running_requests = 0;
		human_bytes(job->summary.data_added, added, sizeof(added));
		log_info("snapshot %s taken in %.1f s: %lld new, %lld changed, %lld unmodified files, "
		         "%s added",
		         job->summary.short_id, job->summary.total_duration,
		         (long long) job->summary.files_new, (long long) job->summary.files_changed,
		         (long long) job->summary.files_unmodified, added);
		if (!w->lookup_complete)
			log_warning("snapshot %s is incomplete: restic could not read some files (see its "
			            "messages above); it is recorded as incomplete",
			            job->summary.short_id);
		direct_lookup(w); /* else restic snapshots, from schedule() */
		return;
	}

	pgbk_error_clear(&err);
	if (!ex->signaled && (ex->code == FILES_EXIT_OK || ex->code == FILES_EXIT_INCOMPLETE))
		pgbk_error(&err, PGBK_ERR,
		           "restic backup exited with code %d but printed no summary; no snapshot is "
		           "recorded",
		           ex->code);
	else
		files_fail(w->repo, "take a snapshot", ex, (const char *) job->err_tail.data, &err);
	/* a restic that was killed or stopped may have left its lock behind */
	if (ex->signaled || job->term_signals > 0 ||
	    strstr(job->err_tail.data ? (const char *) job->err_tail.data : "", "already locked") !=
	        NULL)
		w->need_unlock = true;
	if (w->stop_signals > 0 && job->term_signals > 0)
	{
		log_info("restic was stopped before its snapshot was written; the next start takes a "
		         "fresh one");
		debounce_finished(&w->deb, false, now);
		requeue_requests(w);
		return;
	}
	if (w->once)
	{
		log_error("%s", err.msg);
		log_error_detail(LOG_LEVEL_ERROR, &err);
		w->once_done = true;
		w->once_exit = WATCHER_EXIT_RESTIC;
		debounce_finished(&w->deb, false, now);
		requeue_requests(w);
		return;
	}
	log_error("%s; retrying in %lld s", err.msg, (long long) (debounce_backoff(&w->deb) / 1000));
	log_error_detail(LOG_LEVEL_ERROR, &err);
	debounce_finished(&w->deb, false, now);
	requeue_requests(w);
	record_failure(w->rec, err.msg);
}

/* restic snapshots --json <short id> finished: the fallback lookup. */
static void
lookup_finished(Watcher *w, const FilesExit *ex, int64_t now)
{
	const Job           *job = &w->job;
	FilesSnapshotList   *list = NULL;
	const FilesSnapshot *snap = NULL;
	PgbkError            err;
	PgbkStatus           rc = PGBK_OK;
	size_t               i;
	int64_t              delay;
	int                  k;

	pgbk_error_clear(&err);
	if (ex->signaled || ex->code != 0)
		rc = files_fail(w->repo, "look up the snapshot just taken", ex,
		                (const char *) job->err_tail.data, &err);
	else
		rc = files_parse_snapshots(job->out_all.data ? (const char *) job->out_all.data : "[]",
		                           job->out_all.len ? job->out_all.len : 2, &list, &err);
	for (i = 0; rc == PGBK_OK && i < list->n; i++)
	{
		if (strcmp(list->items[i].short_id, w->lookup_sum.short_id) != 0)
			continue;
		if (snap != NULL)
			rc = pgbk_error(&err, PGBK_ERR, "two snapshots have the short id %s",
			                w->lookup_sum.short_id);
		snap = &list->items[i];
	}
	if (rc == PGBK_OK && snap == NULL)
		rc = pgbk_error(&err, PGBK_NOT_FOUND,
		                "restic snapshots does not list snapshot %s, which restic backup reported",
		                w->lookup_sum.short_id);
	if (rc == PGBK_OK)
		rc = spool_snapshot(w, snap->id, w->lookup_time, snap->hostname, snap->paths, snap->n_paths,
		                    snap->tags, snap->n_tags, &err);
	files_snapshot_list_free(list);
	if (rc == PGBK_OK)
		return;
	w->lookup_failures++;
	delay = w->set->retry_ms;
	for (k = 1; k < w->lookup_failures && delay < w->set->retry_max_ms; k++)
		delay *= 2;
	if (delay > w->set->retry_max_ms)
		delay = w->set->retry_max_ms;
	lookup_at(w, now + delay);
	log_error("could not record snapshot %s: %s; retrying in %lld s", w->lookup_sum.short_id,
	          err.msg, (long long) (delay / 1000));
	log_error_detail(LOG_LEVEL_ERROR, &err);
	if (w->once)
	{
		w->once_done = true;
		w->once_exit = WATCHER_EXIT_RESTIC;
		w->lookup_pending = false;
	}
}

typedef struct PresentIds
{
	char **ids;
	size_t n;
	bool  *present;
} PresentIds;

static PgbkStatus
present_cb(void *ctx, const RepoObjectInfo *info, PgbkError *err)
{
	PresentIds *p = ctx;
	const char *name = strrchr(info->key, '/');
	size_t      i;

	(void) err;
	name = name ? name + 1 : info->key;
	for (i = 0; i < p->n; i++)
		if (strcmp(p->ids[i], name) == 0)
			p->present[i] = true;
	return PGBK_OK;
}

/*
 * Keep only the ids the restic repository no longer has: the catalog marks
 * a snapshot forgotten (and plans stop naming it) only once it is gone.
 * One listing of files/snapshots/ in pgbk's repository, else `restic
 * snapshots` (once per forget_interval).  On failure nothing is recorded:
 * the next forget tries again.
 */
static bool
keep_gone_ids(Watcher *w, char **ids, size_t *n_ids)
{
	PresentIds p;
	PgbkError  err;
	PgbkStatus rc;
	size_t     i, kept = 0;

	p.ids = ids;
	p.n = *n_ids;
	p.present = calloc(*n_ids + 1, sizeof(bool));
	if (p.present == NULL)
		return false;
	pgbk_error_clear(&err);
	if (w->prepo != NULL)
	{
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "%ssnapshots/", LAYOUT_FILES_PREFIX);
		rc = repo_list(w->prepo, prefix, NULL, present_cb, &p, &err);
	}
	else
	{
		FilesSnapshotList *list = NULL;
		size_t             k;

		rc = files_list_snapshots(w->repo, NULL, NULL, &list, &err);
		for (k = 0; rc == PGBK_OK && k < list->n; k++)
			for (i = 0; i < p.n; i++)
				if (strcmp(list->items[k].id, ids[i]) == 0)
					p.present[i] = true;
		files_snapshot_list_free(list);
	}
	if (rc != PGBK_OK)
	{
		log_warning("could not check which snapshots restic forget removed (%s); the catalog "
		            "still lists them until the next forget",
		            err.msg);
		free(p.present);
		return false;
	}
	for (i = 0; i < p.n; i++)
	{
		if (p.present[i])
		{
			log_warning("restic forget reported snapshot %s removed, but the repository still "
			            "has it; it stays in the catalog",
			            ids[i]);
			free(ids[i]);
		}
		else
			ids[kept++] = ids[i];
	}
	*n_ids = kept;
	free(p.present);
	return true;
}

static void
forget_finished(Watcher *w, const FilesExit *ex, int64_t now)
{
	const Job  *job = &w->job;
	int64_t     retry_ms;
	PgbkError   err;
	char      **ids = NULL;
	size_t      n_ids = 0;
	size_t      i;
	SpoolRecord rec;

	pgbk_error_clear(&err);
	if (ex->signaled || ex->code != 0)
	{
		files_fail(w->repo, "forget old snapshots", ex, (const char *) job->err_tail.data, &err);
		if (strstr(job->err_tail.data ? (const char *) job->err_tail.data : "", "locked"))
			w->need_unlock = true;
		retry_ms = w->set->forget_interval_ms < 3600000 ? w->set->forget_interval_ms : 3600000;
		forget_at(w, now + retry_ms);
		log_error("%s; trying again in %lld min", err.msg, (long long) (retry_ms / 60000));
		log_error_detail(LOG_LEVEL_ERROR, &err);
		if (w->stop_signals == 0)
			record_failure(w->rec, err.msg);
		return;
	}
	write_forget_stamp(w);
	if (files_parse_forget(job->out_all.data ? (const char *) job->out_all.data : "",
	                       job->out_all.len, &ids, &n_ids, &err) != PGBK_OK)
	{
		log_warning("restic forget succeeded but its output could not be read (%s); the "
		            "catalog still lists the snapshots it removed until they are forgotten again",
		            err.msg);
		return;
	}
	log_info("restic forget removed %zu snapshot(s) older than the files depth", n_ids);
	if (n_ids > 0 && !keep_gone_ids(w, ids, &n_ids))
	{
		for (i = 0; i < n_ids; i++)
			free(ids[i]);
		n_ids = 0;
	}
	if (n_ids > 0)
	{
		memset(&rec, 0, sizeof(rec));
		rec.kind = SPOOL_FORGOTTEN;
		rec.ids = ids;
		rec.n_ids = (int) n_ids;
		if (spool_append(w->spool, &rec, &err) != PGBK_OK)
			log_error("%s", err.msg);
	}
	for (i = 0; i < n_ids; i++)
		free(ids[i]);
	free(ids);
}

static void
job_finished(Watcher *w, int64_t now)
{
	FilesExit ex;
	PgbkError err;
	JobKind   kind = w->job.kind;

	job_result(&w->job, &ex);
	log_debug("restic %s finished after %.1f s", job_name(kind),
	          (double) (now - w->job.started_ms) / 1000.0);
	switch (kind)
	{
		case JOB_UNLOCK:
			w->need_unlock = false;
			if (ex.signaled || ex.code != 0)
			{
				pgbk_error_clear(&err);
				files_fail(w->repo, "remove stale locks", &ex, (const char *) w->job.err_tail.data,
				           &err);
				log_warning("%s", err.msg);
			}
			if (w->forget_after_unlock)
			{
				w->forget_after_unlock = false;
				w->forget_now = true;
			}
			break;
		case JOB_BACKUP:
			backup_finished(w, &ex, now);
			break;
		case JOB_LOOKUP:
			lookup_finished(w, &ex, now);
			break;
		case JOB_FORGET:
			forget_finished(w, &ex, now);
			break;
		case JOB_INIT:
		case JOB_NONE:
			break;
	}
	job_reset(&w->job);
}

/* ----------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------- */

/*
 * Wake the loop at the stop deadlines: enforce_stop() then signals restic,
 * should_exit() gives up on delivering what is spooled.
 */
static void
arm_stop_timers(Watcher *w)
{
	wake_at(w, &w->t_stop, w->stop_deadline);
	wake_at(w, &w->t_kill, w->stop_deadline + KILL_GRACE_MS);
	wake_at(w, &w->t_exit, w->exit_deadline);
}

static void
handle_signals(Watcher *w, int64_t now)
{
	struct signalfd_siginfo si;

	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
	{
		switch (si.ssi_signo)
		{
			case SIGTERM:
			case SIGINT:
			case SIGQUIT:
				w->stop_signals++;
				if (w->stop_signals == 1)
				{
					/* nobody watches after this: the open span ends now */
					if (w->open_span && w->open_id[0])
					{
						spool_until(w, w->open_id, pgbk_now_us());
						w->open_span = false;
					}
					w->stop_deadline = now + w->set->stop_timeout_ms;
					w->exit_deadline = w->stop_deadline + DELIVER_GRACE_MS;
					arm_stop_timers(w);
					if (job_active(&w->job))
						log_info("received %s: stopping once restic %s is done (at most %lld s)",
						         strsignal((int) si.ssi_signo), job_name(w->job.kind),
						         (long long) (w->set->stop_timeout_ms / 1000));
					else
						log_info("received %s: stopping", strsignal((int) si.ssi_signo));
				}
				else
				{
					log_info("received %s again: stopping restic now",
					         strsignal((int) si.ssi_signo));
					w->stop_deadline = now;
					w->exit_deadline = now + KILL_GRACE_MS + 1000;
					arm_stop_timers(w);
				}
				break;
			case SIGHUP:
				w->reload_requested = true;
				break;
			case SIGCHLD:
				job_reap(&w->job);
				break;
			default:
				break;
		}
	}
}

/* Stopping: make a running restic end once the stop deadline is reached. */
static void
enforce_stop(Watcher *w, int64_t now)
{
	if (w->stop_signals == 0 || !job_active(&w->job) || w->job.reaped)
		return;
	if (now >= w->stop_deadline && w->job.term_signals == 0)
	{
		log_info("stopping restic %s (pid %d)", job_name(w->job.kind), (int) w->job.child.pid);
		job_signal(&w->job, SIGTERM);
	}
	else if (now >= w->stop_deadline + KILL_GRACE_MS && w->job.term_signals == 1)
	{
		log_warning("restic %s did not stop within %d s: killing it", job_name(w->job.kind),
		            KILL_GRACE_MS / 1000);
		job_signal(&w->job, SIGKILL);
		w->need_unlock = true;
	}
}

static bool
should_exit(Watcher *w, int64_t now)
{
	if (job_active(&w->job))
		return false;
	if (w->once)
	{
		if (!w->once_done || w->lookup_pending)
			return false;
		if (w->stop_signals > 0)
			return now >= w->exit_deadline || record_idle(w->rec);
		/* deliver what is spooled, unless the catalog cannot be reached */
		if (record_idle(w->rec))
			return true;
		if (record_unreachable(w->rec))
		{
			if (w->once_exit == WATCHER_EXIT_OK || w->once_exit == WATCHER_EXIT_INCOMPLETE)
				w->once_exit = WATCHER_EXIT_SPOOLED;
			return true;
		}
		return false;
	}
	if (w->stop_signals == 0)
		return false;
	if (w->lookup_pending && now < w->stop_deadline)
		return false;
	return now >= w->exit_deadline || record_idle(w->rec) || !record_connected(w->rec);
}

static void
run(Watcher *w)
{
	for (;;)
	{
		struct pollfd pfd[6];
		int           n = 0;
		int           i_ino = -1;
		int           i_db = -1;
		int           i_job = -1;
		int           n_job;
		int64_t       now = timers_now();
		int64_t       poll_enter_us;
		int64_t       poll_return_us;
		short         db_events = 0;
		int           db_fd;
		int           k;

		timers_fire(&w->timers, now);
		schedule(w, now);
		if (should_exit(w, now))
			break;

		pfd[n++] = (struct pollfd){.fd = w->sigfd, .events = POLLIN};
		if (w->watch)
		{
			i_ino = n;
			pfd[n++] = (struct pollfd){.fd = watch_fd(w->watch), .events = POLLIN};
		}
		i_job = n;
		n_job = job_pollfds(&w->job, &pfd[n]);
		n += n_job;
		db_fd = record_prepare_poll(w->rec, &db_events);
		if (db_fd >= 0)
		{
			i_db = n;
			pfd[n++] = (struct pollfd){.fd = db_fd, .events = db_events};
		}

		poll_enter_us = pgbk_now_us();
		if (poll(pfd, (nfds_t) n, timers_timeout(&w->timers, now)) < 0 && errno != EINTR)
		{
			log_fatal("poll failed: %s", strerror(errno));
			break;
		}
		now = timers_now();
		poll_return_us = pgbk_now_us();
		if (i_ino >= 0 && !pfd[i_ino].revents)
		{
			/* the inotify queue was empty until now */
			w->ino_checked_us = poll_return_us;
		}
		else if (i_ino >= 0 && poll_return_us - poll_enter_us > 2 * WAKE_SLACK_US &&
		         poll_return_us - WAKE_SLACK_US > w->ino_checked_us)
		{
			/*
			 * poll slept and a change woke it: the kernel wakes us as the
			 * event is queued, so it happened at most WAKE_SLACK_US ago
			 */
			w->ino_checked_us = poll_return_us - WAKE_SLACK_US;
		}

		if (pfd[0].revents)
			handle_signals(w, now);
		if (i_ino >= 0 && pfd[i_ino].revents && w->watch)
			process_inotify(w);
		for (k = 0; k < n_job; k++)
		{
			if (pfd[i_job + k].revents)
				job_io(&w->job, pfd[i_job + k].fd, pfd[i_job + k].revents);
		}
		if (job_active(&w->job))
		{
			job_reap(&w->job);
			enforce_stop(w, now);
			if (job_done(&w->job))
				job_finished(w, now);
		}
		record_step(w->rec, i_db >= 0 ? pfd[i_db].revents : 0, now);
		if (w->reload_requested && w->stop_signals == 0 && !job_active(&w->job) &&
		    !w->lookup_pending)
			reload(w, now);
	}
}

/* ----------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------- */

/*
 * pgbk_interrupted() for common/ code that blocks (an S3 listing and its
 * retries): true once a stop signal waits in the signalfd.
 */
static bool
stop_pending(void)
{
	sigset_t pending;

	return sigpending(&pending) == 0 &&
	       (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1 ||
	        sigismember(&pending, SIGQUIT) == 1);
}

static int
exit_code_for(PgbkStatus st)
{
	return st == PGBK_ERR_CONFIG || st == PGBK_ERR_USAGE ? WATCHER_EXIT_CONFIG : WATCHER_EXIT_FAIL;
}

static int
do_init(Watcher *w)
{
	const char *args[] = {"init", NULL};
	PgbkBuf     tail;
	FilesExit   ex;
	PgbkError   err;
	int         rc = WATCHER_EXIT_OK;

	pgbk_buf_init(&tail);
	pgbk_error_clear(&err);
	if (files_run(w->repo, args, NULL, &tail, &ex, &err) != PGBK_OK)
	{
		log_error("could not run restic init: %s", err.msg);
		rc = WATCHER_EXIT_RESTIC;
	}
	else if (!ex.signaled && ex.code == 0)
		log_info("created restic repository \"%s\"", w->repo->repository);
	else if (tail.data && (strstr((const char *) tail.data, "already initialized") ||
	                       strstr((const char *) tail.data, "already exists")))
		log_info("restic repository \"%s\" exists already", w->repo->repository);
	else
	{
		files_fail(w->repo, "create the repository", &ex, (const char *) tail.data, &err);
		log_error("%s", err.msg);
		rc = WATCHER_EXIT_RESTIC;
	}
	pgbk_buf_free(&tail);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"once", no_argument, NULL, 'o'},
	    {"init", no_argument, NULL, 'i'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	Watcher     w;
	const char *config_path = getenv("PGBK_WATCHER_CONFIG");
	bool        init = false;
	bool        verbose = false;
	PgbkError   err;
	PgbkStatus  rc;
	sigset_t    mask;
	int         c;
	int         code = WATCHER_EXIT_OK;
	int64_t     now;

	memset(&w, 0, sizeof(w));
	timers_init(&w.timers);
	w.sigfd = -1;
	job_init(&w.job);
	log_init(false);
	pgbk_error_clear(&err);
	while ((c = getopt_long(argc, argv, "c:vVh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config_path = optarg;
				break;
			case 'o':
				w.once = true;
				break;
			case 'i':
				init = true;
				break;
			case 'v':
				verbose = true;
				break;
			case 'V':
				printf("pgbk-watcher %s\n", PGBK_VERSION);
				return WATCHER_EXIT_OK;
			case 'h':
				usage();
				return WATCHER_EXIT_OK;
			default:
				fprintf(stderr, "Try \"pgbk-watcher --help\" for more information.\n");
				return WATCHER_EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pgbk-watcher: unexpected argument \"%s\"\n", argv[optind]);
		fprintf(stderr, "Try \"pgbk-watcher --help\" for more information.\n");
		return WATCHER_EXIT_USAGE;
	}
	if (init && w.once)
	{
		fprintf(stderr, "pgbk-watcher: --init and --once cannot be combined\n");
		return WATCHER_EXIT_USAGE;
	}
	if (config_path == NULL)
		config_path = WATCHER_DEFAULT_CONFIG;

	pgbk_hooks.interrupted = stop_pending;
	if (pgbk_crypto_init(&err) != PGBK_OK)
	{
		log_fatal("%s", err.msg);
		log_error_detail(LOG_LEVEL_FATAL, &err);
		return WATCHER_EXIT_FAIL;
	}
	if ((rc = settings_load(config_path, &w.set, &err)) != PGBK_OK)
	{
		log_fatal("%s", err.msg);
		log_error_detail(LOG_LEVEL_FATAL, &err);
		return exit_code_for(rc);
	}
	w.verbose = verbose;
	log_set_debug(w.set->debug || verbose);
	if ((rc = open_repo(w.set, &w.pgbk, &w.repo, &w.prepo, &err)) != PGBK_OK)
	{
		log_fatal("%s", err.msg);
		log_error_detail(LOG_LEVEL_FATAL, &err);
		settings_free(w.set);
		return exit_code_for(rc);
	}
	if (init)
	{
		code = do_init(&w);
		goto done;
	}
	if ((rc = spool_open(w.set->spool_dir, &w.spool, &err)) != PGBK_OK)
	{
		log_fatal("%s", err.msg);
		log_error_detail(LOG_LEVEL_FATAL, &err);
		code = exit_code_for(rc);
		goto done;
	}

	/* signals arrive through the loop, never in a handler */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
	    (w.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
	{
		log_fatal("could not set up signal handling: %s", strerror(errno));
		code = WATCHER_EXIT_FAIL;
		goto done;
	}

	now = timers_now();
	if (!w.once)
	{
		if ((rc = watch_open(w.set->roots, w.set->n_roots, w.set->excludes, w.set->n_excludes,
		                     w.set->debug_max_watches, &w.watch, &err)) != PGBK_OK)
		{
			log_fatal("%s", err.msg);
			log_error_detail(LOG_LEVEL_FATAL, &err);
			code = exit_code_for(rc);
			goto done;
		}
		log_info("watching %zu directories under %d root(s) in %lld ms", watch_count(w.watch),
		         w.set->n_roots, (long long) (timers_now() - now));
		w.ino_checked_us = pgbk_now_us();
		w.watch_start_us = watch_degraded(w.watch) ? 0 : w.ino_checked_us;
	}
	w.rec = record_new(w.set->conninfo, w.set->host, w.spool, &w.timers, on_request, &w);
	if (w.rec == NULL)
	{
		log_fatal("out of memory");
		code = WATCHER_EXIT_FAIL;
		goto done;
	}
	now = timers_now();
	debounce_init(&w.deb, w.set->settle_ms, w.set->max_wait_ms, w.set->safety_ms, w.set->retry_ms,
	              w.set->retry_max_ms, now);
	if (w.watch)
		debounce_set_degraded(&w.deb, watch_degraded(w.watch));
	w.need_unlock = !w.once;
	read_forget_stamp(&w, now);
	log_info("started%s: host \"%s\", files repository \"%s\", %zu record(s) in the spool",
	         w.once ? " for one snapshot" : "", w.set->host, w.repo->repository,
	         spool_pending(w.spool));
	if (!w.once)
	{
		SpoolRecord close_rec;

		/*
		 * Spans a previous run left open end where their scan ended: when it
		 * stopped watching is unknown.  After its spooled records, in order.
		 */
		memset(&close_rec, 0, sizeof(close_rec));
		close_rec.kind = SPOOL_CLOSE;
		close_rec.host = w.set->host;
		if (spool_append(w.spool, &close_rec, &err) != PGBK_OK)
			log_error("%s", err.msg);
	}

	run(&w);

	if (w.once)
		code = w.once_exit;
	if (spool_pending(w.spool) > 0)
		log_info("%zu record(s) stay in the spool for the next run", spool_pending(w.spool));
	log_info("stopped");

done:
	if (job_active(&w.job) && !w.job.reaped)
	{
		int st;

		job_signal(&w.job, SIGKILL);
		while (waitpid(w.job.child.pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	job_reset(&w.job);
	free_names(w.requests, &w.n_requests);
	free_names(w.running_requests, &w.n_running_requests);
	free_names(w.lookup_requests, &w.n_lookup_requests);
	record_free(w.rec);
	watch_close(w.watch);
	spool_close(w.spool);
	if (w.sigfd >= 0)
		close(w.sigfd);
	files_repo_free(w.repo);
	repo_close(w.prepo);
	config_free(w.pgbk);
	settings_free(w.set);
	return code;
}
