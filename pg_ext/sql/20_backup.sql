-- 20_backup: base backups.

-- One row per complete base backup in the repository (its manifest exists).
-- Filled by the backup worker and by bk_catalog_sync() from the repository.
CREATE TABLE pgbk.backup (
	id text PRIMARY KEY,		-- UTC start time, YYYYMMDDTHHMMSSZ
	label text,
	timeline integer NOT NULL,
	start_lsn pg_lsn NOT NULL,
	stop_lsn pg_lsn NOT NULL,
	start_wal text NOT NULL,
	stop_wal text NOT NULL,
	start_time timestamptz NOT NULL,
	stop_time timestamptz NOT NULL,	-- restorable to any moment after this
	bytes bigint NOT NULL,
	stored_bytes bigint NOT NULL,
	files integer NOT NULL,
	system_identifier text,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	type text NOT NULL DEFAULT 'full',	-- 'full' or 'incremental'
	parent text,			-- incremental: the backup it builds on
	chain_length integer NOT NULL DEFAULT 0	-- incrementals since the chain's full
);
CREATE INDEX backup_stop_time_idx ON pgbk.backup (stop_time);
CREATE INDEX backup_stop_lsn_idx ON pgbk.backup (timeline, stop_lsn);

-- Take a base backup now.  With wait (the default) returns its id once it
-- is complete (files, WAL up to its stop point and manifest all in the
-- repository); without, returns the id at once and the backup runs on.
-- type: 'full' (the default), 'incremental' (only the blocks changed since
-- the newest complete backup on this timeline's history; a full backup when
-- there is none; refused when that backup is unreadable) or 'auto' (what
-- the schedule takes: incremental unless pgbk.full_backup_interval or
-- pgbk.max_backup_chain call for a full one, full when no parent is usable).
CREATE FUNCTION bk_base_backup(wait boolean DEFAULT true, type text DEFAULT 'full') RETURNS text
AS 'MODULE_PATHNAME', 'bk_base_backup'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgbk.backup_progress(
	OUT running boolean,
	OUT id text,
	OUT phase text,
	OUT started_at timestamptz,
	OUT bytes_total bigint,
	OUT bytes_done bigint,
	OUT stored_bytes_done bigint,
	OUT files_total integer,
	OUT files_done integer,
	OUT workers integer,
	OUT last_id text,
	OUT last_ok boolean,
	OUT last_error text,
	OUT last_finished_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_backup_progress'
LANGUAGE C STRICT VOLATILE;

-- The running (or last) backup's type, parent and how its blocks were chosen.
CREATE FUNCTION pgbk.backup_kind(
	OUT type text,
	OUT parent text,
	OUT changes text,
	OUT changes_reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'pgbk_backup_kind'
LANGUAGE C STRICT VOLATILE;

-- Progress of the running base backup (and the outcome of the last one).
CREATE VIEW bk_backup_progress AS
SELECT p.running, p.id, p.phase, p.started_at,
	p.bytes_done, p.bytes_total,
	CASE WHEN p.bytes_total > 0
		 THEN round(100.0 * p.bytes_done / p.bytes_total, 1) END AS percent,
	p.files_done, p.files_total, p.stored_bytes_done, p.workers,
	p.last_id, p.last_ok, p.last_error, p.last_finished_at,
	k.type, k.parent, k.changes, k.changes_reason
FROM pgbk.backup_progress() p, pgbk.backup_kind() k;

GRANT SELECT ON pgbk.backup TO pgbk_reader;
GRANT SELECT ON bk_backup_progress TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.backup_progress() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION pgbk.backup_kind() TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_base_backup(boolean, text) TO pgbk_admin;
