-- pgbk extension script, assembled from pg_ext/sql/*.sql in name order.
-- 00_schema: the catalog schema and the roles.

\echo Use "CREATE EXTENSION pgbk" to load this file. \quit

-- Catalog tables live in schema pgbk; the bk_* functions in the extension's
-- schema (public by default) so that `SELECT bk_restore_point(...)` works.
CREATE SCHEMA pgbk;
REVOKE ALL ON SCHEMA pgbk FROM PUBLIC;

-- Roles (cluster-wide, so create them only if missing):
--   pgbk_reader   plans, windows, status
--   pgbk_admin    backups, expiry, policy, verify (and everything reader can)
--   pgbk_recorder what the watcher's login needs: record file snapshots
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_reader') THEN
		CREATE ROLE pgbk_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_admin') THEN
		CREATE ROLE pgbk_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbk_recorder') THEN
		CREATE ROLE pgbk_recorder NOLOGIN;
	END IF;
END
$$;
GRANT pgbk_reader TO pgbk_admin;
GRANT USAGE ON SCHEMA pgbk TO pgbk_reader, pgbk_recorder;

-- Events worth an operator's attention (refused duplicates, integrity
-- problems, expiry actions).  Never holds secrets.
CREATE TABLE pgbk.event (
	id bigserial PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now(),
	kind text NOT NULL,
	object text,
	message text NOT NULL
);
CREATE INDEX event_at_idx ON pgbk.event (at);
