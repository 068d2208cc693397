/*
 * walchanges.c
 *	  Room wal; uses base (WAL names), repo, format (codec, layout) and walscan.c.
 *	  Change summaries (see walchanges.h): the table of changed blocks, its
 *	  binary form, the per-record rules that fill it from a segment, and the
 *	  repository objects.
 *
 * The table: an array of entries (one per relation fork) with an open
 * addressing hash over them.  Blocks are appended as records name them and
 * sorted, deduplicated and cut at the limit lazily ("normalize"), before
 * anything reads them, so summarizing a segment costs an append per block
 * reference.
 */
#include "wal/walchanges.h"

#include "format/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Entry
{
	WalChangeEntry e;
	uint32_t       cap;
	uint32_t       sorted; /* blocks[0, sorted) are sorted, unique and < limit */
	uint32_t       last;   /* the last block appended (skips repeats cheaply) */
} Entry;

struct WalChanges
{
	Entry    *ents;
	size_t    n, cap;
	uint32_t *hash;       /* entry index + 1; 0 empty */
	size_t    hcap;       /* power of two, > 2 n */
	size_t    last_get;   /* index + 1 of the entry get() found last; 0 none */
	bool      dirty;      /* some entry has unsorted blocks */
	bool      ents_order; /* ents[] in key order */
	uint64_t *whole;      /* (spc << 32) | db, sorted, unique */
	size_t    nwhole, wcap;
	bool      has_range;
	uint32_t  tli;
	WalLsn    start, end;
	bool      incomplete;
	char      reason[WALCHG_REASON_LEN];

	/*
	 * Incomplete only because the record at cont_lsn continues into the next
	 * segment and what this summary needs of it lies there: summarizing this
	 * segment with the next one beside it resolves it (walchg_union_range
	 * does).  WAL_INVALID_LSN otherwise.
	 */
	WalLsn cont_lsn;
};

#define LSN_ARGS(lsn) (uint32_t)((lsn) >> 32), (uint32_t) (lsn)

WalChanges *
walchg_new(void)
{
	WalChanges *c = calloc(1, sizeof(*c));

	if (c)
		c->ents_order = true;
	return c;
}

void
walchg_free(WalChanges *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		free(c->ents[i].e.blocks);
	free(c->ents);
	free(c->hash);
	free(c->whole);
	free(c);
}

static int
rf_cmp(const WalRelFork *a, const WalRelFork *b)
{
	if (a->spc != b->spc)
		return a->spc < b->spc ? -1 : 1;
	if (a->db != b->db)
		return a->db < b->db ? -1 : 1;
	if (a->rel != b->rel)
		return a->rel < b->rel ? -1 : 1;
	if (a->fork != b->fork)
		return a->fork < b->fork ? -1 : 1;
	return 0;
}

static size_t
rf_hash(const WalRelFork *rf)
{
	uint64_t h = ((uint64_t) rf->rel << 32 | rf->db) * UINT64_C(0x9E3779B97F4A7C15);

	h ^= ((uint64_t) rf->spc << 8 | rf->fork) * UINT64_C(0xC2B2AE3D27D4EB4F);
	h ^= h >> 29;
	return (size_t) h;
}

static bool
rehash(WalChanges *c, size_t hcap)
{
	uint32_t *h = calloc(hcap, sizeof(*h));
	size_t    i;

	if (h == NULL)
		return false;
	for (i = 0; i < c->n; i++)
	{
		size_t k = rf_hash(&c->ents[i].e.rf) & (hcap - 1);

		while (h[k] != 0)
			k = (k + 1) & (hcap - 1);
		h[k] = (uint32_t) i + 1;
	}
	free(c->hash);
	c->hash = h;
	c->hcap = hcap;
	return true;
}

static Entry *
find(const WalChanges *c, const WalRelFork *rf)
{
	size_t k;

	if (c->hcap == 0)
		return NULL;
	k = rf_hash(rf) & (c->hcap - 1);
	while (c->hash[k] != 0)
	{
		Entry *e = &c->ents[c->hash[k] - 1];

		if (rf_cmp(&e->e.rf, rf) == 0)
			return e;
		k = (k + 1) & (c->hcap - 1);
	}
	return NULL;
}

/* A hash with room for one more entry (rebuilt if a sort had to drop it). */
static bool
ensure_hash(WalChanges *c)
{
	size_t cap = c->hcap ? c->hcap : 64;

	while ((c->n + 1) * 2 > cap)
		cap *= 2;
	return cap == c->hcap || rehash(c, cap);
}

static Entry *
get(WalChanges *c, const WalRelFork *rf)
{
	Entry *e;
	size_t k;

	/* consecutive references often name the same relation fork */
	if (c->last_get != 0 && rf_cmp(&c->ents[c->last_get - 1].e.rf, rf) == 0)
		return &c->ents[c->last_get - 1];
	if (!ensure_hash(c))
		return NULL;
	if ((e = find(c, rf)) != NULL)
	{
		c->last_get = (size_t) (e - c->ents) + 1;
		return e;
	}
	if (c->n >= UINT32_MAX - 1)
		return NULL;
	if (c->n == c->cap)
	{
		size_t ncap = c->cap ? c->cap * 2 : 16;
		Entry *ne = realloc(c->ents, ncap * sizeof(*ne));

		if (ne == NULL)
			return NULL;
		c->ents = ne;
		c->cap = ncap;
	}
	e = &c->ents[c->n];
	memset(e, 0, sizeof(*e));
	e->e.rf.spc = rf->spc;
	e->e.rf.db = rf->db;
	e->e.rf.rel = rf->rel;
	e->e.rf.fork = rf->fork;
	e->e.limit = WALCHG_NO_LIMIT;
	e->last = UINT32_MAX;
	if (c->n > 0 && rf_cmp(&c->ents[c->n - 1].e.rf, rf) > 0)
		c->ents_order = false;
	k = rf_hash(rf) & (c->hcap - 1);
	while (c->hash[k] != 0)
		k = (k + 1) & (c->hcap - 1);
	c->hash[k] = (uint32_t) c->n + 1;
	c->n++;
	c->last_get = c->n;
	return e;
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/*
 * Sort block numbers.  Summarizing a segment of random updates sorts tens of
 * thousands of them, and qsort's call per comparison made sorting half the
 * cost of a summary (perf on pgbench WAL): a least-significant-digit radix
 * sort over the bytes that differ (block numbers below 65536 need two
 * passes) is several times faster.  Short arrays, and any allocation
 * failure, take insertion sort and qsort.
 */
static void
sort_blocks(uint32_t *a, uint32_t n)
{
	uint32_t *tmp, *src, *dst;
	uint32_t  all_or = 0, all_and = UINT32_MAX, i;
	int       shift;

	if (n < 64)
	{
		for (i = 1; i < n; i++)
		{
			uint32_t v = a[i], j = i;

			for (; j > 0 && a[j - 1] > v; j--)
				a[j] = a[j - 1];
			a[j] = v;
		}
		return;
	}
	if ((tmp = malloc((size_t) n * sizeof(uint32_t))) == NULL)
	{
		qsort(a, n, sizeof(uint32_t), u32_cmp);
		return;
	}
	for (i = 0; i < n; i++)
	{
		all_or |= a[i];
		all_and &= a[i];
	}
	src = a;
	dst = tmp;
	for (shift = 0; shift < 32; shift += 8)
	{
		uint32_t count[256] = {0};
		uint32_t sum = 0, b;

		/* a byte every value has alike: this pass would not move anything */
		if ((((all_or ^ all_and) >> shift) & 0xFF) == 0)
			continue;
		for (i = 0; i < n; i++)
			count[(src[i] >> shift) & 0xFF]++;
		for (b = 0; b < 256; b++)
		{
			uint32_t c = count[b];

			count[b] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xFF]++] = src[i];
		{
			uint32_t *t = src;

			src = dst;
			dst = t;
		}
	}
	if (src != a)
		memcpy(a, src, (size_t) n * sizeof(uint32_t));
	free(tmp);
}

/* Sort, deduplicate and cut one entry's blocks at its limit. */
static void
entry_normalize(Entry *e)
{
	uint32_t i, n = 0;

	if (e->sorted == e->e.nblocks &&
	    (e->e.nblocks == 0 || e->e.blocks[e->e.nblocks - 1] < e->e.limit))
		return;
	sort_blocks(e->e.blocks, e->e.nblocks);
	for (i = 0; i < e->e.nblocks; i++)
	{
		uint32_t b = e->e.blocks[i];

		if (b >= e->e.limit)
			break;
		if (n == 0 || e->e.blocks[n - 1] != b)
			e->e.blocks[n++] = b;
	}
	e->e.nblocks = n;
	e->sorted = n;
}

static int
entry_cmp(const void *a, const void *b)
{
	return rf_cmp(&((const Entry *) a)->e.rf, &((const Entry *) b)->e.rf);
}

/*
 * Bring the table to its canonical form before it is read.  Logically const:
 * the content does not change, only its arrangement.
 */
static void
normalize(const WalChanges *cc)
{
	WalChanges *c = (WalChanges *) cc;
	size_t      i;

	if (c->dirty)
	{
		for (i = 0; i < c->n; i++)
			entry_normalize(&c->ents[i]);
		c->dirty = false;
	}
	if (!c->ents_order)
	{
		qsort(c->ents, c->n, sizeof(Entry), entry_cmp);
		c->ents_order = true;
		c->last_get = 0;
		/* the hash holds indexes: same size, so only memory can fail */
		if (!rehash(c, c->hcap))
		{
			/* keep working without a hash: find() falls back below */
			free(c->hash);
			c->hash = NULL;
			c->hcap = 0;
		}
	}
}

static bool
entry_append(WalChanges *c, Entry *e, uint32_t blkno)
{
	if (blkno >= e->e.limit || blkno == e->last)
		return true;
	if (e->e.nblocks == e->cap)
	{
		uint32_t  ncap;
		uint32_t *nb;

		/* many repeats: compact before growing */
		if (e->e.nblocks >= 1024 && e->sorted < e->e.nblocks / 2)
		{
			entry_normalize(e);
			if (e->e.nblocks < e->cap * 3 / 4)
				goto append;
		}
		if (e->cap > UINT32_MAX / 2)
			return false;
		ncap = e->cap ? e->cap * 2 : 8;
		nb = realloc(e->e.blocks, (size_t) ncap * sizeof(uint32_t));
		if (nb == NULL)
			return false;
		e->e.blocks = nb;
		e->cap = ncap;
	}
append:
	if (e->e.nblocks > 0 && e->sorted == e->e.nblocks && e->e.blocks[e->e.nblocks - 1] < blkno)
		e->sorted++; /* still in order: the common case of ascending references */
	else
		c->dirty = true;
	e->e.blocks[e->e.nblocks++] = blkno;
	if (e->e.nblocks == 1)
		e->sorted = 1;
	e->last = blkno;
	return true;
}

bool
walchg_add_block(WalChanges *c, const WalRelFork *rf, uint32_t blkno)
{
	Entry *e;

	if ((e = get(c, rf)) == NULL)
		return false;
	return entry_append(c, e, blkno);
}

bool
walchg_set_limit(WalChanges *c, const WalRelFork *rf, uint32_t limit)
{
	Entry *e;

	if (limit == WALCHG_NO_LIMIT)
		return true;
	if ((e = get(c, rf)) == NULL)
		return false;
	if (limit < e->e.limit)
	{
		e->e.limit = limit;
		if (e->e.nblocks > 0)
		{
			e->sorted = 0;
			c->dirty = true;
		}
	}
	return true;
}

bool
walchg_add_whole_db(WalChanges *c, uint32_t spc, uint32_t db)
{
	uint64_t key = (uint64_t) spc << 32 | db;
	size_t   lo = 0, hi = c->nwhole;

	while (lo < hi)
	{
		size_t mid = (lo + hi) / 2;

		if (c->whole[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->nwhole && c->whole[lo] == key)
		return true;
	if (c->nwhole == c->wcap)
	{
		size_t    ncap = c->wcap ? c->wcap * 2 : 8;
		uint64_t *nw = realloc(c->whole, ncap * sizeof(*nw));

		if (nw == NULL)
			return false;
		c->whole = nw;
		c->wcap = ncap;
	}
	memmove(c->whole + lo + 1, c->whole + lo, (c->nwhole - lo) * sizeof(uint64_t));
	c->whole[lo] = key;
	c->nwhole++;
	return true;
}

bool
walchg_merge(WalChanges *dst, const WalChanges *src)
{
	size_t i;

	normalize(src);
	for (i = 0; i < src->n; i++)
	{
		const WalChangeEntry *s = &src->ents[i].e;
		Entry                *d;
		uint32_t              j;

		if ((d = get(dst, &s->rf)) == NULL)
			return false;
		if (s->limit < d->e.limit)
		{
			d->e.limit = s->limit;
			d->sorted = 0;
			dst->dirty = true;
		}
		for (j = 0; j < s->nblocks; j++)
			if (!entry_append(dst, d, s->blocks[j]))
				return false;
	}
	for (i = 0; i < src->nwhole; i++)
		if (!walchg_add_whole_db(dst, (uint32_t) (src->whole[i] >> 32), (uint32_t) src->whole[i]))
			return false;
	if (src->incomplete)
		walchg_mark_incomplete(dst, src->reason);
	if (src->has_range)
	{
		if (!dst->has_range)
			walchg_set_range(dst, src->tli, src->start, src->end);
		else
		{
			if (src->start < dst->start)
				dst->start = src->start;
			if (src->end > dst->end)
			{
				dst->end = src->end;
				dst->tli = src->tli;
			}
		}
	}
	return true;
}

const WalChangeEntry *
walchg_lookup(const WalChanges *c, const WalRelFork *rf)
{
	const Entry *e;

	normalize(c);
	if (c->hcap == 0)
	{
		/* no hash (out of memory while sorting): binary search */
		size_t lo = 0, hi = c->n;

		while (lo < hi)
		{
			size_t mid = (lo + hi) / 2;
			int    r = rf_cmp(&c->ents[mid].e.rf, rf);

			if (r == 0)
				return &c->ents[mid].e;
			if (r < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return NULL;
	}
	e = find(c, rf);
	return e ? &e->e : NULL;
}

bool
walchg_db_whole(const WalChanges *c, uint32_t spc, uint32_t db)
{
	size_t i;

	for (i = 0; i < c->nwhole; i++)
	{
		uint32_t s = (uint32_t) (c->whole[i] >> 32), d = (uint32_t) c->whole[i];

		if (s == spc && (d == 0 || d == db))
			return true;
	}
	return false;
}

size_t
walchg_count(const WalChanges *c)
{
	return c->n;
}

const WalChangeEntry *
walchg_entry(const WalChanges *c, size_t i)
{
	normalize(c);
	return i < c->n ? &c->ents[i].e : NULL;
}

size_t
walchg_whole_count(const WalChanges *c)
{
	return c->nwhole;
}

void
walchg_whole(const WalChanges *c, size_t i, uint32_t *spc, uint32_t *db)
{
	*spc = i < c->nwhole ? (uint32_t) (c->whole[i] >> 32) : 0;
	*db = i < c->nwhole ? (uint32_t) c->whole[i] : 0;
}

uint64_t
walchg_block_count(const WalChanges *c)
{
	uint64_t n = 0;
	size_t   i;

	normalize(c);
	for (i = 0; i < c->n; i++)
		n += c->ents[i].e.nblocks;
	return n;
}

void
walchg_set_range(WalChanges *c, uint32_t tli, WalLsn start, WalLsn end)
{
	c->has_range = true;
	c->tli = tli;
	c->start = start;
	c->end = end;
}

void
walchg_range(const WalChanges *c, uint32_t *tli, WalLsn *start, WalLsn *end)
{
	if (tli)
		*tli = c->tli;
	if (start)
		*start = c->start;
	if (end)
		*end = c->end;
}

void
walchg_mark_incomplete(WalChanges *c, const char *reason)
{
	size_t i;

	if (c->incomplete)
		return;
	c->incomplete = true;
	snprintf(c->reason, sizeof(c->reason), "%s", reason && reason[0] ? reason : "incomplete");
	/* one line of printable text: it goes into logs and the binary form */
	for (i = 0; c->reason[i]; i++)
		if ((unsigned char) c->reason[i] < 0x20 || (unsigned char) c->reason[i] > 0x7e)
			c->reason[i] = ' ';
}

bool
walchg_complete(const WalChanges *c, const char **reason)
{
	if (reason)
		*reason = c->incomplete ? c->reason : NULL;
	return !c->incomplete;
}

WalLsn
walchg_cont_lsn(const WalChanges *c)
{
	return c->cont_lsn;
}

bool
walchg_equal(const WalChanges *a, const WalChanges *b)
{
	size_t i;

	normalize(a);
	normalize(b);
	if (a->n != b->n || a->nwhole != b->nwhole || a->incomplete != b->incomplete ||
	    a->has_range != b->has_range || a->tli != b->tli || a->start != b->start ||
	    a->end != b->end)
		return false;
	if (a->incomplete && strcmp(a->reason, b->reason) != 0)
		return false;
	if (a->cont_lsn != b->cont_lsn)
		return false;
	if (a->nwhole && memcmp(a->whole, b->whole, a->nwhole * sizeof(uint64_t)) != 0)
		return false;
	for (i = 0; i < a->n; i++)
	{
		const WalChangeEntry *x = &a->ents[i].e, *y = &b->ents[i].e;

		if (rf_cmp(&x->rf, &y->rf) != 0 || x->limit != y->limit || x->nblocks != y->nblocks)
			return false;
		if (x->nblocks && memcmp(x->blocks, y->blocks, x->nblocks * sizeof(uint32_t)) != 0)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * Binary form, version 1:
 *	 "PGWC" 1
 *	 varint tli, start, end; u8 flags (bit 0 range set, bit 1 incomplete)
 *	 [incomplete: varint reason length (< WALCHG_REASON_LEN), reason bytes]
 *	 [bit 2, resolvable by the next segment: varint cont_lsn]
 *	 varint nwhole, then (varint spc, varint db) ascending
 *	 varint nentries, then per entry ascending by (spc, db, rel, fork):
 *	   varint spc, db, rel; u8 fork; varint limit + 1 (0: no limit);
 *	   varint nblocks; first block, then each next - previous - 1
 * Varints are LEB128 (7 bits a byte, low first), minimal.  Nothing follows.
 * ---------------------------------------------------------------------
 */
#define WALCHG_MAGIC   "PGWC"
#define WALCHG_VERSION 1
#define FLAG_RANGE     0x01
#define FLAG_INCOMPL   0x02
#define FLAG_CONT      0x04

static bool
put_varint(PgbkBuf *b, uint64_t v)
{
	unsigned char t[10];
	size_t        n = 0;

	do
	{
		t[n] = (unsigned char) (v & 0x7f);
		v >>= 7;
		if (v)
			t[n] |= 0x80;
		n++;
	} while (v);
	return pgbk_buf_append(b, t, n);
}

PgbkStatus
walchg_encode(const WalChanges *c, PgbkBuf *out, PgbkError *err)
{
	size_t        i;
	bool          ok;
	unsigned char flags = (c->has_range ? FLAG_RANGE : 0) | (c->incomplete ? FLAG_INCOMPL : 0) |
	                      (c->cont_lsn != WAL_INVALID_LSN ? FLAG_CONT : 0);
	unsigned char v = WALCHG_VERSION;

	normalize(c);
	ok = pgbk_buf_append(out, WALCHG_MAGIC, 4) && pgbk_buf_append(out, &v, 1) &&
	     put_varint(out, c->tli) && put_varint(out, c->start) && put_varint(out, c->end) &&
	     pgbk_buf_append(out, &flags, 1);
	if (ok && c->incomplete)
		ok = put_varint(out, strlen(c->reason)) &&
		     pgbk_buf_append(out, c->reason, strlen(c->reason));
	if (ok && c->cont_lsn != WAL_INVALID_LSN)
		ok = put_varint(out, c->cont_lsn);
	ok = ok && put_varint(out, c->nwhole);
	for (i = 0; ok && i < c->nwhole; i++)
		ok = put_varint(out, c->whole[i] >> 32) && put_varint(out, (uint32_t) c->whole[i]);
	ok = ok && put_varint(out, c->n);
	for (i = 0; ok && i < c->n; i++)
	{
		const WalChangeEntry *e = &c->ents[i].e;
		uint32_t              j;

		ok = put_varint(out, e->rf.spc) && put_varint(out, e->rf.db) &&
		     put_varint(out, e->rf.rel) && pgbk_buf_append(out, &e->rf.fork, 1) &&
		     put_varint(out, e->limit == WALCHG_NO_LIMIT ? 0 : (uint64_t) e->limit + 1) &&
		     put_varint(out, e->nblocks);
		for (j = 0; ok && j < e->nblocks; j++)
			ok = put_varint(out, j == 0 ? e->blocks[0] : e->blocks[j] - e->blocks[j - 1] - 1);
	}
	if (!ok)
		return pgbk_error(err, PGBK_ERR, "out of memory encoding a change summary");
	return PGBK_OK;
}

typedef struct Reader
{
	const unsigned char *p;
	size_t               len, off;
} Reader;

static bool
get_varint(Reader *r, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	int      shift = 0;

	for (;;)
	{
		unsigned char b;

		if (r->off >= r->len || shift > 63)
			return false;
		b = r->p[r->off++];
		if (shift == 63 && (b & 0x7e))
			return false;
		v |= (uint64_t) (b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
		{
			/* minimal: no trailing zero byte beyond the first */
			if (b == 0 && shift > 7)
				return false;
			break;
		}
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool
get_u32(Reader *r, uint32_t *out)
{
	uint64_t v;

	if (!get_varint(r, UINT32_MAX, &v))
		return false;
	*out = (uint32_t) v;
	return true;
}

PgbkStatus
walchg_decode(const void *data, size_t len, WalChanges **out, PgbkError *err)
{
	Reader        r = {data, len, 0};
	WalChanges   *c;
	uint64_t      v, n, i;
	uint64_t      tli, start, end;
	unsigned char flags;
	const char   *what = "header";
	WalRelFork    prev = {0, 0, 0, 0};

	*out = NULL;
	if (len < 5 || memcmp(data, WALCHG_MAGIC, 4) != 0)
		return pgbk_error(err, PGBK_ERR_FORMAT, "not a change summary (bad magic)");
	if (r.p[4] != WALCHG_VERSION)
		return pgbk_error(err, PGBK_ERR_FORMAT, "unsupported change summary version %u", r.p[4]);
	r.off = 5;
	if ((c = walchg_new()) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if (!get_varint(&r, UINT32_MAX, &tli) || !get_varint(&r, UINT64_MAX, &start) ||
	    !get_varint(&r, UINT64_MAX, &end) || r.off >= r.len)
		goto bad;
	flags = r.p[r.off++];
	if ((flags & ~(FLAG_RANGE | FLAG_INCOMPL | FLAG_CONT)) != 0 ||
	    ((flags & FLAG_CONT) && !(flags & FLAG_INCOMPL)) ||
	    (!(flags & FLAG_RANGE) && (tli | start | end) != 0) || start > end)
		goto bad;
	if (flags & FLAG_RANGE)
		walchg_set_range(c, (uint32_t) tli, start, end);
	if (flags & FLAG_INCOMPL)
	{
		char reason[WALCHG_REASON_LEN];

		what = "reason";
		if (!get_varint(&r, WALCHG_REASON_LEN - 1, &v) || v == 0 || v > r.len - r.off)
			goto bad;
		memcpy(reason, r.p + r.off, v);
		reason[v] = '\0';
		for (i = 0; i < v; i++)
			if (reason[i] < 0x20 || reason[i] > 0x7e)
				goto bad;
		r.off += v;
		walchg_mark_incomplete(c, reason);
	}
	if (flags & FLAG_CONT)
	{
		what = "continuing record";
		if (!get_varint(&r, UINT64_MAX, &v) || v == WAL_INVALID_LSN)
			goto bad;
		c->cont_lsn = v;
	}
	what = "whole databases";
	if (!get_varint(&r, (r.len - r.off) / 2, &n))
		goto bad;
	for (i = 0; i < n; i++)
	{
		uint32_t spc, db;

		if (!get_u32(&r, &spc) || !get_u32(&r, &db))
			goto bad;
		if (i > 0 && ((uint64_t) spc << 32 | db) <= c->whole[c->nwhole - 1])
			goto bad;
		if (!walchg_add_whole_db(c, spc, db))
			goto oom;
	}
	what = "entries";
	if (!get_varint(&r, (r.len - r.off) / 6, &n))
		goto bad;
	for (i = 0; i < n; i++)
	{
		WalRelFork rf;
		uint64_t   lim, nb, j;
		uint32_t   limit, prevb = 0;
		Entry     *e;

		if (!get_u32(&r, &rf.spc) || !get_u32(&r, &rf.db) || !get_u32(&r, &rf.rel) ||
		    r.off >= r.len)
			goto bad;
		rf.fork = r.p[r.off++];
		if (rf.fork > WALCHG_FORK_INIT || (i > 0 && rf_cmp(&rf, &prev) <= 0))
			goto bad;
		prev = rf;
		if (!get_varint(&r, UINT32_MAX, &lim) || !get_varint(&r, r.len - r.off, &nb))
			goto bad;
		limit = lim == 0 ? WALCHG_NO_LIMIT : (uint32_t) (lim - 1);
		if (limit == WALCHG_NO_LIMIT && nb == 0)
			goto bad; /* an entry says something */
		if ((e = get(c, &rf)) == NULL)
			goto oom;
		e->e.limit = limit;
		if (nb > 0)
		{
			e->e.blocks = malloc(nb * sizeof(uint32_t));
			if (e->e.blocks == NULL)
				goto oom;
			e->cap = (uint32_t) nb;
		}
		for (j = 0; j < nb; j++)
		{
			uint64_t d, b;

			if (!get_varint(&r, UINT32_MAX, &d))
				goto bad;
			b = j == 0 ? d : (uint64_t) prevb + 1 + d;
			if (b >= limit)
				goto bad;
			e->e.blocks[j] = prevb = (uint32_t) b;
			e->e.nblocks = (uint32_t) j + 1;
		}
		e->sorted = e->e.nblocks;
	}
	if (r.off != r.len)
	{
		what = "end";
		goto bad;
	}
	*out = c;
	return PGBK_OK;

bad:
	walchg_free(c);
	return pgbk_error(err, PGBK_ERR_FORMAT, "malformed change summary (%s, at byte %zu of %zu)",
	                  what, r.off, len);
oom:
	walchg_free(c);
	return pgbk_error(err, PGBK_ERR, "out of memory decoding a change summary");
}

/* ---------------------------------------------------------------------
 * Summarizing records (PostgreSQL 15 formats; 13 to 17 agree on these
 * except where noted)
 * ---------------------------------------------------------------------
 */
#define SIZE_OF_XLOG_RECORD    24
#define XLR_INFO_MASK          0x0F
#define XLR_SPECIAL_REL_UPDATE 0x01
/* block reference headers: walscan_record_blocks (walscan.c) */

#define RM_XACT_ID   1
#define RM_SMGR_ID   2
#define RM_DBASE_ID  4
#define RM_TBLSPC_ID 5

#define XLOG_SMGR_CREATE   0x10
#define XLOG_SMGR_TRUNCATE 0x20
#define SMGR_TRUNCATE_HEAP 0x0001
#define SMGR_TRUNCATE_VM   0x0002

#define XLOG_XACT_OPMASK            0x70
#define XLOG_XACT_HAS_INFO          0x80
#define XLOG_XACT_COMMIT            0x00
#define XLOG_XACT_ABORT             0x20
#define XLOG_XACT_COMMIT_PREPARED   0x30
#define XLOG_XACT_ABORT_PREPARED    0x40
#define XACT_XINFO_HAS_DBINFO       (1U << 0)
#define XACT_XINFO_HAS_SUBXACTS     (1U << 1)
#define XACT_XINFO_HAS_RELFILENODES (1U << 2)

/* PostgreSQL 15+; 13 and 14 had CREATE 0x00 and DROP 0x10 */
#define XLOG_DBASE_CREATE_FILE_COPY 0x00
#define XLOG_DBASE_CREATE_WAL_LOG   0x10
#define XLOG_DBASE_DROP             0x20
#define XLOG_DBASE_DROP_14          0x10

#define XLOG_TBLSPC_DROP 0x10

#define READ_OK          1
#define READ_MALFORMED   0
#define READ_UNAVAILABLE (-1)

struct WalChgCollector
{
	WalChanges *c;
	bool        oom;
	char        segname[WALNAME_BUFLEN];
};

static uint32_t
le32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

WalChgCollector *
walchg_collector_begin(const char *segname)
{
	WalChgCollector *col = calloc(1, sizeof(*col));

	if (col == NULL)
		return NULL;
	if ((col->c = walchg_new()) == NULL)
	{
		free(col);
		return NULL;
	}
	snprintf(col->segname, sizeof(col->segname), "%s", segname ? segname : "");
	return col;
}

static void
incomplete(WalChgCollector *col, const WalScanRecord *rec, const char *what)
{
	char reason[WALCHG_REASON_LEN];

	/* the only thing missing is in the next segment: resolvable there */
	if (!col->c->incomplete && !rec->complete && strstr(what, "next segment") != NULL)
		col->c->cont_lsn = rec->lsn;

	snprintf(reason, sizeof(reason), "record at %X/%X%s%s: %s", LSN_ARGS(rec->lsn),
	         col->segname[0] ? " in segment " : "", col->segname, what);
	walchg_mark_incomplete(col->c, reason);
}

/* Does this record's meaning depend on its main data? */
static bool
needs_main_data(const WalScanRecord *rec)
{
	uint8_t info = rec->info & ~XLR_INFO_MASK;

	switch (rec->rmid)
	{
		case RM_SMGR_ID:
		case RM_DBASE_ID:
			return true;
		case RM_TBLSPC_ID:
			return info == XLOG_TBLSPC_DROP;
		case RM_XACT_ID:
			switch (info & XLOG_XACT_OPMASK)
			{
				case XLOG_XACT_COMMIT:
				case XLOG_XACT_COMMIT_PREPARED:
				case XLOG_XACT_ABORT:
				case XLOG_XACT_ABORT_PREPARED:
					return true;
			}
			return false;
	}
	return (rec->info & XLR_SPECIAL_REL_UPDATE) != 0;
}

static bool
set_all_forks_zero(WalChanges *c, uint32_t spc, uint32_t db, uint32_t rel)
{
	WalRelFork rf = {spc, db, rel, 0};
	uint8_t    f;

	for (f = 0; f <= WALCHG_FORK_INIT; f++)
	{
		if (f == WALCHG_FORK_FSM)
			continue; /* as PostgreSQL 17: FSM forks are copied whole anyway */
		rf.fork = f;
		if (!walchg_set_limit(c, &rf, 0))
			return false;
	}
	return true;
}

/* xl_xact_commit / xl_xact_abort: the relations dropped with it. */
static bool
xact_record(WalChgCollector *col, const WalScanRecord *rec, const unsigned char *m, uint32_t len)
{
	uint32_t off = 8; /* xact_time */
	uint32_t xinfo = 0;
	uint32_t nrels, i;

	if (rec->info & XLOG_XACT_HAS_INFO)
	{
		if (len < off + 4)
			return false;
		xinfo = le32(m + off);
		off += 4;
	}
	if (xinfo & XACT_XINFO_HAS_DBINFO)
		off += 8;
	if (xinfo & XACT_XINFO_HAS_SUBXACTS)
	{
		uint32_t nsub;

		if (len < off + 4)
			return false;
		nsub = le32(m + off);
		if (nsub > (len - off - 4) / 4)
			return false;
		off += 4 + 4 * nsub;
	}
	if (!(xinfo & XACT_XINFO_HAS_RELFILENODES))
		return len >= off;
	if (len < off + 4)
		return false;
	nrels = le32(m + off);
	off += 4;
	if (nrels > (len - off) / 12)
		return false;
	for (i = 0; i < nrels; i++)
	{
		const unsigned char *n = m + off + 12 * i;

		if (!set_all_forks_zero(col->c, le32(n), le32(n + 4), le32(n + 8)))
			col->oom = true;
	}
	return true;
}

/* Main data rules; false if the main data is not what the record type says. */
static bool
main_data_record(WalChgCollector *col, const WalScanRecord *rec, const unsigned char *m,
                 uint32_t len)
{
	uint8_t     info = rec->info & ~XLR_INFO_MASK;
	WalChanges *c = col->c;
	bool        ok = true;

	switch (rec->rmid)
	{
		case RM_SMGR_ID:
			if (info == XLOG_SMGR_CREATE)
			{
				/* xl_smgr_create: RelFileNode rnode; ForkNumber forkNum */
				WalRelFork rf;
				uint32_t   fork;

				if (len < 16)
					return false;
				rf.spc = le32(m);
				rf.db = le32(m + 4);
				rf.rel = le32(m + 8);
				fork = le32(m + 12);
				if (fork > WALCHG_FORK_INIT)
					return false;
				rf.fork = (uint8_t) fork;
				if (fork != WALCHG_FORK_FSM)
					ok = walchg_set_limit(c, &rf, 0);
			}
			else if (info == XLOG_SMGR_TRUNCATE)
			{
				/* xl_smgr_truncate: BlockNumber blkno; RelFileNode rnode; int flags */
				WalRelFork rf;
				uint32_t   blkno, flags;

				if (len < 20)
					return false;
				blkno = le32(m);
				rf.spc = le32(m + 4);
				rf.db = le32(m + 8);
				rf.rel = le32(m + 12);
				flags = le32(m + 16);
				rf.fork = WALCHG_FORK_MAIN;
				if (flags & SMGR_TRUNCATE_HEAP)
					ok = walchg_set_limit(c, &rf, blkno);

				/*
				 * The visibility map is cut to the map page holding heap
				 * block blkno, and that page is cleared in place; it is a
				 * few pages per GB: count all of it as changed.
				 */
				rf.fork = WALCHG_FORK_VM;
				if (ok && (flags & SMGR_TRUNCATE_VM))
					ok = walchg_set_limit(c, &rf, 0);
			}
			else
				goto special;
			break;
		case RM_DBASE_ID:
			if (rec->pg_major >= 15 &&
			    (info == XLOG_DBASE_CREATE_FILE_COPY || info == XLOG_DBASE_CREATE_WAL_LOG))
			{
				/* xl_dbase_create_*_rec: Oid db_id; Oid tablespace_id; ... */
				if (len < 8)
					return false;
				ok = walchg_add_whole_db(c, le32(m + 4), le32(m));
			}
			else if (rec->pg_major < 15 && info == XLOG_DBASE_CREATE_FILE_COPY)
			{
				if (len < 8)
					return false;
				ok = walchg_add_whole_db(c, le32(m + 4), le32(m));
			}
			else if ((rec->pg_major >= 15 && info == XLOG_DBASE_DROP) ||
			         (rec->pg_major < 15 && info == XLOG_DBASE_DROP_14))
			{
				/* xl_dbase_drop_rec: Oid db_id; int ntablespaces; Oid tablespace_ids[] */
				uint32_t db, nts, i;

				if (len < 8)
					return false;
				db = le32(m);
				nts = le32(m + 4);
				if (nts > (len - 8) / 4)
					return false;
				for (i = 0; ok && i < nts; i++)
					ok = walchg_add_whole_db(c, le32(m + 8 + 4 * i), db);
			}
			else
				goto special;
			break;
		case RM_TBLSPC_ID:
			if (info == XLOG_TBLSPC_DROP)
			{
				if (len < 4)
					return false;
				ok = walchg_add_whole_db(c, le32(m), 0);
			}
			break;
		case RM_XACT_ID:
			return xact_record(col, rec, m, len);
		default:
			goto special;
	}
	if (!ok)
		col->oom = true;
	return true;

special:
	if (rec->info & XLR_SPECIAL_REL_UPDATE)
	{
		char what[128];

		snprintf(what, sizeof(what),
		         "resource manager %u, info 0x%02X changes relation files in a way this summary "
		         "cannot attribute",
		         rec->rmid, rec->info);
		incomplete(col, rec, what);
	}
	return true;
}

void
walchg_collect(void *arg, const WalScanRecord *rec)
{
	WalChgCollector *col = arg;
	WalScanBlocks    br;
	int              rc, i;

	WalScanRecord r2;

	if (col->oom)
		return;
	if (!rec->have_header)
	{
		unsigned char hdr[SIZE_OF_XLOG_RECORD];

		/* with the next segment beside it, the header can be read whole */
		if (walscan_record_bytes(rec, 0, SIZE_OF_XLOG_RECORD, hdr) != READ_OK)
		{
			incomplete(col, rec, "continues into the next segment within its header");
			return;
		}
		r2 = *rec;
		r2.have_header = true;
		r2.info = hdr[16];
		r2.rmid = hdr[17];
		rec = &r2;
	}
	rc = walscan_record_blocks(rec, &br);
	/* the references read are real even when the rest is cut */
	for (i = 0; i < br.n; i++)
		if (!walchg_add_block(col->c, &br.rf[i], br.blk[i]))
			col->oom = true;
	if (rc == READ_UNAVAILABLE)
	{
		incomplete(col, rec, "continues into the next segment within its block references");
		return;
	}
	if (rc == READ_MALFORMED)
	{
		incomplete(col, rec, "has invalid block references");
		return;
	}
	if (!needs_main_data(rec))
		return;
	{
		unsigned char  small[512];
		unsigned char *m = small;

		if (br.main_len > sizeof(small) && (m = malloc(br.main_len)) == NULL)
		{
			col->oom = true;
			return;
		}
		rc = walscan_record_bytes(rec, br.main_off, br.main_len, m);
		if (rc == READ_UNAVAILABLE)
			incomplete(col, rec, "continues into the next segment within its main data");
		else if (rc != READ_OK || !main_data_record(col, rec, m, br.main_len))
			incomplete(col, rec, "has main data too short for its type");
		if (m != small)
			free(m);
	}
}

WalChanges *
walchg_collector_end(WalChgCollector *col, const WalSummary *scanned, bool scan_ok)
{
	WalChanges *c;
	uint32_t    tli = 0;
	WalSegNo    segno = 0;

	if (col == NULL)
		return NULL;
	c = col->c;
	if (col->oom)
	{
		walchg_free(c);
		free(col);
		return NULL;
	}
	if (scan_ok)
	{
		/*
		 * The timeline is the name's: the first segment of a timeline starts
		 * with its parent's pages.
		 */
		if (col->segname[0] == '\0' ||
		    walname_parse_segment(col->segname, scanned->seg_size, &tli, &segno, NULL) != PGBK_OK)
			tli = scanned->last_tli;
		walchg_set_range(c, tli, walname_segno_to_lsn(scanned->segno, scanned->seg_size),
		                 scanned->end_lsn);
	}
	free(col);
	return c;
}

PgbkStatus
walchg_scan_segment(const void *seg, size_t len, const char *segname, WalChanges **out,
                    PgbkError *err)
{
	return walchg_scan_segment_next(seg, len, NULL, 0, segname, out, err);
}

PgbkStatus
walchg_scan_segment_next(const void *seg, size_t len, const void *next, size_t next_len,
                         const char *segname, WalChanges **out, PgbkError *err)
{
	WalChgCollector *col;
	WalSummary       s;
	PgbkStatus       st;
	char             base[WALNAME_BUFLEN];
	const char      *dot;

	*out = NULL;
	/* a .partial summarizes under its segment's name */
	snprintf(base, sizeof(base), "%s", segname ? segname : "");
	if ((dot = strchr(base, '.')) != NULL)
		base[dot - base] = '\0';
	if ((col = walchg_collector_begin(base)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	st = walscan_segment_hooked(seg, len, (uint32_t) len, next, next_len, &s, walchg_collect, col,
	                            err);
	if (st != PGBK_OK)
	{
		walchg_free(walchg_collector_end(col, &s, false));
		return st;
	}
	if ((*out = walchg_collector_end(col, &s, true)) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory summarizing changes");
	return PGBK_OK;
}

/* ---------------------------------------------------------------------
 * Repository objects
 * ---------------------------------------------------------------------
 */

/* The authenticated name of a summary object: its key's last part, prefixed. */
static void
object_name(const char *segname, char *name, size_t len)
{
	snprintf(name, len, LAYOUT_CHANGES_PREFIX "%s", segname);
}

PgbkStatus
walchg_store(Repo *repo, const CodecParams *params, const char *segname, const WalChanges *c,
             PgbkError *err)
{
	char           key[LAYOUT_KEY_LEN];
	char           name[WALNAME_BUFLEN + 16];
	char           attrs[WALNAME_BUFLEN + 64];
	PgbkBuf        raw, enc;
	PgbkStatus     st;
	RepoPutOptions opts;

	if (!layout_changes_key(segname, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "\"%s\" is not a WAL segment name", segname);
	object_name(segname, name, sizeof(name));
	snprintf(attrs, sizeof(attrs), "kind=changes\nname=%s\n", name);
	pgbk_buf_init(&raw);
	pgbk_buf_init(&enc);
	st = walchg_encode(c, &raw, err);
	if (st == PGBK_OK)
		st = codec_encode(params, raw.data, raw.len, attrs, &enc, NULL, err);
	if (st == PGBK_OK)
	{
		memset(&opts, 0, sizeof(opts));
		opts.no_overwrite = true;
		st = repo_put(repo, key, enc.data, enc.len, &opts, err);
		if (st == PGBK_EXISTS)
		{
			WalChanges *have = NULL;
			PgbkError   lerr;

			/* a retry: the same summary is fine, another is kept and reported */
			pgbk_error_clear(&lerr);
			st = walchg_load(repo, params->keyring, segname, &have, &lerr);
			if (st == PGBK_OK && !walchg_equal(have, c))
				st = pgbk_error(err, PGBK_EXISTS,
				                "refusing to overwrite change summary \"%s\" in %s: it holds a "
				                "different summary",
				                key, repo_describe(repo));
			else if (st != PGBK_OK)
				*err = lerr;
			walchg_free(have);
		}
		else if (st != PGBK_OK)
			pgbk_error_prefix(err, "could not store change summary \"%s\"", key);
	}
	pgbk_buf_free(&raw);
	pgbk_buf_free(&enc);
	return st;
}

PgbkStatus
walchg_check_object(const CodecHeader *hdr, const void *raw, size_t len, const char *segname,
                    WalChanges **out, PgbkError *err)
{
	char        name[WALNAME_BUFLEN + 16];
	WalChanges *c = NULL;
	PgbkStatus  st;

	if (out != NULL)
		*out = NULL;
	object_name(segname, name, sizeof(name));
	if ((st = codec_check_name(hdr, name, err)) != PGBK_OK)
		return st;
	if ((st = walchg_decode(raw, len, &c, err)) != PGBK_OK)
		return st;
	if (out != NULL)
		*out = c;
	else
		walchg_free(c);
	return PGBK_OK;
}

PgbkStatus
walchg_load(Repo *repo, const PgbkKeyring *ring, const char *segname, WalChanges **out,
            PgbkError *err)
{
	char        key[LAYOUT_KEY_LEN];
	PgbkBuf     stored, raw;
	CodecHeader hdr;
	PgbkStatus  st;

	*out = NULL;
	if (!layout_changes_key(segname, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "\"%s\" is not a WAL segment name", segname);
	pgbk_buf_init(&stored);
	pgbk_buf_init(&raw);
	st = repo_get(repo, key, &stored, err);
	if (st == PGBK_NOT_FOUND)
		pgbk_error(err, PGBK_NOT_FOUND, "change summary \"%s\" is not in %s", key,
		           repo_describe(repo));
	else if (st != PGBK_OK)
		pgbk_error_prefix(err, "could not read change summary \"%s\"", key);
	else
	{
		st = codec_decode(ring, stored.data, stored.len, CODEC_LIMIT_CHANGES, &raw, &hdr, err);
		if (st == PGBK_OK)
			st = walchg_check_object(&hdr, raw.data, raw.len, segname, out, err);
		if (st != PGBK_OK)
			pgbk_error_prefix(err, "change summary \"%s\" in %s is unusable", key,
			                  repo_describe(repo));
	}
	pgbk_buf_free(&stored);
	pgbk_buf_free(&raw);
	return st;
}

/* The content of the archived WAL object of segname, verified, into raw. */
static PgbkStatus
fetch_wal(Repo *repo, const PgbkKeyring *ring, const char *segname, PgbkBuf *raw, PgbkError *err)
{
	char        key[LAYOUT_KEY_LEN];
	PgbkBuf     stored;
	CodecHeader hdr;
	PgbkStatus  st;
	WalFileKind kind = walname_classify(segname, NULL);

	if ((kind != WAL_FILE_SEGMENT && kind != WAL_FILE_PARTIAL) ||
	    !layout_wal_key(segname, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "\"%s\" is not a WAL segment name", segname);
	pgbk_buf_init(&stored);
	st = repo_get(repo, key, &stored, err);
	if (st == PGBK_NOT_FOUND)
		pgbk_error(err, PGBK_NOT_FOUND, "WAL segment \"%s\" is not in %s", segname,
		           repo_describe(repo));
	else if (st != PGBK_OK)
		pgbk_error_prefix(err, "could not read WAL segment \"%s\"", key);
	else
	{
		st = codec_decode(ring, stored.data, stored.len, codec_wal_limit(segname, 0), raw, &hdr,
		                  err);
		if (st == PGBK_OK)
			st = codec_check_name(&hdr, segname, err);
		if (st != PGBK_OK)
			pgbk_error_prefix(err, "WAL segment \"%s\" is unreadable", key);
	}
	pgbk_buf_free(&stored);
	return st;
}

PgbkStatus
walchg_rebuild(Repo *repo, const PgbkKeyring *ring, const char *segname, WalChanges **out,
               PgbkError *err)
{
	PgbkBuf    raw;
	PgbkStatus st;

	*out = NULL;
	pgbk_buf_init(&raw);
	st = fetch_wal(repo, ring, segname, &raw, err);
	if (st == PGBK_OK &&
	    (st = walchg_scan_segment(raw.data, raw.len, segname, out, err)) != PGBK_OK)
		pgbk_error_prefix(err, "could not summarize WAL segment \"%s\"", segname);
	pgbk_buf_free(&raw);
	return st;
}

PgbkStatus
walchg_resolve(Repo *repo, const PgbkKeyring *ring, const char *segname, WalChanges **out,
               PgbkError *err)
{
	char       next_name[WALNAME_BUFLEN];
	PgbkBuf    raw, next;
	PgbkStatus st;
	uint32_t   tli;
	WalSegNo   segno;

	*out = NULL;
	pgbk_buf_init(&raw);
	pgbk_buf_init(&next);
	st = fetch_wal(repo, ring, segname, &raw, err);
	if (st == PGBK_OK &&
	    walname_parse_segment(segname, (uint32_t) raw.len, &tli, &segno, NULL) != PGBK_OK)
		st = pgbk_error(err, PGBK_ERR_USAGE, "\"%s\" is not a WAL segment name", segname);
	if (st == PGBK_OK)
		st = fetch_wal(repo, ring,
		               walname_format_segment(next_name, tli, segno + 1, (uint32_t) raw.len), &next,
		               err);
	if (st == PGBK_OK)
		st = walchg_scan_segment_next(raw.data, raw.len, next.data, next.len, segname, out, err);
	if (st == PGBK_NOT_FOUND || st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT ||
	    st == PGBK_ERR_KEY)
	{
		/* nothing to resolve with: not an error */
		pgbk_error_clear(err);
		st = PGBK_OK;
	}
	if (*out != NULL && !walchg_complete(*out, NULL))
	{
		walchg_free(*out);
		*out = NULL;
	}
	pgbk_buf_free(&raw);
	pgbk_buf_free(&next);
	return st;
}

PgbkStatus
walchg_load_or_rebuild(Repo *repo, const PgbkKeyring *ring, const CodecParams *params,
                       const char *segname, bool *rebuilt, WalChanges **out, PgbkError *err)
{
	PgbkStatus st;

	if (rebuilt)
		*rebuilt = false;
	st = walchg_load(repo, ring, segname, out, err);
	if (st != PGBK_NOT_FOUND)
		return st;
	pgbk_error_clear(err);
	if ((st = walchg_rebuild(repo, ring, segname, out, err)) != PGBK_OK)
		return st;
	if (rebuilt)
		*rebuilt = true;
	if (params != NULL && (st = walchg_store(repo, params, segname, *out, err)) != PGBK_OK)
	{
		/* the summary is good; failing to keep it only costs a later rebuild */
		pgbk_log(PGBK_LOG_WARNING, "%s", err->msg);
		pgbk_error_clear(err);
	}
	return PGBK_OK;
}

/* Is st a statement about the object (missing, bad) rather than about reaching it? */
static bool
object_status(PgbkStatus st)
{
	return st == PGBK_NOT_FOUND || st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT ||
	       st == PGBK_ERR_KEY || st == PGBK_ERR_USAGE;
}

PgbkStatus
walchg_read_dir(void *dir, const char *segname, uint32_t seg_size, uint32_t want, PgbkBuf *out,
                PgbkError *err)
{
	char        path[4096];
	int         fd;
	struct stat stb;
	size_t      got = 0;

	snprintf(path, sizeof(path), "%s/%s", (const char *) dir, segname);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pgbk_error(err, errno == ENOENT ? PGBK_NOT_FOUND : PGBK_ERR_IO,
		                  "could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &stb) != 0 || !S_ISREG(stb.st_mode) || stb.st_size != (off_t) seg_size)
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR_FORMAT, "\"%s\" is not a WAL segment file of %u bytes",
		                  path, seg_size);
	}
	pgbk_buf_reset(out);
	if (!pgbk_buf_reserve(out, seg_size))
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR, "out of memory reading \"%s\"", path);
	}
	if (want > seg_size)
		want = seg_size;
	while (got < want)
	{
		ssize_t n = pread(fd, out->data + got, want - got, (off_t) got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			int save = errno;

			close(fd);
			return pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path,
			                  n < 0 ? strerror(save) : "file shrank");
		}
		got += (size_t) n;
	}
	close(fd);
	memset(out->data + got, 0, seg_size - got);
	out->len = seg_size;
	return PGBK_OK;
}

/* The timeline recovery reads segment segno on (XLogFileReadAnyTLI): the newest of hist begun by then. */
static uint32_t
segment_tli(const WalHistory *hist, WalSegNo segno, uint32_t seg_size)
{
	int i;

	for (i = hist->n - 1; i >= 0; i--)
	{
		const WalHistoryEntry *h = &hist->entries[i];

		if (h->begin == WAL_INVALID_LSN || segno >= walname_lsn_to_segno(h->begin, seg_size))
			return h->tli;
	}
	return hist->entries[0].tli;
}

/*
 * The image of segment segno (file segname) from the local source into out,
 * if the file is there and really is that segment of this cluster.  A
 * recycled file (renamed ahead by a checkpoint once archived) still says on
 * its first page which segment it held: never used.
 */
static bool
local_image(const WalChgRange *r, const char *segname, WalSegNo segno, uint32_t want, PgbkBuf *out)
{
	PgbkError lerr;
	WalSegNo  got;
	uint64_t  sysid;

	pgbk_buf_reset(out);
	if (r->local == NULL || r->local->read == NULL)
		return false;
	pgbk_error_clear(&lerr);
	if (r->local->read(r->local->arg, segname, r->seg_size, want, out, &lerr) != PGBK_OK ||
	    walscan_identify(out->data, out->len, r->seg_size, &got, &sysid, &lerr) != PGBK_OK ||
	    got != segno || (r->local->sysid != 0 && sysid != r->local->sysid))
	{
		pgbk_buf_reset(out);
		return false;
	}
	return true;
}

/*
 * The image of segment segno: local if usable (*was_local), else the archived
 * one.  PGBK_OK, or an object status (missing, unreadable), or a repository
 * failure.
 */
static PgbkStatus
segment_image(const WalChgRange *r, WalSegNo segno, PgbkBuf *out, bool *was_local, PgbkError *err)
{
	char name[WALNAME_BUFLEN];

	walname_format_segment(name, segment_tli(r->hist, segno, r->seg_size), segno, r->seg_size);
	*was_local = local_image(r, name, segno, r->seg_size, out);
	if (*was_local)
		return PGBK_OK;
	pgbk_buf_reset(out);
	return fetch_wal(r->repo, r->ring, name, out, err);
}

/*
 * A summary of segment segno (segname) was left incomplete only by its last
 * record continuing into segment segno + 1 (walchg_cont_lsn): summarize it
 * again with that one beside it, each local or archived (as walchg_resolve
 * does from the repository alone; the next segment on the timeline recovery
 * reads it on).  *out: the summary if complete, else NULL.  Errors only for
 * repository failures.
 */
static PgbkStatus
resolve_cont(const WalChgRange *r, const char *segname, WalSegNo segno, WalChanges **out,
             PgbkError *err)
{
	PgbkBuf    own, next;
	PgbkStatus st;
	bool       was_local;

	*out = NULL;
	pgbk_buf_init(&own);
	pgbk_buf_init(&next);
	st = segment_image(r, segno, &own, &was_local, err);
	if (st == PGBK_OK)
		st = segment_image(r, segno + 1, &next, &was_local, err);
	if (st == PGBK_OK)
		st = walchg_scan_segment_next(own.data, own.len, next.data, next.len, segname, out, err);
	if (object_status(st))
	{
		/* nothing to resolve with: not an error */
		pgbk_error_clear(err);
		st = PGBK_OK;
	}
	if (*out != NULL && !walchg_complete(*out, NULL))
	{
		walchg_free(*out);
		*out = NULL;
	}
	pgbk_buf_free(&own);
	pgbk_buf_free(&next);
	return st;
}

/* What local_summary reads of the segment being written past what it needs (rounded up). */
#define LOCAL_MARGIN (256 * 1024)
#define LOCAL_ROUND  (64 * 1024)

/*
 * Summarize the local file of segment segno (segname), needing valid WAL up
 * to need.  *out NULL if there is no usable local file, or if its valid WAL
 * ends before need (a file recycled and being overwritten while it was read
 * reads as the old segment's pages up to the first page the new one has
 * written, and that page ends the scan): the repository is asked then.
 *
 * Why a local file gives a SUPERSET of the blocks changed in [from, to):
 *  - a complete local segment is the same bytes the archiver will read, and
 *    is summarized by the same code (walchg_scan_segment_next) as at archive
 *    time;
 *  - the segment holding `to` is still being written.  Every record
 *    beginning before `to` (the backup's start, a checkpoint's redo
 *    pointer) is written and flushed (pg_backup_start waits for its
 *    checkpoint record, which lies after `to`), and written bytes never
 *    change while the server runs: a read concurrent with the WAL writer
 *    sees them as they are, and sees later bytes either written or not yet
 *    (zeros, or an old recycled page whose xlp_pageaddr ends the scan); a
 *    prefix read with zeros after it is the same as WAL not written yet.
 *    The valid WAL must reach `to` (have_end >= need, checked), so every
 *    record before `to` is read whole, and what follows only adds:
 *    extra blocks are harmless (the copy of an unchanged block is the same
 *    block); a record cut at the end of written WAL begins at or after the
 *    end of flushed WAL, past `to`, and the scan ends the valid WAL before
 *    it (it is not summarized, and it need not be: recovery of this backup
 *    replays every record from `to` on, with full-page images).  Missing a
 *    block changed before `to` would be corruption; a summary that cannot
 *    vouch for a record before `to` stays incomplete, and the backup falls
 *    back to page LSNs.
 */
static PgbkStatus
local_summary(const WalChgRange *r, const char *segname, WalSegNo segno, WalLsn need,
              WalChanges **out, PgbkError *err)
{
	PgbkBuf     img;
	PgbkError   lerr;
	WalChanges *s = NULL;
	WalLsn      have_end;
	WalLsn      seg_start = walname_segno_to_lsn(segno, r->seg_size);
	uint32_t    want = r->seg_size;

	/*
	 * The segment being written: its bytes up to need and a margin for the
	 * record there (the rest reads as zeros, the end of WAL), not the whole
	 * file, most of which is not written yet; the whole file if that margin
	 * was not enough.
	 */
	if (need - seg_start < r->seg_size)
	{
		uint64_t w =
		    ((need - seg_start) + LOCAL_MARGIN + LOCAL_ROUND - 1) / LOCAL_ROUND * LOCAL_ROUND;

		if (w < r->seg_size)
			want = (uint32_t) w;
	}
	*out = NULL;
	pgbk_buf_init(&img);
	for (;;)
	{
		if (!local_image(r, segname, segno, want, &img))
			break;
		pgbk_error_clear(&lerr);
		if (walchg_scan_segment(img.data, img.len, segname, &s, &lerr) != PGBK_OK)
		{
			/* the image is what identify accepted: only memory can fail here */
			if (lerr.code == PGBK_ERR)
			{
				pgbk_buf_free(&img);
				*err = lerr;
				return PGBK_ERR;
			}
			break;
		}
		walchg_range(s, NULL, NULL, &have_end);
		if (have_end >= need)
		{
			*out = s;
			break;
		}
		walchg_free(s);
		s = NULL;
		if (want == r->seg_size)
			break;
		want = r->seg_size;
	}
	pgbk_buf_free(&img);
	return PGBK_OK;
}

PgbkStatus
walchg_union(const WalChgRange *r, WalChanges **out, WalChgUnionStats *stats, PgbkError *err)
{
	WalChanges      *u;
	WalSegNo         first, last, segno;
	uint32_t         last_tli = 0;
	WalChgUnionStats dummy;

	*out = NULL;
	if (stats == NULL)
		stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	if (!walname_segsz_is_valid(r->seg_size))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid WAL segment size %u", r->seg_size);
	if (r->hist == NULL || r->hist->n < 1)
		return pgbk_error(err, PGBK_ERR_USAGE, "a timeline history is required");
	if (r->from > r->to)
		return pgbk_error(err, PGBK_ERR_USAGE, "LSN range %X/%X to %X/%X is reversed",
		                  LSN_ARGS(r->from), LSN_ARGS(r->to));
	if ((u = walchg_new()) == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	if (r->from == r->to)
	{
		walchg_set_range(u, r->hist->entries[r->hist->n - 1].tli, r->from, r->to);
		*out = u;
		return PGBK_OK;
	}
	first = walname_lsn_to_segno(r->from, r->seg_size);
	last = walname_end_lsn_to_segno(r->to, r->seg_size);
	for (segno = first; segno <= last; segno++)
	{
		char        segname[WALNAME_BUFLEN];
		char        reason[WALCHG_REASON_LEN];
		WalChanges *s = NULL;
		PgbkError   serr;
		PgbkStatus  st;
		uint32_t    tli = segment_tli(r->hist, segno, r->seg_size);
		WalLsn      seg_end = walname_segno_to_lsn(segno + 1, r->seg_size);
		WalLsn      need = r->to < seg_end ? r->to : seg_end;
		WalLsn      have_end;
		WalLsn      cont;

		stats->segments++;
		last_tli = tli;
		walname_format_segment(segname, tli, segno, r->seg_size);
		pgbk_error_clear(&serr);
		st = walchg_load(r->repo, r->ring, segname, &s, &serr);
		if (st == PGBK_NOT_FOUND && r->local != NULL)
		{
			/* not archived yet (or archived, summary not stored yet): pg_wal */
			pgbk_error_clear(&serr);
			if ((st = local_summary(r, segname, segno, need, &s, &serr)) != PGBK_OK)
			{
				walchg_free(u);
				*err = serr;
				return st;
			}
			if (s != NULL)
				stats->local++;
			else
				st = PGBK_NOT_FOUND;
		}
		if (st == PGBK_NOT_FOUND)
		{
			pgbk_error_clear(&serr);
			st = walchg_load_or_rebuild(r->repo, r->ring, r->params, segname, NULL, &s, &serr);
		}
		if (st != PGBK_OK)
		{
			if (!object_status(st))
			{
				walchg_free(u);
				*err = serr;
				return st;
			}
			/*
			 * A stored summary that does not authenticate or decode is never
			 * trusted, nor replaced by a rebuilt one (never overwritten): the
			 * union is incomplete, naming it, and the backup falls back.
			 */
			if (st == PGBK_NOT_FOUND)
				snprintf(reason, sizeof(reason), "no change summary for segment %s: %s", segname,
				         serr.msg);
			else
				snprintf(reason, sizeof(reason),
				         "change summary of segment %s unusable, not trusted: %s", segname,
				         serr.msg);
			walchg_mark_incomplete(u, reason);
			continue;
		}
		if ((cont = walchg_cont_lsn(s)) != WAL_INVALID_LSN)
		{
			WalChanges *whole = NULL;

			st = resolve_cont(r, segname, segno, &whole, &serr);
			if (st != PGBK_OK)
			{
				walchg_free(s);
				walchg_free(u);
				*err = serr;
				return st;
			}
			if (whole != NULL)
			{
				walchg_free(s);
				s = whole;
			}
			else if (cont >= r->to)
			{
				/*
				 * Its only gap is a record beginning at or after `to`, whose
				 * changes recovery replays from the backup's own WAL (see
				 * local_summary): nothing before `to` is missing.
				 */
				s->incomplete = false;
				s->reason[0] = '\0';
				s->cont_lsn = WAL_INVALID_LSN;
			}
		}
		walchg_range(s, NULL, NULL, &have_end);
		if (have_end < need)
		{
			char l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];

			snprintf(reason, sizeof(reason),
			         "valid WAL in segment %s ends at %s, before %s that the range needs", segname,
			         walname_format_lsn(l1, have_end), walname_format_lsn(l2, need));
			walchg_mark_incomplete(u, reason);
		}
		if (!walchg_merge(u, s))
		{
			walchg_free(s);
			walchg_free(u);
			return pgbk_error(err, PGBK_ERR, "out of memory merging change summaries");
		}
		walchg_free(s);
	}
	walchg_set_range(u, last_tli, r->from, r->to);
	*out = u;
	return PGBK_OK;
}

PgbkStatus
walchg_union_range(Repo *repo, const PgbkKeyring *ring, const CodecParams *params,
                   const WalHistory *hist, WalLsn from, WalLsn to, uint32_t seg_size,
                   WalChanges **out, PgbkError *err)
{
	WalChgRange r;

	memset(&r, 0, sizeof(r));
	r.repo = repo;
	r.ring = ring;
	r.params = params;
	r.hist = hist;
	r.from = from;
	r.to = to;
	r.seg_size = seg_size;
	return walchg_union(&r, out, NULL, err);
}
