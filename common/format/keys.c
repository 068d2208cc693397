/*
 * keys.c
 *	  Room format; uses base (secret files) and libsodium.
 *	  Encryption key files: parsing, validation, key ids and generation
 *	  (see keys.h for the file format).
 *
 * Key material is only ever held in sodium_malloc'd memory (guard pages,
 * locked in RAM where the limits allow, zeroed by sodium_free): the key file
 * is read straight into such a buffer, each key is decoded from it directly
 * into the keyring, and the buffer is zeroed when we are done.  Messages name
 * the file and the line, never the line's content: a typo in a key line
 * must not end up in a log.
 */
#include "format/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_PREFIX     "pgbk-key-1:"
#define KEY_PREFIX_LEN (sizeof(KEY_PREFIX) - 1)
#define KEY_HEX_LEN    (2 * PGBK_KEY_BYTES)
#define KEY_LINE_LEN   (KEY_PREFIX_LEN + KEY_HEX_LEN)

/* Domain separation for key ids (keys.h). */
static const char key_id_context[] = "pgbk key id";

uint32_t
keyring_key_id(const unsigned char key[PGBK_KEY_BYTES])
{
	crypto_generichash_state st;
	unsigned char            h[32];
	uint32_t                 id;

	(void) pgbk_crypto_init(NULL);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *) key_id_context,
	                          sizeof(key_id_context) - 1);
	crypto_generichash_update(&st, key, PGBK_KEY_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	id = (uint32_t) h[0] | (uint32_t) h[1] << 8 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 24;
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(h, sizeof(h));
	return id;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Parse the key lines of text (which we own and may modify) into ring.
 * ring->keys has room for maxkeys keys.
 */
static PgbkStatus
parse_keys(PgbkKeyring *ring, char *text, size_t len, int maxkeys, PgbkError *err)
{
	char *p = text;
	char *end = text + len;
	int   lineno = 0;
	int  *key_lines;

	key_lines = malloc(sizeof(int) * (size_t) maxkeys);
	if (key_lines == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");

	while (p < end)
	{
		char    *eol = memchr(p, '\n', (size_t) (end - p));
		char    *line = p;
		char    *hash;
		size_t   n;
		PgbkKey *k;
		int      i;

		if (eol == NULL)
			eol = end;
		p = eol + 1;
		lineno++;

		n = (size_t) (eol - line);
		if (memchr(line, '\0', n) != NULL)
		{
			free(key_lines);
			return pgbk_error(err, PGBK_ERR_KEY, "key file \"%s\" line %d: contains a NUL byte",
			                  ring->path, lineno);
		}
		hash = memchr(line, '#', n);
		if (hash != NULL)
			n = (size_t) (hash - line);
		while (n > 0 && is_space(*line))
		{
			line++;
			n--;
		}
		while (n > 0 && is_space(line[n - 1]))
			n--;
		if (n == 0)
			continue;

		if (n != KEY_LINE_LEN || memcmp(line, KEY_PREFIX, KEY_PREFIX_LEN) != 0)
		{
			free(key_lines);
			return pgbk_error(err, PGBK_ERR_KEY,
			                  "key file \"%s\" line %d: expected \"%s\" followed by %d hex digits",
			                  ring->path, lineno, KEY_PREFIX, (int) KEY_HEX_LEN);
		}
		if (ring->nkeys >= maxkeys)
		{
			/* cannot happen: maxkeys is computed from the file length */
			free(key_lines);
			return pgbk_error(err, PGBK_ERR_KEY, "key file \"%s\" has too many keys", ring->path);
		}

		/* Decode in place: terminate the hex digits where the line ends. */
		line[n] = '\0';
		k = &ring->keys[ring->nkeys];
		if (!pgbk_hex_decode(line + KEY_PREFIX_LEN, k->key, PGBK_KEY_BYTES))
		{
			free(key_lines);
			return pgbk_error(err, PGBK_ERR_KEY,
			                  "key file \"%s\" line %d: the key is not valid hexadecimal",
			                  ring->path, lineno);
		}
		k->id = keyring_key_id(k->key);

		for (i = 0; i < ring->nkeys; i++)
		{
			if (sodium_memcmp(ring->keys[i].key, k->key, PGBK_KEY_BYTES) == 0)
			{
				int first = key_lines[i];

				free(key_lines);
				return pgbk_error(err, PGBK_ERR_KEY,
				                  "key file \"%s\" line %d: repeats the key on line %d", ring->path,
				                  lineno, first);
			}
			if (ring->keys[i].id == k->id)
			{
				int first = key_lines[i];

				free(key_lines);
				pgbk_error(
				    err, PGBK_ERR_KEY,
				    "key file \"%s\" line %d: key id %08x is also the id of the key on line %d",
				    ring->path, lineno, (unsigned) k->id, first);
				pgbk_error_hint(err, "Replace one of them with a newly generated key.");
				return PGBK_ERR_KEY;
			}
		}
		key_lines[ring->nkeys] = lineno;
		ring->nkeys++;
	}
	free(key_lines);

	if (ring->nkeys == 0)
	{
		pgbk_error(err, PGBK_ERR_KEY, "key file \"%s\" contains no keys", ring->path);
		pgbk_error_hint(
		    err, "A key is a line \"%s<%d hex digits>\"; pgbk keygen FILE creates a key file.",
		    KEY_PREFIX, (int) KEY_HEX_LEN);
		return PGBK_ERR_KEY;
	}
	return PGBK_OK;
}

PgbkStatus
keyring_load(const char *path, PgbkKeyring **out, PgbkError *err)
{
	PgbkStatus   rc;
	PgbkKeyring *ring;
	char        *text;
	size_t       len;
	int          maxkeys;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return pgbk_error(err, PGBK_ERR_KEY, "no key file is configured");

	rc = pgbk_secret_read_file(path, "key file", &text, &len, err);
	if (rc != PGBK_OK)
	{
		/* a missing or exposed key file is a key problem for our callers */
		if (rc == PGBK_ERR_CONFIG && err != NULL)
			err->code = PGBK_ERR_KEY;
		return rc == PGBK_ERR_CONFIG ? PGBK_ERR_KEY : rc;
	}

	ring = calloc(1, sizeof(*ring));
	if (ring == NULL || (ring->path = strdup(path)) == NULL)
	{
		free(ring);
		pgbk_secret_free(text);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	/* every key line is at least KEY_LINE_LEN bytes */
	maxkeys = (int) (len / KEY_LINE_LEN) + 1;
	ring->keys = sodium_allocarray((size_t) maxkeys, sizeof(PgbkKey));
	if (ring->keys == NULL)
	{
		pgbk_secret_free(text);
		keyring_free(ring);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}

	rc = parse_keys(ring, text, len, maxkeys, err);
	pgbk_secret_free(text);
	if (rc != PGBK_OK)
	{
		keyring_free(ring);
		return rc;
	}
	*out = ring;
	return PGBK_OK;
}

void
keyring_free(PgbkKeyring *ring)
{
	if (ring == NULL)
		return;
	if (ring->keys != NULL)
		sodium_free(ring->keys); /* zeroes first */
	free(ring->path);
	free(ring);
}

const PgbkKey *
keyring_find(const PgbkKeyring *ring, uint32_t id)
{
	int i;

	if (ring == NULL)
		return NULL;
	for (i = 0; i < ring->nkeys; i++)
	{
		if (ring->keys[i].id == id)
			return &ring->keys[i];
	}
	return NULL;
}

PgbkStatus
keyring_generate_file(const char *path, PgbkError *err)
{
	static const char intro[] =
	    "# pgbk encryption key file.\n"
	    "# The first key encrypts new objects; every key listed here can decrypt.\n"
	    "# To rotate, add a new key line above the current one and keep the old\n"
	    "# ones below it.  Keep a copy of this file in a safe place: without it\n"
	    "# the backups cannot be read.\n";
	PgbkStatus     rc;
	int            fd;
	unsigned char *key;
	char          *line;
	char           created[80];
	time_t         now = time(NULL);
	struct tm      tm;

	if ((rc = pgbk_crypto_init(err)) != PGBK_OK)
		return rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		if (errno == EEXIST)
			return pgbk_error(err, PGBK_EXISTS,
			                  "key file \"%s\" already exists; refusing to overwrite it", path);
		return pgbk_error(err, PGBK_ERR_IO, "could not create key file \"%s\": %s", path,
		                  strerror(errno));
	}

	key = sodium_malloc(PGBK_KEY_BYTES);
	line = sodium_malloc(KEY_LINE_LEN + 2);
	if (key == NULL || line == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR, "out of memory");
		goto fail;
	}
	randombytes_buf(key, PGBK_KEY_BYTES);
	memcpy(line, KEY_PREFIX, KEY_PREFIX_LEN);
	pgbk_hex_encode(key, PGBK_KEY_BYTES, line + KEY_PREFIX_LEN);
	line[KEY_LINE_LEN] = '\n';
	line[KEY_LINE_LEN + 1] = '\0';

	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "# Created %Y-%m-%d %H:%M:%S UTC.\n", &tm);

	/* the umask may not loosen the mode; make it exactly 0600 */
	if (fchmod(fd, 0600) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not set the mode of key file \"%s\": %s", path,
		                strerror(errno));
		goto fail;
	}
	if ((rc = pgbk_write_all(fd, intro, sizeof(intro) - 1, path, err)) != PGBK_OK ||
	    (rc = pgbk_write_all(fd, created, strlen(created), path, err)) != PGBK_OK ||
	    (rc = pgbk_write_all(fd, line, KEY_LINE_LEN + 1, path, err)) != PGBK_OK)
		goto fail;
	if (fsync(fd) != 0)
	{
		rc = pgbk_error(err, PGBK_ERR_IO, "could not fsync key file \"%s\": %s", path,
		                strerror(errno));
		goto fail;
	}
	if (close(fd) != 0)
	{
		fd = -1;
		rc = pgbk_error(err, PGBK_ERR_IO, "could not write key file \"%s\": %s", path,
		                strerror(errno));
		goto fail;
	}
	fd = -1;
	sodium_free(key);
	sodium_free(line);
	key = NULL;
	line = NULL;
	if ((rc = pgbk_fsync_parent(path, err)) != PGBK_OK)
		goto fail;
	return PGBK_OK;

fail:
	if (fd >= 0)
		close(fd);
	/* we created it, so we may remove it: a half-written key file is useless */
	unlink(path);
	if (key != NULL)
		sodium_free(key);
	if (line != NULL)
		sodium_free(line);
	return rc;
}
