# PgbkWatcher: helpers for pgbk-watcher's TAP tests (t/04x_watcher_*.pl).
#
#   my $w = PgbkWatcher->new(roots => [$root], pgbk_config => $conf,
#                            conninfo => $node->connstr('postgres') . ' user=pgbk_watcher');
#   $w->init;                     # pgbk-watcher --init (restic init)
#   $w->start;                    # the daemon, logging to $w->{log}
#   my $st = PgbkWatcher::tree_state($root);    # what the tree holds now
#   PgbkWatcher::gen_pimcore_tree($root);
#   my ($ok, $diffs) = $w->restore_matches($snapshot_id, $st);
#   $w->stop;                     # SIGTERM, wait, returns the exit code
#
# Every watcher a test starts is killed when the test exits, also when it
# dies (END block).  Trees are compared by type, mode, size, mtime, SHA-256
# of the content and symlink targets.
package PgbkWatcher;

use strict;
use warnings;

use Carp;
use Cwd qw(getcwd);
use Digest::SHA;
use File::Find;
use File::Path qw(make_path remove_tree);
use IPC::Run;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Pimcore's excluded directories (the watcher's defaults), relative to a root
our @EXCLUDES = qw(var/cache var/tmp var/log var/sessions public/var/tmp);

my %live;    # pid => object, of watchers this process started
my @all;     # every watcher object, to keep their logs

sub bin { return $ENV{PGBK_WATCHER_BIN} // 'pgbk-watcher'; }

sub itest
{
	return $ENV{PGBK_ITEST_FILES}
	  // (($ENV{PGBK_SRCDIR} // getcwd()) . '/common/test/itest_files');
}

# never writable by group or others unless the mode says so (pgbk and the
# watcher refuse configuration files others could edit)
sub write_file
{
	my ($path, $content, $mode) = @_;
	my $old = umask(umask() | 022);
	my $fh;
	if (!open($fh, '>', $path))
	{
		umask $old;
		croak "could not write $path: $!";
	}
	umask $old;
	binmode $fh;
	print $fh $content;
	close($fh) or croak "could not write $path: $!";
	chmod($mode, $path) if defined $mode;
	return $path;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	binmode $fh;
	local $/;
	my $c = <$fh>;
	close($fh);
	return $c // '';
}

# new(%opts): a watcher configuration in a new directory (not started).
# Options are watcher settings (roots as an array ref); defaults suit tests:
# short settle delay, no forget, fast retries.
sub new
{
	my ($class, %o) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('watcher');
	my $pw = $o{password} // 'restic test password';
	delete $o{password};
	write_file("$dir/restic.pw", "$pw\n", 0600);
	my $self = bless {
		dir => $dir,
		conf => "$dir/watcher.conf",
		log => "$dir/watcher.log",
		spool => "$dir/spool",
		pid => undef,
		owner_pid => $$,
		settings => {
			host => 'test-host',
			spool_dir => "$dir/spool",
			cache_dir => "$dir/cache",
			restic_password_file => "$dir/restic.pw",
			settle_delay => '1s',
			max_wait => '5s',
			safety_interval => '1h',
			retry_delay => '1s',
			retry_delay_max => '4s',
			stop_timeout => '20s',
			forget_interval => '0',
			%o,
		},
	}, $class;
	$self->write_conf;
	push @all, $self;
	return $self;
}

sub write_conf
{
	my ($self) = @_;
	my $text = "# written by PgbkWatcher.pm\n";
	for my $k (sort keys %{ $self->{settings} })
	{
		my $v = $self->{settings}{$k};
		next unless defined $v;
		$v = join(', ', @$v) if ref $v eq 'ARRAY';
		$v =~ s/'/''/g;
		$text .= "$k = '$v'\n";
	}
	write_file($self->{conf}, $text, 0600);
	return;
}

# set(key => value, ...): change settings (undef removes one) and rewrite
sub set
{
	my ($self, %kv) = @_;
	while (my ($k, $v) = each %kv)
	{
		$self->{settings}{$k} = $v;
	}
	$self->write_conf;
	return;
}

# Run pgbk-watcher with extra arguments to completion: ($rc, $stdout, $stderr)
sub run
{
	my ($self, @args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ bin(), '-c', $self->{conf}, @args ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	my $rc = $h->result(0);
	open(my $fh, '>>', $self->{log});
	print $fh $err;
	close($fh);
	return ($rc, $out, $err);
}

sub init
{
	my ($self) = @_;
	my ($rc, $out, $err) = $self->run('--init');
	croak "pgbk-watcher --init failed ($rc): $err" if $rc != 0;
	return;
}

# Start the daemon; its stderr goes (appended) to $self->{log}.
sub start
{
	my ($self, @args) = @_;
	croak "watcher already running" if $self->{pid};
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $self->{log}) or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
		exec(bin(), '-c', $self->{conf}, @args) or POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$self->{owner} = $$;
	$live{$pid} = $self;
	return $pid;
}

sub running
{
	my ($self) = @_;
	return 0 unless $self->{pid};
	my $r = waitpid($self->{pid}, WNOHANG);
	if ($r == $self->{pid})
	{
		$self->{exit} = $?;
		delete $live{ $self->{pid} };
		$self->{pid} = undef;
		return 0;
	}
	return 1;
}

# Wait up to $secs for the daemon to exit; returns its exit code (or undef).
sub wait_exit
{
	my ($self, $secs) = @_;
	my $deadline = time() + ($secs // $PostgreSQL::Test::Utils::timeout_default);
	while (time() < $deadline)
	{
		if (!$self->running)
		{
			my $st = $self->{exit};
			return ($st & 127) ? 128 + ($st & 127) : $st >> 8;
		}
		usleep(50_000);
	}
	return undef;
}

sub signal
{
	my ($self, $sig) = @_;
	croak "watcher not running" unless $self->{pid};
	kill($sig, $self->{pid});
	return;
}

# SIGTERM and wait; returns the exit code.
sub stop
{
	my ($self) = @_;
	return undef unless $self->{pid};
	$self->signal('TERM');
	my $rc = $self->wait_exit;
	if (!defined $rc)
	{
		$self->signal('KILL');
		$rc = $self->wait_exit(10);
	}
	return $rc;
}

sub log_contents { return slurp($_[0]->{log}); }
sub log_size { return -s $_[0]->{log} // 0; }

# Wait until the log (from byte $offset) matches $re; returns the match or
# undef after $secs.
sub wait_for_log
{
	my ($self, $re, $offset, $secs) = @_;
	my $deadline = time() + ($secs // $PostgreSQL::Test::Utils::timeout_default);
	while (time() < $deadline)
	{
		my $text = substr(slurp($self->{log}), $offset // 0);
		return $1 // $& if $text =~ $re;
		usleep(50_000);
	}
	return undef;
}

# Count matches of $re in the log from $offset.
sub count_log
{
	my ($self, $re, $offset) = @_;
	my $text = substr(slurp($self->{log}), $offset // 0);
	my $n = () = $text =~ /$re/g;
	return $n;
}

sub spool_files
{
	my ($self) = @_;
	opendir(my $dh, $self->{spool}) or return ();
	my @f = sort grep { /^\d{20}\.rec$/ } readdir($dh);
	closedir($dh);
	return @f;
}

# The spool's snapshot records (the spool also holds span records: the end
# of a snapshot's exact span, a start closing the spans left open)
sub spool_snapshots
{
	my ($self) = @_;
	return grep { slurp("$self->{spool}/$_") =~ /"kind":"snapshot"/ } $self->spool_files;
}

# Restore with itest_files (files_restore_repo, as `pgbk restore
# --files-to` does).  @sel: (id => X) or (time => T) or (restore_point => N).
# Returns ($rc, $stdout, $stderr).
sub itest_files
{
	my ($self, $cmd, $target, %sel) = @_;
	my @args = ($cmd, '--password-file', $self->{settings}{restic_password_file},
		'--cache-dir', $self->{settings}{cache_dir});
	push @args, '--config', $self->{settings}{pgbk_config}
	  if $self->{settings}{pgbk_config};
	push @args, '--repository', $self->{settings}{files_repository}
	  if $self->{settings}{files_repository};
	push @args, '--id', $sel{id} if $sel{id};
	push @args, '--time', $sel{time} if $sel{time};
	push @args, '--restore-point', $sel{restore_point} if $sel{restore_point};
	push @args, '--host', $sel{host} if $sel{host};
	push @args, $target if defined $target;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ itest(), @args ], '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	return ($h->result(0), $out, $err);
}

# Restore snapshot (selected as for itest_files) into a new directory and
# compare with $want (a tree_state).  Returns ($ok, $message).
sub restore_matches
{
	my ($self, $want, %sel) = @_;
	my $target = PostgreSQL::Test::Utils::tempdir('restore') . '/files';
	my ($rc, $out, $err) = $self->itest_files('restore', $target, %sel);
	return (0, "restore failed ($rc): $err") if $rc != 0;
	my @d = compare_states($want, tree_state($target));
	remove_tree($target);
	return (1, '') unless @d;
	return (0, join("\n", scalar(@d) . ' differences:', @d[ 0 .. ($#d > 20 ? 20 : $#d) ]));
}

###########################################################################
# Trees

# path (relative) => description, for everything under $root outside the
# excluded directories
sub tree_state
{
	my ($root, $excludes) = @_;
	$excludes //= \@EXCLUDES;
	my %st;
	find(
		{
			no_chdir => 1,
			wanted => sub {
				my $p = $File::Find::name;
				return if $p eq $root;
				my $rel = substr($p, length($root) + 1);
				if (grep { $rel eq $_ || index($rel, "$_/") == 0 } @$excludes)
				{
					$File::Find::prune = 1;
					return;
				}
				my @s = lstat($p);
				my $mode = $s[2] & 07777;
				if (-l _)
				{
					$st{$rel} = 'l ' . readlink($p);
				}
				elsif (-d _)
				{
					$st{$rel} = sprintf('d %04o', $mode);
				}
				else
				{
					my $sha = Digest::SHA->new(256);
					$sha->addfile($p);
					$st{$rel} = sprintf('f %04o %d %d %s', $mode, $s[7], $s[9], $sha->hexdigest);
				}
			},
		},
		$root);
	return \%st;
}

sub compare_states
{
	my ($want, $got) = @_;
	my @d;
	for my $k (sort keys %$want)
	{
		if (!exists $got->{$k})
		{
			push @d, "missing: $k";
		}
		elsif ($got->{$k} ne $want->{$k})
		{
			push @d, "differs: $k (want $want->{$k}, got $got->{$k})";
		}
	}
	for my $k (sort keys %$got)
	{
		push @d, "unexpected: $k" unless exists $want->{$k};
	}
	return @d;
}

# deterministic pseudo-random bytes
my $prng = 12345;
sub bytes
{
	my ($n) = @_;
	my $s = '';
	while (length($s) < $n)
	{
		$prng = ($prng * 1103515245 + 12345) % 2147483648;
		$s .= pack('N', $prng) x 64;
		$s .= chr($prng % 251);
	}
	return substr($s, 0, $n);
}

sub put
{
	my ($root, $rel, $size, $mode) = @_;
	my $p = "$root/$rel";
	(my $d = $p) =~ s{/[^/]+$}{};
	make_path($d);
	write_file($p, bytes($size), $mode);
	return $p;
}

# A Pimcore-like tree: assets of mixed sizes in nested directories,
# versions, config, a symlink, odd modes, and the excluded directories
# filled with junk.
sub gen_pimcore_tree
{
	my ($root) = @_;
	my @sizes = (0, 1, 100, 4096, 65543, 300_000, 1_048_579);
	my $i = 0;
	for my $year (2023, 2024)
	{
		for my $month ('01' .. '04')
		{
			for my $n (1 .. 4)
			{
				put($root, "public/var/assets/$year/$month/img-$n.jpg",
					$sizes[ $i++ % @sizes ]);
			}
		}
	}
	put($root, 'public/var/assets/video/intro.mp4', 3_000_001);
	put($root, "var/versions/object/g$_/$_", 2000 + $_) for 1 .. 20;
	put($root, "var/classes/DataObject/Class$_.php", 1500) for 1 .. 10;
	put($root, 'config/pimcore/system.yaml', 700);
	put($root, 'config/local/secrets.yaml', 300, 0640);
	make_path("$root/private");
	chmod(0750, "$root/private");
	put($root, 'private/contract.pdf', 12345);
	symlink('2024', "$root/public/var/assets/latest");
	# excluded: never in a snapshot
	put($root, "var/cache/dev/pimcore/c$_.php", 3000) for 1 .. 30;
	put($root, 'var/tmp/upload.part', 5000);
	put($root, 'var/log/dev.log', 20000);
	put($root, 'var/sessions/sess_abc', 100);
	put($root, 'public/var/tmp/thumbnails/t1.jpg', 9000);
	return;
}

# Kill what is still running; keep each watcher's log in tmp_check/log
# (the temporary directories go away with a passing test).
END
{
	local ($?, $!);
	for my $pid (keys %live)
	{
		next unless $live{$pid}{owner} && $live{$pid}{owner} == $$;
		kill('KILL', $pid);
		waitpid($pid, 0);
	}
	my $i = 0;
	(my $test = $0) =~ s{^.*/|\.pl$}{}g;
	for my $w (@all)
	{
		$i++;
		next unless $w->{owner_pid} && $w->{owner_pid} == $$ && -f $w->{log};
		my $dest = "$PostgreSQL::Test::Utils::log_path/${test}_watcher$i.log";
		if (open(my $fh, '>', $dest))
		{
			print $fh slurp($w->{log});
			close($fh);
		}
	}
}

1;
