# Base backups through bk_base_backup() and planning in SQL: the backup
# lands in the repository with its manifest, a second concurrent request is
# refused, bk_restore_point says which backup and WAL bring back a moment
# and refuses honestly (before the oldest backup, after the newest archived
# commit, inside a gap), and bk_catalog_sync() rebuilds the catalog exactly.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkTest;

my $repo = PgbkTest::local_repo('plan');
my $node = PgbkTest::new_node('plan', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$node->command_ok([ 'pgbench', '-i', '-s', '10', '-q', 'postgres' ], 'pgbench data loaded');

my $before_backup = $node->safe_psql('postgres', 'SELECT now()');
usleep(100_000);

###########################################################################
# Backups
my $id = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
like($id, qr/^\d{8}T\d{6}Z$/, "bk_base_backup returns the backup id ($id)");
ok(-f "$repo->{dir}/manifest/$id", 'the manifest is in the repository');
ok(-d "$repo->{dir}/backup/$id/data/base", 'the data files are in the repository');
ok(!-e "$repo->{dir}/backup/$id/data/postmaster.pid", 'postmaster.pid is not backed up');
ok(!-e "$repo->{dir}/backup/$id/data/pg_wal/000000010000000000000001",
	'pg_wal contents are not backed up');
is( $node->safe_psql(
		'postgres', "SELECT files > 500 AND bytes > 100000000 AND stored_bytes < bytes FROM pgbk.backup WHERE id = '$id'"),
	't',
	'the catalog records the backup with its size');
is( $node->safe_psql(
		'postgres',
		"SELECT last_id = '$id' AND last_ok AND NOT running AND bytes_done = bytes_total AND files_done = files_total FROM bk_backup_progress"
	),
	't',
	'bk_backup_progress shows the finished backup')
  or diag($node->safe_psql('postgres', 'SELECT * FROM bk_backup_progress'));

# A second request while one runs is refused, naming the running backup.
my $id2 = $node->safe_psql('postgres', 'SELECT bk_base_backup(false)');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT bk_base_backup()');
isnt($rc, 0, 'a second concurrent backup is refused');
like($err, qr/a base backup is already running \(\Q$id2\E/, '... naming the running one');
$node->poll_query_until('postgres', "SELECT NOT running AND last_id = '$id2' AND last_ok FROM bk_backup_progress")
  or die 'second backup did not finish';
pass('the background backup finished');

###########################################################################
# Planning.  Record moments with commits after each.
$node->safe_psql('postgres', 'CREATE TABLE moments (i int, at timestamptz)');
my @t;
for my $i (1 .. 3)
{
	$node->safe_psql('postgres', "INSERT INTO moments VALUES ($i, clock_timestamp())");
	usleep(50_000);
	push @t, $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	usleep(50_000);
}
$node->safe_psql('postgres', "INSERT INTO moments VALUES (99, clock_timestamp()); SELECT pg_switch_wal()");
ok(PgbkTest::wait_archived($node), 'WAL archived');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync(false)');

my $plan = $node->safe_psql('postgres',
	"SELECT recoverable, backup_id, first_wal IS NOT NULL, last_wal IS NOT NULL, wal_segments > 0, bytes_to_fetch > 0, command FROM bk_restore_point('$t[1]') WHERE scope = 'database'"
);
my ($ok, $bid, $fw, $lw, $segs, $bytes, $cmd) = split /\|/, $plan;
is($ok, 't', 'a moment after the backup is recoverable');
is($bid, $id2, '... from the newest backup that ended before it');
ok($fw eq 't' && $lw eq 't' && $segs eq 't' && $bytes eq 't', '... with the WAL range and bytes to fetch');
like($cmd, qr/^pgbk restore --config \Q$repo->{conf}\E --to \S+ --target-time '/, '... and the restore command');

$plan = $node->safe_psql('postgres',
	"SELECT recoverable, reason FROM bk_restore_point('$before_backup') WHERE scope = 'database'");
like($plan, qr/^f\|no base backup ended before/, 'before the oldest backup: not recoverable, and why');

$plan = $node->safe_psql('postgres',
	"SELECT recoverable, reason FROM bk_restore_point(now() + interval '1 hour') WHERE scope = 'database'");
like($plan, qr/^f\|no transaction committed after .* has been archived yet/,
	'after the newest archived commit: not recoverable, and why');

my $lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
$node->safe_psql('postgres', "INSERT INTO moments VALUES (100, now()); SELECT pg_switch_wal()");
PgbkTest::wait_archived($node);
$node->safe_psql('postgres', 'SELECT bk_catalog_sync(false)');
is($node->safe_psql('postgres', "SELECT recoverable FROM bk_restore_point_lsn('$lsn') WHERE scope = 'database'"),
	't', 'an LSN target is planned too');

# Named restore points
($rc, $out, $err) = $node->psql('postgres', "SELECT bk_create_restore_point('bad name, with comma')");
like($err, qr/invalid restore point name/, 'bad restore point names are refused');
$node->safe_psql('postgres', "SELECT bk_create_restore_point('before-upgrade')");
PgbkTest::wait_archived($node);
$node->poll_query_until('postgres',
	"SELECT recoverable FROM bk_restore_point_named('before-upgrade') WHERE scope = 'database'")
  or die 'named point not plannable';
pass('a named restore point is planned');
like($node->safe_psql('postgres', "SELECT reason FROM bk_restore_point_named('nope') WHERE scope = 'database'"),
	qr/restore point "nope" not found/, 'an unknown name is explained');

# bk_restore_window: one stretch from the oldest backup's end
my $win = $node->safe_psql('postgres', 'SELECT count(*), min(earliest) < max(latest) FROM bk_restore_window()');
is($win, '1|t', 'bk_restore_window shows one recoverable stretch');

###########################################################################
# The catalog is an index of the repository: delete it and rebuild it.
my $digest_sql = q{
	SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
		SELECT concat_ws('/', name, timeline, kind, segno, stored_bytes, raw_bytes, archived_at,
						 written_at, first_stop_at, last_stop_at, stop_records, last_record_lsn) AS x
		  FROM pgbk.wal
		UNION ALL SELECT concat_ws('/', id, start_lsn, stop_lsn, start_time, stop_time, bytes, stored_bytes, files)
		  FROM pgbk.backup
		UNION ALL SELECT concat_ws('/', tli, first_segno, last_segno) FROM pgbk.wal_range r(tli)
		UNION ALL SELECT concat_ws('/', name, wal_name, timeline) FROM pgbk.restore_point) s};
my $before = $node->safe_psql('postgres', $digest_sql);
$node->safe_psql('postgres',
	'DELETE FROM pgbk.wal; DELETE FROM pgbk.backup; DELETE FROM pgbk.restore_point; DELETE FROM pgbk.timeline');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.wal_range'), '0', 'catalog emptied');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
is($node->safe_psql('postgres', $digest_sql), $before, 'bk_catalog_sync() rebuilds the same rows');

###########################################################################
# A gap: a WAL object deleted from the repository.
my $gapname = $node->safe_psql('postgres',
	"SELECT name FROM pgbk.wal WHERE kind = 'segment' AND segno > (SELECT pgbk.lsn_segno(stop_lsn) FROM pgbk.backup WHERE id = '$id2') ORDER BY segno LIMIT 1"
);
unlink("$repo->{dir}/wal/" . substr($gapname, 0, 16) . "/$gapname") or die "unlink $gapname: $!";
$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
$plan = $node->safe_psql('postgres',
	"SELECT recoverable, reason FROM bk_restore_point('$t[2]') WHERE scope = 'database'");
like($plan, qr/^f\|WAL segment \Q$gapname\E is missing from the repository/,
	'inside a gap: not recoverable, naming the missing segment');
is($node->safe_psql('postgres', 'SELECT count(*) FROM bk_restore_window()'), '1',
	'the window ends at the gap');

$node->stop;
done_testing();
