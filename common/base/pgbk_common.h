/*
 * pgbk_common.h
 *	  Room base, the bottom room: includes no other room.
 *	  Status codes, error buffers, byte buffers and runtime hooks shared by
 *	  every plain-C module of pgbk.
 *
 * Code under common/ is compiled both into the PostgreSQL extension and into
 * the frontend programs (pgbk, pgbk-watcher), so it must not include backend
 * headers, call ereport() or exit().  Every fallible function returns a
 * PgbkStatus and, on failure, fills a PgbkError whose message names what
 * failed, with an optional detail (why, the facts around it) and hint (what
 * to do about it).  Thin wrappers turn that into ereport(errmsg, errdetail,
 * errhint) in the backend, into "pgbk: ..." plus "DETAIL: ..." and
 * "HINT: ..." lines and an exit code in the CLI, and into log lines of the
 * same names in the watcher.
 *
 * Memory is plain malloc/free.  Backend callers must make sure every object
 * they get from common/ is freed on their error paths too (PG_TRY or
 * long-lived handles).
 */
#ifndef PGBK_COMMON_H
#define PGBK_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PGBK_VERSION "0.1.0"

/*
 * Status codes.  PGBK_OK is zero; every other value is a distinct class of
 * failure that callers (and exit codes) may act on.
 */
typedef enum PgbkStatus
{
	PGBK_OK = 0,
	PGBK_NOT_FOUND,       /* object or file does not exist */
	PGBK_EXISTS,          /* exists with different content (never
								 * overwritten) */
	PGBK_ERR,             /* generic failure */
	PGBK_ERR_CONFIG,      /* bad configuration value or file */
	PGBK_ERR_AUTH,        /* S3 403: credentials or signature */
	PGBK_ERR_NO_BUCKET,   /* S3 bucket does not exist */
	PGBK_ERR_CONNECT,     /* connection refused, unreachable, timeout */
	PGBK_ERR_DNS,         /* host name could not be resolved */
	PGBK_ERR_TLS,         /* TLS handshake or certificate failure */
	PGBK_ERR_SERVER,      /* S3 5xx (after retries) or protocol error */
	PGBK_ERR_IO,          /* local file system error */
	PGBK_ERR_INTEGRITY,   /* tampered, truncated, checksum mismatch */
	PGBK_ERR_KEY,         /* missing or wrong encryption key */
	PGBK_ERR_FORMAT,      /* not a pgbk object / unsupported version */
	PGBK_ERR_INTERRUPTED, /* caller asked us to stop */
	PGBK_ERR_USAGE        /* bad argument from the caller/user */
} PgbkStatus;

#define PGBK_ERRMSG_LEN  1024
#define PGBK_ERRHINT_LEN 512

/*
 * An error: the message is one short sentence naming what failed (it is
 * what callers prefix with their context); detail and hint are "" unless
 * set, full sentences, never folded into the message.
 */
typedef struct PgbkError
{
	PgbkStatus code;
	char       msg[PGBK_ERRMSG_LEN];
	char       detail[PGBK_ERRMSG_LEN];
	char       hint[PGBK_ERRHINT_LEN];
} PgbkError;

/* Set *err (if not NULL), clearing any detail and hint, and return code. */
PgbkStatus pgbk_error(PgbkError *err, PgbkStatus code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Set the detail or the hint of an error already set by pgbk_error()
 * (replacing any earlier one).  Return err->code, so that a caller can end
 * with: return pgbk_error_hint(err, "...").
 */
PgbkStatus pgbk_error_detail(PgbkError *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
PgbkStatus pgbk_error_hint(PgbkError *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepend context: "context: previous message" (detail and hint stay). Returns err->code. */
PgbkStatus pgbk_error_prefix(PgbkError *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void pgbk_error_clear(PgbkError *err);

/* Short name of a status, e.g. "integrity". */
const char *pgbk_status_name(PgbkStatus code);

/* Growable byte buffer. */
typedef struct PgbkBuf
{
	unsigned char *data;
	size_t         len;
	size_t         cap;
} PgbkBuf;

void pgbk_buf_init(PgbkBuf *b);
/* Returns false on allocation failure (b unchanged). */
bool pgbk_buf_reserve(PgbkBuf *b, size_t extra);
bool pgbk_buf_append(PgbkBuf *b, const void *data, size_t len);
bool pgbk_buf_append_str(PgbkBuf *b, const char *s);
bool pgbk_buf_printf(PgbkBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pgbk_buf_reset(PgbkBuf *b);
void pgbk_buf_free(PgbkBuf *b);

/*
 * Runtime hooks.  The backend installs versions that check for pending
 * interrupts and sleep on the process latch; the defaults never interrupt
 * and use nanosleep().  Long-running operations (network transfers, retry
 * backoff, big loops) must poll interrupted() and return
 * PGBK_ERR_INTERRUPTED when it says so.
 */
typedef struct PgbkHooks
{
	bool (*interrupted)(void);
	void (*sleep_ms)(int ms);
	/* optional diagnostic log line (never contains secrets); may be NULL */
	void (*log)(int level, const char *msg);
} PgbkHooks;

#define PGBK_LOG_DEBUG   0
#define PGBK_LOG_INFO    1
#define PGBK_LOG_WARNING 2

extern PgbkHooks pgbk_hooks;

bool pgbk_interrupted(void);
void pgbk_sleep_ms(int ms);
void pgbk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* strdup that returns NULL on NULL input */
char *pgbk_strdup(const char *s);

/* Wall clock in microseconds since the Unix epoch. */
int64_t pgbk_now_us(void);

/* Write all of data to fd (retrying short writes and EINTR); path names it in errors. */
PgbkStatus pgbk_write_all(int fd, const void *data, size_t len, const char *path, PgbkError *err);

/* fsync a file or (is_dir) a directory by path. */
PgbkStatus pgbk_fsync_path(const char *path, bool is_dir, PgbkError *err);

/* fsync the directory holding path, so that a new entry there survives a crash. */
PgbkStatus pgbk_fsync_parent(const char *path, PgbkError *err);

/* Lower-case hex encoding; out must hold 2*len+1 bytes. */
void pgbk_hex_encode(const unsigned char *in, size_t len, char *out);
/* The value of one hexadecimal digit (either case), or -1: the one hex decoder. */
int pgbk_hex_digit(char c);
/*
 * Decode hex, exactly 2*len hexadecimal digits (either case), into out.
 * Otherwise PGBK_ERR_FORMAT, "invalid hexadecimal <what>" with a detail
 * saying what is wrong (odd number of digits, too few or too many, which
 * character is no digit); out may then be partly written.
 */
PgbkStatus pgbk_hex_parse(const char *hex, unsigned char *out, size_t len, const char *what,
                          PgbkError *err);
/* pgbk_hex_parse() without the error: false unless hex is exactly 2*len hex digits. */
bool pgbk_hex_decode(const char *hex, unsigned char *out, size_t len);

/*
 * Secret-file check: the file must be a regular file not readable, writable
 * or executable by group or others.  The error names the file and the mode.
 */
PgbkStatus pgbk_check_private_file(const char *path, const char *what, PgbkError *err);

/* Read a whole (small) file.  NOT_FOUND if it does not exist. */
PgbkStatus pgbk_read_file(const char *path, PgbkBuf *out, PgbkError *err);

/*
 * Read a whole configuration file that pgbk may trust, the way ssh treats
 * its files: a regular file (symbolic links are followed), not writable by
 * group or others, owned by the user running pgbk (the effective uid) or
 * by root.  Such files name programs pgbk runs (restic_binary), so one
 * another user could edit would let that user run code as us.  The checks
 * apply to the opened file itself (fstat), so it cannot be swapped between
 * check and read.  A refusal is PGBK_ERR_CONFIG with a message naming the
 * file, what is wrong and the command that fixes it; NOT_FOUND if the file
 * does not exist; more than max bytes is PGBK_ERR_CONFIG.  what names the
 * file in messages ("configuration file").
 */
PgbkStatus pgbk_read_trusted_file(const char *path, const char *what, size_t max, PgbkBuf *out,
                                  PgbkError *err);

/*
 * The check of pgbk_read_trusted_file on a stat result, for a running user
 * me (exposed for unit tests, which cannot make files owned by others).
 */
PgbkStatus pgbk_check_trusted_stat(const struct stat *st, uid_t me, const char *path,
                                   const char *what, PgbkError *err);

#endif /* PGBK_COMMON_H */
