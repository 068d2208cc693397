# Change summaries (common/wal/walchanges.c) of WAL written by a real
# PostgreSQL 15 and archived through the archive module, against
# pg_walinspect as the oracle.  For every archived segment of the workload:
#   - the summary's blocks are exactly the (relation, fork, block) triples
#     that pg_get_wal_records_info's block_ref lists for the records that
#     begin in the segment, less those at or above the fork's limit;
#   - relation creations (SMGR CREATE: limit 0, FSM forks aside),
#     truncations (SMGR TRUNCATE: the main fork limited at most at the new
#     length), relations dropped at commit/abort (limit 0), database
#     creation by FILE_COPY and WAL_LOG and database drops (whole) appear;
#   - a summary is incomplete only because of a record continuing into the
#     next segment, and it names that record.
# The workload: inserts and updates over many pages, a VACUUM that
# truncates, TRUNCATE, DROP TABLE, VACUUM FULL, CREATE INDEX, CREATE
# DATABASE with both strategies, DROP DATABASE, ALTER TABLE and ALTER
# DATABASE SET TABLESPACE,
# an unlogged table, a prepared transaction.
# Then: a deleted summary comes back identical (`pgbk wal-changes` and
# `--rebuild`), and a tampered one is refused naming the object.
# Verification: pgbk verify and bk_verify name a tampered summary as a
# problem, and a missing one as a warning only (exit 0, no row) that says
# how to rebuild it; with --rebuild-sample, pgbk verify also finds an
# authentic summary that differs from the one rebuilt from its segment.  An incremental backup over a tampered summary compares
# page LSNs instead, and says why.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;

my $SEGSZ = 16 * 1024 * 1024;

sub lsn_num
{
	my ($lsn) = @_;
	my ($hi, $lo) = $lsn =~ m{^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$}
	  or die "bad LSN \"$lsn\"";
	return hex($hi) * 4294967296 + hex($lo);
}

my %FORK = (main => 0, fsm => 1, vm => 2, init => 3);

# A relation path as PostgreSQL 15 prints it (relpathperm) to spc/db/rel/fork.
sub relpath_key
{
	my ($p) = @_;
	my ($spc, $db, $rel, $fork);
	if ($p =~ m{^base/(\d+)/(\d+)(?:_(\w+))?$})
	{
		($spc, $db, $rel, $fork) = (1663, $1, $2, $3);
	}
	elsif ($p =~ m{^global/(\d+)(?:_(\w+))?$})
	{
		($spc, $db, $rel, $fork) = (1664, 0, $1, $2);
	}
	elsif ($p =~ m{^pg_tblspc/(\d+)/[^/]+/(\d+)/(\d+)(?:_(\w+))?$})
	{
		($spc, $db, $rel, $fork) = ($1, $2, $3, $4);
	}
	else
	{
		return undef;
	}
	return "$spc/$db/$rel/" . $FORK{ $fork // 'main' };
}

###########################################################################
# A node archiving through the archive module, with pg_walinspect
my $repo = PgbkTest::local_repo('changes');
my $tsdir = PostgreSQL::Test::Utils::tempdir('ts');
my $node = PgbkTest::new_node('changes', $repo->{conf},
	extra => "max_prepared_transactions = 5\nmax_locks_per_transaction = 1024\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walinspect');
$node->safe_psql('postgres', "CREATE TABLESPACE ts LOCATION '$tsdir'");

# start at a segment boundary: the oracle reads whole segments
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
my $start_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $seg_start = int(lsn_num($start_lsn) / $SEGSZ) * $SEGSZ;
my $oracle_start = sprintf('%X/%X', int($seg_start / 4294967296), $seg_start % 4294967296);

# the workload
$node->safe_psql('postgres', q{
	CREATE TABLE big (id int PRIMARY KEY, pad text) WITH (fillfactor = 50);
	INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 150000) g;
	UPDATE big SET pad = pad || 'x' WHERE id % 7 = 0;
	CREATE TABLE shrink (id int, pad text);
	INSERT INTO shrink SELECT g, repeat('s', 200) FROM generate_series(1, 20000) g;
	DELETE FROM shrink WHERE id > 2000;
});
$node->safe_psql('postgres', 'VACUUM shrink');
# many small transactions (as pgbench makes): commit records at segment ends
$node->safe_psql('postgres',
	join('', map { "UPDATE big SET pad = pad || 'u' WHERE id = " . ($_ * 37 % 150000 + 1) . ";\n" } 1 .. 30000));
$node->safe_psql('postgres', q{
	CREATE TABLE trunc (id int, pad text);
	INSERT INTO trunc SELECT g, repeat('t', 100) FROM generate_series(1, 5000) g;
	TRUNCATE trunc;
	INSERT INTO trunc VALUES (1, 'after');
	CREATE TABLE dropme (id int);
	INSERT INTO dropme SELECT generate_series(1, 5000);
	DROP TABLE dropme;
	CREATE TABLE full_ (id int, pad text);
	INSERT INTO full_ SELECT g, 'f' FROM generate_series(1, 10000) g;
	DELETE FROM full_ WHERE id % 2 = 0;
});
$node->safe_psql('postgres', 'VACUUM FULL full_');
$node->safe_psql('postgres', q{
	CREATE INDEX big_pad ON big (pad);
	CREATE TABLE moved (id int, pad text);
	INSERT INTO moved SELECT g, 'm' FROM generate_series(1, 3000) g;
	ALTER TABLE moved SET TABLESPACE ts;
	CREATE UNLOGGED TABLE unl (id int);
	INSERT INTO unl SELECT generate_series(1, 3000);
	BEGIN;
	CREATE TABLE prep (id int);
	INSERT INTO prep VALUES (1);
	PREPARE TRANSACTION 'p1';
});
$node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
$node->safe_psql('postgres', 'CREATE DATABASE d_copy STRATEGY FILE_COPY');
$node->safe_psql('postgres', 'CREATE DATABASE d_wal STRATEGY WAL_LOG');
$node->safe_psql('postgres', 'CREATE DATABASE d_drop STRATEGY WAL_LOG');
$node->safe_psql('postgres', 'DROP DATABASE d_drop');
$node->safe_psql('postgres', 'ALTER DATABASE d_copy SET TABLESPACE ts');
$node->safe_psql('d_wal', q{
	CREATE TABLE inner_ (id int);
	INSERT INTO inner_ SELECT generate_series(1, 10000);
	BEGIN; CREATE TABLE rolled (id int); INSERT INTO rolled VALUES (1); ROLLBACK;
});

# A record whose main data crosses a segment end: COMMIT PREPARED of a
# transaction that dropped 400 tables (its relation list and invalidations
# make it tens of kB), placed about 6 kB before the end of a segment.
$node->safe_psql('postgres', join('', map { "CREATE TABLE many_$_ (id int);\n" } 1 .. 400));
$node->safe_psql('postgres',
	'BEGIN; DROP TABLE ' . join(', ', map { "many_$_" } 1 .. 400) . "; PREPARE TRANSACTION 'bigdrop'");
for my $try (1 .. 3)
{
	my $lsn = lsn_num($node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()'));
	my $left = $SEGSZ - $lsn % $SEGSZ;
	last if $left >= 3000 && $left <= 20000;
	# WAL pages carry 24 bytes of header per 8192
	my $n = int(($left - 6000) * 8168 / 8192) - 200;
	$n = int(($left + $SEGSZ - 6000) * 8168 / 8192) - 200 if $n < 1000;
	$node->safe_psql('postgres',
		"SELECT pg_logical_emit_message(false, 'pad', repeat('x', $n))");
}
$node->safe_psql('postgres', "COMMIT PREPARED 'bigdrop'");
my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->safe_psql('postgres', 'CHECKPOINT');
ok(PgbkTest::wait_archived($node), 'workload archived');

###########################################################################
# The oracle: every record from the start, grouped by the segment it begins in
my $tli = $node->safe_psql('postgres',
	'SELECT timeline_id FROM pg_control_checkpoint()');
my $flush = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
my $rows = $node->safe_psql('postgres',
	"SELECT start_lsn, end_lsn, resource_manager, record_type, coalesce(block_ref, ''), coalesce(description, '')
	 FROM pg_get_wal_records_info('$oracle_start', '$flush')");
my (%blocks, %creates, %truncs, %drops, %whole, %records, %kinds);
for my $line (split /\n/, $rows)
{
	my ($s, $e, $rm, $type, $bref, $desc) = split /\|/, $line, 6;
	my $seg = int(lsn_num($s) / $SEGSZ);
	push @{ $records{$seg} }, [ lsn_num($s), lsn_num($e), "$rm/$type" ];
	$kinds{"$rm/$type"}++;
	while ($bref =~ m{blkref #\d+: rel (\d+)/(\d+)/(\d+)(?: fork (\w+))? blk (\d+)}g)
	{
		my $k = "$1/$2/$3/" . $FORK{ $4 // 'main' };
		$blocks{$seg}{$k}{$5} = 1;
	}
	if ($rm eq 'Storage' && $type eq 'CREATE')
	{
		my $k = relpath_key($desc) // die "smgr create: $desc";
		push @{ $creates{$seg} }, [ $k, lsn_num($s) ];
	}
	elsif ($rm eq 'Storage' && $type eq 'TRUNCATE')
	{
		my ($p, $n) = $desc =~ m{^(\S+) to (\d+) blocks} or die "truncate: $desc";
		push @{ $truncs{$seg} }, [ relpath_key($p), $n, lsn_num($s) ];
	}
	elsif ($rm eq 'Transaction' && $desc =~ /rels: ([^;]+)/)
	{
		push @{ $drops{$seg} }, map { [ relpath_key($_), lsn_num($s) ] } split ' ', $1;
	}
	elsif ($rm eq 'Database')
	{
		# "copy dir 1663/1 to 1663/16400", "create dir 1663/16400", "dir 1663/16400 ..."
		my ($target) = $desc =~ m{(?:to|create dir|^dir) (\d+/\d+)}
		  or die "dbase: $desc";
		push @{ $whole{$seg} }, [ $target, lsn_num($s) ];
		push @{ $whole{$seg} }, map { [ $_, lsn_num($s) ] } $desc =~ m{\b(\d+/\d+)\b}g
		  if $type eq 'DROP';
	}
}
note('record kinds: ' . join(', ', map { "$_ $kinds{$_}" } grep { /Storage|Database|Transaction\/(COMMIT|ABORT)/ } sort keys %kinds));
ok($kinds{'Storage/TRUNCATE'}, 'the workload truncates relations');
ok($kinds{'Database/CREATE_FILE_COPY'}, 'the workload copies a database');
ok($kinds{'Database/CREATE_WAL_LOG'}, 'the workload creates a database with WAL_LOG');
ok($kinds{'Database/DROP'}, 'the workload drops a database');

###########################################################################
# Compare summary $j of segment $seg with the oracle; problems into @bad.
# $cut_start (not 0): blocks of the record cut by the segment end may be missing;
# $cut_lsn (not 0): what that record's main data says may be missing.
sub compare
{
	my ($name, $seg, $j, $cut_start, $cut_lsn, $bad, $nblocks) = @_;
	my %got;
	for my $r (@{ $j->{relations} })
	{
		my $k = "$r->{spc}/$r->{db}/$r->{rel}/$r->{fork}";
		$got{$k} = $r;
	}
	my $want = $blocks{$seg} // {};
	# blocks: equal below the limit; above it the limit covers them
	for my $k (sort keys %$want)
	{
		my $limit = $got{$k} && defined $got{$k}{limit} ? $got{$k}{limit} : 4294967295;
		my @w = sort { $a <=> $b } grep { $_ < $limit } keys %{ $want->{$k} };
		my @g = $got{$k} ? @{ $got{$k}{blocks} } : ();
		$$nblocks += @g;
		if ("@w" ne "@g")
		{
			# only blocks of the cut record may be missing
			my %g = map { $_ => 1 } @g;
			my @missing = grep { !$g{$_} } @w;
			my @extra = grep { !$want->{$k}{$_} } @g;
			push @$bad, "$name $k: summary has extra blocks @extra[0..($#extra < 9 ? $#extra : 9)]"
			  if @extra;
			push @$bad, "$name $k: summary misses blocks @missing[0..($#missing < 9 ? $#missing : 9)]"
			  if @missing && !$cut_start;
		}
	}
	for my $k (sort keys %got)
	{
		next if $want->{$k};
		push @$bad, "$name $k: summary has blocks the WAL does not reference"
		  if @{ $got{$k}{blocks} };
	}
	for my $c (@{ $creates{$seg} // [] })
	{
		my ($k, $l) = @$c;
		next if $l == $cut_lsn;
		next if $k =~ m{/1$};    # FSM forks are not tracked (PostgreSQL 17 does the same)
		push @$bad, "$name: created $k without limit 0"
		  unless $got{$k} && defined $got{$k}{limit} && $got{$k}{limit} == 0;
	}
	for my $t (@{ $truncs{$seg} // [] })
	{
		my ($k, $n, $l) = @$t;
		next if $l == $cut_lsn;
		push @$bad, "$name: truncated $k to $n without a limit <= $n"
		  unless $got{$k} && defined $got{$k}{limit} && $got{$k}{limit} <= $n;
	}
	for my $dr (@{ $drops{$seg} // [] })
	{
		my ($k, $l) = @$dr;
		next if $l == $cut_lsn;
		push @$bad, "$name: dropped $k without limit 0"
		  unless $got{$k} && defined $got{$k}{limit} && $got{$k}{limit} == 0;
	}
	my %w = map { ("$_->{spc}/$_->{db}" => 1) } @{ $j->{whole} };
	for my $wh (@{ $whole{$seg} // [] })
	{
		my ($d, $l) = @$wh;
		next if $l == $cut_lsn;
		push @$bad, "$name: database $d created or dropped but not whole" unless $w{$d};
	}
	return;
}

# Every archived segment of the workload against the oracle
my $first = int(lsn_num($start_lsn) / $SEGSZ);
my $last = int((lsn_num($end_lsn) - 1) / $SEGSZ);
my %summary;
my ($rc, $out, $err);
my ($nseg, $nblocks, $nincomplete, $nresolved, @bad) = (0, 0, 0, 0);
for my $seg ($first .. $last)
{
	my $name = sprintf('%08X%08X%08X', $tli, int($seg / 256), $seg % 256);
	($rc, $out, $err) =
	  PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--json', $name);
	if ($rc != 0)
	{
		push @bad, "$name: wal-changes failed ($rc): $err";
		next;
	}
	my $j = decode_json($out);
	$summary{$name} = $out;
	$nseg++;
	push @bad, "$name: the summary was not stored by archiving ($j->{source})"
	  if $j->{source} ne 'stored';

	# the one record continuing into the next segment may be excused
	my ($cut_start, $cut_lsn) = (0, 0);
	my $last_rec = $records{$seg} ? $records{$seg}[-1] : undef;
	if (!$j->{complete})
	{
		$nincomplete++;
		my ($l) = $j->{reason} =~ m{record at ([0-9A-F]+/[0-9A-F]+)};
		if (  !$l
			|| !$last_rec
			|| lsn_num($l) != $last_rec->[0]
			|| $last_rec->[1] <= ($seg + 1) * $SEGSZ)
		{
			push @bad, "$name: incomplete for another reason than its last record: $j->{reason}";
		}
		else
		{
			note("$name: $j->{reason} ($last_rec->[2])");
			$cut_start = $last_rec->[0] if $j->{reason} =~ /block references|header/;
			$cut_lsn = $last_rec->[0];
		}
	}

	compare($name, $seg, $j, $cut_start, $cut_lsn, \@bad, \$nblocks);

	# resolved with the next segment, as a backup's union does: complete and exact
	if (!$j->{complete} && $j->{reason} =~ /next segment/)
	{
		($rc, $out, $err) = PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--json',
			'--resolve', $name);
		my $r = $rc == 0 ? decode_json($out) : undef;
		if (!$r || !$r->{complete} || $r->{source} ne 'resolved with the next segment')
		{
			push @bad, "$name: not resolved with the next segment ($rc): $err $out";
		}
		else
		{
			$nresolved++;
			compare($name, $seg, $r, 0, 0, \@bad, \$nblocks);
		}
	}
}
is(join("\n", @bad), '', 'every summary agrees with pg_walinspect');
cmp_ok($nseg, '>=', 8, "segments checked: $nseg");
note("segments: $nseg, blocks: $nblocks, incomplete: $nincomplete, resolved: $nresolved");
is($nresolved, $nincomplete, 'every incomplete summary was resolved with the next segment');
my ($big) = grep { $_->[2] eq 'Transaction/COMMIT_PREPARED' && int($_->[0] / $SEGSZ) != int(($_->[1] - 1) / $SEGSZ) }
  map { @$_ } values %records;
ok($big, 'the big COMMIT PREPARED crosses a segment end')
  and cmp_ok($nresolved, '>=', 1, 'and its segment summary needed and got the next segment');
ok((grep { @{ $creates{$_} // [] } } keys %creates), 'creations were seen');
ok((grep { @{ $drops{$_} // [] } } keys %drops), 'drops at commit or abort were seen');

###########################################################################
# A deleted summary comes back identical; a tampered one is refused
my ($victim) = grep { $summary{$_} =~ /"relations":\[\{/ } sort keys %summary;
my $key = "$repo->{dir}/changes/" . substr($victim, 0, 16) . "/$victim";
ok(-f $key, "summary object of $victim is in the repository");
my $orig_bytes = PgbkTest::slurp($key);
unlink $key or die "unlink $key: $!";
($rc, $out, $err) =
  PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--json', $victim);
is($rc, 0, 'wal-changes rebuilds a missing summary');
my ($again, $stored) = (decode_json($out), decode_json($summary{$victim}));
like($again->{source}, qr/rebuilt/, 'it says it rebuilt it');
delete $again->{source};
delete $stored->{source};
is_deeply($again, $stored, 'the rebuilt summary equals the one archiving stored');
ok(-f $key, 'and stored it again');
($rc, $out, $err) =
  PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--rebuild', $victim);
is($rc, 0, 'wal-changes --rebuild agrees with the stored summary');
like($out, qr/identical to the stored summary/, '--rebuild says so');
($rc, $out, $err) =
  PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--rebuild', '--json', $victim);
is_deeply(do { my $x = decode_json($out); delete $x->{source}; $x }, $stored,
	'--rebuild --json prints the same summary');

# one byte changed
my $bytes = PgbkTest::slurp($key);
substr($bytes, length($bytes) - 30, 1) ^= "\x01";
PgbkTest::write_file($key, $bytes, 0600);
($rc, $out, $err) = PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, $victim);
is($rc, 6, 'a tampered summary: exit 6 (integrity)');
like($err, qr/change summary "changes\/[0-9A-F]{16}\/$victim".*(modified|damaged|authentication)/,
	'the error names the object and says it was modified');
note($err);
($rc, $out, $err) =
  PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--rebuild', $victim);
is($rc, 6, '--rebuild reports the tampered stored summary too');
is(PgbkTest::slurp($key), $bytes, 'the tampered object is left as it is (never overwritten)');

###########################################################################
# Verification reads every summary: the tampered one is a problem naming
# its key in pgbk verify (exit 6) and bk_verify (a row); a segment archived
# without a summary is a warning that says how to rebuild it, and no
# problem (exit 0, no row).
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $vkey = 'changes/' . substr($victim, 0, 16) . "/$victim";
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf});
is($rc, 6, 'pgbk verify: a tampered summary is a problem (exit 6)') or diag("$out$err");
like($out, qr/^change summary \Q$vkey\E: unreadable: .*(modified|damaged|authentication)/m,
	'... naming its key');
is(join("\n", grep { !/^warning: / && !/^change summary \Q$vkey\E: / } split /\n/, $out), '',
	'... and nothing else is a problem');
my $problem_rows = sql("SELECT string_agg(kind || ' ' || object || ': ' || problem, E'\\n') FROM bk_verify()");
like($problem_rows, qr/\Achange summary \Q$vkey\E: unreadable: .*(modified|damaged|authentication)[^\n]*\z/,
	'bk_verify: one row, naming the tampered summary');
# put the good bytes back
substr($bytes, length($bytes) - 30, 1) ^= "\x01";
PgbkTest::write_file($key, $bytes, 0600);

my ($victim2) = grep { $_ ne $victim } sort keys %summary;
my $vkey2 = 'changes/' . substr($victim2, 0, 16) . "/$victim2";
unlink "$repo->{dir}/$vkey2" or die "unlink $vkey2: $!";
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf});
is($rc, 0, 'pgbk verify: a segment without its summary is no problem (exit 0)') or diag("$out$err");
like($out,
	qr/^warning: change summary \Q$vkey2\E: missing: WAL segment \Q$victim2\E was archived without a change summary; .*`pgbk wal-changes \Q$victim2\E --rebuild` stores it now$/m,
	'... but a warning naming it and how to rebuild it');
is(join("\n", grep { !/^warning: / } split /\n/, $out), '', '... and only warnings');
like($err, qr/0 problems, \d+ warnings?/, '... counted apart from problems');
my ($vrows, $vwarn) = ('', '');
$node->psql('postgres', 'SELECT count(*) FROM bk_verify()', stdout => \$vrows, stderr => \$vwarn);
is($vrows, '0', 'bk_verify: no row for it');
like($vwarn,
	qr/WARNING:  change summary \Q$vkey2\E: missing: WAL segment \Q$victim2\E was archived without a change summary; .*`pgbk wal-changes \Q$victim2\E --rebuild`/,
	'... but a WARNING naming it and how to rebuild it');
like($vwarn, qr/NOTICE:  verified \d+ objects, 0 problems, \d+ warnings?/, '... counted apart');
($rc, $out, $err) = PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--rebuild', $victim2);
is($rc, 0, 'the command the warning names rebuilds it') or diag("$out$err");
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf});
unlike($out, qr/\Q$victim2\E/, '... and pgbk verify no longer warns about it');

# An authentic summary that says something else (another segment's,
# sealed with the key under this segment's name): it decodes, so only
# comparing it with the summary rebuilt from its segment finds it
# (pgbk verify --rebuild-sample).
my ($victim3) = grep { $_ ne $victim && $_ ne $victim2 } sort keys %summary;
my $vkey3 = 'changes/' . substr($victim3, 0, 16) . "/$victim3";
my $sealdir = PostgreSQL::Test::Utils::tempdir('sealed');
PgbkTest::write_file("$sealdir/content", PgbkTest::repo_tool($repo->{conf}, 'cat', $vkey), 0600);
PgbkTest::repo_tool($repo->{conf}, 'seal', $vkey3, "$sealdir/content",
	"kind=changes,name=changes/$victim3");
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $repo->{conf});
is($rc, 0, "a summary of $victim sealed as ${victim3}'s passes the object checks") or diag("$out$err");
($rc, $out, $err) =
  PgbkTest::pgbk('verify', '--config', $repo->{conf}, '--rebuild-sample', '1');
is($rc, 6, '--rebuild-sample 1: it is a problem (exit 6)') or diag("$out$err");
like($out,
	qr/^change summary \Q$vkey3\E: it differs from the summary rebuilt from WAL segment \Q$victim3\E /m,
	'... naming it and saying it differs from the one rebuilt from its segment');
is(join("\n", grep { !/^warning: / && !/^change summary \Q$vkey3\E: / } split /\n/, $out), '',
	'... and nothing else is a problem');
unlink "$repo->{dir}/$vkey3" or die "unlink $vkey3: $!";
($rc, $out, $err) = PgbkTest::pgbk('wal-changes', '--config', $repo->{conf}, '--rebuild', $victim3);
is($rc, 0, 'with it deleted, wal-changes --rebuild stores the right one') or diag("$out$err");
($rc, $out, $err) =
  PgbkTest::pgbk('verify', '--config', $repo->{conf}, '--rebuild-sample', '1');
is($rc, 0, '... and once rebuilt, every summary equals its rebuilt one') or diag("$out$err");

###########################################################################
# An incremental backup meeting a tampered summary does not trust it: it
# compares page LSNs, and bk_backup_progress and the log name the summary.
my $full = sql('SELECT bk_base_backup()');
like($full, qr/^\d{8}T\d{6}Z$/, "full backup $full");
sql('CREATE TABLE after_full AS SELECT g FROM generate_series(1, 10000) g');
my $tseg = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
sql('SELECT pg_switch_wal()');
sql('CREATE TABLE after_switch (i int)');
ok(PgbkTest::wait_archived($node), 'WAL archived');
my $tkey = "$repo->{dir}/changes/" . substr($tseg, 0, 16) . "/$tseg";
my $deadline = time() + 60;
sleep 1 while !-f $tkey && time() < $deadline;
ok(-f $tkey, "segment $tseg has a summary");
my $tbytes = PgbkTest::slurp($tkey);
substr($tbytes, length($tbytes) - 10, 1) ^= "\x01";
PgbkTest::write_file($tkey, $tbytes, 0600);
my $log_offset = -s $node->logfile;
my $inc = sql("SELECT bk_base_backup(type => 'incremental')");
my ($ptype, $pparent, $pchanges, $preason) = split /\|/,
  sql('SELECT type, parent, changes, changes_reason FROM bk_backup_progress');
is("$ptype $pparent", "incremental $full", "incremental backup $inc on $full");
is($pchanges, 'page-lsn', '... comparing page LSNs, not trusting the tampered summary');
like($preason,
	qr/change summary of segment \Q$tseg\E unusable, not trusted: change summary "changes\/[0-9A-F]{16}\/\Q$tseg\E"/,
	'... and bk_backup_progress says which summary and why');
ok( $node->log_contains(
		qr/incremental base backup \Q$inc\E compares page LSNs .*change summary of segment \Q$tseg\E unusable, not trusted/,
		$log_offset),
	'the server log says so too');
is(PgbkTest::slurp($tkey), $tbytes, 'the tampered summary is left as it is');

$node->stop;
done_testing();
