# Point-in-time restore from the embedded default (a local directory): a
# table whose state is recorded at moments T1..T5, base backups before T1
# and between T2 and T3; `pgbk restore --start` to each moment, to an LSN,
# to a restore point and to the latest state gives exactly the recorded
# rows; the replay runs with shared_buffers raised on the command line only
# (--recovery-buffers).  Then the source is stopped and its data directory
# deleted: a restore still works with only pgbk.conf and the key.
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

		# the replay ran with shared_buffers for the backup plus its WAL
		# (the test nodes have 1MB), given on the command line only
		my ($mb) = $out =~ /-o '-c shared_buffers=(\d+)MB' start/;
		my ($nseg) = $out =~ /WAL:.*\((\d+) segments/;
		ok(defined $mb && defined $nseg && $mb >= 16 * $nseg && $mb <= 16 * $nseg + 200,
			'the replay gets shared_buffers of the backup plus 16MB per WAL segment')
		  or diag($out);
		like($out, qr/instead of its own 1MB for the replay/, '... and says so');
		is($r->safe_psql('postgres', 'SHOW shared_buffers'), ($mb // '?') . 'MB',
			'the promoted copy runs with it');
		my $conf = PgbkTest::slurp($r->data_dir . '/postgresql.conf') . $auto;
		$mb //= '?';
		unlike($conf, qr/shared_buffers\s*=\s*'?${mb}MB/, '... which is in no configuration file');
		$r->stop;
		$r->start;
		is($r->safe_psql('postgres', 'SHOW shared_buffers'), '1MB',
			'stopped and started again, it has its own setting');
		$r->safe_psql('postgres', 'INSERT INTO pitr VALUES (-1, $$written in the copy$$)');
		pass('the copy accepts writes');
	}
	PgbkRestore::drop($r);
}

# --recovery-buffers: off keeps the copy's own setting, a size is taken
# as given, anything else is refused before anything is written.
my $t1 = $w->{moments}[0];
for my $case ([ 'off', '1MB' ], [ '48MB', '48MB' ])
{
	my ($r, $rc, $out, $err) = PgbkRestore::restore("rb$case->[0]", $repo->{conf},
		'--target-time', $t1->{time}, '--recovery-buffers', $case->[0]);
	is($rc, 0, "restore --recovery-buffers $case->[0] succeeds") or diag("$out$err");
	is($r->safe_psql('postgres', 'SHOW shared_buffers'), $case->[1],
		"... and the replay ran with shared_buffers $case->[1]")
	  if $rc == 0;
	is(PgbkRestore::state($r), $t1->{state}, '... to the rows of T1') if $rc == 0;
	PgbkRestore::drop($r);
}
{
	# a size the server refuses (above PostgreSQL's 8TB limit): pgbk starts
	# it again with its own setting, and says so
	my ($r, $rc, $out, $err) = PgbkRestore::restore('rbbig', $repo->{conf},
		'--target-time', $t1->{time}, '--recovery-buffers', '9TB');
	is($rc, 0, 'restore --recovery-buffers 9TB succeeds') or diag("$out$err");
	like($err, qr/could not start with shared_buffers = 9437184MB .* starting it with its own setting \(1MB\)/,
		'... after the server refused that size, with its own setting, and says so');
	is($r->safe_psql('postgres', 'SHOW shared_buffers'), '1MB', '... which it runs with')
	  if $rc == 0;
	is(PgbkRestore::state($r), $t1->{state}, '... at the rows of T1') if $rc == 0;
	PgbkRestore::drop($r);
}
{
	my $dir = PostgreSQL::Test::Utils::tempdir() . '/rb-bad';
	my ($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $repo->{conf}, '--to', $dir,
		'--target-time', $t1->{time}, '--recovery-buffers', '12parsecs');
	is($rc, 2, '--recovery-buffers 12parsecs is a usage error');
	like($err, qr/--recovery-buffers must be a size .* not "12parsecs"/, '... that names it');
	ok(!-e $dir, '... and nothing is written');

	# without --start, the command it prints carries the setting
	($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $repo->{conf}, '--to', $dir,
		'--target-time', $t1->{time});
	is($rc, 0, 'restore without --start succeeds') or diag("$out$err");
	like($out, qr/pg_ctl -D \Q$dir\E -l \S+ -o '-c shared_buffers=\d+MB' start/,
		'... and the start command it prints raises shared_buffers for the replay');
	rmtree($dir);
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
