/*
 * main.c
 *	  Program pgbk, its entry point; uses cli.h (common/context through it).
 *	  pgbk: the command-line tool.  Works with the database server down: it
 *	  reads only pgbk.conf, the key file, the credentials file and the
 *	  repository.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_quiet = false;

static volatile sig_atomic_t interrupted_flag = 0;

static void
on_signal(int signo)
{
	(void) signo;
	interrupted_flag = 1;
}

static bool
cli_interrupted(void)
{
	return interrupted_flag != 0;
}

void
cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pgbk: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
cli_error_detail(const PgbkError *err)
{
	if (err->detail[0])
		fprintf(stderr, "DETAIL: %s\n", err->detail);
	if (err->hint[0])
		fprintf(stderr, "HINT: %s\n", err->hint);
}

void
cli_info(const char *fmt, ...)
{
	va_list ap;

	if (cli_quiet)
		return;
	fputs("pgbk: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_exit_code(PgbkStatus st)
{
	switch (st)
	{
		case PGBK_OK:
			return EXIT_OK;
		case PGBK_NOT_FOUND:
			return EXIT_NOT_FOUND;
		case PGBK_EXISTS:
			return EXIT_REFUSED;
		case PGBK_ERR_CONFIG:
			return EXIT_CONFIG;
		case PGBK_ERR_AUTH:
		case PGBK_ERR_NO_BUCKET:
		case PGBK_ERR_CONNECT:
		case PGBK_ERR_DNS:
		case PGBK_ERR_TLS:
		case PGBK_ERR_SERVER:
			return EXIT_REPO;
		case PGBK_ERR_INTEGRITY:
		case PGBK_ERR_FORMAT:
			return EXIT_INTEGRITY;
		case PGBK_ERR_KEY:
			return EXIT_KEY;
		case PGBK_ERR_USAGE:
			return EXIT_USAGE;
		case PGBK_ERR:
		case PGBK_ERR_IO:
		case PGBK_ERR_INTERRUPTED:
			break;
	}
	return EXIT_FAIL;
}

int
cli_fail(const PgbkError *err, const char *context)
{
	if (context)
		cli_error("%s: %s", context, err->msg);
	else
		cli_error("%s", err->msg);
	cli_error_detail(err);
	return cli_exit_code(err->code);
}

int
cli_open(CliContext *ctx, const char *config_path)
{
	PgbkRepoContextOptions opts = {0};
	PgbkError              err;

	pgbk_error_clear(&err);
	if (config_path == NULL)
		config_path = getenv("PGBK_CONFIG");
	if (config_path == NULL)
		config_path = DEFAULT_CONFIG;
	opts.config_path = config_path;
	opts.need_keys = true;
	opts.need_repo = true;
	if (pgbk_repo_context_open(&opts, ctx, &err) != PGBK_OK)
		return cli_fail(&err, NULL);
	return EXIT_OK;
}

void
cli_close(CliContext *ctx)
{
	pgbk_repo_context_close(ctx);
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "pgbk %s: backups of PostgreSQL (WAL, base backups, point-in-time restore)\n"
	        "\n"
	        "Usage: pgbk COMMAND [OPTIONS] [ARGS]\n"
	        "\n"
	        "Commands:\n"
	        "  wal-push PATH          archive one WAL file (archive_command = 'pgbk "
	        "wal-push %%p')\n"
	        "  wal-fetch NAME DEST    restore one WAL file (restore_command = 'pgbk "
	        "wal-fetch %%f %%p')\n"
	        "  wal-changes SEGMENT    a segment's change summary (--rebuild, --json)\n"
	        "  restore --to DIR ...   restore a base backup to a point in time into a new "
	        "data directory\n"
	        "                         (add --files-to DIR2 for the files scope too)\n"
	        "  restore --files-to DIR2 TARGET | --files-snapshot ID\n"
	        "                         restore only the files scope (pgbk-watcher's "
	        "snapshots)\n"
	        "                         TARGET: --target-time '2026-11-25 14:07[:SS[.ffffff]]"
	        "[Z|+HH[:MM]]',\n"
	        "                         --target-lsn, --target-name, --target "
	        "latest|immediate\n"
	        "  info [--json]          backups, archived WAL and the recoverable window\n"
	        "  verify [--sample F]    check that every object decrypts and matches its "
	        "checksum,\n"
	        "                         and that every backup has unbroken WAL\n"
	        "  check                  check the configuration and that the repository is "
	        "reachable\n"
	        "  keygen FILE            write a new key file (mode 0600)\n"
	        "\n"
	        "Common options:\n"
	        "  --config FILE          pgbk.conf (default $PGBK_CONFIG, else %s)\n"
	        "  --quiet                only errors on stderr\n"
	        "  --help, --version\n"
	        "\n"
	        "`pgbk COMMAND --help` describes each command.\n"
	        "\n"
	        "Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 repository "
	        "unreachable or refused,\n"
	        "5 not found, 6 integrity, 7 key, 8 refused (would overwrite, target not empty, "
	        "not recoverable,\n"
	        "restore --start as root).\n",
	        PGBK_VERSION, DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
	const char      *cmd;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pgbk_hooks.interrupted = cli_interrupted;

	if (argc < 2)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
	{
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0)
	{
		printf("pgbk %s\n", PGBK_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "wal-push") == 0)
		return cmd_wal_push(argc - 1, argv + 1);
	if (strcmp(cmd, "wal-changes") == 0)
		return cmd_wal_changes(argc - 1, argv + 1);
	if (strcmp(cmd, "wal-fetch") == 0)
		return cmd_wal_fetch(argc - 1, argv + 1);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(cmd, "restore") == 0)
		return cmd_restore(argc - 1, argv + 1);
	if (strcmp(cmd, "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	cli_error("unknown command \"%s\" (try \"pgbk --help\")", cmd);
	return EXIT_USAGE;
}
