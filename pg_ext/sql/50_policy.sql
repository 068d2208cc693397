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
