/*
 * plan.c
 *	  Room plan; uses base, repo, format (codec, layout, manifests) and wal (walscan
 *	  summaries).
 *	  Restore planning (see plan.h for the rules).
 *
 * Two halves: the view (arrays of backups, history files and WAL blocks,
 * filled by hand or lazily from a repository), and the decision, which only
 * asks the view for what it needs, in WAL order, so that on a repository it
 * lists the prefixes and reads the object headers the answer depends on and
 * nothing else.
 */
#include "plan/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pgbk_time.h"
#include "format/layout.h"

/* A listing callback returns this to stop early (with ListCtx.stopped set). */
#define LIST_STOP PGBK_ERR_INTERRUPTED

/* ------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------
 */

char *
plan_format_time(int64_t us, char *buf, size_t len)
{
	return pgbk_time_format(us, PGBK_TIME_SQL, buf, len);
}

char *
plan_format_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
	double                   v = (double) n;
	int                      u = 0;

	while (v >= 1024.0 && u < 5)
	{
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " bytes", n);
	else
		snprintf(buf, len, "%.*f %s", v < 10.0 ? 1 : 0, v, units[u]);
	return buf;
}

/* ------------------------------------------------------------------------
 * The view
 * ------------------------------------------------------------------------
 */

PlanView *
plan_view_new(void)
{
	return calloc(1, sizeof(PlanView));
}

void
plan_view_free(PlanView *v)
{
	int i, j;

	if (v == NULL)
		return;
	if (v->ops && v->ops->close)
		v->ops->close(v);
	for (i = 0; i < v->nbackups; i++)
	{
		free(v->backups[i].broken_reason);
		free(v->backups[i].chain_reason);
	}
	free(v->backups);
	for (i = 0; i < v->nhistories; i++)
		walname_history_free(&v->histories[i].history);
	free(v->histories);
	for (i = 0; i < v->nblocks; i++)
	{
		for (j = 0; j < v->blocks[i].n; j++)
			free(v->blocks[i].segs[j].summary);
		free(v->blocks[i].segs);
	}
	free(v->blocks);
	for (i = 0; i < v->nextra; i++)
		free(v->extra[i]);
	free(v->extra);
	free(v->description);
	free(v);
}

/* Make room for one more element in a growable array. */
static bool
grow(void **arr, int n, int *cap, size_t elem)
{
	if (n < *cap)
		return true;
	{
		int   ncap = *cap ? *cap * 2 : 16;
		void *na = realloc(*arr, (size_t) ncap * elem);

		if (na == NULL)
			return false;
		*arr = na;
		*cap = ncap;
	}
	return true;
}

PlanBackup *
plan_view_add_backup(PlanView *v, const char *id)
{
	int         pos;
	PlanBackup *b;

	if (strlen(id) >= MANIFEST_ID_LEN)
		return NULL;
	if (!grow((void **) &v->backups, v->nbackups, &v->backups_cap, sizeof(PlanBackup)))
		return NULL;
	/* keep them sorted by id; they usually come in order */
	for (pos = v->nbackups; pos > 0 && strcmp(v->backups[pos - 1].id, id) > 0; pos--)
		;
	memmove(&v->backups[pos + 1], &v->backups[pos],
	        (size_t) (v->nbackups - pos) * sizeof(PlanBackup));
	b = &v->backups[pos];
	memset(b, 0, sizeof(*b));
	strcpy(b->id, id);
	v->nbackups++;
	return b;
}

PgbkStatus
plan_view_add_history(PlanView *v, uint32_t tli, const char *text, size_t len, PgbkError *err)
{
	WalHistory h;
	PgbkStatus st;
	int        pos;

	if ((st = walname_parse_history(text, len, tli, &h, err)) != PGBK_OK)
		return st;
	if (!grow((void **) &v->histories, v->nhistories, &v->histories_cap, sizeof(PlanHistoryFile)))
	{
		walname_history_free(&h);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	for (pos = v->nhistories; pos > 0 && v->histories[pos - 1].tli > tli; pos--)
		;
	if (pos > 0 && v->histories[pos - 1].tli == tli)
	{
		/* same timeline again: keep the first */
		walname_history_free(&h);
		return PGBK_OK;
	}
	memmove(&v->histories[pos + 1], &v->histories[pos],
	        (size_t) (v->nhistories - pos) * sizeof(PlanHistoryFile));
	v->histories[pos].tli = tli;
	v->histories[pos].history = h;
	v->nhistories++;
	return PGBK_OK;
}

static const PlanHistoryFile *
find_history(const PlanView *v, uint32_t tli)
{
	int lo = 0, hi = v->nhistories - 1;

	while (lo <= hi)
	{
		int mid = (lo + hi) / 2;

		if (v->histories[mid].tli == tli)
			return &v->histories[mid];
		if (v->histories[mid].tli < tli)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static int
block_cmp(uint32_t tli1, uint32_t log1, uint32_t tli2, uint32_t log2)
{
	if (tli1 != tli2)
		return tli1 < tli2 ? -1 : 1;
	if (log1 != log2)
		return log1 < log2 ? -1 : 1;
	return 0;
}

PlanWalBlock *
plan_view_block(PlanView *v, uint32_t tli, uint32_t logid, bool create)
{
	int           lo = 0, hi = v->nblocks - 1;
	PlanWalBlock *blk;

	while (lo <= hi)
	{
		int mid = (lo + hi) / 2;
		int c = block_cmp(v->blocks[mid].tli, v->blocks[mid].logid, tli, logid);

		if (c == 0)
			return &v->blocks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	if (!create)
		return NULL;
	if (!grow((void **) &v->blocks, v->nblocks, &v->blocks_cap, sizeof(PlanWalBlock)))
		return NULL;
	memmove(&v->blocks[lo + 1], &v->blocks[lo], (size_t) (v->nblocks - lo) * sizeof(PlanWalBlock));
	blk = &v->blocks[lo];
	memset(blk, 0, sizeof(*blk));
	blk->tli = tli;
	blk->logid = logid;
	v->nblocks++;
	return blk;
}

static uint64_t
segs_per_logid(uint32_t segsz)
{
	return UINT64_C(0x100000000) / segsz;
}

PlanSegment *
plan_view_add_segment(PlanView *v, uint32_t tli, WalSegNo segno, uint64_t stored, int64_t mtime_us)
{
	PlanWalBlock *blk;
	PlanSegment  *s;
	int           pos;

	if (v->segsz == 0)
		return NULL;
	blk = plan_view_block(v, tli, (uint32_t) (segno / segs_per_logid(v->segsz)), true);
	if (blk == NULL || !grow((void **) &blk->segs, blk->n, &blk->cap, sizeof(PlanSegment)))
		return NULL;
	for (pos = blk->n; pos > 0 && blk->segs[pos - 1].segno >= segno; pos--)
	{
		if (blk->segs[pos - 1].segno == segno)
			return &blk->segs[pos - 1];
	}
	memmove(&blk->segs[pos + 1], &blk->segs[pos], (size_t) (blk->n - pos) * sizeof(PlanSegment));
	s = &blk->segs[pos];
	memset(s, 0, sizeof(*s));
	s->tli = tli;
	s->segno = segno;
	s->stored_bytes = stored;
	s->mtime_us = mtime_us;
	blk->n++;
	return s;
}

bool
plan_segment_set_summary(PlanSegment *s, const WalSummary *sum, int64_t source_mtime_us)
{
	s->source_mtime_us = source_mtime_us;
	if (sum == NULL)
	{
		s->summary_state = PLAN_SUMMARY_NONE;
		return true;
	}
	if (s->summary == NULL)
		s->summary = malloc(sizeof(WalSummary));
	if (s->summary == NULL)
		return false;
	*s->summary = *sum;
	s->summary_state = PLAN_SUMMARY_OK;
	return true;
}

bool
plan_view_add_extra(PlanView *v, const char *name)
{
	char *copy = strdup(name);

	if (copy == NULL || !grow((void **) &v->extra, v->nextra, &v->extra_cap, sizeof(char *)))
	{
		free(copy);
		return false;
	}
	v->extra[v->nextra++] = copy;
	return true;
}

PgbkStatus
plan_view_load_backup(PlanView *v, PlanBackup *b, PgbkError *err)
{
	PgbkStatus st;

	if (b->loaded || b->broken)
		return PGBK_OK;
	if (v->ops == NULL || v->ops->load_backup == NULL)
	{
		b->broken = true;
		b->broken_reason = strdup("its metadata is not available");
		return PGBK_OK;
	}
	v->nbackup_loads++;
	st = v->ops->load_backup(v, b, err);
	if (st == PGBK_OK && b->loaded && v->segsz == 0 && walname_segsz_is_valid(b->wal_segment_size))
		v->segsz = b->wal_segment_size;
	return st;
}

PgbkStatus
plan_view_segment(PlanView *v, uint32_t tli, WalSegNo segno, PlanSegment **out, PgbkError *err)
{
	uint32_t      logid = (uint32_t) (segno / segs_per_logid(v->segsz));
	PlanWalBlock *blk = plan_view_block(v, tli, logid, false);
	int           lo, hi;

	*out = NULL;
	if ((blk == NULL || !blk->listed) && v->ops && v->ops->list_block && !v->all_listed)
	{
		PgbkStatus st;

		blk = plan_view_block(v, tli, logid, true);
		if (blk == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		v->nblock_lists++;
		if ((st = v->ops->list_block(v, blk, err)) != PGBK_OK)
			return st;
		/* list_block may have moved the block array: look it up again */
		blk = plan_view_block(v, tli, logid, false);
		blk->listed = true;
	}
	if (blk == NULL)
		return PGBK_OK;
	lo = 0;
	hi = blk->n - 1;
	while (lo <= hi)
	{
		int mid = (lo + hi) / 2;

		if (blk->segs[mid].segno == segno)
		{
			*out = &blk->segs[mid];
			return PGBK_OK;
		}
		if (blk->segs[mid].segno < segno)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return PGBK_OK;
}

PgbkStatus
plan_view_summary(PlanView *v, PlanSegment *s, PgbkError *err)
{
	if (s->summary_state != PLAN_SUMMARY_UNREAD)
		return PGBK_OK;
	if (v->ops == NULL || v->ops->read_summary == NULL)
	{
		s->summary_state = PLAN_SUMMARY_NONE;
		return PGBK_OK;
	}
	v->nsummary_reads++;
	return v->ops->read_summary(v, s, err);
}

/* The first archived segment of tli after segno. */
static PgbkStatus
view_find_after(PlanView *v, uint32_t tli, WalSegNo segno, bool *found, WalSegNo *next,
                PgbkError *err)
{
	int i, j;

	*found = false;
	if (v->ops && v->ops->find_after && !v->all_listed)
		return v->ops->find_after(v, tli, segno, found, next, err);
	for (i = 0; i < v->nblocks; i++)
	{
		const PlanWalBlock *blk = &v->blocks[i];

		if (blk->tli != tli)
			continue;
		for (j = 0; j < blk->n; j++)
		{
			if (blk->segs[j].segno > segno)
			{
				*found = true;
				*next = blk->segs[j].segno;
				return PGBK_OK;
			}
		}
	}
	return PGBK_OK;
}

/* ------------------------------------------------------------------------
 * Timelines
 * ------------------------------------------------------------------------
 */

uint32_t
plan_newest_timeline(const PlanView *v, uint32_t tli)
{
	/* findNewestTimeLine(): probe tli+1, tli+2, ... while history files exist */
	while (find_history(v, tli + 1) != NULL)
		tli++;
	return tli;
}

static void
history_format_name(char *buf, uint32_t tli)
{
	walname_format_history(buf, tli);
}

/* A chain of one timeline, from the beginning of WAL. */
static PgbkStatus
single_chain(uint32_t tli, WalHistory *out, PgbkError *err)
{
	out->entries = calloc(1, sizeof(WalHistoryEntry));
	if (out->entries == NULL || (out->entries[0].reason = strdup("")) == NULL)
	{
		free(out->entries);
		out->entries = NULL;
		out->n = 0;
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	out->entries[0].tli = tli;
	out->n = 1;
	return PGBK_OK;
}

PgbkStatus
plan_chain(PlanView *v, uint32_t tli, WalHistory *out, PgbkError *err)
{
	const PlanHistoryFile *hf = find_history(v, tli);
	int                    i;

	out->n = 0;
	out->entries = NULL;
	if (hf == NULL)
	{
		char name[WALNAME_BUFLEN];

		if (tli != 1)
		{
			history_format_name(name, tli);
			return pgbk_error(err, PGBK_NOT_FOUND,
			                  "timeline %u does not exist in the repository (its history file %s "
			                  "is missing)",
			                  tli, name);
		}
		return single_chain(1, out, err);
	}
	out->entries = calloc((size_t) hf->history.n, sizeof(WalHistoryEntry));
	if (out->entries == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (i = 0; i < hf->history.n; i++)
	{
		out->entries[i] = hf->history.entries[i];
		out->entries[i].reason = strdup(hf->history.entries[i].reason);
		out->n = i + 1;
		if (out->entries[i].reason == NULL)
		{
			walname_history_free(out);
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
	}
	return PGBK_OK;
}

/*
 * Timeline whose file holds segment segno on this chain: the newest timeline
 * (not older than min_tli) that had begun by that segment, as
 * XLogFileReadAnyTLI looks for it.
 */
uint32_t
plan_chain_tli_of_seg(const WalHistory *chain, WalSegNo segno, uint32_t segsz, uint32_t min_tli)
{
	int i;

	for (i = chain->n - 1; i >= 0; i--)
	{
		const WalHistoryEntry *e = &chain->entries[i];

		if (e->tli < min_tli)
			break;
		if (e->begin == WAL_INVALID_LSN || walname_lsn_to_segno(e->begin, segsz) <= segno)
			return e->tli;
	}
	return min_tli;
}

/* ------------------------------------------------------------------------
 * The decision
 * ------------------------------------------------------------------------
 */

/* State of one planning run with one candidate backup. */
typedef struct Walk
{
	PlanView         *v;
	const PlanTarget *t;
	PlanResult       *res;
	const PlanBackup *b;
	const WalHistory *chain;
	uint32_t          segsz;
	WalSegNo          s0;      /* segment of the backup's start */
	WalSegNo          stopseg; /* segment holding the end of the backup */
	uint32_t          s0_tli;
	/* accounting of the walk so far */
	uint64_t nseg;
	uint64_t bytes;
} Walk;

static void
seg_name(const Walk *w, WalSegNo segno, char *buf)
{
	walname_format_segment(buf, plan_chain_tli_of_seg(w->chain, segno, w->segsz, w->b->timeline),
	                       segno, w->segsz);
}

static PgbkStatus
walk_get(Walk *w, WalSegNo segno, PlanSegment **out, PgbkError *err)
{
	uint32_t tli = plan_chain_tli_of_seg(w->chain, segno, w->segsz, w->b->timeline);

	return plan_view_segment(w->v, tli, segno, out, err);
}

/*
 * Is there archived WAL on the chain after segment segno?  *next gets the
 * first such segment.
 */
static PgbkStatus
walk_wal_after(Walk *w, WalSegNo segno, bool *found, WalSegNo *next, PgbkError *err)
{
	uint32_t owner = plan_chain_tli_of_seg(w->chain, segno, w->segsz, w->b->timeline);
	int      i;

	*found = false;
	for (i = 0; i < w->chain->n; i++)
	{
		const WalHistoryEntry *e = &w->chain->entries[i];
		bool                   f;
		WalSegNo               n;
		PgbkStatus             st;

		if (e->tli < owner)
			continue;
		if ((st = view_find_after(w->v, e->tli, segno, &f, &n, err)) != PGBK_OK)
			return st;
		/* a segment of an older timeline past its switch is not on the chain */
		if (f && plan_chain_tli_of_seg(w->chain, n, w->segsz, w->b->timeline) != e->tli)
		{
			/* look for this timeline's own segments further on: rare, ignore */
			f = false;
		}
		if (f && (!*found || n < *next))
		{
			*found = true;
			*next = n;
		}
	}
	return PGBK_OK;
}

static void set_reason(PlanResult *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_reason(PlanResult *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	res->recoverable = false;
}

static void add_note(PlanResult *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add_note(PlanResult *res, const char *fmt, ...)
{
	va_list ap;
	size_t  n = strlen(res->note);

	if (n > 0 && n + 2 < sizeof(res->note))
	{
		strcat(res->note, " ");
		n++;
	}
	va_start(ap, fmt);
	vsnprintf(res->note + n, sizeof(res->note) - n, fmt, ap);
	va_end(ap);
}

/* How the target reads in reasons (as bk_restore_point writes it). */
static char *
target_desc(const PlanTarget *t, char *buf, size_t len)
{
	switch (t->kind)
	{
		case PLAN_TARGET_TIME:
			return plan_format_time(t->time_us, buf, len);
		case PLAN_TARGET_LSN:
		{
			char l[WALNAME_LSN_BUFLEN];

			snprintf(buf, len, "LSN %s", walname_format_lsn(l, t->lsn));
			return buf;
		}
		case PLAN_TARGET_NAME:
			snprintf(buf, len, "restore point \"%s\"", t->name);
			return buf;
		case PLAN_TARGET_IMMEDIATE:
			snprintf(buf, len, "the end of the backup");
			return buf;
		default:
			snprintf(buf, len, "the end of the archived WAL");
			return buf;
	}
}

/* The reason for a segment missing at segno (no "later WAL" check here). */
static void
reason_missing(Walk *w, WalSegNo segno)
{
	char name[WALNAME_BUFLEN], desc[WALSCAN_RP_NAME_LEN + 32];

	seg_name(w, segno, name);
	target_desc(w->t, desc, sizeof(desc));
	set_reason(w->res,
	           "WAL segment %s is missing from the repository (needed to go from backup %s to %s)",
	           name, w->b->id, desc);
}

/* Fill the result's WAL range: segments s0..last along the chain. */
static PgbkStatus
walk_finish(Walk *w, WalSegNo last, PgbkError *err)
{
	PlanResult *res = w->res;
	WalSegNo    s;

	res->recoverable = true;
	res->reason[0] = '\0';
	res->have_wal = true;
	seg_name(w, w->s0, res->first_wal);
	seg_name(w, last, res->last_wal);
	res->nsegments = 0;
	res->wal_bytes = 0;
	for (s = w->s0; s <= last; s++)
	{
		PlanSegment *seg;
		PgbkStatus   st;

		if ((st = walk_get(w, s, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			/* callers walked this range: cannot happen */
			reason_missing(w, s);
			res->have_wal = false;
			return PGBK_OK;
		}
		res->nsegments++;
		res->wal_bytes += seg->stored_bytes;
	}
	return PGBK_OK;
}

/* Does a segment's summary end with a record that may be a commit/abort? */
static bool
tail_may_commit(const WalSummary *s)
{
	if (s->end_kind != WALSCAN_END_SEGMENT)
		return false;
	return s->cont == WALSCAN_CONT_COMMIT || s->cont == WALSCAN_CONT_ABORT ||
	       s->cont == WALSCAN_CONT_UNKNOWN;
}

/* Is the segment nothing but the continuation of an earlier record? */
static bool
all_continuation(const WalSummary *s)
{
	return s->nrecords == 0 && s->end_kind == WALSCAN_END_SEGMENT &&
	       (s->cont == WALSCAN_CONT_UNKNOWN || s->cont_lsn == WAL_INVALID_LSN);
}

/*
 * The newest commit/abort time in the archived WAL from segment from down to
 * the backup's start (reads summaries backwards until one has commits).
 */
static PgbkStatus
newest_commit_before(Walk *w, WalSegNo from, int64_t *when, PgbkError *err)
{
	WalSegNo s;

	*when = 0;
	for (s = from + 1; s-- > w->s0;)
	{
		PlanSegment *seg;
		PgbkStatus   st;

		if ((st = walk_get(w, s, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
			break;
		if ((st = plan_view_summary(w->v, seg, err)) != PGBK_OK)
			return st;
		if (seg->summary_state == PLAN_SUMMARY_OK &&
		    seg->summary->ncommits + seg->summary->naborts > 0)
		{
			*when = seg->summary->xact_max_time;
			return PGBK_OK;
		}
	}
	return PGBK_OK;
}

typedef enum WalkOutcome
{
	WALK_DONE = 0, /* res says recoverable or why not, for good */
	WALK_TRY_OLDER /* this backup cannot; an older one might (res->reason says why) */
} WalkOutcome;

static void
set_settings_tli(Walk *w, uint32_t tli)
{
	snprintf(w->res->recovery_target_timeline, sizeof(w->res->recovery_target_timeline), "%u", tli);
}

/*
 * A time target: walk from the backup's start until the first segment that
 * proves recovery stops (a commit/abort after T, complete).
 */
static PgbkStatus
walk_time(Walk *w, WalkOutcome *outcome, PgbkError *err)
{
	const PlanTarget *t = w->t;
	PlanResult       *res = w->res;
	int64_t           floor = t->time_us - PLAN_MTIME_MARGIN_US;
	bool              inclusive = !t->exclusive;
	bool              pending = false; /* a commit after T continues into this segment */
	int64_t           pending_time = 0;
	bool              have_quiet = false, unknown_seen = false;
	WalLsn            quiet_lsn = 0;
	WalSegNo          quiet_seg = 0;
	int64_t           quiet_written = 0;
	bool              quiet_rp = false;
	int64_t           newest_commit = 0;
	char              tbuf[PLAN_TIME_LEN], cbuf[PLAN_TIME_LEN], name[WALNAME_BUFLEN];
	WalSegNo          segno;
	PgbkStatus        st;

	*outcome = WALK_DONE;
	for (segno = w->s0;; segno++)
	{
		PlanSegment      *seg;
		const WalSummary *sum;
		WalScanStop       stop;
		uint32_t          i;

		if ((st = walk_get(w, segno, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			bool     later;
			WalSegNo next;

			if (segno <= w->stopseg)
			{
				reason_missing(w, segno);
				return PGBK_OK;
			}
			if (have_quiet)
				break;
			if ((st = walk_wal_after(w, segno, &later, &next, err)) != PGBK_OK)
				return st;
			if (later)
			{
				reason_missing(w, segno);
				return PGBK_OK;
			}
			seg_name(w, segno, name);
			plan_format_time(t->time_us, tbuf, sizeof(tbuf));
			if (pending)
			{
				plan_format_time(pending_time, cbuf, sizeof(cbuf));
				set_reason(res,
				           "the first transaction that ended after %s (at %s) continues into WAL "
				           "segment %s, which has not been archived yet",
				           tbuf, cbuf, name);
				return PGBK_OK;
			}
			if (newest_commit == 0 && segno > w->s0 &&
			    (st = newest_commit_before(w, segno - 1, &newest_commit, err)) != PGBK_OK)
				return st;
			seg_name(w, segno - 1, name);
			if (newest_commit != 0)
				plan_format_time(newest_commit, cbuf, sizeof(cbuf));
			else
				strcpy(cbuf, "none");
			set_reason(res,
			           "no transaction committed after %s has been archived yet (the newest "
			           "archived commit is at %s)",
			           tbuf, cbuf);
			add_note(res, "The archived WAL ends with segment %s.", name);
			return PGBK_OK;
		}
		if (!pending && seg->mtime_us < floor)
			continue;
		if ((st = plan_view_summary(w->v, seg, err)) != PGBK_OK)
			return st;
		if (seg->summary_state != PLAN_SUMMARY_OK)
		{
			/* proves nothing: go on to a segment that does */
			pending = false;
			unknown_seen = true;
			continue;
		}
		sum = seg->summary;
		if (pending)
		{
			if (all_continuation(sum))
				continue;
			/* the commit that continued from the previous segment ends here */
			res->stop_time_us = pending_time;
			st = walk_finish(w, segno, err);
			break;
		}
		if (sum->ncommits + sum->naborts > 0 && sum->xact_max_time > newest_commit)
			newest_commit = sum->xact_max_time;
		stop = walscan_time_target_stop(sum, t->time_us, inclusive);
		if (stop == WALSCAN_STOP_HERE)
		{
			if (segno < w->stopseg)
			{
				/*
				 * Recovery would stop before the backup is consistent
				 * (PostgreSQL: "requested recovery stop point is before
				 * consistent recovery point").  Only clock trouble gets here.
				 */
				plan_format_time(t->time_us, tbuf, sizeof(tbuf));
				seg_name(w, segno, name);
				set_reason(res,
				           "a transaction that committed after %s is in WAL segment %s, before "
				           "backup %s ended: recovery from it would stop before it is "
				           "consistent",
				           tbuf, name, w->b->id);
				*outcome = WALK_TRY_OLDER;
				return PGBK_OK;
			}
			res->stop_time_us = 0;
			st = walk_finish(w, segno, err);
			break;
		}
		if (stop == WALSCAN_STOP_NEXT)
		{
			pending = true;
			pending_time = sum->cont_time;
			continue;
		}
		if (stop == WALSCAN_STOP_MAYBE_NEXT)
		{
			/* its last record might be a commit after T: no quiet stop past it */
			unknown_seen = true;
			continue;
		}
		if (have_quiet || unknown_seen)
			continue;
		/*
		 * Quiet database: WAL that provably covers T without a commit after
		 * T.  A restore point made at or after T, or the segment written at
		 * or after T (its file's mtime, kept to the microsecond) whose last
		 * record is not a commit it cannot describe.  No margin: the records
		 * in a file were all written by its last write.
		 */
		for (i = 0; i < sum->nrestore_points; i++)
		{
			if (sum->restore_points[i].time_us >= t->time_us &&
			    sum->restore_points[i].lsn >= w->b->stop_lsn)
			{
				have_quiet = true;
				quiet_rp = true;
				quiet_lsn = sum->restore_points[i].lsn;
				quiet_written = sum->restore_points[i].time_us;
				quiet_seg = segno;
				break;
			}
		}
		if (!have_quiet && seg->source_mtime_us != 0 && seg->source_mtime_us >= t->time_us &&
		    sum->nrecords > 0 && sum->last_lsn >= w->b->stop_lsn && !tail_may_commit(sum))
		{
			have_quiet = true;
			quiet_lsn = sum->last_lsn;
			quiet_written = seg->source_mtime_us;
			quiet_seg = segno;
		}
	}
	if (st != PGBK_OK)
		return st;
	if (res->recoverable)
	{
		snprintf(res->recovery_target_name, sizeof(res->recovery_target_name),
		         "recovery_target_time");
		plan_format_time(t->time_us, res->recovery_target_value,
		                 sizeof(res->recovery_target_value));
		res->recovery_target_inclusive = inclusive;
		return PGBK_OK;
	}
	if (res->reason[0] != '\0')
		return PGBK_OK;

	/* the quiet case */
	if ((st = walk_finish(w, quiet_seg, err)) != PGBK_OK || !res->recoverable)
		return st;
	res->quiet = true;
	res->stop_lsn = quiet_lsn;
	res->stop_time_us = 0;
	snprintf(res->recovery_target_name, sizeof(res->recovery_target_name), "recovery_target_lsn");
	walname_format_lsn(res->recovery_target_value, quiet_lsn);
	res->recovery_target_inclusive = true;
	plan_format_time(t->time_us, tbuf, sizeof(tbuf));
	if (newest_commit == 0 &&
	    (st = newest_commit_before(w, quiet_seg, &newest_commit, err)) != PGBK_OK)
		return st;
	if (newest_commit != 0)
		plan_format_time(newest_commit, cbuf, sizeof(cbuf));
	else
		snprintf(cbuf, sizeof(cbuf), "the start of backup %s", w->b->id);
	{
		char wbuf[PLAN_TIME_LEN], lbuf[WALNAME_LSN_BUFLEN];

		plan_format_time(quiet_written, wbuf, sizeof(wbuf));
		add_note(res,
		         "The target falls in a quiet period: no transaction committed between %s and %s "
		         "(%s), so the database at %s is the database at LSN %s; recovery stops there "
		         "instead of waiting for a commit after the target.",
		         cbuf, wbuf,
		         quiet_rp ? "when a restore point was made" : "when that WAL was written", tbuf,
		         walname_format_lsn(lbuf, quiet_lsn));
	}
	return PGBK_OK;
}

/* An LSN target: the first record starting at or after L must be archived. */
static PgbkStatus
walk_lsn(Walk *w, WalkOutcome *outcome, PgbkError *err)
{
	const PlanTarget *t = w->t;
	PlanResult       *res = w->res;
	WalSegNo          lseg = walname_lsn_to_segno(t->lsn, w->segsz);
	bool              pending = false;
	char              lbuf[WALNAME_LSN_BUFLEN], name[WALNAME_BUFLEN];
	WalSegNo          segno;
	PgbkStatus        st = PGBK_OK;

	*outcome = WALK_DONE;
	walname_format_lsn(lbuf, t->lsn);
	for (segno = w->s0;; segno++)
	{
		PlanSegment      *seg;
		const WalSummary *sum;

		if ((st = walk_get(w, segno, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			bool     later;
			WalSegNo next;

			if (segno > w->stopseg &&
			    (st = walk_wal_after(w, segno, &later, &next, err)) != PGBK_OK)
				return st;
			if (segno <= w->stopseg || later)
				reason_missing(w, segno);
			else if (pending)
			{
				seg_name(w, segno, name);
				set_reason(res,
				           "the first WAL record at or after LSN %s continues into WAL segment "
				           "%s, which has not been archived yet",
				           lbuf, name);
			}
			else
			{
				seg_name(w, segno - 1, name);
				set_reason(res, "the WAL up to LSN %s has not been archived yet", lbuf);
				add_note(res, "The archived WAL ends with segment %s.", name);
			}
			return PGBK_OK;
		}
		if (segno < lseg && !pending)
			continue;
		if ((st = plan_view_summary(w->v, seg, err)) != PGBK_OK)
			return st;
		if (seg->summary_state != PLAN_SUMMARY_OK)
		{
			pending = false;
			continue;
		}
		sum = seg->summary;
		if (pending)
		{
			if (all_continuation(sum))
				continue;
			break;
		}
		if (sum->nrecords > 0 && sum->last_lsn >= t->lsn)
			break;
		if (sum->end_kind == WALSCAN_END_SEGMENT && sum->cont_lsn != WAL_INVALID_LSN &&
		    sum->cont_lsn >= t->lsn)
			pending = true;
	}
	if ((st = walk_finish(w, segno, err)) != PGBK_OK || !res->recoverable)
		return st;
	res->stop_lsn = t->lsn;
	snprintf(res->recovery_target_name, sizeof(res->recovery_target_name), "recovery_target_lsn");
	snprintf(res->recovery_target_value, sizeof(res->recovery_target_value), "%s", lbuf);
	res->recovery_target_inclusive = !t->exclusive;
	return PGBK_OK;
}

/* State of a restore point search across candidate backups (newest first). */
typedef struct NameSearch
{
	bool            active;    /* scanned something with this chain */
	uint32_t        chain_tli; /* the chain it was made on */
	WalSegNo        scan_end;  /* segments >= this are scanned */
	bool            found;
	WalSegNo        found_seg;
	WalRestorePoint rp;
	bool            gap; /* a missing segment before found (or anywhere, if not found) */
	WalSegNo        gap_seg;
	bool            dropped; /* a summary left restore points out */
	bool            unknown; /* a segment without summary */
} NameSearch;

/*
 * Scan segments [from, end) of the chain for the first restore point named
 * t->name, reading every summary.  end == 0: to the end of the archived WAL.
 */
static PgbkStatus
scan_names(Walk *w, NameSearch *ns, WalSegNo from, WalSegNo end, PgbkError *err)
{
	WalSegNo   segno = from;
	PgbkStatus st;

	while (end == 0 || segno < end)
	{
		PlanSegment *seg;
		uint32_t     i;

		if ((st = walk_get(w, segno, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			bool     later;
			WalSegNo next;

			if ((st = walk_wal_after(w, segno, &later, &next, err)) != PGBK_OK)
				return st;
			if (!later)
				break; /* the end of the archived WAL */
			if (!ns->gap || segno < ns->gap_seg)
			{
				/* the lowest missing segment so far */
				ns->gap = true;
				ns->gap_seg = segno;
			}
			if (end != 0 && next >= end)
				break;
			segno = next;
			continue;
		}
		if ((st = plan_view_summary(w->v, seg, err)) != PGBK_OK)
			return st;
		if (seg->summary_state != PLAN_SUMMARY_OK)
		{
			ns->unknown = true;
			segno++;
			continue;
		}
		if (seg->summary->rp_dropped > 0)
			ns->dropped = true;
		for (i = 0; i < seg->summary->nrestore_points; i++)
		{
			if (strcmp(seg->summary->restore_points[i].name, w->t->name) == 0)
			{
				ns->found = true;
				ns->found_seg = segno;
				ns->rp = seg->summary->restore_points[i];
				return PGBK_OK;
			}
		}
		segno++;
	}
	return PGBK_OK;
}

static PgbkStatus
walk_name(Walk *w, NameSearch *ns, WalkOutcome *outcome, PgbkError *err)
{
	PlanResult *res = w->res;
	uint32_t    chain_tli = w->chain->entries[w->chain->n - 1].tli;
	PgbkStatus  st;
	char        lbuf[WALNAME_LSN_BUFLEN], tbuf[PLAN_TIME_LEN], name[WALNAME_BUFLEN];

	*outcome = WALK_DONE;
	if (ns->active && ns->chain_tli != chain_tli)
		memset(ns, 0, sizeof(*ns));
	if (!ns->active)
	{
		st = scan_names(w, ns, w->s0, 0, err);
		ns->active = true;
		ns->chain_tli = chain_tli;
	}
	else if (w->s0 < ns->scan_end)
	{
		/* an earlier occurrence, or a gap, between this backup and the newer one */
		NameSearch older = *ns;

		older.found = false;
		older.gap = false;
		st = scan_names(w, &older, w->s0, ns->scan_end, err);
		if (st == PGBK_OK)
		{
			if (older.gap && (!ns->gap || older.gap_seg < ns->gap_seg))
			{
				ns->gap = true;
				ns->gap_seg = older.gap_seg;
			}
			if (older.found)
			{
				ns->found = true;
				ns->found_seg = older.found_seg;
				ns->rp = older.rp;
			}
			ns->dropped |= older.dropped;
			ns->unknown |= older.unknown;
		}
	}
	else
		st = PGBK_OK;
	if (st != PGBK_OK)
		return st;
	if (w->s0 < ns->scan_end || ns->scan_end == 0)
		ns->scan_end = w->s0;

	if (!ns->found)
	{
		set_reason(res, "restore point \"%s\" not found in the repository", w->t->name);
		add_note(res, "It is not in the archived WAL after the start of backup %s.", w->b->id);
		if (ns->gap)
		{
			seg_name(w, ns->gap_seg, name);
			add_note(res,
			         "WAL segment %s is missing from the repository: a restore point after it "
			         "would not be reachable anyway.",
			         name);
		}
		if (ns->dropped)
			add_note(res, "Some archived segments hold more restore points than their summary "
			              "lists: the name may be in one of them.");
		*outcome = WALK_TRY_OLDER;
		return PGBK_OK;
	}
	if (ns->gap && ns->gap_seg < ns->found_seg)
	{
		reason_missing(w, ns->gap_seg);
		return PGBK_OK;
	}
	if (ns->rp.lsn < w->b->stop_lsn)
	{
		plan_format_time(ns->rp.time_us, tbuf, sizeof(tbuf));
		set_reason(res,
		           "restore point \"%s\" (at %s, LSN %s) was made while backup %s was running: "
		           "recovery from it cannot stop there",
		           w->t->name, tbuf, walname_format_lsn(lbuf, ns->rp.lsn), w->b->id);
		*outcome = WALK_TRY_OLDER;
		return PGBK_OK;
	}
	if ((st = walk_finish(w, ns->found_seg, err)) != PGBK_OK || !res->recoverable)
		return st;
	res->stop_lsn = ns->rp.lsn;
	res->stop_time_us = ns->rp.time_us;
	snprintf(res->recovery_target_name, sizeof(res->recovery_target_name), "recovery_target_name");
	snprintf(res->recovery_target_value, sizeof(res->recovery_target_value), "%s", w->t->name);
	res->recovery_target_inclusive = true;
	return PGBK_OK;
}

/* 'latest' and 'immediate': the backup's own WAL, then (latest) all that follows. */
static PgbkStatus
walk_latest(Walk *w, PgbkError *err)
{
	PlanResult *res = w->res;
	bool        immediate = w->t->kind == PLAN_TARGET_IMMEDIATE;
	WalSegNo    segno;
	PgbkStatus  st;

	for (segno = w->s0;; segno++)
	{
		PlanSegment *seg;

		if (immediate && segno > w->stopseg)
			break;
		if ((st = walk_get(w, segno, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			bool     later;
			WalSegNo next;
			char     name[WALNAME_BUFLEN], nname[WALNAME_BUFLEN];

			if (segno <= w->stopseg)
			{
				reason_missing(w, segno);
				return PGBK_OK;
			}
			if ((st = walk_wal_after(w, segno, &later, &next, err)) != PGBK_OK)
				return st;
			if (later)
			{
				seg_name(w, segno, name);
				seg_name(w, next, nname);
				add_note(res,
				         "WAL segment %s is missing from the repository: recovery stops before "
				         "it, and the WAL archived from %s on cannot be replayed.",
				         name, nname);
			}
			break;
		}
	}
	if ((st = walk_finish(w, segno - 1, err)) != PGBK_OK || !res->recoverable)
		return st;
	if (immediate)
	{
		res->stop_lsn = w->b->stop_lsn;
		res->stop_time_us = w->b->stop_time_us;
		snprintf(res->recovery_target_name, sizeof(res->recovery_target_name), "recovery_target");
		snprintf(res->recovery_target_value, sizeof(res->recovery_target_value), "immediate");
	}
	else
		st = newest_commit_before(w, segno - 1, &res->stop_time_us, err);
	res->recovery_target_inclusive = true;
	return st;
}

/* ------------------------------------------------------------------------
 * Backup chains (issue 12): a full and the incrementals built on it
 * ------------------------------------------------------------------------
 */

PlanBackup *
plan_view_find_backup(PlanView *v, const char *id)
{
	int lo = 0, hi = v->nbackups - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(v->backups[mid].id, id);

		if (c == 0)
			return &v->backups[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static void chain_broken(PlanBackup *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
chain_broken(PlanBackup *b, const char *fmt, ...)
{
	char    buf[PLAN_REASON_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(b->chain_reason);
	b->chain_reason = strdup(buf);
	b->chain_state = PLAN_CHAIN_BROKEN;
}

PgbkStatus
plan_backup_chain(PlanView *v, PlanBackup *b, char (*ids)[MANIFEST_ID_LEN], int *n, PgbkError *err)
{
	PlanBackup *list[PLAN_CHAIN_MAX];
	PlanBackup *cur = b;
	int         len = 0, i;
	PgbkStatus  st;

	if (n)
		*n = 0;
	if (b->chain_state == PLAN_CHAIN_BROKEN || (b->chain_state == PLAN_CHAIN_OK && ids == NULL))
		return PGBK_OK;
	if ((st = plan_view_load_backup(v, b, err)) != PGBK_OK)
		return st;
	if (b->broken)
	{
		chain_broken(b, "%s", b->broken_reason ? b->broken_reason : "its manifest is unreadable");
		return PGBK_OK;
	}
	for (;;)
	{
		PlanBackup *parent;

		if (len == PLAN_CHAIN_MAX)
		{
			chain_broken(b, "its chain is longer than %d backups", PLAN_CHAIN_MAX);
			return PGBK_OK;
		}
		list[len++] = cur;
		if (!cur->incremental)
			break;
		parent = plan_view_find_backup(v, cur->parent);
		if (parent == NULL)
		{
			if (cur == b)
				chain_broken(b,
				             "it is an incremental backup and its parent, backup %s, is "
				             "missing from the repository",
				             cur->parent);
			else
				chain_broken(b,
				             "it is an incremental backup and its chain needs backup %s (the "
				             "parent of %s), which is missing from the repository",
				             cur->parent, cur->id);
			return PGBK_OK;
		}
		/* ids are start times: a parent started before its child */
		if (strcmp(parent->id, cur->id) >= 0)
		{
			chain_broken(b, "its chain names backup %s as the parent of %s, which is not older",
			             parent->id, cur->id);
			return PGBK_OK;
		}
		if ((st = plan_view_load_backup(v, parent, err)) != PGBK_OK)
			return st;
		if (parent->broken)
		{
			chain_broken(b,
			             "it is an incremental backup and its chain needs backup %s, which "
			             "cannot be read: %s",
			             parent->id,
			             parent->broken_reason ? parent->broken_reason
			                                   : "its manifest is unreadable");
			return PGBK_OK;
		}
		if (parent->system_identifier != 0 && cur->system_identifier != 0 &&
		    parent->system_identifier != cur->system_identifier)
		{
			chain_broken(b, "its chain needs backup %s, which is of another database system",
			             parent->id);
			return PGBK_OK;
		}
		cur = parent;
	}
	b->chain_state = PLAN_CHAIN_OK;
	b->chain_len = len;
	for (i = 0; ids != NULL && i < len; i++)
		snprintf(ids[i], MANIFEST_ID_LEN, "%s", list[len - 1 - i]->id);
	if (n)
		*n = len;
	return PGBK_OK;
}

char *
plan_format_chain(const PlanResult *res, char *buf, size_t len)
{
	size_t used = 0;
	int    i;

	buf[0] = '\0';
	for (i = 0; i < res->chain_len && used < len; i++)
	{
		int k = snprintf(buf + used, len - used, "%s%s", i ? " \u2190 " : "", res->chain[i]);

		if (k < 0)
			break;
		used += (size_t) k;
	}
	return buf;
}

PgbkStatus
plan_expiry_keep_chains(PlanView *v, bool *keep, char (*needed_by)[MANIFEST_ID_LEN], PgbkError *err)
{
	int        i;
	PgbkStatus st;

	for (i = 0; i < v->nbackups; i++)
		needed_by[i][0] = '\0';
	/* newest first: needed_by names the newest kept backup that reads it */
	for (i = v->nbackups - 1; i >= 0; i--)
	{
		PlanBackup *cur = &v->backups[i];
		int         depth = 0;

		if (!keep[i])
			continue;
		/* follow the parents that are there, even when the chain is broken below */
		for (;;)
		{
			PlanBackup *parent;
			int         k;

			if ((st = plan_view_load_backup(v, cur, err)) != PGBK_OK)
				return st;
			if (!cur->loaded || !cur->incremental || ++depth > PLAN_CHAIN_MAX)
				break;
			parent = plan_view_find_backup(v, cur->parent);
			if (parent == NULL || strcmp(parent->id, cur->id) >= 0)
				break;
			k = (int) (parent - v->backups);
			if (!keep[k])
			{
				keep[k] = true;
				snprintf(needed_by[k], MANIFEST_ID_LEN, "%s", v->backups[i].id);
			}
			cur = parent;
		}
	}
	return PGBK_OK;
}

/* A backup id "YYYYMMDDTHHMMSSZ" as Unix microseconds. */
static bool
backup_id_time(const char *id, int64_t *us)
{
	return pgbk_time_parse(id, PGBK_TIME_COMPACT, us, NULL) == PGBK_OK;
}

/* Does backup b meet the target's "ended before" rule? */
static bool
backup_fits(const PlanBackup *b, const PlanTarget *t)
{
	switch (t->kind)
	{
		case PLAN_TARGET_TIME:
			return b->stop_time_us < t->time_us;
		case PLAN_TARGET_LSN:
			return b->stop_lsn <= t->lsn;
		default:
			return true;
	}
}

/* Why b does not fit (for a forced backup). */
static void
reason_not_fits(PlanResult *res, const PlanBackup *b, const PlanTarget *t)
{
	char a[PLAN_TIME_LEN], c[PLAN_TIME_LEN], l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];

	if (t->kind == PLAN_TARGET_TIME)
		set_reason(res, "backup %s ended at %s, not before the target %s", b->id,
		           plan_format_time(b->stop_time_us, a, sizeof(a)),
		           plan_format_time(t->time_us, c, sizeof(c)));
	else
		set_reason(res, "backup %s ends at LSN %s, after the target LSN %s", b->id,
		           walname_format_lsn(l1, b->stop_lsn), walname_format_lsn(l2, t->lsn));
}

PgbkStatus
plan_make(PlanView *v, const PlanTarget *t, PlanResult *res, PgbkError *err)
{
	int         i, first, last;
	PgbkStatus  st = PGBK_OK;
	NameSearch  ns;
	bool        any_fit = false;
	char        chain_reason[PLAN_REASON_LEN] = "";
	char        other_reason[PLAN_REASON_LEN] = "";
	char        other_note[PLAN_REASON_LEN] = "";
	PlanBackup *oldest_loaded = NULL;
	int64_t     id_time;
	bool        forced = t->backup_id[0] != '\0';

	memset(res, 0, sizeof(*res));
	memset(&ns, 0, sizeof(ns));

	if (t->kind == PLAN_TARGET_NAME && t->name[0] == '\0')
		return pgbk_error(err, PGBK_ERR_USAGE, "the restore point name is empty");
	if (v->nbackups == 0)
	{
		set_reason(res, "no base backup exists in the repository");
		return PGBK_OK;
	}
	first = 0;
	last = v->nbackups - 1;
	if (t->backup_id[0] != '\0')
	{
		for (i = 0; i < v->nbackups; i++)
			if (strcmp(v->backups[i].id, t->backup_id) == 0)
				break;
		if (i == v->nbackups)
		{
			set_reason(res,
			           "backup %s not found in the repository (no complete backup has that id)",
			           t->backup_id);
			return PGBK_OK;
		}
		first = last = i;
	}

	for (i = last; i >= first; i--)
	{
		PlanBackup            *b = &v->backups[i];
		uint32_t               tli;
		WalHistory             chain;
		const WalHistoryEntry *e;
		Walk                   w;
		WalkOutcome            outcome = WALK_DONE;

		/* ids are start times: one that started after T cannot have ended before */
		if (t->kind == PLAN_TARGET_TIME && !forced && !b->loaded &&
		    backup_id_time(b->id, &id_time) && id_time >= t->time_us)
			continue;
		if ((st = plan_view_load_backup(v, b, err)) != PGBK_OK)
			return st;
		if (b->broken)
		{
			snprintf(other_reason, sizeof(other_reason), "backup %s cannot be used: %s", b->id,
			         b->broken_reason ? b->broken_reason : "its manifest is unreadable");
			continue;
		}
		oldest_loaded = b;
		if (!walname_segsz_is_valid(b->wal_segment_size))
		{
			snprintf(
			    other_reason, sizeof(other_reason),
			    "backup %s cannot be used: its manifest gives an invalid WAL segment size (%u)",
			    b->id, b->wal_segment_size);
			continue;
		}
		if (!backup_fits(b, t))
		{
			if (forced)
			{
				reason_not_fits(res, b, t);
				return PGBK_OK;
			}
			continue;
		}
		any_fit = true;

		/* an incremental is usable only with its whole chain */
		if ((st = plan_backup_chain(v, b, NULL, NULL, err)) != PGBK_OK)
			return st;
		if (b->chain_state == PLAN_CHAIN_BROKEN)
		{
			snprintf(other_reason, sizeof(other_reason), "backup %s cannot be used: %s", b->id,
			         b->chain_reason);
			other_note[0] = '\0';
			continue;
		}

		/* the timeline chain, resolved from this backup as PostgreSQL does */
		if (t->tli_mode == PLAN_TLI_NUMBER)
			tli = t->tli;
		else if (t->tli_mode == PLAN_TLI_CURRENT)
			tli = b->timeline;
		else
			tli = plan_newest_timeline(v, b->timeline);
		st = plan_chain(v, tli, &chain, err);
		if (st == PGBK_NOT_FOUND && tli == b->timeline)
		{
			/*
			 * The backup's own timeline needs no history (PostgreSQL assumes
			 * "no parents" when the file is missing): e.g. a promoted copy
			 * whose archiving started after its promotion.
			 */
			pgbk_error_clear(err);
			st = single_chain(tli, &chain, err);
		}
		if (st == PGBK_NOT_FOUND)
		{
			set_reason(res, "%s", err->msg);
			pgbk_error_clear(err);
			return PGBK_OK;
		}
		if (st != PGBK_OK)
			return st;
		e = walname_history_find(&chain, b->timeline);
		if (e == NULL || (e->end != WAL_INVALID_LSN && b->stop_lsn > e->end))
		{
			char l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];

			if (e == NULL)
				snprintf(chain_reason, sizeof(chain_reason),
				         "backup %s is on timeline %u, which is not in the history of timeline %u",
				         b->id, b->timeline, tli);
			else
				snprintf(chain_reason, sizeof(chain_reason),
				         "timeline %u forked off timeline %u at %s, before backup %s ended (%s)",
				         tli, b->timeline, walname_format_lsn(l1, e->end), b->id,
				         walname_format_lsn(l2, b->stop_lsn));
			walname_history_free(&chain);
			if (forced)
			{
				set_reason(res, "%s", chain_reason);
				return PGBK_OK;
			}
			continue;
		}

		memset(res, 0, sizeof(*res));
		memset(&w, 0, sizeof(w));
		w.v = v;
		w.t = t;
		w.res = res;
		w.b = b;
		w.chain = &chain;
		v->segsz = v->segsz ? v->segsz : b->wal_segment_size;
		w.segsz = b->wal_segment_size;
		w.s0 = walname_lsn_to_segno(b->start_lsn, w.segsz);
		w.stopseg = walname_end_lsn_to_segno(b->stop_lsn, w.segsz);
		res->have_backup = true;
		res->backup = *b;
		res->backup.broken_reason = NULL;
		res->backup.chain_reason = NULL;
		if ((st = plan_backup_chain(v, b, res->chain, &res->chain_len, err)) != PGBK_OK)
		{
			walname_history_free(&chain);
			return st;
		}
		res->timeline = tli;
		set_settings_tli(&w, tli);

		switch (t->kind)
		{
			case PLAN_TARGET_TIME:
				st = walk_time(&w, &outcome, err);
				break;
			case PLAN_TARGET_LSN:
				st = walk_lsn(&w, &outcome, err);
				break;
			case PLAN_TARGET_NAME:
				st = walk_name(&w, &ns, &outcome, err);
				break;
			default:
				st = walk_latest(&w, err);
				break;
		}
		walname_history_free(&chain);
		if (st != PGBK_OK)
			return st;
		if (outcome == WALK_DONE)
			return PGBK_OK;
		/* try an older backup; keep this reason if none does better */
		snprintf(other_reason, sizeof(other_reason), "%s", res->reason);
		snprintf(other_note, sizeof(other_note), "%s", res->note);
	}

	/* no backup could do it */
	memset(res, 0, sizeof(*res));
	if (other_reason[0] != '\0' && (any_fit || t->kind == PLAN_TARGET_NAME))
	{
		set_reason(res, "%s", other_reason);
		snprintf(res->note, sizeof(res->note), "%s", other_note);
		return PGBK_OK;
	}
	if (chain_reason[0] != '\0')
	{
		set_reason(res, "%s", chain_reason);
		return PGBK_OK;
	}
	/* the oldest readable backup, for the message */
	for (i = 0; i < v->nbackups && !any_fit; i++)
	{
		if ((st = plan_view_load_backup(v, &v->backups[i], err)) != PGBK_OK)
			return st;
		if (v->backups[i].loaded)
		{
			oldest_loaded = &v->backups[i];
			break;
		}
	}
	if (!any_fit && oldest_loaded != NULL)
	{
		char a[PLAN_TIME_LEN], c[PLAN_TIME_LEN], l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];

		if (t->kind == PLAN_TARGET_TIME)
			set_reason(res, "no base backup ended before %s (the oldest ends at %s)",
			           plan_format_time(t->time_us, c, sizeof(c)),
			           plan_format_time(oldest_loaded->stop_time_us, a, sizeof(a)));
		else
			set_reason(res, "no base backup ended before LSN %s (the oldest ends at %s)",
			           walname_format_lsn(l1, t->lsn),
			           walname_format_lsn(l2, oldest_loaded->stop_lsn));
		return PGBK_OK;
	}
	set_reason(res, "%s",
	           other_reason[0] ? other_reason : "no usable base backup in the repository");
	return PGBK_OK;
}

/* ------------------------------------------------------------------------
 * The recoverable window
 * ------------------------------------------------------------------------
 */

/* Are the segments of backup b's own WAL (start to end) all archived? */
static PgbkStatus
backup_wal_complete(Walk *w, bool *complete, WalSegNo *missing, PgbkError *err)
{
	WalSegNo   s;
	PgbkStatus st;

	*complete = true;
	for (s = w->s0; s <= w->stopseg; s++)
	{
		PlanSegment *seg;

		if ((st = walk_get(w, s, &seg, err)) != PGBK_OK)
			return st;
		if (seg == NULL)
		{
			*complete = false;
			*missing = s;
			return PGBK_OK;
		}
	}
	return PGBK_OK;
}

static void
walk_init(Walk *w, PlanView *v, const PlanBackup *b, const WalHistory *chain, PlanResult *scratch)
{
	memset(w, 0, sizeof(*w));
	w->v = v;
	w->b = b;
	w->chain = chain;
	w->res = scratch;
	w->segsz = b->wal_segment_size;
	w->s0 = walname_lsn_to_segno(b->start_lsn, w->segsz);
	w->stopseg = walname_end_lsn_to_segno(b->stop_lsn, w->segsz);
}

static bool
backup_on_chain(const PlanBackup *b, const WalHistory *chain)
{
	const WalHistoryEntry *e = walname_history_find(chain, b->timeline);

	return e != NULL && (e->end == WAL_INVALID_LSN || b->stop_lsn <= e->end);
}

/* ------------------------------------------------------------------------
 * The parent of an incremental backup
 * ------------------------------------------------------------------------
 */

/*
 * A backup can be the parent of one starting at lsn on chain when it is of
 * the same system, lies on the chain (its start on its own timeline as the
 * chain sees it, its end before that timeline's switch) and ended at or
 * before lsn: then its copy plus the blocks changed in [its start, lsn)
 * give the data directory at lsn.
 */
static bool
parent_usable(const PlanBackup *b, const WalHistory *chain, WalLsn lsn, uint64_t sysid)
{
	if (!b->loaded || b->broken)
		return false;
	if (sysid != 0 && b->system_identifier != 0 && b->system_identifier != sysid)
		return false;
	if (b->start_lsn >= lsn || b->stop_lsn > lsn)
		return false;
	return walname_history_tli_at(chain, b->start_lsn) == b->timeline && backup_on_chain(b, chain);
}

PgbkStatus
plan_parent(PlanView *v, const WalHistory *chain, WalLsn lsn, uint64_t sysid, PlanBackup **out,
            PgbkError *err)
{
	char l[WALNAME_LSN_BUFLEN];
	int  i;

	*out = NULL;
	for (i = v->nbackups - 1; i >= 0; i--)
	{
		PlanBackup *b = &v->backups[i];
		PgbkStatus  st;

		if ((st = plan_view_load_backup(v, b, err)) != PGBK_OK)
			return st;
		if (parent_usable(b, chain, lsn, sysid))
		{
			*out = b;
			return PGBK_OK;
		}
	}
	return pgbk_error(err, PGBK_NOT_FOUND,
	                  "no complete base backup on this timeline's history ended before %s",
	                  walname_format_lsn(l, lsn));
}

PgbkStatus
plan_window(PlanView *v, uint32_t tli, PlanWindow *out, PgbkError *err)
{
	WalHistory  chain = {0, NULL};
	PlanResult *scratch;
	PlanBackup *earliest = NULL;
	Walk        w;
	WalSegNo    segno, missing = 0;
	int         i;
	PgbkStatus  st = PGBK_OK;

	memset(out, 0, sizeof(*out));
	scratch = calloc(1, sizeof(PlanResult));
	if (scratch == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	for (i = 0; i < v->nbackups; i++)
		if ((st = plan_view_load_backup(v, &v->backups[i], err)) != PGBK_OK)
			goto done;
	if (tli == 0)
	{
		tli = 1;
		for (i = v->nbackups - 1; i >= 0; i--)
			if (v->backups[i].loaded)
			{
				tli = v->backups[i].timeline;
				break;
			}
		tli = plan_newest_timeline(v, tli);
	}
	out->timeline = tli;
	st = plan_chain(v, tli, &chain, err);
	if (st == PGBK_NOT_FOUND && find_history(v, tli) == NULL && v->nbackups > 0 &&
	    v->backups[v->nbackups - 1].timeline == tli)
	{
		/* the newest backup's own timeline, its history file not archived */
		pgbk_error_clear(err);
		st = single_chain(tli, &chain, err);
	}
	if (st == PGBK_NOT_FOUND)
	{
		snprintf(out->reason, sizeof(out->reason), "%s", err->msg);
		pgbk_error_clear(err);
		st = PGBK_OK;
		goto done;
	}
	if (st != PGBK_OK)
		goto done;

	/* the oldest backup on the chain whose own WAL is complete */
	for (i = 0; i < v->nbackups; i++)
	{
		PlanBackup *b = &v->backups[i];
		bool        complete;

		if (!b->loaded || !walname_segsz_is_valid(b->wal_segment_size) ||
		    !backup_on_chain(b, &chain))
			continue;
		if ((st = plan_backup_chain(v, b, NULL, NULL, err)) != PGBK_OK)
			goto done;
		if (b->chain_state != PLAN_CHAIN_OK)
		{
			if (out->reason[0] == '\0')
				snprintf(out->reason, sizeof(out->reason), "backup %s cannot be used: %s", b->id,
				         b->chain_reason);
			continue;
		}
		if (v->segsz == 0)
			v->segsz = b->wal_segment_size;
		walk_init(&w, v, b, &chain, scratch);
		if ((st = backup_wal_complete(&w, &complete, &missing, err)) != PGBK_OK)
			goto done;
		if (complete)
		{
			earliest = b;
			break;
		}
		if (out->reason[0] == '\0')
		{
			char name[WALNAME_BUFLEN];

			seg_name(&w, missing, name);
			snprintf(out->reason, sizeof(out->reason),
			         "WAL segment %s is missing from the repository (needed to restore backup "
			         "%s)",
			         name, b->id);
		}
	}
	if (earliest == NULL)
	{
		if (out->reason[0] == '\0')
			snprintf(out->reason, sizeof(out->reason),
			         v->nbackups == 0 ? "the repository %s holds no base backup"
			                          : "no base backup in the repository %s is on the history of "
			                            "the timeline",
			         v->description ? v->description : "");
		goto done;
	}
	out->reason[0] = '\0';
	out->any = true;
	snprintf(out->earliest_backup, sizeof(out->earliest_backup), "%s", earliest->id);
	out->earliest_us = earliest->stop_time_us;
	walk_init(&w, v, earliest, &chain, scratch);

	/* walk to the end of the archived WAL, noting gaps */
	for (segno = w.s0;;)
	{
		PlanSegment *seg;
		bool         later;
		WalSegNo     next;
		PlanGap     *g;
		int64_t      from;
		int          j;

		if ((st = walk_get(&w, segno, &seg, err)) != PGBK_OK)
			goto done;
		if (seg != NULL)
		{
			segno++;
			continue;
		}
		if ((st = walk_wal_after(&w, segno, &later, &next, err)) != PGBK_OK)
			goto done;
		if (!later)
			break;
		/* a gap: segno .. next - 1 */
		if ((st = newest_commit_before(&w, segno - 1, &from, err)) != PGBK_OK)
			goto done;
		if (from == 0 || from < out->earliest_us)
			from = out->earliest_us;
		if (out->ngaps < PLAN_MAX_GAPS)
		{
			g = &out->gaps[out->ngaps++];
			seg_name(&w, segno, g->first_missing);
			seg_name(&w, next - 1, g->last_missing);
			g->from_us = from;
			g->to_us = 0;
			/* the first usable backup after the gap closes it */
			for (j = 0; j < v->nbackups; j++)
			{
				PlanBackup *b = &v->backups[j];
				Walk        bw;
				bool        complete;

				if (!b->loaded || b->wal_segment_size != w.segsz || !backup_on_chain(b, &chain))
					continue;
				if ((st = plan_backup_chain(v, b, NULL, NULL, err)) != PGBK_OK)
					goto done;
				if (b->chain_state != PLAN_CHAIN_OK)
					continue;
				walk_init(&bw, v, b, &chain, scratch);
				if (bw.s0 < next)
					continue;
				if ((st = backup_wal_complete(&bw, &complete, &missing, err)) != PGBK_OK)
					goto done;
				if (complete)
				{
					g->to_us = b->stop_time_us;
					break;
				}
			}
			if (g->to_us == 0)
			{
				/* nothing after the gap is reachable */
				out->latest_us = from;
				out->latest_commit_us = from;
				seg_name(&w, segno - 1, out->last_wal);
				goto done;
			}
		}
		segno = next;
	}
	if (segno == w.s0)
		goto done;
	seg_name(&w, segno - 1, out->last_wal);
	if ((st = newest_commit_before(&w, segno - 1, &out->latest_commit_us, err)) != PGBK_OK)
		goto done;
	out->latest_us = out->latest_commit_us;
	{
		/* the quiet-database rule can reach a little further */
		PlanSegment *last;

		if ((st = walk_get(&w, segno - 1, &last, err)) != PGBK_OK)
			goto done;
		if (last && (st = plan_view_summary(v, last, err)) != PGBK_OK)
			goto done;
		if (last && last->summary_state == PLAN_SUMMARY_OK && last->source_mtime_us != 0 &&
		    !tail_may_commit(last->summary) && last->source_mtime_us > out->latest_us)
			out->latest_us = last->source_mtime_us;
	}
	if (out->latest_us < out->earliest_us)
		out->latest_us = out->earliest_us;

done:
	walname_history_free(&chain);
	free(scratch);
	return st;
}

PgbkStatus
plan_stretch_backups(PlanView *v, int64_t from_us, int64_t to_us, PlanStretchBackups *out,
                     PgbkError *err)
{
	int        i;
	PgbkStatus st;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < v->nbackups; i++)
	{
		PlanBackup *b = &v->backups[i];

		if ((st = plan_backup_chain(v, b, NULL, NULL, err)) != PGBK_OK)
			return st;
		if (!b->loaded || b->chain_state != PLAN_CHAIN_OK || b->stop_time_us < from_us ||
		    b->stop_time_us > to_us)
			continue;
		out->backups++;
		if (b->incremental)
			out->incrementals++;
		if (b->chain_len > out->longest_chain)
			out->longest_chain = b->chain_len;
	}
	return PGBK_OK;
}

/* ------------------------------------------------------------------------
 * A view on a repository
 * ------------------------------------------------------------------------
 */

typedef struct RepoView
{
	Repo              *repo;
	const PgbkKeyring *ring;
} RepoView;

/* Version of the "backup.*" header attributes (manifest_backup_attrs). */
#define BATTR_VERSION MANIFEST_BACKUP_ATTRS_VERSION

static bool
attr_i64(const char *attrs, const char *name, int64_t *out)
{
	char  buf[32];
	char *end;

	if (!codec_attr_get(attrs, name, buf, sizeof(buf)))
		return false;
	*out = strtoll(buf, &end, 10);
	return end != buf && *end == '\0';
}

static bool
attr_lsn(const char *attrs, const char *name, WalLsn *out)
{
	char buf[WALNAME_LSN_BUFLEN];

	return codec_attr_get(attrs, name, buf, sizeof(buf)) && walname_parse_lsn(buf, out);
}

/* Backup metadata from a manifest object's header; false if it has none. */
static bool
backup_from_attrs(const char *attrs, PlanBackup *b)
{
	int64_t ver, tli, segsz, bytes, stored, sysid, pgv;

	if (!attr_i64(attrs, "backup.v", &ver) || ver != BATTR_VERSION)
		return false;
	if (!attr_i64(attrs, "backup.tli", &tli) ||
	    !attr_lsn(attrs, "backup.start_lsn", &b->start_lsn) ||
	    !attr_lsn(attrs, "backup.stop_lsn", &b->stop_lsn) ||
	    !attr_i64(attrs, "backup.start_time", &b->start_time_us) ||
	    !attr_i64(attrs, "backup.stop_time", &b->stop_time_us) ||
	    !attr_i64(attrs, "backup.segsz", &segsz) || !attr_i64(attrs, "backup.bytes", &bytes) ||
	    !attr_i64(attrs, "backup.stored", &stored))
		return false;
	if (!attr_i64(attrs, "backup.sysid", &sysid))
		sysid = 0;
	if (!attr_i64(attrs, "backup.pg_version", &pgv))
		pgv = 0;
	b->timeline = (uint32_t) tli;
	b->wal_segment_size = (uint32_t) segsz;
	b->bytes = (uint64_t) bytes;
	b->stored_bytes = (uint64_t) stored;
	b->system_identifier = (uint64_t) sysid;
	b->pg_version_num = (int) pgv;
	/* backup.type absent: a full (written before incrementals existed) */
	{
		char type[16];

		b->incremental = false;
		b->parent[0] = '\0';
		if (codec_attr_get(attrs, "backup.type", type, sizeof(type)) &&
		    strcmp(type, "incremental") == 0)
		{
			if (!codec_attr_get(attrs, "backup.parent", b->parent, sizeof(b->parent)) ||
			    b->parent[0] == '\0')
				return false; /* the manifest says it whole */
			b->incremental = true;
		}
	}
	return true;
}

void
plan_backup_from_manifest(PlanBackup *b, const Manifest *m)
{
	b->timeline = m->timeline;
	b->start_lsn = m->start_lsn;
	b->stop_lsn = m->stop_lsn;
	b->start_time_us = m->start_time_us;
	b->stop_time_us = m->stop_time_us;
	b->wal_segment_size = m->wal_segment_size;
	b->bytes = m->bytes;
	b->stored_bytes = m->stored_bytes;
	b->system_identifier = m->system_identifier;
	b->pg_version_num = m->pg_version_num;
	b->incremental = m->incremental;
	snprintf(b->parent, sizeof(b->parent), "%s", m->incremental ? m->parent : "");
	b->loaded = true;
}

/* Errors that make one object unusable rather than the repository unreadable. */
static bool
object_level_error(PgbkStatus st)
{
	return st == PGBK_NOT_FOUND || st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT ||
	       st == PGBK_ERR_KEY;
}

static PgbkStatus
rv_load_backup(PlanView *v, PlanBackup *b, PgbkError *err)
{
	RepoView    *rv = v->impl;
	char         key[LAYOUT_KEY_LEN];
	PgbkBuf      head;
	CodecHeader *hdr;
	Manifest    *m = NULL;
	PgbkStatus   st;
	PgbkError    oerr;

	if (!layout_backup_manifest_key(b->id, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid backup id \"%s\"", b->id);
	hdr = malloc(sizeof(CodecHeader));
	if (hdr == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	pgbk_buf_init(&head);
	pgbk_error_clear(&oerr);
	st = repo_get_range(rv->repo, key, 0, CODEC_MAX_HEADER, &head, &oerr);
	if (st == PGBK_OK && codec_read_header(head.data, head.len, hdr, NULL, &oerr) == PGBK_OK &&
	    backup_from_attrs(hdr->attrs, b))
		b->loaded = true;
	pgbk_buf_free(&head);
	free(hdr);
	if (b->loaded)
		return PGBK_OK;
	if (st != PGBK_OK && !object_level_error(st))
	{
		*err = oerr;
		return pgbk_error_prefix(err, "could not read the manifest of backup %s", b->id);
	}
	/* no summary in the header: read the whole manifest */
	st = manifest_load(rv->repo, rv->ring, b->id, &m, &oerr);
	if (st == PGBK_OK)
	{
		plan_backup_from_manifest(b, m);
		manifest_free(m);
		return PGBK_OK;
	}
	if (object_level_error(st))
	{
		b->broken = true;
		b->broken_reason = strdup(oerr.msg);
		return PGBK_OK;
	}
	*err = oerr;
	return st;
}

typedef struct ListCtx
{
	PlanView *v;
	uint32_t  tli;
	bool      stopped;
	bool      found;
	WalSegNo  next;
	char      cursor[LAYOUT_KEY_LEN];
	PgbkError oerr;
} ListCtx;

static PgbkStatus
block_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ListCtx    *lc = arg;
	const char *name = layout_wal_name(info->key);
	WalFileName f;
	WalSegNo    segno;

	if (name == NULL || walname_classify(name, &f) != WAL_FILE_SEGMENT || f.tli != lc->tli)
		return PGBK_OK;
	if (walname_file_segno(&f, lc->v->segsz, &segno, &lc->oerr) != PGBK_OK)
		return PGBK_OK; /* not a segment of this size: not ours */
	if (plan_view_add_segment(lc->v, f.tli, segno, info->size, info->mtime * INT64_C(1000000)) ==
	    NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

static PgbkStatus
rv_list_block(PlanView *v, PlanWalBlock *blk, PgbkError *err)
{
	RepoView  *rv = v->impl;
	char       prefix[64];
	ListCtx    lc;
	uint32_t   tli = blk->tli;
	PgbkStatus st;

	memset(&lc, 0, sizeof(lc));
	lc.v = v;
	lc.tli = tli;
	snprintf(prefix, sizeof(prefix), LAYOUT_WAL_PREFIX "%08X%08X/", blk->tli, blk->logid);
	st = repo_list(rv->repo, prefix, NULL, block_cb, &lc, err);
	if (st != PGBK_OK)
		return pgbk_error_prefix(err, "could not list \"%s\" in %s", prefix,
		                         repo_describe(rv->repo));
	return PGBK_OK;
}

static PgbkStatus
rv_read_summary(PlanView *v, PlanSegment *s, PgbkError *err)
{
	RepoView    *rv = v->impl;
	char         name[WALNAME_BUFLEN], key[LAYOUT_KEY_LEN];
	PgbkBuf      head;
	CodecHeader *hdr;
	WalSummary   sum;
	PgbkStatus   st;
	PgbkError    oerr;
	int64_t      mt = 0;

	walname_format_segment(name, s->tli, s->segno, v->segsz);
	if (!layout_wal_key(name, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR, "invalid WAL name \"%s\"", name);
	hdr = malloc(sizeof(CodecHeader));
	if (hdr == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	pgbk_buf_init(&head);
	pgbk_error_clear(&oerr);
	st = repo_get_range(rv->repo, key, 0, CODEC_MAX_HEADER, &head, &oerr);
	if (st == PGBK_OK)
		st = codec_read_header(head.data, head.len, hdr, NULL, &oerr);
	if (st == PGBK_OK)
	{ /* the file's last write on the server; seconds are rounded down */
		if (attr_i64(hdr->attrs, "source_mtime_us", &mt))
			;
		else if (attr_i64(hdr->attrs, "source_mtime", &mt))
			mt *= INT64_C(1000000);
		else
			mt = 0;
		if (walscan_summary_from_attrs(hdr->attrs, &sum, &oerr) == PGBK_OK &&
		    sum.seg_size == v->segsz && sum.segno == s->segno)
			st = plan_segment_set_summary(s, &sum, mt) ? PGBK_OK
			                                           : pgbk_error(err, PGBK_ERR, "out of memory");
		else
			plan_segment_set_summary(s, NULL, mt);
	}
	else if (object_level_error(st))
	{
		plan_segment_set_summary(s, NULL, 0);
		st = PGBK_OK;
	}
	else
	{
		*err = oerr;
		pgbk_error_prefix(err, "could not read the header of \"%s\"", key);
	}
	pgbk_buf_free(&head);
	free(hdr);
	return st;
}

static PgbkStatus
after_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ListCtx    *lc = arg;
	const char *name = layout_wal_name(info->key);
	WalFileName f;
	WalSegNo    segno;

	(void) err;
	if (name == NULL || walname_classify(name, &f) != WAL_FILE_SEGMENT || f.tli != lc->tli ||
	    walname_file_segno(&f, lc->v->segsz, &segno, &lc->oerr) != PGBK_OK)
		return PGBK_OK;
	lc->found = true;
	lc->next = segno;
	lc->stopped = true;
	return LIST_STOP;
}

static PgbkStatus
rv_find_after(PlanView *v, uint32_t tli, WalSegNo segno, bool *found, WalSegNo *next,
              PgbkError *err)
{
	RepoView  *rv = v->impl;
	char       prefix[32], name[WALNAME_BUFLEN], key[LAYOUT_KEY_LEN];
	ListCtx    lc;
	PgbkStatus st;

	memset(&lc, 0, sizeof(lc));
	lc.v = v;
	lc.tli = tli;
	snprintf(prefix, sizeof(prefix), LAYOUT_WAL_PREFIX "%08X", tli);
	walname_format_segment(name, tli, segno, v->segsz);
	layout_wal_key(name, key, sizeof(key));
	st = repo_list(rv->repo, prefix, key, after_cb, &lc, err);
	if (st != PGBK_OK && !(st == LIST_STOP && lc.stopped))
		return pgbk_error_prefix(err, "could not list \"%s\" in %s", prefix,
		                         repo_describe(rv->repo));
	pgbk_error_clear(err);
	*found = lc.found;
	*next = lc.next;
	return PGBK_OK;
}

static void
rv_close(PlanView *v)
{
	free(v->impl);
	v->impl = NULL;
}

static const PlanViewOps repo_view_ops = {
    .load_backup = rv_load_backup,
    .list_block = rv_list_block,
    .read_summary = rv_read_summary,
    .find_after = rv_find_after,
    .close = rv_close,
};

/* Backup ids: one per manifest/<id> object (the data files live elsewhere). */
static PgbkStatus
backup_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ListCtx *lc = arg;
	char     id[MANIFEST_ID_LEN];

	if (!layout_backup_id_of_manifest(info->key, id, sizeof(id)))
		return PGBK_OK;
	if (plan_view_add_backup(lc->v, id) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

static PgbkStatus
list_backup_ids(PlanView *v, Repo *repo, PgbkError *err)
{
	ListCtx    lc;
	PgbkStatus st;

	memset(&lc, 0, sizeof(lc));
	lc.v = v;
	st = repo_list(repo, LAYOUT_MANIFEST_PREFIX, NULL, backup_cb, &lc, err);
	if (st != PGBK_OK)
		return pgbk_error_prefix(err, "could not list the backups in %s", repo_describe(repo));
	return PGBK_OK;
}

typedef struct HistCtx
{
	int    n;
	int    cap;
	char **keys;
} HistCtx;

static PgbkStatus
hist_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	HistCtx    *hc = arg;
	const char *name = layout_wal_name(info->key);
	char       *copy;

	if (name == NULL || walname_classify(name, NULL) != WAL_FILE_HISTORY)
		return PGBK_OK;
	copy = strdup(info->key);
	if (copy == NULL || !grow((void **) &hc->keys, hc->n, &hc->cap, sizeof(char *)))
	{
		free(copy);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	hc->keys[hc->n++] = copy;
	return PGBK_OK;
}

static PgbkStatus
load_histories(PlanView *v, Repo *repo, const PgbkKeyring *ring, PgbkError *err)
{
	HistCtx    hc;
	PgbkStatus st;
	int        i;

	memset(&hc, 0, sizeof(hc));
	st = repo_list(repo, LAYOUT_HISTORY_PREFIX, NULL, hist_cb, &hc, err);
	if (st != PGBK_OK)
		pgbk_error_prefix(err, "could not list the timeline history files in %s",
		                  repo_describe(repo));
	for (i = 0; i < hc.n && st == PGBK_OK; i++)
	{
		PgbkBuf     stored, raw;
		WalFileName f;
		CodecHeader hdr;
		const char *name = layout_wal_name(hc.keys[i]);

		walname_classify(name, &f);
		pgbk_buf_init(&stored);
		pgbk_buf_init(&raw);
		st = repo_get(repo, hc.keys[i], &stored, err);
		if (st == PGBK_OK)
			st = codec_decode(ring, stored.data, stored.len, CODEC_LIMIT_SMALL, &raw, &hdr, err);
		if (st == PGBK_OK)
			st = codec_check_name(&hdr, name, err);
		if (st == PGBK_OK)
			st = plan_view_add_history(v, f.tli, (const char *) raw.data, raw.len, err);
		if (st != PGBK_OK)
			pgbk_error_prefix(err, "could not read timeline history file \"%s\"", name);
		pgbk_buf_free(&stored);
		pgbk_buf_free(&raw);
	}
	for (i = 0; i < hc.n; i++)
		free(hc.keys[i]);
	free(hc.keys);
	return st;
}

PgbkStatus
plan_view_open(Repo *repo, const PgbkKeyring *ring, PlanView **out, PgbkError *err)
{
	PlanView  *v = plan_view_new();
	RepoView  *rv = calloc(1, sizeof(RepoView));
	PgbkStatus st;

	*out = NULL;
	if (v == NULL || rv == NULL || (v->description = strdup(repo_describe(repo))) == NULL)
	{
		free(rv);
		plan_view_free(v);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	rv->repo = repo;
	rv->ring = ring;
	v->impl = rv;
	v->ops = &repo_view_ops;
	if ((st = list_backup_ids(v, repo, err)) != PGBK_OK ||
	    (st = load_histories(v, repo, ring, err)) != PGBK_OK)
	{
		plan_view_free(v);
		return st;
	}
	*out = v;
	return PGBK_OK;
}

/* For plan_view_list_all_wal: the first segment's key (to learn the size). */
static PgbkStatus
first_seg_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ListCtx    *lc = arg;
	const char *name = layout_wal_name(info->key);

	(void) err;
	if (name == NULL || walname_classify(name, NULL) != WAL_FILE_SEGMENT)
		return PGBK_OK;
	snprintf(lc->cursor, sizeof(lc->cursor), "%s", info->key);
	lc->stopped = true;
	return LIST_STOP;
}

static PgbkStatus
all_cb(void *arg, const RepoObjectInfo *info, PgbkError *err)
{
	ListCtx    *lc = arg;
	const char *name = layout_wal_name(info->key);
	WalFileName f;
	WalSegNo    segno;

	if (name == NULL)
		return PGBK_OK;
	switch (walname_classify(name, &f))
	{
		case WAL_FILE_SEGMENT:
			if (walname_file_segno(&f, lc->v->segsz, &segno, &lc->oerr) == PGBK_OK &&
			    plan_view_add_segment(lc->v, f.tli, segno, info->size,
			                          info->mtime * INT64_C(1000000)) == NULL)
				return pgbk_error(err, PGBK_ERR, "out of memory");
			break;
		case WAL_FILE_PARTIAL:
		case WAL_FILE_BACKUP:
			if (!plan_view_add_extra(lc->v, name))
				return pgbk_error(err, PGBK_ERR, "out of memory");
			break;
		default:
			break;
	}
	return PGBK_OK;
}

PgbkStatus
plan_view_list_all_wal(PlanView *v, PgbkError *err)
{
	RepoView  *rv = v->impl;
	ListCtx    lc;
	PgbkStatus st;
	int        i;

	if (v->ops != &repo_view_ops)
		return PGBK_OK;
	memset(&lc, 0, sizeof(lc));
	lc.v = v;
	for (i = 0; i < v->nbackups && v->segsz == 0; i++)
		if ((st = plan_view_load_backup(v, &v->backups[i], err)) != PGBK_OK)
			return st;
	if (v->segsz == 0)
	{
		/* no backup to tell: the first segment's header does */
		PgbkBuf      head;
		CodecHeader *hdr = malloc(sizeof(CodecHeader));

		if (hdr == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		st = repo_list(rv->repo, LAYOUT_WAL_PREFIX, NULL, first_seg_cb, &lc, err);
		if (st != PGBK_OK && !(st == LIST_STOP && lc.stopped))
		{
			free(hdr);
			return pgbk_error_prefix(err, "could not list the WAL in %s", repo_describe(rv->repo));
		}
		pgbk_error_clear(err);
		if (!lc.stopped)
		{
			free(hdr);
			v->all_listed = true;
			return PGBK_OK; /* no WAL at all */
		}
		pgbk_buf_init(&head);
		st = repo_get_range(rv->repo, lc.cursor, 0, CODEC_MAX_HEADER, &head, err);
		if (st == PGBK_OK)
			st = codec_read_header(head.data, head.len, hdr, NULL, err);
		if (st == PGBK_OK && walname_segsz_is_valid((uint32_t) hdr->raw_size))
			v->segsz = (uint32_t) hdr->raw_size;
		pgbk_buf_free(&head);
		free(hdr);
		if (st != PGBK_OK)
			return pgbk_error_prefix(err, "could not read the header of \"%s\"", lc.cursor);
		if (v->segsz == 0)
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "could not tell the WAL segment size from \"%s\"", lc.cursor);
		lc.stopped = false;
	}
	st = repo_list(rv->repo, LAYOUT_WAL_PREFIX, NULL, all_cb, &lc, err);
	if (st != PGBK_OK)
		return pgbk_error_prefix(err, "could not list the WAL in %s", repo_describe(rv->repo));
	for (i = 0; i < v->nblocks; i++)
		v->blocks[i].listed = true;
	v->all_listed = true;
	return PGBK_OK;
}
