# S3 outage: RadosGW's gateway is stopped while a workload runs.
# PostgreSQL keeps the segments (.ready), bk_status says archiving is
# failing and since when; once the gateway is back everything drains, the
# archived sequence has no hole and every segment reads back identical.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkS3;
use PgbkTest;

my $s3 = PgbkS3->start();
my $base = PostgreSQL::Test::Utils::tempdir('outage');
my $key = PgbkTest::keygen("$base/pgbk.key");
# few, short retries: the test is about the outage, not about patience
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'outage', key_file => $key,
	s3_max_retries => 1, s3_connect_timeout => '2s');

my $node = PgbkTest::new_node('outage', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk; CREATE TABLE t (id int, payload text)');

sub burst
{
	my ($n) = @_;
	for (1 .. $n)
	{
		$node->safe_psql('postgres',
			"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();");
	}
	return;
}

burst(5);
ok(PgbkTest::wait_archived($node), 'archiving works before the outage');

# the outage
$s3->stop_gateway;
my $outage_start = $node->safe_psql('postgres', 'SELECT now()');
burst(10);
$node->poll_query_until('postgres',
	"SELECT status = 'failing' AND failing_since IS NOT NULL FROM bk_status WHERE component = 'archive'")
  or die 'bk_status did not report the outage';
my ($since, $pending, $error) = split /\|/, $node->safe_psql('postgres',
	"SELECT failing_since >= '$outage_start'::timestamptz - interval '1 second', pending, last_error FROM bk_status WHERE component = 'archive'");
is($since, 't', 'bk_status shows failing since the outage began');
cmp_ok($pending, '>=', 5, "PostgreSQL keeps the unarchived segments ($pending pending)");
like($error, qr/refused|could not connect|connect/i, 'the last error names the connection problem');
burst(3);

# back
$s3->start_gateway;
ok(PgbkTest::wait_archived($node), 'after the gateway is back, everything drains');
$node->poll_query_until('postgres',
	"SELECT status = 'ok' AND failing_since IS NULL FROM bk_status WHERE component = 'archive'")
  or die 'status did not recover';
pass('bk_status is ok again');

my $orig = PostgreSQL::Test::Utils::tempdir('orig');
my @segs = PgbkTest::copy_wal_originals($node, $orig);
cmp_ok(scalar(@segs), '>=', 18, 'all the workload segments are here');
my $fetched = PostgreSQL::Test::Utils::tempdir('fetched');
my $bad = 0;
for my $f (@segs)
{
	my ($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf, $f, "$fetched/$f");
	$bad++ if $rc != 0 || PgbkTest::slurp("$fetched/$f") ne PgbkTest::slurp("$orig/$f");
}
is($bad, 0, 'every segment reads back byte-identical');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync(true)');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (
		SELECT segno, lead(segno) OVER (ORDER BY segno) AS next
		FROM pgbk.wal WHERE timeline = 1 AND kind = 'segment') s
	WHERE next IS NOT NULL AND next <> segno + 1}),
	'0',
	'the archived sequence has no hole');

$node->stop;
$s3->stop;
done_testing();
