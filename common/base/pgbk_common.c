/*
 * pgbk_common.c
 *	  Room base, the bottom room: uses libc only, no other room.
 *	  Error buffers, byte buffers, runtime hooks and small utilities used by
 *	  every plain-C module (see pgbk_common.h).
 */
#include "base/pgbk_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool
default_interrupted(void)
{
	return false;
}

static void
default_sleep_ms(int ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long) (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
	{
		if (pgbk_hooks.interrupted && pgbk_hooks.interrupted())
			return;
	}
}

PgbkHooks pgbk_hooks = {default_interrupted, default_sleep_ms, NULL};

bool
pgbk_interrupted(void)
{
	return pgbk_hooks.interrupted != NULL && pgbk_hooks.interrupted();
}

void
pgbk_sleep_ms(int ms)
{
	if (pgbk_hooks.sleep_ms)
		pgbk_hooks.sleep_ms(ms);
	else
		default_sleep_ms(ms);
}

void
pgbk_log(int level, const char *fmt, ...)
{
	char    line[PGBK_ERRMSG_LEN];
	va_list ap;

	if (pgbk_hooks.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pgbk_hooks.log(level, line);
}

PgbkStatus
pgbk_error(PgbkError *err, PgbkStatus code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	err->detail[0] = '\0';
	err->hint[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

PgbkStatus
pgbk_error_detail(PgbkError *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return PGBK_ERR;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return err->code;
}

PgbkStatus
pgbk_error_hint(PgbkError *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return PGBK_ERR;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
	return err->code;
}

PgbkStatus
pgbk_error_prefix(PgbkError *err, const char *fmt, ...)
{
	char    prefix[PGBK_ERRMSG_LEN];
	char    old[PGBK_ERRMSG_LEN];
	va_list ap;

	if (err == NULL)
		return PGBK_ERR;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return err->code;
}

void
pgbk_error_clear(PgbkError *err)
{
	if (err)
	{
		err->code = PGBK_OK;
		err->msg[0] = '\0';
		err->detail[0] = '\0';
		err->hint[0] = '\0';
	}
}

const char *
pgbk_status_name(PgbkStatus code)
{
	switch (code)
	{
		case PGBK_OK:
			return "ok";
		case PGBK_NOT_FOUND:
			return "not found";
		case PGBK_EXISTS:
			return "exists";
		case PGBK_ERR:
			return "error";
		case PGBK_ERR_CONFIG:
			return "configuration";
		case PGBK_ERR_AUTH:
			return "authentication";
		case PGBK_ERR_NO_BUCKET:
			return "no such bucket";
		case PGBK_ERR_CONNECT:
			return "connection";
		case PGBK_ERR_DNS:
			return "name resolution";
		case PGBK_ERR_TLS:
			return "tls";
		case PGBK_ERR_SERVER:
			return "server";
		case PGBK_ERR_IO:
			return "i/o";
		case PGBK_ERR_INTEGRITY:
			return "integrity";
		case PGBK_ERR_KEY:
			return "key";
		case PGBK_ERR_FORMAT:
			return "format";
		case PGBK_ERR_INTERRUPTED:
			return "interrupted";
		case PGBK_ERR_USAGE:
			return "usage";
	}
	return "unknown";
}

void
pgbk_buf_init(PgbkBuf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

bool
pgbk_buf_reserve(PgbkBuf *b, size_t extra)
{
	size_t         need;
	size_t         ncap;
	unsigned char *nd;

	if (extra > SIZE_MAX - b->len - 1)
		return false;
	need = b->len + extra + 1; /* keep room for a terminating NUL */
	if (need <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = (ncap > SIZE_MAX / 2) ? need : ncap * 2;
	nd = realloc(b->data, ncap);
	if (nd == NULL)
		return false;
	b->data = nd;
	b->cap = ncap;
	return true;
}

bool
pgbk_buf_append(PgbkBuf *b, const void *data, size_t len)
{
	if (!pgbk_buf_reserve(b, len))
		return false;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return true;
}

bool
pgbk_buf_append_str(PgbkBuf *b, const char *s)
{
	return pgbk_buf_append(b, s, strlen(s));
}

bool
pgbk_buf_printf(PgbkBuf *b, const char *fmt, ...)
{
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !pgbk_buf_reserve(b, (size_t) n))
		return false;
	va_start(ap, fmt);
	vsnprintf((char *) b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
	return true;
}

void
pgbk_buf_reset(PgbkBuf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
pgbk_buf_free(PgbkBuf *b)
{
	free(b->data);
	pgbk_buf_init(b);
}

char *
pgbk_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int64_t
pgbk_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
pgbk_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t            i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
pgbk_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

PgbkStatus
pgbk_hex_parse(const char *hex, unsigned char *out, size_t len, const char *what, PgbkError *err)
{
	size_t n = strlen(hex);
	size_t i;

	if (n != 2 * len)
	{
		pgbk_error(err, PGBK_ERR_FORMAT, "invalid hexadecimal %s", what);
		if (n % 2 != 0)
			pgbk_error_detail(err, "It has an odd number of digits (%zu); %zu are expected.", n,
			                  2 * len);
		else
			pgbk_error_detail(err, "It has %zu digits; %zu are expected.", n, 2 * len);
		return PGBK_ERR_FORMAT;
	}
	for (i = 0; i < n; i++)
	{
		int v = pgbk_hex_digit(hex[i]);

		if (v < 0)
		{
			pgbk_error(err, PGBK_ERR_FORMAT, "invalid hexadecimal %s", what);
			if (hex[i] > ' ' && hex[i] < 127)
				pgbk_error_detail(err, "Character %zu ('%c') is not a hexadecimal digit.", i + 1,
				                  hex[i]);
			else
				pgbk_error_detail(err, "Character %zu (byte 0x%02x) is not a hexadecimal digit.",
				                  i + 1, (unsigned char) hex[i]);
			return PGBK_ERR_FORMAT;
		}
		if (i % 2 == 0)
			out[i / 2] = (unsigned char) (v << 4);
		else
			out[i / 2] |= (unsigned char) v;
	}
	return PGBK_OK;
}

bool
pgbk_hex_decode(const char *hex, unsigned char *out, size_t len)
{
	return pgbk_hex_parse(hex, out, len, "value", NULL) == PGBK_OK;
}

PgbkStatus
pgbk_check_private_file(const char *path, const char *what, PgbkError *err)
{
	struct stat st;

	if (stat(path, &st) != 0)
	{
		if (errno == ENOENT)
			return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" does not exist", what, path);
		return pgbk_error(err, PGBK_ERR_CONFIG, "could not stat %s \"%s\": %s", what, path,
		                  strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is not a regular file", what, path);
	if ((st.st_mode & 077) != 0)
	{
		pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is accessible by group or others (mode %04o)",
		           what, path, (unsigned) (st.st_mode & 07777));
		pgbk_error_hint(err, "Run chmod 600 on it.");
		return PGBK_ERR_CONFIG;
	}
	return PGBK_OK;
}

PgbkStatus
pgbk_read_file(const char *path, PgbkBuf *out, PgbkError *err)
{
	int           fd;
	unsigned char chunk[65536];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return pgbk_error(err, PGBK_NOT_FOUND, "file \"%s\" does not exist", path);
		return pgbk_error(err, PGBK_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
	}
	for (;;)
	{
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
			close(fd);
			return PGBK_ERR_IO;
		}
		if (n == 0)
			break;
		if (!pgbk_buf_append(out, chunk, (size_t) n))
		{
			close(fd);
			return pgbk_error(err, PGBK_ERR, "out of memory reading \"%s\"", path);
		}
	}
	close(fd);
	return PGBK_OK;
}

/* The user name of uid into buf; without one "uid N" (prose) or "N". */
static const char *
user_name(uid_t uid, bool prose, char *buf, size_t buflen)
{
	struct passwd  pw;
	struct passwd *res = NULL;
	char           tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL && res->pw_name)
		snprintf(buf, buflen, "%s", res->pw_name);
	else
		snprintf(buf, buflen, prose ? "uid %u" : "%u", (unsigned) uid);
	return buf;
}

PgbkStatus
pgbk_check_trusted_stat(const struct stat *st, uid_t me, const char *path, const char *what,
                        PgbkError *err)
{
	if (!S_ISREG(st->st_mode))
		return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is not a regular file", what, path);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return pgbk_error(
		    err, PGBK_ERR_CONFIG,
		    "%s \"%s\" is writable by %s (mode %04o), so it cannot be trusted (whoever "
		    "can write it can make pgbk run their programs); run chmod go-w %s",
		    what, path,
		    (st->st_mode & S_IWOTH) ? ((st->st_mode & S_IWGRP) ? "group and others" : "others")
		                            : "its group",
		    (unsigned) (st->st_mode & 07777), path);
	if (st->st_uid != me && st->st_uid != 0)
	{
		char owner[64];
		char self[64];
		char self_arg[64];

		user_name(st->st_uid, true, owner, sizeof(owner));
		user_name(me, true, self, sizeof(self));
		user_name(me, false, self_arg, sizeof(self_arg));
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "%s \"%s\" is owned by %s, not by %s (who runs pgbk) or root, so it "
		                  "cannot be trusted (its owner can make pgbk run their programs); run "
		                  "chown %s %s (or chown root)",
		                  what, path, owner, self, self_arg, path);
	}
	return PGBK_OK;
}

PgbkStatus
pgbk_read_trusted_file(const char *path, const char *what, size_t max, PgbkBuf *out, PgbkError *err)
{
	int           fd;
	struct stat   st;
	unsigned char chunk[65536];
	PgbkStatus    rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return pgbk_error(err, PGBK_NOT_FOUND, "%s \"%s\" does not exist", what, path);
		return pgbk_error(err, PGBK_ERR_IO, "could not open %s \"%s\": %s", what, path,
		                  strerror(errno));
	}
	if (fstat(fd, &st) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not stat %s \"%s\": %s", what, path,
		                strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = pgbk_check_trusted_stat(&st, geteuid(), path, what, err)) != PGBK_OK)
	{
		close(fd);
		return rc;
	}
	if ((uint64_t) st.st_size > max)
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is too large (over %zu bytes)", what,
		                  path, max);
	}
	for (;;)
	{
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			rc = pgbk_error(err, PGBK_ERR_IO, "could not read %s \"%s\": %s", what, path,
			                strerror(errno));
			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		if (out->len + (size_t) n > max)
		{
			close(fd);
			return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is too large (over %zu bytes)", what,
			                  path, max);
		}
		if (!pgbk_buf_append(out, chunk, (size_t) n))
		{
			close(fd);
			return pgbk_error(err, PGBK_ERR, "out of memory reading \"%s\"", path);
		}
	}
	close(fd);
	return PGBK_OK;
}

PgbkStatus
pgbk_write_all(int fd, const void *data, size_t len, const char *path, PgbkError *err)
{
	const unsigned char *p = data;

	while (len > 0)
	{
		ssize_t n = write(fd, p, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return pgbk_error(err, PGBK_ERR_IO, "could not write \"%s\": %s", path,
			                  strerror(errno));
		}
		p += n;
		len -= (size_t) n;
	}
	return PGBK_OK;
}

PgbkStatus
pgbk_fsync_path(const char *path, bool is_dir, PgbkError *err)
{
	int fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);

	if (fd < 0)
		return pgbk_error(err, PGBK_ERR_IO, "could not open \"%s\" to fsync it: %s", path,
		                  strerror(errno));
	if (fsync(fd) != 0)
	{
		int save = errno;

		close(fd);
		return pgbk_error(err, PGBK_ERR_IO, "could not fsync \"%s\": %s", path, strerror(save));
	}
	close(fd);
	return PGBK_OK;
}

PgbkStatus
pgbk_fsync_parent(const char *path, PgbkError *err)
{
	char      *dir = strdup(path);
	char      *slash;
	PgbkStatus st;

	if (dir == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	st = pgbk_fsync_path(dir, true, err);
	free(dir);
	return st;
}
