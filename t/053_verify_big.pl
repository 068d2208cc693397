# The object verifier streams (issue 11, item 4): a base backup holding a
# 1 GB relation segment is verified by bk_verify() inside a backend and by
# pgbk verify, each with its peak memory measured (VmHWM of the backend,
# maximum RSS of pgbk) and far below the file's size: neither holds a data
# file whole.  And an ERROR in the middle of bk_verify (an object the
# server may not read) leaves nothing behind: the manifest being verified
# is freed with the call's memory (the backend logs that at DEBUG1).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use PgbkTest;

my $SEGMENT = 1024 * 1024 * 1024;    # a relation segment: 1 GiB
my $LIMIT_KIB = 150 * 1024;          # well under the file's size

my $repo = PgbkTest::local_repo('big');
my $conf = $repo->{conf};

# The table is filled with wal_level = minimal, created in the same
# transaction, so its gigabyte is written once to the data directory and
# not a second time to WAL and the repository; archiving starts after.
my $node = PgbkTest::new_node('big', $conf,
	extra => "wal_level = minimal\nmax_wal_senders = 0\narchive_mode = off\n");
$node->start;
my $t0 = time();
# 4 rows of 1952 random bytes a page (STORAGE PLAIN: no TOAST, no
# compression; random, so that the stored object is a gigabyte too):
# 131072 pages fill the first segment, a few more rows start the second
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgcrypto;
	BEGIN;
	CREATE TABLE big (id int, v bytea) WITH (autovacuum_enabled = off);
	ALTER TABLE big ALTER v SET STORAGE PLAIN;
	INSERT INTO big SELECT i, gen_random_bytes(976) || gen_random_bytes(976)
	  FROM generate_series(1, 524288 + 400) i;
	COMMIT;
});
my $relpath = $node->safe_psql('postgres', q{SELECT pg_relation_filepath('big')});
my $relfile = $node->data_dir . "/$relpath";
is(-s $relfile, $SEGMENT, "the table's first segment $relpath is a whole 1 GiB file");
ok(-s "$relfile.1", '... and the table goes on in a second segment');
diag(sprintf('table filled in %.1f s', time() - $t0));

$node->stop;
$node->append_conf('postgresql.conf', "wal_level = replica\nmax_wal_senders = 10\narchive_mode = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$t0 = time();
my $backup = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
like($backup, qr/^\d{8}T\d{6}Z$/, "base backup $backup");
diag(sprintf('base backup in %.1f s', time() - $t0));
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'WAL archived');
$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');

my $key = "backup/$backup/data/$relpath";
my $object = "$repo->{dir}/$key";
ok(-f $object, "the segment is stored as $key");
diag(sprintf('the segment is stored in %d bytes for %d of content', -s $object, $SEGMENT));

###########################################################################
# bk_verify in one session: the problems, then that backend's peak memory
sub vm_hwm_sql
{
	return "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), "
	  . "'VmHWM:\\s+(\\d+)'))[1]";
}
my $before = $node->safe_psql('postgres', vm_hwm_sql());
$t0 = time();
my $res = $node->safe_psql('postgres',
	"SELECT count(*) FROM bk_verify(); " . vm_hwm_sql());
my ($problems, $hwm) = $res =~ /\A(\d+)\n(\d+)\z/;
my $secs = time() - $t0;
is($problems, '0', 'bk_verify: the backup with its 1 GiB segment verifies clean')
  or diag($node->safe_psql('postgres',
	q{SELECT string_agg(kind || ' ' || object || ': ' || problem, E'\n') FROM bk_verify()}));
cmp_ok($hwm // 1e9, '<', $LIMIT_KIB,
	sprintf('bk_verify: the backend peaked at %s KiB (a fresh backend at %s KiB), in %.1f s',
		$hwm // '?', $before, $secs));
diag(sprintf('bk_verify over a 1 GiB relation segment: backend VmHWM %s KiB (fresh backend %s KiB), %.1f s',
	$hwm // '?', $before, $secs));

###########################################################################
# pgbk verify: maximum RSS of the process
my ($out, $err) = ('', '');
$t0 = time();
my $h = IPC::Run::start(
	[ '/usr/bin/time', '-f', 'maxrss_kib=%M', PgbkTest::pgbk_bin(), 'verify', '--config', $conf ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$h->finish;
$secs = time() - $t0;
my ($rss) = $err =~ /maxrss_kib=(\d+)/;
is($h->result(0), 0, 'pgbk verify: the repository verifies clean') or diag("$out\n$err");
cmp_ok($rss // 1e9, '<', $LIMIT_KIB,
	sprintf('pgbk verify peaked at %s KiB, in %.1f s', $rss // '?', $secs));
diag(sprintf('pgbk verify over a 1 GiB relation segment: max RSS %s KiB, %.1f s', $rss // '?', $secs));

###########################################################################
# The whole object is read: a bit flipped near its end is found by both
# (its end does not authenticate)
sub flip_bit
{
	my ($path, $offset) = @_;
	my $byte;
	open(my $fh, '+<:raw', $path) or die "open $path: $!";
	sysseek($fh, $offset, 0) or die "seek $path: $!";
	sysread($fh, $byte, 1) == 1 or die "read $path: $!";
	sysseek($fh, $offset, 0) or die "seek $path: $!";
	syswrite($fh, chr(ord($byte) ^ 1)) == 1 or die "write $path: $!";
	close($fh) or die "close $path: $!";
	return;
}
my $flip_at = (-s $object) - 64;
flip_bit($object, $flip_at);
like($node->safe_psql('postgres',
		q{SELECT string_agg(kind || ' ' || object || ': ' || problem, E'\n') FROM bk_verify()}),
	qr/^backup file \Q$backup:$relpath\E: unreadable: /m,
	'bk_verify: a bit flipped near the end of the 1 GiB segment is found');
($out, $err) = ('', '');
IPC::Run::run([ PgbkTest::pgbk_bin(), 'verify', '--config', $conf ], '>', \$out, '2>', \$err);
like($out, qr/^backup file \Q$backup:$relpath\E: unreadable: /m, '... and by pgbk verify')
  or diag("$out\n$err");
flip_bit($object, $flip_at);

###########################################################################
# An ERROR midway: the server may not open the big segment's object, so
# bk_verify fails while it holds the backup's manifest.  The manifest is
# freed with the call's memory context (logged at DEBUG1), and the session
# goes on: the same verification, with the object readable again, is clean.
SKIP:
{
	skip 'as root every file is readable', 4 if $> == 0;
	chmod 0000, $object or die "chmod $object: $!";
	my $logstart = -s $node->logfile;
	my ($rc, $stdout, $stderr) = $node->psql('postgres',
		"SET log_min_messages = debug1; SELECT count(*) FROM bk_verify();");
	chmod 0600, $object or die "chmod $object: $!";
	isnt($rc, 0, 'bk_verify: an object the server cannot open is an ERROR');
	like($stderr, qr/could not read "\Q$key\E".*Permission denied/s, '... naming the object')
	  or diag($stderr);
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $logstart);
	like($log, qr/bk_verify stopped in backup \Q$backup\E: its manifest is freed/,
		'... and the manifest it held is freed with the call\'s memory');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM bk_verify()'), '0',
		'... after which it verifies clean again');
}

$node->stop;
done_testing();
