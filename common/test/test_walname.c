/*
 * test_walname.c
 *	  Tests of room base (cmocka): WAL names; uses unit.h and walname.c.
 *	  Unit tests for walname.c: segment names, LSNs, file classification and
 *	  timeline history files.
 */
#include "unit.h"

#include "base/walname.h"

#define MB (1024U * 1024U)

static void
test_segsz(void **state)
{
	(void) state;
	assert_true(walname_segsz_is_valid(1 * MB));
	assert_true(walname_segsz_is_valid(16 * MB));
	assert_true(walname_segsz_is_valid(1024 * MB));
	assert_false(walname_segsz_is_valid(0));
	assert_false(walname_segsz_is_valid(MB / 2));
	assert_false(walname_segsz_is_valid(3 * MB));
	assert_false(walname_segsz_is_valid(2048 * MB));
}

static void
test_segment_names(void **state)
{
	char      buf[WALNAME_BUFLEN];
	uint32_t  tli;
	WalSegNo  segno;
	PgbkError err;

	(void) state;
	assert_string_equal(walname_format_segment(buf, 1, 0x25, 16 * MB), "000000010000000000000025");
	assert_string_equal(walname_format_segment(buf, 0x1A, 0x100, 16 * MB),
	                    "0000001A0000000100000000");
	assert_string_equal(walname_format_segment(buf, 2, 0x1FFF, 1 * MB), "000000020000000100000FFF");
	assert_string_equal(walname_format_segment(buf, 3, 5, 1024 * MB), "000000030000000100000001");
	assert_string_equal(walname_format_partial(buf, 1, 0x25, 16 * MB),
	                    "000000010000000000000025.partial");
	assert_string_equal(walname_format_history(buf, 0xAB), "000000AB.history");
	assert_string_equal(walname_format_backup(buf, 1, UINT64_C(0x25000028), 16 * MB),
	                    "000000010000000000000025.00000028.backup");

	assert_int_equal(walname_parse_segment("0000001A0000000100000000", 16 * MB, &tli, &segno, &err),
	                 PGBK_OK);
	assert_int_equal(tli, 0x1A);
	assert_int_equal(segno, 0x100);
	assert_int_equal(
	    walname_parse_segment("000000030000000100000001", 1024 * MB, &tli, &segno, &err), PGBK_OK);
	assert_int_equal(segno, 5);

	/* the seg part must be below 4 GiB / segment size */
	assert_int_equal(walname_parse_segment("0000000100000000000001FF", 16 * MB, &tli, &segno, &err),
	                 PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(walname_parse_segment("0000000100000000000001FF", 1 * MB, &tli, &segno, &err),
	                 PGBK_OK);
	assert_int_equal(segno, 0x1FF);

	/* not segment names */
	assert_int_equal(walname_parse_segment("00000001000000000000002a", 16 * MB, &tli, &segno, &err),
	                 PGBK_ERR_FORMAT);
	assert_int_equal(walname_parse_segment("00000001000000000000002", 16 * MB, &tli, &segno, &err),
	                 PGBK_ERR_FORMAT);
	assert_int_equal(walname_parse_segment("000000000000000000000001", 16 * MB, &tli, &segno, &err),
	                 PGBK_ERR_FORMAT);
	assert_int_equal(
	    walname_parse_segment("000000010000000000000001.partial", 16 * MB, &tli, &segno, &err),
	    PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "not a WAL segment file name"));
}

static void
test_classify(void **state)
{
	WalFileName f;
	WalSegNo    segno;
	PgbkError   err;

	(void) state;
	assert_int_equal(walname_classify("000000010000000A000000FF", &f), WAL_FILE_SEGMENT);
	assert_int_equal(f.tli, 1);
	assert_int_equal(f.log, 0xA);
	assert_int_equal(f.seg, 0xFF);
	assert_int_equal(walname_file_segno(&f, 16 * MB, &segno, &err), PGBK_OK);
	assert_int_equal(segno, 0xAFF);

	assert_int_equal(walname_classify("000000020000000A000000FF.partial", &f), WAL_FILE_PARTIAL);
	assert_int_equal(f.tli, 2);
	assert_int_equal(walname_file_segno(&f, 16 * MB, &segno, &err), PGBK_OK);
	assert_int_equal(segno, 0xAFF);

	assert_int_equal(walname_classify("0000000F.history", &f), WAL_FILE_HISTORY);
	assert_int_equal(f.tli, 15);
	assert_int_equal(walname_file_segno(&f, 16 * MB, &segno, &err), PGBK_ERR_FORMAT);

	assert_int_equal(walname_classify("000000010000000000000025.00000028.backup", &f),
	                 WAL_FILE_BACKUP);
	assert_int_equal(f.seg, 0x25);
	assert_int_equal(f.offset, 0x28);
	assert_int_equal(walname_file_segno(&f, 16 * MB, &segno, &err), PGBK_OK);
	assert_int_equal(segno, 0x25);
	assert_int_equal(walname_classify("000000010000000000000025.01000000.backup", &f),
	                 WAL_FILE_BACKUP);
	assert_int_equal(walname_file_segno(&f, 16 * MB, &segno, &err), PGBK_ERR_FORMAT);

	assert_int_equal(walname_classify("000000010000000000000001.gz", &f), WAL_FILE_OTHER);
	assert_int_equal(f.tli, 0);
	assert_int_equal(walname_classify("00000001.history.tmp", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("0000000f.history", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("00000000.history", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("archive_status", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("000000010000000000000025.00000028.backup.x", NULL),
	                 WAL_FILE_OTHER);
	assert_int_equal(walname_classify("000000010000000000000025.0000028.backup", NULL),
	                 WAL_FILE_OTHER);
	assert_int_equal(walname_classify("000000010000000000000025.partia", NULL), WAL_FILE_OTHER);
	assert_int_equal(walname_classify("0000000100000000000000250", NULL), WAL_FILE_OTHER);
}

static void
test_lsn(void **state)
{
	WalLsn lsn;
	char   buf[WALNAME_LSN_BUFLEN];

	(void) state;
	assert_true(walname_parse_lsn("0/0", &lsn));
	assert_int_equal(lsn, 0);
	assert_true(walname_parse_lsn("16/B374D848", &lsn));
	assert_int_equal(lsn, UINT64_C(0x16B374D848));
	assert_true(walname_parse_lsn("a/b", &lsn));
	assert_int_equal(lsn, UINT64_C(0xA0000000B));
	assert_true(walname_parse_lsn("FFFFFFFF/FFFFFFFF", &lsn));
	assert_int_equal(lsn, UINT64_MAX);
	assert_string_equal(walname_format_lsn(buf, lsn), "FFFFFFFF/FFFFFFFF");
	assert_string_equal(walname_format_lsn(buf, UINT64_C(0x16B374D848)), "16/B374D848");
	assert_string_equal(walname_format_lsn(buf, UINT64_C(0x3000028)), "0/3000028");

	assert_false(walname_parse_lsn("", &lsn));
	assert_false(walname_parse_lsn(NULL, &lsn));
	assert_false(walname_parse_lsn("/1", &lsn));
	assert_false(walname_parse_lsn("1/", &lsn));
	assert_false(walname_parse_lsn("1/2/3", &lsn));
	assert_false(walname_parse_lsn("123456789/0", &lsn));
	assert_false(walname_parse_lsn("0/123456789", &lsn));
	assert_false(walname_parse_lsn(" 1/2", &lsn));
	assert_false(walname_parse_lsn("1/2 ", &lsn));
	assert_false(walname_parse_lsn("0x1/2", &lsn));
	assert_false(walname_parse_lsn("1-2", &lsn));
}

static void
test_lsn_segments(void **state)
{
	(void) state;
	assert_int_equal(walname_lsn_to_segno(UINT64_C(0x25000000), 16 * MB), 0x25);
	assert_int_equal(walname_lsn_to_segno(UINT64_C(0x25FFFFFF), 16 * MB), 0x25);
	assert_int_equal(walname_end_lsn_to_segno(UINT64_C(0x26000000), 16 * MB), 0x25);
	assert_int_equal(walname_end_lsn_to_segno(UINT64_C(0x26000001), 16 * MB), 0x26);
	assert_int_equal(walname_segno_to_lsn(0x25, 16 * MB), UINT64_C(0x25000000));
	assert_int_equal(walname_segno_to_lsn(0x25, 1 * MB), UINT64_C(0x2500000));
	assert_int_equal(walname_lsn_offset(UINT64_C(0x25000028), 16 * MB), 0x28);
	assert_int_equal(walname_lsn_offset(UINT64_C(0x1F25ABCDEF), 1024 * MB), 0x25ABCDEF);
	/* beyond 4 GiB */
	assert_int_equal(walname_lsn_to_segno(UINT64_C(0x1600000000), 16 * MB), 0x1600);
}

static void
test_history(void **state)
{
	const char *text = "1\t0/3000158\tno recovery target specified\n"
	                   "\n"
	                   "# a comment line\n"
	                   "2\t0/5000000\tbefore 2024-01-01 00:00:00+00\r\n";
	WalHistory  h;
	PgbkError   err;

	(void) state;
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_OK);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.entries[0].tli, 1);
	assert_int_equal(h.entries[0].begin, 0);
	assert_int_equal(h.entries[0].end, UINT64_C(0x3000158));
	assert_string_equal(h.entries[0].reason, "no recovery target specified");
	assert_int_equal(h.entries[1].tli, 2);
	assert_int_equal(h.entries[1].begin, UINT64_C(0x3000158));
	assert_int_equal(h.entries[1].end, UINT64_C(0x5000000));
	assert_string_equal(h.entries[1].reason, "before 2024-01-01 00:00:00+00");
	assert_int_equal(h.entries[2].tli, 3);
	assert_int_equal(h.entries[2].begin, UINT64_C(0x5000000));
	assert_int_equal(h.entries[2].end, WAL_INVALID_LSN);
	assert_string_equal(h.entries[2].reason, "");

	assert_int_equal(walname_history_tli_at(&h, 0), 1);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x3000157)), 1);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x3000158)), 2);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x4FFFFFF)), 2);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x5000000)), 3);
	assert_int_equal(walname_history_tli_at(&h, UINT64_MAX), 3);
	assert_non_null(walname_history_find(&h, 2));
	assert_int_equal(walname_history_find(&h, 2)->end, UINT64_C(0x5000000));
	assert_null(walname_history_find(&h, 4));
	walname_history_free(&h);
	assert_int_equal(h.n, 0);

	/* no newline at the end, spaces instead of tabs, no reason */
	text = "1 0/3000158";
	assert_int_equal(walname_parse_history(text, strlen(text), 2, &h, &err), PGBK_OK);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.entries[0].reason, "");
	walname_history_free(&h);

	/* an empty file: just the timeline itself */
	assert_int_equal(walname_parse_history("", 0, 1, &h, &err), PGBK_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(walname_history_tli_at(&h, 12345), 1);
	walname_history_free(&h);

	/*
	 * A timeline branched from its parent before the parent's own start
	 * (switchpoints need not increase): timeline 2 has an empty range.
	 */
	text = "1\t0/5000000\tx\n2\t0/3000000\ty\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_OK);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x2000000)), 1);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x3000000)), 3);
	assert_int_equal(walname_history_tli_at(&h, UINT64_C(0x4000000)), 3);
	walname_history_free(&h);
}

static void
test_history_errors(void **state)
{
	WalHistory  h;
	PgbkError   err;
	const char *text;

	(void) state;
	text = "x\t0/1\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "line 1"));
	assert_non_null(strstr(err.msg, "numeric timeline ID"));

	text = "1\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "switchpoint"));

	text = "1\t0/1x\treason\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "switchpoint"));

	text = "# c\n2\t0/1\n1\t0/2\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "line 3"));
	assert_non_null(strstr(err.msg, "increasing"));

	text = "3\t0/1\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "less than"));

	text = "99999999999\t0/1\n";
	assert_int_equal(walname_parse_history(text, strlen(text), 3, &h, &err), PGBK_ERR_FORMAT);

	assert_int_equal(walname_parse_history("1\t0/1\0x\n", 8, 3, &h, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "NUL"));

	assert_int_equal(walname_parse_history("", 0, 0, &h, &err), PGBK_ERR_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_segsz),          cmocka_unit_test(test_segment_names),
	    cmocka_unit_test(test_classify),       cmocka_unit_test(test_lsn),
	    cmocka_unit_test(test_lsn_segments),   cmocka_unit_test(test_history),
	    cmocka_unit_test(test_history_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
