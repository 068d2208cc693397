# Crash: the postmaster is killed with SIGKILL while uploads are running.
# After a restart archiving resumes; the archived sequence has no hole and
# no segment in the repository differs from the original.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkTest;

my $repo = PgbkTest::local_repo('crash');
my $node = PgbkTest::new_node('crash', $repo->{conf}, upload_workers => 3);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk; CREATE TABLE t (id int, payload text)');

# pause archiving (no configuration), build a backlog with real data
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = ''");
$node->reload;
for (1 .. 40)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 30000) g; SELECT pg_switch_wal();");
}
my $orig = PostgreSQL::Test::Utils::tempdir('orig');
my @segs = PgbkTest::copy_wal_originals($node, $orig);
cmp_ok(scalar(@segs), '>=', 40, 'a backlog of segments waits to be archived');

# resume, and kill -9 the postmaster once uploads are under way
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$repo->{conf}'");
$node->reload;
my $deadline = time() + 60;
my $uploaded = 0;
while (time() < $deadline)
{
	$uploaded = $node->safe_psql('postgres', 'SELECT files_uploaded FROM pgbk.archive_state()');
	last if $uploaded >= 3;
	usleep(20_000);
}
cmp_ok($uploaded, '>=', 3, "uploads were running ($uploaded done)");
my $ready_before = () = glob($node->data_dir . '/pg_wal/archive_status/*.ready');
my @children = split /\s+/, `pgrep -P $node->{_pid}`;
$node->kill9;
cmp_ok($ready_before, '>', 0, "killed with $ready_before files still to archive");

# the children notice the postmaster's death and exit; then restart
$deadline = time() + 60;
while (time() < $deadline && grep { $_ && kill(0, $_) } @children)
{
	usleep(100_000);
}
$node->start;
ok(PgbkTest::wait_archived($node), 'after the restart archiving resumes and drains');

# every original is in the repository with the same content, no hole
my $fetched = PostgreSQL::Test::Utils::tempdir('fetched');
my $bad = 0;
for my $f (@segs)
{
	my ($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf}, $f, "$fetched/$f");
	if ($rc != 0 || PgbkTest::slurp("$fetched/$f") ne PgbkTest::slurp("$orig/$f"))
	{
		diag("$f: rc=$rc $err");
		$bad++;
	}
}
is($bad, 0, 'no segment is missing or differs from the original (' . scalar(@segs) . ' checked)');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync(true)');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (
		SELECT segno, lead(segno) OVER (ORDER BY segno) AS next
		FROM pgbk.wal WHERE timeline = 1 AND kind = 'segment') s
	WHERE next IS NOT NULL AND next <> segno + 1}),
	'0',
	'the archived sequence has no hole');
# temporary files a crash left behind are invisible to listings and reads
my @tmp = glob("$repo->{dir}/wal/*/.*.tmp.*");
note(scalar(@tmp) . ' temporary files left by the crash');

###########################################################################
# A process killed after finishing a segment and before marking it .ready:
# after the crash restart the server writes on, and (while wal_keep_size or
# a slot keeps it) no checkpoint marks that segment .ready; the scheduler
# does at start-up, or the repository would have a hole from then on
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = ''");
$node->reload;
$node->safe_psql('postgres', "INSERT INTO t VALUES (-1, 'lost ready'); SELECT pg_switch_wal()");
my $lost = $node->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn() - 1)');
my $ready = $node->data_dir . "/pg_wal/archive_status/$lost.ready";
ok(-e $ready, "segment $lost is finished and .ready");
unlink($ready) or die "unlink $ready: $!";
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$repo->{conf}'");
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;
my $log_offset = -s $node->logfile;
my $bg = $node->background_psql('postgres');
my $bgpid = $bg->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $bgpid;
ok($node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'the server restarted after a backend was killed');
ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset),
	'... through crash recovery');
$node->safe_psql('postgres', "INSERT INTO t VALUES (-2, 'after'); SELECT pg_switch_wal()");
ok(PgbkTest::wait_archived($node), 'archiving drains after the restart');
ok($node->log_contains(
		qr/archiving WAL segment "\Q$lost\E", which was finished but never marked ready/, $log_offset),
	"the scheduler marked $lost .ready and says so");
my ($frc, $fout, $ferr) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf}, $lost, "$fetched/$lost");
is($frc, 0, "segment $lost is in the repository") or diag($ferr);
eval { $bg->quit };

$node->stop;
done_testing();
