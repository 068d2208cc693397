-- 50_incremental: incremental base backups (issue 12).  bk_base_backup
-- takes a type; bk_backup_progress says which type the running (or last)
-- backup is, its parent and how its blocks were chosen.

ALTER TABLE pgbk.backup
	ADD COLUMN type text NOT NULL DEFAULT 'full',
	ADD COLUMN parent text,
	ADD COLUMN chain_length integer NOT NULL DEFAULT 0;

DROP FUNCTION bk_base_backup(boolean);
-- type: 'full' (the default), 'incremental' (only the blocks changed since
-- the newest complete backup on this timeline's history; a full backup when
-- there is none; refused when that backup is unreadable) or 'auto' (what
-- the schedule takes: incremental unless pgbk.full_backup_interval or
-- pgbk.max_backup_chain call for a full one, full when no parent is usable).
CREATE FUNCTION bk_base_backup(wait boolean DEFAULT true, type text DEFAULT 'full') RETURNS text
AS 'MODULE_PATHNAME', 'bk_base_backup'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION bk_base_backup(boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bk_base_backup(boolean, text) TO pgbk_admin;

-- The running (or last) backup's type, parent and how its blocks were chosen.
CREATE FUNCTION pgbk.backup_kind(
	OUT type text,
	OUT parent text,
	OUT changes text,
	OUT changes_reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_backup_kind'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION pgbk.backup_kind() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbk.backup_kind() TO pgbk_reader;

-- Progress of the running base backup (and the outcome of the last one).
CREATE OR REPLACE VIEW bk_backup_progress AS
SELECT p.running, p.id, p.phase, p.started_at,
	p.bytes_done, p.bytes_total,
	CASE WHEN p.bytes_total > 0
		 THEN round(100.0 * p.bytes_done / p.bytes_total, 1) END AS percent,
	p.files_done, p.files_total, p.stored_bytes_done, p.workers,
	p.last_id, p.last_ok, p.last_error, p.last_finished_at,
	k.type, k.parent, k.changes, k.changes_reason
FROM pgbk.backup_progress() p, pgbk.backup_kind() k;
