# Uploaders behind by a backlog prepare the next file (read, scan, compress,
# encrypt) in a helper thread while they store the previous one
# (pg_ext/uploader.c, upload_backlog).  This shows that:
#  - a backlog is drained that way (the uploaders' DEBUG1 lines say which
#    files were prepared in the helper), every segment arrives identical to
#    the original, and every one has its change summary;
#  - a mapped segment that shrinks while the helper thread reads it is
#    caught in that thread (walpush.c's SIGBUS handling is per thread): the
#    upload fails with the usual message and the server does not crash.
use strict;
use warnings;

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkTest;

# Pause archiving (no configuration) and build a backlog of $n segments.
sub build_backlog
{
	my ($node, $n) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = ''");
	$node->reload;
	for (1 .. $n)
	{
		$node->safe_psql('postgres',
			"INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();"
		);
	}
}

my $repo = PgbkTest::local_repo('ahead');
my $node = PgbkTest::new_node('ahead', $repo->{conf}, extra => "log_min_messages = debug1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk; CREATE TABLE t (id int, payload text)');
PgbkTest::wait_archived($node);

###########################################################################
# 1. A backlog drains with files prepared ahead; nothing differs, nothing is
# missing.
build_backlog($node, 16);
my $orig = PostgreSQL::Test::Utils::tempdir('orig');
my @segs = PgbkTest::copy_wal_originals($node, $orig);
my @pending = glob($node->data_dir . '/pg_wal/archive_status/*.ready');
cmp_ok(scalar(@pending), '>=', 16, 'a backlog waits (' . scalar(@pending) . ' files)');
my $log_start = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$repo->{conf}'");
$node->reload;
ok(PgbkTest::wait_archived($node), 'the backlog drains');

my $log = substr(PgbkTest::slurp($node->logfile), $log_start);
my @ahead = $log =~ /"([0-9A-F]{24})" was prepared in a helper thread/g;
cmp_ok(scalar(@ahead), '>=', 4, 'files were prepared in a helper thread while others were stored ('
	  . scalar(@ahead) . ')');
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no process crashed');

my $fetched = PostgreSQL::Test::Utils::tempdir('fetched');
my ($bad, $nosum) = (0, 0);
for my $f (@segs)
{
	my ($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf}, $f, "$fetched/$f");
	if ($rc != 0 || PgbkTest::slurp("$fetched/$f") ne PgbkTest::slurp("$orig/$f"))
	{
		diag("$f: rc=$rc $err");
		$bad++;
	}
	if (!-f "$repo->{dir}/changes/" . substr($f, 0, 16) . "/$f")
	{
		diag("$f: no change summary");
		$nosum++;
	}
}
is($bad, 0, 'every segment is in the repository, identical to the original (' . scalar(@segs) . ')');
is($nosum, 0, 'every segment has its change summary');
my %ahead = map { $_ => 1 } @ahead;
is(scalar(grep { $ahead{$_} } @segs), scalar(keys %ahead),
	'the files prepared ahead are among those checked');

###########################################################################
# 2. A mapped segment shrinks while it is read (test hook: every mapped file
# is truncated once mapped): in the helper thread too, the SIGBUS becomes the
# upload's error, and the server stays up.
$node->stop;
{
	local $ENV{PGBK_TEST_SHRINK_MAPPED} = 1;
	$node->start;
}
my $pid = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
build_backlog($node, 8);
$log_start = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$repo->{conf}'");
$node->reload;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
my ($shrank, $in_helper) = (0, 0);
while (time() < $deadline)
{
	$log = substr(PgbkTest::slurp($node->logfile), $log_start);
	$shrank = () = $log =~ /it shrank or the disk failed while it was read \(SIGBUS\)/g;
	$in_helper = () = $log =~ /was prepared in a helper thread/g;
	last if $shrank >= 8 && $in_helper >= 4;
	usleep(200_000);
}
cmp_ok($shrank, '>=', 8, "uploads of shrinking files failed with the SIGBUS message ($shrank)");
cmp_ok($in_helper, '>=', 4, "... $in_helper of them prepared (and caught) in the helper thread");
unlike($log, qr/terminated by signal 7|Bus error/, 'no process was killed by SIGBUS');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$pid, 'the server did not restart');
my @uploaders = grep { /\S/ } split /\s+/, `pgrep -P $node->{_pid} -f 'pgbk uploader'`;
is(scalar(@uploaders), 2, 'both uploaders still run');
$node->stop('immediate');

done_testing();
