/*
 * layout.h
 *	  Room format; uses base only.
 *	  Where each kind of object lives in a repository.  Keys are relative to
 *	  the repository root (repo.h):
 *
 *	  pgbk.repo							repository descriptor (format, system id)
 *	  pgbk.check-<random>				a test object `pgbk check` writes, reads
 *										back and removes at once
 *	  wal/TTTTTTTTLLLLLLLL/<name>		segments, .partial and .backup files,
 *										grouped like pgBackRest by timeline and
 *										"log id" (256 segments of 16 MiB each)
 *	  wal/history/TTTTTTTT.history		timeline history files (listable on
 *										their own; they sort after every
 *										segment directory)
 *	  backup/<id>/data/<path>			base backup files (data directory paths)
 *	  manifest/<id>						base backup manifests, written last: a
 *										manifest marks a complete backup, and
 *										listing manifest/ lists the backups
 *										without listing their files
 *	  changes/TTTTTTTTLLLLLLLL/<name>	change summaries (walchanges.h): which
 *										relation blocks the records beginning in
 *										segment <name> (or <name>.partial) touch;
 *										derived from wal/, rebuilt when missing
 *	  files/							the watcher's restic repository
 *
 *	  A listing of wal/ in key order is WAL order within each timeline, and
 *	  the same order as the file names' (history files come last).
 */
#ifndef PGBK_LAYOUT_H
#define PGBK_LAYOUT_H

#include "base/pgbk_common.h"

#define LAYOUT_DESCRIPTOR      "pgbk.repo"
#define LAYOUT_CHECK_PREFIX    "pgbk.check-"
#define LAYOUT_WAL_PREFIX      "wal/"
#define LAYOUT_HISTORY_PREFIX  "wal/history/"
#define LAYOUT_BACKUP_PREFIX   "backup/"
#define LAYOUT_MANIFEST_PREFIX "manifest/"
#define LAYOUT_FILES_PREFIX    "files/"
#define LAYOUT_CHANGES_PREFIX  "changes/"
#define LAYOUT_KEY_LEN         1024

/*
 * Key of an archived WAL-area file (segment, .partial, .backup, .history)
 * given its bare file name.  False if the name is not one of those.
 */
bool layout_wal_key(const char *fname, char *key, size_t keylen);

/* The file name part of a wal/ key (pointer into key); NULL if not one. */
const char *layout_wal_name(const char *key);

/*
 * Key of the change summary of a segment or .partial file given its bare
 * name, grouped like its wal/ key.  False for any other name.
 */
bool layout_changes_key(const char *segname, char *key, size_t keylen);

/*
 * The segment (or .partial) name a changes/ key is the summary of (pointer
 * into key); NULL if the key is not one layout_changes_key makes.
 */
const char *layout_changes_name(const char *key);

/* Key of a base backup's manifest, and of one of its files. */
bool layout_backup_manifest_key(const char *backup_id, char *key, size_t keylen);
bool layout_backup_file_key(const char *backup_id, const char *path, char *key, size_t keylen);

/*
 * A backup id: its start time to the second, UTC, as YYYYMMDDTHHMMSSZ (so
 * ids sort as times do).  Also the bound planners and expiry compare ids
 * with.  outlen >= 17.
 */
void layout_backup_id_format(int64_t unix_seconds, char *out, size_t outlen);

/* The backup id of a manifest/<id> key; false if key is not one. */
bool layout_backup_id_of_manifest(const char *key, char *id, size_t idlen);

#endif /* PGBK_LAYOUT_H */
