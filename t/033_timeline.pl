# Timelines.  A restored copy promotes onto a new timeline; restores that
# follow it work:
#   (a) the copy archives into the same repository as its source, which
#       keeps running on timeline 1: a restore from the source's base backup
#       to a moment after the promotion follows timeline 2 by default, and
#       timeline 1 (the source's branch) with --target-timeline 1;
#   (b) a second copy archives into another repository (its own prefix):
#       after a base backup there, a restore to a moment after that
#       promotion, on its new timeline, works from that repository alone.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $repo = PgbkTest::local_repo('tla');
my $src = PgbkTest::new_node('src', $repo->{conf});
$src->start;
$src->safe_psql('postgres', 'CREATE EXTENSION pgbk');
my $w = PgbkRestore::workload($src, steps => 2, backups => [0]);
my ($t1, $t2) = map { $_->{time} } @{ $w->{moments} };
my ($s1, $s2) = map { $_->{state} } @{ $w->{moments} };

###########################################################################
# (a) copy C: restored to T1, archiving into the same repository
my ($c, $rc, $out, $err) = PgbkRestore::restore('c', $repo->{conf}, '--target-time', $t1,
	'--archive-config', $repo->{conf});
is($rc, 0, 'copy C restored to T1 with archiving into the same repository') or diag("$out$err");
is(PgbkRestore::state($c), $s1, "C holds T1's rows");
is($c->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '2',
	'C is on timeline 2');
PgbkRestore::change($c, 101);
my $sc = PgbkRestore::state($c);
my $tc = PgbkRestore::now_utc($c);
PgbkRestore::change($c, 102);
$c->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($c), "C's timeline 2 WAL is archived");
ok(-f "$repo->{dir}/wal/history/00000002.history", '00000002.history is in the repository');

# the source goes on on timeline 1
PgbkRestore::change($src, 201);
$src->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($src), "the source's timeline 1 WAL is archived");

my $r;
($r, $rc, $out, $err) = PgbkRestore::restore('ra', $repo->{conf}, '--target-time', $tc);
is($rc, 0, 'restore to a moment after the promotion (latest timeline)') or diag("$out$err");
like($out, qr/timeline:\s+2/, '... on timeline 2');
is(PgbkRestore::state($r), $sc, "... gives C's rows at that moment") if $rc == 0;
like(PgbkTest::slurp($r->data_dir . '/postgresql.auto.conf'),
	qr/^recovery_target_timeline = 'latest'$/m,
	"... with recovery_target_timeline = 'latest' (no timeline was asked for)");
PgbkRestore::drop($r);

($r, $rc, $out, $err) =
  PgbkRestore::restore('rb', $repo->{conf}, '--target-time', $tc, '--target-timeline', '1');
is($rc, 0, 'the same moment on timeline 1') or diag("$out$err");
is(PgbkRestore::state($r), $w->{final}, "... gives the source's rows at that moment") if $rc == 0;
like(PgbkTest::slurp($r->data_dir . '/postgresql.auto.conf'), qr/^recovery_target_timeline = '1'$/m,
	"... with recovery_target_timeline = '1', as asked");
PgbkRestore::drop($r);

($rc, $out, $err) = PgbkTest::pgbk('info', '--config', $repo->{conf});
like($out, qr/timeline 2: 00000002\S+ \.\. /, 'pgbk info lists timeline 2');
like($out, qr/00000002\.history: timeline 2 forked off timeline 1 at /, '... and its history');
$c->stop;

###########################################################################
# (b) copy D: the source's timeline 1 at T2, archiving into another
# repository.  A promotion probes the archive for the next free timeline:
# C took 2, so D gets 3.
my $repo_b = PgbkTest::local_repo('tlb');
my $d;
($d, $rc, $out, $err) = PgbkRestore::restore('d', $repo->{conf}, '--target-time', $t2,
	'--target-timeline', '1', '--archive-config', $repo_b->{conf});
is($rc, 0, 'copy D restored to T2, archiving into another repository') or diag("$out$err");
is(PgbkRestore::state($d), $s2, "D holds T2's rows");
my $dtli = $d->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()');
is($dtli, '3', 'D is on timeline 3');
my $bid = $d->safe_psql('postgres', 'SELECT bk_base_backup()');
like($bid, qr/^\d{8}T\d{6}Z$/, "a base backup of D in its repository ($bid)");
PgbkRestore::change($d, 301);
my $sd = PgbkRestore::state($d);
my $td = PgbkRestore::now_utc($d);
PgbkRestore::change($d, 302);
$d->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(PgbkTest::wait_archived($d), "D's WAL is archived");
ok(-f "$repo_b->{dir}/wal/history/00000003.history", '00000003.history is in its repository');
$d->stop;

($r, $rc, $out, $err) = PgbkRestore::restore('rd', $repo_b->{conf}, '--target-time', $td);
is($rc, 0, "restore from D's repository to a moment after its promotion") or diag("$out$err");
like($out, qr/timeline:\s+3/, '... on timeline 3');
is(PgbkRestore::state($r), $sd, "... gives D's rows at that moment") if $rc == 0;
PgbkRestore::drop($r);

# D's base backup carries the recovery settings of D's own restore in its
# postgresql.auto.conf; a restore of it replaces them (a leftover
# recovery_target_time would stop this one early, or clash with another
# kind of target).
($r, $rc, $out, $err) = PgbkRestore::restore('re', $repo_b->{conf}, '--target', 'latest');
is($rc, 0, "restore of D's backup to the latest state") or diag("$out$err");
my $auto = PgbkTest::slurp($r->data_dir . '/postgresql.auto.conf');
unlike($auto, qr/^recovery_target_time\s*=/m, "... D's old recovery target is gone");
is(scalar(() = $auto =~ /^restore_command/mg), 1, '... one restore_command');
is(PgbkRestore::state($r), PgbkRestore::state($r), '... and it runs') if $rc == 0;
PgbkRestore::drop($r);

###########################################################################
# (c) copy E: restored without archiving (the default) and promoted, then
# told to archive into a repository of its own.  PostgreSQL marked E's new
# history file for no archiver (archiving was off when it was written);
# pgbk's scheduler does once archiving is on, or a restore from that
# repository could not follow E's timeline switch.
my $repo_c = PgbkTest::local_repo('tlc');
my $e;
($e, $rc, $out, $err) = PgbkRestore::restore('e', $repo->{conf}, '--target-time', $t1);
is($rc, 0, 'copy E restored to T1, not archiving') or diag("$out$err");
my $etli = $e->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()');
my $ehist = sprintf('%08X.history', $etli);
my $estatus = $e->data_dir . "/pg_wal/archive_status/$ehist";
ok(-f $e->data_dir . "/pg_wal/$ehist" && !-e "$estatus.ready" && !-e "$estatus.done",
	"E (timeline $etli) has $ehist, never handed to an archiver");
$e->safe_psql('postgres', 'ALTER SYSTEM SET archive_mode = on');
$e->safe_psql('postgres', "ALTER SYSTEM SET pgbk.config = '$repo_c->{conf}'");
$e->restart;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
select(undef, undef, undef, 0.2)
  until -f "$repo_c->{dir}/wal/history/$ehist" || time() > $deadline;
ok(-f "$repo_c->{dir}/wal/history/$ehist", "once E archives, $ehist is in its repository");
my $hcopy = PostgreSQL::Test::Utils::tempdir() . "/$ehist";
($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $repo_c->{conf}, $ehist, $hcopy);
is($rc, 0, '... and reads back') or diag("$out$err");
is(PgbkTest::slurp($hcopy), PgbkTest::slurp($e->data_dir . "/pg_wal/$ehist"), '... byte-identical');
ok($e->log_contains(qr/archiving timeline history file "\Q$ehist\E", which was written while archiving was off/),
	'... saying why in the log');
$e->stop;

$src->stop;
done_testing();
