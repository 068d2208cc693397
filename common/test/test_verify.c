/*
 * test_verify.c
 *	  Tests of room verify (cmocka); uses unit.h, verify.c, repo, format, wal
 *	  (walchanges) and config.
 *	  Unit tests for common/verify (the object verifier of bk_verify and
 *	  pgbk verify) over a local repository in a scratch directory: sound,
 *	  missing, damaged, renamed and mismatching objects each give their
 *	  outcome and one report; change summaries (a missing one a warning);
 *	  the descriptor; a manifest's files.
 */
#include "unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "format/codec.h"
#include "format/keys.h"
#include "format/layout.h"
#include "format/manifest.h"
#include "repo/repo.h"
#include "verify/verify.h"
#include "wal/walchanges.h"

#define WAL1 "000000010000000000000001"
#define WAL2 "000000010000000000000002"

typedef struct Fixture
{
	char         dir[256];
	PgbkKeyring *ring;
	PgbkConfig  *cfg;
	Repo        *repo;
	VerifyParams p;
	int          nreports;
	char         last[4 * PGBK_ERRMSG_LEN]; /* "kind object: problem" */
	int          nwarnings;
	char         last_warning[4 * PGBK_ERRMSG_LEN];
} Fixture;

static void
collect_warning(void *arg, const char *kind, const char *object, const char *warning)
{
	Fixture *f = arg;

	f->nwarnings++;
	snprintf(f->last_warning, sizeof(f->last_warning), "%s %s: %s", kind, object, warning);
}

static void
collect(void *arg, const char *kind, const char *object, const char *problem)
{
	Fixture *f = arg;

	f->nreports++;
	snprintf(f->last, sizeof(f->last), "%s %s: %s", kind, object, problem);
}

static int
setup(void **state)
{
	Fixture    *f = calloc(1, sizeof(Fixture));
	const char *tmp = getenv("PGBK_TEST_TMP") ? getenv("PGBK_TEST_TMP") : "/tmp";
	char        key[300], text[1024];
	PgbkError   err;

	snprintf(f->dir, sizeof(f->dir), "%s/pgbk-test-verify-XXXXXX", tmp);
	assert_non_null(mkdtemp(f->dir));
	snprintf(key, sizeof(key), "%s/pgbk.key", f->dir);
	if (keyring_generate_file(key, &err) != PGBK_OK || keyring_load(key, &f->ring, &err) != PGBK_OK)
		fail_msg("key: %s", err.msg);
	snprintf(text, sizeof(text), "%s/repo", f->dir);
	assert_int_equal(mkdir(text, 0700), 0);
	snprintf(text, sizeof(text), "repository = '%s/repo'\nkey_file = '%s'\n", f->dir, key);
	if (config_parse_string(text, "test.conf", f->dir, &f->cfg, &err) != PGBK_OK)
		fail_msg("config: %s", err.msg);
	if (repo_open(f->cfg, &f->repo, &err) != PGBK_OK)
		fail_msg("repo: %s", err.msg);
	f->p.ring = f->ring;
	f->p.sample = 1.0;
	f->p.report = collect;
	f->p.report_arg = f;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	Fixture *f = *state;
	char     cmd[400];

	repo_close(f->repo);
	config_free(f->cfg);
	keyring_free(f->ring);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Store content under key as a pgbk object; hash receives its content hash. */
static void
put(Fixture *f, const char *key, const void *data, size_t len, const char *attrs,
    unsigned char hash[CODEC_HASH_BYTES])
{
	CodecParams   params;
	PgbkBuf       out;
	PgbkError     err;
	unsigned char h[CODEC_HASH_BYTES];

	memset(&params, 0, sizeof(params));
	params.compression = PGBK_COMPRESS_ZSTD;
	params.level = 3;
	params.keyring = f->ring;
	params.encrypt = true;
	pgbk_buf_init(&out);
	if (codec_encode(&params, data, len, attrs, &out, hash ? hash : h, &err) != PGBK_OK ||
	    repo_put(f->repo, key, out.data, out.len, NULL, &err) != PGBK_OK)
		fail_msg("put %s: %s", key, err.msg);
	pgbk_buf_free(&out);
}

static PgbkStatus
check(Fixture *f, const VerifyObject *o, VerifyOutcome *outcome)
{
	PgbkError err;

	pgbk_error_clear(&err);
	f->nreports = 0;
	f->last[0] = '\0';
	f->nwarnings = 0;
	f->last_warning[0] = '\0';
	return verify_object(&f->p, f->repo, o, outcome, &err);
}

static void
test_wal_objects(void **state)
{
	Fixture      *f = *state;
	char          key1[LAYOUT_KEY_LEN], key2[LAYOUT_KEY_LEN];
	VerifyObject  o;
	VerifyOutcome outcome;
	char          seg[4096];

	memset(seg, 'w', sizeof(seg));
	layout_wal_key(WAL1, key1, sizeof(key1));
	layout_wal_key(WAL2, key2, sizeof(key2));
	put(f, key1, seg, sizeof(seg), "kind=wal\nname=" WAL1 "\nwal.kind=segment\n", NULL);

	verify_wal_object(&o, WAL1, key1, 16 * 1024 * 1024);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_SOUND);
	assert_int_equal(f->nreports, 0);

	/* missing */
	verify_wal_object(&o, WAL2, key2, 16 * 1024 * 1024);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_MISSING);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "wal " WAL2 ": missing: "));

	/* a segment copied under another name */
	put(f, key2, seg, sizeof(seg), "kind=wal\nname=" WAL1 "\nwal.kind=segment\n", NULL);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, WAL1));

	/* larger than its kind allows */
	verify_wal_object(&o, WAL1, key1, 1024 * 1024);
	o.max_raw = 1024;
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_non_null(strstr(f->last, "wal " WAL1 ": unreadable: "));
}

/* Flip one byte of a local repository's object, len bytes before its end. */
static void
flip_byte(Fixture *f, const char *key, long from_end)
{
	char  path[1400];
	FILE *fp;
	long  size;
	int   c;

	snprintf(path, sizeof(path), "%s/repo/%s", f->dir, key);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, size - from_end, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, size - from_end, SEEK_SET);
	fputc(c ^ 0x01, fp);
	fclose(fp);
}

static void
test_change_summaries(void **state)
{
	Fixture      *f = *state;
	char          key1[LAYOUT_KEY_LEN], key2[LAYOUT_KEY_LEN], key3[LAYOUT_KEY_LEN];
	WalChanges   *c = walchg_new();
	WalRelFork    rf = {1663, 5, 16384, WALCHG_FORK_MAIN};
	CodecParams   params;
	PgbkError     err;
	VerifyObject  o;
	VerifyOutcome outcome;

	/* the key <-> name mapping both directions agree on */
	assert_true(layout_changes_key(WAL1, key1, sizeof(key1)));
	assert_string_equal(layout_changes_name(key1), WAL1);
	assert_true(layout_changes_key(WAL2 ".partial", key3, sizeof(key3)));
	assert_string_equal(layout_changes_name(key3), WAL2 ".partial");
	assert_null(layout_changes_name("wal/0000000100000000/" WAL1));
	assert_null(layout_changes_name("changes/0000000100000000/" WAL1 ".backup"));
	assert_null(layout_changes_name("changes/0000000200000000/" WAL1)); /* wrong directory */
	assert_null(layout_changes_name("changes/" WAL1));
	assert_true(layout_changes_key(WAL2, key2, sizeof(key2)));

	memset(&params, 0, sizeof(params));
	params.compression = PGBK_COMPRESS_ZSTD;
	params.level = 3;
	params.keyring = f->ring;
	params.encrypt = true;
	assert_non_null(c);
	assert_true(walchg_add_block(c, &rf, 7));
	walchg_set_range(c, 1, 0x1000028, 0x2000000);
	pgbk_error_clear(&err);
	if (walchg_store(f->repo, &params, WAL1, c, &err) != PGBK_OK)
		fail_msg("store: %s", err.msg);
	walchg_free(c);

	/* sound: no problem, no warning */
	verify_changes_object(&o, WAL1, key1);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_SOUND);
	assert_int_equal(f->nreports, 0);
	assert_int_equal(f->nwarnings, 0);

	/* compared with a rebuilt one: a segment missing or not scanning decides nothing */
	o.rebuild_check = true;
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_SOUND);
	assert_int_equal(f->nreports, 0);
	{
		char walkey[LAYOUT_KEY_LEN];
		char junk[8192];

		memset(junk, 'j', sizeof(junk));
		layout_wal_key(WAL1, walkey, sizeof(walkey));
		put(f, walkey, junk, sizeof(junk), "kind=wal\nname=" WAL1 "\nwal.kind=segment\n", NULL);
		assert_int_equal(check(f, &o, &outcome), PGBK_OK);
		assert_int_equal(outcome, VERIFY_SOUND);
		assert_int_equal(f->nreports, 0);
		assert_int_equal(f->nwarnings, 0);
	}

	/* missing: no problem but a warning, naming the key and the command */
	f->p.warn = collect_warning;
	f->p.warn_arg = f;
	verify_changes_object(&o, WAL2, key2);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_MISSING);
	assert_int_equal(f->nreports, 0);
	assert_int_equal(f->nwarnings, 1);
	assert_non_null(strstr(f->last_warning,
	                       "change summary "
	                       "changes/0000000100000000/" WAL2 ": missing: WAL segment " WAL2));
	assert_non_null(strstr(f->last_warning, "pgbk wal-changes " WAL2 " --rebuild"));
	/* a caller without a warn callback still hears of it (as a problem) */
	f->p.warn = NULL;
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "missing: WAL segment " WAL2));
	f->p.warn = collect_warning;

	/* an authentic summary copied under another segment's key: damaged, naming both */
	put(f, key2, "x", 1, "kind=changes\nname=changes/" WAL1 "\n", NULL);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_int_equal(f->nreports, 1);
	assert_int_equal(f->nwarnings, 0);
	assert_non_null(strstr(f->last, "change summary changes/0000000100000000/" WAL2 ": "));
	assert_non_null(strstr(f->last, WAL1));

	/* authentic, rightly named, but its content is no summary */
	put(f, key2, "not a summary", 13, "kind=changes\nname=changes/" WAL2 "\n", NULL);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_int_equal(f->nreports, 1);
	assert_non_null(
	    strstr(f->last, "change summary changes/0000000100000000/" WAL2 ": unreadable: "));

	/* one byte changed: damaged, naming the key */
	flip_byte(f, key1, 20);
	verify_changes_object(&o, WAL1, key1);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_int_equal(f->nreports, 1);
	assert_int_equal(f->nwarnings, 0);
	assert_non_null(
	    strstr(f->last, "change summary changes/0000000100000000/" WAL1 ": unreadable: "));
	f->p.warn = NULL;
}

static void
test_backup_files(void **state)
{
	Fixture      *f = *state;
	size_t        len = 8 * 1024 * 1024 + 123; /* several frames */
	unsigned char hash[CODEC_HASH_BYTES];
	char         *data = malloc(len);
	char          path[600];
	VerifyObject  o;
	VerifyOutcome outcome;
	size_t        i;
	FILE         *fp;
	long          size;
	int           c;

	for (i = 0; i < len; i++)
		data[i] = (char) (i * 2654435761u >> 13);
	put(f, "backup/B/data/base/1/1259", data, len, "kind=backup-file\n", hash);
	memset(&o, 0, sizeof(o));
	o.kind = VERIFY_KIND_BACKUP_FILE;
	o.object = "B:base/1/1259";
	o.key = "backup/B/data/base/1/1259";
	o.max_raw = len;
	o.check_content = true;
	o.size = len;
	memcpy(o.hash, hash, CODEC_HASH_BYTES);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_SOUND);
	assert_int_equal(f->nreports, 0);

	/* the manifest records another checksum */
	o.hash[0] ^= 1;
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_non_null(
	    strstr(f->last, "backup file B:base/1/1259: content does not match the manifest"));
	o.hash[0] ^= 1;

	/* more content than the manifest records */
	o.max_raw = o.size = len - 1;
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_non_null(strstr(f->last, ": unreadable: "));
	o.max_raw = o.size = len;

	/* a flipped byte near the end of the stored object */
	snprintf(path, sizeof(path), "%s/repo/backup/B/data/base/1/1259", f->dir);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, size - 40, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, size - 40, SEEK_SET);
	fputc(c ^ 1, fp);
	fclose(fp);
	assert_int_equal(check(f, &o, &outcome), PGBK_OK);
	assert_int_equal(outcome, VERIFY_DAMAGED);
	assert_non_null(strstr(f->last, ": unreadable: "));
	free(data);
}

static void
test_descriptor(void **state)
{
	Fixture         *f = *state;
	const char      *doc = "{\"format\": 1, \"system_identifier\": \"7312345678901234567\"}";
	VerifyDescriptor d;
	PgbkError        err;

	/* none yet: not reported here */
	f->nreports = 0;
	assert_int_equal(verify_descriptor(&f->p, f->repo, 0, &d, &err), PGBK_OK);
	assert_false(d.present);
	assert_int_equal(f->nreports, 0);
	verify_descriptor_missing(&f->p);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "repository pgbk.repo: missing: "));

	put(f, LAYOUT_DESCRIPTOR, doc, strlen(doc), "kind=descriptor\n", NULL);
	f->nreports = 0;
	assert_int_equal(verify_descriptor(&f->p, f->repo, 0, &d, &err), PGBK_OK);
	assert_true(d.present);
	assert_true(d.have_sysid);
	assert_true(d.system_identifier == 7312345678901234567ULL);
	assert_int_equal(f->nreports, 0);

	/* a backend of another system */
	assert_int_equal(verify_descriptor(&f->p, f->repo, 42, &d, &err), PGBK_OK);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "it names database system 7312345678901234567, but this "
	                                "server is database system 42"));

	/* another object copied over it */
	{
		const char *key = LAYOUT_DESCRIPTOR;

		repo_delete(f->repo, &key, 1, &err);
	}
	put(f, LAYOUT_DESCRIPTOR, doc, strlen(doc), "kind=wal\nname=" WAL1 "\n", NULL);
	f->nreports = 0;
	assert_int_equal(verify_descriptor(&f->p, f->repo, 0, &d, &err), PGBK_OK);
	assert_false(d.have_sysid);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "not a repository descriptor (it says kind=wal)"));
}

static PgbkStatus
count_each(void *arg, const VerifyObject *o, PgbkError *err)
{
	int *n = arg;

	(void) err;
	assert_true(o->check_content);
	assert_string_equal(o->kind, VERIFY_KIND_BACKUP_FILE);
	if (*n == 0)
	{
		assert_string_equal(o->object, "20260101T000000Z:base/1/1259");
		assert_string_equal(o->key, "backup/20260101T000000Z/data/base/1/1259");
		assert_true(o->size == 8192 && o->max_raw == 8192);
	}
	(*n)++;
	return PGBK_OK;
}

static double
always_high(void)
{
	return 0.99;
}

static void
test_manifest_files(void **state)
{
	Fixture     *f = *state;
	Manifest    *m = manifest_new();
	ManifestFile mf;
	PgbkError    err;
	int          n = 0;

	assert_non_null(m);
	snprintf(m->id, sizeof(m->id), "20260101T000000Z");
	memset(&mf, 0, sizeof(mf));
	mf.path = "base/1/1259";
	mf.size = 8192;
	assert_true(manifest_add_file(m, &mf));
	mf.path = "global/pg_control";
	assert_true(manifest_add_file(m, &mf));
	assert_int_equal(verify_backup_files(&f->p, m, count_each, &n, &err), PGBK_OK);
	assert_int_equal(n, 2);

	/* a sample draws from the caller's random source */
	f->p.sample = 0.5;
	f->p.random = always_high;
	n = 0;
	assert_int_equal(verify_backup_files(&f->p, m, count_each, &n, &err), PGBK_OK);
	assert_int_equal(n, 0);
	f->p.sample = 1.0;
	f->p.random = NULL;

	/* a manifest that is not there is a problem, not a failure */
	f->nreports = 0;
	{
		Manifest *loaded = (Manifest *) 1;

		assert_int_equal(verify_manifest(&f->p, f->repo, "20260101T000000Z", NULL, &loaded, &err),
		                 PGBK_OK);
		assert_null(loaded);
	}
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->last, "backup 20260101T000000Z: missing: "));
	manifest_free(m);
}

/* A hand-filled planner view (complete: no ops) with 16 MiB segments. */
#define CSEGSZ (16u * 1024 * 1024)

static void
cont_backup(PlanView *v, const char *id, uint32_t tli, WalSegNo start, WalSegNo stop)
{
	PlanBackup *b = plan_view_add_backup(v, id);

	assert_non_null(b);
	b->loaded = true;
	b->timeline = tli;
	b->start_lsn = start * CSEGSZ + 0x28;
	b->stop_lsn = stop * CSEGSZ + 0x138;
	b->wal_segment_size = CSEGSZ;
}

static void
expect_gap(const VerifyWalGaps *g, int i, const char *first, const char *last, const char *backup)
{
	assert_true(i < g->n);
	assert_string_equal(g->gaps[i].first, first);
	assert_string_equal(g->gaps[i].last, last);
	assert_string_equal(g->gaps[i].backup, backup);
}

/*
 * verify_wal_continuity, the one continuity rule of bk_verify and pgbk
 * verify: each run of missing segments after a backup's start is one gap of
 * that backup, up to the newest archived segment of its chain (at least its
 * own end); a second timeline's segments count from its switchpoint on.
 */
static void
test_wal_continuity(void **state)
{
	PlanView         *v = plan_view_new();
	VerifyWalGaps     g;
	PgbkError         err;
	WalSegNo          s;
	static const char hist2[] = "1\t0/B000000\tno recovery target specified\n";

	(void) state;
	assert_non_null(v);
	v->segsz = CSEGSZ;
	/* timeline 1: segments 1..12 but 5, 6 and 8; timeline 2 from 11: 11, 13, 14 */
	for (s = 1; s <= 12; s++)
		if (s != 5 && s != 6 && s != 8)
			assert_non_null(plan_view_add_segment(v, 1, s, 100, 0));
	assert_non_null(plan_view_add_segment(v, 2, 11, 100, 0));
	assert_non_null(plan_view_add_segment(v, 2, 13, 100, 0));
	assert_non_null(plan_view_add_segment(v, 2, 14, 100, 0));
	cont_backup(v, "20260101T000000Z", 1, 2, 2);
	cont_backup(v, "20260102T000000Z", 1, 7, 7);
	cont_backup(v, "20260103T000000Z", 1, 9, 9);

	/* without timeline 2's history: timeline 1 up to its newest segment, 12 */
	assert_int_equal(verify_wal_continuity(v, &g, &err), PGBK_OK);
	assert_int_equal(g.n, 3);
	expect_gap(&g, 0, "000000010000000000000005", "000000010000000000000006", "20260101T000000Z");
	expect_gap(&g, 1, "000000010000000000000008", "000000010000000000000008", "20260101T000000Z");
	expect_gap(&g, 2, "000000010000000000000008", "000000010000000000000008", "20260102T000000Z");
	verify_wal_gaps_free(&g);

	/* with it: segments from 11 on are read from timeline 2, where 12 is missing */
	assert_int_equal(plan_view_add_history(v, 2, hist2, strlen(hist2), &err), PGBK_OK);
	assert_int_equal(verify_wal_continuity(v, &g, &err), PGBK_OK);
	assert_int_equal(g.n, 6);
	expect_gap(&g, 1, "000000010000000000000008", "000000010000000000000008", "20260101T000000Z");
	expect_gap(&g, 2, "00000002000000000000000C", "00000002000000000000000C", "20260101T000000Z");
	expect_gap(&g, 4, "00000002000000000000000C", "00000002000000000000000C", "20260102T000000Z");
	expect_gap(&g, 5, "00000002000000000000000C", "00000002000000000000000C", "20260103T000000Z");
	verify_wal_gaps_free(&g);

	/* a backup with no WAL at all: its first segments, to its end */
	cont_backup(v, "20260104T000000Z", 2, 20, 21);
	assert_int_equal(verify_wal_continuity(v, &g, &err), PGBK_OK);
	assert_int_equal(g.n, 7);
	expect_gap(&g, 6, "000000020000000000000014", "000000020000000000000015", "20260104T000000Z");
	verify_wal_gaps_free(&g);
	plan_view_free(v);
}

/* Chains: a missing or unreadable parent anywhere below an incremental is reported. */
static void
test_chains(void **state)
{
	Fixture         *f = *state;
	VerifyChainEntry e[4] = {
	    {"20260921T000000Z", NULL, true},
	    {"20260921T001000Z", "20260921T000000Z", true},
	    {"20260921T002000Z", "20260921T001000Z", true},
	    {"20260921T003000Z", "20260921T002000Z", true},
	};

	f->p.report = collect;
	f->p.report_arg = f;
	f->nreports = 0;
	verify_chains(&f->p, e, 4);
	assert_int_equal(f->nreports, 0);
	/* an unreadable manifest in the middle: both incrementals above it */
	e[1].sound = false;
	verify_chains(&f->p, e, 4);
	assert_int_equal(f->nreports, 2);
	assert_non_null(strstr(f->last, "backup 20260921T003000Z: "));
	assert_non_null(strstr(f->last, "needs backup 20260921T001000Z, which has an unreadable "
	                                "manifest: it cannot be restored"));
	/* the full is gone */
	e[1].sound = true;
	f->nreports = 0;
	verify_chains(&f->p, &e[1], 3);
	assert_int_equal(f->nreports, 3);
	assert_non_null(strstr(f->last, "needs backup 20260921T000000Z, which is missing"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_wal_objects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_summaries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backup_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_manifest_files, setup, teardown),
	    cmocka_unit_test(test_wal_continuity),
	    cmocka_unit_test_setup_teardown(test_chains, setup, teardown),
	};
	PgbkError err;

	if (pgbk_crypto_init(&err) != PGBK_OK)
	{
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
