#!/usr/bin/env bash
# check-includes.sh: the include rules of common/ (ARCHITECTURE.md), checked
# from the #include "..." lines of common/*/*.c and common/*/*.h:
#
#  1. no cycle, neither between files nor between rooms (a room is a
#     directory of common/: base, config, repo, ...);
#  2. no arrow up the room order
#        base < config < repo < format < wal < plan < (context, verify, files)
#     a room includes only its own headers and those of lower rooms; rooms
#     not named in the order (new ones included) are top-level: they may
#     include any room of the order, and one another as long as no cycle
#     forms;
#  3. nothing in common/ includes a header of pg_ext/, cli/ or watcher/;
#  4. a room's internal header (room/*_intern.h, e.g. repo/repo_intern.h) is
#     included only by that room's own files, here and in pg_ext/, cli/,
#     watcher/ and common/test/;
#  5. every .c/.h file of common/*/, pg_ext/, cli/ and watcher/ opens with a
#     comment whose first line names the file and which names its place:
#        common/<room>/   " *	  Room <room>; uses ..."   (its own room)
#        pg_ext/          " *	  Program pgbk.so; ..."
#        cli/             " *	  Program pgbk; ..."
#        watcher/         " *	  Program pgbk-watcher; ..."
#        common/test/     " *	  Tests of room <room>: ...", "Tests of program
#                         <program> ..." or "Tests of every room ..."
#
# common/test/ holds the unit tests, not a room: it may include anything
# (test_watcher.c compiles watcher/ sources), except rule 4.
#
# Usage: scripts/check-includes.sh [ROOT]   (ROOT: the source tree, default
# the parent of this script's directory).  Exit 1 with one line per broken
# rule.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
exec perl -w - <<'PERL'
use strict;

# Lower rank = lower room.  Unknown rooms get TOP.
my @order = qw(base config repo format wal plan);
my %rank;
@rank{@order} = (0 .. $#order);
my $TOP = scalar @order;

# Known up-arrows, each one file -> one header, kept until the code they
# name moves (a new up-arrow still fails).  None today: WAL names moved to
# base/walname.c and secret files to base/secret.c.
my %known_up = map { $_ => 1 } ();

my @errors;
my %edges;       # file -> { included file -> 1 }
my %room_edges;  # room -> { room -> "file -> file" (first example) }

sub room_of
{
	my ($path) = @_;
	return $path =~ m{^common/([^/]+)/} ? $1 : undef;
}

sub rank_of
{
	my ($room) = @_;
	return exists $rank{$room} ? $rank{$room} : $TOP;
}

# Collapse "a/./b" and "a/x/../b".
sub normalize
{
	my @out;
	for my $part (split m{/}, $_[0])
	{
		next if $part eq '.' || $part eq '';
		if ($part eq '..') { pop @out; next; }
		push @out, $part;
	}
	return join('/', @out);
}

# Where #include "name" in file lands: common/<name> (the -Icommon rooms)
# first, then the file's own directory, then the tree root (-I.).
sub resolve
{
	my ($file, $name) = @_;
	(my $dir = $file) =~ s{/[^/]*$}{};
	for my $cand ("common/$name", "$dir/$name", $name)
	{
		my $n = normalize($cand);
		return $n if -f $n;
	}
	return normalize($name =~ m{^\.} ? "$dir/$name" : $name);
}

sub includes_of
{
	my ($file) = @_;
	my @inc;
	open(my $fh, '<', $file) or die "check-includes: cannot read $file: $!\n";
	while (my $line = <$fh>)
	{
		push @inc, [ $., $1 ] if $line =~ /^\s*#\s*include\s+"([^"]+)"/;
	}
	close($fh);
	return @inc;
}

my @common = sort grep { -f } glob('common/*/*.c common/*/*.h');
my @outside = sort grep { -f } glob('pg_ext/*.c pg_ext/*.h cli/*.c cli/*.h watcher/*.c watcher/*.h');

for my $file (@common, @outside)
{
	my $from_room = room_of($file);
	my $in_rooms = defined $from_room && $from_room ne 'test';
	for my $inc (includes_of($file))
	{
		my ($lineno, $name) = @$inc;
		my $target = resolve($file, $name);
		my $to_room = room_of($target);

		# rule 4, everywhere
		if (defined $to_room && $target =~ m{_intern\.h$}
			&& !(defined $from_room && $from_room eq $to_room && $file !~ m{^common/test/}))
		{
			push @errors, "$file:$lineno: includes \"$name\", internal to common/$to_room/ (rule 4)";
		}
		next unless $in_rooms;

		# rule 3
		if ($target =~ m{^(pg_ext|cli|watcher)/})
		{
			push @errors, "$file:$lineno: includes \"$name\" from $1/: common/ never depends on it (rule 3)";
			next;
		}
		next unless defined $to_room && $target =~ m{^common/};
		$edges{$file}{$target} = 1;
		next if $to_room eq $from_room;

		my $arrow = "$file -> $target";
		next if $known_up{$arrow};
		$room_edges{$from_room}{$to_room} //= $arrow;
		# rule 2 (two top-level rooms: only the cycle check below)
		if (rank_of($to_room) > rank_of($from_room))
		{
			push @errors, "$file:$lineno: includes \"$name\": room $from_room may not depend on room $to_room, which is above it in "
			  . join(' < ', @order) . " < (the others) (rule 2)";
		}
	}
}

# rule 5: the opening comment names the file and its room or program
my %program_of = (pg_ext => 'pgbk.so', cli => 'pgbk', watcher => 'pgbk-watcher');
my %is_room = map { m{^common/([^/]+)/$} ? ($1 => 1) : () } glob('common/*/');
delete $is_room{test};
my $programs = join('|', map { quotemeta } sort values %program_of);
for my $file (@common, @outside)
{
	open(my $fh, '<', $file) or die "check-includes: cannot read $file: $!\n";
	my @head;
	while (my $line = <$fh>)
	{
		push @head, $line;
		last if $line =~ m{\*/} || @head > 200;
	}
	close($fh);
	(my $base = $file) =~ s{.*/}{};
	if (!@head || $head[0] !~ m{^/\*\s*$} || ($head[1] // '') !~ m{^ \* \Q$base\E\s*$})
	{
		push @errors, "$file:1: does not open with a comment whose first line is \" * $base\" (rule 5)";
		next;
	}
	my $head = join('', @head);
	my ($dir) = $file =~ m{^((?:common/)?[^/]+)/};
	my ($want, $ok);
	if ($dir eq 'common/test')
	{
		$want = '"Tests of room <room>", "Tests of program <program>" or "Tests of every room"';
		$ok = ($head =~ m{^ \*\s+Tests of room (\w+)\b}m && $is_room{$1})
		  || $head =~ m{^ \*\s+Tests of (?:program (?:$programs)(?![\w.-])|every room\b)}m;
	}
	elsif ($dir =~ m{^common/(.+)$})
	{
		$want = "\"Room $1\"";
		$ok = $head =~ m{^ \*\s+Room \Q$1\E(?![\w-])}m;
	}
	else
	{
		$want = "\"Program $program_of{$dir}\"";
		$ok = $head =~ m{^ \*\s+Program \Q$program_of{$dir}\E(?![\w.-])}m;
	}
	push @errors, "$file:1: its opening comment does not name its place: a line starting with $want (rule 5)"
	  unless $ok;
}

# rule 1: depth-first search; a grey node met again closes a cycle
sub find_cycles
{
	my ($graph, $what) = @_;
	my (%state, @stack, %seen_cycle);
	my $visit;
	$visit = sub {
		my ($n) = @_;
		$state{$n} = 1;
		push @stack, $n;
		for my $m (sort keys %{ $graph->{$n} || {} })
		{
			if (($state{$m} // 0) == 1)
			{
				my @cyc;
				for (my $i = $#stack; $i >= 0; $i--)
				{
					unshift @cyc, $stack[$i];
					last if $stack[$i] eq $m;
				}
				my $key = join(' ', sort @cyc);
				my @ring = (@cyc, $m);
				my $why = '';
				if ($what eq 'rooms')
				{
					$why = ' [' . join('; ', map { $room_edges{ $ring[$_] }{ $ring[ $_ + 1 ] } } 0 .. $#ring - 1) . ']';
				}
				push @errors, "include cycle between $what: " . join(' -> ', @ring) . "$why (rule 1)"
				  unless $seen_cycle{$key}++;
			}
			elsif (!$state{$m})
			{
				$visit->($m);
			}
		}
		pop @stack;
		$state{$n} = 2;
	};
	$visit->($_) for grep { !$state{$_} } sort keys %$graph;
}

find_cycles(\%edges, 'files');
my %rgraph = map { my $r = $_; $r => { map { $_ => 1 } keys %{ $room_edges{$r} } } } keys %room_edges;
find_cycles(\%rgraph, 'rooms');

if (@errors)
{
	print STDERR "check-includes: $_\n" for @errors;
	exit 1;
}
printf "check-includes: ok (%d files of common/, %d include arrows, %d known up-arrows, %d opening comments)\n",
  scalar(@common), scalar(map { keys %$_ } values %edges), scalar(keys %known_up), scalar(@common) + scalar(@outside);
PERL
