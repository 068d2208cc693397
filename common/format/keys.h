/*
 * keys.h
 *	  Room format; uses base (secret files) only.
 *	  Encryption key files.
 *
 * A key file is text: '#' comments and one key per line, written as
 * "pgbk-key-1:" followed by 64 hex digits (32 random bytes).  The first key
 * authenticates (and, with encryption on, encrypts) new objects; every key
 * listed reads, so old objects stay readable after a rotation (add the new
 * key on top, keep the old ones below).  The file must be mode 0600 or
 * tighter.  Every repository needs one, also with encryption off (codec.h).
 *
 * A key's id is the first four bytes (little endian) of
 * BLAKE2b-256("pgbk key id" || key): objects record the id of the key that
 * authenticated them, so a wrong key is reported as such instead of as
 * tampering.  Key material lives in sodium_malloc'd memory, is zeroed on
 * free and never appears in messages.
 */
#ifndef PGBK_KEYS_H
#define PGBK_KEYS_H

#include "base/pgbk_common.h"
#include "base/secret.h"

#define PGBK_KEY_BYTES 32

typedef struct PgbkKey
{
	uint32_t      id;
	unsigned char key[PGBK_KEY_BYTES];
} PgbkKey;

typedef struct PgbkKeyring
{
	int      nkeys;
	PgbkKey *keys; /* keys[0] encrypts; sodium_malloc'd */
	char    *path; /* for messages */
} PgbkKeyring;

/* Load and validate (mode, syntax, at least one key). */
PgbkStatus keyring_load(const char *path, PgbkKeyring **out, PgbkError *err);
void       keyring_free(PgbkKeyring *ring);

/* NULL if no key with that id. */
const PgbkKey *keyring_find(const PgbkKeyring *ring, uint32_t id);

/* Create a new key file with one fresh key, mode 0600; refuses to overwrite
 * an existing file (PGBK_EXISTS). */
PgbkStatus keyring_generate_file(const char *path, PgbkError *err);

/* Compute the id of a raw key. */
uint32_t keyring_key_id(const unsigned char key[PGBK_KEY_BYTES]);

#endif /* PGBK_KEYS_H */
