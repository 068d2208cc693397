-- pgbk 1.1 -> 1.2 upgrade script, assembled from pg_ext/sql/upgrade/1.2/*.sql
-- in name order.  Each fragment makes, for an existing 1.1 catalog, the same
-- change its counterpart in pg_ext/sql/*.sql makes for a fresh install;
-- t/006_extension_upgrade.pl compares the two catalogs object by object
-- (upgrading from 1.0 runs the shipped 1.0--1.1 script, then this one).

\echo Use "ALTER EXTENSION pgbk UPDATE TO '1.2'" to load this file. \quit
