/*
 * files.h
 *	  Room files (programs only, never pgbk.so); uses base and config.
 *	  The files scope: restic driven from plain C.  Shared by pgbk-watcher
 *	  (which takes the snapshots) and the pgbk CLI (which restores them with
 *	  `pgbk restore --files-to DIR`).
 *
 * The restic repository lives beside pgbk's own repository: for a local
 * repository '/path' it is '/path/files', for 's3://bucket/prefix' it is
 * 's3:<s3_endpoint>/bucket/prefix/files' (pgbk.conf's files_repository
 * overrides that).  restic gets the S3 credentials of pgbk.conf's
 * credentials file through its environment (never on its command line,
 * which other users can read in /proc), the CA file as --cacert and the
 * URI style and region as -o s3.bucket-lookup / -o s3.region.
 *
 * Everything here runs restic as a child process with fork + execve and an
 * argv array (never a shell), with stdin on /dev/null and stdout/stderr on
 * pipes.  The watcher uses files_spawn() inside its own event loop; the
 * synchronous helpers (files_run and what is built on it) are for the CLI.
 *
 * Snapshot tags: every snapshot the watcher takes carries FILES_TAG_PGBK;
 * a snapshot taken for a named restore point also carries "rp:<name>" with
 * the name percent-encoded (restic splits --tag values at commas).
 */
#ifndef PGBK_FILES_H
#define PGBK_FILES_H

#include "config/config.h"
#include "base/pgbk_common.h"

#include <sys/types.h>

#define FILES_TAG_PGBK      "pgbk"
#define FILES_TAG_RP_PREFIX "rp:"
/*
 * The exact span, in RFC 3339 UTC (see pgbk.file_snapshot and
 * watcher/main.c, build_span_tags): pgbk-from:<last change before the
 * scan>, and about the previous snapshot of the same watcher:
 * pgbk-prev:<its short id>, pgbk-prev-end:<when its scan ended>,
 * pgbk-prev-until:<first change after its scan began> (absent: none before
 * this snapshot began).
 */
#define FILES_TAG_FROM        "pgbk-from:"
#define FILES_TAG_PREV        "pgbk-prev:"
#define FILES_TAG_PREV_END    "pgbk-prev-end:"
#define FILES_TAG_PREV_UNTIL  "pgbk-prev-until:"
#define FILES_ID_LEN          64 /* hex digits of a full snapshot id */
#define FILES_SHORT_ID_LEN    8
#define FILES_EXIT_OK         0
#define FILES_EXIT_INCOMPLETE 3  /* restic 0.14: snapshot written, some files unreadable */
#define FILES_RP_NAME_MAX     63 /* like pg_create_restore_point() */
#define FILES_TAG_MAX         (sizeof(FILES_TAG_RP_PREFIX) + 3 * FILES_RP_NAME_MAX + 1)

/*
 * The files scope's settings (pgbk.conf: restic_binary,
 * restic_password_file, files_repository; the watcher adds cache_dir).
 * NULL members take the defaults described above;
 * files_settings_from_config() copies them from a PgbkConfig.
 */
typedef struct FilesSettings
{
	const char *restic_binary; /* NULL: "restic", searched in PATH */
	const char *password_file; /* required, mode 0600 */
	const char *repository;    /* NULL: derived from pgbk.conf's repository */
	const char *cache_dir;     /* NULL: restic's default (~/.cache/restic) */
} FilesSettings;

/* Everything needed to run restic against the files repository. */
typedef struct FilesRepo
{
	char  *restic_path; /* absolute path of the restic binary */
	char  *repository;  /* restic's -r value */
	char  *password_file;
	char  *cacert; /* --cacert, or NULL */
	bool   insecure_tls;
	char  *s3_lookup;    /* -o s3.bucket-lookup=, or NULL */
	char  *s3_region;    /* -o s3.region=, or NULL */
	char  *cache_dir;    /* --cache-dir, or NULL */
	char **envp;         /* restic's whole environment, NULL-terminated */
	int    n_secret_env; /* envp[0 .. n_secret_env) hold secrets */
} FilesRepo;

/*
 * The files scope's settings as pgbk.conf gives them (NULL where it does
 * not).  Callers may override members before files_repo_open().
 */
void files_settings_from_config(const PgbkConfig *cfg, FilesSettings *fs);

/*
 * Build a FilesRepo from pgbk.conf (may be NULL if fs->repository is set)
 * and the files settings.  Checks the password file's mode, finds the
 * restic binary and reads the S3 credentials file; does not contact the
 * repository.
 */
PgbkStatus files_repo_open(const PgbkConfig *cfg, const FilesSettings *fs, FilesRepo **out,
                           PgbkError *err);
/* Zeroes the secrets (credentials in the environment) before freeing. */
void files_repo_free(FilesRepo *repo);

/* The restic repository derived from pgbk.conf's repository (malloc'd). */
PgbkStatus files_default_repository(const PgbkConfig *cfg, char **out, PgbkError *err);

/*
 * restic's argv: the binary, the global options, then args (NULL-
 * terminated).  The array is malloc'd; its strings belong to repo and args.
 */
char **files_argv(const FilesRepo *repo, const char *const *args);

/* A running restic. */
typedef struct FilesChild
{
	pid_t pid;
	int   out_fd; /* its stdout (-1 if not captured) */
	int   err_fd; /* its stderr */
} FilesChild;

/* How a restic run ended. */
typedef struct FilesExit
{
	bool signaled; /* true: killed by signal `code`; false: exit code `code` */
	int  code;
} FilesExit;

/*
 * Start restic with args.  Its stdout goes to child->out_fd when
 * capture_stdout, else to /dev/null; its stderr to child->err_fd.  Both fds
 * are non-blocking and close-on-exec.  The child gets its own process group
 * and SIGTERM if the caller dies.
 */
PgbkStatus files_spawn(const FilesRepo *repo, const char *const *args, bool capture_stdout,
                       FilesChild *child, PgbkError *err);

/* Fill an exit description from a waitpid() status. */
void files_exit_from_status(int status, FilesExit *ex);
/* "exited with code 1" / "was terminated by signal 9 (Killed)" */
void files_describe_exit(const FilesExit *ex, char *buf, size_t len);

/*
 * Run restic synchronously: stdout into *out (if not NULL, else discarded),
 * the last few kB of stderr into *errtail (if not NULL), exit into *ex.
 * pgbk_interrupted() makes it stop restic (SIGTERM) and return
 * PGBK_ERR_INTERRUPTED.  A restic that ran and failed is PGBK_OK here: look
 * at *ex.
 */
PgbkStatus files_run(const FilesRepo *repo, const char *const *args, PgbkBuf *out, PgbkBuf *errtail,
                     FilesExit *ex, PgbkError *err);

/*
 * Turn a failed restic run into an error that says what failed and what to
 * do: wrong password, no repository, repository unreachable, locked, access
 * denied.  what names the operation ("list snapshots").  Returns err->code.
 */
PgbkStatus files_fail(const FilesRepo *repo, const char *what, const FilesExit *ex,
                      const char *errtail, PgbkError *err);

/* Status class of a restic failure from its stderr (PGBK_ERR if unknown). */
PgbkStatus files_classify_stderr(const char *text);

/* The summary line of `restic backup --json`. */
typedef struct FilesBackupSummary
{
	char    short_id[FILES_SHORT_ID_LEN + 1];
	int64_t files_new;
	int64_t files_changed;
	int64_t files_unmodified;
	int64_t dirs_new;
	int64_t dirs_changed;
	int64_t dirs_unmodified;
	int64_t data_added; /* bytes added to the repository */
	int64_t total_files_processed;
	int64_t total_bytes_processed;
	double  total_duration; /* seconds */
} FilesBackupSummary;

/*
 * Parse one stdout line of `restic backup --json`.  True if it is a valid
 * summary (then *sum is filled); false for status lines and anything else.
 */
bool files_parse_backup_line(const char *line, size_t len, FilesBackupSummary *sum);

typedef struct FilesSnapshot
{
	char    id[FILES_ID_LEN + 1];
	char    short_id[FILES_SHORT_ID_LEN + 1];
	char   *time;    /* as restic wrote it (RFC 3339) */
	int64_t time_us; /* the same, microseconds since the Unix epoch */
	char   *hostname;
	char  **paths;
	int     n_paths;
	char  **tags;
	int     n_tags;
	/* files_find_snapshot by time: whether it holds the files exactly as
	 * they were at the target, else the moment they are from (its scan end) */
	bool    exact;
	int64_t as_of_us;
} FilesSnapshot;

typedef struct FilesSnapshotList
{
	FilesSnapshot *items; /* in restic's order (oldest first) */
	size_t         n;
} FilesSnapshotList;

/* Parse `restic snapshots --json` (a JSON array). */
PgbkStatus files_parse_snapshots(const char *json, size_t len, FilesSnapshotList **out,
                                 PgbkError *err);
void       files_snapshot_list_free(FilesSnapshotList *list);
void       files_snapshot_free(FilesSnapshot *snap);
/* Deep copy; false on allocation failure. */
bool files_snapshot_copy(const FilesSnapshot *src, FilesSnapshot *dst);

/*
 * Ids of the snapshots `restic forget --json` removed (its first stdout
 * line is the JSON array; prune's text follows).  *ids is a malloc'd array
 * of malloc'd strings.
 */
PgbkStatus files_parse_forget(const char *out, size_t len, char ***ids, size_t *n_ids,
                              PgbkError *err);

/* RFC 3339 time ("2024-01-02T03:04:05.123456789+01:00") to microseconds. */
bool files_parse_time(const char *s, int64_t *us);

/*
 * The tag for a restore point name ("rp:" + percent-encoded name); false if
 * the name is empty or longer than FILES_RP_NAME_MAX bytes.
 */
bool files_restore_point_tag(const char *name, char *tag, size_t taglen);
/* The name from such a tag; false if tag is not one. */
bool files_tag_restore_point(const char *tag, char *name, size_t namelen);

/*
 * List the snapshots of the files repository (of host, if not NULL; only
 * the one with id or id prefix `id`, if not NULL).
 */
PgbkStatus files_list_snapshots(const FilesRepo *repo, const char *host, const char *id,
                                FilesSnapshotList **out, PgbkError *err);

/*
 * The snapshot to restore: with restore_point, the earliest one tagged with
 * it (the one taken for it; a later one with the same tag holds later
 * files).  For a time, the catalog's rule (pgbk.file_snapshot_at) from the
 * span tags: a snapshot that holds the files exactly as they were at
 * target_us, else the newest whose scan had ended by then (out->exact
 * false, out->as_of_us its scan end), never one that may hold later writes.
 * A snapshot's scan end and the end of its span are told by its successor's
 * tags, so the newest snapshot qualifies only for target_us == INT64_MAX
 * (the newest, for 'latest').  host NULL
 * means any host, but snapshots of several hosts (or several sets of roots)
 * before the target are refused as ambiguous.  PGBK_NOT_FOUND when there is
 * none; the error then names the earliest snapshot there is.
 */
PgbkStatus files_find_snapshot(const FilesRepo *repo, const char *host, int64_t target_us,
                               const char *restore_point, FilesSnapshot *out, PgbkError *err);

/*
 * Restore snapshot `snapshot_id` (full id or unique prefix) into
 * target_dir, which must be empty or not exist yet (PGBK_EXISTS
 * otherwise).  With one root (the usual case), target_dir then holds that
 * root's tree; with several, target_dir/<root path> holds each root (restic
 * restores absolute paths under its --target, and 0.14 cannot restore
 * "<id>:<subfolder>", so we restore into a staging directory inside
 * target_dir and move the roots into place).  Excluded directories are
 * absent.  The file system is synced before returning.
 */
PgbkStatus files_restore_repo(const FilesRepo *repo, const char *snapshot_id,
                              const char *target_dir, PgbkError *err);

/*
 * The same two with the files repository of pgbk.conf (for `pgbk restore
 * --files-to`, which works with the database down: the repository alone
 * says which snapshot covers a target time or a restore point name).
 * Free *out with files_snapshot_free().
 */
PgbkStatus files_find(const PgbkConfig *cfg, const char *host, int64_t target_us,
                      const char *restore_point, FilesSnapshot *out, PgbkError *err);
PgbkStatus files_restore(const PgbkConfig *cfg, const char *snapshot_id, const char *target_dir,
                         PgbkError *err);

#endif /* PGBK_FILES_H */
