/*
 * files.c
 *	  Room files (linked into the programs only, never pgbk.so); uses base (errors,
 *	  time), config and cJSON.
 *	  The files scope: running restic, parsing its JSON, finding and
 *	  restoring snapshots (see files.h).
 *
 * restic is always a child process started with execve() and an argv
 * array: no shell ever sees a path or a tag.  Secrets stay out of argv
 * (readable by every user in /proc/PID/cmdline): the repository password
 * goes by file (--password-file), the S3 credentials by environment.  The
 * child's environment is the caller's minus every RESTIC_* / AWS_* variable
 * that could contradict what pgbk.conf says.
 *
 * restic 0.14 (Debian 12) facts this file relies on, checked by tests:
 *  - `backup --json` prints status lines and one summary line whose
 *	  snapshot_id is the 8-hex short id; errors go to stderr as JSON lines;
 *	  exit 3 means a snapshot was written but some files could not be read.
 *  - `snapshots --json [id]` prints one JSON array with full ids.
 *  - `forget --json` prints one JSON array line, then prune's text.
 *  - `restore ID --target T` recreates each absolute snapshot path under T;
 *	  "ID:subfolder" is not understood by 0.14.
 */
#include "files/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/pgbk_time.h"

extern char **environ;

#define STDERR_TAIL_MAX 8192
#define STDOUT_MAX      ((size_t) 512 * 1024 * 1024)
#define RUN_POLL_MS     200

/* ----------------------------------------------------------------------
 * Settings and repository
 * ---------------------------------------------------------------------- */

void
files_settings_from_config(const PgbkConfig *cfg, FilesSettings *fs)
{
	memset(fs, 0, sizeof(*fs));
	if (cfg != NULL)
	{
		fs->restic_binary = cfg->restic_binary;
		fs->password_file = cfg->restic_password_file;
		fs->repository = cfg->files_repository;
	}
}

PgbkStatus
files_default_repository(const PgbkConfig *cfg, char **out, PgbkError *err)
{
	PgbkBuf b;
	bool    ok;

	*out = NULL;
	if (cfg == NULL)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "no files repository: set files_repository or give a pgbk.conf whose "
		                  "repository it can be derived from");
	pgbk_buf_init(&b);
	if (cfg->repo_kind == PGBK_REPO_LOCAL)
		ok = pgbk_buf_printf(&b, "%s/files", cfg->local_path);
	else if (cfg->s3_prefix != NULL && cfg->s3_prefix[0] != '\0')
		ok = pgbk_buf_printf(&b, "s3:%s/%s/%s/files", cfg->s3_endpoint, cfg->s3_bucket,
		                     cfg->s3_prefix);
	else
		ok = pgbk_buf_printf(&b, "s3:%s/%s/files", cfg->s3_endpoint, cfg->s3_bucket);
	if (!ok)
	{
		pgbk_buf_free(&b);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	*out = (char *) b.data;
	return PGBK_OK;
}

/* Absolute path of an executable: as given if it has a '/', else from PATH. */
static PgbkStatus
find_binary(const char *name, char **out, PgbkError *err)
{
	const char *path;
	const char *p;

	*out = NULL;
	if (name[0] == '\0')
		return pgbk_error(err, PGBK_ERR_CONFIG, "restic_binary is empty");
	if (strchr(name, '/') != NULL)
	{
		if (access(name, X_OK) != 0)
			return pgbk_error(err, PGBK_ERR_CONFIG,
			                  "restic binary \"%s\" is not executable: %s; install restic or fix "
			                  "restic_binary",
			                  name, strerror(errno));
		*out = strdup(name);
		return *out ? PGBK_OK : pgbk_error(err, PGBK_ERR, "out of memory");
	}
	path = getenv("PATH");
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0';)
	{
		const char *colon = strchr(p, ':');
		size_t      dlen = colon ? (size_t) (colon - p) : strlen(p);
		char        cand[PATH_MAX];

		if (dlen > 0 &&
		    snprintf(cand, sizeof(cand), "%.*s/%s", (int) dlen, p, name) < (int) sizeof(cand))
		{
			struct stat st;

			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			{
				*out = strdup(cand);
				return *out ? PGBK_OK : pgbk_error(err, PGBK_ERR, "out of memory");
			}
		}
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	return pgbk_error(err, PGBK_ERR_CONFIG,
	                  "restic binary \"%s\" not found in PATH (%s); install restic (Debian: "
	                  "apt-get install restic) or set restic_binary to its path",
	                  name, path);
}

/* Environment variables restic must not take from our caller. */
static bool
env_dropped(const char *entry, bool own_aws)
{
	static const char *const restic_vars[] = {
	    "RESTIC_PASSWORD=",   "RESTIC_PASSWORD_FILE=",   "RESTIC_PASSWORD_COMMAND=",
	    "RESTIC_REPOSITORY=", "RESTIC_REPOSITORY_FILE=", "RESTIC_CACHE_DIR=",
	    "RESTIC_KEY_HINT=",   "RESTIC_COMPRESSION=",
	};
	size_t i;

	for (i = 0; i < sizeof(restic_vars) / sizeof(restic_vars[0]); i++)
	{
		if (strncmp(entry, restic_vars[i], strlen(restic_vars[i])) == 0)
			return true;
	}
	return own_aws && strncmp(entry, "AWS_", 4) == 0;
}

static char *
env_entry(const char *name, const char *value)
{
	size_t n = strlen(name) + 1 + strlen(value) + 1;
	char  *e = malloc(n);

	if (e)
		snprintf(e, n, "%s=%s", name, value);
	return e;
}

/* restic's environment: our secrets first, then the inherited variables. */
static PgbkStatus
build_env(FilesRepo *repo, const PgbkCredentials *cred, PgbkError *err)
{
	size_t n_env = 0;
	size_t i;
	size_t k = 0;

	while (environ && environ[n_env])
		n_env++;
	repo->envp = calloc(n_env + 5, sizeof(char *));
	if (repo->envp == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if (cred)
	{
		if ((repo->envp[k++] = env_entry("AWS_ACCESS_KEY_ID", cred->access_key_id)) == NULL ||
		    (repo->envp[k++] = env_entry("AWS_SECRET_ACCESS_KEY", cred->secret_access_key)) ==
		        NULL ||
		    (cred->session_token &&
		     (repo->envp[k++] = env_entry("AWS_SESSION_TOKEN", cred->session_token)) == NULL))
		{
			repo->n_secret_env = (int) k;
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
	}
	repo->n_secret_env = (int) k;
	/* times restic prints and stores (and --time) in UTC: no DST ambiguity */
	if ((repo->envp[k++] = strdup("TZ=UTC")) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (i = 0; i < n_env; i++)
	{
		if (env_dropped(environ[i], cred != NULL) || strncmp(environ[i], "TZ=", 3) == 0)
			continue;
		if ((repo->envp[k++] = strdup(environ[i])) == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	repo->envp[k] = NULL;
	return PGBK_OK;
}

/* "scheme://user:pass@host" would put a secret into restic's argv and logs. */
static bool
has_userinfo(const char *url)
{
	const char *s = strstr(url, "://");
	const char *slash;
	const char *at;

	if (s == NULL)
		return false;
	s += 3;
	slash = strchr(s, '/');
	at = strchr(s, '@');
	return at != NULL && (slash == NULL || at < slash);
}

PgbkStatus
files_repo_open(const PgbkConfig *cfg, const FilesSettings *fs, FilesRepo **out, PgbkError *err)
{
	FilesRepo       *repo;
	PgbkCredentials *cred = NULL;
	PgbkStatus       rc;
	bool             s3;

	*out = NULL;
	if (fs->password_file == NULL || fs->password_file[0] == '\0')
	{
		pgbk_error(err, PGBK_ERR_CONFIG, "restic_password_file is not set");
		pgbk_error_detail(err, "The files scope needs a file holding the restic repository's "
		                       "password (mode 0600).");
		return PGBK_ERR_CONFIG;
	}
	if ((rc = pgbk_check_private_file(fs->password_file, "restic password file", err)) != PGBK_OK)
		return rc;

	repo = calloc(1, sizeof(*repo));
	if (repo == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if ((rc = find_binary(fs->restic_binary ? fs->restic_binary : "restic", &repo->restic_path,
	                      err)) != PGBK_OK)
		goto fail;
	if (fs->repository != NULL && fs->repository[0] != '\0')
	{
		if (has_userinfo(fs->repository))
		{
			rc = pgbk_error(err, PGBK_ERR_CONFIG,
			                "files_repository must not contain user information (user:password@); "
			                "credentials belong in s3_credentials_file");
			goto fail;
		}
		repo->repository = strdup(fs->repository);
	}
	else if ((rc = files_default_repository(cfg, &repo->repository, err)) != PGBK_OK)
		goto fail;
	repo->password_file = strdup(fs->password_file);
	if (repo->repository == NULL || repo->password_file == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR, "out of memory");
		goto fail;
	}
	if (fs->cache_dir != NULL && fs->cache_dir[0] != '\0' &&
	    (repo->cache_dir = strdup(fs->cache_dir)) == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR, "out of memory");
		goto fail;
	}

	s3 = strncmp(repo->repository, "s3:", 3) == 0;
	if (s3 && cfg != NULL && cfg->repo_kind == PGBK_REPO_S3)
	{
		/* the S3 options of pgbk.conf apply to the files repository too */
		if ((cfg->s3_ca_file && (repo->cacert = strdup(cfg->s3_ca_file)) == NULL) ||
		    (repo->s3_lookup =
		         strdup(cfg->s3_uri_style == PGBK_URI_PATH ? "s3.bucket-lookup=path"
		                                                   : "s3.bucket-lookup=dns")) == NULL)
		{
			rc = pgbk_error(err, PGBK_ERR, "out of memory");
			goto fail;
		}
		if (cfg->s3_region)
		{
			size_t n = strlen(cfg->s3_region) + 16;

			if ((repo->s3_region = malloc(n)) == NULL)
			{
				rc = pgbk_error(err, PGBK_ERR, "out of memory");
				goto fail;
			}
			snprintf(repo->s3_region, n, "s3.region=%s", cfg->s3_region);
		}
		repo->insecure_tls = !cfg->s3_verify_tls;
		if (cfg->s3_connect_host != NULL)
			pgbk_log(PGBK_LOG_WARNING,
			         "s3_connect_host is ignored by restic: it connects to the host of "
			         "s3_endpoint, which must resolve on this machine");
		if (cfg->s3_credentials_file != NULL &&
		    (rc = credentials_load(cfg->s3_credentials_file, cfg->s3_profile, &cred, err)) !=
		        PGBK_OK)
			goto fail;
	}
	rc = build_env(repo, cred, err);
	credentials_free(cred);
	if (rc != PGBK_OK)
		goto fail;
	*out = repo;
	return PGBK_OK;

fail:
	files_repo_free(repo);
	return rc;
}

void
files_repo_free(FilesRepo *repo)
{
	int i;

	if (repo == NULL)
		return;
	free(repo->restic_path);
	free(repo->repository);
	free(repo->password_file);
	free(repo->cacert);
	free(repo->s3_lookup);
	free(repo->s3_region);
	free(repo->cache_dir);
	if (repo->envp)
	{
		for (i = 0; repo->envp[i] != NULL || i < repo->n_secret_env; i++)
		{
			if (repo->envp[i] == NULL)
				continue;
			if (i < repo->n_secret_env)
				memset(repo->envp[i], 0, strlen(repo->envp[i]));
			free(repo->envp[i]);
		}
		free(repo->envp);
	}
	free(repo);
}

char **
files_argv(const FilesRepo *repo, const char *const *args)
{
	size_t       n_args = 0;
	size_t       k = 0;
	const char **argv;

	while (args && args[n_args])
		n_args++;
	argv = calloc(n_args + 16, sizeof(char *));
	if (argv == NULL)
		return NULL;
	argv[k++] = repo->restic_path;
	argv[k++] = "--repo";
	argv[k++] = repo->repository;
	argv[k++] = "--password-file";
	argv[k++] = repo->password_file;
	if (repo->cacert)
	{
		argv[k++] = "--cacert";
		argv[k++] = repo->cacert;
	}
	if (repo->insecure_tls)
		argv[k++] = "--insecure-tls";
	if (repo->s3_lookup)
	{
		argv[k++] = "--option";
		argv[k++] = repo->s3_lookup;
	}
	if (repo->s3_region)
	{
		argv[k++] = "--option";
		argv[k++] = repo->s3_region;
	}
	if (repo->cache_dir)
	{
		argv[k++] = "--cache-dir";
		argv[k++] = repo->cache_dir;
	}
	memcpy(&argv[k], args, n_args * sizeof(char *));
	argv[k + n_args] = NULL;
	return (char **) argv;
}

/* ----------------------------------------------------------------------
 * Child processes
 * ---------------------------------------------------------------------- */

/* write() a few strings to fd 2 (after fork: async-signal-safe only) */
static void
child_complain(const char *a, const char *b, const char *c)
{
	ssize_t rc;

	rc = write(2, a, strlen(a));
	rc = write(2, b, strlen(b));
	rc = write(2, c, strlen(c));
	rc = write(2, "\n", 1);
	(void) rc;
}

static void
child_exec(char **argv, char **envp, int in_fd, int out_fd, int err_fd, pid_t parent)
{
	sigset_t none;
	int      sig;

	/* the parent may block signals for its signalfd; restic must get them */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (sig = 1; sig < NSIG; sig++)
	{
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	}
	/*
	 * Own process group: a Ctrl-C on the caller's terminal reaches the
	 * caller, which decides how to stop restic.  If the caller dies, restic
	 * gets SIGTERM instead of running on unsupervised.
	 */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		_exit(127);
	closefrom(3);
	execve(argv[0], argv, envp);
	child_complain("could not execute \"", argv[0], "\"");
	_exit(127);
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

PgbkStatus
files_spawn(const FilesRepo *repo, const char *const *args, bool capture_stdout, FilesChild *child,
            PgbkError *err)
{
	char **argv;
	int    devnull;
	int    outp[2] = {-1, -1};
	int    errp[2] = {-1, -1};
	pid_t  parent = getpid();
	pid_t  pid;

	child->pid = -1;
	child->out_fd = -1;
	child->err_fd = -1;
	argv = files_argv(repo, args);
	if (argv == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || (capture_stdout && pipe2(outp, O_CLOEXEC) != 0) ||
	    pipe2(errp, O_CLOEXEC) != 0)
	{
		int e = errno;

		close_fd(&devnull);
		close_fd(&outp[0]);
		close_fd(&outp[1]);
		free(argv);
		return pgbk_error(err, PGBK_ERR_IO, "could not create pipes for restic: %s", strerror(e));
	}
	pid = fork();
	if (pid == 0)
		child_exec(argv, repo->envp, devnull, capture_stdout ? outp[1] : devnull, errp[1], parent);
	free(argv);
	close_fd(&devnull);
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	if (pid < 0)
	{
		int e = errno;

		close_fd(&outp[0]);
		close_fd(&errp[0]);
		return pgbk_error(err, PGBK_ERR, "could not start restic (fork): %s", strerror(e));
	}
	if (outp[0] >= 0)
		fcntl(outp[0], F_SETFL, fcntl(outp[0], F_GETFL) | O_NONBLOCK);
	fcntl(errp[0], F_SETFL, fcntl(errp[0], F_GETFL) | O_NONBLOCK);
	child->pid = pid;
	child->out_fd = outp[0];
	child->err_fd = errp[0];
	return PGBK_OK;
}

void
files_exit_from_status(int status, FilesExit *ex)
{
	if (WIFSIGNALED(status))
	{
		ex->signaled = true;
		ex->code = WTERMSIG(status);
	}
	else
	{
		ex->signaled = false;
		ex->code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
	}
}

void
files_describe_exit(const FilesExit *ex, char *buf, size_t len)
{
	if (ex->signaled)
		snprintf(buf, len, "was terminated by signal %d (%s)", ex->code, strsignal(ex->code));
	else if (ex->code == 127)
		snprintf(buf, len, "exited with code 127 (could not be executed)");
	else
		snprintf(buf, len, "exited with code %d", ex->code);
}

/* Keep the last STDERR_TAIL_MAX bytes of stderr. */
static void
tail_append(PgbkBuf *tail, const char *data, size_t n)
{
	if (tail == NULL)
		return;
	if (n >= STDERR_TAIL_MAX)
	{
		data += n - STDERR_TAIL_MAX;
		n = STDERR_TAIL_MAX;
	}
	if (tail->len + n > STDERR_TAIL_MAX)
	{
		size_t drop = tail->len + n - STDERR_TAIL_MAX;

		memmove(tail->data, tail->data + drop, tail->len - drop);
		tail->len -= drop;
	}
	pgbk_buf_append(tail, data, n);
}

PgbkStatus
files_run(const FilesRepo *repo, const char *const *args, PgbkBuf *out, PgbkBuf *errtail,
          FilesExit *ex, PgbkError *err)
{
	FilesChild child;
	PgbkStatus rc;
	bool       interrupted = false;
	bool       too_big = false;
	int        status;
	char       chunk[65536];

	if ((rc = files_spawn(repo, args, out != NULL, &child, err)) != PGBK_OK)
		return rc;
	while (child.out_fd >= 0 || child.err_fd >= 0)
	{
		struct pollfd pfd[2];
		int           n = 0;
		int           i;

		if (child.out_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = child.out_fd, .events = POLLIN};
		if (child.err_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = child.err_fd, .events = POLLIN};
		if (!interrupted && pgbk_interrupted())
		{
			interrupted = true;
			kill(-child.pid, SIGTERM);
		}
		if (poll(pfd, (nfds_t) n, RUN_POLL_MS) < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++)
		{
			ssize_t r;

			if (pfd[i].revents == 0)
				continue;
			r = read(pfd[i].fd, chunk, sizeof(chunk));
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0)
			{
				if (pfd[i].fd == child.out_fd)
					close_fd(&child.out_fd);
				else
					close_fd(&child.err_fd);
				continue;
			}
			if (pfd[i].fd == child.out_fd)
			{
				if (out->len + (size_t) r > STDOUT_MAX || !pgbk_buf_append(out, chunk, (size_t) r))
				{
					if (!too_big)
						kill(-child.pid, SIGTERM);
					too_big = true;
				}
			}
			else
				tail_append(errtail, chunk, (size_t) r);
		}
	}
	close_fd(&child.out_fd);
	close_fd(&child.err_fd);
	while (waitpid(child.pid, &status, 0) < 0)
	{
		if (errno != EINTR)
			return pgbk_error(err, PGBK_ERR, "could not wait for restic: %s", strerror(errno));
	}
	files_exit_from_status(status, ex);
	if (interrupted)
		return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted; restic was stopped");
	if (too_big)
		return pgbk_error(err, PGBK_ERR, "restic's output was larger than %zu bytes",
		                  (size_t) STDOUT_MAX);
	return PGBK_OK;
}

/* ----------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

static bool
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

PgbkStatus
files_classify_stderr(const char *t)
{
	if (contains(t, "wrong password or no key found"))
		return PGBK_ERR_KEY;
	if (contains(t, "x509:") || contains(t, "tls:") || contains(t, "certificate"))
		return PGBK_ERR_TLS;
	if (contains(t, "no such host"))
		return PGBK_ERR_DNS;
	if (contains(t, "connection refused") || contains(t, "dial tcp") ||
	    contains(t, "i/o timeout") || contains(t, "network is unreachable") ||
	    contains(t, "connection reset"))
		return PGBK_ERR_CONNECT;
	if (contains(t, "Access Denied") || contains(t, "AccessDenied") ||
	    contains(t, "SignatureDoesNotMatch") || contains(t, "InvalidAccessKeyId") ||
	    contains(t, "permission denied"))
		return PGBK_ERR_AUTH;
	if (contains(t, "NoSuchBucket") || contains(t, "bucket does not exist"))
		return PGBK_ERR_NO_BUCKET;
	if (contains(t, "Is there a repository at the following location?") ||
	    contains(t, "config: no such file or directory") ||
	    contains(t, "The specified key does not exist"))
		return PGBK_NOT_FOUND;
	return PGBK_ERR;
}

/*
 * The line of restic's stderr that says what went wrong: the last "Fatal:"
 * line, else the last non-empty line that is not progress noise.
 */
static void
stderr_reason(const char *t, char *buf, size_t len)
{
	const char *p = t;
	const char *best = NULL;
	size_t      best_len = 0;
	const char *last = NULL;
	size_t      last_len = 0;

	buf[0] = '\0';
	if (t == NULL)
		return;
	while (*p)
	{
		const char *eol = strchr(p, '\n');
		size_t      n = eol ? (size_t) (eol - p) : strlen(p);

		while (n > 0 && isspace((unsigned char) p[n - 1]))
			n--;
		if (n > 0)
		{
			if (strncmp(p, "Fatal: ", 7) == 0)
			{
				best = p + 7;
				best_len = n - 7;
			}
			if (strncmp(p, "Is there a repository", 21) != 0 && strncmp(p, "s3:", 3) != 0 &&
			    p[0] != '/')
			{
				last = p;
				last_len = n;
			}
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	if (best == NULL)
	{
		best = last;
		best_len = last_len;
	}
	if (best)
		snprintf(buf, len, "%.*s", (int) (best_len > 600 ? 600 : best_len), best);
}

PgbkStatus
files_fail(const FilesRepo *repo, const char *what, const FilesExit *ex, const char *errtail,
           PgbkError *err)
{
	char        how[128];
	char        why[640];
	const char *hint;
	PgbkStatus  code = ex->signaled ? PGBK_ERR : files_classify_stderr(errtail);

	files_describe_exit(ex, how, sizeof(how));
	stderr_reason(errtail, why, sizeof(why));
	switch (code)
	{
		case PGBK_ERR_KEY:
			hint = "check that restic_password_file holds this repository's password";
			break;
		case PGBK_ERR_TLS:
			hint = "check s3_endpoint and s3_ca_file in pgbk.conf";
			break;
		case PGBK_ERR_DNS:
		case PGBK_ERR_CONNECT:
			hint = "check that the repository's server is up and reachable from this machine";
			break;
		case PGBK_ERR_AUTH:
			hint = "check the credentials (s3_credentials_file) and the permissions on the "
			       "repository";
			break;
		case PGBK_ERR_NO_BUCKET:
			hint = "create the bucket or fix repository in pgbk.conf";
			break;
		case PGBK_NOT_FOUND:
			hint = "initialize it with `pgbk-watcher --init`, or fix files_repository";
			break;
		default:
			if (contains(errtail, "already locked"))
				hint = "another restic holds an exclusive lock; stale locks of killed runs are "
				       "removed by `restic unlock`";
			else
				hint = "see restic's messages above";
			break;
	}
	return pgbk_error(err, code, "could not %s in restic repository \"%s\": restic %s%s%s; %s",
	                  what, repo->repository, how, why[0] ? ": " : "", why, hint);
}

/* ----------------------------------------------------------------------
 * JSON
 * ---------------------------------------------------------------------- */

static bool
is_hex(const char *s, size_t n)
{
	size_t i;

	if (strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
	{
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/*
 * JSON through cJSON, like the rest of common/: its names are all prefixed,
 * so nothing in pgbk.so (which links this file too) can bind to a function
 * of the server.  Numbers are doubles, exact below 2^53.
 */
static cJSON *
jget(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *
jstr(const cJSON *v)
{
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double
jnum(const cJSON *obj, const char *key)
{
	cJSON *v = jget(obj, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

bool
files_parse_backup_line(const char *line, size_t len, FilesBackupSummary *sum)
{
	cJSON      *root;
	const char *v;
	const char *id;
	bool        ok = false;

	while (len > 0 && isspace((unsigned char) *line))
	{
		line++;
		len--;
	}
	if (len == 0 || line[0] != '{')
		return false;
	root = cJSON_ParseWithLength(line, len);
	if (root == NULL)
		return false;
	v = jstr(jget(root, "message_type"));
	id = jstr(jget(root, "snapshot_id"));
	if (v == NULL || strcmp(v, "summary") != 0 || id == NULL ||
	    (!is_hex(id, FILES_SHORT_ID_LEN) && !is_hex(id, FILES_ID_LEN)))
		goto done;
	memset(sum, 0, sizeof(*sum));
	memcpy(sum->short_id, id, FILES_SHORT_ID_LEN);
	sum->short_id[FILES_SHORT_ID_LEN] = '\0';
	sum->files_new = (int64_t) jnum(root, "files_new");
	sum->files_changed = (int64_t) jnum(root, "files_changed");
	sum->files_unmodified = (int64_t) jnum(root, "files_unmodified");
	sum->dirs_new = (int64_t) jnum(root, "dirs_new");
	sum->dirs_changed = (int64_t) jnum(root, "dirs_changed");
	sum->dirs_unmodified = (int64_t) jnum(root, "dirs_unmodified");
	sum->data_added = (int64_t) jnum(root, "data_added");
	sum->total_files_processed = (int64_t) jnum(root, "total_files_processed");
	sum->total_bytes_processed = (int64_t) jnum(root, "total_bytes_processed");
	sum->total_duration = jnum(root, "total_duration");
	ok = true;
done:
	cJSON_Delete(root);
	return ok;
}

static bool
string_array(const cJSON *arr, char ***out, int *n_out)
{
	int i;
	int n;

	*out = NULL;
	*n_out = 0;
	if (arr == NULL || cJSON_IsNull(arr))
		return true;
	if (!cJSON_IsArray(arr))
		return false;
	n = cJSON_GetArraySize(arr);
	*out = calloc((size_t) n + 1, sizeof(char *));
	if (*out == NULL)
		return false;
	for (i = 0; i < n; i++)
	{
		const char *v = jstr(cJSON_GetArrayItem(arr, i));

		if (v == NULL || ((*out)[i] = strdup(v)) == NULL)
			return false;
		*n_out = i + 1;
	}
	return true;
}

void
files_snapshot_free(FilesSnapshot *s)
{
	int i;

	if (s == NULL)
		return;
	free(s->time);
	free(s->hostname);
	for (i = 0; i < s->n_paths; i++)
		free(s->paths[i]);
	free(s->paths);
	for (i = 0; i < s->n_tags; i++)
		free(s->tags[i]);
	free(s->tags);
	memset(s, 0, sizeof(*s));
}

void
files_snapshot_list_free(FilesSnapshotList *list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < list->n; i++)
		files_snapshot_free(&list->items[i]);
	free(list->items);
	free(list);
}

static bool
copy_strings(char **src, int n, char ***dst)
{
	int i;

	*dst = calloc((size_t) n + 1, sizeof(char *));
	if (*dst == NULL)
		return false;
	for (i = 0; i < n; i++)
	{
		if (((*dst)[i] = strdup(src[i])) == NULL)
			return false;
	}
	return true;
}

bool
files_snapshot_copy(const FilesSnapshot *src, FilesSnapshot *dst)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->id, src->id, sizeof(dst->id));
	memcpy(dst->short_id, src->short_id, sizeof(dst->short_id));
	dst->time_us = src->time_us;
	dst->time = pgbk_strdup(src->time);
	dst->hostname = pgbk_strdup(src->hostname);
	dst->n_paths = src->n_paths;
	dst->n_tags = src->n_tags;
	if ((src->time && !dst->time) || (src->hostname && !dst->hostname) ||
	    !copy_strings(src->paths, src->n_paths, &dst->paths) ||
	    !copy_strings(src->tags, src->n_tags, &dst->tags))
	{
		files_snapshot_free(dst);
		return false;
	}
	return true;
}

static bool
parse_snapshot(const cJSON *o, FilesSnapshot *s)
{
	const char *v;
	const char *id;

	if (!cJSON_IsObject(o))
		return false;
	id = jstr(jget(o, "id"));
	if (id == NULL || !is_hex(id, FILES_ID_LEN))
		return false;
	memcpy(s->id, id, FILES_ID_LEN + 1);
	memcpy(s->short_id, id, FILES_SHORT_ID_LEN);
	s->short_id[FILES_SHORT_ID_LEN] = '\0';
	v = jstr(jget(o, "time"));
	if (v == NULL || !files_parse_time(v, &s->time_us) || (s->time = strdup(v)) == NULL)
		return false;
	v = jstr(jget(o, "hostname"));
	if ((s->hostname = strdup(v ? v : "")) == NULL)
		return false;
	return string_array(jget(o, "paths"), &s->paths, &s->n_paths) &&
	       string_array(jget(o, "tags"), &s->tags, &s->n_tags);
}

PgbkStatus
files_parse_snapshots(const char *json, size_t len, FilesSnapshotList **out, PgbkError *err)
{
	cJSON             *root;
	FilesSnapshotList *list;
	int                n;
	int                i;

	*out = NULL;
	root = cJSON_ParseWithLength(json, len);
	if (root == NULL)
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "could not parse the output of restic snapshots --json: not JSON");
	if (!cJSON_IsArray(root))
	{
		cJSON_Delete(root);
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "restic snapshots --json did not print a JSON array");
	}
	n = cJSON_GetArraySize(root);
	list = calloc(1, sizeof(*list));
	if (list == NULL || (list->items = calloc((size_t) n + 1, sizeof(FilesSnapshot))) == NULL)
	{
		free(list);
		cJSON_Delete(root);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	for (i = 0; i < n; i++)
	{
		list->n = (size_t) i + 1;
		if (!parse_snapshot(cJSON_GetArrayItem(root, i), &list->items[i]))
		{
			files_snapshot_list_free(list);
			cJSON_Delete(root);
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "unexpected snapshot entry %d in the output of restic snapshots "
			                  "--json (id, time, hostname, paths, tags)",
			                  i + 1);
		}
	}
	cJSON_Delete(root);
	*out = list;
	return PGBK_OK;
}

PgbkStatus
files_parse_forget(const char *out, size_t len, char ***ids, size_t *n_ids, PgbkError *err)
{
	const char *p = out;
	const char *end = out + len;
	cJSON      *root = NULL;
	bool        found = false;
	size_t      cap = 16;
	size_t      n = 0;
	char      **list;
	int         g;

	*ids = NULL;
	*n_ids = 0;
	/* the JSON array is the first line that starts with '[' */
	while (p < end)
	{
		const char *eol = memchr(p, '\n', (size_t) (end - p));
		size_t      ll = eol ? (size_t) (eol - p) : (size_t) (end - p);

		if (ll > 0 && p[0] == '[')
		{
			found = true;
			root = cJSON_ParseWithLength(p, ll);
			break;
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	if (!found)
		return PGBK_OK; /* nothing matched the policy's host: restic prints nothing */
	if (root == NULL || !cJSON_IsArray(root))
	{
		cJSON_Delete(root);
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "could not parse the JSON array in the output of restic forget --json");
	}
	list = calloc(cap, sizeof(char *));
	if (list == NULL)
	{
		cJSON_Delete(root);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	for (g = 0; g < cJSON_GetArraySize(root); g++)
	{
		cJSON *rm = jget(cJSON_GetArrayItem(root, g), "remove");
		int    i;

		for (i = 0; cJSON_IsArray(rm) && i < cJSON_GetArraySize(rm); i++)
		{
			const char *id = jstr(jget(cJSON_GetArrayItem(rm, i), "id"));

			if (id == NULL || !is_hex(id, FILES_ID_LEN))
				continue;
			if (n + 1 >= cap)
			{
				char **nl = realloc(list, 2 * cap * sizeof(char *));

				if (nl == NULL)
					goto oom;
				list = nl;
				cap *= 2;
			}
			if ((list[n] = strdup(id)) == NULL)
				goto oom;
			n++;
		}
	}
	cJSON_Delete(root);
	*ids = list;
	*n_ids = n;
	return PGBK_OK;

oom:
	while (n > 0)
		free(list[--n]);
	free(list);
	cJSON_Delete(root);
	return pgbk_error(err, PGBK_ERR, "out of memory");
}

/* ----------------------------------------------------------------------
 * Times and tags
 * ---------------------------------------------------------------------- */

bool
files_parse_time(const char *s, int64_t *us)
{
	return pgbk_time_parse(s, PGBK_TIME_RFC3339, us, NULL) == PGBK_OK;
}

static bool
tag_safe(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '~';
}

bool
files_restore_point_tag(const char *name, char *tag, size_t taglen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t            n = strlen(name);
	size_t            k;
	size_t            i;

	if (n == 0 || n > FILES_RP_NAME_MAX || taglen < FILES_TAG_MAX)
		return false;
	k = strlen(FILES_TAG_RP_PREFIX);
	memcpy(tag, FILES_TAG_RP_PREFIX, k);
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) name[i];

		if (tag_safe(c))
			tag[k++] = (char) c;
		else
		{
			tag[k++] = '%';
			tag[k++] = hex[c >> 4];
			tag[k++] = hex[c & 15];
		}
	}
	tag[k] = '\0';
	return true;
}

bool
files_tag_restore_point(const char *tag, char *name, size_t namelen)
{
	size_t      plen = strlen(FILES_TAG_RP_PREFIX);
	const char *p;
	size_t      k = 0;

	if (strncmp(tag, FILES_TAG_RP_PREFIX, plen) != 0 || tag[plen] == '\0')
		return false;
	for (p = tag + plen; *p; p++)
	{
		char c = *p;

		if (c == '%')
		{
			int hi = pgbk_hex_digit(p[1]);
			int lo = hi >= 0 ? pgbk_hex_digit(p[2]) : -1;

			if (lo < 0)
				return false;
			c = (char) (hi << 4 | lo);
			p += 2;
		}
		if (k + 1 >= namelen)
			return false;
		name[k++] = c;
	}
	name[k] = '\0';
	return true;
}

/* ----------------------------------------------------------------------
 * Listing and finding snapshots
 * ---------------------------------------------------------------------- */

PgbkStatus
files_list_snapshots(const FilesRepo *repo, const char *host, const char *id,
                     FilesSnapshotList **out, PgbkError *err)
{
	const char *args[8];
	int         n = 0;
	PgbkBuf     so;
	PgbkBuf     se;
	FilesExit   ex;
	PgbkStatus  rc;

	*out = NULL;
	args[n++] = "snapshots";
	args[n++] = "--json";
	args[n++] = "--no-lock";
	if (host)
	{
		args[n++] = "--host";
		args[n++] = host;
	}
	if (id)
		args[n++] = id;
	args[n] = NULL;
	pgbk_buf_init(&so);
	pgbk_buf_init(&se);
	rc = files_run(repo, args, &so, &se, &ex, err);
	if (rc == PGBK_OK && (ex.signaled || ex.code != 0))
		rc = files_fail(repo, "list snapshots", &ex, (const char *) se.data, err);
	if (rc == PGBK_OK)
		rc = files_parse_snapshots(so.data ? (const char *) so.data : "[]", so.len ? so.len : 2,
		                           out, err);
	pgbk_buf_free(&so);
	pgbk_buf_free(&se);
	return rc;
}

static bool
has_tag(const FilesSnapshot *s, const char *tag)
{
	int i;

	for (i = 0; i < s->n_tags; i++)
	{
		if (strcmp(s->tags[i], tag) == 0)
			return true;
	}
	return false;
}

static bool
same_paths(const FilesSnapshot *a, const FilesSnapshot *b)
{
	int i;

	if (a->n_paths != b->n_paths)
		return false;
	for (i = 0; i < a->n_paths; i++)
	{
		if (strcmp(a->paths[i], b->paths[i]) != 0)
			return false;
	}
	return true;
}

static int
by_time(const void *a, const void *b)
{
	const FilesSnapshot *x = a;
	const FilesSnapshot *y = b;

	return x->time_us < y->time_us ? -1 : x->time_us > y->time_us;
}

static const char *
tag_value(const FilesSnapshot *s, const char *prefix)
{
	size_t n = strlen(prefix);
	int    i;

	for (i = 0; i < s->n_tags; i++)
	{
		if (strncmp(s->tags[i], prefix, n) == 0)
			return s->tags[i] + n;
	}
	return NULL;
}

static int64_t
tag_time(const FilesSnapshot *s, const char *prefix)
{
	const char *v = tag_value(s, prefix);
	int64_t     us = 0;

	if (v == NULL || !files_parse_time(v, &us) || us == 0)
		return 0;
	return us;
}

/* What the span tags say about snapshot i (0: unknown). */
typedef struct Span
{
	int64_t from;
	int64_t end;
	int64_t until;
} Span;

static Span
span_of(const FilesSnapshotList *list, size_t i)
{
	Span        sp = {0, 0, 0};
	const char *prev;

	sp.from = tag_time(&list->items[i], FILES_TAG_FROM);
	if (i + 1 < list->n && (prev = tag_value(&list->items[i + 1], FILES_TAG_PREV)) != NULL &&
	    strcmp(prev, list->items[i].short_id) == 0)
	{
		size_t j = i + 1;

		sp.end = tag_time(&list->items[j], FILES_TAG_PREV_END);
		/*
		 * No change before the next snapshot began: the first change after
		 * this one began is the next one's (and so on); at least the newest
		 * one's start.
		 */
		while ((sp.until = tag_time(&list->items[j], FILES_TAG_PREV_UNTIL)) == 0)
		{
			if (j + 1 >= list->n ||
			    (prev = tag_value(&list->items[j + 1], FILES_TAG_PREV)) == NULL ||
			    strcmp(prev, list->items[j].short_id) != 0)
			{
				sp.until = list->items[j].time_us;
				break;
			}
			j++;
		}
	}
	else if (sp.from == 0 && i + 1 < list->n &&
	         tag_value(&list->items[i + 1], FILES_TAG_FROM) == NULL &&
	         strcmp(list->items[i].hostname, list->items[i + 1].hostname) == 0)
	{
		/*
		 * Taken by an older watcher or by --once (no span tags): a watcher
		 * runs one restic at a time per host, so the scan had ended when
		 * the next one began.
		 */
		sp.end = list->items[i + 1].time_us;
	}
	return sp;
}

static bool
span_exact(const Span *sp, int64_t t)
{
	return sp->from != 0 && sp->from <= t && sp->end != 0 && sp->until != 0 &&
	       sp->until >= sp->end && t < sp->until;
}

PgbkStatus
files_find_snapshot(const FilesRepo *repo, const char *host, int64_t target_us,
                    const char *restore_point, FilesSnapshot *out, PgbkError *err)
{
	FilesSnapshotList   *list;
	const FilesSnapshot *best = NULL;
	char                 tag[FILES_TAG_MAX];
	PgbkStatus           rc;
	size_t               i;
	bool                 exact = true;
	int64_t              as_of = 0;
	int64_t              best_end = 0;

	memset(out, 0, sizeof(*out));
	if (restore_point && !files_restore_point_tag(restore_point, tag, sizeof(tag)))
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "invalid restore point name \"%s\": it must have 1 to %d bytes",
		                  restore_point, FILES_RP_NAME_MAX);
	if ((rc = files_list_snapshots(repo, host, NULL, &list, err)) != PGBK_OK)
		return rc;
	if (list->n > 1)
		qsort(list->items, list->n, sizeof(list->items[0]), by_time);
	if (restore_point)
	{
		for (i = 0; i < list->n; i++)
		{
			const FilesSnapshot *s = &list->items[i];

			if (has_tag(s, tag) && (best == NULL || s->time_us < best->time_us))
				best = s;
		}
	}
	else if (target_us == INT64_MAX)
	{
		for (i = 0; i < list->n; i++)
		{
			if (best == NULL || list->items[i].time_us >= best->time_us)
				best = &list->items[i];
		}
	}
	else
	{
		/* exactly the files of target_us: one taken at or before it if there are several */
		for (i = 0; i < list->n; i++)
		{
			const FilesSnapshot *s = &list->items[i];
			Span                 sp = span_of(list, i);

			if (!span_exact(&sp, target_us))
				continue;
			if (best == NULL || (s->time_us <= target_us && best->time_us > target_us) ||
			    ((s->time_us <= target_us) == (best->time_us <= target_us) &&
			     (s->time_us <= target_us ? s->time_us > best->time_us
			                              : s->time_us < best->time_us)))
				best = s;
		}
		if (best == NULL)
		{
			/* files changing all the while: the newest scan that had ended by then */
			exact = false;
			for (i = 0; i < list->n; i++)
			{
				Span sp = span_of(list, i);

				if (sp.end != 0 && sp.end <= target_us && (best == NULL || sp.end > best_end))
				{
					best = &list->items[i];
					best_end = sp.end;
				}
			}
			as_of = best_end;
		}
	}
	if (best == NULL)
	{
		if (restore_point)
			rc = pgbk_error(err, PGBK_NOT_FOUND,
			                "no file snapshot in restic repository \"%s\" is tagged with restore "
			                "point \"%s\"",
			                repo->repository, restore_point);
		else if (list->n == 0)
			rc = pgbk_error(err, PGBK_NOT_FOUND,
			                "restic repository \"%s\" holds no file snapshot%s%s", repo->repository,
			                host ? " of host " : "", host ? host : "");
		else
			rc =
			    pgbk_error(err, PGBK_NOT_FOUND,
			               "no file snapshot is known to hold the files as they were at the target "
			               "time, nor only files written before it (a snapshot's scan end is "
			               "recorded by the next snapshot; the earliest one was taken at %s)",
			               list->items[0].time);
		files_snapshot_list_free(list);
		return rc;
	}
	if (host == NULL)
	{
		/* several machines (or sets of roots) in one repository: ambiguous */
		for (i = 0; i < list->n; i++)
		{
			const FilesSnapshot *s = &list->items[i];

			if (s->time_us <= best->time_us &&
			    (strcmp(s->hostname, best->hostname) != 0 || !same_paths(s, best)))
			{
				rc = pgbk_error(err, PGBK_ERR_USAGE,
				                "the files repository \"%s\" holds snapshots of more than one "
				                "host or set of roots (\"%s\" and \"%s\"); name the host",
				                repo->repository, s->hostname, best->hostname);
				files_snapshot_list_free(list);
				return rc;
			}
		}
	}
	if (!files_snapshot_copy(best, out))
		rc = pgbk_error(err, PGBK_ERR, "out of memory");
	out->exact = exact;
	out->as_of_us = as_of;
	files_snapshot_list_free(list);
	return rc;
}

/* ----------------------------------------------------------------------
 * Restore
 * ---------------------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path);
}

static void
remove_tree(const char *path)
{
	nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p (mode 0755 for what it creates) */
static PgbkStatus
make_dirs(const char *path, PgbkError *err)
{
	char   buf[PATH_MAX];
	size_t i;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
		return pgbk_error(err, PGBK_ERR_USAGE, "path \"%s\" is too long", path);
	for (i = 1; buf[i] != '\0'; i++)
	{
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", buf,
			                  strerror(errno));
		buf[i] = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return pgbk_error(err, PGBK_ERR_IO, "could not create directory \"%s\": %s", buf,
		                  strerror(errno));
	return PGBK_OK;
}

/* An existing target must be an empty directory; *missing says it is not there. */
static PgbkStatus
check_target(const char *dir, bool *missing, PgbkError *err)
{
	struct stat    st;
	DIR           *d;
	struct dirent *de;

	*missing = false;
	if (stat(dir, &st) != 0)
	{
		if (errno != ENOENT)
			return pgbk_error(err, PGBK_ERR_IO, "could not stat restore target \"%s\": %s", dir,
			                  strerror(errno));
		*missing = true;
		return PGBK_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return pgbk_error(err, PGBK_EXISTS, "restore target \"%s\" exists and is not a directory",
		                  dir);
	if ((d = opendir(dir)) == NULL)
		return pgbk_error(err, PGBK_ERR_IO, "could not open restore target \"%s\": %s", dir,
		                  strerror(errno));
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
		{
			closedir(d);
			return pgbk_error(err, PGBK_EXISTS,
			                  "restore target \"%s\" is not empty; restore the files into an "
			                  "empty or new directory",
			                  dir);
		}
	}
	closedir(d);
	return PGBK_OK;
}

/* Move every entry of src into dst (same file system), then give dst src's
 * mode and times. */
static PgbkStatus
move_contents(const char *src, const char *dst, PgbkError *err)
{
	DIR            *d;
	struct dirent  *de;
	struct stat     st;
	struct timespec times[2];
	char            from[PATH_MAX];
	char            to[PATH_MAX];

	if (lstat(src, &st) != 0)
		return pgbk_error(err, PGBK_ERR_IO, "restic did not restore \"%s\": %s", src,
		                  strerror(errno));
	if ((d = opendir(src)) == NULL)
		return pgbk_error(err, PGBK_ERR_IO, "could not open \"%s\": %s", src, strerror(errno));
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(from, sizeof(from), "%s/%s", src, de->d_name) >= (int) sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dst, de->d_name) >= (int) sizeof(to))
		{
			closedir(d);
			return pgbk_error(err, PGBK_ERR_IO, "path too long under \"%s\"", dst);
		}
		if (rename(from, to) != 0)
		{
			int e = errno;

			closedir(d);
			return pgbk_error(err, PGBK_ERR_IO, "could not move \"%s\" to \"%s\": %s", from, to,
			                  strerror(e));
		}
	}
	closedir(d);
	chmod(dst, st.st_mode & 07777);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	utimensat(AT_FDCWD, dst, times, 0);
	return PGBK_OK;
}

PgbkStatus
files_restore_repo(const FilesRepo *repo, const char *snapshot_id, const char *target_dir,
                   PgbkError *err)
{
	FilesSnapshotList *list = NULL;
	FilesSnapshot     *snap;
	char               staging[PATH_MAX];
	char               src[PATH_MAX];
	char               dst[PATH_MAX];
	const char        *args[6];
	PgbkBuf            se;
	FilesExit          ex;
	PgbkStatus         rc;
	int                i;
	int                fd;
	bool               missing;

	if (target_dir[0] != '/')
		return pgbk_error(err, PGBK_ERR_USAGE, "restore target \"%s\" must be an absolute path",
		                  target_dir);
	/* nothing is created before we know there is something to restore */
	if ((rc = check_target(target_dir, &missing, err)) != PGBK_OK)
		return rc;
	if ((rc = files_list_snapshots(repo, NULL, snapshot_id, &list, err)) != PGBK_OK)
		return rc;
	if (list->n != 1)
	{
		rc = pgbk_error(err, PGBK_NOT_FOUND,
		                "file snapshot \"%s\" is not in restic repository \"%s\"", snapshot_id,
		                repo->repository);
		files_snapshot_list_free(list);
		return rc;
	}
	snap = &list->items[0];
	if (missing && (rc = make_dirs(target_dir, err)) != PGBK_OK)
	{
		files_snapshot_list_free(list);
		return rc;
	}

	if (snprintf(staging, sizeof(staging), "%s/.pgbk-restore-XXXXXX", target_dir) >=
	        (int) sizeof(staging) ||
	    mkdtemp(staging) == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not create a staging directory in \"%s\": %s",
		                target_dir, strerror(errno));
		files_snapshot_list_free(list);
		return rc;
	}
	args[0] = "restore";
	args[1] = snap->id;
	args[2] = "--target";
	args[3] = staging;
	args[4] = NULL;
	pgbk_buf_init(&se);
	rc = files_run(repo, args, NULL, &se, &ex, err);
	if (rc == PGBK_OK && (ex.signaled || ex.code != 0))
		rc = files_fail(repo, "restore file snapshot", &ex, (const char *) se.data, err);
	pgbk_buf_free(&se);

	for (i = 0; rc == PGBK_OK && i < snap->n_paths; i++)
	{
		const char *p = snap->paths[i];

		if (snprintf(src, sizeof(src), "%s%s", staging, p) >= (int) sizeof(src) ||
		    snprintf(dst, sizeof(dst), "%s%s", target_dir, p) >= (int) sizeof(dst))
			rc = pgbk_error(err, PGBK_ERR_IO, "path too long: \"%s\"", p);
		else if (snap->n_paths == 1)
			rc = move_contents(src, target_dir, err);
		else
		{
			char *slash;

			/* several roots: each under its own absolute path */
			slash = strrchr(dst, '/');
			*slash = '\0';
			rc = make_dirs(dst, err);
			*slash = '/';
			if (rc == PGBK_OK && rename(src, dst) != 0)
				rc = pgbk_error(err, PGBK_ERR_IO, "could not move \"%s\" to \"%s\": %s", src, dst,
				                strerror(errno));
		}
	}
	remove_tree(staging);
	files_snapshot_list_free(list);
	if (rc != PGBK_OK)
	{
		if (missing)
			rmdir(target_dir); /* leave things as they were, if nothing was moved yet */
		return rc;
	}

	/* durable before we say it is done */
	fd = open(target_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not sync the file system of \"%s\": %s",
		                target_dir, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

PgbkStatus
files_restore(const PgbkConfig *cfg, const char *snapshot_id, const char *target_dir,
              PgbkError *err)
{
	FilesSettings fs;
	FilesRepo    *repo;
	PgbkStatus    rc;

	files_settings_from_config(cfg, &fs);
	if ((rc = files_repo_open(cfg, &fs, &repo, err)) != PGBK_OK)
		return rc;
	rc = files_restore_repo(repo, snapshot_id, target_dir, err);
	files_repo_free(repo);
	return rc;
}

PgbkStatus
files_find(const PgbkConfig *cfg, const char *host, int64_t target_us, const char *restore_point,
           FilesSnapshot *out, PgbkError *err)
{
	FilesSettings fs;
	FilesRepo    *repo;
	PgbkStatus    rc;

	memset(out, 0, sizeof(*out));
	files_settings_from_config(cfg, &fs);
	if ((rc = files_repo_open(cfg, &fs, &repo, err)) != PGBK_OK)
		return rc;
	rc = files_find_snapshot(repo, host, target_us, restore_point, out, err);
	files_repo_free(repo);
	return rc;
}
