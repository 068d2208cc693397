/*
 * chain.h
 *	  Room format; uses base and format (manifests).
 *	  The reconstruction rule of a backup chain (a full backup
 *	  and the incrementals built on it), in one place: for one file of the
 *	  restored copy, which bytes come from which backup's stored object, and
 *	  which are zeros.  `pgbk restore` turns the result into one pwrite per
 *	  piece into the one output file; verification uses the same rule.
 *
 * The rule (the incremental manifest contract, manifest.h): the newest
 * backup of the chain lists exactly the files of the restored copy, with
 * their final size.  For block b < ceil(size / 8192) of a file:
 *	- in a whole copy: the copy's bytes (the recursion ends there);
 *	- in a block file: if b is listed, this backup's object (at the listed
 *	  block's position in it); else if the file's limit is set and
 *	  b >= limit, zeros; else the same path in the parent, when the parent
 *	  has that path and b is inside the parent's size (recursively); else
 *	  zeros.
 * Bytes a backup's copy lacks (its size ends inside the block) are zeros.
 *
 * The module works on ChainEntry arrays (one per backup, newest first), so
 * it is tested over synthetic chains without manifests; chain_entry_from_*
 * helpers in the callers fill them from real manifests.
 */
#ifndef PGBK_CHAIN_H
#define PGBK_CHAIN_H

#include "base/pgbk_common.h"
#include "format/manifest.h"

#define CHAIN_BLOCK_SIZE 8192
#define CHAIN_NO_LIMIT   UINT32_MAX
#define CHAIN_ZEROS      (-1)

/* An inclusive run of block numbers (the manifest's). */
typedef ManifestBlockRange ChainRange;

/* What one backup of the chain holds for one path. */
typedef struct ChainEntry
{
	bool              present; /* the backup lists the path */
	bool              whole;   /* a whole copy (no "blocks"): ends the recursion */
	uint64_t          size;    /* the file's size at that backup */
	const ChainRange *ranges;  /* block file: the listed blocks, ascending, disjoint */
	size_t            nranges;
	uint32_t          limit; /* block file: CHAIN_NO_LIMIT when absent */
} ChainEntry;

/* length bytes of the restored file at offset come from ... */
typedef struct ChainPiece
{
	uint64_t offset;
	uint64_t length;
	int      layer;      /* ... entry layer's object (0 = newest), or CHAIN_ZEROS */
	uint64_t src_offset; /* ... at this offset of that object's content */
} ChainPiece;

typedef struct ChainFile
{
	uint64_t    size; /* final size (the newest entry's) */
	size_t      npieces;
	ChainPiece *pieces; /* ascending by offset, covering [0, size) */
} ChainFile;

/*
 * The pieces of one file from entries[0..n-1] (newest first; entries[0]
 * must be present).  Adjacent pieces from the same object are merged.
 * PGBK_ERR_FORMAT when the entries break the contract (ranges not ascending
 * or outside the file's size, a block file with nothing under it).  Free
 * with chain_file_free.
 */
PgbkStatus chain_file_pieces(const ChainEntry *entries, int n, ChainFile *out, PgbkError *err);
void       chain_file_free(ChainFile *f);

/*
 * The length of the content an entry's object holds: the file's size for a
 * whole copy; for a block file the listed blocks, each 8192 bytes but the
 * file's last (which ends at the file's size).  PGBK_ERR_FORMAT if a listed
 * block is past the file's end or the ranges are not ascending and disjoint.
 */
PgbkStatus chain_entry_content(const ChainEntry *e, uint64_t *bytes, PgbkError *err);

/*
 * A chain of loaded manifests, newest first: the backup a restore was asked
 * for, its parent, ... down to the full backup.
 */
typedef struct ManifestChain
{
	int             n;
	Manifest      **m;       /* m[0]: the newest; m[n - 1]: a full backup */
	ManifestFile ***by_path; /* per manifest: its files sorted by path */
} ManifestChain;

/*
 * Load backup id's manifest and its parents' down to the full backup.
 * Every link is checked (the parent's id, start LSN and system identifier
 * as the child records them; at most max_len backups); an error names the
 * backup that is missing or unreadable, so a restore fails before it writes
 * anything.
 */
PgbkStatus manifest_chain_load(Repo *repo, const PgbkKeyring *ring, const char *id, int max_len,
                               ManifestChain **out, PgbkError *err);

/*
 * The same, from backup id's manifest already loaded (head): one GET less.
 * On success the chain owns head; on failure the caller still does.
 */
PgbkStatus manifest_chain_load_from(Repo *repo, const PgbkKeyring *ring, Manifest *head,
                                    int max_len, ManifestChain **out, PgbkError *err);
/* A chain of manifests already loaded (takes them over; newest first). */
PgbkStatus manifest_chain_from(Manifest **ms, int n, ManifestChain **out, PgbkError *err);
void       manifest_chain_free(ManifestChain *c);

/* The entry of path in manifest l of the chain, NULL if it has none. */
const ManifestFile *manifest_chain_find(const ManifestChain *c, int l, const char *path);

/* The pieces of file fidx of the newest manifest, by the rule above. */
PgbkStatus manifest_chain_file(const ManifestChain *c, int fidx, ChainFile *out, PgbkError *err);

/*
 * Where the chain's newest backup gets path's bytes from, when that is one
 * whole copy: the chain rebuilds the file as exactly that copy's bytes (one
 * piece, from its start, the file's size the copy's).  Then a child backup
 * whose file still has those bytes (same size, same content hash) records it
 * as a block file without blocks and stores nothing: the rule above brings
 * the bytes back from the copy.  NULL otherwise (no such path, blocks
 * listed anywhere above the copy, a size that changed, an empty file, or a
 * chain that breaks the contract).
 */
const ManifestFile *manifest_chain_whole_source(const ManifestChain *c, const char *path);

/* The entry of m's file f as the rule sees it (ranges parsed: free them). */
PgbkStatus chain_entry_of(const ManifestFile *f, ChainEntry *e, ChainRange **ranges,
                          PgbkError *err);

#endif /* PGBK_CHAIN_H */
