-- pgbk extension script (version 1.0, as shipped: never edit), assembled from pg_ext/sql/*.sql.
-- 00_schema: the catalog schema and the roles.

\echo Use "CREATE EXTENSION pgbk" to load this file. \quit

-- Catalog tables live in schema pgbk; the bk_* functions in the extension's
-- schema (public by default) so that `SELECT bk_restore_point(...)` works.
CREATE SCHEMA pgbk;
REVOKE ALL ON SCHEMA pgbk FROM PUBLIC;

-- Roles (cluster-wide, so create them only if missing):
--   pgbk_reader   plans, windows, status
--   pgbk_admin    backups, expiry, policy, verify (and everything reader can)
--   pgbk_recorder what the watcher's login needs: record file snapshots
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_reader') THEN
		CREATE ROLE pgbk_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_admin') THEN
		CREATE ROLE pgbk_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_recorder') THEN
		CREATE ROLE pgbk_recorder NOLOGIN;
	END IF;
END
$$;
GRANT pgbk_reader TO pgbk_admin;
GRANT USAGE ON SCHEMA pgbk TO pgbk_reader, pgbk_recorder;

-- Events worth an operator's attention (refused duplicates, integrity
-- problems, expiry actions).  Never holds secrets.
CREATE TABLE pgbk.event (
	id bigserial PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now(),
	kind text NOT NULL,
	object text,
	message text NOT NULL
);
CREATE INDEX event_at_idx ON pgbk.event (at);
-- 05_scope: the four axes of the seed document as data.  Every kind of
-- backup has a scope (what it protects), a granularity (how precisely it can
-- be restored), a depth (how far back it is kept) and a restore type (in
-- place or to a new place).  pgbk backs up two scopes itself (database: WAL
-- + base backups; files: pgbk-watcher + restic); the others are backed up
-- elsewhere (Hyper-V, Veeam, bucket versioning) and registered here, so every
-- scope is planned in one place.

CREATE TABLE pgbk.scope (
	name text PRIMARY KEY,
	description text NOT NULL,
	mechanism text NOT NULL CHECK (mechanism IN ('wal', 'restic', 'external')),
	granularity interval NOT NULL CHECK (granularity > interval '0'),
	depth interval NOT NULL CHECK (depth > interval '0'),
	restore_type text NOT NULL CHECK (restore_type IN ('in place', 'new place')),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The seed's five scopes.  Where the seed gives no figure (depth of the
-- external scopes) the default is a week: whole-machine snapshots are
-- expensive to keep longer, as the seed says.  Change with bk_set_policy().
INSERT INTO pgbk.scope (name, description, mechanism, granularity, depth, restore_type) VALUES
	('physical_server', 'the physical server (backed up outside pgbk; register its backups)',
	 'external', '1 day', '7 days', 'in place'),
	('virtual_machine', 'the virtual machine (Hyper-V snapshots by the infrastructure team)',
	 'external', '1 day', '7 days', 'in place'),
	('database', 'the Pimcore database (WAL archiving and base backups by pgbk)',
	 'wal', '1 minute', '6 months', 'new place'),
	('files', 'files inside Pimcore (pgbk-watcher and restic)',
	 'restic', '1 minute', '6 months', 'new place'),
	('s3_files', 'files in S3 storage (bucket versioning or another tool; register its backups)',
	 'external', '1 day', '30 days', 'in place');

-- Change a scope's policy.  Arguments left NULL keep their value.  Bad input
-- (unknown scope, a granularity or depth that is not positive, a restore
-- type other than 'in place' / 'new place') is an error that changes
-- nothing.
CREATE FUNCTION bk_set_policy(scope text, granularity interval DEFAULT NULL,
							  depth interval DEFAULT NULL, restore_type text DEFAULT NULL)
RETURNS pgbk.scope
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result pgbk.scope;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pgbk.scope s WHERE s.name = bk_set_policy.scope) THEN
		RAISE EXCEPTION 'unknown scope "%"', bk_set_policy.scope
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Known scopes: ' || (SELECT string_agg(name, ', ' ORDER BY name) FROM pgbk.scope) || '.';
	END IF;
	IF granularity IS NOT NULL AND granularity <= interval '0' THEN
		RAISE EXCEPTION 'granularity must be positive, not %', granularity
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF depth IS NOT NULL AND depth <= interval '0' THEN
		RAISE EXCEPTION 'depth must be positive, not %', depth
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF restore_type IS NOT NULL AND restore_type NOT IN ('in place', 'new place') THEN
		RAISE EXCEPTION 'restore type must be ''in place'' or ''new place'', not ''%''', restore_type
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE pgbk.scope s
	   SET granularity = coalesce(bk_set_policy.granularity, s.granularity),
		   depth = coalesce(bk_set_policy.depth, s.depth),
		   restore_type = coalesce(bk_set_policy.restore_type, s.restore_type),
		   updated_at = now()
	 WHERE s.name = bk_set_policy.scope
	RETURNING * INTO result;
	RETURN result;
END
$$;

-- Backups made outside pgbk (Hyper-V, Veeam, bucket versioning, ...).
CREATE TABLE pgbk.external_backup (
	id bigserial PRIMARY KEY,
	scope text NOT NULL REFERENCES pgbk.scope (name),
	taken_at timestamptz NOT NULL,
	location text NOT NULL,		-- where it is: snapshot name, path, URL (no secrets)
	note text,
	registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX external_backup_scope_taken_idx ON pgbk.external_backup (scope, taken_at);

CREATE FUNCTION bk_register_external_backup(scope text, taken_at timestamptz, location text,
											note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text;
	new_id bigint;
BEGIN
	SELECT s.mechanism INTO m FROM pgbk.scope s WHERE s.name = bk_register_external_backup.scope;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown scope "%"', bk_register_external_backup.scope
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Known scopes: ' || (SELECT string_agg(name, ', ' ORDER BY name) FROM pgbk.scope) || '.';
	END IF;
	IF m <> 'external' THEN
		RAISE EXCEPTION 'scope "%" is backed up by pgbk itself (%), not registered from outside',
			bk_register_external_backup.scope, m
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF taken_at IS NULL OR location IS NULL OR location = '' THEN
		RAISE EXCEPTION 'taken_at and location are required'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF taken_at > now() + interval '5 minutes' THEN
		RAISE EXCEPTION 'taken_at is in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Register a backup once it has been taken.';
	END IF;
	INSERT INTO pgbk.external_backup (scope, taken_at, location, note)
	VALUES (bk_register_external_backup.scope, taken_at, location, note)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

GRANT SELECT ON pgbk.scope, pgbk.external_backup TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_set_policy(text, interval, interval, text),
	bk_register_external_backup(text, timestamptz, text, text) TO pgbk_admin;
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
	system_identifier text
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
-- 20_backup: base backups.

-- One row per complete base backup in the repository (its manifest exists).
-- Filled by the backup worker and by bk_catalog_sync() from the repository.
CREATE TABLE pgbk.backup (
	id text PRIMARY KEY,		-- UTC start time, YYYYMMDDTHHMMSSZ
	label text,
	timeline integer NOT NULL,
	start_lsn pg_lsn NOT NULL,
	stop_lsn pg_lsn NOT NULL,
	start_wal text NOT NULL,
	stop_wal text NOT NULL,
	start_time timestamptz NOT NULL,
	stop_time timestamptz NOT NULL,	-- restorable to any moment after this
	bytes bigint NOT NULL,
	stored_bytes bigint NOT NULL,
	files integer NOT NULL,
	system_identifier text,
	recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backup_stop_time_idx ON pgbk.backup (stop_time);
CREATE INDEX backup_stop_lsn_idx ON pgbk.backup (timeline, stop_lsn);

-- Take a base backup now.  With wait (the default) returns its id once it
-- is complete (files, WAL up to its stop point and manifest all in the
-- repository); without, returns the id at once and the backup runs on.
CREATE FUNCTION bk_base_backup(wait boolean DEFAULT true) RETURNS text
AS 'MODULE_PATHNAME', 'bk_base_backup'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgbk.backup_progress(
	OUT running boolean,
	OUT id text,
	OUT phase text,
	OUT started_at timestamptz,
	OUT bytes_total bigint,
	OUT bytes_done bigint,
	OUT stored_bytes_done bigint,
	OUT files_total integer,
	OUT files_done integer,
	OUT workers integer,
	OUT last_id text,
	OUT last_ok boolean,
	OUT last_error text,
	OUT last_finished_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_backup_progress'
LANGUAGE C STRICT VOLATILE;

-- Progress of the running base backup (and the outcome of the last one).
CREATE VIEW bk_backup_progress AS
SELECT p.running, p.id, p.phase, p.started_at,
	p.bytes_done, p.bytes_total,
	CASE WHEN p.bytes_total > 0
		 THEN round(100.0 * p.bytes_done / p.bytes_total, 1) END AS percent,
	p.files_done, p.files_total, p.stored_bytes_done, p.workers,
	p.last_id, p.last_ok, p.last_error, p.last_finished_at
FROM pgbk.backup_progress() p;

GRANT SELECT ON pgbk.backup TO pgbk_reader;
GRANT SELECT ON bk_backup_progress TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.backup_progress() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_base_backup(boolean) TO pgbk_admin;
-- 30_files: the files scope.  pgbk-watcher takes restic snapshots of the
-- application's file roots and records each one here through
-- bk_record_file_snapshot(); the restic repository stays the source of
-- truth (DESIGN.md invariant 3), this table is its index.

-- One row per restic snapshot, keyed by restic's full snapshot id: a
-- snapshot recorded twice (the watcher's spool re-delivers after a crash)
-- is still one row.
CREATE TABLE pgbk.file_snapshot (
	snapshot_id text PRIMARY KEY CHECK (snapshot_id ~ '^[0-9a-f]{64}$'),
	short_id text GENERATED ALWAYS AS (left(snapshot_id, 8)) STORED,
	taken_at timestamptz NOT NULL,		-- restic's snapshot time (start of its scan)
	host text NOT NULL,					-- restic --host (stable per watcher)
	paths text[] NOT NULL,				-- the roots backed up
	tags text[] NOT NULL DEFAULT '{}',
	restore_points text[] NOT NULL DEFAULT '{}',	-- names it was taken for
	status text NOT NULL CHECK (status IN ('complete', 'incomplete')),
	trigger text NOT NULL,				-- startup, change, safety, request, once
	files_new bigint NOT NULL,
	files_changed bigint NOT NULL,
	files_unmodified bigint NOT NULL,
	dirs_new bigint NOT NULL,
	dirs_changed bigint NOT NULL,
	dirs_unmodified bigint NOT NULL,
	files_total bigint NOT NULL,		-- files in the snapshot
	bytes_total bigint NOT NULL,		-- their size
	bytes_added bigint NOT NULL,		-- what the repository grew by
	duration interval NOT NULL,			-- restic's own run
	recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),	-- delivery order
	forgotten_at timestamptz			-- removed by restic forget (files depth)
);
CREATE INDEX file_snapshot_taken_at_idx ON pgbk.file_snapshot (taken_at);
CREATE INDEX file_snapshot_restore_points_idx ON pgbk.file_snapshot USING gin (restore_points);

-- The watcher's only way in (role pgbk_recorder): record one snapshot.
-- Returns true if it was recorded now, false if it was already there.
CREATE FUNCTION bk_record_file_snapshot(
	snapshot_id text,
	taken_at timestamptz,
	host text,
	paths text[],
	tags text[],
	restore_points text[],
	status text,
	trigger text,
	files_new bigint,
	files_changed bigint,
	files_unmodified bigint,
	dirs_new bigint,
	dirs_changed bigint,
	dirs_unmodified bigint,
	files_total bigint,
	bytes_total bigint,
	bytes_added bigint,
	duration_seconds double precision)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	WITH ins AS (
		INSERT INTO pgbk.file_snapshot (snapshot_id, taken_at, host, paths, tags,
			restore_points, status, trigger, files_new, files_changed, files_unmodified,
			dirs_new, dirs_changed, dirs_unmodified, files_total, bytes_total, bytes_added,
			duration, recorded_at)
		VALUES ($1, $2, $3, $4, coalesce($5, '{}'), coalesce($6, '{}'), $7, $8, $9, $10, $11,
			$12, $13, $14, $15, $16, $17, make_interval(secs => $18), clock_timestamp())
		ON CONFLICT ON CONSTRAINT file_snapshot_pkey DO NOTHING
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM ins)
$$;

-- restic forget removed these snapshots from the repository (files depth).
CREATE FUNCTION bk_record_file_snapshots_forgotten(snapshot_ids text[])
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	WITH upd AS (
		UPDATE pgbk.file_snapshot SET forgotten_at = now()
		WHERE snapshot_id = ANY ($1) AND forgotten_at IS NULL
		RETURNING 1)
	SELECT count(*) FROM upd
$$;

-- A failed restic run (wrong password, unreachable repository, ...), for
-- bk_status and bk_events.  The message never holds secrets: restic's own
-- error line and the watcher's hint.
CREATE FUNCTION bk_record_file_backup_failure(host text, message text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO pgbk.event (kind, object, message)
	VALUES ('files_backup_failed', $1, left($2, 4000))
$$;

-- The files scope's depth (pgbk.scope, changed with bk_set_policy): the
-- watcher forgets restic snapshots older than this.  NULL if there is no
-- files scope; the watcher then uses its files_depth setting.
CREATE FUNCTION bk_files_depth()
RETURNS interval
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (SELECT s.depth FROM pgbk.scope s WHERE s.name = 'files');
END
$$;

-- Ask the watcher(s) for a snapshot now, tagged with name, so that one
-- named restore point covers the database and the files.  The watcher
-- LISTENs on channel pgbk_snapshot; a watcher that is not connected when
-- this commits does not see the request (bk_restore_point then falls back
-- to the snapshot taken at or before the restore point's time).
CREATE FUNCTION bk_request_file_snapshot(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR octet_length(name) NOT BETWEEN 1 AND 63 THEN
		RAISE EXCEPTION 'invalid restore point name for a file snapshot'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The name must have 1 to 63 bytes, like pg_create_restore_point''s.';
	END IF;
	PERFORM pg_notify('pgbk_snapshot', name);
END
$$;

-- The file snapshot a restore to `target` uses: the newest one taken at or
-- before it that is still in the repository (for bk_restore_point).
CREATE FUNCTION pgbk.file_snapshot_at(target timestamptz, host text DEFAULT NULL)
RETURNS SETOF pgbk.file_snapshot
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM pgbk.file_snapshot s
	WHERE s.taken_at <= $1 AND s.forgotten_at IS NULL AND ($2 IS NULL OR s.host = $2)
	ORDER BY s.taken_at DESC, s.recorded_at DESC
	LIMIT 1
$$;

-- The file snapshot taken for a named restore point (newest if the name
-- was used more than once).
CREATE FUNCTION pgbk.file_snapshot_for_restore_point(name text)
RETURNS SETOF pgbk.file_snapshot
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM pgbk.file_snapshot s
	WHERE s.restore_points @> ARRAY[$1] AND s.forgotten_at IS NULL
	ORDER BY s.taken_at DESC, s.recorded_at DESC
	LIMIT 1
$$;

-- The files scope's health, in bk_status's columns (so bk_status can
-- UNION ALL it): failing when a failure was recorded after the newest
-- complete snapshot.
CREATE VIEW pgbk.files_status AS
WITH last_ok AS (
	SELECT max(recorded_at) AS at, max(taken_at) AS taken
	FROM pgbk.file_snapshot WHERE status = 'complete'),
last_any AS (
	SELECT snapshot_id, status, recorded_at FROM pgbk.file_snapshot
	ORDER BY recorded_at DESC LIMIT 1),
fail AS (
	SELECT min(e.at) AS since, max(e.at) AS last_at,
		(array_agg(e.message ORDER BY e.id DESC))[1] AS last_error
	FROM pgbk.event e, last_ok
	WHERE e.kind = 'files_backup_failed' AND (last_ok.at IS NULL OR e.at > last_ok.at))
SELECT 'files'::text AS component,
	CASE WHEN fail.since IS NOT NULL THEN 'failing'
		 WHEN last_ok.at IS NULL OR last_any.status = 'incomplete' THEN 'warning'
		 ELSE 'ok' END AS status,
	(SELECT short_id FROM pgbk.file_snapshot WHERE recorded_at = last_ok.at LIMIT 1)
		AS last_file,
	last_ok.at AS last_success,
	NULL::bigint AS pending,
	now() - last_ok.taken AS lag,
	fail.since AS failing_since,
	fail.last_error,
	CASE WHEN fail.since IS NOT NULL THEN
			format('file snapshots failing since %s', fail.since)
		 WHEN last_ok.at IS NULL THEN 'no file snapshot recorded yet (is pgbk-watcher running?)'
		 WHEN last_any.status = 'incomplete' THEN
			format('the newest file snapshot %s is incomplete: restic could not read some files (see the watcher''s log)', left(last_any.snapshot_id, 8))
		 ELSE format('newest file snapshot taken at %s', last_ok.taken)
	END AS detail
FROM last_ok LEFT JOIN last_any ON true, fail;

GRANT SELECT ON pgbk.file_snapshot, pgbk.files_status TO pgbk_reader;
GRANT EXECUTE ON FUNCTION
	bk_record_file_snapshot(text, timestamptz, text, text[], text[], text[], text, text,
		bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, double precision),
	bk_record_file_snapshots_forgotten(text[]),
	bk_record_file_backup_failure(text, text),
	bk_files_depth()
	TO pgbk_recorder;
GRANT EXECUTE ON FUNCTION bk_files_depth() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_request_file_snapshot(text) TO pgbk_admin;
GRANT EXECUTE ON FUNCTION pgbk.file_snapshot_at(timestamptz, text),
	pgbk.file_snapshot_for_restore_point(text) TO pgbk_reader;
-- 40_plan: point-in-time planning.  Everything here reads the catalog,
-- which bk_catalog_sync() keeps equal to the repository; `pgbk restore`
-- applies the same rules to the repository itself (common/plan.c), so the
-- two agree on what is recoverable and why (DESIGN.md invariant 5).

-- Timeline switches, from the archived history files: timeline `tli` began
-- at `switch_lsn`, branching off `parent_tli`.
CREATE TABLE pgbk.timeline (
	tli integer PRIMARY KEY,
	parent_tli integer NOT NULL,
	switch_lsn pg_lsn NOT NULL,
	created_at timestamptz NOT NULL	-- when the history file was written
);

-- Contiguous runs of archived segments per timeline, kept up to date by a
-- trigger on pgbk.wal, so continuity checks cost an index probe instead of
-- a scan over every segment.
CREATE TABLE pgbk.wal_range (
	timeline integer NOT NULL,
	first_segno bigint NOT NULL,
	last_segno bigint NOT NULL,
	PRIMARY KEY (timeline, first_segno)
);
CREATE UNIQUE INDEX wal_range_last_idx ON pgbk.wal_range (timeline, last_segno);

CREATE FUNCTION pgbk.wal_range_maintain() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s bigint;
	left_r pgbk.wal_range;
	right_r pgbk.wal_range;
	inside pgbk.wal_range;
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF NEW.kind <> 'segment' OR NEW.segno IS NULL THEN
			RETURN NULL;
		END IF;
		s := NEW.segno;
		SELECT * INTO inside FROM pgbk.wal_range
		 WHERE timeline = NEW.timeline AND first_segno <= s AND last_segno >= s;
		IF FOUND THEN
			RETURN NULL;
		END IF;
		SELECT * INTO left_r FROM pgbk.wal_range
		 WHERE timeline = NEW.timeline AND last_segno = s - 1;
		SELECT * INTO right_r FROM pgbk.wal_range
		 WHERE timeline = NEW.timeline AND first_segno = s + 1;
		IF left_r.timeline IS NOT NULL AND right_r.timeline IS NOT NULL THEN
			DELETE FROM pgbk.wal_range WHERE timeline = NEW.timeline AND first_segno = right_r.first_segno;
			UPDATE pgbk.wal_range SET last_segno = right_r.last_segno
			 WHERE timeline = NEW.timeline AND first_segno = left_r.first_segno;
		ELSIF left_r.timeline IS NOT NULL THEN
			UPDATE pgbk.wal_range SET last_segno = s
			 WHERE timeline = NEW.timeline AND first_segno = left_r.first_segno;
		ELSIF right_r.timeline IS NOT NULL THEN
			UPDATE pgbk.wal_range SET first_segno = s
			 WHERE timeline = NEW.timeline AND first_segno = right_r.first_segno;
		ELSE
			INSERT INTO pgbk.wal_range VALUES (NEW.timeline, s, s);
		END IF;
		RETURN NULL;
	ELSE
		IF OLD.kind <> 'segment' OR OLD.segno IS NULL THEN
			RETURN NULL;
		END IF;
		s := OLD.segno;
		SELECT * INTO inside FROM pgbk.wal_range
		 WHERE timeline = OLD.timeline AND first_segno <= s AND last_segno >= s;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
		DELETE FROM pgbk.wal_range WHERE timeline = OLD.timeline AND first_segno = inside.first_segno;
		IF inside.first_segno < s THEN
			INSERT INTO pgbk.wal_range VALUES (OLD.timeline, inside.first_segno, s - 1);
		END IF;
		IF inside.last_segno > s THEN
			INSERT INTO pgbk.wal_range VALUES (OLD.timeline, s + 1, inside.last_segno);
		END IF;
		RETURN NULL;
	END IF;
END
$$;

CREATE TRIGGER wal_range_maintain AFTER INSERT OR DELETE ON pgbk.wal
FOR EACH ROW EXECUTE FUNCTION pgbk.wal_range_maintain();

-- The pgbk.conf path for printed commands.  pgbk.config itself is readable
-- by superusers only; planners (pgbk_reader) need it in the command line.
CREATE FUNCTION pgbk.config_path() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(nullif(current_setting('pgbk.config', true), ''), '/etc/pgbk/pgbk.conf') $$;

-- Bytes per WAL segment of this cluster (16 MiB unless initdb said otherwise).
CREATE FUNCTION pgbk.wal_segment_bytes() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT pg_size_bytes(current_setting('wal_segment_size')) $$;

-- The segment number of an LSN, and a segment's file name.
CREATE FUNCTION pgbk.lsn_segno(lsn pg_lsn) RETURNS bigint
LANGUAGE sql STABLE
AS $$ SELECT ((lsn - '0/0'::pg_lsn) / pgbk.wal_segment_bytes())::bigint $$;

CREATE FUNCTION pgbk.segment_name(tli integer, segno bigint) RETURNS text
LANGUAGE sql STABLE
AS $$
	SELECT upper(lpad(to_hex(tli), 8, '0')
		|| lpad(to_hex(segno / (4294967296 / pgbk.wal_segment_bytes())), 8, '0')
		|| lpad(to_hex(segno % (4294967296 / pgbk.wal_segment_bytes())), 8, '0'))
$$;

-- The timeline chain that leads to timeline `target_tli`, oldest first:
-- on each timeline, the segments [first_segno, last_segno] that recovery
-- reads from it (PostgreSQL reads a segment from the newest timeline that
-- had begun by that segment).
CREATE FUNCTION pgbk.timeline_chain(target_tli integer)
RETURNS TABLE (tli integer, begin_lsn pg_lsn, end_lsn pg_lsn, first_segno bigint, last_segno bigint)
LANGUAGE sql STABLE ROWS 3
SET search_path = pg_catalog, pg_temp
AS $$
	WITH RECURSIVE up(tli, parent, switch_lsn, depth) AS (
		SELECT target_tli, t.parent_tli, t.switch_lsn, 0
		  FROM (SELECT 1) x LEFT JOIN pgbk.timeline t ON t.tli = target_tli
		UNION ALL
		SELECT u.parent, t.parent_tli, t.switch_lsn, u.depth + 1
		  FROM up u LEFT JOIN pgbk.timeline t ON t.tli = u.parent
		 WHERE u.parent IS NOT NULL AND u.depth < 1000
	), chain AS (
		SELECT tli, switch_lsn AS begin_lsn,
			   lag(switch_lsn) OVER (ORDER BY depth) AS end_lsn, depth
		  FROM up
	)
	SELECT tli, begin_lsn, end_lsn,
		   CASE WHEN begin_lsn IS NULL THEN 0 ELSE pgbk.lsn_segno(begin_lsn) END,
		   CASE WHEN end_lsn IS NULL THEN 9223372036854775807 ELSE pgbk.lsn_segno(end_lsn) - 1 END
	  FROM chain ORDER BY depth DESC
$$;

-- Which timeline a restore to `target` ends on: the newest timeline that
-- had begun by then (recovery_target_timeline = 'latest' would follow it).
CREATE FUNCTION pgbk.target_timeline(target timestamptz) RETURNS integer
LANGUAGE sql STABLE
AS $$
	SELECT coalesce(
		(SELECT max(tli) FROM pgbk.timeline WHERE created_at <= target),
		(SELECT min(timeline) FROM pgbk.wal WHERE kind = 'segment'),
		1)
$$;

-- The first segment missing in [from_segno, to_segno] of a timeline, or
-- NULL when every one is archived.
CREATE FUNCTION pgbk.first_missing(tli integer, from_segno bigint, to_segno bigint) RETURNS bigint
LANGUAGE sql STABLE
AS $$
	SELECT CASE
		WHEN from_segno > to_segno THEN NULL
		WHEN r.first_segno IS NULL THEN from_segno
		WHEN r.last_segno >= to_segno THEN NULL
		ELSE r.last_segno + 1 END
	  FROM (SELECT 1) x
	  LEFT JOIN LATERAL (
		SELECT first_segno, last_segno FROM pgbk.wal_range
		 WHERE timeline = tli AND first_segno <= from_segno
		 ORDER BY first_segno DESC LIMIT 1) r ON r.last_segno >= from_segno
$$;

-- The plan for one database target.  kind: 'time', 'lsn', 'name'.
CREATE FUNCTION pgbk.plan_database(kind text, target_time timestamptz, target_lsn pg_lsn,
								   target_name text,
	OUT recoverable boolean,
	OUT reason text,
	OUT backup_id text,
	OUT backup_stop_time timestamptz,
	OUT timeline integer,
	OUT first_wal text,
	OUT last_wal text,
	OUT wal_segments bigint,
	OUT wal_bytes bigint,
	OUT backup_bytes bigint,
	OUT command text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
	b pgbk.backup;
	c record;
	rp pgbk.restore_point;
	tli integer;
	start_seg bigint;
	missing bigint;
	need_from bigint;
	need_to bigint;
	last_seg_tli integer;
	last_seg_no bigint;
	quiet_seg bigint;
	unknown_seg bigint;
	newest timestamptz;
	cfg text := pgbk.config_path();
	target_desc text;
	target_opt text;
BEGIN
	recoverable := false;
	wal_segments := 0;
	wal_bytes := 0;

	-- what is the target, on which timeline
	IF kind = 'name' THEN
		SELECT * INTO rp FROM pgbk.restore_point r WHERE r.name = target_name
		 ORDER BY r.lsn LIMIT 1;
		IF NOT FOUND THEN
			reason := format('restore point "%s" not found in the repository', target_name);
			RETURN;
		END IF;
		tli := rp.timeline;
		target_time := rp.at;
		target_lsn := rp.lsn;
		target_desc := format('restore point "%s"', target_name);
		target_opt := format('--target-name %s', quote_literal(target_name));
	ELSIF kind = 'lsn' THEN
		tli := coalesce((SELECT max(w.timeline) FROM pgbk.wal w
						 WHERE w.kind = 'segment' AND w.start_lsn <= target_lsn AND w.end_lsn > target_lsn),
						(SELECT max(w.timeline) FROM pgbk.wal w WHERE w.kind = 'segment'), 1);
		target_desc := format('LSN %s', target_lsn);
		target_opt := format('--target-lsn %s', target_lsn);
	ELSE
		tli := pgbk.target_timeline(target_time);
		target_desc := (target_time AT TIME ZONE 'UTC')::text || '+00';
		target_opt := format('--target-time %s', quote_literal(to_char(target_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US"+00"')));
	END IF;
	timeline := tli;

	-- the newest backup that ended before the target, on the target's chain
	SELECT bk.* INTO b
	  FROM pgbk.backup bk
	  JOIN pgbk.timeline_chain(tli) ch ON ch.tli = bk.timeline
	   AND (ch.end_lsn IS NULL OR bk.stop_lsn <= ch.end_lsn)
	 WHERE (kind = 'lsn' AND bk.stop_lsn <= target_lsn)
		OR (kind = 'name' AND bk.stop_lsn <= target_lsn)
		OR (kind = 'time' AND bk.stop_time < target_time)
	 ORDER BY bk.stop_time DESC LIMIT 1;
	IF NOT FOUND THEN
		SELECT min(bk.stop_time) INTO newest FROM pgbk.backup bk;
		IF newest IS NULL THEN
			reason := 'no base backup exists in the repository';
		ELSIF kind = 'lsn' THEN
			reason := format('no base backup ended before %s (the oldest ends at %s)', target_desc,
							 (SELECT min(stop_lsn) FROM pgbk.backup));
		ELSE
			reason := format('no base backup ended before %s (the oldest ends at %s)', target_desc,
							 (newest AT TIME ZONE 'UTC')::text || '+00');
		END IF;
		RETURN;
	END IF;
	backup_id := b.id;
	backup_stop_time := b.stop_time;
	backup_bytes := b.stored_bytes;
	start_seg := pgbk.lsn_segno(b.start_lsn);

	-- the last segment needed: the first one on the chain (from the
	-- backup's stop) that holds the record recovery stops at
	IF kind = 'time' THEN
		/*
		 * Commit timestamps run (nearly) in WAL order, so the segment with
		 * the smallest last commit time after the target, found through the
		 * (timeline, last_stop_at) index, is the first one that holds such a
		 * commit, give or take the skew between taking a commit's timestamp
		 * and writing its record: the two segments before it are checked
		 * too.  Index probes only, whatever the catalog's size.
		 */
		FOR c IN SELECT * FROM pgbk.timeline_chain(tli) LOOP
			need_from := greatest(c.first_segno, pgbk.lsn_segno(b.stop_lsn));
			CONTINUE WHEN need_from > c.last_segno;
			SELECT w.segno INTO last_seg_no FROM pgbk.wal w
			 WHERE w.timeline = c.tli AND w.kind = 'segment' AND w.last_stop_at > target_time
			   AND w.segno BETWEEN need_from AND c.last_segno
			 ORDER BY w.last_stop_at LIMIT 1;
			IF FOUND THEN
				SELECT min(w.segno) INTO last_seg_no FROM pgbk.wal w
				 WHERE w.timeline = c.tli AND w.kind = 'segment' AND w.last_stop_at > target_time
				   AND w.segno BETWEEN greatest(need_from, last_seg_no - 2) AND last_seg_no;
				last_seg_tli := c.tli;
				EXIT;
			END IF;
		END LOOP;
		IF last_seg_tli IS NULL THEN
			/*
			 * A quiet database: no commit after the target, but WAL written
			 * after it (an archive_timeout switch, a restore point) proves the
			 * state at the target; `pgbk restore` then stops at that WAL's
			 * last record (common/plan.c, walk_time).  The same rule, never
			 * looser: written_at and archived_at are whole seconds, and any
			 * segment whose tail may be a commit counts as unknown.  The first
			 * segment on the chain that proves it wins, unless one before it
			 * (written within a minute of the target or later) says nothing.
			 */
			FOR c IN SELECT * FROM pgbk.timeline_chain(tli) LOOP
				need_from := greatest(c.first_segno, start_seg);
				CONTINUE WHEN need_from > c.last_segno;
				SELECT w.segno INTO quiet_seg FROM pgbk.wal w
				 WHERE w.timeline = c.tli AND w.kind = 'segment'
				   AND w.segno BETWEEN need_from AND c.last_segno
				   AND w.stop_records IS NOT NULL AND NOT w.tail_may_stop
				   AND ((w.written_at >= target_time + interval '1 second'
						 AND w.last_record_lsn >= b.stop_lsn)
						OR EXISTS (SELECT 1 FROM pgbk.restore_point r
								    WHERE r.wal_name = w.name AND r.lsn >= b.stop_lsn
									  AND r.at >= target_time + interval '1 second'))
				 ORDER BY w.segno LIMIT 1;
				SELECT min(w.segno) INTO unknown_seg FROM pgbk.wal w
				 WHERE w.timeline = c.tli AND w.kind = 'segment'
				   AND w.segno BETWEEN need_from AND coalesce(quiet_seg, c.last_segno)
				   AND (w.stop_records IS NULL OR w.tail_may_stop)
				   AND w.archived_at + interval '1 second' >= target_time - interval '60 seconds';
				EXIT WHEN unknown_seg IS NOT NULL;
				IF quiet_seg IS NOT NULL THEN
					last_seg_no := quiet_seg;
					last_seg_tli := c.tli;
					EXIT;
				END IF;
			END LOOP;
		END IF;
		IF last_seg_tli IS NULL THEN
			SELECT max(w.last_stop_at) INTO newest
			  FROM pgbk.timeline_chain(tli) ch
			  JOIN LATERAL (SELECT max(x.last_stop_at) AS last_stop_at FROM pgbk.wal x
							 WHERE x.timeline = ch.tli AND x.kind = 'segment'
							   AND x.segno BETWEEN ch.first_segno AND ch.last_segno) w ON true;
			reason := format('no transaction committed after %s has been archived yet (the newest archived commit is at %s)',
							 target_desc,
							 coalesce((newest AT TIME ZONE 'UTC')::text || '+00', 'none'));
			RETURN;
		END IF;
	ELSE
		-- the segment holding target_lsn, or the next if no record starts
		-- at or after it there
		FOR c IN SELECT * FROM pgbk.timeline_chain(tli) LOOP
			need_from := greatest(c.first_segno, pgbk.lsn_segno(target_lsn));
			CONTINUE WHEN need_from > c.last_segno;
			SELECT w.segno INTO last_seg_no FROM pgbk.wal w
			 WHERE w.timeline = c.tli AND w.kind = 'segment' AND w.last_record_lsn >= target_lsn
			   AND w.segno BETWEEN need_from AND c.last_segno
			 ORDER BY w.segno LIMIT 1;
			IF FOUND THEN
				last_seg_tli := c.tli;
				EXIT;
			END IF;
		END LOOP;
		IF last_seg_tli IS NULL THEN
			reason := format('the WAL up to %s has not been archived yet', target_desc);
			RETURN;
		END IF;
	END IF;

	-- every segment from the backup's start to there, along the chain
	FOR c IN SELECT * FROM pgbk.timeline_chain(tli) LOOP
		need_from := greatest(c.first_segno, start_seg);
		need_to := least(c.last_segno, last_seg_no);
		CONTINUE WHEN need_from > need_to;
		missing := pgbk.first_missing(c.tli, need_from, need_to);
		IF missing IS NOT NULL THEN
			reason := format('WAL segment %s is missing from the repository (needed to go from backup %s to %s)',
							 pgbk.segment_name(c.tli, missing), b.id, target_desc);
			RETURN;
		END IF;
		IF first_wal IS NULL THEN
			first_wal := pgbk.segment_name(c.tli, need_from);
		END IF;
		last_wal := pgbk.segment_name(c.tli, need_to);
		wal_segments := wal_segments + (need_to - need_from + 1);
		wal_bytes := wal_bytes + coalesce((SELECT sum(w.stored_bytes) FROM pgbk.wal w
			WHERE w.timeline = c.tli AND w.kind = 'segment' AND w.segno BETWEEN need_from AND need_to), 0);
	END LOOP;

	recoverable := true;
	command := format('pgbk restore --config %s --to /path/to/new/datadir %s', cfg, target_opt);
END
$$;

-- The files scope's plan: the newest complete file snapshot taken at or
-- before the target (with a restore point name: the snapshot taken for it).
CREATE FUNCTION pgbk.plan_files(target timestamptz, rp_name text)
RETURNS TABLE (
	recoverable boolean, reason text, backup_id text, backup_time timestamptz,
	distance interval, timeline integer, first_wal text, last_wal text, wal_segments bigint,
	bytes_to_fetch bigint, command text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH pick AS (
		SELECT s.* FROM pgbk.file_snapshot s
		 WHERE s.status = 'complete' AND s.forgotten_at IS NULL
		   AND ((rp_name IS NOT NULL AND rp_name = ANY (s.restore_points))
				OR (rp_name IS NULL AND s.taken_at <= target))
		 ORDER BY s.taken_at DESC LIMIT 1
	)
	SELECT p.snapshot_id IS NOT NULL,
		   CASE WHEN p.snapshot_id IS NULL THEN
				CASE WHEN rp_name IS NOT NULL
					 THEN format('no complete file snapshot was taken for restore point "%s"', rp_name)
					 ELSE format('no complete file snapshot was taken at or before %s',
								 (target AT TIME ZONE 'UTC')::text || '+00') END
		   END,
		   p.snapshot_id, p.taken_at, target - p.taken_at, NULL::integer, NULL::text, NULL::text,
		   NULL::bigint, p.bytes_total,
		   CASE WHEN p.snapshot_id IS NOT NULL THEN
				format('pgbk restore --config %s --files-to /path/to/new/files --files-snapshot %s',
					   pgbk.config_path(), p.snapshot_id) END
	  FROM (SELECT 1) x LEFT JOIN pick p ON true
	 WHERE target IS NOT NULL OR rp_name IS NOT NULL
$$;

-- An external scope's plan: the newest registered backup taken at or
-- before the target.
CREATE FUNCTION pgbk.plan_external(scope_name text, target timestamptz)
RETURNS TABLE (
	recoverable boolean, reason text, backup_id text, backup_time timestamptz,
	distance interval, timeline integer, first_wal text, last_wal text, wal_segments bigint,
	bytes_to_fetch bigint, command text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH pick AS (
		SELECT e.* FROM pgbk.external_backup e
		 WHERE e.scope = scope_name AND e.taken_at <= target
		 ORDER BY e.taken_at DESC LIMIT 1
	)
	SELECT p.id IS NOT NULL,
		   CASE WHEN p.id IS NULL THEN
				format('no backup of scope "%s" was registered at or before %s', scope_name,
					   (target AT TIME ZONE 'UTC')::text || '+00') END,
		   p.location, p.taken_at, target - p.taken_at, NULL::integer, NULL::text, NULL::text,
		   NULL::bigint, NULL::bigint, p.note
	  FROM (SELECT 1) x LEFT JOIN pick p ON true
$$;

-- The columns every scope's plan has.
CREATE TYPE pgbk.plan_row AS (
	scope text,
	mechanism text,
	restore_type text,
	recoverable boolean,
	reason text,
	backup_id text,		-- base backup id, restic snapshot id, or the external location
	backup_time timestamptz,
	distance interval,	-- from that backup to the target (0: exactly the target)
	timeline integer,
	first_wal text,
	last_wal text,
	wal_segments bigint,
	bytes_to_fetch bigint,
	command text);

-- Every scope's plan for one target: kind 'time', 'lsn' or 'name'.
CREATE FUNCTION pgbk.plan_all(kind text, target_time timestamptz, target_lsn pg_lsn, target_name text)
RETURNS SETOF pgbk.plan_row
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
	WITH db AS (SELECT * FROM pgbk.plan_database(kind, target_time, target_lsn, target_name)),
	moment AS (
		SELECT coalesce(target_time,
						(SELECT min(r.at) FROM pgbk.restore_point r WHERE r.name = target_name),
						(SELECT max(w.archived_at) FROM pgbk.wal w
						  WHERE target_lsn IS NOT NULL AND w.kind = 'segment'
							AND w.timeline IN (SELECT DISTINCT r.timeline FROM pgbk.wal_range r)
							AND w.segno = pgbk.lsn_segno(target_lsn))) AS at
	)
	SELECT s.name, s.mechanism, s.restore_type, p.*
	  FROM pgbk.scope s
	  CROSS JOIN moment m
	  CROSS JOIN LATERAL (
		SELECT db.recoverable, db.reason, db.backup_id, db.backup_stop_time,
			   CASE WHEN db.recoverable THEN interval '0' END, db.timeline, db.first_wal,
			   db.last_wal, db.wal_segments,
			   coalesce(db.backup_bytes, 0) + coalesce(db.wal_bytes, 0), db.command
		  FROM db WHERE s.mechanism = 'wal'
		UNION ALL
		SELECT * FROM pgbk.plan_files(m.at, target_name) WHERE s.mechanism = 'restic'
		UNION ALL
		SELECT * FROM pgbk.plan_external(s.name, m.at) WHERE s.mechanism = 'external'
	  ) p
	 ORDER BY CASE s.mechanism WHEN 'wal' THEN 0 WHEN 'restic' THEN 1 ELSE 2 END, s.name
$$;

-- The plan for `target` across every scope: for each, the backup that
-- brings that moment back (or the nearest one before it), its restore type,
-- how far it is from the target, and for the database the WAL to replay and
-- the pgbk restore command.
CREATE FUNCTION bk_restore_point(target timestamptz) RETURNS SETOF pgbk.plan_row
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgbk.plan_all('time', target, NULL, NULL) $$;

CREATE FUNCTION bk_restore_point_lsn(target pg_lsn) RETURNS SETOF pgbk.plan_row
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgbk.plan_all('lsn', NULL, target, NULL) $$;

CREATE FUNCTION bk_restore_point_named(name text) RETURNS SETOF pgbk.plan_row
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgbk.plan_all('name', NULL, NULL, name) $$;

-- The recoverable window: one row per stretch of time that can be
-- restored to, per timeline.  Several rows mean gaps between them.
CREATE FUNCTION bk_restore_window()
RETURNS TABLE (timeline integer, earliest timestamptz, latest timestamptz, first_wal text,
			   last_wal text, backups integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.timeline, min(b.stop_time),
		   -- the newest archived commit, or a little later in a quiet
		   -- database: the last segment, written after it, proves the state
		   -- up to then (plan_database's quiet rule)
		   greatest((SELECT max(w.last_stop_at) FROM pgbk.wal w
					  WHERE w.timeline = r.timeline AND w.kind = 'segment'
					    AND w.segno BETWEEN min(pgbk.lsn_segno(b.stop_lsn)) AND r.last_segno),
					(SELECT w.written_at - interval '1 second' FROM pgbk.wal w
					  WHERE w.timeline = r.timeline AND w.kind = 'segment' AND w.segno = r.last_segno
					    AND w.stop_records IS NOT NULL AND NOT w.tail_may_stop
					    AND w.last_record_lsn >= max(b.stop_lsn))),
		   pgbk.segment_name(r.timeline, r.first_segno), pgbk.segment_name(r.timeline, r.last_segno),
		   count(*)::integer
	  FROM pgbk.wal_range r
	  JOIN pgbk.backup b ON b.timeline = r.timeline
	   AND pgbk.lsn_segno(b.start_lsn) >= r.first_segno
	   AND pgbk.lsn_segno(b.stop_lsn) <= r.last_segno
	 GROUP BY r.timeline, r.first_segno, r.last_segno
	 ORDER BY 2
$$;

-- A named restore point that both the database and the watcher honour:
-- pg_create_restore_point + a WAL switch so it is archived promptly, a
-- catalog row, and a request to pgbk-watcher for a file snapshot tagged
-- with the same name.
CREATE FUNCTION bk_create_restore_point(name text) RETURNS pg_lsn
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	lsn pg_lsn;
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid restore point name "%"', name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use 1 to 63 characters: letters, digits and _ . : @ + - (starting with a letter or digit).';
	END IF;
	lsn := pg_create_restore_point(name);
	PERFORM pg_switch_wal();
	INSERT INTO pgbk.restore_point (name, lsn, at, timeline, wal_name)
	VALUES (name, lsn, clock_timestamp(),
			('x' || substr(pg_walfile_name(lsn), 1, 8))::bit(32)::integer,
			pg_walfile_name(lsn))
	ON CONFLICT DO NOTHING;
	PERFORM @extschema@.bk_request_file_snapshot(name);
	RETURN lsn;
END
$$;

GRANT SELECT ON pgbk.timeline, pgbk.wal_range TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.config_path() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_restore_point(timestamptz), bk_restore_point_lsn(pg_lsn),
	bk_restore_point_named(text), bk_restore_window() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text),
	pgbk.timeline_chain(integer), pgbk.target_timeline(timestamptz),
	pgbk.first_missing(integer, bigint, bigint), pgbk.lsn_segno(pg_lsn),
	pgbk.segment_name(integer, bigint), pgbk.wal_segment_bytes(),
	pgbk.plan_files(timestamptz, text), pgbk.plan_external(text, timestamptz),
	pgbk.plan_all(text, timestamptz, pg_lsn, text) TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_create_restore_point(text) TO pgbk_admin;
-- 50_policy: depth (expiry), granularity and depth health per scope, and
-- verification.

-- What retention by depth removes (dry_run, the default, only tells).
-- as_of: the moment to apply the depth windows from (default now).
-- SECURITY DEFINER (here and for bk_verify, bk_catalog_sync): pgbk_admin
-- may run them but has no write grant on the catalog tables they change.
CREATE FUNCTION bk_expire(dry_run boolean DEFAULT true, as_of timestamptz DEFAULT now())
RETURNS TABLE (kind text, object text, action text, reason text)
AS 'MODULE_PATHNAME', 'bk_expire'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Is what the catalog promises in the repository and intact?  Reads every
-- catalogued object (or the `sample` fraction of them), checks checksums
-- and names, and WAL continuity from every backup.  One row per problem.
CREATE FUNCTION bk_verify(sample real DEFAULT 1.0)
RETURNS TABLE (kind text, object text, problem text)
AS 'MODULE_PATHNAME', 'bk_verify'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Unsaved file changes, as pgbk-watcher sees them: since when files have
-- changed without a snapshot (NULL once a snapshot covers them).  The
-- watcher reports it with bk_record_file_changes().
CREATE TABLE pgbk.files_pending (
	host text PRIMARY KEY,
	changes_pending_since timestamptz,
	reported_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION bk_record_file_changes(host text, pending_since timestamptz)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO pgbk.files_pending AS f (host, changes_pending_since, reported_at)
	VALUES ($1, $2, now())
	ON CONFLICT (host) DO UPDATE
	   SET changes_pending_since = excluded.changes_pending_since, reported_at = now()
$$;

-- Per scope: the granularity it is meant to have and the one it had over
-- the last day, the oldest restorable moment against its depth, and the
-- newest backup; `status` is 'violation' when a target is missed (`detail`
-- says which).
--   database: actual granularity = archive_timeout + the longest a finished
--     WAL segment waited to reach the repository (or the current wait);
--   files: the longest stretch between consecutive complete snapshots, or
--     since the newest one when the watcher reports unsaved changes;
--   external scopes: the time since the newest registered backup.
CREATE VIEW bk_scope_health AS
WITH arch AS (SELECT * FROM pgbk.archive_state()),
db AS (
	SELECT greatest(
			 current_setting('archive_timeout')::interval,
			 coalesce((SELECT max(w.archived_at - w.written_at) FROM pgbk.wal w
					   WHERE w.kind = 'segment' AND w.archived_at > now() - interval '1 day'),
					  interval '0'),
			 coalesce((SELECT now() - a.oldest_pending_since FROM arch a), interval '0'))
			 AS actual,
		   (SELECT max(w.archived_at) FROM pgbk.wal w) AS newest,
		   (SELECT min(earliest) FROM bk_restore_window()) AS oldest
),
files AS (
	SELECT greatest(
			 coalesce((SELECT max(gap) FROM (
						 SELECT s.taken_at - lag(s.taken_at) OVER (ORDER BY s.taken_at) AS gap
						   FROM pgbk.file_snapshot s
						  WHERE s.status = 'complete' AND s.taken_at > now() - interval '1 day') g),
					  interval '0'),
			 coalesce((SELECT now() - min(f.changes_pending_since) FROM pgbk.files_pending f),
					  interval '0')) AS actual,
		   (SELECT max(taken_at) FROM pgbk.file_snapshot WHERE status = 'complete') AS newest,
		   (SELECT min(taken_at) FROM pgbk.file_snapshot
			 WHERE status = 'complete' AND forgotten_at IS NULL) AS oldest
),
ext AS (
	SELECT e.scope, max(e.taken_at) AS newest, min(e.taken_at) AS oldest
	  FROM pgbk.external_backup e GROUP BY e.scope
),
h AS (
	SELECT s.name, s.mechanism, s.granularity, s.depth, s.restore_type,
		   CASE s.mechanism
			 WHEN 'wal' THEN (SELECT actual FROM db)
			 WHEN 'restic' THEN (SELECT actual FROM files)
			 ELSE now() - (SELECT newest FROM ext WHERE ext.scope = s.name) END AS actual,
		   CASE s.mechanism
			 WHEN 'wal' THEN (SELECT newest FROM db)
			 WHEN 'restic' THEN (SELECT newest FROM files)
			 ELSE (SELECT newest FROM ext WHERE ext.scope = s.name) END AS newest,
		   CASE s.mechanism
			 WHEN 'wal' THEN (SELECT oldest FROM db)
			 WHEN 'restic' THEN (SELECT oldest FROM files)
			 ELSE (SELECT oldest FROM ext WHERE ext.scope = s.name) END AS oldest
	  FROM pgbk.scope s
)
SELECT h.name AS scope, h.mechanism, h.restore_type,
	   h.granularity AS granularity_target,
	   h.actual AS granularity_actual,
	   h.newest AS newest_backup,
	   h.depth AS depth_target,
	   h.oldest AS oldest_restorable,
	   CASE WHEN h.newest IS NULL OR h.actual IS NULL OR h.actual > h.granularity
				 OR h.oldest IS NULL OR h.oldest > now() - h.depth
			THEN 'violation' ELSE 'ok' END AS status,
	   concat_ws('; ',
		 CASE WHEN h.newest IS NULL THEN 'no backup recorded' END,
		 CASE WHEN h.actual > h.granularity
			  THEN format('granularity %s is worse than the target %s', date_trunc('second', h.actual), h.granularity) END,
		 CASE WHEN h.mechanism = 'external' AND h.newest IS NOT NULL AND h.actual > h.granularity
			  THEN format('no backup registered within %s', h.granularity) END,
		 CASE WHEN h.oldest IS NOT NULL AND h.oldest > now() - h.depth
			  THEN format('restorable only back to %s, the depth target is %s',
						  date_trunc('second', h.oldest), h.depth) END) AS detail
  FROM h
 ORDER BY CASE h.mechanism WHEN 'wal' THEN 0 WHEN 'restic' THEN 1 ELSE 2 END, h.name;

GRANT SELECT ON bk_scope_health, pgbk.files_pending TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.archive_state() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_record_file_changes(text, timestamptz) TO pgbk_recorder;
GRANT EXECUTE ON FUNCTION bk_expire(boolean, timestamptz), bk_verify(real) TO pgbk_admin;
-- 60_status: bk_status, the one place an operator looks: one row per
-- component (archiving, the granularity setting, base backups, unreadable
-- repository objects, the files scope, scope policy), status 'ok',
-- 'warning' or 'failing'.  The granularity and repository rows appear only
-- with a warning.
CREATE VIEW bk_status AS
WITH a AS (SELECT * FROM pgbk.archive_state())
SELECT 'archive'::text AS component,
	CASE WHEN NOT a.preloaded THEN 'warning'
		 WHEN a.failing_since IS NOT NULL THEN 'failing'
		 WHEN NOT a.active THEN 'warning'
		 ELSE 'ok' END AS status,
	a.last_success_file AS last_file,
	a.last_success_at AS last_success,
	a.pending,
	CASE WHEN a.oldest_pending_since IS NULL THEN interval '0'
		 ELSE now() - a.oldest_pending_since END AS lag,
	a.failing_since,
	a.last_error,
	CASE WHEN NOT a.preloaded THEN 'pgbk is not in shared_preload_libraries'
		 WHEN a.failing_since IS NOT NULL THEN
			format('archiving of %s failing since %s', a.last_failure_file, a.failing_since)
		 WHEN NOT a.active THEN 'archiving through pgbk is not active (archive_mode, archive_library = ''pgbk'' and pgbk.config are needed)'
		 ELSE format('%s files uploaded, %s already present', a.files_uploaded, a.files_already_present)
	END AS detail
FROM a
UNION ALL
SELECT 'granularity', 'warning', NULL, NULL, NULL, NULL, NULL, NULL,
	CASE WHEN current_setting('archive_timeout')::interval = interval '0'
		 THEN format('archive_timeout is 0: a quiet server may keep WAL unarchived for a long time; the database scope''s granularity target is %s s, set archive_timeout to at most that', extract(epoch FROM pgbk.database_granularity())::bigint)
		 ELSE format('archive_timeout (%s s) is above the database scope''s granularity target (%s s): WAL may wait longer than that before it is archived', extract(epoch FROM current_setting('archive_timeout')::interval)::bigint, extract(epoch FROM pgbk.database_granularity())::bigint)
	END
WHERE current_setting('archive_timeout')::interval = interval '0'
   OR current_setting('archive_timeout')::interval > pgbk.database_granularity()
UNION ALL
SELECT 'base_backup',
	CASE WHEN p.last_ok IS FALSE THEN 'failing'
		 WHEN b.newest IS NULL THEN 'warning' ELSE 'ok' END,
	b.newest_id, b.newest, NULL, now() - b.newest, NULL,
	CASE WHEN p.last_ok IS FALSE THEN p.last_error END,
	CASE WHEN p.running THEN format('backup %s running: %s, %s%% of %s', p.id, p.phase,
									 coalesce(p.percent, 0), pg_size_pretty(p.bytes_total))
		 WHEN p.last_ok IS FALSE THEN format('the last base backup (%s) failed', p.last_id)
		 WHEN b.newest IS NULL THEN 'no base backup yet: SELECT bk_base_backup()'
		 ELSE format('%s backups, newest %s', b.n, b.newest_id) END
FROM bk_backup_progress p,
	 (SELECT count(*) AS n, max(stop_time) AS newest,
			 (SELECT id FROM pgbk.backup ORDER BY stop_time DESC LIMIT 1) AS newest_id
		FROM pgbk.backup) b
UNION ALL
SELECT 'repository', 'warning', NULL, NULL, NULL, NULL, NULL,
	(SELECT reason FROM pgbk.unreadable ORDER BY first_seen, key LIMIT 1),
	format('%s repository object%s cannot be read and %s not in the catalog, first %s; SELECT * FROM pgbk.unreadable lists them, pgbk verify checks every object',
		   count(*), CASE WHEN count(*) = 1 THEN '' ELSE 's' END,
		   CASE WHEN count(*) = 1 THEN 'is' ELSE 'are' END,
		   (SELECT key FROM pgbk.unreadable ORDER BY first_seen, key LIMIT 1))
FROM pgbk.unreadable
HAVING count(*) > 0
UNION ALL
SELECT * FROM pgbk.files_status
UNION ALL
SELECT 'policy', CASE WHEN count(*) FILTER (WHERE status = 'violation') > 0 THEN 'warning' ELSE 'ok' END,
	NULL, NULL, NULL, NULL, NULL, NULL,
	coalesce(string_agg(scope || ': ' || detail, '; ' ORDER BY scope) FILTER (WHERE status = 'violation'),
			 'every scope meets its granularity and depth')
FROM bk_scope_health;

GRANT SELECT ON bk_status TO pgbk_reader;
-- 90_privileges: nothing of pgbk is executable by PUBLIC.  Every function
-- the script created loses the default PUBLIC EXECUTE grant; the fragments
-- above grant what each role needs.
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT d.objid::regprocedure
		FROM pg_depend d
		JOIN pg_extension e ON e.oid = d.refobjid
		WHERE d.refclassid = 'pg_extension'::regclass
		  AND d.classid = 'pg_proc'::regclass
		  AND e.extname = 'pgbk'
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$$;
