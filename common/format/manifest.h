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
 *	  File paths are relative to the data directory; files of a tablespace
 *	  appear under "pg_tblspc/<oid>/...".  The manifest is encrypted like
 *	  every object, so the plain content hashes it holds are not exposed.
 */
#ifndef PGBK_MANIFEST_H
#define PGBK_MANIFEST_H

#include "format/codec.h"
#include "repo/repo.h"

#define MANIFEST_FORMAT 1
#define MANIFEST_ID_LEN 32

typedef struct ManifestFile
{
	char         *path;
	uint64_t      size;  /* raw bytes backed up */
	int64_t       mtime; /* Unix seconds */
	unsigned int  mode;
	unsigned char hash[CODEC_HASH_BYTES]; /* XXH3-128 of the content */
	uint64_t      stored;                 /* bytes of its object in the repository */
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
} Manifest;

Manifest *manifest_new(void);
void      manifest_free(Manifest *m);
/* Append entries (copies the strings); false on out of memory. */
bool manifest_add_file(Manifest *m, const ManifestFile *f);
bool manifest_add_dir(Manifest *m, const char *path, unsigned int mode);
bool manifest_add_tablespace(Manifest *m, uint32_t oid, const char *location);
bool manifest_add_config(Manifest *m, const char *path, const void *data, size_t len);

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
 * manifest_store writes them, so planners (plan.c) read a few kB per backup
 * instead of whole manifests; a manifest without them (or with another
 * backup.v) is loaded whole.
 */
#define MANIFEST_BACKUP_ATTRS_VERSION 1
PgbkStatus manifest_backup_attrs(const Manifest *m, PgbkBuf *out, PgbkError *err);

#endif /* PGBK_MANIFEST_H */
