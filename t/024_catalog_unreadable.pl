# An object in the repository that the catalog cannot read (here: garbage
# under a WAL segment's name) is reported once per process, not at every
# sync: the scheduler syncs after every upload, and a warning per object
# per sync would flood the server log.  It is met again, unread, until it
# changes; then it is read (and reported) again.  A sync a user asks for
# says in one line how many such objects there are.  bk_status shows them
# (component 'repository') until they are gone or read again.
use strict;
use warnings;

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;

my $repo = PgbkTest::local_repo('unreadable');
my $node = PgbkTest::new_node('src', $repo->{conf});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk; CREATE TABLE t (x int)');

# far ahead on timeline 1, so the incremental sync's window always holds it
my $name = '0000000100000005000000FF';
my $key = 'wal/' . substr($name, 0, 16) . "/$name";
make_path("$repo->{dir}/wal/" . substr($name, 0, 16));
PgbkTest::write_file("$repo->{dir}/$key", "this is not a pgbk object\n" x 10);

# Upload a segment and wait until the scheduler's sync has catalogued it.
sub upload_and_sync
{
	my ($i) = @_;
	my $seg = $node->safe_psql('postgres',
		"INSERT INTO t VALUES ($i); SELECT pg_walfile_name(pg_current_wal_lsn())");
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pgbk.wal WHERE name = '$seg'");
}

# Reports of the object in the server log after byte offset $from.
sub reports
{
	my ($from) = @_;
	my $log = substr(PgbkTest::slurp($node->logfile), $from // 0);
	my @n = $log =~ /WARNING:  skipping repository object "\Q$key\E"/g;
	return scalar(@n);
}

my $synced = 0;
$synced += upload_and_sync($_) for 1 .. 5;
is($synced, 5, 'five uploads, each catalogued by a sync of the scheduler');
is(reports(0), 1, 'the unreadable object is reported once, not at each of the five syncs');
my $log = PgbkTest::slurp($node->logfile);
like($log, qr/skipping repository object "\Q$key\E": .*(magic|header|not a pgbk)/i,
	'... with the reason');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbk.wal WHERE name = '$name'"), '0',
	'... and it has no catalog row');
like($node->safe_psql('postgres', "SELECT status || ': ' || detail || ' / ' || last_error FROM bk_status WHERE component = 'repository'"),
	qr/^warning: 1 repository object cannot be read and is not in the catalog, first \Q$key\E; .* \/ .*(magic|header|not a pgbk)/i,
	'bk_status warns about it, with the reason');

# A user's sync: the first in a session reports the object (this backend has
# not met it), the second says how many there are, in one line.
my ($rc, $out, $err) = $node->psql('postgres',
	'SELECT bk_catalog_sync(false); SELECT bk_catalog_sync(false)');
is($rc, 0, 'bk_catalog_sync() twice in a session succeeds');
my @each = $err =~ /skipping repository object "\Q$key\E"/g;
is(scalar(@each), 1, '... the first reports the object');
like($err, qr/1 repository objects could not be read and are not in the catalog, first "\Q$key\E"/,
	'... the second says how many objects are unreadable');

# Changed (another size), it is read and reported again, once.
my $offset = length(PgbkTest::slurp($node->logfile));
PgbkTest::write_file("$repo->{dir}/$key", "still not a pgbk object\n" x 20);
$synced = 0;
$synced += upload_and_sync($_) for 6 .. 8;
is($synced, 3, 'three more uploads catalogued');
is(reports($offset), 1, 'the changed object is reported once more');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbk.unreadable"), '1', '... and is still one row for bk_status');

# Gone from the repository: the next full sync clears the warning.
unlink("$repo->{dir}/$key") or die;
$node->safe_psql('postgres', 'SELECT bk_catalog_sync(true)');
is($node->safe_psql('postgres', "SELECT count(*) FROM bk_status WHERE component = 'repository'"), '0',
	'the object removed, a full sync clears the warning in bk_status');

$node->stop;
done_testing();
