/*
 * cli.h
 *	  Program pgbk (the CLI); uses common/ config, context, repo and format (codec,
 *	  keys).
 *	  Shared pieces of the pgbk command-line tool: exit codes, messages,
 *	  option parsing helpers and the repository context of one run.
 *
 * Exit codes (documented in `pgbk --help` and README.md):
 *	 0	success
 *	 1	failure not covered below
 *	 2	usage error (bad option or argument)
 *	 3	configuration error (pgbk.conf, key file, credentials file)
 *	 4	repository unreachable or refused us (connection, DNS, TLS,
 *		credentials, missing bucket)
 *	 5	not found (wal-fetch: the file is not in the repository)
 *	 6	integrity error (object tampered with, truncated, checksum mismatch)
 *	 7	key error (object encrypted with a key we do not have)
 *	 8	refused: would overwrite different content, or target not empty,
 *		or target not recoverable
 */
#ifndef PGBK_CLI_H
#define PGBK_CLI_H

#include "config/config.h"
#include "context/context.h"
#include "format/codec.h"
#include "format/keys.h"
#include "repo/repo.h"

#define EXIT_OK        0
#define EXIT_FAIL      1
#define EXIT_USAGE     2
#define EXIT_CONFIG    3
#define EXIT_REPO      4
#define EXIT_NOT_FOUND 5
#define EXIT_INTEGRITY 6
#define EXIT_KEY       7
#define EXIT_REFUSED   8

#define DEFAULT_CONFIG "/etc/pgbk/pgbk.conf"

/* The repository context of one run (common/context: config, keys, repository, codec). */
typedef PgbkRepoContext CliContext;

/* "pgbk: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The "DETAIL: ..." and "HINT: ..." lines of err (if any) on stderr, after its cli_error(). */
void cli_error_detail(const PgbkError *err);
/* "pgbk: <message>" on stderr, unless --quiet. */
void        cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool cli_quiet;

/* Map a status to an exit code. */
int cli_exit_code(PgbkStatus st);

/* Report err (with an optional context) and return its exit code. */
int cli_fail(const PgbkError *err, const char *context);

/*
 * Open the repository context (pgbk_repo_context_open: configuration, key
 * ring, repository) from the configuration file the user chose: --config,
 * else $PGBK_CONFIG, else /etc/pgbk/pgbk.conf.  Returns an exit code, having
 * reported any error.
 */
int  cli_open(CliContext *ctx, const char *config_path);
void cli_close(CliContext *ctx);

/*
 * Fetch a WAL-area object into dest: stream, decode, verify (also that it
 * names itself as key does, and holds no more than segsz bytes for a
 * segment; segsz 0: not known), fsync, then rename into place; on any
 * failure no dest file is left.
 */
PgbkStatus cli_fetch_object(Repo *repo, const PgbkKeyring *ring, const char *key, uint32_t segsz,
                            const char *dest, PgbkError *err);

/* Commands: each gets argv after the command name and returns an exit code. */
int cmd_wal_push(int argc, char **argv);
int cmd_wal_fetch(int argc, char **argv);
int cmd_wal_changes(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif /* PGBK_CLI_H */
