/*
 * test_manifest.c
 *	  Tests of room format (cmocka): manifests; uses unit.h and manifest.c.
 *	  Unit tests for manifest.c: the JSON round trip, the source's
 *	  configuration files (binary-safe, empty, absent in older manifests)
 *	  and what a malformed manifest gives; incremental manifests (format 2):
 *	  their round trip, the strict block-range syntax, format 1 still read.
 */
#include "unit.h"

#include "format/layout.h"
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

/* An incremental's manifest: a whole copy, a block file, an unchanged one. */
static Manifest *
sample_incremental(void)
{
	Manifest    *m = sample();
	ManifestFile f;

	m->incremental = true;
	strcpy(m->parent, "20261120T143000Z");
	m->parent_start_lsn = UINT64_C(0x1000028);
	m->chain_length = 3;
	m->changes_mode = strdup(MANIFEST_CHANGES_PAGE_LSN);
	m->changes_reason = strdup("segment 000000010000000000000001 is missing");
	memset(&f, 0, sizeof(f));
	f.path = "base/5/16384";
	f.size = 40 * 8192 + 100;
	f.mode = 0600;
	f.stored = 77;
	f.has_blocks = true;
	f.blocks = "0-5,9,12-40";
	f.limit = 12;
	assert_true(manifest_add_file(m, &f));
	f.path = "base/5/16385";
	f.size = 8192;
	f.blocks = "";
	f.limit = MANIFEST_NO_LIMIT;
	f.stored = 0;
	assert_true(manifest_add_file(m, &f));
	return m;
}

static void
test_incremental_round_trip(void **state)
{
	Manifest *m = sample_incremental();
	Manifest *back;
	PgbkBuf   json;
	PgbkError err;

	(void) state;
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	assert_non_null(strstr((const char *) json.data, "\"format\":2"));
	assert_non_null(strstr((const char *) json.data, "\"type\":\"incremental\""));
	pgbk_buf_free(&json);
	back = round_trip(m);
	assert_int_equal(back->format, MANIFEST_FORMAT_INCREMENTAL);
	assert_true(back->incremental);
	assert_string_equal(back->parent, "20261120T143000Z");
	assert_true(back->parent_start_lsn == UINT64_C(0x1000028));
	assert_int_equal(back->chain_length, 3);
	assert_string_equal(back->changes_mode, "page-lsn");
	assert_string_equal(back->changes_reason, "segment 000000010000000000000001 is missing");
	assert_int_equal(back->nfiles, 3);
	assert_false(back->files[0].has_blocks);
	assert_int_equal(back->files[0].limit, MANIFEST_NO_LIMIT);
	assert_true(manifest_file_has_object(&back->files[0]));
	assert_int_equal(manifest_file_content_size(&back->files[0]), 8192);
	assert_true(back->files[1].has_blocks);
	assert_string_equal(back->files[1].blocks, "0-5,9,12-40");
	assert_int_equal(back->files[1].limit, 12);
	assert_int_equal(back->files[1].size, 40 * 8192 + 100);
	/* 6 + 1 + 29 blocks, the last (block 40) 100 bytes long */
	assert_int_equal(manifest_file_content_size(&back->files[1]), 35 * 8192 + 100);
	assert_true(back->files[2].has_blocks);
	assert_string_equal(back->files[2].blocks, "");
	assert_int_equal(back->files[2].limit, MANIFEST_NO_LIMIT);
	assert_false(manifest_file_has_object(&back->files[2]));
	assert_int_equal(manifest_file_content_size(&back->files[2]), 0);
	manifest_free(back);
	manifest_free(m);
}

/* A full backup keeps writing format 1, without the incremental keys. */
static void
test_full_stays_format_1(void **state)
{
	Manifest *m = sample();
	Manifest *back;
	PgbkBuf   json;
	PgbkError err;

	(void) state;
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	assert_non_null(strstr((const char *) json.data, "\"format\":1,"));
	assert_null(strstr((const char *) json.data, "\"type\""));
	assert_null(strstr((const char *) json.data, "parent"));
	assert_null(strstr((const char *) json.data, "blocks"));
	pgbk_buf_free(&json);
	back = round_trip(m);
	assert_int_equal(back->format, MANIFEST_FORMAT_FULL);
	assert_false(back->incremental);
	assert_string_equal(back->parent, "");
	assert_int_equal(back->chain_length, 0);
	assert_null(back->changes_mode);
	manifest_free(back);
	manifest_free(m);
}

/* A format 1 manifest as pgbk 1.1 wrote it is still read. */
static void
test_format_1_read(void **state)
{
	static const char v1[] =
	    "{\"format\":1,\"id\":\"20261127T143000Z\",\"label\":\"x\","
	    "\"system_identifier\":\"7312345678901234567\",\"pg_version_num\":150010,"
	    "\"timeline\":1,\"start_lsn\":\"0/2000028\",\"stop_lsn\":\"0/2000138\","
	    "\"start_wal\":\"000000010000000000000002\",\"stop_wal\":\"000000010000000000000002\","
	    "\"start_time\":\"2026-11-27T14:30:00.123456Z\","
	    "\"stop_time\":\"2026-11-27T14:30:01.123456Z\",\"wal_segment_size\":16777216,"
	    "\"backup_label\":\"START\",\"tablespace_map\":null,\"tablespaces\":[],"
	    "\"directories\":[{\"path\":\"pg_wal\",\"mode\":448}],"
	    "\"files\":[{\"path\":\"base/1/1259\",\"size\":8192,\"mtime\":1795790000,"
	    "\"mode\":384,\"hash\":\"000102030405060708090a0b0c0d0e0f\",\"stored\":123}],"
	    "\"bytes\":8192,\"stored_bytes\":123,\"compression\":\"zstd\",\"encrypted\":true}";
	Manifest *m = NULL;
	PgbkError err;

	(void) state;
	assert_int_equal(manifest_from_json(v1, sizeof(v1) - 1, &m, &err), PGBK_OK);
	assert_int_equal(m->format, 1);
	assert_false(m->incremental);
	assert_int_equal(m->nfiles, 1);
	assert_false(m->files[0].has_blocks);
	assert_int_equal(manifest_file_content_size(&m->files[0]), 8192);
	manifest_free(m);
}

/* The range syntax: canonical strings pass, everything else is refused. */
static void
test_blocks_parse(void **state)
{
	const char *good[] = {"", "0", "0-5,9,12-40", "4294967294", "1,3,5", "0-4294967294"};
	const char *bad[] = {
	    "0-5,6",                /* touches the previous range: not merged */
	    "5,3",                  /* descending */
	    "3-3",                  /* a one-block range is written "3" */
	    "5-3",                  /* reversed */
	    "1,1",                  /* duplicate */
	    "01",                   /* leading zero */
	    "-1",                   /* sign */
	    "+1",                   /* sign */
	    " 1",                   /* space */
	    "1 ",                   /* space */
	    "1,",                   /* trailing comma */
	    ",1",                   /* leading comma */
	    "1,,3",                 /* empty element */
	    "1-",                   /* open range */
	    "1--3",                 /* double dash */
	    "4294967295",           /* InvalidBlockNumber */
	    "99999999999999999999", /* overflow */
	    "1-2-3",                /* two dashes */
	    "a",                    /* not a number */
	    "0x10",                 /* hex */
	};
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		ManifestBlockRange *r = NULL;
		size_t              n = 99;
		PgbkError           err;

		assert_int_equal(manifest_blocks_parse(good[i], &r, &n, &err), PGBK_OK);
		if (good[i][0] == '\0')
		{
			assert_int_equal(n, 0);
			assert_null(r);
		}
		free(r);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		ManifestBlockRange *r = (ManifestBlockRange *) 1;
		size_t              n = 99;
		PgbkError           err;

		if (manifest_blocks_parse(bad[i], &r, &n, &err) != PGBK_ERR_FORMAT)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(r);
		assert_int_equal(n, 0);
	}
	{
		ManifestBlockRange *r;
		size_t              n;
		PgbkError           err;

		assert_int_equal(manifest_blocks_parse("0-5,9,12-40", &r, &n, &err), PGBK_OK);
		assert_int_equal(n, 3);
		assert_int_equal(r[0].first, 0);
		assert_int_equal(r[0].last, 5);
		assert_int_equal(r[1].first, 9);
		assert_int_equal(r[1].last, 9);
		assert_int_equal(r[2].first, 12);
		assert_int_equal(r[2].last, 40);
		assert_int_equal(manifest_blocks_count(r, n), 36);
		free(r);
	}
}

/* Formatting merges runs and duplicates; parse(format(x)) gives x's set. */
static void
test_blocks_format(void **state)
{
	static const uint32_t b1[] = {0, 1, 2, 3, 4, 5, 9, 12, 12, 13, 14};
	static const uint32_t b2[] = {7};
	static const uint32_t bad[] = {3, 2};
	static const uint32_t inv[] = {1, UINT32_MAX};
	char                 *s;

	(void) state;
	s = manifest_blocks_format(b1, sizeof(b1) / sizeof(b1[0]));
	assert_string_equal(s, "0-5,9,12-14");
	free(s);
	s = manifest_blocks_format(b2, 1);
	assert_string_equal(s, "7");
	free(s);
	s = manifest_blocks_format(NULL, 0);
	assert_string_equal(s, "");
	free(s);
	assert_null(manifest_blocks_format(bad, 2));
	assert_null(manifest_blocks_format(inv, 2));
}

/* Malformed incremental manifests are refused whole. */
static void
test_incremental_malformed(void **state)
{
	struct
	{
		const char *from, *to;
	} cases[] = {
	    {"\"format\":2", "\"format\":1"},                  /* incremental keys in format 1 */
	    {"\"type\":\"incremental\"", "\"type\":\"diff\""}, /* unknown type */
	    {"\"parent\":\"20261120T143000Z\"", "\"parent\":\"\""},
	    {"\"parent\":\"20261120T143000Z\"", "\"parent\":\"20261127T143000Z\""}, /* itself */
	    {"\"parent_start_lsn\":\"0/1000028\"", "\"parent_start_lsn\":\"1/0\""}, /* after start */
	    {"\"chain_length\":3", "\"chain_length\":0"},
	    {"\"chain_length\":3", "\"chain_length\":2.5"},
	    {"\"mode\":\"page-lsn\"", "\"mode\":\"guess\""},
	    {"\"blocks\":\"0-5,9,12-40\"", "\"blocks\":\"0-5,6\""},       /* not canonical */
	    {"\"blocks\":\"0-5,9,12-40\"", "\"blocks\":\"0-5,9,12-41\""}, /* past the size */
	    {"\"blocks\":\"0-5,9,12-40\"", "\"blocks\":7"},
	    {"\"limit\":12", "\"limit\":-1"},
	    {"\"limit\":12", "\"limit\":4294967295"},
	};
	Manifest *m = sample_incremental();
	PgbkBuf   json;
	PgbkError err;
	size_t    i;

	(void) state;
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_OK);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *text = (const char *) json.data;
		const char *at = strstr(text, cases[i].from);
		PgbkBuf     bad;
		Manifest   *back = NULL;

		if (at == NULL)
			fail_msg("case %zu: \"%s\" not in %s", i, cases[i].from, text);
		pgbk_buf_init(&bad);
		pgbk_buf_append(&bad, text, (size_t) (at - text));
		pgbk_buf_append_str(&bad, cases[i].to);
		pgbk_buf_append_str(&bad, at + strlen(cases[i].from));
		if (manifest_from_json((const char *) bad.data, bad.len, &back, &err) != PGBK_ERR_FORMAT)
			fail_msg("case %zu accepted: %.*s", i, (int) bad.len, (const char *) bad.data);
		assert_null(back);
		pgbk_buf_free(&bad);
	}
	pgbk_buf_free(&json);
	manifest_free(m);
}

/* A block file cannot appear in a full backup's manifest. */
static void
test_full_refuses_block_file(void **state)
{
	Manifest    *m = sample();
	ManifestFile f;
	PgbkBuf      json;
	PgbkError    err;

	(void) state;
	memset(&f, 0, sizeof(f));
	f.path = "base/5/1";
	f.size = 8192;
	f.has_blocks = true;
	f.blocks = "0";
	f.limit = MANIFEST_NO_LIMIT;
	assert_true(manifest_add_file(m, &f));
	pgbk_buf_init(&json);
	assert_int_equal(manifest_to_json(m, &json, &err), PGBK_ERR_USAGE);
	pgbk_buf_free(&json);
	manifest_free(m);
}

/* The header attributes carry the chain, so planners need not load manifests. */
static void
test_backup_attrs_chain(void **state)
{
	Manifest *m = sample_incremental();
	Manifest *full = sample();
	PgbkBuf   a;
	PgbkError err;

	(void) state;
	pgbk_buf_init(&a);
	assert_int_equal(manifest_backup_attrs(m, &a, &err), PGBK_OK);
	pgbk_buf_append(&a, "", 1);
	assert_non_null(strstr((const char *) a.data, "backup.type=incremental\n"));
	assert_non_null(strstr((const char *) a.data, "backup.parent=20261120T143000Z\n"));
	assert_non_null(strstr((const char *) a.data, "backup.parent_start_lsn=0/1000028\n"));
	assert_non_null(strstr((const char *) a.data, "backup.chain=3\n"));
	pgbk_buf_free(&a);
	pgbk_buf_init(&a);
	assert_int_equal(manifest_backup_attrs(full, &a, &err), PGBK_OK);
	pgbk_buf_append(&a, "", 1);
	assert_non_null(strstr((const char *) a.data, "backup.type=full\n"));
	assert_null(strstr((const char *) a.data, "backup.parent"));
	pgbk_buf_free(&a);
	manifest_free(m);
	manifest_free(full);
}

/* Backup ids: start time to the second, UTC, sorting as times do. */
static void
test_backup_id_format(void **state)
{
	char id[MANIFEST_ID_LEN];
	char later[MANIFEST_ID_LEN];

	(void) state;
	layout_backup_id_format(0, id, sizeof(id));
	assert_string_equal(id, "19700101T000000Z");
	layout_backup_id_format(1796392020, id, sizeof(id)); /* 2026-12-04 13:47:00 UTC */
	assert_string_equal(id, "20261204T134700Z");
	layout_backup_id_format(1796392021, later, sizeof(later));
	assert_true(strcmp(later, id) > 0);
	layout_backup_id_format(-1, id, sizeof(id)); /* before 1970: still a valid, smaller id */
	assert_string_equal(id, "19691231T235959Z");
	layout_backup_id_format(0, id, 4); /* too short: empty, never truncated */
	assert_string_equal(id, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_source_config_round_trip),
	    cmocka_unit_test(test_no_source_config),
	    cmocka_unit_test(test_source_config_malformed),
	    cmocka_unit_test(test_incremental_round_trip),
	    cmocka_unit_test(test_full_stays_format_1),
	    cmocka_unit_test(test_format_1_read),
	    cmocka_unit_test(test_blocks_parse),
	    cmocka_unit_test(test_blocks_format),
	    cmocka_unit_test(test_incremental_malformed),
	    cmocka_unit_test(test_full_refuses_block_file),
	    cmocka_unit_test(test_backup_attrs_chain),
	    cmocka_unit_test(test_backup_id_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
