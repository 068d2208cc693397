-- pgbk 1.0 -> 1.1 upgrade script, assembled from pg_ext/sql/upgrade/1.1/*.sql
-- in name order.  Each fragment makes, for an existing 1.0 catalog, the same
-- change its counterpart in pg_ext/sql/*.sql makes for a fresh install;
-- t/006_extension_upgrade.pl compares the two catalogs object by object.

\echo Use "ALTER EXTENSION pgbk UPDATE TO '1.1'" to load this file. \quit
