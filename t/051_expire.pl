# Expiry by depth, with the depth set so that the window begins at a
# chosen moment (bk_expire's as_of = a fixed "now", depth = now - T3):
# three base backups B0 < B1 < B2 and WAL between them; the window begins
# at T3, after B1 ended:
# exactly B0 and the WAL before B1's start go (a dry run first says so and
# changes nothing), history files and everything else stay, a restore to
# T3 (the oldest moment inside the window) succeeds end to end with the
# recorded rows, and T1 is refused.  Then an expiry stopped half-way (after
# two repository deletions, as a crash would) and run again leaves the
# repository and the catalog consistent: catalog = repository, bk_verify()
# clean, and a restore to the new window's start works.
# Change summaries (issue 12) go with their segments: after expiry no
# changes/ object of a deleted segment is left and every kept segment keeps
# its own; an expiry stopped after the summaries and before the segments
# leaves segments without summaries, never the other way round; a summary
# whose segment is already gone (left by an older pgbk) is deleted too.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path qw(make_path rmtree);
use lib 't/lib';
use PgbkRestore;
use PgbkTest;

my $repo = PgbkTest::local_repo('expire');
my $conf = $repo->{conf};
my $node = PgbkTest::new_node('expire', $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');

sub sq { return $node->safe_psql('postgres', $_[0]); }

# what pgbk_admin may do, it can do without any other grant (the admin
# functions write catalog tables the role has no grant on)
$node->safe_psql('postgres', 'CREATE ROLE expire_admin IN ROLE pgbk_admin');
sub sq_admin { return $node->safe_psql('postgres', "SET ROLE expire_admin; $_[0]"); }

sub listing
{
	my ($prefix) = @_;
	my %h = map { (split / /)[0] => 1 } grep { length } split /\n/,
	  PgbkTest::repo_tool($conf, 'list', $prefix);
	return \%h;
}

sub wal_objects
{
	my $l = listing('wal/');
	return { map { (m{([^/]+)$})[0] => 1 } keys %$l };
}

# segment (or .partial) name => 1 for every change summary in the repository
sub summaries
{
	my $l = listing('changes/');
	return { map { (m{([^/]+)$})[0] => 1 } keys %$l };
}

# the WAL names that have (or had) a change summary: segments and .partial
sub summarized { return grep { /^[0-9A-F]{24}(\.partial)?$/ } @_; }

my $w = PgbkRestore::workload($node, steps => 6, backups => [ 0, 2, 4 ]);
my ($b0, $b1, $b2) = @{ $w->{backups} };
my @t = map { $_->{time} } @{ $w->{moments} };    # $t[0] = T1 ... $t[5] = T6
# as_of must be a moment that has come (item 9 of issue 10): a fixed "now",
# with the depth reaching back from it to the moment the window should begin
my $now = sq("SELECT now()");
sq("SELECT bk_set_policy('database', depth => '$now'::timestamptz - '$t[2]'::timestamptz)");

# what the rule says must go when the window begins at T3: B0, and every
# WAL file (not history) that ends at or before B1's start
my $as_of1 = "'$now'::timestamptz";
my @want_wal = split /\n/, sq(
	"SELECT name FROM pgbk.wal WHERE kind <> 'history' AND end_lsn <= (SELECT start_lsn FROM pgbk.backup WHERE id = '$b1') ORDER BY name"
);
ok(@want_wal >= 2, scalar(@want_wal) . ' WAL files lie before B1 started');
my $wal_before = wal_objects();
# The data of a backup that never completed (no manifest: it failed or was
# interrupted) goes too; data whose id is newer than the expiry's start (a
# backup starting while it runs) stays.
my $orphan = '20250101T000000Z';
my $young = '29991231T000000Z';
for my $id ($orphan, $young)
{
	make_path("$repo->{dir}/backup/$id/data/base/1");
	PgbkTest::append_file("$repo->{dir}/backup/$id/data/base/1/1259", "left behind\n");
}
my $backups_before = listing('backup/');

# every segment archived has its change summary; plant one whose segment
# is not in the repository (left over by an older pgbk)
my $sums_before = summaries();
my @want_sums = summarized(@want_wal);
ok(@want_sums >= 2, scalar(@want_sums) . ' of them are segments');
is(join(',', grep { !$sums_before->{$_} } @want_sums), '',
	'... and each has its change summary before expiry');
my $stray = '000000010000000000000000';
my ($some_sum) = sort keys %{ listing('changes/') };
PgbkTest::repo_tool($conf, 'copy', $some_sum, 'changes/' . substr($stray, 0, 16) . "/$stray");
ok(!exists $wal_before->{$stray} && summaries()->{$stray},
	"a summary of $stray, a segment not in the repository");
$sums_before = summaries();

# a dry run says exactly that, and changes nothing
my $dry = sq("SELECT kind || ' ' || object || ' ' || action FROM bk_expire(true, $as_of1) WHERE action <> 'keep' AND kind IN ('backup', 'wal') ORDER BY 1");
is($dry, join("\n", "backup $orphan would delete", "backup $b0 would delete",
		map { "wal $_ would delete" } @want_wal),
	'dry run: exactly B0, the incomplete backup and the WAL before B1 would go');
like(sq("SELECT reason FROM bk_expire(true, $as_of1) WHERE object = '$orphan'"),
	qr/^incomplete: its files have no manifest/, '... the incomplete one with the reason');
like(sq("SELECT reason FROM bk_expire(true, $as_of1) WHERE object = '$b1'"),
	qr/newest backup that ended before the depth window began/, '... B1 is kept as the anchor, with the reason');
is_deeply(wal_objects(), $wal_before, '... and the dry run deleted nothing');
is(sq("SELECT string_agg(kind || ' ' || object || ' ' || action, ',') FROM bk_expire(true, $as_of1) WHERE kind = 'change summary'"),
	"change summary $stray would delete",
	'dry run: the summary whose segment is gone would go (those of the expired WAL go with it)');
is_deeply(summaries(), $sums_before, '... and no summary was deleted');
is_deeply(listing('backup/'), $backups_before, '... not even backup data');

# an as_of that is not a moment that has come is refused, and nothing
# changes: not infinite (which deleted every backup but the newest and the
# WAL they need), not NULL, not beyond a few minutes of clock skew ahead
# (WAL archived meanwhile may add rows: count those that were there before)
# Uploads finish in any order (two uploaders, each preparing its next file
# ahead), so a row named below the newest could still come: let archiving
# settle and bring the catalog to the repository first.
ok(PgbkTest::wait_archived($node), 'archiving settled');
sq_admin('SELECT bk_catalog_sync()');
my $wal_max = sq("SELECT max(name) FROM pgbk.wal");
my $rows_q = "SELECT (SELECT count(*) FROM pgbk.backup) || '/' || (SELECT count(*) FROM pgbk.wal WHERE name <= '$wal_max') || '/' || (SELECT count(*) FROM pgbk.restore_point)";
my $rows_before = sq($rows_q);
for my $bad ([ "'infinity'", qr/as_of must be a point in time, not infinity/ ],
	[ "'-infinity'", qr/as_of must be a point in time, not -infinity/ ],
	[ 'NULL', qr/as_of must not be NULL/ ],
	[ "now() + interval '1 day'", qr/as_of .* is in the future.*DETAIL:  Expiry applies the depth windows from a moment that has come/s ],
	[ "'$t[2]'::timestamptz + interval '90 days'", qr/as_of .* is in the future/ ])
{
	my ($ret, $o, $e) = $node->psql('postgres', "SELECT * FROM bk_expire(false, $bad->[0])");
	isnt($ret, 0, "bk_expire(false, $bad->[0]) is refused");
	like($e, $bad->[1], '... saying why');
}
is(sq($rows_q),
	$rows_before, '... and the catalog keeps every backup, WAL and restore point row');
is_deeply(wal_objects(), $wal_before, '... the repository every WAL object');
is_deeply(listing('backup/'), $backups_before, '... and every backup object');
like(sq("SELECT count(*) FROM bk_expire(true, now() + interval '4 minutes')"), qr/^\d+$/,
	'an as_of a few minutes ahead (clock skew) is accepted');

# An expiry stopped right after the summaries of the expired WAL, before
# the first segment (B0's manifest and data objects go first): the segments
# are all there, without summaries, and the catalog is unchanged (the run
# rolled back); the run below finishes it.
{
	my $b0_objects = scalar(keys %{ listing("backup/$b0/") });
	my $stop = 1 + $b0_objects + scalar(@want_sums);
	my ($ret, $o, $e) = $node->psql('postgres',
		"SET pgbk.debug_expire_fail_after = $stop; SELECT * FROM bk_expire(false, $as_of1)");
	like($e, qr/expiry stopped by pgbk.debug_expire_fail_after after $stop deletions/,
		"an expiry stopped after $stop deletions (B0: 1 + $b0_objects, summaries: "
		  . scalar(@want_sums) . ')');
	is(join(',', grep { !wal_objects()->{$_} } @want_wal), '',
		'... leaves every segment it was to expire');
	is(join(',', grep { summaries()->{$_} } @want_sums), '',
		'... but none of their summaries: summaries go first');
	is(sq($rows_q), $rows_before, '... and the catalog as it was');
}

# the real expiry
my $done = sq("SELECT kind || ' ' || object || ' ' || action FROM bk_expire(false, $as_of1) WHERE action <> 'keep' AND kind IN ('backup', 'wal') ORDER BY 1");
is($done, join("\n", "backup $orphan delete", "backup $b0 delete", map { "wal $_ delete" } @want_wal),
	'expiry deletes exactly B0, the incomplete backup and the WAL before B1');
ok(!-e "$repo->{dir}/backup/$orphan/data/base/1/1259", '... the incomplete backup\'s data is gone');
ok(-e "$repo->{dir}/backup/$young/data/base/1/1259", '... data newer than the expiry\'s start stays');
rmtree("$repo->{dir}/backup/$young");
my %expect_wal = %$wal_before;
delete $expect_wal{$_} for @want_wal;
is_deeply(wal_objects(), \%expect_wal, 'the repository lost exactly those WAL objects');
my %expect_sums = %$sums_before;
delete $expect_sums{$_} for @want_sums, $stray;
is_deeply(summaries(), \%expect_sums,
	'... and exactly their change summaries and the stray one: kept segments keep theirs');
is(join(',', grep { summaries()->{$_} } @want_wal), '', 'no changes/ object of a deleted segment is left');
my $l = listing('backup/');
ok(!grep({ m{^backup/\Q$b0\E/} } keys %$l), "backup $b0: no data object left");
ok(scalar(grep { m{^backup/\Q$b1\E/} } keys %$l) > 0 && scalar(grep { m{^backup/\Q$b2\E/} } keys %$l) > 0,
	'B1 and B2 keep their data');
is_deeply([ sort keys %{ listing('manifest/') } ], [ "manifest/$b1", "manifest/$b2" ],
	'manifests of B1 and B2 only');
is(sq("SELECT string_agg(id, ',' ORDER BY id) FROM pgbk.backup"), "$b1,$b2", 'catalog: B1 and B2');
is(sq("SELECT count(*) FROM pgbk.wal WHERE name = ANY('{" . join(',', @want_wal) . "}')"), '0',
	'catalog: the expired WAL rows are gone');

# the oldest moment inside the window restores end to end
my ($r, $rc, $out, $err) = PgbkRestore::restore('t3', $conf, '--target-time', $t[2]);
is($rc, 0, "restore to T3 ($t[2]), the window's start, succeeds") or diag("$out$err");
like($out, qr/backup:\s+\Q$b1\E/, '... from B1');
is(PgbkRestore::state($r), $w->{moments}[2]{state}, '... with exactly the rows of T3') if $rc == 0;
PgbkRestore::drop($r);
($r, $rc, $out, $err) = PgbkRestore::restore('t1', $conf, '--target-time', $t[0]);
is($rc, 8, 'T1, before the window, is refused now') or diag("$out$err");
like($err, qr/not recoverable/, '... as not recoverable');
PgbkRestore::drop($r);

###########################################################################
# An expiry stopped half-way, then run again.  Window start T5: B1 and the
# WAL before B2 go.
sq("SELECT bk_set_policy('database', depth => '$now'::timestamptz - '$t[4]'::timestamptz)");
my $as_of2 = "'$now'::timestamptz";
my @want_wal2 = split /\n/, sq(
	"SELECT name FROM pgbk.wal WHERE kind <> 'history' AND end_lsn <= (SELECT start_lsn FROM pgbk.backup WHERE id = '$b2') ORDER BY name"
);
my $stopped = $node->psql('postgres',
	"SET pgbk.debug_expire_fail_after = 2; SELECT * FROM bk_expire(false, $as_of2)",
	stderr => \my $stderr);
isnt($stopped, 0, 'the expiry stops after two deletions');
like($stderr, qr/expiry stopped by pgbk.debug_expire_fail_after after 2 deletions/, '... as the hook says');
ok(!-e "$repo->{dir}/manifest/$b1", "... B1's manifest went first, so B1 is never taken for complete");
is(sq("SELECT count(*) FROM pgbk.backup WHERE id = '$b1'"), '1', '... while its catalog row stays');

# (progress every 3 deletions instead of every 1000)
$node->psql('postgres',
	"SET pgbk.debug_expire_progress_every = 3; SET ROLE expire_admin; SELECT kind || ' ' || object || ' ' || action FROM bk_expire(false, $as_of2) WHERE action <> 'keep' AND kind IN ('backup', 'wal') ORDER BY 1",
	stdout => \$done, stderr => \my $progress);
is($done, join("\n", "backup $b1 delete", map { "wal $_ delete" } @want_wal2),
	'run again, by a member of pgbk_admin: it finishes the job (B1 and the WAL before B2)')
  or diag($progress);
like($progress, qr/NOTICE:  expiry has deleted 3 objects so far \(\d+ s\).*NOTICE:  expiry has deleted 6 objects so far/s,
	'... and reports its progress as it deletes');

# consistent: the catalog and the repository say the same
$l = listing('backup/');
ok(!grep({ m{^backup/\Q$b1\E/} } keys %$l), 'no data object of B1 is left');
is_deeply([ sort keys %{ listing('manifest/') } ], ["manifest/$b2"], 'only B2 has a manifest');
is(sq("SELECT string_agg(id, ',' ORDER BY id) FROM pgbk.backup"), $b2, 'catalog: only B2');
my $cat_wal = sq("SELECT string_agg(name, ',' ORDER BY name) FROM pgbk.wal");
is($cat_wal, join(',', sort keys %{ wal_objects() }), 'catalog WAL rows = WAL objects in the repository');
is(join(',', grep { summaries()->{$_} } @want_wal2), '', 'no summary of the segments expired now is left');
is(join(',', grep { !wal_objects()->{$_} } keys %{ summaries() }), '',
	'every change summary left has its segment');
sq_admin('SELECT bk_catalog_sync()');
is(sq("SELECT string_agg(name, ',' ORDER BY name) FROM pgbk.wal"), $cat_wal,
	'a catalog rebuilt from the repository (by pgbk_admin) is the same');
is(sq_admin('SELECT count(*) FROM bk_verify()'), '0', 'bk_verify (by pgbk_admin) finds nothing wrong');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 0, 'pgbk verify finds nothing wrong') or diag("$out$err");

($r, $rc, $out, $err) = PgbkRestore::restore('t5', $conf, '--target-time', $t[4]);
is($rc, 0, "restore to T5 ($t[4]), the new window's start, succeeds") or diag("$out$err");
is(PgbkRestore::state($r), $w->{moments}[4]{state}, '... with exactly the rows of T5') if $rc == 0;
PgbkRestore::drop($r);

# Every WAL object lost (and the catalog rebuilt from that): bk_verify names
# the first segment B2 needs, rather than failing on a backup without WAL.
rmtree("$repo->{dir}/wal");
sq_admin('SELECT bk_catalog_sync()');
is(sq("SELECT count(*) FROM pgbk.wal WHERE kind = 'segment'"), '0', 'no WAL left in the repository or the catalog');
my $start_seg = sq("SELECT pg_walfile_name(start_lsn) FROM pgbk.backup WHERE id = '$b2'");
is(sq_admin("SELECT kind || ' ' || object || ': ' || problem FROM bk_verify() WHERE kind = 'wal gap'"),
	"wal gap $start_seg: WAL segment $start_seg is missing: backup $b2 cannot be restored past it",
	'a backup without any WAL: bk_verify names its first segment as missing');

$node->stop;
done_testing();
