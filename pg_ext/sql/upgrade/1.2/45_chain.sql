-- 45_chain: a plan names the chain of backups a restore reads (issue 12):
-- a backup_chain column in pgbk.plan_row and pgbk.plan_database (as
-- 40_plan.sql has them).

ALTER TYPE pgbk.plan_row ADD ATTRIBUTE backup_chain text[];

DROP FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text);
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
REVOKE ALL ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbk.plan_database(text, timestamptz, pg_lsn, text) TO pgbk_reader;

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
