/*
 * secret.c
 *	  Room base: secrets in memory and in files.  libsodium's initialisation
 *	  and reading a small secret file (key file, S3 credentials) without
 *	  leaving copies of it around.  Below config (credentials) and format
 *	  (key files), which both read secrets through it.
 */
#include "base/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX (1024 * 1024)

PgbkStatus
pgbk_crypto_init(PgbkError *err)
{
	static int initialized = 0;

	if (__atomic_load_n(&initialized, __ATOMIC_ACQUIRE))
		return PGBK_OK;
	/* sodium_init() is itself thread-safe and idempotent. */
	if (sodium_init() < 0)
		return pgbk_error(err, PGBK_ERR, "could not initialize libsodium");
	__atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
	return PGBK_OK;
}

PgbkStatus
pgbk_secret_read_file(const char *path, const char *what, char **data, size_t *len, PgbkError *err)
{
	PgbkStatus  rc;
	struct stat st;
	int         fd;
	char       *buf;
	size_t      size;
	size_t      got = 0;

	*data = NULL;
	*len = 0;
	if ((rc = pgbk_crypto_init(err)) != PGBK_OK)
		return rc;
	if ((rc = pgbk_check_private_file(path, what, err)) != PGBK_OK)
		return rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pgbk_error(err, errno == ENOENT ? PGBK_ERR_CONFIG : PGBK_ERR_IO,
		                  "could not open %s \"%s\": %s", what, path, strerror(errno));

	/*
	 * Check again on the open file: the file could have been replaced
	 * between the check above and open().
	 */
	if (fstat(fd, &st) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not stat %s \"%s\": %s", what, path,
		                strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "%s \"%s\" changed while it was being opened (mode %04o)", what, path,
		                  (unsigned) (st.st_mode & 07777));
	}
	if (st.st_size > SECRET_FILE_MAX)
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR_CONFIG, "%s \"%s\" is too large (%lld bytes, at most %d)",
		                  what, path, (long long) st.st_size, SECRET_FILE_MAX);
	}
	size = (size_t) st.st_size;
	buf = sodium_malloc(size + 1);
	if (buf == NULL)
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR, "out of memory reading %s \"%s\"", what, path);
	}
	while (got < size)
	{
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			rc = pgbk_error(err, PGBK_ERR_IO, "could not read %s \"%s\": %s", what, path,
			                strerror(errno));
			close(fd);
			sodium_free(buf);
			return rc;
		}
		if (n == 0)
			break; /* file shrank: take what is there */
		got += (size_t) n;
	}
	close(fd);
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return PGBK_OK;
}

void
pgbk_secret_free(char *data)
{
	if (data != NULL)
		sodium_free(data); /* zeroes first */
}
