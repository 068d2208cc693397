-- Scopes and policy: the seed's five scopes, bk_set_policy() validation (a
-- bad argument is an error that changes nothing), external backups, and who
-- may do what.
SELECT name, mechanism, granularity, depth, restore_type FROM pgbk.scope ORDER BY name;

CREATE TEMP TABLE before AS SELECT name, granularity, depth, restore_type FROM pgbk.scope;

SELECT bk_set_policy('database', depth => '-1 day');
SELECT bk_set_policy('database', granularity => '0');
SELECT bk_set_policy('no_such_scope', depth => '1 day');
SELECT bk_set_policy('files', restore_type => 'sideways');
-- nothing changed
SELECT count(*) AS changed FROM pgbk.scope s JOIN before b USING (name)
 WHERE (s.granularity, s.depth, s.restore_type) IS DISTINCT FROM (b.granularity, b.depth, b.restore_type);

-- a valid change, leaving the other fields as they were
SELECT name, granularity, depth, restore_type FROM bk_set_policy('files', depth => '90 days');
SELECT bk_set_policy('files', depth => '6 months') IS NOT NULL AS restored;

-- external backups: only for external scopes, with clear errors
SELECT bk_register_external_backup('virtual_machine', '2026-11-25 02:00+00', 'hyperv:vm1@2026-11-25', 'nightly') > 0 AS registered;
SELECT bk_register_external_backup('database', '2026-11-25 02:00+00', 'x');
SELECT bk_register_external_backup('nope', '2026-11-25 02:00+00', 'x');
SELECT bk_register_external_backup('virtual_machine', NULL, 'x');
SELECT bk_register_external_backup('virtual_machine', now() + interval '1 day', 'x');
SELECT count(*) FROM pgbk.external_backup;

-- the plan lists every scope; the VM's snapshot is the one before the target
SELECT scope, mechanism, restore_type, recoverable, backup_id, distance
  FROM bk_restore_point('2026-11-25 14:07+00')
 WHERE scope <> 'database';

-- roles: a reader can plan and look, not change policy, expire or verify
CREATE ROLE pgbk_test_reader2 LOGIN IN ROLE pgbk_reader;
SET ROLE pgbk_test_reader2;
SELECT count(*) FROM bk_restore_point('2026-11-25 14:07+00');
SELECT count(*) FROM bk_scope_health;
SELECT bk_set_policy('files', depth => '1 day');
SELECT * FROM bk_expire();
SELECT * FROM bk_verify();
SELECT bk_register_external_backup('virtual_machine', '2026-11-25 02:00+00', 'x');
RESET ROLE;
DROP ROLE pgbk_test_reader2;
DELETE FROM pgbk.external_backup;
