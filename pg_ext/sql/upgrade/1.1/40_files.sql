-- 40_files (issue 10, items 1, 11, 12): snapshot requests kept in a table
-- and bound to the snapshot that serves them; the exact span of each file
-- snapshot; planning by that span.  Same as pg_ext/sql/30_files.sql and
-- 40_plan.sql for a fresh install.

ALTER TABLE pgbk.file_snapshot
	ADD COLUMN exact_from timestamptz,
	ADD COLUMN exact_until timestamptz,
	ADD COLUMN scan_ended_at timestamptz;

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

CREATE OR REPLACE FUNCTION bk_request_file_snapshot(name text)
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
CREATE OR REPLACE FUNCTION pgbk.file_snapshot_at(target timestamptz, host text DEFAULT NULL)
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
CREATE OR REPLACE FUNCTION pgbk.file_snapshot_for_restore_point(name text)
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

-- The files scope's plan.  For a time: a snapshot that holds the files
-- exactly as they were then (pgbk.file_snapshot_at), or, when they were
-- changing all the while, the newest whose scan had ended by then, whose
-- reason says how long before the target its files are.  For a restore
-- point name: the snapshot taken for it (pgbk.file_snapshot_for_restore_point),
-- whose reason says how long after the restore point it was taken.
CREATE OR REPLACE FUNCTION pgbk.plan_files(target timestamptz, rp_name text)
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

-- A named restore point that both the database and the watcher honour:
-- pg_create_restore_point + a WAL switch so it is archived promptly, a
-- catalog row, and a request to pgbk-watcher for a file snapshot tagged
-- with the same name, bound to this restore point (30_files.sql).
CREATE OR REPLACE FUNCTION bk_create_restore_point(name text) RETURNS pg_lsn
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

REVOKE ALL ON FUNCTION
	bk_record_file_snapshot(text, timestamptz, text, text[], text[], text[], text, text,
		bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, double precision,
		timestamptz, timestamptz, timestamptz, bigint[]),
	bk_record_file_snapshot_until(text, timestamptz),
	bk_close_file_snapshot_spans(text),
	bk_file_snapshot_requests(),
	pgbk.add_file_snapshot_request(text, pg_lsn),
	pgbk.file_snapshot_exact_at(pgbk.file_snapshot, timestamptz)
	FROM PUBLIC;
GRANT SELECT ON pgbk.file_snapshot_request TO pgbk_reader;
GRANT EXECUTE ON FUNCTION
	bk_record_file_snapshot(text, timestamptz, text, text[], text[], text[], text, text,
		bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, double precision,
		timestamptz, timestamptz, timestamptz, bigint[]),
	bk_record_file_snapshot_until(text, timestamptz),
	bk_close_file_snapshot_spans(text),
	bk_file_snapshot_requests()
	TO pgbk_recorder;
GRANT EXECUTE ON FUNCTION pgbk.file_snapshot_exact_at(pgbk.file_snapshot, timestamptz)
	TO pgbk_reader;
