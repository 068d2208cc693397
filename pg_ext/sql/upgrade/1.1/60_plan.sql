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
