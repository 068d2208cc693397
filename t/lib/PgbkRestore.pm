# PgbkRestore: helpers for pgbk's restore tests.
#
#   my $w = PgbkRestore::workload($node, backups => [0, 2]);
#       # a table whose state (row count + checksum) is recorded at moments
#       # T1..T5, base backups at the given steps, a restore point, an LSN,
#       # all archived
#   my ($r, $rc, $out, $err) = PgbkRestore::restore('r1', $conf,
#       '--target-time', $w->{moments}[2]{time});
#       # pgbk restore --start into a new PostgreSQL::Test::Cluster node
#   is(PgbkRestore::state($r), $w->{moments}[2]{state});
#
# Every node started here is known to PostgreSQL::Test::Cluster, which
# stops it at exit whatever happens.
package PgbkRestore;

use strict;
use warnings;

use Carp;
use File::Path qw(rmtree);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgbkTest;

# The recorded table's state: row count and a checksum of every row.
my $state_sql = q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '=' || v, ',' ORDER BY id)), '-') FROM pitr};

sub state
{
	my ($node) = @_;
	return $node->safe_psql('postgres', $state_sql);
}

# A moment: UTC with microseconds and 'Z', as a user would type it.
sub now_utc
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || 'Z'});
}

# Wait until the server's clock is past $t by $secs seconds (no fixed sleep).
sub wait_past
{
	my ($node, $t, $secs) = @_;
	$node->poll_query_until('postgres',
		"SELECT clock_timestamp() > '$t'::timestamptz + interval '$secs seconds'")
	  or croak "clock did not pass $t";
	return;
}

# One step of changes: inserts, updates and deletes, committed.
sub change
{
	my ($node, $i) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO pitr SELECT g, md5(g::text || '$i') FROM generate_series($i * 1000 + 1, $i * 1000 + 500) g;
		UPDATE pitr SET v = md5(v) WHERE id % 7 = $i % 7;
		DELETE FROM pitr WHERE id % 11 = $i % 11 AND id < $i * 1000;
	});
	return;
}

# The workload.  Returns { moments => [ {time, state, step} ... ], backups
# => [ids], lsn => {lsn, state}, rp => {name, state}, final => state }.
sub workload
{
	my ($node, %o) = @_;
	my $steps = $o{steps} // 5;
	my %backup_at = map { $_ => 1 } @{ $o{backups} // [ 0, 2 ] };
	my %w = (moments => [], backups => []);

	$node->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS pitr (id int PRIMARY KEY, v text)');
	change($node, 0);
	for my $i (0 .. $steps)
	{
		if ($backup_at{$i})
		{
			my $id = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
			like($id, qr/^\d{8}T\d{6}Z$/, "base backup $id at step $i");
			push @{ $w{backups} }, $id;
		}
		last if $i == $steps;
		change($node, $i + 1);
		my %m = (step => $i + 1, state => state($node), time => now_utc($node));
		push @{ $w{moments} }, \%m;
		if ($i + 1 == 3)
		{
			$w{lsn} = {
				lsn => $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()'),
				state => $m{state} };
		}
		if ($i + 1 == 4)
		{
			$node->safe_psql('postgres', "SELECT pg_create_restore_point('after-step-4')");
			$w{rp} = { name => 'after-step-4', state => $m{state} };
		}
		# archive now and then so the moments spread over segments
		$node->safe_psql('postgres', 'SELECT pg_switch_wal()') if $i % 2;
	}
	# a commit after the last moment, so that every moment is reachable
	change($node, $steps + 1);
	$w{final} = state($node);
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	ok(PgbkTest::wait_archived($node), 'workload archived');
	return \%w;
}

# Run pgbk; on a timeout kill it (and say so) instead of leaving it behind.
sub run_pgbk
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ PgbkTest::pgbk_bin(), @args ], '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	eval { $h->finish; };
	if ($@)
	{
		$h->kill_kill;
		return (-1, $out, $err . "\n(pgbk timed out: $@)");
	}
	return ($h->result(0), $out, $err);
}

# pgbk restore --start into a new node.  Returns ($node, $rc, $out, $err);
# $node is running if $rc == 0.
sub restore
{
	my ($name, $conf, @args) = @_;
	my $r = PostgreSQL::Test::Cluster->new($name);
	my @cmd = ('restore', '--config', $conf, '--to', $r->data_dir, '--start', '--port', $r->port,
		'--log', $r->logfile, @args);
	my ($rc, $out, $err) = run_pgbk(@cmd);
	$r->_update_pid(-1);
	return ($r, $rc, $out, $err);
}

# Stop a restored node and remove its files.
sub drop
{
	my ($r) = @_;
	$r->stop if defined $r->{_pid};
	rmtree($r->data_dir);
	rmtree($r->data_dir . '.tblspc');
	return;
}

1;
