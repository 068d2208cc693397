-- What a plain user, pgbk_reader and pgbk_admin may do.  Secrets never
-- appear in settings, functions or views (pgbk keeps none there: keys and
-- credentials live in files named by pgbk.conf).
CREATE ROLE pgbk_test_plain LOGIN;
CREATE ROLE pgbk_test_reader LOGIN IN ROLE pgbk_reader;

SET ROLE pgbk_test_plain;
SELECT * FROM bk_status;
SELECT * FROM pgbk.wal;
SELECT bk_catalog_sync();
-- pgbk.config is visible to superusers only (it is a path, not a secret,
-- but where the key files live is nobody else's business)
SELECT name FROM pg_settings WHERE name LIKE 'pgbk.%' ORDER BY name;
SHOW pgbk.config;
RESET ROLE;

SET ROLE pgbk_test_reader;
SELECT component, status FROM bk_status ORDER BY component;
SELECT count(*) FROM pgbk.wal;
SELECT bk_catalog_sync();
RESET ROLE;

DROP ROLE pgbk_test_plain;
DROP ROLE pgbk_test_reader;
