# Snapshot requests and exact spans (issue 10, items 1, 11, 12).
#  - A restore point made while no watcher is connected warns, and the
#    watcher serves the request when it starts; the plan says how long after
#    the restore point the snapshot was taken, and the restore works.
#  - NOTIFY pgbk_snapshot by anyone is only a wake-up call: a forged one
#    takes no snapshot, and a later snapshot with the same tag does not
#    replace the one bound to the restore point (plan and pgbk restore).
#  - A file rewritten while a (slow) scan runs: restoring the moment before
#    the rewrite, by the SQL plan and by pgbk restore --target-time, gives
#    the old content, not the scan's later one.
use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(time usleep);
use lib 't/lib';
use PgbkTest;
use PgbkWatcher;

my $repo = PgbkTest::local_repo('requests');
my $node = PgbkTest::new_node('requests', $repo->{conf});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgbk;
	CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder;
	CREATE ROLE app_admin LOGIN IN ROLE pgbk_admin;
	CREATE ROLE mallory LOGIN;
});

my $root = PostgreSQL::Test::Utils::tempdir('app') . '/app';
make_path("$root/config");
PgbkWatcher::put($root, "config/f$_.yaml", 100 * $_) for 1 .. 5;
PgbkWatcher::write_file("$root/config/settings.yaml", "version: old\n" . ('o' x 5000));

# restic, slowed down (before it reads anything) while $flag exists
my $tmp = PostgreSQL::Test::Utils::tempdir('bin');
my $flag = "$tmp/slow";
PgbkWatcher::write_file("$tmp/restic", <<"SH", 0755);
#!/bin/sh
for a in "\$@"; do
	if [ "\$a" = backup ] && [ -e '$flag' ]; then sleep 4; fi
done
exec /usr/bin/restic "\$@"
SH

my $w = PgbkWatcher->new(
	roots => [$root],
	restic_binary => "$tmp/restic",
	pgbk_config => $repo->{conf},
	conninfo => $node->connstr('postgres') . ' user=pgbk_watcher');
$w->init;
PgbkTest::append_file($repo->{conf}, "restic_password_file = '$w->{settings}{restic_password_file}'\n");

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub wait_rows
{
	my ($cond, $what) = @_;
	$node->poll_query_until('postgres', "SELECT $cond") or die "timed out waiting for $what";
	return;
}

sub restore_files
{
	my (@target) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('files_to') . '/files';
	my ($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, @target,
		'--files-to', $dir);
	return ($rc, $out . $err, $dir);
}

# ---- item 12: a restore point while no watcher is connected
my $state_a = PgbkWatcher::tree_state($root);
my ($rc, $out, $err) = $node->psql('postgres', "SELECT bk_create_restore_point('rp-offline')",
	extra_params => [ '-U', 'app_admin' ]);
is($rc, 0, 'bk_create_restore_point works with no watcher connected');
like($err, qr/WARNING:  no pgbk-watcher is connected: the file snapshot for "rp-offline" is taken when one connects/,
	'... and warns that no watcher is connected');
is(q1("SELECT count(*) FROM pgbk.file_snapshot_request WHERE name = 'rp-offline' AND served_by IS NULL"),
	1, 'the request waits in the catalog');

$w->start;
wait_rows("EXISTS (SELECT 1 FROM pgbk.file_snapshot WHERE 'rp-offline' = ANY (restore_points))",
	'the missed request');
my $off_id = q1("SELECT snapshot_id FROM pgbk.file_snapshot WHERE 'rp-offline' = ANY (restore_points)");
is(q1("SELECT served_by FROM pgbk.file_snapshot_request WHERE name = 'rp-offline'"),
	$off_id, 'the watcher served the request it missed, bound to its snapshot');
my ($ok, $reason, $bid) = split /\|/, q1(
	"SELECT recoverable, reason, backup_id FROM bk_restore_point_named('rp-offline') WHERE scope = 'files'");
is("$ok|$bid", "t|$off_id", 'the plan for the name takes that snapshot');
like($reason, qr/^file snapshot taken [0-9.]+ s after the restore point/,
	'... and says how long after the restore point it was taken');
my $dir;
($rc, $out, $dir) = restore_files('--target-name', 'rp-offline');
is($rc, 0, 'pgbk restore --target-name rp-offline --files-to') or diag $out;
my @d = PgbkWatcher::compare_states($state_a, PgbkWatcher::tree_state($dir));
is(scalar(@d), 0, '... restores the files of that moment') or diag "@d";

# ---- item 1: forged requests
($rc, $out, $err) = $node->psql('postgres', "SELECT bk_create_restore_point('rp-real')",
	extra_params => [ '-U', 'app_admin' ]);
unlike($err, qr/WARNING/, 'no warning with a watcher connected');
wait_rows("EXISTS (SELECT 1 FROM pgbk.file_snapshot WHERE 'rp-real' = ANY (restore_points))",
	'the restore point snapshot');
my $real_id = q1("SELECT snapshot_id FROM pgbk.file_snapshot WHERE 'rp-real' = ANY (restore_points)");
my $state_b = PgbkWatcher::tree_state($root);

# damage, then wait for its snapshot
my $n = q1('SELECT count(*) FROM pgbk.file_snapshot');
PgbkWatcher::write_file("$root/config/f1.yaml", 'DAMAGED');
unlink("$root/config/f2.yaml");
wait_rows("count(*) > $n FROM pgbk.file_snapshot", 'the snapshot of the damage');
$n = q1('SELECT count(*) FROM pgbk.file_snapshot');
my $logpos = $w->log_size;
($rc, $out, $err) = $node->psql('postgres', "NOTIFY pgbk_snapshot, 'rp-real'",
	extra_params => [ '-U', 'mallory' ]);
is($rc, 0, 'anyone may NOTIFY pgbk_snapshot');
($rc, $out, $err) = $node->psql('postgres',
	"INSERT INTO pgbk.file_snapshot_request (name) VALUES ('rp-real')",
	extra_params => [ '-U', 'mallory' ]);
like($err, qr/permission denied/, '... but not write a request');
($rc, $out, $err) = $node->psql('postgres', "SELECT bk_request_file_snapshot('rp-real')",
	extra_params => [ '-U', 'mallory' ]);
like($err, qr/permission denied/, '... nor call bk_request_file_snapshot');
# bounded wait: settle delay + restic's run would have been enough
my $deadline = time() + 4;
usleep(200_000) while time() < $deadline;
is(q1("SELECT count(*) FROM pgbk.file_snapshot WHERE 'rp-real' = ANY (restore_points)"), 1,
	'a forged NOTIFY takes no snapshot');
is(q1('SELECT count(*) FROM pgbk.file_snapshot'), $n, '... none at all');

# an administrator's later request with the same name: a later snapshot
# with the same tag, which must not replace the restore point's one
q1("SET ROLE app_admin; SELECT bk_request_file_snapshot('rp-real')");
wait_rows("count(*) = 2 FROM pgbk.file_snapshot WHERE 'rp-real' = ANY (restore_points)",
	'the later tagged snapshot');
is(q1("SELECT backup_id FROM bk_restore_point_named('rp-real') WHERE scope = 'files'"),
	$real_id, 'the plan keeps the snapshot bound to the restore point');
($rc, $out, $dir) = restore_files('--target-name', 'rp-real');
is($rc, 0, 'pgbk restore --target-name rp-real --files-to') or diag $out;
@d = PgbkWatcher::compare_states($state_b, PgbkWatcher::tree_state($dir));
is(scalar(@d), 0, '... gives the original files, not the damaged ones') or diag "@d";

# ---- item 11: a file rewritten during a slow scan
$n = q1('SELECT count(*) FROM pgbk.file_snapshot');
my $quiet_id = q1('SELECT snapshot_id FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1');
my $state_c = PgbkWatcher::tree_state($root);
PgbkWatcher::write_file($flag, '');
$logpos = $w->log_size;
q1("SET ROLE app_admin; SELECT bk_create_restore_point('rp-slow')");
ok($w->wait_for_log(qr/taking a snapshot \(trigger request/, $logpos), 'a slow snapshot starts');
usleep(1_000_000);
my $t = time();
usleep(500_000);
PgbkWatcher::write_file("$root/config/settings.yaml", "version: NEW\n" . ('n' x 5000));
unlink($flag);
my $target = strftime('%Y-%m-%d %H:%M:%S', gmtime($t)) . sprintf('.%06d+00', ($t - int($t)) * 1e6);
note "target $target";
wait_rows("count(*) >= $n + 2 FROM pgbk.file_snapshot", 'the slow snapshot and the next one');
my $slow_id = q1("SELECT snapshot_id FROM pgbk.file_snapshot WHERE 'rp-slow' = ANY (restore_points)");
is(q1("SELECT taken_at < '$target' AND scan_ended_at > '$target' FROM pgbk.file_snapshot WHERE snapshot_id = '$slow_id'"),
	't', 'the slow scan began before the target and ended after it');
is(q1("SELECT exact_until < scan_ended_at FROM pgbk.file_snapshot WHERE snapshot_id = '$slow_id'"),
	't', '... and holds no exact moment (a file changed during it)');
is(q1("SELECT snapshot_id FROM pgbk.file_snapshot_at('$target')"),
	$quiet_id, 'the snapshot for the target is the one before, whose span covers it');
is(q1("SELECT backup_id || '|' || distance FROM bk_restore_point('$target') WHERE scope = 'files'"),
	"$quiet_id|00:00:00", 'bk_restore_point agrees: exactly the target');
($rc, $out, $dir) = restore_files('--target-time', $target);
is($rc, 0, 'pgbk restore --target-time --files-to') or diag $out;
is(PgbkWatcher::slurp("$dir/config/settings.yaml"), "version: old\n" . ('o' x 5000),
	'the restored file has the content it had at the target');
@d = PgbkWatcher::compare_states($state_c, PgbkWatcher::tree_state($dir));
is(scalar(@d), 0, '... and so has the whole tree') or diag "@d";

is($w->stop, 0, 'the watcher stops');
is(q1("SELECT count(*) FROM pgbk.file_snapshot WHERE exact_from IS NOT NULL AND exact_until IS NULL"),
	0, 'after a stop, no span is left open');
$node->stop;
done_testing();
