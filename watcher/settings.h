/*
 * settings.h
 *	  Program pgbk-watcher; uses common/base only.
 *	  pgbk-watcher's configuration file (default /etc/pgbk/watcher.conf).
 *
 * Same syntax as postgresql.conf and pgbk.conf, read by the same reader
 * (common/config/confread.h): "name = value" lines, '#' comments, values
 * bare or single-quoted ('' for a quote), include directives refused.  Lists are
 * comma-separated inside one value.  Relative paths are resolved against
 * the file's directory.  Settings (defaults in brackets):
 *
 *   pgbk_config          pgbk.conf, describing the repository; the files
 *                        repository is derived from it               []
 *   roots                directories to back up, absolute   (required)
 *   excludes             directories (or files) relative to each root,
 *                        shell patterns allowed ('', none)
 *                        [var/cache, var/tmp, var/log, var/sessions,
 *                         public/var/tmp]
 *   host                 restic --host, stable across runs [host name]
 *   conninfo             libpq connection string of the catalog ['']
 *   spool_dir            records waiting for the catalog
 *                        [/var/lib/pgbk-watcher/spool]
 *   settle_delay         quiet time after the last change       [10s]
 *   max_wait             longest delay after the first change   [60s]
 *   safety_interval      unconditional snapshot period (0: off)  [1h]
 *   retry_delay          first delay after a failed restic run   [10s]
 *   retry_delay_max      longest delay between retries          [5min]
 *   stop_timeout         on SIGTERM, how long a running backup may
 *                        still take before restic is stopped     [60s]
 *   forget_interval      how often restic forget --prune runs (0: never)
 *                        [1d]
 *   files_depth          the files scope's depth when the catalog has
 *                        none (the catalog's comes from pgbk.scope, set
 *                        with bk_set_policy): older snapshots are
 *                        forgotten                              [180d]
 *   restic_binary        [restic]      } until pgbk.conf has them; set
 *   restic_password_file (required)    } here they override pgbk.conf
 *   files_repository     [derived]     }
 *   cache_dir            restic --cache-dir [restic's default]
 *   log_level            info | debug                          [info]
 *   debug_max_watches    test knob: behave as if the kernel allowed only
 *                        this many watches (0: the kernel's limit)  [0]
 */
#ifndef WATCHER_SETTINGS_H
#define WATCHER_SETTINGS_H

#include "base/pgbk_common.h"

#define WATCHER_DEFAULT_CONFIG "/etc/pgbk/watcher.conf"

typedef struct WatcherSettings
{
	char   *config_path;
	char   *pgbk_config;
	char  **roots; /* absolute, no trailing '/' */
	int     n_roots;
	char  **excludes; /* relative, no leading or trailing '/' */
	int     n_excludes;
	char   *host;
	char   *conninfo;
	char   *spool_dir;
	int64_t settle_ms;
	int64_t max_wait_ms;
	int64_t safety_ms;
	int64_t retry_ms;
	int64_t retry_max_ms;
	int64_t stop_timeout_ms;
	int64_t forget_interval_ms;
	int64_t files_depth_ms;
	char   *restic_binary;
	char   *restic_password_file;
	char   *files_repository;
	char   *cache_dir;
	bool    debug;
	int     debug_max_watches;
} WatcherSettings;

/*
 * Read and validate the file at path.  Like pgbk.conf it is refused when
 * group or others can write it or it belongs to neither the running user
 * nor root (pgbk_read_trusted_file): it names restic_binary and pgbk_config.
 */
PgbkStatus settings_load(const char *path, WatcherSettings **out, PgbkError *err);
/* The same from a string (tests); base_dir resolves relative paths. */
PgbkStatus settings_parse_string(const char *text, const char *origin, const char *base_dir,
                                 WatcherSettings **out, PgbkError *err);
void       settings_free(WatcherSettings *s);

/* True if the two differ in roots or excludes (the watch table's input). */
bool settings_watch_changed(const WatcherSettings *a, const WatcherSettings *b);

/* restic's --keep-within value for a duration: "180d0h" (at least 1h). */
void settings_restic_duration(int64_t ms, char *buf, size_t len);

#endif /* WATCHER_SETTINGS_H */
