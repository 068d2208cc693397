# `pgbk restore` refuses what it cannot do, before writing anything, with
# the same reason as bk_restore_point: a target before the oldest backup's
# end, after the newest archived commit, or inside a gap (a WAL object
# deleted from the repository); a non-empty target directory.  A corrupted
# backup file fails with an integrity error naming the file and leaves
# nothing behind.  Bad options are usage errors.  --start as root is refused
# before anything is written; a failing pg_ctl's own message is shown.  The
# help says what is true.
use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('ref');
my $node = PgbkTest::new_node('src', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $w = PgbkRestore::workload($node, steps => 4, backups => [1]);
my $bid = $w->{backups}[0];
my @t = map { $_->{time} } @{ $w->{moments} };
my $base = PostgreSQL::Test::Utils::tempdir('targets');

# Refuses, writes nothing; returns the reason.
sub refused
{
	my ($what, @target) = @_;
	my $dir = "$base/" . ($what =~ s/\W+/_/gr);
	my ($rc, $out, $err) =
	  PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dir, @target);
	is($rc, 8, "$what: refused (exit 8)") or diag("$out$err");
	ok(!-e $dir, "$what: nothing written");
	my ($reason) = $err =~ /not recoverable: (.*)$/m;
	return $reason // '';
}

# The same moment through bk_restore_point.
sub sql_reason
{
	my ($call) = @_;
	$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
	return $node->safe_psql('postgres',
		"SELECT reason FROM $call WHERE scope = 'database'");
}


my $stop = $node->safe_psql('postgres',
	"SELECT to_char(stop_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM pgbk.backup WHERE id = '$bid'");
# printed as PostgreSQL prints a timestamp: no trailing zeros in the fraction
$stop =~ s/0+$// if $stop =~ /\./;
$stop =~ s/\.$//;

# 1. before the oldest backup's end
my $reason = refused('before the oldest backup', '--target-time', $t[0]);
like($reason, qr/^no base backup ended before \S+ \S+ \(the oldest ends at \Q$stop\E\+00\)$/,
	'... because no base backup ended before it');
{
	is($reason, sql_reason("bk_restore_point('$t[0]')"), '... the same reason as bk_restore_point');
}

# 2. after the newest archived commit
my $late = PgbkRestore::now_utc($node);
$reason = refused('after the archived WAL', '--target-time', $late);
like($reason, qr/^no transaction committed after \S+ \S+ has been archived yet \(the newest archived commit is at \S+ \S+\)$/,
	'... because no commit after it has been archived');
{
	is($reason, sql_reason("bk_restore_point('$late')"), '... the same reason as bk_restore_point');
}

# 3. inside a gap: delete the first segment after the backup's end
my ($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $repo->{conf}, '--json');
my ($stop_lsn) = $out =~ /"stop_lsn": "([0-9A-F]+\/[0-9A-F]+)"/;
my ($hi, $lo) = map { hex } split m{/}, $stop_lsn;
my $segno = (($hi << 32) | $lo) >> 24;
my $gap = sprintf('%08X%08X%08X', 1, ($segno + 1) >> 8, ($segno + 1) & 0xFF);
my $gapkey = "$repo->{dir}/wal/" . substr($gap, 0, 16) . "/$gap";
ok(-f $gapkey, "segment $gap is archived");
my $saved = PgbkTest::slurp($gapkey);
unlink($gapkey) or die $!;
$reason = refused('inside a gap', '--target-time', $t[3]);
like($reason, qr/^WAL segment \Q$gap\E is missing from the repository \(needed to go from backup \Q$bid\E to \S+ \S+\)$/,
	'... naming the missing segment');
{
	is($reason, sql_reason("bk_restore_point('$t[3]')"), '... the same reason as bk_restore_point');
}
($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $repo->{conf});
like($out, qr/1 gap:\n\s+missing \Q$gap\E \.\. \Q$gap\E \(1 segment\)/, 'pgbk info shows the gap');
like($out, qr/gap: targets after .* are not recoverable/, '... and the hole in the window');
PgbkTest::write_file($gapkey, $saved);

# unknown restore point, LSN before every backup
$reason = refused('unknown restore point', '--target-name', 'no-such-point');
is($reason, 'restore point "no-such-point" not found in the repository', '... not found');
$reason = refused('LSN before every backup', '--target-lsn', '0/100');
like($reason, qr/^no base backup ended before LSN 0\/100 \(the oldest ends at \S+\)$/,
	'... before every backup');

# 4. a non-empty target directory
my $full = "$base/full";
make_path($full);
PgbkTest::write_file("$full/keep.txt", "precious\n");
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $full,
	'--target', 'latest');
is($rc, 8, 'a non-empty target directory is refused (exit 8)');
like($err, qr/refusing to restore into "\Q$full\E": it is not an empty directory/, '... saying why');
is(PgbkTest::slurp("$full/keep.txt"), "precious\n", '... and its content is untouched');
opendir(my $dh, $full) or die;
is(scalar(grep { !/^\./ } readdir($dh)), 1, '... nothing added');
closedir($dh);

# 5. a corrupted backup file: integrity error naming the file, nothing left
my $datadir = "$repo->{dir}/backup/$bid/data";
my $victim = 'global/1262';
my $vkey = "$datadir/$victim";
ok(-f $vkey, "backup file object $victim exists");
my $good = PgbkTest::slurp($vkey);
my $bad = $good;
substr($bad, int(length($bad) / 2), 1) = chr(ord(substr($bad, int(length($bad) / 2), 1)) ^ 0x20);
PgbkTest::write_file($vkey, $bad);
my $dest = "$base/corrupt";
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target', 'latest');
is($rc, 6, 'a corrupted backup file: integrity error (exit 6)') or diag("$out$err");
like($err, qr/backup file "\Q$victim\E" of backup \Q$bid\E/, '... naming the file');
like($err, qr/removed the partial restore/, '... and the partial restore is removed');
ok(!-e $dest, '... nothing left behind');
PgbkTest::write_file($vkey, substr($good, 0, length($good) - 40));
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target', 'latest', '--parallel', '1');
is($rc, 6, 'a truncated backup file: integrity error (exit 6)');
like($err, qr/backup file "\Q$victim\E".*truncated/i, '... naming the file and saying truncated');
ok(!-e $dest, '... nothing left behind');
PgbkTest::write_file($vkey, $good);

# 6. usage errors and the dry run
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target-time', $t[2], '--target', 'latest');
is($rc, 2, 'two targets: usage error');
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target-time', 'yesterday');
is($rc, 2, 'an unreadable time: usage error');
like($err, qr/invalid --target-time "yesterday"/, '... naming the value');
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target-time', $t[2], '--dry-run');
is($rc, 0, 'a dry run of a reachable target succeeds');
like($out, qr/recoverable: yes/, '... saying it is recoverable');
ok(!-e $dest, '... and writes nothing');

# 7. --start as root is refused before anything is written (the tests run
# as postgres: PGBK_TEST_PRETEND_UID stands in for root in that check only)
my $asroot = "$base/asroot";
{
	local $ENV{PGBK_TEST_PRETEND_UID} = '0';
	($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $asroot,
		'--target', 'latest', '--start');
}
is($rc, 8, '--start as root: refused (exit 8)') or diag("$out$err");
like($err, qr/refusing --start as root: PostgreSQL does not run as root.*run pgbk restore as the data directory's owner, e\.g\. runuser -u postgres -- pgbk restore/,
	"... saying to run it as the data directory's owner");
ok(!-e $asroot, '... before writing anything');
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $asroot,
	'--target', 'latest', '--start', '--dry-run');
is($rc, 0, '... and as postgres the same command goes on (a dry run here)') or diag("$out$err");

# 8. pg_ctl failing: its own message is shown (a pg_ctl of the right
# version that refuses, first in PATH)
my $fakebin = "$base/fakebin";
make_path($fakebin);
PgbkTest::write_file("$fakebin/pg_ctl", <<'EOS', 0755);
#!/bin/sh
if [ "$1" = "--version" ]; then echo "pg_ctl (PostgreSQL) 15.99"; exit 0; fi
echo "pg_ctl: could not start server: a reason only pg_ctl knows" >&2
echo "Examine the log output." >&2
exit 1
EOS
my $ctl_dest = "$base/ctlfail";
{
	local $ENV{PATH} = "$fakebin:$ENV{PATH}";
	($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $ctl_dest,
		'--target', 'latest', '--start', '--port', PostgreSQL::Test::Cluster::get_free_port());
}
is($rc, 1, 'pg_ctl fails: exit 1') or diag("$out$err");
like($err, qr/pg_ctl exited with status 1; it said:\n  pg_ctl: could not start server: a reason only pg_ctl knows\n  Examine the log output\./,
	"... showing pg_ctl's own message");
File::Path::rmtree($ctl_dest);

# 9. the help says what is true
($rc, $out, $err) = PgbkTest::pgbk('restore', '--help');
is($rc, 0, 'pgbk restore --help');
unlike($out, qr/another repository or prefix than/, '... no longer asks for another repository');
like($out, qr/--archive-config FILE .*\n.*the\n\s+source's own \(the copy's new timeline keeps its WAL\n\s+apart\) or another one/,
	"... --archive-config may name the source's own repository");
like($out, qr/^\s+pgbk restore --config FILE --files-to DIR2 TARGET\s+\(files only\)$/m,
	'... the files-only form is in the synopsis');
like($out, qr/--target-time T .*YYYY-MM-DD HH:MM\[:SS\[\.ffffff\]\]/, '... with the time format');
like($out, qr/a zone is Z, \+HH, \+HHMM or \+HH:MM/, '... and the zones it accepts');
($rc, $out, $err) = PgbkTest::pgbk('--help');
like($out, qr/restore --files-to DIR2 TARGET \| --files-snapshot ID/,
	'pgbk --help lists the files-only restore');
like($out, qr/--target-time '2026-11-25 14:07\[:SS\[\.ffffff\]\]\[Z\|\+HH\[:MM\]\]'/,
	'... and the time format');
# the formats the help names are accepted
for my $tt ('2026-11-25 14:07', '2026-11-25T14:07:30.25Z', '2026-11-25 14:07+01:00',
	'2026-11-25 14:07:00-0530')
{
	($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
		'--target-time', $tt, '--dry-run');
	unlike($err, qr/invalid --target-time/, "--target-time '$tt' is accepted");
}

$node->stop;
done_testing();
