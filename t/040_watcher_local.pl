# pgbk-watcher against a local restic repository (derived from pgbk.conf:
# <repository>/files): a Pimcore-like tree goes through bursts of changes
# (create, modify, rename a directory, delete, mkdir -p with files); after
# each burst a snapshot is recorded within settle delay + restic's run, and
# restoring each recorded snapshot (by id, by time) gives the tree of that
# moment byte for byte, without the excluded directories.  Changes only in
# excluded directories cause no snapshot.  A named request (NOTIFY) gives a
# snapshot tagged with the name.  SIGHUP reloads, SIGTERM stops cleanly.
# A snapshot recorded by the watcher's role that restic does not have is
# refused by pgbk restore and reported by pgbk verify --catalog.
use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use lib 't/lib';
use PgbkTest;
use PgbkWatcher;

my $repo = PgbkTest::local_repo('watcher');
my $node = PgbkTest::new_node('watcher', $repo->{conf});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgbk;
	CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder;
	CREATE ROLE app_admin LOGIN IN ROLE pgbk_admin;
});

my $root = PostgreSQL::Test::Utils::tempdir('app') . '/pimcore';
make_path($root);
PgbkWatcher::gen_pimcore_tree($root);

my $w = PgbkWatcher->new(
	roots => [$root],
	pgbk_config => $repo->{conf},
	conninfo => $node->connstr('postgres') . ' user=pgbk_watcher');
$w->init;
ok(-f "$repo->{dir}/files/config", 'restic repository created under the pgbk repository');
# pgbk restore --files-to reads the restic password from pgbk.conf
PgbkTest::append_file($repo->{conf}, "restic_password_file = '$w->{settings}{restic_password_file}'\n");

# the moments we will restore: snapshot id => tree state
my %state_of;
my @ids;

sub rows
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot');
}

# Wait for snapshot number $n; returns (id, latency in s from $since,
# restic duration in s, trigger, status)
sub wait_snapshot
{
	my ($n, $since) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM pgbk.file_snapshot")
	  or die "snapshot $n was not recorded";
	my $row = $node->safe_psql('postgres', qq{
		SELECT snapshot_id, extract(epoch FROM recorded_at), extract(epoch FROM duration),
		       trigger, status
		FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1});
	my ($id, $at, $dur, $trigger, $status) = split /\|/, $row;
	return ($id, $at - ($since // $at), $dur, $trigger, $status);
}

my $settle = 1;
$w->start;
my ($id0, undef, undef, $trig0, $status0) = wait_snapshot(1);
is($trig0, 'startup', 'a snapshot at start');
is($status0, 'complete', '... complete');
$state_of{$id0} = PgbkWatcher::tree_state($root);
push @ids, $id0;
my $row0 = $node->safe_psql('postgres',
	"SELECT host, paths = ARRAY['$root'], tags[1], tags[2] LIKE 'pgbk-from:%Z', cardinality(tags), restore_points, files_new > 50, bytes_added > 0 FROM pgbk.file_snapshot");
is($row0, "test-host|t|pgbk|t|2|{}|t|t", 'row: host, roots, tags (pgbk, the exact span\'s start), counters');

# Bursts of changes; each must end in one snapshot of exactly that tree.
my @bursts = (
	[
		'create: new assets and a new nested directory',
		sub {
			PgbkWatcher::put($root, "public/var/assets/2025/01/new-$_.png", 1000 * $_)
			  for 1 .. 5;
			PgbkWatcher::put($root, 'var/versions/object/g99/1', 42);
		}
	],
	[
		'modify: rewrite, append, chmod',
		sub {
			PgbkWatcher::put($root, 'public/var/assets/2023/01/img-2.jpg', 333);
			open(my $fh, '>>', "$root/config/pimcore/system.yaml") or die;
			print $fh "pimcore:\n  changed: true\n";
			close($fh);
			chmod(0600, "$root/var/classes/DataObject/Class3.php");
		}
	],
	[
		'rename a directory',
		sub {
			rename("$root/public/var/assets/2023", "$root/public/var/assets/archive-2023")
			  or die $!;
		}
	],
	[
		'delete files and a tree',
		sub {
			unlink("$root/private/contract.pdf") or die;
			remove_tree("$root/var/versions/object/g1");
		}
	],
	[
		'mkdir -p with files at every level',
		sub {
			my $d = "$root/public/var/assets/deep";
			make_path("$d/a/b/c/d/e");
			my $p = $d;
			for my $l (qw(a b c d e))
			{
				$p .= "/$l";
				PgbkWatcher::put($root, substr("$p/file-$l.bin", length($root) + 1), 777);
			}
		}
	],
	[
		'rename a directory into an excluded one and a file out of one',
		sub {
			rename("$root/var/versions/object/g2", "$root/var/tmp/g2") or die $!;
			rename("$root/var/tmp/upload.part", "$root/public/var/assets/upload.bin")
			  or die $!;
		}
	],);

my $n = 1;
for my $b (@bursts)
{
	my ($what, $code) = @$b;
	$code->();
	my $end = time();
	$n++;
	my ($id, $lat, $dur, $trigger) = wait_snapshot($n, $end);
	is($trigger, 'change', "$what: snapshot taken for the change");
	# settle delay + restic's own run + slack for a busy CI machine
	cmp_ok($lat, '<=', $settle + $dur + 4,
		sprintf('%s: recorded %.2f s after the burst (restic ran %.2f s)', $what, $lat, $dur));
	$state_of{$id} = PgbkWatcher::tree_state($root);
	push @ids, $id;
	note sprintf('%s: %.2f s from the last change to the catalog row', $what, $lat);
}
is(rows(), scalar(@bursts) + 1, 'one snapshot per burst');

# Changes only in excluded directories: no snapshot.  (Bounded wait:
# settle delay + 2 s, then the count must not have moved.)
my $before = rows();
my $logpos = $w->log_size;
PgbkWatcher::put($root, "var/cache/dev/pimcore/new$_.php", 10) for 1 .. 20;
make_path("$root/var/tmp/x/y/z");
PgbkWatcher::put($root, 'var/tmp/x/y/z/f', 10);
PgbkWatcher::put($root, 'var/log/prod.log', 1000);
PgbkWatcher::put($root, 'var/sessions/sess_new', 10);
PgbkWatcher::put($root, 'public/var/tmp/thumbnails/t2.jpg', 10);
unlink("$root/var/cache/dev/pimcore/c1.php");
my $deadline = time() + $settle + 2;
usleep(100_000) while time() < $deadline && rows() == $before;
is(rows(), $before, 'changes only in excluded directories take no snapshot');
unlike(substr($w->log_contents, $logpos), qr/taking a snapshot/, '... and start no restic');

# A named restore point: bk_create_restore_point (issue 3) calls
# bk_request_file_snapshot, whose NOTIFY makes the watcher take a snapshot
# at once, tagged with the name.  As a member of pgbk_admin.
my $rp = 'before-upgrade:v2';
PgbkWatcher::put($root, 'config/pimcore/before-upgrade.yaml', 123);
my $rp_at = $node->safe_psql('postgres',
	"SELECT bk_create_restore_point('$rp'); SELECT now()",
	extra_params => [ '-U', 'app_admin' ]);
$n++;
my ($rp_id, undef, undef, $rp_trigger) = wait_snapshot($n);
is($rp_trigger, 'request', 'the restore point took a snapshot at once');
$state_of{$rp_id} = PgbkWatcher::tree_state($root);
push @ids, $rp_id;
is( $node->safe_psql('postgres',
		"SELECT restore_points, 'rp:before-upgrade%3Av2' = ANY (tags) FROM pgbk.file_snapshot WHERE snapshot_id = '$rp_id'"
	),
	"{$rp}|t",
	'the snapshot carries the restore point (catalog and restic tag)');
is( $node->safe_psql('postgres',
		"SELECT snapshot_id FROM pgbk.file_snapshot_for_restore_point('$rp')"),
	$rp_id,
	'file_snapshot_for_restore_point finds it');
my ($rc, $out, $err) = $w->itest_files('find', undef, restore_point => $rp);
like($out, qr/^\Q$rp_id\E /, 'the repository finds it by restore point name too');
my ($ok, $msg) = $w->restore_matches($state_of{$rp_id}, restore_point => $rp);
ok($ok, 'restore by restore point name gives that tree') or diag $msg;

{
	my $plan = $node->safe_psql('postgres',
		"SELECT scope, recoverable, backup_id FROM bk_restore_point_named('$rp') WHERE scope = 'files'");
	is($plan, "files|t|$rp_id", 'bk_restore_point for the restore point lists that file snapshot');
}

# Names that restic would split (commas) or choke on survive as tags.
my $odd = 'before upgrade, v2 (100%)';
$node->safe_psql('postgres', "SELECT bk_request_file_snapshot('$odd')",
	extra_params => [ '-U', 'app_admin' ]);
$n++;
my ($odd_id) = wait_snapshot($n);
$state_of{$odd_id} = PgbkWatcher::tree_state($root);
push @ids, $odd_id;
is( $node->safe_psql('postgres',
		"SELECT restore_points FROM pgbk.file_snapshot WHERE snapshot_id = '$odd_id'"),
	qq({"$odd"}),
	'a name with spaces, commas and % is recorded as it is');
($rc, $out, $err) = $w->itest_files('find', undef, restore_point => $odd);
like($out, qr/^\Q$odd_id\E /, '... and found in the repository by it');

{
	# files only (this node has no base backup): by restore point name, and
	# by the snapshot id bk_restore_point prints in its command
	my $dir2 = PostgreSQL::Test::Utils::tempdir('files_to') . '/files';
	my ($prc, $pout, $perr) = PgbkTest::pgbk('restore', '--config', $repo->{conf},
		'--target-name', $rp, '--files-to', $dir2);
	is($prc, 0, 'pgbk restore --files-to --target-name') or diag $perr;
	my @d = PgbkWatcher::compare_states($state_of{$rp_id}, PgbkWatcher::tree_state($dir2));
	is(scalar(@d), 0, 'pgbk restore --files-to restores it byte for byte') or diag "@d $perr";

	my $cmd = $node->safe_psql('postgres',
		"SELECT command FROM bk_restore_point_named('$rp') WHERE scope = 'files'");
	like($cmd, qr/--files-snapshot \Q$rp_id\E/, 'the plan prints the files restore command');
	my $dir3 = PostgreSQL::Test::Utils::tempdir('files_snap') . '/files';
	($prc, $pout, $perr) = PgbkTest::pgbk('restore', '--config', $repo->{conf},
		'--files-snapshot', $rp_id, '--files-to', $dir3);
	is($prc, 0, 'pgbk restore --files-snapshot ID --files-to') or diag $perr;
	@d = PgbkWatcher::compare_states($state_of{$rp_id}, PgbkWatcher::tree_state($dir3));
	is(scalar(@d), 0, '... restores the same tree') or diag "@d";
	($prc, $pout, $perr) = PgbkTest::pgbk('restore', '--config', $repo->{conf},
		'--files-snapshot', $rp_id, '--files-to', $dir3);
	is($prc, 8, 'a non-empty --files-to directory is refused (exit 8)');
}

# Every recorded moment restores byte for byte, by id and by time.
for my $id (@ids)
{
	my ($ok, $msg) = $w->restore_matches($state_of{$id}, id => $id);
	ok($ok, "snapshot " . substr($id, 0, 8) . ' restores to the tree of its moment')
	  or diag $msg;
}
my ($mid_id, $mid_time) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT snapshot_id, to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
	FROM pgbk.file_snapshot WHERE snapshot_id = '$ids[3]'});
($rc, $out, $err) = $w->itest_files('find', undef, time => $mid_time);
like($out, qr/^\Q$mid_id\E /, 'the snapshot for a target time is the one the catalog has for it');
is( $node->safe_psql('postgres',
		"SELECT snapshot_id FROM pgbk.file_snapshot_at('$mid_time'::timestamptz)"),
	$mid_id,
	'pgbk.file_snapshot_at agrees');

# Restore refuses a non-empty target and says so; a missing id is an error.
my $busy = PostgreSQL::Test::Utils::tempdir('busy');
PgbkWatcher::write_file("$busy/x", 'x');
($rc, $out, $err) = $w->itest_files('restore', $busy, id => $ids[0]);
isnt($rc, 0, 'restore into a non-empty directory is refused');
like($err, qr/status=exists.*not empty/, '... saying why');
($rc, $out, $err) = $w->itest_files('restore', "$busy/new", id => 'deadbeef');
like($err, qr/status=not found.*deadbeef/, 'an unknown snapshot id is reported');
ok(!-e "$busy/new", '... and nothing was created');

# The watcher's role can record, and nothing else.
my ($prc, $pout, $perr) = $node->psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot',
	extra_params => [ '-U', 'pgbk_watcher' ]);
like($perr, qr/permission denied/, "the watcher's role cannot read the catalog");
($prc, $pout, $perr) = $node->psql('postgres', "SELECT bk_request_file_snapshot('x')",
	extra_params => [ '-U', 'pgbk_watcher' ]);
like($perr, qr/permission denied/, '... nor request snapshots');

# SIGHUP: reload (a bad file is refused, the old configuration stays).
$logpos = $w->log_size;
$w->set(settle_delay => 'soon');
$w->signal('HUP');
ok($w->wait_for_log(qr/could not reload the configuration: .*settle_delay.*keeping the current one/,
		$logpos), 'a bad configuration is refused on SIGHUP');
$w->set(settle_delay => '2s');
$w->signal('HUP');
ok($w->wait_for_log(qr/configuration reloaded/, $logpos), 'a good one is loaded');

# SIGTERM: clean stop, exit code 0, nothing left in the spool.
is($w->stop, 0, 'SIGTERM: the watcher exits with code 0');
like($w->log_contents, qr/LOG: stopped/, '... after saying so');
is(scalar($w->spool_files), 0, 'nothing is left in the spool');
unlike($w->log_contents, qr/restic test password/, 'the restic password is not in the log');

# The watcher's role (pgbk_recorder) can record a snapshot restic never
# took, tagged for a restore point, and mark a real one forgotten.  A
# restore of the invented one refuses before writing anything, with its own
# exit code; pgbk verify --catalog reports both.
my $catalog = $node->connstr('postgres');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf}, '--catalog', $catalog);
is($rc, 0, 'pgbk verify --catalog: the catalog and the restic repository agree') or diag("$out$err");
like($err, qr/checking \d+ file snapshots of the catalog against the restic repository/,
	'... having checked the file snapshots');
my $invented = 'e' x 64;
$node->safe_psql('postgres', qq{
	SELECT bk_record_file_snapshot('$invented', now(), 'test-host', ARRAY['$root'],
		ARRAY['pgbk', 'rp:invented'], ARRAY['invented'], 'complete', 'request',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1)}, extra_params => [ '-U', 'pgbk_watcher' ]);
$node->safe_psql('postgres', "SELECT bk_record_file_snapshots_forgotten(ARRAY['$ids[1]'])",
	extra_params => [ '-U', 'pgbk_watcher' ]);
my $fdir = PostgreSQL::Test::Utils::tempdir('invented') . '/files';
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--files-to', $fdir,
	'--files-snapshot', $invented);
is($rc, 5, 'pgbk restore of a snapshot the restic repository lacks: exit 5 (not found)')
  or diag("$out$err");
like($err, qr/file snapshot \Q$invented\E does not exist in restic repository ".*files"/,
	'... saying it does not exist');
ok(!-e $fdir, '... before writing anything');
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--files-to', $fdir,
	'--files-snapshot', substr($ids[2], 0, 12));
is($rc, 0, 'a snapshot that exists restores by id prefix') or diag("$out$err");
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf}, '--catalog', $catalog);
is($rc, 6, 'pgbk verify --catalog: problems (exit 6)') or diag("$out$err");
like($out, qr/^file snapshot \Q$invented\E: missing: the catalog records it \(taken at .*, for restore point invented\) but restic repository ".*" does not hold it$/m,
	'... the invented snapshot is reported missing');
like($out, qr/^file snapshot \Q$ids[1]\E: the catalog marks it forgotten, but restic repository ".*" still holds it$/m,
	'... the hidden real one is reported');
unlike($out, qr/^file snapshot (?!\Q$invented\E|\Q$ids[1]\E)/m, '... and no other');
$node->safe_psql('postgres', qq{
	DELETE FROM pgbk.file_snapshot WHERE snapshot_id = '$invented';
	UPDATE pgbk.file_snapshot SET forgotten_at = NULL WHERE snapshot_id = '$ids[1]'});

$node->stop;
done_testing();
