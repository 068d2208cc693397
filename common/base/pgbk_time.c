/*
 * pgbk_time.c
 *	  Room base; uses pgbk_common and libc only.
 *	  The one calendar, timestamp parser and formatter of pgbk (see
 *	  pgbk_time.h).  The calendar arithmetic is H. Hinnant's
 *	  days_from_civil/civil_from_days; every parser validates its parts
 *	  against the same calendar before converting them, as pgBackRest's
 *	  common/time.c does.
 */
#include "base/pgbk_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const month_names[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};

bool
pgbk_year_is_leap(int64_t year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int
pgbk_days_in_month(int64_t year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month < 1 || month > 12)
		return 0;
	return days[month - 1] + (month == 2 && pgbk_year_is_leap(year));
}

int64_t
pgbk_days_from_civil(int64_t year, int month, int day)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	year -= month <= 2;
	era = (year >= 0 ? year : year - 399) / 400;
	yoe = year - era * 400;
	doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
pgbk_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int     m = (int) (mp < 10 ? mp + 3 : mp - 9);

	*day = (int) (doy - (153 * mp + 2) / 5 + 1);
	*month = m;
	*year = yoe + era * 400 + (m <= 2);
}

/* ----------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

/* min to max decimal digits at *p into *v, advancing *p. */
static bool
digits(const char **p, int min, int max, int *v)
{
	int n = 0;

	*v = 0;
	while (n < max && (*p)[n] >= '0' && (*p)[n] <= '9')
	{
		*v = *v * 10 + ((*p)[n] - '0');
		n++;
	}
	if (n < min)
		return false;
	*p += n;
	return true;
}

/* The character c (or alt, when not NUL) at *p, advancing *p. */
static bool
lit(const char **p, char c, char alt)
{
	if (**p == c || (alt != '\0' && **p == alt))
	{
		(*p)++;
		return true;
	}
	return false;
}

/* ".digits": microseconds, further digits ignored. */
static bool
fraction(const char **p, int64_t *frac)
{
	int n = 0;

	*frac = 0;
	if (!lit(p, '.', '\0'))
		return true;
	if (**p < '0' || **p > '9')
		return false;
	while (**p >= '0' && **p <= '9')
	{
		if (n < 6)
		{
			*frac = *frac * 10 + (**p - '0');
			n++;
		}
		(*p)++;
	}
	while (n++ < 6)
		*frac *= 10;
	return true;
}

static const char *
syntax_hint(PgbkTimeSyntax syntax)
{
	switch (syntax)
	{
		case PGBK_TIME_INPUT:
			return "Write a time as YYYY-MM-DD HH:MM[:SS[.ffffff]], optionally followed by a zone "
			       "(Z, +HH, +HHMM or +HH:MM); without a zone it is local time.";
		case PGBK_TIME_RFC3339:
			return "An RFC 3339 time is YYYY-MM-DDTHH:MM:SS[.ffffff] followed by Z or an offset "
			       "+HH:MM.";
		case PGBK_TIME_COMPACT:
			break;
	}
	return "A backup id is YYYYMMDDTHHMMSSZ.";
}

static PgbkStatus bad_time(const char *s, PgbkTimeSyntax syntax, PgbkError *err, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

static PgbkStatus
bad_time(const char *s, PgbkTimeSyntax syntax, PgbkError *err, const char *fmt, ...)
{
	PgbkStatus code = syntax == PGBK_TIME_INPUT ? PGBK_ERR_USAGE : PGBK_ERR_FORMAT;
	va_list    ap;

	if (err == NULL)
		return code;
	pgbk_error(err, code, "invalid time \"%.200s\"", s);
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	pgbk_error_hint(err, "%s", syntax_hint(syntax));
	return code;
}

PgbkStatus
pgbk_time_parse(const char *s, PgbkTimeSyntax syntax, int64_t *us, PgbkError *err)
{
	const char *p = s;
	bool        input = syntax == PGBK_TIME_INPUT;
	int         w = input ? 1 : 2; /* fewest digits of month, day, hour, minute */
	int         y, mo, d, h, mi, sec = 0;
	int64_t     frac = 0;
	bool        have_zone = false;
	int64_t     zone_sec = 0;
	int64_t     t;

	if (syntax == PGBK_TIME_COMPACT)
	{
		if (!digits(&p, 4, 4, &y) || !digits(&p, 2, 2, &mo) || !digits(&p, 2, 2, &d) ||
		    !lit(&p, 'T', '\0') || !digits(&p, 2, 2, &h) || !digits(&p, 2, 2, &mi) ||
		    !digits(&p, 2, 2, &sec) || !lit(&p, 'Z', '\0') || *p != '\0')
			return bad_time(s, syntax, err, "It is not 8 digits, T, 6 digits and Z.");
		have_zone = true;
	}
	else
	{
		if (!digits(&p, 4, 4, &y) || !lit(&p, '-', '\0') || !digits(&p, w, 2, &mo) ||
		    !lit(&p, '-', '\0') || !digits(&p, w, 2, &d))
			return bad_time(s, syntax, err, "It does not begin with a date YYYY-MM-DD.");
		if (!lit(&p, 'T', ' ') && !(!input && lit(&p, 't', '\0')))
			return bad_time(s, syntax, err,
			                "The date is not followed by a 'T' or a space and a time.");
		if (!digits(&p, w, 2, &h) || !lit(&p, ':', '\0') || !digits(&p, w, 2, &mi))
			return bad_time(s, syntax, err, "The time of day is not HH:MM%s.", input ? "" : ":SS");
		if (lit(&p, ':', '\0'))
		{
			if (!digits(&p, 2, 2, &sec))
				return bad_time(s, syntax, err, "The seconds are not two digits.");
		}
		else if (!input)
			return bad_time(s, syntax, err, "The time of day has no seconds.");
		if (!fraction(&p, &frac))
			return bad_time(s, syntax, err, "The '.' is not followed by digits.");
		if (input)
		{
			while (*p == ' ')
				p++;
		}
		if (lit(&p, 'Z', 'z'))
			have_zone = true;
		else if (*p == '+' || *p == '-')
		{
			int sign = *p == '-' ? -1 : 1;
			int zh, zm = 0;

			p++;
			if (!digits(&p, 2, 2, &zh))
				return bad_time(s, syntax, err, "The zone's hours are not two digits.");
			if (input)
			{
				/* "+HH", "+HHMM", "+HH:MM" */
				(void) lit(&p, ':', '\0');
				(void) digits(&p, 2, 2, &zm);
			}
			else if (!lit(&p, ':', '\0') || !digits(&p, 2, 2, &zm))
				return bad_time(s, syntax, err, "The offset is not +HH:MM or -HH:MM.");
			if (zh > 23 || zm > 59)
				return bad_time(s, syntax, err, "The zone's offset %c%02d:%02d is out of range.",
				                sign < 0 ? '-' : '+', zh, zm);
			have_zone = true;
			zone_sec = sign * (zh * 3600 + zm * 60);
		}
		else if (!input)
			return bad_time(s, syntax, err, "It has no zone (Z or an offset such as +01:00).");
		if (*p != '\0')
			return bad_time(s, syntax, err, "\"%.40s\" follows the %s.", p,
			                have_zone ? "zone" : "time of day");
	}

	if (mo < 1 || mo > 12)
		return bad_time(s, syntax, err, "There is no month %d.", mo);
	if (d < 1 || d > pgbk_days_in_month(y, mo))
		return bad_time(s, syntax, err, "%s %d has %d days.", month_names[mo - 1], y,
		                pgbk_days_in_month(y, mo));
	if (h > 23 || mi > 59 || sec > 60)
		return bad_time(s, syntax, err, "%02d:%02d:%02d is not a time of day.", h, mi, sec);

	if (have_zone)
		t = pgbk_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - zone_sec;
	else
	{
		struct tm tm;

		/* local time: only mktime() knows the zone's rules (TZ, daylight saving) */
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = sec;
		tm.tm_isdst = -1;
		t = (int64_t) mktime(&tm);
		if (t == -1 && !(y == 1969 || y == 1970))
			return bad_time(s, syntax, err, "It cannot be converted from the local time zone.");
	}
	*us = t * 1000000 + frac;
	return PGBK_OK;
}

/* ----------------------------------------------------------------------
 * Formatting
 * ---------------------------------------------------------------------- */

char *
pgbk_time_format(int64_t us, PgbkTimeStyle style, char *buf, size_t len)
{
	int64_t secs = us / 1000000;
	int64_t frac;
	int64_t days;
	int64_t rem;
	int64_t y;
	int     mo, d, h, mi, s;

	if (us % 1000000 < 0)
		secs--;
	frac = us - secs * 1000000;
	days = secs / 86400;
	if (secs % 86400 < 0)
		days--;
	rem = secs - days * 86400;
	pgbk_civil_from_days(days, &y, &mo, &d);
	h = (int) (rem / 3600);
	mi = (int) (rem / 60 % 60);
	s = (int) (rem % 60);

	switch (style)
	{
		case PGBK_TIME_ISO:
			snprintf(buf, len, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%06" PRId64 "Z", y, mo, d, h,
			         mi, s, frac);
			break;
		case PGBK_TIME_PLAIN:
			snprintf(buf, len, "%04" PRId64 "-%02d-%02d %02d:%02d:%02d.%06" PRId64, y, mo, d, h, mi,
			         s, frac);
			break;
		case PGBK_TIME_SQL:
		{
			char fbuf[16] = "";
			int  n;

			if (frac != 0)
			{
				snprintf(fbuf, sizeof(fbuf), ".%06" PRId64, frac);
				/* trailing zeros go, as in PostgreSQL's output */
				for (n = (int) strlen(fbuf); n > 1 && fbuf[n - 1] == '0'; n--)
					fbuf[n - 1] = '\0';
			}
			snprintf(buf, len, "%04" PRId64 "-%02d-%02d %02d:%02d:%02d%s+00", y, mo, d, h, mi, s,
			         fbuf);
			break;
		}
		case PGBK_TIME_ID:
			snprintf(buf, len, "%04" PRId64 "%02d%02dT%02d%02d%02dZ", y, mo, d, h, mi, s);
			break;
	}
	return buf;
}
