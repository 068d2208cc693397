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
