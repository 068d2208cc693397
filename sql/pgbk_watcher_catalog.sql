-- The files scope's SQL API: recording snapshots (idempotent on the restic
-- snapshot id), forgotten snapshots, failures, requests, lookups, status,
-- and who may do what.
CREATE ROLE pgbk_test_watcher LOGIN IN ROLE pgbk_recorder;
CREATE ROLE pgbk_test_files_reader LOGIN IN ROLE pgbk_reader;
CREATE ROLE pgbk_test_files_admin LOGIN IN ROLE pgbk_admin;
CREATE ROLE pgbk_test_nobody LOGIN;

-- nothing recorded yet
SELECT component, status, detail FROM pgbk.files_status;

SET ROLE pgbk_test_watcher;
-- recorded once: true, then false (a snapshot recorded twice is one row)
SELECT bk_record_file_snapshot(repeat('a', 64), '2026-01-01 10:00:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'complete', 'startup',
	10, 0, 0, 3, 0, 0, 10, 12345, 6789, 0.5);
SELECT bk_record_file_snapshot(repeat('a', 64), '2026-01-01 10:00:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'complete', 'startup',
	10, 0, 0, 3, 0, 0, 10, 12345, 6789, 0.5);
SELECT bk_record_file_snapshot(repeat('b', 64), '2026-01-01 10:05:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk', 'rp:before-upgrade'], ARRAY['before-upgrade'],
	'complete', 'request', 1, 2, 7, 0, 1, 2, 10, 12400, 100, 0.25);
SELECT bk_record_file_snapshot(repeat('c', 64), '2026-01-01 10:10:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'incomplete', 'change',
	0, 1, 9, 0, 0, 3, 10, 12400, 50, 0.125);
-- bad input changes nothing
\set VERBOSITY terse
SELECT bk_record_file_snapshot('abc', now(), 'web-1', ARRAY['/srv/app'], '{}', '{}',
	'complete', 'change', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
SELECT bk_record_file_snapshot(repeat('d', 64), now(), 'web-1', ARRAY['/srv/app'], '{}', '{}',
	'done', 'change', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
\set VERBOSITY default
SELECT bk_record_file_backup_failure('web-1', 'could not take a snapshot: connection refused');
-- the files scope's depth (pgbk.scope), for restic forget
SELECT bk_files_depth();
-- the watcher's role can do nothing else
SELECT count(*) FROM pgbk.file_snapshot;
SELECT bk_request_file_snapshot('x');
RESET ROLE;

SELECT short_id, taken_at, status, trigger, restore_points, files_new, bytes_added, duration
FROM pgbk.file_snapshot ORDER BY taken_at;
SELECT kind, object, message FROM pgbk.event WHERE kind = 'files_backup_failed';

-- the snapshot for a moment, and for a restore point
SELECT short_id FROM pgbk.file_snapshot_at('2026-01-01 10:07:00+00');
SELECT short_id FROM pgbk.file_snapshot_at('2026-01-01 09:00:00+00');
SELECT short_id FROM pgbk.file_snapshot_at('2026-01-01 10:07:00+00', 'web-2');
SELECT short_id FROM pgbk.file_snapshot_for_restore_point('before-upgrade');

-- forgotten by restic: no longer offered
SET ROLE pgbk_test_watcher;
SELECT bk_record_file_snapshots_forgotten(ARRAY[repeat('b', 64), repeat('e', 64)]);
SELECT bk_record_file_snapshots_forgotten(ARRAY[repeat('b', 64)]);
RESET ROLE;
SELECT short_id FROM pgbk.file_snapshot_at('2026-01-01 10:07:00+00');
SELECT count(*) FROM pgbk.file_snapshot_for_restore_point('before-upgrade');

-- status: the failure came after the last complete snapshot
SELECT component, status, last_file, failing_since IS NOT NULL AS failing, last_error
FROM pgbk.files_status;

-- requests: admin only, names of 1 to 63 bytes
SET ROLE pgbk_test_files_admin;
SELECT bk_request_file_snapshot('before-upgrade');
SELECT bk_request_file_snapshot('');
SELECT bk_request_file_snapshot(repeat('x', 64));
RESET ROLE;

-- readers read; nobody else does anything
SET ROLE pgbk_test_files_reader;
SELECT count(*) FROM pgbk.file_snapshot;
SELECT status FROM pgbk.files_status;
SELECT bk_request_file_snapshot('x');
SELECT bk_record_file_snapshots_forgotten('{}');
RESET ROLE;
SET ROLE pgbk_test_nobody;
SELECT count(*) FROM pgbk.file_snapshot;
SELECT bk_record_file_snapshots_forgotten('{}');
RESET ROLE;

DELETE FROM pgbk.file_snapshot;
DELETE FROM pgbk.event WHERE kind = 'files_backup_failed';
DROP ROLE pgbk_test_watcher, pgbk_test_files_reader, pgbk_test_files_admin, pgbk_test_nobody;
