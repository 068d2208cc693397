# pgbk-watcher against S3 (a real RadosGW on 127.0.0.1 over TLS): the
# files repository is derived from pgbk.conf (s3:<endpoint>/<bucket>/
# <prefix>/files, credentials from the credentials file, --cacert from
# s3_ca_file, path-style lookups); snapshots restore byte for byte.  While
# the gateway is down: a clear log line, a failure event in the catalog, no
# row claiming success, retries with growing delays; when it is back the
# next retry records the snapshot.  The S3 secret never reaches the log.
use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkS3;
use PgbkTest;
use PgbkWatcher;

my $s3 = PgbkS3->start();
my $base = PostgreSQL::Test::Utils::tempdir('s3conf');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'site1', key_file => $key);
push @PgbkTest::SECRET_STRINGS, $s3->secret_key;

# the database archives locally here; the watcher's repository is on S3
my $local = PgbkTest::local_repo('s3node');
my $node = PgbkTest::new_node('s3node', $local->{conf});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgbk;
	CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder;
});

my $root = PostgreSQL::Test::Utils::tempdir('app') . '/pimcore';
make_path($root);
PgbkWatcher::gen_pimcore_tree($root);

my $w = PgbkWatcher->new(
	roots => [$root],
	pgbk_config => $conf,
	conninfo => $node->connstr('postgres') . ' user=pgbk_watcher');
$w->init;
like($w->log_contents, qr{created restic repository "s3:\Q@{[$s3->endpoint]}\E/pgbk-test/site1/files"},
	'restic repository created at <endpoint>/<bucket>/<prefix>/files');
my ($rc, $out, $err) = $w->run('--init');
is($rc, 0, '--init on an existing repository succeeds');
like($err, qr/exists already/, '... saying it exists');

my %state_of;
my @ids;

sub wait_rows
{
	my ($n) = @_;
	$node->poll_query_until('postgres', "SELECT count(*) >= $n FROM pgbk.file_snapshot")
	  or die "snapshot $n was not recorded";
	return $node->safe_psql('postgres',
		'SELECT snapshot_id FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1');
}

$w->start;
my $id = wait_rows(1);
$state_of{$id} = PgbkWatcher::tree_state($root);
push @ids, $id;
unlike($w->log_contents, qr/looked up with restic instead/,
	'new snapshots are looked up in the S3 listing directly');

PgbkWatcher::put($root, "public/var/assets/2025/s3-$_.bin", 5000 * $_) for 1 .. 5;
$id = wait_rows(2);
$state_of{$id} = PgbkWatcher::tree_state($root);
push @ids, $id;

rename("$root/public/var/assets/2024", "$root/public/var/assets/old-2024") or die;
unlink("$root/var/versions/object/g3/3") or die;
$id = wait_rows(3);
$state_of{$id} = PgbkWatcher::tree_state($root);
push @ids, $id;

# The gateway goes away: restic fails, clearly, and is retried.
$s3->stop_gateway;
my $pos = $w->log_size;
PgbkWatcher::put($root, 'public/var/assets/during-outage.bin', 777);
ok( $w->wait_for_log(
		qr/ERROR: could not take a snapshot in restic repository "s3:[^"]+": restic exited with code 1: .*connection refused.*; retrying in 1 s/,
		$pos),
	'restic failure: a log line naming the repository, the cause and the retry');
ok($w->wait_for_log(qr/retrying in 2 s/, $pos), 'the next retry waits longer');
like(substr($w->log_contents, $pos), qr/restic backup: .*connection refused/,
	"restic's own stderr is in the log");
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pgbk.event WHERE kind = 'files_backup_failed'")
  or die 'no failure event';
pass('the failure is recorded as a catalog event');
is($node->safe_psql('postgres', 'SELECT status FROM pgbk.files_status'),
	'failing', 'pgbk.files_status says failing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot'),
	'3', 'no catalog row claims a snapshot');

# Back: the next retry takes and records the snapshot.
$s3->start_gateway;
$id = wait_rows(4);
$state_of{$id} = PgbkWatcher::tree_state($root);
push @ids, $id;
is( $node->safe_psql('postgres',
		"SELECT trigger, status FROM pgbk.file_snapshot WHERE snapshot_id = '$id'"),
	'change|complete',
	'after the outage the change is snapshotted');
is($node->safe_psql('postgres', 'SELECT status FROM pgbk.files_status'),
	'ok', 'pgbk.files_status is ok again');

for my $sid (@ids)
{
	my ($ok, $msg) = $w->restore_matches($state_of{$sid}, id => $sid);
	ok($ok, 'S3 snapshot ' . substr($sid, 0, 8) . ' restores byte for byte') or diag $msg;
}
my $t = $node->safe_psql('postgres', qq{
	SELECT to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
	FROM pgbk.file_snapshot WHERE snapshot_id = '$ids[1]'});
my ($ok, $msg) = $w->restore_matches($state_of{ $ids[1] }, time => $t);
ok($ok, 'restore by target time picks the snapshot of that moment') or diag $msg;

is($w->stop, 0, 'clean stop');
PgbkTest::no_secrets($w->log_contents, 'the watcher log');
$node->stop;
$s3->stop;
done_testing();
