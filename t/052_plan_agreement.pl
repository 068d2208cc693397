# One planner, two doors (issue 11, item 1): for a few hundred random
# targets the database's plan (bk_restore_point, bk_restore_point_lsn,
# bk_restore_point_named, scope 'database') and `pgbk restore --dry-run`
# give the same answer: recoverable or not, and then the same backup, the
# same timeline and the same WAL range (first and last segment), or else
# the same reason, word for word.
#
# The repository has a history with every shape the planner knows:
#   - four base backups: B1, B2 and B4 on timeline 1, B3 on timeline 2;
#   - a gap: a WAL segment between B1 and B2 removed from the repository
#     (and from the catalog by a full bk_catalog_sync);
#   - a quiet stretch: seconds without a commit, with WAL switches in it
#     (as t/035: the catalog lives in a database the background worker does
#     not write to, pgbk.database = 'nocat');
#   - two timelines: a copy restored (pgbk restore) to a moment after B2,
#     archiving its timeline 2 into the same repository, with a backup (B3)
#     and restore points there, while the source goes on on timeline 1
#     (B4 after the fork);
#   - a third timeline: a second copy restored to a moment on timeline 2
#     after B3, once the first copy has stopped (a failed primary), archiving
#     timeline 3 into the same repository;
#   - restore points made with bk_create_restore_point, one name on two
#     timelines, and a name that does not exist.
# Targets: moments spread over and around the whole history (before the
# first backup, around each backup's end, inside the quiet stretch, across
# the gap, around the fork, after the end), LSNs (uniform, around backup
# ends, restore points, segment boundaries, the gap, far ahead) and names.
#
# The seed is printed; PGBK_PLAN_SEED=<n> reruns the same targets over a
# repository of the same shape.  The test fails on any disagreement and
# names the first few, gravest first (recoverable or not, then backup or
# WAL, then reason, then timeline alone); every one is in the log (note).
use strict;
use warnings;

use File::Path qw(rmtree);
use JSON::PP;
use POSIX qw(floor);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use PgbkTest;
use PgbkRestore;

my $seed = $ENV{PGBK_PLAN_SEED} // 20261205;
srand($seed);
note("random seed: $seed (PGBK_PLAN_SEED=$seed reproduces the targets)");

my $repo = PgbkTest::local_repo('agree');
my $node = PgbkTest::new_node('src', $repo->{conf},
	extra => "autovacuum = off\npgbk.database = 'nocat'\narchive_timeout = 0\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE nocat');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$node->safe_psql('postgres', 'CREATE TABLE pitr (id int PRIMARY KEY, v text)');

# now in Unix microseconds, by the server's clock
sub now_us
{
	my ($n) = @_;
	return $n->safe_psql('postgres',
		'SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint') + 0;
}

sub fmt_time
{
	my ($us) = @_;
	my $s = floor($us / 1_000_000);
	my $f = $us - $s * 1_000_000;
	my @t = gmtime($s);
	return sprintf('%04d-%02d-%02d %02d:%02d:%02d.%06dZ',
		$t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $f);
}

sub fmt_lsn
{
	my ($l) = @_;
	return sprintf('%X/%X', int($l / 4294967296), $l % 4294967296);
}

sub lsn_num
{
	my ($s) = @_;
	my ($hi, $lo) = split m{/}, $s;
	return hex($hi) * 4294967296 + hex($lo);
}

sub switch_archive
{
	my ($n) = @_;
	$n->safe_psql('postgres', 'SELECT pg_switch_wal()');
	ok(PgbkTest::wait_archived($n), $n->name . ': WAL archived');
	return;
}

my %moment;    # name => Unix microseconds (the server's clock)
my @commits;   # Unix microseconds of commits made by the test
sub step
{
	my ($n, $i) = @_;
	PgbkRestore::change($n, $i);
	push @commits, now_us($n);
	return;
}

###########################################################################
# Timeline 1: B1, a gap, B2, a quiet stretch
$moment{start} = now_us($node);
step($node, 1);
my %backup;
$backup{B1} = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
step($node, 2);
$node->safe_psql('postgres', "SELECT bk_create_restore_point('rp-before-gap')");
step($node, 3);
# a short quiet moment before the gap: the WAL that covers it ends in the
# segment before the gap, the next commit is in the gap
$moment{pre_gap_commit} = $commits[-1];
PgbkRestore::wait_past($node, fmt_time($moment{pre_gap_commit}), 0.3);
switch_archive($node);

# the segment to remove: commits in it, nothing else
$moment{gap_from} = now_us($node);
step($node, 4);
step($node, 5);
my $gapseg = $node->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$node->safe_psql('postgres', "SELECT pg_create_restore_point('rp-in-gap')");
switch_archive($node);
$moment{gap_to} = now_us($node);
step($node, 6);
switch_archive($node);

$backup{B2} = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
step($node, 7);
$node->safe_psql('postgres', "SELECT bk_create_restore_point('rp-after-b2')");
step($node, 8);

# the quiet stretch: WAL goes on (messages without a transaction, switches)
# but nothing commits for about 2.5 s
$moment{quiet_from} = now_us($node);
for my $i (1 .. 4)
{
	PgbkRestore::wait_past($node, fmt_time($moment{quiet_from}), 0.6 * $i);
	$node->safe_psql('postgres',
		"SELECT pg_logical_emit_message(false, 'pgbk-test', 'quiet $i'); SELECT pg_switch_wal()");
}
ok(PgbkTest::wait_archived($node), 'the quiet stretch is archived');
$moment{quiet_to} = now_us($node);
step($node, 9);
$node->safe_psql('postgres', "SELECT bk_create_restore_point('rp-after-quiet')");
step($node, 10);
$moment{fork} = now_us($node);
step($node, 11);
switch_archive($node);

###########################################################################
# Timeline 2: a copy restored to the fork moment, archiving into the same
# repository, with a backup (B3) and restore points
my ($c, $rc, $out, $err) = PgbkRestore::restore('copy', $repo->{conf},
	'--target-time', fmt_time($moment{fork}), '--archive-config', $repo->{conf});
is($rc, 0, 'the copy is restored to the fork moment') or diag("$out$err");
is($c->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '2',
	'the copy is on timeline 2');
step($c, 101);
$c->safe_psql('postgres', "SELECT bk_create_restore_point('rp-tl2')");
step($c, 102);
$backup{B3} = $c->safe_psql('postgres', 'SELECT bk_base_backup()');
step($c, 103);
$c->safe_psql('postgres', "SELECT bk_create_restore_point('rp-both')");
$moment{tl2_mid} = now_us($c);
step($c, 104);
switch_archive($c);
$moment{tl2_end} = now_us($c);
$c->stop;

# Timeline 3: a second copy, restored to a moment on timeline 2 after B3,
# while the copy on timeline 2 is gone (as a failed primary is): between
# timeline 2's last commit and timeline 3's history file, timeline 2 has
# nothing more to say, timeline 3 does
my $d;
$moment{tl3_restore} = now_us($node);
($d, $rc, $out, $err) = PgbkRestore::restore('copy3', $repo->{conf},
	'--target-time', fmt_time($moment{tl2_mid}), '--archive-config', $repo->{conf});
is($rc, 0, 'the second copy is restored to a moment on timeline 2') or diag("$out$err");
is($d->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '3',
	'the second copy is on timeline 3');
step($d, 201);
$d->safe_psql('postgres', "SELECT bk_create_restore_point('rp-tl3')");
step($d, 202);
switch_archive($d);
$moment{tl3_end} = now_us($d);
$d->stop;

# the source goes on on timeline 1: B4 after the fork
step($node, 12);
$node->safe_psql('postgres', "SELECT bk_create_restore_point('rp-both')");
step($node, 13);
# one second at least between B3's and B4's ids (their start times)
PgbkRestore::wait_past($node, fmt_time($moment{tl3_end}), 1.1);
$backup{B4} = $node->safe_psql('postgres', 'SELECT bk_base_backup()');
step($node, 14);
$node->safe_psql('postgres', "SELECT bk_create_restore_point('rp-tl1-end')");
step($node, 15);
switch_archive($node);
$moment{end} = now_us($node);
like($backup{$_}, qr/^\d{8}T\d{6}Z$/, "base backup $_: $backup{$_}") for sort keys %backup;

###########################################################################
# The gap, and the catalog brought in line with the repository
my $gapfile = "$repo->{dir}/wal/" . substr($gapseg, 0, 16) . "/$gapseg";
ok(-f $gapfile, "the gap segment $gapseg is in the repository");
unlink($gapfile) or die "could not remove $gapfile: $!";
$node->safe_psql('postgres', 'SELECT bk_catalog_sync()');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbk.wal WHERE name = '$gapseg'"), '0',
	'... and neither in the repository nor in the catalog');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.backup'), '4',
	'the catalog holds the four backups');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbk.timeline'), '2',
	'... and the histories of timelines 2 and 3');

# what the repository looks like now (to check that it does not change)
sub repo_listing
{
	my @all;
	my $walk;
	$walk = sub {
		my ($d) = @_;
		opendir(my $dh, $d) or return;
		for my $e (sort grep { !/^\.\.?$/ } readdir($dh))
		{
			if (-d "$d/$e") { $walk->("$d/$e") }
			else { push @all, "$d/$e" }
		}
		closedir($dh);
	};
	$walk->($repo->{dir});
	return join("\n", @all);
}
my $listing = repo_listing();

###########################################################################
# The history, from the catalog (what the targets are spread around)
my $hist = decode_json($node->safe_psql('postgres', q{
	SELECT json_build_object(
		'backups', (SELECT json_agg(json_build_object('id', id, 'tli', timeline,
				'start_lsn', start_lsn::text, 'stop_lsn', stop_lsn::text,
				'stop_us', (extract(epoch FROM stop_time) * 1000000)::bigint) ORDER BY id)
			FROM pgbk.backup),
		'rps', (SELECT json_agg(json_build_object('name', name, 'lsn', lsn::text,
				'us', (extract(epoch FROM at) * 1000000)::bigint) ORDER BY lsn)
			FROM pgbk.restore_point),
		'segs', (SELECT json_agg(json_build_object('name', name, 'start', start_lsn::text,
				'end', end_lsn::text) ORDER BY name)
			FROM pgbk.wal WHERE kind = 'segment'),
		'forks', (SELECT json_agg(json_build_object('tli', tli, 'lsn', switch_lsn::text,
				'us', (extract(epoch FROM created_at) * 1000000)::bigint))
			FROM pgbk.timeline))}));
note('backups: ' . join(', ', map { "$_->{id} (timeline $_->{tli}, $_->{start_lsn} .. $_->{stop_lsn})" } @{ $hist->{backups} }));
note('restore points: ' . join(', ', map { "$_->{name} at $_->{lsn}" } @{ $hist->{rps} }));
note("gap: $gapseg; " . scalar(@{ $hist->{segs} }) . ' segments archived');
# the catalog's WAL rows, for whoever reads a disagreement
note(join("\n", 'catalog WAL segments (name, start, end, written, first/last commit, commits, last record, tail may stop):',
	split /\n/, $node->safe_psql('postgres', q{
	SELECT concat_ws(' ', name, start_lsn, end_lsn, to_char(written_at AT TIME ZONE 'UTC', 'HH24:MI:SS.US'),
		coalesce(to_char(first_stop_at AT TIME ZONE 'UTC', 'HH24:MI:SS.US'), '-'),
		coalesce(to_char(last_stop_at AT TIME ZONE 'UTC', 'HH24:MI:SS.US'), '-'),
		stop_records, last_record_lsn, tail_may_stop)
	  FROM pgbk.wal WHERE kind = 'segment' ORDER BY segno, timeline})));
note('timeline switches: ' . join(', ', map { "timeline $_->{tli} at $_->{lsn}" } @{ $hist->{forks} }));

###########################################################################
# The targets
sub uniform { my ($lo, $hi) = @_; return $lo + int(rand($hi - $lo + 1)); }

my (@times, @lsns, @names);
my $sec = 1_000_000;
my ($t0, $t1) = ($moment{start}, $moment{end});
push @times, uniform($t0 - 20 * $sec, $t1 + 20 * $sec) for 1 .. 90;   # over and around everything
push @times, uniform($t0 - 86400 * $sec, $t0) for 1 .. 4;            # before the first backup
push @times, uniform($t1, $t1 + 3600 * $sec) for 1 .. 6;             # after the end
push @times, uniform($moment{quiet_from}, $moment{quiet_to}) for 1 .. 25;    # quiet
push @times, uniform($moment{gap_from} - $sec, $moment{gap_to} + $sec) for 1 .. 20;  # the gap
push @times, uniform($moment{fork} - $sec, $moment{fork} + $sec) for 1 .. 10;
push @times, uniform($moment{fork}, $moment{tl2_end} + $sec) for 1 .. 10;
push @times, uniform($moment{tl2_mid} - $sec, $moment{tl3_end} + $sec) for 1 .. 15;
push @times, uniform($moment{tl2_end}, $moment{tl3_restore}) for 1 .. 3;    # timeline 2 has stopped
push @times, uniform($moment{pre_gap_commit}, $moment{pre_gap_commit} + 300_000) for 1 .. 3;
for my $b (@{ $hist->{backups} })
{
	push @times, $b->{stop_us} + $_ for (-1, 0, 1, uniform(2, 200_000));
}
for my $r (@{ $hist->{rps} })
{
	push @times, $r->{us} + $_ for (-1, 0, 1);
}
for my $cm (@commits[ map { int(rand(@commits)) } 1 .. 8 ])
{
	push @times, $cm + uniform(-2000, 2000);
}

my @seg_starts = map { lsn_num($_->{start}) } @{ $hist->{segs} };
my ($lmin, $lmax) = ($seg_starts[0], 0);
$lmax = lsn_num($_->{end}) > $lmax ? lsn_num($_->{end}) : $lmax for @{ $hist->{segs} };
push @lsns, uniform($lmin - 16 * 1048576, $lmax + 32 * 1048576) for 1 .. 60;
for my $b (@{ $hist->{backups} })
{
	push @lsns, lsn_num($b->{stop_lsn}) + $_ for (-1, 0, 1);
	push @lsns, lsn_num($b->{start_lsn});
}
for my $r (@{ $hist->{rps} })
{
	push @lsns, lsn_num($r->{lsn}) + $_ for (-1, 0, 1);
}
for my $f (@{ $hist->{forks} })
{
	push @lsns, lsn_num($f->{lsn}) + $_ for (-1, 0, 1);
}
for (1 .. 10)
{
	my $s = $seg_starts[ int(rand(@seg_starts)) ];
	push @lsns, $s, $s + 40, $s - 1;
}
my $gapstart = hex(substr($gapseg, 8, 8)) * 4294967296 + hex(substr($gapseg, 16, 8)) * 16 * 1048576;
push @lsns, $gapstart, $gapstart + uniform(1, 16 * 1048576 - 1), $gapstart + 16 * 1048576 - 1;
push @lsns, $lmax + 1024 * 1048576, 1;
@lsns = grep { $_ > 0 } @lsns;

my %seen;
@names = grep { !$seen{$_}++ } ((map { $_->{name} } @{ $hist->{rps} }),
	'rp-before-gap', 'rp-in-gap', 'rp-after-b2', 'rp-after-quiet', 'rp-tl2', 'rp-both',
	'rp-tl1-end', 'rp-tl3', 'no-such-point');

# each target once
my %uniq;
@times = grep { !$uniq{"t$_"}++ } @times;
@lsns = grep { !$uniq{"l$_"}++ } @lsns;
note("moment $_: " . fmt_time($moment{$_})) for sort { $moment{$a} <=> $moment{$b} } keys %moment;
note(sprintf('%d time, %d LSN and %d name targets', scalar(@times), scalar(@lsns), scalar(@names)));

###########################################################################
# The database's answers, one query per kind
sub sql_plans
{
	my ($fn, $type, @vals) = @_;
	my $values = join(',', map { "($_, " . $vals[$_] . "::$type)" } 0 .. $#vals);
	my $json = $node->safe_psql('postgres', qq{
		SELECT json_agg(json_build_object('i', t.i, 'rec', p.recoverable, 'reason', p.reason,
			'backup', p.backup_id, 'tli', p.timeline, 'first', p.first_wal,
			'last', p.last_wal) ORDER BY t.i)
		  FROM (VALUES $values) t(i, v) CROSS JOIN LATERAL $fn(t.v) p
		 WHERE p.scope = 'database'});
	my $rows = decode_json($json);
	is(scalar(@$rows), scalar(@vals), "$fn: one database row per target");
	return $rows;
}
my $t_sql = time();
my $sql_time = sql_plans('bk_restore_point', 'timestamptz', map { "'" . fmt_time($_) . "'" } @times);
my $sql_lsn = sql_plans('bk_restore_point_lsn', 'pg_lsn', map { "'" . fmt_lsn($_) . "'" } @lsns);
my $sql_name = sql_plans('bk_restore_point_named', 'text', map { "'$_'" } @names);
$t_sql = time() - $t_sql;

###########################################################################
# The CLI's answers: pgbk restore --dry-run, parsed
my $scratch = PostgreSQL::Test::Utils::tempdir('dry');
sub cli_plan
{
	my (@target) = @_;
	my ($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $repo->{conf},
		'--to', "$scratch/x", '--dry-run', @target);
	my %p = (rc => $rc);
	if ($rc != 0 && $rc != 8)
	{
		$p{error} = "exit $rc: $out$err";
		return \%p;
	}
	$p{rec} = $out =~ /^  recoverable: yes$/m ? 1 : 0;
	($p{reason}) = $out =~ /^  recoverable: no: (.*)$/m;
	($p{backup}) = $out =~ /^  backup:\s+(\S+), ended /m;
	($p{tli}) = $out =~ /^  timeline:\s+(\d+)$/m;
	($p{first}, $p{last}) = $out =~ /^  WAL:\s+([0-9A-F]{24}) \.\. ([0-9A-F]{24}) /m;
	($p{stops}) = $out =~ /^  stops at:\s+(.*)$/m;
	($p{note}) = $out =~ /^  note:\s+(.*)$/m;
	$p{error} = "unreadable output: $out$err"
	  if !$p{rec} && !defined $p{reason} || $p{rec} && !defined $p{first};
	$p{error} = "exit $rc does not match the plan: $out$err"
	  if !$p{error} && ($rc == 0) != $p{rec};
	$p{error} = "the target directory was created" if -e "$scratch/x";
	return \%p;
}
my $t_cli = time();
my $ncli = 0;
my @cli_time = map { $ncli++; cli_plan('--target-time', fmt_time($_)) } @times;
my @cli_lsn = map { $ncli++; cli_plan('--target-lsn', fmt_lsn($_)) } @lsns;
my @cli_name = map { $ncli++; cli_plan('--target-name', $_) } @names;
$t_cli = time() - $t_cli;
note(sprintf('SQL: %.1f s for %d plans; CLI: %.1f s for %d dry runs (%.0f ms each)',
	$t_sql, $ncli, $t_cli, $ncli, 1000 * $t_cli / ($ncli || 1)));

is(repo_listing(), $listing, 'the repository did not change while planning');

###########################################################################
# Compare
sub norm
{
	my ($s) = @_;
	return undef unless defined $s;
	$s =~ s/\s+$//;
	$s =~ s/^\s+//;
	return $s;
}

my @disagree;
my %count;
sub compare
{
	my ($kind, $desc, $s, $c) = @_;
	my @why;
	$count{"$kind targets"}++;
	if ($c->{error})
	{
		push @why, "CLI: $c->{error}";
	}
	else
	{
		my $srec = $s->{rec} ? 1 : 0;
		if ($srec != $c->{rec})
		{
			push @why, 'recoverable: SQL ' . ($srec ? 'yes' : 'no') . ', CLI ' . ($c->{rec} ? 'yes' : 'no');
		}
		elsif ($srec)
		{
			for my $f (qw(backup tli first last))
			{
				my ($a, $b) = ($s->{$f} // '(none)', $c->{$f} // '(none)');
				push @why, "$f: SQL $a, CLI $b" if $a ne $b;
			}
		}
		else
		{
			my ($a, $b) = (norm($s->{reason}) // '(none)', norm($c->{reason}) // '(none)');
			push @why, "reason: SQL \"$a\", CLI \"$b\"" if $a ne $b;
		}
	}
	$count{$s->{rec} ? "$kind recoverable (SQL)" : "$kind not recoverable (SQL)"}++;
	return unless @why;
	$count{"$kind disagreements"}++;
	my $sqlsay = $s->{rec}
	  ? "SQL: yes, $s->{backup}, timeline $s->{tli}, $s->{first} .. $s->{last}"
	  : 'SQL: no: ' . ($s->{reason} // '');
	my $clisay = $c->{error} ? "CLI: $c->{error}"
	  : $c->{rec}
	  ? "CLI: yes, $c->{backup}, timeline " . ($c->{tli} // '?') . ", $c->{first} .. $c->{last}"
	  . ($c->{stops} ? "; stops at $c->{stops}" : '')
	  : 'CLI: no: ' . ($c->{reason} // '');
	$clisay .= "\n    CLI note: $c->{note}" if $c->{note};
	# the gravest first in the diagnostic: an error, recoverable or not, the
	# backup or WAL, the reason, the timeline alone
	my $rank = $why[0] =~ /^CLI: / ? 0
	  : $why[0] =~ /^recoverable/ ? 1
	  : (grep { /^(backup|first|last)/ } @why) ? 2
	  : $why[0] =~ /^reason/ ? 3
	  : 4;
	push @disagree, [ $rank, scalar(@disagree), "$desc\n    " . join("; ", @why) . "\n    $sqlsay\n    $clisay" ];
	return;
}

compare('time', "time '" . fmt_time($times[$_]) . "'", $sql_time->[$_], $cli_time[$_]) for 0 .. $#times;
compare('LSN', "LSN " . fmt_lsn($lsns[$_]), $sql_lsn->[$_], $cli_lsn[$_]) for 0 .. $#lsns;
compare('name', "name '$names[$_]'", $sql_name->[$_], $cli_name[$_]) for 0 .. $#names;

note("$_: $count{$_}") for sort keys %count;
# which refusals were compared (the reasons' shapes, numbers and names blanked)
my %shape;
for my $s (@$sql_time, @$sql_lsn, @$sql_name)
{
	next if $s->{rec} || !defined $s->{reason};
	(my $r = $s->{reason}) =~ s/"[^"]*"/"N"/g;
	$r =~ s/[0-9A-F]{24}|\d{8}T\d{6}Z|[0-9-]{10} [0-9:.]+\+00|[0-9A-F]+\/[0-9A-F]+/X/g;
	$shape{$r}++;
}
note("refusal: $shape{$_} x $_") for sort keys %shape;
@disagree = map { $_->[2] } sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @disagree;
note("disagreement: $_") for @disagree;
is(scalar(@disagree), 0,
	sprintf('SQL and pgbk restore --dry-run agree on %d targets (seed %d)',
		scalar(@times) + scalar(@lsns) + scalar(@names), $seed))
  or diag(join("\n", "the first disagreements, gravest first (seed $seed; all are in the log):", @disagree[ 0 .. ($#disagree < 7 ? $#disagree : 7) ]));

# enough of each answer that the comparison means something
cmp_ok($count{'time recoverable (SQL)'} // 0, '>=', 20, 'many time targets are recoverable');
cmp_ok($count{'time not recoverable (SQL)'} // 0, '>=', 10, '... and many are not');
cmp_ok($count{'LSN recoverable (SQL)'} // 0, '>=', 10, 'many LSN targets are recoverable');

$node->stop;
done_testing();
