-- pgbk extension script, assembled from pg_ext/sql/*.sql in name order.
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
	IF NOT isfinite(taken_at) THEN
		RAISE EXCEPTION 'taken_at must be a point in time, not %', taken_at
			USING ERRCODE = 'invalid_parameter_value';
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
	forgotten_at timestamptz,			-- removed by restic forget (files depth)
	-- The moments the snapshot holds exactly (pgbk-watcher sees every change
	-- event): no change from exact_from (the last change before the scan
	-- began, or when the watcher began to watch) until exact_until (the
	-- first change after the scan began; NULL while none yet).  A change
	-- during the scan (exact_until before scan_ended_at) leaves no such
	-- moment.  exact_from is NULL when unknown (an older watcher, or
	-- directories that could not be watched).  scan_ended_at: when restic
	-- had finished (watcher's clock).
	exact_from timestamptz,
	exact_until timestamptz,
	scan_ended_at timestamptz
);
CREATE INDEX file_snapshot_taken_at_idx ON pgbk.file_snapshot (taken_at);
CREATE INDEX file_snapshot_restore_points_idx ON pgbk.file_snapshot USING gin (restore_points);

-- Snapshot requests for named restore points.  Only bk_create_restore_point
-- (and bk_request_file_snapshot, for pgbk_admin) write here; NOTIFY
-- pgbk_snapshot merely wakes pgbk-watcher, which ignores the payload (anyone
-- may NOTIFY) and reads the unserved requests with
-- bk_file_snapshot_requests(), also each time it (re)connects, so a request
-- made while it was away is served when it comes back.  The snapshot taken
-- for a request is bound to it (served_by), and the plan for a restore
-- point takes that snapshot, never a later one with the same tag.
CREATE TABLE pgbk.file_snapshot_request (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL,
	restore_point_lsn pg_lsn,			-- bk_create_restore_point's record; NULL: a bare request
	requested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	served_by text,						-- the file snapshot taken for it
	served_at timestamptz
);
CREATE INDEX file_snapshot_request_unserved_idx ON pgbk.file_snapshot_request (id)
	WHERE served_by IS NULL;

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

-- The same with the exact span (see pgbk.file_snapshot) and the requests
-- the snapshot serves (bk_file_snapshot_requests' ids), which are bound to
-- it.  Recording it again changes nothing.
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
	duration_seconds double precision,
	exact_from timestamptz,
	exact_until timestamptz,
	scan_ended_at timestamptz,
	request_ids bigint[])
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	inserted boolean;
BEGIN
	INSERT INTO pgbk.file_snapshot AS f (snapshot_id, taken_at, host, paths, tags,
		restore_points, status, trigger, files_new, files_changed, files_unmodified,
		dirs_new, dirs_changed, dirs_unmodified, files_total, bytes_total, bytes_added,
		duration, recorded_at, exact_from, exact_until, scan_ended_at)
	VALUES ($1, $2, $3, $4, coalesce($5, '{}'), coalesce($6, '{}'), $7, $8, $9, $10, $11,
		$12, $13, $14, $15, $16, $17, make_interval(secs => $18), clock_timestamp(),
		$19, $20, $21)
	ON CONFLICT ON CONSTRAINT file_snapshot_pkey DO NOTHING;
	inserted := FOUND;
	IF inserted AND $22 IS NOT NULL THEN
		UPDATE pgbk.file_snapshot_request q SET served_by = $1, served_at = clock_timestamp()
		 WHERE q.id = ANY ($22) AND q.served_by IS NULL;
	END IF;
	RETURN inserted;
END
$$;

-- The first change after a snapshot's scan began, seen after it was
-- recorded (or the moment the watcher stopped watching): the end of its
-- exact span.  Only an open span is closed; returns whether it was.
CREATE FUNCTION bk_record_file_snapshot_until(snapshot_id text, exact_until timestamptz)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	WITH upd AS (
		UPDATE pgbk.file_snapshot s SET exact_until = $2
		 WHERE s.snapshot_id = $1 AND s.exact_until IS NULL
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM upd)
$$;

-- A watcher (re)started: what happened while none watched host's files is
-- unknown, so spans still open end where their scan ended.
CREATE FUNCTION bk_close_file_snapshot_spans(host text)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	WITH upd AS (
		UPDATE pgbk.file_snapshot s
		   SET exact_until = coalesce(s.scan_ended_at, s.taken_at + s.duration)
		 WHERE s.host = $1 AND s.exact_until IS NULL AND s.exact_from IS NOT NULL
		RETURNING 1)
	SELECT count(*) FROM upd
$$;

-- The requests no snapshot serves yet, oldest first (for the watcher).
CREATE FUNCTION bk_file_snapshot_requests()
RETURNS TABLE (id bigint, name text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT q.id, q.name FROM pgbk.file_snapshot_request q
	 WHERE q.served_by IS NULL ORDER BY q.id LIMIT 64
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

-- Ask the watcher for a snapshot now, tagged with name, so that one named
-- restore point covers the database and the files: a row in
-- pgbk.file_snapshot_request (restore_point_lsn: the restore point it is
-- for), and a NOTIFY on channel pgbk_snapshot that wakes the watcher.  A
-- watcher that is not connected serves the request when it connects; with
-- none connected now a WARNING says so (a watcher: a session in this
-- database with application_name pgbk-watcher, the watcher's default, or
-- of a role in pgbk_recorder that is not a superuser).
CREATE FUNCTION pgbk.add_file_snapshot_request(name text, restore_point_lsn pg_lsn)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	req bigint;
BEGIN
	IF name IS NULL OR octet_length(name) NOT BETWEEN 1 AND 63 THEN
		RAISE EXCEPTION 'invalid restore point name for a file snapshot'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The name must have 1 to 63 bytes, like pg_create_restore_point''s.';
	END IF;
	INSERT INTO pgbk.file_snapshot_request (name, restore_point_lsn)
	VALUES (name, restore_point_lsn) RETURNING id INTO req;
	PERFORM pg_notify('pgbk_snapshot', '');
	IF NOT EXISTS (SELECT 1 FROM pg_stat_activity a
				    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
					  AND (a.application_name = 'pgbk-watcher'
						   OR (pg_has_role(a.usesysid, 'pgbk_recorder', 'MEMBER')
							   AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid)))) THEN
		RAISE WARNING 'no pgbk-watcher is connected: the file snapshot for "%" is taken when one connects', name
			USING HINT = 'Until then this name has no files part; the plan (bk_restore_point_named) says how long after the restore point the snapshot was taken.';
	END IF;
	RETURN req;
END
$$;

CREATE FUNCTION bk_request_file_snapshot(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.add_file_snapshot_request(name, NULL);
END
$$;

-- Whether snapshot s holds the files exactly as they were at `target`: no
-- change from its exact_from to target, nor during its scan.
CREATE FUNCTION pgbk.file_snapshot_exact_at(s pgbk.file_snapshot, target timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
	SELECT s.exact_from IS NOT NULL AND s.exact_from <= target
	   AND (s.exact_until IS NULL
			OR (s.exact_until >= coalesce(s.scan_ended_at, s.taken_at + s.duration)
				AND target < s.exact_until))
$$;

-- The file snapshot a restore to `target` uses (for bk_restore_point): one
-- that holds the files exactly as they were at target (one taken at or
-- before it if there are several); else, when files were changing all the
-- while, the newest whose scan had ended by target, so that nothing written
-- after target is in it.  Complete and still in the repository.
CREATE FUNCTION pgbk.file_snapshot_at(target timestamptz, host text DEFAULT NULL)
RETURNS SETOF pgbk.file_snapshot
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	(SELECT * FROM pgbk.file_snapshot s
	  WHERE s.status = 'complete' AND s.forgotten_at IS NULL AND ($2 IS NULL OR s.host = $2)
		AND pgbk.file_snapshot_exact_at(s, $1)
	  ORDER BY s.taken_at <= $1 DESC, s.taken_at DESC, s.recorded_at DESC
	  LIMIT 1)
	UNION ALL
	(SELECT * FROM pgbk.file_snapshot s
	  WHERE s.status = 'complete' AND s.forgotten_at IS NULL AND ($2 IS NULL OR s.host = $2)
		AND coalesce(s.scan_ended_at, s.taken_at + s.duration) <= $1
	  ORDER BY coalesce(s.scan_ended_at, s.taken_at + s.duration) DESC, s.recorded_at DESC
	  LIMIT 1)
	LIMIT 1
$$;

-- The file snapshot taken for a named restore point: the one bound to the
-- request of its first record (bk_create_restore_point), else the earliest
-- complete one tagged with the name taken at or after that record (or at
-- all, for a name not in pgbk.restore_point).  Never a later one: a later
-- snapshot with the same tag holds later files.
CREATE FUNCTION pgbk.file_snapshot_for_restore_point(name text)
RETURNS SETOF pgbk.file_snapshot
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH rp AS (
		SELECT r.lsn, r.at FROM pgbk.restore_point r WHERE r.name = $1 ORDER BY r.lsn LIMIT 1
	), bound AS (
		SELECT q.served_by, q.id FROM pgbk.file_snapshot_request q, rp
		 WHERE q.name = $1 AND q.restore_point_lsn = rp.lsn AND q.served_by IS NOT NULL
	)
	SELECT s.* FROM pgbk.file_snapshot s
	  LEFT JOIN rp ON true
	  LEFT JOIN bound b ON b.served_by = s.snapshot_id
	 WHERE s.restore_points @> ARRAY[$1] AND s.forgotten_at IS NULL AND s.status = 'complete'
	   AND (b.id IS NOT NULL OR rp.at IS NULL OR s.taken_at >= rp.at)
	 ORDER BY b.id IS NULL, s.taken_at, s.recorded_at
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

GRANT SELECT ON pgbk.file_snapshot, pgbk.file_snapshot_request, pgbk.files_status TO pgbk_reader;
GRANT EXECUTE ON FUNCTION
	bk_record_file_snapshot(text, timestamptz, text, text[], text[], text[], text, text,
		bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, double precision),
	bk_record_file_snapshot(text, timestamptz, text, text[], text[], text[], text, text,
		bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, double precision,
		timestamptz, timestamptz, timestamptz, bigint[]),
	bk_record_file_snapshot_until(text, timestamptz),
	bk_close_file_snapshot_spans(text),
	bk_file_snapshot_requests(),
	bk_record_file_snapshots_forgotten(text[]),
	bk_record_file_backup_failure(text, text),
	bk_files_depth()
	TO pgbk_recorder;
GRANT EXECUTE ON FUNCTION bk_files_depth() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_request_file_snapshot(text) TO pgbk_admin;
GRANT EXECUTE ON FUNCTION pgbk.file_snapshot_at(timestamptz, text),
	pgbk.file_snapshot_exact_at(pgbk.file_snapshot, timestamptz),
	pgbk.file_snapshot_for_restore_point(text) TO pgbk_reader;
-- 40_plan: point-in-time planning.  The database's plan is made by the
-- planner `pgbk restore` runs (common/plan/plan.c), over a view of the
-- catalog instead of the repository (pg_ext/plan_sql.c); bk_catalog_sync()
-- keeps the catalog equal to the repository, so the two agree on what is
-- recoverable and why (DESIGN.md invariant 5).  The files and external
-- scopes' plans, and the functions that gather every scope's, are here.

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

-- The timeline chain that leads to timeline `target_tli`, oldest first
-- (bk_verify's WAL check):
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

-- The first segment missing in [from_segno, to_segno] of a timeline, or
-- NULL when every one is archived (bk_verify's WAL check).
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

-- The plan for one database target, kind 'time', 'lsn' or 'name': the plan
-- `pgbk restore --dry-run` makes (common/plan/plan.c over the catalog), its
-- reason and note in the CLI's words.
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
	OUT command text,
	OUT note text)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_plan_database'
LANGUAGE C STABLE;

-- The files scope's plan.  For a time: a snapshot that holds the files
-- exactly as they were then (pgbk.file_snapshot_at), or, when they were
-- changing all the while, the newest whose scan had ended by then, whose
-- reason says how long before the target its files are.  For a restore
-- point name: the snapshot taken for it (pgbk.file_snapshot_for_restore_point),
-- whose reason says how long after the restore point it was taken.
CREATE FUNCTION pgbk.plan_files(target timestamptz, rp_name text)
RETURNS TABLE (
	recoverable boolean, reason text, backup_id text, backup_time timestamptz,
	distance interval, timeline integer, first_wal text, last_wal text, wal_segments bigint,
	bytes_to_fetch bigint, command text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH pick AS (
		SELECT s.* FROM pgbk.file_snapshot_for_restore_point(rp_name) s WHERE rp_name IS NOT NULL
		UNION ALL
		SELECT s.* FROM pgbk.file_snapshot_at(target) s WHERE rp_name IS NULL
	), p AS (
		SELECT pick.*, pgbk.file_snapshot_exact_at(pick, target) AS exact,
			   coalesce(pick.scan_ended_at, pick.taken_at + pick.duration) AS ended
		  FROM pick
	)
	SELECT p.snapshot_id IS NOT NULL,
		   CASE WHEN p.snapshot_id IS NULL THEN
				CASE WHEN rp_name IS NOT NULL
					 THEN format('no complete file snapshot was taken for restore point "%s"', rp_name)
					 ELSE format('no complete file snapshot was taken at or before %s',
								 (target AT TIME ZONE 'UTC')::text || '+00') END
				WHEN rp_name IS NOT NULL AND target IS NOT NULL THEN
				format('file snapshot taken %s s %s the restore point%s',
					   round(abs(extract(epoch FROM p.taken_at - target)), 3),
					   CASE WHEN p.taken_at >= target THEN 'after' ELSE 'before' END,
					   CASE WHEN p.exact THEN '; no file changed between the two' ELSE '' END)
				WHEN rp_name IS NULL AND NOT p.exact THEN
				format('files as of %s, %s s before the target: no file snapshot holds them exactly as they were at the target (files were changing continuously)',
					   to_char(p.ended AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00',
					   round(extract(epoch FROM target - p.ended), 3))
		   END,
		   p.snapshot_id, p.taken_at,
		   CASE WHEN rp_name IS NOT NULL THEN target - p.taken_at
				WHEN p.exact THEN interval '0' ELSE target - p.ended END,
		   NULL::integer, NULL::text, NULL::text,
		   NULL::bigint, p.bytes_total,
		   CASE WHEN p.snapshot_id IS NOT NULL THEN
				format('pgbk restore --config %s --files-to /path/to/new/files --files-snapshot %s',
					   pgbk.config_path(), p.snapshot_id) END
	  FROM (SELECT 1) x LEFT JOIN p ON true
	 WHERE target IS NOT NULL OR rp_name IS NOT NULL
$$;

-- An external scope's plan: the newest registered backup taken at or
-- before the target.  It is restored with the tool that made it, so there
-- is no command; the note its registration gave is text to read, never a
-- command, and goes in the note column.
CREATE FUNCTION pgbk.plan_external(scope_name text, target timestamptz)
RETURNS TABLE (
	recoverable boolean, reason text, backup_id text, backup_time timestamptz,
	distance interval, timeline integer, first_wal text, last_wal text, wal_segments bigint,
	bytes_to_fetch bigint, command text, note text)
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
		   NULL::bigint, NULL::bigint, NULL::text, p.note
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
	command text,		-- the pgbk command that restores it (NULL for external scopes)
	note text);			-- text to read: an external backup's registered note, the
						-- database plan's note (a quiet target, a gap after it)

-- Every scope's plan for one target: kind 'time', 'lsn' or 'name'.  In
-- plpgsql, which keeps the query's plan for the session (a SQL function
-- would plan it again at every call).
CREATE FUNCTION pgbk.plan_all(kind text, target_time timestamptz, target_lsn pg_lsn, target_name text)
RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
	RETURN QUERY
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
			   coalesce(db.backup_bytes, 0) + coalesce(db.wal_bytes, 0), db.command, db.note
		  FROM db WHERE s.mechanism = 'wal'
		UNION ALL
		SELECT f.*, NULL::text FROM pgbk.plan_files(m.at, target_name) f WHERE s.mechanism = 'restic'
		UNION ALL
		SELECT * FROM pgbk.plan_external(s.name, m.at) WHERE s.mechanism = 'external'
	  ) p
	 ORDER BY CASE s.mechanism WHEN 'wal' THEN 0 WHEN 'restic' THEN 1 ELSE 2 END, s.name;
END
$$;

-- Refuse a target no plan can be made for, naming the problem: NULL, an
-- infinite time (no backup "ended before" it, and distances to it do not
-- exist), LSN 0/0, an empty name.  A future moment is a fair question (the
-- plan says what has not been archived yet).
CREATE FUNCTION pgbk.check_target(kind text, target_time timestamptz, target_lsn pg_lsn,
								  target_name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF kind = 'time' THEN
		IF target_time IS NULL THEN
			RAISE EXCEPTION 'the target moment is NULL'
				USING ERRCODE = 'null_value_not_allowed',
					  HINT = 'Give a time such as ''2026-11-25 14:07+00''; bk_restore_window() lists the moments that can be restored.';
		ELSIF NOT isfinite(target_time) THEN
			RAISE EXCEPTION 'the target moment "%" is not a point in time', target_time
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give a finite time such as ''2026-11-25 14:07+00''; bk_restore_window() lists the moments that can be restored.';
		END IF;
	ELSIF kind = 'lsn' THEN
		IF target_lsn IS NULL THEN
			RAISE EXCEPTION 'the target LSN is NULL'
				USING ERRCODE = 'null_value_not_allowed',
					  HINT = 'Give a WAL position such as ''0/3000028''.';
		ELSIF target_lsn = '0/0'::pg_lsn THEN
			RAISE EXCEPTION 'the target LSN 0/0 is not a WAL position'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give a WAL position such as ''0/3000028''.';
		END IF;
	ELSIF kind = 'name' THEN
		IF target_name IS NULL OR target_name = '' THEN
			RAISE EXCEPTION 'the restore point name is %', CASE WHEN target_name IS NULL THEN 'NULL' ELSE 'empty' END
				USING ERRCODE = CASE WHEN target_name IS NULL THEN 'null_value_not_allowed' ELSE 'invalid_parameter_value' END,
					  HINT = 'pgbk.restore_point lists the restore points.';
		END IF;
	ELSE
		RAISE EXCEPTION 'unknown target kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;

-- The plan for `target` across every scope: for each, the backup that
-- brings that moment back (or the nearest one before it), its restore type,
-- how far it is from the target, and for the database the WAL to replay and
-- the pgbk restore command.
CREATE FUNCTION bk_restore_point(target timestamptz) RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.check_target('time', target, NULL, NULL);
	RETURN QUERY SELECT * FROM pgbk.plan_all('time', target, NULL, NULL);
END
$$;

CREATE FUNCTION bk_restore_point_lsn(target pg_lsn) RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.check_target('lsn', NULL, target, NULL);
	RETURN QUERY SELECT * FROM pgbk.plan_all('lsn', NULL, target, NULL);
END
$$;

CREATE FUNCTION bk_restore_point_named(name text) RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.check_target('name', NULL, NULL, name);
	RETURN QUERY SELECT * FROM pgbk.plan_all('name', NULL, NULL, name);
END
$$;

-- The recoverable window, as `pgbk info` shows it (plan_window over the
-- catalog, on the newest timeline): one row per stretch of time that can be
-- restored to; several rows mean gaps in the archived WAL between them.
CREATE FUNCTION bk_restore_window()
RETURNS TABLE (timeline integer, earliest timestamptz, latest timestamptz, first_wal text,
			   last_wal text, backups integer)
AS 'MODULE_PATHNAME', 'bk_restore_window'
LANGUAGE C STABLE;

-- A named restore point that both the database and the watcher honour:
-- pg_create_restore_point + a WAL switch so it is archived promptly, a
-- catalog row, and a request to pgbk-watcher for a file snapshot tagged
-- with the same name, bound to this restore point (30_files.sql).
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
	PERFORM pgbk.add_file_snapshot_request(name, lsn);
	RETURN lsn;
END
$$;

GRANT SELECT ON pgbk.timeline, pgbk.wal_range TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.config_path() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_restore_point(timestamptz), bk_restore_point_lsn(pg_lsn),
	bk_restore_point_named(text), bk_restore_window() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text),
	pgbk.timeline_chain(integer),
	pgbk.first_missing(integer, bigint, bigint), pgbk.lsn_segno(pg_lsn),
	pgbk.segment_name(integer, bigint), pgbk.wal_segment_bytes(),
	pgbk.plan_files(timestamptz, text), pgbk.plan_external(text, timestamptz),
	pgbk.plan_all(text, timestamptz, pg_lsn, text),
	pgbk.check_target(text, timestamptz, pg_lsn, text) TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_create_restore_point(text) TO pgbk_admin;
-- 50_policy: depth (expiry), granularity and depth health per scope, and
-- verification.

-- What retention by depth removes (dry_run, the default, only tells).
-- as_of: the moment to apply the depth windows from (default now); one
-- that has not come (NULL, infinite, over 5 minutes ahead) is refused.
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
		 CASE WHEN h.newest IS NOT NULL AND h.oldest IS NULL THEN
			  CASE WHEN h.mechanism <> 'wal' THEN 'nothing restorable: every snapshot was forgotten'
				   WHEN NOT EXISTS (SELECT FROM pgbk.backup) THEN 'nothing restorable yet: no base backup'
				   ELSE 'nothing restorable yet: no base backup has its WAL archived' END END,
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
-- with a warning.  While archiving works but a backlog drains (more than
-- the file being archived waits, or files that waited through a failure),
-- the archive row stays 'ok' and its detail says it is catching up.
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
		 WHEN a.pending > 1 OR (a.pending > 0 AND a.last_failure_at >= a.oldest_pending_since) THEN
			format('catching up: %s file%s waiting, the oldest (%s) since %s; %s files uploaded, %s already present',
				   a.pending, CASE WHEN a.pending = 1 THEN '' ELSE 's' END, a.oldest_pending_file,
				   date_trunc('second', a.oldest_pending_since), a.files_uploaded, a.files_already_present)
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
