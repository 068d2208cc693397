# Archiving to the embedded default (a local directory): every WAL file a
# workload produced is in the repository and reads back byte-identical with
# `pgbk wal-fetch`, through archive_library = 'pgbk' and through
# archive_command = 'pgbk wal-push %p'.  Plus the duplicate rule, integrity
# errors of wal-fetch, bad input, and secrets staying out of logs.
use strict;
use warnings;

use File::Copy;
use IPC::Run;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;

# A workload that produces several dozen WAL files: real data plus switches.
sub workload
{
	my ($node, $rounds) = @_;
	$node->safe_psql('postgres',
		'CREATE TABLE IF NOT EXISTS t (id int, payload text)');
	for my $i (1 .. $rounds)
	{
		$node->safe_psql('postgres',
			"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();"
		);
	}
	return;
}

# Every original reads back byte-identical; returns the number checked.
sub check_round_trip
{
	my ($conf, $origdir, $what) = @_;
	my $fetched = PostgreSQL::Test::Utils::tempdir("fetched");
	opendir(my $dh, $origdir) or die $!;
	my @files = sort grep { !/^\./ } readdir($dh);
	closedir($dh);
	my $bad = 0;
	for my $f (@files)
	{
		my ($rc, $out, $err) =
		  PgbkTest::pgbk('wal-fetch', '--config', $conf, $f, "$fetched/$f");
		if ($rc != 0 || PgbkTest::slurp("$fetched/$f") ne PgbkTest::slurp("$origdir/$f"))
		{
			diag("$f: rc=$rc $err");
			$bad++;
		}
	}
	is($bad, 0, "$what: all " . scalar(@files) . " files read back byte-identical");
	return scalar(@files);
}

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

# No hole: timeline 1's segments in the catalog are contiguous.
sub check_no_hole
{
	my ($node, $what) = @_;
	$node->safe_psql('postgres', 'SELECT bk_catalog_sync(true)');
	my $holes = $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT segno, lead(segno) OVER (ORDER BY segno) AS next
			FROM pgbk.wal WHERE timeline = 1 AND kind = 'segment') s
		WHERE next IS NOT NULL AND next <> segno + 1});
	is($holes, '0', "$what: no hole in the archived sequence");
	return;
}

###########################################################################
# 1. archive_library = 'pgbk'
my $repo = PgbkTest::local_repo('lib');
my $node = PgbkTest::new_node('lib', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
workload($node, 36);
$node->safe_psql('postgres', 'CHECKPOINT; SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'archive_library: everything archived');

my $orig = PostgreSQL::Test::Utils::tempdir('orig_lib');
my @copied = PgbkTest::copy_wal_originals($node, $orig);
cmp_ok(scalar(@copied), '>=', 36, 'workload produced several dozen WAL files');
my $n = check_round_trip($repo->{conf}, $orig, 'archive_library');
check_no_hole($node, 'archive_library');

# the catalog knows every file, with sizes
$node->poll_query_until('postgres',
	"SELECT count(*) >= $n FROM pgbk.wal WHERE kind = 'segment'")
  or die 'catalog did not catch up';
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pgbk.wal WHERE stored_bytes <= 0 OR raw_bytes <> 16777216 AND kind = 'segment'"
	),
	'0',
	'catalog rows carry stored and raw sizes');

# bk_status: healthy
my $status = $node->safe_psql('postgres',
	"SELECT status, pending, failing_since IS NULL FROM bk_status WHERE component = 'archive'");
is($status, 'ok|0|t', 'bk_status reports archiving ok with nothing pending');

# the uploaders did the work: the callback mostly found files done
my ($fast, $self) = split /\|/, $node->safe_psql('postgres',
	'SELECT callback_fast + callback_waited, callback_self FROM pgbk.archive_state()');
cmp_ok($fast, '>', 0, "callback found uploads done by workers ($fast fast, $self self)");

###########################################################################
# 2. The duplicate rule (invariant 2).  Identical content: success.
# Different content under a name the repository has: refused, object
# unchanged, the log and bk_status say why.
my $name = $copied[3];
my $key = "$repo->{dir}/wal/" . substr($name, 0, 16) . "/$name";
my $before = PgbkTest::slurp($key);
my ($rc, $out, $err) =
  PgbkTest::pgbk('wal-push', '--config', $repo->{conf}, "$orig/$name");
is($rc, 0, 'pushing identical content again succeeds');
like($err, qr/already in .* with identical content/, '... and says so');

my $forged = PostgreSQL::Test::Utils::tempdir('forged') . "/$name";
copy("$orig/$name", $forged) or die;
open(my $fh, '+<', $forged) or die;
binmode $fh;
seek($fh, 100000, 0);
print $fh "X" x 100;
close($fh);
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $repo->{conf}, $forged);
is($rc, 8, 'different content under an archived name is refused (exit 8)');
like($err, qr/refusing to overwrite "\Q$name\E"/, '... naming the file');
is(PgbkTest::slurp($key), $before, 'the stored object is unchanged');

# Through the archive module: a segment whose name is already taken by
# other content.  Put a forged object for the next segment the server will
# archive, then make the server archive it.
my $next = $node->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn())');
my $forged2 = PostgreSQL::Test::Utils::tempdir('forged2') . "/$next";
copy("$orig/$name", $forged2) or die;
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $repo->{conf}, $forged2);
is($rc, 0, 'planted a foreign object under the next segment name');
my $nextkey = "$repo->{dir}/wal/" . substr($next, 0, 16) . "/$next";
my $planted = PgbkTest::slurp($nextkey);
my $logpos = -s $node->logfile;
$node->safe_psql('postgres',
	'INSERT INTO t SELECT 1, $$x$$; SELECT pg_switch_wal()');
$node->poll_query_until('postgres',
	"SELECT status = 'failing' AND last_error LIKE '%refusing to overwrite%' FROM bk_status WHERE component = 'archive'"
) or die 'bk_status did not report the refusal';
pass('bk_status shows the refusal as failing, with the reason');
ok( $node->wait_for_log(qr/refusing to overwrite "\Q$next\E"/, $logpos),
	'the server log names the refused file');
is(PgbkTest::slurp($nextkey), $planted, 'the stored object was not replaced');
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pgbk.event WHERE kind = 'duplicate_refused' AND object = '$next'")
  or die 'no event recorded';
pass('the refusal is recorded as a catalog event');
ok(-e $node->data_dir . "/pg_wal/archive_status/$next.ready",
	'the segment stays .ready (PostgreSQL keeps it)');

# Repair: remove the foreign object; archiving resumes and drains.
unlink($nextkey) or die;
ok(PgbkTest::wait_archived($node), 'after removing the foreign object, archiving drains');
$node->poll_query_until('postgres',
	"SELECT status = 'ok' FROM bk_status WHERE component = 'archive'")
  or die 'status did not recover';
pass('bk_status is ok again');

###########################################################################
# 2b. The repository comes back: the backlog drains within seconds, without
# new WAL.  After three failed attempts PostgreSQL's archiver sleeps until
# the next segment completes or 60 s pass; the oldest pending file is tried
# again every few seconds, and the first upload that succeeds wakes the
# archiver.  bk_status says "catching up" while the backlog drains.
{
	# Watches the drain from inside the server, polling bk_status every
	# 10 ms: created now, because once the repository is back nothing may
	# write WAL.  Returns pending|seen catching up|seconds.
	$node->safe_psql('postgres', q{
		CREATE FUNCTION watch_drain(timeout_s float8) RETURNS text LANGUAGE plpgsql AS $$
		DECLARE
			p bigint;
			d text;
			seen boolean := false;
			t0 timestamptz := clock_timestamp();
		BEGIN
			LOOP
				SELECT pending, detail INTO p, d FROM bk_status WHERE component = 'archive';
				IF p > 0 AND d LIKE 'catching up: %' THEN
					seen := true;
				END IF;
				EXIT WHEN p = 0 OR clock_timestamp() - t0 > make_interval(secs => timeout_s);
				PERFORM pg_sleep(0.01);
			END LOOP;
			RETURN format('%s|%s|%s', p, seen,
						  round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1));
		END $$});
	my $segdir = "$repo->{dir}/wal/" . substr($next, 0, 16);
	ok(-d $segdir, 'the segments\' directory in the repository exists');
	chmod(0555, $segdir) or die "chmod $segdir: $!";
	my $pos = -s $node->logfile;
	for (1 .. 6)
	{
		$node->safe_psql('postgres',
			'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal()');
	}
	# wait until PostgreSQL's archiver has given up for now (its 60 s sleep)
	ok( $node->wait_for_log(qr/failed too many times, will try again later/, $pos),
		'repository unwritable: the archiver gives up for now');
	my ($failing, $pending, $error) = split /\|/, $node->safe_psql('postgres',
		"SELECT status, pending, last_error FROM bk_status WHERE component = 'archive'");
	is($failing, 'failing', 'bk_status says archiving is failing');
	cmp_ok($pending, '>=', 6, "a backlog waits ($pending files)");
	like($error, qr/Permission denied/, 'the last error says why');
	# one sentence each in the log: the uploaders and the archive module
	# do not stack their own "could not upload/archive X" on the message
	my @lines = grep { /Permission denied/ }
	  split /\n/, substr(PgbkTest::slurp($node->logfile), $pos);
	cmp_ok(scalar(@lines), '>', 0, 'the server log says why uploads fail');
	my @stacked = grep { /could not (upload|archive) .*could not (upload|archive)/ } @lines;
	is(scalar(@stacked), 0, 'each upload error is one sentence, not stacked')
	  or diag($stacked[0]);
	like($lines[0], qr/could not upload "[0-9A-F]{24}" to \Q$repo->{dir}\E: could not create/,
		'... naming the file, the repository and the cause');

	# the repository is back; from now on no new WAL is written
	chmod(0700, $segdir) or die "chmod $segdir: $!";
	my ($left, $seen, $secs) = split /\|/,
	  $node->safe_psql('postgres', 'SELECT watch_drain(20)');
	is($left, '0', "the backlog drained without new WAL ($secs s)");
	cmp_ok($secs, '<', 15, 'within a few seconds of the repository\'s return, not a minute');
	is($seen, 't', 'bk_status said "catching up" while the backlog drained');
	$node->poll_query_until('postgres',
		"SELECT status = 'ok' AND detail NOT LIKE 'catching up%' FROM bk_status WHERE component = 'archive'")
	  or die 'status did not settle';
	pass('bk_status is ok, no longer catching up, once drained');
	diag($_) for uploader_memory($node);
	$node->safe_psql('postgres', 'DROP FUNCTION watch_drain(float8)');
}

###########################################################################
# 3. wal-fetch integrity: a flipped byte and a truncated object fail with an
# integrity error and leave no DEST file.
my $victim = $copied[5];
my $vkey = "$repo->{dir}/wal/" . substr($victim, 0, 16) . "/$victim";
my $good = PgbkTest::slurp($vkey);
my $dest = PostgreSQL::Test::Utils::tempdir('dest') . "/$victim";

my $flipped = $good;
substr($flipped, int(length($flipped) / 2), 1) =
  chr(ord(substr($flipped, int(length($flipped) / 2), 1)) ^ 0x01);
PgbkTest::write_file($vkey, $flipped);
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf}, $victim, $dest);
is($rc, 6, 'flipped byte: wal-fetch exits with the integrity code');
like($err, qr/modified|authentication|integrity|corrupt/i, '... and says the object was modified');
ok(!-e $dest, '... and leaves no DEST file');

PgbkTest::write_file($vkey, substr($good, 0, length($good) - 100));
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf}, $victim, $dest);
is($rc, 6, 'truncated object: integrity exit code');
like($err, qr/truncated/i, '... and says truncated');
ok(!-e $dest, '... and leaves no DEST file');
PgbkTest::write_file($vkey, $good);

($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo->{conf},
	'00000009000000000000AB00', $dest);
is($rc, 5, 'a file that is not in the repository: exit 5');
ok(!-e $dest, '... and no DEST file');

# Wrong key: a key file with another key
my $otherkey = PgbkTest::keygen(PostgreSQL::Test::Utils::tempdir('k2') . '/other.key');
my $conf2 = PgbkTest::write_file(PostgreSQL::Test::Utils::tempdir('c2') . '/pgbk.conf',
	"repository = '$repo->{dir}'\nkey_file = '$otherkey'\n");
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf2, $victim, $dest);
is($rc, 7, 'wrong key: exit 7');
like($err, qr/key id [0-9a-f]{8}.*not in key file/, '... naming the key id and the key file');
ok(!-e $dest, '... and no DEST file');

###########################################################################
# 4. archive_command = 'pgbk wal-push %p'
my $repo2 = PgbkTest::local_repo('cmd');
my $node2 = PgbkTest::new_node('cmd', $repo2->{conf}, archive_command => 1);
$node2->start;
$node2->safe_psql('postgres', 'CREATE EXTENSION pgbk');
workload($node2, 30);
$node2->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node2), 'archive_command: everything archived');
my $orig2 = PostgreSQL::Test::Utils::tempdir('orig_cmd');
my @copied2 = PgbkTest::copy_wal_originals($node2, $orig2);
cmp_ok(scalar(@copied2), '>=', 30, 'archive_command: several dozen WAL files');
check_round_trip($repo2->{conf}, $orig2, 'archive_command');
check_no_hole($node2, 'archive_command');

###########################################################################
# 5. Bad configuration: clear errors naming the problem, nothing archived.
my $badrepo = PgbkTest::local_repo('bad');
chmod(0644, $badrepo->{key});
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $badrepo->{conf}, "$orig/$name");
is($rc, 3, 'key file readable by others: configuration error');
like($err, qr/\Q$badrepo->{key}\E.*(group|others)/, '... naming the key file and the cause');
chmod(0600, $badrepo->{key});
PgbkTest::write_file($badrepo->{conf}, "repository = '$badrepo->{dir}'\nkey_file = '$badrepo->{key}'\nfrobnicate = on\n");
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $badrepo->{conf}, "$orig/$name");
is($rc, 3, 'unknown setting: configuration error');
like($err, qr/frobnicate/, '... naming the setting');
opendir(my $bd, $badrepo->{dir}) or die;
is(scalar(grep { !/^\./ } readdir($bd)), 0, 'nothing was written to the repository');
closedir($bd);

###########################################################################
# 5b. A segment is mapped, not read: if it shrinks while it is read (or the
# disk fails), the kernel's SIGBUS becomes an error, never a crash.
{
	my $shrink = PgbkTest::local_repo('shrink');
	my $tmp = PostgreSQL::Test::Utils::tempdir('shrink');
	copy("$orig/$name", "$tmp/$name") or die "copy: $!";
	my ($sout, $serr) = ('', '');
	local $ENV{PGBK_TEST_SHRINK_MAPPED} = 1;
	IPC::Run::run([ PgbkTest::pgbk_bin(), 'wal-push', '--config', $shrink->{conf}, "$tmp/$name" ],
		'>', \$sout, '2>', \$serr);
	my $status = $?;
	is($status & 127, 0, 'a segment shrinking under wal-push: no signal kills it');
	is($status >> 8, 1, '... it fails with exit code 1');
	like($serr, qr/could not read "\Q$tmp\/$name\E": it shrank or the disk failed while it was read/,
		'... naming the file and the cause');
	ok(!-e "$shrink->{dir}/wal/" . substr($name, 0, 16) . "/$name", '... and nothing is archived');
}

###########################################################################
# 6. Secrets: the key never appears in the server logs or the CLI output.
$node->stop;
$node2->stop;
PgbkTest::no_secrets(PgbkTest::slurp($node->logfile), 'server log (archive_library)');
PgbkTest::no_secrets(PgbkTest::slurp($node2->logfile), 'server log (archive_command)');
PgbkTest::no_secrets($out . $err, 'CLI output');

done_testing();
