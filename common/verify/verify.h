/*
 * verify.h
 *	  Room verify; uses repo, format (codec, manifests) and wal (walchanges).
 *	  The object verifier: what "this object of the repository is sound"
 *	  means, in one place, for bk_verify() (pg_ext/verify.c, which starts
 *	  from the catalog, inside a backend) and pgbk verify (cli/cmd_verify.c,
 *	  which starts from the repository's listings, with threads).
 *
 *	  - the repository descriptor (pgbk.repo): it decodes (authenticated with
 *	    the key), is a descriptor (kind=descriptor), holds format 1 and a
 *	    database system identifier, and names the expected system;
 *	  - a WAL object (segment, .partial, .backup, .history): it decodes
 *	    within the limit of its kind and carries the name it is stored under;
 *	  - a change summary (changes/..., issue 12): it decodes within its limit,
 *	    carries the name of the segment it summarizes and its content decodes
 *	    as a summary (walchg_check_object), and (rebuild_check, for a sample:
 *	    it reads the segment) equals the summary rebuilt from its archived
 *	    segment; a segment or .partial archived
 *	    without one is a warning, not a problem: a backup that needs it
 *	    rebuilds it from the WAL (or falls back), and `pgbk wal-changes SEG
 *	    --rebuild` stores it;
 *	  - a base backup: its manifest decodes and names the descriptor's
 *	    database system; every file it lists (or a sample) exists, decodes
 *	    within the size the manifest records, and has that size and checksum.
 *
 *	  Every object is streamed through the codec's decoder with an output
 *	  sink that counts and discards: at most a frame of it (256 KiB raw, 1
 *	  MiB stored) is in memory at a time, whatever its size, so a backend
 *	  verifying a 1 GB relation segment stays small (t/053_verify_big.pl
 *	  measures it).  Only the descriptor's content (at most 1 MiB) is kept.
 *
 *	  Problems go to the caller's report callback as (kind, object,
 *	  problem): the backend emits a row, the CLI prints a line.  Warnings
 *	  (something is missing that nothing needs to restore, and that can be
 *	  made again) go to the warn callback the same way: the backend raises a
 *	  WARNING, the CLI prints a line beginning "warning: "; neither counts
 *	  them as problems (no row, no exit code 6).  A failure
 *	  that is no object's problem (the repository unreachable, out of
 *	  memory, interrupted) is returned as a status instead, for the caller
 *	  to raise.
 *
 *	  Plain C (malloc/free), no longjmp.  A callback may leave by longjmp (a
 *	  backend's ereport(ERROR) in tuplestore_putvalues or
 *	  CHECK_FOR_INTERRUPTS): this module holds no allocation of its own
 *	  while it calls one, and a manifest it loads is the caller's (handed
 *	  over before any report about it) to free however the caller leaves.
 */
#ifndef PGBK_VERIFY_H
#define PGBK_VERIFY_H

#include "format/codec.h"
#include "format/manifest.h"
#include "plan/plan.h"
#include "repo/repo.h"

/* The kinds a problem names (the first column of bk_verify's rows). */
#define VERIFY_KIND_REPOSITORY  "repository"
#define VERIFY_KIND_WAL         "wal"
#define VERIFY_KIND_WAL_GAP     "wal gap"
#define VERIFY_KIND_BACKUP      "backup"
#define VERIFY_KIND_BACKUP_FILE "backup file"
#define VERIFY_KIND_CHANGES     "change summary"

/* A problem found: kind (VERIFY_KIND_*), the object it names, what is wrong. */
typedef void (*VerifyReportFn)(void *arg, const char *kind, const char *object,
                               const char *problem);

typedef struct VerifyParams
{
	const PgbkKeyring *ring;   /* authenticates (and decrypts) every object */
	double             sample; /* fraction of the objects read, in (0, 1] */
	double (*random)(void);    /* uniform in [0, 1): draws the sample (sample < 1) */
	VerifyReportFn report;
	void          *report_arg;
	/* Warnings (see above); NULL: reported with report, as problems. */
	VerifyReportFn warn;
	void          *warn_arg;
	/*
	 * Optional: stored bytes as they are read (progress).  Called from the
	 * thread that reads; may be NULL.
	 */
	void (*progress)(void *arg, uint64_t stored_bytes);
	void *progress_arg;
} VerifyParams;

/* One object to read and what to check in it (built by the functions below). */
typedef struct VerifyObject
{
	const char   *kind;          /* VERIFY_KIND_WAL or VERIFY_KIND_BACKUP_FILE */
	const char   *object;        /* what a problem names */
	const char   *key;           /* repository key */
	uint64_t      max_raw;       /* content limit of its kind (CODEC_LIMIT_*, manifest size) */
	const char   *wal_name;      /* not NULL: the name the object must carry */
	const char   *changes_of;    /* not NULL: the change summary of this segment */
	bool          rebuild_check; /* a summary: also equal to one rebuilt from its segment */
	bool          check_content; /* size and hash must be the ones below */
	uint64_t      size;
	unsigned char hash[CODEC_HASH_BYTES];
	uint64_t      stored; /* stored bytes as listed or recorded (0: unknown) */
} VerifyObject;

typedef enum VerifyOutcome
{
	VERIFY_SOUND,   /* decoded, every check passed */
	VERIFY_MISSING, /* not in the repository (reported) */
	VERIFY_DAMAGED  /* reported */
} VerifyOutcome;

/* Is this object in the sample?  (Always when sample >= 1.) */
bool verify_sampled(const VerifyParams *p);

/*
 * Read one object, streamed, and judge it.  PGBK_OK when it was judged
 * (*outcome says how; a problem is reported); any other status, with err
 * set, when the repository could not be read (no problem of this object:
 * the caller stops).  repo may be a thread's own connection.
 */
PgbkStatus verify_object(const VerifyParams *p, Repo *repo, const VerifyObject *o,
                         VerifyOutcome *outcome, PgbkError *err);

/*
 * A WAL object: name is its file name (object and wal_name point to it),
 * key its repository key (both must outlive o); segsz the segment size
 * (0: not known, the largest PostgreSQL allows).
 */
void verify_wal_object(VerifyObject *o, const char *name, const char *key, uint32_t segsz);

/*
 * The change summary of segment (or .partial) segname, stored under key
 * (both must outlive o): the object a problem names is its key.  Missing,
 * it is a warning (verify_report_changes_missing), not a problem.
 */
void verify_changes_object(VerifyObject *o, const char *segname, const char *key);

/*
 * The warning for a segment archived without a change summary (the CLI finds
 * them by listing, verify_object by reading).
 */
void verify_report_changes_missing(const VerifyParams *p, const char *segname);

/* What the descriptor said, for the manifests' check. */
typedef struct VerifyDescriptor
{
	bool     present;           /* the object exists (sound or not) */
	bool     have_sysid;        /* it is sound: system_identifier is its */
	uint64_t system_identifier; /* of the database system the repository is for */
} VerifyDescriptor;

/*
 * Read and judge the descriptor.  expect_sysid (not 0): the database system
 * it must name (a backend's own), and a problem if it names another.  A
 * missing descriptor is not reported here (an empty repository has none
 * yet): the caller calls verify_descriptor_missing once it knows the
 * repository holds something.  PGBK_OK unless the repository could not be
 * read.
 */
PgbkStatus verify_descriptor(const VerifyParams *p, Repo *repo, uint64_t expect_sysid,
                             VerifyDescriptor *d, PgbkError *err);
void       verify_descriptor_missing(const VerifyParams *p);

/*
 * Load and judge backup id's manifest.  *m receives it (the caller frees it
 * with manifest_free) before anything about it is reported, or NULL when it
 * is missing or unreadable (reported).  d (may be NULL): a sound
 * descriptor's system must be the manifest's.  PGBK_OK unless the
 * repository could not be read.
 */
PgbkStatus verify_manifest(const VerifyParams *p, Repo *repo, const char *id,
                           const VerifyDescriptor *d, Manifest **m, PgbkError *err);

/*
 * Every file of a backup's manifest (the sampled ones) as a VerifyObject,
 * handed to each: a backend verifies it at once (verify_object), the CLI
 * queues a copy for its threads.  The object's strings live until each
 * returns.  A status other than PGBK_OK from each stops and is returned.
 */
typedef PgbkStatus (*VerifyEachFn)(void *arg, const VerifyObject *o, PgbkError *err);
PgbkStatus verify_backup_files(const VerifyParams *p, const Manifest *m, VerifyEachFn each,
                               void *arg, PgbkError *err);

/*
 * Chains (issue 12): every backup an incremental builds on, down to its full
 * backup, must be in the repository with a sound manifest.  entries, one
 * per backup listed, sorted by id: parent NULL for a full backup, sound when
 * its manifest was read and judged (its files are judged on their own).  A
 * problem per incremental whose chain is broken, naming the backup missing
 * or unreadable.
 */
typedef struct VerifyChainEntry
{
	const char *id;
	const char *parent; /* NULL: a full backup */
	bool        sound;
} VerifyChainEntry;
void verify_chains(const VerifyParams *p, const VerifyChainEntry *entries, int n);

/* The line every WAL gap names (one segment, or a run of them). */
void verify_report_wal_gap(const VerifyParams *p, const char *first, const char *last,
                           const char *backups);

/*
 * WAL continuity, by the planner's rules (common/plan) over any PlanView:
 * the CLI's on the repository, bk_verify's on the catalog.  Every backup
 * needs every segment from its start, along its timeline chain (the newest
 * timeline whose history files follow the backup's one; segment N read
 * from the newest timeline of the chain that had begun by N, as recovery
 * reads it), up to the newest archived segment of that chain (at least its
 * own end).  Each run of missing segments after a backup's start is one
 * gap of that backup; a missing segment cuts off everything after it.
 *
 * The gaps are collected, not reported, so that no allocation of this
 * module is held while a report callback runs: the caller reports each
 * (verify_report_wal_gap) and frees them.  Backups that are broken, or of
 * an invalid segment size, are skipped (their manifests are reported
 * elsewhere).  A backup whose own timeline has no history file is checked
 * on that timeline alone.  The view is read through its ops as needed
 * (list every block first for a repository: plan_view_list_all_wal).
 */
typedef struct VerifyWalGap
{
	char first[WALNAME_BUFLEN];
	char last[WALNAME_BUFLEN]; /* == first for one segment */
	char backup[MANIFEST_ID_LEN];
} VerifyWalGap;

typedef struct VerifyWalGaps
{
	int           n;
	int           cap;
	VerifyWalGap *gaps; /* by backup (ascending id), then by segment */
} VerifyWalGaps;

PgbkStatus verify_wal_continuity(PlanView *v, VerifyWalGaps *out, PgbkError *err);
void       verify_wal_gaps_free(VerifyWalGaps *g);

#endif /* PGBK_VERIFY_H */
