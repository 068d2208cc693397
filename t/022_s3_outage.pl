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

# Memory of this node's uploaders, from /proc (for the README's sizing
# note): peak (VmHWM) and current resident memory, and of it the private
# part (RssAnon), the mapped files (RssFile) and shared memory (RssShmem).
sub uploader_memory
{
	my ($node) = @_;
	open(my $pf, '<', $node->data_dir . '/postmaster.pid') or return ();
	my $pm = <$pf>;
	close $pf;
	chomp $pm;
	my @out;
	opendir(my $d, '/proc') or return ();
	for my $pid (sort grep { /^\d+$/ } readdir($d))
	{
		open(my $fh, '<', "/proc/$pid/status") or next;
		my %st = map { /^(\w+):\s*(.*?)\s*$/ ? ($1, $2) : () } <$fh>;
		close $fh;
		next unless ($st{PPid} // '') eq $pm;
		open(my $cf, '<', "/proc/$pid/cmdline") or next;
		my $cmd = do { local $/; <$cf> } // '';
		close $cf;
		next unless $cmd =~ /pgbk uploader/;
		push @out, "uploader $pid: VmHWM $st{VmHWM}, VmRSS $st{VmRSS} (RssAnon $st{RssAnon}, RssFile $st{RssFile}, RssShmem $st{RssShmem})";
	}
	closedir($d);
	return @out;
}

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
# one sentence: the file is named once (in the object's key), not again by
# a "could not upload" stacked in front
my ($file) = $error =~ /([0-9A-F]{24})/;
ok(defined $file, 'the last error names the file');
my $named = () = $error =~ /\Q$file\E/g;
is($named, 1, "the last error names the file once: $error");
unlike($error, qr/could not upload/, '... with no prefix repeating it');
burst(3);

# The outage spans a restart: the new processes must read the repository
# descriptor before archiving anything, and the last error says that is
# what archiving waits for.
# (immediate: a clean shutdown spends its time retrying the archive)
$node->stop('immediate');
$node->start;
$node->poll_query_until('postgres',
	"SELECT last_error LIKE 'archiving waits for the repository descriptor: %' FROM bk_status WHERE component = 'archive'")
  or die 'bk_status did not say archiving waits for the descriptor';
like( $node->safe_psql('postgres', "SELECT last_error FROM bk_status WHERE component = 'archive'"),
	qr/^archiving waits for the repository descriptor: could not connect to s3 endpoint .*pgbk\.repo/,
	'after a restart during the outage, last_error says archiving waits for the repository descriptor, and why');

# back
$s3->start_gateway;
ok(PgbkTest::wait_archived($node), 'after the gateway is back, everything drains');
$node->poll_query_until('postgres',
	"SELECT status = 'ok' AND failing_since IS NULL FROM bk_status WHERE component = 'archive'")
  or die 'status did not recover';
pass('bk_status is ok again');
diag($_) for uploader_memory($node);

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
