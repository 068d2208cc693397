/*
 * test_plan.c
 *	  Tests of room plan (cmocka); uses unit.h and plan.c.
 *	  Unit tests for plan.c: the restore planner's decisions on synthetic
 *	  repositories (plain arrays: backups, history files, segments with
 *	  walscan summaries), including how few object headers it reads.
 */
#include "unit.h"

#include "plan/plan.h"

#define SEGSZ (16U * 1024U * 1024U)
/* 2026-09-21 ... : any fixed moment */
#define T0 INT64_C(1790000000000000)

static int64_t
at(int sec)
{
	return T0 + (int64_t) sec * 1000000;
}

static WalLsn
lsn(WalSegNo seg, uint32_t off)
{
	return (WalLsn) seg * SEGSZ + off;
}

static PlanView *
new_view(void)
{
	PlanView *v = plan_view_new();

	assert_non_null(v);
	v->segsz = SEGSZ;
	v->description = strdup("/srv/repo");
	return v;
}

static PlanBackup *
add_backup(PlanView *v, const char *id, uint32_t tli, WalSegNo start_seg, WalSegNo stop_seg,
           int start_s, int stop_s)
{
	PlanBackup *b = plan_view_add_backup(v, id);

	assert_non_null(b);
	b->loaded = true;
	b->timeline = tli;
	b->start_lsn = lsn(start_seg, 0x28);
	b->stop_lsn = lsn(stop_seg, 0x138);
	b->start_time_us = at(start_s);
	b->stop_time_us = at(stop_s);
	b->wal_segment_size = SEGSZ;
	b->bytes = 1000000;
	b->stored_bytes = 300000;
	return b;
}

/*
 * A segment archived at up_s (written at up_s - 1) with ncommits commits
 * between first_s and last_s, ending with a WAL switch.
 */
static PlanSegment *
add_seg(PlanView *v, uint32_t tli, WalSegNo segno, int up_s, int ncommits, int first_s, int last_s)
{
	PlanSegment *s = plan_view_add_segment(v, tli, segno, 1000 + segno, at(up_s));
	WalSummary   sum;

	assert_non_null(s);
	memset(&sum, 0, sizeof(sum));
	sum.tli = tli;
	sum.last_tli = tli;
	sum.seg_size = SEGSZ;
	sum.segno = segno;
	sum.nrecords = 100;
	sum.first_lsn = lsn(segno, 40);
	sum.last_lsn = lsn(segno, 0xF00000);
	sum.ncommits = (uint64_t) ncommits;
	if (ncommits > 0)
	{
		sum.xact_first_time = sum.xact_min_time = at(first_s);
		sum.xact_last_time = sum.xact_max_time = at(last_s);
		sum.xact_last_lsn = lsn(segno, 0xE00000);
	}
	sum.end_kind = WALSCAN_END_SWITCH;
	sum.switch_lsn = sum.last_lsn;
	sum.end_lsn = lsn(segno + 1, 0);
	sum.cont = WALSCAN_CONT_NONE;
	assert_true(plan_segment_set_summary(s, &sum, at(up_s - 1)));
	return s;
}

/* Segments from..to, one a minute from up0, each with a commit in its minute. */
static void
add_run(PlanView *v, uint32_t tli, WalSegNo from, WalSegNo to, int up0)
{
	WalSegNo s;

	for (s = from; s <= to; s++)
	{
		int up = up0 + (int) (s - from) * 60;

		add_seg(v, tli, s, up, 3, up - 50, up - 5);
	}
}

static PlanSegment *
seg(PlanView *v, uint32_t tli, WalSegNo segno)
{
	PlanSegment *s = NULL;
	PgbkError    err;

	assert_int_equal(plan_view_segment(v, tli, segno, &s, &err), PGBK_OK);
	assert_non_null(s);
	return s;
}

static void
target_time(PlanTarget *t, int sec)
{
	memset(t, 0, sizeof(*t));
	t->kind = PLAN_TARGET_TIME;
	t->time_us = at(sec);
}

static void
plan(PlanView *v, const PlanTarget *t, PlanResult *r)
{
	PgbkError err;

	pgbk_error_clear(&err);
	assert_int_equal(plan_make(v, t, r, &err), PGBK_OK);
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* ------------------------------------------------------------------------ */

static void
test_format(void **state)
{
	char buf[64];

	(void) state;
	assert_string_equal(plan_format_time(INT64_C(1795615620000000), buf, sizeof(buf)),
	                    "2026-11-25 14:07:00+00");
	assert_string_equal(plan_format_time(INT64_C(1795615620500000), buf, sizeof(buf)),
	                    "2026-11-25 14:07:00.5+00");
	assert_string_equal(plan_format_time(INT64_C(1795615620000123), buf, sizeof(buf)),
	                    "2026-11-25 14:07:00.000123+00");
	assert_string_equal(plan_format_bytes(512, buf, sizeof(buf)), "512 bytes");
	assert_string_equal(plan_format_bytes(1536, buf, sizeof(buf)), "1.5 kB");
	assert_string_equal(plan_format_bytes(UINT64_C(300) * 1024 * 1024, buf, sizeof(buf)), "300 MB");
}

static void
test_no_backup(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	add_run(v, 1, 1, 5, 0);
	target_time(&t, 100);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "no base backup exists in the repository");
	plan_view_free(v);
}

/* The usual case: the newest backup that ended before T, WAL up to T's stop. */
static void
test_time_basic(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	/* segment s is archived at 60*(s-1), its commits in the minute before */
	add_run(v, 1, 1, 30, 0);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);

	/* T = 900 s: the commits of segment 16 (archived at 900) end at 895;
	 * segment 17's at 905..955 pass T */
	target_time(&t, 900);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T001000Z");
	assert_int_equal(r.timeline, 1);
	assert_string_equal(r.first_wal, "00000001000000000000000A");
	assert_string_equal(r.last_wal, "000000010000000000000011");
	assert_int_equal(r.nsegments, 8);
	assert_int_equal(r.wal_bytes, 8 * 1000 + (10 + 11 + 12 + 13 + 14 + 15 + 16 + 17));
	assert_string_equal(r.recovery_target_name, "recovery_target_time");
	assert_string_equal(r.recovery_target_value, "2026-09-21 14:28:20+00");
	assert_true(r.recovery_target_inclusive);
	assert_string_equal(r.recovery_target_timeline, "1");

	/* between the two backups: the older one */
	target_time(&t, 400);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T000000Z");
	assert_string_equal(r.first_wal, "000000010000000000000002");
	assert_string_equal(r.last_wal, "000000010000000000000008");

	/* exclusive: a commit at exactly T stops recovery there */
	target_time(&t, 955);
	t.exclusive = true;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "000000010000000000000011");
	assert_false(r.recovery_target_inclusive);
	t.exclusive = false;
	plan(v, &t, &r);
	assert_string_equal(r.last_wal, "000000010000000000000012");
	plan_view_free(v);
}

static void
test_time_before_backups(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	add_run(v, 1, 1, 30, 0);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	target_time(&t, 170);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "no base backup ended before 2026-09-21 14:16:10+00 (the "
	                              "oldest ends at 2026-09-21 14:16:10+00)");

	/* a forced backup that ended after the target */
	target_time(&t, 400);
	strcpy(t.backup_id, "20260921T001000Z");
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "backup 20260921T001000Z ended at 2026-09-21 14:24:10+00, not "
	                              "before the target 2026-09-21 14:20:00+00");
	strcpy(t.backup_id, "20260921T002000Z");
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_contains(r.reason, "backup 20260921T002000Z not found in the repository");
	/* forcing the older one to a later target works */
	target_time(&t, 900);
	strcpy(t.backup_id, "20260921T000000Z");
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.first_wal, "000000010000000000000002");
	plan_view_free(v);
}

/* Only one backup, and T before its end: not a "forced backup" message. */
static void
test_single_backup(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	add_run(v, 1, 1, 30, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	target_time(&t, 600);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "no base backup ended before 2026-09-21 14:23:20+00 (the "
	                              "oldest ends at 2026-09-21 14:24:10+00)");
	plan_view_free(v);
}

/* Backup ids are start times: backups that started after T are not even read. */
static int backup_loads;

static PgbkStatus
counting_load_backup(PlanView *v, PlanBackup *b, PgbkError *err)
{
	(void) v;
	(void) err;
	backup_loads++;
	b->loaded = true;
	return PGBK_OK;
}

static const PlanViewOps load_ops = {.load_backup = counting_load_backup};

static void
test_backup_ids_skip(void **state)
{
	PlanView   *v = new_view();
	PlanTarget  t;
	PlanResult  r;
	PlanBackup *b;
	int         i;

	(void) state;
	add_run(v, 1, 1, 60, 0);
	/* ids match T0 + start: T0 is 14:13:20 */
	add_backup(v, "20260921T141430Z", 1, 2, 3, 70, 170);
	for (i = 0; i < 5; i++)
	{
		char id[32];

		snprintf(id, sizeof(id), "20260921T14%02d20Z", 30 + i);
		b = add_backup(v, id, 1, 20 + (WalSegNo) i * 5, 21 + (WalSegNo) i * 5, 1000 + i * 300,
		               1100 + i * 300);
		b->loaded = false; /* only through ops */
	}
	v->ops = &load_ops;
	backup_loads = 0;
	target_time(&t, 900);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T141430Z");
	assert_int_equal(backup_loads, 0);
	v->ops = NULL;
	plan_view_free(v);
}

/* A promoted copy whose history file was never archived: its own backups work. */
static void
test_missing_own_history(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;
	WalSegNo   s;

	(void) state;
	for (s = 5; s <= 12; s++)
		add_seg(v, 3, s, (int) s * 60, 2, (int) s * 60 - 40, (int) s * 60 - 10);
	add_backup(v, "20260921T001000Z", 3, 6, 7, 370, 430);
	target_time(&t, 600);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_int_equal(r.timeline, 3);
	assert_string_equal(r.first_wal, "000000030000000000000006");
	assert_string_equal(r.last_wal, "00000003000000000000000B");
	/* but a timeline above it still needs its history */
	t.tli_mode = PLAN_TLI_NUMBER;
	t.tli = 4;
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_contains(r.reason, "00000004.history is missing");
	plan_view_free(v);
}

static void
test_time_missing_segment(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;
	WalSegNo   s;

	(void) state;
	for (s = 1; s <= 30; s++)
		if (s != 13)
			add_seg(v, 1, s, (int) (s - 1) * 60, 3, (int) (s - 1) * 60 - 50,
			        (int) (s - 1) * 60 - 5);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	target_time(&t, 900);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "WAL segment 00000001000000000000000D is missing from the "
	                              "repository (needed to go from backup 20260921T001000Z to "
	                              "2026-09-21 14:28:20+00)");
	assert_true(r.have_backup);
	/* before the hole: fine */
	target_time(&t, 652);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "00000001000000000000000C");
	plan_view_free(v);
}

/* After the newest archived commit: nothing can stop recovery yet. */
static void
test_time_after_end(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	add_run(v, 1, 1, 20, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	/* segment 20 archived at 1140, written at 1139: T = 1139.5 is past it */
	target_time(&t, 1139);
	t.time_us += 500000;
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason,
	                    "no transaction committed after 2026-09-21 14:32:19.5+00 has been archived "
	                    "yet (the newest archived commit is at 2026-09-21 14:32:15+00)");
	assert_string_equal(r.note, "The archived WAL ends with segment 000000010000000000000014.");
	plan_view_free(v);
}

/*
 * A quiet database: no commit after T, but WAL written well after T (an
 * archive_timeout switch): recoverable, with an LSN target.
 */
static void
test_time_quiet(void **state)
{
	PlanView    *v = new_view();
	PlanTarget   t;
	PlanResult   r;
	PlanSegment *s;
	WalSummary   sum;

	(void) state;
	add_run(v, 1, 1, 20, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	/* segments 21, 22: no commits, written at 1199 and 1259 */
	add_seg(v, 1, 21, 1200, 0, 0, 0);
	add_seg(v, 1, 22, 1260, 0, 0, 0);

	target_time(&t, 1150);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_true(r.quiet);
	assert_string_equal(r.last_wal, "000000010000000000000015");
	assert_string_equal(r.recovery_target_name, "recovery_target_lsn");
	assert_string_equal(r.recovery_target_value, "0/15F00000");
	assert_true(r.recovery_target_inclusive);
	assert_contains(r.note, "no transaction committed between 2026-09-21 14:32:15+00 and "
	                        "2026-09-21 14:33:19+00");

	/*
	 * Written at 1259 (to the microsecond): T = 1258.7, 0.3 s before, is
	 * covered, and so is T = 1259 itself; 1 us later is not.
	 */
	t.time_us = at(1258) + 700000;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_true(r.quiet);
	assert_string_equal(r.last_wal, "000000010000000000000016");
	assert_contains(r.note, "and 2026-09-21 14:34:19+00 (when that WAL was written)");
	t.time_us = at(1259);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	t.time_us = at(1259) + 1;
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_contains(r.reason, "no transaction committed after 2026-09-21 14:34:19.000001+00");
	assert_contains(r.reason, "the newest archived commit is at 2026-09-21 14:32:15+00");

	/* a record that may be a commit at the end of 21: not proven there, 22 is */
	t.time_us = at(1150);
	s = seg(v, 1, 21);
	sum = *s->summary;
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_COMMIT;
	sum.cont_lsn = lsn(21, 0xFFFF00);
	sum.cont_time_valid = true;
	sum.cont_time = at(1100);
	plan_segment_set_summary(s, &sum, at(1199));
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "000000010000000000000016");
	assert_string_equal(r.recovery_target_value, "0/16F00000");

	/* a restore point made after T is proof too, and earlier */
	sum.nrestore_points = 1;
	sum.restore_points[0].lsn = lsn(21, 0x1000);
	sum.restore_points[0].time_us = at(1160);
	strcpy(sum.restore_points[0].name, "after");
	plan_segment_set_summary(s, &sum, at(1199));
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_true(r.quiet);
	assert_string_equal(r.last_wal, "000000010000000000000015");
	assert_string_equal(r.recovery_target_value, "0/15001000");

	/* ... however close after T: 0.3 s (the segment itself proves nothing) */
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_COMMIT;
	plan_segment_set_summary(s, &sum, at(1199));
	t.time_us = at(1160) - 300000;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.recovery_target_value, "0/15001000");
	assert_contains(r.note, "when a restore point was made");
	t.time_us = at(1160) + 1;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "000000010000000000000016");
	plan_view_free(v);
}

/* The first commit after T continues into the next segment. */
static void
test_time_continuation(void **state)
{
	PlanView    *v = new_view();
	PlanTarget   t;
	PlanResult   r;
	PlanSegment *s;
	WalSummary   sum;

	(void) state;
	add_run(v, 1, 1, 20, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	/* segment 15: last commit 835, then a commit at 838 crossing into 16 */
	s = seg(v, 1, 15);
	sum = *s->summary;
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_COMMIT;
	sum.cont_lsn = lsn(15, 0xFFFF00);
	sum.cont_time_valid = true;
	sum.cont_time = at(838);
	plan_segment_set_summary(s, &sum, at(839));
	/* 16 is nothing but that record's continuation, 17 finishes it */
	s = seg(v, 1, 16);
	sum = *s->summary;
	sum.nrecords = 0;
	sum.ncommits = 0;
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_UNKNOWN;
	sum.cont_lsn = WAL_INVALID_LSN;
	plan_segment_set_summary(s, &sum, at(899));

	target_time(&t, 836);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "000000010000000000000011");
	assert_int_equal(r.stop_time_us, at(838));
	plan_view_free(v);

	/* and when 17 is not archived yet */
	v = new_view();
	add_run(v, 1, 1, 15, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	s = seg(v, 1, 15);
	sum = *s->summary;
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_COMMIT;
	sum.cont_lsn = lsn(15, 0xFFFF00);
	sum.cont_time_valid = true;
	sum.cont_time = at(838);
	plan_segment_set_summary(s, &sum, at(839));
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "the first transaction that ended after 2026-09-21 "
	                              "14:27:16+00 (at 2026-09-21 14:27:18+00) continues into WAL "
	                              "segment 000000010000000000000010, which has not been archived "
	                              "yet");
	plan_view_free(v);
}

/* Summaries come from object headers: count how many the planner reads. */
static WalSummary hidden[64];
static int        hidden_reads;

static PgbkStatus
counting_read_summary(PlanView *v, PlanSegment *s, PgbkError *err)
{
	(void) v;
	(void) err;
	hidden_reads++;
	plan_segment_set_summary(s, &hidden[s->segno], at((int) (s->segno - 1) * 60 - 1));
	return PGBK_OK;
}

static const PlanViewOps counting_ops = {.read_summary = counting_read_summary};

static void
test_time_reads_few_headers(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;
	WalSegNo   s;
	int        i;

	(void) state;
	add_run(v, 1, 1, 60, 0);
	/* hide the summaries: the planner must ask for them */
	for (i = 0; i < v->nblocks; i++)
		for (s = 0; s < (WalSegNo) v->blocks[i].n; s++)
		{
			PlanSegment *ps = &v->blocks[i].segs[s];

			hidden[ps->segno] = *ps->summary;
			ps->summary_state = PLAN_SUMMARY_UNREAD;
		}
	v->ops = &counting_ops;
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);

	/* T = 2400: segment 41 (archived 2400) ends at 2395; 42 stops it */
	hidden_reads = 0;
	target_time(&t, 2400);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "00000001000000000000002A");
	assert_int_equal(r.nsegments, 41);
	/* segments archived from T - 60 s on: 40 (2340), 41, 42 */
	assert_int_equal(hidden_reads, 3);
	v->ops = NULL;
	plan_view_free(v);
}

static void
test_lsn(void **state)
{
	PlanView    *v = new_view();
	PlanTarget   t;
	PlanResult   r;
	PlanSegment *s;
	WalSummary   sum;

	(void) state;
	add_run(v, 1, 1, 20, 0);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	memset(&t, 0, sizeof(t));
	t.kind = PLAN_TARGET_LSN;

	t.lsn = lsn(11, 0x100); /* inside the newer backup: the older one */
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T000000Z");
	assert_string_equal(r.last_wal, "00000001000000000000000B");
	assert_string_equal(r.recovery_target_name, "recovery_target_lsn");
	assert_string_equal(r.recovery_target_value, "0/B000100");

	t.lsn = lsn(14, 0x200);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T001000Z");
	assert_string_equal(r.last_wal, "00000001000000000000000E");

	/* after the last record of 14: the first record of 15 */
	t.lsn = lsn(14, 0xF00001);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "00000001000000000000000F");

	t.lsn = lsn(3, 0x100);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "no base backup ended before LSN 0/3000100 (the oldest ends at "
	                              "0/3000138)");

	t.lsn = lsn(20, 0xF00001);
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "the WAL up to LSN 0/14F00001 has not been archived yet");

	/* the record at L crosses into a segment not archived yet */
	s = seg(v, 1, 20);
	sum = *s->summary;
	sum.end_kind = WALSCAN_END_SEGMENT;
	sum.cont = WALSCAN_CONT_OTHER;
	sum.cont_lsn = lsn(20, 0xFFFFF0);
	plan_segment_set_summary(s, &sum, at(1139));
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_contains(r.reason, "continues into WAL segment 000000010000000000000015, which has "
	                          "not been archived yet");
	plan_view_free(v);
}

static void
add_rp(PlanView *v, WalSegNo segno, uint32_t off, int sec, const char *name)
{
	PlanSegment *s = seg(v, 1, segno);
	WalSummary   sum = *s->summary;

	sum.restore_points[sum.nrestore_points].lsn = lsn(segno, off);
	sum.restore_points[sum.nrestore_points].time_us = at(sec);
	strcpy(sum.restore_points[sum.nrestore_points].name, name);
	sum.nrestore_points++;
	plan_segment_set_summary(s, &sum, s->source_mtime_us);
}

static void
test_name(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;

	(void) state;
	add_run(v, 1, 1, 30, 0);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T001000Z", 1, 10, 12, 550, 700);
	add_rp(v, 5, 0x100, 250, "before-upgrade");
	add_rp(v, 11, 0x100, 610, "during-backup");
	add_rp(v, 15, 0x100, 850, "nightly");
	add_rp(v, 20, 0x100, 1150, "nightly");
	memset(&t, 0, sizeof(t));
	t.kind = PLAN_TARGET_NAME;

	/* the first "nightly" after the newest backup */
	strcpy(t.name, "nightly");
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T001000Z");
	assert_string_equal(r.last_wal, "00000001000000000000000F");
	assert_int_equal(r.stop_lsn, lsn(15, 0x100));
	assert_string_equal(r.recovery_target_name, "recovery_target_name");
	assert_string_equal(r.recovery_target_value, "nightly");

	/* made while the newest backup ran: the older backup reaches it */
	strcpy(t.name, "during-backup");
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T000000Z");
	assert_string_equal(r.last_wal, "00000001000000000000000B");

	/* only before the newest backup */
	strcpy(t.name, "before-upgrade");
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T000000Z");
	assert_string_equal(r.last_wal, "000000010000000000000005");

	strcpy(t.name, "nope");
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "restore point \"nope\" not found in the repository");
	assert_string_equal(r.note, "It is not in the archived WAL after the start of backup "
	                            "20260921T000000Z.");

	/* forced to the newer backup, a restore point made during it */
	strcpy(t.name, "during-backup");
	strcpy(t.backup_id, "20260921T001000Z");
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "restore point \"during-backup\" (at 2026-09-21 14:23:30+00, "
	                              "LSN 0/B000100) was made while backup 20260921T001000Z was "
	                              "running: recovery from it cannot stop there");
	plan_view_free(v);
}

static void
test_name_after_gap(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;
	WalSegNo   s;

	(void) state;
	for (s = 1; s <= 30; s++)
		if (s != 17)
			add_seg(v, 1, s, (int) (s - 1) * 60, 3, (int) (s - 1) * 60 - 50,
			        (int) (s - 1) * 60 - 5);
	add_backup(v, "20260921T001000Z", 1, 10, 12, 550, 700);
	add_rp(v, 20, 0x100, 1150, "late");
	memset(&t, 0, sizeof(t));
	t.kind = PLAN_TARGET_NAME;
	strcpy(t.name, "late");
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "WAL segment 000000010000000000000011 is missing from the "
	                              "repository (needed to go from backup 20260921T001000Z to "
	                              "restore point \"late\")");
	plan_view_free(v);
}

static void
test_latest_immediate(void **state)
{
	PlanView  *v = new_view();
	PlanTarget t;
	PlanResult r;
	WalSegNo   s;

	(void) state;
	for (s = 1; s <= 30; s++)
		if (s != 25)
			add_seg(v, 1, s, (int) (s - 1) * 60, 3, (int) (s - 1) * 60 - 50,
			        (int) (s - 1) * 60 - 5);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T001000Z", 1, 10, 12, 550, 700);
	memset(&t, 0, sizeof(t));
	t.kind = PLAN_TARGET_LATEST;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.backup.id, "20260921T001000Z");
	assert_string_equal(r.last_wal, "000000010000000000000018");
	assert_string_equal(r.recovery_target_name, "");
	assert_int_equal(r.stop_time_us, at(23 * 60 - 5));
	assert_string_equal(r.note, "WAL segment 000000010000000000000019 is missing from the "
	                            "repository: recovery stops before it, and the WAL archived from "
	                            "00000001000000000000001A on cannot be replayed.");

	t.kind = PLAN_TARGET_IMMEDIATE;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_string_equal(r.last_wal, "00000001000000000000000C");
	assert_string_equal(r.recovery_target_name, "recovery_target");
	assert_string_equal(r.recovery_target_value, "immediate");
	plan_view_free(v);
}

/*
 * Timelines: backup on 1; timeline 2 forked at segment 12 (a restored copy
 * promoted there) while timeline 1 went on.
 */
static void
build_timelines(PlanView *v)
{
	PgbkError   err;
	const char *h2 = "1\t0/C000100\tafter a point-in-time restore\n";
	WalSegNo    s;

	add_run(v, 1, 1, 20, 0); /* timeline 1: commits every minute up to 1140 */
	add_backup(v, "20260921T001000Z", 1, 10, 11, 550, 650);
	assert_int_equal(plan_view_add_history(v, 2, h2, strlen(h2), &err), PGBK_OK);
	/* timeline 2 from segment 12 (its first holds timeline 1's WAL up to the switch) */
	for (s = 12; s <= 16; s++)
		add_seg(v, 2, s, 2000 + (int) (s - 12) * 60, 2, 2000 + (int) (s - 12) * 60 - 40,
		        2000 + (int) (s - 12) * 60 - 10);
}

static void
test_timelines(void **state)
{
	PlanView   *v = new_view();
	PlanTarget  t;
	PlanResult  r;
	PgbkError   err;
	const char *h3 = "1\t0/C000100\tfirst\n2\t0/E000000\tsecond\n";

	(void) state;
	build_timelines(v);

	/* latest (default): timeline 2 */
	target_time(&t, 2100);
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_int_equal(r.timeline, 2);
	assert_string_equal(r.first_wal, "00000001000000000000000A");
	assert_string_equal(r.last_wal, "00000002000000000000000E");
	assert_int_equal(r.nsegments, 5);
	assert_string_equal(r.recovery_target_timeline, "2");

	/* the same moment on timeline 1 */
	t.tli_mode = PLAN_TLI_NUMBER;
	t.tli = 1;
	target_time(&t, 900);
	t.tli_mode = PLAN_TLI_CURRENT;
	plan(v, &t, &r);
	assert_true(r.recoverable);
	assert_int_equal(r.timeline, 1);
	assert_string_equal(r.last_wal, "000000010000000000000011");

	/* a timeline the repository does not know */
	t.tli_mode = PLAN_TLI_NUMBER;
	t.tli = 5;
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "timeline 5 does not exist in the repository (its history file "
	                              "00000005.history is missing)");

	/* a segment of timeline 2 missing: named with its timeline */
	t.tli_mode = PLAN_TLI_LATEST;
	target_time(&t, 2100);
	plan_view_free(v);
	v = new_view();
	build_timelines(v);
	{
		PlanWalBlock *blk = plan_view_block(v, 2, 0, false);

		blk->segs[1].segno = 99; /* "remove" 0000000200000000000000 0D */
	}
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_contains(r.reason, "WAL segment 00000002000000000000000D is missing");
	plan_view_free(v);

	/* a backup that ended after its timeline forked is not on the chain */
	v = new_view();
	add_run(v, 1, 1, 20, 0);
	add_backup(v, "20260921T001000Z", 1, 10, 13, 550, 800);
	assert_int_equal(plan_view_add_history(v, 3, h3, strlen(h3), &err), PGBK_OK);
	target_time(&t, 1000);
	t.tli_mode = PLAN_TLI_NUMBER;
	t.tli = 3;
	plan(v, &t, &r);
	assert_false(r.recoverable);
	assert_string_equal(r.reason, "timeline 3 forked off timeline 1 at 0/C000100, before backup "
	                              "20260921T001000Z ended (0/D000138)");
	plan_view_free(v);
}

static void
test_window(void **state)
{
	PlanView  *v = new_view();
	PlanWindow w;
	PgbkError  err;
	WalSegNo   s;

	(void) state;
	for (s = 1; s <= 30; s++)
		if (s != 15 && s != 16)
			add_seg(v, 1, s, (int) (s - 1) * 60, 3, (int) (s - 1) * 60 - 50,
			        (int) (s - 1) * 60 - 5);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	add_backup(v, "20260921T002000Z", 1, 20, 21, 1150, 1250);
	assert_int_equal(plan_window(v, 0, &w, &err), PGBK_OK);
	assert_true(w.any);
	assert_int_equal(w.timeline, 1);
	assert_string_equal(w.earliest_backup, "20260921T000000Z");
	assert_int_equal(w.earliest_us, at(170));
	assert_int_equal(w.ngaps, 1);
	assert_string_equal(w.gaps[0].first_missing, "00000001000000000000000F");
	assert_string_equal(w.gaps[0].last_missing, "000000010000000000000010");
	assert_int_equal(w.gaps[0].from_us, at(13 * 60 - 5));
	assert_int_equal(w.gaps[0].to_us, at(1250));
	assert_int_equal(w.latest_commit_us, at(29 * 60 - 5));
	/* segment 30 was written at 1739: the quiet rule reaches that moment */
	assert_int_equal(w.latest_us, at(29 * 60 - 1));
	assert_string_equal(w.last_wal, "00000001000000000000001E");
	plan_view_free(v);

	/* no backup after the gap: the window ends before it */
	v = new_view();
	for (s = 1; s <= 30; s++)
		if (s != 15)
			add_seg(v, 1, s, (int) (s - 1) * 60, 3, (int) (s - 1) * 60 - 50,
			        (int) (s - 1) * 60 - 5);
	add_backup(v, "20260921T000000Z", 1, 2, 3, 70, 170);
	assert_int_equal(plan_window(v, 0, &w, &err), PGBK_OK);
	assert_int_equal(w.ngaps, 1);
	assert_int_equal(w.gaps[0].to_us, 0);
	assert_int_equal(w.latest_us, at(13 * 60 - 5));
	plan_view_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_no_backup),
	    cmocka_unit_test(test_time_basic),
	    cmocka_unit_test(test_time_before_backups),
	    cmocka_unit_test(test_single_backup),
	    cmocka_unit_test(test_backup_ids_skip),
	    cmocka_unit_test(test_missing_own_history),
	    cmocka_unit_test(test_time_missing_segment),
	    cmocka_unit_test(test_time_after_end),
	    cmocka_unit_test(test_time_quiet),
	    cmocka_unit_test(test_time_continuation),
	    cmocka_unit_test(test_time_reads_few_headers),
	    cmocka_unit_test(test_lsn),
	    cmocka_unit_test(test_name),
	    cmocka_unit_test(test_name_after_gap),
	    cmocka_unit_test(test_latest_immediate),
	    cmocka_unit_test(test_timelines),
	    cmocka_unit_test(test_window),
	};

	setenv("TZ", "UTC", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
