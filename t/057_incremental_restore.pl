# Restore from a chain (issue 12, points 3 and 4) on real PostgreSQL 15 and
# RadosGW: a full backup and 5 incrementals with changes between them
# (updates and deletes over many pages, inserts, a VACUUM that truncates, a
# TRUNCATE, DROP TABLE then a new table, VACUUM FULL, CREATE INDEX, a second
# database), then a full backup at the same moment.  Restored to the same
# target from the chain (--backup of the newest incremental) and from the
# full, the two copies give byte-identical pg_dump output for every
# database, and amcheck (verify_heapam, bt_index_check) finds nothing wrong
# in the chain's copy.  The restore opens each output file once
# (PGBK_DEBUG_RESTORE_OPENS logs every open for writing).  The plan and
# --dry-run show the chain; with a middle backup's manifest gone the chain
# is refused naming that backup, before anything is written, and the SQL
# planner no longer offers it.
use strict;
use warnings;

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
my $base = PostgreSQL::Test::Utils::tempdir('incrrest');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'incrrest', key_file => $key);

my $node = PgbkTest::new_node('src', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');

sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }

# a few MB over several relations, in two databases
sql("CREATE DATABASE db2");
for my $db ('postgres', 'db2')
{
	sql("CREATE TABLE big (i int PRIMARY KEY, pad text) WITH (autovacuum_enabled = off);"
		  . "INSERT INTO big SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, 40000) i;"
		  . "CREATE TABLE shrink (i int, pad text) WITH (autovacuum_enabled = off);"
		  . "INSERT INTO shrink SELECT i, repeat('s', 300) FROM generate_series(1, 20000) i;"
		  . "CREATE TABLE gone (i int); INSERT INTO gone SELECT generate_series(1, 5000);"
		  . "CREATE TABLE trunc (i int, t text); INSERT INTO trunc SELECT i, 't' FROM generate_series(1, 8000) i;"
		  . "CREATE TABLE vf (i int, pad text); INSERT INTO vf SELECT i, repeat('v', 100) FROM generate_series(1, 10000) i;",
		$db);
}
sql('CHECKPOINT');

my $full = sql('SELECT bk_base_backup()');
like($full, qr/^\d{8}T\d{6}Z$/, "full backup $full");

my @steps = (
	# inserts, updates and deletes over many pages
	"UPDATE big SET pad = repeat('u', 192) WHERE i % 37 = 0; DELETE FROM big WHERE i % 101 = 0;"
	  . "INSERT INTO big SELECT i, 'new' FROM generate_series(40001, 42000) i",
	# a VACUUM that truncates the relation's tail
	"DELETE FROM shrink WHERE i > 5000; VACUUM shrink",
	# TRUNCATE; DROP TABLE then a new table
	"TRUNCATE trunc; INSERT INTO trunc VALUES (1, 'after'); DROP TABLE gone;"
	  . "CREATE TABLE fresh (i int, t text); INSERT INTO fresh SELECT i, 'f' FROM generate_series(1, 3000) i",
	# VACUUM FULL (a new relfilenode), CREATE INDEX
	"VACUUM FULL vf; CREATE INDEX fresh_i ON fresh (i); UPDATE big SET pad = 'x' WHERE i BETWEEN 1000 AND 3000",
	# more of everything, the relation grows
	"INSERT INTO big SELECT i, repeat('g', 150) FROM generate_series(42001, 60000) i; DELETE FROM vf WHERE i % 2 = 0;"
	  . "UPDATE shrink SET pad = 'z' WHERE i < 100",
);
my @chain = ($full);
my @after;
for my $i (0 .. $#steps)
{
	for my $db ('postgres', 'db2')
	{
		sql($steps[$i], $db);
	}
	my $inc = sql("SELECT bk_base_backup(type => 'incremental')");
	is(sql("SELECT type, parent FROM pgbk.backup WHERE id = '$inc'"),
		"incremental|$chain[-1]", 'incremental ' . ($i + 1) . " ($inc) builds on the previous backup");
	push @chain, $inc;
	# a moment after this backup ended (the next step's commits follow it)
	push @after, PgbkRestore::now_utc($node);
}
my $newest = $chain[-1];

# a full backup at the same moment (nothing changes in between)
my $full2 = sql('SELECT bk_base_backup(type => \'full\')');
is(sql("SELECT type FROM pgbk.backup WHERE id = '$full2'"), 'full', "a full backup $full2 of the same moment");

# the target: after both, with one more commit so recovery stops there
sleep 1;
sql("CREATE TABLE marker (t text); INSERT INTO marker VALUES ('before target')");
my $target = PgbkRestore::now_utc($node);
PgbkRestore::wait_past($node, $target, 1);
sql("INSERT INTO marker VALUES ('after target')");
sql('SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'WAL archived');

# bk_verify finds nothing wrong, chains included
is(sql("SELECT count(*) FROM bk_verify()"), 0, 'bk_verify: the chains are sound');

# the SQL plan names the chain: a moment after incremental 3
is(sql("SELECT backup_id, array_to_string(backup_chain, ' ') FROM bk_restore_point('$after[2]') "
		  . "WHERE scope = 'database'"),
	"$chain[3]|" . join(' ', @chain[ 0 .. 3 ]),
	'bk_restore_point: the newest incremental before the moment, with its chain');
is(sql("SELECT array_to_string(backup_chain, ' ') FROM bk_restore_point('$after[2]') "
		  . "WHERE scope <> 'database' AND backup_chain IS NOT NULL"),
	'', '... and no chain for the other scopes');

# the window shows the chains: a full, 5 incrementals on it and a second full
# end in the one stretch; a restore there reads at most 6 backups
is(sql("SELECT backups, incremental_backups, longest_chain FROM bk_restore_window()"),
	'7|5|6', 'bk_restore_window: backups in the stretch, how many incremental, the longest chain');

# the plan shows the chain
my ($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $conf, '--to', "$base/dry",
	'--backup', $newest, '--target-time', $target, '--dry-run');
is($rc, 0, 'dry run of the chain') or diag("$out$err");
my $chain_str = join(" \x{2190} ", @chain);
utf8::encode($chain_str);
like($out, qr/chain:\s+\Q$chain_str\E/, '... shows the whole chain, full first');
like($out, qr/rebuilt from 6 backups, down to the full backup $full/, '... and says what it will read');

# restore from the chain and from the full, same target
my %opens;
my ($rchain, $rc1, $out1, $err1);
{
	local $ENV{PGBK_DEBUG_RESTORE_OPENS} = 1;
	($rchain, $rc1, $out1, $err1) = PgbkRestore::restore('chain', $conf, '--backup', $newest,
		'--target-time', $target, '--parallel', 4);
}
is($rc1, 0, 'restore from the chain succeeds') or diag("$out1$err1");
$opens{$1}++ while $err1 =~ /open for write "([^"]+)"/g;
my $npieced = () = $err1 =~ /open for write "[^"]+" \(\d+ pieces\)/g;
my $nopens = scalar(keys %opens);
cmp_ok($nopens, '>', 100, "the restore logged its opens ($nopens files)");
my @twice = grep { $opens{$_} != 1 } keys %opens;
is(scalar(@twice), 0, 'each output file was opened for writing once') or diag("@twice");
cmp_ok($npieced, '>', 10, "... $npieced of them rebuilt from pieces of several backups");

my ($rfull, $rc2, $out2, $err2) = PgbkRestore::restore('full', $conf, '--backup', $full2,
	'--target-time', $target, '--parallel', 4);
is($rc2, 0, 'restore from the full backup of the same moment succeeds') or diag("$out2$err2");

is($rchain->safe_psql('postgres', 'SELECT string_agg(t, \',\') FROM marker'), 'before target',
	'the chain copy stopped at the target');

# pg_dump of every database, byte for byte
chomp(my $bindir = `pg_config --bindir`);
my @dbs = split /\n/, $rchain->safe_psql('postgres',
	"SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1");
is_deeply(\@dbs, [ 'db2', 'postgres', 'template1' ], 'the databases');
for my $db (@dbs)
{
	my ($d1, $d2, $e1, $e2) = ('', '', '', '');
	IPC::Run::run([ "$bindir/pg_dump", '-h', $rchain->host, '-p', $rchain->port, '-d', $db ], '>', \$d1, '2>', \$e1);
	IPC::Run::run([ "$bindir/pg_dump", '-h', $rfull->host, '-p', $rfull->port, '-d', $db ], '>', \$d2, '2>', \$e2);
	# pg_dump 15.14+ guards its script with a random \restrict key: not data
	s/^(\\(?:un)?restrict) \S+$/$1 KEY/mg for ($d1, $d2);
	cmp_ok(length($d1), '>', 500, "pg_dump of $db from the chain copy") or diag($e1);
	if (!ok($d1 eq $d2, "... is byte-identical to the full copy's (" . length($d1) . " bytes)"))
	{
		PgbkTest::write_file("$base/$db.chain.sql", $d1, 0600);
		PgbkTest::write_file("$base/$db.full.sql", $d2, 0600);
		diag(`diff $base/$db.chain.sql $base/$db.full.sql | head -20`);
	}
}

# amcheck on every relation of the chain copy
for my $db ('postgres', 'db2')
{
	$rchain->safe_psql($db, 'CREATE EXTENSION IF NOT EXISTS amcheck');
	my $heap = $rchain->safe_psql($db,
		"SELECT count(*) FROM pg_class c, verify_heapam(c.oid) v "
		  . "WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't'");
	is($heap, 0, "verify_heapam: no corruption in any table of $db");
	my $nidx = $rchain->safe_psql($db,
		"SELECT count(bt_index_check(c.oid, true)) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
		  . "WHERE c.relkind = 'i' AND a.amname = 'btree' AND c.relpersistence <> 't'");
	cmp_ok($nidx, '>', 10, "bt_index_check (heapallindexed) passed on $nidx indexes of $db");
}
PgbkRestore::drop($rchain);
PgbkRestore::drop($rfull);

# expiry keeps the chain of a kept incremental: with the window starting
# just after incremental 3, the full and incrementals 1 and 2 stay
sql("UPDATE pgbk.scope SET depth = '1 second' WHERE name = 'database'");
my %exp = map { my ($o, $a, $r) = split /\|/; ($o => "$a|$r") } split /\n/,
  sql("SELECT object, action, reason FROM bk_expire(true, '$after[2]'::timestamptz + interval '1 second') "
	  . "WHERE kind = 'backup'");
like($exp{ $chain[3] }, qr/^keep\|the newest backup that ended before the depth window began/,
	'expiry: incremental 3 is the anchor') or diag(explain \%exp);
for my $k (0 .. 2)
{
	like($exp{ $chain[$k] }, qr/^keep\|kept backup \d{8}T\d{6}Z is an incremental whose chain needs it/,
		"... and backup $k of its chain is kept for it") or diag($exp{ $chain[$k] });
}

# a missing middle backup: refused naming it, nothing written
my $victim = $chain[2];
PgbkTest::repo_tool($conf, 'delete', "manifest/$victim");
($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $conf, '--to', "$base/nochain",
	'--backup', $newest, '--target-time', $target);
isnt($rc, 0, 'with a backup of the chain gone, restoring the chain is refused');
like("$out$err", qr/\Q$victim\E.*missing from the repository/, '... naming the missing backup');
ok(!-e "$base/nochain", '... before anything is written');
# the verifiers name it for every incremental above it
my @bad = split /\n/, sql("SELECT object || ': ' || problem FROM bk_verify() WHERE kind = 'backup' ORDER BY 1");
my @above = grep { /needs backup \Q$victim\E/ } @bad;
is(scalar(@above), 3, 'bk_verify: the 3 incrementals above the missing backup cannot be restored')
  or diag(join("\n", @bad));
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
isnt($rc, 0, 'pgbk verify fails');
my $n = () = "$out$err" =~ /needs backup \Q$victim\E/g;
is($n, 3, '... naming the missing backup for each of the 3') or diag("$out$err");
# the planner then takes the full of the same moment, which does not need it
($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $conf, '--to', "$base/dry2",
	'--target-time', $target, '--dry-run');
is($rc, 0, 'the planner still finds a way') or diag("$out$err");
like($out, qr/backup:\s+$full2/, '... the full backup, not the broken chain');

done_testing();
