/*
 * itest_walscan.c
 *	  Tests of room wal: the driver of t/005; uses walscan.c only.
 *	  Print the walscan summary of each WAL segment file given, for
 *	  t/005_walscan.pl to compare with pg_waldump; optionally time the scans.
 *
 * usage: itest_walscan [--segsz BYTES] [--bench RUNS] FILE...
 *
 * For each file, these lines and then an empty line:
 *	 file=<base name>
 *	 status=ok | error
 *	 error=<message>			  (status=error only)
 *	 name_segno_match=1|0		  the file name's segment number is the first
 *								  page's (0 for a recycled segment)
 *	 roundtrip=1|0				  the attributes parse back to the same summary
 *	 attrs_len=<bytes>
 *	 wal.<...>=<...>			  walscan_summary_to_attrs() output
 *	 bench_runs=N, bench_min_us=, bench_avg_us=   (with --bench)
 *
 * Exit status 0, or 1 for a bad argument or an unreadable file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wal/walscan.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int
report(const char *path, uint32_t segsz, int bench)
{
	PgbkBuf     file;
	PgbkBuf     attrs;
	PgbkError   err;
	WalSummary  s;
	WalSummary  back;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	WalSegNo    segno;
	WalFileName fn;
	WalFileKind kind;

	pgbk_buf_init(&file);
	pgbk_buf_init(&attrs);
	if (pgbk_read_file(path, &file, &err) != PGBK_OK)
	{
		fprintf(stderr, "itest_walscan: could not read \"%s\": %s\n", path, err.msg);
		return 1;
	}
	printf("file=%s\n", base);
	if (walscan_segment(file.data, file.len, segsz, &s, &err) != PGBK_OK)
	{
		printf("status=error\nerror=%s\n\n", err.msg);
		pgbk_buf_free(&file);
		return 0;
	}
	printf("status=ok\n");

	/* the name's segment number, for plain and .partial names */
	kind = walname_classify(base, &fn);
	if ((kind == WAL_FILE_SEGMENT || kind == WAL_FILE_PARTIAL) &&
	    walname_file_segno(&fn, segsz, &segno, &err) == PGBK_OK)
		printf("name_segno_match=%d\n", segno == s.segno ? 1 : 0);
	else
		printf("name_segno_match=0\n");

	if (walscan_summary_to_attrs(&s, WALSCAN_ATTRS_MAX, &attrs, &err) != PGBK_OK)
		printf("roundtrip=0\nerror=%s\n", err.msg);
	else
	{
		bool same = walscan_summary_from_attrs((const char *) attrs.data, &back, &err) == PGBK_OK &&
		            memcmp(&s, &back, sizeof(s)) == 0;

		printf("roundtrip=%d\nattrs_len=%zu\n%s", same ? 1 : 0, attrs.len,
		       (const char *) attrs.data);
	}

	if (bench > 0)
	{
		double best = 1e18;
		double total = 0;
		int    i;

		for (i = 0; i < bench; i++)
		{
			double t0 = now_us();
			double t;

			(void) walscan_segment(file.data, file.len, segsz, &s, &err);
			t = now_us() - t0;
			total += t;
			if (t < best)
				best = t;
		}
		printf("bench_runs=%d\nbench_min_us=%.0f\nbench_avg_us=%.0f\n", bench, best, total / bench);
	}
	printf("\n");
	pgbk_buf_free(&file);
	pgbk_buf_free(&attrs);
	return 0;
}

int
main(int argc, char **argv)
{
	uint32_t segsz = WAL_SEGSZ_DEFAULT;
	int      bench = 0;
	int      i;
	int      rc = 0;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++)
	{
		if (strcmp(argv[i], "--segsz") == 0 && i + 1 < argc)
			segsz = (uint32_t) strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc)
			bench = atoi(argv[++i]);
		else
		{
			fprintf(stderr, "usage: itest_walscan [--segsz BYTES] [--bench RUNS] FILE...\n");
			return 1;
		}
	}
	if (!walname_segsz_is_valid(segsz) || i == argc)
	{
		fprintf(stderr, "usage: itest_walscan [--segsz BYTES] [--bench RUNS] FILE...\n");
		return 1;
	}
	for (; i < argc; i++)
		rc |= report(argv[i], segsz, bench);
	return rc;
}
