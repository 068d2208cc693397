/*
 * verify.c
 *	  Room verify; uses repo, format (codec, layout, manifests), wal
 *	  (walchanges) and cJSON.
 *	  The object verifier shared by bk_verify() and pgbk verify: every object
 *	  streamed through the codec's decoder (authenticated frame by frame,
 *	  counted and discarded), then judged against what its kind requires.
 *	  See verify.h.
 */
#include "verify/verify.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/layout.h"
#include "wal/walchanges.h"

/* Long enough for a key, an object name and a codec message together. */
#define VERIFY_PROBLEM_LEN (3 * PGBK_ERRMSG_LEN)

static void problemf(const VerifyParams *p, const char *kind, const char *object, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* Format a problem on the stack and report it (nothing of ours is allocated meanwhile). */
static void
problemf(const VerifyParams *p, const char *kind, const char *object, const char *fmt, ...)
{
	char    msg[VERIFY_PROBLEM_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->report(p->report_arg, kind, object, msg);
}

static void warnf(const VerifyParams *p, const char *kind, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same for a warning (the report callback if the caller has none). */
static void
warnf(const VerifyParams *p, const char *kind, const char *object, const char *fmt, ...)
{
	char    msg[VERIFY_PROBLEM_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->warn != NULL)
		p->warn(p->warn_arg, kind, object, msg);
	else
		p->report(p->report_arg, kind, object, msg);
}

bool
verify_sampled(const VerifyParams *p)
{
	return p->sample >= 1.0 || p->random == NULL || p->random() < p->sample;
}

/* The statuses that say "this object is bad", not "the repository is unreachable". */
static bool
damaged_status(PgbkStatus st)
{
	return st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT || st == PGBK_ERR_KEY;
}

typedef struct StreamSink
{
	const VerifyParams *p;
	CodecDecoder       *dec;
	PgbkBuf             out;  /* what one update leaves (less than the sink's threshold) */
	PgbkBuf            *keep; /* NULL: count and discard the content */
	uint64_t            raw;  /* content bytes decoded */
} StreamSink;

/* The decoder's output handed over in pieces: counted (kept only for the descriptor). */
static PgbkStatus
stream_output(void *arg, const void *data, size_t len, PgbkError *err)
{
	StreamSink *ss = arg;

	ss->raw += len;
	if (ss->keep != NULL && !pgbk_buf_append(ss->keep, data, len))
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

/* Stored bytes from the repository, fed to the decoder as they come. */
static PgbkStatus
stream_input(void *arg, const void *data, size_t len, PgbkError *err)
{
	StreamSink *ss = arg;
	PgbkStatus  st;

	pgbk_buf_reset(&ss->out);
	if ((st = codec_decoder_update(ss->dec, data, len, &ss->out, err)) != PGBK_OK)
		return st;
	if (ss->out.len > 0 && (st = stream_output(ss, ss->out.data, ss->out.len, err)) != PGBK_OK)
		return st;
	if (ss->p->progress != NULL)
		ss->p->progress(ss->p->progress_arg, len);
	return PGBK_OK;
}

/*
 * Read key through the decoder in bounded memory.  On PGBK_OK, hdr and hash
 * describe the verified content and *raw is its length.  Everything it
 * allocated is freed when it returns.
 */
static PgbkStatus
read_stream(const VerifyParams *p, Repo *repo, const char *key, uint64_t max_raw, PgbkBuf *keep,
            CodecHeader *hdr, unsigned char hash[CODEC_HASH_BYTES], uint64_t *raw, PgbkError *err)
{
	StreamSink ss;
	PgbkStatus st;

	memset(&ss, 0, sizeof(ss));
	ss.p = p;
	ss.keep = keep;
	pgbk_buf_init(&ss.out);
	memset(hdr, 0, sizeof(*hdr));
	if ((st = codec_decoder_begin(p->ring, max_raw, &ss.dec, err)) != PGBK_OK)
		return st;
	codec_decoder_set_sink(ss.dec, stream_output, &ss);
	st = repo_get_stream(repo, key, stream_input, &ss, err);
	if (st == PGBK_OK)
		st = codec_decoder_finish(ss.dec, hdr, hash, err);
	else
		codec_decoder_free(ss.dec);
	pgbk_buf_free(&ss.out);
	*raw = ss.raw;
	return st;
}

/*
 * Does the summary in content (already checked) differ from the one rebuilt
 * from its archived segment?  A segment that is missing or unreadable
 * decides nothing (the WAL's own check reports it).  Both summaries are
 * freed before it returns.
 */
static PgbkStatus
summary_differs(const VerifyParams *p, Repo *repo, const char *segname, const PgbkBuf *content,
                bool *differs, PgbkError *err)
{
	WalChanges *stored = NULL, *rebuilt = NULL;
	PgbkStatus  st;

	*differs = false;
	if ((st = walchg_decode(content->data, content->len, &stored, err)) != PGBK_OK)
		return st;
	st = walchg_rebuild(repo, p->ring, segname, &rebuilt, err);
	if (st == PGBK_OK)
		*differs = !walchg_equal(stored, rebuilt);
	else if (st == PGBK_NOT_FOUND || damaged_status(st) || st == PGBK_ERR_USAGE)
	{
		pgbk_error_clear(err);
		st = PGBK_OK;
	}
	walchg_free(stored);
	walchg_free(rebuilt);
	return st;
}

PgbkStatus
verify_object(const VerifyParams *p, Repo *repo, const VerifyObject *o, VerifyOutcome *outcome,
              PgbkError *err)
{
	CodecHeader   hdr;
	unsigned char hash[CODEC_HASH_BYTES];
	uint64_t      raw = 0;
	PgbkStatus    st;
	PgbkBuf       content;

	*outcome = VERIFY_DAMAGED;
	pgbk_buf_init(&content);
	/* a summary's content is kept (bounded by its limit) to be decoded */
	st = read_stream(p, repo, o->key, o->max_raw, o->changes_of ? &content : NULL, &hdr, hash, &raw,
	                 err);
	if (st == PGBK_OK && o->changes_of != NULL)
	{
		bool differs = false;

		st = walchg_check_object(&hdr, content.data, content.len, o->changes_of, NULL, err);
		if (st == PGBK_OK && o->rebuild_check)
			st = summary_differs(p, repo, o->changes_of, &content, &differs, err);
		pgbk_buf_free(&content);
		if (st != PGBK_OK && !damaged_status(st))
			return st;
		if (differs)
		{
			problemf(p, o->kind, o->object,
			         "it differs from the summary rebuilt from WAL segment %s (delete it, then "
			         "`pgbk wal-changes %s --rebuild` stores the right one)",
			         o->changes_of, o->changes_of);
			return PGBK_OK;
		}
	}
	pgbk_buf_free(&content);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		*outcome = VERIFY_MISSING;
		if (o->changes_of != NULL)
			verify_report_changes_missing(p, o->changes_of);
		else
			problemf(p, o->kind, o->object, "missing: \"%s\" is not in the repository", o->key);
		return PGBK_OK;
	}
	if (damaged_status(st))
	{
		problemf(p, o->kind, o->object, "unreadable: %s", err->msg);
		pgbk_error_clear(err);
		return PGBK_OK;
	}
	if (st != PGBK_OK)
		return st;
	if (o->wal_name != NULL && codec_check_name(&hdr, o->wal_name, err) != PGBK_OK)
	{
		problemf(p, o->kind, o->object, "%s", err->msg);
		pgbk_error_clear(err);
		return PGBK_OK;
	}
	if (o->check_content && (raw != o->size || memcmp(hash, o->hash, CODEC_HASH_BYTES) != 0))
	{
		problemf(p, o->kind, o->object,
		         "content does not match the manifest (%" PRIu64 " bytes, expected %" PRIu64
		         " with another checksum)",
		         raw, o->size);
		return PGBK_OK;
	}
	*outcome = VERIFY_SOUND;
	return PGBK_OK;
}

void
verify_wal_object(VerifyObject *o, const char *name, const char *key, uint32_t segsz)
{
	memset(o, 0, sizeof(*o));
	o->kind = VERIFY_KIND_WAL;
	o->object = name;
	o->key = key;
	o->wal_name = name;
	o->max_raw = codec_wal_limit(name, segsz);
}

void
verify_changes_object(VerifyObject *o, const char *segname, const char *key)
{
	memset(o, 0, sizeof(*o));
	o->kind = VERIFY_KIND_CHANGES;
	o->object = key;
	o->key = key;
	o->changes_of = segname;
	o->max_raw = CODEC_LIMIT_CHANGES;
}

void
verify_report_changes_missing(const VerifyParams *p, const char *segname)
{
	char key[LAYOUT_KEY_LEN];

	if (!layout_changes_key(segname, key, sizeof(key)))
		return;
	warnf(p, VERIFY_KIND_CHANGES, key,
	      "missing: WAL segment %s was archived without a change summary; incremental backups "
	      "rebuild it from the segment when they need it (or compare page LSNs), and "
	      "`pgbk wal-changes %s --rebuild` stores it now",
	      segname, segname);
}

PgbkStatus
verify_descriptor(const VerifyParams *p, Repo *repo, uint64_t expect_sysid, VerifyDescriptor *d,
                  PgbkError *err)
{
	PgbkBuf      raw;
	CodecHeader  hdr;
	uint64_t     rawlen;
	PgbkStatus   st;
	cJSON       *doc = NULL;
	const cJSON *format;
	const char  *sysid;
	char         kind[64];
	char         msg[VERIFY_PROBLEM_LEN];
	char        *end;

	memset(d, 0, sizeof(*d));
	msg[0] = '\0';
	pgbk_buf_init(&raw);
	st = read_stream(p, repo, LAYOUT_DESCRIPTOR, CODEC_LIMIT_SMALL, &raw, &hdr, NULL, &rawlen, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		st = PGBK_OK;
		goto out;
	}
	d->present = true;
	if (damaged_status(st))
	{
		snprintf(msg, sizeof(msg), "unreadable: %s", err->msg);
		pgbk_error_clear(err);
		st = PGBK_OK;
		goto out;
	}
	if (st != PGBK_OK)
		goto out;
	if (!codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) || strcmp(kind, "descriptor") != 0)
	{
		snprintf(msg, sizeof(msg), "the object is not a repository descriptor (it says kind=%s)",
		         codec_attr_get(hdr.attrs, "kind", kind, sizeof(kind)) ? kind : "?");
		goto out;
	}
	doc = cJSON_ParseWithLength((const char *) raw.data, raw.len);
	format = doc ? cJSON_GetObjectItemCaseSensitive(doc, "format") : NULL;
	sysid = doc ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "system_identifier"))
	            : NULL;
	if (!cJSON_IsNumber(format) || sysid == NULL || sysid[0] < '1' || sysid[0] > '9')
	{
		snprintf(msg, sizeof(msg),
		         "malformed: it must hold a format and a database system identifier");
		goto out;
	}
	if (format->valuedouble != 1)
	{
		snprintf(msg, sizeof(msg), "format %g is not one this pgbk reads (format 1)",
		         format->valuedouble);
		goto out;
	}
	errno = 0;
	d->system_identifier = strtoull(sysid, &end, 10);
	if (errno != 0 || *end != '\0')
	{
		snprintf(msg, sizeof(msg), "malformed: \"%s\" is not a database system identifier", sysid);
		goto out;
	}
	d->have_sysid = true;
	if (expect_sysid != 0 && d->system_identifier != expect_sysid)
		snprintf(msg, sizeof(msg),
		         "it names database system %" PRIu64
		         ", but this server is database system %" PRIu64,
		         d->system_identifier, expect_sysid);
out:
	cJSON_Delete(doc);
	pgbk_buf_free(&raw);
	if (msg[0] != '\0')
		p->report(p->report_arg, VERIFY_KIND_REPOSITORY, LAYOUT_DESCRIPTOR, msg);
	return st;
}

void
verify_descriptor_missing(const VerifyParams *p)
{
	problemf(p, VERIFY_KIND_REPOSITORY, LAYOUT_DESCRIPTOR,
	         "missing: the repository holds WAL or backups but no descriptor \"%s\" (which names "
	         "the database system it belongs to)",
	         LAYOUT_DESCRIPTOR);
}

PgbkStatus
verify_manifest(const VerifyParams *p, Repo *repo, const char *id, const VerifyDescriptor *d,
                Manifest **m, PgbkError *err)
{
	PgbkStatus st;

	*m = NULL;
	st = manifest_load(repo, p->ring, id, m, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		problemf(p, VERIFY_KIND_BACKUP, id, "missing: its manifest is not in the repository");
		return PGBK_OK;
	}
	if (damaged_status(st))
	{
		problemf(p, VERIFY_KIND_BACKUP, id, "unreadable manifest: %s", err->msg);
		pgbk_error_clear(err);
		return PGBK_OK;
	}
	if (st != PGBK_OK)
		return st;
	/* *m is the caller's from here: a report may leave by longjmp */
	if (d != NULL && d->have_sysid && (*m)->system_identifier != d->system_identifier)
		problemf(p, VERIFY_KIND_BACKUP, id,
		         "it is of database system %" PRIu64
		         ", but the repository descriptor %s says %" PRIu64,
		         (*m)->system_identifier, LAYOUT_DESCRIPTOR, d->system_identifier);
	return PGBK_OK;
}

PgbkStatus
verify_backup_files(const VerifyParams *p, const Manifest *m, VerifyEachFn each, void *arg,
                    PgbkError *err)
{
	int f;

	for (f = 0; f < m->nfiles; f++)
	{
		const ManifestFile *mf = &m->files[f];
		char                key[LAYOUT_KEY_LEN], object[LAYOUT_KEY_LEN];
		VerifyObject        o;
		PgbkStatus          st;

		if (!verify_sampled(p))
			continue;
		/* an incremental's block file listing no block has no object */
		if (!manifest_file_has_object(mf))
			continue;
		if (!layout_backup_file_key(m->id, mf->path, key, sizeof(key)))
		{
			problemf(p, VERIFY_KIND_BACKUP_FILE, mf->path, "path too long for a repository key");
			continue;
		}
		snprintf(object, sizeof(object), "%s:%s", m->id, mf->path);
		memset(&o, 0, sizeof(o));
		o.kind = VERIFY_KIND_BACKUP_FILE;
		o.object = object;
		o.key = key;
		/* the manifest is authenticated: no more content than it records */
		o.max_raw = manifest_file_content_size(mf); /* a block file: its blocks */
		o.check_content = true;
		o.size = o.max_raw;
		memcpy(o.hash, mf->hash, CODEC_HASH_BYTES);
		o.stored = mf->stored;
		if ((st = each(arg, &o, err)) != PGBK_OK)
			return st;
	}
	return PGBK_OK;
}

void
verify_report_wal_gap(const VerifyParams *p, const char *first, const char *last,
                      const char *backups)
{
	if (last == NULL || strcmp(first, last) == 0)
		problemf(p, VERIFY_KIND_WAL_GAP, first,
		         "WAL segment %s is missing: backup %s cannot be restored past it", first, backups);
	else
		problemf(p, VERIFY_KIND_WAL_GAP, first,
		         "WAL segments %s to %s are missing: backup %s cannot be restored past %s", first,
		         last, backups, first);
}

/* ----------------------------------------------------------------------
 * WAL continuity
 * ---------------------------------------------------------------------- */

/* A run of missing segments [first, last] (segment numbers). */
typedef struct MissingRun
{
	WalSegNo first;
	WalSegNo last;
} MissingRun;

/*
 * The runs found over [from, last] of one chain.  Backups come in
 * ascending order of their start, so the runs found for the first backup
 * of a chain serve every later one with the same chain and end: one walk
 * over the WAL, not one per backup.
 */
typedef struct RunCache
{
	bool        valid;
	uint32_t    newest;  /* the chain's timeline */
	uint32_t    min_tli; /* the backup's timeline (plan_chain_tli_of_seg) */
	uint32_t    segsz;
	WalSegNo    from;
	WalSegNo    last;
	int         n;
	int         cap;
	MissingRun *runs;
} RunCache;

static PgbkStatus
continuity_oom(PgbkError *err)
{
	return pgbk_error(err, PGBK_ERR, "out of memory");
}

static PgbkStatus
add_gap(VerifyWalGaps *out, const char *first, const char *last, const char *backup, PgbkError *err)
{
	VerifyWalGap *g;

	if (out->n == out->cap)
	{
		int           cap = out->cap > 0 ? out->cap * 2 : 16;
		VerifyWalGap *gaps = realloc(out->gaps, (size_t) cap * sizeof(VerifyWalGap));

		if (gaps == NULL)
			return continuity_oom(err);
		out->gaps = gaps;
		out->cap = cap;
	}
	g = &out->gaps[out->n++];
	snprintf(g->first, sizeof(g->first), "%s", first);
	snprintf(g->last, sizeof(g->last), "%s", last);
	snprintf(g->backup, sizeof(g->backup), "%s", backup);
	return PGBK_OK;
}

/* Walk segments [c->from, c->last] of a chain, noting the missing runs. */
static PgbkStatus
find_missing_runs(PlanView *v, const WalHistory *chain, RunCache *c, PgbkError *err)
{
	WalSegNo   seg;
	PgbkStatus st;

	c->n = 0;
	for (seg = c->from; seg <= c->last; seg++)
	{
		uint32_t     tli = plan_chain_tli_of_seg(chain, seg, c->segsz, c->min_tli);
		PlanSegment *s;

		if (((seg - c->from) & 0xffff) == 0xffff && pgbk_interrupted())
			return pgbk_error(err, PGBK_ERR_INTERRUPTED, "interrupted");
		if ((st = plan_view_segment(v, tli, seg, &s, err)) != PGBK_OK)
			return st;
		if (s != NULL)
			continue;
		if (c->n > 0 && c->runs[c->n - 1].last + 1 == seg)
		{
			c->runs[c->n - 1].last = seg;
			continue;
		}
		if (c->n == c->cap)
		{
			int         cap = c->cap > 0 ? c->cap * 2 : 16;
			MissingRun *runs = realloc(c->runs, (size_t) cap * sizeof(MissingRun));

			if (runs == NULL)
				return continuity_oom(err);
			c->runs = runs;
			c->cap = cap;
		}
		c->runs[c->n].first = seg;
		c->runs[c->n].last = seg;
		c->n++;
	}
	return PGBK_OK;
}

/* The chain of timeline tli alone, from the beginning of WAL. */
static PgbkStatus
lone_chain(uint32_t tli, WalHistory *out, PgbkError *err)
{
	out->n = 0;
	out->entries = calloc(1, sizeof(WalHistoryEntry));
	if (out->entries == NULL || (out->entries[0].reason = strdup("")) == NULL)
	{
		free(out->entries);
		out->entries = NULL;
		return continuity_oom(err);
	}
	out->entries[0].tli = tli;
	out->entries[0].begin = WAL_INVALID_LSN;
	out->entries[0].end = WAL_INVALID_LSN;
	out->n = 1;
	return PGBK_OK;
}

/* The gaps of backup b (loaded, valid segment size), runs cached in c. */
static PgbkStatus
backup_gaps(PlanView *v, const PlanBackup *b, RunCache *c, VerifyWalGaps *out, PgbkError *err)
{
	uint32_t   segsz = b->wal_segment_size;
	uint32_t   newest = plan_newest_timeline(v, b->timeline);
	WalHistory chain = {0, NULL};
	WalSegNo   first, last = 0;
	bool       have_last = false;
	PgbkStatus st;
	int        k, j;

	st = plan_chain(v, newest, &chain, err);
	if (st == PGBK_NOT_FOUND && newest == b->timeline)
	{
		/* its own timeline's history file is not there: that timeline alone */
		pgbk_error_clear(err);
		st = lone_chain(b->timeline, &chain, err);
	}
	if (st != PGBK_OK)
		return st;

	/* the newest segment of any timeline on the chain */
	for (k = 0; k < v->nblocks; k++)
	{
		const PlanWalBlock *blk = &v->blocks[k];
		bool                on_chain = false;

		for (j = 0; j < chain.n; j++)
			if (chain.entries[j].tli == blk->tli && blk->tli >= b->timeline)
				on_chain = true;
		if (on_chain && blk->n > 0 && (!have_last || blk->segs[blk->n - 1].segno > last))
		{
			last = blk->segs[blk->n - 1].segno;
			have_last = true;
		}
	}
	first = walname_lsn_to_segno(b->start_lsn, segsz);
	if (!have_last || last < walname_lsn_to_segno(b->stop_lsn, segsz))
		last = walname_lsn_to_segno(b->stop_lsn, segsz);

	if (!c->valid || c->newest != newest || c->min_tli != b->timeline || c->segsz != segsz ||
	    c->last != last || first < c->from)
	{
		c->valid = false;
		c->newest = newest;
		c->min_tli = b->timeline;
		c->segsz = segsz;
		c->from = first;
		c->last = last;
		if ((st = find_missing_runs(v, &chain, c, err)) != PGBK_OK)
		{
			walname_history_free(&chain);
			return st;
		}
		c->valid = true;
	}
	for (k = 0; k < c->n && st == PGBK_OK; k++)
	{
		char     name[WALNAME_BUFLEN], lastname[WALNAME_BUFLEN];
		WalSegNo from = c->runs[k].first > first ? c->runs[k].first : first;

		if (c->runs[k].last < first)
			continue;
		walname_format_segment(name, plan_chain_tli_of_seg(&chain, from, segsz, b->timeline), from,
		                       segsz);
		walname_format_segment(lastname,
		                       plan_chain_tli_of_seg(&chain, c->runs[k].last, segsz, b->timeline),
		                       c->runs[k].last, segsz);
		st = add_gap(out, name, lastname, b->id, err);
	}
	walname_history_free(&chain);
	return st;
}

PgbkStatus
verify_wal_continuity(PlanView *v, VerifyWalGaps *out, PgbkError *err)
{
	RunCache   cache;
	PgbkStatus st = PGBK_OK;
	int        i;

	memset(out, 0, sizeof(*out));
	memset(&cache, 0, sizeof(cache));
	for (i = 0; i < v->nbackups && st == PGBK_OK; i++)
	{
		PlanBackup *b = &v->backups[i];

		if ((st = plan_view_load_backup(v, b, err)) != PGBK_OK)
			break;
		if (b->broken || !b->loaded || !walname_segsz_is_valid(b->wal_segment_size))
			continue; /* reported with the manifests */
		st = backup_gaps(v, b, &cache, out, err);
	}
	free(cache.runs);
	if (st != PGBK_OK)
		verify_wal_gaps_free(out);
	return st;
}

void
verify_wal_gaps_free(VerifyWalGaps *g)
{
	free(g->gaps);
	memset(g, 0, sizeof(*g));
}

static const VerifyChainEntry *
chain_find(const VerifyChainEntry *e, int n, const char *id)
{
	int lo = 0, hi = n - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(e[mid].id, id);

		if (c == 0)
			return &e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

void
verify_chains(const VerifyParams *p, const VerifyChainEntry *entries, int n)
{
	int i;

	for (i = 0; i < n; i++)
	{
		const VerifyChainEntry *cur = &entries[i];
		int                     depth = 0;
		char                    problem[512];

		if (!cur->sound || cur->parent == NULL)
			continue;
		while (cur->parent != NULL)
		{
			const VerifyChainEntry *parent = chain_find(entries, n, cur->parent);

			if (parent == NULL || !parent->sound || strcmp(parent->id, cur->id) >= 0 ||
			    ++depth > 1000)
			{
				snprintf(problem, sizeof(problem),
				         "it is an incremental backup and its chain needs backup %s%s, which %s: "
				         "it cannot be restored",
				         cur->parent, cur == &entries[i] ? " (its parent)" : "",
				         parent == NULL   ? "is missing from the repository"
				         : !parent->sound ? "has an unreadable manifest"
				                          : "is not older than the backup built on it");
				p->report(p->report_arg, VERIFY_KIND_BACKUP, entries[i].id, problem);
				break;
			}
			cur = parent;
		}
	}
}
