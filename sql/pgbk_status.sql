-- bk_status on a server with pgbk preloaded but archiving off and
-- archive_timeout = 0: the archive row says why it is not active, and a
-- granularity warning names archive_timeout.
SELECT component, status, detail FROM bk_status ORDER BY component;

SELECT preloaded, active, pending >= 0 AS pending_counted, failing_since IS NULL AS not_failing
FROM pgbk.archive_state();

-- Archived WAL but no base backup yet (what `make demo` shows first): the
-- database scope's violation says why nothing is restorable, and the policy
-- row never carries an empty reason.
BEGIN;
INSERT INTO pgbk.wal (name, timeline, kind, segno, stored_bytes, raw_bytes, archived_at)
VALUES ('000000010000000000000001', 1, 'segment', 1, 100, 16777216, now());
SELECT scope, status, detail FROM bk_scope_health WHERE scope = 'database';
SELECT status, detail FROM bk_status WHERE component = 'policy';
ROLLBACK;
