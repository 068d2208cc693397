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

-- The plan for one database target.  kind: 'time', 'lsn', 'name'.
CREATE OR REPLACE FUNCTION pgbk.plan_database(kind text, target_time timestamptz, target_lsn pg_lsn,
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
			 * looser: WAL written (written_at, to the microsecond) or a restore
			 * point made at or after the target, no margin; archived_at (the
			 * repository's mtime) is whole seconds; any segment whose tail may
			 * be a commit counts as unknown.  The first segment on the chain
			 * that proves it wins, unless one before it (archived within a
			 * minute of the target or later) says nothing.
			 */
			FOR c IN SELECT * FROM pgbk.timeline_chain(tli) LOOP
				need_from := greatest(c.first_segno, start_seg);
				CONTINUE WHEN need_from > c.last_segno;
				SELECT w.segno INTO quiet_seg FROM pgbk.wal w
				 WHERE w.timeline = c.tli AND w.kind = 'segment'
				   AND w.segno BETWEEN need_from AND c.last_segno
				   AND w.stop_records IS NOT NULL AND NOT w.tail_may_stop
				   AND ((w.written_at >= target_time
						 AND w.last_record_lsn >= b.stop_lsn)
						OR EXISTS (SELECT 1 FROM pgbk.restore_point r
								    WHERE r.wal_name = w.name AND r.lsn >= b.stop_lsn
									  AND r.at >= target_time))
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

-- Every scope's plan for one target: kind 'time', 'lsn' or 'name'.
CREATE OR REPLACE FUNCTION pgbk.plan_all(kind text, target_time timestamptz, target_lsn pg_lsn, target_name text)
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
			   coalesce(db.backup_bytes, 0) + coalesce(db.wal_bytes, 0), db.command, NULL::text
		  FROM db WHERE s.mechanism = 'wal'
		UNION ALL
		SELECT f.*, NULL::text FROM pgbk.plan_files(m.at, target_name) f WHERE s.mechanism = 'restic'
		UNION ALL
		SELECT * FROM pgbk.plan_external(s.name, m.at) WHERE s.mechanism = 'external'
	  ) p
	 ORDER BY CASE s.mechanism WHEN 'wal' THEN 0 WHEN 'restic' THEN 1 ELSE 2 END, s.name
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

-- The recoverable window: one row per stretch of time that can be
-- restored to, per timeline.  Several rows mean gaps between them.
CREATE OR REPLACE FUNCTION bk_restore_window()
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
					(SELECT w.written_at FROM pgbk.wal w
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
