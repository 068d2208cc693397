/*
 * plan.h
 *	  Room plan; uses repo, format (codec, manifests) and wal (walscan).
 *	  Planning a point-in-time restore from the repository alone: which base
 *	  backup, which timeline chain, which WAL segments, and whether the target
 *	  is reachable at all (DESIGN.md invariant 5).
 *
 * The planner works on a PlanView: plain arrays of backups, timeline history
 * files and archived WAL segments (grouped in blocks of one timeline and one
 * "log id", i.e. one wal/TTTTTTTTLLLLLLLL/ prefix).  A view filled by hand
 * (tests, or the extension from its catalog) has ops == NULL and is taken as
 * complete.  A view on a repository (plan_view_open) is filled lazily by its
 * ops: backup metadata newest first until one fits, WAL prefixes only when
 * the walk reaches them, WAL object headers (the walscan summary) only for
 * the few segments whose content matters.
 *
 * Rules (what PostgreSQL 15 recovery does, see walscan.h):
 *
 *	- The backup is the newest one, on the target timeline's history, that
 *	  ended before the target: stop time < target time; stop LSN <= target
 *	  LSN; for a name, one whose end precedes the restore point that recovery
 *	  would stop at; for 'latest' and 'immediate' the newest.  --backup forces
 *	  one (and says why it cannot reach the target if it cannot).
 *	- The target timeline: a number, 'current' (the backup's) or 'latest'
 *	  (the default, like PostgreSQL 12+: the highest timeline whose history
 *	  files follow the backup's one without a hole).  Segment N of the chain
 *	  is read from the newest timeline of the chain that had begun by N, as
 *	  XLogFileReadAnyTLI does; the backup must end before its timeline's
 *	  switchpoint.
 *	- Every segment from the backup's start to the segment where recovery
 *	  stops must be in the repository.  Where it stops:
 *	  time T: before the first commit/abort record whose time is > T (>= T
 *	  when exclusive), which must be archived completely.  A segment that the
 *	  repository received (listing mtime) more than PLAN_MTIME_MARGIN_US
 *	  before T cannot hold a commit after T, so summaries are read only from
 *	  the first segment received after T - margin.  A segment without a
 *	  summary proves nothing; the walk goes on to one that does.
 *	  If the archived WAL holds no commit after T but provably covers T (a
 *	  restore point made at or after T, or a segment whose file was last
 *	  written at or after T, both to the microsecond, with no commit it
 *	  cannot describe at its end), the database did not change between its last
 *	  commit before T and then: the plan says recoverable and stops recovery
 *	  at an LSN (the restore point, or the last complete record of that
 *	  segment) instead, because recovery_target_time would run out of WAL.
 *	  LSN L: after (inclusive) or before (exclusive) the first record that
 *	  starts at or after L, which must be archived completely; L must not be
 *	  before the backup's end.
 *	  name N: after the first restore point named N after the backup's start;
 *	  it must come after the backup's end.
 *	  immediate: at the backup's end.  latest: wherever the archived WAL
 *	  stops being continuous (gaps after that are reported in the note).
 *
 * Reasons are full sentences naming the missing piece; bk_restore_point()
 * gives the same text.
 */
#ifndef PGBK_PLAN_H
#define PGBK_PLAN_H

#include "format/codec.h"
#include "format/manifest.h"
#include "repo/repo.h"
#include "wal/walscan.h"

#define PLAN_REASON_LEN 768
#define PLAN_TIME_LEN   40

/* Clock differences between the database server and the repository. */
#define PLAN_MTIME_MARGIN_US INT64_C(60000000)

typedef enum PlanTargetKind
{
	PLAN_TARGET_LATEST = 0, /* all archived WAL (no recovery target) */
	PLAN_TARGET_IMMEDIATE,  /* recovery_target = 'immediate' */
	PLAN_TARGET_TIME,
	PLAN_TARGET_LSN,
	PLAN_TARGET_NAME
} PlanTargetKind;

typedef enum PlanTimelineMode
{
	PLAN_TLI_LATEST = 0,
	PLAN_TLI_CURRENT,
	PLAN_TLI_NUMBER
} PlanTimelineMode;

typedef struct PlanTarget
{
	PlanTargetKind   kind;
	int64_t          time_us;                   /* TIME: Unix microseconds */
	WalLsn           lsn;                       /* LSN */
	char             name[WALSCAN_RP_NAME_LEN]; /* NAME */
	bool             exclusive;                 /* recovery_target_inclusive = off */
	PlanTimelineMode tli_mode;
	uint32_t         tli;                        /* PLAN_TLI_NUMBER */
	char             backup_id[MANIFEST_ID_LEN]; /* "" = choose */
} PlanTarget;

/* What the planner needs to know about one base backup. */
typedef struct PlanBackup
{
	char     id[MANIFEST_ID_LEN];
	bool     loaded; /* the fields below are valid */
	bool     broken; /* its manifest could not be read: not usable */
	char    *broken_reason;
	uint32_t timeline;
	WalLsn   start_lsn;
	WalLsn   stop_lsn;
	int64_t  start_time_us;
	int64_t  stop_time_us;
	uint32_t wal_segment_size;
	uint64_t bytes;
	uint64_t stored_bytes;
	uint64_t system_identifier;
	int      pg_version_num;
	/* chains (issue 12): an incremental needs its parent, and so on to a full */
	bool  incremental;
	char  parent[MANIFEST_ID_LEN]; /* incremental: the backup it builds on */
	int   chain_state;             /* PLAN_CHAIN_*, set by plan_backup_chain */
	int   chain_len;               /* PLAN_CHAIN_OK: backups in its chain, itself included */
	char *chain_reason;            /* PLAN_CHAIN_BROKEN: why (names the missing backup) */
} PlanBackup;

#define PLAN_CHAIN_UNCHECKED 0
#define PLAN_CHAIN_OK        1
#define PLAN_CHAIN_BROKEN    2

/* The longest chain a restore follows (full + incrementals). */
#define PLAN_CHAIN_MAX 128

#define PLAN_SUMMARY_UNREAD 0 /* not read yet */
#define PLAN_SUMMARY_OK     1 /* summary holds the walscan summary */
#define PLAN_SUMMARY_NONE   2 /* the object carries no (usable) summary */

/* One archived WAL segment (not .partial, .backup or .history). */
typedef struct PlanSegment
{
	uint32_t    tli;
	WalSegNo    segno;
	uint64_t    stored_bytes;
	int64_t     mtime_us; /* when the repository received it */
	int         summary_state;
	int64_t     source_mtime_us; /* last write of the file on the server; 0 unknown */
	WalSummary *summary;         /* PLAN_SUMMARY_OK */
} PlanSegment;

/* The segments of one timeline and log id, ascending. */
typedef struct PlanWalBlock
{
	uint32_t     tli;
	uint32_t     logid;
	bool         listed;
	int          n;
	int          cap;
	PlanSegment *segs;
} PlanWalBlock;

typedef struct PlanHistoryFile
{
	uint32_t   tli;
	WalHistory history;
} PlanHistoryFile;

typedef struct PlanView PlanView;

typedef struct PlanViewOps
{
	/* Fill b (b->id set); set b->broken for an unreadable manifest. */
	PgbkStatus (*load_backup)(PlanView *v, PlanBackup *b, PgbkError *err);
	/* Fill the segments of blk->tli / blk->logid (via plan_view_add_segment). */
	PgbkStatus (*list_block)(PlanView *v, PlanWalBlock *blk, PgbkError *err);
	/* Set seg->summary_state (and summary, source_mtime_us). */
	PgbkStatus (*read_summary)(PlanView *v, PlanSegment *seg, PgbkError *err);
	/* The first archived segment of tli after segno, if any. */
	PgbkStatus (*find_after)(PlanView *v, uint32_t tli, WalSegNo segno, bool *found, WalSegNo *next,
	                         PgbkError *err);
	void (*close)(PlanView *v);
} PlanViewOps;

struct PlanView
{
	const PlanViewOps *ops; /* NULL: the arrays are complete */
	void              *impl;
	char              *description; /* the repository, for messages */
	uint32_t           segsz;       /* 0 until known */
	bool               all_listed;  /* every WAL block is listed */

	int         nbackups; /* ascending by id (= by start time) */
	int         backups_cap;
	PlanBackup *backups;

	int              nhistories; /* ascending by timeline */
	int              histories_cap;
	PlanHistoryFile *histories;

	int           nblocks; /* ascending by (tli, logid) */
	int           blocks_cap;
	PlanWalBlock *blocks;

	/* .partial and .backup file names (plan_view_list_all_wal only) */
	int    nextra;
	int    extra_cap;
	char **extra;

	/* statistics: repository requests made through ops */
	uint64_t nbackup_loads;
	uint64_t nblock_lists;
	uint64_t nsummary_reads;
};

/* What plan_make decided. */
typedef struct PlanResult
{
	bool recoverable;
	char reason[PLAN_REASON_LEN]; /* why not, when not recoverable */
	char note[PLAN_REASON_LEN];   /* anything else worth saying ("" if nothing) */

	bool       have_backup;
	PlanBackup backup; /* broken_reason, chain_reason not copied */
	uint32_t   timeline;
	/* the backups a restore reads, oldest (the full) first, backup.id last */
	int  chain_len;
	char chain[PLAN_CHAIN_MAX][MANIFEST_ID_LEN];

	/* the WAL recovery needs: segments first..last along the chain */
	bool     have_wal;
	char     first_wal[WALNAME_BUFLEN];
	char     last_wal[WALNAME_BUFLEN];
	uint64_t nsegments;
	uint64_t wal_bytes;

	/* where recovery stops (as far as the summaries tell) */
	WalLsn  stop_lsn;     /* record recovery stops at/after; 0 unknown */
	int64_t stop_time_us; /* its time (commit, restore point); 0 unknown */
	bool    quiet;        /* time target turned into an LSN target */

	/* recovery settings: name = 'value' lines for postgresql.auto.conf */
	char recovery_target_name[32]; /* e.g. "recovery_target_time"; "" none */
	char recovery_target_value[WALSCAN_RP_NAME_LEN * 2 + 8];
	bool recovery_target_inclusive;
	char recovery_target_timeline[16];
} PlanResult;

/* View construction (tests, catalog-based callers, and plan.c itself). */
PlanView     *plan_view_new(void);
void          plan_view_free(PlanView *v);
PlanBackup   *plan_view_add_backup(PlanView *v, const char *id);
PgbkStatus    plan_view_add_history(PlanView *v, uint32_t tli, const char *text, size_t len,
                                    PgbkError *err);
PlanWalBlock *plan_view_block(PlanView *v, uint32_t tli, uint32_t logid, bool create);
PlanSegment  *plan_view_add_segment(PlanView *v, uint32_t tli, WalSegNo segno, uint64_t stored,
                                    int64_t mtime_us);
bool          plan_view_add_extra(PlanView *v, const char *name);
/* Give a segment its summary (copied); NULL: it has none. */
bool plan_segment_set_summary(PlanSegment *s, const WalSummary *sum, int64_t source_mtime_us);

/*
 * A view on a repository: lists the backup ids (manifests only) and the
 * history files now; everything else on demand.  ring may be NULL for an
 * unencrypted repository.
 */
PgbkStatus plan_view_open(Repo *repo, const PgbkKeyring *ring, PlanView **out, PgbkError *err);

/* List every WAL prefix of the repository (for pgbk info). */
PgbkStatus plan_view_list_all_wal(PlanView *v, PgbkError *err);

/* Load a backup's metadata (through ops if needed). */
PgbkStatus plan_view_load_backup(PlanView *v, PlanBackup *b, PgbkError *err);

/* The segment, NULL if not archived; lists its block on demand. */
PgbkStatus plan_view_segment(PlanView *v, uint32_t tli, WalSegNo segno, PlanSegment **out,
                             PgbkError *err);
PgbkStatus plan_view_summary(PlanView *v, PlanSegment *s, PgbkError *err);

/*
 * Decide.  Returns PGBK_OK when it could decide (res->recoverable says
 * what); an error only when the repository could not be read.
 */
PgbkStatus plan_make(PlanView *v, const PlanTarget *t, PlanResult *res, PgbkError *err);

/* Timelines: the chain of timeline tli (its history, or [tli] alone). */
PgbkStatus plan_chain(PlanView *v, uint32_t tli, WalHistory *out, PgbkError *err);
/*
 * Timeline whose file holds segment segno on a chain: the newest timeline
 * (not older than min_tli) that had begun by that segment, as PostgreSQL's
 * XLogFileReadAnyTLI looks for it.
 */
uint32_t plan_chain_tli_of_seg(const WalHistory *chain, WalSegNo segno, uint32_t segsz,
                               uint32_t min_tli);
/*
 * Chains.  A backup is usable only if its whole chain is: every parent
 * listed in the view, readable, older than its child (ids are start
 * times), down to a full backup, at most PLAN_CHAIN_MAX long.  Sets
 * b->chain_state (and chain_len or chain_reason) once; the reason names the
 * missing or unusable backup.  ids (may be NULL, else PLAN_CHAIN_MAX
 * entries) receives the chain, oldest first.  An error only when the
 * repository could not be read.
 */
PgbkStatus  plan_backup_chain(PlanView *v, PlanBackup *b, char (*ids)[MANIFEST_ID_LEN], int *n,
                              PgbkError *err);
PlanBackup *plan_view_find_backup(PlanView *v, const char *id);
/* "F <- I1 <- I2" (backup ids, oldest first), truncated to len. */
char *plan_format_chain(const PlanResult *res, char *buf, size_t len);

/*
 * Expiry over chains: keep[i] (v->backups order) says which backups the
 * depth window needs on their own; every backup a kept one's chain reads is
 * marked kept too, with needed_by[i] (MANIFEST_ID_LEN each, "" otherwise)
 * naming the newest kept backup that needs it.  So expiring never orphans
 * an incremental.  Backups whose chain is broken keep nothing below them
 * beyond what is present.
 */
PgbkStatus plan_expiry_keep_chains(PlanView *v, bool *keep, char (*needed_by)[MANIFEST_ID_LEN],
                                   PgbkError *err);

/* The newest timeline reachable from tli through consecutive history files. */
uint32_t plan_newest_timeline(const PlanView *v, uint32_t tli);

/*
 * The parent of an incremental backup starting at lsn on timeline chain
 * chain (plan_chain): the newest complete backup of system sysid (0: any)
 * whose start lies on the chain, on the timeline the chain gives for it,
 * and which ended at or before lsn.  PGBK_NOT_FOUND (with a reason) when
 * there is none; *out points into v->backups.
 */
PgbkStatus plan_parent(PlanView *v, const WalHistory *chain, WalLsn lsn, uint64_t sysid,
                       PlanBackup **out, PgbkError *err);

/*
 * The recoverable window on a timeline chain (0: 'latest' from timeline 1),
 * for pgbk info and bk_restore_window().
 */
#define PLAN_MAX_GAPS 64
typedef struct PlanGap
{
	char    first_missing[WALNAME_BUFLEN];
	char    last_missing[WALNAME_BUFLEN];
	int64_t from_us; /* targets after this ... */
	int64_t to_us;   /* ... and up to this are not recoverable; 0: open-ended */
} PlanGap;

typedef struct PlanWindow
{
	bool     any; /* something is recoverable */
	char     reason[PLAN_REASON_LEN];
	uint32_t timeline;
	char     earliest_backup[MANIFEST_ID_LEN];
	int64_t  earliest_us;      /* the oldest usable backup's stop time */
	int64_t  latest_us;        /* newest recoverable moment */
	int64_t  latest_commit_us; /* newest archived commit on the chain; 0 none */
	char     last_wal[WALNAME_BUFLEN];
	int      ngaps;
	PlanGap  gaps[PLAN_MAX_GAPS];
} PlanWindow;

PgbkStatus plan_window(PlanView *v, uint32_t tli, PlanWindow *w, PgbkError *err);

/*
 * The backups that end inside one stretch of the window [from_us, to_us]
 * and can be restored (their whole chain is usable): how many, how many of
 * them are incremental, and the longest chain a restore into the stretch
 * reads (1: full backups only).  bk_restore_window() shows these.
 */
typedef struct PlanStretchBackups
{
	int backups;
	int incrementals;
	int longest_chain;
} PlanStretchBackups;

PgbkStatus plan_stretch_backups(PlanView *v, int64_t from_us, int64_t to_us,
                                PlanStretchBackups *out, PgbkError *err);

/*
 * Backup metadata from a loaded manifest.  (The same metadata in the
 * manifest object's header, the "backup.*" attributes, is a format rule:
 * manifest_backup_attrs in format/manifest.h.)
 */
void plan_backup_from_manifest(PlanBackup *b, const Manifest *m);

/* "2026-11-25 14:07:00+00" (UTC; fractions only when not zero). */
char *plan_format_time(int64_t us, char *buf, size_t len);

/* Human-readable byte count ("1.2 GB"). */
char *plan_format_bytes(uint64_t n, char *buf, size_t len);

#endif /* PGBK_PLAN_H */
