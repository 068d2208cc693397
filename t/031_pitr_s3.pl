# Point-in-time restore from a real S3 server (Ceph RadosGW on 127.0.0.1
# over TLS, SigV4 verified, encryption on): the same recorded moments as
# t/030 restored and compared row for row (time, LSN, restore point).  Then
# the source is stopped and its data directory deleted, and a restore runs
# from a fresh directory holding only pgbk.conf, the key and the
# credentials.  Neither the S3 secret nor the key reaches the output.
use strict;
use warnings;

use File::Copy;
use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkS3;
use PgbkTest;
use PgbkRestore;

my $s3 = PgbkS3->start();
push @PgbkTest::SECRET_STRINGS, $s3->secret_key;
my $base = PostgreSQL::Test::Utils::tempdir('s3conf');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'pitr', key_file => $key);

my $node = PgbkTest::new_node('src', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $w = PgbkRestore::workload($node, backups => [ 0, 2 ]);
my $all = '';

for my $m (@{ $w->{moments} })
{
	my ($r, $rc, $out, $err) =
	  PgbkRestore::restore("t$m->{step}", $conf, '--target-time', $m->{time}, '--parallel', 8);
	$all .= $out . $err;
	is($rc, 0, "S3: restore to T$m->{step} succeeds") or diag("$out$err");
	is(PgbkRestore::state($r), $m->{state}, "... and its rows are exactly those at T$m->{step}")
	  if $rc == 0;
	PgbkRestore::drop($r);
}

my ($r, $rc, $out, $err) = PgbkRestore::restore('lsn', $conf, '--target-lsn', $w->{lsn}{lsn});
$all .= $out . $err;
is($rc, 0, 'S3: restore to an LSN') or diag("$out$err");
is(PgbkRestore::state($r), $w->{lsn}{state}, '... with the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);

($r, $rc, $out, $err) = PgbkRestore::restore('name', $conf, '--target-name', $w->{rp}{name});
$all .= $out . $err;
is($rc, 0, 'S3: restore to a restore point') or diag("$out$err");
is(PgbkRestore::state($r), $w->{rp}{state}, '... with the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);

# Expiry on S3 (DeleteObjects, 1000 keys per request): a depth window that
# begins at T3 (depth = now - T3, as of that now) keeps B2 only, so B1 and
# the WAL before B2 go.
my $now = $node->safe_psql('postgres', 'SELECT now()');
$node->safe_psql('postgres',
	"SELECT bk_set_policy('database', depth => '$now'::timestamptz - '$w->{moments}[2]{time}'::timestamptz)");
my $as_of = "'$now'::timestamptz";
my $deleted = $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE kind = 'backup'), count(*) FILTER (WHERE kind = 'wal') FROM bk_expire(false, $as_of) WHERE action = 'delete'");
like($deleted, qr/^1\|[1-9]\d*$/, "S3 expiry deletes B1 and the WAL before B2 ($deleted)");
is($node->safe_psql('postgres', 'SELECT string_agg(id, \',\') FROM pgbk.backup'), $w->{backups}[1],
	'... the catalog keeps B2 only');
($r, $rc, $out, $err) = PgbkRestore::restore('gone', $conf, '--target-time', $w->{moments}[0]{time});
$all .= $out . $err;
is($rc, 8, 'T1 (needs B1) is not recoverable from the repository any more') or diag("$out$err");
PgbkRestore::drop($r);
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
$all .= $out . $err;
is($rc, 0, 'pgbk verify: what is left in S3 is whole (no data of B1 without its manifest)')
  or diag("$out$err");

# Only pgbk.conf, the key and the credentials, in a fresh place.
$node->stop;
rmtree($node->data_dir);
my $fresh = PostgreSQL::Test::Utils::tempdir('fresh');
(my $cred = $conf) =~ s/\.conf$/.credentials/;
copy($key, "$fresh/pgbk.key") or die;
copy($cred, "$fresh/pgbk.credentials") or die;
chmod(0600, "$fresh/pgbk.key", "$fresh/pgbk.credentials");
my $text = PgbkTest::slurp($conf);
$text =~ s/^key_file = .*$/key_file = 'pgbk.key'/m or die;
$text =~ s/^s3_credentials_file = .*$/s3_credentials_file = 'pgbk.credentials'/m or die;
PgbkTest::write_file("$fresh/pgbk.conf", $text);
my $m = $w->{moments}[3];
($r, $rc, $out, $err) = PgbkRestore::restore('fresh', "$fresh/pgbk.conf", '--target-time', $m->{time});
$all .= $out . $err;
is($rc, 0, 'with the source deleted, a restore from only pgbk.conf, key and credentials works')
  or diag("$out$err");
is(PgbkRestore::state($r), $m->{state}, '... with the recorded rows') if $rc == 0;
PgbkTest::no_secrets(PgbkTest::slurp($r->logfile), 'the restored server log');
PgbkRestore::drop($r);

($rc, $out, $err) = PgbkTest::pgbk('info', '--config', "$fresh/pgbk.conf");
$all .= $out . $err;
like($out, qr/Base backups: 1/, 'pgbk info reads the S3 repository');
PgbkTest::no_secrets($all, 'the CLI output');

done_testing();
