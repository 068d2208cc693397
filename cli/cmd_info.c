/*
 * cmd_info.c
 *	  Program pgbk; uses cli.h, common/ plan and base (time) and cJSON.
 *	  pgbk info: what the repository holds (base backups, WAL per timeline
 *	  with its gaps, timeline history files) and the recoverable window,
 *	  computed from the repository alone with the restore planner's rules
 *	  (common/plan/plan.c), as text or JSON.
 */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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

/*
 * The JSON document is built with cJSON and printed by put_json() below in
 * the layout `pgbk info --json` has always had: two-space indent, "key":
 * value (cJSON's own printer indents with tabs).  Integers are raw items,
 * exact for any 64-bit value (cJSON numbers are doubles).
 */
static cJSON *
jint(int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cJSON_CreateRaw(buf);
}

static cJSON *
jtime(int64_t us)
{
	char buf[40];

	if (us == 0)
		return cJSON_CreateNull();
	pgbk_time_format(us, PGBK_TIME_ISO, buf, sizeof(buf));
	return cJSON_CreateString(buf);
}

static cJSON *
jlsn(WalLsn lsn)
{
	char buf[WALNAME_LSN_BUFLEN];

	return cJSON_CreateString(walname_format_lsn(buf, lsn));
}

/* obj[key] = v; a NULL v (out of memory) leaves the key out */
static void
jset(cJSON *obj, const char *key, cJSON *v)
{
	if (obj == NULL || !cJSON_AddItemToObject(obj, key, v))
		cJSON_Delete(v);
}

static void
jpush(cJSON *arr, cJSON *v)
{
	if (arr == NULL || !cJSON_AddItemToArray(arr, v))
		cJSON_Delete(v);
}

static bool
put_str(PgbkBuf *out, const char *s)
{
	return pgbk_buf_append_str(out, s);
}

/* A JSON string: '"', '\\' and control characters escaped, the rest as is. */
static bool
put_quoted(PgbkBuf *out, const char *s)
{
	bool ok = put_str(out, "\"");

	for (; ok && *s; s++)
	{
		unsigned char ch = (unsigned char) *s;
		char          esc[8];

		switch (ch)
		{
			case '"':
				ok = put_str(out, "\\\"");
				break;
			case '\\':
				ok = put_str(out, "\\\\");
				break;
			case '\b':
				ok = put_str(out, "\\b");
				break;
			case '\f':
				ok = put_str(out, "\\f");
				break;
			case '\n':
				ok = put_str(out, "\\n");
				break;
			case '\r':
				ok = put_str(out, "\\r");
				break;
			case '\t':
				ok = put_str(out, "\\t");
				break;
			default:
				if (ch < 0x20)
				{
					snprintf(esc, sizeof(esc), "\\u%04X", ch);
					ok = put_str(out, esc);
				}
				else
					ok = pgbk_buf_append(out, s, 1);
		}
	}
	return ok && put_str(out, "\"");
}

static bool
put_newline(PgbkBuf *out, int depth)
{
	bool ok = put_str(out, "\n");
	int  i;

	for (i = 0; ok && i < depth; i++)
		ok = put_str(out, "  ");
	return ok;
}

static bool
put_json(PgbkBuf *out, const cJSON *item, int depth)
{
	const cJSON *c;
	bool         obj = cJSON_IsObject(item);
	bool         ok;

	if (cJSON_IsNull(item))
		return put_str(out, "null");
	if (cJSON_IsBool(item))
		return put_str(out, cJSON_IsTrue(item) ? "true" : "false");
	if (cJSON_IsRaw(item))
		return put_str(out, item->valuestring);
	if (cJSON_IsString(item))
		return put_quoted(out, item->valuestring);
	if (!obj && !cJSON_IsArray(item))
		return false; /* numbers are raw items here */
	if (item->child == NULL)
		return put_str(out, obj ? "{}" : "[]");
	ok = put_str(out, obj ? "{" : "[");
	for (c = item->child; ok && c != NULL; c = c->next)
		ok = put_newline(out, depth + 1) &&
		     (!obj || (put_quoted(out, c->string) && put_str(out, ": "))) &&
		     put_json(out, c, depth + 1) && (c->next == NULL || put_str(out, ","));
	return ok && put_newline(out, depth) && put_str(out, obj ? "}" : "]");
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
	cJSON  *root = cJSON_CreateObject();
	cJSON  *backups = cJSON_CreateArray(), *wal = cJSON_CreateArray(), *hist = cJSON_CreateArray();
	cJSON  *extra = cJSON_CreateArray(), *win = cJSON_CreateObject(), *wgaps = cJSON_CreateArray();
	char    a[WALNAME_BUFLEN], b[WALNAME_BUFLEN];
	PgbkBuf text;
	bool    ok;
	int     i, j;

	jset(root, "repository", cJSON_CreateString(v->description));
	for (i = 0; i < v->nbackups; i++)
	{
		const PlanBackup *bk = &v->backups[i];
		cJSON            *o = cJSON_CreateObject();

		jset(o, "id", cJSON_CreateString(bk->id));
		if (!bk->loaded)
		{
			jset(o, "usable", cJSON_CreateFalse());
			jset(o, "error",
			     cJSON_CreateString(bk->broken_reason ? bk->broken_reason : "unreadable"));
		}
		else
		{
			jset(o, "usable", cJSON_CreateTrue());
			jset(o, "timeline", jint(bk->timeline));
			jset(o, "start_time", jtime(bk->start_time_us));
			jset(o, "stop_time", jtime(bk->stop_time_us));
			jset(o, "start_lsn", jlsn(bk->start_lsn));
			jset(o, "stop_lsn", jlsn(bk->stop_lsn));
			jset(o, "bytes", jint((int64_t) bk->bytes));
			jset(o, "stored_bytes", jint((int64_t) bk->stored_bytes));
			jset(o, "pg_version_num", jint(bk->pg_version_num));
		}
		jpush(backups, o);
	}
	jset(root, "backups", backups);
	for (i = 0; i < nts; i++)
	{
		cJSON *o = cJSON_CreateObject(), *gaps = cJSON_CreateArray();

		jset(o, "timeline", jint(ts[i].tli));
		jset(o, "first",
		     cJSON_CreateString(walname_format_segment(a, ts[i].tli, ts[i].first, v->segsz)));
		jset(o, "last",
		     cJSON_CreateString(walname_format_segment(a, ts[i].tli, ts[i].last, v->segsz)));
		jset(o, "segments", jint((int64_t) ts[i].count));
		jset(o, "stored_bytes", jint((int64_t) ts[i].stored));
		for (j = 0; j < ts[i].ngaps && j < MAX_LISTED_GAPS; j++)
		{
			cJSON *g = cJSON_CreateObject();

			jset(g, "first_missing",
			     cJSON_CreateString(
			         walname_format_segment(a, ts[i].tli, ts[i].gap_from[j], v->segsz)));
			jset(g, "last_missing",
			     cJSON_CreateString(
			         walname_format_segment(b, ts[i].tli, ts[i].gap_to[j], v->segsz)));
			jset(g, "missing", jint((int64_t) (ts[i].gap_to[j] - ts[i].gap_from[j] + 1)));
			jpush(gaps, g);
		}
		jset(o, "gap_count", jint(ts[i].ngaps));
		jset(o, "gaps", gaps);
		jpush(wal, o);
	}
	jset(root, "wal", wal);
	for (i = 0; i < v->nextra; i++)
		jpush(extra, cJSON_CreateString(v->extra[i]));
	jset(root, "other_wal_files", extra);
	for (i = 0; i < v->nhistories; i++)
	{
		const WalHistory *h = &v->histories[i].history;
		cJSON            *o = cJSON_CreateObject();

		jset(o, "timeline", jint(v->histories[i].tli));
		if (h->n >= 2)
		{
			jset(o, "parent", jint(h->entries[h->n - 2].tli));
			jset(o, "switch_lsn", jlsn(h->entries[h->n - 2].end));
			jset(o, "reason", cJSON_CreateString(h->entries[h->n - 2].reason));
		}
		jpush(hist, o);
	}
	jset(root, "history", hist);

	jset(win, "timeline", jint(w->timeline));
	jset(win, "recoverable", cJSON_CreateBool(w->any));
	jset(win, "reason", w->any ? cJSON_CreateNull() : cJSON_CreateString(w->reason));
	jset(win, "earliest", w->any ? jtime(w->earliest_us) : cJSON_CreateNull());
	jset(win, "earliest_backup",
	     w->any ? cJSON_CreateString(w->earliest_backup) : cJSON_CreateNull());
	jset(win, "latest", w->any ? jtime(w->latest_us) : cJSON_CreateNull());
	jset(win, "latest_commit", w->any ? jtime(w->latest_commit_us) : cJSON_CreateNull());
	jset(win, "last_wal", w->any ? cJSON_CreateString(w->last_wal) : cJSON_CreateNull());
	for (i = 0; i < w->ngaps; i++)
	{
		cJSON *g = cJSON_CreateObject();

		jset(g, "from", jtime(w->gaps[i].from_us));
		jset(g, "to", jtime(w->gaps[i].to_us));
		jset(g, "first_missing", cJSON_CreateString(w->gaps[i].first_missing));
		jset(g, "last_missing", cJSON_CreateString(w->gaps[i].last_missing));
		jpush(wgaps, g);
	}
	jset(win, "gaps", wgaps);
	jset(root, "window", win);

	pgbk_buf_init(&text);
	ok = root != NULL && put_json(&text, root, 0) && put_str(&text, "\n");
	cJSON_Delete(root);
	if (!ok)
	{
		pgbk_buf_free(&text);
		cli_error("info: out of memory");
		return EXIT_FAIL;
	}
	fwrite(text.data, 1, text.len, stdout);
	pgbk_buf_free(&text);
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
