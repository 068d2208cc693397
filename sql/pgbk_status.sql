-- bk_status on a server with pgbk preloaded but archiving off and
-- archive_timeout = 0: the archive row says why it is not active, and a
-- granularity warning names archive_timeout.
SELECT component, status, detail FROM bk_status ORDER BY component;

SELECT preloaded, active, pending >= 0 AS pending_counted, failing_since IS NULL AS not_failing
FROM pgbk.archive_state();
