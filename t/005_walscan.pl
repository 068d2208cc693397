# t/005_walscan.pl
#	walscan (common/wal/walscan.c) against WAL written by a real PostgreSQL 15:
#	for every segment in pg_wal, the summary must agree with pg_waldump on
#	records, commits, aborts, their times, restore points, XLOG_SWITCH and
#	where the WAL ends; records spanning segment boundaries (a big commit, a
#	big abort, a restore point, a commit whose header is cut by the segment
#	end) must be described by the segment they begin in.  Also times a scan
#	of a full 16 MiB segment.
#
#	itest_walscan is built here from the sources unless PGBK_ITEST_WALSCAN
#	names a binary.
use strict;
use warnings;

BEGIN
{
	# Standalone runs (not through `make check-tap`): server binaries and
	# pg_waldump on PATH, PG_REGRESS set, TESTDIR present.
	my $bindir = `pg_config --bindir 2>/dev/null`;
	my $pgxs = `pg_config --pgxs 2>/dev/null`;
	chomp($bindir, $pgxs);
	$ENV{PATH} = "$bindir:$ENV{PATH}" if $bindir;
	$pgxs =~ s{/src/makefiles/pgxs\.mk$}{};
	$ENV{PG_REGRESS} //= "$pgxs/src/test/regress/pg_regress" if $pgxs;
	if ($ENV{TESTDIR})
	{
		require File::Path;
		File::Path::make_path($ENV{TESTDIR});
		# a failed earlier run leaves its data directory behind
		File::Path::rmtree($_) for glob("$ENV{TESTDIR}/tmp_check/t_005_walscan_*_data");
	}
}

use Cwd;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::Local qw(timegm);

my $SEGSZ = 16 * 1024 * 1024;

# ---------------------------------------------------------------------------
# itest_walscan
my $srcdir = $ENV{PGBK_SRCDIR} // getcwd();
my $itest = $ENV{PGBK_ITEST_WALSCAN};
if (!$itest)
{
	$itest = "$PostgreSQL::Test::Utils::tmp_check/itest_walscan";
	my @src = map { "$srcdir/common/$_" }
	  qw(test/itest_walscan.c walscan.c walname.c pgbk_common.c);
	my ($out, $err) = ('', '');
	IPC::Run::run([ $ENV{CC} // 'cc', '-O2', '-Wall', "-I$srcdir/common",
			'-o', $itest, @src ],
		'>', \$out, '2>', \$err)
	  or BAIL_OUT("could not build itest_walscan: $err");
}

# ---------------------------------------------------------------------------
# helpers

sub lsn_num
{
	my ($lsn) = @_;
	my ($hi, $lo) = $lsn =~ m{^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$}
	  or die "bad LSN \"$lsn\"";
	return hex($hi) * 4294967296 + hex($lo);
}

sub lsn_str
{
	my ($n) = @_;
	return sprintf('%X/%X', int($n / 4294967296), $n % 4294967296);
}

sub unescape
{
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

# "2024-11-27 03:04:05.123456 UTC" (pg_waldump with TZ=UTC) to Unix us
sub ts_us
{
	my ($ts) = @_;
	my ($y, $mo, $d, $h, $mi, $s, $us) =
	  $ts =~ /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) UTC$/
	  or die "bad timestamp \"$ts\"";
	return timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000000 + $us;
}

# Run itest_walscan; one hash per file.
sub itest
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $itest, @args ], '>', \$out, '2>', \$err)
	  or die "itest_walscan failed: $err";
	my @res;
	for my $block (split /\n\n/, $out)
	{
		my %h;
		for my $line (split /\n/, $block)
		{
			my ($k, $v) = split /=/, $line, 2;
			$h{$k} = $v;
		}
		push @res, \%h if %h;
	}
	return @res;
}

# pg_waldump over files or from an LSN; records and the trailing error.
sub waldump
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	local $ENV{TZ} = 'UTC';
	IPC::Run::run([ 'pg_waldump', @args ], '>', \$out, '2>', \$err);
	my @recs;
	for my $line (split /\n/, $out)
	{
		next unless $line =~ /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*\d+, lsn: (\S+), prev \S+, desc: (.*)$/;
		my %r = (rmgr => $1, tot => $2, lsn => lsn_num($3), desc => $4);
		if ($r{rmgr} eq 'Transaction'
			&& $r{desc} =~ /^(COMMIT|ABORT)(_PREPARED)? (?:\d+: )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC)/)
		{
			$r{xact} = lc $1;
			$r{time} = ts_us($3);
		}
		elsif ($r{rmgr} eq 'XLOG' && $r{desc} =~ /^RESTORE_POINT (.*)$/)
		{
			$r{rp} = $1;
		}
		elsif ($r{rmgr} eq 'XLOG' && $r{desc} =~ /^SWITCH/)
		{
			$r{switch} = 1;
		}
		push @recs, \%r;
	}
	return (\@recs, $err);
}

sub now_us
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint');
}

# ---------------------------------------------------------------------------
# A cluster and a workload

my $node = PostgreSQL::Test::Cluster->new('walscan');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
wal_level = replica
max_wal_senders = 0
wal_keep_size = '2GB'
max_wal_size = '2GB'
checkpoint_timeout = '1h'
autovacuum = off
max_prepared_transactions = 5
shared_buffers = '128MB'
log_statement = 'none'
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE TABLE t (id int, v text);

-- n subtransactions, each with an xid: a commit or abort record listing them
CREATE FUNCTION subxacts(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			INSERT INTO t VALUES (i, 'sub');
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
	END LOOP;
END $$;

-- Where the next record starts if one of tot bytes is inserted at pos: the
-- layout of CopyXLogRecordToWAL (8 kB pages, 24/40-byte page headers).
CREATE FUNCTION wal_next_start(pos numeric, tot numeric) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	rem numeric := tot;
	avail numeric;
BEGIN
	LOOP
		avail := 8192 - mod(pos, 8192);
		IF rem <= avail THEN
			pos := pos + rem;
			EXIT;
		END IF;
		rem := rem - avail;
		pos := pos + avail;
		pos := pos + CASE WHEN mod(pos, 16777216) = 0 THEN 40 ELSE 24 END;
	END LOOP;
	pos := ceil(pos / 8) * 8;
	IF mod(pos, 8192) = 0 THEN
		pos := pos + CASE WHEN mod(pos, 16777216) = 0 THEN 40 ELSE 24 END;
	END IF;
	RETURN pos;
END $$;

-- Emit non-transactional logical messages until the next record will start
-- at target.  A message with p payload bytes and prefix 'pad' is a record
-- of 24 + 5 + 24 + 4 + p bytes (p >= 228); checked before use.
CREATE FUNCTION pad_to(target numeric) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	cur numeric;
	before numeric;
	lo numeric;
	hi numeric;
	mid numeric;
BEGIN
	before := pg_current_wal_insert_lsn() - '0/0'::pg_lsn;
	PERFORM pg_logical_emit_message(false, 'pad', repeat('x', 300));
	IF pg_current_wal_insert_lsn() - '0/0'::pg_lsn <> wal_next_start(before, 57 + 300) THEN
		RAISE EXCEPTION 'logical message size is not as expected';
	END IF;
	LOOP
		cur := pg_current_wal_insert_lsn() - '0/0'::pg_lsn;
		IF cur = target THEN
			RETURN;
		END IF;
		IF cur > target - 357 THEN
			RAISE EXCEPTION 'cannot pad from % to %', cur, target;
		END IF;
		lo := 300;
		hi := target - cur;
		WHILE lo < hi LOOP
			mid := ceil((lo + hi) / 2);
			IF wal_next_start(cur, 57 + mid) <= target THEN
				lo := mid;
			ELSE
				hi := mid - 1;
			END IF;
		END LOOP;
		IF wal_next_start(cur, 57 + lo) <> target THEN
			RAISE EXCEPTION 'cannot land a record at % from %', target, cur;
		END IF;
		PERFORM pg_logical_emit_message(false, 'pad', repeat('x', lo::int));
	END LOOP;
END $$;

-- Pad so that the next record starts gap bytes before a segment boundary.
CREATE FUNCTION pad_before_boundary(gap int) RETURNS pg_lsn LANGUAGE plpgsql AS $$
DECLARE
	cur numeric := pg_current_wal_insert_lsn() - '0/0'::pg_lsn;
	target numeric := (floor(cur / 16777216) + 1) * 16777216 - gap;
BEGIN
	IF target - cur < 2000 THEN
		target := target + 16777216;
	END IF;
	PERFORM pad_to(target);
	RETURN '0/0'::pg_lsn + target;
END $$;
});

# small transactions: commits and aborts
$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
	FOR i IN 1..3000 LOOP
		INSERT INTO t VALUES (i, 'small');
		IF i % 3 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
	END LOOP;
END $$;
});

# restore points, with names that need escaping
my $rp_before = now_us($node);
my @rp_names = ('rp-simple', 'odd, name=1 % "x"', 'n' x 63);
$node->safe_psql('postgres', "SELECT pg_create_restore_point('$_')")
  for @rp_names;
my $rp_after = now_us($node);

# two-phase commit and rollback
$node->safe_psql(
	'postgres', q{
BEGIN; INSERT INTO t VALUES (1, 'p1'); PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN; INSERT INTO t VALUES (2, 'p2'); PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
});

# a big commit (20000 subtransactions, ~80 kB) across a segment boundary
my $big_commit = $node->safe_psql(
	'postgres', q{
BEGIN;
SELECT subxacts(20000);
SELECT pad_before_boundary(20000);
COMMIT;
});
($big_commit) = grep { m{/} } split /\n/, $big_commit;

# a big abort across the next boundary
my $big_abort = $node->safe_psql(
	'postgres', q{
BEGIN;
SELECT subxacts(20000);
SELECT pad_before_boundary(30000);
ROLLBACK;
});
($big_abort) = grep { m{/} } split /\n/, $big_abort;

# a commit whose record header is cut by the segment end after 8 bytes
my $cut_commit = $node->safe_psql(
	'postgres', q{
BEGIN;
INSERT INTO t VALUES (1, 'cut');
SELECT pad_before_boundary(8);
COMMIT;
});
($cut_commit) = grep { m{/} } split /\n/, $cut_commit;

# a restore point across a boundary (its time is in the first segment)
my $span_rp = $node->safe_psql(
	'postgres', q{
SELECT pad_before_boundary(40);
SELECT pg_create_restore_point('spanning rp');
});
($span_rp) = split /\n/, $span_rp;

# some commits, then a switch in the middle of a segment
$node->safe_psql('postgres',
	"INSERT INTO t VALUES (1, 'before switch'); SELECT pg_switch_wal()");

# bulk: full segments of small heap records (for the timing)
$node->safe_psql('postgres',
	"INSERT INTO t SELECT g, 'bulk' FROM generate_series(1, 400000) g");
$node->safe_psql('postgres', "INSERT INTO t VALUES ($_, 'tail')") for 1 .. 20;

my $pgwal = $node->data_dir . '/pg_wal';
$node->stop('fast');

# the shutdown checkpoint is the last record
my ($cd_out, $cd_err) = ('', '');
IPC::Run::run([ 'pg_controldata', '-D', $node->data_dir ], '>', \$cd_out, '2>', \$cd_err)
  or die "pg_controldata failed: $cd_err";
my ($ckpt) = $cd_out =~ /^Latest checkpoint location:\s+(\S+)$/m
  or die "no checkpoint location in pg_controldata output";
my $insert_lsn = lsn_num($ckpt);

# ---------------------------------------------------------------------------
# Compare every segment with pg_waldump

opendir(my $dh, $pgwal) or die "could not open $pgwal: $!";
my @all = sort grep { /^[0-9A-F]{24}$/ } readdir $dh;
closedir $dh;
my $last_segno = int($insert_lsn / $SEGSZ);
my @segs = grep { hex(substr($_, 8, 8)) * 256 + hex(substr($_, 16, 8)) <= $last_segno } @all;
my @future = grep { hex(substr($_, 8, 8)) * 256 + hex(substr($_, 16, 8)) > $last_segno } @all;
ok(@segs >= 5, 'workload wrote several segments (' . scalar(@segs) . ')');

my %summary;
$summary{ $_->{file} } = $_ for itest(map { "$pgwal/$_" } @segs);

my @conts;
my ($max_attrs, $total_commits, $total_aborts) = (0, 0, 0);
for my $i (0 .. $#segs)
{
	my $seg = $segs[$i];
	my $s = $summary{$seg};
	my $start = (hex(substr($seg, 8, 8)) * 256 + hex(substr($seg, 16, 8))) * $SEGSZ;
	my ($recs, $err) = waldump('-p', $pgwal, $seg);
	my @x = grep { $_->{xact} } @$recs;
	my @c = grep { $_->{xact} eq 'commit' } @x;
	my @a = grep { $_->{xact} eq 'abort' } @x;
	my @rp = grep { defined $_->{rp} } @$recs;
	my ($sw) = grep { $_->{switch} } @$recs;

	note(sprintf('%s: %d records, %d commits, %d aborts, %d restore points, end %s, '
		  . 'continued in %d, continues %s',
			$seg, $s->{'wal.records'} // -1, scalar(@c), scalar(@a), scalar(@rp),
			$s->{'wal.end'} // '?', $s->{'wal.cont_in'} // 0, $s->{'wal.cont'} // '?'));
	note(join("\n", map { "  $_=$s->{$_}" } sort keys %$s));
	subtest "segment $seg" => sub {
		is($s->{status}, 'ok', 'scanned') or diag($s->{error});
		is($s->{name_segno_match}, 1, 'segment number matches the name');
		is($s->{roundtrip}, 1, 'attributes round trip');
		$max_attrs = $s->{attrs_len} if $s->{attrs_len} > $max_attrs;
		is($s->{'wal.records'}, scalar(@$recs), 'record count');
		if (@$recs)
		{
			is(lsn_num($s->{'wal.first'}), $recs->[0]{lsn}, 'first record');
			is(lsn_num($s->{'wal.last'}), $recs->[-1]{lsn}, 'last record');
		}
		is($s->{'wal.commits'}, scalar(@c), 'commits');
		is($s->{'wal.aborts'}, scalar(@a), 'aborts');
		if (@x)
		{
			my @t = sort { $a <=> $b } map { $_->{time} } @x;
			is($s->{'wal.xact_first'}, $x[0]{time}, 'first commit/abort time');
			is($s->{'wal.xact_last'}, $x[-1]{time}, 'last commit/abort time');
			is($s->{'wal.xact_min'}, $t[0], 'earliest commit/abort time');
			is($s->{'wal.xact_max'}, $t[-1], 'latest commit/abort time');
			is(lsn_num($s->{'wal.xact_last_lsn'}), $x[-1]{lsn}, 'last commit/abort LSN');
		}
		my @srp = map { [ split /,/, $s->{"wal.rp.$_"}, 3 ] }
		  grep { defined $s->{"wal.rp.$_"} } 0 .. 7;
		is(scalar(@srp) + ($s->{'wal.rp_dropped'} // 0), scalar(@rp), 'restore points');
		for my $j (0 .. $#srp)
		{
			is(lsn_num($srp[$j][0]), $rp[$j]{lsn}, "restore point $j LSN");
			is(unescape($srp[$j][2]), $rp[$j]{rp}, "restore point $j name");
		}
		if ($sw)
		{
			is($s->{'wal.end'}, 'switch', 'ends with XLOG_SWITCH');
			is(lsn_num($s->{'wal.switch'}), $sw->{lsn}, 'switch LSN');
		}
		elsif ($i == $#segs)
		{
			is($s->{'wal.end'}, 'inside', 'WAL ends inside the last segment');
			is($s->{'wal.tail_zero'}, 1, 'the rest of the last segment is unused');
			like($err, qr/invalid record length at ([0-9A-F\/]+): wanted 24, got 0/,
				'pg_waldump also stops there');
			if ($err =~ /invalid record length at ([0-9A-F\/]+)/)
			{
				my $next = lsn_num($s->{'wal.end_lsn'});
				$next = int(($next + 7) / 8) * 8;
				$next += 24 if $next % 8192 == 0;
				is($next, lsn_num($1), 'end of valid WAL');
			}
		}
		else
		{
			is($s->{'wal.end'}, 'segment', 'WAL runs to the segment end');
			unlike($err, qr/error/, 'pg_waldump reads it without error');
		}
		if ($i > 0 && ($s->{'wal.cont_in'} // 0) > 0)
		{
			my $p = $summary{ $segs[ $i - 1 ] };
			ok(defined $p->{'wal.cont'} && $p->{'wal.cont'} ne 'none',
				'the previous segment says a record continues');
		}
	};

	$total_commits += $s->{'wal.commits'};
	$total_aborts += $s->{'wal.aborts'};
	push @conts, $s if ($s->{'wal.cont'} // 'none') ne 'none' && $s->{'wal.cont_lsn'};
}

# Records continuing into the next segment: pg_waldump reads them from their start.
for my $s (@conts)
{
	my $lsn = $s->{'wal.cont_lsn'};
	my ($recs, $err) = waldump('-p', $pgwal, '-s', $lsn, '-n', '1');
	my $r = $recs->[0];
	subtest "record continuing from $s->{file} at $lsn" => sub {
		ok($r, 'pg_waldump reads it') or return diag($err);
		is($r->{lsn}, lsn_num($lsn), 'LSN');
		my $kind = $r->{xact} // (defined $r->{rp} ? 'restore_point' : 'other');
		if ($s->{'wal.cont'} eq 'unknown')
		{
			ok(lsn_num($lsn) % 8192 > 8192 - 24, 'its header is cut by the segment end');
		}
		else
		{
			is($s->{'wal.cont'}, $kind, 'kind');
		}
		is($s->{'wal.cont_time'}, $r->{time}, 'time') if defined $s->{'wal.cont_time'} && $r->{time};
		$total_commits++ if $kind eq 'commit';
		$total_aborts++ if $kind eq 'abort';
	};
}
ok(grep({ $_->{'wal.cont_lsn'} eq $big_commit && $_->{'wal.cont'} eq 'commit' && defined $_->{'wal.cont_time'} } @conts),
	"the big commit at $big_commit continues into the next segment, with its time");
ok(grep({ $_->{'wal.cont_lsn'} eq $big_abort && $_->{'wal.cont'} eq 'abort' } @conts),
	"the big abort at $big_abort continues into the next segment");
ok(grep({ $_->{'wal.cont_lsn'} eq $cut_commit && $_->{'wal.cont'} eq 'unknown' } @conts),
	"the commit at $cut_commit with a cut header is 'unknown'");
ok(grep({ $_->{'wal.cont'} eq 'restore_point' && defined $_->{'wal.cont_time'} } @conts),
	'a restore point continues into the next segment');

# Totals over the whole WAL agree with one pg_waldump run.
my ($all_recs) = waldump('-p', $pgwal, '--rmgr=Transaction', $segs[0], $segs[-1]);
is($total_commits, scalar(grep { ($_->{xact} // '') eq 'commit' } @$all_recs), 'total commits');
is($total_aborts, scalar(grep { ($_->{xact} // '') eq 'abort' } @$all_recs), 'total aborts');

# The restore points' times lie between the clocks read around them.
my @rp_found;
for my $s (values %summary)
{
	push @rp_found, map { [ split /,/, $s->{"wal.rp.$_"}, 3 ] }
	  grep { defined $s->{"wal.rp.$_"} } 0 .. 7;
}
for my $name (@rp_names)
{
	my ($rp) = grep { unescape($_->[2]) eq $name } @rp_found;
	ok($rp && $rp->[1] >= $rp_before && $rp->[1] <= $rp_after,
		"restore point \"$name\" found with its time");
}
cmp_ok($max_attrs, '<=', 2048, "attributes take at most $max_attrs bytes");

# Segments beyond the end of WAL (preallocated or recycled) are not WAL.
for my $f (@future ? itest(map { "$pgwal/$_" } @future) : ())
{
	ok($f->{status} eq 'error' || !$f->{name_segno_match} || $f->{'wal.records'} == 0,
		"$f->{file} beyond the end of WAL holds no records of its own");
}

# Speed on the full segment with the most records.
my ($busiest) = sort { $b->{'wal.records'} <=> $a->{'wal.records'} }
  grep { $_->{'wal.end'} eq 'segment' } values %summary;
my ($bench) = itest('--bench', '50', "$pgwal/$busiest->{file}");
diag(sprintf('walscan of a full 16 MiB segment (%s, %d records): min %d us, avg %d us',
		$busiest->{file}, $busiest->{'wal.records'}, $bench->{bench_min_us},
		$bench->{bench_avg_us}));
cmp_ok($bench->{bench_min_us}, '<', 10000, 'a 16 MiB segment scans in under 10 ms');

done_testing();
