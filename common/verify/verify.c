/*
 * verify.c
 *	  Room verify; uses repo, format (codec, layout, manifests) and cJSON.
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

PgbkStatus
verify_object(const VerifyParams *p, Repo *repo, const VerifyObject *o, VerifyOutcome *outcome,
              PgbkError *err)
{
	CodecHeader   hdr;
	unsigned char hash[CODEC_HASH_BYTES];
	uint64_t      raw = 0;
	PgbkStatus    st;

	*outcome = VERIFY_DAMAGED;
	st = read_stream(p, repo, o->key, o->max_raw, NULL, &hdr, hash, &raw, err);
	if (st == PGBK_NOT_FOUND)
	{
		pgbk_error_clear(err);
		*outcome = VERIFY_MISSING;
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
		o.max_raw = mf->size;
		o.check_content = true;
		o.size = mf->size;
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
