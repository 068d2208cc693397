/*
 * spool.c
 *	  Program pgbk-watcher; uses common/files (snapshot records), base, log.h and cJSON.
 *	  The journal of records for the catalog (see spool.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "spool.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_RECORD_MAX (16 * 1024 * 1024)

struct Spool
{
	char     *dir;
	int       dir_fd;
	uint64_t  next_seq;
	uint64_t *pending; /* ascending */
	size_t    n_pending;
	size_t    cap;
};

/* ----------------------------------------------------------------------
 * Encoding
 * ---------------------------------------------------------------------- */

/*
 * cJSON as in common/: it round-trips any byte except NUL in strings (paths
 * need not be UTF-8), and numbers are doubles, exact below 2^53.
 */
static cJSON *
json_strings(char **s, int n)
{
	cJSON *a = cJSON_CreateArray();
	int    i;

	for (i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
	return a;
}

char *
spool_encode(const SpoolRecord *rec)
{
	cJSON *o = cJSON_CreateObject();
	char  *out;

	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "v", SPOOL_FORMAT_VERSION);
	if (rec->kind == SPOOL_SNAPSHOT)
	{
		cJSON *s = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "kind", "snapshot");
		cJSON_AddStringToObject(o, "id", rec->id);
		cJSON_AddStringToObject(o, "time", rec->time ? rec->time : "");
		cJSON_AddStringToObject(o, "host", rec->host ? rec->host : "");
		cJSON_AddItemToObject(o, "paths", json_strings(rec->paths, rec->n_paths));
		cJSON_AddItemToObject(o, "tags", json_strings(rec->tags, rec->n_tags));
		cJSON_AddItemToObject(o, "restore_points",
		                      json_strings(rec->restore_points, rec->n_restore_points));
		cJSON_AddBoolToObject(o, "complete", rec->complete);
		cJSON_AddStringToObject(o, "trigger", rec->trigger ? rec->trigger : "");
		cJSON_AddNumberToObject(s, "files_new", (double) rec->sum.files_new);
		cJSON_AddNumberToObject(s, "files_changed", (double) rec->sum.files_changed);
		cJSON_AddNumberToObject(s, "files_unmodified", (double) rec->sum.files_unmodified);
		cJSON_AddNumberToObject(s, "dirs_new", (double) rec->sum.dirs_new);
		cJSON_AddNumberToObject(s, "dirs_changed", (double) rec->sum.dirs_changed);
		cJSON_AddNumberToObject(s, "dirs_unmodified", (double) rec->sum.dirs_unmodified);
		cJSON_AddNumberToObject(s, "data_added", (double) rec->sum.data_added);
		cJSON_AddNumberToObject(s, "total_files_processed",
		                        (double) rec->sum.total_files_processed);
		cJSON_AddNumberToObject(s, "total_bytes_processed",
		                        (double) rec->sum.total_bytes_processed);
		cJSON_AddNumberToObject(s, "total_duration", rec->sum.total_duration);
		cJSON_AddItemToObject(o, "summary", s);
		if (rec->exact_from_us)
			cJSON_AddNumberToObject(o, "exact_from_us", (double) rec->exact_from_us);
		if (rec->exact_until_us)
			cJSON_AddNumberToObject(o, "exact_until_us", (double) rec->exact_until_us);
		if (rec->scan_end_us)
			cJSON_AddNumberToObject(o, "scan_end_us", (double) rec->scan_end_us);
		if (rec->n_request_ids > 0)
		{
			cJSON *a = cJSON_AddArrayToObject(o, "request_ids");
			int    i;

			for (i = 0; a && i < rec->n_request_ids; i++)
				cJSON_AddItemToArray(a, cJSON_CreateNumber((double) rec->request_ids[i]));
		}
	}
	else if (rec->kind == SPOOL_UNTIL)
	{
		cJSON_AddStringToObject(o, "kind", "until");
		cJSON_AddStringToObject(o, "id", rec->id);
		cJSON_AddNumberToObject(o, "exact_until_us", (double) rec->exact_until_us);
	}
	else if (rec->kind == SPOOL_CLOSE)
	{
		cJSON_AddStringToObject(o, "kind", "close");
		cJSON_AddStringToObject(o, "host", rec->host ? rec->host : "");
	}
	else
	{
		cJSON_AddStringToObject(o, "kind", "forgotten");
		cJSON_AddItemToObject(o, "ids", json_strings(rec->ids, rec->n_ids));
	}
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

static bool
get_strings(const cJSON *o, const char *key, char ***out, int *n)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	int          i;

	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(a))
		return false;
	*out = calloc((size_t) cJSON_GetArraySize(a) + 1, sizeof(char *));
	if (*out == NULL)
		return false;
	for (i = 0; i < cJSON_GetArraySize(a); i++)
	{
		const cJSON *s = cJSON_GetArrayItem(a, i);

		if (!cJSON_IsString(s) || ((*out)[i] = strdup(s->valuestring)) == NULL)
			return false;
		*n = i + 1;
	}
	return true;
}

static bool
get_string(const cJSON *o, const char *key, char **out)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = NULL;
	if (!cJSON_IsString(s))
		return false;
	*out = strdup(s->valuestring);
	return *out != NULL;
}

/* an integral number */
static bool
get_int(const cJSON *o, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || v->valuedouble != (double) (int64_t) v->valuedouble)
		return false;
	*out = (int64_t) v->valuedouble;
	return true;
}

/* an optional integral number (absent: 0) */
static bool
get_opt_int(const cJSON *o, const char *key, int64_t *out)
{
	*out = 0;
	return cJSON_GetObjectItemCaseSensitive(o, key) == NULL || get_int(o, key, out);
}

/* an optional array of integral numbers */
static bool
get_opt_ints(const cJSON *o, const char *key, int64_t **out, int *n)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	int          i;

	*out = NULL;
	*n = 0;
	if (a == NULL)
		return true;
	if (!cJSON_IsArray(a) ||
	    (*out = calloc((size_t) cJSON_GetArraySize(a) + 1, sizeof(int64_t))) == NULL)
		return false;
	for (i = 0; i < cJSON_GetArraySize(a); i++)
	{
		const cJSON *v = cJSON_GetArrayItem(a, i);

		if (!cJSON_IsNumber(v) || v->valuedouble != (double) (int64_t) v->valuedouble)
			return false;
		(*out)[i] = (int64_t) v->valuedouble;
		*n = i + 1;
	}
	return true;
}

static bool
get_id(const cJSON *o, char *out)
{
	char *id = NULL;
	bool  ok = get_string(o, "id", &id) && strlen(id) == FILES_ID_LEN &&
	          strspn(id, "0123456789abcdef") == FILES_ID_LEN;

	if (ok)
		memcpy(out, id, FILES_ID_LEN + 1);
	free(id);
	return ok;
}

PgbkStatus
spool_decode(const char *json, size_t len, SpoolRecord *rec, PgbkError *err)
{
	cJSON       *o;
	const cJSON *v;
	const char  *kind;
	bool         ok = false;
	int64_t      version;

	memset(rec, 0, sizeof(*rec));
	o = cJSON_ParseWithLength(json, len);
	if (o == NULL)
		return pgbk_error(err, PGBK_ERR_FORMAT, "not valid JSON");
	if (!get_int(o, "v", &version) || version != SPOOL_FORMAT_VERSION)
	{
		cJSON_Delete(o);
		return pgbk_error(err, PGBK_ERR_FORMAT, "unknown spool format version");
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "kind");
	kind = cJSON_IsString(v) ? v->valuestring : "";
	if (strcmp(kind, "snapshot") == 0)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "summary");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "total_duration");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "complete");
		char        *id = NULL;

		rec->kind = SPOOL_SNAPSHOT;
		ok = get_string(o, "id", &id) && strlen(id) == FILES_ID_LEN &&
		     strspn(id, "0123456789abcdef") == FILES_ID_LEN && get_string(o, "time", &rec->time) &&
		     files_parse_time(rec->time, &(int64_t){0}) && get_string(o, "host", &rec->host) &&
		     get_strings(o, "paths", &rec->paths, &rec->n_paths) &&
		     get_strings(o, "tags", &rec->tags, &rec->n_tags) &&
		     get_strings(o, "restore_points", &rec->restore_points, &rec->n_restore_points) &&
		     cJSON_IsBool(c) && get_string(o, "trigger", &rec->trigger) && cJSON_IsObject(s) &&
		     get_int(s, "files_new", &rec->sum.files_new) &&
		     get_int(s, "files_changed", &rec->sum.files_changed) &&
		     get_int(s, "files_unmodified", &rec->sum.files_unmodified) &&
		     get_int(s, "dirs_new", &rec->sum.dirs_new) &&
		     get_int(s, "dirs_changed", &rec->sum.dirs_changed) &&
		     get_int(s, "dirs_unmodified", &rec->sum.dirs_unmodified) &&
		     get_int(s, "data_added", &rec->sum.data_added) &&
		     get_int(s, "total_files_processed", &rec->sum.total_files_processed) &&
		     get_int(s, "total_bytes_processed", &rec->sum.total_bytes_processed) &&
		     cJSON_IsNumber(d) && get_opt_int(o, "exact_from_us", &rec->exact_from_us) &&
		     get_opt_int(o, "exact_until_us", &rec->exact_until_us) &&
		     get_opt_int(o, "scan_end_us", &rec->scan_end_us) &&
		     get_opt_ints(o, "request_ids", &rec->request_ids, &rec->n_request_ids);
		if (ok)
		{
			memcpy(rec->id, id, FILES_ID_LEN + 1);
			memcpy(rec->sum.short_id, id, FILES_SHORT_ID_LEN);
			rec->sum.short_id[FILES_SHORT_ID_LEN] = '\0';
			rec->complete = cJSON_IsTrue(c);
			rec->sum.total_duration = d->valuedouble;
		}
		free(id);
	}
	else if (strcmp(kind, "forgotten") == 0)
	{
		rec->kind = SPOOL_FORGOTTEN;
		ok = get_strings(o, "ids", &rec->ids, &rec->n_ids);
	}
	else if (strcmp(kind, "until") == 0)
	{
		rec->kind = SPOOL_UNTIL;
		ok = get_id(o, rec->id) && get_int(o, "exact_until_us", &rec->exact_until_us);
	}
	else if (strcmp(kind, "close") == 0)
	{
		rec->kind = SPOOL_CLOSE;
		ok = get_string(o, "host", &rec->host);
	}
	cJSON_Delete(o);
	if (!ok)
	{
		spool_record_free(rec);
		return pgbk_error(err, PGBK_ERR_FORMAT, "missing or invalid fields");
	}
	return PGBK_OK;
}

static void
free_strings(char **s, int n)
{
	int i;

	for (i = 0; s && i < n; i++)
		free(s[i]);
	free(s);
}

void
spool_record_free(SpoolRecord *rec)
{
	free(rec->time);
	free(rec->host);
	free_strings(rec->paths, rec->n_paths);
	free_strings(rec->tags, rec->n_tags);
	free_strings(rec->restore_points, rec->n_restore_points);
	free(rec->trigger);
	free_strings(rec->ids, rec->n_ids);
	free(rec->request_ids);
	memset(rec, 0, sizeof(*rec));
}

/* ----------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------- */

static void
seq_name(uint64_t seq, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%020" PRIu64 "%s", seq, suffix);
}

static bool
pending_add(Spool *sp, uint64_t seq)
{
	if (sp->n_pending == sp->cap)
	{
		size_t    ncap = sp->cap ? sp->cap * 2 : 64;
		uint64_t *np = realloc(sp->pending, ncap * sizeof(uint64_t));

		if (np == NULL)
			return false;
		sp->pending = np;
		sp->cap = ncap;
	}
	sp->pending[sp->n_pending++] = seq;
	return true;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a;
	uint64_t y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* mkdir -p with mode 0700 for what it creates */
static PgbkStatus
make_dir(const char *path, PgbkError *err)
{
	char   buf[PATH_MAX];
	size_t i;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
		return pgbk_error(err, PGBK_ERR_CONFIG, "spool_dir \"%s\" is too long", path);
	for (i = 1;; i++)
	{
		if (buf[i] == '/' || buf[i] == '\0')
		{
			char c = buf[i];

			buf[i] = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST)
				return pgbk_error(err, PGBK_ERR_CONFIG,
				                  "could not create spool directory \"%s\": %s; create it "
				                  "(writable by the watcher's user) or fix spool_dir",
				                  buf, strerror(errno));
			buf[i] = c;
			if (c == '\0')
				break;
		}
	}
	return PGBK_OK;
}

PgbkStatus
spool_open(const char *dir, Spool **out, PgbkError *err)
{
	Spool         *sp;
	DIR           *d;
	struct dirent *de;
	PgbkStatus     rc;
	uint64_t       max_seq = 0;

	*out = NULL;
	if ((rc = make_dir(dir, err)) != PGBK_OK)
		return rc;
	if (access(dir, W_OK | X_OK) != 0)
		return pgbk_error(err, PGBK_ERR_CONFIG,
		                  "spool directory \"%s\" is not writable: %s; fix its owner or spool_dir",
		                  dir, strerror(errno));
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL || (sp->dir = strdup(dir)) == NULL)
	{
		free(sp);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	sp->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dir_fd < 0 || (d = opendir(dir)) == NULL)
	{
		rc = pgbk_error(err, PGBK_ERR_CONFIG, "could not open spool directory \"%s\": %s", dir,
		                strerror(errno));
		spool_close(sp);
		return rc;
	}
	while ((de = readdir(d)) != NULL)
	{
		const char *n = de->d_name;
		char       *end;
		uint64_t    seq;

		if (strspn(n, "0123456789") != 20)
			continue;
		seq = strtoull(n, &end, 10);
		if (strcmp(end, ".tmp") == 0)
		{
			/* a record whose write never completed: it was never acknowledged */
			unlinkat(sp->dir_fd, n, 0);
			continue;
		}
		if (seq > max_seq)
			max_seq = seq;
		if (strcmp(end, ".rec") == 0 && !pending_add(sp, seq))
		{
			closedir(d);
			spool_close(sp);
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
	}
	closedir(d);
	qsort(sp->pending, sp->n_pending, sizeof(uint64_t), cmp_u64);
	sp->next_seq = max_seq + 1;
	*out = sp;
	return PGBK_OK;
}

void
spool_close(Spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->dir_fd >= 0)
		close(sp->dir_fd);
	free(sp->dir);
	free(sp->pending);
	free(sp);
}

PgbkStatus
spool_append(Spool *sp, const SpoolRecord *rec, PgbkError *err)
{
	char    *json = spool_encode(rec);
	char     tmp[64];
	char     final[64];
	int      fd;
	size_t   len;
	size_t   off = 0;
	uint64_t seq = sp->next_seq;

	if (json == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory encoding a spool record");
	seq_name(seq, ".tmp", tmp, sizeof(tmp));
	seq_name(seq, ".rec", final, sizeof(final));
	fd = openat(sp->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	len = strlen(json);
	json[len] = '\n'; /* replaces the NUL: write len + 1 bytes */
	while (off < len + 1)
	{
		ssize_t n = write(fd, json + off, len + 1 - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t) n;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
	{
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(sp->dir_fd, tmp, sp->dir_fd, final) != 0 || fsync(sp->dir_fd) != 0)
		goto fail;
	free(json);
	sp->next_seq++;
	if (!pending_add(sp, seq))
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;

fail:
{
	int e = errno;

	if (fd >= 0)
		close(fd);
	unlinkat(sp->dir_fd, tmp, 0);
	free(json);
	return pgbk_error(err, PGBK_ERR_IO,
	                  "could not write spool record \"%s/%s\": %s; check the spool "
	                  "directory's file system",
	                  sp->dir, final, strerror(e));
}
}

size_t
spool_pending(const Spool *sp)
{
	return sp->n_pending;
}

uint64_t
spool_first(const Spool *sp)
{
	return sp->n_pending ? sp->pending[0] : 0;
}

static void
pending_drop(Spool *sp, uint64_t seq)
{
	size_t i;

	for (i = 0; i < sp->n_pending; i++)
	{
		if (sp->pending[i] == seq)
		{
			memmove(&sp->pending[i], &sp->pending[i + 1],
			        (sp->n_pending - i - 1) * sizeof(uint64_t));
			sp->n_pending--;
			return;
		}
	}
}

PgbkStatus
spool_read(Spool *sp, uint64_t seq, SpoolRecord *rec, PgbkError *err)
{
	char        name[64];
	char        path[PATH_MAX];
	char        bad[64];
	PgbkBuf     b;
	PgbkStatus  rc;
	struct stat st;

	seq_name(seq, ".rec", name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	pgbk_buf_init(&b);
	if (stat(path, &st) == 0 && st.st_size > SPOOL_RECORD_MAX)
		rc = pgbk_error(err, PGBK_ERR_FORMAT, "record is larger than %d bytes", SPOOL_RECORD_MAX);
	else
		rc = pgbk_read_file(path, &b, err);
	if (rc == PGBK_OK)
		rc = spool_decode(b.data ? (const char *) b.data : "", b.len, rec, err);
	pgbk_buf_free(&b);
	if (rc == PGBK_ERR_FORMAT || rc == PGBK_NOT_FOUND)
	{
		seq_name(seq, ".bad", bad, sizeof(bad));
		if (rc == PGBK_ERR_FORMAT)
			renameat(sp->dir_fd, name, sp->dir_fd, bad);
		pgbk_error_prefix(err,
		                  "spool record \"%s\" is unreadable and was set aside as \"%s\" "
		                  "(the snapshot itself is still in the restic repository)",
		                  path, bad);
		pending_drop(sp, seq);
		return PGBK_ERR_FORMAT;
	}
	return rc;
}

void
spool_remove(Spool *sp, uint64_t seq)
{
	char name[64];

	seq_name(seq, ".rec", name, sizeof(name));
	/*
	 * No fsync of the directory: if the unlink is lost in a crash the
	 * record is delivered again, which the catalog ignores.
	 */
	if (unlinkat(sp->dir_fd, name, 0) != 0 && errno != ENOENT)
		log_warning("could not remove delivered spool record \"%s/%s\": %s", sp->dir, name,
		            strerror(errno));
	pending_drop(sp, seq);
}
