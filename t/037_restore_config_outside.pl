# A source that keeps its configuration outside the data directory, as
# Debian's packages do (/etc/postgresql/15/main, started with -D on that
# directory and data_directory set): its backups hold no postgresql.conf,
# pg_hba.conf or pg_ident.conf.  `pgbk restore --start` writes minimal ones,
# says so, and the copy comes up with the rows of the target moment.
use strict;
use warnings;

use File::Copy qw(move);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('etc');
my $node = PgbkTest::new_node('etc', $repo->{conf});
my $datadir = $node->data_dir;
my $confdir = PostgreSQL::Test::Utils::tempdir('etc') . '/main';
make_path($confdir);
for my $f (qw(postgresql.conf pg_hba.conf pg_ident.conf))
{
	move("$datadir/$f", "$confdir/$f") or die "move $f: $!";
}
PgbkTest::append_file("$confdir/postgresql.conf",
	"data_directory = '$datadir'\nhba_file = '$confdir/pg_hba.conf'\nident_file = '$confdir/pg_ident.conf'\ninclude_dir = 'conf.d'\n");
make_path("$confdir/conf.d");
PgbkTest::write_file("$confdir/conf.d/tuning.conf", "work_mem = '7MB'\n# \xe9t\xe9: not UTF-8\n");
PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-D', $confdir, '-l', $node->logfile, '-w',
	'start');
$node->_update_pid(1);

# where the copy's socket goes: postgresql.auto.conf lives in the data directory
my $sockdir = $node->host;
$node->safe_psql('postgres', "ALTER SYSTEM SET unix_socket_directories = '$sockdir'");
$node->safe_psql('postgres', "ALTER SYSTEM SET listen_addresses = ''");
$node->safe_psql('postgres',
	'CREATE EXTENSION pgbk; CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g'
);
my $id = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
like($id, qr/^\d{8}T\d{6}Z$/, "base backup $id of a source configured outside its data directory");
ok(!-e "$repo->{dir}/backup/$id/data/postgresql.conf" && !-e "$repo->{dir}/backup/$id/data/pg_hba.conf",
	'... holds no postgresql.conf and no pg_hba.conf');

$node->safe_psql('postgres', 'INSERT INTO t VALUES (-1, $$after the backup$$)');
my $want = $node->safe_psql('postgres', 'SELECT count(*), md5(string_agg(v, \',\' ORDER BY id)) FROM t');
my $target = $node->safe_psql('postgres',
	"SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || 'Z'");
$node->safe_psql('postgres', 'SELECT pg_sleep(0.1); INSERT INTO t VALUES (-2, $$after the target$$)');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'WAL archived');

my ($r, $rc, $out, $err) = PgbkRestore::restore('copy', $repo->{conf}, '--target-time', $target);
is($rc, 0, 'restore --start succeeds') or diag("$out$err");
like($out, qr/Backup \Q$id\E holds no postgresql\.conf, pg_hba\.conf, pg_ident\.conf: its source keeps them outside the data directory/,
	'... and says the backup had no configuration files');
if ($rc == 0)
{
	is($r->safe_psql('postgres', 'SELECT count(*), md5(string_agg(v, \',\' ORDER BY id)) FROM t'),
		$want, '... and the copy holds the rows of the target moment');
	is($r->safe_psql('postgres', 'SHOW hot_standby'), 'off', '... from a minimal postgresql.conf');
	like(PgbkTest::slurp($r->data_dir . '/pg_hba.conf'), qr/^local\s+all\s+all\s+peer$/m,
		'... and a pg_hba.conf for local connections');
	is($r->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', '... promoted');
	is($r->safe_psql('postgres', 'SHOW work_mem'), '4MB', '... and does not read the source\'s conf.d');
}
is($node->safe_psql('postgres', 'SHOW work_mem'), '7MB', 'the source reads conf.d/tuning.conf');
like($out, qr/The source's configuration files from outside its data directory are in \Q${\ $r->data_dir}\E\/pgbk_source_config\//,
	'the restore says where the source\'s configuration files are');
for my $f (qw(postgresql.conf pg_hba.conf pg_ident.conf conf.d/tuning.conf))
{
	my $copy = $r->data_dir . "/pgbk_source_config$confdir/$f";
	ok(-f $copy && PgbkTest::slurp($copy) eq PgbkTest::slurp("$confdir/$f"),
		"... $f, byte for byte");
	is(sprintf('%o', (stat $copy)[2] & 07777), '600', "... $f with mode 0600") if -f $copy;
	like($out, qr/^  \Q$confdir\E\/\Q$f\E$/m, "... $f is listed");
}
PgbkRestore::drop($r);

$node->stop;
done_testing();
