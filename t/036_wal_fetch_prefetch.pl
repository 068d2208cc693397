# pgbk wal-fetch as restore_command, with its prefetcher: the next segments
# land in a bounded spool (complete files only) and later calls take them
# from there; files that do not exist exit 5 without a DEST (also a future
# timeline's history file); stale spool entries go away; the prefetcher is
# detached (no zombie) and --spool-cleanup stops it and removes the spool.
use strict;
use warnings;

use Fcntl qw(:flock);
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkTest;

my $repo = PgbkTest::local_repo('fetch');
my $node = PgbkTest::new_node('src', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE t (id int, v text)');
for my $i (1 .. 24)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g; SELECT pg_switch_wal()");
}
ok(PgbkTest::wait_archived($node), 'WAL archived');
my $orig = PostgreSQL::Test::Utils::tempdir('orig');
my @segs = sort(PgbkTest::copy_wal_originals($node, $orig));
cmp_ok(scalar(@segs), '>=', 24, scalar(@segs) . ' segments to fetch');
$node->stop;

# wal-fetch in a directory standing in for a data directory in recovery
# (without recovery.signal there, wal-fetch does not prefetch: see below)
my $pgdata = PostgreSQL::Test::Utils::tempdir('pgdata');
make_path("$pgdata/pg_wal");
PgbkTest::write_file("$pgdata/recovery.signal", '');
my $spool = "$pgdata/pgbk_spool";

sub fetch
{
	my ($cwd, @args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ PgbkTest::pgbk_bin(), 'wal-fetch', '--config', $repo->{conf}, @args ],
		'>', \$out, '2>', \$err, init => sub { chdir($cwd) or die },
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	return ($h->result(0), $out, $err);
}

sub spool_segments
{
	opendir(my $dh, $spool) or return ();
	my @f = sort grep { /^[0-9A-F]{24}$/ } readdir($dh);
	closedir($dh);
	return @f;
}

sub wait_for
{
	my ($what, $cond) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(20_000);
	}
	diag("timed out waiting for $what");
	return 0;
}

sub same_as_orig
{
	my ($path, $name) = @_;
	return -f $path && PgbkTest::slurp($path) eq PgbkTest::slurp("$orig/$name");
}

my $dest = "$pgdata/pg_wal/RECOVERYXLOG";

# The first segment: fetched directly, then the prefetcher fills the window.
my ($rc, $out, $err) = fetch($pgdata, $segs[0], 'pg_wal/RECOVERYXLOG');
is($rc, 0, "wal-fetch $segs[0]") or diag($err);
ok(same_as_orig($dest, $segs[0]), '... DEST is byte-identical');
ok(wait_for('the window', sub { scalar(spool_segments()) == 8 }),
	'the prefetcher downloads the next 8 segments into the spool');
is_deeply([ spool_segments() ], [ @segs[ 1 .. 8 ] ], '... exactly those');
my $bad = grep { !same_as_orig("$spool/$_", $_) } spool_segments();
is($bad, 0, '... each complete and byte-identical');

# the prefetcher: detached, not anybody's zombie
open(my $lf, '<', "$spool/prefetch.lock") or die;
my $ppid = <$lf>;
chomp $ppid;
close $lf;
ok($ppid > 0 && kill(0, $ppid), "a prefetcher runs (pid $ppid)");
my $stat = PgbkTest::slurp("/proc/$ppid/stat");
my ($state, $parent) = $stat =~ /^\d+ \(.*?\) (\S) (\d+)/;
isnt($state, 'Z', '... not a zombie');
isnt($parent, $$, '... and not a child of the caller');

# The next calls take their segment from the spool.
for my $i (1 .. 6)
{
	unlink($dest);
	($rc, $out, $err) = fetch($pgdata, $segs[$i], 'pg_wal/RECOVERYXLOG');
	is($rc, 0, "wal-fetch $segs[$i]") or diag($err);
	ok(same_as_orig($dest, $segs[$i]), '... byte-identical');
	ok(!-e "$spool/$segs[$i]", '... taken out of the spool');
}
ok(wait_for('the window to move', sub { (spool_segments())[-1] eq $segs[14] }),
	'the window moves along');
cmp_ok(scalar(spool_segments()), '<=', 8, '... and the spool stays bounded');

# Stale entries: another timeline, and everything older than what is asked.
my $other = '00000002' . substr($segs[20], 8);
PgbkTest::write_file("$spool/$other", PgbkTest::slurp("$orig/$segs[20]"));
unlink($dest);
($rc, $out, $err) = fetch($pgdata, $segs[12], 'pg_wal/RECOVERYXLOG');
is($rc, 0, "wal-fetch $segs[12] (skipping ahead)");
ok(same_as_orig($dest, $segs[12]), '... byte-identical');
ok(wait_for('stale entries to go', sub { !-e "$spool/$other" && !-e "$spool/$segs[8]" }),
	'stale spool entries (older, other timeline) are removed');

# Files that do not exist: exit 5, no DEST.
unlink($dest);
my $beyond = sprintf('%s%08X', substr($segs[-1], 0, 16), hex(substr($segs[-1], 16)) + 40);
($rc, $out, $err) = fetch($pgdata, $beyond, 'pg_wal/RECOVERYXLOG');
is($rc, 5, 'a segment that was never archived: exit 5');
ok(!-e $dest, '... and no DEST');
($rc, $out, $err) = fetch($pgdata, '00000009.history', 'pg_wal/RECOVERYHISTORY');
is($rc, 5, "a future timeline's history file: exit 5");
ok(!-e "$pgdata/pg_wal/RECOVERYHISTORY", '... and no DEST');

# --spool-cleanup (recovery_end_command): the prefetcher stops, the spool goes.
($rc, $out, $err) = fetch($pgdata, '--spool-cleanup');
is($rc, 0, 'wal-fetch --spool-cleanup') or diag($err);
ok(!-e $spool, '... removes the spool');
ok(wait_for('the prefetcher to exit', sub { !kill(0, $ppid) }), '... and the prefetcher is gone');

# A spool file that is not a complete segment is never handed over.
make_path($spool);
PgbkTest::write_file("$spool/$segs[22]", substr(PgbkTest::slurp("$orig/$segs[22]"), 0, 1000));
($rc, $out, $err) = fetch($pgdata, '--prefetch', '1', $segs[22], 'pg_wal/RECOVERYXLOG');
is($rc, 0, 'wal-fetch with a broken file of that name in the spool');
ok(same_as_orig($dest, $segs[22]), '... fetches the real segment');

# Spool files are not fsync'd: a full-size file left from before a reboot
# (another boot id) may have lost its content and is never handed over.
($rc, $out, $err) = fetch($pgdata, '--spool-cleanup');
make_path($spool);
PgbkTest::write_file("$spool/boot_id", "00000000-0000-0000-0000-000000000000\n");
PgbkTest::write_file("$spool/$segs[21]", "\0" x length(PgbkTest::slurp("$orig/$segs[21]")));
unlink($dest);
($rc, $out, $err) = fetch($pgdata, '--prefetch', '1', $segs[21], 'pg_wal/RECOVERYXLOG');
is($rc, 0, 'wal-fetch with a segment of an earlier boot in the spool');
ok(same_as_orig($dest, $segs[21]), '... fetches the real segment');

# A corrupted object: integrity error, no DEST.  (The previous call's
# prefetcher has a verified copy of the next segment: clean the spool first.)
($rc, $out, $err) = fetch($pgdata, '--spool-cleanup');
my $vkey = "$repo->{dir}/wal/" . substr($segs[23], 0, 16) . "/$segs[23]";
my $good = PgbkTest::slurp($vkey);
my $flip = $good;
substr($flip, int(length($flip) / 2), 1) = chr(ord(substr($flip, int(length($flip) / 2), 1)) ^ 1);
PgbkTest::write_file($vkey, $flip);
unlink($dest);
($rc, $out, $err) = fetch($pgdata, $segs[23], 'pg_wal/RECOVERYXLOG');
is($rc, 6, 'a corrupted WAL object: integrity error');
ok(!-e $dest, '... and no DEST');
PgbkTest::write_file($vkey, $good);

# --prefetch 0: no spool at all
my $plain = PostgreSQL::Test::Utils::tempdir('plain');
make_path("$plain/pg_wal");
($rc, $out, $err) = fetch($plain, '--prefetch', '0', $segs[3], 'pg_wal/RECOVERYXLOG');
is($rc, 0, 'wal-fetch --prefetch 0');
ok(same_as_orig("$plain/pg_wal/RECOVERYXLOG", $segs[3]), '... byte-identical');
ok(!-e "$plain/pgbk_spool", '... and no spool');

# Timelines: once recovery has fetched a history file, the window follows
# that timeline from its switch on.  A made-up timeline 2 forking inside
# segment 8: after segment 4 of timeline 1, the prefetcher takes 5, 6 and 7
# from timeline 1 and asks for timeline 2's names from 8 on (absent here).
($rc, $out, $err) = fetch($pgdata, '--spool-cleanup');
my $segno8 = hex(substr($segs[8], 8, 8)) * 256 + hex(substr($segs[8], 16, 8));
my $switch = sprintf('%X/%X', $segno8 >> 8, (($segno8 & 0xFF) << 24) + 0x100);
my $hist = PostgreSQL::Test::Utils::tempdir('hist') . '/00000002.history';
PgbkTest::write_file($hist, "1\t$switch\tmade up for the test\n");
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $repo->{conf}, $hist);
is($rc, 0, 'a history file for timeline 2 is archived') or diag($err);
($rc, $out, $err) = fetch($pgdata, '00000002.history', 'pg_wal/RECOVERYHISTORY');
is($rc, 0, 'recovery fetches it');
ok(-f "$spool/00000002.history", '... and the spool keeps a copy');
($rc, $out, $err) = fetch($pgdata, $segs[4], 'pg_wal/RECOVERYXLOG');
is($rc, 0, "then $segs[4]");
ok(wait_for('the window', sub { scalar(spool_segments()) == 3 }), 'the prefetcher runs');
is_deeply([ spool_segments() ], [ @segs[ 5 .. 7 ] ],
	"... and stops at the switch: timeline 2's segments are not timeline 1's");
ok(wait_for('the rest of the window', sub {
	open(my $lf, '<', "$spool/prefetch.lock") or return 0;
	return flock($lf, LOCK_EX | LOCK_NB) ? 0 : 1; }), 'the prefetcher is still there');

($rc, $out, $err) = fetch($pgdata, '--spool-cleanup');
is($rc, 0, 'final cleanup');
# Outside a data directory in recovery there is no spool: two repositories
# fetched from one directory must never hand each other's segments over.
my $outside = PostgreSQL::Test::Utils::tempdir('outside');
($rc, $out, $err) = fetch($outside, $segs[0], "$outside/$segs[0]");
is($rc, 0, 'wal-fetch outside a data directory in recovery');
ok(!-e "$outside/pgbk_spool", '... uses no spool');

done_testing();
