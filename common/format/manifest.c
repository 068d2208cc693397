/*
 * manifest.c
 *	  Room format; uses base, repo (manifests are stored objects), codec.c, layout.c
 *	  and cJSON.
 *	  Base backup manifests: building, JSON (cJSON) round trip, and
 *	  storing/loading them in the repository (see manifest.h).
 */
#include "format/manifest.h"

#include <ctype.h>
#include <inttypes.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pgbk_time.h"
#include "format/layout.h"
#include "base/walname.h"

Manifest *
manifest_new(void)
{
	Manifest *m = calloc(1, sizeof(Manifest));

	if (m)
		m->format = MANIFEST_FORMAT;
	return m;
}

void
manifest_free(Manifest *m)
{
	int i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	for (i = 0; i < m->ndirs; i++)
		free(m->dirs[i].path);
	for (i = 0; i < m->ntablespaces; i++)
		free(m->tablespaces[i].location);
	for (i = 0; i < m->nconfig; i++)
	{
		free(m->config[i].path);
		free(m->config[i].data);
	}
	free(m->config);
	free(m->files);
	free(m->dirs);
	free(m->tablespaces);
	free(m->label);
	free(m->backup_label);
	free(m->tablespace_map);
	free(m->compression);
	free(m);
}

static bool
grow(void **arr, int n, size_t elem)
{
	/* grow in powers of two: n is the current count */
	if (n == 0 || (n & (n - 1)) == 0)
	{
		size_t cap = n == 0 ? 16 : (size_t) n * 2;
		void  *na;

		if (cap < 16)
			cap = 16;
		na = realloc(*arr, cap * elem);
		if (na == NULL)
			return false;
		*arr = na;
	}
	return true;
}

bool
manifest_add_file(Manifest *m, const ManifestFile *f)
{
	ManifestFile *nf;

	if (!grow((void **) &m->files, m->nfiles, sizeof(ManifestFile)))
		return false;
	nf = &m->files[m->nfiles];
	*nf = *f;
	nf->path = strdup(f->path);
	if (nf->path == NULL)
		return false;
	m->nfiles++;
	return true;
}

bool
manifest_add_dir(Manifest *m, const char *path, unsigned int mode)
{
	if (!grow((void **) &m->dirs, m->ndirs, sizeof(ManifestDir)))
		return false;
	m->dirs[m->ndirs].path = strdup(path);
	m->dirs[m->ndirs].mode = mode;
	if (m->dirs[m->ndirs].path == NULL)
		return false;
	m->ndirs++;
	return true;
}

bool
manifest_add_config(Manifest *m, const char *path, const void *data, size_t len)
{
	ManifestConfigFile *c;

	if (!grow((void **) &m->config, m->nconfig, sizeof(ManifestConfigFile)))
		return false;
	c = &m->config[m->nconfig];
	c->path = strdup(path);
	c->data = malloc(len > 0 ? len : 1);
	c->len = len;
	if (c->path == NULL || c->data == NULL)
	{
		free(c->path);
		free(c->data);
		return false;
	}
	memcpy(c->data, data, len);
	m->nconfig++;
	return true;
}

bool
manifest_add_tablespace(Manifest *m, uint32_t oid, const char *location)
{
	if (!grow((void **) &m->tablespaces, m->ntablespaces, sizeof(ManifestTablespace)))
		return false;
	m->tablespaces[m->ntablespaces].oid = oid;
	m->tablespaces[m->ntablespaces].location = strdup(location);
	if (m->tablespaces[m->ntablespaces].location == NULL)
		return false;
	m->ntablespaces++;
	return true;
}

/*
 * JSON through cJSON: its names are all prefixed, so nothing clashes with
 * the server's own symbols (jansson's json_object() does: the postgres
 * executable exports a json_object() of its own, which wins).  Numbers are
 * doubles in cJSON, exact for integers below 2^53: enough for sizes, modes
 * and times in seconds.
 */
static bool
add_str(cJSON *obj, const char *key, const char *val)
{
	return (val ? cJSON_AddStringToObject(obj, key, val) : cJSON_AddNullToObject(obj, key)) != NULL;
}

static bool
add_num(cJSON *obj, const char *key, double val)
{
	return cJSON_AddNumberToObject(obj, key, val) != NULL;
}

static bool
add_lsn(cJSON *obj, const char *key, uint64_t lsn)
{
	char buf[WALNAME_LSN_BUFLEN];

	return add_str(obj, key, walname_format_lsn(buf, lsn));
}

static bool
add_time(cJSON *obj, const char *key, int64_t us)
{
	char buf[40];

	pgbk_time_format(us, PGBK_TIME_ISO, buf, sizeof(buf));
	return add_str(obj, key, buf);
}

PgbkStatus
manifest_to_json(const Manifest *m, PgbkBuf *out, PgbkError *err)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr;
	char   sysid[32];
	char  *text = NULL;
	int    i;
	bool   ok = root != NULL;

	snprintf(sysid, sizeof(sysid), "%" PRIu64, m->system_identifier);
	ok = ok && add_num(root, "format", m->format) && add_str(root, "id", m->id) &&
	     add_str(root, "label", m->label) && add_str(root, "system_identifier", sysid) &&
	     add_num(root, "pg_version_num", m->pg_version_num) &&
	     add_num(root, "timeline", m->timeline) && add_lsn(root, "start_lsn", m->start_lsn) &&
	     add_lsn(root, "stop_lsn", m->stop_lsn) && add_str(root, "start_wal", m->start_wal) &&
	     add_str(root, "stop_wal", m->stop_wal) && add_time(root, "start_time", m->start_time_us) &&
	     add_time(root, "stop_time", m->stop_time_us) &&
	     add_num(root, "wal_segment_size", m->wal_segment_size) &&
	     add_str(root, "backup_label", m->backup_label) &&
	     add_str(root, "tablespace_map", m->tablespace_map);

	arr = ok ? cJSON_AddArrayToObject(root, "tablespaces") : NULL;
	ok = ok && arr != NULL;
	for (i = 0; ok && i < m->ntablespaces; i++)
	{
		cJSON *o = cJSON_CreateObject();

		ok = o != NULL && cJSON_AddItemToArray(arr, o) &&
		     add_num(o, "oid", m->tablespaces[i].oid) &&
		     add_str(o, "location", m->tablespaces[i].location);
	}
	arr = ok ? cJSON_AddArrayToObject(root, "directories") : NULL;
	ok = ok && arr != NULL;
	for (i = 0; ok && i < m->ndirs; i++)
	{
		cJSON *o = cJSON_CreateObject();

		ok = o != NULL && cJSON_AddItemToArray(arr, o) && add_str(o, "path", m->dirs[i].path) &&
		     add_num(o, "mode", m->dirs[i].mode);
	}
	arr = ok ? cJSON_AddArrayToObject(root, "files") : NULL;
	ok = ok && arr != NULL;
	for (i = 0; ok && i < m->nfiles; i++)
	{
		const ManifestFile *f = &m->files[i];
		char                hex[2 * CODEC_HASH_BYTES + 1];
		cJSON              *o = cJSON_CreateObject();

		pgbk_hex_encode(f->hash, CODEC_HASH_BYTES, hex);
		ok = o != NULL && cJSON_AddItemToArray(arr, o) && add_str(o, "path", f->path) &&
		     add_num(o, "size", (double) f->size) && add_num(o, "mtime", (double) f->mtime) &&
		     add_num(o, "mode", f->mode) && add_str(o, "hash", hex) &&
		     add_num(o, "stored", (double) f->stored);
	}
	ok = ok && add_num(root, "bytes", (double) m->bytes) &&
	     add_num(root, "stored_bytes", (double) m->stored_bytes) &&
	     add_str(root, "compression", m->compression ? m->compression : "none") &&
	     cJSON_AddBoolToObject(root, "encrypted", m->encrypted) != NULL;
	if (ok && m->nconfig > 0)
	{
		arr = cJSON_AddArrayToObject(root, "source_config");
		ok = arr != NULL;
	}
	for (i = 0; ok && i < m->nconfig; i++)
	{
		const ManifestConfigFile *c = &m->config[i];
		size_t b64len = sodium_base64_ENCODED_LEN(c->len, sodium_base64_VARIANT_ORIGINAL);
		char  *b64 = malloc(b64len);
		cJSON *o = cJSON_CreateObject();

		ok = b64 != NULL && o != NULL && cJSON_AddItemToArray(arr, o);
		if (ok)
		{
			sodium_bin2base64(b64, b64len, c->data, c->len, sodium_base64_VARIANT_ORIGINAL);
			ok = add_str(o, "path", c->path) && add_str(o, "base64", b64);
		}
		else if (o != NULL && !ok)
			cJSON_Delete(o);
		free(b64);
	}
	if (ok)
		text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory serialising the manifest");
	ok = pgbk_buf_append_str(out, text);
	cJSON_free(text);
	if (!ok)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

static const char *
jstr(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static double
jnum(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(item) ? item->valuedouble : 0;
}

static bool
jlsn(const cJSON *obj, const char *key, uint64_t *out)
{
	const char *s = jstr(obj, key);

	return s != NULL && walname_parse_lsn(s, out);
}

static bool
jtime(const cJSON *obj, const char *key, int64_t *out)
{
	const char *s = jstr(obj, key);

	return s != NULL && pgbk_time_parse(s, PGBK_TIME_INPUT, out, NULL) == PGBK_OK;
}

static char *
jdup(const cJSON *obj, const char *key)
{
	const char *s = jstr(obj, key);

	return s ? strdup(s) : NULL;
}

PgbkStatus
manifest_from_json(const char *text, size_t len, Manifest **out, PgbkError *err)
{
	cJSON       *root;
	Manifest    *m;
	const cJSON *arr, *item;
	const char  *s;

	*out = NULL;
	root = cJSON_ParseWithLength(text, len);
	if (root == NULL)
		return pgbk_error(err, PGBK_ERR_FORMAT, "manifest is not valid JSON");
	m = manifest_new();
	if (m == NULL)
	{
		cJSON_Delete(root);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	m->format = (int) jnum(root, "format");
	if (m->format != MANIFEST_FORMAT)
	{
		int format = m->format;

		cJSON_Delete(root);
		manifest_free(m);
		return pgbk_error(err, PGBK_ERR_FORMAT, "unsupported manifest format %d", format);
	}
	s = jstr(root, "id");
	if (s == NULL || strlen(s) >= MANIFEST_ID_LEN)
		goto bad;
	strcpy(m->id, s);
	m->label = jdup(root, "label");
	s = jstr(root, "system_identifier");
	if (s == NULL)
		goto bad;
	m->system_identifier = strtoull(s, NULL, 10);
	m->pg_version_num = (int) jnum(root, "pg_version_num");
	m->timeline = (uint32_t) jnum(root, "timeline");
	if (!jlsn(root, "start_lsn", &m->start_lsn) || !jlsn(root, "stop_lsn", &m->stop_lsn) ||
	    !jtime(root, "start_time", &m->start_time_us) ||
	    !jtime(root, "stop_time", &m->stop_time_us))
		goto bad;
	s = jstr(root, "start_wal");
	if (s == NULL || strlen(s) >= sizeof(m->start_wal))
		goto bad;
	strcpy(m->start_wal, s);
	s = jstr(root, "stop_wal");
	if (s == NULL || strlen(s) >= sizeof(m->stop_wal))
		goto bad;
	strcpy(m->stop_wal, s);
	m->wal_segment_size = (uint32_t) jnum(root, "wal_segment_size");
	m->backup_label = jdup(root, "backup_label");
	m->tablespace_map = jdup(root, "tablespace_map");
	m->compression = jdup(root, "compression");
	m->encrypted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "encrypted"));
	m->bytes = (uint64_t) jnum(root, "bytes");
	m->stored_bytes = (uint64_t) jnum(root, "stored_bytes");

	arr = cJSON_GetObjectItemCaseSensitive(root, "tablespaces");
	cJSON_ArrayForEach(item, arr)
	{
		if (jstr(item, "location") == NULL ||
		    !manifest_add_tablespace(m, (uint32_t) jnum(item, "oid"), jstr(item, "location")))
			goto bad;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, "directories");
	cJSON_ArrayForEach(item, arr)
	{
		if (jstr(item, "path") == NULL ||
		    !manifest_add_dir(m, jstr(item, "path"), (unsigned) jnum(item, "mode")))
			goto bad;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, "source_config");
	cJSON_ArrayForEach(item, arr)
	{
		const char    *b64 = jstr(item, "base64");
		size_t         cap, len = 0;
		unsigned char *bin;
		bool           added;

		if (jstr(item, "path") == NULL || b64 == NULL)
			goto bad;
		cap = strlen(b64) / 4 * 3 + 3;
		if ((bin = malloc(cap)) == NULL)
			goto bad;
		added = sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &len, NULL,
		                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
		        manifest_add_config(m, jstr(item, "path"), bin, len);
		free(bin);
		if (!added)
			goto bad;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, "files");
	if (!cJSON_IsArray(arr))
		goto bad;
	cJSON_ArrayForEach(item, arr)
	{
		ManifestFile f;

		memset(&f, 0, sizeof(f));
		f.path = (char *) jstr(item, "path");
		s = jstr(item, "hash");
		if (f.path == NULL || s == NULL || !pgbk_hex_decode(s, f.hash, CODEC_HASH_BYTES))
			goto bad;
		f.size = (uint64_t) jnum(item, "size");
		f.mtime = (int64_t) jnum(item, "mtime");
		f.mode = (unsigned) jnum(item, "mode");
		f.stored = (uint64_t) jnum(item, "stored");
		if (!manifest_add_file(m, &f))
			goto bad;
	}
	cJSON_Delete(root);
	*out = m;
	return PGBK_OK;

bad:
	cJSON_Delete(root);
	manifest_free(m);
	return pgbk_error(err, PGBK_ERR_FORMAT, "manifest is malformed or incomplete");
}

PgbkStatus
manifest_load(Repo *repo, const PgbkKeyring *ring, const char *backup_id, Manifest **out,
              PgbkError *err)
{
	char       key[LAYOUT_KEY_LEN];
	PgbkBuf    stored, raw;
	PgbkStatus st;

	*out = NULL;
	if (!layout_backup_manifest_key(backup_id, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid backup id \"%s\"", backup_id);
	pgbk_buf_init(&stored);
	pgbk_buf_init(&raw);
	st = repo_get(repo, key, &stored, err);
	if (st == PGBK_OK)
	{
		st = codec_decode(ring, stored.data, stored.len, CODEC_LIMIT_MANIFEST, &raw, NULL, err);
		if (st != PGBK_OK)
			pgbk_error_prefix(err, "manifest of backup %s", backup_id);
	}
	if (st == PGBK_OK)
	{
		st = manifest_from_json((const char *) raw.data, raw.len, out, err);
		if (st != PGBK_OK)
			pgbk_error_prefix(err, "manifest of backup %s", backup_id);
	}
	pgbk_buf_free(&stored);
	pgbk_buf_free(&raw);
	return st;
}

PgbkStatus
manifest_backup_attrs(const Manifest *m, PgbkBuf *out, PgbkError *err)
{
	char l1[WALNAME_LSN_BUFLEN], l2[WALNAME_LSN_BUFLEN];

	if (!pgbk_buf_printf(out,
	                     "backup.v=%d\nbackup.tli=%u\nbackup.start_lsn=%s\nbackup.stop_lsn=%s\n"
	                     "backup.start_time=%" PRId64 "\nbackup.stop_time=%" PRId64
	                     "\nbackup.segsz=%u\nbackup.bytes=%" PRIu64 "\nbackup.stored=%" PRIu64
	                     "\nbackup.sysid=%" PRIu64 "\nbackup.pg_version=%d\n",
	                     MANIFEST_BACKUP_ATTRS_VERSION, m->timeline,
	                     walname_format_lsn(l1, m->start_lsn), walname_format_lsn(l2, m->stop_lsn),
	                     m->start_time_us, m->stop_time_us, m->wal_segment_size, m->bytes,
	                     m->stored_bytes, m->system_identifier, m->pg_version_num))
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

PgbkStatus
manifest_store(Repo *repo, const CodecParams *params, const Manifest *m, PgbkError *err)
{
	char           key[LAYOUT_KEY_LEN];
	PgbkBuf        json, enc;
	RepoPutOptions opts;
	PgbkStatus     st;

	if (!layout_backup_manifest_key(m->id, key, sizeof(key)))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid backup id \"%s\"", m->id);
	pgbk_buf_init(&json);
	pgbk_buf_init(&enc);
	st = manifest_to_json(m, &json, err);
	if (st == PGBK_OK)
	{
		PgbkBuf attrs;

		/* backup.* attributes: planners read them from the header alone */
		pgbk_buf_init(&attrs);
		pgbk_buf_append_str(&attrs, "kind=manifest\n");
		st = manifest_backup_attrs(m, &attrs, err);
		if (st == PGBK_OK)
			st = codec_encode(params, json.data, json.len, (const char *) attrs.data, &enc, NULL,
			                  err);
		pgbk_buf_free(&attrs);
	}
	if (st == PGBK_OK)
	{
		memset(&opts, 0, sizeof(opts));
		opts.no_overwrite = true;
		st = repo_put(repo, key, enc.data, enc.len, &opts, err);
	}
	pgbk_buf_free(&json);
	pgbk_buf_free(&enc);
	return st;
}
