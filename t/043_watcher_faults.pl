# pgbk-watcher when things go wrong: configuration errors (exit 3, naming
# the setting), an unreachable repository and a wrong password (exit 4 with
# --once; in the daemon a clear log line, a failure event, no success row,
# retries with growing delays, recovery after SIGHUP), unreadable files
# (incomplete snapshot: exit 5, recorded as incomplete), an inotify queue
# overflow (more than max_queued_events events while the watcher is
# stopped: one complete and correct snapshot, new directories watched), the
# watch limit (ENOSPC: warning naming max_user_watches, snapshots every
# max_wait), a stale lock left by a killed restic (removed, then forget
# --prune works and the catalog marks forgotten snapshots), and SIGTERM
# during a long backup.
use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use lib 't/lib';
use PgbkTest;
use PgbkWatcher;

my $repo = PgbkTest::local_repo('faults');
my $node = PgbkTest::new_node('faults', $repo->{conf});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgbk;
	CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder;
});
my $conninfo = $node->connstr('postgres') . ' user=pgbk_watcher';

my $root = PostgreSQL::Test::Utils::tempdir('app') . '/files';
make_path($root);
PgbkWatcher::put($root, "a/b/f$_", 100 * $_) for 1 .. 10;

sub rows
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot');
}

###########################################################################
# Usage and configuration errors
my ($rc, $out, $err);
{
	my $h = IPC::Run::start([ PgbkWatcher::bin(), '--help' ], '>', \$out, '2>', \$err);
	$h->finish;
	is($h->result(0), 0, '--help exits 0');
	like($out, qr/Exit codes:.*3  configuration error.*6  --once: snapshot taken, but the catalog is unreachable/s,
		'--help documents the exit codes');
	$h = IPC::Run::start([ PgbkWatcher::bin(), '--frobnicate' ], '>', \$out, '2>', \$err);
	$h->finish;
	is($h->result(0), 2, 'a bad option exits 2');
	$h = IPC::Run::start([ PgbkWatcher::bin(), '-c', '/nonexistent/watcher.conf', '--once' ],
		'>', \$out, '2>', \$err);
	$h->finish;
	is($h->result(0), 3, 'a missing configuration file exits 3');
	like($err, qr{could not read configuration file "/nonexistent/watcher.conf": it does not exist},
		'... naming it');
}

my $w = PgbkWatcher->new(roots => [$root], pgbk_config => $repo->{conf}, conninfo => $conninfo);
$w->set(roots => undef);
($rc, $out, $err) = $w->run('--once');
is($rc, 3, 'no roots: exit 3');
like($err, qr/setting "roots" is required/, '... naming the setting');
$w->set(roots => ["$root/nope"]);
($rc, $out, $err) = $w->run();
is($rc, 3, 'a root that does not exist: exit 3');
like($err, qr{could not use root "\Q$root\E/nope": No such file or directory}, '... naming it');
$w->set(roots => [$root], settle_delay => 'soon');
($rc, $out, $err) = $w->run('--once');
is($rc, 3, 'a bad duration: exit 3');
like($err, qr/invalid value for setting "settle_delay" in file .* line \d+/, '... naming setting, file and line');
$w->set(settle_delay => '1s');
chmod(0644, $w->{settings}{restic_password_file});
($rc, $out, $err) = $w->run('--once');
is($rc, 3, 'a password file readable by others: exit 3');
like($err, qr/restic password file .*\(mode 0644\)\n.*HINT: Run chmod 600 on it/, '... saying what to do');
chmod(0600, $w->{settings}{restic_password_file});
$w->set(restic_binary => 'no-such-restic');
($rc, $out, $err) = $w->run('--once');
is($rc, 3, 'no restic binary: exit 3');
like($err, qr/restic binary "no-such-restic" not found in PATH/, '... saying so');
$w->set(restic_binary => undef);

###########################################################################
# Unreachable repository (not initialized), then a wrong password
($rc, $out, $err) = $w->run('--once');
is($rc, 4, 'a repository that does not exist: --once exits 4');
like($err, qr/could not take a snapshot in restic repository ".*\/files": restic exited with code 1: .*; initialize it with `pgbk-watcher --init`/,
	'... saying what to do');
$w->init;
is(rows(), 0, 'nothing recorded so far');

PgbkWatcher::write_file($w->{settings}{restic_password_file}, "wrong\n", 0600);
($rc, $out, $err) = $w->run('--once');
is($rc, 4, 'wrong password: --once exits 4');
like($err, qr/wrong password or no key found; check that restic_password_file holds this repository's password/,
	'... saying what to check');

my $pos = $w->log_size;
$w->start;
ok( $w->wait_for_log(
		qr/ERROR: could not take a snapshot .*wrong password.*retrying in 1 s.*ERROR: could not take a snapshot .*retrying in 2 s.*ERROR: could not take a snapshot .*retrying in 4 s/s,
		$pos),
	'the daemon logs the failure and retries after 1, 2, 4 s');
$node->poll_query_until('postgres',
	"SELECT count(*) >= 2 FROM pgbk.event WHERE kind = 'files_backup_failed' AND message LIKE '%wrong password%'")
  or die 'no failure events';
pass('failures are recorded as catalog events');
is(rows(), 0, 'no catalog row claims a snapshot');
is($node->safe_psql('postgres', 'SELECT status FROM pgbk.files_status'),
	'failing', 'files_status: failing');

# the operator fixes the password file; the next retry works
PgbkWatcher::write_file($w->{settings}{restic_password_file}, "restic test password\n", 0600);
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pgbk.file_snapshot')
  or die 'no snapshot after the fix';
is($node->safe_psql('postgres', 'SELECT trigger, status FROM pgbk.file_snapshot'),
	'startup|complete', 'after the fix the start snapshot is taken');

###########################################################################
# Unreadable file: incomplete snapshot, never "complete"
chmod(0000, "$root/a/b/f3");
my $n = rows() + 1;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'no snapshot for the chmod';
is( $node->safe_psql('postgres',
		'SELECT status FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1'),
	'incomplete',
	'a file restic cannot read: the snapshot is recorded as incomplete');
like($w->log_contents, qr/snapshot [0-9a-f]{8} is incomplete: restic could not read some files/,
	'... and the log says so');
like($w->log_contents, qr/restic backup: .*f3.*/, "... with restic's message naming the file");
is($node->safe_psql('postgres', 'SELECT status FROM pgbk.files_status'),
	'warning', 'files_status: warning');
is($w->stop, 0, 'stop');
($rc, $out, $err) = $w->run('--once');
is($rc, 5, '--once with an unreadable file exits 5');
chmod(0644, "$root/a/b/f3");

###########################################################################
# Queue overflow: the watcher is stopped (SIGSTOP) while more events than
# the kernel queues happen, including new directories
my $maxq = 16384;
if (open(my $fh, '<', '/proc/sys/fs/inotify/max_queued_events'))
{
	$maxq = <$fh> + 0;
	close($fh);
}
# directories the watcher watches already, so their files make events
make_path(sprintf("$root/burst/d%02d", $_)) for 0 .. 49;
$w->start;
$n = rows() + 1;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'no start snapshot';
$pos = $w->log_size;
$w->signal('STOP');
# each file: IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE in a watched directory;
# some go into directories created now, which nobody watches yet
my $files = int($maxq / 2) + 2000;
for my $i (1 .. $files)
{
	my $d = sprintf($i % 3 ? 'burst/d%02d' : 'burst/d%02d/e%02d', $i % 50, $i % 7);
	make_path("$root/$d") unless -d "$root/$d";
	open(my $fh, '>', "$root/$d/f$i") or die $!;
	print $fh "$i\n";
	close($fh);
}
$w->signal('CONT');
ok($w->wait_for_log(qr/WARNING: the inotify event queue overflowed/, $pos),
	"more than max_queued_events ($maxq) events: the overflow is logged");
like(substr($w->log_contents, $pos),
	qr/overflowed \(more than \Q$maxq\E events were pending, the limit of this watcher's queue: \/proc\/sys\/fs\/inotify\/max_queued_events when it started; a new value applies after a restart\)/,
	"... naming the limit of this watcher's queue ($maxq)");
$n++;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'no snapshot after the overflow';
my $overflow_id = $node->safe_psql('postgres',
	'SELECT snapshot_id FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1');
my $want = PgbkWatcher::tree_state($root);
my ($ok, $msg) = $w->restore_matches($want, id => $overflow_id);
ok($ok, "the snapshot after the overflow holds all $files new files, byte for byte")
  or diag $msg;
is( $node->safe_psql('postgres',
		"SELECT status, files_new >= $files FROM pgbk.file_snapshot WHERE snapshot_id = '$overflow_id'"),
	'complete|t', '... and is complete');
# a directory created while events were lost is watched now
PgbkWatcher::put($root, 'burst/d07/e03/after-overflow', 5);
$n++;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'a change in a directory created during the overflow was missed';
pass('a change in a directory created during the overflow is seen');
is($w->stop, 0, 'stop');

###########################################################################
# The watch limit (ENOSPC), simulated with debug_max_watches: a warning
# naming max_user_watches, and snapshots every max_wait without changes
$w->set(debug_max_watches => 3, max_wait => '3s');
$pos = $w->log_size;
my $t0 = time();
$w->start;
ok($w->wait_for_log(qr{WARNING: could not watch ".*": the limit of inotify watches is reached .*/proc/sys/fs/inotify/max_user_watches},
		$pos),
	'ENOSPC: a warning naming /proc/sys/fs/inotify/max_user_watches');
$n = rows() + 3;
$node->poll_query_until('postgres', "SELECT count(*) >= $n FROM pgbk.file_snapshot")
  or die 'no periodic snapshots';
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT trigger FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 2) s WHERE trigger = 'safety'"),
	'2', 'with directories unwatched, snapshots come every max_wait');
is($w->stop, 0, 'stop');
$w->set(debug_max_watches => undef, max_wait => '5s');

###########################################################################
# A restic killed mid-run leaves a lock that blocks forget --prune; the
# watcher removes such stale locks (restic unlock) before forgetting.
my %env = (%ENV, RESTIC_PASSWORD_FILE => $w->{settings}{restic_password_file},
	RESTIC_REPOSITORY => "$repo->{dir}/files", RESTIC_CACHE_DIR => $w->{settings}{cache_dir});
{
	# an old snapshot (two days ago) that the files depth will forget, known
	# to the catalog
	local %ENV = %env;
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'restic', 'backup', '--json', '--host', 'test-host', '--time',
			POSIX::strftime('%Y-%m-%d %H:%M:%S', localtime(time() - 2 * 86400)), $root ],
		'>', \$o, '2>', \$e) or die "restic backup: $e";
	my ($short) = $o =~ /"snapshot_id":"([0-9a-f]{8})"/ or die "no snapshot id: $o";
	IPC::Run::run([ 'restic', 'snapshots', '--json', $short ], '>', \$o, '2>', \$e)
	  or die "restic snapshots: $e";
	my ($full) = $o =~ /"id":"([0-9a-f]{64})"/ or die "no full id: $o";
	$node->safe_psql('postgres', qq{
		SELECT bk_record_file_snapshot('$full', now() - interval '2 days', 'test-host',
			ARRAY['$root'], ARRAY[]::text[], ARRAY[]::text[], 'complete', 'change',
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1)});
	$w->{old_snapshot} = $full;

	# a restic killed while it holds its lock
	my $big = PostgreSQL::Test::Utils::tempdir('big') . '/big.bin';
	open(my $fh, '>', $big) or die;
	open(my $rnd, '<', '/dev/urandom') or die;
	for (1 .. 40) { my $buf; read($rnd, $buf, 1 << 20); print $fh $buf; }
	close($rnd);
	close($fh);
	my $h = IPC::Run::start([ 'restic', 'backup', '--host', 'other', $big ], '>', \$o, '2>', \$e);
	my $deadline = time() + 30;
	my @locks;
	while (time() < $deadline)
	{
		opendir(my $dh, "$repo->{dir}/files/locks") or die;
		@locks = grep { /^[0-9a-f]{64}$/ } readdir($dh);    # not a half-written one
		closedir($dh);
		last if @locks;
		usleep(20_000);
	}
	usleep(200_000);
	$h->signal('KILL');
	eval { $h->finish; };
	ok(scalar(@locks) > 0, 'a restic killed mid-run left its lock behind');
	IPC::Run::run([ 'restic', 'forget', '--keep-last', '100', '--prune' ], '>', \$o, '2>', \$e);
	like($e, qr/locked/, '... which blocks forget --prune');
}
# the files scope's depth comes from the catalog (files_depth is the
# fallback when it has none)
$w->set(forget_interval => '1h', files_depth => '30d');
$node->safe_psql('postgres', "SELECT bk_set_policy('files', depth => '1 day')");
$pos = $w->log_size;
$w->start;
ok($w->wait_for_log(qr/restic forget removed 1 snapshot\(s\) older than the files depth/, $pos),
	'the stale lock was removed and forget --prune ran');
{
	like(substr($w->log_contents, $pos), qr/older than 1d0h \(the files depth, from the catalog\)/,
		"the depth is the files scope's in the catalog");
}
opendir(my $dh, "$repo->{dir}/files/locks") or die;
is(scalar(grep { /^[0-9a-f]{64}$/ } readdir($dh)), 0, 'no lock is left');
closedir($dh);
$node->poll_query_until('postgres',
	"SELECT forgotten_at IS NOT NULL FROM pgbk.file_snapshot WHERE snapshot_id = '$w->{old_snapshot}'")
  or die 'the catalog was not told';
pass('the catalog marks the forgotten snapshot');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbk.file_snapshot_at(now() - interval '1 day')"),
	'0', 'and no longer offers it for a restore');
is($w->stop, 0, 'stop');
ok(-f "$w->{spool}/forget.stamp", 'the time of the last forget is kept');
$pos = $w->log_size;
$w->start;
$n = rows() + 1;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'no start snapshot';
unlike(substr($w->log_contents, $pos), qr/forgetting snapshots/,
	'a restart within forget_interval does not forget again');
is($w->stop, 0, 'stop');

# The catalog marks a snapshot forgotten only once the restic repository
# no longer has it: a restic whose forget claims to have removed a snapshot
# it still has (here a wrapper that prints such a result) changes nothing.
{
	my $fakebin = PostgreSQL::Test::Utils::tempdir('fakerestic');
	my ($real) = map { "$_/restic" } grep { -x "$_/restic" } split /:/, $ENV{PATH};
	die 'restic not found in PATH' unless defined $real;
	PgbkTest::write_file("$fakebin/restic", <<"EOS", 0755);
#!/bin/sh
for a in "\$@"; do
	if [ "\$a" = forget ]; then
		echo '[{"tags":null,"host":"test-host","paths":["$root"],"keep":[],"remove":[{"id":"$overflow_id","short_id":"x"}],"reasons":[]}]'
		exit 0
	fi
done
exec $real "\$@"
EOS
	unlink("$w->{spool}/forget.stamp");
	$w->set(restic_binary => "$fakebin/restic");
	$pos = $w->log_size;
	$n = rows() + 1;
	$w->start;
	ok($w->wait_for_log(qr/restic forget reported snapshot \Q$overflow_id\E removed, but the repository still has it; it stays in the catalog/,
			$pos),
		'a snapshot restic forget claims to have removed but still holds: the watcher says so');
	$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
	  or die 'no start snapshot';
	is($w->stop, 0, 'stop');
	is( $node->safe_psql('postgres',
			"SELECT forgotten_at IS NULL FROM pgbk.file_snapshot WHERE snapshot_id = '$overflow_id'"),
		't', '... and the catalog does not mark it forgotten');
	$w->set(restic_binary => undef);
}

###########################################################################
# SIGTERM during a long backup with stop_timeout = 0: restic is stopped,
# the watcher exits 0 at once; the next start takes the snapshot.
$w->set(stop_timeout => '0', forget_interval => '0');
{
	open(my $fh, '>', "$root/a/huge.bin") or die;
	open(my $rnd, '<', '/dev/urandom') or die;
	for (1 .. 400) { my $buf; read($rnd, $buf, 1 << 20); print $fh $buf; }
	close($rnd);
	close($fh);
}
$pos = $w->log_size;
$w->start;
$w->wait_for_log(qr/taking a snapshot \(trigger startup\)/, $pos) or die;
usleep(300_000);
my $t1 = time();
is($w->stop, 0, 'SIGTERM during a backup: exit 0');
cmp_ok(time() - $t1, '<', 15, sprintf('... within %.1f s', time() - $t1));
like(substr($w->log_contents, $pos), qr/stopping restic backup.*restic was stopped before its snapshot was written/s,
	'restic was stopped and the log says the next start takes a fresh snapshot');
unlink("$root/a/huge.bin");
# restic may or may not have removed its lock (a SIGTERM that lands while it
# creates the lock leaves it); the next start removes stale ones first
$n = rows() + 1;
$w->start;
$node->poll_query_until('postgres', "SELECT count(*) = $n FROM pgbk.file_snapshot")
  or die 'no snapshot after the restart';
opendir($dh, "$repo->{dir}/files/locks") or die;
is(scalar(grep { /^[0-9a-f]{64}$/ } readdir($dh)), 0,
	'after the next start no lock of the stopped restic is left');
closedir($dh);
is($w->stop, 0, 'stop');

$node->stop;
done_testing();
