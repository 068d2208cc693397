# A time target in a quiet period: no transaction committed after it, but
# the archived WAL goes on past it (an archive_timeout switch, a restore
# point).  recovery_target_time would wait for a commit that never comes
# ("recovery ended before configured recovery target was reached"), so the
# planner proves that the archived WAL covers the target and stops recovery
# at an LSN instead: the end of that WAL, whose state is the state at the
# target.  A target past what the WAL covers is still refused.
#
# The quiet moments are 0.3 s before the WAL that proves them (a switch, a
# restore point): the time a segment was written is kept to the
# microsecond and the rule has no margin, so no distance is too short
# (issue 10, item 15: anything under about a second was refused).
#
# The node keeps its catalog in a database without the extension, so that
# pgbk's own catalog commits do not end the quiet period.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('quiet');
my $node = PgbkTest::new_node('src', $repo->{conf},
	extra => "autovacuum = off\npgbk.database = 'nocat'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE nocat');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$node->safe_psql('postgres', 'CREATE TABLE pitr (id int PRIMARY KEY, v text)');
my $bid = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
like($bid, qr/^\d{8}T\d{6}Z$/, 'base backup');
PgbkRestore::change($node, 1);
PgbkRestore::change($node, 2);
my $state = PgbkRestore::state($node);

# quiet: nothing commits; 0.3 s later WAL moves on without a commit
my $tq = PgbkRestore::now_utc($node);
PgbkRestore::wait_past($node, $tq, 0.3);
$node->safe_psql('postgres',
	"SELECT pg_logical_emit_message(false, 'pgbk-test', 'no commit'); SELECT pg_switch_wal()");
ok(PgbkTest::wait_archived($node), 'the WAL after the quiet moment is archived');

my ($r, $rc, $out, $err) = PgbkRestore::restore('q1', $repo->{conf}, '--target-time', $tq);
is($rc, 0, 'a moment in a quiet period is restored') or diag("$out$err");
like($out, qr/quiet period: no transaction committed between/, '... explaining the quiet period');
like(PgbkTest::slurp($r->data_dir . '/postgresql.auto.conf'),
	qr/^recovery_target_lsn = '[0-9A-F]+\/[0-9A-F]+'$/m, '... with an LSN target');
is(PgbkRestore::state($r), $state, '... and the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);

# bk_restore_point applies the same rule to the catalog.  (bk_catalog_sync
# here writes to the catalog: its commits come after every moment tested.)
sub sql_plan
{
	my ($target) = @_;
	$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
	return $node->safe_psql('postgres',
		"SELECT recoverable, coalesce(reason, '') FROM bk_restore_point('$target') WHERE scope = 'database'");
}
is(sql_plan($tq), 't|', 'bk_restore_point: the quiet moment is recoverable');
note('the WAL after it was written '
	  . $node->safe_psql('postgres', "SELECT max(written_at) - '$tq' FROM pgbk.wal WHERE kind = 'segment'")
	  . ' after the moment');
my ($latest) = $node->safe_psql('postgres',
	"SELECT latest >= '$tq' FROM bk_restore_window() ORDER BY latest DESC LIMIT 1");
is($latest, 't', 'bk_restore_window reaches into the quiet period');

# past the covered WAL: refused
my $late = PgbkRestore::now_utc($node);
($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf}, '--to',
	PostgreSQL::Test::Utils::tempdir('late') . '/x', '--target-time', $late);
is($rc, 8, 'a moment after the archived WAL is refused');
like($err, qr/no transaction committed after .* has been archived yet/, '... saying why');
like(sql_plan($late), qr/^f\|no transaction committed after .* has been archived yet/,
	'bk_restore_point refuses it too, saying why');

# a restore point made after the moment proves it too
my $tr = PgbkRestore::now_utc($node);
PgbkRestore::wait_past($node, $tr, 0.3);
$node->safe_psql('postgres', "SELECT pg_create_restore_point('quiet-rp'); SELECT pg_switch_wal()");
ok(PgbkTest::wait_archived($node), 'the restore point is archived');
($r, $rc, $out, $err) = PgbkRestore::restore('q2', $repo->{conf}, '--target-time', $tr);
is($rc, 0, 'a quiet moment before a restore point is restored') or diag("$out$err");
like($out, qr/when a restore point was made/, '... through the restore point');
is(PgbkRestore::state($r), $state, '... with the rows of that moment') if $rc == 0;
PgbkRestore::drop($r);
is(sql_plan($tr), 't|', 'bk_restore_point: recoverable through the restore point');

$node->stop;
done_testing();
