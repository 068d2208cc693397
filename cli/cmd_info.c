/*
 * cmd_info.c
 *	  pgbk info: what the repository holds (base backups, WAL per timeline
 *	  with its gaps, timeline history files) and the recoverable window,
 *	  computed from the repository alone with the restore planner's rules
 *	  (common/plan/plan.c), as text or JSON.
 */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pgbk_time.h"
#include "plan/plan.h"

/* Gaps listed per timeline; more are only counted. */
#define MAX_LISTED_GAPS 20

static void
info_usage(FILE *out)
{
	fprintf(out, "Usage: pgbk info [--config FILE] [--json]\n"
	             "\n"
	             "Show the base backups, the archived WAL per timeline (first and last\n"
	             "segment, count, gaps), the timeline history files and the recoverable\n"
	             "window (from the end of the oldest usable backup to the newest archived\n"
	             "commit, minus gaps), read from the repository alone.\n");
}

static json_t *
jtime(int64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	pgbk_time_format(us, PGBK_TIME_ISO, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
jlsn(WalLsn lsn)
{
	char buf[WALNAME_LSN_BUFLEN];

	return json_string(walname_format_lsn(buf, lsn));
}

/* One timeline's segments: runs and the gaps between them. */
typedef struct TliSummary
{
	uint32_t tli;
	WalSegNo first;
	WalSegNo last;
	uint64_t count;
	uint64_t stored;
	int      ngaps;
	WalSegNo gap_from[MAX_LISTED_GAPS];
	WalSegNo gap_to[MAX_LISTED_GAPS];
} TliSummary;

static int
summarize_timelines(const PlanView *v, TliSummary **out)
{
	TliSummary *ts = NULL;
	int         n = 0, i, j;
	bool        have_prev = false;
	WalSegNo    prev = 0;

	*out = NULL;
	for (i = 0; i < v->nblocks; i++)
	{
		const PlanWalBlock *blk = &v->blocks[i];

		for (j = 0; j < blk->n; j++)
		{
			const PlanSegment *s = &blk->segs[j];
			TliSummary        *t;

			if (n == 0 || ts[n - 1].tli != s->tli)
			{
				TliSummary *nt = realloc(ts, sizeof(TliSummary) * (size_t) (n + 1));

				if (nt == NULL)
				{
					free(ts);
					return -1;
				}
				ts = nt;
				memset(&ts[n], 0, sizeof(TliSummary));
				ts[n].tli = s->tli;
				ts[n].first = s->segno;
				n++;
				have_prev = false;
			}
			t = &ts[n - 1];
			if (have_prev && s->segno != prev + 1)
			{
				if (t->ngaps < MAX_LISTED_GAPS)
				{
					t->gap_from[t->ngaps] = prev + 1;
					t->gap_to[t->ngaps] = s->segno - 1;
				}
				t->ngaps++;
			}
			t->last = s->segno;
			t->count++;
			t->stored += s->stored_bytes;
			prev = s->segno;
			have_prev = true;
		}
	}
	*out = ts;
	return n;
}

static void
print_text(const PlanView *v, const TliSummary *ts, int nts, const PlanWindow *w)
{
	char a[64], b[64], c[64], d[64], e[64], f[64];
	int  i, j;

	printf("Repository: %s\n", v->description);
	printf("\nBase backups: %d\n", v->nbackups);
	if (v->nbackups > 0)
		printf("  %-17s %-29s %-29s %-12s %-12s %4s %10s %10s\n", "id", "start", "stop",
		       "start lsn", "stop lsn", "tli", "size", "stored");
	for (i = 0; i < v->nbackups; i++)
	{
		const PlanBackup *bk = &v->backups[i];

		if (!bk->loaded)
		{
			printf("  %-17s unusable: %s\n", bk->id,
			       bk->broken_reason ? bk->broken_reason : "its manifest cannot be read");
			continue;
		}
		printf("  %-17s %-29s %-29s %-12s %-12s %4u %10s %10s\n", bk->id,
		       plan_format_time(bk->start_time_us, a, sizeof(a)),
		       plan_format_time(bk->stop_time_us, b, sizeof(b)),
		       walname_format_lsn(c, bk->start_lsn), walname_format_lsn(d, bk->stop_lsn),
		       bk->timeline, plan_format_bytes(bk->bytes, e, sizeof(e)),
		       plan_format_bytes(bk->stored_bytes, f, sizeof(f)));
	}

	printf("\nArchived WAL:%s\n", nts == 0 ? " none" : "");
	for (i = 0; i < nts; i++)
	{
		walname_format_segment(a, ts[i].tli, ts[i].first, v->segsz);
		walname_format_segment(b, ts[i].tli, ts[i].last, v->segsz);
		printf("  timeline %u: %s .. %s, %" PRIu64 " segments, %s stored", ts[i].tli, a, b,
		       ts[i].count, plan_format_bytes(ts[i].stored, c, sizeof(c)));
		if (ts[i].ngaps == 0)
			printf(", no gaps\n");
		else
		{
			printf(", %d gap%s:\n", ts[i].ngaps, ts[i].ngaps == 1 ? "" : "s");
			for (j = 0; j < ts[i].ngaps && j < MAX_LISTED_GAPS; j++)
			{
				walname_format_segment(a, ts[i].tli, ts[i].gap_from[j], v->segsz);
				walname_format_segment(b, ts[i].tli, ts[i].gap_to[j], v->segsz);
				printf("    missing %s .. %s (%" PRIu64 " segment%s)\n", a, b,
				       ts[i].gap_to[j] - ts[i].gap_from[j] + 1,
				       ts[i].gap_to[j] == ts[i].gap_from[j] ? "" : "s");
			}
		}
	}
	if (v->nextra > 0)
	{
		printf("  other files:");
		for (i = 0; i < v->nextra; i++)
			printf(" %s", v->extra[i]);
		printf("\n");
	}

	printf("\nTimeline history files:%s\n", v->nhistories == 0 ? " none" : "");
	for (i = 0; i < v->nhistories; i++)
	{
		const WalHistory *h = &v->histories[i].history;

		walname_format_history(a, v->histories[i].tli);
		if (h->n >= 2)
			printf("  %s: timeline %u forked off timeline %u at %s%s%s\n", a, v->histories[i].tli,
			       h->entries[h->n - 2].tli, walname_format_lsn(b, h->entries[h->n - 2].end),
			       h->entries[h->n - 2].reason[0] ? ": " : "", h->entries[h->n - 2].reason);
		else
			printf("  %s\n", a);
	}

	printf("\nRecoverable window (timeline %u):\n", w->timeline);
	if (!w->any)
	{
		printf("  nothing is recoverable: %s\n", w->reason);
		return;
	}
	printf("  from %s (the end of backup %s)\n", plan_format_time(w->earliest_us, a, sizeof(a)),
	       w->earliest_backup);
	printf("  to   %s", plan_format_time(w->latest_us, b, sizeof(b)));
	if (w->latest_commit_us && w->latest_commit_us != w->latest_us)
		printf(" (the newest archived commit is at %s; no commit followed it)",
		       plan_format_time(w->latest_commit_us, c, sizeof(c)));
	else if (w->latest_commit_us)
		printf(" (the newest archived commit)");
	printf("\n  WAL up to %s\n", w->last_wal);
	for (i = 0; i < w->ngaps; i++)
	{
		if (w->gaps[i].to_us)
			printf("  gap: targets after %s and up to %s are not recoverable (%s .. %s missing)\n",
			       plan_format_time(w->gaps[i].from_us, a, sizeof(a)),
			       plan_format_time(w->gaps[i].to_us, b, sizeof(b)), w->gaps[i].first_missing,
			       w->gaps[i].last_missing);
		else
			printf("  gap: targets after %s are not recoverable (%s .. %s missing, and no backup "
			       "ended after them)\n",
			       plan_format_time(w->gaps[i].from_us, a, sizeof(a)), w->gaps[i].first_missing,
			       w->gaps[i].last_missing);
	}
}

static int
print_json(const PlanView *v, const TliSummary *ts, int nts, const PlanWindow *w)
{
	json_t *root = json_object();
	json_t *backups = json_array(), *wal = json_array(), *hist = json_array();
	json_t *extra = json_array(), *win = json_object(), *wgaps = json_array();
	char    a[WALNAME_BUFLEN], b[WALNAME_BUFLEN];
	char   *text;
	int     i, j;

	json_object_set_new(root, "repository", json_string(v->description));
	for (i = 0; i < v->nbackups; i++)
	{
		const PlanBackup *bk = &v->backups[i];
		json_t           *o = json_object();

		json_object_set_new(o, "id", json_string(bk->id));
		if (!bk->loaded)
		{
			json_object_set_new(o, "usable", json_false());
			json_object_set_new(o, "error",
			                    json_string(bk->broken_reason ? bk->broken_reason : "unreadable"));
		}
		else
		{
			json_object_set_new(o, "usable", json_true());
			json_object_set_new(o, "timeline", json_integer(bk->timeline));
			json_object_set_new(o, "start_time", jtime(bk->start_time_us));
			json_object_set_new(o, "stop_time", jtime(bk->stop_time_us));
			json_object_set_new(o, "start_lsn", jlsn(bk->start_lsn));
			json_object_set_new(o, "stop_lsn", jlsn(bk->stop_lsn));
			json_object_set_new(o, "bytes", json_integer((json_int_t) bk->bytes));
			json_object_set_new(o, "stored_bytes", json_integer((json_int_t) bk->stored_bytes));
			json_object_set_new(o, "pg_version_num", json_integer(bk->pg_version_num));
		}
		json_array_append_new(backups, o);
	}
	json_object_set_new(root, "backups", backups);
	for (i = 0; i < nts; i++)
	{
		json_t *o = json_object(), *gaps = json_array();

		json_object_set_new(o, "timeline", json_integer(ts[i].tli));
		json_object_set_new(
		    o, "first", json_string(walname_format_segment(a, ts[i].tli, ts[i].first, v->segsz)));
		json_object_set_new(
		    o, "last", json_string(walname_format_segment(a, ts[i].tli, ts[i].last, v->segsz)));
		json_object_set_new(o, "segments", json_integer((json_int_t) ts[i].count));
		json_object_set_new(o, "stored_bytes", json_integer((json_int_t) ts[i].stored));
		for (j = 0; j < ts[i].ngaps && j < MAX_LISTED_GAPS; j++)
			json_array_append_new(
			    gaps, json_pack("{s:s,s:s,s:I}", "first_missing",
			                    walname_format_segment(a, ts[i].tli, ts[i].gap_from[j], v->segsz),
			                    "last_missing",
			                    walname_format_segment(b, ts[i].tli, ts[i].gap_to[j], v->segsz),
			                    "missing", (json_int_t) (ts[i].gap_to[j] - ts[i].gap_from[j] + 1)));
		json_object_set_new(o, "gap_count", json_integer(ts[i].ngaps));
		json_object_set_new(o, "gaps", gaps);
		json_array_append_new(wal, o);
	}
	json_object_set_new(root, "wal", wal);
	for (i = 0; i < v->nextra; i++)
		json_array_append_new(extra, json_string(v->extra[i]));
	json_object_set_new(root, "other_wal_files", extra);
	for (i = 0; i < v->nhistories; i++)
	{
		const WalHistory *h = &v->histories[i].history;
		json_t           *o = json_object();

		json_object_set_new(o, "timeline", json_integer(v->histories[i].tli));
		if (h->n >= 2)
		{
			json_object_set_new(o, "parent", json_integer(h->entries[h->n - 2].tli));
			json_object_set_new(o, "switch_lsn", jlsn(h->entries[h->n - 2].end));
			json_object_set_new(o, "reason", json_string(h->entries[h->n - 2].reason));
		}
		json_array_append_new(hist, o);
	}
	json_object_set_new(root, "history", hist);

	json_object_set_new(win, "timeline", json_integer(w->timeline));
	json_object_set_new(win, "recoverable", json_boolean(w->any));
	json_object_set_new(win, "reason", w->any ? json_null() : json_string(w->reason));
	json_object_set_new(win, "earliest", w->any ? jtime(w->earliest_us) : json_null());
	json_object_set_new(win, "earliest_backup",
	                    w->any ? json_string(w->earliest_backup) : json_null());
	json_object_set_new(win, "latest", w->any ? jtime(w->latest_us) : json_null());
	json_object_set_new(win, "latest_commit", w->any ? jtime(w->latest_commit_us) : json_null());
	json_object_set_new(win, "last_wal", w->any ? json_string(w->last_wal) : json_null());
	for (i = 0; i < w->ngaps; i++)
	{
		json_t *g = json_object();

		json_object_set_new(g, "from", jtime(w->gaps[i].from_us));
		json_object_set_new(g, "to", jtime(w->gaps[i].to_us));
		json_object_set_new(g, "first_missing", json_string(w->gaps[i].first_missing));
		json_object_set_new(g, "last_missing", json_string(w->gaps[i].last_missing));
		json_array_append_new(wgaps, g);
	}
	json_object_set_new(win, "gaps", wgaps);
	json_object_set_new(root, "window", win);

	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (text == NULL)
	{
		cli_error("info: out of memory");
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

int
cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"quiet", no_argument, NULL, 'q'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char                *config = NULL;
	bool                       json = false;
	CliContext                 ctx;
	PlanView                  *v = NULL;
	PlanWindow                *w = NULL;
	TliSummary                *ts = NULL;
	PgbkError                  err;
	int                        c, rc, nts = 0, i;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:jqh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config = optarg;
				break;
			case 'j':
				json = true;
				break;
			case 'q':
				cli_quiet = true;
				break;
			case 'h':
				info_usage(stdout);
				return EXIT_OK;
			default:
				info_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind != argc)
	{
		info_usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = cli_open(&ctx, config)) != EXIT_OK)
		return rc;
	pgbk_error_clear(&err);
	w = calloc(1, sizeof(PlanWindow));
	if (w == NULL)
	{
		cli_close(&ctx);
		return EXIT_FAIL;
	}
	if (plan_view_open(ctx.repo, ctx.ring, &v, &err) != PGBK_OK)
	{
		rc = cli_fail(&err, "info");
		goto done;
	}
	for (i = 0; i < v->nbackups; i++)
		if (plan_view_load_backup(v, &v->backups[i], &err) != PGBK_OK)
		{
			rc = cli_fail(&err, "info");
			goto done;
		}
	if (plan_view_list_all_wal(v, &err) != PGBK_OK || plan_window(v, 0, w, &err) != PGBK_OK)
	{
		rc = cli_fail(&err, "info");
		goto done;
	}
	nts = summarize_timelines(v, &ts);
	if (nts < 0)
	{
		cli_error("info: out of memory");
		rc = EXIT_FAIL;
		goto done;
	}
	if (json)
		rc = print_json(v, ts, nts, w);
	else
		print_text(v, ts, nts, w);

done:
	free(ts);
	free(w);
	plan_view_free(v);
	cli_close(&ctx);
	return rc;
}
