/*
 * manifest.h
 *	  Room format; uses repo.h and codec.h.
 *	  The base backup manifest: everything a restore needs to know about one
 *	  backup, stored as JSON inside a codec object at manifest/<id> (layout.h).
 *	  It is written last, after every file and after the WAL up to the
 *	  backup's stop point is in the repository, so its presence marks a
 *	  complete, restorable backup.
 *
 *	  {
 *	    "format": 1, "id": "20261127T143000Z", "label": "...",
 *	    "system_identifier": "7312...", "pg_version_num": 150020,
 *	    "timeline": 1, "start_lsn": "0/2000028", "stop_lsn": "0/2000138",
 *	    "start_wal": "000000010000000000000002", "stop_wal": "...",
 *	    "start_time": "2026-11-27T14:30:00.123456Z", "stop_time": "...",
 *	    "wal_segment_size": 16777216,
 *	    "backup_label": "START WAL LOCATION: ...", "tablespace_map": null,
 *	    "tablespaces": [{"oid": 16385, "location": "/srv/ts1"}],
 *	    "directories": [{"path": "pg_wal", "mode": 448}, ...],
 *	    "files": [{"path": "base/1/1259", "size": 8192, "mtime": 1790000000,
 *	               "mode": 384, "hash": "<XXH3-128 hex>", "stored": 1234}],
 *	    "bytes": ..., "stored_bytes": ..., "compression": "zstd", "encrypted": true,
 *	    "source_config": [{"path": "/etc/postgresql/15/main/postgresql.conf",
 *	                       "base64": "..."}]
 *	  }
 *
 *	  source_config (optional) holds the source's configuration files that
 *	  live outside its data directory (Debian keeps postgresql.conf, conf.d/,
 *	  pg_hba.conf and pg_ident.conf in /etc/postgresql/...), so a restore can
 *	  hand them over; a data directory copy alone would lose them.
 *
 *	  Incremental backups (format 2; a full backup keeps writing format 1 so
 *	  older readers still read it; readers accept both) add:
 *	    "type": "incremental" ("full" or absent: a full backup),
 *	    "parent": "<backup id>", "parent_start_lsn": "X/Y" (the lower end of
 *	    the change range), "chain_length": n (full 0, else parent's + 1),
 *	    "changes": {"mode": "summaries" | "page-lsn", "reason": "..."}
 *	  and a file entry may be a block file instead of a whole copy:
 *	    {"path", "size": <final file size>, "mtime", "mode",
 *	     "blocks": "0-5,9,12-40", "limit": <block number, optional>,
 *	     "hash": <XXH3-128 of the stored content>, "stored"}
 *	  whose object holds exactly the listed 8192-byte blocks of the file,
 *	  concatenated in order (the file's last block may be short when size is
 *	  not a multiple of 8192).  A block file listing no block ("blocks": "")
 *	  has no object at all: the file is unchanged since the parent.  Any
 *	  file may be one: an incremental records a whole file (a non-relation
 *	  file, an FSM or VM fork) whose bytes its parent's chain holds as one
 *	  whole copy, same size and same content hash, as a block file without
 *	  blocks instead of storing it again (manifest_chain_whole_source,
 *	  chain.h).
 *	  Reconstruction, for block b < ceil(size / 8192) of a block file: listed
 *	  -> this backup's object; else b >= limit (when set) -> zeros; else the
 *	  same path in the parent (recursively) when it has the path and b is
 *	  inside its size; else zeros.  A whole copy ends the recursion.
 *
 *	  File paths are relative to the data directory; files of a tablespace
 *	  appear under "pg_tblspc/<oid>/...".  The manifest is encrypted like
 *	  every object, so the plain content hashes it holds are not exposed.
 */
#ifndef PGBK_MANIFEST_H
#define PGBK_MANIFEST_H

#include "format/codec.h"
#include "repo/repo.h"

/* Format written: 1 for a full backup, 2 for an incremental; both are read. */
#define MANIFEST_FORMAT_FULL        1
#define MANIFEST_FORMAT_INCREMENTAL 2
#define MANIFEST_FORMAT             MANIFEST_FORMAT_INCREMENTAL /* newest read */
#define MANIFEST_ID_LEN             32

/* Blocks of relation files, as block files count them. */
#define MANIFEST_BLOCK_SIZE 8192
#define MANIFEST_NO_LIMIT   UINT32_MAX

/* An inclusive range of block numbers within one file. */
typedef struct ManifestBlockRange
{
	uint32_t first;
	uint32_t last;
} ManifestBlockRange;

typedef struct ManifestFile
{
	char         *path;
	uint64_t      size;  /* whole copy: raw bytes backed up; block file: final file size */
	int64_t       mtime; /* Unix seconds */
	unsigned int  mode;
	unsigned char hash[CODEC_HASH_BYTES]; /* XXH3-128 of the stored content */
	uint64_t      stored;                 /* bytes of its object in the repository */
	bool          has_blocks;             /* a block file (incremental) */
	char         *blocks;                 /* canonical range string; "" = none */
	uint32_t      limit;                  /* MANIFEST_NO_LIMIT = absent */
} ManifestFile;

typedef struct ManifestDir
{
	char        *path;
	unsigned int mode;
} ManifestDir;

typedef struct ManifestTablespace
{
	uint32_t oid;
	char    *location;
} ManifestTablespace;

typedef struct ManifestConfigFile
{
	char          *path; /* absolute path on the source */
	unsigned char *data;
	size_t         len;
} ManifestConfigFile;

/* Config files larger than this are not kept (a config file is small). */
#define MANIFEST_CONFIG_MAX (1024 * 1024)

typedef struct Manifest
{
	int                 format;
	char                id[MANIFEST_ID_LEN];
	char               *label;
	uint64_t            system_identifier;
	int                 pg_version_num;
	uint32_t            timeline;
	uint64_t            start_lsn;
	uint64_t            stop_lsn;
	char                start_wal[64];
	char                stop_wal[64];
	int64_t             start_time_us; /* Unix microseconds */
	int64_t             stop_time_us;
	uint32_t            wal_segment_size;
	char               *backup_label;
	char               *tablespace_map; /* NULL if none */
	int                 ntablespaces;
	ManifestTablespace *tablespaces;
	int                 ndirs;
	ManifestDir        *dirs;
	int                 nfiles;
	ManifestFile       *files;
	uint64_t            bytes;
	uint64_t            stored_bytes;
	char               *compression;
	bool                encrypted;
	int                 nconfig;
	ManifestConfigFile *config;
	/* incremental backups (all zero/NULL for a full one) */
	bool     incremental;
	char     parent[MANIFEST_ID_LEN]; /* "" for a full backup */
	uint64_t parent_start_lsn;
	int      chain_length;   /* full 0, incremental parent's + 1 */
	char    *changes_mode;   /* "summaries" | "page-lsn"; NULL for a full backup */
	char    *changes_reason; /* why it fell back, or NULL */
} Manifest;

#define MANIFEST_CHANGES_SUMMARIES "summaries"
#define MANIFEST_CHANGES_PAGE_LSN  "page-lsn"

Manifest *manifest_new(void);
void      manifest_free(Manifest *m);
/* Append entries (copies the strings, blocks too); false on out of memory. */
bool manifest_add_file(Manifest *m, const ManifestFile *f);
bool manifest_add_dir(Manifest *m, const char *path, unsigned int mode);
bool manifest_add_tablespace(Manifest *m, uint32_t oid, const char *location);
bool manifest_add_config(Manifest *m, const char *path, const void *data, size_t len);

/*
 * Block ranges, the one place for their syntax: "0-5,9,12-40", ascending,
 * disjoint and merged (no two ranges touch), decimal without leading zeros,
 * "" for none.  manifest_blocks_parse is strict: anything else is
 * PGBK_ERR_FORMAT; *ranges is malloc'ed (NULL when *n is 0).
 * manifest_blocks_format gives the canonical string of an ascending list of
 * block numbers (duplicates allowed); NULL on out of memory.
 */
PgbkStatus manifest_blocks_parse(const char *s, ManifestBlockRange **ranges, size_t *n,
                                 PgbkError *err);
char      *manifest_blocks_format(const uint32_t *blocks, size_t n);
/* Number of blocks in the ranges. */
uint64_t manifest_blocks_count(const ManifestBlockRange *ranges, size_t n);

/*
 * Bytes of a file's object content: its size for a whole copy; for a block
 * file, 8192 per listed block, less what the file's last block lacks when it
 * is listed and short.  0 for a block file without blocks: it has no object
 * (manifest_file_has_object).  The manifest reader has checked the ranges.
 */
uint64_t manifest_file_content_size(const ManifestFile *f);
bool     manifest_file_has_object(const ManifestFile *f);

PgbkStatus manifest_to_json(const Manifest *m, PgbkBuf *out, PgbkError *err);
PgbkStatus manifest_from_json(const char *json, size_t len, Manifest **out, PgbkError *err);

/* Read a backup's manifest (decode + verify + parse).  PGBK_NOT_FOUND if absent. */
PgbkStatus manifest_load(Repo *repo, const PgbkKeyring *ring, const char *backup_id, Manifest **out,
                         PgbkError *err);
/* Write a backup's manifest (never overwrites). */
PgbkStatus manifest_store(Repo *repo, const CodecParams *params, const Manifest *m, PgbkError *err);

/*
 * The backup's metadata as "backup.*" attributes of the manifest object's
 * header, appended to out (name=value lines, codec.h):
 *   backup.v=MANIFEST_BACKUP_ATTRS_VERSION  backup.tli  backup.start_lsn
 *   backup.stop_lsn  backup.start_time  backup.stop_time (Unix microseconds)
 *   backup.segsz  backup.bytes  backup.stored  backup.sysid  backup.pg_version
 *   backup.type (full | incremental); an incremental also has backup.parent,
 *   backup.parent_start_lsn and backup.chain (its chain length)
 * manifest_store writes them, so planners (plan.c) read a few kB per backup
 * instead of whole manifests; a manifest without them (or with another
 * backup.v) is loaded whole.
 */
#define MANIFEST_BACKUP_ATTRS_VERSION 1
PgbkStatus manifest_backup_attrs(const Manifest *m, PgbkBuf *out, PgbkError *err);

#endif /* PGBK_MANIFEST_H */
