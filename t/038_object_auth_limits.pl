# Objects that someone who can write to the repository, but has no key,
# might leave there, and objects that inflate enormously (issue 10, items
# 2-4).  With encryption = off every object is still authenticated with the
# key: a repository needs a key file, and forged objects (unkeyed checks
# recomputed, as pgbk before 1.1 wrote them) are refused by wal-fetch,
# pgbk restore, pgbk verify and bk_verify.  wal-fetch and its prefetcher
# check that an object names itself as asked.  Decoding is capped per kind
# of object and done in bounded memory: a WAL bomb (wal-fetch, bk_verify)
# and a manifest bomb (pgbk restore) are refused with peak memory far below
# what they hold.
use strict;
use warnings;

use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('auth', extra => 'encryption = off');
my $conf = $repo->{conf};
my $node = PgbkTest::new_node('auth', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $w = PgbkRestore::workload($node, backups => [0], steps => 3);
my $backup = $w->{backups}[0];
$node->safe_psql('postgres', 'CREATE TABLE filler (v int)');
for (1 .. 6)
{
	$node->safe_psql('postgres',
		'INSERT INTO filler SELECT generate_series(1, 100); SELECT pg_switch_wal()');
}
ok(PgbkTest::wait_archived($node), 'WAL archived');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
my @segs = split /\n/,
  $node->safe_psql('postgres', "SELECT name FROM pgbk.wal WHERE kind = 'segment' ORDER BY name");
cmp_ok(scalar(@segs), '>=', 7, scalar(@segs) . ' segments archived');
my $work = PostgreSQL::Test::Utils::tempdir('work');

sub wal_key
{
	my ($name) = @_;
	return 'wal/' . substr($name, 0, 16) . "/$name";
}

# pgbk under /usr/bin/time: ($rc, $out, $err, peak RSS in KiB)
sub pgbk_rss
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ '/usr/bin/time', '-f', 'maxrss_kib=%M', PgbkTest::pgbk_bin(), @args ],
		'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	my ($rss) = $err =~ /maxrss_kib=(\d+)/;
	return ($h->result(0), $out, $err, $rss // -1);
}

my ($rc, $out, $err) =
  PgbkTest::pgbk('wal-fetch', '--config', $conf, $segs[1], "$work/$segs[1]");
is($rc, 0, 'wal-fetch of a segment archived with encryption off works') or diag($err);

###########################################################################
# Item 2: no repository without a key; forged plain objects are refused
my $nokey = PgbkTest::write_file("$work/nokey.conf",
	"repository = '$repo->{dir}'\nencryption = off\n");
chmod 0600, $nokey;
($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $nokey);
isnt($rc, 0, 'a configuration without key_file is refused, also with encryption = off');
like($err, qr/"key_file" is required .*\nHINT: Every repository object is authenticated with its key, also with encryption = off/,
	'... saying in a HINT line that every object is authenticated with the key');

# a postgresql.conf that runs a command at startup, as a bucket writer
# without the key would forge it (checks recomputed the unkeyed way)
my $pwned = "$work/pwned";
PgbkTest::write_file("$work/evil.conf", "ssl_passphrase_command = 'touch $pwned'\n");
PgbkTest::repo_tool($conf, 'forge-unkeyed', "backup/$backup/data/postgresql.conf",
	"$work/evil.conf");
($rc, $out, $err) =
  PgbkRestore::run_pgbk('restore', '--config', $conf, '--to', "$work/restored", '--target',
	'latest');
isnt($rc, 0, 'pgbk restore refuses a backup file forged without the key');
like($err, qr/backup file "postgresql\.conf"/, '... naming the file') or diag($err);
like($err, qr/not authenticated with a key/, '... and saying it is not authenticated');
ok(!-e "$work/restored/postgresql.conf", '... and writes no such file');
ok(!-e $pwned, '... and nothing ran');

# a forged WAL segment
PgbkTest::repo_tool($conf, 'forge-unkeyed', wal_key($segs[2]));
($rc, $out, $err) =
  PgbkTest::pgbk('wal-fetch', '--config', $conf, $segs[2], "$work/$segs[2]");
isnt($rc, 0, 'wal-fetch refuses a segment forged without the key');
like($err, qr/not authenticated with a key/, '... saying why');
ok(!-e "$work/$segs[2]", '... and leaves no file');

###########################################################################
# Item 3: a valid object copied under another segment's name
PgbkTest::repo_tool($conf, 'copy', wal_key($segs[3]), wal_key($segs[4]));
($rc, $out, $err) =
  PgbkTest::pgbk('wal-fetch', '--config', $conf, $segs[4], "$work/$segs[4]");
isnt($rc, 0, 'wal-fetch refuses a segment copied under another name');
like($err, qr/stored as "\Q$segs[4]\E" holds "\Q$segs[3]\E"/, '... naming both names');
ok(!-e "$work/$segs[4]", '... and leaves no file');

# the prefetcher checks too: fetch segs[3], which prefetches segs[4]
my $spool = "$work/spool";
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf, '--spool', $spool,
	'--prefetch', '1', $segs[3], "$work/$segs[3]");
is($rc, 0, 'wal-fetch with a prefetcher') or diag($err);
my $log = '';
for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	$log = -e "$spool/prefetch.log" ? PgbkTest::slurp("$spool/prefetch.log") : '';
	last if $log =~ /\Q$segs[4]\E/;
	usleep(100_000);
}
like($log, qr/could not prefetch \Q$segs[4]\E: .*stored as "\Q$segs[4]\E" holds "\Q$segs[3]\E"/,
	'the prefetcher refuses the copied segment, naming both names');
ok(!-e "$spool/$segs[4]", '... and does not put it in the spool');
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--spool', $spool, '--spool-cleanup');
is($rc, 0, 'spool cleaned up') or diag($err);

###########################################################################
# Item 4: decompression bombs, made with the key (4 GiB of zeros each)
my $bomb_mib = 4096;
my $size = PgbkTest::repo_tool($conf, 'bomb', wal_key($segs[5]), $bomb_mib,
	"kind=wal,name=$segs[5],wal.kind=segment");
cmp_ok($size, '<', 1 << 20, "a WAL object of $bomb_mib MiB takes $size bytes");
my $rss;
($rc, $out, $err, $rss) =
  pgbk_rss('wal-fetch', '--config', $conf, $segs[5], "$work/$segs[5]");
isnt($rc, 0, 'wal-fetch refuses the WAL bomb');
like($err, qr/longer than the \d+ bytes allowed for an object of its kind/, '... saying why');
ok(!-e "$work/$segs[5]", '... and leaves no file');
cmp_ok($rss, '>', 0, 'peak memory measured');
cmp_ok($rss, '<', 256 * 1024, "... and wal-fetch stayed at $rss KiB, far below the bomb");

# bk_verify in a backend: the bomb is a problem, memory stays bounded
my $res = $node->safe_psql('postgres',
	"SELECT problem FROM bk_verify() WHERE kind = 'wal' AND object = '$segs[5]';"
	  . "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), "
	  . "'VmHWM:\\s+(\\d+)'))[1]");
my ($problem, $hwm) = $res =~ /\A(.*)\n(\d+)\z/s;
like($problem // $res, qr/unreadable: .*allowed for an object of its kind/,
	'bk_verify reports the WAL bomb');
cmp_ok($hwm // 1e9, '<', 512 * 1024, "... and the backend peaked at " . ($hwm // '?') . ' KiB');

# pgbk verify: the forged, the copied and the bomb, each by name
($rc, $out, $err, $rss) = pgbk_rss('verify', '--config', $conf);
is($rc, 6, 'pgbk verify exits 6 on the damaged repository') or diag("$out\n$err");
like($out, qr/^wal \Q$segs[2]\E: unreadable: .*not authenticated/m, '... names the forged segment');
like($out, qr/^wal \Q$segs[4]\E: .*holds "\Q$segs[3]\E"/m, '... the copied one');
like($out, qr/^wal \Q$segs[5]\E: unreadable: .*allowed/m, '... and the bomb');
cmp_ok($rss, '<', 256 * 1024, "... in $rss KiB");

# a manifest bomb in pgbk restore
PgbkTest::repo_tool($conf, 'bomb', "manifest/$backup", $bomb_mib, 'kind=manifest');
($rc, $out, $err, $rss) =
  pgbk_rss('restore', '--config', $conf, '--to', "$work/restored2", '--target', 'latest');
isnt($rc, 0, 'pgbk restore refuses the manifest bomb');
like($err, qr/manifest of backup \Q$backup\E.*longer than the 268435456 bytes allowed/s,
	'... saying why') or diag($err);
cmp_ok($rss, '<', 768 * 1024, "... and stayed at $rss KiB (the limit is 256 MiB, the bomb $bomb_mib MiB)");

# The same configuration error in the backend (issue 11): the hint that the
# configuration reader gives reaches errhint, through the one reporter, both
# where the error stops the call and where it is only a warning.
$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$nokey'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('pgbk.config') = '$nokey'")
  or die 'pgbk.config not reloaded';
$node->psql('postgres', 'SELECT bk_catalog_sync()', stderr => \$err);
like($err, qr/ERROR:  could not open the repository: setting "key_file" is required .*\nHINT:  Every repository object is authenticated with its key/,
	'the backend: the missing key_file is an ERROR with its HINT') or diag($err);
$node->psql('postgres', "SELECT count(*) FROM bk_expire(true)", stderr => \$err);
like($err, qr/WARNING:  could not open the repository: setting "key_file" is required .*\nHINT:  Every repository object is authenticated with its key/,
	'... and a WARNING with its HINT in a dry-run bk_expire') or diag($err);
$node->safe_psql('postgres', "ALTER SYSTEM RESET pgbk.config; SELECT pg_reload_conf()");

$node->stop;
done_testing();
