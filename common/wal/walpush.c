/*
 * walpush.c
 *	  Room wal; uses base, repo, format (codec, layout), walscan.c, walchanges.c
 *	  and cJSON.
 *	  Push one WAL-area file into the repository (see walpush.h for the
 *	  rules).  The hot path for a new segment is: read the file, scan it
 *	  (headers only), encode (compress + encrypt + hash, one pass), one
 *	  no-overwrite put.  Only when the key already exists do we look at the
 *	  stored object.
 */
#include "wal/walpush.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
walpush_init(WalPusher *p, Repo *repo, const CodecParams *params)
{
	memset(p, 0, sizeof(*p));
	p->repo = repo;
	p->params = *params;
	p->checked = &p->checked_sysid;
	pgbk_buf_init(&p->raw);
	pgbk_buf_init(&p->enc);
	pgbk_buf_init(&p->attrs);
}

void
walpush_share_check(WalPusher *p, WalPusher *with)
{
	p->checked = with->checked;
}

void
walpush_free(WalPusher *p)
{
	pgbk_buf_free(&p->raw);
	pgbk_buf_free(&p->enc);
	pgbk_buf_free(&p->attrs);
	walchg_free(p->changes);
	p->changes = NULL;
}

/* Read the rest of open file fd (size st_size) into buf (reset first); closes fd. */
static PgbkStatus
read_fd(int fd, off_t st_size, const char *path, PgbkBuf *buf, PgbkError *err)
{
	pgbk_buf_reset(buf);
	if (!pgbk_buf_reserve(buf, (size_t) st_size))
	{
		close(fd);
		return pgbk_error(err, PGBK_ERR, "out of memory reading \"%s\"", path);
	}
	for (;;)
	{
		ssize_t n;

		if (buf->cap - buf->len - 1 < 65536 && !pgbk_buf_reserve(buf, 65536))
		{
			close(fd);
			return pgbk_error(err, PGBK_ERR, "out of memory reading \"%s\"", path);
		}
		n = read(fd, buf->data + buf->len, buf->cap - buf->len - 1);
		if (n < 0)
		{
			int save = errno;

			if (save == EINTR)
				continue;
			close(fd);
			return pgbk_error(err, PGBK_ERR_IO, "could not read \"%s\": %s", path, strerror(save));
		}
		if (n == 0)
			break;
		buf->len += (size_t) n;
	}
	close(fd);
	buf->data[buf->len] = '\0';
	return PGBK_OK;
}

PgbkStatus
walpush_object_matches(Repo *repo, const PgbkKeyring *ring, const char *key,
                       const unsigned char hash[CODEC_HASH_BYTES], uint64_t raw_size, bool *same,
                       uint64_t *stored_size, PgbkError *err)
{
	PgbkBuf     head;
	CodecHeader hdr;
	size_t      needed = 0;
	PgbkStatus  st;

	*same = false;
	pgbk_buf_init(&head);
	st = repo_get_range(repo, key, 0, CODEC_MAX_HEADER, &head, err);
	if (st == PGBK_OK)
	{
		*stored_size = head.len;
		st = codec_read_header(head.data, head.len, &hdr, &needed, err);
	}
	if (st == PGBK_OK)
		st = codec_header_matches(ring, &hdr, hash, raw_size, same, err);
	if (st == PGBK_NOT_FOUND)
	{
		/* trailer-only object: the plain hash is only in the (verified) trailer */
		PgbkBuf       whole, raw;
		unsigned char stored[CODEC_HASH_BYTES];

		pgbk_buf_init(&whole);
		pgbk_buf_init(&raw);
		st = repo_get(repo, key, &whole, err);
		if (st == PGBK_OK)
			st = codec_decode(ring, whole.data, whole.len, CODEC_LIMIT_WAL_MAX, &raw, &hdr, err);
		if (st == PGBK_OK)
		{
			memcpy(stored, hdr.content_hash, CODEC_HASH_BYTES);
			*same = raw.len == raw_size && memcmp(stored, hash, CODEC_HASH_BYTES) == 0;
			*stored_size = whole.len;
		}
		pgbk_buf_free(&whole);
		pgbk_buf_free(&raw);
	}
	pgbk_buf_free(&head);
	return st;
}

static PgbkStatus
compare_existing(WalPusher *p, const char *key, const char *fname, WalPushResult *res,
                 PgbkError *err)
{
	RepoObjectInfo info;
	bool           same = false;
	uint64_t       stored_size = 0;
	PgbkStatus     st;

	st = repo_head(p->repo, key, &info, err);
	if (st == PGBK_OK)
		st = walpush_object_matches(p->repo, p->params.keyring, key, res->hash, res->raw_size,
		                            &same, &stored_size, err);
	if (st != PGBK_OK)
		return pgbk_error_prefix(err, "could not check existing \"%s\" in %s", key,
		                         repo_describe(p->repo));
	if (same)
	{
		res->already_present = true;
		res->stored_size = info.size;
		return PGBK_OK;
	}
	return pgbk_error(err, PGBK_EXISTS,
	                  "refusing to overwrite \"%s\" in %s: the repository holds different "
	                  "content under this name; is another server archiving into the same "
	                  "repository?",
	                  fname, repo_describe(p->repo));
}

/* Attributes of a WAL object: what it is, where it came from, the summary. */
static PgbkStatus
build_attrs(WalPusher *p, const char *fname, WalFileKind kind, WalPushResult *res, PgbkError *err)
{
	static const char *kinds[] = {"other", "segment", "partial", "history", "backup"};
	PgbkError          scan_err;

	pgbk_buf_reset(&p->attrs);
	pgbk_buf_printf(&p->attrs,
	                "kind=wal\nname=%s\nwal.kind=%s\nsource_mtime=%" PRId64
	                "\nsource_mtime_us=%" PRId64 "\n",
	                fname, kinds[kind], res->source_mtime, res->source_mtime_us);
	res->has_summary = false;
	if (kind == WAL_FILE_SEGMENT || kind == WAL_FILE_PARTIAL)
	{
		/*
		 * A segment that does not scan is still archived: the summary helps
		 * planning, but refusing WAL would be far worse.  The planner treats
		 * a segment without a summary as "times unknown".
		 */
		char             base[WALNAME_BUFLEN];
		WalChgCollector *col;
		PgbkStatus       scan_st;

		/* one pass: the change summary collects from the same scan */
		snprintf(base, sizeof(base), "%.*s", WALNAME_SEGMENT_LEN, fname);
		if ((col = walchg_collector_begin(base)) == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory");
		pgbk_error_clear(&scan_err);
		scan_st = walscan_segment_hooked(p->data, p->len, (uint32_t) p->len, NULL, 0, &res->summary,
		                                 walchg_collect, col, &scan_err);
		walchg_free(p->changes);
		p->changes = walchg_collector_end(col, &res->summary, scan_st == PGBK_OK);
		if (scan_st == PGBK_OK && p->changes == NULL)
			return pgbk_error(err, PGBK_ERR, "out of memory summarizing \"%s\"", fname);
		if (scan_st != PGBK_OK)
		{
			/* no summary: a backup needing it rebuilds it, fails the same way and says so */
			walchg_free(p->changes);
			p->changes = NULL;
		}
		if (scan_st == PGBK_OK)
		{
			res->has_summary = true;
			if (walscan_summary_to_attrs(&res->summary, CODEC_MAX_ATTRS - p->attrs.len - 64,
			                             &p->attrs, err) != PGBK_OK)
				return err->code;
		}
		else
		{
			size_t i;
			char   clean[200];

			/* keep the attribute one line of printable ASCII */
			snprintf(clean, sizeof(clean), "%s", scan_err.msg);
			for (i = 0; clean[i]; i++)
				if (clean[i] < 0x20 || clean[i] > 0x7e)
					clean[i] = ' ';
			pgbk_buf_printf(&p->attrs, "wal.scan_error=%s\n", clean);
		}
	}
	if (p->attrs.data == NULL)
		return pgbk_error(err, PGBK_ERR, "out of memory");
	return PGBK_OK;
}

static PgbkStatus encode_loaded(WalPusher *p, const char *fname, WalFileKind kind,
                                WalPushResult *res, PgbkError *err);

/*
 * While a backlog drains (the caller sets map_segments), a segment is
 * mapped rather than read: the encoder then reads the page cache directly,
 * without first copying 16 MiB into a buffer of its own (the archive drain
 * of scripts/bench_archive.sh went from 39-46 to 47-55 segments/s).  While
 * the uploaders keep up, segments are read: with mapping, pgbench beside
 * archiving into a local repository lost about 5 % (0.937-1.017 of its TPS
 * without archiving, over 16 rounds) where reading loses nothing (1.005,
 * 8 rounds); why is not understood yet, so the mapping is kept to where it
 * was measured to pay.  PostgreSQL never truncates a WAL file, and recycles
 * one only after it is archived, which waits for us.  Should the file shrink anyway,
 * or the disk fail while a page is read in, the kernel raises SIGBUS where
 * read() would have returned an error: walpush_prepare turns that into the
 * same error (below), never a crash of the server.  Small files (history,
 * .backup) are read.
 */
#define WALPUSH_MAP_MIN (1024 * 1024)

/* per thread: an uploader prepares its next file in a helper thread (walpush.h) */
static __thread sigjmp_buf *volatile bus_jump = NULL;

/* Test hook (t/020): map every large file, then shrink it.  Read once. */
static bool
shrink_hook(void)
{
	static int on = -1;

	if (on < 0)
		on = getenv("PGBK_TEST_SHRINK_MAPPED") != NULL;
	return on;
}

/* SIGBUS while a mapped file is read: back to walpush_file. */
static void
walpush_sigbus(int signo)
{
	if (bus_jump != NULL)
		siglongjmp(*bus_jump, 1);
	signal(signo, SIG_DFL);
	raise(signo);
}

static PgbkStatus
map_or_read(WalPusher *p, const char *path, int64_t *mtime, PgbkError *err)
{
	int         fd;
	struct stat st;
	void       *m;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pgbk_error(err, errno == ENOENT ? PGBK_NOT_FOUND : PGBK_ERR_IO,
		                  "could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &st) != 0)
	{
		int save = errno;

		close(fd);
		return pgbk_error(err, PGBK_ERR_IO, "could not stat \"%s\": %s", path, strerror(save));
	}
	*mtime = (int64_t) st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
	if (!S_ISREG(st.st_mode) || st.st_size < WALPUSH_MAP_MIN || !(p->map_segments || shrink_hook()))
	{
		if (read_fd(fd, st.st_size, path, &p->raw, err) != PGBK_OK)
			return err->code;
		p->data = p->raw.data;
		p->len = p->raw.len;
		return PGBK_OK;
	}
	/*
	 * Not MAP_POPULATE: faulting the pages in as the scan first reads them
	 * (the kernel maps 16 at a time) took 0.44 ms for a cached 16 MiB
	 * segment where populating them up front took 1.05 ms.
	 */
	m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
	{
		int save = errno;

		close(fd);
		return pgbk_error(err, PGBK_ERR_IO, "could not map \"%s\": %s", path, strerror(save));
	}
	close(fd);
	(void) madvise(m, (size_t) st.st_size, MADV_SEQUENTIAL);
	if (shrink_hook() && truncate(path, 0) != 0)
		pgbk_log(PGBK_LOG_WARNING, "test hook could not truncate \"%s\"", path);
	p->map = m;
	p->map_len = (size_t) st.st_size;
	p->data = m;
	p->len = (size_t) st.st_size;
	return PGBK_OK;
}

/*
 * Store the change summary of the segment just pushed.  Only a failure to
 * reach the repository fails the push (it is retried, and the segment is
 * then found identical); anything about the stored summary itself is a
 * warning: it is derived data, and a backup that cannot use it falls back.
 */
static PgbkStatus
store_changes(WalPusher *p, const char *fname, WalPushResult *res, PgbkError *err)
{
	PgbkError  cerr;
	PgbkStatus st;

	if (p->changes == NULL)
		return PGBK_OK;
	pgbk_error_clear(&cerr);
	st = walchg_store(p->repo, &p->params, fname, p->changes, &cerr);
	if (st == PGBK_OK)
	{
		res->has_changes = true;
		res->changes_complete = walchg_complete(p->changes, NULL);
		return PGBK_OK;
	}
	if (st == PGBK_EXISTS || st == PGBK_ERR_INTEGRITY || st == PGBK_ERR_FORMAT ||
	    st == PGBK_ERR_KEY || st == PGBK_ERR_USAGE)
	{
		pgbk_log(PGBK_LOG_WARNING, "%s", cerr.msg);
		return PGBK_OK;
	}
	*err = cerr;
	return st;
}

PgbkStatus
walpush_file(WalPusher *p, const char *path, const char *fname, WalPushResult *res, PgbkError *err)
{
	PgbkStatus st = walpush_prepare(p, path, fname, res, err);

	return st == PGBK_OK ? walpush_store(p, fname, res, err) : st;
}

PgbkStatus
walpush_prepare(WalPusher *p, const char *path, const char *fname, WalPushResult *res,
                PgbkError *err)
{
	WalFileKind kind;
	PgbkStatus  st;

	memset(res, 0, sizeof(*res));
	walchg_free(p->changes);
	p->changes = NULL;
	kind = walname_classify(fname, NULL);
	if (kind == WAL_FILE_OTHER || !layout_wal_key(fname, res->key, sizeof(res->key)))
		return pgbk_error(err, PGBK_ERR_USAGE,
		                  "\"%s\" is not the name of a WAL segment, .partial, .backup or .history "
		                  "file",
		                  fname);

	if ((st = map_or_read(p, path, &res->source_mtime_us, err)) != PGBK_OK)
		return st;
	if (p->map == NULL)
		st = encode_loaded(p, fname, kind, res, err);
	else
	{
		/* a SIGBUS can only come from reading the mapping: the encode */
		struct sigaction sa, old;
		sigjmp_buf       jb;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = walpush_sigbus;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, &old);
		if (sigsetjmp(jb, 1) == 0)
		{
			bus_jump = &jb;
			st = encode_loaded(p, fname, kind, res, err);
		}
		else
		{
			/* the encoder stopped mid-object: drop its state */
			codec_release_cache();
			st = pgbk_error(err, PGBK_ERR_IO,
			                "could not read \"%s\": it shrank or the disk failed while it was "
			                "read (SIGBUS)",
			                path);
		}
		bus_jump = NULL;
		sigaction(SIGBUS, &old, NULL);
		munmap(p->map, p->map_len);
		p->map = NULL;
	}
	return st;
}

PgbkStatus
walpush_store(WalPusher *p, const char *fname, WalPushResult *res, PgbkError *err)
{
	PgbkStatus     st;
	RepoPutOptions opts;

	/* one repository, one database system */
	if (res->has_summary && *p->checked != res->summary.sysid)
	{
		if ((st = repo_descriptor_check(p->repo, &p->params, res->summary.sysid, err)) != PGBK_OK)
		{
			/*
			 * Not yet known to be this system's repository (after a start,
			 * or a new configuration): nothing is archived until the
			 * descriptor can be read.  Say so, rather than only naming
			 * pgbk.repo.  A descriptor that was read and is wrong says so
			 * itself.
			 */
			if (st == PGBK_EXISTS || st == PGBK_ERR_FORMAT || st == PGBK_ERR_INTEGRITY ||
			    st == PGBK_ERR_KEY || st == PGBK_ERR_INTERRUPTED)
				return st;
			return pgbk_error_prefix(err, "archiving waits for the repository descriptor");
		}
		*p->checked = res->summary.sysid;
	}

	memset(&opts, 0, sizeof(opts));
	opts.no_overwrite = true;
	st = repo_put(p->repo, res->key, p->enc.data, p->enc.len, &opts, err);
	if (st == PGBK_EXISTS)
	{
		if ((st = compare_existing(p, res->key, fname, res, err)) != PGBK_OK)
			return st;
		return store_changes(p, fname, res, err);
	}
	if (st != PGBK_OK)
	{
		char quoted[sizeof(res->key) + 2];

		/*
		 * One sentence: when the repository's message names the object
		 * already (s3: 'could not connect ... to put "<prefix>/<key>" in
		 * bucket ...'), a prefix naming it again only repeats it.
		 */
		snprintf(quoted, sizeof(quoted), "%s\"", res->key);
		if (strstr(err->msg, quoted) == NULL)
			pgbk_error_prefix(err, "could not upload \"%s\" to %s", fname, repo_describe(p->repo));
		return st;
	}
	return store_changes(p, fname, res, err);
}

/* The loaded file (p->data): its attributes, then the encoded object in p->enc. */
static PgbkStatus
encode_loaded(WalPusher *p, const char *fname, WalFileKind kind, WalPushResult *res, PgbkError *err)
{
	PgbkStatus  st;
	CodecParams wal_params = p->params;

	res->source_mtime = res->source_mtime_us / 1000000;
	res->raw_size = p->len;
	if (kind == WAL_FILE_SEGMENT || kind == WAL_FILE_PARTIAL)
		wal_params.profile = CODEC_PROFILE_WAL;

	if ((st = build_attrs(p, fname, kind, res, err)) != PGBK_OK)
		return st;

	pgbk_buf_reset(&p->enc);
	if ((st = codec_encode(&wal_params, p->data, p->len, (const char *) p->attrs.data, &p->enc,
	                       res->hash, err)) != PGBK_OK)
		return pgbk_error_prefix(err, "could not encode \"%s\"", fname);
	res->stored_size = p->enc.len;
	return PGBK_OK;
}

PgbkStatus
repo_descriptor_check(Repo *repo, const CodecParams *params, uint64_t sysid, PgbkError *err)
{
	PgbkBuf     stored, raw;
	PgbkStatus  st;
	cJSON      *doc = NULL;
	const char *have;
	char        want[32];
	int         attempt;

	snprintf(want, sizeof(want), "%" PRIu64, sysid);
	pgbk_buf_init(&stored);
	pgbk_buf_init(&raw);
	for (attempt = 0; attempt < 2; attempt++)
	{
		pgbk_buf_reset(&stored);
		pgbk_buf_reset(&raw);
		st = repo_get(repo, LAYOUT_DESCRIPTOR, &stored, err);
		if (st == PGBK_NOT_FOUND)
		{
			char           body[256];
			char           when[32];
			time_t         now = time(NULL);
			struct tm      tm;
			RepoPutOptions opts;

			gmtime_r(&now, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			snprintf(body, sizeof(body),
			         "{\"format\": 1, \"system_identifier\": \"%s\", \"created_at\": \"%s\"}\n",
			         want, when);
			st = codec_encode(params, body, strlen(body), "kind=descriptor\n", &raw, NULL, err);
			if (st != PGBK_OK)
				break;
			memset(&opts, 0, sizeof(opts));
			opts.no_overwrite = true;
			st = repo_put(repo, LAYOUT_DESCRIPTOR, raw.data, raw.len, &opts, err);
			if (st == PGBK_EXISTS)
				continue; /* someone else created it: read theirs */
			break;
		}
		if (st != PGBK_OK)
			break;
		st = codec_decode(params->keyring, stored.data, stored.len, CODEC_LIMIT_SMALL, &raw, NULL,
		                  err);
		if (st != PGBK_OK)
		{
			pgbk_error_prefix(err, "could not read repository descriptor \"%s\"",
			                  LAYOUT_DESCRIPTOR);
			break;
		}
		doc = cJSON_ParseWithLength((const char *) raw.data, raw.len);
		have =
		    doc ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "system_identifier"))
		        : NULL;
		if (have == NULL)
			st = pgbk_error(err, PGBK_ERR_FORMAT, "repository descriptor \"%s\" in %s is malformed",
			                LAYOUT_DESCRIPTOR, repo_describe(repo));
		else if (strcmp(have, want) != 0)
			st = pgbk_error(err, PGBK_EXISTS,
			                "refusing to archive into %s: it belongs to database system %s, "
			                "but this WAL comes from database system %s",
			                repo_describe(repo), have, want);
		else
			st = PGBK_OK;
		cJSON_Delete(doc);
		break;
	}
	pgbk_buf_free(&stored);
	pgbk_buf_free(&raw);
	return st;
}
