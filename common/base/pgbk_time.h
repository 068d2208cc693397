/*
 * pgbk_time.h
 *	  Room base; uses pgbk_common only.
 *	  The one calendar, timestamp parser and timestamp formatter of pgbk.
 *
 * Every time pgbk reads or writes as text goes through here: restore
 * targets typed by a user, manifest and restic snapshot times, S3 listing
 * times, backup ids.  A time is Unix microseconds (int64_t, UTC).  The
 * calendar is the proleptic Gregorian one, computed (not asked of the C
 * library), so that parsing does not depend on timegm() or on the process's
 * time zone; only a time written without a zone in PGBK_TIME_INPUT syntax
 * is local time, and that one conversion asks mktime() (TZ, daylight
 * saving).
 */
#ifndef PGBK_TIME_H
#define PGBK_TIME_H

#include "base/pgbk_common.h"

/* Room for any style of pgbk_time_format(), NUL included. */
#define PGBK_TIME_LEN 40

/* Calendar. */
bool pgbk_year_is_leap(int64_t year);
/* Days in month (1..12) of year; 0 for a month out of range. */
int pgbk_days_in_month(int64_t year, int month);
/* Days since 1970-01-01 of a valid date (negative before). */
int64_t pgbk_days_from_civil(int64_t year, int month, int day);
/* The date of a day count from 1970-01-01. */
void pgbk_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* What pgbk_time_parse() accepts. */
typedef enum PgbkTimeSyntax
{
	/*
	 * What a user types (pgbk restore --target-time) and what manifests
	 * hold: "YYYY-MM-DD HH:MM", a 'T' or a space between date and time,
	 * month, day, hour and minute of one or two digits, optional ":SS"
	 * and ".fraction", then optional spaces and an optional zone: 'Z',
	 * "+HH", "+HHMM", "+HH:MM" (or '-').  Without a zone: local time.
	 */
	PGBK_TIME_INPUT,
	/*
	 * RFC 3339 (restic snapshot times, S3 LastModified):
	 * "YYYY-MM-DDTHH:MM:SS[.fraction]" then 'Z' or "+HH:MM"/"-HH:MM"; 't'
	 * or a space may stand for 'T', 'z' for 'Z'.
	 */
	PGBK_TIME_RFC3339,
	/* A backup id: exactly "YYYYMMDDTHHMMSSZ" (UTC). */
	PGBK_TIME_COMPACT
} PgbkTimeSyntax;

/*
 * Parse s into *us.  A fraction keeps its first six digits (microseconds;
 * more are ignored, not rounded).  The date must exist (2026-02-29 does
 * not); hours 0-23, minutes 0-59, seconds 0-60 (a leap second is the next
 * minute's first); a zone's hours 0-23 and minutes 0-59.  On failure
 * PGBK_ERR_USAGE for PGBK_TIME_INPUT (a user typed it), PGBK_ERR_FORMAT
 * otherwise, with a message quoting s, a detail saying what is wrong and
 * a hint giving the syntax; *us is unchanged.
 */
PgbkStatus pgbk_time_parse(const char *s, PgbkTimeSyntax syntax, int64_t *us, PgbkError *err);

/* How pgbk_time_format() writes a time (examples for 1.5 s after 14:30). */
typedef enum PgbkTimeStyle
{
	PGBK_TIME_ISO,   /* "2026-11-27T14:30:01.500000Z": manifests, restic records */
	PGBK_TIME_SQL,   /* "2026-11-27 14:30:01.5+00": as PostgreSQL prints a
	                  * timestamptz in UTC (no fraction when it is zero) */
	PGBK_TIME_PLAIN, /* "2026-11-27 14:30:01.500000": UTC without a zone
	                  * (restic --time, which runs with TZ=UTC) */
	PGBK_TIME_ID     /* "20261127T143001Z": backup ids (fraction dropped) */
} PgbkTimeStyle;

/* Write us into buf (len bytes, PGBK_TIME_LEN is always enough); returns buf. */
char *pgbk_time_format(int64_t us, PgbkTimeStyle style, char *buf, size_t len);

#endif /* PGBK_TIME_H */
