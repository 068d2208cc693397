# Tablespaces: restored beside the new data directory by default
# (DIR.tblspc/<oid>), or where --tablespace-map puts them; never at the
# source's location.  pg_tblspc links and tablespace_map name the new
# places, and the rows come back.
use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('ts');
my $node = PgbkTest::new_node('src', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $tsdir = PostgreSQL::Test::Utils::tempdir('ts_source');
$node->safe_psql('postgres', "CREATE TABLESPACE ts1 LOCATION '$tsdir'");
my $oid = $node->safe_psql('postgres', "SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'");
$node->safe_psql('postgres', 'CREATE TABLE pitr (id int PRIMARY KEY, v text) TABLESPACE ts1');
my $bid = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
like($bid, qr/^\d{8}T\d{6}Z$/, 'base backup with a tablespace');
PgbkRestore::change($node, 1);
my $state = PgbkRestore::state($node);
my $t = PgbkRestore::now_utc($node);
PgbkRestore::change($node, 2);
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'archived');
my $src_files = scalar(() = glob("$tsdir/PG_*/*/*"));

# default: beside the data directory
my ($r, $rc, $out, $err) = PgbkRestore::restore('r1', $repo->{conf}, '--target-time', $t);
is($rc, 0, 'restore with the default tablespace location') or diag("$out$err");
my $want = $r->data_dir . ".tblspc/$oid";
is(readlink($r->data_dir . "/pg_tblspc/$oid"), $want, "pg_tblspc/$oid points to DIR.tblspc/$oid");
is($r->safe_psql('postgres', "SELECT pg_tablespace_location($oid)"), $want,
	'... which the restored server uses');
is(PgbkRestore::state($r), $state, '... and the rows in the tablespace are those at T') if $rc == 0;
is(scalar(() = glob("$tsdir/PG_*/*/*")), $src_files, "the source's tablespace is untouched");
PgbkRestore::drop($r);

# mapped
my $mapped = PostgreSQL::Test::Utils::tempdir('ts_mapped') . '/here';
($r, $rc, $out, $err) = PgbkRestore::restore('r2', $repo->{conf}, '--target-time', $t,
	'--tablespace-map', "$oid=$mapped");
is($rc, 0, 'restore with --tablespace-map') or diag("$out$err");
is(readlink($r->data_dir . "/pg_tblspc/$oid"), $mapped, "pg_tblspc/$oid points to the mapped directory");
is(PgbkRestore::state($r), $state, '... and the rows are there') if $rc == 0;
PgbkRestore::drop($r);

# a mapped directory that is not empty: refused before anything is written
my $busy = PostgreSQL::Test::Utils::tempdir('ts_busy');
PgbkTest::write_file("$busy/x", 'x');
my $dest = PostgreSQL::Test::Utils::tempdir('ts_dest') . '/d';
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target-time', $t, '--tablespace-map', "$oid=$busy");
is($rc, 8, 'a non-empty tablespace directory is refused');
like($err, qr/tablespace \Q$oid\E into "\Q$busy\E": it is not an empty directory/, '... saying why');
ok(!-e $dest, '... and nothing is written');
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to', $dest,
	'--target-time', $t, '--tablespace-map', "99999=$busy");
is($rc, 2, 'an OID the backup does not have: usage error');

$node->stop;
done_testing();
