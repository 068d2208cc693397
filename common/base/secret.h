/*
 * secret.h
 *	  Room base: libsodium's initialisation and secret files (secret.c).
 */
#ifndef PGBK_SECRET_H
#define PGBK_SECRET_H

#include "base/pgbk_common.h"

/*
 * Must be called once before anything uses libsodium (idempotent and
 * thread-safe; keys.c and codec.c call it themselves too).
 */
PgbkStatus pgbk_crypto_init(PgbkError *err);

/*
 * Read a small secret file (key file, S3 credentials) without leaving copies
 * of it around: the mode is checked first (pgbk_check_private_file, naming
 * the file as "what"; PGBK_ERR_CONFIG), then the file is read straight into
 * sodium_malloc'd memory, NUL-terminated.  Release with pgbk_secret_free(),
 * which zeroes it.  (pgbk_read_file is not for secrets: its stack buffer and
 * realloc'd blocks keep copies.)
 */
PgbkStatus pgbk_secret_read_file(const char *path, const char *what, char **data, size_t *len,
                                 PgbkError *err);
void       pgbk_secret_free(char *data);

#endif /* PGBK_SECRET_H */
