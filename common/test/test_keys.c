/*
 * test_keys.c
 *	  Tests of room format (cmocka): key files; uses unit.h and keys.c.
 *	  Unit tests for key files (keys.c): syntax, comments, errors that name
 *	  the file and line but never the key, the mode check, generation that
 *	  never overwrites, and stable key ids.
 */
#include "unit.h"

#include "format/keys.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[512];

/* 0x00..0x1f and a second fixed key */
static const char *const hex_seq =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *const hex_a = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static const char *
path_of(const char *name)
{
	static char path[600];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	const char *path = path_of(name);
	FILE       *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* Loading must fail with want; the message names the file and has substr. */
static void
expect_load_fail(const char *path, PgbkStatus want, const char *substr)
{
	PgbkKeyring *ring = (PgbkKeyring *) 0x1;
	PgbkError    err;
	PgbkStatus   rc = keyring_load(path, &ring, &err);

	if (rc != want)
		fail_msg("%s: expected %s, got %s: %s", path, pgbk_status_name(want), pgbk_status_name(rc),
		         rc ? err.msg : "");
	assert_null(ring);
	assert_non_null(strstr(err.msg, path));
	if (substr && strstr(err.msg, substr) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, substr);
	/* never any key material, nor pieces of the bad line */
	assert_null(strstr(err.msg, "00112233"));
	assert_null(strstr(err.msg, "0a0b0c0d"));
	assert_null(strstr(err.msg, "zzzz"));
}

static int
setup(void **state)
{
	const char *base = getenv("PGBK_TEST_TMP");

	snprintf(tmpdir, sizeof(tmpdir), "%s/pgbk_keys_XXXXXX", base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return pgbk_crypto_init(NULL) == PGBK_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_parse(void **state)
{
	char          text[1024];
	const char   *path;
	PgbkKeyring  *ring;
	PgbkError     err;
	unsigned char seq[32];
	int           i;

	snprintf(text, sizeof(text),
	         "# pgbk keys\n"
	         "\n"
	         "   # indented comment\n"
	         "pgbk-key-1:%s   # newest, encrypts\r\n"
	         "\t pgbk-key-1:%s\n"
	         "pgbk-key-1:%s", /* no final newline */
	         hex_seq, "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff",
	         "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
	path = write_file("good.key", text, 0600);
	if (keyring_load(path, &ring, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	assert_int_equal(ring->nkeys, 3);
	assert_string_equal(ring->path, path);
	for (i = 0; i < 32; i++)
		seq[i] = (unsigned char) i;
	assert_memory_equal(ring->keys[0].key, seq, 32);
	assert_int_equal(ring->keys[0].id, keyring_key_id(seq));
	assert_int_equal(ring->keys[1].id, 0x714ce77e); /* upper-case hex is the same key */
	assert_int_equal(ring->keys[2].key[31], 0xff);

	assert_ptr_equal(keyring_find(ring, ring->keys[1].id), &ring->keys[1]);
	assert_null(keyring_find(ring, ring->keys[0].id ^ 1));
	assert_null(keyring_find(NULL, 1));
	keyring_free(ring);
	keyring_free(NULL);
}

/* Ids are part of the format: they must never change. */
static void
test_ids_stable(void **state)
{
	unsigned char key[32];
	int           i;

	for (i = 0; i < 32; i++)
		key[i] = (unsigned char) i;
	assert_int_equal(keyring_key_id(key), 0x6dd36e01);
	assert_true(pgbk_hex_decode(hex_a, key, 32));
	assert_int_equal(keyring_key_id(key), 0x714ce77e);
}

static void
test_bad_lines(void **state)
{
	static const struct
	{
		const char *text;
		const char *what;
	} cases[] = {
	    {"# ok\npgbk-key-1:0011\n", "line 2"}, /* short */
	    {"pgbk-key-1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n",
	     "line 1"}, /* long */
	    {"\n\npgbk-key-2:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	     "line 3"}, /* version */
	    {"pgbk-key-1:zzzz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	     "not valid hexadecimal"}, /* not hex */
	    {"pgbk-key-1: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	     "line 1"}, /* space */
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "line 1"}, /* bare */
	    {"# nothing here\n\n   \n", "contains no keys"},
	    {"", "contains no keys"},
	    {"pgbk-key-1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n#\n"
	     "pgbk-key-1:000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f\n",
	     "line 3: repeats the key on line 1"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *path = write_file("bad.key", cases[i].text, 0600);

		expect_load_fail(path, PGBK_ERR_KEY, cases[i].what);
	}
}

static void
test_mode_checked(void **state)
{
	char         text[200];
	const char  *path;
	PgbkKeyring *ring;
	PgbkError    err;

	snprintf(text, sizeof(text), "pgbk-key-1:%s\n", hex_a);
	path = write_file("mode.key", text, 0644);
	expect_load_fail(path, PGBK_ERR_KEY, "mode 0644");
	/* what to do is the hint */
	assert_int_equal(keyring_load(path, &ring, &err), PGBK_ERR_KEY);
	assert_string_equal(err.hint, "Run chmod 600 on it.");
	path = write_file("mode.key", text, 0640);
	expect_load_fail(path, PGBK_ERR_KEY, "mode 0640");
	path = write_file("mode.key", text, 0604);
	expect_load_fail(path, PGBK_ERR_KEY, "mode 0604");

	/* 0600 and tighter are fine */
	path = write_file("mode.key", text, 0400);
	assert_int_equal(keyring_load(path, &ring, &err), PGBK_OK);
	keyring_free(ring);

	/* missing file, directory */
	expect_load_fail(path_of("missing.key"), PGBK_ERR_KEY, "does not exist");
	assert_int_equal(mkdir(path_of("dir.key"), 0700), 0);
	expect_load_fail(path_of("dir.key"), PGBK_ERR_KEY, "not a regular file");

	/* no path at all */
	assert_int_equal(keyring_load(NULL, &ring, &err), PGBK_ERR_KEY);
	assert_int_equal(keyring_load("", &ring, &err), PGBK_ERR_KEY);
}

static void
test_generate(void **state)
{
	char        *path = strdup(path_of("new.key"));
	char        *path2 = strdup(path_of("new2.key"));
	PgbkKeyring *ring;
	PgbkKeyring *ring2;
	PgbkError    err;
	PgbkBuf      before;
	PgbkBuf      after;
	struct stat  st;
	mode_t       old_umask = umask(0);

	/* a loose umask must not loosen the key file */
	if (keyring_generate_file(path, &err) != PGBK_OK)
		fail_msg("%s", err.msg);
	umask(old_umask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(keyring_load(path, &ring, &err), PGBK_OK);
	assert_int_equal(ring->nkeys, 1);

	/* refuses to overwrite, leaves the file alone */
	pgbk_buf_init(&before);
	pgbk_buf_init(&after);
	assert_int_equal(pgbk_read_file(path, &before, &err), PGBK_OK);
	assert_int_equal(keyring_generate_file(path, &err), PGBK_EXISTS);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "refusing to overwrite"));
	assert_int_equal(pgbk_read_file(path, &after, &err), PGBK_OK);
	assert_int_equal(before.len, after.len);
	assert_memory_equal(before.data, after.data, before.len);

	/* not through a symlink either, even a dangling one */
	{
		char *target = strdup(path_of("nowhere"));
		char *link = strdup(path_of("link.key"));

		assert_int_equal(symlink(target, link), 0);
		assert_int_equal(keyring_generate_file(link, &err), PGBK_EXISTS);
		assert_int_equal(lstat(target, &st), -1);
		free(target);
		free(link);
	}

	/* a second key differs */
	assert_int_equal(keyring_generate_file(path2, &err), PGBK_OK);
	assert_int_equal(keyring_load(path2, &ring2, &err), PGBK_OK);
	assert_memory_not_equal(ring->keys[0].key, ring2->keys[0].key, 32);
	assert_int_not_equal(ring->keys[0].id, ring2->keys[0].id);

	/* a directory that does not exist */
	assert_int_equal(keyring_generate_file(path_of("no/such/dir.key"), &err), PGBK_ERR_IO);
	assert_non_null(strstr(err.msg, "no/such/dir.key"));

	keyring_free(ring);
	keyring_free(ring2);
	pgbk_buf_free(&before);
	pgbk_buf_free(&after);
	free(path);
	free(path2);
}

static void
test_secret_read(void **state)
{
	const char *path = write_file("secret", "top secret\n", 0600);
	char       *data;
	size_t      len;
	PgbkError   err;

	assert_int_equal(pgbk_secret_read_file(path, "secret file", &data, &len, &err), PGBK_OK);
	assert_int_equal(len, 11);
	assert_string_equal(data, "top secret\n");
	pgbk_secret_free(data);
	pgbk_secret_free(NULL);

	path = write_file("secret", "top secret\n", 0660);
	assert_int_equal(pgbk_secret_read_file(path, "secret file", &data, &len, &err),
	                 PGBK_ERR_CONFIG);
	assert_null(data);
	assert_non_null(strstr(err.msg, "secret file"));
	assert_non_null(strstr(err.msg, "0660"));
	assert_null(strstr(err.msg, "top secret"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),     cmocka_unit_test(test_ids_stable),
	    cmocka_unit_test(test_bad_lines), cmocka_unit_test(test_mode_checked),
	    cmocka_unit_test(test_generate),  cmocka_unit_test(test_secret_read),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
