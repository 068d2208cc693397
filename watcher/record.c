/*
 * record.c
 *	  Program pgbk-watcher; uses spool.h, timers.h, log.h, common/base and libpq.
 *	  Asynchronous libpq: delivering spool records to the catalog and
 *	  listening for snapshot requests (see record.h).
 *
 * States: DOWN (waiting to reconnect) -> CONNECTING (PQconnectPoll) ->
 * SETUP (find the extension's schema, LISTEN) -> IDLE <-> BUSY (one query
 * in flight).  Any connection error goes back to DOWN; the record that was
 * in flight stays in the spool and is sent again (the SQL side ignores a
 * snapshot it already has).  An SQL error on a record (missing grant,
 * extension too old) keeps the record and retries after RETRY_SQL_MS, so
 * the operator can fix it without losing anything.
 */
#include "record.h"

#include "base/pgbk_time.h"
#include "log.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 10000
#define QUERY_TIMEOUT_MS   60000
#define BACKOFF_MIN_MS     1000
#define BACKOFF_MAX_MS     10000
#define RETRY_SQL_MS       30000
#define FAILURES_MAX       8
#define LISTEN_CHANNEL     "pgbk_snapshot"

typedef enum RState
{
	R_DOWN,
	R_CONNECTING,
	R_SETUP,
	R_IDLE,
	R_BUSY
} RState;

typedef enum BusyKind
{
	BUSY_NONE,
	BUSY_RECORD,
	BUSY_FAILURE,
	BUSY_DEPTH,
	BUSY_CHANGES,
	BUSY_REQUESTS
} BusyKind;

struct Recorder
{
	char           *conninfo;
	char           *host;
	Spool          *spool;
	RecordRequestFn fn;
	void           *fn_arg;
	Timers         *timers; /* the event loop's */
	TimerId         wake;   /* when record_step must run without socket activity */

	PGconn                   *conn;
	RState                    state;
	PostgresPollingStatusType poll;
	int64_t                   next_attempt;
	int64_t                   deadline;
	int                       backoff_ms;
	bool                      unreachable;
	bool                      outage_logged;
	char                     *schema; /* quoted identifier of the extension's schema */
	bool                      schema_found;
	bool                      flush_pending;

	BusyKind busy;
	uint64_t busy_seq;
	char     busy_what[96];
	bool     busy_ok;
	bool     busy_inserted;
	bool     busy_forgotten; /* the record was a SPOOL_FORGOTTEN one */
	bool     busy_span;      /* a SPOOL_UNTIL or SPOOL_CLOSE one */
	char     busy_value[24];
	char     busy_error[512];
	char     busy_sqlstate[6];
	int64_t  retry_sql_at;

	char *failures[FAILURES_MAX];
	int   n_failures;

	int64_t changes_since_us; /* latest unsaved-changes state (0: none) */
	bool    changes_unsent;

	bool    want_requests; /* read bk_file_snapshot_requests() when the spool is empty */
	bool    want_depth;    /* ask for bk_files_depth() when idle */
	bool    depth_known;   /* depth_ms came from the catalog */
	int64_t depth_ms;
	bool    depth_missing_logged;
};

static void
trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (; *s; s++)
	{
		if (*s == '\n')
			*s = ' ';
	}
}

Recorder *
record_new(const char *conninfo, const char *host, Spool *spool, Timers *timers, RecordRequestFn fn,
           void *arg)
{
	Recorder *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->conninfo = strdup(conninfo);
	r->host = strdup(host);
	if (r->conninfo == NULL || r->host == NULL)
	{
		record_free(r);
		return NULL;
	}
	r->spool = spool;
	r->fn = fn;
	r->fn_arg = arg;
	r->timers = timers;
	r->state = R_DOWN;
	r->backoff_ms = BACKOFF_MIN_MS;
	return r;
}

static void
disconnect(Recorder *r)
{
	if (r->conn)
		PQfinish(r->conn);
	r->conn = NULL;
	if (r->schema)
		PQfreemem(r->schema);
	r->schema = NULL;
	r->busy = BUSY_NONE;
	r->flush_pending = false;
}

void
record_free(Recorder *r)
{
	int i;

	if (r == NULL)
		return;
	timers_cancel(r->timers, r->wake);
	disconnect(r);
	for (i = 0; i < r->n_failures; i++)
		free(r->failures[i]);
	free(r->conninfo);
	free(r->host);
	free(r);
}

void
record_configure(Recorder *r, const char *conninfo, const char *host)
{
	char *h = strdup(host);

	if (h)
	{
		free(r->host);
		r->host = h;
	}
	if (strcmp(conninfo, r->conninfo) != 0)
	{
		char *c = strdup(conninfo);

		if (c == NULL)
			return;
		free(r->conninfo);
		r->conninfo = c;
		log_info("conninfo changed: reconnecting to the catalog");
		disconnect(r);
		r->state = R_DOWN;
		r->next_attempt = 0;
		r->backoff_ms = BACKOFF_MIN_MS;
	}
}

/* The connection failed or was lost: back to DOWN, retry later. */
static void
went_down(Recorder *r, int64_t now, const char *what)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", r->conn ? PQerrorMessage(r->conn) : "");
	trim(msg);
	if (!r->outage_logged)
	{
		log_warning("%s the catalog database: %s; %zu record(s) wait in the spool, retrying "
		            "(records are kept until the catalog has them)",
		            what, msg[0] ? msg : "unknown error", spool_pending(r->spool));
		r->outage_logged = true;
	}
	else
		log_debug("%s the catalog database: %s", what, msg);
	disconnect(r);
	r->state = R_DOWN;
	r->unreachable = true;
	r->next_attempt = now + r->backoff_ms;
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Server notices (and libpq's own) go to our log, not bare to stderr. */
static void
notice_to_log(void *arg, const char *message)
{
	char msg[1024];

	(void) arg;
	snprintf(msg, sizeof(msg), "%s", message);
	trim(msg);
	log_info("catalog database: %s", msg);
}

static void
start_connect(Recorder *r, int64_t now)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {r->conninfo, "pgbk-watcher", NULL};

	r->conn = PQconnectStartParams(keys, vals, 1);
	if (r->conn == NULL)
	{
		went_down(r, now, "out of memory connecting to");
		return;
	}
	if (PQstatus(r->conn) == CONNECTION_BAD)
	{
		went_down(r, now, "could not connect to");
		return;
	}
	PQsetNoticeProcessor(r->conn, notice_to_log, NULL);
	r->state = R_CONNECTING;
	r->poll = PGRES_POLLING_WRITING;
	r->deadline = now + CONNECT_TIMEOUT_MS;
}

static void
send_setup(Recorder *r, int64_t now)
{
	PQsetnonblocking(r->conn, 1);
	if (!PQsendQuery(r->conn, "SELECT n.nspname FROM pg_catalog.pg_extension e "
	                          "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
	                          "WHERE e.extname = 'pgbk'; "
	                          "LISTEN " LISTEN_CHANNEL))
	{
		went_down(r, now, "could not set up the connection to");
		return;
	}
	r->schema_found = false;
	r->busy_error[0] = '\0';
	r->state = R_SETUP;
	r->deadline = now + QUERY_TIMEOUT_MS;
	r->flush_pending = PQflush(r->conn) == 1;
}

static void
continue_connect(Recorder *r, int64_t now)
{
	r->poll = PQconnectPoll(r->conn);
	if (r->poll == PGRES_POLLING_FAILED)
		went_down(r, now, "could not connect to");
	else if (r->poll == PGRES_POLLING_OK)
		send_setup(r, now);
}

static void
handle_notifies(Recorder *r)
{
	PGnotify *n;

	while ((n = PQnotifies(r->conn)) != NULL)
	{
		/* only a wake-up call: the requests themselves are in the catalog */
		if (strcmp(n->relname, LISTEN_CHANNEL) == 0)
			r->want_requests = true;
		PQfreemem(n);
	}
}

/* One result of the setup query string. */
static void
setup_result(Recorder *r, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK)
	{
		if (PQntuples(res) == 1)
		{
			const char *nsp = PQgetvalue(res, 0, 0);

			r->schema = PQescapeIdentifier(r->conn, nsp, strlen(nsp));
			r->schema_found = r->schema != NULL;
		}
		return;
	}
	if (st == PGRES_COMMAND_OK)
		return;
	snprintf(r->busy_error, sizeof(r->busy_error), "%s", PQresultErrorMessage(res));
	trim(r->busy_error);
}

static void
finish_setup(Recorder *r, bool ok, int64_t now)
{
	if (!ok || !r->schema_found)
	{
		if (ok)
			log_error("the pgbk extension is not installed in the catalog database (conninfo "
			          "\"%s\"): run CREATE EXTENSION pgbk there; %zu record(s) wait in the "
			          "spool",
			          PQdb(r->conn) ? PQdb(r->conn) : "", spool_pending(r->spool));
		else
			log_error("could not set up the catalog connection: %s", r->busy_error);
		disconnect(r);
		r->state = R_DOWN;
		r->next_attempt = now + BACKOFF_MAX_MS;
		r->outage_logged = true;
		r->unreachable = true;
		return;
	}
	if (r->outage_logged || r->unreachable)
		log_info("connected to the catalog database; %zu record(s) to deliver",
		         spool_pending(r->spool));
	else
		log_debug("connected to the catalog database");
	r->outage_logged = false;
	r->unreachable = false;
	r->backoff_ms = BACKOFF_MIN_MS;
	r->state = R_IDLE;
	r->want_depth = true;
	r->want_requests = true;  /* those made while we were away */
	r->changes_unsent = true; /* (re)state unsaved changes, clearing stale ones */
}

/* Unix microseconds as a timestamptz literal; NULL for 0 (unknown). */
static const char *
fmt_us(int64_t us, char *buf, size_t len)
{
	if (us == 0)
		return NULL;
	return pgbk_time_format(us, PGBK_TIME_SQL, buf, len);
}

static void
array_literal(PgbkBuf *b, char **items, int n)
{
	int i;

	pgbk_buf_append_str(b, "{");
	for (i = 0; i < n; i++)
	{
		const char *p;

		if (i > 0)
			pgbk_buf_append_str(b, ",");
		pgbk_buf_append_str(b, "\"");
		for (p = items[i]; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				pgbk_buf_append(b, "\\", 1);
			pgbk_buf_append(b, p, 1);
		}
		pgbk_buf_append_str(b, "\"");
	}
	pgbk_buf_append_str(b, "}");
}

static bool
send_record(Recorder *r, const SpoolRecord *rec)
{
	char    sql[512];
	char    num[10][24];
	char    dur[32];
	PgbkBuf paths;
	PgbkBuf tags;
	PgbkBuf rps;
	bool    ok;

	pgbk_buf_init(&paths);
	pgbk_buf_init(&tags);
	pgbk_buf_init(&rps);
	if (rec->kind == SPOOL_UNTIL)
	{
		char        until[64];
		const char *params[2] = {rec->id, fmt_us(rec->exact_until_us, until, sizeof(until))};

		snprintf(sql, sizeof(sql),
		         "SELECT %s.bk_record_file_snapshot_until($1::text, $2::timestamptz)", r->schema);
		ok = PQsendQueryParams(r->conn, sql, 2, NULL, params, NULL, NULL, 0) == 1;
		snprintf(r->busy_what, sizeof(r->busy_what), "the end of snapshot %.8s's exact span",
		         rec->id);
	}
	else if (rec->kind == SPOOL_CLOSE)
	{
		const char *params[1] = {rec->host};

		snprintf(sql, sizeof(sql), "SELECT %s.bk_close_file_snapshot_spans($1::text)", r->schema);
		ok = PQsendQueryParams(r->conn, sql, 1, NULL, params, NULL, NULL, 0) == 1;
		snprintf(r->busy_what, sizeof(r->busy_what), "the start of this watcher");
	}
	else if (rec->kind == SPOOL_FORGOTTEN)
	{
		const char *params[1];

		array_literal(&paths, rec->ids, rec->n_ids);
		params[0] = (const char *) paths.data;
		snprintf(sql, sizeof(sql), "SELECT %s.bk_record_file_snapshots_forgotten($1::text[])",
		         r->schema);
		ok = PQsendQueryParams(r->conn, sql, 1, NULL, params, NULL, NULL, 0) == 1;
		snprintf(r->busy_what, sizeof(r->busy_what), "%d forgotten snapshot(s)", rec->n_ids);
	}
	else
	{
		const char *params[22];
		char        from[64];
		char        until[64];
		char        end[64];
		PgbkBuf     reqs;
		int64_t     v[10] = {rec->sum.files_new,
		                     rec->sum.files_changed,
		                     rec->sum.files_unmodified,
		                     rec->sum.dirs_new,
		                     rec->sum.dirs_changed,
		                     rec->sum.dirs_unmodified,
		                     rec->sum.total_files_processed,
		                     rec->sum.total_bytes_processed,
		                     rec->sum.data_added,
		                     0};
		int         i;

		array_literal(&paths, rec->paths, rec->n_paths);
		array_literal(&tags, rec->tags, rec->n_tags);
		array_literal(&rps, rec->restore_points, rec->n_restore_points);
		for (i = 0; i < 9; i++)
			snprintf(num[i], sizeof(num[i]), "%lld", (long long) v[i]);
		snprintf(dur, sizeof(dur), "%.6f", rec->sum.total_duration);
		params[0] = rec->id;
		params[1] = rec->time;
		params[2] = rec->host;
		params[3] = (const char *) paths.data;
		params[4] = (const char *) tags.data;
		params[5] = (const char *) rps.data;
		params[6] = rec->complete ? "complete" : "incomplete";
		params[7] = rec->trigger;
		for (i = 0; i < 9; i++)
			params[8 + i] = num[i];
		params[17] = dur;
		params[18] = fmt_us(rec->exact_from_us, from, sizeof(from));
		params[19] = fmt_us(rec->exact_until_us, until, sizeof(until));
		params[20] = fmt_us(rec->scan_end_us, end, sizeof(end));
		pgbk_buf_init(&reqs);
		pgbk_buf_append_str(&reqs, "{");
		for (i = 0; i < rec->n_request_ids; i++)
		{
			char one[32];

			snprintf(one, sizeof(one), "%s%lld", i > 0 ? "," : "", (long long) rec->request_ids[i]);
			pgbk_buf_append_str(&reqs, one);
		}
		pgbk_buf_append_str(&reqs, "}");
		params[21] = (const char *) reqs.data;
		snprintf(sql, sizeof(sql),
		         "SELECT %s.bk_record_file_snapshot($1::text, $2::timestamptz, $3::text, "
		         "$4::text[], $5::text[], $6::text[], $7::text, $8::text, $9::bigint, "
		         "$10::bigint, $11::bigint, $12::bigint, $13::bigint, $14::bigint, $15::bigint, "
		         "$16::bigint, $17::bigint, $18::float8, $19::timestamptz, $20::timestamptz, "
		         "$21::timestamptz, $22::bigint[])",
		         r->schema);
		ok = PQsendQueryParams(r->conn, sql, 22, NULL, params, NULL, NULL, 0) == 1;
		pgbk_buf_free(&reqs);
		snprintf(r->busy_what, sizeof(r->busy_what), "snapshot %s", rec->sum.short_id);
	}
	pgbk_buf_free(&paths);
	pgbk_buf_free(&tags);
	pgbk_buf_free(&rps);
	return ok;
}

/* In IDLE: send the next failure event, depth query or spool record. */
static void
send_next(Recorder *r, int64_t now)
{
	if (r->want_depth)
	{
		char sql[256];

		r->want_depth = false;
		snprintf(sql, sizeof(sql), "SELECT extract(epoch FROM %s.bk_files_depth())::float8",
		         r->schema);
		if (!PQsendQuery(r->conn, sql))
		{
			went_down(r, now, "lost the connection to");
			return;
		}
		r->busy = BUSY_DEPTH;
	}
	else if (r->n_failures > 0)
	{
		const char *params[2] = {r->host, r->failures[0]};
		char        sql[256];

		snprintf(sql, sizeof(sql), "SELECT %s.bk_record_file_backup_failure($1::text, $2::text)",
		         r->schema);
		if (PQsendQueryParams(r->conn, sql, 2, NULL, params, NULL, NULL, 0) != 1)
		{
			went_down(r, now, "lost the connection to");
			return;
		}
		free(r->failures[0]);
		memmove(&r->failures[0], &r->failures[1], (size_t) (r->n_failures - 1) * sizeof(char *));
		r->n_failures--;
		r->busy = BUSY_FAILURE;
	}
	else if (r->changes_unsent)
	{
		char        since[64];
		const char *params[2] = {r->host, NULL};
		char        sql[256];

		params[1] = fmt_us(r->changes_since_us, since, sizeof(since));
		snprintf(sql, sizeof(sql), "SELECT %s.bk_record_file_changes($1::text, $2::timestamptz)",
		         r->schema);
		if (PQsendQueryParams(r->conn, sql, 2, NULL, params, NULL, NULL, 0) != 1)
		{
			went_down(r, now, "lost the connection to");
			return;
		}
		r->changes_unsent = false;
		r->busy = BUSY_CHANGES;
	}
	else if (r->want_requests && (spool_pending(r->spool) == 0 || now < r->retry_sql_at))
	{
		char sql[256];

		/* after the spool: a request a spooled snapshot serves is marked served then */
		r->want_requests = false;
		snprintf(sql, sizeof(sql), "SELECT id, name FROM %s.bk_file_snapshot_requests()",
		         r->schema);
		if (!PQsendQuery(r->conn, sql))
		{
			went_down(r, now, "lost the connection to");
			return;
		}
		r->busy = BUSY_REQUESTS;
	}
	else
	{
		SpoolRecord rec;
		PgbkError   err;
		PgbkStatus  rc;
		uint64_t    seq;

		if (now < r->retry_sql_at)
			return;
		for (;;)
		{
			if (spool_pending(r->spool) == 0)
				return;
			seq = spool_first(r->spool);
			pgbk_error_clear(&err);
			rc = spool_read(r->spool, seq, &rec, &err);
			if (rc == PGBK_OK)
				break;
			log_error("%s", err.msg);
			if (rc != PGBK_ERR_FORMAT)
			{
				r->retry_sql_at = now + RETRY_SQL_MS;
				return;
			}
		}
		if (!send_record(r, &rec))
		{
			spool_record_free(&rec);
			went_down(r, now, "lost the connection to");
			return;
		}
		r->busy_forgotten = rec.kind == SPOOL_FORGOTTEN;
		r->busy_span = rec.kind == SPOOL_UNTIL || rec.kind == SPOOL_CLOSE;
		spool_record_free(&rec);
		r->busy = BUSY_RECORD;
		r->busy_seq = seq;
	}
	r->busy_ok = false;
	r->busy_inserted = false;
	r->busy_error[0] = '\0';
	r->busy_sqlstate[0] = '\0';
	r->state = R_BUSY;
	r->deadline = now + QUERY_TIMEOUT_MS;
	r->flush_pending = PQflush(r->conn) == 1;
}

static void
busy_result(Recorder *r, PGresult *res)
{
	if (r->busy == BUSY_REQUESTS && PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		int i;

		r->busy_ok = true;
		for (i = 0; i < PQntuples(res) && PQnfields(res) == 2; i++)
		{
			if (r->fn)
				r->fn(strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1), r->fn_arg);
		}
		return;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		r->busy_ok = true;
		r->busy_inserted = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		snprintf(r->busy_value, sizeof(r->busy_value), "%s",
		         PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
		return;
	}
	snprintf(r->busy_error, sizeof(r->busy_error), "%s", PQresultErrorMessage(res));
	trim(r->busy_error);
	snprintf(r->busy_sqlstate, sizeof(r->busy_sqlstate), "%s",
	         PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
	                                                   : "");
}

static void
finish_busy(Recorder *r, int64_t now)
{
	if (r->busy == BUSY_DEPTH)
	{
		double secs;

		if (r->busy_ok && r->busy_value[0] != '\0' && (secs = atof(r->busy_value)) >= 3600)
		{
			if (!r->depth_known || r->depth_ms != (int64_t) (secs * 1000))
				log_info("the files scope's depth in the catalog is %.0f days", secs / 86400);
			r->depth_ms = (int64_t) (secs * 1000);
			r->depth_known = true;
		}
		else
		{
			if (!r->depth_missing_logged)
				log_info("the catalog gives no files scope depth (%s); using files_depth",
				         r->busy_ok ? "none set" : r->busy_error);
			r->depth_missing_logged = true;
			r->depth_known = false;
		}
	}
	else if (r->busy == BUSY_FAILURE)
	{
		if (!r->busy_ok)
			log_warning("could not record the failure in the catalog: %s", r->busy_error);
	}
	else if (r->busy == BUSY_REQUESTS)
	{
		if (!r->busy_ok)
			log_error("could not read the snapshot requests from the catalog: %s%s", r->busy_error,
			          strcmp(r->busy_sqlstate, "42883") == 0
			              ? "; the pgbk extension in the catalog database is too old for this "
			                "watcher (ALTER EXTENSION pgbk UPDATE)"
			              : "");
	}
	else if (r->busy == BUSY_CHANGES)
	{
		if (!r->busy_ok)
			log_debug("could not report unsaved changes to the catalog: %s", r->busy_error);
	}
	else if (r->busy_ok)
	{
		if (r->busy_forgotten)
			log_info("recorded %s in the catalog (%s newly marked forgotten)", r->busy_what,
			         r->busy_value);
		else if (r->busy_span)
			log_debug("recorded %s in the catalog", r->busy_what);
		else if (r->busy_inserted)
			log_info("recorded %s in the catalog", r->busy_what);
		else
			log_info("%s was already in the catalog", r->busy_what);
		spool_remove(r->spool, r->busy_seq);
	}
	else
	{
		const char *hint = "";

		if (strcmp(r->busy_sqlstate, "42501") == 0)
			hint = "; grant role pgbk_recorder to the watcher's login role";
		else if (strcmp(r->busy_sqlstate, "42883") == 0)
			hint = "; the pgbk extension in the catalog database is too old for this watcher";
		log_error("could not record %s in the catalog: %s%s; it stays in the spool and is sent "
		          "again in %d s",
		          r->busy_what, r->busy_error, hint, RETRY_SQL_MS / 1000);
		r->retry_sql_at = now + RETRY_SQL_MS;
	}
	r->busy = BUSY_NONE;
	r->state = R_IDLE;
}

/* Read what the server sent; false if the connection is gone. */
static bool
consume(Recorder *r, short revents, int64_t now)
{
	if ((revents & POLLOUT) && r->flush_pending)
	{
		int f = PQflush(r->conn);

		if (f < 0)
			return false;
		r->flush_pending = f == 1;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR))
	{
		if (!PQconsumeInput(r->conn))
			return false;
		handle_notifies(r);
	}
	while ((r->state == R_SETUP || r->state == R_BUSY) && !PQisBusy(r->conn))
	{
		PGresult *res = PQgetResult(r->conn);

		if (res == NULL)
		{
			if (r->state == R_SETUP)
				finish_setup(r, r->busy_error[0] == '\0', now);
			else
				finish_busy(r, now);
			break;
		}
		if (r->state == R_SETUP)
			setup_result(r, res); /* an error is noted in busy_error */
		else
			busy_result(r, res);
		PQclear(res);
	}
	return r->conn == NULL || PQstatus(r->conn) != CONNECTION_BAD;
}

void
record_step(Recorder *r, short revents, int64_t now)
{
	switch (r->state)
	{
		case R_DOWN:
			if (now >= r->next_attempt)
				start_connect(r, now);
			break;
		case R_CONNECTING:
			if (now >= r->deadline)
			{
				went_down(r, now, "timed out connecting to");
				break;
			}
			if (revents)
				continue_connect(r, now);
			break;
		case R_SETUP:
		case R_BUSY:
		case R_IDLE:
			if (r->state != R_IDLE && now >= r->deadline)
			{
				went_down(r, now, "timed out waiting for");
				break;
			}
			if (!consume(r, revents, now))
			{
				went_down(r, now, "lost the connection to");
				break;
			}
			break;
	}
	if (r->state == R_IDLE && r->conn)
		send_next(r, now);
}

/* When record_step wants to run even without socket activity. */
static int64_t
wakeup(const Recorder *r)
{
	switch (r->state)
	{
		case R_DOWN:
			return r->next_attempt;
		case R_CONNECTING:
		case R_SETUP:
		case R_BUSY:
			return r->deadline;
		case R_IDLE:
			if (spool_pending(r->spool) > 0 && r->retry_sql_at > 0)
				return r->retry_sql_at;
			break;
	}
	return TIMERS_NEVER;
}

int
record_prepare_poll(Recorder *r, short *events)
{
	/*
	 * Re-read right before the loop waits: the spool's length, which the
	 * SQL retry depends on, changes outside this file.
	 */
	if (!timers_set(r->timers, &r->wake, wakeup(r), NULL, NULL))
		log_error("no room for the catalog connection's timer");
	if (r->conn == NULL || r->state == R_DOWN)
		return -1;
	if (r->state == R_CONNECTING)
		*events = r->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	else
		*events = POLLIN | (r->flush_pending ? POLLOUT : 0);
	return PQsocket(r->conn);
}

void
record_kick(Recorder *r)
{
	if (r->state == R_DOWN)
		r->next_attempt = 0;
}

void
record_failure(Recorder *r, const char *message)
{
	char *m = strdup(message);

	if (m == NULL)
		return;
	if (r->n_failures == FAILURES_MAX)
	{
		/* keep the newest: they say what is failing now */
		free(r->failures[0]);
		memmove(&r->failures[0], &r->failures[1], (FAILURES_MAX - 1) * sizeof(char *));
		r->n_failures--;
	}
	r->failures[r->n_failures++] = m;
}

bool
record_files_depth(const Recorder *r, int64_t *ms)
{
	if (r->depth_known)
		*ms = r->depth_ms;
	return r->depth_known;
}

void
record_refresh_depth(Recorder *r)
{
	r->want_depth = true;
}

void
record_changes(Recorder *r, int64_t since_us)
{
	if (since_us == r->changes_since_us && !r->changes_unsent)
		return;
	if (since_us != r->changes_since_us)
		r->changes_unsent = true;
	r->changes_since_us = since_us;
}

bool
record_connected(const Recorder *r)
{
	return r->state == R_IDLE || r->state == R_BUSY;
}

bool
record_idle(const Recorder *r)
{
	return spool_pending(r->spool) == 0 && r->n_failures == 0 && r->busy == BUSY_NONE;
}

bool
record_unreachable(const Recorder *r)
{
	return r->unreachable;
}
