/*
 * chain.c
 *	  Room: format.  The reconstruction rule of a backup chain: per restored
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
