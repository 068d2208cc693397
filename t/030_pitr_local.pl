# Point-in-time restore from the embedded default (a local directory): a
# table whose state is recorded at moments T1..T5, base backups before T1
# and between T2 and T3; `pgbk restore --start` to each moment, to an LSN,
# to a restore point and to the latest state gives exactly the recorded
# rows.  Then the source is stopped and its data directory deleted: a
# restore still works with only pgbk.conf and the key.
use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('pitr');
my $node = PgbkTest::new_node('src', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $w = PgbkRestore::workload($node, backups => [ 0, 2 ]);
is(scalar(@{ $w->{backups} }), 2, 'two base backups');

# Each moment, restored and started: the rows equal the recorded ones.
for my $m (@{ $w->{moments} })
{
	my ($r, $rc, $out, $err) =
	  PgbkRestore::restore("t$m->{step}", $repo->{conf}, '--target-time', $m->{time});
	is($rc, 0, "restore to T$m->{step} ($m->{time}) succeeds") or diag("$out$err");
	my $want_backup = $m->{step} <= 2 ? $w->{backups}[0] : $w->{backups}[1];
	like($out, qr/backup:\s+\Q$want_backup\E/, "... from the newest backup that ended before it");
	is(PgbkRestore::state($r), $m->{state}, "... and its rows are exactly those at T$m->{step}")
	  if $rc == 0;
	if ($m->{step} == 1 && $rc == 0)
	{
		# what the restore wrote
		my $auto = PgbkTest::slurp($r->data_dir . '/postgresql.auto.conf');
		like($auto, qr/^restore_command = '\S+pgbk wal-fetch --config \Q$repo->{conf}\E %f %p'$/m,
			'restore_command runs this pgbk with the absolute pgbk.conf');
		like($auto, qr/^archive_mode = 'off'$/m, 'archiving is off in the copy');
		like($auto, qr/^pgbk\.config = ''$/m, 'pgbk.config is empty in the copy');
		like($auto, qr/^recovery_target_action = 'promote'$/m, 'it promotes at the target');
		is($r->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the copy is promoted');
		ok(!-e $r->data_dir . '/pgbk_spool', 'the WAL spool is gone after recovery');
		$r->safe_psql('postgres', 'INSERT INTO pitr VALUES (-1, $$written in the copy$$)');
		pass('the copy accepts writes');
	}
	PgbkRestore::drop($r);
}

# An LSN and a restore point name.
my ($r, $rc, $out, $err) =
  PgbkRestore::restore('lsn', $repo->{conf}, '--target-lsn', $w->{lsn}{lsn});
is($rc, 0, "restore to LSN $w->{lsn}{lsn} succeeds") or diag("$out$err");
is(PgbkRestore::state($r), $w->{lsn}{state}, '... with the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);

($r, $rc, $out, $err) =
  PgbkRestore::restore('name', $repo->{conf}, '--target-name', $w->{rp}{name});
is($rc, 0, "restore to restore point $w->{rp}{name} succeeds") or diag("$out$err");
is(PgbkRestore::state($r), $w->{rp}{state}, '... with the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);

# pgbk info agrees: two backups, one timeline, no gap, a window.
($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $repo->{conf}, '--json');
is($rc, 0, 'pgbk info --json succeeds') or diag($err);
like($out, qr/"recoverable": true/, '... with a recoverable window');
like($out, qr/"earliest_backup": "\Q$w->{backups}[0]\E"/, '... from the oldest backup');
($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $repo->{conf});
like($out, qr/timeline 1: \S+ \.\. \S+, \d+ segments, .* stored, no gaps/, 'pgbk info lists the WAL');

###########################################################################
# The source is gone: stopped, its data directory deleted.  The restore
# needs only pgbk.conf and the key.
$node->stop;
rmtree($node->data_dir);
($r, $rc, $out, $err) = PgbkRestore::restore('latest', $repo->{conf}, '--target', 'latest');
is($rc, 0, 'with the source deleted, restore --target latest succeeds') or diag("$out$err");
is(PgbkRestore::state($r), $w->{final}, '... and holds the newest archived state') if $rc == 0;
PgbkRestore::drop($r);

done_testing();
