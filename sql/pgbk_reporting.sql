-- A PgbkError reaches the user through the one reporter (pgbk_report_error):
-- its detail and hint become errdetail and errhint, also where the error is
-- only a warning (a dry-run bk_expire goes on without the repository).  The
-- regress instance has no pgbk.config.
SELECT bk_catalog_sync();
SELECT action, count(*) FROM bk_expire(true, '2026-01-01 00:00+00')
 WHERE kind = 'backup' GROUP BY action;
