/*
 * walname.c
 *	  Room base; uses pgbk_common and libc only.
 *	  WAL file names, segment numbers, LSNs and timeline history files
 *	  (see walname.h).
 *
 * Everything here is a pure function of its arguments except the history
 * parser, which allocates the entry array it returns.
 */
#include "base/walname.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* XLogSegmentsPerXLogId: segments per 4 GiB "log id" */
static uint64_t
segs_per_id(uint32_t segsz)
{
	return UINT64_C(0x100000000) / segsz;
}

bool
walname_segsz_is_valid(uint32_t segsz)
{
	return segsz >= WAL_SEGSZ_MIN && segsz <= WAL_SEGSZ_MAX && (segsz & (segsz - 1)) == 0;
}

WalSegNo
walname_lsn_to_segno(WalLsn lsn, uint32_t segsz)
{
	return lsn / segsz;
}

WalSegNo
walname_end_lsn_to_segno(WalLsn lsn, uint32_t segsz)
{
	return (lsn - 1) / segsz;
}

WalLsn
walname_segno_to_lsn(WalSegNo segno, uint32_t segsz)
{
	return segno * segsz;
}

uint32_t
walname_lsn_offset(WalLsn lsn, uint32_t segsz)
{
	return (uint32_t) (lsn & ((WalLsn) segsz - 1));
}

char *
walname_format_segment(char *buf, uint32_t tli, WalSegNo segno, uint32_t segsz)
{
	snprintf(buf, WALNAME_BUFLEN, "%08X%08X%08X", tli, (uint32_t) (segno / segs_per_id(segsz)),
	         (uint32_t) (segno % segs_per_id(segsz)));
	return buf;
}

char *
walname_format_partial(char *buf, uint32_t tli, WalSegNo segno, uint32_t segsz)
{
	snprintf(buf, WALNAME_BUFLEN, "%08X%08X%08X.partial", tli,
	         (uint32_t) (segno / segs_per_id(segsz)), (uint32_t) (segno % segs_per_id(segsz)));
	return buf;
}

char *
walname_format_history(char *buf, uint32_t tli)
{
	snprintf(buf, WALNAME_BUFLEN, "%08X.history", tli);
	return buf;
}

char *
walname_format_backup(char *buf, uint32_t tli, WalLsn start_lsn, uint32_t segsz)
{
	WalSegNo segno = walname_lsn_to_segno(start_lsn, segsz);

	snprintf(buf, WALNAME_BUFLEN, "%08X%08X%08X.%08X.backup", tli,
	         (uint32_t) (segno / segs_per_id(segsz)), (uint32_t) (segno % segs_per_id(segsz)),
	         walname_lsn_offset(start_lsn, segsz));
	return buf;
}

/* Upper-case hex digit value, or -1 (PostgreSQL names use "%08X"). */
static int
upper_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 8 upper-case hex digits at s into *out. */
static bool
hex8(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	int      i;

	for (i = 0; i < 8; i++)
	{
		int d = upper_hex(s[i]);

		if (d < 0)
			return false;
		v = (v << 4) | (uint32_t) d;
	}
	*out = v;
	return true;
}

WalFileKind
walname_classify(const char *name, WalFileName *out)
{
	WalFileName f;
	size_t      len = strlen(name);

	memset(&f, 0, sizeof(f));
	f.kind = WAL_FILE_OTHER;

	if (len == 8 + strlen(".history") && strcmp(name + 8, ".history") == 0)
	{
		if (hex8(name, &f.tli) && f.tli != 0)
			f.kind = WAL_FILE_HISTORY;
	}
	else if (len >= WALNAME_SEGMENT_LEN && hex8(name, &f.tli) && hex8(name + 8, &f.log) &&
	         hex8(name + 16, &f.seg) && f.tli != 0)
	{
		const char *rest = name + WALNAME_SEGMENT_LEN;

		if (*rest == '\0')
			f.kind = WAL_FILE_SEGMENT;
		else if (strcmp(rest, ".partial") == 0)
			f.kind = WAL_FILE_PARTIAL;
		else if (len == WALNAME_SEGMENT_LEN + 1 + 8 + strlen(".backup") && rest[0] == '.' &&
		         hex8(rest + 1, &f.offset) && strcmp(rest + 9, ".backup") == 0)
			f.kind = WAL_FILE_BACKUP;
	}

	if (f.kind == WAL_FILE_OTHER)
		memset(&f, 0, sizeof(f));
	if (out)
		*out = f;
	return f.kind;
}

PgbkStatus
walname_file_segno(const WalFileName *f, uint32_t segsz, WalSegNo *segno, PgbkError *err)
{
	if (!walname_segsz_is_valid(segsz))
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid WAL segment size %u", segsz);
	if (f->kind != WAL_FILE_SEGMENT && f->kind != WAL_FILE_PARTIAL && f->kind != WAL_FILE_BACKUP)
		return pgbk_error(err, PGBK_ERR_FORMAT, "file name does not name a WAL segment");
	if ((uint64_t) f->seg >= segs_per_id(segsz))
		return pgbk_error(err, PGBK_ERR_FORMAT,
		                  "segment part %08X of the file name is out of range for %u-byte segments",
		                  f->seg, segsz);
	if (f->kind == WAL_FILE_BACKUP && f->offset >= segsz)
		return pgbk_error(
		    err, PGBK_ERR_FORMAT,
		    "backup offset %08X of the file name is out of range for %u-byte segments", f->offset,
		    segsz);
	*segno = (WalSegNo) f->log * segs_per_id(segsz) + f->seg;
	return PGBK_OK;
}

PgbkStatus
walname_parse_segment(const char *name, uint32_t segsz, uint32_t *tli, WalSegNo *segno,
                      PgbkError *err)
{
	WalFileName f;

	if (walname_classify(name, &f) != WAL_FILE_SEGMENT)
		return pgbk_error(err, PGBK_ERR_FORMAT, "\"%s\" is not a WAL segment file name", name);
	if (walname_file_segno(&f, segsz, segno, err) != PGBK_OK)
		return pgbk_error_prefix(err, "invalid WAL segment file name \"%s\"", name);
	*tli = f.tli;
	return PGBK_OK;
}

/* 1 to 8 hex digits (either case) at *sp, advancing *sp. */
static bool
lsn_half(const char **sp, uint32_t *out)
{
	const char *s = *sp;
	uint32_t    v = 0;
	int         n = 0;

	for (;; s++, n++)
	{
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (n == 8)
			return false;
		v = (v << 4) | (uint32_t) d;
	}
	if (n == 0)
		return false;
	*sp = s;
	*out = v;
	return true;
}

bool
walname_parse_lsn(const char *s, WalLsn *out)
{
	uint32_t hi;
	uint32_t lo;

	if (s == NULL || !lsn_half(&s, &hi) || *s++ != '/' || !lsn_half(&s, &lo) || *s != '\0')
		return false;
	*out = ((WalLsn) hi << 32) | lo;
	return true;
}

char *
walname_format_lsn(char *buf, WalLsn lsn)
{
	snprintf(buf, WALNAME_LSN_BUFLEN, "%X/%X", (uint32_t) (lsn >> 32), (uint32_t) lsn);
	return buf;
}

void
walname_history_free(WalHistory *h)
{
	int i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n; i++)
		free(h->entries[i].reason);
	free(h->entries);
	h->entries = NULL;
	h->n = 0;
}

/* Append an entry; takes ownership of reason (freed on failure). */
static bool
history_add(WalHistory *h, int *cap, uint32_t tli, WalLsn begin, WalLsn end, char *reason)
{
	if (reason == NULL)
		return false;
	if (h->n == *cap)
	{
		int              ncap = *cap ? *cap * 2 : 8;
		WalHistoryEntry *ne = realloc(h->entries, sizeof(WalHistoryEntry) * (size_t) ncap);

		if (ne == NULL)
		{
			free(reason);
			return false;
		}
		h->entries = ne;
		*cap = ncap;
	}
	h->entries[h->n].tli = tli;
	h->entries[h->n].begin = begin;
	h->entries[h->n].end = end;
	h->entries[h->n].reason = reason;
	h->n++;
	return true;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/*
 * Parse one non-comment line of a history file: a decimal timeline ID,
 * whitespace, an LSN, then optionally whitespace and a free-form reason
 * (what sscanf(line, "%u\t%X/%X") in readTimeLineHistory accepts, a little
 * stricter about the number).  Returns a message on error.
 */
static const char *
history_line(const char *line, size_t len, uint32_t *tli, WalLsn *lsn, const char **reason,
             size_t *reason_len)
{
	const char *p = line;
	const char *end = line + len;
	uint64_t    v = 0;
	char        lsnbuf[WALNAME_LSN_BUFLEN];
	size_t      n = 0;

	while (p < end && is_space(*p))
		p++;
	if (p == end || *p < '0' || *p > '9')
		return "expected a numeric timeline ID";
	while (p < end && *p >= '0' && *p <= '9')
	{
		v = v * 10 + (uint64_t) (*p - '0');
		if (v > UINT32_MAX)
			return "timeline ID is out of range";
		p++;
	}
	*tli = (uint32_t) v;
	while (p < end && is_space(*p))
		p++;
	while (p < end && !is_space(*p) && n < sizeof(lsnbuf) - 1)
		lsnbuf[n++] = *p++;
	lsnbuf[n] = '\0';
	if (n == 0 || (p < end && !is_space(*p)) || !walname_parse_lsn(lsnbuf, lsn))
		return "expected a write-ahead log switchpoint location";
	while (p < end && is_space(*p))
		p++;
	while (end > p && is_space(end[-1]))
		end--;
	*reason = p;
	*reason_len = (size_t) (end - p);
	return NULL;
}

PgbkStatus
walname_parse_history(const char *text, size_t len, uint32_t tli, WalHistory *out, PgbkError *err)
{
	WalHistory  h = {0, NULL};
	int         cap = 0;
	const char *p = text;
	const char *end = text + len;
	WalLsn      prev_end = WAL_INVALID_LSN;
	uint32_t    last_tli = 0;
	int         lineno = 0;

	if (tli == 0)
		return pgbk_error(err, PGBK_ERR_USAGE, "invalid timeline ID 0");

	while (p < end)
	{
		const char *nl = memchr(p, '\n', (size_t) (end - p));
		const char *eol = nl ? nl : end;
		const char *q = p;
		const char *msg;
		const char *reason;
		size_t      reason_len;
		uint32_t    line_tli;
		WalLsn      switchpoint;
		char       *r;

		lineno++;
		while (q < eol && is_space(*q))
			q++;
		if (q == eol || *q == '#')
		{
			p = nl ? nl + 1 : end;
			continue;
		}
		if (memchr(p, '\0', (size_t) (eol - p)) != NULL)
			msg = "line contains a NUL byte";
		else
			msg =
			    history_line(p, (size_t) (eol - p), &line_tli, &switchpoint, &reason, &reason_len);
		if (msg == NULL && h.n > 0 && line_tli <= last_tli)
			msg = "timeline IDs must be in increasing sequence";
		if (msg == NULL && line_tli >= tli)
			msg = "timeline IDs must be less than the child timeline's ID";
		if (msg)
		{
			walname_history_free(&h);
			return pgbk_error(err, PGBK_ERR_FORMAT,
			                  "syntax error in history file of timeline %u, line %d: %s", tli,
			                  lineno, msg);
		}
		r = malloc(reason_len + 1);
		if (r)
		{
			memcpy(r, reason, reason_len);
			r[reason_len] = '\0';
		}
		if (!history_add(&h, &cap, line_tli, prev_end, switchpoint, r))
		{
			walname_history_free(&h);
			return pgbk_error(err, PGBK_ERR, "out of memory");
		}
		prev_end = switchpoint;
		last_tli = line_tli;
		p = nl ? nl + 1 : end;
	}

	/* the file's own timeline, still open */
	if (!history_add(&h, &cap, tli, prev_end, WAL_INVALID_LSN, pgbk_strdup("")))
	{
		walname_history_free(&h);
		return pgbk_error(err, PGBK_ERR, "out of memory");
	}
	*out = h;
	return PGBK_OK;
}

uint32_t
walname_history_tli_at(const WalHistory *h, WalLsn lsn)
{
	int i;

	/* newest first, like tliOfPointInHistory's list */
	for (i = h->n - 1; i >= 0; i--)
	{
		const WalHistoryEntry *e = &h->entries[i];

		if ((e->begin == WAL_INVALID_LSN || e->begin <= lsn) &&
		    (e->end == WAL_INVALID_LSN || lsn < e->end))
			return e->tli;
	}
	return 0;
}

const WalHistoryEntry *
walname_history_find(const WalHistory *h, uint32_t tli)
{
	int i;

	for (i = 0; i < h->n; i++)
	{
		if (h->entries[i].tli == tli)
			return &h->entries[i];
	}
	return NULL;
}
