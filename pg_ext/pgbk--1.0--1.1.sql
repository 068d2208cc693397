-- pgbk 1.0 -> 1.1 upgrade script, assembled from pg_ext/sql/upgrade/1.1/*.sql
-- in name order.  Each fragment makes, for an existing 1.0 catalog, the same
-- change its counterpart in pg_ext/sql/*.sql makes for a fresh install;
-- t/006_extension_upgrade.pl compares the two catalogs object by object.

\echo Use "ALTER EXTENSION pgbk UPDATE TO '1.1'" to load this file. \quit
-- 30_status (issue 10, items 13 and 18): bk_scope_health gives a reason
-- when nothing is restorable yet (it left the reason empty), and bk_status's
-- archive row says "catching up" while a backlog drains.  Same columns, so
-- the views are replaced in place and keep their grants (SELECT to
-- pgbk_reader, nothing to PUBLIC).
CREATE OR REPLACE VIEW bk_scope_health AS
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

CREATE OR REPLACE VIEW bk_status AS
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
-- 60_plan (issue 10, items 8, 9 and 15).
--
-- Item 8: a plan row has a note column; an external backup's registered
-- note goes there, never in command (which is NULL for external scopes).
-- Item 9: targets no plan can be made for (NULL, infinite, LSN 0/0, an
-- empty name) and a registration at an infinite time are refused with a
-- clear error (bk_expire's as_of is checked in C).
-- Item 15: the quiet-database rule has no 1-second margin: written_at is
-- kept to the microsecond (pg_ext/catalog.c) for segments catalogued from
-- now on.  Rows catalogued by 1.0 keep whole seconds, truncated: earlier,
-- so the rule is stricter for them, never looser.

ALTER TYPE pgbk.plan_row ADD ATTRIBUTE note text;

-- the external plan gains the note column (its result type changes)
DROP FUNCTION pgbk.plan_external(text, timestamptz);

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

REVOKE ALL ON FUNCTION pgbk.plan_external(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbk.plan_external(text, timestamptz) TO pgbk_reader;

-- Issue 11, item 1: one planner.  The database's plan is made by the C
-- planner `pgbk restore` runs (common/plan/plan.c over the catalog,
-- pg_ext/plan_sql.c): pgbk.plan_database and bk_restore_window() are C
-- functions, the plpgsql planner is gone, and pgbk.wal keeps each segment's
-- walscan summary whole for it.  Rows catalogued by 1.0 have no summary
-- text: the planner maps their summary columns, never saying more than they do.
ALTER TABLE pgbk.wal ADD COLUMN summary text;

-- the database plan gains the note column (its result type changes)
DROP FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text);
DROP FUNCTION pgbk.target_timeline(timestamptz);

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

REVOKE ALL ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text) TO pgbk_reader;

-- Every scope's plan for one target: kind 'time', 'lsn' or 'name'.  In
-- plpgsql, which keeps the query's plan for the session (a SQL function
-- would plan it again at every call).
CREATE OR REPLACE FUNCTION pgbk.plan_all(kind text, target_time timestamptz, target_lsn pg_lsn, target_name text)
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

REVOKE ALL ON FUNCTION pgbk.check_target(text, timestamptz, pg_lsn, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbk.check_target(text, timestamptz, pg_lsn, text) TO pgbk_reader;

-- The plan for `target` across every scope: for each, the backup that
-- brings that moment back (or the nearest one before it), its restore type,
-- how far it is from the target, and for the database the WAL to replay and
-- the pgbk restore command.
CREATE OR REPLACE FUNCTION bk_restore_point(target timestamptz) RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.check_target('time', target, NULL, NULL);
	RETURN QUERY SELECT * FROM pgbk.plan_all('time', target, NULL, NULL);
END
$$;

CREATE OR REPLACE FUNCTION bk_restore_point_lsn(target pg_lsn) RETURNS SETOF pgbk.plan_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pgbk.check_target('lsn', NULL, target, NULL);
	RETURN QUERY SELECT * FROM pgbk.plan_all('lsn', NULL, target, NULL);
END
$$;

CREATE OR REPLACE FUNCTION bk_restore_point_named(name text) RETURNS SETOF pgbk.plan_row
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
CREATE OR REPLACE FUNCTION bk_restore_window()
RETURNS TABLE (timeline integer, earliest timestamptz, latest timestamptz, first_wal text,
			   last_wal text, backups integer)
AS 'MODULE_PATHNAME', 'bk_restore_window'
LANGUAGE C STABLE;

CREATE OR REPLACE FUNCTION bk_register_external_backup(scope text, taken_at timestamptz, location text,
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
