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
	OUT note text,
	OUT backup_chain text[])
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
	note text,			-- text to read: an external backup's registered note, the
						-- database plan's note (a quiet target, a gap after it)
	backup_chain text[]);	-- the database: the backups a restore reads, the full
						-- backup first, the chosen one last (one for a full)

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
			   coalesce(db.backup_bytes, 0) + coalesce(db.wal_bytes, 0), db.command, db.note,
			   db.backup_chain
		  FROM db WHERE s.mechanism = 'wal'
		UNION ALL
		SELECT f.*, NULL::text, NULL::text[] FROM pgbk.plan_files(m.at, target_name) f
		 WHERE s.mechanism = 'restic'
		UNION ALL
		SELECT x.*, NULL::text[] FROM pgbk.plan_external(s.name, m.at) x
		 WHERE s.mechanism = 'external'
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
-- backups: those ending in the stretch that can be restored (whole chain);
-- incremental_backups: how many of them are incremental; longest_chain:
-- the most backups a restore into the stretch reads (1: full ones only).
CREATE FUNCTION bk_restore_window()
RETURNS TABLE (timeline integer, earliest timestamptz, latest timestamptz, first_wal text,
			   last_wal text, backups integer, incremental_backups integer,
			   longest_chain integer)
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
	pgbk.lsn_segno(pg_lsn),
	pgbk.segment_name(integer, bigint), pgbk.wal_segment_bytes(),
	pgbk.plan_files(timestamptz, text), pgbk.plan_external(text, timestamptz),
	pgbk.plan_all(text, timestamptz, pg_lsn, text),
	pgbk.check_target(text, timestamptz, pg_lsn, text) TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_create_restore_point(text) TO pgbk_admin;
