/*
 * restic.c
 *	  Program pgbk-watcher; uses common/files (spawning restic, its JSON) and log.h.
 *	  Running restic inside the event loop (see restic.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "restic.h"

#include "log.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_MAX_BYTES   (1024 * 1024)       /* longer stdout/stderr lines are cut */
#define OUT_ALL_MAX      (256 * 1024 * 1024) /* JSON of snapshots / forget */
#define ERR_TAIL_MAX     8192
#define ERR_LINES_LOGGED 200

void
job_init(Job *job)
{
	memset(job, 0, sizeof(*job));
	job->kind = JOB_NONE;
	job->child.pid = -1;
	job->child.out_fd = -1;
	job->child.err_fd = -1;
	pgbk_buf_init(&job->out_line);
	pgbk_buf_init(&job->out_all);
	pgbk_buf_init(&job->err_line);
	pgbk_buf_init(&job->err_tail);
}

bool
job_active(const Job *job)
{
	return job->kind != JOB_NONE;
}

const char *
job_name(JobKind kind)
{
	switch (kind)
	{
		case JOB_UNLOCK:
			return "unlock";
		case JOB_BACKUP:
			return "backup";
		case JOB_LOOKUP:
			return "snapshots";
		case JOB_FORGET:
			return "forget";
		case JOB_INIT:
			return "init";
		case JOB_NONE:
			break;
	}
	return "none";
}

PgbkStatus
job_start(Job *job, JobKind kind, const FilesRepo *repo, const char *const *args, int64_t now_ms,
          PgbkError *err)
{
	PgbkStatus rc;

	job_reset(job);
	rc = files_spawn(repo, args, true, &job->child, err);
	if (rc != PGBK_OK)
		return rc;
	job->kind = kind;
	job->started_ms = now_ms;
	log_debug("started restic %s (pid %d)", job_name(kind), (int) job->child.pid);
	return PGBK_OK;
}

int
job_pollfds(const Job *job, struct pollfd *pfd)
{
	int n = 0;

	if (job->kind == JOB_NONE)
		return 0;
	if (job->child.out_fd >= 0)
		pfd[n++] = (struct pollfd){.fd = job->child.out_fd, .events = POLLIN};
	if (job->child.err_fd >= 0)
		pfd[n++] = (struct pollfd){.fd = job->child.err_fd, .events = POLLIN};
	return n;
}

static void
keep_tail(PgbkBuf *tail, const char *line, size_t n)
{
	if (n > ERR_TAIL_MAX / 2)
	{
		line += n - ERR_TAIL_MAX / 2;
		n = ERR_TAIL_MAX / 2;
	}
	if (tail->len + n + 1 > ERR_TAIL_MAX)
	{
		size_t drop = tail->len + n + 1 - ERR_TAIL_MAX;

		memmove(tail->data, tail->data + drop, tail->len - drop);
		tail->len -= drop;
	}
	pgbk_buf_append(tail, line, n);
	pgbk_buf_append(tail, "\n", 1);
}

static void
stdout_line(Job *job, const char *line, size_t n)
{
	FilesBackupSummary sum;

	if (job->kind == JOB_BACKUP && files_parse_backup_line(line, n, &sum))
	{
		job->summary = sum;
		job->have_summary = true;
	}
}

static void
stderr_line(Job *job, const char *line, size_t n)
{
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	if (n == 0)
		return;
	keep_tail(&job->err_tail, line, n);
	if (job->err_lines_logged < ERR_LINES_LOGGED)
		log_info("restic %s: %.*s", job_name(job->kind), (int) n, line);
	else if (job->err_lines_logged == ERR_LINES_LOGGED)
		log_info("restic %s: (further messages of this run are not logged)", job_name(job->kind));
	job->err_lines_logged++;
}

/* Split new data into lines; the last partial line stays in buf. */
static void
feed_lines(Job *job, PgbkBuf *buf, const char *data, size_t n, bool is_err)
{
	size_t i;
	size_t start = 0;

	for (i = 0; i < n; i++)
	{
		if (data[i] != '\n')
			continue;
		if (buf->len > 0)
		{
			if (buf->len < LINE_MAX_BYTES)
				pgbk_buf_append(buf, data + start, i - start);
			if (is_err)
				stderr_line(job, (const char *) buf->data, buf->len);
			else
				stdout_line(job, (const char *) buf->data, buf->len);
			pgbk_buf_reset(buf);
		}
		else if (is_err)
			stderr_line(job, data + start, i - start);
		else
			stdout_line(job, data + start, i - start);
		start = i + 1;
	}
	if (start < n && buf->len < LINE_MAX_BYTES)
		pgbk_buf_append(buf, data + start, n - start);
}

static void
close_pipe(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
job_io(Job *job, int fd, short revents)
{
	char    chunk[65536];
	bool    is_err = fd == job->child.err_fd;
	ssize_t n;
	int     reads;

	if (fd < 0 || (revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return;
	for (reads = 0; reads < 16; reads++)
	{
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
		{
			/* end of file: flush a last unterminated line */
			PgbkBuf *buf = is_err ? &job->err_line : &job->out_line;

			if (buf->len > 0)
				feed_lines(job, buf, "\n", 1, is_err);
			if (is_err)
				close_pipe(&job->child.err_fd);
			else
				close_pipe(&job->child.out_fd);
			return;
		}
		if (!is_err && (job->kind == JOB_LOOKUP || job->kind == JOB_FORGET))
		{
			if (job->out_all.len + (size_t) n <= OUT_ALL_MAX)
				pgbk_buf_append(&job->out_all, chunk, (size_t) n);
		}
		else
			feed_lines(job, is_err ? &job->err_line : &job->out_line, chunk, (size_t) n, is_err);
	}
}

bool
job_reap(Job *job)
{
	pid_t r;

	if (job->kind == JOB_NONE || job->reaped)
		return job->reaped;
	do
		r = waitpid(job->child.pid, &job->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == job->child.pid)
		job->reaped = true;
	else if (r < 0 && errno == ECHILD)
	{
		/* cannot happen unless someone else reaped it: report a failure */
		job->reaped = true;
		job->status = 255 << 8;
	}
	return job->reaped;
}

bool
job_done(const Job *job)
{
	return job->kind != JOB_NONE && job->reaped && job->child.out_fd < 0 && job->child.err_fd < 0;
}

void
job_result(const Job *job, FilesExit *ex)
{
	files_exit_from_status(job->status, ex);
}

void
job_signal(Job *job, int sig)
{
	if (job->kind == JOB_NONE || job->reaped || job->child.pid <= 0)
		return;
	job->term_signals++;
	/* the whole group: restic may have children of its own (rclone, sftp) */
	if (kill(-job->child.pid, sig) != 0)
		kill(job->child.pid, sig);
}

void
job_reset(Job *job)
{
	close_pipe(&job->child.out_fd);
	close_pipe(&job->child.err_fd);
	pgbk_buf_free(&job->out_line);
	pgbk_buf_free(&job->out_all);
	pgbk_buf_free(&job->err_line);
	pgbk_buf_free(&job->err_tail);
	job->kind = JOB_NONE;
	job->child.pid = -1;
	job->reaped = false;
	job->status = 0;
	job->term_signals = 0;
	job->err_lines_logged = 0;
	job->have_summary = false;
}
