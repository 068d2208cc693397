/*
 * layout.c
 *	  Room format; uses base (WAL names) only.
 *	  Repository key names for each kind of object (see layout.h).
 */
#include "format/layout.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/walname.h"

bool
layout_wal_key(const char *fname, char *key, size_t keylen)
{
	WalFileKind kind = walname_classify(fname, NULL);
	int         n;

	switch (kind)
	{
		case WAL_FILE_HISTORY:
			n = snprintf(key, keylen, LAYOUT_HISTORY_PREFIX "%s", fname);
			break;
		case WAL_FILE_SEGMENT:
		case WAL_FILE_PARTIAL:
		case WAL_FILE_BACKUP:
			n = snprintf(key, keylen, LAYOUT_WAL_PREFIX "%.16s/%s", fname, fname);
			break;
		default:
			return false;
	}
	return n > 0 && (size_t) n < keylen;
}

const char *
layout_wal_name(const char *key)
{
	const char *name;

	if (strncmp(key, LAYOUT_WAL_PREFIX, strlen(LAYOUT_WAL_PREFIX)) != 0)
		return NULL;
	name = strrchr(key, '/') + 1;
	if (walname_classify(name, NULL) == WAL_FILE_OTHER)
		return NULL;
	return name;
}

bool
layout_changes_key(const char *segname, char *key, size_t keylen)
{
	WalFileKind kind = walname_classify(segname, NULL);
	int         n;

	if (kind != WAL_FILE_SEGMENT && kind != WAL_FILE_PARTIAL)
		return false;
	n = snprintf(key, keylen, LAYOUT_CHANGES_PREFIX "%.16s/%s", segname, segname);
	return n > 0 && (size_t) n < keylen;
}

const char *
layout_changes_name(const char *key)
{
	const char *name;
	WalFileKind kind;
	size_t      plen = strlen(LAYOUT_CHANGES_PREFIX);

	if (strncmp(key, LAYOUT_CHANGES_PREFIX, plen) != 0)
		return NULL;
	name = strrchr(key, '/') + 1;
	kind = walname_classify(name, NULL);
	/* exactly changes/<first 16 characters of the name>/<name> */
	if ((kind != WAL_FILE_SEGMENT && kind != WAL_FILE_PARTIAL) || name != key + plen + 17 ||
	    strncmp(key + plen, name, 16) != 0)
		return NULL;
	return name;
}

bool
layout_backup_manifest_key(const char *backup_id, char *key, size_t keylen)
{
	int n = snprintf(key, keylen, LAYOUT_MANIFEST_PREFIX "%s", backup_id);

	return n > 0 && (size_t) n < keylen;
}

bool
layout_backup_file_key(const char *backup_id, const char *path, char *key, size_t keylen)
{
	int n = snprintf(key, keylen, LAYOUT_BACKUP_PREFIX "%s/data/%s", backup_id, path);

	return n > 0 && (size_t) n < keylen;
}

bool
layout_backup_id_of_manifest(const char *key, char *id, size_t idlen)
{
	size_t plen = strlen(LAYOUT_MANIFEST_PREFIX);
	size_t n;

	if (strncmp(key, LAYOUT_MANIFEST_PREFIX, plen) != 0)
		return false;
	n = strlen(key + plen);
	if (n == 0 || n >= idlen || strchr(key + plen, '/') != NULL)
		return false;
	memcpy(id, key + plen, n + 1);
	return true;
}

void
layout_backup_id_format(int64_t unix_seconds, char *out, size_t outlen)
{
	time_t    t = (time_t) unix_seconds;
	struct tm tm;

	gmtime_r(&t, &tm);
	if (strftime(out, outlen, "%Y%m%dT%H%M%SZ", &tm) == 0 && outlen > 0)
		out[0] = '\0';
}
