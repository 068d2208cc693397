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
