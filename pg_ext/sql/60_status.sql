-- 60_status: bk_status, the one place an operator looks: one row per
-- component (archiving, the granularity setting, base backups, unreadable
-- repository objects, the files scope, scope policy), status 'ok',
-- 'warning' or 'failing'.  The granularity and repository rows appear only
-- with a warning.  While archiving works but a backlog drains (more than
-- the file being archived waits, or files that waited through a failure),
-- the archive row stays 'ok' and its detail says it is catching up.
CREATE VIEW bk_status AS
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

GRANT SELECT ON bk_status TO pgbk_reader;
