/*
 * test_chain.c
 *	  Tests of room format (cmocka): backup chains; uses unit.h and chain.c.
 *	  Unit tests for format/chain.c, the reconstruction rule of a backup
 *	  chain: hand-made chains (limits, truncation then growth, a file that
 *	  appears and disappears, zero ranges, a short last block, malformed
 *	  entries) and a property test that simulates a file through many
 *	  changes, backs it up as a full and incrementals the way the contract
 *	  allows (whole copies or block files, listed supersets, limits), and
 *	  requires the reconstruction to equal the file.
 */
#include "unit.h"

#include "format/chain.h"
#include "config/config.h"
#include "format/keys.h"
#include "format/layout.h"
#include "repo/repo.h"

#include <sys/stat.h>

#define BS CHAIN_BLOCK_SIZE

/* One backup's stored content and entry for the single file under test. */
typedef struct Layer
{
	ChainEntry     e;
	ChainRange     ranges[64];
	unsigned char *content; /* what its object holds */
	uint64_t       content_len;
} Layer;

/* Apply the pieces to the layers' contents: the restored file. */
static unsigned char *
rebuild(const Layer *layers, int n, uint64_t *size)
{
	ChainEntry     e[16];
	ChainFile      f;
	PgbkError      err;
	unsigned char *out;
	uint64_t       pos = 0;
	size_t         i;
	int            l;

	assert_true(n <= 16);
	for (l = 0; l < n; l++)
		e[l] = layers[l].e;
	pgbk_error_clear(&err);
	assert_int_equal(chain_file_pieces(e, n, &f, &err), PGBK_OK);
	out = malloc(f.size + 1);
	assert_non_null(out);
	memset(out, 0xAA, f.size + 1);
	for (i = 0; i < f.npieces; i++)
	{
		const ChainPiece *p = &f.pieces[i];

		/* in order, covering the file without overlap */
		assert_int_equal(p->offset, pos);
		assert_true(p->length > 0);
		pos += p->length;
		if (p->layer == CHAIN_ZEROS)
			memset(out + p->offset, 0, p->length);
		else
		{
			assert_true(p->layer >= 0 && p->layer < n);
			assert_true(p->src_offset + p->length <= layers[p->layer].content_len);
			memcpy(out + p->offset, layers[p->layer].content + p->src_offset, p->length);
		}
		/* merged: no two neighbours that could be one */
		if (i > 0)
		{
			const ChainPiece *q = &f.pieces[i - 1];

			assert_false(q->layer == p->layer &&
			             (p->layer == CHAIN_ZEROS || q->src_offset + q->length == p->src_offset));
		}
	}
	assert_int_equal(pos, f.size);
	*size = f.size;
	chain_file_free(&f);
	return out;
}

static void
set_whole(Layer *L, const unsigned char *data, uint64_t size)
{
	memset(L, 0, sizeof(*L));
	L->e.present = true;
	L->e.whole = true;
	L->e.size = size;
	L->e.limit = CHAIN_NO_LIMIT;
	L->content = malloc(size + 1);
	memcpy(L->content, data, size);
	L->content_len = size;
}

/* A block file of data (size bytes) listing the blocks in list (-1 ends). */
static void
set_blocks(Layer *L, const unsigned char *data, uint64_t size, const int *list, uint32_t limit)
{
	PgbkError err;
	uint64_t  len;
	int       i;

	memset(L, 0, sizeof(*L));
	L->e.present = true;
	L->e.size = size;
	L->e.limit = limit;
	L->e.ranges = L->ranges;
	L->content = malloc(size + 1);
	for (i = 0; list[i] >= 0; i++)
	{
		uint64_t off = (uint64_t) list[i] * BS;
		uint64_t n = size - off < BS ? size - off : BS;

		if (L->e.nranges > 0 && L->ranges[L->e.nranges - 1].last + 1 == (uint32_t) list[i])
			L->ranges[L->e.nranges - 1].last++;
		else
		{
			L->ranges[L->e.nranges].first = L->ranges[L->e.nranges].last = (uint32_t) list[i];
			L->e.nranges++;
		}
		memcpy(L->content + L->content_len, data + off, n);
		L->content_len += n;
	}
	pgbk_error_clear(&err);
	assert_int_equal(chain_entry_content(&L->e, &len, &err), PGBK_OK);
	assert_int_equal(len, L->content_len);
}

static void
set_absent(Layer *L)
{
	memset(L, 0, sizeof(*L));
}

static void
free_layers(Layer *layers, int n)
{
	int l;

	for (l = 0; l < n; l++)
		free(layers[l].content);
}

static void
fill(unsigned char *p, uint64_t n, unsigned seed)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char) ((i * 131 + seed * 7919 + (i >> 13) * 17) & 0xFF) | 1;
}

/* newest block wins; others come from the parent at their own offsets */
static void
test_newest_wins(void **state)
{
	unsigned char v0[6 * BS], v1[6 * BS], *out;
	Layer         L[2];
	uint64_t      size;
	const int     list[] = {1, 2, 4, -1};

	(void) state;
	fill(v0, sizeof(v0), 1);
	memcpy(v1, v0, sizeof(v1));
	fill(v1 + 1 * BS, 2 * BS, 2);
	fill(v1 + 4 * BS, BS, 3);
	set_blocks(&L[0], v1, sizeof(v1), list, CHAIN_NO_LIMIT);
	set_whole(&L[1], v0, sizeof(v0));
	out = rebuild(L, 2, &size);
	assert_int_equal(size, sizeof(v1));
	assert_memory_equal(out, v1, sizeof(v1));
	free(out);
	free_layers(L, 2);
}

/* truncated to 2 blocks, then grown to 5 with blocks 3 and 4 written */
static void
test_truncate_then_grow(void **state)
{
	unsigned char v0[8 * BS], v1[5 * BS], *out;
	Layer         L[2];
	uint64_t      size;
	const int     list[] = {3, 4, -1};

	(void) state;
	fill(v0, sizeof(v0), 4);
	memcpy(v1, v0, 2 * BS);
	memset(v1 + 2 * BS, 0, BS); /* block 2: extended but never written */
	fill(v1 + 3 * BS, 2 * BS, 5);
	set_blocks(&L[0], v1, sizeof(v1), list, 2);
	set_whole(&L[1], v0, sizeof(v0));
	out = rebuild(L, 2, &size);
	assert_int_equal(size, sizeof(v1));
	assert_memory_equal(out, v1, sizeof(v1));
	free(out);
	free_layers(L, 2);

	/* without the limit block 2 would come back from the parent */
	{
		ChainEntry e[2];
		ChainFile  f;
		PgbkError  err;

		set_blocks(&L[0], v1, sizeof(v1), list, CHAIN_NO_LIMIT);
		set_whole(&L[1], v0, sizeof(v0));
		e[0] = L[0].e;
		e[1] = L[1].e;
		assert_int_equal(chain_file_pieces(e, 2, &f, &err), PGBK_OK);
		assert_int_equal(f.pieces[0].layer, 1);
		assert_int_equal(f.pieces[0].length, 3 * BS);
		chain_file_free(&f);
		free_layers(L, 2);
	}
}

/* a file that appears, disappears and comes back along the chain */
static void
test_appear_disappear(void **state)
{
	unsigned char a[3 * BS], b[4 * BS], *out;
	Layer         L[4];
	uint64_t      size;
	const int     list_b[] = {0, 1, 2, 3, -1};
	const int     list_b2[] = {1, -1};

	(void) state;
	fill(a, sizeof(a), 6);
	fill(b, sizeof(b), 7);
	/* oldest first: full has a; I1 lacks it; I2 has b (all blocks, limit 0); I3 changes block 1 */
	set_whole(&L[3], a, sizeof(a));
	set_absent(&L[2]);
	set_blocks(&L[1], b, sizeof(b), list_b, 0);
	fill(b + BS, BS, 8);
	set_blocks(&L[0], b, sizeof(b), list_b2, CHAIN_NO_LIMIT);
	out = rebuild(L, 4, &size);
	assert_int_equal(size, sizeof(b));
	assert_memory_equal(out, b, sizeof(b));
	free(out);

	/* in I2 without the blocks: zeros, never the full's content from before the gap */
	free(L[1].content);
	set_blocks(&L[1], b, sizeof(b), (const int[]){-1}, CHAIN_NO_LIMIT);
	out = rebuild(L, 4, &size);
	{
		unsigned char expect[4 * BS];

		memset(expect, 0, sizeof(expect));
		memcpy(expect + BS, b + BS, BS);
		assert_memory_equal(out, expect, sizeof(expect));
	}
	free(out);
	free_layers(L, 4);
}

/* zero ranges: growth past the parent's size that nobody wrote */
static void
test_zero_ranges(void **state)
{
	unsigned char v0[2 * BS], v1[10 * BS], *out;
	Layer         L[2];
	uint64_t      size;
	const int     list[] = {9, -1};
	ChainEntry    e[2];
	ChainFile     f;
	PgbkError     err;

	(void) state;
	fill(v0, sizeof(v0), 9);
	memset(v1, 0, sizeof(v1));
	memcpy(v1, v0, sizeof(v0));
	fill(v1 + 9 * BS, BS, 10);
	set_blocks(&L[0], v1, sizeof(v1), list, CHAIN_NO_LIMIT);
	set_whole(&L[1], v0, sizeof(v0));
	out = rebuild(L, 2, &size);
	assert_memory_equal(out, v1, sizeof(v1));
	free(out);
	e[0] = L[0].e;
	e[1] = L[1].e;
	assert_int_equal(chain_file_pieces(e, 2, &f, &err), PGBK_OK);
	/* parent, zeros (one piece), this backup */
	assert_int_equal(f.npieces, 3);
	assert_int_equal(f.pieces[1].layer, CHAIN_ZEROS);
	assert_int_equal(f.pieces[1].offset, 2 * BS);
	assert_int_equal(f.pieces[1].length, 7 * BS);
	assert_int_equal(f.pieces[2].src_offset, 0);
	chain_file_free(&f);
	free_layers(L, 2);
}

/* a last block shorter than 8192 bytes, in the child and in the parent */
static void
test_short_last_block(void **state)
{
	unsigned char v0[2 * BS + 100], v1[3 * BS + 10], *out;
	Layer         L[2];
	uint64_t      size;
	const int     list[] = {2, -1};

	(void) state;
	fill(v0, sizeof(v0), 11);
	memcpy(v1, v0, 2 * BS);
	fill(v1 + 2 * BS, BS + 10, 12);
	set_blocks(&L[0], v1, sizeof(v1), list, CHAIN_NO_LIMIT);
	set_whole(&L[1], v0, sizeof(v0));
	/* block 3 (10 bytes) is beyond the parent's size: zeros */
	memset(v1 + 3 * BS, 0, 10);
	out = rebuild(L, 2, &size);
	assert_int_equal(size, sizeof(v1));
	assert_memory_equal(out, v1, sizeof(v1));
	free(out);
	free_layers(L, 2);

	/* the parent's short block 2 fills its bytes, zeros after them */
	{
		unsigned char v2[3 * BS];
		const int     none[] = {-1};

		memset(v2, 0, sizeof(v2));
		memcpy(v2, v0, sizeof(v0));
		set_blocks(&L[0], v2, sizeof(v2), none, CHAIN_NO_LIMIT);
		set_whole(&L[1], v0, sizeof(v0));
		out = rebuild(L, 2, &size);
		assert_memory_equal(out, v2, sizeof(v2));
		free(out);
		free_layers(L, 2);
	}
}

static void
test_malformed(void **state)
{
	ChainRange r[2];
	ChainEntry e[2];
	ChainFile  f;
	PgbkError  err;
	uint64_t   len;

	(void) state;
	memset(e, 0, sizeof(e));
	e[0].present = true;
	e[0].size = 4 * BS;
	e[0].limit = CHAIN_NO_LIMIT;
	e[0].ranges = r;
	e[0].nranges = 2;
	r[0] = (ChainRange){2, 3};
	r[1] = (ChainRange){1, 1};
	assert_int_equal(chain_file_pieces(e, 1, &f, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "out of order"));
	assert_int_equal(chain_entry_content(&e[0], &len, &err), PGBK_ERR_FORMAT);
	r[1] = (ChainRange){4, 4};
	assert_int_equal(chain_file_pieces(e, 1, &f, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "block 4"));
	/* a block file at the bottom of the chain has nothing under it */
	e[0].nranges = 1;
	assert_int_equal(chain_file_pieces(e, 1, &f, &err), PGBK_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "whole copy"));
	/* the newest must list the file */
	e[0].present = false;
	assert_int_equal(chain_file_pieces(e, 1, &f, &err), PGBK_ERR_FORMAT);
	/* empty file */
	e[0].present = true;
	e[0].whole = true;
	e[0].size = 0;
	assert_int_equal(chain_file_pieces(e, 1, &f, &err), PGBK_OK);
	assert_int_equal(f.npieces, 0);
	chain_file_free(&f);
}

/* ------------------------------------------------------------------------
 * Property: simulate, back up as the contract allows, rebuild, compare
 * ------------------------------------------------------------------------
 */

#define SIM_MAXB 24

static uint64_t rng_state;

static uint32_t
rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) ((rng_state >> 33) % n);
}

typedef struct Sim
{
	bool          exists;
	uint64_t      size;
	unsigned char data[SIM_MAXB * BS];
	/* since the last backup */
	bool     changed[SIM_MAXB];
	uint32_t limit;     /* lowest block count truncated to */
	bool     recreated; /* deleted (and maybe created again) */
} Sim;

static void
sim_step(Sim *s)
{
	uint32_t op = rnd(10);

	if (!s->exists)
	{
		if (rnd(3) == 0)
		{
			s->exists = true;
			s->size = 0;
			s->recreated = true;
		}
		return;
	}
	if (op < 6)
	{
		/* write a block, maybe extending (sparse) */
		uint32_t b = rnd(SIM_MAXB);

		if ((uint64_t) b * BS > s->size)
			memset(s->data + s->size, 0, (uint64_t) b * BS - s->size);
		fill(s->data + (uint64_t) b * BS, BS, rnd(1000000));
		if ((uint64_t) (b + 1) * BS > s->size)
			s->size = (uint64_t) (b + 1) * BS;
		s->changed[b] = true;
	}
	else if (op < 8)
	{
		/* truncate, to a block boundary or not */
		uint64_t ns = rnd(2) ? (uint64_t) rnd((uint32_t) (s->size / BS) + 1) * BS
		                     : rnd((uint32_t) s->size + 1);
		uint32_t k = (uint32_t) (ns / BS);

		if (k < s->limit)
			s->limit = k;
		if (ns % BS != 0)
			s->changed[k] = true;
		s->size = ns;
	}
	else if (op == 8)
	{
		/* grow with zeros (extension without writes) */
		uint64_t ns = s->size + rnd(3 * BS);

		if (ns > (uint64_t) SIM_MAXB * BS)
			ns = (uint64_t) SIM_MAXB * BS;
		memset(s->data + s->size, 0, ns - s->size);
		s->size = ns;
	}
	else if (rnd(3) == 0)
	{
		s->exists = false;
		s->recreated = true;
	}
}

static void
sim_backup(Sim *s, Layer *L, bool full)
{
	int list[SIM_MAXB + 1], n = 0;
	int b;

	if (!s->exists)
		set_absent(L);
	else if (full || s->recreated || rnd(8) == 0)
	{
		if (!full && s->recreated && rnd(2))
		{
			/* a block file of every block, nothing from the parent */
			for (b = 0; (uint64_t) b * BS < s->size; b++)
				list[n++] = b;
			list[n] = -1;
			set_blocks(L, s->data, s->size, list, 0);
		}
		else
			set_whole(L, s->data, s->size);
	}
	else
	{
		for (b = 0; (uint64_t) b * BS < s->size; b++)
			if (s->changed[b] || rnd(10) == 0) /* a superset is allowed */
				list[n++] = b;
		list[n] = -1;
		set_blocks(L, s->data, s->size, list, s->limit == UINT32_MAX ? CHAIN_NO_LIMIT : s->limit);
	}
	memset(s->changed, 0, sizeof(s->changed));
	s->limit = UINT32_MAX;
	s->recreated = false;
}

static void
test_property(void **state)
{
	static Sim s;
	int        seed, checked = 0;

	(void) state;
	for (seed = 1; seed <= 3000; seed++)
	{
		Layer chrono[12];
		Layer newest_first[12];
		int   nb = 1 + (int) (seed % 11), i;

		rng_state = (uint64_t) seed * 2654435761ULL;
		memset(&s, 0, sizeof(s));
		s.exists = true;
		s.limit = UINT32_MAX;
		for (i = 0; i < (int) rnd(6); i++)
			sim_step(&s);
		sim_backup(&s, &chrono[0], true);
		for (i = 1; i < nb; i++)
		{
			int k, steps = (int) rnd(8);

			for (k = 0; k < steps; k++)
				sim_step(&s);
			sim_backup(&s, &chrono[i], false);
		}
		if (s.exists)
		{
			unsigned char *out;
			uint64_t       size;

			for (i = 0; i < nb; i++)
				newest_first[i] = chrono[nb - 1 - i];
			/* ranges point into the copies' own arrays */
			for (i = 0; i < nb; i++)
				newest_first[i].e.ranges = newest_first[i].ranges;
			out = rebuild(newest_first, nb, &size);
			assert_int_equal(size, s.size);
			if (size > 0 && memcmp(out, s.data, size) != 0)
				fail_msg("seed %d: the rebuilt file differs", seed);
			free(out);
			checked++;
		}
		free_layers(chrono, nb);
	}
	assert_true(checked > 1000);
}

/* ------------------------------------------------------------------------
 * Chains of manifests
 * ------------------------------------------------------------------------
 */

static void
add_file(Manifest *m, const char *path, uint64_t size, const char *blocks, uint32_t limit)
{
	ManifestFile f;

	memset(&f, 0, sizeof(f));
	f.path = (char *) path;
	f.size = size;
	f.mode = 0600;
	f.has_blocks = blocks != NULL;
	f.blocks = (char *) blocks;
	f.limit = limit;
	assert_true(manifest_add_file(m, &f));
}

static Manifest *
new_manifest(const char *id, const char *parent, uint64_t start_lsn)
{
	Manifest *m = manifest_new();

	assert_non_null(m);
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->start_lsn = start_lsn;
	if (parent)
	{
		m->incremental = true;
		snprintf(m->parent, sizeof(m->parent), "%s", parent);
	}
	return m;
}

static void
test_manifest_chain(void **state)
{
	Manifest      *ms[3];
	ManifestChain *c;
	ChainFile      f;
	PgbkError      err;
	int            i;

	(void) state;
	ms[2] = new_manifest("20260921T000000Z", NULL, 100);
	add_file(ms[2], "base/5/16384", 10 * BS, NULL, 0);
	add_file(ms[2], "base/5/gone", 2 * BS, NULL, 0);
	add_file(ms[2], "PG_VERSION", 3, NULL, 0);
	ms[1] = new_manifest("20260921T001000Z", "20260921T000000Z", 200);
	ms[1]->parent_start_lsn = 100;
	add_file(ms[1], "base/5/16384", 12 * BS, "10-11", CHAIN_NO_LIMIT);
	add_file(ms[1], "PG_VERSION", 3, NULL, 0);
	ms[0] = new_manifest("20260921T002000Z", "20260921T001000Z", 300);
	ms[0]->parent_start_lsn = 200;
	add_file(ms[0], "base/5/16384", 12 * BS, "1,11", CHAIN_NO_LIMIT);
	add_file(ms[0], "base/5/new", 2 * BS, "", 0); /* no blocks, limit 0: zeros */
	add_file(ms[0], "PG_VERSION", 3, NULL, 0);
	/* unchanged whole files referenced down the chain (manifest_chain_whole_source) */
	add_file(ms[2], "pg_xact/0000", BS, NULL, 0);
	add_file(ms[1], "pg_xact/0000", BS, "", CHAIN_NO_LIMIT);
	add_file(ms[0], "pg_xact/0000", BS, "", CHAIN_NO_LIMIT);
	add_file(ms[1], "base/5/16384_fsm", 3 * BS + 5, NULL, 0);
	add_file(ms[0], "base/5/16384_fsm", 3 * BS + 5, "", CHAIN_NO_LIMIT);
	add_file(ms[1], "base/5/grown", BS, NULL, 0);
	add_file(ms[0], "base/5/grown", 2 * BS, "", CHAIN_NO_LIMIT); /* the rest is zeros */
	add_file(ms[2], "base/5/shrunk", 2 * BS, NULL, 0);
	add_file(ms[1], "base/5/shrunk", BS, "", CHAIN_NO_LIMIT);
	add_file(ms[0], "base/5/shrunk", BS, "", CHAIN_NO_LIMIT); /* a prefix of the copy */
	add_file(ms[1], "pg_logical/empty", 0, NULL, 0);
	add_file(ms[0], "pg_logical/empty", 0, NULL, 0);
	pgbk_error_clear(&err);
	assert_int_equal(manifest_chain_from(ms, 3, &c, &err), PGBK_OK);
	{
		const ManifestFile *w;

		w = manifest_chain_whole_source(c, "pg_xact/0000");
		assert_true(w == manifest_chain_find(c, 2, "pg_xact/0000"));
		w = manifest_chain_whole_source(c, "base/5/16384_fsm");
		assert_true(w == manifest_chain_find(c, 1, "base/5/16384_fsm"));
		w = manifest_chain_whole_source(c, "PG_VERSION");
		assert_true(w == manifest_chain_find(c, 0, "PG_VERSION"));
		assert_null(manifest_chain_whole_source(c, "base/5/16384"));  /* blocks from 3 backups */
		assert_null(manifest_chain_whole_source(c, "base/5/new"));    /* zeros */
		assert_null(manifest_chain_whole_source(c, "base/5/grown"));  /* copy + zeros */
		assert_null(manifest_chain_whole_source(c, "base/5/shrunk")); /* size differs */
		assert_null(manifest_chain_whole_source(c, "pg_logical/empty"));
		assert_null(manifest_chain_whole_source(c, "base/5/gone")); /* not in the newest */
	}
	/* base/5/16384: 0 full, 1 newest, 2-9 full, 10 middle, 11 newest */
	for (i = 0; i < c->m[0]->nfiles; i++)
		if (strcmp(c->m[0]->files[i].path, "base/5/16384") == 0)
			break;
	assert_int_equal(manifest_chain_file(c, i, &f, &err), PGBK_OK);
	assert_int_equal(f.npieces, 5);
	assert_int_equal(f.pieces[0].layer, 2);
	assert_int_equal(f.pieces[1].layer, 0);
	assert_int_equal(f.pieces[1].src_offset, 0);
	assert_int_equal(f.pieces[2].layer, 2);
	assert_int_equal(f.pieces[2].length, 8 * BS);
	assert_int_equal(f.pieces[2].src_offset, 2 * BS);
	assert_int_equal(f.pieces[3].layer, 1);
	assert_int_equal(f.pieces[3].src_offset, 0);
	assert_int_equal(f.pieces[4].layer, 0);
	assert_int_equal(f.pieces[4].src_offset, BS);
	chain_file_free(&f);
	/* a file new in the newest backup, absent below: zeros */
	for (i = 0; i < c->m[0]->nfiles; i++)
		if (strcmp(c->m[0]->files[i].path, "base/5/new") == 0)
			break;
	assert_int_equal(manifest_chain_file(c, i, &f, &err), PGBK_OK);
	assert_int_equal(f.npieces, 1);
	assert_int_equal(f.pieces[0].layer, CHAIN_ZEROS);
	chain_file_free(&f);
	assert_null(manifest_chain_find(c, 0, "base/5/gone"));
	assert_non_null(manifest_chain_find(c, 2, "base/5/gone"));
	manifest_chain_free(c);

	/* links: a parent that is not the one named, one that started elsewhere, no full at the end */
	ms[2] = new_manifest("20260921T000000Z", NULL, 100);
	ms[1] = new_manifest("20260921T001000Z", "20260921T000500Z", 200);
	assert_int_equal(manifest_chain_from(&ms[1], 2, &c, &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "does not build on backup 20260921T000000Z"));
	snprintf(ms[1]->parent, sizeof(ms[1]->parent), "20260921T000000Z");
	ms[1]->parent_start_lsn = 99;
	assert_int_equal(manifest_chain_from(&ms[1], 2, &c, &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "started elsewhere"));
	assert_int_equal(manifest_chain_from(&ms[1], 1, &c, &err), PGBK_ERR_INTEGRITY);
	assert_non_null(strstr(err.msg, "full backup"));
	manifest_free(ms[1]);
	manifest_free(ms[2]);
}

/*
 * manifest_chain_load and manifest_chain_load_from on a local repository:
 * the same chain from the id or from the head already loaded; a missing
 * middle backup is named; on failure the caller still owns the head (freed
 * below: a second free would abort).
 */
static void
test_manifest_chain_load(void **state)
{
	const char    *tmp = getenv("PGBK_TEST_TMP") ? getenv("PGBK_TEST_TMP") : "/tmp";
	char           dir[256], key[300], text[1024], mkey[LAYOUT_KEY_LEN];
	const char    *keys[1];
	PgbkKeyring   *ring = NULL;
	PgbkConfig    *cfg = NULL;
	Repo          *repo = NULL;
	CodecParams    params;
	Manifest      *ms[3], *head = NULL;
	ManifestChain *c = NULL;
	PgbkError      err;
	int            i;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/pgbk-test-chain-XXXXXX", tmp);
	assert_non_null(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s/pgbk.key", dir);
	if (keyring_generate_file(key, &err) != PGBK_OK || keyring_load(key, &ring, &err) != PGBK_OK)
		fail_msg("key: %s", err.msg);
	snprintf(text, sizeof(text), "%s/repo", dir);
	assert_int_equal(mkdir(text, 0700), 0);
	snprintf(text, sizeof(text), "repository = '%s/repo'\nkey_file = '%s'\n", dir, key);
	if (config_parse_string(text, "test.conf", dir, &cfg, &err) != PGBK_OK)
		fail_msg("config: %s", err.msg);
	if (repo_open(cfg, &repo, &err) != PGBK_OK)
		fail_msg("repo: %s", err.msg);
	memset(&params, 0, sizeof(params));
	params.compression = PGBK_COMPRESS_ZSTD;
	params.level = 3;
	params.keyring = ring;
	params.encrypt = true;

	ms[2] = new_manifest("20260921T000000Z", NULL, 100);
	add_file(ms[2], "PG_VERSION", 3, NULL, 0);
	ms[1] = new_manifest("20260921T001000Z", "20260921T000000Z", 200);
	ms[1]->parent_start_lsn = 100;
	add_file(ms[1], "PG_VERSION", 3, "", CHAIN_NO_LIMIT);
	ms[0] = new_manifest("20260921T002000Z", "20260921T001000Z", 300);
	ms[0]->parent_start_lsn = 200;
	add_file(ms[0], "PG_VERSION", 3, "", CHAIN_NO_LIMIT);
	for (i = 0; i < 3; i++)
	{
		/* what a stored manifest must hold besides the chain's fields */
		ms[i]->system_identifier = 7;
		ms[i]->wal_segment_size = 16 * 1024 * 1024;
		ms[i]->pg_version_num = 150010;
		ms[i]->timeline = 1;
		ms[i]->stop_lsn = ms[i]->start_lsn + 1;
		strcpy(ms[i]->start_wal, "000000010000000000000001");
		strcpy(ms[i]->stop_wal, "000000010000000000000001");
		ms[i]->start_time_us = INT64_C(1795790000000000) + i;
		ms[i]->stop_time_us = ms[i]->start_time_us + 1;
		ms[i]->label = strdup("pgbk test");
		ms[i]->backup_label = strdup("START WAL LOCATION: 0/1000028\n");
		ms[i]->compression = strdup("zstd");
		ms[i]->encrypted = true;
		ms[i]->format = ms[i]->incremental ? MANIFEST_FORMAT_INCREMENTAL : MANIFEST_FORMAT_FULL;
		ms[i]->chain_length = 2 - i;
		if (ms[i]->incremental)
			ms[i]->changes_mode = strdup(MANIFEST_CHANGES_SUMMARIES);
		if (manifest_store(repo, &params, ms[i], &err) != PGBK_OK)
			fail_msg("store %s: %s", ms[i]->id, err.msg);
		manifest_free(ms[i]);
	}

	/* from the id, and from the head: the same three backups, the head kept */
	if (manifest_chain_load(repo, ring, "20260921T002000Z", 8, &c, &err) != PGBK_OK)
		fail_msg("chain: %s", err.msg);
	assert_int_equal(c->n, 3);
	assert_string_equal(c->m[2]->id, "20260921T000000Z");
	manifest_chain_free(c);
	assert_int_equal(manifest_load(repo, ring, "20260921T002000Z", &head, &err), PGBK_OK);
	assert_int_equal(manifest_chain_load_from(repo, ring, head, 8, &c, &err), PGBK_OK);
	assert_int_equal(c->n, 3);
	assert_true(c->m[0] == head);
	assert_string_equal(c->m[1]->id, "20260921T001000Z");
	assert_string_equal(c->m[2]->id, "20260921T000000Z");
	manifest_chain_free(c); /* frees head too */

	/* too short a limit, then the middle backup gone: refused, head still the caller's */
	assert_int_equal(manifest_load(repo, ring, "20260921T002000Z", &head, &err), PGBK_OK);
	assert_int_equal(manifest_chain_load_from(repo, ring, head, 2, &c, &err), PGBK_ERR_FORMAT);
	assert_null(c);
	assert_non_null(strstr(err.msg, "longer than 2 backups"));
	assert_true(layout_backup_manifest_key("20260921T001000Z", mkey, sizeof(mkey)));
	keys[0] = mkey;
	assert_int_equal(repo_delete(repo, keys, 1, &err), PGBK_OK);
	assert_int_equal(manifest_chain_load_from(repo, ring, head, 8, &c, &err), PGBK_ERR_INTEGRITY);
	assert_null(c);
	assert_non_null(strstr(err.msg, "backup 20260921T002000Z needs backup 20260921T001000Z (the "
	                                "parent of 20260921T002000Z), which is missing"));
	assert_string_equal(head->id, "20260921T002000Z");
	manifest_free(head);
	assert_int_equal(manifest_chain_load(repo, ring, "20260921T002000Z", 8, &c, &err),
	                 PGBK_ERR_INTEGRITY);
	assert_null(c);

	repo_close(repo);
	config_free(cfg);
	keyring_free(ring);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_newest_wins),
	    cmocka_unit_test(test_truncate_then_grow),
	    cmocka_unit_test(test_appear_disappear),
	    cmocka_unit_test(test_zero_ranges),
	    cmocka_unit_test(test_short_last_block),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_property),
	    cmocka_unit_test(test_manifest_chain),
	    cmocka_unit_test(test_manifest_chain_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
