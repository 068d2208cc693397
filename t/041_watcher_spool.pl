# pgbk-watcher while the catalog database is down: snapshots keep being
# taken, their records wait in the fsync'd spool (also across a watcher
# restart), and once the database is back they are all in the catalog, in
# order, without duplicates.  A record delivered twice (a crash between
# delivery and removal) is still one row.  `--once` with the database down
# exits 6 and leaves its record for the next run.
use strict;
use warnings;

use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkWatcher;

my $repo = PgbkTest::local_repo('spool');
my $node = PgbkTest::new_node('spool', $repo->{conf});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgbk;
	CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder;
});

my $root = PostgreSQL::Test::Utils::tempdir('app') . '/files';
make_path($root);
PgbkWatcher::put($root, "assets/a$_.bin", 1000 * $_) for 1 .. 20;
PgbkWatcher::put($root, 'var/cache/x', 10);

my $w = PgbkWatcher->new(
	roots => [$root],
	pgbk_config => $repo->{conf},
	conninfo => $node->connstr('postgres') . ' user=pgbk_watcher connect_timeout=5');
$w->init;
$w->start;
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM pgbk.file_snapshot')
  or die 'no start snapshot';
pass('start snapshot recorded while the database is up');

my %state_of;
my @queued;    # full ids in the order the watcher queued them

# Make a change and wait until its snapshot is queued; returns the full id.
sub burst
{
	my ($what) = @_;
	my $pos = $w->log_size;
	PgbkWatcher::put($root, "assets/$what.bin", 4321);
	my $id = $w->wait_for_log(qr/snapshot ([0-9a-f]{64}) \(taken at [^,]+, trigger change\) is queued/,
		$pos)
	  or die "no snapshot for $what";
	$state_of{$id} = PgbkWatcher::tree_state($root);
	push @queued, $id;
	return $id;
}

# The database goes away.
$node->stop;
my $pos = $w->log_size;
burst('down1');
ok($w->wait_for_log(qr/WARNING: (?:could not connect to|lost the connection to) the catalog database: .*record\(s\) wait in the spool/, 0),
	'the outage is logged, saying records wait in the spool');
burst('down2');
is(scalar($w->spool_snapshots), 2, 'two snapshot records wait in the spool');
my $saved_record = PgbkWatcher::slurp("$w->{spool}/" . ($w->spool_snapshots)[0]);
like($saved_record, qr/"kind":"snapshot"/, 'a spool record is a JSON snapshot record');

# The watcher restarts while the database is still down: nothing is lost.
$pos = $w->log_size;
is($w->stop, 0, 'the watcher stops cleanly with the database down');
my $n_spooled = scalar($w->spool_files);
like(substr($w->log_contents, $pos), qr/\b$n_spooled record\(s\) stay in the spool/, '... keeping its records');
is(scalar($w->spool_snapshots), 2, '... the two snapshot records among them');
$pos = $w->log_size;
$w->start;
my $sid = $w->wait_for_log(qr/snapshot ([0-9a-f]{64}) \(taken at [^,]+, trigger startup\) is queued/,
	$pos)
  or die 'no start snapshot after the restart';
$state_of{$sid} = PgbkWatcher::tree_state($root);
push @queued, $sid;
like(substr($w->log_contents, $pos), qr/\b$n_spooled record\(s\) in the spool/,
	'after the restart the watcher finds the spooled records');
burst('down3');
is(scalar($w->spool_snapshots), 4, 'four snapshot records wait in the spool');

# The database is back: everything arrives, in order, once.
$node->start;
$node->poll_query_until('postgres', 'SELECT count(*) = 5 FROM pgbk.file_snapshot')
  or die 'the spool was not delivered';
pass('all spooled snapshots reached the catalog');
my @rows = split /\n/, $node->safe_psql('postgres',
	q{SELECT snapshot_id FROM pgbk.file_snapshot ORDER BY recorded_at, snapshot_id OFFSET 1});
is_deeply(\@rows, \@queued, 'in the order they were taken');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT snapshot_id, lag(taken_at) OVER (ORDER BY recorded_at) AS prev, taken_at
		FROM pgbk.file_snapshot) s WHERE prev > taken_at}),
	'0',
	'taken_at grows with the delivery order');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT snapshot_id) FROM pgbk.file_snapshot'),
	'5', 'no duplicates');
$w->wait_for_log(qr/recorded snapshot \Q@{[substr($queued[-1], 0, 8)]}\E in the catalog/, 0);
is(scalar($w->spool_files), 0, 'the spool is empty');
for my $id (@queued)
{
	my ($ok, $msg) = $w->restore_matches($state_of{$id}, id => $id);
	ok($ok, 'snapshot ' . substr($id, 0, 8) . ' taken while the database was down restores')
	  or diag $msg;
}

# A record delivered again (as after a crash between delivery and removal)
# is still one row.
PgbkWatcher::write_file("$w->{spool}/00000000000000009999.rec", $saved_record, 0600);
$pos = $w->log_size;
is($w->stop, 0, 'stop');
$w->start;
ok($w->wait_for_log(qr/was already in the catalog/, $pos), 'a re-delivered record is recognised');
$node->poll_query_until('postgres', 'SELECT count(*) = 6 FROM pgbk.file_snapshot')
  or die 'no start snapshot';
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot'),
	'6', 'and adds no row (only the new start snapshot)');
is($w->stop, 0, 'stop');

# --once with the database down: exit 6, the record stays for the next run.
$node->stop;
PgbkWatcher::put($root, 'assets/once.bin', 99);
my ($rc, $out, $err) = $w->run('--once');
is($rc, 6, '--once with the catalog unreachable exits 6');
like($err, qr/1 record\(s\) stay in the spool/, '... keeping the record');
is(scalar($w->spool_files), 1, 'one record in the spool');
$node->start;
($rc, $out, $err) = $w->run('--once');
is($rc, 0, '--once with the catalog back exits 0');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.file_snapshot'),
	'8', 'both --once snapshots are in the catalog');
is(scalar($w->spool_files), 0, 'the spool is empty');
is( $node->safe_psql('postgres',
		"SELECT string_agg(trigger, ',' ORDER BY recorded_at) FROM pgbk.file_snapshot WHERE recorded_at > (SELECT max(recorded_at) - interval '1 hour' FROM pgbk.file_snapshot) AND trigger = 'once'"
	),
	'once,once',
	'recorded with trigger once');

$node->stop;
done_testing();
