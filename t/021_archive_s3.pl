# Archiving to a real S3 server (Ceph RadosGW on 127.0.0.1 over TLS, which
# verifies SigV4): round trips through archive_library and archive_command,
# the duplicate rule, and bad input (wrong credentials, wrong key, missing
# bucket, refused connection) giving clear errors with nothing marked done.
# The S3 secret and the encryption key never reach a log or the CLI output.
use strict;
use warnings;

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkS3;
use PgbkTest;

my $s3 = PgbkS3->start();
push @PgbkTest::SECRET_STRINGS, $s3->secret_key;
my $base = PostgreSQL::Test::Utils::tempdir('s3conf');
my $key = PgbkTest::keygen("$base/pgbk.key");

sub conf
{
	my ($name, %o) = @_;
	return $s3->write_pgbk_conf("$base/$name.conf", prefix => $name, key_file => $key, %o);
}

sub workload
{
	my ($node, $rounds) = @_;
	$node->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS t (id int, payload text)');
	for my $i (1 .. $rounds)
	{
		$node->safe_psql('postgres',
			"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();");
	}
	return;
}

sub check_round_trip
{
	my ($conf, $origdir, $what) = @_;
	my $fetched = PostgreSQL::Test::Utils::tempdir('fetched');
	opendir(my $dh, $origdir) or die $!;
	my @files = sort grep { !/^\./ } readdir($dh);
	closedir($dh);
	my $bad = 0;
	my $out = '';
	for my $f (@files)
	{
		my ($rc, $o, $e) = PgbkTest::pgbk('wal-fetch', '--config', $conf, $f, "$fetched/$f");
		$out .= $o . $e;
		if ($rc != 0 || PgbkTest::slurp("$fetched/$f") ne PgbkTest::slurp("$origdir/$f"))
		{
			diag("$f: rc=$rc $e");
			$bad++;
		}
	}
	is($bad, 0, "$what: all " . scalar(@files) . " files read back byte-identical");
	return $out;
}

sub check_no_hole
{
	my ($node, $what) = @_;
	$node->safe_psql('postgres', 'SELECT bk_catalog_sync(true)');
	is( $node->safe_psql(
			'postgres', q{
		SELECT count(*) FROM (
			SELECT segno, lead(segno) OVER (ORDER BY segno) AS next
			FROM pgbk.wal WHERE timeline = 1 AND kind = 'segment') s
		WHERE next IS NOT NULL AND next <> segno + 1}),
		'0',
		"$what: no hole in the archived sequence");
	return;
}

my $cli_output = '';

###########################################################################
# 1. archive_library = 'pgbk' into S3
my $conf_lib = conf('lib');
my $node = PgbkTest::new_node('s3lib', $conf_lib);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
workload($node, 30);
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'S3, archive_library: everything archived');
my $orig = PostgreSQL::Test::Utils::tempdir('orig_s3lib');
my @copied = PgbkTest::copy_wal_originals($node, $orig);
cmp_ok(scalar(@copied), '>=', 30, 'several dozen WAL files');
$cli_output .= check_round_trip($conf_lib, $orig, 'S3, archive_library');
check_no_hole($node, 'S3, archive_library');

###########################################################################
# 2. The duplicate rule on S3
my $name = $copied[4];
my $before_dir = PostgreSQL::Test::Utils::tempdir('before');
my ($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $conf_lib, "$orig/$name");
is($rc, 0, 'S3: pushing identical content again succeeds');
my $forged = PostgreSQL::Test::Utils::tempdir('forged') . "/$name";
copy("$orig/$copied[5]", $forged) or die;
($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $conf_lib, $forged);
is($rc, 8, 'S3: different content under an archived name is refused');
like($err, qr/refusing to overwrite "\Q$name\E"/, '... naming the file');
$cli_output .= $out . $err;
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf_lib, $name, "$before_dir/$name");
is(PgbkTest::slurp("$before_dir/$name"), PgbkTest::slurp("$orig/$name"),
	'S3: the stored object still holds the original');

###########################################################################
# 3. archive_command = 'pgbk wal-push %p' into S3
my $conf_cmd = conf('cmd');
my $node2 = PgbkTest::new_node('s3cmd', $conf_cmd, archive_command => 1);
$node2->start;
$node2->safe_psql('postgres', 'CREATE EXTENSION pgbk');
workload($node2, 30);
$node2->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node2), 'S3, archive_command: everything archived');
my $orig2 = PostgreSQL::Test::Utils::tempdir('orig_s3cmd');
my @copied2 = PgbkTest::copy_wal_originals($node2, $orig2);
cmp_ok(scalar(@copied2), '>=', 30, 'several dozen WAL files');
$cli_output .= check_round_trip($conf_cmd, $orig2, 'S3, archive_command');
check_no_hole($node2, 'S3, archive_command');
$node2->stop;

###########################################################################
# 4. Bad input: a clear error naming the cause, nothing marked done.
# [overrides of the good configuration, expected exit code, expected message]
my %bad = (
	'wrong credentials' => [ [ secret_key => 'wrongsecretwrongsecretwrongsecret0000000' ],
		4, qr/access denied|SignatureDoesNotMatch|credentials/i ],
	'unknown access key' => [ [ access_key => 'NOSUCHACCESSKEY00000' ],
		4, qr/access denied|InvalidAccessKeyId|credentials/i ],
	'missing bucket' => [ [ bucket => 'no-such-bucket' ], 4, qr/bucket "no-such-bucket" does not exist/ ],
	'refused connection' => [
		[ s3_endpoint => 'https://127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port() ],
		4, qr/refused|could not connect/i ],
);
my %badconf;
for my $what (sort keys %bad)
{
	(my $file = "$base/bad-$what.conf") =~ s/ /_/g;
	$badconf{$what} = $s3->write_pgbk_conf($file, prefix => 'lib', key_file => $key,
		s3_max_retries => 1, @{ $bad{$what}[0] });
}

for my $what (sort keys %bad)
{
	my (undef, $code, $re) = @{ $bad{$what} };
	my $dest = PostgreSQL::Test::Utils::tempdir('bad') . '/x';
	($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $badconf{$what}, $name, $dest);
	is($rc, $code, "$what: wal-fetch exits $code");
	like($err, $re, "$what: the error names the cause");
	ok(!-e $dest, "$what: no DEST file");
	($rc, $out, $err) = PgbkTest::pgbk('wal-push', '--config', $badconf{$what}, "$orig/$copied[-1]");
	is($rc, $code, "$what: wal-push exits $code");
	$cli_output .= $out . $err;

	# through the archive module: the segment stays .ready, bk_status says why
	$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$badconf{$what}'");
	$node->reload;
	my $archived_before = $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_archiver');
	my $seg = $node->safe_psql('postgres',
		"INSERT INTO t VALUES (1, 'x'); SELECT pg_walfile_name(pg_current_wal_lsn())");
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	$node->poll_query_until('postgres',
		"SELECT status = 'failing' AND last_error IS NOT NULL FROM bk_status WHERE component = 'archive'")
	  or die "no failure reported for $what";
	like($node->safe_psql('postgres', "SELECT last_error FROM bk_status WHERE component = 'archive'"),
		$re, "$what: bk_status names the cause");
	ok(-e $node->data_dir . "/pg_wal/archive_status/$seg.ready", "$what: the segment is still .ready");
	is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_archiver'),
		$archived_before, "$what: nothing was marked archived");

	# back to the good configuration: everything drains
	$node->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$conf_lib'");
	$node->reload;
	ok(PgbkTest::wait_archived($node), "$what: after fixing the configuration, archiving drains");
}

# wrong encryption key: objects were written with $key
my $otherkey = PgbkTest::keygen("$base/other.key");
my $conf_wrongkey = $s3->write_pgbk_conf("$base/wrongkey.conf", prefix => 'lib', key_file => $otherkey);
my $dest = PostgreSQL::Test::Utils::tempdir('wk') . '/x';
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf_wrongkey, $name, $dest);
is($rc, 7, 'wrong key: wal-fetch exits 7');
like($err, qr/key id [0-9a-f]{8}.*not in key file/, 'wrong key: the error names the key id and the file');
ok(!-e $dest, 'wrong key: no DEST file');
$cli_output .= $out . $err;

###########################################################################
# 5. Secrets never in logs or CLI output
$node->stop;
PgbkTest::no_secrets(PgbkTest::slurp($node->logfile), 'server log (S3, archive_library)');
PgbkTest::no_secrets(PgbkTest::slurp($node2->logfile), 'server log (S3, archive_command)');
PgbkTest::no_secrets($cli_output, 'CLI output');
# and a non-superuser cannot read the configuration path or anything of pgbk
$node->start;
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($r2, $o2, $e2) = $node->psql('postgres', 'SHOW pgbk.config', extra_params => [ '-U', 'plain' ]);
like($e2, qr/must be superuser|pg_read_all_settings/, 'pgbk.config is hidden from non-superusers');
($r2, $o2, $e2) = $node->psql('postgres', 'SELECT * FROM pgbk.archive_state()', extra_params => [ '-U', 'plain' ]);
like($e2, qr/permission denied/, 'pgbk functions are not executable by a plain user');
$node->stop;

$s3->stop;
done_testing();
