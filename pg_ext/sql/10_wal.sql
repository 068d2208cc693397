-- 10_wal: the WAL catalog and archiving status.

-- One row per file in the repository's wal/ area.  Filled by the scheduler
-- worker from the repository (the source of truth, DESIGN.md invariant 3):
-- bk_catalog_sync() rebuilds it at any time.
CREATE TABLE pgbk.wal (
	name text PRIMARY KEY,
	timeline integer NOT NULL,
	kind text NOT NULL CHECK (kind IN ('segment', 'partial', 'backup', 'history')),
	segno bigint,				-- segment number (segment, partial, backup)
	start_lsn pg_lsn,			-- first byte the segment covers
	end_lsn pg_lsn,				-- first byte after it
	stored_bytes bigint NOT NULL,
	raw_bytes bigint,
	content_hash text,			-- XXH3-128 of the original file, hex
	archived_at timestamptz NOT NULL,	-- when the repository received it
	written_at timestamptz,		-- last write of the file on the server
	first_stop_at timestamptz,	-- first commit/abort timestamp in it
	last_stop_at timestamptz,	-- last commit/abort timestamp in it
	stop_records integer,		-- commit/abort records (recovery_target_time stops)
	last_record_lsn pg_lsn,		-- start of the last record beginning in it
	tail_may_stop boolean,		-- last record continues and may be a commit/abort
	system_identifier text,
	summary text				-- the walscan summary ("wal.*" attribute lines) the
								-- restore planner reads, as in the object's header
);
CREATE INDEX wal_timeline_segno_idx ON pgbk.wal (timeline, segno) INCLUDE (stored_bytes, last_stop_at);
CREATE INDEX wal_last_stop_idx ON pgbk.wal (timeline, last_stop_at);

-- Repository objects the catalog sync could not read (a damaged header, a
-- key the key file lacks): they have no row above, so bk_status shows them
-- here.  A row goes when the object reads again or, at the next full sync,
-- when it is no longer in the repository.
CREATE TABLE pgbk.unreadable (
	key text PRIMARY KEY,
	first_seen timestamptz NOT NULL DEFAULT now(),
	last_seen timestamptz NOT NULL DEFAULT now(),
	reason text NOT NULL
);

-- Named restore points (pg_create_restore_point records), from archived
-- WAL and from bk_create_restore_point().  lsn is where the record is.
CREATE TABLE pgbk.restore_point (
	name text NOT NULL,
	lsn pg_lsn NOT NULL,
	at timestamptz NOT NULL,
	timeline integer NOT NULL,
	wal_name text NOT NULL,		-- the segment holding the record
	PRIMARY KEY (name, wal_name)
);

-- Archiving state from shared memory (uploaders, archive module) plus the
-- pending .ready files, for bk_status.
CREATE FUNCTION pgbk.archive_state(
	OUT preloaded boolean,
	OUT active boolean,
	OUT last_success_at timestamptz,
	OUT last_success_file text,
	OUT failing_since timestamptz,
	OUT last_failure_at timestamptz,
	OUT last_failure_file text,
	OUT last_error text,
	OUT pending bigint,
	OUT oldest_pending_file text,
	OUT oldest_pending_since timestamptz,
	OUT files_uploaded bigint,
	OUT files_already_present bigint,
	OUT duplicates_refused bigint,
	OUT raw_bytes_uploaded bigint,
	OUT stored_bytes_uploaded bigint,
	OUT callback_fast bigint,
	OUT callback_waited bigint,
	OUT callback_self bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_archive_state'
LANGUAGE C STRICT VOLATILE;

-- Durations (microseconds) of the most recent archive callbacks, oldest
-- first: how long PostgreSQL's archiver waited for pgbk per file.
CREATE FUNCTION pgbk.callback_times(OUT seq bigint, OUT us bigint) RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbk_callback_times'
LANGUAGE C STRICT VOLATILE;

-- Granularity target of the database scope (see 05_scope.sql).
CREATE FUNCTION pgbk.database_granularity() RETURNS interval
LANGUAGE sql STABLE
AS $$ SELECT coalesce((SELECT granularity FROM pgbk.scope WHERE name = 'database'), interval '1 minute') $$;

-- Refused duplicates and other events, newest first, for bk_status readers.
CREATE VIEW bk_events AS
SELECT id, at, kind, object, message FROM pgbk.event ORDER BY id DESC;

-- Rebuild (full = true) or catch up (full = false) the WAL catalog from the
-- repository.  Returns the number of rows added.  SECURITY DEFINER:
-- pgbk_admin runs it without write grants on the catalog tables.
CREATE FUNCTION bk_catalog_sync(full boolean DEFAULT true) RETURNS bigint
AS 'MODULE_PATHNAME', 'bk_catalog_sync'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

GRANT SELECT ON pgbk.wal, pgbk.restore_point, pgbk.event, pgbk.unreadable TO pgbk_reader;
GRANT SELECT ON bk_events TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.archive_state(), pgbk.database_granularity(),
	pgbk.callback_times() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_catalog_sync(boolean) TO pgbk_admin;
