/*
 * test_base.c
 *	  Tests of room base (cmocka); uses unit.h and base.
 *	  Unit tests for common/base: errors with detail and hint, the one hex
 *	  decoder and the one calendar, time parser and formatter (pgbk_time.c).
 */
#include "unit.h"

#include "base/pgbk_time.h"

#include <time.h>

#define S (INT64_C(1000000))

/* ---------------------------------------------------------------------- */

static void
test_error_detail_hint(void **state)
{
	PgbkError err;

	(void) state;
	pgbk_error_clear(&err);
	assert_int_equal(pgbk_error(&err, PGBK_ERR_CONFIG, "bad %s", "thing"), PGBK_ERR_CONFIG);
	assert_string_equal(err.msg, "bad thing");
	assert_string_equal(err.detail, "");
	assert_string_equal(err.hint, "");
	assert_int_equal(pgbk_error_detail(&err, "it is %d", 42), PGBK_ERR_CONFIG);
	assert_int_equal(pgbk_error_hint(&err, "fix %s", "it"), PGBK_ERR_CONFIG);
	assert_string_equal(err.detail, "it is 42");
	assert_string_equal(err.hint, "fix it");
	/* a prefix keeps them */
	assert_int_equal(pgbk_error_prefix(&err, "reading %s", "x"), PGBK_ERR_CONFIG);
	assert_string_equal(err.msg, "reading x: bad thing");
	assert_string_equal(err.detail, "it is 42");
	assert_string_equal(err.hint, "fix it");
	/* a new error drops them */
	pgbk_error(&err, PGBK_ERR_IO, "other");
	assert_string_equal(err.detail, "");
	assert_string_equal(err.hint, "");
	pgbk_error_hint(&err, "h");
	pgbk_error_clear(&err);
	assert_int_equal(err.code, PGBK_OK);
	assert_string_equal(err.msg, "");
	assert_string_equal(err.hint, "");
	/* no error buffer: nothing to set */
	assert_int_equal(pgbk_error(NULL, PGBK_ERR_KEY, "x"), PGBK_ERR_KEY);
	pgbk_error_detail(NULL, "x");
	pgbk_error_hint(NULL, "x");
}

/* ---------------------------------------------------------------------- */

static void
test_hex(void **state)
{
	unsigned char out[8];
	unsigned char lower[4];
	char          enc[17];
	PgbkError     err;
	int           c;

	(void) state;
	/* every character: its digit value or -1 */
	for (c = 0; c < 256; c++)
	{
		int want = -1;

		if (c >= '0' && c <= '9')
			want = c - '0';
		else if (c >= 'a' && c <= 'f')
			want = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			want = c - 'A' + 10;
		assert_int_equal(pgbk_hex_digit((char) c), want);
	}

	/* upper and lower case decode alike */
	assert_int_equal(pgbk_hex_parse("00fF10Ab", out, 4, "hash", &err), PGBK_OK);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0x10);
	assert_int_equal(out[3], 0xab);
	assert_true(pgbk_hex_decode("00ff10ab", lower, 4));
	assert_memory_equal(out, lower, 4);
	assert_true(pgbk_hex_decode("00FF10AB", lower, 4));
	assert_memory_equal(out, lower, 4);
	assert_true(pgbk_hex_decode("", out, 0));

	/* encode then decode */
	{
		const unsigned char raw[8] = {0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x5a, 0xa5};

		pgbk_hex_encode(raw, 8, enc);
		assert_string_equal(enc, "00017f80feff5aa5");
		assert_true(pgbk_hex_decode(enc, out, 8));
		assert_memory_equal(out, raw, 8);
	}

	/* odd length */
	assert_int_equal(pgbk_hex_parse("abc", out, 2, "hash", &err), PGBK_ERR_FORMAT);
	assert_string_equal(err.msg, "invalid hexadecimal hash");
	assert_non_null(strstr(err.detail, "odd number of digits (3)"));
	assert_non_null(strstr(err.detail, "4 are expected"));
	assert_false(pgbk_hex_decode("abc", out, 1));
	/* too short, too long */
	assert_int_equal(pgbk_hex_parse("abcd", out, 1, "key", &err), PGBK_ERR_FORMAT);
	assert_string_equal(err.detail, "It has 4 digits; 2 are expected.");
	assert_false(pgbk_hex_decode("ab", out, 2));
	/* a bad digit, named with its position */
	assert_int_equal(pgbk_hex_parse("0g", out, 1, "key", &err), PGBK_ERR_FORMAT);
	assert_string_equal(err.detail, "Character 2 ('g') is not a hexadecimal digit.");
	assert_int_equal(pgbk_hex_parse("0 ", out, 1, "key", &err), PGBK_ERR_FORMAT);
	assert_string_equal(err.detail, "Character 2 (byte 0x20) is not a hexadecimal digit.");
	assert_false(pgbk_hex_decode("+1", out, 1));
	assert_false(pgbk_hex_decode("x0", out, 1));
}

/* ---------------------------------------------------------------------- */

static void
test_calendar(void **state)
{
	int64_t days;
	int64_t prev_y = -1;

	(void) state;
	assert_true(pgbk_year_is_leap(2000));
	assert_true(pgbk_year_is_leap(2024));
	assert_true(pgbk_year_is_leap(1600));
	assert_false(pgbk_year_is_leap(1900));
	assert_false(pgbk_year_is_leap(2100));
	assert_false(pgbk_year_is_leap(2023));
	assert_int_equal(pgbk_days_in_month(2024, 2), 29);
	assert_int_equal(pgbk_days_in_month(2023, 2), 28);
	assert_int_equal(pgbk_days_in_month(2000, 2), 29);
	assert_int_equal(pgbk_days_in_month(1900, 2), 28);
	assert_int_equal(pgbk_days_in_month(2026, 4), 30);
	assert_int_equal(pgbk_days_in_month(2026, 12), 31);
	assert_int_equal(pgbk_days_in_month(2026, 0), 0);
	assert_int_equal(pgbk_days_in_month(2026, 13), 0);

	assert_int_equal(pgbk_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(pgbk_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(pgbk_days_from_civil(2000, 3, 1), 951868800 / 86400);
	assert_int_equal(pgbk_days_from_civil(2024, 2, 29) + 1, pgbk_days_from_civil(2024, 3, 1));
	assert_int_equal(pgbk_days_from_civil(2023, 2, 28) + 1, pgbk_days_from_civil(2023, 3, 1));

	/* every day from 1600 to 2400: both ways, one after the other */
	for (days = pgbk_days_from_civil(1600, 1, 1); days <= pgbk_days_from_civil(2400, 12, 31);
	     days++)
	{
		int64_t y;
		int     m, d;

		pgbk_civil_from_days(days, &y, &m, &d);
		assert_true(m >= 1 && m <= 12);
		assert_true(d >= 1 && d <= pgbk_days_in_month(y, m));
		assert_int_equal(pgbk_days_from_civil(y, m, d), days);
		if (m == 1 && d == 1)
		{
			if (prev_y >= 0)
				assert_int_equal(y, prev_y + 1);
			prev_y = y;
		}
	}
}

/* ---------------------------------------------------------------------- */

static int64_t
parse_ok(const char *s, PgbkTimeSyntax syntax)
{
	int64_t   us = -42;
	PgbkError err;

	pgbk_error_clear(&err);
	if (pgbk_time_parse(s, syntax, &us, &err) != PGBK_OK)
		fail_msg("\"%s\" refused: %s (%s)", s, err.msg, err.detail);
	return us;
}

/* Refused: the message quotes s, the detail contains why, a hint is given. */
static void
parse_bad(const char *s, PgbkTimeSyntax syntax, const char *why)
{
	int64_t   us = -42;
	PgbkError err;
	char      msg[PGBK_ERRMSG_LEN];

	pgbk_error_clear(&err);
	assert_int_equal(pgbk_time_parse(s, syntax, &us, &err),
	                 syntax == PGBK_TIME_INPUT ? PGBK_ERR_USAGE : PGBK_ERR_FORMAT);
	assert_int_equal(us, -42);
	snprintf(msg, sizeof(msg), "invalid time \"%s\"", s);
	assert_string_equal(err.msg, msg);
	if (strstr(err.detail, why) == NULL)
		fail_msg("\"%s\": detail \"%s\" does not say \"%s\"", s, err.detail, why);
	assert_true(err.hint[0] != '\0');
	assert_int_equal(pgbk_time_parse(s, syntax, &us, NULL), err.code);
}

static void
test_parse_rfc3339(void **state)
{
	(void) state;
	/* the restic times test_files.c checks through files_parse_time() */
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z", PGBK_TIME_RFC3339), 0);
	assert_int_equal(parse_ok("2000-03-01T00:00:00Z", PGBK_TIME_RFC3339), 951868800 * S);
	assert_int_equal(parse_ok("2026-11-27T14:30:00Z", PGBK_TIME_RFC3339), 1795789800 * S);
	/* fractions: to the microsecond, further digits dropped (not rounded) */
	assert_int_equal(parse_ok("2026-11-27T14:30:00.417240963Z", PGBK_TIME_RFC3339),
	                 1795789800 * S + 417240);
	assert_int_equal(parse_ok("2026-11-27T14:30:00.5Z", PGBK_TIME_RFC3339),
	                 1795789800 * S + 500000);
	assert_int_equal(parse_ok("2026-11-27T14:30:00.000001Z", PGBK_TIME_RFC3339),
	                 1795789800 * S + 1);
	/* offsets, 't', 'z' and a space */
	assert_int_equal(parse_ok("2026-11-27T15:30:00.25+01:00", PGBK_TIME_RFC3339),
	                 1795789800 * S + 250000);
	assert_int_equal(parse_ok("2026-11-27T09:00:00-05:30", PGBK_TIME_RFC3339), 1795789800 * S);
	assert_int_equal(parse_ok("2026-11-27t14:30:00z", PGBK_TIME_RFC3339), 1795789800 * S);
	assert_int_equal(parse_ok("2026-11-27 14:30:00Z", PGBK_TIME_RFC3339), 1795789800 * S);
	/* an S3 LastModified */
	assert_int_equal(parse_ok("2026-11-27T14:30:00.000Z", PGBK_TIME_RFC3339), 1795789800 * S);
	/* leap years and a leap second */
	assert_int_equal(parse_ok("2024-02-29T12:00:00Z", PGBK_TIME_RFC3339), 1709208000 * S);
	assert_int_equal(parse_ok("2000-02-29T00:00:00Z", PGBK_TIME_RFC3339), (951868800 - 86400) * S);
	assert_int_equal(parse_ok("2016-12-31T23:59:60Z", PGBK_TIME_RFC3339), 1483228800 * S);
	/* before 1970 */
	assert_int_equal(parse_ok("1969-12-31T23:59:59.5Z", PGBK_TIME_RFC3339), -500000);

	parse_bad("", PGBK_TIME_RFC3339, "date YYYY-MM-DD");
	parse_bad("2026-11-27 14:30:00", PGBK_TIME_RFC3339, "no zone");
	parse_bad("2026-11-27T14:30Z", PGBK_TIME_RFC3339, "no seconds");
	parse_bad("2026-11-27T14:30:00Zjunk", PGBK_TIME_RFC3339, "\"junk\" follows the zone");
	parse_bad("2026-11-27T14:30:00+0100", PGBK_TIME_RFC3339, "+HH:MM");
	parse_bad("2026-11-27T14:30:00+01", PGBK_TIME_RFC3339, "+HH:MM");
	parse_bad("2026-11-27T14:30:00.Z", PGBK_TIME_RFC3339, "'.' is not followed by digits");
	parse_bad("2026-1-27T14:30:00Z", PGBK_TIME_RFC3339, "date YYYY-MM-DD");
	parse_bad("2026-13-27T02:57:29Z", PGBK_TIME_RFC3339, "no month 13");
	parse_bad("2026-00-27T02:57:29Z", PGBK_TIME_RFC3339, "no month 0");
	parse_bad("2023-02-29T12:00:00Z", PGBK_TIME_RFC3339, "February 2023 has 28 days");
	parse_bad("1900-02-29T12:00:00Z", PGBK_TIME_RFC3339, "February 1900 has 28 days");
	parse_bad("2026-04-31T12:00:00Z", PGBK_TIME_RFC3339, "April 2026 has 30 days");
	parse_bad("2026-04-00T12:00:00Z", PGBK_TIME_RFC3339, "April 2026 has 30 days");
	parse_bad("2026-11-27T24:00:00Z", PGBK_TIME_RFC3339, "24:00:00 is not a time of day");
	parse_bad("2026-11-27T23:60:00Z", PGBK_TIME_RFC3339, "not a time of day");
	parse_bad("2026-11-27T23:59:61Z", PGBK_TIME_RFC3339, "not a time of day");
	parse_bad("2026-11-27T23:59:00+24:00", PGBK_TIME_RFC3339, "out of range");
	parse_bad("2026-11-27T23:59:00+01:60", PGBK_TIME_RFC3339, "out of range");
	parse_bad("20261127T143000Z", PGBK_TIME_RFC3339, "date YYYY-MM-DD");
}

static void
test_parse_input(void **state)
{
	const char *old_tz = getenv("TZ");
	char       *saved = old_tz ? strdup(old_tz) : NULL;

	(void) state;
	/* the forms README and pgbk restore --help name */
	assert_int_equal(parse_ok("2026-11-25T14:07:30.25Z", PGBK_TIME_INPUT),
	                 (1795615620 + 30) * S + 250000);
	assert_int_equal(parse_ok("2026-11-25 14:07+01:00", PGBK_TIME_INPUT), 1795612020 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07+01", PGBK_TIME_INPUT), 1795612020 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07+0100", PGBK_TIME_INPUT), 1795612020 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07:00-0530", PGBK_TIME_INPUT), 1795635420 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07:00 -05:30", PGBK_TIME_INPUT), 1795635420 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07 Z", PGBK_TIME_INPUT), 1795615620 * S);
	assert_int_equal(parse_ok("2026-11-25 14:07z", PGBK_TIME_INPUT), 1795615620 * S);
	/* what PostgreSQL prints and the tests pass: "+00", six digits */
	assert_int_equal(parse_ok("2026-11-25 14:07:00.123456+00", PGBK_TIME_INPUT),
	                 1795615620 * S + 123456);
	assert_int_equal(parse_ok("2026-11-25 14:07:00.1234567Z", PGBK_TIME_INPUT),
	                 1795615620 * S + 123456);
	/* one-digit fields, as sscanf("%2d") took them */
	assert_int_equal(parse_ok("2026-1-5 3:04Z", PGBK_TIME_INPUT), 1767582240 * S);
	/* manifest times */
	assert_int_equal(parse_ok("2026-11-27T14:30:00.000000Z", PGBK_TIME_INPUT), 1795789800 * S);

	/* without a zone: local time, with its daylight saving rules */
	setenv("TZ", "UTC0", 1);
	tzset();
	assert_int_equal(parse_ok("2026-11-25 14:07", PGBK_TIME_INPUT), 1795615620 * S);
	setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
	tzset();
	assert_int_equal(parse_ok("2026-11-25 14:07", PGBK_TIME_INPUT), 1795633620 * S);
	assert_int_equal(parse_ok("2026-07-01T12:00:00.5", PGBK_TIME_INPUT), 1782921600 * S + 500000);
	assert_int_equal(parse_ok("2026-11-25 14:07 ", PGBK_TIME_INPUT), 1795633620 * S);
	/* a zone still wins */
	assert_int_equal(parse_ok("2026-11-25 14:07Z", PGBK_TIME_INPUT), 1795615620 * S);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);

	parse_bad("yesterday", PGBK_TIME_INPUT, "date YYYY-MM-DD");
	parse_bad("", PGBK_TIME_INPUT, "date YYYY-MM-DD");
	parse_bad("26-11-25 14:07", PGBK_TIME_INPUT, "date YYYY-MM-DD");
	parse_bad("2026-11-25", PGBK_TIME_INPUT, "'T' or a space");
	parse_bad("2026-11-25_14:07", PGBK_TIME_INPUT, "'T' or a space");
	parse_bad("2026-11-25t14:07", PGBK_TIME_INPUT, "'T' or a space");
	parse_bad("2026-11-25 14", PGBK_TIME_INPUT, "HH:MM");
	parse_bad("2026-11-25 14:07:5", PGBK_TIME_INPUT, "seconds are not two digits");
	parse_bad("2026-11-25 14:07:00.", PGBK_TIME_INPUT, "'.' is not followed by digits");
	parse_bad("2026-11-25 14:07+1", PGBK_TIME_INPUT, "zone's hours");
	parse_bad("2026-11-25 14:07+25", PGBK_TIME_INPUT, "out of range");
	parse_bad("2026-11-25 14:07 UTC", PGBK_TIME_INPUT, "\"UTC\" follows the time of day");
	parse_bad("2026-11-25 14:07Zjunk", PGBK_TIME_INPUT, "\"junk\" follows the zone");
	parse_bad("2026-02-30 14:07", PGBK_TIME_INPUT, "February 2026 has 28 days");
	parse_bad("2026-11-25 25:07", PGBK_TIME_INPUT, "not a time of day");
	{
		PgbkError err;
		int64_t   us;

		pgbk_time_parse("2026-11-25", PGBK_TIME_INPUT, &us, &err);
		assert_non_null(strstr(err.hint, "YYYY-MM-DD HH:MM[:SS[.ffffff]]"));
		assert_non_null(strstr(err.hint, "local time"));
	}
}

static void
test_parse_compact(void **state)
{
	(void) state;
	assert_int_equal(parse_ok("20261127T143000Z", PGBK_TIME_COMPACT), 1795789800 * S);
	assert_int_equal(parse_ok("20240229T120000Z", PGBK_TIME_COMPACT), 1709208000 * S);
	parse_bad("20230229T120000Z", PGBK_TIME_COMPACT, "February 2023 has 28 days");
	parse_bad("20261127T1430Z", PGBK_TIME_COMPACT, "8 digits, T, 6 digits and Z");
	parse_bad("20261127t143000Z", PGBK_TIME_COMPACT, "8 digits, T, 6 digits and Z");
	parse_bad("20261127T143000", PGBK_TIME_COMPACT, "8 digits, T, 6 digits and Z");
	parse_bad("20261127T143000Z1", PGBK_TIME_COMPACT, "8 digits, T, 6 digits and Z");
	parse_bad("2026-11-27T14:30:00Z", PGBK_TIME_COMPACT, "8 digits, T, 6 digits and Z");
	parse_bad("20261127T250000Z", PGBK_TIME_COMPACT, "not a time of day");
}

static void
test_format(void **state)
{
	char buf[PGBK_TIME_LEN];

	(void) state;
	assert_string_equal(pgbk_time_format(1795789800 * S + 1500000, PGBK_TIME_ISO, buf, sizeof(buf)),
	                    "2026-11-27T14:30:01.500000Z");
	assert_string_equal(pgbk_time_format(1795789800 * S + 1500000, PGBK_TIME_SQL, buf, sizeof(buf)),
	                    "2026-11-27 14:30:01.5+00");
	assert_string_equal(pgbk_time_format(1795789800 * S, PGBK_TIME_SQL, buf, sizeof(buf)),
	                    "2026-11-27 14:30:00+00");
	assert_string_equal(pgbk_time_format(1795789800 * S + 123, PGBK_TIME_SQL, buf, sizeof(buf)),
	                    "2026-11-27 14:30:00.000123+00");
	assert_string_equal(
	    pgbk_time_format(1795789800 * S + 1500000, PGBK_TIME_PLAIN, buf, sizeof(buf)),
	    "2026-11-27 14:30:01.500000");
	assert_string_equal(pgbk_time_format(1795789800 * S + 1999999, PGBK_TIME_ID, buf, sizeof(buf)),
	                    "20261127T143001Z");
	/* the epoch, leap days and before 1970 */
	assert_string_equal(pgbk_time_format(0, PGBK_TIME_ISO, buf, sizeof(buf)),
	                    "1970-01-01T00:00:00.000000Z");
	assert_string_equal(pgbk_time_format(1709208000 * S, PGBK_TIME_ISO, buf, sizeof(buf)),
	                    "2024-02-29T12:00:00.000000Z");
	assert_string_equal(pgbk_time_format(-1, PGBK_TIME_ISO, buf, sizeof(buf)),
	                    "1969-12-31T23:59:59.999999Z");
	assert_string_equal(pgbk_time_format(-S, PGBK_TIME_SQL, buf, sizeof(buf)),
	                    "1969-12-31 23:59:59+00");
	/* a short buffer is cut, never overrun */
	memset(buf, 'x', sizeof(buf));
	pgbk_time_format(0, PGBK_TIME_ISO, buf, 5);
	assert_string_equal(buf, "1970");
}

/* Every style reads back through its parser. */
static void
test_round_trip(void **state)
{
	static const int64_t base[] = {0,
	                               1,
	                               -1,
	                               -S,
	                               999999,
	                               951868800 * S - 1, /* 2000-02-29 23:59:59.999999 */
	                               1709208000 * S + 123456,
	                               1795789800 * S + 500000,
	                               4102444800 * S - 1, /* 2099-12-31 23:59:59.999999 */
	                               -2208988800 * S};   /* 1900-01-01 */
	char                 buf[PGBK_TIME_LEN];
	size_t               i;
	int64_t              us;

	(void) state;
	for (i = 0; i < sizeof(base) / sizeof(base[0]) + 2000; i++)
	{
		int64_t t;
		int64_t secs;

		/* the fixed moments, then one every 37 days and 7 hours and some microseconds */
		if (i < sizeof(base) / sizeof(base[0]))
			t = base[i];
		else
			t = -2208988800 * S +
			    (int64_t) (i - sizeof(base) / sizeof(base[0])) * (37 * 86400 + 7 * 3600) * S +
			    (int64_t) i * 7919 % S;

		us = 0;
		pgbk_time_format(t, PGBK_TIME_ISO, buf, sizeof(buf));
		assert_int_equal(pgbk_time_parse(buf, PGBK_TIME_RFC3339, &us, NULL), PGBK_OK);
		assert_int_equal(us, t);
		assert_int_equal(pgbk_time_parse(buf, PGBK_TIME_INPUT, &us, NULL), PGBK_OK);
		assert_int_equal(us, t);

		pgbk_time_format(t, PGBK_TIME_SQL, buf, sizeof(buf));
		assert_int_equal(pgbk_time_parse(buf, PGBK_TIME_INPUT, &us, NULL), PGBK_OK);
		assert_int_equal(us, t);

		secs = t / S - (t % S < 0);
		pgbk_time_format(t, PGBK_TIME_ID, buf, sizeof(buf));
		assert_int_equal(pgbk_time_parse(buf, PGBK_TIME_COMPACT, &us, NULL), PGBK_OK);
		assert_int_equal(us, secs * S);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_error_detail_hint),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_calendar),
	    cmocka_unit_test(test_parse_rfc3339),
	    cmocka_unit_test(test_parse_input),
	    cmocka_unit_test(test_parse_compact),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
