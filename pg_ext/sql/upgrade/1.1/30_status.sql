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
