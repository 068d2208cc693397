/*
 * restic.h
 *	  Program pgbk-watcher; uses common/files.
 *	  One restic run at a time, inside the watcher's event loop.
 *
 * A job is a restic child started by files_spawn() (fork + execve, argv
 * array, own process group).  The event loop polls its stdout and stderr
 * pipes and hands readable descriptors to job_io(); on SIGCHLD it calls
 * job_reap().  A job is done once the child has been reaped *and* both
 * pipes reached end of file, so no output is lost.  stderr is logged line
 * by line ("restic: ...") and its tail kept for the error message;
 * `backup --json` stdout is parsed line by line for the summary; other
 * commands' stdout is kept whole (bounded) for their JSON.
 */
#ifndef WATCHER_RESTIC_H
#define WATCHER_RESTIC_H

#include "files/files.h"

#include <poll.h>

typedef enum JobKind
{
	JOB_NONE = 0,
	JOB_UNLOCK, /* restic unlock: remove stale locks (dead local pids, > 30 min) */
	JOB_BACKUP, /* restic backup --json */
	JOB_LOOKUP, /* restic snapshots --json <short id>: the full id */
	JOB_FORGET, /* restic forget --keep-within --prune */
	JOB_INIT    /* restic init */
} JobKind;

typedef struct Job
{
	JobKind            kind;
	FilesChild         child;
	bool               reaped;
	int                status; /* waitpid status once reaped */
	int64_t            started_ms;
	int                term_signals; /* signals sent to stop it */
	PgbkBuf            out_line;
	PgbkBuf            out_all;
	PgbkBuf            err_line;
	PgbkBuf            err_tail;
	int                err_lines_logged;
	bool               have_summary;
	FilesBackupSummary summary;
} Job;

void job_init(Job *job);
bool job_active(const Job *job);

PgbkStatus job_start(Job *job, JobKind kind, const FilesRepo *repo, const char *const *args,
                     int64_t now_ms, PgbkError *err);

/* Add the job's pipes to pfd (at most 2); returns how many. */
int  job_pollfds(const Job *job, struct pollfd *pfd);
void job_io(Job *job, int fd, short revents);

/* waitpid(WNOHANG); true if the child is reaped (now or before). */
bool job_reap(Job *job);
/* Reaped and drained: the caller may look at the result. */
bool job_done(const Job *job);
void job_result(const Job *job, FilesExit *ex);

/* Signal the child's process group (SIGTERM to stop, SIGKILL to force). */
void job_signal(Job *job, int sig);

/* Free the buffers; the job is JOB_NONE again. */
void job_reset(Job *job);

const char *job_name(JobKind kind);

#endif /* WATCHER_RESTIC_H */
