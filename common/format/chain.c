/*
 * chain.c
 *	  Room format; uses base and format (manifests).
 *	  The reconstruction rule of a backup chain: per restored
 *	  file, the list of (byte run -> backup object, offset) pieces
 *	  (chain.h).
 *
 * One pass over the file's blocks, newest backup first, with a cursor per
 * backup into its listed ranges: blocks ascend, so each cursor only moves
 * forward and the position of a listed block inside its object (the count
 * of listed blocks before it) is kept alongside.  A 1 GiB segment is
 * 131072 blocks; a chain is a few dozen backups at most.
 */
#include "format/chain.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-entry walking state. */
typedef struct Cursor
{
	size_t   r;      /* current range */
	uint64_t before; /* listed blocks in ranges before r */
} Cursor;

static uint64_t
nblocks_of(uint64_t size)
{
	return (size + CHAIN_BLOCK_SIZE - 1) / CHAIN_BLOCK_SIZE;
}

/* Ranges ascending, disjoint, first <= last, inside the file. */
static PgbkStatus
check_ranges(const ChainEntry *e, int layer, PgbkError *err)
{
	uint64_t nb = nblocks_of(e->size);
	size_t   i;

	for (i = 0; i < e->nranges; i++)
	{
		const ChainRange *rg = &e->ranges[i];

		if (rg->first > rg->last || (i > 0 && rg->first <= e->ranges[i - 1].last))
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "backup %d of the chain lists blocks out of order (%" PRIu32
			                  "-%" PRIu32 ")",
			                  layer, rg->first, rg->last);
		if ((uint64_t) rg->last >= nb)
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "backup %d of the chain lists block %" PRIu32 " of a file of %" PRIu64
			                  " bytes",
			                  layer, rg->last, e->size);
	}
	return PGBK_OK;
}

PgbkStatus
chain_entry_content(const ChainEntry *e, uint64_t *bytes, PgbkError *err)
{
	PgbkStatus st;
	uint64_t   n = 0;
	size_t     i;

	if (e->whole)
	{
		*bytes = e->size;
		return PGBK_OK;
	}
	if ((st = check_ranges(e, 0, err)) != PGBK_OK)
		return st;
	for (i = 0; i < e->nranges; i++)
		n += (uint64_t) e->ranges[i].last - e->ranges[i].first + 1;
	n *= CHAIN_BLOCK_SIZE;
	/* the file's last block may be short, and only that one */
	if (e->nranges > 0 && e->size % CHAIN_BLOCK_SIZE != 0 &&
	    (uint64_t) e->ranges[e->nranges - 1].last == nblocks_of(e->size) - 1)
		n -= CHAIN_BLOCK_SIZE - e->size % CHAIN_BLOCK_SIZE;
	*bytes = n;
	return PGBK_OK;
}

/* Is block b listed in e (cursor c moves forward)?  *idx: its position. */
static bool
listed(const ChainEntry *e, Cursor *c, uint32_t b, uint64_t *idx)
{
	while (c->r < e->nranges && e->ranges[c->r].last < b)
	{
		c->before += (uint64_t) e->ranges[c->r].last - e->ranges[c->r].first + 1;
		c->r++;
	}
	if (c->r < e->nranges && e->ranges[c->r].first <= b)
	{
		*idx = c->before + (b - e->ranges[c->r].first);
		return true;
	}
	return false;
}

static PgbkStatus
add_piece(ChainFile *f, size_t *cap, uint64_t offset, uint64_t length, int layer,
          uint64_t src_offset, PgbkError *err)
{
	ChainPiece *p;

	if (length == 0)
		return PGBK_OK;
	if (f->npieces > 0)
	{
		p = &f->pieces[f->npieces - 1];
		if (p->layer == layer && p->offset + p->length == offset &&
		    (layer == CHAIN_ZEROS || p->src_offset + p->length == src_offset))
		{
			p->length += length;
			return PGBK_OK;
		}
	}
	if (f->npieces == *cap)
	{
		size_t      ncap = *cap ? *cap * 2 : 16;
		ChainPiece *np = realloc(f->pieces, ncap * sizeof(ChainPiece));

		if (np == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		f->pieces = np;
		*cap = ncap;
	}
	p = &f->pieces[f->npieces++];
	p->offset = offset;
	p->length = length;
	p->layer = layer;
	p->src_offset = src_offset;
	return PGBK_OK;
}

PgbkStatus
chain_file_pieces(const ChainEntry *entries, int n, ChainFile *out, PgbkError *err)
{
	Cursor    *cur;
	uint64_t   nb, b;
	size_t     cap = 0;
	int        l;
	PgbkStatus st = PGBK_OK;

	memset(out, 0, sizeof(*out));
	if (n <= 0 || !entries[0].present)
		return pgbk_error(err, PGBK_ERR_FORMAT, "the newest backup of the chain lacks the file");
	for (l = 0; l < n; l++)
		if (entries[l].present && !entries[l].whole &&
		    (st = check_ranges(&entries[l], l, err)) != PGBK_OK)
			return st;
	cur = calloc((size_t) n, sizeof(Cursor));
	if (cur == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	out->size = entries[0].size;
	nb = nblocks_of(out->size);
	for (b = 0; b < nb && st == PGBK_OK; b++)
	{
		uint64_t off = b * CHAIN_BLOCK_SIZE;
		uint64_t blen = out->size - off < CHAIN_BLOCK_SIZE ? out->size - off : CHAIN_BLOCK_SIZE;
		int      src = CHAIN_ZEROS;
		uint64_t src_off = 0, avail = 0;

		for (l = 0; l < n; l++)
		{
			const ChainEntry *e = &entries[l];
			uint64_t          idx;

			/* the parent must have the path, and the block inside its size */
			if (!e->present || b >= nblocks_of(e->size))
				break;
			avail = e->size - off < CHAIN_BLOCK_SIZE ? e->size - off : CHAIN_BLOCK_SIZE;
			if (e->whole)
			{
				src = l;
				src_off = off;
				break;
			}
			if (listed(e, &cur[l], (uint32_t) b, &idx))
			{
				src = l;
				src_off = idx * CHAIN_BLOCK_SIZE;
				break;
			}
			if (e->limit != CHAIN_NO_LIMIT && b >= e->limit)
				break;
			if (l == n - 1)
				st = pgbk_error(err, PGBK_ERR_FORMAT,
				                "block %" PRIu64
				                " of the file is in no backup of the chain: the oldest "
				                "holds a block file, not a whole copy",
				                b);
		}
		if (src == CHAIN_ZEROS)
			avail = 0;
		if (avail > blen)
			avail = blen;
		if (st == PGBK_OK)
			st = add_piece(out, &cap, off, avail, src, src_off, err);
		if (st == PGBK_OK)
			st = add_piece(out, &cap, off + avail, blen - avail, CHAIN_ZEROS, 0, err);
	}
	free(cur);
	if (st != PGBK_OK)
		chain_file_free(out);
	return st;
}

void
chain_file_free(ChainFile *f)
{
	free(f->pieces);
	f->pieces = NULL;
	f->npieces = 0;
}

/* ------------------------------------------------------------------------
 * Chains of manifests
 * ------------------------------------------------------------------------
 */

PgbkStatus
chain_entry_of(const ManifestFile *f, ChainEntry *e, ChainRange **ranges, PgbkError *err)
{
	PgbkStatus st;

	memset(e, 0, sizeof(*e));
	*ranges = NULL;
	e->present = true;
	e->size = f->size;
	e->limit = CHAIN_NO_LIMIT;
	if (!f->has_blocks)
	{
		e->whole = true;
		return PGBK_OK;
	}
	if ((st = manifest_blocks_parse(f->blocks ? f->blocks : "", ranges, &e->nranges, err)) !=
	    PGBK_OK)
		return st;
	e->ranges = *ranges;
	e->limit = f->limit == MANIFEST_NO_LIMIT ? CHAIN_NO_LIMIT : f->limit;
	return PGBK_OK;
}

static int
by_path_cmp(const void *a, const void *b)
{
	return strcmp((*(const ManifestFile *const *) a)->path,
	              (*(const ManifestFile *const *) b)->path);
}

const ManifestFile *
manifest_chain_find(const ManifestChain *c, int l, const char *path)
{
	ManifestFile *const *idx = c->by_path[l];
	int                  lo = 0, hi = c->m[l]->nfiles - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;
		int k = strcmp(idx[mid]->path, path);

		if (k == 0)
			return idx[mid];
		if (k < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* Each link: the parent is the one the child names, and the chain ends at a full. */
static PgbkStatus
check_links(Manifest **ms, int n, PgbkError *err)
{
	int l;

	for (l = 0; l + 1 < n; l++)
	{
		const Manifest *child = ms[l], *parent = ms[l + 1];

		if (!child->incremental || strcmp(child->parent, parent->id) != 0)
			return pgbk_error(err, PGBK_ERR_INTEGRITY, "backup %s does not build on backup %s",
			                  child->id, parent->id);
		if (child->parent_start_lsn != 0 && child->parent_start_lsn != parent->start_lsn)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "backup %s builds on a backup %s that started elsewhere than the "
			                  "one it recorded (another backup under the same id?)",
			                  child->id, parent->id);
		if (child->system_identifier != 0 && parent->system_identifier != 0 &&
		    child->system_identifier != parent->system_identifier)
			return pgbk_error(err, PGBK_ERR_INTEGRITY,
			                  "backup %s builds on backup %s, of another database system",
			                  child->id, parent->id);
	}
	if (n == 0 || ms[n - 1]->incremental)
		return pgbk_error(err, PGBK_ERR_INTEGRITY, "the chain does not end at a full backup");
	return PGBK_OK;
}

PgbkStatus
manifest_chain_from(Manifest **ms, int n, ManifestChain **out, PgbkError *err)
{
	ManifestChain *c;
	PgbkStatus     st;
	int            l, i;

	*out = NULL;
	if ((st = check_links(ms, n, err)) != PGBK_OK)
		return st;
	c = calloc(1, sizeof(ManifestChain));
	if (c == NULL || (c->m = calloc((size_t) n, sizeof(Manifest *))) == NULL ||
	    (c->by_path = calloc((size_t) n, sizeof(ManifestFile **))) == NULL)
	{
		if (c)
			free(c->m);
		free(c);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	c->n = n;
	for (l = 0; l < n; l++)
		c->m[l] = ms[l];
	for (l = 0; l < n; l++)
	{
		Manifest *m = c->m[l];

		c->by_path[l] = malloc(sizeof(ManifestFile *) * (size_t) (m->nfiles + 1));
		if (c->by_path[l] == NULL)
		{
			/* the manifests stay the caller's: it frees them on failure */
			for (i = 0; i < l; i++)
				free(c->by_path[i]);
			free(c->by_path);
			free(c->m);
			free(c);
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
		for (i = 0; i < m->nfiles; i++)
			c->by_path[l][i] = &m->files[i];
		qsort(c->by_path[l], (size_t) m->nfiles, sizeof(ManifestFile *), by_path_cmp);
	}
	*out = c;
	return PGBK_OK;
}

void
manifest_chain_free(ManifestChain *c)
{
	int l;

	if (c == NULL)
		return;
	for (l = 0; l < c->n; l++)
	{
		manifest_free(c->m[l]);
		if (c->by_path)
			free(c->by_path[l]);
	}
	free(c->by_path);
	free(c->m);
	free(c);
}

/* manifest_chain_load and _load_from: head is backup id's manifest if already loaded. */
static PgbkStatus
chain_load(Repo *repo, const PgbkKeyring *ring, const char *id, Manifest *head, int max_len,
           ManifestChain **out, PgbkError *err)
{
	Manifest **ms;
	int        n = 0, l;
	PgbkStatus st = PGBK_OK;
	char       want[MANIFEST_ID_LEN];

	*out = NULL;
	if (max_len < 1)
		return pgbk_error(err, PGBK_ERR_USAGE, "a chain holds at least one backup");
	ms = calloc((size_t) max_len, sizeof(Manifest *));
	if (ms == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	snprintf(want, sizeof(want), "%s", id);
	for (;;)
	{
		Manifest *m = NULL;

		if (n == max_len)
		{
			st = pgbk_error(err, PGBK_ERR_FORMAT,
			                "the chain of backup %s is longer than %d backups", id, max_len);
			break;
		}
		if (n == 0 && head != NULL)
		{
			m = head;
			st = PGBK_OK;
		}
		else
			st = manifest_load(repo, ring, want, &m, err);
		if (st == PGBK_NOT_FOUND && n > 0)
			st = pgbk_error(err, PGBK_ERR_INTEGRITY,
			                "backup %s needs backup %s (the parent of %s), which is missing "
			                "from the repository",
			                id, want, ms[n - 1]->id);
		else if (st != PGBK_OK && n > 0)
			pgbk_error_prefix(err,
			                  "backup %s needs backup %s (the parent of %s), which cannot be read",
			                  id, want, ms[n - 1]->id);
		if (st != PGBK_OK)
			break;
		ms[n++] = m;
		if (!m->incremental)
			break;
		/* ids are start times: a parent started before its child (no cycles) */
		if (m->parent[0] == '\0' || strcmp(m->parent, m->id) >= 0)
		{
			st = pgbk_error(err, PGBK_ERR_INTEGRITY,
			                "backup %s names \"%s\" as its parent, which is not an older backup",
			                m->id, m->parent);
			break;
		}
		snprintf(want, sizeof(want), "%s", m->parent);
	}
	if (st == PGBK_OK)
		st = manifest_chain_from(ms, n, out, err);
	if (st != PGBK_OK)
		for (l = head != NULL ? 1 : 0; l < n; l++)
			manifest_free(ms[l]);
	free(ms);
	return st;
}

PgbkStatus
manifest_chain_load(Repo *repo, const PgbkKeyring *ring, const char *id, int max_len,
                    ManifestChain **out, PgbkError *err)
{
	return chain_load(repo, ring, id, NULL, max_len, out, err);
}

PgbkStatus
manifest_chain_load_from(Repo *repo, const PgbkKeyring *ring, Manifest *head, int max_len,
                         ManifestChain **out, PgbkError *err)
{
	return chain_load(repo, ring, head->id, head, max_len, out, err);
}

PgbkStatus
manifest_chain_file(const ManifestChain *c, int fidx, ChainFile *out, PgbkError *err)
{
	ChainEntry  *e;
	ChainRange **ranges;
	const char  *path = c->m[0]->files[fidx].path;
	PgbkStatus   st = PGBK_OK;
	int          l, n = 0;

	e = calloc((size_t) c->n, sizeof(ChainEntry));
	ranges = calloc((size_t) c->n, sizeof(ChainRange *));
	if (e == NULL || ranges == NULL)
	{
		free(e);
		free(ranges);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	/* down to the first whole copy or absence: nothing below it counts */
	for (l = 0; l < c->n && st == PGBK_OK; l++)
	{
		const ManifestFile *f = l == 0 ? &c->m[0]->files[fidx] : manifest_chain_find(c, l, path);

		n = l + 1;
		if (f == NULL)
			break; /* present = false */
		st = chain_entry_of(f, &e[l], &ranges[l], err);
		if (st != PGBK_OK || e[l].whole)
			break;
	}
	if (st == PGBK_OK)
		st = chain_file_pieces(e, n, out, err);
	if (st != PGBK_OK)
		pgbk_error_prefix(err, "file \"%s\" of backup %s", path, c->m[0]->id);
	for (l = 0; l < c->n; l++)
		free(ranges[l]);
	free(ranges);
	free(e);
	return st;
}

const ManifestFile *
manifest_chain_whole_source(const ManifestChain *c, const char *path)
{
	const ManifestFile *f = c->n > 0 ? manifest_chain_find(c, 0, path) : NULL;
	const ManifestFile *src = NULL;
	ChainFile           cf;
	PgbkError           err;

	if (f == NULL || f->size == 0)
		return NULL;
	pgbk_error_clear(&err);
	if (manifest_chain_file(c, (int) (f - c->m[0]->files), &cf, &err) != PGBK_OK)
		return NULL;
	if (cf.npieces == 1 && cf.pieces[0].layer != CHAIN_ZEROS && cf.pieces[0].offset == 0 &&
	    cf.pieces[0].src_offset == 0 && cf.pieces[0].length == f->size)
	{
		const ManifestFile *w = manifest_chain_find(c, cf.pieces[0].layer, path);

		if (w != NULL && !w->has_blocks && w->size == f->size)
			src = w;
	}
	chain_file_free(&cf);
	return src;
}
