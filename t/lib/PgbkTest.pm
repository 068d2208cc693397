# PgbkTest: helpers shared by pgbk's TAP tests.
#
#   my $repo = PgbkTest::local_repo('name');        # local repository + key
#   my $node = PgbkTest::new_node('primary', $repo->{conf});
#   my ($rc, $out, $err) = PgbkTest::pgbk('wal-fetch', '--config', $conf, ...);
#
# Nodes run with pgbk preloaded and archive_library = 'pgbk'.  Everything
# lives under the test's tmp_check directory and is removed with it.
package PgbkTest;

use strict;
use warnings;

use Carp;
use File::Basename;
use File::Copy;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Secrets used by tests: every test that handles secrets checks that none of
# these strings reaches a log or the CLI's output.
our @SECRET_STRINGS;

sub pgbk_bin
{
	return $ENV{PGBK_BIN} // 'pgbk';
}

# Run the pgbk CLI.  Returns ($exit_code, $stdout, $stderr).
sub pgbk
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ pgbk_bin(), @args ], '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	my $rc = $h->result(0);
	return ($rc, $out, $err);
}

# Damage or inspect repository objects through the Repo interface
# (common/test/itest_repo.c): works for local and S3 repositories alike.
sub repo_tool
{
	my ($conf, @args) = @_;
	my $bin = $ENV{PGBK_ITEST_REPO}
	  // (($ENV{PGBK_SRCDIR} // '.') . '/common/test/itest_repo');
	my ($out, $err) = ('', '');
	IPC::Run::run([ $bin, $conf, @args ], '>', \$out, '2>', \$err)
	  or croak "itest_repo @args failed: $err";
	return $out;
}

# Write a file with a mode.  Never writable by group or others unless the
# mode says so: pgbk refuses configuration files others could edit.
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
	print $fh $content;
	close($fh);
	chmod($mode, $path) if defined $mode;
	return $path;
}

sub append_file
{
	my ($path, $content) = @_;
	open(my $fh, '>>', $path) or croak "could not append to $path: $!";
	print $fh $content;
	close($fh);
	return $path;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or croak "could not read $path: $!";
	binmode $fh;
	local $/;
	my $c = <$fh>;
	close($fh);
	return $c;
}

# Generate a key file with `pgbk keygen` and remember its key line as a
# secret.
sub keygen
{
	my ($path) = @_;
	my ($rc, $out, $err) = pgbk('keygen', $path);
	croak "pgbk keygen failed: $err" if $rc != 0;
	for my $line (split /\n/, slurp($path))
	{
		next unless $line =~ /^pgbk-key-1:([0-9a-f]{64})$/;
		push @SECRET_STRINGS, $1;
	}
	return $path;
}

# A local-directory repository with its own pgbk.conf and key file.
# Returns { dir, conf, key, base }.
sub local_repo
{
	my ($name, %opts) = @_;
	my $base = PostgreSQL::Test::Utils::tempdir("repo_$name");
	my $dir = "$base/repo";
	make_path($dir);
	my $key = keygen("$base/pgbk.key");
	my $extra = $opts{extra} // '';
	my $conf = write_file("$base/pgbk.conf", <<"EOF", 0600);
# pgbk.conf written by PgbkTest::local_repo
repository = '$dir'
key_file = '$key'
compression = zstd
$extra
EOF
	return { dir => $dir, conf => $conf, key => $key, base => $base };
}

# A backup's manifest, decoded (read through itest_repo, which checks it).
sub manifest
{
	my ($conf, $id) = @_;
	require JSON::PP;
	return JSON::PP->new->decode(repo_tool($conf, 'cat', "manifest/$id"));
}

# The entry of path in a decoded manifest, or undef.
sub manifest_file
{
	my ($m, $path) = @_;
	my @f = grep { $_->{path} eq $path } @{ $m->{files} };
	return $f[0];
}

# Number of blocks in a manifest's block list ("0-5,9"; empty or undef: 0).
sub block_count
{
	my ($s) = @_;
	my $n = 0;
	for my $r (split /,/, $s // '')
	{
		my ($a, $b) = split /-/, $r;
		$n += defined $b ? $b - $a + 1 : 1;
	}
	return $n;
}

# A PostgreSQL node archiving through pgbk with the given pgbk.conf.
# Options: upload_workers, archive_command (archive with `pgbk wal-push`),
# extra (more postgresql.conf lines), initdb_extra (initdb arguments, e.g.
# ['--data-checksums']).
sub new_node
{
	my ($name, $conf, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1, extra => $opts{initdb_extra} // []);
	my $workers = $opts{upload_workers} // 2;
	my $archive = $opts{archive_command}
	  ? "archive_command = '" . pgbk_bin() . " wal-push --config $conf %p'"
	  : "archive_library = 'pgbk'";
	$node->append_conf('postgresql.conf', <<"EOF");
shared_preload_libraries = 'pgbk'
archive_mode = on
$archive
pgbk.config = '$conf'
pgbk.upload_workers = $workers
pgbk.database = 'postgres'
archive_timeout = 60
wal_keep_size = 2GB
log_min_messages = info
EOF
	$node->append_conf('postgresql.conf', $opts{extra}) if $opts{extra};
	return $node;
}

# Wait until every WAL file PostgreSQL marked .ready has been archived.
sub wait_archived
{
	my ($node) = @_;
	my $datadir = $node->data_dir;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		opendir(my $dh, "$datadir/pg_wal/archive_status") or croak $!;
		my @ready = grep { /\.ready$/ } readdir($dh);
		closedir($dh);
		return 1 if !@ready;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# Copy every complete WAL segment currently in pg_wal that is marked .done
# or .ready into $dest (the test's own record of the originals).
sub copy_wal_originals
{
	my ($node, $dest) = @_;
	make_path($dest);
	my $wal = $node->data_dir . '/pg_wal';
	opendir(my $dh, $wal) or croak $!;
	my @segs = grep { /^[0-9A-F]{24}$/ } readdir($dh);
	closedir($dh);
	my @copied;
	for my $s (@segs)
	{
		next
		  unless -e "$wal/archive_status/$s.done"
		  || -e "$wal/archive_status/$s.ready";
		next if -e "$dest/$s";
		copy("$wal/$s", "$dest/$s") or croak "copy $s: $!";
		push @copied, $s;
	}
	return @copied;
}

# Assert that no secret string appears in the given text.
sub no_secrets
{
	my ($text, $what) = @_;
	my @found = grep { index($text, $_) >= 0 } @SECRET_STRINGS;
	ok(!@found, "no secret in $what");
	diag("secret found in $what") if @found;
	return;
}

1;
