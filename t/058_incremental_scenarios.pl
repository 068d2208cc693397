# Restore from a chain (issue 12, points 3 to 6): the scenarios t/057 does
# not cover, on real PostgreSQL 15 (initdb --data-checksums) and RadosGW.
# A full backup, then 6 incrementals, one round of changes before each:
#   1. hint bits only (a SELECT over a table never read: FPI_FOR_HINT records)
#   2. CLUSTER (a new relfilenode); a transaction prepared, left open to the
#      end; rows into an unlogged table
#   3. CREATE DATABASE ... STRATEGY FILE_COPY and ... STRATEGY WAL_LOG, with
#      data; DROP DATABASE of a database the full backup has
#   4. ALTER TABLE ... SET TABLESPACE, ALTER DATABASE ... SET TABLESPACE
#   5. a table grows past 1 GB (its second segment file, .1, appears)
#   6. changes in every object the rounds above created or moved
# then a full backup at the same moment.  Restored to the same target from
# the chain and from the full, the two copies give byte-identical pg_dump
# output for every database (after committing the prepared transaction in
# both), the same relation files, the same raw pages for the hint-bit
# table, and amcheck (verify_heapam, bt_index_check heapallindexed) and
# pg_checksums find nothing wrong in the chain's copy; the unlogged table
# is there, empty, with its init fork, and usable.  Growing the table past
# 1 GB costs ~4 s (one row per page, ~70 MB of WAL), so it stays in the
# chain.  Then a byte of an incremental's data
# object is flipped: pgbk verify names the object, and a restore from that
# chain fails naming it and leaves nothing behind.
# Last, a timeline switch between parent and child: a copy restored from a
# timeline-1 full promotes to timeline 2, archiving into the same
# repository; incrementals taken there build on the timeline-1 full, and a
# restore from that chain equals one from the copy's own full backup.
use strict;
use warnings;

use File::Find;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use PgbkS3;
use PgbkTest;
use PgbkRestore;

my $s3 = PgbkS3->start();
push @PgbkTest::SECRET_STRINGS, $s3->secret_key;
my $base = PostgreSQL::Test::Utils::tempdir('incrscen');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'incrscen', key_file => $key);

my $node = PgbkTest::new_node('src', $conf,
	initdb_extra => ['--data-checksums'],
	extra => "max_prepared_transactions = 5\nshared_buffers = 128MB\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
is($node->safe_psql('postgres', 'SHOW data_checksums'), 'on', 'the source has data checksums');

sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
sub repo { return PgbkTest::repo_tool($conf, @_); }

sub manifest { return PgbkTest::manifest($conf, @_); }
sub file_entry { return PgbkTest::manifest_file(@_); }
sub nblocks { return PgbkTest::block_count(@_); }

###########################################################################
# Before the full backup
my $tsdir = PostgreSQL::Test::Utils::tempdir('incrscen_ts');
sql("CREATE TABLESPACE ts1 LOCATION '$tsdir'");
my $tsoid = sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'");

# hint: a table no one reads before the full backup (no index: building
# one would read it); its tuples carry no hint bits yet
sql("CREATE TABLE hint (i int, pad text) WITH (autovacuum_enabled = off);"
	  . "INSERT INTO hint SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, 60000) i");
# clu: rows stored backwards, clustered later
sql("CREATE TABLE clu (i int, t text) WITH (autovacuum_enabled = off);"
	  . "INSERT INTO clu SELECT i, repeat('c', 80) FROM generate_series(20000, 1, -1) i;"
	  . "CREATE INDEX clu_i ON clu (i)");
# mvt: moved to the tablespace later
sql("CREATE TABLE mvt (i int PRIMARY KEY, t text);"
	  . "INSERT INTO mvt SELECT i, repeat('m', 50) FROM generate_series(1, 10000) i");
# ul: unlogged, with an index
sql("CREATE UNLOGGED TABLE ul (i int PRIMARY KEY, t text);"
	  . "INSERT INTO ul SELECT i, 'u' FROM generate_series(1, 5000) i");
# ptx: the prepared transaction's table
sql("CREATE TABLE ptx (i int PRIMARY KEY, t text); INSERT INTO ptx VALUES (0, 'before')");
# g1: grows past 1 GB later; fillfactor 10 and ~450-byte rows put one row
# on each page, so 1 GB costs 131072 rows (~70 MB of WAL), not 1 GB of WAL
sql("CREATE TABLE g1 (i int, pad text) WITH (fillfactor = 10, autovacuum_enabled = off);"
	  . "INSERT INTO g1 SELECT i, repeat('g', 440) FROM generate_series(1, 1000) i");
is(sql("SELECT pg_relation_size('g1') / 8192"), 1000, 'g1 holds one row per page');
# databases: one to drop, one to move to the tablespace
for my $db ('dbdrop', 'dbmove')
{
	sql("CREATE DATABASE $db");
	sql("CREATE TABLE t (i int PRIMARY KEY, t text);"
		  . "INSERT INTO t SELECT i, '$db' FROM generate_series(1, 5000) i", $db);
}
sql('CHECKPOINT');

my $full = sql('SELECT bk_base_backup()');
like($full, qr/^\d{8}T\d{6}Z$/, "full backup $full");
my @chain = ($full);

sub incremental
{
	my ($what) = @_;
	my $inc = sql("SELECT bk_base_backup(type => 'incremental')");
	is(sql("SELECT type, parent FROM pgbk.backup WHERE id = '$inc'"),
		"incremental|$chain[-1]", 'incremental ' . scalar(@chain) . " ($inc) after $what");
	# from the WAL's change summaries, not the page-LSN fallback (which
	# would find hint-bit pages by their LSN whatever the summaries say)
	is(manifest($inc)->{changes}{mode}, 'summaries', '... from the change summaries');
	push @chain, $inc;
	return $inc;
}

###########################################################################
# 1. hint bits only: the first read of hint sets its tuples' hint bits;
# with checksums each page's first change after a checkpoint is logged as
# a full-page image (FPI_FOR_HINT), and nothing else changes
my $hintpages = sql("SELECT pg_relation_size('hint') / 8192");
my $hintpath = sql("SELECT pg_relation_filepath('hint')");
my $lsn0 = sql('SELECT pg_current_wal_insert_lsn()');
is(sql('SELECT count(*) FROM hint'), 60000, 'reading hint');
my $hintwal = sql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn0')");
cmp_ok($hintwal, '>', $hintpages * 4096,
	"... writes full-page images for its $hintpages pages ($hintwal bytes of WAL)");
my $inc1 = incremental('hint bits only');
my $hf = file_entry(manifest($inc1), $hintpath);
is(nblocks($hf->{blocks}), $hintpages, '... which stores every page of hint, as a block file');

###########################################################################
# 2. CLUSTER; a prepared transaction left open; an unlogged table changes
my $clu0 = sql("SELECT pg_relation_filenode('clu')");
sql('CLUSTER clu USING clu_i');
isnt(sql("SELECT pg_relation_filenode('clu')"), $clu0, 'CLUSTER gave clu a new relfilenode');
sql("INSERT INTO clu VALUES (20001, 'after cluster')");
sql("BEGIN; INSERT INTO ptx SELECT i, 'prepared' FROM generate_series(1, 1000) i;"
	  . "UPDATE ptx SET t = 'updated by p1' WHERE i = 0; PREPARE TRANSACTION 'p1'");
sql("INSERT INTO ul SELECT i, 'u2' FROM generate_series(5001, 6000) i");
incremental('CLUSTER, PREPARE TRANSACTION');

###########################################################################
# 3. CREATE DATABASE with both strategies, DROP DATABASE
sql('CREATE DATABASE dbf STRATEGY FILE_COPY');
sql('CREATE DATABASE dbw STRATEGY WAL_LOG');
for my $db ('dbf', 'dbw')
{
	sql("CREATE TABLE t (i int PRIMARY KEY, t text);"
		  . "INSERT INTO t SELECT i, repeat('$db', 20) FROM generate_series(1, 8000) i", $db);
}
my $dropoid = sql("SELECT oid FROM pg_database WHERE datname = 'dbdrop'");
sql('DROP DATABASE dbdrop');
incremental('CREATE DATABASE (FILE_COPY, WAL_LOG), DROP DATABASE');

###########################################################################
# 4. a table and a database move to the tablespace
sql('ALTER TABLE mvt SET TABLESPACE ts1');
sql('ALTER DATABASE dbmove SET TABLESPACE ts1');
like(sql("SELECT pg_relation_filepath('mvt')"), qr{^pg_tblspc/$tsoid/}, 'mvt is in ts1');
sql("INSERT INTO t SELECT i, 'moved' FROM generate_series(5001, 6000) i", 'dbmove');
like(sql("SELECT pg_relation_filepath('t')", 'dbmove'), qr{^pg_tblspc/$tsoid/}, 'dbmove is in ts1');
incremental('SET TABLESPACE (table, database)');

###########################################################################
# 5. g1 grows past 1 GB: its segment .1 appears
my $t0 = time();
sql("INSERT INTO g1 SELECT i, repeat('g', 440) FROM generate_series(1001, 132000) i");
my $g1path = sql("SELECT pg_relation_filepath('g1')");
ok(-s $node->data_dir . "/$g1path.1", "g1 has a second segment ($g1path.1)");
my $inc5 = incremental('a table grew past 1 GB');
my $m5 = manifest($inc5);
ok(defined file_entry($m5, "$g1path.1"), '... which has the new segment');
note(sprintf('growing g1 past 1 GB and its incremental took %.1f s', time() - $t0));

###########################################################################
# 6. changes everywhere
sql("UPDATE clu SET t = 'x' WHERE i % 10 = 0; UPDATE mvt SET t = 'y' WHERE i % 7 = 0;"
	  . "UPDATE g1 SET pad = 'short' WHERE i IN (1, 70000, 131500);"
	  . "INSERT INTO ul VALUES (7000, 'u3')");
for my $db ('dbf', 'dbw', 'dbmove')
{
	sql("UPDATE t SET t = 'changed' WHERE i % 5 = 0; DELETE FROM t WHERE i % 17 = 0", $db);
}
my $newest = incremental('changes everywhere');
# hint's pages come from incremental 1 (nothing after it changed them)
is(nblocks(file_entry(manifest($newest), $hintpath)->{blocks}), 0,
	'incremental 6 stores none of hint');
ok((grep { $_->{path} =~ m{^pg_twophase/} } @{ manifest($newest)->{files} }),
	"... and has the prepared transaction's state file in pg_twophase");

# a full backup at the same moment (nothing changes in between)
my $full2 = sql("SELECT bk_base_backup(type => 'full')");
is(sql("SELECT type FROM pgbk.backup WHERE id = '$full2'"), 'full', "a full backup $full2 of the same moment");

# the target: after both, with one more commit so recovery stops there
sleep 1;
sql("CREATE TABLE marker (t text); INSERT INTO marker VALUES ('before target')");
my $target = PgbkRestore::now_utc($node);
PgbkRestore::wait_past($node, $target, 1);
sql("INSERT INTO marker VALUES ('after target')");
sql('SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'WAL archived');
is(sql("SELECT count(*) FROM bk_verify()"), 0, 'bk_verify: the chain is sound');

###########################################################################
# Restore from the chain and from the full, same target
$t0 = time();
my ($rchain, $rc1, $out1, $err1) = PgbkRestore::restore('chain', $conf, '--backup', $newest,
	'--target-time', $target, '--parallel', 4);
is($rc1, 0, 'restore from the chain of 6 incrementals succeeds') or diag("$out1$err1");
like($out1, qr/chain:\s+\Q$full\E .* \Q$newest\E \(incremental: 7 backups restored together\)/,
	'... all 7 backups');
my ($rfull, $rc2, $out2, $err2) = PgbkRestore::restore('full', $conf, '--backup', $full2,
	'--target-time', $target, '--parallel', 4);
is($rc2, 0, 'restore from the full backup of the same moment succeeds') or diag("$out2$err2");
note(sprintf('the two restores took %.1f s', time() - $t0));
is($rchain->safe_psql('postgres', "SELECT string_agg(t, ',') FROM marker"), 'before target',
	'the chain copy stopped at the target');

# hint bits: the same raw pages in both copies (read before anything else
# could set a hint bit in either)
my $pages_sql = "CREATE EXTENSION pageinspect;"
  . "SELECT md5(string_agg(md5(get_raw_page('hint', b::int)), ',' ORDER BY b)) "
  . "FROM generate_series(0, pg_relation_size('hint') / 8192 - 1) b";
my $pc = $rchain->safe_psql('postgres', $pages_sql);
my $pf = $rfull->safe_psql('postgres', $pages_sql);
is($pc, $pf, "hint's raw pages (with their hint bits and checksums) are those of the full copy");
for my $r ($rchain, $rfull)
{
	$r->safe_psql('postgres', 'DROP EXTENSION pageinspect');
}

# the prepared transaction is there, and commits
for my $r ($rchain, $rfull)
{
	is($r->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts'), 'p1',
		$r->name . ': the transaction prepared before the incrementals is still prepared');
	$r->safe_psql('postgres', "COMMIT PREPARED 'p1'");
}
is($rchain->safe_psql('postgres', "SELECT count(*), count(*) FILTER (WHERE t = 'prepared'), "
	  . "min(t) FILTER (WHERE i = 0) FROM ptx"),
	'1001|1000|updated by p1', "the chain copy: COMMIT PREPARED 'p1' brings its rows");

# the databases and where they live
chomp(my $bindir = `pg_config --bindir`);
my @dbs = split /\n/, $rchain->safe_psql('postgres',
	"SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1");
is_deeply(\@dbs, [ 'dbf', 'dbmove', 'dbw', 'postgres', 'template1' ],
	'the databases: the created ones, not the dropped one');
is($rchain->safe_psql('postgres',
		"SELECT spcname FROM pg_database d JOIN pg_tablespace s ON s.oid = d.dattablespace "
		  . "WHERE datname = 'dbmove'"),
	'ts1', 'dbmove is in ts1');
like($rchain->safe_psql('postgres', "SELECT pg_relation_filepath('mvt')"),
	qr{^pg_tblspc/$tsoid/}, 'mvt is in ts1');
is(readlink($rchain->data_dir . "/pg_tblspc/$tsoid"), $rchain->data_dir . ".tblspc/$tsoid",
	'... restored beside the data directory');
ok(-s $rchain->data_dir . "/$g1path.1", "g1's second segment is there");

# the same relation files (main and init forks) in both copies: none
# left behind by DROP DATABASE, CLUSTER or SET TABLESPACE, none missing
sub relation_files
{
	my ($r) = @_;
	my $dd = $r->data_dir;
	my @f;
	find(
		{
			no_chdir => 1,
			follow => 1,
			wanted => sub {
				return unless -f $_;
				my $rel = substr($File::Find::name, length($dd) + 1);
				push @f, $rel
				  if $rel =~ m{^(?:base|global|pg_tblspc)/}
				  && $rel =~ m{/\d+(?:_init)?(?:\.\d+)?$};
			}
		},
		"$dd/base", "$dd/global", "$dd/pg_tblspc");
	return [ sort @f ];
}
my $fc = relation_files($rchain);
my $ff = relation_files($rfull);
cmp_ok(scalar(@$fc), '>', 1000, 'the chain copy has ' . scalar(@$fc) . ' relation files');
is_deeply($fc, $ff, "... the full copy's, no more, no less");
ok(!-e $rchain->data_dir . "/base/$dropoid", "... and no directory of the dropped database");

# pg_dump of every database, byte for byte
for my $db (@dbs)
{
	my ($d1, $d2, $e1, $e2) = ('', '', '', '');
	IPC::Run::run([ "$bindir/pg_dump", '-h', $rchain->host, '-p', $rchain->port, '-d', $db ],
		'>', \$d1, '2>', \$e1);
	IPC::Run::run([ "$bindir/pg_dump", '-h', $rfull->host, '-p', $rfull->port, '-d', $db ],
		'>', \$d2, '2>', \$e2);
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

# the unlogged table: there, empty, with its init fork, usable
my $ulpath = $rchain->safe_psql('postgres', "SELECT pg_relation_filepath('ul')");
ok(-f $rchain->data_dir . "/${ulpath}_init", "ul has its init fork (${ulpath}_init)");
is($rchain->safe_psql('postgres', 'SELECT count(*) FROM ul'), 0, 'ul is empty');
$rchain->safe_psql('postgres', "INSERT INTO ul VALUES (1, 'again')");
is($rchain->safe_psql('postgres', 'SELECT t FROM ul WHERE i = 1'), 'again', '... and usable');

# amcheck on every relation of every database of the chain copy
for my $db (@dbs)
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

# every page's checksum, every file of the chain copy
$rchain->stop;
my ($ck_out, $ck_err) = ('', '');
IPC::Run::run([ "$bindir/pg_checksums", '--check', '-D', $rchain->data_dir ],
	'>', \$ck_out, '2>', \$ck_err);
like($ck_out, qr/Bad checksums:\s+0\b/, 'pg_checksums: no bad checksum in the chain copy')
  or diag("$ck_out$ck_err");
PgbkRestore::drop($rchain);
PgbkRestore::drop($rfull);

###########################################################################
# A tampered block object: one byte of incremental 1's copy of hint's
# pages, which the restore needs (no later backup has them)
my $victim = "backup/$inc1/data/$hintpath";
isnt(repo('list', $victim), '', "incremental 1 stored $victim");
repo('flip', $victim, 3000);
my ($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 6, 'pgbk verify reports a problem');
my @problems = split /\n/, $out;
is(scalar(@problems), 1, '... one') or diag($out);
like($problems[0], qr/^backup file \Q$inc1:$hintpath\E: unreadable: object was modified or damaged/,
	'... naming the tampered object');
my $dest = "$base/tampered";
($rc, $out, $err) = PgbkRestore::run_pgbk('restore', '--config', $conf, '--to', $dest,
	'--backup', $newest, '--target-time', $target);
isnt($rc, 0, 'a restore from the chain with the tampered object fails');
like($err, qr/backup file "\Q$hintpath\E" of backup \Q$inc1\E: object was modified or damaged/,
	'... naming the object') or diag("$out$err");
ok(!-e $dest && !-e "$dest.tblspc", '... and leaves nothing behind');

$node->stop;

###########################################################################
# A timeline switch between parent and child: a full backup on timeline 1;
# a copy restored from it promotes to timeline 2 and archives into the same
# repository; an incremental taken there builds on the timeline-1 full; a
# restore from that chain equals one from a full backup of the copy taken
# at the same moment, though the source went on on timeline 1 meanwhile.
my $tlconf = $s3->write_pgbk_conf("$base/pgbk-tl.conf", prefix => 'incrtl', key_file => $key);
my $tl1 = PgbkTest::new_node('tl1', $tlconf, initdb_extra => ['--data-checksums'],
	extra => "shared_buffers = 128MB\n");
$tl1->start;
$tl1->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$tl1->safe_psql('postgres', "CREATE TABLE t (i int PRIMARY KEY, t text);"
	  . "INSERT INTO t SELECT i, repeat('a', 100) FROM generate_series(1, 30000) i;"
	  . "CREATE TABLE d (i int); INSERT INTO d SELECT generate_series(1, 3000)");
my $tlfull = $tl1->safe_psql('postgres', 'SELECT bk_base_backup()');
like($tlfull, qr/^\d{8}T\d{6}Z$/, "timeline 1: full backup $tlfull");
$tl1->safe_psql('postgres', "UPDATE t SET t = 'tl1' WHERE i % 3 = 0");
my $fork = PgbkRestore::now_utc($tl1);
PgbkRestore::wait_past($tl1, $fork, 1);
$tl1->safe_psql('postgres', "UPDATE t SET t = 'tl1 after the fork' WHERE i % 5 = 0; DROP TABLE d");
$tl1->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($tl1), 'timeline 1 archived');

my ($c, $crc, $cout, $cerr) = PgbkRestore::restore('tl2', $tlconf, '--target-time', $fork,
	'--archive-config', $tlconf);
is($crc, 0, 'a copy restored from the timeline-1 full, archiving into the same repository')
  or diag("$cout$cerr");
is($c->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '2',
	'... is on timeline 2');
$c->safe_psql('postgres', "UPDATE t SET t = 'tl2' WHERE i % 7 = 0; DELETE FROM t WHERE i % 11 = 0;"
	  . "INSERT INTO t SELECT i, 'new on tl2' FROM generate_series(30001, 32000) i;"
	  . "CREATE TABLE tl2only AS SELECT generate_series(1, 1000) i");
# the source goes on on timeline 1, with a backup after the fork
$tl1->safe_psql('postgres', "UPDATE t SET t = 'tl1 later' WHERE i % 2 = 0");
my $tl1late = $tl1->safe_psql('postgres', 'SELECT bk_base_backup()');
$tl1->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($tl1), "timeline 1 goes on, with backup $tl1late after the fork, archived");
$c->safe_psql('postgres', 'SELECT bk_catalog_sync()');
is($c->safe_psql('postgres', "SELECT count(*) FROM pgbk.backup WHERE id = '$tl1late'"), 1,
	"the copy's catalog knows that backup");

my ($tlirc, $tlinc, $tlierr) =
  $c->psql('postgres', "SELECT bk_base_backup(type => 'incremental')");
is($tlirc, 0, 'timeline 2: an incremental backup') or diag($tlierr);
is($c->safe_psql('postgres', "SELECT type, parent FROM pgbk.backup WHERE id = '$tlinc'"),
	"incremental|$tlfull",
	"... $tlinc builds on the timeline-1 full backup, not on the later one off its history");
my $tlm = PgbkTest::manifest($tlconf, $tlinc);
is($tlm->{changes}{mode}, 'summaries', '... from the change summaries of both timelines')
  or diag($tlm->{changes}{reason});
$c->safe_psql('postgres', "UPDATE t SET t = 'tl2 again' WHERE i % 13 = 0");
my $tlinc2 = $c->safe_psql('postgres', "SELECT bk_base_backup(type => 'incremental')");
is($c->safe_psql('postgres', "SELECT type, parent FROM pgbk.backup WHERE id = '$tlinc2'"),
	"incremental|$tlinc", "... and a second one ($tlinc2) on it");
my $tlfull2 = $c->safe_psql('postgres', "SELECT bk_base_backup(type => 'full')");
sleep 1;
$c->safe_psql('postgres', "CREATE TABLE marker (t text); INSERT INTO marker VALUES ('before target')");
my $tltarget = PgbkRestore::now_utc($c);
PgbkRestore::wait_past($c, $tltarget, 1);
$c->safe_psql('postgres', "INSERT INTO marker VALUES ('after target')");
$c->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($c), 'timeline 2 archived');

my ($tc, $tcrc, $tcout, $tcerr) = PgbkRestore::restore('tlchain', $tlconf, '--backup', $tlinc2,
	'--target-time', $tltarget);
is($tcrc, 0, 'restore from the chain across the timeline switch succeeds') or diag("$tcout$tcerr");
like($tcout, qr/chain:\s+\Q$tlfull\E \S+ \Q$tlinc\E \S+ \Q$tlinc2\E \(incremental: 3 backups/,
	'... the timeline-1 full and the two timeline-2 incrementals');
like($tcout, qr/timeline:\s+2\b/, '... on timeline 2');
my ($tf, $tfrc, $tfout, $tferr) = PgbkRestore::restore('tlfull', $tlconf, '--backup', $tlfull2,
	'--target-time', $tltarget);
is($tfrc, 0, "restore from timeline 2's full backup of the same moment succeeds")
  or diag("$tfout$tferr");
is($tc->safe_psql('postgres', "SELECT string_agg(t, ',') FROM marker"), 'before target',
	'the chain copy stopped at the target');
is($tc->safe_psql('postgres', "SELECT count(*) FROM t WHERE t LIKE 'tl1 %'"), 0,
	"... with none of timeline 1's changes after the fork");
my ($d1, $d2, $e1, $e2) = ('', '', '', '');
IPC::Run::run([ "$bindir/pg_dump", '-h', $tc->host, '-p', $tc->port, '-d', 'postgres' ], '>', \$d1, '2>', \$e1);
IPC::Run::run([ "$bindir/pg_dump", '-h', $tf->host, '-p', $tf->port, '-d', 'postgres' ], '>', \$d2, '2>', \$e2);
s/^(\\(?:un)?restrict) \S+$/$1 KEY/mg for ($d1, $d2);
cmp_ok(length($d1), '>', 500, 'pg_dump of the chain copy') or diag($e1);
ok($d1 eq $d2, "... is byte-identical to the full copy's (" . length($d1) . " bytes)");
$tc->safe_psql('postgres', 'CREATE EXTENSION amcheck');
is($tc->safe_psql('postgres', "SELECT count(*) FROM pg_class c, verify_heapam(c.oid) v "
		  . "WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't'"),
	0, 'verify_heapam: no corruption');
cmp_ok($tc->safe_psql('postgres',
		"SELECT count(bt_index_check(c.oid, true)) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
		  . "WHERE c.relkind = 'i' AND a.amname = 'btree' AND c.relpersistence <> 't'"),
	'>', 10, 'bt_index_check (heapallindexed) passes');
PgbkRestore::drop($tc);
PgbkRestore::drop($tf);
$c->stop;
$tl1->stop;

done_testing();
