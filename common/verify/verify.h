/*
 * verify.h
 *	  Room verify; uses repo and format (codec, manifests).
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
 *	  problem): the backend emits a row, the CLI prints a line.  A failure
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
#include "repo/repo.h"

/* The kinds a problem names (the first column of bk_verify's rows). */
#define VERIFY_KIND_REPOSITORY  "repository"
#define VERIFY_KIND_WAL         "wal"
#define VERIFY_KIND_WAL_GAP     "wal gap"
#define VERIFY_KIND_BACKUP      "backup"
#define VERIFY_KIND_BACKUP_FILE "backup file"

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

/* The line every WAL gap names (one segment, or a run of them). */
void verify_report_wal_gap(const VerifyParams *p, const char *first, const char *last,
                           const char *backups);

#endif /* PGBK_VERIFY_H */
