/*
 * test_manifest.c
 *	  Tests of room format (cmocka): manifests; uses unit.h and manifest.c.
 *	  Unit tests for manifest.c: the JSON round trip, the source's
 *	  configuration files (binary-safe, empty, absent in older manifests)
 *	  and what a malformed manifest gives.
 */
#include "unit.h"

#include "format/manifest.h"

static Manifest *
sample(void)
{
	Manifest    *m = manifest_new();
	ManifestFile f;

	assert_non_null(m);
	strcpy(m->id, "20261127T143000Z");
	m->label = strdup("pgbk 20261127T143000Z");
	m->system_identifier = UINT64_C(7312345678901234567);
	m->pg_version_num = 150010;
	m->timeline = 1;
	m->start_lsn = UINT64_C(0x2000028);
	m->stop_lsn = UINT64_C(0x2000138);
	strcpy(m->start_wal, "000000010000000000000002");
	strcpy(m->stop_wal, "000000010000000000000002");
	m->start_time_us = INT64_C(1795790000123456);
	m->stop_time_us = INT64_C(1795790001123456);
	m->wal_segment_size = 16 * 1024 * 1024;
	m->backup_label = strdup("START WAL LOCATION: 0/2000028\n");
	m->compression = strdup("zstd");
	m->encrypted = true;
	memset(&f, 0, sizeof(f));
	f.path = "base/1/1259";
	f.size = 8192;
	f.mtime = 1795790000;
	f.mode = 0600;
	f.stored = 123;
	assert_true(manifest_add_file(m, &f));
	return m;
}

static Manifest *
round_trip(const Manifest *m)
{
	PgbkBuf   json;
	PgbkError err;
	Manifest *back = NULL;

	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	assert_int_equal(manifest_from_json((const char *) json.data, json.len, &back, &err), PGBK_OK);
	pgbk_buf_free(&json);
	return back;
}

/* Config files come back byte for byte: NUL, non-UTF-8, empty. */
static void
test_source_config_round_trip(void **state)
{
	static const unsigned char bin[] = {'a', '=', 0, 0xe9, '\n', 0xff};
	Manifest                  *m = sample();
	Manifest                  *back;

	(void) state;
	assert_true(
	    manifest_add_config(m, "/etc/postgresql/15/main/postgresql.conf", bin, sizeof(bin)));
	assert_true(manifest_add_config(m, "/etc/postgresql/15/main/pg_ident.conf", "", 0));
	back = round_trip(m);
	assert_int_equal(back->nconfig, 2);
	assert_string_equal(back->config[0].path, "/etc/postgresql/15/main/postgresql.conf");
	assert_int_equal(back->config[0].len, sizeof(bin));
	assert_memory_equal(back->config[0].data, bin, sizeof(bin));
	assert_string_equal(back->config[1].path, "/etc/postgresql/15/main/pg_ident.conf");
	assert_int_equal(back->config[1].len, 0);
	assert_int_equal(back->nfiles, 1);
	assert_string_equal(back->files[0].path, "base/1/1259");
	manifest_free(back);
	manifest_free(m);
}

/* A manifest without the key (every backup before it existed) has none. */
static void
test_no_source_config(void **state)
{
	Manifest *m = sample();
	Manifest *back;
	PgbkBuf   json;
	PgbkError err;

	(void) state;
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	assert_null(strstr((const char *) json.data, "source_config"));
	pgbk_buf_free(&json);
	back = round_trip(m);
	assert_int_equal(back->nconfig, 0);
	assert_null(back->config);
	manifest_free(back);
	manifest_free(m);
}

/* Bad base64 or a missing path: the manifest is malformed, nothing leaks. */
static void
test_source_config_malformed(void **state)
{
	Manifest   *m = sample();
	PgbkBuf     json;
	PgbkError   err;
	Manifest   *back = NULL;
	const char *cases[] = {
	    "\"source_config\":[{\"path\":\"/etc/x\",\"base64\":\"%%%%\"}]",
	    "\"source_config\":[{\"base64\":\"YQ==\"}]",
	    "\"source_config\":[{\"path\":\"/etc/x\"}]",
	};
	size_t i;

	(void) state;
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		PgbkBuf bad;
		char   *brace = strrchr((char *) json.data, '}');

		pgbk_buf_init(&bad);
		pgbk_buf_append(&bad, json.data, (size_t) (brace - (char *) json.data));
		pgbk_buf_printf(&bad, ",%s}", cases[i]);
		back = NULL;
		assert_int_equal(manifest_from_json((const char *) bad.data, bad.len, &back, &err),
		                 PGBK_ERR_FORMAT);
		assert_null(back);
		pgbk_buf_free(&bad);
	}
	pgbk_buf_free(&json);
	manifest_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_source_config_round_trip),
	    cmocka_unit_test(test_no_source_config),
	    cmocka_unit_test(test_source_config_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
