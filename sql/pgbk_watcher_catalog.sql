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

-- exact spans (issue 10, item 11): d holds the files exactly from 11:00:00
-- (the last change before its scan) until 11:01:50 (the first change after
-- its scan began, recorded later); e's scan saw a change (11:02:00, before
-- its end at 11:02:10): it holds no exact moment
SET ROLE pgbk_test_watcher;
SELECT bk_record_file_snapshot(repeat('d', 64), '2026-01-01 11:01:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'complete', 'change',
	1, 0, 9, 0, 0, 3, 10, 12400, 50, 5,
	'2026-01-01 11:00:00+00', NULL, '2026-01-01 11:01:05+00', '{}');
SELECT bk_record_file_snapshot(repeat('e', 64), '2026-01-01 11:01:55+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'complete', 'change',
	1, 0, 9, 0, 0, 3, 10, 12400, 50, 15,
	'2026-01-01 11:01:50+00', '2026-01-01 11:02:00+00', '2026-01-01 11:02:10+00', '{}');
SELECT bk_record_file_snapshot_until(repeat('d', 64), '2026-01-01 11:01:50+00');
SELECT bk_record_file_snapshot_until(repeat('d', 64), '2026-01-01 11:30:00+00');
RESET ROLE;
SELECT t, left(p.backup_id, 1) AS snapshot, p.distance, p.reason
FROM unnest(ARRAY['2026-01-01 11:00:30+00', '2026-01-01 11:01:30+00', '2026-01-01 11:01:58+00',
				  '2026-01-01 11:02:05+00', '2026-01-01 11:03:00+00']::timestamptz[]) t,
	 LATERAL pgbk.plan_files(t, NULL) p ORDER BY t;

-- a restore point's snapshot is the one bound to its request (item 1):
-- not one tagged with the name before the point, nor a later one
INSERT INTO pgbk.restore_point VALUES ('rp-x', '0/5000000', '2026-01-01 11:00:40+00', 1,
	'000000010000000000000005');
INSERT INTO pgbk.file_snapshot_request (name, restore_point_lsn, requested_at)
VALUES ('rp-x', '0/5000000', '2026-01-01 11:00:40+00');
SET ROLE pgbk_test_watcher;
SELECT name FROM bk_file_snapshot_requests() ORDER BY id;
SELECT bk_record_file_snapshot(repeat('f', 64), '2026-01-01 10:59:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk', 'rp:rp-x'], ARRAY['rp-x'], 'complete', 'request',
	0, 0, 10, 0, 0, 3, 10, 12400, 0, 1, NULL, NULL, NULL, '{}');
RESET ROLE;
SELECT bk_record_file_snapshot(repeat('1', 64), '2026-01-01 11:00:41+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk', 'rp:rp-x'], ARRAY['rp-x'], 'complete', 'request',
	0, 0, 10, 0, 0, 3, 10, 12400, 0, 1, NULL, NULL, NULL,
	(SELECT array_agg(id) FROM pgbk.file_snapshot_request WHERE name = 'rp-x'));
SELECT bk_record_file_snapshot(repeat('2', 64), '2026-01-01 11:20:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk', 'rp:rp-x'], ARRAY['rp-x'], 'complete', 'request',
	0, 0, 10, 0, 0, 3, 10, 12400, 0, 1, NULL, NULL, NULL, '{}');
SELECT name, left(served_by, 1) AS served_by
FROM pgbk.file_snapshot_request ORDER BY id;
SET ROLE pgbk_test_watcher;
SELECT name FROM bk_file_snapshot_requests() ORDER BY id;
RESET ROLE;
SELECT short_id FROM pgbk.file_snapshot_for_restore_point('rp-x');
SELECT left(backup_id, 1), reason FROM pgbk.plan_files('2026-01-01 11:00:40+00', 'rp-x');
-- the watcher restarted: open spans end where their scan ended
SELECT bk_record_file_snapshot(repeat('3', 64), '2026-01-01 12:00:00+00', 'web-1',
	ARRAY['/srv/app'], ARRAY['pgbk'], '{}', 'complete', 'change',
	0, 0, 10, 0, 0, 3, 10, 12400, 0, 1,
	'2026-01-01 11:59:00+00', NULL, '2026-01-01 12:00:02+00', '{}');
SELECT bk_close_file_snapshot_spans('web-1');
SELECT exact_until FROM pgbk.file_snapshot WHERE snapshot_id = repeat('3', 64);

DELETE FROM pgbk.file_snapshot;
DELETE FROM pgbk.file_snapshot_request;
DELETE FROM pgbk.restore_point WHERE name = 'rp-x';
DELETE FROM pgbk.event WHERE kind = 'files_backup_failed';
DROP ROLE pgbk_test_watcher, pgbk_test_files_reader, pgbk_test_files_admin, pgbk_test_nobody;
