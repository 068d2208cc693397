# Incremental base backups (issue 12, points 2 and 6) on real PostgreSQL 15
# and RadosGW: a full backup, then an incremental after ~1% of a multi-MB
# table's pages changed stores only the changed blocks (manifest, catalog
# and bk_backup_progress say so, and its stored bytes are far below the
# full's), and whole files whose bytes the full holds (PG_VERSION, FSM
# forks) are not stored again while a changed one of the same size
# (pg_xact/0000) is; with one summary object removed, one WAL object hidden
# and that segment gone from pg_wal the next incremental falls back to
# comparing page LSNs and says why; an incremental whose parent is missing
# or unreadable, or whose parent's chain lacks a backup, is refused naming
# it;
# kill -9 of the backup worker during an incremental leaves no manifest and
# planning never uses it; 'auto' (what the scheduler takes) forces a full
# backup by chain length and by pgbk.full_backup_interval, and the scheduler
# takes incrementals; a restore from the chain full <- incremental <-
# page-LSN incremental gives the source's pg_dump; with archiving paused an
# incremental summarizes the segments not yet archived from pg_wal (mode
# summaries), waits only at its stop, and its chain restores to the
# source's pg_dump.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkS3;
use PgbkTest;
use PgbkRestore;

my $s3 = PgbkS3->start();
push @PgbkTest::SECRET_STRINGS, $s3->secret_key;
my $base = PostgreSQL::Test::Utils::tempdir('incrconf');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'incr', key_file => $key);

my $node = PgbkTest::new_node('incr', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');

sub repo { return PgbkTest::repo_tool($conf, @_); }

sub manifest { return PgbkTest::manifest($conf, @_); }

# Does backup id hold an object for data directory file path?
sub has_object
{
	my ($id, $path) = @_;
	my $key = "backup/$id/data/$path";
	return scalar grep { $_ eq $key } map { (split / /)[0] } split /\n/, repo('list', $key);
}
sub file_entry { return PgbkTest::manifest_file(@_); }
sub nblocks { return PgbkTest::block_count(@_); }

sub sql { return $node->safe_psql('postgres', $_[0]); }

# a table of ~2400 pages (~19 MB), no free space in its pages
sql(  "CREATE TABLE big (i int, pad text) WITH (autovacuum_enabled = off);"
	  . "INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 80000) i;"
	  . "VACUUM ANALYZE big; CHECKPOINT");
my $bigpath = sql("SELECT pg_relation_filepath('big')");
my $bigpages = sql("SELECT pg_relation_size('big') / 8192");
cmp_ok($bigpages, '>', 2000, "the table has $bigpages pages");

###########################################################################
# A full backup, then an incremental after ~1% of the pages changed
my $full = sql('SELECT bk_base_backup()');
like($full, qr/^\d{8}T\d{6}Z$/, "full backup $full");
is(sql("SELECT type, parent IS NULL, chain_length FROM pgbk.backup WHERE id = '$full'"),
	'full|t|0', 'the catalog records a full backup');
my $mf = manifest($full);
is($mf->{format}, 1, 'a full backup keeps writing manifest format 1');
ok(!exists $mf->{type} && !exists $mf->{parent}, '... without incremental keys');

# rows 1..700 live in the first ~20 pages; their new versions go to new pages
sql("UPDATE big SET pad = repeat('y', 200) WHERE i <= 700");
my $changed = sql("SELECT count(DISTINCT (ctid::text::point)[0]) FROM big WHERE i <= 700");
my $inc = sql("SELECT bk_base_backup(type => 'incremental')");
like($inc, qr/^\d{8}T\d{6}Z$/, "incremental backup $inc");

my ($ptype, $pparent, $pchanges, $preason, $pstored, $pok) = split /\|/,
  sql("SELECT type, parent, changes, coalesce(changes_reason, ''), stored_bytes_done, last_ok FROM bk_backup_progress");
is($ptype, 'incremental', 'bk_backup_progress: the backup is incremental');
is($pparent, $full, '... on the full backup');
is($pchanges, 'summaries', '... with blocks chosen by the change summaries');
is($preason, '', '... and no fallback');
is($pok, 't', '... and it succeeded');

my ($fstored, $istored, $ibytes) = split /\|/, sql(
	"SELECT f.stored_bytes, i.stored_bytes, i.bytes FROM pgbk.backup f, pgbk.backup i "
	  . "WHERE f.id = '$full' AND i.id = '$inc'");
is($pstored, $istored, 'bk_backup_progress shows the stored bytes the catalog records');
cmp_ok($istored * 10, '<', $fstored,
	"the incremental stores far fewer bytes than the full ($istored against $fstored)");
note("stored: full $fstored, incremental $istored bytes (ratio "
	  . sprintf('%.1f', $fstored / $istored) . "x); raw in incremental: $ibytes");
is(sql("SELECT type, parent, chain_length FROM pgbk.backup WHERE id = '$inc'"),
	"incremental|$full|1", 'the catalog records the chain');

my $mi = manifest($inc);
is($mi->{format}, 2, 'the incremental manifest is format 2');
is($mi->{type}, 'incremental', '... of type incremental');
is($mi->{parent}, $full, '... naming its parent');
is($mi->{parent_start_lsn}, $mf->{start_lsn}, "... and the parent's start LSN");
is($mi->{chain_length}, 1, '... chain length 1');
is($mi->{changes}{mode}, 'summaries', '... blocks chosen by summaries');
my $bf = file_entry($mi, $bigpath);
ok(defined $bf && defined $bf->{blocks}, 'the table is a block file');
my $nb = nblocks($bf->{blocks});
is($bf->{size}, sql("SELECT pg_relation_size('big')"), '... with its final size');
cmp_ok($nb, '>=', $changed, "it holds at least the $changed pages updated ($bf->{blocks})");
cmp_ok($nb, '<', $bigpages / 20, "... and only a few of the $bigpages pages ($nb)");
like($bf->{blocks}, qr/^0-/, '... from block 0 on');
my $full_big = file_entry($mf, $bigpath);
cmp_ok($bf->{stored}, '<', $full_big->{stored} / 10,
	"its object is far smaller than the full's ($bf->{stored} against $full_big->{stored})");
my @unchanged = grep { defined $_->{blocks} && $_->{blocks} eq '' } @{ $mi->{files} };
cmp_ok(scalar(@unchanged), '>', 100, scalar(@unchanged) . ' relation files carry no block');
my $some = $unchanged[0]{path};
ok(!grep({ $_ eq "backup/$inc/data/$some" } map { (split / /)[0] } split /\n/,
		repo('list', "backup/$inc/data/$some")),
	'... and have no object');
ok(!grep({ $_->{path} =~ /_fsm$/ && ($_->{blocks} // '') ne '' } @{ $mi->{files} }),
	'FSM forks never carry blocks: copied whole, or unchanged');
# Whole files (non-relation files, FSM and VM forks) whose bytes the parent
# holds are not stored again: a block file without blocks, no object, and
# the parent's copy has the bytes the file has now.
my $datadir = $node->data_dir;
my @refs = grep {
	defined $_->{blocks} && $_->{blocks} eq ''
	  && $_->{path} !~ m{^(base/\d+|global)/\d+(\.\d+)?$}    # not a main fork
} @{ $mi->{files} };
cmp_ok(scalar(@refs), '>', 100, scalar(@refs) . ' unchanged whole files are not stored again');
ok(file_entry($mi, 'PG_VERSION') && (file_entry($mi, 'PG_VERSION')->{blocks} // 'none') eq '',
	'... PG_VERSION among them');
my $template_fsm = (grep { $_->{path} =~ m{^base/1/\d+_fsm$} } @refs)[0];
ok($template_fsm, "... and a template1 FSM fork ($template_fsm->{path})");
for my $f (grep { $_ } file_entry($mi, 'PG_VERSION'), $template_fsm)
{
	my $p = $f->{path};
	ok(!has_object($inc, $p), "$p: no object in the incremental");
	is($f->{size}, -s "$datadir/$p", "$p: its size is the file's");
	ok(repo('cat', "backup/$full/data/$p") eq PostgreSQL::Test::Utils::slurp_file("$datadir/$p"),
		"$p: the full's copy holds the file's bytes");
}
# pg_xact/0000 changed (the UPDATE committed) but kept its size: compared by
# content, so it is copied again
my ($xf, $xi) = (file_entry($mf, 'pg_xact/0000'), file_entry($mi, 'pg_xact/0000'));
is($xi->{size}, $xf->{size}, 'pg_xact/0000 kept its size');
ok(!defined $xi->{blocks}, '... and, its content changed, is copied whole');
ok(has_object($inc, 'pg_xact/0000'), '... into an object of the incremental');
my ($ok, $vout, $verr) = (PgbkTest::pgbk('verify', '--config', $conf));
is($ok, 0, 'pgbk verify accepts both backups') or diag("$vout$verr");

###########################################################################
# Fallback: a summary removed and the WAL object of that segment hidden
sql("UPDATE big SET pad = repeat('z', 200) WHERE i BETWEEN 40001 AND 40300");
my $seg = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
sql('SELECT pg_switch_wal()');
sql('CREATE TABLE after_gap (i int); INSERT INTO after_gap VALUES (1)');
ok(PgbkTest::wait_archived($node), 'WAL archived');
my $prefix = substr($seg, 0, 16);
my $deadline = time() + 60;
while (repo('list', "changes/$prefix/$seg") eq '' && time() < $deadline)
{
	usleep(200_000);
}
isnt(repo('list', "changes/$prefix/$seg"), '', "segment $seg has a change summary");
repo('delete', "changes/$prefix/$seg");
repo('copy', "wal/$prefix/$seg", "hidden/$seg");
repo('delete', "wal/$prefix/$seg");
# a backup summarizes a segment from pg_wal when the repository has no
# summary: the segment must be gone from there too (removed by a checkpoint,
# as an archived segment is once wal_keep_size no longer keeps it)
my $pgwal = $node->data_dir . '/pg_wal';
sql('ALTER SYSTEM SET wal_keep_size = 0');
sql('SELECT pg_reload_conf()');
for (1 .. 20)
{
	last if !-e "$pgwal/$seg";
	sql('CREATE TABLE IF NOT EXISTS ckpt_filler (i int); INSERT INTO ckpt_filler VALUES (1)');
	sql('SELECT pg_switch_wal()');
	sql('CHECKPOINT');
	usleep(100_000);
}
ok(!-e "$pgwal/$seg", "segment $seg is no longer in pg_wal either");
my $log_offset = -s $node->logfile;
my $inc2 = sql("SELECT bk_base_backup(type => 'incremental')");
($ptype, $pparent, $pchanges, $preason) = split /\|/,
  sql("SELECT type, parent, changes, changes_reason FROM bk_backup_progress");
is($ptype, 'incremental', 'with a summary and its WAL gone: still incremental');
is($pparent, $inc, '... on the previous incremental');
is($pchanges, 'page-lsn', '... falling back to page LSNs');
like($preason, qr/\Q$seg\E/, '... and bk_backup_progress names the segment');
ok( $node->log_contains(
		qr/incremental base backup \Q$inc2\E compares page LSNs .*\Q$seg\E/, $log_offset),
	'the server log says so too');
my $m2 = manifest($inc2);
is($m2->{changes}{mode}, 'page-lsn', 'the manifest records page-lsn');
like($m2->{changes}{reason}, qr/\Q$seg\E/, '... and why');
is($m2->{chain_length}, 2, '... chain length 2');
$bf = file_entry($m2, $bigpath);
$nb = nblocks($bf->{blocks});
my $changed2 = sql("SELECT count(DISTINCT (ctid::text::point)[0]) FROM big WHERE i BETWEEN 40001 AND 40300");
cmp_ok($nb, '>=', $changed2, "the table's changed pages are kept ($nb >= $changed2)");
cmp_ok($nb, '<', $bigpages / 10, "... and only those pages ($nb of $bigpages)");
# put the WAL back for what follows
repo('copy', "hidden/$seg", "wal/$prefix/$seg");
sql('ALTER SYSTEM RESET wal_keep_size');
sql('SELECT pg_reload_conf()');

###########################################################################
# A parent whose chain is broken (here its full backup's manifest is gone)
# is refused, naming the missing backup
repo('copy', "manifest/$full", "hidden/manifest-$full");
repo('delete', "manifest/$full");
my ($rc, $out, $err) = $node->psql('postgres', "SELECT bk_base_backup(type => 'incremental')");
isnt($rc, 0, 'an incremental whose parent\'s chain lacks its full backup is refused');
like($err, qr/the chain of its parent backup \Q$inc2\E is broken/, '... saying so')
  or diag($err);
like($err, qr/needs backup \Q$full\E .*missing from the repository/, '... naming the missing backup');
repo('copy', "hidden/manifest-$full", "manifest/$full");

###########################################################################
# A missing or unreadable parent is refused when asked for explicitly
repo('copy', "manifest/$inc2", "hidden/manifest-$inc2");
repo('delete', "manifest/$inc2");
($rc, $out, $err) = $node->psql('postgres', "SELECT bk_base_backup(type => 'incremental')");
isnt($rc, 0, 'an incremental whose parent manifest is gone is refused');
like($err, qr/its parent backup \Q$inc2\E is missing from the repository/,
	'... naming the missing backup');
repo('copy', "hidden/manifest-$inc2", "manifest/$inc2");
repo('flip', "manifest/$inc2", 200);
($rc, $out, $err) = $node->psql('postgres', "SELECT bk_base_backup(type => 'incremental')");
isnt($rc, 0, 'an incremental whose parent manifest is damaged is refused');
like($err, qr/its parent backup \Q$inc2\E is unreadable/, '... naming the unreadable backup');
my $auto = sql("SELECT bk_base_backup(type => 'auto')");
is(sql("SELECT type || ' ' || changes_reason FROM bk_backup_progress"),
	"full parent backup $inc2 is unreadable",
	"'auto' takes a full backup instead and says why");
repo('delete', "manifest/$inc2");
repo('copy', "hidden/manifest-$inc2", "manifest/$inc2");

###########################################################################
# kill -9 of the backup worker during an incremental: no manifest, and
# planning never uses it
sql("UPDATE big SET pad = repeat('k', 200) WHERE i <= 100");
# the test harness turns restart_after_crash off; a server restarts after a crash
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;
my ($killed, $phase);
for my $try (1 .. 10)
{
	my $id = sql("SELECT bk_base_backup(false, 'incremental')");
	my $pid = '';
	for (1 .. 1000)
	{
		$pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgbk backup'");
		last if $pid ne '' || sql('SELECT NOT running FROM bk_backup_progress') eq 't';
		usleep(2_000);
	}
	next if $pid eq '';
	# step the worker until it is past pg_backup_start and not yet writing
	# its manifest (its phase is in pg_stat_activity, read without locks)
	for (1 .. 5000)
	{
		kill 'STOP', $pid;
		$phase = sql("SELECT query FROM pg_stat_activity WHERE pid = $pid");
		if ($phase =~ /: (summarizing changes|listing files|copying files)$/)
		{
			$phase = $1;
			kill 'KILL', $pid;
			$killed = $id;
			last;
		}
		kill 'CONT', $pid;
		last if $phase eq '' || $phase =~ /writing manifest|stopping|waiting for WAL/;
		usleep(500);
	}
	last if defined $killed;
	$node->poll_query_until('postgres', 'SELECT NOT running FROM bk_backup_progress');
}
ok(defined $killed, "backup worker of incremental $killed killed in phase '$phase'");
$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'server did not come back';
ok($node->log_contains(qr/background worker "pgbk backup" \(PID \d+\) was terminated by signal 9/),
	'the server restarted after the kill');
is(repo('list', "manifest/$killed"), '', 'the killed backup has no manifest');
sql('SELECT bk_catalog_sync()');
is(sql("SELECT count(*) FROM pgbk.backup WHERE id = '$killed'"), '0',
	'catalog sync does not list it');
my $inc3 = sql("SELECT bk_base_backup(type => 'incremental')");
# ids are start times to the second; the crash restart made shared memory
# anew, and the first backup after it once got the killed one's id
cmp_ok($inc3, 'gt', $killed, "the next backup's id $inc3 is not the killed one's");
is(sql("SELECT parent FROM pgbk.backup WHERE id = '$inc3'"), $auto,
	'the next incremental builds on the newest complete backup, not the killed one');
my ($irc, $iout) = PgbkTest::pgbk('info', '--config', $conf);
unlike($iout, qr/\Q$killed\E/, 'pgbk info does not show it');

###########################################################################
# 'auto', as the scheduler takes backups: a full by chain length and by age
$node->append_conf('postgresql.conf', "pgbk.max_backup_chain = 1\npgbk.full_backup_interval = '1h'");
$node->reload;
my $a1 = sql("SELECT bk_base_backup(type => 'auto')");
is(sql("SELECT type || ' ' || changes_reason FROM bk_backup_progress"),
	'full the chain has 1 incremental backups, pgbk.max_backup_chain is 1',
	'auto: a full backup when the chain is at pgbk.max_backup_chain');
my $a2 = sql("SELECT bk_base_backup(type => 'auto')");
is(sql("SELECT type || ' ' || parent FROM bk_backup_progress"),
	"incremental $a1", 'auto: then an incremental on it');
$node->append_conf('postgresql.conf', "pgbk.max_backup_chain = 0");
$node->reload;
sql("SELECT bk_base_backup(type => 'auto')");
is(sql("SELECT type || ' ' || changes_reason FROM bk_backup_progress"),
	'full pgbk.max_backup_chain is 0', 'auto: pgbk.max_backup_chain = 0 takes only full backups');
$node->append_conf('postgresql.conf', "pgbk.max_backup_chain = 14\npgbk.full_backup_interval = '2s'");
$node->reload;
sleep 3;
sql("SELECT bk_base_backup(type => 'auto')");
is(sql("SELECT type || ' ' || changes_reason FROM bk_backup_progress"),
	"full the chain's full backup is older than pgbk.full_backup_interval",
	'auto: a full backup when the chain\'s full is older than pgbk.full_backup_interval');

# the scheduler itself takes incrementals
$node->append_conf('postgresql.conf',
	"pgbk.full_backup_interval = '7d'\npgbk.base_backup_interval = '1min'");
$node->reload;
my $before = sql('SELECT max(id) FROM pgbk.backup');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) > 0 FROM pgbk.backup WHERE id > '$before' AND type = 'incremental'"),
	'the scheduler takes an incremental backup')
  or diag(sql('SELECT id, type, parent FROM pgbk.backup ORDER BY id'));

###########################################################################
# Restoring (helper incrrest's `pgbk restore`) the chain full -> incremental
# (summaries) -> incremental (page LSNs) gives the source's pg_dump
$node->append_conf('postgresql.conf', 'pgbk.base_backup_interval = 0');
$node->reload;
$node->poll_query_until('postgres', 'SELECT NOT running FROM bk_backup_progress');
sql("CREATE TABLE marker AS SELECT 'end'::text AS t");
sql('SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'the WAL up to the end is archived');
chomp(my $bindir = `pg_config --bindir`);
sub dump_of
{
	my ($n) = @_;
	my ($d, $e) = ('', '');
	IPC::Run::run([ "$bindir/pg_dump", '-h', $n->host, '-p', $n->port, '-d', 'postgres',
			'--exclude-schema', 'pgbk' ], '>', \$d, '2>', \$e);
	# pg_dump 15.14+ guards its script with a random \restrict key: not data
	$d =~ s/^(\\(?:un)?restrict) \S+$/$1 KEY/mg;
	return $d;
}
my $src_dump = dump_of($node);
{
	my ($r, $rrc, $rout, $rerr) = PgbkRestore::restore('chain', $conf, '--backup', $inc2,
		'--target', 'latest', '--parallel', 4);
	is($rrc, 0, "restore from the chain $full <- $inc <- $inc2 succeeds") or diag("$rout$rerr");
	if ($rrc == 0)
	{
		$r->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
		my $d = dump_of($r);
		cmp_ok(length($d), '>', 1000000, 'pg_dump of the restored copy');
		if (!ok($d eq $src_dump, '... is byte-identical to the source\'s'))
		{
			PgbkTest::write_file("$base/restored.sql", $d, 0600);
			PgbkTest::write_file("$base/source.sql", $src_dump, 0600);
			diag(`diff $base/restored.sql $base/source.sql | head -40`);
		}
		$r->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS amcheck');
		is($r->safe_psql('postgres', "SELECT count(*) FROM verify_heapam('big')"),
			'0', 'amcheck finds nothing wrong in the restored table');
		PgbkRestore::drop($r);
	}
}

###########################################################################
# Archiving paused: an incremental summarizes the segments the archiver has
# not archived yet from pg_wal (the earlier ones' summaries are in the
# repository), without waiting for the archiver; it waits only at its stop,
# for its own WAL; and the copy restored from its chain is the source.
# archive_command = 'pgbk wal-push', paused while a file is missing.
my $resume = "$base/archive-resume";
PgbkTest::write_file($resume, '', 0600);
my $pgbk_bin = PgbkTest::pgbk_bin();
sql("ALTER SYSTEM SET archive_library = ''");
sql("ALTER SYSTEM SET archive_command = 'test -e $resume && $pgbk_bin wal-push --config $conf %p'");
sql('SELECT pg_reload_conf()');
sql('CREATE TABLE before_pause (i int)');
sql('SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'archive_command = pgbk wal-push archives');
my $ppar = sql("SELECT bk_base_backup(type => 'incremental')");
is(sql("SELECT changes FROM bk_backup_progress"), 'summaries', "parent $ppar taken");

unlink $resume or die "unlink $resume: $!";
my $failed0 = sql('SELECT failed_count FROM pg_stat_archiver');
sql("UPDATE big SET pad = repeat('p', 200) WHERE i BETWEEN 60001 AND 60400");
my $pseg = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
sql('SELECT pg_switch_wal()');
sql('CREATE TABLE paused AS SELECT g AS i, repeat(\'w\', 100) AS t FROM generate_series(1, 20000) g');
sql("UPDATE big SET pad = repeat('q', 200) WHERE i BETWEEN 20001 AND 20100");
my $pseg2 = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
sql('SELECT pg_switch_wal()');
sql("UPDATE big SET pad = repeat('r', 200) WHERE i BETWEEN 30001 AND 30100");
ok($node->poll_query_until('postgres', "SELECT failed_count > $failed0 FROM pg_stat_archiver"),
	'archiving fails while paused');
my $pprefix = substr($pseg, 0, 16);
ok(-e $node->data_dir . "/pg_wal/archive_status/$pseg.ready", "segment $pseg is not archived");
is(repo('list', "changes/$pprefix/$pseg"), '', '... and has no change summary in the repository');
my $pchanged = sql("SELECT count(DISTINCT (ctid::text::point)[0]) FROM big "
	  . "WHERE i BETWEEN 60001 AND 60400 OR i BETWEEN 20001 AND 20100 OR i BETWEEN 30001 AND 30100");

$log_offset = -s $node->logfile;
my $pinc = sql("SELECT bk_base_backup(false, 'incremental')");
ok( $node->poll_query_until(
		'postgres', "SELECT phase = 'waiting for WAL' OR NOT running FROM bk_backup_progress"),
	"incremental $pinc reaches its stop while archiving is paused");
my ($prun, $pphase, $pctype, $pcchanges, $pcreason) = split /\|/, sql(
	"SELECT running, phase, type, changes, coalesce(changes_reason, '') FROM bk_backup_progress");
is("$prun $pphase", 't waiting for WAL', '... and waits there for its WAL, archiving being paused');
is($pctype, 'incremental', '... an incremental');
is($pcchanges, 'summaries', '... with blocks chosen by change summaries');
is($pcreason, '', '... and no fallback');
ok( $node->log_contains(
		qr/base backup \Q$pinc\E is incremental on \Q$ppar\E \(change summaries from \S+: \d+ segments, [1-9]\d* of them summarized from pg_wal\)/,
		$log_offset),
	'the log says how many segments were summarized from pg_wal');
ok(-e $node->data_dir . "/pg_wal/archive_status/$pseg.ready", "segment $pseg is still not archived");

# resume; a new segment wakes the archiver up
PgbkTest::write_file($resume, '', 0600);
sql('CREATE TABLE wake_archiver (i int)');
sql('SELECT pg_switch_wal()');
ok($node->poll_query_until('postgres', 'SELECT NOT running FROM bk_backup_progress'),
	'with archiving resumed the backup finishes');
is(sql("SELECT last_ok, type, parent, changes FROM bk_backup_progress"),
	"t|incremental|$ppar|summaries", '... as an incremental on the parent, with summaries');
my $mp = manifest($pinc);
is($mp->{changes}{mode}, 'summaries', 'the manifest records summaries');
my $bp = file_entry($mp, $bigpath);
cmp_ok(nblocks($bp->{blocks}), '>=', $pchanged,
	"the table's block file holds the pages changed while archiving was paused ($bp->{blocks})");
cmp_ok(nblocks($bp->{blocks}), '<', $bigpages / 5, '... and not every page');
ok(defined file_entry($mp, sql("SELECT pg_relation_filepath('paused')")),
	'the table created while paused is in the backup');

sql("CREATE TABLE marker2 AS SELECT 'end2'::text AS t");
sql('SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($node), 'the WAL up to the end is archived');
{
	my $src = dump_of($node);
	my ($r, $rrc, $rout, $rerr) = PgbkRestore::restore('paused', $conf, '--backup', $pinc,
		'--target', 'latest', '--parallel', 4);
	is($rrc, 0, "restore from the chain ending in $pinc succeeds") or diag("$rout$rerr");
	if ($rrc == 0)
	{
		$r->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
		my $d = dump_of($r);
		cmp_ok(length($d), '>', 1000000, 'pg_dump of the restored copy');
		if (!ok($d eq $src, '... is byte-identical to the source\'s'))
		{
			PgbkTest::write_file("$base/restored2.sql", $d, 0600);
			PgbkTest::write_file("$base/source2.sql", $src, 0600);
			diag(`diff $base/restored2.sql $base/source2.sql | head -40`);
		}
		$r->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS amcheck');
		is($r->safe_psql('postgres', "SELECT count(*) FROM verify_heapam('big')"),
			'0', 'amcheck finds nothing wrong in the restored table');
		PgbkRestore::drop($r);
	}
}

PgbkTest::no_secrets(PgbkTest::slurp($node->logfile), 'the server log');
$node->stop;
done_testing();
